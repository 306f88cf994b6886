"""The memory a run may use: its bound, and every size the harness chooses within it. The
machine's own cache and memory never decide a test: the cache reader is pointed at a fake
sysfs, and the bound is set by --memory-limit (the real limits can only make it smaller)."""

from __future__ import annotations

from pathlib import Path

import pytest

from factorbench.cli import main
from factorbench.measure import floors
from factorbench.measure.memory import KEPT_FREE_FRACTION, MemoryBound, memory_bound
from factorbench.measure.runner import RunOptions, run
from factorbench.parallel import SYSFS_ENV, last_level_cache_bytes

MiB, GiB = 2**20, 2**30


def fake_sysfs(root: Path, cache: str, online: str) -> Path:
    """A sysfs whose CPU 0 has a 32K L1 and a last-level cache of ``cache`` (sysfs's own
    format, e.g. '491520K'), with ``online`` CPUs ('0-1')."""
    cpu = root / "devices" / "system" / "cpu"
    for index, size in (("index0", "32K"), ("index3", cache)):
        (cpu / "cpu0" / "cache" / index).mkdir(parents=True)
        (cpu / "cpu0" / "cache" / index / "size").write_text(f"{size}\n")
    (cpu / "online").write_text(f"{online}\n")
    return root


def test_the_cache_reader_reads_the_sysfs_it_is_pointed_at(tmp_path, monkeypatch):
    monkeypatch.setenv(SYSFS_ENV, str(fake_sysfs(tmp_path, "491520K", "0-1")))
    assert last_level_cache_bytes() == 480 * MiB
    monkeypatch.setenv(SYSFS_ENV, str(tmp_path / "nothing"))
    assert last_level_cache_bytes() is None


def test_a_virtual_cpus_huge_cache_does_not_blow_the_floors_up(tmp_path, monkeypatch):
    """The issue's machine: 2 CPUs reporting a 480 MiB cache, in a small container."""
    monkeypatch.setenv(SYSFS_ENV, str(fake_sysfs(tmp_path, "491520K", "0-1")))
    bound = memory_bound(256 * MiB)
    assert bound.limit_bytes <= 256 * MiB
    for quick in (True, False):
        nbytes, why = floors.array_bytes(quick, bound)
        assert floors.ARRAYS_AT_ONCE * nbytes <= bound.usable_bytes <= (1 - KEPT_FREE_FRACTION) * 256 * MiB
        assert "480 MiB last-level cache was ignored" in why
    assert "capped so 3 arrays fit the memory bound" in floors.array_bytes(False, bound)[1]


def test_a_plausible_cache_sets_the_floors_size_within_the_bound(tmp_path, monkeypatch):
    roomy = MemoryBound(64 * GiB, "--memory-limit")
    monkeypatch.setenv(SYSFS_ENV, str(fake_sysfs(tmp_path / "a", "32768K", "0-3")))
    assert floors.array_bytes(True, roomy) == (128 * MiB, "4 x the 32 MiB last-level cache")
    assert floors.array_bytes(False, roomy)[0] == floors.DEFAULT_BYTES
    # the same 480 MiB on a 64-CPU host is a real cache: 4 x 480 MiB, as far as memory allows
    monkeypatch.setenv(SYSFS_ENV, str(fake_sysfs(tmp_path / "b", "491520K", "0-63")))
    assert floors.array_bytes(True, roomy)[0] == 4 * 480 * MiB
    tight = MemoryBound(2 * GiB, "cgroup memory limit")
    nbytes, why = floors.array_bytes(True, tight)
    assert 3 * nbytes <= tight.usable_bytes and why.startswith("capped") and "4 x the 480 MiB" in why


def test_a_run_records_its_floor_size_and_why_within_its_memory_limit(tmp_path, monkeypatch):
    monkeypatch.setenv(SYSFS_ENV, str(fake_sysfs(tmp_path, "491520K", "0-1")))
    doc = run(RunOptions(kernels=["sma"], implementations=["vectorized-cumsum"], quick=True, rounds=1, repeat=1,
                         precision=None, time_budget_s=0.5, in_process=True, memory_limit_bytes=192 * MiB))
    bound, bandwidth = doc["machine"]["memory_bound"], doc["machine"]["bandwidth"]
    assert bound["limit_bytes"] <= 192 * MiB and bound["usable_bytes"] <= 144 * MiB
    assert 3 * bandwidth["bytes"] <= bound["usable_bytes"]
    assert "capped so 3 arrays fit" in bandwidth["bytes_why"]
    assert [row["status"] for row in doc["results"]] == ["ok"]


@pytest.mark.parametrize("text", ["0", "-1g", "2x", "lots"])
def test_a_bad_memory_limit_is_one_line_and_exit_2(text, capsys):
    assert main(["run", "--kernel", "sma", f"--memory-limit={text}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "--memory-limit" in err[-1] and "2g" in err[-1], err


def test_cases_and_workloads_that_cannot_fit_are_skipped_before_they_start(tmp_path):
    doc = run(RunOptions(kernels=["sma"], implementations=["vectorized-cumsum"], sizes=[1000, 4_000_000],
                         rounds=1, repeat=1, precision=None, time_budget_s=0.5, in_process=True,
                         memory_limit_bytes=96 * MiB))
    rows = {row["params"]["n"]: row for row in doc["results"]}
    assert rows[1000]["status"] == "ok"
    big = rows[4_000_000]
    assert big["status"] == "skipped" and big["times"] == [] and big["peak_rss_bytes"] is None
    # 2 x (8n + 8(n - 19)) + 8(n - 19) bytes: the case's arrays, a second output, the trusted answer
    assert "its inputs and outputs needs ~153 MiB, more than the memory bound of" in big["reason"]
    assert "--memory-limit of 96 MiB, less 25% kept free" in big["reason"]


def test_a_workload_whose_data_cannot_fit_is_skipped_with_its_size():
    from functools import partial

    from factorbench.measure.memory import too_big
    from factorbench.workloads import run_workload, workload

    spec = workload("overlap")
    if spec.reason:
        pytest.skip(f"overlap cannot run here: {spec.reason}")
    options = RunOptions(quick=True, workloads=["overlap"])
    section = run_workload("overlap", options, partial(too_big, bound=MemoryBound(4 * MiB, "--memory-limit")))
    assert section["status"] == "skipped" and section["rows"] == []
    assert section["reason"].startswith(f"its data needs ~{spec.data_bytes(options) / MiB:.3g} MiB, more than")
    assert "--memory-limit of 4 MiB" in section["reason"]


PLUGINS = Path(__file__).with_name("plugins")
SMALL, LARGE = 50_000, 300_000  # the faulty implementations misbehave above 200,000 elements


def factorbench(*args, timeout=300, preexec_fn=None):
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "200", "FACTORBENCH_PLUGINS": "fb_faulty_paradigm",
           "PYTHONPATH": os.pathsep.join([str(PLUGINS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "factorbench", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, preexec_fn=preexec_fn)


def hoarding_run(tmp_path, *options, preexec_fn=None) -> dict:
    """A quick run of an implementation that fills memory at the large size, beside a good one."""
    from factorbench.results import schema

    path, report = tmp_path / "results.json", tmp_path / "report.html"
    done = factorbench("run", "--quick", "--kernel", "sma", "--size", f"{SMALL},{LARGE}",
                       "--implementation", "hoards-memory", "--implementation", "vectorized-cumsum",
                       "--time-budget", "0.3", "--json", str(path), "--report", str(report), *options,
                       preexec_fn=preexec_fn)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert report.exists() and "hoards-memory" in report.read_text()
    doc = schema.load(path)
    rows = {(row["implementation"], row["params"]["n"]): row for row in doc["results"]}
    assert len(rows) == 4
    for key, row in rows.items():
        if key != ("hoards-memory", LARGE):  # nothing else lost
            assert row["status"] == "ok" and len(row["round_medians"]) == 3, row
            assert row["peak_rss_bytes"] > 10 * MiB
    return rows[("hoards-memory", LARGE)]


def test_a_worker_past_its_memory_limit_is_an_out_of_memory_row_and_the_run_goes_on(tmp_path):
    """--memory-limit holds every worker to it (RLIMIT_AS): the allocation past it fails."""
    row = hoarding_run(tmp_path, "--memory-limit", "512m")
    assert row["status"] == "crashed", row
    assert row["reason"].startswith("out of memory: MemoryError: ") and "; peak RSS " in row["reason"]
    assert "; limit: --memory-limit 512 MiB (RLIMIT_AS" in row["reason"]
    assert 10 * MiB < row["peak_rss_bytes"]


def memory_cgroup(name: str, limit_bytes: int) -> Path | None:
    """A new child of this process's memory cgroup limited to ``limit_bytes``: v1
    (memory.limit_in_bytes) or v2 (memory.max); None where cgroups cannot be written."""
    from factorbench.measure import cgroups

    memberships = cgroups._memberships()
    candidates = []
    if "memory" in memberships:
        candidates.append((cgroups.CGROUP_ROOT / "memory" / memberships["memory"].lstrip("/"), "memory.limit_in_bytes"))
    if "" in memberships and (cgroups.CGROUP_ROOT / "cgroup.controllers").exists():
        candidates.append((cgroups.CGROUP_ROOT / memberships[""].lstrip("/"), "memory.max"))
    for parent, limit_file in candidates:
        folder = parent / name
        try:
            folder.mkdir()
        except OSError:
            continue
        try:
            (folder / limit_file).write_text(str(limit_bytes))
            return folder
        except OSError:
            folder.rmdir()
    return None


def test_a_worker_the_oom_killer_ends_is_an_out_of_memory_row_and_the_run_goes_on(tmp_path):
    """A real OOM kill: the run in a cgroup limited to 1 GiB, without --memory-limit, so
    the hoarding worker fills the cgroup and the kernel's OOM killer ends it."""
    import os
    import time

    folder = memory_cgroup(f"factorbench-test-{os.getpid()}", 2**30)
    if folder is None:
        pytest.skip("no writable memory cgroup here (the RLIMIT_AS test covers --memory-limit)")
    try:
        row = hoarding_run(tmp_path, preexec_fn=lambda: (folder / "cgroup.procs").write_text(str(os.getpid())))
    finally:
        for _ in range(50):  # its processes may take a moment to leave it
            try:
                folder.rmdir()
                break
            except OSError:
                time.sleep(0.1)
    assert row["status"] == "crashed", row
    assert row["reason"].startswith("out of memory: the OOM killer ended the worker (SIGKILL"), row["reason"]
    assert "limit: the cgroup memory limit of 1 GiB" in row["reason"]
    assert 100 * MiB < row["peak_rss_bytes"] <= 2**30
