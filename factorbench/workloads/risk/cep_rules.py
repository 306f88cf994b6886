"""The three fraud patterns, defined once: a scan over one card's events (the reference) and
the same rules as an incremental per-card matcher (the Python detector and the PyFlink
KeyedProcessFunction both use it).

Standard library only: the Flink job imports this file in PyFlink's own environment and
ships it to the Python workers, where factorbench is not installed.

Per card, events are taken in event-time order (timestamps are unique per card). Amounts
are integer cents, times integer milliseconds. Each pattern is a run of consecutive events
of the card (strict contiguity, as MATCH_RECOGNIZE's ``PATTERN (A B C)``), the alert names
the run's last event, and after a match the next one starts after that event (``AFTER
MATCH SKIP PAST LAST ROW``); "within W" means last.ts - first.ts < W, strictly, as
Flink's ``WITHIN``.

- rising: three events with strictly rising amounts within 10 s;
- probe:  an amount below 2.00 followed by one above 500.00 within 60 s;
- burst:  more than N events (N + 1 in a run) within 60 s.
"""

from __future__ import annotations

RULES = ("rising", "probe", "burst")
RISING_WITHIN_MS = 10_000
PROBE_WITHIN_MS = 60_000
BURST_WITHIN_MS = 60_000
PROBE_SMALL_CENTS = 200
"""A "test" transaction is below 2.00."""
PROBE_LARGE_CENTS = 50_000
"""The large one is above 500.00."""
DEFAULT_BURST_N = 5


def _rising(run) -> bool:
    (t0, a0), (_, a1), (t2, a2) = run
    return a0 < a1 < a2 and t2 - t0 < RISING_WITHIN_MS


def _probe(run) -> bool:
    (t0, a0), (t1, a1) = run
    return a0 < PROBE_SMALL_CENTS and a1 > PROBE_LARGE_CENTS and t1 - t0 < PROBE_WITHIN_MS


def _burst(run) -> bool:
    return run[-1][0] - run[0][0] < BURST_WITHIN_MS


def run_lengths(burst_n: int) -> dict[str, int]:
    return {"rising": 3, "probe": 2, "burst": burst_n + 1}


def _tests(burst_n: int):
    lengths = run_lengths(burst_n)
    return [(rule, lengths[rule], test) for rule, test in zip(RULES, (_rising, _probe, _burst))]


def scan_card(times, amounts, burst_n: int = DEFAULT_BURST_N) -> list[tuple[str, int]]:
    """The reference: (rule, index of the alerting event) for one card's time-sorted events."""
    found = []
    for rule, length, test in _tests(burst_n):
        start = 0
        while start + length <= len(times):
            run = list(zip(times[start:start + length], amounts[start:start + length]))
            if test(run):
                found.append((rule, start + length - 1))
                start += length
            else:
                start += 1
    return found


class CardMatcher:
    """One card's matching state, fed its events in event-time order.

    For each rule it keeps the events since that rule's last match, at most one run's
    length minus one: this is all ``scan_card`` looks at, so feeding events one by one
    gives exactly its alerts. ``state()``/``from_state`` turn it into plain lists for keyed
    state in Flink.
    """

    def __init__(self, burst_n: int = DEFAULT_BURST_N, tails=None):
        self.tests = _tests(burst_n)
        self.tails = tails if tails is not None else [[] for _ in self.tests]

    def feed(self, time_ms: int, amount_cents: int) -> list[str]:
        """The rules this event completes a match of."""
        matched = []
        for (rule, length, test), tail in zip(self.tests, self.tails):
            tail.append((time_ms, amount_cents))
            if len(tail) == length:
                if test(tail):
                    matched.append(rule)
                    tail.clear()
                else:
                    del tail[0]
        return matched

    def state(self) -> list:
        return self.tails

    @classmethod
    def from_state(cls, burst_n: int, tails) -> CardMatcher:
        return cls(burst_n, [[tuple(event) for event in tail] for tail in tails])
