"""Profile one implementation: a CPU flame graph (py-spy), its peak memory (memory_profiler)
and where the memory live at the peak was allocated (memray).

Each tool runs on a fresh child Python (``python -m factorbench.profiling MODE JOB``) that
builds the inputs, makes one warm-up call (JIT compile, pool start-up) and then calls the
implementation in a loop; the profilers start after the warm-up, so they show the steady
state and nothing else the parent process did. ``profile_results`` does this for every ok row of a results document.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factorbench.parallel import processes
from factorbench.results.schema import MEMORY_PEAK_KEY

"""Measurement extra: RSS at the peak of the calls minus RSS before them (MiB, children included)."""
DEFAULT_SECONDS = 2.0
MEMORY_SECONDS = 1.0
MEMRAY_SECONDS = 0.5
MAX_FLAME_DEPTH = 30
HARNESS_FILES = ("profiling.py", "registry.py")
SETUP_TIMEOUT_S = 120
"""Allowance for a child's imports, input generation and warm-up call, beyond the profiled seconds."""


class ProfileError(RuntimeError):
    """A profiling tool failed; the message says which and why."""


def _tool(name: str) -> str | None:
    """A console script installed next to this Python (the venv), else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def unavailable_tools() -> dict[str, str]:
    """Profiling tools that are missing here, with the reason."""
    missing = {}
    if _tool("py-spy") is None:
        missing["py-spy"] = "py-spy is not installed (pip install 'factorbench[profile]')"
    for module in ("memory_profiler", "memray"):
        if importlib.util.find_spec(module) is None:
            missing[module] = f"{module} is not installed (pip install 'factorbench[profile]')"
    return missing


def resolve(kernel: str, implementation: str, size: int | None = None, quick: bool = True) -> tuple:
    """(Implementation, params) for a profile; ValueError names an unknown or unavailable choice."""
    from factorbench.kernels import kernel as get_kernel
    from factorbench.registry import implementation as get_implementation

    spec = get_kernel(kernel)
    impl = get_implementation(kernel, implementation)
    if not impl.available:
        raise ValueError(f"{kernel}/{impl.name} is unavailable here: {impl.reason}")
    params = {**spec.defaults, **(spec.quick if quick else {})}
    if size is not None:
        params[spec.size_param] = size
    try:
        spec.validate(params)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{kernel}: {exc}") from None
    return impl, params


def _folder_name(kernel: str, name: str, params: dict, settings: dict) -> str:
    parts = [kernel, name] + [f"{k}{v}" for k, v in {**params, **settings}.items()]
    return "-".join("".join(ch if ch.isalnum() or ch in "._" else "_" for ch in str(p)) for p in parts)


def _child(mode: str, job: dict, timeout_s: float, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "factorbench.profiling", mode, json.dumps(job)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                              env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        raise ProfileError(f"{mode} profile took longer than {timeout_s:g} s") from None
    if done.returncode != 0:
        raise ProfileError(f"{mode} profile exited with status {done.returncode}: {_last_line(done.stderr)}")
    return done


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[0]


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1]


@contextlib.contextmanager
def _serving(job: dict):
    """A child calling the implementation until told to stop; yields its pid once it is warm."""
    command = [sys.executable, "-m", "factorbench.profiling", "serve", json.dumps(job)]
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    assert child.stdin and child.stdout and child.stderr, "all three are pipes"
    stdin, stdout, stderr = child.stdin, child.stdout, child.stderr
    try:
        ready, _, _ = select.select([stdout], [], [], SETUP_TIMEOUT_S)
        if not ready or stdout.readline().strip() != "ready":
            processes.kill_tree(child.pid)
            raise ProfileError(f"the profiled child did not start: {_last_line(stderr.read())}")
        yield child.pid
    finally:
        if child.poll() is None:
            stdin.close()  # the child stops at end of input and exits normally (pools shut down)
            try:
                child.wait(timeout=SETUP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                processes.kill_tree(child.pid)  # its pools' processes too
                child.wait()
        for stream in (stdout, stderr):
            stream.close()


def profile(kernel: str, implementation: str, params: dict, out_dir: str | os.PathLike, *,
            settings: dict | None = None, seconds: float = DEFAULT_SECONDS, seed: int = 0) -> dict:
    """Profile ``implementation`` of ``kernel`` at ``params``; files go under ``out_dir``.

    Returns {"dir", "artifacts": {name: path}, MEMORY_PEAK_KEY: MiB or None, "errors": {tool: reason},
    "notes": [...]}. A missing or failing tool is reported in "errors"; the others still run.
    """
    settings = settings or {}
    folder = Path(out_dir) / _folder_name(kernel, implementation, params, settings)
    folder.mkdir(parents=True, exist_ok=True)
    job = {"kernel": kernel, "implementation": implementation, "params": params, "settings": settings,
           "seed": seed, "seconds": seconds}
    timeout = SETUP_TIMEOUT_S + 10 * seconds
    outcome: dict[str, Any] = {"dir": str(folder.resolve()), "artifacts": {}, MEMORY_PEAK_KEY: None,
               "errors": dict(unavailable_tools()), "notes": []}

    def attempt(tool: str, step: Callable[[], None]) -> None:
        if tool in outcome["errors"]:
            return
        try:
            step()
        except (ProfileError, OSError, ValueError) as exc:
            outcome["errors"][tool] = str(exc)

    def cpu():
        target = folder / "cpu-flamegraph.svg"
        target.unlink(missing_ok=True)
        # --native attributes time inside NumPy/Numba/Cython code; --subprocesses follows the
        # worker processes of the multiprocessing and Dask paradigms.
        record = [_tool("py-spy"), "record", "--native", "--subprocesses", "--rate", "200", "--format", "flamegraph",
                  "-o", str(target)]
        with _serving(job) as pid:
            # Attached after the warm-up, so the flame graph shows the steady-state calls only.
            done = subprocess.run([*record, "--pid", str(pid), "--duration", str(max(1, round(seconds)))],
                                  capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            # Attaching to a process py-spy did not start needs ptrace rights (Yama ptrace_scope 1
            # allows descendants only): launch the child under py-spy instead; start-up then shows too.
            outcome["notes"].append(f"py-spy could not attach ({_first_line(done.stderr)}); "
                                    "the CPU flame graph includes start-up")
            done = subprocess.run([*record, "--", sys.executable, "-m", "factorbench.profiling", "loop",
                                   json.dumps(job)], capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not target.is_file() or target.stat().st_size == 0:
            raise ProfileError(f"py-spy wrote no flame graph (exit {done.returncode}): {_first_line(done.stderr)}")
        outcome["artifacts"]["cpu_flamegraph"] = str(target.resolve())

    def memory():
        # A fixed mmap threshold makes glibc return freed large blocks to the OS, so the RSS
        # before the measured calls does not already hold the warm-up call's buffers.
        done = _child("memory", job, timeout, env={"MALLOC_MMAP_THRESHOLD_": "131072"})
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        outcome[MEMORY_PEAK_KEY] = max(0.0, figures["peak_mib"] - figures["baseline_mib"])

    def allocations():
        capture = folder / "memray.bin"
        capture.unlink(missing_ok=True)
        _child("memray", {**job, "output": str(capture)}, timeout)
        svg = folder / "memory-flamegraph.svg"
        svg.write_text(memray_flame_svg(capture, f"{kernel}/{implementation}"))
        outcome["artifacts"]["memory_flamegraph"] = str(svg.resolve())
        html = folder / "memray-flamegraph.html"
        subprocess.run([sys.executable, "-m", "memray", "flamegraph", "-f", "-o", str(html), str(capture)],
                       capture_output=True, timeout=SETUP_TIMEOUT_S, check=True)
        outcome["artifacts"]["memray_html"] = str(html.resolve())

    attempt("memory_profiler", memory)
    attempt("py-spy", cpu)
    attempt("memray", allocations)
    return outcome


def memray_flame_svg(capture: Path, title: str) -> str:
    """Allocations live at the high-water mark of a memray capture, as a flame graph SVG."""
    import memray
    from memray.reporters.frame_tools import is_frame_interesting

    from factorbench.report import plots

    stacks: dict[tuple[str, ...], float] = {}
    with memray.FileReader(str(capture)) as reader:
        for record in reader.get_high_watermark_allocation_records(merge_threads=True):
            # memray's own filter hides the interpreter's frames between Python and native code.
            frames = [frame for frame in reversed(record.hybrid_stack_trace()) if is_frame_interesting(frame)]
            # Start below the harness (this module and the registry's __call__).
            harness = [i for i, (_, file, _) in enumerate(frames) if Path(file).name in HARNESS_FILES]
            frames = frames[harness[-1] + 1 if harness else 0:][:MAX_FLAME_DEPTH]
            key = tuple(function if file == "<unknown>" else f"{function} ({Path(file).name}:{line})"
                        for function, file, line in frames) or ("(unknown)",)
            stacks[key] = stacks.get(key, 0.0) + record.size / 2**20
    return plots.flame(stacks, title)


def profile_results(doc: dict, out_dir: str | os.PathLike, *, seconds: float = DEFAULT_SECONDS,
                    save: Callable[[dict], None] | None = None,
                    progress: Callable[[str, int, int], None] | None = None) -> float:
    """Profile every ok measurement of ``doc`` at its measured params and settings.

    Artifact paths and the memory peak go into each measurement's extra; ``save`` is
    called after each one so an interrupted profile loses nothing. Returns the seconds spent.
    """
    start = time.perf_counter()
    todo = [r for r in doc["results"] if r["status"] == "ok"]
    seed = doc["options"].get("seed", 0)
    for done, result in enumerate(todo):
        if progress:
            progress(f"profile {result['kernel']} {result['implementation']}", done, len(todo))
        outcome = profile(result["kernel"], result["implementation"], result["params"], out_dir,
                          settings=result.get("settings") or {}, seconds=seconds, seed=seed)
        extra = result.setdefault("extra", {})
        extra.setdefault("artifacts", {}).update(outcome["artifacts"])
        if outcome[MEMORY_PEAK_KEY] is not None:
            extra[MEMORY_PEAK_KEY] = outcome[MEMORY_PEAK_KEY]
        if outcome["errors"]:
            extra["profile_errors"] = outcome["errors"]
        if outcome["notes"]:
            extra["profile_notes"] = outcome["notes"]
        if save:
            save(doc)
    elapsed = time.perf_counter() - start
    doc["profiling"] = {"seconds": elapsed, "profiled": len(todo), "dir": str(Path(out_dir).resolve()),
                        "seconds_per_implementation": seconds}
    if save:
        save(doc)
    return elapsed


# --- child side: runs under the profilers -------------------------------------------------

def _calls(call: Callable[[], object], seconds: float) -> int:
    """Call repeatedly for ``seconds`` (at least once); memray's flame graph starts below this frame."""
    count, start = 0, time.perf_counter()
    while count == 0 or time.perf_counter() - start < seconds:
        call()
        count += 1
    return count


def _prepare(job: dict) -> Callable[[], object]:
    import numpy as np

    from factorbench.kernels import kernel as get_kernel
    from factorbench.registry import implementation as get_implementation

    spec = get_kernel(job["kernel"])
    impl = get_implementation(job["kernel"], job["implementation"])
    args = spec.make_args(job["params"], np.random.default_rng(job["seed"]))
    settings = job["settings"]

    def call():
        return impl(*args, **settings)

    call()  # warm-up: JIT compilation and pool start-up stay out of the profile
    gc.collect()
    return call


def _child_main(mode: str, job_text: str) -> None:
    job = json.loads(job_text)
    call = _prepare(job)
    if mode == "loop":
        _calls(call, job["seconds"])
    elif mode == "serve":
        print("ready", flush=True)
        deadline = time.perf_counter() + SETUP_TIMEOUT_S + 10 * job["seconds"]
        while not select.select([sys.stdin], [], [], 0)[0] and time.perf_counter() < deadline:
            _calls(call, 0.05)
    elif mode == "memory":
        from memory_profiler import memory_usage

        # The baseline is sampled the same way as the peak: memory_profiler's sampler is a
        # forked child, and include_children counts it in both.
        baseline = memory_usage((time.sleep, (0.1,), {}), interval=0.005, include_children=True, max_usage=True)
        # Sampling every 5 ms over many calls catches each call's peak of live buffers.
        peak = memory_usage((_calls, (call, min(job["seconds"], MEMORY_SECONDS)), {}), interval=0.005,
                            include_children=True, max_usage=True)
        print(json.dumps({"baseline_mib": baseline, "peak_mib": peak}))
    elif mode == "memray":
        import memray

        with memray.Tracker(job["output"], native_traces=True):
            _calls(call, min(job["seconds"], MEMRAY_SECONDS))
    else:
        raise SystemExit(f"unknown profiling mode {mode!r}")


if __name__ == "__main__":
    _child_main(sys.argv[1], sys.argv[2])
