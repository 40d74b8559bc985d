"""The torch device a command or a training run computes on, from its name (``cpu``, ``cuda[:N]`` or ``auto``)."""

from __future__ import annotations

import ctypes
import os
import sys

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


MALLOC_ENV = "NEUROMORPH_MALLOC"  # "system": leave the C allocator as it is
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
_ALLOCATOR: dict[str, bool] = {}


def keep_freed_memory() -> bool:
    """Make glibc's allocator keep large freed blocks for reuse instead of handing them back to the kernel; returns
    whether it is set (False: not glibc, or ``NEUROMORPH_MALLOC=system``). Idempotent, once per process.

    Why: torch allocates CPU tensors with ``malloc``, and glibc serves blocks above its mmap threshold (at most
    32 MB, so every ``[T*B, C, H, W]`` map of a CNN) with a fresh ``mmap`` and returns them with ``munmap`` when
    freed, so each training step page-faults all of its large tensors in again, zero-filled by the kernel.
    Measured on the 2-core development machine, one thread: CNN 16c5-p2-32c5-p2-10 at T = 16, batch 64 (the
    benchmark's), about 48,000 page faults and 240 ms per training step against 0 faults and 100 ms with this set;
    the fashion-cnn preset (T = 4, batch 128), median step 262 ms against 209 ms, peak memory 1,156 MB against
    1,211 MB (a freed block is sometimes split, so the heap holds a few more); the MLPs' tensors are below the
    threshold already (no change). PyTorch's CPU tuning guides reach the same by preloading jemalloc or tcmalloc.
    """
    if "set" not in _ALLOCATOR:
        _ALLOCATOR["set"] = False
        if os.environ.get(MALLOC_ENV, "").lower() != "system" and sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None)
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # not glibc (musl has no mallopt)
                return False
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            _ALLOCATOR["set"] = bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30) and mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _ALLOCATOR["set"]
