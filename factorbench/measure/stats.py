"""How noisy a row's raw samples are: coefficient of variation, a 95% confidence interval
of the median, and pyperf's warnings that a measurement is unstable.

A row measured in one round: the interval is distribution-free (order statistics of the
binomial(n, 1/2) count of samples below the median), so it assumes nothing about the
shape of timing noise, which is skewed and often multi-modal; it needs at least 6 samples.

A row measured in several rounds (each in a fresh worker process, interleaved with the
other implementations): samples of one process are not independent of each other (its
memory placement, its CPU and the neighbours of the moment shift all of them together, by
5-10% and now and then 1.9x on these machines), so the interval is a Student t interval of
the mean log round median, between rounds, as pyperf compares the values of its processes.
"""

from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95
CI_METHOD = "distribution-free order-statistic CI of the median (binomial ranks)"
ROUNDS_CI_METHOD = "Student t CI of the mean log median of the rounds (one worker process each)"
MIN_CI_SAMPLES = 6
"""Fewer samples cannot bracket the median with 95% confidence (2 * 0.5**5 > 0.05)."""
UNSTABLE_CV = 0.10
"""pyperf: a standard deviation of 10% of the mean or more makes a result unstable."""
UNSTABLE_SPREAD = 0.5
"""pyperf: the minimum or the maximum 50% or more away from the median."""
SHORT_SAMPLE_S = 1e-3
"""pyperf: samples shorter than 1 ms are dominated by timer and scheduler noise."""


def median_ci(times: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """(low, high) bounding the true median with ``confidence``, or None with too few samples."""
    n = len(times)
    if n < MIN_CI_SAMPLES:
        return None
    ordered = sorted(times)
    # The largest rank j with P(Binomial(n, 1/2) < j) <= (1 - confidence) / 2, summed
    # exactly (scipy.stats would add half a second to every worker's start).
    tail, below, j = (1 - confidence) / 2 * 2**n, 0, 0
    while below + math.comb(n, j) <= tail:
        below += math.comb(n, j)
        j += 1
    j = max(j, 1)
    return ordered[j - 1], ordered[n - j]


def rounds_ci(medians: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """(low, high) of the typical round's median from the rounds' medians (each from its own
    process); None with fewer than 2 rounds or a non-positive median."""
    if len(medians) < 2 or min(medians) <= 0:
        return None
    from scipy.stats import t  # in the runner only: workers never merge rounds

    logs = np.log(medians)
    margin = t.ppf((1 + confidence) / 2, len(logs) - 1) * float(np.std(logs, ddof=1)) / math.sqrt(len(logs))
    centre = float(np.mean(logs))
    return math.exp(centre - margin), math.exp(centre + margin)


def rounds_disagree(medians: list[float]) -> str | None:
    """pyperf's standard-deviation rule applied between rounds: why their medians are too
    far apart to trust, or None."""
    variation = cv(medians)
    if variation is None or variation < UNSTABLE_CV:
        return None
    return (f"the {len(medians)} rounds' medians (one process each) vary by {variation:.0%} "
            f"(standard deviation of the mean)")


def half_width(times: list[float]) -> float | None:
    """Half the CI's width relative to the median (0.02 = ±2%), or None without a CI."""
    ci = median_ci(times)
    if ci is None:
        return None
    median = float(np.median(times))
    return (ci[1] - ci[0]) / 2 / median if median > 0 else math.inf


def cv(times: list[float]) -> float | None:
    if len(times) < 2:
        return None
    mean = float(np.mean(times))
    return float(np.std(times, ddof=1)) / mean if mean > 0 else None


def unstable(times: list[float], sample_s: float | None) -> list[str]:
    """Why the samples are too noisy to trust (pyperf's rules); empty when they are not.
    ``sample_s`` is the duration of one sample (calls per sample x seconds per call)."""
    reasons: list[str] = []
    if len(times) < 2:
        return reasons
    variation = cv(times)
    if variation is not None and variation >= UNSTABLE_CV:
        reasons.append(f"standard deviation is {variation:.0%} of the mean")
    median = float(np.median(times))
    if median > 0:
        if (median - min(times)) / median >= UNSTABLE_SPREAD:
            reasons.append(f"minimum is {(median - min(times)) / median:.0%} below the median")
        if (max(times) - median) / median >= UNSTABLE_SPREAD:
            reasons.append(f"maximum is {(max(times) - median) / median:.0%} above the median")
    if sample_s is not None and sample_s < SHORT_SAMPLE_S:
        reasons.append(f"samples last only {sample_s * 1e6:.0f} µs (< 1 ms)")
    return reasons
