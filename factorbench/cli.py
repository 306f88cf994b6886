"""The `factorbench` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich import filesize
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.markup import escape
from rich.table import Table

from factorbench import analysis, bandwidth
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


def cpu_ids(text: str) -> list[int]:
    """CPU numbers as the kernel counts them: 0,1,3."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"expected CPU numbers like 0,1, got {text!r}")
    return sorted({int(part) for part in parts})


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


def schedulers(text: str) -> list[str]:
    from factorbench.dask_support import parse_scheduler

    try:
        values = [parse_scheduler(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected one or more of threads, local-cluster, tcp://HOST:PORT, got {text!r}")
    return values


def chunk_sizes(text: str) -> list[int | str]:
    from factorbench.dask_support import AUTO_CHUNK

    try:
        values = [AUTO_CHUNK if part == AUTO_CHUNK else count(part) for part in text.split(",") if part]
    except argparse.ArgumentTypeError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected {AUTO_CHUNK} or positive integers (elements per block), "
                                         f"got {text!r}")
    return values


def memory_limit(text: str) -> str:
    """What `dask worker --memory-limit` takes: auto, a size (4GiB) or a fraction of RAM (0.5)."""
    if text == "auto":
        return text
    from dask.utils import parse_bytes

    try:
        parse_bytes(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, a size such as 4GiB, or a fraction of memory such "
                                         f"as 0.5, got {text!r}") from None
    return text


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
        console.print(f"[yellow]unavailable[/yellow] ({escape(reason)}): {', '.join(names)}")
    for module, error in reg.load_errors.items():
        console.print(f"[red]could not load {module}[/red]:\n{error}")
    return 1 if reg.load_errors else 0


def fmt_scaling(row: analysis.Row) -> str:
    if row.vs_one_process is None:
        return ""
    return f"{row.vs_one_process:.2f}x ({row.efficiency:.0%})"


PROCESS_COLUMNS = {
    # Shown only in tables where some row has the figure (process-pool paradigms).
    "vs 1 process": lambda row: fmt_scaling(row),
    "sent/task": lambda row: (filesize.decimal(row.result["extra"]["bytes_sent_per_task"])
                              if "bytes_sent_per_task" in row.result.get("extra", {}) else ""),
    "pool start-up": lambda row: (fmt_time(row.result["extra"]["pool_startup_s"])
                                  if "pool_startup_s" in row.result.get("extra", {}) else ""),
}


def fmt_floor(result: dict, floors: dict) -> str:
    """'87% fresh 2T': the applicable floor's time / the median, and which floor it is."""
    floor = bandwidth.floor_for(result, floors)
    if floor is None or not result.get("median"):
        return ""
    kind = "fresh" if floor["kind"] == "fresh output" else "stream"
    return f"{floor['seconds'] / result['median']:.0%} {kind} {floor['threads']}T"


def print_floors(floors: dict) -> None:
    for floor in floors.get("floors") or []:
        console.print(f"floors on {floor['threads']} thread(s), {filesize.decimal(floors['bytes'])} array: "
                      f"streaming copy {fmt_time(floor['stream_s'])} ({floor['stream_GBps']:.1f} GB/s), "
                      f"fresh output {fmt_time(floor['fresh_s'])} ({floor['fresh_GBps']:.1f} GB/s)")


def print_tables(doc: dict) -> None:
    if not doc["results"]:
        return
    floors = doc["machine"].get("bandwidth") or {}
    for case in analysis.cases(doc):
        spec = get_kernel(case.kernel)
        table = Table(title=escape(case.title), caption=escape(spec.signature), title_justify="left")
        extra_columns = {name: cell for name, cell in PROCESS_COLUMNS.items()
                         if any(cell(row) for row in case.ranked)}
        for column in ("implementation", "paradigm", "median", "IQR", "elements/s", "vs loop",
                       "vs best library", "% of floor", "first call", *extra_columns, "note"):
            table.add_column(column, justify="left" if column in ("implementation", "paradigm", "note")
                             else "right")
        for row in case.ranked:
            result = row.result
            table.add_row(escape(analysis.label(result)), escape(result["paradigm"]), fmt_time(result["median"]),
                          fmt_time(result["iqr"]), f"{analysis.elements_per_s(row):.3g}",
                          fmt_ratio(row.speedup["loop"]), fmt_ratio(row.speedup["library"]),
                          fmt_floor(result, floors), fmt_time(result.get("cold_call_s")), *(cell(row) for cell in extra_columns.values()),
                          escape(result.get("reason") or ""), style="bold green" if row.best else None)
        for result in case.unranked:
            table.add_row(escape(analysis.label(result)), escape(result["paradigm"]), result["status"].upper(),
                          "", "", "", "", "", "", *([""] * len(extra_columns)), escape(result["reason"]),
                          style="dim" if result["status"] == "skipped" else "red")
        console.print(table)
    if doc["results"]:
            console.print("Speed-ups compare time per element, so a row measured at a smaller size "
                      "(see note) is compared fairly; every implementation allocates its own output. "
                      "% of floor: the applicable floor's time / median (fresh: output allocated and "
                      "filled, stream: copy into an existing array; on nT threads).")
            print_floors(floors)


def print_gpu(doc: dict) -> None:
    """Resident vs with-transfer times and bandwidth of the GPU rows (see factorbench.gpu)."""
    from factorbench.gpu import summary_rows

    rows = summary_rows(doc)
    if not rows:
        return
    gpus = ", ".join(sorted({row["gpu"] for row in rows}))
    table = Table(title=escape(f"GPU ({gpus}): with host-device copies vs data resident on the device"),
                  title_justify="left",
                  caption="resident: kernels only, CUDA events; GB/s: bytes moved / resident time; "
                          "peak: memory clock x bus width; copy: measured device-to-device copy")
    for column in ("case", "implementation", "with copies", "resident", "GB/s", "copy GB/s", "% of peak"):
        table.add_column(column, justify="left" if column in ("case", "implementation") else "right")
    for row in rows:
        case = " ".join([row["kernel"], *(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}"
                                          for k, v in row["params"].items())])
        table.add_row(escape(case), escape(row["implementation"]), fmt_time(row["with_transfers_s"]),
                      fmt_time(row["resident_s"]), f"{row['resident_GBps']:,.0f}",
                      f"{row['copy_GBps']:,.0f}" if row["copy_GBps"] else "-",
                      f"{row['pct_of_peak']:.0f}%" if row["pct_of_peak"] is not None else "-")
    console.print(table)


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
        settings={key: values for key, values in (("processes", args.processes), ("scheduler", args.scheduler),
                                                  ("chunk_size", args.chunk_size)) if values},
        cpus=args.cpus,
    )
    try:
        validate_options(options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.profile:
        from factorbench.profiling import unavailable_tools

        if len(unavailable_tools()) == 3:
            raise UsageError("--profile needs py-spy, memory_profiler or memray: pip install 'factorbench[profile]'")
        if args.profile_seconds <= 0:
            raise UsageError(f"--profile-seconds must be > 0, got {args.profile_seconds:g}")
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
    print_gpu(doc)
    print_workloads(doc)
    console.print(f"results: {args.json}")
    if args.profile:
        profile_run(doc, args)
    if args.report:
        from factorbench.report import write_report

        console.print(f"report: {write_report([args.json], args.report)}", soft_wrap=True)
    return 0


def profile_run(doc: dict, args) -> None:
    from factorbench.profiling import profile_results
    from factorbench.results import write

    out_dir = args.profile_dir or str(Path(args.json).parent / "profiles")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=errors, transient=True) as bar:
        task = bar.add_task("profiling", total=None)
        elapsed = profile_results(doc, out_dir, seconds=args.profile_seconds, save=lambda d: write(args.json, d),
                                  progress=lambda text, done, total: bar.update(task, description=text,
                                                                                completed=done, total=total))
    problems = {f"{tool}: {reason}" for r in doc["results"] for tool, reason in
                (r.get("extra") or {}).get("profile_errors", {}).items()}
    for problem in sorted(problems):
        errors.print(f"[yellow]profile[/yellow] {escape(problem)}", highlight=False)
    console.print(f"profiles: {out_dir} ({elapsed:.0f} s)", soft_wrap=True)


def cmd_report(args) -> int:
    from factorbench.report import write_report

    if len(args.results) > 2:
        raise UsageError("report takes one results file (a report) or two (a comparison: before after)")
    if args.factor <= 1:
        raise UsageError(f"--factor must be > 1, got {args.factor:g}")
    output = args.output or ("reports/index.html" if len(args.results) == 1 else "reports/compare.html")
    console.print(f"report: {write_report(args.results, output, factor=args.factor)}", soft_wrap=True)
    return 0


def cmd_profile(args) -> int:
    from factorbench.profiling import MEMORY_PEAK_KEY, profile, resolve

    try:
        impl, params = resolve(args.kernel, args.implementation, args.size)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.seconds <= 0:
        raise UsageError(f"--seconds must be > 0, got {args.seconds:g}")
    settings = dict(args.setting)
    unknown = sorted(set(settings) - set(impl.settings))
    if unknown:
        raise UsageError(f"{impl.kernel}/{impl.name} has no setting {', '.join(unknown)}; "
                         f"it has: {', '.join(impl.settings) or 'none'}")
    outcome = profile(impl.kernel, impl.name, params, args.output, settings=settings, seconds=args.seconds,
                      seed=args.seed)
    console.print(f"{impl.kernel}/{impl.name} at " + ", ".join(f"{k}={v}" for k, v in {**params, **settings}.items()))
    for name, path in outcome["artifacts"].items():
        console.print(f"  {name}: {path}", highlight=False, soft_wrap=True)
    if outcome[MEMORY_PEAK_KEY] is not None:
        console.print(f"  peak RSS increase: {outcome[MEMORY_PEAK_KEY]:.1f} MiB")
    for note in outcome["notes"]:
        console.print(f"  note: {escape(note)}", highlight=False)
    for tool, reason in outcome["errors"].items():
        errors.print(f"  [yellow]{tool}[/yellow]: {escape(reason)}", highlight=False)
    return 0 if outcome["artifacts"] or outcome[MEMORY_PEAK_KEY] is not None else 1


def cmd_gate(args) -> int:
    from factorbench.regression import GateError, gate

    try:
        return gate(args.base, args.head, mode=args.mode, bench=args.bench, factor=args.factor,
                    threshold_pct=args.threshold, json_path=args.json, console=console)
    except GateError as exc:
        raise UsageError(str(exc)) from None


def cmd_data_ticks(args) -> int:
    from factorbench.registry import missing_modules
    from factorbench.ticks import data

    if reason := missing_modules(["pyarrow"]):
        raise UsageError(f"data ticks needs pyarrow ({reason}): pip install 'factorbench[ticks]'")
    try:
        data.validate(args.rows, args.symbols, args.files)
    except ValueError as exc:
        raise UsageError(f"data ticks: {exc}") from None
    try:
        paths = data.generate(args.out, rows=args.rows, symbols=args.symbols, files=args.files, seed=args.seed,
                              force=args.force)
    except (FileExistsError, OSError) as exc:
        raise UsageError(f"data ticks: {exc}") from None
    console.print(f"wrote {args.rows:,} ticks over up to {args.symbols:,} symbols in {len(paths)} files: "
                  f"{escape(str(paths[0].parent))}/*.parquet")
    return 0


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
    run.add_argument("--processes", type=counts, default=[], metavar="N[,N...]",
                     help="worker process counts for the multiprocessing paradigm, one row each "
                          "(default 1,2); the table shows speed-up and efficiency vs 1 process")
    run.add_argument("--cpus", type=cpu_ids, default=[], metavar="CPU[,CPU...]",
                     help="pin the runner and the worker processes it starts to these CPUs")
    run.add_argument("--scheduler", type=schedulers, metavar="S[,S...]",
                     help="Dask schedulers to run the dask paradigm on: threads, local-cluster, tcp://HOST:PORT "
                          "(default threads,local-cluster)")
    run.add_argument("--chunk-size", type=chunk_sizes, metavar="N[,N...]",
                     help="Dask block size in elements, or auto (two blocks per worker thread; default)")
    run.add_argument("--seed", type=int, default=0, help="input generator seed")
    run.add_argument("--json", default=DEFAULT_JSON, metavar="PATH", help=f"results file (default {DEFAULT_JSON})")
    run.add_argument("--report", metavar="PATH", help="also write the HTML report to PATH")
    run.add_argument("--profile", action="store_true",
                     help="after timing, profile every passing implementation (CPU and memory flame graphs, "
                          "peak memory) for the report")
    run.add_argument("--profile-dir", metavar="DIR", help="where profiles go (default: profiles/ beside --json)")
    run.add_argument("--profile-seconds", type=number, default=2.0, metavar="S",
                     help="seconds each implementation runs under py-spy (default 2)")

    report = sub.add_parser("report", help="write the HTML report of a results file, or compare two")
    report.add_argument("results", nargs="+", metavar="RESULTS.json", help="one results file, or two: before after")
    report.add_argument("-o", "--output", metavar="PATH",
                        help="HTML file (default reports/index.html, or reports/compare.html for two)")
    report.add_argument("--factor", type=number, default=1.1,
                        help="comparison: ratio beyond which a change counts (default 1.1, as asv)")

    profile = sub.add_parser("profile", help="CPU and memory profiles of one implementation")
    profile.add_argument("kernel")
    profile.add_argument("implementation", help="implementation or paradigm name, e.g. bottleneck")
    profile.add_argument("--size", type=count, help="the kernel's size parameter (default: its --quick size)")
    profile.add_argument("-o", "--output", default="reports/profiles", metavar="DIR",
                         help="output folder (default reports/profiles)")
    profile.add_argument("--setting", action="append", type=key_value, default=[], metavar="KEY=VALUE",
                         help="an implementation setting, e.g. processes=2 (default: the implementation's own)")
    profile.add_argument("--seconds", type=number, default=2.0, help="seconds under py-spy (default 2)")
    profile.add_argument("--seed", type=int, default=0, help="input generator seed")

    data = sub.add_parser("data", help="generate input data sets")
    data_sub = data.add_subparsers(dest="dataset", required=True, parser_class=Parser)
    ticks = data_sub.add_parser("ticks", help="synthetic tick data as Parquet files DIR/ticks/*.parquet")
    ticks.add_argument("--rows", type=count, default=10_000_000, help="ticks (default 10M)")
    ticks.add_argument("--symbols", type=count, default=500, help="symbols (default 500)")
    ticks.add_argument("--files", type=count, default=8, help="Parquet files, each a time range (default 8)")
    ticks.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    ticks.add_argument("--out", required=True, metavar="DIR", help="output directory")
    ticks.add_argument("--force", action="store_true", help="replace Parquet files already in DIR/ticks")

    cluster = sub.add_parser("cluster", help="start, stop or inspect a Dask scheduler and workers on 127.0.0.1")
    actions = cluster.add_subparsers(dest="action", required=True, parser_class=Parser)
    start = actions.add_parser("start", help="launch `dask scheduler` and N `dask worker` processes, detached")
    start.add_argument("--workers", type=count, default=2, metavar="N", help="worker processes (default 2)")
    start.add_argument("--nthreads", type=count, default=1, metavar="T", help="threads per worker (default 1)")
    start.add_argument("--memory-limit", type=memory_limit, default="auto", metavar="M",
                       help="per worker: auto (default), a size such as 4GiB, or a fraction of memory")
    start.add_argument("--port", type=count, default=8786, metavar="P", help="scheduler port (default 8786)")
    start.add_argument("--timeout", type=number, default=60.0, metavar="S",
                       help="seconds to wait for every worker to connect (default 60)")
    for action in (start, actions.add_parser("stop", help="stop the processes `cluster start` launched"),
                   actions.add_parser("status", help="show the cluster `cluster start` launched")):
        action.add_argument("--state", metavar="PATH",
                            help="state file with the address and PIDs (default ~/.cache/factorbench/cluster.json)")

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


def cmd_data(args) -> int:
    return {"ticks": cmd_data_ticks}[args.dataset](args)


def say(text: str) -> None:
    """A plain line: no highlighting, and paths are never wrapped mid-way."""
    console.print(text, highlight=False, soft_wrap=True)


def cmd_cluster(args) -> int:
    from factorbench.registry import missing_modules

    if reason := missing_modules(["distributed"]):
        raise UsageError(f"cluster {args.action}: {reason} (pip install 'factorbench[dask]')")
    from factorbench import cluster

    try:
        if args.action == "start":
            info = cluster.start(workers=args.workers, nthreads=args.nthreads, memory_limit=args.memory_limit,
                                 port=args.port, state=args.state, timeout=args.timeout)
        elif args.action == "stop":
            info = cluster.stop(state=args.state)
        else:
            info = cluster.status(state=args.state)
    except cluster.ClusterError as exc:
        raise UsageError(f"cluster {args.action}: {exc}") from None
    if info is None:
        say(f"no factorbench cluster is running (no state file {args.state or cluster.default_state_path()})")
        return 1
    if args.action == "start":
        pids = " ".join(f"{entry['role']}={entry['pid']}" for entry in info["processes"])
        state = f" --state {args.state}" if args.state else ""
        say(f"Dask cluster up at {info['address']} ({info['workers']} workers x {info['nthreads']} threads, "
            f"memory limit {info['memory_limit']})")
        say(f"dashboard: {info['dashboard']}")
        say(f"pids: {pids}")
        say(f"use it: factorbench run --paradigm dask --scheduler {info['address']}")
        say(f"stop it: factorbench cluster stop{state}")
    elif args.action == "stop":
        say(f"stopped the Dask cluster at {info['address']}: terminated {info['terminated'] or '-'}, "
            f"killed {info['killed'] or '-'}, already gone {info['gone'] or '-'}")
    else:
        connected = (f"{info['connected_workers']} workers ({info['connected_threads']} threads) connected"
                     if "connected_workers" in info else f"scheduler not reachable: {info['connect_error']}")
        say(f"Dask cluster at {info['address']}, started {info['started']}: {connected}")
        say(f"dashboard: {info['dashboard']}")
        for entry in info["processes"]:
            say(f"  {entry['role']}: pid {entry['pid']} {'running' if entry['alive'] else 'gone'}")
        return 0 if "connected_workers" in info else 1
    return 0


COMMANDS = {"list": cmd_list, "run": cmd_run, "report": cmd_report, "profile": cmd_profile, "data": cmd_data,
            "cluster": cmd_cluster, "gate": cmd_gate}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args)
    except (UsageError, ResultsError) as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
