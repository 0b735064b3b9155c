/* The C side of the boundary with native/__init__.py: the argument structs of the exported
 * kernels and the constants both sides share.  The Python loader mirrors these structs as
 * ctypes.Structure classes and, when the library loads, compares every constant, every
 * struct's size and every field's offset with what it expects (evp_abi_* below); a mismatch
 * refuses the library instead of passing garbage.  Bump EVP_ABI_VERSION with any change. */
#ifndef EVOPRUNE_ABI_H
#define EVOPRUNE_ABI_H

#include <stddef.h>
#include <stdint.h>

#define EVP_ABI_VERSION 2
#define MAX_LAYERS 32 /* affine layers of a network (encoder + decoder) */
enum { LOSS_L1 = 0, LOSS_MSE = 1, LOSS_BCE = 2 };

/* One training epoch of n members (evp_train_epoch). */
typedef struct {
    int32_t n;                /* members */
    int32_t L;                /* layers; dims has L + 1 widths, input first */
    const int32_t *dims;
    float *params;            /* (n, P) each, row-major, updated in place */
    float *exp_avg;
    float *exp_avg_sq;
    float *steps;             /* (n,) Adam step counts */
    const double *lrs;        /* (n,) learning rates */
    const float *rows;        /* (n_rows, dims[0]), already in epoch order */
    int32_t n_rows;
    int32_t batch;            /* minibatch rows (the last one may be smaller) */
    int32_t loss;             /* LOSS_* */
    int32_t threads;
    float b1, b2, eps;        /* Adam */
    int32_t reset_each_step;  /* 1: a fresh Adam before every minibatch (alive entries) */
    const float *pool;        /* "selected and random": (n_pool, P) partner params, or NULL */
    const int32_t *picks;     /* (steps, 2, n) pool members per minibatch */
    int32_t n_pool;
    int32_t enc_layers;       /* layers of the encoder */
    int32_t compact;          /* 1: structurally dead hidden units leave the working copy */
} evp_train_args;

/* Mean L1 reconstruction error of n members (evp_l1). */
typedef struct {
    int32_t n;
    int32_t L;
    const int32_t *dims;
    const float *params;      /* (n, P) */
    const float *rows;        /* (n_rows, dims[0]) */
    int32_t n_rows;
    int32_t threads;
    double *out;              /* (n,) */
} evp_l1_args;

#endif /* EVOPRUNE_ABI_H */
