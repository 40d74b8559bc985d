"""Loihi-exact training: the model computes exactly what the numpy reference of Lava's fixed point computes (the
reference itself is tested against Lava in test_netx.py), it trains, and its export is the network it trained."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from export.netx_export import netx_bytes
from export.quantization_report import compare
from export.quantize import quantize
from neuromorph.checkpoint import load_checkpoint
from neuromorph.errors import NeuromorphError
from neuromorph.models import build_model
from neuromorph.spec import Dense, EncoderSpec, FixedPointSpec, Flatten, ModelSpec, NeuronSpec, cnn_spec, mlp_spec
from neuromorph.training import TrainConfig, train
from tests.export.conftest import firing_model
from tests.helpers import synthetic_split

SPECS = {
    "mlp-direct": mlp_spec(input_shape=(1, 6, 6), hidden=(20, 12), num_classes=4, time_steps=8),
    "mlp-poisson": mlp_spec(input_shape=(1, 6, 6), hidden=(20, 12), num_classes=4, time_steps=8,
                            encoder=EncoderSpec(kind="poisson", max_rate_hz=400.0)),
    "cnn-pool": cnn_spec(input_shape=(1, 12, 12), channels=(4, 6), kernel_size=3, padding=1, hidden=(10,),
                         num_classes=4, time_steps=8),
    "lifbox": mlp_spec(input_shape=(1, 6, 6), hidden=(16,), num_classes=3, time_steps=6,
                       neuron=NeuronSpec(cell="lifbox")),
    "host-bias": ModelSpec(input_shape=(1, 6, 6), layers=(Flatten(), Dense(16, bias=True), Dense(3)), num_classes=3,
                           time_steps=6),
}


def loihi_exact(model, x, volts: float | None = None):
    """The same weights in a Loihi-exact model."""
    if volts is None:
        with torch.no_grad():
            volts = float(model(x).voltages.abs().max())
    exact = build_model(dataclasses.replace(model.spec, fixed_point=FixedPointSpec(readout_volts=volts))).eval()
    exact.load_state_dict(model.state_dict())
    return exact


@pytest.mark.parametrize("name", list(SPECS))
def test_loihi_exact_model_is_the_fixed_point_reference(name):
    model, x = firing_model(SPECS[name], samples=12)
    exact = loihi_exact(model, x)
    report = compare(exact, quantize(exact), x)  # numpy reference of Lava vs the model's own forward
    assert report.spike_mismatches == [0] * len(report.spike_bins), report.spike_mismatches
    assert sum(report.fixed_spikes) > 0
    assert report.class_agreement == 1.0 and report.readout_max_abs_error == 0.0
    float_report = compare(model, quantize(model, calibration=x), x)
    assert sum(float_report.spike_mismatches) > 0 or name in ("lifbox", "host-bias")  # float is not exact


def test_straight_through_gradients_reach_every_weight():
    model, x = firing_model(SPECS["cnn-pool"], samples=8)
    exact = loihi_exact(model, x)
    out = exact(x)
    loss = torch.nn.functional.cross_entropy(out.logits, torch.arange(8) % 4) + sum(s.mean() for s in out.spikes)
    loss.backward()
    for name, parameter in exact.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_spec_round_trip_and_old_descriptions_load():
    spec = dataclasses.replace(SPECS["mlp-direct"], fixed_point=FixedPointSpec(readout_volts=3.5))
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    old = SPECS["mlp-direct"].to_dict()
    assert "fixed_point" not in old and ModelSpec.from_dict(old).fixed_point is None
    with pytest.raises(NeuromorphError, match="readout_volts"):
        FixedPointSpec(readout_volts=0.0)


def test_export_of_a_loihi_exact_model_ignores_calibration():
    model, x = firing_model(SPECS["mlp-direct"], samples=12)
    exact = loihi_exact(model, x, volts=1000.0)  # a bound that sets the readout's scale (not the weight range)
    assert netx_bytes(quantize(exact)) == netx_bytes(quantize(exact, calibration=x[:, :3]))
    assert quantize(exact).layers[-1].scale != quantize(model, calibration=x).layers[-1].scale


def test_train_and_fine_tune_loihi_exact(tmp_path):
    spec = mlp_spec(input_shape=(1, 8, 8), hidden=(24,), num_classes=4, time_steps=6)
    data = dict(train_split=synthetic_split(128, seed=0), test_split=synthetic_split(64, seed=1), progress=False)
    base = train(spec, TrainConfig(epochs=1, batch_size=32, lr=3e-3), tmp_path / "float", **data)
    assert base.model.spec.fixed_point is None
    tuned = train(spec, TrainConfig(epochs=2, batch_size=32, lr=1e-3, loihi_exact=True,
                                    init_from=str(tmp_path / "float")), tmp_path / "exact", **data)
    assert tuned.model.spec.fixed_point is not None
    accuracy = tuned.final["test_accuracy"]
    assert accuracy >= max(0.4, base.final["test_accuracy"] - 0.1), accuracy  # chance: 0.25
    ckpt = load_checkpoint(tmp_path / "exact")
    assert ckpt.spec.fixed_point == tuned.model.spec.fixed_point and ckpt.train_config["loihi_exact"]
    model = ckpt.build_model().eval()
    images = synthetic_split(16, seed=2).images.float() / 255
    x = images.unsqueeze(0).expand(spec.time_steps, *images.shape)
    report = compare(model, quantize(model), x)
    assert report.spike_mismatches == [0] and report.class_agreement == 1.0 and sum(report.fixed_spikes) > 0
    # the fine-tuned weights started from the float run's, and moved
    start = load_checkpoint(tmp_path / "float").model_state["blocks.0.synapse.weight"]
    assert not torch.equal(start, ckpt.model_state["blocks.0.synapse.weight"])
    np.testing.assert_allclose(start.numpy(), ckpt.model_state["blocks.0.synapse.weight"].numpy(), atol=0.5)
    # resuming keeps the fixed-point arithmetic and its readout bound
    resumed = train(spec, TrainConfig(epochs=3), tmp_path / "exact", resume=True, **data)
    assert resumed.model.spec.fixed_point == ckpt.spec.fixed_point


def test_loihi_exact_training_refuses_what_the_chip_cannot_compute(tmp_path):
    spec = ModelSpec(input_shape=(1, 8, 8), layers=(Flatten(), Dense(8), Dense(4, bias=True)), num_classes=4,
                     time_steps=4)
    with pytest.raises(NeuromorphError, match="bias"):
        train(spec, TrainConfig(epochs=1, loihi_exact=True), tmp_path, train_split=synthetic_split(32),
              test_split=synthetic_split(16), progress=False)


@pytest.mark.parametrize("encoder, model", [("direct", "cnn"), ("poisson", "cnn"), ("direct", "mlp")])
def test_fused_fixed_point_kernel_equals_the_step_by_step_arithmetic(encoder, model, monkeypatch):
    """The Loihi-exact CUBA in one autograd function (export.loihi_cuba.cuba_fixed_point_fused) gives the same
    spikes, voltages and straight-through gradients as the step-by-step torch version; with the direct encoder the
    first layer's input is the same at every step and the kernel sums its gradient over the steps itself."""

    from neuromorph.neurons import KERNEL_ENV
    from neuromorph.penalties import synaptic_penalty

    encoder_spec = EncoderSpec(kind=encoder, max_rate_hz=300.0)
    spec = (cnn_spec(input_shape=(1, 12, 12), channels=(4, 6), kernel_size=3, padding=1, hidden=(12,),
                     num_classes=4, time_steps=6, encoder=encoder_spec) if model == "cnn" else
            mlp_spec(input_shape=(1, 12, 12), hidden=(16, 12), num_classes=4, time_steps=6, encoder=encoder_spec))
    results = []
    for kernel in ("fused", "norse"):
        monkeypatch.setenv(KERNEL_ENV, kernel)
        model, x = firing_model(spec, samples=5)
        exact = loihi_exact(model, x)
        out = exact(x)
        loss = torch.nn.functional.cross_entropy(out.logits, torch.arange(5) % 4)
        (loss + 1e-4 * synaptic_penalty(out.spikes, exact.fan_outs).mean()).backward()
        results.append((out, [p.grad.clone() for p in exact.parameters()]))
    (fused, fused_grads), (step, step_grads) = results
    assert all(s.sum() > 0 for s in exact.hidden_spikes(step))
    for mine, theirs in zip(fused.spikes, step.spikes, strict=True):
        assert torch.equal(mine, theirs)
    assert torch.equal(fused.voltages, step.voltages)
    for mine, theirs in zip(fused_grads, step_grads, strict=True):
        assert theirs.abs().max() > 0
        torch.testing.assert_close(mine, theirs, rtol=1e-9, atol=1e-12 * float(theirs.abs().max()))


@pytest.mark.parametrize("k, stride, padding", [(2, 1, 0), (2, 2, 1), (3, 1, 1)])
def test_a_folded_pool_conv_sums_the_pooled_spikes_with_the_small_kernel(k, stride, padding):
    """Loihi-exact training convolves the sum-pooled spikes with the small kernel; the chip (and the numpy
    reference) run the k-times larger folded kernel on the spikes themselves: the same integer sums."""
    from dataclasses import replace

    from export.chip_plan import plan_layers
    from export.loihi_cuba import SYNAPTIC_SUMS, even_grid
    from hw_models.loihi import LOIHI_FIXED_POINT as FP

    spec = cnn_spec(input_shape=(1, 12, 12), channels=(3, 4), kernel_size=3, padding=padding, pool=k, num_classes=2,
                    time_steps=2, encoder=EncoderSpec(kind="poisson"))
    layer = plan_layers(spec)[1]
    assert layer.pool_before == k
    small = even_grid(torch.randn((4, 3, 3, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 90)
    big = small.repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)
    layer = replace(layer, stride=stride * k, padding=padding * k)
    spikes = (torch.rand((5, 3, 6 * k, 6 * k), generator=torch.Generator().manual_seed(1)) < 0.3).double()
    fast = SYNAPTIC_SUMS["conv"].torch(layer, big, spikes, FP)
    plain = torch.nn.functional.conv2d(spikes, big, stride=stride * k, padding=padding * k)
    assert torch.equal(fast, plain) and plain.abs().sum() > 0


@pytest.mark.parametrize("encoder", ["direct", "poisson"])
def test_the_compiled_fixed_point_kernel_counts_idle_steps_as_the_step_by_step_arithmetic(encoder):
    """The idle compartments the energy report prices apart (no input, (u, v) unchanged), counted in the compiled
    CUBA kernel's pass, equal the step-by-step count of export.loihi_cuba.cuba_fixed_point."""
    from export.loihi_exact import fixed_point_idle_steps
    from neuromorph.neurons import compiled_extension

    if compiled_extension() is None:
        pytest.skip("no compiled kernels here")
    spec = cnn_spec(input_shape=(1, 12, 12), channels=(4, 6), kernel_size=3, padding=1, hidden=(12,), num_classes=4,
                    time_steps=6, encoder=EncoderSpec(kind=encoder, max_rate_hz=300.0))
    model, x = firing_model(spec, samples=5)
    exact = loihi_exact(model, x)
    with torch.no_grad():
        out = exact(x)
        counted = fixed_point_idle_steps(exact, x, out)
        stepped = fixed_point_idle_steps(exact, x, dataclasses.replace(out, idle_steps=None))
    assert out.idle_steps is not None and sum(float(s.sum()) for s in stepped) > 0
    assert all(torch.equal(a, b) for a, b in zip(counted, stepped, strict=True))
