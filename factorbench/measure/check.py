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


@dataclass(frozen=True)
class Mismatch:
    """How an output differs from the reference."""
    kind: str
    """The pattern, to group the cases that fail alike: shape, NaN pattern, infinity,
    constant factor, constant offset, shifted, values."""
    text: str
    """The first differing index and values, how many differ, and the pattern's hint."""


SYSTEMATIC = 1e-3
"""A pattern counts as constant when each position's factor (or offset) is within this
fraction of its distance from none (1, or 0) of the median's."""
SHIFTS = (1, -1, 2, -2)
"""Positions by which an output is tried against the reference shifted (a window's end
instead of its start)."""


def _index(flat: int, shape: tuple) -> str:
    return str(flat) if len(shape) <= 1 else str(tuple(int(i) for i in np.unravel_index(flat, shape)))


def _first(mask: np.ndarray, actual: np.ndarray, expected: np.ndarray) -> str:
    where = int(np.flatnonzero(mask.ravel())[0])
    return (f"first at index {_index(where, expected.shape)}: {float(actual.ravel()[where])!r} "
            f"vs reference {float(expected.ravel()[where])!r}")


def _constant(values: np.ndarray, none: float) -> float | None:
    """The common value of ``values`` when they all share one (that is not ``none``)."""
    if not values.size:
        return None
    middle = float(np.median(values))
    if middle == none or not np.all(np.abs(values - middle) <= SYSTEMATIC * abs(middle - none)):
        return None
    return middle


def _pattern(expected: np.ndarray, actual: np.ndarray, finite: np.ndarray, rtol: float, atol: float
             ) -> tuple[str, str]:
    """(kind, hint) of the values' systematic difference, or ("values", "")."""
    zero = finite & (expected == 0)
    nonzero = finite & ~zero
    # zeros stay zero under a factor: they must match and cannot tell the factor
    factor = (_constant(actual[nonzero] / expected[nonzero], 1.0)
              if np.all(np.abs(actual[zero]) <= atol) else None)
    if factor is not None:
        return "constant factor", f"every value off by a constant factor {factor:.6g}"
    offset = _constant(actual[finite] - expected[finite], 0.0)
    if offset is not None:
        return "constant offset", f"every value off by a constant {offset:+.6g}"
    if expected.ndim == 1:
        for shift in SHIFTS:
            if abs(shift) >= expected.size:
                continue
            later, earlier = (actual[shift:], expected[:-shift]) if shift > 0 else (actual[:shift], expected[-shift:])
            if np.allclose(later, earlier, rtol=rtol, atol=atol, equal_nan=True):
                return "shifted", f"the reference shifted by {shift} position(s)"
    return "values", ""


def explain(expected: np.ndarray, actual, rtol: float, atol: float) -> tuple[float, Mismatch | None]:
    """(max relative error, how ``actual`` differs or None when equal within tolerance):
    per pattern (shape, NaN, infinities, values) the first differing index, its values and
    how many differ, with a hint where the difference is systematic."""
    actual = np.asarray(actual)
    dtype = (f" (output dtype {actual.dtype}, the reference's {expected.dtype})"
             if actual.dtype != expected.dtype else "")
    if actual.shape != expected.shape:
        return float("inf"), Mismatch("shape", f"shape {actual.shape}, expected {expected.shape}{dtype}")
    expected_nan, actual_nan = np.isnan(expected), np.isnan(actual)
    finite = np.isfinite(expected) & np.isfinite(actual)
    nan_differs = expected_nan != actual_nan
    # An infinity must be matched exactly (its difference with itself is NaN, not 0).
    inf_differs = (np.isinf(expected) | np.isinf(actual)) & (actual != expected) & ~expected_nan & ~actual_nan
    diff = np.abs(actual[finite] - expected[finite])
    scale = np.abs(expected[finite])
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / scale, diff)
    bad = np.zeros(expected.shape, dtype=bool)
    bad[finite] = ~(diff <= atol + rtol * scale)
    max_error = float("inf") if nan_differs.any() or inf_differs.any() else float(np.max(rel)) if rel.size else 0.0
    parts: list[tuple[str, str]] = []
    if nan_differs.any():
        missing, extra = int((expected_nan & ~actual_nan).sum()), int((actual_nan & ~expected_nan).sum())
        rule = ", ".join(filter(None, [f"{missing} of the reference's NaN not NaN here" if missing else "",
                                       f"{extra} NaN where the reference is not" if extra else ""]))
        parts.append(("NaN pattern", f"NaN pattern differs at {missing + extra} of {expected.size} positions, "
                                     f"{_first(nan_differs, actual, expected)} ({rule}: the NaN rule differs)"))
    if inf_differs.any():
        parts.append(("infinity", f"infinity differs at {int(inf_differs.sum())} position(s), "
                                  f"{_first(inf_differs, actual, expected)}"))
    if bad.any():
        kind, hint = _pattern(expected, actual, finite, rtol, atol)
        parts.append((kind, f"{int(bad.sum())} of {int(finite.sum())} values differ, {_first(bad, actual, expected)} "
                            f"(relative error up to {float(np.max(rel)):.3g} > rtol {rtol:g})"
                            + (f": {hint}" if hint else "")))
    if not parts:
        return max_error, None
    return max_error, Mismatch(parts[0][0], "; and ".join(text for _, text in parts) + dtype)


def compare(expected: np.ndarray, actual, rtol: float, atol: float) -> tuple[bool, float, str]:
    """(equal within tolerance, max relative error, why not)."""
    max_error, mismatch = explain(expected, actual, rtol, atol)
    return mismatch is None, max_error, mismatch.text if mismatch else ""


MODIFIED = "modified"
"""The kind of failure of an implementation that wrote into its input: it stops a check."""
ALIKE_LABELS = 3
"""Further cases named when several fail alike."""


def summarize(failures: list[tuple[str, str, str]]) -> str:
    """One line from (case label, kind, how) of every failing case: the first case of each
    kind in full, then how many more failed alike."""
    by_kind: dict[str, list[tuple[str, str]]] = {}
    for label, kind, how in failures:
        by_kind.setdefault(kind, []).append((label, how))
    parts = []
    for cases in by_kind.values():
        (label, how), more = cases[0], [other for other, _ in cases[1:]]
        alike = ""
        if more:
            named = ", ".join(f"'{other}'" for other in more[:ALIKE_LABELS]) + (", ..." if len(more) > ALIKE_LABELS
                                                                                 else "")
            alike = f" [{len(more)} more case(s) alike: {named}]"
        parts.append(f"case '{label}': {how}{alike}")
    return "; ".join(parts)


@cache
def expected_outputs(kernel: str, seed: int) -> list[tuple[str, tuple, np.ndarray]]:
    """(label, args, expected) for every check case; the reference runs once per kernel."""
    spec = get_kernel(kernel)
    return [(label, args, spec.reference(*args)) for label, args in spec.check_inputs(np.random.default_rng(seed))]


def check(impl: Implementation, seed: int = 0, settings: dict | None = None) -> CheckResult:
    """Run ``impl`` (with ``settings`` as keywords) on every check case of its kernel; every
    mismatch is explained (cases failing alike once); a raise or a modified input stops
    the check."""
    spec = get_kernel(impl.kernel)
    settings = settings or {}
    max_error = 0.0
    cold_call_s = None
    failures: list[tuple[str, str, str]] = []
    for label, args, expected in expected_outputs(impl.kernel, seed):
        # order="K": an F-ordered check input must reach the implementation F-ordered.
        inputs = tuple(a.copy(order="K") if isinstance(a, np.ndarray) and a.flags.owndata else a for a in args)
        start = time.perf_counter()
        try:
            actual = impl(*inputs, **settings)
        except Exception as exc:
            failures.append((label, "raised", f"raised {type(exc).__name__}: {exc}"))
            return CheckResult(False, max_error, summarize(failures), cold_call_s or 0.0, raised=True)
        if cold_call_s is None:
            cold_call_s = time.perf_counter() - start
        if any(isinstance(before, np.ndarray) and not np.array_equal(before, after, equal_nan=True)
               for before, after in zip(args, inputs)):
            # stop: the next inputs may be views of what it wrote into
            failures.append((label, MODIFIED, "modified its input"))
            return CheckResult(False, max_error, summarize(failures), cold_call_s)
        error, mismatch = explain(expected, actual, spec.rtol, spec.atol)
        max_error = max(max_error, error)
        if mismatch is not None:
            failures.append((label, mismatch.kind, mismatch.text))
    return CheckResult(not failures, max_error, summarize(failures), cold_call_s or 0.0)


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
