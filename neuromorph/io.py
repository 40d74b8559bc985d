"""Atomic file writing: a reader never sees a half-written file, and a failed write leaves nothing behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from neuromorph.errors import NeuromorphError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike, folder: bool = False) -> Path:
    """Refuse, before any work is done, an output path that cannot be written: empty, a directory where a file
    belongs (a file where a folder belongs, with ``folder``), a NUL byte, a name too long, or under a file or a
    folder that cannot be written. Nothing is created."""
    try:
        return _check_writable(os.fspath(path), folder)
    except OSError as error:  # a path too long as a whole, a loop of links, ...
        raise NeuromorphError(f"cannot write {os.fspath(path)[:60]!r}: {error.strerror or error}") from None


def _check_writable(text: str, folder: bool) -> Path:
    if not text or "\x00" in text:
        raise NeuromorphError(f"cannot write {text!r}: not a {'folder' if folder else 'file'} path")
    path = Path(text)
    if not folder and path.name in ("", ".", ".."):
        raise NeuromorphError(f"cannot write {text!r}: not a file path")
    limit = os.pathconf("/", "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
    if any(len(part.encode("utf-8", "surrogateescape")) > limit for part in path.parts):
        raise NeuromorphError(f"cannot write {text[:60]!r}...: a name in it is longer than {limit} bytes")
    if not folder and path.is_dir():
        raise NeuromorphError(f"cannot write {text!r}: it is a directory")
    if folder and path.exists() and not path.is_dir():
        raise NeuromorphError(f"cannot write into {text!r}: it is a file, not a folder")
    ancestor = path if folder else path.parent
    ancestor = ancestor.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NeuromorphError(f"cannot write {text!r}: {str(ancestor)!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise NeuromorphError(f"cannot write {text!r}: {str(ancestor)!r} is not writable")
    return path


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = check_writable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise NeuromorphError(f"cannot write {str(path)!r}: {error.strerror or error}") from None
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the permissions open() would
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:  # disk full, a directory put in the way meanwhile, ...
        Path(tmp).unlink(missing_ok=True)
        raise NeuromorphError(f"cannot write {str(path)!r}: {error.strerror or error}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    return atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
