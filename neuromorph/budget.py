"""Compute budgets: how long a training run, or a grid of them, will take, from a short measured run.

:func:`measure_step_seconds` times a few real training steps (forward, penalty, backward, optimizer step) and a few
test batches of a model on the current machine and thread count; :func:`estimate_run` scales them to a run of a
given number of epochs (training samples per epoch, test samples per evaluation), and :func:`estimate_grid` adds the
runs of a sweep. Used by sweeps to print the grid's CPU hours before they start.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from neuromorph.config import TrainConfig
from neuromorph.encoders import encode
from neuromorph.models import build_model
from neuromorph.penalties import build_penalty
from neuromorph.spec import ModelSpec
from neuromorph.training import make_optimizer, training_step


@dataclass(frozen=True)
class StepTiming:
    """Seconds per training sample and per test sample, measured with ``threads`` torch threads."""

    train_seconds_per_sample: float
    test_seconds_per_sample: float
    batch_size: int
    threads: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class RunEstimate:
    train_seconds: float
    test_seconds: float

    @property
    def seconds(self) -> float:
        return self.train_seconds + self.test_seconds


def measure_step_seconds(spec: ModelSpec, config: TrainConfig, steps: int = 6, warmup: int = 2) -> StepTiming:
    """Time ``steps`` training steps (after ``warmup`` untimed ones) and as many test batches, on random images of
    the model's input shape, with the penalty ``config`` names. The median step is taken (robust to a stall)."""
    torch.manual_seed(config.seed)
    model = build_model(spec)
    optimizer = make_optimizer(model, config)
    penalty = build_penalty(config.penalty, model, config.device_profile)
    generator = torch.Generator().manual_seed(config.seed)
    batch = config.batch_size
    images = torch.rand((batch, *spec.input_shape), generator=generator)
    labels = torch.randint(0, spec.num_classes, (batch,), generator=generator)
    train_times, test_times = [], []
    for step in range(warmup + steps):
        started = time.perf_counter()
        model.train()
        training_step(model, model.fan_outs, optimizer, penalty, encode(images, spec, generator), labels, config.lam,
                      config.power)
        middle = time.perf_counter()
        model.eval()
        with torch.no_grad():
            model(encode(images, spec, generator)).logits.argmax(1)
        if step >= warmup:
            train_times.append(middle - started)
            test_times.append(time.perf_counter() - middle)
    median = lambda values: sorted(values)[len(values) // 2]  # noqa: E731
    return StepTiming(median(train_times) / batch, median(test_times) / batch, batch, torch.get_num_threads())


def estimate_run(timing: StepTiming, epochs: int, train_samples: int, test_samples: int) -> RunEstimate:
    """A run of ``epochs`` epochs, each over ``train_samples`` and followed by a test over ``test_samples``."""
    steps = math.ceil(train_samples / timing.batch_size)
    return RunEstimate(train_seconds=epochs * steps * timing.batch_size * timing.train_seconds_per_sample,
                       test_seconds=epochs * test_samples * timing.test_seconds_per_sample)


def estimate_grid(runs: list[RunEstimate]) -> float:
    """CPU hours of a grid of runs, each on one core (the total; divide by the workers for the wall time)."""
    return sum(run.seconds for run in runs) / 3600
