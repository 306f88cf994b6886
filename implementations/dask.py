"""Dask: each kernel as a chunked dask.array task graph, run on a swept scheduler.

Every implementation cuts its NumPy input into row blocks of about ``chunk_size``
elements ("auto": two blocks per worker thread), builds a graph and computes it on the
scheduler named by the ``scheduler`` setting: the threaded scheduler, a LocalCluster of
processes, or a running cluster by its tcp:// address (see factorbench.parallel.schedulers).
The blocks travel inside the graph, so a task lost with a killed worker is recomputed
on another one. Inside a block the work is one single-threaded NumPy/SciPy/bottleneck
call: the paradigm measured here is the chunking and scheduling around it. Inputs are
checked and made float64 arrays first (lists and other array-likes included).
"""

from __future__ import annotations

import functools
import math
import shutil

import numpy as np

from factorbench.impls._support import arrays, scan
from factorbench.impls.vectorized import sma_cumsum
from factorbench.parallel import schedulers
from factorbench.registry import Paradigm, missing_modules

PARADIGM = Paradigm("dask", "chunked task graphs on Dask's threaded scheduler, a LocalCluster or a cluster "
                    "by address", rank=70, requires=["dask"],
                    # the threaded scheduler computes in this process; a cluster's client polls its workers
                    countable=False,
                    uncountable_why="Dask: a cluster's work runs in worker processes, and the threaded scheduler's "
                                    "threads hand the GIL over every 5 ms of wall time; either way the count "
                                    "follows how long the work takes")
SETTINGS = {"scheduler": (schedulers.THREADS, schedulers.LOCAL_CLUSTER),
            "chunk_size": (schedulers.AUTO_CHUNK,)}
GRAPH_IMAGE_MAX_TASKS = 400
"""Bigger graphs take dot minutes and draw as a smear; their image is skipped."""

_last_calls: dict[str, dict] = {}
"""Per kernel, how its last call ran (scheduler, chunks, tasks), for metrics()."""


def _blocks(length: int, size: int, minimum: int = 1) -> tuple[int, ...]:
    """``length`` cut into blocks of ``size`` (at least ``minimum``); a short remainder
    joins the block before it, so no block is shorter than ``minimum``."""
    size = max(size, minimum)
    blocks = [size] * (length // size)
    remainder = length - size * len(blocks)
    if remainder and blocks and remainder < minimum:
        blocks[-1] += remainder
    elif remainder:
        blocks.append(remainder)
    return tuple(blocks)


def _vector(x, chunk: int, minimum: int = 1):
    import dask.array as da

    # name=False: a random graph name instead of hashing every input byte on each call.
    return da.from_array(x, chunks=(_blocks(len(x), chunk, minimum),), name=False)


def _row_blocks(m, chunk: int):
    """Blocks of whole rows, about ``chunk`` elements each, so every block reduces on its own."""
    import dask.array as da

    rows, cols = m.shape
    return da.from_array(m, chunks=(_blocks(rows, math.ceil(chunk / cols)), (cols,)), name=False)


def _execute(kernel: str, build, args: tuple, scheduler: str, chunk_size):
    """Build ``kernel``'s graph over ``args`` with ``build(chunk, *args) -> (result, input
    blocks)`` and compute it on ``scheduler``."""
    with schedulers.client_for(scheduler) as client:
        where = schedulers.describe(client)
        chunk = schedulers.chunk_elements(args[0].size, chunk_size, where["worker_threads"])
        graph, source = build(chunk, *args)
        tasks = len(graph.__dask_graph__())
        out = schedulers.compute(graph, client)
    stand_ins = tuple(np.broadcast_to(0.0, a.shape) if isinstance(a, np.ndarray) else a for a in args)
    _last_calls[kernel] = {
        "scheduler": schedulers.parse_scheduler(scheduler), **where, "chunk_size": chunk_size,
        "chunk_elements": chunk, "input_blocks": math.prod(source.numblocks),
        "block_shape": list(source.chunksize), "tasks": tasks,
        # The same graph over zero-cost stand-ins of the same shape: drawable after the
        # timing without keeping the inputs alive.
        "rebuild": functools.partial(build, chunk, *stand_ins),
    }
    return out


def _draw(kernel: str, call: dict) -> dict:
    """The task graph as an SVG in the run's artifacts folder, or why it was not drawn."""
    from factorbench.registry import artifacts_dir

    directory = artifacts_dir()
    if directory is None:
        return {"task_graph_skipped": "no artifacts folder: called outside a factorbench run with a results file"}
    if shutil.which("dot") is None:
        return {"task_graph_skipped": "graphviz's dot program is not installed (apt-get install graphviz)"}
    if reason := missing_modules(["graphviz"]):
        return {"task_graph_skipped": f"{reason} (pip install 'factorbench[dask]')"}
    if call["tasks"] > GRAPH_IMAGE_MAX_TASKS:
        return {"task_graph_skipped": f"graph too large to draw ({call['tasks']} tasks > {GRAPH_IMAGE_MAX_TASKS}); "
                                      "a larger --chunk-size makes fewer"}
    graph, source = call["rebuild"]()
    shape = "x".join(map(str, source.shape))
    path = directory / f"dask-{kernel}-{shape}-{call['input_blocks']}blocks.svg"
    directory.mkdir(parents=True, exist_ok=True)
    graph.visualize(filename=str(path.with_suffix("")), format="svg")
    return {"artifacts": {"task_graph": str(path)}}


def _metrics(kernel: str) -> dict:
    call = _last_calls.get(kernel)
    if call is None:
        return {}
    figures = {key: value for key, value in call.items() if key != "rebuild"}
    try:
        figures["task_overhead_s"] = schedulers.task_overhead_s(call["scheduler"])
        figures["task_overhead_method"] = schedulers.OVERHEAD_METHOD
    except Exception as exc:  # the cluster went away after the timing: the row keeps its times
        figures["task_overhead_error"] = f"{type(exc).__name__}: {exc}"
    figures.update(_draw(kernel, call))
    return figures


def _implements(kernel: str):
    return PARADIGM.implements(kernel, metrics=functools.partial(_metrics, kernel), settings=SETTINGS)


def _block_means(block, window):
    # The vectorized cumulative sum, which counts NaN and infinities per window
    # (bottleneck.move_mean makes every window after an infinity NaN).
    return sma_cumsum(block, window)


def _sma_graph(chunk, x, window):
    source = _vector(x, chunk, minimum=window)
    blocks = source.chunks[0]
    # Each block also reads the window-1 values after it, so it yields one mean per own
    # element; the last block has no follower and yields the valid part only.
    means = source.map_overlap(_block_means, depth={0: (0, window - 1)}, boundary="none", trim=False,
                               chunks=((*blocks[:-1], blocks[-1] - window + 1),), dtype=np.float64,
                               window=window)
    return means, source


@_implements("sma")
def sma(x, window, *, scheduler=schedulers.THREADS, chunk_size=schedulers.AUTO_CHUNK):
    """da.map_overlap with depth window-1 after each block, a centred cumulative sum per block."""
    x, window = arrays.window_input(x, window)
    return _execute("sma", _sma_graph, (x, window), scheduler, chunk_size)


def _local_ema(block, alpha, first):
    """The recurrence over one block from a zero state (block 0: from x[0], final)."""
    return scan.local_scan(block, alpha, first)


def _last_value(block):
    return float(block[-1])


def _carries(last_values, alpha, lengths):
    """The EMA value entering each block: 0.0 for block 0 (already final), then the
    previous block's true end, chained through the local ends."""
    return [0.0, *scan.carries(last_values, list(lengths), alpha)]


def _add_carry(local, carries, k, alpha):
    if k == 0:
        return local
    out = local.copy()  # dask may hand the same block to other tasks: never write into it
    scan.add_carry(out, alpha, float(carries[k]))
    return out


def _ema_graph(chunk, x, alpha):
    import dask
    import dask.array as da

    source = _vector(x, chunk)
    blocks = source.chunks[0]
    # A scan is no blockwise pattern: the graph is spelled out task by task.
    local = [dask.delayed(_local_ema, pure=True)(block, alpha, k == 0)
             for k, block in enumerate(source.to_delayed().ravel())]
    ends = [dask.delayed(_last_value, pure=True)(block) for block in local]
    carries = dask.delayed(_carries, pure=True)(ends, alpha, blocks)
    out = [da.from_delayed(dask.delayed(_add_carry, pure=True)(block, carries, k, alpha), (length,), np.float64)
           for k, (block, length) in enumerate(zip(local, blocks))]
    return da.concatenate(out), source


@_implements("ema")
def ema(x, alpha, *, scheduler=schedulers.THREADS, chunk_size=schedulers.AUTO_CHUNK):
    """Chunked scan: local EMA per block (lfilter), carries combined across blocks, fix-up."""
    x, alpha = arrays.alpha_input(x, alpha)
    return _execute("ema", _ema_graph, (x, alpha), scheduler, chunk_size)


def _row_sums_graph(chunk, m):
    source = _row_blocks(m, chunk)
    return source.sum(axis=1), source


@_implements("row_sums")
def row_sums(m, *, scheduler=schedulers.THREADS, chunk_size=schedulers.AUTO_CHUNK):
    """Row blocks, each summed along its rows."""
    m = arrays.matrix(m)
    return _execute("row_sums", _row_sums_graph, (m,), scheduler, chunk_size)


def _trig_graph(chunk, a, b):
    import dask.array as da

    left, right = _row_blocks(a, chunk), _row_blocks(b, chunk)
    return da.sin(left) ** 2 + da.cos(right) ** 2, left


@_implements("trig")
def trig(a, b, *, scheduler=schedulers.THREADS, chunk_size=schedulers.AUTO_CHUNK):
    """da.sin(a)**2 + da.cos(b)**2 on row blocks (fused into one task per block)."""
    a, b = arrays.pair(a, b)
    return _execute("trig", _trig_graph, (a, b), scheduler, chunk_size)


def _gram_colsum_graph(chunk, x):
    source = _row_blocks(x, chunk)
    return source.T.dot(source).sum(axis=0), source


@_implements("gram_colsum")
def gram_colsum(x, *, scheduler=schedulers.THREADS, chunk_size=schedulers.AUTO_CHUNK):
    """The article's x.T.dot(x).sum(axis=0) on row blocks: one cols x cols product per block, summed."""
    x = arrays.matrix(x, "x")
    return _execute("gram_colsum", _gram_colsum_graph, (x,), scheduler, chunk_size)
