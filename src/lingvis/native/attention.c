/* lingvis native attention: fp32 softmax(q k^T * scale) v, flash style (online softmax over key blocks).
 *
 *   lv_attention_f32(q, k, v, o, B, H, Hkv, Lq, Lk, D, strides, scale, causal, nt)
 *
 * q (B, H, Lq, D), k and v (B, Hkv, Lk, D), o (B, H, Lq, D), each given by its (batch, head, row) strides in
 * elements (the last dimension must be contiguous): the strided views callers make of a fused qkv product are
 * read as they are, and o may be a view too (e.g. the (B, Lq, H, D) layout the output projection wants).
 * H is a multiple of Hkv (grouped-query heads share keys/values). causal: key j is seen by query i when
 * j <= i (the top-left alignment of torch's is_causal).
 *
 * Per (batch, kv head) the keys are first transposed into a (D, Lk padded to 16) buffer, so that the scores
 * of 8 query rows x 48 keys are 24 AVX-512 accumulators fed by one broadcast of a (pre-scaled) query element
 * and three key loads per head-dim step. Each 8-row query tile then walks the keys in blocks of LV_ATT_BK:
 * scores into a small L1 buffer, the running row max / sum updated (the sum and the output tile rescaled by
 * 2^(m_old - m_new)), probabilities as 2^(s - m) by a degree-5 polynomial (the query carries scale*log2(e)),
 * and the tile's (8, D) output accumulated from the value rows in registers. Heads of width <= 8 (the t2i
 * UNet's level 0) run transposed instead (lv_att_tile_t: 32 query rows in the vector lanes, keys and values
 * broadcast; 1.28x the row-major tile on 4 x 8 x 1024 x 8), or, with a causal mask, row-major with values packed
 * as interleaved key pairs (two keys per 16-lane FMA). OpenMP: the key transposes over
 * (batch, kv head), then the query tiles over (batch, head, tile), statically (neighbouring tiles share a
 * head's keys in L2). Returns 0, or -1 (built without AVX-512: the caller keeps SDPA), -2 (no memory),
 * -3 (D outside 1..256).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "dot_f32.h" /* LV_AVX512 */
#ifdef _OPENMP
#include <omp.h>
#endif

#define LV_ATT_ROWS 8   /* query rows per tile */
#ifndef LV_ATT_BK
#define LV_ATT_BK 384 /* keys per block: the (8, 384) score tile is 12 KB (192: 1-5% slower, 96: 3-10%) */
#endif
#define LV_ATT_MAXD 256
#define LV_ATT_VSPAN (1L << 20) /* bytes of value rows above which they are copied together (see vcopy) */

#ifdef LV_AVX512
/* keeps a loaded vector in a register: without it GCC folds the load into every FMA that reads it (one load
 * per row instead of one per key: the PV product ran load-bound, 74 vs 107 GFLOP/s for the scores) */
#define LV_IN_REGISTER(x) __asm__("" : "+v"(x))

/* lv_exp2_ps (2^x for x <= 0 by a degree-5 polynomial): dot_f32.h */

/* s[r][j0 + j], r < 8, j < 16 KV: sum_d qs[r][d] * kt[d][j0 + j]; 8 x KV accumulators (KV a constant) */
static inline __attribute__((always_inline)) void lv_att_scores_chunk(const int KV, const float *qs, int D,
                                                                      const float *kr, long ldk, float *s,
                                                                      __m512 *rmax, int nreal) {
  __m512 acc[LV_ATT_ROWS][3];
  for (int r = 0; r < LV_ATT_ROWS; r++)
    for (int c = 0; c < KV; c++) acc[r][c] = _mm512_setzero_ps();
  for (int d = 0; d < D; d++, kr += ldk) {
    __m512 k[3];
    for (int c = 0; c < KV; c++) {
      k[c] = _mm512_loadu_ps(kr + 16 * c);
      LV_IN_REGISTER(k[c]);
    }
    for (int r = 0; r < LV_ATT_ROWS; r++) {
      const __m512 q = _mm512_set1_ps(qs[r * D + d]);
      for (int c = 0; c < KV; c++) acc[r][c] = _mm512_fmadd_ps(q, k[c], acc[r][c]);
    }
  }
  __mmask16 real[3]; /* lanes holding keys (not the zero padding past the last key) */
  for (int c = 0; c < KV; c++) {
    const int n = nreal - 16 * c;
    real[c] = n >= 16 ? (__mmask16)0xFFFF : n > 0 ? (__mmask16)((1u << n) - 1) : (__mmask16)0;
  }
  for (int r = 0; r < LV_ATT_ROWS; r++)
    for (int c = 0; c < KV; c++) {
      _mm512_storeu_ps(s + r * LV_ATT_BK + 16 * c, acc[r][c]);
      rmax[r] = _mm512_mask_max_ps(rmax[r], real[c], rmax[r], acc[r][c]); /* the row's max, from registers */
    }
}

/* s[r][j], r < 8, j < nk (a multiple of 16): sum_d qs[r][d] * kt[d][j]; qs (8, D), kt rows ldk apart. Chunks
 * of 48 keys (24 accumulators), the rest as one chunk of 32 or 16. rmax[r]: lanes of the max of row r's scores
 * over the first nreal columns (the keys; the zero-padded columns past them left out), taken from the
 * accumulators, so the softmax needs no max pass over the row where no mask applies */
static inline void lv_att_scores(const float *qs, int D, const float *kt, long ldk, int nk, int nreal, float *s,
                                 __m512 *rmax) {
  for (int r = 0; r < LV_ATT_ROWS; r++) rmax[r] = _mm512_set1_ps(-INFINITY);
  int j = 0;
  for (; j + 48 <= nk; j += 48) lv_att_scores_chunk(3, qs, D, kt + j, ldk, s + j, rmax, nreal - j);
  if (nk - j == 32) lv_att_scores_chunk(2, qs, D, kt + j, ldk, s + j, rmax, nreal - j);
  else if (nk - j == 16) lv_att_scores_chunk(1, qs, D, kt + j, ldk, s + j, rmax, nreal - j);
}

/* o[r][:] = o[r][:] * alpha[r] + sum_{j < nk} p[r][j] v[j][:] for the 8 rows of a tile: o (8, NV*16),
 * p rows LV_ATT_BK apart, v rows sv apart (the last 16-wide piece of a row loaded under `tail`); RG rows x NV
 * vectors of accumulators at a time (RG divides 8, RG * NV <= 24) */
#define LV_DEFINE_PV(NV, RG)                                                                                      \
  static void lv_att_pv_##NV(const float *p, const float *v, long sv, int nk, __mmask16 tail, float *o,          \
                             const float *alpha) {                                                                \
    for (int r0 = 0; r0 < LV_ATT_ROWS; r0 += RG) {                                                                \
      __m512 acc[RG][NV];                                                                                         \
      for (int r = 0; r < RG; r++) {                                                                              \
        const __m512 a = _mm512_set1_ps(alpha[r0 + r]);                                                           \
        for (int c = 0; c < NV; c++) acc[r][c] = _mm512_mul_ps(a, _mm512_load_ps(o + (r0 + r) * NV * 16 + 16 * c)); \
      }                                                                                                           \
      const float *vr = v;                                                                                        \
      for (int j = 0; j < nk; j++, vr += sv) {                                                                    \
        __m512 vv[NV];                                                                                            \
        for (int c = 0; c < NV - 1; c++) vv[c] = _mm512_loadu_ps(vr + 16 * c);                                    \
        vv[NV - 1] = _mm512_maskz_loadu_ps(tail, vr + 16 * (NV - 1));                                             \
        for (int c = 0; c < NV; c++) LV_IN_REGISTER(vv[c]);                                                       \
        for (int r = 0; r < RG; r++) {                                                                            \
          const __m512 pr = _mm512_set1_ps(p[(r0 + r) * LV_ATT_BK + j]);                                         \
          for (int c = 0; c < NV; c++) acc[r][c] = _mm512_fmadd_ps(pr, vv[c], acc[r][c]);                         \
        }                                                                                                         \
      }                                                                                                           \
      for (int r = 0; r < RG; r++)                                                                                \
        for (int c = 0; c < NV; c++) _mm512_store_ps(o + (r0 + r) * NV * 16 + 16 * c, acc[r][c]);               \
    }                                                                                                             \
  }
LV_DEFINE_PV(1, 8)
LV_DEFINE_PV(2, 8)
LV_DEFINE_PV(3, 8)
LV_DEFINE_PV(4, 4)
LV_DEFINE_PV(5, 4)
LV_DEFINE_PV(6, 2)
LV_DEFINE_PV(7, 2)
LV_DEFINE_PV(8, 2)
LV_DEFINE_PV(9, 1)
LV_DEFINE_PV(10, 1)
LV_DEFINE_PV(11, 1)
LV_DEFINE_PV(12, 1)
LV_DEFINE_PV(13, 1)
LV_DEFINE_PV(14, 1)
LV_DEFINE_PV(15, 1)
LV_DEFINE_PV(16, 1)

typedef void (*lv_att_pv_fn)(const float *, const float *, long, int, __mmask16, float *, const float *);
static const lv_att_pv_fn LV_ATT_PV[17] = {NULL, lv_att_pv_1, lv_att_pv_2, lv_att_pv_3, lv_att_pv_4,
                                           lv_att_pv_5, lv_att_pv_6, lv_att_pv_7, lv_att_pv_8, lv_att_pv_9,
                                           lv_att_pv_10, lv_att_pv_11, lv_att_pv_12, lv_att_pv_13,
                                           lv_att_pv_14, lv_att_pv_15, lv_att_pv_16};

#define LV_ATT_PAIRS 1
/* heads of width <= 8: o[r][2d + e] = o[r][2d + e] * alpha[r] + sum_t p[r][2t + e] vp[t][2d + e], vp holding
 * the value rows of keys 2t and 2t + 1 interleaved (packed per head): one 16-lane FMA per pair of keys and row,
 * fed by a 64-bit broadcast of two probabilities, instead of one half-empty FMA per key. o[r][2d] +
 * o[r][2d + 1] is the output. p is zero past the block's keys (its -inf scores) */
static void lv_att_pv_pairs(const float *p, const float *vp, int nk, float *o, const float *alpha) {
  __m512 acc[LV_ATT_ROWS];
  for (int r = 0; r < LV_ATT_ROWS; r++) acc[r] = _mm512_mul_ps(_mm512_set1_ps(alpha[r]), _mm512_load_ps(o + 16 * r));
  const int pairs = (nk + 1) / 2;
  for (int t = 0; t < pairs; t++) {
    const __m512 vv = _mm512_loadu_ps(vp + 16 * t);
    for (int r = 0; r < LV_ATT_ROWS; r++) {
      double p2; /* the two probabilities as one 64-bit value: vbroadcastsd (a plain load) repeats the pair */
      memcpy(&p2, p + r * LV_ATT_BK + 2 * t, sizeof p2);
      acc[r] = _mm512_fmadd_ps(_mm512_castpd_ps(_mm512_set1_pd(p2)), vv, acc[r]);
    }
  }
  for (int r = 0; r < LV_ATT_ROWS; r++) _mm512_store_ps(o + 16 * r, acc[r]);
}

/* heads of width <= 8 without a causal mask: the tile's LV_ATT_TR x 16 query rows run in the vector lanes, the
 * scores as s^T[key][row], so the softmax is vertical (the running max and sum are vectors of rows: no per-row
 * reductions or scalar exp) and a key costs 8 broadcasts of its (packed, zero-padded) key elements against the
 * queries held in registers, and 8 of its value elements against the probabilities. kc, vc: (Lk, 8). */
#define LV_ATT_TR 2   /* 16-row vectors per transposed tile: 8 x 2 queries + 2 sums + 2 maxima in registers */
#define LV_ATT_TBK 256 /* keys per block there: the (256, 32) score tile is 32 KB */
#define LV_ATT_TROWS (16 * LV_ATT_TR)
static void lv_att_tile_t(const float *q, long sql, const float *kc, const float *vc, float *out, long sol, int rows,
                          int Lk, int D, float qscale) {
  float qt[8 * LV_ATT_TROWS] __attribute__((aligned(64)));          /* (8, rows) scaled queries, transposed */
  float st[LV_ATT_TBK * LV_ATT_TROWS] __attribute__((aligned(64))); /* (keys, rows) scores, then probabilities */
  float ot[8 * LV_ATT_TROWS] __attribute__((aligned(64)));          /* (8, rows) output, transposed */
  float lr[LV_ATT_TROWS] __attribute__((aligned(64)));
  for (int d = 0; d < 8; d++)
    for (int r = 0; r < LV_ATT_TROWS; r++) qt[d * LV_ATT_TROWS + r] = r < rows && d < D ? q[r * sql + d] * qscale : 0.0f;
  memset(ot, 0, sizeof ot);
  __m512 m[LV_ATT_TR], l[LV_ATT_TR];
  for (int c = 0; c < LV_ATT_TR; c++) m[c] = _mm512_set1_ps(-INFINITY), l[c] = _mm512_setzero_ps();
  for (int j0 = 0; j0 < Lk; j0 += LV_ATT_TBK) {
    const int nk = Lk - j0 < LV_ATT_TBK ? Lk - j0 : LV_ATT_TBK;
    __m512 qv[8][LV_ATT_TR], mx[LV_ATT_TR];
    for (int d = 0; d < 8; d++)
      for (int c = 0; c < LV_ATT_TR; c++) qv[d][c] = _mm512_load_ps(qt + d * LV_ATT_TROWS + 16 * c);
    for (int c = 0; c < LV_ATT_TR; c++) mx[c] = _mm512_set1_ps(-INFINITY);
    const float *kr = kc + 8L * j0;
    for (int j = 0; j < nk; j++, kr += 8) {
      __m512 sc[LV_ATT_TR];
      for (int c = 0; c < LV_ATT_TR; c++) sc[c] = _mm512_setzero_ps();
      for (int d = 0; d < 8; d++) {
        const __m512 kb = _mm512_set1_ps(kr[d]);
        for (int c = 0; c < LV_ATT_TR; c++) sc[c] = _mm512_fmadd_ps(qv[d][c], kb, sc[c]);
      }
      for (int c = 0; c < LV_ATT_TR; c++) {
        _mm512_store_ps(st + j * LV_ATT_TROWS + 16 * c, sc[c]);
        mx[c] = _mm512_max_ps(mx[c], sc[c]);
      }
    }
    __m512 alpha[LV_ATT_TR];
    for (int c = 0; c < LV_ATT_TR; c++) {
      const __m512 mn = _mm512_max_ps(m[c], mx[c]);
      alpha[c] = lv_exp2_ps(_mm512_sub_ps(m[c], mn)); /* -inf - finite on the first block: 0 */
      l[c] = _mm512_mul_ps(l[c], alpha[c]);
      m[c] = mn;
    }
    for (int j = 0; j < nk; j++)
      for (int c = 0; c < LV_ATT_TR; c++) {
        const __m512 e = lv_exp2_ps(_mm512_sub_ps(_mm512_load_ps(st + j * LV_ATT_TROWS + 16 * c), m[c]));
        _mm512_store_ps(st + j * LV_ATT_TROWS + 16 * c, e);
        l[c] = _mm512_add_ps(l[c], e);
      }
    __m512 acc[8][LV_ATT_TR];
    for (int d = 0; d < 8; d++)
      for (int c = 0; c < LV_ATT_TR; c++) acc[d][c] = _mm512_mul_ps(alpha[c], _mm512_load_ps(ot + d * LV_ATT_TROWS + 16 * c));
    const float *vr = vc + 8L * j0;
    for (int j = 0; j < nk; j++, vr += 8) {
      __m512 pv[LV_ATT_TR];
      for (int c = 0; c < LV_ATT_TR; c++) pv[c] = _mm512_load_ps(st + j * LV_ATT_TROWS + 16 * c);
      for (int d = 0; d < 8; d++) {
        const __m512 vb = _mm512_set1_ps(vr[d]);
        for (int c = 0; c < LV_ATT_TR; c++) acc[d][c] = _mm512_fmadd_ps(pv[c], vb, acc[d][c]);
      }
    }
    for (int d = 0; d < 8; d++)
      for (int c = 0; c < LV_ATT_TR; c++) _mm512_store_ps(ot + d * LV_ATT_TROWS + 16 * c, acc[d][c]);
  }
  for (int c = 0; c < LV_ATT_TR; c++) _mm512_store_ps(lr + 16 * c, l[c]);
  for (int r = 0; r < rows; r++)
    for (int d = 0; d < D; d++) out[r * sol + d] = ot[d * LV_ATT_TROWS + r] / lr[r];
}

/* one 8-row query tile (rows i0 .. i0+rows-1) of one head against all of its keys */
static void lv_att_tile(const float *q, long sql, const float *kt, long ldk, const float *v, long svl, const float *vp,
                        float *out, long sol, int rows, int i0, int Lk, int D, float qscale, int causal) {
  const int NV = (D + 15) / 16;
  const __mmask16 tail = (__mmask16)((D % 16) ? ((1u << (D % 16)) - 1) : 0xFFFFu);
  float qs[LV_ATT_MAXD * LV_ATT_ROWS] __attribute__((aligned(64)));           /* (8, D) scaled queries */
  float s[LV_ATT_ROWS * LV_ATT_BK] __attribute__((aligned(64)));              /* (8, BK) scores, then probabilities */
  float acc[LV_ATT_ROWS * LV_ATT_MAXD] __attribute__((aligned(64)));          /* (8, NV*16) output tile */
  float m[LV_ATT_ROWS], l[LV_ATT_ROWS], alpha[LV_ATT_ROWS];
  for (int r = 0; r < LV_ATT_ROWS; r++) {
    for (int d = 0; d < D; d++) qs[r * D + d] = r < rows ? q[r * sql + d] * qscale : 0.0f;
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }
  memset(acc, 0, sizeof(float) * LV_ATT_ROWS * NV * 16);
  const int kend = causal ? (i0 + rows < Lk ? i0 + rows : Lk) : Lk; /* keys past the last row's are unseen */
  const lv_att_pv_fn pv = LV_ATT_PV[NV];
  for (int j0 = 0; j0 < kend; j0 += LV_ATT_BK) {
    const int nk = kend - j0 < LV_ATT_BK ? kend - j0 : LV_ATT_BK; /* real keys in the block */
    const int nk16 = (nk + 15) & ~15;
    __m512 rmax[LV_ATT_ROWS];
    lv_att_scores(qs, D, kt + j0, ldk, nk16, nk, s, rmax);
    for (int r = 0; r < LV_ATT_ROWS; r++) {
      float *sr = s + r * LV_ATT_BK;
      const int seen = causal ? (i0 + r - j0 + 1 < nk ? i0 + r - j0 + 1 : nk) : nk; /* keys j0 .. j0+seen-1 */
      for (int j = seen > 0 ? seen : 0; j < nk16; j++) sr[j] = -INFINITY; /* masked and padding columns */
      __m512 mx = rmax[r]; /* every key seen: the max the scores kernel kept (no pass over the row) */
      if (seen < nk) {     /* the causal mask cuts the block: the max of the seen keys */
        mx = _mm512_set1_ps(-INFINITY);
        for (int j = 0; j < nk16; j += 16) mx = _mm512_max_ps(mx, _mm512_load_ps(sr + j));
      }
      const float mnew = fmaxf(m[r], _mm512_reduce_max_ps(mx));
      if (mnew == -INFINITY) { /* a padding row with nothing seen yet: probabilities 0, tile unchanged */
        memset(sr, 0, sizeof(float) * nk16);
        alpha[r] = 1.0f;
        continue;
      }
      alpha[r] = exp2f(m[r] - mnew);
      m[r] = mnew;
      const __m512 mv = _mm512_set1_ps(mnew);
      __m512 sum = _mm512_setzero_ps();
      for (int j = 0; j < nk16; j += 16) {
        const __m512 e = lv_exp2_ps(_mm512_sub_ps(_mm512_load_ps(sr + j), mv));
        _mm512_store_ps(sr + j, e);
        sum = _mm512_add_ps(sum, e);
      }
      l[r] = l[r] * alpha[r] + _mm512_reduce_add_ps(sum);
    }
#ifdef LV_ATT_PAIRS
    if (vp) {
      lv_att_pv_pairs(s, vp + 8L * j0, nk, acc, alpha); /* j0 is even: block starts are pair starts */
      continue;
    }
#endif
    pv(s, v + (long)j0 * svl, svl, nk, tail, acc, alpha);
  }
  if (vp) { /* the pairs' interleaved halves summed */
    for (int r = 0; r < rows; r++)
      for (int d = 0; d < D; d++) out[r * sol + d] = (acc[16 * r + 2 * d] + acc[16 * r + 2 * d + 1]) / l[r];
    return;
  }
  for (int r = 0; r < rows; r++) {
    const __m512 inv = _mm512_set1_ps(1.0f / l[r]);
    float *orow = out + r * sol;
    for (int c = 0; c < NV; c++) {
      const __m512 y = _mm512_mul_ps(_mm512_load_ps(acc + r * NV * 16 + 16 * c), inv);
      if (c < NV - 1) _mm512_storeu_ps(orow + 16 * c, y);
      else _mm512_mask_storeu_ps(orow + 16 * c, tail, y);
    }
  }
}
#endif

int lv_attention_f32(const float *q, const float *k, const float *v, float *o, int B, int H, int Hkv, int Lq, int Lk,
                     int D, const long *st, float scale, int causal, int nt) {
#ifndef LV_AVX512
  (void)q; (void)k; (void)v; (void)o; (void)B; (void)H; (void)Hkv; (void)Lq; (void)Lk; (void)D; (void)st;
  (void)scale; (void)causal; (void)nt;
  return -1;
#else
  if (D < 1 || D > LV_ATT_MAXD) return -3;
  if (B <= 0 || H <= 0 || Lq <= 0) return 0;
  /* strides: q (b, h, l), k (b, h, l), v (b, h, l), o (b, h, l) */
  const long sqb = st[0], sqh = st[1], sql = st[2], skb = st[3], skh = st[4], skl = st[5];
  const long svb = st[6], svh = st[7], svl = st[8], sob = st[9], soh = st[10], sol = st[11];
  const long ldk = ((long)Lk + 15) & ~15L;
  const int trans = D <= 8 && !causal; /* lv_att_tile_t on keys and values packed as (Lk, 8) rows */
#ifdef LV_ATT_PAIRS
  const int pairs = D <= 8 && causal; /* values packed as interleaved key pairs (lv_att_pv_pairs) */
#else
  const int pairs = 0;
#endif
  /* values spread over more than LV_ATT_VSPAN bytes (rows of a wide fused projection) are copied per head into
   * (Lk, D) rows: every query tile streams them, and strided rows cost a TLB miss each (VideoMAE: 1568 rows
   * 9 KB apart, 94 vs 81 ms for the 12 heads with the copy, 1 thread) */
  const int vcopy = !pairs && svl != D && (long)Lk * svl * 4 > LV_ATT_VSPAN;
  const long per = trans ? 16 * ldk /* keys, then values, (Lk, 8) each */
                         : (long)D * ldk + (pairs ? 8 * ldk : vcopy ? (long)D * Lk : 0); /* keys^T [+ values] */
  const int nkv = B * Hkv, group = H / Hkv;
  float *kt = (float *)aligned_alloc(64, sizeof(float) * (size_t)((per * nkv + 31) & ~15L)); /* 64-byte multiple */
  if (!kt) return -2;
  const int trows = trans ? LV_ATT_TROWS : LV_ATT_ROWS; /* query rows per tile */
  const int tiles = (Lq + trows - 1) / trows;
  const long ntask = (long)B * H * tiles;
  const float qscale = scale * 1.4426950408889634f; /* exp(x) = 2^(x log2 e) */
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
#pragma omp for schedule(static)
    for (int bh = 0; bh < nkv; bh++) {
      const float *kb = k + (long)(bh / Hkv) * skb + (long)(bh % Hkv) * skh;
      float *dst = kt + bh * per;
      if (trans) { /* kc[j][d] = k[j][d], vc[j][d] = v[j][d], zero past D */
        const float *vb = v + (long)(bh / Hkv) * svb + (long)(bh % Hkv) * svh;
        float *vc = dst + 8 * ldk;
        memset(dst, 0, sizeof(float) * 16 * ldk);
        for (int j = 0; j < Lk; j++) {
          memcpy(dst + 8L * j, kb + (long)j * skl, sizeof(float) * D);
          memcpy(vc + 8L * j, vb + (long)j * svl, sizeof(float) * D);
        }
        continue;
      }
      for (int j0 = 0; j0 < Lk; j0 += 16) {
        const int nj = Lk - j0 < 16 ? Lk - j0 : 16;
        for (int d = 0; d < D; d++) {
          float *row = dst + d * ldk + j0;
          for (int j = 0; j < nj; j++) row[j] = kb[(long)(j0 + j) * skl + d];
        }
      }
      for (int d = 0; d < D; d++)
        for (long j = Lk; j < ldk; j++) dst[d * ldk + j] = 0.0f;
      if (pairs) { /* vp[t][2d + e] = v[2t + e][d], zero past Lk and D */
        float *vp = dst + D * ldk;
        const float *vb = v + (long)(bh / Hkv) * svb + (long)(bh % Hkv) * svh;
        memset(vp, 0, sizeof(float) * 8 * ldk);
        for (int j = 0; j < Lk; j++)
          for (int d = 0; d < D; d++) vp[16 * (j / 2) + 2 * d + (j & 1)] = vb[(long)j * svl + d];
      } else if (vcopy) {
        float *vc = dst + D * ldk;
        const float *vb = v + (long)(bh / Hkv) * svb + (long)(bh % Hkv) * svh;
        for (int j = 0; j < Lk; j++) memcpy(vc + (long)j * D, vb + (long)j * svl, sizeof(float) * D);
      }
    }
#pragma omp for schedule(static)
    for (long t = 0; t < ntask; t++) {
      const int tile = (int)(t % tiles), h = (int)((t / tiles) % H), b = (int)(t / ((long)tiles * H));
      const int i0 = tile * trows, rows = Lq - i0 < trows ? Lq - i0 : trows;
      const int hk = h / group;
      const float *kh = kt + (long)(b * Hkv + hk) * per;
      if (trans) {
        lv_att_tile_t(q + b * sqb + h * sqh + i0 * sql, sql, kh, kh + 8 * ldk, o + b * sob + h * soh + i0 * sol, sol,
                      rows, Lk, D, qscale);
        continue;
      }
      lv_att_tile(q + b * sqb + h * sqh + i0 * sql, sql, kh, ldk, vcopy ? kh + D * ldk : v + b * svb + hk * svh,
                  vcopy ? D : svl,
                  pairs ? kh + D * ldk : NULL, o + b * sob + h * soh + i0 * sol, sol, rows, i0, Lk, D, qscale,
                  causal);
    }
  }
  free(kt);
  return 0;
#endif
}
