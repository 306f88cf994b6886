"""`factorbench check`: the correctness matrix, implementations x input classes, per kernel."""

from __future__ import annotations

import json
from pathlib import Path

from rich import box
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from factorbench.cli.console import console, errors
from factorbench.cli.parser import UsageError


def add_parser(sub) -> None:
    check = sub.add_parser("check", help="run every implementation on every input class of its kernel "
                                         "(infinities, dtypes, views, empty input...) and print the matrix")
    check.add_argument("--kernel", action="append", default=[], metavar="K", help="kernel (repeatable)")
    check.add_argument("--paradigm", action="append", default=[], metavar="P", help="paradigm (repeatable)")
    check.add_argument("--json", metavar="PATH", help="also write the matrix as JSON to PATH")
    check.add_argument("--seed", type=int, default=0, help="input generator seed")
    check.set_defaults(handler=command)


def command(args) -> int:
    from factorbench.kernels import kernels
    from factorbench.measure.matrix import failing, matrix_settings, profile
    from factorbench.registry import implementations, paradigms

    try:
        chosen_kernels = args.kernel or kernels()
        for name in chosen_kernels:
            implementations(kernel=name)
        for name in args.paradigm:
            implementations(paradigm=name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    known = set(paradigms())
    todo = [impl for kernel in chosen_kernels for impl in implementations(kernel)
            if not args.paradigm or impl.paradigm in args.paradigm]
    if not todo:
        raise UsageError(f"no implementation of {', '.join(chosen_kernels)} in paradigm(s) "
                         f"{', '.join(args.paradigm)} (paradigms: {', '.join(sorted(known))})")
    profiles = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=errors, transient=True) as bar:
        task = bar.add_task("checking", total=len(todo))
        for impl in todo:
            bar.update(task, description=f"{impl.kernel} {impl.name}")
            profiles.append(profile(impl, args.seed, matrix_settings(impl.settings)))
            bar.advance(task)
    for kernel in chosen_kernels:
        print_matrix(kernel, [p.to_json() for p in profiles if p.kernel == kernel])
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"seed": args.seed, "profiles": [p.to_json() for p in profiles]}, indent=1))
        console.print(f"matrix: {path}", soft_wrap=True, highlight=False)
    bad = failing(profiles)
    if bad:
        console.print(f"[red]{len(bad)} of our implementations fail an input class[/red]: "
                      + ", ".join(f"{p.kernel}/{p.implementation}" for p in bad), highlight=False)
        return 1
    return 0


def print_matrix(kernel: str, profiles: list[dict]) -> None:
    """One table: implementations as rows, the input classes' short names as columns; each
    failing cell's reason listed under it, and the classes' semantics as a legend."""
    from factorbench.kernels import kernel as get_kernel
    from factorbench.measure.matrix import CORE, class_names, short_names

    if not profiles:
        return
    spec = get_kernel(kernel)
    names, shorts = class_names(kernel), short_names(kernel)
    table = Table(title=escape(f"{kernel}: correctness by input class (✓ pass, ✗ wrong, ! raises)"),
                  title_justify="left", caption=escape(spec.signature), caption_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 0), collapse_padding=True)
    table.add_column("implementation", no_wrap=True, overflow="ellipsis", max_width=26)
    for name in names:
        table.add_column(escape(shorts[name]), justify="center", no_wrap=True)
    notes = []
    for p in profiles:
        label = p["implementation"] + ("" if p["ours"] else " (library)")
        if p["reason"]:
            table.add_row(escape(label), *(["[dim]-[/dim]"] * len(names)), style="dim")
            notes.append(f"[dim]{escape(label)}: unavailable: {escape(p['reason'])}[/dim]")
            continue
        cells = {cell["input_class"]: cell for cell in p["cells"]}
        marks = []
        for name in names:
            cell = cells.get(name)
            if cell is None:
                marks.append("")
            elif cell["outcome"] == "pass":
                marks.append("[green]✓[/green]")
            else:
                colour = "red" if p["ours"] else "yellow"
                marks.append(f"[{colour}]{'!' if cell['outcome'] == 'raises' else '✗'}[/{colour}]")
                where = f" ({cell['case']})" if cell["case"] else ""
                notes.append(f"[{colour}]{escape(label)} × {escape(name)}{escape(where)}[/{colour}]: "
                             f"{escape(cell['reason'])}")
        table.add_row(escape(label), *marks)
    console.print(table)
    legend = [f"{CORE}: the check inputs (decide whether a row is timed)"]
    legend += [f"{cls.short}: {cls.name}: {cls.semantics}" for cls in spec.classes]
    for line in legend:
        console.print(f"  [dim]{escape(line)}[/dim]", highlight=False)
    for note in notes:
        console.print(f"  {note}", highlight=False)
