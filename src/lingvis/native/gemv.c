/* lingvis native decode kernels: matrix-vector products for a few rows (a decode step).
 *
 * Every weight is row-major (N, K), contiguous, read once per call; x is (M, K), y is (M, N).
 * Built at first use by lingvis.native.build with `cc -O3 -march=native -fopenmp -shared -fPIC`, loaded with
 * ctypes. AVX-512 (+VNNI for int8) paths under #ifdef, a plain C fallback (auto-vectorised) for any other CPU.
 * Threads: OpenMP over tiles of output rows, `nt` threads (the caller passes torch.get_num_threads()); the
 * library links libgomp.so.1, the runtime torch has already loaded, so both share one thread pool.
 *
 *   lv_linear_f32    y = x W^T + b                         fp32
 *   lv_linear_w8a8   y = dequant(q(x) Wq^T) + b            x quantised per row to uint8 (fbgemm's grid)
 *   lv_linear_w8f32  y = (x Wq^T) * scale + b              weight-only int8, fp32 activations
 */
#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include "dot_f32.h"  /* LV_AVX512 and the fp32 dot-product micro-kernel */
#include "dot_int8.h" /* LV_VNNI, fbgemm's activation grid, the int8 dot products */
#ifdef _OPENMP
#include <omp.h>
#endif
int lv_features(void) {
  int f = 0;
#ifdef LV_AVX512
  f |= 1;
#endif
#ifdef LV_VNNI
  f |= 2;
#endif
#ifdef _OPENMP
  f |= 4;
#endif
  return f;
}

/* ---------------------------------------------------------------- fp32 */


void lv_linear_f32(const float *x, const float *W, const float *bias, float *y, int M, int N, int K, int nt) {
  long tiles = (N + F32_TILE - 1) / F32_TILE;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (long t = 0; t < tiles; t++) {
    long n0 = t * F32_TILE;
    int r = N - n0 < F32_TILE ? (int)(N - n0) : F32_TILE;
    float o[F32_TILE];
    for (int m = 0; m < M; m++) { /* rows after the first re-read the tile from cache */
      dot_f32(x + (long)m * K, W + n0 * K, K, r, o);
      for (int j = 0; j < r; j++) y[(long)m * N + n0 + j] = o[j] + (bias ? bias[n0 + j] : 0.0f);
    }
  }
}

/* ---------------------------------------------------------------- int8 weights, fp32 activations */

void lv_linear_w8f32(const float *x, const int8_t *W, const float *scale, const float *bias, float *y,
                     int M, int N, int K, int nt) {
  long tiles = (N + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (long t = 0; t < tiles; t++) {
    long n0 = t * TILE;
    int r = N - n0 < TILE ? (int)(N - n0) : TILE;
    float o[TILE];
    for (int m = 0; m < M; m++) {
      dot_w8f32(x + (long)m * K, W + n0 * K, K, r, o);
      for (int j = 0; j < r; j++) y[(long)m * N + n0 + j] = o[j] * scale[n0 + j] + (bias ? bias[n0 + j] : 0.0f);
    }
  }
}

/* ---------------------------------------------------------------- W8A8: uint8 activations, int8 weights */

/* y[m, n] = (sx_m * sw[n]) * (sum_k q(x)[m, k] Wq[n, k] - zp_m * wsum[n]) + b[n]: fbgemm's requantisation for
 * float output. wsum: (N,) int32 row sums of Wq. Returns 0, or -1 when M > 16 or no scratch memory. */
int lv_linear_w8a8(const float *x, const int8_t *W, const int32_t *wsum, const float *sw, const float *bias,
                   float *y, int M, int N, int K, int nt) {
  float sx[16];
  int32_t zp[16];
  uint8_t stack_xq[32768]; /* quantised rows: on the stack when they fit */
  if (M > 16) return -1; /* the caller keeps larger inputs on its own path */
  uint8_t *xq = (long)M * K <= (long)sizeof(stack_xq) ? stack_xq : (uint8_t *)malloc((size_t)M * K);
  if (!xq) return -1;
  for (int m = 0; m < M; m++) quantize_row(x + (long)m * K, K, xq + (long)m * K, &sx[m], &zp[m]);
  long tiles = (N + I8_TILE - 1) / I8_TILE;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
  for (long t = 0; t < tiles; t++) {
    long n0 = t * I8_TILE;
    int r = N - n0 < I8_TILE ? (int)(N - n0) : I8_TILE;
    int32_t o[I8_TILE];
    for (int m = 0; m < M; m++) {
      dot_u8s8(xq + (long)m * K, W + n0 * K, K, r, o);
      for (int j = 0; j < r; j++) {
        long n = n0 + j;
        y[(long)m * N + n] = (float)(o[j] - zp[m] * wsum[n]) * (sx[m] * sw[n]) + (bias ? bias[n] : 0.0f);
      }
    }
  }
  if (xq != stack_xq) free(xq);
  return 0;
}
