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
  } else if (act == LV_SILU || act == LV_QUICK_GELU) { /* x / (1 + exp(-a x)) */
    __m256 a = _mm256_set1_ps(act == LV_SILU ? -1.0f : -1.702f);
    y = _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_mul_ps(a, x))));
  } else {
    return 0;
  }
  _mm256_storeu_ps(v, y);
  return 1;
}
#endif

/* y[n] (+)= act(x . W[n] + b[n]) for this thread's share of the row tiles; no barrier at the end. xq: K bytes
 * of this thread's own (W8A8 quantises x there: every thread the same values, no barrier needed) */
static void gemv_share(const float *x, const lv_mat *M, float *y, long N, long K, int add, int act, uint8_t *xq) {
  const int w8a8 = M->kind == LV_W8A8 || M->kind == LV_W8A8_TILED;
  const int rows = M->kind == LV_F32 ? F32_TILE : w8a8 ? I8_TILE : TILE;
  const long tiles = (N + rows - 1) / rows;
  float sx = 0.0f;
  int32_t zp = 0;
  if (w8a8) quantize_row(x, K, xq, &sx, &zp);
#pragma omp for schedule(static) nowait
  for (long t = 0; t < tiles; t++) {
    long n0 = t * rows;
    int r = N - n0 < rows ? (int)(N - n0) : rows;
    float o[F32_TILE > I8_TILE ? F32_TILE : I8_TILE];
    if (M->kind == LV_F32) {
      dot_f32(x, (const float *)M->w + n0 * K, K, r, o);
    } else if (w8a8) {
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
      } else
#endif
      for (int j = 0; j < r; j++) o[j] = (float)(q[j] - zp * M->wsum[n0 + j]) * (sx * M->scale[n0 + j]);
    } else {
      dot_w8f32(x, (const int8_t *)M->w + n0 * K, K, r, o);
      for (int j = 0; j < r; j++) o[j] *= M->scale[n0 + j];
    }
#ifdef LV_AVX512
    if (r == 8) { /* a full tile: the epilogue as one vector */
      __m256 v = _mm256_loadu_ps(o);
      if (M->b) v = _mm256_add_ps(v, _mm256_loadu_ps(M->b + n0));
      _mm256_storeu_ps(o, v);
      if (act < 0 || activate8(o, act)) {
        v = _mm256_loadu_ps(o);
        if (add) v = _mm256_add_ps(_mm256_loadu_ps(y + n0), v);
        _mm256_storeu_ps(y + n0, v);
        continue;
      }
      for (int j = 0; j < 8; j++) y[n0 + j] = add ? y[n0 + j] + activate(o[j], act) : activate(o[j], act);
      continue;
    }
#endif
    for (int j = 0; j < r; j++) {
      float v = o[j] + (M->b ? M->b[n0 + j] : 0.0f);
      if (act >= 0) v = activate(v, act);
      y[n0 + j] = add ? y[n0 + j] + v : v;
    }
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

/* keys/values of KV head g written at column pos, then the attention of its query heads over columns 0..pos */
static void attend_group(const lv_model *m, const lv_layer *L, const float *qkv, int g, int pos, const float *cos,
                         const float *sin, float *att, float *scores, float *tmp) {
  const int H = m->H, KV = m->KV, D = m->D, per = H / KV;
  float *kc = L->k_cache + (size_t)g * m->max_len * D, *vc = L->v_cache + (size_t)g * m->max_len * D;
  float *k = kc + (size_t)pos * D;
  memcpy(k, qkv + (size_t)(H + g) * D, sizeof(float) * D);
  memcpy(vc + (size_t)pos * D, qkv + (size_t)(H + KV + g) * D, sizeof(float) * D);
  if (L->k_norm.w) {
    norm(k, L->k_norm, m->qk_norm, m->qk_eps, D, tmp);
    memcpy(k, tmp, sizeof(float) * D);
  }
  if (cos) rotate(k, cos, sin, D, tmp);
  const float scale = 1.0f / sqrtf((float)D);
  for (int h = g * per; h < (g + 1) * per; h++) {
    float q[D];
    memcpy(q, qkv + (size_t)h * D, sizeof(float) * D);
    if (L->q_norm.w) norm(qkv + (size_t)h * D, L->q_norm, m->qk_norm, m->qk_eps, D, q);
    if (cos) rotate(q, cos, sin, D, tmp);
    float mx = -INFINITY, sum = 0.0f;
    for (int t = 0; t <= pos; t++) {
      scores[t] = dot(q, kc + (size_t)t * D, D) * scale;
      mx = scores[t] > mx ? scores[t] : mx;
    }
    for (int t = 0; t <= pos; t++) sum += scores[t] = expf(scores[t] - mx);
    float *o = att + (size_t)h * D, inv = 1.0f / sum;
    for (int d = 0; d < D; d++) o[d] = 0.0f;
    for (int t = 0; t <= pos; t++) {
      const float p = scores[t] * inv, *v = vc + (size_t)t * D;
      for (int d = 0; d < D; d++) o[d] += p * v[d];
    }
  }
}

/* One decode step at position `pos` (pos < max_len: the caller checks). x: (C,) the token's embedding (plus
 * its learned/sinusoidal position), overwritten by the residual stream; cos/sin: (D,) rotary tables for pos, or
 * NULL; logits: (V,). Scratch: (H + 2 KV) D + H D + 3 F floats (qkv, attention, MLP), given by the caller.
 * Returns 0, or -1 when per-thread scratch memory could not be allocated (nothing written then). */
int lv_step_f32(const lv_model *m, float *x, int pos, const float *cos, const float *sin, float *logits,
                float *scratch, int nt) {
  const int C = m->C, H = m->H, KV = m->KV, D = m->D, F = m->F;
  float *qkv = scratch, *att = qkv + (size_t)(H + 2 * KV) * D, *ff = att + (size_t)H * D, *act = ff + F;
  const int kmax = C > F ? (C > H * D ? C : H * D) : (F > H * D ? F : H * D);
  /* per thread: normed x, scores, tmp (floats), then quantised activations (kmax bytes) */
  const size_t own = (size_t)C + (size_t)(pos + 1) + (size_t)D + (size_t)kmax / sizeof(float) + 1;
  int failed = 0;
#pragma omp parallel num_threads(nt)
  {
    float *mine = malloc(sizeof(float) * own);
#pragma omp atomic
    failed += mine == NULL;
#pragma omp barrier
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
          for (int i0 = 0; i0 < F; i0 += 8) { /* eight at a time: the vector activation where there is one */
            int n = F - i0 < 8 ? F - i0 : 8, done = 0;
            float g[8];
            for (int i = 0; i < n; i++) g[i] = ff[i0 + i];
#ifdef LV_AVX512
            done = n == 8 && activate8(g, m->act);
#endif
            for (int i = 0; i < n; i++) act[i0 + i] = (done ? g[i] : activate(g[i], m->act)) * ff[F + i0 + i];
          }
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
