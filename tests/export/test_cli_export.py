"""`neuromorph export` runs for real; user errors end in one line, exit 1, and leave no file behind."""

from __future__ import annotations

import json

import nir
import pytest
import torch

from export.nir_import import load_nir
from neuromorph.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from neuromorph.spec import NeuronSpec, mlp_spec
from tests.export.conftest import firing_model
from tests.helpers import write_cifar_batches
from tests.neuromorph.test_cli import assert_one_line_error, run_cli


def make_checkpoint(path, nan: bool = False, **spec_args):
    spec = mlp_spec(input_shape=(3, 32, 32), hidden=(16,), num_classes=10, time_steps=4, **spec_args)
    model, _ = firing_model(spec, rate=0.1)
    state = model.state_dict()
    if nan:
        state["blocks.1.synapse.weight"][0, 0] = float("nan")
    save_checkpoint(path, Checkpoint(spec=spec, model_state=state, train_config={"dataset": "cifar10", "seed": 0}))
    return path


@pytest.fixture
def data_root(tmp_path):
    write_cifar_batches(tmp_path / "data" / "cifar-10-batches-py", per_batch=8)
    return tmp_path / "data"


def test_export_nir(tmp_path):
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    result = run_cli("export", str(ckpt), "--format", "nir", "--out", str(tmp_path / "out" / "model.nir"))
    assert result.returncode == 0, result.stderr
    graph = nir.read(tmp_path / "out" / "model.nir")
    assert "from" in graph.metadata["description"] and float(graph.metadata["dt_s"]) == 1e-3
    original = load_checkpoint(ckpt).build_model()
    x = torch.rand(4, 2, 3, 32, 32)
    assert torch.equal(original(x).spikes[0], load_nir(tmp_path / "out" / "model.nir")(x).spikes[0])


@pytest.mark.slow
def test_export_netx_with_report_and_lava_check(tmp_path, data_root):
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    out = tmp_path / "model.net"
    result = run_cli("export", str(ckpt), "--format", "netx", "--out", str(out), "--data-root", str(data_root),
                     "--samples", "6", "--lava-check", "1", "--report", str(tmp_path / "report.json"), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["samples"] == 6 and [row["kind"] for row in report["layers"]] == ["input", "dense"]
    assert 0 <= report["mismatch_fraction"] < 0.05 and report["float_spikes"][0] > 0
    assert "numpy reference identical" in result.stderr and "Loihi fixed-point quantization" in result.stderr
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert out.is_file()


def test_export_errors_leave_nothing_behind(tmp_path):
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "foreign.pt").write_text("weights")
    nan = make_checkpoint(tmp_path / "nan.pt", nan=True)
    leaky = make_checkpoint(tmp_path / "leaky.pt", neuron=NeuronSpec(v_leak=0.5))
    out = tmp_path / "out"
    cases = [
        (["export", str(tmp_path / "corrupt.pt"), "--format", "netx"], 1, "corrupt"),
        (["export", str(tmp_path / "foreign.pt"), "--format", "nir"], 1, "not a neuromorph checkpoint"),
        (["export", str(nan), "--format", "nir"], 1, "NaN"),
        (["export", str(leaky), "--format", "netx", "--samples", "0"], 1, "v_leak == v_reset"),
        (["export", str(leaky), "--format", "onnx"], 2, "invalid choice"),
    ]
    for args, code, fragment in cases:
        assert_one_line_error(run_cli(*args, "--out", str(out / "model.file")), code, fragment)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.pt", "foreign.pt", "leaky.pt", "nan.pt"]
