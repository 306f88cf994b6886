"""`factorbench history`: the performance history of a repository, commit by commit."""

from __future__ import annotations

from factorbench.cli import history_run
from factorbench.cli.parser import Parser


def add_parser(sub) -> None:
    history = sub.add_parser("history", help="the performance history of this repository's commits")
    history_sub = history.add_subparsers(dest="history_command", required=True, parser_class=Parser)
    history_run.add_parser(history_sub)
