"""The pipeline on NumPy arrays over symbol-sorted segments: vectorized NumPy, or Numba loops.

Symbols travel as integer ids into a sorted name table (as a feed handler's instrument
ids would), so sorting by id is sorting by name. The Numba kernels are compiled on first
use, so this module imports without Numba.

The Numba path runs in four stages, each timed apart when asked (``stages``):
read (pyarrow into Arrow batches, NumPy views of them, no concatenation), group by
symbol (filter and counting sort by symbol id in one pass over the batches; arrival
order kept within a symbol, re-sorted only where a symbol's ticks are not already in
(timestamp, seq) order), per-symbol factors, per-bucket rank (counting sort by bucket).
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import time
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
class Chunks:
    """Tick columns as aligned NumPy views of Arrow record batches; ``codes`` index the
    files' symbol dictionary, ``id_of_code`` maps a code to its id in ``names`` (sorted)."""

    names: np.ndarray
    id_of_code: np.ndarray
    batches: list[tuple[np.ndarray, ...]]
    """Per batch: codes, timestamp (int64 ns), seq, bid, ask, volume, vwap."""
    table: object = None
    """The Arrow table the views point into, kept alive with them."""

    def __len__(self) -> int:
        return sum(len(batch[0]) for batch in self.batches)

    @classmethod
    def of(cls, ticks: Ticks) -> Chunks:
        """In-memory ticks as one chunk whose codes are the symbol ids themselves."""
        return cls(ticks.names, np.arange(len(ticks.names), dtype=np.int32),
                   [(ticks.symbol_id, ticks.timestamp, ticks.seq, ticks.bid, ticks.ask, ticks.volume, ticks.vwap)])


def read_table(files):
    """The input columns of ``files`` as one Arrow table, symbols dictionary-encoded (unified)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.concat_tables([pq.read_table(f, columns=list(INPUT_COLUMNS), read_dictionary=["symbol"])
                             for f in files]).unify_dictionaries()


def read_chunks(files) -> Chunks:
    """Read the files for the Numba path: every column stays in Arrow's buffers (zero-copy views)."""
    import pyarrow as pa

    table = read_table(files)
    table = table.set_column(table.schema.get_field_index("timestamp"), "timestamp",
                             table.column("timestamp").cast(pa.timestamp("ns")).cast(pa.int64()))
    symbol = table.column("symbol")
    dictionary = symbol.chunk(0).dictionary if symbol.num_chunks else pa.array([], pa.string())
    names = np.asarray(dictionary.to_pylist(), dtype=object)
    order = np.argsort(names)
    id_of_code = np.empty(len(names), dtype=np.int32)
    id_of_code[order] = np.arange(len(names), dtype=np.int32)
    batches = []
    for batch in table.to_batches():
        columns = {name: batch.column(name) for name in INPUT_COLUMNS}
        codes = columns.pop("symbol").indices.to_numpy(zero_copy_only=False)
        batches.append((codes, *(columns[name].to_numpy(zero_copy_only=False) for name in
                                 ("timestamp", "seq", "bid", "ask", "volume", "vwap"))))
    return Chunks(names[order], id_of_code, batches, table)


@dataclass
class Grouped:
    """Kept ticks sorted by (symbol, timestamp, seq); symbol s holds rows starts[s]:starts[s+1]."""

    starts: np.ndarray
    symbol_id: np.ndarray
    timestamp: np.ndarray
    seq: np.ndarray
    log_vwap: np.ndarray
    spread: np.ndarray


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


def _count_kept(codes, volume, min_volume, id_of_code, counts):
    for i in range(len(codes)):
        if volume[i] > min_volume:
            counts[id_of_code[codes[i]]] += 1


def _scatter_kept(codes, timestamp, seq, bid, ask, volume, vwap, min_volume, id_of_code, cursor,
                  symbol_id, out_timestamp, out_seq, log_vwap, spread):
    """Place each kept tick at its symbol's next free row (``cursor``), in arrival order."""
    for i in range(len(codes)):
        if volume[i] > min_volume:
            s = id_of_code[codes[i]]
            row = cursor[s]
            cursor[s] = row + 1
            symbol_id[row] = s
            out_timestamp[row] = timestamp[i]
            out_seq[row] = seq[i]
            log_vwap[row] = np.log(vwap[i])
            spread[row] = ask[i] - bid[i]


def _unordered_symbols(starts, timestamp, seq):
    """Ids of the symbols whose rows are not strictly increasing in (timestamp, seq)."""
    flags = np.zeros(len(starts) - 1, dtype=np.bool_)
    for s in range(len(starts) - 1):
        for i in range(starts[s] + 1, starts[s + 1]):
            if timestamp[i] < timestamp[i - 1] or (timestamp[i] == timestamp[i - 1] and seq[i] <= seq[i - 1]):
                flags[s] = True
                break
    return np.flatnonzero(flags)


def _bucket_rank(bucket, values, first_bucket, buckets, out):
    """Average-tie percentile rank of ``values`` per bucket (NaN stays NaN, uncounted), by a
    counting sort on ``bucket - first_bucket`` and a sort of each bucket's values. Ranks are
    half-integers over counts, so the result is exactly bucket_pct_rank's."""
    n = len(values)
    counts = np.zeros(buckets + 1, dtype=np.int64)
    for i in range(n):
        out[i] = np.nan
        if not np.isnan(values[i]):
            counts[bucket[i] - first_bucket + 1] += 1
    starts = np.cumsum(counts)
    cursor = starts[:-1].copy()
    rows = np.empty(starts[-1], dtype=np.int64)
    for i in range(n):
        if not np.isnan(values[i]):
            b = bucket[i] - first_bucket
            rows[cursor[b]] = i
            cursor[b] += 1
    for b in range(buckets):
        members = rows[starts[b]:starts[b + 1]]
        size = len(members)
        if size == 0:
            continue
        bucket_values = values[members]
        order = np.argsort(bucket_values)
        tie_start = 0
        while tie_start < size:
            tie_end = tie_start + 1
            while tie_end < size and bucket_values[order[tie_end]] == bucket_values[order[tie_start]]:
                tie_end += 1
            rank = (tie_start + tie_end + 1) / 2 / size
            for j in range(tie_start, tie_end):
                out[members[order[j]]] = rank
            tie_start = tie_end


@functools.cache
def _stage_kernels():
    """(count_kept, scatter_kept, unordered_symbols, bucket_rank) compiled with Numba."""
    import numba

    jit = numba.njit(nogil=True)
    return jit(_count_kept), jit(_scatter_kept), jit(_unordered_symbols), jit(_bucket_rank)


def group_by_symbol(chunks: Chunks, min_volume: int) -> Grouped:
    """Filter and sort kept ticks by (symbol, timestamp, seq) with a counting sort on symbol id."""
    count_kept, scatter_kept, unordered_symbols, _ = _stage_kernels()
    counts = np.zeros(len(chunks.names), dtype=np.int64)
    for batch in chunks.batches:
        count_kept(batch[0], batch[5], min_volume, chunks.id_of_code, counts)
    starts = np.concatenate([[0], np.cumsum(counts)])
    n = int(starts[-1])
    grouped = Grouped(starts, np.empty(n, np.int32), np.empty(n, np.int64), np.empty(n, np.int64),
                      np.empty(n), np.empty(n))
    cursor = starts[:-1].copy()
    for batch in chunks.batches:
        scatter_kept(*batch, min_volume, chunks.id_of_code, cursor, grouped.symbol_id, grouped.timestamp,
                     grouped.seq, grouped.log_vwap, grouped.spread)
    # Files in arrival order need no sort; any other order is sorted here, symbol by symbol.
    for s in unordered_symbols(starts, grouped.timestamp, grouped.seq):
        rows = slice(starts[s], starts[s + 1])
        order = np.lexsort((grouped.seq[rows], grouped.timestamp[rows]))
        for column in (grouped.timestamp, grouped.seq, grouped.log_vwap, grouped.spread):
            column[rows] = column[rows][order]
    return grouped


def bucket_rank(timestamp: np.ndarray, momentum: np.ndarray, bucket_ns: int) -> np.ndarray:
    """Per-bucket percentile rank; bucket_pct_rank (sort-based) when the buckets are too sparse
    for a counting sort over their range."""
    bucket = timestamp // bucket_ns
    if len(bucket) == 0:
        return np.empty(0)
    first, last = int(bucket.min()), int(bucket.max())
    if last - first >= 4 * len(bucket) + 1024:
        return bucket_pct_rank(bucket, momentum)
    out = np.empty(len(momentum))
    _stage_kernels()[3](bucket, momentum, first, last - first + 1, out)
    return out


STAGES = ("read_s", "group_s", "factors_s", "rank_s")


def staged_compute(chunks: Chunks, spec: FactorSpec, stages: dict | None = None) -> Factors:
    """The Numba pipeline over read chunks; adds each stage's seconds to ``stages`` when given."""
    clock = time.perf_counter()

    def lap(name):
        nonlocal clock
        now = time.perf_counter()
        if stages is not None:
            stages[name] = stages.get(name, 0.0) + now - clock
        clock = now

    grouped = group_by_symbol(chunks, spec.min_volume)
    lap("group_s")
    n = len(grouped.seq)
    momentum, zscore, ema = np.empty(n), np.empty(n), np.empty(n)
    # Symbols without kept ticks are empty segments: the kernel gets only the others.
    kernels("numba")[0](grouped.log_vwap, grouped.spread, np.unique(grouped.starts), spec.lag, spec.window, spec.alpha,
                        momentum, zscore, ema)
    lap("factors_s")
    rank = bucket_rank(grouped.timestamp, momentum, spec.bucket_ns)
    lap("rank_s")
    return Factors(chunks.names, grouped.symbol_id, grouped.timestamp, grouped.seq, momentum, grouped.spread,
                   zscore, ema, rank)


def compute_files(files, spec: FactorSpec, stages: dict | None = None) -> Factors:
    """Parquet files to factors with the Numba pipeline, the read timed as ``read_s``."""
    start = time.perf_counter()
    chunks = read_chunks(files)
    if stages is not None:
        stages["read_s"] = stages.get("read_s", 0.0) + time.perf_counter() - start
    return staged_compute(chunks, spec, stages)


def compute(ticks: Ticks, spec: FactorSpec, backend: str) -> Factors:
    """The pipeline over in-memory ticks: "numpy" (vectorized per segment) or "numba" (loops)."""
    if backend == "numba":
        return staged_compute(Chunks.of(ticks), spec)
    kept = np.flatnonzero(ticks.volume > spec.min_volume)
    order = kept[np.lexsort((ticks.seq[kept], ticks.timestamp[kept], ticks.symbol_id[kept]))]
    symbol_id, timestamp = ticks.symbol_id[order], ticks.timestamp[order]
    log_vwap = np.log(ticks.vwap[order])
    spread = ticks.ask[order] - ticks.bid[order]
    starts = np.flatnonzero(np.r_[True, symbol_id[1:] != symbol_id[:-1], True]) if len(order) else np.zeros(1, int)
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
