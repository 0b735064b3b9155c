/* Compaction of structurally dead hidden units for kernels.c: which units a member can train
 * and evaluate without, its compact working copy, and the removed entries' zero-gradient Adam
 * steps.  Everything is static: this header is included by kernels.c only. */
#ifndef EVOPRUNE_COMPACT_H
#define EVOPRUNE_COMPACT_H

#include "adam.h"

/* A worker's plan for one member: per layer boundary l, the kept units keep[l] (nkeep[l] of
 * dims[l]) and alive[l][u]; the removed entries that still move (lazy, P at most) and
 * lazy_adam's scratch. */
typedef struct {
    int *keep[MAX_LAYERS + 1], nkeep[MAX_LAYERS + 1];
    unsigned char *alive[MAX_LAYERS + 1];
    int32_t *lazy;
    int64_t n_lazy;
    float *lazy_v;  /* second moments, 16 per block */
    int *lazy_left; /* each block's steps left */
} plan_t;

static int plan_init(plan_t *w, const geom_t *g) {
    memset(w, 0, sizeof(*w));
    w->lazy = (int32_t *)malloc(sizeof(int32_t) * (size_t)(g->P > 0 ? g->P : 1));
    w->lazy_left = (int *)malloc(sizeof(int) * (size_t)(g->P / 16 + 1));
    if (posix_memalign((void **)&w->lazy_v, 64, sizeof(float) * (size_t)(g->P + 16)) != 0)
        w->lazy_v = NULL;
    int ok = w->lazy && w->lazy_v && w->lazy_left;
    for (int l = 0; l <= g->L; l++) {
        w->keep[l] = (int *)malloc(sizeof(int) * (size_t)g->dims[l]);
        w->alive[l] = (unsigned char *)malloc((size_t)g->dims[l]);
        ok = ok && w->keep[l] && w->alive[l];
    }
    return ok ? 0 : -1;
}

static void plan_free(plan_t *w, const geom_t *g) {
    free(w->lazy), free(w->lazy_v), free(w->lazy_left);
    for (int l = 0; l <= g->L; l++) free(w->keep[l]), free(w->alive[l]);
}

/* ---- compaction of structurally dead hidden units ------------------------------------------
 * A hidden unit whose incoming weights and bias are all pruned is structurally dead: it outputs
 * relu(0) = 0 on every row, so every gradient that touches it - its outgoing weights', its
 * incoming weights' - is exactly 0.  The member trains on a compact copy without those units;
 * the removed entries whose state still moves (an unpruned outgoing weight, or any first moment
 * not yet 0) receive the epoch's zero-gradient Adam updates afterwards (lazy_adam), in the same
 * arithmetic.  The result equals the uncompacted epoch up to the order of a few float sums.
 * (A unit whose outgoing weights alone are all pruned is not removed: its pruned outgoing
 * weights still receive gradients, which move their first moments.) */

/* Mark the dead units of the member whose flat row `state` is into w->keep/alive and the
 * compact geometry cg; returns 1 when any unit was removed.  A pruned entry is one whose second
 * moment is +inf; with `by_zero` (`state` = the weights; evaluation only) a unit is dead when its
 * incoming weights and bias are all exactly 0. */
static int plan_units(const geom_t *g, plan_t *w, geom_t *cg, const float *state, int by_zero) {
    int removed = 0, dims[MAX_LAYERS + 1];
    for (int l = 0; l <= g->L; l++) {
        int n = g->dims[l], k = 0;
        unsigned char *alive = w->alive[l];
        if (l == 0 || l == g->L) {
            memset(alive, 1, (size_t)n);
        } else { /* row by row over the incoming weights (sequential reads) */
            const float dead = by_zero ? 0.0f : INFINITY, *b = state + g->fb[l - 1];
            for (int u = 0; u < n; u++) alive[u] = b[u] != dead;
            for (int i = 0; i < g->dims[l - 1]; i++) {
                const float *row = state + g->fw[l - 1] + (int64_t)i * n;
                for (int u = 0; u < n; u++) alive[u] |= row[u] != dead;
            }
        }
        for (int u = 0; u < n; u++)
            if (alive[u]) w->keep[l][k++] = u;
        if (k == 0) { /* a layer keeps one unit (dead or not, computing it is exact) */
            alive[0] = 1;
            w->keep[l][k++] = 0;
        }
        w->nkeep[l] = k;
        dims[l] = k;
        removed |= k < n;
    }
    if (!removed) return 0;
    geom_init(cg, g->L, dims);
    return 1;
}

/* dst (compact, padded) <- the kept rows and columns of src (flat, full). */
static void gather_in(const geom_t *g, const geom_t *cg, const plan_t *w, const float *src,
                      float *dst) {
    memset(dst, 0, sizeof(float) * cg->Pp);
    for (int l = 0; l < g->L; l++) {
        int O = g->dims[l + 1], Op = cg->pdims[l + 1], nI = w->nkeep[l], nO = w->nkeep[l + 1];
        const int *ki = w->keep[l], *ko = w->keep[l + 1];
        if (l == 0 && cg->t0) { /* output-major: row o' holds the inputs of unit ko[o'] */
            int Ip = cg->pdims[0];
            for (int o = 0; o < nO; o++)
                for (int i = 0; i < g->dims[0]; i++)
                    dst[cg->pw[0] + (int64_t)o * Ip + i] = src[g->fw[0] + (int64_t)i * O + ko[o]];
            nI = 0;
        }
        for (int i = 0; i < nI; i++) {
            const float *row = src + g->fw[l] + (int64_t)ki[i] * O;
            float *out = dst + cg->pw[l] + (int64_t)i * Op;
            if (nO == O)
                memcpy(out, row, sizeof(float) * O);
            else
                for (int o = 0; o < nO; o++) out[o] = row[ko[o]];
        }
        for (int o = 0; o < nO; o++) dst[cg->pb[l] + o] = src[g->fb[l] + ko[o]];
    }
}

/* The kept entries of dst (flat, full) <- src (compact, padded). */
static void scatter_out(const geom_t *g, const geom_t *cg, const plan_t *w, const float *src,
                        float *dst) {
    for (int l = 0; l < g->L; l++) {
        int O = g->dims[l + 1], Op = cg->pdims[l + 1], nI = w->nkeep[l], nO = w->nkeep[l + 1];
        const int *ki = w->keep[l], *ko = w->keep[l + 1];
        if (l == 0 && cg->t0) {
            int Ip = cg->pdims[0];
            for (int o = 0; o < nO; o++)
                for (int i = 0; i < g->dims[0]; i++)
                    dst[g->fw[0] + (int64_t)i * O + ko[o]] = src[cg->pw[0] + (int64_t)o * Ip + i];
            nI = 0;
        }
        for (int i = 0; i < nI; i++) {
            float *row = dst + g->fw[l] + (int64_t)ki[i] * O;
            const float *in = src + cg->pw[l] + (int64_t)i * Op;
            if (nO == O)
                memcpy(row, in, sizeof(float) * O);
            else
                for (int o = 0; o < nO; o++) row[ko[o]] = in[o];
        }
        for (int o = 0; o < nO; o++) dst[g->fb[l] + ko[o]] = src[cg->pb[l] + o];
    }
}

/* w->lazy <- the removed entries whose state moves under a zero gradient: not pruned (second
 * moment finite), or a first moment that is not yet 0. */
static void plan_lazy(const geom_t *g, plan_t *w, const float *m, const float *v) {
    int64_t n = 0;
#define MOVES(j) (v[j] != INFINITY || m[j] != 0.0f)
    for (int l = 0; l < g->L; l++) {
        int I = g->dims[l], O = g->dims[l + 1], nO = w->nkeep[l + 1];
        const unsigned char *ai = w->alive[l], *ao = w->alive[l + 1];
        for (int i = 0; i < I; i++) {
            int64_t row = g->fw[l] + (int64_t)i * O;
            if (!ai[i]) { /* a removed input: the whole row */
                for (int o = 0; o < O; o++)
                    if (MOVES(row + o)) w->lazy[n++] = (int32_t)(row + o);
            } else if (nO < O) { /* the removed outputs' columns */
                for (int o = 0; o < O; o++)
                    if (!ao[o] && MOVES(row + o)) w->lazy[n++] = (int32_t)(row + o);
            }
        }
        for (int o = 0; o < O; o++)
            if (!ao[o] && MOVES(g->fb[l] + o)) w->lazy[n++] = (int32_t)(g->fb[l] + o);
    }
#undef MOVES
    w->n_lazy = n;
}

/* The epoch's Adam updates of the lazy entries, whose gradient is 0 at every step: each block
 * of entries runs all steps in registers (a fresh Adam first at every step with `reset`). */
static void lazy_adam(const plan_t *w, float *p, float *m, float *v, const adam_step_t *steps,
                      int n_steps, int reset, const hyper_t *hp) {
    int64_t j = 0;
    const int32_t *idx = w->lazy;
#if defined(__AVX512F__)
    /* phase 1, per block of 16 entries: the steps while some first moment is not 0; then the
     * second moments only decay (v = b2 v), in phase 2, eight blocks at a time (independent
     * chains instead of one long dependent one) */
    const __m512 zero = _mm512_setzero_ps(), vb2 = _mm512_set1_ps(hp->b2);
    int64_t n_blocks = (w->n_lazy + 15) / 16;
    for (int64_t blk = 0; blk < n_blocks; blk++, j += 16) {
        __mmask16 k = j + 16 <= w->n_lazy ? (__mmask16)0xFFFF
                                           : (__mmask16)((1u << (w->n_lazy - j)) - 1u);
        __m512i at = _mm512_maskz_loadu_epi32(k, (const void *)(idx + j));
        __m512 pj = _mm512_mask_i32gather_ps(zero, k, at, p, 4);
        __m512 mj = zero, vj = _mm512_mask_i32gather_ps(zero, k, at, v, 4);
        int s = 0;
        if (reset) { /* a fresh Adam at every step: moments 0 (pruned: v stays +inf) */
            vj = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(vj, _mm512_set1_ps(INFINITY), _CMP_EQ_OQ),
                                     vj);
            s = n_steps;
        } else {
            mj = _mm512_mask_i32gather_ps(zero, k, at, m, 4);
            for (; s < n_steps && _mm512_cmp_ps_mask(mj, zero, _CMP_NEQ_UQ); s++)
                adam16(&pj, &mj, &vj, zero, hp, &steps[s]);
        }
        _mm512_mask_i32scatter_ps(p, k, at, pj, 4);
        _mm512_mask_i32scatter_ps(m, k, at, mj, 4);
        _mm512_store_ps(w->lazy_v + blk * 16, vj);
        /* 0 and +inf do not decay: nothing left to do for such a block */
        __mmask16 moves = _mm512_cmp_ps_mask(vj, zero, _CMP_NEQ_UQ) &
                          _mm512_cmp_ps_mask(vj, _mm512_set1_ps(INFINITY), _CMP_NEQ_UQ) & k;
        w->lazy_left[blk] = moves ? n_steps - s : 0;
        if (!w->lazy_left[blk]) _mm512_mask_i32scatter_ps(v, k, at, vj, 4);
    }
    for (int64_t b0 = 0; b0 < n_blocks; b0 += 8) {
        int nb = n_blocks - b0 < 8 ? (int)(n_blocks - b0) : 8, most = 0;
        __m512 vv[8];
        for (int q = 0; q < nb; q++) {
            vv[q] = _mm512_load_ps(w->lazy_v + (b0 + q) * 16);
            if (w->lazy_left[b0 + q] > most) most = w->lazy_left[b0 + q];
        }
        for (int s = 0; s < most; s++)
            for (int q = 0; q < nb; q++)
                if (s < w->lazy_left[b0 + q]) vv[q] = _mm512_fmadd_ps(vb2, vv[q], zero);
        for (int q = 0; q < nb; q++) {
            if (!w->lazy_left[b0 + q]) continue; /* written in phase 1 */
            int64_t at0 = (b0 + q) * 16;
            __mmask16 k = at0 + 16 <= w->n_lazy ? (__mmask16)0xFFFF
                                                 : (__mmask16)((1u << (w->n_lazy - at0)) - 1u);
            __m512i at = _mm512_maskz_loadu_epi32(k, (const void *)(idx + at0));
            _mm512_mask_i32scatter_ps(v, k, at, vv[q], 4);
        }
    }
#endif
    for (; j < w->n_lazy; j++) {
        float *pj = p + idx[j], *mj = m + idx[j], *vj = v + idx[j];
        for (int s = 0; s < n_steps; s++) {
            if (reset) *mj = 0.0f, *vj = *vj == INFINITY ? INFINITY : 0.0f;
            adam1(pj, mj, vj, 0.0f, hp, &steps[s]);
        }
    }
}

#endif /* EVOPRUNE_COMPACT_H */
