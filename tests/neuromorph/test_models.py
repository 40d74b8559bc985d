"""The network computes exactly the LIF equations of DESIGN.md section 3, with time folded into the batch."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from neuromorph.encoders import direct_encode, encode, poisson_encode
from neuromorph.models import build_model, calibrate_firing
from neuromorph.spec import EncoderSpec, NeuronSpec, mlp_spec


def reference_forward(model, x):
    """A per-time-step loop written from the equations, independent of Norse and of the time folding."""
    spec = model.spec
    n, r = spec.neuron, spec.readout
    a, b = spec.dt_s * n.tau_mem_inv, spec.dt_s * n.tau_syn_inv
    if n.cell == "lifbox":
        b = 1.0
    steps = x.shape[0]
    weights = [block.synapse.weight for block in model.blocks]
    v = [None] * len(weights)
    i = [None] * len(weights)
    spikes = [[] for _ in weights[:-1]]
    volts = []
    for t in range(steps):
        h = x[t].flatten(1)
        for layer, w in enumerate(weights):
            inp = F.linear(h, w)
            if v[layer] is None:
                v[layer] = torch.full_like(inp, n.v_leak if layer < len(weights) - 1 else 0.0)
                i[layer] = torch.zeros_like(inp)
            if layer < len(weights) - 1:
                j = i[layer] + inp
                v_new = v[layer] + a * ((n.v_leak - v[layer]) + j)
                i[layer] = (1 - b) * j
                z = (v_new > n.v_th).float()
                v[layer] = torch.where(z > 0, torch.full_like(v_new, n.v_reset), v_new)
                spikes[layer].append(z)
                h = z
            else:
                ar, br = spec.dt_s * r.tau_mem_inv, spec.dt_s * r.tau_syn_inv
                j = i[layer] + inp
                v[layer] = v[layer] + ar * ((0.0 - v[layer]) + j)
                i[layer] = (1 - br) * j
                volts.append(v[layer])
    return [torch.stack(s) for s in spikes], torch.stack(volts)


@pytest.mark.parametrize("cell", ["lif", "lifbox"])
def test_mlp_matches_reference_equations(cell):
    spec = mlp_spec(input_shape=(1, 6, 6), hidden=(20, 12), num_classes=3, time_steps=10,
                    neuron=NeuronSpec(cell=cell, v_leak=0.1, v_reset=-0.2))
    torch.manual_seed(1)
    model = build_model(spec)
    for block in model.blocks:
        block.synapse.weight.data *= 4
    x = encode(torch.rand(4, 1, 6, 6), spec)
    out = model(x)
    ref_spikes, ref_volts = reference_forward(model, x)
    assert sum(s.sum() for s in ref_spikes) > 0
    for got, want in zip(out.spikes, ref_spikes, strict=True):
        assert torch.equal(got, want)
    torch.testing.assert_close(out.voltages, ref_volts)
    torch.testing.assert_close(out.logits, ref_volts.max(dim=0).values)


def test_constant_input_shortcut_is_exact(tiny_cnn_spec):
    torch.manual_seed(0)
    model = build_model(tiny_cnn_spec)
    images = torch.rand(3, 1, 12, 12) * 2
    x = direct_encode(images, tiny_cnn_spec.time_steps)
    assert x.stride(0) == 0
    a, b = model(x), model(x.contiguous())
    torch.testing.assert_close(a.voltages, b.voltages)
    for s1, s2 in zip(a.spikes, b.spikes, strict=True):
        assert torch.equal(s1, s2)


def test_input_shape_is_checked(tiny_mlp_spec):
    model = build_model(tiny_mlp_spec)
    with pytest.raises(ValueError, match="expected input"):
        model(torch.zeros(3, 2, 1, 9, 9))


def test_poisson_encoder_rates_and_recording():
    g = torch.Generator().manual_seed(0)
    images = torch.full((2, 1, 4, 4), 0.5)
    x = poisson_encode(images, 2000, max_rate_hz=400, dt_s=1e-3, generator=g)
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert abs(x.mean().item() - 0.2) < 0.01
    spec = mlp_spec(input_shape=(1, 4, 4), hidden=(5,), num_classes=2, time_steps=3,
                    encoder=EncoderSpec(kind="poisson"))
    model = build_model(spec)
    out = model(encode(images, spec, g))
    assert [s.name for s in model.sources] == ["input", "lif1"]
    assert out.spikes[0].shape == (3, 2, 1, 4, 4)


def test_calibration_reaches_target_rate(tiny_cnn_spec):
    torch.manual_seed(0)
    model = build_model(tiny_cnn_spec)
    x = encode(torch.rand(32, 1, 12, 12), tiny_cnn_spec)
    calibrate_firing(model, x, target_rate=0.1)
    rates = [s.mean().item() for s in model(x).spikes]
    assert all(0.1 / 1.5 <= r <= 0.1 * 1.5 for r in rates), rates


def test_the_arithmetic_registry_loads_fixed_point_only_when_a_model_needs_it():
    """neuromorph.models imports nothing from export/: the Loihi fixed-point arithmetic registers itself when its
    module is first needed, as Lava's select_tag picks a process model."""
    import subprocess
    import sys

    code = ("import sys; from neuromorph.models import build_model, arithmetic; "
            "from neuromorph.spec import FixedPointSpec, mlp_spec; import torch; "
            "model = build_model(mlp_spec(input_shape=(4,), hidden=(3,), num_classes=2, time_steps=2)); "
            "model(torch.ones(2, 1, 4)); before = 'export.loihi_exact' in sys.modules; "
            "spec = mlp_spec(input_shape=(4,), hidden=(3,), num_classes=2, time_steps=2, "
            "fixed_point=FixedPointSpec(readout_volts=1.0)); build_model(spec)(torch.ones(2, 1, 4)); "
            "print(before, 'export.loihi_exact' in sys.modules, arithmetic(spec.arithmetic).check is not None)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["False", "True", "True"]


def test_an_unknown_arithmetic_is_refused_by_name():
    from neuromorph.errors import NeuromorphError
    from neuromorph.models import arithmetic

    with pytest.raises(NeuromorphError, match="unknown arithmetic 'analog'; registered: norse-float"):
        arithmetic("analog")
