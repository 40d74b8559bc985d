"""The parity report: does the network behave on Lava as it does in this project?

For the same encoded samples, the model (Norse float, or Loihi-exact fixed point when ``spec.fixed_point`` is set)
and a Lava run (:mod:`export.lava_sim`, its delays undone) are compared per hidden layer: the share of spike bins
(neuron x step x sample) that agree, and spike counts and their ratio; then the classification accuracy of both on
the labels, how many predictions agree, and the energy per inference re-estimated from the spikes Lava produced next
to the estimate from the model's own spikes, with the same cost model (:mod:`hw_models.activity`,
:func:`hw_models.energy.estimate_energy`).

``simulate_checkpoint(path, dataset, samples, precision)`` does it all in one call; ``report.format()`` is the
terminal table, ``report.to_dict()`` the JSON, :func:`plot_parity_raster` the PNG.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.lava_sim import LavaRun

DEFAULT_PROFILES = ("loihi1", "loihi1-calibrated")
JSON_NAME = "parity.json"
RASTER_NAME = "parity_raster.png"


@dataclass
class LayerParity:
    """One hidden layer: spike bins that agree, and spike counts (over all samples and steps)."""

    name: str
    neurons: int
    bins: int
    agree: int
    model_spikes: int
    lava_spikes: int

    @property
    def agreement(self) -> float:
        return self.agree / self.bins if self.bins else 1.0

    @property
    def count_ratio(self) -> float:
        """Lava's spikes over the model's (1 is the same count)."""
        return self.lava_spikes / self.model_spikes if self.model_spikes else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.name, "neurons": self.neurons, "bins": self.bins, "agree": self.agree,
                "agreement": self.agreement, "model_spikes": self.model_spikes, "lava_spikes": self.lava_spikes,
                "count_ratio": self.count_ratio}


@dataclass
class ParityReport:
    """The model against its Lava run on the same samples."""

    model_name: str
    dataset: str
    precision: str
    arithmetic: str  # the model's: "norse float" or "loihi fixed point (Loihi-exact)"
    samples: int
    time_steps: int
    layers: list[LayerParity]
    model_accuracy: float
    lava_accuracy: float
    prediction_agreement: float
    readout_max_abs_error_volts: float
    readout_saturated: int
    energy: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    differing_samples: list[int] = field(default_factory=list)  # samples with at least one spike bin that differs

    @property
    def spike_agreement(self) -> float:
        bins = sum(layer.bins for layer in self.layers)
        return sum(layer.agree for layer in self.layers) / bins if bins else 1.0

    @property
    def identical(self) -> bool:
        """Every spike bin and every prediction the same."""
        return all(layer.agree == layer.bins for layer in self.layers) and self.prediction_agreement == 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "neuromorph.parity", "format_version": 1, "model": self.model_name,
            "checkpoint": self.checkpoint, "dataset": self.dataset, "precision": self.precision,
            "model_arithmetic": self.arithmetic, "samples": self.samples, "time_steps": self.time_steps,
            "layers": [layer.to_dict() for layer in self.layers], "spike_agreement": self.spike_agreement,
            "identical": self.identical, "model_accuracy": self.model_accuracy, "lava_accuracy": self.lava_accuracy,
            "accuracy_change": self.lava_accuracy - self.model_accuracy,
            "prediction_agreement": self.prediction_agreement,
            "readout_max_abs_error_volts": self.readout_max_abs_error_volts,
            "readout_saturated": self.readout_saturated, "differing_samples": self.differing_samples,
            "energy": self.energy, "units": {"energy": "J per inference", "timing": "s"}, "timing": self.timing,
        }

    def format(self) -> str:
        from neuromorph.report import format_table

        rows = [[layer.name, layer.neurons, layer.bins, f"{layer.agreement:.4%}", layer.bins - layer.agree,
                 layer.model_spikes, layer.lava_spikes, f"{layer.count_ratio:.4f}"] for layer in self.layers]
        text = format_table(["layer", "neurons", "spike bins", "agree", "differ", "model spikes", "Lava spikes",
                             "Lava/model"], rows,
                            title=f"{self.model_name} ({self.arithmetic}) vs Lava {self.precision} point, "
                                  f"{self.samples} {self.dataset} samples x {self.time_steps} steps "
                                  "(Lava's per-layer delay undone)")
        text += (f"\nall hidden layers: {self.spike_agreement:.4%} of spike bins agree; accuracy model "
                 f"{self.model_accuracy:.2%}, Lava {self.lava_accuracy:.2%} "
                 f"({100 * (self.lava_accuracy - self.model_accuracy):+.2f} points); same prediction on "
                 f"{self.prediction_agreement:.2%} of samples; readout voltage max |difference| "
                 f"{self.readout_max_abs_error_volts:.3g} V; readout neurons that reached threshold "
                 f"{self.readout_saturated}")
        if self.energy:
            rows = [[e["profile"], e["model_total_j"], e["lava_total_j"], e["model_dynamic_j"], e["lava_dynamic_j"],
                     e["model_synops"], e["lava_synops"]] for e in self.energy]
            text += "\n" + format_table(["profile", "model J", "Lava J", "model dyn J", "Lava dyn J",
                                         "model SynOps", "Lava SynOps"], rows,
                                        title="\nenergy per inference from each side's spikes (same cost model)")
        if self.timing:
            t = self.timing
            text += (f"\nLava: {t['samples']} samples in {t['compile_s'] + t['run_s']:.1f} s (compile and start "
                     f"{t['compile_s']:.1f} s, run {t['run_s']:.1f} s; {t['copies']} copies side by side, "
                     f"{t['lava_steps']} Lava steps): {t['samples_per_second']:.2f} samples/s")
        return text


def _activity(model, x: torch.Tensor, hidden: Sequence[torch.Tensor], logits: torch.Tensor, labels):
    from hw_models.activity import ActivityRecorder
    from neuromorph.models import SNNOutput

    recorder = ActivityRecorder(model)
    spikes = ([x] if model.records_input else []) + list(hidden)
    recorder.update(x, SNNOutput(logits=logits, voltages=logits[None], spikes=spikes), labels)
    return recorder.result()


def _energy(model, model_counts, lava_counts, profiles: Sequence[str]) -> list[dict[str, Any]]:
    from hw_models.energy import estimate_energy
    from hw_models.energy_report import resolve_profiles
    from hw_models.mapping import map_cores
    from hw_models.profiles import CORE_LIMITS

    out = []
    for profile in resolve_profiles(list(profiles)):
        mapping = map_cores(model.spec, CORE_LIMITS[profile.cores]) if profile.cores else None
        mine = estimate_energy(model.spec, model_counts, profile, mapping)
        lava = estimate_energy(model.spec, lava_counts, profile, mapping)
        out.append({
            "profile": profile.name, "model_total_j": mine.total_j, "lava_total_j": lava.total_j,
            "model_dynamic_j": mine.dynamic_j, "lava_dynamic_j": lava.dynamic_j, "static_j": lava.static_j,
            "model_synops": sum(p.synops for p in model_counts.populations),
            "lava_synops": sum(p.synops for p in lava_counts.populations),
            "not_priced": lava.not_priced,
        })
    return out


def parity_report(model, x: torch.Tensor, labels: torch.Tensor | None, run: LavaRun, dataset: str = "",
                  profiles: Sequence[str] | None = DEFAULT_PROFILES) -> ParityReport:
    """Compare ``model`` on encoded samples ``x`` ``[T, N, ...]`` with its Lava ``run`` on the same samples.

    ``labels`` (``[N]``) give the accuracies (NaN without them); ``profiles`` the device profiles the energy is priced
    on (None or empty: no energy).
    """
    from neuromorph.outputs import reduce_readout
    from neuromorph.structure import hidden_blocks

    model.eval()
    with torch.no_grad():
        out = model(x)
    hidden = model.hidden_spikes(out)
    names = [block.name for block in hidden_blocks(model.spec)]
    layers = []
    differs = np.zeros(int(x.shape[1]), dtype=bool)
    for name, mine, theirs in zip(names, hidden, run.spikes, strict=True):
        reference = mine.detach().cpu().numpy() > 0
        differs |= (reference != theirs).reshape(reference.shape[0], reference.shape[1], -1).any(axis=(0, 2))
        layers.append(LayerParity(name=name, neurons=int(np.prod(reference.shape[2:])), bins=int(reference.size),
                                  agree=int((reference == theirs).sum()), model_spikes=int(reference.sum()),
                                  lava_spikes=int(theirs.sum())))
    volts = torch.from_numpy(run.readout_volts)
    lava_logits = reduce_readout(volts, model.spec.readout.reduce)
    model_pred, lava_pred = out.logits.argmax(1).cpu(), lava_logits.argmax(1)
    nan = float("nan")
    model_acc = float((model_pred == labels).double().mean()) if labels is not None else nan
    lava_acc = float((lava_pred == labels).double().mean()) if labels is not None else nan
    energy = []
    if profiles:
        lava_hidden = [torch.from_numpy(s.astype(np.float32)) for s in run.spikes]
        energy = _energy(model, _activity(model, x, hidden, out.logits, labels),
                         _activity(model, x, lava_hidden, lava_logits, labels), profiles)
    arithmetic = "loihi fixed point (Loihi-exact)" if model.spec.fixed_point is not None else "norse float"
    return ParityReport(
        model_name=model.spec.name, dataset=dataset, precision=run.precision, arithmetic=arithmetic,
        samples=int(x.shape[1]), time_steps=int(x.shape[0]), layers=layers, model_accuracy=model_acc,
        lava_accuracy=lava_acc, prediction_agreement=float((model_pred == lava_pred).double().mean()),
        readout_max_abs_error_volts=float((volts - out.voltages.detach().double().cpu()).abs().max()),
        readout_saturated=int(run.readout_spikes.sum()), energy=energy, timing=run.timing(),
        differing_samples=np.flatnonzero(differs).tolist())


def plot_parity_raster(model, x: torch.Tensor, run: LavaRun, path: str | os.PathLike, sample: int = 0,
                       max_neurons: int = 200, title: str = "") -> Path:
    """Spike raster of one sample, model against Lava: one panel per hidden layer (model: black ticks, Lava: red
    dots, bins that differ circled) and the readout voltages (model solid, Lava dashed)."""
    from neuromorph.plots import pyplot, save_figure
    from neuromorph.structure import hidden_blocks

    plt = pyplot()
    with torch.no_grad():
        out = model(x[:, sample:sample + 1])
    hidden = model.hidden_spikes(out)
    names = [block.name for block in hidden_blocks(model.spec)]
    figure, axes = plt.subplots(len(hidden) + 1, 1, figsize=(8, 1.6 + 1.8 * (len(hidden) + 1)), squeeze=False,
                                sharex=True)
    for axis, name, mine, theirs in zip(axes[:-1, 0], names, hidden, run.spikes, strict=True):
        a = (mine[:, 0].reshape(mine.shape[0], -1).detach().cpu().numpy() > 0)[:, :max_neurons]
        b = theirs[:, sample].reshape(theirs.shape[0], -1)[:, :max_neurons]
        t, n = np.nonzero(a)
        axis.scatter(t, n, s=30, marker="|", color="black", label="model")
        t, n = np.nonzero(b)
        axis.scatter(t, n, s=5, marker="o", color="tab:red", label="Lava")
        t, n = np.nonzero(a != b)
        if len(t):
            axis.scatter(t, n, s=60, facecolors="none", edgecolors="tab:blue", label="differ")
        width = theirs.reshape(theirs.shape[0], theirs.shape[1], -1).shape[2]
        note = f" (first {max_neurons} of {width})" if width > max_neurons else ""
        axis.set_title(f"{name}{note}: model {int(a.sum())}, Lava {int(b.sum())} spikes, {int((a != b).sum())} "
                       "bins differ", fontsize=9, loc="left")
        axis.set_ylabel("neuron")
        axis.set_ylim(-0.5, a.shape[1] - 0.5)
    axes[0, 0].legend(loc="upper right", fontsize=7)
    readout = axes[-1, 0]
    steps = np.arange(x.shape[0])
    mine = out.voltages[:, 0].detach().cpu().numpy()
    for c in range(mine.shape[1]):
        line = readout.plot(steps, mine[:, c], "-", linewidth=1)[0]
        readout.plot(steps, run.readout_volts[:, sample, c], "--", color=line.get_color(), linewidth=1)
    readout.set_title("readout voltage per class (model solid, Lava dashed)", fontsize=9, loc="left")
    readout.set_xlabel("time step (Norse's axis)")
    readout.set_ylabel("V")
    if title:
        figure.suptitle(title)
    return save_figure(figure, path)


def load_samples(spec, dataset: str, samples: int, data_root: str | None = None, seed: int = 0):
    """The first ``samples`` test images of ``dataset``, checked against and encoded for ``spec``, and their labels
    (:mod:`neuromorph.run`, as every command loads them)."""
    from neuromorph.run import encode_split, load_test_split

    return encode_split(load_test_split(spec, dataset, samples, data_root), spec, seed)


def simulate_model(model, x: torch.Tensor, labels: torch.Tensor | None, precision: str = "fixed",
                   dataset: str = "", qnet=None, copies: int | None = None, batch: int | None = None,
                   profiles: Sequence[str] | None = DEFAULT_PROFILES, out_dir: str | os.PathLike | None = None,
                   progress: Callable[[int], None] | None = None, checkpoint: str | None = None
                   ) -> tuple[ParityReport, LavaRun]:
    """Run ``model`` on Lava for the encoded samples ``x`` ``[T, N, ...]`` and compare (see the module docstring).

    ``qnet`` (fixed point) defaults to ``quantize(model, calibration=x)``, what ``neuromorph export`` writes for these
    samples (a Loihi-exact model ignores the calibration: its export is what was trained). With ``out_dir``, write
    ``parity.json`` and ``parity_raster.png`` (the first sample where a spike bin differs, else sample 0) there.
    """
    from export.lava_sim import simulate
    from export.quantize import quantize
    from neuromorph.io import write_json

    model.eval()
    if precision == "fixed" and qnet is None:
        qnet = quantize(model, calibration=x)
    run = simulate(model, x, precision, qnet=qnet, copies=copies, batch=batch, progress=progress)
    report = parity_report(model, x, labels, run, dataset=dataset, profiles=profiles)
    report.checkpoint = checkpoint
    if out_dir is not None:
        out = Path(out_dir)
        write_json(out / JSON_NAME, report.to_dict())
        sample = report.differing_samples[0] if report.differing_samples else 0  # show a difference if there is one
        label = f" (label {int(labels[sample])})" if labels is not None else ""
        plot_parity_raster(model, x, run, out / RASTER_NAME, sample=sample, title=f"{model.spec.name}, {dataset} "
                           f"test sample {sample}{label}: model vs Lava {precision} point")
    return report, run


def simulate_checkpoint(checkpoint, dataset: str | None = None, samples: int = 100, precision: str = "fixed",
                        data_root: str | None = None, **options) -> tuple[ParityReport, LavaRun]:
    """Run a checkpoint (file or training folder) on Lava for the first ``samples`` test samples of ``dataset``
    (default: the one it was trained on) and compare; ``options`` go to :func:`simulate_model` (``copies``,
    ``batch``, ``profiles``, ``out_dir``, ``progress``)."""
    from neuromorph.run import open_run

    run = open_run(checkpoint, dataset, data_root)
    x, labels = run.test_samples(samples)
    return simulate_model(run.model, x, labels, precision, run.dataset, checkpoint=run.source, **options)
