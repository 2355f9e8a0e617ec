/* lingvis native: the int8 micro-kernels shared by gemv.c (one product per call) and step.c (the whole decode
 * step): fbgemm's per-row activation grid and quantisation, the uint8 x int8 (VNNI) and int8 x fp32 dot products.
 * Include after dot_f32.h (LV_AVX512). Defines LV_VNNI when the compiler targets AVX-512 VNNI. */
#ifndef LV_DOT_INT8_H
#define LV_DOT_INT8_H
#include <math.h>
#include <stdint.h>

#if defined(LV_AVX512) && defined(__AVX512VNNI__)
#define LV_VNNI 1
#endif

#define TILE 4    /* weight-only int8: output rows per tile */
#ifndef I8_TILE
#define I8_TILE 8 /* W8A8: weight streams per x load */
#endif

/* The grid fbgemm's dynamic linear picks for a tensor (torch's quant_utils::ChooseQuantizationParams over
 * [min(lo, 0), max(hi, 0)] onto 0..255, preserve_sparsity off), and the quantisation
 * q = clamp(zp + nearbyint(x / scale), 0, 255). */
static void choose_qparams(float lo, float hi, float *scale_out, int32_t *zp_out) {
  const int qmin = 0, qmax = 255;
  lo = lo < 0.f ? lo : 0.f;
  hi = hi > 0.f ? hi : 0.f;
  double scale = ((double)hi - lo) / (qmax - qmin);
  if ((float)scale == 0.0f || isinf(1.0f / (float)scale)) scale = 0.1;
  if (scale < 1e-10) { /* SMALL_SCALE_THRESHOLD */
    float org = (float)scale;
    scale = 1e-10;
    if (lo == 0.0f) hi = (float)(scale * (qmax - qmin));
    else if (hi == 0.0f) lo = (float)(-scale * (qmax - qmin));
    else { float amp = (float)(1e-10 / org); lo *= amp; hi *= amp; }
  }
  double zp_min = qmin - lo / scale, zp_max = qmax - hi / scale;
  double err_min = fabs((double)qmin) - fabs(lo / scale), err_max = fabs((double)qmax) - fabs(hi / scale);
  double zp0 = err_min < err_max ? zp_min : zp_max;
  int32_t zp;
  if (zp0 < qmin) zp = qmin;
  else if (zp0 > qmax) zp = qmax;
  else zp = (int32_t)nearbyint(zp0);
  *scale_out = (float)scale;
  *zp_out = zp;
}

static void quantize_row(const float *x, long K, uint8_t *q, float *scale, int32_t *zp) {
  float lo = x[0], hi = x[0];
  long k = 0;
#ifdef LV_AVX512
  /* sixteen at a time (every thread of the whole step quantises each product's input: scalar, this was ~2% of
   * a W8A8 step); the same values as the scalar loop: min/max are exact, x * inv is the same float product and
   * _mm512_cvtps_epi32 rounds to nearest even as nearbyintf does in the default rounding mode; |x * inv| <= 255
   * by the grid's construction, so the int32 conversion cannot overflow */
  if (K >= 16) {
    __m512 vlo = _mm512_loadu_ps(x), vhi = vlo;
    for (k = 16; k + 16 <= K; k += 16) {
      __m512 v = _mm512_loadu_ps(x + k);
      vlo = _mm512_min_ps(vlo, v);
      vhi = _mm512_max_ps(vhi, v);
    }
    lo = _mm512_reduce_min_ps(vlo);
    hi = _mm512_reduce_max_ps(vhi);
  } else {
    k = 1;
  }
#else
  k = 1;
#endif
  for (; k < K; k++) { lo = x[k] < lo ? x[k] : lo; hi = x[k] > hi ? x[k] : hi; }
  choose_qparams(lo, hi, scale, zp);
  float inv = 1.0f / *scale;
  k = 0;
#ifdef LV_AVX512
  const __m512 vinv = _mm512_set1_ps(inv);
  const __m512i vzp = _mm512_set1_epi32(*zp), zero = _mm512_setzero_si512(), top = _mm512_set1_epi32(255);
  for (; k + 16 <= K; k += 16) {
    __m512i v = _mm512_add_epi32(vzp, _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + k), vinv)));
    _mm_storeu_si128((__m128i *)(q + k), _mm512_cvtepi32_epi8(_mm512_min_epi32(_mm512_max_epi32(v, zero), top)));
  }
#endif
  for (; k < K; k++) {
    float v = *zp + nearbyintf(x[k] * inv);
    q[k] = (uint8_t)(v < 0.f ? 0.f : v > 255.f ? 255.f : v);
  }
}

static inline void dot_u8s8(const uint8_t *x, const int8_t *w, long K, int r, int32_t *out) {
#ifdef LV_VNNI
  long k = 0;
  if (r == I8_TILE) {
    __m512i a[I8_TILE];
#pragma GCC unroll 8
    for (int j = 0; j < I8_TILE; j++) a[j] = _mm512_setzero_si512();
    /* rows of K bytes are short strided streams for the hardware prefetcher: prefetch the tile after next (8 K
     * bytes, in address order) into L2, eight cache lines per step. Zen 4, 1 thread, the 49 GPT-2 products (C
     * probe, CPU time): without 13.2-15.3 ms, with the T0 hint 9.2-11.8 (a plain read 7.6-9.0); later T0 8.0-9.5,
     * T1 7.8-8.2 (a read 6.0-6.3) */
    const char *ahead = (const char *)w + 2L * I8_TILE * K;
    for (long i = 0; k + 64 <= K; k += 64, i += I8_TILE) {
      __m512i xv = _mm512_loadu_si512(x + k);
#pragma GCC unroll 8
      for (int j = 0; j < I8_TILE; j++) {
        _mm_prefetch(ahead + (i + j) * 64, _MM_HINT_T1);
        a[j] = _mm512_dpbusd_epi32(a[j], xv, _mm512_loadu_si512(w + j * K + k));
      }
    }
    if (k < K) {
      __mmask64 m = (__mmask64)((~0ull) >> (64 - (K - k)));
      __m512i xv = _mm512_maskz_loadu_epi8(m, x + k);
#pragma GCC unroll 8
      for (int j = 0; j < I8_TILE; j++) a[j] = _mm512_dpbusd_epi32(a[j], xv, _mm512_maskz_loadu_epi8(m, w + j * K + k));
    }
#if I8_TILE == 8
    _mm256_storeu_si256((__m256i *)out, lv_sum8_epi32(a));
#else
    for (int j = 0; j < I8_TILE; j++) out[j] = _mm512_reduce_add_epi32(a[j]);
#endif
    return;
  }
  for (int j = 0; j < r; j++) {
    const int8_t *wj = w + j * K;
    __m512i a = _mm512_setzero_si512();
    for (k = 0; k + 64 <= K; k += 64) a = _mm512_dpbusd_epi32(a, _mm512_loadu_si512(x + k), _mm512_loadu_si512(wj + k));
    if (k < K) {
      __mmask64 m = (__mmask64)((~0ull) >> (64 - (K - k)));
      a = _mm512_dpbusd_epi32(a, _mm512_maskz_loadu_epi8(m, x + k), _mm512_maskz_loadu_epi8(m, wj + k));
    }
    out[j] = _mm512_reduce_add_epi32(a);
  }
#else
  for (int j = 0; j < r; j++) {
    const int8_t *wj = w + j * K;
    int32_t s = 0;
    for (long k = 0; k < K; k++) s += (int32_t)x[k] * (int32_t)wj[k];
    out[j] = s;
  }
#endif
}

/* A full W8A8 tile stored interleaved (step.py's `LinearInt8.tiled()`): for each 64-byte column block k, the
 * eight rows' 64 bytes one after another, so the tile is ONE sequential stream of 8 K bytes instead of eight
 * strided ones. K % 64 == 0. The same integers as dot_u8s8. Zen 4, 1 thread, the 88 products of a ~1B Llama
 * (C probe, CPU time): 30.4-30.6 ms against 36.2-36.5 row-major and 31.2-31.4 for a plain read of the bytes. */
static inline void dot_u8s8_tiled(const uint8_t *x, const int8_t *w, long K, int32_t *out) {
#ifdef LV_VNNI
  __m512i a[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; j++) a[j] = _mm512_setzero_si512();
  for (long k = 0; k < K; k += 64, w += 512) {
    __m512i xv = _mm512_loadu_si512(x + k);
    /* 4 KB ahead into L2, every other line (the adjacent-line prefetcher takes the pair) */
    _mm_prefetch((const char *)w + 4096, _MM_HINT_T1);
    _mm_prefetch((const char *)w + 4096 + 128, _MM_HINT_T1);
    _mm_prefetch((const char *)w + 4096 + 256, _MM_HINT_T1);
    _mm_prefetch((const char *)w + 4096 + 384, _MM_HINT_T1);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) a[j] = _mm512_dpbusd_epi32(a[j], xv, _mm512_loadu_si512(w + j * 64));
  }
  _mm256_storeu_si256((__m256i *)out, lv_sum8_epi32(a));
#else
  for (int j = 0; j < 8; j++) out[j] = 0;
  for (long k = 0; k < K; k += 64, w += 512)
    for (int j = 0; j < 8; j++)
      for (int u = 0; u < 64; u++) out[j] += (int32_t)x[k + u] * (int32_t)w[j * 64 + u];
#endif
}

static inline void dot_w8f32(const float *x, const int8_t *w, long K, int r, float *out) {
  for (int j = 0; j < r; j++) {
    const int8_t *wj = w + j * K;
    long k = 0;
#ifdef LV_AVX512
    __m512 a = _mm512_setzero_ps(), b = a;
    for (; k + 32 <= K; k += 32) {
      __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(wj + k))));
      __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(wj + k + 16))));
      a = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + k), a);
      b = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + k + 16), b);
    }
    for (; k < K; k += 16) {
      long left = K - k;
      __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
      __m512 wv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, wj + k)));
      a = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + k), a);
    }
    out[j] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
#else
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (; k + 8 <= K; k += 8)
      for (int u = 0; u < 8; u++) s[u] += (float)wj[k + u] * x[k + u];
    float t = 0;
    for (; k < K; k++) t += (float)wj[k] * x[k];
    out[j] = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + t;
#endif
  }
}

#endif
