"""Column sums of the Gram matrix x.T @ x: the article's Dask example."""

import numpy as np

from factorbench.kernels import Kernel, price_walk, require_int


def reference(x):
    x = np.asarray(x, dtype=np.float64)
    return (x.T @ x).sum(axis=0)


def validate(params):
    require_int(params, "rows", 1)
    require_int(params, "cols", 1)


def make_args(params, rng):
    return (price_walk(rng, (params["rows"], params["cols"])),)


def check_inputs(rng):
    x = price_walk(rng, (301, 37))
    yield "1x1", (x[:1, :1].copy(),)
    yield "1 row", (x[:1, :].copy(),)
    yield "1 column", (x[:, :1].copy(),)
    yield "301x37", (x.copy(),)
    yield "F order", (np.asfortranarray(x),)
    yield "strided view", (x[::3, ::2],)


KERNEL = Kernel(
    name="gram_colsum",
    signature="gram_colsum(x) -> (x.T @ x).sum(axis=0)",
    summary="column sums of the Gram matrix of a rows x cols matrix",
    defaults={"rows": 20_000, "cols": 500},
    quick={"rows": 5000, "cols": 200},
    size_param="rows",
    make_args=make_args,
    reference=reference,
    check_inputs=check_inputs,
    elements=lambda p: p["rows"] * p["cols"],
    bytes_moved=lambda p: 8 * p["rows"] * p["cols"] + 8 * p["cols"],
    output_bytes=lambda p: 8 * p["cols"],
    validate=validate,
    rtol=1e-10,
    trial={"rows": 6},
)
