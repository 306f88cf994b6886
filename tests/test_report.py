"""The HTML report, the comparison, the bandwidth test and the profilers, on a real small run."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from browser import CHROMIUM, screenshot

from factorbench import profiling
from factorbench.cli import main
from factorbench.measure import floors as fb_floors
from factorbench.measure.runner import RunOptions, run
from factorbench.profiling import MEMORY_PEAK_KEY, unavailable_tools
from factorbench.report import html as report
from factorbench.report import markdown
from factorbench.results import analysis, compare
from factorbench.results.schema import ResultsError, load, write

HOSTILE = '<script>alert("pwned")</script> $x^2$ & "q"'


class Page(HTMLParser):
    """Tags with their attributes, and table rows as lists of cell texts."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.rows: list[list[str]] = []
        self.row_classes: list[str] = []
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "tr":
            self.rows.append([])
            self.row_classes.append(attrs.get("class") or "")
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self.rows:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A real run: sma at two sizes, every implementation, five samples each."""
    folder = tmp_path_factory.mktemp("run")
    path = folder / "results.json"
    options = RunOptions(kernels=["sma"], sizes=[4000, 20000], quick=True, repeat=5, min_sample_s=0.002,
                         time_budget_s=0.5)
    run(options, json_path=str(path))
    return path, load(path)


@pytest.fixture(scope="module")
def profiled(tmp_path_factory):
    """`factorbench run --profile --report` on one implementation: py-spy, memory_profiler and memray for real."""
    if "py-spy" in unavailable_tools() or "memory_profiler" in unavailable_tools():
        pytest.skip("py-spy and memory_profiler are needed (pip install 'factorbench[profile]')")
    folder = tmp_path_factory.mktemp("profiled")
    path, page = folder / "results.json", folder / "index.html"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["run", "--quick", "--kernel", "ema", "--implementation", "vectorized", "--size", "200000",
                     "--repeat", "3", "--time-budget", "0.3", "--json", str(path), "--profile",
                     "--profile-seconds", "1", "--report", str(page)])
    assert code == 0
    return load(path), page, printed.getvalue().replace("\n", "")


@pytest.fixture(scope="module")
def rendered(measured) -> str:
    return report.render(measured[1])


def rows_of(html: str) -> dict[str, tuple[str, list[str]]]:
    """Case-table rows keyed by 'case title|implementation label', with their class."""
    out = {}
    for section in re.findall(r'<section id="[^"]+">\s*<h2>(.*?)</h2>(.*?)</section>', html, re.S):
        title, body = section
        page = Page(body)
        header = next((row for row in page.rows if row and row[0] == "#"), None)
        if header is None:
            continue
        for cells, cls in zip(page.rows, page.row_classes):
            if cells and cells[0].isdigit():
                out[f"{title}|{cells[1]}"] = (cls, dict(zip(header, cells)))
    return out


def ratio(text: str) -> float:
    return float(text.rstrip("x").replace(",", ""))


def test_report_names_every_implementation_with_speedups_from_the_json(measured, rendered):
    _, doc = measured
    html = rendered
    rows = rows_of(html)
    floors = doc["machine"]["bandwidth"]
    cases = analysis.cases(doc)
    assert len(cases) == 2
    for case in cases:
        assert case.ranked, "every sma implementation should pass and be timed"
        per_element = {analysis.label(r.result): r.result["median"] / r.result["elements"] for r in case.ranked}
        loop = min(t for row, t in zip(case.ranked, per_element.values()) if row.result["paradigm"] == "loop")
        library = min(t for row, t in zip(case.ranked, per_element.values()) if row.result["paradigm"] == "library")
        fastest = min(per_element, key=per_element.get)
        for row in case.ranked:
            label = analysis.label(row.result)
            cls, cells = rows[f"{case.title}|{label}"]
            assert cells["paradigm"] == row.result["paradigm"]
            assert ratio(cells["vs loop"]) == pytest.approx(loop / per_element[label], rel=0.01)
            assert ratio(cells["vs best library"]) == pytest.approx(library / per_element[label], rel=0.01)
            floor = fb_floors.floor_for(row.result, floors)
            assert floor["kind"] == "fresh output"  # sma returns a new array
            percent, kind = cells["% of floor"].split("%", 1)
            assert float(percent) == pytest.approx(100 * floor["seconds"] / row.result["median"], rel=0.06, abs=0.01)
            assert kind == fb_floors.describe_floor(floor)
            assert ("best" in cls) == (label == fastest)
    for result in doc["results"]:
        assert analysis.label(result) in html
    assert "Which implementation to use" in html and "Scaling with input size" in html
    assert doc["machine"]["cpu_model"] in html and doc["machine"]["git_commit"] in html


def test_report_is_self_contained(rendered):
    html = rendered
    page = Page(html)
    for tag, attrs in page.tags:
        for attribute in ("src", "href", "data", "srcset", "poster"):
            value = attrs.get(attribute)
            if value is None:
                continue
            if tag == "a":
                assert not re.match(r"^\w+://|^//", value), f"<a> leaves the file: {value}"
            else:
                assert value.startswith(("data:", "#")), f"<{tag} {attribute}> fetches {value[:80]}"
    assert not any(tag in ("script", "link", "iframe") for tag, _ in page.tags)
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", html)
    assert "default-src 'none'" in html


def test_hostile_names_are_escaped(measured, tmp_path):
    doc = copy.deepcopy(measured[1])
    doc["results"][0]["implementation"] = HOSTILE
    doc["results"][1]["status"], doc["results"][1]["reason"] = "wrong", HOSTILE
    doc["results"][2]["settings"] = {"processes": HOSTILE}
    doc["results"][3]["paradigm"] = HOSTILE
    path = tmp_path / "hostile.json"
    write(path, doc)
    html = report.render(load(path))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html
    assert "WRONG" in html


def test_unknown_schema_or_missing_fields_is_one_clear_error(measured, tmp_path, capsys):
    doc = json.loads(measured[0].read_text())
    future = tmp_path / "future.json"
    future.write_text(json.dumps({**doc, "schema_version": 99}))
    out = tmp_path / "never.html"
    assert main(["report", str(future), "-o", str(out)]) == 2
    assert "schema_version 99 is not supported" in capsys.readouterr().err
    assert not out.exists()
    del doc["results"][0]["median"]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(doc))
    assert main(["report", str(broken), "-o", str(out)]) == 2
    assert "results[0]: object missing required field median" in capsys.readouterr().err
    with pytest.raises(ResultsError, match=r"workloads\[0\]: object missing required field"):
        broken.write_text(json.dumps({**json.loads(measured[0].read_text()), "workloads": [{"rows": []}]}))
        load(broken)
    assert main(["report", str(measured[0]), str(measured[0]), str(measured[0])]) == 2


def test_bandwidth_is_measured_in_the_run(measured):
    bandwidth = measured[1]["machine"]["bandwidth"]
    assert bandwidth["copy_GBps"] > 0.1 and bandwidth["read_GBps"] > 0.1
    assert bandwidth["bytes"] >= 32 * 2**20
    # both floors, on one thread and on all the CPUs the run may use
    assert [floor["threads"] for floor in bandwidth["floors"]] == sorted({1, len(os.sched_getaffinity(0))})
    for floor in bandwidth["floors"]:
        assert 0 < floor["stream_s"] and 0 < floor["fresh_s"]
        assert floor["stream_GBps"] == pytest.approx(2 * bandwidth["bytes"] / floor["stream_s"] / 1e9)


def test_the_floor_of_a_row_follows_its_kernel_and_thread_count():
    floors = {"floors": [{"threads": 1, "stream_GBps": 20.0, "fresh_GBps": 10.0},
                         {"threads": 2, "stream_GBps": 30.0, "fresh_GBps": 20.0}]}
    ema = {"bytes_moved": 16e9, "output_bytes": 8e9, "settings": {}}
    assert fb_floors.floor_for(ema, floors) == {"kind": "fresh output", "threads": 1, "seconds": 1.6}
    on_two = fb_floors.floor_for({**ema, "settings": {"threads": 2}}, floors)
    assert on_two == {"kind": "fresh output", "threads": 2, "seconds": 0.8}
    assert fb_floors.floor_for({**ema, "settings": {"processes": 4}}, floors)["threads"] == 2
    trig = {"bytes_moved": 24e9, "output_bytes": 8e9, "settings": {}}  # a second input read at streaming speed
    assert fb_floors.floor_for(trig, floors)["seconds"] == pytest.approx(8e9 / 20e9 + 16e9 / 10e9)
    no_output = {"bytes_moved": 16e9, "settings": {}}
    assert fb_floors.floor_for(no_output, floors) == {"kind": "streaming", "threads": 1, "seconds": 0.8}
    assert fb_floors.floor_for(ema, {}) is None


def test_comparison_marks_significant_changes(measured, tmp_path):
    _, measured_doc = measured
    doc = copy.deepcopy(measured_doc)
    after = copy.deepcopy(doc)
    steady = [1.0, 1.01, 0.99, 1.02, 0.98]  # the real run's spread on a busy machine is not ours to test
    for index, factor in ((0, 3.0), (1, 1 / 3)):
        before_row, after_row = doc["results"][index], after["results"][index]
        before_row["times"] = [t * before_row["median"] for t in steady]
        after_row["times"] = [t * before_row["median"] * factor for t in steady]
        after_row["median"] = before_row["median"] * factor
        # the rounds too: a busy machine's real rounds can spread past 3x
        before_row["round_medians"] = [t * before_row["median"] for t in steady[:3]]
        after_row["round_medians"] = [m * factor for m in before_row["round_medians"]]
    slower, faster = after["results"][0], after["results"][1]
    path, after_path = tmp_path / "before.json", tmp_path / "after.json"
    write(path, doc)
    write(after_path, after)
    rows = {(r["case"], r["label"]): r for r in compare.compare_rows(doc, after)}
    case = analysis.case_title(slower)
    assert rows[(case, slower["implementation"])]["mark"] == "+"
    assert rows[(case, faster["implementation"])]["mark"] == "-"
    unchanged = [r for r in rows.values() if r["label"] not in (slower["implementation"], faster["implementation"])]
    assert all(r["mark"] == "" for r in unchanged)
    compared = [r for r in unchanged if r["ratio"] is not None]  # rows ok in both runs
    assert compared and all(r["ratio"] == pytest.approx(1.0) for r in compared)
    assert all(r["mde"] is None or r["mde"] >= 0.1 for r in compared)  # never below the factor's 10%
    out = tmp_path / "cmp.html"
    assert main(["report", str(path), str(after_path), "-o", str(out)]) == 0
    text = out.read_text()
    assert "1 slower, 1 faster" in text and "3" in text


def test_rounds_are_compared_between_processes_not_samples():
    def row(round_medians, spread=0.001):
        # Tight samples within each round: a per-sample test would call any two rounds different.
        times = [m * (1 + spread * k) for m in round_medians for k in (-1, 0, 1)]
        return {"status": "ok", "median": float(np.median(round_medians)), "round_medians": round_medians,
                "times": times}

    steady = row([10.0, 10.3, 9.8])
    one_slow_process = row([10.1, 10.4, 13.0])  # a process placed badly: not a change of the code
    p, mde = compare.rounds_test(steady, one_slow_process)
    assert p > compare.COMPARE_ALPHA and mde > 0.3  # and it says how little it could detect
    p, mde = compare.rounds_test(steady, row([13.0, 13.4, 12.9]))
    assert p < compare.COMPARE_ALPHA and mde < 0.1
    assert compare.min_detectable_effect(steady, row([10.1, 9.9, 10.2])) == pytest.approx(
        max(0.1, compare.rounds_test(steady, row([10.1, 9.9, 10.2]))[1]))
    # With one round, rows fall back to the samples: Mann-Whitney and the within-process CI.
    assert compare.rounds_test(row([10.0]), steady) is None


def test_settings_workloads_and_artifacts_render_generically(measured, tmp_path):
    doc = copy.deepcopy(measured[1])
    base = next(r for r in doc["results"] if r["implementation"] == "vectorized-cumsum")
    for processes, speedup in ((1, 1.0), (2, 1.8), (4, 3.1)):
        row = copy.deepcopy(base)
        row.update(implementation="pool", paradigm="multiprocessing", settings={"processes": processes},
                   median=base["median"] / speedup, times=[t / speedup for t in base["times"]])
        row["extra"] = {"bytes_pickled": 1234 * processes, "artifacts": {"task_graph": str(tmp_path / "gone.svg")}}
        doc["results"].append(row)
    image = tmp_path / "graph.svg"
    image.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>')
    doc["workloads"] = [{"name": "ticks", "summary": "tick pipeline", "status": "ok", "reason": "",
                         "params": {"ticks": 1000}, "rows": [{"label": "asyncio", "throughput": 51234.5}],
                         "units": {"throughput": "ticks/s"}, "notes": ["a note"],
                         "latency": {"asyncio": {"p50": 1e-4, "p95": 3e-4, "p99": 9e-4,
                                                 "samples": [1e-4, 2e-4, 3e-4, 9e-4]}},
                         "artifacts": {"dashboard": str(image)}},
                        {"name": "gpu", "summary": "needs a GPU", "status": "skipped", "reason": "no CUDA device",
                         "rows": []}]
    html = report.render(doc)
    assert "pool (processes=4)" in html and "Parallel scaling" in html and "vs 1 process" in html
    assert "bytes_pickled" in html and "file not found" in html
    assert "ticks/s" in html and "51,234" in html and "P99" in html and "a note" in html
    assert "data:image/svg+xml;base64," in html and "no CUDA device" in html


def test_run_profile_records_py_spy_memory_profiler_and_memray_outputs(profiled):
    doc, page, printed = profiled
    (result,) = doc["results"]
    artifacts = result["extra"]["artifacts"]
    cpu = Path(artifacts["cpu_flamegraph"]).read_text()
    assert cpu.lstrip().startswith("<?xml") and "ema_lfilter" in cpu, "py-spy should see the implementation"
    assert result["extra"][MEMORY_PEAK_KEY] > 0.5, "the 1.6 MB output must show in the peak"
    if "memray" not in unavailable_tools():
        assert "lfilter" in Path(artifacts["memory_flamegraph"]).read_text()
        assert Path(artifacts["memray_html"]).stat().st_size > 0
    assert doc["profiling"]["profiled"] == 1
    assert f"report: {page}" in printed
    html = page.read_text()
    assert "ema n=200,000" in html and "cpu_flamegraph" in html and "Memory peaks" in html


def test_py_spy_falls_back_to_launching_the_child_when_it_cannot_attach(monkeypatch, tmp_path):
    if unavailable_tools().keys() & {"py-spy", "memory_profiler"}:
        pytest.skip("py-spy and memory_profiler are needed (pip install 'factorbench[profile]')")

    @contextlib.contextmanager
    def not_python():  # a real process py-spy cannot read, as when ptrace is not allowed
        with subprocess.Popen(["sleep", "60"]) as sleeper:
            try:
                yield sleeper.pid
            finally:
                sleeper.kill()

    monkeypatch.setattr(profiling, "_serving", lambda job: not_python())
    monkeypatch.setattr(profiling, "unavailable_tools", lambda: {"memray": "skipped in this test"})
    outcome = profiling.profile("sma", "vectorized-cumsum", {"n": 200_000, "window": 20}, tmp_path, seconds=1)
    assert "py-spy could not attach" in outcome["notes"][0]
    assert "sma_cumsum" in Path(outcome["artifacts"]["cpu_flamegraph"]).read_text()
    assert outcome[MEMORY_PEAK_KEY] > 0.5


def test_profile_cli_rejects_unknown_choices(capsys):
    assert main(["profile", "sma", "no-such-implementation"]) == 2
    assert main(["profile", "no-such-kernel", "loop"]) == 2
    assert main(["profile", "sma", "loop", "--setting", "processes=2"]) == 2
    err = capsys.readouterr().err
    assert "no implementation 'no-such-implementation'" in err and "unknown kernel 'no-such-kernel'" in err
    assert "sma/loop has no setting processes; it has: none" in err


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium_without_console_errors(profiled, tmp_path):
    page = profiled[1]
    shot, console = screenshot(page, tmp_path)
    assert console == [], "\n".join(console)
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("L").getextrema()
    assert colours[1] - colours[0] > 100, "the screenshot is blank"


PROBE_OVERFLOW = """<script>
const cut = [];
for (const box of document.querySelectorAll("div.scroll, main, body")) {
  if (box.closest("details:not([open])")) continue;  // folded away: its metric dump scrolls when opened
  if (box.scrollWidth > box.clientWidth + 1) {
    const section = box.closest("section");
    cut.push(`${section ? section.id : box.tagName}: ${box.scrollWidth} px wide in ${box.clientWidth} px`);
  }
}
document.body.dataset.cut = JSON.stringify(cut);
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_no_table_of_the_report_is_cut_at_1400_px(measured, tmp_path):
    """Headless Chromium lays the report out 1400 px wide; a script measures every table's
    box (the page's policy, which forbids scripts, is left out of this copy only)."""
    page = tmp_path / "report.html"
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", report.render(measured[1]))
    page.write_text(html.replace("</body>", PROBE_OVERFLOW))
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2000", "--dump-dom",
                           page.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'data-cut="([^"]*)"', done.stdout)
    assert found, done.stderr[-2000:]
    assert json.loads(found.group(1).replace("&quot;", '"')) == []


def test_results_record_the_code_under_test_and_reports_show_it(measured, rendered, tmp_path):
    _, doc = measured
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    code = doc["code"]
    assert (code["package"], code["commit"]) == ("factorbench", head)  # run inside factorbench's own checkout
    assert code["version"] and code["factorbench_version"] and isinstance(code["dirty"], bool)
    shown = f"factorbench {code['version']} at {head[:10]}"
    assert shown in rendered.split("</header>")[0]
    after = {**copy.deepcopy(doc), "code": {**code, "package": "team-factors", "version": "0.2.0", "dirty": True}}
    before_path, after_path = tmp_path / "before.json", tmp_path / "after.json"
    write(before_path, doc)
    write(after_path, after)
    assert main(["report", str(before_path), str(after_path), "-o", str(tmp_path / "cmp.html")]) == 0
    page = (tmp_path / "cmp.html").read_text()
    assert shown in page and f"team-factors 0.2.0 at {head[:10]} (dirty)" in page
    text = markdown.comparison(doc, after)
    assert f"Code under test: {shown}" in text and f"team-factors 0.2.0 at {head[:10]} (dirty)" in text
