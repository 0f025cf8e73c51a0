/* Depth Anything V2: a DINOv2 ViT encoder and a DPT head, from a .pth or
 * .safetensors state dict with the official names (pretrained.*, depth_head.*).
 *
 * The configuration is read off the tensor shapes: embed dim (cls token),
 * blocks (count), heads = dim / 64, MLP width (fc1), head features
 * (scratch.layer1_rn), out channels (projects.i). The metric head ends in
 * Sigmoid x max_depth, the relative one in ReLU. */
#include "backend.h"
#include "base/base.h"
#include "base/bufcache.h"
#include "base/pool.h"
#include "formats/weights.h"
#include "nets/da2_model.h"
#include "ops/cnn_ops.h"
#include "ops/gemm.h"
#include "nets/da2_names.h"
#include "ops/resize_ops.h"
#include "ops/tensor_ops.h"
#include "ops/transformer_ops.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DA2_PATCH 14
#define DA2_LN_EPS 1e-6f
#define DA2_MAX_SIDE 8192

typedef struct {
    const float *norm1_w, *norm1_b; /* [C] */
    const float *qkv_w;             /* [3C, C] */
    const float *qkv_b;             /* [3C] */
    const float *proj_w;            /* [C, C] */
    const float *proj_b;            /* [C] */
    const float *ls1;               /* [C] LayerScale gamma */
    const float *norm2_w, *norm2_b; /* [C] */
    const float *fc1_w;             /* [M, C] */
    const float *fc1_b;             /* [M] */
    const float *fc2_w;             /* [C, M] */
    const float *fc2_b;             /* [C] */
    const float *ls2;               /* [C] */
    /* the four matrices packed (in place) as B operands of x W^T */
    md_gemm_packed qkv, proj, fc1, fc2;
} da2_block;

/* ResidualConvUnit: x + conv2(relu(conv1(relu(x)))). */
typedef struct {
    const float *conv1_w, *conv1_b; /* [F, F, 3, 3], [F] */
    const float *conv2_w, *conv2_b; /* [F, F, 3, 3], [F] */
    md_conv conv1, conv2;
} da2_rcu;

/* FeatureFusionBlock: out_conv(upsample(rcu2(x0 + rcu1(x1)))). */
typedef struct {
    da2_rcu rcu1; /* unused (and not loaded) in refinenet4, which has one input */
    da2_rcu rcu2;
    const float *out_w, *out_b; /* [F, F, 1, 1], [F] */
    md_conv out;
} da2_fusion;

typedef struct {
    /* configuration */
    int embed, depth, heads, mlp; /* C, blocks, C / 64, M */
    int pos_grid;                 /* G: pos_embed covers G x G patches */
    int features;                 /* F */
    int head2;                    /* channels of output_conv2.0 (32) */
    int out_ch[4];                /* projects[i] channels */
    int layers[4];                /* blocks whose outputs feed the head */
    int relative;
    float max_depth;
    int input_size_opt; /* preprocessing target side (518) */
    char describe[128];
    md_model_info info; /* what the loader decided about the head, and why */

    /* encoder (pretrained.*) */
    const float *cls_token; /* [C] */
    const float *pos_embed; /* [1 + G*G, C] */
    const float *patch_w;   /* [C, 3, 14, 14] */
    const float *patch_b;   /* [C] */
    da2_block *blocks;      /* [depth] */
    const float *norm_w, *norm_b; /* [C] final LayerNorm */

    /* DPT head (depth_head.*) */
    const float *proj_w[4], *proj_b[4]; /* [oc_i, C, 1, 1], [oc_i] */
    const float *resize0_w, *resize0_b; /* ConvTranspose [oc0, oc0, 4, 4] stride 4, [oc0] */
    const float *resize1_w, *resize1_b; /* ConvTranspose [oc1, oc1, 2, 2] stride 2, [oc1] */
    const float *resize3_w, *resize3_b; /* Conv [oc3, oc3, 3, 3] stride 2 pad 1, [oc3] */
    const float *rn_w[4];               /* scratch.layer{i+1}_rn [F, oc_i, 3, 3], no bias */
    da2_fusion fusion[4];               /* scratch.refinenet{i+1} */
    const float *out1_w, *out1_b;       /* output_conv1 [F/2, F, 3, 3], [F/2] */
    const float *out2_w, *out2_b;       /* output_conv2.0 [head2, F/2, 3, 3], [head2] */
    const float *out3_w, *out3_b;       /* output_conv2.2 [1, head2, 1, 1], [1] */

    float *arena; /* every weight above, float32 */

    /* Ready to run (prepare()): the matrices and convolution weights packed
     * in place in the arena, so the raw pointers of those tensors are stale.
     * Nothing here changes after the open: calls share the model freely. */
    md_threadpool *pool;
    md_bufcache *cache;                  /* activations between calls (thread-safe) */
    md_gemm_type type;                   /* the matrix products' arithmetic */
    md_conv patch;                       /* patch embedding, 14x14 stride 14 */
    md_gemm_packed proj_p[4];            /* projects as A [oc_i, C] */
    md_gemm_packed resize0_p, resize1_p; /* ConvTranspose as A [(co, ky, kx), ci] */
    md_conv resize3, rn[4], out1, out2;
    float *extra[128]; /* packed operands that did not fit their arena slot */
    int n_extra;
} da2_model;

/* --------------------------------------------------------------- loading */

typedef struct {
    const md_weights *w;
    const char *path;
    float *arena;
    size_t used, cap;
    md_status status;
    md_error *err;
} loader;

static const md_weight *probe(const md_weights *w, const char *fmt, ...) MD_PRINTF(2, 3);
static const md_weight *probe(const md_weights *w, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return md_weights_find(w, name);
}

static void shape_str(char *buf, size_t size, int ndim, const int64_t *dims)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, size - n, "[");
    for (int i = 0; i < ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ", %lld" : "%lld", (long long)dims[i]);
    if (n < size)
        snprintf(buf + n, size - n, "]");
}

/* Copies the named tensor (which must have exactly the given shape) into the
 * arena as float32. */
static const float *take(loader *L, int ndim, const int64_t *dims, const char *fmt, ...)
    MD_PRINTF(4, 5);
static const float *take(loader *L, int ndim, const int64_t *dims, const char *fmt, ...)
{
    if (L->status != MD_OK)
        return NULL;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const md_weight *t = md_weights_find(L->w, name);
    if (!t) {
        L->status = md_fail(L->err, MD_ERR_FORMAT,
                            "%s: tensor '%s' is missing (not a Depth Anything V2 checkpoint?)",
                            L->path, name);
        return NULL;
    }
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == dims[i];
    if (!same) {
        char have[160], want[160];
        shape_str(have, sizeof have, t->ndim, t->shape);
        shape_str(want, sizeof want, ndim, dims);
        L->status = md_fail(L->err, MD_ERR_FORMAT, "%s: tensor '%s' has shape %s, expected %s",
                            L->path, name, have, want);
        return NULL;
    }
    size_t n = (size_t)md_weight_numel(t);
    if (n > L->cap - L->used) {
        L->status = md_fail(L->err, MD_ERR_FORMAT, "%s: tensor '%s' does not fit", L->path, name);
        return NULL;
    }
    float *dst = L->arena + L->used;
    L->used += (n + 15) & ~(size_t)15; /* keep every tensor 64-byte aligned */
    md_weight_to_f32(t, dst);
    /* A NaN or infinite weight would run and give a plausible-looking
     * (constant) depth map: refuse the checkpoint instead. */
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(dst[i])) {
            L->status = md_fail(L->err, MD_ERR_FORMAT,
                                "%s: tensor '%s' holds a non-finite value (%g at element %zu)",
                                L->path, name, (double)dst[i], i);
            return NULL;
        }
    }
    return dst;
}

#define DIMS(...) ((const int64_t[]){__VA_ARGS__})
#define NDIMS(...) ((int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))
#define TAKE(L, name_fmt, ...) take(L, NDIMS(__VA_ARGS__), DIMS(__VA_ARGS__), name_fmt)

static md_status read_config(const md_weights *w, const char *path, da2_model *m, md_error *err)
{
    const md_weight *cls = probe(w, "pretrained.cls_token");
    const md_weight *pos = probe(w, "pretrained.pos_embed");
    if (!cls || !pos)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: tensor 'pretrained.%s' is missing (not a Depth Anything V2 "
                       "checkpoint?)",
                       path, cls ? "pos_embed" : "cls_token");
    if (cls->ndim != 3 || cls->shape[2] <= 0 || cls->shape[2] % 64 != 0 || cls->shape[2] > 4096)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: tensor 'pretrained.cls_token' has an unexpected shape (want [1, 1, "
                       "C] with C a multiple of 64)",
                       path);
    m->embed = (int)cls->shape[2];
    m->heads = m->embed / 64;
    if (pos->ndim != 3 || pos->shape[2] != m->embed || pos->shape[1] < 2)
        return md_fail(err, MD_ERR_FORMAT, "%s: tensor 'pretrained.pos_embed' has a bad shape",
                       path);
    int64_t n = pos->shape[1] - 1;
    int g = (int)floor(sqrt((double)n) + 0.5);
    if ((int64_t)g * g != n)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: tensor 'pretrained.pos_embed' does not cover a square grid", path);
    m->pos_grid = g;
    int depth = 0;
    while (depth < 256 && probe(w, "pretrained.blocks.%d.norm1.weight", depth))
        depth++;
    m->depth = depth;
    static const int layers12[4] = {2, 5, 8, 11}, layers24[4] = {4, 11, 17, 23},
                     layers40[4] = {9, 19, 29, 39};
    const int *layers = depth == 12 ? layers12 : depth == 24 ? layers24 : depth == 40 ? layers40 : NULL;
    if (!layers)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: %d encoder blocks (Depth Anything V2 has 12, 24 or 40)", path, depth);
    memcpy(m->layers, layers, sizeof m->layers);
    const md_weight *fc1 = probe(w, "pretrained.blocks.0.mlp.fc1.weight");
    const md_weight *rn = probe(w, "depth_head.scratch.layer1_rn.weight");
    const md_weight *o2 = probe(w, "depth_head.scratch.output_conv2.0.weight");
    if (!fc1 || fc1->ndim != 2 || fc1->shape[0] <= 0 || fc1->shape[0] > 65536)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: tensor 'pretrained.blocks.0.mlp.fc1.weight' is missing or misshaped "
                       "(a SwiGLU MLP is not supported)",
                       path);
    m->mlp = (int)fc1->shape[0];
    if (!rn || rn->ndim != 4 || rn->shape[0] < 2 || rn->shape[0] > 4096 || rn->shape[0] % 2)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: tensor 'depth_head.scratch.layer1_rn.weight' is missing or misshaped",
                       path);
    m->features = (int)rn->shape[0];
    if (!o2 || o2->ndim != 4 || o2->shape[0] < 1 || o2->shape[0] > 4096)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: tensor 'depth_head.scratch.output_conv2.0.weight' is missing or "
                       "misshaped",
                       path);
    m->head2 = (int)o2->shape[0];
    for (int i = 0; i < 4; i++) {
        const md_weight *p = probe(w, "depth_head.projects.%d.weight", i);
        if (!p || p->ndim != 4 || p->shape[0] < 1 || p->shape[0] > 8192)
            return md_fail(err, MD_ERR_FORMAT,
                           "%s: tensor 'depth_head.projects.%d.weight' is missing or misshaped",
                           path, i);
        m->out_ch[i] = (int)p->shape[0];
    }
    return MD_OK;
}

static md_status load_weights(const md_weights *w, const char *path, da2_model *m, md_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < w->count; i++)
        total += ((size_t)md_weight_numel(&w->items[i]) + 15) & ~(size_t)15;
    m->arena = md_malloc(total * sizeof(float) + 64, "model weights", err);
    if (!m->arena)
        return MD_ERR_NOMEM;
    m->blocks = md_calloc((size_t)m->depth, sizeof *m->blocks, "model blocks", err);
    if (!m->blocks)
        return MD_ERR_NOMEM;
    loader L = {w, path, m->arena, 0, total, MD_OK, err};
    int64_t C = m->embed, M = m->mlp, G = m->pos_grid, F = m->features, H2 = m->head2;
    m->cls_token = TAKE(&L, "pretrained.cls_token", 1, 1, C);
    m->pos_embed = TAKE(&L, "pretrained.pos_embed", 1, 1 + G * G, C);
    m->patch_w = TAKE(&L, "pretrained.patch_embed.proj.weight", C, 3, DA2_PATCH, DA2_PATCH);
    m->patch_b = TAKE(&L, "pretrained.patch_embed.proj.bias", C);
    for (int i = 0; i < m->depth; i++) {
        da2_block *b = &m->blocks[i];
        const char *p = "pretrained.blocks";
        b->norm1_w = take(&L, 1, DIMS(C), "%s.%d.norm1.weight", p, i);
        b->norm1_b = take(&L, 1, DIMS(C), "%s.%d.norm1.bias", p, i);
        b->qkv_w = take(&L, 2, DIMS(3 * C, C), "%s.%d.attn.qkv.weight", p, i);
        b->qkv_b = take(&L, 1, DIMS(3 * C), "%s.%d.attn.qkv.bias", p, i);
        b->proj_w = take(&L, 2, DIMS(C, C), "%s.%d.attn.proj.weight", p, i);
        b->proj_b = take(&L, 1, DIMS(C), "%s.%d.attn.proj.bias", p, i);
        b->ls1 = take(&L, 1, DIMS(C), "%s.%d.ls1.gamma", p, i);
        b->norm2_w = take(&L, 1, DIMS(C), "%s.%d.norm2.weight", p, i);
        b->norm2_b = take(&L, 1, DIMS(C), "%s.%d.norm2.bias", p, i);
        b->fc1_w = take(&L, 2, DIMS(M, C), "%s.%d.mlp.fc1.weight", p, i);
        b->fc1_b = take(&L, 1, DIMS(M), "%s.%d.mlp.fc1.bias", p, i);
        b->fc2_w = take(&L, 2, DIMS(C, M), "%s.%d.mlp.fc2.weight", p, i);
        b->fc2_b = take(&L, 1, DIMS(C), "%s.%d.mlp.fc2.bias", p, i);
        b->ls2 = take(&L, 1, DIMS(C), "%s.%d.ls2.gamma", p, i);
    }
    m->norm_w = TAKE(&L, "pretrained.norm.weight", C);
    m->norm_b = TAKE(&L, "pretrained.norm.bias", C);

    const int64_t *oc = (const int64_t[]){m->out_ch[0], m->out_ch[1], m->out_ch[2], m->out_ch[3]};
    for (int i = 0; i < 4; i++) {
        m->proj_w[i] = take(&L, 4, DIMS(oc[i], C, 1, 1), "depth_head.projects.%d.weight", i);
        m->proj_b[i] = take(&L, 1, DIMS(oc[i]), "depth_head.projects.%d.bias", i);
    }
    m->resize0_w = TAKE(&L, "depth_head.resize_layers.0.weight", oc[0], oc[0], 4, 4);
    m->resize0_b = TAKE(&L, "depth_head.resize_layers.0.bias", oc[0]);
    m->resize1_w = TAKE(&L, "depth_head.resize_layers.1.weight", oc[1], oc[1], 2, 2);
    m->resize1_b = TAKE(&L, "depth_head.resize_layers.1.bias", oc[1]);
    m->resize3_w = TAKE(&L, "depth_head.resize_layers.3.weight", oc[3], oc[3], 3, 3);
    m->resize3_b = TAKE(&L, "depth_head.resize_layers.3.bias", oc[3]);
    for (int i = 0; i < 4; i++)
        m->rn_w[i] = take(&L, 4, DIMS(F, oc[i], 3, 3), "depth_head.scratch.layer%d_rn.weight", i + 1);
    for (int i = 0; i < 4; i++) {
        da2_fusion *f = &m->fusion[i];
        const char *p = "depth_head.scratch.refinenet";
        for (int u = i == 3 ? 2 : 1; u <= 2; u++) {
            da2_rcu *r = u == 1 ? &f->rcu1 : &f->rcu2;
            r->conv1_w = take(&L, 4, DIMS(F, F, 3, 3), "%s%d.resConfUnit%d.conv1.weight", p, i + 1, u);
            r->conv1_b = take(&L, 1, DIMS(F), "%s%d.resConfUnit%d.conv1.bias", p, i + 1, u);
            r->conv2_w = take(&L, 4, DIMS(F, F, 3, 3), "%s%d.resConfUnit%d.conv2.weight", p, i + 1, u);
            r->conv2_b = take(&L, 1, DIMS(F), "%s%d.resConfUnit%d.conv2.bias", p, i + 1, u);
        }
        f->out_w = take(&L, 4, DIMS(F, F, 1, 1), "%s%d.out_conv.weight", p, i + 1);
        f->out_b = take(&L, 1, DIMS(F), "%s%d.out_conv.bias", p, i + 1);
    }
    m->out1_w = TAKE(&L, "depth_head.scratch.output_conv1.weight", F / 2, F, 3, 3);
    m->out1_b = TAKE(&L, "depth_head.scratch.output_conv1.bias", F / 2);
    m->out2_w = TAKE(&L, "depth_head.scratch.output_conv2.0.weight", H2, F / 2, 3, 3);
    m->out2_b = TAKE(&L, "depth_head.scratch.output_conv2.0.bias", H2);
    m->out3_w = TAKE(&L, "depth_head.scratch.output_conv2.2.weight", 1, H2, 1, 1);
    m->out3_b = TAKE(&L, "depth_head.scratch.output_conv2.2.bias", 1);
    return L.status;
}

/* ------------------------------------------------------------- prepare */

/* Packs the weights for the kernels, in place: each packed operand has the
 * size of its tensor (a B operand whose width is no multiple of the panel
 * width gets its own buffer), so loading needs no second copy of the model. */
typedef struct {
    da2_model *m;
    float *tmp; /* a copy of the tensor being packed */
    size_t tmp_cap;
    md_status status;
    md_error *err;
} packer;

static float *stash(packer *P, const float *w, size_t n)
{
    if (n > P->tmp_cap) {
        float *t = realloc(P->tmp, n * sizeof(float));
        if (!t) {
            P->status = md_fail(P->err, MD_ERR_NOMEM, "out of memory packing the weights");
            return NULL;
        }
        P->tmp = t;
        P->tmp_cap = n;
    }
    memcpy(P->tmp, w, n * sizeof(float));
    return P->tmp;
}

/* The memory a packed operand of `bytes` goes to: the tensor's own slot of
 * n floats when it fits (always for A operands and for bf16), else a buffer of
 * its own. */
static void *pack_target(packer *P, const float *slot, size_t n, size_t bytes)
{
    if (bytes <= n * sizeof(float))
        return (void *)(uintptr_t)slot;
    void *dst = NULL;
    if (P->m->n_extra == (int)(sizeof P->m->extra / sizeof P->m->extra[0]) ||
        !(dst = aligned_alloc(64, (bytes + 63) / 64 * 64))) {
        P->status = md_fail(P->err, MD_ERR_NOMEM, "out of memory packing the weights");
        return NULL;
    }
    P->m->extra[P->m->n_extra++] = dst;
    return dst;
}

/* rows x cols of a tensor (trans: stored transposed, ld = rows; else ld =
 * cols) packed over its own slot as the A operand, or as B = its transpose
 * (W [N, K] of x W^T: rows N, cols K). */
static void pack_slot(packer *P, const float *slot, int rows, int cols, bool trans, bool as_a,
                      md_gemm_packed *out)
{
    if (P->status != MD_OK)
        return;
    md_gemm_type t = P->m->type;
    size_t n = (size_t)rows * cols;
    size_t bytes = as_a ? md_gemm_packed_bytes(t, true, rows, cols)
                        : md_gemm_packed_bytes(t, false, cols, rows);
    void *dst = pack_target(P, slot, n, bytes);
    float *src = dst ? stash(P, slot, n) : NULL;
    if (!src)
        return;
    if (as_a) {
        md_gemm_pack_a_into(t, dst, src, trans ? (size_t)rows : (size_t)cols, trans, rows, cols);
        *out = md_gemm_packed_view(t, dst, true, rows, cols);
    } else {
        md_gemm_pack_b_into(t, dst, src, (size_t)cols, true, cols, rows);
        *out = md_gemm_packed_view(t, dst, false, cols, rows);
    }
}

static void pack_a(packer *P, const float *slot, int M, int K, bool trans, md_gemm_packed *out)
{
    pack_slot(P, slot, M, K, trans, true, out);
}

/* The B operand W^T of x W^T, W [N, K]. */
static void pack_linear(packer *P, const float *slot, int N, int K, md_gemm_packed *out)
{
    pack_slot(P, slot, N, K, false, false, out);
}

static void prep_conv(packer *P, md_conv *c, const float *w, const float *b, int cin, int cout,
                      int k, int stride, int pad)
{
    if (P->status != MD_OK)
        return;
    md_conv2d_params p = {cin, cout, k, k, stride, stride, pad, pad, pad, pad, 1, 1, 1};
    size_t n = (size_t)cout * cin * k * k;
    void *dst = pack_target(P, w, n, md_conv_packed_bytes(&p, P->m->type, MD_CONV_FAST));
    float *src = dst ? stash(P, w, n) : NULL;
    if (!src)
        return;
    md_conv_init_into(c, &p, P->m->type, MD_CONV_FAST, src, b, dst);
    c->weight = NULL; /* src is scratch; the packed copy is all that is read */
}

static md_status prepare(da2_model *m, md_error *err)
{
    packer P = {m, NULL, 0, MD_OK, err};
    int C = m->embed, M = m->mlp, F = m->features, F2 = m->features / 2;
    prep_conv(&P, &m->patch, m->patch_w, m->patch_b, 3, C, DA2_PATCH, DA2_PATCH, 0);
    for (int i = 0; i < m->depth; i++) {
        da2_block *b = &m->blocks[i];
        pack_linear(&P, b->qkv_w, 3 * C, C, &b->qkv);
        pack_linear(&P, b->proj_w, C, C, &b->proj);
        pack_linear(&P, b->fc1_w, M, C, &b->fc1);
        pack_linear(&P, b->fc2_w, C, M, &b->fc2);
    }
    for (int i = 0; i < 4; i++)
        pack_a(&P, m->proj_w[i], m->out_ch[i], C, false, &m->proj_p[i]);
    int oc0 = m->out_ch[0], oc1 = m->out_ch[1], oc3 = m->out_ch[3];
    pack_a(&P, m->resize0_w, oc0 * 16, oc0, true, &m->resize0_p);
    pack_a(&P, m->resize1_w, oc1 * 4, oc1, true, &m->resize1_p);
    prep_conv(&P, &m->resize3, m->resize3_w, m->resize3_b, oc3, oc3, 3, 2, 1);
    for (int i = 0; i < 4; i++)
        prep_conv(&P, &m->rn[i], m->rn_w[i], NULL, m->out_ch[i], F, 3, 1, 1);
    for (int i = 0; i < 4; i++) {
        da2_fusion *f = &m->fusion[i];
        for (int u = i == 3 ? 2 : 1; u <= 2; u++) {
            da2_rcu *r = u == 1 ? &f->rcu1 : &f->rcu2;
            prep_conv(&P, &r->conv1, r->conv1_w, r->conv1_b, F, F, 3, 1, 1);
            prep_conv(&P, &r->conv2, r->conv2_w, r->conv2_b, F, F, 3, 1, 1);
        }
        prep_conv(&P, &f->out, f->out_w, f->out_b, F, F, 1, 1, 0);
    }
    prep_conv(&P, &m->out1, m->out1_w, m->out1_b, F, F2, 3, 1, 1);
    prep_conv(&P, &m->out2, m->out2_w, m->out2_b, F2, m->head2, 3, 1, 1);
    free(P.tmp);
    return P.status;
}

/* ------------------------------------------------------------- encoder */

/* Activation buffers come from the model's cache (no page faults in the
 * steady state) and go back to it. */
static void *ws_get(const da2_model *m, size_t bytes, const char *what, md_error *err)
{
    void *p = md_bufcache_get(m->cache, bytes);
    if (!p)
        md_fail(err, MD_ERR_NOMEM, "depth anything v2: out of memory for the %s", what);
    return p;
}

static void ws_put(const da2_model *m, void *p)
{
    md_bufcache_put(m->cache, p);
}

/* x += gamma * y, row-wise. */
static void add_scaled(float *x, const float *y, const float *gamma, int rows, int dim)
{
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * dim;
        const float *yr = y + (size_t)r * dim;
        for (int i = 0; i < dim; i++)
            xr[i] += gamma[i] * yr[i];
    }
}

/* y [rows, N] = x [rows, K] W^T + b on this thread (the caller splits rows),
 * x float32 or, for bf16 products, bf16 values; with gelu, GELU applied;
 * with y16, the result goes there as bf16 (y then only holds partial sums
 * of K blocks). */
static void linear(md_gemm_isa isa, const void *x, int rows, const md_gemm_packed *w,
                   const float *b, bool gelu, float *y, uint16_t *y16)
{
    int K = w->rows, N = w->cols;
    md_gemm_epilogue e = md_gemm_epilogue_none();
    e.bias_col = b;
    e.gelu = gelu;
    e.out16 = y16;
    e.ld16 = (size_t)N;
    md_gemm_block(isa, rows, N, K, 1.0f, md_gemm_direct(x, (size_t)K), md_gemm_prepacked(w), y,
                  (size_t)N, &e, 0, rows, 0, N);
}

/* Work shared by the encoder's parallel phases. Token-local work (LayerNorm,
 * the linear layers, GELU, residuals) is split by rows; attention by (block
 * of query rows, head), after each head's keys and values are packed.
 * LayerNorm, softmax, GELU and the residual stream X stay float32 in both
 * precisions; bf16 only feeds the matrix products, whose inputs are written
 * as bf16 by the step before (LayerNorm, the GELU'd fc1, attention, qkv). */
typedef struct {
    const da2_model *m;
    md_gemm_isa isa;
    float *X, *Y, *A, *P, *QKV, *Hid; /* float32 activations */
    uint16_t *Y16, *Hid16, *QKV16, *A16; /* bf16: the products' inputs (NULL in fp32) */
    char *S, *KV;                     /* per worker attention scratch; per head packed k, v */
    size_t s_bytes, kv_bytes;
    int T, C, M, chunk;
    int finish;  /* block whose MLP half runs in this row phase, or -1 */
    int start;   /* block whose attention input is prepared, or -1 */
    float *feat; /* LayerNorm'd copy of X after `finish`, or NULL */
} enc_ctx;

/* Rows [r0, r1): the second half of block `finish` (projection, residual,
 * MLP, residual), then the first half of block `start` (LayerNorm, qkv). */
static void enc_rows_task(void *vctx, int task, int worker)
{
    enc_ctx *c = vctx;
    (void)worker;
    int r0 = task * c->chunk, r1 = r0 + c->chunk < c->T ? r0 + c->chunk : c->T, n = r1 - r0;
    if (n <= 0)
        return;
    int C = c->C, M = c->M;
    size_t o = (size_t)r0 * C, oh = (size_t)r0 * M, oq = (size_t)r0 * 3 * C;
    float *X = c->X + o, *Y = c->Y + o, *A = c->A + o, *P = c->P + o, *Hid = c->Hid + oh;
    bool bf = c->Y16 != NULL;
    uint16_t *y16 = bf ? c->Y16 + o : NULL, *h16 = bf ? c->Hid16 + oh : NULL;
    const void *ain = bf ? (const void *)(c->A16 + o) : A, *yin = bf ? (const void *)y16 : Y;
    const void *hin = bf ? (const void *)h16 : Hid;
    if (c->finish >= 0) {
        const da2_block *b = &c->m->blocks[c->finish];
        linear(c->isa, ain, n, &b->proj, b->proj_b, false, P, NULL);
        add_scaled(X, P, b->ls1, n, C);
        md_layernorm(X, n, C, b->norm2_w, b->norm2_b, DA2_LN_EPS, Y, y16);
        linear(c->isa, yin, n, &b->fc1, b->fc1_b, true, Hid, h16);
        linear(c->isa, hin, n, &b->fc2, b->fc2_b, false, P, NULL);
        add_scaled(X, P, b->ls2, n, C);
        if (c->feat)
            md_layernorm(X, n, C, c->m->norm_w, c->m->norm_b, DA2_LN_EPS, c->feat + o, NULL);
    }
    if (c->start >= 0) {
        const da2_block *b = &c->m->blocks[c->start];
        md_layernorm(X, n, C, b->norm1_w, b->norm1_b, DA2_LN_EPS, Y, y16);
        linear(c->isa, yin, n, &b->qkv, b->qkv_b, false, c->QKV + oq,
               c->QKV16 ? c->QKV16 + oq : NULL);
    }
}

static void enc_kv_task(void *vctx, int head, int worker)
{
    enc_ctx *c = vctx;
    (void)worker;
    md_attention_pack_kv(md_gemm_isa_type(c->isa), c->QKV, c->QKV16, c->T, c->m->heads,
                         c->C / c->m->heads, head, c->KV + (size_t)head * c->kv_bytes);
}

static void enc_attn_task(void *vctx, int task, int worker)
{
    enc_ctx *c = vctx;
    int heads = c->m->heads;
    int r0 = (task / heads) * MD_ATTENTION_BLOCK, h = task % heads;
    int r1 = r0 + MD_ATTENTION_BLOCK < c->T ? r0 + MD_ATTENTION_BLOCK : c->T;
    md_attention_rows(md_gemm_isa_type(c->isa), c->QKV, c->QKV16,
                      c->KV + (size_t)h * c->kv_bytes, c->T, heads, c->C / heads, h, r0, r1,
                      c->A, c->A16, c->S + (size_t)worker * c->s_bytes);
}

/* The position embedding for a grid other than the checkpoint's, channels
 * [c0, c1) per task: pos_embed[1:] as planar [C, G, G], then bicubic with
 * DINOv2's offset of 0.1: scale_factor = ((ph + 0.1) / G, (pw + 0.1) / G). */
typedef struct {
    const float *pos_embed; /* [1 + G G, C] */
    float *planar, *posi, *tmp; /* [C, G G], [C, ph pw], per worker G pw */
    int C, G, ph, pw, chunk;
} pos_job;

static void pos_task(void *ctx, int t, int worker)
{
    const pos_job *j = ctx;
    int C = j->C, G = j->G, c0 = t * j->chunk, c1 = c0 + j->chunk < C ? c0 + j->chunk : C;
    if (c0 >= c1)
        return;
    size_t gg = (size_t)G * G;
    for (int c = c0; c < c1; c++)
        for (size_t i = 0; i < gg; i++)
            j->planar[(size_t)c * gg + i] = j->pos_embed[(1 + i) * (size_t)C + (size_t)c];
    md_resize_bicubic_torch(j->planar + (size_t)c0 * gg, c1 - c0, G, G,
                            j->posi + (size_t)c0 * j->ph * j->pw, j->ph, j->pw,
                            (j->ph + 0.1) / G, (j->pw + 0.1) / G,
                            j->tmp + (size_t)worker * G * j->pw);
}

/* Tokens [i0, i1) of X: the patch embedding [C, np] made token-major, plus
 * the position embedding (the checkpoint's, or posi [C, np] resized). */
typedef struct {
    float *X;
    const float *patches, *pos_embed, *posi;
    int C, np, chunk;
} tokens_job;

static void tokens_task(void *ctx, int t, int worker)
{
    (void)worker;
    const tokens_job *j = ctx;
    int C = j->C, np = j->np, i1 = (t + 1) * j->chunk < np ? (t + 1) * j->chunk : np;
    for (int i = t * j->chunk; i < i1; i++) {
        float *row = j->X + (size_t)(1 + i) * C;
        for (int c = 0; c < C; c++)
            row[c] = j->patches[(size_t)c * np + i] +
                     (j->posi ? j->posi[(size_t)c * np + i]
                              : j->pos_embed[(size_t)(1 + i) * C + c]);
    }
}

static md_status encode(const da2_model *m, const float *img, int H, int W, float *feats[4],
                        md_error *err)
{
    int ph = H / DA2_PATCH, pw = W / DA2_PATCH, np = ph * pw, T = np + 1;
    int C = m->embed, M = m->mlp, G = m->pos_grid, nt = md_pool_threads(m->pool);
    bool bf = m->type == MD_GEMM_BF16;
    size_t TC = (size_t)T * C;
    size_t kv_bytes = (md_attention_kv_bytes(m->type, T, C / m->heads) + 63) / 64 * 64;
    size_t s_bytes = md_attention_scratch_bytes(m->type, T, C / m->heads);
    size_t pos_tmp = (size_t)G * pw * (size_t)nt; /* the bicubic's rows, per worker */
    /* floats of: X Y A P, QKV, Hid, packed k v, then the bigger of the
     * attention scratch and the patch embedding's buffers */
    size_t big = s_bytes * (size_t)nt / sizeof(float);
    size_t small = (size_t)C * np + (size_t)C * np + pos_tmp + (size_t)C * G * G;
    if (small > big)
        big = small;
    size_t n16 = bf ? TC + (size_t)T * M + (size_t)T * 3 * C + TC : 0; /* Y16 Hid16 QKV16 A16 */
    size_t total = TC * 4 + (size_t)T * 3 * C + (size_t)T * M + kv_bytes * m->heads / 4 + big +
                   (n16 + 1) / 2 + 16;
    float *buf = ws_get(m, total * sizeof(float), "encoder activations", err);
    if (!buf)
        return MD_ERR_NOMEM;
    float *X = buf, *Y = X + TC, *A = Y + TC, *P = A + TC, *QKV = P + TC;
    float *Hid = QKV + (size_t)T * 3 * C;
    char *KV = (char *)(Hid + (size_t)T * M);
    float *S = (float *)(KV + kv_bytes * m->heads);
    uint16_t *Y16 = bf ? (uint16_t *)(S + big) : NULL;
    uint16_t *Hid16 = bf ? Y16 + TC : NULL, *QKV16 = bf ? Hid16 + (size_t)T * M : NULL;
    uint16_t *A16 = bf ? QKV16 + (size_t)T * 3 * C : NULL;
    if ((C / m->heads) % 2) /* attention reads bf16 q, k, v in whole pairs only */
        QKV16 = NULL;

    /* Patch embedding [C, np] and (interpolated) position embedding. */
    float *patches = S, *posi = S + (size_t)C * np, *postmp = posi + (size_t)C * np;
    md_conv_src src = md_conv_plain_src(img, H, W);
    md_conv_dst dst = md_conv_to(patches, -INFINITY, INFINITY);
    if (!md_conv_forward(&m->patch, m->pool, &src, &dst, NULL)) {
        ws_put(m, buf);
        return md_fail(err, MD_ERR_NOMEM, "depth anything v2: out of memory in the patch embedding");
    }
    bool same_grid = np == G * G && H == W;
    int tasks = nt > 1 ? 4 * nt : 1;
    if (!same_grid) {
        pos_job pj = {m->pos_embed, postmp + pos_tmp, posi, postmp, C, G, ph, pw,
                      (C + tasks - 1) / tasks};
        md_pool_run(m->pool, tasks, pos_task, &pj);
    }
    for (int c = 0; c < C; c++)
        X[c] = m->cls_token[c] + m->pos_embed[c];
    tokens_job tj = {X, patches, m->pos_embed, same_grid ? NULL : posi, C, np,
                     (np + tasks - 1) / tasks};
    md_pool_run(m->pool, tasks, tokens_task, &tj);

    /* Row chunks in whole register tiles, four per worker (a worker the
     * system pauses leaves its chunks to the others); each runs its matrix
     * products on its own thread. */
    int chunk = nt > 1 ? (T + 4 * nt - 1) / (4 * nt) : T;
    chunk = (chunk + MD_GEMM_MR - 1) / MD_GEMM_MR * MD_GEMM_MR;
    int row_tasks = (T + chunk - 1) / chunk;
    enc_ctx c = {m,     md_gemm_isa_best(m->type), X,     Y,        A,        P, QKV, Hid, Y16,
                 Hid16, QKV16, A16, (char *)S, KV, s_bytes, kv_bytes, T, C, M, chunk, -1, 0,
                 NULL};
    int last = m->layers[3], next = 0;
    int n_attn = ((T + MD_ATTENTION_BLOCK - 1) / MD_ATTENTION_BLOCK) * m->heads;
    for (int l = 0; l <= last; l++) {
        md_pool_run(m->pool, row_tasks, enc_rows_task, &c);
        md_pool_run(m->pool, m->heads, enc_kv_task, &c);
        md_pool_run(m->pool, n_attn, enc_attn_task, &c);
        c.finish = l;
        c.start = l < last ? l + 1 : -1;
        c.feat = l == m->layers[next] ? feats[next] : NULL;
        if (c.feat)
            next++;
    }
    md_pool_run(m->pool, row_tasks, enc_rows_task, &c);
    ws_put(m, buf);
    return MD_OK;
}

/* ----------------------------------------------------------------- head */

static md_status conv_run(const md_conv *c, md_threadpool *pool, const md_conv_src *src,
                          const md_conv_dst *dst, md_error *err)
{
    if (md_conv_forward(c, pool, src, dst, NULL))
        return MD_OK;
    return md_fail(err, MD_ERR_NOMEM, "depth anything v2: out of memory in a head convolution");
}

/* output_conv2's 1x1 convolution to one channel and the final activation,
 * applied to each band of output_conv2.0's (ReLU'd) output as it is made. */
typedef struct {
    const float *w, *b; /* [1, cout], [1] */
    int cout, W, relative;
    float max_depth;
    float *depth;
} final_stage;

static void final_band(void *user, const float *band, int y0, int y1, int worker)
{
    (void)worker;
    const final_stage *f = user;
    size_t plane = (size_t)(y1 - y0) * f->W;
    float *dst = f->depth + (size_t)y0 * f->W;
    for (size_t i = 0; i < plane; i++)
        dst[i] = f->b[0];
    for (int c = 0; c < f->cout; c++) {
        const float *sp = band + (size_t)c * plane;
        float wc = f->w[c];
        for (size_t i = 0; i < plane; i++)
            dst[i] += wc * sp[i];
    }
    for (size_t i = 0; i < plane; i++) {
        float v = dst[i];
        dst[i] = f->relative ? (v > 0.0f ? v : 0.0f) : f->max_depth / (1.0f + expf(-v));
    }
}

typedef struct {
    const md_resize_tables *t;
    const float *src;
    int sh, sw, channels, tasks;
    float *dst;
    const float *add;
} bl_job;

static void bilinear_task(void *vctx, int task, int worker)
{
    const bl_job *j = vctx;
    (void)worker;
    int c0 = (int)((long)j->channels * task / j->tasks);
    int c1 = (int)((long)j->channels * (task + 1) / j->tasks);
    md_resize2d(j->t, j->src, j->sh, j->sw, j->dst, j->add, c0, c1);
}

/* PyTorch's bilinear align_corners=True of [channels, sh, sw] to dh x dw,
 * plus add (may be NULL, or dst itself: each value is read before its own
 * place is written). */
static md_status bilinear(md_threadpool *pool, const float *src, int channels, int sh, int sw,
                          float *dst, const float *add, int dh, int dw, md_error *err)
{
    md_resize_params rp = {true, MD_COORD_ALIGN_CORNERS, MD_NEAREST_FLOOR, 0.0f, 0.0f};
    md_resize_tables t;
    if (!md_resize_tables_init(&t, &rp, sh, sw, dh, dw))
        return md_fail(err, MD_ERR_NOMEM, "depth anything v2: out of memory for a resize");
    int tasks = 2 * md_pool_threads(pool);
    tasks = tasks < channels ? tasks : channels;
    bl_job j = {&t, src, sh, sw, channels, tasks, dst, add};
    md_pool_run(pool, tasks, bilinear_task, &j);
    md_resize_tables_free(&t);
    return MD_OK;
}

typedef struct {
    const float *tmp, *bias;
    float *out;
    int c, h, w, k, chunk;
} scatter_job;

/* Output channels [co0, co1) of a stride-k ConvTranspose: each (ky, kx)
 * plane of tmp to every k-th pixel of out, plus the bias. */
static void scatter_task(void *ctx, int t, int worker)
{
    (void)worker;
    const scatter_job *j = ctx;
    int k = j->k, h = j->h, w = j->w, n = h * w, ow = w * k;
    int co1 = (t + 1) * j->chunk < j->c ? (t + 1) * j->chunk : j->c;
    for (int co = t * j->chunk; co < co1; co++)
        for (int ky = 0; ky < k; ky++)
            for (int kx = 0; kx < k; kx++) {
                const float *src = j->tmp + ((size_t)(co * k + ky) * k + kx) * n;
                float bb = j->bias[co];
                for (int y = 0; y < h; y++) {
                    float *dst = j->out + ((size_t)co * h * k + (size_t)y * k + ky) * ow + kx;
                    for (int x = 0; x < w; x++)
                        dst[(size_t)x * k] = src[(size_t)y * w + x] + bb;
                }
            }
}

/* ConvTranspose2d with kernel == stride == k (no overlap): in [c, h, w] ->
 * out [c, h*k, w*k], weight packed as A [(co, ky, kx), ci]. tmp: c*k*k*h*w. */
static void conv_transpose_k(md_threadpool *pool, const float *in, int c, int h, int w,
                             const md_gemm_packed *weight, const float *bias, int k, float *out,
                             float *tmp)
{
    int n = h * w, ck = c * k * k;
    /* tmp[(co, ky, kx), (y, x)] = sum_ci weight[ci, (co, ky, kx)] in[ci, (y, x)] */
    md_gemm(pool, weight->type, ck, n, c, 1.0f, md_gemm_prepacked(weight),
            md_gemm_raw(in, (size_t)n, false),
            tmp, (size_t)n, NULL);
    int tasks = md_pool_threads(pool) > 1 ? 4 * md_pool_threads(pool) : 1;
    tasks = tasks < c ? tasks : c;
    scatter_job j = {tmp, bias, out, c, h, w, k, (c + tasks - 1) / tasks};
    md_pool_run(pool, tasks, scatter_task, &j);
}

/* x + conv2(relu(conv1(relu(x)))) into out (may not alias x). t: c*H*W floats. */
static md_status rcu(md_threadpool *pool, const da2_rcu *u, const float *x, int H, int W,
                     float *out, float *t, md_error *err)
{
    md_conv_src s1 = {x, H, W, true, 0, 0}, s2 = {t, H, W, true, 0, 0};
    md_conv_dst d1 = md_conv_to(t, -INFINITY, INFINITY), d2 = md_conv_to(out, -INFINITY, INFINITY);
    d2.add = x;
    md_status s = conv_run(&u->conv1, pool, &s1, &d1, err);
    return s == MD_OK ? conv_run(&u->conv2, pool, &s2, &d2, err) : s;
}

/* A feature map [F, h, w]; with sh > 0 it is held at [F, sh, sw] and stands
 * for its bilinear (align_corners) upsampling to h x w, which its reader
 * computes on the fly instead of a pass writing the big map out. */
typedef struct {
    float *data;
    int h, w, sh, sw;
} fmap;

/* refinenet: out = out_conv(up(rcu2(x0 [+ rcu1(x1)]))) with up to (oh, ow).
 * The 1x1 out_conv commutes with the bilinear upsampling (both linear, the
 * interpolation weights sum to 1, so the bias passes through): it runs at
 * the lower resolution, up(out_conv(.)), a quarter of the work; the
 * upsampling itself is left to out's reader. */
static md_status fusion(const da2_model *m, const da2_fusion *f, int F, const fmap *x0,
                        const fmap *x1, int oh, int ow, fmap *out, md_error *err)
{
    md_threadpool *pool = m->pool;
    int H = x0->h, W = x0->w;
    size_t n = (size_t)F * H * W;
    float *buf = ws_get(m, 3 * n * sizeof(float), "refinenet", err);
    float *res = buf ? ws_get(m, n * sizeof(float), "refinenet output", err) : NULL;
    if (!res) {
        ws_put(m, buf);
        return MD_ERR_NOMEM;
    }
    float *a = buf, *b = a + n, *t = b + n;
    md_status s = MD_OK;
    const float *cur = x0->data;
    if (x1) {
        /* x0 is then the last refinenet's output, held at its own size */
        s = rcu(pool, &f->rcu1, x1->data, H, W, a, t, err);
        if (s == MD_OK)
            s = bilinear(pool, x0->data, F, x0->sh, x0->sw, a, a, H, W, err);
        cur = a;
    }
    if (s == MD_OK)
        s = rcu(pool, &f->rcu2, cur, H, W, b, t, err);
    if (s == MD_OK) {
        md_conv_src src = md_conv_plain_src(b, H, W);
        md_conv_dst dst = md_conv_to(res, -INFINITY, INFINITY);
        s = conv_run(&f->out, pool, &src, &dst, err);
    }
    ws_put(m, buf);
    if (s != MD_OK) {
        ws_put(m, res);
        return s;
    }
    *out = (fmap){res, oh, ow, H, W};
    return MD_OK;
}

static md_status head(const da2_model *m, float *feats[4], int ph, int pw, float *depth,
                      md_error *err)
{
    int C = m->embed, F = m->features, np = ph * pw;
    md_threadpool *pool = m->pool;
    md_status s = MD_OK;
    fmap rn[4] = {{0}}, path[4] = {{0}};
    float *proj = NULL, *tmp = NULL, *layer = NULL;
    int hs[4] = {ph * 4, ph * 2, ph, (ph - 1) / 2 + 1};
    int ws[4] = {pw * 4, pw * 2, pw, (pw - 1) / 2 + 1};
    size_t maxc = 0;
    for (int i = 0; i < 4; i++)
        if ((size_t)m->out_ch[i] > maxc)
            maxc = (size_t)m->out_ch[i];
    /* resize_layers: ConvTranspose x4 (layer 0), x2 (layer 1), Conv 3x3 s2 (layer 3) */
    size_t oc0 = (size_t)m->out_ch[0], oc1 = (size_t)m->out_ch[1], oc3 = (size_t)m->out_ch[3];
    size_t n3 = (size_t)hs[3] * ws[3];
    size_t n_up = oc0 * 16 * np > oc1 * 4 * np ? oc0 * 16 * np : oc1 * 4 * np;
    size_t n_layer = n_up > oc3 * n3 ? n_up : oc3 * n3;
    proj = ws_get(m, maxc * np * sizeof(float), "projection", err);
    tmp = ws_get(m, n_up * sizeof(float), "resize", err);
    layer = ws_get(m, n_layer * sizeof(float), "resized layer", err);
    if (!proj || !tmp || !layer) {
        s = MD_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < 4 && s == MD_OK; i++) {
        int oc = m->out_ch[i];
        const float *tokens = feats[i] + C; /* drop the class token */
        /* proj [oc, np] = W [oc, C] tokens^T + b */
        md_gemm_epilogue e = md_gemm_epilogue_none();
        e.bias_row = m->proj_b[i];
        md_gemm(pool, m->type, oc, np, C, 1.0f, md_gemm_prepacked(&m->proj_p[i]),
                md_gemm_raw(tokens, (size_t)C, true), proj, (size_t)np, &e);
        const float *lay = layer;
        if (i == 0) {
            conv_transpose_k(pool, proj, oc, ph, pw, &m->resize0_p, m->resize0_b, 4, layer, tmp);
        } else if (i == 1) {
            conv_transpose_k(pool, proj, oc, ph, pw, &m->resize1_p, m->resize1_b, 2, layer, tmp);
        } else if (i == 2) {
            lay = proj;
        } else {
            md_conv_src src = md_conv_plain_src(proj, ph, pw);
            md_conv_dst dst = md_conv_to(layer, -INFINITY, INFINITY);
            if ((s = conv_run(&m->resize3, pool, &src, &dst, err)) != MD_OK)
                break;
        }
        rn[i].h = hs[i];
        rn[i].w = ws[i];
        rn[i].data = ws_get(m, (size_t)F * hs[i] * ws[i] * sizeof(float), "layer_rn", err);
        if (!rn[i].data) {
            s = MD_ERR_NOMEM;
            break;
        }
        md_conv_src src = md_conv_plain_src(lay, hs[i], ws[i]);
        md_conv_dst dst = md_conv_to(rn[i].data, -INFINITY, INFINITY);
        s = conv_run(&m->rn[i], pool, &src, &dst, err);
    }
    ws_put(m, proj);
    ws_put(m, tmp);
    ws_put(m, layer);
    proj = tmp = layer = NULL;
    if (s != MD_OK)
        goto done;
    s = fusion(m, &m->fusion[3], F, &rn[3], NULL, hs[2], ws[2], &path[3], err);
    if (s == MD_OK)
        s = fusion(m, &m->fusion[2], F, &path[3], &rn[2], hs[1], ws[1], &path[2], err);
    if (s == MD_OK)
        s = fusion(m, &m->fusion[1], F, &path[2], &rn[1], hs[0], ws[0], &path[1], err);
    if (s == MD_OK)
        s = fusion(m, &m->fusion[0], F, &path[1], &rn[0], hs[0] * 2, ws[0] * 2, &path[0], err);
    if (s != MD_OK)
        goto done;
    for (int i = 0; i < 4; i++) {
        ws_put(m, rn[i].data);
        rn[i].data = NULL;
    }
    {
        int h1 = path[0].h, w1 = path[0].w, Hn = ph * DA2_PATCH, Wn = pw * DA2_PATCH;
        int F2 = F / 2;
        float *o1 = ws_get(m, (size_t)F2 * h1 * w1 * sizeof(float), "output_conv1", err);
        if (!o1) {
            s = MD_ERR_NOMEM;
            goto done;
        }
        md_conv_src src = {path[0].data, h1, w1, false, path[0].sh, path[0].sw};
        md_conv_dst dst = md_conv_to(o1, -INFINITY, INFINITY);
        s = conv_run(&m->out1, pool, &src, &dst, err);
        ws_put(m, path[0].data);
        path[0].data = NULL;
        if (s == MD_OK) {
            /* upsample to the network size, output_conv2 (3x3, ReLU, 1x1) and
               the final activation, one band of rows at a time */
            final_stage fin = {m->out3_w, m->out3_b, m->head2, Wn, m->relative, m->max_depth,
                               depth};
            md_conv_src up = {o1, Hn, Wn, false, h1, w1};
            md_conv_dst band = {NULL, 0.0f, INFINITY, NULL, final_band, &fin};
            s = conv_run(&m->out2, pool, &up, &band, err);
        }
        ws_put(m, o1);
    }
done:
    ws_put(m, proj);
    ws_put(m, tmp);
    ws_put(m, layer);
    for (int i = 0; i < 4; i++) {
        ws_put(m, rn[i].data);
        ws_put(m, path[i].data);
    }
    return s;
}

/* ------------------------------------------------------------ pipeline */

static md_status check_input_size(int H, int W, md_error *err)
{
    if (H < DA2_PATCH || W < DA2_PATCH || H > DA2_MAX_SIDE || W > DA2_MAX_SIDE)
        return md_fail(err, MD_ERR_DATA,
                       "depth anything v2: input %dx%d outside the supported %d..%d pixels", W, H,
                       DA2_PATCH, DA2_MAX_SIDE);
    return MD_OK;
}

/* The encoder's four feature maps into feats (new buffers, from the model's
 * cache when cached, else plain malloc for the caller to free). */
static md_status encode_feats(const da2_model *m, const float *chw, int height, int width,
                              float *feats[4], bool cached, md_error *err)
{
    for (int k = 0; k < 4; k++)
        feats[k] = NULL;
    md_status s = check_input_size(height, width, err);
    if (s != MD_OK)
        return s;
    size_t bytes = (size_t)((height / DA2_PATCH) * (width / DA2_PATCH) + 1) * m->embed * sizeof(float);
    for (int k = 0; k < 4 && s == MD_OK; k++) {
        feats[k] = cached ? ws_get(m, bytes, "encoder features", err)
                          : md_malloc(bytes, "encoder features", err);
        if (!feats[k])
            s = MD_ERR_NOMEM;
    }
    if (s == MD_OK)
        s = encode(m, chw, height, width, feats, err);
    if (s != MD_OK)
        for (int k = 0; k < 4; k++) {
            if (cached)
                ws_put(m, feats[k]);
            else
                free(feats[k]);
            feats[k] = NULL;
        }
    return s;
}

md_status md_da2_encode(const void *impl, const float *chw, int height, int width, float *feats[4],
                        int *tokens, int *embed, md_error *err)
{
    const da2_model *m = impl;
    *tokens = (height / DA2_PATCH) * (width / DA2_PATCH) + 1;
    *embed = m->embed;
    return encode_feats(m, chw, height, width, feats, false, err);
}

/* depth [14*ph, 14*pw] from a preprocessed [3, H, W] input. */
static md_status forward(const da2_model *m, const float *chw, int H, int W, float *depth,
                         md_error *err)
{
    float *feats[4];
    md_status s = encode_feats(m, chw, H, W, feats, true, err);
    if (s != MD_OK)
        return s;
    /* A NaN or Inf in the input (or an overflow) reaches every token through
     * attention, and the head's ReLUs would turn it into 0 and then into a
     * plausible constant depth: the whole map is NaN (invalid) instead. */
    size_t n_feat = ((size_t)(H / DA2_PATCH) * (W / DA2_PATCH) + 1) * (size_t)m->embed;
    bool finite = true;
    for (int k = 0; k < 4 && finite; k++)
        for (size_t i = 0; i < n_feat && finite; i++)
            finite = isfinite(feats[k][i]);
    if (!finite) {
        size_t n = (size_t)(H / DA2_PATCH) * DA2_PATCH * (size_t)(W / DA2_PATCH) * DA2_PATCH;
        for (size_t i = 0; i < n; i++)
            depth[i] = NAN;
    } else {
        s = head(m, feats, H / DA2_PATCH, W / DA2_PATCH, depth, err);
    }
    for (int k = 0; k < 4; k++)
        ws_put(m, feats[k]);
    return s;
}

static md_status da2_run_tensor(const void *impl, const md_tensor *in, md_tensor *out,
                                md_error *err)
{
    const da2_model *m = impl;
    int nd = in->ndim;
    if (!((nd == 3 && in->shape[0] == 3) || (nd == 4 && in->shape[0] == 1 && in->shape[1] == 3)))
        return md_fail(err, MD_ERR_DATA,
                       "depth anything v2: input tensor must be [1, 3, H, W] or [3, H, W]");
    int64_t H = in->shape[nd - 2], W = in->shape[nd - 1];
    if (H > DA2_MAX_SIDE || W > DA2_MAX_SIDE)
        return check_input_size(DA2_MAX_SIDE + 1, 0, err);
    md_status s = check_input_size((int)H, (int)W, err);
    if (s != MD_OK)
        return s;
    int Hn = (int)(H / DA2_PATCH) * DA2_PATCH, Wn = (int)(W / DA2_PATCH) * DA2_PATCH;
    float *depth = md_malloc((size_t)Hn * Wn * sizeof(float), "depth output", err);
    if (!depth)
        return MD_ERR_NOMEM;
    s = forward(m, in->data, (int)H, (int)W, depth, err);
    if (s != MD_OK) {
        free(depth);
        return s;
    }
    out->ndim = 3;
    out->shape[0] = 1;
    out->shape[1] = Hn;
    out->shape[2] = Wn;
    out->data = depth;
    return MD_OK;
}

md_status md_da2_preprocess(const md_image *img, int input_size, float **chw, int *height,
                            int *width, md_error *err)
{
    *chw = NULL;
    if (!img || !img->pixels || img->width <= 0 || img->height <= 0 ||
        img->width > MD_MAX_DIM || img->height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "depth anything v2: empty or oversized image");
    if (input_size <= 0)
        input_size = 518;
    if (input_size > DA2_MAX_SIDE)
        return md_fail(err, MD_ERR_ARG, "depth anything v2: input size %d too large", input_size);
    int h = img->height, w = img->width;
    /* Resize(keep_aspect_ratio, ensure_multiple_of=14, resize_method="lower_bound") */
    double sh = (double)input_size / h, sw = (double)input_size / w;
    double scale = sw > sh ? sw : sh;
    int dims[2];
    double want[2] = {scale * h, scale * w};
    for (int i = 0; i < 2; i++) {
        double y = nearbyint(want[i] / DA2_PATCH) * DA2_PATCH; /* numpy round: half to even */
        if (y < input_size)
            y = ceil(want[i] / DA2_PATCH) * DA2_PATCH;
        dims[i] = (int)y;
    }
    int H = dims[0], W = dims[1];
    if ((size_t)H * W > (size_t)DA2_MAX_SIDE * DA2_MAX_SIDE / 4 || H > DA2_MAX_SIDE ||
        W > DA2_MAX_SIDE)
        return md_fail(err, MD_ERR_ARG,
                       "depth anything v2: a %dx%d image needs a %dx%d network input, too large",
                       w, h, W, H);
    size_t n_src = (size_t)h * w * 3, n_dst = (size_t)H * W * 3, n_tmp = (size_t)h * W * 3;
    double *buf = md_malloc((n_src + n_dst + n_tmp) * sizeof(double), "preprocessing", err);
    float *out = md_malloc(n_dst * sizeof(float), "network input", err);
    if (!buf || !out) {
        free(buf);
        free(out);
        return MD_ERR_NOMEM;
    }
    double *src = buf, *dst = src + n_src, *tmp = dst + n_dst;
    for (size_t i = 0; i < n_src; i++)
        src[i] = img->pixels[i] / 255.0;
    if (H == h && W == w)
        memcpy(dst, src, n_src * sizeof(double)); /* cv2.resize to the same size copies */
    else
        md_resize_cubic_opencv(src, h, w, 3, dst, H, W, tmp);
    static const double mean[3] = {0.485, 0.456, 0.406}, stdev[3] = {0.229, 0.224, 0.225};
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < (size_t)H * W; i++)
            out[(size_t)c * H * W + i] = (float)((dst[i * 3 + c] - mean[c]) / stdev[c]);
    free(buf);
    *chw = out;
    *height = H;
    *width = W;
    return MD_OK;
}

static md_status da2_predict(const void *impl, const md_image *img, md_depth *out,
                             md_features *features, md_error *err)
{
    const da2_model *m = impl;
    (void)features; /* no encoder features yet: the predictor's models are trained on FastDepth */
    memset(out, 0, sizeof *out);
    float *chw;
    int H, W;
    md_status s = md_da2_preprocess(img, m->input_size_opt, &chw, &H, &W, err);
    if (s != MD_OK)
        return s;
    int Hn = (H / DA2_PATCH) * DA2_PATCH, Wn = (W / DA2_PATCH) * DA2_PATCH;
    float *net = ws_get(m, (size_t)Hn * Wn * sizeof(float), "depth", err);
    float *res = md_malloc((size_t)img->width * img->height * sizeof(float), "depth map", err);
    if (!net || !res) {
        free(chw);
        ws_put(m, net);
        free(res);
        return MD_ERR_NOMEM;
    }
    s = forward(m, chw, H, W, net, err);
    free(chw);
    if (s != MD_OK) {
        ws_put(m, net);
        free(res);
        return s;
    }
    s = bilinear(m->pool, net, 1, Hn, Wn, res, NULL, img->height, img->width, err);
    ws_put(m, net);
    if (s != MD_OK) {
        free(res);
        return s;
    }
    out->width = img->width;
    out->height = img->height;
    out->data = res;
    out->mask = NULL;
    return MD_OK;
}

static const char *da2_describe(const void *impl)
{
    return ((const da2_model *)impl)->describe;
}

/* GFLOP of one forward pass for a width x height image (multiply-add = 2). */
static double da2_gflop(const void *impl, int width, int height)
{
    const da2_model *m = impl;
    if (width <= 0 || height <= 0)
        return 0.0;
    double s = (double)m->input_size_opt / height, t = (double)m->input_size_opt / width;
    double sc = s > t ? s : t;
    double H = fmax(m->input_size_opt, nearbyint(sc * height / DA2_PATCH) * DA2_PATCH);
    double W = fmax(m->input_size_opt, nearbyint(sc * width / DA2_PATCH) * DA2_PATCH);
    double ph = floor(H / DA2_PATCH), pw = floor(W / DA2_PATCH), np = ph * pw, T = np + 1;
    double C = m->embed, M = m->mlp, F = m->features, f = 0.0;
    f += 2.0 * np * C * 3 * DA2_PATCH * DA2_PATCH;
    f += m->depth * (2.0 * T * C * (4.0 * C + 2.0 * M) + 4.0 * T * T * C);
    double hs[4] = {ph * 4, ph * 2, ph, ceil(ph / 2)}, ws[4] = {pw * 4, pw * 2, pw, ceil(pw / 2)};
    double oc0 = m->out_ch[0], oc1 = m->out_ch[1], oc3 = m->out_ch[3];
    for (int i = 0; i < 4; i++) {
        f += 2.0 * np * C * m->out_ch[i];
        f += 2.0 * hs[i] * ws[i] * F * m->out_ch[i] * 9;
    }
    f += 2.0 * np * oc0 * oc0 * 16 + 2.0 * np * oc1 * oc1 * 4 + 2.0 * hs[3] * ws[3] * oc3 * oc3 * 9;
    double conv = 2.0 * F * F * 9;
    f += conv * hs[3] * ws[3] * 2 + conv * (hs[2] * ws[2] + hs[1] * ws[1] + hs[0] * ws[0]) * 4;
    f += 2.0 * F * F * (hs[2] * ws[2] + hs[1] * ws[1] + hs[0] * ws[0] + 4 * hs[0] * ws[0]);
    f += 2.0 * 4 * hs[0] * ws[0] * F * (F / 2) * 9;
    f += 2.0 * (14 * ph) * (14 * pw) * ((F / 2) * m->head2 * 9 + m->head2);
    return f / 1e9;
}

static void da2_destroy(void *impl)
{
    da2_model *m = impl;
    if (!m)
        return;
    for (int i = 0; i < m->n_extra; i++)
        free(m->extra[i]);
    md_bufcache_free(m->cache);
    free(m->blocks);
    free(m->arena);
    free(m);
}

static void da2_info(const void *impl, md_model_info *info)
{
    *info = ((const da2_model *)impl)->info;
}

static md_status da2_preprocess_tensor(const void *impl, const md_image *img, md_tensor *out,
                                       md_error *err)
{
    const da2_model *m = impl;
    int H, W;
    md_status s = md_da2_preprocess(img, m->input_size_opt, &out->data, &H, &W, err);
    if (s != MD_OK)
        return s;
    out->ndim = 4;
    out->shape[0] = 1;
    out->shape[1] = 3;
    out->shape[2] = H;
    out->shape[3] = W;
    return MD_OK;
}

static md_precision da2_precision(const void *impl)
{
    return ((const da2_model *)impl)->type == MD_GEMM_BF16 ? MD_PRECISION_BF16
                                                           : MD_PRECISION_FP32;
}

static const md_model_backend da2_backend = {
    "depth-anything-v2", da2_predict, da2_run_tensor, da2_describe, da2_gflop,
    da2_destroy,         NULL,        da2_precision,  da2_preprocess_tensor, da2_info,
    NULL, /* every product of a bf16 model runs in bf16 */
};

static const char *encoder_name(int embed)
{
    switch (embed) {
    case 384: return "vits";
    case 768: return "vitb";
    case 1024: return "vitl";
    case 1536: return "vitg";
    default: return NULL;
    }
}

md_status md_da2_model_open(const char *path, const md_model_options *opts, md_threadpool *pool,
                            const md_model_backend **backend, void **impl, md_error *err)
{
    *backend = NULL;
    *impl = NULL;
    md_model_options o = {0};
    if (opts)
        o = *opts;
    if (o.threads < 0 || o.input_size < 0 || o.max_depth < 0)
        return md_fail(err, MD_ERR_ARG, "%s: negative model option", path);
    if (o.relative < MD_HEAD_AUTO || o.relative > MD_HEAD_METRIC)
        return md_fail(err, MD_ERR_ARG, "%s: head kind %d is not auto, relative or metric", path,
                       o.relative);
    md_weights w, renamed;
    md_status s = md_weights_open(path, &w, err);
    if (s != MD_OK)
        return s;
    md_da2_hf_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.relative = -1;
    const md_weights *named = &w;
    int hf = md_da2_is_hf_layout(&w);
    memset(&renamed, 0, sizeof renamed);
    if (hf) {
        s = md_da2_read_hf_config(path, &cfg, err);
        if (s == MD_OK)
            s = md_da2_hf_rename(&w, path, &renamed, err);
        if (s != MD_OK) {
            md_weights_free(&w);
            return s;
        }
        named = &renamed;
    }
    da2_model *m = md_calloc(1, sizeof *m, "model", err);
    if (!m) {
        md_weights_free(&renamed);
        md_weights_free(&w);
        return MD_ERR_NOMEM;
    }
    m->type = md_precision_resolve(o.precision) == MD_PRECISION_BF16 ? MD_GEMM_BF16 : MD_GEMM_F32;
    s = read_config(named, path, m, err);
    if (s == MD_OK && cfg.has_out_indices) {
        /* transformers counts hidden states from 1 (0 is the embedding) */
        for (int i = 0; i < 4 && s == MD_OK; i++) {
            if (cfg.out_indices[i] < 1 || cfg.out_indices[i] > m->depth)
                s = md_fail(err, MD_ERR_FORMAT, "%s: out_indices[%d] = %d, but the encoder has %d "
                            "layers", cfg.path, i, cfg.out_indices[i], m->depth);
            else
                m->layers[i] = cfg.out_indices[i] - 1;
        }
    }
    if (s == MD_OK)
        s = load_weights(named, path, m, err);
    md_weights_free(&renamed);
    md_weights_free(&w);
    if (s == MD_OK)
        s = prepare(m, err);
    if (s != MD_OK) {
        da2_destroy(m);
        return s;
    }
    /* Relative and metric checkpoints hold the same tensors: the kind comes
     * from config.json, else the official file names, else a flag; metric
     * when nothing says. A flag that contradicts the file wins, with a note. */
    double name_depth = 0;
    int from_name = md_da2_head_from_name(path, &name_depth);
    int file_rel = cfg.relative >= 0 ? cfg.relative : from_name;
    const char *why = cfg.relative >= 0 ? "config.json's depth_estimation_type" : "its file name";
    m->info.note[0] = '\0';
    if (o.relative == MD_HEAD_AUTO) {
        m->relative = file_rel == 1;
        if (file_rel < 0)
            snprintf(m->info.note, sizeof m->info.note,
                     "nothing in %s tells a metric from a relative head: assuming metric "
                     "(--relative if it is relative)",
                     path);
    } else {
        m->relative = o.relative == MD_HEAD_RELATIVE;
        if (file_rel >= 0 && file_rel != m->relative)
            snprintf(m->info.note, sizeof m->info.note,
                     "%s is a %s checkpoint by %s, but it is run as %s, as asked", path,
                     file_rel ? "relative" : "metric", why, m->relative ? "relative" : "metric");
    }
    double file_depth = cfg.max_depth > 0 && cfg.relative == 0 ? cfg.max_depth : name_depth;
    if (o.max_depth > 0)
        m->max_depth = (float)o.max_depth;
    else
        m->max_depth = file_depth > 0 ? (float)file_depth : 20.0f;
    m->info.output = m->relative ? MD_OUTPUT_RELATIVE : MD_OUTPUT_METRIC;
    m->info.max_depth = m->relative ? 0.0 : m->max_depth;
    m->info.indoor = m->relative ? -1 : m->max_depth <= 20.0f ? 1 : 0;
    m->input_size_opt = o.input_size > 0 ? o.input_size : 518;
    m->pool = pool;
    m->cache = md_bufcache_create((size_t)256 << 20);
    if (!m->cache) {
        da2_destroy(m);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    }
    const char *enc = encoder_name(m->embed);
    char encbuf[32];
    if (!enc) {
        snprintf(encbuf, sizeof encbuf, "vit-%d", m->embed);
        enc = encbuf;
    }
    char prec[48] = "";
    if (m->type == MD_GEMM_BF16)
        snprintf(prec, sizeof prec, ", bf16 (%s)", md_gemm_isa_name(md_gemm_isa_best(MD_GEMM_BF16)));
    if (m->relative)
        snprintf(m->describe, sizeof m->describe, "depth-anything-v2 %s relative%s%s", enc,
                 hf ? " (transformers layout)" : "", prec);
    else
        snprintf(m->describe, sizeof m->describe, "depth-anything-v2 %s metric (max %g m)%s%s",
                 enc, (double)m->max_depth, hf ? " (transformers layout)" : "", prec);
    *backend = &da2_backend;
    *impl = m;
    return MD_OK;
}
