"""Shared fixtures: tiny models and synthetic data, so that the suite runs in minutes on two cores."""

from __future__ import annotations

import pytest

from neuromorph.data import Split
from neuromorph.spec import Conv, Dense, Flatten, ModelSpec, Pool, cnn_spec, mlp_spec
from tests.helpers import synthetic_split


@pytest.fixture
def tiny_mlp_spec() -> ModelSpec:
    return mlp_spec(input_shape=(1, 8, 8), hidden=(24, 16), num_classes=4, time_steps=6)


@pytest.fixture
def tiny_cnn_spec() -> ModelSpec:
    return cnn_spec(input_shape=(1, 12, 12), channels=(4, 6), kernel_size=3, padding=1, hidden=(12,),
                    num_classes=4, time_steps=6)


@pytest.fixture
def strided_cnn_spec() -> ModelSpec:
    """Conv consumers with stride 2 and padding, pooling that crops a border, and a dense consumer."""
    layers = (Conv(3, 3, stride=1, padding=1), Pool(2), Conv(5, 5, stride=2, padding=1), Conv(4, 3, stride=2,
              padding=1), Flatten(), Dense(3))
    return ModelSpec(input_shape=(2, 17, 15), layers=layers, num_classes=3, time_steps=5)


@pytest.fixture
def tiny_split() -> Split:
    return synthetic_split(192)


def pytest_terminal_summary(terminalreporter) -> None:
    """The fuzz test's counts per input kind (tests/test_fuzz.py), when it ran."""
    import sys

    fuzz = sys.modules.get("tests.test_fuzz")
    if fuzz is None or not fuzz.OUTCOMES:
        return
    terminalreporter.section("fuzz cases per input kind")
    terminalreporter.write_line(f"{'kind':<20} {'cases':>6} {'clean errors':>13} {'accepted':>9} {'crashes':>8}")
    failed = {report.nodeid for report in terminalreporter.stats.get("failed", []) if "test_fuzz" in report.nodeid}
    for kind, counts in sorted(fuzz.OUTCOMES.items()):
        total = sum(counts.values())
        terminalreporter.write_line(f"{kind:<20} {total:>6} {counts['clean']:>13} {counts['accepted']:>9} "
                                    f"{'see failures' if failed else 0:>8}")
