"""sin(a)**2 + cos(b)**2 elementwise: the article's numexpr expression."""

import numpy as np

from factorbench.kernels import InputClass, Kernel, large_level, matrix, price_walk, read_only, require_int, with_values

INF = np.inf


def pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    """a and b as float64 matrices of one shape, or the ValueError saying why not."""
    a, b = matrix(a, "a"), matrix(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {a.shape} and {b.shape}")
    return a, b


def reference(a, b):
    a, b = pair(a, b)
    with np.errstate(invalid="ignore"):  # sin(inf) is NaN, as float64 gives
        return np.sin(a) ** 2 + np.cos(b) ** 2


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


def _inf(sign):
    def cases(rng):
        a, b = price_walk(rng, (64, 64)), price_walk(rng, (64, 64))
        yield "in a", (with_values(a, {70: sign * INF}), b)
        yield "in b, F", (np.asfortranarray(a), np.asfortranarray(with_values(b, {4000: sign * INF})))
    return cases


def _both_inf(rng):
    a, b = price_walk(rng, (64, 64)), price_walk(rng, (64, 64))
    yield "a and b", (with_values(a, {5: INF, 6: -INF}), with_values(b, {5: -INF, 100: INF}))


def _dtypes(rng):
    a, b = price_walk(rng, (40, 30)), price_walk(rng, (40, 30))
    yield "float32", (a.astype(np.float32), b.astype(np.float32))
    yield "int64 and float64", ((a * 100).astype(np.int64), b)
    yield "float32 and int32, F", (np.asfortranarray(a.astype(np.float32)), np.asfortranarray(b.astype(np.int32)))


def _array_likes(rng):
    a, b = price_walk(rng, (13, 7)), price_walk(rng, (13, 7))
    yield "lists of lists", (a.tolist(), b.tolist())
    import pandas

    yield "pandas DataFrames", (pandas.DataFrame(a), pandas.DataFrame(b, index=np.arange(1, 14)))


def _read_only(rng):
    a, b = price_walk(rng, (40, 30)), price_walk(rng, (40, 30))
    yield "read-only C", (read_only(a), read_only(b))
    yield "read-only F", (read_only(np.asfortranarray(a)), read_only(np.asfortranarray(b)))


def _views(rng):
    a, b = price_walk(rng, (60, 90)), price_walk(rng, (90, 60))
    yield "transposed and C", (a.T, b)
    yield "both transposed", (b.T, a.T)
    yield "reversed", (a[::-1, ::-1], b.T[::-1])
    yield "strided F", (np.asfortranarray(a)[::2, ::3], np.asfortranarray(b.T)[1::2, ::3])


def _large_level(rng):
    yield "1e12 + moves of 1", (large_level(rng, (64, 64)), large_level(rng, (64, 64)))


def _shapes(rng):
    a, b = price_walk(rng, (3000, 2)), price_walk(rng, (3000, 2))
    yield "1 x 3000", (a[:, :1].T.copy(), b[:, :1].T.copy())
    yield "3000 x 1", (a[:, :1].copy(), b[:, 1:].copy())


def _empty(rng):
    yield "0 x 0", (np.empty((0, 0)), np.empty((0, 0)))
    yield "0 rows", (np.empty((0, 4)), np.empty((0, 4)))


def _wrong_dimensions(rng):
    a, b = price_walk(rng, (4, 6)), price_walk(rng, (6, 4))
    yield "vectors", (a[0].copy(), b[0].copy())
    yield "shapes differ", (a, b)
    yield "3-D", (a.reshape(2, 2, 6), b.reshape(2, 2, 6))


CLASSES = (
    InputClass("+inf", "+inf", "float64 gives sin(inf) = cos(inf) = NaN: NaN exactly there", _inf(1)),
    InputClass("-inf", "-inf", "float64 gives NaN exactly where a or b is -inf", _inf(-1)),
    InputClass("+inf and -inf", "±inf", "NaN exactly where a or b is infinite", _both_inf),
    InputClass("dtypes", "dtyp", "float32 and integer input computed in float64; output float64", _dtypes),
    InputClass("array-likes", "list", "nested lists and pandas DataFrames as matrices", _array_likes),
    InputClass("read-only", "ro", "read-only arrays are read, never written", _read_only),
    InputClass("views", "view", "transposed, reversed and strided views: the values as they appear", _views),
    InputClass("large level", "1e12", "arguments near 1e12: sin and cos with full range reduction", _large_level),
    InputClass("extreme shapes", "shap", "one row, one column", _shapes),
    InputClass("empty", "empt", "ValueError: a is empty", _empty),
    InputClass("wrong dimensions", "ndim", "ValueError: a and b must be matrices of the same shape",
               _wrong_dimensions),
)


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
    classes=CLASSES,
)
