"""The `factorbench` command line: one module per command, each adding its own parser."""

from __future__ import annotations

import sys

from rich.markup import escape

from factorbench.cli import bisect, check, cluster, data, env, gate, history, init, listing, profile, report, run
from factorbench.cli.console import errors
from factorbench.cli.parser import Parser, UsageError
from factorbench.discovery import PluginError, missing_plugin
from factorbench.registry import registry, use_plugins
from factorbench.results.schema import ResultsError

COMMANDS = (listing, check, run, report, profile, data, cluster, env, gate, bisect, init, history)


def build_parser() -> Parser:
    parser = Parser(prog="factorbench", description="Benchmark factor kernels across optimisation paradigms.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def load_plugins(specs: list[str]) -> None:
    """Load the plugins before a command reads the registry: a clash, or a --plugin naming a
    file or module that does not exist, is a usage error; a plugin that fails to import is
    one line on stderr and the rest runs."""
    for spec in specs:
        missing = missing_plugin(spec)
        if missing:
            raise UsageError(f"--plugin {spec}: {missing}")
    if specs:
        use_plugins(specs)
    try:
        plugin_errors = registry().plugin_errors
    except PluginError as exc:
        raise UsageError(str(exc)) from None
    for plugin, error in plugin_errors.items():
        errors.print(f"[yellow]skipped {escape(plugin)}[/yellow]: {escape(error)}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if hasattr(args, "plugin"):
            load_plugins(args.plugin)
        return args.handler(args)
    except (UsageError, ResultsError) as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
