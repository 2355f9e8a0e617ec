/* lingvis native: a whole batch-1 decode step of a GPT-family model in one call (`lv_step_f32`: fp32
 * activations; each weight matrix fp32 or int8, weight-only or W8A8, as gemv.c computes them).
 *
 * One OpenMP parallel region per step (not one per matrix product): every layer's norms, fused QKV product,
 * q/k norms, rotary embedding, KV-cache write, attention over the cache, output projection, MLP (plain or
 * gated activation) and residual adds, then the final norm and the LM head, with barriers between the
 * stages that need a whole vector. The matrix products split their 8-row tiles statically over the team;
 * attention splits over KV heads (each thread rotates and stores its keys, then attends with the query heads
 * of that group). Norms are computed by every thread into its own buffer (768-4096 elements: cheaper than a
 * barrier). Weights row-major (N, K) as the layers hold them (nn.Linear fp32, QuantLinear int8); the KV cache is the model's own
 * (1, KV, max_len, D) buffers. Built with gemv.c by lingvis.native.build; described in docs/decoding.md.
 *
 * `lv_step_rows_f32` runs M consecutive positions of the same sequence (speculative decoding's verify pass) in one
 * call: each tile of weight rows read once for all M rows (fp32: three rows per pass over the tile, in registers),
 * the M keys/values written first, row i attending causally over columns 0..pos+i; each row bit for bit the
 * one-row step at its position.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dot_f32.h"  /* LV_AVX512 and the fp32 dot-product micro-kernel */
#include "dot_int8.h" /* LV_VNNI, fbgemm's activation grid, the int8 dot products */
#ifdef _OPENMP
#include <omp.h>
#endif

enum { LV_LAYERNORM = 0, LV_RMSNORM = 1 };
/* activations: the plain ones of lingvis.nn.mlp.ACTIVATIONS; gated MLPs apply SILU (swiglu) or GELU (geglu)
 * to the gate half and multiply by the up half */
enum { LV_GELU = 0, LV_GELU_TANH = 1, LV_QUICK_GELU = 2, LV_RELU = 3, LV_RELU2 = 4, LV_SILU = 5 };

typedef struct {
  const float *w, *b; /* (n,) weight, (n,) bias or NULL; w NULL: no norm */
} lv_norm;

/* a weight matrix (N, K), row-major: fp32 (nn.Linear), or int8 per output channel (quant.QuantLinear) with
 * fp32 activations (weight-only) or activations quantised per call to uint8 on fbgemm's grid (W8A8), exactly
 * as gemv.c's lv_linear_w8f32 / lv_linear_w8a8 compute them */
/* LV_W8A8_TILED: W8A8 whose full 8-row tiles are stored interleaved (dot_u8s8_tiled; K % 64 == 0, I8_TILE 8), the
 * last partial tile row-major at the same offset */
enum { LV_F32 = 0, LV_W8A8 = 1, LV_W8F32 = 2, LV_W8A8_TILED = 3 };
typedef struct {
  int kind;
  const void *w;       /* float or int8_t (N, K) */
  const float *b;      /* (N,) or NULL */
  const float *scale;  /* int8: (N,) per-channel scales */
  const int32_t *wsum; /* W8A8: (N,) row sums of the int8 weights */
} lv_mat;

typedef struct {
  lv_norm ln1, ln2, q_norm, k_norm;
  lv_mat qkv;               /* ((H + 2 KV) D, C) */
  lv_mat proj;              /* (C, H D) */
  lv_mat fc;                /* (F, C) or (2F, C) gated: gate rows then up rows */
  lv_mat fc2;               /* (C, F) */
  float *k_cache, *v_cache; /* (KV, max_len, D) each */
} lv_layer;

typedef struct {
  int n_layer, C, H, KV, D, F, V, max_len;
  int norm, qk_norm;   /* LV_LAYERNORM / LV_RMSNORM */
  int act, gated;      /* LV_* activation; gated: 1 */
  float eps, qk_eps;
  lv_norm ln_f;
  lv_mat head; /* (V, C) */
  const lv_layer *layers;
} lv_model;

int lv_step_struct_sizes(void) { /* lets the ctypes side check its mirror of the structs */
  return (int)(sizeof(lv_layer) * 1000 + sizeof(lv_model));
}

static void norm(const float *x, lv_norm n, int kind, float eps, int C, float *out) {
  double s = 0, s2 = 0;
  float mean = 0.0f, r;
  if (kind == LV_LAYERNORM) {
    for (int i = 0; i < C; i++) s += x[i];
    mean = (float)(s / C);
    for (int i = 0; i < C; i++) { double d = x[i] - mean; s2 += d * d; }
  } else {
    for (int i = 0; i < C; i++) s2 += (double)x[i] * x[i];
  }
  r = 1.0f / sqrtf((float)(s2 / C) + eps);
  for (int i = 0; i < C; i++) out[i] = (x[i] - mean) * r * n.w[i] + (n.b ? n.b[i] : 0.0f);
}

static inline float activate(float v, int act) {
  switch (act) {
    case LV_GELU: return 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
    case LV_GELU_TANH: return 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    case LV_QUICK_GELU: return v / (1.0f + expf(-1.702f * v));
    case LV_RELU: return v > 0.0f ? v : 0.0f;
    case LV_RELU2: return v > 0.0f ? v * v : 0.0f;
    default: return v / (1.0f + expf(-v)); /* LV_SILU */
  }
}

#ifdef LV_AVX512
/* exp(x) for 8 floats: Cephes' expf (range reduction by ln 2, degree-6 polynomial, ~1-2 ulp) */
static inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-88.3762626647949f)), _mm256_set1_ps(88.3762626647949f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  return _mm256_scalef_ps(p, n);
}

/* the activations that call expf / tanhf per element, eight at a time (libm's scalar tanhf and expf were ~7%
 * of a W8A8 GPT-2 step in perf); returns 0 for the others (the caller's scalar loop does them) */
static inline int activate8(float *v, int act) {
  const __m256 x = _mm256_loadu_ps(v), one = _mm256_set1_ps(1.0f);
  __m256 y;
  if (act == LV_GELU_TANH) { /* 0.5 x (1 + tanh(u)), tanh |u| = (1 - e) / (1 + e) with e = exp(-2 |u|) */
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.79788456080286536f),
                             _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), x), _mm256_mul_ps(x, x), x));
    __m256 sign = _mm256_and_ps(u, _mm256_set1_ps(-0.0f)), e = exp8(_mm256_mul_ps(_mm256_set1_ps(-2.0f),
                                                                                _mm256_andnot_ps(sign, u)));
    __m256 th = _mm256_or_ps(_mm256_div_ps(_mm256_sub_ps(one, e), _mm256_add_ps(one, e)), sign);
    y = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(one, th));
  } else if (act == LV_GELU) { /* 0.5 x (1 + erf(x / sqrt 2)), erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7):
                                 * libm's scalar erff was ~15% of a multi-row step of a GELU model in perf */
    __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    __m256 sign = _mm256_and_ps(z, _mm256_set1_ps(-0.0f)), a = _mm256_andnot_ps(sign, z);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), a, one));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    __m256 erf = _mm256_fnmadd_ps(p, exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), a), a)), one);
    y = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(one, _mm256_or_ps(erf, sign)));
  } else if (act == LV_SILU || act == LV_QUICK_GELU) { /* x / (1 + exp(-a x)) */
    __m256 a = _mm256_set1_ps(act == LV_SILU ? -1.0f : -1.702f);
    y = _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_mul_ps(a, x))));
  } else {
    return 0;
  }
  _mm256_storeu_ps(v, y);
  return 1;
}

/* act[i0..i0+8) = activation(ff[i0..]) * ff[F + i0..] (a gated MLP's halves), eight at a time: the vector
   activation where there is one, the scalar one for a tail */
static inline void gate8(const float *ff, float *act, int F, int i0, int kind) {
  int n = F - i0 < 8 ? F - i0 : 8, done = 0;
  float g[8];
  for (int i = 0; i < n; i++) g[i] = ff[i0 + i];
#ifdef LV_AVX512
  done = n == 8 && activate8(g, kind);
#endif
  for (int i = 0; i < n; i++) act[i0 + i] = (done ? g[i] : activate(g[i], kind)) * ff[F + i0 + i];
}
#endif

/* o[0..r-1] = x . W[n0..n0+r-1] (before bias and activation) for one row tile of r <= 8 rows; xq, sx, zp: x
 * quantised (W8A8) */
static inline void tile_dot(const float *x, const uint8_t *xq, float sx, int32_t zp, const lv_mat *M, long n0, int r,
                            long K, float *o) {
  if (M->kind == LV_F32) {
    dot_f32(x, (const float *)M->w + n0 * K, K, r, o);
  } else if (M->kind == LV_W8A8 || M->kind == LV_W8A8_TILED) {
    int32_t q[I8_TILE];
    if (M->kind == LV_W8A8_TILED && r == I8_TILE)
      dot_u8s8_tiled(xq, (const int8_t *)M->w + n0 * K, K, q);
    else
      dot_u8s8(xq, (const int8_t *)M->w + n0 * K, K, r, q);
#ifdef LV_AVX512
    if (r == 8) { /* (float)(q - zp wsum) * (sx * scale), eight rows at once */
      __m256i d = _mm256_sub_epi32(_mm256_loadu_si256((const __m256i *)q),
                                   _mm256_mullo_epi32(_mm256_set1_epi32(zp), _mm256_loadu_si256((const __m256i *)(M->wsum + n0))));
      _mm256_storeu_ps(o, _mm256_mul_ps(_mm256_cvtepi32_ps(d), _mm256_mul_ps(_mm256_set1_ps(sx), _mm256_loadu_ps(M->scale + n0))));
      return;
    }
#endif
    for (int j = 0; j < r; j++) o[j] = (float)(q[j] - zp * M->wsum[n0 + j]) * (sx * M->scale[n0 + j]);
  } else {
    dot_w8f32(x, (const int8_t *)M->w + n0 * K, K, r, o);
    for (int j = 0; j < r; j++) o[j] *= M->scale[n0 + j];
  }
}

/* y[n0 + j] (+)= act(o[j] + b[n0 + j]), j < r (o is clobbered) */
static inline void epilogue(const lv_mat *M, float *o, float *y, long n0, int r, int add, int act) {
#ifdef LV_AVX512
  if (r == 8) { /* a full tile: the epilogue as one vector */
    __m256 v = _mm256_loadu_ps(o);
    if (M->b) v = _mm256_add_ps(v, _mm256_loadu_ps(M->b + n0));
    _mm256_storeu_ps(o, v);
    if (act < 0 || activate8(o, act)) {
      v = _mm256_loadu_ps(o);
      if (add) v = _mm256_add_ps(_mm256_loadu_ps(y + n0), v);
      _mm256_storeu_ps(y + n0, v);
      return;
    }
    for (int j = 0; j < 8; j++) y[n0 + j] = add ? y[n0 + j] + activate(o[j], act) : activate(o[j], act);
    return;
  }
#endif
  for (int j = 0; j < r; j++) {
    float v = o[j] + (M->b ? M->b[n0 + j] : 0.0f);
    if (act >= 0) v = activate(v, act);
    y[n0 + j] = add ? y[n0 + j] + v : v;
  }
}

static inline int tile_rows(const lv_mat *M) {
  return M->kind == LV_F32 ? F32_TILE : M->kind == LV_W8A8 || M->kind == LV_W8A8_TILED ? I8_TILE : TILE;
}

/* y[n] (+)= act(x . W[n] + b[n]) for this thread's share of the row tiles; no barrier at the end. xq: K bytes
 * of this thread's own (W8A8 quantises x there: every thread the same values, no barrier needed) */
static void gemv_share(const float *x, const lv_mat *M, float *y, long N, long K, int add, int act, uint8_t *xq) {
  const int rows = tile_rows(M);
  const long tiles = (N + rows - 1) / rows;
  float sx = 0.0f;
  int32_t zp = 0;
  if (M->kind == LV_W8A8 || M->kind == LV_W8A8_TILED) quantize_row(x, K, xq, &sx, &zp);
#pragma omp for schedule(static) nowait
  for (long t = 0; t < tiles; t++) {
    long n0 = t * rows;
    int r = N - n0 < rows ? (int)(N - n0) : rows;
    float o[F32_TILE > I8_TILE ? F32_TILE : I8_TILE];
    tile_dot(x, xq, sx, zp, M, n0, r, K, o);
    epilogue(M, o, y, n0, r, add, act);
  }
}

static inline float dot(const float *a, const float *b, int n) {
#ifdef LV_AVX512
  __m512 s = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s);
  if (i < n) {
    __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
    s = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s);
  }
  return _mm512_reduce_add_ps(s);
#else
  float s = 0.0f;
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
#endif
}

/* rotate-half rotary embedding in place: x * cos + [-x2, x1] * sin (lingvis.nn.position.apply_rotary) */
static void rotate(float *x, const float *cos, const float *sin, int D, float *tmp) {
  int h = D / 2;
  for (int i = 0; i < D; i++) tmp[i] = x[i] * cos[i] + (i < h ? -x[i + h] : x[i - h]) * sin[i];
  memcpy(x, tmp, sizeof(float) * D);
}

/* the key/value of KV head g (from one row's qkv) written at column `col`, the key normed and rotated there */
static void store_kv(const lv_model *m, const lv_layer *L, const float *qkv, int g, int col, const float *cos,
                     const float *sin, float *tmp) {
  const int H = m->H, KV = m->KV, D = m->D;
  float *k = L->k_cache + ((size_t)g * m->max_len + col) * D, *v = L->v_cache + ((size_t)g * m->max_len + col) * D;
  memcpy(k, qkv + (size_t)(H + g) * D, sizeof(float) * D);
  memcpy(v, qkv + (size_t)(H + KV + g) * D, sizeof(float) * D);
  if (L->k_norm.w) {
    norm(k, L->k_norm, m->qk_norm, m->qk_eps, D, tmp);
    memcpy(k, tmp, sizeof(float) * D);
  }
  if (cos) rotate(k, cos, sin, D, tmp);
}

#ifdef LV_AVX512
static inline float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

static inline float hsum8(__m256 v) {
  __m128 m = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_add_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)));
}
#endif

/* query head h (from one row's qkv, at column `col`) attends over cache columns 0..col of its KV head; (D,)
 * output at att + h D. scores: col + 1 floats. AVX-512: eight keys' scores at a time (their dot products summed
 * together by lv_sum8_ps), the probabilities by exp8 eight at a time, the output in 16-wide column chunks with four
 * partial sums (the scalar loops were ~20% of a 9-row step at 200 cached columns) */
static void attend_head(const lv_model *m, const lv_layer *L, const float *qkv, int h, int col, const float *cos,
                        const float *sin, float *att, float *scores, float *tmp) {
  const int D = m->D, g = h / (m->H / m->KV), n = col + 1;
  const float *kc = L->k_cache + (size_t)g * m->max_len * D, *vc = L->v_cache + (size_t)g * m->max_len * D;
  const float scale = 1.0f / sqrtf((float)D);
  float q[D];
  memcpy(q, qkv + (size_t)h * D, sizeof(float) * D);
  if (L->q_norm.w) norm(qkv + (size_t)h * D, L->q_norm, m->qk_norm, m->qk_eps, D, q);
  if (cos) rotate(q, cos, sin, D, tmp);
  float *o = att + (size_t)h * D;
#ifdef LV_AVX512
  const int dfull = D - D % 16;
  const __mmask16 tail = (__mmask16)((1u << (D % 16)) - 1);
  __m256 vmx = _mm256_set1_ps(-INFINITY);
  int t = 0;
  for (; t + 8 <= n; t += 8) {
    __m512 a[8];
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) a[j] = _mm512_setzero_ps();
    for (int d = 0; d < dfull; d += 16) {
      const __m512 qv = _mm512_loadu_ps(q + d);
#pragma GCC unroll 8
      for (int j = 0; j < 8; j++) a[j] = _mm512_fmadd_ps(qv, _mm512_loadu_ps(kc + (size_t)(t + j) * D + d), a[j]);
    }
    if (tail) {
      const __m512 qv = _mm512_maskz_loadu_ps(tail, q + dfull);
#pragma GCC unroll 8
      for (int j = 0; j < 8; j++)
        a[j] = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(tail, kc + (size_t)(t + j) * D + dfull), a[j]);
    }
    const __m256 sc = _mm256_mul_ps(lv_sum8_ps(a), _mm256_set1_ps(scale));
    _mm256_storeu_ps(scores + t, sc);
    vmx = _mm256_max_ps(vmx, sc);
  }
  float mx = hmax8(vmx);
  for (; t < n; t++) {
    scores[t] = dot(q, kc + (size_t)t * D, D) * scale;
    mx = scores[t] > mx ? scores[t] : mx;
  }
  __m256 vsum = _mm256_setzero_ps();
  const __m256 vmax = _mm256_set1_ps(mx);
  for (t = 0; t + 8 <= n; t += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(scores + t), vmax));
    _mm256_storeu_ps(scores + t, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = hsum8(vsum);
  for (; t < n; t++) sum += scores[t] = expf(scores[t] - mx);
  const __m512 inv = _mm512_set1_ps(1.0f / sum);
  for (int d = 0; d < D; d += 16) {
    const __mmask16 mk = D - d >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (D - d)) - 1);
    __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (t = 0; t + 4 <= n; t += 4)
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++)
        acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(scores[t + j]), _mm512_maskz_loadu_ps(mk, vc + (size_t)(t + j) * D + d),
                                 acc[j]);
    for (; t < n; t++)
      acc[0] = _mm512_fmadd_ps(_mm512_set1_ps(scores[t]), _mm512_maskz_loadu_ps(mk, vc + (size_t)t * D + d), acc[0]);
    const __m512 r = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
    _mm512_mask_storeu_ps(o + d, mk, _mm512_mul_ps(r, inv));
  }
#else
  float mx = -INFINITY, sum = 0.0f;
  for (int t = 0; t < n; t++) {
    scores[t] = dot(q, kc + (size_t)t * D, D) * scale;
    mx = scores[t] > mx ? scores[t] : mx;
  }
  for (int t = 0; t < n; t++) sum += scores[t] = expf(scores[t] - mx);
  const float inv = 1.0f / sum;
  for (int d = 0; d < D; d++) o[d] = 0.0f;
  for (int t = 0; t < n; t++) {
    const float p = scores[t] * inv, *v = vc + (size_t)t * D;
    for (int d = 0; d < D; d++) o[d] += p * v[d];
  }
#endif
}

/* keys/values of KV head g written at column pos, then the attention of its query heads over columns 0..pos */
static void attend_group(const lv_model *m, const lv_layer *L, const float *qkv, int g, int pos, const float *cos,
                         const float *sin, float *att, float *scores, float *tmp) {
  const int per = m->H / m->KV;
  store_kv(m, L, qkv, g, pos, cos, sin, tmp);
  for (int h = g * per; h < (g + 1) * per; h++) attend_head(m, L, qkv, h, pos, cos, sin, att, scores, tmp);
}

/* the widest input of any product in a layer (C, H D or F): the per-thread quantised-activation buffer's length */
static inline int widest_k(const lv_model *m) {
  const int hd = m->H * m->D, k = m->C > m->F ? m->C : m->F;
  return k > hd ? k : hd;
}

/* Called by every thread of a parallel region: this thread's scratch of n floats (NULL when malloc fails), counted in
 * *failed; returns after every thread has allocated, so `*failed` is final for all of them. */
static float *thread_scratch(size_t n, int *failed) {
  float *mine = malloc(sizeof(float) * n);
#pragma omp atomic
  *failed += mine == NULL;
#pragma omp barrier
  return mine;
}

/* One decode step at position `pos` (pos < max_len: the caller checks). x: (C,) the token's embedding (plus
 * its learned/sinusoidal position), overwritten by the residual stream; cos/sin: (D,) rotary tables for pos, or
 * NULL; logits: (V,). Scratch: (H + 2 KV) D + H D + 3 F floats (qkv, attention, MLP), given by the caller.
 * Returns 0, or -1 when per-thread scratch memory could not be allocated (nothing written then). */
int lv_step_f32(const lv_model *m, float *x, int pos, const float *cos, const float *sin, float *logits,
                float *scratch, int nt) {
  const int C = m->C, H = m->H, KV = m->KV, D = m->D, F = m->F;
  float *qkv = scratch, *att = qkv + (size_t)(H + 2 * KV) * D, *ff = att + (size_t)H * D, *act = ff + F;
  const int kmax = widest_k(m);
  /* per thread: normed x, scores, tmp (floats), then quantised activations (kmax bytes) */
  const size_t own = (size_t)C + (size_t)(pos + 1) + (size_t)D + (size_t)kmax / sizeof(float) + 1;
  int failed = 0;
#pragma omp parallel num_threads(nt)
  {
    float *mine = thread_scratch(own, &failed);
    if (!failed) {
      float *xn = mine, *scores = mine + C, *tmp = scores + pos + 1;
      uint8_t *xq = (uint8_t *)(tmp + D);
      for (int l = 0; l < m->n_layer; l++) {
        const lv_layer *L = &m->layers[l];
        norm(x, L->ln1, m->norm, m->eps, C, xn);
        gemv_share(xn, &L->qkv, qkv, (long)(H + 2 * KV) * D, C, 0, -1, xq);
#pragma omp barrier
#pragma omp for schedule(static) nowait
        for (int g = 0; g < KV; g++) attend_group(m, L, qkv, g, pos, cos, sin, att, scores, tmp);
#pragma omp barrier
        gemv_share(att, &L->proj, x, C, (long)H * D, 1, -1, xq);
#pragma omp barrier
        norm(x, L->ln2, m->norm, m->eps, C, xn);
        gemv_share(xn, &L->fc, ff, m->gated ? 2L * F : F, C, 0, m->gated ? -1 : m->act, xq);
#pragma omp barrier
        const float *h = ff;
        if (m->gated) {
#pragma omp for schedule(static)
          for (int i0 = 0; i0 < F; i0 += 8) gate8(ff, act, F, i0, m->act);
          h = act;
        }
        gemv_share(h, &L->fc2, x, C, F, 1, -1, xq);
#pragma omp barrier
      }
      norm(x, m->ln_f, m->norm, m->eps, C, xn);
      gemv_share(xn, &m->head, logits, m->V, C, 0, -1, xq);
    }
    free(mine);
  }
  return failed ? -1 : 0;
}

/* ---------------------------------------------------------------- several rows at once (speculative verify) */

#define LV_MAX_ROWS 64

#ifdef LV_AVX512
#define LV_KBLOCK 256 /* floats of K per block: 8 weight rows x 1 KB stay in L1 while every row group uses them (measured
                        * no faster than whole-K passes under load 9-11, but the L1 footprint no longer grows with K) */

/* acc[g][j] += the FMAs of columns k0..k1 of x_g . w_j, for G <= 3 rows x_g (stride ldx) and one full tile of 8
 * weight rows w_j (row stride K): each weight vector loaded once for the G rows. k0, k1 multiples of 16 except
 * k1 = K (`tail`: the masked last step). Each accumulator takes exactly dot_f32's sequence of FMAs, so summed by
 * lv_sum8_ps it equals dot_f32's result bit for bit. `pf`: a mask of j; per 16 floats of K this pass prefetches
 * the j-th of the eight cache lines of the tile after next that dot_f32 prefetches there, so that the G groups of
 * rows over one block prefetch the whole block's share once between them (see dot_f32_rows8). */
static inline __attribute__((always_inline)) void dot_f32_rows8_block(const float *x, long ldx, int G, const float *w,
                                                                      long K, long k0, long k1, int tail,
                                                                      unsigned pf, __m512 (*acc)[F32_TILE]) {
  __m512 a[3][F32_TILE];
#pragma GCC unroll 3
  for (int g = 0; g < 3; g++)
#pragma GCC unroll 8
    for (int j = 0; j < F32_TILE; j++)
      if (g < G) a[g][j] = acc[g][j];
  /* the tile after next, as dot_f32 (1-8 tiles ahead and the T0 hint measured no faster here) */
  const char *ahead = (const char *)(w + 2L * F32_TILE * K);
  long k = k0;
  for (long i = k0 / 16 * F32_TILE; k + 16 <= k1; k += 16, i += F32_TILE) {
    __m512 xv[3];
#pragma GCC unroll 3
    for (int g = 0; g < 3; g++)
      if (g < G) xv[g] = _mm512_loadu_ps(x + g * ldx + k);
#pragma GCC unroll 8
    for (int j = 0; j < F32_TILE; j++) {
      if (pf >> j & 1) _mm_prefetch(ahead + (i + j) * 64, _MM_HINT_T1);
      __m512 wv = _mm512_loadu_ps(w + j * K + k);
      __asm__("" : "+v"(wv)); /* one load per weight vector: gcc would fold it into each row's FMA (G loads) */
#pragma GCC unroll 3
      for (int g = 0; g < 3; g++)
        if (g < G) a[g][j] = _mm512_fmadd_ps(wv, xv[g], a[g][j]);
    }
  }
  if (tail && k < K) {
    __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
#pragma GCC unroll 8
    for (int j = 0; j < F32_TILE; j++) {
      const __m512 wv = _mm512_maskz_loadu_ps(m, w + j * K + k);
#pragma GCC unroll 3
      for (int g = 0; g < 3; g++)
        if (g < G) a[g][j] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + g * ldx + k), a[g][j]);
    }
  }
#pragma GCC unroll 3
  for (int g = 0; g < 3; g++)
#pragma GCC unroll 8
    for (int j = 0; j < F32_TILE; j++)
      if (g < G) acc[g][j] = a[g][j];
}

/* out[i * 8 + j] = x_i . w_j for M rows and one full fp32 tile: K in blocks of LV_KBLOCK, each block's weights read
 * from memory by the first group of three rows and from L1 by the others; the accumulators wait in `acc` (M x 8
 * vectors) between blocks. The prefetches of the tile after next are spread over all the groups of a block (group g
 * issues the lines j with j % groups == g): issued by the first group alone they came in bursts the memory queue
 * could not take, the core stalled on them and the other groups' arithmetic ran with the memory idle (9 rows of a
 * 43 MB 6 x 384 GPT: 1.61-1.63 one-row steps before, 1.34-1.35 after; docs/decoding.md, 2026-12-07 fourth session). */
static void dot_f32_rows8(const float *X, long ldx, int M, const float *w, long K, __m512 (*acc)[F32_TILE],
                          float (*out)[F32_TILE > I8_TILE ? F32_TILE : I8_TILE]) {
  const int groups = (M + 2) / 3;
  unsigned pf[LV_MAX_ROWS / 3 + 1];
  for (int g = 0; g < groups; g++) {
    pf[g] = 0;
    for (int j = g; j < F32_TILE; j += groups) pf[g] |= 1u << j;
  }
  for (int i = 0; i < M; i++)
    for (int j = 0; j < F32_TILE; j++) acc[i][j] = _mm512_setzero_ps();
  for (long k0 = 0; k0 < K; k0 += LV_KBLOCK) {
    const long k1 = k0 + LV_KBLOCK < K ? k0 + LV_KBLOCK : K;
    const int tail = k1 == K;
    int i = 0;
    for (; i + 3 <= M; i += 3) dot_f32_rows8_block(X + i * ldx, ldx, 3, w, K, k0, k1, tail, pf[i / 3], acc + i);
    if (M - i == 2) dot_f32_rows8_block(X + i * ldx, ldx, 2, w, K, k0, k1, tail, pf[i / 3], acc + i);
    else if (M - i == 1) dot_f32_rows8_block(X + i * ldx, ldx, 1, w, K, k0, k1, tail, pf[i / 3], acc + i);
  }
  for (int i = 0; i < M; i++) _mm256_storeu_ps(out[i], lv_sum8_ps(acc[i]));
}
#endif

/* Y[i, n] (+)= act(X[i] . W[n] + b[n]) for M rows (X stride ldx, Y stride ldy), this thread's share of the row
 * tiles, no barrier at the end: each tile of weight rows is read from memory once for all M rows. Per row the
 * same arithmetic as gemv_share (bit for bit). xq: M K bytes of this thread's own; sx, zp: M each. */
static void gemv_rows_share(const float *X, long ldx, int M, const lv_mat *W, float *Y, long ldy, long N, long K,
                            int add, int act, uint8_t *xq, float *sx, int32_t *zp) {
  const int rows = tile_rows(W);
  const long tiles = (N + rows - 1) / rows;
  if (W->kind == LV_W8A8 || W->kind == LV_W8A8_TILED)
    for (int i = 0; i < M; i++) quantize_row(X + i * ldx, K, xq + i * K, &sx[i], &zp[i]);
#pragma omp for schedule(static) nowait
  for (long t = 0; t < tiles; t++) {
    long n0 = t * rows;
    int r = N - n0 < rows ? (int)(N - n0) : rows;
    float o[LV_MAX_ROWS][F32_TILE > I8_TILE ? F32_TILE : I8_TILE];
#ifdef LV_AVX512
    __m512 acc[LV_MAX_ROWS][F32_TILE]; /* 32 KB at M = 64 */
    if (W->kind == LV_F32 && r == F32_TILE) {
      dot_f32_rows8(X, ldx, M, (const float *)W->w + n0 * K, K, acc, o);
    } else
#endif
      for (int i = 0; i < M; i++) /* rows after the first re-read the tile from L1 */
        tile_dot(X + i * ldx, xq + i * K, sx[i], zp[i], W, n0, r, K, o[i]);
    for (int i = 0; i < M; i++) epilogue(W, o[i], Y + i * ldy, n0, r, add, act);
  }
}

/* M consecutive decode steps of one sequence in one call (1 <= M <= LV_MAX_ROWS): rows i = 0..M-1 at positions
 * pos..pos+M-1 (pos + M <= max_len: the caller checks), each attending causally over the cache's columns
 * 0..pos+i (its own key/value and those of the earlier rows written first). x: (M, C) the rows' embeddings, overwritten
 * by their residual streams; cos/sin: (M, D) rotary tables, or NULL; logits: (M, V). Each row's logits and cache
 * column equal those of lv_step_f32 at its position bit for bit (the same products, sums and order), so M rows cost
 * one pass over the weights instead of M. Scratch: M ((H + 2 KV) D + H D + 3 F) floats. Returns 0, -1 when per-thread
 * scratch memory could not be allocated (nothing written then), -2 for M out of range. */
int lv_step_rows_f32(const lv_model *m, float *x, int M, int pos, const float *cos, const float *sin, float *logits,
                     float *scratch, int nt) {
  if (M < 1 || M > LV_MAX_ROWS) return -2;
  const int C = m->C, H = m->H, KV = m->KV, D = m->D, F = m->F;
  const long QW = (long)(H + 2 * KV) * D, AW = (long)H * D, FW = 2L * F; /* row strides of qkv, att, ff */
  float *qkv = scratch, *att = qkv + M * QW, *ff = att + M * AW, *act = ff + M * FW;
  const int kmax = widest_k(m);
  /* per thread: normed rows (M C), scores, tmp (floats), row scales, zero points, quantised rows (M kmax bytes) */
  const size_t own = (size_t)M * C + (size_t)(pos + M) + (size_t)D + 2 * (size_t)M + (size_t)M * kmax / sizeof(float) + 1;
  int failed = 0;
#pragma omp parallel num_threads(nt)
  {
    float *mine = thread_scratch(own, &failed);
    if (!failed) {
      float *xn = mine, *scores = xn + (size_t)M * C, *tmp = scores + pos + M, *sx = tmp + D;
      int32_t *zp = (int32_t *)(sx + M);
      uint8_t *xq = (uint8_t *)(zp + M);
      for (int l = 0; l < m->n_layer; l++) {
        const lv_layer *L = &m->layers[l];
        for (int i = 0; i < M; i++) norm(x + (size_t)i * C, L->ln1, m->norm, m->eps, C, xn + (size_t)i * C);
        gemv_rows_share(xn, C, M, &L->qkv, qkv, QW, QW, C, 0, -1, xq, sx, zp);
#pragma omp barrier
#pragma omp for schedule(static)
        for (int gi = 0; gi < KV * M; gi++) { /* every row's key/value first: later rows attend to earlier ones */
          const int g = gi / M, i = gi % M;
          store_kv(m, L, qkv + i * QW, g, pos + i, cos ? cos + (size_t)i * D : NULL, sin ? sin + (size_t)i * D : NULL,
                   tmp);
        }
#pragma omp for schedule(static) nowait
        for (int hi = 0; hi < H * M; hi++) { /* (head, row) pairs: ordered by KV group, as attend_group */
          const int h = hi / M, i = hi % M;
          attend_head(m, L, qkv + i * QW, h, pos + i, cos ? cos + (size_t)i * D : NULL,
                      sin ? sin + (size_t)i * D : NULL, att + i * AW, scores, tmp);
        }
#pragma omp barrier
        gemv_rows_share(att, AW, M, &L->proj, x, C, C, AW, 1, -1, xq, sx, zp);
#pragma omp barrier
        for (int i = 0; i < M; i++) norm(x + (size_t)i * C, L->ln2, m->norm, m->eps, C, xn + (size_t)i * C);
        gemv_rows_share(xn, C, M, &L->fc, ff, FW, m->gated ? 2L * F : F, C, 0, m->gated ? -1 : m->act, xq, sx, zp);
#pragma omp barrier
        const float *h = ff;
        long hw = FW;
        if (m->gated) {
          const int chunks = (F + 7) / 8;
#pragma omp for schedule(static)
          for (int ci = 0; ci < M * chunks; ci++) { /* as lv_step_f32's gated loop, per row */
            const int i = ci / chunks;
            gate8(ff + i * FW, act + (size_t)i * F, F, (ci % chunks) * 8, m->act);
          }
          h = act;
          hw = F;
        }
        gemv_rows_share(h, hw, M, &L->fc2, x, C, C, F, 1, -1, xq, sx, zp);
#pragma omp barrier
      }
      for (int i = 0; i < M; i++) norm(x + (size_t)i * C, m->ln_f, m->norm, m->eps, C, xn + (size_t)i * C);
      gemv_rows_share(xn, C, M, &m->head, logits, m->V, m->V, C, 0, -1, xq, sx, zp);
    }
    free(mine);
  }
  return failed ? -1 : 0;
}
