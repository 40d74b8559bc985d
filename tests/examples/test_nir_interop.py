"""The interop table script runs for real on tiny networks: every file written for a framework loads there and gives
identical hidden spikes; the generic file is refused by snnTorch and SpikingJelly, as the README's table says."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("snntorch")
pytest.importorskip("spikingjelly")

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("nir_interop", ROOT / "examples" / "nir_interop.py")
interop = importlib.util.module_from_spec(_spec)
sys.modules["nir_interop"] = interop
_spec.loader.exec_module(interop)


def test_interop_table_on_tiny_networks(tmp_path, capsys):
    out = tmp_path / "interop.json"
    assert interop.main(["--quick", "--samples", "2", "--time-steps", "3", "--networks", "MLP", "sum-pool CNN",
                         "--data-root", str(tmp_path / "none"), "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 2 * 3 * 2
    for row in rows:
        if row["file"] == row["framework"]:
            assert row["loaded"] and row["spike_agreement"] == 1.0 and row["same_class"] == 1.0, row
            assert row["readout_max_dv"] <= 1e-6 * max(1.0, row["readout_max_v"])
        elif row["framework"] != "norse":
            assert not row["loaded"]
    assert "identical hidden spike bins" in capsys.readouterr().out
