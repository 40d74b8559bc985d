"""The training recipe's knobs: learning-rate schedules, weight decay, augmentation, BatchNorm and its folding."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from neuromorph.augment import AUGMENTATIONS, augment, random_crop
from neuromorph.checkpoint import load_checkpoint
from neuromorph.encoders import encode
from neuromorph.errors import NeuromorphError
from neuromorph.models import BatchNormSynapse, build_model, fold_batch_norm, has_batch_norm
from neuromorph.schedules import LR_SCHEDULES, lr_at
from neuromorph.spec import ModelSpec, cnn_spec, mlp_spec
from neuromorph.training import TrainConfig, make_optimizer, train
from tests.helpers import synthetic_split


def _torch_rates(scheduler_factory, total: int, base: float = 0.01) -> list[float]:
    weight = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([weight], lr=base)
    scheduler = scheduler_factory(optimizer)
    rates = []
    for _ in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("total", [1, 7, 100])
def test_onecycle_matches_torch(total):
    expected = _torch_rates(lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.01, total_steps=total), total)
    ours = [lr_at("onecycle", 0.01, step, total) for step in range(total)]
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_cosine_matches_torch_and_constant_is_constant():
    total = 50
    expected = _torch_rates(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total), total)
    assert [lr_at("cosine", 0.01, step, total) for step in range(total)] == pytest.approx(expected, rel=1e-9)
    assert {lr_at("constant", 0.01, step, total) for step in range(total)} == {0.01}
    assert set(LR_SCHEDULES) == {"constant", "cosine", "onecycle"}


def test_schedule_and_augmentation_settings_are_checked():
    for bad in ({"lr_schedule": "step"}, {"augment": "mixup"}, {"weight_decay": -1.0},
                {"weight_decay": float("nan")}):
        with pytest.raises(NeuromorphError):
            TrainConfig(**bad)


def test_weight_decay_uses_adamw_without_decaying_norm_and_bias():
    model = build_model(cnn_spec(input_shape=(1, 12, 12), channels=(4,), kernel_size=3, num_classes=4,
                                 batch_norm=True, time_steps=3))
    assert type(make_optimizer(model, TrainConfig())) is torch.optim.Adam
    optimizer = make_optimizer(model, TrainConfig(weight_decay=0.1))
    assert type(optimizer) is torch.optim.AdamW
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() > 1 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))


def test_crop_shifts_each_image_by_at_most_the_padding():
    images = torch.rand(64, 2, 28, 28)
    generator = torch.Generator().manual_seed(0)
    shifted = random_crop(images, generator)
    assert shifted.shape == images.shape
    pad = 2
    for b in range(images.shape[0]):  # every output is the input moved by some (dy, dx), zeros shifted in
        padded = torch.nn.functional.pad(images[b], (pad, pad, pad, pad))
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.equal(padded[:, dy:dy + 28, dx:dx + 28], shifted[b])]
        assert matches, b
    assert not torch.equal(shifted, images)  # 64 images are not all drawn at the centre
    again = random_crop(images, torch.Generator().manual_seed(0))
    assert torch.equal(again, shifted)


def test_flip_crop_and_none():
    images = torch.rand(32, 3, 32, 32)
    assert augment(images, "none", torch.Generator()) is images
    out = augment(images, "flip-crop", torch.Generator().manual_seed(1))
    assert out.shape == images.shape and set(AUGMENTATIONS) == {"none", "crop", "flip-crop"}


def _bn_cnn(**kwargs) -> ModelSpec:
    return cnn_spec(input_shape=(1, 12, 12), channels=(6, 8), kernel_size=3, padding=1, hidden=(12,),
                    num_classes=4, time_steps=6, batch_norm=True, **kwargs)


def _trained_bn(tmp_path, spec: ModelSpec | None = None, **config):
    split = synthetic_split(128, shape=(1, 12, 12))
    settings = dict(epochs=2, batch_size=32, lr=3e-3, seed=3)
    settings.update(config)
    return train(spec or _bn_cnn(), TrainConfig(**settings), out_dir=tmp_path, progress=False, train_split=split,
                 test_split=split), split


def test_batch_norm_folds_exactly(tmp_path):
    result, split = _trained_bn(tmp_path)
    model = result.model.eval()
    assert has_batch_norm(model) and all(isinstance(b.synapse, BatchNormSynapse) for b in model.blocks[:-1])
    folded = fold_batch_norm(model)
    assert not has_batch_norm(folded)
    assert all(not getattr(layer, "batch_norm", False) for layer in folded.spec.layers)
    x = encode(split.images[:64].float() / 255, model.spec, torch.Generator().manual_seed(0))
    with torch.no_grad():
        h = x
        for block, flat in zip(model.blocks[:-1], folded.blocks[:-1], strict=True):
            a, b = block.currents(h), flat.currents(h)
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)
            h, _, _ = block.integrate(a)
        out, out_folded = model(x), folded(x)
    agree = sum(torch.eq(s, t).float().mean() for s, t in zip(out.spikes, out_folded.spikes, strict=True))
    assert agree / len(out.spikes) > 0.999  # float rounding may move a voltage across the threshold, rarely
    assert torch.equal(out.logits.argmax(1), out_folded.logits.argmax(1))
    # a checkpoint opens folded for inference and export, unfolded for training
    ckpt = load_checkpoint(tmp_path)
    assert not has_batch_norm(ckpt.build_model()) and has_batch_norm(ckpt.build_model(fold_norm=False))


class _Interrupted(Exception):
    pass


def _stop_after_first_epoch(record):
    if record["epoch"] == 1:
        raise _Interrupted


def test_an_interrupted_scheduled_run_resumes_exactly(tmp_path):
    """BatchNorm, one-cycle, augmentation and weight decay: killed after epoch 1 of 3 and resumed, the run ends
    exactly where an uninterrupted one does (the schedule is a function of the step, BN statistics are saved)."""
    settings = dict(epochs=3, lr_schedule="onecycle", augment="crop", weight_decay=1e-3)
    straight, split = _trained_bn(tmp_path / "a", **settings)
    with pytest.raises(_Interrupted):
        train(_bn_cnn(), TrainConfig(batch_size=32, lr=3e-3, seed=3, **settings), out_dir=tmp_path / "b",
              progress=False, train_split=split, test_split=split, on_epoch=_stop_after_first_epoch)
    resumed = train(_bn_cnn(), TrainConfig(epochs=3), out_dir=tmp_path / "b", resume=True, progress=False,
                    train_split=split, test_split=split)
    strip = lambda h: [{k: v for k, v in r.items() if "second" not in k} for r in h]  # noqa: E731
    assert strip(resumed.history) == strip(straight.history)
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert straight.history[-1]["lr"] == pytest.approx(lr_at("onecycle", 3e-3, 11, 12))


def test_folded_batch_norm_exports_to_nir_and_refuses_a_chip_bias(tmp_path):
    import nir

    from export.nir_export import write_nir
    from export.quantize import quantize

    result, _ = _trained_bn(tmp_path)
    model = load_checkpoint(tmp_path).build_model().eval()
    path = write_nir(model, tmp_path / "m.nir")
    graph = nir.read(path)
    assert graph.nodes["conv1"].bias is not None if "conv1" in graph.nodes else True
    assert any(getattr(node, "bias", None) is not None and not math.isclose(float(abs(node.bias).sum()), 0)
               for node in graph.nodes.values())
    with pytest.raises(NeuromorphError, match="bias"):
        quantize(result.model)  # folded on the way in; the second layer's bias has no exact Loihi form


def test_batch_norm_on_the_host_layer_alone_exports_to_the_chip(tmp_path):
    """Only the first layer normalized: its folded bias is computed on the host, which netx allows."""
    from export.quantize import quantize
    from neuromorph.spec import Conv

    base = cnn_spec(input_shape=(1, 12, 12), channels=(6,), kernel_size=3, num_classes=4, time_steps=4)
    layers = (replace(base.layers[0], batch_norm=True), *base.layers[1:])
    assert isinstance(layers[0], Conv)
    result, _ = _trained_bn(tmp_path, spec=replace(base, layers=layers), epochs=1)
    plan = quantize(result.model)
    assert plan.layers[0].on_host and plan.layers[0].host_bias is not None


def test_loihi_exact_training_folds_and_refuses_a_chip_bias(tmp_path):
    _trained_bn(tmp_path)
    with pytest.raises(NeuromorphError, match="bias"):
        _trained_bn(tmp_path / "exact", epochs=1, loihi_exact=True, init_from=str(tmp_path))


def test_batch_norm_spec_round_trips():
    spec = mlp_spec(input_shape=(1, 8, 8), hidden=(8,), num_classes=4, batch_norm=True)
    assert spec.layers[1].batch_norm and not spec.layers[-1].batch_norm  # the readout is not normalized
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(NeuromorphError, match="batch_norm"):
        ModelSpec.from_dict({**spec.to_dict(), "layers": [{"type": "flatten"},
                                                          {"type": "dense", "out_features": 8, "batch_norm": 1},
                                                          {"type": "dense", "out_features": 4}]})


def test_recipe_flags_on_the_command_line(tmp_path):
    """BatchNorm, a schedule, weight decay and augmentation from the CLI, then evaluate and NIR export (folded)."""
    from tests.helpers import write_cifar_batches
    from tests.neuromorph.test_cli import TINY, run_cli

    write_cifar_batches(tmp_path / "data" / "cifar-10-batches-py", per_batch=16)
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", "cifar10", "--data-root", str(tmp_path / "data"), "--model", "cnn",
                     "--channels", "4", "--batch-norm", "--lr-schedule", "onecycle", "--weight-decay", "0.01",
                     "--augment", "flip-crop", "--epochs", "1", *TINY, "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    assert has_batch_norm(load_checkpoint(out).build_model(fold_norm=False))
    exported = run_cli("export", str(out), "--format", "nir", "--out", str(tmp_path / "m.nir"))
    assert exported.returncode == 0, exported.stderr
    bad = run_cli("train", "--lr-schedule", "step", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "lr-schedule" in bad.stderr


def test_every_preset_builds_for_its_dataset():
    from neuromorph.data import dataset_info
    from neuromorph.presets import PRESETS

    for preset in PRESETS.values():
        info = dataset_info(preset.dataset)
        spec = preset.spec(info.input_shape, info.num_classes)
        assert spec.num_classes == info.num_classes and ModelSpec.from_dict(spec.to_dict()) == spec
        TrainConfig(dataset=preset.dataset, **preset.settings)  # the recipe is valid settings
    vgg = PRESETS["vgg11"].spec((3, 32, 32), 10)
    assert [type(layer).__name__ for layer in vgg.layers].count("Conv") == 8


def test_a_presets_reached_figure_is_its_committed_studys_baseline_and_the_readmes():
    """A preset's ``reached`` text, the README's presets table and the committed sweep that measured it (the study
    whose network is the preset's, at its T, trained with its recipe) say the same mean +- std over the same number
    of seeds."""
    import json
    import re
    from pathlib import Path

    from hw_models.sweep_command import FLAG_SETTINGS
    from neuromorph.data import dataset_info
    from neuromorph.presets import PRESETS

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    studies = [json.loads(p.read_text()) for p in sorted((root / "examples/results/sweeps").glob("*/results.json"))]
    checked = 0
    for preset in PRESETS.values():
        if not preset.reached:
            continue
        info = dataset_info(preset.dataset)
        spec = preset.spec(info.input_shape, info.num_classes)
        mean, std, seeds = re.match(r"([\d.]+) \+- ([\d.]+) % \((\d) seeds", preset.reached).groups()
        recipe = {k: v for k, v in preset.settings.items() if k not in FLAG_SETTINGS}
        matching = [s for s in studies if s["settings"]["spec"] == spec.to_dict() and s["settings"]["recipe"] == recipe
                    and all(s["settings"][k] == preset.settings[k] for k in FLAG_SETTINGS)]
        assert matching, f"{preset.name}: no committed study of its network at T = {spec.time_steps} and its recipe"
        baseline = next(g for g in matching[0]["groups"] if g["penalty"] == "none")
        assert (f"{100 * baseline['test_accuracy']:.2f}", f"{100 * baseline['test_accuracy_std']:.2f}",
                len(baseline["seeds"])) == (mean, std, int(seeds)), preset.name
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{preset.name}` |"))
        assert f"T = {spec.time_steps}" in row and f"{mean} ± {std} %" in row, preset.name
        checked += 1
    assert checked >= 2


def test_vgg11_preset_trains_on_cifar10_format_data_and_exports(tmp_path):
    """VGG11 from the command line on synthetic CIFAR-10 files in the real format, then NIR export (read back by
    nir) and netx export, which refuses the folded BatchNorm's bias with one line."""
    import nir

    from tests.helpers import write_cifar_batches
    from tests.neuromorph.test_cli import assert_one_line_error, run_cli

    write_cifar_batches(tmp_path / "data" / "cifar-10-batches-py", per_batch=8)
    out = tmp_path / "vgg"
    result = run_cli("train", "--preset", "vgg11", "--data-root", str(tmp_path / "data"), "--epochs", "1",
                     "--train-limit", "16", "--test-limit", "8", "--batch-size", "8", "--quiet", "--out", str(out))
    assert result.returncode == 0, result.stderr
    ckpt = load_checkpoint(out)
    assert ckpt.spec.name == "vgg11" and ckpt.config.augment == "flip-crop" and ckpt.config.epochs == 1
    exported = run_cli("export", str(out), "--format", "nir", "--out", str(tmp_path / "vgg.nir"))
    assert exported.returncode == 0, exported.stderr
    assert sum(type(n).__name__ == "Conv2d" for n in nir.read(tmp_path / "vgg.nir").nodes.values()) == 8
    refused = run_cli("export", str(out), "--format", "netx", "--data-root", str(tmp_path / "data"), "--out",
                      str(tmp_path / "vgg.net"))
    assert_one_line_error(refused, 1, "bias")
    assert not (tmp_path / "vgg.net").exists()


def test_preset_flags():
    from neuromorph.cli import main

    assert main(["presets", "--json"]) == 0
    assert main(["presets", "fashion-cnn"]) == 0
    assert main(["presets", "resnet18"]) == 1
    assert main(["train", "--preset", "fashion-cnn", "--channels", "8", "--out", "unused"]) == 1
    assert main(["train", "--preset", "nope", "--out", "unused"]) == 1


def test_a_preset_runs_at_another_time_step_count(tmp_path):
    """``--time-steps`` beside a preset: its network at that T (the rest of the network and recipe unchanged); without
    it, the preset's own T."""
    from neuromorph.cli import main
    from tests.test_fuzz import write_mnist_layout

    write_mnist_layout(tmp_path / "data", n=64)
    flags = ["train", "--preset", "mnist-mlp", "--data-root", str(tmp_path / "data"), "--epochs", "1",
             "--train-limit", "64", "--test-limit", "32", "--quiet", "--threads", "1"]
    assert main([*flags, "--out", str(tmp_path / "own")]) == 0
    assert main([*flags, "--time-steps", "4", "--out", str(tmp_path / "t4")]) == 0
    own, t4 = load_checkpoint(tmp_path / "own"), load_checkpoint(tmp_path / "t4")
    assert own.spec.time_steps == 2 and t4.spec.time_steps == 4
    assert own.spec.to_dict() | {"time_steps": 4} == t4.spec.to_dict() and t4.config.lr_schedule == "cosine"
