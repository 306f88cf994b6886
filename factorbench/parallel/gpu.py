"""What the GPU paradigms (``cuda``, ``cupy``) share: two timings per implementation.

A GPU implementation is split at the host-device boundary:

- ``prepare(*host_args)`` copies the NumPy inputs to the device and allocates the
  output (and any work buffers); it returns the device operands;
- ``launch(*operands)`` only launches kernels (asynchronously) and returns the device
  result.

A normal call, the one the runner gates and times, is prepare + launch + a blocking copy
of the result back to a new NumPy array: its time includes both transfers, which is what
a NumPy caller pays. ``metrics()`` (run by the runner after timing) repeats ``launch`` on
device-resident copies of the last call's inputs, each launch bracketed by two CUDA
events on the launch stream and waited for with ``event.synchronize()``, and reports
that resident time with the bandwidth it achieves, next to the device's peak (from its
memory clock and bus width) and a measured device-to-device copy rate.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from functools import cached_property
from typing import Any, Protocol

import numpy as np

RESIDENT_REPEATS = 7
COPY_PROBE_BYTES = 256 * 2**20
"""Buffer for the copy-bandwidth probe: several times any L2 cache, so DRAM is measured."""


class Backend(Protocol):
    """The few device operations the timing needs, from Numba's or CuPy's API."""

    simulator: bool

    def event(self) -> Any: ...  # has record() and synchronize()

    def elapsed_s(self, start, end) -> float: ...

    def to_host(self, device_array) -> np.ndarray: ...

    def facts(self) -> dict: ...

    def copy_bandwidth(self, nbytes: int) -> float: ...


def peak_bandwidth(memory_clock_khz: int | None, bus_width_bits: int | None) -> float | None:
    """Theoretical DRAM bandwidth in bytes/s: two transfers per memory clock (DDR/HBM)
    times the bus width. None when the device does not report both attributes."""
    if not memory_clock_khz or not bus_width_bits:
        return None
    return 2.0 * memory_clock_khz * 1e3 * bus_width_bits / 8


def version_text(encoded: int) -> str:
    """CUDA's 1000*major + 10*minor encoding (12040) as '12.4'."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


def time_events(backend: Backend, run: Callable[[], object], repeats: int) -> list[float]:
    """Seconds per ``run()``, each measured between two events and waited for."""
    times = []
    for _ in range(repeats):
        start, end = backend.event(), backend.event()
        start.record()
        run()
        end.record()
        end.synchronize()
        times.append(backend.elapsed_s(start, end))
    return times


class DeviceCall:
    """One kernel's GPU implementation: NumPy in, NumPy out, plus resident-time metrics."""

    def __init__(self, backend: Callable[[], Backend], prepare: Callable[..., tuple],
                 launch: Callable[..., Any], doc: str):
        self._backend = backend
        self.prepare = prepare
        self.launch = launch
        self.__doc__ = doc
        self._last_args: tuple | None = None

    @cached_property
    def backend(self) -> Backend:
        return self._backend()

    def __call__(self, *args):
        result = self.launch(*self.prepare(*args))
        out = self.backend.to_host(result)  # blocking: the kernels have finished
        self._last_args = args
        return out

    def metrics(self) -> dict:
        """Resident timing of the last call's inputs (then forgotten, to free them)."""
        args, self._last_args = self._last_args, None
        if self.backend.simulator:
            return {"cuda_simulator": True}
        if args is None:
            return {}
        operands = self.prepare(*args)
        output_nbytes = self.launch(*operands).nbytes  # also warms caches and the allocator
        times = time_events(self.backend, lambda: self.launch(*operands), RESIDENT_REPEATS)
        resident = statistics.median(times)
        # Inputs read once plus the output written once: the kernel spec's bytes_moved.
        bytes_moved = sum(a.nbytes for a in args if isinstance(a, np.ndarray)) + output_nbytes
        try:
            facts = self.backend.facts()
        except Exception as exc:  # missing device metadata must not cost the measurement
            facts = {"error": f"{type(exc).__name__}: {exc}"}
        achieved = bytes_moved / resident
        figures = {
            "timing": "median: NumPy in and out, host-device copies included; "
                      "resident_*: kernels only on device-resident data, CUDA events",
            "resident_median_s": resident,
            "resident_times_s": times,
            "resident_bandwidth_Bps": achieved,
            "peak_bandwidth_Bps": facts.get("peak_bandwidth_Bps"),
            "copy_bandwidth_Bps": self.backend.copy_bandwidth(COPY_PROBE_BYTES),
            "gpu": facts,
        }
        if figures["peak_bandwidth_Bps"]:
            figures["resident_pct_of_peak"] = 100.0 * achieved / figures["peak_bandwidth_Bps"]
        return figures


def summary_rows(doc: dict) -> list[dict]:
    """One row per GPU measurement with resident figures, for the CLI's GPU table."""
    rows = []
    for result in doc["results"]:
        extra = result.get("extra") or {}
        if result["status"] != "ok" or "resident_median_s" not in extra:
            continue
        rows.append({
            "kernel": result["kernel"], "implementation": result["implementation"],
            "params": result["params"], "with_transfers_s": result["median"],
            "resident_s": extra["resident_median_s"],
            "resident_GBps": extra["resident_bandwidth_Bps"] / 1e9,
            "copy_GBps": (extra.get("copy_bandwidth_Bps") or 0) / 1e9 or None,
            "pct_of_peak": extra.get("resident_pct_of_peak"),
            "gpu": (extra.get("gpu") or {}).get("name", "?"),
        })
    return rows
