"""What a user would otherwise reach for: the baselines in every table.

The wrappers apply the kernels' input rules (the same ValueError as every paradigm) and
then hand the input to the library as it came: its dtype and values are the library's
to handle, and where it deviates from the kernel's semantics the correctness matrix
shows it (these baselines are not ours to fix).
"""

import numpy as np

from factorbench.impls._support import arrays
from factorbench.registry import Paradigm

PARADIGM = Paradigm("library", "an existing library's function (bottleneck, pandas)", rank=90,
                    baseline_library=True)


@PARADIGM.implements("sma", name="bottleneck", requires=["bottleneck"])
def sma_bottleneck(x, window):
    """bottleneck.move_mean (C running sum with a NaN count), valid part only."""
    import bottleneck

    x = np.asarray(x)
    _, window = arrays.window_input(x, window)
    return bottleneck.move_mean(x, window, min_count=window)[window - 1:]


@PARADIGM.implements("sma", name="pandas-rolling", requires=["pandas"])
def sma_pandas(x, window):
    """pandas.Series.rolling(window).mean(), valid part only."""
    import pandas

    x = np.asarray(x)
    _, window = arrays.window_input(x, window)
    return pandas.Series(x).rolling(window).mean().to_numpy()[window - 1:]


@PARADIGM.implements("ema", name="pandas-ewm", requires=["pandas"])
def ema_pandas(x, alpha):
    """pandas.Series.ewm(alpha, adjust=False).mean(), NaN carried forward as ours.

    pandas skips NaN inside ewm and keeps the last value; the recurrence makes every
    output from the first NaN on NaN, so that tail is set after the call.
    """
    import pandas

    x = np.asarray(x)
    _, alpha = arrays.alpha_input(x, alpha)
    out = pandas.Series(x).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    nan_at = np.flatnonzero(np.isnan(x))
    if nan_at.size:
        out = out.copy()  # pandas hands out a read-only view of its buffer
        out[nan_at[0]:] = np.nan
    return out
