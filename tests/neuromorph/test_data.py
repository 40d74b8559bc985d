"""Data loading: the shared MNIST/Fashion-MNIST folder, data-root resolution, and CIFAR-10 in its real format."""

from __future__ import annotations

import pytest
import torch

from neuromorph.data import (
    DATA_ENV,
    iterate_batches,
    load_split,
    read_cifar10,
    resolve_data_root,
    shared_data_root,
)
from neuromorph.errors import NeuromorphError
from tests.helpers import write_cifar_batches

needs_shared = pytest.mark.skipif(shared_data_root() is None, reason="../shared/datasets is not present")


@needs_shared
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_shared_datasets_load_with_limits(name, monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    root, download = resolve_data_root()
    assert root == shared_data_root() and download is False
    split = load_split(name, train=False, limit=100)
    assert split.images.shape == (100, 1, 28, 28) and split.images.dtype == torch.uint8
    assert split.labels.shape == (100,) and 0 <= split.labels.min() and split.labels.max() <= 9
    assert len(load_split(name, train=True)) == 60_000


def test_explicit_missing_root_is_an_error(tmp_path, monkeypatch):
    with pytest.raises(NeuromorphError, match="does not exist"):
        resolve_data_root(tmp_path / "nope")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nope"))
    with pytest.raises(NeuromorphError, match=DATA_ENV):
        resolve_data_root()


def test_environment_variable_sets_root(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert resolve_data_root()[0] == tmp_path


def test_existing_root_without_the_dataset(tmp_path):
    with pytest.raises(NeuromorphError, match="MNIST not found"):
        load_split("mnist", train=False, root=tmp_path, download=False)


def test_cifar10_from_user_path(tmp_path):
    written = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    train = load_split("cifar10", train=True, root=tmp_path)
    test = load_split("cifar10", train=False, root=tmp_path, limit=3)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    data, labels = written["test_batch"]
    assert torch.equal(test.images[1, 2], torch.from_numpy(data[1, 2048:].reshape(32, 32)))
    assert test.labels.tolist() == labels[:3]
    images, _ = next(iterate_batches(train, 8))
    assert images.dtype == torch.float32 and 0 <= images.min() and images.max() <= 1


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(NeuromorphError, match="CIFAR-10 not found"):
        load_split("cifar10", train=True, root=tmp_path, download=False)
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder)
    (folder / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(NeuromorphError, match="corrupt"):
        read_cifar10(folder, train=True)


def test_unknown_dataset():
    with pytest.raises(NeuromorphError, match="supported: mnist, fashion-mnist, cifar10"):
        load_split("imagenet", train=True)
