"""`factorbench bisect`: the first commit between GOOD and BAD at which a benchmark regressed."""

from __future__ import annotations

from pathlib import Path

from factorbench.cli.console import console, say
from factorbench.cli.gate import add_gate_options, append_step_summary
from factorbench.cli.parser import UsageError, count, number
from factorbench.regress.bisect import DEFAULT_MAX_PROBES, DEFAULT_MAX_SECONDS


def add_parser(sub) -> None:
    bisect = sub.add_parser("bisect", help="find the first commit between GOOD and BAD at which a benchmark regressed")
    bisect.add_argument("good", metavar="GOOD", help="a commit without the regression, e.g. main")
    bisect.add_argument("bad", metavar="BAD", help="a commit with it, e.g. HEAD")
    add_gate_options(bisect)
    bisect.set_defaults(mode="callgrind")
    bisect.add_argument("--max-probes", type=count, default=DEFAULT_MAX_PROBES, metavar="N",
                        help=f"commits to build and measure at most (default {DEFAULT_MAX_PROBES})")
    bisect.add_argument("--max-time", type=number, default=DEFAULT_MAX_SECONDS, metavar="S",
                        help=f"start no probe after S seconds (default {DEFAULT_MAX_SECONDS:g})")
    bisect.add_argument("--markdown", metavar="PATH", help="also write the outcome as GitHub Markdown here; it is "
                                                           "appended to $GITHUB_STEP_SUMMARY whenever that is set")
    bisect.set_defaults(handler=command)


def command(args) -> int:
    from factorbench.regress.bisect import bisect
    from factorbench.regress.gate import GateError

    if not args.bench:
        raise UsageError("bisect needs --bench REGEX: the benchmark(s) that regressed, e.g. 'sma__vectorized_cumsum'")
    try:
        outcome = bisect(args.good, args.bad, bench=args.bench, mode=args.mode, factor=args.factor,
                         threshold_pct=args.threshold, max_probes=args.max_probes, max_seconds=args.max_time,
                         console=console)
    except GateError as exc:
        raise UsageError(str(exc)) from None
    say(outcome.message)
    from factorbench.report import markdown

    text = markdown.bisect(outcome.to_dict())
    if args.markdown:
        Path(args.markdown).write_text(text, encoding="utf-8")
        say(f"markdown: {args.markdown}")
    append_step_summary(text)
    return 0
