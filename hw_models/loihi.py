"""Loihi fixed-point arithmetic and per-core limits: the one place these constants live.

Quantization (export/), the netx writer and the cost model (core mapping) read them from here.
Sources: Lava's bit-accurate LIF model (lava-nc 0.10.0, ``lava/proc/lif/models.py``, ``PyLifModelBitAcc``:
12-bit decays, 24-bit states, threshold and input shifted left by 6), lava-dl 0.6.0 netx (8-bit weights
``[-256, 254]`` on even steps, CUBA ``iDecay``/``vDecay`` in units of 1/4096), Davies et al., IEEE Micro 38(1)
2018 (Loihi 1 cores), and Intel's Loihi 2 brief (2021) as summarized in DESIGN.md section 7.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LoihiFixedPoint:
    """Integer arithmetic of a Loihi CUBA LIF compartment as Lava's bit-accurate model runs it.

    ``u = u * (decay_unit - du) / decay_unit + (w << input_shift)`` (truncated toward zero),
    ``v = v * (decay_unit - dv) / decay_unit + u + (bias_mant << bias_exp)``, spike when ``v > vth << threshold_shift``.
    """

    weight_bits: int = 8  # signed mantissa bits of a synaptic weight
    weight_min: int = -256  # smallest weight netx carries
    weight_max: int = 254  # largest weight netx carries
    weight_step: int = 2  # 8-bit weights sit on even integers in [-256, 254]
    decay_bits: int = 12
    decay_unit: int = 4096  # du, dv in units of 1/4096
    state_bits: int = 24  # u and v saturate at +-2**23
    threshold_shift: int = 6  # vth is compared as vth << 6
    input_shift: int = 6  # synaptic input enters u as a_in << 6
    bias_exp: int = 6  # netx's CUBA bias exponent
    # Added for export/ (lava-nc 0.10.0 PyLifModelBitAcc docstring and LavaPyType precisions; lava-dl 0.6.0 netx):
    threshold_bits: int = 17  # vth is an unsigned 17-bit mantissa (0 to 131071)
    bias_mant_bits: int = 13  # bias_mant is a signed 13-bit mantissa (-4096 to 4095)
    synaptic_input_bits: int = 16  # a_in (the LIF's synaptic input port) is a signed 16-bit value
    conv_accumulator_bits: int = 24  # Lava's fixed-point Conv wraps its summed input to signed 24 bits
    current_decay_offset: int = 1  # ds_offset: the current decays by du + 1 (netx writes iDecay = du + 1)


LOIHI_FIXED_POINT = LoihiFixedPoint()


@dataclass(frozen=True)
class LoihiMesh:
    """Where a chip's cores sit: ``cores_per_tile`` cores share one router, tiles form a ``width`` (east-west) x
    ``height`` (north-south) mesh. A message between two cores of one chip crosses ``|dx|`` east-west and ``|dy|``
    north-south tile hops (dimension-order routing: the Manhattan distance); cores of one tile are 0 hops apart."""

    cores_per_tile: int
    width: int
    height: int
    source: str

    def position(self, core: int) -> tuple[int, int, int]:
        """``(chip, x, y)`` of global core number ``core``, placed row-major: core k on tile ``k // cores_per_tile``
        of its chip, tile t at ``x = t % width``, ``y = t // width``; the next chip starts when one is full."""
        per_chip = self.cores_per_tile * self.width * self.height
        chip, local = divmod(core, per_chip)
        tile = local // self.cores_per_tile
        return chip, tile % self.width, tile // self.width


LOIHI1_MESH = LoihiMesh(
    cores_per_tile=4, width=8, height=4,
    source="SANA-FE arch/loihi.yaml (SLAM-Lab/SANA-FE; its numbers taken from Davies et al. 2018): topology mesh, "
           "width 8, height 4, tiles loihi_tile[0..31] of 4 cores loihi_core[0..3] each (128 cores)",
)


@dataclass(frozen=True)
class LoihiCoreLimits:
    """Resources of one neurocore and one chip; ``mesh`` where the cores sit (None: not known)."""

    name: str
    neurons_per_core: int
    synapse_memory_bits_per_core: int
    input_axons_per_core: int
    output_axons_per_core: int
    cores_per_chip: int
    weight_bits_default: int
    source: str
    mesh: LoihiMesh | None = None


LOIHI1_CORE = LoihiCoreLimits(
    name="loihi1", neurons_per_core=1024, synapse_memory_bits_per_core=128 * 1024 * 8, input_axons_per_core=4096,
    output_axons_per_core=4096, cores_per_chip=128, weight_bits_default=8,
    source="Davies et al., IEEE Micro 38(1) 2018: 1,024 compartments, 128 KB synapse memory, 4,096 in/out axons "
           "per core, 128 cores per chip",
    mesh=LOIHI1_MESH,
)

LOIHI2_CORE = LoihiCoreLimits(
    name="loihi2", neurons_per_core=8192, synapse_memory_bits_per_core=128 * 1024 * 8, input_axons_per_core=4096,
    output_axons_per_core=4096, cores_per_chip=128, weight_bits_default=8,
    source="Intel Loihi 2 brief (2021): up to 8,192 neurons per core for simple models, 128 cores per chip, 8-bit "
           "weights by default; synapse memory and axon limits taken as Loihi 1's (not published per core)",
)


@dataclass(frozen=True)
class LoihiSynapseFormat:
    """How a core's synapse memory stores the weights of one input axon, as nengo-loihi computes it.

    nengo-loihi (``nengo_loihi/block.py``, ``SynapseConfig.bits_per_axon``): an axon's weights are stored in groups
    of ``synapses_per_group`` (``n_synapses + 1``, nengo-loihi sets ``n_synapses=63``); each group costs
    ``n * bits_per_weight + header_bits`` bits (4 format-index + 6 count bits), rounded up to a whole 64-bit word.
    ``bits_per_weight`` is the weight (8 bits: ``wgtBits=7`` maps to 8 in ``WEIGHT_BITS_MAP``) plus delay and tag bits
    (0 here), plus the target index bits in the sparse format (``compression=0``); the dense format
    (``compression=3``, ``set_full_weights``) stores no indices.
    """

    weight_bits: int = 8
    delay_bits: int = 0
    tag_bits: int = 0
    synapses_per_group: int = 64
    header_bits: int = 4 + 6
    word_bits: int = 64
    index_bits_map: tuple[int, ...] = (0, 6, 7, 8, 9, 10, 11, 12)  # nengo-loihi SynapseConfig.INDEX_BITS_MAP

    def index_bits(self, targets_per_core: int) -> int:
        """Index bits the sparse format needs to address ``targets_per_core`` compartments (smallest map entry)."""
        needed = max(1, (max(1, targets_per_core) - 1).bit_length())
        for bits in self.index_bits_map:
            if bits >= needed:
                return bits
        return self.index_bits_map[-1]

    def bits_per_axon(self, n_weights: int, index_bits: int = 0) -> int:
        """Synapse-memory bits one input axon with ``n_weights`` synapses uses (``index_bits`` 0: dense format)."""
        per_weight = self.weight_bits + self.delay_bits + self.tag_bits + index_bits
        bits = 0
        for start in range(0, n_weights, self.synapses_per_group):
            n = min(n_weights - start, self.synapses_per_group)
            group = n * per_weight + self.header_bits
            bits += -self.word_bits * (-group // self.word_bits)  # round up to a whole word
        return bits


LOIHI_SYNAPSE_FORMAT = LoihiSynapseFormat()
