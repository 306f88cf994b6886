"""The runner: gating before timing, failures recorded, time budget, results schema."""

import json

import numpy as np
import pytest

from factorbench.kernels import kernel
from factorbench.measure import stats
from factorbench.measure.runner import RunOptions, plan, run, validate_options
from factorbench.registry import Paradigm, registry
from factorbench.results import analysis, schema

FAST = dict(repeat=3, min_sample_s=0.001, time_budget_s=2.0)


@pytest.fixture
def broken_paradigm(monkeypatch):
    """A real paradigm, registered for one test, whose implementations misbehave."""
    paradigm = Paradigm("broken", "misbehaving implementations", rank=999)

    @paradigm.implements("sma", name="raises")
    def sma_raises(x, window):
        raise MemoryError("out of memory on purpose")

    @paradigm.implements("sma", name="off-by-one")
    def sma_wrong(x, window):
        return kernel("sma").reference(x, window) + 1.0

    @paradigm.implements("sma", name="missing-lib", requires=["factorbench_no_such_module"])
    def sma_missing(x, window):
        return x

    monkeypatch.setitem(registry().paradigms, "broken", paradigm)
    return paradigm


def test_bad_implementations_are_recorded_and_the_run_goes_on(broken_paradigm, tmp_path):
    path = tmp_path / "out.json"
    # In-process: the paradigm is registered in this process only.
    doc = run(RunOptions(kernels=["sma"], paradigms=["broken", "vectorized"], sizes=[5000], in_process=True,
                         **FAST), json_path=str(path))
    by_name = {r["implementation"]: r for r in doc["results"]}
    assert by_name["raises"]["status"] == "failed"
    assert "MemoryError: out of memory on purpose" in by_name["raises"]["reason"]
    assert by_name["off-by-one"]["status"] == "wrong"
    assert by_name["off-by-one"]["max_error"] > 1e-3
    assert by_name["off-by-one"]["times"] == []  # never timed
    assert by_name["missing-lib"]["status"] == "skipped"
    assert by_name["missing-lib"]["reason"] == "factorbench_no_such_module is not installed"
    assert by_name["vectorized-cumsum"]["status"] == "ok"
    assert schema.load(path)["results"] == doc["results"]
    ranked = [row.result["implementation"] for case in analysis.cases(doc) for row in case.ranked]
    assert "off-by-one" not in ranked and "raises" not in ranked


def test_results_document_schema(tmp_path):
    path = tmp_path / "out.json"
    run(RunOptions(kernels=["ema"], paradigms=["vectorized"], sizes=[2000], **{**FAST, "rounds": 1}),
        json_path=str(path))
    doc = schema.load(path)
    assert doc["schema_version"] == schema.SCHEMA_VERSION
    machine = doc["machine"]
    for key in ("cpu_model", "logical_cores", "memory_bytes", "os", "python", "libraries", "threadpools",
                "thread_env", "git_commit"):
        assert key in machine
    assert machine["libraries"]["numpy"] == np.__version__
    (entry,) = doc["results"]
    assert entry["kernel"] == "ema" and entry["implementation"] == "vectorized"
    assert entry["params"] == {"n": 2000, "alpha": 0.1}
    assert entry["status"] == "ok" and len(entry["times"]) >= 3
    # Sampled until the median's CI was within 2% or the budget ran out, and says which.
    assert entry["stopped_by"] in ("precision", "budget", "max samples")
    assert entry["ci_low"] <= entry["median"] <= entry["ci_high"] and entry["cv"] > 0
    if entry["stopped_by"] == "precision":
        assert (entry["ci_high"] - entry["ci_low"]) / 2 <= 0.02 * entry["median"]
    assert entry["checked_at_size"] and entry["max_error"] < 1e-9
    assert entry["median"] == pytest.approx(float(np.median(entry["times"])))
    assert entry["elements"] == 2000 and entry["bytes_moved"] == 32_000
    assert entry["round_medians"] == [entry["median"]]


def test_rounds_are_separate_processes_and_their_spread_is_the_ci(tmp_path):
    lines: list[str] = []
    doc = run(RunOptions(kernels=["sma"], implementations=["bottleneck", "vectorized-cumsum"], sizes=[300_000],
                         **{**FAST, "rounds": 3}), json_path=str(tmp_path / "r.json"), log=lines.append)
    # Round by round over the implementations, each round in its own worker.
    assert lines == [f"measuring sma/{name}: 1 case(s), round {number} of 3, in a worker process"
                     for number in (1, 2, 3) for name in ("vectorized-cumsum", "bottleneck")]
    assert doc["machine"]["ci_method"] == stats.ROUNDS_CI_METHOD
    for entry in doc["results"]:
        medians = entry["round_medians"]
        assert entry["status"] == "ok" and len(medians) == 3
        assert entry["median"] == pytest.approx(float(np.median(medians)))
        assert len(entry["times"]) >= 3 * 3  # every round's samples
        assert (entry["ci_low"], entry["ci_high"]) == pytest.approx(stats.rounds_ci(medians))
        assert entry["ci_low"] < entry["median"] < entry["ci_high"]
        assert entry["checked_at_size"] and entry["cold_call_s"] is not None


def test_slow_implementation_is_measured_at_a_labelled_smaller_size():
    doc = run(RunOptions(kernels=["sma"], paradigms=["loop"], sizes=[2_000_000], repeat=3,
                         min_sample_s=0.001, time_budget_s=0.5))
    (entry,) = doc["results"]
    assert entry["status"] == "ok"
    assert entry["requested_params"]["n"] == 2_000_000
    assert 4000 <= entry["params"]["n"] < 2_000_000
    assert "to fit the 0.5 s time budget" in entry["reason"]
    assert entry["elements"] == entry["params"]["n"]


def test_plan_sweeps_variants_sizes_and_overrides():
    cases = plan(RunOptions(kernels=["row_sums", "sma"], sizes=[10, 20], params={"window": 5}))
    assert [(spec.name, params) for spec, params in cases] == [
        ("row_sums", {"n": 10, "order": "C"}), ("row_sums", {"n": 10, "order": "F"}),
        ("row_sums", {"n": 20, "order": "C"}), ("row_sums", {"n": 20, "order": "F"}),
        ("sma", {"n": 10, "window": 5}), ("sma", {"n": 20, "window": 5}),
    ]


@pytest.mark.parametrize("options, message", [
    (RunOptions(kernels=["sma"], sizes=[10], params={"window": 11}), "sma: window must be between 1 and 10"),
    (RunOptions(kernels=["sma"], params={"cols": 3}), "cols belong to none of the selected kernels"),
    (RunOptions(implementations=["nope"]), "unknown implementation 'nope'; choose from:"),
    (RunOptions(repeat=-1), "--repeat must be >= 1"),
    (RunOptions(time_budget_s=-1), "--time-budget must be > 0"),
])
def test_invalid_options_are_rejected_before_anything_runs(options, message):
    with pytest.raises(ValueError, match=message):
        validate_options(options)


def test_load_rejects_unknown_schema_and_missing_fields(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema_version": 99, "machine": {}, "options": {}, "results": []}))
    with pytest.raises(schema.ResultsError, match="schema_version 99 is not supported"):
        schema.load(path)
    path.write_text(json.dumps({"schema_version": 1, "machine": {}, "options": {}, "results": [{"kernel": "sma"}]}))
    with pytest.raises(schema.ResultsError, match=r"results\[0\]: object missing required field implementation"):
        schema.load(path)
    path.write_text("{not json")
    with pytest.raises(schema.ResultsError, match="not a readable JSON file"):
        schema.load(path)


def test_quick_defaults_belong_to_the_options_not_the_command_line():
    quick, full = RunOptions(quick=True), RunOptions()
    assert (quick.repeat, quick.min_sample_s, quick.time_budget_s) == (3, 0.01, 2.0)
    assert (full.repeat, full.min_sample_s, full.time_budget_s) == (7, 0.05, 10.0)
    assert RunOptions(quick=True, time_budget_s=10.0, repeat=5).time_budget_s == 10.0
    assert RunOptions(**quick.to_json()) == quick  # as a worker rebuilds them
