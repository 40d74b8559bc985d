"""Energy per inference: dynamic (each counted event times its cost) plus static, and the equivalent ANN.

For a population p on profile d (hw_models.profiles), per sample:

- event-driven device: ``E_p = SynOps_p * e_synop + MACs_p * e_mac + active_p * e_update + idle_p * e_idle
  + spikes_p * e_spike + messages_p * e_message + hops_ew_p * e_hop_ew + hops_ns_p * e_hop_ns``, with
  ``messages_p = sum_i dest_cores[i] * spikes[i]`` from the core mapping and ``hops_p = sum_i hops[i] * spikes[i]``
  from its placement on the mesh (hw_models.mapping: row-major in core order; ``hops[i]`` the tile hops east-west
  and north-south from neuron i's core to each of its destination cores). ``idle_p`` are the neuron updates in
  which the neuron is idle (no input, state unchanged: hw_models.activity), ``active_p`` the rest; a profile
  without ``e_idle`` prices idle updates as active and says so in ``not_priced``;
- clock-driven device (every synapse every step, as KerasSpiking prices CPU/GPU/ARM):
  ``E_p = T * connections_p * e_synop + updates_p * e_update``; the direct-encoded input layer, constant over time,
  is computed once: ``connections * e_mac``.

Direct (analog) input on a chip without MACs is delivered as ``input_delivery`` says (its own row ``input``):

- ``"host-graded"`` (the default): the host injects each non-zero pixel as a graded spike on every step (the
  chip's synaptic input is consumed each step): ``T * MACs`` synaptic operations, ``T * sum_i nonzero_i *
  dest_cores[i]`` messages, and their hops from the host's entry at tile (0, 0); generating and sending the spikes
  is the host's work, off the chip;
- ``"encoder"``: an on-chip encoding layer, one compartment per pixel on its own cores (placed first), driven by
  its pixel; each non-zero pixel's compartment sends one graded spike per step, so the first layer receives the
  trained input current exactly. On top of the host-graded costs: ``T * nonzero`` active updates and spikes, and
  ``T * zero pixels`` idle updates (a compartment without drive is idle); its cores count in the static share;
- ``"none"``: not priced (named in ``not_priced``).

Time per step: the profile's ``time_per_step_s`` when it has one; otherwise derived from the per-core work. Each
core's events per sample (synaptic operations into it, its neurons' active and idle updates, their spikes and the
messages they send) times the profile's latencies, divided by T, is its mean work per step; cores work in parallel,
so a step lasts as long as the busiest core's work plus the end-of-step synchronization. Mesh hop latencies are not
added (messages cross the mesh while cores compute; the barrier closes the step). Static energy is
``P_static * chips * T * t_step`` (``static_scope="chip"``, the default: a chip's leakage is paid whatever part of
it is used); ``static_scope="cores"`` charges the share of the cores the network uses,
``P_static * cores_used / cores_per_chip * T * t_step``. Both figures are in the estimate.

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
from hw_models.mapping import HOST, CoreMapping, core_owner, map_cores
from hw_models.profiles import INPUT_DELIVERIES, PROFILES, STATIC_SCOPES, DeviceProfile
from neuromorph.spec import ModelSpec
from neuromorph.structure import INPUT

ENERGY_KINDS = ("synops", "macs", "neuron_updates", "idle_updates", "spikes", "messages", "hops")


@dataclass(frozen=True)
class PopulationEnergy:
    """Joules per sample of one population, by kind of event (``neuron_updates_j``: the active updates), and the
    counts per sample that only pricing knows (messages and hops from the mapping, updates of the encoding layer)."""

    name: str
    synops_j: float = 0.0
    macs_j: float = 0.0
    neuron_updates_j: float = 0.0
    idle_updates_j: float = 0.0
    spikes_j: float = 0.0
    messages_j: float = 0.0
    hops_j: float = 0.0
    messages: float = 0.0
    hops_east_west: float = 0.0
    hops_north_south: float = 0.0
    off_chip_messages: float = 0.0
    active_updates: float = 0.0
    idle_updates: float = 0.0

    @property
    def total_j(self) -> float:
        return sum(getattr(self, f"{kind}_j") for kind in ENERGY_KINDS)

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
class CoreWork:
    """Mean events per step on one core, and the time they take (``work_s``)."""

    layer: str
    core: int
    synops: float
    active_updates: float
    idle_updates: float
    spikes: float
    messages: float
    work_s: float

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
    time_per_step_how: str = ""
    busiest_core: CoreWork | None = None
    cores: int | None = None

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
                "time_per_step_how": self.time_per_step_how,
                "busiest_core": self.busiest_core.to_dict() if self.busiest_core else None,
                "chips": self.chips, "cores": self.cores, "ann": self.ann.to_dict(), "snn_to_ann": self.snn_to_ann,
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


@dataclass(frozen=True)
class _Routed:
    """Per sample, per source: messages, tile hops east-west and north-south, destinations on another chip."""

    messages: float = 0.0
    east_west: float = 0.0
    north_south: float = 0.0
    off_chip: float = 0.0


def _routed(counts: ActivityCounts, mapping: CoreMapping, analog_events: torch.Tensor | None) -> dict[str, _Routed]:
    """What each source sends per sample: its spikes (or, for analog input delivered on the chip, ``analog_events``:
    graded spikes per pixel over all samples) weighted by destination cores and hops."""
    senders = dict(counts.spike_totals)
    if analog_events is not None:
        senders[INPUT] = analog_events
    out = {}
    for name, events in senders.items():
        weights = [mapping.destination_cores[name]]
        hops = mapping.hops.get(name)
        if hops is not None:
            weights += [hops.east_west, hops.north_south, hops.off_chip]
        values = [float((events.double() * w.reshape(events.shape).double()).sum()) / max(counts.samples, 1)
                  for w in weights]
        out[name] = _Routed(*values)
    return out


def estimate_energy(
    spec: ModelSpec,
    counts: ActivityCounts,
    profile: DeviceProfile,
    mapping: CoreMapping | None = None,
    input_delivery: str = "host-graded",
    static_scope: str = "chip",
) -> EnergyEstimate:
    """Energy per sample of the counted run on ``profile`` (see the module docstring).

    ``mapping``: the core mapping of ``spec`` on ``profile.cores`` (made here when None, or when it does not match
    ``input_delivery``: the encoder needs the input placed on the chip).
    """
    from neuromorph.errors import NeuromorphError

    if input_delivery not in INPUT_DELIVERIES:
        raise NeuromorphError(f"input_delivery must be one of {', '.join(INPUT_DELIVERIES)}, got {input_delivery!r}")
    if static_scope not in STATIC_SCOPES:
        raise NeuromorphError(f"static_scope must be one of {', '.join(STATIC_SCOPES)}, got {static_scope!r}")
    profile.check_priceable()
    steps = counts.time_steps
    analog = counts.input_nonzero is not None
    on_chip_analog = profile.event_driven and profile.energy_per_mac_j is None and analog
    delivery = input_delivery if on_chip_analog else "none"
    if profile.core_limits is not None and (mapping is None or mapping.input_on_chip != (delivery == "encoder")):
        mapping = map_cores(spec, profile.core_limits, input_on_chip=delivery == "encoder")
    not_priced: list[str] = []
    analog_events = counts.input_nonzero * steps if delivery != "none" else None
    routed = _routed(counts, mapping, analog_events) if mapping is not None and profile.event_driven else {}
    priced_hops = (mapping is not None and mapping.mesh is not None
                   and (profile.energy_per_hop_east_west_j is not None
                        or profile.energy_per_hop_north_south_j is not None))
    graded = float(analog_events.sum()) / max(counts.samples, 1) if analog_events is not None else 0.0
    populations = [_population_energy(p, profile, steps, routed.get(p.name, _Routed()), delivery, priced_hops,
                                      graded) for p in counts.populations]

    if analog and profile.event_driven and profile.energy_per_mac_j is None and delivery == "none":
        not_priced.append(f"MACs of the direct-encoded input layer: {profile.name} gives no MAC energy (a chip "
                          "takes analog input off-chip; choose input_delivery host-graded or encoder)")
    if profile.event_driven and (any(p.spikes > 0 for p in counts.populations) or delivery != "none"):
        if profile.energy_per_message_j is not None and mapping is None:
            not_priced.append("messages: no core mapping for this device")
        if profile.energy_per_message_j is None and profile.energy_per_spike_j is None:
            not_priced.append("spike generation and routing: no per-spike or per-message energy in the profile")
        if mapping is not None and not priced_hops:
            why = (f"no mesh placement for {mapping.chip}" if mapping.mesh is None
                   else f"{profile.name} gives no per-hop energy")
            not_priced.append(f"mesh hops between cores: {why}")
        off_chip = sum(r.off_chip for r in routed.values())
        if off_chip > 0:
            not_priced.append(f"chip-to-chip links: {off_chip:.4g} messages per sample go to another chip; the "
                              "profile gives no link energy (their hops on each chip are not counted either)")
    idle = sum(p.idle_updates for p in populations)  # the encoding layer's too
    if profile.event_driven and any(p.neuron_updates > 0 for p in counts.populations):
        if not counts.idle_counted:
            not_priced.append("idle neuron updates: not counted for this arithmetic (only Norse float states are "
                              "compared), so every update is priced as active")
        elif idle > 0 and profile.energy_per_idle_neuron_update_j is None:
            not_priced.append(f"idle neuron updates are priced as active: {profile.name} gives no idle cost")
    if profile.cores:
        if delivery == "host-graded":
            not_priced.append("the host's side of the input (making the graded spikes and sending them over the "
                              "chip's I/O link): off the chip")
        not_priced.append("reading the readout's voltages out to the host each step: off-chip I/O, not in the "
                          "profile")

    static_j, step_s, step_kind, chip_j, cores_j, how, busiest = 0.0, None, "none", 0.0, 0.0, "", None
    chips = mapping.chips if mapping is not None else None
    if profile.static_power_w is not None:
        step_s, step_kind, how, busiest = _time_per_step(counts, profile, mapping, delivery)
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
                          static_cores_j=cores_j, static_scope=static_scope, input_delivery=delivery,
                          time_per_step_how=how, busiest_core=busiest,
                          cores=mapping.total_cores if mapping is not None else None)


def _ann_reference(profile: DeviceProfile) -> DeviceProfile:
    """Where the equivalent ANN is priced: the named reference, else the device itself when it can do MACs (a
    clock-driven device prices them as its ops), else the 45 nm arithmetic."""
    if profile.ann_reference:
        return PROFILES[profile.ann_reference]
    if not profile.event_driven or profile.energy_per_mac_j is not None:
        return profile
    return PROFILES["ann45nm"]


def _idle_cost(profile: DeviceProfile, kind: str) -> float:
    """The idle update's ``energy`` or ``latency``; the active one where the profile gives no idle figure."""
    idle = f"{kind}_per_idle_neuron_update_{'j' if kind == 'energy' else 's'}"
    active = f"{kind}_per_neuron_update_{'j' if kind == 'energy' else 's'}"
    return profile.cost(idle) if getattr(profile, idle) is not None else profile.cost(active)


def _population_energy(
    p: PopulationActivity, profile: DeviceProfile, steps: int, routed: _Routed, delivery: str = "none",
    priced_hops: bool = False, graded_spikes: float = 0.0,
) -> PopulationEnergy:
    """``graded_spikes``: the analog input's graded spikes per sample (T x non-zero pixels) when it is delivered."""
    e_update = profile.cost("energy_per_neuron_update_j")
    if not profile.event_driven:  # every neuron computed every step: no idle updates
        update_j = p.neuron_updates * e_update
        if p.role == "input-analog":  # constant over time: computed once
            e_mac = profile.cost("energy_per_mac_j") if profile.energy_per_mac_j else profile.cost("energy_per_synop_j")
            return PopulationEnergy(p.name, macs_j=p.dense_connections * e_mac, neuron_updates_j=update_j,
                                    active_updates=p.neuron_updates)
        return PopulationEnergy(p.name, synops_j=steps * p.dense_connections * profile.cost("energy_per_synop_j"),
                                neuron_updates_j=update_j, active_updates=p.neuron_updates)
    active, idle, spikes = p.active_updates, p.idle_updates, p.spikes
    synops, macs = p.synops, p.macs
    if p.role == "input-analog":
        synops, macs, spikes = (steps * p.macs, 0.0, 0.0) if delivery != "none" else (0.0, p.macs, 0.0)
        if delivery == "encoder":  # one compartment per pixel: active and spiking where the pixel is not zero
            active, spikes = graded_spikes, graded_spikes
            idle = steps * p.neurons - graded_spikes
    hops = (routed.east_west, routed.north_south) if priced_hops else (0.0, 0.0)
    return PopulationEnergy(
        p.name,
        synops_j=synops * profile.cost("energy_per_synop_j"),
        macs_j=macs * profile.cost("energy_per_mac_j"),
        neuron_updates_j=active * e_update,
        idle_updates_j=idle * _idle_cost(profile, "energy"),
        spikes_j=0.0 if p.role == "input-spikes" else spikes * profile.cost("energy_per_spike_j"),
        messages_j=routed.messages * profile.cost("energy_per_message_j"),
        hops_j=hops[0] * profile.cost("energy_per_hop_east_west_j") + hops[1] * profile.cost(
            "energy_per_hop_north_south_j"),
        messages=routed.messages, hops_east_west=hops[0], hops_north_south=hops[1], off_chip_messages=routed.off_chip,
        active_updates=active, idle_updates=idle,
    )


def core_work(
    counts: ActivityCounts, profile: DeviceProfile, mapping: CoreMapping, input_delivery: str = "none"
) -> list[CoreWork]:
    """Mean events per step on every core of ``mapping``, and their time on ``profile`` (module docstring).

    Synaptic operations into a core: the presynaptic events (spikes, or the analog input's graded spikes when it is
    delivered) times the synapses each presynaptic neuron has into that core. Updates, spikes and messages: those of
    the neurons the core holds (hw_models.mapping.core_owner).
    """
    steps, samples = counts.time_steps, max(counts.samples, 1)
    per_step = 1.0 / (steps * samples)
    latency = {
        "synops": profile.cost("latency_per_synop_s"), "active": profile.cost("latency_per_neuron_update_s"),
        "idle": _idle_cost(profile, "latency"), "spikes": profile.cost("latency_per_spike_s"),
        "messages": profile.cost("latency_per_message_s"),
    }
    analog = counts.input_nonzero * steps if counts.input_nonzero is not None and input_delivery != "none" else None
    senders = {**counts.spike_totals, **({INPUT: analog} if analog is not None else {})}
    out = []
    for layer in mapping.layers:
        cores = layer.cores
        if layer.presynaptic == HOST or layer.presynaptic not in senders:
            synops = torch.zeros(cores, dtype=torch.float64)
        else:
            synapses = mapping.synapse_counts[layer.name].flatten(start_dim=1).double()  # [cores, presynaptic]
            synops = synapses @ senders[layer.presynaptic].flatten().double()
        if layer.name == INPUT:  # the encoding layer: a compartment is active and spikes where its pixel is not 0
            shape = tuple(counts.input_nonzero.shape)
            active = analog
            idle = steps * samples - analog
            spikes = analog
        else:
            shape = tuple(counts.spike_totals[layer.name].shape) if layer.name in counts.spike_totals else None
            idle = counts.idle_totals.get(layer.name)
            if shape is None:
                shape = tuple(idle.shape) if idle is not None else (layer.neurons,)
            if idle is None:
                idle = torch.zeros(shape, dtype=torch.float64)
            active = steps * samples - idle
            spikes = counts.spike_totals.get(layer.name, torch.zeros(shape, dtype=torch.float64))
        dest = mapping.destination_cores.get(layer.name)
        messages = spikes * dest.reshape(shape) if dest is not None else torch.zeros(shape, dtype=torch.float64)
        owner = core_owner(shape, cores)

        def per_core(values: torch.Tensor, owner=owner, cores=cores) -> torch.Tensor:
            return torch.zeros(cores, dtype=torch.float64).index_add_(0, owner, values.double().flatten())

        events = {"synops": synops, "active": per_core(active), "idle": per_core(idle), "spikes": per_core(spikes),
                  "messages": per_core(messages)}
        work = sum(events[k] * latency[k] for k in latency)
        for core in range(cores):
            out.append(CoreWork(layer=layer.name, core=mapping.first_core[layer.name] + core,
                                synops=float(events["synops"][core]) * per_step,
                                active_updates=float(events["active"][core]) * per_step,
                                idle_updates=float(events["idle"][core]) * per_step,
                                spikes=float(events["spikes"][core]) * per_step,
                                messages=float(events["messages"][core]) * per_step,
                                work_s=float(work[core]) * per_step))
    return out


def _time_per_step(
    counts: ActivityCounts, profile: DeviceProfile, mapping: CoreMapping | None, input_delivery: str
) -> tuple[float | None, str, str, CoreWork | None]:
    """``(seconds, kind of the figure, how it was obtained, the busiest core)``."""
    if profile.time_per_step_s is not None:
        return (profile.cost("time_per_step_s"), profile.time_per_step_s.kind,
                "the profile's time_per_step_s", None)
    if mapping is None or profile.latency_per_step_sync_s is None:
        return None, "none", "", None
    work = core_work(counts, profile, mapping, input_delivery)
    busiest = max(work, key=lambda w: w.work_s)
    sync = profile.cost("latency_per_step_sync_s")
    how = (f"derived from per-core work: busiest core {busiest.core} ({busiest.layer}) {busiest.work_s * 1e9:.4g} ns "
           f"+ barrier {sync * 1e9:.4g} ns")
    return busiest.work_s + sync, "derived", how, busiest


def spike_energy_weights(spec: ModelSpec, profile: DeviceProfile, mapping: CoreMapping | None = None) -> list:
    """Joules one spike of each neuron costs, per spike source of ``spec`` (the order of ``SpikingNet.sources``).

    ``e_synop * psi[i] + e_spike + e_message * dest_cores[i] + e_hop_ew * hops_ew[i] + e_hop_ns * hops_ns[i]`` on an
    event-driven device (no ``e_spike`` for input spikes, which come from the host). Summed against spike counts
    with hw_models.opcount it gives exactly the spike-driven part of :func:`estimate_energy`.
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
            hops = mapping.hops.get(source.name)
            if hops is not None:
                w = (w + hops.east_west * profile.cost("energy_per_hop_east_west_j")
                     + hops.north_south * profile.cost("energy_per_hop_north_south_j"))
        weights.append(w)
    return weights


def neuron_update_energy(spec: ModelSpec, profile: DeviceProfile) -> float:
    """Joules per sample of the neuron updates: every LIF and readout neuron, every step, priced as active (which
    updates are idle depends on the run; for the penalty the term is a constant either way)."""
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
    neuron-update energy (a constant, every update priced as active). For binary spikes and p = 1 it is the dynamic
    energy of :func:`estimate_energy` without the analog input's row (fixed by the data), with idle updates priced
    as active, and without static energy; for other p the spike-driven part is that divided by p.
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
