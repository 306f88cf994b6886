"""Workloads: benchmarks that are not one kernel call (I/O overlap, tick pipelines, model fits).

A module in this package defines ``WORKLOAD = Workload(...)``; it is found by name. Its
``run(options)`` returns a section of the results document:

    {"params": {...}, "rows": [{"label": "...", <metric>: <number>, ...}, ...],
     "units": {<metric>: "s" | "ticks/s" | "bytes" | ...}, "notes": ["..."]}

optionally with "latency": {label: {"p50": s, "p95": s, "p99": s, "samples": [...]}}.
The runner adds name, summary, status and reason; the CLI and the report render rows
generically, so a new workload needs no change elsewhere.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from factorbench.discovery import choose, discover
from factorbench.registry import missing_modules


@dataclass(frozen=True)
class Workload:
    name: str
    summary: str
    run: Callable[..., dict]
    """Called with the RunOptions (quick, seed, params, settings...); returns the section."""
    requires: tuple[str, ...] = ()
    probe: Callable[[], str | None] | None = field(default=None)
    params: Mapping[str, Any] = field(default_factory=dict)
    """Default parameters; ``--param KEY=VALUE`` overrides any of these keys."""
    quick: Mapping[str, Any] = field(default_factory=dict)
    """Overrides of ``params`` for ``--quick`` runs."""
    validate: Callable[[dict], None] | None = None
    """Raises ValueError naming a bad parameter and what is allowed."""
    data_bytes: Callable[..., int] | None = None
    """Called with the RunOptions: the most memory its data takes at once (an estimate), so a
    run skips it rather than start what its memory bound cannot hold."""

    def parameters(self, options) -> dict:
        """The parameters a run uses: defaults, then quick ones, then the user's; validated."""
        chosen = {**self.params, **(self.quick if options.quick else {}),
                  **{key: value for key, value in options.params.items() if key in self.params}}
        if self.validate is not None:
            try:
                self.validate(chosen)
            except ValueError as exc:
                raise ValueError(f"workload {self.name}: {exc}") from None
        return chosen

    @property
    def reason(self) -> str | None:
        reason = missing_modules(self.requires)
        if reason is None and self.probe is not None:
            reason = self.probe()
        return reason


@cache
def _workloads() -> dict[str, Workload]:
    return discover(__name__, "WORKLOAD")


def workloads() -> list[str]:
    return list(_workloads())


def workload(name: str) -> Workload:
    return choose(_workloads(), name, "workload")


def run_workload(name: str, options, too_big: Callable[[int, str], str | None] | None = None) -> dict:
    """Run one workload; a missing dependency or an exception becomes the section's status.
    ``too_big(bytes, what)``: why data of that size cannot fit the run's memory (None: it fits)."""
    spec = workload(name)
    section = {"name": spec.name, "summary": spec.summary, "status": "ok", "reason": "",
               "params": {}, "rows": [], "units": {}, "notes": []}
    reason = spec.reason
    if reason is None and too_big is not None and spec.data_bytes is not None:
        reason = too_big(spec.data_bytes(options), "its data")
    if reason:
        section.update(status="skipped", reason=reason)
        return section
    try:
        section.update(spec.run(options))
    except Exception as exc:
        section.update(status="failed", reason=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc(limit=5))
    return section
