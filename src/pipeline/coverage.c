/* How much of an image got depth, and whether the network suits the scene.
 *
 * FastDepth sees only its 228x304 (3:4) centre crop: a 640x480 image keeps
 * 83 % of its pixels (resized to 250x333, the crop spans 228/250 of the
 * height and 304/333 of the width), a KITTI 1242x375 frame 33 %. The rest is written as invalid. An
 * indoor network (NYU, Hypersim) on a wide street scene gives depth that
 * saturates at its training range: we say so when the image is 2:1 or wider,
 * or when a quarter of the valid pixels sit within 5 % of the network's
 * largest depth. */
#include "base/base.h"

#include <math.h>
#include <string.h>

void md_depth_coverage(const md_model *model, const md_depth *depth, md_coverage *out)
{
    memset(out, 0, sizeof *out);
    if (!depth || !depth->data || depth->width <= 0 || depth->height <= 0)
        return;
    md_model_info info;
    md_model_get_info(model, &info);
    size_t n = (size_t)depth->width * (size_t)depth->height, seen = n, valid = 0, high = 0;
    /* v >= 0.95 max_depth (in double) as a float comparison: the least float
     * not below the threshold; none when there is no largest depth. */
    double thr = 0.95 * info.max_depth;
    float tf = info.max_depth > 0 ? (float)thr : INFINITY;
    if (info.max_depth > 0 && (double)tf < thr)
        tf = nextafterf(tf, INFINITY);
    /* Branch-free counts (md_depth_valid_at's test), which the compiler
     * vectorises: a branch per pixel cost 0.3 ms for a 640x480 map. */
    const float *d = depth->data;
    if (!depth->mask) {
        for (size_t i = 0; i < n; i++) {
            int ok = d[i] > 0.0f && d[i] < 3.0e38f;
            valid += (size_t)ok;
            high += (size_t)(ok & (d[i] >= tf));
        }
    } else {
        seen = 0;
        for (size_t i = 0; i < n; i++) {
            int in = depth->mask[i] != 0, ok = in & (d[i] > 0.0f) & (d[i] < 3.0e38f);
            seen += (size_t)in;
            valid += (size_t)ok;
            high += (size_t)(ok & (d[i] >= tf));
        }
    }
    out->coverage = (double)seen / (double)n;
    double aspect = (double)depth->width / depth->height;
    if (aspect < 1)
        aspect = 1 / aspect;
    out->outdoor_like = info.indoor == 1 && (aspect >= 2.0 || (valid && high * 4 >= valid));
    int g = info.crop_aspect_w, b = info.crop_aspect_h;
    while (b) {
        int t = g % b;
        g = b;
        b = t;
    }
    size_t len = 0;
    if (out->coverage < 0.95 && info.crop_aspect_w > 0)
        len += (size_t)snprintf(out->note + len, sizeof out->note - len,
                                "the network sees only its %d:%d centre crop: %.0f %% of this "
                                "%dx%d image has depth",
                                info.crop_aspect_w / (g ? g : 1), info.crop_aspect_h / (g ? g : 1),
                                100.0 * out->coverage, depth->width, depth->height);
    if (out->outdoor_like && len < sizeof out->note)
        snprintf(out->note + len, sizeof out->note - len,
                 "%san indoor network (trained up to %.0f m) on what looks like an outdoor "
                 "scene (%s): far depth saturates",
                 len ? "; " : "", info.max_depth,
                 aspect >= 2.0 ? "a wide image" : "much of it at the network's largest depth");
}
