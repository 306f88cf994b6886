"""The EMA as a chunked scan in NumPy/SciPy, shared by the vectorized, multiprocessing and
Dask paradigms.

Each chunk is scanned on its own (``local_scan``); the true value just before a chunk
(its carry) then enters as ``carry * (1 - alpha) ** (j + 1)`` at position j
(``add_carry``), and carries chain from chunk to chunk (``decayed``). Infinities need care:
the powers of (1 - alpha) underflow to 0 over a few thousand steps, but are never 0 in
the recurrence, so an infinite carry stays infinite to the chunk's end instead of
turning into inf * 0 = NaN (or being dropped where the power is 0). With alpha = 1 the
recurrence itself computes 0 * inf = NaN, and so do these.
"""

import math

import numpy as np


def local_scan(x: np.ndarray, alpha: float, first: bool) -> np.ndarray:
    """The EMA of one chunk from a zero state; the first chunk from out[0] = x[0], so final.

    lfilter runs y = alpha*x + (1-alpha)*y_prev, the recurrence's own arithmetic, up to
    the first non-finite value; the first chunk enters it after x[0] with exactly the
    recurrence's second term. From a non-finite value on the recurrence's outputs are
    known without arithmetic (see ``after_nonfinite``): lfilter would make NaN of an
    infinite input (its zero-padded numerator computes 0 * inf).
    """
    from scipy.signal import lfilter

    coefficients = ([alpha], [1.0, alpha - 1.0])
    out = np.empty(len(x))
    finite = np.isfinite(x)
    stop = len(x) if finite.all() else int(np.argmin(finite))
    if first and stop > 0:
        out[0] = x[0]
        out[1:stop] = lfilter(*coefficients, x[1:stop], zi=np.array([(1.0 - alpha) * x[0]]))[0]
    elif stop > 0:
        out[:stop] = lfilter(*coefficients, x[:stop])
    if stop < len(x):
        out[stop:] = after_nonfinite(x[stop:], alpha)
    return out


def after_nonfinite(rest: np.ndarray, alpha: float) -> np.ndarray:
    """The recurrence's outputs from a non-finite rest[0] on, whatever came before (finite):
    NaN stays NaN; an infinity stays while alpha < 1 until a NaN or the opposite infinity
    makes NaN for good; with alpha = 1 the next output is already 0 * inf = NaN."""
    out = np.full(len(rest), np.nan)
    start = rest[0]
    if np.isnan(start):
        return out
    spoiled = np.isnan(rest) | (rest == -start)
    spoiled[0] = False
    stop = (int(np.argmax(spoiled)) if spoiled.any() else len(rest)) if alpha < 1.0 else 1
    out[:stop] = start
    return out


def decayed(carry: float, alpha: float, steps: int) -> float:
    """carry * (1 - alpha) ** steps, with an infinite carry kept while alpha < 1."""
    if math.isinf(carry) and alpha < 1.0:
        return carry
    return carry * (1.0 - alpha) ** steps


def reach(alpha: float) -> int:
    """Steps after which a finite carry's term carry * (1 - alpha) ** k is exactly 0.0."""
    if alpha >= 1.0:
        return 0
    return math.ceil(math.log(math.ulp(0.0)) / math.log1p(-alpha)) + 2


def add_carry(scan: np.ndarray, alpha: float, carry: float) -> None:
    """In place: turn a chunk's local scan into the true EMA, given the true value just
    before it. A finite carry touches only the prefix its decay has not underflowed in;
    a NaN reaches the chunk's end, as NaN does in the recurrence."""
    if math.isinf(carry) and alpha < 1.0:
        with np.errstate(invalid="ignore"):  # inf + -inf is the NaN the recurrence gives
            scan += carry
        return
    length = min(scan.size, reach(alpha)) if math.isfinite(carry) else scan.size
    scan[:length] += carry * np.power(1.0 - alpha, np.arange(1, length + 1, dtype=np.float64))


def carries(chunk_ends: list[float], lengths: list[int], alpha: float) -> list[float]:
    """The true EMA just before each chunk after the first, chained through the chunks'
    local ends (the first chunk's end is final)."""
    out, previous = [], chunk_ends[0]
    for end, length in zip(chunk_ends[1:], lengths[1:]):
        out.append(previous)
        previous = end + decayed(previous, alpha, length)
    return out
