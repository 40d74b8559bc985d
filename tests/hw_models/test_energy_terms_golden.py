"""Golden tests, by hand, for the terms issue 15 added: idle neuron updates, mesh hops, the input's delivery, and
the time per step from per-core work. The network is test_energy_golden's (a 2x2 image [1, 0, 1, 1] -> Dense(3) ->
LIF -> Dense(2) -> LI readout, T = 4; lif1 neurons 0 and 1 spike on every step, neuron 2 never), unless a test
says otherwise.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hw_models.activity import measure_activity
from hw_models.energy import estimate_energy
from hw_models.loihi import LOIHI1_CORE, LoihiMesh
from hw_models.mapping import map_cores
from hw_models.profiles import PROFILES
from neuromorph.errors import NeuromorphError
from neuromorph.models import build_model
from neuromorph.spec import Dense, FixedPointSpec, ModelSpec, NeuronSpec
from tests.hw_models.test_energy_golden import golden_model

PJ = 1e-12
NS = 1e-9


def hand_network(cell: str, fixed_point: bool = False):
    """3 inputs -> identity Dense(3) -> LIF -> Dense(1) (weight 1 from neuron 1) -> readout, T = 4.

    The encoded input is given step by step: neuron 0 gets nothing, neuron 1 gets 20 at step 0 only, neuron 2 gets
    5 at step 0 only."""
    spec = ModelSpec(input_shape=(3,), layers=(Dense(3), Dense(1)), num_classes=1, time_steps=4,
                     neuron=NeuronSpec(cell=cell))
    model = build_model(spec)
    with torch.no_grad():
        model.blocks[0].synapse.weight.copy_(torch.eye(3))
        model.blocks[1].synapse.weight.copy_(torch.tensor([[0.0, 1.0, 0.0]]))
    if fixed_point:
        exact = build_model(dataclasses.replace(spec, fixed_point=FixedPointSpec(readout_volts=1.0)))
        exact.load_state_dict(model.state_dict())
        model = exact
    x = torch.zeros(4, 1, 3)
    x[0, 0, 1], x[0, 0, 2] = 20.0, 5.0
    return model, x


@pytest.mark.parametrize("fixed_point", [False, True])
def test_idle_steps_by_hand(fixed_point):
    """lifbox (no current state, v_reset = v_leak): neuron 0 idle on all 4 steps; neuron 1 spikes at step 0
    (v' = 0.1 x 20 = 2 > 1), is reset to rest and is idle on the 3 steps after; neuron 2 is left at v = 0.5 and
    decays: active throughout. lif: neuron 1 keeps a decaying current (i = 0.8 x 20) after its spike: active.
    The readout gets neuron 1's spike at step 0 and then decays: active throughout. Loihi fixed point keeps the
    current u as state even for lifbox (iDecay 4096 clears it one step later): neuron 1's u falls from a_in << 6
    to 0 at step 1 (active), and only steps 2 and 3 are idle."""
    for cell, lif1 in (("lifbox", [4, 2, 0] if fixed_point else [4, 3, 0]), ("lif", [4, 0, 0])):
        model, x = hand_network(cell, fixed_point)
        with torch.no_grad():
            out = model(x)
            idle = model.idle_steps(x, out)
        assert idle[0].tolist() == lif1, cell
        assert idle[1].tolist() == [0]


def test_idle_updates_priced_apart():
    """lif1 neuron 2 with zero weights: no input, at rest, idle on all 4 steps. Loihi 1: lif1 8 active x 81 pJ +
    4 idle x 52 pJ; calibrated: 8 x 72.8 + 4 x 51.2 pJ. The readout has input every step: 8 active."""
    model, split = golden_model("direct")
    with torch.no_grad():
        model.blocks[0].synapse.weight[2] = 0
    counts = measure_activity(model, split, batch_size=2)
    lif1 = counts.population("lif1")
    assert counts.idle_counted and lif1.idle_updates == 4 and lif1.active_updates == 8
    assert counts.population("readout").idle_updates == 0
    for name, active, idle in (("loihi1", 81.0, 52.0), ("loihi1-calibrated", 72.8, 51.2)):
        row = {p.name: p for p in estimate_energy(model.spec, counts, PROFILES[name]).populations}["lif1"]
        assert row.neuron_updates_j == pytest.approx(8 * active * PJ, rel=1e-12)
        assert row.idle_updates_j == pytest.approx(4 * idle * PJ, rel=1e-12)
    # a profile without an idle cost prices idle updates as active, and says so
    no_idle = dataclasses.replace(PROFILES["loihi1"], name="no-idle", energy_per_idle_neuron_update_j=None)
    e = estimate_energy(model.spec, counts, no_idle)
    assert {p.name: p for p in e.populations}["lif1"].idle_updates_j == pytest.approx(4 * 81 * PJ, rel=1e-12)
    assert any("idle neuron updates are priced as active" in note for note in e.not_priced)
    assert not any("idle" in note for note in estimate_energy(model.spec, counts, PROFILES["loihi1"]).not_priced)


def test_hops_by_hand():
    """One neuron a core, one core a tile, tiles 4 x 2: lif1 on cores 0-2 at (0,0), (1,0), (2,0), the readout on
    cores 3, 4 at (3,0), (0,1). Neuron 0's spike goes to (3,0): 3 east-west hops, and (0,1): 1 north-south; neuron
    1's: 2 + 1 east-west, 1 north-south. 8 spikes: 24 east-west, 8 north-south hops. The host's graded pixels enter
    at (0,0) and go to x = 0, 1, 2: 3 east-west hops each, 3 pixels x 4 steps: 36."""
    mesh = LoihiMesh(cores_per_tile=1, width=4, height=2, source="a test mesh")
    limits = dataclasses.replace(LOIHI1_CORE, name="tiny", neurons_per_core=1, cores_per_chip=8, mesh=mesh)
    model, split = golden_model("direct")
    mapping = map_cores(model.spec, limits)
    assert [row["first_tile"] for row in mapping.placement()] == [(0, 0, 0), (0, 3, 0)]
    assert mapping.placement()[1]["last_tile"] == (0, 0, 1)
    counts = measure_activity(model, split)
    for name, east_west, north_south in (("loihi1", 3.0, 4.0), ("loihi1-calibrated", 3.0, 4.2)):
        e = estimate_energy(model.spec, counts, PROFILES[name], mapping)
        rows = {p.name: p for p in e.populations}
        assert (rows["lif1"].hops_east_west, rows["lif1"].hops_north_south) == (24, 8)
        assert (rows["input"].hops_east_west, rows["input"].hops_north_south) == (36, 0)
        assert rows["lif1"].messages == 16 and rows["input"].messages == 36
        assert rows["lif1"].hops_j == pytest.approx((24 * east_west + 8 * north_south) * PJ, rel=1e-12)
        assert rows["input"].hops_j == pytest.approx(36 * east_west * PJ, rel=1e-12)
        assert e.by_kind()["hops"] == pytest.approx((60 * east_west + 8 * north_south) * PJ, rel=1e-12)
        assert e.static_cores_j == pytest.approx(e.static_chip_j * 5 / 8, rel=1e-12)
        assert not any("hops" in note or "chip-to-chip" in note for note in e.not_priced)
    # 4 cores a chip: the readout's second core (4) is on chip 1, so neuron 0 and 1 send 1 message each off the chip
    small = dataclasses.replace(limits, cores_per_chip=4, mesh=LoihiMesh(1, 2, 2, "a 2 x 2 test mesh"))
    e = estimate_energy(model.spec, counts, PROFILES["loihi1"], map_cores(model.spec, small))
    assert {p.name: p for p in e.populations}["lif1"].off_chip_messages == 8
    assert any("chip-to-chip links: 8 messages" in note for note in e.not_priced)


def test_hops_are_zero_within_a_tile():
    """Loihi 1's 4 cores a tile: the golden network's 2 cores share tile (0, 0)."""
    model, split = golden_model("poisson")
    e = estimate_energy(model.spec, measure_activity(model, split), PROFILES["loihi1"])
    assert e.by_kind()["hops"] == 0 and e.cores == 2


def test_input_delivery_encoder_by_hand():
    """An encoding layer of 4 compartments on core 0 (lif1 on 1, the readout on 2, all on tile (0,0)): the 3
    non-zero pixels are active and spike on each of 4 steps (12), the zero pixel is idle (4); each spike is one
    message to lif1's core and drives 3 synapses (36 ops). Calibrated: 36 x 35.5 + 12 x 72.8 + 4 x 51.2
    + 12 x 69.3 + 12 x 111 = 4520.0 pJ."""
    model, split = golden_model("direct")
    counts = measure_activity(model, split)
    e = estimate_energy(model.spec, counts, PROFILES["loihi1-calibrated"], input_delivery="encoder")
    row = {p.name: p for p in e.populations}["input"]
    assert e.input_delivery == "encoder" and e.cores == 3
    assert (row.active_updates, row.idle_updates, row.messages) == (12, 4, 12)
    assert row.synops_j == pytest.approx(36 * 35.5 * PJ, rel=1e-12)
    assert row.spikes_j == pytest.approx(12 * 69.3 * PJ, rel=1e-12)
    assert row.total_j == pytest.approx(4520.0 * PJ, rel=1e-12)
    assert e.static_cores_j == pytest.approx(e.static_chip_j * 3 / 128, rel=1e-12)
    graded = estimate_energy(model.spec, counts, PROFILES["loihi1-calibrated"], input_delivery="host-graded")
    assert graded.cores == 2 and {p.name: p for p in graded.populations}["input"].total_j == pytest.approx(
        (36 * 35.5 + 12 * 111) * PJ, rel=1e-12)
    with pytest.raises(NeuromorphError, match="input_delivery must be one of host-graded, encoder, none"):
        estimate_energy(model.spec, counts, PROFILES["loihi1"], input_delivery="bogus")


def test_time_per_step_from_per_core_work_by_hand():
    """Loihi 1 (Davies): lif1's core does 36 graded-input ops x 3.5 ns + 12 active updates x 8.4 ns + 8 messages
    x 2.1 ns = 243.6 ns a sample, 60.9 ns a step; the readout's 16 x 3.5 + 8 x 8.4 = 123.2 ns, 30.8 a step. The
    busiest core plus the 600 ns barrier: 660.9 ns. With lif1 neuron 2 idle (zero weights): 8 x 8.4 + 4 x 5.3
    instead of 12 x 8.4: 657.8 ns."""
    model, split = golden_model("direct")
    e = estimate_energy(model.spec, measure_activity(model, split), PROFILES["loihi1"])
    assert e.time_per_step_s == pytest.approx(660.9 * NS, rel=1e-12)
    assert e.busiest_core.layer == "lif1" and e.busiest_core.synops == 9 and "per-core work" in e.time_per_step_how
    assert e.static_j == pytest.approx(3.34 / 32 * 4 * 660.9 * NS, rel=1e-12)
    with torch.no_grad():
        model.blocks[0].synapse.weight[2] = 0
    idle = estimate_energy(model.spec, measure_activity(model, split), PROFILES["loihi1"])
    assert idle.time_per_step_s == pytest.approx(657.8 * NS, rel=1e-12)
    assert idle.busiest_core.idle_updates == 1 and idle.busiest_core.active_updates == 2
