"""The NIR writer and reader tables cover every spec layer class, node names are the blocks' population names, and
the block structure the importer takes from :func:`neuromorph.structure.blocks` refuses misplaced nodes."""

from __future__ import annotations

import re

import nir
import numpy as np
import pytest
import torch

from export.nir_export import HIDDEN_NEURON_WRITERS, NIR_WRITERS, POPULATION_WRITERS, to_nir
from export.nir_import import NIR_READABLE_LAYERS, NODE_READERS, from_nir, spec_and_weights_from_nir
from neuromorph.errors import NeuromorphError
from neuromorph.models import build_model
from neuromorph.spec import CELL_TYPES, LAYER_CLASSES, Conv, Dense, Flatten, ModelSpec, NeuronSpec, Pool, cnn_spec
from neuromorph.structure import ROLES, blocks

NEURON_NODES = ("CubaLIF", "LIF", "CubaLI", "LI")


def test_every_layer_class_has_a_nir_writer_and_a_nir_reader():
    no_writer = [cls.__name__ for cls in LAYER_CLASSES if cls not in NIR_WRITERS]
    no_reader = [cls.__name__ for cls in LAYER_CLASSES if cls not in NIR_READABLE_LAYERS]
    assert not no_writer, f"layer classes without a row in export.nir_export.NIR_WRITERS: {no_writer}"
    assert not no_reader, f"layer classes no reader in export.nir_import.NODE_READERS produces: {no_reader}"
    strays = [cls for cls in [*NIR_WRITERS, *NIR_READABLE_LAYERS] if cls not in LAYER_CLASSES]
    assert not strays, f"NIR table rows for classes that are not spec layers: {strays}"
    assert set(HIDDEN_NEURON_WRITERS) == set(CELL_TYPES) and set(POPULATION_WRITERS) == set(ROLES)


def every_layer_spec() -> ModelSpec:
    """Every layer class and every node kind the writer chooses between (sum and avg pool, Linear and Affine)."""
    layers = (Pool(2, "sum"), Conv(3, 3, padding=1, bias=True), Pool(2, "avg"), Flatten(), Dense(5),
              Dense(3, bias=True))
    spec = ModelSpec(input_shape=(2, 12, 12), layers=layers, num_classes=3, time_steps=3)
    assert {type(layer) for layer in spec.layers} == set(LAYER_CLASSES), "the spec must use every layer class"
    return spec


def test_each_reader_produces_the_class_it_declares():
    spec = every_layer_spec()
    graph = to_nir(build_model(spec))
    read, _ = spec_and_weights_from_nir(graph)
    assert read.layers == spec.layers
    layer_nodes = [node for node in graph.nodes.values()
                   if type(node).__name__ in NODE_READERS and type(node).__name__ not in NEURON_NODES]
    assert len(layer_nodes) == len(read.layers)
    for node, layer in zip(layer_nodes, read.layers, strict=True):
        assert NODE_READERS[type(node).__name__].produces is type(layer), type(node).__name__
    for kind in NEURON_NODES:
        assert NODE_READERS[kind].produces is None


@pytest.mark.parametrize("which", ["tiny_mlp_spec", "tiny_cnn_spec", "strided_cnn_spec", "lifbox_spec"])
def test_nir_node_names_are_the_blocks_population_names(which, request):
    spec = request.getfixturevalue(which) if which != "lifbox_spec" else cnn_spec(
        input_shape=(2, 8, 8), channels=(3,), kernel_size=3, pool_mode="sum", hidden=(6,), num_classes=3,
        time_steps=3, neuron=NeuronSpec(cell="lifbox"))
    graph = to_nir(build_model(spec))
    names = [block.name for block in blocks(spec)]
    assert set(names) <= set(graph.nodes)
    neuron_nodes = [name for name, node in graph.nodes.items() if type(node).__name__ in NEURON_NODES]
    assert neuron_nodes == names
    chain = [src for src, _ in graph.edges] + [graph.edges[-1][1]]
    assert chain == list(graph.nodes) and chain[0] == "input" and chain[-1] == "output"
    # Between two populations lie the next block's pass-through layers and synapse, named with its number.
    rest = chain[1:-1]
    for block in blocks(spec):
        end = rest.index(block.name)
        members, rest = rest[:end], rest[end + 1:]
        assert len(members) == len(block.layers)
        for member in members:
            assert re.fullmatch(rf"[a-z]+{block.number + 1}(_\d+)?", member), (member, block.name)
    assert rest == []
    holder = torch.nn.Module()
    for name in graph.nodes:  # Norse's from_nir makes every node a submodule
        holder.add_module(name, torch.nn.Identity())


def test_a_layer_class_without_a_writer_row_is_refused(tiny_cnn_spec, monkeypatch):
    model = build_model(tiny_cnn_spec)
    monkeypatch.delitem(NIR_WRITERS, Pool)
    with pytest.raises(NeuromorphError, match=r"unsupported layer Pool\(.*\) for NIR export; supported: Dense"):
        to_nir(model)


def _graph(*middle: tuple[str, object], inputs: list[int]) -> nir.NIRGraph:
    nodes = {"in": nir.Input(input_type={"input": np.array(inputs)}), **dict(middle),
             "out": nir.Output(output_type={"output": np.array([2])})}
    names = list(nodes)
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:], strict=True)))


def _lif(n: int, w_in: float = 1.0):
    ones = np.ones(n, np.float32)
    return nir.CubaLIF(tau_syn=ones * 0.004, tau_mem=ones * 0.02, r=ones, v_leak=ones * 0, v_threshold=ones,
                       v_reset=ones * 0, w_in=ones * w_in)


def _li(n: int):
    ones = np.ones(n, np.float32)
    return nir.CubaLI(tau_syn=ones * 0.004, tau_mem=ones * 0.02, r=ones, v_leak=ones * 0, w_in=ones)


def _linear(n_out: int, n_in: int):
    return nir.Linear(weight=np.ones((n_out, n_in), np.float32))


@pytest.mark.parametrize(("middle", "message"), [
    ([("fc1", _linear(4, 3)), ("ro", _li(4)), ("fc2", _linear(2, 4)), ("ro2", _li(2))],
     "'ro': a non-spiking readout must be the last node"),
    ([("fc1", _linear(4, 3)), ("lif1", _lif(4)), ("fc2", _linear(2, 4)), ("lif2", _lif(2))],
     "must end in a non-spiking readout .* not 'lif2'"),
    ([("fc1", _linear(4, 3)), ("fc2", _linear(2, 4)), ("ro", _li(2))], "'fc1' must be followed by a neuron node"),
    ([("lif0", _lif(3)), ("fc1", _linear(2, 3)), ("ro", _li(2))], "'lif0' must follow a synaptic node"),
    ([("fc1", _linear(2, 3))], "'fc1' must be followed by a neuron node"),
])
def test_misplaced_neuron_nodes_are_refused(middle, message):
    with pytest.raises(NeuromorphError, match=message):
        from_nir(_graph(*middle, inputs=[3]), dt_s=1e-3)


def test_conv_input_scale_is_folded_per_output_channel():
    """A foreign CubaLIF after a Conv2d with w_in varying by channel: each channel's kernel is scaled by
    r * (dt/tau_syn) * w_in, and a scale that varies inside a channel is refused."""
    rng = np.random.default_rng(1)
    weight = rng.normal(size=(2, 1, 3, 3)).astype(np.float32)
    conv = nir.Conv2d(input_shape=np.array([4, 4]), weight=weight, stride=np.array([1, 1]),
                      padding=np.array([0, 0]), dilation=np.array([1, 1]), groups=1, bias=np.zeros(2, np.float32))
    w_in = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 3.0)]).astype(np.float32)
    ones = np.ones((2, 2, 2), np.float32)
    lif = nir.CubaLIF(tau_syn=ones * 0.004, tau_mem=ones * 0.02, r=ones, v_leak=ones * 0, v_threshold=ones,
                      v_reset=ones * 0, w_in=w_in)
    flat = nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0)
    graph = _graph(("conv", conv), ("lif", lif), ("flat", flat), ("fc", _linear(2, 8)), ("ro", _li(2)),
                   inputs=[1, 4, 4])
    model = from_nir(graph, dt_s=0.002, time_steps=2)
    assert [type(layer) for layer in model.spec.layers] == [Conv, Flatten, Dense]
    expected = weight * (0.002 / 0.004) * np.array([1.0, 3.0], np.float32)[:, None, None, None]
    np.testing.assert_allclose(model.blocks[0].synapse.weight.detach().numpy(), expected, rtol=1e-6)
    w_in[1, 0, 0] = 2.0
    lif.w_in = w_in
    with pytest.raises(NeuromorphError, match="'conv': the next neuron's input scale varies within a channel"):
        from_nir(graph, dt_s=0.002, time_steps=2)
