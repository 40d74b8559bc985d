"""Checkpoints: weights plus the model's full description, enough to rebuild it without the original command.

Layout (a ``torch.save`` dict, loaded with ``weights_only=True``): ``format``, ``format_version``, ``spec``
(:meth:`ModelSpec.to_dict`), ``train_config`` (:meth:`TrainConfig.to_dict`, read back typed as
``Checkpoint.config``), ``epoch`` (epochs completed), ``model_state``, ``optimizer_state``, ``history`` (per-epoch
metrics) and ``versions``. Written atomically; a training folder holds it as :data:`CHECKPOINT_NAME`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neuromorph.config import TrainConfig
from neuromorph.errors import NeuromorphError
from neuromorph.io import atomic_write
from neuromorph.spec import ModelSpec
from neuromorph.versions import tool_versions

FORMAT = "neuromorph.checkpoint"
FORMAT_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive
CHECKPOINT_NAME = "checkpoint.pt"  # the checkpoint's file name in a training (or import) output folder


def checkpoint_path(path: str | os.PathLike) -> Path:
    """The checkpoint file a command means by ``path``: the file itself, or :data:`CHECKPOINT_NAME` in a folder."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


@dataclass
class Checkpoint:
    spec: ModelSpec
    model_state: dict[str, torch.Tensor]
    train_config: dict[str, Any] = field(default_factory=dict)
    epoch: int = 0
    optimizer_state: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> TrainConfig:
        """``train_config`` typed (missing settings take their defaults; the energy profile is not resolved)."""
        return TrainConfig.from_dict(self.train_config, check_profile=False)

    def build_model(self):
        """Rebuild the network and load the weights (checking them for NaN/inf)."""
        from neuromorph.models import build_model

        model = build_model(self.spec)
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise NeuromorphError(f"checkpoint weights do not match its model description: {first}") from None
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise NeuromorphError(f"checkpoint weight {name!r} contains NaN or infinite values")
        return model


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": checkpoint.spec.to_dict(),
        "train_config": checkpoint.train_config,
        "epoch": checkpoint.epoch,
        "model_state": {k: v.detach().cpu() for k, v in checkpoint.model_state.items()},
        "optimizer_state": checkpoint.optimizer_state,
        "history": checkpoint.history,
        "versions": checkpoint.versions or tool_versions(),
    }
    return atomic_write(path, lambda handle: torch.save(payload, handle))


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Load a checkpoint, with one clear error for a missing, corrupt or foreign file."""
    path = checkpoint_path(path)
    if not path.is_file():
        raise NeuromorphError(f"checkpoint {str(path)!r} does not exist")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != ZIP_MAGIC:
        raise NeuromorphError(f"{str(path)!r} is not a neuromorph checkpoint (not a torch archive)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a bad file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise NeuromorphError(f"checkpoint {str(path)!r} is corrupt ({reason[:100]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise NeuromorphError(f"{str(path)!r} is not a neuromorph checkpoint")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise NeuromorphError(
            f"checkpoint {str(path)!r} has format version {payload['format_version']}; "
            f"this neuromorph reads up to {FORMAT_VERSION}"
        )
    checkpoint = Checkpoint(
        spec=ModelSpec.from_dict(payload["spec"]),
        model_state=payload["model_state"],
        train_config=payload.get("train_config", {}),
        epoch=int(payload.get("epoch", 0)),
        optimizer_state=payload.get("optimizer_state"),
        history=list(payload.get("history", [])),
        versions=payload.get("versions", {}),
    )
    try:
        checkpoint.config  # noqa: B018 - validates the saved settings once, here
    except NeuromorphError as error:
        raise NeuromorphError(f"checkpoint {str(path)!r} has invalid training settings: {error}") from None
    return checkpoint
