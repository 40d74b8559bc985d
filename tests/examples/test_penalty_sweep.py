"""The penalty sweep example on neuromorph.sweep: its presets, and a run on sliced data from the study."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from neuromorph.sweep import min_cost_at_accuracy, pareto_front

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("penalty_sweep", ROOT / "examples" / "penalty_sweep.py")
sweep = importlib.util.module_from_spec(_spec)
sys.modules["penalty_sweep"] = sweep  # dataclasses look their module up there
_spec.loader.exec_module(sweep)

TINY = ["--dataset", "mnist", "--model", "mlp", "--sizes", "16", "--epochs", "1", "--train-limit", "256",
        "--test-limit", "64", "--time-steps", "4", "--batch-size", "64", "--device", "cpu", "--threads", "1",
        "--points", "none:0", "spikes:1e-4", "synaptic:1e-5", "synaptic:2e-5:2"]


def test_pareto_front_and_cost_at_accuracy():
    points = [{"synops_per_sample": s, "test_accuracy": a} for s, a in ((10, 0.80), (20, 0.85), (30, 0.84), (40, 0.9))]
    front = pareto_front(points, "synops_per_sample")
    assert [r["synops_per_sample"] for r in front] == [10, 20, 40]
    assert min_cost_at_accuracy(points, 0.84, "synops_per_sample") == 20
    assert min_cost_at_accuracy(points, 0.95, "synops_per_sample") is None


def test_preset_points_pair_the_penalties_per_lambda():
    points = sweep.preset_points((1e-6, 1e-5), fan_out=100.0)
    expected = [("none", 0.0, 1.0), ("spikes", 1e-4, 1.0), ("synaptic", 1e-6, 1.0), ("spikes", 1e-3, 1.0),
                ("synaptic", 1e-5, 1.0), ("synaptic", 2e-6, 2.0), ("synaptic", 2e-5, 2.0)]
    assert [(name, power) for name, _, power in points] == [(name, power) for name, _, power in expected]
    assert [lam for _, lam, _ in points] == pytest.approx([lam for _, lam, _ in expected])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from tests.test_fuzz import write_mnist_layout

    root = tmp_path_factory.mktemp("penalty-sweep-data")
    write_mnist_layout(root, n=256)
    return root


def test_a_sweep_runs_from_its_study_and_resumes(data_root, tmp_path, capsys):
    out = ["--data-root", str(data_root), "--out", str(tmp_path)]
    assert sweep.main([*TINY, *out]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["points"]) == 4 and results["settings"]["train_limit"] == 256
    assert len(results["groups"]) == 4 and {g["label"] for g in results["groups"]} == {
        "none", "spikes", "synaptic p=1", "synaptic p=2"}
    for record in results["points"].values():
        assert record["energy_j"] > record["dynamic_j"] > 0 and 0 <= record["test_accuracy"] <= 1
    assert (tmp_path / "pareto.png").stat().st_size > 0 and (tmp_path / "study.db").is_file()
    capsys.readouterr()
    assert sweep.main([*TINY, *out]) == 0  # everything is done: nothing is trained again
    printed = capsys.readouterr().out
    assert "this worker ran 0 trial(s)" in printed and " epoch 1:" not in printed
    from neuromorph.errors import NeuromorphError

    with pytest.raises(NeuromorphError, match=r"other settings \(spec differ\)"):
        sweep.main([*[a if a != "16" else "24" for a in TINY], *out])
    with pytest.raises(NeuromorphError, match=r"other settings \(lr differ\)"):
        sweep.main([*TINY, *out, "--lr", "3e-3"])


def test_quick_preset_sets_its_slices():
    import argparse

    parsed = {}
    original = sweep.run
    try:
        sweep.run = lambda args: parsed.setdefault("args", args) and 0
        sweep.main(["--experiment", "fashion-mlp", "--quick", "--out", "unused"])
    finally:
        sweep.run = original
    args = parsed["args"]
    assert isinstance(args, argparse.Namespace)
    assert (args.dataset, args.epochs, args.train_limit, args.test_limit) == ("fashion-mnist", 2, 2000, 500)
    assert tuple(args.sizes) == (100, 50) and args.points[0] == ("none", 0.0, 1.0) and len(args.points) == 13
