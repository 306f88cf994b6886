"""The multiprocessing paradigm: real worker processes and real POSIX shared memory.

Leak checks list /dev/shm: segments are named psm_fb<creator pid>_..., so a test sees
exactly the ones its own process (or its child) created, whatever else runs on the machine.
"""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import psutil
import pytest

import factorbench as fb
from factorbench.impls import multiprocessing as mp
from factorbench.measure.check import check, expected_outputs
from factorbench.measure.runner import RunOptions, run
from factorbench.parallel import pools
from factorbench.results import analysis

pytestmark = pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="no /dev/shm to inspect")

FAST = dict(repeat=3, min_sample_s=0.001, time_budget_s=2.0)
SLOW_GRAM = (5000, 3000)
"""A gram_colsum input whose single task computes for about a second: time to kill it mid-task."""


def segments(pid: int | None = None) -> set[str]:
    prefix = f"psm_fb{pid or os.getpid()}_"
    return {name for name in os.listdir("/dev/shm") if name.startswith(prefix)}


def wait_until(condition, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def exited(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def computing(pid: int):
    """A condition that turns true once the process has used 50 ms more CPU than now."""
    process = psutil.Process(pid)
    start = sum(process.cpu_times()[:2])
    return lambda: sum(process.cpu_times()[:2]) > start + 0.05


def mp_implementations():
    return [pytest.param(impl, id=f"{impl.kernel}/{impl.name}")
            for impl in fb.implementations(paradigm="multiprocessing")]


@pytest.fixture(autouse=True)
def no_resident_segments():
    """Each test starts and ends with no resident segment of this process."""
    mp.release()
    yield
    mp.release()


@pytest.mark.parametrize("impl", mp_implementations())
def test_passes_the_gate_with_two_processes_and_unlinks_every_segment(impl):
    result = check(impl, seed=0, settings={"processes": 2})
    assert result.ok, result.message
    assert impl.metrics()["processes"] == 2
    mp.release()
    assert not segments()


def test_inputs_stay_resident_across_calls_and_go_with_their_array():
    impl = fb.implementation("trig", "multiprocessing-shm")
    a, b = np.full((300, 200), 0.5), np.full((300, 200), 0.25)
    expected = fb.kernel("trig").reference(a, b)
    np.testing.assert_allclose(impl(a, b, processes=2), expected, rtol=1e-12)
    first = impl.metrics()
    assert first["staged_bytes_per_call"] == a.nbytes + b.nbytes == first["inputs_staged_bytes"]
    assert first["inputs_staging_s"] > 0
    resident = segments()
    assert len(resident) == 3  # two inputs and the output
    result = impl(a, b, processes=2)
    np.testing.assert_allclose(result, expected, rtol=1e-12)
    again = impl.metrics()
    assert again["staged_bytes_per_call"] == 0 and segments() == resident  # nothing staged or created
    assert again["copied_out_bytes_per_call"] == result.nbytes
    assert again["bytes_copied_per_call"] == again["bytes_sent_per_call"] + result.nbytes
    assert again["bytes_sent_per_task"] < 1000  # names, shapes and bounds only
    assert not np.shares_memory(result, impl(a, b, processes=2))  # each call returns its own array
    del a
    assert len(segments()) == 2  # a's segment went with a
    fresh = np.full((300, 200), 0.75)
    np.testing.assert_allclose(impl(fresh, b, processes=2), fb.kernel("trig").reference(fresh, b), rtol=1e-12)
    assert impl.metrics()["staged_bytes_per_call"] == fresh.nbytes  # b was still resident


def test_shared_tasks_carry_no_array_data_and_naive_tasks_carry_the_chunks():
    shared, naive = fb.implementation("sma", "multiprocessing-shm"), fb.implementation("sma", "multiprocessing-naive")
    sent = {}
    for n in (10_000, 1_000_000):
        x = np.linspace(100.0, 110.0, n)
        np.testing.assert_allclose(shared(x, 20, processes=2), naive(x, 20, processes=2), rtol=1e-12)
        sent[n] = naive.metrics()
        shared(x, 20, processes=2)
        sent["shm", n] = shared.metrics()
    for n in (10_000, 1_000_000):
        assert sent["shm", n]["tasks_per_call"] == 2
        assert sent["shm", n]["bytes_sent_per_task"] < 500  # names, shapes and bounds only
        assert sent["shm", n]["array_bytes_returned_per_call"] == 0
        assert sent["shm", n]["shared_bytes_per_call"] >= 8 * n + 8 * (n - 19)
        assert sent["shm", n]["staged_bytes_per_call"] == 0  # x was staged by the call before
        assert sent["shm", n]["copied_out_bytes_per_call"] == 8 * (n - 19)
        assert sent[n]["bytes_sent_per_task"] > 8 * n / 2  # half the input each, pickled
        assert sent[n]["array_bytes_returned_per_call"] == 8 * (n - 19)
    # 100x the data, a few bytes more: only the list of live segment names grew (by one or two)
    assert abs(sent["shm", 10_000]["bytes_sent_per_task"] - sent["shm", 1_000_000]["bytes_sent_per_task"]) < 64


def test_pools_are_kept_per_process_count_with_one_blas_thread_per_worker():
    impl = fb.implementation("trig", "multiprocessing-shm")
    a = np.full((40, 40), 0.5)
    impl(a, a, processes=1)
    impl(a, a, processes=2)
    one, two = pools.pool(1), pools.pool(2)
    impl(a, a, processes=1)
    assert pools.pool(1) is one and pools.pool(2) is two  # nothing restarted
    assert len(set(two.pids)) == 2 and not set(one.pids) & set(two.pids)
    metrics = impl.metrics()
    assert metrics["pool_startup_s"] == one.startup_s > 0
    assert metrics["worker_threadpools"] and set(metrics["worker_threadpools"].values()) == {1}
    assert metrics["worker_affinity"] == sorted(os.sched_getaffinity(0))
    for worker in two.workers:
        assert psutil.Process(worker["pid"]).cpu_affinity() == sorted(os.sched_getaffinity(0))
    pools.shutdown()
    wait_until(lambda: all(exited(pid) for pid in one.pids + two.pids), what="the workers to exit")


def test_an_exception_in_a_worker_reaches_the_caller_and_unlinks():
    impl = fb.implementation("ema", "multiprocessing-shm")
    x = np.linspace(100.0, 101.0, 10_000)
    impl(x, 0.1, processes=2)
    pids = pools.pool(2).pids
    with pytest.raises(ValueError, match="alpha must be a number"):
        impl(x, None, processes=2)  # refused in the caller, before any segment exists
    # A task that fails inside a worker (the chunk scan given no alpha), through the same
    # call, segment and task plumbing as the implementations.
    from factorbench.impls import multiprocessing as paradigm

    with pytest.raises(TypeError) as raised, paradigm._call(2, "shared memory") as (executor, record):
        (x_block,) = paradigm._inputs(record, (x, "C"))
        out = paradigm._resident.output((x.size,))
        paradigm._run(executor, record, paradigm._tasks(paradigm._ema_scan_into, (x_block, out), [(0, x.size, None)]))
    assert "_ema_scan" in str(raised.value.__cause__)  # the workers' traceback, sent back
    assert len(segments()) == 2  # x and the output stay resident for the next call
    np.testing.assert_allclose(impl(x, 0.1, processes=2), fb.kernel("ema").reference(x, 0.1), rtol=1e-12)
    assert pools.pool(2).pids == pids  # an exception leaves the pool usable


def test_sigkill_of_a_worker_mid_task_fails_the_call_promptly_and_unlinks():
    impl = fb.implementation("gram_colsum", "multiprocessing-shm")
    x = np.random.default_rng(0).random(SLOW_GRAM)
    impl(x[:10], processes=1)
    (victim,) = pools.pool(1).pids
    with ThreadPoolExecutor(1) as caller:
        call = caller.submit(impl, x, processes=1)
        wait_until(lambda: len(segments()) == 2, what="the call's input and output segments")  # x[:10]'s went
        wait_until(computing(victim), what="the worker to compute")
        assert not call.done()
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            call.result(timeout=30)
    assert not segments()
    small = x[:300, :40]
    np.testing.assert_allclose(impl(small, processes=1), fb.kernel("gram_colsum").reference(small), rtol=1e-10)
    assert victim not in pools.pool(1).pids  # a fresh pool replaced the broken one


CHILD = """
import numpy as np
import factorbench as fb
from factorbench.parallel import pools

impl = fb.implementation("gram_colsum", "multiprocessing-shm")
x = np.random.default_rng(0).random({shape})
impl(x[:10], processes=1)
print(*pools.pool(1).pids, flush=True)
impl(x, processes=1)
print("finished", flush=True)
"""


def interrupt_mid_call(send_signal) -> tuple[subprocess.Popen, list[int], str, str]:
    """Start a child computing a slow call, signal it mid-task; (child, worker pids, stdout, stderr)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(shape=SLOW_GRAM)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        pids = [int(pid) for pid in child.stdout.readline().split()]
        assert pids, child.stderr.read()
        wait_until(lambda: len(segments(child.pid)) == 2, what="the child's segments")
        wait_until(computing(pids[0]), what="the child's worker to compute")
        send_signal(child)
        stdout, stderr = child.communicate(timeout=60)
    finally:
        child.kill()
    return child, pids, stdout, stderr


def test_ctrl_c_during_a_call_unlinks_and_the_process_and_its_workers_exit():
    # What Ctrl-C in a terminal does: SIGINT to the whole process group, workers included.
    child, pids, stdout, stderr = interrupt_mid_call(lambda child: os.killpg(child.pid, signal.SIGINT))
    assert "KeyboardInterrupt" in stderr and "finished" not in stdout
    assert "leaked" not in stderr  # the resource tracker found nothing left to clean up
    assert not segments(child.pid)
    wait_until(lambda: all(exited(pid) for pid in pids), what="the child's workers to exit")


def test_a_runner_killed_outright_leaves_no_worker_and_no_segment_behind():
    child, pids, _, _ = interrupt_mid_call(lambda child: child.send_signal(signal.SIGKILL))
    assert child.returncode == -signal.SIGKILL
    wait_until(lambda: all(exited(pid) for pid in pids), what="the orphaned workers to exit")
    wait_until(lambda: not segments(child.pid), what="the resource tracker to unlink the segments")


def test_runner_sweeps_processes_and_tables_show_strong_scaling():
    doc = run(RunOptions(kernels=["trig"], paradigms=["multiprocessing"], sizes=[300],
                         settings={"processes": [1, 2]}, **FAST))
    assert [(r["implementation"], r["settings"], r["status"]) for r in doc["results"]] == [
        ("multiprocessing-naive", {"processes": 1}, "ok"), ("multiprocessing-naive", {"processes": 2}, "ok"),
        ("multiprocessing-shm", {"processes": 1}, "ok"), ("multiprocessing-shm", {"processes": 2}, "ok")]
    for result in doc["results"]:
        assert result["extra"]["processes"] == result["settings"]["processes"]
        assert result["extra"]["pool_startup_s"] > 0
        assert result["extra"]["tasks_per_call"] == result["settings"]["processes"]
    (case,) = analysis.cases(doc)
    for row in case.ranked:
        processes = row.result["settings"]["processes"]
        twin = next(other for other in case.ranked if other.result["implementation"] == row.result["implementation"]
                    and other.result["settings"]["processes"] == 1)
        assert row.vs_one_process == pytest.approx(twin.result["median"] / row.result["median"])
        assert row.efficiency == pytest.approx(row.vs_one_process / processes)
    expected_outputs.cache_clear()  # the check's cached inputs (strided views are passed as they are)
    assert len(segments()) <= mp.Resident.OUTPUTS_KEPT  # the inputs went with their arrays; outputs are reused


def test_cpus_pin_the_runner_and_its_workers_and_are_recorded():
    before = os.sched_getaffinity(0)
    cpu = min(before)
    doc = run(RunOptions(kernels=["row_sums"], implementations=["multiprocessing-shm"], sizes=[100],
                         settings={"processes": [2]}, cpus=[cpu], **FAST))
    assert os.sched_getaffinity(0) == before  # restored after the run
    assert doc["machine"]["cpu_affinity"] == [cpu] and doc["machine"]["pinned_cpus"] == [cpu]
    for result in doc["results"]:
        assert result["status"] == "ok"
        assert result["extra"]["worker_affinity"] == [cpu] and result["extra"]["runner_affinity"] == [cpu]


def factorbench(*args):
    return subprocess.run([sys.executable, "-m", "factorbench", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200"})


@pytest.mark.parametrize("args, message", [
    (["run", "--cpus", "99999"], "--cpus: CPU(s) 99999 not available to this process; choose from"),
    (["run", "--cpus", "one"], "argument --cpus: expected CPU numbers like 0,1, got 'one'"),
    (["run", "--processes", "0"], "argument --processes: expected a positive integer, got '0'"),
])
def test_bad_processes_and_cpus_get_one_line_and_exit_2(args, message):
    done = factorbench(*args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and message in done.stderr


def test_cli_prints_scaling_and_bytes_per_task(tmp_path):
    done = factorbench("run", "--quick", "--kernel", "sma", "--paradigm", "multiprocessing", "--size", "20000",
                       "--processes", "1,2", "--time-budget", "1", "--wide", "--json", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stderr
    for text in ("vs 1 process", "sent/task", "pool start-up", "multiprocessing-shm (processes=2)",
                 "multiprocessing-naive (processes=1)", "1.00x (100%)"):
        assert text in done.stdout
