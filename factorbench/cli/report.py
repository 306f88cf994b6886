"""`factorbench report`: the HTML or Markdown report of a results file, or a comparison of two."""

from __future__ import annotations

import sys
from pathlib import Path

from factorbench.cli.console import say
from factorbench.cli.parser import UsageError, number

FORMATS = ("html", "markdown")


def add_parser(sub) -> None:
    report = sub.add_parser("report", help="write the report of a results file (HTML or Markdown), or compare two")
    report.add_argument("results", nargs="+", metavar="RESULTS.json", help="one results file, or two: before after")
    report.add_argument("--format", choices=FORMATS, default="html",
                        help="html: one self-contained file (default); markdown: GitHub-flavoured, short enough "
                             "for a pull-request comment")
    report.add_argument("-o", "--output", metavar="PATH",
                        help="output file (html default reports/index.html, or reports/compare.html for two; "
                             "markdown default: standard output)")
    report.add_argument("--factor", type=number, default=1.1,
                        help="comparison: ratio beyond which a change counts (default 1.1, as asv)")
    report.set_defaults(handler=command)


def command(args) -> int:
    if len(args.results) > 2:
        raise UsageError("report takes one results file (a report) or two (a comparison: before after)")
    if args.factor <= 1:
        raise UsageError(f"--factor must be > 1, got {args.factor:g}")
    if args.format == "markdown":
        return markdown_report(args)
    from factorbench.report.html import write_report

    output = args.output or ("reports/index.html" if len(args.results) == 1 else "reports/compare.html")
    say(f"report: {write_report(args.results, output, factor=args.factor)}")
    return 0


def markdown_report(args) -> int:
    from factorbench.report import markdown
    from factorbench.results import schema

    docs = [schema.load(path) for path in args.results]
    if len(docs) == 1:
        text = markdown.summary(docs[0], source=Path(args.results[0]).name)
    else:
        text = markdown.comparison(docs[0], docs[1], factor=args.factor,
                                   names=(Path(args.results[0]).name, Path(args.results[1]).name))
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text, encoding="utf-8")
        say(f"report: {Path(args.output).resolve()}")
    else:
        sys.stdout.write(text)
    return 0
