"""The chip plan: what Loihi (or Lava's simulator) does with each block of a network, in one record per block.

Every chip-side consumer reads the same :class:`ChipLayer`: Loihi fixed-point quantization (:mod:`export.quantize`),
the netx writer (:mod:`export.netx_export`), the float and fixed-point Lava runs (:mod:`export.lava_sim`,
:mod:`export.lava_runner`), the numpy reference of Lava's arithmetic (:mod:`export.loihi_reference`) and
Loihi-exact training (:mod:`export.loihi_exact`). A plan comes in two precisions (``float``: Lava's float LIF,
``fixed``: Loihi's bit-accurate CUBA) that share the structure, the folding and the exportability rules.

For block ``k`` with Norse decays ``a = dt*tau_mem_inv`` and ``b = dt*tau_syn_inv`` (``b = 1`` for ``LIFBoxCell``),
Lava's LIF reproduces Norse's when its weights are ``a*W``, ``du = b``, ``dv = a``, ``vth = v_th - v_reset`` and the
bias and initial voltage are zero (DESIGN.md section 6; netx cannot set the initial voltage, so ``v_leak ==
v_reset`` is required). Pooling between spikes and the next synaptic layer is folded into that layer's weights: into
a Dense layer exactly, whatever sits between (the dense map of ``pool -> flatten -> linear`` is computed column by
column); into a Conv layer as a conv with a ``k``-times larger kernel and stride when the pooled map divides evenly.

With direct (analog) input the first synaptic layer is a multiply-accumulate layer computed on the host (kind
``input``): its current drives the first neurons in the same step. Every on-chip synaptic layer delays by one Lava
step, so block ``k``'s output lags Norse's by :attr:`ChipLayer.delay` steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from export.loihi_cuba import volt_units
from hw_models.loihi import LOIHI_FIXED_POINT, LoihiFixedPoint
from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, Flatten, Layer, ModelSpec, Pool, unsupported_layer
from neuromorph.structure import Block, blocks, input_spikes

PRECISIONS = ("fixed", "float")
HOST = "input"  # the kind of a first synaptic layer computed on the host (netx 'input' layer)


@dataclass(frozen=True)
class ChipLayer:
    """One block on the chip: its synapses (or a host-computed input current) and a LIF/CUBA population.

    Structure (from the spec alone): ``name`` (the population's name), ``number``, ``synapse_kind`` (``dense`` or
    ``conv``) and ``on_host`` (the first synaptic layer of a direct-input network; :attr:`kind` is then ``input``),
    ``in_shape`` (what the block reads, torch order), ``out_shape``, ``a`` and ``b`` (Norse's per-step voltage and
    current decays), ``delay`` (Lava steps its output lags Norse), ``flatten_before`` (netx flattens a 3-D input
    before this dense layer), ``readout``.

    Weights (from the model, folded): ``weight`` and its ``stride``, ``padding``, ``groups``; in ``fixed``
    precision the integer mantissas (``input`` kind: the float map ``s*a*W`` whose rounded output is the integer
    current) with ``scale`` ``s`` in mantissa units per Norse volt and ``i_decay``, ``v_decay``, ``v_th_mant``;
    in ``float`` precision ``a*W`` with ``scale`` 1. ``host_bias`` is the host layer's bias in the same units.
    """

    name: str
    number: int
    synapse_kind: str  # the synaptic layer's chip kind (a key of SYNAPSE_KINDS), on chip or on the host
    on_host: bool
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    a: float
    b: float
    delay: int
    readout: bool
    flatten_before: bool = False
    precision: str = ""  # "" for a plan without weights (plan_layers), else one of PRECISIONS
    weight: np.ndarray | None = field(default=None, repr=False)
    scale: float = 1.0
    i_decay: int = 0
    v_decay: int = 0
    v_th_mant: int = 0
    vth: float = 0.0  # float precision: threshold in Norse volts (inf for the never-spiking readout)
    stride: int = 1
    padding: int = 0
    groups: int = 1  # conv groups (independent copies side by side, see export.lava_sim.replicate)
    pool_before: int = 1  # conv: the window of a pooling folded into it (its kernel repeats each tap k x k times)
    folded: str = ""
    host_bias: np.ndarray | None = field(default=None, repr=False)
    weight_error_rms: float = 0.0  # RMS of |weight/s - a*W| over synapses, Norse volts
    weight_error_max: float = 0.0  # largest |weight/s - a*W|, Norse volts
    weight_float_max: float = 0.0  # largest |a*W|, Norse volts

    @property
    def kind(self) -> str:
        """``input`` for a host layer, else the on-chip synapse kind (``dense``, ``conv``): netx's layer type."""
        return HOST if self.on_host else self.synapse_kind

    @property
    def spatial(self) -> bool:
        """Whether the synaptic layer reads a ``[C, H, W]`` map (conv) rather than a flat vector (dense)."""
        return SYNAPSE_KINDS[self.synapse_kind].spatial

    @property
    def du(self) -> float:
        """Lava float LIF's current decay."""
        return self.b

    @property
    def dv(self) -> float:
        """Lava float LIF's voltage decay."""
        return self.a

    def units_per_volt(self, fp: LoihiFixedPoint = LOIHI_FIXED_POINT) -> float:
        """Lava's voltage units per Norse volt: ``scale * 2**threshold_shift`` in fixed point, 1 in float."""
        return volt_units(self.scale, fp) if self.precision == "fixed" else 1.0


@dataclass(frozen=True)
class ChipPlan:
    """A network on the chip: one :class:`ChipLayer` per block, in one precision."""

    spec: ModelSpec
    layers: tuple[ChipLayer, ...]
    precision: str
    constants: LoihiFixedPoint = field(default=LOIHI_FIXED_POINT)

    @property
    def input_kind(self) -> str:
        """``current`` (host current into the first neurons, direct input) or ``spikes`` (into ``net.inp``)."""
        return "current" if self.layers[0].on_host else "spikes"

    @property
    def delays(self) -> list[int]:
        """Lava steps by which each layer's output lags Norse: one per on-chip synaptic layer up to it."""
        return [layer.delay for layer in self.layers]

    @property
    def readout_units_per_volt(self) -> float:
        """The readout voltage's units per Norse volt (fixed point: mantissa ``v / (scale * 64)`` is volts)."""
        return self.layers[-1].units_per_volt(self.constants)

    @property
    def flat_input(self) -> bool:
        """Whether the chip's input port is flat: spikes into a dense first layer (torch C order)."""
        return not self.layers[0].on_host and not self.layers[0].spatial

    def layer_table(self) -> list[dict[str, Any]]:
        return [{
            "layer": q.name, "kind": q.kind, "folded": q.folded, "scale": q.scale, "iDecay": q.i_decay,
            "vDecay": q.v_decay, "vThMant": q.v_th_mant, "weight_max_float": q.weight_float_max,
            "weight_error_rms": q.weight_error_rms, "weight_error_max": q.weight_error_max,
            "weight_int_max": int(np.abs(q.weight).max()) if not q.on_host else None,
        } for q in self.layers]


# ---- the chip backend's table: layer class -> what the chip does with it -----------------------------------------

@dataclass(frozen=True)
class SynapseKind:
    """An on-chip synapse kind (a netx layer type): ``spatial`` layers read ``[C, H, W]`` input."""

    name: str
    spatial: bool


SYNAPSE_KINDS: dict[str, SynapseKind] = {"dense": SynapseKind("dense", False), "conv": SynapseKind("conv", True)}


@dataclass(frozen=True)
class ChipRule:
    """How the chip handles one layer class: a synaptic layer becomes an on-chip synapse ``kind`` whose weights
    ``fold(layer, block_module, chip_layer, pre)`` computes with the pass-through layers before it folded in; a
    pass-through layer is folded into the next synaptic layer (``note`` says how)."""

    kind: str | None = None
    fold: Callable[..., tuple[torch.Tensor, int, int, str]] | None = None
    note: str = ""
    pools: bool = False  # a pass-through that the next synaptic layer's weights absorb
    flattens: bool = False  # a pass-through that netx writes as a flatten layer before a dense layer


def _fold_into_dense(pre: nn.Module, synapse: nn.Linear, in_shape: tuple[int, ...]) -> torch.Tensor:
    """The dense matrix of ``synapse(pre(x))`` for ``x`` of ``in_shape`` (exact: both are linear; differentiable)."""
    size = math.prod(in_shape)
    basis = torch.eye(size, dtype=torch.float64).reshape(size, *in_shape)
    columns = nn.functional.linear(pre(basis), synapse.weight.double())  # pool and flatten have no weights
    return columns.T


def _fold_dense(layer: Dense, module, in_shape: tuple[int, ...], pre: tuple[Layer, ...], number: int):
    pools = [p for p in pre if _chip_rule(p).pools]
    if pools:
        return _fold_into_dense(module.pre, module.synapse, in_shape), 1, 0, f"{len(pools)} pool(s) into dense"
    return module.synapse.weight.double(), 1, 0, ""


def _fold_conv(layer: Conv, module, in_shape: tuple[int, ...], pre: tuple[Layer, ...], number: int):
    weight = module.synapse.weight
    if not pre:
        return weight.double(), layer.stride, layer.padding, ""
    pool = pre[0]
    if len(pre) != 1 or not _chip_rule(pool).pools:
        raise NeuromorphError(f"layer {number}: only one pooling layer directly before a convolution can be "
                              "folded into it for netx")
    _, height, width = in_shape
    k = pool.kernel_size
    if height % k or width % k:
        raise NeuromorphError(f"layer {number}: pooling {k} over a {height}x{width} map crops a border, which cannot "
                              "be folded into the next convolution for netx; use maps that the window divides")
    big = weight.double().repeat_interleave(k, dim=2).repeat_interleave(k, dim=3)
    if pool.mode == "avg":
        big = big / (k * k)
    return big, layer.stride * k, layer.padding * k, f"{pool.mode} pool {k} into conv"


def _folded_pool(block: Block) -> int:
    """The window of the pooling a convolution's weights absorb (1: none)."""
    pools = [layer for layer in block.pre if _chip_rule(layer).pools]
    return pools[0].kernel_size if pools else 1


CHIP_RULES: dict[type, ChipRule] = {
    Dense: ChipRule(kind="dense", fold=_fold_dense),
    Conv: ChipRule(kind="conv", fold=_fold_conv),
    Pool: ChipRule(note="folded into the next synaptic layer's weights (netx has no pool layer)", pools=True),
    Flatten: ChipRule(note="a netx flatten layer before a dense layer that reads a [C, H, W] map", flattens=True),
}


def _chip_rule(layer: Layer) -> ChipRule:
    rule = CHIP_RULES.get(type(layer))
    if rule is None:
        raise unsupported_layer(layer, "the chip")
    return rule


# ---- the plan --------------------------------------------------------------------------------------------------

def _decays(spec: ModelSpec, block: Block) -> tuple[float, float]:
    if block.readout:
        return spec.dt_s * spec.readout.tau_mem_inv, spec.dt_s * spec.readout.tau_syn_inv
    a = spec.dt_s * spec.neuron.tau_mem_inv
    return a, 1.0 if spec.neuron.cell == "lifbox" else spec.dt_s * spec.neuron.tau_syn_inv


@lru_cache(maxsize=256)
def plan_layers(spec: ModelSpec) -> tuple[ChipLayer, ...]:
    """The chip plan of ``spec`` without weights: one :class:`ChipLayer` per block of
    :func:`neuromorph.structure.blocks`."""
    out, delay = [], 0
    for block in blocks(spec):
        for layer in block.pre:
            _chip_rule(layer)
        on_host = block.number == 0 and not input_spikes(spec)
        delay += not on_host
        a, b = _decays(spec, block)
        out.append(ChipLayer(
            name=block.name, number=block.number, synapse_kind=_chip_rule(block.synapse).kind, on_host=on_host,
            in_shape=block.in_shape, out_shape=block.out_shape,
            a=a, b=b, delay=delay, readout=block.readout,
            flatten_before=block.number > 0 and any(_chip_rule(p).flattens for p in block.pre)
            and len(block.in_shape) == 3,
            pool_before=_folded_pool(block) if SYNAPSE_KINDS[_chip_rule(block.synapse).kind].spatial else 1,
        ))
    return tuple(out)


def folded_weight(spec: ModelSpec, layer: ChipLayer, module) -> tuple[torch.Tensor, int, int, str]:
    """Float64 weights of one block's synaptic layer with the pass-through layers before it folded in
    (differentiable in the module's weights), its stride and padding, and a note on what was folded.
    ``module`` is the block's module of :class:`~neuromorph.models.SpikingNet` (``.pre``, ``.synapse``)."""
    block = blocks(spec)[layer.number]
    return _chip_rule(block.synapse).fold(block.synapse, module, block.in_shape, block.pre, block.index)


def check_exportable(spec: ModelSpec, model) -> None:
    """Refuse, with one clear error, what has no exact chip form (also what Loihi-exact training cannot model)."""
    n = spec.neuron
    if n.v_leak != n.v_reset:
        raise NeuromorphError(f"Lava's LIF starts and resets at 0 and netx cannot set its initial voltage: the chip "
                              f"needs v_leak == v_reset (got {n.v_leak} and {n.v_reset})")
    from neuromorph.models import has_batch_norm

    if has_batch_norm(model):
        raise NeuromorphError("the model has BatchNorm, which Loihi has no form for: fold it into the synapses first "
                              "(neuromorph.models.fold_batch_norm; checkpoints loaded for export are folded)")
    for layer, module in zip(plan_layers(spec), model.blocks, strict=True):
        for name, tensor in module.synapse.named_parameters():
            if not torch.isfinite(tensor).all():
                raise NeuromorphError(f"synaptic layer {layer.number} {name} contains NaN or infinite values")
        if module.synapse.bias is not None and not layer.on_host:
            raise NeuromorphError(f"synaptic layer {layer.number} has a bias, which has no exact netx form: it "
                                  "enters Norse's synaptic current but Lava's voltage, from Lava's first step on, "
                                  "while the layer's input arrives one step later per layer; retrain with "
                                  "bias=False")


def host_current(layer: ChipLayer, weight: torch.Tensor, bias: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """The current a host layer sends into the first neurons: ``weight`` (and ``bias``) applied to the input ``x``
    ``[N, *in_shape]`` in float64 (``[N, *out_shape]``), before any rounding. ``weight`` and ``bias`` are in the
    precision's units (``s*a*W`` in fixed point, ``a*W`` in float)."""
    if layer.spatial:
        current = nn.functional.conv2d(x, weight, stride=layer.stride, padding=layer.padding)
    else:
        current = nn.functional.linear(x.reshape(x.shape[0], -1), weight)
    if bias is not None:
        current = current + (bias if current.dim() == 2 else bias[:, None, None])
    return current


def float_plan(model) -> ChipPlan:
    """The float Lava plan of a model (DESIGN.md section 6): weights ``a*W``, ``du = b``, ``dv = a``,
    ``vth = v_th - v_reset`` (infinite for the readout, which never spikes). BatchNorm is folded first."""
    from neuromorph.models import fold_batch_norm

    model = fold_batch_norm(model)
    spec = model.spec
    check_exportable(spec, model)
    layers = []
    for layer, module in zip(plan_layers(spec), model.blocks, strict=True):
        with torch.no_grad():
            weight, stride, padding, folded = folded_weight(spec, layer, module)
        bias, scaled = module.synapse.bias, layer.a * weight.numpy()
        layers.append(replace(
            layer, precision="float", weight=scaled, stride=stride, padding=padding, folded=folded,
            vth=math.inf if layer.readout else spec.neuron.v_th - spec.neuron.v_reset,
            host_bias=None if bias is None else layer.a * bias.detach().double().numpy(),
            weight_float_max=float(np.abs(scaled).max()),
        ))
    return ChipPlan(spec=spec, layers=tuple(layers), precision="float")
