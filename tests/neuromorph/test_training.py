"""Training: reproducible from a seed, resumable exactly, learning on a small task, atomic outputs."""

from __future__ import annotations

import json

import pytest
import torch

from neuromorph.checkpoint import load_checkpoint, save_checkpoint
from neuromorph.errors import NeuromorphError
from neuromorph.io import atomic_write
from neuromorph.training import TrainConfig, train
from tests.helpers import synthetic_split

TIMING_KEYS = ("train_seconds", "train_samples_per_second")


def _strip_timing(history):
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


def _fit(spec, split, **kwargs):
    settings = dict(epochs=2, batch_size=32, lr=3e-3, seed=7, penalty="synaptic", lam=1e-3)
    settings.update(kwargs.pop("config", {}))
    return train(spec, TrainConfig(**settings), progress=False, train_split=split, test_split=split, **kwargs)


def test_seeded_training_is_reproducible(tiny_mlp_spec, tiny_split):
    first = _fit(tiny_mlp_spec, tiny_split)
    second = _fit(tiny_mlp_spec, tiny_split)
    assert _strip_timing(first.history) == _strip_timing(second.history)
    for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    third = _fit(tiny_mlp_spec, tiny_split, config={"seed": 8})
    assert _strip_timing(third.history) != _strip_timing(first.history)


def test_poisson_training_is_reproducible(tiny_split):
    from neuromorph.spec import EncoderSpec, mlp_spec

    spec = mlp_spec(input_shape=(1, 8, 8), hidden=(16,), num_classes=4, time_steps=5,
                    encoder=EncoderSpec(kind="poisson"))
    first, second = _fit(spec, tiny_split), _fit(spec, tiny_split)
    assert _strip_timing(first.history) == _strip_timing(second.history)
    assert "input" in first.final["synops_per_layer"]


def test_resume_continues_exactly(tiny_cnn_spec, tmp_path):
    split = synthetic_split(96, shape=(1, 12, 12))
    straight = _fit(tiny_cnn_spec, split, config={"epochs": 3})
    _fit(tiny_cnn_spec, split, config={"epochs": 1}, out_dir=tmp_path)
    resumed = _fit(tiny_cnn_spec, split, config={"epochs": 3}, out_dir=tmp_path, resume=True)
    assert _strip_timing(resumed.history) == _strip_timing(straight.history)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["epochs_done"] == 3 and len(metrics["history"]) == 3


def test_learns_and_records_metrics(tiny_mlp_spec, tiny_split, tmp_path):
    result = _fit(tiny_mlp_spec, tiny_split, config={"epochs": 6, "lam": 0.0, "lr": 1e-2}, out_dir=tmp_path)
    final = result.final
    assert final["test_accuracy"] > 0.9
    assert set(final["spike_rate"]) == {"lif1", "lif2"}
    assert final["synops_per_sample"] == pytest.approx(sum(final["synops_per_layer"].values()))
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.epoch == 6 and ckpt.spec == tiny_mlp_spec and ckpt.train_config["lam"] == 0.0
    rebuilt = ckpt.build_model()
    for a, b in zip(rebuilt.state_dict().values(), result.model.state_dict().values(), strict=True):
        assert torch.equal(a, b.cpu())


def test_penalty_lowers_synops(tiny_mlp_spec, tiny_split):
    plain = _fit(tiny_mlp_spec, tiny_split, config={"epochs": 4, "lam": 0.0})
    penalized = _fit(tiny_mlp_spec, tiny_split, config={"epochs": 4, "lam": 3e-3})
    assert penalized.final["synops_per_sample"] < 0.7 * plain.final["synops_per_sample"]


def test_resume_without_checkpoint_is_refused(tiny_mlp_spec, tiny_split, tmp_path):
    with pytest.raises(NeuromorphError, match="nothing to resume"):
        _fit(tiny_mlp_spec, tiny_split, out_dir=tmp_path, resume=True)


def test_wrong_data_shape_is_refused(tiny_mlp_spec):
    with pytest.raises(NeuromorphError, match="expects"):
        _fit(tiny_mlp_spec, synthetic_split(16, shape=(1, 9, 9)))


@pytest.mark.parametrize("settings", [{"epochs": 0}, {"lr": -1.0}, {"lam": float("nan")}, {"penalty": "l1"},
                                      {"lam_schedule": "cosine"}, {"power": 0.0}])
def test_bad_settings_are_refused(settings):
    with pytest.raises(NeuromorphError):
        TrainConfig(**settings)


def test_corrupt_and_foreign_checkpoints(tmp_path, tiny_mlp_spec):
    from neuromorph.checkpoint import Checkpoint
    from neuromorph.models import build_model

    path = tmp_path / "good.pt"
    model = build_model(tiny_mlp_spec)
    save_checkpoint(path, Checkpoint(tiny_mlp_spec, model.state_dict()))
    (tmp_path / "truncated.pt").write_bytes(path.read_bytes()[:500])
    (tmp_path / "text.pt").write_text("hello")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    assert load_checkpoint(path).spec == tiny_mlp_spec
    for name, message in [("truncated.pt", "corrupt"), ("text.pt", "not a neuromorph"),
                          ("foreign.pt", "not a neuromorph"), ("missing.pt", "does not exist")]:
        with pytest.raises(NeuromorphError, match=message):
            load_checkpoint(tmp_path / name)
    state = model.state_dict()
    state["blocks.0.synapse.weight"][0, 0] = float("nan")
    save_checkpoint(tmp_path / "nan.pt", Checkpoint(tiny_mlp_spec, state))
    with pytest.raises(NeuromorphError, match="NaN"):
        load_checkpoint(tmp_path / "nan.pt").build_model()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def failing(handle):
        handle.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_write_uses_normal_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "f.bin", lambda handle: handle.write(b"x"))
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
