"""Input rules and layouts shared by the paradigms.

Every implementation starts from one of the checks here, so each refuses a bad input
with the same ValueError as the kernel's reference (the rules are the kernel package's:
factorbench.kernels.vector, matrix, check_window, check_alpha) and accepts what the
reference accepts: lists and other array-likes, integer, bool and float32 values
(computed in float64), read-only arrays and views.

Compiled kernels (Cython, Numba) are written for contiguous float64 data, one layout
each, so that a JIT compiles one signature per kernel (its whole cost lands in the gate's
cold call) and loops walk memory in order. The layout helpers hand them a contiguous
view when one exists and copy only inputs that have none (strided views).
"""

import os

import numpy as np

from factorbench.kernels import check_alpha, check_window
from factorbench.kernels import matrix as matrix
from factorbench.kernels import vector as checked_vector
from factorbench.kernels.trig import pair as pair

DEFAULT_THREADS = int(os.environ.get("NUMBA_NUM_THREADS", 0)) or len(os.sched_getaffinity(0))
"""Threads a parallel implementation uses when the run names none: the CPUs this process
may use (Numba's own default, which NUMBA_NUM_THREADS overrides)."""

def window_input(x, window) -> tuple[np.ndarray, int]:
    """(float64 vector, window) for a moving-window kernel, checked."""
    x = checked_vector(x)
    return x, check_window(window, len(x))


def alpha_input(x, alpha) -> tuple[np.ndarray, float]:
    """(float64 vector, alpha) for a recurrence, checked."""
    return checked_vector(x), check_alpha(alpha)


def vector(x) -> np.ndarray:
    """x as a contiguous float64 vector (a copy only when x is strided or another dtype)."""
    return np.ascontiguousarray(x, dtype=np.float64)


def rows_or_columns(m) -> tuple[np.ndarray, bool, np.ndarray]:
    """(C-contiguous 2-D array, transposed, output) for a row-sum kernel: an F-ordered m
    comes as its transpose (a view), whose columns the kernel sums; a strided m is copied."""
    m = matrix(m)
    out = np.empty(m.shape[0])
    if m.flags.f_contiguous and not m.flags.c_contiguous:
        return m.T, True, out
    return np.ascontiguousarray(m), False, out


def elementwise(a, b) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(flat a, flat b, output, flat output view) for an elementwise kernel on a and b.

    When both inputs share the C or F layout their flat views are used and the output
    takes that layout too; otherwise both are copied to C order.
    """
    a, b = pair(a, b)
    order = "C"
    if all(v.flags.f_contiguous and not v.flags.c_contiguous for v in (a, b)):
        order = "F"
    a, b = (np.asarray(v, order=order) for v in (a, b))
    out = np.empty(a.shape, order=order)
    return a.ravel(order="K"), b.ravel(order="K"), out, out.ravel(order="K")


def moving_window(x, window) -> tuple[np.ndarray, int, np.ndarray]:
    """(contiguous x, window, output) for a moving-window kernel; checked here because
    compiled loops do not check their indices."""
    x, window = window_input(x, window)
    return vector(x), window, np.empty(len(x) - window + 1)


def series(x, alpha) -> tuple[np.ndarray, float, np.ndarray]:
    """(contiguous x, alpha, output) for a recurrence over a non-empty vector."""
    x, alpha = alpha_input(x, alpha)
    return vector(x), alpha, np.empty(len(x))
