"""Opening a run: what every command that reads a checkpoint starts from, done one way.

``open_run(checkpoint, dataset=None, data_root=None)`` loads the checkpoint (a file or a training folder), rebuilds
its model, and picks the dataset: the one given, else the one it was trained for. ``run.test_split(limit)`` is the
first ``limit`` test samples checked against the model (:func:`check_images`), ``run.test_samples(limit)`` the same
encoded as the model's encoder does, with the run's seed: ``(x [T, N, ...], labels [N])``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from neuromorph.checkpoint import Checkpoint, load_checkpoint
from neuromorph.config import TrainConfig
from neuromorph.data import Split, iterate_batches, load_split
from neuromorph.encoders import encode
from neuromorph.errors import NeuromorphError
from neuromorph.spec import ModelSpec

if TYPE_CHECKING:
    from neuromorph.models import SpikingNet


def check_images(data: Split | torch.Tensor, spec: ModelSpec, dataset: str | None = None) -> Split | torch.Tensor:
    """``data`` as the model takes it, or refused: images ``[N, C, H, W]`` of another shape than
    ``spec.input_shape`` or, for a split, labels outside ``0 .. num_classes - 1``. ``dataset`` names the data in
    the error. A model with a flat input (``input_shape`` ``(784,)``, as snnTorch and Norse export MLPs) gets the
    images flattened in C, H, W order when their sizes agree."""
    images = data.images if isinstance(data, Split) else data
    shape = tuple(images.shape[1:])
    if shape != tuple(spec.input_shape):
        if len(spec.input_shape) == 1 and math.prod(shape) == spec.input_shape[0]:
            images = images.reshape(images.shape[0], *spec.input_shape)
            data = Split(images, data.labels) if isinstance(data, Split) else images
        else:
            raise NeuromorphError(f"{dataset + ' ' if dataset else ''}images are {shape}, the model takes "
                                  f"{spec.input_shape}: use the data it expects")
    if isinstance(data, Split) and len(data) and (int(data.labels.max()) >= spec.num_classes
                                                  or int(data.labels.min()) < 0):
        raise NeuromorphError(f"{dataset or 'the data'} has labels from {int(data.labels.min())} to "
                              f"{int(data.labels.max())}, the model has classes 0 to {spec.num_classes - 1}")
    return data


def load_test_split(spec: ModelSpec, dataset: str, limit: int | None = None,
                    data_root: str | os.PathLike | None = None) -> Split:
    """The first ``limit`` test samples of ``dataset`` (all when None), checked against ``spec``."""
    split = load_split(dataset, train=False, root=data_root, limit=limit)
    return check_images(split, spec, dataset)


def encode_split(split: Split, spec: ModelSpec, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """All of ``split`` encoded for ``spec`` (Poisson noise seeded with ``seed``): ``(x [T, N, ...], labels [N])``."""
    images, labels = next(iterate_batches(split, len(split)))
    return encode(images, spec, torch.Generator().manual_seed(seed)), labels


@dataclass(frozen=True)
class Run:
    """A checkpoint opened for a command: its model (eval mode), its settings, and the dataset to test on."""

    source: str  # the checkpoint as given (file or folder)
    checkpoint: Checkpoint
    config: TrainConfig
    model: SpikingNet
    dataset: str
    data_root: str | None = None

    @property
    def spec(self) -> ModelSpec:
        return self.checkpoint.spec

    @property
    def seed(self) -> int:
        """The run's seed: Poisson noise of the encoded test samples (and the training's weights and shuffling)."""
        return self.config.seed

    def test_split(self, limit: int | None = None) -> Split:
        """The first ``limit`` test samples (all when None), checked against the model."""
        return load_test_split(self.spec, self.dataset, limit, self.data_root)

    def test_samples(self, limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``limit`` test samples encoded for the model with the run's seed: ``(x [T, N, ...], labels)``."""
        return encode_split(self.test_split(limit), self.spec, self.seed)


def open_run(checkpoint: str | os.PathLike, dataset: str | None = None,
             data_root: str | os.PathLike | None = None) -> Run:
    """Load ``checkpoint`` (file or training folder) and rebuild its model; ``dataset`` defaults to the one the
    checkpoint was trained for (its settings' ``dataset``)."""
    ckpt = load_checkpoint(checkpoint)
    config = ckpt.config
    return Run(source=str(checkpoint), checkpoint=ckpt, config=config, model=ckpt.build_model().eval(),
               dataset=dataset or config.dataset, data_root=None if data_root is None else str(data_root))
