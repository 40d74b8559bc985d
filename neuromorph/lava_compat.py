"""Make lava-nc 0.10.0 and lava-dl 0.6.0 import on Python 3.11, without touching the installed files.

On Python 3.11, dataclasses reject a default whose type is an unhashable dataclass instance. lava-nc 0.10.0's
``lava/magma/compiler/var_model.py`` declares ``x: ByteEncoder = ByteEncoder()`` in three dataclasses, so
``import lava.magma...`` fails with "mutable default <class 'ByteEncoder'> for field x is not allowed: use
default_factory". The fix below is an import hook: when that module is imported, its source is read and every
``= ByteEncoder()`` default becomes ``= field(default_factory=ByteEncoder)`` before it is compiled. Nothing on disk
changes, and other modules are untouched. Call :func:`install` (or :func:`import_lava`) before importing Lava.

The same hook makes Lava's ``mp.set_start_method('fork')`` (at import of its multiprocessing message
infrastructure) ``force=True``: without it, importing Lava fails with "context has already been set" in any process
that touched multiprocessing first (tqdm does, by creating a multiprocessing lock for its first progress bar).
Lava needs the fork start method, which is Linux's default on Python 3.11 anyway.

lava-dl prints a notice on stdout at import ("Prophesee Dataset Toolbox could not be found", about an
object-detection dataset neuromorph does not use); :func:`import_lava` drops it, so that stdout stays clean for
tables and JSON, and sends anything else printed at import to stderr.

Heavy backends load late: ``import neuromorph`` does not import Lava.

So that Lava imports as it is in the project's environment (``python -c "import lava.lib.dl.netx"``, with no
neuromorph code run first), ``make venv`` runs ``python -m neuromorph.lava_compat install-pth``, which writes
:data:`PTH_NAME` into the environment's site-packages: a one-line startup file that registers this hook (only the
hook: nothing is imported from Lava; it adds a few milliseconds to the interpreter's start). The hook itself stays
here, tested; setting ``NEUROMORPH_NO_LAVA_HOOK=1`` turns the startup registration off.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import io
import re
import sys
from types import ModuleType

from neuromorph.errors import NeuromorphError

# This module is imported at every interpreter start of the project's environment (the startup file below), so it
# imports only what Python has loaded by then anyway, plus re; the finder needs no importlib.abc base class.

_DEFAULT = re.compile(r"=\s*ByteEncoder\(\)")
_FACTORY_DEFAULT = '= __import__("dataclasses").field(default_factory=ByteEncoder)'
_START_METHOD = re.compile(r"mp\.set_start_method\('fork'\)")


def patch_var_model_source(source: str) -> str:
    """Rewrite ``= ByteEncoder()`` dataclass defaults as ``default_factory`` fields."""
    return _DEFAULT.sub(_FACTORY_DEFAULT, source)


def patch_start_method_source(source: str) -> str:
    """Make Lava's ``mp.set_start_method('fork')`` tolerate a start method that is already fixed."""
    return _START_METHOD.sub("mp.set_start_method('fork', force=True)", source)


# module -> source rewrite; each keeps the line count, so tracebacks point at the right lines
LAVA_MULTIPROCESSING = "lava.magma.runtime.message_infrastructure.multiprocessing"
PATCHES = {
    "lava.magma.compiler.var_model": patch_var_model_source,
    LAVA_MULTIPROCESSING: patch_start_method_source,
}


class _PatchingLoader(importlib.machinery.SourceFileLoader):
    def get_data(self, path: str) -> bytes:  # called with the .py path for the source
        data = super().get_data(path)
        if path.endswith(".py"):
            return PATCHES[self.name](data.decode("utf-8")).encode("utf-8")
        return data

    def get_code(self, fullname: str):  # never use the (unpatched) bytecode cache
        source = self.get_data(self.path)
        return compile(source, self.path, "exec", dont_inherit=True)


class _VarModelFinder:  # a meta path finder (importlib.abc.MetaPathFinder's protocol)
    def find_spec(self, fullname, path, target=None):
        if fullname not in PATCHES:
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


PTH_NAME = "neuromorph-lava-compat.pth"
STARTUP_OFF = "NEUROMORPH_NO_LAVA_HOOK"
# One line, as site.py executes it; it stays quiet when neuromorph is not importable from this environment.
PTH_LINE = ('import sys; exec("try:\\n from neuromorph.lava_compat import startup\\nexcept ImportError:\\n pass\\n'
            'else:\\n startup()")\n')


def startup() -> None:
    """Called by the startup file at interpreter start: register the hook unless turned off."""
    import os

    if not os.environ.get(STARTUP_OFF):
        install()


def install_pth(site_packages: str | None = None) -> str:
    """Write the startup file into ``site_packages`` (default: this environment's), atomically; returns its path."""
    import os
    import sysconfig
    import tempfile

    folder = site_packages or sysconfig.get_paths()["purelib"]
    path = os.path.join(folder, PTH_NAME)
    fd, tmp = tempfile.mkstemp(prefix=f".{PTH_NAME}.", dir=folder)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(PTH_LINE)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def import_lava(module: str = "lava.magma.core.run_configs") -> ModuleType:
    """Install the hook and import a Lava module, with one clear error when Lava is not installed, or when this
    process already runs multiprocessing with a start method other than the 'fork' that Lava needs."""
    import multiprocessing

    install()
    current = multiprocessing.get_start_method(allow_none=True)
    if LAVA_MULTIPROCESSING not in sys.modules and current not in (None, "fork"):
        raise NeuromorphError(f"Lava runs its processes with the 'fork' start method; this Python process already "
                              f"uses {current!r}")
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] == "lava":
            raise NeuromorphError(
                "Lava is not installed: run `make venv` (it installs lava-nc 0.10.0 and lava-dl 0.6.0 "
                "with --no-deps --ignore-requires-python)"
            ) from None
        raise
    finally:
        _forward_import_output(printed.getvalue())


# the warning line and its indented continuation lines ("Only Prophesee DVS demo ...", "Please install it from ...")
_IMPORT_NOTICE = re.compile(r"WARNING: Prophesee Dataset Toolbox could not be found!\n(?:[ \t]+.*\n)*")


def _forward_import_output(text: str) -> None:
    """Drop lava-dl's Prophesee notice from what Lava printed at import; the rest goes to stderr."""
    text = _IMPORT_NOTICE.sub("", text)
    if text:
        sys.stderr.write(text)


if __name__ == "__main__":
    if sys.argv[1:] != ["install-pth"]:
        sys.exit("usage: python -m neuromorph.lava_compat install-pth")
    print(f"wrote {install_pth()}")
