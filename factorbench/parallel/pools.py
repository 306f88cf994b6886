"""Long-lived process pools for the multiprocessing paradigm and the overlap workload.

A pool is a ``concurrent.futures.ProcessPoolExecutor``: when a worker dies (SIGKILL, OOM)
it fails every pending future with ``BrokenProcessPool`` at once, where
``multiprocessing.Pool`` would wait forever. There is one pool per process count, kept
across calls so that its start-up is measured once and reported apart from compute, and so
that the runner's sweep (processes 1, 2, 1, 2... row after row) restarts nothing. Pools are
replaced when the runner's CPU affinity changes or a worker dies, and shut down at exit.

Workers are forked from a fork server (not from the runner, whose threads may hold locks
at fork time, and not spawned, which would import NumPy once per worker). Each worker
limits BLAS/OpenMP to one thread, so N workers use N cores, ignores SIGINT (Ctrl-C is the
runner's to handle: it owns the shared memory to unlink), runs on the runner's CPUs, and
exits when the runner dies (killed with SIGKILL or SIGTERM, it can clean nothing up itself;
then the last worker to go lets multiprocessing's resource tracker unlink what is left).
"""

from __future__ import annotations

import atexit
import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from threadpoolctl import threadpool_info, threadpool_limits

STARTUP_TIMEOUT_S = 60.0
WORKER_THREADS_ENV = "FACTORBENCH_WORKER_BLAS_THREADS"
"""BLAS/OpenMP threads per worker (default 1). Set above 1 only to see oversubscription:
scripts/blas_threads.sh does, with processes x threads beyond the CPUs."""
PRELOAD = ["__main__", "numpy", "factorbench.impls.multiprocessing"]
"""Imported once in the fork server rather than in every worker (missing ones are skipped),
with the modules a pool's tasks need (see ``pool``)."""


@dataclass
class Pool:
    executor: ProcessPoolExecutor
    processes: int
    affinity: tuple[int, ...]
    modules: frozenset[str]
    startup_s: float
    """From creating the executor until every worker had run its initializer."""
    workers: list[dict] = field(default_factory=list)
    """What each worker reported at start: pid, CPU affinity, thread pools and their sizes."""

    @property
    def pids(self) -> list[int]:
        return [worker["pid"] for worker in self.workers]

    def describe(self) -> dict:
        """Figures for the results: start-up time, and the workers' thread limits and CPUs."""
        return {"processes": self.processes, "pool_startup_s": self.startup_s,
                "worker_threadpools": self.workers[0]["threadpools"],
                "worker_affinity": self.workers[0]["affinity"], "runner_affinity": list(self.affinity)}


_pools: dict[int, Pool] = {}
_startup_barrier = None


def affinity() -> tuple[int, ...]:
    return tuple(sorted(os.sched_getaffinity(0)))


def pool(processes: int, modules: tuple[str, ...] = ()) -> Pool:
    """The running pool of ``processes`` workers on this process's CPUs, started if needed.

    ``modules``: what the tasks import beyond NumPy (SciPy's takes a second, so only pools
    that need it pay). Workers import them at start, before limiting BLAS threads, so the
    limit covers the libraries they load; a pool started without them is replaced."""
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ValueError(f"processes must be a positive integer, got {processes!r}")
    cpus = affinity()
    for count in [count for count, running in _pools.items() if running.affinity != cpus]:
        shutdown(count)
    wanted = frozenset(modules)
    running = _pools.get(processes)
    if running is not None and not running.modules >= wanted:
        shutdown(processes)
        wanted |= running.modules
    if processes not in _pools:
        _pools[processes] = _start(processes, cpus, wanted)
    return _pools[processes]


def shutdown(processes: int | None = None, wait: bool = True) -> None:
    """Stop the pool of ``processes`` workers (all pools when None), dropping queued tasks;
    the next ``pool()`` call starts a new one."""
    for count in list(_pools) if processes is None else [processes]:
        if count in _pools:
            _pools.pop(count).executor.shutdown(wait=wait, cancel_futures=True)


atexit.register(shutdown)


def worker_threads() -> int:
    text = os.environ.get(WORKER_THREADS_ENV, "1")
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{WORKER_THREADS_ENV} must be a positive integer, got {text!r}")
    return int(text)


def _start(processes: int, cpus: tuple[int, ...], modules: frozenset[str]) -> Pool:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD + sorted(modules))  # used when the server starts
    # The barrier makes each start-up task wait until all workers run one, so all N are
    # started (the executor spawns one per submitted task while none is idle) and each
    # reports itself. It sits in a list that is emptied afterwards: the executor keeps its
    # initargs, and the barrier's named semaphores are unlinked once it is freed.
    barrier_holder = [context.Barrier(processes)]
    started = time.perf_counter()
    executor = ProcessPoolExecutor(processes, mp_context=context, initializer=_init_worker,
                                   initargs=(barrier_holder, cpus, worker_threads(), sorted(modules)))
    try:
        futures = [executor.submit(_report_started) for _ in range(processes)]
        workers = [future.result(timeout=STARTUP_TIMEOUT_S) for future in futures]
    except BaseException:
        barrier_holder[0].abort()  # release the workers already waiting, so shutdown is prompt
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    finally:
        barrier_holder.clear()
    return Pool(executor, processes, cpus, modules, time.perf_counter() - started, workers)


def _init_worker(barrier_holder: list, cpus: tuple[int, ...], blas_threads: int, modules: list[str]) -> None:
    global _startup_barrier
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # An orphaned worker would wait on its task queue forever, and keep the fork server and
    # the resource tracker alive with it.
    threading.Thread(target=_exit_with_runner, name="runner-watch", daemon=True).start()
    os.sched_setaffinity(0, cpus)  # the fork server may predate the runner's --cpus pinning
    for module in modules:  # loads e.g. SciPy's own BLAS now, so the limit below covers it
        importlib.import_module(module)
    threadpool_limits(limits=blas_threads)
    _startup_barrier = barrier_holder[0]


def _exit_with_runner() -> None:
    parent = multiprocessing.parent_process()
    assert parent is not None, "runs in a pool worker, which has a parent"
    multiprocessing.connection.wait([parent.sentinel])
    os._exit(1)


def _report_started() -> dict:
    global _startup_barrier
    assert _startup_barrier is not None, "set by the worker's initializer"
    _startup_barrier.wait(timeout=STARTUP_TIMEOUT_S)
    _startup_barrier = None
    return {"pid": os.getpid(), "affinity": sorted(os.sched_getaffinity(0)),
            "threadpools": {os.path.basename(info["filepath"]): info["num_threads"] for info in threadpool_info()}}
