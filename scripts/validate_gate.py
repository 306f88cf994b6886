"""Check the regression gate on commits made for the purpose, in a throw-away clone.

    python scripts/validate_gate.py --mode both --runs 3

The clone gets two commits on top of HEAD: an empty one (A/A: same code, new hash) and
one that makes ``vectorized-cumsum`` SMA redo part of its work: one more centring and
cumulative sum, 1.41x its instructions at n=32,000 (1.3 to 2x its wall time). Each run
calls ``factorbench gate`` exactly as CI does, A/A and injected alternately so that the
machine's load falls on both; an A/A run passes when the gate exits 0, an injected run
is caught when the gate exits 1 naming only the injected implementation's benchmarks.
The clone (with its asv environments and builds) is deleted at the end unless --keep.
With --busy, every second pair of runs has a CPU-heavy Python loop running beside the
gate (on the other core of a 2-core machine), as a CI runner's neighbour would; with
--bench . the whole suite is gated:

    python scripts/validate_gate.py --mode callgrind --runs 4 --busy --bench .
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

TARGET_FILE = "implementations/vectorized.py"
TARGET_LINE = "    centred = np.where(finite, x - anchor, 0.0)\n"
INJECTED = TARGET_LINE + "    np.cumsum(np.where(finite, x - anchor, 0.0))  # injected: redoes part of the work\n"
TARGET_BENCHMARK = re.compile(r"^kernels\.sma__vectorized_cumsum\.")
DEFAULT_BENCH = r"sma__(vectorized|bottleneck)"

console = Console()


def git(clone: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(clone), *args], check=True, capture_output=True, text=True).stdout.strip()


def make_clone(source: Path, where: Path) -> tuple[Path, dict[str, str]]:
    clone = where / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(source), str(clone)], check=True)
    git(clone, "config", "user.email", "gate-validation@example.invalid")
    git(clone, "config", "user.name", "gate validation")
    base = git(clone, "rev-parse", "HEAD")
    git(clone, "commit", "--quiet", "--allow-empty", "-m", "A/A: no code change")
    same = git(clone, "rev-parse", "HEAD")
    git(clone, "checkout", "--quiet", base)
    path = clone / TARGET_FILE
    text = path.read_text()
    if text.count(TARGET_LINE) != 1:
        raise SystemExit(f"cannot inject: {TARGET_FILE} no longer has the line {TARGET_LINE.strip()!r}")
    path.write_text(text.replace(TARGET_LINE, INJECTED))
    git(clone, "commit", "--quiet", "-am", "inject a slowdown into vectorized-cumsum SMA")
    injected = git(clone, "rev-parse", "HEAD")
    return clone, {"base": base, "A/A": same, "injected": injected}


BUSY_LOOP = "import time\nwhile True:\n    sum(i * i for i in range(10_000))\n"


@contextlib.contextmanager
def cpu_heavy_neighbour(active: bool):
    """A busy Python loop beside the gate while the block runs, ended by its pid."""
    if not active:
        yield None
        return
    neighbour = subprocess.Popen([sys.executable, "-c", BUSY_LOOP])
    try:
        yield neighbour.pid
    finally:
        neighbour.kill()
        neighbour.wait()


def run_gate(clone: Path, base: str, head: str, mode: str, bench: str, extra: list[str]) -> dict:
    verdict = clone / "verdict.json"
    verdict.unlink(missing_ok=True)
    command = [sys.executable, "-m", "factorbench", "gate", base, head, "--mode", mode, "--bench", bench,
               "--json", str(verdict), *extra]
    start = time.monotonic()
    done = subprocess.run(command, cwd=clone, capture_output=True, text=True)
    elapsed = time.monotonic() - start
    if done.returncode not in (0, 1) or not verdict.exists():
        raise SystemExit(f"gate failed to run (exit {done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(verdict.read_text())
    return {"exit": done.returncode, "seconds": round(elapsed, 1), "regressions": result["regressions"],
            "ratios": {row["benchmark"]: row["ratio"] for row in result["rows"]},
            "unconfirmed": [row["benchmark"] for row in result["rows"] if row["status"] == "unconfirmed"],
            "noisy": {row["benchmark"]: row["note"] for row in result["rows"] if row["status"] == "noisy"},
            "wall_time_only": sum(row["status"] == "wall-time only" for row in result["rows"]),
            "compared": len(result["rows"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A/A and injected-slowdown runs of the regression gate.")
    parser.add_argument("--mode", choices=("wall", "callgrind", "both"), default="both")
    parser.add_argument("--runs", type=int, default=3, help="A/A runs and injected runs, each (default 3)")
    parser.add_argument("--bench", default=DEFAULT_BENCH, help=f"benchmarks to gate (default {DEFAULT_BENCH!r})")
    parser.add_argument("--out", default=".asv/gate-validation.json", help="where to write every run's outcome")
    parser.add_argument("--keep", action="store_true", help="keep the clone (its path is printed)")
    parser.add_argument("--busy", action="store_true",
                        help="run every second A/A + injected pair beside a CPU-heavy process")
    args = parser.parse_args(argv)

    source = Path(git(Path.cwd(), "rev-parse", "--show-toplevel"))
    if git(source, "status", "--porcelain", "--untracked-files=no"):
        console.print("[yellow]uncommitted changes are not part of the clone: HEAD is what gets validated[/yellow]")
    workdir = Path(tempfile.mkdtemp(prefix="factorbench-gate-validation-"))
    outcome: dict = {"bench": args.bench, "runs": args.runs, "modes": {}}
    try:
        clone, commits = make_clone(source, workdir)
        console.print(f"clone {clone}: base {commits['base'][:8]}, A/A {commits['A/A'][:8]}, "
                      f"injected {commits['injected'][:8]}")
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        for mode in ("wall", "callgrind") if args.mode == "both" else (args.mode,):
            runs = []
            for index in range(args.runs):
                busy = args.busy and index % 2 == 1
                for kind in ("A/A", "injected"):
                    with cpu_heavy_neighbour(busy):
                        run = run_gate(clone, commits["base"], commits[kind], mode, args.bench, [])
                    run["busy_neighbour"] = busy
                    flagged = run["regressions"]
                    if kind == "A/A":
                        run["ok"] = run["exit"] == 0
                    else:
                        run["ok"] = (run["exit"] == 1 and bool(flagged)
                                     and all(TARGET_BENCHMARK.match(name) for name in flagged))
                    run.update(kind=kind, index=index + 1)
                    runs.append(run)
                    console.print(f"{mode} {kind} run {index + 1}{' (busy neighbour)' if busy else ''}: "
                                  f"exit {run['exit']}, {run['seconds']} s, {run['compared']} compared "
                                  f"({run['wall_time_only']} wall-time only, {len(run['noisy'])} noisy), "
                                  f"flagged {flagged or 'nothing'}"
                                  + (f", unconfirmed {run['unconfirmed']}" if run["unconfirmed"] else "")
                                  + ("" if run["ok"] else "  [red]<- wrong verdict[/red]"))
                    Path(args.out).write_text(json.dumps({**outcome, "modes": {**outcome["modes"], mode: runs}},
                                                         indent=1))
            outcome["modes"][mode] = runs
        table = Table(title=f"gate validation: {args.runs} A/A and {args.runs} injected runs per mode, "
                            f"--bench {args.bench!r}")
        for column in ("mode", "A/A falsely failed", "injected caught (exactly)", "median run"):
            table.add_column(column)
        for mode, runs in outcome["modes"].items():
            aa = [run for run in runs if run["kind"] == "A/A"]
            injected = [run for run in runs if run["kind"] == "injected"]
            seconds = sorted(run["seconds"] for run in runs)
            table.add_row(mode, f"{sum(not run['ok'] for run in aa)} of {len(aa)}",
                          f"{sum(run['ok'] for run in injected)} of {len(injected)}",
                          f"{seconds[len(seconds) // 2]:.0f} s")
        console.print(table)
        Path(args.out).write_text(json.dumps(outcome, indent=1))
        console.print(f"every run: {args.out}")
    finally:
        if args.keep:
            console.print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
