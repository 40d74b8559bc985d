"""Exact fan-out: how many synapses leave each spiking neuron.

The synaptic-operation count (``sum_i psi[i] * sum_t s[i, t]``, DESIGN.md section 2) needs, for every neuron, the
number of synapses its spike drives in the layer that consumes it:

- ``Dense(out)``: ``out`` synapses for every input.
- ``Conv(C_out, k, stride, padding)``: the number of (output position, kernel tap) pairs that read the input
  position, times ``C_out``. It factorizes over height and width, so a 1-D count per axis suffices. It depends on
  padding and stride: ``C_out * k * k`` is only right in the interior at stride 1.
- ``Pool(k)`` between the spikes and the next synaptic layer (non-overlapping windows): on a chip the pooling is
  folded into the next layer's weights, so each spike drives the synapses of the pooled position it falls into:
  ``psi[c, y, x] = psi_pooled[c, y // k, x // k]``, and 0 for rows/columns that the floor-mode pooling crops.
  The same holds for average and sum pooling (they differ only in the folded weight values).
- ``Flatten``: a reshape; fan-out moves with the neuron.

A spike source with several consumers would have the sum of their counts; the sequential models here have one.
These are pure functions of the layer descriptions; the training penalty and the cost model both call them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, Flatten, Layer, ModelSpec, Pool, unsupported_layer
from neuromorph.structure import SpikeSource, spike_sources

__all__ = ["FAN_OUT_RULES", "SpikeSource", "consumer_fan_out", "conv_fan_out_1d", "model_fan_outs", "spike_sources"]


def conv_fan_out_1d(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> list[int]:
    """For each of ``size`` input positions, the number of (output position, tap) pairs that read it."""
    out_size = (size + 2 * padding - kernel_size) // stride + 1
    counts = [0] * size
    for out in range(out_size):
        start = out * stride - padding
        for tap in range(kernel_size):
            position = start + tap
            if 0 <= position < size:
                counts[position] += 1
    return counts


def _dense_fan_out(layer: Dense, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.full(shape, float(layer.out_features), dtype=torch.float64)


def _conv_fan_out(layer: Conv, shape: tuple[int, ...]) -> torch.Tensor:
    _, height, width = shape
    rows = torch.tensor(conv_fan_out_1d(height, layer.kernel_size, layer.stride, layer.padding), dtype=torch.float64)
    cols = torch.tensor(conv_fan_out_1d(width, layer.kernel_size, layer.stride, layer.padding), dtype=torch.float64)
    per_channel = layer.out_channels * rows[:, None] * cols[None, :]
    return per_channel.expand(shape[0], height, width).clone()


def _flatten_pull_back(layer: Flatten, psi: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return psi.reshape(shape)


def _pool_pull_back(layer: Pool, psi: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    k = layer.kernel_size
    full = torch.zeros(shape, dtype=psi.dtype)
    covered = psi.repeat_interleave(k, dim=1).repeat_interleave(k, dim=2)
    full[:, : covered.shape[1], : covered.shape[2]] = covered
    return full


@dataclass(frozen=True)
class FanOutRule:
    """How one layer kind shapes fan-out. A synaptic layer *counts* the synapses each of its inputs drives
    (``count(layer, in_shape) -> psi``); a pass-through layer *pulls back* the fan-out after it onto its inputs
    (``pull_back(layer, psi_after, in_shape) -> psi``)."""

    count: Callable[[Layer, tuple[int, ...]], torch.Tensor] | None = None
    pull_back: Callable[[Layer, torch.Tensor, tuple[int, ...]], torch.Tensor] | None = None


# The fan-out backend's table: one row per layer class.
FAN_OUT_RULES: dict[type, FanOutRule] = {
    Dense: FanOutRule(count=_dense_fan_out),
    Conv: FanOutRule(count=_conv_fan_out),
    Pool: FanOutRule(pull_back=_pool_pull_back),
    Flatten: FanOutRule(pull_back=_flatten_pull_back),
}


def _rule(layer: Layer) -> FanOutRule:
    rule = FAN_OUT_RULES.get(type(layer))
    if rule is None:
        raise unsupported_layer(layer, "fan-out")
    return rule


def consumer_fan_out(chain: Sequence[Layer], in_shape: Sequence[int]) -> torch.Tensor:
    """Fan-out of every neuron of shape ``in_shape`` whose spikes pass through ``chain``.

    ``chain`` is the run of layers from the spike source up to and including the first synaptic layer
    (``Pool``/``Flatten`` then ``Dense``/``Conv``). Returns a float64 tensor of shape ``in_shape``.
    """
    consumer = chain[-1] if chain else None
    if consumer is None or not consumer.synaptic:
        raise NeuromorphError("a fan-out chain must end in a Dense or Conv layer")
    shapes = [tuple(int(s) for s in in_shape)]
    for layer in chain[:-1]:
        if _rule(layer).pull_back is None:
            raise NeuromorphError(f"{type(layer).__name__} cannot sit between spikes and their synapses")
        shapes.append(layer.output_shape(shapes[-1]))
    psi = _rule(consumer).count(consumer, shapes[-1])
    for layer, shape in zip(reversed(chain[:-1]), reversed(shapes[:-1]), strict=True):
        psi = _rule(layer).pull_back(layer, psi, shape)
    return psi


def model_fan_outs(spec: ModelSpec, include_input: bool | None = None) -> list[torch.Tensor]:
    """Exact fan-out tensor for each spike source of ``spec`` (same order as :func:`spike_sources`)."""
    return [consumer_fan_out(s.consumer.layers, s.shape) for s in spike_sources(spec, include_input)]
