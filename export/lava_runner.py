"""Run an exported netx file in Lava's bit-accurate fixed-point simulator (``Loihi2SimCfg(select_tag='fixed_pt')``).

Lava is imported here, late, through :func:`neuromorph.lava_compat.import_lava` (the Python 3.11 import hook).
Lava processes carry no batch: one sample per run. Outputs are returned in torch order (``[C, H, W]``) on Lava's
time axis, ``steps`` long; :meth:`export.loihi_reference.ReferenceRun.aligned` maps them back to Norse's time.
This is the one-sample-per-run baseline; :mod:`export.lava_sim` runs many samples per compiled network.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from export.chip_plan import ChipPlan
from export.loihi_reference import ReferenceRun


def _to_lava(array: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` (torch) -> ``(x, y, z) = (W, H, C)`` (Lava); 1-D unchanged."""
    return array.transpose(2, 1, 0) if array.ndim == 3 else array


def _from_lava(series: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``[steps, W, H, C]`` or flat -> ``[steps, C, H, W]``."""
    steps = series.shape[0]
    if len(shape) == 3:
        channels, height, width = shape
        return series.reshape(steps, width, height, channels).transpose(0, 3, 2, 1)
    return series.reshape(steps, *shape)


def run_netx(path: str | os.PathLike, qnet: ChipPlan, sample: np.ndarray,
             steps: int | None = None) -> ReferenceRun:
    """Run the netx file at ``path`` on one sample ``[T, ...]`` (spikes of the input shape, or integer host
    currents of the first layer's shape, as :func:`export.loihi_reference.run_reference` takes them).

    What Lava and lava-dl print (lava-dl warns about an optional dataset toolbox on import) goes to stderr, so that
    stdout stays machine-readable."""
    with contextlib.redirect_stdout(sys.stderr):
        return _run_netx(path, qnet, sample, steps)


def _run_netx(path, qnet: ChipPlan, sample: np.ndarray, steps: int | None) -> ReferenceRun:
    from neuromorph.lava_compat import import_lava

    netx = import_lava("lava.lib.dl.netx")
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    sample = np.asarray(sample)
    if qnet.flat_input:
        sample = sample.reshape(sample.shape[0], -1)  # net.inp of a dense first layer is flat (torch C order)
    time_steps = sample.shape[0]
    delays = qnet.delays
    steps = steps if steps is not None else time_steps + delays[-1]
    data = np.zeros((*_to_lava(sample[0]).shape, steps), dtype=np.int32)
    for t in range(time_steps):
        data[..., t] = _to_lava(sample[t])
    from export.netx_export import verify_netx

    verify_netx(path)
    net = netx.hdf5.Network(net_config=str(path))
    if len(net.layers) != len(qnet.layers):
        raise RuntimeError(f"netx built {len(net.layers)} layers, expected {len(qnet.layers)}")
    source = RingBuffer(data=data)
    if qnet.layers[0].on_host:
        source.s_out.connect(net.layers[0].neuron.a_in)
    else:
        source.s_out.connect(net.inp)
    monitors = []
    for block in net.layers:
        monitor = Monitor()
        monitor.probe(block.neuron.s_out, steps)
        monitors.append((monitor, block.neuron, "s_out"))
    volt = Monitor()
    volt.probe(net.layers[-1].neuron.v, steps)
    monitors.append((volt, net.layers[-1].neuron, "v"))
    try:
        source.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        series = [monitor.get_data()[process.name][var] for monitor, process, var in monitors]
    finally:
        source.stop()
    shapes = [q.out_shape for q in qnet.layers]
    spikes = [_from_lava(np.asarray(s), shape)[:, None].astype(bool) for s, shape in zip(series, shapes, strict=False)]
    readout_v = _from_lava(np.asarray(series[-1]), shapes[-1])[:, None].astype(np.int64)
    return ReferenceRun(spikes=spikes[:-1], readout_v=readout_v, readout_spikes=spikes[-1], delays=delays)
