"""`factorbench run`: check, time and tabulate implementations and workloads."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from factorbench.cli.console import console, errors
from factorbench.cli.parser import (
    DEFAULT_JSON,
    UsageError,
    add_plugin_option,
    byte_size,
    chunk_sizes,
    count,
    counts,
    cpu_ids,
    key_value,
    number,
    schedulers,
)
from factorbench.cli.tables import print_gpu, print_problems, print_tables, print_workloads


def add_parser(sub) -> None:
    run = sub.add_parser("run", help="check, time and tabulate implementations and workloads")
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
    run.add_argument("--precision", type=number, default=0.02, metavar="F",
                     help="sample until the median's 95%% CI is within ±F (default 0.02 = 2%%) or the time "
                          "budget is spent")
    run.add_argument("--rounds", type=count, default=3, metavar="N",
                     help="time each row in N rounds over all implementations, each round in a fresh worker "
                          "process; its CI and `report A B` use the spread between rounds (default 3; 1 = "
                          "one process, within-process CI)")
    run.add_argument("--timeout", type=number, metavar="S",
                     help="hard deadline of each implementation's call on a case, after which its worker is "
                          "killed and the row is a timeout (default 60 + 5 x the time budget)")
    run.add_argument("--memory-limit", type=byte_size, metavar="SIZE",
                     help="most memory the run may use, e.g. 2g (binary units); the cgroup's limit and the "
                          "available memory bound it too, and 25%% of the smallest is kept free")
    run.add_argument("--in-process", action="store_true",
                     help="measure in this process instead of one worker process per implementation "
                          "(for pdb and profilers; a crash or hang then takes the run down)")
    run.add_argument("--strict", action="store_true",
                     help="exit 1 when a row is crashed, timeout, wrong or failed (default: exit 0, rows listed)")
    run.add_argument("--seed", type=int, default=0, help="input generator seed")
    run.add_argument("--json", default=DEFAULT_JSON, metavar="PATH", help=f"results file (default {DEFAULT_JSON})")
    run.add_argument("--wide", action="store_true",
                     help="every column in the tables (default: only from 160 columns; all are in the JSON)")
    run.add_argument("--report", metavar="PATH", help="also write the HTML report to PATH")
    run.add_argument("--profile", action="store_true",
                     help="after timing, profile every passing implementation (CPU and memory flame graphs, "
                          "peak memory) for the report")
    run.add_argument("--profile-dir", metavar="DIR", help="where profiles go (default: profiles/ beside --json)")
    run.add_argument("--profile-seconds", type=number, default=2.0, metavar="S",
                     help="seconds each implementation runs under py-spy (default 2)")
    add_plugin_option(run)
    run.set_defaults(handler=command)


def command(args) -> int:
    from factorbench.measure.runner import RunOptions, run, validate_options

    params = dict(args.param)
    if args.window is not None:
        params["window"] = args.window
    if args.alpha is not None:
        params["alpha"] = args.alpha
    if args.time_budget is not None and args.time_budget <= 0:  # RunOptions reads 0 as "the default"
        raise UsageError(f"--time-budget must be > 0, got {args.time_budget:g}")
    options = RunOptions(
        kernels=args.kernel, paradigms=args.paradigm, implementations=args.implementation,
        sizes=[s for group in args.size for s in group], params=params, quick=args.quick,
        repeat=args.repeat or 0, time_budget_s=args.time_budget or 0.0,
        workloads=args.workload, seed=args.seed, threads=args.threads,
        settings={key: values for key, values in (("processes", args.processes), ("scheduler", args.scheduler),
                                                  ("chunk_size", args.chunk_size)) if values},
        cpus=args.cpus, precision=args.precision, rounds=args.rounds, timeout_s=args.timeout,
        in_process=args.in_process, memory_limit_bytes=args.memory_limit,
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
            doc = run(options, json_path=args.json, progress=progress,
                      log=lambda line: errors.print(line, markup=False, highlight=False, soft_wrap=True))
        except KeyboardInterrupt:
            errors.print(f"interrupted: results measured so far are in {args.json}")
            return 130
    print_tables(doc, wide=True if args.wide else None)
    print_gpu(doc)
    print_workloads(doc)
    console.print(f"results: {args.json}")
    if args.profile:
        profile_run(doc, args)
    if args.report:
        from factorbench.report.html import write_report

        console.print(f"report: {write_report([args.json], args.report)}", soft_wrap=True)
    problems = print_problems(doc)
    return 1 if problems and args.strict else 0


def profile_run(doc: dict, args) -> None:
    from factorbench.profiling import profile_results
    from factorbench.results.schema import write

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
