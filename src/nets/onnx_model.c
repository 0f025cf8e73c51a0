/* The ONNX backend: a CNN graph (onnx_graph.c) behind md_model, with
 * FastDepth's preprocessing for md_model_predict.
 *
 * predict works for "FastDepth-like" graphs only: one float input of shape
 * 1x3xHxW (RGB in [0,1]) and a first output of 1x1xHoxWo or 1xHoxWo (depth in
 * metres). Other graphs load and run through md_model_run_tensor, and predict
 * returns MD_ERR_UNSUPPORTED.
 *
 * Preprocessing, as FastDepth was trained: dwofk/fast-depth's NYU loader runs
 * Resize(250/h), CenterCrop((228, 304)), Resize((224, 224)) from its
 * dataloaders/transforms.py, whose Resize defaults to interpolation='nearest'
 * (scipy.misc.imresize, i.e. PIL NEAREST on the 8-bit image), then /255 with
 * no mean/std. So:
 *  1. resize to height 250 keeping the aspect ratio (width int(w * 250/h));
 *     images so narrow that the width would fall below 304 are resized to
 *     width 304 instead;
 *  2. centre crop 228x304, offsets int(round((size - crop) / 2)) with Python 3
 *     round-half-even;
 *  3. resize the crop to the network input HxW;
 *  4. divide by 255.
 * Both resizes are PIL NEAREST: source index floor((i + 0.5) * in / out).
 * (Measured on the three NYU images in shared/, AbsRel on the crop: nearest
 * 0.086, plain half-pixel bilinear 0.093, PIL's antialiased bilinear 0.101.)
 * Map back: every image pixel centre is carried through steps 1-3 (a pure
 * scale and offset per axis) into network-output coordinates and sampled
 * bilinearly (half-pixel centres), coordinates clamped to the output. This
 * equals bilinear resizing of the output onto the 228x304 crop and then onto
 * the image, in one sampling step. Pixels whose centre falls outside the crop
 * get the nearest edge value (edge extension) and mask 0. */
#include "backend.h"
#include "base/base.h"
#include "base/pool.h"
#include "formats/onnx.h"
#include "nets/onnx_graph.h"
#include "ops/cnn_ops.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define FD_RESIZE_H 250
#define FD_CROP_H 228
#define FD_CROP_W 304
#define WS_CACHE 8 /* idle workspaces kept for the next runs */

/* The graph is immutable after the build; each run takes a workspace
 * (activations and scratch) from a small free list under `mu`, or makes one,
 * and gives it back after (as ONNX Runtime's thread-safe Run). So concurrent
 * runs never share buffers, and a lone caller reuses one workspace. */
typedef struct {
    md_onnx_graph *graph;
    md_threadpool *pool;
    bool depth_like; /* FastDepth-like input/output shapes */
    md_precision precision; /* of the convolutions' products: fp32 or bf16 */
    int in_h, in_w, out_h, out_w;
    char desc[256];
    pthread_mutex_t mu;
    md_onnx_ws *idle[WS_CACHE];
    int n_idle;
} onnx_impl;

/* The workspace cache is the only state a run changes; it sits behind the
 * mutex, so runs take the model as const. */
static md_onnx_ws *ws_take(const onnx_impl *cm)
{
    onnx_impl *m = (onnx_impl *)(uintptr_t)cm;
    md_onnx_ws *ws = NULL;
    pthread_mutex_lock(&m->mu);
    if (m->n_idle > 0)
        ws = m->idle[--m->n_idle];
    pthread_mutex_unlock(&m->mu);
    return ws ? ws : md_onnx_ws_create(m->graph, md_pool_threads(m->pool));
}

static void ws_give(const onnx_impl *cm, md_onnx_ws *ws)
{
    onnx_impl *m = (onnx_impl *)(uintptr_t)cm;
    pthread_mutex_lock(&m->mu);
    if (m->n_idle < WS_CACHE) {
        m->idle[m->n_idle++] = ws;
        ws = NULL;
    }
    pthread_mutex_unlock(&m->mu);
    md_onnx_ws_free(ws);
}


static int round_half_even(double v)
{
    double r = floor(v + 0.5);
    if (r - v == 0.5 && fmod(r, 2.0) != 0.0)
        r -= 1.0;
    return (int)r;
}

/* Where the preprocessing takes the network input from (FastDepth's steps
 * 1-3 above): the resized size, the crop offsets. */
typedef struct {
    int rh, rw, cy, cx;
} fd_geometry;

static fd_geometry fd_geometry_of(int w, int h)
{
    /* Step 1 sizes (Python: int(size * scale) in double). */
    fd_geometry g;
    double s = (double)FD_RESIZE_H / h;
    g.rh = (int)(h * s);
    g.rw = (int)(w * s);
    if (g.rw < FD_CROP_W) {
        s = (double)FD_CROP_W / w;
        g.rh = (int)(h * s);
        g.rw = (int)(w * s);
    }
    if (g.rh < FD_CROP_H)
        g.rh = FD_CROP_H;
    if (g.rw < FD_CROP_W)
        g.rw = FD_CROP_W;
    g.cy = round_half_even((g.rh - FD_CROP_H) / 2.0);
    g.cx = round_half_even((g.rw - FD_CROP_W) / 2.0);
    return g;
}

/* PIL NEAREST's source index (md_resize_pil_nearest's rule). */
static int nearest_src(int i, int in, int out)
{
    int v = (int)floor((i + 0.5) * ((double)in / out));
    return v < 0 ? 0 : v >= in ? in - 1 : v;
}

typedef struct {
    const md_image *img;
    fd_geometry g;
    const int *xs;
    int in_h, in_w, tasks;
    float *net;
} fd_pre_job;

static void fd_pre_task(void *ctx, int t, int worker)
{
    (void)worker;
    const fd_pre_job *j = ctx;
    int w = j->img->width, h = j->img->height, n = j->in_w;
    size_t plane = (size_t)j->in_h * n;
    int y0 = (int)((long)j->in_h * t / j->tasks), y1 = (int)((long)j->in_h * (t + 1) / j->tasks);
    for (int y = y0; y < y1; y++) {
        int sy = nearest_src(j->g.cy + nearest_src(y, FD_CROP_H, j->in_h), h, j->g.rh);
        const uint8_t *row = j->img->pixels + (size_t)sy * w * 3;
        float *d0 = j->net + (size_t)y * n, *d1 = d0 + plane, *d2 = d1 + plane;
        for (int x = 0; x < n; x++) {
            const uint8_t *px = row + (size_t)j->xs[x] * 3;
            d0[x] = (float)px[0] * (1.0f / 255.0f);
            d1[x] = (float)px[1] * (1.0f / 255.0f);
            d2[x] = (float)px[2] * (1.0f / 255.0f);
        }
    }
}

/* Steps 1-4 at once: both resizes are nearest and the crop an offset, so
 * each network pixel copies one image pixel, found by composing the index
 * maps (the same pixel the step-by-step resizes pick), never the resized
 * image itself (a 1x10000 image would resize to 250x2500000). Rows split
 * over the pool. net: 3 x in_h x in_w. */
static md_status fd_preprocess(const onnx_impl *m, const md_image *img, float *net, md_error *err)
{
    int w = img->width, h = img->height;
    fd_pre_job j = {img, fd_geometry_of(w, h), NULL, m->in_h, m->in_w, 1, net};
    int *xs = malloc(sizeof(int) * (size_t)m->in_w);
    if (!xs)
        return md_fail(err, MD_ERR_NOMEM, "predict: out of memory");
    for (int x = 0; x < m->in_w; x++)
        xs[x] = nearest_src(j.g.cx + nearest_src(x, FD_CROP_W, m->in_w), w, j.g.rw);
    j.xs = xs;
    int threads = md_pool_threads(m->pool);
    j.tasks = threads > 1 ? (m->in_h < 4 * threads ? m->in_h : 4 * threads) : 1;
    md_pool_run(m->pool, j.tasks, fd_pre_task, &j);
    free(xs);
    return MD_OK;
}

static md_status onnx_preprocess(const void *impl, const md_image *img, md_tensor *out,
                                 md_error *err)
{
    const onnx_impl *m = impl;
    if (!m->depth_like)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: no image preprocessing for this graph",
                       m->desc);
    if (img->width > MD_MAX_DIM || img->height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "predict: image %dx%d too large", img->width,
                       img->height);
    out->data = malloc(sizeof(float) * 3 * (size_t)m->in_h * m->in_w);
    if (!out->data)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the input", m->desc);
    md_status st = fd_preprocess(m, img, out->data, err);
    if (st != MD_OK) {
        free(out->data);
        out->data = NULL;
        return st;
    }
    out->ndim = 4;
    out->shape[0] = 1;
    out->shape[1] = 3;
    out->shape[2] = m->in_h;
    out->shape[3] = m->in_w;
    return MD_OK;
}

/* Mapping the network's output back onto the image: an image pixel's
 * centre -> resized (x sx) -> crop (- cx) -> network output (x Wo/304), the
 * same separable map for every row and column, so it is a bilinear resize
 * with its own tables (md_resize_tables_map), split into row ranges over the
 * pool; each task then zeroes what is not finite and positive and writes the
 * mask (inside the crop). */
typedef struct {
    double sx, sy, ox, oy;
    int cx, cy;
} mapback_geometry;

static double mapback_coord(void *user, int axis, int i)
{
    const mapback_geometry *g = user;
    if (axis) {
        double u = (i + 0.5) * g->sx - g->cx;
        return u * g->ox - 0.5;
    }
    double v = (i + 0.5) * g->sy - g->cy;
    return v * g->oy - 0.5;
}

typedef struct {
    const md_resize_tables *t;
    const mapback_geometry *g;
    const float *d;
    int out_w, out_h, w, h, tasks;
    const uint8_t *cin; /* per image column: inside the crop */
    md_depth *out;
} mapback_job;

/* the comparisons are false for NaN; restrict lets the loops vectorise */
static void positive_row(float *restrict row, int w)
{
    for (int x = 0; x < w; x++)
        row[x] = row[x] > 0.0f && row[x] < INFINITY ? row[x] : 0.0f;
}

static void mask_row(const uint8_t *restrict cin, uint8_t in_y, uint8_t *restrict mrow, int w)
{
    for (int x = 0; x < w; x++)
        mrow[x] = cin[x] & in_y;
}

static void mapback_task(void *ctx, int t, int worker)
{
    (void)worker;
    const mapback_job *j = ctx;
    int w = j->w, ya = (int)((long)j->h * t / j->tasks), yb = (int)((long)j->h * (t + 1) / j->tasks);
    if (ya >= yb)
        return;
    md_resize2d_rows(j->t, j->d, j->out_h, j->out_w, j->out->data + (size_t)ya * w, NULL, 0, 1,
                     ya, yb);
    for (int y = ya; y < yb; y++) {
        double v = (y + 0.5) * j->g->sy - j->g->cy;
        positive_row(j->out->data + (size_t)y * w, w);
        mask_row(j->cin, v >= 0.0 && v < FD_CROP_H, j->out->mask + (size_t)y * w, w);
    }
}

static md_status onnx_predict(const void *impl, const md_image *img, md_depth *out,
                              md_features *features, md_error *err)
{
    const onnx_impl *m = impl;
    if (!m->depth_like)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: predict needs a depth network with a 1x3xHxW input and a 1x1xHxW "
                       "output; use run_tensor for other graphs",
                       m->desc);
    int w = img->width, h = img->height;
    if (w > MD_MAX_DIM || h > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "predict: image %dx%d too large", w, h);
    fd_geometry g = fd_geometry_of(w, h);
    int rh = g.rh, rw = g.rw, cy = g.cy, cx = g.cx;
    size_t npix = (size_t)w * h, n_net = (size_t)3 * m->in_h * m->in_w;
    float *net = malloc(sizeof(float) * n_net);
    md_onnx_ws *ws = NULL;
    uint64_t signature = 0;
    size_t n_feat = md_onnx_graph_features(m->graph, &signature);
    float *feat = features && n_feat ? malloc(sizeof(float) * n_feat) : NULL;
    md_status st = MD_OK;
    if (features && n_feat && !feat) {
        st = md_fail(err, MD_ERR_NOMEM, "predict: out of memory for the features");
        goto done;
    }
    if (!net) {
        st = md_fail(err, MD_ERR_NOMEM, "predict: out of memory for a %dx%d image", w, h);
        goto done;
    }
    if ((st = fd_preprocess(m, img, net, err)) != MD_OK)
        goto done;
    ws = ws_take(m);
    if (!ws) {
        st = md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the network's activations",
                     m->desc);
        goto done;
    }
    const float *d = md_onnx_graph_run(m->graph, ws, m->pool, net, feat);
    /* every value and mask byte is written below: no zeroing */
    out->data = malloc(sizeof(float) * npix);
    out->mask = malloc(npix);
    out->width = w;
    out->height = h;
    if (!out->data || !out->mask) {
        md_depth_free(out);
        st = md_fail(err, MD_ERR_NOMEM, "predict: out of memory for a %dx%d depth map", w, h);
        goto done;
    }
    mapback_geometry geo = {(double)rw / w, (double)rh / h, (double)m->out_w / FD_CROP_W,
                            (double)m->out_h / FD_CROP_H, cx, cy};
    md_resize_tables tab;
    uint8_t *cin = malloc((size_t)w);
    if (!cin || !md_resize_tables_map(&tab, m->out_h, m->out_w, h, w, mapback_coord, &geo)) {
        free(cin);
        md_depth_free(out);
        st = md_fail(err, MD_ERR_NOMEM, "predict: out of memory");
        goto done;
    }
    for (int x = 0; x < w; x++) {
        double u = (x + 0.5) * geo.sx - cx;
        cin[x] = u >= 0.0 && u < FD_CROP_W;
    }
    int threads = md_pool_threads(m->pool);
    mapback_job mb = {&tab, &geo, d, m->out_w, m->out_h, w, h,
                      threads > 1 ? (h < 4 * threads ? h : 4 * threads) : 1, cin, out};
    md_pool_run(m->pool, mb.tasks, mapback_task, &mb);
    md_resize_tables_free(&tab);
    free(cin);
    if (feat) {
        features->values = feat;
        features->n = n_feat;
        features->signature = signature;
        feat = NULL;
    }
done:
    if (ws)
        ws_give(m, ws);
    free(feat);
    free(net);
    return st;
}

static md_status onnx_run_tensor(const void *impl, const md_tensor *in, md_tensor *out,
                                 md_error *err)
{
    const onnx_impl *m = impl;
    const md_onnx_graph_info *info = md_onnx_graph_get_info(m->graph);
    /* Accept the graph's shape, or it without a leading 1 (CHW for NCHW). */
    bool ok = false;
    if (in->ndim == info->in_ndim) {
        ok = true;
        for (int i = 0; i < in->ndim; i++)
            ok = ok && in->shape[i] == info->in_dims[i];
    } else if (in->ndim == info->in_ndim - 1 && info->in_dims[0] == 1) {
        ok = true;
        for (int i = 0; i < in->ndim; i++)
            ok = ok && in->shape[i] == info->in_dims[i + 1];
    }
    if (!ok) {
        char want[128] = "";
        size_t len = 0;
        for (int i = 0; i < info->in_ndim && len < sizeof want - 24; i++)
            len += (size_t)snprintf(want + len, sizeof want - len, "%s%lld", i ? "x" : "",
                                    (long long)info->in_dims[i]);
        return md_fail(err, MD_ERR_DATA, "input tensor shape does not match the network %s (%s)",
                       m->desc, want);
    }
    out->data = malloc(sizeof(float) * info->out_numel);
    md_onnx_ws *ws = out->data ? ws_take(m) : NULL;
    if (!ws) {
        free(out->data);
        out->data = NULL;
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the network's activations",
                       m->desc);
    }
    const float *r = md_onnx_graph_run(m->graph, ws, m->pool, in->data, NULL);
    memcpy(out->data, r, sizeof(float) * info->out_numel);
    ws_give(m, ws);
    out->ndim = info->out_ndim;
    for (int i = 0; i < info->out_ndim; i++)
        out->shape[i] = info->out_dims[i];
    return MD_OK;
}

static const char *onnx_describe(const void *impl)
{
    return ((const onnx_impl *)impl)->desc;
}

static md_precision onnx_precision(const void *impl)
{
    return ((const onnx_impl *)impl)->precision;
}

/* The network always runs at its fixed input size, whatever the image size. */
static double onnx_gflop(const void *impl, int width, int height)
{
    (void)width;
    (void)height;
    return md_onnx_graph_get_info(((const onnx_impl *)impl)->graph)->flop * 1e-9;
}

static double onnx_gflop_bf16(const void *impl, int width, int height)
{
    (void)width;
    (void)height;
    return md_onnx_graph_get_info(((const onnx_impl *)impl)->graph)->flop_bf16 * 1e-9;
}

static void onnx_destroy(void *impl)
{
    onnx_impl *m = impl;
    if (!m)
        return;
    for (int i = 0; i < m->n_idle; i++)
        md_onnx_ws_free(m->idle[i]);
    pthread_mutex_destroy(&m->mu);
    md_onnx_graph_free(m->graph);
    free(m);
}

static size_t onnx_features(const void *impl, uint64_t *signature)
{
    const onnx_impl *m = impl;
    return m->depth_like ? md_onnx_graph_features(m->graph, signature) : 0;
}

/* A FastDepth-like graph is run with NYU's preprocessing: an indoor metric
 * network (NYU Depth V2 reaches 10 m) that sees the 228x304 (3:4) centre crop. */
static void onnx_info(const void *impl, md_model_info *info)
{
    const onnx_impl *m = impl;
    info->output = MD_OUTPUT_METRIC;
    if (m->depth_like) {
        info->max_depth = 10.0;
        info->indoor = 1;
        info->crop_aspect_w = FD_CROP_W;
        info->crop_aspect_h = FD_CROP_H;
    }
}

static const md_model_backend onnx_backend = {"onnx",          onnx_predict,   onnx_run_tensor,
                                              onnx_describe,   onnx_gflop,     onnx_destroy,
                                              onnx_features,   onnx_precision, onnx_preprocess,
                                              onnx_info,       onnx_gflop_bf16};

md_status md_onnx_model_open(const char *path, const md_model_options *opts, md_threadpool *pool,
                             const md_model_backend **backend, void **impl, md_error *err)
{
    *backend = NULL;
    *impl = NULL;
    md_onnx_model om;
    md_status st = md_onnx_load(path, &om, err);
    if (st != MD_OK)
        return st;
    onnx_impl *m = calloc(1, sizeof *m);
    if (!m) {
        md_onnx_free(&om);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    }
    /* bf16: the convolutions' products (FastDepth's pointwise layers, most of
     * its work) run twice as many multiply-adds per instruction */
    m->precision = md_precision_resolve(opts->precision);
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        md_onnx_free(&om);
        free(m);
        return md_fail(err, MD_ERR_NOMEM, "%s: cannot create a mutex", path);
    }
    st = md_onnx_graph_build(&om, path, 0,
                             m->precision == MD_PRECISION_BF16 ? MD_GEMM_BF16 : MD_GEMM_F32,
                             &m->graph, err);
    md_onnx_free(&om);
    if (st != MD_OK) {
        pthread_mutex_destroy(&m->mu);
        free(m);
        return st;
    }
    m->pool = pool;
    const md_onnx_graph_info *info = md_onnx_graph_get_info(m->graph);
    if (info->in_ndim == 4 && info->in_dims[0] == 1 && info->in_dims[1] == 3 &&
        ((info->out_ndim == 4 && info->out_dims[0] == 1 && info->out_dims[1] == 1) ||
         (info->out_ndim == 3 && info->out_dims[0] == 1))) {
        m->depth_like = true;
        m->in_h = (int)info->in_dims[2];
        m->in_w = (int)info->in_dims[3];
        m->out_h = (int)info->out_dims[info->out_ndim - 2];
        m->out_w = (int)info->out_dims[info->out_ndim - 1];
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char shape[96] = "";
    size_t len = 0;
    for (int i = 0; i < info->in_ndim && len < sizeof shape - 24; i++)
        len += (size_t)snprintf(shape + len, sizeof shape - len, "%s%lld", i ? "x" : "",
                                (long long)info->in_dims[i]);
    snprintf(m->desc, sizeof m->desc,
             "%.100s: ONNX opset %lld CNN, %d conv%s, %.2f M params, input %s", base,
             (long long)info->opset, info->n_conv,
             m->precision == MD_PRECISION_BF16 ? " (bf16 products)" : "",
             (double)info->n_params * 1e-6, shape);
    *backend = &onnx_backend;
    *impl = m;
    return MD_OK;
}
