"""The rich tables of `factorbench run`: one per kernel case, the GPU summary, workloads."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from factorbench.cli.console import console
from factorbench.kernels import kernel as get_kernel
from factorbench.measure import floors
from factorbench.results import analysis
from factorbench.results import format as fmt


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


def print_tables(doc: dict) -> None:
    if not doc["results"]:
        return
    measured = doc["machine"].get("bandwidth") or {}
    for case in analysis.cases(doc):
        spec = get_kernel(case.kernel)
        table = Table(title=escape(case.title), caption=escape(spec.signature), title_justify="left")
        extra_columns = {name: cell for name, cell in fmt.PROCESS_COLUMNS.items()
                         if any(cell(row) for row in case.ranked)}
        for column in ("implementation", "paradigm", "median", "IQR", "elements/s", "vs loop",
                       "vs best library", "% of floor", "first call", *extra_columns, "note"):
            table.add_column(column, justify="left" if column in ("implementation", "paradigm", "note")
                             else "right")
        for row in case.ranked:
            result = row.result
            table.add_row(escape(analysis.label(result)), escape(result["paradigm"]), fmt.time(result["median"]),
                          fmt.time(result["iqr"]), f"{analysis.elements_per_s(row):.3g}",
                          fmt.ratio(row.speedup["loop"]), fmt.ratio(row.speedup["library"]),
                          fmt_floor(result, measured), fmt.time(result.get("cold_call_s")),
                          *(cell(row) for cell in extra_columns.values()),
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
            print_floors(measured)


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
        console.print(table)
        for note in section.get("notes", []):
            console.print(f"  {escape(note)}")
