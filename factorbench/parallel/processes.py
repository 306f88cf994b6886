"""Ending what factorbench starts: the one place that signals processes, so workers,
zygotes, profiled children, the tick and Flink jobs and the Dask and Flink clusters are all
stopped the same way: the whole family (descendants that left the process group too),
a grace period where one is asked for, then SIGKILL, and reaped, so none stays a zombie.
Also the record of a long-lived service process (a cluster's), which tells a live process
from a reused PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

import psutil


def family(pid: int) -> list[psutil.Process]:
    """The process and its descendants as they are now; empty when it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def end(processes: list[psutil.Process], grace_s: float = 5.0, first: signal.Signals | None = signal.SIGTERM
        ) -> list[psutil.Process]:
    """Send ``first`` to each (None: no signal, wait for them to exit on their own), SIGKILL
    those still alive after ``grace_s``, reap them all. Returns the ones that were killed."""
    if first is not None:
        for process in processes:
            with contextlib.suppress(psutil.Error):
                process.send_signal(first)
    _, alive = psutil.wait_procs(processes, timeout=grace_s)
    for process in alive:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(alive, timeout=5)
    return alive


def end_child(child: subprocess.Popen, grace_s: float = 5.0, first: signal.Signals = signal.SIGINT) -> None:
    """End a child whose output comes through pipes: ``first`` to it (SIGINT lets a Python
    child close what it started), its pipes drained for up to ``grace_s`` so it cannot block
    on a full one, then SIGKILL to whatever of its family is left; reaped."""
    members = family(child.pid)
    with contextlib.suppress(ProcessLookupError):
        child.send_signal(first)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.communicate(timeout=grace_s)
    end(members, 0, first=None)
    child.communicate()


def kill_group(pgid: int) -> None:
    """SIGKILL a process group (a worker or zygote started in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_tree(pid: int) -> None:
    """SIGKILL a process, its group where it leads one, and every descendant that left the
    group; reap the descendants. The process itself is its parent's to reap (a worker's
    parent is its round's zygote)."""
    members = family(pid)
    kill_group(pid)
    for process in members:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(members[1:], timeout=5)


def record(process: psutil.Process, role: str, log: Path) -> dict:
    """A service process as a state file keeps it."""
    return {"role": role, "pid": process.pid, "create_time": process.create_time(), "log": str(log)}


def alive(entry: dict) -> psutil.Process | None:
    """The recorded process if it is still that process (same PID and start time)."""
    try:
        process = psutil.Process(entry["pid"])
        if abs(process.create_time() - entry["create_time"]) > 0.01 or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


def terminate(entries: list[dict], timeout: float) -> dict[str, list[int]]:
    """SIGTERM the recorded processes still alive, SIGKILL what remains after ``timeout``
    (their children too: a Dask worker's nanny owns the worker process). Returns the PIDs
    terminated, killed and already gone."""
    report: dict[str, list[int]] = {"terminated": [], "killed": [], "gone": []}
    parents = []
    for entry in entries:
        process = alive(entry)
        if process is None:
            report["gone"].append(entry["pid"])
        else:
            parents.append(process)
    children = [child for process in parents for child in family(process.pid)[1:]]
    killed = end(parents, timeout)
    end(children, 0.5 if killed else timeout, first=None)
    report["killed"] = [p.pid for p in killed]
    report["terminated"] = [p.pid for p in parents if p not in killed]
    return report


def port_in_use(port: int) -> bool:
    """Whether a live listener holds ``port`` on 127.0.0.1 (bound as a server binds:
    connections of a just-stopped one lingering in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def log_tail(path: Path) -> str:
    """': <last non-empty line of a log>', or '' when there is none."""
    with contextlib.suppress(OSError):
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return f": {lines[-1].strip()}"
    return ""
