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
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from msgspec.structs import replace
from rich.console import Console
from rich.markup import escape

from factorbench.history.store import Point, Store
from factorbench.parallel.schedulers import CONNECT_TIMEOUT_S, check_reachable
from factorbench.regress import bisect, gate
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


@dataclass
class Measured:
    """One build counted: the unit of work, done here or on a Dask worker."""
    counted: Counted | None
    error: str = ""
    """Why it could not be built or counted (then ``counted`` is None)."""
    machine: str = ""
    """Where it was counted."""
    built: bool = False
    """Built now, not found in the build cache."""
    build_s: float = 0.0
    count_s: float = 0.0


def measure_build(repo: str, commit: str, key: str, bench: str | None) -> Measured:
    """Build ``commit`` (from the gate's cache when it is there) and count its benchmarks
    under callgrind. Takes plain values, so a Dask worker seeing the repository at the same
    path can run it."""
    root = Path(repo)
    cache = root / ".asv" / "gate"
    built = not (cache / "builds" / key / ".complete").exists()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="factorbench-history-") as tmp:
        try:
            helper = gate.callgrind_helper(cache)
            site = gate.build_commit(root, commit, cache, Console(quiet=True))
            middle = time.monotonic()
            counted = gate.count_instructions(root, commit, site, helper, gate.compile_regex(bench), Path(tmp))
        except GateError as exc:
            return Measured(None, str(exc).strip().splitlines()[0], platform.node(), built,
                            time.monotonic() - started)
    return Measured(counted, "", platform.node(), built, middle - started, time.monotonic() - middle)


def dask_client(address: str):
    """A client of the Dask cluster at ``address``, or GateError in one line."""
    try:
        check_reachable(address)
    except ConnectionError as exc:
        raise GateError(str(exc)) from None
    except (TypeError, ValueError):
        raise GateError(f"--scheduler {address!r} is not a tcp://HOST:PORT address") from None
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        raise GateError(f"Dask scheduler {address} did not accept a client: {exc}") from None


def run(spec: str, store: Store, *, steps: int | None = None, bench: str | None = None, mode: str = "callgrind",
        machine: str | None = None, scheduler: str | None = None, cwd: Path | None = None,
        console: Console | None = None) -> Outcome:
    """Measure the commits of ``spec`` (``A..B`` or one revision) and add their points to
    ``store``; with ``scheduler`` (tcp://HOST:PORT), the builds are counted on that Dask
    cluster's workers, which must see the repository at the same path. Raises GateError
    for bad input (one line)."""
    console = console or Console()
    if mode not in MODES:
        raise GateError(f"--mode {mode!r} is not supported by history run; choose from: {', '.join(MODES)} "
                        "(wall time over a range: asv run A..B, then factorbench history import .asv/results)")
    if steps is not None and steps < 1:
        raise GateError(f"--steps must be a positive number of commits, got {steps}")
    gate.compile_regex(bench)
    repo = gate.checkout_root(cwd or Path.cwd())
    commits = spread(commits_in(repo, spec), steps)
    definitions = definitions_id(repo)
    package = gate.project_name(repo) or ""
    gate.callgrind_helper(repo / ".asv" / "gate")  # compiled once, before any worker needs it
    keys = {commit.sha: gate.build_key(repo, commit.sha) for commit in commits}
    first_of: dict[str, Commit] = {}
    for commit in commits:
        first_of.setdefault(keys[commit.sha], commit)
    outcome = Outcome(commits)
    client = dask_client(scheduler) if scheduler else None
    try:
        # each distinct build once, on the cluster all at once or here when first needed
        futures = {key: client.submit(measure_build, str(repo), commit.sha, key, bench, pure=False)
                   for key, commit in first_of.items()} if client else {}
        measured: dict[str, Measured] = {}
        missing: dict[str, Commit] = {}
        """Commits whose benchmarks are not all known yet: their skipped points come last."""
        names: set[str] = set()
        for number, commit in enumerate(commits, 1):
            key = keys[commit.sha]
            shared = key in measured
            if not shared:
                measured[key] = (futures[key].result() if client
                                 else measure_build(str(repo), first_of[key].sha, key, bench))
                outcome.builds += 1
                outcome.built += measured[key].built
                outcome.build_s += measured[key].build_s
                outcome.count_s += measured[key].count_s
            result = measured[key]
            label = f"[{number}/{len(commits)}] {commit.sha[:10]} {commit.subject}"
            if result.counted is None:
                outcome.failed[commit.sha] = result.error
                missing[commit.sha] = commit
                console.print(f"{escape(label)}: skipped: {escape(result.error)}", highlight=False)
                continue
            counted = result.counted
            points = points_of(counted, commit, machine or result.machine,
                               f"history callgrind {commit.sha} {definitions}")
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
                          + (f" on {escape(result.machine)}" if client else "")
                          + (f"; {escape(counted.absent_reason())}" if counted.plugin_errors else ""),
                          highlight=False)
    finally:
        if client is not None:
            client.close()
    # benchmarks that a commit could not run at all: skipped there, with the reason
    for sha, commit in missing.items():
        result = measured[keys[sha]]
        have = set(result.counted.benchmarks) if result.counted else set()
        reason = result.error or (result.counted.absent_reason() if result.counted else "")
        points = skipped_points(sorted(names - have), commit, machine or result.machine,
                                f"history callgrind {sha} {definitions}", reason, package)
        outcome.stored += store.add(points)
        outcome.points += len(points)
    return outcome


@dataclass
class Narrowed:
    """A change point's commit range after bisecting the commits history run skipped."""
    commit: str
    """The first commit with the new level, where the search narrowed to one; else ""."""
    message: str


def narrow(change, cwd: Path | None = None, console: Console | None = None) -> Narrowed | None:
    """Bisect a regression whose range (``change.previous_commit``..``change.commit``) spans
    commits that were not measured; None when there is nothing to narrow (one commit, or
    not a regression of a callgrind series, the only ones whose counts bisect can repeat)."""
    if not change.regression or change.mode != "callgrind":
        return None
    repo = gate.checkout_root(cwd or Path.cwd())
    between = bisect.commits_between(repo, change.previous_commit, change.commit)
    if len(between) <= 1:
        return None
    outcome = bisect.bisect(change.previous_commit, change.commit, bench=f"^{re.escape(change.benchmark)}$",
                            mode="callgrind", cwd=repo, console=console or Console(quiet=True))
    return Narrowed(outcome.culprit.commit if outcome.culprit else "", outcome.message)
