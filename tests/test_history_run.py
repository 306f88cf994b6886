"""`factorbench history run` and the gate on a team's history from before it adopted
factorbench: a throw-away repository of a tiny package whose benchmarks live outside the
package (bench/, named in [tool.factorbench] plugins) and are applied to every commit's
build. One commit makes rolling_sum do 1.5x the work, a later one undoes it; the first
commit predates rolling_sum, so the plugin cannot load against its build."""

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed (apt-get install valgrind)"),
    pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                       reason="no C compiler for the callgrind helper"),
]

PYPROJECT = """[build-system]
requires = ["setuptools>=70"]
build-backend = "setuptools.build_meta"

[project]
name = "tiny-factors"
version = "{version}"
requires-python = ">=3.11"

[tool.setuptools]
packages = ["tinyfactors"]
"""

ADOPTED = """
[tool.factorbench]
# the team's benchmarks: outside the package, applied to every commit's build
plugins = ["bench/tiny_bench.py"]
"""

SCALE = '''"""Tiny factors: pure Python, so a change in work is a change in instructions."""


def scale(values, factor):
    return [value * factor for value in values]
'''

FAST = '''

def rolling_sum(values, window):
    """Sums over a sliding window, from one pass of running totals."""
    totals = [0.0]
    for value in values:
        totals.append(totals[-1] + value)
    return [totals[i + window] - totals[i] for i in range(len(values) - window + 1)]
'''

SLOW = FAST.replace('''    for value in values:
        totals.append(totals[-1] + value)
''', '''    for value in values:
        totals.append(totals[-1] + value)
    check = [0.0]
    for value in values:  # a second pass over the totals, for nothing
        check.append(check[-1] + value)
''')

HELPER = '''

def clip(values, low, high):
    return [min(max(value, low), high) for value in values]
'''

PLUGIN = '''"""The team's benchmarks of tinyfactors, outside the package: factorbench applies them to
each measured commit's build of tinyfactors."""

import numpy as np

from factorbench import Kernel, Paradigm, price_walk, require_int
from tinyfactors import rolling_sum


def reference(x, window):
    totals = np.concatenate(([0.0], np.cumsum(np.asarray(x, dtype=np.float64))))
    return totals[window:] - totals[:-window]


KERNEL = Kernel(
    name="rolling_sum", signature="rolling_sum(x, window) -> sums over each window", summary="rolling sum",
    defaults={"n": 20_000, "window": 10}, quick={"n": 3_000, "window": 10}, size_param="n",
    make_args=lambda p, rng: (price_walk(rng, p["n"]), p["window"]), reference=reference,
    check_inputs=lambda rng: [("n=50", (price_walk(rng, 50), 10)), ("n=1000", (price_walk(rng, 1000), 7))],
    elements=lambda p: p["n"], bytes_moved=lambda p: 16 * p["n"],
    validate=lambda p: (require_int(p, "n", 1), require_int(p, "window", 1)), rtol=1e-9,
)
PARADIGM = Paradigm("tiny", "tinyfactors, pure Python")


@PARADIGM.implements(KERNEL, name="tiny")
def tiny(x, window):
    return np.asarray(rolling_sum(x.tolist(), window))
'''

BENCHMARK = "kernels.rolling_sum__tiny.time_call(3000)"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


def cli(*args, cwd, env=None, timeout=900):
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    env.pop("FACTORBENCH_PLUGINS", None)
    env.pop("FACTORBENCH_HISTORY_STORE", None)
    return subprocess.run([sys.executable, "-m", "factorbench", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def commit(repo: Path, message: str, files: dict[str, str]) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """Twelve commits: c01 has no rolling_sum; c06 makes it do 1.5x the work, c10 undoes
    that; c12 adopts factorbench (bench/ plugin, `factorbench init`). The package is
    importable in the test's environment only from the work tree (PYTHONPATH), as an
    editable install would make it: the gate must never count that copy."""
    repo = tmp_path_factory.mktemp("team") / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    package = "tinyfactors/__init__.py"
    ids = {"c01": commit(repo, "c01: tinyfactors with scale", {"pyproject.toml": PYPROJECT.format(version="0.1.0"),
                                                               package: SCALE, "README.md": "tiny factors\n"})}
    ids["c02"] = commit(repo, "c02: rolling_sum", {package: SCALE + FAST})
    ids["c03"] = commit(repo, "c03: docs", {"README.md": "tiny factors, rolling sums\n"})
    ids["c04"] = commit(repo, "c04: clip", {package: SCALE + FAST + HELPER})
    ids["c05"] = commit(repo, "c05: version 0.2.0", {"pyproject.toml": PYPROJECT.format(version="0.2.0")})
    ids["c06"] = commit(repo, "c06: rolling_sum checks its totals (1.5x the work)", {package: SCALE + SLOW + HELPER})
    ids["c07"] = commit(repo, "c07: docs", {"README.md": "tiny factors, rolling sums, clipping\n"})
    ids["c08"] = commit(repo, "c08: scale docstring", {package: SCALE.replace('"""Tiny', '"""The tiny') + SLOW + HELPER})
    ids["c09"] = commit(repo, "c09: docs", {"README.md": "tiny factors: rolling sums, clipping\n"})
    ids["c10"] = commit(repo, "c10: rolling_sum in one pass again",
                        {package: SCALE.replace('"""Tiny', '"""The tiny') + FAST + HELPER})
    ids["c11"] = commit(repo, "c11: version 0.3.0", {"pyproject.toml": PYPROJECT.format(version="0.3.0")})
    (repo / "bench").mkdir()
    (repo / "bench" / "tiny_bench.py").write_text(PLUGIN)
    (repo / "pyproject.toml").write_text(PYPROJECT.format(version="0.3.0") + ADOPTED)
    env = {"PYTHONPATH": str(repo)}
    done = cli("init", cwd=repo, env=env)
    assert done.returncode == 0, done.stderr
    ids["c12"] = commit(repo, "c12: factorbench benchmarks", {})
    return repo, ids, env


def test_gate_counts_each_commits_build_before_adoption(team, tmp_path):
    repo, ids, env = team
    verdict = tmp_path / "gate.json"
    done = cli("gate", ids["c05"], ids["c06"], "--mode", "callgrind", "--json", str(verdict), cwd=repo, env=env)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    gate = json.loads(verdict.read_text())
    assert gate["regressions"] == [BENCHMARK]
    (row,) = gate["rows"]
    assert 1.3 < row["ratio"] < 1.8, row
    assert gate["code"]["base"] == {"package": "tiny-factors", "version": "0.2.0", "commit": ids["c05"],
                                    "dirty": False, "factorbench_version": gate["code"]["base"]["factorbench_version"]}
    assert gate["code"]["head"]["commit"] == ids["c06"]
    assert "code under test: tiny-factors 0.2.0 at" in done.stdout


def test_gate_from_a_commit_the_benchmarks_cannot_load_against(team, tmp_path):
    repo, ids, env = team
    verdict = tmp_path / "gate.json"
    done = cli("gate", ids["c01"], ids["c02"], "--mode", "callgrind", "--json", str(verdict), cwd=repo, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (row,) = json.loads(verdict.read_text())["rows"]
    assert row["status"] == "new"
    assert row["note"].startswith(f"not counted at {ids['c01'][:10]}: plugin tiny_bench.py could not be loaded "
                                  "against this commit's build: ImportError: cannot import name 'rolling_sum'"), row


def test_bisect_before_adoption_names_the_slowing_commit(team):
    repo, ids, env = team
    done = cli("bisect", ids["c02"], ids["c09"], "--bench", "rolling_sum__", cwd=repo, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (f"first regressed commit: {ids['c06'][:10]} c06: rolling_sum checks its totals (1.5x the work)"
            in done.stdout), done.stdout[-3000:]


@pytest.fixture(scope="module")
def history(team, tmp_path_factory):
    """`history run` over the repository's whole history, into a SQLite store."""
    repo, ids, env = team
    store = tmp_path_factory.mktemp("store") / "history.sqlite"
    done = cli("history", "run", ids["c12"], "--store", str(store), cwd=repo, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return store, done


def series(store_path):
    from factorbench.history.store import open_store

    with open_store(str(store_path)) as store:
        (key,) = store.keys()
        return key, store.series(*key)


def test_history_run_measures_every_commit_with_the_work_trees_benchmarks(team, history):
    _, ids, _ = team
    store, done = history
    key, points = series(store)
    assert key[0] == BENCHMARK and key[2:4] == ("callgrind", "instructions")
    by_commit = {point.commit: point for point in points}
    assert sorted(by_commit) == sorted(ids.values())
    first = by_commit[ids["c01"]]
    assert (first.status, first.value) == ("skipped", None)
    assert "ImportError: cannot import name 'rolling_sum'" in first.reason, first
    values = {name: by_commit[sha].value for name, sha in ids.items() if name != "c01"}
    fast = values["c02"]
    for name, value in values.items():
        slowed = "c06" <= name < "c10"
        assert 1.3 < value / fast < 1.8 if slowed else abs(value / fast - 1) < 0.01, (name, value, fast)
    latest = by_commit[ids["c11"]]
    assert (latest.package, latest.package_version, latest.subject, latest.dirty) == (
        "tiny-factors", "0.3.0", "c11: version 0.3.0", False)
    # one build per distinct build input: c03, c07 and c09 change only the README
    assert "12 commits, 9 distinct builds (" in done.stdout and ", 12 measured in " in done.stdout, done.stdout[-2000:]


def test_history_run_again_stores_nothing_new_and_steps_spread_over_the_range(team, history):
    repo, ids, env = team
    store, _ = history
    done = cli("history", "run", f"{ids['c01']}..{ids['c12']}", "--steps", "4", "--store", str(store), cwd=repo,
               env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    measured = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("[")]
    assert measured == [ids[name][:10] for name in ("c02", "c05", "c09", "c12")], done.stdout
    assert "4 commits, 4 distinct builds (0 built now), 4 measured in " in done.stdout, done.stdout[-2000:]
    assert "; 0 new points of 4 stored" in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize("args, message", [
    (["no-such..HEAD"], "error: unknown commit 'no-such'"),
    (["HEAD..HEAD"], "error: range 'HEAD..HEAD' holds no commits"),
    (["HEAD", "--mode", "wall"], "error: --mode 'wall' is not supported by history run"),
    (["HEAD", "--bench", "("], "error: --bench '(' is not a valid regular expression"),
])
def test_history_run_mistakes_are_one_line_and_exit_2(team, tmp_path, args, message):
    repo, _, env = team
    done = cli("history", "run", *args, "--store", str(tmp_path / "h.sqlite"), cwd=repo, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith(message) and len(done.stderr.strip().splitlines()) == 1, done.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_history_run_on_a_dask_cluster_stores_the_same_points(team, history, tmp_path):
    pytest.importorskip("distributed", reason="history run --scheduler needs factorbench[dask]")
    repo, ids, env = team
    store, _ = history
    state = tmp_path / "cluster.json"
    started = cli("cluster", "start", "--workers", "2", "--port", str(free_port()), "--state", str(state), cwd=repo)
    assert started.returncode == 0, started.stderr
    try:
        address = json.loads(state.read_text())["address"]
        farmed = tmp_path / "farmed.sqlite"
        done = cli("history", "run", ids["c12"], "--scheduler", address, "--store", str(farmed), cwd=repo, env=env)
    finally:
        assert cli("cluster", "stop", "--state", str(state), cwd=repo).returncode == 0
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"on {platform.node()}" in done.stdout

    def measured(path):
        return sorted((p.commit, p.value, p.status, p.reason, p.machine, p.package_version) for p in series(path)[1])

    assert measured(farmed) == measured(store)
    unreachable = cli("history", "run", ids["c12"], "--scheduler", f"tcp://127.0.0.1:{free_port()}",
                      "--store", str(tmp_path / "none.sqlite"), cwd=repo, env=env)
    assert unreachable.returncode == 2 and unreachable.stderr.startswith("error: Dask scheduler tcp://127.0.0.1:"), (
        unreachable.stderr)


def changes(store, *args, cwd, env):
    out = Path(store).with_suffix(f".{len(args)}.json")
    done = cli("history", "changes", "--store", str(store), "--json", str(out), *args, cwd=cwd, env=env)
    found = json.loads(out.read_text()) if out.exists() else None
    return done, found


def test_history_changes_finds_the_slowdown_and_its_undoing_at_their_commits(team, history):
    repo, ids, env = team
    store, _ = history
    done, found = changes(store, cwd=repo, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [(c["previous_commit"], c["commit"], c["regression"]) for c in found] == [
        (ids["c05"], ids["c06"], True), (ids["c09"], ids["c10"], False)], found
    assert 0.3 < found[0]["magnitude"] < 0.8 and -0.45 < found[1]["magnitude"] < -0.2, found
    # CI after the undoing: nothing newer than c09 regressed
    done, _ = changes(store, "--fail-on", "regression", "--since", ids["c09"], cwd=repo, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_a_regression_not_undone_fails_and_bisect_narrows_its_unmeasured_range(team, tmp_path):
    """Three runs leave c05 and c06 unmeasured: the change point's range is c04..c07 until
    --bisect names c06; the regression fails CI until c10 undoes it."""
    repo, ids, env = team
    store = tmp_path / "partial.sqlite"
    for span in (f"{ids['c01']}..{ids['c04']}", f"{ids['c06']}..{ids['c09']}"):
        done = cli("history", "run", span, "--store", str(store), cwd=repo, env=env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    done, found = changes(store, "--fail-on", "regression", "--bisect", cwd=repo, env=env)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    (change,) = found
    assert (change["previous_commit"], change["commit"], change["regression"]) == (ids["c04"], ids["c07"], True)
    assert change["narrowed_to"] == ids["c06"], change
    assert f"first regressed commit: {ids['c06'][:10]} c06: rolling_sum checks its totals" in change["bisect"]
    done = cli("history", "run", f"{ids['c09']}..{ids['c12']}", "--store", str(store), cwd=repo, env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    done, found = changes(store, "--fail-on", "regression", "--since", ids["c09"], cwd=repo, env=env)
    assert done.returncode == 0 and [c["commit"] for c in found] == [ids["c10"]], done.stdout[-3000:]
