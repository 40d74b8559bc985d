"""Trained-looking tiny models for the export tests: weights scaled so that every hidden layer fires."""

from __future__ import annotations

import pytest
import torch

from neuromorph.encoders import encode
from neuromorph.models import build_model, calibrate_firing
from neuromorph.spec import EncoderSpec, mlp_spec


def firing_model(spec, samples: int = 6, rate: float = 0.15, seed: int = 0):
    """A model of ``spec`` whose hidden layers fire at about ``rate``, and an encoded input batch for it."""
    torch.manual_seed(seed)
    model = build_model(spec).eval()
    images = torch.rand((samples, *spec.input_shape), generator=torch.Generator().manual_seed(seed + 1))
    x = encode(images, spec, generator=torch.Generator().manual_seed(seed + 2))
    calibrate_firing(model, x, target_rate=rate)
    return model, x


@pytest.fixture
def poisson_mlp_spec():
    return mlp_spec(input_shape=(1, 6, 6), hidden=(20, 12), num_classes=4, time_steps=8,
                    encoder=EncoderSpec(kind="poisson", max_rate_hz=400.0))
