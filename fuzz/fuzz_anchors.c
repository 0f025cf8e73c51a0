/* libFuzzer harness for anchor files (md_anchors_load: text lists and sparse
 * depth images) and the anchor fits behind them. Each input is written to a
 * temporary file and read for a 64x48 image; what loads must hold only
 * anchors inside the image with finite positive depths and weights, and
 * every fit (and the scale map) on a fixed base depth must either fail with
 * a message or give a finite positive scale. Built and run by scripts/fuzz. */
#include "metricdepth.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/md_fuzz_anchors_%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);

    md_anchor_set set;
    md_error err = {0};
    if (md_anchors_load(path, 64, 48, 0, &set, &err) != MD_OK) {
        if (!err.message[0] || set.items || set.count)
            abort(); /* a failure says why and returns nothing */
        return 0;
    }
    if (set.count == 0)
        abort();
    for (size_t i = 0; i < set.count; i++) {
        const md_anchor *a = &set.items[i];
        if (!(a->u >= 0 && a->u < 64 && a->v >= 0 && a->v < 48 && a->depth > 0 &&
              isfinite(a->depth) && a->weight > 0 && isfinite(a->weight)))
            abort();
    }
    md_depth base = {0};
    if (md_depth_alloc(&base, 64, 48, &err) == MD_OK) {
        for (int i = 0; i < 64 * 48; i++)
            base.data[i] = (i % 64) < 4 ? 0.0f : 0.5f + 0.01f * (float)(i % 97);
        for (int fit = 0; fit <= MD_ANCHOR_FIT_SCALE_SHIFT + 1; fit++) {
            md_depth d = {0};
            if (md_depth_alloc(&d, 64, 48, &err) != MD_OK)
                break;
            memcpy(d.data, base.data, sizeof(float) * 64 * 48);
            md_scale_options so = md_scale_options_default();
            so.source = MD_SCALE_SOURCE_ANCHORS;
            so.anchors = &set;
            so.anchor_fit = fit > MD_ANCHOR_FIT_SCALE_SHIFT ? MD_ANCHOR_FIT_ROBUST
                                                            : (md_anchor_fit)fit;
            so.scale_map = fit > MD_ANCHOR_FIT_SCALE_SHIFT;
            md_scale_record rec;
            md_error e = {0};
            if (md_scale_depth(NULL, NULL, &d, &so, &rec, &e) == MD_OK) {
                if (!(rec.scale > 0 && isfinite(rec.scale)))
                    abort();
            } else if (!e.message[0]) {
                abort();
            }
            md_scale_record_free(&rec);
            md_depth_free(&d);
        }
        md_depth_free(&base);
    }
    md_anchor_set_free(&set);
    return 0;
}
