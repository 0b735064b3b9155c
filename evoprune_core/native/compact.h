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
    float *lazy_p, *lazy_m, *lazy_v; /* their state gathered, VL per block */
    int *lazy_left;                  /* each block's steps left */
} plan_t;

static int plan_init(plan_t *w, const geom_t *g) {
    memset(w, 0, sizeof(*w));
    w->lazy = (int32_t *)malloc(sizeof(int32_t) * (size_t)(g->P > 0 ? g->P : 1));
    w->lazy_left = (int *)malloc(sizeof(int) * (size_t)(g->P / VL + 1));
    float **lazy[3] = {&w->lazy_p, &w->lazy_m, &w->lazy_v};
    int ok = w->lazy && w->lazy_left;
    for (int k = 0; k < 3; k++) {
        if (posix_memalign((void **)lazy[k], 64, sizeof(float) * (size_t)(g->P + VL)) != 0)
            *lazy[k] = NULL;
        ok = ok && *lazy[k];
    }
    for (int l = 0; l <= g->L; l++) {
        w->keep[l] = (int *)malloc(sizeof(int) * (size_t)g->dims[l]);
        w->alive[l] = (unsigned char *)malloc((size_t)g->dims[l]);
        ok = ok && w->keep[l] && w->alive[l];
    }
    return ok ? 0 : -1;
}

static void plan_free(plan_t *w, const geom_t *g) {
    free(w->lazy), free(w->lazy_p), free(w->lazy_m), free(w->lazy_v), free(w->lazy_left);
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

/* The epoch's Adam updates of the lazy entries, whose gradient is 0 at every step (a fresh Adam
 * first at every step with `reset`).  The entries are gathered into contiguous vectors; phase 1,
 * per vector of VL entries: adam_n's steps (the uncompacted epoch's arithmetic) while some first
 * moment is not 0; from then on the update is exactly 0 and only the second moments decay
 * (v = b2 v, the same rounding as Adam's v = b2 v + (1 - b2) 0 0), in phase 2, eight vectors at
 * a time (independent chains instead of one long dependent one).  Portable: the same code for
 * every vector width. */
static void lazy_adam(const plan_t *w, float *p, float *m, float *v, const adam_step_t *steps,
                      int n_steps, int reset, const hyper_t *hp) {
    const int32_t *idx = w->lazy;
    const int64_t n = w->n_lazy, n_blocks = (n + VL - 1) / VL;
    float *restrict lp = w->lazy_p, *restrict lm = w->lazy_m, *restrict lv = w->lazy_v;
    for (int64_t j = 0; j < n; j++) {
        lp[j] = p[idx[j]];
        lm[j] = m[idx[j]];
        lv[j] = v[idx[j]];
    }
    for (int64_t j = n; j < n_blocks * VL; j++) lp[j] = lm[j] = lv[j] = 0.0f; /* inert pads */
    float zero[VL] __attribute__((aligned(64)));
    for (int q = 0; q < VL; q++) zero[q] = 0.0f;
    for (int64_t blk = 0; blk < n_blocks; blk++) {
        float *bp = lp + blk * VL, *bm = lm + blk * VL, *bv = lv + blk * VL;
        int s = 0;
        if (reset) { /* a fresh Adam at every step: moments 0 (pruned: v stays +inf) */
            for (int q = 0; q < VL; q++) {
                bm[q] = 0.0f;
                bv[q] = bv[q] == INFINITY ? INFINITY : 0.0f;
            }
            s = n_steps;
        } else {
            for (; s < n_steps; s++) {
                int busy = 0; /* a NaN moment counts as not 0 */
                for (int q = 0; q < VL; q++) busy |= bm[q] != 0.0f;
                if (!busy) break;
                adam_n(bp, bm, bv, zero, VL, hp, &steps[s]);
            }
        }
        int decays = 0; /* 0 and +inf do not decay */
        for (int q = 0; q < VL; q++) decays |= bv[q] != 0.0f && bv[q] != INFINITY;
        w->lazy_left[blk] = decays ? n_steps - s : 0;
    }
    const vf vb2 = vsplat(hp->b2), one = vsplat(1.0f);
    for (int64_t b0 = 0; b0 < n_blocks; b0 += 8) {
        int left[8], most = 0;
        vf vv[8];
        for (int q = 0; q < 8; q++) {
            int in = b0 + q < n_blocks;
            left[q] = in ? w->lazy_left[b0 + q] : 0;
            vv[q] = in ? vload(lv + (b0 + q) * VL) : (vf){0};
            if (left[q] > most) most = left[q];
        }
        for (int s = 0; s < most; s++)
            for (int q = 0; q < 8; q++) vv[q] *= s < left[q] ? vb2 : one;
        for (int q = 0; q < 8; q++)
            if (left[q]) vstore(lv + (b0 + q) * VL, vv[q]);
    }
    for (int64_t j = 0; j < n; j++) {
        p[idx[j]] = lp[j];
        m[idx[j]] = lm[j];
        v[idx[j]] = lv[j];
    }
}

#endif /* EVOPRUNE_COMPACT_H */
