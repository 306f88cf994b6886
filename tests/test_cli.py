"""The factorbench command line, run as a user runs it (a real subprocess)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from factorbench.results import schema


def factorbench(*args, timeout=300, cwd=None):
    return subprocess.run([sys.executable, "-m", "factorbench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, env={**os.environ, "COLUMNS": "200"})


@pytest.mark.parametrize("args, message", [
    (["run", "--kernel", "nope"], "unknown kernel 'nope'; choose from: ema, gram_colsum, row_sums, sma, trig"),
    (["run", "--paradigm", "nope"], "unknown paradigm 'nope'; choose from: loop"),
    (["run", "--kernel", "sma", "--window", "0"], "argument --window: expected a positive integer, got '0'"),
    (["run", "--kernel", "sma", "--size", "100", "--window", "101"], "sma: window must be between 1 and 100"),
    (["run", "--kernel", "ema", "--alpha", "1.5"], "alpha must be a number with 0 < alpha <= 1, got 1.5"),
    (["run", "--kernel", "ema", "--alpha", "0"], "alpha must be a number with 0 < alpha <= 1, got 0.0"),
    (["run", "--size", "-5"], "argument --size: expected a positive integer, got '-5'"),
    (["run", "--size", "ten"], "argument --size: expected a positive integer, got 'ten'"),
    (["run", "--repeat", "x"], "argument --repeat: expected a positive integer, got 'x'"),
    (["run", "--time-budget", "soon"], "argument --time-budget: expected a number, got 'soon'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_user_mistakes_get_one_line_and_exit_2(args, message):
    done = factorbench(*args)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0]


def test_list_shows_the_grid():
    done = factorbench("list")
    assert done.returncode == 0, done.stderr
    for name in ("loop", "vectorized", "layout", "numexpr", "library", "sma", "gram_colsum", "bottleneck"):
        assert name in done.stdout


def test_run_prints_tables_and_writes_results(tmp_path):
    path = tmp_path / "results.json"
    done = factorbench("run", "--quick", "--kernel", "sma", "--kernel", "row_sums", "--size", "3000",
                       "--repeat", "3", "--time-budget", "1", "--json", str(path))
    assert done.returncode == 0, done.stderr
    for text in ("sma n=3,000 window=20", "row_sums n=3,000 order=C", "row_sums n=3,000 order=F",
                 "bottleneck", "vectorized-cumsum", "layout-matched", "vs loop", "results:"):
        assert text in done.stdout
    doc = schema.load(path)
    statuses = {(r["kernel"], r["implementation"], r["params"].get("order")): r["status"] for r in doc["results"]}
    assert statuses[("sma", "bottleneck", None)] == "ok"
    assert statuses[("row_sums", "layout-matched", "F")] == "ok"


def test_ctrl_c_keeps_the_results_measured_so_far(tmp_path):
    path = tmp_path / "results.json"
    proc = subprocess.Popen([sys.executable, "-m", "factorbench", "run", "--kernel", "sma", "--size",
                             "200000", "--time-budget", "20", "--json", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert path.exists(), "no result was written"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert len(json.loads(path.read_text())["results"]) >= 1
