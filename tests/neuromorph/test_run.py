"""Opening a run: checkpoint, model, dataset, seed and test samples, one way for every command; one image check."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from neuromorph.checkpoint import Checkpoint, save_checkpoint
from neuromorph.encoders import encode
from neuromorph.errors import NeuromorphError
from neuromorph.models import build_model
from neuromorph.run import check_images, open_run
from neuromorph.spec import EncoderSpec, ModelSpec, mlp_spec
from tests.helpers import synthetic_split, write_cifar_batches

CIFAR_SPEC = mlp_spec(input_shape=(3, 32, 32), hidden=(8,), num_classes=10, time_steps=3,
                      encoder=EncoderSpec(kind="poisson"))


@pytest.fixture
def cifar_run(tmp_path):
    write_cifar_batches(tmp_path / "data" / "cifar-10-batches-py", per_batch=6)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", Checkpoint(
        CIFAR_SPEC, build_model(CIFAR_SPEC).state_dict(), train_config={"dataset": "cifar10", "seed": 7}))
    return tmp_path


def test_open_run_takes_dataset_and_seed_from_the_checkpoint(cifar_run):
    run = open_run(cifar_run / "run", data_root=cifar_run / "data")
    assert run.dataset == "cifar10" and run.seed == 7 and run.spec == CIFAR_SPEC and not run.model.training
    split = run.test_split(4)
    x, labels = run.test_samples(4)
    assert x.shape == (3, 4, 3, 32, 32) and torch.equal(labels, split.labels)
    expected = encode(split.images.float() / 255, CIFAR_SPEC, torch.Generator().manual_seed(7))
    assert torch.equal(x, expected)  # Poisson noise from the run's seed
    assert torch.equal(run.test_samples(4)[0], x)


def test_given_dataset_wins_and_is_checked(cifar_run):
    spec = mlp_spec(hidden=(8,), time_steps=3)  # an MNIST model
    save_checkpoint(cifar_run / "mnist.pt", Checkpoint(spec, build_model(spec).state_dict(),
                                                       train_config={"dataset": "mnist"}))
    run = open_run(cifar_run / "mnist.pt", dataset="cifar10", data_root=cifar_run / "data")
    assert run.dataset == "cifar10" and run.seed == 0
    with pytest.raises(NeuromorphError, match=r"cifar10 images are \(3, 32, 32\), the model takes \(1, 28, 28\)"):
        run.test_samples(2)


def test_check_images_shape_and_labels(tiny_mlp_spec):
    check_images(synthetic_split(8), tiny_mlp_spec)
    check_images(torch.zeros(2, 1, 8, 8), tiny_mlp_spec)  # images alone: the shape only
    with pytest.raises(NeuromorphError, match=r"^images are \(1, 9, 9\), the model takes \(1, 8, 8\)"):
        check_images(synthetic_split(8, shape=(1, 9, 9)), tiny_mlp_spec)
    with pytest.raises(NeuromorphError, match="fashion-mnist has labels from 0 to 5, the model has classes 0 to 3"):
        check_images(synthetic_split(8, classes=6), tiny_mlp_spec, "fashion-mnist")
    negative = synthetic_split(8)
    negative.labels[3] = -1
    with pytest.raises(NeuromorphError, match="labels from -1 to"):
        check_images(negative, tiny_mlp_spec)


def test_a_flat_input_model_takes_the_images_flattened(tiny_mlp_spec):
    """A model whose input is a vector (as snnTorch and Norse export MLPs) gets the images in C, H, W order."""
    flat = ModelSpec.from_dict({**tiny_mlp_spec.to_dict(), "input_shape": [64],
                                "layers": [layer for layer in tiny_mlp_spec.to_dict()["layers"]
                                           if layer["type"] != "flatten"]})
    split = synthetic_split(8)
    fitted = check_images(split, flat)
    assert fitted.images.shape == (8, 64) and torch.equal(fitted.images, split.images.reshape(8, 64))
    assert torch.equal(fitted.labels, split.labels)
    with pytest.raises(NeuromorphError, match="the model takes"):
        check_images(synthetic_split(8, shape=(1, 9, 9)), flat)


def test_every_path_to_data_uses_the_one_check(tiny_mlp_spec, cifar_run):
    """training, the energy report, the parity samples and the commands refuse the same data with the same line."""
    from export.parity import load_samples
    from hw_models.energy_report import energy_report
    from neuromorph.training import TrainConfig, train

    wrong = synthetic_split(8, shape=(1, 9, 9))
    expected = "images are (1, 9, 9), the model takes (1, 8, 8): use the data it expects"
    with pytest.raises(NeuromorphError) as trained:
        train(tiny_mlp_spec, TrainConfig(epochs=1), progress=False, train_split=wrong, test_split=wrong)
    with pytest.raises(NeuromorphError) as priced:
        energy_report(build_model(tiny_mlp_spec), profiles=["loihi1"], split=wrong)
    assert str(trained.value) == str(priced.value) == expected
    with pytest.raises(NeuromorphError, match="labels from 0 to 5"):
        energy_report(build_model(tiny_mlp_spec), profiles=["loihi1"], split=synthetic_split(8, classes=6))
    with pytest.raises(NeuromorphError, match=r"^cifar10 images are \(3, 32, 32\), the model takes \(1, 8, 8\)"):
        load_samples(tiny_mlp_spec, "cifar10", 2, cifar_run / "data")


def test_energy_report_needs_no_training_module():
    code = ("import sys, torch\n"
            "from hw_models.energy_report import energy_report\n"
            "from neuromorph.data import Split\n"
            "from neuromorph.models import build_model\n"
            "from neuromorph.spec import mlp_spec\n"
            "spec = mlp_spec(input_shape=(1, 4, 4), hidden=(4,), num_classes=2, time_steps=2)\n"
            "split = Split(torch.zeros(4, 1, 4, 4, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64))\n"
            "energy_report(build_model(spec), profiles=['loihi1'], split=split)\n"
            "print('neuromorph.training' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "False", result.stderr
