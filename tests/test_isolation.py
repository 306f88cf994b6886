"""Isolated workers with real faulty implementations (tests/plugins/fb_faulty_paradigm.py):
a run over them and two good implementations ends in bounded time, records each status,
ranks only the good ones, writes the report and leaves no process or segment behind."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from factorbench.results import analysis, schema

PLUGINS = Path(__file__).with_name("plugins")
sys.path.insert(0, str(PLUGINS))
import fb_faulty_paradigm as faulty  # noqa: E402

FAULTY = ["segfaults", "hangs", "raises", "wrong-when-large", "scribbles-input", "child-then-hangs"]
GOOD = ["bottleneck", "vectorized-cumsum"]
SMALL, LARGE = 50_000, 300_000
TIMEOUT_S = 4


def factorbench(*args, timeout=240):
    env = {**os.environ, "COLUMNS": "200", "FACTORBENCH_PLUGINS": "fb_faulty_paradigm",
           "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "factorbench", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def leftovers() -> tuple[list, list]:
    children = [p.pid for p in psutil.process_iter(["cmdline"])
                if faulty.CHILD_MARKER in " ".join(p.info["cmdline"] or [])]
    segments = [name for name in os.listdir("/dev/shm") if name.startswith(faulty.SHM_PREFIX)]
    return children, segments


def test_faulty_implementations_are_recorded_and_only_good_ones_ranked(tmp_path):
    path, report = tmp_path / "results.json", tmp_path / "report.html"
    picks = [arg for name in FAULTY + GOOD for arg in ("--implementation", name)]
    started = time.monotonic()
    done = factorbench("run", "--quick", "--kernel", "sma", "--size", f"{SMALL},{LARGE}", *picks,
                       "--repeat", "3", "--time-budget", "0.3", "--timeout", str(TIMEOUT_S),
                       "--json", str(path), "--report", str(report))
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    assert elapsed < 180
    doc = schema.load(path)
    status = {(r["implementation"], (r["requested_params"] or r["params"])["n"]): r for r in doc["results"]}
    for name in FAULTY:
        if name != "raises":
            assert status[(name, SMALL)]["status"] == "ok", status[(name, SMALL)]
    assert status[("segfaults", LARGE)]["status"] == "crashed"
    assert "SIGSEGV" in status[("segfaults", LARGE)]["reason"]
    # The stderr tail: faulthandler's report, innermost frame first.
    assert "Fatal Python error: Segmentation fault" in status[("segfaults", LARGE)]["reason"]
    assert "fb_faulty_paradigm.py" in status[("segfaults", LARGE)]["reason"]
    for name in ("hangs", "child-then-hangs"):
        row = status[(name, LARGE)]
        assert row["status"] == "timeout" and f"{TIMEOUT_S:g} s deadline" in row["reason"]
        assert TIMEOUT_S * 0.9 <= row["elapsed_s"] < TIMEOUT_S * 3
    assert {status[("raises", n)]["status"] for n in (SMALL, LARGE)} == {"failed"}
    wrong = status[("wrong-when-large", LARGE)]
    assert wrong["status"] == "wrong" and wrong["max_error"] > 1e-6 and "at this size" in wrong["reason"]
    scribbled = status[("scribbles-input", LARGE)]
    assert scribbled["status"] == "wrong" and "modified its input" in scribbled["reason"]
    for name in GOOD:
        for n in (SMALL, LARGE):
            row = status[(name, n)]
            assert row["status"] == "ok" and row["checked_at_size"] and row["max_error"] < 1e-9
    for case in analysis.cases(doc):
        assert {row.result["implementation"] for row in case.ranked} <= set(GOOD) | set(FAULTY) - {"raises"}
        if LARGE in case.params.values():
            assert {row.result["implementation"] for row in case.ranked} == set(GOOD)
    assert report.exists() and "segfaults" in report.read_text()
    assert "measuring sma/hangs" in done.stderr  # a plain line per implementation
    assert "CRASHED: sma n=300,000 window=20 segfaults" in done.stdout
    assert leftovers() == ([], [])


def test_strict_exits_1_on_a_problem_row_and_in_process_still_works(tmp_path):
    path = tmp_path / "results.json"
    args = ("run", "--quick", "--kernel", "sma", "--size", str(SMALL), "--implementation", "raises",
            "--implementation", "bottleneck", "--time-budget", "0.2", "--json", str(path))
    assert factorbench(*args, "--strict").returncode == 1
    done = factorbench(*args, "--in-process")
    assert done.returncode == 0, done.stderr[-2000:]
    doc = schema.load(path)
    assert doc["machine"]["isolation"] == "in-process"
    assert {r["implementation"]: r["status"] for r in doc["results"]} == {"raises": "failed", "bottleneck": "ok"}
