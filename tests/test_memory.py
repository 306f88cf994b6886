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
