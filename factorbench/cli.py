"""The `factorbench` command line."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

from factorbench import analysis
from factorbench.kernels import kernel as get_kernel
from factorbench.kernels import kernels as kernel_names
from factorbench.registry import implementations, paradigms, registry
from factorbench.results import ResultsError

DEFAULT_JSON = "reports/results.json"
console = Console()
errors = Console(stderr=True)


class UsageError(Exception):
    """A user mistake: reported in one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def count(text: str) -> int:
    """A positive integer, also written as 1e7 or 10_000_000."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(value)


def counts(text: str) -> list[int]:
    return [count(part) for part in text.split(",") if part]


def key_value(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    for convert in (count, number):
        try:
            return key, convert(value)
        except argparse.ArgumentTypeError:
            pass
    return key, value


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:,.3g}x"


def cmd_list(args) -> int:
    reg = registry()
    table = Table(title="paradigms x kernels (✓ available, ✗ unavailable)")
    table.add_column("paradigm", style="bold")
    for kernel in kernel_names():
        table.add_column(kernel, overflow="fold")
    unavailable = {}
    for paradigm in paradigms():
        cells = []
        for kernel in kernel_names():
            names = []
            for impl in implementations(kernel, paradigm):
                names.append(("✓ " if impl.available else "✗ ") + impl.name)
                if not impl.available:
                    unavailable.setdefault(impl.reason, []).append(f"{kernel}/{impl.name}")
            cells.append("\n".join(names) or "[dim]—[/dim]")
        table.add_row(paradigm, *cells)
    console.print(table)
    for reason, names in unavailable.items():
        console.print(f"[yellow]unavailable[/yellow] ({reason}): {', '.join(names)}")
    for module, error in reg.load_errors.items():
        console.print(f"[red]could not load {module}[/red]:\n{error}")
    return 1 if reg.load_errors else 0


def print_tables(doc: dict) -> None:
    for case in analysis.cases(doc):
        spec = get_kernel(case.kernel)
        table = Table(title=escape(case.title), caption=escape(spec.signature), title_justify="left")
        for column in ("implementation", "paradigm", "median", "IQR", "elements/s", "vs loop",
                       "vs best library", "first call", "note"):
            table.add_column(column, justify="left" if column in ("implementation", "paradigm", "note")
                             else "right")
        for row in case.ranked:
            result = row.result
            table.add_row(escape(analysis.label(result)), escape(result["paradigm"]), fmt_time(result["median"]),
                          fmt_time(result["iqr"]), f"{analysis.elements_per_s(row):.3g}",
                          fmt_ratio(row.speedup["loop"]), fmt_ratio(row.speedup["library"]),
                          fmt_time(result.get("cold_call_s")), escape(result.get("reason") or ""),
                          style="bold green" if row.best else None)
        for result in case.unranked:
            table.add_row(escape(analysis.label(result)), escape(result["paradigm"]), result["status"].upper(),
                          "", "", "", "", "", escape(result["reason"]), style="dim" if result["status"] == "skipped"
                          else "red")
        console.print(table)
    console.print("Speed-ups compare time per element, so a row measured at a smaller size "
                  "(see note) is compared fairly; every implementation allocates its own output.")


def fmt_value(value, unit: str = "") -> str:
    if isinstance(value, float):
        return fmt_time(value) if unit == "s" else f"{value:,.4g}{(' ' + unit) if unit else ''}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}{(' ' + unit) if unit else ''}"
    return str(value)


def print_workloads(doc: dict) -> None:
    for section in doc.get("workloads", []):
        title = escape(f"workload {section['name']}: {section['summary']}")
        if section["status"] != "ok":
            console.print(f"[bold]{title}[/bold]: [red]{section['status'].upper()}[/red] {escape(section['reason'])}")
            continue
        columns = list(dict.fromkeys(key for row in section["rows"] for key in row))
        table = Table(title=title, title_justify="left",
                      caption=escape(" ".join(f"{k}={v}" for k, v in section["params"].items())))
        for column in columns:
            unit = section["units"].get(column, "")
            table.add_column(escape(f"{column} [{unit}]" if unit and unit != "s" else column),
                             justify="left" if column == "label" else "right")
        for row in section["rows"]:
            table.add_row(*(escape(fmt_value(row.get(c, ""), section["units"].get(c, ""))) for c in columns))
        console.print(table)
        for note in section.get("notes", []):
            console.print(f"  {escape(note)}")


def cmd_run(args) -> int:
    from factorbench.runner import RunOptions, run, validate_options

    params = dict(args.param)
    if args.window is not None:
        params["window"] = args.window
    if args.alpha is not None:
        params["alpha"] = args.alpha
    options = RunOptions(
        kernels=args.kernel, paradigms=args.paradigm, implementations=args.implementation,
        sizes=[s for group in args.size for s in group], params=params, quick=args.quick,
        repeat=args.repeat if args.repeat is not None else (3 if args.quick else 7),
        min_sample_s=0.01 if args.quick else 0.05,
        time_budget_s=args.time_budget if args.time_budget is not None else (2.0 if args.quick else 10.0),
        workloads=args.workload, seed=args.seed, threads=args.threads,
    )
    try:
        validate_options(options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=errors, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def progress(description, done, total):
            bar.update(task, description=description, completed=done, total=total)

        try:
            doc = run(options, json_path=args.json, progress=progress)
        except KeyboardInterrupt:
            errors.print(f"interrupted: results measured so far are in {args.json}")
            return 130
    print_tables(doc)
    print_workloads(doc)
    console.print(f"results: {args.json}")
    return 0


def cmd_gate(args) -> int:
    from factorbench.regression import GateError, gate

    try:
        return gate(args.base, args.head, mode=args.mode, bench=args.bench, factor=args.factor,
                    threshold_pct=args.threshold, json_path=args.json, console=console)
    except GateError as exc:
        raise UsageError(str(exc)) from None


def build_parser() -> Parser:
    parser = Parser(prog="factorbench", description="Benchmark factor kernels across optimisation paradigms.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    sub.add_parser("list", help="show the kernels x paradigms grid and what is unavailable")

    run = sub.add_parser("run", help="gate, time and tabulate implementations")
    run.add_argument("--kernel", action="append", default=[], metavar="K", help="kernel (repeatable)")
    run.add_argument("--paradigm", action="append", default=[], metavar="P", help="paradigm (repeatable)")
    run.add_argument("--implementation", action="append", default=[], metavar="NAME",
                     help="implementation name, e.g. bottleneck (repeatable)")
    run.add_argument("--size", action="append", type=counts, default=[], metavar="N[,N...]",
                     help="value(s) of each kernel's size parameter; several make a scaling series")
    run.add_argument("--window", type=count, help="SMA window (default 20)")
    run.add_argument("--alpha", type=number, help="EMA smoothing factor, 0 < alpha <= 1 (default 0.1)")
    run.add_argument("--param", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                     help="any other kernel parameter, e.g. cols=1000")
    run.add_argument("--workload", action="append", metavar="W",
                     help="workload to run (repeatable); by default all run unless a kernel, "
                          "paradigm or implementation filter is given")
    run.add_argument("--quick", action="store_true", help="small sizes and short budgets (seconds, not minutes)")
    run.add_argument("--repeat", type=count, help="samples per measurement (default 7, quick 3)")
    run.add_argument("--time-budget", type=number, metavar="S",
                     help="seconds per implementation and case (default 10, quick 2); slower ones "
                          "are measured at a smaller size, labelled")
    run.add_argument("--threads", type=counts, default=[], metavar="N[,N...]",
                     help="threads for BLAS/OpenMP, numexpr and Numba (pools get the largest; "
                          "implementations with a threads setting are measured at each)")
    run.add_argument("--seed", type=int, default=0, help="input generator seed")
    run.add_argument("--json", default=DEFAULT_JSON, metavar="PATH", help=f"results file (default {DEFAULT_JSON})")

    from factorbench.regression import DEFAULT_FACTOR, DEFAULT_THRESHOLD_PCT, MODES

    gate = sub.add_parser("gate", help="benchmark two commits and exit 1 if HEAD regressed (CI)")
    gate.add_argument("base", metavar="BASE", help="commit to compare against, e.g. main or HEAD~1")
    gate.add_argument("head", metavar="HEAD", help="commit under test, e.g. HEAD")
    gate.add_argument("--mode", choices=MODES, default="wall",
                      help="wall: asv continuous, timed (default); callgrind: instruction counts at small sizes")
    gate.add_argument("--bench", metavar="REGEX", help="only benchmarks whose asv name matches, "
                                                       "e.g. 'sma__' or 'kernels.ema__vectorized'")
    gate.add_argument("--factor", type=number, default=DEFAULT_FACTOR, metavar="F",
                      help=f"wall mode: slower by more than this ratio, and significant, fails (default {DEFAULT_FACTOR})")
    gate.add_argument("--threshold", type=number, default=DEFAULT_THRESHOLD_PCT, metavar="PCT",
                      help=f"callgrind mode: more instructions by more than PCT%% fails (default {DEFAULT_THRESHOLD_PCT:g})")
    gate.add_argument("--json", metavar="PATH", help="also write every compared benchmark and the verdict here")
    return parser


COMMANDS = {"list": cmd_list, "run": cmd_run, "gate": cmd_gate}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, ResultsError) as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
