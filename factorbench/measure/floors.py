"""Memory floors measured with each benchmark run, so the tables can say how close every
implementation comes to what the machine can do, measured on the same machine, same run.

Two floors, each on one thread and on all the run's threads:

* streaming: ``np.copyto`` into an array that already exists (STREAM's copy; bytes read
  plus bytes written);
* fresh output: allocate a new array and fill it from the input, as every implementation
  does with its result. A fresh array costs its page faults (the kernel zeroes each page on
  first touch) on top of the copy, about twice the streaming time for large arrays.

A case is held against the fresh-output floor when its kernel returns a new array
(``Kernel.output_bytes``), else against the streaming one; rows with a ``threads`` or
``processes`` setting against the floor of that many threads.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from factorbench.measure.cgroups import parse_cpu_list
from factorbench.measure.memory import MemoryBound, gib
from factorbench.parallel import last_level_cache_bytes, sysfs_cpu_dir

DEFAULT_BYTES = 400 * 2**20
QUICK_BYTES = 64 * 2**20
CACHE_MULTIPLE = 4
"""Arrays are at least this many times the last-level cache, so caches cannot hold them."""
PLAUSIBLE_CACHE_PER_CPU = 16 * 2**20
"""A last-level cache reported larger than this per online CPU is not believed: it is a
virtual CPU's, reporting its host's whole (shared) cache, as a 2-CPU VM reporting 480 MiB
does. Real CPUs have at most ~12 MiB of last-level cache per core (stacked-cache parts)."""
ARRAYS_AT_ONCE = 3
"""The floors hold the source, the streaming target and a fresh output at once."""


def _online_cpus() -> int:
    try:
        return len(parse_cpu_list((sysfs_cpu_dir() / "online").read_text()))
    except (OSError, ValueError):
        return os.cpu_count() or 1


def array_bytes(quick: bool, bound: MemoryBound) -> tuple[int, str]:
    """The size of each floor array, and why that size: the run's default (64 MiB quick,
    400 MiB otherwise), raised to CACHE_MULTIPLE x a plausible last-level cache, then
    capped so ARRAYS_AT_ONCE of them fit the memory the run may use."""
    nbytes = QUICK_BYTES if quick else DEFAULT_BYTES
    why = f"the {'quick' if quick else 'default'} size"
    cache = last_level_cache_bytes()
    if cache and cache > PLAUSIBLE_CACHE_PER_CPU * _online_cpus():
        why += (f"; the reported {gib(cache)} last-level cache was ignored (more than "
                f"{gib(PLAUSIBLE_CACHE_PER_CPU)} per online CPU: a virtual CPU's)")
    elif cache and CACHE_MULTIPLE * cache > nbytes:
        nbytes, why = CACHE_MULTIPLE * cache, f"{CACHE_MULTIPLE} x the {gib(cache)} last-level cache"
    if ARRAYS_AT_ONCE * nbytes > bound.usable_bytes:
        nbytes = bound.usable_bytes // ARRAYS_AT_ONCE
        why = f"capped so {ARRAYS_AT_ONCE} arrays fit the memory bound of {bound.describe()}, instead of {why}"
    return nbytes // 8 * 8, why


def _split_copy(pool: ThreadPoolExecutor | None, target: np.ndarray, source: np.ndarray, threads: int) -> None:
    """np.copyto in ``threads`` contiguous parts at once (NumPy releases the GIL while copying)."""
    if pool is None:
        np.copyto(target, source)
        return
    edges = np.linspace(0, len(source), threads + 1).astype(int)
    list(pool.map(lambda k: np.copyto(target[edges[k]:edges[k + 1]], source[edges[k]:edges[k + 1]]),
                  range(threads)))


def measure_floors(source: np.ndarray, threads: int, repeat: int) -> dict:
    """Best-of-``repeat`` streaming and fresh-output copy times of ``source`` on ``threads``."""
    target = np.full_like(source, 0.0)  # filled: first-touch page faults stay out of streaming
    stream_s = fresh_s = float("inf")
    with ThreadPoolExecutor(threads) if threads > 1 else _no_pool() as pool:
        for _ in range(repeat):
            start = time.perf_counter()
            _split_copy(pool, target, source, threads)
            stream_s = min(stream_s, time.perf_counter() - start)
            start = time.perf_counter()
            fresh = np.empty_like(source)
            _split_copy(pool, fresh, source, threads)
            fresh_s = min(fresh_s, time.perf_counter() - start)
            del fresh  # freed before the next round, so every round allocates anew
    moved = 2 * source.nbytes
    return {"threads": threads, "stream_s": stream_s, "fresh_s": fresh_s,
            "stream_GBps": moved / stream_s / 1e9, "fresh_GBps": moved / fresh_s / 1e9}


class _no_pool:
    def __enter__(self):
        return None

    def __exit__(self, *exc_info):
        return None


def measure(nbytes: int, repeat: int = 5, thread_counts: tuple[int, ...] | None = None, why: str = "") -> dict:
    """Copy and read bandwidth in GB/s (one thread) over arrays of ``nbytes`` each, and the
    streaming and fresh-output floors on each of ``thread_counts`` (default: 1 and all CPUs);
    ``why``: why the arrays are ``nbytes`` (array_bytes' reason), kept with the figures."""
    count = nbytes // 8
    source = np.full(count, 1.0)
    read_s = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        source.sum()
        read_s = min(read_s, time.perf_counter() - start)
    if thread_counts is None:
        thread_counts = tuple(sorted({1, len(os.sched_getaffinity(0))}))
    floors = [measure_floors(source, threads, repeat) for threads in thread_counts]
    one = floors[0]
    return {"copy_GBps": one["stream_GBps"], "read_GBps": count * 8 / read_s / 1e9, "bytes": count * 8,
            "bytes_why": why, "floors": floors,
            "method": f"best of {repeat}: streaming = np.copyto into an existing array, fresh output = "
                      "np.empty + np.copyto (allocation and first touch included), split over threads; "
                      "copy rates count bytes read + written; read = np.sum on one thread"}


def floor_for(result: dict, bandwidth: dict | None) -> dict | None:
    """The floor that applies to one result row: {"kind", "threads", "seconds"}, or None
    when the run measured no floors or the row has no byte count.

    Inputs beyond the output's size are charged at the streaming copy rate (bytes read
    count like bytes copied); the output's size is charged at the fresh-output rate when
    the kernel returns a new array.
    """
    floors = (bandwidth or {}).get("floors") or []
    moved = result.get("bytes_moved")
    if not floors or not isinstance(moved, (int, float)) or moved <= 0:
        return None
    settings = result.get("settings") or {}
    wanted = settings.get("threads") or settings.get("processes") or 1
    if isinstance(wanted, bool) or not isinstance(wanted, int):
        wanted = 1  # a setting that is no count (results from elsewhere): the one-thread floor
    usable = [f for f in floors if f["threads"] <= wanted] or floors[:1]
    floor = max(usable, key=lambda f: f["threads"])
    output = result.get("output_bytes")
    if isinstance(output, (int, float)) and 0 < 2 * output <= moved:
        seconds = (moved - 2 * output) / (floor["stream_GBps"] * 1e9) + 2 * output / (floor["fresh_GBps"] * 1e9)
        kind = "fresh output"
    else:
        seconds, kind = moved / (floor["stream_GBps"] * 1e9), "streaming"
    return {"kind": kind, "threads": floor["threads"], "seconds": seconds}


def describe_floor(floor: dict | None) -> str:
    """'fresh output, 2 threads' for a table cell's note."""
    if floor is None:
        return ""
    return f"{floor['kind']}, {floor['threads']} thread{'s' if floor['threads'] != 1 else ''}"
