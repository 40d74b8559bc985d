"""Synthetic data for tests: small, learnable, in the real formats."""

from __future__ import annotations

import pickle

import numpy as np
import torch

from neuromorph.data import Split


def synthetic_split(n: int, shape=(1, 8, 8), classes: int = 4, seed: int = 0) -> Split:
    """A learnable synthetic task: each class lights up a different quadrant pattern plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    prototypes = (torch.rand((classes, *shape), generator=g) > 0.6).float()
    noise = torch.rand((n, *shape), generator=g) * 0.3
    images = ((prototypes[labels] * 0.8 + noise).clamp(0, 1) * 255).to(torch.uint8)
    return Split(images, labels)


def write_cifar_batches(folder, per_batch=4, seed=0):
    """Synthetic CIFAR-10 in its real format: pickled dicts with uint8 `data` [N, 3072] (CHW rows) and labels."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        with open(folder / name, "wb") as handle:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data,
                         b"filenames": [b"x.png"] * per_batch}, handle)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({b"label_names": [b"airplane"] * 10, b"num_cases_per_batch": per_batch}, handle)
    return written
