#include "backend.h"
#include "base/base.h"
#include "base/pool.h"
#include "ops/cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Immutable after md_model_load: every field is read-only while predictions
 * run (the backends' contract, backend.h). */
struct md_model {
    const md_model_backend *backend;
    void *impl;
    md_threadpool *pool;
    bool owns_pool;
    char file_name[256]; /* the file's name without its folder */
};

int md_precision_parse(const char *name)
{
    if (!name)
        return -1;
    if (strcmp(name, "fp32") == 0)
        return MD_PRECISION_FP32;
    if (strcmp(name, "bf16") == 0)
        return MD_PRECISION_BF16;
    if (strcmp(name, "auto") == 0)
        return MD_PRECISION_AUTO;
    return -1;
}

const char *md_precision_name(md_precision precision)
{
    switch (precision) {
    case MD_PRECISION_FP32: return "fp32";
    case MD_PRECISION_BF16: return "bf16";
    case MD_PRECISION_AUTO: return "auto";
    }
    return "unknown";
}

/* Chooses the backend from the file's first bytes, falling back to the
 * extension: a zip is a PyTorch checkpoint, a safetensors file starts with a
 * little-endian header length followed by '{'. */
static md_status pick_opener(const char *path, md_model_opener *opener, md_error *err)
{
    *opener = NULL;
    int fd = md_open_regular(path, NULL, err);
    if (fd < 0)
        return MD_ERR_IO;
    uint8_t head[9] = {0};
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    size_t n = got > 0 ? (size_t)got : 0;
    if (n >= 4 && memcmp(head, "PK\x03\x04", 4) == 0)
        *opener = md_da2_model_open;
    else if (n == 9 && head[8] == '{')
        *opener = md_da2_model_open;
    else if (md_path_has_ext(path, "onnx"))
        *opener = md_onnx_model_open;
    else if (md_path_has_ext(path, "pth") || md_path_has_ext(path, "safetensors"))
        *opener = md_da2_model_open;
    else
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: unknown model format (expected .onnx, a PyTorch .pth zip or "
                       ".safetensors)",
                       path);
    return MD_OK;
}

md_precision md_precision_resolve(md_precision requested)
{
    if (requested != MD_PRECISION_AUTO)
        return requested;
    md_cpu_features cpu = md_cpu_detect();
    return cpu.avx512_bf16 || cpu.amx_bf16 ? MD_PRECISION_BF16 : MD_PRECISION_FP32;
}

md_status md_model_load(const char *path, const md_model_options *opts, md_model **out,
                        md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "md_model_load: out is NULL");
    *out = NULL;
    if (!path)
        return md_fail(err, MD_ERR_ARG, "no model path given");
    md_model_options defaults = {0};
    md_model_opener open;
    md_status st = pick_opener(path, &open, err);
    if (st != MD_OK)
        return st;
    if (!opts)
        opts = &defaults;
    if (opts->threads < 0)
        return md_fail(err, MD_ERR_ARG, "%s: negative thread count %d", path, opts->threads);
    if (opts->precision < MD_PRECISION_FP32 || opts->precision > MD_PRECISION_AUTO)
        return md_fail(err, MD_ERR_ARG, "%s: unknown precision %d", path, (int)opts->precision);
    md_model *m = calloc(1, sizeof *m);
    if (!m)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    const char *slash = strrchr(path, '/');
    snprintf(m->file_name, sizeof m->file_name, "%s", slash ? slash + 1 : path);
    m->pool = opts->pool;
    if (!m->pool) {
        m->pool = md_pool_create(opts->threads);
        m->owns_pool = true;
        if (!m->pool) {
            free(m);
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the thread pool", path);
        }
    }
    st = open(path, opts, m->pool, &m->backend, &m->impl, err);
    if (st != MD_OK) {
        if (m->owns_pool)
            md_pool_destroy(m->pool);
        free(m);
        return md_name_file(err, st, path);
    }
    *out = m;
    return MD_OK;
}

md_status md_model_predict(const md_model *model, const md_image *img, md_depth *out,
                           md_error *err)
{
    return md_model_predict_ex(model, img, out, NULL, err);
}

md_status md_model_predict_ex(const md_model *model, const md_image *img, md_depth *out,
                              md_features *features, md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "predict: NULL output");
    memset(out, 0, sizeof *out);
    if (features)
        memset(features, 0, sizeof *features);
    if (!model || !img || !img->pixels || img->width <= 0 || img->height <= 0)
        return md_fail(err, MD_ERR_ARG, "predict: no model or empty image");
    md_status st = model->backend->predict(model->impl, img, out, features, err);
    if (st != MD_OK && features)
        md_features_free(features);
    return st;
}

void md_features_free(md_features *f)
{
    if (!f)
        return;
    free(f->values);
    memset(f, 0, sizeof *f);
}

md_status md_model_run_tensor(const md_model *model, const md_tensor *input, md_tensor *output,
                              md_error *err)
{
    if (!output)
        return md_fail(err, MD_ERR_ARG, "run: output is NULL");
    memset(output, 0, sizeof *output);
    if (!model || !input || !input->data)
        return md_fail(err, MD_ERR_ARG, "run: no model or empty input tensor");
    return model->backend->run_tensor(model->impl, input, output, err);
}

double md_model_gflop_bf16(const md_model *model, int width, int height)
{
    if (!model || md_model_precision(model) != MD_PRECISION_BF16)
        return 0.0;
    if (model->backend->gflop_bf16)
        return model->backend->gflop_bf16(model->impl, width, height);
    return md_model_gflop(model, width, height);
}

double md_model_gflop(const md_model *model, int width, int height)
{
    if (!model || !model->backend->gflop)
        return 0.0;
    return model->backend->gflop(model->impl, width, height);
}

const char *md_model_describe(const md_model *model)
{
    return model ? model->backend->describe(model->impl) : "";
}

md_status md_model_preprocess(const md_model *model, const md_image *img, md_tensor *out,
                              md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "preprocess: NULL output");
    memset(out, 0, sizeof *out);
    if (!model || !img || !img->pixels || img->width <= 0 || img->height <= 0)
        return md_fail(err, MD_ERR_ARG, "preprocess: no model or empty image");
    if (!model->backend->preprocess)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: no image preprocessing",
                       model->backend->describe(model->impl));
    return model->backend->preprocess(model->impl, img, out, err);
}

md_precision md_model_precision(const md_model *model)
{
    if (!model || !model->backend->precision)
        return MD_PRECISION_FP32;
    return model->backend->precision(model->impl);
}

size_t md_model_features(const md_model *model, uint64_t *signature)
{
    if (signature)
        *signature = 0;
    if (!model || !model->backend->features)
        return 0;
    return model->backend->features(model->impl, signature);
}

void md_model_get_info(const md_model *model, md_model_info *info)
{
    memset(info, 0, sizeof *info);
    info->indoor = -1;
    if (model && model->backend->info)
        model->backend->info(model->impl, info);
}

const char *md_model_file_name(const md_model *model)
{
    return model ? model->file_name : "";
}

void md_model_free(md_model *model)
{
    if (!model)
        return;
    model->backend->destroy(model->impl);
    if (model->owns_pool)
        md_pool_destroy(model->pool);
    free(model);
}

md_status md_default_model_path(char *buf, size_t size, md_error *err)
{
    if (!buf || size == 0)
        return md_fail(err, MD_ERR_ARG, "default model path: no buffer");
    /* an explicitly named model is used or refused, never replaced */
    const char *env = getenv("METRICDEPTH_MODEL");
    if (env && *env) {
        snprintf(buf, size, "%s", env);
        if (access(buf, R_OK) == 0)
            return MD_OK;
        return md_fail(err, MD_ERR_IO, "%s (METRICDEPTH_MODEL): cannot read", buf);
    }
    const char *dir = getenv("METRICDEPTH_MODELS_DIR");
    if (dir && *dir) {
        snprintf(buf, size, "%s/fastdepth_7.onnx", dir);
        if (access(buf, R_OK) == 0)
            return MD_OK;
        return md_fail(err, MD_ERR_IO, "%s (METRICDEPTH_MODELS_DIR): cannot read", buf);
    }
    md_error e = {0};
    if (md_find_data_file("models", "fastdepth_7.onnx", MD_MODELS_DIR, buf, size, &e) == MD_OK)
        return MD_OK;
    return md_fail(err, MD_ERR_IO,
                   "no default model: %s. Run scripts/install-models (fetches FastDepth from "
                   "npm), or pass --model FILE, or set METRICDEPTH_MODEL",
                   e.message);
}
