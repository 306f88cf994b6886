"""Rolling z-score: how far the latest price sits from its window's mean, in window
standard deviations (population). out[j] = (x[j+w-1] - mean(x[j:j+w])) / std(x[j:j+w]),
one value per full window, so len(out) = n - window + 1."""

import math

import numpy as np

from factorbench import Kernel, price_walk, require_int


def reference(x, window):
    """Two passes per window with exactly rounded sums: slow, obviously right."""
    values = np.asarray(x, dtype=np.float64).tolist()
    out = np.empty(len(values) - window + 1)
    for j in range(len(out)):
        chunk = values[j:j + window]
        mean = math.fsum(chunk) / window
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in chunk) / window)
        out[j] = (chunk[-1] - mean) / std
    return out


def validate(params):
    window = require_int(params, "window", 2)
    require_int(params, "n", window)


def make_args(params, rng):
    return price_walk(rng, params["n"]), int(params["window"])


def check_inputs(rng):
    walk = price_walk(rng, 20_011)
    for n in (20, 21, 1001, 20_011):
        yield f"n={n}", (walk[:n].copy(), 20)
    yield "window=2", (walk[:500].copy(), 2)
    yield "window=n", (walk[:257].copy(), 257)
    with_nan = walk[:3001].copy()
    with_nan[1500] = np.nan
    yield "NaN middle", (with_nan, 20)
    yield "strided view", (walk[:8002:2], 30)


KERNEL = Kernel(
    name="zscore",
    signature="zscore(x, window) -> (x[j+w-1] - mean(x[j:j+w])) / std(x[j:j+w]), n-w+1 values",
    summary="rolling z-score of the latest price in its window (population std)",
    defaults={"n": 2_000_000, "window": 20},
    quick={"n": 200_000},
    size_param="n",
    make_args=make_args,
    reference=reference,
    check_inputs=check_inputs,
    elements=lambda p: p["n"],
    # one read of the prices, one write of the z-scores
    bytes_moved=lambda p: 8 * p["n"] + 8 * (p["n"] - p["window"] + 1),
    validate=validate,
    rtol=1e-9,
    atol=1e-9,
    trial={"n": 4000},
)
