"""What a forward pass produces, and how readout voltages become logits: the bottom of the model's layering.

Every arithmetic (Norse float in :mod:`neuromorph.models`, Loihi fixed point in :mod:`export.loihi_exact`) returns
an :class:`SNNOutput` and reduces its readout with :func:`reduce_readout`; this module imports nothing else of the
project.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class SNNOutput:
    """What one forward pass produces.

    ``logits``: ``[B, classes]`` (the readout voltage reduced over time); ``voltages``: readout voltage
    ``[T, B, classes]``; ``spikes``: one ``[T, B, *shape]`` tensor per spike source of the spec, in the order of
    :func:`neuromorph.structure.spike_sources` (the encoded input first when it is spike-encoded);
    ``spike_counts``: the same spikes summed over time, ``[B, *shape]`` each, where the neuron kernels computed them
    (None otherwise): a penalty that reads them gets its gradient inside the kernels (:mod:`neuromorph.neurons`).
    """

    logits: torch.Tensor
    voltages: torch.Tensor
    spikes: list[torch.Tensor]
    spike_counts: list[torch.Tensor] | None = None
    idle_steps: list[torch.Tensor] | None = None  # per block (readout last) [B, *shape]: steps with no input and
    # the state unchanged, where the kernels counted them (hw_models.activity prices them as idle updates)


# readout reduction (ReadoutSpec.reduce) -> voltages [T, B, C] -> logits [B, C]
READOUT_REDUCERS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "max": lambda voltages: voltages.max(dim=0).values,
    "mean": lambda voltages: voltages.mean(dim=0),
    "last": lambda voltages: voltages[-1],
}


def reduce_readout(voltages: torch.Tensor, how: str) -> torch.Tensor:
    """Logits from readout voltages ``[T, B, C]``: max, mean or last over time."""
    return READOUT_REDUCERS[how](voltages)
