"""sin(a)**2 + cos(b)**2 elementwise: the article's numexpr expression."""

import numpy as np

from factorbench.kernels import Kernel, price_walk, require_int


def reference(a, b):
    return np.sin(np.asarray(a, dtype=np.float64)) ** 2 + np.cos(np.asarray(b, dtype=np.float64)) ** 2


def validate(params):
    require_int(params, "n", 1)


def make_args(params, rng):
    n = params["n"]
    return price_walk(rng, (n, n)), price_walk(rng, (n, n))


def check_inputs(rng):
    a, b = price_walk(rng, (64, 64)), price_walk(rng, (64, 64))
    yield "1x1", (a[:1, :1].copy(), b[:1, :1].copy())
    yield "17x33", (a[:17, :33].copy(), b[:17, :33].copy())
    yield "C and F mixed", (a.copy(), np.asfortranarray(b))
    yield "strided views", (a[::2, 1::3], b[1::2, 2::3])
    with_nan = a.copy()
    with_nan[3, 3] = np.nan
    yield "NaN", (with_nan, b.copy())


KERNEL = Kernel(
    name="trig",
    signature="trig(a, b) -> sin(a)**2 + cos(b)**2",
    summary="transcendental elementwise expression on two n x n matrices",
    defaults={"n": 5000},
    quick={"n": 1000},
    size_param="n",
    make_args=make_args,
    reference=reference,
    check_inputs=check_inputs,
    elements=lambda p: p["n"] ** 2,
    bytes_moved=lambda p: 24 * p["n"] ** 2,
    output_bytes=lambda p: 8 * p["n"] ** 2,
    validate=validate,
    rtol=1e-12,
    atol=1e-13,
    trial={"n": 40},
)
