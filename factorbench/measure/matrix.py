"""The correctness matrix: every implementation on every input class of its kernel.

The check (check.py) runs the kernel's check inputs, the "core" class, and decides
whether an implementation is timed. The matrix adds the kernel's other input classes
(infinities, dtypes, array-likes, read-only, views, large levels, extreme parameters,
empty and wrong inputs) and profiles each: pass, wrong (largest error and the first bad
index) or raises (exception type and message). A class whose reference raises ValueError
expects that same ValueError, message included, from every implementation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from typing import Literal

import numpy as np

from factorbench.kernels import InputClass, Kernel
from factorbench.kernels import kernel as get_kernel
from factorbench.measure.check import MODIFIED, CheckResult, check, explain, summarize
from factorbench.registry import Implementation

CORE = "core"
"""The class of the check inputs: the only one that decides whether a row is timed."""
Outcome = Literal["pass", "wrong", "raises", "unavailable"]
REASON_CHARS = 800
"""A cell's reason is cut here: every way its cases failed, each with its first index."""


PROFILE_KEY = "correctness_profile"
"""Key under which a worker hands an implementation's matrix row to the runner, in the
first row's ``extra``; the runner moves it to the results' ``correctness`` list."""

@dataclass
class Cell:
    """One implementation on one input class."""
    input_class: str
    outcome: Outcome
    case: str = ""
    """The first case of the class that failed (empty when it passed)."""
    reason: str = ""
    """How it failed, in one line: how the first case failed, then each other way a case
    of the class failed, with its case and first differing index."""
    max_error: float | None = None
    first_bad_index: int | None = None
    """Flat index of the first output element that differs (wrong outcomes)."""
    exception: str | None = None
    message: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in ("pass", "unavailable")


@dataclass
class Profile:
    kernel: str
    implementation: str
    paradigm: str
    settings: dict = field(default_factory=dict)
    ours: bool = True
    """False for the baseline libraries (``Paradigm(baseline_library=True)``): their deviations are
    findings, not failures."""
    reason: str = ""
    """Why it is unavailable (empty when it ran)."""
    cells: list[Cell] = field(default_factory=list)

    @property
    def failures(self) -> list[Cell]:
        return [cell for cell in self.cells if not cell.ok]

    def to_json(self) -> dict:
        return asdict(self)


def is_ours(impl: Implementation) -> bool:
    return not impl.baseline_library


@dataclass(frozen=True)
class Expected:
    label: str
    output: np.ndarray | None
    error: str | None
    """The reference's ValueError message, when it raises."""


def _expect(spec: Kernel, label: str, args: tuple) -> Expected:
    try:
        with np.errstate(all="ignore"):
            return Expected(label, spec.reference(*args), None)
    except ValueError as exc:
        return Expected(label, None, str(exc))


def _class_cases(kernel: str, seed: int) -> list[tuple[InputClass, list[tuple[str, tuple]]]]:
    """Every non-core class of ``kernel`` with its (label, args) cases, drawn afresh: inputs
    are not kept between profiles (a paradigm may hold resources as long as an input lives,
    e.g. a shared-memory copy)."""
    rng = np.random.default_rng(seed)
    return [(cls, list(cls.cases(rng))) for cls in get_kernel(kernel).classes]


@cache
def expected_outputs(kernel: str, seed: int) -> dict[str, list[Expected]]:
    """Per class, its cases' expected outcomes: the reference runs once per kernel and seed."""
    spec = get_kernel(kernel)
    return {cls.name: [_expect(spec, label, args) for label, args in cases]
            for cls, cases in _class_cases(kernel, seed)}


def _copy(value):
    """A fresh copy of an argument, keeping its layout, flags and type (read-only stays read-only)."""
    if isinstance(value, np.ndarray):
        if value.base is not None and not value.flags.owndata:
            return value  # a view: copying would lose its strides; it is compared after the call
        copy = value.copy(order="K")
        copy.flags.writeable = value.flags.writeable
        return copy
    return value


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS - 1] + "…"


def first_bad_index(expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float) -> int | None:
    if actual.shape != expected.shape:
        return None
    with np.errstate(invalid="ignore"):
        same = (expected == actual) | (np.isnan(expected) & np.isnan(actual)) | (
            np.abs(actual - expected) <= atol + rtol * np.abs(expected))
    bad = np.flatnonzero(~same.ravel())
    return int(bad[0]) if bad.size else None


def _run_case(call: Callable, spec: Kernel, cls: InputClass, args: tuple, case: Expected) -> tuple[Cell, str] | None:
    """None when the case passes, else the failing cell and its kind of failure (cases
    failing alike are summarized once)."""
    inputs = tuple(_copy(a) for a in args)
    try:
        actual = call(*inputs)
    except Exception as exc:
        message = _short(str(exc))
        if case.error is not None and isinstance(exc, ValueError) and str(exc) == case.error:
            return None
        expected = f" (expected ValueError: {_short(case.error)})" if case.error is not None else ""
        return Cell(cls.name, "raises", case.label, f"{type(exc).__name__}: {message}{expected}",
                    exception=type(exc).__name__, message=message), f"raises {type(exc).__name__}"
    if case.error is not None:
        return Cell(cls.name, "wrong", case.label,
                    f"returned a result; expected ValueError: {_short(case.error)}"), "no ValueError"
    for before, after in zip(args, inputs):
        if isinstance(before, np.ndarray) and before is not after and not np.array_equal(before, after, equal_nan=True):
            return Cell(cls.name, "wrong", case.label, "modified its input"), MODIFIED
    assert case.output is not None
    actual = np.asarray(actual)
    rtol = spec.rtol if cls.rtol is None else cls.rtol
    atol = spec.atol if cls.atol is None else cls.atol
    if actual.dtype != np.float64:
        return Cell(cls.name, "wrong", case.label, f"output dtype {actual.dtype}, expected float64"), "dtype"
    error, mismatch = explain(case.output, actual, rtol, atol)
    if mismatch is None:
        return None
    return Cell(cls.name, "wrong", case.label, mismatch.text, max_error=error,
                first_bad_index=first_bad_index(case.output, actual, rtol, atol)), mismatch.kind


def _class_cell(name: str, failed: list[tuple[Cell, str]]) -> Cell:
    """One class's cell: its first failing case, with every way its cases failed explained."""
    if not failed:
        return Cell(name, "pass")
    first = failed[0][0]
    reason = summarize([(cell.case, kind, cell.reason) for cell, kind in failed])
    # The first case is the cell's own: its label is already in ``case``.
    return replace(first, reason=_short(reason.removeprefix(f"case '{first.case}': ")))


def profile(impl: Implementation, seed: int = 0, settings: dict | None = None,
            classes: Iterable[str] | None = None, core: CheckResult | None = None) -> Profile:
    """``impl`` (with ``settings``) on the core class and every other class of its kernel
    (``classes``: only those); ``core`` is the check's result when it already ran."""
    settings = dict(settings or {})
    result = Profile(impl.kernel, impl.name, impl.paradigm, settings, ours=is_ours(impl))
    if not impl.available:
        result.reason = impl.reason or ""
        return result
    spec = get_kernel(impl.kernel)
    wanted = set(classes) if classes is not None else None
    if wanted is None or CORE in wanted:
        if core is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                core = check(impl, seed, settings)
        outcome: Outcome = "pass" if core.ok else "raises" if core.raised else "wrong"
        result.cells.append(Cell(CORE, outcome, reason=_short(core.message),
                                 max_error=None if core.ok else core.max_error))

    def call(*args):
        # Infinities and NaN are the point of several classes: their warnings are expected.
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return impl(*args, **settings)

    expected = expected_outputs(impl.kernel, seed)
    for cls, cases in _class_cases(impl.kernel, seed):
        if wanted is not None and cls.name not in wanted:
            continue
        failed: list[tuple[Cell, str]] = []
        for (_, args), case in zip(cases, expected[cls.name]):
            failure = _run_case(call, spec, cls, args, case)
            if failure is not None:
                failed.append(failure)
                if failure[1] == MODIFIED:
                    break  # the class's next inputs may be views of what it wrote into
        result.cells.append(_class_cell(cls.name, failed))
    return result


def class_names(kernel: str) -> list[str]:
    return [CORE, *(cls.name for cls in get_kernel(kernel).classes)]


def short_names(kernel: str) -> dict[str, str]:
    return {CORE: CORE, **{cls.name: cls.short for cls in get_kernel(kernel).classes}}


def failing(profiles: Iterable[Profile]) -> list[Profile]:
    """Our implementations that fail a class (the library baselines never count)."""
    return [p for p in profiles if p.ours and p.failures]


def matrix_settings(settings: dict[str, tuple]) -> dict:
    """The settings ``factorbench check`` profiles at: the most parallel default of each
    numeric setting (so chunk boundaries are crossed), the first default of the others
    (Dask's threaded scheduler)."""
    chosen = {}
    for key, values in settings.items():
        numeric = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
        chosen[key] = max(values) if numeric else values[0]
    return chosen
