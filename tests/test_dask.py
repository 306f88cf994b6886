"""The dask paradigm and `factorbench cluster`, on real schedulers and worker processes
bound to 127.0.0.1 (free ports)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'factorbench[dask]')")

from factorbench import implementation, implementations
from factorbench.kernels import kernel, price_walk
from factorbench.measure.check import check, compare
from factorbench.measure.runner import RunOptions, run
from factorbench.parallel import schedulers

KERNELS = ["sma", "ema", "row_sums", "trig", "gram_colsum"]


def factorbench(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "factorbench", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def shm_entries() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def shm_in_use() -> set[str]:
    """/dev/shm names some live process maps or holds open (so not leaked)."""
    names = set()
    for pid in psutil.pids():
        with_maps = Path(f"/proc/{pid}/maps")
        try:
            names.update(line.split("/dev/shm/", 1)[1].split(" ")[0].strip()
                         for line in with_maps.read_text().splitlines() if "/dev/shm/" in line)
            names.update(os.readlink(fd).split("/dev/shm/", 1)[1] for fd in Path(f"/proc/{pid}/fd").iterdir()
                         if os.readlink(fd).startswith("/dev/shm/"))
        except OSError:
            continue
    return names


@pytest.mark.parametrize("args, message", [
    (["run", "--scheduler", "threads,mpi"], "argument --scheduler: expected threads, local-cluster or "
                                             "tcp://HOST:PORT, got 'mpi'"),
    (["run", "--scheduler", "tcp://127.0.0.1"], "got 'tcp://127.0.0.1'"),
    (["run", "--chunk-size", "0"], "argument --chunk-size: expected auto or positive integers"),
    (["cluster", "start", "--memory-limit", "lots"], "argument --memory-limit: expected auto, a size"),
    (["cluster", "stop", "--state", "/nonexistent/cluster.json"],
     "cluster stop: no factorbench cluster to stop (no state file /nonexistent/cluster.json)"),
])
def test_user_mistakes_get_one_line_and_exit_2(args, message):
    done = factorbench(*args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert message in done.stderr


@pytest.mark.parametrize("name", KERNELS)
def test_every_implementation_passes_the_gate_on_threads(name):
    result = check(implementation(name, "dask"), settings={"scheduler": "threads", "chunk_size": "auto"})
    assert result.ok, result.message


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 8, 64])
def test_block_boundaries_with_nans(chunk_size):
    """Small blocks put NaNs and windows across block edges; remainders shorter than the
    window join their neighbour."""
    x = price_walk(np.random.default_rng(1), 203)
    x[[0, 63, 64, 130, 202]] = np.nan
    for name, args in (("sma", (x, 5)), ("sma", (x[1:62], 6)), ("sma", (x[1:62], 61)), ("ema", (x[1:], 0.3)),
                       ("ema", (x[1:63], 0.05)), ("ema", (x[65:], 1.0))):
        spec = kernel(name)
        actual = implementation(name, "dask")(*args, scheduler="threads", chunk_size=chunk_size)
        ok, _error, why = compare(spec.reference(*args), actual, spec.rtol, spec.atol)
        assert ok, f"{name} chunk_size={chunk_size} n={len(args[0])}: {why}"


def test_ema_carries_stay_exact_over_many_blocks():
    x = price_walk(np.random.default_rng(2), 300_000)
    for alpha in (1e-4, 0.1):
        actual = implementation("ema", "dask")(x, alpha, scheduler="threads", chunk_size=1000)
        expected = kernel("ema").reference(x, alpha)
        assert np.max(np.abs(actual - expected) / np.abs(expected)) < 1e-12


def test_bad_settings_are_refused():
    impl = implementation("sma", "dask")
    with pytest.raises(ValueError, match="chunk_size must be 'auto' or a positive integer"):
        impl(np.ones(10), 2, chunk_size=0)
    with pytest.raises(ValueError, match="expected threads, local-cluster or tcp://HOST:PORT, got 'mpi'"):
        impl(np.ones(10), 2, scheduler="mpi")


def test_run_records_scheduler_tasks_chunks_overhead_and_task_graph(tmp_path):
    doc = run(RunOptions(kernels=["sma", "gram_colsum"], paradigms=["dask"], sizes=[2000], repeat=1,
                         min_sample_s=0.001, time_budget_s=5.0, settings={"scheduler": ["threads"]}),
              json_path=str(tmp_path / "results.json"))
    assert [row["status"] for row in doc["results"]] == ["ok", "ok"], doc["results"]
    for row in doc["results"]:
        extra = row["extra"]
        assert row["settings"] == {"scheduler": "threads", "chunk_size": "auto"}
        assert extra["scheduler"] == "threads" and extra["worker_threads"] == schedulers.cores()
        assert extra["input_blocks"] == 2 * schedulers.cores()
        assert extra["tasks"] >= extra["input_blocks"]
        assert 0 < extra["task_overhead_s"] < 0.1
        if shutil.which("dot"):
            image = Path(extra["artifacts"]["task_graph"])
            assert image.parent == tmp_path / "results-artifacts"
            assert "<svg" in image.read_text()
        else:
            assert "dot program is not installed" in extra["task_graph_skipped"]


def test_unreachable_scheduler_fails_its_rows_at_once_without_a_worker():
    """One connection attempt for the whole run: no row starts a worker (or its rounds)
    to find the same refused port again, so failing fast holds on any machine."""
    address = f"tcp://127.0.0.1:{free_port()}"
    lines = []
    doc = run(RunOptions(kernels=["gram_colsum", "trig"], paradigms=["dask"], quick=True, repeat=1,
                         settings={"scheduler": [address, "threads"]}), log=lines.append)
    rows = {row["settings"]["scheduler"]: row for row in doc["results"] if row["kernel"] == "trig"}
    assert rows["threads"]["status"] == "ok"
    failed = [row for row in doc["results"] if row["settings"]["scheduler"] == address]
    assert len(failed) == 2
    for row in failed:
        assert row["status"] == "failed" and row["elapsed_s"] is None and not row["round_medians"]
        assert row["reason"] == (f"Dask scheduler {address} is not reachable: Connection refused "
                                 "(one attempt at the start of the run, 5 s timeout)")
    measured = [line for line in lines if line.startswith("measuring")]
    assert measured and all(address not in line for line in measured)


def test_local_cluster_passes_the_gate_and_closes_its_processes():
    schedulers.close_all()
    before = set(psutil.Process().children(recursive=True))
    try:
        for name in ("ema", "gram_colsum"):
            result = check(implementation(name, "dask"), settings={"scheduler": "local-cluster", "chunk_size": "auto"})
            assert result.ok, f"{name}: {result.message}"
        # multiprocessing's resource tracker outlives the pool by design (until this process exits)
        workers = [p for p in set(psutil.Process().children(recursive=True)) - before
                   if "resource_tracker" not in " ".join(p.cmdline())]
        assert len(workers) >= schedulers.cores()
    finally:
        schedulers.close_all()
    assert psutil.wait_procs(workers, timeout=10)[1] == []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two workers and a scheduler started as a user starts them: `factorbench cluster start`."""
    state = tmp_path_factory.mktemp("cluster") / "cluster.json"
    shm_before = shm_entries()
    port = free_port()
    done = factorbench("cluster", "start", "--workers", "2", "--port", str(port), "--state", str(state))
    assert done.returncode == 0, done.stderr
    info = json.loads(state.read_text())
    yield {**info, "state": state, "port": port, "stdout": done.stdout, "shm_before": shm_before}
    if state.exists():  # a test failed before the one that stops it
        factorbench("cluster", "stop", "--state", str(state))


@pytest.mark.slow  # starts a Dask cluster
def test_cluster_start_prints_the_address_and_dashboard(cluster):
    assert f"Dask cluster up at {cluster['address']} (2 workers x 1 threads" in cluster["stdout"]
    assert "dashboard: http://127.0.0.1:" in cluster["stdout"]
    done = factorbench("cluster", "status", "--state", str(cluster["state"]))
    assert done.returncode == 0 and "2 workers (2 threads) connected" in done.stdout


@pytest.mark.slow  # starts a Dask cluster
def test_a_second_start_is_refused(cluster, tmp_path):
    again = factorbench("cluster", "start", "--port", str(free_port()), "--state", str(cluster["state"]))
    assert again.returncode == 2
    assert f"a factorbench cluster is already running at {cluster['address']}" in again.stderr
    taken = factorbench("cluster", "start", "--port", str(cluster["port"]), "--state", str(tmp_path / "c.json"))
    assert taken.returncode == 2
    assert f"port {cluster['port']} on 127.0.0.1 is in use" in taken.stderr


@pytest.mark.parametrize("name", ["gram_colsum", "sma"])
@pytest.mark.slow  # starts a Dask cluster
def test_kernels_on_the_cluster_match_the_reference(cluster, name):
    impl = implementation(name, "dask")
    result = check(impl, settings={"scheduler": cluster["address"], "chunk_size": "auto"})
    assert result.ok, result.message
    assert impl.metrics()["workers"] == 2


@pytest.mark.slow  # starts a Dask cluster
def test_as_default_sends_plain_compute_calls_to_the_cluster(cluster):
    import dask.array as da

    with schedulers.as_default(cluster["address"]) as client:
        pids = da.zeros(4, chunks=1).map_blocks(lambda block: block + os.getpid()).compute()
        workers = set(client.run(os.getpid).values())
    assert set(pids.tolist()) <= workers and os.getpid() not in workers


@pytest.mark.slow  # starts a Dask cluster
def test_a_worker_killed_mid_computation_is_rescheduled_and_the_answer_is_right(cluster, monkeypatch):
    """The nanny restarts the killed worker and the scheduler reruns its tasks (a task is
    given up only after killing allowed-failures = 3 workers): the call must neither hang
    nor fail, and its answer must be the reference's."""
    from distributed import Client

    monkeypatch.setattr(schedulers, "COMPUTE_TIMEOUT_S", 60.0)
    x = price_walk(np.random.default_rng(3), 2_000_000)
    expected = kernel("sma").reference(x, 20)
    outcome = {}

    def compute():
        try:
            outcome["value"] = implementation("sma", "dask")(x, 20, scheduler=cluster["address"], chunk_size=10_000)
        except Exception as exc:  # what the runner would record as `failed`
            outcome["error"] = exc

    with Client(cluster["address"], timeout=10, set_as_default=False) as watcher:
        victim, pid = sorted(watcher.run(os.getpid).items())[0]
        worker = threading.Thread(target=compute, daemon=True)
        worker.start()
        deadline = time.monotonic() + 60
        while not watcher.processing().get(victim) and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        killed_while_running = worker.is_alive()
        worker.join(timeout=90)
    assert not worker.is_alive(), "the computation hung after a worker was killed"
    assert killed_while_running, "the kill came after the computation had finished"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "error" not in outcome, f"killed {victim} (pid {pid}) mid-computation: {outcome['error']!r}"
    ok, _, why = compare(expected, outcome["value"], kernel("sma").rtol, 0.0)
    assert ok, why


@pytest.mark.slow  # starts a Dask cluster
def test_stop_ends_exactly_the_cluster_and_leaves_nothing(cluster):
    schedulers.close_all()  # as this process would at exit: no client left retrying the stopped scheduler
    processes = [psutil.Process(entry["pid"]) for entry in cluster["processes"]]
    family = processes + [child for p in processes for child in p.children(recursive=True)]
    done = factorbench("cluster", "stop", "--state", str(cluster["state"]))
    assert done.returncode == 0, done.stderr
    assert f"stopped the Dask cluster at {cluster['address']}" in done.stdout
    assert not cluster["state"].exists()
    assert not (cluster["state"].parent / "cluster-work").exists()
    assert [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    port = f"127.0.0.1:{cluster['port']}"
    assert [p.pid for p in psutil.process_iter(["cmdline"]) if port in " ".join(p.info["cmdline"] or [])] == []
    leaked = shm_entries() - cluster["shm_before"] - shm_in_use()
    assert leaked == set()
    again = factorbench("cluster", "stop", "--state", str(cluster["state"]))
    assert again.returncode == 2 and "no factorbench cluster to stop" in again.stderr


def test_every_implementation_is_registered():
    assert sorted(impl.kernel for impl in implementations(paradigm="dask")) == sorted(KERNELS)
