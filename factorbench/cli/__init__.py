"""The `factorbench` command line: one module per command, each adding its own parser."""

from __future__ import annotations

import sys

from factorbench.cli import bisect, check, cluster, data, env, gate, listing, profile, report, run
from factorbench.cli.console import errors
from factorbench.cli.parser import Parser, UsageError
from factorbench.results.schema import ResultsError

COMMANDS = (listing, check, run, report, profile, data, cluster, env, gate, bisect)


def build_parser() -> Parser:
    parser = Parser(prog="factorbench", description="Benchmark factor kernels across optimisation paradigms.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except (UsageError, ResultsError) as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
