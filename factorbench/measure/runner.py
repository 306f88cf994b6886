"""The benchmark runner: plan (kernel, params) cases, check each implementation, fit slow
ones into the time budget, time them, and record every outcome."""

from __future__ import annotations

import datetime
import functools
import hashlib
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np

from factorbench.kernels import Kernel
from factorbench.kernels import kernel as get_kernel
from factorbench.kernels import kernels as kernel_names
from factorbench.measure import affinity, floors, machine, stats, threads
from factorbench.measure.case import Session, blank, measure_case
from factorbench.measure.check import trusted_answer
from factorbench.measure.matrix import PROFILE_KEY, profile
from factorbench.measure.memory import MemoryBound, case_bytes, memory_bound, too_big
from factorbench.measure.options import RunOptions
from factorbench.measure.worker import Worker, WorkerLost, Zygote
from factorbench.parallel import schedulers
from factorbench.registry import Implementation, artifacts_in, implementations
from factorbench.results.format import params as fmt_params
from factorbench.results.schema import PROBLEM_STATUSES, Measurement, document, write
from factorbench.workloads import run_workload, workload, workloads


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
    if options.rounds < 1:
        raise ValueError(f"--rounds must be >= 1, got {options.rounds}")
    if options.repeat < 1:
        raise ValueError(f"--repeat must be >= 1, got {options.repeat}")
    if options.precision is not None and not 0 < options.precision < 1:
        raise ValueError(f"--precision must be between 0 and 1 (0.02 = 2%), got {options.precision:g}")
    if options.timeout_s is not None and options.timeout_s <= 0:
        raise ValueError(f"--timeout must be > 0, got {options.timeout_s:g}")
    if options.memory_limit_bytes is not None and options.memory_limit_bytes <= 0:
        raise ValueError(f"--memory-limit must be > 0, got {options.memory_limit_bytes}")
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


def run(options: RunOptions, *, json_path: str | None = None,
        progress: Callable[[str, int, int], None] | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark; the results document is rewritten after every measurement.
    ``log`` gets a plain line as each implementation starts and for each problem row."""
    validate_options(options)
    with affinity.pinned(options.cpus):
        return _run(options, json_path, progress, log)


def default_timeout_s(options: RunOptions) -> float:
    """The deadline of one worker call: start-up and a JIT compile, the check, the size
    climb and the sampling, each bounded by the budget, with room for a busy machine."""
    return options.timeout_s if options.timeout_s is not None else 60.0 + 5.0 * options.time_budget_s


def _run(options: RunOptions, json_path: str | None, progress: Callable[[str, int, int], None] | None,
         log: Callable[[str], None] | None) -> dict:
    meta = machine.describe()
    code = msgspec.to_builtins(machine.code_under_test())
    meta["pinned_cpus"] = options.cpus
    meta["ci_method"] = stats.ROUNDS_CI_METHOD if options.rounds > 1 else stats.CI_METHOD
    meta["isolation"] = "in-process" if options.in_process else "worker process per implementation and round"
    bound = memory_bound(options.memory_limit_bytes)
    meta["memory_bound"] = bound.to_json()
    load = machine.LoadMonitor()
    started = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    cases = plan(options) if runs_kernels(options) else []
    # One unit per implementation, over all its settings and cases: one worker each, so a
    # JIT compiles and a pool or cluster starts once per implementation and round.
    units: dict[Implementation, list[UnitCase]] = {}
    positions = itertools.count()
    for spec, params in cases:
        for impl in selected(options, spec.name):
            for settings in settings_sweep(impl, options):
                units.setdefault(impl, []).append(UnitCase(settings, json.dumps(settings, sort_keys=True), spec,
                                                           params, position=next(positions)))
    # Each row's record of every round so far, by its place in the results (plan order).
    rounds_of: dict[int, list[Measurement]] = {}
    down = schedulers.unreachable(case.settings.get("scheduler") for impl, all_cases in units.items()
                                  if impl.available for case in all_cases)
    for impl, all_cases in list(units.items()):
        for case in all_cases:
            reason = down.get(str(case.settings.get("scheduler"))) if impl.available else None
            if reason:
                rounds_of[case.position] = [blank(case.spec, impl, case.settings, case.params, "failed", reason)]
                if log:
                    log(f"  FAILED {impl.kernel}/{impl.name} {format_settings(case.settings)}: {reason}")
        units[impl] = [case for case in all_cases if case.position not in rounds_of]
        if not units[impl]:
            del units[impl]
    sections: list[dict] = []
    profiles: dict[tuple, dict] = {}
    """Each implementation's row of the correctness matrix, by (kernel, name, settings)."""
    chosen_workloads = selected_workloads(options)
    total = sum(map(len, units.values())) * options.rounds + len(chosen_workloads)
    if units:
        # Measured in the same run, so "% of floor" compares like with like: one thread and
        # the run's most threads (or all CPUs), streaming and fresh-output.
        counts = sorted({1, max(options.threads) if options.threads else len(os.sched_getaffinity(0))})
        nbytes, why = floors.array_bytes(options.quick, bound)
        meta["bandwidth"] = floors.measure(nbytes, thread_counts=tuple(counts), why=why)

    def save():
        meta["load"] = load.describe()
        measurements = [merge_rounds(rounds_of[number]) for number in sorted(rounds_of)]
        doc = document(meta, {**options.to_json(), "started": started}, measurements, workloads=sections,
                       correctness=list(profiles.values()), code=code)
        if json_path:
            write(json_path, doc)
        return doc

    artifacts = options.artifacts_dir or (Path(json_path).with_name(f"{Path(json_path).stem}-artifacts")
                                          if json_path else None)
    done = 0
    with threads.limited(max(options.threads) if options.threads else None), artifacts_in(artifacts), \
            tempfile.TemporaryDirectory(prefix="factorbench-run-") as scratch:
        meta["threads"] = {"requested": options.threads, **threads.current()}
        answers = TrustedAnswers(Path(scratch), options.seed)
        retiring = Retiring()
        zygote: Zygote | None = None
        preload = sorted({module for impl in units if impl.available
                          for module in (*(impl.paradigm_obj.requires if impl.paradigm_obj else ()), *impl.requires)})
        try:
            # Rounds go over every implementation in turn, so a slow spell of the machine
            # falls on several implementations' rounds, not on all of one implementation.
            for round_number in range(options.rounds):
                if zygote is not None:  # the last round's: its workers are reaped
                    retiring.reap()
                    zygote.close()
                zygote = None if options.in_process or not units else Zygote(
                    Path(scratch) / f"zygote-{round_number}.stderr", preload)
                for impl, all_cases in units.items():
                    unit_cases = all_cases if not round_number else [
                        replace(case, params=rounds_of[case.position][0].params) for case in all_cases
                        if rounds_of[case.position][0].status == "ok"]  # later rounds time the first's sizes
                    done += len(all_cases) - len(unit_cases)
                    if not unit_cases:
                        continue
                    if log:
                        sweep = [format_settings(case.settings) for case in unit_cases]
                        log(f"measuring {impl.kernel}/{impl.name}"
                            + (f" {', '.join(dict.fromkeys(sweep))}" if any(sweep) else "")
                            + f": {len(unit_cases)} case(s)"
                            + (f", round {round_number + 1} of {options.rounds}" if options.rounds > 1 else "")
                            + ("" if options.in_process else ", in a worker process"))
                    if progress:  # what is being measured, before it is
                        progress(f"{impl.kernel} {impl.name} {format_settings(unit_cases[0].settings)}", done, total)
                    records = _measure_unit(impl, unit_cases, options, answers, artifacts, Path(scratch), retiring,
                                            zygote, round_number, bound)
                    # Not zip(): it would leave the generator suspended, to be closed (its worker
                    # killed) by the garbage collector, where a Ctrl-C is ignored.
                    for number, record in enumerate(records):
                        case = unit_cases[number]
                        if PROFILE_KEY in record.extra:  # computed beside the check, in the worker
                            profiles[(impl.kernel, impl.name, case.settings_key)] = record.extra.pop(PROFILE_KEY)
                        rounds_of.setdefault(case.position, []).append(record)
                        if log and record.status in PROBLEM_STATUSES:
                            log(f"  {record.status.upper()} {format_settings(case.settings)} "
                                f"{fmt_params(record.requested_params or record.params)}: {record.reason}")
                        done += 1
                        if progress:
                            upcoming = unit_cases[min(number + 1, len(unit_cases) - 1)]
                            progress(f"{impl.kernel} {impl.name} {format_settings(upcoming.settings)}", done, total)
                        save()
        finally:
            retiring.reap()
            if zygote is not None:
                zygote.close()
        for name in chosen_workloads:
            if progress:
                progress(f"workload {name}", done, total)
            sections.append(run_workload(name, options, functools.partial(too_big, bound=bound)))
            done += 1
            save()
        if progress:
            progress("done", total, total)
    return save()


def _largest_error(records: list[Measurement]) -> float | Literal["inf"] | None:
    errors = [record.max_error for record in records if record.max_error is not None]
    finite = [float(error) for error in errors if error != "inf"]
    return "inf" if len(finite) < len(errors) else max(finite, default=None)


def merge_rounds(records: list[Measurement]) -> Measurement:
    """One row from its rounds: the first round's row (check, size, cold call) with every
    round's samples; a problem in any round is the row's status."""
    first = records[0]
    problem = next((record for record in records[1:] if record.status != "ok"), None)
    if problem is not None:
        number = records.index(problem) + 1
        return msgspec.structs.replace(problem, requested_params=first.requested_params,
                                       cold_call_s=first.cold_call_s,
                                       reason=f"in round {number} of {len(records)}: {problem.reason}")
    if len(records) == 1 or first.status != "ok":
        return msgspec.structs.replace(first, round_medians=[first.median] if first.median is not None else [])
    times = [t for record in records for t in record.times]
    medians = [record.median for record in records if record.median is not None]
    ci = stats.rounds_ci(medians)
    disagreement = stats.rounds_disagree(medians)
    return msgspec.structs.replace(
        first, times=times, round_medians=medians, median=float(np.median(medians)),
        iqr=float(np.subtract(*np.percentile(times, [75, 25]))), cv=stats.cv(times),
        ci_low=ci[0] if ci else None, ci_high=ci[1] if ci else None,
        stopped_by=", ".join(dict.fromkeys(record.stopped_by or "" for record in records)),
        unstable=stats.unstable(times, first.median * (first.calls_per_sample or 1) if first.median else None)
        + ([disagreement] if disagreement else []),
        max_error=_largest_error(records), elapsed_s=sum(record.elapsed_s or 0.0 for record in records),
        peak_rss_bytes=max((record.peak_rss_bytes for record in records if record.peak_rss_bytes is not None),
                           default=None))


class TrustedAnswers:
    """The trusted answer of each case at each measured size, computed once — by the first
    worker that needs it, so the runner never holds a benchmark-size array (in-process:
    by the runner) — and kept as .npy files that workers memory-map."""

    def __init__(self, folder: Path, seed: int):
        self.folder, self.seed = folder, seed
        self.paths: dict[str, str | None] = {}
        """Each answer's file, None where it could not be computed."""

    @staticmethod
    def _key(spec: Kernel, params: dict) -> str:
        return json.dumps([spec.name, params], sort_keys=True)

    def answer_at(self, spec: Kernel, params: dict) -> tuple[str | None, bool]:
        """The file of the answer at ``params``, and whether the asking worker is to compute it."""
        key = self._key(spec, params)
        if key in self.paths:
            return self.paths[key], False
        return str(self.folder / f"expected-{hashlib.sha1(key.encode()).hexdigest()}.npy"), True

    def answered(self, spec: Kernel, params: dict, ok: bool) -> None:
        key = self._key(spec, params)
        self.paths[key] = self.answer_at(spec, params)[0] if ok else None

    def array(self, spec: Kernel, params: dict) -> np.ndarray | None:
        """The answer, computed here first if no one has (in-process runs)."""
        path, compute = self.answer_at(spec, params)
        if compute and path is not None:
            try:
                answer, _ = trusted_answer(spec, params, self.seed)
                np.save(path, answer)
            except Exception:
                self.answered(spec, params, False)
                return None
            self.answered(spec, params, True)
        return None if path is None else np.load(path, mmap_mode="r")


@dataclass
class UnitCase:
    """One case of a unit: the implementation's settings and the kernel's params."""
    settings: dict
    settings_key: str
    spec: Kernel
    params: dict
    position: int
    """Where the row goes in the results: plan order, however the units ran."""


class Retiring:
    """Workers told to exit but not yet waited for: the next worker starts (imports) while
    the last one shuts its pools down, and is sent its first case only after ``reap()``,
    so no timed call overlaps either."""

    def __init__(self):
        self.workers: list[Worker] = []

    def reap(self, graceful: bool = True) -> None:
        while self.workers:
            self.workers.pop().close(graceful)


def _measure_unit(impl: Implementation, unit_cases: list[UnitCase], options: RunOptions, answers: TrustedAnswers,
                  artifacts: str | Path | None, scratch: Path, retiring: Retiring, zygote: Zygote | None,
                  round_number: int, bound: MemoryBound) -> Iterator[Measurement]:
    """The rows of one implementation in one round, setting by setting and case by case;
    rounds after the first only time (see measure_case). A case whose arrays cannot fit
    the memory bound is skipped before it starts."""
    later_round = round_number > 0
    oversized = {case.position: reason for case in unit_cases
                 if (reason := too_big(case_bytes(case.spec, case.params), "its inputs and outputs", bound))}
    if not impl.available:
        checked: set[str] = set()
        for case in unit_cases:
            record = blank(case.spec, impl, case.settings, case.params, "skipped", impl.reason or "")
            if case.settings_key not in checked:  # the matrix lists it as unavailable
                checked.add(case.settings_key)
                record.extra[PROFILE_KEY] = profile(impl, options.seed, case.settings).to_json()
            yield record
        return
    if options.in_process:
        session = Session(memory_limit=bound.limit_text())
        for case in unit_cases:
            if case.position in oversized:
                yield blank(case.spec, impl, case.settings, case.params, "skipped", oversized[case.position])
                continue
            yield measure_case(case.spec, impl, case.settings, case.params, options,
                               functools.partial(answers.array, case.spec), session, later_round)
        return
    assert zygote is not None
    worker: Worker | None = None
    try:
        for number, case in enumerate(unit_cases):
            if case.position in oversized:
                yield blank(case.spec, impl, case.settings, case.params, "skipped", oversized[case.position])
                continue
            message = {"kernel": case.spec.name, "implementation": impl.name, "settings": case.settings,
                       "params": case.params, "later_round": later_round, "options": options.to_json(),
                       "artifacts": str(artifacts) if artifacts else None}
            try:
                if worker is None:
                    worker = Worker(scratch / f"worker-{impl.kernel}-{impl.name}-{round_number}-{number}.stderr",
                                    zygote, bound.limit_text())
                    retiring.reap()
                reply = worker.request(message, default_timeout_s(options),
                                       functools.partial(answers.answer_at, case.spec),
                                       functools.partial(answers.answered, case.spec))
            except WorkerLost as lost:
                if worker is not None:
                    worker.close()
                worker = None  # the next case gets a fresh one
                yield blank(case.spec, impl, case.settings, case.params, lost.status, lost.reason,
                            elapsed_s=lost.elapsed_s, peak_rss_bytes=lost.peak_rss_bytes)
                continue
            yield msgspec.convert(reply, Measurement)
    except BaseException:  # Ctrl-C: the worker may be mid-call for many seconds yet
        if worker is not None:
            worker.close(graceful=False)
            worker = None
        retiring.reap(graceful=False)
        raise
    finally:
        if worker is not None:
            worker.retire()
            retiring.workers.append(worker)


def format_settings(settings: dict) -> str:
    return " ".join(f"{key}={value}" for key, value in settings.items())
