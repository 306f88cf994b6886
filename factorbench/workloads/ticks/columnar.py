"""The pipeline on NumPy arrays over symbol-sorted segments: vectorized NumPy, or Numba loops.

Symbols travel as integer ids into a sorted name table (as a feed handler's instrument
ids would), so sorting by id is sorting by name. The Numba kernels are compiled on first
use, so this module imports without Numba.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
from dataclasses import dataclass

import numpy as np

from factorbench.workloads.ticks.factors import INPUT_COLUMNS, FactorSpec, bucket_pct_rank


@dataclass
class Ticks:
    """Columns of a tick table; ``symbol_id`` indexes ``names`` (sorted)."""

    names: np.ndarray
    symbol_id: np.ndarray
    timestamp: np.ndarray
    seq: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    volume: np.ndarray
    vwap: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)

    def rows(self, selection) -> Ticks:
        """The ticks at ``selection`` (a slice gives views, no copy)."""
        return Ticks(self.names, *(getattr(self, c)[selection] for c in
                                   ("symbol_id", "timestamp", "seq", "bid", "ask", "volume", "vwap")))


def read_ticks(files, min_volume: int | None = None) -> Ticks:
    """Read Parquet tick files with pyarrow; ``min_volume`` pushes the volume filter into the scan."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    filters = [("volume", ">", min_volume)] if min_volume is not None else None
    # Symbols stay dictionary-encoded as Parquet stores them: no string per tick is built.
    table = pa.concat_tables([pq.read_table(f, columns=list(INPUT_COLUMNS), filters=filters,
                                            read_dictionary=["symbol"]) for f in files]).unify_dictionaries()
    encoded = table.column("symbol").combine_chunks()
    names = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    order = np.argsort(names)
    id_of_code = np.empty(len(names), dtype=np.int32)
    id_of_code[order] = np.arange(len(names), dtype=np.int32)
    column = {name: table.column(name).to_numpy() for name in ("seq", "bid", "ask", "volume", "vwap")}
    return Ticks(names=names[order], symbol_id=id_of_code[encoded.indices.to_numpy(zero_copy_only=False)],
                 timestamp=table.column("timestamp").cast(pa.timestamp("ns")).cast(pa.int64()).to_numpy(), **column)


@dataclass
class Factors:
    """Output columns in canonical order (symbol, timestamp, seq)."""

    names: np.ndarray
    symbol_id: np.ndarray
    timestamp: np.ndarray
    seq: np.ndarray
    momentum: np.ndarray
    spread: np.ndarray
    zscore: np.ndarray
    ema_spread: np.ndarray
    rank: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)

    def to_frame(self):
        import pandas as pd

        return pd.DataFrame({"symbol": self.names[self.symbol_id], "timestamp": self.timestamp, "seq": self.seq,
                             "momentum": self.momentum, "spread": self.spread, "zscore": self.zscore,
                             "ema_spread": self.ema_spread, "rank": self.rank})


def numba_missing() -> str | None:
    return None if importlib.util.find_spec("numba") else "numba is not installed"


def _window_zscore(values, end, window):
    """z-score of values[end-1] within values[end-window:end]: two-pass mean and ddof=1 std."""
    total = 0.0
    for i in range(end - window, end):
        total += values[i]
    mean = total / window
    squares = 0.0
    for i in range(end - window, end):
        squares += (values[i] - mean) ** 2
    std = np.sqrt(squares / (window - 1))
    return (values[end - 1] - mean) / std if std > 0 else np.nan


def _make_kernels(jit):
    window_zscore = jit(_window_zscore)

    def segment_factors(log_vwap, spread, starts, lag, window, alpha, momentum, zscore, ema):
        """Every factor but the rank, one symbol segment [starts[s], starts[s+1]) at a time."""
        for s in range(len(starts) - 1):
            first, stop = starts[s], starts[s + 1]
            e = spread[first]
            for i in range(first, stop):
                k = i - first
                momentum[i] = log_vwap[i] - log_vwap[i - lag] if k >= lag else np.nan
                zscore[i] = window_zscore(momentum, i + 1, window) if k >= lag + window - 1 else np.nan
                if k > 0:
                    e = alpha * spread[i] + (1 - alpha) * e
                ema[i] = e

    def advance(symbol_id, log_vwap, spread, seen, recent_log_vwap, recent_momentum, ema_state,
                lag, window, alpha, momentum, zscore, ema):
        """Per-tick update of per-symbol state (the incremental mode), ticks in arrival order.

        recent_log_vwap[s] holds the symbol's last ``lag`` log-vwaps, recent_momentum[s] its
        last ``window`` momenta, oldest first; shifting keeps them in the same order as the
        batch kernel's window, so both sum identically.
        """
        for i in range(len(symbol_id)):
            s = symbol_id[i]
            k = seen[s]
            if k >= lag:
                m = log_vwap[i] - recent_log_vwap[s, 0]
            else:
                m = np.nan
            if k >= lag:
                for j in range(lag - 1):
                    recent_log_vwap[s, j] = recent_log_vwap[s, j + 1]
                recent_log_vwap[s, lag - 1] = log_vwap[i]
            else:
                recent_log_vwap[s, k] = log_vwap[i]
            momentum[i] = m
            if k >= lag:
                for j in range(window - 1):
                    recent_momentum[s, j] = recent_momentum[s, j + 1]
                recent_momentum[s, window - 1] = m
            zscore[i] = window_zscore(recent_momentum[s], window, window) if k >= lag + window - 1 else np.nan
            e = spread[i] if k == 0 else alpha * spread[i] + (1 - alpha) * ema_state[s]
            ema_state[s] = e
            ema[i] = e
            seen[s] = k + 1

    return jit(segment_factors), jit(advance)


@functools.cache
def kernels(backend: str):
    """(segment_factors, advance) compiled with Numba ("numba") or as plain Python ("python")."""
    if backend == "numba":
        import numba

        return _make_kernels(numba.njit(nogil=True))
    return _make_kernels(lambda f: f)


def compute(ticks: Ticks, spec: FactorSpec, backend: str) -> Factors:
    """The pipeline over in-memory ticks: "numpy" (vectorized per segment) or "numba" (loops)."""
    kept = np.flatnonzero(ticks.volume > spec.min_volume)
    order = kept[np.lexsort((ticks.seq[kept], ticks.timestamp[kept], ticks.symbol_id[kept]))]
    symbol_id, timestamp = ticks.symbol_id[order], ticks.timestamp[order]
    log_vwap = np.log(ticks.vwap[order])
    spread = ticks.ask[order] - ticks.bid[order]
    starts = np.flatnonzero(np.r_[True, symbol_id[1:] != symbol_id[:-1], True]) if len(order) else np.zeros(1, int)
    if backend == "numba":
        momentum, zscore, ema = np.empty(len(order)), np.empty(len(order)), np.empty(len(order))
        kernels("numba")[0](log_vwap, spread, starts, spec.lag, spec.window, spec.alpha, momentum, zscore, ema)
    else:
        momentum, zscore, ema = _vectorized_segments(log_vwap, spread, starts, spec)
    return Factors(ticks.names, symbol_id, timestamp, ticks.seq[order], momentum, spread, zscore, ema,
                   bucket_pct_rank(timestamp // spec.bucket_ns, momentum))


def _vectorized_segments(log_vwap, spread, starts, spec: FactorSpec):
    import bottleneck as bn
    from scipy.signal import lfilter

    n = len(log_vwap)
    position = np.arange(n) - np.repeat(starts[:-1], np.diff(starts))
    momentum = np.full(n, np.nan)
    momentum[spec.lag:] = log_vwap[spec.lag:] - log_vwap[:-spec.lag]
    momentum[position < spec.lag] = np.nan
    # Per segment: bottleneck's running sums then never carry rounding across symbols.
    mean, std = np.full(n, np.nan), np.full(n, np.nan)
    ema = np.empty(n)
    decay = 1 - spec.alpha
    for first, stop in itertools.pairwise(starts):
        values = momentum[first:stop]
        if stop - first >= spec.window:
            mean[first:stop] = bn.move_mean(values, spec.window, min_count=spec.window)
            std[first:stop] = bn.move_std(values, spec.window, min_count=spec.window, ddof=1)
        # y_k = alpha x_k + (1 - alpha) y_{k-1}, started so that y_0 = x_0.
        ema[first:stop] = lfilter([spec.alpha], [1.0, -decay], spread[first:stop],
                                  zi=[decay * spread[first]])[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        zscore = np.where(std > 0, (momentum - mean) / std, np.nan)
    return momentum, zscore, ema
