"""The history report: one offline HTML file (inline CSS and SVG, like the run report, from
the same templates) opening with the change points, regressions first, then a trend per
benchmark: the median and its confidence band per commit, a line per machine, change points
marked and labelled. And its Markdown twin for pull requests and $GITHUB_STEP_SUMMARY.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from collections import defaultdict
from pathlib import Path

import jinja2
from markupsafe import Markup
from matplotlib.ticker import FuncFormatter, MaxNLocator

from factorbench.history.changes import MAX_PVALUE, ChangePoint
from factorbench.history.store import Point
from factorbench.report import plots
from factorbench.results import format as fmt

MARKDOWN_ROWS = 50
"""Most change points listed in the Markdown: a pull-request comment stays readable."""


def value(number: float | None, unit: str) -> str:
    if number is None:
        return "-"
    return fmt.time(number) if unit in ("seconds", "s") else fmt.metric(number)


def signed_pct(fraction: float) -> str:
    return f"{fraction:+.1%}"


def series_name(item: ChangePoint | Point) -> str:
    """The benchmark with what else tells its series apart (mode, metric, parameters)."""
    parts = [item.benchmark, f"{item.mode} {item.metric}"]
    if item.params:
        parts.append(fmt.params(json.loads(item.params)) if item.params.startswith("{") else item.params)
    return " · ".join(parts)


def change_rows(changes: list[ChangePoint]) -> list[dict]:
    return [{"regression": change.regression, "series": series_name(change), "machine": change.machine,
             "commit": change.commit, "previous": change.previous_commit, "subject": change.subject,
             "before": value(change.before, change.unit), "after": value(change.after, change.unit),
             "magnitude": signed_pct(change.magnitude), "p_value": f"{change.p_value:.1e}",
             "points": f"{change.points_before} → {change.points_after}", "anchor": anchor(change)}
            for change in changes]


def anchor(item: ChangePoint | Point) -> str:
    key = json.dumps([item.benchmark, item.mode, item.metric, item.params])
    return "trend-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def trend(series: list[list[Point]], changes: list[ChangePoint]) -> str:
    """One benchmark's figure: x is the commit order over every machine's points."""
    # By committer time, then as the store keeps each series (commit order, as history run
    # stored it): commits of one second must not fall into the order of their hashes.
    commits: dict[str, tuple[float, int]] = {}
    for points in series:
        for place, point in enumerate(points):
            commits.setdefault(point.commit, (point.commit_time, place))
    order = {commit: i for i, (commit, _) in enumerate(sorted(commits.items(), key=lambda item: item[1]))}
    shas = sorted(order, key=order.__getitem__)
    unit = series[0][0].unit
    scale, shown_unit = (1.0, unit)
    measured = [p.value for points in series for p in points if p.value is not None]
    if unit in ("seconds", "s") and measured:
        peak = max(measured)
        scale, shown_unit = next(((s, u) for s, u in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")) if peak >= s),
                                 (1e-9, "ns"))
    def scaled(number: float | None) -> float:
        return math.nan if number is None else number / scale  # a gap in a line or band

    fig, ax = plots.new_figure(9.5, 2.8)
    for index, points in enumerate(series):
        colour = plots.OTHER_COLOURS[index % len(plots.OTHER_COLOURS)]
        ok = [p for p in points if p.value is not None]
        xs = [order[p.commit] for p in ok]
        ax.plot(xs, [scaled(p.value) for p in ok], marker="o", markersize=2.5, linewidth=1.1, color=colour,
                label=plots.plain(points[0].machine))
        if any(p.ci_low is not None for p in ok):
            ax.fill_between(xs, [scaled(p.ci_low) for p in ok], [scaled(p.ci_high) for p in ok], color=colour,
                            alpha=0.18, linewidth=0)
        failed = [p for p in points if p.value is None]
        if failed and ok:
            low = min(scaled(p.value) for p in ok)
            ax.plot([order[p.commit] for p in failed], [low] * len(failed), linestyle="none", marker="x",
                    color=colour, markersize=4)
        machine_changes = [c for c in changes if c.machine == points[0].machine]
        for change in machine_changes:
            x = order[change.commit] - 0.5
            ax.axvline(x, color="#b3261e" if change.regression else "#2e9a4f", linestyle="--", linewidth=0.9)
            ax.annotate(plots.plain(f"{change.commit[:8]} {signed_pct(change.magnitude)}"), (x, 1.0),
                        xycoords=("data", "axes fraction"), rotation=90, fontsize=7, va="top", ha="right",
                        color="#b3261e" if change.regression else "#1c6b34")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=10, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: shas[int(x)][:8] if 0 <= int(x) < len(shas) else ""))
    ax.set_xlabel("commit (in commit order)")
    ax.set_ylabel(plots.plain(f"{series[0][0].metric} ({shown_unit})" if shown_unit else series[0][0].metric))
    ax.set_ylim(bottom=0)
    if len(series) > 1:
        ax.legend(loc="lower left", fontsize=7, frameon=False)
    return plots.to_svg(fig)


def trends(all_series: list[list[Point]], changes: list[ChangePoint]) -> list[dict]:
    """A figure per benchmark (with its mode, metric and parameters): its machines are its lines."""
    grouped: dict[tuple, list[list[Point]]] = defaultdict(list)
    for points in all_series:
        first = points[0]
        grouped[(first.benchmark, first.mode, first.metric, first.params)].append(points)
    by_series: dict[tuple, list[ChangePoint]] = defaultdict(list)
    for change in changes:
        by_series[(change.benchmark, change.mode, change.metric, change.params)].append(change)
    out = []
    for key in sorted(grouped):
        series = sorted(grouped[key], key=lambda points: points[0].machine)
        first = series[0][0]
        out.append({"title": series_name(first), "anchor": anchor(first), "svg": Markup(trend(series, by_series[key])),
                    "machines": ", ".join(points[0].machine for points in series),
                    "points": sum(len(points) for points in series), "changes": len(by_series[key])})
    return out


def write_html(changes: list[ChangePoint], all_series: list[list[Point]], output: str | Path) -> Path:
    env = jinja2.Environment(loader=jinja2.PackageLoader("factorbench.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    commits = {point.commit for points in all_series for point in points}
    html = env.get_template("history.html.j2").render(
        title="factorbench history", changes=change_rows(changes), trends=trends(all_series, changes),
        regressions=sum(change.regression for change in changes), series=len(all_series), commits=len(commits),
        machines=sorted({points[0].machine for points in all_series}), max_pvalue=MAX_PVALUE,
        generated=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path.resolve()


def cell(text: str) -> str:
    """Text in a Markdown table cell: its pipes escaped, on one line."""
    return text.replace("|", "\\|").replace("\n", " ")


def changes_markdown(changes: list[ChangePoint], series_count: int) -> str:
    regressions = sum(change.regression for change in changes)
    lines = [f"### factorbench history: {regressions} regression(s), {len(changes) - regressions} improvement(s) "
             f"in {series_count:,} series", ""]
    if not changes:
        return "\n".join([*lines, "No change points.", ""])
    lines += ["| | benchmark | machine | commits | before → after | change | p-value |",
              "|---|---|---|---|---|---:|---:|"]
    for row in change_rows(changes[:MARKDOWN_ROWS]):
        mark = "🔴 regression" if row["regression"] else "🟢 improvement"
        lines.append(f"| {mark} | {cell(row['series'])} | {cell(row['machine'])} | `{row['previous'][:8]}.."
                     f"{row['commit'][:8]}` {cell(row['subject'])} | {row['before']} → {row['after']} | "
                     f"{row['magnitude']} | {row['p_value']} |")
    if len(changes) > MARKDOWN_ROWS:
        lines += ["", f"… and {len(changes) - MARKDOWN_ROWS} more (`factorbench history changes`)."]
    return "\n".join([*lines, ""])
