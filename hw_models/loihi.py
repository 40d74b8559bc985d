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


LOIHI_FIXED_POINT = LoihiFixedPoint()


@dataclass(frozen=True)
class LoihiCoreLimits:
    """Resources of one neurocore and one chip."""

    name: str
    neurons_per_core: int
    synapse_memory_bits_per_core: int
    input_axons_per_core: int
    output_axons_per_core: int
    cores_per_chip: int
    weight_bits_default: int
    source: str


LOIHI1_CORE = LoihiCoreLimits(
    name="loihi1", neurons_per_core=1024, synapse_memory_bits_per_core=128 * 1024 * 8, input_axons_per_core=4096,
    output_axons_per_core=4096, cores_per_chip=128, weight_bits_default=8,
    source="Davies et al., IEEE Micro 38(1) 2018: 1,024 compartments, 128 KB synapse memory, 4,096 in/out axons "
           "per core, 128 cores per chip",
)

LOIHI2_CORE = LoihiCoreLimits(
    name="loihi2", neurons_per_core=8192, synapse_memory_bits_per_core=128 * 1024 * 8, input_axons_per_core=4096,
    output_axons_per_core=4096, cores_per_chip=128, weight_bits_default=8,
    source="Intel Loihi 2 brief (2021): up to 8,192 neurons per core for simple models, 128 cores per chip, 8-bit "
           "weights by default; synapse memory and axon limits taken as Loihi 1's (not published per core)",
)
