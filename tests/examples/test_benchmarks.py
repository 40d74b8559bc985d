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


@pytest.mark.slow
def test_penalty_recipe_reads_each_row_against_its_own_baseline(tmp_path):
    from tests.test_fuzz import write_mnist_layout

    write_mnist_layout(tmp_path / "data", n=512)  # synthetic: the run must not depend on a dataset on disk
    rows = ("base", "baseT4", "const3e-6T4")
    flags = ("--out", str(tmp_path / "runs"), "--data-root", str(tmp_path / "data"), "--quick", "--only", *rows)
    run_script("penalty_recipe.py", *flags)
    done = {r["name"]: r for r in json.loads((tmp_path / "runs" / "penalty_recipe.json").read_text())["rows"]}
    assert sorted(done) == sorted(rows) and done["const3e-6T4"]["against"] == "baseT4"
    specs = {name: json.loads((tmp_path / "runs" / name / "metrics.json").read_text())["spec"] for name in rows}
    assert specs["base"]["time_steps"] == 8 and specs["baseT4"]["time_steps"] == 4  # the preset, written out, changed
    assert {k: v for k, v in specs["base"].items() if k not in ("time_steps", "name")} == {
        k: v for k, v in specs["baseT4"].items() if k not in ("time_steps", "name")}
    again = run_script("penalty_recipe.py", *flags)
    assert "done in" not in again.stdout  # finished rows are read back, not trained again
