/* lingvis native GroupNorm over a channels-last (NHWC) fp32 map, optionally with a per-(batch, channel) value
 * added first and SiLU applied after, in one call:
 *
 *   lv_group_norm_nhwc_f32(x, add, gamma, beta, y, B, HW, C, G, eps, silu, nt)
 *
 * x and y (B, HW, C) contiguous (y may be x: each element is read before it is written), add (B, C) or NULL,
 * gamma and beta (C,) or NULL (1 and 0). y = act((x + add - mean_g) * rstd_g * gamma + beta), act = SiLU when
 * silu != 0, statistics per (batch, group of C / G channels) over HW x C/G values (biased variance, as
 * torch's group_norm). Two passes over x per batch row: per-channel sums and sums of squares (double), then
 * one affine per channel (the add, mean, rstd, gamma and beta folded into a scale and a shift) and SiLU, the
 * sigmoid from 2^x by a degree-5 polynomial (relative error 2.3e-7) on AVX-512. OpenMP over the batch.
 * Returns 0, -2 (no memory) or -3 (C not a multiple of G).
 */
#include <math.h>
#include <stdlib.h>
#include "dot_f32.h" /* LV_AVX512 */
#ifdef LV_AVX512
#include <immintrin.h>

/* v * sigmoid(v): e = 2^(-|v| log2 e) <= 1, sigmoid = 1 / (1 + e) for v >= 0, e / (1 + e) below */
static inline __m512 lv_gn_silu_ps(__m512 v) {
  const __m512 a = _mm512_abs_ps(v);
  const __m512 e = lv_exp2_ps(_mm512_mul_ps(a, _mm512_set1_ps(-1.4426950408889634f)));
  const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
  const __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 s = _mm512_mask_mul_ps(inv, neg, inv, e);
  return _mm512_mul_ps(v, s);
}
#endif

static void lv_gn_row(const float *x, float *y, const float *scale, const float *shift, int C, int silu) {
#ifdef LV_AVX512
  int c = 0;
  for (; c + 16 <= C; c += 16) {
    __m512 v = _mm512_fmadd_ps(_mm512_loadu_ps(x + c), _mm512_loadu_ps(scale + c), _mm512_loadu_ps(shift + c));
    _mm512_storeu_ps(y + c, silu ? lv_gn_silu_ps(v) : v);
  }
  if (c < C) {
    const __mmask16 m = (__mmask16)((1u << (C - c)) - 1u);
    __m512 v = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + c), _mm512_maskz_loadu_ps(m, scale + c),
                               _mm512_maskz_loadu_ps(m, shift + c));
    _mm512_mask_storeu_ps(y + c, m, silu ? lv_gn_silu_ps(v) : v);
  }
#else
  for (int c = 0; c < C; c++) {
    const float v = x[c] * scale[c] + shift[c];
    y[c] = silu ? v / (1.0f + expf(-v)) : v;
  }
#endif
}

int lv_group_norm_nhwc_f32(const float *x, const float *add, const float *gamma, const float *beta, float *y,
                           int B, int HW, int C, int G, float eps, int silu, int nt) {
  if (G <= 0 || C % G) return -3;
  const int Cg = C / G;
  int status = 0;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && B > 1)
  for (int b = 0; b < B; b++) {
    double *acc = malloc(sizeof(double) * 2 * (size_t)C);
    float *sc = malloc(sizeof(float) * 2 * (size_t)C);
    if (!acc || !sc) {
      free(acc);
      free(sc);
#pragma omp atomic write
      status = -2;
      continue;
    }
    double *s = acc, *q = acc + C;
    float *shift = sc + C;
    const float *xb = x + (size_t)b * HW * C;
    float *yb = y + (size_t)b * HW * C;
    const float *ab = add ? add + (size_t)b * C : NULL;
    for (int c = 0; c < C; c++) s[c] = q[c] = 0.0;
    for (int p = 0; p < HW; p++) { /* per-channel sums of the raw x; the add is folded in below */
      const float *xp = xb + (size_t)p * C;
#pragma omp simd
      for (int c = 0; c < C; c++) {
        const double v = xp[c];
        s[c] += v;
        q[c] += v * v;
      }
    }
    for (int g = 0; g < G; g++) {
      double sum = 0.0, sq = 0.0;
      for (int c = g * Cg; c < (g + 1) * Cg; c++) {
        const double a = ab ? ab[c] : 0.0; /* sum (x + a) = s + HW a; sum (x + a)^2 = q + 2 a s + HW a^2 */
        sum += s[c] + HW * a;
        sq += q[c] + 2.0 * a * s[c] + HW * a * a;
      }
      const double n = (double)HW * Cg, mean = sum / n;
      double var = sq / n - mean * mean;
      if (var < 0.0) var = 0.0;
      const double rstd = 1.0 / sqrt(var + eps);
      for (int c = g * Cg; c < (g + 1) * Cg; c++) {
        const double k = rstd * (gamma ? gamma[c] : 1.0f);
        sc[c] = (float)k;
        shift[c] = (float)((beta ? beta[c] : 0.0f) + ((ab ? ab[c] : 0.0) - mean) * k);
      }
    }
    for (int p = 0; p < HW; p++) lv_gn_row(xb + (size_t)p * C, yb + (size_t)p * C, sc, shift, C, silu);
    free(acc);
    free(sc);
  }
  return status;
}
