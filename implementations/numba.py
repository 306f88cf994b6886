"""Numba @njit: plain loops compiled by LLVM, one thread.

The kernels live in numba_loops (imported on the first call, so this module loads
without Numba). Outputs are allocated here with np.empty, as in every paradigm. They are
compiled with cache=True: the gate's cold call (cold_call_s) is the compile in the first
process after a change and a cache load after that; metrics say which it was.
"""

from factorbench import Paradigm
from factorbench.impls._support import arrays

PARADIGM = Paradigm("numba", "@njit loops compiled by LLVM, one thread, cache=True",
                    rank=45, requires=["numba"])


def _kernels():
    from factorbench.impls._support import numba_loops

    return numba_loops


def _compile_metrics(name: str):
    return lambda: _kernels().compile_metrics(getattr(_kernels(), name))


@PARADIGM.implements("sma", metrics=_compile_metrics("sma"))
def sma(x, window):
    """Running sum, eight outputs a step as a vector prefix sum, re-anchored exactly every segment."""
    x, window, out = arrays.moving_window(x, window)
    kernels = _kernels()
    kernels.sma(x, out, window, kernels.streams(out))
    return out


@PARADIGM.implements("ema", metrics=_compile_metrics("ema"))
def ema(x, alpha):
    """The recurrence as a compiled loop."""
    x, alpha, out = arrays.series(x, alpha)
    _kernels().ema(x, out, alpha)
    return out


@PARADIGM.implements("row_sums", metrics=_compile_metrics("row_sums"))
def row_sums(m):
    """Eight partial sums per row (C order); four columns of the transpose per pass (F order)."""
    m, transposed, out = arrays.rows_or_columns(m)
    _kernels().row_sums(m, out, transposed)
    return out


@PARADIGM.implements("trig", metrics=_compile_metrics("trig"))
def trig(a, b):
    """math.sin and math.cos per element, in the inputs' memory order."""
    a, b, out, flat_out = arrays.elementwise(a, b)
    _kernels().trig(a, b, flat_out)
    return out
