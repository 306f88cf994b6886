"""Kernel specifications: generators, references and parameter validation."""

import numpy as np
import pandas as pd
import pytest

import factorbench as fb
from factorbench.kernels import price_walk


@pytest.mark.parametrize("name", fb.kernels())
def test_generated_inputs_are_deterministic_and_price_like(name):
    spec = fb.kernel(name)
    params = {**spec.defaults, **spec.trial}
    first = spec.make_args(params, np.random.default_rng(7))
    again = spec.make_args(params, np.random.default_rng(7))
    other = spec.make_args(params, np.random.default_rng(8))
    arrays = [a for a in first if isinstance(a, np.ndarray)]
    for a, b in zip(arrays, (a for a in again if isinstance(a, np.ndarray))):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(arrays[0], other[0])
    for array in arrays:
        assert array.dtype == np.float64
        assert 50 < array.min() and array.max() < 200  # a walk around 100, not uniform noise
        assert np.abs(np.diff(array.ravel())).max() < 1.0


def test_price_walk_moves_like_a_price():
    walk = price_walk(np.random.default_rng(0), 100_000)
    assert walk[0] == pytest.approx(100.0, rel=1e-3)
    assert np.std(np.diff(np.log(walk))) == pytest.approx(1e-4, rel=0.05)


@pytest.mark.parametrize("window", [1, 3, 20])
def test_sma_reference_matches_pandas_nan_rule(window):
    x = price_walk(np.random.default_rng(1), 300)
    x[[0, 50, 51, 299]] = np.nan
    expected = pd.Series(x).rolling(window).mean().to_numpy()[window - 1:]
    got = fb.kernel("sma").reference(x, window)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_ema_reference_follows_the_recurrence_and_propagates_nan():
    x = np.array([1.0, 2.0, 4.0, np.nan, 3.0])
    out = fb.kernel("ema").reference(x, 0.5)
    np.testing.assert_allclose(out[:3], [1.0, 1.5, 2.75])
    assert np.isnan(out[3:]).all()


def test_row_sums_reference_is_exact_and_variants_cover_both_orders():
    spec = fb.kernel("row_sums")
    m = np.array([[1e16, 1.0, -1e16], [0.1, 0.2, 0.3]])
    np.testing.assert_array_equal(spec.reference(m), [1.0, 0.6])
    assert spec.variants == {"order": ("C", "F")}
    (f_matrix,) = spec.make_args({"n": 8, "order": "F"}, np.random.default_rng(0))
    assert f_matrix.flags.f_contiguous and not f_matrix.flags.c_contiguous


@pytest.mark.parametrize("name, params, message", [
    ("sma", {"n": 10, "window": 11}, "window must be between 1 and 10, got 11"),
    ("sma", {"n": 10, "window": 0}, "window must be between 1 and 10, got 0"),
    ("sma", {"n": 0, "window": 1}, "n must be >= 1, got 0"),
    ("sma", {"n": 10.5, "window": 1}, "n must be an integer"),
    ("ema", {"n": 10, "alpha": 0.0}, "alpha must be a number with 0 < alpha <= 1, got 0.0"),
    ("ema", {"n": 10, "alpha": 1.5}, "alpha must be a number with 0 < alpha <= 1, got 1.5"),
    ("ema", {"n": 10, "alpha": "x"}, "alpha must be a number"),
    ("row_sums", {"n": 10, "order": "K"}, "order must be one of C, F, got 'K'"),
    ("gram_colsum", {"rows": 10, "cols": 0}, "cols must be >= 1, got 0"),
])
def test_validation_names_the_parameter_and_what_is_allowed(name, params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        fb.kernel(name).validate(params)


@pytest.mark.parametrize("name", fb.kernels())
def test_defaults_and_quick_sizes_are_valid(name):
    spec = fb.kernel(name)
    spec.validate(spec.defaults)
    spec.validate({**spec.defaults, **spec.quick})
    assert spec.size_param in spec.defaults
