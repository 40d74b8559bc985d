"""``neuromorph energy`` and ``train --penalty energy`` run for real; user errors end in one line, exit 1."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from hw_models.energy_report import energy_report
from neuromorph.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from neuromorph.cli import main
from neuromorph.data import Split, shared_data_root
from neuromorph.models import build_model
from neuromorph.spec import mlp_spec
from neuromorph.training import TrainConfig

needs_shared = pytest.mark.skipif(shared_data_root() is None, reason="../shared/datasets is not present")
BAD_PROFILE = """
name = "bad"
[energy_per_synop_j]
value = -1e-12
source = "nowhere"
kind = "measured"
[energy_per_neuron_update_j]
value = 1e-12
source = "nowhere"
kind = "measured"
"""
USER_LOIHI2 = """
name = "my-loihi2"
base = "loihi2"
[energy_per_synop_j]
value = 1.0e-11
source = "our lab measurement, 2025"
kind = "measured"
[energy_per_neuron_update_j]
value = 2.0e-11
source = "our lab measurement, 2025"
kind = "measured"
"""


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuromorph", *args], capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and fragment in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def mnist_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    spec = mlp_spec(hidden=(16,), time_steps=4)
    model = build_model(spec)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    save_checkpoint(path, Checkpoint(spec=spec, model_state=model.state_dict(), train_config={"dataset": "mnist"}))
    return path


@needs_shared
def test_energy_command_prints_table_and_writes_json_and_png(mnist_checkpoint, tmp_path):
    (tmp_path / "mine.toml").write_text(USER_LOIHI2)
    result = run_cli("energy", str(mnist_checkpoint), "--samples", "48", "--out", str(tmp_path / "report"), "--quiet",
                     "--device-profile", "loihi1", "--device-profile", "ann45nm",
                     "--device-profile", str(tmp_path / "mine.toml"))
    assert result.returncode == 0, result.stderr
    for text in ("SNN against the equivalent ANN", "core mapping on loihi1", "core mapping on loihi2", "my-loihi2",
                 "binding limit", "input delivery host-graded", "static share of the cores used", "energy.png",
                 "idle neuron updates", "tile hops", "cores at", "derived from per-core work"):
        assert text in result.stdout
    report = json.loads((tmp_path / "report" / "energy.json").read_text())
    assert report["samples"] == 48 and [s["profile"] for s in report["summary"]] == ["loihi1", "ann45nm", "my-loihi2"]
    loihi = report["estimates"][0]
    assert loihi["static_j"] > 0 and loihi["dynamic_j"] > 0 and loihi["ann"]["profile"] == "ann45nm"
    assert loihi["constants"]["energy_per_synop_j"]["kind"] == "simulated"
    assert report["mappings"]["loihi1"]["total_cores"] >= 2 and report["profiles"]["my-loihi2"]["cores"] == "loihi2"
    assert (tmp_path / "report" / "energy.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("flag", ["--input-delivery", "--static-scope"])
def test_energy_command_refuses_bad_settings(mnist_checkpoint, flag):
    result = run_cli("energy", str(mnist_checkpoint), flag, "bogus")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "invalid choice: 'bogus'" in lines[0], result.stderr


def test_energy_report_refuses_bad_settings_in_one_line():
    from neuromorph.errors import NeuromorphError

    with pytest.raises(NeuromorphError, match="unknown static scope 'share'; choose one of chip, cores"):
        energy_report(build_model(mlp_spec(hidden=(4,), time_steps=2)), static_scope="share")


def test_energy_command_refuses_bad_profiles(mnist_checkpoint, tmp_path, capsys):
    (tmp_path / "bad.toml").write_text(BAD_PROFILE)
    assert_one_line_error(run_cli("energy", str(mnist_checkpoint), "--device-profile", str(tmp_path / "bad.toml")),
                          "must not be negative")
    assert main(["energy", str(mnist_checkpoint), "--device-profile", "loihi2"]) == 1
    assert "no published per-operation energies" in capsys.readouterr().err


@needs_shared
def test_train_with_energy_penalty(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", "mnist", "--hidden", "16", "--penalty", "energy", "--device-profile",
                     "loihi1", "--lam", "1e5", "--epochs", "1", "--train-limit", "128", "--test-limit", "64",
                     "--time-steps", "4", "--batch-size", "64", "--quiet", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout)
    assert 1e-9 < final["train_penalty"] < 1e-4  # joules per sample on Loihi 1
    assert load_checkpoint(out).train_config["device_profile"] == "loihi1"




def test_energy_penalty_needs_a_device_profile(tmp_path, capsys):
    assert main(["train", "--penalty", "energy", "--lam", "1", "--out", str(tmp_path / "x")]) == 1
    assert "needs a device profile" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_energy_penalty_config_is_validated():
    with pytest.raises(Exception, match="clock-driven"):
        TrainConfig(penalty="energy", device_profile="cpu")
    with pytest.raises(Exception, match="no published per-operation energies"):
        TrainConfig(penalty="energy", device_profile="loihi2")
    assert TrainConfig(penalty="energy", device_profile="loihi1-calibrated").device_profile == "loihi1-calibrated"
    assert TrainConfig.from_dict({"penalty": "none"}).device_profile is None  # older checkpoints still load


def test_python_api_one_call():
    torch.manual_seed(0)
    spec = mlp_spec(input_shape=(1, 6, 6), hidden=(8,), num_classes=3, time_steps=3)
    images = (torch.rand((20, 1, 6, 6), generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    split = Split(images, torch.arange(20) % 3)
    report = energy_report(build_model(spec), profiles=["loihi1", "gpu"], split=split, batch_size=8)
    assert report.counts.samples == 20 and [e.profile for e in report.estimates] == ["loihi1", "gpu"]
    gpu = report.estimate("gpu")
    assert gpu.snn_to_ann > 1  # a clock-driven device computes every synapse on every step
    assert "SNN/ANN" in report.text() and set(report.mappings) == {"loihi1", "loihi2"}
    encoder = energy_report(build_model(spec), profiles=["loihi1"], split=split, batch_size=8,
                            input_delivery="encoder", static_scope="cores")
    loihi = encoder.to_dict()["estimates"][0]
    assert loihi["input_delivery"] == "encoder" and loihi["static_scope"] == "cores"
    assert loihi["static_j"] == loihi["static_cores_j"] < loihi["static_chip_j"]
    assert set(loihi["by_kind_j"]) == {"synops", "macs", "neuron_updates", "idle_updates", "spikes", "messages",
                                       "hops"}
    assert encoder.to_dict()["mappings"]["loihi1"]["placement"][0]["layer"] == "input"
    assert "cores at" in encoder.text() and "per-core work" in encoder.text()


def test_a_network_too_wide_for_loihi1_is_still_priced_on_other_profiles():
    """5,000 inputs to the readout exceed a Loihi 1 core's input axons: the loihi1 mapping is left out of a report
    that does not price on loihi1, and refused with one line where it does."""
    import pytest

    from hw_models.energy_report import energy_report
    from neuromorph.errors import NeuromorphError
    from neuromorph.models import build_model
    from neuromorph.spec import mlp_spec
    from tests.helpers import synthetic_split

    model = build_model(mlp_spec(input_shape=(1, 8, 8), hidden=(5000,), num_classes=4, time_steps=2))
    split = synthetic_split(8)
    report = energy_report(model, profiles=["ann45nm"], split=split)
    assert "loihi1" not in report.mappings and report.estimates[0].total_j > 0
    with pytest.raises(NeuromorphError, match="does not fit on loihi1"):
        energy_report(model, profiles=["loihi1"], split=split)
