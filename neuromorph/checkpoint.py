"""Checkpoints: weights plus the model's full description, enough to rebuild it without the original command.

Layout (a ``torch.save`` dict, loaded with ``weights_only=True``): ``format``, ``format_version``, ``spec``
(:meth:`ModelSpec.to_dict`), ``train_config`` (:meth:`TrainConfig.to_dict`, read back typed as
``Checkpoint.config``), ``epoch`` (epochs completed), ``model_state``, ``optimizer_state``, ``history`` (per-epoch
metrics) and ``versions``. Written atomically; a training folder holds it as :data:`CHECKPOINT_NAME`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
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

    def build_model(self, fold_norm: bool = True):
        """Rebuild the network and load the weights (checking them for NaN/inf).

        With ``fold_norm`` (the default: what inference, the cost model and the exporters see), BatchNorm is folded
        into the synapses (:func:`neuromorph.models.fold_batch_norm`); training resumes with it unfolded."""
        from neuromorph.models import build_model, fold_batch_norm

        model = build_model(self.spec)
        try:
            model.load_state_dict(self.model_state)
        except RuntimeError as error:
            first = str(error).strip().splitlines()[0]
            raise NeuromorphError(f"checkpoint weights do not match its model description: {first}") from None
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise NeuromorphError(f"checkpoint weight {name!r} contains NaN or infinite values")
        return fold_batch_norm(model) if fold_norm else model


def payload_checksum(spec: dict[str, Any], model_state: dict[str, torch.Tensor]) -> str:
    """sha256 of the model description (as JSON) and every weight's name, dtype, shape and bytes."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode("utf-8"))
    for name in sorted(model_state):
        tensor = model_state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def _check_payload(payload: dict[str, Any], where: str) -> None:
    """Every field of a loaded checkpoint has the type it was written with: one line naming the field if not."""

    def bad(field_name: str, expected: str) -> NeuromorphError:
        return NeuromorphError(f"checkpoint {where} field {field_name!r} must be {expected}, "
                               f"got {payload.get(field_name)!r:.60}")

    version = payload.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad("format_version", "an integer")
    for key in ("spec", "model_state"):
        if key not in payload:
            raise NeuromorphError(f"checkpoint {where} has no {key!r}")
    state = payload["model_state"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise bad("model_state", "a state dict (names to tensors)")
    if not isinstance(payload["spec"], dict):
        raise bad("spec", "a model description (a mapping)")
    epoch = payload.get("epoch", 0)
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
        raise bad("epoch", "a non-negative integer")
    if not isinstance(payload.get("train_config", {}), dict):
        raise NeuromorphError(f"checkpoint {where} has invalid training settings: train_config must be a dict")
    history = payload.get("history", [])
    if not isinstance(history, list) or not all(
            isinstance(r, dict) and all(isinstance(k, str) for k in r)
            for r in history):
        raise bad("history", "a list of per-epoch records (mappings)")
    versions = payload.get("versions", {})
    if not isinstance(versions, dict):
        raise bad("versions", "a mapping of tool versions")
    if payload.get("optimizer_state") is not None and not isinstance(payload["optimizer_state"], dict):
        raise bad("optimizer_state", "a mapping or none")
    checksum = payload.get("checksum")
    if checksum is not None and not isinstance(checksum, str):
        raise bad("checksum", "a sha256 hex string")


def _checksum_of(payload: dict[str, Any], where: str) -> str:
    try:
        return payload_checksum(payload["spec"], payload["model_state"])
    except (TypeError, ValueError, RecursionError):  # a spec that is no JSON data (a tensor, a set, a cycle)
        raise NeuromorphError(f"checkpoint {where} field 'spec' must be a model description of JSON data") from None


def save_checkpoint(path: str | os.PathLike, checkpoint: Checkpoint) -> Path:
    spec = checkpoint.spec.to_dict()
    model_state = {k: v.detach().cpu() for k, v in checkpoint.model_state.items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "spec": spec,
        "checksum": payload_checksum(spec, model_state),
        "train_config": checkpoint.train_config,
        "epoch": checkpoint.epoch,
        "model_state": model_state,
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
    where = repr(str(path))
    _check_payload(payload, where)
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise NeuromorphError(
            f"checkpoint {str(path)!r} has format version {payload['format_version']}; "
            f"this neuromorph reads up to {FORMAT_VERSION}"
        )
    checksum = payload.get("checksum")
    if checksum is None:  # written before checksums: nothing to verify against, so load, and say so
        sys.stderr.write(f"neuromorph: warning: checkpoint {where} has no checksum (an older file); "
                         "it cannot be checked for corruption\n")
    elif checksum != _checksum_of(payload, where):
        raise NeuromorphError(f"checkpoint {where} is corrupt: its weights or model description do not match "
                              "its sha256 checksum")
    try:
        spec = ModelSpec.from_dict(payload["spec"])
    except NeuromorphError as error:
        raise NeuromorphError(f"checkpoint {where}: {error}") from None
    checkpoint = Checkpoint(
        spec=spec,
        model_state=payload["model_state"],
        train_config=payload.get("train_config", {}),
        epoch=payload.get("epoch", 0),
        optimizer_state=payload.get("optimizer_state"),
        history=list(payload.get("history", [])),
        versions=payload.get("versions", {}),
    )
    try:
        checkpoint.config  # noqa: B018 - validates the saved settings once, here
    except NeuromorphError as error:
        raise NeuromorphError(f"checkpoint {str(path)!r} has invalid training settings: {error}") from None
    return checkpoint
