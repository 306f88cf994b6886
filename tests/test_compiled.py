"""The compiled paradigms: cython, numba, numba-parallel.

The spine's gate (tests/test_correctness.py) already runs every implementation on the
kernels' check cases; these tests cover what is particular to the compiled kernels: the
parallel EMA scan at awkward sizes and thread counts, the running-sum SMA on paths the
check cases are too short to reach, its accuracy over 10M points, and that the Cython
extension really was built, with OpenMP.
"""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest

import factorbench as fb
from factorbench.kernels import price_walk

EMA_SIZES = (1, 2, 3, 5, 7, 1001, 4099, 65_537, 100_003)
EMA_ALPHAS = (0.1, 1e-3, 1e-5, 0.9, 1.0)


def relative_error(actual, expected):
    """Largest relative error over finite values; NaN and infinities must match exactly."""
    assert np.array_equal(np.isnan(actual), np.isnan(expected)), "NaN pattern differs"
    infinite = np.isinf(expected)
    assert np.array_equal(actual[infinite], expected[infinite]), "infinities differ"
    finite = np.isfinite(expected)
    return float(np.max(np.abs(actual[finite] - expected[finite]) / np.abs(expected[finite]), initial=0.0))


def available(kernel, name):
    impl = fb.implementation(kernel, name)
    if not impl.available:
        pytest.skip(impl.reason)
    return impl


def has_c_compiler():
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(compiler) is not None


@pytest.fixture(scope="module")
def walk():
    return price_walk(np.random.default_rng(7), 100_003)


@pytest.fixture(scope="module")
def ema_references(walk):
    reference = fb.kernel("ema").reference
    return {(n, alpha): reference(walk[:n], alpha) for n in EMA_SIZES for alpha in EMA_ALPHAS}


# ---------------------------------------------------------------- the build

@pytest.mark.skipif(not has_c_compiler(), reason="no C compiler: pip install cannot build the Cython extension")
def test_the_cython_extension_is_built_with_openmp():
    from factorbench.impls._support import cython_loops

    assert fb.implementation("sma", "cython").available
    x = price_walk(np.random.default_rng(0), 10_000)
    out = np.empty(len(x) - 19)
    team = cython_loops.sma_prange(x, out, 20, 2)
    assert team == 2, "prange ran on one thread: the extension was built without OpenMP"


def test_cython_reports_an_unbuilt_extension(monkeypatch):
    import factorbench.impls._support
    from factorbench.impls import cython

    # what a checkout without the compiled module looks like to an import
    monkeypatch.setitem(sys.modules, "factorbench.impls._support.cython_loops", None)
    monkeypatch.delattr(factorbench.impls._support, "cython_loops", raising=False)
    assert cython._extension_reason().startswith("extension not built:")


def test_paradigm_modules_import_without_their_compilers():
    script = ("import sys; import factorbench.impls.cython, factorbench.impls.numba, "
              "factorbench.impls.numba_parallel; print(sorted(m for m in ('numba', 'llvmlite') if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", "importing the paradigm modules imported Numba"


# ---------------------------------------------------------------- parallel EMA

@pytest.mark.parametrize("chunks", [1, 2, 3, 4, 5])
def test_numba_ema_scan_matches_the_serial_recurrence_for_any_chunk_count(walk, ema_references, chunks):
    pytest.importorskip("numba")
    from factorbench.impls._support import numba_loops

    for (n, alpha), expected in ema_references.items():
        out = np.empty(n)
        numba_loops.ema_parallel(walk[:n].copy(), out, alpha, min(chunks, n))
        assert relative_error(out, expected) <= 1e-12, (n, alpha)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_cython_ema_scan_matches_the_serial_recurrence_on_1_2_3_threads(walk, ema_references, threads):
    impl = available("ema", "cython-prange")
    for (n, alpha), expected in ema_references.items():
        assert relative_error(impl(walk[:n], alpha, threads=threads), expected) <= 1e-12, (n, alpha)


@pytest.mark.parametrize("name", ["numba-parallel", "cython-prange"])
def test_parallel_ema_carries_a_nan_into_every_later_chunk(walk, name):
    impl = available("ema", name)
    x = walk[:30_001].copy()
    reference = fb.kernel("ema").reference
    for position in (0, 9_999, 10_000, 10_001, 20_000, 30_000):  # in and around each chunk
        with_nan = x.copy()
        with_nan[position] = np.nan
        for threads in (2, 3) if name == "cython-prange" else (2,):
            out = impl(with_nan, 0.1, threads=threads)
            assert relative_error(out, reference(with_nan, 0.1)) <= 1e-12, (position, threads)


def test_numba_parallel_ema_on_1_2_3_numba_threads(walk, ema_references):
    """Numba's pool holds as many threads as CPUs, so three threads need a fresh process."""
    pytest.importorskip("numba")
    script = textwrap.dedent("""
        import json, sys
        import numpy as np
        import factorbench as fb
        from factorbench.kernels import price_walk
        impl = fb.implementation("ema", "numba-parallel")
        walk = price_walk(np.random.default_rng(7), 100_003)
        results = {}
        for threads in (1, 2, 3):
            for n in json.loads(sys.argv[1]):
                for alpha in json.loads(sys.argv[2]):
                    results[f"{threads} {n} {alpha}"] = impl(walk[:n], alpha, threads=threads).tolist()
        print(json.dumps(results))
    """)
    sizes, alphas = (1, 3, 7, 1001, 100_003), (0.1, 1e-3)
    env = {**os.environ, "NUMBA_NUM_THREADS": "3"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(sizes), json.dumps(alphas)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    for threads in (1, 2, 3):
        for n in sizes:
            for alpha in alphas:
                out = np.array(results[f"{threads} {n} {alpha}"])
                assert relative_error(out, ema_references[n, alpha]) <= 1e-12, (threads, n, alpha)


def test_numba_parallel_names_its_thread_limit():
    impl = available("ema", "numba-parallel")
    import numba

    with pytest.raises(ValueError, match="threads must be between 1 and"):
        impl(np.ones(10), 0.1, threads=numba.config.NUMBA_NUM_THREADS + 1)


# ---------------------------------------------------------------- running-sum SMA

SMA_IMPLEMENTATIONS = [("cython", {}), ("cython-prange", {"threads": 3}),
                       ("numba", {}), ("numba-parallel", {"threads": 2})]


@pytest.mark.parametrize("name, settings", SMA_IMPLEMENTATIONS)
def test_sma_nan_rule_across_interleaved_segments(walk, name, settings):
    """A NaN in each of the four interleaved running sums, at segment edges, and an
    infinity: only the windows holding one differ from finite means."""
    impl = available("sma", name)
    reference = fb.kernel("sma").reference
    x = walk.copy()
    x[[0, 4095, 4096, 8200, 12_300, 16_383, 16_400, 50_000, 100_002]] = np.nan
    x[70_000] = np.inf
    x[80_000], x[80_005] = np.inf, -np.inf
    for window in (1, 20, 333):
        with np.errstate(invalid="ignore"):  # the reference's inf + -inf window
            expected = reference(x, window)
        assert relative_error(impl(x, window, **settings), expected) <= 1e-12, window


@pytest.mark.parametrize("name, settings", SMA_IMPLEMENTATIONS)
def test_sma_without_nans_on_the_interleaved_path(walk, name, settings):
    impl = available("sma", name)
    reference = fb.kernel("sma").reference
    for window in (1, 2, 20, 1000, len(walk)):
        assert relative_error(impl(walk, window, **settings), reference(walk, window)) <= 1e-12, window


@pytest.mark.parametrize("name, settings", [("numba", {}), ("numba-parallel", {"threads": 2})])
def test_sma_nan_rule_with_non_temporal_stores(walk, name, settings, monkeypatch):
    """The stores that skip the cache, which only outputs larger than the last-level
    cache take (none of the check cases), keep the NaN and infinity rule."""
    impl = available("sma", name)
    from factorbench.impls._support import numba_loops

    monkeypatch.setattr(numba_loops, "STREAM_MIN_BYTES", 0)
    reference = fb.kernel("sma").reference
    x = walk.copy()
    x[[0, 4095, 4096, 8200, 12_300, 16_383, 16_400, 50_000, 100_002]] = np.nan
    x[70_000], x[80_000], x[80_005] = np.inf, np.inf, -np.inf
    for window in (1, 7, 20, 333):
        with np.errstate(invalid="ignore"):
            expected = reference(x, window)
        assert relative_error(impl(x, window, **settings), expected) <= 1e-12, window
        assert relative_error(impl(walk[1:], window, **settings), reference(walk[1:], window)) <= 1e-12, window


@pytest.mark.parametrize("name", ["cython", "numba"])
def test_sma_running_sum_keeps_float64_accuracy_over_10m_points(name):
    """Re-anchoring bounds the running sum's drift by one segment, not by n: ours is
    1.1e-14 relative here, a plain running sum (bottleneck.move_mean's) 5.6e-14."""
    impl = available("sma", name)
    rng = np.random.default_rng(3)
    n, window = 10_000_000, 20
    x = price_walk(rng, n) * 1000.0
    out = impl(x, window)
    sampled = np.concatenate([rng.integers(0, len(out), 20_000), np.arange(len(out) - 2000, len(out))])
    exact = np.lib.stride_tricks.sliding_window_view(x, window)[sampled].mean(axis=1)
    assert np.max(np.abs(out[sampled] - exact) / exact) <= 4e-14


def test_compiled_kernels_refuse_a_window_they_would_read_past():
    impl = available("sma", "cython")
    with pytest.raises(ValueError, match="window must be between 1 and len"):
        impl(np.ones(5), 6)


# ---------------------------------------------------------------- interleaved EMA segments, infinities

LANE_SIZES = (4 * 1024 - 1, 4 * 1024, 4 * 1024 + 3, 8 * 1024 + 1, 12 * 1024 + 7)
"""Around the size where one chunk starts to be scanned as four interleaved segments."""


@pytest.mark.parametrize("name", ["numba-parallel", "cython-prange"])
@pytest.mark.parametrize("threads", [1, 2])
def test_ema_lanes_match_the_recurrence_at_segment_boundaries(walk, name, threads):
    impl = available("ema", name)
    reference = fb.kernel("ema").reference
    for n in LANE_SIZES:
        for alpha in (0.1, 1e-3, 0.9):
            assert relative_error(impl(walk[:n], alpha, threads=threads), reference(walk[:n], alpha)) < 1e-12
        with_nan = walk[:n].copy()
        with_nan[n // 4] = np.nan  # on the first segment boundary of one thread's chunk
        actual = impl(with_nan, 0.1, threads=threads)
        assert np.isnan(actual[n // 4:]).all() and not np.isnan(actual[:n // 4]).any()


@pytest.mark.parametrize("name", ["numba-parallel", "cython-prange"])
def test_an_infinity_in_the_ema_stays_infinite_in_every_later_output(walk, name):
    impl = available("ema", name)
    x = walk[:50_000].copy()
    x[1000] = np.inf
    actual = impl(x, 0.1, threads=2)
    expected = fb.kernel("ema").reference(x, 0.1)
    assert np.isposinf(expected[1000:]).all()
    assert relative_error(actual, expected) < 1e-12  # NaN and infinities must match exactly


# ---------------------------------------------------------------- trig with glibc's libmvec

def test_libmvec_trig_matches_libm_on_special_values_and_odd_sizes():
    impl = available("trig", "cython-libmvec")
    special = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, 1e-300, np.pi / 2, 1e6, 1e22, 1e300, -7.5])
    rng = np.random.default_rng(3)
    for n in (1, 3, 5, 12, 1001):
        a = np.resize(special, n) * rng.choice([1.0, -1.0], n)
        b = rng.permutation(np.resize(special, n))
        for threads in (1, 2, 3):
            actual = impl(a.reshape(1, n), b.reshape(1, n), threads=threads)
            with np.errstate(invalid="ignore"):  # sin and cos of infinities are NaN
                expected = fb.kernel("trig").reference(a.reshape(1, n), b.reshape(1, n))
            assert np.array_equal(np.isnan(actual), np.isnan(expected))
            finite = ~np.isnan(expected)
            np.testing.assert_allclose(actual[finite], expected[finite], rtol=1e-12, atol=1e-13)


def test_libmvec_trig_keeps_the_fortran_layout_and_states_its_library(walk):
    impl = available("trig", "cython-libmvec")
    a = np.asfortranarray(walk[:60_000].reshape(300, 200))
    b = np.asfortranarray(walk[40_000:100_000].reshape(300, 200))
    actual = impl(a, b, threads=2)
    assert actual.flags.f_contiguous
    np.testing.assert_allclose(actual, fb.kernel("trig").reference(a, b), rtol=1e-12, atol=1e-13)
    metrics = impl.metrics()
    assert metrics["openmp_team_size"] == 2 and "libmvec" in metrics["vector_math"]

