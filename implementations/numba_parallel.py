"""Numba @njit(parallel=True): prange loops over Numba's thread pool.

Each implementation takes a `threads` setting (`factorbench run --threads 1,2` measures
each count as its own row); it splits the work into that many chunks and runs them on
that many Numba threads. The recurrences are parallel scans, not a recurrence inside
prange (the article's numba_ema, which is wrong): see numba_loops.ema_parallel.
"""

import contextlib

from factorbench import Paradigm
from factorbench.impls._support import arrays

PARADIGM = Paradigm("numba-parallel", "@njit(parallel=True) prange loops on Numba's thread pool, cache=True",
                    rank=46, requires=["numba"])
THREADS = {"threads": (arrays.DEFAULT_THREADS,)}


def _kernels():
    from factorbench.impls._support import numba_loops

    return numba_loops


@contextlib.contextmanager
def _numba_threads(count: int):
    import numba

    if not 1 <= count <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"threads must be between 1 and {numba.config.NUMBA_NUM_THREADS} "
                         f"(Numba's pool; set NUMBA_NUM_THREADS to raise it), got {count}")
    saved = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(saved)


def _metrics(name: str):
    def metrics():
        import numba

        kernels = _kernels()
        return {**kernels.compile_metrics(getattr(kernels, name)),
                "numba_threading_layer": numba.threading_layer(),
                "numba_max_threads": numba.config.NUMBA_NUM_THREADS}

    return metrics


@PARADIGM.implements("sma", metrics=_metrics("sma_parallel"), settings=THREADS)
def sma(x, window, *, threads=arrays.DEFAULT_THREADS):
    """One chunk of outputs per thread, each reading a (window - 1) halo past its end."""
    x, window, out = arrays.moving_window(x, window)
    with _numba_threads(threads):
        kernels = _kernels()
        kernels.sma_parallel(x, out, window, min(threads, len(out)), kernels.streams(out))
    return out


@PARADIGM.implements("ema", metrics=_metrics("ema_parallel"), settings=THREADS)
def ema(x, alpha, *, threads=arrays.DEFAULT_THREADS):
    """Chunked scan: local EMAs in parallel, carries in order, fix-up in parallel."""
    x, alpha, out = arrays.series(x, alpha)
    with _numba_threads(threads):
        _kernels().ema_parallel(x, out, alpha, min(threads, len(x)))
    return out


@PARADIGM.implements("row_sums", metrics=_metrics("row_sums_parallel"), settings=THREADS)
def row_sums(m, *, threads=arrays.DEFAULT_THREADS):
    """Rows across threads (C order), or a block of rows per thread (F order)."""
    m, transposed, out = arrays.rows_or_columns(m)
    with _numba_threads(threads):
        _kernels().row_sums_parallel(m, out, transposed, min(threads, len(out)))
    return out


@PARADIGM.implements("trig", metrics=_metrics("trig_parallel"), settings=THREADS)
def trig(a, b, *, threads=arrays.DEFAULT_THREADS):
    """prange over the elements in the inputs' memory order."""
    a, b, out, flat_out = arrays.elementwise(a, b)
    with _numba_threads(threads):
        _kernels().trig_parallel(a, b, flat_out)
    return out
