"""Counting synaptic operations from recorded spikes.

``SynOps = sum_l sum_i psi[l, i] * sum_t s[l, i, t]`` (DESIGN.md section 2). The generalization with an exponent,
``sum_l sum_i psi[l, i] * sum_t s[l, i, t] ** p``, is what the spiking synaptic penalty differentiates; for binary
spikes it equals SynOps for every p. One function computes both, so the penalty and the energy report cannot drift.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def weighted_spike_sums(
    spikes: Sequence[torch.Tensor], weights: Sequence[torch.Tensor], power: float = 1.0,
    counts: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """``sum_i w[l, i] * sum_t s[l, i, t] ** power`` for each layer l and sample b: a ``[L, B]`` tensor.

    ``spikes[l]`` is time-major ``[T, B, *shape_l]``; ``weights[l]`` has shape ``shape_l`` (broadcastable).
    Differentiable in the spikes. ``counts`` (``SNNOutput.spike_counts``: ``sum_t s`` as the neuron kernels
    computed it, the same values and gradient) is used for ``power`` 1, instead of summing the spikes again.
    """
    if len(spikes) != len(weights):
        raise ValueError(f"{len(spikes)} spike tensors but {len(weights)} weight tensors")
    sums = counts if counts is not None and power == 1 else [None] * len(spikes)
    rows = []
    for s, w, summed in zip(spikes, weights, sums, strict=True):
        powered = s if power == 1 else s.pow(power)
        per_neuron = powered.sum(dim=0) if summed is None else summed  # [B, *shape]
        weighted = per_neuron * w.to(device=per_neuron.device, dtype=per_neuron.dtype)
        rows.append(weighted.flatten(start_dim=1).sum(dim=1))
    return torch.stack(rows)


def synaptic_operations(spikes: Sequence[torch.Tensor], fan_outs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Synaptic operations per layer and sample (``[L, B]``) for binary spikes and exact fan-outs."""
    return weighted_spike_sums(spikes, fan_outs, power=1.0)


def spike_counts(spikes: Sequence[torch.Tensor]) -> torch.Tensor:
    """Number of spikes per layer and sample (``[L, B]``)."""
    return torch.stack([s.sum(dim=0).flatten(start_dim=1).sum(dim=1) for s in spikes])
