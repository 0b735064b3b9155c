/* Adam for kernels.c and compact.h: torch's formulation (lr / bias_correction1 step, eps outside
 * the corrected square root), one vector in registers (adamv: estimates with a Newton step on
 * AVX-512, IEEE square root and division elsewhere; the corrected square root is sqrt(v) times
 * 1 / sqrt(bias_correction2), one division per entry instead of torch's two, within an ulp);
 * pruned entries carry an infinite second moment, so their update is exactly zero.  Also the
 * weight-gradient blocks with Adam fused.  Everything is static: this header is included by the
 * kernels only. */
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
    float step_size, bc2_sqrt, vinv, bc2_rsqrt;
} adam_step_t;

static adam_step_t adam_constants(const hyper_t *hp, double lr, double step) {
    double bc1 = 1.0 - pow(hp->b1, step), bc2 = 1.0 - pow(hp->b2, step);
    adam_step_t a;
    a.step_size = (float)(lr / bc1);
    a.bc2_sqrt = (float)sqrt(bc2);
    a.vinv = 1.0f / (a.bc2_sqrt * a.bc2_sqrt);
    a.bc2_rsqrt = (float)(1.0 / sqrt(bc2));
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

/* The same update for one entry (the tail of a range that is not a whole vector). */
INLINE void adam1(float *p, float *m, float *v, float g, const hyper_t *hp, const adam_step_t *a) {
    float mj = hp->b1 * *m + (1.0f - hp->b1) * g;
    float vj = hp->b2 * *v + (1.0f - hp->b2) * g * g;
    *m = mj;
    *v = vj;
    *p -= a->step_size * mj / (sqrtf(vj) * a->bc2_rsqrt + hp->eps);
}

#if !defined(__AVX512F__)
INLINE vf vsqrt(vf x) {
#if defined(__AVX__)
    return (vf)_mm256_sqrt_ps((__m256)x);
#elif defined(__SSE__)
    return (vf)_mm_sqrt_ps((__m128)x);
#else
    vf r;
    for (int q = 0; q < VL; q++) r[q] = sqrtf(x[q]);
    return r;
#endif
}
#endif

/* One Adam update of a vector of VL entries in registers: adam16 on AVX-512; elsewhere adam1's
 * arithmetic lane by lane (IEEE square root and division: the divider, shared by both, is what
 * bounds the step on AVX2 - a reciprocal estimate with a Newton step measured slower there). */
INLINE void adamv(vf *p, vf *m, vf *v, vf g, const hyper_t *hp, const adam_step_t *a) {
#if defined(__AVX512F__)
    __m512 pj = (__m512)*p, mj = (__m512)*m, vj = (__m512)*v;
    adam16(&pj, &mj, &vj, (__m512)g, hp, a);
    *p = (vf)pj, *m = (vf)mj, *v = (vf)vj;
#else
    vf mj = vsplat(hp->b1) * *m + vsplat(1.0f - hp->b1) * g;
    vf vj = vsplat(hp->b2) * *v + vsplat(1.0f - hp->b2) * g * g;
    *m = mj;
    *v = vj;
    vf den = vsqrt(vj) * vsplat(a->bc2_rsqrt) + vsplat(hp->eps);
    *p -= vsplat(a->step_size) * mj / den;
#endif
}

/* Adam on n entries (p, m, v, gr on a vector boundary) with gradient gr (step counted
 * already). */
static void adam_n(float *restrict p, float *restrict m, float *restrict v,
                   const float *restrict gr, int64_t n, const hyper_t *hp, const adam_step_t *a) {
    int64_t j = 0;
    for (; j + VL <= n; j += VL) {
        vf pj = vload(p + j), mj = vload(m + j), vj = vload(v + j);
        adamv(&pj, &mj, &vj, vload(gr + j), hp, a);
        vstore(m + j, mj);
        vstore(v + j, vj);
        vstore(p + j, pj);
    }
    for (; j < n; j++) adam1(p + j, m + j, v + j, gr[j], hp, a);
}

/* ---- weight gradients with Adam fused -------------------------------------------------------
 * The last row block of a weight gradient (grad_block / grad_t0_block in dense.h: the same sums
 * in the same order, continuing from the partial sums in gw when gw is not NULL) goes straight
 * into Adam on the weights p and moments m, v (same layout as gw) instead of the gradient buffer:
 * the gradient is never stored, and the step reads each weight's state once, while it is in
 * cache.  Bit for bit the gradient buffer followed by adam_n. */
INLINE void adam_at(float *p, float *m, float *v, int64_t at, vf g, const hyper_t *hp,
                    const adam_step_t *a) {
    vf pj = vload(p + at), mj = vload(m + at), vj = vload(v + at);
    adamv(&pj, &mj, &vj, g, hp, a);
    vstore(m + at, mj);
    vstore(v + at, vj);
    vstore(p + at, pj);
}

INLINE void grad_adam_block(const int R, const float *h, int hs, const float *d, int Op, int I,
                            const float *gw, float *p, float *m, float *v, const hyper_t *hp,
                            const adam_step_t *a) {
    const hyper_t hk = *hp;   /* local copies: the stores to p, m, v cannot alias them */
    const adam_step_t ak = *a;
    for (int i = 0; i < I; i++) { /* in memory order: the state streams through once */
        vf x[RB];
        for (int r = 0; r < R; r++) x[r] = vsplat(h[r * hs + i]);
        for (int k = 0; k < Op; k += VL) {
            int64_t at = (int64_t)i * Op + k;
            vf g = gw ? vload(gw + at) : (vf){0};
            for (int r = 0; r < R; r++) g += x[r] * vload(d + r * Op + k);
            adam_at(p, m, v, at, g, &hk, &ak);
        }
    }
}

/* The output-major first layer's (geom t0) counterpart of grad_t0_block. */
INLINE void grad_t0_adam_block(const int R, const float *x, int Ip, const float *d, int Op, int O,
                               const float *gw, float *p, float *m, float *v, const hyper_t *hp,
                               const adam_step_t *a) {
    const hyper_t hk = *hp;   /* local copies: the stores to p, m, v cannot alias them */
    const adam_step_t ak = *a;
    for (int o = 0; o < O; o++) {
        vf dv[RB];
        for (int r = 0; r < R; r++) dv[r] = vsplat(d[(int64_t)r * Op + o]);
        for (int i = 0; i < Ip; i += VL) {
            int64_t at = (int64_t)o * Ip + i;
            vf acc = gw ? vload(gw + at) : (vf){0};
            for (int r = 0; r < R; r++) acc += dv[r] * vload(x + (int64_t)r * Ip + i);
            adam_at(p, m, v, at, acc, &hk, &ak);
        }
    }
}

#endif /* EVOPRUNE_ADAM_H */
