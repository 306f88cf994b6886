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

import importlib
import pkgutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from factorbench.registry import missing_modules


@dataclass(frozen=True)
class Workload:
    name: str
    summary: str
    run: Callable[..., dict]
    """Called with the RunOptions (quick, seed, params, settings...); returns the section."""
    requires: tuple[str, ...] = ()
    probe: Callable[[], str | None] | None = field(default=None)
    params: tuple[str, ...] = ()
    """The ``--param KEY=VALUE`` keys this workload reads from RunOptions.params."""
    validate: Callable[..., None] | None = None
    """Called with the RunOptions before anything runs; raises ValueError naming a bad parameter."""

    @property
    def reason(self) -> str | None:
        reason = missing_modules(self.requires)
        if reason is None and self.probe is not None:
            reason = self.probe()
        return reason


@cache
def _workloads() -> dict[str, Workload]:
    found = {}
    for module in pkgutil.iter_modules(__path__):
        workload = importlib.import_module(f"{__name__}.{module.name}").WORKLOAD
        found[workload.name] = workload
    return dict(sorted(found.items()))


def workloads() -> list[str]:
    return list(_workloads())


def workload(name: str) -> Workload:
    known = _workloads()
    if name not in known:
        raise ValueError(f"unknown workload {name!r}; choose from: {', '.join(known) or '(none installed)'}")
    return known[name]


def run_workload(name: str, options) -> dict:
    """Run one workload; a missing dependency or an exception becomes the section's status."""
    spec = workload(name)
    section = {"name": spec.name, "summary": spec.summary, "status": "ok", "reason": "",
               "params": {}, "rows": [], "units": {}, "notes": []}
    reason = spec.reason
    if reason:
        section.update(status="skipped", reason=reason)
        return section
    try:
        section.update(spec.run(options))
    except Exception as exc:
        section.update(status="failed", reason=f"{type(exc).__name__}: {exc}",
                       traceback=traceback.format_exc(limit=5))
    return section
