"""Exponential moving average: out[0] = x[0], out[i] = alpha*x[i] + (1-alpha)*out[i-1]."""

import numbers

import numpy as np

from factorbench.kernels import Kernel, price_walk, require_int


def reference(x, alpha):
    out = np.empty(len(x))
    previous = None
    for i, value in enumerate(np.asarray(x, dtype=np.float64).tolist()):
        previous = value if previous is None else alpha * value + (1.0 - alpha) * previous
        out[i] = previous
    return out


def validate(params):
    require_int(params, "n", 1)
    alpha = params["alpha"]
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be a number with 0 < alpha <= 1, got {alpha!r}")


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
)
