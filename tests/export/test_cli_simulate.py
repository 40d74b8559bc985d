"""`neuromorph simulate` for real: train -> export -> simulate on a tiny network, and one-line user errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from export.quantize import quantize
from neuromorph.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from neuromorph.models import build_model
from neuromorph.spec import mlp_spec
from tests.export.test_cli_export import data_root, make_checkpoint  # noqa: F401 - data_root is a fixture
from tests.neuromorph.test_cli import assert_one_line_error, run_cli


@pytest.mark.slow
def test_train_loihi_exact_export_simulate_agree_exactly(tmp_path, data_root):  # noqa: F811
    run = tmp_path / "run"
    common = ["--dataset", "cifar10", "--data-root", str(data_root)]
    trained = run_cli("train", *common, "--hidden", "16", "-T", "4", "--epochs", "1", "--batch-size", "8",
                      "--penalty", "none", "--loihi-exact", "--out", str(run), "--quiet")
    assert trained.returncode == 0, trained.stderr
    ckpt = load_checkpoint(run)
    assert ckpt.spec.fixed_point is not None and ckpt.train_config["loihi_exact"]

    exported = run_cli("export", str(run), "--format", "netx", "--out", str(tmp_path / "model.net"), *common,
                       "--samples", "8")
    assert exported.returncode == 0, exported.stderr
    qnet = quantize(ckpt.build_model())  # what simulate runs: the exported file, layer for layer
    with h5py.File(tmp_path / "model.net", "r") as handle:
        np.testing.assert_array_equal(handle["layer/1/weight"][()], qnet.layers[1].weight)
        assert int(handle["layer/0/neuron/vThMant"][()]) == qnet.layers[0].v_th_mant
        assert json.loads(handle["neuromorph"].attrs["scales"]) == [q.scale for q in qnet.layers]

    out = tmp_path / "parity"
    simulated = run_cli("simulate", str(run), *common, "--samples", "8", "--precision", "fixed", "--copies", "3",
                        "--batch", "5", "--out", str(out), "--json")
    assert simulated.returncode == 0, simulated.stderr
    report = json.loads(simulated.stdout)
    assert report["model_arithmetic"].startswith("loihi fixed point") and report["samples"] == 8
    assert report["identical"] and report["spike_agreement"] == 1.0 and report["prediction_agreement"] == 1.0
    assert report["layers"][0]["model_spikes"] > 0
    assert report["lava_accuracy"] == report["model_accuracy"]
    assert report["timing"]["samples_per_second"] > 0 and report["timing"]["copies"] == 3
    assert {e["profile"] for e in report["energy"]} == {"loihi1", "loihi1-calibrated"}
    assert json.loads((out / "parity.json").read_text()) == report
    assert (out / "parity_raster.png").stat().st_size > 1000


@pytest.mark.slow
def test_simulate_float_table_and_progress(tmp_path, data_root):  # noqa: F811
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    result = run_cli("simulate", str(ckpt), "--data-root", str(data_root), "--samples", "6", "--precision", "float",
                     "--device-profile", "loihi1")
    assert result.returncode == 0, result.stderr
    assert "100.0000%" in result.stdout and "samples/s" in result.stdout and "Lava float" in result.stderr


def test_simulate_user_errors_are_one_line(tmp_path, data_root):  # noqa: F811
    assert_one_line_error(run_cli("simulate", str(tmp_path / "missing.pt")), 1, "does not exist")
    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    assert_one_line_error(run_cli("simulate", str(ckpt), "--precision", "double"), 2, "invalid choice")
    assert_one_line_error(run_cli("simulate", str(ckpt), "--samples", "0"), 2, "positive")
    assert_one_line_error(run_cli("simulate", str(ckpt), "--device-profile", "toaster"), 1, "toaster")
    spec = mlp_spec(input_shape=(1, 28, 28), hidden=(8,), num_classes=10, time_steps=4)
    mnist_shaped = tmp_path / "mnist.pt"
    save_checkpoint(mnist_shaped, Checkpoint(spec=spec, model_state=build_model(spec).state_dict(),
                                             train_config={"dataset": "cifar10"}))
    assert_one_line_error(run_cli("simulate", str(mnist_shaped), "--data-root", str(data_root)), 1,
                          "the model takes (1, 28, 28)")
