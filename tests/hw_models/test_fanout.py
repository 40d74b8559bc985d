"""Exact fan-out, checked against brute-force enumeration and against an autograd oracle."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn import functional as F

from hw_models.fanout import consumer_fan_out, conv_fan_out_1d, model_fan_outs, spike_sources
from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, Flatten, Pool


def brute_force_conv_fan_out(shape, out_channels, k, stride, padding) -> torch.Tensor:
    """Enumerate every (output channel, output position, kernel tap) and count which input it reads."""
    c_in, h, w = shape
    out_h = (h + 2 * padding - k) // stride + 1
    out_w = (w + 2 * padding - k) // stride + 1
    counts = torch.zeros(shape, dtype=torch.float64)
    for _, oy, ox, ci, ky, kx in itertools.product(range(out_channels), range(out_h), range(out_w), range(c_in),
                                                   range(k), range(k)):
        y, x = oy * stride - padding + ky, ox * stride - padding + kx
        if 0 <= y < h and 0 <= x < w:
            counts[ci, y, x] += 1
    return counts


@pytest.mark.parametrize("padding", [0, 1])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel", [3, 5])
def test_conv_fan_out_equals_brute_force(kernel, stride, padding):
    shape = (2, 11, 9)
    got = consumer_fan_out([Conv(3, kernel, stride, padding)], shape)
    expected = brute_force_conv_fan_out(shape, 3, kernel, stride, padding)
    assert torch.equal(got, expected)


def test_naive_fan_out_is_wrong_at_stride_two():
    """C_out*k*k overestimates stride-2 fan-out about fourfold: the reason fan-out must be exact."""
    psi = consumer_fan_out([Conv(8, 3, stride=2, padding=1)], (1, 16, 16))
    assert psi.mean() < 8 * 9 / 3.5


def test_dense_fan_out_is_out_features():
    psi = consumer_fan_out([Dense(7)], (5,))
    assert torch.equal(psi, torch.full((5,), 7.0, dtype=torch.float64))


def test_flatten_then_dense():
    psi = consumer_fan_out([Flatten(), Dense(4)], (2, 3, 3))
    assert psi.shape == (2, 3, 3) and torch.all(psi == 4)


@pytest.mark.parametrize("mode", ["avg", "sum"])
def test_pool_fan_out_is_folded_consumer_count(mode):
    """A spike's fan-out through non-overlapping pooling equals the synapses of the folded conv.

    Oracle: the gradient of sum(conv_ones(sum_pool(x))) with respect to x counts, for each input neuron, the
    (output, tap) pairs that its pooled value feeds: the synapses it drives when the pool is folded into the conv.
    Cropped border rows/columns (13 = 2*6 + 1) drive nothing.
    """
    shape = (3, 13, 13)
    chain = [Pool(2, mode), Conv(4, 3, stride=2, padding=1)]
    x = torch.ones((1, *shape), dtype=torch.float64, requires_grad=True)
    pooled = F.avg_pool2d(x, 2) * 4
    F.conv2d(pooled, torch.ones((4, 3, 3, 3), dtype=torch.float64), stride=2, padding=1).sum().backward()
    got = consumer_fan_out(chain, shape)
    assert torch.equal(got, x.grad[0])
    assert torch.all(got[:, 12, :] == 0) and torch.all(got[:, :, 12] == 0)


def test_pool_then_flatten_then_dense():
    got = consumer_fan_out([Pool(2), Flatten(), Dense(6)], (2, 5, 4))
    expected = torch.full((2, 5, 4), 6.0, dtype=torch.float64)
    expected[:, 4, :] = 0
    assert torch.equal(got, expected)


def test_one_dimensional_counts():
    assert conv_fan_out_1d(5, 3, 1, 0) == [1, 2, 3, 2, 1]
    assert conv_fan_out_1d(5, 3, 1, 1) == [2, 3, 3, 3, 2]
    assert conv_fan_out_1d(6, 3, 2, 1) == [1, 2, 1, 2, 1, 1]


def test_chain_must_end_in_synapses():
    with pytest.raises(NeuromorphError):
        consumer_fan_out([Pool(2)], (1, 4, 4))


def test_model_sources(strided_cnn_spec, tiny_mlp_spec):
    names = [s.name for s in spike_sources(strided_cnn_spec)]
    assert names == ["lif1", "lif2", "lif3"]
    psi = model_fan_outs(strided_cnn_spec)
    assert [tuple(p.shape) for p in psi] == [(3, 17, 15), (5, 3, 3), (4, 2, 2)]
    assert torch.all(psi[0][:, 16, :] == 0) and torch.all(psi[0][:, :, 14] == 0)  # cropped by the pooling
    assert torch.all(psi[2] == 3)  # last hidden layer feeds Dense(3) through Flatten
    assert [s.name for s in spike_sources(tiny_mlp_spec, include_input=True)] == ["input", "lif1", "lif2"]
