"""Heavy backends load late: importing any export module (and the CLI that registers it) imports no Lava."""

from __future__ import annotations

import subprocess
import sys

MODULES = ["export", "export.cli", "export.nir_export", "export.nir_import", "export.quantize",
           "export.loihi_reference", "export.netx_export", "export.quantization_report", "export.lava_runner"]


def test_export_modules_do_not_import_lava():
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {MODULES!r}]; "
            "from neuromorph.cli import _build_parser; _build_parser(); "
            "sys.exit(1 if any(m == 'lava' or m.startswith('lava.') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
