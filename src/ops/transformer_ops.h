/* Vision-transformer kernels on row-major token matrices [tokens, dim]:
 * LayerNorm, exact (erf) GELU and multi-head self-attention computed one head
 * and one block of query rows at a time on the GEMM engine (gemm.h). */
#ifndef MD_TRANSFORMER_OPS_H
#define MD_TRANSFORMER_OPS_H

#include "ops/gemm.h"

#include <stddef.h>
#include <stdint.h>

/* out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta, per row of `dim`
 * values (mean and variance summed in double); out may alias x. With out16,
 * the rows go there as bf16 (row stride dim) instead, and out is unused. */
void md_layernorm(const float *x, int rows, int dim, const float *gamma, const float *beta,
                  float eps, float *out, uint16_t *out16);

/* x = 0.5 x (1 + erf(x / sqrt 2)), in place (max abs error of erf ~2e-7). */
void md_gelu_erf(float *x, size_t n);

/* Query rows handled per score block by md_attention_rows: three register
 * tiles of 12. At ViT-S's 1,814 tokens a block's scores (float32, plus bf16
 * probabilities) and one head's packed K and V then fit a 1 MB L2 together
 * (96 rows did not): measured 2.1 % (fp32) and 2.6 % (bf16) faster for
 * Depth Anything V2 on one thread, 0.8-1.2 % on two (paired runs, Turin VM). */
#define MD_ATTENTION_BLOCK 36

/* Bytes md_attention_pack_kv writes for one head, and of md_attention_rows'
 * scratch, for float32 or bf16 products. */
size_t md_attention_kv_bytes(md_gemm_type type, int tokens, int head_dim);
size_t md_attention_scratch_bytes(md_gemm_type type, int tokens, int head_dim);
/* Packs one head's keys and values of qkv [tokens, 3*heads*head_dim] (laid
 * out q | k | v, each split into heads of head_dim columns) as the GEMM's B
 * operands of Q K^T and P V, once per head and layer, for every query block
 * (bf16: from qkv_bf16, qkv rounded to bf16, when given and head_dim is
 * even, q's bf16 pairs being whole; qkv is then not read). */
void md_attention_pack_kv(md_gemm_type type, const float *qkv, const uint16_t *qkv_bf16,
                          int tokens, int heads, int head_dim, int head, void *kv);

/* One head's attention softmax(q k^T / sqrt(head_dim)) v for query rows
 * [r0, r1): writes those rows of the head's columns of out [tokens,
 * heads*head_dim]. kv from md_attention_pack_kv; scratch holds
 * md_attention_scratch_bytes (the score matrix is built one block of rows at
 * a time, kept in cache). bf16: q from qkv_bf16 (qkv rounded to bf16) when
 * given and head_dim is even (qkv is then not read); the softmax runs in float32 and its
 * probabilities are rounded to bf16 for the product with v. With out16, the
 * rows go there as bf16 instead (same layout; out then only holds partial
 * sums when the tokens run in K blocks, and must still be given). */
void md_attention_rows(md_gemm_type type, const float *qkv, const uint16_t *qkv_bf16,
                       const void *kv, int tokens, int heads, int head_dim, int head, int r0,
                       int r1, float *out, uint16_t *out16, void *scratch);

#endif
