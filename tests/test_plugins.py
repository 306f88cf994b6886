"""Plugins: kernels and paradigms from outside factorbench, through every path the
built-ins take (list, check, run, the asv suite, the gate), and `factorbench init` in a
team's own repository built from examples/team_factors."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    env = {"PYTHONPATH": str(site)}
    done = cli("init", cwd=repo, env=env)
    assert done.returncode == 0, done.stderr
    assert "benchmarks: ema/team-numba, zscore/team-numba, zscore/team-numpy" in done.stdout
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "team factors with factorbench benchmarks")
    return repo, env


def test_run_quick_in_the_team_repository_checks_and_ranks_its_kernel(team_repo):
    repo, env = team_repo
    done = cli("run", "--quick", "--kernel", "zscore", "--json", "r.json", cwd=repo, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((repo / "r.json").read_text())["results"]
    assert sorted((r["implementation"], r["status"]) for r in results) == [("team-numba", "ok"), ("team-numpy", "ok")]
    table = done.stdout[done.stdout.index("zscore n=200,000 window=20"):]
    ranked = [line.split()[1] for line in table.splitlines()[4:6]]
    assert ranked == [r["implementation"] for r in sorted(results, key=lambda r: r["median"])]


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
