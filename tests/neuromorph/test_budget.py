"""Compute budgets: a short measured run scaled to epochs and grids."""

from __future__ import annotations

import pytest

from neuromorph.budget import RunEstimate, StepTiming, estimate_grid, estimate_run, measure_step_seconds
from neuromorph.config import TrainConfig


def test_estimates_scale_with_epochs_samples_and_runs():
    timing = StepTiming(train_seconds_per_sample=0.004, test_seconds_per_sample=0.001, batch_size=100, threads=1)
    run = estimate_run(timing, epochs=3, train_samples=1000, test_samples=500)
    assert run.train_seconds == pytest.approx(3 * 1000 * 0.004) and run.test_seconds == pytest.approx(3 * 0.5)
    partial = estimate_run(timing, epochs=1, train_samples=1001, test_samples=0)  # a last, partial batch counts
    assert partial.train_seconds == pytest.approx(1100 * 0.004)
    assert estimate_grid([run, run, RunEstimate(3600.0, 0.0)]) == pytest.approx(1 + 2 * 13.5 / 3600)


def test_measured_step_seconds_are_positive_and_cheaper_to_test(tiny_cnn_spec):
    timing = measure_step_seconds(tiny_cnn_spec, TrainConfig(batch_size=16, lam=1e-3), steps=3, warmup=1)
    assert timing.batch_size == 16 and timing.threads >= 1
    assert 0 < timing.test_seconds_per_sample < timing.train_seconds_per_sample < 1
