"""Vectorised NumPy (and SciPy where NumPy has no correct array form)."""

import numpy as np

from factorbench.impls._support import arrays, scan
from factorbench.registry import Paradigm

PARADIGM = Paradigm("vectorized", "whole-array NumPy operations, no Python loop over elements", rank=10)


@PARADIGM.implements("sma", name="vectorized-convolve")
def sma_convolve(x, window):
    """np.convolve with a box filter (direct sums: a NaN touches only its windows)."""
    x, window = arrays.window_input(x, window)
    return np.convolve(x, np.full(window, 1.0 / window), mode="valid")


@PARADIGM.implements("sma", name="vectorized-cumsum")
def sma_cumsum(x, window):
    """Difference of a cumulative sum, centred to keep float64 precision; NaN and
    infinities counted per window by cumulative counts of their own."""
    x, window = arrays.window_input(x, window)
    finite = np.isfinite(x)
    # Centring on one value keeps the running total small, so differences of it keep
    # full precision over 10M points. Non-finite values are summed as 0: one of them in
    # a running total would spoil every later difference (inf - inf is NaN).
    anchor = x[finite][0] if finite.any() else 0.0
    centred = np.where(finite, x - anchor, 0.0)
    total = np.concatenate(([0.0], np.cumsum(centred)))
    sums = total[window:] - total[:-window]
    out = sums / window + anchor
    if not finite.all():
        def in_window(mask):
            count = np.concatenate(([0], np.cumsum(mask)))
            return (count[window:] - count[:-window]) > 0

        plus, minus = in_window(x == np.inf), in_window(x == -np.inf)
        out[plus] = np.inf
        out[minus] = -np.inf
        # a window holding both infinities, or a NaN, averages to NaN
        out[(plus & minus) | in_window(np.isnan(x))] = np.nan
    return out


@PARADIGM.implements("ema", requires=["scipy"])
def ema_lfilter(x, alpha):
    """scipy.signal.lfilter as a first-order IIR filter.

    NumPy alone has no correct form: the closed form via cumprod of (1-alpha) underflows
    after a few thousand points (0.9**7000 == 0), so the recurrence must stay a recurrence.
    """
    x, alpha = arrays.alpha_input(x, alpha)
    return scan.local_scan(x, alpha, first=True)


@PARADIGM.implements("row_sums")
def row_sums(m):
    """m.sum(axis=1)."""
    return arrays.matrix(m).sum(axis=1)


@PARADIGM.implements("row_sums", name="vectorized-matvec")
def row_sums_matvec(m):
    """m @ ones: BLAS gemv, which walks either layout in its best order."""
    m = arrays.matrix(m)
    return m @ np.ones(m.shape[1])


@PARADIGM.implements("trig")
def trig(a, b):
    """np.sin(a)**2 + np.cos(b)**2 (four temporaries)."""
    a, b = arrays.pair(a, b)
    with np.errstate(invalid="ignore"):  # sin(inf) is NaN, as it should be
        return np.sin(a) ** 2 + np.cos(b) ** 2


@PARADIGM.implements("gram_colsum")
def gram_colsum(x):
    """(x.T @ x).sum(axis=0) through BLAS."""
    x = arrays.matrix(x, "x")
    with np.errstate(invalid="ignore"):
        return (x.T @ x).sum(axis=0)


@PARADIGM.implements("gram_colsum", name="vectorized-reassociated")
def gram_colsum_reassociated(x):
    """x.T @ x.sum(axis=1): the same sums without forming the cols x cols Gram matrix.

    For finite x only: with infinities the two orders meet inf - inf in different places,
    so such an x takes the direct form, whose float64 result the kernel defines.
    """
    x = arrays.matrix(x, "x")
    if not np.isfinite(x).all():
        return gram_colsum(x)
    return x.T @ x.sum(axis=1)
