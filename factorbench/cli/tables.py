"""The rich tables of `factorbench run`: one per kernel case, the GPU summary, workloads."""

from __future__ import annotations

import contextlib

from rich.markup import escape
from rich.table import Table

from factorbench.cli.console import console, tell
from factorbench.kernels import kernel as get_kernel
from factorbench.measure import floors
from factorbench.results import analysis
from factorbench.results import format as fmt
from factorbench.results.schema import PROBLEM_STATUSES


def fmt_floor(result: dict, measured: dict) -> str:
    """'87% fresh 2T': the applicable floor's time / the median, and which floor it is."""
    floor = floors.floor_for(result, measured)
    if floor is None or not result.get("median"):
        return ""
    kind = "fresh" if floor["kind"] == "fresh output" else "stream"
    return f"{floor['seconds'] / result['median']:.0%} {kind} {floor['threads']}T"


def print_floors(measured: dict) -> None:
    for floor in measured.get("floors") or []:
        console.print(f"floors on {floor['threads']} thread(s), {fmt.size(measured['bytes'])} array: "
                      f"streaming copy {fmt.time(floor['stream_s'])} ({floor['stream_GBps']:.1f} GB/s), "
                      f"fresh output {fmt.time(floor['fresh_s'])} ({floor['fresh_GBps']:.1f} GB/s)")


WIDE_COLUMNS = 160
"""From this console width up, run tables show every column; below it the compact set."""


def vs_best_baseline(row: analysis.Row) -> str:
    """Speed-up against the fastest baseline row (loop, vectorised or library) of the case."""
    values = [value for value in row.speedup.values() if value is not None]
    return fmt.ratio(min(values)) if values else "-"


def median_spread(result: dict) -> str:
    """'1.23 ms ±4%': the median and its IQR as a fraction of it."""
    if not fmt.is_number(result.get("iqr")) or not result["median"]:
        return fmt.time(result["median"])
    return f"{fmt.time(result['median'])} ±{fmt.pct(result['iqr'] / result['median'])}"


def print_tables(doc: dict, wide: bool | None = None) -> None:
    """One table per kernel case. ``wide`` (default: the console is WIDE_COLUMNS or more)
    shows every column; compact keeps the implementation in full, the median with its
    spread, the speed-up vs the best baseline, % of floor and a short note, and lists
    longer notes under the table, so an 80-column CI log stays readable."""
    if not doc["results"]:
        return
    wide = console.width >= WIDE_COLUMNS if wide is None else wide
    measured = doc["machine"].get("bandwidth") or {}
    for case in analysis.cases(doc):
        spec = get_kernel(case.kernel)
        table = Table(title=escape(case.title), caption=escape(spec.signature), title_justify="left")
        notes = (wide_rows if wide else compact_rows)(table, case, measured)
        fit_columns(table)
        # Every column asked for in a narrower console (a CI log's 80) would squeeze the
        # figures to nothing beside full implementation names: the lines run long instead.
        with wide_enough(needed_width(table) if wide else 0):
            console.print(table)
        for number, note in enumerate(notes, 1):
            console.print(f"  [{number}] {escape(note)}", highlight=False)
    console.print("Speed-ups compare time per element, so a row measured at a smaller size "
                  "(see note) is compared fairly; every implementation allocates its own output. "
                  + ("" if wide else "vs best: against the fastest baseline (loop, vectorized, library); ±: IQR / "
                     "median; --wide or a wider terminal shows every column. ")
                  + "% of floor: the applicable floor's time / median (fresh: output allocated and "
                  "filled, stream: copy into an existing array; on nT threads).")
    print_floors(measured)


FLEXIBLE_COLUMNS = ("implementation", "paradigm", "note")


def fit_columns(table: Table) -> None:
    """Figures and their headers keep their full width; what is left goes to the text
    columns, an implementation label wrapping between its words ("dask (scheduler=...,"
    over "chunk_size=auto)") so that long settings never squeeze the figures to "7.15 ms…"."""
    for column in table.columns:
        texts = [str(cell) for cell in column.cells]
        if column.header == "implementation":
            column.no_wrap = False
            column.min_width = max((len(word) for text in texts for word in text.split()), default=0)
        elif column.header not in FLEXIBLE_COLUMNS:
            column.min_width = max(len(text) for text in [*texts, str(column.header)])


def needed_width(table: Table) -> int:
    """The width at which every cell of ``table`` fits unwrapped."""
    return console.measure(table, options=console.options.update_width(10_000)).maximum


@contextlib.contextmanager
def wide_enough(columns: int):
    """The console at least ``columns`` wide meanwhile (rich never renders wider itself)."""
    width = console.width
    console.width = max(width, columns)
    try:
        yield
    finally:
        console.width = width


class Notes(list):
    """Notes listed under a table, numbered in its note column, so a long reason never
    squeezes the figures' columns (their headers stay on one line, as CI logs are grepped)."""

    def number(self, text: str, status: str = "") -> str:
        if not text:
            return status
        self.append(text)
        return f"{status} [{len(self)}]".strip()


def compact_rows(table: Table, case: analysis.Case, measured: dict) -> list[str]:
    """Fill the compact table; returns the notes, numbered in the note column."""
    notes = Notes()
    note = notes.number
    table.add_column("implementation", no_wrap=True)
    for column in ("median", "vs best", "% floor"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("note", no_wrap=True)
    for row in case.ranked:
        result = row.result
        floor = fmt_floor(result, measured).split(" ")[0]
        table.add_row(escape(analysis.label(result)), median_spread(result), vs_best_baseline(row), floor,
                      escape(note(fmt.note(result), "best" if row.best else "")),
                      style="bold green" if row.best else None)
    for result in case.unranked:
        table.add_row(escape(analysis.label(result)), "", "", "",
                      escape(note(result.get("reason") or "", result["status"].upper())),
                      style="dim" if result["status"] == "skipped" else "red")
    return notes


def wide_rows(table: Table, case: analysis.Case, measured: dict) -> list[str]:
    """Fill the table with every column; returns the notes, numbered in the note column."""
    notes = Notes()
    extra_columns = {name: cell for name, cell in fmt.PROCESS_COLUMNS.items()
                     if any(cell(row) for row in case.ranked)}
    for column in ("implementation", "paradigm", "median", "95% CI", "CV", "elements/s", "vs loop",
                   "vs best library", "% of floor", "first call", *extra_columns, "note"):
        table.add_column(column, justify="left" if column in ("implementation", "paradigm", "note") else "right",
                         no_wrap=column == "implementation")
    for row in case.ranked:
        result = row.result
        table.add_row(escape(analysis.label(result)), escape(result["paradigm"]), fmt.time(result["median"]),
                      fmt.ci(result), fmt.pct(result.get("cv")), f"{analysis.elements_per_s(row):.3g}",
                      fmt.ratio(row.speedup["loop"]), fmt.ratio(row.speedup["library"]),
                      fmt_floor(result, measured), fmt.time(result.get("cold_call_s")),
                      *(cell(row) for cell in extra_columns.values()),
                      escape(notes.number(fmt.note(result))), style="bold green" if row.best else None)
    for result in case.unranked:
        table.add_row(escape(analysis.label(result)), escape(result["paradigm"]), result["status"].upper(),
                      "", "", "", "", "", "", "", *([""] * len(extra_columns)), escape(notes.number(result["reason"])),
                      style="dim" if result["status"] == "skipped" else "red")
    return notes


def print_problems(doc: dict) -> list[dict]:
    """List the crashed, timeout, wrong and failed rows, and warn when the machine was
    busy; returns the problem rows."""
    problems = [r for r in doc["results"] if r["status"] in PROBLEM_STATUSES]
    for result in problems:
        tell(f"{result['status'].upper()}: {analysis.case_title(result)} {analysis.label(result)}: {result['reason']}")
    unstable = sum(1 for r in doc["results"] if r["status"] == "ok" and r.get("unstable"))
    if unstable:
        tell(f"{unstable} row(s) marked unstable: their samples are too noisy to trust (see the note column)")
    warning = (doc["machine"].get("load") or {}).get("warning")
    if warning:
        tell(f"warning: the machine was busy ({warning}): timings are less reliable")
    return problems


def print_gpu(doc: dict) -> None:
    """Resident vs with-transfer times and bandwidth of the GPU rows (see factorbench.parallel.gpu)."""
    from factorbench.parallel.gpu import summary_rows

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
        table.add_row(escape(case), escape(row["implementation"]), fmt.time(row["with_transfers_s"]),
                      fmt.time(row["resident_s"]), f"{row['resident_GBps']:,.0f}",
                      f"{row['copy_GBps']:,.0f}" if row["copy_GBps"] else "-",
                      f"{row['pct_of_peak']:.0f}%" if row["pct_of_peak"] is not None else "-")
    console.print(table)


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
            table.add_column(escape(f"{column} [{unit}]" if unit and unit not in ("s", *fmt.BYTE_UNITS) else column),
                             justify="left" if column == "label" else "right")
        for row in section["rows"]:
            table.add_row(*(escape(fmt.metric(row.get(c, ""), section["units"].get(c, ""))) for c in columns))
        # A workload's dozen figure columns cannot share 80 columns: at the width they need,
        # a CI log's lines run long but every cell stays whole.
        with wide_enough(needed_width(table)):
            console.print(table)
        for note in section.get("notes", []):
            console.print(f"  {escape(note)}")
