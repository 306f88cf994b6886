"""The correctness check, run for every registered implementation, and checked itself."""

import numpy as np
import pytest

import factorbench as fb
from factorbench.measure.check import check, compare
from factorbench.registry import Paradigm


def every_implementation():
    return [pytest.param(impl, id=f"{impl.kernel}/{impl.name}") for impl in fb.implementations()]


@pytest.mark.parametrize("impl", every_implementation())
def test_implementation_matches_the_reference(impl):
    if not impl.available:
        pytest.skip(impl.reason)
    # The first value of each swept setting; paradigm tests cover the other values.
    settings = {key: values[0] for key, values in impl.settings.items()}
    result = check(impl, seed=0, settings=settings)
    assert result.ok, f"{settings}: {result.message}"


def one_off(kernel, func):
    paradigm = Paradigm("test", "gate self-test", rank=999)
    paradigm.implements(kernel)(func)
    return paradigm.implementations[0]


def test_gate_marks_a_wrong_implementation_with_its_error():
    result = check(one_off("sma", lambda x, w: fb.kernel("sma").reference(x, w) * (1 + 1e-6)))
    assert not result.ok and not result.raised
    assert result.max_error == pytest.approx(1e-6, rel=1e-3)
    assert "relative error" in result.message


def test_gate_catches_nan_placed_outside_its_windows():
    def nan_everywhere_after(x, window):
        out = fb.implementation("sma", "vectorized-convolve")(np.nan_to_num(x), window)
        nans = np.flatnonzero(np.isnan(x))
        if nans.size:
            out[max(nans[0] - window + 1, 0):] = np.nan
        return out

    result = check(one_off("sma", nan_everywhere_after))
    assert not result.ok and "NaN pattern differs" in result.message


def test_gate_reports_exceptions_and_input_mutation():
    raised = check(one_off("ema", lambda x, alpha: 1 / 0))
    assert raised.raised and "ZeroDivisionError" in raised.message

    def in_place(x, alpha):
        x *= 1.0 + alpha
        return fb.kernel("ema").reference(x / (1.0 + alpha), alpha)

    mutated = check(one_off("ema", in_place))
    assert not mutated.ok and "modified its input" in mutated.message
    # the check stopped there: the shared check inputs (some are views) are as they were
    assert check(fb.implementation("ema", "vectorized")).ok


def test_gate_rejects_wrong_shape():
    result = check(one_off("row_sums", lambda m: m.sum(axis=0)))
    assert not result.ok


def test_compare_treats_matching_nan_as_equal_and_shape_as_significant():
    assert compare(np.array([1.0, np.nan]), np.array([1.0, np.nan]), 1e-12, 0)[0]
    assert not compare(np.array([1.0, 2.0]), np.array([1.0]), 1e-12, 0)[0]


def test_compare_names_the_first_differing_index_and_a_systematic_pattern():
    expected = np.arange(1.0, 11.0)
    _, _, why = compare(expected, expected + 0.5, 1e-9, 0)
    assert why.startswith("10 of 10 values differ, first at index 0: 1.5 vs reference 1.0")
    assert why.endswith("every value off by a constant +0.5")
    squares = expected**2
    _, _, why = compare(squares, np.concatenate(([0.0], squares[:-1])), 1e-9, 0)
    assert why.endswith("the reference shifted by 1 position(s)")
    one_off = expected.copy()
    one_off[6] = 70.0
    _, _, why = compare(expected, one_off, 1e-9, 0)
    assert why == "1 of 10 values differ, first at index 6: 70.0 vs reference 7.0 (relative error up to 9 > rtol 1e-09)"
    matrix = np.ones((3, 4))
    _, _, why = compare(matrix, (matrix * 2).astype(np.float32), 1e-9, 0)
    assert "first at index (0, 0): 2.0 vs reference 1.0" in why and "constant factor 2" in why
    assert why.endswith("(output dtype float32, the reference's float64)")
    with_nan = expected.copy()
    with_nan[3] = np.nan
    _, error, why = compare(with_nan, np.where(np.isnan(with_nan), 0.0, with_nan), 1e-9, 0)
    assert error == float("inf")
    assert why == ("NaN pattern differs at 1 of 10 positions, first at index 3: 0.0 vs reference nan "
                   "(1 of the reference's NaN not NaN here: the NaN rule differs)")
    assert compare(expected, expected[:-1], 1e-9, 0)[2] == "shape (9,), expected (10,)"


def slow_reference_kernel(trusted=None, reference_elements=0):
    """A kernel whose reference is slow for its size (as under callgrind, ~50x slower): the
    answer a timed call is held against must not depend on that."""
    import time

    def reference(x):
        time.sleep(2.5)  # past any 'too slow for the reference' bound a timing could set
        return np.asarray(x, dtype=np.float64) * 2.0

    return fb.Kernel(name="slow_double", signature="slow_double(x)", summary="twice the input, slowly",
                     defaults={"n": 4000}, quick={"n": 4000}, size_param="n",
                     make_args=lambda p, rng: (fb.price_walk(rng, p["n"]),), reference=reference,
                     check_inputs=lambda rng: [("n=3", (fb.price_walk(rng, 3),))], elements=lambda p: p["n"],
                     bytes_moved=lambda p: 16 * p["n"], validate=lambda p: None, rtol=1e-12, trial={"n": 10},
                     trusted=trusted, reference_elements=reference_elements)


def test_trusted_answer_is_chosen_by_size_alone():
    from factorbench.measure.check import trusted_answer

    answer, whose = trusted_answer(slow_reference_kernel(), {"n": 4000}, seed=0)
    assert whose == "reference" and answer.shape == (4000,)
    # the built-in kernels with Python-loop references: the same choice at the same size, on any machine
    ema = fb.kernel("ema")
    assert trusted_answer(ema, {"n": 2_000_000, "alpha": 0.1}, 0)[1] == "reference"
    assert trusted_answer(ema, {"n": 2_000_001, "alpha": 0.1}, 0)[1] == fb.implementation("ema", "vectorized").name
    with pytest.raises(ValueError, match="trusted='vectorized' needs reference_elements >= 1"):
        slow_reference_kernel(trusted="vectorized")
