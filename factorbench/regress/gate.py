"""The regression gate: benchmark two commits and fail when the second is slower.

Two modes, both reading the asv suite of the working tree (``benchmarks/``) while each
commit's own package is built and installed: factorbench itself in a factorbench
checkout, or a team's package with its plugins in a repository set up by
``factorbench init`` (factorbench then comes from the running environment):

- ``wall``: ``asv continuous BASE HEAD`` with interleaved rounds and raw samples; a
  benchmark regresses when the 10th percentile of its samples at HEAD is slower by
  more than ``factor`` *and* asv's Mann-Whitney test (p < 0.002) says the samples
  differ, and it does so again when run a second time. Noise on a shared machine
  needs all three.
- ``callgrind``: each benchmark at its small size runs once under
  ``valgrind --tool=callgrind``, with instrumentation switched on (client requests)
  only around the call, so the count excludes start-up, imports and the correctness
  check. Instruction counts of work done in the counted process, with hash seeds and
  thread counts fixed, reproduce on one machine whatever the neighbours do; a change
  above ``threshold`` percent fails. Paradigms whose work runs elsewhere (process
  pools, Dask clusters, GPUs: the counted process only waits, and its count follows
  the load) are listed as wall-time only. The base commit is counted twice: a
  benchmark whose count still drifts is judged at DRIFT_MARGIN times its drift at least,
  and reported as noisy, rather than failing on its own noise.

Exit status: 0 no regression, 1 a regression (or a benchmark that fails only at HEAD),
2 a usage error (unknown commit, missing tool), reported in one line.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from factorbench.discovery import PLUGIN_ENV, PluginError, env_plugins, project_plugins
from factorbench.measure.machine import distribution_version
from factorbench.regress import asv_adapter
from factorbench.results import format as fmt
from factorbench.results import verdict
from factorbench.results.schema import CodeUnderTest

MODES = ("wall", "callgrind")
DEFAULT_FACTOR = 1.2
DEFAULT_THRESHOLD_PCT = 2.0
LOW_PERCENTILE = 10
DRIFT_MARGIN = 4.0
"""A counted benchmark's threshold is at least this many times its drift between the two
counts at the base commit."""
ASV_ROUNDS = 4
"""Rounds per commit, interleaved (base, head, base, head...) so slow drifts in machine
load hit both commits alike."""
CALLGRIND_HELPER = r"""
#include <valgrind/callgrind.h>
void fb_count_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void fb_count_stop(const char *label) { CALLGRIND_DUMP_STATS_AT(label); CALLGRIND_STOP_INSTRUMENTATION; }
"""


class GateError(Exception):
    """Why the gate could not run (unknown commit, missing tool): one line, exit 2."""


@dataclass
class Row:
    benchmark: str
    before: float | None
    after: float | None
    unit: str
    status: str
    """regressed, improved, unchanged, failed (only at HEAD), fixed, skipped, new, gone,
    unconfirmed (wall mode: regressed once, not when run again), noisy (callgrind: moved
    beyond the threshold but within a few times its own drift) and wall-time only
    (callgrind: counts that cannot reproduce)."""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.before and self.after is not None and not math.isnan(self.before) and not math.isnan(self.after):
            return self.after / self.before
        return None


# ---------------------------------------------------------------- repository and commits

COUNTER = Path("benchmarks") / "count_instructions.py"


def checkout_root(start: Path) -> Path:
    """The git checkout holding asv.conf.json and the benchmark suite."""
    done = subprocess.run(["git", "-C", str(start), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    root = Path(done.stdout.strip()) if done.returncode == 0 else None
    if root is None or not (root / "asv.conf.json").is_file() or not (root / COUNTER).is_file():
        raise GateError(f"run the gate inside a git repository with asv.conf.json and benchmarks/ (a factorbench "
                        f"checkout, or one `factorbench init` set up); none above {start}")
    return root


def project_name(repo: Path) -> str | None:
    """The distribution the repository builds, from its pyproject.toml."""
    try:
        return tomllib.loads((repo / "pyproject.toml").read_text()).get("project", {}).get("name")
    except (OSError, tomllib.TOMLDecodeError):
        return None


def resolve(repo: Path, revision: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
                          capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        raise GateError(f"unknown commit {revision!r}")
    return done.stdout.strip()


def compile_regex(pattern: str | None) -> re.Pattern | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise GateError(f"--bench {pattern!r} is not a valid regular expression: {exc}") from None


# ---------------------------------------------------------------- comparison

def classify(old, new, regressed, improved, old_problem: str | None = None,
             new_problem: str | None = None) -> tuple[str, str]:
    """(status, note) for one benchmark; values are None when it did not run right (its
    problem, where known: failed, wrong or error), NaN when skipped or absent, and the two
    predicates compare real values."""
    if verdict.ERROR in (old_problem, new_problem):
        return verdict.ERROR, f"the harness could not measure it at {'head' if new_problem else 'base'}"
    if new is None:
        problem = new_problem or verdict.FAILED
        return (verdict.NOT_GATED, f"{problem} at both commits") if old is None else (problem, "")
    if old is None:
        return (verdict.FIXED, "") if not math.isnan(new) else (verdict.SKIPPED, "")
    if math.isnan(new):
        return verdict.SKIPPED, ""
    if math.isnan(old):
        return verdict.NEW, ""
    if regressed(old, new):
        return verdict.REGRESSED, ""
    if improved(old, new):
        return verdict.IMPROVED, ""
    return verdict.UNCHANGED, ""


def drift_pct(first: dict | None, second: dict | None) -> float | None:
    """How far two counts of one benchmark at one commit differ, in percent of the first."""
    if not first or not second or first["status"] != "ok" or second["status"] != "ok" or not first["count"]:
        return None
    return abs(second["count"] - first["count"]) / first["count"] * 100.0


def compare_counts(before: dict[str, dict], after: dict[str, dict], threshold_pct: float,
                   before_again: dict[str, dict] | None = None) -> list[Row]:
    """Rows for instruction counts: ``{benchmark: {"status": "ok"|"skipped"|"failed"|"wrong"|"error"|"uncountable",
    "count", "reason"}}``; ``before_again`` is a second count of the base commit, whose
    differences from ``before`` widen that benchmark's threshold."""
    def value(entry):
        if entry is None or entry["status"] == verdict.SKIPPED:
            return math.nan
        return None if entry["status"] in verdict.BROKEN else float(entry["count"])

    def problem(entry):
        return entry["status"] if entry and entry["status"] in verdict.BROKEN else None

    def change_pct(old, new):
        return (new - old) / old * 100.0 if old else 0.0

    rows = []
    for name in sorted(before.keys() | after.keys()):
        entries = [entry for entry in (after.get(name), before.get(name)) if entry]
        uncountable = next((entry for entry in entries if entry["status"] == "uncountable"), None)
        if uncountable is not None:
            rows.append(Row(name, None, None, "instructions", verdict.WALL_TIME_ONLY, uncountable.get("reason", "")))
            continue
        if name not in after:
            rows.append(Row(name, value(before[name]), math.nan, "instructions", verdict.GONE))
            continue
        drift = drift_pct(before.get(name), (before_again or {}).get(name))
        limit = max(threshold_pct, DRIFT_MARGIN * drift) if drift is not None else threshold_pct
        old, new = value(before.get(name)), value(after[name])
        status, note = classify(old, new, lambda a, b, limit=limit: change_pct(a, b) > limit,
                                lambda a, b, limit=limit: change_pct(a, b) < -limit,
                                problem(before.get(name)), problem(after[name]))
        if not note and limit > threshold_pct:
            moved = old is not None and new is not None and abs(change_pct(old, new)) > threshold_pct
            if status == verdict.UNCHANGED and moved:
                status = verdict.NOISY
            note = f"noisy: drifts {drift:.2g}% between two counts at base; judged at ±{limit:.2g}%"
        reason = next((e.get("reason", "") for e in entries if e.get("reason")), "")
        rows.append(Row(name, old, new, "instructions", status, f"{note}: {reason}" if note and reason
                        else note or reason))
    return rows


def low_percentile(value, samples):
    """The gate's statistic for one commit: the LOW_PERCENTILE of asv's raw samples.

    Contention from other processes only ever adds time, so on a shared machine the
    fast end of the samples moves with the code and the median moves with the load.
    Without samples (peakmem, or results recorded without them) asv's value is used.
    """
    if value is None or not samples:
        return value
    return float(np.percentile([sample for sample in samples if sample is not None], LOW_PERCENTILE))


def compare_asv(repo: Path, base: str, head: str, regex: re.Pattern | None, factor: float) -> list[Row]:
    """Rows for asv's stored results of both commits: a regression is a low percentile
    slower by more than ``factor`` with samples that asv's test (Mann-Whitney U,
    p < 0.002) finds different."""
    before = asv_adapter.stored_results(repo, base, regex)
    after = asv_adapter.stored_results(repo, head, regex)

    def value(result: asv_adapter.StoredResult | None):
        return math.nan if result is None else low_percentile(result.value, result.samples)

    rows = []
    for name in sorted(before.keys() | after.keys()):
        old_result, new_result = before.get(name), after.get(name)
        if new_result is None:
            rows.append(Row(name, value(old_result), math.nan, old_result.unit if old_result else "", verdict.GONE))
            continue
        old, new = value(old_result), value(new_result)
        old_ss = old_result.stats_and_samples if old_result else None
        new_ss = new_result.stats_and_samples

        def regressed(a, b, old_ss=old_ss, new_ss=new_ss):
            return asv_adapter.is_better(a, b, old_ss, new_ss, factor)

        def improved(a, b, old_ss=old_ss, new_ss=new_ss):
            return asv_adapter.is_better(b, a, new_ss, old_ss, factor)

        status, note = classify(old, new, regressed, improved)
        rows.append(Row(name, old, new, new_result.unit, status, note))
    return rows


# ---------------------------------------------------------------- output

def fmt_value(value: float | None, unit: str) -> str:
    if value is None:  # it did not run right: the status says how
        return "-"
    if math.isnan(value):
        return "n/a"
    if unit == "seconds":
        return fmt.time(value)
    if unit == "bytes":
        return fmt.size(value)
    return f"{value:,.0f}" if unit == "instructions" else f"{value:,.4g}"


def print_rows(rows: list[Row], title: str, console: Console) -> None:
    moved = [row for row in rows if row.status not in (*verdict.QUIET, verdict.WALL_TIME_ONLY)]
    counts = {status: sum(row.status == status for row in rows) for status in dict.fromkeys(r.status for r in rows)}
    if moved:
        table = Table(title=escape(title), title_justify="left")
        for column in ("change", "before", "after", "ratio", "benchmark", "note"):
            # names fold onto a second line rather than end in '…': each must be findable
            table.add_column(column, justify="right" if column in ("before", "after", "ratio") else "left",
                             overflow="fold" if column == "benchmark" else "ellipsis",
                             no_wrap=column in ("change", "before", "after", "ratio"))
        styles = {**dict.fromkeys(verdict.FAILING, "bold red"), verdict.IMPROVED: "green", verdict.FIXED: "green",
                  verdict.NOISY: "yellow", verdict.NOT_GATED: "yellow"}
        for row in sorted(moved, key=lambda r: (r.status not in verdict.FAILING, r.status != verdict.NOT_GATED,
                                                -(r.ratio or 0))):
            ratio = f"{row.ratio:.3f}" if row.ratio is not None else "-"
            table.add_row(row.status, fmt_value(row.before, row.unit), fmt_value(row.after, row.unit), ratio,
                          escape(row.benchmark), escape(row.note), style=styles.get(row.status))
        console.print(table)
    else:
        console.print(f"{escape(title)}: nothing moved")
    uncounted = [row for row in rows if row.status == verdict.WALL_TIME_ONLY]
    for reason in dict.fromkeys(row.note for row in uncounted):
        names = [row.benchmark for row in uncounted if row.note == reason]
        console.print(f"wall-time only, not counted ({reason}): {len(names)} benchmark(s): "
                      f"{escape(', '.join(names))}", highlight=False, soft_wrap=True)
    ungated = [row.benchmark for row in rows if row.status == verdict.NOT_GATED]
    if ungated:
        console.print(f"[yellow]NOT GATED[/yellow], wrong or failing at both commits: {len(ungated)} benchmark(s): "
                      f"{escape(', '.join(ungated))}", highlight=False, soft_wrap=True)
    console.print(f"{len(rows)} benchmarks compared: " + ", ".join(f"{n} {status}" for status, n in counts.items()))


# ---------------------------------------------------------------- wall mode

def asv_selection(regex: re.Pattern | None) -> str:
    """The benchmarks the wall gate judges: time_ and peakmem_ ones (track_ figures such as
    speed-ups are for the graphs: a higher one is better, which asv cannot be told)."""
    kind = r"\.(?:time|peakmem)_"
    return kind if regex is None else f"^(?=.*(?:{regex.pattern})).*{kind}"


def asv_continuous(repo: Path, base: str, head: str, selection: str, factor: float, console: Console) -> int:
    command = [sys.executable, "-m", "asv", "continuous", base, head, "--factor", str(factor),
               "--record-samples", "--interleave-rounds", "-a", f"rounds={ASV_ROUNDS}", "--bench", selection]
    console.print(f"[dim]$ asv {escape(' '.join(command[3:]))}[/dim]")
    # asv's progress and its own table go to stderr; the verdict is recomputed from its results.
    return subprocess.run(command, cwd=repo, stdout=sys.stderr, stderr=subprocess.STDOUT).returncode


def run_wall(repo: Path, base: str, head: str, regex: re.Pattern | None, factor: float,
             console: Console) -> list[Row]:
    """asv continuous over the selection; what regresses is run again, alone, and fails
    only if it regresses again: a neighbour's burst of load rarely strikes twice."""
    if importlib.util.find_spec("asv") is None:
        raise GateError("asv is not installed; pip install 'factorbench[bench]'")
    subprocess.run([sys.executable, "-m", "asv", "machine", "--yes"], cwd=repo, capture_output=True, check=False)
    selection = asv_selection(regex)
    code = asv_continuous(repo, base, head, selection, factor, console)
    rows = compare_asv(repo, base, head, re.compile(selection), factor)
    if not rows:
        raise GateError(f"asv continuous exited {code} without results for both commits (see its output above)")
    suspects = [row for row in rows if row.status == verdict.REGRESSED]
    if suspects:
        console.print(f"[yellow]{len(suspects)} regression(s) in the first pass; running them again to confirm[/yellow]")
        again = "|".join(f"^{re.escape(row.benchmark)}$" for row in suspects)
        asv_continuous(repo, base, head, again, factor, console)
        confirmed = {row.benchmark: row for row in compare_asv(repo, base, head, re.compile(again), factor)}
        for row in suspects:
            second = confirmed.get(row.benchmark)
            if second is not None and second.status == verdict.REGRESSED:
                row.note = f"confirmed: x{second.ratio:.2f} on the second pass"
            else:
                row.status = verdict.UNCONFIRMED
                row.note = f"x{second.ratio:.2f} on the second pass" if second and second.ratio else "not rerun"
    return rows


# ---------------------------------------------------------------- callgrind mode

def callgrind_helper(cache: Path) -> Path:
    """A tiny shared library issuing callgrind's client requests, compiled once."""
    if shutil.which("valgrind") is None:
        raise GateError("valgrind is not installed (Debian: apt-get install valgrind); --mode callgrind needs it")
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise GateError("no C compiler (cc) found; --mode callgrind compiles a small valgrind helper")
    library = cache / "fb_count.so"
    if not library.exists():
        cache.mkdir(parents=True, exist_ok=True)
        source = cache / "fb_count.c"
        source.write_text(CALLGRIND_HELPER)
        done = subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-o", str(library), str(source)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["compiler failed"])[0]
            raise GateError(f"could not build the callgrind helper (valgrind headers missing?): {first}")
    return library


def pip(commit: str, *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args, "-q"], capture_output=True, text=True)
    if done.returncode != 0:
        raise GateError(f"could not build commit {commit[:10]}: "
                        f"{(done.stderr.strip().splitlines() or ['pip failed'])[-1]}")


NOT_BUILT = frozenset({"tests", "benchmarks", "docs", "examples", "scripts", "reports", ".github", ".ci",
                       ".gitignore", ".dockerignore", "Dockerfile", "LICENSE"})
"""Top-level entries no build reads: commits that differ only there (docs, tests, the
benchmark suite, which is read from the working tree) share one build. Everything else
counts, so a team's own package, wherever it sits, is part of the key."""


def build_key(repo: Path, commit: str) -> str:
    """The git object ids of the commit's top-level entries that a build reads, hashed:
    the build cache's key."""
    done = subprocess.run(["git", "-C", str(repo), "ls-tree", commit], capture_output=True, text=True, check=True)
    ids = []
    for line in done.stdout.splitlines():
        meta, _, name = line.partition("\t")
        if name in NOT_BUILT or name.endswith((".md", ".rst", ".txt")):
            continue
        ids.append(f"{name}={meta.split()[2]}")
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:20]


def build_commit(repo: Path, commit: str, cache: Path, console: Console) -> Path:
    """Install ``commit``'s factorbench (compiled parts included) into its own folder, once
    per distinct set of build inputs."""
    site = cache / "builds" / build_key(repo, commit)
    if (site / ".complete").exists():
        return site
    console.print(f"[dim]building {commit[:10]}[/dim]")
    with tempfile.TemporaryDirectory(prefix="factorbench-gate-") as tmp:
        source = Path(tmp) / "src"
        archive = Path(tmp) / "src.tar"
        with archive.open("wb") as out:
            subprocess.run(["git", "-C", str(repo), "archive", "--format=tar", commit], stdout=out, check=True)
        with tarfile.open(archive) as tar:
            tar.extractall(source, filter="data")
        shutil.rmtree(site, ignore_errors=True)
        wheels = Path(tmp) / "wheel"
        pip(commit, "wheel", "--no-deps", "-w", str(wheels), str(source))
        pip(commit, "install", "--no-deps", "--target", str(site), *map(str, wheels.glob("*.whl")))
    (site / ".complete").touch()
    return site


def parse_callgrind_dumps(folder: Path, prefix: str) -> dict[str, int]:
    """{label: instructions} from the dumps callgrind wrote at each client request."""
    trigger = "desc: Trigger: Client Request: "
    counts = {}
    for path in folder.glob(f"{prefix}*"):
        label, total = None, None
        with path.open() as lines:
            for line in lines:
                if line.startswith(trigger):
                    label = line[len(trigger):].strip()
                elif line.startswith("totals:") or (total is None and line.startswith("summary:")):
                    total = int(line.split()[1])
        if label is not None and total is not None:
            counts[label] = total
    return counts


@dataclass
class Counted:
    """One commit's counts: ``{benchmark: {"status", "count" or "reason"}}``, the plugins that
    could not be loaded against its build (a function the plugin uses did not exist yet),
    and the code that was counted."""
    benchmarks: dict[str, dict]
    plugin_errors: dict[str, str]
    code: CodeUnderTest

    def absent_reason(self) -> str:
        """Why a benchmark counted elsewhere has no count here."""
        if self.plugin_errors:
            return "; ".join(f"plugin {Path(spec).name} could not be loaded against this commit's build: {error}"
                             for spec, error in self.plugin_errors.items())
        return "not defined at this commit"


def suite_path(repo: Path, work: Path) -> Path:
    """A folder holding only a link to the work tree's benchmark suite: on the counted
    process's path instead of the work tree, so nothing of the work tree's package can be
    imported in place of the commit's build."""
    folder = work / "suite"
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / COUNTER.parent.name
    if not link.exists():
        link.symlink_to(repo / COUNTER.parent, target_is_directory=True)
    return folder


def work_tree_plugins(repo: Path) -> list[str]:
    """The plugins named in the work tree's pyproject.toml ([tool.factorbench] plugins), as
    absolute paths or module names: applied to every commit's build, as asv applies its
    benchmarks/."""
    try:
        return project_plugins(repo)[0]
    except PluginError as exc:
        raise GateError(str(exc)) from None


def count_instructions(repo: Path, commit: str, site: Path, helper: Path, regex: re.Pattern | None,
                       work: Path) -> Counted:
    """Run every benchmark at its small size once under callgrind against ``commit``'s build
    in ``site``, with the plugins of the work tree."""
    work.mkdir(parents=True, exist_ok=True)
    listing = work / "benchmarks.json"
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={work}/callgrind.out.%p",
               sys.executable, "-P", str(repo / COUNTER),
               "--helper", str(helper), "--out", str(listing)]
    if regex is not None:
        command += ["--bench", regex.pattern]
    plugins = [*work_tree_plugins(repo), *env_plugins()]
    # One thread per pool, and OpenMP threads that sleep rather than spin while they wait
    # (implementations asking for two threads get them): spinning adds counts that vary.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(suite_path(repo, work))]),
           PLUGIN_ENV: os.pathsep.join(dict.fromkeys(plugins)), "PYTHONHASHSEED": "0",
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1",
           "OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0", "KMP_BLOCKTIME": "0"}
    # run outside the work tree: a pyproject.toml found from the current directory names no more plugins
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=work)
    if done.returncode != 0 or not listing.exists():
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise GateError(f"counting instructions failed (exit {done.returncode}):\n{tail}")
    found = json.loads(listing.read_text())
    counted = found["benchmarks"]
    distribution = check_built_code(repo, site, found["modules"], counted)
    counts = parse_callgrind_dumps(work, "callgrind.out.")
    for entry in counted.values():
        if entry["status"] == "ok":
            entry["count"] = counts[entry.pop("label")]
    return Counted(counted, found.get("plugin_errors", {}), CodeUnderTest(
        package=distribution.metadata["Name"], version=distribution.version, commit=commit,
        factorbench_version=distribution_version("factorbench")))


def canonical_name(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def built_distribution(site: Path, name: str) -> importlib.metadata.Distribution:
    """The distribution ``name`` in a commit's build."""
    built = list(importlib.metadata.distributions(path=[str(site)]))
    for distribution in built:
        if canonical_name(distribution.metadata["Name"]) == canonical_name(name):
            return distribution
    raise GateError(f"the build in {site} holds no distribution {name!r} (it holds "
                    f"{', '.join(d.metadata['Name'] for d in built) or 'nothing'}): the gate measures the project "
                    f"named in the work tree's pyproject.toml")


def top_level_modules(distribution: importlib.metadata.Distribution) -> set[str]:
    """The importable top-level names a distribution installs."""
    listed = distribution.read_text("top_level.txt")
    if listed:
        return set(listed.split())
    names = set()
    for file in distribution.files or ():
        top = file.parts[0]
        if len(file.parts) == 1 and not top.endswith(".py"):
            continue
        if top.endswith((".dist-info", ".data")) or top in ("__pycache__", "..", "bin"):
            continue
        names.add(top.removesuffix(".py"))
    return names


def check_built_code(repo: Path, site: Path, modules: dict[str, str],
                     counted: dict[str, dict]) -> importlib.metadata.Distribution:
    """Refuse counts of code that is not the commit's build: the measured package (the work
    tree's project) must be imported from the build, never from anywhere else."""
    name = project_name(repo)
    if name is None:
        raise GateError(f"{repo / 'pyproject.toml'} names no [project] name: the gate measures that distribution")
    distribution = built_distribution(site, name)
    imported = {top: modules[top] for top in sorted(top_level_modules(distribution)) if modules.get(top)}
    for top, file in imported.items():
        if not Path(file).resolve().is_relative_to(site.resolve()):
            raise GateError(f"the callgrind run imported {top} from {file}, not from the build of the commit in "
                            f"{site}")
    if not imported and any(entry["status"] == "ok" for entry in counted.values()):
        raise GateError(f"the benchmarks never imported {name}: their counts would not measure the commit; the "
                        f"plugins named in {repo / 'pyproject.toml'} ([tool.factorbench] plugins) should import "
                        "the code they measure from it")
    return distribution


def run_callgrind(repo: Path, base: str, head: str, regex: re.Pattern | None, threshold_pct: float,
                  console: Console) -> tuple[list[Row], dict[str, CodeUnderTest]]:
    """Count base, head, then base again: the second base count measures each benchmark's
    own drift, taken after head so a change in the machine's state between shows too."""
    cache = repo / ".asv" / "gate"
    helper = callgrind_helper(cache)
    with tempfile.TemporaryDirectory(prefix="factorbench-callgrind-") as tmp:
        sites = {commit: build_commit(repo, commit, cache, console) for commit in (base, head)}
        measured = []
        for run, commit in enumerate((base, head, base)):
            console.print(f"[dim]counting instructions at {commit[:10]} under callgrind"
                          f"{' again, for the drift' if run == 2 else ''}[/dim]")
            measured.append(count_instructions(repo, commit, sites[commit], helper, regex, Path(tmp) / str(run)))
    before, after, before_again = measured
    rows = compare_counts(before.benchmarks, after.benchmarks, threshold_pct, before_again.benchmarks)
    for row in rows:
        # a benchmark missing on one side: say why when its plugin could not be loaded there
        if row.status == "new" and not row.note and before.plugin_errors:
            row.note = f"not counted at {base[:10]}: {before.absent_reason()}"
        elif row.status == "gone" and not row.note and after.plugin_errors:
            row.note = f"not counted at {head[:10]}: {after.absent_reason()}"
    return rows, {"base": before.code, "head": after.code}


def commit_code(repo: Path, commit: str) -> CodeUnderTest:
    """The code under test at ``commit`` without building it: the work tree's project, with
    the version the commit's pyproject.toml states (empty when it is computed at build time)."""
    done = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:pyproject.toml"], capture_output=True, text=True)
    try:
        version = tomllib.loads(done.stdout).get("project", {}).get("version", "") if done.returncode == 0 else ""
    except tomllib.TOMLDecodeError:
        version = ""
    return CodeUnderTest(package=project_name(repo) or "", version=str(version), commit=commit,
                         factorbench_version=distribution_version("factorbench"))


# ---------------------------------------------------------------- entry point

@dataclass
class Verdict:
    """What the gate found, for the terminal, the JSON, Markdown and JUnit writers."""
    mode: str
    base: str
    head: str
    base_name: str
    head_name: str
    rule: str
    rows: list[Row]
    code: dict[str, CodeUnderTest] = field(default_factory=dict)
    """The code under test at "base" and at "head"."""

    @property
    def title(self) -> str:
        return (f"{self.mode} gate {self.base_name} ({self.base[:8]}) -> {self.head_name} ({self.head[:8]}); "
                f"regression = {self.rule}")

    @property
    def regressions(self) -> list[str]:
        return [row.benchmark for row in self.rows if row.status in verdict.FAILING]

    def to_dict(self) -> dict:
        return {"mode": self.mode, "base": self.base, "head": self.head, "base_name": self.base_name,
                "head_name": self.head_name, "rule": self.rule, "title": self.title,
                "regressions": self.regressions,
                "code": {side: msgspec.to_builtins(code) for side, code in self.code.items()},
                "rows": [{key: None if isinstance(value, float) and math.isnan(value) else value
                          for key, value in {**asdict(row), "ratio": row.ratio}.items()} for row in self.rows]}


def check_options(mode: str, factor: float, threshold_pct: float) -> None:
    if mode not in MODES:
        raise GateError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not factor > 1.0:
        raise GateError(f"--factor must be greater than 1, got {factor}")
    if not threshold_pct > 0.0:
        raise GateError(f"--threshold must be a positive percentage, got {threshold_pct}")


def measure(base: str, head: str, *, mode: str = "wall", bench: str | None = None, factor: float = DEFAULT_FACTOR,
            threshold_pct: float = DEFAULT_THRESHOLD_PCT, cwd: Path | None = None,
            console: Console | None = None) -> Verdict:
    """Benchmark ``base`` and ``head`` and compare them. Raises GateError."""
    console = console or Console()
    check_options(mode, factor, threshold_pct)
    regex = compile_regex(bench)
    repo = checkout_root(cwd or Path.cwd())
    base_sha, head_sha = resolve(repo, base), resolve(repo, head)
    if mode == "wall":
        rows = run_wall(repo, base_sha, head_sha, regex, factor, console)
        code = {"base": commit_code(repo, base_sha), "head": commit_code(repo, head_sha)}
        rule = f"{LOW_PERCENTILE}th percentile slower by more than x{factor:g}, p < 0.002, twice"
    else:
        rows, code = run_callgrind(repo, base_sha, head_sha, regex, threshold_pct, console)
        rule = (f"more than {threshold_pct:g}% more instructions (or {DRIFT_MARGIN:g}x the benchmark's own drift "
                "at base, if larger)")
    return Verdict(mode, base_sha, head_sha, base, head, rule, rows, code)


def report(verdict: Verdict, console: Console, json_path: str | None = None) -> int:
    """Print the verdict (and write its JSON); 0 when nothing regressed, 1 otherwise."""
    print_rows(verdict.rows, verdict.title, console)
    if verdict.code:
        console.print("code under test: " + " -> ".join(escape(fmt.code_under_test(msgspec.to_builtins(code)))
                                                       for code in verdict.code.values()), highlight=False)
    if json_path:
        Path(json_path).write_text(json.dumps(verdict.to_dict(), indent=1))
    failing = verdict.regressions
    if failing:
        console.print(f"[bold red]REGRESSION[/bold red] in {len(failing)} benchmark(s): {escape(', '.join(failing))}",
                      soft_wrap=True)
        return 1
    console.print("[green]no regression[/green]")
    return 0


def gate(base: str, head: str, *, mode: str = "wall", bench: str | None = None, factor: float = DEFAULT_FACTOR,
         threshold_pct: float = DEFAULT_THRESHOLD_PCT, json_path: str | None = None, cwd: Path | None = None,
         console: Console | None = None) -> int:
    """Compare ``base`` and ``head``; 0 when nothing regressed, 1 otherwise. Raises GateError."""
    console = console or Console()
    verdict = measure(base, head, mode=mode, bench=bench, factor=factor, threshold_pct=threshold_pct, cwd=cwd,
                      console=console)
    return report(verdict, console, json_path)
