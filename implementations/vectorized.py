"""Vectorised NumPy (and SciPy where NumPy has no correct array form)."""

import numpy as np

from factorbench import Paradigm

PARADIGM = Paradigm("vectorized", "whole-array NumPy operations, no Python loop over elements", rank=10)


@PARADIGM.implements("sma", name="vectorized-convolve")
def sma_convolve(x, window):
    """np.convolve with a box filter (direct sums: a NaN touches only its windows)."""
    return np.convolve(x, np.full(window, 1.0 / window), mode="valid")


@PARADIGM.implements("sma", name="vectorized-cumsum")
def sma_cumsum(x, window):
    """Difference of a cumulative sum, NaN-safe and centred to keep float64 precision."""
    x = np.asarray(x, dtype=np.float64)
    nan = np.isnan(x)
    # Centring on one value keeps the running total small, so differences of it keep
    # full precision over 10M points; NaNs are summed as 0 and counted separately.
    anchor = x[~nan][0] if not nan.all() else 0.0
    centred = np.where(nan, 0.0, x - anchor)
    total = np.concatenate(([0.0], np.cumsum(centred)))
    sums = total[window:] - total[:-window]
    out = sums / window + anchor
    if nan.any():
        nan_count = np.concatenate(([0], np.cumsum(nan)))
        out[(nan_count[window:] - nan_count[:-window]) > 0] = np.nan
    return out


@PARADIGM.implements("ema", requires=["scipy"])
def ema_lfilter(x, alpha):
    """scipy.signal.lfilter as a first-order IIR filter.

    NumPy alone has no correct form: the closed form via cumprod of (1-alpha) underflows
    after a few thousand points (0.9**7000 == 0), so the recurrence must stay a recurrence.
    """
    from scipy.signal import lfilter

    x = np.asarray(x, dtype=np.float64)
    initial = np.array([(1.0 - alpha) * x[0]])
    return lfilter([alpha], [1.0, alpha - 1.0], x, zi=initial)[0]


@PARADIGM.implements("row_sums")
def row_sums(m):
    """m.sum(axis=1)."""
    return m.sum(axis=1)


@PARADIGM.implements("row_sums", name="vectorized-matvec")
def row_sums_matvec(m):
    """m @ ones: BLAS gemv, which walks either layout in its best order."""
    return m @ np.ones(m.shape[1])


@PARADIGM.implements("trig")
def trig(a, b):
    """np.sin(a)**2 + np.cos(b)**2 (four temporaries)."""
    return np.sin(a) ** 2 + np.cos(b) ** 2


@PARADIGM.implements("gram_colsum")
def gram_colsum(x):
    """(x.T @ x).sum(axis=0) through BLAS."""
    return (x.T @ x).sum(axis=0)


@PARADIGM.implements("gram_colsum", name="vectorized-reassociated")
def gram_colsum_reassociated(x):
    """x.T @ x.sum(axis=1): the same sums without forming the cols x cols Gram matrix."""
    return x.T @ x.sum(axis=1)
