"""Reading cgroup limits: the kernel's file formats (v2 as a container on a cgroup v2 host
sees them, written into a folder), and this host's own cgroup as it is."""

from pathlib import Path

import pytest

from factorbench.measure import cgroups


def test_cpu_lists_in_the_kernel_format():
    assert cgroups.parse_cpu_list("0-2,5\n") == [0, 1, 2, 5]
    assert cgroups.parse_cpu_list("3") == [3]


def test_v2_limits_take_the_tightest_of_the_cgroup_and_its_parents(tmp_path, monkeypatch):
    leaf = tmp_path / "machine.slice" / "libpod-1.scope"
    leaf.mkdir(parents=True)
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu memory\n")
    (leaf / "cpuset.cpus.effective").write_text("0-1\n")
    (leaf / "cpu.max").write_text("max 100000\n")
    (leaf / "memory.max").write_text(f"{2 * 2**30}\n")
    (leaf.parent / "cpu.max").write_text("150000 100000\n")
    (leaf.parent / "memory.max").write_text("max\n")
    monkeypatch.setattr(cgroups, "CGROUP_ROOT", tmp_path)
    monkeypatch.setattr(cgroups, "_memberships", lambda: {"": "/machine.slice/libpod-1.scope"})
    found = cgroups.limits()
    assert (found["cgroup_version"], found["cpuset"], found["cpu_quota"], found["memory_limit_bytes"]) == \
        (2, [0, 1], 1.5, 2 * 2**30)


def test_this_process_cgroup_allows_the_cpus_it_runs_on():
    import os

    root = Path("/sys/fs/cgroup")
    controllers = root / "cgroup.controllers"
    if not ((root / "cpuset").is_dir() or (controllers.exists() and "cpuset" in controllers.read_text().split())):
        pytest.skip("no cpuset controller is mounted here")
    found = cgroups.limits()
    assert found["cgroup_version"] in (1, 2)
    assert found["cpuset"] is not None, found
    assert set(os.sched_getaffinity(0)) <= set(found["cpuset"])
