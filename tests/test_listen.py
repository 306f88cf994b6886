"""Every server the harness starts listens on 127.0.0.1 only: the Dask scheduler, its
workers' comms and their HTTP servers (health, metrics), the LocalCluster, the overlap
workload's tick server. Checked on the real listening sockets of the processes (psutil)."""

import json
import os
import socket
import subprocess
import sys
import urllib.request

import psutil
import pytest

pytestmark = pytest.mark.slow  # starts Dask clusters and servers

LOOPBACK = {"127.0.0.1", "::1"}


def listening(processes: list[psutil.Process]) -> list[tuple[str, str, int]]:
    """(process, address, port) of every TCP socket the processes listen on."""
    sockets = []
    for process in processes:
        with_name = f"{process.pid} {' '.join(process.cmdline()[1:4])}"
        for conn in process.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                sockets.append((with_name, conn.laddr.ip, conn.laddr.port))
    return sockets


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_loopback_only(sockets, expected_at_least: int) -> None:
    wildcard = [s for s in sockets if s[1] not in LOOPBACK]
    assert not wildcard, f"listening beyond this machine: {wildcard}"
    assert len(sockets) >= expected_at_least, sockets


def test_cluster_start_listens_on_loopback_only(tmp_path):
    pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'factorbench[dask]')")
    state = tmp_path / "cluster.json"
    command = [sys.executable, "-m", "factorbench", "cluster", "start", "--workers", "2",
               "--port", str(free_port()), "--state", str(state)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    try:
        info = json.loads(state.read_text())
        started = [psutil.Process(entry["pid"]) for entry in info["processes"]]
        # Each `dask worker` is a nanny with its worker process below it.
        everything = started + [child for p in started for child in p.children(recursive=True)]
        # scheduler comm + dashboard, and per worker: nanny comm, worker comm, worker HTTP
        assert_loopback_only(listening(everything), expected_at_least=2 + 3 * 2)
    finally:
        subprocess.run([sys.executable, "-m", "factorbench", "cluster", "stop", "--state", str(state)],
                       capture_output=True, timeout=60)


def test_local_cluster_listens_on_loopback_only():
    pytest.importorskip("distributed", reason="the dask extra is not installed (pip install 'factorbench[dask]')")
    from factorbench.parallel import schedulers

    schedulers.close_all()
    try:
        with schedulers.client_for(schedulers.LOCAL_CLUSTER):
            processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
            assert_loopback_only(listening(processes), expected_at_least=1 + 2 * schedulers.cores())
    finally:
        schedulers.close_all()


def test_overlap_tick_server_listens_on_loopback_only():
    from factorbench.workloads.overlap import tick_server

    with tick_server(payload=b"x" * 10, latency_s=0.0) as url:
        assert urllib.request.urlopen(url, timeout=10).read() == b"x" * 10
        port = int(url.rsplit(":", 1)[1])
        sockets = [s for s in listening([psutil.Process()]) if s[2] == port]
        assert_loopback_only(sockets, expected_at_least=1)


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="needs Linux's /proc/net")
def test_listening_finds_a_wildcard_socket():
    """The check can fail: a socket on 0.0.0.0 is reported."""
    with socket.socket() as server:
        server.bind(("0.0.0.0", 0))
        server.listen()
        with pytest.raises(AssertionError, match="listening beyond this machine"):
            assert_loopback_only(listening([psutil.Process()]), expected_at_least=1)
