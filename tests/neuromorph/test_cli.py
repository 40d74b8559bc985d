"""Every CLI command runs for real on tiny data; user errors end in one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neuromorph.data import shared_data_root
from tests.helpers import write_cifar_batches

needs_shared = pytest.mark.skipif(shared_data_root() is None, reason="../shared/datasets is not present")
TINY = ["--train-limit", "256", "--test-limit", "128", "--time-steps", "4", "--batch-size", "64", "--quiet"]


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuromorph", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0] and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@needs_shared
def test_train_evaluate_info_on_mnist(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", "mnist", "--model", "mlp", "--hidden", "32", "--penalty", "synaptic",
                     "--lam", "1e-5", "--epochs", "1", *TINY, "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout)
    assert final["epoch"] == 1 and 0.0 <= final["test_accuracy"] <= 1.0 and final["synops_per_sample"] > 0
    assert (out / "checkpoint.pt").is_file() and (out / "metrics.json").is_file()
    resumed = run_cli("train", "--epochs", "2", *TINY, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "metrics.json").read_text())["epochs_done"] == 2
    evaluated = run_cli("evaluate", str(out), "--limit", "64", "--json", "--raster", str(out / "raster.png"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["samples"] == 64
    for plot in ("raster.png", "training.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    info = run_cli("info", str(out / "checkpoint.pt"))
    assert info.returncode == 0 and "Dense(out_features=32" in info.stdout and "history" in info.stdout


@needs_shared
def test_train_cnn_on_fashion_mnist(tmp_path):
    result = run_cli("train", "--dataset", "fashion-mnist", "--model", "cnn", "--channels", "4,8", "--cell",
                     "lifbox", "--epochs", "1", "--lam", "1e-7", *TINY, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "test acc" in result.stdout and "lif2" not in result.stderr


def test_train_on_synthetic_cifar10(tmp_path):
    write_cifar_batches(tmp_path / "data" / "cifar-10-batches-py", per_batch=16)
    result = run_cli("train", "--dataset", "cifar10", "--data-root", str(tmp_path / "data"), "--model", "cnn",
                     "--channels", "4", "--epochs", "1", *TINY, "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr


def test_help_explains():
    result = run_cli("train", "--help")
    assert result.returncode == 0
    for flag in ("--penalty", "--lam", "--power", "--data-root", "--train-limit", "--resume", "--seed"):
        assert flag in result.stdout


@pytest.mark.parametrize("args, code, fragment", [
    (["train", "--out", "x", "--bogus"], 2, "unrecognized arguments"),
    (["train", "--out", "x", "--penalty", "l1"], 2, "invalid choice"),
    (["train", "--out", "x", "--epochs", "-3"], 2, "positive"),
    (["train"], 2, "--out"),
    (["frobnicate"], 2, "invalid choice"),
])
def test_bad_flags(args, code, fragment):
    assert_one_line_error(run_cli(*args), code, fragment)


def test_missing_data_root(tmp_path):
    result = run_cli("train", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, 1, "does not exist")
    assert not (tmp_path / "run").exists()


def test_corrupt_and_missing_checkpoints(tmp_path):
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "text.pt").write_text("weights")
    assert_one_line_error(run_cli("evaluate", str(tmp_path / "corrupt.pt")), 1, "corrupt")
    assert_one_line_error(run_cli("info", str(tmp_path / "text.pt")), 1, "not a neuromorph checkpoint")
    assert_one_line_error(run_cli("info", str(tmp_path / "none.pt")), 1, "does not exist")
