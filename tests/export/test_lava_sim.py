"""The Lava runner: copies side by side and rounds back to back give exactly what one run per sample gives, fixed
point through netx equals the numpy reference, float through plain Lava processes equals the Norse model; and the
parity report counts what it says. The Lava runs are marked slow (a few seconds each)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.lava_sim import LavaRun, arrange, default_copies, replicate, simulate, simulate_one_at_a_time
from export.loihi_reference import run_reference
from export.parity import parity_report, plot_parity_raster
from export.quantization_report import reference_inputs
from export.quantize import quantize
from neuromorph.spec import EncoderSpec, cnn_spec, mlp_spec
from tests.export.conftest import firing_model

MLP = mlp_spec(input_shape=(1, 6, 6), hidden=(20, 12), num_classes=4, time_steps=8)
POISSON_CNN = cnn_spec(input_shape=(1, 12, 12), channels=(4, 6), kernel_size=3, padding=1, hidden=(10,),
                       num_classes=4, time_steps=8, encoder=EncoderSpec(kind="poisson", max_rate_hz=400.0))


def test_arrange_places_copies_side_by_side_and_pads_the_last_round():
    inputs = np.arange(3 * 5 * 2).reshape(3, 5, 2)  # [T=3, N=5, 2 features]
    arranged, rounds = arrange(inputs, copies=2, flat=True)
    assert rounds == 3 and arranged.shape == (3, 3, 4)
    np.testing.assert_array_equal(arranged[1, :, 2:], inputs[:, 3])  # round 1, copy 1 = sample 3
    np.testing.assert_array_equal(arranged[2, :, 2:], 0)  # padding
    assert default_copies(quantize(firing_model(MLP)[0]).layers, 100) == 25  # 4 even rounds of at most 32


def test_replicated_network_is_block_diagonal_and_runs_the_copies_independently():
    model, x = firing_model(POISSON_CNN, samples=6)
    qnet = quantize(model, calibration=x)
    copies = replicate(qnet, 3)
    assert [q.groups for q in copies.layers] == [3, 3, 1, 1]
    inputs = reference_inputs(qnet, x)
    arranged, _ = arrange(inputs, 3, flat=False)
    together = run_reference(copies, arranged[0][:, None])  # one round: samples 0-2 side by side
    alone = run_reference(qnet, inputs[:, :3])
    for joint, single, shape in zip(together.spikes, alone.spikes, [q.out_shape for q in qnet.layers], strict=False):
        split = joint[:, 0].reshape(joint.shape[0], 3, *shape)
        np.testing.assert_array_equal(split, single)


@pytest.mark.slow
def test_copies_and_rounds_equal_one_run_per_sample_and_the_reference(tmp_path):
    model, x = firing_model(MLP, samples=7)
    qnet = quantize(model, calibration=x)
    inputs = reference_inputs(qnet, x)
    batched = simulate(model, x, "fixed", qnet=qnet, copies=3)  # 3 rounds, the last one padded
    assert batched.copies == 3 and batched.lava_steps == 3 * (8 + qnet.delays[-1])
    reference, readout = run_reference(qnet, inputs).aligned(8)
    for mine, theirs in zip(batched.spikes, reference, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    volts = readout / (qnet.layers[-1].scale * 64)
    np.testing.assert_allclose(batched.readout_volts, volts, rtol=0, atol=1e-12)
    single = simulate_one_at_a_time(qnet, inputs[:, 4:6], tmp_path)  # round 1 copy 1, round 2 copy 0
    for mine, theirs in zip(batched.spikes, single.spikes, strict=True):
        np.testing.assert_array_equal(mine[:, 4:6], theirs)
    assert sum(int(s.sum()) for s in single.spikes) > 0


@pytest.mark.slow
def test_fixed_point_convolutions_as_grouped_copies_equal_the_reference():
    model, x = firing_model(POISSON_CNN, samples=5)
    qnet = quantize(model, calibration=x)
    run = simulate(model, x, "fixed", qnet=qnet, copies=3)
    reference, _ = run_reference(qnet, reference_inputs(qnet, x)).aligned(8)
    for mine, theirs in zip(run.spikes, reference, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert not run.readout_spikes.any()


@pytest.mark.slow
@pytest.mark.parametrize("spec", [MLP, POISSON_CNN], ids=["mlp-direct", "cnn-poisson"])
def test_float_lava_processes_agree_with_the_model_on_every_spike_bin(spec, tmp_path):
    model, x = firing_model(spec, samples=5)
    run = simulate(model, x, "float", copies=2)
    report = parity_report(model, x, torch.arange(5) % 4, run, profiles=["loihi1"])
    assert [layer.agreement for layer in report.layers] == [1.0] * len(report.layers)
    assert all(layer.model_spikes > 0 for layer in report.layers)
    assert report.prediction_agreement == 1.0 and report.readout_max_abs_error_volts < 1e-5
    energy = report.energy[0]
    assert energy["lava_total_j"] == pytest.approx(energy["model_total_j"], rel=1e-12)
    assert plot_parity_raster(model, x, run, tmp_path / "raster.png").stat().st_size > 1000


def test_parity_report_counts_disagreement():
    model, x = firing_model(MLP, samples=4)
    with torch.no_grad():
        out = model(x)
    spikes = [s.numpy() > 0 for s in out.spikes]
    flipped = [s.copy() for s in spikes]
    flipped[0][0, 0, :3] = ~flipped[0][0, 0, :3]
    flipped[1][:] = False
    run = LavaRun(precision="fixed", spikes=flipped, readout_volts=out.voltages.double().numpy(),
                  readout_spikes=np.zeros((8, 4, 4), bool), copies=1, lava_steps=40, compile_s=1.0, run_s=1.0)
    report = parity_report(model, x, out.logits.argmax(1), run, profiles=["loihi1"])
    assert report.layers[0].bins - report.layers[0].agree == 3
    assert report.differing_samples == [0, 1, 2, 3]  # layer 2 silenced in every sample
    assert report.layers[1].lava_spikes == 0 and report.layers[1].count_ratio == 0
    assert report.model_accuracy == 1.0 and report.lava_accuracy == 1.0 and not report.identical
    assert report.energy[0]["lava_synops"] < report.energy[0]["model_synops"]
    text = report.format()
    assert "spike bins" in text and "samples/s" in text
    assert report.to_dict()["layers"][0]["agree"] == report.layers[0].agree


def test_runner_parity_and_command_modules_import_no_lava():
    import subprocess
    import sys

    modules = ["export.lava_sim", "export.parity", "export.simulate_command", "export.loihi_exact"]
    code = (f"import sys, importlib; [importlib.import_module(m) for m in {modules!r}]; "
            "from neuromorph.cli import _build_parser; _build_parser(); "
            "sys.exit(1 if any(m == 'lava' or m.startswith('lava.') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_lava_loads_after_a_progress_bar_fixed_the_start_method():
    import subprocess
    import sys

    code = ("from tqdm.auto import tqdm; [None for _ in tqdm(range(2), disable=False)]; "
            "import multiprocessing; assert multiprocessing.get_start_method(allow_none=True) == 'fork'; "
            "from export.lava_sim import load_lava; load_lava(); import lava.magma.runtime.runtime")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
