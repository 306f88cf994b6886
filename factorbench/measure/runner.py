"""The benchmark runner: plan (kernel, params) cases, check each implementation, fit slow
ones into the time budget, time them, and record every outcome."""

from __future__ import annotations

import datetime
import functools
import itertools
import json
import os
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from factorbench.kernels import Kernel
from factorbench.kernels import kernel as get_kernel
from factorbench.kernels import kernels as kernel_names
from factorbench.measure import affinity, floors, machine, sizing, threads
from factorbench.measure.check import CheckResult, check
from factorbench.measure.matrix import Profile, profile
from factorbench.measure.timer import measure
from factorbench.registry import Implementation, artifacts_in, implementations
from factorbench.results.schema import Measurement, document, write
from factorbench.workloads import run_workload, workload, workloads

CALLS_NEEDED = 4
"""A measurement needs a warm-up call and at least three samples."""

@dataclass
class RunOptions:
    kernels: list[str] = field(default_factory=list)
    """Kernel names; empty means all."""
    paradigms: list[str] = field(default_factory=list)
    implementations: list[str] = field(default_factory=list)
    """Implementation names (e.g. 'bottleneck'); empty means all."""
    sizes: list[int] = field(default_factory=list)
    """Values of each kernel's size parameter; several give a scaling series."""
    params: dict[str, Any] = field(default_factory=dict)
    """Overrides of kernel parameters (window, alpha, cols, ...); applied where a kernel has them."""
    quick: bool = False
    repeat: int = 7
    min_sample_s: float = 0.05
    time_budget_s: float = 10.0
    """Per implementation and case: a slower one is measured at a smaller size, labelled."""
    workloads: list[str] | None = None
    """Workload names; None runs every workload unless kernels, paradigms or
    implementations were chosen. Workloads chosen without any of those run alone."""
    seed: int = 0
    threads: list[int] = field(default_factory=list)
    """Thread counts: pools are limited to the largest; implementations with a 'threads'
    setting are measured at each."""
    settings: dict[str, list] = field(default_factory=dict)
    """Values for implementation settings (processes, scheduler, ...), overriding their defaults."""
    cpus: list[int] = field(default_factory=list)
    """CPUs the runner and the worker processes it starts are pinned to; empty: unchanged."""
    artifacts_dir: str | None = None
    """Where files for the report go (task graphs, profiles); default: beside the results
    file, named after it ('results-artifacts/' for 'results.json')."""

    def to_json(self) -> dict:
        return asdict(self)


def validate_options(options: RunOptions) -> None:
    """Raise ValueError for any choice the run cannot honour, before anything runs."""
    for name in options.kernels:
        get_kernel(name)
    for name in options.paradigms:
        implementations(paradigm=name)
    if options.implementations:
        known = {impl.name for impl in implementations()}
        for name in options.implementations:
            if name not in known:
                raise ValueError(f"unknown implementation {name!r}; choose from: {', '.join(sorted(known))}")
    chosen_workloads = [workload(name) for name in selected_workloads(options)]
    if options.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {options.repeat}")
    if options.time_budget_s <= 0:
        raise ValueError(f"--time-budget must be > 0, got {options.time_budget_s}")
    if any(count < 1 for count in options.threads):
        raise ValueError(f"--threads must be positive, got {options.threads}")
    for size in options.sizes:
        if size <= 0:
            raise ValueError(f"--size must be a positive integer, got {size}")
    for count in options.settings.get("processes", []):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"--processes must be positive integers, got {count!r}")
    affinity.check(options.cpus)
    cases = plan(options) if runs_kernels(options) else []
    used = {key for _, params in cases for key in params}
    for spec in chosen_workloads:
        used |= set(spec.params)
        if not spec.reason:
            spec.parameters(options)  # raises ValueError for a bad value
    unused = sorted(set(options.params) - used)
    if unused:
        kernels = sorted({spec.name for spec, _ in cases})
        chosen = ", ".join([*kernels, *(f"workload {spec.name}" for spec in chosen_workloads)]) or "none"
        raise ValueError(f"parameter(s) {', '.join(unused)} belong to none of the selected kernels "
                         f"or workloads ({chosen})")
    for kernel_spec, params in cases:
        try:
            kernel_spec.validate(params)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{kernel_spec.name}: {exc}") from None


def plan(options: RunOptions) -> list[tuple[Kernel, dict]]:
    """Every (kernel, params) case of the run, variants (e.g. memory order) expanded."""
    cases = []
    for name in options.kernels or kernel_names():
        spec = get_kernel(name)
        base = dict(spec.defaults)
        if options.quick:
            base.update(spec.quick)
        base.update({k: v for k, v in options.params.items() if k in spec.defaults})
        sizes = options.sizes or [base[spec.size_param]]
        variant_keys = [k for k in spec.variants if k not in options.params]
        for size in sizes:
            for values in itertools.product(*(spec.variants[k] for k in variant_keys)):
                cases.append((spec, {**base, spec.size_param: size, **dict(zip(variant_keys, values))}))
    return cases


def runs_kernels(options: RunOptions) -> bool:
    """False when only workloads were asked for (--workload without a kernel filter)."""
    return options.workloads is None or bool(options.kernels or options.paradigms or options.implementations)


def selected_workloads(options: RunOptions) -> list[str]:
    if options.workloads is not None:
        return options.workloads
    filtered = options.kernels or options.paradigms or options.implementations
    return [] if filtered else workloads()


def selected(options: RunOptions, kernel: str) -> list[Implementation]:
    return [impl for impl in implementations(kernel)
            if (not options.paradigms or impl.paradigm in options.paradigms)
            and (not options.implementations or impl.name in options.implementations)]


def settings_sweep(impl: Implementation, options: RunOptions) -> list[dict]:
    """Every combination of the implementation's settings this run measures."""
    supplied = {"threads": options.threads, **options.settings}
    keys = list(impl.settings)
    values = [supplied.get(key) or impl.settings[key] for key in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def measure_one(spec: Kernel, impl: Implementation, settings: dict, params: dict, args: tuple,
                options: RunOptions, check_result: CheckResult) -> Measurement:
    record = Measurement(kernel=spec.name, implementation=impl.name, paradigm=impl.paradigm,
                         params=dict(params), status="ok", reason="", times=[], median=None, settings=settings,
                         cold_call_s=check_result.cold_call_s, max_error=check_result.max_error)
    call = functools.partial(impl, **settings)
    fitted = sizing.fit(spec, call, params, options.time_budget_s / CALLS_NEEDED, options.seed)
    if fitted.params is None:
        record.status, record.reason = "timeout", f"exceeds the {options.time_budget_s:g} s budget: {fitted.note}"
        return record
    if fitted.params is not params:
        target = fitted.params
        record.params, record.requested_params = target, dict(params)
        record.reason = fitted.note.replace("the time budget", f"the {options.time_budget_s:g} s time budget")
        args = spec.make_args(target, np.random.default_rng(options.seed))
    timing = measure(lambda: call(*args), repeat=options.repeat, min_sample_s=options.min_sample_s,
                     budget_s=options.time_budget_s)
    record.times, record.median, record.iqr = timing.times, timing.median, timing.iqr
    record.calls_per_sample, record.warmup_s = timing.calls_per_sample, timing.warmup_s
    record.elements, record.bytes_moved = spec.elements(record.params), spec.bytes_moved(record.params)
    record.output_bytes = spec.output_bytes(record.params) if spec.output_bytes else None
    if impl.metrics is not None:
        record.extra.update(impl.metrics())
    return record


def run(options: RunOptions, *, json_path: str | None = None,
        progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Run the benchmark; the results document is rewritten after every measurement."""
    validate_options(options)
    with affinity.pinned(options.cpus):
        return _run(options, json_path, progress)


def _run(options: RunOptions, json_path: str | None, progress: Callable[[str, int, int], None] | None) -> dict:
    meta = machine.describe()
    meta["pinned_cpus"] = options.cpus
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    todo = [(spec, params, impl, settings)
            for spec, params in (plan(options) if runs_kernels(options) else [])
            for impl in selected(options, spec.name)
            for settings in settings_sweep(impl, options)]
    measurements: list[Measurement] = []
    sections: list[dict] = []
    checks: dict[tuple, CheckResult] = {}
    profiles: dict[tuple, Profile] = {}
    chosen_workloads = selected_workloads(options)
    total = len(todo) + len(chosen_workloads)
    if todo:
        # Measured in the same run, so "% of floor" compares like with like: one thread and
        # the run's most threads (or all CPUs), streaming and fresh-output.
        counts = sorted({1, max(options.threads) if options.threads else len(os.sched_getaffinity(0))})
        meta["bandwidth"] = floors.measure(floors.array_bytes(options.quick), thread_counts=tuple(counts))

    def save():
        doc = document(meta, {**options.to_json(), "started": started}, measurements, workloads=sections,
                       correctness=[p.to_json() for p in profiles.values()])
        if json_path:
            write(json_path, doc)
        return doc

    def skip(spec, params, impl, settings, status, reason, **fields):
        measurements.append(Measurement(kernel=spec.name, implementation=impl.name, paradigm=impl.paradigm,
                                        params=dict(params), status=status, reason=reason, times=[], median=None,
                                        settings=settings, **fields))

    artifacts = options.artifacts_dir or (Path(json_path).with_name(f"{Path(json_path).stem}-artifacts")
                                          if json_path else None)
    with threads.limited(max(options.threads) if options.threads else None), artifacts_in(artifacts):
        meta["threads"] = {"requested": options.threads, **threads.current()}
        current_case: tuple | None = None
        args: tuple = ()
        for done, (spec, params, impl, settings) in enumerate(todo):
            if progress:
                progress(f"{spec.name} {impl.name} {format_settings(settings)}", done, total)
            check_key = (spec.name, impl.name, json.dumps(settings, sort_keys=True))
            if not impl.available:
                profiles.setdefault(check_key, profile(impl, options.seed, settings))
                skip(spec, params, impl, settings, "skipped", impl.reason)
                save()
                continue
            if check_key not in checks:
                checks[check_key] = check(impl, options.seed, settings)
                # Every input class, for the report; only the check above decides timing.
                profiles[check_key] = profile(impl, options.seed, settings, core=checks[check_key])
            check_result = checks[check_key]
            if not check_result.ok:
                skip(spec, params, impl, settings, "failed" if check_result.raised else "wrong", check_result.message,
                     max_error=check_result.max_error, cold_call_s=check_result.cold_call_s)
                save()
                continue
            if impl.untimed_reason:
                skip(spec, params, impl, settings, "skipped",
                     f"not timed: {impl.untimed_reason}; correctness check passed",
                     max_error=check_result.max_error, cold_call_s=check_result.cold_call_s,
                     extra=impl.metrics() if impl.metrics else {})
                save()
                continue
            if current_case != (spec.name, params):
                args = ()  # free the previous case's arrays before building the next
                current_case, args = (spec.name, params), spec.make_args(params, np.random.default_rng(options.seed))
            try:
                measurements.append(measure_one(spec, impl, settings, params, args, options, check_result))
            except Exception as exc:
                skip(spec, params, impl, settings, "failed", f"{type(exc).__name__}: {exc}",
                     extra={"traceback": traceback.format_exc(limit=5)})
            save()
        for done, name in enumerate(chosen_workloads, start=len(todo)):
            if progress:
                progress(f"workload {name}", done, total)
            sections.append(run_workload(name, options))
            save()
        if progress:
            progress("done", total, total)
    return save()


def format_settings(settings: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in settings.items())
