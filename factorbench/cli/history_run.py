"""`factorbench history run`: measure the commits of a range and store their points."""

from __future__ import annotations

from factorbench.cli.console import console, say
from factorbench.cli.parser import UsageError, count


def add_parser(history_sub) -> None:
    """``run`` beside the other ``history`` subcommands (cli/history.py dispatches to ``command``)."""
    run = history_sub.add_parser(
        "run", help="measure the commits of a range (A..B, or one revision's history) and store a point per "
                    "benchmark and commit")
    run.add_argument("range", metavar="A..B", help="commits after A up to B (e.g. v1.0..main), or one revision: "
                                                   "its whole history")
    run.add_argument("--steps", type=count, metavar="N", help="measure at most N commits spread evenly over the "
                                                              "range, its first and last included (as asv run --steps)")
    run.add_argument("--bench", metavar="REGEX", help="only benchmarks whose asv name matches, e.g. 'sma__'")
    run.add_argument("--mode", default="callgrind", metavar="MODE",
                     help="callgrind: instruction counts at small sizes (the default, and for now the only one)")
    run.add_argument("--machine", metavar="NAME", help="the machine the points are stored under (default: hostname)")
    run.add_argument("--store", metavar="URL", help="the history store: a SQLite file, sqlite:///PATH or "
                                                    "postgresql://USER@HOST/DB (default $FACTORBENCH_HISTORY_STORE, "
                                                    "else .factorbench/history.sqlite in the repository)")
    run.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                     help="count the commits on the workers of this Dask cluster (`factorbench cluster start`, or a "
                          "team's own); they must see the repository at the same path")


def command(args) -> int:
    from factorbench.history import run
    from factorbench.history.store import StoreError, open_store, shown
    from factorbench.regress.gate import GateError

    try:
        store = open_store(args.store)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    try:
        outcome = run.run(args.range, store, steps=args.steps, bench=args.bench, mode=args.mode,
                          machine=args.machine, scheduler=args.scheduler, console=console)
    except (GateError, StoreError) as exc:
        raise UsageError(str(exc).strip().splitlines()[0]) from None
    finally:
        store.close()
    if outcome.uncountable:
        say(f"wall-time only, not counted: {len(outcome.uncountable)} benchmark(s)")
    say(f"{len(outcome.commits)} commits, {outcome.builds} distinct builds ({outcome.built} built now), "
        f"{outcome.measured} measured in {outcome.build_s:.0f} s of building and {outcome.count_s:.0f} s of "
        f"counting; "
        f"{outcome.stored} new points of {outcome.points} stored in {shown(store.url)}")
    return 0 if outcome.measured else 1
