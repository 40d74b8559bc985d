"""Bad input ends in one clear error, never a traceback or a run on altered weights (issue 13's regression tests
for what is validated today: checkpoints and their checksum, model descriptions, write paths)."""

from __future__ import annotations

import math
import zipfile

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
