"""The torch device a command or a training run computes on, from its name (``cpu``, ``cuda[:N]`` or ``auto``)."""

from __future__ import annotations

import torch

from neuromorph.errors import NeuromorphError


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when a GPU is available, else CPU; one clear error for CUDA without a GPU or a bad name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NeuromorphError("device 'cuda' requested but no CUDA GPU is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise NeuromorphError(f"unknown device {name!r}; use cpu, cuda or auto") from None
