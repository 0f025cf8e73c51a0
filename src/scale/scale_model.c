/* md_scale_model: one handle over the scale predictors (the encoder ridge
 * ensemble, the RGB-only CNNs), their training, estimates, files and names. */
#include "base/base.h"
#include "formats/weights.h"
#include "scale/predictor.h"
#include "scale/scale_cnn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENCODER_FORMAT "metricdepth-scale-encoder"

struct md_scale_model {
    md_scale_arch arch;
    md_cnn_model *cnn; /* paper, compact */
    md_enc_model *enc; /* encoder */
    char base_model[256], list_hash[64];
    char desc[320];
};

int md_scale_arch_parse(const char *name)
{
    if (!name)
        return -1;
    if (strcmp(name, "paper") == 0)
        return MD_SCALE_ARCH_PAPER;
    if (strcmp(name, "compact") == 0)
        return MD_SCALE_ARCH_COMPACT;
    if (strcmp(name, "encoder") == 0)
        return MD_SCALE_ARCH_ENCODER;
    return -1;
}

const char *md_scale_arch_name(md_scale_arch arch)
{
    switch (arch) {
    case MD_SCALE_ARCH_PAPER: return "paper";
    case MD_SCALE_ARCH_COMPACT: return "compact";
    case MD_SCALE_ARCH_ENCODER: return "encoder";
    }
    return "unknown";
}

md_train_options md_train_defaults(void)
{
    md_train_options o;
    memset(&o, 0, sizeof o);
    o.arch = MD_SCALE_ARCH_ENCODER;
    o.alpha = 0;
    o.members = MD_ENC_MEMBERS;
    o.input_size = 224;
    o.epochs = 30;
    o.batch_size = 30;
    o.lr = 1e-3;
    o.beta1 = 0.9;
    o.beta2 = 0.999;
    o.eps = 1e-8;
    o.step_size = 10;
    o.gamma = 0.5;
    o.val_fraction = 0.2;
    o.val_every = 5;
    o.seed = 0;
    o.threads = 0;
    return o;
}

void md_train_log_free(md_train_log *log)
{
    if (!log)
        return;
    free(log->train_loss);
    free(log->val_loss);
    free(log->summary);
    memset(log, 0, sizeof *log);
}

void md_scale_model_free(md_scale_model *m)
{
    if (!m)
        return;
    md_cnn_model_free(m->cnn);
    md_enc_free(m->enc);
    free(m);
}

md_scale_arch md_scale_model_arch(const md_scale_model *m)
{
    return m ? m->arch : MD_SCALE_ARCH_ENCODER;
}

const char *md_scale_model_describe(const md_scale_model *m)
{
    if (!m)
        return "";
    return m->cnn ? md_cnn_model_describe(m->cnn) : m->desc;
}

const char *md_scale_model_base(const md_scale_model *m)
{
    if (!m)
        return "";
    return m->cnn ? md_cnn_model_base(m->cnn) : m->base_model;
}

static void encoder_desc(md_scale_model *m)
{
    snprintf(m->desc, sizeof m->desc,
             "encoder scale model, %zu features, %zu training images%s%.200s", md_enc_features(m->enc, NULL),
             md_enc_train_count(m->enc), m->base_model[0] ? ", trained for " : "", m->base_model);
}

/* ------------------------------------------------------------ training */

md_status md_scale_model_train(const md_image *images, const double *log_scales, size_t n,
                               const md_train_options *opts, md_scale_model **out,
                               md_train_log *log, md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "scale model training: NULL argument");
    *out = NULL;
    md_train_options o = opts ? *opts : md_train_defaults();
    if (o.arch != MD_SCALE_ARCH_PAPER && o.arch != MD_SCALE_ARCH_COMPACT)
        return md_fail(err, MD_ERR_ARG,
                       "scale model training from images alone: the %s architecture needs the "
                       "base network's features (md_scale_model_fit)",
                       md_scale_arch_name(o.arch));
    md_scale_model *m = md_calloc(1, sizeof *m, "scale model", err);
    if (!m)
        return MD_ERR_NOMEM;
    m->arch = o.arch;
    md_status st = md_cnn_model_train(images, log_scales, n, &o, &m->cnn, log, err);
    if (st != MD_OK) {
        free(m);
        return st;
    }
    *out = m;
    return MD_OK;
}

/* Group ids from names; groups under MD_ENC_MIN_GROUP images share one id
 * (misc). Returns the number of groups. */
static int assign_groups(const md_scale_sample *s, size_t n, int *gid, int *misc, md_error *err)
{
    *misc = -1;
    size_t *first = md_malloc(sizeof(size_t) * n, "groups", err);
    int *count = md_calloc(n, sizeof(int), "groups", err);
    int *remap = md_malloc(sizeof(int) * n, "groups", err);
    if (!first || !count || !remap) {
        free(first);
        free(count);
        free(remap);
        return -1;
    }
    int g = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = s[i].group ? s[i].group : "";
        int found = -1;
        for (int k = 0; k < g && found < 0; k++) {
            const char *other = s[first[k]].group ? s[first[k]].group : "";
            if (strcmp(other, name) == 0)
                found = k;
        }
        if (found < 0) {
            first[g] = i;
            found = g++;
        }
        gid[i] = found;
        count[found]++;
    }
    int out = 0;
    for (int k = 0; k < g; k++) {
        if (count[k] >= MD_ENC_MIN_GROUP) {
            remap[k] = out++;
        } else {
            if (*misc < 0)
                *misc = out++;
            remap[k] = *misc;
        }
    }
    for (size_t i = 0; i < n; i++)
        gid[i] = remap[gid[i]];
    free(first);
    free(count);
    free(remap);
    return out;
}

md_status md_scale_model_fit(const md_scale_sample *samples, size_t n,
                             const md_train_options *opts, md_scale_model **out,
                             md_train_log *log, md_error *err)
{
    if (!out)
        return md_fail(err, MD_ERR_ARG, "scale model training: NULL argument");
    *out = NULL;
    if (log)
        memset(log, 0, sizeof *log);
    if (!samples || n == 0)
        return md_fail(err, MD_ERR_DATA, "scale model training: no samples");
    md_train_options o = opts ? *opts : md_train_defaults();
    if (o.arch != MD_SCALE_ARCH_ENCODER) {
        const md_image *imgs = md_malloc(sizeof(md_image) * n, "training images", err);
        double *ls = md_malloc(sizeof(double) * n, "training targets", err);
        md_status st = imgs && ls ? MD_OK : MD_ERR_NOMEM;
        for (size_t i = 0; st == MD_OK && i < n; i++) {
            if (!samples[i].image) {
                st = md_fail(err, MD_ERR_ARG, "scale CNN training: sample %zu has no image", i);
                break;
            }
            ((md_image *)imgs)[i] = *samples[i].image;
            ls[i] = samples[i].log_scale;
        }
        if (st == MD_OK)
            st = md_scale_model_train(imgs, ls, n, &o, out, log, err);
        free((void *)imgs);
        free(ls);
        return st;
    }
    const md_features *f0 = samples[0].features;
    if (!f0 || f0->n == 0 || !f0->values)
        return md_fail(err, MD_ERR_DATA,
                       "encoder scale model: sample 0 has no base-network features (the base "
                       "network must provide them: an ONNX CNN such as FastDepth)");
    for (size_t i = 1; i < n; i++) {
        const md_features *f = samples[i].features;
        if (!f || f->n != f0->n || f->signature != f0->signature || !f->values)
            return md_fail(err, MD_ERR_DATA,
                           "encoder scale model: sample %zu has features of another shape or "
                           "network than sample 0",
                           i);
    }
    md_enc_sample *es = md_malloc(sizeof *es * n, "training samples", err);
    int *gid = md_malloc(sizeof(int) * n, "groups", err);
    md_scale_model *m = md_calloc(1, sizeof *m, "scale model", err);
    md_status st = es && gid && m ? MD_OK : MD_ERR_NOMEM;
    md_enc_options eo = {0};
    int groups = st == MD_OK ? assign_groups(samples, n, gid, &eo.misc_group, err) : -1;
    if (st == MD_OK && groups < 0)
        st = MD_ERR_NOMEM;
    if (st == MD_OK) {
        for (size_t i = 0; i < n; i++) {
            es[i].features = samples[i].features->values;
            es[i].log_scale = samples[i].log_scale;
            es[i].group = gid[i];
            es[i].curve = samples[i].curve;
        }
        eo.alpha = o.alpha;
        eo.members = o.members;
        eo.seed = o.seed;
        eo.signature = f0->signature;
        eo.n_groups = groups;
        char *summary = NULL;
        st = md_enc_train(es, n, f0->n, &eo, &m->enc, log ? &summary : NULL, err);
        if (log) {
            log->summary = summary;
            log->n_train = n;
        }
    }
    free(es);
    free(gid);
    if (st != MD_OK) {
        md_scale_model_free(m);
        return st;
    }
    m->arch = MD_SCALE_ARCH_ENCODER;
    snprintf(m->base_model, sizeof m->base_model, "%s", o.base_model ? o.base_model : "");
    snprintf(m->list_hash, sizeof m->list_hash, "%s", o.list_hash ? o.list_hash : "");
    encoder_desc(m);
    *out = m;
    return MD_OK;
}

/* ------------------------------------------------------------ estimates */

md_status md_scale_model_estimate(const md_scale_model *m, const md_image *img,
                                  const md_features *features, md_scale_estimate *out,
                                  md_error *err)
{
    if (!m || !out)
        return md_fail(err, MD_ERR_ARG, "scale model estimate: NULL argument");
    if (m->cnn)
        return md_cnn_model_estimate(m->cnn, img, NULL, out, err);
    return md_enc_estimate(m->enc, features, out, err);
}

md_status md_scale_model_predict(const md_scale_model *m, const md_image *img,
                                 const md_features *features, double *log_scale, md_error *err)
{
    if (!log_scale)
        return md_fail(err, MD_ERR_ARG, "scale model predict: NULL argument");
    md_scale_estimate e;
    md_status st = md_scale_model_estimate(m, img, features, &e, err);
    if (st == MD_OK)
        *log_scale = e.log_scale;
    return st;
}

/* ------------------------------------------------------------ files */

md_status md_scale_model_save(const md_scale_model *m, const char *path, md_error *err)
{
    if (!m || !path)
        return md_fail(err, MD_ERR_ARG, "scale model save: NULL argument");
    if (m->cnn)
        return md_cnn_model_save(m->cnn, path, err);
    md_tensor_out t[MD_ENC_TENSORS];
    char values[MD_ENC_META][64];
    md_meta_entry meta[MD_ENC_META + 5];
    md_enc_tensors(m->enc, t, values, meta);
    char n_train[32];
    snprintf(n_train, sizeof n_train, "%zu", md_enc_train_count(m->enc));
    meta[MD_ENC_META] = (md_meta_entry){"format", ENCODER_FORMAT};
    meta[MD_ENC_META + 1] = (md_meta_entry){"arch", "encoder"};
    meta[MD_ENC_META + 2] = (md_meta_entry){"base_model", (char *)m->base_model};
    meta[MD_ENC_META + 3] = (md_meta_entry){"list_hash", (char *)m->list_hash};
    meta[MD_ENC_META + 4] = (md_meta_entry){"n_train", n_train};
    return md_safetensors_write(path, t, MD_ENC_TENSORS, meta, MD_ENC_META + 5, err);
}

static const char *meta_get(const md_meta_entry *items, size_t count, const char *key)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(items[i].key, key) == 0)
            return items[i].value;
    return NULL;
}

md_status md_scale_model_load(const char *path, md_scale_model **out, md_error *err)
{
    if (!path || !out)
        return md_fail(err, MD_ERR_ARG, "scale model load: NULL argument");
    *out = NULL;
    md_weights w;
    memset(&w, 0, sizeof w);
    md_meta_entry *meta = NULL;
    size_t n_meta = 0;
    md_status st = md_weights_open(path, &w, err);
    if (st != MD_OK)
        return st;
    if (!w.map) {
        md_weights_free(&w);
        return md_fail(err, MD_ERR_FORMAT, "%s: not a safetensors scale model", path);
    }
    if ((st = md_safetensors_metadata(w.map, w.map_size, path, &meta, &n_meta, err)) != MD_OK) {
        md_weights_free(&w);
        return st;
    }
    const char *fmt = meta_get(meta, n_meta, "format");
    md_scale_model *m = md_calloc(1, sizeof *m, "scale model", err);
    if (!m) {
        st = MD_ERR_NOMEM;
    } else if (fmt && strcmp(fmt, ENCODER_FORMAT) == 0) {
        m->arch = MD_SCALE_ARCH_ENCODER;
        st = md_enc_from_weights(&w, meta, n_meta, path, &m->enc, err);
        const char *base = meta_get(meta, n_meta, "base_model");
        const char *hash = meta_get(meta, n_meta, "list_hash");
        snprintf(m->base_model, sizeof m->base_model, "%s", base ? base : "");
        snprintf(m->list_hash, sizeof m->list_hash, "%s", hash ? hash : "");
        if (st == MD_OK)
            encoder_desc(m);
    } else {
        /* the CNNs read their own file (and report a wrong format) */
        st = md_cnn_model_load(path, &m->cnn, err);
        if (st == MD_OK)
            m->arch = (md_scale_arch)md_scale_arch_parse(meta_get(meta, n_meta, "arch"));
    }
    md_safetensors_metadata_free(meta, n_meta);
    md_weights_free(&w);
    if (st != MD_OK) {
        md_scale_model_free(m);
        return st;
    }
    *out = m;
    return MD_OK;
}
