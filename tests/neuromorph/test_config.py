"""Training settings are typed and validated data; the checkpoint's dict form round-trips to them."""

from __future__ import annotations

from pathlib import Path

import pytest

from neuromorph.config import TrainConfig
from neuromorph.errors import NeuromorphError
from neuromorph.penalties import lambda_at


def test_round_trip_through_dict():
    config = TrainConfig(dataset="cifar10", epochs=3, lam=1e-5, penalty="spikes", seed=4, train_limit=100)
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert "check_profile" not in config.to_dict()  # an init-only switch, not a setting


def test_old_and_newer_dicts_load():
    assert TrainConfig.from_dict({}) == TrainConfig()  # missing settings take their defaults
    assert TrainConfig.from_dict({"seed": 3, "from_the_future": 1}).seed == 3  # unknown ones are ignored
    imported = TrainConfig.from_dict({"imported_from": "model.nir", "seed": 0})  # what import-nir wrote before
    assert imported.imported_from == "model.nir" and imported.dataset == "mnist"


@pytest.mark.parametrize("settings, fragment", [
    ({"epochs": "5"}, "epochs must be int"), ({"seed": 1.5}, "seed must be int"), ({"seed": True}, "seed must be int"),
    ({"loihi_exact": 1}, "loihi_exact must be bool"), ({"lr": "fast"}, "lr must be float"),
    ({"dataset": None}, "dataset must be str"), ({"train_limit": "all"}, "train_limit must be int | None"),
])
def test_wrong_types_are_one_clear_error(settings, fragment):
    with pytest.raises(NeuromorphError, match=fragment):
        TrainConfig.from_dict(settings)


def test_numbers_and_paths_are_normalized():
    config = TrainConfig(lam=1, data_root=Path("/data"), init_from=Path("run"))
    assert config.lam == 1.0 and isinstance(config.lam, float)
    assert config.data_root == "/data" and config.init_from == "run"  # a checkpoint stores plain strings


def test_lambda_schedule_has_one_check():
    with pytest.raises(NeuromorphError) as from_config:
        TrainConfig(lam_schedule="cosine")
    with pytest.raises(NeuromorphError) as from_schedule:
        lambda_at(1.0, "cosine", 0, 1)
    assert str(from_config.value) == str(from_schedule.value) == ("unknown lambda schedule 'cosine'; supported: "
                                                                 "constant, ramp")


def test_reading_a_saved_config_does_not_resolve_its_profile(tmp_path):
    moved = {"penalty": "energy", "device_profile": str(tmp_path / "gone.toml")}
    with pytest.raises(NeuromorphError):
        TrainConfig.from_dict(moved)
    assert TrainConfig.from_dict(moved, check_profile=False).device_profile == moved["device_profile"]


def test_penalty_default_is_the_synaptic_penalty():
    assert TrainConfig().penalty == "synaptic" and TrainConfig().lam == 0.0
