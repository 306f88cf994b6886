"""Simple moving average over the 'valid' windows, with pandas' NaN rule."""

import numpy as np

from factorbench.kernels import Kernel, price_walk, require_int


def reference(x, window):
    # Each window summed on its own: no running sum to drift, NaN only where it lies.
    return np.lib.stride_tricks.sliding_window_view(np.asarray(x, dtype=np.float64), window).mean(axis=1)


def validate(params):
    n = require_int(params, "n", 1)
    require_int(params, "window", 1, n)


def make_args(params, rng):
    return price_walk(rng, params["n"]), params["window"]


def with_nans(x, positions):
    x = x.copy()
    x[list(positions)] = np.nan
    return x


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
)
