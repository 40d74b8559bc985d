"""The quantization report: per-layer scales and weight error, and how far Loihi fixed point drifts from the float
model on sample inputs (spike bins that differ, per layer, after undoing Lava's per-layer delay; readout agreement).

The fixed-point side is :func:`export.loihi_reference.run_reference`, which gives exactly Lava's spikes (tested
against Lava itself); the float side is the Norse model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from export.chip_plan import ChipPlan
from export.loihi_reference import ReferenceRun, run_reference
from export.quantize import input_currents
from neuromorph.outputs import reduce_readout


def reference_inputs(qnet: ChipPlan, x: torch.Tensor) -> np.ndarray:
    """What the chip receives for an encoded input ``x`` ``[T, B, ...]``: spikes, or host currents."""
    if qnet.layers[0].on_host:
        return input_currents(qnet, x)
    return x.detach().numpy().astype(np.int64)


@dataclass
class QuantizationReport:
    """Numbers measured on ``samples`` inputs; ``layers`` holds the per-layer quantization table."""

    samples: int
    time_steps: int
    layers: list[dict[str, Any]]
    spike_bins: list[int] = field(default_factory=list)  # neurons * steps * samples, per hidden layer
    spike_mismatches: list[int] = field(default_factory=list)
    float_spikes: list[int] = field(default_factory=list)
    fixed_spikes: list[int] = field(default_factory=list)
    class_agreement: float = float("nan")  # fraction of samples whose predicted class is the same
    readout_max_abs_error: float = float("nan")  # Norse volts, fixed-point readout voltage vs float
    readout_saturated: int = 0  # readout neurons that reached the threshold (voltage out of range)

    @property
    def mismatch_fraction(self) -> float:
        total = sum(self.spike_bins)
        return sum(self.spike_mismatches) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples, "time_steps": self.time_steps, "layers": self.layers,
            "spike_bins": self.spike_bins, "spike_mismatches": self.spike_mismatches,
            "float_spikes": self.float_spikes, "fixed_spikes": self.fixed_spikes,
            "mismatch_fraction": self.mismatch_fraction, "class_agreement": self.class_agreement,
            "readout_max_abs_error_volts": self.readout_max_abs_error, "readout_saturated": self.readout_saturated,
        }

    def format(self) -> str:
        from neuromorph.report import format_table

        rows = [[row["layer"], row["kind"], row["folded"] or "-", f"{row['scale']:.4g}", row["iDecay"],
                 row["vDecay"], row["vThMant"], row["weight_int_max"] if row["weight_int_max"] is not None else "-",
                 f"{row['weight_error_rms']:.3g}", f"{row['weight_error_max']:.3g}",
                 f"{row['weight_error_rms'] / row['weight_max_float']:.3%}"] for row in self.layers]
        text = format_table(["layer", "kind", "folded", "scale /V", "iDecay", "vDecay", "vThMant", "|w|max",
                             "err rms V", "err max V", "rms/peak"], rows, title="Loihi fixed-point quantization")
        if self.samples:
            rows = [[self.layers[k]["layer"], f, q, m, b, f"{m / b:.3%}" if b else "-"] for k, (f, q, m, b) in
                    enumerate(zip(self.float_spikes, self.fixed_spikes, self.spike_mismatches, self.spike_bins,
                                  strict=True))]
            text += "\n" + format_table(["layer", "float spikes", "fixed spikes", "bins differ", "bins", "fraction"],
                                        rows, title=f"\nfixed point (numpy reference of Lava) vs float, {self.samples} "
                                        f"samples x {self.time_steps} steps")
            text += (f"\nall hidden layers: {sum(self.spike_mismatches)} of {sum(self.spike_bins)} spike bins differ "
                     f"({self.mismatch_fraction:.3%}); same predicted class on {self.class_agreement:.1%} of samples; "
                     f"readout voltage max error {self.readout_max_abs_error:.4g} V; "
                     f"saturated readout neurons {self.readout_saturated}")
        return text


def compare(model, qnet: ChipPlan, x: torch.Tensor, run: ReferenceRun | None = None) -> QuantizationReport:
    """Run the float model and the fixed-point reference on ``x`` and count the differences."""
    with torch.no_grad():
        out = model(x)
    run = run or run_reference(qnet, reference_inputs(qnet, x))
    fixed, readout = run.aligned(x.shape[0])
    hidden = model.hidden_spikes(out)
    report = QuantizationReport(samples=int(x.shape[1]), time_steps=int(x.shape[0]), layers=qnet.layer_table())
    for float_spikes, fixed_spikes in zip(hidden, fixed, strict=True):
        reference = float_spikes.numpy() > 0
        report.spike_bins.append(int(reference.size))
        report.spike_mismatches.append(int((reference != fixed_spikes).sum()))
        report.float_spikes.append(int(reference.sum()))
        report.fixed_spikes.append(int(fixed_spikes.sum()))
    volts = torch.from_numpy(readout.astype(np.float64) / qnet.readout_units_per_volt)
    fixed_logits = reduce_readout(volts, qnet.spec.readout.reduce)
    report.class_agreement = float((fixed_logits.argmax(1) == out.logits.argmax(1)).double().mean())
    report.readout_max_abs_error = float((volts - out.voltages.double()).abs().max())
    report.readout_saturated = int(run.readout_spikes.sum())
    return report


def quantization_report(model, qnet: ChipPlan, x: torch.Tensor | None = None) -> QuantizationReport:
    """The report; without sample inputs it holds the per-layer table only."""
    if x is None:
        return QuantizationReport(samples=0, time_steps=qnet.spec.time_steps, layers=qnet.layer_table())
    return compare(model, qnet, x)
