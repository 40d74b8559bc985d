"""Synaptic-operation counting: p * Omega_syn equals SynOps for binary spikes, and SynOps equals the number of
synaptic events that actually happen when the consumer layers run with unit weights."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from hw_models.opcount import spike_counts, synaptic_operations, weighted_spike_sums
from neuromorph.encoders import encode
from neuromorph.models import build_model
from neuromorph.penalties import synaptic_penalty
from neuromorph.spec import Conv, Dense, Flatten, Pool


def _random_spikes(model, batch=3, rate=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    steps = model.spec.time_steps
    return [(torch.rand((steps, batch, *s.shape), generator=g) < rate).float() for s in model.sources]


def events_by_unit_weights(spikes: torch.Tensor, chain, in_shape) -> torch.Tensor:
    """Run the consumer chain with all weights 1 and sum-pooling: the output sum counts (spike, synapse) events."""
    steps, batch = spikes.shape[:2]
    h = spikes.reshape(steps * batch, *in_shape).double()
    for layer in chain:
        if isinstance(layer, Pool):
            h = F.avg_pool2d(h, layer.kernel_size) * layer.kernel_size**2
        elif isinstance(layer, Flatten):
            h = h.flatten(1)
        elif isinstance(layer, Dense):
            h = h @ torch.ones((h.shape[1], layer.out_features), dtype=h.dtype)
        elif isinstance(layer, Conv):
            w = torch.ones((layer.out_channels, h.shape[1], layer.kernel_size, layer.kernel_size), dtype=h.dtype)
            h = F.conv2d(h, w, stride=layer.stride, padding=layer.padding)
    return h.reshape(steps, batch, -1).sum(dim=(0, 2))


@pytest.mark.parametrize("fixture", ["tiny_mlp_spec", "tiny_cnn_spec", "strided_cnn_spec"])
@pytest.mark.parametrize("power", [1.0, 2.0, 3.0])
def test_p_times_penalty_equals_synops_for_binary_spikes(fixture, power, request):
    model = build_model(request.getfixturevalue(fixture))
    spikes = _random_spikes(model)
    synops = synaptic_operations(spikes, model.fan_outs).sum(dim=0)
    omega = synaptic_penalty(spikes, model.fan_outs, power)
    assert torch.equal(power * omega, synops)


@pytest.mark.parametrize("fixture", ["tiny_mlp_spec", "tiny_cnn_spec", "strided_cnn_spec"])
def test_synops_equal_counted_synaptic_events(fixture, request):
    spec = request.getfixturevalue(fixture)
    model = build_model(spec)
    spikes = _random_spikes(model, rate=0.4, seed=3)
    per_layer = synaptic_operations(spikes, model.fan_outs)
    for row, s, source in zip(per_layer, spikes, model.sources, strict=True):
        chain = spec.layers[source.chain[0] : source.chain[1]]
        assert torch.equal(row.double(), events_by_unit_weights(s, chain, source.shape))


def test_model_spikes_give_exact_penalty_identity(tiny_cnn_spec):
    """The identity holds on spikes the network really produced (binary by construction)."""
    torch.manual_seed(0)
    model = build_model(tiny_cnn_spec)
    out = model(encode(torch.rand(5, 1, 12, 12) * 3, tiny_cnn_spec))
    assert all(torch.all((s == 0) | (s == 1)) for s in out.spikes)
    assert sum(s.sum() for s in out.spikes) > 0
    synops = synaptic_operations(out.spikes, model.fan_outs).sum(dim=0)
    assert torch.equal(2.0 * synaptic_penalty(out.spikes, model.fan_outs, 2.0), synops)


def test_spike_counts_and_weights():
    s = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]])  # T=2, B=1, 2 neurons
    assert spike_counts([s]).tolist() == [[3.0]]
    assert weighted_spike_sums([s], [torch.tensor([2.0, 5.0])]).tolist() == [[9.0]]
    with pytest.raises(ValueError):
        weighted_spike_sums([s], [])
