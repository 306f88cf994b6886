"""The correctness matrix: our implementations pass every input class; the matrix itself
tells pass, wrong (with the first bad index) and raises apart; the CLI, results and report
carry it."""

import json
import subprocess
import sys

import numpy as np
import pytest

import factorbench as fb
from factorbench.measure.matrix import CORE, class_names, failing, matrix_settings, profile
from factorbench.registry import Paradigm


@pytest.mark.parametrize("kernel", fb.kernels())
def test_every_one_of_our_implementations_passes_every_input_class(kernel):
    ours = [impl for impl in fb.implementations(kernel) if impl.paradigm != "library" and impl.available]
    assert ours
    profiles = [profile(impl, 0, matrix_settings(impl.settings)) for impl in ours]
    for p in profiles:
        assert [cell.input_class for cell in p.cells] == class_names(kernel)
    problems = [f"{p.implementation} x {cell.input_class} ({cell.case}): {cell.reason}"
                for p in failing(profiles) for cell in p.failures]
    assert not problems, "\n".join(problems)


def one_off(kernel, func):
    paradigm = Paradigm("test", "matrix self-test", rank=999)
    paradigm.implements(kernel)(func)
    return paradigm.implementations[0]


def test_a_deviation_is_wrong_with_its_error_and_first_bad_index_and_a_crash_raises():
    def cumsum_without_inf_care(x, window):
        x = np.asarray(x, dtype=np.float64)
        total = np.concatenate(([0.0], np.cumsum(x)))
        return (total[window:] - total[:-window]) / window

    cells = {c.input_class: c for c in profile(one_off("sma", cumsum_without_inf_care), classes=["+inf", "empty"]).cells}
    assert cells["+inf"].outcome == "wrong" and cells["+inf"].case == "first"
    assert cells["+inf"].first_bad_index == 1  # window 0 holds the inf; window 1 is finite, here NaN
    assert "NaN pattern differs" in cells["+inf"].reason
    assert cells["empty"].outcome == "wrong" and "expected ValueError" in cells["empty"].reason

    def crashes(x, window):
        raise ZeroDivisionError("boom")

    crashed = profile(one_off("sma", crashes), classes=["dtypes", "too short"]).cells
    assert [c.outcome for c in crashed] == ["raises", "raises"]
    assert crashed[0].exception == "ZeroDivisionError" and crashed[0].message == "boom"
    assert "expected ValueError: window must be between 1 and len(x)" in crashed[1].reason


def test_library_deviations_are_findings_not_failures():
    bottleneck = fb.implementation("sma", "bottleneck")
    if not bottleneck.available:
        pytest.skip(bottleneck.reason)
    p = profile(bottleneck, classes=[CORE, "+inf"])
    assert not p.ours and p.cells[0].outcome == "pass"  # still timed
    assert p.cells[1].outcome == "wrong"  # every window after an inf is NaN
    assert failing([p]) == []


def test_check_command_prints_the_matrix_writes_json_and_exits_by_our_implementations(tmp_path):
    out = tmp_path / "matrix.json"
    done = subprocess.run([sys.executable, "-m", "factorbench", "check", "--kernel", "sma", "--paradigm", "library",
                           "--paradigm", "vectorized", "--json", str(out)], capture_output=True, text=True,
                          env={"COLUMNS": "100", "PATH": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "vectorized-cumsum" in done.stdout and "bottleneck (library) × +inf" in done.stdout
    assert max(map(len, done.stdout.splitlines())) <= 100
    saved = json.loads(out.read_text())
    assert {p["implementation"] for p in saved["profiles"]} >= {"vectorized-cumsum", "bottleneck"}
    bad = subprocess.run([sys.executable, "-m", "factorbench", "check", "--kernel", "nope"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "unknown kernel 'nope'" in bad.stderr and "Traceback" not in bad.stderr


def test_a_run_carries_the_matrix_and_the_report_shows_it(tmp_path):
    from factorbench.measure.runner import RunOptions, run
    from factorbench.report.html import write_report
    from factorbench.results import schema

    path = tmp_path / "results.json"
    run(RunOptions(kernels=["sma"], implementations=["vectorized-cumsum", "bottleneck"], quick=True, repeat=3,
                   min_sample_s=0.005, time_budget_s=0.3, workloads=[]), json_path=str(path))
    doc = schema.load(path)
    by_name = {p["implementation"]: p for p in doc["correctness"]}
    assert set(by_name) == {"vectorized-cumsum", "bottleneck"}
    assert all(cell["outcome"] == "pass" for cell in by_name["vectorized-cumsum"]["cells"])
    assert {r["status"] for r in doc["results"]} == {"ok"}  # the deviating baseline is still timed
    html = write_report([str(path)], str(tmp_path / "report.html")).read_text()
    assert 'id="correctness"' in html and "NaN pattern differs" in html
    older = json.loads(path.read_text())
    del older["correctness"]
    path.write_text(json.dumps(older))
    assert schema.load(path)["correctness"] == []
