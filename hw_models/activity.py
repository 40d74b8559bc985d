"""Per-population activity counts from a model run on data: the events a device is paid for.

For each population of a :class:`~neuromorph.models.SpikingNet` (the encoded input, each LIF layer, the readout),
per sample:

- ``synops``: synaptic operations its binary spikes drive in the next synaptic layer,
  ``sum_i psi[i] * sum_t s[i, t]`` with the exact fan-out psi (hw_models.opcount, the same code as the penalty);
- ``macs``: multiply-accumulates its analog values drive: only the direct-encoded input, whose first synaptic layer
  multiplies real-valued pixels. Counted as NeuroBench counts effective MACs, a non-zero input element times its
  fan-out, and once per inference: the direct input is the same on every step, so the layer's output is computed
  once and reused (SpikingNet does exactly this). A counter that calls the layer on every step (NeuroBench on a
  per-step loop) counts T times as many;
- ``neuron_updates``: every neuron every step (LIF layers and the readout), ``neurons * T``; of them
  ``idle_updates``: the steps in which a neuron is idle. A neuron is idle in a step when it receives no input
  (its synaptic current from the layer below is exactly 0) and its state does not change (every state variable,
  ``v`` and ``i``, bitwise the same after the step as before it): nothing to integrate and nothing to decay, as
  Loihi defines an inactive compartment. A neuron at rest (``v = v_leak``, ``i = 0``, the initial state) without
  input is idle; one that spiked and was reset to rest (``v_reset = v_leak``, no current, as a ``lifbox`` cell) is
  idle again from the next step without input; a neuron whose state is still decaying is active, and so is one
  with input, even at a fixed point of its dynamics (the chip integrates that input). Counted by the model's own
  arithmetic (``SpikingNet.idle_steps``): Norse float steps each population's Norse cell on the synaptic currents
  the recorded spikes (or the encoded input) drive and compares its states ``(v, i)``; Loihi fixed point
  (export.loihi_exact) compares the integer states ``(u, v)`` and takes ``a_in == 0`` as no input. An arithmetic
  without such a count leaves ``idle_counted`` False (every update priced as active);
- ``spikes``: spikes it sends; ``dense_connections``: the multiply-accumulates of the synaptic layer it feeds for a
  dense input, what a clock-driven device computes every step and what the equivalent ANN computes once. With a
  pooling layer in between it counts the pooled positions (an ANN pools first), so it can be less than ``sum psi``.

Messages routed (one per spike and destination core) depend on a core mapping, so the counts keep each neuron's
total spike count (over steps and samples), which is enough for any linear weighting (hw_models.energy's routing).
The recorder only sums spike tensors the forward pass already produced, so counting costs little next to inference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from hw_models.fanout import consumer_fan_out, model_fan_outs
from hw_models.opcount import weighted_spike_sums
from neuromorph.structure import INPUT, blocks, readout_block, spike_sources

ROLES = ("input-spikes", "input-analog", "hidden", "readout")


@dataclass(frozen=True)
class PopulationActivity:
    """Per-sample mean counts of one population (see the module docstring)."""

    name: str
    role: str
    neurons: int
    neuron_updates: float
    spikes: float
    synops: float
    macs: float
    dense_connections: int
    idle_updates: float = 0.0

    @property
    def active_updates(self) -> float:
        return self.neuron_updates - self.idle_updates

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "active_updates": self.active_updates}


@dataclass
class ActivityCounts:
    """Counts of a run: per population, per sample; ``spike_totals`` per neuron over all steps and samples, and
    ``idle_totals`` (idle steps per neuron over all samples, for each on-chip population) when ``idle_counted``."""

    model_name: str
    samples: int
    time_steps: int
    populations: list[PopulationActivity]
    spike_totals: dict[str, torch.Tensor] = field(repr=False)
    correct: int = 0
    input_nonzero: torch.Tensor | None = field(default=None, repr=False)  # direct input: non-zero count per pixel
    idle_totals: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    idle_counted: bool = False

    @property
    def accuracy(self) -> float:
        return self.correct / self.samples if self.samples else 0.0

    def population(self, name: str) -> PopulationActivity:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_name, "samples": self.samples, "time_steps": self.time_steps,
                "accuracy": self.accuracy, "idle_counted": self.idle_counted,
                "populations": [p.to_dict() for p in self.populations]}



class ActivityRecorder:
    """Accumulates per-neuron spike totals (and non-zero analog inputs) over batches of a model's forward passes."""

    def __init__(self, model) -> None:
        spec = model.spec
        self.model = model
        self.names = [s.name for s in model.sources]
        self.analog_input = not model.records_input
        self.input_fan_out = model_fan_outs(spec, include_input=True)[0] if self.analog_input else None
        self.connections = layer_connections(spec)
        self.totals = [torch.zeros(s.shape, dtype=torch.float64) for s in model.sources]
        self.input_nonzero = torch.zeros(spec.input_shape, dtype=torch.float64)
        self.idle_counted = True
        self.idle = [torch.zeros(block.out_shape, dtype=torch.float64) for block in model.blocks]
        self.samples = 0
        self.correct = 0

    @torch.no_grad()
    def update(self, x: torch.Tensor, out, labels: torch.Tensor | None = None) -> None:
        """Add one batch: ``x`` the encoded input ``[T, B, ...]``, ``out`` the model's SNNOutput."""
        summed = out.spike_counts or [s.sum(dim=0) for s in out.spikes]  # the kernels' counts: no pass over T
        for total, s in zip(self.totals, summed, strict=True):
            total += s.sum(dim=0).cpu()  # whole numbers, exact in float32 per batch; accumulated in float64
        if self.analog_input:
            self.input_nonzero += (x[0] != 0).sum(dim=0).cpu()
        if self.idle_counted:
            steps = self.model.idle_steps(x, out)
            if steps is None:
                self.idle_counted = False
            else:
                for idle, counted in zip(self.idle, steps, strict=True):
                    idle += counted.cpu()
        self.samples += int(x.shape[1])
        if labels is not None:
            self.correct += int((out.logits.argmax(dim=1) == labels).sum())

    def result(self) -> ActivityCounts:
        model, spec = self.model, self.model.spec
        steps, n = spec.time_steps, max(self.samples, 1)
        fan_outs = [f.detach().to("cpu", torch.float64) for f in model.fan_outs]
        per_source = weighted_spike_sums([t[None, None] for t in self.totals], fan_outs)[:, 0]
        spikes = [float(t.sum()) for t in self.totals]
        populations = []
        if self.analog_input:
            nonzero = weighted_spike_sums([self.input_nonzero[None, None]], [self.input_fan_out])[0, 0]
            populations.append(PopulationActivity(
                name=INPUT, role="input-analog", neurons=math.prod(spec.input_shape), neuron_updates=0.0,
                spikes=0.0, synops=0.0, macs=float(nonzero) / n,
                dense_connections=self.connections[INPUT]))
        idle = dict(zip([block.name for block in blocks(spec)], self.idle, strict=True)) if self.idle_counted else {}
        for index, source in enumerate(model.sources):
            is_input = source.name == INPUT
            populations.append(PopulationActivity(
                name=source.name, role="input-spikes" if is_input else "hidden", neurons=math.prod(source.shape),
                neuron_updates=0.0 if is_input else float(math.prod(source.shape) * steps), spikes=spikes[index] / n,
                synops=float(per_source[index]) / n, macs=0.0, dense_connections=self.connections[source.name],
                idle_updates=float(idle[source.name].sum()) / n if source.name in idle else 0.0))
        classes = spec.num_classes
        readout = readout_block(spec).name
        populations.append(PopulationActivity(
            name=readout, role="readout", neurons=classes, neuron_updates=float(classes * steps),
            spikes=0.0, synops=0.0, macs=0.0, dense_connections=0,
            idle_updates=float(idle[readout].sum()) / n if readout in idle else 0.0))
        totals = dict(zip(self.names, self.totals, strict=True))
        return ActivityCounts(model_name=spec.name, samples=self.samples, time_steps=steps, populations=populations,
                              spike_totals=totals, correct=self.correct,
                              input_nonzero=self.input_nonzero if self.analog_input else None,
                              idle_totals=idle, idle_counted=self.idle_counted)


def layer_connections(spec) -> dict[str, int]:
    """For each spike source (the input included), the MACs of the synaptic layer it feeds on a dense input."""
    return {source.name: int(consumer_fan_out([source.consumer.synapse], source.consumer.synapse_in_shape).sum())
            for source in spike_sources(spec, include_input=True)}


@torch.no_grad()
def count_activity(model, batches: Iterable[tuple[torch.Tensor, torch.Tensor | None]]) -> ActivityCounts:
    """Run ``model`` on encoded batches ``(x [T, B, ...], labels or None)`` and count its activity."""
    model.eval()
    recorder = ActivityRecorder(model)
    for x, labels in batches:
        recorder.update(x, model(x), labels)
    return recorder.result()


@torch.no_grad()
def measure_activity(
    model,
    split,
    samples: int | None = None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> ActivityCounts:
    """Count the activity of ``model`` on the first ``samples`` images of ``split`` (all when None).

    Poisson encoding draws its noise from a generator seeded with ``seed``, so a count is reproducible.
    """
    from neuromorph.data import iterate_batches
    from neuromorph.encoders import encode
    from neuromorph.progress import progress_bar

    split = split.head(samples) if samples is not None else split
    model.to(device)
    generator = torch.Generator().manual_seed(seed)
    spec = model.spec

    def encoded() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        batches = iterate_batches(split, batch_size, device=device)
        if progress:  # tqdm is only touched when shown: it fixes the multiprocessing start method when created
            batches = progress_bar(batches, total=math.ceil(len(split) / batch_size), desc="count", leave=False)
        for images, labels in batches:
            yield encode(images, spec, generator), labels

    return count_activity(model, encoded())


def populations_table(counts: ActivityCounts) -> tuple[Sequence[str], list[list[Any]]]:
    """Headers and rows of the per-population count table (per sample)."""
    headers = ("population", "role", "neurons", "updates", "idle", "spikes", "SynOps", "MACs", "connections")
    rows = [[p.name, p.role, p.neurons, p.neuron_updates, p.idle_updates, p.spikes, p.synops, p.macs,
             p.dense_connections]
            for p in counts.populations]
    return headers, rows
