"""Measure one in-process detector (python, numba) in a fresh process.

The first call is the check: its alerts must equal the injected ground truth exactly (it
also compiles the Numba loop, so it is reported as "first call", never as a timing). Then
calls are timed until ``repeat`` or the budget; the latencies are those of the median
call. Peak memory is the process's VmHWM reset after the check (see
workloads/ticks/isolated.py for why this measure).

Run as ``python -m factorbench.workloads.risk.isolated REQUEST_JSON``; prints one JSON line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import traceback

from factorbench.parallel import processes
from factorbench.workloads.ticks.isolated import GRACE_S, _exit_with_parent, peak_rss_bytes, reset_peak_rss


def load(path: str):
    import numpy as np

    from factorbench.workloads.risk.stream import Transactions

    with np.load(path) as saved:
        expected = {(int(c), str(r), int(e)) for c, r, e in zip(saved["exp_card"], saved["exp_rule"], saved["exp_id"])}
        return Transactions(saved["event_id"], saved["card"], saved["amount_cents"], saved["merchant"],
                            saved["ts_ms"], expected, int(saved["lateness_ms"]), int(saved["burst_n"]))


def save(tx, path) -> None:
    import numpy as np

    expected = sorted(tx.expected)
    np.savez(path, event_id=tx.event_id, card=tx.card, amount_cents=tx.amount_cents, merchant=tx.merchant,
             ts_ms=tx.ts_ms, lateness_ms=tx.lateness_ms, burst_n=tx.burst_n,
             exp_card=np.array([a[0] for a in expected], dtype=np.int64),
             exp_rule=np.array([a[1] for a in expected], dtype=str),
             exp_id=np.array([a[2] for a in expected], dtype=np.int64))


def compare(alerts: list, expected: set) -> str | None:
    """Why the alerts are not the ground truth, or None."""
    found = set(alerts)
    if found == expected and len(alerts) == len(found):
        return None
    missing, extra = sorted(expected - found), sorted(found - expected)
    return (f"{len(found)} distinct alerts ({len(alerts) - len(found)} repeated) vs {len(expected)} expected: "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, unexpected {extra[:3]}"
            f"{'...' if len(extra) > 3 else ''}")


def measure_here(request: dict) -> dict:
    import statistics

    from factorbench.workloads.risk.detectors import DETECTORS

    tx = load(request["stream"])
    detect = DETECTORS[request["engine"]]
    start = time.perf_counter()
    alerts, _, late = detect(tx)
    cold_s = time.perf_counter() - start
    if (wrong := compare(alerts, tx.expected)) is not None or late:
        return {"status": "wrong", "reason": wrong or f"{late} events dropped as late", "cold_s": cold_s}
    peak_reset = reset_peak_rss()
    runs = []
    began = time.perf_counter()
    while True:
        start = time.perf_counter()
        _, latencies, _ = detect(tx)
        runs.append((time.perf_counter() - start, latencies))
        if len(runs) >= request["repeat"] or time.perf_counter() - began >= request["budget_s"]:
            break
    median = statistics.median(t for t, _ in runs)
    latencies = min(runs, key=lambda run: abs(run[0] - median))[1]
    return {"status": "ok", "times": [t for t, _ in runs], "latencies": latencies, "cold_s": cold_s,
            "alerts": len(alerts), "peak_rss": peak_rss_bytes(), "peak_reset": peak_reset}


def measure(request: dict, *, timeout_s: float) -> dict:
    command = [sys.executable, "-m", "factorbench.workloads.risk.isolated", json.dumps(request)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        processes.end_child(child, GRACE_S)
        return {"status": "timeout", "reason": f"no result within {timeout_s:.0f} s (process ended)"}
    except BaseException:
        processes.end_child(child, GRACE_S)
        raise
    lines = out.strip().splitlines()
    if child.returncode != 0 or not lines:
        last = (err.strip().splitlines() or [f"exit status {child.returncode}"])[-1]
        return {"status": "failed", "reason": f"measuring process failed: {last}"}
    return json.loads(lines[-1])


def main(argv: list[str]) -> int:
    _exit_with_parent()
    try:
        result = measure_here(json.loads(argv[1]))
    except Exception as exc:
        traceback.print_exc()
        result = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
