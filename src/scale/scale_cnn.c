/* The scale CNN: a small network that predicts log(s*) from the RGB image
 * (the seed report's "depth scaling predictor"). Two architectures:
 *   paper:   conv3x3 3->64 pad 1, ReLU, maxpool 2; conv3x3 64->128 pad 1, ReLU,
 *            maxpool 2; flatten (C-order CHW); FC -> 512, ReLU; FC 512 -> 1.
 *   compact: four conv3x3 stride 2 pad 1 (32, 64, 128, 128 channels, ReLU),
 *            global average pooling, FC 128 -> 64, ReLU, FC 64 -> 1.
 * Training is plain mini-batch backpropagation (im2col/GEMM convolutions,
 * col2im for input gradients), MSE on log s, Adam as torch.optim.Adam and
 * StepLR. Weights are saved as .safetensors with a metadata map. */
#include "scale/scale_cnn.h"

#include "base/base.h"
#include "formats/weights.h"
#include "base/pool.h"
#include "ops/cnn_ops.h"
#include "ops/train_ops.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCALE_FORMAT "metricdepth-scale-cnn"

/* ------------------------------------------------------------ names */

/* ------------------------------------------------------------ PRNG */

uint64_t md_cnn_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float md_cnn_rand_unit(uint64_t *state)
{
    return (float)(md_cnn_rand_next(state) >> 40) * (1.0f / 16777216.0f);
}

/* Independent streams per purpose from one user seed. */
static uint64_t stream_seed(uint64_t seed, uint64_t purpose)
{
    uint64_t s = seed ^ (purpose * 0xD1B54A32D192ED03ull);
    return md_cnn_rand_next(&s);
}

enum { STREAM_INIT = 1, STREAM_SPLIT = 2, STREAM_SHUFFLE = 3 };

static void shuffle(size_t *idx, size_t n, uint64_t *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(md_cnn_rand_next(rng) % (uint64_t)i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

double md_cnn_step_lr(double lr, int epoch, int step_size, double gamma)
{
    if (step_size <= 0)
        return lr;
    int k = epoch / step_size;
    for (int i = 0; i < k; i++)
        lr *= gamma;
    return lr;
}

/* ------------------------------------------------------------ layer list */

static void add_param_layer(md_cnn_spec *s, md_cnn_layer *l, const char *name)
{
    snprintf(l->name, sizeof l->name, "%s", name);
    if (l->kind == MD_CNN_CONV)
        l->w_n = (size_t)l->out_c * l->in_c * l->k * l->k;
    else
        l->w_n = (size_t)l->out_c * l->in_c;
    l->b_n = (size_t)l->out_c;
    l->w_off = s->n_params;
    l->b_off = s->n_params + l->w_n;
    s->n_params += l->w_n + l->b_n;
}

static md_cnn_layer *next_layer(md_cnn_spec *s, md_cnn_kind kind, int c, int h, int w)
{
    md_cnn_layer *l = &s->layers[s->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->in_c = c;
    l->in_h = h;
    l->in_w = w;
    return l;
}

static void add_conv(md_cnn_spec *s, const char *name, int out_c, int stride)
{
    const md_cnn_layer *prev = s->n_layers ? &s->layers[s->n_layers - 1] : NULL;
    int c = prev ? prev->out_c : 3, h = prev ? prev->out_h : s->input_size,
        w = prev ? prev->out_w : s->input_size;
    md_cnn_layer *l = next_layer(s, MD_CNN_CONV, c, h, w);
    l->relu = true;
    l->k = 3;
    l->stride = stride;
    l->pad = 1;
    l->out_c = out_c;
    l->out_h = (h + 2 - 3) / stride + 1;
    l->out_w = (w + 2 - 3) / stride + 1;
    add_param_layer(s, l, name);
}

static void add_pool(md_cnn_spec *s)
{
    const md_cnn_layer *prev = &s->layers[s->n_layers - 1];
    md_cnn_layer *l = next_layer(s, MD_CNN_MAXPOOL, prev->out_c, prev->out_h, prev->out_w);
    l->k = 2;
    l->stride = 2;
    l->out_c = l->in_c;
    l->out_h = (l->in_h - 2) / 2 + 1;
    l->out_w = (l->in_w - 2) / 2 + 1;
}

static void add_gap(md_cnn_spec *s)
{
    const md_cnn_layer *prev = &s->layers[s->n_layers - 1];
    md_cnn_layer *l = next_layer(s, MD_CNN_GAP, prev->out_c, prev->out_h, prev->out_w);
    l->out_c = l->in_c;
    l->out_h = l->out_w = 1;
}

static void add_fc(md_cnn_spec *s, const char *name, int out_f, bool relu)
{
    const md_cnn_layer *prev = &s->layers[s->n_layers - 1];
    md_cnn_layer *l = next_layer(s, MD_CNN_FC, (int)md_cnn_layer_out_size(prev), 1, 1);
    l->relu = relu;
    l->out_c = out_f;
    l->out_h = l->out_w = 1;
    add_param_layer(s, l, name);
}

md_status md_cnn_spec_init(md_cnn_spec *s, md_scale_arch arch, int input_size, md_error *err)
{
    memset(s, 0, sizeof *s);
    if (arch != MD_SCALE_ARCH_PAPER && arch != MD_SCALE_ARCH_COMPACT)
        return md_fail(err, MD_ERR_ARG, "scale CNN: unknown architecture %d", (int)arch);
    int min_size = arch == MD_SCALE_ARCH_PAPER ? 4 : 1;
    if (input_size < min_size || input_size > 4096)
        return md_fail(err, MD_ERR_ARG, "scale CNN: input size %d outside [%d, 4096] for %s",
                       input_size, min_size, md_scale_arch_name(arch));
    s->arch = arch;
    s->input_size = input_size;
    if (arch == MD_SCALE_ARCH_PAPER) {
        add_conv(s, "conv1", 64, 1);
        add_pool(s);
        add_conv(s, "conv2", 128, 1);
        add_pool(s);
        if (md_cnn_layer_out_size(&s->layers[s->n_layers - 1]) > (size_t)1 << 26)
            return md_fail(err, MD_ERR_ARG, "scale CNN: input size %d too large for paper",
                           input_size);
        add_fc(s, "fc1", 512, true);
        add_fc(s, "fc2", 1, false);
    } else {
        add_conv(s, "conv1", 32, 2);
        add_conv(s, "conv2", 64, 2);
        add_conv(s, "conv3", 128, 2);
        add_conv(s, "conv4", 128, 2);
        add_gap(s);
        add_fc(s, "fc1", 64, true);
        add_fc(s, "fc2", 1, false);
    }
    return MD_OK;
}

static md_conv2d_params conv_params(const md_cnn_layer *l)
{
    md_conv2d_params p;
    memset(&p, 0, sizeof p);
    p.in_channels = l->in_c;
    p.out_channels = l->out_c;
    p.kernel_h = p.kernel_w = l->k;
    p.stride_h = p.stride_w = l->stride;
    p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = l->pad;
    p.dilation_h = p.dilation_w = 1;
    p.groups = 1;
    return p;
}

/* ------------------------------------------------------------ workspace */

void md_cnn_work_free(md_cnn_work *w)
{
    for (int i = 0; i <= MD_CNN_MAX_LAYERS; i++)
        free(w->act[i]);
    for (int i = 0; i < MD_CNN_MAX_LAYERS; i++)
        free(w->argmax[i]);
    free(w->grad[0]);
    free(w->grad[1]);
    free(w->col);
    free(w->dcol);
    free(w->partial);
    free(w->wpack);
    md_pool_destroy(w->pool);
    memset(w, 0, sizeof *w);
}

md_status md_cnn_work_init(md_cnn_work *w, const md_cnn_spec *s, int batch, bool training,
                           int threads, md_error *err)
{
    memset(w, 0, sizeof *w);
    if (batch < 1)
        return md_fail(err, MD_ERR_ARG, "scale CNN: batch size %d", batch);
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    w->batch = batch;
    w->training = training;
    w->threads = threads;
    size_t nb = (size_t)batch, nt = (size_t)threads, max_act = 0, max_col = 1, max_par = 1;
    w->act[0] = md_malloc(sizeof(float) * nb * md_cnn_layer_in_size(&s->layers[0]),
                          "scale CNN input batch", err);
    if (!w->act[0])
        goto fail;
    for (int i = 0; i < s->n_layers; i++) {
        const md_cnn_layer *l = &s->layers[i];
        size_t out = md_cnn_layer_out_size(l);
        w->act[i + 1] = md_malloc(sizeof(float) * nb * out, "scale CNN activations", err);
        if (!w->act[i + 1])
            goto fail;
        if (out > max_act)
            max_act = out;
        if (i > 0 && md_cnn_layer_in_size(l) > max_act)
            max_act = md_cnn_layer_in_size(l);
        if (l->kind == MD_CNN_MAXPOOL) {
            w->argmax[i] = md_malloc(sizeof(int32_t) * nb * out, "scale CNN pool indices", err);
            if (!w->argmax[i])
                goto fail;
        }
        if (l->kind == MD_CNN_CONV) {
            /* backward: the whole unfolded image; forward: the driver's bands */
            size_t col = (size_t)l->in_c * l->k * l->k * l->out_h * l->out_w;
            md_conv2d_params p = conv_params(l);
            md_conv probe;
            md_conv_init_into(&probe, &p, MD_GEMM_F32, MD_CONV_DIRECT, NULL, NULL, NULL);
            md_conv_src src = md_conv_plain_src(NULL, l->in_h, l->in_w);
            size_t fwd = md_conv_scratch_floats(&probe, &src, 1);
            col = col > fwd ? col : fwd;
            if (col > max_col)
                max_col = col;
            if (l->w_n + l->b_n > max_par)
                max_par = l->w_n + l->b_n;
        }
    }
    w->wpack = md_malloc(sizeof(float) * max_par, "scale CNN packed weights", err);
    if (!w->wpack)
        goto fail;
    if (threads > 1 && !(w->pool = md_pool_create(threads))) {
        md_fail(err, MD_ERR_NOMEM, "scale CNN: out of memory for the thread pool");
        goto fail;
    }
    w->col_floats = max_col;
    w->col = md_malloc(sizeof(float) * nt * max_col, "scale CNN im2col buffers", err);
    if (!w->col)
        goto fail;
    if (training) {
        w->partial_floats = max_par;
        w->dcol = md_malloc(sizeof(float) * nt * max_col, "scale CNN col gradients", err);
        w->partial = md_malloc(sizeof(float) * nt * max_par, "scale CNN partial gradients", err);
        w->grad[0] = md_malloc(sizeof(float) * nb * max_act, "scale CNN gradients", err);
        w->grad[1] = md_malloc(sizeof(float) * nb * max_act, "scale CNN gradients", err);
        if (!w->dcol || !w->partial || !w->grad[0] || !w->grad[1])
            goto fail;
    }
    return MD_OK;
fail:
    md_cnn_work_free(w);
    return MD_ERR_NOMEM; /* only allocations fail here (err may be NULL) */
}

/* ------------------------------------------------------------ init */

void md_cnn_init_params(const md_cnn_spec *s, float *params, uint64_t seed)
{
    uint64_t rng = stream_seed(seed, STREAM_INIT);
    for (int i = 0; i < s->n_layers; i++) {
        const md_cnn_layer *l = &s->layers[i];
        if (l->kind != MD_CNN_CONV && l->kind != MD_CNN_FC)
            continue;
        /* kaiming_uniform(a = sqrt(5)) gives bound sqrt(6 / ((1 + 5) fan_in)) =
         * 1/sqrt(fan_in); the bias bound is 1/sqrt(fan_in) too. */
        size_t fan_in = l->w_n / (size_t)l->out_c;
        float bound = (float)(1.0 / sqrt((double)fan_in));
        for (size_t j = 0; j < l->w_n; j++)
            params[l->w_off + j] = (2.0f * md_cnn_rand_unit(&rng) - 1.0f) * bound;
        for (size_t j = 0; j < l->b_n; j++)
            params[l->b_off + j] = (2.0f * md_cnn_rand_unit(&rng) - 1.0f) * bound;
    }
}

/* ------------------------------------------------------------ forward / backward */

/* One convolution layer over the images of a batch, split into w->threads
 * tasks of fixed image ranges. */
typedef struct {
    const md_cnn_layer *l;
    const float *params;
    md_cnn_work *w;
    int n, tasks, layer;
    const float *in;
    float *out;     /* forward: output; backward: output gradient (ReLU applied here) */
    float *din;     /* backward: input gradient or NULL */
    bool backward;
    const md_conv *conv; /* forward: the layer, weights packed */
} conv_job;

static void conv_task(void *ctx, int task, int worker)
{
    (void)worker;
    conv_job *j = ctx;
    const md_cnn_layer *l = j->l;
    md_cnn_work *w = j->w;
    md_conv2d_params p = conv_params(l);
    size_t isz = md_cnn_layer_in_size(l), osz = md_cnn_layer_out_size(l);
    int b0 = (int)((long)j->n * task / j->tasks), b1 = (int)((long)j->n * (task + 1) / j->tasks);
    float *col = w->col + (size_t)task * w->col_floats;
    if (!j->backward) {
        md_conv_dst dst = md_conv_to(NULL, l->relu ? 0.0f : -INFINITY, INFINITY);
        for (int b = b0; b < b1; b++) {
            md_conv_src src = md_conv_plain_src(j->in + (size_t)b * isz, l->in_h, l->in_w);
            dst.out = j->out + (size_t)b * osz;
            md_conv_forward(j->conv, NULL, &src, &dst, col);
        }
        return;
    }
    float *dcol = w->dcol + (size_t)task * w->col_floats;
    float *part = w->partial + (size_t)task * w->partial_floats;
    memset(part, 0, sizeof(float) * (l->w_n + l->b_n));
    const float *y = w->act[j->layer + 1];
    for (int b = b0; b < b1; b++) {
        float *g = j->out + (size_t)b * osz;
        if (l->relu)
            md_relu_backward(y + (size_t)b * osz, g, osz);
        md_conv_backward(&p, j->in + (size_t)b * isz, l->in_h, l->in_w,
                               j->params + l->w_off, g, l->out_h, l->out_w, part,
                               part + l->w_n, j->din ? j->din + (size_t)b * isz : NULL, col,
                               dcol);
    }
}

static void run_conv(conv_job *j)
{
    md_conv conv;
    if (!j->backward) { /* weights packed once for every image of the batch */
        md_conv2d_params p = conv_params(j->l);
        md_conv_init_into(&conv, &p, MD_GEMM_F32, MD_CONV_DIRECT, j->params + j->l->w_off, j->params + j->l->b_off,
                          j->w->wpack);
        j->conv = &conv;
    }
    j->tasks = j->w->threads < j->n ? j->w->threads : j->n;
    if (j->tasks <= 1) {
        j->tasks = 1;
        conv_task(j, 0, 0);
        return;
    }
    md_pool_run(j->w->pool, j->tasks, conv_task, j);
}

const float *md_cnn_forward(const md_cnn_spec *s, const float *params, md_cnn_work *w, int n)
{
    for (int i = 0; i < s->n_layers; i++) {
        const md_cnn_layer *l = &s->layers[i];
        const float *in = w->act[i];
        float *out = w->act[i + 1];
        switch (l->kind) {
        case MD_CNN_CONV: {
            conv_job j = {l, params, w, n, 0, i, in, out, NULL, false, NULL};
            run_conv(&j);
            break;
        }
        case MD_CNN_MAXPOOL:
            md_maxpool_forward(in, (size_t)n * l->in_c, l->in_h, l->in_w, l->k, l->stride, out,
                               l->out_h, l->out_w, w->argmax[i], w->pool);
            break;
        case MD_CNN_GAP:
            md_global_avgpool(in, (size_t)n * l->in_c, (size_t)l->in_h * l->in_w, out);
            break;
        case MD_CNN_FC:
            md_linear_forward(in, n, l->in_c, l->out_c, params + l->w_off, params + l->b_off,
                              l->relu, out, w->pool);
            break;
        }
    }
    return w->act[s->n_layers];
}

void md_cnn_backward(const md_cnn_spec *s, const float *params, md_cnn_work *w, int n,
                     const float *dout, float *grads)
{
    const md_cnn_layer *last = &s->layers[s->n_layers - 1];
    size_t nout = (size_t)n * md_cnn_layer_out_size(last);
    float *g = w->grad[0], *gn = w->grad[1];
    memcpy(g, dout, sizeof(float) * nout);
    for (int i = s->n_layers - 1; i >= 0; i--) {
        const md_cnn_layer *l = &s->layers[i];
        size_t osz = md_cnn_layer_out_size(l);
        bool need_in = i > 0;
        switch (l->kind) {
        case MD_CNN_CONV: {
            conv_job j = {l, params, w, n, 0, i, w->act[i], g, need_in ? gn : NULL, true, NULL};
            run_conv(&j);
            /* Per-task sums added in task order: independent of scheduling. */
            size_t np = l->w_n + l->b_n;
            float *dst = grads + l->w_off;
            memcpy(dst, w->partial, sizeof(float) * np);
            for (int t = 1; t < j.tasks; t++) {
                const float *src = w->partial + (size_t)t * w->partial_floats;
                for (size_t k = 0; k < np; k++)
                    dst[k] += src[k];
            }
            break;
        }
        case MD_CNN_MAXPOOL:
            md_maxpool_backward(g, w->argmax[i], (size_t)n * l->in_c, l->in_h, l->in_w, l->k,
                                l->stride, l->out_h, l->out_w, gn, w->pool);
            break;
        case MD_CNN_GAP:
            md_gap_backward(g, (size_t)n * l->in_c, (size_t)l->in_h * l->in_w, gn);
            break;
        case MD_CNN_FC:
            if (l->relu)
                md_relu_backward(w->act[i + 1], g, (size_t)n * osz);
            md_linear_backward(w->act[i], n, l->in_c, l->out_c, params + l->w_off, g,
                               grads + l->w_off, grads + l->b_off, need_in ? gn : NULL, w->pool);
            break;
        }
        float *t = g;
        g = gn;
        gn = t;
    }
}

/* ------------------------------------------------------------ preprocessing */

md_status md_cnn_preprocess(const md_image *img, int size, float *out, float *tmp, md_error *err)
{
    if (!img || !img->pixels || img->width < 1 || img->height < 1 || img->width > MD_MAX_DIM ||
        img->height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "scale CNN: empty or invalid image");
    size_t hw = (size_t)img->width * img->height;
    for (size_t i = 0; i < hw; i++)
        for (int c = 0; c < 3; c++)
            tmp[(size_t)c * hw + i] = (float)img->pixels[i * 3 + (size_t)c];
    md_resize_params rp;
    memset(&rp, 0, sizeof rp);
    rp.linear = true;
    rp.coord = MD_COORD_HALF_PIXEL;
    md_resize_tables rt;
    if (!md_resize_tables_init(&rt, &rp, img->height, img->width, size, size))
        return md_fail(err, MD_ERR_NOMEM, "scale CNN: out of memory for the resize tables");
    md_resize2d(&rt, tmp, img->height, img->width, out, NULL, 0, 3);
    md_resize_tables_free(&rt);
    size_t n = (size_t)3 * size * size;
    for (size_t i = 0; i < n; i++)
        out[i] = (out[i] / 255.0f - 0.5f) / 0.5f;
    return MD_OK;
}

/* ------------------------------------------------------------ the model */

struct md_cnn_model {
    md_cnn_spec spec;
    float *params;
    char *base_model, *list_hash;
    size_t n_train;
    int epochs;
    md_cnn_work infer;
    float *tmp;
    size_t tmp_cap;
    char desc[320];
};

static char *dup_str(const char *s, md_error *err)
{
    return md_strdup(s, "string", err);
}

void md_cnn_model_free(md_cnn_model *m)
{
    if (!m)
        return;
    free(m->params);
    free(m->base_model);
    free(m->list_hash);
    md_cnn_work_free(&m->infer);
    free(m->tmp);
    free(m);
}

static md_status model_new(const md_cnn_spec *spec, const char *base, const char *hash,
                           md_cnn_model **out, md_error *err)
{
    md_cnn_model *m = md_calloc(1, sizeof *m, "scale model", err);
    if (!m)
        return MD_ERR_NOMEM;
    m->spec = *spec;
    m->params = md_malloc(sizeof(float) * spec->n_params, "scale CNN parameters", err);
    m->base_model = dup_str(base, err);
    m->list_hash = dup_str(hash, err);
    if (!m->params || !m->base_model || !m->list_hash) {
        md_cnn_model_free(m);
        return MD_ERR_NOMEM;
    }
    *out = m;
    return MD_OK;
}

/* Fills m->desc from the model's fields (after training or loading). */
static void update_desc(md_cnn_model *m)
{
    int k = snprintf(m->desc, sizeof m->desc, "%s scale CNN, %dx%d input, %.2f M params",
                     md_scale_arch_name(m->spec.arch), m->spec.input_size, m->spec.input_size,
                     (double)m->spec.n_params / 1e6);
    if (k > 0 && (size_t)k < sizeof m->desc && m->base_model[0])
        snprintf(m->desc + k, sizeof m->desc - (size_t)k, ", trained for %.200s on %zu images",
                 m->base_model, m->n_train);
}

const char *md_cnn_model_describe(const md_cnn_model *m)
{
    return m ? m->desc : "";
}

const char *md_cnn_model_base(const md_cnn_model *m)
{
    return m && m->base_model ? m->base_model : "";
}

md_status md_cnn_model_predict(md_cnn_model *m, const md_image *img, double *log_scale,
                                 md_error *err)
{
    if (!m || !img || !log_scale)
        return md_fail(err, MD_ERR_ARG, "scale CNN predict: NULL argument");
    if (!img->pixels || img->width < 1 || img->height < 1 || img->width > MD_MAX_DIM ||
        img->height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "scale CNN predict: empty or invalid image");
    if (!m->infer.act[0]) {
        md_status s = md_cnn_work_init(&m->infer, &m->spec, 1, false, 1, err);
        if (s != MD_OK)
            return s;
    }
    size_t need = (size_t)3 * img->width * img->height;
    if (need > m->tmp_cap) {
        float *t = md_malloc(sizeof(float) * need, "scale CNN image buffer", err);
        if (!t)
            return MD_ERR_NOMEM;
        free(m->tmp);
        m->tmp = t;
        m->tmp_cap = need;
    }
    md_status st = md_cnn_preprocess(img, m->spec.input_size, m->infer.act[0], m->tmp, err);
    if (st != MD_OK)
        return st;
    const float *out = md_cnn_forward(&m->spec, m->params, &m->infer, 1);
    if (!isfinite(out[0]))
        return md_fail(err, MD_ERR_DATA, "scale CNN predict: non-finite output");
    *log_scale = out[0];
    return MD_OK;
}

/* The RGB-only CNNs know nothing of their own reliability: full weight,
 * unknown spread and distance. Work buffers are per call, so one model can
 * serve several threads. */
md_status md_cnn_model_estimate(const md_cnn_model *m, const md_image *img,
                                  const md_depth *base, md_scale_estimate *out, md_error *err)
{
    (void)base;
    if (!m || !out)
        return md_fail(err, MD_ERR_ARG, "scale model estimate: NULL argument");
    memset(out, 0, sizeof *out);
    if (!img)
        return md_fail(err, MD_ERR_ARG, "scale CNN: no image given");
    if (!img->pixels || img->width < 1 || img->height < 1 || img->width > MD_MAX_DIM ||
        img->height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "scale model estimate: empty or invalid image");
    md_cnn_work w;
    md_status st = md_cnn_work_init(&w, &m->spec, 1, false, 1, err);
    if (st != MD_OK)
        return st;
    float *tmp = md_malloc(sizeof(float) * 3 * (size_t)img->width * (size_t)img->height,
                           "scale CNN image buffer", err);
    if (!tmp) {
        md_cnn_work_free(&w);
        return MD_ERR_NOMEM;
    }
    st = md_cnn_preprocess(img, m->spec.input_size, w.act[0], tmp, err);
    if (st == MD_OK) {
        const float *y = md_cnn_forward(&m->spec, m->params, &w, 1);
        if (!isfinite(y[0]))
            st = md_fail(err, MD_ERR_DATA, "scale CNN: non-finite output");
        else
            out->log_scale = y[0];
    }
    free(tmp);
    md_cnn_work_free(&w);
    out->log_scale_sd = NAN;
    out->distance = NAN;
    out->weight = 1.0;
    snprintf(out->note, sizeof out->note, "RGB-only CNN: no confidence, applied as predicted");
    return st;
}

/* ------------------------------------------------------------ training */

static md_status check_options(const md_train_options *o, size_t n, md_error *err)
{
    if (o->epochs < 1 || o->batch_size < 1 || o->step_size < 1 || o->val_every < 1)
        return md_fail(err, MD_ERR_ARG,
                       "scale CNN training: epochs, batch size, step size and val_every must be "
                       ">= 1 (got %d, %d, %d, %d)",
                       o->epochs, o->batch_size, o->step_size, o->val_every);
    if (!(o->lr > 0) || !(o->gamma > 0) || !(o->beta1 >= 0 && o->beta1 < 1) ||
        !(o->beta2 >= 0 && o->beta2 < 1) || !(o->eps > 0))
        return md_fail(err, MD_ERR_ARG,
                       "scale CNN training: need lr > 0, gamma > 0, betas in [0, 1), eps > 0");
    if (!(o->val_fraction >= 0 && o->val_fraction < 1))
        return md_fail(err, MD_ERR_ARG, "scale CNN training: validation fraction %g not in [0, 1)",
                       o->val_fraction);
    if (n < 1)
        return md_fail(err, MD_ERR_DATA, "scale CNN training: no images");
    if (n > (size_t)1 << 24)
        return md_fail(err, MD_ERR_ARG, "scale CNN training: %zu images is too many", n);
    return MD_OK;
}

typedef struct {
    md_cnn_spec spec;
    md_cnn_work work;
    float *data;    /* n x 3 x S x S */
    float *target;  /* n */
    float *batch_target, *dout;
    float *grads, *m, *v;
    size_t *order;  /* val part first, then the training part */
    float *tmp;
} trainer;

static void trainer_free(trainer *t)
{
    md_cnn_work_free(&t->work);
    free(t->data);
    free(t->target);
    free(t->batch_target);
    free(t->dout);
    free(t->grads);
    free(t->m);
    free(t->v);
    free(t->order);
    free(t->tmp);
}

static void load_batch(trainer *t, const size_t *idx, int nb)
{
    size_t isz = md_cnn_layer_in_size(&t->spec.layers[0]);
    for (int b = 0; b < nb; b++) {
        memcpy(t->work.act[0] + (size_t)b * isz, t->data + idx[b] * isz, sizeof(float) * isz);
        t->batch_target[b] = t->target[idx[b]];
    }
}

md_status md_cnn_model_train(const md_image *images, const double *log_scales, size_t n,
                               const md_train_options *opts, md_cnn_model **out,
                               md_train_log *log, md_error *err)
{
    if (out)
        *out = NULL;
    if (log)
        memset(log, 0, sizeof *log);
    if (!images || !log_scales || !out)
        return md_fail(err, MD_ERR_ARG, "scale CNN training: NULL argument");
    md_train_options o = opts ? *opts : md_train_defaults();
    md_status st = check_options(&o, n, err);
    if (st != MD_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(log_scales[i]))
            return md_fail(err, MD_ERR_DATA, "scale CNN training: log scale %zu is not finite", i);

    trainer t;
    memset(&t, 0, sizeof t);
    md_cnn_model *model = NULL;
    double *train_log = NULL, *val_log = NULL;
    if ((st = md_cnn_spec_init(&t.spec, o.arch, o.input_size, err)) != MD_OK)
        return st;
    size_t n_val = (size_t)floor((double)n * o.val_fraction);
    if (n_val >= n)
        n_val = n - 1;
    size_t n_train = n - n_val;
    int threads = o.threads;
    if (threads <= 0) { /* all cores */
        long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        threads = ncpu > 0 ? (ncpu > 64 ? 64 : (int)ncpu) : 2;
    }

    /* Preprocess every image once. */
    size_t isz = md_cnn_layer_in_size(&t.spec.layers[0]), max_pix = 0;
    for (size_t i = 0; i < n; i++) {
        if (!images[i].pixels || images[i].width < 1 || images[i].height < 1 ||
            images[i].width > MD_MAX_DIM || images[i].height > MD_MAX_DIM)
            return md_fail(err, MD_ERR_ARG, "scale CNN training: image %zu is empty or invalid", i);
        size_t px = (size_t)images[i].width * images[i].height;
        if (px > max_pix)
            max_pix = px;
    }
    size_t data_floats;
    if (!md_mul_size(n, isz, &data_floats) || data_floats > ((size_t)1 << 34)) {
        st = md_fail(err, MD_ERR_NOMEM, "scale CNN training: %zu images at %d px is too much",
                     n, o.input_size);
        goto done;
    }
    int B = o.batch_size;
    size_t largest = n_train > n_val ? n_train : n_val;
    if ((size_t)B > largest)
        B = (int)largest;
    t.data = md_malloc(sizeof(float) * data_floats, "preprocessed training images", err);
    t.tmp = md_malloc(sizeof(float) * 3 * max_pix, "image conversion buffer", err);
    t.target = md_malloc(sizeof(float) * n, "training targets", err);
    t.batch_target = md_malloc(sizeof(float) * (size_t)B, "batch targets", err);
    t.dout = md_malloc(sizeof(float) * (size_t)B, "output gradient", err);
    t.order = md_malloc(sizeof(size_t) * n, "sample order", err);
    train_log = md_malloc(sizeof(double) * (size_t)o.epochs, "training log", err);
    val_log = md_malloc(sizeof(double) * (size_t)o.epochs, "validation log", err);
    if (!t.data || !t.tmp || !t.target || !t.batch_target || !t.dout || !t.order || !train_log ||
        !val_log) {
        st = MD_ERR_NOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if ((st = md_cnn_preprocess(&images[i], o.input_size, t.data + i * isz, t.tmp, err)) !=
            MD_OK)
            goto done;
        t.target[i] = (float)log_scales[i];
    }
    free(t.tmp);
    t.tmp = NULL;

    if ((st = model_new(&t.spec, o.base_model, o.list_hash, &model, err)) != MD_OK)
        goto done;
    model->n_train = n_train;
    model->epochs = o.epochs;
    update_desc(model);
    size_t np = t.spec.n_params;
    t.grads = md_malloc(sizeof(float) * np, "parameter gradients", err);
    t.m = md_calloc(np, sizeof(float), "Adam first moments", err);
    t.v = md_calloc(np, sizeof(float), "Adam second moments", err);
    if (!t.grads || !t.m || !t.v) {
        st = MD_ERR_NOMEM;
        goto done;
    }
    if ((st = md_cnn_work_init(&t.work, &t.spec, B, true, threads, err)) != MD_OK)
        goto done;
    md_cnn_init_params(&t.spec, model->params, o.seed);

    /* Split: a seeded permutation; its first n_val samples validate. */
    for (size_t i = 0; i < n; i++)
        t.order[i] = i;
    uint64_t split_rng = stream_seed(o.seed, STREAM_SPLIT);
    shuffle(t.order, n, &split_rng);
    size_t *val_idx = t.order, *train_idx = t.order + n_val;
    uint64_t shuffle_rng = stream_seed(o.seed, STREAM_SHUFFLE);

    int batches = (int)((n_train + (size_t)B - 1) / (size_t)B);
    long total_batches = (long)batches * o.epochs, done_batches = 0;
    double t0 = md_now_seconds(), last_val = NAN;
    int step = 0;
    for (int e = 0; e < o.epochs; e++) {
        double lr = md_cnn_step_lr(o.lr, e, o.step_size, o.gamma);
        shuffle(train_idx, n_train, &shuffle_rng);
        double sum_sq = 0.0;
        size_t seen = 0;
        for (int bi = 0; bi < batches; bi++) {
            size_t start = (size_t)bi * (size_t)B;
            int nb = (int)(n_train - start < (size_t)B ? n_train - start : (size_t)B);
            load_batch(&t, train_idx + start, nb);
            const float *pred = md_cnn_forward(&t.spec, model->params, &t.work, nb);
            double loss = md_mse_loss(pred, t.batch_target, nb, t.dout);
            if (!isfinite(loss)) {
                st = md_fail(err, MD_ERR_DATA,
                             "scale CNN training diverged (loss %g at epoch %d, batch %d); "
                             "try a smaller learning rate",
                             loss, e + 1, bi + 1);
                goto done;
            }
            md_cnn_backward(&t.spec, model->params, &t.work, nb, t.dout, t.grads);
            step++;
            md_adam_step(model->params, t.grads, t.m, t.v, np, lr, o.beta1, o.beta2, o.eps, step,
                         t.work.pool);
            sum_sq += loss * nb;
            seen += (size_t)nb;
            done_batches++;
            if (o.progress) {
                md_train_progress p;
                p.epoch = e + 1;
                p.epochs = o.epochs;
                p.batch = bi + 1;
                p.batches = batches;
                p.train_loss = sum_sq / (double)seen;
                p.val_loss = last_val;
                p.elapsed_s = md_now_seconds() - t0;
                p.eta_s = p.elapsed_s / (double)done_batches *
                          (double)(total_batches - done_batches);
                o.progress(o.progress_user, &p);
            }
        }
        train_log[e] = sum_sq / (double)seen;
        val_log[e] = NAN;
        if (n_val > 0 && ((e + 1) % o.val_every == 0 || e == o.epochs - 1)) {
            double vs = 0.0;
            for (size_t start = 0; start < n_val; start += (size_t)B) {
                int nb = (int)(n_val - start < (size_t)B ? n_val - start : (size_t)B);
                load_batch(&t, val_idx + start, nb);
                const float *pred = md_cnn_forward(&t.spec, model->params, &t.work, nb);
                vs += md_mse_loss(pred, t.batch_target, nb, NULL) * nb;
            }
            val_log[e] = last_val = vs / (double)n_val;
        }
    }
    if (log) {
        log->epochs = o.epochs;
        log->train_loss = train_log;
        log->val_loss = val_log;
        log->n_train = n_train;
        log->n_val = n_val;
        train_log = val_log = NULL;
    }
    *out = model;
    model = NULL;
    st = MD_OK;
done:
    trainer_free(&t);
    free(train_log);
    free(val_log);
    md_cnn_model_free(model);
    return st;
}

/* ------------------------------------------------------------ save / load */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...) MD_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= sizeof tmp) {
        b->oom = true;
        return;
    }
    sb_put(b, tmp, (size_t)k);
}

static void sb_json_string(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
        if (*q == '"' || *q == '\\') {
            char e[2] = {'\\', (char)*q};
            sb_put(b, e, 2);
        } else if (*q < 0x20) {
            sb_printf(b, "\\u%04x", *q);
        } else {
            sb_put(b, (const char *)q, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_meta(sbuf *b, const char *key, const char *value)
{
    sb_json_string(b, key);
    sb_put(b, ":", 1);
    sb_json_string(b, value);
}

/* Shape of parameter tensor `which` (0 weight, 1 bias) of layer l. */
static int param_shape(const md_cnn_layer *l, int which, int64_t shape[4])
{
    if (which == 1) {
        shape[0] = l->out_c;
        return 1;
    }
    if (l->kind == MD_CNN_CONV) {
        shape[0] = l->out_c;
        shape[1] = l->in_c;
        shape[2] = shape[3] = l->k;
        return 4;
    }
    shape[0] = l->out_c;
    shape[1] = l->in_c;
    return 2;
}

md_status md_cnn_model_save(const md_cnn_model *m, const char *path, md_error *err)
{
    if (!m || !path)
        return md_fail(err, MD_ERR_ARG, "scale model save: NULL argument");
    sbuf h = {0};
    char num[32];
    sb_put(&h, "{\"__metadata__\":{", 17);
    sb_meta(&h, "format", SCALE_FORMAT);
    sb_put(&h, ",", 1);
    sb_meta(&h, "arch", md_scale_arch_name(m->spec.arch));
    snprintf(num, sizeof num, "%d", m->spec.input_size);
    sb_put(&h, ",", 1);
    sb_meta(&h, "input_size", num);
    sb_put(&h, ",", 1);
    sb_meta(&h, "norm_mean", "0.5");
    sb_put(&h, ",", 1);
    sb_meta(&h, "norm_std", "0.5");
    sb_put(&h, ",", 1);
    sb_meta(&h, "base_model", m->base_model);
    sb_put(&h, ",", 1);
    sb_meta(&h, "list_hash", m->list_hash);
    snprintf(num, sizeof num, "%zu", m->n_train);
    sb_put(&h, ",", 1);
    sb_meta(&h, "n_train", num);
    snprintf(num, sizeof num, "%d", m->epochs);
    sb_put(&h, ",", 1);
    sb_meta(&h, "epochs", num);
    sb_put(&h, "}", 1);
    size_t off = 0;
    for (int i = 0; i < m->spec.n_layers; i++) {
        const md_cnn_layer *l = &m->spec.layers[i];
        if (l->kind != MD_CNN_CONV && l->kind != MD_CNN_FC)
            continue;
        for (int which = 0; which < 2; which++) {
            int64_t shape[4];
            int nd = param_shape(l, which, shape);
            size_t bytes = sizeof(float) * (which ? l->b_n : l->w_n);
            sb_printf(&h, ",\"%s.%s\":{\"dtype\":\"F32\",\"shape\":[", l->name,
                      which ? "bias" : "weight");
            for (int d = 0; d < nd; d++)
                sb_printf(&h, "%s%lld", d ? "," : "", (long long)shape[d]);
            sb_printf(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + bytes);
            off += bytes;
        }
    }
    sb_put(&h, "}", 1);
    while (!h.oom && h.len % 8 != 0)
        sb_put(&h, " ", 1);
    if (h.oom) {
        free(h.p);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the header", path);
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK) {
        free(h.p);
        return st;
    }
    /* Parameters are stored in tensor order already: one write (little-endian host). */
    bool ok = fwrite(len8, 1, 8, af.fp) == 8 && fwrite(h.p, 1, h.len, af.fp) == h.len &&
              fwrite(m->params, sizeof(float), m->spec.n_params, af.fp) == m->spec.n_params;
    free(h.p);
    if (!ok) {
        int e = errno;
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return md_atomic_commit(&af, err);
}

static const char *meta_get(const md_meta_entry *items, size_t count, const char *key)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(items[i].key, key) == 0)
            return items[i].value;
    return NULL;
}

static bool parse_long(const char *s, long lo, long hi, long *v)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return false;
    *v = x;
    return true;
}

md_status md_cnn_model_load(const char *path, md_cnn_model **out, md_error *err)
{
    if (!path || !out)
        return md_fail(err, MD_ERR_ARG, "scale model load: NULL argument");
    *out = NULL;
    md_weights w;
    memset(&w, 0, sizeof w);
    md_meta_entry *meta = NULL;
    size_t n_meta = 0;
    md_cnn_model *m = NULL;
    md_status st = md_weights_open(path, &w, err);
    if (st != MD_OK)
        return st;
    if (!w.map) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: not a safetensors scale model", path);
        goto done;
    }
    if ((st = md_safetensors_metadata(w.map, w.map_size, path, &meta, &n_meta, err)) != MD_OK)
        goto done;
    const char *fmt = meta_get(meta, n_meta, "format");
    if (!fmt || strcmp(fmt, SCALE_FORMAT) != 0) {
        st = md_fail(err, MD_ERR_FORMAT,
                     "%s: metadata 'format' is '%.60s', expected '" SCALE_FORMAT
                     "' (not a scale model)",
                     path, fmt ? fmt : "(missing)");
        goto done;
    }
    const char *arch_s = meta_get(meta, n_meta, "arch");
    int arch = md_scale_arch_parse(arch_s);
    if (arch < 0) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: metadata 'arch' is '%.60s' (paper or compact)",
                     path, arch_s ? arch_s : "(missing)");
        goto done;
    }
    long input_size, n_train = 0, epochs = 0;
    if (!parse_long(meta_get(meta, n_meta, "input_size"), 1, 4096, &input_size)) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: metadata 'input_size' missing or not in 1..4096",
                     path);
        goto done;
    }
    const char *mean = meta_get(meta, n_meta, "norm_mean"), *std = meta_get(meta, n_meta, "norm_std");
    if (!mean || !std || strtod(mean, NULL) != 0.5 || strtod(std, NULL) != 0.5) {
        st = md_fail(err, MD_ERR_UNSUPPORTED,
                     "%s: metadata 'norm_mean'/'norm_std' must be 0.5 (got '%.20s', '%.20s')",
                     path, mean ? mean : "(missing)", std ? std : "(missing)");
        goto done;
    }
    const char *nt = meta_get(meta, n_meta, "n_train"), *ep = meta_get(meta, n_meta, "epochs");
    if ((nt && !parse_long(nt, 0, 1L << 40, &n_train)) || (ep && !parse_long(ep, 0, 1L << 30, &epochs))) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: metadata 'n_train' or 'epochs' is not a number", path);
        goto done;
    }
    md_cnn_spec spec;
    if ((st = md_cnn_spec_init(&spec, (md_scale_arch)arch, (int)input_size, err)) != MD_OK) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: %s", path, err ? err->message : "bad input size");
        goto done;
    }
    if ((st = model_new(&spec, meta_get(meta, n_meta, "base_model"),
                        meta_get(meta, n_meta, "list_hash"), &m, err)) != MD_OK)
        goto done;
    m->n_train = (size_t)n_train;
    m->epochs = (int)epochs;
    update_desc(m);
    size_t expected = 0;
    for (int i = 0; i < spec.n_layers; i++) {
        const md_cnn_layer *l = &spec.layers[i];
        if (l->kind != MD_CNN_CONV && l->kind != MD_CNN_FC)
            continue;
        for (int which = 0; which < 2; which++) {
            char name[40];
            snprintf(name, sizeof name, "%s.%s", l->name, which ? "bias" : "weight");
            expected++;
            const md_weight *t = md_weights_find(&w, name);
            if (!t) {
                st = md_fail(err, MD_ERR_FORMAT, "%s: missing tensor '%s' (%s scale CNN)", path,
                             name, md_scale_arch_name(spec.arch));
                goto done;
            }
            int64_t shape[4];
            int nd = param_shape(l, which, shape);
            bool same = t->ndim == nd && t->dtype == MD_WDT_F32;
            for (int d = 0; same && d < nd; d++)
                same = t->shape[d] == shape[d];
            if (!same) {
                char want[64], got[96];
                int k = 0;
                for (int d = 0; d < nd && k < (int)sizeof want; d++)
                    k += snprintf(want + k, sizeof want - (size_t)k, "%s%lld", d ? "x" : "",
                                  (long long)shape[d]);
                k = 0;
                got[0] = '\0';
                for (int d = 0; d < t->ndim && k < (int)sizeof got; d++)
                    k += snprintf(got + k, sizeof got - (size_t)k, "%s%lld", d ? "x" : "",
                                  (long long)t->shape[d]);
                st = md_fail(err, MD_ERR_FORMAT,
                             "%s: tensor '%s' is %s %s, expected F32 %s (%s, input %ld)", path,
                             name, md_wdtype_name(t->dtype), got, want,
                             md_scale_arch_name(spec.arch), input_size);
                goto done;
            }
            md_weight_to_f32(t, m->params + (which ? l->b_off : l->w_off));
        }
    }
    if (w.count != expected) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: %zu tensors, a %s scale CNN has %zu", path, w.count,
                     md_scale_arch_name(spec.arch), expected);
        goto done;
    }
    for (size_t i = 0; i < spec.n_params; i++)
        if (!isfinite(m->params[i])) {
            st = md_fail(err, MD_ERR_DATA, "%s: non-finite weight", path);
            goto done;
        }
    *out = m;
    m = NULL;
    st = MD_OK;
done:
    md_cnn_model_free(m);
    md_safetensors_metadata_free(meta, n_meta);
    md_weights_free(&w);
    return st;
}
