"""Machine and software metadata recorded with every run (pyperf-style)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import psutil
from threadpoolctl import threadpool_info

from factorbench.measure import cgroups

THREAD_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                   "NUMEXPR_MAX_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER",
                   "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
LIBRARIES = ("factorbench", "numpy", "scipy", "numexpr", "bottleneck", "pandas", "numba", "cython",
             "dask", "distributed", "polars", "pyarrow", "cupy-cuda12x", "numba-cuda", "threadpoolctl")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_commit() -> str | None:
    """Commit of the checkout factorbench runs from (with '+dirty' for local changes)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def describe() -> dict:
    memory = psutil.virtual_memory()
    return {
        "cpu_model": cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": memory.total,
        # what a container (or any cgroup) allows this process: CPU set, CPU quota, memory
        "limits": cgroups.limits(),
        "os": platform.platform(),
        "hostname": platform.node(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "libraries": library_versions(),
        "thread_env": {var: os.environ[var] for var in THREAD_ENV_VARS if var in os.environ},
        "threadpools": [
            {key: info.get(key) for key in ("user_api", "internal_api", "version", "num_threads",
                                            "threading_layer", "architecture")}
            for info in threadpool_info()
        ],
        "git_commit": git_commit(),
    }
