"""The memory a run may use: the smallest of the cgroup's memory limit (v1 or v2), the
machine's available memory (MemAvailable) and ``--memory-limit``, less a fixed fraction
kept free for what no size the harness chooses accounts for (the interpreter and the
libraries of the runner, the zygote and the workers, the implementations' temporaries).
Every array size the harness picks — the floors', the kernels', the workloads' — fits
in what is left, ``MemoryBound.usable_bytes``."""

from __future__ import annotations

from dataclasses import dataclass

import psutil

from factorbench.kernels import Kernel
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

    def limit_text(self) -> str:
        """'the cgroup memory limit of 2 GiB'."""
        return f"the {self.limited_by} of {gib(self.limit_bytes)}"

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


def case_bytes(spec: Kernel, params: dict) -> int:
    """What one case holds at once in its worker, at most: its inputs and its output (the
    bytes one call moves), a second output (the last timed call's, kept to be checked
    while the next call makes one), and the trusted answer with its own inputs."""
    output = spec.output_bytes(params) if spec.output_bytes else 0
    return 2 * spec.bytes_moved(params) + output


def too_big(needed: int, what: str, bound: MemoryBound) -> str | None:
    """The reason ``what`` cannot run within ``bound`` (None when it fits)."""
    if needed <= bound.usable_bytes:
        return None
    return f"{what} needs ~{gib(needed)}, more than the memory bound of {bound.describe()}"


def peak_rss_bytes(pid: int | str = "self") -> int | None:
    """A process's resident-set high-water mark (VmHWM); None where it is not readable."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def reset_peak_rss() -> None:
    """Start this process's high-water mark anew at its current RSS (Linux 4.0+; elsewhere
    the mark keeps counting from the process's start)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def out_of_memory(how: str, peak: int | None, limit: str, peak_source: str = "") -> str:
    """A crashed row's reason: 'out of memory: <how>; peak RSS 1.9 GiB; limit: <limit>'."""
    peak_text = f"{gib(peak)}{f' ({peak_source})' if peak_source else ''}" if peak else "unknown"
    return f"out of memory: {how}; peak RSS {peak_text}; limit: {limit}"


def limit_address_space(extra_bytes: int) -> str:
    """Let this process (a worker) grow its address space by at most ``extra_bytes``
    (RLIMIT_AS, inherited by what it starts): past it an allocation fails (MemoryError)
    instead of the OOM killer ending the process. Returns the limit in words."""
    import resource

    current = psutil.Process().memory_info().vms
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = current + extra_bytes
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))
    return f"--memory-limit {gib(extra_bytes)} (RLIMIT_AS: the worker's address space may grow by that much)"
