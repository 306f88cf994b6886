"""Cython: typed-memoryview loops compiled ahead of time by `pip install` (setup.py).

The kernels are in cython_loops.pyx: bounds and wraparound checks off, the GIL
released in every hot loop, OpenMP `prange` in the cython-prange variants (built with
-fopenmp). The wrappers here hand the kernels contiguous inputs and allocate outputs
with np.empty, as every paradigm does. Without a compiler the extension is not built and
the paradigm is unavailable, saying why.
"""

from factorbench.impls._support import arrays
from factorbench.registry import Paradigm


def _kernels():
    from factorbench.impls._support import cython_loops

    return cython_loops


def _extension_reason() -> str | None:
    try:
        _kernels()
    except ImportError as exc:
        return f"extension not built: {exc} (reinstall with a C compiler: pip install -e .)"
    return None


PARADIGM = Paradigm("cython", "Cython typed memoryviews compiled at install time, GIL released; "
                              "cython-prange: OpenMP threads", rank=40, probe=_extension_reason)
THREADS = {"threads": (arrays.DEFAULT_THREADS,)}


_openmp = {"threads_asked": None, "team_size": None}
"""The last prange call: threads asked and the team OpenMP ran it on (its metrics)."""


def _openmp_metrics():
    return {"openmp_threads_asked": _openmp["threads_asked"], "openmp_team_size": _openmp["team_size"]}


def _prange(kernel, *args, threads):
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    _openmp["threads_asked"] = threads
    _openmp["team_size"] = getattr(_kernels(), kernel)(*args, threads)


@PARADIGM.implements("sma")
def sma(x, window):
    """Running sum, four segments interleaved, re-anchored exactly every segment."""
    x, window, out = arrays.moving_window(x, window)
    _kernels().sma(x, out, window)
    return out


@PARADIGM.implements("sma", name="cython-prange", metrics=_openmp_metrics, settings=THREADS)
def sma_prange(x, window, *, threads=arrays.DEFAULT_THREADS):
    """One chunk of outputs per OpenMP thread, each with a (window - 1) halo."""
    x, window, out = arrays.moving_window(x, window)
    _prange("sma_prange", x, out, window, threads=threads)
    return out


@PARADIGM.implements("ema")
def ema(x, alpha):
    """The recurrence as a C loop."""
    x, alpha, out = arrays.series(x, alpha)
    _kernels().ema(x, out, alpha)
    return out


@PARADIGM.implements("ema", name="cython-prange", metrics=_openmp_metrics, settings=THREADS)
def ema_prange(x, alpha, *, threads=arrays.DEFAULT_THREADS):
    """Chunked scan over OpenMP threads: local EMAs, carries in order, fix-up."""
    x, alpha, out = arrays.series(x, alpha)
    _prange("ema_prange", x, out, alpha, threads=threads)
    return out


@PARADIGM.implements("row_sums")
def row_sums(m):
    """Eight partial sums per row (C order); four columns of the transpose per pass (F order)."""
    m, transposed, out = arrays.rows_or_columns(m)
    _kernels().row_sums(m, out, transposed)
    return out


@PARADIGM.implements("row_sums", name="cython-prange", metrics=_openmp_metrics, settings=THREADS)
def row_sums_prange(m, *, threads=arrays.DEFAULT_THREADS):
    """Rows across OpenMP threads (C order), or a block of rows per thread (F order)."""
    m, transposed, out = arrays.rows_or_columns(m)
    _prange("row_sums_prange", m, out, transposed, threads=threads)
    return out


@PARADIGM.implements("trig")
def trig(a, b):
    """libm sin and cos per element, in the inputs' memory order."""
    a, b, out, flat_out = arrays.elementwise(a, b)
    _kernels().trig(a, b, flat_out)
    return out


def _libmvec_reason() -> str | None:
    try:
        from factorbench.impls._support import cython_libmvec
    except ImportError as exc:
        return (f"libmvec extension not built: {exc} (it needs glibc's libmvec on x86-64 Linux "
                "and a C compiler: pip install -e .)")
    if not cython_libmvec.supported():
        return "this CPU lacks AVX2/FMA, which libmvec's 4-wide sin and cos need"
    return None


def _libmvec_trig(a, b, out, threads):
    from factorbench.impls._support import cython_libmvec

    return cython_libmvec.trig_prange(a, b, out, threads)


def _libmvec_metrics():
    import platform

    version = "".join(platform.libc_ver()[1:])
    return {**_openmp_metrics(), "vector_math": f"glibc libmvec {version}: _ZGVdN4v_sin/_ZGVdN4v_cos (AVX2)"}


@PARADIGM.implements("trig", name="cython-libmvec", metrics=_libmvec_metrics, settings=THREADS,
                     probe=_libmvec_reason)
def trig_libmvec(a, b, *, threads=arrays.DEFAULT_THREADS):
    """glibc's vectorised sin and cos (libmvec AVX2, 4 elements per call) over OpenMP threads.

    Numba's SVML route is closed: Numba 0.62+ ships an LLVM without the SVML patch
    (`numba -s`: "llvmlite Using SVML Patched LLVM: False"), so its loops call scalar libm.
    """
    a, b, out, flat_out = arrays.elementwise(a, b)
    _openmp["threads_asked"] = threads
    _openmp["team_size"] = _libmvec_trig(a, b, flat_out, threads)
    return out


@PARADIGM.implements("trig", name="cython-prange", metrics=_openmp_metrics, settings=THREADS)
def trig_prange(a, b, *, threads=arrays.DEFAULT_THREADS):
    """The same loop as an OpenMP prange."""
    a, b, out, flat_out = arrays.elementwise(a, b)
    _prange("trig_prange", a, b, flat_out, threads=threads)
    return out
