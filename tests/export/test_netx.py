"""Loihi fixed point and netx: quantization rules, the numpy reference against Lava itself, refusals."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from export.loihi_reference import CubaState, cuba_lif_step, run_reference
from export.netx_export import read_netx_metadata, write_netx
from export.quantization_report import compare, reference_inputs
from export.quantize import _layer_weights, quantize
from hw_models.loihi import LOIHI_FIXED_POINT as FP
from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, EncoderSpec, Flatten, ModelSpec, NeuronSpec, Pool, cnn_spec, mlp_spec
from tests.export.conftest import firing_model


def poisson(spec: ModelSpec) -> ModelSpec:
    return ModelSpec.from_dict({**spec.to_dict(), "encoder": {"kind": "poisson", "max_rate_hz": 400.0}})


def test_quantization_follows_the_loihi_rules(tiny_cnn_spec):
    model, _ = firing_model(tiny_cnn_spec)
    qnet = quantize(model)
    a = tiny_cnn_spec.dt_s * tiny_cnn_spec.neuron.tau_mem_inv
    b = tiny_cnn_spec.dt_s * tiny_cnn_spec.neuron.tau_syn_inv
    assert qnet.input_kind == "current" and qnet.layers[0].kind == "input"
    for layer in qnet.layers:
        assert layer.i_decay == round(FP.decay_unit * b) == 819 and layer.v_decay == round(FP.decay_unit * a) == 410
        if layer.kind == "input":
            continue
        w = layer.weight
        assert w.dtype.kind == "i" and (w % FP.weight_step == 0).all()
        assert FP.weight_min <= w.min() and w.max() <= FP.weight_max
        assert np.abs(w).max() >= 250, "the per-layer scale must use the 8-bit range"
        assert layer.weight_error_max <= FP.weight_step / 2 / layer.scale + 1e-12
    hidden = [q for q in qnet.layers if not q.readout]
    for layer in hidden:
        assert layer.v_th_mant == layer.scale * (tiny_cnn_spec.neuron.v_th - tiny_cnn_spec.neuron.v_reset)
    assert qnet.layers[-1].v_th_mant == 2**FP.threshold_bits - 1
    assert [q.kind for q in qnet.layers] == ["input", "conv", "dense", "dense"]
    assert qnet.delays == [0, 1, 2, 3]


def test_pooling_folds_exactly_into_the_next_layer(tiny_cnn_spec):
    model, x = firing_model(tiny_cnn_spec)
    spikes = model(x).spikes[0][:3].reshape(-1, 4, 12, 12).double()
    shapes = [tiny_cnn_spec.input_shape, *tiny_cnn_spec.layer_shapes()]
    block = model.blocks[1]  # pool(2) -> conv(6, 3, padding 1)
    weight, stride, padding, folded = _layer_weights(tiny_cnn_spec, block, [Pool(2)], tiny_cnn_spec.layers[2],
                                                     shapes[1], 2)
    assert folded and stride == 2 and padding == 2
    got = torch.nn.functional.conv2d(spikes, torch.from_numpy(weight), stride=stride, padding=padding)
    want = block.synapse.double()(block.pre(spikes))
    block.synapse.float()
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


def test_lava_step_golden_values():
    """Hand-computed: u = 100*(4096-1024)/4096 = 75 (truncated), + 3<<6 = 267; v = 50*(4096-2048)/4096 = 25,
    + 267 + (1<<6) = 356 > 5<<6 = 320: spike and reset. Negative values truncate toward zero: -75*3072/4096 = -56.25
    -> -56."""
    state = CubaState(u=np.array([100, -75]), v=np.array([50, 0]))
    spikes, new = cuba_lif_step(state, np.array([3, 0]), 1024, 2048, 5, 1, FP)
    assert spikes.tolist() == [True, False]
    assert new.u.tolist() == [267, -56] and new.v.tolist() == [0, -56 + 64]


def test_fixed_point_stays_close_to_float(tiny_mlp_spec):
    model, x = firing_model(tiny_mlp_spec, samples=8)
    qnet = quantize(model)
    report = compare(model, qnet, x)
    assert sum(report.float_spikes) > 100
    assert report.mismatch_fraction < 0.03
    assert report.class_agreement >= 0.75
    assert report.readout_saturated == 0


CASES = {
    "mlp-direct": lambda s: s["tiny_mlp_spec"],
    "mlp-poisson": lambda s: poisson(s["tiny_mlp_spec"]),
    "cnn-direct": lambda s: s["tiny_cnn_spec"],
    "cnn-poisson": lambda s: poisson(s["tiny_cnn_spec"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_netx_runs_in_lava_and_the_reference_gives_exactly_its_spikes(case, tiny_mlp_spec, tiny_cnn_spec, tmp_path):
    from export.lava_runner import run_netx

    spec = CASES[case]({"tiny_mlp_spec": tiny_mlp_spec, "tiny_cnn_spec": tiny_cnn_spec})
    model, x = firing_model(spec, samples=1)
    qnet = quantize(model)
    path = write_netx(qnet, tmp_path / "model.net")
    inputs = reference_inputs(qnet, x)
    reference = run_reference(qnet, inputs)
    lava = run_netx(path, qnet, inputs[:, 0])
    assert len(lava.spikes) == len(reference.spikes) == len(spec.layers) - spec.layers.count(Flatten()) - sum(
        isinstance(layer, Pool) for layer in spec.layers) - 1
    for k, (ours, theirs) in enumerate(zip(reference.spikes, lava.spikes, strict=True)):
        assert ours.sum() > 0, f"layer {k} is silent: the comparison would prove little"
        np.testing.assert_array_equal(ours, theirs, err_msg=f"layer {k}")
    np.testing.assert_array_equal(reference.readout_v, lava.readout_v)
    assert np.abs(lava.readout_v).max() > 0
    meta = read_netx_metadata(path)
    assert meta["time_unit"] == "s" and meta["input"] == qnet.input_kind and float(meta["dt_s"]) == spec.dt_s


def test_netx_file_layout(tiny_cnn_spec, tmp_path):
    model, _ = firing_model(poisson(tiny_cnn_spec))
    path = write_netx(quantize(model), tmp_path / "cnn.net")
    with h5py.File(path, "r") as handle:
        kinds = [handle[f"layer/{i}/type"][()].decode() for i in range(len(handle["layer"]))]
        assert kinds == ["input", "conv", "conv", "flatten", "dense", "dense"]
        assert handle["layer/1/weight"].dtype.kind == "i" and handle["layer/1/neuron/type"][()] == b"CUBA"
        assert list(handle["layer/2/shape"][()]) == [6, 6, 6]


def test_a_changed_weight_in_a_netx_file_is_refused(tiny_mlp_spec, tmp_path):
    from export.netx_export import verify_netx
    from neuromorph.errors import NeuromorphError

    model, _ = firing_model(tiny_mlp_spec)
    path = write_netx(quantize(model), tmp_path / "mlp.net")
    verify_netx(path)
    assert read_netx_metadata(path)["checksum"]
    with h5py.File(path, "r+") as handle:
        handle["layer/1/weight"][0, 0] += 2
    with pytest.raises(NeuromorphError, match="corrupt"):
        read_netx_metadata(path)
    (tmp_path / "junk.net").write_bytes(b"not hdf5")
    with pytest.raises(NeuromorphError, match="not a readable netx file"):
        verify_netx(tmp_path / "junk.net")


@pytest.mark.parametrize("change, fragment", [
    (dict(neuron=NeuronSpec(v_leak=0.2)), "v_leak == v_reset"),
    (dict(layers=(Flatten(), Dense(8), Dense(4, bias=True))), "has a bias"),
    (dict(dt_s=0.01), "iDecay = 8192, outside"),
    (dict(neuron=NeuronSpec(tau_mem_inv=1000.0)), "vDecay = 4096, outside"),
    (dict(input_shape=(1, 9, 9), layers=(Conv(3, 3, padding=1), Pool(2), Conv(4, 3), Flatten(), Dense(4))), "crops"),
])
def test_out_of_range_or_unsupported_models_are_refused(change, fragment):
    spec = ModelSpec.from_dict({**mlp_spec(input_shape=(1, 9, 9), hidden=(8,), num_classes=4).to_dict()})
    spec = ModelSpec(**{**{f: getattr(spec, f) for f in spec.__dataclass_fields__}, **change})
    model, _ = firing_model(spec)
    with pytest.raises(NeuromorphError, match=fragment):
        quantize(model)


def test_nan_and_zero_weights_are_refused(tiny_mlp_spec):
    model, _ = firing_model(tiny_mlp_spec)
    with torch.no_grad():
        model.blocks[0].synapse.weight[0, 0] = float("nan")
    with pytest.raises(NeuromorphError, match="NaN"):
        quantize(model)
    with torch.no_grad():
        model.blocks[0].synapse.weight.zero_()
    with pytest.raises(NeuromorphError, match="zero weights"):
        quantize(model)


def test_sum_pooling_and_lifbox_quantize(tmp_path):
    spec = cnn_spec(input_shape=(1, 8, 8), channels=(3,), kernel_size=3, padding=1, pool_mode="sum", num_classes=3,
                    time_steps=5, neuron=NeuronSpec(cell="lifbox"), encoder=EncoderSpec(kind="poisson"))
    model, x = firing_model(spec)
    qnet = quantize(model)
    assert qnet.layers[0].i_decay == FP.decay_unit and "pool" in qnet.layers[1].folded
    report = compare(model, qnet, x)
    assert report.mismatch_fraction < 0.05


def test_readout_scale_keeps_the_voltage_in_the_state_range(tiny_mlp_spec):
    model, x = firing_model(tiny_mlp_spec, samples=8)
    safe, calibrated = quantize(model), quantize(model, calibration=x)
    weight = model.blocks[-1].synapse.weight.detach().double().abs().sum(dim=1).max().item()
    b = tiny_mlp_spec.dt_s * tiny_mlp_spec.readout.tau_syn_inv
    limit = 2 ** (FP.state_bits - 1) - 1
    assert safe.layers[-1].scale * 2**FP.threshold_shift * weight / b <= limit * (1 + 1e-9)
    assert calibrated.layers[-1].scale >= safe.layers[-1].scale
    for qnet in (safe, calibrated):
        report = compare(model, qnet, x)
        assert report.readout_saturated == 0 and report.class_agreement >= 0.75


def test_a_bias_is_carried_only_on_the_host_layer():
    """The first layer of a direct-input network runs on the host, so its bias is part of the exact input current;
    an on-chip bias is refused (see test_out_of_range_or_unsupported_models_are_refused)."""
    spec = ModelSpec(input_shape=(1, 6, 6), layers=(Flatten(), Dense(16, bias=True), Dense(4)), num_classes=4,
                     time_steps=8)
    model, x = firing_model(spec, samples=8)
    with torch.no_grad():
        model.blocks[0].synapse.bias.add_(0.05)
    qnet = quantize(model)
    assert qnet.layers[0].host_bias is not None
    report = compare(model, qnet, x)
    assert report.float_spikes[0] > 0 and report.mismatch_fraction < 0.03
