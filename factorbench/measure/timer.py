"""Calibrated repeated timing, pyperf/timeit style, keeping every raw value.

A plain function (no global state, no argv) so the CLI, asv and pytest can all call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass
class Timing:
    times: list[float]
    """Seconds per call, one value per sample (each sample may run several calls)."""
    calls_per_sample: int
    warmup_s: float
    """The first call at this size, kept apart from the samples."""

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def iqr(self) -> float:
        q1, q3 = np.percentile(self.times, [25, 75])
        return float(q3 - q1)


def measure(call: Callable[[], object], *, repeat: int = 7, min_sample_s: float = 0.05,
            budget_s: float | None = None) -> Timing:
    """Time ``call``: one warm-up call, then ``repeat`` samples of N calls each.

    N is calibrated so that one sample lasts at least ``min_sample_s``, which keeps
    timer resolution and scheduler noise small next to fast calls. When ``budget_s`` is
    given, fewer samples are taken rather than exceeding it (at least 3).
    """
    start = time.perf_counter()
    call()
    warmup_s = time.perf_counter() - start

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

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        times.append((time.perf_counter() - start) / calls)
    return Timing(times=times, calls_per_sample=calls, warmup_s=warmup_s)
