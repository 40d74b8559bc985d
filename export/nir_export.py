"""Export a trained :class:`~neuromorph.models.SpikingNet` to a NIR graph (nir 1.0.8).

Each block of :func:`neuromorph.structure.blocks` becomes a run of NIR nodes, one per spec layer (written by the
:data:`NIR_WRITERS` row of its class) and one for its population, chained by edges:
``Input -> [Flatten | SumPool2d | AvgPool2d]* -> (Linear | Affine | Conv2d) -> (CubaLIF | LIF) -> ...``, ending
``... -> (Linear | Affine) -> CubaLI -> Output``. A population node has the population's one name (``lif1`` ...
``lifN``, ``readout``); the block's other nodes carry its number (``flatten1``, ``linear1``, ``lif1``, ...,
``linear3``, ``readout``), valid torch module names as Norse's importer needs.

A Norse ``LIFCell`` step with ``a = dt*tau_mem_inv``, ``b = dt*tau_syn_inv`` (DESIGN.md section 3) is exactly NIR's
``CubaLIF`` (``tau_syn dI/dt = -I + w_in S``, ``tau_mem dv/dt = (v_leak - v) + r I``) under forward Euler with step
``dt``, taken current-first, when ``tau_syn = 1/tau_syn_inv``, ``tau_mem = 1/tau_mem_inv`` (seconds), ``r = 1`` and
``w_in = tau_syn/dt``: then ``I' = (1-b) I + x``, which is Norse's current. ``LIFBoxCell`` is NIR ``LIF`` with
``tau = 1/tau_mem_inv`` and ``r = 1``; the ``LICell`` readout is ``CubaLI`` with the same mapping as ``CubaLIF``.

NIR stores no time step: the graph's metadata records ``dt_s``, ``time_unit`` (``"s"``), the tool versions and the
full model description (JSON) so that the model can be rebuilt exactly. Neuron parameters are per-neuron arrays of
the layer's output shape (NIR's HDF5 writer gzip-compresses arrays, which 0-d arrays do not survive).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, Flatten, ModelSpec, Pool, unsupported_layer
from neuromorph.structure import HIDDEN, INPUT, READOUT, Block, blocks

NIR_FORMAT = "neuromorph.nir"
TIME_UNIT = "s"


def tool_versions() -> dict[str, str]:
    """Versions of the packages that shape an exported file."""
    from neuromorph.versions import tool_versions as versions

    return versions("nir", "numpy", "h5py")


def _neuron_vector(value: float, shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


def _lif_node(spec: ModelSpec, shape: tuple[int, ...]):
    """NIR ``LIF`` equal to Norse's ``LIFBoxCell`` (no synaptic current)."""
    import nir

    n = spec.neuron
    return nir.LIF(tau=_neuron_vector(1.0 / n.tau_mem_inv, shape), r=_neuron_vector(1.0, shape),
                   v_leak=_neuron_vector(n.v_leak, shape), v_threshold=_neuron_vector(n.v_th, shape),
                   v_reset=_neuron_vector(n.v_reset, shape))


def _cuba_lif_node(spec: ModelSpec, shape: tuple[int, ...]):
    """NIR ``CubaLIF`` equal to Norse's ``LIFCell`` (``w_in = tau_syn/dt``, see the module docstring)."""
    import nir

    n = spec.neuron
    tau_syn = 1.0 / n.tau_syn_inv
    return nir.CubaLIF(
        tau_syn=_neuron_vector(tau_syn, shape), tau_mem=_neuron_vector(1.0 / n.tau_mem_inv, shape),
        r=_neuron_vector(1.0, shape), v_leak=_neuron_vector(n.v_leak, shape),
        v_threshold=_neuron_vector(n.v_th, shape), v_reset=_neuron_vector(n.v_reset, shape),
        w_in=_neuron_vector(tau_syn / spec.dt_s, shape),
    )


PopulationWriter = Callable[[ModelSpec, tuple[int, ...]], Any]

# NeuronSpec.cell -> writer(spec, shape) of the hidden population's NIR node.
HIDDEN_NEURON_WRITERS: dict[str, PopulationWriter] = {
    "lif": _cuba_lif_node,
    "lifbox": _lif_node,
}


def cuba_lif_node(spec: ModelSpec, shape: tuple[int, ...]):
    """NIR neuron node equal to the spec's hidden Norse cell for a layer of output ``shape``."""
    return HIDDEN_NEURON_WRITERS[spec.neuron.cell](spec, shape)


def readout_node(spec: ModelSpec, shape: tuple[int, ...]):
    """NIR ``CubaLI`` equal to Norse's ``LICell`` readout (leak voltage 0)."""
    import nir

    r = spec.readout
    tau_syn = 1.0 / r.tau_syn_inv
    return nir.CubaLI(tau_syn=_neuron_vector(tau_syn, shape), tau_mem=_neuron_vector(1.0 / r.tau_mem_inv, shape),
                      r=_neuron_vector(1.0, shape), v_leak=_neuron_vector(0.0, shape),
                      w_in=_neuron_vector(tau_syn / spec.dt_s, shape))


# Block role -> writer(spec, shape) of the block's population node (named by the block's population name).
POPULATION_WRITERS: dict[str, PopulationWriter] = {
    HIDDEN: cuba_lif_node,
    READOUT: readout_node,
}


def _check_finite(name: str, array: np.ndarray) -> np.ndarray:
    if not np.isfinite(array).all():
        raise NeuromorphError(f"{name} contains NaN or infinite values: refusing to export")
    return array


def _synapse_arrays(block: Block, synapse) -> tuple[np.ndarray, np.ndarray | None]:
    """The float32 weight and bias (or None) of a block's torch synapse, refusing NaN or infinite values."""
    where = f"layer {block.index} ({block.name}'s synapse)"
    weight = _check_finite(f"{where} weight", synapse.weight.detach().cpu().numpy().astype(np.float32))
    if synapse.bias is None:
        return weight, None
    return weight, _check_finite(f"{where} bias", synapse.bias.detach().cpu().numpy().astype(np.float32))


# A writer turns one spec layer into (node name prefix, NIR node): writer(layer, in_shape, weight, bias), where
# in_shape is the layer's input shape (no batch) and weight/bias are given for synaptic layers only.
NodeWriter = Callable[[Any, tuple[int, ...], np.ndarray | None, np.ndarray | None], tuple[str, Any]]


def _write_dense(layer: Dense, in_shape: tuple[int, ...], weight: np.ndarray, bias: np.ndarray | None):
    import nir

    if bias is None:
        return "linear", nir.Linear(weight=weight)
    return "affine", nir.Affine(weight=weight, bias=bias)


def _write_conv(layer: Conv, in_shape: tuple[int, ...], weight: np.ndarray, bias: np.ndarray | None):
    import nir

    return "conv", nir.Conv2d(
        input_shape=np.array(in_shape[1:]), weight=weight, stride=np.array([layer.stride, layer.stride]),
        padding=np.array([layer.padding, layer.padding]), dilation=np.array([1, 1]), groups=1,
        bias=bias if bias is not None else np.zeros(weight.shape[0], dtype=np.float32),
    )


# Pool.mode -> (node name prefix, NIR node class name).
POOL_NODES: dict[str, tuple[str, str]] = {"avg": ("avgpool", "AvgPool2d"), "sum": ("sumpool", "SumPool2d")}


def _write_pool(layer: Pool, in_shape: tuple[int, ...], weight: None = None, bias: None = None):
    import nir

    prefix, node_type = POOL_NODES[layer.mode]
    k = np.array([layer.kernel_size, layer.kernel_size])
    return prefix, getattr(nir, node_type)(kernel_size=k, stride=k, padding=np.array([0, 0]))


def _write_flatten(layer: Flatten, in_shape: tuple[int, ...], weight: None = None, bias: None = None):
    import nir

    return "flatten", nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)


# Spec layer class -> its NIR writer. A layer class without a row cannot be exported (see tests/export).
NIR_WRITERS: dict[type, NodeWriter] = {
    Dense: _write_dense,
    Conv: _write_conv,
    Pool: _write_pool,
    Flatten: _write_flatten,
}


def _layer_node(layer, in_shape: tuple[int, ...], weight: np.ndarray | None = None,
                bias: np.ndarray | None = None) -> tuple[str, Any]:
    writer = NIR_WRITERS.get(type(layer))
    if writer is None:
        raise unsupported_layer(layer, "NIR export")
    return writer(layer, in_shape, weight, bias)


def _node_name(nodes: dict[str, Any], prefix: str, block: Block) -> str:
    """``{prefix}{n}`` for block ``lif{n}`` (or the n-th block, the readout); ``_2``, ... if a block has two alike."""
    name = f"{prefix}{block.number + 1}"
    repeat = 2
    while name in nodes:
        name, repeat = f"{prefix}{block.number + 1}_{repeat}", repeat + 1
    return name


def graph_metadata(spec: ModelSpec, description: str = "") -> dict[str, Any]:
    """Flat metadata (strings and numbers: NIR's reader cannot read nested groups back)."""
    return {
        "format": NIR_FORMAT,
        "dt_s": float(spec.dt_s),
        "time_unit": TIME_UNIT,
        "time_steps": int(spec.time_steps),
        "integration": "forward Euler, current first (the current takes this step's input before the voltage)",
        "neuromorph_spec": json.dumps(spec.to_dict()),
        "tool_versions": json.dumps(tool_versions()),
        "description": description or f"neuromorph {spec.name}: {len(spec.layers)} layers, "
                                      f"input {list(spec.input_shape)}, {spec.num_classes} classes",
    }


def to_nir(model, description: str = ""):
    """The NIR graph of a :class:`~neuromorph.models.SpikingNet` (weights copied, float32).

    One run of nodes per block of :func:`neuromorph.structure.blocks`: its pass-through layers, its synapse and its
    population. The population node has the population's name (``lif1`` ... ``lifN``, ``readout``); the others
    carry the block's number (``avgpool2``, ``flatten2``, ``linear2`` for block ``lif2``). BatchNorm is folded
    into the synapses first (:func:`neuromorph.models.fold_batch_norm`): the graph holds the folded weights and bias.
    """
    import nir

    from neuromorph.models import fold_batch_norm

    model = fold_batch_norm(model)

    spec: ModelSpec = model.spec
    grid = _loihi_grid_weights(model)
    nodes: dict[str, Any] = {INPUT: nir.Input(input_type={"input": np.array(spec.input_shape)})}
    for block, module in zip(blocks(spec), model.blocks, strict=True):
        shape = block.in_shape
        for layer in block.pre:
            prefix, node = _layer_node(layer, shape)
            nodes[_node_name(nodes, prefix, block)] = node
            shape = layer.output_shape(shape)
        weight, bias = _synapse_arrays(block, module.synapse)
        if grid is not None:
            weight = grid[block.number][0]
        prefix, node = _layer_node(block.synapse, block.synapse_in_shape, weight, bias)
        nodes[_node_name(nodes, prefix, block)] = node
        nodes[block.name] = POPULATION_WRITERS[block.role](spec, block.out_shape)
    nodes["output"] = nir.Output(output_type={"output": np.array([spec.num_classes])})
    chain = list(nodes)  # inserted in chain order
    edges = list(zip(chain[:-1], chain[1:], strict=True))
    metadata = graph_metadata(spec, description)
    if grid is not None:
        metadata.update(_grid_metadata(grid))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _loihi_grid_weights(model) -> list[tuple[np.ndarray, float | None]] | None:
    """A Loihi-exact model's effective weights (:func:`export.loihi_exact.grid_weights`), else None."""
    if model.spec.fixed_point is None:
        return None
    from export.loihi_exact import grid_weights

    return grid_weights(model)


def _grid_metadata(grid: list[tuple[np.ndarray, float | None]]) -> dict[str, str]:
    return {
        "weights": "loihi-exact: the weights of each on-chip layer are its Loihi 8-bit grid values w/u (w even "
                   "integers in [-256, 254], u in weight_grid_units, per layer); a host (direct-input) layer's are "
                   "float (null); neuron arithmetic here is Norse float, not Loihi's fixed point",
        "weight_grid_units": json.dumps([units for _, units in grid]),
    }


def nir_bytes(graph) -> bytes:
    """The HDF5 bytes ``nir.write`` produces for ``graph``, with its checksum in the metadata (export.nir_checks)."""
    import nir

    from export.nir_checks import CHECKSUM_KEY, graph_checksum

    graph.metadata = {**(graph.metadata or {}), CHECKSUM_KEY: graph_checksum(graph)}
    buffer = io.BytesIO()
    nir.write(buffer, graph)
    return buffer.getvalue()


def write_nir(model, path: str | os.PathLike, description: str = "") -> Path:
    """Export ``model`` and write it to ``path`` atomically (nothing is left behind on failure)."""
    from neuromorph.io import atomic_write

    data = nir_bytes(to_nir(model, description))
    return atomic_write(path, lambda handle: handle.write(data))
