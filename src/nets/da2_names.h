/* Depth Anything V2 checkpoints as published: transformers' layout renamed to
 * the official names, config.json, and the head kind from file names. */
#ifndef MD_NETS_DA2_NAMES_H
#define MD_NETS_DA2_NAMES_H

#include "formats/weights.h"

/* 1 when the tensors use transformers' names (backbone.embeddings.cls_token). */
int md_da2_is_hf_layout(const md_weights *w);
/* A new set of weights with the official names (q, k and v stacked into qkv,
 * as float32); the others point into src's storage, which must outlive dst. */
md_status md_da2_hf_rename(const md_weights *src, const char *path, md_weights *dst,
                           md_error *err);

typedef struct {
    int found;              /* config.json was read */
    int relative;           /* 1 relative, 0 metric, -1 not said */
    double max_depth;       /* 0 when absent */
    int has_out_indices;
    int out_indices[4];     /* backbone_config.out_indices, counted from 1 */
    char path[4096];
} md_da2_hf_config;

/* Reads config.json beside the model file, if there is one (cfg->found). */
md_status md_da2_read_hf_config(const char *model_path, md_da2_hf_config *cfg, md_error *err);
/* The head kind the official file names say: 1 relative
 * (depth_anything_v2_vits.pth), 0 metric (*metric*; *max_depth 20 for
 * hypersim/indoor, 80 for vkitti/outdoor, else 0), -1 unknown. */
int md_da2_head_from_name(const char *path, double *max_depth);

#endif
