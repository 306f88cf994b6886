"""Deterministic synthetic tick data, written as Parquet files ``DIR/ticks/part-*.parquet``.

Columns: timestamp (timestamp[ns], non-decreasing), seq (int64, arrival order, unique),
symbol (string), bid, ask, last, vwap (float64), volume (int64).

- Arrivals are a Poisson stream at ``rate`` ticks/s, timestamps truncated to the
  millisecond, so several ticks (also of one symbol) share a timestamp and ``seq``
  breaks the tie.
- Symbol activity is skewed: lognormal weights, plus one symbol in 25 that trades only
  1-4 times, so the pipeline meets symbols with fewer ticks than its lags and windows.
- Mid prices are per-symbol random walks in log space; bid/ask sit on a 0.01 grid at
  least one tick apart (spread > 0); ``last`` trades at or inside the quote.
- Volumes are round lots of 100 with lognormal lot counts: about 30% of ticks have
  ``volume > 1000`` and about 2.5% exactly 1000 (the boundary of the filter).
- ``vwap`` is each symbol's running session VWAP: sum(last * volume) / sum(volume).

The rows are drawn in fixed blocks independent of the file count, so the same seed gives
the same ticks however they are split into files; file k holds a contiguous time range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_ROWS = 10_000_000
DEFAULT_SYMBOLS = 500
DEFAULT_FILES = 8
DEFAULT_RATE = 1000.0
SESSION_START_NS = np.datetime64("2024-01-02T09:30:00", "ns").astype(np.int64)
BLOCK_ROWS = 1 << 18
SPARSE_EVERY = 25
"""One symbol in this many trades only 1-4 times."""


def validate(rows: int, symbols: int, files: int, rate: float = DEFAULT_RATE) -> None:
    """ValueError naming the bad option and what is allowed."""
    for name, value in (("rows", rows), ("symbols", symbols), ("files", files)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if symbols > rows:
        raise ValueError(f"symbols ({symbols:,}) must not exceed rows ({rows:,})")
    if files > rows:
        raise ValueError(f"files ({files:,}) must not exceed rows ({rows:,})")
    if symbols > 1_000_000:
        raise ValueError(f"symbols must be at most 1,000,000, got {symbols:,}")
    if not rate > 0:
        raise ValueError(f"rate must be > 0 ticks/s, got {rate!r}")


def symbol_names(symbols: int) -> np.ndarray:
    # Zero-padded so that name order is id order.
    return np.array([f"S{i:06d}" for i in range(symbols)], dtype=object)


def tick_counts(rows: int, symbols: int, rng: np.random.Generator) -> np.ndarray:
    sparse = 1 + np.arange(symbols // SPARSE_EVERY if rows >= 10 * symbols else 0) % 4
    weights = rng.lognormal(0.0, 1.5, symbols - len(sparse))
    active = rng.multinomial(rows - int(sparse.sum()), weights / weights.sum())
    return np.concatenate([active, sparse])[rng.permutation(symbols)]


def grouped_cumsum(values: np.ndarray, group: np.ndarray, carry: np.ndarray) -> np.ndarray:
    """Running sum of ``values`` per group, continuing from ``carry`` (updated in place)."""
    order = np.argsort(group, kind="stable")
    g, v = group[order], values[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    lengths = np.diff(np.r_[starts, len(g)])
    # Restart the sum at each group: cumsum within [start, end) plus the group's carry.
    running = np.cumsum(v)
    running -= np.repeat(running[starts] - v[starts] - carry[g[starts]], lengths)
    carry[g[starts + lengths - 1]] = running[starts + lengths - 1]
    out = np.empty_like(running)
    out[order] = running
    return out


@dataclass
class _Walk:
    """Per-symbol state carried from one block to the next."""

    log_mid: np.ndarray
    step_sd: np.ndarray
    spread_frac: np.ndarray
    traded_value: np.ndarray
    traded_volume: np.ndarray
    clock_s: float = 0.0


def _block(rng: np.random.Generator, sid: np.ndarray, first_seq: int, walk: _Walk, rate: float,
           names: np.ndarray) -> dict:
    n = len(sid)
    clock = walk.clock_s + np.cumsum(rng.exponential(1.0 / rate, n))
    walk.clock_s = float(clock[-1])
    timestamp = SESSION_START_NS + (np.floor(clock * 1e3).astype(np.int64) * 1_000_000)
    mid = np.exp(grouped_cumsum(rng.standard_normal(n) * walk.step_sd[sid], sid, walk.log_mid))
    spread_ticks = np.maximum(1, np.rint(mid * 100 * walk.spread_frac[sid] * rng.exponential(1.0, n)))
    bid_cents = np.maximum(1, np.rint(mid * 100 - spread_ticks / 2))
    ask_cents = bid_cents + spread_ticks
    last_cents = bid_cents + np.floor(rng.random(n) * (spread_ticks + 1))
    volume = 100 * np.maximum(1, np.rint(rng.lognormal(np.log(5.0), 1.4, n))).astype(np.int64)
    last = last_cents / 100
    value = grouped_cumsum(last * volume, sid, walk.traded_value)
    shares = grouped_cumsum(volume.astype(np.float64), sid, walk.traded_volume)
    return {"timestamp": timestamp, "seq": np.arange(first_seq, first_seq + n, dtype=np.int64),
            "symbol": names[sid], "bid": bid_cents / 100, "ask": ask_cents / 100, "last": last,
            "volume": volume, "vwap": value / shares}


def generate(out: str | Path, *, rows: int = DEFAULT_ROWS, symbols: int = DEFAULT_SYMBOLS,
             files: int = DEFAULT_FILES, seed: int = 0, rate: float = DEFAULT_RATE,
             force: bool = False) -> list[Path]:
    """Write ``files`` Parquet files of ``rows`` ticks under ``out/ticks``; return their paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    validate(rows, symbols, files, rate)
    target = Path(out) / "ticks"
    existing = sorted(target.glob("*.parquet"))
    if existing and not force:
        raise FileExistsError(f"{target} already holds {len(existing)} Parquet file(s); "
                              "pass --force to replace them")
    for path in existing:
        path.unlink()
    target.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    names = symbol_names(symbols)
    sid_of_tick = rng.permutation(np.repeat(np.arange(symbols, dtype=np.int32), tick_counts(rows, symbols, rng)))
    walk = _Walk(log_mid=rng.normal(np.log(50.0), 0.8, symbols), step_sd=rng.uniform(1e-4, 6e-4, symbols),
                 spread_frac=rng.uniform(1e-4, 1e-3, symbols), traded_value=np.zeros(symbols),
                 traded_volume=np.zeros(symbols))
    schema = pa.schema([("timestamp", pa.timestamp("ns")), ("seq", pa.int64()), ("symbol", pa.string()),
                        ("bid", pa.float64()), ("ask", pa.float64()), ("last", pa.float64()),
                        ("volume", pa.int64()), ("vwap", pa.float64())])
    bounds = [rows * k // files for k in range(files + 1)]
    paths = [target / f"part-{k:05d}.parquet" for k in range(files)]
    writer, file_index = None, -1
    try:
        for block_start in range(0, rows, BLOCK_ROWS):
            block_stop = min(rows, block_start + BLOCK_ROWS)
            table = pa.table(_block(rng, sid_of_tick[block_start:block_stop], block_start, walk, rate, names),
                             schema=schema)
            row = block_start
            while row < block_stop:
                if row >= bounds[file_index + 1]:
                    if writer is not None:
                        writer.close()
                    file_index += 1
                    writer = pq.ParquetWriter(paths[file_index], schema)
                assert writer is not None, "the first file opens at row 0 (bounds[0] == 0)"
                cut = min(block_stop, bounds[file_index + 1])
                writer.write_table(table.slice(row - block_start, cut - row))
                row = cut
    except BaseException:
        if writer is not None:
            writer.close()
        for path in paths:  # no half-written data set left behind
            path.unlink(missing_ok=True)
        raise
    if writer is not None:
        writer.close()
    return paths


def tick_files(directory: str | Path) -> list[Path]:
    """The Parquet files of a data directory (``DIR/ticks/*.parquet`` or ``DIR/*.parquet``)."""
    directory = Path(directory)
    found = sorted((directory / "ticks").glob("*.parquet")) or sorted(directory.glob("*.parquet"))
    if not found:
        raise FileNotFoundError(f"no tick Parquet files in {directory}/ticks (make them with "
                                f"`factorbench data ticks --out {directory}`)")
    return found


def read_frame(files):
    """All ticks as one pandas DataFrame (for the reference and the checks)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()
