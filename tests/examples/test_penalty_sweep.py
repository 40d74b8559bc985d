"""The penalty sweep on sliced data: shards share one results.json, a finished point is not trained again."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from neuromorph.data import shared_data_root
from neuromorph.errors import NeuromorphError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("penalty_sweep", ROOT / "examples" / "penalty_sweep.py")
sweep = importlib.util.module_from_spec(_spec)
sys.modules["penalty_sweep"] = sweep  # dataclasses look their module up there
_spec.loader.exec_module(sweep)

TINY = ["--dataset", "mnist", "--model", "mlp", "--sizes", "16", "--epochs", "1", "--train-limit", "256",
        "--test-limit", "64", "--time-steps", "4", "--batch-size", "64", "--device", "cpu",
        "--points", "none:0", "spikes:1e-4", "synaptic:1e-5", "synaptic:2e-5:2"]


def test_parse_shard():
    assert sweep.parse_shard("2/3") == (2, 3)
    for bad in ("0/2", "3/2", "1", "a/b"):
        with pytest.raises(argparse.ArgumentTypeError):
            sweep.parse_shard(bad)


def test_pareto_front_and_cost_at_accuracy():
    points = [{"synops_per_sample": s, "test_accuracy": a} for s, a in ((10, 0.80), (20, 0.85), (30, 0.84), (40, 0.9))]
    front = sweep.pareto_front(points, "synops_per_sample")
    assert [r["synops_per_sample"] for r in front] == [10, 20, 40]
    assert sweep.min_cost_at_accuracy(points, 0.84, "synops_per_sample") == 20
    assert sweep.min_cost_at_accuracy(points, 0.95, "synops_per_sample") is None


def test_preset_points_pair_the_penalties_per_lambda():
    points = sweep.preset_points((1e-6, 1e-5), mean_fan_out=100.0)
    expected = [("none", 0.0, 1.0), ("spikes", 1e-4, 1.0), ("synaptic", 1e-6, 1.0), ("spikes", 1e-3, 1.0),
                ("synaptic", 1e-5, 1.0), ("synaptic", 2e-6, 2.0), ("synaptic", 2e-5, 2.0)]
    assert [(name, power) for name, _, power in points] == [(name, power) for name, _, power in expected]
    assert [lam for _, lam, _ in points] == pytest.approx([lam for _, lam, _ in expected])


@pytest.mark.skipif(shared_data_root() is None, reason="../shared/datasets is not present")
def test_shards_share_results_and_resume(tmp_path, capsys):
    out = ["--out", str(tmp_path)]
    assert sweep.main([*TINY, *out, "--shard", "1/2"]) == 0
    first = json.loads((tmp_path / "results.json").read_text())["points"]
    assert sorted(first) == ["none:lam=0:p=1:seed=0", "synaptic:lam=1e-05:p=1:seed=0"]
    assert sweep.main([*TINY, *out, "--shard", "2/2"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["points"]) == 4 and results["train_images"] == 256
    for record in results["points"].values():
        assert record["energy_j"] > record["dynamic_j"] > 0 and 0 <= record["test_accuracy"] <= 1
    assert (tmp_path / "pareto.png").stat().st_size > 0
    capsys.readouterr()
    assert sweep.main([*TINY, *out]) == 0  # everything is done: nothing is trained again
    printed = capsys.readouterr().out
    assert printed.count("done already, skipped") == 4 and "epoch 1" not in printed
    with pytest.raises(NeuromorphError, match="different model, epoch count or learning rate"):
        sweep.main([*[a if a != "16" else "24" for a in TINY], *out])
    with pytest.raises(NeuromorphError, match="learning rate"):
        sweep.main([*TINY, *out, "--lr", "3e-3"])
