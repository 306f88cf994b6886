"""Run flink_job.py on the local mini-cluster or the standalone cluster, and measure it.

Local: PyFlink's interpreter runs the job; it starts the gateway JVM (which runs the
mini-cluster) and, for the DataStream engine, Python worker processes. Standalone:
``bin/flink run -m 127.0.0.1:PORT -py flink_job.py`` submits it to the cluster that
``factorbench cluster start --engine flink`` started.

Timings (epoch seconds, one clock): launch (here) -> "environment" (the job's
TableEnvironment exists: JVM up) -> first event read by the source (its ``arrived``) ->
"finished" (the client saw the job end). Start-up is launch to first event; the rate is
events / (finished - first event). Alert latency is ``alerted - arrived`` of each alert.
Peak memory is the largest sum of resident sets over the job's process tree (and, on the
standalone cluster, the JobManager's and TaskManager's trees), sampled every 0.2 s; shared
pages count once per process, so it overstates a little.

A timeout, Ctrl-C or any error here ends the whole process tree (and cancels the job on
the standalone cluster): no JVM or Python worker is left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import psutil

from factorbench.parallel import flink, processes
from factorbench.workloads.risk.stream import Transactions

JOB_SCRIPT = Path(__file__).with_name("flink_job.py")
SAMPLE_S = 0.2


class RssSampler(threading.Thread):
    """Peak of the summed RSS of the given processes and all their descendants."""

    def __init__(self, roots: list[int]):
        super().__init__(daemon=True, name="flink-rss")
        self.roots, self.peak = roots, 0
        self.listening: set[tuple[str, int, str]] = set()
        self.done = threading.Event()

    def family(self) -> list[psutil.Process]:
        found = []
        for pid in self.roots:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                found += [root, *root.children(recursive=True)]
        return found

    def run(self) -> None:
        while not self.done.wait(SAMPLE_S):
            total = 0
            for process in self.family():
                with contextlib.suppress(psutil.Error):
                    total += process.memory_info().rss
                    for conn in process.net_connections("inet"):
                        if conn.status == psutil.CONN_LISTEN:
                            self.listening.add((conn.laddr.ip, conn.laddr.port, process.name()))
            self.peak = max(self.peak, total)


def _end_tree(child: subprocess.Popen) -> None:
    """Terminate the job's process and its descendants; kill what is left after a grace."""
    processes.end(processes.family(child.pid))
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.communicate(timeout=5)


def _read_csv(directory: Path, names: list[str]):
    import pandas as pd

    parts = [p for p in sorted(directory.glob("**/part-*")) if p.is_file() and p.stat().st_size]
    if not parts:
        return pd.DataFrame({name: [] for name in names})
    return pd.concat([pd.read_csv(p, header=None, names=names) for p in parts], ignore_index=True)


def _epoch_s(column):
    """Flink writes TIMESTAMP_LTZ as '2026-12-01 21:14:08.788Z' (fewer digits when they are 0)."""
    import pandas as pd

    parsed = pd.to_datetime(column.astype(str).str.rstrip("Z"), format="ISO8601")
    return (parsed - pd.Timestamp("1970-01-01")) / pd.Timedelta(seconds=1)


def run_job(tx: Transactions, csv: Path, work: Path, engine: str, parallelism: int, target: str,
            cluster_state: Path | None = None, timeout_s: float = 600.0) -> dict:
    """Run one engine on ``target`` ("local" or "standalone"); a result dict always.

    status ok: alerts (set), latencies (s), jvm_s, startup_s, run_s, peak_rss, listening."""
    work.mkdir(parents=True, exist_ok=True)
    job = {"engine": engine, "input": str(csv), "output": str(work / "out"), "parallelism": parallelism,
           "lateness_ms": tx.lateness_ms, "burst_n": tx.burst_n, "first_event_id": int(tx.event_id[0]),
           "last_event_id": int(tx.event_id[-1]), "rules": ["rising", "probe", "burst"], "local": target == "local"}
    (work / "job.json").write_text(json.dumps(job))
    python = str(flink.env_python())
    roots: list[int] = []
    address = None
    env = None
    if target == "local":
        command = [python, str(JOB_SCRIPT), str(work / "job.json")]
        # Python workers as processes of the JVM, as on a cluster: PyFlink's default for
        # local runs, a worker pool inside the client, listens on every address ([::]).
        env = {**os.environ, "_python_worker_execution_mode": "process"}
    else:
        state = flink.read_state(Path(cluster_state or flink.default_state_path()))
        if state is None or not all(processes.alive(entry) for entry in state["processes"]):
            return {"status": "skipped", "reason": "no standalone Flink cluster running; start it with "
                                                   "`factorbench cluster start --engine flink`"}
        address = state["address"]
        env = flink.cluster_environment(Path(cluster_state or flink.default_state_path()))
        roots = [entry["pid"] for entry in state["processes"]]
        command = [str(Path(state["flink_home"]) / "bin" / "flink"), "run", "-m", address.removeprefix("http://"),
                   "-pyexec", python, "-pyclientexec", python, "-py", str(JOB_SCRIPT), str(work / "job.json")]
    log = work / "job.log"
    launched = time.time()
    with open(log, "w") as stderr:
        # A session of its own, so that Ctrl-C reaches only us and we end the tree in order.
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                                 start_new_session=True)
    sampler = RssSampler([child.pid, *roots])
    sampler.start()
    events: dict[str, dict] = {}

    def read_events():
        assert child.stdout is not None
        for line in child.stdout:
            with contextlib.suppress(json.JSONDecodeError):
                record = json.loads(line)
                if isinstance(record, dict) and "event" in record:
                    events[record["event"]] = record

    reader = threading.Thread(target=read_events, daemon=True)
    reader.start()
    try:
        child.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _end_tree(child)
        return {"status": "timeout", "reason": f"no result within {timeout_s:.0f} s (job ended)"}
    except BaseException:
        _end_tree(child)
        raise
    finally:
        sampler.done.set()
        job_id = events.get("submitted", {}).get("job_id")
        if address and job_id and "finished" not in events:
            flink.cancel(address, job_id)
    reader.join(timeout=5)
    if child.returncode != 0 or "finished" not in events:
        lines = [line for line in log.read_text(errors="replace").splitlines() if "Exception" in line or "Error" in line]
        return {"status": "failed", "reason": f"Flink job exited with status {child.returncode}: "
                                              f"{(lines[-1].strip() if lines else 'see ' + str(log))[:300]}"}
    alerts = _read_csv(work / "out" / "alerts", ["card", "rule", "event_id", "arrived", "alerted"])
    marks = _read_csv(work / "out" / "marks", ["event_id", "arrived"])
    if len(marks) < 1:
        return {"status": "failed", "reason": "the job wrote no marks (first/last event read times)"}
    first_read = float(_epoch_s(marks["arrived"]).min())
    latencies = (_epoch_s(alerts["alerted"]) - _epoch_s(alerts["arrived"])).tolist() if len(alerts) else []
    return {"status": "ok", "alerts": list(zip(alerts["card"].astype(int).tolist(), alerts["rule"].tolist(),
                                               alerts["event_id"].astype(int).tolist())),
            "latencies": latencies, "jvm_s": events["environment"]["t"] - launched,
            "startup_s": first_read - launched, "run_s": events["finished"]["t"] - first_read,
            "peak_rss": sampler.peak, "listening": sorted(sampler.listening)}
