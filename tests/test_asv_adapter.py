"""The asv adapter on a real asv results directory.

A throw-away git repository holds a tiny asv project (environment "existing": the
interpreter running the tests, nothing to build) with two benchmarks; ``asv run`` records
two commits, the second with one case slowed down, one broken and one changed figure.
Reading them back through factorbench.regress.asv_adapter and the gate's compare_asv
checks what asv stores (values, samples, units, names with parameters, failed as None,
skipped as NaN) and asv's own verdict, so an asv release that moves the private helpers
the adapter relies on fails here, not in a pull request's gate.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("asv", reason="asv is not installed (pip install -e '.[bench]')")

from factorbench.regress import asv_adapter, gate

pytestmark = pytest.mark.slow  # walks a git history with asv

REPEAT = 8
ROUNDS = 2
FACTOR = 1.2
SUITE = '''
import json
import time
from pathlib import Path

# The delays live beside the suite so that the benchmarks' source, and with it the
# version asv stores for each, is the same at both commits.
SETTINGS = json.loads((Path(__file__).parent / "settings.json").read_text())


class Wait:
    params = ["same", "slower", "broken", "skipped"]
    param_names = ["case"]

    def setup(self, case):
        if case == "skipped":
            raise NotImplementedError  # asv: skip this case
        self.delay = SETTINGS["delays"][case]

    def time_wait(self, case):
        if self.delay is None:
            raise RuntimeError("broken at this commit")
        time.sleep(self.delay)


def track_widgets():
    return SETTINGS["widgets"]


track_widgets.unit = "widgets"
'''
BASE_SETTINGS = {"delays": {"same": 0.01, "slower": 0.002, "broken": 0.002}, "widgets": 42}
HEAD_SETTINGS = {"delays": {"same": 0.01, "slower": 0.02, "broken": None}, "widgets": 21}
WAIT = "bench.Wait.time_wait"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def asv(repo: Path, env: dict[str, str], *args: str, status: int = 0) -> str:
    done = subprocess.run([sys.executable, "-m", "asv", *args], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == status, f"asv {' '.join(args)} exited {done.returncode}:\n{output[-6000:]}"
    return output


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Path, str, str]:
    """(repository, base commit, head commit), both run by asv and stored on this machine."""
    root = tmp_path_factory.mktemp("asv-project")
    repo = root / "project"
    (repo / "benchmarks").mkdir(parents=True)
    (repo / "benchmarks" / "__init__.py").write_text("")
    (repo / "benchmarks" / "bench.py").write_text(SUITE)
    (repo / "asv.conf.json").write_text(json.dumps({
        "version": 1, "project": "tiny", "repo": ".", "branches": ["HEAD"],
        "environment_type": "existing", "pythons": [sys.executable],
        "benchmark_dir": "benchmarks", "results_dir": ".asv/results", "html_dir": ".asv/html"}))
    # asv keeps its machine file in the home folder: a private one, so the user's is untouched
    env = {**os.environ, "HOME": str(root), "PYTHONPATH": ""}
    git(root, "init", "-q", str(repo))
    commits = []
    for settings in (BASE_SETTINGS, HEAD_SETTINGS):
        (repo / "benchmarks" / "settings.json").write_text(json.dumps(settings))
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-q", "-m", "settings")
        commits.append(git(repo, "rev-parse", "HEAD"))
    # the adapter reads the results of this host's machine name, as the gate's `asv machine --yes` names it
    asv(repo, env, "machine", "--yes", "--machine", platform.node())
    for commit, status in zip(commits, (0, 2)):  # asv exits 2 when a benchmark fails: the broken one at head
        git(repo, "checkout", "-q", commit)
        output = asv(repo, env, "run", "--set-commit-hash", commit, "--record-samples", "--show-stderr",
                     "-a", f"repeat={REPEAT}", "-a", "number=1", "-a", f"rounds={ROUNDS}", "-a", "warmup_time=0",
                     status=status)
    assert "broken at this commit" in output
    return repo, commits[0], commits[1]


def test_stored_results_carry_names_with_parameters_units_and_samples(recorded):
    repo, base, head = recorded
    before = asv_adapter.stored_results(repo, base)
    after = asv_adapter.stored_results(repo, head)
    names = {f"{WAIT}('{case}')" for case in ("same", "slower", "broken", "skipped")} | {"bench.track_widgets"}
    assert set(before) == names and set(after) == names

    same = before[f"{WAIT}('same')"]
    assert same.name == f"{WAIT}('same')" and same.unit == "seconds"
    assert same.samples is not None and len(same.samples) == REPEAT * ROUNDS
    assert all(sample >= 0.01 for sample in same.samples)  # a sleep never ends early
    assert same.value is not None and 0.01 <= same.value < 0.1
    assert min(same.samples) <= same.value <= max(same.samples)  # asv's value: the median

    assert 0.002 <= before[f"{WAIT}('slower')"].value < 0.02 <= after[f"{WAIT}('slower')"].value
    assert before[f"{WAIT}('broken')"].value is not None and after[f"{WAIT}('broken')"].value is None
    assert math.isnan(before[f"{WAIT}('skipped')"].value) and math.isnan(after[f"{WAIT}('skipped')"].value)

    widgets = before["bench.track_widgets"], after["bench.track_widgets"]
    assert [w.value for w in widgets] == [42.0, 21.0] and [w.unit for w in widgets] == ["widgets", "widgets"]


def test_stored_results_select_by_name_with_parameters(recorded):
    repo, base, _ = recorded
    assert set(asv_adapter.stored_results(repo, base, re.compile(r"\('slow"))) == {f"{WAIT}('slower')"}
    assert asv_adapter.stored_results(repo, "0" * 40) == {}


def test_is_better_is_asvs_verdict_on_real_samples(recorded):
    repo, base, head = recorded
    before, after = asv_adapter.stored_results(repo, base), asv_adapter.stored_results(repo, head)
    old, new = before[f"{WAIT}('slower')"], after[f"{WAIT}('slower')"]
    assert asv_adapter.is_better(old.value, new.value, old.stats_and_samples, new.stats_and_samples, FACTOR)
    assert not asv_adapter.is_better(new.value, old.value, new.stats_and_samples, old.stats_and_samples, FACTOR)
    # beyond the factor but not beyond the noise: asv's significance test says no
    assert not asv_adapter.is_better(old.value, new.value, old.stats_and_samples, old.stats_and_samples, FACTOR)


def test_the_gate_judges_real_results(recorded):
    repo, base, head = recorded
    rows = {row.benchmark: row for row in gate.compare_asv(repo, base, head, None, FACTOR)}
    assert {name: row.status for name, row in rows.items()} == {
        f"{WAIT}('same')": "unchanged", f"{WAIT}('slower')": "regressed", f"{WAIT}('broken')": "failed",
        f"{WAIT}('skipped')": "skipped", "bench.track_widgets": "improved"}
    slower = rows[f"{WAIT}('slower')"]
    assert slower.unit == "seconds" and slower.ratio is not None and slower.ratio > 5
    # the gate judges time and peak memory only: a tracked figure's direction is unknown to asv
    selected = gate.compare_asv(repo, base, head, re.compile(gate.asv_selection(None)), FACTOR)
    assert "bench.track_widgets" not in {row.benchmark for row in selected} and len(selected) == 4


def test_history_imports_the_asv_results_directory(recorded, tmp_path):
    """`factorbench history import .asv/results`: every benchmark of every stored commit, at
    the commit's date as asv stored it, failed as failed, skipped as skipped; a corrupt
    results file stops the import with one line."""
    from factorbench.history.store import open_store

    repo, base, head = recorded
    store_url = str(tmp_path / "history.sqlite")
    command = [sys.executable, "-m", "factorbench", "history", "import", str(repo / ".asv" / "results"),
               "--store", store_url]
    for expected in ("10 new", "0 new, 10 already stored"):
        done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and expected in done.stdout, done.stdout + done.stderr
    with open_store(store_url) as store:
        keys = store.keys()
        assert {key[0] for key in keys} == {f"{WAIT}('{case}')" for case in ("same", "slower", "broken", "skipped")} | {
            "bench.track_widgets"}
        assert {key[1] for key in keys} == {platform.node()} and {key[2] for key in keys} == {"wall"}
        slower = store.series(f"{WAIT}('slower')", *keys[0][1:3], "seconds", keys[0][4])
        broken = store.series(f"{WAIT}('broken')", *keys[0][1:3], "seconds", keys[0][4])
        skipped = store.series(f"{WAIT}('skipped')", *keys[0][1:3], "seconds", keys[0][4])
    # both commits were made in the same second: their order in a series is not known, their points are
    slower_at = {p.commit: p for p in slower}
    assert set(slower_at) == {base, head} and {p.subject for p in slower} == {"settings"}
    assert slower_at[base].value < 0.02 <= slower_at[head].value
    assert slower_at[base].ci_low is not None and slower_at[base].ci_low <= slower_at[base].value <= slower_at[
        base].ci_high
    assert {p.commit: p.status for p in broken} == {base: "ok", head: "failed"}
    assert [p.status for p in skipped] == ["skipped", "skipped"]
    assert json.loads(keys[0][4])["asv_env"], "a machine's environments are separate series"

    corrupt = tmp_path / "results"
    subprocess.run(["cp", "-r", str(repo / ".asv" / "results"), str(corrupt)], check=True)
    victim = next(path for path in (corrupt / platform.node()).glob("*.json") if path.name != "machine.json")
    victim.write_text(victim.read_text()[:200])
    done = subprocess.run([*command[:5], str(corrupt), "--store", store_url], cwd=repo, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and victim.name in done.stderr and "nothing was imported" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
