"""`factorbench history import`: points from what already exists, read whole before any is
stored, so a corrupt file stores nothing and loses nothing.

- a factorbench results file: one point per row (its median and CI), on the machine the
  file names, at the commit of the code under test;
- a gate verdict (`factorbench gate --json`): a point per benchmark at base and at head;
- an asv results directory (`.asv/results`): a point per benchmark (with its parameters) of
  every stored commit, machine and environment, read through the asv adapter.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from factorbench.history.store import Point
from factorbench.results import analysis
from factorbench.results.schema import ResultsError, load

FAILED_STATUSES = ("wrong", "failed", "timeout", "crashed")
GATE_METRICS = {"callgrind": "instructions", "wall": "seconds"}


class SourceError(ValueError):
    """A file that cannot be imported, with the reason (one line)."""


@dataclass(frozen=True)
class CommitInfo:
    time: float
    subject: str


def commit_infos(repo: Path, commits: Iterable[str]) -> dict[str, CommitInfo]:
    """Committer time and subject of each commit the repository knows (others are left out),
    keyed by the name given (full or abbreviated sha)."""
    wanted = sorted({commit for commit in commits if commit})
    if not wanted:
        return {}
    done = subprocess.run(["git", "log", "--ignore-missing", "--no-walk=unsorted", "--stdin",
                           "--format=%H%x00%ct%x00%s"], cwd=repo, input="\n".join(wanted) + "\n",
                          capture_output=True, text=True)
    if done.returncode != 0:
        return {}
    found = {}
    for line in done.stdout.splitlines():
        sha, _, rest = line.partition("\0")
        time_s, _, subject = rest.partition("\0")
        found[sha] = CommitInfo(float(time_s), subject)
    return {name: info for name in wanted for sha, info in found.items() if sha.startswith(name)}


def run_digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def params_key(params: dict | None) -> str:
    return json.dumps(params, sort_keys=True) if params else ""


def kind_of(path: Path) -> str:
    """"asv" (a results directory), "results" or "gate" (JSON files told apart by their keys)."""
    if path.is_dir():
        return "asv"
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file or directory") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot be read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: not a readable JSON file ({exc})") from None
    if isinstance(doc, dict) and "schema_version" in doc:
        return "results"
    if isinstance(doc, dict) and {"mode", "base", "head", "rows"} <= doc.keys():
        return "gate"
    raise SourceError(f"{path}: neither a factorbench results file, a gate verdict (gate --json) nor an asv "
                       "results directory")


def read(paths: list[Path], repo: Path, machine: str | None = None) -> list[Point]:
    """Every point of ``paths``; SourceError names the first that cannot be read."""
    found: list[Point] = []
    for path in paths:
        kind = kind_of(path)
        if kind == "results":
            found += results_points(path, repo)
        elif kind == "gate":
            found += gate_points(path, repo, machine or platform.node())
        else:
            found += asv_points(path, repo)
    return found


def results_points(path: Path, repo: Path) -> list[Point]:
    """A results file's rows: wall mode, seconds per call, at the measured size (a row the
    time budget shrank is a different series from the full size)."""
    try:
        doc = load(path)
    except ResultsError as exc:
        raise SourceError(str(exc)) from None
    machine = doc["machine"].get("hostname") or "unknown"
    code = doc.get("code") or {}
    commit = code.get("commit", "")
    dirty = bool(code.get("dirty", False))
    if not commit:  # before results recorded the code under test: factorbench's own checkout
        commit, _, suffix = (doc["machine"].get("git_commit") or "").partition("+")
        dirty = suffix == "dirty"
    started = doc["options"].get("started") or ""
    info = commit_infos(repo, [commit]).get(commit)
    if info is None:  # a commit this repository does not know: ordered by when it ran
        info = CommitInfo(parse_time(started, path), "")
    run_id = "results:" + run_digest(machine, started, commit)
    version = code.get("factorbench_version") or doc["machine"].get("libraries", {}).get("factorbench", "")
    points = []
    for row in doc["results"]:
        status = row["status"]
        ok = status == "ok" and row.get("median") is not None
        points.append(Point(
            benchmark=f"{row['kernel']}.{analysis.label(row)}", machine=machine, mode="wall", metric="seconds",
            unit="seconds", params=params_key(row["params"]), commit=commit, commit_time=info.time,
            subject=info.subject, value=row["median"] if ok else None, ci_low=row.get("ci_low") if ok else None,
            ci_high=row.get("ci_high") if ok else None,
            status="ok" if ok else ("skipped" if status == "skipped" else "failed"),
            reason="" if ok else f"{status}: {row.get('reason', '')}".strip(": "),
            package=code.get("package", ""), package_version=code.get("version", ""), dirty=dirty,
            factorbench_version=version, run_id=run_id))
    return points


def parse_time(text: str, path: Path) -> float:
    try:
        return datetime.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return os.stat(path).st_mtime


def gate_points(path: Path, repo: Path, machine: str) -> list[Point]:
    """A gate verdict's rows: a point at base (before) and one at head (after) per benchmark."""
    doc = json.loads(path.read_bytes())
    mode = doc["mode"]
    if mode not in GATE_METRICS or not isinstance(doc["rows"], list):
        raise SourceError(f"{path}: gate verdict of unknown mode {mode!r} (allowed: {', '.join(GATE_METRICS)})")
    infos = commit_infos(repo, [doc["base"], doc["head"]])
    digest = run_digest(doc)
    points = []
    for side, field in (("base", "before"), ("head", "after")):
        commit = doc[side]
        code = (doc.get("code") or {}).get(side) or {}
        info = infos.get(commit, CommitInfo(0.0 if side == "base" else 1.0, ""))
        for row in doc["rows"]:
            try:
                value = row[field]
                benchmark, unit = row["benchmark"], row.get("unit", "")
            except (KeyError, TypeError):
                raise SourceError(f"{path}: a row without benchmark, before and after: {row!r:.80}") from None
            ok = isinstance(value, (int, float)) and value == value
            points.append(Point(
                benchmark=benchmark, machine=machine, mode=mode, metric=GATE_METRICS[mode], unit=unit,
                commit=commit, commit_time=info.time, subject=info.subject, value=float(value) if ok else None,
                status="ok" if ok else "failed", reason="" if ok else f"{row.get('status', '')}: {row.get('note', '')}",
                package=code.get("package", ""), package_version=code.get("version", ""),
                dirty=bool(code.get("dirty", False)), factorbench_version=code.get("factorbench_version", ""),
                run_id=f"gate:{digest}:{side}"))
    return points


def asv_points(path: Path, repo: Path) -> list[Point]:
    """An asv results directory: every machine's stored commits. A machine's environments are
    separate series (params name the environment): two Pythons are not one history."""
    from factorbench.regress import asv_adapter

    try:
        runs = list(asv_adapter.stored_runs(path))
    except asv_adapter.AsvResultsError as exc:
        raise SourceError(str(exc)) from None
    if not runs:
        raise SourceError(f"{path}: no asv results in it (expected <machine>/machine.json and "
                           "<machine>/<commit>-<environment>.json files)")
    infos = commit_infos(repo, [run.commit for run in runs])
    points = []
    for run in runs:
        info = infos.get(run.commit)
        subject = info.subject if info else ""
        commit_time = run.date_s if run.date_s is not None else (info.time if info else 0.0)
        for result in run.results:
            ok = result.value is not None and result.value == result.value
            points.append(Point(
                benchmark=result.name, machine=run.machine, mode="wall", metric=result.unit or "value",
                unit=result.unit, params=params_key({"asv_env": run.env}), commit=run.commit,
                commit_time=commit_time, subject=subject, value=result.value if ok else None,
                ci_low=result.ci[0] if ok and result.ci else None, ci_high=result.ci[1] if ok and result.ci else None,
                status="ok" if ok else ("failed" if result.value is None else "skipped"),
                reason="" if ok else ("failed in asv" if result.value is None else "skipped in asv"),
                run_id=f"asv:{run.machine}:{run.commit}:{run.env}"))
    return points
