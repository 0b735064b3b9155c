/* Fused CPU kernels for populations of small MLP autoencoders (see native/__init__.py; the
 * argument structs and shared constants of the exported functions are in abi.h).
 *
 * A member's state lives in the population's flat row (per layer: weights input-major
 * (in x out), then the bias).  Each worker copies one member at a time into a padded,
 * aligned private copy (every row a whole number of SIMD vectors, pads zero), runs all of
 * that member's work on it - the whole working set stays in the core's L2 cache - and
 * copies it back.  Members are independent, so the results do not depend on the number of
 * threads or on which thread ran which member.
 *
 * Network: a chain of affine layers, ReLU after every layer but the last (the encoder's
 * latent is rectified; the decoder's output is a logit).  Loss gradients match
 * engines/training.py: the mean over (rows x features) of BCE on logits, or L1 / MSE of
 * sigmoid(logit).  Adam (adam.h) matches torch's (lr / bias_correction1 step, eps outside the
 * corrected square root); pruned entries carry an infinite second moment, so their update is
 * exactly zero.  Hidden units whose inputs are all pruned leave the private copy (compact.h).
 */
#include <pthread.h>

#include "compact.h"

/* ---- one member's training -------------------------------------------------------------- */
typedef struct {
    float *p, *m, *v, *grad; /* padded state and gradient */
    float *h[MAX_LAYERS + 1];
    float *d0, *d1;          /* deltas, batch x maxp */
    plan_t plan;             /* compaction (compact.h) */
} work_t;

static void *alloc_f(int64_t n) {
    void *ptr = NULL;
    if (posix_memalign(&ptr, 64, sizeof(float) * (size_t)(n > 0 ? n : 1)) != 0) return NULL;
    return ptr;
}

static int work_init(work_t *w, const geom_t *g, int batch) {
    memset(w, 0, sizeof(*w));
    w->p = alloc_f(g->Pp);
    w->m = alloc_f(g->Pp);
    w->v = alloc_f(g->Pp);
    w->grad = alloc_f(g->Pp);
    w->d0 = alloc_f((int64_t)batch * g->maxp);
    w->d1 = alloc_f((int64_t)batch * g->maxp);
    int ok = w->p && w->m && w->v && w->grad && w->d0 && w->d1 && plan_init(&w->plan, g) == 0;
    for (int l = 1; l <= g->L; l++) {
        w->h[l] = alloc_f((int64_t)batch * g->pdims[l]);
        ok = ok && w->h[l];
    }
    return ok ? 0 : -1;
}

static void work_free(work_t *w, const geom_t *g) {
    free(w->p), free(w->m), free(w->v), free(w->grad), free(w->d0), free(w->d1);
    for (int l = 1; l <= g->L; l++) free(w->h[l]);
    plan_free(&w->plan, g);
}

/* Gradient of the mean loss over nb rows x (padded, stride Dp) after `forward`: parameter
 * gradients of the layers with lg[l] set, back-propagated down to layer `first` (the layers
 * below it get nothing; frozen layers above it pass the input gradient through).  With `fuse`
 * (every layer's weights at lw[l] = w->p + pw[l]) each layer's gradient goes straight into its
 * Adam step (adam.h) - after its input gradient, which reads the weights before the step - and
 * lg[l] holds only partial sums of batches longer than one row block. */
static void backward(const geom_t *g, work_t *w, const float *const *lw, float *const *lg,
                     const float *x, int nb, int loss, int first, const hyper_t *hp,
                     const adam_step_t *fuse) {
    int L = g->L, D = g->dims[L], Dp = g->pdims[L];
    float scale = 1.0f / ((float)nb * (float)D);
    float *d = w->d0, *dn = w->d1;
    for (int b = 0; b < nb; b++)
        loss_grad_row(w->h[L] + (int64_t)b * Dp, x + (int64_t)b * Dp, d + (int64_t)b * Dp, D, Dp,
                      loss, scale);
    for (int l = L - 1; l >= first; l--) {
        int I = g->dims[l], Ip = g->pdims[l], Op = g->pdims[l + 1];
        const float *in = l == 0 ? x : w->h[l];
        if (l > first) {
            for (int b = 0; b < nb; b += RB) {
                int R = nb - b < RB ? nb - b : RB;
                DISPATCH(R, bwd_input_block(R_, d + (int64_t)b * Op, Op, lw[l], I, Op,
                                            in + (int64_t)b * Ip, Ip, dn + (int64_t)b * Ip, Ip));
            }
            for (int b = 0; b < nb; b++)
                for (int i = I; i < Ip; i++) dn[(int64_t)b * Ip + i] = 0.0f;
        }
        if (lg[l]) {
            float *gw = lg[l], *gb = lg[l] + (g->pb[l] - g->pw[l]);
            float *p = w->p + g->pw[l], *m = w->m + g->pw[l], *v = w->v + g->pw[l];
            for (int b = 0; b < nb; b += RB) {
                int R = nb - b < RB ? nb - b : RB;
                const float *hb = in + (int64_t)b * Ip, *db = d + (int64_t)b * Op;
                const float *part = b > 0 ? gw : NULL; /* the sums of the earlier row blocks */
                if (fuse && b + RB >= nb) {
                    if (l == 0 && g->t0) {
                        DISPATCH(R, grad_t0_adam_block(R_, hb, Ip, db, Op, g->dims[1], part, p,
                                                       m, v, hp, fuse));
                    } else {
                        DISPATCH(R, grad_adam_block(R_, hb, Ip, db, Op, I, part, p, m, v, hp,
                                                    fuse));
                    }
                } else if (l == 0 && g->t0) {
                    DISPATCH(R, grad_t0_block(R_, hb, Ip, db, Op, g->dims[1], gw, b > 0));
                } else {
                    DISPATCH(R, grad_block(R_, hb, Ip, db, Op, I, gw, b > 0));
                }
            }
            int64_t at = g->pb[l] - g->pw[l];
            for (int k = 0; k < Op; k += VL) {
                vf acc = (vf){0};
                for (int b = 0; b < nb; b++) acc += vload(d + (int64_t)b * Op + k);
                if (fuse)
                    adam_at(p, m, v, at + k, acc, hp, fuse);
                else
                    vstore(gb + k, acc);
            }
        }
        if (l > first) {
            float *t = d;
            d = dn;
            dn = t;
        }
    }
}

/* Adam on the whole padded state with the gradient in w->grad (step counted already). */
static void adam(const geom_t *g, work_t *w, const hyper_t *hp, double lr, double step) {
    adam_step_t a = adam_constants(hp, lr, step);
    adam_n(w->p, w->m, w->v, w->grad, g->Pp, hp, &a);
}

/* one minibatch step of the member in w: all layers trained */
static void train_step(const geom_t *g, work_t *w, const float *x, int nb, const hyper_t *hp,
                       double lr, double step) {
    const float *lw[MAX_LAYERS];
    float *lg[MAX_LAYERS];
    layer_ptrs(g, w->p, lw, 0, g->L);
    for (int l = 0; l < g->L; l++) lg[l] = w->grad + g->pw[l];
    forward(g, lw, x, nb, w->h);
    adam_step_t a = adam_constants(hp, lr, step);
    backward(g, w, lw, lg, x, nb, hp->loss, 0, hp, &a); /* Adam fused, layer by layer */
}

/* one minibatch step of the "selected and random" variant: the member's encoder (layers
 * < enc_layers) against the frozen decoder `dec`, its decoder against the frozen encoder
 * `enc` (both padded, from the pool), then one Adam step of everything */
static void partner_step(const geom_t *g, work_t *w, int enc_layers, const float *enc,
                         const float *dec, const float *x, int nb, const hyper_t *hp, double lr,
                         double step) {
    const float *lw[MAX_LAYERS];
    float *lg[MAX_LAYERS];
    layer_ptrs(g, w->p, lw, 0, enc_layers);
    layer_ptrs(g, dec, lw, enc_layers, g->L);
    for (int l = 0; l < g->L; l++) lg[l] = l < enc_layers ? w->grad + g->pw[l] : NULL;
    forward(g, lw, x, nb, w->h);
    backward(g, w, lw, lg, x, nb, hp->loss, 0, hp, NULL);
    layer_ptrs(g, enc, lw, 0, enc_layers);
    layer_ptrs(g, w->p, lw, enc_layers, g->L);
    for (int l = 0; l < g->L; l++) lg[l] = l < enc_layers ? NULL : w->grad + g->pw[l];
    forward(g, lw, x, nb, w->h);
    backward(g, w, lw, lg, x, nb, hp->loss, enc_layers, hp, NULL);
    adam(g, w, hp, lr, step);
}

/* ---- threads ---------------------------------------------------------------------------- */
typedef struct job job_t;
typedef int (*item_fn)(job_t *, work_t *, int);
struct job {
    const geom_t *g;
    item_fn fn;
    int n_items, next, failed, batch;
    pthread_mutex_t lock;
    /* training */
    float *params, *exp_avg, *exp_avg_sq, *steps;
    const double *lrs;
    const float *rows; /* padded rows */
    int n_rows;
    hyper_t hp;
    int reset_each_step;
    int compact; /* train structurally dead units out of the working copy */
    /* "selected and random": padded pool, partners per step ([s][0][c] decoder, [s][1][c]
     * encoder: pool members), encoder layer count */
    const float *pool;
    const int32_t *picks;
    int enc_layers;
    /* evaluation */
    int chunk;
    double *partial; /* per item */
};

static void *worker(void *arg) {
    job_t *job = (job_t *)arg;
#if defined(__SSE__)
    unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040); /* flush-to-zero + denormals-are-zero */
#endif
    work_t w;
    int ok = work_init(&w, job->g, job->batch) == 0;
    for (;;) {
        pthread_mutex_lock(&job->lock);
        int item = job->next++;
        if (!ok) job->failed = 1;
        pthread_mutex_unlock(&job->lock);
        if (!ok || item >= job->n_items) break;
        if (job->fn(job, &w, item) != 0) {
            pthread_mutex_lock(&job->lock);
            job->failed = 1;
            pthread_mutex_unlock(&job->lock);
        }
    }
    work_free(&w, job->g);
#if defined(__SSE__)
    _mm_setcsr(csr);
#endif
    return NULL;
}

static int run_job(job_t *job, int threads) {
    if (threads > job->n_items) threads = job->n_items;
    if (threads < 1) threads = 1;
    pthread_t tid[64];
    if (threads > 64) threads = 64;
    pthread_mutex_init(&job->lock, NULL);
    job->next = 0;
    job->failed = 0;
    int started = 0;
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&tid[t], NULL, worker, job) != 0) break;
        started = t;
    }
    worker(job); /* the calling thread works too */
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&job->lock);
    return job->failed ? -1 : 0;
}

/* The rows with a padded stride, on a 64-byte boundary (the kernels load whole vectors of a
 * row: a caller's tensor may be a view that starts anywhere). */
static const float *pad_rows(const float *rows, int n, int D, int Dp, float **owned) {
    *owned = NULL;
    if (D == Dp && (uintptr_t)rows % 64 == 0) return rows;
    float *out = alloc_f((int64_t)n * Dp);
    if (!out) return NULL;
    for (int r = 0; r < n; r++) {
        memcpy(out + (int64_t)r * Dp, rows + (int64_t)r * D, sizeof(float) * D);
        memset(out + (int64_t)r * Dp + D, 0, sizeof(float) * (Dp - D));
    }
    *owned = out;
    return out;
}

/* A fresh Adam (torch.optim.Adam built anew): moments 0, step 0. Pruned entries keep their
 * infinite second moment, so they stay frozen. */
static void adam_reset(const geom_t *g, work_t *w) {
    for (int64_t j = 0; j < g->Pp; j++) {
        w->m[j] = 0.0f;
        if (w->v[j] != INFINITY) w->v[j] = 0.0f;
    }
}

static int train_item(job_t *job, work_t *w, int c) {
    const geom_t *g = job->g;
    int64_t off = (int64_t)c * g->P;
    int Dp = g->pdims[0];
    float *params = job->params + off, *exp_avg = job->exp_avg + off,
          *exp_avg_sq = job->exp_avg_sq + off;
    geom_t cg;
    int compact = job->compact && !job->pool && plan_units(g, &w->plan, &cg, exp_avg_sq, 0);
    adam_step_t *lazy_steps = NULL;
    int n_steps = (job->n_rows + job->batch - 1) / job->batch;
    if (compact) {
        plan_lazy(g, &w->plan, exp_avg, exp_avg_sq);
        lazy_steps = (adam_step_t *)malloc(sizeof(adam_step_t) * (size_t)n_steps);
        if (!lazy_steps) return -1;
        gather_in(g, &cg, &w->plan, params, w->p);
        gather_in(g, &cg, &w->plan, exp_avg, w->m);
        gather_in(g, &cg, &w->plan, exp_avg_sq, w->v);
        g = &cg; /* the member trains in the compact geometry */
    } else {
        copy_in(g, params, w->p);
        copy_in(g, exp_avg, w->m);
        copy_in(g, exp_avg_sq, w->v);
    }
    double step = job->steps[c];
    for (int s = 0, k = 0; s < job->n_rows; s += job->batch, k++) {
        int nb = job->n_rows - s < job->batch ? job->n_rows - s : job->batch;
        const float *x = job->rows + (int64_t)s * Dp;
        if (job->reset_each_step) {
            adam_reset(g, w);
            step = 0.0;
        }
        step += 1.0;
        if (lazy_steps) lazy_steps[k] = adam_constants(&job->hp, job->lrs[c], step);
        if (job->pool) {
            const int32_t *pk = job->picks + (int64_t)k * 2 * job->n_items;
            const float *dec = job->pool + (int64_t)pk[c] * g->Pp;
            const float *enc = job->pool + (int64_t)pk[job->n_items + c] * g->Pp;
            partner_step(g, w, job->enc_layers, enc, dec, x, nb, &job->hp, job->lrs[c], step);
        } else {
            train_step(g, w, x, nb, &job->hp, job->lrs[c], step);
        }
    }
    job->steps[c] = (float)step;
    if (compact) {
        g = job->g;
        scatter_out(g, &cg, &w->plan, w->p, params);
        scatter_out(g, &cg, &w->plan, w->m, exp_avg);
        scatter_out(g, &cg, &w->plan, w->v, exp_avg_sq);
        lazy_adam(&w->plan, params, exp_avg, exp_avg_sq, lazy_steps, n_steps, job->reset_each_step,
                  &job->hp);
        free(lazy_steps);
    } else {
        copy_out(g, w->p, params);
        copy_out(g, w->m, exp_avg);
        copy_out(g, w->v, exp_avg_sq);
    }
    return 0;
}

/* One epoch for each of a->n members over the already-shuffled rows, minibatches of
 * a->batch (the last one may be smaller); see evp_train_args in abi.h.  With a->pool the
 * "selected and random" variant runs: a->picks holds, per minibatch, the pool members each
 * member trains against (decoders, then encoders). */
int evp_train_epoch(const evp_train_args *a) {
    geom_t g;
    if (!a || geom_init(&g, a->L, a->dims) != 0 || a->batch < 1 || a->n < 0 || a->n_rows < 0)
        return -1;
    if (a->loss < LOSS_L1 || a->loss > LOSS_BCE) return -1;
    if (a->pool && (a->enc_layers < 1 || a->enc_layers >= a->L || a->n_pool < 1)) return -1;
    if (a->n == 0 || a->n_rows == 0) return 0;
    int batch = a->batch > a->n_rows ? a->n_rows : a->batch; /* never more rows than there are */
    float *pool_pad = NULL;
    if (a->pool) {
        int steps_per_epoch = (a->n_rows + batch - 1) / batch;
        for (int64_t j = 0; j < (int64_t)steps_per_epoch * 2 * a->n; j++)
            if (a->picks[j] < 0 || a->picks[j] >= a->n_pool) return -1;
        pool_pad = alloc_f((int64_t)a->n_pool * g.Pp);
        if (!pool_pad) return -2;
        for (int j = 0; j < a->n_pool; j++)
            copy_in(&g, a->pool + (int64_t)j * g.P, pool_pad + (int64_t)j * g.Pp);
    }
    float *owned;
    const float *padded = pad_rows(a->rows, a->n_rows, a->dims[0], g.pdims[0], &owned);
    if (!padded) {
        free(pool_pad);
        return -2;
    }
    job_t job;
    memset(&job, 0, sizeof(job));
    job.g = &g;
    job.fn = train_item;
    job.n_items = a->n;
    job.batch = batch;
    job.params = a->params;
    job.exp_avg = a->exp_avg;
    job.exp_avg_sq = a->exp_avg_sq;
    job.steps = a->steps;
    job.lrs = a->lrs;
    job.rows = padded;
    job.n_rows = a->n_rows;
    job.hp = (hyper_t){a->b1, a->b2, a->eps, a->loss};
    job.reset_each_step = a->reset_each_step != 0;
    job.compact = a->compact != 0;
    job.pool = pool_pad;
    job.picks = a->picks;
    job.enc_layers = a->enc_layers;
    int rc = run_job(&job, a->threads);
    free(owned);
    free(pool_pad);
    return rc == 0 ? 0 : -2;
}

/* ---- evaluation: sum of |sigmoid(logits) - x| per member, in double -------------------- */
static int l1_item(job_t *job, work_t *w, int item) {
    const geom_t *g = job->g;
    int chunks = (job->n_rows + job->chunk - 1) / job->chunk;
    int c = item / chunks, first = (item % chunks) * job->chunk;
    int last = first + job->chunk < job->n_rows ? first + job->chunk : job->n_rows;
    int L = g->L, D = g->dims[L], Dp = g->pdims[0];
    const float *params = job->params + (int64_t)c * g->P;
    geom_t cg; /* units that output 0 on every row leave the copy: the same sums, exactly */
    if (plan_units(g, &w->plan, &cg, params, 1)) {
        gather_in(g, &cg, &w->plan, params, w->p);
        g = &cg;
    } else {
        copy_in(g, params, w->p);
    }
    const float *lw[MAX_LAYERS];
    layer_ptrs(g, w->p, lw, 0, L);
    double total = 0.0;
    for (int s = first; s < last; s += job->batch) {
        int nb = last - s < job->batch ? last - s : job->batch;
        const float *x = job->rows + (int64_t)s * Dp;
        forward(g, lw, x, nb, w->h);
        for (int b = 0; b < nb; b++)
            total += abs_error_row(w->h[L] + (int64_t)b * Dp, x + (int64_t)b * Dp, D);
    }
    job->partial[item] = total;
    return 0;
}

/* a->out[c] = mean |sigmoid(net_c(x)) - x| over all rows and features, for each member. */
int evp_l1(const evp_l1_args *a) {
    geom_t g;
    if (!a || geom_init(&g, a->L, a->dims) != 0 || a->n < 0 || a->n_rows < 1 ||
        a->dims[0] != a->dims[a->L])
        return -1;
    if (a->n == 0) return 0;
    float *owned;
    const float *padded = pad_rows(a->rows, a->n_rows, a->dims[0], g.pdims[0], &owned);
    if (!padded) return -2;
    job_t job;
    memset(&job, 0, sizeof(job));
    job.g = &g;
    job.fn = l1_item;
    job.batch = 4 * RB; /* rows per forward: each weight read from cache once per 4 blocks */
    job.chunk = 256;
    int chunks = (a->n_rows + job.chunk - 1) / job.chunk;
    job.n_items = a->n * chunks;
    job.params = (float *)a->params; /* read only: l1_item copies members out */
    job.rows = padded;
    job.n_rows = a->n_rows;
    job.partial = (double *)calloc((size_t)job.n_items, sizeof(double));
    int rc = job.partial ? run_job(&job, a->threads) : -1;
    if (rc == 0)
        for (int c = 0; c < a->n; c++) {
            double s = 0.0;
            for (int k = 0; k < chunks; k++) s += job.partial[c * chunks + k];
            a->out[c] = s / ((double)a->n_rows * a->dims[0]);
        }
    free(job.partial);
    free(owned);
    return rc == 0 ? 0 : -2;
}

int evp_vector_width(void) { return VL; }

/* ---- the boundary's constants, for the loader's check (see abi.h) ----------------------- */
#define FIELD(S, f) {#S "." #f, (int64_t)offsetof(S, f)}
static const struct {
    const char *key;
    int64_t value;
} abi_table[] = {
    {"version", EVP_ABI_VERSION},
    {"max_layers", MAX_LAYERS},
    {"vector_width", VL},
    {"loss.l1", LOSS_L1},
    {"loss.mse", LOSS_MSE},
    {"loss.bce", LOSS_BCE},
    {"sizeof.evp_train_args", (int64_t)sizeof(evp_train_args)},
    FIELD(evp_train_args, n),
    FIELD(evp_train_args, L),
    FIELD(evp_train_args, dims),
    FIELD(evp_train_args, params),
    FIELD(evp_train_args, exp_avg),
    FIELD(evp_train_args, exp_avg_sq),
    FIELD(evp_train_args, steps),
    FIELD(evp_train_args, lrs),
    FIELD(evp_train_args, rows),
    FIELD(evp_train_args, n_rows),
    FIELD(evp_train_args, batch),
    FIELD(evp_train_args, loss),
    FIELD(evp_train_args, threads),
    FIELD(evp_train_args, b1),
    FIELD(evp_train_args, b2),
    FIELD(evp_train_args, eps),
    FIELD(evp_train_args, reset_each_step),
    FIELD(evp_train_args, pool),
    FIELD(evp_train_args, picks),
    FIELD(evp_train_args, n_pool),
    FIELD(evp_train_args, enc_layers),
    FIELD(evp_train_args, compact),
    {"sizeof.evp_l1_args", (int64_t)sizeof(evp_l1_args)},
    FIELD(evp_l1_args, n),
    FIELD(evp_l1_args, L),
    FIELD(evp_l1_args, dims),
    FIELD(evp_l1_args, params),
    FIELD(evp_l1_args, rows),
    FIELD(evp_l1_args, n_rows),
    FIELD(evp_l1_args, threads),
    FIELD(evp_l1_args, out),
};

/* The value of a shared constant, a struct's size ("sizeof.<struct>") or a field's offset
 * ("<struct>.<field>"); -1 for an unknown key. */
int64_t evp_abi(const char *key) {
    for (size_t i = 0; i < sizeof(abi_table) / sizeof(abi_table[0]); i++)
        if (strcmp(abi_table[i].key, key) == 0) return abi_table[i].value;
    return -1;
}
