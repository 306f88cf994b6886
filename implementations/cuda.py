"""Numba's CUDA target (the maintained numba-cuda package): kernels written by hand.

The EMA is a parallel scan of the affine recurrence y_i = a_i*y_{i-1} + b_i (a_0 = 0,
b_0 = x_0; a_i = 1-alpha, b_i = alpha*x_i), not the article's gpu_ema, which reads
out[i-1] written by another thread of the same launch (a race). Maps y -> a*y + b
compose associatively, (a2, b2) after (a1, b1) = (a2*a1, a2*b1 + b2), so the scan runs
in three launches ("reduce, then scan"):

1. each block stages a tile of THREADS*ITEMS elements in shared memory, every thread
   composes its ITEMS consecutive maps serially, and a Hillis-Steele scan over the block
   in shared memory gives the tile's map;
2. one block of 1024 threads scans the tile maps into each tile's carry, the EMA value
   just before the tile (each thread composes a segment of maps serially, the block scans
   the segment maps, each thread walks its segment again);
3. the fix-up: each block rescans its tile as in 1 and applies its carry, writing the
   EMA through shared memory so the stores stay coalesced.

Rescanning in 3 instead of storing phase 1's local scan costs a second read of x
(24 bytes per element in all) instead of a write and a read of a partial result (32).
Products of (1-alpha) underflow to 0 over long runs, which is exact in the limit, and a
NaN propagates forward exactly as in the serial recurrence.

Setting NUMBA_ENABLE_CUDASIM=1 before numba is imported runs these kernels in Numba's
CUDA simulator on the CPU: correct but thousands of times slower, so the runner gates
them there and does not time them. Kernels compile on first use, never at import.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from functools import cache

import numpy as np

from factorbench.impls._support import arrays
from factorbench.parallel.gpu import DeviceCall, peak_bandwidth, time_events
from factorbench.registry import Paradigm


def _simulator() -> bool:
    import numba

    return bool(numba.config.ENABLE_CUDASIM)


def _probe() -> str | None:
    if importlib.util.find_spec("numba_cuda") is None:
        return "numba-cuda not installed (pip install -e '.[cuda]')"
    from numba import cuda

    if cuda.is_available():  # the simulator counts as available
        return None
    return "no CUDA device (numba.cuda.is_available() is False)"


def _untimed() -> str | None:
    return "CUDA simulator (NUMBA_ENABLE_CUDASIM=1)" if _simulator() else None


PARADIGM = Paradigm("cuda", "hand-written CUDA kernels through Numba (numba-cuda); EMA as a parallel scan",
                    rank=70, probe=_probe, untimed=_untimed, countable=False,
                    uncountable_why="GPU: the work runs on the device, the host's count follows how long it takes")


class _Backend:
    """Numba's device API for factorbench.parallel.gpu: events, copies, device facts."""

    def __init__(self):
        from numba import cuda

        self.cuda = cuda
        self.simulator = _simulator()

    def event(self):
        return self.cuda.event(timing=True)

    def elapsed_s(self, start, end) -> float:
        return self.cuda.event_elapsed_time(start, end) / 1e3

    def to_host(self, device_array) -> np.ndarray:
        return device_array.copy_to_host()

    @cache
    def facts(self) -> dict:
        if self.simulator:
            return {"name": "Numba CUDA simulator", "cuda_simulator": True}
        from numba.cuda.cudadrv import driver

        device = self.cuda.get_current_device()
        free, total = self.cuda.current_context().get_memory_info()
        try:
            clock_khz, bus_bits = device.MEMORY_CLOCK_RATE, device.GLOBAL_MEMORY_BUS_WIDTH
        except Exception:  # attributes some drivers no longer report
            clock_khz = bus_bits = None
        name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
        return {
            "name": name,
            "compute_capability": ".".join(map(str, device.compute_capability)),
            "multiprocessors": device.MULTIPROCESSOR_COUNT,
            "memory_bytes": total,
            "memory_free_bytes": free,
            "memory_clock_khz": clock_khz,
            "memory_bus_bits": bus_bits,
            "peak_bandwidth_Bps": peak_bandwidth(clock_khz, bus_bits),
            "driver_version": ".".join(map(str, driver.get_version())),
            "runtime_version": ".".join(map(str, self.cuda.runtime.get_version())),
            "library": "numba-cuda " + importlib.metadata.version("numba-cuda"),
        }

    @cache
    def copy_bandwidth(self, nbytes: int) -> float:
        """Device-to-device copy rate, bytes read plus written per second."""
        source = self.cuda.device_array(nbytes // 8)
        target = self.cuda.device_array(nbytes // 8)
        target.copy_to_device(source)
        times = time_events(self, lambda: target.copy_to_device(source), 3)
        return 2 * nbytes / min(times)


@cache
def _backend() -> _Backend:
    return _Backend()


def _to_device(array: np.ndarray):
    """Device copy in the array's own layout; other strided views are made C-contiguous first."""
    from numba import cuda

    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = np.ascontiguousarray(array)
    return cuda.to_device(array)


def _blocks(count: int, per_block: int) -> int:
    return max(1, -(-count // per_block))


def _kernels():
    """The kernels module, imported (and its kernels compiled) on first use, never at import."""
    from factorbench.impls._support import cuda_loops

    return cuda_loops


# --- EMA ---------------------------------------------------------------------------------

def _ema_prepare(x, alpha):
    from numba import cuda

    x, alpha = arrays.alpha_input(x, alpha)
    tiles = _blocks(len(x), _kernels().TILE)
    return (_to_device(x), alpha, cuda.device_array(tiles), cuda.device_array(tiles),
            cuda.device_array(tiles), cuda.device_array(len(x)))


def _ema_launch(d_x, alpha, map_a, map_b, carry, out):
    k = _kernels()
    tiles = map_a.shape[0]
    k.ema_tile_maps[tiles, k.THREADS](d_x, alpha, map_a, map_b)
    k.ema_tile_carries[1, k.CARRY_THREADS](map_a, map_b, carry, alpha)
    k.ema_tile_outputs[tiles, k.THREADS](d_x, alpha, carry, out)
    return out


# --- SMA ---------------------------------------------------------------------------------

def _sma_prepare(x, window):
    from numba import cuda

    x, window = arrays.window_input(x, window)
    return _to_device(x), window, cuda.device_array(len(x) - window + 1)


def _sma_launch(d_x, window, out):
    k = _kernels()
    run = max(k.SMA_MIN_RUN, window)
    k.sma_runs[_blocks(_blocks(out.shape[0], run), k.THREADS), k.THREADS](d_x, window, run, out)
    return out


# --- row sums and the Gram column sums -----------------------------------------------------

def _dots(m, weights, out, partial):
    """out[i] = sum_j m[i, j] * weights[j] (weights None: plain sums), choosing the kernel
    by layout: along the rows when they are contiguous, else down the columns of m.T."""
    k = _kernels()
    weighted = weights is not None
    w = weights if weighted else out  # an unread stand-in keeps one compiled signature
    if m.is_c_contiguous():
        k.dots_along[m.shape[0], k.THREADS](m, w, weighted, out)
    else:
        m_t = m.T  # column-major m: m.T has contiguous rows
        grid = (_blocks(m_t.shape[1], k.THREADS), partial.shape[0])
        k.dots_across[grid, k.THREADS](m_t, w, weighted, partial)
        k.sum_partials[_blocks(out.shape[0], k.THREADS), k.THREADS](partial, out)
    return out


def _partial_for(d_m):
    """The chunk-sums buffer _dots needs for a matrix without contiguous rows, else None."""
    from numba import cuda

    if d_m.is_c_contiguous():
        return None
    return cuda.device_array((_blocks(d_m.shape[1], _kernels().ACROSS_CHUNK), d_m.shape[0]))


def _row_sums_prepare(m):
    from numba import cuda

    m = arrays.matrix(m)
    d_m = _to_device(m)
    return d_m, cuda.device_array(m.shape[0]), _partial_for(d_m)


def _row_sums_launch(d_m, out, partial):
    return _dots(d_m, None, out, partial)


def _gram_prepare(x):
    from numba import cuda

    x = arrays.matrix(x, "x")
    d_x = _to_device(x)
    rows, cols = x.shape
    return (d_x, cuda.device_array(rows), _partial_for(d_x), cuda.device_array(cols), _partial_for(d_x.T))


def _gram_launch(d_x, row_sums, row_partial, out, col_partial):
    # (x.T @ x).sum(axis=0)[j] = sum_r x[r, j] * (sum_i x[r, i]): two passes over x, no Gram matrix.
    _dots(d_x, None, row_sums, row_partial)
    return _dots(d_x.T, row_sums, out, col_partial)


# --- trig --------------------------------------------------------------------------------

def _trig_prepare(a, b):
    from numba import cuda

    a, b = arrays.pair(a, b)
    order = "F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C"
    a = np.asarray(a, order=order)  # copies only strided views and the other layout
    b = np.asarray(b, order=order)
    return (cuda.to_device(a.ravel(order=order)), cuda.to_device(b.ravel(order=order)),
            cuda.device_array(a.size), a.shape, order)


def _trig_launch(d_a, d_b, out, shape, order):
    k = _kernels()
    k.trig_flat[_blocks(out.shape[0], k.THREADS), k.THREADS](d_a, d_b, out)
    return out.reshape(shape, order=order)


def _register(kernel: str, prepare, launch, doc: str, name: str | None = None) -> DeviceCall:
    call = DeviceCall(_backend, prepare, launch, doc)
    PARADIGM.implements(kernel, name=name, metrics=call.metrics)(call)
    return call


_register("sma", _sma_prepare, _sma_launch,
          "one thread per run of max(16, window) outputs: direct first window, then a running "
          "sum with a NaN count")
_register("ema", _ema_prepare, _ema_launch,
          "three-launch parallel scan of the affine maps (tile maps, one-block carries, fix-up)")
_register("row_sums", _row_sums_prepare, _row_sums_launch,
          "C order: one block per row, shared-memory tree sum; F order: thread per row over "
          "column chunks, then the chunk sums")
_register("trig", _trig_prepare, _trig_launch, "one thread per element, math.sin/math.cos")
_register("gram_colsum", _gram_prepare, _gram_launch,
          "row sums s, then column dots x.T @ s (reassociated: no cols x cols Gram matrix)",
          name="cuda-reassociated")
