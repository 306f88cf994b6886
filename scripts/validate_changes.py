"""How well `factorbench history changes` finds steps in noisy histories (README figures).

Synthetic series of 1,000 points: normal noise of a coefficient of variation (CV) 1% or 2%
around a level that steps up or down by 3%, 5% or 10% at 3 random commits (at least 100
points apart and from the ends), plus series with no step at all. ``--noise spiky`` adds
what wall times have and normal noise has not: 2% of the points 20% slow (a busy machine). A true step counts as
found when a change point lies within TOLERANCE points of it; every other change point is
false. Seeded: the same figures on every machine.

    python scripts/validate_changes.py [--series 40] [--seed 0] [--noise normal|spiky]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from factorbench.history.changes import detect

POINTS = 1000
STEPS_PER_SERIES = 3
TOLERANCE = 5
CVS = (0.01, 0.02)
STEP_SIZES = (0.03, 0.05, 0.10)


def synthetic(rng: np.random.Generator, cv: float, step: float | None,
              spiky: bool = False) -> tuple[np.ndarray, list[int]]:
    level = np.full(POINTS, 1e-3)
    truth: list[int] = []
    if step is not None:
        while not truth:
            candidates = sorted(rng.choice(np.arange(100, POINTS - 100), STEPS_PER_SERIES, replace=False))
            if min(np.diff(candidates)) >= 100:
                truth = [int(c) for c in candidates]
        for at in truth:
            level[at:] *= (1 + step) if rng.random() < 0.5 else 1 / (1 + step)
    values = level * (1 + cv * rng.standard_normal(POINTS))
    if spiky:
        values[rng.random(POINTS) < 0.02] *= 1.2
    return values, truth


def score(found: list[int], truth: list[int]) -> tuple[int, int]:
    """(true steps found, false change points)."""
    hits = sum(any(abs(f - t) <= TOLERANCE for f in found) for t in truth)
    false = sum(not any(abs(f - t) <= TOLERANCE for t in truth) for f in found)
    return hits, false


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=40, help="series per CV and step size (default 40)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", choices=("normal", "spiky"), default="normal")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    print(f"{args.noise} noise; {args.series} series of {POINTS} points per row, {STEPS_PER_SERIES} steps each, "
          f"found = within ±{TOLERANCE} points")
    print(f"{'noise CV':>8} {'step':>5} {'recall':>8} {'false per 1,000 points':>23} {'series with all found':>22}")
    started = time.perf_counter()
    for cv in CVS:
        for step in (None, *STEP_SIZES):
            hits = false = complete = 0
            for _ in range(args.series):
                values, truth = synthetic(rng, cv, step, spiky=args.noise == "spiky")
                found = [index for index, _ in detect(values)]
                found_here, false_here = score(found, truth)
                hits, false = hits + found_here, false + false_here
                complete += found_here == len(truth)
            recall = f"{hits / (args.series * STEPS_PER_SERIES):.1%}" if step else "-"
            print(f"{cv:>8.0%} {f'{step:.0%}' if step else 'none':>5} {recall:>8} "
                  f"{false / (args.series * POINTS) * 1000:>23.2f} {complete / args.series:>22.0%}")
    print(f"{(time.perf_counter() - started):.1f} s")


if __name__ == "__main__":
    main()
