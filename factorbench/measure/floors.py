"""STREAM-like memory bandwidth test, run with each benchmark so the report can say how
close every implementation comes to the memory-bandwidth floor on the same machine.

One NumPy thread, like most of the implementations: `copy` is np.copyto (counts the bytes
read plus the bytes written, as STREAM does), `read` is np.sum over the same array.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

DEFAULT_BYTES = 400 * 2**20
QUICK_BYTES = 64 * 2**20
CACHE_MULTIPLE = 4
"""Arrays are at least this many times the last-level cache, so caches cannot hold them."""


def last_level_cache_bytes() -> int | None:
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes) if sizes else None


def array_bytes(quick: bool) -> int:
    wanted = QUICK_BYTES if quick else DEFAULT_BYTES
    cache = last_level_cache_bytes()
    return max(wanted, CACHE_MULTIPLE * cache) if cache else wanted


def measure(nbytes: int, repeat: int = 5) -> dict:
    """Best-of-``repeat`` copy and read bandwidth in GB/s over arrays of ``nbytes`` each."""
    count = nbytes // 8
    # Filled, not np.empty: first-touch page faults must not land in the timings.
    source = np.full(count, 1.0)
    target = np.full(count, 0.0)
    copy_s = read_s = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        np.copyto(target, source)
        copy_s = min(copy_s, time.perf_counter() - start)
        start = time.perf_counter()
        source.sum()
        read_s = min(read_s, time.perf_counter() - start)
    return {"copy_GBps": 2 * count * 8 / copy_s / 1e9, "read_GBps": count * 8 / read_s / 1e9,
            "bytes": count * 8, "method": "numpy copyto / sum, one thread, best of "
                                          f"{repeat}; copy counts bytes read + written"}
