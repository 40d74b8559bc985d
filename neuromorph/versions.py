"""Versions of the packages that shape a file this project writes; checkpoints and exports record them."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

BASE_PACKAGES = ("neuromorph", "torch", "norse")


def tool_versions(*extra_packages: str) -> dict[str, str]:
    """``{package: version}`` of :data:`BASE_PACKAGES` and then ``extra_packages``; ``"unknown"`` when one is not
    installed."""
    versions = {}
    for package in dict.fromkeys((*BASE_PACKAGES, *extra_packages)):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "unknown"
    return versions
