"""Golden test: a tiny network whose activity and energy are counted by hand.

Network: a 2x2 image -> Flatten -> Dense(3) -> LIF -> Dense(2) -> LI readout, T = 4, Norse defaults
(a = dt * tau_mem_inv = 0.1, b = dt * tau_syn_inv = 0.2, v_th = 1).
Image pixels [1, 0, 1, 1]. Hidden weights: neuron 0 reads pixel 0 with weight 100, neuron 1 reads pixel 2 with 100,
neuron 2 reads pixel 0 with -100. With a current of 100 a LIF neuron spikes on every step (step 1: v' = 0.1 * 100 =
10 > 1; the current then stays >= 80, so after each reset v' >= 8 > 1); neuron 2 never spikes.

By hand, per sample:
- lif1 spikes: 2 neurons x 4 steps = 8; each drives Dense(2): 8 x 2 = 16 SynOps.
- direct input: 3 non-zero pixels x fan-out 3 = 9 MACs (computed once: the input is constant over time).
  Poisson input (max rate 1000 Hz, dt 1 ms: p = pixel): 3 inputs spike every step = 12 spikes, 12 x 3 = 36 SynOps.
- neuron updates: (3 LIF + 2 readout) x 4 steps = 20.
- dense connections: input 4 x 3 = 12, lif1 3 x 2 = 6: the ANN does 18 MACs and 3 activations.
- core mapping: one core per layer; every spike goes to one destination core: messages = spikes.
"""

from __future__ import annotations

import pytest
import torch

from hw_models.activity import measure_activity
from hw_models.energy import energy_penalty, estimate_energy, neuron_update_energy
from hw_models.loihi import LOIHI1_CORE, LOIHI_SYNAPSE_FORMAT
from hw_models.mapping import map_cores
from hw_models.profiles import PROFILES
from neuromorph.data import Split
from neuromorph.encoders import encode
from neuromorph.models import build_model
from neuromorph.spec import Dense, EncoderSpec, Flatten, ModelSpec

PJ = 1e-12


def golden_model(encoder: str):
    spec = ModelSpec(input_shape=(1, 2, 2), layers=(Flatten(), Dense(3), Dense(2)), num_classes=2, time_steps=4,
                     encoder=EncoderSpec(kind=encoder, max_rate_hz=1000.0))
    model = build_model(spec)
    with torch.no_grad():
        model.blocks[0].synapse.weight.copy_(torch.tensor([[100.0, 0, 0, 0], [0, 0, 100.0, 0], [-100.0, 0, 0, 0]]))
        model.blocks[1].synapse.weight.fill_(0.5)
    images = torch.tensor([[[[255, 0], [255, 255]]]], dtype=torch.uint8).repeat(5, 1, 1, 1)
    return model, Split(images, torch.zeros(5, dtype=torch.int64))


@pytest.mark.parametrize("encoder", ["direct", "poisson"])
def test_hand_counted_activity(encoder):
    model, split = golden_model(encoder)
    counts = measure_activity(model, split, batch_size=2)
    rows = {p.name: p for p in counts.populations}
    assert counts.samples == 5
    assert rows["lif1"].spikes == 8 and rows["lif1"].synops == 16 and rows["lif1"].neuron_updates == 12
    assert rows["readout"].neuron_updates == 8 and rows["readout"].spikes == 0
    assert sum(p.neuron_updates for p in counts.populations) == 20
    assert rows["input"].dense_connections == 12 and rows["lif1"].dense_connections == 6
    if encoder == "direct":
        assert rows["input"].role == "input-analog" and rows["input"].macs == 9 and rows["input"].synops == 0
    else:
        assert rows["input"].role == "input-spikes" and rows["input"].spikes == 12 and rows["input"].synops == 36
        assert rows["input"].macs == 0


def test_hand_counted_input_delivery_host_graded():
    """3 non-zero pixels, each a graded spike on each of 4 steps into lif1's one core: 12 messages; 9 MACs become
    4 x 9 = 36 synaptic ops. The host generates the spikes, so no spike energy."""
    model, split = golden_model("direct")
    counts = measure_activity(model, split)
    e = estimate_energy(model.spec, counts, PROFILES["loihi1-calibrated"])
    row = {p.name: p for p in e.populations}["input"]
    assert e.input_delivery == "host-graded" and not any("MACs" in note for note in e.not_priced)
    assert row.messages == 12 and row.messages_j == pytest.approx(12 * 111.0 * PJ, rel=1e-12)
    assert row.synops_j == pytest.approx(36 * 35.5 * PJ, rel=1e-12) and row.spikes_j == 0 and row.macs_j == 0
    assert e.dynamic_j == pytest.approx((3466.4 + 36 * 35.5 + 12 * 111.0) * PJ, rel=1e-12)
    # static both ways: the whole chip, and the 2 of 128 cores the network uses
    assert e.static_chip_j == e.static_j and e.static_cores_j == pytest.approx(e.static_chip_j * 2 / 128, rel=1e-12)


def test_hand_counted_energy_direct():
    model, split = golden_model("direct")
    counts = measure_activity(model, split)
    spec = model.spec

    calibrated = estimate_energy(spec, counts, PROFILES["loihi1-calibrated"], input_delivery="none")
    kinds = calibrated.by_kind()
    assert kinds["synops"] == pytest.approx(16 * 35.5 * PJ, rel=1e-12)
    assert kinds["neuron_updates"] == pytest.approx(20 * 72.8 * PJ, rel=1e-12)
    assert kinds["spikes"] == pytest.approx(8 * 69.3 * PJ, rel=1e-12)
    assert kinds["messages"] == pytest.approx(8 * 111.0 * PJ, rel=1e-12)
    assert kinds["macs"] == 0 and any("MACs" in note for note in calibrated.not_priced)
    assert calibrated.dynamic_j == pytest.approx(3466.4 * PJ, rel=1e-12)
    # step time: lif1's core is the busiest, (12 updates x 9.7 ns + 8 spikes x 30 ns + 8 messages x 5.1 ns) / 4
    # steps = 99.3 ns, plus 600 ns synchronization; static = 3.34 W / 32 x 1 chip x 4 steps x 699.3 ns
    assert calibrated.time_per_step_s == pytest.approx(699.3e-9, rel=1e-12)
    assert calibrated.static_j == pytest.approx(3.34 / 32 * 4 * 699.3e-9, rel=1e-12)
    assert calibrated.chips == 1
    # the ANN: 18 MACs x 4.6 pJ + 3 ReLUs x 0.9 pJ on 45 nm
    assert calibrated.ann.macs == 18 and calibrated.ann.activations == 3
    assert calibrated.ann.energy_j == pytest.approx(85.5 * PJ, rel=1e-12)
    assert calibrated.snn_to_ann == pytest.approx(calibrated.total_j / (85.5 * PJ), rel=1e-12)
    # skipping zero pixels as the SNN does: 9 + 6 MACs
    assert calibrated.ann.macs_zero_skipping == 15
    assert calibrated.ann.energy_zero_skipping_j == pytest.approx((15 * 4.6 + 2.7) * PJ, rel=1e-12)

    arithmetic = estimate_energy(spec, counts, PROFILES["ann45nm"])  # 16 x 0.9 + 9 x 4.6 + 20 x 11.9 pJ
    assert arithmetic.dynamic_j == pytest.approx(293.8 * PJ, rel=1e-12) and arithmetic.static_j == 0

    cpu = estimate_energy(spec, counts, PROFILES["cpu"])  # (12 once + 4 x 6 + 20 updates) x 8.6 nJ; ANN (18 + 3)
    assert cpu.dynamic_j == pytest.approx(56 * 8.6e-9, rel=1e-12)
    assert cpu.ann.energy_j == pytest.approx(21 * 8.6e-9, rel=1e-12)


def test_hand_counted_energy_poisson():
    model, split = golden_model("poisson")
    counts = measure_activity(model, split)
    e = estimate_energy(model.spec, counts, PROFILES["loihi1-calibrated"])
    # SynOps (36 + 16) x 35.5 + updates 20 x 72.8 + lif1 spikes 8 x 69.3 (input spikes come from the host)
    # + messages (12 + 8) x 111 pJ
    assert e.dynamic_j == pytest.approx(6076.4 * PJ, rel=1e-12)
    davies = estimate_energy(model.spec, counts, PROFILES["loihi1"])  # 52 x 23.6 + 20 x 81 + 20 x 1.7 pJ
    assert davies.dynamic_j == pytest.approx((52 * 23.6 + 20 * 81 + 20 * 1.7) * PJ, rel=1e-12)


def test_hand_counted_core_mapping():
    model, _ = golden_model("direct")
    mapping = map_cores(model.spec, LOIHI1_CORE)
    assert mapping.total_cores == 2 and mapping.chips == 1
    lif1, readout = mapping.layers
    # nengo-loihi dense format: an axon with n <= 64 weights costs n * 8 + 10 bits, rounded up to a 64-bit word
    assert lif1.input_axons_per_core == 4 and lif1.synapse_bits_per_core == 4 * 64
    assert readout.input_axons_per_core == 3 and readout.synapse_bits_per_core == 3 * 64
    assert lif1.output_axons_per_core == 3 and lif1.binding == "neurons"
    assert LOIHI_SYNAPSE_FORMAT.bits_per_axon(3) == 64


@pytest.mark.parametrize("encoder", ["direct", "poisson"])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_energy_penalty_is_the_counted_energy(encoder, power):
    """The training penalty on binary spikes is the report's dynamic energy without the analog input's row (fixed by
    the data) and with idle updates priced as active; its spike-driven part carries the 1/p of the synaptic
    penalty, so it is that energy at p = 1 (atol=0: the joules are ~1e-9, below allclose's default absolute
    tolerance, which passed anything, p = 2 included)."""
    model, split = golden_model(encoder)
    profile = PROFILES["loihi1-calibrated"]
    counts = measure_activity(model, split)
    expected = estimate_energy(model.spec, counts, profile)
    images = split.images.float() / 255
    out = model(encode(images, model.spec, torch.Generator().manual_seed(0)))
    penalty = energy_penalty(model, profile)(out.spikes, model.fan_outs, power)
    assert penalty.shape == (5,)
    analog = sum(p.total_j for p in expected.populations if p.name == "input" and encoder == "direct")
    idle_as_active = sum(p.idle_updates for p in expected.populations) * (72.8 - 51.2) * PJ
    fixed = neuron_update_energy(model.spec, profile)
    wanted = (expected.dynamic_j - analog + idle_as_active - fixed) / power + fixed
    assert torch.allclose(penalty.double(), torch.full((5,), wanted, dtype=torch.float64), rtol=1e-6, atol=0)


def test_user_profile_without_mac_energy_prices_the_ann_on_45nm():
    from hw_models.profiles import profile_from_dict

    constant = {"value": 1e-12, "source": "a test", "kind": "measured"}
    chip = profile_from_dict({"name": "chip", "energy_per_synop_j": constant, "energy_per_neuron_update_j": constant})
    model, split = golden_model("direct")
    e = estimate_energy(model.spec, measure_activity(model, split), chip)
    assert e.ann.profile == "ann45nm" and e.ann.energy_j == pytest.approx(85.5 * PJ, rel=1e-12)
    # SynOps, the input's graded spikes (4 steps x 9) and updates at 1 pJ; no MAC or message energy
    assert e.dynamic_j == pytest.approx((16 + 36 + 20) * PJ, rel=1e-12)
    assert any("priced on ann45nm" in note for note in e.not_priced)
