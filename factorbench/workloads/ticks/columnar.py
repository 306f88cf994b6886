"""The pipeline on NumPy arrays over symbol-sorted segments: vectorized NumPy, or Numba loops.

Symbols travel as integer ids into a sorted name table (as a feed handler's instrument
ids would), so sorting by id is sorting by name. The Numba kernels are compiled on first
use, so this module imports without Numba.

The Numba path runs in four stages, each timed apart when asked (``stages``):
read (the numeric columns with polars, as NumPy views of its buffers, and the symbol
column's Parquet dictionary codes with pyarrow: no copy, no string per tick), group by
symbol (filter and counting sort by symbol id; arrival order kept within a symbol,
re-sorted only where a symbol's ticks are not already in (timestamp, seq) order),
per-symbol factors, per-bucket rank (each bucket's momenta radix-sorted). Group, factors
and rank split their work over Numba's thread count (``NUMBA_NUM_THREADS``): the kernels
release the GIL and run on a pool of Python threads, one contiguous share each.
"""

from __future__ import annotations

import bisect
import functools
import importlib.util
import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

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


NUMERIC_COLUMNS = tuple(name for name in INPUT_COLUMNS if name != "symbol")


class Batch(NamedTuple):
    """Aligned columns of consecutive ticks; tick i's symbol id is symbol_of_code[codes[i]]."""

    symbol_of_code: np.ndarray
    codes: np.ndarray
    timestamp: np.ndarray
    """int64 nanoseconds"""
    seq: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    volume: np.ndarray
    vwap: np.ndarray

    def rows(self, first: int, stop: int) -> Batch:
        return Batch(self.symbol_of_code, *(column[first:stop] for column in self[1:]))


@dataclass
class Chunks:
    """Tick columns as batches of NumPy views of the readers' buffers; symbol ids index
    ``names`` (sorted)."""

    names: np.ndarray
    batches: list[Batch]
    owners: tuple = ()
    """What the views point into (a polars frame, an Arrow table), kept alive with them."""

    def __len__(self) -> int:
        return sum(len(batch.codes) for batch in self.batches)

    @classmethod
    def of(cls, ticks: Ticks) -> Chunks:
        """In-memory ticks as one batch whose codes are the symbol ids themselves."""
        return cls(ticks.names, [Batch(np.arange(len(ticks.names), dtype=np.int32), ticks.symbol_id, ticks.timestamp,
                                       ticks.seq, ticks.bid, ticks.ask, ticks.volume, ticks.vwap)])


def read_table(files):
    """The input columns of ``files`` as one Arrow table, symbols dictionary-encoded (unified)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.concat_tables([pq.read_table(f, columns=list(INPUT_COLUMNS), read_dictionary=["symbol"])
                             for f in files]).unify_dictionaries()


def _located(lengths: list[int], bounds: np.ndarray) -> list[tuple[int, int, int]]:
    """(piece, first, stop) of rows bounds[j]:bounds[j+1] of a column held in pieces of these
    lengths; every piece's edge is in ``bounds``, so no range spans two pieces."""
    offsets = np.cumsum([0, *lengths])
    which = np.searchsorted(offsets, bounds[:-1], side="right") - 1
    return [(int(k), int(first - offsets[k]), int(stop - offsets[k]))
            for k, first, stop in zip(which, bounds[:-1], bounds[1:])]


def _symbol_ids(dictionaries: list, value_type) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sorted names of all dictionaries, and per dictionary its codes' ids among them."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = np.sort(np.asarray(pc.unique(pa.chunked_array(dictionaries, value_type)).to_pylist(), dtype=object))
    value_set = pa.array(names, value_type)
    ids: list[np.ndarray] = []
    for k, dictionary in enumerate(dictionaries):
        # Row groups of one file mostly share their dictionary: look it up once.
        if k and dictionary.equals(dictionaries[k - 1]):
            ids.append(ids[-1])
        else:
            ids.append(pc.index_in(dictionary, value_set=value_set).to_numpy(zero_copy_only=False).astype(np.int32))
    return names, ids


def read_chunks(files) -> Chunks:
    """Read the files for the Numba path without copying a column: the numeric ones with
    polars (which reads about 2.8x faster than pyarrow here), the symbols' Parquet dictionary
    codes with pyarrow (polars would build a string per tick, and hash it for codes), each
    row group's codes mapped to symbol ids through its own dictionary (no re-coding)."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    def read_symbols():
        # ParquetFile.read: read_table's dataset machinery cost as much as the decoding here.
        return pa.concat_tables([pq.ParquetFile(f, read_dictionary=["symbol"]).read(columns=["symbol"])
                                 for f in files]).column("symbol")

    def read_numeric():
        return pl.read_parquet([str(f) for f in files], columns=list(NUMERIC_COLUMNS))

    readers = (read_symbols, read_numeric)
    # Both release the GIL: given a second thread, pyarrow decodes the codes while polars reads the rest.
    symbol, frame = _on_threads(lambda p: readers[p](), 2) if _threads() > 1 else [read() for read in readers]
    # Nanoseconds as int64: a view where the files store ns, a copy only for other units.
    frame = frame.with_columns(pl.col("timestamp").dt.cast_time_unit("ns").to_physical())
    names, ids = _symbol_ids([chunk.dictionary for chunk in symbol.chunks], symbol.type.value_type)
    pieces = {"codes": [chunk.indices.to_numpy(zero_copy_only=False) for chunk in symbol.chunks],
              **{name: [chunk.to_numpy() for chunk in frame.get_column(name).get_chunks()]
                 for name in Batch._fields[2:]}}
    # Polars and pyarrow cut the rows into chunks at different places: batches end at either's cuts.
    bounds = np.unique(np.concatenate([np.cumsum([0, *(len(piece) for piece in column)])
                                       for column in pieces.values()]))
    located = {name: _located([len(piece) for piece in column], bounds) for name, column in pieces.items()}
    batches = []
    for j in range(len(bounds) - 1):
        views = {}
        for name, column in pieces.items():
            k, first, stop = located[name][j]
            views[name] = column[k][first:stop]
        batches.append(Batch(ids[located["codes"][j][0]], **views))
    return Chunks(names, batches, (frame, symbol))


@dataclass
class Grouped:
    """Kept ticks sorted by (symbol, timestamp, seq); symbol s holds rows starts[s]:starts[s+1]."""

    starts: np.ndarray
    timestamp: np.ndarray
    seq: np.ndarray
    log_vwap: np.ndarray
    spread: np.ndarray
    arrival_timestamp: np.ndarray
    """The kept ticks' timestamps in arrival order."""
    arrival_row: np.ndarray | None
    """The row of each kept tick in arrival order; None where a symbol's rows were re-sorted."""


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

    def window_zscores(values, first, stop, window, out):
        """out[i] = _window_zscore(values, i + 1, window) for i in first..stop-1, four rows at a time:
        their four sums are independent, so they overlap instead of waiting on each other's adds,
        and each is still summed in _window_zscore's order (bit for bit the same z-score)."""
        i = first
        while i + 4 <= stop:
            total0 = total1 = total2 = total3 = 0.0
            for j in range(i - window + 1, i + 1):
                total0 += values[j]
                total1 += values[j + 1]
                total2 += values[j + 2]
                total3 += values[j + 3]
            mean0, mean1, mean2, mean3 = total0 / window, total1 / window, total2 / window, total3 / window
            squares0 = squares1 = squares2 = squares3 = 0.0
            for j in range(i - window + 1, i + 1):
                squares0 += (values[j] - mean0) ** 2
                squares1 += (values[j + 1] - mean1) ** 2
                squares2 += (values[j + 2] - mean2) ** 2
                squares3 += (values[j + 3] - mean3) ** 2
            std0, std1 = np.sqrt(squares0 / (window - 1)), np.sqrt(squares1 / (window - 1))
            std2, std3 = np.sqrt(squares2 / (window - 1)), np.sqrt(squares3 / (window - 1))
            out[i] = (values[i] - mean0) / std0 if std0 > 0 else np.nan
            out[i + 1] = (values[i + 1] - mean1) / std1 if std1 > 0 else np.nan
            out[i + 2] = (values[i + 2] - mean2) / std2 if std2 > 0 else np.nan
            out[i + 3] = (values[i + 3] - mean3) / std3 if std3 > 0 else np.nan
            i += 4
        for last in range(i, stop):
            out[last] = window_zscore(values, last + 1, window)

    window_zscores = jit(window_zscores)

    def segment_factors(log_vwap, spread, starts, first_symbol, stop_symbol, lag, window, alpha,
                        symbol_id, momentum, zscore, ema):
        """Every factor but the rank (and the rows' symbol id) of symbols first_symbol..stop_symbol-1,
        one segment [starts[s], starts[s+1]) at a time."""
        for s in range(first_symbol, stop_symbol):
            first, stop = starts[s], starts[s + 1]
            if first == stop:
                continue
            e = spread[first]
            for i in range(first, stop):
                k = i - first
                symbol_id[i] = s
                momentum[i] = log_vwap[i] - log_vwap[i - lag] if k >= lag else np.nan
                if k > 0:
                    e = alpha * spread[i] + (1 - alpha) * e
                ema[i] = e
            full = min(stop, first + lag + window - 1)
            zscore[first:full] = np.nan
            window_zscores(momentum, full, stop, window, zscore)

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


def _count_kept(symbol_of_code, codes, volume, min_volume, counts):
    """Add the batch's kept ticks per symbol id to ``counts``; return how many it keeps."""
    kept = 0
    for i in range(len(codes)):
        # Added, not branched on: whether a tick is kept is a coin toss the CPU cannot predict.
        keep = volume[i] > min_volume
        counts[symbol_of_code[codes[i]]] += keep
        kept += keep
    return kept


def _scatter_kept(symbol_of_code, codes, timestamp, seq, bid, ask, volume, vwap, min_volume, cursor, kept,
                  out_timestamp, out_seq, log_vwap, spread, arrival_timestamp, arrival_row):
    """Place each kept tick at its symbol's next free row (``cursor``), in arrival order; ``kept``
    counts the kept ticks before the batch. Returns the count after it."""
    for i in range(len(codes)):
        if volume[i] > min_volume:
            s = symbol_of_code[codes[i]]
            row = cursor[s]
            cursor[s] = row + 1
            out_timestamp[row] = timestamp[i]
            out_seq[row] = seq[i]
            log_vwap[row] = np.log(vwap[i])
            spread[row] = ask[i] - bid[i]
            arrival_timestamp[kept] = timestamp[i]
            arrival_row[kept] = row
            kept += 1
    return kept


def _unordered_symbols(starts, timestamp, seq):
    """Ids of the symbols whose rows are not strictly increasing in (timestamp, seq)."""
    flags = np.zeros(len(starts) - 1, dtype=np.bool_)
    for s in range(len(starts) - 1):
        for i in range(starts[s] + 1, starts[s + 1]):
            if timestamp[i] < timestamp[i - 1] or (timestamp[i] == timestamp[i - 1] and seq[i] <= seq[i - 1]):
                flags[s] = True
                break
    return np.flatnonzero(flags)


def _arrival_buckets(timestamp, bucket_ns, starts):
    """Where each bucket's run of ``timestamp`` begins: starts[:count], then starts[count] = len;
    returns count, or -1 if ``timestamp`` decreases somewhere (the buckets are not runs)."""
    count = 0
    end = 0
    for k in range(len(timestamp)):
        t = timestamp[k]
        if k > 0 and t < timestamp[k - 1]:
            return -1
        if k == 0 or t >= end:
            starts[count] = k
            count += 1
            end = (t // bucket_ns + 1) * bucket_ns  # one division per bucket, not per tick
    starts[count] = len(timestamp)
    return count


def _bucket_members(bucket, first_bucket, buckets):
    """(rows, starts): a counting sort of the rows by ``bucket - first_bucket``; bucket b holds
    rows[starts[b]:starts[b+1]]."""
    counts = np.zeros(buckets + 1, dtype=np.int64)
    for i in range(len(bucket)):
        counts[bucket[i] - first_bucket + 1] += 1
    starts = np.cumsum(counts)
    cursor = starts[:-1].copy()
    rows = np.empty(len(bucket), dtype=np.int64)
    for i in range(len(bucket)):
        b = bucket[i] - first_bucket
        rows[cursor[b]] = i
        cursor[b] += 1
    return rows, starts


SIGN_BIT = np.uint64(1 << 63)


def _radix_sort(keys, payload, spare_keys, spare_payload, size, counts):
    """Sort keys[:size] (uint64), carrying ``payload``, a byte at a time from the lowest (stable
    counting sorts, no branch on the data), skipping bytes all keys share; returns the sorted
    (keys, payload), which are either the given arrays or the spare ones."""
    counts[:, :] = 0
    for j in range(size):
        key = keys[j]
        for digit in range(8):
            counts[digit, (key >> np.uint64(8 * digit)) & np.uint64(255)] += 1
    for digit in range(8):
        shift = np.uint64(8 * digit)
        position = counts[digit]
        if position[(keys[0] >> shift) & np.uint64(255)] == size:
            continue
        total = 0
        for value in range(256):
            here = position[value]
            position[value] = total
            total += here
        for j in range(size):
            key = keys[j]
            value = (key >> shift) & np.uint64(255)
            spare_keys[position[value]] = key
            spare_payload[position[value]] = payload[j]
            position[value] += 1
        keys, spare_keys = spare_keys, keys
        payload, spare_payload = spare_payload, payload
    return keys, payload


def _make_rank_buckets(radix_sort):
    """The rank kernel, calling ``radix_sort`` (a compiled _radix_sort)."""

    def rank_members(rows, starts, first_bucket, stop_bucket, values, out):
        """Average-tie percentile rank of values[rows[starts[b]:starts[b+1]]] within each bucket b in
        first_bucket..stop_bucket-1 (NaN stays NaN, uncounted). Each bucket's values are radix-sorted
        as integer keys in the same order (-0.0 made 0.0, so equal values are equal keys). Ranks are
        half-integers over counts, so the result is exactly bucket_pct_rank's."""
        largest = 1
        for b in range(first_bucket, stop_bucket):
            largest = max(largest, starts[b + 1] - starts[b])
        keys, spare_keys = np.empty(largest, np.uint64), np.empty(largest, np.uint64)
        members, spare_members = np.empty(largest, np.int64), np.empty(largest, np.int64)
        counts = np.empty((8, 256), np.int64)
        for b in range(first_bucket, stop_bucket):
            size = 0
            for k in range(starts[b], starts[b + 1]):
                row = rows[k]
                value = values[row]
                if np.isnan(value):
                    out[row] = np.nan
                    continue
                bits = np.float64(value + 0.0).view(np.uint64)
                # Negative values: all bits flipped (larger magnitude sorts first); others above them.
                keys[size] = ~bits if bits & SIGN_BIT else bits | SIGN_BIT
                members[size] = row
                size += 1
            if size == 0:
                continue
            sorted_keys, sorted_members = radix_sort(keys, members, spare_keys, spare_members, size, counts)
            tie_start = 0
            while tie_start < size:
                tie_end = tie_start + 1
                while tie_end < size and sorted_keys[tie_end] == sorted_keys[tie_start]:
                    tie_end += 1
                rank = (tie_start + tie_end + 1) / 2 / size
                for j in range(tie_start, tie_end):
                    out[sorted_members[j]] = rank
                tie_start = tie_end

    return rank_members


@functools.cache
def _stage_kernels() -> dict[str, Callable]:
    """The group and rank stages' kernels, compiled with Numba (they release the GIL)."""
    import numba

    jit = numba.njit(nogil=True)
    return {"count_kept": jit(_count_kept), "scatter_kept": jit(_scatter_kept),
            "unordered_symbols": jit(_unordered_symbols), "arrival_buckets": jit(_arrival_buckets),
            "bucket_members": jit(_bucket_members), "rank_buckets": jit(_make_rank_buckets(jit(_radix_sort)))}


def _pooled_empty(length: int, dtype) -> np.ndarray:
    """np.empty in Arrow's memory pool (mimalloc), which keeps freed pages for the next call:
    a large NumPy array is a fresh mmap, faulted in page by page on every call (here 6.7 ms
    for six arrays of 600k rows, against 0.6 ms from the pool)."""
    import pyarrow as pa

    dtype = np.dtype(dtype)
    return np.frombuffer(pa.allocate_buffer(length * dtype.itemsize), dtype=dtype)


def _threads() -> int:
    """Numba's thread count: the CPUs, or NUMBA_NUM_THREADS (which ``--threads`` sets)."""
    import numba

    return numba.get_num_threads()


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(threads, thread_name_prefix="ticks-stage")


def _on_threads(work: Callable[[int], object], parts: int) -> list:
    """[work(0), ..., work(parts - 1)], each on a thread of its own."""
    if parts == 1:
        return [work(0)]
    return list(_pool(parts).map(work, range(parts)))


def _row_shares(batches: list[Batch], parts: int) -> list[list[Batch]]:
    """The batches as ``parts`` runs of consecutive rows of near-equal length (cutting a batch
    where a run ends)."""
    cuts = [sum(len(batch.codes) for batch in batches) * part // parts for part in range(1, parts)]
    shares: list[list[Batch]] = [[] for _ in range(parts)]
    offset = 0
    for batch in batches:
        size = len(batch.codes)
        edges = [0, *(cut - offset for cut in cuts if offset < cut < offset + size), size]
        for first, stop in itertools.pairwise(edges):
            shares[bisect.bisect_right(cuts, offset + first)].append(batch.rows(first, stop))
        offset += size
    return shares


def _segment_shares(starts: np.ndarray, parts: int) -> list[int]:
    """Cut segments [starts[i], starts[i+1]) into ``parts`` runs of near-equal rows: run p holds
    segments cuts[p]..cuts[p+1]-1."""
    total = int(starts[-1])
    inner = np.searchsorted(starts, [total * part // parts for part in range(1, parts)])
    return [0, *(int(cut) for cut in inner), len(starts) - 1]


def group_by_symbol(chunks: Chunks, min_volume: int) -> Grouped:
    """Filter and sort kept ticks by (symbol, timestamp, seq) with a counting sort on symbol id,
    each thread counting and then placing its share of the rows."""
    kernel = _stage_kernels()
    parts = _threads()
    shares = _row_shares(chunks.batches, parts)
    counts = np.zeros((parts, len(chunks.names)), dtype=np.int64)
    kept = _on_threads(lambda p: sum(kernel["count_kept"](batch.symbol_of_code, batch.codes, batch.volume, min_volume,
                                                           counts[p]) for batch in shares[p]), parts)
    starts = np.concatenate([[0], np.cumsum(counts.sum(axis=0))])
    n = int(starts[-1])
    # A share's ticks of a symbol go after the earlier shares' ones: arrival order is kept.
    cursors = starts[:-1] + np.cumsum(counts, axis=0) - counts
    first_kept = np.cumsum([0, *kept])
    grouped = Grouped(starts, *(_pooled_empty(n, dtype) for dtype in (np.int64, np.int64, np.float64, np.float64,
                                                                       np.int64, np.int64)))

    def scatter(p):
        placed = int(first_kept[p])
        for batch in shares[p]:
            placed = kernel["scatter_kept"](*batch, min_volume, cursors[p], placed,
                                            grouped.timestamp, grouped.seq, grouped.log_vwap, grouped.spread,
                                            grouped.arrival_timestamp, grouped.arrival_row)

    _on_threads(scatter, parts)
    # Files in arrival order need no sort; any other order is sorted here, symbol by symbol.
    unordered = kernel["unordered_symbols"](starts, grouped.timestamp, grouped.seq)
    for s in unordered:
        rows = slice(starts[s], starts[s + 1])
        order = np.lexsort((grouped.seq[rows], grouped.timestamp[rows]))
        for column in (grouped.timestamp, grouped.seq, grouped.log_vwap, grouped.spread):
            column[rows] = column[rows][order]
    if len(unordered):
        grouped.arrival_row = None
    return grouped


def rank_buckets(rows: np.ndarray, starts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Percentile rank of ``values`` within each bucket b = rows[starts[b]:starts[b+1]], the
    buckets shared out over the threads."""
    out = _pooled_empty(len(values), np.float64)
    parts = _threads()
    cuts = _segment_shares(starts, parts)
    _on_threads(lambda p: _stage_kernels()["rank_buckets"](rows, starts, cuts[p], cuts[p + 1], values, out), parts)
    return out


def bucket_rank(timestamp: np.ndarray, momentum: np.ndarray, bucket_ns: int) -> np.ndarray:
    """Per-bucket percentile rank of rows in any order; bucket_pct_rank (sort-based) when the
    buckets are too sparse for a counting sort over their range."""
    bucket = timestamp // bucket_ns
    if len(bucket) == 0:
        return np.empty(0)
    first, last = int(bucket.min()), int(bucket.max())
    if last - first >= 4 * len(bucket) + 1024:
        return bucket_pct_rank(bucket, momentum)
    rows, starts = _stage_kernels()["bucket_members"](bucket, first, last - first + 1)
    return rank_buckets(rows, starts, momentum)


def grouped_rank(grouped: Grouped, momentum: np.ndarray, bucket_ns: int) -> np.ndarray:
    """Per-bucket rank of the grouped rows: where the kept ticks arrived in time order, each
    bucket is a run of them and its rows are known (arrival_row); otherwise a counting sort."""
    if grouped.arrival_row is not None:
        starts = np.empty(len(momentum) + 1, dtype=np.int64)
        count = _stage_kernels()["arrival_buckets"](grouped.arrival_timestamp, bucket_ns, starts)
        if count >= 0:
            return rank_buckets(grouped.arrival_row, starts[:count + 1], momentum)
    return bucket_rank(grouped.timestamp, momentum, bucket_ns)


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
    symbol_id, momentum, zscore, ema = (_pooled_empty(n, dtype) for dtype in (np.int32, np.float64, np.float64,
                                                                            np.float64))
    segment_factors = kernels("numba")[0]
    parts = _threads()
    cuts = _segment_shares(grouped.starts, parts)
    _on_threads(lambda p: segment_factors(grouped.log_vwap, grouped.spread, grouped.starts, cuts[p], cuts[p + 1],
                                          spec.lag, spec.window, spec.alpha, symbol_id, momentum, zscore, ema), parts)
    lap("factors_s")
    rank = grouped_rank(grouped, momentum, spec.bucket_ns)
    lap("rank_s")
    return Factors(chunks.names, symbol_id, grouped.timestamp, grouped.seq, momentum, grouped.spread,
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
