"""CuPy: NumPy's API on the GPU, plus small CUDA C kernels where no CuPy op is correct.

- sma: an ElementwiseKernel summing each window directly. CuPy has no moving-window
  op, and cupy.convolve always goes through an FFT for floats, which would spread one
  NaN over every output. Direct sums are exact and follow the NaN rule by
  construction, at O(window) reads per output, served by the caches for usual windows.
- ema: the same three-launch scan of affine maps as the ``cuda`` paradigm, in CUDA C
  (RawModule, compiled by NVRTC on first use). A cumprod closed form underflows after a
  few thousand points, so no composition of CuPy ops is correct.
- row_sums, gram_colsum: CuPy reductions and cuBLAS, on data copied in its own layout.
- trig: one fused ElementwiseKernel (no temporaries).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from types import SimpleNamespace

import numpy as np

from factorbench.impls._support import arrays
from factorbench.parallel.gpu import DeviceCall, peak_bandwidth, time_events, version_text
from factorbench.registry import Paradigm

THREADS = 256
ITEMS = 11
CARRY_THREADS = 1024

EMA_SOURCE = r"""
#define THREADS %(threads)d
#define ITEMS %(items)d
#define TILE (THREADS * ITEMS)
#define CARRY_THREADS %(carry_threads)d

// A later map applied to y: a * y + b. While alpha < 1 (keeps) a later map's a is a power
// of (1 - alpha), which may underflow to 0 but is never 0 in the recurrence: an infinite
// y stays infinite instead of becoming 0 * inf = NaN.
__device__ double apply_map(double a, double y, double b, bool keeps) {
    return (keeps && isinf(y)) ? y + b : a * y + b;
}

// Inclusive Hillis-Steele scan of `width` maps y -> a*y + b in shared memory: afterwards
// slot t holds maps 0..t composed, (a2, b2) after (a1, b1) = (a2*a1, a2*b1 + b2).
__device__ void block_scan(double* sa, double* sb, int t, int width, bool keeps) {
    for (int offset = 1; offset < width; offset *= 2) {
        double pa = 1.0, pb = 0.0;
        if (t >= offset) { pa = sa[t - offset]; pb = sb[t - offset]; }
        __syncthreads();
        if (t >= offset) { sb[t] = apply_map(sa[t], pb, sb[t], keeps); sa[t] = sa[t] * pa; }
        __syncthreads();
    }
}

// Stage this block's tile of x in shared memory (coalesced loads) and scan the per-thread
// maps; thread t owns the ITEMS consecutive elements from t * ITEMS in the tile.
__device__ void scan_tile(const double* x, long long n, double alpha,
                          double* tile, double* sa, double* sb) {
    const int t = threadIdx.x;
    const long long start = (long long)blockIdx.x * TILE;
    for (int j = 0; j < ITEMS; ++j) {
        long long i = start + (long long)j * THREADS + t;
        if (i < n) tile[j * THREADS + t] = x[i];
    }
    __syncthreads();
    const double decay = 1.0 - alpha;
    double a = 1.0, b = 0.0;
    for (int j = 0; j < ITEMS; ++j) {
        long long i = start + (long long)t * ITEMS + j;
        if (i < n) {
            double value = tile[t * ITEMS + j];
            if (i == 0) { a = 0.0; b = value; }  // out[0] = x[0]: the constant map
            else { a = decay * a; b = decay * b + alpha * value; }
        }
    }
    sa[t] = a; sb[t] = b;
    __syncthreads();
    block_scan(sa, sb, t, THREADS, alpha < 1.0);
}

extern "C" __global__ void ema_tile_maps(const double* x, long long n, double alpha,
                                         double* map_a, double* map_b) {
    __shared__ double tile[TILE];
    __shared__ double sa[THREADS], sb[THREADS];
    scan_tile(x, n, alpha, tile, sa, sb);
    if (threadIdx.x == THREADS - 1) {
        map_a[blockIdx.x] = sa[THREADS - 1];
        map_b[blockIdx.x] = sb[THREADS - 1];
    }
}

// One block: carry[k] = the EMA just before tile k. Each thread composes a segment of
// consecutive tile maps, the block scans the segment maps, and each thread walks its
// segment again from the value before it (tile 0's map is constant, so y = 0 is exact).
extern "C" __global__ void ema_tile_carries(const double* map_a, const double* map_b,
                                            long long tiles, double* carry, double alpha) {
    const bool keeps = alpha < 1.0;
    __shared__ double sa[CARRY_THREADS], sb[CARRY_THREADS];
    const int t = threadIdx.x;
    const long long segment = (tiles + CARRY_THREADS - 1) / CARRY_THREADS;
    const long long first = min(t * segment, tiles);
    const long long last = min(first + segment, tiles);
    double a = 1.0, b = 0.0;
    for (long long k = first; k < last; ++k) { b = apply_map(map_a[k], b, map_b[k], keeps); a = map_a[k] * a; }
    sa[t] = a; sb[t] = b;
    __syncthreads();
    block_scan(sa, sb, t, CARRY_THREADS, keeps);
    double y = t > 0 ? sb[t - 1] : 0.0;  // the segments before, applied to y = 0
    for (long long k = first; k < last; ++k) { carry[k] = y; y = apply_map(map_a[k], y, map_b[k], keeps); }
}

// Fix-up: rescan the tile from its carry and write the EMA through shared memory.
extern "C" __global__ void ema_tile_outputs(const double* x, long long n, double alpha,
                                            const double* carry, double* out) {
    __shared__ double tile[TILE];
    __shared__ double sa[THREADS], sb[THREADS];
    scan_tile(x, n, alpha, tile, sa, sb);
    const int t = threadIdx.x;
    const long long start = (long long)blockIdx.x * TILE;
    double y = carry[blockIdx.x];
    if (t > 0) y = apply_map(sa[t - 1], y, sb[t - 1], alpha < 1.0);
    const double decay = 1.0 - alpha;
    for (int j = 0; j < ITEMS; ++j) {  // each thread rewrites only its own slots
        long long i = start + (long long)t * ITEMS + j;
        if (i < n) {
            double value = tile[t * ITEMS + j];
            y = i == 0 ? value : decay * y + alpha * value;
            tile[t * ITEMS + j] = y;
        }
    }
    __syncthreads();
    for (int j = 0; j < ITEMS; ++j) {
        long long i = start + (long long)j * THREADS + t;
        if (i < n) out[i] = tile[j * THREADS + t];
    }
}
""" % {"threads": THREADS, "items": ITEMS, "carry_threads": CARRY_THREADS}

SMA_BODY = """
double total = 0.0;
for (long long j = 0; j < window; ++j) total += x[i + j];
out = total / window;
"""
"""Direct window sum: a NaN reaches exactly the windows that contain it."""

TRIG_BODY = "double s = sin(a), c = cos(b); out = s * s + c * c;"


def _probe() -> str | None:
    if importlib.util.find_spec("cupy") is None:
        return "CuPy not installed (pip install -e '.[cuda]')"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # no driver, or a driver older than CuPy's CUDA runtime
        return f"no CUDA device or usable driver (cudaGetDeviceCount: {exc})"
    return None if count > 0 else "no CUDA device (cudaGetDeviceCount() is 0)"


PARADIGM = Paradigm("cupy", "CuPy arrays and ops on the GPU, small CUDA C kernels where needed",
                    rank=75, probe=_probe, countable=False,
                    uncountable_why="GPU: the work runs on the device, the host's count follows how long it takes")


class _Backend:
    """CuPy's device API for factorbench.parallel.gpu: events, copies, device facts."""

    simulator = False

    def __init__(self):
        import cupy

        self.cupy = cupy

    def event(self):
        return self.cupy.cuda.Event()

    def elapsed_s(self, start, end) -> float:
        return self.cupy.cuda.get_elapsed_time(start, end) / 1e3

    def to_host(self, device_array) -> np.ndarray:
        return device_array.get()  # synchronous copy on the current stream

    @cache
    def facts(self) -> dict:
        cp = self.cupy
        device = cp.cuda.Device()
        properties = cp.cuda.runtime.getDeviceProperties(device.id)
        try:
            attributes = device.attributes
        except Exception:  # an attribute this driver no longer reports
            attributes = {}
        clock_khz = attributes.get("MemoryClockRate")
        bus_bits = attributes.get("GlobalMemoryBusWidth")
        name = properties["name"]
        free, total = device.mem_info
        return {
            "name": name.decode() if isinstance(name, bytes) else str(name),
            "compute_capability": f"{properties['major']}.{properties['minor']}",
            "multiprocessors": properties["multiProcessorCount"],
            "memory_bytes": total,
            "memory_free_bytes": free,
            "memory_clock_khz": clock_khz,
            "memory_bus_bits": bus_bits,
            "peak_bandwidth_Bps": peak_bandwidth(clock_khz, bus_bits),
            "driver_version": version_text(cp.cuda.runtime.driverGetVersion()),
            "runtime_version": version_text(cp.cuda.runtime.runtimeGetVersion()),
            "library": "cupy " + cp.__version__,
        }

    @cache
    def copy_bandwidth(self, nbytes: int) -> float:
        """Device-to-device copy rate, bytes read plus written per second."""
        source = self.cupy.zeros(nbytes // 8)
        target = self.cupy.empty_like(source)
        target[...] = source
        times = time_events(self, lambda: target.__setitem__(Ellipsis, source), 3)
        return 2 * nbytes / min(times)


@cache
def _backend() -> _Backend:
    return _Backend()


@cache
def _kernels():
    """Compiled on first use (NVRTC), never at import."""
    import cupy as cp

    module = cp.RawModule(code=EMA_SOURCE)
    return SimpleNamespace(
        ema_tile_maps=module.get_function("ema_tile_maps"),
        ema_tile_carries=module.get_function("ema_tile_carries"),
        ema_tile_outputs=module.get_function("ema_tile_outputs"),
        sma=cp.ElementwiseKernel("raw float64 x, int64 window", "float64 out", SMA_BODY, "factorbench_sma"),
        trig=cp.ElementwiseKernel("float64 a, float64 b", "float64 out", TRIG_BODY, "factorbench_trig"),
    )


def _to_device(array: np.ndarray):
    """Device copy in the array's own layout; other strided views are made C-contiguous first."""
    import cupy as cp

    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        array = np.ascontiguousarray(array)
    return cp.asarray(array)


def _ema_prepare(x, alpha):
    import cupy as cp

    x, alpha = arrays.alpha_input(x, alpha)
    tiles = max(1, -(-len(x) // (THREADS * ITEMS)))
    return (_to_device(x), alpha, cp.empty(tiles), cp.empty(tiles),
            cp.empty(tiles), cp.empty(len(x)))


def _ema_launch(d_x, alpha, map_a, map_b, carry, out):
    k = _kernels()
    n, tiles = np.int64(d_x.size), map_a.size
    alpha = np.float64(alpha)
    k.ema_tile_maps((tiles,), (THREADS,), (d_x, n, alpha, map_a, map_b))
    k.ema_tile_carries((1,), (CARRY_THREADS,), (map_a, map_b, np.int64(tiles), carry, alpha))
    k.ema_tile_outputs((tiles,), (THREADS,), (d_x, n, alpha, carry, out))
    return out


def _sma_prepare(x, window):
    import cupy as cp

    x, window = arrays.window_input(x, window)
    return _to_device(x), window, cp.empty(len(x) - window + 1)


def _sma_launch(d_x, window, out):
    return _kernels().sma(d_x, window, out)


def _row_sums_prepare(m):
    return (_to_device(arrays.matrix(m)),)


def _row_sums_launch(d_m):
    return d_m.sum(axis=1)


def _trig_prepare(a, b):
    a, b = arrays.pair(a, b)
    return _to_device(a), _to_device(b)


def _trig_launch(d_a, d_b):
    return _kernels().trig(d_a, d_b)


def _gram_prepare(x):
    return (_to_device(arrays.matrix(x, "x")),)


def _gram_launch(d_x):
    return (d_x.T @ d_x).sum(axis=0)


def _gram_reassociated_launch(d_x):
    import cupy as cp

    # With infinities the two orders meet inf - inf in different places: the direct form
    # is the kernel's definition (as in the vectorized paradigm).
    if not bool(cp.isfinite(d_x).all()):
        return _gram_launch(d_x)
    return d_x.T @ d_x.sum(axis=1)


def _register(kernel: str, prepare, launch, doc: str, name: str | None = None) -> DeviceCall:
    call = DeviceCall(_backend, prepare, launch, doc)
    PARADIGM.implements(kernel, name=name, metrics=call.metrics)(call)
    return call


_register("sma", _sma_prepare, _sma_launch, "ElementwiseKernel: each window summed directly (exact NaN rule)")
_register("ema", _ema_prepare, _ema_launch,
          "CUDA C RawModule: three-launch parallel scan of the affine maps, as the cuda paradigm")
_register("row_sums", _row_sums_prepare, _row_sums_launch, "cupy sum(axis=1) in the input's own layout")
_register("trig", _trig_prepare, _trig_launch, "fused ElementwiseKernel: sin(a)**2 + cos(b)**2")
_register("gram_colsum", _gram_prepare, _gram_launch, "(x.T @ x).sum(axis=0) with cuBLAS")
_register("gram_colsum", _gram_prepare, _gram_reassociated_launch, "x.T @ x.sum(axis=1) with cuBLAS (no Gram matrix)",
          name="cupy-reassociated")
