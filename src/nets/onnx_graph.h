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

typedef struct md_onnx_graph md_onnx_graph;

typedef struct {
    int n_conv;
    size_t n_params;      /* values in all initializers */
    double flop;          /* 2 x multiply-adds of Conv, Gemm and MatMul */
    int64_t opset;
    int in_ndim, out_ndim;
    int64_t in_dims[MD_ONNX_MAX_DIMS], out_dims[MD_ONNX_MAX_DIMS];
    size_t in_numel, out_numel;
    size_t arena_bytes;   /* activation buffers + scratch */
} md_onnx_graph_info;

/* Builds the executor from a parsed model (which may be freed afterwards).
 * max_arena_bytes caps the activation memory (0 = 4 GiB). path names the
 * model in messages. */
md_status md_onnx_graph_build(const md_onnx_model *m, const char *path, size_t max_arena_bytes,
                              md_onnx_graph **out, md_error *err);
const md_onnx_graph_info *md_onnx_graph_get_info(const md_onnx_graph *g);
/* Runs on in (in_numel floats, C order); returns the first graph output
 * (out_numel floats), valid until the next run or free. One run at a time
 * per graph: activations live in the graph. */
const float *md_onnx_graph_run(md_onnx_graph *g, const float *in);
void md_onnx_graph_free(md_onnx_graph *g);
/* Threads for the convolution, GEMM and resize kernels (the caller counts as
 * one; 1 = none started). Keeps its own persistent team. */
void md_onnx_graph_set_threads(md_onnx_graph *g, int threads);

/* As run; features (may be NULL) receives the per-channel means of the
 * encoder's op outputs (md_onnx_graph_features of them), op_seconds (may be
 * NULL) each op's seconds added. */
const float *md_onnx_graph_run_ex(md_onnx_graph *g, const float *in, float *features,
                                  double *op_seconds);
/* Length of the feature vector (0 when the graph has no encoder) and its
 * signature (tap count and channel counts hashed: equal for the same
 * architecture, different otherwise). */
size_t md_onnx_graph_features(const md_onnx_graph *g, uint64_t *signature);

/* Profiling: as run, adding each op's seconds to op_seconds[i] (may be NULL). */
const float *md_onnx_graph_run_timed(md_onnx_graph *g, const float *in, double *op_seconds);
int md_onnx_graph_op_count(const md_onnx_graph *g);
/* "Conv 3x3 g16 s1 16x112x112 -> 16x112x112" */
void md_onnx_graph_op_describe(const md_onnx_graph *g, int i, char *buf, size_t size);

#endif
