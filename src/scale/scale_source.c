/* Scale sources: how the base network's depth becomes metric (none, the
 * adaptive predictor through its confidence gate, the oracle fit against
 * ground truth). One function applies them, for predict and evaluation alike. */
#include "base/base.h"
#include "scale/anchors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const source_names[] = {"auto", "none", "adaptive", "oracle", "anchors"};

const char *md_scale_source_name(md_scale_source source)
{
    return md_enum_name(source_names, sizeof source_names / sizeof *source_names, (int)source);
}

int md_scale_source_parse(const char *name)
{
    return md_enum_parse(source_names, sizeof source_names / sizeof *source_names, name);
}

md_scale_options md_scale_options_default(void)
{
    md_scale_options o;
    memset(&o, 0, sizeof o);
    o.source = MD_SCALE_SOURCE_AUTO;
    o.oracle_method = MD_SCALE_W1;
    o.anchor_fit = MD_ANCHOR_FIT_ROBUST;
    o.lo = 0.1;
    o.hi = 2.0;
    return o;
}

static void record_init(md_scale_record *rec, md_scale_source source)
{
    memset(rec, 0, sizeof *rec);
    rec->source = source;
    rec->scale = 1.0;
    rec->predicted_log_scale = NAN;
    rec->log_scale_sd = NAN;
    rec->distance = NAN;
    rec->confidence = 0.0;
}

static void multiply(md_depth *d, double scale)
{
    size_t n = (size_t)d->width * (size_t)d->height;
    float s = (float)scale;
    for (size_t i = 0; i < n; i++)
        d->data[i] *= s;
}

static md_status oracle(const md_depth *depth, const md_scale_options *o, md_scale_record *rec,
                        md_error *err)
{
    if (!o->gt)
        return md_fail(err, MD_ERR_ARG, "oracle scale: no ground truth given");
    if (!(o->lo > 0) || !(o->hi >= o->lo))
        return md_fail(err, MD_ERR_ARG, "oracle scale: range [%g, %g] is not 0 < lo <= hi",
                       o->lo, o->hi);
    float *p = NULL, *g = NULL;
    size_t n = 0;
    double s = 1.0;
    md_status st = md_depth_valid_samples(depth, o->gt, &p, &g, &n, err);
    if (st == MD_OK)
        st = md_scale_fit(p, g, n, o->oracle_method, o->lo, o->hi, &s, err);
    free(p);
    free(g);
    if (st != MD_OK)
        return st;
    rec->scale = s;
    rec->predicted_log_scale = log(s);
    rec->confidence = 1.0;
    rec->applied = 1;
    /* The solvers clamp to [lo, hi]: a fit on a bound means the optimum may
     * lie beyond it (KITTI against an indoor network: 9 where hi is 2). */
    if (s <= o->lo * (1 + 1e-9) || s >= o->hi * (1 - 1e-9)) {
        rec->at_range_limit = 1;
        snprintf(rec->note, sizeof rec->note,
                 "oracle scale %.4g sits on the range limit [%g, %g]: the optimum may lie beyond",
                 s, o->lo, o->hi);
    }
    return MD_OK;
}

static md_status adaptive(const md_image *img, const md_features *features,
                          const md_scale_options *o, md_scale_record *rec, md_error *err)
{
    md_scale_estimate est;
    md_status st = md_scale_model_estimate(o->scale_model, img, features, &est, err);
    if (st != MD_OK)
        return st;
    double w = o->ungated ? 1.0 : est.weight;
    if (!(w >= 0.0))
        w = 0.0;
    if (w > 1.0)
        w = 1.0;
    rec->predicted_log_scale = est.log_scale;
    rec->log_scale_sd = est.log_scale_sd;
    rec->distance = est.distance;
    rec->confidence = w;
    rec->scale = exp(w * est.log_scale);
    rec->applied = w > 0.0;
    snprintf(rec->note, sizeof rec->note, "%s", o->ungated ? "ungated" : est.note);
    return MD_OK;
}

/* Auto applies a scale model only when it was trained for this base model:
 * another network's depth has another error, and a scale learned for one
 * would make the other worse. */
static bool trained_for(const md_scale_model *sm, const char *base_name)
{
    const char *base = md_scale_model_base(sm);
    return base_name && base && strcmp(base, base_name) == 0;
}

md_status md_scale_depth(const md_image *img, const md_features *features, md_depth *depth,
                         const md_scale_options *opts, md_scale_record *rec, md_error *err)
{
    md_scale_record local;
    if (!rec)
        rec = &local;
    md_scale_options defaults = md_scale_options_default();
    const md_scale_options *o = opts ? opts : &defaults;
    record_init(rec, o->source);
    if (!depth || !depth->data || depth->width <= 0 || depth->height <= 0)
        return md_fail(err, MD_ERR_ARG, "scale: empty depth map");
    md_scale_source src = o->source;
    if (src == MD_SCALE_SOURCE_AUTO) {
        src = o->scale_model && trained_for(o->scale_model, o->base_model_name)
                  ? MD_SCALE_SOURCE_ADAPTIVE
                  : MD_SCALE_SOURCE_NONE;
        if (src == MD_SCALE_SOURCE_NONE && o->scale_model)
            snprintf(rec->note, sizeof rec->note,
                     "scale model trained for '%s', not %s: not applied",
                     md_scale_model_base(o->scale_model),
                     o->base_model_name ? o->base_model_name : "this model");
    }
    rec->source = src;
    int automatic = o->source == MD_SCALE_SOURCE_AUTO;
    md_status st = MD_OK;
    switch (src) {
    case MD_SCALE_SOURCE_NONE:
        return MD_OK;
    case MD_SCALE_SOURCE_ORACLE:
        st = oracle(depth, o, rec, err);
        break;
    case MD_SCALE_SOURCE_ADAPTIVE:
        if (!o->scale_model)
            return md_fail(err, MD_ERR_ARG, "adaptive scale: no scale model given");
        if (automatic) {
            /* auto never fails for want of what the scale model reads (features
             * of another network, no image): it keeps the base output */
            md_error why = {0};
            st = adaptive(img, features, o, rec, &why);
            if (st == MD_ERR_UNSUPPORTED || st == MD_ERR_ARG) {
                record_init(rec, MD_SCALE_SOURCE_NONE);
                snprintf(rec->note, sizeof rec->note, "scale model not applied: %.120s",
                         why.message);
                return MD_OK;
            }
            if (st != MD_OK && err)
                *err = why;
        } else {
            st = adaptive(img, features, o, rec, err);
        }
        break;
    case MD_SCALE_SOURCE_ANCHORS:
        return md_scale_anchors_apply(depth, o, rec, err); /* applies itself (maps, shifts) */
    default:
        return md_fail(err, MD_ERR_ARG, "scale: unknown source %d", (int)src);
    }
    if (st != MD_OK)
        return st;
    if (rec->scale != 1.0)
        multiply(depth, rec->scale);
    return MD_OK;
}

md_status md_default_scale_model_path(const char *base_model_name, char *buf, size_t size,
                                      md_error *err)
{
    if (!buf || size == 0)
        return md_fail(err, MD_ERR_ARG, "default scale model path: no buffer");
    const char *env = getenv("METRICDEPTH_SCALE_MODEL");
    if (env && *env) {
        snprintf(buf, size, "%s", env);
        if (access(buf, R_OK) == 0)
            return MD_OK;
        return md_fail(err, MD_ERR_IO, "%s (METRICDEPTH_SCALE_MODEL): cannot read", buf);
    }
    if (!base_model_name || !*base_model_name)
        return md_fail(err, MD_ERR_ARG, "default scale model: no base model name");
    /* scale_models/STEM.scale.safetensors, STEM the base model's file name
     * without its extension */
    char name[300];
    const char *dot = strrchr(base_model_name, '.');
    int n = dot && dot != base_model_name ? (int)(dot - base_model_name) : (int)strlen(base_model_name);
    snprintf(name, sizeof name, "%.*s.scale.safetensors", n, base_model_name);
    return md_find_data_file("scale_models", name, MD_DATA_DIR "/scale_models", buf, size, err);
}
