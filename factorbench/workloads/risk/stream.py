"""A seeded card-transaction stream with fraud patterns injected at known places.

Background transactions are built so that they can never match a rule: their amounts lie
in [5.00, 450.00] (never a probe's below 2.00 or above 500.00), and consecutive background
events of a card are at least max(10 s, 60 s / N) apart, so no three of them fall within
10 s and no N + 1 within 60 s. Injected groups (a few events of one card) are at least
60.001 s away from the card's other events, so a group matches alone and the expected
alerts are known exactly. Some groups are near misses on purpose: a rising run spanning
exactly 10.000 s, equal amounts, a probe 60.000 s apart or at exactly 2.00 / 500.00, a
burst spanning exactly 60.000 s; one kind alerts two rules on the same event.

Arrival order is event time plus a random delay in [0, lateness): the stream is out of
order, but never later than a watermark of ``max(ts seen) - lateness`` allows, so no
engine may drop an event.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from factorbench.workloads.risk.cep_rules import (
    BURST_WITHIN_MS,
    PROBE_LARGE_CENTS,
    PROBE_SMALL_CENTS,
    PROBE_WITHIN_MS,
    RISING_WITHIN_MS,
)

BASE_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z: event times are milliseconds since the epoch."""
BACKGROUND_CENTS = (500, 45_000)
CLEARANCE_MS = PROBE_WITHIN_MS + 1
MERCHANTS = 500
CSV_COLUMNS = ("event_id", "card", "amount", "merchant", "ts_ms")

Alert = tuple[int, str, int]
"""(card, rule, event id of the alerting event)."""


@dataclass
class Transactions:
    """Events in arrival order, and the alerts that must come out of them."""

    event_id: np.ndarray
    card: np.ndarray
    amount_cents: np.ndarray
    merchant: np.ndarray
    ts_ms: np.ndarray
    expected: set[Alert]
    lateness_ms: int
    burst_n: int

    def __len__(self) -> int:
        return len(self.event_id)

    def cards(self) -> int:
        return len(np.unique(self.card))

    def of_cards(self, keep: np.ndarray) -> Transactions:
        """The events (and expected alerts) of the cards in ``keep``, still in arrival order:
        the patterns are per card, so the ground truth stays exact."""
        mask = np.isin(self.card, keep)
        kept = set(int(card) for card in keep)
        return Transactions(self.event_id[mask], self.card[mask], self.amount_cents[mask], self.merchant[mask],
                            self.ts_ms[mask], {a for a in self.expected if a[0] in kept}, self.lateness_ms,
                            self.burst_n)

    def first_events(self, at_most: int) -> Transactions:
        """The events of the lowest-numbered cards that together have at most ``at_most``
        events (at least one card): a smaller input for a slow engine."""
        cards, counts = np.unique(self.card, return_counts=True)
        take = max(1, int(np.searchsorted(np.cumsum(counts), at_most, side="right")))
        return self.of_cards(cards[:take])

    def write_csv(self, path: Path) -> Path:
        """The stream as one headerless CSV file in arrival order (what Flink's filesystem
        source reads; one file, so one reader sees the arrival order)."""
        import pandas as pd

        path = Path(path)
        frame = pd.DataFrame({"event_id": self.event_id, "card": self.card, "amount": self.amount_cents / 100,
                              "merchant": self.merchant, "ts_ms": self.ts_ms})
        frame.to_csv(path, header=False, index=False, float_format="%.2f")
        return path


def _group(kind: str, rng: np.random.Generator, burst_n: int):
    """(offsets in ms from the group's first event, amounts in cents, [(rule, index)])."""
    low, high = BACKGROUND_CENTS
    if kind == "rising":
        amounts = np.sort(rng.choice(np.arange(low, high), 3, replace=False))
        return np.cumsum([0, *rng.integers(100, RISING_WITHIN_MS // 2, 2)]), amounts, [("rising", 2)]
    if kind == "rising_slow":  # exactly 10.000 s: WITHIN is strict
        amounts = np.sort(rng.choice(np.arange(low, high), 3, replace=False))
        return np.array([0, RISING_WITHIN_MS // 2, RISING_WITHIN_MS]), amounts, []
    if kind == "rising_tie":  # a < b == c is not strictly rising
        a, b = np.sort(rng.choice(np.arange(low, high), 2, replace=False))
        return np.cumsum([0, *rng.integers(100, 3000, 2)]), np.array([a, b, b]), []
    if kind == "probe":
        amounts = np.array([rng.integers(1, PROBE_SMALL_CENTS), rng.integers(PROBE_LARGE_CENTS + 1, 500_000)])
        return np.array([0, rng.integers(100, PROBE_WITHIN_MS)]), amounts, [("probe", 1)]
    if kind == "probe_slow":  # exactly 60.000 s apart
        amounts = np.array([rng.integers(1, PROBE_SMALL_CENTS), rng.integers(PROBE_LARGE_CENTS + 1, 500_000)])
        return np.array([0, PROBE_WITHIN_MS]), amounts, []
    if kind == "probe_edge":  # exactly 2.00 then a large one, or a small one then exactly 500.00
        amounts = (np.array([PROBE_SMALL_CENTS, rng.integers(PROBE_LARGE_CENTS + 1, 500_000)]) if rng.random() < 0.5
                   else np.array([rng.integers(1, PROBE_SMALL_CENTS), PROBE_LARGE_CENTS]))
        return np.array([0, rng.integers(100, 30_000)]), amounts, []
    # burst_n + 1 events; amounts never rising, so no rising run hides in a burst
    amounts = -np.sort(-rng.integers(low, high, burst_n + 1))
    if kind == "burst":
        gaps = rng.integers(100, (BURST_WITHIN_MS - 1) // burst_n + 1, burst_n)
        return np.cumsum([0, *gaps]), amounts, [("burst", burst_n)]
    if kind == "burst_slow":  # spans exactly 60.000 s
        gaps = np.full(burst_n, BURST_WITHIN_MS // burst_n)
        gaps[-1] += BURST_WITHIN_MS - gaps.sum()
        return np.cumsum([0, *gaps]), amounts, []
    if kind == "combo":  # a burst whose last three events also rise within 10 s: two alerts on one event
        gaps = rng.integers(100, min(RISING_WITHIN_MS // 2, (BURST_WITHIN_MS - 1) // burst_n + 1), burst_n)
        amounts[-2] = amounts[-3] + rng.integers(1, 1000)
        amounts[-1] = amounts[-2] + rng.integers(1, 1000)
        return np.cumsum([0, *gaps]), amounts, [("burst", burst_n), ("rising", burst_n)]
    raise ValueError(f"unknown group kind {kind!r}")


GROUP_KINDS = ("rising", "rising_slow", "rising_tie", "probe", "probe_slow", "probe_edge", "burst", "burst_slow",
               "combo")


def background_gap_ms(burst_n: int) -> int:
    """Smallest gap between background events: three never within 10 s, N + 1 never within 60 s."""
    return max(RISING_WITHIN_MS, -(-BURST_WITHIN_MS // burst_n))


def generate(events: int, cards: int, seed: int = 0, lateness_ms: int = 2000, burst_n: int = 5,
             fraud_rate: float = 0.002) -> Transactions:
    """``events`` transactions over ``cards`` cards, about ``fraud_rate * events`` injected
    groups (every kind at least once), arriving out of order by less than ``lateness_ms``."""
    if lateness_ms < 1:
        raise ValueError(f"lateness_ms must be >= 1 (a watermark of max - lateness), got {lateness_ms}")
    rng = np.random.default_rng(seed)
    group_count = max(len(GROUP_KINDS), round(events * fraud_rate))
    groups = [_group(GROUP_KINDS[i % len(GROUP_KINDS)], rng, burst_n) for i in range(group_count)]
    group_events = sum(len(offsets) for offsets, _, _ in groups)
    if events < group_events + cards:
        raise ValueError(f"{events} events are too few for {cards} cards and {group_events} injected events")
    background = events - group_events

    # Blocks: background events (one each) and groups, shuffled within each card.
    block_card = np.concatenate([rng.integers(0, cards, background), rng.integers(0, cards, group_count)])
    block_group = np.concatenate([np.full(background, -1), np.arange(group_count)])
    order = np.lexsort((rng.random(len(block_card)), block_card))
    block_card, block_group = block_card[order], block_group[order]
    duration = np.zeros(len(block_card), dtype=np.int64)
    is_group = block_group >= 0
    duration[is_group] = [groups[g][0][-1] for g in block_group[is_group]]

    first_of_card = np.r_[True, block_card[1:] != block_card[:-1]]
    next_to_group = is_group | np.r_[False, is_group[:-1]]
    gap = background_gap_ms(burst_n) + rng.exponential(30_000, len(block_card)).astype(np.int64)
    gap[next_to_group] = CLEARANCE_MS + rng.integers(0, 30_000, int(next_to_group.sum()))
    gap[first_of_card] = rng.integers(0, 600_000, int(first_of_card.sum()))
    step = gap + np.r_[0, duration[:-1]] * ~first_of_card
    total = np.cumsum(step)
    card_start = np.maximum.accumulate(np.where(first_of_card, np.arange(len(step)), 0))
    start = total - total[card_start] + step[card_start]

    # Expand blocks into events.
    sizes = np.where(is_group, [len(groups[g][0]) if g >= 0 else 1 for g in block_group], 1)
    block_of_event = np.repeat(np.arange(len(block_card)), sizes)
    np.arange(len(block_of_event)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    offset = np.zeros(events, dtype=np.int64)
    amount = np.exp(rng.normal(np.log(4000), 1.0, events)).astype(np.int64).clip(*BACKGROUND_CENTS)
    alerts_at: list[tuple[int, str]] = []
    for block in np.flatnonzero(is_group):
        offsets, amounts, alerts = groups[block_group[block]]
        first = int(np.searchsorted(block_of_event, block))
        offset[first:first + len(offsets)] = offsets
        amount[first:first + len(offsets)] = amounts
        alerts_at += [(first + index, rule) for rule, index in alerts]
    card = block_card[block_of_event].astype(np.int64) + 1
    ts = BASE_MS + start[block_of_event] + offset

    # Event ids in event-time order; arrival order by time plus a bounded delay.
    by_time = np.lexsort((card, ts))
    event_id = np.empty(events, dtype=np.int64)
    event_id[by_time] = np.arange(1, events + 1)
    arrival = np.lexsort((event_id, ts + rng.integers(0, lateness_ms, events)))
    expected = {(int(card[i]), rule, int(event_id[i])) for i, rule in alerts_at}
    merchant = rng.integers(1, MERCHANTS + 1, events)
    return Transactions(event_id[arrival], card[arrival], amount[arrival], merchant[arrival], ts[arrival],
                        expected, lateness_ms, burst_n)


def reference_alerts(tx: Transactions) -> set[Alert]:
    """Every rule scanned over each card's time-sorted events (cep_rules.scan_card): the
    definition, independent of the injection bookkeeping above."""
    from factorbench.workloads.risk.cep_rules import scan_card

    order = np.lexsort((tx.ts_ms, tx.card))
    card, ts, amount, event_id = tx.card[order], tx.ts_ms[order], tx.amount_cents[order], tx.event_id[order]
    bounds = np.flatnonzero(np.r_[True, card[1:] != card[:-1], True])
    found = set()
    for lo, hi in itertools.pairwise(bounds):
        for rule, index in scan_card(ts[lo:hi].tolist(), amount[lo:hi].tolist(), tx.burst_n):
            found.add((int(card[lo]), rule, int(event_id[lo + index])))
    return found
