"""Benchmarks read from the factorbench registry: one per (kernel, implementation,
settings), with its sizes, memory-order variants and a version hash of its code.

The asv suite (kernels.py), the pytest-benchmark module and the callgrind counter all
build on these, so a new paradigm appears in every one of them with no list to edit.
This lives beside the asv suite rather than in the package because asv runs the suite
of the working tree against every commit it measures, including commits whose
factorbench predates this file: it uses only the package's public API. It is also
installed, as ``factorbench.benchmarks``, for the thin suite ``factorbench init`` writes
into another repository; there ``SCOPE_ENV=plugins`` keeps the suite to the plugins'
code, since factorbench's own implementations are the same at every commit.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import factorbench as fb
from factorbench.kernels import Kernel
from factorbench.measure import sizing
from factorbench.measure.check import check, check_at_size, fingerprint, trusted_answer
from factorbench.measure.runner import RunOptions, settings_sweep
from factorbench.results.format import params as fb_params

SEED = 0
CALL_LIMIT_S = 1.5
"""An implementation whose one call would take longer than this at a size (the Python
loops at medium size) is skipped there, so a full ``asv run`` stays within minutes."""
MEMORY_HEAVY_BYTES = 256 * 2**20
"""Kernels moving at least this much per call at default size get ``peakmem_`` benchmarks."""
BASELINE_PARADIGM = "loop"
"""Speed-ups are quoted against this paradigm, as in the CLI tables."""
SCOPE_ENV = "FACTORBENCH_SUITE_SCOPE"
"""``plugins``: only implementations a plugin defines, and every implementation of a kernel
a plugin defines; unset: everything in the registry."""


def identifier(text: str) -> str:
    return re.sub(r"\W", "_", text)


def source_text(func) -> str:
    """The function's source; a compiled function without source counts by its name."""
    try:
        return inspect.getsource(func)
    except (OSError, TypeError):
        # a callable object (the GPU paradigms' DeviceCall) by its class: its repr holds
        # an address, which gave it a new version in every process
        return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', type(func).__qualname__)}"


def sizes(spec: Kernel) -> tuple[int, ...]:
    """(small, medium) values of the kernel's size parameter.

    Medium is the ``--quick`` size; small is one LADDER step above the kernel's trial size
    (the size model's first step): big enough to leave call overhead behind, small
    enough for a Python loop to finish in well under a second.
    """
    medium = {**spec.defaults, **spec.quick}[spec.size_param]
    trial = spec.trial.get(spec.size_param)
    small = trial * sizing.LADDER if trial else medium
    return tuple(sorted({min(small, medium), medium}))


def param_grid(spec: Kernel, medium_only: bool = False) -> list[list]:
    """asv's params: the sizes, crossed with every variant (memory order...)."""
    chosen = sizes(spec)[-1:] if medium_only else sizes(spec)
    return [list(chosen), *(list(values) for values in spec.variants.values())]


@dataclass(frozen=True)
class Benchmark:
    impl: fb.Implementation
    setting_items: tuple = ()
    """(name, value) pairs of the implementation's settings for this case (hashable)."""

    @property
    def settings(self) -> dict:
        return dict(self.setting_items)

    @property
    def spec(self) -> Kernel:
        return fb.kernel(self.impl.kernel)

    @property
    def name(self) -> str:
        """A Python identifier: kernel__implementation[__setting_value...]."""
        parts = [self.impl.kernel, self.impl.name, *(f"{k}_{v}" for k, v in self.settings.items())]
        return "__".join(identifier(str(part)) for part in parts)

    @property
    def label(self) -> str:
        settings = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return f"{self.impl.kernel}/{self.impl.name}" + (f" ({settings})" if settings else "")

    @property
    def param_names(self) -> list[str]:
        return [self.spec.size_param, *self.spec.variants]

    @property
    def params(self) -> list[list]:
        return param_grid(self.spec)

    @property
    def medium_params(self) -> list[list]:
        return param_grid(self.spec, medium_only=True)

    @property
    def version(self) -> str:
        """Changes with the implementation's source, so asv restarts its history then."""
        return hashlib.sha256(f"{source_text(self.impl.func)}{self.setting_items!r}".encode()).hexdigest()[:16]

    def kernel_params(self, size, *variants) -> dict:
        spec = self.spec
        return {**spec.defaults, **spec.quick, spec.size_param: size,
                **dict(zip(spec.variants, variants))}

    def call(self, *args):
        return self.impl(*args, **self.settings)


def is_builtin(func) -> bool:
    return getattr(func, "__module__", "").startswith("factorbench.")


def in_scope(impl: fb.Implementation) -> bool:
    if os.environ.get(SCOPE_ENV) != "plugins":
        return True
    return not is_builtin(impl.func) or not is_builtin(fb.kernel(impl.kernel).reference)


def all_cases(kernel: str | None = None) -> list[Benchmark]:
    return [Benchmark(impl, tuple(settings.items())) for impl in fb.implementations(kernel)
            for settings in settings_sweep(impl, RunOptions())]


def benchmarks(kernel: str | None = None) -> list[Benchmark]:
    """Every (kernel, implementation, settings) case in scope, available or not."""
    return [case for case in all_cases(kernel) if in_scope(case.impl)]


def baseline(case: Benchmark) -> Benchmark | None:
    """The first available baseline-paradigm case of the same kernel (None for a baseline),
    in scope or not."""
    if case.impl.paradigm == BASELINE_PARADIGM:
        return None
    return next((other for other in all_cases(case.impl.kernel)
                 if other.impl.paradigm == BASELINE_PARADIGM and other.impl.available), None)


def is_memory_heavy(spec: Kernel) -> bool:
    return spec.bytes_moved(dict(spec.defaults)) >= MEMORY_HEAVY_BYTES


class ImplementationError(AssertionError):
    """The implementation is at fault, not the harness: ``status`` is ``wrong`` (a wrong
    answer or a modified input) or ``failed`` (it raised)."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status


@functools.cache
def checked(case: Benchmark) -> None:
    """Raise unless the case runs here and matches the reference (checked once per process);
    a baseline library only has to run."""
    if not case.impl.available:
        raise NotImplementedError(f"{case.label} is unavailable: {case.impl.reason}")
    result = check(case.impl, SEED, case.settings)
    if not result.ok and (result.raised or not case.impl.baseline_library):  # a baseline's deviation is timed
        raise ImplementationError("failed" if result.raised else "wrong",
                                  f"{case.label} failed the correctness check: {result.message}")


@functools.lru_cache(maxsize=4)
def inputs(kernel: str, params_key: tuple) -> tuple:
    """Seeded call arguments, built once and kept for every sample (a few sizes at a time:
    the pytest-benchmark run goes through every case in one process)."""
    return fb.kernel(kernel).make_args(dict(params_key), np.random.default_rng(SEED))


def prepare(case: Benchmark, size, *variants) -> tuple:
    """Check the benchmark, refuse sizes too slow for it, and return the call arguments."""
    checked(case)
    params = case.kernel_params(size, *variants)
    if not fits(case, tuple(params.items())):
        raise NotImplementedError(f"{case.label} takes over {CALL_LIMIT_S:g} s a call at "
                                  f"{case.spec.size_param}={size}; measured at smaller sizes only")
    args = inputs(case.impl.kernel, tuple(params.items()))
    checked_at_size(case, tuple(params.items()))
    return args


@functools.cache
def checked_at_size(case: Benchmark, params_key: tuple) -> None:
    """Raise unless one call's output at this size matches the trusted answer there and
    leaves its input unchanged: the check `factorbench run` makes of a timed call."""
    params, spec = dict(params_key), case.spec
    args = spec.make_args(params, np.random.default_rng(SEED))
    digests = fingerprint(args)
    expected, _ = trusted_answer(spec, params, SEED)
    try:
        actual = case.call(*args)
    except Exception as exc:
        raise ImplementationError("failed", f"{case.label} raised at {fb_params(params)}: "
                                            f"{type(exc).__name__}: {exc}") from exc
    ok, _, why = check_at_size(spec, actual, expected, args, digests)
    if not ok and not case.impl.baseline_library:
        raise ImplementationError("wrong", f"{case.label} is wrong at {fb_params(params)}: {why}")


@functools.cache
def fits(case: Benchmark, params_key: tuple) -> bool:
    """Whether one call at these params is predicted to stay under CALL_LIMIT_S, by the
    size model `factorbench run` uses (factorbench.measure.sizing), climbing from the
    small size, so the verdict is the same in every asv process: a benchmark skipped in
    one run and timed in the next would break its history."""
    params, spec = dict(params_key), case.spec
    start = {**params, spec.size_param: sizes(spec)[0]}
    fitted = sizing.fit(spec, case.call, params, CALL_LIMIT_S, SEED, start=start)
    return fitted.params == params


def is_figure(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def write_metric_keys(path: str) -> None:
    """Numeric ``metrics()`` keys of every available case after one call on its kernel's
    first (smallest) check input, as JSON ``{case name: [keys]}``: the keys a figure
    exists for are only known once the implementation has run."""
    found = {}
    for case in benchmarks():
        if case.impl.metrics is None or not case.impl.available:
            continue
        _, args = next(iter(case.spec.check_inputs(np.random.default_rng(SEED))))
        try:
            case.call(*args)
            found[case.name] = sorted(key for key, value in case.impl.metrics().items() if is_figure(value))
        except Exception:  # the suite's gate reports a broken implementation
            continue
    Path(path).write_text(json.dumps(found))
