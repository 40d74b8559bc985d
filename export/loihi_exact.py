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

This is :func:`export.loihi_reference.run_reference` on Norse's time axis (the one-step delays of Lava's synapses
undone). Gradients: rounding and truncation pass straight through; the spike uses Norse's surrogate on the voltage
in Norse volts (``(v - vThMant*64)/(s*64)``), so gradient scales match float training. Constants come from
:data:`hw_models.loihi.LOIHI_FIXED_POINT`.
"""

from __future__ import annotations

import torch
from torch import nn

from export.quantize import LayerPlan, even_grid, folded_weight, layer_decays, layer_plans, layer_scale
from hw_models.loihi import LOIHI_FIXED_POINT, LoihiFixedPoint
from neuromorph.spec import Conv


def straight_through(x: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, the identity's gradient in the backward pass."""
    return x + (value - x).detach()


def _trunc_decay(x: torch.Tensor, decay: int, fp: LoihiFixedPoint) -> torch.Tensor:
    """``x * (1 - decay/4096)`` truncated toward zero, as Lava does (exact for 24-bit integers in float64)."""
    product = x * ((fp.decay_unit - decay) / fp.decay_unit)  # a power-of-two division: exact
    return straight_through(product, torch.trunc(product))


def _wrap(current: torch.Tensor, fp: LoihiFixedPoint) -> torch.Tensor:
    limit = 2 ** (fp.state_bits - 1)
    wrapped = torch.where(current > limit, current - 2 * limit, current)
    return torch.where(wrapped <= -limit, current + 2 * limit, wrapped)


def cuba_fixed_point(a_in: torch.Tensor, i_decay: int, v_decay: int, v_th_mant: int, scale: float,
                     surrogate: tuple[str, float] | None, fp: LoihiFixedPoint = LOIHI_FIXED_POINT
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run Lava's fixed-point CUBA LIF over integer inputs ``a_in`` ``[T, B, ...]``; returns spikes and voltages
    (Lava's units, ``[T, B, ...]``). ``surrogate`` ``(method, alpha)`` gives spikes a Norse surrogate gradient;
    None (the readout) makes them plain comparisons."""
    from norse.torch.functional.threshold import threshold

    limit = 2 ** (fp.state_bits - 1)
    threshold_int = float(v_th_mant << fp.threshold_shift)
    volts = scale * 2**fp.threshold_shift
    u = torch.zeros_like(a_in[0])
    v = torch.zeros_like(a_in[0])
    spikes, voltages = [], []
    for step in range(a_in.shape[0]):
        u = _trunc_decay(u, i_decay, fp) + a_in[step] * 2**fp.input_shift
        u = straight_through(u, _wrap(u.detach(), fp))
        v = _trunc_decay(v, v_decay, fp) + u
        v = straight_through(v, v.detach().clamp(-limit + 1, limit - 1))
        if surrogate is None:
            z = (v > threshold_int).to(v.dtype)
        else:
            z = threshold((v - threshold_int) / volts, surrogate[0], surrogate[1])
        v = (1 - z) * v
        spikes.append(z)
        voltages.append(v)
    return torch.stack(spikes), torch.stack(voltages)


def _synaptic_input(plan: LayerPlan, weight: torch.Tensor, h: torch.Tensor, stride: int, padding: int,
                    fp: LoihiFixedPoint) -> torch.Tensor:
    """``weight`` applied to ``h`` ``[T, B, *in_shape]`` (time folded into the batch; computed once when ``h`` is
    constant over time, as the direct encoder makes it)."""
    steps, batch = h.shape[:2]
    constant = h.stride(0) == 0
    flat = h[0] if constant else h.reshape(steps * batch, *h.shape[2:])
    if isinstance(plan.layer, Conv):
        out = nn.functional.conv2d(flat, weight, stride=stride, padding=padding)
        if not plan.first_on_host:  # Lava's fixed-point Conv wraps its sum to signed 24 bits
            base = 2**fp.conv_accumulator_bits
            out = straight_through(out, torch.remainder(out.detach() + base // 2, base) - base // 2)
    else:
        out = nn.functional.linear(flat.reshape(flat.shape[0], -1), weight)
    if constant:
        return out.unsqueeze(0).expand(steps, *out.shape)
    return out.reshape(steps, batch, *out.shape[1:])


def fixed_point_forward(model, x: torch.Tensor):
    """The forward pass of a :class:`~neuromorph.models.SpikingNet` whose ``spec.fixed_point`` is set.

    Returns an :class:`~neuromorph.models.SNNOutput` (float64): hidden spikes, readout voltage in Norse volts, logits.
    """
    from neuromorph.models import SNNOutput, reduce_readout

    spec, fp = model.spec, LOIHI_FIXED_POINT
    readout_volts = spec.fixed_point.readout_volts
    surrogate = (spec.neuron.surrogate, spec.neuron.alpha)
    h = x[:1].double().expand_as(x) if x.stride(0) == 0 else x.double()  # keep a constant input constant
    spikes = [x] if model.records_input else []
    voltages = None
    for plan, block in zip(layer_plans(spec), model.blocks, strict=True):
        weight, stride, padding, _ = folded_weight(plan, block)
        scale, v_th_mant = layer_scale(spec, plan, weight.detach().numpy(), readout_volts, fp)
        i_decay, v_decay = layer_decays(plan, fp)
        scaled = scale * (plan.a * weight)  # the same operations, in the same order, as export.quantize
        if plan.first_on_host:
            current = _synaptic_input(plan, scaled, h, stride, padding, fp)
            if block.synapse.bias is not None:
                bias = plan.a * block.synapse.bias.double() * scale
                current = current + (bias if current.dim() == 3 else bias[:, None, None])
            limit = 2 ** (fp.synaptic_input_bits - 1)
            a_in = straight_through(current, current.detach().round().clamp(-limit, limit - 1))
        else:
            quantized = straight_through(scaled, even_grid(scaled.detach(), fp))
            a_in = _synaptic_input(plan, quantized, h, stride, padding, fp)
        z, v = cuba_fixed_point(a_in, i_decay, v_decay, v_th_mant, scale, None if plan.readout else surrogate, fp)
        if plan.readout:
            voltages = v / (scale * 2**fp.threshold_shift)
        else:
            spikes.append(z)
            h = z
    return SNNOutput(logits=reduce_readout(voltages, spec.readout.reduce), voltages=voltages, spikes=spikes)
