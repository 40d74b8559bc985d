"""Import a NIR graph (written by this project or by another tool) as a runnable :class:`SpikingNet`.

The graph must be a chain ``Input -> ... -> Output`` whose nodes this module knows (:data:`NODE_READERS`, a registry
keyed by NIR node type whose rows also say which spec layer class they produce; an unknown node is refused with the
list of supported ones). Every synaptic node (Linear, Affine, Conv2d) must be followed by a neuron node. The spec
layers read from the chain give the blocks (:func:`neuromorph.structure.blocks`); each block's neuron node must be
``CubaLIF`` or ``LIF`` for a hidden block (one shared parameter set, as a :class:`~neuromorph.spec.ModelSpec` holds)
and ``CubaLI`` or ``LI`` for the last one (the readout).

The time step comes from the graph's metadata (``dt_s``, written by :mod:`export.nir_export`) or from the caller.
Under forward Euler with step dt, taken current first, NIR ``CubaLIF`` gives ``I' = (1-b) I + b*w_in*x`` and
``v' = v + a((v_leak - v) + r I')`` with ``a = dt/tau_mem``, ``b = dt/tau_syn``; Norse's ``LIFCell`` is the same with
``x_norse = r*b*w_in * x``. That factor is folded into the preceding synaptic weights (it is exactly 1 for graphs
this project writes, and is then not applied at all, so that weights are carried bit for bit).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export.nir_checks import check_graph, metadata_number, metadata_text, recorded_spec
from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, Flatten, ModelSpec, NeuronSpec, Pool, ReadoutSpec
from neuromorph.structure import HIDDEN, READOUT, blocks


@dataclass
class _Layer:
    """One imported step of the chain: a spec layer (with weights) or a neuron population."""

    node: str
    layer: Any = None  # Dense | Conv | Pool | Flatten, or None for a neuron node
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    neuron: dict[str, float] | None = None  # Norse parameters (tau_*_inv in 1/s) of a neuron node
    role: str = ""  # the block role (structure.HIDDEN or READOUT) a neuron node can fill
    input_scale: np.ndarray | None = None  # factor folded into the preceding synapse's weights
    out_shape: tuple[int, ...] = ()

    @property
    def population(self) -> bool:
        """A neuron node (a block's population), not a spec layer."""
        return self.layer is None

    @property
    def synaptic(self) -> bool:
        return self.layer is not None and self.layer.synaptic


@dataclass
class _Context:
    dt_s: float
    shape: tuple[int, ...]
    notes: list[str] = field(default_factory=list)


def _vec(node: Any, name: str) -> np.ndarray:
    return np.asarray(getattr(node, name), dtype=np.float64)


def _uniform(node_name: str, param: str, array: np.ndarray) -> float:
    values = np.asarray(array, dtype=np.float64).ravel()
    if values.size == 0 or not np.isfinite(values).all():
        raise NeuromorphError(f"NIR node {node_name!r}: {param} is empty or not finite")
    if not np.allclose(values, values[0], rtol=1e-6, atol=0):
        raise NeuromorphError(f"NIR node {node_name!r}: {param} differs between neurons; neuromorph models use one "
                              "value per layer")
    return float(values[0])


def _inv(tau: float) -> float:
    """1/tau, snapped to float32 (the precision the parameter was stored in and the model computes in)."""
    if tau <= 0:
        raise NeuromorphError(f"time constants must be positive, got {tau}")
    return float(np.float32(1.0 / tau))


def _shape_of(array: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in np.asarray(array).ravel())


def _layer_step(name: str, layer: Any, ctx: _Context, weight: np.ndarray | None = None,
                bias: np.ndarray | None = None) -> _Layer:
    """A spec-layer step; its output shape is the layer's own (:meth:`~neuromorph.spec.LayerBase.output_shape`)."""
    return _Layer(name, layer, weight, bias, out_shape=layer.output_shape(ctx.shape, f"NIR node {name!r}"))


def _read_linear(name: str, node: Any, ctx: _Context) -> _Layer:
    weight = np.asarray(node.weight, dtype=np.float32)
    bias = np.asarray(node.bias, dtype=np.float32) if getattr(node, "bias", None) is not None else None
    if weight.ndim != 2:
        raise NeuromorphError(f"NIR node {name!r}: expected a 2-D weight [out, in], got shape {weight.shape}")
    if ctx.shape != (weight.shape[1],):
        raise NeuromorphError(f"NIR node {name!r}: weight takes {weight.shape[1]} inputs, but its input has shape "
                              f"{ctx.shape}")
    _check_bias(name, bias, weight.shape[0])
    has_bias = bias is not None and bool(np.any(bias != 0))
    return _layer_step(name, Dense(int(weight.shape[0]), bias=has_bias), ctx, weight, bias if has_bias else None)


def _check_bias(name: str, bias: np.ndarray | None, outputs: int) -> None:
    if bias is not None and bias.shape != (outputs,):
        raise NeuromorphError(f"NIR node {name!r}: bias has shape {bias.shape}, expected ({outputs},): one per output")


def _pair(name: str, what: str, value: Any) -> int:
    values = np.asarray(value).ravel()
    if values.size not in (1, 2) or len(set(values.tolist())) != 1:
        raise NeuromorphError(f"NIR node {name!r}: {what} must be the same along height and width, got {value}")
    return _integer(name, what, values[0])


def _integer(name: str, what: str, value: Any) -> int:
    """A whole number given as an int, a 0-d or a one-element array (as NIR stores it), else one line."""
    values = np.asarray(value).ravel()
    if values.size != 1 or values.dtype.kind not in "iuf" or not float(values[0]).is_integer():
        raise NeuromorphError(f"NIR node {name!r}: {what} must be a whole number, got {value!r:.60}")
    return int(values[0])


def _read_conv2d(name: str, node: Any, ctx: _Context) -> _Layer:
    weight = np.asarray(node.weight, dtype=np.float32)
    if weight.ndim != 4 or weight.shape[2] != weight.shape[3]:
        raise NeuromorphError(f"NIR node {name!r}: expected a square kernel [C_out, C_in, k, k], got {weight.shape}")
    if len(ctx.shape) != 3 or ctx.shape[0] != weight.shape[1]:
        raise NeuromorphError(f"NIR node {name!r}: kernel takes {weight.shape[1]} channels, input has shape "
                              f"{ctx.shape}")
    if _integer(name, "groups", node.groups) != 1 or _pair(name, "dilation", node.dilation) != 1:
        raise NeuromorphError(f"NIR node {name!r}: only groups=1 and dilation=1 are supported")
    kernel = int(weight.shape[2])
    stride = _pair(name, "stride", node.stride)
    padding = node.padding
    if isinstance(padding, bytes | str):
        padding = padding.decode() if isinstance(padding, bytes) else padding
        if padding == "valid":
            padding = 0
        elif padding == "same" and stride == 1 and kernel % 2 == 1:
            padding = (kernel - 1) // 2
        else:
            raise NeuromorphError(f"NIR node {name!r}: padding {padding!r} is not supported here")
    padding = _pair(name, "padding", padding)
    bias = np.asarray(node.bias, dtype=np.float32) if getattr(node, "bias", None) is not None else None
    _check_bias(name, bias, weight.shape[0])
    has_bias = bias is not None and bool(np.any(bias != 0))
    layer = Conv(int(weight.shape[0]), kernel, stride=stride, padding=padding, bias=has_bias)
    return _layer_step(name, layer, ctx, weight, bias if has_bias else None)


def _read_flatten(name: str, node: Any, ctx: _Context) -> _Layer:
    # NIR shapes carry no batch, so a full flatten is start_dim 0; graphs written with a batch axis in mind use 1.
    if _integer(name, "end_dim", node.end_dim) != -1 or _integer(name, "start_dim", node.start_dim) not in (0, 1):
        raise NeuromorphError(f"NIR node {name!r}: only a full Flatten (start_dim 0 or 1, end_dim -1) is supported")
    return _layer_step(name, Flatten(), ctx)


def _pool_reader(mode: str) -> Callable[[str, Any, _Context], _Layer]:
    def read(name: str, node: Any, ctx: _Context) -> _Layer:
        kernel = _pair(name, "kernel_size", node.kernel_size)
        if _pair(name, "stride", node.stride) != kernel or _pair(name, "padding", node.padding) != 0:
            raise NeuromorphError(f"NIR node {name!r}: only non-overlapping pooling (stride = kernel, no padding) is "
                                  "supported")
        return _layer_step(name, Pool(kernel, mode), ctx)

    return read


def _read_cuba_lif(name: str, node: Any, ctx: _Context) -> _Layer:
    tau_syn = _uniform(name, "tau_syn", _vec(node, "tau_syn"))
    tau_mem = _uniform(name, "tau_mem", _vec(node, "tau_mem"))
    neuron = {"cell": "lif", "tau_syn_inv": _inv(tau_syn), "tau_mem_inv": _inv(tau_mem),
              "v_th": _uniform(name, "v_threshold", _vec(node, "v_threshold")),
              "v_leak": _uniform(name, "v_leak", _vec(node, "v_leak")),
              "v_reset": _uniform(name, "v_reset", _vec(node, "v_reset"))}
    scale = _vec(node, "r") * (ctx.dt_s / _vec(node, "tau_syn")) * _vec(node, "w_in")
    return _Layer(name, neuron=neuron, role=HIDDEN, input_scale=scale, out_shape=ctx.shape)


def _read_lif(name: str, node: Any, ctx: _Context) -> _Layer:
    neuron = {"cell": "lifbox", "tau_mem_inv": _inv(_uniform(name, "tau", _vec(node, "tau"))),
              "v_th": _uniform(name, "v_threshold", _vec(node, "v_threshold")),
              "v_leak": _uniform(name, "v_leak", _vec(node, "v_leak")),
              "v_reset": _uniform(name, "v_reset", _vec(node, "v_reset"))}
    return _Layer(name, neuron=neuron, role=HIDDEN, input_scale=_vec(node, "r"), out_shape=ctx.shape)


def _check_no_leak(name: str, node: Any) -> None:
    if _uniform(name, "v_leak", _vec(node, "v_leak")) != 0.0:
        raise NeuromorphError(f"NIR node {name!r}: the readout must have v_leak = 0 (Norse LICell as neuromorph "
                              "builds it)")


def _read_cuba_li(name: str, node: Any, ctx: _Context) -> _Layer:
    _check_no_leak(name, node)
    readout = {"tau_syn_inv": _inv(_uniform(name, "tau_syn", _vec(node, "tau_syn"))),
               "tau_mem_inv": _inv(_uniform(name, "tau_mem", _vec(node, "tau_mem")))}
    scale = _vec(node, "r") * (ctx.dt_s / _vec(node, "tau_syn")) * _vec(node, "w_in")
    return _Layer(name, neuron=readout, role=READOUT, input_scale=scale, out_shape=ctx.shape)


def _read_li(name: str, node: Any, ctx: _Context) -> _Layer:
    """LI has no synaptic current: Norse's LICell with tau_syn = dt (the current is this step's input only)."""
    _check_no_leak(name, node)
    readout = {"tau_syn_inv": float(np.float32(1.0 / ctx.dt_s)),
               "tau_mem_inv": _inv(_uniform(name, "tau", _vec(node, "tau")))}
    return _Layer(name, neuron=readout, role=READOUT, input_scale=_vec(node, "r"), out_shape=ctx.shape)


def _never_fires(node: Any) -> bool:
    """A spiking node whose every threshold is +inf: it never fires, so it is a non-spiking integrator (the readout
    form of :mod:`export.nir_targets` for importers without CubaLI/LI)."""
    threshold = np.asarray(node.v_threshold, dtype=np.float64)
    return threshold.size > 0 and bool(np.all(np.isposinf(threshold)))


def _read_cuba_lif_or_readout(name: str, node: Any, ctx: _Context) -> _Layer:
    """CubaLIF; one that never fires is read as the CubaLI readout it stands for (v_reset is then irrelevant)."""
    if _never_fires(node):
        return _read_cuba_li(name, node, ctx)
    return _read_cuba_lif(name, node, ctx)


def _read_lif_or_readout(name: str, node: Any, ctx: _Context) -> _Layer:
    """LIF; one that never fires is read as the LI readout it stands for."""
    if _never_fires(node):
        return _read_li(name, node, ctx)
    return _read_lif(name, node, ctx)


@dataclass(frozen=True)
class NodeReader:
    """How one NIR node type is read: ``read(node_name, node, context) -> _Layer``, and the spec layer class it
    produces (None for a neuron node, which becomes a block's population)."""

    read: Callable[[str, Any, _Context], _Layer]
    produces: type | None


# NIR node type name -> its reader. Input and Output are handled by the walk.
NODE_READERS: dict[str, NodeReader] = {
    "Linear": NodeReader(_read_linear, Dense),
    "Affine": NodeReader(_read_linear, Dense),
    "Conv2d": NodeReader(_read_conv2d, Conv),
    "Flatten": NodeReader(_read_flatten, Flatten),
    "SumPool2d": NodeReader(_pool_reader("sum"), Pool),
    "AvgPool2d": NodeReader(_pool_reader("avg"), Pool),
    "CubaLIF": NodeReader(_read_cuba_lif_or_readout, None),
    "LIF": NodeReader(_read_lif_or_readout, None),
    "CubaLI": NodeReader(_read_cuba_li, None),
    "LI": NodeReader(_read_li, None),
}
SUPPORTED_NODES = ("Input", "Output", *NODE_READERS)
# The spec layer classes a NIR graph can describe (every class in neuromorph.spec.LAYER_CLASSES, see tests/export).
NIR_READABLE_LAYERS: frozenset[type] = frozenset(r.produces for r in NODE_READERS.values() if r.produces is not None)


def _chain(graph: Any) -> list[str]:
    """Node names from the Input to the Output, refusing anything but a single chain."""
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if kind not in SUPPORTED_NODES:
            raise NeuromorphError(f"NIR node {name!r} of type {kind} is not supported; supported: "
                                  f"{', '.join(SUPPORTED_NODES)}")
    inputs = [n for n, node in graph.nodes.items() if type(node).__name__ == "Input"]
    if len(inputs) != 1:
        raise NeuromorphError(f"the NIR graph must have exactly one Input node, found {len(inputs)}")
    successors: dict[str, list[str]] = {}
    for src, dst in graph.edges:
        successors.setdefault(src, []).append(dst)
    chain = [inputs[0]]
    while type(graph.nodes[chain[-1]]).__name__ != "Output":
        nxt = successors.get(chain[-1], [])
        if len(nxt) != 1:
            raise NeuromorphError(f"NIR node {chain[-1]!r} has {len(nxt)} successors; only feed-forward chains "
                                  "(one successor per node) are supported")
        if nxt[0] in chain:
            raise NeuromorphError(f"NIR graph has a cycle through {nxt[0]!r}; recurrent graphs are not supported")
        chain.append(nxt[0])
    if len(chain) != len(graph.nodes):
        unused = sorted(set(graph.nodes) - set(chain))
        raise NeuromorphError(f"NIR nodes {unused} are not on the Input -> Output chain")
    return chain


def _prefer_exact(derived: dict[str, Any], recorded: dict[str, Any] | None) -> dict[str, Any]:
    """Take the recorded (float64) value where it agrees with the graph's (float32) one."""
    if not recorded:
        return derived
    out = dict(derived)
    for key, value in derived.items():
        old = recorded.get(key)
        if isinstance(value, float) and isinstance(old, int | float) and math.isclose(value, old, rel_tol=1e-6):
            out[key] = float(old)
    return out


def spec_and_weights_from_nir(graph: Any, dt_s: float | None = None,
                              time_steps: int | None = None) -> tuple[ModelSpec, list[tuple[np.ndarray, Any]]]:
    """The :class:`ModelSpec` of a NIR graph and the weights ``(weight, bias)`` of each synaptic layer."""
    check_graph(graph)
    meta = graph.metadata or {}
    if dt_s is None:
        dt_s = metadata_number(meta, "dt_s")
        if dt_s is None:
            raise NeuromorphError("the NIR graph records no time step (metadata dt_s): give dt_s explicitly")
    elif isinstance(dt_s, bool) or not isinstance(dt_s, int | float) or not (math.isfinite(dt_s) and dt_s > 0):
        raise NeuromorphError(f"the time step dt must be a positive number of seconds, got {dt_s!r}")
    unit = metadata_text(meta, "time_unit") or "s"
    if unit != "s":
        raise NeuromorphError(f"the NIR graph's time unit is {unit!r}; only seconds ('s') are supported")
    recorded = recorded_spec(meta)
    chain = _chain(graph)
    input_node = graph.nodes[chain[0]]
    ctx = _Context(dt_s=dt_s, shape=_shape_of(input_node.input_type["input"]))
    steps: list[_Layer] = []
    for name in chain[1:-1]:
        step = NODE_READERS[type(graph.nodes[name]).__name__].read(name, graph.nodes[name], ctx)
        ctx.shape = step.out_shape
        steps.append(step)
    _check_synapses_feed_populations(steps)
    layer_steps = [step for step in steps if not step.population]
    populations = [step for step in steps if step.population]

    if recorded is not None:
        dt_s = float(recorded["dt_s"]) if math.isclose(recorded.get("dt_s", -1), dt_s, rel_tol=1e-9) else dt_s
    extra = {k: recorded[k] for k in ("encoder", "name") if recorded and k in recorded}
    # The layers give the structure; the neuron nodes then give the parameters of the blocks' populations.
    spec = ModelSpec.from_dict({
        "input_shape": list(_shape_of(input_node.input_type["input"])),
        "layers": [step.layer.to_dict() for step in layer_steps],
        "num_classes": math.prod(ctx.shape),
        "time_steps": int(time_steps or metadata_number(meta, "time_steps", integer=True)
                          or (recorded or {}).get("time_steps") or 16),
        "dt_s": dt_s,
        **extra,
    })
    pairs = list(zip(blocks(spec), populations, strict=True))
    for block, population in pairs:
        if population.role != block.role:
            raise NeuromorphError(_MISPLACED_POPULATION[block.role].format(node=population.node))
    neuron = _shared_neuron([population for block, population in pairs if not block.readout], recorded)
    readout = pairs[-1][1].neuron
    if recorded is not None:
        readout = _prefer_exact(readout, recorded.get("readout"))
    readout_spec = ReadoutSpec(reduce=(recorded or {}).get("readout", {}).get("reduce", "max"), **readout)
    weights = [_synapse_weights(layer_steps[block.index], population) for block, population in pairs]
    return replace(spec, neuron=neuron, readout=readout_spec), weights


# Block role -> the error for a neuron node of the other role in that block's place.
_MISPLACED_POPULATION = {
    HIDDEN: "NIR node {node!r}: a non-spiking readout must be the last node before the Output",
    READOUT: "the NIR graph must end in a non-spiking readout (CubaLI or LI, or a CubaLIF or LIF with "
             "v_threshold = inf) before its Output, not {node!r}",
}


def _check_synapses_feed_populations(steps: list[_Layer]) -> None:
    """Every synaptic node is followed by a neuron node, and every neuron node follows a synaptic node."""
    for previous, step in zip([None, *steps], [*steps, None], strict=True):
        feeds = previous is not None and previous.synaptic
        if feeds and (step is None or not step.population):
            raise NeuromorphError(f"NIR node {previous.node!r} must be followed by a neuron node "
                                  "(CubaLIF, LIF, CubaLI or LI)")
        if step is not None and step.population and not feeds:
            raise NeuromorphError(f"NIR neuron node {step.node!r} must follow a synaptic node (Linear, Affine, Conv2d)")


def _synapse_weights(synapse: _Layer, population: _Layer) -> tuple[np.ndarray, np.ndarray | None]:
    """The synapse's weights with the population's input scale folded in (untouched when the scale is 1)."""
    if np.allclose(population.input_scale, 1.0, rtol=1e-6, atol=0):
        return synapse.weight, synapse.bias
    return _fold_scale(synapse, population.input_scale)


def _fold_scale(step: _Layer, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Scale each output channel's weights and bias (axis 0 of the weight and of the output, for Dense and Conv)."""
    per_channel = np.broadcast_to(scale, step.out_shape).reshape(step.out_shape[0], -1)
    if not np.allclose(per_channel, per_channel[:, :1], rtol=1e-6):
        raise NeuromorphError(f"NIR node {step.node!r}: the next neuron's input scale varies within a channel")
    factor = per_channel[:, 0]
    weight = step.weight * factor.reshape(-1, *([1] * (step.weight.ndim - 1)))
    bias = step.bias * factor if step.bias is not None else None
    return weight.astype(np.float32), None if bias is None else bias.astype(np.float32)


def _shared_neuron(neurons: list[_Layer], recorded: dict[str, Any] | None) -> NeuronSpec:
    recorded_neuron = (recorded or {}).get("neuron", {})
    extra = {k: recorded_neuron[k] for k in ("surrogate", "alpha") if k in recorded_neuron}
    if not neurons:
        return NeuronSpec(**extra)
    first = neurons[0].neuron
    for other in neurons[1:]:
        for key, value in first.items():
            same = value == other.neuron.get(key) if isinstance(value, str) else math.isclose(
                value, other.neuron.get(key, math.nan), rel_tol=1e-6)
            if not same:
                raise NeuromorphError(f"NIR neuron nodes {neurons[0].node!r} and {other.node!r} differ in {key}; "
                                      "neuromorph models share one neuron parameter set")
    params = _prefer_exact(first, recorded_neuron)
    if params.get("cell") == "lifbox" and "tau_syn_inv" in recorded_neuron:
        params["tau_syn_inv"] = recorded_neuron["tau_syn_inv"]
    return NeuronSpec(**params, **extra)


def from_nir(graph: Any, dt_s: float | None = None, time_steps: int | None = None):
    """A runnable :class:`~neuromorph.models.SpikingNet` with the graph's weights."""
    from neuromorph.models import build_model

    spec, weights = spec_and_weights_from_nir(graph, dt_s=dt_s, time_steps=time_steps)
    model = build_model(spec)
    with torch.no_grad():
        for block, (weight, bias) in zip(model.blocks, weights, strict=True):
            block.synapse.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
            if bias is not None:
                block.synapse.bias.copy_(torch.from_numpy(np.ascontiguousarray(bias)))
    return model.eval()


def read_nir(path: str | os.PathLike):
    """Read a NIR file with one clear error for a missing, corrupt or foreign file."""
    import nir

    path = Path(path)
    if not path.is_file():
        raise NeuromorphError(f"NIR file {str(path)!r} does not exist")
    try:
        return nir.read(path)
    except Exception as error:  # noqa: BLE001 - h5py and nir raise many types for a bad file
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise NeuromorphError(f"{str(path)!r} is not a readable NIR file ({reason[:100]})") from None


def load_nir(path: str | os.PathLike, dt_s: float | None = None, time_steps: int | None = None):
    """Read a NIR file and build the model it describes."""
    return from_nir(read_nir(path), dt_s=dt_s, time_steps=time_steps)


# ---- graphs written by other frameworks' exporters -----------------------------------------------------------------

def _fix_norse_time_constants(graph: Any, dt_s: float) -> str:
    """Norse 1.1.0's ``to_nir`` writes every time constant as ``dt*tau`` (``dt/tau_inv``) and a CubaLIF's ``w_in`` as 1,
    although its ``LIFCell`` current takes its input unscaled (``w_in = tau_syn/dt``): divide the taus by ``dt`` and
    set ``w_in``, in place. Exact: the graph then says what the Norse network computed."""
    import nir

    fixed = []
    for name, node in graph.nodes.items():
        taus = {nir.CubaLIF: ("tau_mem", "tau_syn"), nir.CubaLI: ("tau_mem", "tau_syn"), nir.LIF: ("tau",),
                nir.LI: ("tau",)}.get(type(node), ())
        for key in taus:
            setattr(node, key, np.asarray(getattr(node, key), dtype=np.float64) / dt_s)
        if "tau_syn" in taus:
            node.w_in = np.asarray(node.tau_syn, dtype=np.float64) / dt_s
        if taus:
            fixed.append(name)
    return (f"norse 1.1.0's to_nir writes tau = dt*tau (dt/tau_inv) and w_in = 1: read as tau/dt and "
            f"w_in = tau_syn/dt with dt {dt_s} s (nodes {', '.join(fixed) or 'none'})")


@dataclass(frozen=True)
class NirSource:
    """A tool whose NIR exporter wrote the graph: its time step (``dt_s``, used when the graph records none and the
    caller gives none) and the exact fix of what its exporter writes wrongly (``fix(graph, dt) -> note``)."""

    name: str
    dt_s: float | None
    fix: Callable[[Any, float], str] | None = None
    note: str = ""


# --source of import-nir -> what that exporter writes.
NIR_SOURCES: dict[str, NirSource] = {
    "neuromorph": NirSource("neuromorph", None, note="dt from the graph's metadata"),
    "norse": NirSource("norse", 1e-3, _fix_norse_time_constants,
                       "norse.torch.to_nir (1.1.0): time constants fixed, dt 1 ms unless --dt"),
    "snntorch": NirSource("snntorch", 1e-4, note="snntorch.export_nir.export_to_nir: its fixed dt of 0.1 ms"),
    "spikingjelly": NirSource("spikingjelly", 1e-4, note="nir_exchange.export_to_nir: its default dt of 0.1 ms"),
}


def from_nir_source(graph: Any, source: str = "neuromorph", dt_s: float | None = None,
                    time_steps: int | None = None) -> tuple[Any, list[str]]:
    """:func:`from_nir` for a graph written by ``source`` (a :data:`NIR_SOURCES` key): its exporter's dt when
    neither the caller nor the graph gives one, and its exporter's known errors fixed; returns the model and one
    line per fix."""
    row = NIR_SOURCES.get(source)
    if row is None:
        raise NeuromorphError(f"unknown NIR source {source!r}; known: {', '.join(NIR_SOURCES)}")
    if dt_s is None and "dt_s" not in (graph.metadata or {}):
        dt_s = row.dt_s
    notes = []
    if row.fix is not None:
        if dt_s is None:
            raise NeuromorphError(f"--source {source}: give the network's time step (--dt) to fix its time constants")
        notes.append(row.fix(graph, dt_s))
    return from_nir(graph, dt_s=dt_s, time_steps=time_steps), notes
