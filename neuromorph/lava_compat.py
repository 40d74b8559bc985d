"""Make lava-nc 0.10.0 and lava-dl 0.6.0 import on Python 3.11, without touching the installed files.

On Python 3.11, dataclasses reject a default whose type is an unhashable dataclass instance. lava-nc 0.10.0's
``lava/magma/compiler/var_model.py`` declares ``x: ByteEncoder = ByteEncoder()`` in three dataclasses, so
``import lava.magma...`` fails with "mutable default <class 'ByteEncoder'> for field x is not allowed: use
default_factory". The fix below is an import hook: when that module is imported, its source is read and every
``= ByteEncoder()`` default becomes ``= field(default_factory=ByteEncoder)`` before it is compiled. Nothing on disk
changes, and other modules are untouched. Call :func:`install` (or :func:`import_lava`) before importing Lava.

Heavy backends load late: ``import neuromorph`` does not import Lava.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
from types import ModuleType

from neuromorph.errors import NeuromorphError

PATCHED_MODULE = "lava.magma.compiler.var_model"
_DEFAULT = re.compile(r"=\s*ByteEncoder\(\)")
_FACTORY_DEFAULT = '= __import__("dataclasses").field(default_factory=ByteEncoder)'


def patch_var_model_source(source: str) -> str:
    """Rewrite ``= ByteEncoder()`` dataclass defaults as ``default_factory`` fields."""
    return _DEFAULT.sub(_FACTORY_DEFAULT, source)


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    def get_data(self, path: str) -> bytes:  # called with the .py path for the source
        data = super().get_data(path)
        if path.endswith(".py"):
            return patch_var_model_source(data.decode("utf-8")).encode("utf-8")
        return data

    def get_code(self, fullname: str):  # never use the (unpatched) bytecode cache
        source = self.get_data(self.path)
        return compile(source, self.path, "exec", dont_inherit=True)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != PATCHED_MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.origin and spec.origin.endswith(".py"):
                spec.loader = _PatchingLoader(fullname, spec.origin)
                return spec
        return None


def install() -> None:
    """Register the import hook (idempotent)."""
    if not any(isinstance(finder, _VarModelFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _VarModelFinder())


def import_lava(module: str = "lava.magma.core.run_configs") -> ModuleType:
    """Install the hook and import a Lava module, with one clear error when Lava is not installed."""
    install()
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] == "lava":
            raise NeuromorphError(
                "Lava is not installed: run `make venv` (it installs lava-nc 0.10.0 and lava-dl 0.6.0 "
                "with --no-deps --ignore-requires-python)"
            ) from None
        raise
