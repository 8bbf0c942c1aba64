"""benchmarks/_common.py's ratio interval: the numbers the benchmark reports against its goals."""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Iterator
from pathlib import Path
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


def _groups(speeds: list[float], ratio: float, n: int = 40) -> list[dict[str, list[float]]]:
    """One group per fresh process pair: the daemon's model runs at its process's own speed."""
    rng = random.Random(7)
    out = []
    for speed in speeds:
        base = [20.0 + rng.gauss(0, 0.3) for _ in range(n)]
        out.append({"daemon": [speed * ratio * b + rng.gauss(0, 0.3) for b in base], "local": base})
    return out


def test_pooling_keeps_the_ratio_and_resamples_whole_groups(bench: Any) -> None:
    steady = bench.pooled(_groups([1.0] * 6, 1.12), "local")["daemon"]
    lucky = bench.pooled(_groups([0.94, 1.06, 0.97, 1.03, 1.0, 1.0], 1.12), "local")["daemon"]
    for arm in (steady, lucky):
        lo, hi = arm["ratio_90"]
        assert lo < 1.12 < hi and lo <= arm["ratio_median"] <= hi
        assert len(arm["group_ratios"]) == 6 and arm["paired_diff_ms"]["n"] == 240
    # Process-to-process speed shows in the pairs' own ratios and widens the interval: it is
    # not averaged away as if every round were independent.
    assert max(lucky["group_ratios"]) - min(lucky["group_ratios"]) > 0.1
    assert lucky["ratio_90"][1] - lucky["ratio_90"][0] > 3 * (
        steady["ratio_90"][1] - steady["ratio_90"][0]
    )


def test_a_self_timed_arm_reports_its_own_time(bench: Any) -> None:
    times = bench.interleave({"far": lambda: 7.5, "near": lambda: None}, 3, self_timed=["far"])
    assert times["far"] == [7.5, 7.5, 7.5]
    assert all(0.0 <= t < 7.5 for t in times["near"])


def test_the_load_average_is_nan_where_the_platform_has_none(
    bench: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bench.load_average() >= 0.0
    monkeypatch.delattr(bench.os, "getloadavg")  # as on Windows
    assert math.isnan(bench.load_average())
    assert "load average nan" in bench.env_line({**_ENV, "loadavg_1m": bench.load_average()})


_ENV = dict(
    usable_cores=2, cpu_count=2, torch_threads=2, torch_interop_threads=2, cuda=False,
    python="3.11", torch="2", diffusers="0", grpcio="1",
)  # fmt: skip


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads Linux's /proc")
def test_cpu_time_of_a_process_grows_with_its_work(bench: Any) -> None:
    import os

    before = bench.cpu_ms(os.getpid())
    sum(i * i for i in range(3_000_000))  # ~100 ms of CPU here; the clock ticks every 10 ms
    assert bench.cpu_ms(os.getpid()) - before >= 20.0
    assert math.isnan(bench.cpu_ms(2**22 + 12345))  # above Linux's pid limit: no such process


def test_the_hand_off_cost_is_timed_per_pause_and_its_child_exits(bench: Any) -> None:
    import multiprocessing

    import _handoff  # beside _common, on the path the fixture set

    costs = _handoff.hand_off_us((0.0, 5.0), rounds=15)
    assert list(costs) == ["0 ms", "5 ms"]
    assert all(0.0 < v < 1e6 for v in costs.values())  # microseconds, one round trip each
    assert not multiprocessing.active_children()
    assert "back to back" in _handoff.hand_off_line(costs)
