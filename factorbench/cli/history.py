"""`factorbench history`: the performance history of a repository, in a store (a SQLite file
by default, or a PostgreSQL server): import what exists, find change points, draw the report.

Each subcommand is an ``add_<name>(commands)`` that adds its parser and a ``<name>(args)``
that runs it, listed in SUBCOMMANDS.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from factorbench.cli import history_run
from factorbench.cli.console import console, say
from factorbench.cli.gate import append_step_summary
from factorbench.cli.parser import Parser, UsageError

FAIL_ON = ("regression",)


def add_parser(sub) -> None:
    history = sub.add_parser("history", help="store results across commits, find change points, draw their trends")
    commands = history.add_subparsers(dest="history_command", required=True, parser_class=Parser,
                                      metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for add, _run in SUBCOMMANDS.values():
        add(commands)
    history.set_defaults(handler=command)


def command(args) -> int:
    from factorbench.history.store import StoreError

    try:
        return SUBCOMMANDS[args.history_command][1](args)
    except StoreError as exc:
        raise UsageError(str(exc)) from None


def add_store_option(parser) -> None:
    parser.add_argument("--store", metavar="URL",
                        help="the history store: a SQLite file path or sqlite:///PATH, or postgresql://USER@HOST/DB "
                             "(default: $FACTORBENCH_HISTORY_STORE, else .factorbench/history.sqlite at the "
                             "repository root)")


def open_store(args):
    from factorbench.history.store import open_store as open_

    return open_(args.store)


def repo_root() -> Path:
    from factorbench.history.store import repo_root as root

    return root(Path.cwd())


# ---------------------------------------------------------------- import

def add_import(commands) -> None:
    parser = commands.add_parser("import", help="store factorbench results files, gate verdicts (gate --json) and "
                                                "asv results directories (.asv/results)")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a results file, a gate verdict or an asv results "
                                                                 "directory")
    parser.add_argument("--machine", metavar="NAME", help="the machine a gate verdict was measured on (default: this "
                                                          "one's hostname); results files and asv name their own")
    add_store_option(parser)


def import_(args) -> int:
    from factorbench.history import importers

    try:
        points = importers.read([Path(path) for path in args.paths], repo_root(), machine=args.machine)
    except importers.SourceError as exc:
        raise UsageError(f"{exc}; nothing was imported") from None
    with open_store(args) as store:
        new = store.add(points)
        say(f"imported {len(points):,} points from {len(args.paths)} path(s): {new:,} new, "
            f"{len(points) - new:,} already stored; {store.count():,} points in {store}")
    return 0


# ---------------------------------------------------------------- changes

def add_changes(commands) -> None:
    parser = commands.add_parser("changes", help="change points of every stored series (exit 1 with --fail-on "
                                                 "regression when one is newer than --since)")
    parser.add_argument("--since", metavar="REF", help="only change points at commits that REF does not contain, "
                                                       "e.g. main or v1.2")
    parser.add_argument("--fail-on", choices=FAIL_ON, help="exit 1 when a regression (after --since) stands: one "
                                                           "that a later change point of its series did not undo")
    parser.add_argument("--bench", metavar="REGEX", help="only benchmarks whose name matches")
    parser.add_argument("--json", metavar="PATH", help="also write the change points here")
    parser.add_argument("--markdown", metavar="PATH", help="also write them as GitHub Markdown here; appended to "
                                                           "$GITHUB_STEP_SUMMARY whenever that is set")
    parser.add_argument("--bisect", action="store_true",
                        help="narrow each regression of a callgrind series whose commit range spans commits that "
                             "were not measured (history run --steps) to one commit, with factorbench bisect")
    add_store_option(parser)


def newer_than(ref: str):
    """Whether a change point is newer than ``ref``: its commit is not ``ref`` nor one of its
    ancestors; a commit this repository does not know is compared by committer time."""
    root = repo_root()
    ref_shown = subprocess.run(["git", "show", "-s", "--format=%ct", f"{ref}^{{commit}}", "--"], cwd=root,
                            capture_output=True, text=True)
    if ref_shown.returncode != 0 or not ref_shown.stdout.strip():
        raise UsageError(f"--since {ref}: no such commit in {root}")
    ref_time = float(ref_shown.stdout.split()[0])
    ancestors = set(subprocess.run(["git", "rev-list", f"{ref}^{{commit}}", "--"], cwd=root, capture_output=True,
                                   text=True, check=True).stdout.split())
    known = set(subprocess.run(["git", "rev-list", "--all"], cwd=root, capture_output=True, text=True).stdout.split())

    def newer(change) -> bool:
        if change.commit in known:
            return change.commit not in ancestors
        return change.commit_time > ref_time

    return newer


def load_changes(args):
    """The store's change points (after --since, of --bench): (change points, series count)."""
    from factorbench.history.changes import find_changes

    newer = newer_than(args.since) if args.since else None
    from factorbench.regress import gate

    try:
        regex = gate.compile_regex(args.bench)
    except gate.GateError as exc:
        raise UsageError(str(exc)) from None
    with open_store(args) as store:
        series = [points for points in store.all_series() if regex is None or regex.search(points[0].benchmark)]
    changes = find_changes(series)
    if newer is not None:
        changes = [change for change in changes if newer(change)]
    return changes, series


def changes(args) -> int:
    from factorbench.history import render

    found, series = load_changes(args)
    print_changes(found, len(series))
    narrowed = bisect_changes(found) if args.bisect else {}
    if args.json:
        Path(args.json).write_text(json.dumps([{**change.to_dict(), **narrowed.get(id(change), {})}
                                               for change in found], indent=1))
        say(f"json: {args.json}")
    if args.markdown or os.environ.get("GITHUB_STEP_SUMMARY"):
        text = render.changes_markdown(found, len(series))
        if args.markdown:
            Path(args.markdown).write_text(text, encoding="utf-8")
            say(f"markdown: {args.markdown}")
        append_step_summary(text)
    from factorbench.history.changes import standing

    regressions = standing(found)
    for change in found:
        if change.regression and change not in regressions:
            say(f"regression at {change.commit[:10]} ({render.series_name(change)}): undone later, not failing")
    return 1 if args.fail_on == "regression" and regressions else 0


def bisect_changes(found) -> dict[int, dict]:
    """Each regression whose range spans unmeasured commits, narrowed by bisect: {id(change):
    {"narrowed_to": sha or "", "bisect": its message}}."""
    from factorbench.history.run import narrow
    from factorbench.regress.gate import GateError

    narrowed = {}
    for change in found:
        try:
            outcome = narrow(change, cwd=repo_root(), console=console)
        except GateError as exc:
            raise UsageError(str(exc).strip().splitlines()[0]) from None
        if outcome is not None:
            say(f"{change.benchmark} ({change.previous_commit[:8]}..{change.commit[:8]}): {outcome.message}")
            narrowed[id(change)] = {"narrowed_to": outcome.commit, "bisect": outcome.message}
    return narrowed


def print_changes(found, series_count: int) -> None:
    from factorbench.history import render

    if not found:
        say(f"no change points in {series_count:,} series")
        return
    table = Table(title=f"{len(found)} change point(s) in {series_count:,} series", title_justify="left")
    for column in ("", "benchmark", "machine", "commits", "before → after", "change", "p-value"):
        table.add_column(column, justify="right" if column in ("change", "p-value") else "left")
    for change in found:
        table.add_row("[red]regression[/red]" if change.regression else "[green]improvement[/green]",
                      escape(render.series_name(change)), escape(change.machine),
                      escape(f"{change.previous_commit[:8]}..{change.commit[:8]} {change.subject}"),
                      f"{render.value(change.before, change.unit)} → {render.value(change.after, change.unit)}",
                      render.signed_pct(change.magnitude), f"{change.p_value:.1e}")
    console.print(table)


# ---------------------------------------------------------------- report

def add_report(commands) -> None:
    parser = commands.add_parser("report", help="one offline HTML page: the change points, then a trend per "
                                                "benchmark (median and CI per commit, a line per machine)")
    parser.add_argument("-o", "--output", metavar="PATH", default="reports/history.html",
                        help="the HTML file (default reports/history.html)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the change points as GitHub Markdown here "
                                                           "(for a pull request or $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--since", metavar="REF", help="only change points at commits after REF")
    parser.add_argument("--bench", metavar="REGEX", help="only benchmarks whose name matches")
    add_store_option(parser)


def report(args) -> int:
    from factorbench.history import render

    found, series = load_changes(args)
    output = render.write_html(found, series, args.output)
    say(f"report: {output}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(render.changes_markdown(found, len(series)), encoding="utf-8")
        say(f"markdown: {args.markdown}")
    return 0


SUBCOMMANDS = {
    "run": (history_run.add_parser, history_run.command),
    "import": (add_import, import_),
    "changes": (add_changes, changes),
    "report": (add_report, report),
}

