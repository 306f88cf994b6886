"""Machine and software metadata recorded with every run (pyperf-style)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import psutil
from threadpoolctl import threadpool_info

from factorbench.discovery import project_file
from factorbench.measure import cgroups
from factorbench.results.schema import CodeUnderTest

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


def checkout_state(folder: Path) -> tuple[str, bool] | None:
    """(HEAD's sha, whether tracked files have uncommitted changes) of the git checkout
    holding ``folder``; None outside one."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit, bool(dirty)


def git_commit() -> str | None:
    """Commit of the checkout factorbench runs from (with '+dirty' for local changes)."""
    state = checkout_state(Path(__file__).resolve().parent)
    return None if state is None else state[0] + ("+dirty" if state[1] else "")


def distribution_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def code_under_test(start: Path | None = None) -> CodeUnderTest:
    """The code a run measures: the project of the nearest pyproject.toml from ``start`` (the
    current directory) upwards that names one, as installed, with its checkout's commit;
    factorbench itself when there is none (its own implementations are what runs then)."""
    path = project_file(start)
    name = None
    if path is not None:
        try:
            name = tomllib.loads(path.read_text()).get("project", {}).get("name")
        except (OSError, tomllib.TOMLDecodeError):
            name = None
    folder = path.parent if path is not None and name else Path(__file__).resolve().parent
    name = name or "factorbench"
    state = checkout_state(folder)
    return CodeUnderTest(package=name, version=distribution_version(name), commit=state[0] if state else "",
                         dirty=state[1] if state else False, factorbench_version=distribution_version("factorbench"))


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
        "frequency_scaling": frequency_scaling(),
    }


def _sys(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def frequency_scaling() -> dict:
    """What /sys says about frequency scaling, turbo and SMT (None where unreadable, as in
    most containers and VMs): each can change a timing by tens of percent."""
    no_turbo = _sys("/sys/devices/system/cpu/intel_pstate/no_turbo")
    boost = _sys("/sys/devices/system/cpu/cpufreq/boost")
    turbo = (no_turbo == "0") if no_turbo is not None else (boost == "1") if boost is not None else None
    smt = _sys("/sys/devices/system/cpu/smt/active")
    return {
        "scaling_driver": _sys("/sys/devices/system/cpu/cpu0/cpufreq/scaling_driver"),
        "governor": _sys("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "turbo": turbo,
        "smt_active": None if smt is None else smt == "1",
    }


BUSY_OTHER_CORES = 0.5
"""CPU used by other processes, in cores, averaged over the run, above which a run warns."""


class LoadMonitor:
    """How busy the machine was during a run besides the run itself: load average, and
    CPU time used by other processes (all CPU time minus this process tree's)."""

    def __init__(self):
        self.started = time.monotonic()
        self.load_start = os.getloadavg()
        self.busy_start = _busy_cpu_s()
        self.own_start = _own_cpu_s()

    def describe(self) -> dict:
        wall = max(time.monotonic() - self.started, 1e-9)
        other = (_busy_cpu_s() - self.busy_start) - (_own_cpu_s() - self.own_start)
        other_cores = max(other, 0.0) / wall
        load_end = os.getloadavg()
        cores = psutil.cpu_count(logical=True) or 1
        warnings = []
        if other_cores >= BUSY_OTHER_CORES:
            warnings.append(f"other processes used {other_cores:.1f} of {cores} cores on average during the run")
        if max(self.load_start[0], load_end[0]) > cores:
            warnings.append(f"load average {max(self.load_start[0], load_end[0]):.1f} exceeds the {cores} cores")
        return {"loadavg_start": list(self.load_start), "loadavg_end": list(load_end),
                "other_processes_cores": round(other_cores, 3), "warning": "; ".join(warnings)}


def _busy_cpu_s() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _own_cpu_s() -> float:
    """CPU seconds of this process, its live children and the children it has waited for."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:4])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            continue
    return total
