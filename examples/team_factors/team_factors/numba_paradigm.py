"""The team's Numba code, compiled on first call (so this module loads without Numba)."""

from functools import cache

import numpy as np

from factorbench import Paradigm

PARADIGM = Paradigm("team-numba", "the team's @njit loops", requires=["numba"])


@cache
def _loops():
    from numba import njit

    @njit(cache=True)
    def zscore(x, window, out):
        for j in range(out.shape[0]):
            total = 0.0
            for k in range(j, j + window):
                total += x[k]
            mean = total / window
            squares = 0.0
            for k in range(j, j + window):
                squares += (x[k] - mean) ** 2
            out[j] = (x[j + window - 1] - mean) / np.sqrt(squares / window)

    @njit(cache=True)
    def ema(x, alpha, out):
        previous = x[0]
        out[0] = previous
        for i in range(1, x.shape[0]):
            previous = alpha * x[i] + (1.0 - alpha) * previous
            out[i] = previous

    return zscore, ema


@PARADIGM.implements("zscore")
def zscore(x, window):
    """Two passes over each window in a compiled loop."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty(x.shape[0] - window + 1)
    _loops()[0](x, int(window), out)
    return out


@PARADIGM.implements("ema")
def ema(x, alpha):
    """The team's own EMA, next to factorbench's: the recurrence as a compiled loop."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty(x.shape[0])
    _loops()[1](x, float(alpha), out)
    return out
