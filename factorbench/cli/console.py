"""Where the CLI writes: tables and results to stdout, problems and progress to stderr."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

console = Console()
errors = Console(stderr=True)


def say(text: str) -> None:
    """A plain line: no highlighting, and paths are never wrapped mid-way."""
    console.print(text, highlight=False, soft_wrap=True)


def tell(text: str) -> None:
    """Prose, escaped and wrapped at the terminal's width like the tables."""
    console.print(escape(text), highlight=False)
