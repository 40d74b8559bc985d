"""The penalty registry: values on hand-made spikes, gradients that reach the weights, lambda schedules."""

from __future__ import annotations

import pytest
import torch

from neuromorph.encoders import encode
from neuromorph.errors import NeuromorphError
from neuromorph.models import build_model, calibrate_firing
from neuromorph.penalties import PENALTIES, get_penalty, lambda_at


def test_values_on_hand_made_spikes():
    s = torch.tensor([[[1.0, 0.0, 1.0]], [[1.0, 1.0, 0.0]]])  # T=2, B=1, 3 neurons: 2, 1, 1 spikes
    psi = torch.tensor([3.0, 10.0, 0.0])
    assert get_penalty("none").fn([s], [psi], 1.0).tolist() == [0.0]
    assert get_penalty("spikes").fn([s], [psi], 1.0).tolist() == [4.0]
    assert get_penalty("synaptic").fn([s], [psi], 1.0).tolist() == [2 * 3 + 10 + 0]
    assert get_penalty("synaptic").fn([s], [psi], 2.0).tolist() == [(2 * 3 + 10) / 2]
    assert get_penalty("rate_l2").fn([s], [psi], 1.0).tolist() == [1.0 + 0.25 + 0.25]


@pytest.mark.parametrize("name", ["spikes", "synaptic", "rate_l2"])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_penalty_gradients_reach_every_synaptic_layer(name, power, tiny_cnn_spec):
    torch.manual_seed(0)
    model = build_model(tiny_cnn_spec)
    x = encode(torch.rand(8, 1, 12, 12), tiny_cnn_spec)
    calibrate_firing(model, x, 0.1)
    out = model(x)
    assert all(s.sum() > 0 for s in out.spikes)
    PENALTIES[name].fn(out.spikes, model.fan_outs, power).mean().backward()
    hidden = model.synapses[:-1]  # the readout's weights do not affect any spike
    for synapse in hidden:
        assert synapse.weight.grad is not None and synapse.weight.grad.abs().sum() > 0
    assert model.synapses[-1].weight.grad is None


def test_penalty_gradient_lowers_synops(tiny_mlp_spec):
    """One gradient step on the synaptic penalty alone lowers the synaptic-operation count."""
    from hw_models.opcount import synaptic_operations

    torch.manual_seed(0)
    model = build_model(tiny_mlp_spec)
    x = encode(torch.rand(64, 1, 8, 8) * 3, tiny_mlp_spec)
    before = synaptic_operations(model(x).spikes, model.fan_outs).sum()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        get_penalty("synaptic").fn(model(x).spikes, model.fan_outs, 1.0).mean().backward()
        optimizer.step()
    after = synaptic_operations(model(x).spikes, model.fan_outs).sum()
    assert after < 0.8 * before


def test_unknown_penalty_lists_supported():
    with pytest.raises(NeuromorphError, match="supported: none, spikes, synaptic, rate_l2"):
        get_penalty("l1")


def test_lambda_schedules():
    assert lambda_at(2.0, "constant", 0, 4) == 2.0
    assert [lambda_at(2.0, "ramp", e, 4) for e in range(6)] == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
    with pytest.raises(NeuromorphError):
        lambda_at(1.0, "cosine", 0, 1)
