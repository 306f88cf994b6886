"""The limits a container (or any cgroup) puts on this process: the CPU set, the CPU quota
and the memory limit, read from the cgroup files (v2, and v1 as on hybrid hosts).

A container sees its own cgroup at the root of /sys/fs/cgroup, though /proc/self/cgroup
may still name the host's path for it (cgroup v1 without a cgroup namespace): a path that
does not exist under the mount is read at the mount's root instead.
"""

from __future__ import annotations

import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
UNLIMITED_V1 = 1 << 62
"""cgroup v1 writes "no limit" as a page-rounded 2**63 - 1; anything above this is none."""


def container_engine() -> str | None:
    """The engine that started the container this process runs in, None outside one."""
    if Path("/run/.containerenv").exists():
        return "podman"
    if Path("/.dockerenv").exists():
        return "docker"
    return os.environ.get("container") or None  # systemd's convention, set by podman and others


def parse_cpu_list(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5] (the kernel's cpuset list format)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        cpus.extend(range(int(first), int(last or first) + 1))
    return cpus


def _memberships() -> dict[str, str]:
    """Controller -> cgroup path of this process; '' keys the v2 (unified) hierarchy."""
    found: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            found[controller] = path
    return found


def _chain(mount: Path, path: str) -> list[Path]:
    """This process's cgroup folder under ``mount`` and its ancestors up to the mount."""
    leaf = mount / path.lstrip("/")
    if not leaf.is_dir():
        leaf = mount
    chain = [leaf]
    while chain[-1] != mount and mount in chain[-1].parents:
        chain.append(chain[-1].parent)
    return chain


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _limits_v2(chain: list[Path]) -> dict:
    cpuset = _read(chain[0] / "cpuset.cpus.effective")
    quotas, memory = [], []
    for folder in chain:
        if (cpu_max := _read(folder / "cpu.max")) and not cpu_max.startswith("max"):
            quota, period = cpu_max.split()
            quotas.append(int(quota) / int(period))
        if (memory_max := _read(folder / "memory.max")) and memory_max != "max":
            memory.append(int(memory_max))
    return {"cpuset": parse_cpu_list(cpuset) if cpuset else None,
            "cpu_quota": min(quotas) if quotas else None, "memory_limit_bytes": min(memory) if memory else None}


def _limits_v1(memberships: dict[str, str]) -> dict:
    def chain(controller: str) -> list[Path]:
        mount = CGROUP_ROOT / controller
        return _chain(mount, memberships[controller]) if controller in memberships and mount.is_dir() else []

    cpuset_dirs = chain("cpuset")
    cpuset = None
    for name in ("cpuset.effective_cpus", "cpuset.cpus"):
        if cpuset_dirs and (text := _read(cpuset_dirs[0] / name)):
            cpuset = parse_cpu_list(text)
            break
    quotas, memory = [], []
    for folder in chain("cpu"):
        quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
        if quota and period and int(quota) > 0:
            quotas.append(int(quota) / int(period))
    for folder in chain("memory"):
        if (limit := _read(folder / "memory.limit_in_bytes")) and int(limit) < UNLIMITED_V1:
            memory.append(int(limit))
    return {"cpuset": cpuset, "cpu_quota": min(quotas) if quotas else None,
            "memory_limit_bytes": min(memory) if memory else None}


def limits() -> dict:
    """The cgroup limits on this process, and the container engine if it runs in one.
    ``cpuset``: CPUs the cgroup allows (None when unknown); ``cpu_quota``: CPUs' worth of
    time per period (None: no quota); ``memory_limit_bytes``: None when unlimited."""
    memberships = _memberships()
    unified = CGROUP_ROOT if (CGROUP_ROOT / "cgroup.controllers").exists() else None
    if unified is not None and "" in memberships and len(memberships) == 1:
        found = {"cgroup_version": 2, **_limits_v2(_chain(unified, memberships[""]))}
    elif memberships:
        found = {"cgroup_version": 1, **_limits_v1(memberships)}
    else:
        found = {"cgroup_version": None, "cpuset": None, "cpu_quota": None, "memory_limit_bytes": None}
    return {"container": container_engine(), **found}


def container_hint() -> str:
    """' (the podman container's CPU set is 0-1: --cpuset-cpus)' inside a container whose
    CPU set is known; '' elsewhere. For messages about CPUs a run cannot use."""
    engine = container_engine()
    cpuset = limits()["cpuset"] if engine else None
    if not cpuset:
        return ""
    shown = ",".join(map(str, cpuset))
    return f" (the {engine} container's CPU set is {shown}: --cpuset-cpus)"


def oom_kills() -> tuple[int, ...]:
    """Counters of processes the OOM killer has ended: the machine's (/proc/vmstat, Linux
    4.13+) and this process's cgroup's (v2 memory.events, v1 memory.oom_control) where
    readable. Any of them rising while a worker died by SIGKILL says the OOM killer did it."""
    counts = []
    sources = [Path("/proc/vmstat")]
    memberships = _memberships()
    if "" in memberships and (CGROUP_ROOT / "cgroup.controllers").exists():
        sources.append(_chain(CGROUP_ROOT, memberships[""])[0] / "memory.events")
    if "memory" in memberships and (CGROUP_ROOT / "memory").is_dir():
        sources.append(_chain(CGROUP_ROOT / "memory", memberships["memory"])[0] / "memory.oom_control")
    for source in sources:
        for line in (_read(source) or "").splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill" and value.strip().isdigit():
                counts.append(int(value))
    return tuple(counts)
