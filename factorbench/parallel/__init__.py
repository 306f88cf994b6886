"""Parallel plumbing: process pools with shared memory, Dask schedulers and clusters, GPU timing;
and the cache size that both the floors and the kernels' store paths size their work by."""

import os
from pathlib import Path

SYSFS_ENV = "FACTORBENCH_SYSFS"
"""Names another folder to read the CPU facts of sysfs from (a test's fake one); default /sys."""


def sysfs_cpu_dir() -> Path:
    """sysfs's CPU folder (devices/system/cpu), under $FACTORBENCH_SYSFS when it is set."""
    return Path(os.environ.get(SYSFS_ENV) or "/sys") / "devices" / "system" / "cpu"


def last_level_cache_bytes() -> int | None:
    """The largest cache of CPU 0 (the last level), from sysfs; None where it is not readable."""
    sizes = []
    for path in (sysfs_cpu_dir() / "cpu0" / "cache").glob("index*/size"):
        text = path.read_text().strip()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes) if sizes else None
