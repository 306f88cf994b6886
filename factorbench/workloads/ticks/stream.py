"""Micro-batch streaming: ticks arrive in arrival-order batches and the factors are updated.

Incremental mode keeps per-symbol state (ticks seen, last ``lag`` log-vwaps, last
``window`` momenta, the EMA) and touches only the batch's ticks. A tick's momentum,
z-score and EMA are final when it arrives; its rank is final when its time bucket
closes, i.e. when a later bucket's tick arrives (timestamps never go back), so rows are
emitted when their bucket closes and the open bucket's rows at ``flush()``. Latency of a
batch = ``update()``: filter, per-tick state updates, ranking the buckets it closed.

Recompute mode is what a system without state does: run the batch pipeline on every
tick seen so far. To keep a long run bounded it looks back at most ``window_ticks`` raw
ticks (documented in the results); its latency is measured on evenly spaced batches.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from factorbench.workloads.ticks import columnar
from factorbench.workloads.ticks.factors import DEFAULT_SPEC, FactorSpec, bucket_pct_rank


class IncrementalFactors:
    """Per-symbol factor state, advanced batch by batch; ``backend`` is "numba" or "python".

    Symbols are ids into ``names``, the instrument table known up front (as a feed
    handler's is), so state lives in arrays indexed by id.
    """

    def __init__(self, names: np.ndarray, spec: FactorSpec = DEFAULT_SPEC, backend: str = "numba"):
        self.names, self.spec = names, spec
        self._advance = columnar.kernels(backend)[1]
        symbols = len(names)
        self.seen = np.zeros(symbols, dtype=np.int64)
        self.recent_log_vwap = np.zeros((symbols, spec.lag))
        self.recent_momentum = np.zeros((symbols, spec.window))
        self.ema = np.zeros(symbols)
        self.last_timestamp = np.iinfo(np.int64).min
        self._open: dict[str, np.ndarray] = {"symbol_id": np.empty(0, np.int32), "timestamp": np.empty(0, np.int64),
                      "seq": np.empty(0, np.int64), **{key: np.empty(0) for key in
                                                       ("momentum", "spread", "zscore", "ema_spread")}}

    def update(self, batch: columnar.Ticks) -> dict[str, np.ndarray]:
        """Advance by one batch (arrival order); return the rows whose buckets closed."""
        spec = self.spec
        if len(batch) and batch.timestamp[0] < self.last_timestamp:
            raise ValueError("ticks must arrive in non-decreasing timestamp order")
        if len(batch):
            self.last_timestamp = int(batch.timestamp[-1])
        kept = np.flatnonzero(batch.volume > spec.min_volume)
        symbol_id = batch.symbol_id[kept]
        spread = batch.ask[kept] - batch.bid[kept]
        momentum, zscore, ema = np.empty(len(kept)), np.empty(len(kept)), np.empty(len(kept))
        self._advance(symbol_id, np.log(batch.vwap[kept]), spread, self.seen, self.recent_log_vwap,
                      self.recent_momentum, self.ema, spec.lag, spec.window, spec.alpha, momentum, zscore, ema)
        rows: dict[str, np.ndarray] = {"symbol_id": symbol_id, "timestamp": batch.timestamp[kept], "seq": batch.seq[kept],
                "momentum": momentum, "spread": spread, "zscore": zscore, "ema_spread": ema}
        rows = {key: np.concatenate([self._open[key], rows[key]]) for key in rows}
        # Every bucket before the latest tick's (kept or not) is complete.
        closed = np.searchsorted(rows["timestamp"] // spec.bucket_ns, self.last_timestamp // spec.bucket_ns)
        self._open = {key: values[closed:] for key, values in rows.items()}
        return self._ranked({key: values[:closed] for key, values in rows.items()})

    def flush(self) -> dict[str, np.ndarray]:
        """The rows of the still-open bucket (end of the stream)."""
        rows = self._open
        self._open = {key: values[:0] for key, values in rows.items()}
        return self._ranked(rows)

    def _ranked(self, rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows["rank"] = bucket_pct_rank(rows["timestamp"] // self.spec.bucket_ns, rows["momentum"])
        return rows


def batches(ticks: columnar.Ticks, size: int):
    for start in range(0, len(ticks), size):
        yield ticks.rows(slice(start, start + size))


def incremental_factors(ticks: columnar.Ticks, spec: FactorSpec, batch_size: int, backend: str = "numba",
                        latencies: list[float] | None = None) -> columnar.Factors:
    """Stream ``ticks`` through IncrementalFactors; the emitted rows, canonically sorted.

    Appends each batch's ``update()`` time to ``latencies`` when given.
    """
    engine = IncrementalFactors(ticks.names, spec, backend)
    emitted = []
    for batch in batches(ticks, batch_size):
        start = time.perf_counter()
        emitted.append(engine.update(batch))
        if latencies is not None:
            latencies.append(time.perf_counter() - start)
    emitted.append(engine.flush())
    rows = {key: np.concatenate([part[key] for part in emitted]) for key in emitted[0]}
    order = np.lexsort((rows["seq"], rows["timestamp"], rows["symbol_id"]))
    return columnar.Factors(ticks.names, rows["symbol_id"][order], rows["timestamp"][order],
                          rows["seq"][order], *(rows[key][order] for key in
                                                ("momentum", "spread", "zscore", "ema_spread", "rank")))


def warm_up(ticks: columnar.Ticks, spec: FactorSpec, backend: str, recompute_backend: str) -> None:
    """Compile the kernels before anything is timed: a first Numba call is mostly compilation."""
    head = ticks.rows(slice(0, 1000))
    IncrementalFactors(ticks.names, spec, backend).update(head)
    columnar.compute(head, spec, recompute_backend)


def recompute_latencies(ticks: columnar.Ticks, spec: FactorSpec, batch_size: int, backend: str,
                        window_ticks: int, samples: int) -> list[float]:
    """Seconds to recompute everything seen so far (at most ``window_ticks``) after evenly spaced batches."""
    count = -(-len(ticks) // batch_size)
    chosen = np.unique(np.linspace(0, count - 1, min(samples, count)).round().astype(int))
    latencies = []
    for index in chosen:
        end = min(len(ticks), (index + 1) * batch_size)
        start = time.perf_counter()
        columnar.compute(ticks.rows(slice(max(0, end - window_ticks), end)), spec, backend)
        latencies.append(time.perf_counter() - start)
    return latencies


@dataclass
class LatencySummary:
    p50: float
    p95: float
    p99: float
    samples: list[float]

    @classmethod
    def of(cls, seconds: list[float]) -> LatencySummary:
        p50, p95, p99 = np.percentile(seconds, [50, 95, 99])
        return cls(float(p50), float(p95), float(p99), [float(s) for s in seconds])

    def to_json(self) -> dict:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99, "samples": self.samples}
