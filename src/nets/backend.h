/* The seam between md_model (model.c) and its backends. A backend opener
 * parses the file, builds its network and returns its vtable and state.
 *
 * Thread safety: after the opener returns, predict and run_tensor may run on
 * any number of threads at once with the same impl. Backends keep the
 * weights immutable and give every call its own activations (per call, or
 * from a cache of workspaces behind a mutex). */
#ifndef MD_MODELS_BACKEND_H
#define MD_MODELS_BACKEND_H

#include "metricdepth.h"

typedef struct md_model_backend {
    const char *name;
    /* features may be NULL; a backend without features leaves it empty */
    md_status (*predict)(const void *impl, const md_image *img, md_depth *out,
                         md_features *features, md_error *err);
    md_status (*run_tensor)(const void *impl, const md_tensor *in, md_tensor *out, md_error *err);
    const char *(*describe)(const void *impl);
    double (*gflop)(const void *impl, int width, int height); /* may be NULL */
    void (*destroy)(void *impl);
    size_t (*features)(const void *impl, uint64_t *signature); /* may be NULL: none */
    md_precision (*precision)(const void *impl);                /* may be NULL: fp32 */
    /* predict's input to the network, as run_tensor takes it; may be NULL */
    md_status (*preprocess)(const void *impl, const md_image *img, md_tensor *out,
                            md_error *err);
    void (*info)(const void *impl, md_model_info *info); /* may be NULL */
    /* the part of gflop run as bf16 products; may be NULL: all of it at bf16 */
    double (*gflop_bf16)(const void *impl, int width, int height);
} md_model_backend;

/* opts is never NULL; pool is the model's (never NULL: a one-thread pool runs
 * everything inline) and outlives impl. */
typedef md_status (*md_model_opener)(const char *path, const md_model_options *opts,
                                     md_threadpool *pool, const md_model_backend **backend,
                                     void **impl, md_error *err);

/* fp32 or bf16 for a requested precision: auto is bf16 where the CPU
 * multiplies bf16 natively (AVX512_BF16 or AMX-BF16), fp32 elsewhere. */
md_precision md_precision_resolve(md_precision requested);

/* ONNX CNN graphs (FastDepth and the like): onnx_model.c */
md_status md_onnx_model_open(const char *path, const md_model_options *opts, md_threadpool *pool,
                             const md_model_backend **backend, void **impl, md_error *err);
/* Depth Anything V2 from .pth or .safetensors: da2_model.c */
md_status md_da2_model_open(const char *path, const md_model_options *opts, md_threadpool *pool,
                            const md_model_backend **backend, void **impl, md_error *err);

#endif
