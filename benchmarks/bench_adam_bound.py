"""What bounds a training step of the C kernels on this CPU: the divider's share; prints JSON.

Adam needs a square root and a division per weight and minibatch (torch's formulation, exact
IEEE operations on CPUs without AVX-512; see docs/performance.md). This script compiles a small
C program against the kernels' own headers (``evoprune_core/native``, the kernels' flags) and
times, on one thread with denormals flushed:

- the clock (a chain of dependent integer adds: one per cycle);
- the divider: ``m / (sqrt(v) c + eps)`` over vectors in L1 (cycles per SIMD vector);
- the square root and the division alone, each and together (cycles per SIMD vector);
- the kernels' fused weight gradient + Adam block (``grad_adam_block``, batch 5) on the
  standard network's two wide layers (30 x 1000 and 1000 x 30, padded), and on the first a
  copy of its loop with other Adam arithmetic: without the square root and the division, and
  with the square root from the reciprocal-square-root estimate and a Newton step (AVX2: on
  every vector, and on every other vector);
- that copy, exact and without the divider, on 8, 30 and 300 rows of a 1000-wide layer (94,
  352 and 3,516 KiB of weights and moments: from a core's L2 to L3), to show whether the
  state's traffic bounds the block (``state_size_cycles_per_vector``);
- one training step of the standard network (1000-30-10-30-1000, batch 5): ``forward`` and
  ``backward`` (Adam fused), microseconds.

On AVX-512 CPUs the kernels' Adam uses estimates instead of the divider (``"adam"`` in the
output says which), so the floor below applies to the other instruction sets. From these it
derives ``divider_floor_share``: the divider's minimum time for every weight of a
step over the measured step time, and ``block_cycles_over_floor``: how far the fused block is
from the divider's floor. Minimum over ``--repeats`` rounds (noise only adds time).

    python benchmarks/bench_adam_bound.py [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path

from evoprune_core import native

_C = r"""
#include "kernels.c"
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static float *filled(int64_t n, float lo, float step, int mod) {
    float *p = alloc_f(n);
    for (int64_t j = 0; j < n; j++) p[j] = lo + step * (float)(j % mod);
    return p;
}

#if defined(__AVX512F__)
INLINE vf exact_sqrt(vf x) { return (vf)_mm512_sqrt_ps((__m512)x); }
#else
INLINE vf exact_sqrt(vf x) { return vsqrt(x); }
#endif

/* the divider's operations alone (mode 0: square root and division, 1: square root, 2: division) */
__attribute__((noinline)) static void divider(float *out, const float *m, const float *v, int n,
                                              float c, float eps, int mode) {
    for (int j = 0; j < n; j += VL) {
        vf mv = vload(m + j), vv = vload(v + j);
        vstore(out + j, mode == 0   ? mv / (exact_sqrt(vv) * c + eps)
                        : mode == 1 ? exact_sqrt(vv) * c + eps
                                    : mv / (vv * c + eps));
    }
}

#if defined(__AVX__) && !defined(__AVX512F__)
/* sqrt(v) from the reciprocal-square-root estimate and one Newton step (0 at v = 0) */
INLINE vf sqrt_estimate(vf v) {
    vf y = (vf)_mm256_rsqrt_ps(_mm256_max_ps((__m256)v, _mm256_set1_ps(1e-30f)));
    vf s = v * y;
    return s + s * (0.5f - s * (0.5f * y));
}
#else
INLINE vf sqrt_estimate(vf v) { return exact_sqrt(v); }
#endif

/* grad_adam_block's loop with another Adam step: mode 1 without the square root and the
 * division (the rest of the arithmetic kept), 2 the square root estimated on every vector, 3 on
 * every other vector; the variants are timed, not used */
__attribute__((noinline)) static void variant(const float *h, const float *d, int Op, int I,
                                              float *p, float *m, float *v, const hyper_t *hp,
                                              const adam_step_t *a, int mode) {
    const float b1 = hp->b1, b2 = hp->b2, eps = hp->eps, c = a->bc2_rsqrt, st = a->step_size;
    for (int i = 0; i < I; i++) {
        vf x[5];
        for (int r = 0; r < 5; r++) x[r] = vsplat(h[r * 1000 + i]);
        for (int k = 0; k < Op; k += VL) {
            int64_t at = (int64_t)i * Op + k;
            vf g = (vf){0};
            for (int r = 0; r < 5; r++) g += x[r] * vload(d + r * Op + k);
            vf mj = b1 * vload(m + at) + (1.0f - b1) * g;
            vf vj = b2 * vload(v + at) + (1.0f - b2) * g * g;
            vstore(m + at, mj);
            vstore(v + at, vj);
            vf upd;
            if (mode == 1)
                upd = st * mj * (vj * c + eps);
            else if (mode == 2 || (mode == 3 && (k / VL) % 2))
                upd = st * mj / (sqrt_estimate(vj) * c + eps);
            else
                upd = st * mj / (exact_sqrt(vj) * c + eps);
            vstore(p + at, vload(p + at) - upd);
        }
    }
}

__attribute__((noinline)) static void block(const float *h, const float *d, int Op, int I,
                                            float *p, float *m, float *v, const hyper_t *hp,
                                            const adam_step_t *a) {
    grad_adam_block(5, h, 1000, d, Op, I, NULL, p, m, v, hp, a);
}

int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 15;
    _mm_setcsr(_mm_getcsr() | 0x8040);
    double ghz = 0;
    for (int r = 0; r < 5; r++) { /* 4 dependent adds per iteration: one cycle each */
        long n = 200000000, x = 0;
        double t = now();
        for (long i = 0; i < n; i++)
            __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
        double g = 4.0 * n / (now() - t) / 1e9;
        if (g > ghz) ghz = g;
    }
    /* the divider alone, data in L1 */
    int nd = 2048;
    float *o = alloc_f(nd), *m = filled(nd, 1e-3f, 1e-5f, 97), *v = filled(nd, 1e-6f, 1e-8f, 89);
    double best_div[3] = {1e30, 1e30, 1e30};
    for (int r = 0; r < repeats; r++)
        for (int mode = 0; mode < 3; mode++) {
            double t = now();
            for (int k = 0; k < 2000; k++) divider(o, m, v, nd, 1.3f, 1e-8f, mode);
            t = (now() - t) / (2000.0 * nd / VL);
            if (t < best_div[mode]) best_div[mode] = t;
        }
    /* the fused gradient + Adam block on the two wide layers */
    hyper_t hp = {0.5f, 0.999f, 1e-8f, LOSS_BCE};
    adam_step_t a = adam_constants(&hp, 1e-3, 50.0);
    int shapes[2][2] = {{30, pad(1000)}, {1000, pad(30)}};
    double best_block[2] = {1e30, 1e30}, best_var[4] = {1e30, 1e30, 1e30, 1e30};
    float *h = filled(5 * 1000, 0.0f, 0.01f, 13), *d = filled(5 * 1024, -3e-3f, 1e-3f, 7);
    for (int s = 0; s < 2; s++) {
        int I = shapes[s][0], Op = shapes[s][1];
        int64_t n = (int64_t)I * Op;
        float *p = filled(n, -0.1f, 1e-3f, 201), *pm = filled(n, 0.0f, 1e-5f, 5),
              *pv = filled(n, 1e-6f, 1e-7f, 11);
        for (int r = 0; r < repeats; r++) {
            double t = now();
            for (int k = 0; k < 200; k++) block(h, d, Op, I, p, pm, pv, &hp, &a);
            t = (now() - t) / (200.0 * n / VL);
            if (t < best_block[s]) best_block[s] = t;
            for (int mode = 0; mode < 4 && s == 0; mode++) { /* the 30 x 1000 layer */
                t = now();
                for (int k = 0; k < 200; k++) variant(h, d, Op, I, p, pm, pv, &hp, &a, mode);
                t = (now() - t) / (200.0 * n / VL);
                if (t < best_var[mode]) best_var[mode] = t;
            }
        }
        free(p), free(pm), free(pv);
    }
    /* the block's loop (exact, and without the divider) as the state grows from L1/L2-sized
     * to L3-sized: I rows of a 1000-wide layer, 12 bytes of state (p, m, v) per weight; the
     * 30-row layer is the one timed above (modes 0 and 1) */
    int rows_of[3] = {8, 30, 300};
    double best_size[3][2] = {{1e30, 1e30}, {best_var[0], best_var[1]}, {1e30, 1e30}};
    for (int s = 0; s < 3; s += 2) {
        int I = rows_of[s], Op = pad(1000);
        int64_t n = (int64_t)I * Op;
        float *p = filled(n, -0.1f, 1e-3f, 201), *pm = filled(n, 0.0f, 1e-5f, 5),
              *pv = filled(n, 1e-6f, 1e-7f, 11);
        int reps = (int)(6000000 / n) + 1;
        for (int r = 0; r < repeats; r++)
            for (int mode = 0; mode < 2; mode++) {
                double t = now();
                for (int k = 0; k < reps; k++) variant(h, d, Op, I, p, pm, pv, &hp, &a, mode);
                t = (now() - t) / ((double)reps * n / VL);
                if (t < best_size[s][mode]) best_size[s][mode] = t;
            }
        free(p), free(pm), free(pv);
    }
    /* one training step of the standard network */
    int dims[5] = {1000, 30, 10, 30, 1000};
    geom_t g;
    geom_init(&g, 4, dims);
    work_t w;
    work_init(&w, &g, 5);
    float *src = filled(g.P, -0.1f, 1e-4f, 2001);
    copy_in(&g, src, w.p);
    memset(w.m, 0, sizeof(float) * g.Pp);
    memset(w.v, 0, sizeof(float) * g.Pp);
    float *x = alloc_f(1000 * 1000);
    unsigned s = 1;
    for (int j = 0; j < 1000 * 1000; j++) {
        s = s * 1103515245u + 12345u;
        x[j] = (float)((s >> 16) % 2);
    }
    double best_f = 1e30, best_b = 1e30, step = 0;
    const float *lw[MAX_LAYERS];
    float *lg[MAX_LAYERS];
    for (int r = 0; r <= repeats; r++) {
        double tf = 0, tb = 0;
        for (int b = 0; b < 1000; b += 5) {
            step += 1;
            layer_ptrs(&g, w.p, lw, 0, g.L);
            for (int l = 0; l < g.L; l++) lg[l] = w.grad + g.pw[l];
            double t0 = now();
            forward(&g, lw, x + (int64_t)b * 1000, 5, w.h);
            double t1 = now();
            adam_step_t as = adam_constants(&hp, 1e-3, step);
            backward(&g, &w, lw, lg, x + (int64_t)b * 1000, 5, hp.loss, 0, &hp, &as);
            tf += t1 - t0, tb += now() - t1;
        }
        if (r > 0 && tf + tb < best_f + best_b) best_f = tf, best_b = tb; /* round 0 warms up */
    }
    printf("%d %.6g %.6g %.6g %.6g %.6g %.6g %lld %.6g %.6g %.6g %.6g %.6g %.6g %.6g\n", VL, ghz,
           best_div[0], best_block[0], best_block[1], best_f / 200, best_b / 200, (long long)g.Pp,
           w.p[123], best_div[1], best_div[2], best_var[0], best_var[1], best_var[2], best_var[3]);
    for (int s = 0; s < 3; s++)
        printf("%d %lld %.6g %.6g\n", rows_of[s], (long long)rows_of[s] * pad(1000) * 12,
               best_size[s][0], best_size[s][1]);
    return 0;
}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    src = Path(native.SOURCE).parent
    with tempfile.TemporaryDirectory(prefix="bench-adam-") as tmp:
        c_file, exe = Path(tmp) / "bound.c", Path(tmp) / "bound"
        c_file.write_text(_C, encoding="utf-8")
        flags = [f for f in native.FLAGS if f not in ("-fPIC", "-shared")]
        cc = os.environ.get("CC", "cc")
        cmd = [cc, *flags, "-march=native", "-I", str(src), str(c_file), "-o", str(exe), "-lm"]
        subprocess.run(cmd, check=True)
        got = subprocess.run([str(exe), str(args.repeats)], capture_output=True, text=True)
        got.check_returncode()
    first, *sizes = got.stdout.splitlines()
    lanes, ghz, div_s, blk3_s, blk0_s, fwd_s, bwd_s, padded, _, *more = first.split()
    vl, ghz_f, padded_n = int(lanes), float(ghz), int(padded)
    names = ("div", "l3", "l0", "sqrt", "division", "copy", "no_divider", "estimate", "estimate/2")
    cyc = {
        k: float(v) * ghz_f * 1e9
        for k, v in zip(names, (div_s, blk3_s, blk0_s, *more), strict=True)
    }
    step = float(fwd_s) + float(bwd_s)
    floor = padded_n / vl * cyc["div"] / (ghz_f * 1e9)  # the divider, every weight, one step
    out = {
        "benchmark": "adam_bound",
        "lanes": vl,
        "adam": "estimates (AVX-512)" if vl == 16 else "square root and division",
        "ghz": round(ghz_f, 2),
        "divider_cycles_per_vector": round(cyc["div"], 2),
        "sqrt_cycles_per_vector": round(cyc["sqrt"], 2),
        "division_cycles_per_vector": round(cyc["division"], 2),
        "grad_adam_cycles_per_vector": {
            "30x1000": round(cyc["l3"], 2),
            "1000x30": round(cyc["l0"], 2),
        },
        "block_cycles_over_floor": round((cyc["l3"] + cyc["l0"]) / 2 / cyc["div"], 2),
        "variant_cycles_per_vector_30x1000": {
            "exact (a copy of the loop)": round(cyc["copy"], 2),
            "no square root or division": round(cyc["no_divider"], 2),
            "square root estimated": round(cyc["estimate"], 2),
            "square root estimated on every other vector": round(cyc["estimate/2"], 2),
        },
        "state_size_cycles_per_vector": {
            f"{int(rows)} x 1000, {int(size) / 1024:.0f} KiB": {
                "exact": round(float(ex) * ghz_f * 1e9, 2),
                "no square root or division": round(float(nd) * ghz_f * 1e9, 2),
            }
            for rows, size, ex, nd in (line.split() for line in sizes)
        },
        "step_us": {
            "forward": round(float(fwd_s) * 1e6, 2),
            "backward": round(float(bwd_s) * 1e6, 2),
        },
        "divider_floor_us_per_step": round(floor * 1e6, 2),
        "divider_floor_share": round(floor / step, 3),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
