"""Run a NIR graph in another framework (Norse, snnTorch, SpikingJelly), step by step, and record what each
population did: the spikes of every hidden population and the readout's voltage, in Norse volts.

Each runner loads the graph with that framework's own importer, exactly as its users would (the call of
:data:`export.nir_targets.NIR_TARGETS`'s ``load``), and records the populations through forward hooks on the
modules the importer names after the graph's nodes. Inputs are time-major ``[T, B, ...]`` (as
:class:`~neuromorph.models.SpikingNet` takes them). Norse's and snnTorch's ``Flatten`` flattens the batch axis too,
so they run one sample at a time. The frameworks are imported when a runner runs (they are test-only packages).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from export.nir_checks import metadata_number, metadata_text
from export.nir_targets import NIR_TARGETS
from neuromorph.errors import NeuromorphError


@dataclass(frozen=True)
class FrameworkRun:
    """What a framework computed: ``spikes`` (one ``[T, B, *shape]`` tensor per hidden population, in block order)
    and ``readout_v`` (``[T, B, classes]``, Norse volts; None where the framework did not map the readout)."""

    spikes: list[torch.Tensor]
    readout_v: torch.Tensor | None


def _neuron_names(graph: Any) -> list[str]:
    """Names of the neuron nodes along the Input -> Output chain (the last is the readout)."""
    successors = dict(graph.edges)
    name = next(n for n, node in graph.nodes.items() if type(node).__name__ == "Input")
    out = []
    while name in successors:
        name = successors[name]
        if type(graph.nodes[name]).__name__ in ("CubaLIF", "LIF", "CubaLI", "LI"):
            out.append(name)
    return out


def _volts_per_unit(graph: Any, name: str) -> float:
    text = metadata_text(graph.metadata or {}, "volts_per_unit")
    return 1.0 if text is None else float(json.loads(text).get(name, 1.0))


def _dt(graph: Any, default: float) -> float:
    """The file's ``dt_s``, else the framework's default."""
    return metadata_number(graph.metadata or {}, "dt_s") or default


@contextlib.contextmanager
def _recording(modules: dict[str, torch.nn.Module | None],
               pick: Callable[[torch.nn.Module, Any, bool], torch.Tensor]) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Forward hooks on ``modules`` (population name -> the framework's module; None: not mapped, not recorded),
    each appending ``pick(module, output, is_readout)`` per call; removed on exit."""
    record: dict[str, list[torch.Tensor]] = {name: [] for name in modules}
    readout = list(modules)[-1]
    hooks = [module.register_forward_hook(
        lambda m, _i, out, name=name: record[name].append(pick(m, out, name == readout)))
        for name, module in modules.items() if module is not None]
    try:
        yield record
    finally:
        for handle in hooks:
            handle.remove()


def _collect(graph: Any, x: torch.Tensor, step_sample: Callable[[Any, torch.Tensor], tuple[list, torch.Tensor]],
             batched: bool) -> FrameworkRun:
    """Run ``step_sample(batch_input)`` over ``x`` (all samples at once, or one at a time) and stack."""
    names = _neuron_names(graph)
    readout = names[-1]
    if batched:
        spikes, v = step_sample(names, x)
    else:
        runs = [step_sample(names, x[:, b:b + 1]) for b in range(x.shape[1])]
        spikes = [torch.cat([run[0][i] for run in runs], dim=1) for i in range(len(names) - 1)]
        v = None if runs[0][1] is None else torch.cat([run[1] for run in runs], dim=1)
    return FrameworkRun(spikes=spikes, readout_v=None if v is None else v.double() * _volts_per_unit(graph, readout))


def run_norse(graph: Any, x: torch.Tensor) -> FrameworkRun:
    """``norse.torch.from_nir(graph, dt=d)`` (``d``: the file's ``dt_s``, else Norse's default 1 ms)."""
    import norse.torch

    net = norse.torch.from_nir(graph, dt=_dt(graph, 1e-3))

    def pick(_module, out, readout: bool) -> torch.Tensor:
        z, state = out
        return (state.v if hasattr(state, "v") else state[1].v) if readout else z  # CubaLIF state: (synapse, lif)

    def step_sample(names: list[str], xs: torch.Tensor):
        # getattr: None for a node Norse does not map (the generic file's CubaLI readout)
        with _recording({name: getattr(net, name, None) for name in names}, pick) as record, torch.no_grad():
            state = None
            for t in range(xs.shape[0]):
                _, state = net(xs[t, 0], state)
        stacked = [torch.stack(record[name]).unsqueeze(1) if record[name] else None for name in names]
        return stacked[:-1], stacked[-1]

    return _collect(graph, x, step_sample, batched=NIR_TARGETS["norse"].batched)


def run_snntorch(graph: Any, x: torch.Tensor) -> FrameworkRun:
    """``snntorch.import_nir.import_from_nir(graph)`` (its neurons keep their state inside: reset per sample)."""
    import contextlib
    import io

    from snntorch import utils
    from snntorch.import_nir import import_from_nir

    with contextlib.redirect_stdout(io.StringIO()):  # it prints progress
        net = import_from_nir(graph)

    def pick(module, out, readout: bool) -> torch.Tensor:
        return module.mem.clone() if readout else out.clone()

    def step_sample(names: list[str], xs: torch.Tensor):
        modules = {name: net.get_submodule(name) for name in names}
        utils.reset(net)
        with _recording(modules, pick) as record, torch.no_grad():
            for t in range(xs.shape[0]):
                net(xs[t, 0])
        stacked = [torch.stack(record[name]).unsqueeze(1) for name in names]
        return stacked[:-1], stacked[-1]

    return _collect(graph, x, step_sample, batched=NIR_TARGETS["snntorch"].batched)


def run_spikingjelly(graph: Any, x: torch.Tensor) -> FrameworkRun:
    """``spikingjelly...nir_exchange.import_from_nir(graph, dt=d)`` (``d``: the file's ``dt_s``, else its 0.1 ms),
    run batched with its explicit state."""
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    net = import_from_nir(graph, dt=_dt(graph, 1e-4))

    def pick(_module, out, readout: bool) -> torch.Tensor:
        spike, state = out
        return state[0].clone() if readout else spike.clone()

    def step_sample(names: list[str], xs: torch.Tensor):
        modules = {name: net.get_submodule(name) for name in names}
        with _recording(modules, pick) as record, torch.no_grad():
            state = None
            for t in range(xs.shape[0]):
                _, state = net(xs[t], state)
        stacked = [torch.stack(record[name]) for name in names]
        return stacked[:-1], stacked[-1]

    return _collect(graph, x, step_sample, batched=NIR_TARGETS["spikingjelly"].batched)


# Framework name (an export.nir_targets.NIR_TARGETS key) -> its runner.
FRAMEWORK_RUNNERS: dict[str, Callable[[Any, torch.Tensor], FrameworkRun]] = {
    "norse": run_norse,
    "snntorch": run_snntorch,
    "spikingjelly": run_spikingjelly,
}


def run_in(framework: str, graph: Any, x: torch.Tensor) -> FrameworkRun:
    """Run ``graph`` on ``x`` in ``framework`` (one of :data:`FRAMEWORK_RUNNERS`)."""
    runner = FRAMEWORK_RUNNERS.get(framework)
    if runner is None:
        raise NeuromorphError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORK_RUNNERS)}")
    return runner(graph, x)
