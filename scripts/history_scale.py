"""The history store at a team's scale (README figures): storing one run of 400 rows,
`history changes` over 500 series x 1,000 points, and reading one series out of millions
of stored points. Each against a store URL (a SQLite file by default; a PostgreSQL server
with --url postgresql://...), through the same code the commands run.

    python scripts/history_scale.py [--url URL] [--points 10_000_000] [--skip-fill]

The store must be empty or one this script filled before (--skip-fill reuses it).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np

from factorbench.history.changes import find_changes
from factorbench.history.store import Point, open_store

RUN_ROWS = 400
CHANGE_SERIES, CHANGE_POINTS = 500, 1000
SERIES_POINTS = 1000
"""Points per series of the big fill: 10M points are 10,000 series of 1,000 commits."""


def commit(i: int) -> str:
    return f"{i:040x}"


def one_run(run: str, rows: int = RUN_ROWS) -> list[Point]:
    """A run of ``rows`` benchmarks on one commit, as `history run` or an import stores it."""
    return [Point(benchmark=f"kernels.k{i // 10}__p{i % 10}.time_call(32000)", machine="scale", mode="wall",
                  metric="seconds", unit="seconds", commit=commit(10**9), commit_time=2e9, subject="one run",
                  value=1e-3, ci_low=0.99e-3, ci_high=1.01e-3, run_id=run) for i in range(rows)]


def history_points(series: int, points: int, machine: str, rng: np.random.Generator) -> list[list[Point]]:
    """``series`` histories of ``points`` commits: 1% noise, a 5% step in every fifth."""
    out = []
    for s in range(series):
        level = np.ones(points)
        if s % 5 == 0:
            level[rng.integers(100, points - 100):] *= 1.05
        values = 1e-3 * level * (1 + 0.01 * rng.standard_normal(points))
        out.append([Point(benchmark=f"bench.b{s}", machine=machine, mode="wall", metric="seconds", unit="seconds",
                          commit=commit(c), commit_time=1.7e9 + c * 3600, subject=f"change {c}", value=float(v),
                          run_id=f"r{c}") for c, v in enumerate(values)])
    return out


def timed(label: str, action):
    started = time.perf_counter()
    result = action()
    print(f"{label}: {time.perf_counter() - started:.3f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="store URL (default: a SQLite file in a temporary folder)")
    parser.add_argument("--points", type=lambda text: int(float(text.replace("_", ""))), default=10_000_000,
                        help="points to fill the store with before reading one series (default 10,000,000)")
    parser.add_argument("--skip-fill", action="store_true", help="the store is already filled: only read")
    args = parser.parse_args()
    url = args.url or os.path.join(tempfile.mkdtemp(prefix="history-scale-"), "history.sqlite")
    rng = np.random.default_rng(0)
    with open_store(url) as store:
        print(f"store: {store}; load: {os.getloadavg()[0]:.2f}", flush=True)
        if not args.skip_fill:
            new = timed(f"store one run of {RUN_ROWS} rows", lambda: store.add(one_run("scale-run")))
            assert new == RUN_ROWS
            timed("store the same run again (0 new)", lambda: store.add(one_run("scale-run")))
            changes_series = history_points(CHANGE_SERIES, CHANGE_POINTS, "changes", rng)
            timed(f"store {CHANGE_SERIES} series x {CHANGE_POINTS} points",
                  lambda: store.add(p for series in changes_series for p in series))
        chosen = [series for series in store.all_series() if series[0].machine == "changes"]
        found = timed(f"history changes over {len(chosen)} series x {CHANGE_POINTS} points (detection only)",
                      lambda: find_changes(chosen))
        print(f"  {len(found)} change points (a step in {CHANGE_SERIES // 5} series)")
        timed(f"read {len(chosen)} series and find their change points (as `history changes`)",
              lambda: find_changes(s for s in store.all_series() if s[0].machine == "changes"))
        if not args.skip_fill:
            fill_series = max(args.points - store.count(), 0) // SERIES_POINTS
            started = time.perf_counter()
            for batch in range(0, fill_series, 100):
                store.add(p for series in history_points(min(100, fill_series - batch), SERIES_POINTS,
                                                         f"fill-{batch}", rng) for p in series)
            print(f"fill: {time.perf_counter() - started:.0f} s", flush=True)
        stored = store.count()
        key = ("bench.b7", "fill-0", "wall", "seconds", "")
        store.series(*key)  # a first read warms the connection pool, as a long-lived command's would
        for _ in range(3):
            series = timed(f"read one series of {SERIES_POINTS} out of {stored:,} points", lambda: store.series(*key))
        assert len(series) == SERIES_POINTS
        print(f"load: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
