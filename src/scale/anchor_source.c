/* The anchors scale source: pair the anchors with the base depth, fit, build
 * the scale map when asked, apply. */
#include "scale/anchors.h"

#include "base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void md_scale_record_free(md_scale_record *rec)
{
    if (!rec)
        return;
    free(rec->log_scale_map);
    rec->log_scale_map = NULL;
    rec->map_width = rec->map_height = 0;
}

/* depth = 1 / (a q + b), q the base as inverse depth; pixels where that is
 * not a positive depth become invalid. Returns how many did. */
static size_t apply_scale_shift(md_depth *d, double a, double b, int disparity)
{
    size_t n = (size_t)d->width * (size_t)d->height, lost = 0;
    for (size_t i = 0; i < n; i++) {
        if (!md_depth_valid_at(d, i))
            continue;
        double q = disparity ? d->data[i] : 1.0 / d->data[i];
        double inv = a * q + b;
        float v = inv > 0.0 ? (float)(1.0 / inv) : 0.0f;
        if (!(v > 0.0f && v < 3.0e38f)) {
            v = 0.0f;
            lost++;
        }
        d->data[i] = v;
    }
    return lost;
}

md_status md_scale_anchors_apply(md_depth *depth, const md_scale_options *o,
                                 md_scale_record *rec, md_error *err)
{
    const char *name = o->anchors_name && *o->anchors_name ? o->anchors_name : "anchors";
    if (!o->anchors)
        return md_fail(err, MD_ERR_ARG, "anchors scale source: no anchors given");
    md_anchor_fit fit = o->anchor_fit;
    if ((unsigned)fit > (unsigned)MD_ANCHOR_FIT_SCALE_SHIFT)
        return md_fail(err, MD_ERR_ARG, "%s: unknown anchor fit %d", name, (int)fit);
    if (o->scale_map && fit == MD_ANCHOR_FIT_SCALE_SHIFT)
        return md_fail(err, MD_ERR_ARG,
                       "%s: a scale map refines a scale-only fit (robust, w1, median, lsq), "
                       "not scale-shift",
                       name);
    md_anchor_samples s;
    md_status st = md_anchor_samples_collect(depth, o->anchors, name, &s, err);
    if (st != MD_OK)
        return st;
    unsigned char *inlier = md_malloc(s.n, "anchor inliers", err);
    if (!inlier) {
        md_anchor_samples_free(&s);
        return MD_ERR_NOMEM;
    }
    md_anchor_result r;
    st = md_anchor_fit_samples(&s, fit, o->base_is_disparity, name, &r, inlier, err);
    if (st != MD_OK)
        goto done;
    rec->anchor_fit = fit;
    rec->scale = r.scale;
    rec->shift = r.shift;
    rec->predicted_log_scale = log(r.scale);
    rec->log_scale_sd = r.log_scale_sd;
    rec->anchor_residual_sd = r.residual_sd;
    rec->anchors_total = (int)s.total;
    rec->anchors_used = (int)s.n;
    rec->anchors_inliers = (int)r.inliers;
    rec->confidence = 1.0;
    rec->applied = 1;
    int len = snprintf(rec->note, sizeof rec->note, "%zu of %zu anchors used, %zu inliers",
                       s.n, s.total, r.inliers);
    if (fit == MD_ANCHOR_FIT_ROBUST && s.n < 3)
        len += snprintf(rec->note + len, sizeof rec->note - (size_t)len,
                        "; too few to reject outliers");

    size_t npix = (size_t)depth->width * (size_t)depth->height;
    if (fit == MD_ANCHOR_FIT_SCALE_SHIFT) {
        size_t lost = apply_scale_shift(depth, 1.0 / r.scale, r.shift, o->base_is_disparity);
        if (lost)
            snprintf(rec->note + len, sizeof rec->note - (size_t)len,
                     "; %zu pixels beyond the fitted far limit left invalid", lost);
    } else if (o->scale_map) {
        float *map = md_malloc(npix * sizeof *map, "scale map", err);
        if (!map) {
            st = MD_ERR_NOMEM;
            goto done;
        }
        st = md_anchor_scale_map(depth, &s, log(r.scale), map, err);
        if (st != MD_OK) {
            free(map);
            goto done;
        }
        for (size_t i = 0; i < npix; i++)
            if (md_depth_valid_at(depth, i))
                depth->data[i] = (float)(depth->data[i] * exp((double)map[i]));
        rec->log_scale_map = map;
        rec->map_width = depth->width;
        rec->map_height = depth->height;
        snprintf(rec->note + len, sizeof rec->note - (size_t)len, "; pixel-wise scale map");
    } else {
        float f = (float)r.scale;
        for (size_t i = 0; i < npix; i++)
            depth->data[i] *= f;
    }
done:
    free(inlier);
    md_anchor_samples_free(&s);
    return st;
}
