"""Process pool over shared memory (the article's section 3.1), and the naive pickling pool beside it.

``multiprocessing-shm``: inputs live in POSIX shared memory across calls, as an engine
keeps its data resident. The first call with an array copies it into a segment (staging,
timed and reported apart, like pool start-up); later calls with the same array reuse the
segment, until the array is garbage-collected, which unlinks it. Workers attach to a
segment once and keep it mapped; each task carries names, shapes and bounds, never array
data, and workers write into an output segment that is reused across calls, from which
the result is copied into a new array (as every implementation returns one). Chunks carry
the halo their kernel needs: SMA reads ``window - 1`` values past its chunk; EMA scans
each chunk from zero, chains the chunk ends into carries in the runner, then adds each
carry's decay in a second parallel pass.

Staged arrays are treated as immutable, as an engine's resident data is: modifying one in
place after a call and passing it again returns results for its old contents.

Every segment is unlinked when its array is collected, at exit, when a call is
interrupted (Ctrl-C) and when a worker dies; if the runner itself is killed outright,
multiprocessing's resource tracker unlinks what is left.

``multiprocessing-naive``: ``executor.map`` over array chunks (the article's ``Pool.map``),
which pickles every chunk to a worker and every result back.

Both compute each chunk with NumPy, on the long-lived pool of :mod:`factorbench.parallel.pools`;
``processes`` is swept by the runner (``--processes``).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import math
import os
import pickle
import secrets
import time
import traceback
import weakref
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing.shared_memory import SharedMemory

import numpy as np

from factorbench.impls._support import arrays as rules
from factorbench.impls._support import scan
from factorbench.impls.vectorized import gram_colsum, row_sums, sma_cumsum, trig
from factorbench.parallel import pools
from factorbench.registry import Paradigm

SEGMENT_PREFIX = "psm_fb"
SHM_DIR = "/dev/shm"
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
                    rank=60, probe=_probe, countable=False,
                    uncountable_why="process pool: the work runs in worker processes and the parent's "
                                    "count follows how long they take")
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


def _new_segment(nbytes: int) -> SharedMemory:
    # /dev/shm is a tmpfs: a segment larger than its free space is created all the same,
    # and touching the pages past the end kills the process with SIGBUS.
    free = None
    with contextlib.suppress(OSError):
        shm = os.statvfs(SHM_DIR)
        free = shm.f_bavail * shm.f_frsize
    if free is not None and nbytes > free:
        # No space on a file system, not the process out of memory: a failed row, not an OOM one.
        raise OSError(errno.ENOSPC, f"shared memory: {nbytes:,} bytes needed, {free:,} free in {SHM_DIR} "
                                    "(a container's default is 64 MB: run it with --shm-size)")
    while True:
        name = f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        try:
            return SharedMemory(name, create=True, size=max(nbytes, 8))
        except FileExistsError:
            continue


class Resident:
    """The runner's segments: staged inputs (one per input array, alive as long as the
    array is) and reused output segments (one per output shape, the latest few)."""

    OUTPUTS_KEPT = 4

    def __init__(self):
        self._segments: dict[str, SharedMemory] = {}
        self._inputs: dict[int, tuple[weakref.ref, Block]] = {}
        self._outputs: dict[tuple, Block] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._segments)

    def view(self, block: Block) -> np.ndarray:
        return block.view(self._segments[block.name])

    def input(self, array: np.ndarray, order: str = "C") -> tuple[Block, int]:
        """(the segment holding ``array``, bytes staged now: 0 when it was already resident)."""
        key = id(array)
        known = self._inputs.get(key)
        if known is not None and known[0]() is array and known[1].order == order:
            return known[1], 0
        block = self._create(array.shape, order)
        # Views stay temporaries here: a view still alive would keep close() from unmapping.
        np.copyto(self.view(block), array)
        self._inputs[key] = (weakref.ref(array), block)
        weakref.finalize(array, self._forget_input, key, block.name)
        return block, array.nbytes

    def output(self, shape: tuple[int, ...], order: str = "C") -> Block:
        """A segment for a result of ``shape``, reused by later calls of that shape."""
        key = (tuple(shape), order)
        if key not in self._outputs:
            if len(self._outputs) >= self.OUTPUTS_KEPT:
                self._unlink(self._outputs.pop(next(iter(self._outputs))).name)
            self._outputs[key] = self._create(shape, order)
        return self._outputs[key]

    def copy_out(self, block: Block) -> np.ndarray:
        """The result as a new array, which outlives the segment."""
        return self.view(block).copy(order="K")

    def release(self) -> None:
        """Unlink every segment (at exit, after a worker died or a call was interrupted)."""
        self._inputs.clear()
        self._outputs.clear()
        for name in list(self._segments):
            self._unlink(name)

    def _create(self, shape: tuple[int, ...], order: str) -> Block:
        segment = _new_segment(8 * math.prod(shape))
        self._segments[segment.name] = segment
        return Block(segment.name, tuple(shape), order)

    def _forget_input(self, key: int, name: str) -> None:
        known = self._inputs.get(key)
        if known is not None and known[1].name == name:
            del self._inputs[key]
        self._unlink(name)

    def _unlink(self, name: str) -> None:
        segment = self._segments.pop(name, None)
        if segment is not None:
            segment.unlink()  # first: the name goes even if close() fails below
            with contextlib.suppress(BufferError):  # a view still alive somewhere: unmapped at exit
                segment.close()


_resident = Resident()
atexit.register(_resident.release)


def release() -> None:
    """Unlink every resident segment now; later calls stage their inputs again."""
    _resident.release()


_attached_segments: dict[str, SharedMemory] = {}
"""Worker side: the segments this worker has mapped, by name, kept across tasks."""


def _attached(compute, blocks: tuple[Block, ...], live: tuple[str, ...], *args):
    """Worker side: run ``compute`` on views of ``blocks``, attaching each segment the first
    time it is named; segments no longer ``live`` in the runner are closed first."""
    for name in [name for name in _attached_segments if name not in live]:
        with contextlib.suppress(BufferError):
            _attached_segments.pop(name).close()
    for block in blocks:
        if block.name not in _attached_segments:
            _attached_segments[block.name] = SharedMemory(block.name)
    try:
        return compute(*(block.view(_attached_segments[block.name]) for block in blocks), *args)
    except BaseException as exc:
        # The traceback's frames hold views of the segments; close() refuses while they live.
        traceback.clear_frames(exc.__traceback__)
        raise


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
    """Size of the segments the call used (inputs and output)."""
    staged_bytes: int = 0
    """Bytes copied into shared memory by this call (0 when its inputs were resident)."""
    copied_out_bytes: int = 0


_last: CallRecord | None = None
_staging = {"bytes": 0, "seconds": 0.0}
"""The last staging of inputs into shared memory (the first call with new arrays)."""


@contextlib.contextmanager
def _call(processes: int | None, transport: str, modules: tuple[str, ...] = ()):
    """The pool for one call (all CPUs by default; ``modules``: what its tasks import),
    replaced when the call finds it broken or is interrupted."""
    global _last
    pool = pools.pool(len(os.sched_getaffinity(0)) if processes is None else processes, modules)
    _last = CallRecord(transport, pool)
    try:
        yield pool.executor, _last
    except BrokenProcessPool:
        pools.shutdown(pool.processes)  # a dead worker breaks the executor for good
        _resident.release()
        raise
    except KeyboardInterrupt:
        pools.shutdown(pool.processes, wait=False)  # drop queued chunks; running ones finish
        _resident.release()
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
    figures = {**record.pool.describe(), "transport": record.transport, "tasks_per_call": len(sent),
               "bytes_sent_per_task": round(sum(sent) / len(sent)), "bytes_sent_per_call": sum(sent),
               "array_bytes_returned_per_call": record.array_bytes_returned}
    if record.transport == "shared memory":
        figures.update({
            "shared_bytes_per_call": record.shared_bytes,
            "staged_bytes_per_call": record.staged_bytes,
            "copied_out_bytes_per_call": record.copied_out_bytes,
            # what the call really copied: pickled both ways, staged into shared memory, copied out
            "bytes_copied_per_call": sum(sent) + record.array_bytes_returned + record.staged_bytes
                                     + record.copied_out_bytes,
            "inputs_staged_bytes": _staging["bytes"], "inputs_staging_s": _staging["seconds"]})
    else:
        figures["bytes_copied_per_call"] = sum(sent) + record.array_bytes_returned
    return figures


def _bounds(total: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` (at most ``total``) contiguous, near-equal, non-empty ranges covering 0..total."""
    edges = np.linspace(0, total, min(parts, total) + 1).astype(int)
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def _order(array: np.ndarray) -> str:
    return "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"


# --- per-chunk work (runs in the workers) ----------------------------------------------

def _sma_into(x, out, start, stop, window):
    out[start:stop] = sma_cumsum(x[start:stop + window - 1], window)


SCAN_MODULES = ("scipy.signal",)
"""What the EMA's local scans import in the pool workers (scan.local_scan's lfilter)."""


def _ema_scan(x, alpha, first):
    """EMA of one chunk started from 0 (from x[0] for the first chunk): the local scan."""
    return scan.local_scan(x, alpha, first)


def _ema_scan_into(x, out, start, stop, alpha):
    out[start:stop] = _ema_scan(x[start:stop], alpha, start == 0)
    return float(out[stop - 1])


def _ema_fix_into(out, start, stop, alpha, carry):
    scan.add_carry(out[start:stop], alpha, carry)


def _ema_carries(chunk_ends: list[float], bounds, alpha) -> list[float]:
    """The true EMA just before each chunk after the first, chained through the chunk ends."""
    return scan.carries(chunk_ends, [stop - start for start, stop in bounds], alpha)


def _row_sums_into(m, out, start, stop):
    np.sum(m[start:stop], axis=1, out=out[start:stop])


TRIG_BLOCK = 1 << 14
"""Elements per NumPy pass in a worker: the block and its temporary stay in cache."""


def _trig_into(a, b, out, start, stop):
    a, b, out = (v.ravel(order="K") for v in (a, b, out))  # views: the three share one layout
    cos_b = np.empty(min(TRIG_BLOCK, stop - start))
    for low in range(start, stop, TRIG_BLOCK):
        high = min(low + TRIG_BLOCK, stop)
        block, temp = out[low:high], cos_b[:high - low]
        with np.errstate(invalid="ignore"):  # sin(inf) is NaN, as it should be
            np.sin(a[low:high], out=block)
            np.cos(b[low:high], out=temp)
        np.square(block, out=block)
        np.square(temp, out=temp)
        block += temp


def _gram_partial_into(x, partials, index, start, stop):
    partials[index] = gram_colsum(x[start:stop])


# --- shared-memory implementations ------------------------------------------------------

def _shared(kernel: str):
    return PARADIGM.implements(kernel, name="multiprocessing-shm", metrics=metrics, settings=PROCESSES)


def _inputs(record: CallRecord, *arrays: tuple[np.ndarray, str]) -> list[Block]:
    """The resident segments of ``arrays`` (array, order), staging those new to shared memory."""
    started = time.perf_counter()
    blocks = []
    for array, order in arrays:
        block, staged = _resident.input(array, order)
        record.staged_bytes += staged
        blocks.append(block)
    if record.staged_bytes:
        _staging.update(bytes=record.staged_bytes, seconds=time.perf_counter() - started)
    return blocks


def _tasks(compute, blocks: tuple[Block, ...], arguments) -> list[tuple]:
    """One task per argument tuple; each names the segments still live, for workers to drop the rest."""
    live = _resident.names
    return [(_attached, compute, blocks, live, *args) for args in arguments]


def _result(record: CallRecord, block: Block, *inputs: Block) -> np.ndarray:
    record.shared_bytes = sum(8 * math.prod(b.shape) for b in (block, *inputs))
    out = _resident.copy_out(block)
    record.copied_out_bytes = out.nbytes
    return out


@_shared("sma")
def sma_shm(x, window, *, processes=None):
    """Output ranges split over workers, each reading window - 1 values of halo."""
    x, window = rules.window_input(x, window)
    count = x.size - window + 1
    with _call(processes, "shared memory") as (executor, record):
        (x_block,) = _inputs(record, (x, "C"))
        out = _resident.output((count,))
        _run(executor, record, _tasks(_sma_into, (x_block, out),
                                      [(start, stop, window) for start, stop in _bounds(count, record.pool.processes)]))
        return _result(record, out, x_block)


@_shared("ema")
def ema_shm(x, alpha, *, processes=None):
    """Local scans in parallel, carries chained in the runner, decayed carries added in parallel."""
    x, alpha = rules.alpha_input(x, alpha)
    with _call(processes, "shared memory", SCAN_MODULES) as (executor, record):
        bounds = _bounds(x.size, record.pool.processes)
        (x_block,) = _inputs(record, (x, "C"))
        out = _resident.output((x.size,))
        ends = _run(executor, record, _tasks(_ema_scan_into, (x_block, out),
                                             [(start, stop, alpha) for start, stop in bounds]))
        carries = _ema_carries(ends, bounds, alpha)
        _run(executor, record, _tasks(_ema_fix_into, (out,),
                                      [(start, stop, alpha, carry) for (start, stop), carry in zip(bounds[1:], carries)]))
        return _result(record, out, x_block)


@_shared("row_sums")
def row_sums_shm(m, *, processes=None):
    """Row blocks over workers; the input keeps its C or F layout in shared memory."""
    m = rules.matrix(m)
    with _call(processes, "shared memory") as (executor, record):
        (m_block,) = _inputs(record, (m, _order(m)))
        out = _resident.output((m.shape[0],))
        _run(executor, record, _tasks(_row_sums_into, (m_block, out), _bounds(m.shape[0], record.pool.processes)))
        return _result(record, out, m_block)


@_shared("trig")
def trig_shm(a, b, *, processes=None):
    """Flat element ranges over workers, evaluated block by block into the output segment."""
    a, b = rules.pair(a, b)
    order = "F" if _order(a) == _order(b) == "F" else "C"
    with _call(processes, "shared memory") as (executor, record):
        a_block, b_block = _inputs(record, (a, order), (b, order))
        out = _resident.output(a.shape, order)
        _run(executor, record, _tasks(_trig_into, (a_block, b_block, out), _bounds(a.size, record.pool.processes)))
        return _result(record, out, a_block, b_block)


@_shared("gram_colsum")
def gram_colsum_shm(x, *, processes=None):
    """Row blocks over workers, each writing its partial column sums; the runner adds them."""
    x = rules.matrix(x, "x")
    with _call(processes, "shared memory") as (executor, record):
        bounds = _bounds(x.shape[0], record.pool.processes)
        (x_block,) = _inputs(record, (x, "C"))
        partials = _resident.output((len(bounds), x.shape[1]))
        _run(executor, record, _tasks(_gram_partial_into, (x_block, partials),
                                      [(index, start, stop) for index, (start, stop) in enumerate(bounds)]))
        return _result(record, partials, x_block).sum(axis=0)


# --- naive implementations: chunks pickled ----------------------------------------------

def _naive(kernel: str):
    return PARADIGM.implements(kernel, name="multiprocessing-naive", metrics=metrics, settings=PROCESSES)


@_naive("sma")
def sma_naive(x, window, *, processes=None):
    """executor.map over input chunks with their halo; the chunks and results are pickled."""
    x, window = rules.window_input(x, window)
    with _call(processes, "pickle") as (executor, record):
        bounds = _bounds(x.size - window + 1, record.pool.processes)
        chunks = [x[start:stop + window - 1] for start, stop in bounds]
        return np.concatenate(_map(executor, record, sma_cumsum, chunks, [window] * len(chunks)))


@_naive("ema")
def ema_naive(x, alpha, *, processes=None):
    """executor.map of the local scans; carries and their decay applied in the runner."""
    x, alpha = rules.alpha_input(x, alpha)
    with _call(processes, "pickle", SCAN_MODULES) as (executor, record):
        bounds = _bounds(x.size, record.pool.processes)
        chunks = [x[start:stop] for start, stop in bounds]
        scans = _map(executor, record, _ema_scan, chunks, [alpha] * len(chunks),
                     [index == 0 for index in range(len(chunks))])
    carries = _ema_carries([float(scan[-1]) for scan in scans], bounds, alpha)
    for chunk, carry in zip(scans[1:], carries):
        scan.add_carry(chunk, alpha, carry)
    return np.concatenate(scans)


@_naive("row_sums")
def row_sums_naive(m, *, processes=None):
    """executor.map over row blocks."""
    m = rules.matrix(m)
    with _call(processes, "pickle") as (executor, record):
        blocks = [m[start:stop] for start, stop in _bounds(m.shape[0], record.pool.processes)]
        return np.concatenate(_map(executor, record, row_sums, blocks))


@_naive("trig")
def trig_naive(a, b, *, processes=None):
    """executor.map over row blocks of both inputs."""
    a, b = rules.pair(a, b)
    with _call(processes, "pickle") as (executor, record):
        bounds = _bounds(a.shape[0], record.pool.processes)
        results = _map(executor, record, trig, [a[start:stop] for start, stop in bounds],
                       [b[start:stop] for start, stop in bounds])
        return np.concatenate(results)


@_naive("gram_colsum")
def gram_colsum_naive(x, *, processes=None):
    """executor.map over row blocks; partial column sums come back and are added."""
    x = rules.matrix(x, "x")
    with _call(processes, "pickle") as (executor, record):
        blocks = [x[start:stop] for start, stop in _bounds(x.shape[0], record.pool.processes)]
        return np.sum(_map(executor, record, gram_colsum, blocks), axis=0)
