"""Lava's bit-accurate CUBA LIF and its synapses, twice, side by side: in numpy (the exact reference of what
lava-nc 0.10.0 and lava-dl 0.6.0 compute) and in torch with straight-through gradients (Loihi-exact training).

Per neuron and step (``PyLifModelBitAcc``, ``lava/proc/lif/models.py``), all integers:

``u = sign(u*(4096 - iDecay)) * (|u*(4096 - iDecay)| >> 12) + (a_in << 6)``, wrapped into 24 bits as Lava wraps it;
``v = clip(sign(v*(4096 - vDecay)) * (|v*(4096 - vDecay)| >> 12) + u + (bias_mant << 6), -(2**23 - 1), 2**23 - 1)``;
``s = v > (vThMant << 6)``; ``v[s] = 0``. (netx sets ``du = iDecay - 1``; Lava decays the current by ``du + 1``.)

Synapses (``PyDenseModelBitAcc``, ``PyConvModelFixed``): the integer weighted sum of binary spikes; Lava's
fixed-point Conv wraps its sum to signed 24 bits. As Lava's ``proc/lif/models.py`` keeps the float and bit-accurate
models of one process together, both implementations live here and read their bit widths from one place,
:data:`hw_models.loihi.LOIHI_FIXED_POINT`. The torch side computes in float64, which holds these integers exactly;
its rounding and truncation pass gradients straight through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hw_models.loihi import LOIHI_FIXED_POINT, LoihiFixedPoint
from neuromorph.neurons import compiled_for, neuron_contiguous


def volt_units(scale: float, fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> float:
    """Lava's voltage units per Norse volt for a layer of scale ``scale`` (mantissa units per volt): the voltage
    state holds ``v << threshold_shift``, so a mantissa ``v`` is ``v / (scale * 2**threshold_shift)`` volts."""
    return scale * 2**fp.threshold_shift


# ---- numpy: the bit-exact reference ------------------------------------------------------------------------------


@dataclass
class CubaState:
    """Current ``u`` and voltage ``v`` of a population, integers in Lava's scaled units."""

    u: np.ndarray
    v: np.ndarray


def decay_np(x: np.ndarray, decay: int, fp: LoihiFixedPoint) -> np.ndarray:
    """``x * (1 - decay/4096)``, truncated toward zero as Lava does."""
    product = x.astype(np.int64) * (fp.decay_unit - decay)
    return np.sign(product) * (np.abs(product) >> fp.decay_bits)


def cuba_lif_step(state: CubaState, a_in: np.ndarray, i_decay: int, v_decay: int, v_th_mant: int,
                  bias_mant: np.ndarray | int, fp: LoihiFixedPoint) -> tuple[np.ndarray, CubaState]:
    """One bit-accurate step of Lava's LIF; returns the spikes and the new state."""
    limit = 2 ** (fp.state_bits - 1)
    current = decay_np(state.u, i_decay, fp) + (a_in.astype(np.int64) << fp.input_shift)
    wrapped = np.where(current > limit, current - 2 * limit, current)
    wrapped = np.where(wrapped <= -limit, current + 2 * limit, wrapped)  # as Lava writes it
    bias = np.left_shift(np.asarray(bias_mant, dtype=np.int64), fp.bias_exp)
    voltage = np.clip(decay_np(state.v, v_decay, fp) + wrapped + bias, -limit + 1, limit - 1)
    spikes = voltage > (np.int64(v_th_mant) << fp.threshold_shift)
    return spikes, CubaState(u=wrapped, v=np.where(spikes, 0, voltage))


def wrap_conv_np(total: np.ndarray, fp: LoihiFixedPoint) -> np.ndarray:
    """Lava's ``signed_clamp`` of a conv sum: wraps to signed ``conv_accumulator_bits`` bits."""
    base = 1 << fp.conv_accumulator_bits
    return (total + base // 2) % base - base // 2


def _dense_sum_np(layer, spikes: np.ndarray, fp: LoihiFixedPoint) -> np.ndarray:
    return spikes.reshape(spikes.shape[0], -1).astype(np.int64) @ layer.weight.T.astype(np.int64)


def _conv_sum_np(layer, spikes: np.ndarray, fp: LoihiFixedPoint) -> np.ndarray:
    summed = torch.nn.functional.conv2d(torch.from_numpy(spikes.astype(np.float64)),
                                        torch.from_numpy(layer.weight.astype(np.float64)),
                                        stride=layer.stride, padding=layer.padding, groups=layer.groups)
    return wrap_conv_np(np.round(summed.numpy()).astype(np.int64), fp)


# ---- torch: the same arithmetic with straight-through gradients ---------------------------------------------------

def straight_through(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, the identity's gradient in the backward pass."""
    return x + (value - x).detach()


def even_grid(x, fp: LoihiFixedPoint = LOIHI_FIXED_POINT):
    """Round to the 8-bit weight grid: even integers in ``[-256, 254]`` (numpy or torch, no gradient)."""
    lib = torch if isinstance(x, torch.Tensor) else np
    return lib.clip(lib.round(x / fp.weight_step) * fp.weight_step, fp.weight_min, fp.weight_max)


def _trunc_decay(x: torch.Tensor, decay: int, fp: LoihiFixedPoint) -> torch.Tensor:
    """``x * (1 - decay/4096)`` truncated toward zero, as Lava does (exact for 24-bit integers in float64)."""
    product = x * ((fp.decay_unit - decay) / fp.decay_unit)  # a power-of-two division: exact
    return straight_through(product, torch.trunc(product))


def _wrap(current: torch.Tensor, fp: LoihiFixedPoint) -> torch.Tensor:
    limit = 2 ** (fp.state_bits - 1)
    wrapped = torch.where(current > limit, current - 2 * limit, current)
    return torch.where(wrapped <= -limit, current + 2 * limit, wrapped)


def cuba_fixed_point(a_in: torch.Tensor, i_decay: int, v_decay: int, v_th_mant: int, scale: float,
                     surrogate: tuple[str, float] | None, fp: LoihiFixedPoint = LOIHI_FIXED_POINT,
                     idle: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run Lava's fixed-point CUBA LIF over integer inputs ``a_in`` ``[T, B, ...]``; returns spikes and voltages
    (Lava's units, ``[T, B, ...]``). ``surrogate`` ``(method, alpha)`` gives spikes a Norse surrogate gradient on the
    voltage in Norse volts; None (the readout) makes them plain comparisons. Step by step it is
    :func:`cuba_lif_step` (with zero bias). ``idle`` (``[...]``, without T and B): adds, per compartment, the steps
    with no input (``a_in == 0``) whose state ``(u, v)`` the step left unchanged (hw_models.activity)."""
    from norse.torch.functional.threshold import threshold

    limit = 2 ** (fp.state_bits - 1)
    threshold_int = float(v_th_mant << fp.threshold_shift)
    volts = volt_units(scale, fp)
    u = torch.zeros_like(a_in[0])
    v = torch.zeros_like(a_in[0])
    spikes, voltages = [], []
    for step in range(a_in.shape[0]):
        u_before, v_before = u, v
        u = _trunc_decay(u, i_decay, fp) + a_in[step] * 2**fp.input_shift
        u = straight_through(u, _wrap(u.detach(), fp))
        v = _trunc_decay(v, v_decay, fp) + u
        v = straight_through(v, v.detach().clamp(-limit + 1, limit - 1))
        if surrogate is None:
            z = (v > threshold_int).to(v.dtype)
        else:
            z = threshold((v - threshold_int) / volts, surrogate[0], surrogate[1])
        v = (1 - z) * v
        if idle is not None:
            idle += ((a_in[step] == 0) & (u == u_before) & (v == v_before)).sum(dim=0)
        spikes.append(z)
        voltages.append(v)
    return torch.stack(spikes), torch.stack(voltages)


class _CubaFixedPoint(torch.autograd.Function):
    """:func:`cuba_fixed_point` for the ``super`` surrogate (or none) in one autograd function: the forward is the
    same integer arithmetic (exact in float64, so the same values in any order), the backward the straight-through
    gradients by hand, in reverse time, with ``k_u = 1 - iDecay/4096``, ``k_v = 1 - vDecay/4096``::

        N  = gv + k_v*Dv_next                      (gv: gradient of the voltage output)
        Dv = N*(1 - z) + (gz - N*v)*s/volts         (spiking; s = 1/(|v - th|/volts + 1)**2; readout: N*(1 - z))
        Du = Dv + k_u*Du_next;  g_in = 2**input_shift * Du
    """

    @staticmethod
    def forward(ctx, a_in, i_decay, v_decay, v_th_mant, scale, spiking, fp, steps):
        limit = 2 ** (fp.state_bits - 1)
        threshold_int = float(v_th_mant << fp.threshold_shift)
        k_u, k_v = (fp.decay_unit - i_decay) / fp.decay_unit, (fp.decay_unit - v_decay) / fp.decay_unit
        ctx.settings = (k_u, k_v, threshold_int, volt_units(scale, fp), spiking, float(2**fp.input_shift))
        ctx.compiled = compiled = _compiled_cuba(a_in)
        ctx.shape = a_in.shape  # [1, ...] for an input the same at every step: its gradient summed over them
        a_in = a_in.expand(steps, *a_in.shape[1:])
        if compiled is not None:  # the same operations in C++ (neuromorph/csrc/neurons.cpp): the same values
            flat = neuron_contiguous(a_in.reshape(a_in.shape[0], -1))
            pre, spikes, voltages, idle = compiled.cuba_forward(flat, k_u, k_v, threshold_int,
                                                                float(2**fp.input_shift), float(limit), not spiking,
                                                                not torch.is_grad_enabled())
            ctx.save_for_backward(pre)
            ctx.set_materialize_grads(False)
            if spiking:  # a hidden layer passes on its spikes only: no voltages written, a zero stand-in returned
                voltages = pre.new_zeros(()).expand(a_in.shape)
                ctx.mark_non_differentiable(voltages)
            idle = idle.view(a_in.shape[1:]) if idle.numel() else idle  # empty: not counted (a training step)
            ctx.mark_non_differentiable(idle)
            return spikes.view(a_in.shape), voltages.view(a_in.shape), idle
        u = torch.zeros_like(a_in[0])
        v = torch.zeros_like(a_in[0])
        pre = torch.empty_like(a_in, memory_format=torch.contiguous_format)  # voltage before the reset
        spikes = torch.empty_like(pre)
        voltages = torch.empty_like(pre)
        for t in range(a_in.shape[0]):
            u = _wrap(torch.trunc(u * k_u) + a_in[t] * 2**fp.input_shift, fp)
            v = (torch.trunc(v * k_v) + u).clamp_(-limit + 1, limit - 1)
            pre[t] = v
            z = spikes[t]
            torch.gt(v, threshold_int, out=z)  # = H((v - th)/volts): v and th are integers, volts > 0
            v = torch.mul(1 - z, v, out=voltages[t])
        ctx.save_for_backward(pre, spikes)
        idle = a_in.new_empty(0)  # not counted on this path (cuba_fixed_point counts them)
        ctx.mark_non_differentiable(idle)
        return spikes, voltages, idle

    @staticmethod
    def backward(ctx, grad_spikes, grad_voltages, _grad_idle=None):
        k_u, k_v, threshold_int, volts, spiking, gain = ctx.settings
        if ctx.compiled is not None:
            (pre,) = ctx.saved_tensors
            steps = pre.shape[0]
            g_spikes = (torch.zeros_like(pre) if grad_spikes is None
                        else grad_spikes.reshape(steps, -1).contiguous())
            g_volts = None if grad_voltages is None or spiking else grad_voltages.reshape(steps, -1).contiguous()
            grad = ctx.compiled.cuba_backward(g_spikes, g_volts, pre, k_u, k_v, threshold_int, volts, gain, spiking,
                                              ctx.shape[0] == 1)
            return grad.view(ctx.shape), None, None, None, None, None, None, None
        pre, spikes = ctx.saved_tensors
        grad_in = torch.empty_like(pre)
        d_v = torch.zeros_like(pre[0])
        d_u = torch.zeros_like(pre[0])
        for t in range(pre.shape[0] - 1, -1, -1):  # autograd hands in zeros for an output that was not used
            n = grad_voltages[t] + k_v * d_v
            d_v = n * (1 - spikes[t])
            if spiking:
                s = 1.0 / ((pre[t] - threshold_int).abs() / volts + 1.0) ** 2
                d_v = d_v + (grad_spikes[t] - n * pre[t]) * s / volts
            d_u = d_v + k_u * d_u
            grad_in[t] = gain * d_u
        if ctx.shape[0] == 1:
            grad_in = grad_in.sum(dim=0, keepdim=True)
        return grad_in, None, None, None, None, None, None, None


def _compiled_cuba(a_in: torch.Tensor):
    """The compiled CUBA kernel for a float64 input, or None (the torch loop above runs)."""
    return compiled_for(a_in) if a_in.dtype == torch.float64 else None  # C++ only: Triton kernels are float32


def cuba_fixed_point_fused(a_in: torch.Tensor, i_decay: int, v_decay: int, v_th_mant: int, scale: float,
                           surrogate: tuple[str, float] | None, fp: LoihiFixedPoint = LOIHI_FIXED_POINT,
                           idle: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`cuba_fixed_point` in one autograd function where the surrogate is Norse's ``super`` (or none: the
    readout); the step-by-step version otherwise. ``idle`` as there: the compiled kernel counts the same steps in
    its pass (no input and ``(u, v)`` unchanged); without it the step-by-step version counts them."""
    spikes, voltages, counted = cuba_fixed_point_counting(a_in, i_decay, v_decay, v_th_mant, scale, surrogate, fp)
    if idle is not None:
        if counted is None:
            return cuba_fixed_point(a_in, i_decay, v_decay, v_th_mant, scale, surrogate, fp, idle=idle)
        idle += counted.sum(dim=0)
    return spikes, voltages


def cuba_fixed_point_counting(a_in: torch.Tensor, i_decay: int, v_decay: int, v_th_mant: int, scale: float,
                              surrogate: tuple[str, float] | None, fp: LoihiFixedPoint = LOIHI_FIXED_POINT,
                              steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`cuba_fixed_point_fused`, and each compartment's idle steps ``[B, ...]`` where the compiled kernel
    counted them in its pass (None otherwise: nothing is run twice to count them). ``steps``: ``a_in`` is
    ``[1, B, ...]``, the same input at each of ``steps`` steps (its gradient summed over them in the kernel)."""
    steps = a_in.shape[0] if steps is None else steps
    if surrogate is not None and surrogate[0] != "super":
        return (*cuba_fixed_point(a_in.expand(steps, *a_in.shape[1:]), i_decay, v_decay, v_th_mant, scale, surrogate,
                                  fp), None)
    spikes, voltages, counted = _CubaFixedPoint.apply(a_in, i_decay, v_decay, v_th_mant, scale, surrogate is not None,
                                                      fp, steps)
    return spikes, voltages, None if counted.numel() == 0 else counted


FLOAT32_EXACT = 2**24  # float32 holds every integer up to this: a sum bounded by it is exact in any order


def _compute_dtype(weight: torch.Tensor, input_bound: float) -> torch.dtype:
    """float32 where every partial sum of the integer weighted sum is an integer below 2**24 (so float32 computes it
    exactly, several times faster than float64, which has no fast convolution on a CPU): each output's sum of
    ``|w|`` times the largest input. Else float64."""
    largest = float(weight.detach().abs().flatten(start_dim=1).sum(dim=1).max()) * input_bound
    return torch.float32 if largest < FLOAT32_EXACT else torch.float64


def _dense_sum_torch(layer, weight: torch.Tensor, flat: torch.Tensor, fp: LoihiFixedPoint) -> torch.Tensor:
    dtype = _compute_dtype(weight, 1.0)  # binary spikes in
    out = nn.functional.linear(flat.reshape(flat.shape[0], -1).to(dtype), weight.to(dtype))
    return out.to(torch.float64)


def _conv_sum_torch(layer, weight: torch.Tensor, flat: torch.Tensor, fp: LoihiFixedPoint) -> torch.Tensor:
    k = getattr(layer, "pool_before", 1)
    dtype = _compute_dtype(weight[:, :, ::k, ::k], float(k * k))  # inputs: spikes, or k x k sums of them
    flat, weight = flat.to(dtype), weight.to(dtype)
    if k > 1:  # a pool folded into the kernel repeats each tap k x k times: the same integer sum, k*k times cheaper,
        flat = nn.functional.avg_pool2d(flat, k, divisor_override=1)  # is the small kernel on the sum-pooled map
        out = nn.functional.conv2d(flat, weight[:, :, ::k, ::k], stride=layer.stride // k,
                                   padding=layer.padding // k)
    else:
        out = nn.functional.conv2d(flat, weight, stride=layer.stride, padding=layer.padding)
    out = out.to(torch.float64)
    base = 2**fp.conv_accumulator_bits  # Lava's fixed-point Conv wraps its sum to signed 24 bits
    return straight_through(out, torch.remainder(out.detach() + base // 2, base) - base // 2)


@dataclass(frozen=True)
class SynapticSum:
    """One on-chip synapse kind in both implementations: ``numpy(layer, spikes [B, *in], fp)`` and
    ``torch(layer, weight, spikes [N, *in], fp)``, each the integer weighted sum ``[B, *out]``."""

    numpy: Callable[..., np.ndarray]
    torch: Callable[..., torch.Tensor]


# chip synapse kind (export.chip_plan.SYNAPSE_KINDS) -> its weighted sum
SYNAPTIC_SUMS: dict[str, SynapticSum] = {
    "dense": SynapticSum(numpy=_dense_sum_np, torch=_dense_sum_torch),
    "conv": SynapticSum(numpy=_conv_sum_np, torch=_conv_sum_torch),
}


def synaptic_input(layer, spikes: np.ndarray, fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> np.ndarray:
    """Integer weighted sum of a batch of spikes ``[B, *in_shape]`` (torch order) -> ``[B, *out_shape]``."""
    return SYNAPTIC_SUMS[layer.synapse_kind].numpy(layer, spikes, fp)


def round_host_current(current: torch.Tensor, fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> torch.Tensor:
    """A host current rounded to the integers the chip's signed 16-bit synaptic input takes (straight-through)."""
    limit = 2 ** (fp.synaptic_input_bits - 1)
    return straight_through(current, current.detach().round().clamp(-limit, limit - 1))
