"""The README's demo, in its quick form: the whole workflow runs and the chip-side runs agree with training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from neuromorph.data import shared_data_root

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(shared_data_root() is None, reason="../shared/datasets is not present")
def test_quick_demo(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py"), "--quick", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("train/checkpoint.pt", "exact/checkpoint.pt", "energy/energy.json", "energy/energy.png",
                 "model.nir", "model.net", "quantization.json", "lava_fixed/parity.json",
                 "lava_fixed/parity_raster.png", "lava_float/parity.json", "summary.json"):
        assert (tmp_path / name).is_file(), name
    summary = json.loads((tmp_path / "summary.json").read_text())
    for precision in ("fixed", "float"):
        parity = summary["lava"][precision]
        assert parity["spike_agreement"] == 1.0, (precision, parity["spike_agreement"])
        assert parity["prediction_agreement"] == 1.0
    assert summary["energy"][0]["total_j"] > 0
