/* Named weight tensors from checkpoint files: safetensors and PyTorch
 * torch.save zip archives (with a restricted unpickler that only rebuilds
 * tensors and never executes anything). Private to the library. */
#ifndef MD_FORMATS_WEIGHTS_H
#define MD_FORMATS_WEIGHTS_H

#include "metricdepth.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { MD_WDT_F32 = 0, MD_WDT_F16 = 1, MD_WDT_BF16 = 2 } md_wdtype;

#define MD_WEIGHT_MAX_DIMS 8

/* One tensor: elements at data + elem_size * (offset + sum(index[i] * stride[i])).
 * Every element lies inside [data, data + avail_bytes): checked when the tensor
 * is created. */
typedef struct {
    char *name;
    md_wdtype dtype;
    int ndim;
    int64_t shape[MD_WEIGHT_MAX_DIMS];
    int64_t stride[MD_WEIGHT_MAX_DIMS]; /* in elements, all >= 0 */
    int64_t offset;                     /* in elements */
    const uint8_t *data;                /* start of the storage */
    size_t avail_bytes;                 /* bytes readable from data */
} md_weight;

typedef struct {
    md_weight *items;
    size_t count, cap;
    void *map;          /* mmap of the file (NULL when parsed from memory) */
    size_t map_size;
    uint8_t **owned;    /* buffers we allocated (inflated zip entries) */
    size_t n_owned, cap_owned;
    bool sorted;        /* items sorted by name (md_weights_finish) */
} md_weights;

size_t md_wdtype_size(md_wdtype t);
const char *md_wdtype_name(md_wdtype t);

/* Opens a .safetensors or .pth (zip) file by its first bytes; maps it. */
md_status md_weights_open(const char *path, md_weights *w, md_error *err);
/* Parsers over a buffer that must outlive w (path only names errors). */
md_status md_safetensors_parse(const uint8_t *buf, size_t size, const char *path, md_weights *w,
                               md_error *err);
md_status md_pth_parse(const uint8_t *buf, size_t size, const char *path, md_weights *w,
                       md_error *err);
void md_weights_free(md_weights *w);

const md_weight *md_weights_find(const md_weights *w, const char *name);
int64_t md_weight_numel(const md_weight *t);
/* Converts (honouring strides) to contiguous float32 in dst (numel floats). */
void md_weight_to_f32(const md_weight *t, float *dst);

/* Internal: appends a tensor (takes a copy of name); validates the extent. */
md_status md_weights_add(md_weights *w, const char *name, size_t name_len, const md_weight *t,
                         const char *path, md_error *err);
md_status md_weights_own(md_weights *w, uint8_t *buf, const char *path, md_error *err);
/* Internal: sorts by name (for binary-search lookups) and rejects duplicates. */
md_status md_weights_finish(md_weights *w, const char *path, md_error *err);

/* The safetensors header's "__metadata__" string map, in file order (none:
 * count 0). Free with md_safetensors_metadata_free. */
typedef struct {
    char *key, *value;
} md_meta_entry;
md_status md_safetensors_metadata(const uint8_t *buf, size_t size, const char *path,
                                  md_meta_entry **items, size_t *count, md_error *err);
void md_safetensors_metadata_free(md_meta_entry *items, size_t count);

/* A tensor to write: F32 data converted to dtype (F32, F16 or BF16; half
 * precision rounds to nearest, ties to even). */
typedef struct {
    const char *name;
    md_wdtype dtype;
    int ndim;
    int64_t shape[MD_WEIGHT_MAX_DIMS];
    const float *data;
} md_tensor_out;

/* Writes a .safetensors file atomically: the tensors in the given order and
 * the metadata string map. Names must be unique. */
md_status md_safetensors_write(const char *path, const md_tensor_out *tensors, size_t n,
                               const md_meta_entry *meta, size_t n_meta, md_error *err);
/* float -> IEEE half, round to nearest even (overflow to infinity). */
uint16_t md_f32_to_f16(float x);
/* IEEE half -> float (exact). */
float md_f16_to_f32(uint16_t h);

/* ------------------------------------------------------------------ zip */

typedef struct {
    char *name;
    uint64_t local_offset; /* local header offset */
    uint64_t comp_size, size;
    int method;            /* 0 stored, 8 deflate */
} md_zip_entry;

typedef struct {
    const uint8_t *buf;
    size_t size;
    md_zip_entry *entries;
    size_t count;
} md_zip;

md_status md_zip_open(const uint8_t *buf, size_t size, const char *path, md_zip *z, md_error *err);
const md_zip_entry *md_zip_find(const md_zip *z, const char *name);
/* Stored entries: *data points into the buffer and *owned is NULL. Deflated
 * entries are inflated into *owned (= *data), which the caller frees. */
md_status md_zip_read(const md_zip *z, const md_zip_entry *e, const char *path,
                      const uint8_t **data, uint8_t **owned, size_t *size, md_error *err);
void md_zip_close(md_zip *z);

/* --------------------------------------------------------------- pickle */

/* Storage loader callback: given the persistent key ("0", "1", ...) returns
 * the storage bytes. */
typedef md_status (*md_pickle_storage_fn)(void *ctx, const char *key, const uint8_t **data,
                                          size_t *size, md_error *err);

/* Runs the restricted unpickler over a torch state dict and appends every
 * tensor to w. */
md_status md_pickle_load_state_dict(const uint8_t *pkl, size_t size, const char *path,
                                    md_pickle_storage_fn storage, void *ctx, md_weights *w,
                                    md_error *err);

#endif
