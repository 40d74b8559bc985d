"""Bad input ends in one clear error, never a traceback or a run on altered weights: issue 13's regression tests, one
or more for each of its nine kinds of malformed input, and corruption of checkpoints and NIR files."""

from __future__ import annotations

import math
import zipfile

import numpy as np
import pytest
import torch

from neuromorph.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from neuromorph.errors import NeuromorphError
from neuromorph.io import atomic_write
from neuromorph.models import build_model
from neuromorph.spec import ModelSpec


def _checkpoint(spec, tmp_path):
    torch.manual_seed(0)
    model = build_model(spec)
    return save_checkpoint(tmp_path / "checkpoint.pt", Checkpoint(spec=spec, model_state=model.state_dict()))


def _weight_spans(path):
    """(start, length) in the file of every stored tensor's bytes."""
    spans = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if "/data/" in info.filename and info.file_size:
                with open(path, "rb") as handle:
                    handle.seek(info.header_offset + 26)
                    name_len, extra_len = (int.from_bytes(handle.read(2), "little") for _ in range(2))
                spans.append((info.header_offset + 30 + name_len + extra_len, info.file_size))
    return spans


def test_a_flipped_byte_anywhere_in_the_weights_is_refused(tiny_mlp_spec, tmp_path):
    path = _checkpoint(tiny_mlp_spec, tmp_path)
    original = path.read_bytes()
    spans = _weight_spans(path)
    assert spans, "the archive must hold the weights' bytes"
    offsets = [start + fraction * (length - 1) // 4 for start, length in spans for fraction in range(5)]
    for offset in offsets:
        corrupted = bytearray(original)
        corrupted[offset] ^= 0x01
        path.write_bytes(bytes(corrupted))
        with pytest.raises(NeuromorphError) as error:
            load_checkpoint(path)
        message = str(error.value)
        assert "\n" not in message and "corrupt" in message, message
    path.write_bytes(original)
    load_checkpoint(path)  # the untouched file still loads


@pytest.mark.parametrize(("field_name", "value", "expected"), [
    ("format_version", "1", "format_version"),
    ("epoch", "3", "epoch"),
    ("epoch", math.nan, "epoch"),
    ("history", {"loss": 1.0}, "history"),
    ("history", [1, 2], "history"),
    ("model_state", [1, 2], "model_state"),
    ("train_config", [1], "train_config"),
])
def test_checkpoint_fields_of_the_wrong_type_are_one_line(tiny_mlp_spec, tmp_path, field_name, value, expected):
    path = _checkpoint(tiny_mlp_spec, tmp_path)
    payload = torch.load(path, weights_only=True)
    payload[field_name] = value
    torch.save(payload, path)
    with pytest.raises(NeuromorphError, match=expected) as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("missing", ["spec", "model_state"])
def test_a_checkpoint_without_its_spec_or_weights_is_refused(tiny_mlp_spec, tmp_path, missing):
    path = _checkpoint(tiny_mlp_spec, tmp_path)
    payload = torch.load(path, weights_only=True)
    del payload[missing]
    torch.save(payload, path)
    with pytest.raises(NeuromorphError, match=missing):
        load_checkpoint(path)


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda d: d["layers"][-1].update(out_features=10.0), "out_features"),
    (lambda d: d["layers"][-1].update(out_features=True), "out_features"),
    (lambda d: d["layers"][-1].update(out_features=math.inf), "out_features"),
    (lambda d: d.update(input_shape=[1.5, 8, 8]), "input_shape"),
    (lambda d: d["neuron"].update(surrogate="no-such-surrogate"), "surrogate"),
])
def test_model_descriptions_are_checked_not_coerced(tiny_mlp_spec, edit, expected):
    description = tiny_mlp_spec.to_dict()
    edit(description)
    with pytest.raises(NeuromorphError, match=expected) as error:
        ModelSpec.from_dict(description)
    assert "\n" not in str(error.value)


def test_conv_padding_nan_and_fractional_kernels_are_refused(tiny_cnn_spec):
    for key, value in (("padding", math.nan), ("padding", True), ("kernel_size", 2.5)):
        description = tiny_cnn_spec.to_dict()
        conv = next(layer for layer in description["layers"] if layer["type"] == "conv")
        conv[key] = value
        with pytest.raises(NeuromorphError, match=key):
            ModelSpec.from_dict(description)


@pytest.mark.parametrize("target", ["", "a-directory", "a-file/inside"])
def test_write_paths_fail_cleanly_and_leave_nothing(tmp_path, target):
    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("x")
    before = sorted(p.name for p in tmp_path.rglob("*"))
    path = "" if target == "" else tmp_path / target
    with pytest.raises(NeuromorphError) as error:
        atomic_write(path, lambda handle: handle.write(b"data"))
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("flags", [["--seed", str(2**64)], ["--seed", "-1"], ["--device", "mps"],
                                   ["--device", "meta"], ["--device", "cuda:7"]])
def test_bad_seed_and_device_flags_are_one_line(flags, tmp_path, capsys):
    from neuromorph.cli import main

    code = main(["train", "--out", str(tmp_path / "run"), "--epochs", "1", *flags])
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_a_valid_profile_that_prices_its_own_ann_gets_its_report(tmp_path):
    """A user profile on a clock-driven base (no ann_reference: its ANN is priced on itself) used to end in a
    KeyError in the energy report."""
    from hw_models.energy_report import energy_report
    from neuromorph.spec import mlp_spec
    from tests.helpers import synthetic_split

    (tmp_path / "mine.toml").write_text('name = "my-cpu"\nbase = "cpu"\n')
    model = build_model(mlp_spec(input_shape=(1, 8, 8), hidden=(8,), num_classes=4, time_steps=3))
    report = energy_report(model, profiles=[str(tmp_path / "mine.toml")], split=synthetic_split(8))
    assert report.estimates[0].ann.profile == "my-cpu" and "my-cpu" in report.profiles


def test_a_closed_pipe_on_stdout_ends_quietly(tiny_mlp_spec, tmp_path, monkeypatch, capsys):
    """`neuromorph info RUN | head -1`: the reader goes away early; no BrokenPipeError traceback, the usual exit
    code of a closed pipe. The pipe is made to close on the first write, so the test does not race the reader."""
    import io

    from neuromorph import cli

    class ClosedPipe(io.TextIOBase):
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            raise io.UnsupportedOperation("no file descriptor")

    path = _checkpoint(tiny_mlp_spec, tmp_path)
    monkeypatch.setattr("sys.stdout", ClosedPipe())
    code = cli.main(["info", str(path)])
    monkeypatch.undo()
    assert code == cli.EXIT_BROKEN_PIPE != 0
    assert "Traceback" not in capsys.readouterr().err


# --- Kind 3: evaluate checks the data against the model --------------------------------------------------------------

def test_a_flat_input_graph_imported_without_its_dataset_evaluates(tmp_path, capsys):
    """A 784-input NIR graph without metadata (as other tools write MLPs) imported with no --dataset: evaluate
    flattens the 28x28 images for it, and refuses data of another size with one line."""
    import nir

    from export.nir_export import to_nir
    from neuromorph.cli import main
    from neuromorph.spec import Dense, ModelSpec
    from tests.test_fuzz import write_mnist_layout

    write_mnist_layout(tmp_path / "data")
    spec = ModelSpec(input_shape=(784,), layers=(Dense(8), Dense(10)), num_classes=10, time_steps=3)
    graph = to_nir(build_model(spec))
    graph.metadata = {}
    nir.write(tmp_path / "flat.nir", graph)
    assert main(["import-nir", str(tmp_path / "flat.nir"), "--dt", "0.001", "--out", str(tmp_path / "run")]) == 0
    root = ["--data-root", str(tmp_path / "data"), "--limit", "4", "--quiet"]
    assert main(["evaluate", str(tmp_path / "run"), *root]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "run"), "--dataset", "cifar10", *root]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err


# --- Kind 4: NIR files with strings, typed metadata, embedded descriptions, bias sizes ------------------------------

def _nir_file(tmp_path, edit):
    import nir

    from export.nir_export import write_nir
    from neuromorph.spec import mlp_spec

    torch.manual_seed(0)
    path = write_nir(build_model(mlp_spec(input_shape=(1, 8, 8), hidden=(6,), num_classes=4, time_steps=3)),
                     tmp_path / "graph.nir")
    graph = nir.read(path)
    edit(graph)
    nir.write(path, graph)
    return path


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda g: setattr(g.nodes["linear1"], "weight", np.full((6, 64), b"a")), "weight must hold numbers"),
    (lambda g: setattr(g.nodes["lif1"], "tau_mem", np.array([b"x"] * 6)), "tau_mem must hold numbers"),
    (lambda g: g.metadata.update(dt_s="fast"), "dt_s must be a positive finite number"),
    (lambda g: g.metadata.update(dt_s=np.array([1e-3, 2e-3])), "dt_s must be a positive finite number"),
    (lambda g: g.metadata.update(time_steps="many"), "time_steps must be a positive integer"),
    (lambda g: g.metadata.update(neuromorph_spec="[1, 2]"), "neuromorph_spec must be a JSON object"),
    (lambda g: g.metadata.update(neuromorph_spec="3"), "neuromorph_spec must be a JSON object"),
    (lambda g: g.metadata.update(neuromorph_spec='{"neuron": 3}'), "neuromorph_spec: invalid model description"),
    (lambda g: g.nodes.update(linear1=__import__("nir").Affine(weight=g.nodes["linear1"].weight,
                                                               bias=np.ones(3, np.float32))), "bias has shape"),
    (lambda g: setattr(g.nodes["flatten1"], "end_dim", np.zeros(0)), "end_dim must be a whole number"),
])
def test_malformed_nir_files_are_one_line(tmp_path, capsys, edit, expected):
    from export.nir_checks import CHECKSUM_KEY
    from neuromorph.cli import main

    def without_checksum(graph):  # a foreign writer's file: no checksum to catch the edit first
        edit(graph)
        graph.metadata.pop(CHECKSUM_KEY, None)

    path = _nir_file(tmp_path, without_checksum)
    code = main(["import-nir", str(path), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and expected in err, err
    assert not (tmp_path / "run").exists()


def test_a_changed_weight_in_an_exported_nir_file_is_refused(tmp_path):
    from export.nir_import import load_nir

    def flip(graph):
        graph.nodes["linear1"].weight[0, 0] += 1e-3

    with pytest.raises(NeuromorphError, match="corrupt.*checksum"):
        load_nir(_nir_file(tmp_path, flip))
    load_nir(_nir_file(tmp_path / "untouched", lambda graph: None))  # its own checksum matches after a round trip


# --- Kind 5: device profiles ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ('{"name": "x", "base": [1]}', "base must be the name of a built-in profile"),
    ('{"name": "x", "base": {"a": 1}}', "base must be the name of a built-in profile"),
    ('{"name": "x", "base": "loihi1", "energy_per_synop_j": {"value": ' + str(10**400) +
     ', "source": "s", "kind": "measured"}}', "must be a finite number"),
    ('{"name": "x", "base": "loihi1", "energy_per_synop_j": {"value": ' + "9" * 5000 +
     ', "source": "s", "kind": "measured"}}', "not valid JSON"),
    ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
])
def test_malformed_profiles_are_one_line(tmp_path, capsys, text, expected):
    from neuromorph.cli import main

    (tmp_path / "profile.json").write_text(text)
    code = main(["profiles", str(tmp_path / "profile.json")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and expected in err, err


# --- Kind 6: output paths, refused before any work -----------------------------------------------------------------

@pytest.mark.parametrize("target", ["", "{dir}", "{file}/inside", "/proc/neuromorph/x.nir", "x" * 300 + ".nir"])
def test_export_output_paths_are_refused_before_the_export(tiny_mlp_spec, tmp_path, capsys, target):
    from neuromorph.cli import main

    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    path = _checkpoint(tiny_mlp_spec, tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    out = target.format(dir=tmp_path / "dir", file=tmp_path / "file")
    try:
        code = main(["export", str(path), "--format", "nir", "--out", out])
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code != 0 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_training_refuses_an_unwritable_output_folder_before_it_trains(tmp_path, capsys):
    from neuromorph.cli import main

    (tmp_path / "file").write_text("x")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", str(tmp_path / "file"), "--epochs", "1"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and "is a file, not a folder" in err and len(err.splitlines()) == 1


# --- Kind 7: flags --------------------------------------------------------------------------------------------------

def test_thread_counts_that_would_crash_openmp_are_refused(tiny_mlp_spec, tmp_path, capsys):
    from neuromorph.cli import main

    code = main(["evaluate", str(_checkpoint(tiny_mlp_spec, tmp_path)), "--threads", "1000000", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "--threads must be between 1 and" in err and len(err.splitlines()) == 1


# --- Kind 8: dataset files ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("edit", "expected"), [
    (lambda b: b[:-7], "is truncated"),
    (lambda b: b + b"\x00", "is too long"),
    (lambda b: b"\x00\x00\x09" + b[3:], "bad header"),
])
def test_corrupt_idx_files_are_one_line(tmp_path, edit, expected):
    from neuromorph.data import load_split
    from tests.test_fuzz import write_mnist_layout

    write_mnist_layout(tmp_path)
    path = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    path.write_bytes(edit(path.read_bytes()))
    with pytest.raises(NeuromorphError, match=expected) as error:
        load_split("mnist", train=False, root=tmp_path)
    assert "t10k-images-idx3-ubyte" in str(error.value) and "\n" not in str(error.value)


def test_labels_outside_the_classes_are_refused(tmp_path):
    from neuromorph.data import load_split, read_cifar10
    from tests.helpers import write_cifar_batches
    from tests.test_fuzz import write_idx, write_mnist_layout

    write_mnist_layout(tmp_path)
    write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.array([0, 1, 12] + [0] * 13))
    with pytest.raises(NeuromorphError, match="has label 12; the dataset has classes 0 to 9"):
        load_split("mnist", train=False, root=tmp_path)
    import pickle

    write_cifar_batches(tmp_path / "cifar")
    with open(tmp_path / "cifar" / "test_batch", "wb") as handle:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 10]}, handle)
    with pytest.raises(NeuromorphError, match="labels must be integers 0 to 9"):
        read_cifar10(tmp_path / "cifar", train=False)


def test_a_cifar_batch_that_names_code_is_not_unpickled(tmp_path):
    import pickle
    import subprocess

    from neuromorph.data import read_cifar10
    from tests.helpers import write_cifar_batches

    write_cifar_batches(tmp_path / "cifar")
    with open(tmp_path / "cifar" / "test_batch", "wb") as handle:
        pickle.dump({b"data": subprocess.Popen, b"labels": []}, handle)
    with pytest.raises(NeuromorphError, match="names subprocess.Popen"):
        read_cifar10(tmp_path / "cifar", train=False)


def test_a_full_disk_fails_the_write_cleanly_and_leaves_nothing(tmp_path):
    import errno

    def fill(handle):
        handle.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(NeuromorphError, match="No space left on device") as error:
        atomic_write(tmp_path / "out.json", fill)
    assert "\n" not in str(error.value) and list(tmp_path.iterdir()) == []


def test_a_read_only_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    """Permission bits do not stop root, so the refusal is shown through os.access, which the check asks."""
    import os

    from neuromorph.io import check_writable

    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path) == str(tmp_path) else
                        real_access(path, mode))
    with pytest.raises(NeuromorphError, match="is not writable"):
        check_writable(tmp_path / "new" / "file.nir")
    assert list(tmp_path.iterdir()) == []
