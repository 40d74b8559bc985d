"""The block structure of a :class:`~neuromorph.spec.ModelSpec`, computed once and read by every backend.

A spec's layers fall into *blocks*: the pass-through layers (pool, flatten) that act on the spikes arriving at a
block, one synaptic layer (Dense, Conv), and the neuron population that integrates its output. Every block but the
last is *hidden* (a LIF population that spikes); the last is the *readout* (the non-spiking leaky integrator)::

    input -> [pre -> synapse -> lif1] -> [pre -> synapse -> lif2] -> ... -> [pre -> synapse -> readout]

Each population has ONE name, used everywhere: in metrics and energy tables, core mappings, NIR node names, netx
layer records and parity reports: ``input`` (the encoded input), ``lif1`` ... ``lifN`` (hidden blocks, numbered
from 1) and ``readout``.

The model (:mod:`neuromorph.models`), fan-out and op counts (:mod:`hw_models.fanout`, :mod:`hw_models.activity`),
the core mapping (:mod:`hw_models.mapping`), the chip plan (:mod:`export.chip_plan`), the NIR writer and the netx
writer all iterate :func:`blocks` and :func:`spike_sources`; none derives the structure again.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from neuromorph.spec import Layer, ModelSpec

INPUT = "input"
READOUT = "readout"
HIDDEN = "hidden"
ROLES = (HIDDEN, READOUT)


def population_name(number: int, readout: bool) -> str:
    """The name of block ``number``'s population (0-based): ``lif{number + 1}`` or ``readout``."""
    return READOUT if readout else f"lif{number + 1}"


@dataclass(frozen=True)
class Block:
    """One block: pass-through layers, a synaptic layer and its neuron population.

    ``number`` counts blocks from 0; ``start`` is the index in ``spec.layers`` of the block's first layer (its first
    pass-through layer, or its synaptic layer) and ``index`` that of its synaptic layer. ``in_shape`` is the shape of
    what enters the block (the encoded input, or the previous population's spikes), ``synapse_in_shape`` what enters
    the synaptic layer (after the pass-through layers), ``out_shape`` the population's shape. ``source`` names the
    population whose output feeds the block.
    """

    number: int
    name: str
    role: str
    start: int
    index: int
    pre: tuple[Layer, ...]
    synapse: Layer
    in_shape: tuple[int, ...]
    synapse_in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    source: str

    @property
    def readout(self) -> bool:
        return self.role == READOUT

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The pass-through layers and the synaptic layer, in order (what the source's spikes pass through)."""
        return (*self.pre, self.synapse)

    @property
    def chain(self) -> tuple[int, int]:
        """``spec.layers[start:stop]`` is :attr:`layers`."""
        return (self.start, self.index + 1)


@dataclass(frozen=True)
class SpikeSource:
    """A population whose output drives synapses: the encoded input or a hidden LIF population.

    ``layer_index`` is the index in ``spec.layers`` of the synaptic layer that produced it (-1 for the input);
    ``chain`` is the slice of ``spec.layers`` its spikes pass through, ending in the consuming synaptic layer;
    ``consumer`` is the block they drive.
    """

    name: str
    layer_index: int
    shape: tuple[int, ...]
    chain: tuple[int, int]
    consumer: Block


@lru_cache(maxsize=256)
def blocks(spec: ModelSpec) -> tuple[Block, ...]:
    """The blocks of ``spec`` in order (the last one is the readout)."""
    shapes = [spec.input_shape, *spec.layer_shapes()]
    synaptic = [i for i, layer in enumerate(spec.layers) if layer.synaptic]
    out: list[Block] = []
    start = 0
    for number, index in enumerate(synaptic):
        readout = number == len(synaptic) - 1
        out.append(Block(
            number=number, name=population_name(number, readout), role=READOUT if readout else HIDDEN,
            start=start, index=index, pre=tuple(spec.layers[start:index]), synapse=spec.layers[index],
            in_shape=tuple(shapes[start]), synapse_in_shape=tuple(shapes[index]), out_shape=tuple(shapes[index + 1]),
            source=out[-1].name if out else INPUT,
        ))
        start = index + 1
    return tuple(out)


def hidden_blocks(spec: ModelSpec) -> tuple[Block, ...]:
    return blocks(spec)[:-1]


def readout_block(spec: ModelSpec) -> Block:
    return blocks(spec)[-1]


def input_spikes(spec: ModelSpec) -> bool:
    """Whether the encoded input is binary spikes (it then has a fan-out and its own synaptic operations)."""
    return spec.encoder.kind == "poisson"


@lru_cache(maxsize=256)
def _sources(spec: ModelSpec, include_input: bool) -> tuple[SpikeSource, ...]:
    all_blocks = blocks(spec)
    out = []
    if include_input:
        first = all_blocks[0]
        out.append(SpikeSource(INPUT, -1, spec.input_shape, first.chain, first))
    for producer, consumer in zip(all_blocks[:-1], all_blocks[1:], strict=True):
        out.append(SpikeSource(producer.name, producer.index, producer.out_shape, consumer.chain, consumer))
    return tuple(out)


def spike_sources(spec: ModelSpec, include_input: bool | None = None) -> list[SpikeSource]:
    """The populations of ``spec`` whose spikes drive synapses, in order; the input is included when it is
    spike-encoded (``include_input=None``) or when asked for."""
    return list(_sources(spec, input_spikes(spec) if include_input is None else bool(include_input)))


def population_names(spec: ModelSpec) -> list[str]:
    """Every population, in order: ``input``, ``lif1`` ... ``lifN``, ``readout``."""
    return [INPUT, *(block.name for block in blocks(spec))]
