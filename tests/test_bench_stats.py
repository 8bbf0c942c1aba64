"""benchmarks/_common.py's ratio interval: the numbers the benchmark reports against its goals."""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def bench() -> Iterator[Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _common

        yield _common
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


def noisy(n: int, ratio: float, seed: int) -> tuple[list[float], list[float]]:
    """Rounds of (arm, baseline): a load that drifts over the run falls on both alike."""
    rng = random.Random(seed)
    load = [1.0 + 0.3 * rng.random() for _ in range(n)]
    base = [20.0 * k + rng.gauss(0, 1.5) for k in load]
    return [ratio * 20.0 * k + rng.gauss(0, 1.5) for k in load], base


def test_an_exact_ratio_has_no_spread(bench: Any) -> None:
    base = [10.0 + i for i in range(30)]
    assert bench.ratio_interval([2 * b for b in base], base) == pytest.approx((2.0, 2.0))


def test_the_interval_holds_the_true_ratio_and_narrows_with_more_rounds(bench: Any) -> None:
    lo30, hi30 = bench.ratio_interval(*noisy(30, 1.12, seed=1))
    lo120, hi120 = bench.ratio_interval(*noisy(120, 1.12, seed=1))
    assert lo30 < 1.12 < hi30 and lo120 < 1.12 < hi120
    assert hi120 - lo120 < hi30 - lo30
    arm = bench.compare({"a": noisy(60, 1.12, 2)[0], "b": noisy(60, 1.12, 2)[1]}, "b")["a"]
    assert arm["ratio_90"][0] <= arm["ratio_median"] <= arm["ratio_90"][1]
