"""Row sums of a square matrix, in C and in Fortran memory order (the layout experiment)."""

import math

import numpy as np

from factorbench.kernels import Kernel, price_walk, require_int

ORDERS = ("C", "F")


def reference(m):
    # fsum is exactly rounded: no summation order to argue about.
    return np.array([math.fsum(row) for row in np.asarray(m, dtype=np.float64).tolist()])


def validate(params):
    require_int(params, "n", 1)
    if params["order"] not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {params['order']!r}")


def make_args(params, rng):
    m = price_walk(rng, (params["n"], params["n"]))
    return (np.asfortranarray(m) if params["order"] == "F" else m,)


def check_inputs(rng):
    m = price_walk(rng, (257, 129))
    yield "1x1", (m[:1, :1].copy(),)
    yield "1 column", (m[:100, :1].copy(),)
    yield "C 257x129", (m.copy(),)
    yield "F 257x129", (np.asfortranarray(m),)
    yield "F 3x7", (np.asfortranarray(m[:3, :7]),)
    yield "strided view", (m[::2, ::3],)
    with_nan = np.asfortranarray(m)
    with_nan[5, 17] = np.nan
    yield "NaN in one row", (with_nan,)


KERNEL = Kernel(
    name="row_sums",
    signature="row_sums(m) -> m.sum(axis=1)",
    summary="sum of each row of an n x n matrix, measured on C- and F-ordered input",
    defaults={"n": 10_000, "order": "C"},
    quick={"n": 2000},
    size_param="n",
    make_args=make_args,
    reference=reference,
    check_inputs=check_inputs,
    elements=lambda p: p["n"] ** 2,
    bytes_moved=lambda p: 8 * p["n"] ** 2 + 8 * p["n"],
    output_bytes=lambda p: 8 * p["n"],
    validate=validate,
    rtol=1e-11,
    variants={"order": ORDERS},
    trial={"n": 60},
)
