"""The risk workload's Flink engines for real: PyFlink 2.3.0 in its own environment (made
here if missing, cached under ~/.cache/factorbench), the local mini-cluster and a
standalone cluster, on out-of-order streams. Skipped without Java 11+."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from factorbench.cli import main
from factorbench.parallel import flink, processes
from factorbench.workloads.risk import isolated, stream
from factorbench.workloads.risk.flink_run import run_job

pytestmark = pytest.mark.slow  # starts Flink clusters (JVMs)

LOOPBACK = ("127.0.0.1", "::1", "::ffff:127.0.0.1")


@pytest.fixture(scope="module")
def flink_env():
    _, major, line = flink.java()
    if not major or major < flink.JAVA_MIN:
        pytest.skip(f"Flink needs Java {flink.JAVA_MIN}+: {line}")
    flink.create_env()  # seconds when cached; about 30 s with uv from PyPI
    assert flink.missing() is None


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Out of order within cards (lateness 3 s, groups with sub-second gaps), every rule."""
    tx = stream.generate(3000, 40, seed=11, lateness_ms=3000, fraud_rate=0.01)
    ts_of_card = [tx.ts_ms[tx.card == card] for card in set(tx.card.tolist())]
    assert any((ts[1:] < ts[:-1]).any() for ts in ts_of_card)
    return tx, tx.write_csv(tmp_path_factory.mktemp("risk") / "stream.csv")


@pytest.mark.parametrize("engine, parallelism", [("sql", 2), ("datastream", 1)])
def test_local_engine_equals_ground_truth(flink_env, small, tmp_path, engine, parallelism):
    tx, csv = small
    result = run_job(tx, csv, tmp_path, engine, parallelism, "local", timeout_s=400)
    assert result["status"] == "ok", result["reason"]
    assert isolated.compare(result["alerts"], tx.expected) is None
    assert len(result["latencies"]) == len(tx.expected) and min(result["latencies"]) >= 0
    assert 0 < result["jvm_s"] < result["startup_s"] and result["run_s"] > 0 and result["peak_rss"] > 100e6


def test_standalone_cluster_runs_the_job_on_127_0_0_1_and_stops_clean(flink_env, small, tmp_path, capsys):
    tx, csv = small
    state = tmp_path / "flink-cluster.json"
    port = 18081
    assert main(["cluster", "start", "--engine", "flink", "--state", str(state), "--port", str(port)]) == 0
    try:
        info = json.loads(state.read_text())
        assert "Flink cluster up at http://127.0.0.1:18081" in capsys.readouterr().out
        assert main(["cluster", "start", "--engine", "flink", "--state", str(state), "--port", str(port)]) == 2
        assert "already running" in capsys.readouterr().err
        assert main(["cluster", "status", "--engine", "flink", "--state", str(state)]) == 0
        assert "1 TaskManager(s), 2/2 slots free" in capsys.readouterr().out
        result = run_job(tx, csv, tmp_path / "job", "sql", 2, "standalone", cluster_state=state, timeout_s=400)
        assert result["status"] == "ok", result["reason"]
        assert isolated.compare(result["alerts"], tx.expected) is None
        # Every socket of the cluster and of the job's client is on the loopback interface.
        assert result["listening"] and all(ip in LOOPBACK for ip, _, _ in result["listening"]), result["listening"]
    finally:
        assert main(["cluster", "stop", "--engine", "flink", "--state", str(state)]) == 0
    assert not state.exists()
    assert not any(psutil.pid_exists(entry["pid"]) and processes.alive(entry) for entry in info["processes"])
    assert main(["cluster", "status", "--engine", "flink", "--state", str(state)]) == 1


def test_ctrl_c_during_a_local_job_leaves_no_process(flink_env, small, tmp_path):
    tx, csv = small
    isolated.save(tx, tmp_path / "tx.npz")
    script = ("import sys; from pathlib import Path\n"
              "from factorbench.workloads.risk import isolated, flink_run\n"
              f"tx = isolated.load({str(tmp_path / 'tx.npz')!r})\n"
              f"flink_run.run_job(tx, Path({str(csv)!r}), Path({str(tmp_path / 'job')!r}), 'datastream', 1, 'local')\n")
    runner = subprocess.Popen([sys.executable, "-c", script])
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(p.name() == "java" for p in processes.family(runner.pid)):
        time.sleep(0.5)
    time.sleep(3)  # into the job's start-up
    seen = {p.pid for p in processes.family(runner.pid)}
    assert any(psutil.Process(pid).name() == "java" for pid in seen if psutil.pid_exists(pid))
    os.kill(runner.pid, signal.SIGINT)
    assert runner.wait(timeout=60) != 0
    time.sleep(1)
    left = [pid for pid in seen if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]
    assert not left, [psutil.Process(pid).cmdline()[:3] for pid in left]
