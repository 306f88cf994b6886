"""Simple moving average over the 'valid' windows, with pandas' NaN rule."""

import numpy as np

from factorbench.kernels import (
    InputClass,
    Kernel,
    check_window,
    large_level,
    price_walk,
    read_only,
    require_int,
    vector,
    with_values,
)

INF = np.inf


def reference(x, window):
    # Each window summed on its own: no running sum to drift; NaN and infinities reach
    # exactly the windows holding them, as float64 addition gives.
    x = vector(x)
    window = check_window(window, len(x))
    return np.lib.stride_tricks.sliding_window_view(x, window).mean(axis=1)


def validate(params):
    n = require_int(params, "n", 1)
    require_int(params, "window", 1, n)


def make_args(params, rng):
    return price_walk(rng, params["n"]), params["window"]


def with_nans(x, positions):
    return with_values(x, dict.fromkeys(positions, np.nan))


def check_inputs(rng):
    walk = price_walk(rng, 100_003)
    yield "n=1 window=1", (walk[:1].copy(), 1)
    yield "window=1", (walk[:1000].copy(), 1)
    yield "n == window", (walk[:20].copy(), 20)
    yield "odd n", (walk[:1001].copy(), 7)
    yield "long n", (walk.copy(), 20)
    yield "level 1e5", (walk[:5000] * 1000.0, 50)
    yield "NaN first", (with_nans(walk[:500], [0]), 20)
    yield "NaN middle", (with_nans(walk[:500], [250]), 20)
    yield "NaN last", (with_nans(walk[:500], [499]), 20)
    yield "NaNs close", (with_nans(walk[:500], [100, 104, 300]), 10)
    yield "NaN then long tail", (with_nans(walk[:50_000], [10]), 20)
    yield "strided view", (walk[:4000:2], 13)


def _inf(sign):
    def cases(rng):
        walk = price_walk(rng, 40_000)
        yield "first", (with_values(walk[:500], {0: sign * INF}), 20)
        yield "middle, long tail", (with_values(walk, {37: sign * INF}), 20)
        yield "last", (with_values(walk[:500], {499: sign * INF}), 20)
        yield "window=1", (with_values(walk[:100], {50: sign * INF}), 1)
        yield "two, n == window", (with_values(walk[:30], {3: sign * INF, 9: sign * INF}), 30)
    return cases


def _both_inf(rng):
    walk = price_walk(rng, 40_000)
    yield "one window", (with_values(walk, {100: INF, 110: -INF}), 20)
    yield "windows apart", (with_values(walk[:500], {100: INF, 300: -INF}), 20)
    yield "with NaN", (with_values(walk[:500], {100: INF, 105: np.nan, 200: -INF}), 10)


def _dtypes(rng):
    walk = price_walk(rng, 20_000)
    yield "float32", (walk.astype(np.float32), 20)
    yield "int64 cents", ((walk * 100).astype(np.int64), 20)
    yield "int32", ((walk * 100).astype(np.int32)[:1000], 7)
    yield "bool", (walk[:200] > 100.0, 5)


def _array_likes(rng):
    walk = price_walk(rng, 2000)
    yield "list", (walk.tolist(), 20)
    yield "tuple", (tuple(walk[:300].tolist()), 7)
    yield "list of ints", ([int(v) for v in walk[:300] * 100], 7)
    import pandas

    yield "pandas Series", (pandas.Series(walk, index=np.arange(5, 2005)), 20)


def _read_only(rng):
    walk = price_walk(rng, 20_000)
    yield "read-only", (read_only(walk), 20)
    yield "read-only view", (read_only(walk)[::2], 9)


def _views(rng):
    walk = price_walk(rng, 60_000)
    yield "reversed", (walk[::-1], 20)
    yield "stride 3", (walk[::3], 20)
    yield "column of a C matrix", (walk[:30_000].reshape(-1, 3)[:, 1], 15)
    yield "row of an F matrix", (np.asfortranarray(walk[:30_000].reshape(3, -1))[2], 15)


def _large_level(rng):
    yield "1e12 + moves of 1", (large_level(rng, 100_000), 20)
    yield "1e12, window 1000", (large_level(rng, 20_000), 1000)


def _extreme_parameters(rng):
    walk = price_walk(rng, 70_001)
    yield "window=1, long", (walk.copy(), 1)
    yield "window=n, long", (walk.copy(), len(walk))
    yield "window=n-1", (walk[:5000].copy(), 4999)
    yield "numpy integer window", (walk[:100].copy(), np.int32(9))


def _empty(rng):
    yield "empty array", (np.array([]), 1)
    yield "empty list", ([], 3)


def _too_short(rng):
    walk = price_walk(rng, 10)
    yield "window > n", (walk.copy(), 11)
    yield "n=1, window=2", (walk[:1].copy(), 2)


def _bad_parameters(rng):
    walk = price_walk(rng, 10)
    yield "window=0", (walk.copy(), 0)
    yield "window=-1", (walk.copy(), -1)
    yield "window=2.5", (walk.copy(), 2.5)


def _wrong_dimensions(rng):
    walk = price_walk(rng, 40)
    yield "matrix", (walk.reshape(4, 10), 3)
    yield "scalar", (np.float64(100.0), 1)
    yield "strings", (np.array(["1.0", "2.0", "3.0"]), 2)


CLASSES = (
    InputClass("+inf", "+inf", "a window holding +inf averages to +inf; windows without it are finite", _inf(1)),
    InputClass("-inf", "-inf", "a window holding -inf averages to -inf; windows without it are finite", _inf(-1)),
    InputClass("+inf and -inf", "±inf", "a window holding both (or NaN) is NaN; later windows are finite again",
               _both_inf),
    InputClass("dtypes", "dtyp", "float32, integer and bool input computed in float64; output float64", _dtypes),
    InputClass("array-likes", "list", "lists, tuples and pandas Series (positions, not labels) as arrays",
               _array_likes),
    InputClass("read-only", "ro", "read-only arrays are read, never written", _read_only),
    InputClass("views", "view", "reversed, strided and column views: the values as they appear", _views),
    InputClass("large level", "1e12", "1e12 plus moves of 1: each mean within 0.05 of the direct window "
                                      "sum (a running sum must not lose the moves' digits)", _large_level,
               rtol=0.0, atol=0.05),
    InputClass("extreme parameters", "parm", "window 1 is x itself, window n one mean of all", _extreme_parameters),
    InputClass("empty", "empt", "ValueError: x is empty", _empty),
    InputClass("too short", "shrt", "ValueError: window must be between 1 and len(x)", _too_short),
    InputClass("bad parameters", "bad", "ValueError naming the window and what is allowed", _bad_parameters),
    InputClass("wrong dimensions", "ndim", "ValueError: x must be one-dimensional (of real numbers)",
               _wrong_dimensions),
)


KERNEL = Kernel(
    name="sma",
    signature="sma(x, window) -> x[i:i+window].mean() for each valid i",
    summary="simple moving average; NaN makes exactly the windows containing it NaN",
    defaults={"n": 10_000_000, "window": 20},
    quick={"n": 1_000_000},
    size_param="n",
    make_args=make_args,
    reference=reference,
    check_inputs=check_inputs,
    elements=lambda p: p["n"],
    bytes_moved=lambda p: 8 * p["n"] + 8 * (p["n"] - p["window"] + 1),
    output_bytes=lambda p: 8 * (p["n"] - p["window"] + 1),
    validate=validate,
    rtol=1e-9,
    trial={"n": 4000},
    classes=CLASSES,
)
