/* sin(a)**2 + cos(b)**2 four elements at a time with glibc's libmvec (its AVX2 variants,
 * named by the x86_64 vector function ABI), called directly rather than through the
 * auto-vectoriser, which only uses libmvec under -ffast-math (and that would break NaN
 * handling). libmvec treats NaN, infinities and huge arguments itself; the tail of fewer
 * than four elements uses the scalar libm functions. */
#include <math.h>
#include <stddef.h>
#include <immintrin.h>

__m256d _ZGVdN4v_sin(__m256d);
__m256d _ZGVdN4v_cos(__m256d);

static int libmvec_trig_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Compiled for AVX2 alone, so the rest of the extension keeps the baseline ISA; callers
 * check libmvec_trig_supported() first. */
__attribute__((target("avx2,fma")))
static void libmvec_trig(const double* a, const double* b, double* out, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256d s = _ZGVdN4v_sin(_mm256_loadu_pd(a + i));
        __m256d c = _ZGVdN4v_cos(_mm256_loadu_pd(b + i));
        _mm256_storeu_pd(out + i, _mm256_add_pd(_mm256_mul_pd(s, s), _mm256_mul_pd(c, c)));
    }
    for (; i < n; i++) {
        double s = sin(a[i]), c = cos(b[i]);
        out[i] = s * s + c * c;
    }
}
