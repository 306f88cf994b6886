"""Exponential moving average: out[0] = x[0], out[i] = alpha*x[i] + (1-alpha)*out[i-1]."""

import numpy as np

from factorbench.kernels import (
    InputClass,
    Kernel,
    check_alpha,
    large_level,
    price_walk,
    read_only,
    require_int,
    vector,
    with_values,
)

INF = np.inf


def reference(x, alpha):
    # The recurrence literally, in float64: it also defines what NaN and infinities give
    # (an infinity stays until an opposite one or a NaN makes NaN; with alpha = 1,
    # 0 * inf makes every output after an infinity NaN).
    x = vector(x)
    alpha = check_alpha(alpha)
    out = np.empty(len(x))
    previous = None
    for i, value in enumerate(x.tolist()):
        previous = value if previous is None else alpha * value + (1.0 - alpha) * previous
        out[i] = previous
    return out


def validate(params):
    require_int(params, "n", 1)
    check_alpha(params["alpha"])


def make_args(params, rng):
    return price_walk(rng, params["n"]), float(params["alpha"])


def check_inputs(rng):
    walk = price_walk(rng, 100_003)
    for n in (1, 2, 3, 1001, 65_537, 100_003):
        yield f"n={n}", (walk[:n].copy(), 0.1)
    yield "alpha=1", (walk[:777].copy(), 1.0)
    yield "alpha=1e-3", (walk[:20_001].copy(), 1e-3)
    yield "alpha=0.9", (walk[:4099].copy(), 0.9)
    nan_first = walk[:300].copy()
    nan_first[0] = np.nan
    yield "NaN first", (nan_first, 0.1)
    nan_middle = walk[:3001].copy()
    nan_middle[1500] = np.nan
    yield "NaN middle", (nan_middle, 0.1)
    yield "strided view", (walk[:8002:2], 0.2)


def _inf(sign):
    def cases(rng):
        # Long inputs: a chunked scan carries the infinity over many chunks, past the
        # point where (1 - alpha) ** k underflows to 0.
        walk = price_walk(rng, 50_001)
        yield "first", (with_values(walk, {0: sign * INF}), 0.1)
        yield "early, long tail", (with_values(walk, {30: sign * INF}), 0.1)
        yield "last", (with_values(walk[:500], {499: sign * INF}), 0.1)
        yield "alpha=1", (with_values(walk[:3000], {10: sign * INF}), 1.0)
        yield "alpha=1e-6", (with_values(walk[:20_000], {5: sign * INF}), 1e-6)
    return cases


def _both_inf(rng):
    walk = price_walk(rng, 50_001)
    yield "+inf then -inf", (with_values(walk, {100: INF, 30_000: -INF}), 0.1)
    yield "-inf then +inf", (with_values(walk[:5000], {7: -INF, 8: INF}), 0.5)
    yield "+inf then NaN", (with_values(walk[:5000], {7: INF, 4000: np.nan}), 0.1)


def _dtypes(rng):
    walk = price_walk(rng, 20_000)
    yield "float32", (walk.astype(np.float32), 0.1)
    yield "int64 cents", ((walk * 100).astype(np.int64), 0.1)
    yield "int32", ((walk * 100).astype(np.int32)[:1000], 0.3)
    yield "bool", (walk[:200] > 100.0, 0.2)
    yield "numpy float32 alpha", (walk[:300].copy(), np.float32(0.25))


def _array_likes(rng):
    walk = price_walk(rng, 2000)
    yield "list", (walk.tolist(), 0.1)
    yield "tuple", (tuple(walk[:300].tolist()), 0.2)
    yield "list of ints", ([int(v) for v in walk[:300] * 100], 0.2)
    import pandas

    yield "pandas Series", (pandas.Series(walk, index=np.arange(5, 2005)), 0.1)


def _read_only(rng):
    walk = price_walk(rng, 20_000)
    yield "read-only", (read_only(walk), 0.1)
    yield "read-only view", (read_only(walk)[::2], 0.2)


def _views(rng):
    walk = price_walk(rng, 60_000)
    yield "reversed", (walk[::-1], 0.1)
    yield "stride 3", (walk[::3], 0.1)
    yield "column of a C matrix", (walk[:30_000].reshape(-1, 3)[:, 1], 0.1)
    yield "row of an F matrix", (np.asfortranarray(walk[:30_000].reshape(3, -1))[2], 0.1)


def _large_level(rng):
    yield "1e12 + moves of 1", (large_level(rng, 100_000), 0.1)
    yield "1e12, alpha=1e-3", (large_level(rng, 20_000), 1e-3)


def _extreme_parameters(rng):
    walk = price_walk(rng, 100_000)
    yield "alpha=1, long", (walk.copy(), 1.0)
    yield "alpha=1e-6, long", (walk.copy(), 1e-6)
    yield "alpha=1e-6, n=1", (walk[:1].copy(), 1e-6)
    yield "alpha=0.999999", (walk[:5000].copy(), 0.999999)


def _empty(rng):
    yield "empty array", (np.array([]), 0.1)
    yield "empty list", ([], 0.5)


def _bad_parameters(rng):
    walk = price_walk(rng, 10)
    yield "alpha=0", (walk.copy(), 0.0)
    yield "alpha=1.5", (walk.copy(), 1.5)
    yield "alpha=NaN", (walk.copy(), float("nan"))
    yield "alpha='0.1'", (walk.copy(), "0.1")


def _wrong_dimensions(rng):
    walk = price_walk(rng, 40)
    yield "matrix", (walk.reshape(4, 10), 0.1)
    yield "scalar", (np.float64(100.0), 0.1)
    yield "strings", (np.array(["1.0", "2.0", "3.0"]), 0.1)


CLASSES = (
    InputClass("+inf", "+inf", "the recurrence: +inf stays +inf to the end (with alpha = 1, 0 * inf makes "
                               "the rest NaN)", _inf(1)),
    InputClass("-inf", "-inf", "the recurrence: -inf stays -inf to the end (alpha = 1: NaN after it)", _inf(-1)),
    InputClass("+inf and -inf", "±inf", "the recurrence: NaN from the second infinity (or a NaN) on", _both_inf),
    InputClass("dtypes", "dtyp", "float32, integer and bool input computed in float64; output float64", _dtypes),
    InputClass("array-likes", "list", "lists, tuples and pandas Series (positions, not labels) as arrays",
               _array_likes),
    InputClass("read-only", "ro", "read-only arrays are read, never written", _read_only),
    InputClass("views", "view", "reversed, strided and column views: the values as they appear", _views),
    InputClass("large level", "1e12", "1e12 plus moves of 1: the recurrence within the kernel's tolerance",
               _large_level),
    InputClass("extreme parameters", "parm", "alpha 1 is x itself; alpha 1e-6 barely leaves x[0]",
               _extreme_parameters),
    InputClass("empty", "empt", "ValueError: x is empty", _empty),
    InputClass("bad parameters", "bad", "ValueError: alpha must be a number with 0 < alpha <= 1", _bad_parameters),
    InputClass("wrong dimensions", "ndim", "ValueError: x must be one-dimensional (of real numbers)",
               _wrong_dimensions),
)


KERNEL = Kernel(
    name="ema",
    signature="ema(x, alpha) -> out[i] = alpha*x[i] + (1-alpha)*out[i-1], out[0] = x[0]",
    summary="exponential moving average, a loop-carried recurrence (0 < alpha <= 1)",
    defaults={"n": 10_000_000, "alpha": 0.1},
    quick={"n": 1_000_000},
    size_param="n",
    make_args=make_args,
    reference=reference,
    check_inputs=check_inputs,
    elements=lambda p: p["n"],
    bytes_moved=lambda p: 16 * p["n"],
    output_bytes=lambda p: 8 * p["n"],
    validate=validate,
    rtol=1e-12,
    trial={"n": 4000},
    classes=CLASSES,
    # the reference loop takes 0.2-0.5 s per million values here
    trusted="vectorized",
    reference_elements=2_000_000,
)
