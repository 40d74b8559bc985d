"""The benchmark scripts run (smallest settings, nothing timed): a script the README quotes must not rot unseen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_script(name: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_training_benchmark_runs_and_reports_every_column():
    result = run_script("bench_training.py", "--models", "mlp", "--time-steps", "2", "--repeats", "1", "--rounds",
                        "1", "--threads", "1", "--json")
    row = json.loads(result.stdout)["results"][0]
    assert row["max_logit_diff"] == 0.0  # the plain loop and the model give the same spikes
    for column in ("plain", "ours", "penalty", "norse cells", "torch kernel", "floor"):
        assert row["samples_per_s"][column] > 0, column
    assert row["step_over_floor"] > 0 and row["saved_for_backward_mb"]["ours"] > 0


@pytest.mark.slow
def test_loihi_exact_benchmark_runs():
    result = run_script("bench_loihi_exact.py", "--rounds", "1", "--threads", "1")
    assert "mlp 784-400-10" in result.stdout and "cnn" in result.stdout
