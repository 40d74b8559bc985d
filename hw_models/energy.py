"""Energy per inference: dynamic (each counted event times its cost) plus static, and the equivalent ANN.

For a population p on profile d (hw_models.profiles), per sample:

- event-driven device: ``E_p = SynOps_p * e_synop + MACs_p * e_mac + updates_p * e_update + spikes_p * e_spike
  + messages_p * e_message``, with ``messages_p = sum_i dest_cores[i] * spikes[i]`` from the core mapping;
- clock-driven device (every synapse every step, as KerasSpiking prices CPU/GPU/ARM):
  ``E_p = T * connections_p * e_synop + updates_p * e_update``; the direct-encoded input layer, constant over time,
  is computed once: ``connections * e_mac``.

Direct (analog) input on a chip without MACs (``input_delivery="host-graded"``, the default): the host injects each
non-zero pixel as a graded spike on every step (the chip's synaptic input is consumed each step), so the input
population costs ``T * MACs`` synaptic operations and ``T * sum_i nonzero_i * dest_cores[i]`` messages; the spike
generation is the host's and is not charged. ``input_delivery="none"``: not priced (named in ``not_priced``).

Static energy is ``P_static * chips * T * t_step`` (``static_scope="chip"``, the default: a chip's leakage is paid
whatever part of it is used); ``static_scope="cores"`` charges the share of the cores the network uses,
``P_static * cores_used / cores_per_chip * T * t_step``. Both figures are in the estimate. ``t_step`` is the
profile's ``time_per_step_s`` when it has one;
otherwise it is derived from the latencies and the mapping: cores work in parallel, so a step lasts as long as the
busiest layer's core (its events spread evenly over the layer's cores) plus the end-of-step synchronization.

The equivalent ANN has the same synaptic layers with one multiply-accumulate per synapse on a dense input (pooling
first; the pooling additions are not counted) and one activation per hidden neuron, once per inference; it is
priced on the profile's ``ann_reference`` (itself when None). A cost the profile does not give is left out and
named in ``not_priced``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from hw_models.activity import ActivityCounts, PopulationActivity
from hw_models.mapping import CoreMapping, map_cores
from hw_models.profiles import PROFILES, DeviceProfile
from neuromorph.spec import ModelSpec

ENERGY_KINDS = ("synops", "macs", "neuron_updates", "spikes", "messages")
INPUT_DELIVERIES = ("host-graded", "none")
STATIC_SCOPES = ("chip", "cores")


@dataclass(frozen=True)
class PopulationEnergy:
    """Joules per sample of one population, by kind of event."""

    name: str
    synops_j: float = 0.0
    macs_j: float = 0.0
    neuron_updates_j: float = 0.0
    spikes_j: float = 0.0
    messages_j: float = 0.0
    messages: float = 0.0

    @property
    def total_j(self) -> float:
        return self.synops_j + self.macs_j + self.neuron_updates_j + self.spikes_j + self.messages_j

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total_j": self.total_j}


@dataclass(frozen=True)
class AnnEquivalent:
    """The same architecture as a non-spiking ANN: MACs and activations per inference, and its energy.

    ``macs``/``energy_j``: dense, every synapse once. ``macs_zero_skipping``/``energy_zero_skipping_j``: the same ANN
    skipping the zero pixels of its input, as the SNN's direct-encoded first layer does (equal without analog input).
    """

    macs: int
    activations: int
    profile: str
    energy_j: float
    macs_zero_skipping: float = 0.0
    energy_zero_skipping_j: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy per inference (per sample) of an SNN on one device, against the equivalent ANN."""

    profile: str
    event_driven: bool
    populations: list[PopulationEnergy]
    static_j: float
    time_per_step_s: float | None
    time_per_step_kind: str
    chips: int | None
    ann: AnnEquivalent
    not_priced: list[str] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    static_chip_j: float = 0.0
    static_cores_j: float = 0.0
    static_scope: str = "chip"
    input_delivery: str = "none"

    @property
    def dynamic_j(self) -> float:
        return sum(p.total_j for p in self.populations)

    @property
    def total_j(self) -> float:
        return self.dynamic_j + self.static_j

    @property
    def snn_to_ann(self) -> float:
        return self.total_j / self.ann.energy_j if self.ann.energy_j > 0 else float("inf")

    @property
    def snn_to_ann_zero_skipping(self) -> float:
        return self.total_j / self.ann.energy_zero_skipping_j if self.ann.energy_zero_skipping_j > 0 else float("inf")

    def by_kind(self) -> dict[str, float]:
        return {kind: sum(getattr(p, f"{kind}_j") for p in self.populations) for kind in ENERGY_KINDS}

    def to_dict(self) -> dict[str, Any]:
        return {"profile": self.profile, "event_driven": self.event_driven, "dynamic_j": self.dynamic_j,
                "static_j": self.static_j, "total_j": self.total_j, "by_kind_j": self.by_kind(),
                "time_per_step_s": self.time_per_step_s, "time_per_step_kind": self.time_per_step_kind,
                "chips": self.chips, "ann": self.ann.to_dict(), "snn_to_ann": self.snn_to_ann,
                "snn_to_ann_zero_skipping": self.snn_to_ann_zero_skipping,
                "populations": [p.to_dict() for p in self.populations], "not_priced": self.not_priced,
                "constants": self.constants, "static_chip_j": self.static_chip_j,
                "static_cores_j": self.static_cores_j, "static_scope": self.static_scope,
                "input_delivery": self.input_delivery}


def ann_equivalent(
    spec: ModelSpec, counts: ActivityCounts, profile: DeviceProfile, zero_skipping: bool = True
) -> AnnEquivalent:
    """MACs and activations of the equivalent ANN (from the counted connections), priced on ``profile``.

    ``zero_skipping`` False: the zero-skipping figures equal the dense ones (a clock-driven device, on which the SNN
    does not skip zeros either).
    """
    macs = sum(p.dense_connections for p in counts.populations)
    activations = sum(p.neurons for p in counts.populations if p.role == "hidden")
    e_mac = profile.cost("energy_per_mac_j") if profile.energy_per_mac_j else profile.cost("energy_per_synop_j")
    e_act = (profile.cost("energy_per_activation_j") if profile.energy_per_activation_j
             else profile.cost("energy_per_neuron_update_j"))
    skipping = macs + sum(p.macs - p.dense_connections for p in counts.populations
                          if p.role == "input-analog" and zero_skipping)
    return AnnEquivalent(macs=macs, activations=activations, profile=profile.name,
                         energy_j=macs * e_mac + activations * e_act, macs_zero_skipping=skipping,
                         energy_zero_skipping_j=skipping * e_mac + activations * e_act)


def messages_per_sample(counts: ActivityCounts, mapping: CoreMapping) -> dict[str, float]:
    """Messages routed per sample by each spike source: one per spike and destination core."""
    weights = {name: mapping.destination_cores[name] for name in counts.spike_totals}
    return counts.weighted_totals(weights)


def estimate_energy(
    spec: ModelSpec,
    counts: ActivityCounts,
    profile: DeviceProfile,
    mapping: CoreMapping | None = None,
    input_delivery: str = "host-graded",
    static_scope: str = "chip",
) -> EnergyEstimate:
    """Energy per sample of the counted run on ``profile`` (see the module docstring)."""
    from neuromorph.errors import NeuromorphError

    if input_delivery not in INPUT_DELIVERIES:
        raise NeuromorphError(f"input_delivery must be one of {', '.join(INPUT_DELIVERIES)}, got {input_delivery!r}")
    if static_scope not in STATIC_SCOPES:
        raise NeuromorphError(f"static_scope must be one of {', '.join(STATIC_SCOPES)}, got {static_scope!r}")
    profile.check_priceable()
    if mapping is None and profile.core_limits is not None:
        mapping = map_cores(spec, profile.core_limits)
    steps = counts.time_steps
    not_priced: list[str] = []
    messages = messages_per_sample(counts, mapping) if mapping is not None and profile.event_driven else {}
    graded = (input_delivery == "host-graded" and profile.event_driven and profile.energy_per_mac_j is None
              and counts.input_nonzero is not None)
    if graded and mapping is not None:
        from neuromorph.structure import INPUT

        weights = mapping.destination_cores[INPUT].reshape(counts.input_nonzero.shape).double()
        messages[INPUT] = steps * float((counts.input_nonzero.double() * weights).sum()) / max(counts.samples, 1)
    populations = [_population_energy(p, profile, steps, messages.get(p.name, 0.0), graded)
                   for p in counts.populations]

    if any(p.macs > 0 for p in counts.populations) and profile.event_driven and profile.energy_per_mac_j is None \
            and not graded:
        not_priced.append(f"MACs of the direct-encoded input layer: {profile.name} gives no MAC energy (a chip "
                          "takes analog input off-chip)")
    if profile.event_driven and any(p.spikes > 0 for p in counts.populations):
        if profile.energy_per_message_j is not None and mapping is None:
            not_priced.append("messages: no core mapping for this device")
        if profile.energy_per_message_j is None and profile.energy_per_spike_j is None:
            not_priced.append("spike generation and routing: no per-spike or per-message energy in the profile")
    if profile.cores:
        not_priced.append("mesh hops between cores (they need a placement on the mesh)")
        not_priced.append("idle neuron updates are priced as active (no count of idle compartments yet)")

    static_j, step_s, step_kind, chip_j, cores_j = 0.0, None, "none", 0.0, 0.0
    chips = mapping.chips if mapping is not None else None
    if profile.static_power_w is not None:
        step_s, step_kind = _time_per_step(counts, profile, mapping, messages)
        if step_s is None:
            not_priced.append("static energy: no time per step and no latencies to derive it from")
        else:
            chip_j = profile.cost("static_power_w") * (chips or 1) * steps * step_s
            cores_j = chip_j
            if mapping is not None:
                cores_j = profile.cost("static_power_w") * mapping.total_cores / mapping.cores_per_chip * steps * step_s
            static_j = chip_j if static_scope == "chip" else cores_j
    else:
        not_priced.append("static power: not given for this device")

    reference = _ann_reference(profile)
    if reference is not profile and not profile.ann_reference:
        not_priced.append(f"the ANN on {profile.name}: no MAC energy given, so the ANN is priced on {reference.name}")
    constants = {name: c.to_dict() for name, c in profile.constants().items()}
    ann = ann_equivalent(spec, counts, reference, zero_skipping=profile.event_driven)
    return EnergyEstimate(profile=profile.name, event_driven=profile.event_driven, populations=populations,
                          static_j=static_j, time_per_step_s=step_s, time_per_step_kind=step_kind, chips=chips,
                          ann=ann, not_priced=not_priced, constants=constants, static_chip_j=chip_j,
                          static_cores_j=cores_j, static_scope=static_scope,
                          input_delivery=input_delivery if graded else "none")


def _ann_reference(profile: DeviceProfile) -> DeviceProfile:
    """Where the equivalent ANN is priced: the named reference, else the device itself when it can do MACs (a
    clock-driven device prices them as its ops), else the 45 nm arithmetic."""
    if profile.ann_reference:
        return PROFILES[profile.ann_reference]
    if not profile.event_driven or profile.energy_per_mac_j is not None:
        return profile
    return PROFILES["ann45nm"]


def _population_energy(
    p: PopulationActivity, profile: DeviceProfile, steps: int, messages: float, graded: bool = False
) -> PopulationEnergy:
    update_j = p.neuron_updates * profile.cost("energy_per_neuron_update_j")
    if not profile.event_driven:
        if p.role == "input-analog":  # constant over time: computed once
            e_mac = profile.cost("energy_per_mac_j") if profile.energy_per_mac_j else profile.cost("energy_per_synop_j")
            return PopulationEnergy(p.name, macs_j=p.dense_connections * e_mac, neuron_updates_j=update_j)
        return PopulationEnergy(p.name, synops_j=steps * p.dense_connections * profile.cost("energy_per_synop_j"),
                                neuron_updates_j=update_j)
    if graded and p.role == "input-analog":  # host-injected graded spikes, every step
        return PopulationEnergy(p.name, synops_j=steps * p.macs * profile.cost("energy_per_synop_j"),
                                messages_j=messages * profile.cost("energy_per_message_j"), messages=messages)
    return PopulationEnergy(
        p.name,
        synops_j=p.synops * profile.cost("energy_per_synop_j"),
        macs_j=p.macs * profile.cost("energy_per_mac_j"),
        neuron_updates_j=update_j,
        spikes_j=0.0 if p.role == "input-spikes" else p.spikes * profile.cost("energy_per_spike_j"),
        messages_j=messages * profile.cost("energy_per_message_j"),
        messages=messages,
    )


def _time_per_step(
    counts: ActivityCounts, profile: DeviceProfile, mapping: CoreMapping | None, messages: dict[str, float]
) -> tuple[float | None, str]:
    if profile.time_per_step_s is not None:
        return profile.cost("time_per_step_s"), profile.time_per_step_s.kind
    if mapping is None or profile.latency_per_step_sync_s is None:
        return None, "none"
    steps = counts.time_steps
    busiest = 0.0
    for layer in mapping.layers:
        population = counts.population(layer.name)
        source = counts.population(layer.presynaptic)
        work = (source.synops * profile.cost("latency_per_synop_s")
                + population.neuron_updates * profile.cost("latency_per_neuron_update_s")
                + population.spikes * profile.cost("latency_per_spike_s")
                + messages.get(layer.name, 0.0) * profile.cost("latency_per_message_s"))
        busiest = max(busiest, work / steps / layer.cores)
    return busiest + profile.cost("latency_per_step_sync_s"), "derived"


def spike_energy_weights(spec: ModelSpec, profile: DeviceProfile, mapping: CoreMapping | None = None) -> list:
    """Joules one spike of each neuron costs, per spike source of ``spec`` (the order of ``SpikingNet.sources``).

    ``e_synop * psi[i] + e_spike + e_message * dest_cores[i]`` on an event-driven device (no ``e_spike`` for input
    spikes, which come from the host). Summed against spike counts with hw_models.opcount it gives exactly the
    spike-driven part of :func:`estimate_energy`.
    """
    from hw_models.fanout import model_fan_outs
    from neuromorph.structure import INPUT, spike_sources

    if mapping is None and profile.core_limits is not None and profile.energy_per_message_j is not None:
        mapping = map_cores(spec, profile.core_limits)
    weights = []
    for source, psi in zip(spike_sources(spec), model_fan_outs(spec), strict=True):
        w = psi * profile.cost("energy_per_synop_j")
        if source.name != INPUT:
            w = w + profile.cost("energy_per_spike_j")
        if mapping is not None:
            w = w + mapping.destination_cores[source.name] * profile.cost("energy_per_message_j")
        weights.append(w)
    return weights


def neuron_update_energy(spec: ModelSpec, profile: DeviceProfile) -> float:
    """Joules per sample of the neuron updates: every LIF and readout neuron, every step."""
    import math

    from neuromorph.structure import blocks

    neurons = sum(math.prod(block.out_shape) for block in blocks(spec))
    return neurons * spec.time_steps * profile.cost("energy_per_neuron_update_j")


def penalty_profile(profile: DeviceProfile | str | None) -> DeviceProfile:
    """The profile an energy penalty prices on: it must exist, have its constants, and be event-driven."""
    from hw_models.profiles import resolve_profile
    from neuromorph.errors import NeuromorphError

    if not profile:
        raise NeuromorphError("the energy penalty needs a device profile (--device-profile NAME or FILE)")
    if not isinstance(profile, DeviceProfile):
        profile = resolve_profile(profile)
    profile.check_priceable()
    if not profile.event_driven:
        raise NeuromorphError(f"device profile {profile.name!r} is clock-driven: its energy does not depend on spikes, "
                              "so an energy penalty cannot lower it; choose an event-driven profile")
    return profile


def energy_penalty(model, profile: DeviceProfile | str):
    """A training penalty ``(spikes, fan_outs, power) -> [B]``: joules per sample on ``profile``.

    ``(1/p) * sum_l sum_i w[l,i] * sum_t s[l,i,t]**p`` with the weights of :func:`spike_energy_weights`, plus the
    neuron-update energy (a constant). For binary spikes and any p it is the dynamic energy of
    :func:`estimate_energy` without the input layer's MACs (fixed by the data) and without static energy.
    """
    from hw_models.opcount import weighted_spike_sums

    profile = penalty_profile(profile)
    weights = [w.float() for w in spike_energy_weights(model.spec, profile)]
    fixed = neuron_update_energy(model.spec, profile)

    def penalty(spikes, fan_outs, power: float = 1.0, counts=None):
        if not spikes:
            return torch.full((1,), fixed)
        return weighted_spike_sums(spikes, weights, power=power, counts=counts).sum(dim=0) / power + fixed

    return penalty
