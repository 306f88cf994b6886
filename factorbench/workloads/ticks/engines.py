"""Implementations of the tick-factor pipeline (see factors.py), each reading the Parquet files.

Each engine's ``compute(files, spec)`` returns its native result (a polars or pandas
frame, arrays), fully materialised and in canonical row order; ``to_frame`` converts it
for the comparison with the reference and is not timed. ``session(settings)`` wraps
start-up that must not be timed per call (a Dask client). Libraries are imported inside
functions, so a missing one only makes its engine unavailable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from factorbench.registry import missing_modules
from factorbench.workloads.ticks import columnar
from factorbench.workloads.ticks.factors import DEFAULT_SPEC, FACTORS, INPUT_COLUMNS, KEYS, FactorSpec


@dataclass(frozen=True)
class Engine:
    name: str
    summary: str
    compute: Callable[[list, FactorSpec], Any]
    to_frame: Callable[[Any], Any]
    requires: tuple[str, ...] = ()
    session: Callable[[dict], contextlib.AbstractContextManager] = field(
        default=lambda settings: contextlib.nullcontext())
    staged: bool = False
    """``compute(files, spec, stages)`` adds its stages' seconds (columnar.STAGES) to ``stages``."""

    @property
    def reason(self) -> str | None:
        return missing_modules(self.requires)


# pandas ---------------------------------------------------------------------------------

def pandas_symbol_factors(frame, spec: FactorSpec):
    """momentum, spread, zscore, ema_spread of kept ticks, per symbol; the rows come back sorted."""
    frame = frame.sort_values(list(KEYS), ignore_index=True)
    by_symbol = frame["symbol"]
    log_vwap = np.log(frame["vwap"])
    momentum = log_vwap - log_vwap.groupby(by_symbol, sort=False).shift(spec.lag)
    rolling = momentum.groupby(by_symbol, sort=False).rolling(spec.window, min_periods=spec.window)
    mean = rolling.mean().droplevel(0)
    std = rolling.std(ddof=1).droplevel(0)
    spread = frame["ask"] - frame["bid"]
    out = frame[list(KEYS)].copy()
    out["momentum"] = momentum
    out["spread"] = spread
    out["zscore"] = ((momentum - mean) / std).where(std > 0)
    out["ema_spread"] = spread.groupby(by_symbol, sort=False).ewm(alpha=spec.alpha, adjust=False).mean().droplevel(0)
    return out


def pandas_bucket_rank(frame, spec: FactorSpec):
    frame = frame.copy()
    frame["rank"] = frame.groupby(frame["timestamp"] // spec.bucket_ns)["momentum"].rank(method="average", pct=True)
    return frame


def _pandas_compute(files, spec: FactorSpec):
    import pandas as pd

    ticks = pd.concat([pd.read_parquet(f, columns=list(INPUT_COLUMNS)) for f in files], ignore_index=True)
    kept = ticks[ticks["volume"] > spec.min_volume]
    kept = kept.assign(timestamp=kept["timestamp"].astype("datetime64[ns]").astype("int64"))
    return pandas_bucket_rank(pandas_symbol_factors(kept, spec), spec)


def _frame_as_is(frame):
    return frame


# polars ---------------------------------------------------------------------------------

def polars_query(files, spec: FactorSpec):
    """The article's lazy Polars query, made per-symbol and extended; ``files`` are scanned lazily."""
    import polars as pl

    momentum, spread = pl.col("momentum"), pl.col("spread")
    mean = momentum.rolling_mean(spec.window, min_samples=spec.window)
    std = momentum.rolling_std(spec.window, min_samples=spec.window, ddof=1)
    bucket = pl.col("timestamp") // spec.bucket_ns
    return (
        pl.scan_parquet([str(f) for f in files])
        .filter(pl.col("volume") > spec.min_volume)
        .select(pl.col("symbol"), pl.col("timestamp").dt.epoch("ns").alias("timestamp"), pl.col("seq"),
                pl.col("vwap").log().alias("log_vwap"), (pl.col("ask") - pl.col("bid")).alias("spread"))
        .sort(list(KEYS))
        .with_columns(momentum=pl.col("log_vwap").diff(spec.lag).over("symbol"))
        .with_columns(zscore=pl.when(std.over("symbol") > 0)
                      .then((momentum - mean.over("symbol")) / std.over("symbol")),
                      ema_spread=spread.ewm_mean(alpha=spec.alpha, adjust=False).over("symbol"),
                      rank=momentum.rank("average").over(bucket) / momentum.count().over(bucket))
        .select(*KEYS, *FACTORS)
    )


def _polars_compute(files, spec: FactorSpec):
    return polars_query(files, spec).collect(engine="streaming")


def _polars_to_frame(frame):
    # polars marks missing values null where the others use NaN.
    return frame.to_pandas().astype({f: "float64" for f in FACTORS})


# NumPy / Numba over symbol-sorted segments ----------------------------------------------

def _arrays_compute(backend: str):
    def compute(files, spec: FactorSpec):
        return columnar.compute(columnar.read_ticks(files, spec.min_volume), spec, backend)

    return compute


def _factors_to_frame(factors: columnar.Factors):
    return factors.to_frame()


# Dask DataFrame -------------------------------------------------------------------------

@contextlib.contextmanager
def dask_scheduler(settings: dict):
    """Where Dask computes: "threads" (in-process), "local-cluster" (worker processes started
    once in this process) or "tcp://HOST:PORT" (a running scheduler), as the default of
    every ``.compute()`` in the block (see factorbench.parallel.schedulers)."""
    from factorbench.parallel import schedulers

    with schedulers.as_default(settings.get("scheduler") or schedulers.THREADS):
        yield


def _dask_compute(files, spec: FactorSpec):
    import dask.dataframe as dd
    import pandas as pd

    ticks = dd.read_parquet([str(f) for f in files], columns=list(INPUT_COLUMNS))
    kept = ticks[ticks["volume"] > spec.min_volume]
    kept = kept.assign(timestamp=kept["timestamp"].astype("datetime64[ns]").astype("int64"))
    # All of a symbol's ticks must sit in one partition for the per-symbol factors, and all
    # of a bucket's for the rank: two shuffles, each followed by the pandas code per partition.
    meta = pd.DataFrame({"symbol": pd.Series(dtype=kept["symbol"].dtype), "timestamp": pd.Series(dtype="int64"),
                         "seq": pd.Series(dtype="int64"), **{f: pd.Series(dtype="float64") for f in FACTORS}})
    per_symbol = kept.shuffle("symbol").map_partitions(pandas_symbol_factors, spec, meta=meta.drop(columns="rank"))
    per_symbol = per_symbol.assign(bucket=per_symbol["timestamp"] // spec.bucket_ns)
    ranked = per_symbol.shuffle("bucket").map_partitions(
        lambda part: pandas_bucket_rank(part.drop(columns="bucket"), spec), meta=meta)
    return ranked.compute().sort_values(list(KEYS), ignore_index=True)


ENGINES = {
    "polars": Engine("polars", "Polars lazy scan_parquet, streaming engine", _polars_compute, _polars_to_frame,
                     requires=("polars",)),
    "pandas": Engine("pandas", "pandas groupby shift / rolling / ewm / rank", _pandas_compute, _frame_as_is,
                     requires=("pyarrow",)),
    "numpy": Engine("numpy", "NumPy over symbol-sorted segments (bottleneck, scipy lfilter)",
                    _arrays_compute("numpy"), _factors_to_frame, requires=("pyarrow",)),
    "numba": Engine("numba", "Numba on every thread: counting sort by symbol, loops over segments, "
                    "radix sort within buckets", columnar.compute_files, _factors_to_frame,
                    requires=("pyarrow", "polars", "numba"), staged=True),
    "dask": Engine("dask", "Dask DataFrame over the Parquet files: shuffle by symbol, then by bucket",
                   _dask_compute, _frame_as_is, requires=("pyarrow", "dask.dataframe"),
                   session=dask_scheduler),
}


# Read only: the floor an end-to-end engine is held against ---------------------------

def _pyarrow_read(files):
    return columnar.read_table(files)


def _polars_read(files):
    import polars as pl

    return pl.read_parquet([str(f) for f in files], columns=list(INPUT_COLUMNS))


READERS = {"pyarrow": (_pyarrow_read, ("pyarrow",)), "polars": (_polars_read, ("polars",))}
"""Readers of the engines' input columns of the same files, nothing computed."""


def engine(name: str) -> Engine:
    if name not in ENGINES:
        raise ValueError(f"unknown tick engine {name!r}; choose from: {', '.join(ENGINES)}")
    return ENGINES[name]


def run_once(name: str, files, spec: FactorSpec = DEFAULT_SPEC, settings: dict | None = None):
    """One computation as a pandas frame (for checks and tests)."""
    chosen = engine(name)
    with chosen.session(settings or {}):
        return chosen.to_frame(chosen.compute(list(files), spec))


