"""Data augmentation of training batches: pure functions of a batch and a seeded generator.

An augmentation is ``(images [B, C, H, W] in [0, 1], generator) -> images`` of the same shape, applied to training
batches only (never to test data), drawn from the epoch's seeded generator so that a run stays reproducible.

- ``none``: the images as they are.
- ``crop``: random translation by up to ``pad`` pixels in each direction (zero padding, then a random crop of the
  original size; the standard CIFAR-10 recipe with ``pad = 4``, and ``pad = 2`` for 28 x 28 images).
- ``flip-crop``: ``crop``, then a horizontal flip of each image with probability 1/2 (for natural images such as
  CIFAR-10; it does not suit digits).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from neuromorph.errors import lookup

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def crop_padding(image_size: int) -> int:
    """Pixels of random translation for an image side of ``image_size``: 4 for 32 x 32, 2 for 28 x 28."""
    return 4 if image_size >= 32 else 2 if image_size >= 16 else 1


def random_crop(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image shifted by a random (dy, dx) in ``[-pad, pad]``, zeros shifted in (pad then crop)."""
    batch, _, height, width = images.shape
    pad = crop_padding(min(height, width))
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (2, batch), generator=generator).to(images.device)
    rows = (offsets[0][:, None] + torch.arange(height, device=images.device)[None, :])  # [B, H]
    cols = (offsets[1][:, None] + torch.arange(width, device=images.device)[None, :])  # [B, W]
    index = torch.arange(batch, device=images.device)[:, None, None]
    # padded[b, :, rows[b, i], cols[b, j]] for every b, i, j
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()


def random_flip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image mirrored left-right with probability 1/2."""
    flip = (torch.rand(images.shape[0], generator=generator) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


AUGMENTATIONS: dict[str, Augmentation] = {
    "none": lambda images, generator: images,
    "crop": random_crop,
    "flip-crop": lambda images, generator: random_flip(random_crop(images, generator), generator),
}


def get_augmentation(name: str) -> Augmentation:
    return lookup(AUGMENTATIONS, name, "augmentation")


def augment(images: torch.Tensor, name: str, generator: torch.Generator) -> torch.Tensor:
    """``images`` augmented by the augmentation called ``name`` (``none`` returns them unchanged)."""
    return get_augmentation(name)(images, generator)
