"""Plots people would rather look at than read: training curves and spike rasters (PNG, written atomically).

matplotlib is imported when a plot is made, with the non-interactive Agg backend.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from neuromorph.io import atomic_write


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Render ``figure`` to PNG and write it atomically; closes the figure."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(figure)
    return atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def plot_training_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """Test accuracy and synaptic operations per sample against epoch."""
    plt = pyplot()
    epochs = [r["epoch"] for r in history]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(epochs, [100 * r["test_accuracy"] for r in history], "o-", label="test")
    left.plot(epochs, [100 * r["train_accuracy"] for r in history], "s--", label="train", alpha=0.7)
    left.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    left.legend()
    right.plot(epochs, [r["synops_per_sample"] for r in history], "o-", color="tab:red")
    right.set(xlabel="epoch", ylabel="SynOps per sample", title="synaptic operations (test set)")
    right.set_ylim(bottom=0)
    from matplotlib.ticker import MaxNLocator

    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if title:
        figure.suptitle(title, y=1.03)
    return save_figure(figure, path)


def plot_spike_raster(
    spikes: Sequence[torch.Tensor],
    names: Sequence[str],
    path: str | os.PathLike,
    sample: int = 0,
    max_neurons: int = 400,
    title: str = "",
) -> Path:
    """Raster of one sample's spikes, one panel per layer (``spikes[l]`` is ``[T, B, *shape]``).

    Layers wider than ``max_neurons`` show their first ``max_neurons`` neurons (the panel title says so).
    """
    plt = pyplot()
    figure, axes = plt.subplots(len(spikes), 1, figsize=(7, 1.2 + 1.6 * len(spikes)), squeeze=False, sharex=True)
    for axis, s, name in zip(axes[:, 0], spikes, names, strict=True):
        trains = s[:, sample].reshape(s.shape[0], -1).detach().cpu()
        shown = trains[:, :max_neurons]
        t, n = torch.nonzero(shown, as_tuple=True)
        axis.scatter(t.numpy(), n.numpy(), s=4, marker="|", color="black")
        axis.set_ylim(-0.5, shown.shape[1] - 0.5)
        axis.set_xlim(-0.5, trains.shape[0] - 0.5)
        total = int(trains.sum())
        note = f" (first {max_neurons} of {trains.shape[1]})" if trains.shape[1] > max_neurons else ""
        axis.set_title(f"{name}: {total} spikes{note}", fontsize=9, loc="left")
        axis.set_ylabel("neuron")
    axes[-1, 0].set_xlabel("time step")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)
