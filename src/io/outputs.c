/* The files of one prediction, written as one output set: 16-bit PNG, .npy,
 * PFM, preview and PLY, under names that say what they hold (".depth.*" for
 * metres, ".disparity.*" for relative disparity, which is never written as
 * metres). */
#include "io_internal.h"

#include <stdlib.h>

static const struct {
    unsigned flag;
    const char *name;
    const char *metric_suffix, *relative_suffix;
} k_outputs[] = {
    {MD_OUT_PNG16, "png16", ".depth.png", ".disparity.png"},
    {MD_OUT_NPY, "npy", ".depth.npy", ".disparity.npy"},
    {MD_OUT_PFM, "pfm", ".depth.pfm", ".disparity.pfm"},
    {MD_OUT_PREVIEW, "preview", ".preview.png", ".preview.png"},
    {MD_OUT_PLY, "ply", ".ply", NULL},
    {MD_OUT_JSON, "json", ".json", ".json"},
    {MD_OUT_VIDEO, "video", ".depth.mp4", ".disparity.mp4"},
};

const char *md_output_suffix(unsigned flag, int relative)
{
    for (size_t i = 0; i < sizeof k_outputs / sizeof *k_outputs; i++)
        if (k_outputs[i].flag == flag)
            return relative ? k_outputs[i].relative_suffix : k_outputs[i].metric_suffix;
    return NULL;
}

int md_outputs_parse(const char *list, unsigned *flags, char *bad, size_t bad_size)
{
    *flags = 0;
    if (bad && bad_size)
        bad[0] = '\0';
    if (!list)
        return -1;
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        unsigned f = 0;
        for (size_t i = 0; i < sizeof k_outputs / sizeof *k_outputs && !f; i++)
            if (strlen(k_outputs[i].name) == n && strncmp(k_outputs[i].name, p, n) == 0)
                f = k_outputs[i].flag;
        if (!f && n == 3 && strncmp(p, "png", 3) == 0)
            f = MD_OUT_PNG16;
        if (!f) {
            if (bad && bad_size)
                snprintf(bad, bad_size, "%.*s", (int)(n < 64 ? n : 64), p);
            return -1;
        }
        *flags |= f;
        p += n + (comma != NULL);
    }
    return *flags ? 0 : -1;
}

md_write_options md_write_defaults(void)
{
    md_write_options o;
    memset(&o, 0, sizeof o);
    o.outputs = MD_OUT_PNG16 | MD_OUT_NPY | MD_OUT_PREVIEW | MD_OUT_JSON;
    o.png_divisor = 1000.0;
    o.preview = md_preview_defaults();
    o.ply_stride = 1;
    return o;
}

static md_status staged(md_output_set *set, const char *name, unsigned flag, int relative,
                        const char **path, md_error *err)
{
    const char *suffix = md_output_suffix(flag, relative);
    size_t n = strlen(name) + strlen(suffix) + 1;
    char *rel = md_malloc(n, "output name", err);
    if (!rel)
        return MD_ERR_NOMEM;
    snprintf(rel, n, "%s%s", name, suffix);
    md_status st = md_output_set_file(set, rel, path, err);
    free(rel);
    return st;
}

md_status md_write_depth_set(md_output_set *set, const char *name, const md_depth *depth,
                             const md_image *img, const md_write_options *opts,
                             md_write_report *rep, md_error *err)
{
    md_write_report local;
    if (!rep)
        rep = &local;
    memset(rep, 0, sizeof *rep);
    if (!set || !name || !depth || !depth->data || !opts)
        return md_fail(err, MD_ERR_ARG, "md_write_depth_set: NULL argument");
    const md_write_options *o = opts;
    int rel = o->relative;
    if (rel && (o->outputs & MD_OUT_PLY))
        return md_fail(err, MD_ERR_ARG,
                       "%s: a point cloud needs metric depth, and this is relative disparity",
                       name);
    const char *path;
    md_status st = MD_OK;
    rep->png_divisor = o->png_divisor > 0 ? o->png_divisor : 1000.0;
    if (rel) {
        /* relative disparity has no unit: scale so that its largest value
         * fills the 16 bits; the divisor is recorded to read it back */
        double mx = 0;
        for (size_t i = 0; i < (size_t)depth->width * depth->height; i++)
            if (md_depth_valid_at(depth, i) && depth->data[i] > mx)
                mx = depth->data[i];
        rep->png_divisor = mx > 0 ? 65534.0 / mx : 1.0;
    }
    if (o->outputs & MD_OUT_PNG16) {
        st = staged(set, name, MD_OUT_PNG16, rel, &path, err);
        if (st == MD_OK)
            st = md_depth_save_png16(path, depth, rep->png_divisor, &rep->clipped, err);
    }
    if (st == MD_OK && (o->outputs & MD_OUT_NPY)) {
        st = staged(set, name, MD_OUT_NPY, rel, &path, err);
        if (st == MD_OK)
            st = md_depth_save(path, depth, err);
    }
    if (st == MD_OK && (o->outputs & MD_OUT_PFM)) {
        st = staged(set, name, MD_OUT_PFM, rel, &path, err);
        if (st == MD_OK)
            st = md_depth_save(path, depth, err);
    }
    if (st == MD_OK && (o->outputs & MD_OUT_PREVIEW)) {
        md_preview_options po = o->preview;
        po.disparity = rel;
        if (po.rgb == NULL && o->side_by_side)
            po.rgb = img;
        st = staged(set, name, MD_OUT_PREVIEW, rel, &path, err);
        if (st == MD_OK)
            st = md_depth_save_preview_ex(path, depth, &po, rep->range, err);
    }
    if (st == MD_OK && (o->outputs & MD_OUT_PLY)) {
        st = staged(set, name, MD_OUT_PLY, rel, &path, err);
        if (st == MD_OK)
            st = md_pointcloud_save_ply(path, depth, img, &o->K, o->ply_stride > 0 ? o->ply_stride : 1,
                                        o->ply_max_depth, err);
    }
    return st;
}
