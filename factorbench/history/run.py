"""`factorbench history run`: measure the commits of a range and store a point per benchmark
and commit.

The benchmarks are the work tree's (its benchmarks/ suite and the plugins its
pyproject.toml names), applied to each commit's build, as asv applies its benchmarks/ to
every commit it measures: commits from before a team adopted factorbench are measured
too. Builds come from the gate's cache, one per distinct set of build inputs; in callgrind
mode commits that share a build share its counts as well (instruction counts of one
build reproduce), so commits touching only docs or tests cost nothing after the first.
A commit that does not build, or on which the plugins cannot load (a function they use
did not exist yet), gets a ``skipped`` point per benchmark with the reason: the range
goes on. Points are stored commit by commit, so an interrupted run keeps what it measured.
"""

from __future__ import annotations

import hashlib
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from msgspec.structs import replace
from rich.console import Console
from rich.markup import escape

from factorbench.history.store import Point, Store
from factorbench.regress import gate
from factorbench.regress.gate import Counted, GateError

MODES = ("callgrind",)
"""Wall time over a range is asv's job (`asv run A..B`; `history import .asv/results`)."""


@dataclass(frozen=True)
class Commit:
    sha: str
    time: float
    """Committer time, unix seconds."""
    subject: str


def commits_in(repo: Path, spec: str) -> list[Commit]:
    """The commits of ``A..B`` (after A up to B) or of a single revision's whole history,
    oldest first, along first parents (the branch's own line, as bisect walks it)."""
    start, dots, end = spec.partition("..")
    if dots and (not start or not end or end.startswith(".")):
        raise GateError(f"range {spec!r} is not A..B or a single commit (e.g. v1.0..main, HEAD~50..HEAD, main)")
    revisions = [gate.resolve(repo, start), gate.resolve(repo, end)] if dots else [gate.resolve(repo, spec)]
    selection = f"{revisions[0]}..{revisions[1]}" if dots else revisions[0]
    listed = subprocess.run(["git", "-C", str(repo), "log", "--first-parent", "--reverse", "--format=%H %ct %s",
                             selection], capture_output=True, text=True, check=True).stdout
    commits = [Commit(sha, float(stamp), subject) for sha, stamp, subject in
               (line.split(" ", 2) if line.count(" ") >= 2 else (*line.split(" ", 1), "")
                for line in listed.splitlines())]
    if not commits:
        raise GateError(f"range {spec!r} holds no commits ({start[:10]} is not behind {end[:10]})" if dots
                        else f"range {spec!r} holds no commits")
    return commits


def spread(commits: list[Commit], steps: int | None) -> list[Commit]:
    """At most ``steps`` commits spread evenly over the range, its first and last included
    (as ``asv run --steps``); all of them without ``steps``."""
    if steps is None or steps >= len(commits):
        return commits
    if steps == 1:
        return commits[-1:]
    picked = sorted({round(i * (len(commits) - 1) / (steps - 1)) for i in range(steps)})
    return [commits[i] for i in picked]


def definitions_id(repo: Path) -> str:
    """A hash of what the work tree applies to each commit (its benchmark suite and plugin
    files): a run is stored once per commit and definitions, and new definitions give new points."""
    digest = hashlib.sha256()
    files = sorted((repo / gate.COUNTER.parent).rglob("*.py"))
    files += [Path(spec) for spec in gate.work_tree_plugins(repo) if Path(spec).is_file()]
    for file in files:
        digest.update(str(file.relative_to(repo) if file.is_relative_to(repo) else file).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


@dataclass
class Outcome:
    """What a history run measured and stored."""
    commits: list[Commit]
    builds: int = 0
    """Distinct builds measured."""
    built: int = 0
    """Of those, the ones not in the build cache before."""
    build_s: float = 0.0
    count_s: float = 0.0
    """Seconds spent building (new builds only) and counting, over the whole run."""
    stored: int = 0
    points: int = 0
    """Points made (``stored`` of them were new to the store)."""
    failed: dict[str, str] = field(default_factory=dict)
    """Commits that could not be measured at all: sha -> one-line reason."""
    uncountable: dict[str, str] = field(default_factory=dict)
    """Benchmarks that are wall-time only: name -> reason."""

    @property
    def measured(self) -> int:
        return len(self.commits) - len(self.failed)


def points_of(counted: Counted, commit: Commit, machine: str, run_id: str) -> list[Point]:
    blank = Point(benchmark="", machine=machine, mode="callgrind", metric="instructions", unit="instructions",
                  commit=commit.sha, commit_time=commit.time, subject=commit.subject, package=counted.code.package,
                  package_version=counted.code.version, factorbench_version=counted.code.factorbench_version,
                  run_id=run_id)
    points = []
    for name, entry in sorted(counted.benchmarks.items()):
        status, reason = entry["status"], entry.get("reason", "")
        if status == "uncountable":
            continue
        if status == "ok":
            points.append(replace(blank, benchmark=name, value=float(entry["count"])))
        elif status == "skipped":
            points.append(replace(blank, benchmark=name, status="skipped", reason=reason))
        else:  # failed, wrong, or the harness's error: no value, and which it was in the reason
            points.append(replace(blank, benchmark=name, status="failed",
                                  reason=reason if status == "failed" else f"{status}: {reason}"))
    return points


def skipped_points(names: list[str], commit: Commit, machine: str, run_id: str, reason: str,
                   package: str) -> list[Point]:
    return [Point(benchmark=name, machine=machine, mode="callgrind", metric="instructions", unit="instructions",
                  commit=commit.sha, commit_time=commit.time, subject=commit.subject, status="skipped",
                  reason=reason, package=package, run_id=run_id) for name in names]


def run(spec: str, store: Store, *, steps: int | None = None, bench: str | None = None, mode: str = "callgrind",
        machine: str | None = None, cwd: Path | None = None, console: Console | None = None) -> Outcome:
    """Measure the commits of ``spec`` (``A..B`` or one revision) and add their points to
    ``store``. Raises GateError for bad input (one line)."""
    console = console or Console()
    if mode not in MODES:
        raise GateError(f"--mode {mode!r} is not supported by history run; choose from: {', '.join(MODES)} "
                        "(wall time over a range: asv run A..B, then factorbench history import .asv/results)")
    if steps is not None and steps < 1:
        raise GateError(f"--steps must be a positive number of commits, got {steps}")
    regex = gate.compile_regex(bench)
    repo = gate.checkout_root(cwd or Path.cwd())
    commits = spread(commits_in(repo, spec), steps)
    machine = machine or platform.node()
    definitions = definitions_id(repo)
    package = gate.project_name(repo) or ""
    cache = repo / ".asv" / "gate"
    helper = gate.callgrind_helper(cache)
    outcome = Outcome(commits)
    counted_by_build: dict[str, Counted] = {}
    missing: dict[str, Commit] = {}
    """Commits whose benchmarks are not all known yet: their skipped points come last."""
    names: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="factorbench-history-") as tmp:
        for number, commit in enumerate(commits, 1):
            run_id = f"history callgrind {commit.sha} {definitions}"
            label = f"[{number}/{len(commits)}] {commit.sha[:10]} {commit.subject}"
            try:
                key = gate.build_key(repo, commit.sha)
                shared = key in counted_by_build
                if not shared:
                    outcome.builds += 1
                    outcome.built += not (cache / "builds" / key / ".complete").exists()
                    started = time.monotonic()
                    site = gate.build_commit(repo, commit.sha, cache, console)
                    built = time.monotonic()
                    counted_by_build[key] = gate.count_instructions(repo, commit.sha, site, helper, regex,
                                                                    Path(tmp) / commit.sha)
                    outcome.build_s += built - started
                    outcome.count_s += time.monotonic() - built
                counted = counted_by_build[key]
            except GateError as exc:
                outcome.failed[commit.sha] = str(exc).strip().splitlines()[0]
                missing[commit.sha] = commit
                console.print(f"{escape(label)}: skipped: {escape(outcome.failed[commit.sha])}", highlight=False)
                continue
            points = points_of(counted, commit, machine, run_id)
            names.update(point.benchmark for point in points)
            outcome.uncountable.update({name: entry.get("reason", "") for name, entry in counted.benchmarks.items()
                                        if entry["status"] == "uncountable"})
            if counted.plugin_errors or not points:
                missing[commit.sha] = commit
            outcome.stored += store.add(points)
            outcome.points += len(points)
            ok = sum(point.status == "ok" for point in points)
            console.print(f"{escape(label)}: {ok} counted" + (f", {len(points) - ok} not" if len(points) > ok else "")
                          + (" (same build as a commit counted already)" if shared else "")
                          + (f"; {escape(counted.absent_reason())}" if counted.plugin_errors else ""),
                          highlight=False)
        # benchmarks that a commit could not run at all: skipped there, with the reason
        for sha, commit in missing.items():
            run_id = f"history callgrind {sha} {definitions}"
            counted_here = counted_by_build.get(gate.build_key(repo, sha)) if sha not in outcome.failed else None
            have = set(counted_here.benchmarks) if counted_here else set()
            reason = outcome.failed.get(sha) or (counted_here.absent_reason() if counted_here else "")
            absent = sorted(names - have)
            points = skipped_points(absent, commit, machine, run_id, reason, package)
            outcome.stored += store.add(points)
            outcome.points += len(points)
    return outcome

