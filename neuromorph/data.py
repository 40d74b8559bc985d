"""Datasets: MNIST and Fashion-MNIST through torchvision, CIFAR-10 from a user-supplied path.

Images are held in memory as uint8 ``[N, C, H, W]`` and scaled to [0, 1] per batch, which is much faster than a
per-item torchvision pipeline for datasets of this size.

The data root is, in order: the ``--data-root`` flag (``root`` argument), the ``NEUROMORPH_DATA`` environment
variable, the workplace's shared dataset folder ``../shared/datasets`` when it exists (read with
``download=False``), else ``~/.cache/neuromorph/datasets`` (downloaded by torchvision when missing).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuromorph.errors import NeuromorphError, lookup

DATA_ENV = "NEUROMORPH_DATA"
_PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Split:
    """One split of a dataset in memory: uint8 images ``[N, C, H, W]`` and int64 labels ``[N]``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def head(self, limit: int | None) -> Split:
        """The first ``limit`` samples (all when None)."""
        if limit is None:
            return self
        if limit <= 0:
            raise NeuromorphError(f"a data limit must be positive, got {limit}")
        return Split(self.images[:limit], self.labels[:limit])


def shared_data_root() -> Path | None:
    """``../shared/datasets`` next to the project (or the working directory) when it exists."""
    for base in (_PROJECT_ROOT, Path.cwd()):
        candidate = (base / ".." / "shared" / "datasets").resolve()
        if candidate.is_dir():
            return candidate
    return None


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long: no such folder
        return False


def resolve_data_root(root: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """The data root to use and whether downloading into it is allowed.

    An explicit root (argument or environment variable) must exist. The shared folder is read-only, so it never
    downloads; the cache folder does.
    """
    explicit = root if root is not None else os.environ.get(DATA_ENV) or None
    if explicit is not None:
        path = Path(explicit).expanduser()
        if "\x00" in str(path) or not _is_dir(path):
            raise NeuromorphError(f"data root {str(path)!r} does not exist (set by --data-root or ${DATA_ENV})")
        return path, os.access(path, os.W_OK)
    shared = shared_data_root()
    if shared is not None:
        return shared, False
    cache = Path.home() / ".cache" / "neuromorph" / "datasets"
    cache.mkdir(parents=True, exist_ok=True)
    return cache, True


def _first_line(error: BaseException, limit: int = 300) -> str:
    """The error's text on one line (torchvision's download errors span several)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# torchvision's raw file names: (images, labels) of each split, under ROOT/<torchvision class name>/raw
IDX_FILES = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An uint8 IDX file (MNIST's format: 0, 0, type 0x08, ndim, big-endian int32 sizes, then the bytes), checked:
    a truncated, padded or foreign file is refused with one line naming it."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise NeuromorphError(f"dataset file {str(path)!r} cannot be read: {error.strerror or error}") from None
    header = 4 + 4 * ndim
    if len(data) < header or data[:3] != b"\x00\x00\x08" or data[3] != ndim:
        raise NeuromorphError(f"dataset file {str(path)!r} is not a {ndim}-D uint8 IDX file (bad header)")
    sizes = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(sizes, dtype=np.int64))
    if len(data) != expected:
        raise NeuromorphError(f"dataset file {str(path)!r} is {'truncated' if len(data) < expected else 'too long'}: "
                              f"{len(data)} bytes, its header {sizes} says {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(sizes)


def read_idx_split(folder: Path, train: bool, num_classes: int) -> Split:
    """One split from the IDX files in ``folder`` (images ``[N, 28, 28]``, labels ``[N]``), checked together."""
    image_path, label_path = (folder / name for name in IDX_FILES[train])
    images, labels = read_idx(image_path, 3), read_idx(label_path, 1)
    if len(images) != len(labels):
        raise NeuromorphError(f"dataset files in {str(folder)!r} disagree: {len(images)} images, {len(labels)} labels")
    if len(labels) and int(labels.max()) >= num_classes:
        raise NeuromorphError(f"dataset file {str(label_path)!r} has label {int(labels.max())}; the dataset has "
                              f"classes 0 to {num_classes - 1}")
    return Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


def _torchvision_split(cls_name: str, num_classes: int = 10) -> Callable[[Path, bool, bool], Split]:
    """Read torchvision's layout (ROOT/<cls_name>/raw) with :func:`read_idx_split`; download with torchvision
    first when the files are missing and downloading is allowed."""

    def load(root: Path, train: bool, download: bool) -> Split:
        folder = root / cls_name / "raw"
        missing = [name for name in IDX_FILES[train] if not (folder / name).is_file()]
        if missing and download:
            import torchvision

            try:
                with contextlib.redirect_stdout(sys.stderr):  # torchvision prints its download attempts
                    getattr(torchvision.datasets, cls_name)(str(root), train=train, download=True)
            except (RuntimeError, OSError, ValueError) as error:
                raise NeuromorphError(f"could not download {cls_name} into {str(root)!r}: "
                                      f"{_first_line(error)}") from None
        elif missing:
            raise NeuromorphError(f"{cls_name} not found under {str(root)!r} (downloading is off for this root): "
                                  f"no {', '.join(missing)} in {str(folder)!r}")
        return read_idx_split(folder, train, num_classes)

    return load


CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILES = ("test_batch",)


class _BatchUnpickler(pickle._Unpickler):  # noqa: SLF001 - the Python one: a corrupt length reads short, no MemoryError
    """Unpickles what a CIFAR-10 batch holds (dicts, lists, bytes, numbers, numpy arrays) and nothing else: a
    pickle naming any other class or function (which could run code) is refused."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch does not hold")
        return super().find_class(module, name)


def read_cifar10(folder: Path, train: bool) -> Split:
    """Read CIFAR-10's python pickle batches (``data``: uint8 ``[N, 3072]`` rows in CHW order, ``labels``)."""
    images, labels = [], []
    for name in CIFAR_TRAIN_FILES if train else CIFAR_TEST_FILES:
        path = folder / name
        if not path.is_file():
            raise NeuromorphError(f"CIFAR-10 file {str(path)!r} is missing")
        try:
            # from memory, not the file: a corrupt length then reads short instead of allocating what it says
            batch = _BatchUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
            if not isinstance(batch, dict):
                raise ValueError("not a dict of arrays")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            batch_labels = batch.get(b"labels", batch.get(b"fine_labels"))
            if data.ndim != 2 or data.shape[1] != 3072 or batch_labels is None or len(batch_labels) != len(data):
                raise ValueError("unexpected layout")
            batch_labels = np.asarray(batch_labels)
            if batch_labels.dtype.kind not in "iu" or (
                    len(batch_labels) and not 0 <= batch_labels.min() <= batch_labels.max() < 10):
                raise ValueError("labels must be integers 0 to 9")
        except Exception as error:  # noqa: BLE001 - any failure means a corrupt or foreign file
            raise NeuromorphError(f"CIFAR-10 file {str(path)!r} is corrupt or not a CIFAR-10 batch "
                                  f"({_first_line(error, 120)})") from None
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.as_tensor(batch_labels, dtype=torch.int64))
    return Split(torch.cat(images), torch.cat(labels))


def _cifar10_split(root: Path, train: bool, download: bool) -> Split:
    for folder in (root / CIFAR_FOLDER, root):
        if (folder / (CIFAR_TRAIN_FILES[0] if train else CIFAR_TEST_FILES[0])).is_file():
            return read_cifar10(folder, train)
    if download:
        import torchvision

        try:
            torchvision.datasets.CIFAR10(str(root), train=train, download=True)
        except Exception as error:  # noqa: BLE001
            raise NeuromorphError(
                f"CIFAR-10 not under {str(root)!r} and could not be downloaded: {_first_line(error)}"
            ) from None
        return read_cifar10(root / CIFAR_FOLDER, train)
    raise NeuromorphError(
        f"CIFAR-10 not found under {str(root)!r}: pass --data-root pointing at a folder holding {CIFAR_FOLDER}/"
    )


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    input_shape: tuple[int, int, int]
    num_classes: int
    load: Callable[[Path, bool, bool], Split]


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in (
        DatasetInfo("mnist", (1, 28, 28), 10, _torchvision_split("MNIST", 10)),
        DatasetInfo("fashion-mnist", (1, 28, 28), 10, _torchvision_split("FashionMNIST", 10)),
        DatasetInfo("cifar10", (3, 32, 32), 10, _cifar10_split),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    return lookup(DATASETS, name, "dataset")


def load_split(
    name: str,
    train: bool,
    root: str | os.PathLike | None = None,
    limit: int | None = None,
    download: bool | None = None,
) -> Split:
    """Load the train or test split of a dataset (optionally only its first ``limit`` samples).

    ``download`` None lets the root decide (never into the shared folder); False never touches the network.
    """
    info = dataset_info(name)
    path, allowed = resolve_data_root(root)
    return info.load(path, train, allowed if download is None else download and allowed).head(limit)


def iterate_batches(
    split: Split,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images in [0, 1] float32 [B, C, H, W], labels [B])``."""
    if batch_size <= 0:
        raise NeuromorphError(f"batch size must be positive, got {batch_size}")
    order = torch.randperm(len(split), generator=generator) if shuffle else torch.arange(len(split))
    for start in range(0, len(split), batch_size):
        index = order[start : start + batch_size]
        images = split.images[index].to(device=device, dtype=torch.float32) / 255.0
        yield images, split.labels[index].to(device)
