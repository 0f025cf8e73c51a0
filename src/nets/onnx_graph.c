#include "nets/onnx_graph.h"
#include "base/base.h"
#include "base/pool.h"
#include "ops/cnn_ops.h"
#include "ops/gemm.h"
#include "ops/tensor_ops.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIMS MD_ONNX_MAX_DIMS
#define OPSET_MIN 7
#define OPSET_MAX 21

typedef enum {
    OP_CONV,
    OP_AFFINE, /* standalone BatchNormalization */
    OP_CLAMP,
    OP_SIGMOID,
    OP_BINARY,
    OP_CONCAT,
    OP_MAXPOOL,
    OP_AVGPOOL,
    OP_GAP,
    OP_GMP,
    OP_RESIZE,
    OP_GEMM,
    OP_MATMUL,
    OP_COPY, /* Flatten, Reshape, Identity, Dropout */
    OP_TRANSPOSE
} op_kind;

typedef struct {
    int ndim;
    int64_t dims[MAX_DIMS];
    size_t numel;
    bool is_const;
    float *cdata;  /* owned constant floats */
    int64_t *cint; /* owned constant integers */
    int producer;  /* op index, -1 for constants and the input */
    int last_use;
    bool is_output, released;
    int slot;    /* runtime values: activation buffer of a workspace */
    float *data; /* constants: cdata */
} gval;

typedef struct {
    op_kind kind;
    int *in;
    int n_in;
    int out;
    /* Conv (+ folded BN and activation) */
    md_conv2d_params cp;
    float *w, *b; /* owned */
    md_conv conv;  /* w and b ready to run (packed once the graph is final) */
    bool has_act;
    float lo, hi;
    /* standalone BN */
    float *scale, *shift;
    /* element-wise */
    md_binary_op bop;
    /* Concat / Flatten */
    int axis;
    md_pool2d_params pp;
    md_resize_params rp;
    md_resize_tables rt; /* built once the shapes are final */
    /* Gemm */
    float alpha, beta;
    bool trans_a, trans_b;
    int gm, gn, gk;
    int perm[MAX_DIMS];
} gop;

typedef struct {
    const char *name;
    int value;     /* -1 until defined */
    int consumers; /* node inputs + graph outputs naming it */
} name_entry;

struct md_onnx_graph {
    gval *vals;
    int n_vals, cap_vals;
    gop *ops;
    int n_ops, cap_ops;
    int input, output;
    size_t *slot_cap; /* floats of each activation buffer of a workspace */
    int n_slots;
    size_t scratch_floats; /* largest whole-image im2col: the build-time size check */
    md_onnx_graph_info info;
    int n_taps;             /* ops 0..n_taps-1: the encoder, whose outputs are pooled as features */
    size_t n_features;      /* sum of their channel counts */
    uint64_t feature_signature;
};

/* Per-run state: the activation buffers and the kernels' scratch. */
struct md_onnx_ws {
    float **slots;
    int n_slots;
    float *scratch;
    size_t scratch_floats;
    int workers;
};

typedef struct {
    md_onnx_graph *g;
    const md_onnx_model *m;
    const char *path;
    md_error *err;  /* may be NULL: the status lives in st */
    md_status st;   /* the first failure, MD_OK until then */
    name_entry *tab;
    size_t tab_cap;
    size_t max_floats;
} builder;

/* ------------------------------------------------------------ name table */

static size_t hash_name(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static name_entry *lookup(builder *b, const char *name, bool insert)
{
    size_t mask = b->tab_cap - 1;
    for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
        name_entry *e = &b->tab[i];
        if (!e->name) {
            if (!insert)
                return NULL;
            e->name = name;
            e->value = -1;
            return e;
        }
        if (strcmp(e->name, name) == 0)
            return e;
    }
}

/* ------------------------------------------------------------- helpers */

static md_status fail_node(builder *b, const md_onnx_node *n, md_status code, const char *what)
{
    return b->st = md_fail(b->err, code, "%s: node '%s' (%s): %s", b->path,
                           n->name && *n->name ? n->name : (n->n_outputs ? n->outputs[0] : "?"),
                           n->op_type, what);
}

static md_status fail_nomem(builder *b)
{
    return b->st = md_fail(b->err, MD_ERR_NOMEM, "%s: out of memory building the graph", b->path);
}

/* malloc that records a failure in the builder (and names the file). */
static void *b_alloc(builder *b, size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        fail_nomem(b);
    return p;
}

static bool shape_numel(int ndim, const int64_t *dims, size_t *numel)
{
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (dims[i] <= 0 || dims[i] > (int64_t)MD_MAX_ELEMENTS ||
            !md_mul_size(n, (size_t)dims[i], &n) || n > MD_MAX_ELEMENTS)
            return false;
    }
    *numel = n;
    return true;
}

static int new_value(builder *b)
{
    md_onnx_graph *g = b->g;
    if (g->n_vals == g->cap_vals) {
        int nc = g->cap_vals ? g->cap_vals * 2 : 64;
        gval *nv = realloc(g->vals, sizeof *nv * (size_t)nc);
        if (!nv) {
            fail_nomem(b);
            return -1;
        }
        g->vals = nv;
        g->cap_vals = nc;
    }
    gval *v = &g->vals[g->n_vals];
    memset(v, 0, sizeof *v);
    v->producer = -1;
    v->last_use = -1;
    v->slot = -1;
    return g->n_vals++;
}

static gop *new_op(builder *b, op_kind kind, int n_in)
{
    md_onnx_graph *g = b->g;
    if (g->n_ops == g->cap_ops) {
        int nc = g->cap_ops ? g->cap_ops * 2 : 64;
        gop *no = realloc(g->ops, sizeof *no * (size_t)nc);
        if (!no) {
            fail_nomem(b);
            return NULL;
        }
        g->ops = no;
        g->cap_ops = nc;
    }
    gop *op = &g->ops[g->n_ops];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    op->out = -1;
    op->in = calloc((size_t)(n_in > 0 ? n_in : 1), sizeof(int));
    if (!op->in) {
        fail_nomem(b);
        return NULL;
    }
    op->n_in = n_in;
    g->n_ops++;
    return op;
}

/* Defines a node output name as value v. */
static md_status define(builder *b, const md_onnx_node *n, const char *name, int v)
{
    if (!*name)
        return fail_node(b, n, MD_ERR_FORMAT, "empty output name");
    name_entry *e = lookup(b, name, true);
    if (e->value >= 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "output '%.200s' is defined twice", name);
        return fail_node(b, n, MD_ERR_FORMAT, msg);
    }
    e->value = v;
    return MD_OK;
}

static int consumers(builder *b, const char *name)
{
    name_entry *e = lookup(b, name, false);
    return e ? e->consumers : 0;
}

/* Value index of input i, or -1 (error filled) if missing or undefined;
 * optional inputs that are absent or "" give -2. */
static int input_value(builder *b, const md_onnx_node *n, size_t i, bool optional)
{
    if (i >= n->n_inputs || !*n->inputs[i]) {
        if (optional)
            return -2;
        char msg[64];
        snprintf(msg, sizeof msg, "missing input %zu", i);
        fail_node(b, n, MD_ERR_FORMAT, msg);
        return -1;
    }
    name_entry *e = lookup(b, n->inputs[i], false);
    if (!e || e->value < 0) {
        char msg[320];
        snprintf(msg, sizeof msg,
                 "input '%.200s' is not produced by an earlier node (graph not sorted?)",
                 n->inputs[i]);
        fail_node(b, n, MD_ERR_FORMAT, msg);
        return -1;
    }
    return e->value;
}

static md_status attr_check(builder *b, const md_onnx_node *n, const md_onnx_attr *a, int type)
{
    if (a->type != 0 && a->type != type) {
        char msg[200];
        snprintf(msg, sizeof msg, "attribute '%.100s' has type %d, expected %d", a->name,
                 a->type, type);
        return fail_node(b, n, MD_ERR_FORMAT, msg);
    }
    return MD_OK;
}

static md_status attr_int(builder *b, const md_onnx_node *n, const char *name, int64_t def,
                          int64_t *out)
{
    const md_onnx_attr *a = md_onnx_node_attr(n, name);
    *out = def;
    if (!a)
        return MD_OK;
    md_status st = attr_check(b, n, a, MD_ONNX_ATTR_INT);
    if (st == MD_OK)
        *out = a->i;
    return st;
}

static md_status attr_float(builder *b, const md_onnx_node *n, const char *name, float def,
                            float *out)
{
    const md_onnx_attr *a = md_onnx_node_attr(n, name);
    *out = def;
    if (!a)
        return MD_OK;
    md_status st = attr_check(b, n, a, MD_ONNX_ATTR_FLOAT);
    if (st == MD_OK)
        *out = a->f;
    return st;
}

static md_status attr_str(builder *b, const md_onnx_node *n, const char *name, const char *def,
                          const char **out)
{
    const md_onnx_attr *a = md_onnx_node_attr(n, name);
    *out = def;
    if (!a)
        return MD_OK;
    md_status st = attr_check(b, n, a, MD_ONNX_ATTR_STRING);
    if (st == MD_OK)
        *out = a->s ? a->s : "";
    return st;
}

/* Integer list attribute: *count = -1 if absent, else its length (<= max). */
static md_status attr_ints(builder *b, const md_onnx_node *n, const char *name, int64_t *vals,
                           int max, int *count)
{
    const md_onnx_attr *a = md_onnx_node_attr(n, name);
    *count = -1;
    if (!a)
        return MD_OK;
    md_status st = attr_check(b, n, a, MD_ONNX_ATTR_INTS);
    if (st != MD_OK)
        return st;
    if (a->n_ints > (size_t)max) {
        char msg[200];
        snprintf(msg, sizeof msg, "attribute '%.100s' has too many values", name);
        return fail_node(b, n, MD_ERR_UNSUPPORTED, msg);
    }
    for (size_t i = 0; i < a->n_ints; i++)
        vals[i] = a->ints[i];
    *count = (int)a->n_ints;
    return MD_OK;
}

/* Every operand an op computes with: float, every dimension >= 1 (so no
 * product or quotient of dimensions can overflow or divide by zero later),
 * and, for constants, finite values (a NaN weight would make believable
 * output from nothing). name names it in messages. */
static md_status need_data(builder *b, const md_onnx_node *n, int v, const char *name)
{
    const gval *x = &b->g->vals[v];
    char msg[300];
    if (x->cint || (x->is_const && !x->cdata)) {
        snprintf(msg, sizeof msg, "integer tensor '%.200s' used as data", name);
        return fail_node(b, n, MD_ERR_UNSUPPORTED, msg);
    }
    for (int i = 0; i < x->ndim; i++) {
        if (x->dims[i] < 1) {
            snprintf(msg, sizeof msg, "operand '%.200s' is empty (dimension %d is %lld)", name, i,
                     (long long)x->dims[i]);
            return fail_node(b, n, MD_ERR_FORMAT, msg);
        }
    }
    if (x->numel < 1 || x->numel > b->max_floats) {
        snprintf(msg, sizeof msg, "operand '%.200s' is empty or too large", name);
        return fail_node(b, n, MD_ERR_FORMAT, msg);
    }
    if (x->is_const) {
        for (size_t i = 0; i < x->numel; i++) {
            if (!isfinite(x->cdata[i])) {
                snprintf(msg, sizeof msg, "constant '%.200s' holds a non-finite value (%g at %zu)",
                         name, (double)x->cdata[i], i);
                return fail_node(b, n, MD_ERR_FORMAT, msg);
            }
        }
    }
    return MD_OK;
}

/* input_value + need_data: the value of data input i, or -1 (status set). */
static int data_input(builder *b, const md_onnx_node *n, size_t i)
{
    int v = input_value(b, n, i, false);
    if (v >= 0 && need_data(b, n, v, n->inputs[i]) != MD_OK)
        return -1;
    return v;
}

/* Data inputs 0 and 1 (both required) into *a and *c. */
static md_status two_data_inputs(builder *b, const md_onnx_node *n, int *a, int *c)
{
    *a = data_input(b, n, 0);
    *c = *a < 0 ? -1 : data_input(b, n, 1);
    return *c < 0 ? b->st : MD_OK;
}

/* An optional data input: its value, -2 when absent, -1 on error (status set). */
static int optional_data_input(builder *b, const md_onnx_node *n, size_t i)
{
    int v = input_value(b, n, i, true);
    if (v >= 0 && need_data(b, n, v, n->inputs[i]) != MD_OK)
        return -1;
    return v;
}

static md_status need_4d(builder *b, const md_onnx_node *n, int v)
{
    const gval *x = &b->g->vals[v];
    if (x->ndim != 4)
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "only 4-D (NCHW) inputs are supported");
    if (x->dims[0] != 1)
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "only batch size 1 is supported");
    return MD_OK;
}

/* A new runtime value with this shape, produced by the last op. */
static int out_value(builder *b, const md_onnx_node *n, int ndim, const int64_t *dims_in)
{
    size_t numel;
    int64_t dims[MAX_DIMS]; /* dims_in may point into vals, which new_value moves */
    memcpy(dims, dims_in, sizeof(int64_t) * (size_t)ndim);
    if (!shape_numel(ndim, dims, &numel) || numel > b->max_floats) {
        fail_node(b, n, MD_ERR_UNSUPPORTED, "output shape empty or too large");
        return -1;
    }
    int v = new_value(b);
    if (v < 0)
        return -1;
    gval *x = &b->g->vals[v];
    x->ndim = ndim;
    memcpy(x->dims, dims, sizeof(int64_t) * (size_t)ndim);
    x->numel = numel;
    x->producer = b->g->n_ops - 1;
    b->g->ops[b->g->n_ops - 1].out = v;
    if (define(b, n, n->outputs[0], v) != MD_OK)
        return -1;
    return v;
}

/* --------------------------------------------------------------- Conv */

static md_status spatial_params(builder *b, const md_onnx_node *n, int in_h, int in_w,
                                int kh, int kw, int *strides, int *dil, int *pads)
{
    int64_t v[8];
    int cnt;
    md_status st;
    strides[0] = strides[1] = dil[0] = dil[1] = 1;
    pads[0] = pads[1] = pads[2] = pads[3] = 0;
    if ((st = attr_ints(b, n, "strides", v, 2, &cnt)) != MD_OK)
        return st;
    if (cnt >= 0) {
        if (cnt != 2 || v[0] < 1 || v[1] < 1 || v[0] > 4096 || v[1] > 4096)
            return fail_node(b, n, MD_ERR_UNSUPPORTED, "bad strides");
        strides[0] = (int)v[0];
        strides[1] = (int)v[1];
    }
    if ((st = attr_ints(b, n, "dilations", v, 2, &cnt)) != MD_OK)
        return st;
    if (cnt >= 0) {
        if (cnt != 2 || v[0] < 1 || v[1] < 1 || v[0] > 4096 || v[1] > 4096)
            return fail_node(b, n, MD_ERR_UNSUPPORTED, "bad dilations");
        dil[0] = (int)v[0];
        dil[1] = (int)v[1];
    }
    if ((st = attr_ints(b, n, "pads", v, 4, &cnt)) != MD_OK)
        return st;
    if (cnt >= 0) {
        if (cnt != 4)
            return fail_node(b, n, MD_ERR_UNSUPPORTED, "pads must have 4 values (2-D only)");
        for (int i = 0; i < 4; i++) {
            if (v[i] < 0 || v[i] > 4096)
                return fail_node(b, n, MD_ERR_UNSUPPORTED, "negative or huge pads");
        }
        /* ONNX order: x1_begin, x2_begin, x1_end, x2_end = top, left, bottom, right */
        for (int i = 0; i < 4; i++)
            pads[i] = (int)v[i];
    }
    const char *ap;
    if ((st = attr_str(b, n, "auto_pad", "NOTSET", &ap)) != MD_OK)
        return st;
    if (strcmp(ap, "VALID") == 0) {
        pads[0] = pads[1] = pads[2] = pads[3] = 0;
    } else if (strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0) {
        int in[2] = {in_h, in_w}, k[2] = {kh, kw};
        for (int a = 0; a < 2; a++) {
            long out = (in[a] + strides[a] - 1) / strides[a];
            long total = (out - 1) * strides[a] + (long)(k[a] - 1) * dil[a] + 1 - in[a];
            if (total < 0)
                total = 0;
            int half = (int)(total / 2), rest = (int)(total - total / 2);
            pads[a] = ap[5] == 'U' ? half : rest;
            pads[a + 2] = ap[5] == 'U' ? rest : half;
        }
    } else if (strcmp(ap, "NOTSET") != 0) {
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "unknown auto_pad");
    }
    return MD_OK;
}

/* 2 x the multiply-adds of a convolution with an oh x ow output. */
static double conv_flop(const md_conv2d_params *p, double oh, double ow)
{
    return 2.0 * p->out_channels * oh * ow * (double)(p->in_channels / p->groups) * p->kernel_h *
           p->kernel_w;
}

static md_status build_conv(builder *b, const md_onnx_node *n)
{
    int xv, wv;
    if (two_data_inputs(b, n, &xv, &wv) != MD_OK)
        return b->st;
    int bv = optional_data_input(b, n, 2);
    if (bv == -1)
        return b->st;
    md_status st = need_4d(b, n, xv);
    if (st != MD_OK)
        return st;
    const gval *x = &b->g->vals[xv], *w = &b->g->vals[wv];
    if (!w->is_const || !w->cdata || w->ndim != 4)
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "weights must be a constant 4-D float tensor");
    /* the unfolded depth (C/group x kh x kw) is an int in the kernels */
    if (w->dims[1] * w->dims[2] * w->dims[3] > (int64_t)1 << 28)
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "convolution weights too large");
    int64_t group;
    if ((st = attr_int(b, n, "group", 1, &group)) != MD_OK)
        return st;
    int64_t C = x->dims[1], M = w->dims[0];
    if (group < 1 || group > C || C % group || M % group || w->dims[1] * group != C ||
        w->dims[2] > 1024 || w->dims[3] > 1024 || C > INT32_MAX || M > INT32_MAX)
        return fail_node(b, n, MD_ERR_FORMAT, "weight shape does not match input channels/group");
    int64_t ks[2];
    int cnt;
    if ((st = attr_ints(b, n, "kernel_shape", ks, 2, &cnt)) != MD_OK)
        return st;
    if (cnt >= 0 && (cnt != 2 || ks[0] != w->dims[2] || ks[1] != w->dims[3]))
        return fail_node(b, n, MD_ERR_FORMAT, "kernel_shape does not match the weights");
    if (bv >= 0) {
        const gval *bb = &b->g->vals[bv];
        if (!bb->is_const || !bb->cdata || bb->numel != (size_t)M)
            return fail_node(b, n, MD_ERR_UNSUPPORTED, "bias must be a constant of out_channels");
    }
    md_conv2d_params p = {0};
    int strides[2], dil[2], pads[4];
    if ((st = spatial_params(b, n, (int)x->dims[2], (int)x->dims[3], (int)w->dims[2],
                             (int)w->dims[3], strides, dil, pads)) != MD_OK)
        return st;
    p.in_channels = (int)C;
    p.out_channels = (int)M;
    p.kernel_h = (int)w->dims[2];
    p.kernel_w = (int)w->dims[3];
    p.stride_h = strides[0];
    p.stride_w = strides[1];
    p.dilation_h = dil[0];
    p.dilation_w = dil[1];
    p.pad_top = pads[0];
    p.pad_left = pads[1];
    p.pad_bottom = pads[2];
    p.pad_right = pads[3];
    p.groups = (int)group;
    int oh, ow;
    if (!md_conv2d_output_size(&p, (int)x->dims[2], (int)x->dims[3], &oh, &ow))
        return fail_node(b, n, MD_ERR_FORMAT, "kernel larger than the padded input");
    size_t scratch = md_conv2d_scratch_floats(&p, (int)x->dims[2], (int)x->dims[3]);
    if (scratch > b->max_floats)
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "convolution scratch too large");
    gop *op = new_op(b, OP_CONV, 1);
    if (!op)
        return MD_ERR_NOMEM;
    op->in[0] = xv;
    op->cp = p;
    op->lo = -FLT_MAX;
    op->hi = FLT_MAX;
    op->w = b_alloc(b, w->numel * sizeof(float));
    op->b = b_alloc(b, (size_t)M * sizeof(float));
    if (!op->w || !op->b)
        return b->st;
    memcpy(op->w, w->cdata, w->numel * sizeof(float));
    memset(op->b, 0, (size_t)M * sizeof(float));
    if (bv >= 0)
        memcpy(op->b, b->g->vals[bv].cdata, (size_t)M * sizeof(float));
    if (scratch > b->g->scratch_floats)
        b->g->scratch_floats = scratch;
    b->g->info.n_conv++;
    b->g->info.flop += conv_flop(&p, (double)oh, (double)ow);
    int64_t od[4] = {1, M, oh, ow};
    return out_value(b, n, 4, od) < 0 ? b->st : MD_OK;
}

/* Per-channel constant of length C for BatchNormalization. */
static const float *bn_param(builder *b, const md_onnx_node *n, size_t i, int64_t C)
{
    int v = data_input(b, n, i);
    if (v < 0)
        return NULL;
    const gval *p = &b->g->vals[v];
    if (!p->is_const || !p->cdata || p->numel != (size_t)C) {
        fail_node(b, n, MD_ERR_UNSUPPORTED, "scale/bias/mean/var must be constants of size C");
        return NULL;
    }
    return p->cdata;
}

static md_status build_bn(builder *b, const md_onnx_node *n)
{
    int xv = data_input(b, n, 0);
    if (xv < 0)
        return b->st;
    const gval *x = &b->g->vals[xv];
    if (x->ndim < 2 || x->dims[0] != 1)
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "needs an NC... input with batch 1");
    md_status st;
    int64_t C = x->dims[1], spatial;
    float eps;
    if ((st = attr_float(b, n, "epsilon", 1e-5f, &eps)) != MD_OK ||
        (st = attr_int(b, n, "spatial", 1, &spatial)) != MD_OK)
        return st;
    if (spatial != 1)
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "spatial=0 is not supported");
    for (size_t i = 1; i < n->n_outputs; i++)
        if (*n->outputs[i] && consumers(b, n->outputs[i]) > 0)
            return fail_node(b, n, MD_ERR_UNSUPPORTED, "training-mode outputs are not supported");
    const float *gamma = bn_param(b, n, 1, C), *beta = bn_param(b, n, 2, C),
                *mean = bn_param(b, n, 3, C), *var = bn_param(b, n, 4, C);
    if (!gamma || !beta || !mean || !var)
        return b->st;
    if (!isfinite(eps))
        return fail_node(b, n, MD_ERR_FORMAT, "epsilon is not finite");
    float *scale = b_alloc(b, (size_t)C * sizeof(float));
    float *shift = b_alloc(b, (size_t)C * sizeof(float));
    if (!scale || !shift) {
        free(scale);
        free(shift);
        return b->st;
    }
    for (int64_t c = 0; c < C; c++) {
        double s = gamma[c] / sqrt((double)var[c] + eps);
        scale[c] = (float)s;
        shift[c] = (float)(beta[c] - mean[c] * s);
        if (!isfinite(scale[c]) || !isfinite(shift[c])) {
            free(scale);
            free(shift);
            return fail_node(b, n, MD_ERR_FORMAT,
                             "variance + epsilon is not positive (or the folded scale overflows)");
        }
    }
    /* Fold into the producing Conv when nothing else reads the conv output. */
    int pi = x->producer;
    if (pi >= 0 && b->g->ops[pi].kind == OP_CONV && !b->g->ops[pi].has_act &&
        consumers(b, n->inputs[0]) == 1 && !x->is_output) {
        gop *op = &b->g->ops[pi];
        size_t per = (size_t)op->cp.in_channels / op->cp.groups * op->cp.kernel_h * op->cp.kernel_w;
        for (int64_t c = 0; c < C; c++) {
            for (size_t i = 0; i < per; i++)
                op->w[(size_t)c * per + i] *= scale[c];
            op->b[c] = op->b[c] * scale[c] + shift[c];
        }
        free(scale);
        free(shift);
        return define(b, n, n->outputs[0], xv);
    }
    gop *op = new_op(b, OP_AFFINE, 1);
    if (!op) {
        free(scale);
        free(shift);
        return MD_ERR_NOMEM;
    }
    op->in[0] = xv;
    op->scale = scale;
    op->shift = shift;
    return out_value(b, n, x->ndim, x->dims) < 0 ? b->st : MD_OK;
}

static float const_scalar(builder *b, const md_onnx_node *n, size_t i, float def, bool *ok)
{
    int v = input_value(b, n, i, true);
    if (v == -2)
        return def;
    if (v < 0) {
        *ok = false;
        return def;
    }
    const gval *c = &b->g->vals[v];
    if (!c->is_const || !c->cdata || c->numel != 1 || isnan(c->cdata[0])) {
        fail_node(b, n, MD_ERR_UNSUPPORTED, "min/max must be constant scalars (not NaN)");
        *ok = false;
        return def;
    }
    return c->cdata[0];
}

static md_status build_clamp(builder *b, const md_onnx_node *n, int64_t opset, bool relu)
{
    int xv = data_input(b, n, 0);
    if (xv < 0)
        return b->st;
    md_status st;
    float lo = 0.0f, hi = FLT_MAX;
    if (!relu) {
        if (opset < 11) {
            if ((st = attr_float(b, n, "min", -FLT_MAX, &lo)) != MD_OK ||
                (st = attr_float(b, n, "max", FLT_MAX, &hi)) != MD_OK)
                return st;
        } else {
            bool ok = true;
            lo = const_scalar(b, n, 1, -FLT_MAX, &ok);
            hi = const_scalar(b, n, 2, FLT_MAX, &ok);
            if (!ok)
                return b->st;
        }
        if (isnan(lo) || isnan(hi))
            return fail_node(b, n, MD_ERR_FORMAT, "min/max is NaN");
    }
    const gval *x = &b->g->vals[xv];
    int pi = x->producer;
    if (pi >= 0 && b->g->ops[pi].kind == OP_CONV && !b->g->ops[pi].has_act &&
        consumers(b, n->inputs[0]) == 1 && !x->is_output) {
        b->g->ops[pi].has_act = true;
        b->g->ops[pi].lo = lo;
        b->g->ops[pi].hi = hi;
        return define(b, n, n->outputs[0], xv);
    }
    gop *op = new_op(b, OP_CLAMP, 1);
    if (!op)
        return MD_ERR_NOMEM;
    op->in[0] = xv;
    op->lo = lo;
    op->hi = hi;
    return out_value(b, n, x->ndim, x->dims) < 0 ? b->st : MD_OK;
}

static md_status build_unary_copy(builder *b, const md_onnx_node *n, op_kind kind, int ndim,
                                  const int64_t *dims)
{
    int xv = data_input(b, n, 0);
    if (xv < 0)
        return b->st;
    const gval *x = &b->g->vals[xv];
    size_t numel;
    if (!dims) {
        ndim = x->ndim;
        dims = x->dims;
    }
    if (!shape_numel(ndim, dims, &numel) || numel != x->numel)
        return fail_node(b, n, MD_ERR_FORMAT, "new shape does not hold the same element count");
    gop *op = new_op(b, kind, 1);
    if (!op)
        return MD_ERR_NOMEM;
    op->in[0] = xv;
    return out_value(b, n, ndim, dims) < 0 ? b->st : MD_OK;
}

static md_status build_binary(builder *b, const md_onnx_node *n, md_binary_op bop)
{
    int av, bv;
    if (two_data_inputs(b, n, &av, &bv) != MD_OK)
        return b->st;
    const gval *A = &b->g->vals[av], *B = &b->g->vals[bv];
    int nd = A->ndim > B->ndim ? A->ndim : B->ndim;
    int64_t od[MAX_DIMS];
    for (int i = 0; i < nd; i++) {
        int ia = i - (nd - A->ndim), ib = i - (nd - B->ndim);
        int64_t da = ia >= 0 ? A->dims[ia] : 1, db = ib >= 0 ? B->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return fail_node(b, n, MD_ERR_FORMAT, "shapes cannot be broadcast");
        od[i] = da == 1 ? db : da; /* numpy's rule (a size-1 axis takes the other's size) */
    }
    gop *op = new_op(b, OP_BINARY, 2);
    if (!op)
        return MD_ERR_NOMEM;
    op->in[0] = av;
    op->in[1] = bv;
    op->bop = bop;
    return out_value(b, n, nd, od) < 0 ? b->st : MD_OK;
}

static md_status build_concat(builder *b, const md_onnx_node *n)
{
    if (n->n_inputs < 1 || n->n_inputs > 4096)
        return fail_node(b, n, MD_ERR_FORMAT, "bad input count");
    int64_t axis;
    md_status st = attr_int(b, n, "axis", INT64_MIN, &axis);
    if (st != MD_OK)
        return st;
    if (axis == INT64_MIN)
        return fail_node(b, n, MD_ERR_FORMAT, "missing axis");
    int first = data_input(b, n, 0);
    if (first < 0)
        return b->st;
    int nd = b->g->vals[first].ndim;
    if (axis < 0)
        axis += nd;
    if (axis < 0 || axis >= nd)
        return fail_node(b, n, MD_ERR_FORMAT, "axis out of range");
    int64_t od[MAX_DIMS];
    memcpy(od, b->g->vals[first].dims, sizeof od);
    od[axis] = 0;
    gop *op = new_op(b, OP_CONCAT, (int)n->n_inputs);
    if (!op)
        return MD_ERR_NOMEM;
    for (size_t i = 0; i < n->n_inputs; i++) {
        int v = data_input(b, n, i);
        if (v < 0)
            return b->st;
        const gval *x = &b->g->vals[v];
        if (x->ndim != nd)
            return fail_node(b, n, MD_ERR_FORMAT, "inputs differ in rank");
        for (int d = 0; d < nd; d++)
            if (d != axis && x->dims[d] != od[d])
                return fail_node(b, n, MD_ERR_FORMAT, "inputs differ off the axis");
        od[axis] += x->dims[axis];
        if (od[axis] > (int64_t)MD_MAX_ELEMENTS)
            return fail_node(b, n, MD_ERR_FORMAT, "too large");
        op->in[i] = v;
    }
    op->axis = (int)axis;
    return out_value(b, n, nd, od) < 0 ? b->st : MD_OK;
}

static md_status build_pool(builder *b, const md_onnx_node *n, bool is_max)
{
    int xv = data_input(b, n, 0);
    if (xv < 0)
        return b->st;
    md_status st = need_4d(b, n, xv);
    if (st != MD_OK)
        return st;
    const gval *x = &b->g->vals[xv];
    for (size_t i = 1; i < n->n_outputs; i++)
        if (*n->outputs[i] && consumers(b, n->outputs[i]) > 0)
            return fail_node(b, n, MD_ERR_UNSUPPORTED, "the indices output is not supported");
    int64_t ks[2], ceil_mode, cip;
    int cnt;
    if ((st = attr_ints(b, n, "kernel_shape", ks, 2, &cnt)) != MD_OK)
        return st;
    if (cnt != 2 || ks[0] < 1 || ks[1] < 1 || ks[0] > 4096 || ks[1] > 4096)
        return fail_node(b, n, MD_ERR_FORMAT, "kernel_shape must give 2 positive sizes");
    if ((st = attr_int(b, n, "ceil_mode", 0, &ceil_mode)) != MD_OK ||
        (st = attr_int(b, n, "count_include_pad", 0, &cip)) != MD_OK)
        return st;
    int strides[2], dil[2], pads[4];
    if ((st = spatial_params(b, n, (int)x->dims[2], (int)x->dims[3], (int)ks[0], (int)ks[1],
                             strides, dil, pads)) != MD_OK)
        return st;
    if (dil[0] != 1 || dil[1] != 1)
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "dilated pooling is not supported");
    /* A pad as large as the kernel makes windows of padding only (nothing to
     * take the maximum or mean of); ONNX requires pads smaller than the kernel. */
    if (pads[0] >= ks[0] || pads[2] >= ks[0] || pads[1] >= ks[1] || pads[3] >= ks[1])
        return fail_node(b, n, MD_ERR_FORMAT, "pads must be smaller than the kernel");
    md_pool2d_params p = {(int)ks[0], (int)ks[1], strides[0], strides[1], pads[0], pads[1],
                          pads[2], pads[3], (int)(cip != 0)};
    int64_t in[2] = {x->dims[2], x->dims[3]}, out[2];
    for (int a = 0; a < 2; a++) {
        int64_t span = in[a] + pads[a] + pads[a + 2] - ks[a];
        int s = strides[a];
        if (span < 0)
            return fail_node(b, n, MD_ERR_FORMAT, "kernel larger than the padded input");
        out[a] = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
        /* ceil_mode: the last window must start inside the input or left padding */
        if (ceil_mode && (out[a] - 1) * s >= in[a] + pads[a])
            out[a]--;
    }
    gop *op = new_op(b, is_max ? OP_MAXPOOL : OP_AVGPOOL, 1);
    if (!op)
        return MD_ERR_NOMEM;
    op->in[0] = xv;
    op->pp = p;
    int64_t od[4] = {1, x->dims[1], out[0], out[1]};
    return out_value(b, n, 4, od) < 0 ? b->st : MD_OK;
}

static md_status build_global_pool(builder *b, const md_onnx_node *n, bool is_max)
{
    int xv = data_input(b, n, 0);
    if (xv < 0)
        return b->st;
    md_status st = need_4d(b, n, xv);
    if (st != MD_OK)
        return st;
    gop *op = new_op(b, is_max ? OP_GMP : OP_GAP, 1);
    if (!op)
        return MD_ERR_NOMEM;
    op->in[0] = xv;
    int64_t od[4] = {1, b->g->vals[xv].dims[1], 1, 1};
    return out_value(b, n, 4, od) < 0 ? b->st : MD_OK;
}

/* Upsample (opset 7: scales attribute; 9: scales input) and Resize (10: scales
 * input, asymmetric; 11+: roi, scales, sizes and the coordinate attributes). */
static md_status build_resize(builder *b, const md_onnx_node *n, int64_t opset, bool upsample)
{
    int xv = data_input(b, n, 0);
    if (xv < 0)
        return b->st;
    md_status st = need_4d(b, n, xv);
    if (st != MD_OK)
        return st;
    const gval *x = &b->g->vals[xv];
    double scales[4] = {0, 0, 0, 0};
    int64_t sizes[4] = {0, 0, 0, 0};
    bool have_scales = false, have_sizes = false;
    if (upsample && opset < 9) {
        const md_onnx_attr *a = md_onnx_node_attr(n, "scales");
        if (!a || a->n_floats != 4)
            return fail_node(b, n, MD_ERR_FORMAT, "needs a 4-value scales attribute");
        for (int i = 0; i < 4; i++)
            scales[i] = a->floats[i];
        have_scales = true;
    } else {
        size_t si = (upsample || opset < 11) ? 1 : 2;
        int sv = input_value(b, n, si, true);
        int zv = (upsample || opset < 11) ? -2 : input_value(b, n, 3, true);
        if (sv == -1 || zv == -1)
            return b->st;
        if (sv >= 0 && b->g->vals[sv].numel > 0) {
            const gval *s = &b->g->vals[sv];
            if (!s->is_const || !s->cdata || s->numel != 4)
                return fail_node(b, n, MD_ERR_UNSUPPORTED, "scales must be a constant of 4 floats");
            for (int i = 0; i < 4; i++)
                scales[i] = s->cdata[i];
            have_scales = true;
        }
        if (zv >= 0) {
            const gval *s = &b->g->vals[zv];
            if (!s->is_const || !s->cint || s->numel != 4)
                return fail_node(b, n, MD_ERR_UNSUPPORTED, "sizes must be a constant of 4 ints");
            for (int i = 0; i < 4; i++)
                sizes[i] = s->cint[i];
            have_sizes = true;
        }
        if (have_scales == have_sizes)
            return fail_node(b, n, MD_ERR_FORMAT, "needs exactly one of scales and sizes");
    }
    int64_t od[4];
    for (int i = 0; i < 4; i++) {
        if (have_sizes) {
            od[i] = sizes[i];
        } else {
            if (!(scales[i] > 0.0) || !(scales[i] < 1e6))
                return fail_node(b, n, MD_ERR_FORMAT, "scales must be positive");
            od[i] = (int64_t)floor((double)x->dims[i] * (double)(float)scales[i]);
        }
        if (od[i] < 1 || od[i] > MD_MAX_DIM)
            return fail_node(b, n, MD_ERR_UNSUPPORTED, "output size out of range");
    }
    if (od[0] != 1 || od[1] != x->dims[1])
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "only spatial (H, W) resizing is supported");
    md_resize_params rp = {0};
    const char *mode, *ctm = "asymmetric", *nm = "floor";
    if ((st = attr_str(b, n, "mode", "nearest", &mode)) != MD_OK)
        return st;
    if (strcmp(mode, "nearest") == 0)
        rp.linear = false;
    else if (strcmp(mode, "linear") == 0 || strcmp(mode, "bilinear") == 0)
        rp.linear = true;
    else {
        char msg[200];
        snprintf(msg, sizeof msg, "mode '%.100s' is not supported (nearest, linear)", mode);
        return fail_node(b, n, MD_ERR_UNSUPPORTED, msg);
    }
    if (!upsample && opset >= 11) {
        int64_t antialias;
        int cnt;
        int64_t axes[8];
        if ((st = attr_str(b, n, "coordinate_transformation_mode", "half_pixel", &ctm)) != MD_OK ||
            (st = attr_str(b, n, "nearest_mode", "round_prefer_floor", &nm)) != MD_OK ||
            (st = attr_int(b, n, "antialias", 0, &antialias)) != MD_OK ||
            (st = attr_ints(b, n, "axes", axes, 8, &cnt)) != MD_OK)
            return st;
        if (antialias || cnt >= 0)
            return fail_node(b, n, MD_ERR_UNSUPPORTED, "antialias and axes are not supported");
    }
    if (strcmp(ctm, "half_pixel") == 0)
        rp.coord = MD_COORD_HALF_PIXEL;
    else if (strcmp(ctm, "pytorch_half_pixel") == 0)
        rp.coord = MD_COORD_PYTORCH_HALF_PIXEL;
    else if (strcmp(ctm, "align_corners") == 0)
        rp.coord = MD_COORD_ALIGN_CORNERS;
    else if (strcmp(ctm, "asymmetric") == 0)
        rp.coord = MD_COORD_ASYMMETRIC;
    else {
        char msg[200];
        snprintf(msg, sizeof msg, "coordinate_transformation_mode '%.100s' is not supported", ctm);
        return fail_node(b, n, MD_ERR_UNSUPPORTED, msg);
    }
    if (strcmp(nm, "round_prefer_floor") == 0)
        rp.nearest = MD_NEAREST_ROUND_PREFER_FLOOR;
    else if (strcmp(nm, "round_prefer_ceil") == 0)
        rp.nearest = MD_NEAREST_ROUND_PREFER_CEIL;
    else if (strcmp(nm, "floor") == 0)
        rp.nearest = MD_NEAREST_FLOOR;
    else if (strcmp(nm, "ceil") == 0)
        rp.nearest = MD_NEAREST_CEIL;
    else
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "unknown nearest_mode");
    rp.scale_h = have_scales ? (float)scales[2] : (float)od[2] / (float)x->dims[2];
    rp.scale_w = have_scales ? (float)scales[3] : (float)od[3] / (float)x->dims[3];
    gop *op = new_op(b, OP_RESIZE, 1);
    if (!op)
        return MD_ERR_NOMEM;
    op->in[0] = xv;
    op->rp = rp;
    return out_value(b, n, 4, od) < 0 ? b->st : MD_OK;
}

static md_status build_gemm(builder *b, const md_onnx_node *n, bool matmul)
{
    int av, bv;
    if (two_data_inputs(b, n, &av, &bv) != MD_OK)
        return b->st;
    int cv = matmul ? -2 : optional_data_input(b, n, 2);
    if (cv == -1)
        return b->st;
    md_status st;
    const gval *A = &b->g->vals[av], *B = &b->g->vals[bv];
    int64_t ta = 0, tb = 0;
    float alpha = 1.0f, beta = 1.0f;
    if (!matmul && ((st = attr_int(b, n, "transA", 0, &ta)) != MD_OK ||
                    (st = attr_int(b, n, "transB", 0, &tb)) != MD_OK ||
                    (st = attr_float(b, n, "alpha", 1.0f, &alpha)) != MD_OK ||
                    (st = attr_float(b, n, "beta", 1.0f, &beta)) != MD_OK))
        return st;
    if (!isfinite(alpha) || !isfinite(beta))
        return fail_node(b, n, MD_ERR_FORMAT, "alpha and beta must be finite");
    if (B->ndim != 2 || A->ndim < 2 || (!matmul && A->ndim != 2))
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "needs a 2-D second operand (and 2-D A for Gemm)");
    int64_t K = ta ? A->dims[0] : A->dims[A->ndim - 1];
    int64_t M = ta ? A->dims[1] : (int64_t)(A->numel / (size_t)A->dims[A->ndim - 1]);
    int64_t Kb = tb ? B->dims[1] : B->dims[0], N = tb ? B->dims[0] : B->dims[1];
    if (K != Kb || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX)
        return fail_node(b, n, MD_ERR_FORMAT, "inner dimensions differ");
    int64_t od[MAX_DIMS];
    int nd = A->ndim;
    if (matmul) {
        memcpy(od, A->dims, sizeof od);
        od[nd - 1] = N;
    } else {
        od[0] = M;
        od[1] = N;
    }
    if (cv >= 0) {
        const gval *C = &b->g->vals[cv];
        if (C->cint || C->ndim > 2 ||
            (C->ndim == 2 && ((C->dims[0] != 1 && C->dims[0] != M) ||
                              (C->dims[1] != 1 && C->dims[1] != N))) ||
            (C->ndim == 1 && C->dims[0] != 1 && C->dims[0] != N))
            return fail_node(b, n, MD_ERR_FORMAT, "C cannot be broadcast to (M, N)");
    }
    gop *op = new_op(b, matmul ? OP_MATMUL : OP_GEMM, cv >= 0 ? 3 : 2);
    if (!op)
        return MD_ERR_NOMEM;
    op->in[0] = av;
    op->in[1] = bv;
    if (cv >= 0)
        op->in[2] = cv;
    op->alpha = alpha;
    op->beta = beta;
    op->trans_a = ta != 0;
    op->trans_b = tb != 0;
    op->gm = (int)M;
    op->gn = (int)N;
    op->gk = (int)K;
    b->g->info.flop += 2.0 * (double)M * (double)N * (double)K;
    return out_value(b, n, matmul ? nd : 2, od) < 0 ? b->st : MD_OK;
}

static md_status build_flatten(builder *b, const md_onnx_node *n)
{
    int xv = data_input(b, n, 0); /* non-empty, so the products below stay bounded */
    if (xv < 0)
        return b->st;
    const gval *x = &b->g->vals[xv];
    int64_t axis;
    md_status st = attr_int(b, n, "axis", 1, &axis);
    if (st != MD_OK)
        return st;
    if (axis < 0)
        axis += x->ndim;
    if (axis < 0 || axis > x->ndim)
        return fail_node(b, n, MD_ERR_FORMAT, "axis out of range");
    int64_t od[2] = {1, 1};
    for (int i = 0; i < x->ndim; i++)
        od[i < axis ? 0 : 1] *= x->dims[i];
    return build_unary_copy(b, n, OP_COPY, 2, od);
}

static md_status build_reshape(builder *b, const md_onnx_node *n)
{
    int xv = data_input(b, n, 0);
    if (xv < 0)
        return b->st;
    int sv = input_value(b, n, 1, false);
    if (sv < 0)
        return b->st;
    const gval *x = &b->g->vals[xv], *s = &b->g->vals[sv];
    if (!s->is_const || !s->cint || s->ndim != 1 || s->numel > MAX_DIMS)
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "shape must be a constant 1-D int64 tensor");
    int64_t allowzero;
    md_status st = attr_int(b, n, "allowzero", 0, &allowzero);
    if (st != MD_OK)
        return st;
    int nd = (int)s->numel, infer = -1;
    int64_t od[MAX_DIMS];
    size_t known = 1;
    for (int i = 0; i < nd; i++) {
        int64_t d = s->cint[i];
        if (d == 0 && !allowzero) {
            if (i >= x->ndim)
                return fail_node(b, n, MD_ERR_FORMAT, "0 copies a dimension the input lacks");
            d = x->dims[i];
        }
        if (d == -1) {
            if (infer >= 0)
                return fail_node(b, n, MD_ERR_FORMAT, "more than one -1");
            infer = i;
            od[i] = 1;
            continue;
        }
        if (d <= 0 || !md_mul_size(known, (size_t)d, &known) || known > MD_MAX_ELEMENTS)
            return fail_node(b, n, MD_ERR_UNSUPPORTED, "bad or empty target shape");
        od[i] = d;
    }
    if (infer >= 0) {
        if (known == 0 || x->numel % known)
            return fail_node(b, n, MD_ERR_FORMAT, "-1 cannot be inferred");
        od[infer] = (int64_t)(x->numel / known);
    }
    return build_unary_copy(b, n, OP_COPY, nd, od);
}

static md_status build_transpose(builder *b, const md_onnx_node *n)
{
    int xv = data_input(b, n, 0);
    if (xv < 0)
        return b->st;
    md_status st;
    const gval *x = &b->g->vals[xv];
    int64_t perm[MAX_DIMS];
    int cnt;
    if ((st = attr_ints(b, n, "perm", perm, MAX_DIMS, &cnt)) != MD_OK)
        return st;
    if (cnt < 0) {
        cnt = x->ndim;
        for (int i = 0; i < cnt; i++)
            perm[i] = cnt - 1 - i;
    }
    if (cnt != x->ndim)
        return fail_node(b, n, MD_ERR_FORMAT, "perm length differs from the rank");
    bool seen[MAX_DIMS] = {false};
    int64_t od[MAX_DIMS];
    for (int i = 0; i < cnt; i++) {
        if (perm[i] < 0 || perm[i] >= cnt || seen[perm[i]])
            return fail_node(b, n, MD_ERR_FORMAT, "perm is not a permutation");
        seen[perm[i]] = true;
        od[i] = x->dims[perm[i]];
    }
    gop *op = new_op(b, OP_TRANSPOSE, 1);
    if (!op)
        return MD_ERR_NOMEM;
    op->in[0] = xv;
    for (int i = 0; i < cnt; i++)
        op->perm[i] = (int)perm[i];
    return out_value(b, n, cnt, od) < 0 ? b->st : MD_OK;
}

/* A constant value from a tensor (initializer or Constant node). */
static int const_value(builder *b, const md_onnx_tensor *t)
{
    int v = new_value(b);
    if (v < 0)
        return -1;
    gval *x = &b->g->vals[v];
    x->is_const = true;
    x->ndim = t->ndim;
    memcpy(x->dims, t->dims, sizeof(int64_t) * (size_t)t->ndim);
    x->numel = t->numel;
    size_t bytes = (t->numel ? t->numel : 1) * (t->f32 ? sizeof(float) : sizeof(int64_t));
    void *p = b_alloc(b, bytes);
    if (!p)
        return -1;
    if (t->f32) {
        x->cdata = p;
        memcpy(p, t->f32, t->numel * sizeof(float));
    } else {
        x->cint = p;
        if (t->i64)
            memcpy(p, t->i64, t->numel * sizeof(int64_t));
    }
    x->data = x->cdata;
    return v;
}

static md_status build_constant(builder *b, const md_onnx_node *n)
{
    const md_onnx_attr *a = md_onnx_node_attr(n, "value");
    if (!a || !a->t || n->n_attrs != 1)
        return fail_node(b, n, MD_ERR_UNSUPPORTED, "only the 'value' tensor form is supported");
    int v = const_value(b, a->t);
    if (v < 0)
        return b->st;
    return define(b, n, n->outputs[0], v);
}

static md_status build_node(builder *b, const md_onnx_node *n, int64_t opset)
{
    const char *op = n->op_type;
    if (n->n_outputs < 1)
        return fail_node(b, n, MD_ERR_FORMAT, "node has no output");
    if (n->domain && *n->domain && strcmp(n->domain, "ai.onnx") != 0) {
        return b->st = md_fail(b->err, MD_ERR_UNSUPPORTED, "%s: unsupported operator %s::%s",
                               b->path, n->domain, op);
    }
    if (!strcmp(op, "Conv"))
        return build_conv(b, n);
    if (!strcmp(op, "BatchNormalization"))
        return build_bn(b, n);
    if (!strcmp(op, "Relu"))
        return build_clamp(b, n, opset, true);
    if (!strcmp(op, "Clip"))
        return build_clamp(b, n, opset, false);
    if (!strcmp(op, "Sigmoid"))
        return build_unary_copy(b, n, OP_SIGMOID, 0, NULL);
    if (!strcmp(op, "Add"))
        return build_binary(b, n, MD_BIN_ADD);
    if (!strcmp(op, "Sub"))
        return build_binary(b, n, MD_BIN_SUB);
    if (!strcmp(op, "Mul"))
        return build_binary(b, n, MD_BIN_MUL);
    if (!strcmp(op, "Div"))
        return build_binary(b, n, MD_BIN_DIV);
    if (!strcmp(op, "Concat"))
        return build_concat(b, n);
    if (!strcmp(op, "MaxPool"))
        return build_pool(b, n, true);
    if (!strcmp(op, "AveragePool"))
        return build_pool(b, n, false);
    if (!strcmp(op, "GlobalAveragePool"))
        return build_global_pool(b, n, false);
    if (!strcmp(op, "GlobalMaxPool"))
        return build_global_pool(b, n, true);
    if (!strcmp(op, "Upsample")) {
        if (opset >= 10)
            return fail_node(b, n, MD_ERR_UNSUPPORTED, "Upsample is deprecated from opset 10");
        return build_resize(b, n, opset, true);
    }
    if (!strcmp(op, "Resize")) {
        if (opset < 10)
            return fail_node(b, n, MD_ERR_FORMAT, "Resize needs opset 10 or later");
        return build_resize(b, n, opset, false);
    }
    if (!strcmp(op, "Gemm"))
        return build_gemm(b, n, false);
    if (!strcmp(op, "MatMul"))
        return build_gemm(b, n, true);
    if (!strcmp(op, "Flatten"))
        return build_flatten(b, n);
    if (!strcmp(op, "Reshape"))
        return build_reshape(b, n);
    if (!strcmp(op, "Transpose"))
        return build_transpose(b, n);
    if (!strcmp(op, "Identity") || !strcmp(op, "Dropout")) {
        for (size_t i = 1; i < n->n_outputs; i++)
            if (*n->outputs[i] && consumers(b, n->outputs[i]) > 0)
                return fail_node(b, n, MD_ERR_UNSUPPORTED, "the mask output is not supported");
        return build_unary_copy(b, n, OP_COPY, 0, NULL);
    }
    if (!strcmp(op, "Constant"))
        return build_constant(b, n);
    return b->st = md_fail(b->err, MD_ERR_UNSUPPORTED,
                   "%s: unsupported ONNX operator '%s' (node '%s'); supported: Conv, "
                   "BatchNormalization, Relu, Clip, Sigmoid, Add, Sub, Mul, Div, Concat, MaxPool, "
                   "AveragePool, GlobalAveragePool, GlobalMaxPool, Upsample, Resize, Gemm, MatMul, "
                   "Flatten, Reshape, Transpose, Identity, Dropout, Constant",
                   b->path, op, n->name ? n->name : "");
}

static bool is_pointwise(const md_conv2d_params *p)
{
    return p->groups == 1 && p->kernel_h == 1 && p->kernel_w == 1 && p->stride_h == 1 &&
           p->stride_w == 1 && !p->pad_top && !p->pad_left && !p->pad_bottom && !p->pad_right;
}

/* Exact graph rewrites, after folding and once the outputs are known:
 *  - a pointwise Conv (with its folded BN/activation) right after a nearest
 *    Resize moves before it: every output pixel copies one input pixel and a
 *    pointwise conv acts per pixel, so the values are identical, computed on
 *    fewer pixels (FastDepth's last layer runs at 112x112 instead of 224x224);
 *  - Add(Resize(x), s) with s the same shape as the sum becomes one Resize
 *    that adds s as it writes. */
static md_status optimise(builder *b)
{
    md_onnx_graph *g = b->g;
    int nv = g->n_vals;
    int *uses = calloc((size_t)nv + 1, sizeof(int));
    int *prod = malloc(sizeof(int) * ((size_t)nv + 1));
    if (!uses || !prod) {
        free(uses);
        free(prod);
        return md_fail(b->err, MD_ERR_NOMEM, "%s: out of memory", b->path);
    }
    for (int i = 0; i < g->n_ops; i++)
        for (int j = 0; j < g->ops[i].n_in; j++)
            uses[g->ops[i].in[j]]++;
    for (int i = 0; i + 1 < g->n_ops; i++) {
        gop *A = &g->ops[i], *B = &g->ops[i + 1];
        if (A->kind != OP_RESIZE || A->rp.linear || A->n_in != 1 || B->kind != OP_CONV ||
            !is_pointwise(&B->cp) || B->in[0] != A->out || uses[A->out] != 1 ||
            g->vals[A->out].is_output)
            continue;
        int t = new_value(b); /* conv output at the small size */
        if (t < 0) {
            free(uses);
            free(prod);
            return MD_ERR_NOMEM;
        }
        gval *small = &g->vals[A->in[0]], *tv = &g->vals[t], *big = &g->vals[B->out];
        tv->ndim = 4;
        tv->dims[0] = 1;
        tv->dims[1] = big->dims[1];
        tv->dims[2] = small->dims[2];
        tv->dims[3] = small->dims[3];
        tv->numel = (size_t)tv->dims[1] * (size_t)tv->dims[2] * (size_t)tv->dims[3];
        g->info.flop -= 2.0 * (double)B->cp.in_channels * (double)(big->numel - tv->numel);
        int big_out = B->out;
        B->in[0] = A->in[0];
        B->out = t;
        A->in[0] = t;
        A->out = big_out;
        gop tmp = *A;
        *A = *B;
        *B = tmp;
        i++;
    }
    for (int v = 0; v <= nv && v < g->n_vals; v++)
        prod[v] = -1;
    for (int i = 0; i < g->n_ops; i++)
        if (g->ops[i].out < nv)
            prod[g->ops[i].out] = i;
    /* Mark fused Adds first (A stays at its index), then compact. */
    for (int i = 0; i < g->n_ops; i++) {
        gop *B = &g->ops[i];
        if (B->kind != OP_BINARY || B->bop != MD_BIN_ADD)
            continue;
        for (int k = 0; k < 2; k++) {
            int r = B->in[k], s2 = B->in[1 - k];
            int ai = r < nv ? prod[r] : -1;
            if (ai < 0 || ai >= i)
                continue;
            gop *A = &g->ops[ai];
            const gval *sv = &g->vals[s2], *ov = &g->vals[B->out];
            int sp = s2 < nv ? prod[s2] : -1;
            if (A->kind != OP_RESIZE || A->n_in != 1 || uses[r] != 1 || g->vals[r].is_output ||
                sv->ndim != ov->ndim || sv->numel != ov->numel ||
                memcmp(sv->dims, ov->dims, sizeof(int64_t) * (size_t)ov->ndim) != 0 ||
                sp >= ai || s2 == r)
                continue;
            int *in2 = realloc(A->in, 2 * sizeof(int));
            if (!in2)
                continue;
            A->in = in2;
            A->in[1] = s2;
            A->n_in = 2;
            A->out = B->out;
            B->out = -1; /* removed */
            break;
        }
    }
    int kept = 0;
    for (int i = 0; i < g->n_ops; i++) {
        if (g->ops[i].out < 0) {
            free(g->ops[i].in);
            continue;
        }
        g->ops[kept++] = g->ops[i];
    }
    g->n_ops = kept;
    free(uses);
    free(prod);
    return MD_OK;
}

/* ---------------------------------------------------- memory planning */

/* A free slot for need floats, none of those in avoid (may be NULL): the
 * smallest that fits, else the largest grown, else a new one. */
static int take_slot(md_onnx_graph *g, bool *busy, size_t need, const bool *avoid)
{
    int best = -1, largest = -1;
    for (int i = 0; i < g->n_slots; i++) {
        if (busy[i] || (avoid && avoid[i]))
            continue;
        if (g->slot_cap[i] >= need && (best < 0 || g->slot_cap[i] < g->slot_cap[best]))
            best = i;
        if (largest < 0 || g->slot_cap[i] > g->slot_cap[largest])
            largest = i;
    }
    if (best < 0 && largest >= 0) {
        best = largest;
        g->slot_cap[best] = need;
    }
    if (best < 0) {
        best = g->n_slots++;
        g->slot_cap[best] = need;
    }
    busy[best] = true;
    return best;
}

/* Each op's output takes a slot freed by an earlier op, but not one just
 * freed by a convolution that sums every input channel (not depthwise):
 * all its workers read all of that input, so its lines sit in every core's
 * cache, and the next op's stores would each first invalidate the other
 * cores' copies. FastDepth's 3x3 depthwise layers on 14x14 and 7x7 planes
 * wrote where the pointwise layer before them had read and ran no faster on
 * two threads than on one (now 1.3-1.8x). FastDepth on two threads, paired
 * runs (Zen 4): fp32 0.983x the time, bf16 0.975x; one thread unchanged;
 * activations 11.4 -> 11.7 MB. */
static md_status plan_memory(builder *b)
{
    md_onnx_graph *g = b->g;
    for (int i = 0; i < g->n_ops; i++)
        for (int j = 0; j < g->ops[i].n_in; j++)
            g->vals[g->ops[i].in[j]].last_use = i;
    /* At most one slot per runtime value. */
    g->slot_cap = calloc((size_t)g->n_vals + 1, sizeof(size_t));
    bool *busy = calloc((size_t)g->n_vals + 1, sizeof(bool));
    if (!g->slot_cap || !busy) {
        free(busy);
        return md_fail(b->err, MD_ERR_NOMEM, "%s: out of memory planning buffers", b->path);
    }
    bool *shared = calloc((size_t)g->n_vals + 1, sizeof(bool));
    if (!shared) {
        free(busy);
        return md_fail(b->err, MD_ERR_NOMEM, "%s: out of memory planning buffers", b->path);
    }
    gval *in = &g->vals[g->input];
    in->slot = take_slot(g, busy, in->numel, NULL);
    for (int i = 0; i < g->n_ops; i++) {
        gop *op = &g->ops[i];
        gval *o = &g->vals[op->out];
        o->slot = take_slot(g, busy, o->numel, shared);
        memset(shared, 0, sizeof(bool) * ((size_t)g->n_vals + 1));
        bool all_read = op->kind == OP_CONV && !md_conv_is_depthwise(&op->cp);
        for (int j = -1; j < op->n_in; j++) {
            gval *x = j < 0 ? o : &g->vals[op->in[j]];
            if (!x->is_const && !x->is_output && !x->released && x->slot >= 0 &&
                x->last_use <= i) {
                busy[x->slot] = false;
                shared[x->slot] = all_read;
                x->released = true;
            }
        }
    }
    free(shared);
    free(busy);
    size_t total = g->scratch_floats;
    for (int i = 0; i < g->n_slots; i++)
        total += g->slot_cap[i] + 16;
    if (total > b->max_floats)
        return md_fail(b->err, MD_ERR_UNSUPPORTED,
                       "%s: the graph needs %zu MB of activations, more than the %zu MB allowed",
                       b->path, total * 4 >> 20, b->max_floats * 4 >> 20);
    g->info.arena_bytes = total * sizeof(float);
    return MD_OK;
}

/* -------------------------------------------------------------- build */

/* The encoder of an encoder-decoder CNN ends at its bottleneck: the widest
 * op output at the smallest spatial size reached before the first resize
 * (the last such op when several tie). Its ops' per-channel means describe the
 * image as the network saw it: the scale predictor's features. A graph
 * without 4-D op outputs has none. */
static void find_encoder(md_onnx_graph *g)
{
    int64_t min_area = -1, best_c = -1;
    int last = -1;
    for (int i = 0; i < g->n_ops; i++) {
        const gop *op = &g->ops[i];
        if (op->kind == OP_RESIZE)
            break;
        const gval *o = &g->vals[op->out];
        if (o->ndim != 4 || o->dims[0] != 1)
            break;
        int64_t area = o->dims[2] * o->dims[3];
        if (min_area < 0 || area < min_area) {
            min_area = area;
            best_c = -1;
        }
        if (area == min_area && o->dims[1] >= best_c) {
            best_c = o->dims[1];
            last = i;
        }
    }
    g->n_taps = last + 1;
    g->n_features = 0;
    /* the signature: FNV-1a over the tap count and every tap's channel count */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i <= last; i++) {
        int64_t c = g->vals[g->ops[i].out].dims[1];
        g->n_features += (size_t)c;
        for (int k = 0; k < 8; k++) {
            h ^= (uint64_t)((c >> (8 * k)) & 0xff);
            h *= 0x100000001b3ULL;
        }
    }
    g->feature_signature = g->n_taps ? h ^ (uint64_t)g->n_taps : 0;
}

size_t md_onnx_graph_features(const md_onnx_graph *g, uint64_t *signature)
{
    if (signature)
        *signature = g->feature_signature;
    return g->n_features;
}

md_status md_onnx_graph_build(const md_onnx_model *m, const char *path, size_t max_arena_bytes,
                              md_gemm_type conv_type, md_onnx_graph **out, md_error *err)
{
    *out = NULL;
    if (m->opset < OPSET_MIN || m->opset > OPSET_MAX)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: ONNX opset %lld is not supported (supported: %d to %d)", path,
                       (long long)m->opset, OPSET_MIN, OPSET_MAX);
    md_onnx_graph *g = calloc(1, sizeof *g);
    if (!g)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    builder b = {g, m, path, err, MD_OK, NULL, 0, 0};
    b.max_floats = (max_arena_bytes ? max_arena_bytes : (size_t)4 << 30) / sizeof(float);
    g->input = g->output = -1;
    g->info.opset = m->opset;
    md_status st = MD_OK;
    size_t names = m->n_initializers + m->n_inputs + m->n_outputs + 1;
    for (size_t i = 0; i < m->n_nodes; i++)
        names += m->nodes[i].n_inputs + m->nodes[i].n_outputs;
    b.tab_cap = 16;
    while (b.tab_cap < names * 2)
        b.tab_cap *= 2;
    b.tab = calloc(b.tab_cap, sizeof *b.tab);
    if (!b.tab) {
        st = md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (size_t i = 0; i < m->n_nodes; i++)
        for (size_t j = 0; j < m->nodes[i].n_inputs; j++)
            if (*m->nodes[i].inputs[j])
                lookup(&b, m->nodes[i].inputs[j], true)->consumers++;
    for (size_t i = 0; i < m->n_outputs; i++)
        lookup(&b, m->outputs[i].name, true)->consumers++;
    for (size_t i = 0; i < m->n_initializers; i++) {
        const md_onnx_tensor *t = &m->initializers[i];
        name_entry *e = lookup(&b, t->name, true);
        if (e->value >= 0) {
            st = md_fail(err, MD_ERR_FORMAT, "%s: initializer '%s' appears twice", path, t->name);
            goto done;
        }
        e->value = const_value(&b, t);
        if (e->value < 0) {
            st = b.st;
            goto done;
        }
        g->info.n_params += t->numel;
    }
    for (size_t i = 0; i < m->n_inputs; i++) {
        const md_onnx_value_info *vi = &m->inputs[i];
        name_entry *e = lookup(&b, vi->name, true);
        if (e->value >= 0)
            continue; /* IR < 4 lists initializers among the inputs */
        if (g->input >= 0) {
            st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: graph has more than one runtime input",
                         path);
            goto done;
        }
        if (vi->elem_type != 0 && vi->elem_type != MD_ONNX_FLOAT) {
            char tb[32];
            st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: input '%s' has type %s (need FLOAT)", path,
                         vi->name, md_onnx_dtype_name(vi->elem_type, tb, sizeof tb));
            goto done;
        }
        if (vi->ndim < 1) {
            st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: input '%s' has no static shape", path,
                         vi->name);
            goto done;
        }
        int v = new_value(&b);
        if (v < 0) {
            st = b.st;
            goto done;
        }
        gval *x = &g->vals[v];
        x->ndim = vi->ndim;
        for (int d = 0; d < vi->ndim; d++)
            x->dims[d] = vi->dims[d] < 0 && d == 0 ? 1 : vi->dims[d]; /* batch 1 */
        if (!shape_numel(x->ndim, x->dims, &x->numel) || x->numel > b.max_floats) {
            st = md_fail(err, MD_ERR_UNSUPPORTED,
                         "%s: input '%s' needs a static, non-empty shape of sane size", path,
                         vi->name);
            goto done;
        }
        e->value = v;
        g->input = v;
    }
    if (g->input < 0) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: graph has no runtime input", path);
        goto done;
    }
    /* Graph outputs are marked when known so fusions never swallow them. */
    for (size_t i = 0; i < m->n_nodes && st == MD_OK; i++)
        st = build_node(&b, &m->nodes[i], m->opset);
    if (st != MD_OK)
        goto done;
    if (m->n_outputs < 1) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: graph has no output", path);
        goto done;
    }
    for (size_t i = 0; i < m->n_outputs; i++) {
        name_entry *e = lookup(&b, m->outputs[i].name, false);
        if (!e || e->value < 0) {
            st = md_fail(err, MD_ERR_FORMAT, "%s: graph output '%s' is never produced", path,
                         m->outputs[i].name);
            goto done;
        }
        gval *x = &g->vals[e->value];
        if (x->is_const || e->value == g->input) {
            st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: graph output '%s' is not computed", path,
                         m->outputs[i].name);
            goto done;
        }
        x->is_output = true;
        if (i == 0)
            g->output = e->value;
    }
    if ((st = optimise(&b)) != MD_OK)
        goto done;
    /* Convolutions run on weights packed once (after BN folding). */
    for (int i = 0; i < g->n_ops; i++) {
        gop *op = &g->ops[i];
        /* depthwise convolutions run their float32 kernel whatever the type */
        if (op->kind == OP_CONV &&
            !md_conv_init(&op->conv, &op->cp, conv_type, MD_CONV_FAST, op->w, op->b)) {
            st = md_fail(err, MD_ERR_NOMEM, "%s: out of memory for packed weights", path);
            goto done;
        }
        if (op->kind == OP_CONV && op->conv.type == MD_GEMM_BF16) {
            const gval *o = &g->vals[op->out];
            g->info.flop_bf16 += conv_flop(&op->cp, (double)o->dims[2], (double)o->dims[3]);
        }
    }
    for (int i = 0; i < g->n_ops; i++) {
        gop *op = &g->ops[i];
        if (op->kind != OP_RESIZE)
            continue;
        const gval *x = &g->vals[op->in[0]], *o = &g->vals[op->out];
        if (!md_resize_tables_init(&op->rt, &op->rp, (int)x->dims[2], (int)x->dims[3],
                                   (int)o->dims[2], (int)o->dims[3])) {
            st = md_fail(err, MD_ERR_NOMEM, "%s: out of memory for resize tables", path);
            goto done;
        }
    }
    if ((st = plan_memory(&b)) != MD_OK)
        goto done;
    find_encoder(g);
    const gval *iv = &g->vals[g->input], *ov = &g->vals[g->output];
    g->info.in_ndim = iv->ndim;
    memcpy(g->info.in_dims, iv->dims, sizeof iv->dims);
    g->info.in_numel = iv->numel;
    g->info.out_ndim = ov->ndim;
    memcpy(g->info.out_dims, ov->dims, sizeof ov->dims);
    g->info.out_numel = ov->numel;
done:
    free(b.tab);
    if (st != MD_OK) {
        md_onnx_graph_free(g);
        return st;
    }
    *out = g;
    return MD_OK;
}

const md_onnx_graph_info *md_onnx_graph_get_info(const md_onnx_graph *g)
{
    return &g->info;
}

void md_onnx_graph_free(md_onnx_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_vals; i++) {
        free(g->vals[i].cdata);
        free(g->vals[i].cint);
    }
    for (int i = 0; i < g->n_ops; i++) {
        free(g->ops[i].in);
        md_conv_free(&g->ops[i].conv);
        free(g->ops[i].w);
        free(g->ops[i].b);
        free(g->ops[i].scale);
        free(g->ops[i].shift);
        md_resize_tables_free(&g->ops[i].rt);
    }
    free(g->slot_cap);
    free(g->vals);
    free(g->ops);
    free(g);
}

/* ---------------------------------------------------------------- run */

/* Scratch floats of a convolution op for this many workers. */
static size_t conv_scratch(const md_onnx_graph *g, const gop *op, int workers)
{
    const gval *x = &g->vals[op->in[0]];
    md_conv_src src = md_conv_plain_src(NULL, (int)x->dims[2], (int)x->dims[3]);
    return md_conv_scratch_floats(&op->conv, &src, workers);
}

md_onnx_ws *md_onnx_ws_create(const md_onnx_graph *g, int workers)
{
    md_onnx_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->workers = workers < 1 ? 1 : workers;
    ws->slots = calloc((size_t)g->n_slots + 1, sizeof(float *));
    if (!ws->slots) {
        free(ws);
        return NULL;
    }
    ws->n_slots = g->n_slots;
    for (int i = 0; i < g->n_slots; i++) {
        size_t bytes = (g->slot_cap[i] * sizeof(float) + 63) / 64 * 64;
        ws->slots[i] = aligned_alloc(64, bytes ? bytes : 64);
        if (!ws->slots[i]) {
            md_onnx_ws_free(ws);
            return NULL;
        }
    }
    for (int i = 0; i < g->n_ops; i++)
        if (g->ops[i].kind == OP_CONV) {
            size_t n = conv_scratch(g, &g->ops[i], ws->workers);
            ws->scratch_floats = n > ws->scratch_floats ? n : ws->scratch_floats;
        }
    if (ws->scratch_floats) {
        ws->scratch = aligned_alloc(64, (ws->scratch_floats * sizeof(float) + 63) / 64 * 64);
        if (!ws->scratch) {
            md_onnx_ws_free(ws);
            return NULL;
        }
    }
    return ws;
}

void md_onnx_ws_free(md_onnx_ws *ws)
{
    if (!ws)
        return;
    if (ws->slots)
        for (int i = 0; i < ws->n_slots; i++)
            free(ws->slots[i]);
    free(ws->slots);
    free(ws->scratch);
    free(ws);
}

int md_onnx_ws_workers(const md_onnx_ws *ws)
{
    return ws->workers;
}

/* Where value v lives in this run. */
static float *val(const md_onnx_graph *g, const md_onnx_ws *ws, int v)
{
    const gval *x = &g->vals[v];
    return x->is_const ? x->cdata : ws->slots[x->slot];
}

typedef struct {
    const md_onnx_graph *g;
    const md_onnx_ws *ws;
    const gop *op;
    int n_tasks;
} slice_ctx;

static void range_of(int total, int tasks, int t, int *begin, int *end)
{
    *begin = (int)((long)total * t / tasks);
    *end = (int)((long)total * (t + 1) / tasks);
}

static void resize_task(void *arg, int t, int worker)
{
    (void)worker;
    const slice_ctx *c = arg;
    const gop *op = c->op;
    const gval *x = &c->g->vals[op->in[0]];
    int c0, c1;
    range_of((int)x->dims[1], c->n_tasks, t, &c0, &c1);
    if (c0 < c1)
        md_resize2d(&op->rt, val(c->g, c->ws, op->in[0]), (int)x->dims[2], (int)x->dims[3],
                    val(c->g, c->ws, op->out), op->n_in > 1 ? val(c->g, c->ws, op->in[1]) : NULL,
                    c0, c1);
}

static void run_op(const md_onnx_graph *g, const md_onnx_ws *ws, md_threadpool *pool,
                   const gop *op)
{
    int threads = md_pool_threads(pool);
    const gval *o = &g->vals[op->out], *x = &g->vals[op->in[0]];
    float *od = val(g, ws, op->out);
    const float *xd = val(g, ws, op->in[0]);
    switch (op->kind) {
    case OP_CONV: {
        md_conv_src src = md_conv_plain_src(xd, (int)x->dims[2], (int)x->dims[3]);
        md_conv_dst dst = md_conv_to(od, op->lo, op->hi);
        /* the workspace was sized for at least this pool's workers */
        md_conv_forward(&op->conv, ws->workers >= threads ? pool : NULL, &src, &dst, ws->scratch);
        break;
    }
    case OP_AFFINE:
        memcpy(od, xd, x->numel * sizeof(float));
        md_channel_affine_inplace(od, (int)x->dims[1], x->numel / (size_t)x->dims[1], op->scale,
                                  op->shift);
        break;
    case OP_CLAMP:
        memcpy(od, xd, x->numel * sizeof(float));
        md_clamp_inplace(od, o->numel, op->lo, op->hi);
        break;
    case OP_SIGMOID:
        memcpy(od, xd, x->numel * sizeof(float));
        md_sigmoid_inplace(od, o->numel);
        break;
    case OP_BINARY: {
        const gval *y = &g->vals[op->in[1]];
        int64_t ad[MAX_DIMS], bd[MAX_DIMS];
        for (int i = 0; i < o->ndim; i++) {
            int ia = i - (o->ndim - x->ndim), ib = i - (o->ndim - y->ndim);
            ad[i] = ia >= 0 ? x->dims[ia] : 1;
            bd[i] = ib >= 0 ? y->dims[ib] : 1;
        }
        md_binary_broadcast(op->bop, o->ndim, o->dims, xd, ad, val(g, ws, op->in[1]), bd, od);
        break;
    }
    case OP_CONCAT: {
        size_t outer = 1, inner = 1;
        for (int i = 0; i < op->axis; i++)
            outer *= (size_t)o->dims[i];
        for (int i = op->axis + 1; i < o->ndim; i++)
            inner *= (size_t)o->dims[i];
        float *dst = od;
        for (size_t k = 0; k < outer; k++) {
            for (int j = 0; j < op->n_in; j++) {
                const gval *s = &g->vals[op->in[j]];
                size_t chunk = (size_t)s->dims[op->axis] * inner;
                memcpy(dst, val(g, ws, op->in[j]) + k * chunk, chunk * sizeof(float));
                dst += chunk;
            }
        }
        break;
    }
    case OP_MAXPOOL:
        md_maxpool2d(&op->pp, xd, (int)x->dims[1], (int)x->dims[2], (int)x->dims[3], od,
                     (int)o->dims[2], (int)o->dims[3], NULL);
        break;
    case OP_AVGPOOL:
        md_avgpool2d(&op->pp, xd, (int)x->dims[1], (int)x->dims[2], (int)x->dims[3], od,
                     (int)o->dims[2], (int)o->dims[3]);
        break;
    case OP_GAP:
        md_global_avgpool(xd, (size_t)x->dims[1], (size_t)x->dims[2] * (size_t)x->dims[3], od);
        break;
    case OP_GMP:
        md_global_maxpool(xd, (int)x->dims[1], (size_t)x->dims[2] * (size_t)x->dims[3], od);
        break;
    case OP_RESIZE: {
        slice_ctx sc = {g, ws, op, threads > 1 ? 2 * threads : 1};
        if (sc.n_tasks > (int)x->dims[1])
            sc.n_tasks = (int)x->dims[1];
        md_pool_run(pool, sc.n_tasks, resize_task, &sc);
        break;
    }
    case OP_GEMM:
    case OP_MATMUL: {
        float beta = 0.0f;
        int M = op->gm, N = op->gn, K = op->gk;
        if (op->n_in > 2) {
            const gval *C = &g->vals[op->in[2]];
            const float *cd = val(g, ws, op->in[2]);
            size_t rs = C->ndim == 2 && C->dims[0] != 1 ? (size_t)C->dims[1] : 0;
            size_t cs = C->ndim >= 1 && C->dims[C->ndim - 1] != 1 ? 1 : 0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++)
                    od[(size_t)i * N + j] = op->beta * cd[i * rs + j * cs];
            beta = 1.0f;
        }
        md_sgemm(pool, op->trans_a, op->trans_b, M, N, K, op->kind == OP_GEMM ? op->alpha : 1.0f,
                 xd, op->trans_a ? M : K, val(g, ws, op->in[1]), op->trans_b ? K : N, beta, od, N);
        break;
    }
    case OP_COPY: memcpy(od, xd, x->numel * sizeof(float)); break;
    case OP_TRANSPOSE: md_transpose(xd, x->ndim, x->dims, op->perm, od); break;
    }
}

const float *md_onnx_graph_run(const md_onnx_graph *g, md_onnx_ws *ws, md_threadpool *pool,
                               const float *in, float *features)
{
    memcpy(val(g, ws, g->input), in, g->vals[g->input].numel * sizeof(float));
    size_t f = 0;
    for (int i = 0; i < g->n_ops; i++) {
        run_op(g, ws, pool, &g->ops[i]);
        /* pooled now: the memory plan reuses this buffer for later ops */
        if (features && i < g->n_taps) {
            const gval *o = &g->vals[g->ops[i].out];
            md_channel_means(val(g, ws, g->ops[i].out), (size_t)o->dims[1],
                             (size_t)o->dims[2] * (size_t)o->dims[3], features + f);
            f += (size_t)o->dims[1];
        }
    }
    return val(g, ws, g->output);
}
