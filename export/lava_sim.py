"""Run a network on Lava's simulator (``Loihi2SimCfg``) for many samples per compiled network.

Two precisions, one layout:

- ``fixed``: the netx HDF5 of :mod:`export.netx_export`, loaded by lava-dl's ``netx.hdf5.Network`` and run with
  ``select_tag='fixed_pt'`` (Loihi's bit-accurate arithmetic);
- ``float``: plain Lava ``Dense``/``Conv``/``LIFReset`` processes built from the same layer plan with DESIGN.md
  section 6's mapping (weights ``a*W``, ``du = b``, ``dv = a``, ``vth = v_th - v_reset``, bias and initial voltage
  zero as ``v_leak == v_reset``), run with ``select_tag='floating_pt'``.

With direct input the first synaptic layer runs on the host and its current drives the first neurons (as in
training, where it is computed once per sample); spike input enters through a synaptic layer.

Amortized compilation. A compiled network runs ``copies`` samples side by side, as independent copies (block-diagonal
dense weights, grouped convolutions: copy ``c`` of a layer only sees copy ``c`` of the layer before), and runs rounds
of them back to back: sample round ``r`` occupies Lava steps ``[r*W, (r+1)*W)``, ``W = T + D`` with ``D`` the
network's total delay (one step per on-chip synaptic layer). Every neuron population is a ``LIFReset`` whose state
is zeroed in the step where its own window starts (``r*W + d_k``, ``d_k`` its delay): its input then already comes
from the current sample, so each sample sees exactly a fresh network (tested against one run per sample).

Lava is imported late, through :func:`neuromorph.lava_compat.import_lava`; what Lava prints goes to stderr.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from export.chip_plan import PRECISIONS, ChipLayer, ChipPlan, float_plan, plan_layers
from export.lava_runner import _from_lava
from neuromorph.errors import NeuromorphError

WEIGHT_BUDGET = 4_000_000  # largest replicated weight array (entries) that the copies may create per layer
MAX_COPIES = 32


@dataclass
class LavaRun:
    """What Lava produced, on Norse's time axis (the per-layer delays undone).

    ``spikes``: one bool array ``[T, N, *shape]`` per hidden layer; ``readout_volts``: the readout voltage in Norse
    volts ``[T, N, classes]`` (fixed point: mantissa ``v / (scale * 64)``); ``readout_spikes``: readout neurons that
    reached the threshold (should stay empty). Timings in seconds: ``compile_s`` (build, compile, start the
    processes), ``run_s`` (simulate and read the monitors).
    """

    precision: str
    spikes: list[np.ndarray]
    readout_volts: np.ndarray
    readout_spikes: np.ndarray
    copies: int
    lava_steps: int
    compile_s: float
    run_s: float

    @property
    def samples(self) -> int:
        return int(self.readout_volts.shape[1])

    @property
    def samples_per_second(self) -> float:
        return self.samples / (self.compile_s + self.run_s)

    @property
    def steps_per_second(self) -> float:
        return self.lava_steps / self.run_s if self.run_s else float("nan")

    def timing(self) -> dict[str, float]:
        return {"samples": self.samples, "copies": self.copies, "lava_steps": self.lava_steps,
                "compile_s": self.compile_s, "run_s": self.run_s, "samples_per_second": self.samples_per_second,
                "lava_steps_per_second": self.steps_per_second}


def float_input_currents(model, x: torch.Tensor) -> np.ndarray:
    """The host currents ``a * (W x + bias)`` ``[T, B, *shape]`` of a direct-input model's first layer: the synaptic
    output the model itself computes (once, for a constant input), in Lava's units."""
    with torch.no_grad():
        current = model.blocks[0].currents(x)
    return plan_layers(model.spec)[0].a * current.detach().double().numpy()


# ---- independent copies side by side ---------------------------------------------------------------------------

def _copied_shape(shape: tuple[int, ...], copies: int) -> tuple[int, ...]:
    return (shape[0] * copies, *shape[1:])


def _copied_conv(weight: np.ndarray, copies: int) -> np.ndarray:
    """Grouped convolution: copy c's output channels read only copy c's input channels."""
    return np.concatenate([weight] * copies, axis=0)


def _copied_dense(weight: np.ndarray, copies: int) -> np.ndarray:
    """Block-diagonal weights: copy c's outputs read only copy c's inputs."""
    rows, cols = weight.shape[0], int(np.prod(weight.shape[1:]))
    out = np.zeros((rows * copies, cols * copies), dtype=weight.dtype)
    for c in range(copies):
        out[c * rows:(c + 1) * rows, c * cols:(c + 1) * cols] = weight.reshape(rows, cols)
    return out


# chip synapse kind -> (weights of one layer, copies) -> the weights of the copies side by side, and their groups
COPIES = {"dense": (_copied_dense, 1), "conv": (_copied_conv, None)}


def replicate(qnet: ChipPlan, copies: int) -> ChipPlan:
    """``copies`` independent copies of ``qnet`` side by side in one network (stacked on the first axis: features of
    a dense layer, channels of a conv layer). A flatten of ``copies*C`` channels is copy-major, so a dense layer
    after it stays block-diagonal. The host layer is left as it is: its currents are computed per copy."""
    if copies == 1:
        return qnet
    return replace(qnet, layers=tuple(copy_layer(layer, copies) for layer in qnet.layers))


def copy_layer(layer: ChipLayer, copies: int) -> ChipLayer:
    """One layer of the chip plan as ``copies`` side by side (the host layer keeps its weights: its currents are
    computed per copy)."""
    if copies == 1:
        return layer
    in_shape = layer.in_shape
    copy_weight, groups = COPIES[layer.synapse_kind]
    return replace(layer, in_shape=_copied_shape(in_shape, copies) if len(in_shape) == 3
                   else (math.prod(in_shape) * copies,), out_shape=_copied_shape(layer.out_shape, copies),
                   weight=layer.weight if layer.on_host else copy_weight(layer.weight, copies),
                   groups=layer.groups * copies if groups is None else layer.groups)


def default_copies(layers, samples: int) -> int:
    """Copies per compiled network: all samples at once, up to :data:`MAX_COPIES`, while the largest
    replicated dense weight array stays within :data:`WEIGHT_BUDGET` entries (block-diagonal weights grow with the
    square of the copies)."""
    largest = max((layer.weight.size for layer in layers if not layer.on_host and not layer.spatial), default=1)
    cap = max(1, min(samples, MAX_COPIES, int(math.sqrt(WEIGHT_BUDGET / largest))))
    rounds = -(-samples // cap)
    return -(-samples // rounds)  # as few rounds as the cap allows, as evenly filled as possible


def arrange(inputs: np.ndarray, copies: int, flat: bool) -> tuple[np.ndarray, int]:
    """Sample-major inputs ``[T, N, *shape]`` -> ``[rounds, T, copies*shape[0], ...]`` (zero-padded samples fill the
    last round); ``flat`` flattens each sample first."""
    steps, samples = inputs.shape[:2]
    data = inputs.reshape(steps, samples, -1) if flat else inputs
    rounds = -(-samples // copies)
    padded = np.zeros((steps, rounds * copies, *data.shape[2:]), dtype=data.dtype)
    padded[:, :samples] = data
    grouped = padded.reshape(steps, rounds, copies, *data.shape[2:]).swapaxes(0, 1)
    return grouped.reshape(rounds, steps, copies * data.shape[2], *data.shape[3:]), rounds


def _unarrange(series: np.ndarray, shape: tuple[int, ...], copies: int, rounds: int, window: int, delay: int,
               steps: int, samples: int) -> np.ndarray:
    """Lava-time outputs ``[rounds*W, copies*shape...]`` (torch order) -> ``[T, N, *shape]`` on Norse's time."""
    per_round = series.reshape(rounds, window, copies, *shape)[:, delay:delay + steps]
    return per_round.transpose(1, 0, 2, *range(3, 3 + len(shape))).reshape(steps, rounds * copies, *shape)[:, :samples]


def _ring_data(arranged: np.ndarray, window: int, dtype) -> np.ndarray:
    """``[rounds, T, *shape]`` (torch order) -> RingBuffer data ``[*lava_shape, rounds*W]``, zero after each T."""
    rounds, steps = arranged.shape[:2]
    sample_shape = arranged.shape[2:]
    lava = arranged if len(sample_shape) != 3 else np.moveaxis(arranged, (-3, -2, -1), (-1, -2, -3))
    data = np.zeros((rounds, window, *lava.shape[2:]), dtype=dtype)
    data[:, :steps] = lava
    data = data.reshape(rounds * window, *lava.shape[2:])
    return np.ascontiguousarray(np.moveaxis(data, 0, -1))


def load_lava() -> None:
    """Import Lava and lava-dl netx (through the Python 3.11 hook of :mod:`neuromorph.lava_compat`, which also lets
    Lava import after a progress bar fixed the multiprocessing start method), their chatter on stderr."""
    from neuromorph.lava_compat import import_lava

    with contextlib.redirect_stdout(sys.stderr):
        import_lava("lava.lib.dl.netx")
        import_lava("lava.proc.lif.process")


# ---- the two networks -------------------------------------------------------------------------------------------

def _run_and_collect(source, populations, readout, total_steps: int, select_tag: str, started: float):
    """Stream the spikes of every population and the readout's voltage out of the network (``Extractor`` processes,
    one array per step, and a :class:`~export.lava_tap.VoltageTap`), compile, run; returns the series ``[steps,
    *lava_shape]`` and the compile and run times."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel

    from export.lava_tap import MODELS, VoltageTap

    buffer = 64
    extractors = []
    for neuron in populations:
        extractor = Extractor(shape=neuron.s_out.shape, buffer_size=buffer)
        neuron.s_out.connect(extractor.in_port)
        extractors.append(extractor)
    tap = VoltageTap(shape=readout.v.shape)
    tap.ref.connect_var(readout.v)
    voltage = Extractor(shape=readout.v.shape, buffer_size=buffer)
    tap.out.connect(voltage.in_port)
    extractors.append(voltage)
    steps = total_steps + 1  # the tap sends step t's voltage in step t + 1
    series = [np.zeros((steps, *e.in_port.shape)) for e in extractors]
    try:
        models = {tap: MODELS[VoltageTap], **{e: PyLoihiExtractorModel for e in extractors}}  # by instance: the
        source.create_runtime(run_cfg=Loihi2SimCfg(select_tag=select_tag,  # compiler then skips its model search
                                                   exception_proc_model_map=models))
        compiled = time.perf_counter()
        source.run(condition=RunSteps(num_steps=steps, blocking=False))
        for t in range(steps):
            for data, extractor in zip(series, extractors, strict=True):
                data[t] = extractor.receive()
        source.wait()
    finally:
        source.stop()
    finished = time.perf_counter()
    return [*(s[:total_steps] for s in series[:-1]), series[-1][1:]], compiled - started, finished - compiled


def _netx_network(qnet: ChipPlan, arranged: np.ndarray, window: int, workdir: Path, started: float):
    from export.netx_export import write_netx
    from neuromorph.lava_compat import import_lava

    netx = import_lava("lava.lib.dl.netx")
    from lava.proc.io.source import RingBuffer

    path = write_netx(qnet, workdir / "copies.net")
    first_delay = qnet.layers[0].delay  # netx resets layer k at (1 + offset + k) mod W, 1-based
    from export.netx_export import verify_netx

    verify_netx(path)
    net = netx.hdf5.Network(net_config=str(path), reset_interval=window, reset_offset=first_delay)
    if len(net.layers) != len(qnet.layers):
        raise NeuromorphError(f"netx built {len(net.layers)} layers, expected {len(qnet.layers)}")
    source = RingBuffer(data=_ring_data(arranged, window, np.int32))
    source.s_out.connect(net.layers[0].neuron.a_in if qnet.layers[0].on_host else net.inp)
    neurons = [block.neuron for block in net.layers]
    return _run_and_collect(source, neurons, neurons[-1], arranged.shape[0] * window, "fixed_pt", started)


def _lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(reversed(shape)) if len(shape) == 3 else shape


def _lava_dense(layer: ChipLayer):
    from lava.proc.dense.process import Dense

    return Dense(weights=layer.weight.reshape(layer.weight.shape[0], -1))


def _lava_conv(layer: ChipLayer):
    from lava.proc.conv.process import Conv

    kernel = np.ascontiguousarray(layer.weight[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))  # as netx: Lava convolves,
    return Conv(weight=kernel, input_shape=_lava_shape(layer.in_shape), stride=layer.stride,  # torch correlates
                padding=layer.padding, groups=layer.groups)


# chip synapse kind -> the plain Lava process of a float layer's synapses
LAVA_SYNAPSES = {"dense": _lava_dense, "conv": _lava_conv}


def _float_network(layers: list[ChipLayer], arranged: np.ndarray, window: int, started: float):
    from neuromorph.lava_compat import import_lava

    import_lava("lava.magma.core.run_configs")
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIFReset

    source = RingBuffer(data=_ring_data(arranged, window, np.float64))
    port, neurons = source.s_out, []
    for layer in layers:
        neuron = LIFReset(shape=_lava_shape(layer.out_shape), du=layer.du, dv=layer.dv, vth=layer.vth,
                          reset_interval=window, reset_offset=layer.delay + 1)
        if layer.on_host:
            port.connect(neuron.a_in)
        else:
            synapse = LAVA_SYNAPSES[layer.synapse_kind](layer)
            if layer.flatten_before:
                port = port.transpose([2, 1, 0]).flatten()
            port.connect(synapse.s_in)
            synapse.a_out.connect(neuron.a_in)
        neurons.append(neuron)
        port = neuron.s_out
    return _run_and_collect(source, neurons, neurons[-1], arranged.shape[0] * window, "floating_pt", started)


def simulate_fixed(qnet: ChipPlan, inputs: np.ndarray, copies: int | None = None) -> LavaRun:
    """Run ``qnet`` through lava-dl netx in Lava fixed point on ``inputs`` ``[T, N, ...]`` (what
    :func:`export.quantization_report.reference_inputs` gives: spikes, or integer host currents)."""
    inputs = np.asarray(inputs)
    steps, samples = inputs.shape[:2]
    copies = copies or default_copies(qnet.layers, samples)
    load_lava()  # once per process; not part of the compile time
    started = time.perf_counter()
    arranged, rounds = arrange(inputs, copies, qnet.flat_input)
    window = steps + qnet.delays[-1]
    with contextlib.redirect_stdout(sys.stderr), tempfile.TemporaryDirectory(prefix="neuromorph-lava-") as tmp:
        series, compile_s, run_s = _netx_network(replicate(qnet, copies), arranged, window, Path(tmp), started)
    return _collect(qnet, series, copies, rounds, window, steps, samples, compile_s, run_s)


def simulate_float(model, x: torch.Tensor, copies: int | None = None) -> LavaRun:
    """Run ``model`` as plain Lava float processes on the encoded input ``x`` ``[T, N, ...]``."""
    plan = float_plan(model)
    steps, samples = x.shape[:2]
    copies = copies or default_copies(plan.layers, samples)
    load_lava()
    started = time.perf_counter()
    inputs = float_input_currents(model, x) if plan.layers[0].on_host else x.detach().double().numpy()
    arranged, rounds = arrange(np.ascontiguousarray(inputs), copies, plan.flat_input)
    copied = [copy_layer(layer, copies) for layer in plan.layers]
    window = steps + plan.delays[-1]
    with contextlib.redirect_stdout(sys.stderr):
        series, compile_s, run_s = _float_network(copied, arranged, window, started)
    return _collect(plan, series, copies, rounds, window, steps, samples, compile_s, run_s)


def _collect(plan: ChipPlan, series, copies, rounds, window, steps, samples, compile_s, run_s) -> LavaRun:
    shapes = [tuple(layer.out_shape) for layer in plan.layers]
    lag = plan.delays
    outputs = []
    for data, shape, delay in zip(series, [*shapes, shapes[-1]], [*lag, lag[-1]], strict=True):
        torch_order = _from_lava(data, _copied_shape(shape, copies))
        outputs.append(_unarrange(torch_order, shape, copies, rounds, window, delay, steps, samples))
    spikes = [o.astype(bool) for o in outputs[:-2]]
    return LavaRun(precision=plan.precision, spikes=spikes,
                   readout_volts=outputs[-1].astype(np.float64) / plan.readout_units_per_volt,
                   readout_spikes=outputs[-2].astype(bool), copies=copies, lava_steps=rounds * window,
                   compile_s=compile_s, run_s=run_s)


def simulate(model, x: torch.Tensor, precision: str = "fixed", qnet: ChipPlan | None = None,
             copies: int | None = None, batch: int | None = None,
             progress: Callable[[int], None] | None = None) -> LavaRun:
    """Run ``model`` on Lava for the encoded inputs ``x`` ``[T, N, ...]`` in ``fixed`` (netx) or ``float`` precision.

    ``qnet`` (fixed point) defaults to ``quantize(model)``. ``batch`` samples go into each compiled network (default:
    all); ``progress(done)`` is called after each. The run's timings add up over the compiled networks.
    """
    from export.quantization_report import reference_inputs
    from export.quantize import quantize

    if precision not in PRECISIONS:
        raise NeuromorphError(f"unknown precision {precision!r}; supported: {', '.join(PRECISIONS)}")
    if precision == "fixed" and qnet is None:
        qnet = quantize(model)
    samples = int(x.shape[1])
    batch = batch or samples
    runs = []
    for start in range(0, samples, batch):
        part = x[:, start:start + batch]
        if precision == "fixed":
            runs.append(simulate_fixed(qnet, reference_inputs(qnet, part), copies))
        else:
            runs.append(simulate_float(model, part, copies))
        if progress is not None:
            progress(min(start + batch, samples))
    return _concatenate(runs)


def _concatenate(runs: list[LavaRun]) -> LavaRun:
    if len(runs) == 1:
        return runs[0]
    return LavaRun(precision=runs[0].precision,
                   spikes=[np.concatenate(layer, axis=1) for layer in zip(*(r.spikes for r in runs), strict=True)],
                   readout_volts=np.concatenate([r.readout_volts for r in runs], axis=1),
                   readout_spikes=np.concatenate([r.readout_spikes for r in runs], axis=1),
                   copies=runs[0].copies, lava_steps=sum(r.lava_steps for r in runs),
                   compile_s=sum(r.compile_s for r in runs), run_s=sum(r.run_s for r in runs))


def simulate_one_at_a_time(qnet: ChipPlan, inputs: np.ndarray, workdir: str | os.PathLike) -> LavaRun:
    """The baseline: :func:`export.lava_runner.run_netx` once per sample (a fresh compiled network each)."""
    from export.lava_runner import run_netx
    from export.netx_export import write_netx

    path = write_netx(qnet, Path(workdir) / "one.net")
    inputs = np.asarray(inputs)
    steps = inputs.shape[0]
    started = time.perf_counter()
    runs = [run_netx(path, qnet, inputs[:, n]) for n in range(inputs.shape[1])]
    elapsed = time.perf_counter() - started
    aligned = [r.aligned(steps) for r in runs]
    spikes = [np.concatenate([a[0][k] for a in aligned], axis=1) for k in range(len(runs[0].spikes))]
    readout = np.concatenate([a[1] for a in aligned], axis=1)
    readout_spikes = np.concatenate([r.readout_spikes[r.delays[-1]:r.delays[-1] + steps] for r in runs], axis=1)
    return LavaRun(precision="fixed", spikes=spikes, readout_volts=readout.astype(np.float64)
                   / qnet.readout_units_per_volt, readout_spikes=readout_spikes, copies=1,
        lava_steps=sum(steps + r.delays[-1] for r in runs), compile_s=0.0, run_s=elapsed)
