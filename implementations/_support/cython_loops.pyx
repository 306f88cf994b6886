# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Cython kernels of the `cython` paradigm, compiled by `pip install` (see setup.py).

Each def function takes contiguous typed memoryviews (the Python wrappers in cython.py
hand over contiguous views or copies, and allocate the outputs with np.empty) and runs
its loop on raw pointers without the GIL. The *_prange functions split the work over
`threads` OpenMP threads and return the size of the team OpenMP really ran them on.
The algorithms are those of numba_loops.py, where they are explained at more length.
"""

cimport openmp
from cython.parallel cimport prange
from libc.math cimport cos, isfinite, isinf, isnan, NAN, pow, sin
from libc.stdlib cimport calloc, free

cdef Py_ssize_t SEGMENT_MIN = 4096  # outputs per running-sum segment, at least
cdef Py_ssize_t POWER_REFRESH = 64  # EMA fix-up: recompute the power exactly this often
cdef Py_ssize_t EMA_LANES = 4  # segments one thread's EMA scan runs interleaved
cdef Py_ssize_t EMA_LANE_MIN = 1024  # shorter segments are not worth their carry fix-ups


cdef check_threads(int threads):
    # the chunk arithmetic divides by it
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")


# ---------------------------------------------------------------- moving average

cdef inline double window_sum(const double* x, Py_ssize_t start, Py_ssize_t window) noexcept nogil:
    cdef double total = 0.0
    cdef Py_ssize_t t
    for t in range(start, start + window):
        total += x[t]
    return total


cdef void sma_counted(const double* x, double* out, Py_ssize_t start, Py_ssize_t stop,
                      Py_ssize_t window, double inv) noexcept nogil:
    """Non-finite values counted, not summed: a NaN makes exactly its windows NaN; a
    window holding an infinity is summed directly."""
    cdef double total = 0.0, entering, leaving
    cdef Py_ssize_t nans = 0, others = 0, t, i
    for t in range(start, start + window):
        if isnan(x[t]):
            nans += 1
        elif isinf(x[t]):
            others += 1
        else:
            total += x[t]
    for i in range(start, stop):
        if i > start:
            entering, leaving = x[i + window - 1], x[i - 1]
            if isnan(entering):
                nans += 1
            elif isinf(entering):
                others += 1
            else:
                total += entering
            if isnan(leaving):
                nans -= 1
            elif isinf(leaving):
                others -= 1
            else:
                total -= leaving
        if nans:
            out[i] = NAN
        elif others:
            out[i] = window_sum(x, i, window) * inv
        else:
            out[i] = total * inv


cdef void sma_segment(const double* x, double* out, Py_ssize_t start, Py_ssize_t stop,
                      Py_ssize_t window, double inv) noexcept nogil:
    """Running sum from an exact window sum; redone counted if a non-finite value entered."""
    cdef double total = window_sum(x, start, window)
    cdef Py_ssize_t i
    out[start] = total * inv
    for i in range(start + 1, stop):
        total += x[i + window - 1] - x[i - 1]
        out[i] = total * inv
    if isnan(total):
        sma_counted(x, out, start, stop, window, inv)


cdef void sma_span(const double* x, double* out, Py_ssize_t start, Py_ssize_t stop,
                   Py_ssize_t window) noexcept nogil:
    """out[i] = mean(x[i:i+window]) for start <= i < stop, four segments interleaved
    (four independent chains of additions), each re-anchored on an exact window sum."""
    cdef double inv = 1.0 / window
    cdef Py_ssize_t segment = max(SEGMENT_MIN, 16 * window)
    cdef Py_ssize_t i = start, j, a0, a1, a2, a3
    cdef double s0, s1, s2, s3
    while stop - i >= 4 * segment:
        a0, a1, a2, a3 = i, i + segment, i + 2 * segment, i + 3 * segment
        s0, s1 = window_sum(x, a0, window), window_sum(x, a1, window)
        s2, s3 = window_sum(x, a2, window), window_sum(x, a3, window)
        out[a0], out[a1], out[a2], out[a3] = s0 * inv, s1 * inv, s2 * inv, s3 * inv
        for j in range(1, segment):
            s0 += x[a0 + j + window - 1] - x[a0 + j - 1]
            s1 += x[a1 + j + window - 1] - x[a1 + j - 1]
            s2 += x[a2 + j + window - 1] - x[a2 + j - 1]
            s3 += x[a3 + j + window - 1] - x[a3 + j - 1]
            out[a0 + j] = s0 * inv
            out[a1 + j] = s1 * inv
            out[a2 + j] = s2 * inv
            out[a3 + j] = s3 * inv
        if isnan(s0):
            sma_counted(x, out, a0, a0 + segment, window, inv)
        if isnan(s1):
            sma_counted(x, out, a1, a1 + segment, window, inv)
        if isnan(s2):
            sma_counted(x, out, a2, a2 + segment, window, inv)
        if isnan(s3):
            sma_counted(x, out, a3, a3 + segment, window, inv)
        i += 4 * segment
    while i < stop:
        j = min(i + segment, stop)
        sma_segment(x, out, i, j, window, inv)
        i = j


def sma(const double[::1] x, double[::1] out, Py_ssize_t window):
    with nogil:
        sma_span(&x[0], &out[0], 0, out.shape[0], window)


def sma_prange(const double[::1] x, double[::1] out, Py_ssize_t window, int threads):
    """One chunk of outputs per thread, each reading a (window - 1) halo past its end."""
    check_threads(threads)
    cdef const double* xp = &x[0]
    cdef double* op = &out[0]
    cdef Py_ssize_t m = out.shape[0], size = (m + threads - 1) // threads, k
    cdef int team = 1
    for k in prange(threads, nogil=True, num_threads=threads, schedule="static"):
        team = openmp.omp_get_num_threads()
        if k * size < m:
            sma_span(xp, op, k * size, min(k * size + size, m), window)
    return team


# ---------------------------------------------------------------- exponential moving average

def ema(const double[::1] x, double[::1] out, double alpha):
    cdef double keep = 1.0 - alpha, previous = x[0]
    cdef Py_ssize_t i
    with nogil:
        out[0] = previous
        for i in range(1, x.shape[0]):
            previous = alpha * x[i] + keep * previous
            out[i] = previous


cdef inline double decayed(double carry, double keep, Py_ssize_t steps) noexcept nogil:
    """carry * keep**steps as the recurrence carries it: a non-finite carry never decays."""
    if isfinite(carry) or keep == 0.0:
        return carry * pow(keep, <double>steps)
    return carry


cdef void ema_fixup(double* out, Py_ssize_t start, Py_ssize_t stop, double keep,
                    double carry) noexcept nogil:
    """out[start + j] += carry * keep**(j+1) until the term underflows to zero (a NaN or
    infinite carry never does, so it reaches every later output, as in the serial form)."""
    cdef double power = 1.0, term
    cdef Py_ssize_t j
    if not isfinite(carry):
        for j in range(stop - start):
            out[start + j] += decayed(carry, keep, j + 1)
        return
    for j in range(stop - start):
        if j % POWER_REFRESH == 0:
            power = pow(keep, <double>(j + 1))
        else:
            power = power * keep
        term = carry * power
        if term == 0.0:
            break
        out[start + j] += term


cdef void ema_local(const double* x, double* out, Py_ssize_t start, Py_ssize_t stop,
                    double alpha) noexcept nogil:
    """The chunk's EMA from a zero start (chunk 0: from out[0] = x[0], so final), four
    segments scanned interleaved (four multiply-add chains in flight instead of one, which
    runs at the FPU's latency), then each segment's carry added in order."""
    cdef double keep = 1.0 - alpha, previous = 0.0, p0, p1, p2, p3, carry
    cdef Py_ssize_t i, j, begin = start, segment = (stop - start) // EMA_LANES
    cdef Py_ssize_t a0 = start, a1 = start + segment, a2 = start + 2 * segment, a3 = start + 3 * segment
    if segment < EMA_LANE_MIN:
        if start == 0:
            previous = x[0]
            out[0] = previous
            begin = 1
        for i in range(begin, stop):
            previous = alpha * x[i] + keep * previous
            out[i] = previous
        return
    p0 = x[0] if start == 0 else alpha * x[a0]
    p1, p2, p3 = alpha * x[a1], alpha * x[a2], alpha * x[a3]
    out[a0], out[a1], out[a2], out[a3] = p0, p1, p2, p3
    for j in range(1, segment):
        p0 = alpha * x[a0 + j] + keep * p0
        p1 = alpha * x[a1 + j] + keep * p1
        p2 = alpha * x[a2 + j] + keep * p2
        p3 = alpha * x[a3 + j] + keep * p3
        out[a0 + j] = p0
        out[a1 + j] = p1
        out[a2 + j] = p2
        out[a3 + j] = p3
    for i in range(a3 + segment, stop):  # the last segment takes the remainder
        p3 = alpha * x[i] + keep * p3
        out[i] = p3
    for j in range(1, EMA_LANES):
        begin = start + j * segment
        i = stop if j == EMA_LANES - 1 else begin + segment
        carry = out[begin - 1]  # final: the segment before was fixed first
        out[i - 1] += decayed(carry, keep, i - begin)
        ema_fixup(out, begin, i - 1, keep, carry)


def ema_prange(const double[::1] x, double[::1] out, double alpha, int threads):
    """Chunked scan: local EMAs in parallel, carries in chunk order, fix-up in parallel."""
    check_threads(threads)
    cdef const double* xp = &x[0]
    cdef double* op = &out[0]
    cdef Py_ssize_t n = x.shape[0], size = (n + threads - 1) // threads, k, start, stop
    cdef double keep = 1.0 - alpha
    cdef double* cp = <double*> calloc(threads, sizeof(double))
    if cp == NULL:
        raise MemoryError()
    cdef int team = 1
    for k in prange(threads, nogil=True, num_threads=threads, schedule="static"):
        team = openmp.omp_get_num_threads()
        if k * size < n:
            ema_local(xp, op, k * size, min(k * size + size, n), alpha)
    with nogil:
        for k in range(1, threads):
            start, stop = k * size, min(k * size + size, n)
            if start >= stop:
                break
            cp[k] = op[start - 1]
            op[stop - 1] += decayed(cp[k], keep, stop - start)
    for k in prange(1, threads, nogil=True, num_threads=threads, schedule="static"):
        if k * size < n:
            # the chunk's last output was made final by the carry pass
            ema_fixup(op, k * size, min(k * size + size, n) - 1, keep, cp[k])
    free(cp)
    return team


# ---------------------------------------------------------------- row sums

cdef inline double row_total(const double* row, Py_ssize_t cols) noexcept nogil:
    """Eight partial sums: independent chains the CPU overlaps (and may vectorise)."""
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0
    cdef Py_ssize_t j = 0
    while j + 8 <= cols:
        s0 += row[j]
        s1 += row[j + 1]
        s2 += row[j + 2]
        s3 += row[j + 3]
        s4 += row[j + 4]
        s5 += row[j + 5]
        s6 += row[j + 6]
        s7 += row[j + 7]
        j += 8
    while j < cols:
        s0 += row[j]
        j += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef void column_totals(const double* mt, Py_ssize_t rows, Py_ssize_t width, double* out,
                        Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """out[start:stop] = column sums of the rows x width matrix mt, rows walked in order,
    four at a time (a quarter of the loads and stores of out; twice as fast)."""
    cdef Py_ssize_t i, j = 0
    cdef const double* r0
    cdef const double* r1
    cdef const double* r2
    cdef const double* r3
    for i in range(start, stop):
        out[i] = 0.0
    while j + 4 <= rows:
        r0 = mt + j * width
        r1 = r0 + width
        r2 = r1 + width
        r3 = r2 + width
        for i in range(start, stop):
            out[i] += (r0[i] + r1[i]) + (r2[i] + r3[i])
        j += 4
    while j < rows:
        r0 = mt + j * width
        for i in range(start, stop):
            out[i] += r0[i]
        j += 1


def row_sums(const double[:, ::1] m, double[::1] out, bint transposed):
    """Sums of m's rows, or of its columns when m is an F-ordered matrix's transpose."""
    cdef Py_ssize_t rows = m.shape[0], cols = m.shape[1], i
    cdef const double* mp = &m[0, 0]
    with nogil:
        if transposed:
            column_totals(mp, rows, cols, &out[0], 0, cols)
        else:
            for i in range(rows):
                out[i] = row_total(mp + i * cols, cols)


def row_sums_prange(const double[:, ::1] m, double[::1] out, bint transposed, int threads):
    check_threads(threads)
    cdef Py_ssize_t rows = m.shape[0], cols = m.shape[1], i, k, size = (cols + threads - 1) // threads
    cdef const double* mp = &m[0, 0]
    cdef double* op = &out[0]
    cdef int team = 1
    if transposed:
        for k in prange(threads, nogil=True, num_threads=threads, schedule="static"):
            team = openmp.omp_get_num_threads()
            if k * size < cols:
                column_totals(mp, rows, cols, op, k * size, min(k * size + size, cols))
    else:
        for i in prange(rows, nogil=True, num_threads=threads, schedule="static"):
            team = openmp.omp_get_num_threads()
            op[i] = row_total(mp + i * cols, cols)
    return team


# ---------------------------------------------------------------- sin² + cos²

def trig(const double[::1] a, const double[::1] b, double[::1] out):
    cdef Py_ssize_t i
    cdef double s, c
    with nogil:
        for i in range(out.shape[0]):
            s = sin(a[i])
            c = cos(b[i])
            out[i] = s * s + c * c


def trig_prange(const double[::1] a, const double[::1] b, double[::1] out, int threads):
    check_threads(threads)
    cdef Py_ssize_t i
    cdef double s, c
    cdef int team = 1
    for i in prange(out.shape[0], nogil=True, num_threads=threads, schedule="static"):
        team = openmp.omp_get_num_threads()
        s = sin(a[i])
        c = cos(b[i])
        out[i] = s * s + c * c
    return team
