"""Property-based fuzzing of every place a file or a flag enters, through the CLI's entry point in-process.

Each case is a malformed (or, by chance, valid) input given to ``neuromorph.cli.main``: checkpoints with fields of
any type, model descriptions, NIR graphs, device profiles, dataset files, flag values and output paths. Every case
must end in exactly one of: exit 0 (accepted), or a non-zero exit with one clean error line on stderr (warnings
aside) and no traceback; in both, no partial or temporary file is left behind. Anything else (an exception out of
``main``) is a crash and fails the test, with the case Hypothesis shrank it to.

The default run is about 1,100 cases in seconds; ``NEUROMORPH_FUZZ_SCALE=10`` runs ten times as many (the cases
are derandomized, so CI sees the same ones every run; ``NEUROMORPH_FUZZ_SEED=N`` draws others). The counts per kind
are printed at the end of the session (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from neuromorph.checkpoint import Checkpoint, payload_checksum, save_checkpoint
from neuromorph.models import build_model
from neuromorph.spec import mlp_spec

SCALE = float(os.environ.get("NEUROMORPH_FUZZ_SCALE", "1"))
SEED = os.environ.get("NEUROMORPH_FUZZ_SEED")
OUTCOMES: dict[str, Counter] = {}
PROGRESS = re.compile(r"\d+%\|")  # a progress bar's line (stderr is no terminal here)


def cases(n: int):
    """Hypothesis settings for ``n`` cases (times the scale), reproducible unless a seed is given."""
    options = dict(max_examples=max(1, int(n * SCALE)), deadline=None, database=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                          HealthCheck.filter_too_much, HealthCheck.data_too_large])
    return settings(derandomize=SEED is None, **options)


def _seeded(test):
    if SEED is None:
        return test
    from hypothesis import seed

    return seed(int(SEED))(test)


class _Accepted(Exception):
    """Raised by the stand-in for training: the command got as far as building the model."""


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.is_dir() else set()


def run_cli(kind: str, argv: list[str], watch: Path) -> str:
    """Run one case; record and return its outcome ("accepted" or "clean"); fail the test on anything else."""
    from neuromorph.cli import main

    before = _files(watch)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
        except _Accepted:
            code = 0
    text = err.getvalue()
    assert "Traceback" not in text, f"{argv}: traceback on stderr:\n{text}"
    leftovers = [name for name in _files(watch) - before if Path(name).name.startswith(".") or
                 name.endswith(".tmp")]
    assert not leftovers, f"{argv}: partial files left behind: {leftovers}"
    if code == 0:
        outcome = "accepted"
    else:
        lines = [line for line in text.splitlines()
                 if line.strip() and ": warning:" not in line and not PROGRESS.search(line)]
        assert isinstance(code, int) and code != 0, f"{argv}: exit status {code!r}"
        assert len(lines) == 1 and ": error: " in lines[0], f"{argv}: expected one error line, got:\n{text}"
        outcome = "clean"
    OUTCOMES.setdefault(kind, Counter())[outcome] += 1
    return outcome


# --- The inputs every case starts from (built once) -----------------------------------------------------------------

IDX_NAMES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist_layout(root: Path, n: int = 16) -> None:
    """MNIST and Fashion-MNIST in torchvision's raw layout, ``n`` images per split."""
    rng = np.random.default_rng(0)
    for folder in ("MNIST", "FashionMNIST"):
        raw = root / folder / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for images, labels in IDX_NAMES.values():
            write_idx(raw / images, rng.integers(0, 256, (n, 28, 28)))
            write_idx(raw / labels, np.arange(n) % 10)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A data root, a tiny 28x28 MLP checkpoint, its NIR file and a profile file, shared by every case."""
    from export.nir_export import write_nir
    from tests.helpers import write_cifar_batches

    folder = tmp_path_factory.mktemp("fuzz-base")
    root = folder / "data"
    write_mnist_layout(root)
    write_cifar_batches(root / "cifar-10-batches-py")
    torch.manual_seed(0)
    spec = mlp_spec(input_shape=(1, 28, 28), hidden=(8,), num_classes=10, time_steps=3)
    model = build_model(spec)
    checkpoint = save_checkpoint(folder / "run" / "checkpoint.pt", Checkpoint(
        spec=spec, model_state=model.state_dict(), train_config={"dataset": "mnist"}, epoch=1,
        history=[{"epoch": 1, "train_loss": 1.0, "test_accuracy": 0.1}]))
    nir_path = write_nir(model, folder / "run.nir")
    return {"root": root, "checkpoint": checkpoint, "nir": nir_path, "spec": spec.to_dict(), "folder": folder}


@pytest.fixture(autouse=True)
def _tiny_data(base, monkeypatch):
    monkeypatch.setenv("NEUROMORPH_DATA", str(base["root"]))


# --- Values of every type: what a malformed file may hold where a number, a name or a table belongs ---------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-3, max_value=40), st.integers(min_value=-2**70, max_value=2**70),
    st.sampled_from([0, 1, 2, 10, 2**31, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 0.5, 1.0, 10.0, 1e-3, -1.0, 1e308]),
    st.text(max_size=8), st.sampled_from(["", "lif", "lifbox", "super", "mnist", "max", "direct", "poisson", "dense",
                                          "conv", "pool", "flatten", "avg", "sum", "loihi1", "cpu", "measured"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                      max_leaves=8)


def _paths(data: object, prefix: tuple = ()) -> list[tuple]:
    """Every key path into nested dicts and lists."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


def _mutate(data: object, draw) -> object:
    """A deep copy of ``data`` with one path replaced by a drawn value, deleted, or a key added."""
    data = json.loads(json.dumps(data))
    paths = _paths(data)
    path = draw(st.sampled_from(paths)) if paths else ()
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "replace", "replace", "delete", "add"]))
    if not path:
        return draw(values)
    if action == "delete":
        del parent[path[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=6))] = draw(values)
    else:
        parent[path[-1]] = draw(values)
    return data


# --- 1. Checkpoints -------------------------------------------------------------------------------------------------

CHECKPOINT_FIELDS = ["format", "format_version", "spec", "checksum", "train_config", "epoch", "model_state",
                     "optimizer_state", "history", "versions"]


@_seeded
@cases(250)
@given(data=st.data())
def test_fuzz_checkpoints(base, tmp_path_factory, data):
    """Checkpoint fields of any type, missing or added, the checksum kept, recomputed or dropped; then ``info``
    and, where accepted, ``evaluate`` (which builds and runs the model)."""
    folder = tmp_path_factory.mktemp("ckpt")
    payload = torch.load(base["checkpoint"], weights_only=True)
    field = data.draw(st.sampled_from(CHECKPOINT_FIELDS), label="field")
    how = data.draw(st.sampled_from(["value", "mutate", "delete"]), label="how")
    if how == "delete":
        del payload[field]
    elif how == "mutate" and isinstance(payload[field], dict | list) and field != "model_state":
        try:
            payload[field] = _mutate(payload[field], data.draw)
        except TypeError:  # not JSON data (tensors): replaced whole below instead
            payload[field] = data.draw(values)
    elif field == "model_state" and how == "mutate":
        name = data.draw(st.sampled_from(sorted(payload["model_state"])))
        tensor = payload["model_state"][name]
        payload["model_state"][name] = data.draw(st.sampled_from([
            tensor[:1], tensor.double(), tensor.fill_(math.nan), torch.zeros(3), tensor.int(), tensor.unsqueeze(0)]))
    else:
        payload[field] = data.draw(values)
    if field != "checksum" and data.draw(st.booleans(), label="recompute checksum"):
        with contextlib.suppress(Exception):
            payload["checksum"] = payload_checksum(payload["spec"], payload["model_state"])
    path = folder / "checkpoint.pt"
    try:
        torch.save(payload, path)
    except Exception:  # noqa: BLE001 - a value torch cannot store is no file a user could have
        assume(False)
    if run_cli("checkpoint", ["info", str(path)], folder) == "accepted":
        run_cli("checkpoint", ["evaluate", str(path), "--limit", "4"], folder)


@_seeded
@cases(150)
@given(offset=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7), span=st.integers(1, 3))
def test_fuzz_checkpoint_bytes(base, tmp_path_factory, offset, bit, span):
    """Bytes flipped anywhere in the file: refused as corrupt, or (outside the weights and model description, e.g.
    in the history) loaded; never a crash."""
    folder = tmp_path_factory.mktemp("bytes")
    raw = bytearray(base["checkpoint"].read_bytes())
    start = int(offset * len(raw))
    for i in range(start, min(start + span, len(raw))):
        raw[i] ^= 1 << bit
    path = folder / "checkpoint.pt"
    path.write_bytes(bytes(raw))
    run_cli("checkpoint bytes", ["info", str(path)], folder)


# --- 2. Model descriptions ------------------------------------------------------------------------------------------

@_seeded
@cases(200)
@given(data=st.data())
def test_fuzz_model_descriptions(base, tmp_path_factory, data):
    """A model description with one field changed to anything, in a checkpoint with a valid checksum (as a buggy
    writer would leave it): ``info``, then ``evaluate`` and ``energy`` where accepted."""
    folder = tmp_path_factory.mktemp("spec")
    payload = torch.load(base["checkpoint"], weights_only=True)
    payload["spec"] = _mutate(base["spec"], data.draw)
    try:
        payload["checksum"] = payload_checksum(payload["spec"], payload["model_state"])
    except (TypeError, ValueError):
        assume(False)
    path = folder / "checkpoint.pt"
    torch.save(payload, path)
    if run_cli("model description", ["info", str(path)], folder) == "accepted":
        run_cli("model description", ["evaluate", str(path), "--limit", "4"], folder)
        run_cli("model description", ["energy", str(path), "--samples", "2", "--quiet",
                                      "--device-profile", "loihi1"], folder)


# --- 3. NIR graphs --------------------------------------------------------------------------------------------------

arrays = st.one_of(
    st.builds(lambda shape, fill: np.full(shape, fill, dtype=np.float32),
              st.lists(st.integers(0, 4), max_size=3).map(tuple), st.floats(allow_nan=True, allow_infinity=True)),
    st.builds(lambda shape, fill: np.full(shape, fill, dtype=np.int64), st.lists(st.integers(0, 4), max_size=3)
              .map(tuple), st.integers(-5, 2**40)),
    st.sampled_from([np.array([b"a", b"b"]), np.array(b"text"), np.array([]), np.array(3.0), np.array([1e-3, 2e-3]),
                     np.array(True)]),
)


@_seeded
@cases(200)
@given(data=st.data())
def test_fuzz_nir_graphs(base, tmp_path_factory, data):
    """A node parameter or metadata entry replaced by any array or value, a node or edge removed, the checksum
    kept, recomputed or dropped: ``import-nir``, then ``evaluate`` where accepted."""
    import nir

    from export.nir_checks import CHECKSUM_KEY, graph_checksum

    folder = tmp_path_factory.mktemp("nir")
    graph = nir.read(base["nir"])
    target = data.draw(st.sampled_from(["node", "node", "metadata", "structure"]), label="target")
    if target == "node":
        name = data.draw(st.sampled_from(sorted(graph.nodes)), label="node")
        node = graph.nodes[name]
        attributes = sorted(vars(node))
        assume(attributes)
        attribute = data.draw(st.sampled_from(attributes), label="attribute")
        setattr(node, attribute, data.draw(st.one_of(arrays, scalars), label="value"))
    elif target == "metadata":
        key = data.draw(st.sampled_from([*sorted(graph.metadata), "extra"]), label="key")
        value = data.draw(st.one_of(arrays, scalars, values.map(json.dumps)), label="value")
        if key == "neuromorph_spec" and data.draw(st.booleans()):
            value = json.dumps(_mutate(base["spec"], data.draw))
        graph.metadata[key] = value
    else:
        what = data.draw(st.sampled_from(["drop node", "drop edge", "swap edge"]))
        if what == "drop node":
            del graph.nodes[data.draw(st.sampled_from(sorted(graph.nodes)))]
        elif what == "drop edge":
            graph.edges.pop(data.draw(st.integers(0, len(graph.edges) - 1)))
        else:
            index = data.draw(st.integers(0, len(graph.edges) - 1))
            graph.edges[index] = graph.edges[index][::-1]
    checksum = data.draw(st.sampled_from(["keep", "recompute", "drop"]), label="checksum")
    if checksum == "drop":
        graph.metadata.pop(CHECKSUM_KEY, None)
    elif checksum == "recompute":
        try:
            graph.metadata[CHECKSUM_KEY] = graph_checksum(graph)
        except Exception:  # noqa: BLE001 - not something our writer would produce
            graph.metadata.pop(CHECKSUM_KEY, None)
    path = folder / "graph.nir"
    try:
        nir.write(path, graph)
    except Exception:  # noqa: BLE001 - NIR's own writer refuses it: no file a user could have
        path.unlink(missing_ok=True)
        assume(False)
    out = folder / "imported"
    if run_cli("nir graph", ["import-nir", str(path), "--out", str(out)], folder) == "accepted":
        run_cli("nir graph", ["evaluate", str(out), "--limit", "4"], folder)


# --- 4. Device profiles ---------------------------------------------------------------------------------------------

PROFILE_KEYS = ["name", "description", "base", "event_driven", "cores", "ann_reference", "energy_per_synop_j",
                "energy_per_neuron_update_j", "energy_per_message_j", "static_power_w", "time_per_step_s", "bogus"]
constant_tables = st.fixed_dictionaries({}, optional={"value": scalars, "source": scalars, "kind": scalars,
                                                      "unit": scalars, "extra": scalars})


@_seeded
@cases(200)
@given(data=st.data())
def test_fuzz_profiles(base, tmp_path_factory, data):
    """A profile file (JSON or TOML) with any fields of any type, deep nesting, huge numbers or bad bytes:
    ``profiles FILE``, then ``energy`` where accepted."""
    folder = tmp_path_factory.mktemp("profile")
    form = data.draw(st.sampled_from(["json", "json", "toml", "deep", "bytes"]), label="form")
    profile = {key: data.draw(st.one_of(values, constant_tables) if key.endswith(("_j", "_w", "_s")) else values)
               for key in data.draw(st.lists(st.sampled_from(PROFILE_KEYS), unique=True, max_size=6))}
    if data.draw(st.booleans()):
        profile.setdefault("name", "fuzzed")
        profile.setdefault("base", data.draw(st.sampled_from(["loihi1", "loihi1-calibrated", "loihi2", "cpu"])))
    if form == "json":
        try:
            text = json.dumps(profile)
        except (TypeError, ValueError):
            assume(False)
        path = folder / "profile.json"
        path.write_text(text)
    elif form == "toml":
        path = folder / "profile.toml"
        path.write_text("\n".join(f"{key} = {json.dumps(value)}" for key, value in profile.items()
                                  if not isinstance(value, dict | type(None))))
    elif form == "deep":
        depth = data.draw(st.integers(10, 100_000))
        path = folder / "profile.json"
        path.write_text("[" * depth + "]" * depth)
    else:
        path = folder / data.draw(st.sampled_from(["profile.json", "profile.toml"]))
        path.write_bytes(data.draw(st.binary(max_size=64)))
    if run_cli("profile", ["profiles", str(path)], folder) == "accepted":
        run_cli("profile", ["energy", str(base["checkpoint"]), "--samples", "2", "--quiet", "--device-profile",
                            str(path)], folder)


# --- 5. Dataset files -----------------------------------------------------------------------------------------------

@_seeded
@cases(100)
@given(data=st.data())
def test_fuzz_dataset_files(base, tmp_path_factory, data):
    """MNIST IDX files truncated, padded, with a wrong header or out-of-range labels, and CIFAR-10 batches of any
    content: ``evaluate`` on them."""
    import pickle
    import shutil

    folder = tmp_path_factory.mktemp("data")
    root = folder / "data"
    shutil.copytree(base["root"], root)
    dataset = data.draw(st.sampled_from(["mnist", "fashion-mnist", "cifar10"]), label="dataset")
    if dataset == "cifar10":
        path = root / "cifar-10-batches-py" / "test_batch"
        batch = {b"data": data.draw(st.sampled_from([np.zeros((4, 3072), np.uint8), np.zeros((4, 10), np.uint8),
                                                     "text", None, np.zeros(3072)])),
                 b"labels": data.draw(st.one_of(st.lists(st.integers(-2, 12), max_size=5), values))}
        if data.draw(st.booleans()):
            del batch[data.draw(st.sampled_from(sorted(batch)))]
        payload = pickle.dumps(batch) if data.draw(st.booleans()) else data.draw(st.binary(max_size=64))
        path.write_bytes(payload)
    else:
        raw = root / ("MNIST" if dataset == "mnist" else "FashionMNIST") / "raw"
        name = data.draw(st.sampled_from(IDX_NAMES[False]), label="file")
        content = bytearray((raw / name).read_bytes())
        edit = data.draw(st.sampled_from(["truncate", "pad", "header", "labels", "delete"]), label="edit")
        if edit == "truncate":
            content = content[: data.draw(st.integers(0, len(content) - 1))]
        elif edit == "pad":
            content += data.draw(st.binary(min_size=1, max_size=8))
        elif edit == "header":
            content[data.draw(st.integers(0, 15))] = data.draw(st.integers(0, 255))
        elif edit == "labels" and "labels" in name:
            content[8 + data.draw(st.integers(0, 15))] = data.draw(st.integers(10, 255))
        if edit == "delete":
            (raw / name).unlink()
        else:
            (raw / name).write_bytes(bytes(content))
    run_cli("dataset file", ["evaluate", str(base["checkpoint"]), "--dataset", dataset, "--data-root", str(root),
                             "--limit", "4"], folder)


# --- 6. Flags and output paths --------------------------------------------------------------------------------------

flag_values = st.one_of(
    st.sampled_from(["0", "1", "-1", "2", "1e3", "nan", "inf", "-inf", "0.5", "1e-300", str(2**64), str(10**30),
                     "", " ", "abc", "cpu", "cuda", "mps", "meta", "cuda:7", "auto", "mnist", "cifar10", "loihi1",
                     "lif", "lifbox", "max", "none", "1,2", "0,3", "3,,4", "-2,5", "/dev/null", "/proc/x"]),
    st.integers(-2**70, 2**70).map(str), st.floats().map(str), st.text(max_size=6),
)
# relative paths land in the case's folder (the test works there); "/" itself is left out: a folder that can be
# written would receive the command's files
out_paths = st.sampled_from(["", ".", "/proc/neuromorph", "/dev/null/x", "{file}/inside", "{dir}", "{dir}/a/b",
                             "x" * 300, "{dir}/\u00e9t\u00e9", "{dir}/with space", "{dir}/" + "y" * 300 + "/z"])

COMMAND_FLAGS = {
    "train": ["--epochs", "--batch-size", "--lr", "--seed", "--lam", "--power", "--hidden", "--channels", "--kernel",
              "--padding", "--pool", "--time-steps", "--dt", "--tau-mem-inv", "--tau-syn-inv", "--v-th", "--gain",
              "--max-rate", "--init-rate", "--device", "--threads", "--train-limit", "--test-limit", "--ramp-epochs",
              "--device-profile", "--dataset", "--data-root", "--init-from", "--model", "--cell", "--penalty",
              "--out"],
    "evaluate": ["--limit", "--batch-size", "--device", "--threads", "--dataset", "--data-root", "--raster"],
    "energy": ["--samples", "--batch-size", "--device", "--seed", "--device-profile", "--dataset", "--out"],
    "export": ["--format", "--samples", "--dataset", "--out", "--report"],
    "import-nir": ["--dt", "--time-steps", "--dataset", "--out"],
    "info": [],
    "simulate": ["--samples", "--precision", "--copies", "--batch", "--device-profile", "--dataset", "--out"],
    "profiles": [],
}


@_seeded
@cases(250)
@given(data=st.data())
def test_fuzz_flags_and_output_paths(base, tmp_path_factory, monkeypatch, data):
    """Any command with any of its flags set to any value, output paths included. Training stops once the model is
    built, and simulate once Lava would start (the stand-ins below): everything a user can get wrong on the command
    line is checked before that."""
    import export.lava_sim
    import neuromorph.training

    folder = tmp_path_factory.mktemp("flags")
    (folder / "file").write_text("x")
    (folder / "dir").mkdir()
    monkeypatch.chdir(folder)  # what a relative --out writes stays in the case's folder

    def stand_in(spec, config, **_):
        from neuromorph.data import load_split
        from neuromorph.devices import resolve_device

        resolve_device(config.device)
        load_split(config.dataset, train=True, root=config.data_root, limit=4)
        build_model(spec)
        raise _Accepted

    def no_lava():
        raise _Accepted

    monkeypatch.setattr(neuromorph.training, "train", stand_in)
    monkeypatch.setattr(export.lava_sim, "load_lava", no_lava)
    command = data.draw(st.sampled_from(sorted(COMMAND_FLAGS)), label="command")
    argv = [command]
    if command in ("evaluate", "energy", "export", "info", "simulate"):
        argv.append(str(base["checkpoint"]))
    elif command == "import-nir":
        argv.append(str(base["nir"]))
    required = {"train": ["--out", "--epochs"], "export": ["--format", "--out"], "import-nir": ["--out"]}
    flags = data.draw(st.lists(st.sampled_from(COMMAND_FLAGS[command]), unique=True, max_size=4)) if \
        COMMAND_FLAGS[command] else []
    for flag in [*required.get(command, []), *flags]:
        if flag in ("--out", "--raster", "--report", "--data-root", "--init-from"):
            value = data.draw(out_paths).format(file=folder / "file", dir=folder / "dir")
        elif flag == "--format":
            value = data.draw(st.sampled_from(["nir", "netx", "onnx", ""]))
        elif flag == "--precision":
            value = data.draw(st.sampled_from(["fixed", "float", "int8", ""]))
        else:
            value = data.draw(flag_values)
        if flag in argv:
            continue
        argv += [flag, value]
    if command in ("energy", "simulate", "evaluate"):
        argv.append("--quiet")
    if command == "profiles" and data.draw(st.booleans()):
        argv.append(data.draw(st.sampled_from(["loihi1", "loihi2", "nope", "", "x.toml", "/dev/null", "a/b.json"])))
    if command == "export" and "--samples" not in argv:
        argv += ["--samples", "2"]
    assume("\x00" not in "".join(argv) or data.draw(st.booleans()))
    run_cli("flags and paths", argv, folder)
