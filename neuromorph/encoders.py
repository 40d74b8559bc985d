"""Input encoders: images in [0, 1], ``[B, C, H, W]``, to time-major inputs ``[T, B, C, H, W]``."""

from __future__ import annotations

import torch

from neuromorph.spec import ModelSpec


def direct_encode(images: torch.Tensor, time_steps: int, gain: float = 1.0) -> torch.Tensor:
    """The image times ``gain`` as a constant input current on every step.

    Returns an expanded view (stride 0 over time) so that the first synaptic layer can be computed once.
    """
    scaled = images * gain
    return scaled.unsqueeze(0).expand(time_steps, *scaled.shape)


def poisson_encode(
    images: torch.Tensor,
    time_steps: int,
    max_rate_hz: float,
    dt_s: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Rate coding: independent Bernoulli spikes with probability ``min(1, pixel * max_rate_hz * dt_s)``."""
    probability = (images * (max_rate_hz * dt_s)).clamp(0.0, 1.0)
    noise = torch.rand((time_steps, *images.shape), generator=generator, device=images.device if generator is None
                       else generator.device)
    return (noise.to(images.device) < probability.unsqueeze(0)).to(images.dtype)


def encode(images: torch.Tensor, spec: ModelSpec, generator: torch.Generator | None = None) -> torch.Tensor:
    """Encode a batch of images as ``spec.encoder`` says."""
    enc = spec.encoder
    if enc.kind == "poisson":
        return poisson_encode(images, spec.time_steps, enc.max_rate_hz, spec.dt_s, generator)
    return direct_encode(images, spec.time_steps, enc.gain)
