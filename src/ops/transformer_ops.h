/* Vision-transformer kernels on row-major token matrices [tokens, dim]:
 * LayerNorm, exact (erf) GELU, row softmax and multi-head self-attention
 * computed one head at a time. */
#ifndef MD_TRANSFORMER_OPS_H
#define MD_TRANSFORMER_OPS_H

#include <stddef.h>

/* out[r] = (x[r] - mean) / sqrt(var + eps) * gamma + beta, per row of `dim`
 * values; out may alias x. */
void md_layernorm(const float *x, int rows, int dim, const float *gamma, const float *beta,
                  float eps, float *out);

/* x = 0.5 x (1 + erf(x / sqrt 2)), in place (max abs error of erf ~2e-7). */
void md_gelu_erf(float *x, size_t n);

/* e^x for each element, in place (relative error ~2e-7; x below -87 gives 0). */
void md_exp_inplace(float *x, size_t n);

/* Softmax of each row of `cols` values, in place. */
void md_softmax_rows(float *x, int rows, int cols);

/* Query rows handled per score block by md_attention_rows. */
#define MD_ATTENTION_BLOCK 128

/* One head's attention for query rows [r0, r1): writes those rows of the
 * head's columns of out. scores needs MD_ATTENTION_BLOCK * tokens floats
 * (the score matrix is built one block of rows at a time, kept in cache). */
void md_attention_rows(const float *qkv, int tokens, int heads, int head_dim, int head, int r0,
                       int r1, float *out, float *scores);

/* Self-attention over qkv [tokens, 3*heads*head_dim] laid out as q | k | v,
 * each split into heads of head_dim columns: out [tokens, heads*head_dim]
 * = concat_h softmax(q_h k_h^T / sqrt(head_dim)) v_h. scores needs
 * MD_ATTENTION_BLOCK * tokens floats. */
void md_attention(const float *qkv, int tokens, int heads, int head_dim, float *out,
                  float *scores);

#endif
