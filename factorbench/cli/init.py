"""`factorbench init`: set up asv and the regression gate in a team's own git repository.

Writes an asv.conf.json that builds the repository's package and installs it with
factorbench, a thin benchmarks/ suite over factorbench's installed suite machinery
(``factorbench.benchmarks``: generated from the registry, so the package's plugins appear in
it with no list to edit), a CI workflow running the gate on pull requests, and a
.gitignore for asv's folders where there is none. Where the repository names no plugins yet,
it starts one outside the package (benchmarks/<package>_bench.py beside asv's suite, named in
pyproject.toml's [tool.factorbench] plugins; setuptools' automatic discovery of a flat layout
leaves benchmarks/ out of the package, where a new folder such as bench/ would stop the
build): the gate and history apply it to every commit's build, commits from before it
existed included, and the package itself never imports factorbench. Other existing files
are left alone unless --force.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from rich.markup import escape

from factorbench.cli.console import console, errors
from factorbench.cli.parser import UsageError, add_plugin_option

GENERATED = "Written by `factorbench init`"

SUITE_INIT = f'''"""asv suite of this repository's factorbench plugins. {GENERATED}.

Only the plugins' code is benchmarked (factorbench's own implementations do not change
between this repository's commits); plugins named in pyproject.toml's [tool.factorbench]
table are loaded too, since asv runs benchmarks outside the repository.
"""

import os
from pathlib import Path

import factorbench as fb
from factorbench.benchmarks.suite import SCOPE_ENV
from factorbench.discovery import project_plugins

os.environ.setdefault(SCOPE_ENV, "plugins")
fb.use_plugins(project_plugins(Path(__file__).resolve().parents[1])[0], origin="pyproject.toml")
'''

SUITE_MODULE = '''"""{what} {generated}: the machinery is factorbench's."""

from factorbench.benchmarks.{module} import *  # noqa: F403
{extra}'''

COUNTER = f'''"""Run by `factorbench gate --mode callgrind`. {GENERATED}."""

import sys

import benchmarks  # noqa: F401  the suite's scope and plugins
from factorbench.benchmarks.count_instructions import main

if __name__ == "__main__":
    sys.exit(main())
'''

WORKFLOW = '''# Benchmarks on every pull request. {generated}.
# - Instruction counts (callgrind) are the blocking gate: deterministic on one machine,
#   so a shared runner's noisy neighbours cannot fail a pull request.
# - Wall time (asv continuous, confirmed by a second pass) is reported but does not block.
name: benchmarks

on:
  pull_request:

permissions:
  contents: read

jobs:
  gate:
    runs-on: ubuntu-latest
    timeout-minutes: 90
    env:
      BASE: origin/${{{{ github.base_ref }}}}
      # The pip requirement this job and asv (asv.conf.json's install command reads the
      # variable) install factorbench as: a version, or a git URL with a tag or commit.
      FACTORBENCH: '{factorbench}'
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0  # the gate builds the target branch's commit from history
      - uses: actions/setup-python@v5
        with:
          python-version: "{python}"
      - name: System tools
        run: sudo apt-get update -qq && sudo apt-get install -y -qq valgrind
      - name: Install
        run: python -m pip install "$FACTORBENCH" "factorbench[bench]" -e .
      - name: Regression gate, instruction counts (blocking)
        run: factorbench gate "$BASE" HEAD --mode callgrind --json gate-callgrind.json
      - name: Regression gate, wall time (informational)
        continue-on-error: true
        run: factorbench gate "$BASE" HEAD --mode wall --json gate-wall.json
      - name: Quick run with the HTML report
        if: always()
        run: factorbench run --quick {kernels}--json results.json --report report.html
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: benchmark-report
          path: |
            report.html
            results.json
            gate-*.json
'''


PLUGIN_START = '''"""The benchmarks of {name}: factorbench kernels and paradigms. {generated}.

This file lives outside the package, so {name} itself never imports factorbench. The
gate, bisect and `factorbench history run` load it from the work tree and apply it to
each measured commit's build of {name}: import the functions you measure from
{module} here. A commit on which this file cannot load (a function that did not exist
yet) is recorded as skipped with the import error.
"""

from factorbench import Paradigm

PARADIGM = Paradigm("{paradigm}", "{name}'s own implementations")

# An implementation of a built-in kernel (`factorbench list` shows them), for example:
#
# @PARADIGM.implements("sma")
# def sma(x, window):
#     from {module} import moving_average  # from the measured commit's build
#     return moving_average(x, window)
#
# A kernel of your own: define KERNEL = factorbench.Kernel(...) here too (see the README,
# "Benchmark your own code").
'''

PLUGIN_TABLE = """
[tool.factorbench]
# the team's benchmarks, outside the package; every commit's build is measured with them
plugins = ["{path}"]
"""


def add_parser(sub) -> None:
    init = sub.add_parser("init", help="set up asv and the regression gate in your own git repository")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    init.add_argument("--factorbench", metavar="SPEC",
                      help="the pip requirement asv and CI install factorbench as (default: the version "
                           "installed here, or the git URL it was installed from); the FACTORBENCH "
                           "environment variable overrides it when they run")
    add_plugin_option(init)
    init.set_defaults(handler=command)


def repository_root() -> Path:
    done = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if done.returncode != 0:
        raise UsageError("factorbench init sets up a git repository: run it inside one (git init first)")
    return Path(done.stdout.strip())


def project_table(root: Path) -> dict:
    path = root / "pyproject.toml"
    if not path.is_file():
        raise UsageError(f"no pyproject.toml in {root}: asv and the gate build the package it describes")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


REQUIREMENT_ENV = "FACTORBENCH"
"""The environment variable that overrides the requirement asv installs factorbench as;
the workflow sets it."""
UNQUOTABLE = set("\"'$`{}\\")
"""Characters a requirement may not hold: it is written into a shell default in asv's
install command and a single-quoted string in the workflow."""


def portable_factorbench() -> tuple[str, str]:
    """(a pip requirement another machine can install for the factorbench running now,
    a note when here it came from a local folder instead): the git URL and commit it was
    installed from, else its version."""
    dist = importlib.metadata.distribution("factorbench")
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    url, vcs = direct.get("url", ""), direct.get("vcs_info")
    if vcs and not url.startswith("file://"):
        return f"factorbench @ {vcs['vcs']}+{url}@{vcs['commit_id']}", ""
    requirement = f"factorbench=={dist.version}"
    if url.startswith("file://"):
        return requirement, (f"factorbench is installed here from a local folder ({url}), which CI cannot "
                             f"reach: CI installs {requirement}. Elsewhere, pass --factorbench, or set "
                             f"{REQUIREMENT_ENV} (the workflow's env; here e.g. "
                             f"{REQUIREMENT_ENV}='factorbench @ {url}' for asv runs)")
    return requirement, ""


def checked_requirement(spec: str) -> str:
    bad = sorted(UNQUOTABLE & set(spec))
    if bad or not spec.strip():
        raise UsageError(f"--factorbench {spec!r}: give a pip requirement (factorbench==1.2, factorbench @ "
                         f"git+https://...) without {' '.join(sorted(UNQUOTABLE))}")
    return spec.strip()


def asv_config(name: str, factorbench: str) -> str:
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    config = {
        "version": 1,
        "project": name,
        "repo": ".",
        "branches": ["HEAD"],
        "environment_type": "virtualenv",
        "pythons": [python],
        # a wheel per commit into the cache by name (asv's default build cannot tell old wheels apart)
        "build_command": ["python -m pip wheel --no-deps -w {build_cache_dir} {build_dir}"],
        # asv runs no shell: sh reads FACTORBENCH (the workflow sets it) over the default
        "install_command": ["in-dir={env_dir} /bin/sh -c 'python -m pip install "
                            f"\"${{{{{REQUIREMENT_ENV}:-{factorbench}}}}}\" \"$0\"' {{wheel_file}}"],
        "benchmark_dir": "benchmarks",
        "env_dir": ".asv/env",
        "results_dir": ".asv/results",
        "html_dir": ".asv/html",
        "build_cache_size": 8,
    }
    return json.dumps(config, indent=4) + "\n"


def files(root: Path, table: dict, factorbench: str, kernels: list[str]) -> dict[Path, str]:
    name = table.get("project", {}).get("name") or root.name
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    suite = root / "benchmarks"
    return {
        root / "asv.conf.json": asv_config(name, factorbench),
        suite / "__init__.py": SUITE_INIT,
        suite / "suite.py": SUITE_MODULE.format(what="Benchmarks from the registry.", generated=GENERATED,
                                                module="suite", extra=""),
        suite / "kernels.py": SUITE_MODULE.format(
            what="asv time_/peakmem_/track_ benchmarks, one class per implementation.", generated=GENERATED,
            module="kernels", extra="from factorbench.benchmarks.kernels import __getattr__  # noqa: F401\n"),
        suite / "figures.py": SUITE_MODULE.format(what="asv track_ benchmarks of implementations' metrics().",
                                                  generated=GENERATED, module="figures", extra=""),
        suite / "count_instructions.py": COUNTER,
        root / ".github" / "workflows" / "benchmarks.yml": WORKFLOW.format(
            generated=GENERATED, python=python, factorbench=factorbench,
            kernels="".join(f"--kernel {shlex.quote(kernel)} " for kernel in kernels)),
    }


def start_plugin(root: Path, table: dict) -> str | None:
    """Write a plugin to start from outside the package and name it in pyproject.toml; the
    path written, or None when pyproject.toml has a [tool.factorbench] table already (the
    team's own, never rewritten) or the file exists."""
    if "factorbench" in table.get("tool", {}):
        errors.print("[yellow]note[/yellow]: pyproject.toml's [tool.factorbench] names no plugins; add "
                     'plugins = ["benchmarks/your_bench.py"] there so the gate and history measure every commit with them',
                     highlight=False, soft_wrap=True)
        return None
    name = table.get("project", {}).get("name") or root.name
    module = re.sub(r"\W", "_", name).lower()
    path = Path("benchmarks") / f"{module}_bench.py"
    if (root / path).exists():
        return None
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).write_text(PLUGIN_START.format(name=name, module=module, paradigm=re.sub(r"[^\w-]", "-", name),
                                                 generated=GENERATED))
    with (root / "pyproject.toml").open("a") as out:
        out.write(PLUGIN_TABLE.format(path=path.as_posix()))
    return path.as_posix()


def command(args) -> int:
    from factorbench.discovery import loaded_plugins
    from factorbench.kernels import kernel as get_kernel
    from factorbench.registry import implementations, use_plugins

    root = repository_root()
    table = project_table(root)
    if args.factorbench:
        factorbench, where = checked_requirement(args.factorbench), ""
    else:
        factorbench, where = portable_factorbench()
    declared = (table.get("project", {}).get("entry-points", {}).get("factorbench.plugins")
                or table.get("tool", {}).get("factorbench", {}).get("plugins"))
    started = None if declared else start_plugin(root, table)
    if started is not None:
        use_plugins([str(root / started)], origin="pyproject.toml")
    plugins = [plugin for plugin in loaded_plugins() if plugin.module is not None]
    ours = [impl for impl in implementations()
            if not impl.func.__module__.startswith("factorbench.")
            or not get_kernel(impl.kernel).reference.__module__.startswith("factorbench.")]
    kernels = sorted({impl.kernel for impl in ours})  # CI's quick run: every kernel the plugins define or implement
    written, kept = [], []
    for path, text in files(root, table, factorbench, kernels).items():
        if path.exists() and not args.force:
            kept.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    ignore = root / ".gitignore"
    if not ignore.exists():  # never rewritten, even with --force: it is the team's
        ignore.write_text(".asv/\n.factorbench/\nreports/\nbuild/\n*.egg-info/\n")
        written.append(ignore)
    elif ".asv" not in ignore.read_text():
        errors.print("[yellow]note[/yellow]: add .asv/ (asv's environments and results) to .gitignore", highlight=False)
    for path in written:
        console.print(f"wrote {escape(str(path.relative_to(root)))}", highlight=False)
    for path in kept:
        errors.print(f"[yellow]kept[/yellow] {escape(str(path.relative_to(root)))} (exists; --force overwrites)",
                     highlight=False)
    if started is not None:
        console.print(f"wrote {escape(started)}: your benchmarks, outside the package (named in pyproject.toml's "
                      r"\[tool.factorbench] plugins)", highlight=False, soft_wrap=True)
    console.print(f"plugins loaded here: {', '.join(p.name for p in plugins) or 'none'}; benchmarks: "
                  f"{', '.join(f'{impl.kernel}/{impl.name}' for impl in ours) or 'none'}", highlight=False,
                  soft_wrap=True)
    console.print(f"asv and CI install factorbench as: {escape(factorbench)} (unless {REQUIREMENT_ENV} is set)",
                  highlight=False, soft_wrap=True)
    if where:
        errors.print(f"[yellow]note[/yellow]: {escape(where)}", highlight=False, soft_wrap=True)
    console.print("next:\n"
                  "  git add asv.conf.json benchmarks .github .gitignore pyproject.toml "
                  "&& git commit -m 'factorbench benchmarks'\n"
                  "  asv machine --yes && asv run          # every benchmark at HEAD\n"
                  "  asv continuous main HEAD              # compare two commits\n"
                  "  factorbench gate main HEAD --mode callgrind   # instruction counts (CI's blocking gate)\n"
                  "  factorbench gate main HEAD --mode wall        # timed, confirmed twice",
                  highlight=False, soft_wrap=True)
    return 0
