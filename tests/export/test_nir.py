"""NIR export and import: round trips that give the same spikes, Norse's own importer, metadata, refusals."""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from export.nir_export import to_nir, write_nir
from export.nir_import import SUPPORTED_NODES, from_nir, load_nir, read_nir
from neuromorph.errors import NeuromorphError
from neuromorph.spec import NeuronSpec, cnn_spec
from tests.export.conftest import firing_model


def assert_same_run(original, imported, x):
    a, b = original(x), imported(x)
    assert len(a.spikes) == len(b.spikes)
    for mine, theirs in zip(a.spikes, b.spikes, strict=True):
        assert torch.equal(mine, theirs)
    assert torch.equal(a.voltages, b.voltages)
    return a


@pytest.mark.parametrize("which", ["tiny_mlp_spec", "tiny_cnn_spec", "strided_cnn_spec", "poisson_mlp_spec"])
def test_round_trip_gives_identical_spikes(which, request, tmp_path):
    spec = request.getfixturevalue(which)
    model, x = firing_model(spec)
    path = write_nir(model, tmp_path / "model.nir")
    graph = nir.read(path)
    imported = load_nir(path)
    assert imported.spec == spec
    out = assert_same_run(model, imported, x)
    hidden = out.spikes[1:] if spec.encoder.kind == "poisson" else out.spikes
    assert all(s.sum() > 0 for s in hidden), "every hidden layer must fire, or the comparison proves little"
    meta = graph.metadata
    assert meta["time_unit"] == "s" and float(meta["dt_s"]) == spec.dt_s
    assert json.loads(meta["neuromorph_spec"]) == spec.to_dict()
    assert {"nir", "norse", "torch"} <= set(json.loads(meta["tool_versions"]))


def test_lifbox_sum_pool_and_bias_round_trip(tmp_path):
    spec = cnn_spec(input_shape=(2, 8, 8), channels=(3,), kernel_size=3, padding=1, pool_mode="sum", hidden=(6,),
                    num_classes=3, time_steps=5, neuron=NeuronSpec(cell="lifbox", v_leak=0.1, v_reset=-0.2))
    model, x = firing_model(spec)
    imported = load_nir(write_nir(model, tmp_path / "m.nir"))
    assert imported.spec == spec
    assert_same_run(model, imported, x)
    graph = read_nir(tmp_path / "m.nir")
    kinds = {type(node).__name__ for node in graph.nodes.values()}
    assert {"LIF", "SumPool2d", "Conv2d", "CubaLI"} <= kinds and "CubaLIF" not in kinds


def test_neuron_parameters_are_per_neuron_vectors(tiny_cnn_spec):
    model, _ = firing_model(tiny_cnn_spec)
    graph = to_nir(model)
    lif = graph.nodes["lif1"]
    assert type(lif).__name__ == "CubaLIF" and lif.tau_mem.shape == (4, 12, 12)
    np.testing.assert_allclose(lif.tau_mem, 1 / tiny_cnn_spec.neuron.tau_mem_inv)
    np.testing.assert_allclose(lif.w_in, (1 / tiny_cnn_spec.neuron.tau_syn_inv) / tiny_cnn_spec.dt_s, rtol=1e-6)


def test_norse_from_nir_gives_the_same_spikes(tiny_mlp_spec, tmp_path):
    """Norse's own importer (it drops the CubaLI readout, which it does not know, and flattens from dim 0, so it
    runs one unbatched sample at a time) reproduces every hidden layer's spikes when given the file's dt."""
    import norse.torch

    model, x = firing_model(tiny_mlp_spec, samples=3)
    expected = model(x).spikes
    graph = nir.read(write_nir(model, tmp_path / "mlp.nir"))
    net = norse.torch.from_nir(graph, dt=float(graph.metadata["dt_s"]))
    names = [name for name, node in graph.nodes.items() if type(node).__name__ == "CubaLIF"]
    names.sort(key=lambda n: int(n[3:]))
    record: dict[str, list[torch.Tensor]] = {}
    for name in names:
        getattr(net, name).register_forward_hook(lambda _m, _i, out, name=name: record[name].append(out[0]))
    got = {name: [] for name in names}
    for sample in range(x.shape[1]):
        for name in names:
            record[name] = []
        state = None
        for step in range(x.shape[0]):
            _, state = net(x[step, sample], state)
        for name in names:
            got[name].append(torch.stack(record[name]))
    for name, reference in zip(names, expected, strict=True):
        assert reference.sum() > 0
        assert torch.equal(torch.stack(got[name], dim=1), reference), name


def test_foreign_graph_with_unit_w_in_is_folded_into_weights():
    """A graph another tool wrote (no metadata, w_in = 1, LI readout) imports with an explicit dt and runs as the
    NIR equations say: CubaLIF input is scaled by r * (dt/tau_syn) * w_in."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=(2, 5)).astype(np.float32)
    ones = np.ones(5, dtype=np.float32)
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([3])}),
        "fc1": nir.Linear(weight=w1),
        "lif": nir.CubaLIF(tau_syn=ones * 0.004, tau_mem=ones * 0.02, r=ones * 2, v_leak=ones * 0,
                           v_threshold=ones, v_reset=ones * 0, w_in=ones),
        "fc2": nir.Affine(weight=w2, bias=np.array([0.5, -0.5], dtype=np.float32)),
        "li": nir.LI(tau=np.full(2, 0.01, np.float32), r=np.ones(2, np.float32), v_leak=np.zeros(2, np.float32)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }, edges=[("in", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "out")])
    model = from_nir(graph, dt_s=0.002, time_steps=4)
    assert model.spec.neuron.tau_mem_inv == pytest.approx(50) and model.spec.neuron.tau_syn_inv == pytest.approx(250)
    factor = 2 * (0.002 / 0.004) * 1
    np.testing.assert_allclose(model.blocks[0].synapse.weight.detach().numpy(), w1 * factor, rtol=1e-6)
    assert model.spec.layers[-1].bias and model.spec.readout.tau_syn_inv == pytest.approx(500)
    with pytest.raises(NeuromorphError, match="time step"):
        from_nir(graph)


def test_unsupported_and_malformed_graphs_are_refused(tmp_path):
    graph = nir.NIRGraph(nodes={
        "in": nir.Input(input_type={"input": np.array([3])}),
        "th": nir.Threshold(threshold=np.ones(3, np.float32)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }, edges=[("in", "th"), ("th", "out")])
    with pytest.raises(NeuromorphError, match="Threshold is not supported; supported: Input, Output, Linear"):
        from_nir(graph, dt_s=1e-3)
    assert "CubaLIF" in SUPPORTED_NODES and "AvgPool2d" in SUPPORTED_NODES
    (tmp_path / "junk.nir").write_bytes(b"not hdf5")
    with pytest.raises(NeuromorphError, match="not a readable NIR file"):
        read_nir(tmp_path / "junk.nir")
    with pytest.raises(NeuromorphError, match="does not exist"):
        read_nir(tmp_path / "missing.nir")


def test_nan_weights_refused_and_nothing_written(tiny_mlp_spec, tmp_path):
    model, _ = firing_model(tiny_mlp_spec)
    with torch.no_grad():
        model.blocks[1].synapse.weight[0, 0] = float("nan")
    with pytest.raises(NeuromorphError, match="NaN"):
        write_nir(model, tmp_path / "bad.nir")
    assert list(tmp_path.iterdir()) == []
