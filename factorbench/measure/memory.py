"""The memory a run may use: the smallest of the cgroup's memory limit (v1 or v2), the
machine's available memory (MemAvailable) and ``--memory-limit``, less a fixed fraction
kept free for what no size the harness chooses accounts for (the interpreter and the
libraries of the runner, the zygote and the workers, the implementations' temporaries).
Every array size the harness picks — the floors', the kernels', the workloads' — fits
in what is left, ``MemoryBound.usable_bytes``."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from factorbench.measure import cgroups

KEPT_FREE_FRACTION = 0.25
"""Of the memory limit, kept free for the interpreters, the libraries and the workers."""


@dataclass(frozen=True)
class MemoryBound:
    limit_bytes: int
    """The smallest of the limits."""
    limited_by: str
    """Which limit it is: 'cgroup memory limit', 'available memory' or '--memory-limit'."""

    @property
    def usable_bytes(self) -> int:
        """What the harness's own array sizes may add up to."""
        return int(self.limit_bytes * (1 - KEPT_FREE_FRACTION))

    def describe(self) -> str:
        """'1.5 GiB (the cgroup memory limit of 2 GiB, less 25% kept free)'."""
        return (f"{gib(self.usable_bytes)} (the {self.limited_by} of {gib(self.limit_bytes)}, "
                f"less {KEPT_FREE_FRACTION:.0%} kept free)")

    def to_json(self) -> dict:
        return {"limit_bytes": self.limit_bytes, "limited_by": self.limited_by,
                "usable_bytes": self.usable_bytes, "kept_free_fraction": KEPT_FREE_FRACTION}


def gib(nbytes: float) -> str:
    """Bytes as '1.5 GiB' or '384 MiB'."""
    return f"{nbytes / 2**30:.3g} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.3g} MiB"


def memory_bound(memory_limit_bytes: int | None = None) -> MemoryBound:
    """The memory this run may use (see the module's docstring); ``memory_limit_bytes`` is
    ``--memory-limit``'s value."""
    limits = [(psutil.virtual_memory().available, "available memory")]
    if (cgroup := cgroups.limits()["memory_limit_bytes"]) is not None:
        limits.append((cgroup, "cgroup memory limit"))
    if memory_limit_bytes is not None:
        limits.append((memory_limit_bytes, "--memory-limit"))
    limit, limited_by = min(limits)
    return MemoryBound(limit, limited_by)
