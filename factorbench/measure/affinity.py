"""Pinning the runner, and the worker processes it starts, to chosen CPUs (the article's section 8.2)."""

from __future__ import annotations

import contextlib
import os

from factorbench.measure import cgroups


def check(cpus: list[int]) -> None:
    """Raise ValueError unless every CPU in ``cpus`` is one this process may run on."""
    if not cpus:
        return
    if not hasattr(os, "sched_setaffinity"):
        raise ValueError("--cpus needs os.sched_setaffinity, which this platform lacks")
    allowed = os.sched_getaffinity(0)
    outside = sorted(set(cpus) - allowed)
    if outside:
        raise ValueError(f"--cpus: CPU(s) {', '.join(map(str, outside))} not available to this process; "
                         f"choose from {', '.join(map(str, sorted(allowed)))}{cgroups.container_hint()}")


@contextlib.contextmanager
def pinned(cpus: list[int]):
    """Run the block on ``cpus`` only (nothing changes when empty); restores the old set."""
    if not cpus:
        yield
        return
    check(cpus)
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)
