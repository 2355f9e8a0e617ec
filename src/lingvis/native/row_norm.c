/* lingvis native row norms: LayerNorm or RMSNorm over the last dimension of fp32 rows, optionally after a
 * residual add, in one call:
 *
 *   lv_add_norm_f32(x, r, s, y, gamma, beta, M, C, eps, rms, nt)
 *
 * x (M, C) rows, r (M, C) or NULL, s (M, C) or NULL (written with x + r; may be x or r itself: each element is
 * read before it is written), y (M, C) the normed rows, gamma and beta (C,) or NULL (1 and 0); every array
 * contiguous. With v = x (+ r):
 *   rms != 0: y = v / sqrt(mean(v^2) + eps) * gamma                  (RMSNorm; beta is ignored)
 *   rms == 0: y = (v - mean(v)) / sqrt(var(v) + eps) * gamma + beta  (LayerNorm, biased variance)
 * Per row: one pass for the sum (and the add), a second over the row (in L1) for the centred squares (the
 * LayerNorm variance without the cancellation of E[v^2] - E[v]^2), one for the output; fp32 sums in vector
 * lanes (`omp simd` reductions). OpenMP over rows when nt > 1 and the call has at least LV_NORM_PAR values.
 * Returns 0, or -3 (C < 1).
 */
#include <math.h>
#include <stddef.h>

#define LV_NORM_PAR 32768 /* values per call below which one thread does it all (torch's grain size) */

static void lv_norm_row(const float *x, const float *r, float *s, float *y, const float *gamma, const float *beta,
                        int C, float eps, int rms) {
  const float *v = x;
  float sum = 0.0f;
  if (r) {
    float *dst = s ? s : y; /* without s the sum is staged in y, which is overwritten below */
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < C; c++) {
      const float a = x[c] + r[c];
      dst[c] = a;
      sum += a;
    }
    v = dst;
  } else if (!rms) {
#pragma omp simd reduction(+ : sum)
    for (int c = 0; c < C; c++) sum += x[c];
  }
  const float mean = rms ? 0.0f : sum / (float)C;
  float sq = 0.0f;
#pragma omp simd reduction(+ : sq)
  for (int c = 0; c < C; c++) {
    const float d = v[c] - mean;
    sq += d * d;
  }
  const float rstd = 1.0f / sqrtf(sq / (float)C + eps);
  if (gamma && beta) {
#pragma omp simd
    for (int c = 0; c < C; c++) y[c] = (v[c] - mean) * rstd * gamma[c] + beta[c];
  } else if (gamma) {
#pragma omp simd
    for (int c = 0; c < C; c++) y[c] = (v[c] - mean) * rstd * gamma[c];
  } else if (beta) {
#pragma omp simd
    for (int c = 0; c < C; c++) y[c] = (v[c] - mean) * rstd + beta[c];
  } else {
#pragma omp simd
    for (int c = 0; c < C; c++) y[c] = (v[c] - mean) * rstd;
  }
}

int lv_add_norm_f32(const float *x, const float *r, float *s, float *y, const float *gamma, const float *beta,
                    int M, int C, float eps, int rms, int nt) {
  if (C < 1) return -3;
  if (rms) beta = NULL;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && (long)M * C >= LV_NORM_PAR && M > 1)
  for (int m = 0; m < M; m++) {
    const size_t o = (size_t)m * C;
    lv_norm_row(x + o, r ? r + o : NULL, s ? s + o : NULL, y + o, gamma, beta, C, eps, rms);
  }
  return 0;
}
