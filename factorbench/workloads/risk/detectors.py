"""The two detectors that run in factorbench's own environment.

- ``python_incremental``: what a team writes first. Events come one by one in arrival
  order; a heap holds them until the watermark (max event time seen - lateness) passes
  them, then each card's ``CardMatcher`` (per-card state in a dict) is fed in event time.
- ``numba_batch``: the whole stream at once: NumPy sorts it by (card, time), a Numba loop
  scans each card's run of events for the three rules.

Both return alerts as (card, rule, event id) and per-alert latencies in seconds (from the
event's arrival to its alert; for the batch detector every event arrives when the batch
starts and every alert exists when it ends).
"""

from __future__ import annotations

import heapq
import time

import numpy as np

from factorbench.workloads.risk.cep_rules import (
    BURST_WITHIN_MS,
    PROBE_LARGE_CENTS,
    PROBE_SMALL_CENTS,
    PROBE_WITHIN_MS,
    RISING_WITHIN_MS,
    RULES,
    CardMatcher,
)
from factorbench.workloads.risk.stream import Alert, Transactions


def python_incremental(tx: Transactions) -> tuple[list[Alert], list[float], int]:
    """(alerts, latencies, late events dropped) over the stream in arrival order."""
    clock = time.perf_counter
    matchers: dict[int, CardMatcher] = {}
    pending: list[tuple[int, int, int, int, float]] = []
    alerts: list[Alert] = []
    latencies: list[float] = []
    late = 0
    watermark = -(1 << 62)

    def release(up_to: int) -> None:
        while pending and pending[0][0] <= up_to:
            ts, card, event_id, amount, arrived = heapq.heappop(pending)
            matcher = matchers.get(card)
            if matcher is None:
                matcher = matchers[card] = CardMatcher(tx.burst_n)
            for rule in matcher.feed(ts, amount):
                alerts.append((card, rule, event_id))
                latencies.append(clock() - arrived)

    for event_id, card, amount, ts in zip(tx.event_id.tolist(), tx.card.tolist(), tx.amount_cents.tolist(),
                                          tx.ts_ms.tolist()):
        arrived = clock()
        if ts <= watermark:  # as Flink: an event at or before the watermark is late and dropped
            late += 1
            continue
        heapq.heappush(pending, (ts, card, event_id, amount, arrived))
        if ts - tx.lateness_ms > watermark:
            watermark = ts - tx.lateness_ms
            release(watermark)
    release(1 << 62)  # end of the stream: the final watermark passes everything
    return alerts, latencies, late


def _scan_kernel():
    import numba

    @numba.njit(nogil=True, cache=True)
    def scan(starts, ts, amount, burst_n, rising_within, probe_within, burst_within, small, large, out_index,
             out_rule):
        found = 0
        for segment in range(len(starts) - 1):
            lo, hi = starts[segment], starts[segment + 1]
            i = lo
            while i + 2 < hi:
                if amount[i] < amount[i + 1] < amount[i + 2] and ts[i + 2] - ts[i] < rising_within:
                    out_index[found], out_rule[found] = i + 2, 0
                    found += 1
                    i += 3
                else:
                    i += 1
            i = lo
            while i + 1 < hi:
                if amount[i] < small and amount[i + 1] > large and ts[i + 1] - ts[i] < probe_within:
                    out_index[found], out_rule[found] = i + 1, 1
                    found += 1
                    i += 2
                else:
                    i += 1
            i = lo
            while i + burst_n < hi:
                if ts[i + burst_n] - ts[i] < burst_within:
                    out_index[found], out_rule[found] = i + burst_n, 2
                    found += 1
                    i += burst_n + 1
                else:
                    i += 1
        return found

    return scan


_kernel = None


def numba_batch(tx: Transactions) -> tuple[list[Alert], list[float], int]:
    """(alerts, latencies, 0): sort by (card, time), scan every card in one compiled loop."""
    global _kernel
    if _kernel is None:
        _kernel = _scan_kernel()
    began = time.perf_counter()
    order = np.lexsort((tx.ts_ms, tx.card))
    card, ts, amount = tx.card[order], tx.ts_ms[order], tx.amount_cents[order]
    starts = np.flatnonzero(np.r_[True, card[1:] != card[:-1], True]).astype(np.int64)
    # A run of events ends at most one alert per rule, so len(ts) bounds the alerts per rule.
    out_index = np.empty(3 * len(ts), dtype=np.int64)
    out_rule = np.empty(3 * len(ts), dtype=np.int8)
    found = _kernel(starts, ts, amount, tx.burst_n, RISING_WITHIN_MS, PROBE_WITHIN_MS, BURST_WITHIN_MS,
                    PROBE_SMALL_CENTS, PROBE_LARGE_CENTS, out_index, out_rule)
    index, rule = out_index[:found], out_rule[:found]
    alerts = list(zip(card[index].tolist(), [RULES[r] for r in rule.tolist()], tx.event_id[order][index].tolist()))
    elapsed = time.perf_counter() - began
    return alerts, [elapsed] * len(alerts), 0


DETECTORS = {"python": python_incremental, "numba": numba_batch}
