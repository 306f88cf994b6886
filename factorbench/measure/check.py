"""The correctness check: an implementation is compared with the float64 reference on
awkward inputs before it is ever timed."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from functools import cache

import numpy as np

from factorbench.kernels import Kernel
from factorbench.kernels import kernel as get_kernel
from factorbench.registry import Implementation, implementation


@dataclass
class CheckResult:
    ok: bool
    max_error: float
    """Largest relative error seen over the cases that ran (0.0 when identical)."""
    message: str = ""
    """What failed: the case label and how (empty when ok)."""
    cold_call_s: float = 0.0
    """Duration of the very first call: compile or start-up time for JIT/GPU paradigms."""
    raised: bool = False
    """True when the implementation raised instead of returning a wrong value."""


def compare(expected: np.ndarray, actual, rtol: float, atol: float) -> tuple[bool, float, str]:
    """(equal within tolerance, max relative error, why not)."""
    actual = np.asarray(actual)
    if actual.shape != expected.shape:
        return False, float("inf"), f"shape {actual.shape}, expected {expected.shape}"
    expected_nan, actual_nan = np.isnan(expected), np.isnan(actual)
    if not np.array_equal(expected_nan, actual_nan):
        where = int(np.flatnonzero((expected_nan != actual_nan).ravel())[0])
        return False, float("inf"), (f"NaN pattern differs first at flat index {where}: "
                                     f"{float(actual.ravel()[where])!r} vs reference {float(expected.ravel()[where])!r}")
    # An infinity must be matched exactly (its difference with itself is NaN, not 0).
    expected_inf = np.isinf(expected)
    if expected_inf.any() or np.isinf(actual).any():
        unequal = (np.isinf(actual) | expected_inf) & (actual != expected)
        if unequal.any():
            where = int(np.flatnonzero(unequal.ravel())[0])
            return False, float("inf"), (f"infinity differs first at flat index {where}: "
                                         f"{float(actual.ravel()[where])!r} vs reference {float(expected.ravel()[where])!r}")
    finite = ~expected_nan & ~expected_inf
    if not finite.any():
        return True, 0.0, ""
    diff = np.abs(actual[finite] - expected[finite])
    scale = np.abs(expected[finite])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / scale, diff)
    max_error = float(np.max(rel))
    if not np.all(diff <= atol + rtol * scale):
        worst = int(np.argmax(diff - rtol * scale))
        return False, max_error, (f"value {actual[finite][worst]!r} vs reference {expected[finite][worst]!r} "
                                  f"(relative error {max_error:.3g} > rtol {rtol:g})")
    return True, max_error, ""


@cache
def expected_outputs(kernel: str, seed: int) -> list[tuple[str, tuple, np.ndarray]]:
    """(label, args, expected) for every check case; the reference runs once per kernel."""
    spec = get_kernel(kernel)
    return [(label, args, spec.reference(*args)) for label, args in spec.check_inputs(np.random.default_rng(seed))]


def check(impl: Implementation, seed: int = 0, settings: dict | None = None) -> CheckResult:
    """Run ``impl`` (with ``settings`` as keywords) on every check case of its kernel;
    stop at the first mismatch."""
    spec = get_kernel(impl.kernel)
    settings = settings or {}
    max_error = 0.0
    cold_call_s = None
    for label, args, expected in expected_outputs(impl.kernel, seed):
        # order="K": an F-ordered check input must reach the implementation F-ordered.
        inputs = tuple(a.copy(order="K") if isinstance(a, np.ndarray) and a.flags.owndata else a for a in args)
        start = time.perf_counter()
        try:
            actual = impl(*inputs, **settings)
        except Exception as exc:
            return CheckResult(False, max_error, f"case '{label}': raised {type(exc).__name__}: {exc}",
                              cold_call_s or 0.0, raised=True)
        if cold_call_s is None:
            cold_call_s = time.perf_counter() - start
        for before, after in zip(args, inputs):
            if isinstance(before, np.ndarray) and not np.array_equal(before, after, equal_nan=True):
                return CheckResult(False, max_error, f"case '{label}': modified its input", cold_call_s)
        ok, error, why = compare(expected, actual, spec.rtol, spec.atol)
        max_error = max(max_error, error)
        if not ok:
            return CheckResult(False, max_error, f"case '{label}': {why}", cold_call_s)
    return CheckResult(True, max_error, "", cold_call_s or 0.0)


class UntrustedAnswer(Exception):
    """The implementation a kernel names as trusted does not pass its own check."""


@cache
def _trusted_check(kernel: str, paradigm: str, seed: int) -> Implementation:
    impl = implementation(kernel, paradigm)
    result = check(impl, seed)
    if not result.ok:
        raise UntrustedAnswer(f"{impl.name}, the implementation kernel {kernel!r} trusts at large sizes, fails its "
                              f"check: {result.message}")
    return impl


def trusted_answer(spec: Kernel, params: dict, seed: int) -> tuple[np.ndarray, str]:
    """The answer at ``params``' size, and whose it is: the reference, or above the
    kernel's ``reference_elements`` the implementation it names as ``trusted``, checked
    first. Chosen by size alone, never by a timing, so every machine and a callgrind run
    compare with the same answer."""
    args = spec.make_args(params, np.random.default_rng(seed))
    if spec.trusted is None or spec.elements(params) <= spec.reference_elements:
        return np.asarray(spec.reference(*args)), "reference"
    impl = _trusted_check(spec.name, spec.trusted, seed)
    return np.asarray(impl(*args)), impl.name


def fingerprint(args: tuple) -> list[bytes | None]:
    """A digest of each array argument's contents, to catch an implementation that writes
    into its input (without keeping a second copy of a large array)."""
    digests: list[bytes | None] = []
    for value in args:
        if not isinstance(value, np.ndarray):
            digests.append(None)
            continue
        flat = value if value.flags.c_contiguous else value.T if value.flags.f_contiguous else np.ascontiguousarray(value)
        digests.append(hashlib.blake2b(flat.view(np.uint8).data if flat.ndim else flat.tobytes()).digest())
    return digests


def check_at_size(spec: Kernel, actual, expected: np.ndarray, args: tuple, digests: list[bytes | None]
                  ) -> tuple[bool, float, str]:
    """(ok, max relative error, why not) for one timed call's output at benchmark size."""
    if fingerprint(args) != digests:
        return False, 0.0, "modified its input at this size"
    ok, error, why = compare(expected, actual, spec.rtol, spec.atol)
    return ok, error, "" if ok else f"at this size: {why}"
