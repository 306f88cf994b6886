"""`factorbench list`: the paradigms x kernels grid and why anything is unavailable."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from factorbench.cli.console import console
from factorbench.cli.parser import add_plugin_option
from factorbench.kernels import kernels as kernel_names
from factorbench.registry import implementations, paradigms, registry


def add_parser(sub) -> None:
    listing = sub.add_parser("list", help="show the kernels x paradigms grid and what is unavailable")
    add_plugin_option(listing)
    listing.set_defaults(handler=command)


def command(args) -> int:
    reg = registry()
    table = Table(title="paradigms x kernels (✓ available, ✗ unavailable)")
    table.add_column("paradigm", style="bold")
    for kernel in kernel_names():
        table.add_column(kernel, overflow="fold")
    unavailable: dict[str, list[str]] = {}
    for paradigm in paradigms():
        cells = []
        for kernel in kernel_names():
            names = []
            for impl in implementations(kernel, paradigm):
                names.append(("✓ " if impl.available else "✗ ") + impl.name)
                if not impl.available:
                    unavailable.setdefault(impl.reason or "", []).append(f"{kernel}/{impl.name}")
            cells.append("\n".join(names) or "[dim]—[/dim]")
        table.add_row(paradigm, *cells)
    console.print(table)
    for reason, names in unavailable.items():
        console.print(f"[yellow]unavailable[/yellow] ({escape(reason)}): {', '.join(names)}")
    for module, error in reg.load_errors.items():
        console.print(f"[red]could not load {module}[/red]:\n{error}")
    return 1 if reg.load_errors else 0
