"""Calibrated repeated timing, pyperf/timeit style, keeping every raw value.

A plain function (no global state, no argv) so the CLI, asv and pytest can all call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from factorbench.measure import stats

MAX_SAMPLES = 200


@dataclass
class Timing:
    times: list[float]
    """Seconds per call, one value per sample (each sample may run several calls)."""
    calls_per_sample: int
    warmup_s: float
    """The first call at this size, kept apart from the samples."""
    stopped_by: str = "repeat"
    """What ended sampling: "precision" (the CI was narrow enough), "budget" (time ran
    out first), "max samples", or "repeat" (no precision was asked for)."""

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def iqr(self) -> float:
        q1, q3 = np.percentile(self.times, [25, 75])
        return float(q3 - q1)


def measure(call: Callable[[], object], *, repeat: int = 7, min_sample_s: float = 0.05,
            budget_s: float | None = None, precision: float | None = None) -> Timing:
    """Time ``call``: one warm-up call, then at least ``repeat`` samples of N calls each.

    N is calibrated so that one sample lasts at least ``min_sample_s``, which keeps
    timer resolution and scheduler noise small next to fast calls. With ``precision``
    (0.02 = ±2%), sampling goes on until the median's 95% CI is that narrow, the budget is
    spent, or MAX_SAMPLES were taken. When ``budget_s`` is given, fewer than ``repeat``
    samples are taken rather than exceeding it (at least 3).
    """
    started = time.perf_counter()
    call()
    warmup_s = time.perf_counter() - started

    calls = 1
    per_call = warmup_s
    while per_call * calls < min_sample_s:
        calls = max(calls * 2, int(min_sample_s / max(per_call, 1e-9) * 1.2))
        start = time.perf_counter()
        for _ in range(calls):
            call()
        per_call = (time.perf_counter() - start) / calls
    if budget_s is not None:
        affordable = int(budget_s / max(per_call * calls, 1e-9))
        repeat = max(3, min(repeat, affordable))

    def sample() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        return (time.perf_counter() - start) / calls

    times = [sample() for _ in range(repeat)]
    stopped_by = "repeat"
    if precision is not None:
        while True:
            width = stats.half_width(times)
            if width is not None and width <= precision:
                stopped_by = "precision"
                break
            if len(times) >= MAX_SAMPLES:
                stopped_by = "max samples"
                break
            if budget_s is not None and time.perf_counter() - started + per_call * calls > budget_s:
                stopped_by = "budget"
                break
            times.append(sample())
    return Timing(times=times, calls_per_sample=calls, warmup_s=warmup_s, stopped_by=stopped_by)
