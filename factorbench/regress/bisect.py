"""Find the first commit between GOOD and BAD at which a benchmark regressed.

Each probed commit is compared against GOOD with the gate's own comparison (callgrind
counts, with GOOD counted twice for the drift, or asv's wall times), built once into
the gate's build cache. A commit that does not build, or whose counting or benchmark
fails, is skipped as ``git bisect skip`` does; the search then probes its nearest
untested neighbour. Probing stops at ``max_probes`` commits or ``max_seconds``, and
then reports the narrowest range found.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from factorbench.regress import gate
from factorbench.results import verdict

DEFAULT_MAX_PROBES = 12
DEFAULT_MAX_SECONDS = 3600.0


@dataclass
class Probe:
    commit: str
    subject: str
    state: str
    """regressed, good, or skipped."""
    ratio: float | None = None
    benchmarks: list[str] = field(default_factory=list)
    """The benchmarks that regressed at this commit."""
    reason: str = ""


@dataclass
class Outcome:
    good: str
    bad: str
    commits: list[str]
    probes: dict[str, Probe]
    culprit: Probe | None
    """The first regressed commit, when the search narrowed to one."""
    message: str

    def to_dict(self) -> dict:
        return {"good": self.good, "bad": self.bad, "commits": len(self.commits), "message": self.message,
                "culprit": self.culprit.__dict__ if self.culprit else None,
                "probes": [probe.__dict__ for probe in self.probes.values()]}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


def commits_between(repo: Path, good: str, bad: str) -> list[str]:
    """Commits after ``good`` up to and including ``bad``, oldest first, along the first parents."""
    if subprocess.run(["git", "-C", str(repo), "merge-base", "--is-ancestor", good, bad]).returncode != 0:
        raise gate.GateError(f"GOOD ({good[:10]}) is not an ancestor of BAD ({bad[:10]})")
    listed = git(repo, "rev-list", "--first-parent", "--reverse", f"{good}..{bad}")
    return listed.split()


class Judge:
    """Compares commits with GOOD the way the gate does, measuring GOOD once."""

    def __init__(self, repo: Path, good: str, mode: str, regex: re.Pattern | None, factor: float,
                 threshold_pct: float, console: Console, work: Path):
        self.repo, self.good, self.mode, self.regex = repo, good, mode, regex
        self.factor, self.threshold_pct, self.console, self.work = factor, threshold_pct, console, work
        self.cache = repo / ".asv" / "gate"
        self.baseline: tuple[dict, dict] | None = None
        self.counted: dict[str, dict[str, dict]] = {}
        """Counts per build: commits with the same build inputs run the same code."""

    def count(self, commit: str, run: str) -> dict[str, dict]:
        key = gate.build_key(self.repo, commit)
        if run != "good-again" and key in self.counted:
            self.console.print(f"[dim]{commit[:10]} has the same build as one counted already[/dim]")
            return self.counted[key]
        helper = gate.callgrind_helper(self.cache)
        site = gate.build_commit(self.repo, commit, self.cache, self.console)
        self.console.print(f"[dim]counting instructions at {commit[:10]} under callgrind[/dim]")
        counted = gate.count_instructions(self.repo, commit, site, helper, self.regex, self.work / run)
        if counted.plugin_errors and not any(entry["status"] == "ok" for entry in counted.benchmarks.values()):
            raise gate.GateError(counted.absent_reason())
        self.counted.setdefault(key, counted.benchmarks)
        return counted.benchmarks

    def rows(self, commit: str) -> list[gate.Row]:
        if self.mode == "wall":
            return gate.run_wall(self.repo, self.good, commit, self.regex, self.factor, self.console)
        if self.baseline is None:
            self.baseline = (self.count(self.good, "good"), self.count(self.good, "good-again"))
        before, again = self.baseline
        return gate.compare_counts(before, self.count(commit, commit), self.threshold_pct, again)

    def probe(self, commit: str, subject: str) -> Probe:
        try:
            rows = self.rows(commit)
        except gate.GateError as exc:
            return Probe(commit, subject, "skipped", reason=str(exc).splitlines()[0])
        regressed = [row for row in rows if row.status == verdict.REGRESSED]
        failed = [row for row in rows if row.status in verdict.BROKEN]
        if regressed:
            ratio = max(row.ratio or 0.0 for row in regressed)
            return Probe(commit, subject, "regressed", ratio, [row.benchmark for row in regressed])
        if failed:
            return Probe(commit, subject, "skipped",
                         reason=f"{failed[0].benchmark} is {failed[0].status} there: {failed[0].note}")
        if not any(row.status in (verdict.UNCHANGED, verdict.IMPROVED, verdict.NOISY) for row in rows):
            return Probe(commit, subject, "skipped", reason="no benchmark compared (none selected, or none ran)")
        ratios = [row.ratio for row in rows if row.ratio is not None]
        return Probe(commit, subject, "good", max(ratios) if ratios else None)


def next_probe(commits: list[str], low: int, high: int, probes: dict[str, Probe]) -> int | None:
    """The untested commit strictly between ``low`` and ``high`` nearest their middle."""
    middle = (low + high) // 2
    order = sorted(range(low + 1, high), key=lambda i: (abs(i - middle), i))
    return next((i for i in order if commits[i] not in probes), None)


def bisect(good: str, bad: str, *, bench: str, mode: str = "callgrind", factor: float = gate.DEFAULT_FACTOR,
           threshold_pct: float = gate.DEFAULT_THRESHOLD_PCT, max_probes: int = DEFAULT_MAX_PROBES,
           max_seconds: float = DEFAULT_MAX_SECONDS, cwd: Path | None = None,
           console: Console | None = None) -> Outcome:
    console = console or Console()
    gate.check_options(mode, factor, threshold_pct)
    regex = gate.compile_regex(bench)
    repo = gate.checkout_root(cwd or Path.cwd())
    good_sha, bad_sha = gate.resolve(repo, good), gate.resolve(repo, bad)
    commits = commits_between(repo, good_sha, bad_sha)
    if not commits:
        raise gate.GateError(f"no commits after GOOD {good!r} up to BAD {bad!r}")
    started = time.monotonic()
    probes: dict[str, Probe] = {}
    with tempfile.TemporaryDirectory(prefix="factorbench-bisect-") as tmp:
        judge = Judge(repo, good_sha, mode, regex, factor, threshold_pct, console, Path(tmp))

        def probe(index: int) -> Probe:
            commit = commits[index]
            subject = git(repo, "log", "-1", "--format=%s", commit)
            console.print(f"probing {commit[:10]} {escape(subject)} ({len(probes) + 1} of at most {max_probes})",
                          highlight=False)
            result = judge.probe(commit, subject)
            probes[commit] = result
            console.print(f"  {result.state}" + (f" x{result.ratio:.3f}" if result.ratio else "")
                          + (f": {escape(result.reason)}" if result.reason else ""), highlight=False)
            return result

        # low: the newest index known good (-1 = GOOD); high: the oldest known regressed.
        low, high = -1, len(commits) - 1
        first = probe(high)
        if first.state != "regressed":
            message = (f"no regression between {good} and {bad}: BAD is not slower than GOOD by the gate's rule"
                       if first.state == "good" else f"BAD could not be judged ({first.reason}); nothing to bisect")
            return Outcome(good_sha, bad_sha, commits, probes, None, message)
        while True:
            index = next_probe(commits, low, high, probes)
            if index is None:
                break
            if len(probes) >= max_probes or time.monotonic() - started > max_seconds:
                culprit_range = f"{commits[low][:10] if low >= 0 else good_sha[:10]}..{commits[high][:10]}"
                return Outcome(good_sha, bad_sha, commits, probes, None,
                               f"stopped after {len(probes)} probes ({time.monotonic() - started:.0f} s): the first "
                               f"regressed commit is in {culprit_range}")
            result = probe(index)
            if result.state == "regressed":
                high = index
            elif result.state == "good":
                # skipped commits between low and this good one are no longer candidates
                low = index
    culprit = probes[commits[high]]
    skipped_before = [commits[i] for i in range(low + 1, high) if probes.get(commits[i], None)
                      and probes[commits[i]].state == "skipped"]
    if skipped_before:
        return Outcome(good_sha, bad_sha, commits, probes, None,
                       f"the first regressed commit is one of {', '.join(c[:10] for c in skipped_before)} "
                       f"(skipped) or {culprit.commit[:10]}")
    return Outcome(good_sha, bad_sha, commits, probes, culprit,
                   f"first regressed commit: {culprit.commit[:10]} {culprit.subject} x{culprit.ratio:.3f} "
                   f"({', '.join(culprit.benchmarks)})")
