"""`neuromorph export` runs for real; user errors end in one line, exit 1, and leave no file behind."""

from __future__ import annotations

import json

import nir
import pytest
import torch

from export.nir_import import load_nir
from neuromorph.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from neuromorph.spec import Flatten, NeuronSpec, mlp_spec
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


def _foreign_graph(in_features: int, nan: bool = False):
    """A graph as another tool writes it: no metadata (no dt), Affine/CubaLIF/LI."""
    import numpy as np

    rng = np.random.default_rng(1)
    w1 = rng.normal(size=(12, in_features)).astype(np.float32)
    if nan:
        w1[0, 0] = np.nan
    ones = np.ones(12, dtype=np.float32)
    return nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([in_features])}),
        "fc1": nir.Linear(weight=w1),
        "lif": nir.CubaLIF(tau_syn=ones * 0.005, tau_mem=ones * 0.01, r=ones, v_leak=ones * 0, v_threshold=ones,
                           v_reset=ones * 0, w_in=ones),
        "fc2": nir.Linear(weight=rng.normal(size=(10, 12)).astype(np.float32)),
        "li": nir.LI(tau=np.full(10, 0.01, np.float32), r=np.ones(10, np.float32), v_leak=np.zeros(10, np.float32)),
        "out": nir.Output(output_type={"output": np.array([10])}),
    }, edges=[("in", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "out")])


def test_import_nir_round_trip_then_evaluate(tmp_path, data_root):
    """export --format nir, then import-nir: the same model, and the other commands take the result."""
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    graph = tmp_path / "model.nir"
    assert run_cli("export", str(ckpt), "--format", "nir", "--out", str(graph)).returncode == 0
    result = run_cli("import-nir", str(graph), "--out", str(tmp_path / "imported"), "--dataset", "cifar10", "--json")
    assert result.returncode == 0, result.stderr
    assert "wrote checkpoint" in result.stderr and json.loads(result.stdout)["spec"]["time_steps"] == 4
    original, imported = load_checkpoint(ckpt), load_checkpoint(tmp_path / "imported")
    assert imported.spec == original.spec and imported.train_config["dataset"] == "cifar10"
    x = torch.rand(4, 3, 3, 32, 32)
    a, b = original.build_model()(x), imported.build_model()(x)
    assert torch.equal(a.spikes[0], b.spikes[0]) and torch.equal(a.voltages, b.voltages)
    evaluated = run_cli("evaluate", str(tmp_path / "imported"), "--data-root", str(data_root), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "synops_per_sample" in json.loads(evaluated.stdout)


def test_import_nir_foreign_graph_needs_dt(tmp_path):
    graph = tmp_path / "foreign.nir"
    nir.write(graph, _foreign_graph(784))
    out = tmp_path / "imported"
    assert_one_line_error(run_cli("import-nir", str(graph), "--out", str(out)), 1, "records no time step")
    assert not out.exists()
    result = run_cli("import-nir", str(graph), "--out", str(out), "--dt", "1e-3", "--time-steps", "8")
    assert result.returncode == 0, result.stderr
    spec = load_checkpoint(out).spec
    assert spec.time_steps == 8 and spec.dt_s == 1e-3 and spec.neuron.tau_mem_inv == pytest.approx(100)
    assert spec.input_shape == (784,)
    flat = load_checkpoint(out).build_model()
    result = run_cli("import-nir", str(graph), "--out", str(tmp_path / "mnist.pt"), "--dt", "1e-3",
                     "--time-steps", "8", "--dataset", "mnist")
    assert result.returncode == 0, result.stderr  # flat input fitted to MNIST's images with a leading Flatten
    fitted = load_checkpoint(tmp_path / "mnist.pt")
    assert fitted.spec.input_shape == (1, 28, 28) and fitted.spec.layers[0] == Flatten()
    x = torch.rand(8, 2, 1, 28, 28)
    assert torch.equal(fitted.build_model()(x).voltages, flat(x.flatten(2)).voltages)


@pytest.mark.parametrize("problem, fragment", [
    ("corrupt", "not a readable NIR file"), ("nan", "NaN"), ("dataset", "the graph takes"), ("dt", "--dt must be"),
])
def test_import_nir_bad_input_writes_nothing(tmp_path, problem, fragment):
    graph = tmp_path / "model.nir"
    if problem == "corrupt":
        graph.write_bytes(b"\x89HDF\r\n garbage")
    else:
        nir.write(graph, _foreign_graph(784 if problem != "dataset" else 100, nan=problem == "nan"))
    extra = {"dataset": ["--dataset", "mnist"], "dt": ["--dt", "-1"]}.get(problem, [])
    out = tmp_path / "imported"
    dt = [] if problem == "dt" else ["--dt", "1e-3"]
    assert_one_line_error(run_cli("import-nir", str(graph), "--out", str(out), *dt, *extra), 1, fragment)
    assert not out.exists()
