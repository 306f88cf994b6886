"""Change points: where a series' level moved for good, with its commit range, magnitude and
p-value.

Detection is penalised segmentation (PELT with a least-squares cost, ruptures' compiled
KernelCPD with the linear kernel) on the series relative to its median, with a penalty of
PENALTY x noise² x log(n): the noise is estimated robustly from successive differences, so
the penalty follows each series' own noise (BIC-like; Killick et al. 2012). Every change
point found must then pass Welch's t-test between its neighbouring segments at
MAX_PVALUE, the weakest dropped first and its neighbours retested, as the merge step of
Apache Otava (Hunter, Fleming et al. 2023) does after e-divisive. Neither Otava nor MongoDB's
signal-processing-algorithms installs beside NumPy 2 (they pin NumPy 2.2.0 and < 2).
The parameters are those scripts/validate_changes.py validated (README: recall and false
change points per 1,000 points on synthetic histories).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np

from factorbench.history.store import Point, SeriesKey

PENALTY = 6.0
"""Penalty per change point, in units of noise² x log(n)."""
MAX_PVALUE = 0.001
"""A change point's two sides must differ at this significance (Welch's t-test)."""
MIN_SIZE = 2
"""Fewest points on a level; with the outlier filter, a level needs 3 points to be seen: the
newest two commits are the pairwise gate's to judge."""
OUTLIER = 4.0
OUTLIER_WINDOW = 5
"""A point more than OUTLIER x noise from the median of the OUTLIER_WINDOW points around it
is an outlier (a Hampel filter)."""
NOISE_FLOOR = 0.001
"""Least relative noise assumed: instruction counts hardly vary, and a series without any
noise would otherwise make every 0.01% step a change point."""


@dataclass(frozen=True)
class ChangePoint:
    """A series' level moved between ``previous_commit`` (last point before) and ``commit``
    (first point after)."""

    benchmark: str
    machine: str
    mode: str
    metric: str
    params: str
    unit: str
    commit: str
    subject: str
    commit_time: float
    previous_commit: str
    before: float
    """Median of the level before."""
    after: float
    p_value: float
    points_before: int
    points_after: int
    position: int = 0
    """Where the new level starts among the series' measured points (orders a series'
    change points where commits share a committer time)."""

    @property
    def key(self) -> SeriesKey:
        return (self.benchmark, self.machine, self.mode, self.metric, self.params)

    @property
    def magnitude(self) -> float:
        """Relative change of the level: +0.05 is 5% more (slower, more instructions)."""
        return self.after / self.before - 1 if self.before else math.inf

    @property
    def regression(self) -> bool:
        """Every stored metric (seconds, instructions) is better smaller."""
        return self.after > self.before

    def to_dict(self) -> dict:
        return {**asdict(self), "magnitude": self.magnitude, "regression": self.regression}


def noise(relative: np.ndarray) -> float:
    """The standard deviation of the noise, from successive differences (a level shift
    moves one difference only): their median absolute deviation, scaled for normal noise."""
    differences = np.diff(relative)
    return float(np.median(np.abs(differences - np.median(differences))) / 0.6745 / math.sqrt(2))


def welch_pvalue(left: np.ndarray, right: np.ndarray) -> float:
    from scipy.stats import ttest_ind

    if left.std() == 0 and right.std() == 0:  # noiseless (instruction counts): any difference is real
        return 1.0 if left.mean() == right.mean() else 0.0
    with warnings.catch_warnings():
        # nearly identical counts: scipy warns of precision loss, and the p-value is still right
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(ttest_ind(left, right, equal_var=False).pvalue)


def without_outliers(relative: np.ndarray, sigma: float) -> np.ndarray:
    """A Hampel filter: a point further than OUTLIER x noise from the median of its
    neighbourhood becomes that median. One slow sample of a busy machine is not a level,
    while a step moves the neighbourhood's median with it."""
    from scipy.ndimage import median_filter

    local = median_filter(relative, size=OUTLIER_WINDOW, mode="nearest")
    return np.where(np.abs(relative - local) > OUTLIER * sigma, local, relative)


def detect(values: np.ndarray, *, penalty: float = PENALTY, max_pvalue: float = MAX_PVALUE,
           min_size: int = MIN_SIZE, outliers: bool = True) -> list[tuple[int, float]]:
    """Change points of ``values`` as (index of the first point of the new level, p-value);
    ``outliers``: filter single wild points first (timings; instruction counts have none, and
    there a level of two commits is a real one)."""
    import ruptures

    n = len(values)
    level = float(np.median(values)) if n else 0.0
    if n < 2 * min_size or level <= 0:
        return []
    sigma = max(noise(values / level), NOISE_FLOOR)
    relative = without_outliers(values / level, sigma) if outliers else values / level
    found = ruptures.KernelCPD(kernel="linear", min_size=min_size).fit(relative.reshape(-1, 1))
    breaks = [int(b) for b in found.predict(pen=penalty * sigma**2 * math.log(n))[:-1]]

    def pvalue(i: int) -> float:
        """Of breaks[i], between its neighbouring levels."""
        start = breaks[i - 1] if i else 0
        stop = breaks[i + 1] if i + 1 < len(breaks) else n
        return welch_pvalue(relative[start:breaks[i]], relative[breaks[i]:stop])

    pvalues = [pvalue(i) for i in range(len(breaks))]
    while breaks:
        weakest = int(np.argmax(pvalues))
        if pvalues[weakest] <= max_pvalue:
            return list(zip(breaks, pvalues))
        del breaks[weakest], pvalues[weakest]
        for neighbour in (weakest - 1, weakest):  # the two whose levels just merged
            if 0 <= neighbour < len(breaks):
                pvalues[neighbour] = pvalue(neighbour)
    return []


def series_changes(points: list[Point], **options) -> list[ChangePoint]:
    """The change points of one series (its measured points; failed and skipped ones are gaps)."""
    measured = [point for point in points if point.status == "ok" and point.value is not None]
    values = np.array([point.value for point in measured], dtype=float)
    found = detect(values, **{"outliers": not measured or measured[0].mode != "callgrind", **options})
    bounds = [0, *(index for index, _ in found), len(measured)]
    changes = []
    for i, (index, p_value) in enumerate(found):
        first = measured[index]
        changes.append(ChangePoint(
            benchmark=first.benchmark, machine=first.machine, mode=first.mode, metric=first.metric,
            params=first.params, unit=first.unit, commit=first.commit, subject=first.subject,
            commit_time=first.commit_time, previous_commit=measured[index - 1].commit,
            before=float(np.median(values[bounds[i]:index])), after=float(np.median(values[index:bounds[i + 2]])),
            p_value=p_value, points_before=index - bounds[i], points_after=bounds[i + 2] - index, position=index))
    return changes


def find_changes(all_series: Iterable[list[Point]], **options) -> list[ChangePoint]:
    """Change points of every series, regressions first, then the largest changes first."""
    found = [change for points in all_series for change in series_changes(points, **options)]
    return sorted(found, key=lambda change: (not change.regression, -abs(change.magnitude), change.key))


def standing(changes: list[ChangePoint]) -> list[ChangePoint]:
    """The regressions not undone: a regression is undone when its series' level after the
    last of its later change points is back below the middle of the step it made."""
    kept = []
    for change in changes:
        if not change.regression:
            continue
        later = sorted((other for other in changes if other.key == change.key and other.position > change.position),
                       key=lambda other: other.position)
        level = later[-1].after if later else change.after
        if level > (change.before + change.after) / 2:
            kept.append(change)
    return kept
