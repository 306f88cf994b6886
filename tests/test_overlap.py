"""The asyncio + process pool overlap workload: a real local HTTP server, real workers."""

import socket
from urllib.parse import urlsplit

import pytest

from factorbench.measure.runner import RunOptions, run, validate_options

pytest.importorskip("aiohttp", reason="the overlap workload needs aiohttp (the overlap extra)")

TINY = {"matrix": 120, "cpu_tasks": 2, "batches": 6, "latency_ms": 10, "payload_kb": 4, "concurrency": 3,
        "repeat": 1}


def test_overlap_reports_each_phase_overlaps_them_and_stops_its_server():
    doc = run(RunOptions(workloads=["overlap"], params=TINY))
    assert doc["results"] == []  # --workload alone runs no kernels
    (section,) = doc["workloads"]
    assert section["status"] == "ok", section.get("traceback")
    assert section["params"]["latency_ms"] == 10 and section["params"]["matrix"] == 120
    times = {row["label"].split(":")[0]: row["time"] for row in section["rows"]}
    assert list(times) == ["CPU only", "I/O only", "sequential (CPU + I/O)", "overlapped (asyncio.gather)",
                           "ideal"]
    assert section["units"]["time"] == "s"
    assert times["sequential (CPU + I/O)"] == pytest.approx(times["CPU only"] + times["I/O only"])
    assert times["ideal"] == max(times["CPU only"], times["I/O only"])
    # Six requests, three in flight, 10 ms each: the I/O phase cannot be faster than two rounds.
    assert times["I/O only"] >= 0.02
    cpu, io = section["overlap"]["phases"]["cpu"], section["overlap"]["phases"]["io"]
    assert cpu[0] < io[1] and io[0] < cpu[1]  # both phases were in flight at once
    assert len(section["latency"]["overlapped"]["samples"]) == 6
    assert "residual" in section["notes"][-1]
    host, port = urlsplit(section["server"]).hostname, urlsplit(section["server"]).port
    assert host == "127.0.0.1"
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, port), timeout=5):
        pass


@pytest.mark.parametrize("params, message", [
    ({"latency_ms": -1}, "workload overlap: latency_ms must be a number >= 0, got -1"),
    ({"batches": 0}, "workload overlap: batches must be a positive integer, got 0"),
    ({"matrix": "big"}, "workload overlap: matrix must be a positive integer, got 'big'"),
])
def test_bad_parameters_are_rejected_before_anything_runs(params, message):
    with pytest.raises(ValueError, match=message):
        validate_options(RunOptions(workloads=["overlap"], params=params))


def test_workload_parameters_belong_to_the_workload_only():
    with pytest.raises(ValueError, match="latency_ms belong to none of the selected kernels"):
        validate_options(RunOptions(kernels=["sma"], params={"latency_ms": 5}))
