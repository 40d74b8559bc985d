"""Export a trained :class:`~neuromorph.models.SpikingNet` to a NIR graph (nir 1.0.8).

Each spec layer becomes one NIR node, in order, chained by edges:
``Input -> [Flatten | SumPool2d | AvgPool2d]* -> (Linear | Affine | Conv2d) -> (CubaLIF | LIF) -> ...``, ending
``... -> (Linear | Affine) -> CubaLI -> Output``.

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
from pathlib import Path
from typing import Any

import numpy as np

from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, Flatten, ModelSpec, Pool

NIR_FORMAT = "neuromorph.nir"
TIME_UNIT = "s"


def tool_versions() -> dict[str, str]:
    """Versions of the packages that shape an exported file."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("neuromorph", "nir", "norse", "torch", "numpy", "h5py"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def _neuron_vector(value: float, shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


def cuba_lif_node(spec: ModelSpec, shape: tuple[int, ...]):
    """NIR neuron node equal to the spec's hidden Norse cell for a layer of output ``shape``."""
    import nir

    n = spec.neuron
    tau_mem = 1.0 / n.tau_mem_inv
    if n.cell == "lifbox":
        return nir.LIF(tau=_neuron_vector(tau_mem, shape), r=_neuron_vector(1.0, shape),
                       v_leak=_neuron_vector(n.v_leak, shape), v_threshold=_neuron_vector(n.v_th, shape),
                       v_reset=_neuron_vector(n.v_reset, shape))
    tau_syn = 1.0 / n.tau_syn_inv
    return nir.CubaLIF(
        tau_syn=_neuron_vector(tau_syn, shape), tau_mem=_neuron_vector(tau_mem, shape),
        r=_neuron_vector(1.0, shape), v_leak=_neuron_vector(n.v_leak, shape),
        v_threshold=_neuron_vector(n.v_th, shape), v_reset=_neuron_vector(n.v_reset, shape),
        w_in=_neuron_vector(tau_syn / spec.dt_s, shape),
    )


def readout_node(spec: ModelSpec, shape: tuple[int, ...]):
    """NIR ``CubaLI`` equal to Norse's ``LICell`` readout (leak voltage 0)."""
    import nir

    r = spec.readout
    tau_syn = 1.0 / r.tau_syn_inv
    return nir.CubaLI(tau_syn=_neuron_vector(tau_syn, shape), tau_mem=_neuron_vector(1.0 / r.tau_mem_inv, shape),
                      r=_neuron_vector(1.0, shape), v_leak=_neuron_vector(0.0, shape),
                      w_in=_neuron_vector(tau_syn / spec.dt_s, shape))


def _check_finite(name: str, array: np.ndarray) -> np.ndarray:
    if not np.isfinite(array).all():
        raise NeuromorphError(f"{name} contains NaN or infinite values: refusing to export")
    return array


def _synapse_node(layer, module, in_shape: tuple[int, ...], index: int):
    import nir

    weight = _check_finite(f"layer {index} weight", module.weight.detach().cpu().numpy().astype(np.float32))
    bias = None
    if module.bias is not None:
        bias = _check_finite(f"layer {index} bias", module.bias.detach().cpu().numpy().astype(np.float32))
    if isinstance(layer, Dense):
        if bias is None:
            return f"linear{index}", nir.Linear(weight=weight)
        return f"affine{index}", nir.Affine(weight=weight, bias=bias)
    return f"conv{index}", nir.Conv2d(
        input_shape=np.array(in_shape[1:]), weight=weight, stride=np.array([layer.stride, layer.stride]),
        padding=np.array([layer.padding, layer.padding]), dilation=np.array([1, 1]), groups=1,
        bias=bias if bias is not None else np.zeros(weight.shape[0], dtype=np.float32),
    )


def _pass_node(layer, in_shape: tuple[int, ...], index: int):
    import nir

    if isinstance(layer, Flatten):
        return f"flatten{index}", nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
    if isinstance(layer, Pool):
        k = np.array([layer.kernel_size, layer.kernel_size])
        cls = nir.AvgPool2d if layer.mode == "avg" else nir.SumPool2d
        return f"{'avg' if layer.mode == 'avg' else 'sum'}pool{index}", cls(kernel_size=k, stride=k,
                                                                              padding=np.array([0, 0]))
    raise NeuromorphError(f"layer {index} ({type(layer).__name__}) has no NIR export; "
                          f"supported: {', '.join(t.__name__ for t in (Dense, Conv, Pool, Flatten))}")


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
    """The NIR graph of a :class:`~neuromorph.models.SpikingNet` (weights copied, float32)."""
    import nir

    spec: ModelSpec = model.spec
    shapes = [spec.input_shape, *spec.layer_shapes()]
    nodes: dict[str, Any] = {"input": nir.Input(input_type={"input": np.array(spec.input_shape)})}
    chain = ["input"]
    synaptic = [i for i, layer in enumerate(spec.layers) if isinstance(layer, Dense | Conv)]
    for index, layer in enumerate(spec.layers):
        if isinstance(layer, Dense | Conv):
            block = model.blocks[synaptic.index(index)]
            name, node = _synapse_node(layer, block.synapse, shapes[index], index)
            nodes[name] = node
            chain.append(name)
            if index == synaptic[-1]:
                nodes["readout"] = readout_node(spec, shapes[index + 1])
                chain.append("readout")
            else:
                nodes[f"lif{index}"] = cuba_lif_node(spec, shapes[index + 1])
                chain.append(f"lif{index}")
        else:
            name, node = _pass_node(layer, shapes[index], index)
            nodes[name] = node
            chain.append(name)
    nodes["output"] = nir.Output(output_type={"output": np.array([spec.num_classes])})
    chain.append("output")
    edges = list(zip(chain[:-1], chain[1:], strict=True))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph_metadata(spec, description))


def nir_bytes(graph) -> bytes:
    """The HDF5 bytes ``nir.write`` produces for ``graph``."""
    import nir

    buffer = io.BytesIO()
    nir.write(buffer, graph)
    return buffer.getvalue()


def write_nir(model, path: str | os.PathLike, description: str = "") -> Path:
    """Export ``model`` and write it to ``path`` atomically (nothing is left behind on failure)."""
    from neuromorph.io import atomic_write

    data = nir_bytes(to_nir(model, description))
    return atomic_write(path, lambda handle: handle.write(data))
