"""NIR files for other frameworks: each target's file, loaded by that framework's own importer, gives this toolkit's
spikes exactly and its readout voltage; files their exporters write import here with their spikes; refusals."""

from __future__ import annotations

import io
import json
import math

import nir
import numpy as np
import pytest
import torch

from export.nir_import import from_nir, from_nir_source
from export.nir_runners import FRAMEWORK_RUNNERS, run_in
from export.nir_targets import NIR_TARGETS, to_nir_for, write_nir_for
from neuromorph.errors import NeuromorphError
from neuromorph.spec import NeuronSpec, cnn_spec, mlp_spec
from tests.export.conftest import firing_model

pytest.importorskip("snntorch")
pytest.importorskip("spikingjelly")

NETWORKS = {
    "mlp": lambda: mlp_spec(input_shape=(1, 6, 6), hidden=(12, 8), num_classes=3, time_steps=5),
    "avg-pool cnn": lambda: cnn_spec(input_shape=(1, 8, 8), channels=(3,), kernel_size=3, padding=1, hidden=(6,),
                                     num_classes=3, time_steps=4),
    "sum-pool cnn": lambda: cnn_spec(input_shape=(1, 8, 8), channels=(3,), kernel_size=3, padding=1, hidden=(6,),
                                     num_classes=3, time_steps=4, pool_mode="sum"),
}


def through_file(graph):
    """The graph as ``nir.read`` gives it back from the HDF5 bytes ``nir.write`` produces."""
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    buffer.seek(0)
    return nir.read(buffer)


def hidden_spikes(spec, out):
    return out.spikes[1:] if spec.encoder.kind == "poisson" else out.spikes


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("framework", list(FRAMEWORK_RUNNERS))
def test_target_file_runs_in_its_framework_with_identical_spikes(framework, network):
    spec = NETWORKS[network]()
    model, x = firing_model(spec, samples=3)
    with torch.no_grad():
        expected = model(x)
    graph, limits = to_nir_for(model, framework)
    assert limits == NIR_TARGETS[framework].limits and "CubaLI" in limits
    run = run_in(framework, through_file(graph), x)
    mine = hidden_spikes(spec, expected)
    assert len(run.spikes) == len(mine)
    for ours, theirs in zip(mine, run.spikes, strict=True):
        assert ours.sum() > 0, "every hidden layer must fire, or the comparison proves little"
        assert torch.equal(ours, theirs.to(ours.dtype))
    voltage = expected.voltages.double()
    assert float((voltage - run.readout_v).abs().max()) <= 1e-6 * max(1.0, float(voltage.abs().max()))
    assert torch.equal(voltage.amax(0).argmax(-1), run.readout_v.amax(0).argmax(-1))


@pytest.mark.parametrize("framework", list(NIR_TARGETS))
def test_target_file_reads_back_here_as_the_same_network(framework, tiny_cnn_spec):
    model, x = firing_model(tiny_cnn_spec, samples=3)
    graph, _ = to_nir_for(model, framework)
    imported = from_nir(through_file(graph))
    assert imported.spec.dt_s == NIR_TARGETS[framework].dt_s
    for ours, theirs in zip(model(x).spikes, imported(x).spikes, strict=True):
        assert torch.equal(ours, theirs)


def test_target_forms(tiny_mlp_spec):
    model, _ = firing_model(tiny_mlp_spec)
    a = tiny_mlp_spec.dt_s * tiny_mlp_spec.neuron.tau_mem_inv
    snn_graph, _ = to_nir_for(model, "snntorch")
    lif = snn_graph.nodes["lif1"]
    np.testing.assert_allclose(lif.r, lif.tau_mem / 1e-4, rtol=1e-6)  # what snnTorch and SpikingJelly assert
    np.testing.assert_allclose(lif.w_in, lif.tau_syn / 1e-4, rtol=1e-6)
    np.testing.assert_allclose(lif.v_threshold, tiny_mlp_spec.neuron.v_th / a, rtol=1e-6)
    assert np.isposinf(snn_graph.nodes["readout"].v_threshold).all()
    sj = to_nir_for(model, "spikingjelly")[0].nodes["lif1"].v_threshold
    assert (sj > lif.v_threshold).all() and (np.nextafter(lif.v_threshold, np.float32(0)) < lif.v_threshold).all()
    norse_graph, _ = to_nir_for(model, "norse")
    assert type(norse_graph.nodes["readout"]).__name__ == "CubaLIF"
    np.testing.assert_allclose(norse_graph.nodes["lif1"].tau_mem, 1 / tiny_mlp_spec.neuron.tau_mem_inv, rtol=1e-6)


def test_pools_are_swapped_with_the_next_weights_rescaled():
    spec = NETWORKS["avg-pool cnn"]()
    model, _ = firing_model(spec)
    generic = to_nir_for(model, "generic")[0]
    norse_graph = to_nir_for(model, "norse")[0]
    assert "avgpool2" in generic.nodes and type(norse_graph.nodes["sumpool2"]).__name__ == "SumPool2d"
    np.testing.assert_array_equal(norse_graph.nodes["linear2"].weight, generic.nodes["linear2"].weight / 4)
    snn_graph = to_nir_for(model, "snntorch")[0]
    assert type(snn_graph.nodes["avgpool2"]).__name__ == "AvgPool2d"


@pytest.mark.parametrize(("framework", "spec", "message"), [
    ("norse", mlp_spec(input_shape=(4,), hidden=(3,), num_classes=2, neuron=NeuronSpec(v_reset=-0.1)),
     "--for norse: Norse's from_nir ignores v_reset"),
    ("snntorch", mlp_spec(input_shape=(4,), hidden=(3,), num_classes=2, neuron=NeuronSpec(v_leak=0.1)),
     "--for snntorch: snnTorch's import_from_nir needs v_leak = 0"),
    ("spikingjelly", mlp_spec(input_shape=(4,), hidden=(3,), num_classes=2, neuron=NeuronSpec(v_leak=0.1)),
     "--for spikingjelly: SpikingJelly's CubaLIF needs v_leak = 0"),
    ("snntorch", cnn_spec(input_shape=(1, 9, 9), channels=(2,), kernel_size=3, padding=1, pool=3, pool_mode="sum",
                          hidden=(), num_classes=2), r"k\^2 = 9 is not exact"),
])
def test_inexact_rewrites_are_refused_and_nothing_is_written(framework, spec, message, tmp_path):
    model, _ = firing_model(spec)
    with pytest.raises(NeuromorphError, match=message):
        write_nir_for(model, tmp_path / "m.nir", framework)
    assert list(tmp_path.iterdir()) == []


# ---- the other way: what their exporters write -----------------------------------------------------------------

def _scaled(net, factor):
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
                module.weight.mul_(factor)
    return net


def _record(net, x, spiking, readout, reset, state_of):
    """Hidden spikes (by module index) and the readout's voltage of a framework's own sequential net, step by step."""
    reset(net)
    spikes = {i: [] for i in spiking}
    voltage = []
    hooks = [net[i].register_forward_hook(lambda _m, _in, out, i=i: spikes[i].append(out.clone())) for i in spiking]
    with torch.no_grad():
        for t in range(x.shape[0]):
            net(x[t])
            voltage.append(state_of(net[readout]).clone())
    for hook in hooks:
        hook.remove()
    return [torch.stack(spikes[i]) for i in spiking], torch.stack(voltage)


def _assert_same(spikes, voltage, model, x):
    with torch.no_grad():
        out = model(x)
    for theirs, ours in zip(spikes, out.spikes, strict=True):
        assert theirs.sum() > 0 and torch.equal(theirs, ours)
    assert float((voltage - out.voltages).abs().max()) <= 1e-6 * float(voltage.abs().max())


@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_snntorch_export_imports_with_its_spikes(network):
    import snntorch as snn
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    def synaptic(shape, threshold=1.0):  # per-neuron parameters: its exporter fails on scalar ones
        full = lambda value: torch.full(shape, float(value))  # noqa: E731
        return snn.Synaptic(alpha=full(0.8), beta=full(0.9), threshold=full(threshold), init_hidden=True,
                            reset_mechanism="zero", reset_delay=False)  # the semantics of its own NIR importer

    torch.manual_seed(0)
    if network == "mlp":
        net, shape = torch.nn.Sequential(torch.nn.Linear(36, 20, bias=False), synaptic((20,)),
                                         torch.nn.Linear(20, 4, bias=False), synaptic((4,), math.inf)), (36,)
    else:
        net, shape = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), synaptic((4, 6, 6)),
                                         torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(36, 4),
                                         synaptic((4,), math.inf)), (1, 6, 6)
    _scaled(net, 4.0)
    x = (torch.rand(6, 3, *shape, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    graph = through_file(export_to_nir(net, x[0], ignore_dims=[0]))
    spikes, voltage = _record(net, x, [1], len(net) - 1, utils.reset, lambda m: m.mem)
    model, notes = from_nir_source(graph, "snntorch", time_steps=6)
    assert model.spec.dt_s == 1e-4 and notes == []
    _assert_same(spikes, voltage, model, x)


@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_spikingjelly_export_imports_with_its_spikes(network):
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    def cuba(threshold=1.0):
        return neuron.CUBALIFNode(c_decay=0.8, v_decay=0.9, v_threshold=threshold, v_reset=0.0)

    torch.manual_seed(0)
    if network == "mlp":
        net, shape = torch.nn.Sequential(layer.Linear(36, 20, bias=False), cuba(), layer.Linear(20, 4, bias=False),
                                         cuba(math.inf)), (36,)
    else:
        net, shape = torch.nn.Sequential(layer.Conv2d(1, 4, 3, padding=1, bias=False), cuba(), layer.AvgPool2d(2),
                                         layer.Flatten(), layer.Linear(36, 4, bias=False), cuba(math.inf)), (1, 6, 6)
    _scaled(net, 4.0)
    x = (torch.rand(6, 3, *shape, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    graph = through_file(export_to_nir(net, x[0], dt=1e-4))
    spikes, voltage = _record(net, x, [1], len(net) - 1, functional.reset_net, lambda m: m.v)
    model, _ = from_nir_source(graph, "spikingjelly", time_steps=6)
    _assert_same(spikes, voltage, model, x)


def test_norse_to_nir_time_constants_are_fixed_and_give_its_spikes():
    import norse.torch as norse
    from norse.torch.utils.export_nir import to_nir as norse_to_nir

    n = 20
    full = lambda size, value: torch.full((size,), float(value))  # noqa: E731 - its to_nir needs per-neuron values
    lif = norse.LIFCell(norse.LIFParameters(tau_syn_inv=full(n, 200), tau_mem_inv=full(n, 100), v_th=full(n, 1),
                                            v_leak=full(n, 0), v_reset=full(n, 0)))
    readout = norse.LIBoxCell(norse.LIBoxParameters(tau_mem_inv=full(4, 100), v_leak=full(4, 0)))
    torch.manual_seed(0)
    net = norse.SequentialState(torch.nn.Linear(36, n, bias=False), lif, torch.nn.Linear(n, 4, bias=False), readout)
    _scaled(net, 6.0)
    x = (torch.rand(8, 2, 36, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    graph = through_file(norse_to_nir(net, x[0, 0]))
    assert float(graph.nodes["1"].tau_mem[0]) == pytest.approx(1e-5)  # dt/tau_inv: the bug
    record = []
    handle = net[1].register_forward_hook(lambda _m, _i, out: record.append(out[0]))
    with torch.no_grad():
        out, state = [], None
        for t in range(x.shape[0]):
            y, state = net(x[t], state)
            out.append(y)
    handle.remove()
    model, notes = from_nir_source(graph, "norse", time_steps=8)
    assert len(notes) == 1 and "writes tau = dt*tau" in notes[0]
    assert model.spec.neuron.tau_mem_inv == pytest.approx(100) and model.spec.neuron.tau_syn_inv == pytest.approx(200)
    _assert_same([torch.stack(record)], torch.stack(out), model, x)


@pytest.mark.parametrize("which", ["poisson_mlp_spec", "tiny_cnn_spec"])
def test_loihi_exact_model_exports_its_grid_weights(which, request):
    from export.quantize import quantize
    from tests.export.test_loihi_exact import loihi_exact

    model, x = firing_model(request.getfixturevalue(which))
    exact = loihi_exact(model, x)
    graph, _ = to_nir_for(exact, "generic")
    units = json.loads(graph.metadata["weight_grid_units"])
    assert "8-bit grid" in graph.metadata["weights"]
    synapses = [node for node in graph.nodes.values() if type(node).__name__ in ("Linear", "Affine", "Conv2d")]
    plan = quantize(exact)
    for node, unit, layer, module in zip(synapses, units, plan.layers, exact.blocks, strict=True):
        if unit is None:  # a host layer: its float weights
            assert layer.on_host
            np.testing.assert_array_equal(node.weight, module.synapse.weight.detach().numpy())
            continue
        mantissas = np.asarray(node.weight, dtype=np.float64) * unit
        np.testing.assert_allclose(mantissas, np.round(mantissas), atol=1e-3)
        grid = np.round(mantissas).astype(np.int64)
        assert (grid % 2 == 0).all() and grid.min() >= -256 and grid.max() <= 254
        assert not np.array_equal(node.weight, module.synapse.weight.detach().numpy())
        if not layer.spatial and layer.folded == "":  # no pooling folded in: the netx file's integers themselves
            np.testing.assert_array_equal(grid, layer.weight)


# ---- the commands ----------------------------------------------------------------------------------------------

def test_cli_export_for_a_framework_and_its_refusals(tmp_path):
    from neuromorph.checkpoint import load_checkpoint
    from tests.export.test_cli_export import make_checkpoint
    from tests.neuromorph.test_cli import assert_one_line_error, run_cli

    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    out = tmp_path / "sj.nir"
    result = run_cli("export", str(ckpt), "--format", "nir", "--for", "spikingjelly", "--out", str(out))
    assert result.returncode == 0, result.stderr
    said = result.stdout + result.stderr
    assert "for spikingjelly (dt 0.0001 s" in said and "cannot represent: SpikingJelly maps no CubaLI" in said
    graph = nir.read(out)
    assert graph.metadata["nir_target"] == "spikingjelly" and float(graph.metadata["model_dt_s"]) == 1e-3
    model = load_checkpoint(ckpt).build_model()
    x = torch.rand(4, 2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x).spikes
    assert torch.equal(run_in("spikingjelly", graph, x).spikes[0], expected[0])

    bad = make_checkpoint(tmp_path / "reset.pt", neuron=NeuronSpec(v_reset=-0.1))
    refused = tmp_path / "norse.nir"
    result = run_cli("export", str(bad), "--format", "nir", "--for", "norse", "--out", str(refused))
    assert_one_line_error(result, 1, "--for norse: Norse's from_nir ignores v_reset")
    assert not refused.exists()
    result = run_cli("export", str(ckpt), "--format", "netx", "--for", "norse", "--out", str(tmp_path / "m.net"))
    assert_one_line_error(result, 1, "--for applies to --format nir only")
    result = run_cli("export", "--help")
    assert "snntorch: for snnTorch 1.0.0" in " ".join(result.stdout.split())


def test_cli_import_nir_from_a_framework(tmp_path):
    from tests.neuromorph.test_cli import run_cli

    spec = mlp_spec(input_shape=(1, 6, 6), hidden=(8,), num_classes=3, time_steps=4)
    model, _ = firing_model(spec)
    path = tmp_path / "for_snntorch.nir"
    write_nir_for(model, path, "snntorch")
    graph = nir.read(path)
    graph.metadata = {}  # as a file from snnTorch's own exporter: no dt recorded
    nir.write(path, graph)
    result = run_cli("import-nir", str(path), "--source", "snntorch", "--out", str(tmp_path / "run"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["spec"]["dt_s"] == 1e-4
    result = run_cli("import-nir", str(path), "--out", str(tmp_path / "run2"))
    assert result.returncode == 1 and "records no time step" in result.stderr


def test_target_modules_import_no_framework():
    """snnTorch and SpikingJelly are test-only packages: the writer, the runners and the CLI load them only to run."""
    import subprocess
    import sys

    code = ("import sys; import export.nir_targets, export.nir_runners, export.cli; "
            "from neuromorph.cli import _build_parser; _build_parser(); "
            "sys.exit(1 if any(m.split('.')[0] in ('snntorch', 'spikingjelly') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
