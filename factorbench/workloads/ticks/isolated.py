"""Measure one tick engine in a fresh process: check, wall time per call, peak memory.

Peak memory is the resident-set high-water mark of a process that runs nothing but this
engine: Linux's VmHWM (/proc/self/status), reset after the imports and the check call
(which also compiles Numba kernels) by writing 5 to /proc/self/clear_refs, so it covers
the timed calls. Why this and not the alternatives: tracemalloc misses what polars, Arrow
and Numba allocate outside Python's allocator; a thread sampling RSS with psutil can miss
short peaks; getrusage's ru_maxrss survives fork+exec, so a child started from a big
parent reports the parent's peak (measured here: 536 MB for a 10 MB child).
``pipeline_rss = peak - rss before the timed calls`` is what the computation added.
Without /proc (macOS, Windows) the process-lifetime peak is reported instead.
Under a Dask cluster scheduler, the workers' memory is in other processes and not counted.

Run as ``python -m factorbench.workloads.ticks.isolated REQUEST_JSON``; prints one JSON line.
"""

from __future__ import annotations

import _thread
import json
import os
import subprocess
import sys
import threading
import time
import traceback

from factorbench.parallel import processes

GRACE_S = 5.0
"""How long an interrupted measuring process gets to close what it started."""


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return None


def peak_rss_bytes() -> int | None:
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        return getattr(psutil.Process().memory_info(), "peak_wset", None)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def reset_peak_rss() -> bool:
    """Start a new high-water mark at the current RSS (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _time_calls(call, request: dict) -> list[float]:
    times: list[float] = []
    began = time.perf_counter()
    while True:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
        if len(times) >= request["repeat"] or time.perf_counter() - began >= request["budget_s"]:
            return times


def measure_read(request: dict) -> dict:
    """Time only reading the input columns of the files with ``request["reader"]``."""
    from factorbench.workloads.ticks.engines import READERS

    read = READERS[request["reader"]][0]
    read(request["files"])  # warm: imports, page cache
    return {"status": "ok", "reason": "", "times": _time_calls(lambda: read(request["files"]), request)}


def measure_here(request: dict) -> dict:
    """Check the engine against the reference, then time it until ``repeat`` calls or the budget."""
    import pandas as pd
    import psutil

    from factorbench.workloads.ticks.engines import engine

    if "reader" in request:
        return measure_read(request)
    from factorbench.workloads.ticks.factors import FactorSpec, compare

    spec = FactorSpec(**request["spec"])
    chosen = engine(request["engine"])
    expected = pd.read_parquet(request["reference"])
    with chosen.session(request.get("settings", {})):
        start = time.perf_counter()
        checked = chosen.compute(request["check_files"], spec)
        cold_s = time.perf_counter() - start
        ok, max_error, message = compare(chosen.to_frame(checked), expected)
        del checked
        if not ok:
            return {"status": "wrong", "reason": message, "max_error": max_error, "cold_s": cold_s}
        peak_reset = reset_peak_rss()
        baseline = psutil.Process().memory_info().rss
        stages: list[dict] = []
        rows_out = 0

        def call():
            nonlocal rows_out
            if chosen.staged:
                stages.append({})
                result = chosen.compute(request["files"], spec, stages[-1])
            else:
                result = chosen.compute(request["files"], spec)
            rows_out = len(result)

        times = _time_calls(call, request)
    return {"status": "ok", "reason": "", "times": times, "cold_s": cold_s, "max_error": max_error,
            "baseline_rss": baseline, "peak_rss": peak_rss_bytes(), "peak_reset": peak_reset, "rows_out": rows_out,
            "stages": stages}


def measure(request: dict, *, timeout_s: float, env: dict | None = None) -> dict:
    """Run ``measure_here(request)`` in a fresh Python process; always returns a result dict.

    On a timeout or an exception here (Ctrl-C) the child is interrupted, so that it closes
    what it started (a Dask cluster), and after a grace period killed with its descendants.
    """
    command = [sys.executable, "-m", "factorbench.workloads.ticks.isolated", json.dumps(request)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
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


def _exit_with_parent(poll_s: float = 0.5) -> None:
    """Interrupt this process when its parent goes away (killed without a chance to end us),
    and leave outright if the interrupt is not taken within the grace period."""
    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(poll_s)
        _thread.interrupt_main()
        time.sleep(GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


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
