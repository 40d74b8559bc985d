"""The settings of a training run: everything about it except the model description (:mod:`neuromorph.spec`).

A checkpoint stores them as its ``train_config`` dict (:meth:`TrainConfig.to_dict`) and reads them back typed
(:meth:`TrainConfig.from_dict`, ``Checkpoint.config``). The defaults here are the ``train`` command's flag defaults.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import InitVar, asdict, dataclass, fields
from typing import Any

from neuromorph.augment import get_augmentation
from neuromorph.errors import NeuromorphError
from neuromorph.penalties import get_lambda_schedule, get_penalty
from neuromorph.schedules import get_lr_schedule

# the annotations a setting may have -> the values it accepts (a bool is no number here)
_ACCEPTED: dict[str, type | tuple[type, ...]] = {"int": numbers.Integral, "float": numbers.Real, "str": str,
                                                 "bool": bool, "None": type(None)}
_COERCE = {"int": int, "float": float, "str": str, "bool": bool}


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a training run except the model description.

    ``penalty`` is a name in :data:`neuromorph.penalties.PENALTIES`, weighted by ``lam`` (0 = off: the penalty then
    changes nothing) on the ``lam_schedule``. ``device_profile`` is the profile the ``energy`` penalty prices on.
    ``imported_from`` marks a checkpoint that was not trained here (``import-nir``: the NIR file it was read from).

    ``check_profile=False`` skips resolving ``device_profile`` (what reading a saved config does: the profile file
    it names may have moved since, and only training needs it).
    """

    dataset: str = "mnist"
    data_root: str | None = None
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    lr_schedule: str = "constant"  # neuromorph.schedules: constant, cosine or onecycle, stepped every batch
    weight_decay: float = 0.0  # decoupled weight decay (AdamW); 0 = plain Adam
    augment: str = "none"  # neuromorph.augment: none, crop or flip-crop (training batches only)
    seed: int = 0  # weights, shuffling and Poisson noise
    penalty: str = "synaptic"
    lam: float = 0.0
    lam_schedule: str = "constant"
    ramp_epochs: int = 1
    power: float = 1.0  # exponent p of the synaptic penalty
    train_limit: int | None = None
    test_limit: int | None = None
    device: str = "cpu"
    init_rate: float = 0.05  # initial weights rescaled so that each hidden layer fires at this rate (0 = off)
    device_profile: str | None = None  # hw_models.profiles name or profile file; the energy penalty prices on it
    loihi_exact: bool = False  # compute as Loihi fixed point does (export/loihi_exact.py): the export is exact
    init_from: str | None = None  # start from this checkpoint's model and weights (fine-tuning), not from scratch
    imported_from: str | None = None  # not trained here: made by import-nir from this NIR file
    check_profile: InitVar[bool] = True

    def __post_init__(self, check_profile: bool) -> None:
        self._check_types()
        get_penalty(self.penalty)
        if check_profile:
            get_penalty(self.penalty).check_settings(self.device_profile)
        get_lambda_schedule(self.lam_schedule)
        get_lr_schedule(self.lr_schedule)
        get_augmentation(self.augment)
        for name in ("epochs", "batch_size", "ramp_epochs"):
            if getattr(self, name) <= 0:
                raise NeuromorphError(f"{name} must be positive, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise NeuromorphError(f"learning rate must be positive, got {self.lr}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise NeuromorphError(f"weight decay must be >= 0, got {self.weight_decay}")
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise NeuromorphError(f"lambda must be >= 0, got {self.lam}")
        if not (math.isfinite(self.init_rate) and 0 <= self.init_rate < 1):
            raise NeuromorphError(f"initial firing rate must be in [0, 1), got {self.init_rate}")
        if not (math.isfinite(self.power) and self.power > 0):
            raise NeuromorphError(f"penalty power p must be positive, got {self.power}")
        if not 0 <= self.seed < 2**63:  # what torch.manual_seed and torch.Generator take
            raise NeuromorphError(f"seed must be an integer in [0, 2**63 - 1], got {self.seed}")

    def _check_types(self) -> None:
        """Each setting of the type its annotation says (paths become strings, whole numbers of floats floats)."""
        for f in fields(self):
            kinds = [kind.strip() for kind in str(f.type).split("|")]
            value = getattr(self, f.name)
            if isinstance(value, os.PathLike) and "str" in kinds:
                value = os.fspath(value)
            accepted = tuple(_ACCEPTED[kind] for kind in kinds)
            if not isinstance(value, accepted) or (isinstance(value, bool) and "bool" not in kinds):
                raise NeuromorphError(f"training setting {f.name} must be {f.type}, got {value!r}")
            if value is not None:
                value = _COERCE[next(k for k in kinds if k != "None")](value)
            object.__setattr__(self, f.name, value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], check_profile: bool = True) -> TrainConfig:
        """Settings from their dict form. Keys this version does not know are ignored (a newer file still loads),
        missing ones take their defaults (an older file still loads)."""
        if not isinstance(data, Mapping):
            raise NeuromorphError(f"training settings must be a dict, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}, check_profile=check_profile)

