"""Plugins: kernels and paradigms from outside factorbench, through every path the
built-ins take (list, check, run, the asv suite, the gate), and `factorbench init` in a
team's own repository built from examples/team_factors."""

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "team_factors"

PLUGIN = '''
import numpy as np

from factorbench import Kernel, Paradigm, price_walk, require_int


def reference(x):
    return np.asarray(x, dtype=np.float64) * 2.0


KERNEL = Kernel(
    name="{kernel}", signature="{kernel}(x) -> 2x", summary="twice the input",
    defaults={{"n": 100_000}}, quick={{"n": 10_000}}, size_param="n",
    make_args=lambda p, rng: (price_walk(rng, p["n"]),), reference=reference,
    check_inputs=lambda rng: [("n=7", (price_walk(rng, 7),)), ("n=1000", (price_walk(rng, 1000),))],
    elements=lambda p: p["n"], bytes_moved=lambda p: 16 * p["n"],
    validate=lambda p: require_int(p, "n", 1), rtol=1e-12,
)
PARADIGM = Paradigm("{paradigm}", "a right and a wrong implementation")


@PARADIGM.implements(KERNEL, name="right")
def right(x):
    return x * 2.0


@PARADIGM.implements(KERNEL, name="wrong")
def wrong(x):
    return x * 2.0 + (np.arange(len(x)) == 3)  # off by one at element 3
'''


def cli(*args, cwd, env=None, timeout=300):
    env = {**os.environ, "COLUMNS": "200", **(env or {})}
    env.pop("FACTORBENCH_PLUGINS", None)
    return subprocess.run([sys.executable, "-m", "factorbench", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def plugin(folder: Path, name: str, kernel: str = "double", paradigm: str = "plugin-test") -> Path:
    path = folder / f"{name}.py"
    path.write_text(PLUGIN.format(kernel=kernel, paradigm=paradigm))
    return path


def test_wrong_implementation_is_marked_wrong_and_a_broken_plugin_does_not_stop_the_run(tmp_path):
    plugin(tmp_path, "doubling")
    (tmp_path / "broken.py").write_text("raise RuntimeError('bug in the team plugin')\n")
    done = cli("run", "--quick", "--kernel", "double", "--plugin", "doubling.py", "--plugin", "broken.py",
               "--json", "r.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    problems = [line for line in done.stderr.splitlines() if "broken.py" in line]
    assert problems == [f"skipped plugin {tmp_path / 'broken.py'} (from --plugin): RuntimeError: bug in the team plugin"]
    statuses = {r["implementation"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    assert statuses["right"]["status"] == "ok" and statuses["right"]["times"]
    assert statuses["wrong"]["status"] == "wrong" and not statuses["wrong"]["times"]
    assert "case 'n=7'" in statuses["wrong"]["reason"]
    rows = [line for line in done.stdout.splitlines() if "plugin-test" in line]
    assert rows[0].split()[1] == "right" and "WRONG" in rows[1]


HELPERS_PLUGIN = """
import numpy as np

import factorbench as fb

PARADIGM = fb.Paradigm("helpers", "input rules from the public plugin API")


@PARADIGM.implements("sma")
def sma(x, window):
    x = fb.vector(x)
    window = fb.check_window(window, len(x))
    return np.lib.stride_tricks.sliding_window_view(x, window).mean(axis=1)
"""


def test_a_plugin_using_the_public_input_rules_raises_the_kernels_own_errors(tmp_path):
    import factorbench as fb

    (tmp_path / "helpers.py").write_text(HELPERS_PLUGIN)
    # empty, too short, bad parameters, wrong dimensions: each expects the reference's ValueError, message included
    classes = ["empty", "too short", "bad parameters", "wrong dimensions"]
    done = cli("check", "--kernel", "sma", "--paradigm", "helpers", "--plugin", "helpers.py", "--json", "m.json",
               cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    cells = {c["input_class"]: c for c in json.loads((tmp_path / "m.json").read_text())["profiles"][0]["cells"]}
    assert [cells[name]["outcome"] for name in classes] == ["pass"] * len(classes)
    for bad_alpha in (0.0, 1.5, True):
        assert raised(fb.check_alpha, bad_alpha) == raised(fb.kernel("ema").reference, np.ones(3), bad_alpha)
    assert raised(fb.matrix, np.ones(3)) == raised(fb.kernel("row_sums").reference, np.ones(3))


def raised(func, *args) -> str:
    """The message of the ValueError ``func(*args)`` raises."""
    with pytest.raises(ValueError) as caught:
        func(*args)
    return str(caught.value)


def test_a_missing_plugin_file_or_module_is_one_line_and_exit_2(tmp_path):
    for spec, what in (("nowhere.py", f"no such file {tmp_path / 'nowhere.py'}"),
                       ("no_such_plugin_module", "no module named 'no_such_plugin_module'")):
        done = cli("list", "--plugin", spec, cwd=tmp_path)
        assert done.returncode == 2 and done.stdout == "", done.stdout + done.stderr
        assert done.stderr.strip() == f"error: --plugin {spec}: {what}", done.stderr


def test_two_plugins_defining_one_name_is_one_line_naming_both(tmp_path):
    plugin(tmp_path, "first")
    plugin(tmp_path, "second", paradigm="other")
    done = cli("list", "--plugin", "first.py", "--plugin", "second.py", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: kernel 'double' is defined twice: by plugin {tmp_path / 'first.py'} "
                                   f"(from --plugin) and by plugin {tmp_path / 'second.py'} (from --plugin)")
    plugin(tmp_path, "clash", kernel="triple", paradigm="numba")
    done = cli("list", "--plugin", "clash.py", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: paradigm 'numba' is defined twice: by factorbench.impls.numba and by "
                                   f"plugin {tmp_path / 'clash.py'} (from --plugin)")


def test_plugin_implementing_an_unknown_kernel_is_skipped_with_the_choices(tmp_path):
    (tmp_path / "typo.py").write_text("from factorbench import Paradigm\n\nPARADIGM = Paradigm('typo', 'a typo')\n"
                                      "PARADIGM.implements('smaa')(lambda x, window: x)\n")
    done = cli("list", "--plugin", "typo.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"skipped plugin {tmp_path / 'typo.py'} (from --plugin): implements unknown kernel "
                                  "'smaa'; choose from: ema")
    assert "typo" not in done.stdout


def test_pyproject_table_names_plugins_and_child_processes_get_them(tmp_path):
    plugin(tmp_path / "src", "doubling") if (tmp_path / "src").mkdir() is None else None
    (tmp_path / "pyproject.toml").write_text('[tool.factorbench]\nplugins = ["src/doubling.py"]\n')
    (tmp_path / "deeper").mkdir()
    done = cli("list", cwd=tmp_path / "deeper")
    assert done.returncode == 0, done.stderr
    assert "double" in done.stdout and "plugin-test" in done.stdout
    (tmp_path / "pyproject.toml").write_text("[tool.factorbench]\nplugins = []\n")
    code = ("import os, subprocess, sys\nimport factorbench as fb\nfb.use_plugins(sys.argv[1:])\n"
            "print(subprocess.run([sys.executable, '-c', 'import factorbench as fb; print(fb.kernels()[-1])'],"
            " capture_output=True, text=True).stdout)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "src" / "doubling.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "double", done.stderr


def test_init_outside_a_repository_and_existing_files(tmp_path):
    done = cli("init", cwd=tmp_path)
    assert (done.returncode, done.stderr.strip()) == (
        2, "error: factorbench init sets up a git repository: run it inside one (git init first)")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "0"\n')
    (tmp_path / "asv.conf.json").write_text("{}")
    done = cli("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "asv.conf.json").read_text() == "{}"
    assert "kept asv.conf.json (exists; --force overwrites)" in done.stderr
    assert "wrote benchmarks/kernels.py" in done.stdout
    assert cli("init", "--force", cwd=tmp_path).returncode == 0
    assert json.loads((tmp_path / "asv.conf.json").read_text())["project"] == "x"


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args], cwd=repo,
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def team_repo(tmp_path_factory):
    """examples/team_factors as a team's repository: installed into its own folder (not the
    test's environment), `factorbench init`, committed."""
    root = tmp_path_factory.mktemp("team")
    repo, source, site = root / "repo", root / "source", root / "site"
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    shutil.copytree(repo, source)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(source)],
                   check=True, capture_output=True)
    git(repo, "init", "-q", "-b", "main")
    # asv installs this factorbench, not the release init names: the variable CI's would override it by
    env = {"PYTHONPATH": str(site), "FACTORBENCH": f"factorbench @ {REPO.as_uri()}"}
    done = cli("init", cwd=repo, env=env)
    assert done.returncode == 0, done.stderr
    assert "benchmarks: ema/team-numba, zscore/team-numba, zscore/team-numpy" in done.stdout
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "team factors with factorbench benchmarks")
    return repo, env


@pytest.mark.slow  # builds a team repository with git
def test_run_quick_in_the_team_repository_checks_and_ranks_its_kernel(team_repo):
    repo, env = team_repo
    done = cli("run", "--quick", "--kernel", "zscore", "--json", "r.json", cwd=repo, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((repo / "r.json").read_text())["results"]
    assert sorted((r["implementation"], r["status"]) for r in results) == [("team-numba", "ok"), ("team-numpy", "ok")]
    table = done.stdout[done.stdout.index("zscore n=200,000 window=20"):]
    ranked = [line.split()[1] for line in table.splitlines()[4:6]]
    assert ranked == [r["implementation"] for r in sorted(results, key=lambda r: r["median"])]


@pytest.mark.slow  # builds a team repository with git
def test_asv_runs_the_generated_suite_of_the_team_repository(team_repo):
    repo, env = team_repo
    subprocess.run([sys.executable, "-m", "asv", "machine", "--yes"], cwd=repo, capture_output=True, timeout=60)
    # --python=same: the running environment, so no package index is needed; asv discards
    # PYTHONPATH and takes ASV_PYTHONPATH instead
    done = subprocess.run([sys.executable, "-m", "asv", "run", "--python=same", "--quick", "--bench",
                           r"zscore__team_numpy\.time_call"], cwd=repo, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ASV_PYTHONPATH": env["PYTHONPATH"]})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "kernels.zscore__team_numpy.time_call" in done.stdout and " ok" in done.stdout


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed (apt-get install valgrind)")
@pytest.mark.slow  # builds a team repository with git
def test_gate_in_the_team_repository_names_exactly_the_slower_implementation(team_repo, tmp_path):
    repo, env = team_repo
    impl = repo / "team_factors" / "numpy_paradigm.py"
    impl.write_text(impl.read_text().replace("    std = windows.std(axis=1)\n",
                                             "    std = (windows.std(axis=1) + windows.std(axis=1)) / 2\n"))
    git(repo, "commit", "-qam", "zscore: std computed twice (1.5x the work)")
    verdict = tmp_path / "gate.json"
    done = cli("gate", "HEAD~1", "HEAD", "--mode", "callgrind", "--bench", "zscore__", "--json", str(verdict),
               cwd=repo, env=env, timeout=600)
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    gate = json.loads(verdict.read_text())
    assert gate["regressions"] == ["kernels.zscore__team_numpy.time_call(32000)"]
    assert {row["benchmark"]: row["status"] for row in gate["rows"]} == {
        "kernels.zscore__team_numba.time_call(32000)": "unchanged",
        "kernels.zscore__team_numpy.time_call(32000)": "regressed"}
    (repo / "NOTES.md").write_text("nothing that runs\n")
    git(repo, "add", "NOTES.md")
    git(repo, "commit", "-qm", "notes")
    done = cli("gate", "HEAD~1", "HEAD", "--mode", "callgrind", "--bench", "zscore__", "--json", str(verdict),
               cwd=repo, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "no regression" in done.stdout
    assert {row["status"] for row in json.loads(verdict.read_text())["rows"]} == {"unchanged"}


BASELINE_PLUGIN = '''
import factorbench as fb

PARADIGM = fb.Paradigm("team-bottleneck", "bottleneck as the team calls it", baseline_library=True)


@PARADIGM.implements("sma", name="move-mean-skipnan", requires=["bottleneck"])
def sma(x, window):
    """bottleneck.move_mean with min_count=1: a window's NaN are skipped, not propagated."""
    import bottleneck

    x = fb.vector(x)
    window = fb.check_window(window, len(x))
    return bottleneck.move_mean(x, window, min_count=1)[window - 1:]
'''


def test_a_baseline_library_with_another_nan_rule_is_checked_timed_ranked_and_gated(tmp_path):
    pytest.importorskip("bottleneck")
    from factorbench.measure.case import DEVIATES
    from factorbench.results import analysis

    (tmp_path / "baseline.py").write_text(BASELINE_PLUGIN)
    done = cli("check", "--kernel", "sma", "--paradigm", "team-bottleneck", "--plugin", "baseline.py", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "move-mean-skipnan (library) × core: case 'NaN first'" in done.stdout, done.stdout
    done = cli("run", "--quick", "--kernel", "sma", "--paradigm", "team-bottleneck", "--paradigm", "vectorized",
               "--plugin", "baseline.py", "--rounds", "1", "--time-budget", "2", "--json", "r.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads((tmp_path / "r.json").read_text())
    row = next(r for r in doc["results"] if r["implementation"] == "move-mean-skipnan")
    assert row["status"] == "ok" and row["times"], row
    assert row["reason"].startswith(f"{DEVIATES}: case 'NaN first'") and "NaN" in row["reason"]
    table = [line for line in done.stdout.splitlines() if "move-mean-skipnan" in line]
    assert table and DEVIATES[:20] in done.stdout, done.stdout  # ranked, with its note
    (case,) = analysis.cases(doc)
    assert {row.result["implementation"] for row in case.ranked} >= {"move-mean-skipnan", "vectorized-cumsum"}
    assert all(row.speedup["library"] is not None for row in case.ranked)  # "vs best library" is against it
    # The suite the gate times: a baseline is timed at benchmark size, not refused as wrong.
    code = ("from factorbench.benchmarks.suite import benchmarks, prepare\n"
            "case = next(c for c in benchmarks('sma') if c.impl.name == 'move-mean-skipnan')\n"
            "prepare(case, *(values[0] for values in case.params))\nprint('timed', case.name)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FACTORBENCH_PLUGINS": str(tmp_path / "baseline.py")})
    assert done.stdout.strip() == "timed sma__move_mean_skipnan", done.stderr[-3000:]


TWO_WAYS_WRONG_PLUGIN = '''
import warnings

import numpy as np

import factorbench as fb

PARADIGM = fb.Paradigm("team-wrong", "wrong in two ways")


@PARADIGM.implements("sma", name="half-skipnan")
def sma(x, window):
    """Half the mean (a constant factor), over a window's values that are not NaN (another NaN rule)."""
    x = fb.vector(x)
    window = fb.check_window(window, len(x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN window
        return 0.5 * np.nanmean(np.lib.stride_tricks.sliding_window_view(x, window), axis=1)
'''


def test_an_implementation_wrong_in_two_ways_gets_both_explained_with_indices(tmp_path):
    import html

    (tmp_path / "wrong.py").write_text(TWO_WAYS_WRONG_PLUGIN)
    factor = "values differ, first at index 0: "
    factor_hint = "every value off by a constant factor 0.5"
    nan_rule = ("case 'NaN first': NaN pattern differs at 1 of 481 positions, first at index 0: ")
    nan_hint = "1 of the reference's NaN not NaN here: the NaN rule differs"
    done = cli("check", "--kernel", "sma", "--paradigm", "team-wrong", "--plugin", "wrong.py", "--json", "m.json",
               cwd=tmp_path, env={"COLUMNS": "1000"})
    assert done.returncode == 1, done.stdout + done.stderr
    core = next(line for line in done.stdout.splitlines() if "half-skipnan × core" in line)
    for part in ("case 'n=1 window=1': 1 of 1 " + factor, factor_hint, nan_rule, nan_hint):
        assert part in core, core
    assert core.index(factor_hint) < core.index(nan_rule)
    # every failing class explains itself, each way its cases failed with their own first index
    both_inf = next(line for line in done.stdout.splitlines() if "half-skipnan × +inf and -inf" in line)
    assert "(one window): 39951 of 39951 " + factor in both_inf and factor_hint in both_inf
    assert "case 'with NaN': NaN pattern differs at 10 of 491 positions, first at index 96: inf vs reference nan" \
        in both_inf
    done = cli("run", "--quick", "--kernel", "sma", "--paradigm", "team-wrong", "--plugin", "wrong.py",
               "--rounds", "1", "--json", "r.json", "--report", "r.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = json.loads((tmp_path / "r.json").read_text())["results"]
    assert row["status"] == "wrong" and factor_hint in row["reason"] and nan_rule in row["reason"]
    report = html.unescape((tmp_path / "r.html").read_text())
    correctness = report[report.index('id="correctness"'):]
    for part in (factor_hint, nan_rule, nan_hint, "case 'with NaN': NaN pattern differs"):
        assert part in correctness, part
    assert "reproduced?" not in report  # a plugin's run holds none of the article's figures


def test_init_writes_a_workflow_that_installs_a_requirement_and_runs_every_plugin_kernel(tmp_path):
    from test_ci import actionlint

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    plugin(tmp_path, "doubling")  # the kernel double
    (tmp_path / "helpers.py").write_text(HELPERS_PLUGIN)  # factorbench's sma
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "team"\nversion = "0"\n\n'
                                             '[tool.factorbench]\nplugins = ["doubling.py", "helpers.py"]\n')
    done = cli("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    workflow_path = tmp_path / ".github" / "workflows" / "benchmarks.yml"
    workflow, config = workflow_path.read_text(), (tmp_path / "asv.conf.json").read_text()
    for text in (workflow, config):
        assert "file:" not in text and str(tmp_path) not in text and str(REPO) not in text, text
    quick = next(line for line in workflow.splitlines() if "factorbench run --quick" in line)
    assert "--kernel double" in quick and "--kernel sma" in quick, quick
    assert 'pip install "$FACTORBENCH"' in workflow and "FACTORBENCH: 'factorbench==" in workflow
    assert asv_installs(tmp_path, {}) == ["-m", "pip", "install", "factorbench==" + version("factorbench"), "W.whl"]
    assert asv_installs(tmp_path, {"FACTORBENCH": "factorbench==9"})[3] == "factorbench==9"
    (problems,) = actionlint(workflow_path)
    assert problems == [], problems
    pinned = "factorbench @ git+https://example.org/factorbench.git@v1"
    done = cli("init", "--force", "--factorbench", pinned, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"FACTORBENCH: '{pinned}'" in workflow_path.read_text()
    assert asv_installs(tmp_path, {})[3] == pinned
    done = cli("init", "--force", "--factorbench", "factorbench'; rm -rf ~", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("error: --factorbench \"factorbench'; rm -rf ~\": give a pip requirement")


def asv_installs(repo: Path, env: dict) -> list[str]:
    """The arguments asv's install command (as asv interpolates it) gives python in an
    environment whose python only prints them."""
    from asv.util import interpolate_command

    (command,) = json.loads((repo / "asv.conf.json").read_text())["install_command"]
    args, _, _, _ = interpolate_command(command, {"env_dir": str(repo), "wheel_file": "W.whl"})
    bin_dir = repo / "env-bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python").write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    done = subprocess.run(args, capture_output=True, text=True, check=True,
                          env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env})
    return done.stdout.splitlines()


def test_a_plugins_folder_loads_each_of_its_files(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    plugin(bench, "doubling")
    (bench / "_helpers.py").write_text("raise RuntimeError('a helper is not a plugin')\n")
    (tmp_path / "pyproject.toml").write_text('[tool.factorbench]\nplugins = ["bench/"]\n')
    done = cli("list", cwd=tmp_path)
    assert done.returncode == 0 and "double" in done.stdout and "plugin-test" in done.stdout, done.stderr
    assert "_helpers" not in done.stderr


def test_init_leaves_a_flat_layout_package_buildable(tmp_path):
    """The benchmarks init starts sit where setuptools' automatic discovery of a flat
    layout does not take them for a second package (a bench/ folder stopped the build)."""
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=70"]\n'
                                             'build-backend = "setuptools.build_meta"\n\n'
                                             '[project]\nname = "rollfast"\nversion = "0.1.0"\n')
    (tmp_path / "rollfast").mkdir()
    (tmp_path / "rollfast" / "__init__.py").write_text("def rolling_mean(x, window):\n    return x\n")
    done = cli("init", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote benchmarks/rollfast_bench.py" in done.stdout
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w",
                            str(tmp_path / "dist"), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    assert [wheel.name for wheel in (tmp_path / "dist").glob("rollfast-0.1.0-*.whl")]
