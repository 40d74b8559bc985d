"""NIR files for other frameworks' importers: the same network, parameterised as each importer reads NIR.

NIR fixes the equations, not their parameterisation: a graph can carry a network in any time base and voltage unit,
and each framework's importer accepts one form. :func:`to_nir_for` rewrites the graph of
:func:`export.nir_export.to_nir` into the form a :data:`NIR_TARGETS` row names, exactly (the equations of the network
do not change), or refuses with one line where the rewrite would not be exact.

With Norse's decays ``a = dt*tau_mem_inv``, ``b = dt*tau_syn_inv`` (DESIGN.md section 3) and the importer's time
step ``d``, every form keeps ``a`` and ``b`` per step by rescaling time (``tau' = d/a``, ``tau_syn' = d/b``):

- ``norse`` form (Norse's own units, ``d`` = 1 ms, its ``from_nir`` default): ``CubaLIF(tau_syn', tau_mem', r = 1,
  w_in = tau_syn'/d)``; NIR's forward Euler then gives Norse's ``j = (1-b) j + x``, ``v' = v + a((v_leak - v) + j)``.
- ``r = tau/dt`` form (snnTorch and SpikingJelly, ``d`` = 0.1 ms, their fixed or default step): ``CubaLIF(tau_syn',
  tau_mem', r = tau_mem'/d = 1/a, w_in = tau_syn'/d = 1/b)``, threshold ``v_th/a`` and reset ``v_reset/a``. Euler
  gives ``I' = (1-b) I + x`` (Norse's ``j``) and ``u' = (1-a) u + I'`` with ``u = v/a``: the voltage in units of
  ``1/a`` volts, the same spikes. ``LIFBoxCell`` is ``LIF(tau', r = 1/a)`` with the same units.

Where an importer does not map a node, an equal one takes its place: the ``CubaLI`` readout becomes a ``CubaLIF``
that never fires (``v_threshold = inf``), whose voltage is the readout's; an average pool of window ``k`` becomes a
sum pool with the next synaptic weights divided by ``k**2`` (or a sum pool an average pool, weights times ``k**2``),
exact in binary floating point only when ``k**2`` is a power of two (else refused). ``Flatten`` stays NIR's
(``start_dim`` 0, no batch axis: NIR's type check refuses anything else); importers that hand ``start_dim`` to
``torch.nn.Flatten`` as it is (Norse, snnTorch) then flatten the batch axis too, so they run one sample at a time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from neuromorph.errors import NeuromorphError
from neuromorph.spec import ModelSpec
from neuromorph.structure import blocks

GENERIC = "generic"
NEVER_FIRES = math.inf  # v_threshold of a CubaLIF that stands for a non-spiking readout


@dataclass(frozen=True)
class Population:
    """One population's per-step constants (Norse's): ``a``, ``b`` (1 for a box cell), threshold, leak, reset
    (volts; ``v_th`` is None for the readout, which never fires), and the NIR node kind its cell is."""

    a: float
    b: float
    v_th: float | None
    v_leak: float
    v_reset: float
    box: bool = False  # LIFBoxCell: no synaptic current (NIR LIF)


def populations(spec: ModelSpec) -> list[Population]:
    """The constants of each block's population, in block order."""
    out = []
    n, r = spec.neuron, spec.readout
    for block in blocks(spec):
        if block.readout:
            out.append(Population(spec.dt_s * r.tau_mem_inv, spec.dt_s * r.tau_syn_inv, None, 0.0, 0.0))
        else:
            box = n.cell == "lifbox"
            out.append(Population(spec.dt_s * n.tau_mem_inv, 1.0 if box else spec.dt_s * n.tau_syn_inv, n.v_th,
                                  n.v_leak, n.v_reset, box))
    return out


def _vec(value: float, shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, value, dtype=np.float32)


# ---- the two parameter forms: population, shape, importer dt, threshold rounding -> NIR node, volts per unit ----

def _threshold(value: float | None, scale: float, at_or_above: bool) -> float:
    """The file's threshold for ``v > value`` in the file's units (``value/scale``); for an importer that spikes on
    ``v >= threshold``, the next float32 above it, so that both fire on the same float32 voltages."""
    if value is None:
        return NEVER_FIRES
    threshold = np.float32(value / scale)
    return float(np.nextafter(threshold, np.float32(np.inf))) if at_or_above else float(threshold)


def _norse_form(p: Population, shape: tuple[int, ...], d: float, at_or_above: bool) -> tuple[Any, float]:
    """Norse's units: ``r = 1``, ``w_in = tau_syn/d``; the voltage is in volts."""
    import nir

    v_th = _threshold(p.v_th, 1.0, at_or_above)
    if p.box:
        return nir.LIF(tau=_vec(d / p.a, shape), r=_vec(1.0, shape), v_leak=_vec(p.v_leak, shape),
                       v_threshold=_vec(v_th, shape), v_reset=_vec(p.v_reset, shape)), 1.0
    return nir.CubaLIF(tau_syn=_vec(d / p.b, shape), tau_mem=_vec(d / p.a, shape), r=_vec(1.0, shape),
                       v_leak=_vec(p.v_leak, shape), v_threshold=_vec(v_th, shape),
                       v_reset=_vec(p.v_reset, shape), w_in=_vec(1.0 / p.b, shape)), 1.0


def _r_tau_form(p: Population, shape: tuple[int, ...], d: float, at_or_above: bool) -> tuple[Any, float]:
    """``r = tau_mem/d``, ``w_in = tau_syn/d``: the voltage in units of ``1/a`` volts (threshold and reset too)."""
    import nir

    v_th = _threshold(p.v_th, p.a, at_or_above)
    leak, reset = p.v_leak / p.a, p.v_reset / p.a
    if p.box:
        return nir.LIF(tau=_vec(d / p.a, shape), r=_vec(1.0 / p.a, shape), v_leak=_vec(leak, shape),
                       v_threshold=_vec(v_th, shape), v_reset=_vec(reset, shape)), p.a
    return nir.CubaLIF(tau_syn=_vec(d / p.b, shape), tau_mem=_vec(d / p.a, shape), r=_vec(1.0 / p.a, shape),
                       v_leak=_vec(leak, shape), v_threshold=_vec(v_th, shape), v_reset=_vec(reset, shape),
                       w_in=_vec(1.0 / p.b, shape)), p.a


PopulationForm = Callable[[Population, tuple[int, ...], float, bool], tuple[Any, float]]


# ---- what each importer can take: refusals of one line ----------------------------------------------------------

def _needs(condition: bool, target: str, why: str) -> None:
    if not condition:
        raise NeuromorphError(f"--for {target}: {why}; the rewrite would not be exact, so nothing was written")


def _check_norse(spec: ModelSpec, pops: list[Population]) -> None:
    _needs(spec.neuron.v_reset == 0.0, "norse", f"Norse's from_nir ignores v_reset (it resets to 0), but this model "
                                                f"resets to {spec.neuron.v_reset}")
    _needs(spec.neuron.v_leak == 0.0 or spec.neuron.cell == "lifbox", "norse",
           f"Norse's from_nir gives a CubaLIF's synaptic current the neuron's v_leak ({spec.neuron.v_leak}), which "
           "NIR's CubaLIF does not have")


def _check_zero_leak(target: str) -> Callable[[ModelSpec, list[Population]], None]:
    def check(spec: ModelSpec, pops: list[Population]) -> None:
        n = spec.neuron
        if target == "snntorch":
            _needs(n.v_leak == 0.0 and n.v_reset == 0.0, target, "snnTorch's import_from_nir needs v_leak = 0 and "
                   f"resets to zero, but this model has v_leak {n.v_leak}, v_reset {n.v_reset}")
        elif n.cell == "lifbox":
            _needs(n.v_leak == n.v_reset, target, "SpikingJelly's LIF leaks to its reset voltage, but this model has "
                   f"v_leak {n.v_leak} != v_reset {n.v_reset}")
        else:
            _needs(n.v_leak == 0.0, target, f"SpikingJelly's CubaLIF needs v_leak = 0, this model has {n.v_leak}")

    return check


@dataclass(frozen=True)
class NirTarget:
    """How one framework's NIR importer reads a graph.

    ``dt_s``: the importer's time step (its default or fixed one; None: the model's own); ``pools``: the pool modes
    (:attr:`neuromorph.spec.Pool.mode`) it maps; ``batched``: whether its modules take a batch axis (Norse's and
    snnTorch's Flatten flattens it too: one sample at a time); ``form``: the neuron parameterisation;
    ``at_or_above``: it spikes on ``v >= threshold``; ``load``: how to load the file there; ``limits``: one line
    on what it cannot represent.
    """

    name: str
    help: str
    dt_s: float | None
    pools: tuple[str, ...]
    batched: bool
    form: PopulationForm
    at_or_above: bool
    check: Callable[[ModelSpec, list[Population]], None]
    load: str
    limits: str


NIR_TARGETS: dict[str, NirTarget] = {
    "norse": NirTarget(
        name="norse", dt_s=1e-3, pools=("sum",), batched=False, form=_norse_form, at_or_above=False,
        check=_check_norse,
        help="Norse 1.1.0 norse.torch.from_nir(graph) at its default dt of 1 ms",
        load="norse.torch.from_nir(nir.read(FILE))  # dt 1e-3, its default",
        limits="Norse's from_nir maps no CubaLI (readout written as a CubaLIF that never fires, v_threshold = inf) "
               "and no AvgPool2d (average pools written as sum pools, next weights / k^2); it ignores v_reset and "
               "gives the synaptic current the neuron's v_leak (both must be 0); time rescaled to its dt of 1 ms; "
               "its Flatten counts the batch axis (run one sample at a time)"),
    "snntorch": NirTarget(
        name="snntorch", dt_s=1e-4, pools=("avg",), batched=False, form=_r_tau_form, at_or_above=False,
        check=_check_zero_leak("snntorch"),
        help="snnTorch 1.0.0 snntorch.import_nir.import_from_nir(graph), which assumes dt = 0.1 ms and "
             "r = tau_mem/dt",
        load="snntorch.import_nir.import_from_nir(nir.read(FILE))",
        limits="snnTorch maps no CubaLI (readout written as a CubaLIF that never fires, v_threshold = inf) and no "
               "SumPool2d (sum pools written as average pools, next weights x k^2); it fixes dt at 0.1 ms (time "
               "rescaled) and r = tau_mem/dt (voltages in units of 1/a volts); it needs v_leak = v_reset = 0; "
               "its Flatten counts the batch axis (run one sample at a time)"),
    "spikingjelly": NirTarget(
        name="spikingjelly", dt_s=1e-4, pools=("avg",), batched=True, form=_r_tau_form, at_or_above=True,
        check=_check_zero_leak("spikingjelly"),
        help="SpikingJelly 2.0.0 nir_exchange.import_from_nir(graph) at its default dt of 0.1 ms",
        load="spikingjelly.activation_based.nir_exchange.import_from_nir(nir.read(FILE))  # dt 1e-4, its default",
        limits="SpikingJelly maps no CubaLI (readout written as a CubaLIF that never fires, v_threshold = inf) and "
               "no SumPool2d (sum pools written as average pools, next weights x k^2); it needs r = tau_mem/dt and "
               "w_in = tau_syn/dt (voltages in units of 1/a volts, time rescaled to its dt of 0.1 ms) and "
               "v_leak = 0; it fires on v >= threshold (threshold written as the next float32 above v_th/a)"),
}
TARGET_NAMES = (GENERIC, *NIR_TARGETS)


def target_help() -> str:
    """The ``--for`` help text: what each target means."""
    lines = [f"{GENERIC}: this project's file (model dt, Norse's units; read back by import-nir)"]
    lines += [f"{name}: for {target.help}" for name, target in NIR_TARGETS.items()]
    return "; ".join(lines)


def _pool_factor(node: Any, mode: str, target: NirTarget) -> tuple[Any, float, str]:
    """The pool node the target maps in place of ``node`` and the factor the next synaptic weights take."""
    import nir

    if mode in target.pools:
        return node, 1.0, ""
    k = int(np.asarray(node.kernel_size).ravel()[0])
    area = k * k
    if area & (area - 1):
        raise NeuromorphError(f"--for {target.name}: its importer maps {'sum' if mode == 'avg' else 'average'} pools "
                              f"only, and rescaling the next weights by k^2 = {area} is not exact in binary floating "
                              "point (only powers of two are); nothing was written")
    kwargs = {"kernel_size": node.kernel_size, "stride": node.stride, "padding": node.padding}
    if mode == "avg":
        return nir.SumPool2d(**kwargs), 1.0 / area, "sumpool"
    return nir.AvgPool2d(**kwargs), float(area), "avgpool"


def _scaled_synapse(node: Any, factor: float) -> Any:
    """A Linear/Affine/Conv2d node with its weight (not its bias) times ``factor`` (a power of two: exact)."""
    if factor == 1.0:
        return node
    scaled = replace(node, weight=(np.asarray(node.weight) * np.float32(factor)).astype(np.float32))
    return scaled


def _file_spec(spec: ModelSpec, target: NirTarget) -> dict[str, Any]:
    """The model description in the file's time base and voltage units, so that ``import-nir`` rebuilds the same
    network from it: rates and inverse time constants times ``dt/d``, thresholds in the form's units."""
    d = target.dt_s
    ratio = spec.dt_s / d
    data = spec.to_dict()
    data["dt_s"] = d
    for key in ("neuron", "readout"):
        for inv in ("tau_mem_inv", "tau_syn_inv"):
            data[key][inv] = data[key][inv] * ratio
    if target.form is _r_tau_form:
        a = spec.dt_s * spec.neuron.tau_mem_inv
        for volts in ("v_th", "v_leak", "v_reset"):
            data["neuron"][volts] = data["neuron"][volts] / a
    data["encoder"]["max_rate_hz"] = data["encoder"]["max_rate_hz"] * ratio  # the same spike probability per step
    data.pop("fixed_point", None)
    return data


def to_nir_for(model, target: str, description: str = ""):
    """The NIR graph of ``model`` in the form ``target``'s importer reads (see the module docstring), and the
    target's one line on what it cannot represent. ``generic`` is :func:`export.nir_export.to_nir` itself."""
    from export.nir_export import graph_metadata, to_nir

    graph = to_nir(model, description)
    if target == GENERIC:
        return graph, ""
    if target not in NIR_TARGETS:
        raise NeuromorphError(f"unknown NIR target {target!r}; known: {', '.join(TARGET_NAMES)}")
    import nir

    row = NIR_TARGETS[target]
    spec: ModelSpec = model.spec
    pops = populations(spec)
    row.check(spec, pops)
    names = [block.name for block in blocks(spec)]
    nodes: dict[str, Any] = {}
    factor, volts = 1.0, {}
    for name, node in graph.nodes.items():
        kind = type(node).__name__
        if name in names:
            p = pops[names.index(name)]
            node, unit = row.form(p, tuple(np.asarray(node.input_type["input"]).ravel().tolist()), row.dt_s,
                                  row.at_or_above)
            volts[name] = unit
        elif kind in ("SumPool2d", "AvgPool2d"):
            node, pool_factor, prefix = _pool_factor(node, "sum" if kind == "SumPool2d" else "avg", row)
            factor *= pool_factor
            name = prefix + name[len("sumpool" if kind == "SumPool2d" else "avgpool"):] if prefix else name
        elif kind in ("Linear", "Affine", "Conv2d"):
            node, factor = _scaled_synapse(node, factor), 1.0
        nodes[name] = node
    chain = list(nodes)
    metadata = graph_metadata(spec, description)
    metadata.update({
        "dt_s": float(row.dt_s),
        "model_dt_s": float(spec.dt_s),
        "nir_target": target,
        "nir_target_load": row.load,
        "nir_target_limits": row.limits,
        "neuromorph_spec": json.dumps(_file_spec(spec, row)),
        "volts_per_unit": json.dumps(volts),
    })
    metadata.update({key: graph.metadata[key] for key in ("weights", "weight_grid_units") if key in graph.metadata})
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:], strict=True)), metadata=metadata), \
        row.limits


def write_nir_for(model, path, target: str, description: str = "") -> tuple[Any, str]:
    """Write ``to_nir_for(model, target)`` to ``path`` atomically; returns the path and the target's limits line."""
    from export.nir_export import nir_bytes
    from neuromorph.io import atomic_write

    graph, limits = to_nir_for(model, target, description)
    data = nir_bytes(graph)
    return atomic_write(path, lambda handle: handle.write(data)), limits
