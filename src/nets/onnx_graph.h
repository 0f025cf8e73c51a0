/* A static-shape executor for ONNX CNN graphs (batch 1, float32): shapes are
 * inferred once at build time, BatchNormalization and a following Relu/Clip
 * are folded into the preceding Conv, and activations live in a few buffers
 * reused by liveness. Supported operators: Conv, BatchNormalization, Relu,
 * Clip, Sigmoid, Add, Sub, Mul, Div, Concat, MaxPool, AveragePool,
 * GlobalAveragePool, GlobalMaxPool, Upsample, Resize, Gemm, MatMul, Flatten,
 * Reshape, Transpose, Identity, Dropout (inference), Constant. */
#ifndef MD_MODELS_ONNX_GRAPH_H
#define MD_MODELS_ONNX_GRAPH_H

#include "formats/onnx.h"
#include "ops/gemm.h"

typedef struct md_onnx_graph md_onnx_graph;

typedef struct {
    int n_conv;
    size_t n_params;      /* values in all initializers */
    double flop;          /* 2 x multiply-adds of Conv, Gemm and MatMul */
    double flop_bf16;     /* the part of flop whose products run in bf16 (see conv_type) */
    int64_t opset;
    int in_ndim, out_ndim;
    int64_t in_dims[MD_ONNX_MAX_DIMS], out_dims[MD_ONNX_MAX_DIMS];
    size_t in_numel, out_numel;
    size_t arena_bytes;   /* activation buffers + scratch */
} md_onnx_graph_info;

/* Builds the executor from a parsed model (which may be freed afterwards).
 * max_arena_bytes caps the activation memory (0 = 4 GiB). conv_type is the
 * arithmetic of the convolutions' products (MD_GEMM_BF16: weights rounded to
 * bf16 once, activations as they are read, sums in float32; depthwise
 * convolutions and everything else stay float32). path names the model in
 * messages. */
md_status md_onnx_graph_build(const md_onnx_model *m, const char *path, size_t max_arena_bytes,
                              md_gemm_type conv_type, md_onnx_graph **out, md_error *err);
const md_onnx_graph_info *md_onnx_graph_get_info(const md_onnx_graph *g);
void md_onnx_graph_free(md_onnx_graph *g);

/* The graph holds only what never changes after the build (weights packed,
 * shapes, the buffer plan), so any number of threads may run it at once, each
 * with its own workspace: the activation buffers and kernel scratch of one
 * run, for pools of up to `workers` threads (a bigger pool runs single-
 * threaded). NULL when out of memory. */
typedef struct md_onnx_ws md_onnx_ws;
md_onnx_ws *md_onnx_ws_create(const md_onnx_graph *g, int workers);
int md_onnx_ws_workers(const md_onnx_ws *ws);
void md_onnx_ws_free(md_onnx_ws *ws);

/* Runs on in (in_numel floats, C order) with ws, parallel over pool (may be
 * NULL); returns the first graph output (out_numel floats) inside ws, valid
 * until ws is used again or freed. features (may be NULL) receives the
 * per-channel means of the encoder's op outputs (md_onnx_graph_features of
 * them). */
const float *md_onnx_graph_run(const md_onnx_graph *g, md_onnx_ws *ws, md_threadpool *pool,
                               const float *in, float *features);
/* Length of the feature vector (0 when the graph has no encoder) and its
 * signature (tap count and channel counts hashed: equal for the same
 * architecture, different otherwise). */
size_t md_onnx_graph_features(const md_onnx_graph *g, uint64_t *signature);

#endif
