"""Shared by the example studies (``recipe_ablation.py``, ``penalty_recipe.py``): each row of a study is one
``neuromorph train`` run in its own folder, one torch thread, trained once: a row whose ``metrics.json`` says it is
finished is read back and an unfinished one resumed from its checkpoint, so a study continues after an interruption
and two copies can share its rows (``--only``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def train_once(folder: Path, flags: list[str], label: str, data_root: str | None = None,
               train: bool = True) -> list[dict] | None:
    """The run's per-epoch history (``metrics.json``), training it first where it is missing (None where it is
    missing and ``train`` is False). ``flags`` are ``neuromorph train``'s, without ``--out``."""
    metrics = folder / "metrics.json"
    record = json.loads(metrics.read_text()) if metrics.is_file() else None
    if record is None or record["epochs_done"] < record["train_config"]["epochs"]:
        if not train:
            return None
        # an interrupted run continues after its last finished epoch
        resume = ["--resume"] if record is not None and (folder / "checkpoint.pt").is_file() else []
        command = [sys.executable, "-m", "neuromorph", "train", "--threads", "1", "--quiet", *flags, *resume,
                   "--out", str(folder)]
        if data_root:
            command += ["--data-root", data_root]
        started = time.time()
        print(f"[{time.strftime('%H:%M:%S')}] {folder.name}{' (resumed)' if resume else ''}: {label}", flush=True)
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        print(f"  done in {time.time() - started:.0f} s", flush=True)
        record = json.loads(metrics.read_text())
    return record["history"]
