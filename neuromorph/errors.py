"""The one exception type for errors a user can cause; the CLI turns it into one line and exit status 1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


class NeuromorphError(Exception):
    """A user-facing error: bad input, a missing or corrupt file, an unsupported layer or setting."""


def lookup(registry: Mapping[str, T], name: str, what: str) -> T:
    """``registry[name]``, or the one error line for an unknown ``what`` that names the supported ones."""
    if name not in registry:
        raise NeuromorphError(f"unknown {what} {name!r}; supported: {', '.join(registry)}")
    return registry[name]
