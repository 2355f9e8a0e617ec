/* lingvis native rotary position embedding for fp32 queries or keys, in one pass:
 *
 *   lv_rotary_f32(x, cos, sin, out, B, H, T, D, xs, cs, nt)
 *
 * x (B, H, T, D) given by its (batch, head, row) strides xs[0..2] in elements (the last dimension contiguous:
 * the strided views of a fused qkv product are read as they are), cos and sin (B or 1, 1, T, D) by their
 * (batch, row) strides cs[0..1] (a batch stride of 0 broadcasts one table), out a contiguous (B, H, T, D).
 * With h = D / 2: out[d] = x[d] cos[d] - x[d + h] sin[d] for d < h, x[d] cos[d] + x[d - h] sin[d] above
 * (x cos + rotate_half(x) sin, as Llama's apply_rotary_pos_emb). OpenMP over (batch, head) when nt > 1 and
 * the call has at least LV_ROT_PAR values. Returns 0, or -3 (D odd or < 2).
 */
#include <stddef.h>

#define LV_ROT_PAR 32768 /* values per call below which one thread does it all (torch's grain size) */

int lv_rotary_f32(const float *x, const float *cos, const float *sin, float *out, int B, int H, int T, int D,
                  const long *xs, const long *cs, int nt) {
  if (D < 2 || D % 2) return -3;
  const int h = D / 2;
  const long n = (long)B * H;
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1 && n > 1 && n * T * D >= LV_ROT_PAR)
  for (long bh = 0; bh < n; bh++) {
    const long b = bh / H, hd = bh % H;
    for (int t = 0; t < T; t++) {
      const float *xr = x + b * xs[0] + hd * xs[1] + (long)t * xs[2];
      const float *c = cos + b * cs[0] + (long)t * cs[1], *s = sin + b * cs[0] + (long)t * cs[1];
      float *o = out + ((size_t)bh * T + t) * D;
#pragma omp simd
      for (int d = 0; d < h; d++) o[d] = xr[d] * c[d] - xr[d + h] * s[d];
#pragma omp simd
      for (int d = h; d < D; d++) o[d] = xr[d] * c[d] + xr[d - h] * s[d];
    }
  }
  return 0;
}
