"""Core mapping on Loihi 1 / Loihi 2: how many cores each layer needs, and which limit binds.

Every neuron population that sits on the chip (each LIF layer and the readout) is split into ``c`` cores of
contiguous neurons (C-order flattened index, ``ceil(N / c)`` per core). A core must hold, within the limits of
hw_models.loihi (``LoihiCoreLimits``):

- its neurons (``neurons_per_core``);
- one input axon per presynaptic neuron with at least one synapse into the core (``input_axons_per_core``);
- the weights of those axons in synapse memory, counted as nengo-loihi counts them
  (``LoihiSynapseFormat.bits_per_axon``): the dense format for Dense layers (``set_full_weights``), the sparse
  format with index bits for Conv layers (weights stored per axon: weight sharing through population axons is not
  modelled, so conv memory is an upper bound);
- one output axon per (neuron, destination core) pair of its spikes (``output_axons_per_core``).

Pooling between spikes and synapses is folded into the weights (hw_models.fanout), so each presynaptic neuron keeps
its own axon. The smallest ``c`` meeting each limit alone is reported, and the largest of them is the layer's core
count; the limit that set it is the *binding* limit. Total cores, chips (``cores_per_chip``) and, for each spike
source, the number of destination cores each neuron's spike is routed to (messages per spike) follow.

The encoded input is not placed by default: Poisson input spikes arrive from the host, and a direct-encoded (analog)
input cannot drive Loihi synapses, so its first layer is mapped as if the input arrived as spikes on input axons.
``input_on_chip=True`` places it as an on-chip encoding layer (population ``input``: one compartment per pixel,
driven by its pixel, no input axons or synapses of its own) on the first cores, sized by neurons and output axons.

Placement on the mesh (``LoihiCoreLimits.mesh``, hw_models.loihi.LoihiMesh): the cores are numbered in layer order
(the encoding layer, then lif1 ... readout), each layer's cores in their own order, and placed row-major: core k on
tile ``k // cores_per_tile``, tile t at ``(x, y) = (t % width, t // width)``; a chip full, the next begins. For each
spike source and neuron, :attr:`CoreMapping.hops` holds the east-west and north-south tile hops summed over the
destination cores its spike is routed to (the Manhattan distance: dimension-order routing), and the destinations on
another chip (chip-to-chip links, not tile hops). Host input enters the mesh at tile (0, 0) of chip 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from hw_models.loihi import LOIHI_SYNAPSE_FORMAT, LoihiCoreLimits, LoihiMesh, LoihiSynapseFormat
from neuromorph.errors import NeuromorphError
from neuromorph.spec import Conv, Dense, Flatten, Layer, ModelSpec, Pool, unsupported_layer
from neuromorph.structure import INPUT, spike_sources

HOST = "host"

LIMITS = ("neurons", "synapse memory", "input axons", "output axons")


@dataclass(frozen=True)
class LayerMapping:
    """Cores of one on-chip population and the load of its fullest core."""

    name: str
    neurons: int
    presynaptic: str
    cores: int
    binding: str
    cores_needed: dict[str, int]
    neurons_per_core: int
    input_axons_per_core: int
    synapse_bits_per_core: int
    output_axons_per_core: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Hops:
    """Per neuron of one spike source, summed over the destination cores of its spike: tile hops east-west and
    north-south on one chip, and destinations on another chip."""

    east_west: torch.Tensor
    north_south: torch.Tensor
    off_chip: torch.Tensor


@dataclass
class CoreMapping:
    """A model placed on cores of one chip type, and (with a mesh) on the chip's tiles.

    ``synapse_counts[layer]``: ``[cores, *in_shape]`` synapses of each presynaptic neuron into each core of the layer;
    ``first_core[layer]``: the global number of its first core; ``hops[source]`` see :class:`Hops`.
    """

    chip: str
    layers: list[LayerMapping]
    cores_per_chip: int
    destination_cores: dict[str, torch.Tensor] = field(repr=False)
    limits_source: str = ""
    synapse_counts: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    first_core: dict[str, int] = field(default_factory=dict)
    mesh: LoihiMesh | None = None
    hops: dict[str, Hops] = field(default_factory=dict, repr=False)

    @property
    def input_on_chip(self) -> bool:
        return any(layer.name == INPUT for layer in self.layers)

    def placement(self) -> list[dict[str, Any]]:
        """Per layer: its cores and where they sit, ``(chip, x, y)`` of the first and last (None without a mesh)."""
        out = []
        for layer in self.layers:
            first = self.first_core[layer.name]
            where = ([self.mesh.position(first), self.mesh.position(first + layer.cores - 1)]
                     if self.mesh is not None else None)
            out.append({"layer": layer.name, "first_core": first, "last_core": first + layer.cores - 1,
                        "first_tile": where[0] if where else None, "last_tile": where[1] if where else None})
        return out

    @property
    def total_cores(self) -> int:
        return sum(layer.cores for layer in self.layers)

    @property
    def chips(self) -> int:
        return math.ceil(self.total_cores / self.cores_per_chip)

    def layer(self, name: str) -> LayerMapping:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        mesh = None if self.mesh is None else {"cores_per_tile": self.mesh.cores_per_tile, "width": self.mesh.width,
                                               "height": self.mesh.height, "source": self.mesh.source,
                                               "order": "row-major in core order, (chip, x, y) per tile"}
        return {"chip": self.chip, "total_cores": self.total_cores, "chips": self.chips,
                "cores_per_chip": self.cores_per_chip, "limits_source": self.limits_source,
                "layers": [layer.to_dict() for layer in self.layers], "mesh": mesh, "placement": self.placement()}


def synapses_into_cores(chain, in_shape: tuple[int, ...], cores: int) -> torch.Tensor:
    """Synapse counts ``[cores, *in_shape]``: how many synapses each presynaptic neuron has into each core.

    ``chain`` runs from the spikes to the consuming synaptic layer (pool/flatten, then Dense/Conv). Computed by
    running the chain with unit weights (sum pooling) on one copy of the input per core and differentiating the sum
    of that core's outputs: the gradient counts the (output neuron, tap) pairs reading each input. Summed over cores
    it is the exact fan-out.
    """
    x = torch.ones((cores, *in_shape), dtype=torch.float64, requires_grad=True)
    out = _unit_chain(chain, x)
    owner = core_owner(tuple(out.shape[1:]), cores)
    out = out.flatten(start_dim=1)
    mask = (owner[None, :] == torch.arange(cores)[:, None]).to(out.dtype)
    (grad,) = torch.autograd.grad((out * mask).sum(), x)
    return grad.round()


def core_owner(shape: tuple[int, ...], cores: int) -> torch.Tensor:
    """Core of each neuron (C-order flat index) when a population of ``shape`` is split into ``cores`` cores.

    Neurons are split into blocks of ``ceil(N / cores)`` consecutive neurons; a ``[C, H, W]`` population is ordered
    channels-last first (all channels of a position together), which keeps each core's receptive fields compact.
    """
    neurons = math.prod(shape)
    per_core = math.ceil(neurons / cores)
    rank = torch.arange(neurons)
    if len(shape) == 3:
        channels, height, width = shape
        rank = torch.arange(neurons).reshape(height, width, channels).permute(2, 0, 1).flatten()
    return rank // per_core


def _core_sums(values: torch.Tensor, cores: int) -> torch.Tensor:
    """Sum of a per-neuron quantity (shape of the population) over the neurons of each core."""
    owner = core_owner(tuple(values.shape), cores)
    return torch.zeros(cores, dtype=values.dtype).index_add_(0, owner, values.flatten())


def _unit_dense(layer: Dense, h: torch.Tensor) -> torch.Tensor:
    return h @ torch.ones((h.shape[1], layer.out_features), dtype=h.dtype)


def _unit_conv(layer: Conv, h: torch.Tensor) -> torch.Tensor:
    w = torch.ones((layer.out_channels, h.shape[1], layer.kernel_size, layer.kernel_size), dtype=h.dtype)
    return F.conv2d(h, w, stride=layer.stride, padding=layer.padding)


@dataclass(frozen=True)
class MappingRule:
    """How one layer kind enters the core mapping: ``unit(layer, h)`` runs it with unit weights (sum pooling) on a
    batch ``h`` (the synapse counts are its gradient), and ``sparse`` says whether its weights are stored in the
    sparse synapse format, with index bits (conv), rather than the dense one."""

    unit: Callable[[Layer, torch.Tensor], torch.Tensor]
    sparse: bool = False


# The core-mapping backend's table: one row per layer class.
MAPPING_RULES: dict[type, MappingRule] = {
    Dense: MappingRule(unit=_unit_dense),
    Conv: MappingRule(unit=_unit_conv, sparse=True),
    Pool: MappingRule(unit=lambda layer, h: F.avg_pool2d(h, layer.kernel_size) * layer.kernel_size**2),
    Flatten: MappingRule(unit=lambda layer, h: h.flatten(start_dim=1)),
}


def _mapping_rule(layer: Layer) -> MappingRule:
    rule = MAPPING_RULES.get(type(layer))
    if rule is None:
        raise unsupported_layer(layer, "core mapping")
    return rule


def _unit_chain(chain, h: torch.Tensor) -> torch.Tensor:
    for layer in chain:
        h = _mapping_rule(layer).unit(layer, h)
    return h


def _bits_per_axon(counts: torch.Tensor, fmt: LoihiSynapseFormat, index_bits: int) -> torch.Tensor:
    """Vectorized ``LoihiSynapseFormat.bits_per_axon`` over a tensor of synapse counts."""
    counts = counts.long()
    per_weight = fmt.weight_bits + fmt.delay_bits + fmt.tag_bits + index_bits
    full, rest = counts // fmt.synapses_per_group, counts % fmt.synapses_per_group

    def words(n: torch.Tensor | int) -> torch.Tensor | int:
        return -fmt.word_bits * (-(n * per_weight + fmt.header_bits) // fmt.word_bits)

    return full * words(fmt.synapses_per_group) + torch.where(rest > 0, words(rest), torch.zeros_like(rest))


@dataclass(frozen=True)
class _Load:
    neurons: int
    input_axons: int
    synapse_bits: int


def _core_load(chain, in_shape, cores: int, fmt: LoihiSynapseFormat) -> _Load:
    counts = synapses_into_cores(chain, in_shape, cores).flatten(start_dim=1)  # [cores, inputs]
    neurons = math.prod(_out_shape(chain, in_shape))
    per_core = math.ceil(neurons / cores)
    index_bits = fmt.index_bits(per_core) if _mapping_rule(chain[-1]).sparse else 0
    bits = _bits_per_axon(counts, fmt, index_bits).sum(dim=1)
    return _Load(neurons=per_core, input_axons=int((counts > 0).sum(dim=1).max()), synapse_bits=int(bits.max()))


def _out_shape(chain, in_shape) -> tuple[int, ...]:
    shape = tuple(in_shape)
    for layer in chain:
        shape = layer.output_shape(shape)
    return shape


def _smallest(fits: Callable[[int], bool], low: int, high: int) -> int | None:
    """Smallest c in [low, high] with fits(c), assuming fits is monotone in c; None when even high fails.

    Doubles from ``low`` first, so that small layers never evaluate a large core count.
    """
    upper = max(1, low)
    while not fits(upper):
        if upper >= high:
            return None
        upper = min(2 * upper, high)
    lower = max(1, low, upper // 2 + 1) if upper > max(1, low) else upper
    while lower < upper:
        mid = (lower + upper) // 2
        if fits(mid):
            upper = mid
        else:
            lower = mid + 1
    return upper


def map_cores(
    spec: ModelSpec,
    limits: LoihiCoreLimits,
    fmt: LoihiSynapseFormat = LOIHI_SYNAPSE_FORMAT,
    input_on_chip: bool = False,
) -> CoreMapping:
    """Place every on-chip population of ``spec`` on cores with ``limits`` (see the module docstring);
    ``input_on_chip``: the input too, as an encoding layer."""
    # the input always feeds the first block; each source's consumer block is the population being placed
    plans = [(source.consumer.name, source, source.consumer.layers, math.prod(source.consumer.out_shape))
             for source in spike_sources(spec, include_input=True)]

    cores: dict[str, int] = {}
    needed: dict[str, dict[str, int]] = {}
    for name, source, chain, neurons in plans:
        need_neurons = math.ceil(neurons / limits.neurons_per_core)
        loads: dict[int, _Load] = {}

        def load(c: int, chain=chain, source=source, loads=loads) -> _Load:
            if c not in loads:
                loads[c] = _core_load(chain, source.shape, c, fmt)
            return loads[c]

        need_memory = _smallest(lambda c: load(c).synapse_bits <= limits.synapse_memory_bits_per_core, 1, neurons)
        need_axons = _smallest(lambda c: load(c).input_axons <= limits.input_axons_per_core, 1, neurons)
        if need_memory is None or need_axons is None:
            what = "synapse memory" if need_memory is None else "input axons"
            raise NeuromorphError(f"layer {name!r} does not fit on {limits.name} cores even with one neuron per core "
                                  f"({what} per core exceeded)")
        needed[name] = {"neurons": need_neurons, "synapse memory": need_memory, "input axons": need_axons}
        cores[name] = max(needed[name].values())

    # Output axons: one per (neuron, destination core). Walk backwards so each consumer's core count is final
    # before its source is sized; more source cores never change the consumer's load.
    destination: dict[str, torch.Tensor] = {}
    synapse_counts: dict[str, torch.Tensor] = {}
    if input_on_chip:
        cores[INPUT] = math.ceil(math.prod(spec.input_shape) / limits.neurons_per_core)
        needed[INPUT] = {"neurons": cores[INPUT], "synapse memory": 0, "input axons": 0}
    for position in range(len(plans) - 1, -1, -1):
        name, source, chain, _ = plans[position]
        counts = synapses_into_cores(chain, source.shape, cores[name])
        synapse_counts[name] = counts
        dest = (counts > 0).sum(dim=0).to(torch.float64)
        destination[source.name] = dest
        if position == 0 and not input_on_chip:
            continue  # the input is not placed on the chip
        producer = plans[position - 1][0] if position > 0 else INPUT

        def out_axons(c: int, dest=dest) -> int:
            return int(_core_sums(dest, c).max())

        need_out = _smallest(lambda c: out_axons(c) <= limits.output_axons_per_core, 1, dest.numel())
        if need_out is None:
            raise NeuromorphError(f"layer {producer!r} does not fit on {limits.name} cores: one neuron alone needs "
                                  "more output axons than a core has")
        needed[producer]["output axons"] = need_out
        cores[producer] = max(cores[producer], need_out)
    needed[plans[-1][0]]["output axons"] = 1  # the readout sends nothing

    layers = []
    if input_on_chip:
        c = cores[INPUT]
        binding = max(LIMITS, key=lambda limit: (needed[INPUT][limit], -LIMITS.index(limit)))
        layers.append(LayerMapping(
            name=INPUT, neurons=math.prod(spec.input_shape), presynaptic=HOST, cores=c, binding=binding,
            cores_needed=dict(needed[INPUT]), neurons_per_core=math.ceil(math.prod(spec.input_shape) / c),
            input_axons_per_core=0, synapse_bits_per_core=0,
            output_axons_per_core=int(_core_sums(destination[INPUT], c).max())))
    for position, (name, source, chain, neurons) in enumerate(plans):
        c = cores[name]
        final = _core_load(chain, source.shape, c, fmt)
        if position + 1 < len(plans):
            out_axons = int(_core_sums(destination[plans[position + 1][1].name], c).max())
        else:
            out_axons = 0
        binding = max(LIMITS, key=lambda limit: (needed[name][limit], -LIMITS.index(limit)))
        layers.append(LayerMapping(
            name=name, neurons=neurons, presynaptic=source.name, cores=c, binding=binding,
            cores_needed=dict(needed[name]), neurons_per_core=final.neurons, input_axons_per_core=final.input_axons,
            synapse_bits_per_core=final.synapse_bits, output_axons_per_core=out_axons))
    first_core, next_core = {}, 0
    for layer in layers:
        first_core[layer.name], next_core = next_core, next_core + layer.cores
    hops = {}
    if limits.mesh is not None:
        for name, source, _, _ in plans:
            hops[source.name] = _source_hops(limits.mesh, synapse_counts[name], first_core[name], source.shape,
                                             cores.get(source.name), first_core.get(source.name))
    return CoreMapping(chip=limits.name, layers=layers, cores_per_chip=limits.cores_per_chip,
                       destination_cores=destination, limits_source=limits.source, synapse_counts=synapse_counts,
                       first_core=first_core, mesh=limits.mesh, hops=hops)


def _positions(mesh: LoihiMesh, cores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(chip, x, y)`` tensors of global core numbers ``cores`` (row-major placement, LoihiMesh.position)."""
    per_chip = mesh.cores_per_tile * mesh.width * mesh.height
    chip, local = cores // per_chip, cores % per_chip
    tile = local // mesh.cores_per_tile
    return chip, tile % mesh.width, tile // mesh.width


def _source_hops(mesh: LoihiMesh, counts: torch.Tensor, consumer_first: int, shape: tuple[int, ...],
                 source_cores: int | None, source_first: int | None) -> Hops:
    """Hops of each neuron of a source whose synapses into the consumer's cores are ``counts`` [cores, *shape];
    a source not on the chip (``source_cores`` None) sends from the host's entry, tile (0, 0) of chip 0."""
    routed = counts.flatten(start_dim=1) > 0  # [consumer cores, neurons]
    d_chip, d_x, d_y = _positions(mesh, consumer_first + torch.arange(routed.shape[0]))
    if source_cores is None:
        s_chip = s_x = s_y = torch.zeros(routed.shape[1], dtype=torch.long)
    else:
        s_chip, s_x, s_y = _positions(mesh, source_first + core_owner(shape, source_cores))
    same = routed & (d_chip[:, None] == s_chip[None, :])
    east_west = (same * (d_x[:, None] - s_x[None, :]).abs()).sum(dim=0)
    north_south = (same * (d_y[:, None] - s_y[None, :]).abs()).sum(dim=0)
    off_chip = (routed & ~same).sum(dim=0)
    return Hops(*(t.to(torch.float64).reshape(shape) for t in (east_west, north_south, off_chip)))
