"""The quant workload: tick factors (the article's section 9.2) with Polars, pandas, NumPy/Numba and Dask.

Every engine is first checked against the float64 reference on a small generated data
set, then timed on the main data set in a fresh process (throughput, peak memory). The
streaming part replays the main data in micro-batches: incremental per-symbol state vs
recomputing from scratch, per-batch latency P50/P95/P99.

Parameters (``factorbench run --workload ticks --param KEY=VALUE``):
  ticks_data=DIR        use (or create and keep) the data set in DIR/ticks/*.parquet;
                        without it the data is generated into a temporary directory
                        and removed afterwards
  ticks_rows, ticks_symbols, ticks_files   size of a generated data set
                        (default 10M / 500 / 8; --quick 200k / 200 / 4)
  ticks_batch=10000     streaming batch size (ticks)
  ticks_window=20, ticks_alpha=0.1, ticks_bucket_ms=1000   factor definition
  ticks_recompute_window=1000000   most ticks a recompute looks back at
  ticks_recompute_samples=50       batches at which recompute is timed (--quick 20)
  ticks_engines=polars,numba       engines to time (default: all)
The Dask engine runs once per ``scheduler`` setting ("threads" by default).
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from factorbench.workloads import Workload
from factorbench.workloads.ticks import data
from factorbench.workloads.ticks.engines import ENGINES
from factorbench.workloads.ticks.factors import FactorSpec

CHECK_DATA: dict[str, Any] = {"rows": 20_000, "symbols": 40, "files": 3}
"""Small enough for the loop reference, big enough for every edge: symbols with < 5 kept
ticks, with 5..24 (momentum but no z-score), busy 1-s buckets, timestamp ties."""
CHECK_BATCH = 997
"""Incremental check batch: odd, so batches end mid-symbol and mid-bucket."""

DEFAULTS = {"ticks_data": None, "ticks_rows": data.DEFAULT_ROWS, "ticks_symbols": data.DEFAULT_SYMBOLS,
            "ticks_files": data.DEFAULT_FILES, "ticks_batch": 10_000, "ticks_window": 20, "ticks_alpha": 0.1,
            "ticks_bucket_ms": 1000, "ticks_recompute_window": 1_000_000, "ticks_recompute_samples": 50,
            "ticks_engines": ",".join(ENGINES)}
QUICK = {"ticks_rows": 200_000, "ticks_symbols": 200, "ticks_files": 4, "ticks_recompute_samples": 20}
UNITS = {"ticks": "ticks", "wall_s": "s", "ticks_per_s": "ticks/s", "in_memory_ticks_per_s": "ticks/s",
         "x_read": "x", "read_s": "s", "group_s": "s", "factors_s": "s", "rank_s": "s",
         "peak_rss": "bytes", "pipeline_rss": "bytes",
         "cold_s": "s", "p50_s": "s", "p95_s": "s", "p99_s": "s"}
THREAD_VARIABLES = ("POLARS_MAX_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                    "MKL_NUM_THREADS")


def validate(chosen: dict) -> None:
    for key in ("ticks_rows", "ticks_symbols", "ticks_files", "ticks_batch", "ticks_window", "ticks_bucket_ms",
                "ticks_recompute_window", "ticks_recompute_samples"):
        if not isinstance(chosen[key], int) or chosen[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {chosen[key]!r}")
    if not isinstance(chosen["ticks_alpha"], (int, float)) or not 0 < chosen["ticks_alpha"] <= 1:
        raise ValueError(f"ticks_alpha must satisfy 0 < alpha <= 1, got {chosen['ticks_alpha']!r}")
    engines = [name for name in str(chosen["ticks_engines"]).split(",") if name]
    unknown = [name for name in engines if name not in ENGINES]
    if unknown or not engines:
        raise ValueError(f"ticks_engines: unknown engine(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from: {', '.join(ENGINES)}")
    if chosen["ticks_window"] < 2:
        raise ValueError(f"ticks_window must be >= 2, got {chosen['ticks_window']}")
    if chosen["ticks_data"] is not None and Path(str(chosen["ticks_data"])).is_file():
        raise ValueError(f"ticks_data must be a directory, got the file {chosen['ticks_data']}")
    data.validate(chosen["ticks_rows"], chosen["ticks_symbols"], chosen["ticks_files"])


ROW_BYTES = 300
"""Memory per tick of the largest engine's pipeline, with room (an estimate: a quick run's
engines added 180-480 bytes a tick, most of it fixed cost at 200,000 ticks)."""


def data_bytes(options) -> int:
    """The memory the generated ticks take in an engine's pipeline (a dataset given by
    ticks_data is not estimated: 0)."""
    chosen = WORKLOAD.parameters(options)
    return ROW_BYTES * chosen["ticks_rows"] if chosen["ticks_data"] is None else 0


def settings_of(options) -> dict:
    """The workload's parameters (defaults, --quick sizes, --param ticks_*), engines as a list."""
    chosen = WORKLOAD.parameters(options)
    chosen["ticks_engines"] = [name for name in str(chosen["ticks_engines"]).split(",") if name]
    return chosen


def spec_of(chosen: dict) -> FactorSpec:
    return FactorSpec(window=chosen["ticks_window"], alpha=float(chosen["ticks_alpha"]),
                      bucket_ns=chosen["ticks_bucket_ms"] * 1_000_000)


def schedulers_of(options) -> list[str]:
    value = options.settings.get("scheduler") or ["threads"]
    return [value] if isinstance(value, str) else list(value)


@contextlib.contextmanager
def main_data(chosen: dict, seed: int):
    """The main data set's files: from ticks_data (made there if empty) or a temporary directory."""
    if chosen["ticks_data"] is not None:
        directory = Path(str(chosen["ticks_data"]))
        try:
            files = data.tick_files(directory)
        except FileNotFoundError:
            files = data.generate(directory, rows=chosen["ticks_rows"], symbols=chosen["ticks_symbols"],
                                  files=chosen["ticks_files"], seed=seed)
        yield files, str(directory)
        return
    with tempfile.TemporaryDirectory(prefix="factorbench-ticks-") as temporary:
        yield data.generate(temporary, rows=chosen["ticks_rows"], symbols=chosen["ticks_symbols"],
                            files=chosen["ticks_files"], seed=seed), "temporary (removed)"


def child_environment(options) -> dict:
    env = dict(os.environ)
    if options.threads:
        env.update({name: str(max(options.threads)) for name in THREAD_VARIABLES})
    return env


def engine_rows(chosen, spec, options, files, check_files, reference_path, ticks) -> list[dict]:
    from factorbench.workloads.ticks.isolated import measure

    rows = []
    for name in chosen["ticks_engines"]:
        candidate = ENGINES[name]
        for scheduler in schedulers_of(options) if name == "dask" else [None]:
            row = {"label": f"{name} ({scheduler})" if scheduler else name, "status": "ok", "ticks": ticks}
            if candidate.reason:
                rows.append({**row, "status": "skipped", "reason": candidate.reason})
                continue
            result = measure({"engine": name, "files": [str(f) for f in files],
                              "check_files": [str(f) for f in check_files], "reference": str(reference_path),
                              "spec": spec.to_json(), "settings": {"scheduler": scheduler} if scheduler else {},
                              "repeat": options.repeat, "budget_s": options.time_budget_s},
                             timeout_s=max(300.0, 30 * options.time_budget_s), env=child_environment(options))
            if result["status"] != "ok":
                rows.append({**row, "status": result["status"], "reason": result["reason"]})
                continue
            caveats = []
            if scheduler not in (None, "threads"):
                caveats.append("memory: client process only")
            if not result["peak_reset"]:
                caveats.append("memory: process-lifetime peak (no peak reset here)")
            wall = statistics.median(result["times"])
            if result.get("stages"):
                row.update(stage_figures(result["stages"], ticks))
            rows.append({**row, "wall_s": wall, "ticks_per_s": ticks / wall, "peak_rss": result["peak_rss"],
                         "pipeline_rss": result["peak_rss"] - result["baseline_rss"], "cold_s": result["cold_s"],
                         "calls": len(result["times"]), "max_error": result["max_error"],
                         "reason": "; ".join(caveats)})
    return rows


def stage_figures(stages: list[dict], ticks: int) -> dict:
    """Median seconds per stage over the timed calls, and ticks/s with the columns already in memory."""
    from factorbench.workloads.ticks.columnar import STAGES

    figures = {name: statistics.median(call.get(name, 0.0) for call in stages) for name in STAGES}
    in_memory = statistics.median(sum(call.get(name, 0.0) for name in STAGES if name != "read_s") for call in stages)
    figures["in_memory_ticks_per_s"] = ticks / in_memory if in_memory > 0 else None
    return figures


def read_rows(files, options, ticks) -> list[dict]:
    """Only reading the engines' input columns of the same files, per reader, in a fresh process."""
    from factorbench.registry import missing_modules
    from factorbench.workloads.ticks.engines import READERS
    from factorbench.workloads.ticks.isolated import measure

    rows = []
    for reader, (_, requires) in READERS.items():
        row = {"label": f"read only ({reader})", "status": "ok", "ticks": ticks}
        reason = missing_modules(requires)
        if reason:
            rows.append({**row, "status": "skipped", "reason": reason})
            continue
        result = measure({"reader": reader, "files": [str(f) for f in files], "repeat": options.repeat,
                          "budget_s": options.time_budget_s}, timeout_s=max(300.0, 30 * options.time_budget_s),
                         env=child_environment(options))
        if result["status"] != "ok":
            rows.append({**row, "status": result["status"], "reason": result["reason"]})
            continue
        wall = statistics.median(result["times"])
        rows.append({**row, "wall_s": wall, "ticks_per_s": ticks / wall, "calls": len(result["times"]),
                     "reason": "floor: the input columns read, nothing computed"})
    return rows


def against_read(rows: list[dict], reads: list[dict]) -> None:
    """Each engine's end-to-end time as a multiple of the fastest read of the same columns."""
    timed = [row["wall_s"] for row in reads if row["status"] == "ok"]
    if not timed:
        return
    for row in rows:
        if row["status"] == "ok":
            row["x_read"] = row["wall_s"] / min(timed)


def streaming(chosen, spec, options, files, check_files, expected) -> tuple[list[dict], dict, list[str]]:
    from factorbench.workloads.ticks import columnar, stream
    from factorbench.workloads.ticks.factors import compare

    # Without Numba the incremental kernel runs as plain Python and recompute uses NumPy.
    backend, recompute_backend = ("python", "numpy") if columnar.numba_missing() else ("numba", "numba")
    labels = (f"stream incremental ({backend})",
              f"stream recompute ({recompute_backend}, ≤{chosen['ticks_recompute_window']:,} ticks)")
    ok, _, message = compare(stream.incremental_factors(columnar.read_ticks(check_files), spec, CHECK_BATCH,
                                                        backend).to_frame(), expected)
    if not ok:
        return [{"label": label, "status": "wrong", "reason": message} for label in labels], {}, []
    ticks = columnar.read_ticks(files)
    stream.warm_up(ticks, spec, backend, recompute_backend)
    incremental: list[float] = []
    stream.incremental_factors(ticks, spec, chosen["ticks_batch"], backend, incremental)
    recompute = stream.recompute_latencies(ticks, spec, chosen["ticks_batch"], recompute_backend,
                                           chosen["ticks_recompute_window"], chosen["ticks_recompute_samples"])
    latency = {"incremental": stream.LatencySummary.of(incremental).to_json(),
               "recompute": stream.LatencySummary.of(recompute).to_json()}
    rows = []
    for label, key in zip(labels, ("incremental", "recompute")):
        summary = latency[key]
        rows.append({"label": label, "status": "ok", "ticks": len(ticks), "batches": len(summary["samples"]),
                     "p50_s": summary["p50"], "p95_s": summary["p95"], "p99_s": summary["p99"], "reason": ""})
    total = sum(incremental)
    rows[0].update(wall_s=total, ticks_per_s=len(ticks) / total)
    notes = [f"stream: batches of {chosen['ticks_batch']:,} ticks in arrival order; incremental latency is one "
             "update() per batch (all factors of its ticks, ranks of the buckets it closed) and equals the batch "
             f"result (checked with batches of {CHECK_BATCH}); recompute runs the batch pipeline on the ticks seen "
             f"so far, at most the last {chosen['ticks_recompute_window']:,}, at {len(recompute)} evenly spaced "
             "batches."]
    return rows, latency, notes


def run(options) -> dict:
    import pyarrow.parquet as pq

    from factorbench.workloads.ticks.factors import reference

    chosen = settings_of(options)
    spec = spec_of(chosen)
    with tempfile.TemporaryDirectory(prefix="factorbench-ticks-check-") as check_dir, \
            main_data(chosen, options.seed) as (files, data_dir):
        check_files = data.generate(check_dir, seed=options.seed, **CHECK_DATA)
        expected = reference(data.read_frame(check_files), spec)
        reference_path = Path(check_dir) / "reference.parquet"
        expected.to_parquet(reference_path)
        ticks = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        rows = engine_rows(chosen, spec, options, files, check_files, reference_path, ticks)
        reads = read_rows(files, options, ticks)
        against_read(rows, reads)
        stream_rows, latency, stream_notes = streaming(chosen, spec, options, files, check_files, expected)
    return {
        "params": {"data": data_dir, "ticks": ticks, "files": len(files), "seed": options.seed,
                   "batch": chosen["ticks_batch"], **spec.to_json()},
        "rows": rows + reads + stream_rows,
        "units": UNITS,
        "latency": latency,
        "notes": [
            "pipeline: volume > min_volume; per symbol in (timestamp, seq) order: momentum = log(vwap).diff(lag), "
            "spread = ask - bid, rolling z-score of momentum (window, ddof=1, NaN until the window is full), "
            "EMA of spread (adjust=False); percentile rank of momentum per time bucket (average ties, NaN "
            "excluded). Every engine was checked against the float64 reference first.",
            "ticks/s counts input ticks (before the volume filter) per second of one call: read the Parquet "
            "files, compute, materialise the sorted result; median of the timed calls.",
            "x_read: end-to-end time over the fastest 'read only' row (the same columns of the same files read "
            "into memory, nothing computed), timed in the same run. read_s, group_s (volume filter and sort by "
            "(symbol, timestamp, seq)), factors_s (per-symbol momentum, spread, z-score, EMA), rank_s (per-bucket "
            "rank): median seconds per stage of the engines that time their stages (numba: group, factors and "
            "rank on Numba's thread count, NUMBA_NUM_THREADS); in_memory_ticks_per_s counts the same calls "
            "without read_s.",
            "One op = one input tick taken end to end (read, filter, all five factors materialised): ticks_per_s "
            "is ops/s in the sense to hold against the article's '47M ops/s single node', which does not say "
            "what its op is.",
            "peak_rss: resident-set high-water mark (Linux VmHWM) of a fresh process per engine during the "
            "timed calls; pipeline_rss: what they added above the process's RSS after imports and the check "
            "call. Under a Dask cluster the workers' memory is not included.",
            *stream_notes,
        ],
    }


WORKLOAD = Workload(
    name="ticks",
    summary="tick-data factors per symbol: throughput, peak memory, micro-batch latency",
    run=run,
    requires=("pyarrow",),
    params=DEFAULTS,
    quick=QUICK,
    validate=validate,
    data_bytes=data_bytes,
)
