"""One implementation (with its settings) on one case: check, fit the size, time, and
check one timed call's output at that size. The same code runs in a worker process
(factorbench.measure.worker) and, with ``--in-process``, in the runner itself."""

from __future__ import annotations

import functools
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from factorbench.kernels import Kernel
from factorbench.measure import sizing, stats
from factorbench.measure.check import CheckResult, check, check_at_size, fingerprint
from factorbench.measure.matrix import PROFILE_KEY, profile
from factorbench.measure.memory import out_of_memory, peak_rss_bytes, reset_peak_rss
from factorbench.measure.timer import measure
from factorbench.registry import Implementation
from factorbench.results.schema import Measurement, Status

CALLS_NEEDED = 4
"""A measurement needs a warm-up call and at least three samples."""

DEVIATES = "baseline library, deviates from the reference"
"""How a baseline's row (``Paradigm(baseline_library=True)``) begins its reason where its output
differs: it is timed and ranked as it is."""
ExpectedFor = Callable[[dict], np.ndarray | None]
"""The trusted answer at the given params (computed once per size, by the first worker that
needs it), or None when none could be computed (the row then says so)."""


@dataclass
class Session:
    """What one worker keeps across an implementation's cases: its check results."""
    checks: dict[str, CheckResult] = field(default_factory=dict)
    memory_limit: str = "none set"
    """The memory limit this process runs under, in words, for an out-of-memory row."""


def blank(spec: Kernel, impl: Implementation, settings: dict, params: dict, status: Status, reason: str,
          **fields) -> Measurement:
    return Measurement(kernel=spec.name, implementation=impl.name, paradigm=impl.paradigm, params=dict(params),
                       status=status, reason=reason, times=[], median=None, settings=settings, **fields)


def measure_case(spec: Kernel, impl: Implementation, settings: dict, params: dict, options,
                 expected_for: ExpectedFor, session: Session, later_round: bool = False) -> Measurement:
    """The row of ``impl`` on the case ``params``; exceptions become ``failed`` rows.

    ``later_round``: a round after the first, which checked the implementation and fitted
    the size (``params`` is that size): it only times and checks the output at size."""
    started = time.perf_counter()
    reset_peak_rss()
    if later_round:
        try:
            record = _timed(spec, impl, settings, params, options, None, expected_for)
        except Exception as exc:
            record = _raised(spec, impl, settings, params, exc, session)
        record.elapsed_s, record.peak_rss_bytes = time.perf_counter() - started, peak_rss_bytes()
        return record
    key = json.dumps(settings, sort_keys=True)
    first = key not in session.checks
    if first:
        session.checks[key] = check(impl, options.seed, settings)
    check_result = session.checks[key]
    if not check_result.ok and (check_result.raised or not impl.baseline_library):
        record = blank(spec, impl, settings, params, "failed" if check_result.raised else "wrong",
                       check_result.message, max_error=check_result.max_error, cold_call_s=check_result.cold_call_s)
    elif impl.untimed_reason:
        record = blank(spec, impl, settings, params, "skipped",
                       f"not timed: {impl.untimed_reason}; correctness check passed",
                       max_error=check_result.max_error, cold_call_s=check_result.cold_call_s,
                       extra=impl.metrics() if impl.metrics else {})
    else:
        try:
            record = _timed(spec, impl, settings, params, options, check_result, expected_for)
        except Exception as exc:
            record = _raised(spec, impl, settings, params, exc, session)
    if first:
        # Every input class, for the report; only the check above decides timing. Run
        # here, in the worker, since it calls the implementation.
        record.extra[PROFILE_KEY] = profile(impl, options.seed, settings, core=check_result).to_json()
    record.elapsed_s, record.peak_rss_bytes = time.perf_counter() - started, peak_rss_bytes()
    return record


def _raised(spec: Kernel, impl: Implementation, settings: dict, params: dict, exc: Exception,
            session: Session) -> Measurement:
    """The row of a call that raised: ``failed``, or ``crashed`` out of memory (a MemoryError
    is the memory limit, as an OOM kill would be, not the implementation's fault)."""
    extra = {"traceback": traceback.format_exc(limit=5)}
    if isinstance(exc, MemoryError):
        return blank(spec, impl, settings, params, "crashed",
                     out_of_memory(f"MemoryError: {exc}", peak_rss_bytes(), session.memory_limit), extra=extra)
    return blank(spec, impl, settings, params, "failed", f"{type(exc).__name__}: {exc}", extra=extra)


def _timed(spec: Kernel, impl: Implementation, settings: dict, params: dict, options,
           check_result: CheckResult | None, expected_for: ExpectedFor) -> Measurement:
    """Fit the size (unless ``check_result`` is None: a later round, at the first's size),
    time, and check one timed call's output at that size."""
    checked_error = check_result.max_error if check_result else 0.0
    deviation = f"{DEVIATES}: {check_result.message}" if check_result and not check_result.ok else ""
    record = blank(spec, impl, settings, params, "ok", deviation,
                   cold_call_s=check_result.cold_call_s if check_result else None, max_error=checked_error)
    call = functools.partial(impl, **settings)
    if check_result is not None:
        fitted = sizing.fit(spec, call, params, options.time_budget_s / CALLS_NEEDED, options.seed)
        if fitted.params is None:
            record.status, record.reason = "timeout", f"exceeds the {options.time_budget_s:g} s budget: {fitted.note}"
            return record
        if fitted.params is not params:
            record.params, record.requested_params = dict(fitted.params), dict(params)
            record.reason = "; ".join(filter(None, [
                record.reason, fitted.note.replace("the time budget", f"the {options.time_budget_s:g} s time budget")]))
    args = spec.make_args(record.params, np.random.default_rng(options.seed))
    digests = fingerprint(args)
    last_output: list = [None]

    def timed_call():
        last_output[0] = call(*args)

    # The budget is shared by the rounds; each samples to the precision on its own.
    timing = measure(timed_call, repeat=options.repeat, min_sample_s=options.min_sample_s,
                     budget_s=options.time_budget_s / options.rounds, precision=options.precision)
    record.times, record.median, record.iqr = timing.times, timing.median, timing.iqr
    record.calls_per_sample, record.warmup_s = timing.calls_per_sample, timing.warmup_s
    record.stopped_by = timing.stopped_by
    record.cv = stats.cv(timing.times)
    ci = stats.median_ci(timing.times)
    record.ci_low, record.ci_high = ci if ci else (None, None)
    record.unstable = stats.unstable(timing.times, timing.median * timing.calls_per_sample)
    record.elements, record.bytes_moved = spec.elements(record.params), spec.bytes_moved(record.params)
    record.output_bytes = spec.output_bytes(record.params) if spec.output_bytes else None
    if impl.metrics is not None:
        record.extra.update(impl.metrics())
    expected = expected_for(record.params)
    if expected is None:
        record.reason = "; ".join(filter(None, [record.reason, "no trusted answer at this size: output not checked"]))
        return record
    ok, error, why = check_at_size(spec, last_output[0], expected, args, digests)
    last_output[0] = None
    record.checked_at_size = True
    record.max_error = max(checked_error, error)
    if not ok and impl.baseline_library:
        if not deviation:
            record.reason = "; ".join(filter(None, [f"{DEVIATES} {why}", record.reason]))
    elif not ok:
        record.status = "wrong"
        record.reason = "; ".join(filter(None, [why, record.reason]))
    return record
