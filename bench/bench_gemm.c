/* Matrix-product kernels alone, on one thread, at the shapes of Depth
 * Anything V2 ViT-S (518x686 input: 1814 tokens, width 384, MLP 1536, 6 heads
 * of 64): GFLOP/s per shape and operand layout, in this thread's CPU time
 * (median of the runs), for each kernel family the CPU has; then the DPT
 * head's 3x3 convolutions (implicit GEMM, ReLU'd input).
 *
 *   cmake --build build --target bench_gemm && ./build/bench/bench_gemm [runs] [part]
 *
 * part: gemm, attention or conv (default: all three). */
#include "bench_common.h"
#include "ops/gemm.h"
#include "ops/tensor_ops.h"
#include "ops/transformer_ops.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STR(x) #x
#define XSTR(x) STR(x)

typedef struct {
    const char *name;
    int M, N, K;
} shape;

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    const char *part = argc > 2 ? argv[2] : "";
    bool all = !*part, do_gemm = all || !strcmp(part, "gemm");
    bool do_attn = all || !strcmp(part, "attention"), do_conv = all || !strcmp(part, "conv");
    if (runs < 1)
        runs = 1;
    const shape shapes[] = {
        {"qkv   T x 1152 x 384", 1814, 1152, 384},  {"proj  T x 384 x 384", 1814, 384, 384},
        {"fc1   T x 1536 x 384", 1814, 1536, 384},  {"fc2   T x 384 x 1536", 1814, 384, 1536},
        /* one block of query rows, as md_attention_rows multiplies them */
        {"q k^T " XSTR(MD_ATTENTION_BLOCK) " x T x 64", MD_ATTENTION_BLOCK, 1814, 64},
        {"p v   " XSTR(MD_ATTENTION_BLOCK) " x 64 x T", MD_ATTENTION_BLOCK, 64, 1814},
    };
    int ns = (int)(sizeof shapes / sizeof shapes[0]);
    size_t maxa = 0, maxb = 0, maxc = 0;
    for (int s = 0; s < ns; s++) {
        size_t a = (size_t)shapes[s].M * shapes[s].K, b = (size_t)shapes[s].K * shapes[s].N,
               c = (size_t)shapes[s].M * shapes[s].N;
        maxa = a > maxa ? a : maxa;
        maxb = b > maxb ? b : maxb;
        maxc = c > maxc ? c : maxc;
    }
    float *A = bench_alloc(maxa * 4), *B = bench_alloc(maxb * 4), *C = bench_alloc(maxc * 4);
    uint16_t *A16 = bench_alloc(maxa * 2);
    float *bias = calloc(4096, 4);
    double *t = malloc(sizeof(double) * (size_t)runs);
    if (!A || !B || !C || !A16 || !bias || !t)
        return 1;
    for (size_t i = 0; i < maxa; i++)
        A[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    for (size_t i = 0; i < maxb; i++)
        B[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
    md_gemm_isa isas[2] = {md_gemm_isa_best(MD_GEMM_F32), md_gemm_isa_best(MD_GEMM_BF16)};
    for (int ii = 0; ii < 2 && do_gemm; ii++) {
        md_gemm_isa isa = isas[ii];
        md_gemm_type type = md_gemm_isa_type(isa);
        printf("%s (%s), 1 thread, GFLOP/s in thread CPU time, median of %d\n",
               type == MD_GEMM_BF16 ? "bf16" : "fp32", md_gemm_isa_name(isa), runs);
        for (int s = 0; s < ns; s++) {
            const shape *sh = &shapes[s];
            md_gemm_packed pb;
            /* weights: B stored as N x K (a linear layer's W), packed once */
            if (!md_gemm_pack_b(&pb, type, B, (size_t)sh->K, true, sh->K, sh->N))
                return 1;
            md_gemm_operand a = md_gemm_direct(A, (size_t)sh->K);
            if (type == MD_GEMM_BF16) {
                md_f32_to_bf16(A, A16, (size_t)sh->M * sh->K);
                a = md_gemm_direct(A16, (size_t)sh->K);
            }
            md_gemm_epilogue e = md_gemm_epilogue_none();
            e.bias_col = bias;
            for (int r = -1; r < runs; r++) {
                double t0 = bench_cpu_now();
                md_gemm_block(isa, sh->M, sh->N, sh->K, 1.0f, a, md_gemm_prepacked(&pb), C,
                              (size_t)sh->N, &e, 0, sh->M, 0, sh->N);
                if (r >= 0)
                    t[r] = bench_cpu_now() - t0;
            }
            qsort(t, (size_t)runs, sizeof(double), bench_cmp_double);
            double fl = 2.0 * sh->M * sh->N * sh->K;
            printf("  %-22s direct A: %7.1f GFLOP/s (%.3f ms)\n", sh->name, fl / t[runs / 2] * 1e-9,
                   t[runs / 2] * 1e3);
            md_gemm_packed_free(&pb);
        }
    }
    /* one head of attention over every query row (packing, both products,
     * softmax), at 1814 tokens of 6 heads of 64 */
    if (do_attn) {
        enum { T = 1814, H = 6, D = 64 };
        float *qkv = bench_alloc(sizeof(float) * T * 3 * H * D);
        float *out = bench_alloc(sizeof(float) * T * H * D);
        uint16_t *qkv16 = bench_alloc(sizeof(uint16_t) * T * 3 * H * D);
        uint16_t *out16 = bench_alloc(sizeof(uint16_t) * T * H * D);
        if (!qkv || !out || !qkv16 || !out16)
            return 1;
        for (size_t i = 0; i < (size_t)T * 3 * H * D; i++)
            qkv[i] = (float)((i * 7919) % 1000) / 250.0f - 2.0f;
        md_f32_to_bf16(qkv, qkv16, (size_t)T * 3 * H * D);
        for (int ii = 0; ii < 2; ii++) {
            md_gemm_type type = md_gemm_isa_type(isas[ii]);
            bool bf = type == MD_GEMM_BF16;
            void *kv = aligned_alloc(64, (md_attention_kv_bytes(type, T, D) + 63) / 64 * 64);
            void *scr = aligned_alloc(64, md_attention_scratch_bytes(type, T, D));
            if (!kv || !scr)
                return 1;
            for (int r = -1; r < runs; r++) {
                double t0 = bench_cpu_now();
                md_attention_pack_kv(type, qkv, bf ? qkv16 : NULL, T, H, D, 0, kv);
                md_attention_rows(type, qkv, bf ? qkv16 : NULL, kv, T, H, D, 0, 0, T, out,
                                  bf ? out16 : NULL, scr);
                if (r >= 0)
                    t[r] = bench_cpu_now() - t0;
            }
            qsort(t, (size_t)runs, sizeof(double), bench_cmp_double);
            double fl = 4.0 * T * T * D;
            printf("attention, one head of 64, %d tokens, %s: %7.1f GFLOP/s (%.3f ms)\n", T,
                   bf ? "bf16" : "fp32", fl / t[runs / 2] * 1e-9, t[runs / 2] * 1e3);
            free(kv);
            free(scr);
        }
        free(qkv);
        free(out);
        free(qkv16);
        free(out16);
    }

    /* 3x3 convolutions, pad 1, input ReLU'd as the head's residual units read it */
    const struct {
        const char *name;
        int cin, cout, h, w;
    } convs[] = {{"rcu   64->64 148x196", 64, 64, 148, 196},
                 {"out1  64->32 296x392", 64, 32, 296, 392},
                 {"out2  32->32 518x686", 32, 32, 518, 686}};
    /* fp32 direct, fp32 Winograd F(4x4, 3x3) (GFLOP/s of the direct sum), bf16 direct */
    for (int ii = 0; ii < 3 && do_conv; ii++) {
        md_gemm_type type = md_gemm_isa_type(isas[ii == 2]);
        md_conv_algo algo = ii == 1 ? MD_CONV_FAST : MD_CONV_DIRECT;
        printf("conv 3x3 %s%s, 1 thread\n", type == MD_GEMM_BF16 ? "bf16" : "fp32",
               algo == MD_CONV_FAST ? " Winograd (direct-equivalent GFLOP/s)" : "");
        for (int s = 0; s < 3; s++) {
            md_conv2d_params p = {convs[s].cin, convs[s].cout, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
            size_t nin = (size_t)p.in_channels * convs[s].h * convs[s].w;
            size_t nout = (size_t)p.out_channels * convs[s].h * convs[s].w;
            float *w = malloc(sizeof(float) * (size_t)p.out_channels * p.in_channels * 9);
            float *in = bench_alloc(sizeof(float) * nin), *out = bench_alloc(sizeof(float) * nout);
            md_conv c;
            if (!w || !in || !out)
                return 1;
            for (size_t i = 0; i < (size_t)p.out_channels * p.in_channels * 9; i++)
                w[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
            for (size_t i = 0; i < nin; i++)
                in[i] = (float)((i * 104729) % 1000) / 1000.0f - 0.5f;
            if (!md_conv_init(&c, &p, type, algo, w, bias))
                return 1;
            md_conv_src src = {in, convs[s].h, convs[s].w, true, 0, 0};
            md_conv_dst dst = md_conv_to(out, -INFINITY, INFINITY);
            for (int r = -1; r < runs; r++) {
                double t0 = bench_cpu_now();
                if (!md_conv_forward(&c, NULL, &src, &dst, NULL))
                    return 1;
                if (r >= 0)
                    t[r] = bench_cpu_now() - t0;
            }
            qsort(t, (size_t)runs, sizeof(double), bench_cmp_double);
            double fl = 2.0 * p.out_channels * p.in_channels * 9 * convs[s].h * convs[s].w;
            printf("  %-22s %7.1f GFLOP/s (%.3f ms)\n", convs[s].name, fl / t[runs / 2] * 1e-9,
                   t[runs / 2] * 1e3);
            md_conv_free(&c);
            free(w);
            free(in);
            free(out);
        }
    }
    if (do_gemm) /* keeps the products from being optimised away */
        printf("checksum %g\n", (double)C[0]);
    free(A);
    free(B);
    free(C);
    free(A16);
    free(bias);
    free(t);
    return 0;
}
