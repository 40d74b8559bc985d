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

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from neuromorph.errors import NeuromorphError
from neuromorph.spec import SYNAPTIC_TYPES, Dense, Flatten, Layer, ModelSpec, Pool


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


def consumer_fan_out(chain: Sequence[Layer], in_shape: Sequence[int]) -> torch.Tensor:
    """Fan-out of every neuron of shape ``in_shape`` whose spikes pass through ``chain``.

    ``chain`` is the run of layers from the spike source up to and including the first synaptic layer
    (``Pool``/``Flatten`` then ``Dense``/``Conv``). Returns a float64 tensor of shape ``in_shape``.
    """
    shapes = [tuple(int(s) for s in in_shape)]
    for layer in chain[:-1]:
        shapes.append(_passthrough_shape(layer, shapes[-1]))
    consumer = chain[-1] if chain else None
    if not isinstance(consumer, SYNAPTIC_TYPES):
        raise NeuromorphError("a fan-out chain must end in a Dense or Conv layer")
    psi = _synaptic_fan_out(consumer, shapes[-1])
    for layer, shape in zip(reversed(chain[:-1]), reversed(shapes[:-1]), strict=True):
        psi = _pull_back(layer, psi, shape)
    return psi


def _synaptic_fan_out(layer: Layer, shape: tuple[int, ...]) -> torch.Tensor:
    if isinstance(layer, Dense):
        return torch.full(shape, float(layer.out_features), dtype=torch.float64)
    _, height, width = shape
    rows = torch.tensor(conv_fan_out_1d(height, layer.kernel_size, layer.stride, layer.padding), dtype=torch.float64)
    cols = torch.tensor(conv_fan_out_1d(width, layer.kernel_size, layer.stride, layer.padding), dtype=torch.float64)
    per_channel = layer.out_channels * rows[:, None] * cols[None, :]
    return per_channel.expand(shape[0], height, width).clone()


def _passthrough_shape(layer: Layer, shape: tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(layer, Flatten):
        return (int(torch.Size(shape).numel()),)
    if isinstance(layer, Pool):
        channels, height, width = shape
        return (channels, height // layer.kernel_size, width // layer.kernel_size)
    raise NeuromorphError(f"{type(layer).__name__} cannot sit between spikes and their synapses")


def _pull_back(layer: Layer, psi: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Map the fan-out after a pass-through layer back onto that layer's input positions."""
    if isinstance(layer, Flatten):
        return psi.reshape(shape)
    k = layer.kernel_size
    channels, height, width = shape
    full = torch.zeros(shape, dtype=psi.dtype)
    covered = psi.repeat_interleave(k, dim=1).repeat_interleave(k, dim=2)
    full[:, : covered.shape[1], : covered.shape[2]] = covered
    return full


@dataclass(frozen=True)
class SpikeSource:
    """A population whose binary spikes drive synapses: the encoded input (when spiking) or a hidden LIF layer.

    ``layer_index`` is the index in ``spec.layers`` of the synaptic layer that produced it (-1 for the input);
    ``chain`` is the slice of ``spec.layers`` its spikes pass through, ending in the consuming synaptic layer.
    """

    name: str
    layer_index: int
    shape: tuple[int, ...]
    chain: tuple[int, int]


def spike_sources(spec: ModelSpec, include_input: bool | None = None) -> list[SpikeSource]:
    """The spiking populations of ``spec`` in order. The input is included when it is spike-encoded."""
    if include_input is None:
        include_input = spec.encoder.kind == "poisson"
    shapes = spec.layer_shapes()
    synaptic = [i for i, layer in enumerate(spec.layers) if isinstance(layer, SYNAPTIC_TYPES)]
    sources = []
    if include_input:
        sources.append(SpikeSource("input", -1, spec.input_shape, (0, synaptic[0] + 1)))
    for number, (producer, consumer) in enumerate(zip(synaptic[:-1], synaptic[1:], strict=True)):
        sources.append(SpikeSource(f"lif{number + 1}", producer, shapes[producer], (producer + 1, consumer + 1)))
    return sources


def model_fan_outs(spec: ModelSpec, include_input: bool | None = None) -> list[torch.Tensor]:
    """Exact fan-out tensor for each spike source of ``spec`` (same order as :func:`spike_sources`)."""
    return [
        consumer_fan_out(spec.layers[s.chain[0] : s.chain[1]], s.shape)
        for s in spike_sources(spec, include_input)
    ]
