/* Depth Anything V2 checkpoints as users download them: the Hugging Face
 * transformers layout (DepthAnythingForDepthEstimation, the
 * `Depth-Anything-V2-*-hf` repositories: model.safetensors + config.json) is
 * renamed to the official state-dict names the loader reads, and the head kind
 * (metric or relative) is worked out from config.json and the official file
 * names.
 *
 * transformers' names, and the official ones they stand for:
 *   backbone.embeddings.{cls_token,mask_token}       pretrained.{cls_token,mask_token}
 *   backbone.embeddings.position_embeddings          pretrained.pos_embed
 *   backbone.embeddings.patch_embeddings.projection  pretrained.patch_embed.proj
 *   backbone.encoder.layer.N.                        pretrained.blocks.N.
 *     attention.attention.{query,key,value}            attn.qkv (the three stacked: q, k, v)
 *     attention.output.dense                           attn.proj
 *     layer_scale{1,2}.lambda1                         ls{1,2}.gamma
 *     norm1, norm2, mlp.fc1, mlp.fc2                   the same
 *   backbone.layernorm                               pretrained.norm
 *   neck.reassemble_stage.layers.N.projection        depth_head.projects.N
 *   neck.reassemble_stage.layers.N.resize            depth_head.resize_layers.N
 *   neck.convs.N                                     depth_head.scratch.layer{N+1}_rn
 *   neck.fusion_stage.layers.N.                      depth_head.scratch.refinenet{4-N}.
 *     residual_layerU.convolutionC                     resConfUnitU.convC
 *     projection                                       out_conv
 *   head.conv1, head.conv2, head.conv3               depth_head.scratch.output_conv1,
 *                                                    output_conv2.0, output_conv2.2 */
#include "nets/da2_names.h"

#include "base/base.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 256

int md_da2_is_hf_layout(const md_weights *w)
{
    return md_weights_find(w, "backbone.embeddings.cls_token") != NULL;
}

/* "backbone.encoder.layer.N.rest" -> N and rest; 0 if no match. */
static int split_index(const char *name, const char *prefix, int *n, const char **rest)
{
    size_t len = strlen(prefix);
    if (strncmp(name, prefix, len) != 0)
        return 0;
    const char *p = name + len;
    if (*p < '0' || *p > '9')
        return 0;
    int v = 0;
    while (*p >= '0' && *p <= '9' && v < 100000)
        v = v * 10 + (*p++ - '0');
    if (*p != '.')
        return 0;
    *n = v;
    *rest = p + 1;
    return 1;
}

/* "weight" / "bias" suffixes after a module name. */
static int param_of(const char *rest, const char *module, const char **param)
{
    size_t len = strlen(module);
    if (strncmp(rest, module, len) != 0 || rest[len] != '.')
        return 0;
    *param = rest + len + 1;
    return strcmp(*param, "weight") == 0 || strcmp(*param, "bias") == 0;
}

/* Official name for a transformers name; 0 when unknown. q/k/v are reported
 * through *qkv (0, 1, 2) with *layer and *param, and get no name. */
static int official_name(const char *hf, char *out, size_t size, int *qkv, int *layer,
                         const char **param_out)
{
    int n;
    const char *rest, *param;
    *qkv = -1;
    static const struct {
        const char *hf, *official;
    } fixed[] = {
        {"backbone.embeddings.cls_token", "pretrained.cls_token"},
        {"backbone.embeddings.mask_token", "pretrained.mask_token"},
        {"backbone.embeddings.position_embeddings", "pretrained.pos_embed"},
        {"backbone.embeddings.patch_embeddings.projection.weight", "pretrained.patch_embed.proj.weight"},
        {"backbone.embeddings.patch_embeddings.projection.bias", "pretrained.patch_embed.proj.bias"},
        {"backbone.layernorm.weight", "pretrained.norm.weight"},
        {"backbone.layernorm.bias", "pretrained.norm.bias"},
        {"head.conv1.weight", "depth_head.scratch.output_conv1.weight"},
        {"head.conv1.bias", "depth_head.scratch.output_conv1.bias"},
        {"head.conv2.weight", "depth_head.scratch.output_conv2.0.weight"},
        {"head.conv2.bias", "depth_head.scratch.output_conv2.0.bias"},
        {"head.conv3.weight", "depth_head.scratch.output_conv2.2.weight"},
        {"head.conv3.bias", "depth_head.scratch.output_conv2.2.bias"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (strcmp(hf, fixed[i].hf) == 0)
            return snprintf(out, size, "%s", fixed[i].official) > 0;
    if (split_index(hf, "backbone.encoder.layer.", &n, &rest)) {
        static const char *const qkv_names[3] = {"attention.attention.query",
                                                 "attention.attention.key",
                                                 "attention.attention.value"};
        for (int k = 0; k < 3; k++)
            if (param_of(rest, qkv_names[k], &param)) {
                *qkv = k;
                *layer = n;
                *param_out = param;
                return 1;
            }
        static const struct {
            const char *hf, *official;
        } blk[] = {{"attention.output.dense", "attn.proj"}, {"norm1", "norm1"}, {"norm2", "norm2"},
                   {"mlp.fc1", "mlp.fc1"},                  {"mlp.fc2", "mlp.fc2"}};
        for (size_t i = 0; i < sizeof blk / sizeof *blk; i++)
            if (param_of(rest, blk[i].hf, &param))
                return snprintf(out, size, "pretrained.blocks.%d.%s.%s", n, blk[i].official,
                                param) > 0;
        if (strcmp(rest, "layer_scale1.lambda1") == 0 || strcmp(rest, "layer_scale2.lambda1") == 0)
            return snprintf(out, size, "pretrained.blocks.%d.ls%c.gamma", n, rest[11]) > 0;
        return 0;
    }
    if (split_index(hf, "neck.reassemble_stage.layers.", &n, &rest)) {
        if (param_of(rest, "projection", &param))
            return snprintf(out, size, "depth_head.projects.%d.%s", n, param) > 0;
        if (param_of(rest, "resize", &param))
            return snprintf(out, size, "depth_head.resize_layers.%d.%s", n, param) > 0;
        return 0;
    }
    if (split_index(hf, "neck.convs.", &n, &rest) && strcmp(rest, "weight") == 0)
        return snprintf(out, size, "depth_head.scratch.layer%d_rn.weight", n + 1) > 0;
    if (split_index(hf, "neck.fusion_stage.layers.", &n, &rest) && n >= 0 && n < 4) {
        int k = 4 - n;
        if (param_of(rest, "projection", &param))
            return snprintf(out, size, "depth_head.scratch.refinenet%d.out_conv.%s", k, param) > 0;
        for (int u = 1; u <= 2; u++)
            for (int c = 1; c <= 2; c++) {
                char mod[64];
                snprintf(mod, sizeof mod, "residual_layer%d.convolution%d", u, c);
                if (param_of(rest, mod, &param))
                    return snprintf(out, size,
                                    "depth_head.scratch.refinenet%d.resConfUnit%d.conv%d.%s", k,
                                    u, c, param) > 0;
            }
        return 0;
    }
    return 0;
}

typedef struct {
    const md_weight *part[3][2]; /* [q, k, v][weight, bias] */
} qkv_slot;

/* Stacks q, k, v ([C, C] weights or [C] biases) into one float32 tensor [3C, C] / [3C]. */
static md_status fuse(md_weights *dst, const md_weight *const part[3], int layer,
                      const char *param, const char *path, md_error *err)
{
    const md_weight *q = part[0];
    for (int k = 0; k < 3; k++) {
        const md_weight *t = part[k];
        if (!t)
            return md_fail(err, MD_ERR_FORMAT,
                           "%s: layer %d has no attention.attention.%s.%s (query, key and value "
                           "come together)",
                           path, layer, k == 0 ? "query" : k == 1 ? "key" : "value", param);
        int same = t->ndim == q->ndim;
        for (int d = 0; same && d < t->ndim; d++)
            same = t->shape[d] == q->shape[d];
        if (!same || t->ndim < 1 || t->ndim > 2)
            return md_fail(err, MD_ERR_FORMAT,
                           "%s: layer %d's query, key and value %s have different or bad shapes",
                           path, layer, param);
    }
    int64_t numel = md_weight_numel(q);
    if (numel <= 0 || numel > ((int64_t)1 << 28))
        return md_fail(err, MD_ERR_FORMAT, "%s: layer %d's query %s has %lld elements", path,
                       layer, param, (long long)numel);
    size_t n = (size_t)numel, bytes = 3 * n * sizeof(float);
    float *buf = md_malloc(bytes, "fused qkv", err);
    if (!buf)
        return MD_ERR_NOMEM;
    for (int k = 0; k < 3; k++)
        md_weight_to_f32(part[k], buf + (size_t)k * n);
    md_status st = md_weights_own(dst, (uint8_t *)buf, path, err);
    if (st != MD_OK) {
        free(buf);
        return st;
    }
    md_weight t;
    memset(&t, 0, sizeof t);
    t.dtype = MD_WDT_F32;
    t.ndim = q->ndim;
    t.shape[0] = 3 * q->shape[0];
    if (q->ndim == 2)
        t.shape[1] = q->shape[1];
    t.stride[t.ndim - 1] = 1;
    if (t.ndim == 2)
        t.stride[0] = t.shape[1];
    t.data = (const uint8_t *)buf;
    t.avail_bytes = bytes;
    char name[128];
    snprintf(name, sizeof name, "pretrained.blocks.%d.attn.qkv.%s", layer, param);
    return md_weights_add(dst, name, strlen(name), &t, path, err);
}

md_status md_da2_hf_rename(const md_weights *src, const char *path, md_weights *dst,
                           md_error *err)
{
    memset(dst, 0, sizeof *dst);
    qkv_slot *slots = md_calloc(MAX_LAYERS, sizeof *slots, "qkv", err);
    if (!slots)
        return MD_ERR_NOMEM;
    md_status st = MD_OK;
    for (size_t i = 0; i < src->count && st == MD_OK; i++) {
        const md_weight *t = &src->items[i];
        char name[256];
        int qkv, layer = 0;
        const char *param = NULL;
        if (!official_name(t->name, name, sizeof name, &qkv, &layer, &param)) {
            st = md_fail(err, MD_ERR_FORMAT,
                         "%s: tensor '%s' is not part of transformers' "
                         "DepthAnythingForDepthEstimation (a SwiGLU or DINOv2 variant we do not "
                         "support?)",
                         path, t->name);
        } else if (qkv >= 0) {
            if (layer >= MAX_LAYERS)
                st = md_fail(err, MD_ERR_UNSUPPORTED, "%s: tensor '%s': more than %d layers", path,
                             t->name, MAX_LAYERS);
            else
                slots[layer].part[qkv][strcmp(param, "bias") == 0] = t;
        } else {
            st = md_weights_add(dst, name, strlen(name), t, path, err);
        }
    }
    for (int l = 0; l < MAX_LAYERS && st == MD_OK; l++)
        for (int p = 0; p < 2 && st == MD_OK; p++) {
            const md_weight *parts[3] = {slots[l].part[0][p], slots[l].part[1][p],
                                         slots[l].part[2][p]};
            if (parts[0] || parts[1] || parts[2])
                st = fuse(dst, parts, l, p ? "bias" : "weight", path, err);
        }
    free(slots);
    if (st == MD_OK)
        st = md_weights_finish(dst, path, err);
    if (st != MD_OK)
        md_weights_free(dst);
    return st;
}

/* ---------------------------------------------------------------- config */

md_status md_da2_read_hf_config(const char *model_path, md_da2_hf_config *cfg, md_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->relative = -1;
    const char *slash = strrchr(model_path, '/');
    size_t dir_len = slash ? (size_t)(slash - model_path + 1) : 0;
    snprintf(cfg->path, sizeof cfg->path, "%.*sconfig.json", (int)dir_len, model_path);
    uint8_t *data;
    size_t size;
    md_error ignored;
    if (md_read_file(cfg->path, 1 << 20, &data, &size, &ignored) != MD_OK)
        return MD_OK; /* no config: nothing learned */
    cJSON *root = cJSON_ParseWithLength((const char *)data, size);
    free(data);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return md_fail(err, MD_ERR_FORMAT, "%s: not a JSON object", cfg->path);
    }
    cfg->found = 1;
    md_status st = MD_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "depth_estimation_type");
    if (cJSON_IsString(type)) {
        if (strcmp(type->valuestring, "metric") == 0)
            cfg->relative = 0;
        else if (strcmp(type->valuestring, "relative") == 0)
            cfg->relative = 1;
        else
            st = md_fail(err, MD_ERR_FORMAT,
                         "%s: depth_estimation_type '%.40s' (want metric or relative)", cfg->path,
                         type->valuestring);
    } else if (type && !cJSON_IsNull(type)) {
        st = md_fail(err, MD_ERR_FORMAT, "%s: depth_estimation_type is not a string", cfg->path);
    } else {
        cfg->relative = 1; /* transformers' default */
    }
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "max_depth");
    if (st == MD_OK && md) {
        if (!cJSON_IsNumber(md) || !(md->valuedouble > 0) || md->valuedouble > 1e6)
            st = md_fail(err, MD_ERR_FORMAT, "%s: max_depth must be a positive number", cfg->path);
        else
            cfg->max_depth = md->valuedouble;
    }
    const cJSON *bb = cJSON_GetObjectItemCaseSensitive(root, "backbone_config");
    const cJSON *oi = bb ? cJSON_GetObjectItemCaseSensitive(bb, "out_indices") : NULL;
    if (st == MD_OK && oi) {
        if (!cJSON_IsArray(oi) || cJSON_GetArraySize(oi) != 4) {
            st = md_fail(err, MD_ERR_FORMAT, "%s: backbone_config.out_indices must list 4 layers",
                         cfg->path);
        } else {
            for (int i = 0; i < 4 && st == MD_OK; i++) {
                const cJSON *v = cJSON_GetArrayItem(oi, i);
                if (!cJSON_IsNumber(v) || v->valueint < 1 || v->valueint > 256)
                    st = md_fail(err, MD_ERR_FORMAT,
                                 "%s: backbone_config.out_indices[%d] is not a layer number",
                                 cfg->path, i);
                else
                    cfg->out_indices[i] = v->valueint;
            }
            cfg->has_out_indices = st == MD_OK;
        }
    }
    cJSON_Delete(root);
    return st;
}

int md_da2_head_from_name(const char *path, double *max_depth)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    *max_depth = 0;
    /* official metric checkpoints: depth_anything_v2_metric_{hypersim,vkitti}_vit?.pth */
    if (strstr(base, "metric")) {
        *max_depth = strstr(base, "vkitti") || strstr(base, "outdoor") || strstr(base, "Outdoor")
                         ? 80.0
                         : strstr(base, "hypersim") || strstr(base, "indoor") ||
                                   strstr(base, "Indoor")
                               ? 20.0
                               : 0.0;
        return 0;
    }
    /* official relative checkpoints: depth_anything_v2_vit{s,b,l,g}.{pth,safetensors} */
    static const char *const rel[] = {"depth_anything_v2_vits.", "depth_anything_v2_vitb.",
                                      "depth_anything_v2_vitl.", "depth_anything_v2_vitg."};
    for (size_t i = 0; i < sizeof rel / sizeof *rel; i++)
        if (strncmp(base, rel[i], strlen(rel[i])) == 0)
            return 1;
    return -1;
}
