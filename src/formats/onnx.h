/* ONNX model files: a strict protobuf wire-format reader for the parts of
 * ModelProto a CNN executor needs. Written from the published onnx.proto field
 * numbers. Knows nothing of what the graph computes. */
#ifndef MD_FORMATS_ONNX_H
#define MD_FORMATS_ONNX_H

#include "metricdepth.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* TensorProto.DataType values we name in messages; only FLOAT, DOUBLE (both
 * stored as float32), INT32 and INT64 (both stored as int64) are loaded. */
enum {
    MD_ONNX_FLOAT = 1,
    MD_ONNX_UINT8 = 2,
    MD_ONNX_INT8 = 3,
    MD_ONNX_INT32 = 6,
    MD_ONNX_INT64 = 7,
    MD_ONNX_STRING = 8,
    MD_ONNX_BOOL = 9,
    MD_ONNX_FLOAT16 = 10,
    MD_ONNX_DOUBLE = 11,
    MD_ONNX_BFLOAT16 = 16
};

/* AttributeProto.AttributeType */
enum {
    MD_ONNX_ATTR_FLOAT = 1,
    MD_ONNX_ATTR_INT = 2,
    MD_ONNX_ATTR_STRING = 3,
    MD_ONNX_ATTR_TENSOR = 4,
    MD_ONNX_ATTR_GRAPH = 5,
    MD_ONNX_ATTR_FLOATS = 6,
    MD_ONNX_ATTR_INTS = 7,
    MD_ONNX_ATTR_STRINGS = 8
};

#define MD_ONNX_MAX_DIMS 8

typedef struct {
    char *name;
    int data_type;   /* as in the file (MD_ONNX_FLOAT, MD_ONNX_INT64, ...) */
    int ndim;
    int64_t dims[MD_ONNX_MAX_DIMS];
    size_t numel;
    float *f32;      /* FLOAT / DOUBLE tensors, numel values (NULL otherwise) */
    int64_t *i64;    /* INT32 / INT64 tensors, numel values (NULL otherwise) */
} md_onnx_tensor;

typedef struct {
    char *name;
    int type;          /* MD_ONNX_ATTR_*, 0 if the file did not say */
    float f;
    int64_t i;
    char *s;           /* NUL-terminated copy of the bytes */
    size_t s_len;
    md_onnx_tensor *t; /* TENSOR attribute, else NULL */
    float *floats;
    size_t n_floats;
    int64_t *ints;
    size_t n_ints;
} md_onnx_attr;

typedef struct {
    char *name;
    char *op_type;
    char *domain;
    char **inputs; /* "" marks an omitted optional input */
    size_t n_inputs;
    char **outputs;
    size_t n_outputs;
    md_onnx_attr *attrs;
    size_t n_attrs;
} md_onnx_node;

typedef struct {
    char *name;
    int elem_type; /* 0 if unknown */
    int ndim;      /* -1 if the file gives no shape */
    int64_t dims[MD_ONNX_MAX_DIMS]; /* -1 for a symbolic or missing dimension */
} md_onnx_value_info;

typedef struct {
    int64_t ir_version;
    int64_t opset; /* version of the default ("" or "ai.onnx") domain, 0 if absent */
    char *producer;
    char *graph_name;
    md_onnx_node *nodes;
    size_t n_nodes;
    md_onnx_tensor *initializers;
    size_t n_initializers;
    md_onnx_value_info *inputs;
    size_t n_inputs;
    md_onnx_value_info *outputs;
    size_t n_outputs;
} md_onnx_model;

/* Parses a serialised ModelProto. path only names the source in messages.
 * Unknown fields are skipped; malformed bytes give MD_ERR_FORMAT; tensor data
 * types, external data and other features we cannot load give
 * MD_ERR_UNSUPPORTED with a message naming them. */
md_status md_onnx_parse(const uint8_t *data, size_t size, const char *path, md_onnx_model *out,
                        md_error *err);
/* Reads and parses a file (at most 2 GiB). */
md_status md_onnx_load(const char *path, md_onnx_model *out, md_error *err);
void md_onnx_free(md_onnx_model *m);

/* Lookups; NULL if absent. */
const md_onnx_attr *md_onnx_node_attr(const md_onnx_node *node, const char *name);
const md_onnx_tensor *md_onnx_find_initializer(const md_onnx_model *m, const char *name);
/* "FLOAT", "INT64", ... or "type N". buf is used for the fallback. */
const char *md_onnx_dtype_name(int data_type, char *buf, size_t size);

/* Wire-format primitives, exposed for unit tests. Each reads at *p (never past
 * end), advances *p and returns false on truncated or malformed input. */
bool md_pb_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out);

#endif
