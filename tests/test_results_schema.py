"""The typed results schema: one-line errors for bad files, and the published JSON Schema."""

import json
import shutil
import subprocess
import sys

import pytest

from factorbench.measure.runner import RunOptions, run
from factorbench.results import schema


@pytest.fixture(scope="module")
def results_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("schema") / "results.json"
    run(RunOptions(kernels=["sma"], implementations=["vectorized-cumsum", "vectorized-convolve", "bottleneck"],
                   quick=True, repeat=3, min_sample_s=0.005, time_budget_s=0.5, workloads=[]), json_path=str(path))
    return path


def test_published_json_schema_is_the_one_the_structs_give():
    assert json.loads(schema.SCHEMA_FILE.read_text()) == schema.json_schema(), (
        "results.schema.json is stale: regenerate it from factorbench.results.schema.json_schema()")


@pytest.mark.skipif(shutil.which("check-jsonschema") is None and
                    not (shutil.which("check-jsonschema", path=str(sys.prefix) + "/bin")),
                    reason="check-jsonschema is not installed (pip install -e '.[dev]')")
def test_a_real_results_file_validates_against_the_published_schema(results_file):
    program = shutil.which("check-jsonschema", path=str(sys.prefix) + "/bin") or "check-jsonschema"
    done = subprocess.run([program, "--schemafile", str(schema.SCHEMA_FILE), str(results_file)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    broken = json.loads(results_file.read_text())
    broken["results"][0]["elements"] = "5000"
    bad = results_file.with_name("bad.json")
    bad.write_text(json.dumps(broken))
    done = subprocess.run([program, "--schemafile", str(schema.SCHEMA_FILE), str(bad)], capture_output=True, text=True)
    assert done.returncode == 1 and "elements" in done.stdout


@pytest.mark.parametrize(("change", "message"), [
    (lambda doc: doc["results"][0].update(elements="5000"), "results[0].elements: expected int | null, got str"),
    (lambda doc: doc["results"][1].update(times=["fast"]), "results[1].times[0]: expected float, got str"),
    (lambda doc: doc["results"][0].pop("status"), "results[0]: object missing required field status"),
    (lambda doc: doc["results"][0].update(status="great"), "results[0].status: invalid enum value 'great' "
                                                            "(allowed: ok, wrong, failed, skipped, timeout, crashed)"),
    (lambda doc: doc.update(machine=[]), "machine: expected object, got array"),
])
def test_report_on_a_wrongly_typed_field_is_one_line_and_exit_2(results_file, tmp_path, change, message):
    doc = json.loads(results_file.read_text())
    change(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    done = subprocess.run([sys.executable, "-m", "factorbench", "report", str(bad), "-o", str(tmp_path / "r.html")],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: {bad}: {message}"
    assert "Traceback" not in done.stderr and not (tmp_path / "r.html").exists()


def test_fields_beyond_the_schema_are_kept(results_file, tmp_path):
    doc = json.loads(results_file.read_text())
    doc["results"][0]["extra"]["from_a_newer_writer"] = [1, 2]
    doc["workloads"] = [{"name": "w", "status": "ok", "rows": [], "latency": {"p50": 0.1}}]
    path = tmp_path / "newer.json"
    path.write_text(json.dumps(doc))
    loaded = schema.load(path)
    assert loaded["results"][0]["extra"]["from_a_newer_writer"] == [1, 2]
    assert loaded["workloads"][0]["latency"] == {"p50": 0.1}


def test_version_1_files_still_load(tmp_path):
    row = {"kernel": "sma", "implementation": "loop", "paradigm": "loop", "params": {"n": 10}, "status": "ok",
           "reason": "", "times": [1.0, 1.1, 0.9], "median": 1.0}
    path = tmp_path / "v1.json"
    path.write_text(json.dumps({"schema_version": 1, "machine": {}, "options": {}, "results": [row]}))
    assert schema.load(path)["results"] == [row]
