/* lingvis native: the fp32 dot-product micro-kernel shared by gemv.c (one product per call) and step.c (the
 * whole decode step in one call), and the vector 2^x of attention.c and group_norm.c. Defines LV_AVX512 when the
 * compiler targets AVX-512 F/BW/VL. */
#ifndef LV_DOT_F32_H
#define LV_DOT_F32_H
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define LV_AVX512 1
#endif

#ifdef LV_AVX512
/* 2^x for x <= 0 (x = -inf gives 0): 2^round(x) * 2^r, r in [-0.5, 0.5], 2^r by a degree-5 polynomial fitted
 * to the relative error (7.6e-8; 2.3e-7 evaluated in fp32, against 8.5e-8 for degree 7: two FMAs fewer per 16
 * probabilities, which matter for heads of width 8) */
static inline __m512 lv_exp2_ps(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-200.0f));
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.3276358502957706e-03f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(9.6755029420961990e-03f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.5507132660099200e-02f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(2.4022120460847330e-01f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(6.9314696731440620e-01f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0000000714978745f));
  return _mm512_scalef_ps(p, n);
}

/* the eight horizontal sums of a[0..7] as one vector [sum a0, ..., sum a7]: 7 hadds instead of eight separate
 * reductions (the per-row cost that matters for short rows such as GPT-2's K = 768 LM head) */
static inline __m256 lv_sum8_ps(const __m512 *a) {
  __m256 b[8];
  for (int j = 0; j < 8; j++)
    b[j] = _mm256_add_ps(_mm512_castps512_ps256(a[j]), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a[j]), 1)));
  __m256 c0 = _mm256_hadd_ps(b[0], b[1]), c1 = _mm256_hadd_ps(b[2], b[3]);
  __m256 c2 = _mm256_hadd_ps(b[4], b[5]), c3 = _mm256_hadd_ps(b[6], b[7]);
  __m256 d0 = _mm256_hadd_ps(c0, c1), d1 = _mm256_hadd_ps(c2, c3); /* [s0..s3 | s0..s3] halves, [s4..s7 | ..] */
  return _mm256_add_ps(_mm256_permute2f128_ps(d0, d1, 0x20), _mm256_permute2f128_ps(d0, d1, 0x31));
}

static inline __m256i lv_sum8_epi32(const __m512i *a) {
  __m256i b[8];
  for (int j = 0; j < 8; j++) b[j] = _mm256_add_epi32(_mm512_castsi512_si256(a[j]), _mm512_extracti64x4_epi64(a[j], 1));
  __m256i c0 = _mm256_hadd_epi32(b[0], b[1]), c1 = _mm256_hadd_epi32(b[2], b[3]);
  __m256i c2 = _mm256_hadd_epi32(b[4], b[5]), c3 = _mm256_hadd_epi32(b[6], b[7]);
  __m256i d0 = _mm256_hadd_epi32(c0, c1), d1 = _mm256_hadd_epi32(c2, c3);
  return _mm256_add_epi32(_mm256_permute2x128_si256(d0, d1, 0x20), _mm256_permute2x128_si256(d0, d1, 0x31));
}
#endif

#define F32_TILE 8 /* fp32: eight weight streams per x load measured ~3% faster than four (1 thread) */

/* y[j] = sum_k x[k] * w_j[k] for rows w0..w(r-1) (r <= F32_TILE) */
static inline void dot_f32(const float *x, const float *w, long K, int r, float *out) {
#ifdef LV_AVX512
  long k = 0;
  if (r == F32_TILE) {
    __m512 a[F32_TILE];
#pragma GCC unroll 8
    for (int j = 0; j < F32_TILE; j++) a[j] = _mm512_setzero_ps();
    /* prefetch the tile after next (8 K floats, in address order) into L2, eight cache lines per step: the rows
     * are 8 strided streams the hardware prefetcher alone keeps too few lines ahead on. Zen 4, 1 thread, the 49
     * GPT-2 products (C probe, CPU time, loaded machine): no prefetch 23.7-25.6 ms, with the L1 hint (T0)
     * 21.5-22.6 (a plain read 18.2-19.4); later T0 25.1-29.1, T1 21.4-25.0 (a read 21.8-24.4) */
    const char *ahead = (const char *)(w + 2L * F32_TILE * K);
    for (long i = 0; k + 16 <= K; k += 16, i += F32_TILE) {
      __m512 xv = _mm512_loadu_ps(x + k);
#pragma GCC unroll 8
      for (int j = 0; j < F32_TILE; j++) {
        _mm_prefetch(ahead + (i + j) * 64, _MM_HINT_T1);
        a[j] = _mm512_fmadd_ps(_mm512_loadu_ps(w + j * K + k), xv, a[j]);
      }
    }
    if (k < K) {
      __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
      __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
#pragma GCC unroll 8
      for (int j = 0; j < F32_TILE; j++) a[j] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + j * K + k), xv, a[j]);
    }
    _mm256_storeu_ps(out, lv_sum8_ps(a));
    return;
  }
  for (int j = 0; j < r; j++) {
    const float *wj = w + j * K;
    __m512 a = _mm512_setzero_ps();
    for (k = 0; k + 16 <= K; k += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(wj + k), _mm512_loadu_ps(x + k), a);
    if (k < K) {
      __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
      a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, wj + k), _mm512_maskz_loadu_ps(m, x + k), a);
    }
    out[j] = _mm512_reduce_add_ps(a);
  }
#else
  for (int j = 0; j < r; j++) {
    const float *wj = w + j * K;
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0}; /* 8 partial sums: lets the compiler vectorise */
    long k = 0;
    for (; k + 8 <= K; k += 8)
      for (int u = 0; u < 8; u++) s[u] += wj[k + u] * x[k + u];
    float t = 0;
    for (; k < K; k++) t += wj[k] * x[k];
    out[j] = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + t;
  }
#endif
}

#endif
