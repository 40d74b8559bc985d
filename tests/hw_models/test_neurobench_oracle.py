"""Synaptic operations against an independent counter: NeuroBench 2.3.0 ``SynapticOperations``.

NeuroBench re-runs every Linear/Conv2d on a binarized copy of its recorded input with binarized weights (bias off) and
sums the output: for binary inputs that is the number of (spike, synapse) events, reported as ``Effective_ACs`` per
sample; for a non-binary input it counts non-zero inputs times synapses as ``Effective_MACs``. Installed for tests
only (requirements/test-nodeps.txt, ``--no-deps``, beside snntorch 1.0.0).
"""

from __future__ import annotations

import pytest
import torch

from hw_models.activity import count_activity
from neuromorph.encoders import encode
from neuromorph.models import build_model, calibrate_firing
from neuromorph.spec import Conv, Dense, EncoderSpec, Flatten, ModelSpec

pytest.importorskip("snntorch")
synaptic_operations = pytest.importorskip("neurobench.metrics.workload.synaptic_operations")
layer_hooks = pytest.importorskip("neurobench.hooks.layer")


class _Hooked:
    """The part of a NeuroBenchModel that SynapticOperations reads: forward pre-hooks on the synaptic layers."""

    def __init__(self, model):
        self.connection_hooks = [layer_hooks.LayerHook(synapse) for synapse in model.synapses]

    def close(self):
        for hook in self.connection_hooks:
            hook.close()


def _spec(encoder: str) -> ModelSpec:
    # binary inputs everywhere: no pooling (an average of spikes is not binary); padding and stride 2 included
    layers = (Conv(4, 3, stride=2, padding=1), Conv(5, 5, stride=1, padding=2), Conv(3, 3, stride=2, padding=0),
              Flatten(), Dense(6), Dense(3))
    return ModelSpec(input_shape=(2, 13, 11), layers=layers, num_classes=3, time_steps=5,
                     encoder=EncoderSpec(kind=encoder, gain=3.0, max_rate_hz=400.0))


def _active_model(spec: ModelSpec, x: torch.Tensor, seed: int = 0):
    torch.manual_seed(seed)
    model = build_model(spec)
    calibrate_firing(model, x, target_rate=0.15)  # every hidden layer spikes, but not always
    return model.eval()


@pytest.mark.parametrize("encoder", ["poisson", "direct"])
def test_synops_equal_neurobench(encoder):
    spec = _spec(encoder)
    images = torch.rand((6, *spec.input_shape), generator=torch.Generator().manual_seed(1))
    images[images < 0.3] = 0  # zeros in the analog input, so effective MACs differ from dense ones
    x = encode(images, spec, torch.Generator().manual_seed(2))
    model = _active_model(spec, x)

    hooked = _Hooked(model)
    metric = synaptic_operations.SynapticOperations()
    with torch.no_grad():
        out = model(x)
    result = metric(hooked, out.logits, (images, None))
    hooked.close()

    counts = count_activity(model, [(x, None)])
    rates = [float(s.mean()) for s in out.spikes]
    assert all(0.02 < r < 0.9 for r in rates), rates  # a discriminating test: every layer partly active
    ours_synops = sum(p.synops for p in counts.populations)
    ours_macs = sum(p.macs for p in counts.populations)
    assert result["Effective_ACs"] == ours_synops
    assert result["Effective_MACs"] == ours_macs
    if encoder == "direct":
        assert ours_macs > 0
    else:
        assert ours_macs == 0


def test_neurobench_agrees_per_layer_on_strided_padded_conv():
    """One layer at a time: a Conv2d with stride 2 and padding 1, and a Linear, on random binary spikes."""
    g = torch.Generator().manual_seed(3)
    from hw_models.fanout import consumer_fan_out
    from hw_models.opcount import synaptic_operations as ours

    for layer, module, shape in [
        (Conv(5, 3, stride=2, padding=1), torch.nn.Conv2d(3, 5, 3, stride=2, padding=1), (3, 10, 9)),
        (Conv(2, 4, stride=3, padding=2), torch.nn.Conv2d(3, 2, 4, stride=3, padding=2), (3, 11, 12)),
        (Dense(7), torch.nn.Linear(20, 7), (20,)),
    ]:
        spikes = (torch.rand((4, 3, *shape), generator=g) < 0.3).float()  # [T, B, ...]
        hook = layer_hooks.LayerHook(module)
        holder = type("Holder", (), {"connection_hooks": [hook]})()
        with torch.no_grad():
            module(spikes.flatten(0, 1))
        metric = synaptic_operations.SynapticOperations()
        result = metric(holder, None, (torch.zeros(3), None))  # per sample: divided by the batch of 3
        hook.close()
        psi = consumer_fan_out([layer], shape)
        assert result["Effective_ACs"] == pytest.approx(float(ours([spikes], [psi]).sum()) / 3, abs=1e-9)
        assert result["Effective_MACs"] == 0
