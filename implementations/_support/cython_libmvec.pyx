# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""trig with glibc's vectorised sin and cos (libmvec, AVX2), over OpenMP threads.

A separate extension from cython_loops: it links libmvec, which only glibc on x86_64
has, so where it cannot be built the other Cython kernels still are (see setup.py).
"""

from cython.parallel cimport prange
cimport openmp

cdef extern from "libmvec_trig.h" nogil:
    int libmvec_trig_supported()
    void libmvec_trig(const double* a, const double* b, double* out, Py_ssize_t n)

BLOCK = 1 << 14
"""Elements per OpenMP work item; static scheduling gives each thread a contiguous run."""


def supported():
    """True when this CPU has AVX2 and FMA, which the libmvec variants called here need."""
    return bool(libmvec_trig_supported())


def trig_prange(const double[::1] a, const double[::1] b, double[::1] out, int threads):
    """out = sin(a)**2 + cos(b)**2; returns the size of the team OpenMP ran it on."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if not libmvec_trig_supported():
        raise RuntimeError("this CPU lacks AVX2/FMA, which libmvec's 4-wide sin and cos need")
    cdef Py_ssize_t n = out.shape[0], block = BLOCK, blocks = (n + block - 1) // block, k
    cdef const double* ap = &a[0]
    cdef const double* bp = &b[0]
    cdef double* op = &out[0]
    cdef int team = 1
    for k in prange(blocks, nogil=True, num_threads=threads, schedule="static"):
        team = openmp.omp_get_num_threads()
        libmvec_trig(ap + k * block, bp + k * block, op + k * block, min(block, n - k * block))
    return team
