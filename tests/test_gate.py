"""The regression gate and the asv suite: comparison logic on real callgrind counts, the
gate's command-line errors, and the suite generated from the registry."""

import io
import os
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from benchmarks import figures, kernels, suite
from factorbench.registry import Paradigm
from factorbench.regress import gate
from factorbench.regress.gate import GateError, Verdict, callgrind_helper, compare_counts, parse_callgrind_dumps, report
from factorbench.report import junit, markdown

REPO = Path(__file__).resolve().parents[1]

COUNTED_SCRIPT = """
import ctypes, sys
helper = ctypes.CDLL(sys.argv[1])
helper.fb_count_stop.argtypes = [ctypes.c_char_p]
def region(label, n):
    helper.fb_count_start()
    sum(range(n))
    helper.fb_count_stop(label.encode())
sum(range(10))
region("small", 10_000)
region("large", 20_000)
region("again", 10_000)
"""


@pytest.fixture(scope="module")
def helper(tmp_path_factory):
    try:
        return callgrind_helper(tmp_path_factory.mktemp("callgrind"))
    except GateError as exc:
        pytest.skip(str(exc))


def count(helper, folder):
    folder.mkdir()
    done = subprocess.run(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                           f"--callgrind-out-file={folder}/callgrind.out.%p", sys.executable, "-c", COUNTED_SCRIPT,
                           str(helper)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    assert done.returncode == 0, done.stderr[-2000:]
    return parse_callgrind_dumps(folder, "callgrind.out.")


@pytest.fixture(scope="module")
def two_counts(helper, tmp_path_factory):
    """The script counted in two separate valgrind runs."""
    folder = tmp_path_factory.mktemp("counts")
    return count(helper, folder / "one"), count(helper, folder / "two")


def entry(count_or_status, reason=""):
    if isinstance(count_or_status, str):
        return {"status": count_or_status, "reason": reason}
    return {"status": "ok", "count": count_or_status}


def test_callgrind_counts_only_the_region_and_repeats_exactly(two_counts):
    first, second = two_counts
    assert set(first) == {"small", "large", "again"}
    assert 1.8 < first["large"] / first["small"] < 2.2  # twice the loop, without start-up or imports
    assert first["small"] < 5_000_000
    for label in first:
        assert abs(second[label] - first[label]) <= 0.001 * first[label]
    assert abs(first["again"] - first["small"]) <= 0.001 * first["small"]


def test_real_counts_gate_on_the_threshold(two_counts):
    counts = two_counts[0]
    before = {"kernels.a.time_call(1)": entry(counts["small"])}
    doubled = compare_counts(before, {"kernels.a.time_call(1)": entry(counts["large"])}, threshold_pct=2.0)
    assert doubled[0].status == "regressed" and 1.8 < doubled[0].ratio < 2.2
    same = compare_counts(before, {"kernels.a.time_call(1)": entry(counts["again"])}, threshold_pct=2.0)
    assert same[0].status == "unchanged"
    tolerant = compare_counts(before, {"kernels.a.time_call(1)": entry(counts["large"])}, threshold_pct=150.0)
    assert tolerant[0].status == "unchanged"
    faster = compare_counts({"kernels.a.time_call(1)": entry(counts["large"])},
                            {"kernels.a.time_call(1)": entry(counts["small"])}, threshold_pct=2.0)
    assert faster[0].status == "improved"


def test_statuses_other_than_a_count():
    before = {"kept": entry(100), "breaks": entry(100), "mends": entry("failed", "boom"), "vanishes": entry(100),
              "skips": entry(100), "both broken": entry("failed", "x"), "turns wrong": entry(100),
              "wrong at both": entry("wrong", "off at index 3"), "harness at base": entry("error", "no answer"),
              "harness at head": entry(100)}
    after = {"kept": entry(101), "breaks": entry("failed", "AssertionError: wrong"), "mends": entry(100),
             "skips": entry("skipped", "unavailable: no GPU"), "arrives": entry(50), "arrives broken": entry("failed"),
             "both broken": entry("failed", "x"), "turns wrong": entry("wrong", "off at index 7"),
             "wrong at both": entry("wrong", "off at index 3"), "harness at base": entry(100),
             "harness at head": entry("error", "ValueError: no answer")}
    rows = {row.benchmark: row for row in compare_counts(before, after, threshold_pct=2.0)}
    assert {name: row.status for name, row in rows.items()} == {
        "kept": "unchanged", "breaks": "failed", "mends": "fixed", "vanishes": "gone", "skips": "skipped",
        "arrives": "new", "arrives broken": "failed", "both broken": "not gated", "turns wrong": "wrong",
        "wrong at both": "not gated", "harness at base": "error", "harness at head": "error"}
    assert rows["breaks"].note == "AssertionError: wrong"
    assert rows["skips"].note == "unavailable: no GPU"
    assert rows["wrong at both"].note == "wrong at both commits: off at index 3"
    assert rows["harness at base"].note == "the harness could not measure it at base: no answer"
    # a failure of the harness at base never reads as a benchmark the change fixed
    assert not any(row.status == "fixed" for name, row in rows.items() if name.startswith("harness"))


def test_benchmarks_wrong_at_both_commits_are_named_in_every_output(tmp_path):
    """Not gated is not silent: the terminal, Markdown and JUnit outputs each name the
    benchmark wrong at both commits beside the one that turned wrong (which fails)."""
    before = {"kernels.sma__team_numpy.time_call(32000)": entry("wrong", "case 'n=7': value 1.0 vs reference 2.0"),
              "kernels.zscore__team_numpy.time_call(32000)": entry(100)}
    after = {"kernels.sma__team_numpy.time_call(32000)": entry("wrong", "case 'n=7': value 1.0 vs reference 2.0"),
             "kernels.zscore__team_numpy.time_call(32000)": entry("wrong", "at this size: value 3.0 vs reference 2.0")}
    verdict = Verdict("callgrind", "a" * 40, "b" * 40, "main", "HEAD", "rule", compare_counts(before, after, 2.0))
    console = Console(file=io.StringIO(), width=80)
    assert report(verdict, console) == 1
    terminal = console.file.getvalue()
    assert verdict.regressions == ["kernels.zscore__team_numpy.time_call(32000)"]
    assert ("NOT GATED, wrong or failing at both commits: 1 benchmark(s): "
            "kernels.sma__team_numpy.time_call(32000)") in terminal
    assert "REGRESSION in 1 benchmark(s): kernels.zscore__team_numpy.time_call(32000)" in terminal
    assert "2 benchmarks compared: 1 not gated, 1 wrong" in terminal
    summary = markdown.gate(verdict.to_dict())
    assert "| ❌ wrong | `kernels.zscore__team_numpy.time_call(32000)` |" in summary
    assert "| ⚠️ not gated | `kernels.sma__team_numpy.time_call(32000)` |" in summary
    cases = {case.get("name"): case for case in ET.parse(junit.write(verdict.to_dict(), tmp_path / "g.xml")).iter(
        "testcase")}
    assert cases["zscore__team_numpy.time_call(32000)"].find("failure").get("type") == "wrong"
    ungated = cases["sma__team_numpy.time_call(32000)"]
    assert ungated.find("failure") is None and ungated.find("system-out").text.startswith("not gated: ")


def gate_cli(*args, cwd=REPO, env=None):
    return subprocess.run([sys.executable, "-m", "factorbench", "gate", *args], capture_output=True, text=True,
                          cwd=cwd, env=env or {**os.environ, "COLUMNS": "200"}, timeout=60)


@pytest.mark.parametrize("args, message", [
    (["no-such-commit", "HEAD"], "unknown commit 'no-such-commit'"),
    (["HEAD", "HEAD~999999"], "unknown commit 'HEAD~999999'"),
    (["HEAD", "HEAD", "--bench", "(sma"], "--bench '(sma' is not a valid regular expression"),
    (["HEAD", "HEAD", "--factor", "0.9"], "--factor must be greater than 1, got 0.9"),
    (["HEAD", "HEAD", "--threshold", "-1"], "--threshold must be a positive percentage"),
    (["HEAD", "HEAD", "--mode", "cpu"], "argument --mode: invalid choice: 'cpu'"),
    (["HEAD"], "the following arguments are required: HEAD"),
])
def test_gate_mistakes_get_one_line_and_exit_2(args, message):
    done = gate_cli(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_gate_outside_a_checkout_says_where_to_run(tmp_path):
    done = gate_cli("HEAD~1", "HEAD", cwd=tmp_path)
    assert done.returncode == 2
    assert "run the gate inside a git repository with asv.conf.json and benchmarks/" in done.stderr
    assert "`factorbench init` set up" in done.stderr


def test_callgrind_mode_without_valgrind_is_one_line(tmp_path):
    only_git = tmp_path / "bin"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git"))
    done = gate_cli("HEAD", "HEAD", "--mode", "callgrind", env={**os.environ, "PATH": str(only_git)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: valgrind is not installed (Debian: apt-get install valgrind); --mode callgrind needs it"]


# ---------------------------------------------------------------- the asv suite

def discovered():
    from asv_runner.discovery import disc_benchmarks

    return {benchmark.name: benchmark for benchmark in disc_benchmarks(str(REPO / "benchmarks"))}


def test_suite_has_a_time_benchmark_for_every_registry_case():
    names = discovered()
    for case in suite.benchmarks():
        benchmark = names[f"kernels.{case.name}.time_call"]
        assert benchmark.version == case.version
        assert benchmark.param_names == [case.spec.size_param, *case.spec.variants]
        sizes, *variants = benchmark.params
        assert len(sizes) == 2 and all(len(v) > 1 for v in variants)
        memory_heavy = f"kernels.{case.name}.peakmem_call" in names
        assert memory_heavy == suite.is_memory_heavy(case.spec)
        assert (f"kernels.{case.name}.track_peak_allocated" in names) == memory_heavy
        if case.impl.paradigm != "loop":
            assert f"kernels.{case.name}.track_time_vs_loop" in names
    assert any(name.endswith(".track_numexpr_threads") for name in names)  # from numexpr's metrics()


def test_importing_the_suite_starts_no_resource_tracker():
    # asv.conf.json forks every benchmark from a server that imported the suite: a tracker
    # started there would be shared by all of them and killed with the server, so the
    # shared memory and semaphores of every pool benchmark would stay in /dev/shm.
    code = ("import benchmarks.kernels, benchmarks.figures\n"
            "from multiprocessing import resource_tracker\n"
            "assert resource_tracker._resource_tracker._pid is None, 'a resource tracker was started'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=600)


def test_unavailable_registry_implementations_skip_in_setup():
    for case in suite.benchmarks():
        if not case.impl.available:
            instance = getattr(kernels, case.name)()
            with pytest.raises(NotImplementedError, match="unavailable"):
                instance.setup(*(values[0] for values in case.params))


def fake_case(body, **paradigm_options):
    paradigm = Paradigm("test-fake", "made in a test", rank=999, **paradigm_options)
    paradigm.implements("sma", name="fake")(body)
    return suite.Benchmark(paradigm.implementations[0])


def test_unavailable_implementation_raises_not_implemented_so_asv_skips():
    case = fake_case(lambda x, window: x, requires=["factorbench_no_such_module"])
    instance = kernels.suite_class(case)()
    with pytest.raises(NotImplementedError, match="factorbench_no_such_module is not installed"):
        instance.setup(*case.params[0][:1])


def test_wrong_implementation_fails_setup_loudly():
    case = fake_case(lambda x, window: np.convolve(x, np.full(window, 1.0 / window), mode="valid") * 1.001)
    instance = kernels.suite_class(case)()
    with pytest.raises(AssertionError, match="sma/fake failed the correctness check"):
        instance.setup(case.params[0][0])


def test_version_follows_the_implementation_source():
    def first(x, window):
        return x

    def second(x, window):
        return x + 0

    assert fake_case(first).version != fake_case(second).version
    assert fake_case(first).version == fake_case(first).version


def test_one_benchmark_runs_through_asv_runner():
    from asv_runner.discovery import get_benchmark_from_name

    benchmark = get_benchmark_from_name(str(REPO / "benchmarks"), "kernels.sma__bottleneck.time_call-0")
    assert benchmark.do_setup() is False
    result = benchmark.do_run()
    assert result["samples"] and all(0 < sample < 0.1 for sample in result["samples"])
    assert benchmark._current_params == (32000,)


def test_a_case_missing_from_the_commit_is_skipped_not_failed():
    from asv_runner.discovery import get_benchmark_from_name

    stand_in = get_benchmark_from_name(str(REPO / "benchmarks"), "kernels.row_sums__added_later.time_call-3")
    assert stand_in._current_params == (2000, "F")
    assert stand_in.do_setup() is True  # asv's "skipped"


def test_metrics_figures_are_tracked_from_a_real_call():
    names = discovered()
    for case_name, keys in figures.FIGURE_CASES.items():
        for key in keys:
            assert f"figures.{case_name}.track_{suite.identifier(key)}" in names
    import numexpr

    measured = figures.measure_figures({"trig__numexpr"})
    track = figures.trig__numexpr()
    assert track.track_numexpr_threads(measured, 1000) == numexpr.get_num_threads()
    assert names["figures.trig__numexpr.track_numexpr_threads"].setup_cache_key is not None


def test_peak_allocated_sees_temporaries():
    def allocated(name):
        instance = getattr(kernels, name)()
        instance.setup(1000)
        return instance.track_peak_allocated(1000)

    output = 1000 * 1000 * 8
    assert allocated("trig__numexpr") < 1.1 * output  # numexpr writes the output only
    assert allocated("trig__vectorized") >= 2 * output  # the output and a temporary


def test_code_under_test_of_a_commit_without_building_it():
    """What a wall-mode verdict records for each commit: the commit's own pyproject version."""
    head = gate.resolve(REPO, "HEAD")
    code = gate.commit_code(REPO, head)
    assert (code.package, code.commit, code.dirty) == ("factorbench", head, False)
    committed = subprocess.run(["git", "-C", str(REPO), "show", f"{head}:pyproject.toml"], capture_output=True,
                               text=True, check=True).stdout
    assert code.version == tomllib.loads(committed)["project"]["version"]
    assert code.factorbench_version
