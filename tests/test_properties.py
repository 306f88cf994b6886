"""Property-based tests: every available implementation of every kernel against its
float64 reference on random inputs (bottleneck's "slow twin" testing, with Hypothesis
drawing the awkward inputs).

Lengths include 1 and the boundaries parallel and compiled implementations cut at (the
running-sum segments of the compiled SMAs, four of them interleaved, chunk and block
edges); windows and alphas include their extremes; NaN and infinities land anywhere;
inputs come as float64, float32 or int64, contiguous, reversed, strided or read-only.
Process-pool and Dask implementations cost milliseconds a call: they run a fifth of the
profile's examples. The library baselines are drawn without infinities and float32,
where the correctness matrix already lists how they deviate.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import factorbench as fb
from factorbench.kernels import price_walk
from factorbench.measure.check import compare

SEGMENT = 4096
"""numba_loops.SEGMENT_MIN: running-sum segments, four interleaved from 4 * SEGMENT outputs."""
BOUNDARY_LENGTHS = (1, 2, 3, 7, 64, 4095, 4096, 4097, 8193, 4 * SEGMENT - 1, 4 * SEGMENT, 4 * SEGMENT + 1,
                    4 * SEGMENT + 19, 4 * SEGMENT + 20, 2 * 4 * SEGMENT + 77, 2816, 2817, 5633)
"""Around 4 * SEGMENT (+ window - 1 for the outputs), chunk halves, and the CUDA EMA tile (256 * 11)."""
SLOW_PARADIGMS = ("multiprocessing", "dask")
SPECIALS = (np.nan, np.inf, -np.inf)


def available():
    return [pytest.param(impl, id=f"{impl.kernel}/{impl.name}") for impl in fb.implementations() if impl.available]


def setting_values(impl) -> st.SearchStrategy[dict]:
    """Settings drawn per example: 1 to 3 workers or threads, Dask blocks of several sizes."""
    choices = {"processes": [1, 2], "threads": [1, 2], "scheduler": ["threads"], "chunk_size": ["auto", 1000, 4099]}
    return st.fixed_dictionaries({key: st.sampled_from(choices.get(key, list(values)))
                                  for key, values in impl.settings.items()})


def lengths(cap: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(1, 300), st.sampled_from([n for n in BOUNDARY_LENGTHS if n <= cap]))


@st.composite
def values(draw, shape, library: bool):
    """Prices of ``shape`` in a drawn dtype, layout and with NaN or infinities placed."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    size = int(np.prod(shape))
    layout = draw(st.sampled_from(["contiguous", "reversed", "strided", "read-only", "F"]))
    base = price_walk(rng, 2 * size).reshape(-1)[:2 * size]
    x = base[::2].copy() if layout != "strided" else base[::2]
    dtype = draw(st.sampled_from(["float64", "int64"] if library else ["float64", "float32", "int64"]))
    if dtype == "int64":
        x = (x * 100).astype(np.int64)
    else:
        specials = SPECIALS[:1] if library else SPECIALS
        for index, value in draw(st.lists(st.tuples(st.integers(0, size - 1), st.sampled_from(specials)),
                                          max_size=3)):
            x[index] = value
        x = x.astype(dtype, copy=False)
    x = x.reshape(shape)
    if layout == "reversed":
        x = x[::-1]
    elif layout == "F" and x.ndim == 2:
        x = np.asfortranarray(x)
    elif layout == "read-only":
        x.flags.writeable = False
    return x


@st.composite
def sma_args(draw, library, cap):
    n = draw(lengths(cap))
    window = draw(st.one_of(st.integers(1, min(n, 50)), st.sampled_from([n, max(1, n - 1), min(n, 1000)])))
    return draw(values((n,), library)), window


@st.composite
def ema_args(draw, library, cap):
    n = draw(lengths(cap))
    alpha = draw(st.one_of(st.sampled_from([1.0, 1e-6, 0.5, 0.999999]), st.floats(1e-6, 1.0)))
    return draw(values((n,), library)), alpha


@st.composite
def matrix_args(draw, library, cap, count=1, max_cols=60):
    rows = draw(st.one_of(st.integers(1, 40), st.sampled_from([257, 301, 1000])))
    cols = draw(st.integers(1, max_cols))
    return tuple(draw(values((rows, cols), library)) for _ in range(count))


def arguments(kernel, library, cap):
    return {
        "sma": sma_args(library, cap),
        "ema": ema_args(library, cap),
        "row_sums": matrix_args(library, cap),
        "trig": matrix_args(library, cap, count=2),
        "gram_colsum": matrix_args(library, cap, max_cols=20),  # the loop is O(rows * cols**2)
    }[kernel]


@pytest.mark.parametrize("impl", available())
def test_implementation_agrees_with_the_reference_on_random_inputs(impl):
    spec = fb.kernel(impl.kernel)
    slow = impl.paradigm in SLOW_PARADIGMS
    library = impl.paradigm == "library"
    examples = settings.default.max_examples
    cap = 20_000 if impl.paradigm == "dask" else 10**6

    @settings(max_examples=max(3, examples // 5) if slow else examples)
    @given(args=arguments(impl.kernel, library, cap), chosen=setting_values(impl))
    def agrees(args, chosen):
        with np.errstate(all="ignore"):
            expected = spec.reference(*args)
            actual = np.asarray(impl(*args, **chosen))
        assert actual.dtype == np.float64
        ok, _error, why = compare(expected, actual, spec.rtol, spec.atol)
        assert ok, f"{chosen}: {why}"

    agrees()
