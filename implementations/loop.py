"""Plain Python loops: the baseline every speed-up is measured against."""

import math

import numpy as np

from factorbench.impls._support import arrays
from factorbench.registry import Paradigm

PARADIGM = Paradigm("loop", "pure Python loops over the elements (the article's ma_loop)", rank=0)


@PARADIGM.implements("sma")
def sma(x, window):
    """Slice and mean per window, as the article's ma_loop."""
    x, window = arrays.window_input(x, window)
    result = np.empty(len(x) - window + 1)
    for i in range(len(result)):
        result[i] = x[i:i + window].mean()
    return result


@PARADIGM.implements("ema")
def ema(x, alpha):
    """The recurrence, one element at a time."""
    x, alpha = arrays.alpha_input(x, alpha)
    values = x.tolist()
    out = np.empty(len(values))
    previous = values[0]
    out[0] = previous
    for i in range(1, len(values)):
        previous = alpha * values[i] + (1.0 - alpha) * previous
        out[i] = previous
    return out


@PARADIGM.implements("row_sums")
def row_sums(m):
    """Indexes every element of every row."""
    m = arrays.matrix(m)
    rows, cols = m.shape
    out = np.empty(rows)
    for i in range(rows):
        total = 0.0
        for j in range(cols):
            total += m[i, j]
        out[i] = total
    return out


@PARADIGM.implements("trig")
def trig(a, b):
    """math.sin and math.cos per element."""
    a, b = arrays.pair(a, b)
    rows, cols = a.shape
    out = np.empty((rows, cols))
    for i in range(rows):
        for j in range(cols):
            out[i, j] = _sin(a[i, j]) ** 2 + _cos(b[i, j]) ** 2
    return out


def _sin(value: float) -> float:
    # math.sin(inf) raises; float64 arithmetic (and NumPy) gives NaN
    return math.sin(value) if not math.isinf(value) else math.nan


def _cos(value: float) -> float:
    return math.cos(value) if not math.isinf(value) else math.nan


@PARADIGM.implements("gram_colsum")
def gram_colsum(x):
    """Accumulates x[r, i] * x[r, j] into the column sums, row by row."""
    x = arrays.matrix(x, "x")
    cols = x.shape[1]
    values = x.tolist()
    sums = [0.0] * cols
    for row in values:
        for j in range(cols):
            row_j = row[j]
            for i in range(cols):
                sums[j] += row[i] * row_j
    return np.array(sums)
