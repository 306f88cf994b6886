"""`factorbench report`: the HTML report of a results file, or a comparison of two."""

from __future__ import annotations

from factorbench.cli.console import console
from factorbench.cli.parser import UsageError, add_plugin_option, number


def add_parser(sub) -> None:
    report = sub.add_parser("report", help="write the HTML report of a results file, or compare two")
    report.add_argument("results", nargs="+", metavar="RESULTS.json", help="one results file, or two: before after")
    report.add_argument("-o", "--output", metavar="PATH",
                        help="HTML file (default reports/index.html, or reports/compare.html for two)")
    report.add_argument("--factor", type=number, default=1.1,
                        help="comparison: ratio beyond which a change counts (default 1.1, as asv)")
    add_plugin_option(report)
    report.set_defaults(handler=command)


def command(args) -> int:
    from factorbench.report.html import write_report

    if len(args.results) > 2:
        raise UsageError("report takes one results file (a report) or two (a comparison: before after)")
    if args.factor <= 1:
        raise UsageError(f"--factor must be > 1, got {args.factor:g}")
    output = args.output or ("reports/index.html" if len(args.results) == 1 else "reports/compare.html")
    console.print(f"report: {write_report(args.results, output, factor=args.factor)}", soft_wrap=True)
    return 0
