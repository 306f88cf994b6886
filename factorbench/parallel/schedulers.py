"""Shared Dask plumbing: which scheduler runs a graph, running it with a timeout, and
what the scheduler costs per task.

A scheduler is named by a string, so it can be swept as a setting and typed on the
command line:

- ``"threads"``: dask's local thread pool; no distributed client.
- ``"local-cluster"``: a ``distributed.LocalCluster`` of worker processes on this machine,
  started on first use and reused by every later call in this process, closed at exit.
- ``"tcp://HOST:PORT"``: a scheduler that is already running (``factorbench cluster start``
  or any other); one ``Client`` per address, reused.

This module imports dask only inside functions, so parsing scheduler names works
without it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:  # dask is imported lazily at run time
    from distributed import Client

THREADS = "threads"
LOCAL_CLUSTER = "local-cluster"
SCHEDULER_CHOICES = f"{THREADS}, {LOCAL_CLUSTER} or tcp://HOST:PORT"
CONNECT_TIMEOUT_S = 5.0
"""How long to wait for a scheduler address to answer before its rows fail."""
COMPUTE_TIMEOUT_S = 600.0
"""Longest one computation may take on a distributed scheduler: lost workers must end in
an error, never a hang."""
OVERHEAD_TASKS = 200
OVERHEAD_METHOD = (f"wall time of {OVERHEAD_TASKS} independent no-op tasks and the one collecting them, "
                   f"divided by {OVERHEAD_TASKS + 1}")
AUTO_CHUNK = "auto"
AUTO_BLOCKS_PER_THREAD = 2
"""'auto' chunking: two blocks per worker thread, so a slow block has a partner to
balance against without paying per-task overhead on many small ones."""

_clients: dict[str, Client] = {}
_local_cluster = None
_overheads: dict[str, float] = {}
_lock = threading.Lock()


def parse_scheduler(text: str) -> str:
    """``text`` as a scheduler name; ValueError naming what is allowed otherwise."""
    value = text.strip()
    if value in (THREADS, LOCAL_CLUSTER):
        return value
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme == "tcp" and parts.hostname and port and not parts.path.strip("/"):
        return f"tcp://{parts.netloc}"
    raise ValueError(f"expected {SCHEDULER_CHOICES}, got {text!r}")


def chunk_elements(total: int, chunk_size: int | str, worker_threads: int) -> int:
    """Elements per block for an input of ``total`` elements: ``chunk_size`` itself, or
    for ``"auto"`` enough for AUTO_BLOCKS_PER_THREAD blocks per worker thread."""
    if chunk_size == AUTO_CHUNK:
        return max(1, math.ceil(total / (AUTO_BLOCKS_PER_THREAD * worker_threads)))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be {AUTO_CHUNK!r} or a positive integer (elements per block), "
                         f"got {chunk_size!r}")
    return chunk_size


def cores() -> int:
    """CPUs this process may run on (the threaded scheduler's share of the machine)."""
    return len(os.sched_getaffinity(0))


def check_reachable(address: str) -> None:
    """Fail in seconds, with the reason, when nothing listens at a tcp:// address
    (distributed's own connect would retry until its timeout on a refused port)."""
    parts = urlsplit(address)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConnectionError(f"Dask scheduler {address} is not reachable: {reason}") from None


def unreachable(names) -> dict[str, str]:
    """Of the scheduler names a run sweeps, the cluster addresses nothing answers at, with
    why: one connection attempt each, so a run fails all their rows at once instead of one
    worker's attempt (and start-up) per row and round."""
    down = {}
    for name in set(names):
        if isinstance(name, str) and name.startswith("tcp://"):
            try:
                check_reachable(name)
            except ConnectionError as exc:
                down[name] = f"{exc} (one attempt at the start of the run, {CONNECT_TIMEOUT_S:g} s timeout)"
    return down


def _client(scheduler: str):
    global _local_cluster
    from distributed import Client, LocalCluster

    with _lock:
        client = _clients.get(scheduler)
        if client is not None:
            if client.status == "running":
                return client
            # Lost its scheduler (a stopped cluster): drop it, so the next try reconnects.
            _close(client)
            del _clients[scheduler]
        if scheduler == LOCAL_CLUSTER:
            if _local_cluster is None:
                # One single-threaded worker process per core: the GIL-free layout, and the
                # one whose numbers compare with the multiprocessing paradigm.
                # No dashboard, and the scheduler's small HTTP server (health, metrics) on a
                # free port: the default 8787 may belong to a `factorbench cluster`.
                _local_cluster = LocalCluster(n_workers=cores(), threads_per_worker=1, processes=True,
                                              host="127.0.0.1", scheduler_port=0, dashboard_address=None,
                                              scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
            client = Client(_local_cluster, set_as_default=False)
        else:
            check_reachable(scheduler)
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
        _clients[scheduler] = client
        return client


@contextlib.contextmanager
def client_for(scheduler: str) -> Iterator[Client | None]:
    """The distributed ``Client`` for ``scheduler`` (None for ``"threads"``), connected and
    reused across calls; ``ConnectionError`` when an address does not answer."""
    scheduler = parse_scheduler(scheduler)
    yield None if scheduler == THREADS else _client(scheduler)


@contextlib.contextmanager
def as_default(scheduler: str) -> Iterator[Client | None]:
    """Inside the block, plain ``.compute()`` calls (also those deep inside dask.dataframe
    pipelines) run on ``scheduler``; yields its Client, or None for ``"threads"``."""
    import dask

    with client_for(scheduler) as client:
        if client is None:
            with dask.config.set(scheduler=THREADS):
                yield None
        else:
            with client.as_current():
                yield client


def compute(collection, client, timeout: float | None = None):
    """Compute one dask collection on ``client`` (None: the threaded scheduler, with BLAS
    limited to one thread per task).

    On a cluster the wait is bounded: a computation that loses its workers raises
    (KilledWorker, TimeoutError) instead of waiting for workers that never come back.
    The data a graph embeds is sent with it (the harness's inputs are in-memory NumPy
    arrays), so dask's "large graph" warning is expected and silenced.
    """
    import dask

    if client is None:
        # One BLAS thread per task, as distributed's workers run (OMP_NUM_THREADS=1):
        # Dask's threads are the parallelism, and 2 x 2 threads on 2 cores made the
        # threaded gram_colsum 1.5x slower.
        with _blas_controller().limit(limits=1, user_api="blas"):
            return dask.compute(collection, scheduler=THREADS)[0]
    timeout = timeout or COMPUTE_TIMEOUT_S
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1TB"}):
        future = client.compute(collection)
    try:
        return future.result(timeout=timeout)
    except TimeoutError:
        future.cancel()
        raise TimeoutError(f"the computation did not finish within {timeout:g} s") from None


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    # Built once: a fresh threadpool_limits() scans the loaded libraries (~0.5 ms a call).
    return ThreadpoolController()


def _noop(i):
    return i


def task_overhead_s(scheduler: str) -> float:
    """Seconds per task of ``scheduler`` on a trivial graph: the wall time of
    OVERHEAD_TASKS independent no-op tasks and the one that collects them, divided by
    their number (measured once per scheduler and process, after a warm-up round)."""
    import dask

    scheduler = parse_scheduler(scheduler)
    if scheduler not in _overheads:
        with client_for(scheduler) as client:
            def run():
                graph = dask.delayed([dask.delayed(_noop, pure=False)(i) for i in range(OVERHEAD_TASKS)])
                tasks = len(graph.__dask_graph__())
                start = time.perf_counter()
                compute(graph, client)
                return (time.perf_counter() - start) / tasks

            run()
            _overheads[scheduler] = run()
    return _overheads[scheduler]


def describe(client) -> dict:
    """Scheduler address and worker threads, for the results."""
    if client is None:
        return {"scheduler_address": None, "workers": 1, "worker_threads": cores()}
    threads = client.nthreads()
    return {"scheduler_address": client.scheduler.address, "workers": len(threads),
            "worker_threads": sum(threads.values())}


def _close(client) -> None:
    # A client whose scheduler went away is retrying the connection until its timeout;
    # closing it then only cancels that retry with a logged CancelledError traceback.
    if client.status == "running":
        with contextlib.suppress(Exception):
            client.close()


def close_all() -> None:
    """Close every client and the LocalCluster (its worker processes end with it)."""
    global _local_cluster
    with _lock:
        for client in _clients.values():
            _close(client)
        _clients.clear()
        _overheads.clear()
        if _local_cluster is not None:
            with contextlib.suppress(Exception):
                _local_cluster.close()
            _local_cluster = None


atexit.register(close_all)
