"""`factorbench history import | changes | report` on a SQLite store: importing results files
and gate verdicts (asv results directories: test_asv_adapter.py, on a real asv run), the
change points of seeded synthetic histories, the report in headless Chromium, and bad input
as one line with exit status 2 and nothing already stored lost.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from browser import CHROMIUM, screenshot

from factorbench.cli import main
from factorbench.history.changes import detect, find_changes, standing
from factorbench.history.store import Point, open_store
from factorbench.regress.gate import Row, Verdict

RUN = Path(__file__).parent / "data" / "reproduction-run.json"
SLOWED = "loop"
"""The implementation the synthetic history slows down 1.5x at commit 12 and restores at 20."""


def git(repo: Path, *args: str, **env: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env={**os.environ, **env}).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> tuple[Path, list[str]]:
    """A git repository of 30 commits, one a day, with subjects "change N"."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    commits = []
    for i in range(30):
        (repo / "file.txt").write_text(str(i))
        git(repo, "add", "-A")
        date = f"@{1_780_000_000 + i * 86_400} +0000"
        git(repo, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "-m", f"change {i}",
            GIT_COMMITTER_DATE=date, GIT_AUTHOR_DATE=date)
        commits.append(git(repo, "rev-parse", "HEAD"))
    return repo, commits


def results_files(folder: Path, commits: list[str], slowed: range = range(12, 20)) -> list[Path]:
    """A results file per commit from a real run's file, the loop rows 1.5x slower over
    ``slowed``; seeded noise of 0.5%."""
    doc = json.loads(RUN.read_text())
    rng = np.random.default_rng(7)
    paths = []
    for i, commit in enumerate(commits):
        run = copy.deepcopy(doc)
        run["options"]["started"] = f"2026-12-01T10:{i:02d}:00+00:00"
        run["machine"]["git_commit"] = commit
        for row in run["results"]:
            row["median"] *= (1.5 if i in slowed and row["implementation"] == SLOWED else 1.0) * (
                1 + 0.005 * rng.standard_normal())
            row["ci_low"], row["ci_high"] = row["median"] * 0.99, row["median"] * 1.01
        paths.append(folder / f"run-{i:02d}.json")
        paths[-1].write_text(json.dumps(run))
    return paths


def history(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["history", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_stores_every_row_of_a_results_file_once(repo, tmp_path, capsys, monkeypatch):
    repo_path, commits = repo
    monkeypatch.chdir(repo_path)
    paths = results_files(tmp_path, commits[:3])
    code, out, _ = history(capsys, "import", *map(str, paths))
    assert code == 0 and "36 new" in out
    code, out, _ = history(capsys, "import", *map(str, paths))
    assert code == 0 and "0 new, 36 already stored" in out
    # the default store: a SQLite file at the repository's root
    with open_store(root=repo_path) as store:
        assert store.url == f"sqlite:///{repo_path / '.factorbench' / 'history.sqlite'}"
        doc = json.loads(paths[0].read_text())
        row = doc["results"][0]
        key = (f"{row['kernel']}.{row['implementation']}", doc["machine"]["hostname"], "wall", "seconds",
               json.dumps(row["params"], sort_keys=True))
        series = store.series(*key)
    assert [p.commit for p in series] == commits[:3]
    assert [p.subject for p in series] == ["change 0", "change 1", "change 2"]  # from the repository
    assert series[0].value == pytest.approx(row["median"]) and series[0].ci_low == pytest.approx(row["ci_low"])
    assert series[1].commit_time - series[0].commit_time == 86_400


def test_import_records_the_code_under_test(repo, tmp_path, capsys, monkeypatch):
    """A results file that names its code under test: the point is at that commit, with its
    package, version and dirty state (not at factorbench's own checkout)."""
    repo_path, commits = repo
    monkeypatch.chdir(repo_path)
    path = results_files(tmp_path, [commits[5]])[0]
    doc = json.loads(path.read_text())
    doc["machine"]["git_commit"] = commits[0]  # factorbench's checkout: not what was measured
    doc["code"] = {"package": "movingwin", "version": "0.3.1", "commit": commits[5], "dirty": True,
                   "factorbench_version": "0.1.0"}
    path.write_text(json.dumps(doc))
    assert history(capsys, "import", str(path))[0] == 0
    with open_store(root=repo_path) as store:
        points = [p for series in store.all_series() for p in series]
    assert {(p.commit, p.subject, p.package, p.package_version, p.dirty, p.factorbench_version) for p in points} == {
        (commits[5], "change 5", "movingwin", "0.3.1", True, "0.1.0")}


def test_a_corrupt_file_imports_nothing_and_loses_nothing(repo, tmp_path, capsys, monkeypatch):
    repo_path, commits = repo
    monkeypatch.chdir(repo_path)
    good = results_files(tmp_path, commits[:2])
    assert history(capsys, "import", str(good[0]))[0] == 0
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text(good[1].read_text()[:500])
    wrong_field = tmp_path / "wrong-field.json"
    doc = json.loads(good[1].read_text())
    doc["results"][3]["median"] = "fast"
    wrong_field.write_text(json.dumps(doc))
    for bad, message in ((corrupt, "not a readable JSON file"), (wrong_field, r"results\[3\].median"),
                         (tmp_path / "absent.json", "no such file"), (tmp_path, "no machine.json beside it")):
        code, out, err = history(capsys, "import", str(good[1]), str(bad))
        assert code == 2, out + err
        assert re.search(message, err) and "nothing was imported" in err and len(err.strip().splitlines()) == 1, err
    with open_store(root=repo_path) as store:
        assert store.count() == 12


def test_a_gate_verdict_is_a_point_at_base_and_at_head(repo, tmp_path, capsys, monkeypatch):
    repo_path, commits = repo
    monkeypatch.chdir(repo_path)
    verdict = Verdict("callgrind", commits[3], commits[4], "HEAD~1", "HEAD", "more than 2% more instructions",
                      [Row("kernels.sma__numba.time_call(32000)", 1_000_000.0, 1_500_000.0, "instructions",
                           "regressed"),
                       Row("kernels.ema__loop.time_call(32000)", 2_000_000.0, math.nan, "instructions", "failed",
                           "ImportError at head")])
    path = tmp_path / "verdict.json"
    path.write_text(json.dumps(verdict.to_dict()))
    code, out, err = history(capsys, "import", str(path), "--machine", "ci-7")
    assert code == 0 and "4 new" in out, err
    with open_store(root=repo_path) as store:
        sma = store.series("kernels.sma__numba.time_call(32000)", "ci-7", "callgrind", "instructions")
        ema = store.series("kernels.ema__loop.time_call(32000)", "ci-7", "callgrind", "instructions")
    assert [(p.commit, p.value, p.subject) for p in sma] == [(commits[3], 1e6, "change 3"),
                                                             (commits[4], 1.5e6, "change 4")]
    assert [p.status for p in ema] == ["ok", "failed"] and "ImportError at head" in ema[1].reason


def test_changes_finds_the_slowdown_and_its_undoing_at_their_commits(repo, tmp_path, capsys, monkeypatch):
    repo_path, commits = repo
    monkeypatch.chdir(repo_path)
    history(capsys, "import", *map(str, results_files(tmp_path, commits)))
    code, out, err = history(capsys, "changes", "--json", str(tmp_path / "changes.json"))
    assert code == 0, err
    found = json.loads((tmp_path / "changes.json").read_text())
    slowed = [c for c in found if c["benchmark"].endswith(f".{SLOWED}")]
    assert found == slowed, "only the slowed rows changed"
    assert {(c["commit"], c["previous_commit"], c["regression"]) for c in found} == {
        (commits[12], commits[11], True), (commits[20], commits[19], False)}
    for change in found:
        assert change["magnitude"] == pytest.approx(0.5 if change["regression"] else -1 / 3, abs=0.02)
        assert change["p_value"] < 1e-3
        assert change["subject"] in ("change 12", "change 20")
    assert found[0]["regression"], "regressions first"
    # CI: a regression undone later does not fail; one that stands does, unless older than --since
    code, out, _ = history(capsys, "changes", "--fail-on", "regression")
    assert code == 0 and f"regression at {commits[12][:10]}" in out and "undone later, not failing" in out
    assert history(capsys, "changes", "--fail-on", "regression", "--since", commits[11])[0] == 0
    code, out, _ = history(capsys, "changes", "--fail-on", "regression", "--since", commits[12])
    assert code == 0 and "no change points" not in out  # the improvement at 20 is still listed


def test_changes_markdown_goes_to_the_step_summary(repo, tmp_path, capsys, monkeypatch):
    repo_path, commits = repo
    monkeypatch.chdir(repo_path)
    history(capsys, "import", *map(str, results_files(tmp_path, commits)))
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert history(capsys, "changes")[0] == 0
    text = summary.read_text()
    assert "regression(s)" in text and f"`{commits[11][:8]}..{commits[12][:8]}` change 12" in text
    assert text.index("🔴 regression") < text.index("🟢 improvement")


def test_change_points_of_seeded_noisy_histories():
    """5% steps in 1% noise, as the README's validation: every step at its point (±5), nothing else."""
    rng = np.random.default_rng(2026)
    for _ in range(10):
        level = np.ones(1000)
        steps = sorted(rng.choice(np.arange(100, 900, 100), 3, replace=False))
        for at in steps:
            level[at:] *= 1.05 if rng.random() < 0.5 else 1 / 1.05
        found = [index for index, _ in detect(level * (1 + 0.01 * rng.standard_normal(1000)))]
        assert len(found) == 3 and all(abs(f - s) <= 5 for f, s in zip(found, steps)), (found, steps)
    flat = 1 + 0.02 * np.random.default_rng(1).standard_normal(1000)
    assert detect(flat) == []


def test_a_noiseless_series_of_twelve_commits():
    """Instruction counts barely vary: a 1.5x step at commit 4 undone at 8 is found exactly."""
    counts = [1_000_000.0] * 4 + [1_500_000.0] * 4 + [1_000_000.0] * 4
    points = [Point("b", "m", "callgrind", "instructions", "instructions", commit=f"c{i}", commit_time=i,
                    value=count, run_id=f"r{i}") for i, count in enumerate(counts)]
    found = find_changes([points])
    assert [(c.commit, c.previous_commit, c.regression, round(c.magnitude, 3)) for c in found] == [
        ("c4", "c3", True, 0.5), ("c8", "c7", False, -0.333)]
    # timings: a level of three commits is a level, two commits' blip is outliers
    assert [index for index, _ in detect(np.array([1e6] * 6 + [1.5e6] * 3 + [1e6] * 3))] == [6, 9]
    assert detect(np.array([1e6] * 6 + [1.5e6] * 2 + [1e6] * 4)) == []
    # instruction counts have no outliers: a slowdown undone two commits later is two change points
    blip = [1e6] * 6 + [1.5e6] * 2 + [1e6] * 4
    points = [Point("b", "m", "callgrind", "instructions", "instructions", commit=f"c{i}", commit_time=i,
                    value=count, run_id=f"r{i}") for i, count in enumerate(blip)]
    assert [(c.commit, c.regression) for c in find_changes([points])] == [("c6", True), ("c8", False)]


def test_a_regression_stands_until_its_series_comes_back_down():
    def changes_of(counts):
        points = [Point("b", "m", "callgrind", "instructions", "instructions", commit=f"c{i}", commit_time=0,
                        value=count, run_id=f"r{i}") for i, count in enumerate(counts)]
        return find_changes([points])

    assert [c.commit for c in standing(changes_of([1e6] * 4 + [1.5e6] * 4))] == ["c4"]
    assert standing(changes_of([1e6] * 4 + [1.5e6] * 4 + [1e6] * 4)) == []
    # taken back by less than half: it stands
    assert [c.commit for c in standing(changes_of([1e6] * 4 + [2e6] * 4 + [1.8e6] * 4))] == ["c4"]


def test_bad_input_is_one_line_and_exit_2(repo, tmp_path, capsys, monkeypatch):
    repo_path, commits = repo
    monkeypatch.chdir(repo_path)
    history(capsys, "import", *map(str, results_files(tmp_path, commits[:2])))
    newer = tmp_path / "newer.sqlite"
    with open_store(str(newer)):
        pass
    engine = sa.create_engine(f"sqlite:///{newer}")
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0042'"))
    engine.dispose()
    for args, message in (
            (["changes", "--since", "no-such-ref"], "--since no-such-ref: no such commit"),
            (["changes", "--bench", "("], r"--bench '\(' is not a valid regular expression"),
            (["changes", "--store", "mysql://x/y"], "mysql is not supported"),
            (["changes", "--store", "postgresql://nobody@127.0.0.1:1/none"], "cannot be opened"),
            (["changes", "--store", str(newer)], r"written by a newer factorbench \(schema 42, this one knows up to 1\)"),
            (["changes", "--fail-on", "everything"], "invalid choice"),
            (["import"], "the following arguments are required")):
        code, out, err = history(capsys, *args)
        assert code == 2, (args, out, err)
        assert re.search(message, err) and len(err.strip().splitlines()) == 1, (args, err)
    with open_store(root=repo_path) as store:
        assert store.count() == 24


@pytest.fixture
def report(repo, tmp_path, capsys, monkeypatch) -> tuple[Path, str, list[str]]:
    repo_path, commits = repo
    monkeypatch.chdir(repo_path)
    history(capsys, "import", *map(str, results_files(tmp_path, commits)))
    # a second machine measuring the same benchmarks: its own line in each trend
    other = tmp_path / "other"
    other.mkdir()
    for path in results_files(other, commits[::3]):
        doc = json.loads(path.read_text())
        doc["machine"]["hostname"] = "second-machine"
        path.write_text(json.dumps(doc))
        history(capsys, "import", str(path))
    page = tmp_path / "history.html"
    code, _, err = history(capsys, "report", "-o", str(page), "--markdown", str(tmp_path / "history.md"))
    assert code == 0, err
    return page, page.read_text(), commits


def test_the_report_opens_with_the_change_points_then_a_trend_per_benchmark(report):
    page, html, commits = report
    changes = html[html.index('id="changes"'):html.index('id="trends"')]
    assert changes.index("regression") < changes.index("improvement")
    assert f"{commits[11][:8]}..{commits[12][:8]}" in changes and "change 12" in changes
    assert "+50" in changes and "-33" in changes
    trends = html[html.index('id="trends"'):]
    assert trends.count("<svg") == 12  # one per benchmark (with its parameters), machines as lines
    assert "second-machine" in trends
    assert f"{commits[12][:8]} +50" in trends, "the change point is labelled in its trend"
    markdown = (page.parent / "history.md").read_text()
    assert "| 🔴 regression |" in markdown and "change 12" in markdown


def test_the_report_is_self_contained(report):
    _, html, _ = report
    assert "default-src 'none'" in html
    assert not re.search(r"""(src|href)=["'](?!#|data:)""", html), "nothing leaves the file"
    assert not re.search(r"<(script|link|iframe)\b", html)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_report_renders_in_headless_chromium(report, tmp_path):
    page = report[0]
    shot, console = screenshot(page, tmp_path)
    assert console == [], "\n".join(console)
    from PIL import Image

    with Image.open(shot) as image:
        grey = image.convert("L")
        colours = grey.getextrema()
        # the trends below the table: the lower half of the page is not blank either
        lower = grey.crop((0, 1000, 1280, 2000)).getextrema()
    assert colours[1] - colours[0] > 100 and lower[1] - lower[0] > 100, "the screenshot is blank"


def test_trend_keeps_the_commit_order_of_commits_made_in_one_second():
    """Commits of one second (a script, a rebase) are drawn as the store keeps the series,
    not in the order of their hashes."""
    from factorbench.history import render

    shas = ["f" * 40, "a" * 40, "c" * 40, "b" * 40]
    points = [Point("b", "m", "callgrind", "instructions", "instructions", commit=sha, commit_time=1.0,
                    value=float(i + 1), run_id=f"r{i}") for i, sha in enumerate(shas)]
    svg = render.trend([points], [])
    assert [svg.index(sha[:8]) for sha in shas] == sorted(svg.index(sha[:8]) for sha in shas)
