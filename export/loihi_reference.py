"""A pure numpy reference of Lava's fixed-point CUBA LIF network, as lava-nc 0.10.0 and lava-dl 0.6.0 compute it.

The per-neuron step and the synaptic sums are :mod:`export.loihi_cuba`'s numpy side. Synapses send in step ``t`` the
weighted sum of the spikes they received in step ``t - 1``: every on-chip synaptic layer delays by one step
(:attr:`export.chip_plan.ChipLayer.delay`). A host current (netx ``input`` layer) reaches its neurons in the same step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from export.chip_plan import ChipPlan
from export.loihi_cuba import CubaState, cuba_lif_step, synaptic_input

__all__ = ["CubaState", "ReferenceRun", "cuba_lif_step", "run_reference", "synaptic_input"]


@dataclass
class ReferenceRun:
    """Lava-time outputs (``steps`` long): spikes of each hidden layer ``[steps, B, *shape]``, readout voltage."""

    spikes: list[np.ndarray]
    readout_v: np.ndarray
    readout_spikes: np.ndarray
    delays: list[int]

    def aligned(self, time_steps: int) -> tuple[list[np.ndarray], np.ndarray]:
        """Shift each layer back by its delay: outputs on Norse's time axis, ``time_steps`` long."""
        spikes = [s[d:d + time_steps] for s, d in zip(self.spikes, self.delays, strict=False)]
        readout = self.readout_v[self.delays[-1]:self.delays[-1] + time_steps]
        return spikes, readout


def run_reference(qnet: ChipPlan, inputs: np.ndarray, steps: int | None = None) -> ReferenceRun:
    """Run the fixed-point network on ``inputs`` ``[T, B, ...]``: binary spikes (input shape) for a spike-input
    network, or integer host currents (first layer's output shape) for a direct-input one. Zero input follows the
    T given steps; ``steps`` defaults to T plus the network's total delay so that every layer sees all T inputs."""
    fp = qnet.constants
    inputs = np.asarray(inputs)
    time_steps, batch = inputs.shape[:2]
    delays = qnet.delays
    steps = steps if steps is not None else time_steps + delays[-1]
    states = [CubaState(np.zeros((batch, *q.out_shape), np.int64), np.zeros((batch, *q.out_shape), np.int64))
              for q in qnet.layers]
    buffers = [np.zeros((batch, *q.out_shape), np.int64) for q in qnet.layers]  # synapse outputs of last step
    recorded = [np.zeros((steps, batch, *q.out_shape), bool) for q in qnet.layers]
    readout_v = np.zeros((steps, batch, *qnet.layers[-1].out_shape), np.int64)
    for t in range(steps):
        source = inputs[t] if t < time_steps else np.zeros_like(inputs[0])
        for k, layer in enumerate(qnet.layers):
            if layer.on_host:
                a_in = source.astype(np.int64)
            else:
                a_in = buffers[k]
                buffers[k] = synaptic_input(layer, source, fp)
            spikes, states[k] = cuba_lif_step(states[k], a_in, layer.i_decay, layer.v_decay, layer.v_th_mant, 0, fp)
            recorded[k][t] = spikes
            source = spikes
        readout_v[t] = states[-1].v
    return ReferenceRun(spikes=recorded[:-1], readout_v=readout_v, readout_spikes=recorded[-1], delays=delays)
