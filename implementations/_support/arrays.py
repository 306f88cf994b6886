"""Input layouts for the compiled paradigms (Cython, Numba).

Compiled kernels are written for contiguous float64 data, one layout each, so that a
JIT compiles one signature per kernel (its whole cost lands in the gate's cold call)
and loops walk memory in order. These helpers hand them a contiguous view when one
exists and copy only inputs that have none (strided views).
"""

import os

import numpy as np

DEFAULT_THREADS = int(os.environ.get("NUMBA_NUM_THREADS", 0)) or len(os.sched_getaffinity(0))
"""Threads a parallel implementation uses when the run names none: the CPUs this process
may use (Numba's own default, which NUMBA_NUM_THREADS overrides)."""


def vector(x) -> np.ndarray:
    """x as a contiguous float64 vector (a copy only when x is strided or another dtype)."""
    return np.ascontiguousarray(x, dtype=np.float64)


def rows_or_columns(m) -> tuple[np.ndarray, bool, np.ndarray]:
    """(C-contiguous 2-D array, transposed, output) for a row-sum kernel: an F-ordered m
    comes as its transpose (a view), whose columns the kernel sums; a strided m is copied."""
    if m.ndim != 2:
        raise ValueError(f"m must be a matrix, got shape {m.shape}")
    out = np.empty(m.shape[0])
    if m.dtype == np.float64 and m.flags.f_contiguous and not m.flags.c_contiguous:
        return m.T, True, out
    return np.ascontiguousarray(m, dtype=np.float64), False, out


def elementwise(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(flat a, flat b, output, flat output view) for an elementwise kernel on a and b.

    When both inputs share the C or F layout their flat views are used and the output
    takes that layout too; otherwise both are copied to C order.
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    order = "C"
    if all(v.dtype == np.float64 and v.flags.f_contiguous and not v.flags.c_contiguous for v in (a, b)):
        order = "F"
    a, b = (np.asarray(v, dtype=np.float64, order=order) for v in (a, b))
    out = np.empty(a.shape, order=order)
    return a.ravel(order="K"), b.ravel(order="K"), out, out.ravel(order="K")


def moving_window(x, window) -> tuple[np.ndarray, int, np.ndarray]:
    """(contiguous x, window, output) for a moving-window kernel; checked here because
    compiled loops do not check their indices."""
    x = vector(x)
    if x.ndim != 1:
        raise ValueError(f"x must be one-dimensional, got shape {x.shape}")
    window = int(window)
    if not 1 <= window <= len(x):
        raise ValueError(f"window must be between 1 and len(x) = {len(x)}, got {window}")
    return x, window, np.empty(len(x) - window + 1)


def series(x) -> tuple[np.ndarray, np.ndarray]:
    """(contiguous x, output) for a recurrence over a non-empty vector."""
    x = vector(x)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"x must be a non-empty vector, got shape {x.shape}")
    return x, np.empty(len(x))
