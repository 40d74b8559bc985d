"""Device profiles: every constant carries unit, source and kind; profile files are validated with one clear error."""

from __future__ import annotations

import json

import pytest

from hw_models.profiles import (
    CONSTANT_KINDS,
    PROFILES,
    Constant,
    load_profile_file,
    priceable_profiles,
    resolve_profile,
    unit_of,
)
from neuromorph.errors import NeuromorphError

LOIHI2_TOML = """
name = "my-loihi2"
base = "loihi2"
description = "Loihi 2 with constants from our own measurement"

[energy_per_synop_j]
value = 1.0e-11
source = "our lab, Kapoho Point board, 2025-03 measurement"
kind = "measured"

[energy_per_neuron_update_j]
value = 2.0e-11
unit = "J"
source = "our lab, same run"
kind = "measured"
"""


def test_builtin_profiles_carry_provenance():
    for profile in PROFILES.values():
        for name, constant in profile.constants().items():
            assert constant.unit == unit_of(name)
            assert constant.source.strip() and constant.kind in CONSTANT_KINDS
            assert constant.value >= 0
    assert set(priceable_profiles()) == {"loihi1", "loihi1-calibrated", "ann45nm", "cpu", "gpu", "arm"}
    assert PROFILES["loihi1"].energy_per_synop_j.value == 23.6e-12
    assert PROFILES["loihi1-calibrated"].energy_per_message_j.value == 111.0e-12
    assert PROFILES["ann45nm"].energy_per_mac_j.value == 4.6e-12
    assert PROFILES["gpu"].energy_per_synop_j.value == 0.3e-9 and not PROFILES["gpu"].event_driven


def test_loihi2_refuses_to_invent_energies():
    with pytest.raises(NeuromorphError, match="no published per-operation energies"):
        PROFILES["loihi2"].check_priceable()
    assert PROFILES["loihi2"].energy_per_synop_j is None and PROFILES["loihi2"].core_limits.neurons_per_core == 8192


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_user_profile_file(tmp_path, suffix):
    import tomllib

    path = tmp_path / f"mine{suffix}"
    if suffix == ".toml":
        path.write_text(LOIHI2_TOML)
    else:
        path.write_text(json.dumps(tomllib.loads(LOIHI2_TOML)))
    profile = resolve_profile(str(path))
    profile.check_priceable()
    assert profile.name == "my-loihi2" and profile.cores == "loihi2" and profile.ann_reference == "ann45nm"
    assert profile.energy_per_synop_j == Constant(1.0e-11, "J", "our lab, Kapoho Point board, 2025-03 measurement",
                                                  "measured")


def _write(tmp_path, text: str, name="bad.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, fragment", [
    (LOIHI2_TOML.replace('source = "our lab, same run"\n', ""), "missing 'source'"),
    (LOIHI2_TOML.replace("value = 1.0e-11", "value = -1.0e-11"), "must not be negative"),
    (LOIHI2_TOML + "\nfrequency_hz = 5\n", "unknown field(s) 'frequency_hz'"),
    (LOIHI2_TOML.replace('kind = "measured"\n\n[energy_per_neuron', 'kind = "guessed"\n\n[energy_per_neuron'),
     "kind must be one of measured, simulated, derived"),
    (LOIHI2_TOML.replace('unit = "J"', 'unit = "pJ"'), "is in J, not 'pJ'"),
    (LOIHI2_TOML.replace('kind = "measured"\n\n[energy_per_neuron', 'kind = "measured"\ncomment = "x"\n\n'
                         '[energy_per_neuron'), "unknown field(s) 'comment'"),
    (LOIHI2_TOML.replace('value = 1.0e-11', 'value = "ten"'), "finite number"),
    ('name = "x"\nbase = "loihi2"\n', "lacks energy_per_synop_j, energy_per_neuron_update_j"),
    ('name = "x"\nbase = "loihi3"\n', "unknown base profile 'loihi3'"),
    ("name = [", "is not valid TOML"),
])
def test_bad_profile_files_are_refused(tmp_path, text, fragment):
    with pytest.raises(NeuromorphError) as caught:
        load_profile_file(_write(tmp_path, text))
    message = str(caught.value)
    assert fragment in message and "\n" not in message and "bad.toml" in message


def test_unknown_profile_name_lists_the_builtins(tmp_path):
    with pytest.raises(NeuromorphError, match="built-in: loihi1, loihi1-calibrated"):
        resolve_profile("loihi9")
    with pytest.raises(NeuromorphError, match="does not exist"):
        resolve_profile(str(tmp_path / "missing.toml"))
