/* Adam for kernels.c and compact.h: torch's formulation (lr / bias_correction1 step, eps
 * outside the corrected square root), one vector of 16 entries in registers (AVX-512) or one
 * entry at a time; pruned entries carry an infinite second moment, so their update is exactly
 * zero.  Everything is static: this header is included by the kernels only. */
#ifndef EVOPRUNE_ADAM_H
#define EVOPRUNE_ADAM_H

#include "dense.h"

typedef struct {
    float b1, b2, eps;
    int loss;
} hyper_t;

/* Adam's per-step constants (torch's formulation: lr / bias_correction1 step, eps outside the
 * corrected square root). */
typedef struct {
    float step_size, bc2_sqrt, vinv;
} adam_step_t;

static adam_step_t adam_constants(const hyper_t *hp, double lr, double step) {
    double bc1 = 1.0 - pow(hp->b1, step), bc2 = 1.0 - pow(hp->b2, step);
    adam_step_t a;
    a.step_size = (float)(lr / bc1);
    a.bc2_sqrt = (float)sqrt(bc2);
    a.vinv = 1.0f / (a.bc2_sqrt * a.bc2_sqrt);
    return a;
}

#if defined(__AVX512F__)
/* One Adam update of 16 entries held in registers.  sqrt and division are the slow part of
 * the step: reciprocal-square-root and reciprocal estimates with one Newton step each
 * (relative error ~1e-7, the exact ops within a few ulp). */
INLINE void adam16(__m512 *p, __m512 *m, __m512 *v, __m512 g, const hyper_t *hp,
                   const adam_step_t *a) {
    const __m512 vb1 = _mm512_set1_ps(hp->b1), vb2 = _mm512_set1_ps(hp->b2),
                 vc1 = _mm512_set1_ps(1.0f - hp->b1), vc2 = _mm512_set1_ps(1.0f - hp->b2),
                 vinv = _mm512_set1_ps(a->vinv), veps = _mm512_set1_ps(hp->eps),
                 vstep = _mm512_set1_ps(a->step_size), half = _mm512_set1_ps(0.5f),
                 three = _mm512_set1_ps(3.0f), two = _mm512_set1_ps(2.0f),
                 zero = _mm512_setzero_ps(), inf = _mm512_set1_ps(INFINITY);
    __m512 mj = _mm512_fmadd_ps(vb1, *m, _mm512_mul_ps(vc1, g));
    __m512 vj = _mm512_fmadd_ps(vb2, *v, _mm512_mul_ps(_mm512_mul_ps(vc2, g), g));
    *m = mj;
    *v = vj;
    __m512 vh = _mm512_mul_ps(vj, vinv); /* bias-corrected second moment */
    __m512 r = _mm512_rsqrt14_ps(vh);
    r = _mm512_mul_ps(_mm512_mul_ps(half, r), _mm512_fnmadd_ps(_mm512_mul_ps(vh, r), r, three));
    /* sqrt(vh) = vh / sqrt(vh), taken as 0 at vh = 0 (the estimate is inf there) */
    __m512 sq = _mm512_maskz_mul_ps(_mm512_cmp_ps_mask(vh, zero, _CMP_GT_OQ), vh, r);
    __m512 den = _mm512_add_ps(sq, veps);
    __m512 q = _mm512_rcp14_ps(den);
    q = _mm512_mul_ps(q, _mm512_fnmadd_ps(den, q, two));
    __m512 upd = _mm512_mul_ps(_mm512_mul_ps(vstep, mj), q);
    /* pruned (v = +inf): exactly 0; a NaN moment still reaches the weight, as in torch */
    upd = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(vj, inf, _CMP_NEQ_UQ), upd);
    *p = _mm512_sub_ps(*p, upd);
}
#endif

/* The same update for one entry (machines without AVX-512). */
INLINE void adam1(float *p, float *m, float *v, float g, const hyper_t *hp, const adam_step_t *a) {
    float mj = hp->b1 * *m + (1.0f - hp->b1) * g;
    float vj = hp->b2 * *v + (1.0f - hp->b2) * g * g;
    *m = mj;
    *v = vj;
    *p -= a->step_size * mj / (sqrtf(vj) / a->bc2_sqrt + hp->eps);
}

/* Adam on n entries with gradient gr (step counted already). */
static void adam_n(float *restrict p, float *restrict m, float *restrict v,
                   const float *restrict gr, int64_t n, const hyper_t *hp, const adam_step_t *a) {
    int64_t j = 0;
#if defined(__AVX512F__)
    for (; j + 16 <= n; j += 16) {
        __m512 pj = _mm512_load_ps(p + j), mj = _mm512_load_ps(m + j), vj = _mm512_load_ps(v + j);
        adam16(&pj, &mj, &vj, _mm512_load_ps(gr + j), hp, a);
        _mm512_store_ps(m + j, mj);
        _mm512_store_ps(v + j, vj);
        _mm512_store_ps(p + j, pj);
    }
#endif
    for (; j < n; j++) adam1(p + j, m + j, v + j, gr[j], hp, a);
}

#endif /* EVOPRUNE_ADAM_H */
