/* Dense-layer maths on padded layouts for kernels.c: SIMD vectors (GCC vector extensions,
 * width from the target), the network geometry and its padded copy, register-blocked
 * forward / weight-gradient / input-gradient blocks, a vectorisable exp and the loss
 * gradients.  Everything is static: this header is included by kernels.c only. */
#ifndef EVOPRUNE_DENSE_H
#define EVOPRUNE_DENSE_H

#include <math.h>

#include "abi.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#elif defined(__SSE4_1__)
#include <smmintrin.h>
#elif defined(__SSE__)
#include <xmmintrin.h>
#endif

#if defined(__AVX512F__)
#define VL 16
#elif defined(__AVX__)
#define VL 8
#else
#define VL 4
#endif
typedef float vf __attribute__((vector_size(VL * 4)));
typedef int32_t vi __attribute__((vector_size(VL * 4)));
/* Rows per register block: a forward block holds RB x 2 vector accumulators, two weight vectors
 * and a broadcast - 19 of AVX-512's 32 registers at 8 rows, 15 of the 16 of AVX2 and SSE at 6
 * (8 rows there spilled accumulators to the stack).  The blocking changes no sum: every output
 * sums its inputs, every weight gradient its rows, in order. */
#if VL == 16
#define RB 8
#else
#define RB 6
#endif
#define INLINE static inline __attribute__((always_inline))

static inline int pad(int n) { return (n + VL - 1) / VL * VL; }
INLINE vf vload(const float *p) { return *(const vf *)p; }
INLINE void vstore(float *p, vf v) { *(vf *)p = v; }
INLINE vf vsplat(float x) { return x - (vf){0}; } /* folds to a broadcast */
INLINE vf vrelu(vf v) { return (vf)((vi)v & (v > 0)); }
INLINE float hsum(vf v) {
    float s = 0.0f;
    for (int j = 0; j < VL; j++) s += v[j];
    return s;
}

/* ---- the network's geometry --------------------------------------------------------- */
typedef struct {
    int L;                      /* layers */
    int dims[MAX_LAYERS + 1];   /* widths, input first */
    int pdims[MAX_LAYERS + 1];  /* padded widths */
    int64_t P;                  /* flat entries per member (the buffers' row stride) */
    int64_t Pp;                 /* padded entries */
    int64_t fw[MAX_LAYERS], fb[MAX_LAYERS]; /* flat offsets of weights and bias */
    int64_t pw[MAX_LAYERS], pb[MAX_LAYERS]; /* padded offsets */
    int maxp;                   /* widest padded layer */
    int t0; /* layer 0 stored output-major (dims[1] rows of pdims[0] inputs): a first layer at
             * most half a vector wide would be mostly pads input-major */
} geom_t;

static int geom_init(geom_t *g, int L, const int *dims) {
    if (L < 1 || L > MAX_LAYERS) return -1;
    g->L = L;
    int64_t f = 0, q = 0;
    g->maxp = 0;
    for (int l = 0; l <= L; l++) {
        if (dims[l] < 1) return -1;
        g->dims[l] = dims[l];
        g->pdims[l] = pad(dims[l]);
        if (g->pdims[l] > g->maxp) g->maxp = g->pdims[l];
    }
    g->t0 = L >= 2 && dims[1] * 2 <= VL;
    for (int l = 0; l < L; l++) {
        int I = dims[l], O = dims[l + 1], Op = g->pdims[l + 1];
        g->fw[l] = f;
        g->fb[l] = f + (int64_t)I * O;
        f += (int64_t)I * O + O;
        g->pw[l] = q;
        g->pb[l] = q + (l == 0 && g->t0 ? (int64_t)O * g->pdims[0] : (int64_t)I * Op);
        q = g->pb[l] + Op;
    }
    g->P = f;
    g->Pp = q;
    return 0;
}

static void copy_in(const geom_t *g, const float *src, float *dst) {
    memset(dst, 0, sizeof(float) * g->Pp);
    for (int l = 0; l < g->L; l++) {
        int I = g->dims[l], O = g->dims[l + 1], Op = g->pdims[l + 1], Ip = g->pdims[l];
        if (l == 0 && g->t0)
            for (int i = 0; i < I; i++)
                for (int o = 0; o < O; o++)
                    dst[g->pw[l] + (int64_t)o * Ip + i] = src[g->fw[l] + (int64_t)i * O + o];
        else
            for (int i = 0; i < I; i++)
                memcpy(dst + g->pw[l] + (int64_t)i * Op, src + g->fw[l] + (int64_t)i * O,
                       sizeof(float) * O);
        memcpy(dst + g->pb[l], src + g->fb[l], sizeof(float) * O);
    }
}

static void copy_out(const geom_t *g, const float *src, float *dst) {
    for (int l = 0; l < g->L; l++) {
        int I = g->dims[l], O = g->dims[l + 1], Op = g->pdims[l + 1], Ip = g->pdims[l];
        if (l == 0 && g->t0)
            for (int i = 0; i < I; i++)
                for (int o = 0; o < O; o++)
                    dst[g->fw[l] + (int64_t)i * O + o] = src[g->pw[l] + (int64_t)o * Ip + i];
        else
            for (int i = 0; i < I; i++)
                memcpy(dst + g->fw[l] + (int64_t)i * O, src + g->pw[l] + (int64_t)i * Op,
                       sizeof(float) * O);
        memcpy(dst + g->fb[l], src + g->pb[l], sizeof(float) * O);
    }
}

/* ---- dense blocks ------------------------------------------------------------------- */
/* out[r][:] = act(bias + sum_i h[r][i] * W[i][:]) for R rows (R a compile-time constant). */
INLINE void fwd_block(const int R, const float *h, int hs, const float *W, const float *bias,
                      int I, int Op, float *out, int os, int relu) {
    int k = 0;
    for (; k + 2 * VL <= Op; k += 2 * VL) {
        vf a[RB], c[RB];
        for (int r = 0; r < R; r++) {
            a[r] = vload(bias + k);
            c[r] = vload(bias + k + VL);
        }
        for (int i = 0; i < I; i++) {
            vf w0 = vload(W + (int64_t)i * Op + k), w1 = vload(W + (int64_t)i * Op + k + VL);
            for (int r = 0; r < R; r++) {
                vf x = vsplat(h[r * hs + i]);
                a[r] += x * w0;
                c[r] += x * w1;
            }
        }
        for (int r = 0; r < R; r++) {
            if (relu) {
                a[r] = vrelu(a[r]);
                c[r] = vrelu(c[r]);
            }
            vstore(out + r * os + k, a[r]);
            vstore(out + r * os + k + VL, c[r]);
        }
    }
    for (; k < Op; k += VL) {
        vf a[RB];
        for (int r = 0; r < R; r++) a[r] = vload(bias + k);
        for (int i = 0; i < I; i++) {
            vf w0 = vload(W + (int64_t)i * Op + k);
            for (int r = 0; r < R; r++) a[r] += vsplat(h[r * hs + i]) * w0;
        }
        for (int r = 0; r < R; r++) {
            if (relu) a[r] = vrelu(a[r]);
            vstore(out + r * os + k, a[r]);
        }
    }
}

/* dh[r][i] = sum_k d[r][k] * W[i][k] for R rows, then masked by ReLU'(h[r][i]). */
INLINE void bwd_input_block(const int R, const float *d, int ds, const float *W, int I, int Op,
                            const float *h, int hs, float *out, int os) {
    for (int i = 0; i < I; i++) {
        vf a[RB];
        for (int r = 0; r < R; r++) a[r] = (vf){0};
        const float *w = W + (int64_t)i * Op;
        for (int k = 0; k < Op; k += VL) {
            vf wv = vload(w + k);
            for (int r = 0; r < R; r++) a[r] += vload(d + r * ds + k) * wv;
        }
        for (int r = 0; r < R; r++) out[r * os + i] = h[r * hs + i] > 0 ? hsum(a[r]) : 0.0f;
    }
}

/* gW[i][:] (+)= sum_r h[r][i] * d[r][:] for R rows; `add` accumulates onto earlier rows. */
INLINE void grad_block(const int R, const float *h, int hs, const float *d, int Op, int I,
                       float *gw, int add) {
    int k = 0;
    for (; k + 2 * VL <= Op; k += 2 * VL) {
        vf d0[RB], d1[RB];
        for (int r = 0; r < R; r++) {
            d0[r] = vload(d + r * Op + k);
            d1[r] = vload(d + r * Op + k + VL);
        }
        for (int i = 0; i < I; i++) {
            float *out = gw + (int64_t)i * Op + k;
            vf a = add ? vload(out) : (vf){0}, c = add ? vload(out + VL) : (vf){0};
            for (int r = 0; r < R; r++) {
                vf x = vsplat(h[r * hs + i]);
                a += x * d0[r];
                c += x * d1[r];
            }
            vstore(out, a);
            vstore(out + VL, c);
        }
    }
    for (; k < Op; k += VL) {
        vf d0[RB];
        for (int r = 0; r < R; r++) d0[r] = vload(d + r * Op + k);
        for (int i = 0; i < I; i++) {
            float *out = gw + (int64_t)i * Op + k;
            vf a = add ? vload(out) : (vf){0};
            for (int r = 0; r < R; r++) a += vsplat(h[r * hs + i]) * d0[r];
            vstore(out, a);
        }
    }
}

/* Sum of the lanes in a fixed pairwise order (halves, quarters, ...): a short dependency chain. */
INLINE float hsum_tree(vf v) {
    float t[VL];
    for (int j = 0; j < VL; j++) t[j] = v[j];
    for (int s = VL / 2; s >= 1; s /= 2)
        for (int j = 0; j < s; j++) t[j] += t[j + s];
    return t[0];
}

/* The output-major first layer (geom t0): out[r][o] = act(bias[o] + x[r] . Wt[o]) for NO <= 8
 * outputs, two rows at a time, each dot product in SIMD lanes summed in lane order; pads 0. */
INLINE void fwd_t0_rows(const int NO, const float *x, int nb, const float *Wt, const float *bias,
                        int Ip, float *out, int Op, int relu) {
    for (int r = 0; r < nb; r += 2) {
        int two = r + 1 < nb;
        const float *x0 = x + (int64_t)r * Ip, *x1 = two ? x0 + Ip : x0;
        vf a[8], c[8];
        for (int o = 0; o < NO; o++) a[o] = c[o] = (vf){0};
        for (int i = 0; i < Ip; i += VL) {
            vf u = vload(x0 + i), v = vload(x1 + i);
            for (int o = 0; o < NO; o++) {
                vf wv = vload(Wt + (int64_t)o * Ip + i);
                a[o] += u * wv;
                c[o] += v * wv;
            }
        }
        for (int q = 0; q <= two; q++) {
            float *row = out + (int64_t)(r + q) * Op;
            for (int o = 0; o < NO; o++) {
                float z = hsum_tree(q ? c[o] : a[o]) + bias[o];
                row[o] = relu ? (z > 0.0f ? z : 0.0f) : z;
            }
            for (int o = NO; o < Op; o++) row[o] = 0.0f;
        }
    }
}

/* gWt[o][:] (+)= sum_r d[r][o] * x[r][:] for R rows (in order, as grad_block sums them). */
INLINE void grad_t0_block(const int R, const float *x, int Ip, const float *d, int Op, int O,
                          float *gw, int add) {
    for (int i = 0; i < Ip; i += VL) {
        vf xv[RB];
        for (int r = 0; r < R; r++) xv[r] = vload(x + (int64_t)r * Ip + i);
        for (int o = 0; o < O; o++) {
            float *out = gw + (int64_t)o * Ip + i;
            vf acc = add ? vload(out) : (vf){0};
            for (int r = 0; r < R; r++) acc += vsplat(d[(int64_t)r * Op + o]) * xv[r];
            vstore(out, acc);
        }
    }
}

/* CALL with R_ a compile-time constant equal to R (1 <= R <= RB). */
#if RB == 8
#define DISPATCH_TOP(CALL)                                                                   \
    case 6: { const int R_ = 6; CALL; } break;                                               \
    case 7: { const int R_ = 7; CALL; } break;                                               \
    default: { const int R_ = 8; CALL; } break;
#else
#define DISPATCH_TOP(CALL) default: { const int R_ = 6; CALL; } break;
#endif
#define DISPATCH(R, CALL)                                                                    \
    switch (R) {                                                                             \
    case 1: { const int R_ = 1; CALL; } break;                                               \
    case 2: { const int R_ = 2; CALL; } break;                                               \
    case 3: { const int R_ = 3; CALL; } break;                                               \
    case 4: { const int R_ = 4; CALL; } break;                                               \
    case 5: { const int R_ = 5; CALL; } break;                                               \
    DISPATCH_TOP(CALL)                                                                       \
    }

/* Layer l's weights at lw[l] (padded rows), its bias right after them (pw -> pb). */
static void layer_ptrs(const geom_t *g, const float *base, const float **lw, int from, int to) {
    for (int l = from; l < to; l++) lw[l] = base + g->pw[l];
}

static void forward(const geom_t *g, const float *const *lw, const float *x, int nb, float **h) {
    /* h[0] = x (nb rows, padded stride); h[l+1] = layer l's output; the last one is logits */
    for (int l = 0; l < g->L; l++) {
        int I = g->dims[l], Ip = g->pdims[l], Op = g->pdims[l + 1];
        const float *in = l == 0 ? x : h[l];
        const float *W = lw[l], *bias = lw[l] + (g->pb[l] - g->pw[l]);
        int relu = l < g->L - 1;
        if (l == 0 && g->t0) {
            DISPATCH(g->dims[1], fwd_t0_rows(R_, x, nb, W, bias, Ip, h[1], Op, relu));
            continue;
        }
        for (int b = 0; b < nb; b += RB) {
            int R = nb - b < RB ? nb - b : RB;
            DISPATCH(R, fwd_block(R_, in + (int64_t)b * Ip, Ip, W, bias, I, Op,
                                  h[l + 1] + (int64_t)b * Op, Op, relu));
        }
    }
}

/* ---- exp / sigmoid, VL lanes at a time (Cody-Waite reduction, degree-7 Taylor, ~1 ulp) ----
 * t = clamp(t, -87, 88), n = floor(t log2 e + 1/2), r = t - n C1 + n C2, Horner, times 2^n.
 * Vector code, so that the clamp is a max and a min and the floor one instruction (the
 * compiler's vectorisation of the former scalar form clamped with compares and blends, and
 * did not vectorise at all without SSE4.1); every lane's arithmetic, its multiply-adds
 * included, is the scalar form's, bit for bit on every finite and infinite input. */
INLINE vf vclamp(vf t, float lo, float hi) { /* t < lo ? lo : (t > hi ? hi : t), NaN kept */
#if defined(__AVX512F__)
    return (vf)_mm512_min_ps(_mm512_set1_ps(hi), _mm512_max_ps(_mm512_set1_ps(lo), (__m512)t));
#elif defined(__AVX__)
    return (vf)_mm256_min_ps(_mm256_set1_ps(hi), _mm256_max_ps(_mm256_set1_ps(lo), (__m256)t));
#elif defined(__SSE__)
    return (vf)_mm_min_ps(_mm_set1_ps(hi), _mm_max_ps(_mm_set1_ps(lo), (__m128)t));
#else
    for (int j = 0; j < VL; j++) t[j] = t[j] < lo ? lo : (t[j] > hi ? hi : t[j]);
    return t;
#endif
}

INLINE vf vfloor(vf x) {
#if defined(__AVX512F__)
    return (vf)_mm512_roundscale_ps((__m512)x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#elif defined(__AVX__)
    return (vf)_mm256_round_ps((__m256)x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#elif defined(__SSE4_1__)
    return (vf)_mm_round_ps((__m128)x, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#else
    for (int j = 0; j < VL; j++) x[j] = floorf(x[j]);
    return x;
#endif
}

INLINE vf vexp_approx(vf t) {
    t = vclamp(t, -87.0f, 88.0f);
    vf n = vfloor(t * 1.44269504088896341f + 0.5f);
    vf r = t - n * 0.693359375f + n * 2.12194440e-4f;
    vf q = vsplat(1.0f / 5040.0f);
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    q = q * r + 1.0f;
    q = q * r + 1.0f;
    vi bits = (__builtin_convertvector(n, vi) + 127) << 23;
    return q * (vf)bits;
}

INLINE vf vsigmoid(vf z) { return 1.0f / (1.0f + vexp_approx(-z)); }

/* d[o] = d loss / d logit for one row (o < D); pads are zeroed. */
static void loss_grad_row(const float *z, const float *x, float *d, int D, int Dp, int loss,
                          float scale) {
    const vf one = vsplat(1.0f);
    for (int o = 0; o < Dp; o += VL) {
        vf y = vsigmoid(vload(z + o)), e = y - vload(x + o), g;
        if (loss == LOSS_BCE) {
            g = e * scale;
        } else if (loss == LOSS_MSE) {
            g = e * (y * (1.0f - y)) * (2.0f * scale);
        } else {
            vf s = (vf)(((vi)(e > 0) & (vi)one) | ((vi)(e < 0) & (vi)(-one)));
            g = s * (y * (1.0f - y)) * scale;
        }
        vstore(d + o, g);
    }
    for (int o = D; o < Dp; o++) d[o] = 0.0f;
}

/* sum over o < D of |sigmoid(z[o]) - x[o]| for one row: VL lane sums over the row (pads 0), then
 * their sum in lane order (a fixed order, whatever the thread count). */
static float abs_error_row(const float *z, const float *x, int D) {
    const vi absmask = ~(vi)vsplat(-0.0f);
    vf acc = (vf){0};
    int o = 0;
    for (; o + VL <= D; o += VL)
        acc += (vf)((vi)(vsigmoid(vload(z + o)) - vload(x + o)) & absmask);
    if (o < D) { /* the last, partial vector: lanes past D count 0 */
        vi lane;
        for (int j = 0; j < VL; j++) lane[j] = o + j;
        vf e = (vf)((vi)(vsigmoid(vload(z + o)) - vload(x + o)) & absmask);
        acc += (vf)((vi)e & (lane < D));
    }
    return hsum(acc);
}

#endif /* EVOPRUNE_DENSE_H */
