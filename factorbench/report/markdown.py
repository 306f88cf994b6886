"""GitHub-flavoured Markdown: a run's summary, a run-vs-run comparison and the gate's
verdict, short enough for a pull-request comment or a job's step summary.

GitHub caps a comment at 65,536 characters; every writer here stops adding rows at
MAX_CHARS and says how many it left out (the HTML report and the JSON have them all).
"""

from __future__ import annotations

import math

from factorbench.measure import floors
from factorbench.results import analysis
from factorbench.results import format as fmt
from factorbench.results import verdict as status_words
from factorbench.results.compare import COMPARE_ALPHA, COMPARE_FACTOR, compare_rows

MAX_CHARS = 40_000
"""Well under GitHub's 65,536-character comment limit, leaving room for a caller's text."""


def cell(text) -> str:
    """A table cell: pipes escaped, one line."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def table(header: list[str], rows: list[list], align: str = "") -> list[str]:
    """A GFM table; ``align`` has one letter per column, l or r (default l)."""
    marks = {"l": ":---", "r": "---:"}
    lines = ["| " + " | ".join(map(cell, header)) + " |",
             "| " + " | ".join(marks[(align or "l" * len(header)).ljust(len(header), "l")[i]]
                               for i in range(len(header))) + " |"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return lines


class Writer:
    """Lines up to MAX_CHARS; what does not fit is counted and named at the end."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.size = 0
        self.left_out = 0

    def add(self, *lines: str) -> bool:
        size = sum(len(line) + 1 for line in lines)
        if self.size + size > MAX_CHARS:
            self.left_out += 1
            return False
        self.lines.extend(lines)
        self.size += size
        return True

    def text(self) -> str:
        tail = ([f"\n_{self.left_out} more section(s) left out to stay under GitHub's comment limit; "
                 "the HTML report and the JSON have everything._"] if self.left_out else [])
        return "\n".join(self.lines + tail) + "\n"


def spread(result: dict) -> str:
    """The median's spread as a fraction of it: ±4% (the IQR over the median)."""
    if not fmt.is_number(result.get("iqr")) or not result.get("median"):
        return ""
    return f"±{fmt.pct(result['iqr'] / result['median'])}"


def vs_best_baseline(row: analysis.Row) -> float | None:
    """Speed-up against the fastest baseline row of the case (loop, vectorised or library)."""
    values = [value for value in row.speedup.values() if value is not None]
    return min(values) if values else None


def floor_pct(result: dict, measured: dict) -> str:
    floor = floors.floor_for(result, measured)
    if floor is None or not result.get("median"):
        return ""
    return fmt.pct(floor["seconds"] / result["median"])


def summary(doc: dict, source: str = "") -> str:
    """The summary table of every kernel case in a results document."""
    out = Writer()
    machine = doc.get("machine") or {}
    out.add(f"## factorbench run{f' ({cell(source)})' if source else ''}", "",
            f"Code under test: {cell(fmt.code_under_test(doc.get('code')))}.", "",
            f"{cell(machine.get('cpu_model') or 'unknown CPU')}, {machine.get('logical_cores', '?')} logical cores. "
            "Speed-ups per element against the fastest baseline (loop, vectorised, library); "
            "spread: IQR / median; % of floor: the memory-bandwidth floor's time / median.", "")
    measured = machine.get("bandwidth") or {}
    for case in analysis.cases(doc):
        rows = [[("**" + analysis.label(r.result) + "**") if r.best else analysis.label(r.result),
                 r.result["paradigm"], fmt.time(r.result["median"]), spread(r.result),
                 fmt.ratio(vs_best_baseline(r)), floor_pct(r.result, measured), r.result.get("reason") or ""]
                for r in case.ranked]
        rows += [[analysis.label(r), r["paradigm"], r["status"].upper(), "", "", "", r.get("reason") or ""]
                 for r in case.unranked]
        out.add(f"### {cell(case.title)}", "",
                *table(["implementation", "paradigm", "median", "spread", "vs best baseline", "% of floor", "note"],
                       rows, "llrrrrl"), "")
    return out.text()


def comparison(before: dict, after: dict, factor: float = COMPARE_FACTOR, alpha: float = COMPARE_ALPHA,
               names: tuple[str, str] = ("before", "after")) -> str:
    """The run-vs-run comparison: per case, the ratio after/before per element, whether it
    is significant, and the smallest change these samples could have shown."""
    rows = compare_rows(before, after, factor, alpha)
    marks = {"+": "slower", "-": "faster", "~": "not significant", "!": "changed status", "": ""}
    slower = [r for r in rows if r["mark"] == "+"]
    out = Writer()
    out.add(f"## factorbench comparison: {cell(names[0])} → {cell(names[1])}", "",
            f"Code under test: {cell(fmt.code_under_test(before.get('code')))} → "
            f"{cell(fmt.code_under_test(after.get('code')))}.", "",
            f"{len(rows)} rows compared, **{len(slower)} slower**, {sum(r['mark'] == '-' for r in rows)} faster "
            f"(beyond x{factor:g} with p < {alpha:g}: Welch's t-test between rounds, Mann-Whitney on the samples of "
            "one-round runs); ratio = after / before, time per element; "
            "MDE: the minimum detectable effect, the smallest change these samples could show (∞: too few samples).", "")
    by_case: dict[str, list[dict]] = {}
    for row in rows:
        by_case.setdefault(row["case"], []).append(row)
    for case, case_rows in by_case.items():
        lines = [[r["label"], r["paradigm"], r["before"], r["after"],
                  f"{r['ratio']:.3f}" if r["ratio"] is not None else "-",
                  f"{r['p']:.2g}" if r["p"] is not None else "-", detectable(r["mde"]), marks[r["mark"]]]
                 for r in sorted(case_rows, key=lambda r: -(r["ratio"] or 0))]
        out.add(f"### {cell(case)}", "",
                *table(["implementation", "paradigm", names[0], names[1], "ratio", "p", "MDE", "change"],
                       lines, "llrrrrrl"), "")
    return out.text()


def detectable(value: float | None) -> str:
    if value is None:
        return "-"
    return "∞" if math.isinf(value) else f"{value:.0%}"


GATE_STATUS = {**{status: f"❌ {status}" for status in status_words.FAILING}, status_words.NOT_GATED: "⚠️ not gated",
               status_words.IMPROVED: "✅ improved", status_words.FIXED: "✅ fixed", status_words.NOISY: "⚠️ noisy",
               status_words.UNCONFIRMED: "⚠️ unconfirmed", status_words.NEW: "new", status_words.GONE: "gone"}


def gate(verdict: dict) -> str:
    """The gate's verdict (``Verdict.to_dict()``): what moved, what is noisy, what was not counted."""
    rows = verdict["rows"]
    failing = verdict["regressions"]
    out = Writer()
    head = (f"❌ **{len(failing)} regression(s)**" if failing else "✅ **no regression**")
    counts = {status: sum(r["status"] == status for r in rows) for status in dict.fromkeys(r["status"] for r in rows)}
    out.add(f"## factorbench gate ({verdict['mode']}): {head}", "",
            f"`{cell(verdict['base_name'])}` ({verdict['base'][:8]}) → `{cell(verdict['head_name'])}` "
            f"({verdict['head'][:8]}); regression = {cell(verdict['rule'])}.", "",
            f"{len(rows)} benchmarks: " + ", ".join(f"{n} {status}" for status, n in counts.items()) + ".", "")
    moved = [r for r in rows if r["status"] in GATE_STATUS]
    moved.sort(key=lambda r: (r["status"] not in status_words.FAILING, r["status"] != status_words.NOT_GATED,
                              -(r["ratio"] or 0)))
    if moved:
        out.add(*table(["change", "benchmark", "before", "after", "ratio", "note"],
                       [[GATE_STATUS[r["status"]], f"`{r['benchmark']}`", value(r["before"], r["unit"]),
                         value(r["after"], r["unit"]), f"{r['ratio']:.3f}" if r["ratio"] is not None else "-",
                         r["note"]] for r in moved], "llrrrl"), "")
    uncounted = [r for r in rows if r["status"] == status_words.WALL_TIME_ONLY]
    for reason in dict.fromkeys(r["note"] for r in uncounted):
        names = [r["benchmark"] for r in uncounted if r["note"] == reason]
        out.add(f"<details><summary>wall-time only, not counted: {len(names)} benchmark(s) ({cell(reason)})"
                "</summary>", "", ", ".join(f"`{name}`" for name in names), "</details>", "")
    return out.text()


def value(figure: float | None, unit: str) -> str:
    if figure is None:
        return "-"
    if unit == "seconds":
        return fmt.time(figure)
    if unit == "bytes":
        return fmt.size(figure)
    return f"{figure:,.0f}" if unit == "instructions" else f"{figure:,.4g}"


def bisect(outcome: dict) -> str:
    """The bisection's outcome (``Outcome.to_dict()``): the culprit and every probe."""
    culprit = outcome["culprit"]
    out = Writer()
    head = (f"first regressed commit **{culprit['commit'][:10]}** {cell(culprit['subject'])} "
            f"(x{culprit['ratio']:.3f})" if culprit else cell(outcome["message"]))
    out.add(f"## factorbench bisect: {head}", "",
            f"{outcome['commits']} commit(s) after {outcome['good'][:10]} up to {outcome['bad'][:10]}; "
            f"{cell(outcome['message'])}.", "")
    out.add(*table(["commit", "subject", "state", "ratio", "note"],
                   [[f"`{p['commit'][:10]}`", p["subject"], p["state"],
                     f"{p['ratio']:.3f}" if p["ratio"] is not None else "-",
                     ", ".join(p["benchmarks"]) or p["reason"]] for p in outcome["probes"]], "lllrl"), "")
    return out.text()
