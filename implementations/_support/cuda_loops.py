"""The Numba CUDA kernels of the ``cuda`` paradigm (see cuda.py for the algorithms).

A separate private module, imported only when a kernel is first needed: importing it
imports numba.cuda, and the CUDA simulator swaps this module's global ``cuda`` for its
own, which it could not do for names closed over inside a factory function.
"""

import math
import warnings

from numba import cuda, float64
from numba.core.errors import NumbaPerformanceWarning

THREADS = 256
"""Threads per block in every kernel."""
ITEMS = 11
"""Consecutive EMA elements per thread; odd, so reading a thread's run from shared memory
(stride ITEMS doubles across a warp) has no bank conflicts."""
TILE = THREADS * ITEMS
CARRY_THREADS = 1024
"""Threads of the one block that scans the tile maps (a few dozen maps each at n = 1e8)."""
SMA_MIN_RUN = 16
"""Each SMA thread slides over at least this many outputs (and at least a window's worth)."""
ACROSS_CHUNK = 64
"""Rows per block row when a reduction runs across the contiguous axis (dots_across)."""

# The gate's small check inputs launch a few blocks on purpose.
warnings.filterwarnings("ignore", message="Grid size", category=NumbaPerformanceWarning)


@cuda.jit(device=True)
def apply(a, y, b, keeps):
    """a * y + b: a later map applied to y. While alpha < 1 (``keeps``) a later map's a is
    a power of (1 - alpha), which may underflow to 0 but is never 0 in the recurrence:
    an infinite y stays infinite instead of becoming 0 * inf = NaN."""
    if keeps and math.isinf(y):
        return y + b
    return a * y + b


@cuda.jit(device=True)
def block_scan(sa, sb, t, width, keeps):
    """Inclusive Hillis-Steele scan of the ``width`` maps (sa[i], sb[i]) in shared memory:
    afterwards slot t holds maps 0..t composed."""
    offset = 1
    while offset < width:
        pa = 1.0
        pb = 0.0
        if t >= offset:
            pa = sa[t - offset]
            pb = sb[t - offset]
        cuda.syncthreads()
        if t >= offset:
            sb[t] = apply(sa[t], pb, sb[t], keeps)
            sa[t] = sa[t] * pa
        cuda.syncthreads()
        offset *= 2


@cuda.jit(device=True)
def scan_tile(x, alpha, tile, sa, sb):
    """Stage this block's tile of x in ``tile`` and leave in (sa, sb) the inclusive scan of
    the per-thread maps; thread t owns the ITEMS elements from t*ITEMS in the tile."""
    t = cuda.threadIdx.x
    start = cuda.blockIdx.x * TILE
    n = x.shape[0]
    for j in range(ITEMS):  # neighbouring threads load neighbouring elements
        i = start + j * THREADS + t
        if i < n:
            tile[j * THREADS + t] = x[i]
    cuda.syncthreads()
    decay = 1.0 - alpha
    a = 1.0
    b = 0.0
    for j in range(ITEMS):
        i = start + t * ITEMS + j
        if i < n:
            value = tile[t * ITEMS + j]
            if i == 0:  # out[0] = x[0]: the constant map y -> x[0]
                a = 0.0
                b = value
            else:
                a = decay * a
                b = decay * b + alpha * value
    sa[t] = a
    sb[t] = b
    cuda.syncthreads()
    block_scan(sa, sb, t, THREADS, alpha < 1.0)

@cuda.jit
def ema_tile_maps(x, alpha, map_a, map_b):
    tile = cuda.shared.array(TILE, float64)
    sa = cuda.shared.array(THREADS, float64)
    sb = cuda.shared.array(THREADS, float64)
    scan_tile(x, alpha, tile, sa, sb)
    if cuda.threadIdx.x == THREADS - 1:
        map_a[cuda.blockIdx.x] = sa[THREADS - 1]
        map_b[cuda.blockIdx.x] = sb[THREADS - 1]

@cuda.jit
def ema_tile_carries(map_a, map_b, carry, alpha):
    """One block of CARRY_THREADS: carry[k] = the EMA just before tile k. Each thread
    composes a segment of consecutive tile maps, the block scans the segment maps, and
    each thread walks its segment again from the value before it. Tile 0's map is
    constant (a = 0), so starting from y = 0 is exact."""
    sa = cuda.shared.array(CARRY_THREADS, float64)
    sb = cuda.shared.array(CARRY_THREADS, float64)
    t = cuda.threadIdx.x
    tiles = map_a.shape[0]
    segment = (tiles + CARRY_THREADS - 1) // CARRY_THREADS
    first = min(t * segment, tiles)
    last = min(first + segment, tiles)
    a = 1.0
    b = 0.0
    keeps = alpha < 1.0
    for k in range(first, last):
        b = apply(map_a[k], b, map_b[k], keeps)
        a = map_a[k] * a
    sa[t] = a
    sb[t] = b
    cuda.syncthreads()
    block_scan(sa, sb, t, CARRY_THREADS, keeps)
    y = 0.0
    if t > 0:
        y = sb[t - 1]  # maps of the segments before, applied to y = 0
    for k in range(first, last):
        carry[k] = y
        y = apply(map_a[k], y, map_b[k], keeps)


@cuda.jit
def ema_tile_outputs(x, alpha, carry, out):
    tile = cuda.shared.array(TILE, float64)
    sa = cuda.shared.array(THREADS, float64)
    sb = cuda.shared.array(THREADS, float64)
    scan_tile(x, alpha, tile, sa, sb)
    t = cuda.threadIdx.x
    start = cuda.blockIdx.x * TILE
    n = x.shape[0]
    y = carry[cuda.blockIdx.x]
    if t > 0:
        y = apply(sa[t - 1], y, sb[t - 1], alpha < 1.0)
    decay = 1.0 - alpha
    for j in range(ITEMS):  # each thread rewrites only its own slots
        i = start + t * ITEMS + j
        if i < n:
            value = tile[t * ITEMS + j]
            if i == 0:
                y = value
            else:
                y = decay * y + alpha * value
            tile[t * ITEMS + j] = y
    cuda.syncthreads()
    for j in range(ITEMS):
        i = start + j * THREADS + t
        if i < n:
            out[i] = tile[j * THREADS + t]

@cuda.jit(device=True)
def window_mean(total, nans, plus, minus, window):
    """The window's mean from its finite sum and its counts of NaN, +inf and -inf."""
    if nans > 0 or (plus > 0 and minus > 0):
        return math.nan
    if plus > 0:
        return math.inf
    if minus > 0:
        return -math.inf
    return total / window


@cuda.jit
def sma_runs(x, window, run, out):
    """Each thread: ``run`` consecutive outputs, the first window summed directly, then
    slid one element at a time. NaN and infinities are counted, never summed (inf - inf
    in a running sum would spoil every later window), so a window is NaN or infinite
    exactly when it holds one and the running sum recovers once it leaves."""
    first = cuda.grid(1) * run
    outputs = out.shape[0]
    if first >= outputs:
        return
    total = 0.0
    nans = 0
    plus = 0
    minus = 0
    for i in range(first, first + window):
        value = x[i]
        if math.isnan(value):
            nans += 1
        elif value == math.inf:
            plus += 1
        elif value == -math.inf:
            minus += 1
        else:
            total += value
    out[first] = window_mean(total, nans, plus, minus, window)
    for k in range(first + 1, min(first + run, outputs)):
        entering = x[k + window - 1]
        leaving = x[k - 1]
        if math.isnan(entering):
            nans += 1
        elif entering == math.inf:
            plus += 1
        elif entering == -math.inf:
            minus += 1
        else:
            total += entering
        if math.isnan(leaving):
            nans -= 1
        elif leaving == math.inf:
            plus -= 1
        elif leaving == -math.inf:
            minus -= 1
        else:
            total -= leaving
        out[k] = window_mean(total, nans, plus, minus, window)

@cuda.jit
def dots_along(m, w, weighted, out):
    """out[i] = sum_j m[i, j] (* w[j]): one block per row, threads striding along it
    (coalesced when rows are contiguous), then a tree sum in shared memory."""
    partial = cuda.shared.array(THREADS, float64)
    row = cuda.blockIdx.x
    t = cuda.threadIdx.x
    total = 0.0
    for j in range(t, m.shape[1], THREADS):
        value = m[row, j]
        if weighted:
            value *= w[j]
        total += value
    partial[t] = total
    cuda.syncthreads()
    width = THREADS // 2
    while width > 0:
        if t < width:
            partial[t] += partial[t + width]
        cuda.syncthreads()
        width //= 2
    if t == 0:
        out[row] = partial[0]

@cuda.jit
def dots_across(m, w, weighted, partial):
    """partial[c, j] = sum over rows i of chunk c of m[i, j] (* w[i]): neighbouring threads
    take neighbouring columns (coalesced when rows are contiguous); chunks of rows give
    enough threads to keep the memory system busy."""
    j = cuda.blockIdx.x * THREADS + cuda.threadIdx.x
    chunk = cuda.blockIdx.y
    if j >= m.shape[1]:
        return
    total = 0.0
    for i in range(chunk * ACROSS_CHUNK, min((chunk + 1) * ACROSS_CHUNK, m.shape[0])):
        value = m[i, j]
        if weighted:
            value *= w[i]
        total += value
    partial[chunk, j] = total

@cuda.jit
def sum_partials(partial, out):
    j = cuda.grid(1)
    if j < out.shape[0]:
        total = 0.0
        for chunk in range(partial.shape[0]):
            total += partial[chunk, j]
        out[j] = total

@cuda.jit
def trig_flat(a, b, out):
    i = cuda.grid(1)
    if i < out.shape[0]:
        s = math.sin(a[i])
        c = math.cos(b[i])
        out[i] = s * s + c * c
