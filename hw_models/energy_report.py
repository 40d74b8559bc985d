"""The energy report in one call: count a model's activity on data, price it on device profiles, map it on cores.

``energy_report(checkpoint_or_model, dataset="mnist", profiles=["loihi1"], samples=1000)`` returns an
:class:`EnergyReport`; ``report.text()`` is the terminal table, ``report.to_dict()`` the JSON, ``report.write(dir)``
writes ``energy.json`` and ``energy.png`` (energy per population by kind of event, SNN against ANN per device).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hw_models.activity import ActivityCounts, measure_activity, populations_table
from hw_models.energy import ENERGY_KINDS, EnergyEstimate, estimate_energy
from hw_models.mapping import CoreMapping, map_cores
from hw_models.profiles import (
    CORE_LIMITS,
    INPUT_DELIVERIES,
    PROFILES,
    STATIC_SCOPES,
    DeviceProfile,
    priceable_profiles,
    resolve_profile,
)
from neuromorph.errors import NeuromorphError

JSON_NAME = "energy.json"
PNG_NAME = "energy.png"


@dataclass
class EnergyReport:
    """Counts, energy estimates per device profile, and core mappings of one model on one dataset."""

    model_name: str
    dataset: str
    counts: ActivityCounts
    estimates: list[EnergyEstimate]
    mappings: dict[str, CoreMapping]
    profiles: dict[str, DeviceProfile]
    checkpoint: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    def estimate(self, profile: str) -> EnergyEstimate:
        for e in self.estimates:
            if e.profile == profile:
                return e
        raise KeyError(profile)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "neuromorph.energy", "format_version": 1,
            "model": self.model_name, "checkpoint": self.checkpoint, "dataset": self.dataset,
            "samples": self.counts.samples, "accuracy": self.counts.accuracy, "time_steps": self.counts.time_steps,
            "units": {"energy": "J per sample (one inference)", "counts": "per sample"},
            "activity": self.counts.to_dict(),
            "estimates": [e.to_dict() for e in self.estimates],
            "summary": [{"profile": e.profile, "dynamic_j": e.dynamic_j, "static_j": e.static_j, "total_j": e.total_j,
                         "ann_j": e.ann.energy_j, "ann_profile": e.ann.profile, "snn_to_ann": e.snn_to_ann,
                         "snn_to_ann_zero_skipping": e.snn_to_ann_zero_skipping}
                        for e in self.estimates],
            "mappings": {name: m.to_dict() for name, m in self.mappings.items()},
            "profiles": {name: p.to_dict() for name, p in self.profiles.items()},
            "versions": self.versions,
        }

    def text(self) -> str:
        from neuromorph.report import format_table

        c = self.counts
        parts = [f"{self.model_name} on {self.dataset}: {c.samples} samples, T={c.time_steps}, accuracy "
                 f"{100 * c.accuracy:.2f}%   (all figures per sample = one inference)"]
        parts.append(format_table(*populations_table(c), title="\nactivity"))
        for e in self.estimates:
            rows = [[p.name, p.synops_j, p.macs_j, p.neuron_updates_j, p.idle_updates_j, p.spikes_j, p.messages_j,
                     p.hops_j, p.total_j] for p in e.populations]
            kinds = sorted({k["kind"] for k in e.constants.values()})
            title = (f"\n{e.profile} ({'event-driven' if e.event_driven else 'clock-driven'}; constants "
                     f"{', '.join(kinds)}), joules (updates: active; idle: idle updates)")
            parts.append(format_table(["population", "SynOps", "MACs", "updates", "idle", "spikes", "messages",
                                       "hops", "total"], rows, title=title))
            step = (f", {e.chips} chip(s) x T x {e.time_per_step_s:.3g} s/step ({e.time_per_step_kind})"
                    if e.time_per_step_s is not None and e.static_j > 0 else "")
            parts.append(f"dynamic {e.dynamic_j:.4g} J + static {e.static_j:.4g} J{step} = {e.total_j:.4g} J; "
                         f"ANN equivalent {e.ann.energy_j:.4g} J on {e.ann.profile} ({e.ann.macs:,} MACs); "
                         f"SNN/ANN {e.snn_to_ann:.3g}")
            if e.static_j > 0:
                parts.append(f"  static whole chip {e.static_chip_j:.4g} J, static share of the cores used "
                             f"{e.static_cores_j:.4g} J (charged: {e.static_scope})")
            if e.time_per_step_how and e.static_j > 0:
                parts.append(f"  time per step {e.time_per_step_how}")
            if e.event_driven and e.input_delivery != "none":
                parts.append(f"  input delivery {e.input_delivery}: {INPUT_DELIVERY_NOTES[e.input_delivery]} "
                             "(row 'input')")
            if e.event_driven and e.cores is not None:
                active = sum(p.active_updates for p in e.populations)
                idle = sum(p.idle_updates for p in e.populations)
                hops = [sum(p.hops_east_west for p in e.populations), sum(p.hops_north_south for p in e.populations)]
                parts.append(f"  counts per sample: {active:,.1f} active and {idle:,.1f} idle neuron updates, "
                             f"{sum(p.messages for p in e.populations):,.1f} messages, {hops[0]:,.1f} east-west "
                             f"and {hops[1]:,.1f} north-south tile hops, on {e.cores} cores")
            for note in e.not_priced:
                parts.append(f"  not priced: {note}")
        summary = [[e.profile, e.dynamic_j, e.static_j, e.total_j, e.ann.energy_j, e.ann.profile, e.snn_to_ann,
                    e.snn_to_ann_zero_skipping] for e in self.estimates]
        parts.append(format_table(["device", "dynamic J", "static J", "SNN J", "ANN J", "ANN on", "SNN/ANN",
                                   "SNN/ANN(0-skip)"], summary,
                                  title="\nSNN against the equivalent ANN (0-skip: the ANN skips zero input pixels "
                                        "too)"))
        for name, m in self.mappings.items():
            placed = {row["layer"]: row for row in m.placement()}
            rows = [[layer.name, layer.neurons, layer.cores, layer.binding, layer.neurons_per_core,
                     layer.input_axons_per_core, layer.synapse_bits_per_core / 8192, layer.output_axons_per_core,
                     _where(placed[layer.name])] for layer in m.layers]
            mesh = (f"; placed row-major in core order on {m.mesh.width} x {m.mesh.height} tiles of "
                    f"{m.mesh.cores_per_tile} cores (chip, x, y)" if m.mesh is not None else "; no mesh placement")
            parts.append(format_table(["layer", "neurons", "cores", "binding limit", "neurons/core", "in axons",
                                       "synapse KiB", "out axons", "cores at"], rows,
                                      title=f"\ncore mapping on {name}: {m.total_cores} cores, {m.chips} chip(s)"
                                            f"{mesh}"))
        return "\n".join(parts)

    def write(self, out_dir: str | os.PathLike) -> list[Path]:
        """Write ``energy.json`` and ``energy.png`` into ``out_dir`` (atomically)."""
        from neuromorph.io import atomic_write, write_json

        out = Path(out_dir)
        png = render_png(self)
        return [write_json(out / JSON_NAME, self.to_dict()), atomic_write(out / PNG_NAME, lambda h: h.write(png))]


INPUT_DELIVERY_NOTES = {
    "host-graded": "the host sends each non-zero pixel as a graded spike every step (synaptic ops, messages, hops)",
    "encoder": "an on-chip encoding layer, one compartment per pixel, each non-zero pixel's compartment spiking "
               "every step (its updates, spikes, messages, hops, and the synaptic ops)",
}


def _where(row: dict[str, Any]) -> str:
    """``cores a-b (chip, x, y)-(chip, x, y)``: a layer's cores and the tiles they sit on."""
    cores = f"{row['first_core']}" + (f"-{row['last_core']}" if row["last_core"] != row["first_core"] else "")
    if row["first_tile"] is None:
        return cores
    tiles = "({},{},{})".format(*row["first_tile"])
    if row["last_tile"] != row["first_tile"]:
        tiles += "-({},{},{})".format(*row["last_tile"])
    return f"{cores} @ {tiles}"


def render_png(report: EnergyReport) -> bytes:
    """Two panels: energy per population by kind (first profile), and SNN against ANN per device (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    first = report.estimates[0]
    names = [p.name for p in first.populations]
    bottom = [0.0] * len(names)
    for kind in ENERGY_KINDS:
        values = [getattr(p, f"{kind}_j") for p in first.populations]
        if any(values):
            left.bar(names, values, bottom=bottom, label=kind.replace("_", " "))
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if first.static_j > 0:
        left.bar([f"static ({first.static_scope})"], [first.static_j], color="grey", label="static")
    left.set_ylabel("J per inference")
    left.set_title(f"energy per population on {first.profile}, by kind")
    left.legend(fontsize=8)
    devices = [e.profile for e in report.estimates]
    positions = range(len(devices))
    width = 0.4
    right.bar([x - width / 2 for x in positions], [e.total_j for e in report.estimates], width, label="SNN")
    right.bar([x + width / 2 for x in positions], [e.ann.energy_j for e in report.estimates], width,
              label="ANN equivalent")
    for x, e in zip(positions, report.estimates, strict=True):
        right.annotate(f"{e.snn_to_ann:.2g}x", (x, max(e.total_j, e.ann.energy_j)), ha="center", va="bottom",
                       fontsize=8)
    right.set_xticks(list(positions), devices, rotation=20, fontsize=8)
    right.set_yscale("log")
    right.set_ylabel("J per inference")
    right.set_title("SNN (dynamic + static) against ANN, per device")
    right.legend(fontsize=8)
    figure.suptitle(f"{report.model_name} on {report.dataset}, {report.counts.samples} samples", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def check_settings(input_delivery: str, static_scope: str) -> None:
    """Refuse an unknown input delivery or static scope with one line, before any data is loaded."""
    if input_delivery not in INPUT_DELIVERIES:
        raise NeuromorphError(f"unknown input delivery {input_delivery!r}; choose one of {', '.join(INPUT_DELIVERIES)}")
    if static_scope not in STATIC_SCOPES:
        raise NeuromorphError(f"unknown static scope {static_scope!r}; choose one of {', '.join(STATIC_SCOPES)}")


def resolve_profiles(profiles: Sequence[str | DeviceProfile] | None) -> list[DeviceProfile]:
    """Profiles by name, file or object; all built-in priceable profiles when None. Templates are refused."""
    chosen = [p if isinstance(p, DeviceProfile) else resolve_profile(p) for p in (profiles or priceable_profiles())]
    names = [p.name for p in chosen]
    if len(set(names)) != len(names):
        raise NeuromorphError(f"device profiles must have distinct names, got {', '.join(names)}")
    for p in chosen:
        p.check_priceable()
    return chosen


def energy_report(
    model,
    dataset: str = "mnist",
    profiles: Sequence[str | DeviceProfile] | None = None,
    samples: int | None = None,
    data_root: str | None = None,
    batch_size: int = 256,
    device: str = "cpu",
    seed: int = 0,
    split=None,
    progress: bool = False,
    input_delivery: str = "host-graded",
    static_scope: str = "chip",
) -> EnergyReport:
    """Count, price and map ``model`` (a SpikingNet, or a checkpoint path) on the test split of ``dataset``.

    ``profiles``: built-in names, profile files or DeviceProfile objects (default: every built-in profile that has
    its constants). ``split`` overrides the dataset (any :class:`neuromorph.data.Split`). ``input_delivery`` and
    ``static_scope``: see :func:`hw_models.energy.estimate_energy`; the mappings place the input on the chip when
    it is delivered by an encoding layer.
    """
    from neuromorph.checkpoint import load_checkpoint, tool_versions
    from neuromorph.data import load_split
    from neuromorph.devices import resolve_device
    from neuromorph.run import check_images

    check_settings(input_delivery, static_scope)
    chosen = resolve_profiles(profiles)
    checkpoint = None
    if isinstance(model, str | os.PathLike):
        checkpoint = str(model)
        model = load_checkpoint(model).build_model()
    named = split is None
    if named:
        split = load_split(dataset, train=False, root=data_root, limit=samples)
    split = check_images(split, model.spec, dataset if named else None)
    counts = measure_activity(model, split, samples, batch_size, resolve_device(device), seed, progress)
    on_chip = input_delivery == "encoder" and counts.input_nonzero is not None
    mappings = {}
    needed = {p.cores for p in chosen if p.cores}
    for name, limits in CORE_LIMITS.items():  # every chip's mapping is shown; only a priced chip's must fit
        try:
            mappings[name] = map_cores(model.spec, limits, input_on_chip=on_chip)
        except NeuromorphError:
            if name in needed:
                raise
    estimates = [estimate_energy(model.spec, counts, p, mappings.get(p.cores) if p.cores else None,
                                 input_delivery=input_delivery, static_scope=static_scope) for p in chosen]
    used = {p.name: p for p in chosen}
    for e in estimates:  # the ANN's own profile: a user profile prices its ANN itself (already in `used`)
        if e.ann.profile not in used:
            used[e.ann.profile] = PROFILES[e.ann.profile]
    return EnergyReport(model_name=model.spec.name, dataset=dataset, counts=counts, estimates=estimates,
                        mappings=mappings, profiles=used, checkpoint=checkpoint, versions=tool_versions())
