"""Loihi-exact forward pass: the network computed as Lava's bit-accurate CUBA arithmetic computes it, in torch, with
straight-through gradients (quantization-aware training).

Per synaptic layer (the plan, scale and decays of :mod:`export.quantize`, recomputed from the current weights on
every call, so that the export of the trained weights is the network that was trained):

- weights ``w = even(s*a*W)`` on the 8-bit grid; a host (direct-input) layer sends ``round(s*a*(W x))``, clipped to
  the signed 16-bit input;
- per neuron and step, in integers (float64 holds them exactly),
  ``u = trunc(u*(4096 - iDecay)/4096) + (a_in << 6)`` (wrapped to 24 bits),
  ``v = clip(trunc(v*(4096 - vDecay)/4096) + u, +-(2**23 - 1))``, spike when ``v > vThMant << 6``, then ``v = 0``;
- the readout is the never-spiking CUBA layer of the export; its voltage in Norse volts is ``v / (s*64)``.

The arithmetic is :mod:`export.loihi_cuba`'s torch side, the same steps as the numpy reference
(:func:`export.loihi_reference.run_reference`) on Norse's time axis (the one-step delays of Lava's synapses
undone). Gradients: rounding and truncation pass straight through; the spike uses Norse's surrogate on the voltage
in Norse volts (``(v - vThMant*64)/(s*64)``), so gradient scales match float training. Constants come from
:data:`hw_models.loihi.LOIHI_FIXED_POINT`.

Importing this module registers the arithmetic ``loihi-fixed-point`` (forward pass and check) with
:data:`neuromorph.models.ARITHMETIC`
(``ModelSpec.arithmetic`` of a spec whose ``fixed_point`` is set); :mod:`neuromorph.models` imports it on first use.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from export.chip_plan import check_exportable, folded_weight, host_current, plan_layers
from export.loihi_cuba import (
    SYNAPTIC_SUMS,
    cuba_fixed_point,
    cuba_fixed_point_counting,
    cuba_fixed_point_fused,
    even_grid,
    round_host_current,
    straight_through,
    volt_units,
)
from export.quantize import layer_decays, layer_scale
from hw_models.loihi import LOIHI_FIXED_POINT, LoihiFixedPoint
from neuromorph.models import register_arithmetic
from neuromorph.neurons import kernels_enabled
from neuromorph.outputs import SNNOutput, reduce_readout
from neuromorph.spec import FIXED_POINT_ARITHMETIC, Pool
from neuromorph.structure import blocks

__all__ = ["cuba_fixed_point", "fixed_point_forward", "grid_weights", "straight_through"]


def _per_step(h: torch.Tensor, apply) -> torch.Tensor:
    """``apply`` on ``h`` ``[T, B, *in]`` with time folded into the batch; computed once when ``h`` is constant over
    time (as the direct encoder makes it), and then returned as ``[1, B, *out]``: the same at every step."""
    steps, batch = h.shape[:2]
    if h.stride(0) == 0:
        return apply(h[0]).unsqueeze(0)
    out = apply(h.reshape(steps * batch, *h.shape[2:]))
    return out.reshape(steps, batch, *out.shape[1:])


def fixed_point_forward(model, x: torch.Tensor, fp: LoihiFixedPoint = LOIHI_FIXED_POINT,
                        idle: list[torch.Tensor] | None = None) -> SNNOutput:
    """The forward pass of a :class:`~neuromorph.models.SpikingNet` whose ``spec.fixed_point`` is set.

    Returns an :class:`~neuromorph.outputs.SNNOutput` (float64): hidden spikes, readout voltage in Norse volts,
    logits. ``idle`` (a list): gets each population's idle steps per compartment, summed over the batch (the
    step-by-step arithmetic runs, the same as the fused one).
    """
    spec = model.spec
    readout_volts = spec.fixed_point.readout_volts
    surrogate = (spec.neuron.surrogate, spec.neuron.alpha)
    h = x[:1].double().expand_as(x) if x.stride(0) == 0 else x.double()  # keep a constant input constant
    spikes = [x] if model.records_input else []
    voltages = None
    quiet: list[torch.Tensor | None] = []  # idle steps [B, ...] per population, where the kernel counted them
    for layer, module in zip(plan_layers(spec), model.blocks, strict=True):
        weight, stride, padding, _ = folded_weight(spec, layer, module)
        scale, v_th_mant = layer_scale(spec, layer, weight.detach().numpy(), readout_volts, fp)
        i_decay, v_decay = layer_decays(layer, fp)
        scaled = scale * (layer.a * weight)  # the same operations, in the same order, as export.quantize
        geometry = replace(layer, stride=stride, padding=padding)
        if layer.on_host:
            bias = None if module.synapse.bias is None else layer.a * module.synapse.bias.double() * scale
            a_in = _per_step(h, lambda flat, g=geometry, w=scaled, c=bias: round_host_current(
                host_current(g, w, c, flat), fp))  # rounded before a constant input is expanded over time
        else:
            quantized = straight_through(scaled, even_grid(scaled.detach(), fp))
            synaptic_sum = SYNAPTIC_SUMS[layer.synapse_kind].torch
            a_in = _per_step(h, lambda flat, q=quantized, g=geometry, s=synaptic_sum: s(g, q, flat, fp))
        neuron = None if layer.readout else surrogate
        every_step = a_in.expand(x.shape[0], *a_in.shape[1:])  # [T, B, ...] (a view of a time-constant input)
        if idle is not None:  # asked for: counted whichever arithmetic runs
            idle.append(torch.zeros(a_in.shape[2:], dtype=torch.float64, device=a_in.device))
            cuba = cuba_fixed_point_fused if kernels_enabled() else cuba_fixed_point  # the same arithmetic
            z, v = cuba(every_step, i_decay, v_decay, v_th_mant, scale, neuron, fp, idle=idle[-1])
        elif kernels_enabled():  # the compiled kernel counts them in its pass, for the energy report
            z, v, counted = cuba_fixed_point_counting(a_in, i_decay, v_decay, v_th_mant, scale, neuron, fp,
                                                      steps=x.shape[0])
            quiet.append(counted)
        else:
            z, v = cuba_fixed_point(every_step, i_decay, v_decay, v_th_mant, scale, neuron, fp)
            quiet.append(None)
        if layer.readout:
            voltages = v / volt_units(scale, fp)
        else:
            spikes.append(z)
            h = z
    return SNNOutput(logits=reduce_readout(voltages, spec.readout.reduce), voltages=voltages, spikes=spikes,
                     idle_steps=quiet if quiet and all(q is not None for q in quiet) else None)


def check_fixed_point(model) -> None:
    """Refuse what has no exact Loihi form (the export's rules: v_leak != v_reset, an on-chip bias, NaN weights)."""
    check_exportable(model.spec, model)


@torch.no_grad()
def fixed_point_idle_steps(model, x: torch.Tensor, out: SNNOutput) -> list[torch.Tensor]:
    """Idle steps of each population in the integer arithmetic: as the compiled kernel counted them in the forward
    pass, else the forward pass again, counting them."""
    if out.idle_steps is not None:
        return [quiet.sum(dim=0) for quiet in out.idle_steps]
    idle: list[torch.Tensor] = []
    fixed_point_forward(model, x, idle=idle)
    return idle


register_arithmetic(FIXED_POINT_ARITHMETIC, fixed_point_forward, check_fixed_point, fixed_point_idle_steps)


def grid_weights(model, fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> list[tuple[np.ndarray, float | None]]:
    """The weights a Loihi-exact model computes with, per block, in the float layout of its spec layers (pooling
    not folded in): ``W_eff = w / u`` with ``w = even(u*W)`` the 8-bit grid mantissas of :func:`fixed_point_forward`
    and ``u = s*a*f`` (``s`` the layer's scale, ``a`` its voltage decay, ``f`` the factor an average pool folded
    into the layer gives each weight, 1 for a sum pool or none). Returns ``(W_eff float32, u)`` per block; a host
    (direct-input) layer keeps its float weights (``u`` None): the host computes its current in float and rounds it.
    """
    spec = model.spec
    readout_volts = spec.fixed_point.readout_volts if spec.fixed_point is not None else None
    out = []
    for layer, module, block in zip(plan_layers(spec), model.blocks, blocks(spec), strict=True):
        weight = module.synapse.weight.detach().double()
        if layer.on_host:
            out.append((weight.float().numpy(), None))
            continue
        with torch.no_grad():
            folded = folded_weight(spec, layer, module)[0]
        scale, _ = layer_scale(spec, layer, folded.numpy(), readout_volts, fp)
        area = math.prod(p.kernel_size**2 for p in block.pre if isinstance(p, Pool) and p.mode == "avg")
        # the same operations as the folding (a conv's kernel is divided, a dense map's columns multiplied)
        per_weight = weight / area if layer.spatial else weight * (1.0 / area)
        grid = even_grid(scale * (layer.a * per_weight), fp)  # the same operations as fixed_point_forward
        units = scale * layer.a / area
        out.append(((grid / units).float().numpy(), float(units)))
    return out
