"""The one module that touches asv's internals: reading stored results and asv's own
verdict on two sets of samples.

asv has no public API for either, so this uses ``asv.commands.compare`` and
``asv.results`` as they are in the tested range pinned in pyproject.toml (the `bench`
extra); tests/test_asv_adapter.py runs a real ``asv run`` and reads it back through
here, so an asv release that moves them fails CI, not a pull request's gate.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StoredResult:
    """One benchmark (with its parameters) of one commit, as asv stored it."""

    name: str
    """asv's name with parameters, e.g. ``kernels.sma__numba.time_call(32000)``."""
    value: float | None
    """asv's value (median of the samples); None when the benchmark failed, NaN when skipped."""
    samples: list[float] | None
    unit: str
    stats_and_samples: Any
    """What asv's significance test takes; opaque outside this module."""
    ci: tuple[float, float] | None = None
    """asv's 99% confidence interval of ``value``, where asv computed one."""


class AsvResultsError(ValueError):
    """An asv results file that cannot be read, with the reason (one line)."""


@dataclass(frozen=True)
class StoredRun:
    """One asv results file: a commit measured on a machine in one environment."""

    machine: str
    commit: str
    env: str
    date_s: float | None
    """The commit's date as asv stored it (unix seconds)."""
    results: list[StoredResult]


def stored_runs(results_dir: Path) -> list[StoredRun]:
    """Every results file of every machine under an asv results directory; AsvResultsError
    names the first file that cannot be read (asv itself would skip it with a warning)."""
    from asv.commands.compare import unroll_result
    from asv.results import Results, iter_results_paths
    from asv.util import UserError

    units = _units(Path(results_dir) / "benchmarks.json")
    for folder, _dirs, files in os.walk(results_dir):
        # asv would skip such a folder with a warning: here it is an error, before anything is read
        stored = [name for name in files if name.endswith(".json") and name not in ("machine.json", "benchmarks.json")]
        if stored and "machine.json" not in files:
            raise AsvResultsError(f"{Path(folder) / stored[0]}: no machine.json beside it (not an asv results "
                                  "directory: expected <machine>/machine.json and <machine>/<commit>-<env>.json)")
    runs = []
    for root, filename, machine in iter_results_paths(str(results_dir)):
        path = Path(root) / filename
        try:
            result = Results.load(str(path), machine_name=machine)
            found = []
            for key in result.get_all_result_keys():
                params = result.get_result_params(key)
                for name, value, stats, samples in unroll_result(
                        key, params, result.get_result_value(key, params), result.get_result_stats(key, params),
                        result.get_result_samples(key, params)):
                    ci = (stats["ci_99_a"], stats["ci_99_b"]) if stats and "ci_99_a" in stats else None
                    found.append(StoredResult(name, value, samples, units.get(key, ""), (stats, samples), ci))
        except (UserError, ValueError, TypeError, AttributeError) as exc:
            raise AsvResultsError(f"{path}: not a readable asv results file ({str(exc).splitlines()[0]})") from None
        date = result.date / 1000 if isinstance(result.date, (int, float)) else None
        runs.append(StoredRun(machine, result.commit_hash, result.env_name, date, found))
    return runs


def _units(benchmarks_file: Path) -> dict[str, str]:
    """Each benchmark's unit from asv's benchmarks.json (absent: no units)."""
    try:
        listed = json.loads(benchmarks_file.read_text())
    except (OSError, ValueError):
        return {}
    # beside the benchmarks, the file's format "version"
    return {key: benchmark.get("unit", "") for key, benchmark in listed.items() if isinstance(benchmark, dict)}


def stored_results(repo: Path, commit: str, regex: re.Pattern | None = None) -> dict[str, StoredResult]:
    """Every stored result of ``commit`` on this machine whose name matches ``regex``."""
    from asv.commands.compare import unroll_result
    from asv.config import Config
    from asv.machine import Machine
    from asv.results import iter_results_for_machine_and_hash

    conf = Config.load(str(repo / "asv.conf.json"))
    results_dir = Path(repo) / conf.results_dir
    benchmarks_file = results_dir / "benchmarks.json"
    if not benchmarks_file.is_file():
        return {}
    units = _units(benchmarks_file)
    machine = Machine.get_unique_machine_name()
    found: dict[str, StoredResult] = {}
    for result in iter_results_for_machine_and_hash(str(results_dir), machine, commit):
        for key in result.get_all_result_keys():
            params = result.get_result_params(key)
            unrolled = unroll_result(key, params, result.get_result_value(key, params),
                                     result.get_result_stats(key, params), result.get_result_samples(key, params))
            for name, value, stats, samples in unrolled:
                # selected by the name with its parameters, as asv --bench selects
                if regex is None or regex.search(name):
                    found[name] = StoredResult(name, value, samples, units.get(key, ""), (stats, samples))
    return found


def is_better(a: float, b: float, a_stats: Any, b_stats: Any, factor: float) -> bool:
    """asv's own verdict that ``a`` beats ``b`` (smaller is better): beyond ``factor`` and,
    where samples exist, significantly different by asv's test."""
    from asv.commands.compare import _is_result_better

    return bool(_is_result_better(a, b, a_stats, b_stats, factor))
