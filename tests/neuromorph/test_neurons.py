"""Multi-step neuron kernels against Norse's cells (the reference): identical spikes and readout voltages, equal
gradients (float tolerance) of a loss that includes the synaptic penalty; MLP and CNN, LIF and LIFBox, direct and
Poisson input; and the fallback to Norse where no kernel exists."""

from __future__ import annotations

import shutil

import pytest
import torch
from torch.nn import functional as F

from neuromorph.encoders import encode
from neuromorph.models import build_model, calibrate_firing
from neuromorph.neurons import KERNEL_ENV, backend, compiled_extension, describe, kernel_for
from neuromorph.penalties import synaptic_penalty
from neuromorph.spec import EncoderSpec, NeuronSpec, ReadoutSpec, cnn_spec, mlp_spec

SPECS = {
    "mlp": mlp_spec(input_shape=(1, 8, 8), hidden=(24, 16), num_classes=4, time_steps=6),
    "cnn": cnn_spec(input_shape=(1, 12, 12), channels=(4, 6), kernel_size=3, padding=1, hidden=(12,),
                    num_classes=4, time_steps=6),
    "lifbox": mlp_spec(input_shape=(1, 8, 8), hidden=(24,), num_classes=4, time_steps=6,
                       neuron=NeuronSpec(cell="lifbox", v_leak=0.1, v_reset=-0.2)),
    "poisson-cnn": cnn_spec(input_shape=(1, 12, 12), channels=(4,), kernel_size=3, padding=1, pool_mode="sum",
                            num_classes=4, time_steps=6, encoder=EncoderSpec(kind="poisson", max_rate_hz=300.0),
                            readout=ReadoutSpec(reduce="mean")),
}


def run(spec, monkeypatch, kernel: str, counts: bool = False):
    """Forward and backward of a calibrated model on fixed data, with the kernels on ('fused') or off ('norse');
    ``counts``: the penalty reads the kernels' spike counts instead of summing the spikes."""
    monkeypatch.setenv(KERNEL_ENV, kernel)
    torch.manual_seed(0)
    model = build_model(spec)
    images = torch.rand((5, *spec.input_shape), generator=torch.Generator().manual_seed(1))
    x = encode(images, spec, torch.Generator().manual_seed(2))
    calibrate_firing(model, x, 0.1)
    out = model(x)
    loss = F.cross_entropy(out.logits, torch.arange(5) % spec.num_classes)
    loss = loss + 1e-3 * synaptic_penalty(out.spikes, model.fan_outs,
                                          counts=out.spike_counts if counts else None).mean()
    loss.backward()
    return model, out, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("backend", [pytest.param("cpp", marks=pytest.mark.skipif(
    shutil.which("c++") is None, reason="no C++ compiler")), "torch"])
@pytest.mark.parametrize("name", list(SPECS))
def test_the_penalty_on_the_kernels_counts_has_the_same_gradient_bit_for_bit(name, backend, monkeypatch):
    """The kernels sum each neuron's spikes over time and take the counts' gradient into their backward pass: the
    penalty read from the counts gives exactly the weights' gradients of the penalty summed from the spikes."""
    _, out, from_counts = run(SPECS[name], monkeypatch, backend, counts=True)
    assert out.spike_counts is not None
    for counts, spikes in zip(out.spike_counts, out.spikes, strict=True):
        assert torch.equal(counts, spikes.sum(dim=0))
    _, _, from_spikes = run(SPECS[name], monkeypatch, backend, counts=False)
    assert all(torch.equal(a, b) for a, b in zip(from_counts, from_spikes, strict=True))
    _, norse, _ = run(SPECS[name], monkeypatch, "norse")
    assert norse.spike_counts is None  # Norse's cells step by step: the penalty sums the spikes


@pytest.mark.parametrize("backend", [pytest.param("cpp", marks=pytest.mark.skipif(
    shutil.which("c++") is None, reason="no C++ compiler")), "torch"])
@pytest.mark.parametrize("name", list(SPECS))
def test_kernels_equal_norse_in_spikes_and_gradients(name, backend, monkeypatch):
    spec = SPECS[name]
    fused_model, fused, fused_grads = run(spec, monkeypatch, backend)
    expected = {"cpp": "fused C++", "torch": "fused torch"}[backend]
    assert all(describe(block.neuron).startswith(expected) for block in fused_model.blocks)
    norse_model, norse, norse_grads = run(spec, monkeypatch, "norse")
    assert all(describe(block.neuron) == "norse per-step" for block in norse_model.blocks)
    hidden = norse_model.hidden_spikes(norse)
    assert all(s.sum() > 0 for s in hidden), "every hidden layer must fire, or the comparison proves little"
    for mine, theirs in zip(fused.spikes, norse.spikes, strict=True):
        assert torch.equal(mine, theirs)
    assert torch.equal(fused.voltages, norse.voltages) and torch.equal(fused.logits, norse.logits)
    for mine, theirs in zip(fused_grads, norse_grads, strict=True):
        assert theirs.abs().max() > 0
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-6 * float(theirs.abs().max()))


def test_a_surrogate_without_a_kernel_runs_norses_cell(monkeypatch):
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    spec = mlp_spec(input_shape=(4,), hidden=(3,), num_classes=2, time_steps=3,
                    neuron=NeuronSpec(surrogate="triangle"))
    model = build_model(spec)
    assert kernel_for(model.blocks[0].neuron) is None and describe(model.blocks[0].neuron) == "norse per-step"
    assert kernel_for(model.blocks[1].neuron) is not None  # the readout has no surrogate
    model(torch.ones(3, 2, 4)).logits.sum().backward()  # runs, with Norse's triangle surrogate


@pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler: the pure-torch kernels run (tested above)")
def test_the_compiled_kernel_is_built_by_the_setup_and_chosen_by_default(monkeypatch):
    """`make venv` builds the C++ kernels; with the default setting a CPU population runs them."""
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    assert compiled_extension() is not None
    assert backend("cpu") == "cpp"
    monkeypatch.setenv(KERNEL_ENV, "torch")
    assert backend("cpu") == "torch"


def test_a_gpu_tensor_never_gets_the_cpu_kernel(monkeypatch):
    """The kernel is chosen per device: on a GPU the Triton kernel where Triton imports, else pure torch; never the
    CPU's C++ one (no GPU here: the selection only)."""
    from neuromorph import neurons

    monkeypatch.delenv(KERNEL_ENV, raising=False)
    assert backend("cuda") == ("triton" if neurons.triton_kernels() is not None else "torch")
    assert backend("meta") == "torch"
    monkeypatch.setattr(neurons, "triton_kernels", lambda: None)  # a torch without Triton
    assert backend("cuda") == "torch"


def test_compiled_kernel_keeps_a_time_constant_input_unexpanded_and_equal(monkeypatch):
    """A direct input repeated over time (zero time stride) gives the same spikes as its materialised copy."""
    monkeypatch.delenv(KERNEL_ENV, raising=False)
    spec = SPECS["mlp"]
    model = build_model(spec)
    cell = model.blocks[0].neuron
    from neuromorph.neurons import lif_multistep
    current = torch.randn(1, 3, 24).mul_(3.0)
    expanded = current.expand(6, 3, 24)
    assert expanded.stride(0) == 0
    assert torch.equal(lif_multistep(expanded, cell), lif_multistep(expanded.contiguous(), cell))


def test_an_unknown_kernel_setting_is_one_clear_error(monkeypatch):
    from neuromorph.errors import NeuromorphError
    monkeypatch.setenv(KERNEL_ENV, "cuda-magic")
    with pytest.raises(NeuromorphError, match="expected one of auto, cpp, triton, torch, norse"):
        backend("cpu")


TRITON_CHECK = """
import os, sys, torch
from tests.neuromorph.test_neurons import SPECS, run

class Env:  # the monkeypatch that run() takes
    def setenv(self, name, value):
        os.environ[name] = value

for name, spec in SPECS.items():
    model, mine, mine_grads = run(spec, Env(), "triton", counts=True)
    assert "Triton" in __import__("neuromorph.neurons").neurons.describe(model.blocks[0].neuron)
    _, theirs, their_grads = run(spec, Env(), "norse")
    assert all(torch.equal(a, b) for a, b in zip(mine.spikes, theirs.spikes, strict=True)), name
    assert torch.equal(mine.voltages, theirs.voltages), name
    for a, b in zip(mine_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max()))
    if __import__("neuromorph.neurons").neurons.compiled_extension() is not None:
        _, cpp, cpp_grads = run(spec, Env(), "cpp", counts=True)
        assert all(torch.equal(a, b) for a, b in zip(mine_grads, cpp_grads, strict=True)), name
print("ok")
"""


def test_the_triton_kernels_equal_norse_in_triton_s_interpreter():
    """The GPU kernels (neuromorph/triton_neurons.py), run on CPU tensors by Triton's interpreter: Norse's spikes and
    voltages bit for bit, its gradients to float tolerance, and exactly the C++ kernels' gradients (the same
    operations in the same order). On a GPU they compile with fused multiply-adds off; that run is not measured
    here (no GPU)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run([sys.executable, "-c", TRITON_CHECK], capture_output=True, text=True, timeout=600,
                            cwd=Path(__file__).resolve().parents[2], env=env)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_an_explicit_kernel_setting_that_cannot_run_is_one_line(monkeypatch):
    from neuromorph.errors import NeuromorphError

    monkeypatch.setenv(KERNEL_ENV, "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(NeuromorphError, match="TRITON_INTERPRET=1"):
        backend("cpu")


@pytest.mark.parametrize("name", list(SPECS))
def test_the_compiled_kernels_count_idle_steps_as_norse_s_cells_step_by_step(name, monkeypatch):
    """The idle steps the energy report prices apart (no input, state unchanged), counted inside the C++ forward
    pass, equal the count from Norse's cells stepped one by one (models.norse_idle_steps without the kernels')."""
    import dataclasses

    from neuromorph.models import norse_idle_steps
    from neuromorph.neurons import compiled_extension

    if compiled_extension() is None:
        pytest.skip("no compiled kernels here")
    monkeypatch.setenv(KERNEL_ENV, "cpp")
    spec = SPECS[name]
    torch.manual_seed(0)
    model = build_model(spec)
    images = torch.rand((5, *spec.input_shape), generator=torch.Generator().manual_seed(1))
    images[images < 0.5] = 0  # silent pixels: idle neurons to find
    with torch.no_grad():
        x = encode(images, spec, torch.Generator().manual_seed(2))
        out = model(x)
        counted = norse_idle_steps(model, x, out)
        stepped = norse_idle_steps(model, x, dataclasses.replace(out, idle_steps=None))
    assert out.idle_steps is not None and sum(float(s.sum()) for s in stepped) > 0
    assert all(torch.equal(a, b) for a, b in zip(counted, stepped, strict=True))
