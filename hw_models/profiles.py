"""Device profiles: what each counted event costs on a device, with the source of every number.

A :class:`DeviceProfile` is frozen data. Each cost is a :class:`Constant` carrying its value, its unit (the suffix of
the field name: ``_j`` joules, ``_w`` watts, ``_s`` seconds), its source and whether it was ``measured`` on hardware,
``simulated`` (e.g. pre-silicon SPICE) or ``derived`` (computed from other published numbers). A field left
``None`` means the source gives no such cost: the energy report says the event was not priced on that device.

How a profile prices a network (hw_models.energy):

- event-driven devices (neuromorphic chips, and the idealized 45 nm arithmetic): a synaptic operation per spike and
  synapse (``energy_per_synop_j``), a multiply-accumulate per non-zero analog input and synapse
  (``energy_per_mac_j``), a neuron update per neuron per step (``energy_per_idle_neuron_update_j`` for a step in
  which the neuron is idle, when the profile gives it), a spike per spike generated, a message per spike and
  destination core, and each tile hop of a message on the chip's mesh (``energy_per_hop_east_west_j``,
  ``energy_per_hop_north_south_j``);
- clock-driven devices (CPU/GPU/ARM, as KerasSpiking prices them): every synapse every step, as a MAC.

Built-in profiles live in :data:`PROFILES`. Users add their own from a TOML or JSON file (:func:`load_profile_file`);
Loihi 2 has no published per-operation energies, so its built-in profile carries only the core limits and refuses to
price anything until a file supplies the constants and their source.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from hw_models.loihi import LOIHI1_CORE, LOIHI2_CORE, LoihiCoreLimits
from neuromorph.errors import NeuromorphError

CONSTANT_KINDS = ("measured", "simulated", "derived")
UNIT_SUFFIXES = {"_j": "J", "_w": "W", "_s": "s"}


@dataclass(frozen=True)
class Constant:
    """One cost: ``value`` in ``unit``, where it comes from, and how it was obtained (see CONSTANT_KINDS)."""

    value: float
    unit: str
    source: str
    kind: str

    def __post_init__(self) -> None:
        if (isinstance(self.value, bool) or not isinstance(self.value, int | float)
                or (isinstance(self.value, int) and abs(self.value) > 1e300) or not math.isfinite(self.value)):
            raise NeuromorphError(f"a constant must be a finite number, got {self.value!r:.60}")
        if self.value < 0:
            raise NeuromorphError(f"a constant must not be negative, got {self.value!r} {self.unit}")
        if not isinstance(self.source, str) or not self.source.strip():
            raise NeuromorphError("every constant needs a non-empty source")
        if self.kind not in CONSTANT_KINDS:
            raise NeuromorphError(f"constant kind must be one of {', '.join(CONSTANT_KINDS)}, got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "source": self.source, "kind": self.kind}


# How a chip gets a direct-encoded (analog) input, and what share of a chip's static power a network is charged
# (hw_models.energy): the settings the energy report and `neuromorph energy` offer.
INPUT_DELIVERIES = ("host-graded", "encoder", "none")
STATIC_SCOPES = ("chip", "cores")

CORE_LIMITS: dict[str, LoihiCoreLimits] = {c.name: c for c in (LOIHI1_CORE, LOIHI2_CORE)}


@dataclass(frozen=True)
class DeviceProfile:
    """What each event costs on one device. Energies in joules per event, power in watts, times in seconds.

    ``event_driven``: synapses work only when a spike arrives (else every synapse every step).
    ``cores``: name of the per-core limits in hw_models.loihi used for the core mapping (None: not a Loihi chip).
    ``ann_reference``: the profile that prices the equivalent ANN for comparison (None: this profile itself).
    ``needs_user_constants``: a template whose costs are unpublished; it refuses to price anything.
    Static energy is ``static_power_w * chips * time_steps * time_per_step_s``; without ``time_per_step_s`` the step
    time is derived from the ``latency_*`` constants and the core mapping (hw_models.energy).
    """

    name: str
    description: str
    event_driven: bool = True
    energy_per_synop_j: Constant | None = None
    energy_per_mac_j: Constant | None = None
    energy_per_neuron_update_j: Constant | None = None
    energy_per_idle_neuron_update_j: Constant | None = None
    energy_per_spike_j: Constant | None = None
    energy_per_message_j: Constant | None = None
    energy_per_hop_east_west_j: Constant | None = None
    energy_per_hop_north_south_j: Constant | None = None
    energy_per_activation_j: Constant | None = None
    static_power_w: Constant | None = None
    time_per_step_s: Constant | None = None
    latency_per_synop_s: Constant | None = None
    latency_per_neuron_update_s: Constant | None = None
    latency_per_idle_neuron_update_s: Constant | None = None
    latency_per_spike_s: Constant | None = None
    latency_per_message_s: Constant | None = None
    latency_per_step_sync_s: Constant | None = None
    cores: str | None = None
    ann_reference: str | None = None
    needs_user_constants: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise NeuromorphError("a device profile needs a name")
        for name in constant_fields():
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, Constant):
                raise NeuromorphError(f"profile {self.name!r}: {name} must be a Constant, got {value!r}")
            if value.unit != unit_of(name):
                raise NeuromorphError(f"profile {self.name!r}: {name} is in {unit_of(name)}, not {value.unit!r}")
        if self.cores is not None and self.cores not in CORE_LIMITS:
            raise NeuromorphError(f"profile {self.name!r}: unknown cores {self.cores!r}; known: "
                                  f"{', '.join(CORE_LIMITS)}")
        if not self.needs_user_constants:
            missing = [n for n in REQUIRED_CONSTANTS if getattr(self, n) is None]
            if missing:
                raise NeuromorphError(f"profile {self.name!r} lacks {', '.join(missing)}")

    @property
    def core_limits(self) -> LoihiCoreLimits | None:
        return CORE_LIMITS[self.cores] if self.cores else None

    def cost(self, name: str) -> float:
        """Value of constant ``name`` (0.0 when the profile does not price it)."""
        constant = getattr(self, name)
        return 0.0 if constant is None else float(constant.value)

    def check_priceable(self) -> None:
        """Refuse a template profile whose costs have not been supplied."""
        if self.needs_user_constants:
            raise NeuromorphError(
                f"{self.name} has no published per-operation energies, so neuromorph will not invent them: write a "
                f"profile file (TOML or JSON) with base = \"{self.name}\", your constants and their source, and pass "
                "its path as the device profile"
            )

    def constants(self) -> dict[str, Constant]:
        return {n: getattr(self, n) for n in constant_fields() if getattr(self, n) is not None}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "description": self.description, "event_driven": self.event_driven,
                               "cores": self.cores, "ann_reference": self.ann_reference,
                               "needs_user_constants": self.needs_user_constants}
        out.update({n: c.to_dict() for n, c in self.constants().items()})
        return out


REQUIRED_CONSTANTS = ("energy_per_synop_j", "energy_per_neuron_update_j")


def constant_fields() -> list[str]:
    return [f.name for f in fields(DeviceProfile) if f.name[-2:] in UNIT_SUFFIXES]


def unit_of(field_name: str) -> str:
    return UNIT_SUFFIXES[field_name[-2:]]


# --- Sources --------------------------------------------------------------------------------------------------------

DAVIES_2018 = "Davies et al., 'Loihi: a neuromorphic manycore processor with on-chip learning', IEEE Micro 38(1) 2018"
SANAFE = ("SANA-FE arch/loihi.yaml as shipped in sanafe 2.2.9 (Boyle et al., IEEE TCAD 2025; constants fitted to "
          "Loihi measurements, within 12 % of measured energy)")
FRADY_2020 = "Frady et al. 2020: 3.34 W static power for a 32-chip Loihi system, measured"
HOROWITZ_2014 = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm estimates"
KERAS_SPIKING = ("keras-spiking 0.3.0 ModelEnergy device table (each synop/neuron update one MAC), from Degnan, Marr "
                 "and Hasler, IEEE TVLSI 24(1) 2015")


def _c(value: float, unit: str, source: str, kind: str) -> Constant:
    return Constant(value, unit, source, kind)


LOIHI1_STATIC = _c(3.34 / 32, "W", f"{FRADY_2020}; per chip = 3.34 W / 32", "derived")
LOIHI1_STEP_SYNC = _c(0.6e-6, "s", "SANA-FE arch/loihi.yaml (a 2024 revision): smallest entry of its latency_sync "
                      "table {1: 0.6, 2: 1.0, 4: 1.4, 29: 1.8 us}, taken as the end-of-step barrier of a small "
                      "network (the table's key is not explained there)", "derived")

LOIHI1 = DeviceProfile(
    name="loihi1",
    description="Intel Loihi 1, per-event costs from Davies et al. 2018 Table 2 (pre-silicon simulation)",
    energy_per_synop_j=_c(23.6e-12, "J", f"{DAVIES_2018}, Table 2: synaptic spike op (min)", "simulated"),
    energy_per_neuron_update_j=_c(81e-12, "J", f"{DAVIES_2018}, Table 2: neuron update, active", "simulated"),
    energy_per_idle_neuron_update_j=_c(52e-12, "J", f"{DAVIES_2018}, Table 2: neuron update, inactive",
                                       "simulated"),
    energy_per_message_j=_c(1.7e-12, "J", f"{DAVIES_2018}, Table 2: within-tile spike energy, per spike message "
                            "delivered to a core", "simulated"),
    energy_per_hop_east_west_j=_c(3.0e-12, "J", f"{DAVIES_2018}, Table 2: energy per tile hop, east-west",
                                  "simulated"),
    energy_per_hop_north_south_j=_c(4.0e-12, "J", f"{DAVIES_2018}, Table 2: energy per tile hop, north-south",
                                    "simulated"),
    static_power_w=LOIHI1_STATIC,
    latency_per_synop_s=_c(3.5e-9, "s", f"{DAVIES_2018}, Table 2: synaptic spike op time", "simulated"),
    latency_per_neuron_update_s=_c(8.4e-9, "s", f"{DAVIES_2018}, Table 2: neuron update time, active", "simulated"),
    latency_per_idle_neuron_update_s=_c(5.3e-9, "s", f"{DAVIES_2018}, Table 2: neuron update time, inactive",
                                        "simulated"),
    latency_per_message_s=_c(2.1e-9, "s", f"{DAVIES_2018}, Table 2: within-tile spike latency", "simulated"),
    latency_per_step_sync_s=LOIHI1_STEP_SYNC,
    cores="loihi1",
    ann_reference="ann45nm",
)

LOIHI1_CALIBRATED = DeviceProfile(
    name="loihi1-calibrated",
    description="Intel Loihi 1 with SANA-FE's constants fitted to hardware",
    energy_per_synop_j=_c(35.5e-12, "J", f"{SANAFE}: loihi_dense_synapse energy_spike", "derived"),
    energy_per_neuron_update_j=_c(72.8e-12, "J", f"{SANAFE}: soma energy_access_neuron 51.2 pJ + "
                                  "energy_update_neuron 21.6 pJ (earlier revisions: energy_active 72.8 pJ)", "derived"),
    energy_per_idle_neuron_update_j=_c(51.2e-12, "J", f"{SANAFE}: soma energy_access_neuron alone, the cost of a "
                                       "neuron that is not updated (earlier revisions: energy_inactive 51.2 pJ)",
                                       "derived"),
    energy_per_spike_j=_c(69.3e-12, "J", f"{SANAFE}: soma energy_spike_out", "derived"),
    energy_per_message_j=_c(111.0e-12, "J", f"{SANAFE}: axon_out energy per output message (76.8 pJ in revisions "
                            "before Jan 2024)", "derived"),
    energy_per_hop_east_west_j=_c(3.0e-12, "J", f"{SANAFE}: tile energy_east_hop / energy_west_hop", "derived"),
    energy_per_hop_north_south_j=_c(4.2e-12, "J", f"{SANAFE}: tile energy_north_hop / energy_south_hop",
                                    "derived"),
    static_power_w=LOIHI1_STATIC,
    latency_per_synop_s=_c(4.0e-9, "s", f"{SANAFE}: loihi_dense_synapse latency_spike", "derived"),
    latency_per_neuron_update_s=_c(9.7e-9, "s", f"{SANAFE}: latency_access_neuron 6.0 ns + "
                                   "latency_update_neuron 3.7 ns", "derived"),
    latency_per_idle_neuron_update_s=_c(6.0e-9, "s", f"{SANAFE}: latency_access_neuron alone (earlier revisions: "
                                        "latency_inactive 6.0 ns)", "derived"),
    latency_per_spike_s=_c(30.0e-9, "s", f"{SANAFE}: soma latency_spike_out", "derived"),
    latency_per_message_s=_c(5.1e-9, "s", f"{SANAFE}: axon_out latency", "derived"),
    latency_per_step_sync_s=LOIHI1_STEP_SYNC,
    cores="loihi1",
    ann_reference="ann45nm",
)

LOIHI2 = DeviceProfile(
    name="loihi2",
    description="Intel Loihi 2: core limits only; no per-operation energies are published, so a profile file must "
                "supply them with their source",
    cores="loihi2",
    ann_reference="ann45nm",
    needs_user_constants=True,
)

ANN_45NM = DeviceProfile(
    name="ann45nm",
    description="Arithmetic only on 45 nm (fp32): SNN as accumulates on spikes, ANN as multiply-accumulates; "
                "memory access (10-100 pJ per 64-bit SRAM read) and static power not included",
    energy_per_synop_j=_c(0.9e-12, "J", f"{HOROWITZ_2014}: fp32 add", "derived"),
    energy_per_mac_j=_c(4.6e-12, "J", f"{HOROWITZ_2014}: fp32 mult 3.7 pJ + add 0.9 pJ", "derived"),
    energy_per_neuron_update_j=_c(11.9e-12, "J", f"{HOROWITZ_2014}: Norse's LIF step (DESIGN.md section 3) as 2 "
                                  "fp32 mults (3.7 pJ) + 5 fp32 adds incl. the threshold compare (0.9 pJ)", "derived"),
    energy_per_activation_j=_c(0.9e-12, "J", f"{HOROWITZ_2014}: a ReLU as one fp32 compare, priced as an add",
                               "derived"),
)


def _von_neumann(name: str, per_op: float, what: str) -> DeviceProfile:
    op = _c(per_op, "J", f"{KERAS_SPIKING}: {name} ({what})", "derived")
    return DeviceProfile(
        name=name,
        description=f"{what}, clock-driven: every synapse and neuron every step; no static power, no data movement",
        event_driven=False, energy_per_synop_j=op, energy_per_mac_j=op, energy_per_neuron_update_j=op,
        energy_per_activation_j=op,
    )


PROFILES: dict[str, DeviceProfile] = {
    p.name: p
    for p in (
        LOIHI1,
        LOIHI1_CALIBRATED,
        LOIHI2,
        ANN_45NM,
        _von_neumann("cpu", 8.6e-9, "Intel i7-4960X"),
        _von_neumann("gpu", 0.3e-9, "Nvidia GTX Titan Black, large batches"),
        _von_neumann("arm", 0.9e-9, "ARM Cortex-A"),
    )
}


def priceable_profiles() -> list[str]:
    """Built-in profiles that carry their own constants (all but the templates)."""
    return [name for name, p in PROFILES.items() if not p.needs_user_constants]


# --- Profile files --------------------------------------------------------------------------------------------------

_TOP_LEVEL = {"name", "description", "base", "event_driven", "cores", "ann_reference"}
_CONSTANT_KEYS = {"value", "unit", "source", "kind"}


def _names(keys) -> str:
    """Keys as the file spells them (quoted: a key may hold a line break or be empty)."""
    return ", ".join(repr(k) for k in sorted(map(str, keys)))


def profile_from_dict(data: dict[str, Any], where: str = "profile") -> DeviceProfile:
    """Build a profile from a parsed file: top-level settings plus one table per constant.

    ``base`` (optional) names a built-in profile whose settings and constants are the defaults; a file that names a
    template (``base = "loihi2"``) must supply the costs itself. Each constant is a table with ``value``, ``source``,
    ``kind`` (measured, simulated or derived) and optionally ``unit`` (checked against the field's unit).
    """
    if not isinstance(data, dict):
        raise NeuromorphError(f"{where}: expected a table of settings, got {type(data).__name__}")
    known_constants = set(constant_fields())
    unknown = set(data) - _TOP_LEVEL - known_constants
    if unknown:
        raise NeuromorphError(f"{where}: unknown field(s) {_names(unknown)}; known: "
                              f"{', '.join(sorted(_TOP_LEVEL | known_constants))}")
    if "name" not in data:
        raise NeuromorphError(f"{where}: missing field 'name'")
    base_name = data.get("base")
    if base_name is not None and not isinstance(base_name, str):
        raise NeuromorphError(f"{where}: base must be the name of a built-in profile, got {base_name!r:.60}")
    if base_name is not None and base_name not in PROFILES:
        raise NeuromorphError(f"{where}: unknown base profile {base_name!r}; built-in: {', '.join(PROFILES)}")
    base = PROFILES[base_name] if base_name else None
    values: dict[str, Any] = {}
    for key in ("name", "description", "cores", "ann_reference"):
        if key in data:
            if data[key] is not None and not isinstance(data[key], str):
                raise NeuromorphError(f"{where}: {key} must be a string, got {data[key]!r}")
            values[key] = data[key]
    if "event_driven" in data:
        if not isinstance(data["event_driven"], bool):
            raise NeuromorphError(f"{where}: event_driven must be true or false, got {data['event_driven']!r}")
        values["event_driven"] = data["event_driven"]
    values.setdefault("description", f"user profile from {where}")
    for name in known_constants & set(data):
        values[name] = _constant_from_dict(data[name], name, where)
    try:
        if base is not None:
            if "ann_reference" in values and values["ann_reference"] not in PROFILES:
                raise NeuromorphError(f"unknown ann_reference {values['ann_reference']!r}")
            return replace(base, needs_user_constants=False, **values)
        if values.get("ann_reference") is not None and values["ann_reference"] not in PROFILES:
            raise NeuromorphError(f"unknown ann_reference {values['ann_reference']!r}")
        return DeviceProfile(**values)
    except NeuromorphError as error:
        raise NeuromorphError(f"{where}: {error}") from None


def _constant_from_dict(entry: Any, name: str, where: str) -> Constant:
    if not isinstance(entry, dict):
        raise NeuromorphError(f"{where}: {name} must be a table with value, source and kind, got {entry!r}")
    unknown = set(entry) - _CONSTANT_KEYS
    if unknown:
        raise NeuromorphError(f"{where}: {name}: unknown field(s) {_names(unknown)}; known: "
                              f"{', '.join(sorted(_CONSTANT_KEYS))}")
    for key in ("value", "source", "kind"):
        if key not in entry:
            raise NeuromorphError(f"{where}: {name}: missing {key!r} (every constant needs value, source and kind)")
    unit = entry.get("unit", unit_of(name))
    if unit != unit_of(name):
        raise NeuromorphError(f"{where}: {name} is in {unit_of(name)}, not {unit!r}")
    try:
        return Constant(value=entry["value"], unit=unit, source=entry["source"], kind=entry["kind"])
    except NeuromorphError as error:
        raise NeuromorphError(f"{where}: {name}: {error}") from None


def load_profile_file(path: str | os.PathLike) -> DeviceProfile:
    """Read a profile from a ``.toml`` or ``.json`` file, with one clear error for anything wrong in it."""
    path = Path(path)
    if not path.is_file():
        raise NeuromorphError(f"profile file {str(path)!r} does not exist")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise NeuromorphError(f"profile file {str(path)!r} must end in .toml or .json")
    except RecursionError:
        raise NeuromorphError(f"profile file {str(path)!r} is nested too deeply to be a profile") from None
    except OSError as error:
        raise NeuromorphError(f"profile file {str(path)!r} cannot be read: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, ValueError) as error:  # JSONDecodeError, UnicodeDecodeError, int too long
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise NeuromorphError(f"profile file {str(path)!r} is not valid {path.suffix[1:].upper()}: {reason}") from None
    return profile_from_dict(data, where=f"profile file {path.name!r}")


def resolve_profile(name_or_path: str) -> DeviceProfile:
    """A built-in profile by name, or a profile file by path."""
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    if name_or_path.endswith((".toml", ".json")) or os.sep in name_or_path:
        return load_profile_file(name_or_path)
    raise NeuromorphError(f"unknown device profile {name_or_path!r}; built-in: {', '.join(PROFILES)}; or the path "
                          "of a .toml/.json profile file")
