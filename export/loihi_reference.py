"""A pure numpy reference of Lava's fixed-point CUBA LIF network, as lava-nc 0.10.0 and lava-dl 0.6.0 compute it.

Per neuron and step (``PyLifModelBitAcc``, ``lava/proc/lif/models.py``), all integers:

``u = sign(u*(4096 - iDecay)) * (|u*(4096 - iDecay)| >> 12) + (a_in << 6)``, wrapped into 24 bits as Lava wraps it;
``v = clip(sign(v*(4096 - vDecay)) * (|v*(4096 - vDecay)| >> 12) + u + (bias_mant << 6), -(2**23 - 1), 2**23 - 1)``;
``s = v > (vThMant << 6)``; ``v[s] = 0``. (netx sets ``du = iDecay - 1``; Lava decays the current by ``du + 1``.)

Synapses (``PyDenseModelBitAcc``, ``PyConvModelFixed``) send in step ``t`` the weighted sum of the spikes they
received in step ``t - 1``: every on-chip synaptic layer delays by one step. A host current (netx ``input`` layer)
reaches its neurons in the same step. The bit widths come from :data:`hw_models.loihi.LOIHI_FIXED_POINT`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from export.quantize import QuantizedLayer, QuantizedNet
from hw_models.loihi import LoihiFixedPoint


@dataclass
class CubaState:
    """Current ``u`` and voltage ``v`` of a population, integers in Lava's scaled units."""

    u: np.ndarray
    v: np.ndarray


def _decay(x: np.ndarray, decay: int, fp: LoihiFixedPoint) -> np.ndarray:
    """``x * (1 - decay/4096)``, truncated toward zero as Lava does."""
    product = x.astype(np.int64) * (fp.decay_unit - decay)
    return np.sign(product) * (np.abs(product) >> fp.decay_bits)


def cuba_lif_step(state: CubaState, a_in: np.ndarray, i_decay: int, v_decay: int, v_th_mant: int,
                  bias_mant: np.ndarray | int, fp: LoihiFixedPoint) -> tuple[np.ndarray, CubaState]:
    """One bit-accurate step of Lava's LIF; returns the spikes and the new state."""
    limit = 2 ** (fp.state_bits - 1)
    current = _decay(state.u, i_decay, fp) + (a_in.astype(np.int64) << fp.input_shift)
    wrapped = np.where(current > limit, current - 2 * limit, current)
    wrapped = np.where(wrapped <= -limit, current + 2 * limit, wrapped)  # as Lava writes it
    bias = np.left_shift(np.asarray(bias_mant, dtype=np.int64), fp.bias_exp)
    voltage = np.clip(_decay(state.v, v_decay, fp) + wrapped + bias, -limit + 1, limit - 1)
    spikes = voltage > (np.int64(v_th_mant) << fp.threshold_shift)
    return spikes, CubaState(u=wrapped, v=np.where(spikes, 0, voltage))


def synaptic_input(layer: QuantizedLayer, spikes: np.ndarray, fp: LoihiFixedPoint) -> np.ndarray:
    """Integer weighted sum of a batch of spikes ``[B, *in_shape]`` (torch order) -> ``[B, *out_shape]``."""
    batch = spikes.shape[0]
    if layer.kind == "dense":
        return spikes.reshape(batch, -1).astype(np.int64) @ layer.weight.T.astype(np.int64)
    summed = torch.nn.functional.conv2d(torch.from_numpy(spikes.astype(np.float64)),
                                        torch.from_numpy(layer.weight.astype(np.float64)),
                                        stride=layer.stride, padding=layer.padding, groups=layer.groups)
    total = np.round(summed.numpy()).astype(np.int64)
    base = 1 << fp.conv_accumulator_bits
    return (total + base // 2) % base - base // 2  # Lava's signed_clamp: wraps to 24 bits


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


def run_reference(qnet: QuantizedNet, inputs: np.ndarray, steps: int | None = None) -> ReferenceRun:
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
            if layer.kind == "input":
                a_in = source.astype(np.int64)
            else:
                a_in = buffers[k]
                buffers[k] = synaptic_input(layer, source, fp)
            spikes, states[k] = cuba_lif_step(states[k], a_in, layer.i_decay, layer.v_decay, layer.v_th_mant, 0, fp)
            recorded[k][t] = spikes
            source = spikes
        readout_v[t] = states[-1].v
    return ReferenceRun(spikes=recorded[:-1], readout_v=readout_v, readout_spikes=recorded[-1], delays=delays)
