"""The torch device a command or a training run computes on, from its name (``cpu``, ``cuda[:N]`` or ``auto``)."""

from __future__ import annotations

import os

import torch

from neuromorph.errors import NeuromorphError


def resolve_device(name: str) -> torch.device:
    """``auto`` is CUDA when a GPU is available, else CPU; one clear error for CUDA without a GPU or a bad name."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise NeuromorphError("device 'cuda' requested but no CUDA GPU is available")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise NeuromorphError(f"unknown device {name!r}; use cpu, cuda or auto") from None
    if device.type not in ("cpu", "cuda"):  # mps, meta, xpu, ...: not computed on here
        raise NeuromorphError(f"device {name!r} is not supported; use cpu, cuda[:N] or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise NeuromorphError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def default_threads() -> int:
    """torch's own thread count (one per core), less one for each core already busy (the 1-minute load average):
    on a busy machine OpenMP threads that wait on a descheduled peer can make a step many times slower than one
    thread, so a loaded machine gets fewer threads, never fewer than one."""
    try:
        busy = int(os.getloadavg()[0] + 0.5)
    except OSError:  # no load average on this platform
        busy = 0
    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - busy))


MAX_THREADS_PER_CORE = 4


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (``None``: :func:`default_threads`); returns the number set."""
    count = default_threads() if threads is None else threads
    most = MAX_THREADS_PER_CORE * (os.cpu_count() or 1)
    if not 1 <= count <= most:  # thousands of threads exhaust OpenMP's memory and crash the process
        raise NeuromorphError(f"--threads must be between 1 and {most} ({MAX_THREADS_PER_CORE} per core of this "
                              f"machine), got {count}")
    torch.set_num_threads(count)
    return count
