"""Checkpoints: one file name, typed settings validated on load, the versions every written file records."""

from __future__ import annotations

import json

import pytest
import torch

from neuromorph.checkpoint import CHECKPOINT_NAME, Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint
from neuromorph.config import TrainConfig
from neuromorph.errors import NeuromorphError
from neuromorph.models import build_model
from neuromorph.versions import BASE_PACKAGES, tool_versions


def _save(path, spec, train_config):
    return save_checkpoint(path, Checkpoint(spec, build_model(spec).state_dict(), train_config=train_config))


def test_folder_means_its_checkpoint_file(tmp_path, tiny_mlp_spec):
    _save(tmp_path / CHECKPOINT_NAME, tiny_mlp_spec, {})
    assert checkpoint_path(tmp_path) == tmp_path / CHECKPOINT_NAME == checkpoint_path(tmp_path / CHECKPOINT_NAME)
    assert load_checkpoint(tmp_path).spec == tiny_mlp_spec


def test_settings_are_typed_and_saved_as_a_dict(tmp_path, tiny_mlp_spec):
    config = TrainConfig(dataset="cifar10", seed=5, lam=2e-5)
    _save(tmp_path / "a.pt", tiny_mlp_spec, config.to_dict())
    ckpt = load_checkpoint(tmp_path / "a.pt")
    assert ckpt.config == config and ckpt.config.seed == 5
    saved = torch.load(tmp_path / "a.pt", weights_only=True)["train_config"]
    assert isinstance(saved, dict) and json.loads(json.dumps(saved)) == config.to_dict()  # plain data
    _save(tmp_path / "partial.pt", tiny_mlp_spec, {"dataset": "cifar10"})  # as older files and tests write them
    assert load_checkpoint(tmp_path / "partial.pt").config == TrainConfig(dataset="cifar10")


@pytest.mark.parametrize("train_config, fragment", [
    ({"seed": "zero"}, "seed must be int"), ({"penalty": "l1"}, "unknown penalty 'l1'"), (["not", "a", "dict"], "dict"),
])
def test_bad_saved_settings_are_one_error_naming_the_file(tmp_path, tiny_mlp_spec, train_config, fragment):
    _save(tmp_path / "bad.pt", tiny_mlp_spec, train_config)
    with pytest.raises(NeuromorphError, match="has invalid training settings") as error:
        load_checkpoint(tmp_path / "bad.pt")
    assert fragment in str(error.value) and "bad.pt" in str(error.value)


def test_energy_checkpoint_loads_after_its_profile_file_moved(tmp_path, tiny_mlp_spec):
    _save(tmp_path / "e.pt", tiny_mlp_spec, {"penalty": "energy", "device_profile": str(tmp_path / "gone.toml")})
    assert load_checkpoint(tmp_path / "e.pt").config.penalty == "energy"


def test_one_tool_versions_for_every_file(tmp_path, tiny_mlp_spec):
    from export.netx_export import _lava_versions
    from export.nir_export import tool_versions as nir_versions

    base = tool_versions()
    assert tuple(base) == BASE_PACKAGES and "unknown" not in base.values()
    assert tool_versions("nir")["nir"] != "unknown" and tool_versions("no-such-package")["no-such-package"] == "unknown"
    assert {**base, "nir": tool_versions("nir")["nir"]}.items() <= nir_versions().items()
    assert {"lava-nc", "lava-dl"} <= set(_lava_versions())
    _save(tmp_path / "v.pt", tiny_mlp_spec, {})
    assert load_checkpoint(tmp_path / "v.pt").versions == base
