"""Column sums of the Gram matrix x.T @ x: the article's Dask example."""

import numpy as np

from factorbench.kernels import InputClass, Kernel, large_level, matrix, price_walk, read_only, require_int, with_values

INF = np.inf


def reference(x):
    x = matrix(x, "x")
    with np.errstate(invalid="ignore"):  # inf - inf is NaN, as float64 gives
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


def _nan(rng):
    x = price_walk(rng, (301, 37))
    yield "one NaN", (with_values(x, {37 * 150 + 3: np.nan}),)
    yield "NaN, F", (np.asfortranarray(with_values(x, {0: np.nan})),)


def _inf(sign):
    def cases(rng):
        x = price_walk(rng, (301, 37))  # positive prices: inf * x keeps the sign
        yield "one", (with_values(x, {37 * 150 + 3: sign * INF}),)
        yield "F", (np.asfortranarray(with_values(x, {37 * 300 + 36: sign * INF})),)
    return cases


def _both_inf(rng):
    x = price_walk(rng, (301, 37))
    yield "one row", (with_values(x, {37 * 10 + 1: INF, 37 * 10 + 2: -INF}),)
    yield "different rows", (with_values(x, {37 * 10 + 1: INF, 37 * 200 + 5: -INF}),)


def _dtypes(rng):
    x = price_walk(rng, (101, 23))
    yield "float32", (x.astype(np.float32),)
    yield "int64 cents", ((x * 100).astype(np.int64),)
    yield "int32, F", (np.asfortranarray((x * 10).astype(np.int32)),)


def _array_likes(rng):
    x = price_walk(rng, (31, 7))
    yield "list of lists", (x.tolist(),)
    import pandas

    yield "pandas DataFrame", (pandas.DataFrame(x, index=np.arange(3, 34)),)


def _read_only(rng):
    x = price_walk(rng, (101, 23))
    yield "read-only C", (read_only(x),)
    yield "read-only F", (read_only(np.asfortranarray(x)),)


def _views(rng):
    x = price_walk(rng, (150, 60))
    yield "transposed", (x.T,)
    yield "reversed", (x[::-1, ::-1],)
    yield "strided F", (np.asfortranarray(x)[::2, 1::3],)


def _large_level(rng):
    yield "1e12 + moves of 1", (large_level(rng, (301, 37)),)


def _shapes(rng):
    x = price_walk(rng, (5000, 3))
    yield "5000 x 1", (x[:, :1].copy(),)
    yield "1 x 300", (price_walk(rng, (1, 300)),)
    yield "2 x 500, F", (np.asfortranarray(price_walk(rng, (2, 500))),)


def _empty(rng):
    yield "0 x 0", (np.empty((0, 0)),)
    yield "0 rows", (np.empty((0, 4)),)


def _wrong_dimensions(rng):
    x = price_walk(rng, (4, 6))
    yield "vector", (x[0].copy(),)
    yield "3-D", (x.reshape(2, 2, 6),)


CLASSES = (
    InputClass("NaN", "NaN", "float64 arithmetic: a NaN anywhere makes every column sum NaN", _nan),
    InputClass("+inf", "+inf", "float64 arithmetic: +inf times positive prices makes every column sum +inf",
               _inf(1)),
    InputClass("-inf", "-inf", "float64 arithmetic: -inf makes the sums -inf or NaN as x.T @ x gives", _inf(-1)),
    InputClass("+inf and -inf", "±inf", "float64 arithmetic: NaN column sums", _both_inf),
    InputClass("dtypes", "dtyp", "float32 and integer input computed in float64; output float64", _dtypes),
    InputClass("array-likes", "list", "nested lists and pandas DataFrames as matrices", _array_likes),
    InputClass("read-only", "ro", "read-only arrays are read, never written", _read_only),
    InputClass("views", "view", "transposed, reversed and strided views: the values as they appear", _views),
    InputClass("large level", "1e12", "1e12 plus moves of 1: within the kernel's tolerance", _large_level),
    InputClass("extreme shapes", "shap", "one column, one row, two rows", _shapes),
    InputClass("empty", "empt", "ValueError: x is empty", _empty),
    InputClass("wrong dimensions", "ndim", "ValueError: x must be two-dimensional (of real numbers)",
               _wrong_dimensions),
)


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
    classes=CLASSES,
)
