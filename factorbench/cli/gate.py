"""`factorbench gate`: benchmark two commits and fail when the later one regressed."""

from __future__ import annotations

import os
from pathlib import Path

from factorbench.cli.console import console, say
from factorbench.cli.parser import UsageError, number
from factorbench.regress.gate import DEFAULT_FACTOR, DEFAULT_THRESHOLD_PCT, MODES


def add_parser(sub) -> None:
    gate = sub.add_parser("gate", help="benchmark two commits and exit 1 if HEAD regressed (CI)")
    gate.add_argument("base", metavar="BASE", help="commit to compare against, e.g. main or HEAD~1")
    gate.add_argument("head", metavar="HEAD", help="commit under test, e.g. HEAD")
    add_gate_options(gate)
    gate.add_argument("--json", metavar="PATH", help="also write every compared benchmark and the verdict here")
    gate.add_argument("--markdown", metavar="PATH", help="also write the verdict as GitHub Markdown here; it is "
                                                         "appended to $GITHUB_STEP_SUMMARY whenever that is set")
    gate.add_argument("--junit", metavar="PATH", help="also write JUnit XML: one test case per benchmark, "
                                                      "regressions as failures")
    gate.set_defaults(handler=command)


def add_gate_options(parser) -> None:
    """The options `gate` and `bisect` share: how benchmarks are measured and judged."""
    parser.add_argument("--mode", choices=MODES, default="wall",
                        help="wall: asv continuous, timed (default); callgrind: instruction counts at small sizes")
    parser.add_argument("--bench", metavar="REGEX", help="only benchmarks whose asv name matches, "
                                                         "e.g. 'sma__' or 'kernels.ema__vectorized'")
    parser.add_argument("--factor", type=number, default=DEFAULT_FACTOR, metavar="F",
                        help=f"wall mode: slower by more than this ratio, and significant, fails "
                             f"(default {DEFAULT_FACTOR})")
    parser.add_argument("--threshold", type=number, default=DEFAULT_THRESHOLD_PCT, metavar="PCT",
                        help=f"callgrind mode: more instructions by more than PCT%% fails "
                             f"(default {DEFAULT_THRESHOLD_PCT:g})")


def append_step_summary(text: str) -> None:
    """GitHub Actions shows what a step appends to $GITHUB_STEP_SUMMARY on the run's page."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(text + "\n")


def command(args) -> int:
    from factorbench.regress.gate import GateError, measure, report

    try:
        verdict = measure(args.base, args.head, mode=args.mode, bench=args.bench, factor=args.factor,
                          threshold_pct=args.threshold, console=console)
    except GateError as exc:
        raise UsageError(str(exc)) from None
    code = report(verdict, console, args.json)
    if args.markdown or os.environ.get("GITHUB_STEP_SUMMARY"):
        from factorbench.report import markdown

        text = markdown.gate(verdict.to_dict())
        if args.markdown:
            Path(args.markdown).write_text(text, encoding="utf-8")
            say(f"markdown: {args.markdown}")
        append_step_summary(text)
    if args.junit:
        from factorbench.report import junit

        say(f"junit: {junit.write(verdict.to_dict(), args.junit)}")
    return code
