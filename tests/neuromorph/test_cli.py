"""Every CLI command runs for real on tiny data; user errors end in one line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neuromorph.data import shared_data_root
from tests.helpers import write_cifar_batches

needs_shared = pytest.mark.skipif(shared_data_root() is None, reason="../shared/datasets is not present")
TINY = ["--train-limit", "256", "--test-limit", "128", "--time-steps", "4", "--batch-size", "64", "--quiet"]


def run_cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "neuromorph", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0] and fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


@needs_shared
def test_train_evaluate_info_on_mnist(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", "mnist", "--model", "mlp", "--hidden", "32", "--penalty", "synaptic",
                     "--lam", "1e-5", "--epochs", "1", *TINY, "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout)
    assert final["epoch"] == 1 and 0.0 <= final["test_accuracy"] <= 1.0 and final["synops_per_sample"] > 0
    assert (out / "checkpoint.pt").is_file() and (out / "metrics.json").is_file()
    resumed = run_cli("train", "--epochs", "2", *TINY, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "metrics.json").read_text())["epochs_done"] == 2
    evaluated = run_cli("evaluate", str(out), "--limit", "64", "--json", "--raster", str(out / "raster.png"))
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["samples"] == 64
    for plot in ("raster.png", "training.png"):
        assert (out / plot).read_bytes()[:4] == b"\x89PNG"
    info = run_cli("info", str(out / "checkpoint.pt"))
    assert info.returncode == 0 and "Dense(out_features=32" in info.stdout and "history" in info.stdout


@needs_shared
def test_train_cnn_on_fashion_mnist(tmp_path):
    result = run_cli("train", "--dataset", "fashion-mnist", "--model", "cnn", "--channels", "4,8", "--cell",
                     "lifbox", "--epochs", "1", "--lam", "1e-7", *TINY, "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "test acc" in result.stdout and "lif2" not in result.stderr


def test_train_on_synthetic_cifar10(tmp_path):
    write_cifar_batches(tmp_path / "data" / "cifar-10-batches-py", per_batch=16)
    result = run_cli("train", "--dataset", "cifar10", "--data-root", str(tmp_path / "data"), "--model", "cnn",
                     "--channels", "4", "--epochs", "1", *TINY, "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr


def test_help_explains():
    result = run_cli("train", "--help")
    assert result.returncode == 0
    for flag in ("--penalty", "--lam", "--power", "--data-root", "--train-limit", "--resume", "--seed"):
        assert flag in result.stdout


@pytest.mark.parametrize("args, code, fragment", [
    (["train", "--out", "x", "--bogus"], 2, "unrecognized arguments"),
    (["train", "--out", "x", "--penalty", "l1"], 2, "invalid choice"),
    (["train", "--out", "x", "--epochs", "-3"], 2, "positive"),
    (["train"], 2, "--out"),
    (["frobnicate"], 2, "invalid choice"),
])
def test_bad_flags(args, code, fragment):
    assert_one_line_error(run_cli(*args), code, fragment)


def test_missing_data_root(tmp_path):
    result = run_cli("train", "--data-root", str(tmp_path / "missing"), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, 1, "does not exist")
    assert not (tmp_path / "run").exists()


def test_corrupt_and_missing_checkpoints(tmp_path):
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 not really a zip")
    (tmp_path / "text.pt").write_text("weights")
    assert_one_line_error(run_cli("evaluate", str(tmp_path / "corrupt.pt")), 1, "corrupt")
    assert_one_line_error(run_cli("info", str(tmp_path / "text.pt")), 1, "not a neuromorph checkpoint")
    assert_one_line_error(run_cli("info", str(tmp_path / "none.pt")), 1, "does not exist")


def _subcommands() -> dict:
    import argparse

    from neuromorph.cli import _build_parser

    parser = _build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {"": parser, **action.choices}


def test_every_help_states_each_default_once(capsys):
    """No flag's help says "(default: None)", none states its default twice (ArgumentDefaultsHelpFormatter adds one
    to help that has its own)."""
    import re

    from neuromorph.cli import main

    commands = _subcommands()
    assert {"train", "evaluate", "info", "energy", "export", "import-nir", "simulate"} <= set(commands)
    for name, parser in commands.items():
        with pytest.raises(SystemExit) as exited:
            main([name, "--help"] if name else ["--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert exited.value.code == 0 and text.startswith(f"usage: neuromorph {name}".rstrip()), name
        assert "(default: None)" not in text and "(default: False)" not in text, name
        formatter = parser._get_formatter()
        for action in parser._actions:
            if action.help:
                stated = formatter._expand_help(action)
                assert len(re.findall(r"\(default", stated)) <= 1, (name, action.dest, stated)
                assert "(default: None)" not in stated, (name, action.dest)


def test_export_help_says_what_norse_reads():
    text = _subcommands()["export"].description
    assert "by Norse" not in text
    assert "re-importable here" in text and "sum-pool CNNs" in text and "not avg-pool" in text


def test_train_flag_defaults_are_the_dataclass_defaults():
    """One source for every default: each train flag defaults to the field (or builder parameter) it sets."""
    import inspect
    from dataclasses import fields

    from neuromorph.cli import _build_parser
    from neuromorph.spec import Conv, EncoderSpec, NeuronSpec, ReadoutSpec, cnn_spec, mlp_spec
    from neuromorph.training import TrainConfig

    args = vars(_build_parser().parse_args(["train", "--out", "x"]))
    config, neuron, readout, encoder, model = TrainConfig(), NeuronSpec(), ReadoutSpec(), EncoderSpec(), mlp_spec()
    cnn = {name: p.default for name, p in inspect.signature(cnn_spec).parameters.items()}
    expected = {f.name: getattr(config, f.name) for f in fields(TrainConfig) if f.name != "imported_from"}
    expected.update(cell=neuron.cell, tau_mem_inv=neuron.tau_mem_inv, tau_syn_inv=neuron.tau_syn_inv,
                    v_th=neuron.v_th, surrogate=neuron.surrogate, alpha=neuron.alpha,
                    readout=readout.reduce, encoder=encoder.kind, gain=encoder.gain,
                    max_rate=encoder.max_rate_hz, time_steps=model.time_steps, dt=model.dt_s,
                    channels=cnn["channels"], kernel=cnn["kernel_size"], padding=cnn["padding"], pool=cnn["pool"],
                    pool_mode=cnn["pool_mode"], batch_norm=Conv(1, 1).batch_norm)
    cli_only = {"command", "handler", "model", "hidden", "out", "resume", "quiet", "json", "threads", "preset"}
    assert set(args) == set(expected) | cli_only  # a new flag needs its default's source here
    for dest, value in expected.items():
        assert args[dest] == value, dest
    assert args["hidden"] is None  # the builder's own default: mlp 400, cnn none
    assert inspect.signature(mlp_spec).parameters["hidden"].default == (400,)
    assert readout.tau_mem_inv == neuron.tau_mem_inv and readout.tau_syn_inv == neuron.tau_syn_inv
    assert config.penalty == "synaptic"  # as the CLI always trained; with lam = 0 it changes nothing


def test_closed_stdout_exits_141_without_traceback(tmp_path):
    """`neuromorph info RUN | head -1`: the reader goes away; exit 141 (128 + SIGPIPE) and nothing on stderr."""
    import os

    import torch

    from neuromorph.checkpoint import Checkpoint, save_checkpoint
    from neuromorph.models import build_model
    from neuromorph.spec import mlp_spec

    torch.manual_seed(0)
    spec = mlp_spec(hidden=tuple(range(8, 400, 8)), time_steps=4)  # a long table: more than a pipe's buffer
    save_checkpoint(tmp_path / "checkpoint.pt", Checkpoint(spec, build_model(spec).state_dict()))
    for args in (["info", str(tmp_path)], ["info", str(tmp_path), "--json"], ["train", "--help"]):
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the command prints anything
        try:
            result = subprocess.run([sys.executable, "-m", "neuromorph", *args], stdout=write,
                                    stderr=subprocess.PIPE, text=True, timeout=300)
        finally:
            os.close(write)
        # argparse itself ignores a failed write of --help (exit 0); a command's report exits 141
        assert result.returncode == (0 if "--help" in args else 141), (args, result.stderr)
        assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr
    head = subprocess.run(f"{sys.executable} -m neuromorph info {tmp_path} | head -1", shell=True,
                          capture_output=True, text=True, timeout=300)
    assert head.stdout.startswith("mlp: input") and "Traceback" not in head.stderr, head.stderr


def test_command_modules_do_not_import_the_cli():
    """The command modules take their plumbing from neuromorph.command_line, not back from neuromorph.cli."""
    code = ("import sys, argparse\n"
            "import hw_models.energy_command, export.cli, export.simulate_command\n"
            "sub = argparse.ArgumentParser().add_subparsers()\n"
            "for m in (hw_models.energy_command, export.cli, export.simulate_command): m.add_parser(sub)\n"
            "print('neuromorph.cli' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr


def test_info_names_each_layers_block(tmp_path, tiny_cnn_spec):
    """Every layer belongs to a block, shown by its population's one name; a pooling layer belongs to the block whose
    synapses read the pooled spikes."""
    from neuromorph.checkpoint import Checkpoint, save_checkpoint
    from neuromorph.models import build_model

    save_checkpoint(tmp_path / "checkpoint.pt", Checkpoint(tiny_cnn_spec, build_model(tiny_cnn_spec).state_dict()))
    result = run_cli("info", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [row[-1] for row in rows] == ["lif1", "lif2", "lif2", "lif3", "lif3", "lif3", "readout"]
