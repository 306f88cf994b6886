"""One self-contained HTML report from a results document, or a comparison of two.

Everything is inline (CSS, SVG figures, images as data: URIs), so the file opens offline
and nothing is fetched from a CDN. Figures come from factorbench.report.plots, tables from the
jinja2 templates in factorbench/report/templates (autoescaped: names and messages from a results
file are never trusted as HTML). Speed-ups come from factorbench.results.analysis, so the
report and the CLI tables say the same thing.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
from collections import defaultdict
from pathlib import Path

import jinja2
from markupsafe import Markup

from factorbench.measure import floors
from factorbench.report import plots
from factorbench.results import analysis, reproduction, schema
from factorbench.results import format as fmt
from factorbench.results.compare import COMPARE_ALPHA, COMPARE_FACTOR, compare_rows
from factorbench.results.schema import MEMORY_PEAK_KEY

PROCESS_COLUMNS = fmt.PROCESS_COLUMNS

ARTIFACT_INLINE_LIMIT = 8 * 2**20
"""Artifacts above this size are linked by path instead of inlined, to keep the file usable."""
TEXT_PREVIEW_CHARS = 20_000
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp"}
TEXT_TYPES = (".txt", ".json", ".dot", ".csv", ".log")
HIDDEN_EXTRA = ("artifacts", "traceback", MEMORY_PEAK_KEY)
"""Workload units shown scaled (KiB, MiB, GiB) in the cell rather than in the column header."""


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("factorbench.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["time"] = fmt.time
    env.filters["ratio"] = fmt.ratio
    return env


def run_floors(doc: dict) -> dict:
    """The run's measured floors (factorbench.measure.floors.measure's figures); {} if none."""
    return doc["machine"].get("bandwidth") or {}


def floor_fraction(result: dict, measured: dict) -> tuple[float | None, str]:
    """(floor time / median, which floor applies) for one row; (None, "") without figures.

    Runs from before the fresh-output floor existed have only the one-thread copy rate:
    their rows are held against the streaming floor, as they were then."""
    if not fmt.is_number(result.get("median")) or result["median"] <= 0:
        return None, ""
    if (not measured.get("floors") and fmt.is_number(measured.get("copy_GBps"))
            and fmt.is_number(result.get("bytes_moved"))):
        return result["bytes_moved"] / (measured["copy_GBps"] * 1e9) / result["median"], "streaming, 1 thread"
    floor = floors.floor_for(result, measured)
    if floor is None:
        return None, ""
    return floor["seconds"] / result["median"], floors.describe_floor(floor)


def verdict(fraction: float | None) -> str:
    """Why the best row is where it is, in the terms of the bandwidth floor."""
    if fraction is None:
        return "no bandwidth figure for this row"
    if fraction > 1.05:
        return "beats the one-thread copy rate: the data fits in cache or several threads stream it"
    if fraction >= 0.6:
        return "memory-bound: near the bandwidth floor, only moving fewer bytes would help"
    if fraction >= 0.2:
        return "partly memory-bound: some compute or overhead left above the floor"
    return "compute- or overhead-bound: far above the floor, a better algorithm or more cores could help"


def _summaries() -> dict[tuple[str, str], str]:
    """Implementation docstrings from the installed registry, for the 'how' column."""
    from factorbench.registry import registry

    return {(impl.kernel, impl.name): impl.summary for impl in registry().all()}


def _kernel_info(name: str) -> tuple[str, str | None]:
    """(signature, size parameter) of a kernel this factorbench knows, else ('', None)."""
    from factorbench.kernels import kernel

    try:
        spec = kernel(name)
    except ValueError:
        return "", None
    return spec.signature, spec.size_param


def _slug(*parts) -> str:
    text = "-".join(str(p) for p in parts)
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower()


def embed(name: str, path: str, owner: str) -> dict:
    """How the template shows one artifact file: inline image, sandboxed frame, text or link."""
    file = Path(path)
    view = {"name": name, "owner": owner, "path": str(path), "kind": "missing"}
    if not file.is_file():
        return view
    suffix = file.suffix.lower()
    size = file.stat().st_size
    if size > ARTIFACT_INLINE_LIMIT:
        return {**view, "kind": "link", "why": f"{fmt.size(size)}: too large to inline"}
    if suffix == ".svg":
        data = file.read_bytes()
        uri = "data:image/svg+xml;base64," + base64.b64encode(data).decode()
        # Shown as an image, so a scripted SVG (py-spy's interactive flame graph) runs no script
        # inside the report; the file itself stays linked for zooming and search.
        return {**view, "kind": "img", "src": uri, "interactive": b"<script" in data}
    if suffix in IMAGE_TYPES:
        return {**view, "kind": "img",
                "src": f"data:{IMAGE_TYPES[suffix]};base64," + base64.b64encode(file.read_bytes()).decode()}
    if suffix in TEXT_TYPES:
        text = file.read_text(errors="replace")
        return {**view, "kind": "text", "text": text[:TEXT_PREVIEW_CHARS]}
    return {**view, "kind": "link", "why": "open it on its own; memray's HTML loads its scripts from the network"
            if suffix == ".html" else "open it on its own"}


def _artifacts(mapping, owner: str) -> list[dict]:
    if not isinstance(mapping, dict):
        return []
    return [embed(str(name), str(path), owner) for name, path in mapping.items() if isinstance(path, str)]


def _row_view(row: analysis.Row, rank: int, measured: dict, summaries) -> dict:
    result = row.result
    fraction, floor_kind = floor_fraction(result, measured)
    return {
        "rank": rank, "best": row.best, "label": analysis.label(result), "paradigm": result["paradigm"],
        "name": result["implementation"], "settings": analysis.label(result).removeprefix(result["implementation"]),
        "median": fmt.time(result["median"]), "spread": fmt.ci(result), "unstable": result.get("unstable") or [],
        "samples": len(result.get("times") or []),
        "elements_per_s": f"{analysis.elements_per_s(row):.3g}",
        "vs_loop": fmt.ratio(row.speedup.get("loop")), "vs_vectorized": fmt.ratio(row.speedup.get("vectorized")),
        "vs_library": fmt.ratio(row.speedup.get("library")),
        "floor": fmt.pct(fraction), "floor_kind": floor_kind, "floor_fraction": fraction,
        "over_floor": bool(fraction and fraction > 1.05),
        "cold": fmt.time(result.get("cold_call_s")),
        "peak_rss": fmt.size(result["peak_rss_bytes"]) if result.get("peak_rss_bytes") else "",
        "note": "; ".join(filter(None, [result.get("reason") or "", *(f"UNSTABLE: {why}" for why in
                                                                    result.get("unstable") or [])])),
        "summary": summaries.get((result["kernel"], result["implementation"]), ""),
    }


def _parallel_plots(case: analysis.Case) -> list[dict]:
    """Speed-up vs each numeric setting (processes, threads, workers) that a row swept."""
    by_impl: dict[str, list[dict]] = defaultdict(list)
    for row in case.ranked:
        if row.result.get("settings"):
            by_impl[row.result["implementation"]].append(row.result)
    series_by_setting: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for impl, rows in by_impl.items():
        keys = {key for r in rows for key, value in r["settings"].items() if fmt.is_number(value)}
        for key in sorted(keys):
            if len({r["settings"].get(key) for r in rows}) < 2:
                continue
            for r in rows:
                value = r["settings"].get(key)
                if not fmt.is_number(value) or value <= 0:
                    continue
                others = ", ".join(f"{k}={v}" for k, v in r["settings"].items() if k != key)
                label = impl + (f" ({others})" if others else "")
                series_by_setting[key][label].append((value, r["median"] / r["elements"]))
    plots_out = []
    for key, series in series_by_setting.items():
        series = {label: points for label, points in series.items() if len(points) >= 2}
        if series:
            plots_out.append({"setting": key, "svg": Markup(plots.parallel_speedup(series, key))})
    return plots_out


def _case_view(case: analysis.Case, measured: dict, colours, summaries) -> dict:
    signature, _ = _kernel_info(case.kernel)
    rows = [_row_view(row, rank, measured, summaries) for rank, row in enumerate(case.ranked, start=1)]
    # The CLI's process-scaling columns, shown where some row has them (process pools).
    process_columns = {name: cell for name, cell in PROCESS_COLUMNS.items() if any(cell(row) for row in case.ranked)}
    for view, row in zip(rows, case.ranked):
        view["process_cells"] = [cell(row) for cell in process_columns.values()]
    extra_keys = sorted({key for row in case.ranked for key in (row.result.get("extra") or {})
                         if key not in HIDDEN_EXTRA})
    extras = [{"label": analysis.label(row.result),
               "values": [fmt.metric((row.result.get("extra") or {}).get(key, "")) for key in extra_keys]}
              for row in case.ranked if any(k in (row.result.get("extra") or {}) for k in extra_keys)]
    peaks = [(analysis.label(r.result), r.result["extra"][MEMORY_PEAK_KEY]) for r in case.ranked
             if fmt.is_number((r.result.get("extra") or {}).get(MEMORY_PEAK_KEY))]
    floor_per_element = None
    if case.ranked and rows[0]["floor_fraction"] and fmt.is_number(case.ranked[0].result.get("elements")):
        best = case.ranked[0].result  # the floor that applies to the best row, per element
        floor_per_element = rows[0]["floor_fraction"] * best["median"] / best["elements"]
    every = [row.result for row in case.ranked] + case.unranked
    return {
        "id": _slug(case.title), "title": case.title, "signature": signature, "rows": rows,
        "process_columns": list(process_columns),
        "unranked": [{"label": analysis.label(r), "paradigm": r["paradigm"], "status": r["status"],
                      "reason": r.get("reason") or ""} for r in case.unranked],
        "extra_keys": extra_keys, "extras": extras,
        "bars": Markup(plots.time_bars([row["label"] for row in rows], [row["paradigm"] for row in rows],
                                       [row.per_element_s for row in case.ranked], colours, floor_per_element))
        if rows else None,
        "peaks": Markup(plots.memory_peaks([p[0] for p in peaks], [p[1] for p in peaks])) if peaks else None,
        "parallel": _parallel_plots(case),
        "artifacts": [(analysis.label(r), views) for r in every
                      if (views := _artifacts((r.get("extra") or {}).get("artifacts"), analysis.label(r)))],
        "reduced": any(r.result.get("requested_params") for r in case.ranked),
    }


def _scaling_views(doc: dict, colours) -> list[dict]:
    """Time against size per kernel (and per value of its other parameters), when several sizes ran."""
    groups: dict[str, dict] = {}
    for result in doc["results"]:
        if result["status"] != "ok" or not fmt.is_number(result.get("median")):
            continue
        _, size_param = _kernel_info(result["kernel"])
        params = result["params"]
        if size_param is None or size_param not in params:
            continue
        others = {k: v for k, v in (result.get("requested_params") or params).items() if k != size_param}
        key = json.dumps([result["kernel"], others], sort_keys=True)
        group = groups.setdefault(key, {"kernel": result["kernel"], "others": others, "size_param": size_param,
                                        "series": defaultdict(dict), "paradigm_of": {}, "requested": set()})
        group["requested"].add((result.get("requested_params") or params)[size_param])
        label = analysis.label(result)
        # Two requested sizes cut down to the same measured size give one point, not two.
        points = group["series"][label]
        points[params[size_param]] = min(result["median"], points.get(params[size_param], math.inf))
        group["paradigm_of"][label] = result["paradigm"]
    views = []
    for group in groups.values():
        if len(group["requested"]) < 2:  # one size asked for (some rows cut down) is no scaling series
            continue
        title = group["kernel"] + "".join(f" {k}={v}" for k, v in group["others"].items())
        series = {label: sorted(points.items()) for label, points in group["series"].items()}
        views.append({"id": _slug("scaling", title), "title": title,
                      "svg": Markup(plots.scaling(series, group["paradigm_of"], colours, group["size_param"]))})
    return views


def _workload_view(section: dict) -> dict:
    units = section.get("units") or {}
    rows = [row for row in section.get("rows") or [] if isinstance(row, dict)]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    latency = section.get("latency") or {}
    latency = {str(label): stats for label, stats in latency.items() if isinstance(stats, dict)}
    return {
        "id": _slug("workload", section["name"]), "name": section["name"], "summary": section.get("summary", ""),
        "status": section["status"], "reason": section.get("reason") or "",
        "params": section.get("params") or {},
        "columns": [f"{c} [{units[c]}]" if units.get(c) and units[c] not in ("s", *fmt.BYTE_UNITS) else c
                    for c in columns],
        "rows": [[fmt.metric(row.get(c, ""), units.get(c, "")) for c in columns] for row in rows],
        "notes": [str(note) for note in section.get("notes") or []],
        "latency": [{"label": label, "p50": fmt.time(s.get("p50")) if fmt.is_number(s.get("p50")) else "-",
                     "p95": fmt.time(s.get("p95")) if fmt.is_number(s.get("p95")) else "-",
                     "p99": fmt.time(s.get("p99")) if fmt.is_number(s.get("p99")) else "-",
                     "samples": len(s.get("samples") or [])} for label, s in latency.items()],
        "latency_svg": Markup(plots.latency(latency)) if latency else None,
        "artifacts": _artifacts(section.get("artifacts"), section["name"]),
    }


def _cpu_list(cores) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    if not isinstance(cores, list) or not cores:
        return "unknown"
    ranges: list[list[int]] = []
    for core in sorted(cores):
        if ranges and core == ranges[-1][1] + 1:
            ranges[-1][1] = core
        else:
            ranges.append([core, core])
    return ",".join(f"{low}-{high}" if high != low else f"{low}" for low, high in ranges)


def _container(limits) -> str:
    """Where the run ran and what its cgroup allowed: engine, CPU set, CPU quota, memory."""
    if not isinstance(limits, dict):
        return "not recorded"
    quota = limits.get("cpu_quota")
    memory = limits.get("memory_limit_bytes")
    allowed = (f"cgroup CPU set {_cpu_list(limits.get('cpuset'))}, "
               + (f"CPU quota {quota:g} CPUs" if fmt.is_number(quota) else "no CPU quota") + ", "
               + (f"memory limit {fmt.size(memory)}" if fmt.is_number(memory) else "no memory limit"))
    engine = limits.get("container")
    return f"{engine} container; {allowed}" if engine else f"none; {allowed}"


def _memory_bound(bound) -> str:
    """What every size the run chose had to fit: 'usable 1.5 GiB of the cgroup memory limit (2 GiB)'."""
    if not isinstance(bound, dict) or not fmt.is_number(bound.get("usable_bytes")):
        return "not recorded"
    return (f"{fmt.size(bound['usable_bytes'])} usable of the {bound.get('limited_by', 'limit')} "
            f"({fmt.size(bound.get('limit_bytes'))}), the rest kept free for the interpreters and libraries")


def _machine_view(doc: dict) -> dict:
    m, options = doc["machine"], doc["options"]
    bandwidth = m.get("bandwidth") or {}
    affinity = m.get("cpu_affinity")
    logical = m.get("logical_cores")
    pinning = _cpu_list(affinity)
    if isinstance(affinity, list) and logical:
        pinning += " (all cores)" if len(affinity) == logical else f" ({len(affinity)} of {logical} cores)"
    if m.get("pinned_cpus"):
        pinning += f"; run pinned to {_cpu_list(m['pinned_cpus'])} (--cpus)"
    threads = m.get("threads") or {}
    profiling = doc.get("profiling") or {}
    facts = [
        ("CPU", m.get("cpu_model", "unknown")),
        ("cores", f"{m.get('physical_cores', '?')} physical, {m.get('logical_cores', '?')} logical"),
        ("memory", fmt.size(m.get("memory_bytes"))),
        ("OS", m.get("os", "unknown")),
        ("Python", f"{m.get('python', '?')} ({m.get('python_implementation', '?')})"),
        ("CPU affinity", pinning),
        ("container", _container(m.get("limits"))),
        ("threads", ", ".join(f"{k}={v}" for k, v in threads.items()) or "defaults"),
        ("thread env", ", ".join(f"{k}={v}" for k, v in (m.get("thread_env") or {}).items()) or "none set"),
        ("memory bandwidth", f"copy {bandwidth['copy_GBps']:.1f} GB/s, read {bandwidth['read_GBps']:.1f} GB/s "
                             f"over {fmt.size(bandwidth.get('bytes'))} arrays"
                             + (f" ({bandwidth['bytes_why']})" if bandwidth.get("bytes_why") else "")
                             + f" ({bandwidth.get('method', '')})"
         if fmt.is_number(bandwidth.get("copy_GBps")) and fmt.is_number(bandwidth.get("read_GBps")) else "not measured"),
        ("floors", "; ".join(f"{f['threads']} thread{'s' if f['threads'] != 1 else ''}: streaming "
                             f"{fmt.time(f['stream_s'])} ({f['stream_GBps']:.1f} GB/s), fresh output "
                             f"{fmt.time(f['fresh_s'])} ({f['fresh_GBps']:.1f} GB/s)"
                             for f in bandwidth.get("floors") or []) + f" per {fmt.size(bandwidth.get('bytes'))}"
         if bandwidth.get("floors") else "not measured"),
        ("memory bound", _memory_bound(m.get("memory_bound"))),
        ("code under test", fmt.code_under_test(doc.get("code"))),
        ("git commit", m.get("git_commit") or "unknown"),
        ("isolation", m.get("isolation") or "in-process (before isolated workers)"),
        ("frequency scaling", ", ".join(f"{k}={v}" for k, v in (m.get("frequency_scaling") or {}).items()
                                        if v is not None) or "not readable"),
        ("machine load", (m.get("load") or {}).get("warning") or "quiet" if m.get("load") else "not recorded"),
        ("noise", m.get("ci_method") or "IQR only"),
        ("profiling", f"{profiling['profiled']} implementations in {profiling['seconds']:.0f} s, files in "
                      f"{profiling['dir']}" if fmt.is_number(profiling.get("seconds")) else "not profiled"),
        ("started", options.get("started", "unknown")),
        ("host", m.get("hostname", "unknown")),
    ]
    shown_options = {k: v for k, v in options.items() if k != "started" and v not in (None, [], {}, "")}
    return {"facts": facts, "cpu": m.get("cpu_model", "unknown CPU"), "started": options.get("started", "unknown"),
            "libraries": sorted((m.get("libraries") or {}).items()),
            "threadpools": [p for p in m.get("threadpools") or [] if isinstance(p, dict)],
            "options": [(k, json.dumps(v) if isinstance(v, (dict, list)) else str(v)) for k, v in shown_options.items()]}


def _summary_rows(case_views: list[dict], cases: list[analysis.Case]) -> list[dict]:
    rows = []
    for view, case in zip(case_views, cases):
        if not view["rows"]:
            rows.append({"case": view["title"], "id": view["id"], "best": None})
            continue
        best = view["rows"][0]
        rows.append({"case": view["title"], "id": view["id"], "best": best,
                     "runner_up": view["rows"][1]["label"] if len(view["rows"]) > 1 else "",
                     "why": verdict(best["floor_fraction"]),
                     "not_ranked": len(case.unranked)})
    return rows


def _correctness_views(doc: dict) -> list[dict]:
    """Per kernel: the correctness matrix of the run (implementations x input classes) and,
    in plain text, what each failing cell returned or raised."""
    by_kernel: dict[str, list[dict]] = defaultdict(list)
    for profile in doc.get("correctness") or []:
        by_kernel[profile["kernel"]].append(profile)
    views = []
    for kernel, profiles in by_kernel.items():
        classes = list(dict.fromkeys(cell["input_class"] for p in profiles for cell in p["cells"]))
        rows, failures = [], []
        for p in profiles:
            label = p["implementation"] + "".join(f" {k}={v}" for k, v in (p.get("settings") or {}).items())
            cells = {cell["input_class"]: cell for cell in p["cells"]}
            marks = []
            for name in classes:
                cell = cells.get(name)
                outcome = "unavailable" if p.get("reason") else cell["outcome"] if cell else ""
                marks.append({"outcome": outcome, "mark": {"pass": "✓", "wrong": "✗", "raises": "!"}.get(outcome, "–")})
                if cell and cell["outcome"] in ("wrong", "raises"):
                    detail = cell["reason"]
                    if cell.get("first_bad_index") is not None:
                        detail += f" (first bad output index {cell['first_bad_index']})"
                    failures.append({"label": label, "ours": p.get("ours", True), "input_class": name,
                                     "case": cell.get("case") or "", "outcome": cell["outcome"], "detail": detail})
            rows.append({"label": label, "paradigm": p["paradigm"], "ours": p.get("ours", True),
                         "reason": p.get("reason") or "", "marks": marks})
        views.append({"id": _slug("correctness", kernel), "kernel": kernel, "classes": classes, "rows": rows,
                      "failures": failures, "ours_failing": sum(1 for f in failures if f["ours"])})
    return views


def render(doc: dict, source: str = "") -> str:
    """The HTML report of one (validated) results document."""
    measured = run_floors(doc)
    colours = plots.paradigm_colours([r["paradigm"] for r in doc["results"]])
    summaries = _summaries()
    cases = analysis.cases(doc)
    case_views = [_case_view(case, measured, colours, summaries) for case in cases]
    statuses: defaultdict[str, int] = defaultdict(int)
    for result in doc["results"]:
        statuses[result["status"]] += 1
    return _environment().get_template("report.html.j2").render(
        title="factorbench report", source=source, machine=_machine_view(doc),
        code=fmt.code_under_test(doc.get("code")),
        summary=_summary_rows(case_views, cases), cases=case_views, scaling=_scaling_views(doc, colours),
        correctness=_correctness_views(doc),
        workloads=[_workload_view(s) for s in doc.get("workloads") or []],
        reproduction=claims if reproduction.comparable(claims := reproduction.claims(doc)) else [],
        statuses=dict(statuses), legend=sorted(set(colours) & {r["paradigm"] for r in doc["results"]}),
        colours=colours, generated=_now())


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def render_comparison(before: dict, after: dict, names: tuple[str, str], factor: float = COMPARE_FACTOR,
                      alpha: float = COMPARE_ALPHA) -> str:
    rows = compare_rows(before, after, factor, alpha)
    counts: defaultdict[str, int] = defaultdict(int)
    for row in rows:
        counts[row["mark"]] += 1
    for row in rows:
        row["ratio_text"] = "-" if row["ratio"] is None else f"{row['ratio']:.3g}"
        row["p_text"] = "-" if row["p"] is None else f"{row['p']:.2g}"
        row["mde_text"] = "-" if row["mde"] is None else "∞" if math.isinf(row["mde"]) else f"{row['mde']:.1%}"
    by_case: dict[str, list] = defaultdict(list)
    for row in rows:
        by_case[row["case"]].append(row)
    for case_rows in by_case.values():
        case_rows.sort(key=lambda r: -(r["ratio"] or 0))
    fact_names = ("code under test", "CPU", "cores", "memory", "OS", "Python", "memory bandwidth", "git commit",
                  "started")
    machines = [dict(_machine_view(doc)["facts"]) for doc in (before, after)]
    facts = [(name, machines[0].get(name, "-"), machines[1].get(name, "-")) for name in fact_names]
    min_samples = min((len(r["times"]) for doc in (before, after) for r in doc["results"] if r["status"] == "ok"),
                      default=0)
    return _environment().get_template("compare.html.j2").render(
        title="factorbench comparison", names=names, facts=facts, cases=dict(by_case), counts=dict(counts),
        factor=factor, alpha=alpha, min_samples=min_samples, generated=_now())


def write_report(paths: list[str], output: str, factor: float = COMPARE_FACTOR) -> Path:
    """Load one results file (a report) or two (a comparison) and write the HTML to ``output``."""
    docs = [schema.load(path) for path in paths]
    if len(docs) == 1:
        html = render(docs[0], source=str(paths[0]))
    else:
        html = render_comparison(docs[0], docs[1], (str(paths[0]), str(paths[1])), factor)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out.resolve()
