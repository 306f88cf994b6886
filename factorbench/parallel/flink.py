"""Apache Flink on this machine: PyFlink's own environment, Java, and a standalone cluster.

PyFlink 2.3.0 pins pandas < 2.3, pyarrow < 21 and apache-beam <= 2.61, which clash with
factorbench's environment, so it lives in a virtual environment of its own
(``factorbench env flink``; ``FACTORBENCH_FLINK_ENV`` points elsewhere) and Flink jobs run
as subprocesses of its interpreter. The wheel apache-flink-libraries carries the Flink
distribution (``pyflink/bin``, ``pyflink/conf``, ``pyflink/lib``): the standalone cluster
is its ``jobmanager.sh`` and ``taskmanager.sh`` with a configuration of our own that binds
every socket to 127.0.0.1. As with the Dask cluster, the state file keeps each JVM's PID
and start time and ``stop`` ends exactly those.

Java: Flink 2.x needs Java 11 or later (17 is its default and what this was tested with);
``JAVA_HOME`` is used if set, else ``java`` on PATH.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from factorbench.parallel import processes
from factorbench.parallel.cluster import ClusterError, read_state

FLINK_VERSION = "2.3.0"
JAVA_MIN = 11
ENV_COMMAND = "factorbench env flink"
MARKER = "factorbench-flink.json"
DEFAULT_REST_PORT = 8081
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 15.0
CLUSTER_SLOTS = 2
"""Task slots of the one TaskManager: the workload runs jobs at parallelism 1 and 2."""
BIND_OPTIONS = {key: "127.0.0.1" for key in ("jobmanager.bind-host", "jobmanager.rpc.address",
                                              "taskmanager.bind-host", "taskmanager.host", "rest.address",
                                              "rest.bind-address")}


def _cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "factorbench"


def env_path() -> Path:
    return Path(os.environ.get("FACTORBENCH_FLINK_ENV") or _cache() / f"flink-{FLINK_VERSION}")


def env_python(path: Path | None = None) -> Path:
    return (path or env_path()) / "bin" / "python"


def flink_home(path: Path | None = None) -> Path | None:
    """The Flink distribution inside the environment's pyflink package."""
    found = sorted((path or env_path()).glob("lib/python*/site-packages/pyflink/bin/flink"))
    return found[0].parent.parent if found else None


def env_info(path: Path | None = None) -> dict | None:
    """What ``create_env`` recorded, or None when the environment is missing or incomplete."""
    path = path or env_path()
    try:
        info = json.loads((path / MARKER).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if info.get("apache-flink") != FLINK_VERSION or not env_python(path).exists() or flink_home(path) is None:
        return None
    return info


def java() -> tuple[str | None, int | None, str]:
    """(java executable, major version, version line), or (None, None, why)."""
    home = os.environ.get("JAVA_HOME")
    executable = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not executable or not Path(executable).exists():
        return None, None, "no java on PATH (nor JAVA_HOME)"
    try:
        done = subprocess.run([executable, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, None, f"{executable} -version failed: {exc}"
    line = (done.stderr.strip().splitlines() or [""])[0]
    match = re.search(r'version "(\d+)(?:\.(\d+))?', line)
    if not match:
        return executable, None, f"cannot read the version of {executable}: {line!r}"
    major = int(match.group(1)) if match.group(1) != "1" else int(match.group(2) or 0)
    return executable, major, line


def missing() -> str | None:
    """Why Flink jobs cannot run here (with the fix), or None."""
    executable, major, line = java()
    if executable is None or major is None:
        return f"Flink needs Java {JAVA_MIN}+ (tested with 17): {line}; e.g. apt-get install openjdk-17-jre-headless"
    if major < JAVA_MIN:
        return f"Flink needs Java {JAVA_MIN}+ (tested with 17), found {line} at {executable}"
    if env_info() is None:
        return f"no PyFlink {FLINK_VERSION} environment at {env_path()}; create it with `{ENV_COMMAND}`"
    return None


def create_env(path: Path | None = None, force: bool = False, log=None) -> dict:
    """Create the virtual environment with apache-flink (uv if installed, else pip); returns
    the recorded info, with how long it took. An existing complete one is kept unless ``force``."""
    path = path or env_path()
    if not force and (info := env_info(path)) is not None:
        return {**info, "existing": True}
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    try:
        import uv

        uv_bin = uv.find_uv_bin()
        commands = [[uv_bin, "venv", "--quiet", "--python", sys.executable, str(path)],
                    [uv_bin, "pip", "install", "--python", str(env_python(path)), f"apache-flink=={FLINK_VERSION}"]]
        installer = "uv"
    except ImportError:
        commands = [[sys.executable, "-m", "venv", str(path)],
                    [str(env_python(path)), "-m", "pip", "install", f"apache-flink=={FLINK_VERSION}"]]
        installer = "pip"
    for command in commands:
        done = subprocess.run(command, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT if log else
                              subprocess.PIPE, text=True)
        if done.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            tail = (done.stderr or "").strip().splitlines()[-1:] if not log else []
            raise ClusterError(f"`{' '.join(command)}` failed with status {done.returncode}"
                               + (f": {tail[0]}" if tail else ""))
    info = {"apache-flink": FLINK_VERSION, "installer": installer, "seconds": round(time.perf_counter() - began, 1),
            "python": str(env_python(path)), "flink_home": str(flink_home(path)),
            "created": datetime.datetime.now().isoformat(timespec="seconds")}
    (path / MARKER).write_text(json.dumps(info, indent=1))
    return info


# standalone cluster ----------------------------------------------------------------------

def default_state_path() -> Path:
    return _cache() / "flink-cluster.json"


def write_conf(home: Path, conf_dir: Path, overrides: dict[str, str | int]) -> Path:
    """A copy of the distribution's conf/ whose config.yaml has ``overrides`` set. YAML is
    read with the PyFlink environment's PyYAML (apache-beam brings it), not ours."""
    shutil.copytree(home / "conf", conf_dir, dirs_exist_ok=True)
    script = ("import sys, json, yaml\n"
              "path, overrides = sys.argv[1], json.loads(sys.argv[2])\n"
              "conf = yaml.safe_load(open(path)) or {}\n"
              "for key, value in overrides.items():\n"
              "    node = conf\n"
              "    *parents, last = key.split('.')\n"
              "    for part in parents:\n"
              "        node = node.setdefault(part, {})\n"
              "    node[last] = value\n"
              "yaml.safe_dump(conf, open(path, 'w'), default_flow_style=False)\n")
    subprocess.run([str(env_python()), "-c", script, str(conf_dir / "config.yaml"), json.dumps(overrides)],
                   check=True, capture_output=True, timeout=60)
    return conf_dir


def cluster_environment(state: Path) -> dict[str, str]:
    """FLINK_CONF_DIR, FLINK_LOG_DIR and FLINK_PID_DIR of the cluster the state file names."""
    base = state.with_name(f"{state.stem}-files")
    return {**os.environ, "FLINK_CONF_DIR": str(base / "conf"), "FLINK_LOG_DIR": str(base / "log"),
            "FLINK_PID_DIR": str(base / "pid")}


def rest(address: str, path: str, method: str = "GET", timeout: float = 5.0) -> dict:
    request = urllib.request.Request(f"{address}{path}", method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else {}


def _daemon_pid(pid_dir: Path, kind: str, before: set[int]) -> int | None:
    """The PID flink-daemon.sh wrote for a ``kind`` daemon started after ``before``."""
    for pid_file in pid_dir.glob(f"*-{kind}.pid"):
        for line in pid_file.read_text().split():
            if line.isdigit() and int(line) not in before:
                return int(line)
    return None


def start(port: int = DEFAULT_REST_PORT, state: Path | None = None, timeout: float = START_TIMEOUT_S) -> dict:
    """Start one JobManager and one TaskManager (detached JVMs), wait until the JobManager
    reports the TaskManager, write the state file. Returns the state."""
    import psutil

    state = Path(state or default_state_path())
    if reason := missing():
        raise ClusterError(reason)
    if not 0 < port < 65536:
        raise ClusterError(f"--port must be between 1 and 65535, got {port}")
    previous = read_state(state)
    if previous is not None:
        if any(processes.alive(entry) for entry in previous["processes"]):
            raise ClusterError(f"a factorbench Flink cluster is already running at {previous['address']} "
                               f"(state {state}); stop it with `factorbench cluster stop --engine flink`")
        state.unlink()
    if processes.port_in_use(port):
        raise ClusterError(f"port {port} on 127.0.0.1 is in use; choose another with --port")
    home = flink_home()
    assert home is not None  # missing() checked the environment
    env = cluster_environment(state)
    for key in ("FLINK_LOG_DIR", "FLINK_PID_DIR"):
        shutil.rmtree(env[key], ignore_errors=True)
        Path(env[key]).mkdir(parents=True)
    write_conf(home, Path(env["FLINK_CONF_DIR"]),
               {**BIND_OPTIONS, "rest.port": port, "taskmanager.numberOfTaskSlots": CLUSTER_SLOTS})
    env["PATH"] = f"{env_python().parent}{os.pathsep}{env.get('PATH', '')}"  # the TaskManager's Python workers
    address = f"http://127.0.0.1:{port}"
    log = Path(env["FLINK_LOG_DIR"])
    entries: list[dict] = []
    try:
        for script, kind, role in (("jobmanager.sh", "standalonesession", "jobmanager"),
                                   ("taskmanager.sh", "taskexecutor", "taskmanager")):
            done = subprocess.run([str(home / "bin" / script), "start"], env=env, capture_output=True, text=True,
                                  timeout=60, start_new_session=True)
            pid = _daemon_pid(Path(env["FLINK_PID_DIR"]), kind, {entry["pid"] for entry in entries})
            if done.returncode != 0 or pid is None:
                raise ClusterError(f"bin/{script} start failed (status {done.returncode}): "
                                   f"{(done.stderr or done.stdout).strip()[-300:]}")
            entries.append(processes.record(psutil.Process(pid), role, log))
        _wait_until_up(address, entries, log, timeout)
        info = {"engine": "flink", "address": address, "dashboard": address, "slots": CLUSTER_SLOTS,
                "flink_home": str(home), "conf": env["FLINK_CONF_DIR"], "logs": str(log),
                "started": datetime.datetime.now().isoformat(timespec="seconds"), "processes": entries}
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(info, indent=1))
        return info
    except BaseException:
        processes.terminate(entries, STOP_TIMEOUT_S)
        raise


def _wait_until_up(address: str, entries: list[dict], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        for entry in entries:
            if processes.alive(entry) is None:
                logs = sorted(log.glob(f"*{entry['role'].replace('manager', '')}*.log"))
                raise ClusterError(f"the {entry['role']} JVM (pid {entry['pid']}) exited; logs in {log}"
                                   f"{processes.log_tail(logs[0]) if logs else ''}")
        try:
            if rest(address, "/overview", timeout=2).get("taskmanagers", 0) >= 1:
                return
        except (OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise ClusterError(f"the Flink cluster was not up after {timeout:g} s (no TaskManager registered at "
                               f"{address}); logs in {log}")
        time.sleep(0.5)


def stop(state: Path | None = None, timeout: float = STOP_TIMEOUT_S) -> dict:
    """End the TaskManager, then the JobManager, that ``start`` recorded; remove the state."""
    state = Path(state or default_state_path())
    info = read_state(state)
    if info is None:
        raise ClusterError(f"no factorbench Flink cluster to stop (no state file {state})")
    report = processes.terminate([e for e in info["processes"] if e["role"] == "taskmanager"], timeout)
    for key, pids in processes.terminate([e for e in info["processes"] if e["role"] == "jobmanager"], timeout).items():
        report[key] += pids
    shutil.rmtree(state.with_name(f"{state.stem}-files") / "pid", ignore_errors=True)
    state.unlink()
    return {**info, **report}


def status(state: Path | None = None) -> dict | None:
    """The state with each JVM's liveness and what the JobManager reports now; None when
    no cluster was started."""
    state = Path(state or default_state_path())
    info = read_state(state)
    if info is None:
        return None
    for entry in info["processes"]:
        entry["alive"] = processes.alive(entry) is not None
    try:
        info["overview"] = rest(info["address"], "/overview")
    except (OSError, ValueError) as exc:
        info["connect_error"] = str(exc)
    return info


def cancel(address: str, job_id: str) -> None:
    """Cancel a job on the cluster (an interrupted run must not leave it running there)."""
    try:
        rest(address, f"/jobs/{job_id}?mode=cancel", method="PATCH")
    except (OSError, ValueError, urllib.error.HTTPError):
        pass
