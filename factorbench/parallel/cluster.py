"""A real Dask cluster on this machine: one `dask scheduler` bound to 127.0.0.1 and N
`dask worker` processes, started detached and remembered in a state file, so that
`factorbench run --scheduler tcp://...` (or any Dask client) can use them and
`factorbench cluster stop` ends exactly those processes.

The state file records each process's PID with its start time, so a PID that the system
has since given to another program is never signalled.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

from factorbench.parallel import processes
from factorbench.parallel.schedulers import CONNECT_TIMEOUT_S, check_reachable

DEFAULT_PORT = 8786
DEFAULT_DASHBOARD_PORT = 8787
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class ClusterError(Exception):
    """Why a cluster command cannot do what was asked (one line, for the user)."""


def default_state_path() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "factorbench" / "cluster.json"


def read_state(state: Path) -> dict | None:
    try:
        return json.loads(state.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise ClusterError(f"cannot read the cluster state file {state}: {exc}") from None


def _work_dir(state: Path) -> Path:
    """Scratch space of the cluster's processes (spill files, locks), removed by stop."""
    return state.with_name(f"{state.stem}-work")


def _launch(command: list[str], log: Path, work: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        # A session of its own: Ctrl-C in the terminal that started the cluster must not
        # reach it; it lives until `factorbench cluster stop`.
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True,
                                env={**os.environ, "DASK_TEMPORARY_DIRECTORY": str(work)})


def start(workers: int = 2, nthreads: int = 1, memory_limit: str = "auto", port: int = DEFAULT_PORT,
          state: Path | None = None, timeout: float = START_TIMEOUT_S) -> dict:
    """Launch the scheduler and ``workers`` worker processes, wait until the scheduler
    sees them all, and write the state file. Returns the state."""
    state = Path(state or default_state_path())
    if workers < 1 or nthreads < 1:
        raise ClusterError(f"--workers and --nthreads must be at least 1, got {workers} and {nthreads}")
    if not 0 < port < 65536:
        raise ClusterError(f"--port must be between 1 and 65535, got {port}")
    previous = read_state(state)
    if previous is not None:
        if any(processes.alive(entry) for entry in previous["processes"]):
            raise ClusterError(f"a factorbench cluster is already running at {previous['address']} "
                               f"(state {state}); stop it with `factorbench cluster stop`")
        state.unlink()  # left by a cluster whose processes have all ended
    if processes.port_in_use(port):
        raise ClusterError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    address = f"tcp://127.0.0.1:{port}"
    logs, work = state.with_name(f"{state.stem}-logs"), _work_dir(state)
    logs.mkdir(parents=True, exist_ok=True)
    work.mkdir(exist_ok=True)
    dask_cli = [sys.executable, "-m", "dask"]
    commands = [("scheduler", logs / "scheduler.log",
                 [*dask_cli, "scheduler", "--host", "127.0.0.1", "--port", str(port),
                  "--dashboard-address", f"127.0.0.1:{DEFAULT_DASHBOARD_PORT}"])]
    commands += [(f"worker-{i}", logs / f"worker-{i}.log",
                  [*dask_cli, "worker", address, "--host", "127.0.0.1", "--name", f"worker-{i}",
                   "--nthreads", str(nthreads), "--memory-limit", str(memory_limit), "--no-dashboard",
                   # the worker's HTTP server (/health, /metrics) runs even with --no-dashboard,
                   # and on 0.0.0.0 unless told otherwise
                   "--dashboard-address", "127.0.0.1:0"])
                 for i in range(1, workers + 1)]
    launched: list[tuple[str, Path, subprocess.Popen]] = []
    entries: list[dict] = []
    try:
        for role, log, command in commands:
            process = _launch(command, log, work)
            launched.append((role, log, process))
            entries.append(processes.record(psutil.Process(process.pid), role, log))
        dashboard = _wait_until_up(address, port, workers, launched, timeout)
        info = {"address": address, "dashboard": dashboard, "workers": workers, "nthreads": nthreads,
                "memory_limit": str(memory_limit), "logs": str(logs),
                "started": datetime.datetime.now().isoformat(timespec="seconds"), "processes": entries}
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(info, indent=1))
        return info
    except BaseException:
        processes.terminate(entries, STOP_TIMEOUT_S)
        shutil.rmtree(work, ignore_errors=True)
        raise


def _wait_until_up(address, port, workers, launched, timeout) -> str:
    """Poll until the scheduler reports ``workers`` workers; the dashboard link then."""
    from distributed import Client

    deadline = time.monotonic() + timeout
    client = None
    try:
        while True:
            for role, log, process in launched:
                if process.poll() is not None:
                    raise ClusterError(f"the {role} process exited with status {process.returncode} "
                                       f"(log {log}){processes.log_tail(log)}")
            if client is None:
                with contextlib.suppress(OSError):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    client = Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            if client is not None and len(client.nthreads()) >= workers:
                return client.dashboard_link
            if time.monotonic() > deadline:
                seen = len(client.nthreads()) if client is not None else 0
                raise ClusterError(f"the cluster was not up after {timeout:g} s ({seen} of {workers} workers "
                                   f"connected); logs in {launched[0][1].parent}")
            time.sleep(0.2)
    finally:
        if client is not None:
            client.close()


def stop(state: Path | None = None, timeout: float = STOP_TIMEOUT_S) -> dict:
    """Stop the processes the state file names (workers first), then remove the file."""
    state = Path(state or default_state_path())
    info = read_state(state)
    if info is None:
        raise ClusterError(f"no factorbench cluster to stop (no state file {state})")
    workers = [entry for entry in info["processes"] if entry["role"] != "scheduler"]
    scheduler = [entry for entry in info["processes"] if entry["role"] == "scheduler"]
    report = processes.terminate(workers, timeout)
    for key, pids in processes.terminate(scheduler, timeout).items():
        report[key] += pids
    shutil.rmtree(_work_dir(state), ignore_errors=True)
    state.unlink()
    return {**info, **report}


def status(state: Path | None = None) -> dict | None:
    """The state with each process's liveness and the workers the scheduler sees now;
    None when no cluster was started."""
    from distributed import Client

    state = Path(state or default_state_path())
    info = read_state(state)
    if info is None:
        return None
    for entry in info["processes"]:
        entry["alive"] = processes.alive(entry) is not None
    try:
        check_reachable(info["address"])
        with Client(info["address"], timeout=CONNECT_TIMEOUT_S, set_as_default=False) as client:
            threads = client.nthreads()
        info["connected_workers"], info["connected_threads"] = len(threads), sum(threads.values())
    except OSError as exc:
        info["connect_error"] = str(exc)
    return info
