"""Loihi fixed-point quantization of a trained network (DESIGN.md section 6).

For each synaptic layer with Norse decays ``a = dt*tau_mem_inv`` and ``b = dt*tau_syn_inv`` (``b = 1`` for
``LIFBoxCell``), Lava's LIF reproduces Norse's when its weights are ``a*W``, ``du = b``, ``dv = a``,
``vth = v_th - v_reset`` and ``bias = a*(v_leak - v_reset)`` (zero: netx cannot set the initial voltage, so
``v_leak == v_reset`` is required). In fixed point, with a per-layer scale ``s`` (mantissa
units per Norse volt) chosen so that the largest weight uses the 8-bit range:

``weight = round(s*a*W)`` on the even grid in ``[-256, 254]``, ``iDecay = round(4096*b)``, ``vDecay = round(4096*a)``,
``vThMant = round(s*(v_th - v_reset))`` (``s`` is lowered slightly so that ``vThMant`` is exact).

Pooling between spikes and the next synaptic layer is folded into that layer's weights: into a Dense layer exactly,
whatever sits between (the dense map of ``pool -> flatten -> linear`` is computed column by column); into a Conv
layer as a conv with a ``k``-times larger kernel and stride when the pooled map divides evenly. The readout becomes a
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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from hw_models.loihi import LOIHI_FIXED_POINT, LoihiFixedPoint
from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, Flatten, ModelSpec, Pool


@dataclass(frozen=True)
class QuantizedLayer:
    """One netx layer: synapses (or a host-computed input current) and a CUBA neuron population.

    ``kind``: ``dense``, ``conv`` (on chip) or ``input`` (the first synaptic layer computed on the host: ``weight``
    then holds the float map ``s*a*W`` that gives the integer input current). Shapes are torch order (``[C, H, W]``
    or ``[N]``). ``scale`` is ``s`` in mantissa units per Norse volt.
    """

    kind: str
    name: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    weight: np.ndarray
    scale: float
    i_decay: int
    v_decay: int
    v_th_mant: int
    stride: int = 1
    padding: int = 0
    flatten_before: bool = False
    readout: bool = False
    folded: str = ""
    weight_error_rms: float = 0.0  # RMS of |weight/s - a*W| over synapses, Norse volts
    weight_error_max: float = 0.0  # largest |weight/s - a*W|, Norse volts
    weight_float_max: float = 0.0  # largest |a*W|, Norse volts
    host_bias: np.ndarray | None = None  # input kind: float s*a*bias added to the host current
    groups: int = 1  # conv groups (independent copies side by side, see export.lava_sim.replicate)


@dataclass(frozen=True)
class QuantizedNet:
    """A network in Loihi fixed point, ready for the netx writer and the numpy reference."""

    spec: ModelSpec
    layers: tuple[QuantizedLayer, ...]
    input_kind: str  # "spikes" (net.inp takes binary spikes) or "current" (host current into the first neurons)
    constants: LoihiFixedPoint = field(default=LOIHI_FIXED_POINT)

    @property
    def delays(self) -> list[int]:
        """Lava steps by which each layer's output lags Norse: one per on-chip synaptic layer up to it."""
        out, delay = [], 0
        for layer in self.layers:
            delay += layer.kind != "input"
            out.append(delay)
        return out

    def layer_table(self) -> list[dict[str, Any]]:
        return [{
            "layer": q.name, "kind": q.kind, "folded": q.folded, "scale": q.scale, "iDecay": q.i_decay,
            "vDecay": q.v_decay, "vThMant": q.v_th_mant, "weight_max_float": q.weight_float_max,
            "weight_error_rms": q.weight_error_rms, "weight_error_max": q.weight_error_max,
            "weight_int_max": int(np.abs(q.weight).max()) if q.kind != "input" else None,
        } for q in self.layers]


def _decay(name: str, value: float, low: int, high: int, what: str, fp: LoihiFixedPoint) -> int:
    mant = int(round(fp.decay_unit * value))
    if not low <= mant <= high:
        raise NeuromorphError(f"{what} of {value:.6g} per step gives {name} = {mant}, outside [{low}, {high}]: "
                              "out of range for Loihi")
    return mant


def _fold_into_dense(pre: nn.Module, synapse: nn.Linear, in_shape: tuple[int, ...]) -> torch.Tensor:
    """The dense matrix of ``synapse(pre(x))`` for ``x`` of ``in_shape`` (exact: both are linear; differentiable)."""
    size = math.prod(in_shape)
    basis = torch.eye(size, dtype=torch.float64).reshape(size, *in_shape)
    columns = nn.functional.linear(pre(basis), synapse.weight.double())  # pool and flatten have no weights
    return columns.T


def _fold_pool_into_conv(pool: Pool, conv: Conv, weight: torch.Tensor, in_shape: tuple[int, ...], index: int):
    channels, height, width = in_shape
    k = pool.kernel_size
    if height % k or width % k:
        raise NeuromorphError(f"layer {index}: pooling {k} over a {height}x{width} map crops a border, which cannot be "
                              "folded into the next convolution for netx; use maps that the window divides")
    big = weight.double().repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)
    if pool.mode == "avg":
        big = big / (k * k)
    return big, conv.stride * k, conv.padding * k


@dataclass(frozen=True)
class LayerPlan:
    """What the chip does with one synaptic layer, from the model description alone (no weights).

    ``a``, ``b``: Norse's per-step voltage and current decays of the layer's neurons; ``pre``: the pass-through
    layers (pool, flatten) folded into its weights; ``in_shape``: the shape of the spike source (or input) it reads.
    """

    number: int
    index: int
    layer: Any
    pre: tuple
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    a: float
    b: float
    readout: bool
    first_on_host: bool
    flatten_before: bool

    @property
    def name(self) -> str:
        return f"{'readout' if self.readout else 'layer'}{self.index}"


def layer_plans(spec: ModelSpec) -> list[LayerPlan]:
    """One :class:`LayerPlan` per synaptic layer, in order."""
    shapes = [spec.input_shape, *spec.layer_shapes()]
    synaptic = [i for i, layer in enumerate(spec.layers) if isinstance(layer, Dense | Conv)]
    plans, start = [], 0
    for number, index in enumerate(synaptic):
        pre = tuple(spec.layers[start:index])
        in_shape = tuple(shapes[start])
        start = index + 1
        readout = number == len(synaptic) - 1
        if readout:
            a, b = spec.dt_s * spec.readout.tau_mem_inv, spec.dt_s * spec.readout.tau_syn_inv
        else:
            a = spec.dt_s * spec.neuron.tau_mem_inv
            b = 1.0 if spec.neuron.cell == "lifbox" else spec.dt_s * spec.neuron.tau_syn_inv
        plans.append(LayerPlan(
            number=number, index=index, layer=spec.layers[index], pre=pre, in_shape=in_shape,
            out_shape=tuple(shapes[index + 1]), a=a, b=b, readout=readout,
            first_on_host=number == 0 and spec.encoder.kind == "direct",
            flatten_before=number > 0 and any(isinstance(p, Flatten) for p in pre) and len(in_shape) == 3,
        ))
    return plans


def folded_weight(plan: LayerPlan, block) -> tuple[torch.Tensor, int, int, str]:
    """Float64 weights of one synaptic layer with the pass-through layers before it folded in (differentiable in the
    block's weights), its stride and padding, and a note on what was folded."""
    layer, pools = plan.layer, [p for p in plan.pre if isinstance(p, Pool)]
    if isinstance(layer, Dense):
        if pools:
            return (_fold_into_dense(block.pre, block.synapse, plan.in_shape), 1, 0,
                    f"{len(pools)} pool(s) into dense")
        return block.synapse.weight.double(), 1, 0, ""
    if not pools:
        return block.synapse.weight.double(), layer.stride, layer.padding, ""
    if len(plan.pre) != 1:
        raise NeuromorphError(f"layer {plan.index}: only one pooling layer directly before a convolution can be "
                              "folded into it for netx")
    weight, stride, padding = _fold_pool_into_conv(pools[0], layer, block.synapse.weight, plan.in_shape, plan.index)
    return weight, stride, padding, f"{pools[0].mode} pool {pools[0].kernel_size} into conv"


def _layer_weights(spec: ModelSpec, block, pre_layers: list, layer, in_shape, index: int):
    """:func:`folded_weight` as numpy, for one layer given by hand."""
    plan = LayerPlan(number=0, index=index, layer=layer, pre=tuple(pre_layers), in_shape=tuple(in_shape),
                     out_shape=(), a=1.0, b=1.0, readout=False, first_on_host=False, flatten_before=False)
    with torch.no_grad():
        weight, stride, padding, folded = folded_weight(plan, block)
    return weight.numpy(), stride, padding, folded


def layer_scale(spec: ModelSpec, plan: LayerPlan, weight: np.ndarray, readout_volts: float | None,
                fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> tuple[float, int]:
    """The per-layer scale ``s`` (mantissa units per Norse volt) and threshold mantissa for float ``weight``.

    ``s`` makes the largest ``|a*W|`` use the 8-bit range; a host layer's current must fit the signed 16-bit input
    for any input in range; a hidden layer's threshold must be an exact integer; the readout (threshold at its
    maximum, so that it never spikes) keeps its voltage inside the 24-bit state for ``readout_volts`` (or, when None,
    for the worst case over all inputs).
    """
    scaled = plan.a * weight
    peak = float(np.abs(scaled).max())
    if peak == 0.0:
        raise NeuromorphError(f"synaptic layer {plan.number} has only zero weights: nothing to quantize")
    threshold_max = 2**fp.threshold_bits - 1
    scale = fp.weight_max / peak
    if plan.first_on_host:  # the host current must fit the signed 16-bit synaptic input for any input in range
        rows = np.abs(scaled).reshape(scaled.shape[0], -1).sum(axis=1).max()
        gain = max(abs(spec.encoder.gain), 1e-12)
        scale = min(scale, (2 ** (fp.synaptic_input_bits - 1) - 1) / (rows * gain))
    if plan.readout:  # never spikes; its voltage must stay inside the 24-bit state
        if readout_volts is None:
            inputs_max = max(abs(spec.encoder.gain), 1.0) if plan.first_on_host else 1.0
            volts_max = np.abs(weight).reshape(weight.shape[0], -1).sum(axis=1).max() * inputs_max / plan.b
        else:
            volts_max = READOUT_HEADROOM * readout_volts
        state_max = 2 ** (fp.state_bits - 1) - 1
        return float(min(scale, state_max / (volts_max * 2**fp.threshold_shift))), threshold_max
    span = spec.neuron.v_th - spec.neuron.v_reset
    scale = min(scale, threshold_max / span)
    if scale * span >= 1:
        scale = math.floor(scale * span) / span  # an exact integer threshold
    v_th_mant = int(round(scale * span))
    if not 1 <= v_th_mant <= threshold_max:
        raise NeuromorphError(f"threshold mantissa {v_th_mant} is outside [1, {threshold_max}]")
    return float(scale), v_th_mant


def layer_decays(plan: LayerPlan, fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> tuple[int, int]:
    """``iDecay = round(4096*b)`` and ``vDecay = round(4096*a)``, checked against Loihi's ranges."""
    i_decay = _decay("iDecay", plan.b, fp.current_decay_offset, fp.decay_unit, "the current decay b", fp)
    v_decay = _decay("vDecay", plan.a, 0, fp.decay_unit - 1, "the voltage decay a", fp)
    return i_decay, v_decay


def check_exportable(spec: ModelSpec, model) -> None:
    """Refuse, with one clear error, what has no exact netx form (also what Loihi-exact training cannot model)."""
    n = spec.neuron
    if n.v_leak != n.v_reset:
        raise NeuromorphError(f"netx cannot set Lava's initial voltage: export needs v_leak == v_reset (got "
                              f"{n.v_leak} and {n.v_reset})")
    for number, block in enumerate(model.blocks):
        for name, tensor in block.synapse.named_parameters():
            if not torch.isfinite(tensor).all():
                raise NeuromorphError(f"synaptic layer {number} {name} contains NaN or infinite values")
        on_host = number == 0 and spec.encoder.kind == "direct"
        if block.synapse.bias is not None and not on_host:
            raise NeuromorphError(f"synaptic layer {number} has a bias, which has no exact netx form: it enters "
                                  "Norse's synaptic current but Lava's voltage, from Lava's first step on, while the "
                                  "layer's input arrives one step later per layer; retrain with bias=False")


READOUT_HEADROOM = 2.0  # calibrated readout: the state range holds twice the largest voltage seen


def even_grid(x, fp: LoihiFixedPoint = LOIHI_FIXED_POINT):
    """Round to the 8-bit weight grid: even integers in ``[-256, 254]`` (numpy or torch, no gradient)."""
    lib = torch if isinstance(x, torch.Tensor) else np
    return lib.clip(lib.round(x / fp.weight_step) * fp.weight_step, fp.weight_min, fp.weight_max)


def quantize(model, calibration: torch.Tensor | None = None, fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> QuantizedNet:
    """Quantize a :class:`~neuromorph.models.SpikingNet` to Loihi fixed point (see the module docstring).

    ``calibration`` (encoded inputs ``[T, B, ...]``) sets the readout's scale from the largest readout voltage the
    float model reaches on them, with :data:`READOUT_HEADROOM`; without it the scale follows the worst case over all
    inputs, which is safe but can leave the readout weights only a few levels. A model trained Loihi-exact
    (``spec.fixed_point`` set) uses the readout bound it was trained with, so that the export is what was trained.
    """
    spec: ModelSpec = model.spec
    check_exportable(spec, model)
    readout_volts = None
    if spec.fixed_point is not None:
        readout_volts = spec.fixed_point.readout_volts
    elif calibration is not None:
        with torch.no_grad():
            readout_volts = float(model(calibration).voltages.abs().max()) or None
    layers = []
    for plan, block in zip(layer_plans(spec), model.blocks, strict=True):
        with torch.no_grad():
            weight_t, stride, padding, folded = folded_weight(plan, block)
        weight = weight_t.numpy()
        scaled = plan.a * weight
        peak = float(np.abs(scaled).max())
        scale, v_th_mant = layer_scale(spec, plan, weight, readout_volts, fp)
        i_decay, v_decay = layer_decays(plan, fp)
        host_bias = None
        if block.synapse.bias is not None:  # only the host layer may have one (checked above): part of its input
            host_bias = plan.a * block.synapse.bias.detach().double().numpy() * scale
        if plan.first_on_host:
            quantized = scale * scaled
            err_rms = err_max = 0.0
            folded = (folded + "; " if folded else "") + "on host, current rounded to 1/scale V"
        else:
            quantized = even_grid(scale * scaled, fp).astype(np.int64)
            error = np.abs(quantized / scale - scaled)
            err_rms, err_max = float(np.sqrt(np.mean(error**2))), float(error.max())
        layers.append(QuantizedLayer(
            kind="input" if plan.first_on_host else ("conv" if isinstance(plan.layer, Conv) else "dense"),
            name=plan.name, in_shape=plan.in_shape, out_shape=plan.out_shape, weight=quantized, scale=scale,
            i_decay=i_decay, v_decay=v_decay, v_th_mant=v_th_mant, stride=stride, padding=padding,
            flatten_before=plan.flatten_before, readout=plan.readout, folded=folded, weight_error_rms=err_rms,
            weight_error_max=err_max, weight_float_max=peak, host_bias=host_bias,
        ))
    return QuantizedNet(spec=spec, layers=tuple(layers), input_kind="current" if spec.encoder.kind == "direct"
                        else "spikes", constants=fp)


def input_currents(qnet: QuantizedNet, x: torch.Tensor) -> np.ndarray:
    """Integer currents ``[T, B, *out_shape]`` that the host sends into the first neurons (direct input only)."""
    first = qnet.layers[0]
    if first.kind != "input":
        raise ValueError("the network takes spikes, not host currents")
    inp = x.detach().double()
    steps, batch = inp.shape[:2]
    flat = inp.reshape(steps * batch, *inp.shape[2:])
    weight = torch.from_numpy(first.weight)
    if len(first.weight.shape) == 2:
        current = nn.functional.linear(flat.reshape(flat.shape[0], -1), weight)
    else:
        current = nn.functional.conv2d(flat, weight, stride=first.stride, padding=first.padding)
    if first.host_bias is not None:
        bias = torch.from_numpy(first.host_bias)
        current = current + (bias if current.dim() == 2 else bias[:, None, None])
    limit = 2 ** (qnet.constants.synaptic_input_bits - 1)
    out = np.clip(np.round(current.numpy()), -limit, limit - 1).astype(np.int64)
    return out.reshape(steps, batch, *out.shape[1:])
