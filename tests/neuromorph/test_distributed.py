"""Training on torch.distributed: two gloo processes on the CPU give the weights of one process with the same global
batch (float tolerance), and rank 0 alone writes."""

from __future__ import annotations

import os
import socket

import torch
import torch.multiprocessing as mp

from neuromorph.config import TrainConfig
from neuromorph.spec import EncoderSpec, mlp_spec
from neuromorph.training import train
from tests.helpers import synthetic_split

SPEC = mlp_spec(input_shape=(1, 8, 8), hidden=(16,), num_classes=4, time_steps=4,
                encoder=EncoderSpec(kind="poisson", max_rate_hz=300.0))
CONFIG = TrainConfig(dataset="synthetic", epochs=2, batch_size=8, lr=1e-2, seed=3, lam=1e-4, init_rate=0.1)


def _run(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    import neuromorph.training as training

    local_batches = []
    cross_entropy = training.F.cross_entropy

    def recording(logits, labels, **kwargs):
        if not kwargs:  # the training step's loss (evaluation asks for reduction="sum")
            local_batches.append(logits.shape[0])
        return cross_entropy(logits, labels, **kwargs)

    training.F.cross_entropy = recording
    try:
        result = train(SPEC, CONFIG, out_dir=out, progress=False, train_split=synthetic_split(32, seed=1),
                       test_split=synthetic_split(16, seed=2))
        torch.save({"weights": {k: v.detach() for k, v in result.model.state_dict().items()},
                    "local_batches": local_batches}, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_train_the_weights_of_one(tmp_path, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    alone = train(SPEC, CONFIG, out_dir=tmp_path / "one", progress=False, train_split=synthetic_split(32, seed=1),
                  test_split=synthetic_split(16, seed=2))
    shared = tmp_path / "two"
    shared.mkdir()
    mp.spawn(_run, args=(2, _free_port(), str(shared)), nprocs=2, join=True)
    saved = [torch.load(shared / f"rank{r}.pt") for r in (0, 1)]
    for rank in saved:  # 32 samples, global batch 8: each rank takes 4 of every batch, 4 batches per epoch
        assert rank["local_batches"] == [4] * 8
    ranks = [rank["weights"] for rank in saved]
    for name, weight in alone.model.state_dict().items():
        assert torch.equal(ranks[0][name], ranks[1][name]), "DDP keeps the ranks' weights identical"
        torch.testing.assert_close(ranks[0][name], weight, rtol=1e-4, atol=1e-5)
    assert (shared / "checkpoint.pt").is_file() and (shared / "metrics.json").is_file()
    assert (shared / "checkpoint.pt").stat().st_size > 0
