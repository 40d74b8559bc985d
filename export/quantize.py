"""Loihi fixed-point quantization of a trained network (DESIGN.md section 6).

For each synaptic layer with Norse decays ``a = dt*tau_mem_inv`` and ``b = dt*tau_syn_inv`` (``b = 1`` for
``LIFBoxCell``), Lava's LIF reproduces Norse's when its weights are ``a*W``, ``du = b``, ``dv = a``,
``vth = v_th - v_reset`` and ``bias = a*(v_leak - v_reset)`` (zero: netx cannot set the initial voltage, so
``v_leak == v_reset`` is required). In fixed point, with a per-layer scale ``s`` (mantissa
units per Norse volt) chosen so that the largest weight uses the 8-bit range:

``weight = round(s*a*W)`` on the even grid in ``[-256, 254]``, ``iDecay = round(4096*b)``, ``vDecay = round(4096*a)``,
``vThMant = round(s*(v_th - v_reset))`` (``s`` is lowered slightly so that ``vThMant`` is exact).

The structure, the folding of pooling into weights and the exportability rules are the chip plan's
(:mod:`export.chip_plan`); this module adds the fixed-point precision to it. The readout becomes a
CUBA layer with the largest threshold and a scale low enough that its voltage stays inside the 24-bit state, so
that it never spikes: for any input (``|v| <= max_i sum_j |W_ij| / b`` volts), or, given calibration inputs, for
twice the largest readout voltage seen on them (the report counts readout neurons that reach the threshold).

With direct (analog) input the first synaptic layer is a multiply-accumulate layer: it is computed on the host and its
current ``round(s*a*(W x))`` (signed 16-bit) drives the first neuron layer (netx ``input`` layer); with spike input
the first layer is an ordinary netx layer fed through ``net.inp``. The constants come from
:data:`hw_models.loihi.LOIHI_FIXED_POINT`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import torch

from export.chip_plan import CHIP_RULES, ChipLayer, ChipPlan, check_exportable, folded_weight, host_current, plan_layers
from export.loihi_cuba import even_grid, volt_units
from hw_models.loihi import LOIHI_FIXED_POINT, LoihiFixedPoint
from neuromorph.errors import NeuromorphError
from neuromorph.spec import ModelSpec

__all__ = ["READOUT_HEADROOM", "check_exportable", "even_grid", "input_currents", "layer_decays", "layer_scale",
           "quantize", "readout_bound"]

READOUT_HEADROOM = 2.0  # calibrated readout: the state range holds twice the largest voltage seen


def _decay(name: str, value: float, low: int, high: int, what: str, fp: LoihiFixedPoint) -> int:
    mant = int(round(fp.decay_unit * value))
    if not low <= mant <= high:
        raise NeuromorphError(f"{what} of {value:.6g} per step gives {name} = {mant}, outside [{low}, {high}]: "
                              "out of range for Loihi")
    return mant


def _layer_weights(spec: ModelSpec, block, pre_layers: list, layer, in_shape, index: int):
    """The folded weights of one synaptic ``layer`` given by hand (its pass-through layers, input shape and spec
    index), as numpy: weight, stride, padding and what was folded."""
    with torch.no_grad():
        weight, stride, padding, folded = CHIP_RULES[type(layer)].fold(layer, block, tuple(in_shape),
                                                                       tuple(pre_layers), index)
    return weight.numpy(), stride, padding, folded


def layer_scale(spec: ModelSpec, layer: ChipLayer, weight: np.ndarray, readout_volts: float | None,
                fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> tuple[float, int]:
    """The per-layer scale ``s`` (mantissa units per Norse volt) and threshold mantissa for float ``weight``.

    ``s`` makes the largest ``|a*W|`` use the 8-bit range; a host layer's current must fit the signed 16-bit input
    for any input in range; a hidden layer's threshold must be an exact integer; the readout (threshold at its
    maximum, so that it never spikes) keeps its voltage inside the 24-bit state for ``readout_volts`` (or, when None,
    for the worst case over all inputs).
    """
    scaled = layer.a * weight
    peak = float(np.abs(scaled).max())
    if peak == 0.0:
        raise NeuromorphError(f"synaptic layer {layer.number} has only zero weights: nothing to quantize")
    threshold_max = 2**fp.threshold_bits - 1
    scale = fp.weight_max / peak
    if layer.on_host:  # the host current must fit the signed 16-bit synaptic input for any input in range
        rows = np.abs(scaled).reshape(scaled.shape[0], -1).sum(axis=1).max()
        gain = max(abs(spec.encoder.gain), 1e-12)
        scale = min(scale, (2 ** (fp.synaptic_input_bits - 1) - 1) / (rows * gain))
    if layer.readout:  # never spikes; its voltage must stay inside the 24-bit state
        if readout_volts is None:
            inputs_max = max(abs(spec.encoder.gain), 1.0) if layer.on_host else 1.0
            volts_max = np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1).max() * inputs_max / layer.b
        else:
            volts_max = READOUT_HEADROOM * readout_volts
        state_max = 2 ** (fp.state_bits - 1) - 1
        return float(min(scale, state_max / volt_units(volts_max, fp))), threshold_max
    span = spec.neuron.v_th - spec.neuron.v_reset
    scale = min(scale, threshold_max / span)
    if scale * span >= 1:
        scale = math.floor(scale * span) / span  # an exact integer threshold
    v_th_mant = int(round(scale * span))
    if not 1 <= v_th_mant <= threshold_max:
        raise NeuromorphError(f"threshold mantissa {v_th_mant} is outside [1, {threshold_max}]")
    return float(scale), v_th_mant


def layer_decays(layer: ChipLayer, fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> tuple[int, int]:
    """``iDecay = round(4096*b)`` and ``vDecay = round(4096*a)``, checked against Loihi's ranges."""
    i_decay = _decay("iDecay", layer.b, fp.current_decay_offset, fp.decay_unit, "the current decay b", fp)
    v_decay = _decay("vDecay", layer.a, 0, fp.decay_unit - 1, "the voltage decay a", fp)
    return i_decay, v_decay


def readout_bound(model, calibration: torch.Tensor | None) -> float | None:
    """The readout voltage bound (Norse volts) the readout's scale is set for: the one a Loihi-exact model was
    trained with, else the largest readout voltage the float model reaches on ``calibration``, else None."""
    if model.spec.fixed_point is not None:
        return model.spec.fixed_point.readout_volts
    if calibration is None:
        return None
    with torch.no_grad():
        return float(model(calibration).voltages.abs().max()) or None


def quantize(model, calibration: torch.Tensor | None = None, fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> ChipPlan:
    """Quantize a :class:`~neuromorph.models.SpikingNet` to Loihi fixed point (see the module docstring).

    ``calibration`` (encoded inputs ``[T, B, ...]``) sets the readout's scale from the largest readout voltage the
    float model reaches on them, with :data:`READOUT_HEADROOM`; without it the scale follows the worst case over all
    inputs, which is safe but can leave the readout weights only a few levels. A model trained Loihi-exact
    (``spec.fixed_point`` set) uses the readout bound it was trained with, so that the export is what was trained.
    BatchNorm is folded into the synapses first (its bias is then refused on chip layers, as any bias is).
    """
    from neuromorph.models import fold_batch_norm

    model = fold_batch_norm(model)
    spec: ModelSpec = model.spec
    check_exportable(spec, model)
    readout_volts = readout_bound(model, calibration)
    layers = []
    for plan, module in zip(plan_layers(spec), model.blocks, strict=True):
        with torch.no_grad():
            weight_t, stride, padding, folded = folded_weight(spec, plan, module)
        weight = weight_t.numpy()
        scaled = plan.a * weight
        peak = float(np.abs(scaled).max())
        scale, v_th_mant = layer_scale(spec, plan, weight, readout_volts, fp)
        i_decay, v_decay = layer_decays(plan, fp)
        host_bias = None
        if module.synapse.bias is not None:  # only the host layer may have one (checked above): part of its input
            host_bias = plan.a * module.synapse.bias.detach().double().numpy() * scale
        if plan.on_host:
            quantized = scale * scaled
            err_rms = err_max = 0.0
            folded = (folded + "; " if folded else "") + "on host, current rounded to 1/scale V"
        else:
            quantized = even_grid(scale * scaled, fp).astype(np.int64)
            error = np.abs(quantized / scale - scaled)
            err_rms, err_max = float(np.sqrt(np.mean(error**2))), float(error.max())
        layers.append(replace(
            plan, precision="fixed", weight=quantized, scale=scale, i_decay=i_decay, v_decay=v_decay,
            v_th_mant=v_th_mant, stride=stride, padding=padding, folded=folded, weight_error_rms=err_rms,
            weight_error_max=err_max, weight_float_max=peak, host_bias=host_bias,
        ))
    return ChipPlan(spec=spec, layers=tuple(layers), precision="fixed", constants=fp)


def input_currents(qnet: ChipPlan, x: torch.Tensor) -> np.ndarray:
    """Integer currents ``[T, B, *out_shape]`` that the host sends into the first neurons (direct input only)."""
    first = qnet.layers[0]
    if not first.on_host:
        raise ValueError("the network takes spikes, not host currents")
    inp = x.detach().double()
    steps, batch = inp.shape[:2]
    bias = None if first.host_bias is None else torch.from_numpy(first.host_bias)
    current = host_current(first, torch.from_numpy(first.weight), bias, inp.reshape(steps * batch, *inp.shape[2:]))
    limit = 2 ** (qnet.constants.synaptic_input_bits - 1)
    out = np.clip(np.round(current.numpy()), -limit, limit - 1).astype(np.int64)
    return out.reshape(steps, batch, *out.shape[1:])
