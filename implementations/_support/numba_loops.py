"""Numba kernels of the `numba` and `numba-parallel` paradigms.

Imported on the first call of one of their implementations, so the registry loads
without Numba. Every kernel writes into an output the Python wrapper allocated with
np.empty: NumPy's large allocations get transparent huge pages and Numba's do not
(PERF-NOTES: 41 ms vs 13 ms for the same SMA loop). cache=True keeps the machine code
in __pycache__, so only the first process after a change pays the compile; the gate's
cold call shows which case a run hit.
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core.extending import intrinsic

from factorbench.parallel import last_level_cache_bytes

SEGMENT_MIN = 4096
"""Outputs per running-sum segment at least: each segment starts from an exact window
sum, which bounds float64 drift, and costs `window` additions, so segments are long."""
POWER_REFRESH = 64
"""The EMA fix-up multiplies powers of (1 - alpha) step by step and recomputes them
exactly this often, so their rounding cannot grow with the chunk length."""
STREAM_MIN_BYTES = last_level_cache_bytes() or 32 * 2**20
"""Outputs larger than the last-level cache are stored non-temporally: they would not
stay cached anyway, and a non-temporal store skips reading each line before writing it
(a third of the memory traffic). Smaller outputs stay cached for their next reader."""


def streams(out: np.ndarray) -> bool:
    """Whether a kernel's stores to ``out`` should be non-temporal (see STREAM_MIN_BYTES)."""
    return out.nbytes > STREAM_MIN_BYTES


SMA_BLOCK = 8
"""Outputs one step of the SMA running sum computes as a vector (eight float64: one
AVX-512 register, two AVX2 ones)."""
EMA_LANES = 4
"""Segments one thread's EMA scan runs interleaved (see _ema_local): four dependent
multiply-add chains in flight cover the FPU latency, so the scan runs near memory speed."""
EMA_LANE_MIN = 1024
"""Shorter segments are not worth their carry fix-ups (each up to ~7000 steps)."""


@njit(cache=True)
def _window_sum(x, start, window):
    values = x[start:start + window]
    total = 0.0
    for t in range(window):
        total += values[t]
    return total


@njit(cache=True, inline="always")
def _tally(value):
    """(what value adds to a running sum, NaNs, infinities): a non-finite value is
    counted, not summed, so it cannot turn the sum into NaN."""
    if math.isnan(value):
        return 0.0, 1, 0
    if math.isinf(value):
        return 0.0, 0, 1
    return value, 0, 0


@njit(cache=True)
def _sma_counted(x, out, start, stop, window, inv):
    """out[start:stop] with non-finite values counted rather than summed: a NaN makes
    exactly the windows holding it NaN; a window with an infinity is summed directly."""
    total, nans, others = 0.0, 0, 0
    for t in range(start, start + window):
        value, nan, inf = _tally(x[t])
        total, nans, others = total + value, nans + nan, others + inf
    for i in range(start, stop):
        if i > start:
            entering, nan_in, inf_in = _tally(x[i + window - 1])
            leaving, nan_out, inf_out = _tally(x[i - 1])
            total += entering - leaving
            nans += nan_in - nan_out
            others += inf_in - inf_out
        if nans:
            out[i] = np.nan
        elif others:
            out[i] = _window_sum(x, i, window) * inv
        else:
            out[i] = total * inv


def _sma_block_intrinsic(streaming: bool):
    """An intrinsic sma_block(entering, leaving, out, j, total, inv) -> total + sum(d):
    out[j + k] = (total + d[0] + ... + d[k]) * inv for k < SMA_BLOCK, where
    d[k] = entering[j + k] - leaving[j + k - 1]. &out[j] must be a multiple of
    SMA_BLOCK * 8 bytes (the store is aligned), non-temporal when ``streaming``; loads
    are unaligned; nothing is checked: the caller keeps j - 1 and j + SMA_BLOCK - 1
    inside the three arrays.

    A running sum is a chain of dependent additions, one per output, which held a thread
    to half the speed of a copy (0.44 vs 0.22 ms per 1e6 outputs in cache). Here the
    block's differences are summed among themselves as a vector prefix (Sklansky: at
    each step the lanes whose bit is set add the last lane of the half-block below them,
    a shuffle and a masked add) and the chain takes one addition per block. Numba has no
    vector intrinsics and LLVM does not vectorize a prefix sum, hence the LLVM IR.
    """
    @intrinsic
    def sma_block(typingctx, entering, leaving, out, j, total, inv):
        arrays = (entering, leaving, out)
        if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and a.dtype == types.float64
                   for a in arrays):
            return None
        signature = types.float64(entering, leaving, out, types.intp, types.float64, types.float64)

        def codegen(context, builder, sig, args):
            vector = ir.VectorType(ir.DoubleType(), SMA_BLOCK)
            lanes = range(SMA_BLOCK)

            def at(array_type, value, index):
                data = context.make_array(array_type)(context, builder, value).data
                return builder.bitcast(builder.gep(data, [index]), vector.as_pointer())

            def constant(kind, values):
                return ir.Constant(ir.VectorType(kind, SMA_BLOCK), list(values))

            def splat(value):
                first = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.IntType(32)(0))
                return builder.shuffle_vector(first, first, constant(ir.IntType(32), [0] * SMA_BLOCK))

            j, total, inv = args[3], args[4], args[5]
            d = builder.fsub(builder.load(at(sig.args[0], args[0], j), align=8),
                             builder.load(at(sig.args[1], args[1], builder.sub(j, j.type(1))), align=8))
            step = 1
            while step < SMA_BLOCK:
                below = constant(ir.IntType(32), [k // (2 * step) * 2 * step + step - 1 for k in lanes])
                upper = constant(ir.IntType(1), [int(k & step != 0) for k in lanes])
                d = builder.select(upper, builder.fadd(d, builder.shuffle_vector(d, d, below)), d)
                step *= 2
            means = builder.fmul(builder.fadd(splat(total), d), splat(inv))
            store = builder.store(means, at(sig.args[2], args[2], j), align=8 * SMA_BLOCK)
            if streaming:
                store.set_metadata("nontemporal", builder.module.add_metadata([ir.IntType(32)(1)]))
            return builder.fadd(total, builder.extract_element(d, ir.IntType(32)(SMA_BLOCK - 1)))

        return signature, codegen

    return sma_block


_sma_block = _sma_block_intrinsic(False)
_sma_block_streamed = _sma_block_intrinsic(True)


@intrinsic
def _store_fence(typingctx):
    """Orders the non-temporal stores before every later access (they are weakly
    ordered: without it another thread could read an output before it lands)."""
    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@njit(cache=True)
def _sma_steps(entering, leaving, segment_out, j, stop, total, inv):
    """The plain running sum from output j up to stop; returns the total."""
    for k in range(j, stop):
        total += entering[k] - leaving[k - 1]
        segment_out[k] = total * inv
    return total


@njit(cache=True)
def _sma_segment(x, out, start, stop, window, inv, stream):
    """Running sum over one segment, SMA_BLOCK outputs a step (_sma_block) once the
    output is aligned; redone counted when the sum ends NaN, as it does when a NaN
    entered, an infinity left or infinities of both signs met: any order of the
    additions gives NaN then, and windows holding infinities of one sign only are right
    as summed."""
    entering, leaving, segment_out = x[start + window - 1:], x[start:], out[start:stop]
    n = len(segment_out)
    total = _window_sum(x, start, window)
    segment_out[0] = total * inv
    j = 1
    while j < n and (segment_out.ctypes.data + 8 * j) % (8 * SMA_BLOCK):
        j += 1
    total = _sma_steps(entering, leaving, segment_out, 1, j, total, inv)
    while j + SMA_BLOCK <= n:
        if stream:
            total = _sma_block_streamed(entering, leaving, segment_out, j, total, inv)
        else:
            total = _sma_block(entering, leaving, segment_out, j, total, inv)
        j += SMA_BLOCK
    total = _sma_steps(entering, leaving, segment_out, j, n, total, inv)
    if stream:
        _store_fence()
    if math.isnan(total):
        _sma_counted(x, out, start, stop, window, inv)


@njit(cache=True)
def sma_span(x, out, start, stop, window, stream):
    """out[i] = mean(x[i:i+window]) for start <= i < stop, segment by segment."""
    inv = 1.0 / window
    segment = max(SEGMENT_MIN, 16 * window)
    for i in range(start, stop, segment):
        _sma_segment(x, out, i, min(i + segment, stop), window, inv, stream)


@njit(cache=True)
def sma(x, out, window, stream):
    sma_span(x, out, 0, len(out), window, stream)


@njit(parallel=True, cache=True)
def sma_parallel(x, out, window, chunks, stream):
    """Each chunk of outputs reads its inputs plus a (window - 1) halo past its end."""
    size = -(-len(out) // chunks)
    for k in prange(chunks):
        start = k * size
        stop = min(start + size, len(out))
        if start < stop:
            sma_span(x, out, start, stop, window, stream)


@njit(cache=True)
def ema(x, out, alpha):
    keep = 1.0 - alpha
    previous = x[0]
    out[0] = previous
    for i in range(1, len(x)):
        previous = alpha * x[i] + keep * previous
        out[i] = previous


@njit(cache=True)
def _decayed(carry, keep, steps):
    """carry * keep**steps, as the recurrence carries it: a non-finite carry never decays
    (inf * keep**k stays inf for keep > 0), where the power alone would underflow to 0."""
    if math.isfinite(carry) or keep == 0.0:
        return carry * keep ** steps
    return carry


@njit(cache=True)
def _add_carry(out, start, stop, keep, carry):
    """out[start + j] += carry * keep**(j + 1) for start + j < stop, until the term
    underflows to zero (after ~7000 steps for alpha = 0.1), so this rarely reads the
    whole span. A non-finite carry never underflows and reaches every later output."""
    view = out[start:stop]
    if not math.isfinite(carry):
        for j in range(len(view)):
            view[j] += _decayed(carry, keep, j + 1)
        return
    power = 1.0
    for j in range(len(view)):
        power = keep ** (j + 1) if j % POWER_REFRESH == 0 else power * keep
        term = carry * power
        if term == 0.0:
            break
        view[j] += term


@njit(cache=True)
def _ema_local(x, out, start, stop, alpha, first):
    """out[start:stop] = the EMA of x[start:stop] from a zero start (from x[start] when
    ``first``), with EMA_LANES segments scanned interleaved.

    The recurrence is one dependent multiply-add per element, so one chain runs at the
    FPU's latency, well below memory speed. Interleaving EMA_LANES independent segments
    overlaps their latencies; then each segment after the first gets the true value
    before it, in order, as the threaded scan does across chunks.
    """
    keep = 1.0 - alpha
    segment = (stop - start) // EMA_LANES
    if segment < EMA_LANE_MIN:
        previous, begin = 0.0, start
        if first:
            previous, begin = x[start], start + 1
            out[start] = previous
        for i in range(begin, stop):
            previous = alpha * x[i] + keep * previous
            out[i] = previous
        return
    a0, a1, a2, a3 = start, start + segment, start + 2 * segment, start + 3 * segment
    x0, x1, x2, x3 = x[a0:], x[a1:], x[a2:], x[a3:]
    o0, o1, o2, o3 = out[a0:], out[a1:], out[a2:], out[a3:]
    p0 = x0[0] if first else alpha * x0[0]
    p1, p2, p3 = alpha * x1[0], alpha * x2[0], alpha * x3[0]
    o0[0], o1[0], o2[0], o3[0] = p0, p1, p2, p3
    for j in range(1, segment):
        p0 = alpha * x0[j] + keep * p0
        p1 = alpha * x1[j] + keep * p1
        p2 = alpha * x2[j] + keep * p2
        p3 = alpha * x3[j] + keep * p3
        o0[j] = p0
        o1[j] = p1
        o2[j] = p2
        o3[j] = p3
    for i in range(a3 + segment, stop):  # the last segment takes the remainder
        p3 = alpha * x[i] + keep * p3
        out[i] = p3
    for lane_start, lane_stop in ((a1, a2), (a2, a3), (a3, stop)):
        carry = out[lane_start - 1]  # final: the segment before was fixed first
        out[lane_stop - 1] += _decayed(carry, keep, lane_stop - lane_start)
        _add_carry(out, lane_start, lane_stop - 1, keep, carry)


@njit(parallel=True, cache=True)
def ema_parallel(x, out, alpha, chunks):
    """Chunked scan: y[s+j] = local[s+j] + carry * (1-alpha)**(j+1) for a chunk starting
    at s, where local is the chunk's EMA from a zero start and carry = y[s-1].

    1. every chunk computes `local` in parallel (chunk 0 from out[0] = x[0], so it is
       final), itself as interleaved segments (see _ema_local);
    2. the carries run through the chunks in order, one power each;
    3. every chunk adds carry * (1-alpha)**(j+1) in parallel, until that term underflows.
    A NaN carry never underflows, so a NaN reaches every later output, as in the serial form.
    """
    n = len(x)
    keep = 1.0 - alpha
    size = -(-n // chunks)
    for k in prange(chunks):
        start = k * size
        stop = min(start + size, n)
        if start < stop:
            _ema_local(x, out, start, stop, alpha, k == 0)
    carries = np.zeros(chunks)
    for k in range(1, chunks):
        start = k * size
        stop = min(start + size, n)
        if start >= stop:
            break
        carries[k] = out[start - 1]
        out[stop - 1] += _decayed(carries[k], keep, stop - start)
    for k in prange(1, chunks):
        start = k * size
        stop = min(start + size, n) - 1  # the chunk's last output was fixed in step 2
        if start < stop:
            _add_carry(out, start, stop, keep, carries[k])


@njit(cache=True)
def _row_total(row):
    # Eight partial sums: independent chains the CPU overlaps, as NumPy's pairwise sum does.
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
    j = 0
    while j + 8 <= len(row):
        s0 += row[j]
        s1 += row[j + 1]
        s2 += row[j + 2]
        s3 += row[j + 3]
        s4 += row[j + 4]
        s5 += row[j + 5]
        s6 += row[j + 6]
        s7 += row[j + 7]
        j += 8
    while j < len(row):
        s0 += row[j]
        j += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@njit(cache=True)
def _column_totals(mt, out, start, stop):
    """out[start:stop] = sums of mt[:, start:stop] over axis 0, walking mt's rows in order,
    four at a time (a quarter of the loads and stores of out)."""
    totals = out[start:stop]
    totals[:] = 0.0
    j = 0
    while j + 4 <= mt.shape[0]:
        r0, r1, r2, r3 = mt[j, start:stop], mt[j + 1, start:stop], mt[j + 2, start:stop], mt[j + 3, start:stop]
        for i in range(len(totals)):
            totals[i] += (r0[i] + r1[i]) + (r2[i] + r3[i])
        j += 4
    while j < mt.shape[0]:
        row = mt[j, start:stop]
        for i in range(len(totals)):
            totals[i] += row[i]
        j += 1


@njit(cache=True)
def row_sums(m, out, transposed):
    """Sums of m's rows, or of its columns when m is an F-ordered matrix's transpose."""
    if transposed:
        _column_totals(m, out, 0, len(out))
    else:
        for i in range(len(out)):
            out[i] = _row_total(m[i])


@njit(parallel=True, cache=True)
def row_sums_parallel(m, out, transposed, chunks):
    if transposed:
        size = -(-len(out) // chunks)
        for k in prange(chunks):
            _column_totals(m, out, min(k * size, len(out)), min((k + 1) * size, len(out)))
    else:
        for i in prange(len(out)):
            out[i] = _row_total(m[i])


@njit(cache=True)
def trig(a, b, out):
    for i in range(len(out)):
        s, c = math.sin(a[i]), math.cos(b[i])
        out[i] = s * s + c * c


@njit(parallel=True, cache=True)
def trig_parallel(a, b, out):
    for i in prange(len(out)):
        s, c = math.sin(a[i]), math.cos(b[i])
        out[i] = s * s + c * c


def compile_metrics(dispatcher) -> dict:
    """Whether this process compiled `dispatcher` or loaded it from the cache, and the
    compile time when it compiled (callees are compiled inside their caller's time)."""
    stats = dispatcher.stats
    hits, misses = sum(stats.cache_hits.values()), sum(stats.cache_misses.values())
    compile_s = sum(cres.metadata["timers"]["compiler_lock"]
                    for cres in dispatcher.overloads.values() if cres.metadata)
    state = "loaded from cache" if hits and not misses else "compiled"
    figures = {"numba_cache": state, "numba_cache_dir": stats.cache_path}
    if compile_s:
        figures["numba_compile_s"] = compile_s
    return figures
