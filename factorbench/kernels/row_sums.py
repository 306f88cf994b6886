"""Row sums of a square matrix, in C and in Fortran memory order (the layout experiment)."""

import math

import numpy as np

from factorbench.kernels import InputClass, Kernel, large_level, matrix, price_walk, read_only, require_int, with_values

ORDERS = ("C", "F")
INF = np.inf


def _row_sum(row: list[float]) -> float:
    # fsum is exactly rounded: no summation order to argue about. It refuses inf + -inf;
    # with an infinity or NaN in the row every summation order gives the same: NaN, or
    # the infinity.
    return math.fsum(row) if all(map(math.isfinite, row)) else sum(row)


def reference(m):
    return np.array([_row_sum(row) for row in matrix(m).tolist()])


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


def _inf(sign):
    def cases(rng):
        m = price_walk(rng, (257, 129))
        yield "C", (with_values(m, {5 * 129 + 17: sign * INF}),)
        yield "F", (np.asfortranarray(with_values(m, {129 * 200: sign * INF, 129 * 200 + 128: sign * INF})),)
    return cases


def _both_inf(rng):
    m = price_walk(rng, (257, 129))
    yield "one row", (with_values(m, {129 * 3 + 1: INF, 129 * 3 + 100: -INF}),)
    yield "one row, F", (np.asfortranarray(with_values(m, {129 * 3 + 1: INF, 129 * 3 + 100: -INF, 129 * 9: INF})),)


def _dtypes(rng):
    m = price_walk(rng, (101, 67))
    yield "float32", (m.astype(np.float32),)
    yield "int64 cents", ((m * 100).astype(np.int64),)
    yield "int32, F", (np.asfortranarray((m * 100).astype(np.int32)),)
    yield "bool", (m > 100.0,)


def _array_likes(rng):
    m = price_walk(rng, (31, 17))
    yield "list of lists", (m.tolist(),)
    yield "tuple of tuples", (tuple(map(tuple, m.tolist())),)
    import pandas

    yield "pandas DataFrame", (pandas.DataFrame(m, index=np.arange(3, 34)),)


def _read_only(rng):
    m = price_walk(rng, (101, 67))
    yield "read-only C", (read_only(m),)
    yield "read-only F", (read_only(np.asfortranarray(m)),)


def _views(rng):
    m = price_walk(rng, (202, 134))
    yield "transposed", (m.T,)
    yield "reversed rows", (m[::-1],)
    yield "reversed columns", (m[:, ::-1],)
    yield "strided F", (np.asfortranarray(m)[::3, 1::2],)
    yield "column block", (m[:, 10:50],)


def _large_level(rng):
    yield "1e12 + moves of 1", (large_level(rng, (257, 129)),)


def _shapes(rng):
    m = price_walk(rng, (5000, 9))
    yield "1 x 5000", (m[:, :1].T.copy(),)
    yield "5000 x 1", (m[:, :1].copy(),)
    yield "3 x 4099, F", (np.asfortranarray(price_walk(rng, (3, 4099))),)


def _empty(rng):
    yield "0 x 0", (np.empty((0, 0)),)
    yield "0 rows", (np.empty((0, 5)),)
    yield "0 columns, F", (np.empty((5, 0), order="F"),)


def _wrong_dimensions(rng):
    m = price_walk(rng, (4, 6))
    yield "vector", (m[0].copy(),)
    yield "3-D", (m.reshape(2, 2, 6),)
    yield "strings", (np.array([["1.0", "2.0"]]),)


CLASSES = (
    InputClass("+inf", "+inf", "float64 addition: a row holding +inf sums to +inf", _inf(1)),
    InputClass("-inf", "-inf", "float64 addition: a row holding -inf sums to -inf", _inf(-1)),
    InputClass("+inf and -inf", "±inf", "a row holding both sums to NaN; other rows are finite", _both_inf),
    InputClass("dtypes", "dtyp", "float32, integer and bool input computed in float64; output float64", _dtypes),
    InputClass("array-likes", "list", "nested lists, tuples and pandas DataFrames as matrices", _array_likes),
    InputClass("read-only", "ro", "read-only arrays are read, never written", _read_only),
    InputClass("views", "view", "transposed, reversed and strided views: the values as they appear", _views),
    InputClass("large level", "1e12", "1e12 plus moves of 1: within the kernel's tolerance of the exact sum",
               _large_level),
    InputClass("extreme shapes", "shap", "one row, one column, a wide F-ordered matrix", _shapes),
    InputClass("empty", "empt", "ValueError: m is empty", _empty),
    InputClass("wrong dimensions", "ndim", "ValueError: m must be two-dimensional (of real numbers)",
               _wrong_dimensions),
)


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
    classes=CLASSES,
    # fsum over Python lists: 0.1-0.2 s per million values
    trusted="vectorized",
    reference_elements=4_000_000,
)
