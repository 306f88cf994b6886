"""Process pool over shared memory (seed section 3.1), and the naive pickling pool beside it.

``multiprocessing-shm``: each call copies its inputs once into POSIX shared-memory
segments; workers attach by name and write into a shared output segment, so a task
carries names, shapes and bounds, never array data. Chunks carry the halo their kernel
needs: SMA reads ``window - 1`` values past its chunk; EMA scans each chunk from zero,
chains the chunk ends into carries in the runner, then adds each carry's decay in a second
parallel pass. Every segment is unlinked when the call ends, however it ends.

``multiprocessing-naive``: ``executor.map`` over array chunks (the seed's ``Pool.map``),
which pickles every chunk to a worker and every result back.

Both compute each chunk with the vectorized paradigm's functions, on the long-lived pool
of :mod:`factorbench.parallel.pools`; ``processes`` is swept by the runner (``--processes``).
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import secrets
import traceback
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from factorbench import Paradigm
from factorbench.impls.vectorized import gram_colsum, row_sums, sma_cumsum, trig
from factorbench.parallel import pools

SEGMENT_PREFIX = "psm_fb"
"""Segment names are psm_fb<creator pid>_<random>, so a leaked one names its process."""


def _probe() -> str | None:
    try:
        SharedMemory(create=True, size=8).unlink()
    except OSError as exc:
        return f"POSIX shared memory is unusable here: {exc}"
    if not hasattr(os, "sched_setaffinity"):
        return "os.sched_setaffinity is not available on this platform"
    return None


PARADIGM = Paradigm("multiprocessing", "process pool; inputs in shared memory vs pickled chunks",
                    rank=60, probe=_probe)
PROCESSES = {"processes": (1, 2)}


# --- shared memory ----------------------------------------------------------------------

@dataclass(frozen=True)
class Block:
    """A float64 array in a shared-memory segment: what a task carries instead of the data."""
    name: str
    shape: tuple[int, ...]
    order: str = "C"

    def view(self, segment: SharedMemory) -> np.ndarray:
        return np.ndarray(self.shape, np.float64, buffer=segment.buf, order=self.order)


class Segments:
    """The segments of one call; leaving the block unlinks every one, however it is left."""

    def __init__(self):
        self._open: dict[str, SharedMemory] = {}

    def __enter__(self) -> Segments:
        return self

    def __exit__(self, *exc_info) -> None:
        for segment in self._open.values():
            segment.unlink()  # first, for all: the names go even if a close() below fails
        for segment in self._open.values():
            segment.close()

    @property
    def nbytes(self) -> int:
        return sum(segment.size for segment in self._open.values())

    def create(self, shape: tuple[int, ...], order: str = "C") -> Block:
        size = max(8 * math.prod(shape), 8)
        while True:
            name = f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
            try:
                segment = SharedMemory(name, create=True, size=size)
                break
            except FileExistsError:
                continue
        self._open[name] = segment
        return Block(name, tuple(shape), order)

    def put(self, array: np.ndarray, order: str = "C") -> Block:
        """Copy ``array`` (any layout) into a new segment laid out in ``order``."""
        block = self.create(array.shape, order)
        # Views stay temporaries here: a view still alive would keep close() from unmapping.
        np.copyto(block.view(self._open[block.name]), array)
        return block

    def get(self, block: Block) -> np.ndarray:
        """A private copy of a segment's array, which outlives the segment."""
        return block.view(self._open[block.name]).copy()


def _attached(compute, blocks: tuple[Block, ...], *args):
    """Worker side: attach ``blocks`` by name, run ``compute`` on views of them, detach."""
    segments = [SharedMemory(block.name) for block in blocks]
    try:
        return compute(*(block.view(segment) for block, segment in zip(blocks, segments)), *args)
    except BaseException as exc:
        # The traceback's frames hold views of the segments; close() refuses while they live.
        traceback.clear_frames(exc.__traceback__)
        raise
    finally:
        for segment in segments:
            segment.close()


# --- calls, and what they sent ---------------------------------------------------------

@dataclass
class CallRecord:
    """What the last call sent to its workers, for metrics() (measured after timing)."""
    transport: str
    pool: pools.Pool
    tasks: list[tuple] = field(default_factory=list)
    """(function, args) of every task, as the executor pickles them."""
    array_bytes_returned: int = 0
    shared_bytes: int = 0


_last: CallRecord | None = None


@contextlib.contextmanager
def _call(processes: int | None, transport: str):
    """The pool for one call (all CPUs by default), replaced when the call finds it broken
    or is interrupted."""
    global _last
    pool = pools.pool(len(os.sched_getaffinity(0)) if processes is None else processes)
    _last = CallRecord(transport, pool)
    try:
        yield pool.executor, _last
    except BrokenProcessPool:
        pools.shutdown(pool.processes)  # a dead worker breaks the executor for good
        raise
    except KeyboardInterrupt:
        pools.shutdown(pool.processes, wait=False)  # drop queued chunks; running ones finish
        raise


def _run(executor, record: CallRecord, tasks: list[tuple]) -> list:
    """Submit (function, *args) tasks and wait for all results, in order."""
    record.tasks.extend(tasks)
    futures = [executor.submit(*task) for task in tasks]
    try:
        results = [future.result() for future in futures]
    finally:
        for future in futures:
            future.cancel()  # no-op once done; drops the queued rest of a failed call
    record.array_bytes_returned += sum(r.nbytes for r in results if isinstance(r, np.ndarray))
    return results


def _map(executor, record: CallRecord, function, *chunk_lists) -> list:
    """The naive way: executor.map pickles every chunk to a worker and every result back."""
    record.tasks.extend((function, *args) for args in zip(*chunk_lists))
    results = list(executor.map(function, *chunk_lists))
    record.array_bytes_returned += sum(r.nbytes for r in results if isinstance(r, np.ndarray))
    return results


def metrics() -> dict:
    record = _last
    if record is None:
        return {}
    sent = [len(pickle.dumps(task)) for task in record.tasks]
    return {**record.pool.describe(), "transport": record.transport, "tasks_per_call": len(sent),
            "bytes_sent_per_task": round(sum(sent) / len(sent)), "bytes_sent_per_call": sum(sent),
            "array_bytes_returned_per_call": record.array_bytes_returned,
            "shared_bytes_per_call": record.shared_bytes}


def _bounds(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` (at most ``total``) contiguous, near-equal, non-empty ranges covering 0..total."""
    edges = np.linspace(0, total, min(parts, total) + 1).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _order(array: np.ndarray) -> str:
    return "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"


# --- per-chunk work (runs in the workers) ----------------------------------------------

def _sma_into(x, out, start, stop, window):
    out[start:stop] = sma_cumsum(x[start:stop + window - 1], window)


def _ema_scan(x, alpha, first):
    """EMA of one chunk started from 0 (from x[0] for the first chunk): the local scan."""
    from scipy.signal import lfilter

    initial = (1.0 - alpha) * x[0] if first else 0.0
    return lfilter([alpha], [1.0, alpha - 1.0], x, zi=np.array([initial]))[0]


def _ema_scan_into(x, out, start, stop, alpha):
    out[start:stop] = _ema_scan(x[start:stop], alpha, start == 0)
    return float(out[stop - 1])


def _add_carry(scan, alpha, carry):
    """Turn a chunk's local scan into the true EMA, given the true value just before it.

    Position k of the chunk keeps carry * (1 - alpha) ** k. Past the k where that power
    underflows to 0 the term adds exactly 0, so only that prefix is touched; a NaN carry
    reaches the chunk's end, as NaN does in the recurrence.
    """
    reach = 0 if alpha == 1.0 else math.ceil(math.log(math.ulp(0.0)) / math.log1p(-alpha)) + 2
    length = scan.size if math.isnan(carry) else min(scan.size, reach)
    scan[:length] += carry * np.power(1.0 - alpha, np.arange(1, length + 1, dtype=np.float64))


def _ema_fix_into(out, start, stop, alpha, carry):
    _add_carry(out[start:stop], alpha, carry)


def _ema_carries(chunk_ends: list[float], bounds, alpha) -> list[float]:
    """The true EMA just before each chunk after the first, chained through the chunk ends."""
    carries, previous = [], chunk_ends[0]
    for end, (start, stop) in zip(chunk_ends[1:], bounds[1:]):
        carries.append(previous)
        previous = end + (1.0 - alpha) ** (stop - start) * previous
    return carries


def _row_sums_into(m, out, start, stop):
    np.sum(m[start:stop], axis=1, out=out[start:stop])


def _trig_into(a, b, out, start, stop):
    a, b, out = a.reshape(-1)[start:stop], b.reshape(-1)[start:stop], out.reshape(-1)[start:stop]
    np.sin(a, out=out)
    np.square(out, out=out)
    cos_b = np.cos(b)
    np.square(cos_b, out=cos_b)
    out += cos_b


def _gram_partial_into(x, partials, index, start, stop):
    partials[index] = gram_colsum(x[start:stop])


# --- shared-memory implementations ------------------------------------------------------

def _shared(kernel: str):
    return PARADIGM.implements(kernel, name="multiprocessing-shm", metrics=metrics, settings=PROCESSES)


@_shared("sma")
def sma_shm(x, window, *, processes=None):
    """Output ranges split over workers, each reading window - 1 values of halo."""
    x = np.asarray(x, dtype=np.float64)
    count = x.size - window + 1
    with _call(processes, "shared memory") as (executor, record), Segments() as segments:
        x_block, out = segments.put(x), segments.create((count,))
        record.shared_bytes = segments.nbytes
        _run(executor, record, [(_attached, _sma_into, (x_block, out), start, stop, window)
                                for start, stop in _bounds(count, record.pool.processes)])
        return segments.get(out)


@_shared("ema")
def ema_shm(x, alpha, *, processes=None):
    """Local scans in parallel, carries chained in the runner, decayed carries added in parallel."""
    x = np.asarray(x, dtype=np.float64)
    with _call(processes, "shared memory") as (executor, record), Segments() as segments:
        bounds = _bounds(x.size, record.pool.processes)
        x_block, out = segments.put(x), segments.create((x.size,))
        record.shared_bytes = segments.nbytes
        ends = _run(executor, record, [(_attached, _ema_scan_into, (x_block, out), start, stop, alpha)
                                       for start, stop in bounds])
        carries = _ema_carries(ends, bounds, alpha)
        _run(executor, record, [(_attached, _ema_fix_into, (out,), start, stop, alpha, carry)
                                for (start, stop), carry in zip(bounds[1:], carries)])
        return segments.get(out)


@_shared("row_sums")
def row_sums_shm(m, *, processes=None):
    """Row blocks over workers; the input keeps its C or F layout in shared memory."""
    with _call(processes, "shared memory") as (executor, record), Segments() as segments:
        m_block, out = segments.put(m, _order(m)), segments.create((m.shape[0],))
        record.shared_bytes = segments.nbytes
        _run(executor, record, [(_attached, _row_sums_into, (m_block, out), start, stop)
                                for start, stop in _bounds(m.shape[0], record.pool.processes)])
        return segments.get(out)


@_shared("trig")
def trig_shm(a, b, *, processes=None):
    """Flat element ranges over workers, evaluated in place in the output segment."""
    with _call(processes, "shared memory") as (executor, record), Segments() as segments:
        a_block, b_block, out = segments.put(a), segments.put(b), segments.create(a.shape)
        record.shared_bytes = segments.nbytes
        _run(executor, record, [(_attached, _trig_into, (a_block, b_block, out), start, stop)
                                for start, stop in _bounds(a.size, record.pool.processes)])
        return segments.get(out)


@_shared("gram_colsum")
def gram_colsum_shm(x, *, processes=None):
    """Row blocks over workers, each writing its partial column sums; the runner adds them."""
    with _call(processes, "shared memory") as (executor, record), Segments() as segments:
        bounds = _bounds(x.shape[0], record.pool.processes)
        x_block, partials = segments.put(x), segments.create((len(bounds), x.shape[1]))
        record.shared_bytes = segments.nbytes
        _run(executor, record, [(_attached, _gram_partial_into, (x_block, partials), index, start, stop)
                                for index, (start, stop) in enumerate(bounds)])
        return segments.get(partials).sum(axis=0)


# --- naive implementations: chunks pickled ----------------------------------------------

def _naive(kernel: str):
    return PARADIGM.implements(kernel, name="multiprocessing-naive", metrics=metrics, settings=PROCESSES)


@_naive("sma")
def sma_naive(x, window, *, processes=None):
    """executor.map over input chunks with their halo; the chunks and results are pickled."""
    x = np.asarray(x, dtype=np.float64)
    with _call(processes, "pickle") as (executor, record):
        bounds = _bounds(x.size - window + 1, record.pool.processes)
        chunks = [x[start:stop + window - 1] for start, stop in bounds]
        return np.concatenate(_map(executor, record, sma_cumsum, chunks, [window] * len(chunks)))


@_naive("ema")
def ema_naive(x, alpha, *, processes=None):
    """executor.map of the local scans; carries and their decay applied in the runner."""
    x = np.asarray(x, dtype=np.float64)
    with _call(processes, "pickle") as (executor, record):
        bounds = _bounds(x.size, record.pool.processes)
        chunks = [x[start:stop] for start, stop in bounds]
        scans = _map(executor, record, _ema_scan, chunks, [alpha] * len(chunks),
                     [index == 0 for index in range(len(chunks))])
    carries = _ema_carries([float(scan[-1]) for scan in scans], bounds, alpha)
    for scan, carry in zip(scans[1:], carries):
        _add_carry(scan, alpha, carry)
    return np.concatenate(scans)


@_naive("row_sums")
def row_sums_naive(m, *, processes=None):
    """executor.map over row blocks."""
    with _call(processes, "pickle") as (executor, record):
        blocks = [m[start:stop] for start, stop in _bounds(m.shape[0], record.pool.processes)]
        return np.concatenate(_map(executor, record, row_sums, blocks))


@_naive("trig")
def trig_naive(a, b, *, processes=None):
    """executor.map over row blocks of both inputs."""
    with _call(processes, "pickle") as (executor, record):
        bounds = _bounds(a.shape[0], record.pool.processes)
        results = _map(executor, record, trig, [a[start:stop] for start, stop in bounds],
                       [b[start:stop] for start, stop in bounds])
        return np.concatenate(results)


@_naive("gram_colsum")
def gram_colsum_naive(x, *, processes=None):
    """executor.map over row blocks; partial column sums come back and are added."""
    with _call(processes, "pickle") as (executor, record):
        blocks = [x[start:stop] for start, stop in _bounds(x.shape[0], record.pool.processes)]
        return np.sum(_map(executor, record, gram_colsum, blocks), axis=0)
