/* Previews a person can read: the depth in a colour map (or grey), optionally
 * beside the RGB image, with a colour bar that states the range and which end
 * is near. Drawn pixel by pixel with a built-in 5x7 font: the core library
 * links no graphics library.
 *
 * Convention, the same for every preview: near is the low end of the bar, on
 * its left: blue in turbo, black in inferno, white in grey (as Depth Anything
 * V2's grey disparity images). Depth maps near = small values; relative
 * disparity maps near = large values, so their ramp runs the other way. */
#include "io_internal.h"

#include <stdlib.h>

/* ------------------------------------------------------------------ font */

typedef struct {
    char c;
    uint8_t rows[7]; /* 5 bits each, bit 4 = leftmost column */
} glyph;

#define G(c, a, b, d, e, f, g, h) {c, {a, b, d, e, f, g, h}}
static const glyph k_font[] = {
    G('0', 0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E), G('1', 0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E),
    G('2', 0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F), G('3', 0x1E, 0x01, 0x01, 0x0E, 0x01, 0x01, 0x1E),
    G('4', 0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02), G('5', 0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E),
    G('6', 0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E), G('7', 0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08),
    G('8', 0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E), G('9', 0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C),
    G('.', 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C), G('-', 0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x00),
    G('m', 0x00, 0x00, 0x1A, 0x15, 0x15, 0x15, 0x15), G('n', 0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11),
    G('e', 0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E), G('a', 0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F),
    G('r', 0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10), G('f', 0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08),
    G('d', 0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F), G('i', 0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E),
    G('s', 0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E), G('p', 0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10),
    G('t', 0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06), G('y', 0x00, 0x00, 0x11, 0x11, 0x0F, 0x01, 0x0E),
    G('l', 0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E), G('v', 0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04),
    G('o', 0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E), G('c', 0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E),
    G('u', 0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D), G('h', 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11),
    G('g', 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E), G('x', 0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11),
    G('b', 0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E), G('k', 0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12),
    G('w', 0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A), G('(', 0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02),
    G(')', 0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08), G(':', 0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00),
    G('<', 0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02), G('>', 0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08),
    G('/', 0x01, 0x02, 0x02, 0x04, 0x08, 0x08, 0x10), G('=', 0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00),
};
#undef G

static const glyph *find_glyph(char c)
{
    for (size_t i = 0; i < sizeof k_font / sizeof *k_font; i++)
        if (k_font[i].c == c)
            return &k_font[i];
    return NULL; /* drawn as a space */
}

/* Advance per character: 5 columns and a 1-column gap, times the scale. */
static int text_width(const char *s, int scale)
{
    return (int)strlen(s) * 6 * scale;
}

static void draw_text(md_image *img, int x0, int y0, const char *s, int scale, const uint8_t rgb[3])
{
    for (; *s; s++, x0 += 6 * scale) {
        const glyph *g = find_glyph(*s);
        if (!g)
            continue;
        for (int r = 0; r < 7; r++)
            for (int c = 0; c < 5; c++) {
                if (!(g->rows[r] >> (4 - c) & 1))
                    continue;
                for (int dy = 0; dy < scale; dy++)
                    for (int dx = 0; dx < scale; dx++) {
                        int x = x0 + c * scale + dx, y = y0 + r * scale + dy;
                        if (x >= 0 && y >= 0 && x < img->width && y < img->height)
                            memcpy(img->pixels + ((size_t)y * img->width + x) * 3, rgb, 3);
                    }
            }
    }
}

/* --------------------------------------------------------------- preview */

md_preview_options md_preview_defaults(void)
{
    md_preview_options o;
    memset(&o, 0, sizeof o);
    o.cmap = MD_COLORMAP_TURBO;
    o.colorbar = 1;
    return o;
}

/* t in [0, 1], 0 = near. */
static void ramp(const md_preview_options *o, float t, uint8_t rgb[3])
{
    if (o->grayscale) {
        float v = 255.0f * (1.0f - (t < 0 ? 0 : t > 1 ? 1 : t)) + 0.5f;
        rgb[0] = rgb[1] = rgb[2] = (uint8_t)v;
    } else {
        md_colormap_lookup(o->cmap, t, rgb);
    }
}

static void format_value(char *buf, size_t n, double v, int disparity)
{
    double a = fabs(v);
    const char *unit = disparity ? "" : " m";
    if (a >= 100 || a == 0)
        snprintf(buf, n, "%.0f%s", v, unit);
    else if (a >= 10)
        snprintf(buf, n, "%.1f%s", v, unit);
    else if (a >= 0.1)
        snprintf(buf, n, "%.2f%s", v, unit);
    else
        snprintf(buf, n, "%.3f%s", v, unit);
}

md_status md_depth_render_preview(const md_depth *depth, const md_preview_options *opts,
                                  md_image *out, float range[2], md_error *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!depth || !depth->data || depth->width < 1 || depth->height < 1 || !out)
        return md_fail(err, MD_ERR_ARG, "preview: no depth map");
    md_preview_options o = opts ? *opts : md_preview_defaults();
    if (o.cmap != MD_COLORMAP_TURBO && o.cmap != MD_COLORMAP_INFERNO)
        return md_fail(err, MD_ERR_ARG, "preview: unknown colormap %d", (int)o.cmap);
    if (o.rgb && (!o.rgb->pixels || o.rgb->width != depth->width ||
                  o.rgb->height != depth->height))
        return md_fail(err, MD_ERR_ARG, "preview: image %dx%d does not match depth %dx%d",
                       o.rgb->width, o.rgb->height, depth->width, depth->height);
    float vmin = o.vmin, vmax = o.vmax;
    if (!isfinite(vmin) || !isfinite(vmax))
        return md_fail(err, MD_ERR_ARG, "preview: range must be finite");
    int automatic = vmin == 0.0f && vmax == 0.0f;
    if (!automatic && !(vmax > vmin))
        return md_fail(err, MD_ERR_ARG, "preview: range needs min < max (got %g, %g)",
                       (double)vmin, (double)vmax);
    if (automatic) {
        md_status st = md_depth_auto_range(depth, &vmin, &vmax, err);
        if (st != MD_OK)
            return st;
    }
    if (range) {
        range[0] = vmin;
        range[1] = vmax;
    }
    int W = depth->width, H = depth->height;
    int scale = W >= 1600 ? 4 : W >= 960 ? 3 : W >= 480 ? 2 : 1;
    int gap = o.rgb ? 4 * scale : 0;
    int bar_h = o.colorbar ? 22 * scale : 0;
    int x_depth = o.rgb ? W + gap : 0;
    md_image img;
    img.width = x_depth + W;
    img.height = H + bar_h;
    if (img.width > MD_MAX_DIM || img.height > MD_MAX_DIM)
        return md_fail(err, MD_ERR_ARG, "preview: %dx%d is too large", img.width, img.height);
    size_t bytes = (size_t)img.width * (size_t)img.height * 3;
    img.pixels = md_calloc(bytes, 1, "preview image", err); /* black = invalid */
    if (!img.pixels)
        return MD_ERR_NOMEM;
    if (o.rgb)
        for (int y = 0; y < H; y++)
            memcpy(img.pixels + (size_t)y * img.width * 3, o.rgb->pixels + (size_t)y * W * 3,
                   (size_t)W * 3);
    double span = (double)vmax - (double)vmin;
    /* a row's positions on the ramp, then its colours in one call */
    float *t = md_malloc(sizeof(float) * (size_t)W, "preview image", err);
    uint8_t *skip = md_malloc((size_t)W, "preview image", err);
    if (!t || !skip) {
        free(t);
        free(skip);
        md_image_free(&img);
        return MD_ERR_NOMEM;
    }
    for (int y = 0; y < H; y++) {
        uint8_t *row = img.pixels + ((size_t)y * img.width + x_depth) * 3;
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            skip[x] = !md_depth_valid_at(depth, i);
            if (skip[x])
                continue; /* its t is never read */
            /* a constant map (empty range) is drawn with the middle colour */
            t[x] = span > 0 ? (float)(((double)depth->data[i] - vmin) / span) : 0.5f;
            if (o.disparity)
                t[x] = 1.0f - t[x];
        }
        if (o.grayscale) {
            for (int x = 0; x < W; x++)
                if (!skip[x])
                    ramp(&o, t[x], row + 3 * x);
        } else {
            md_colormap_row(o.cmap, t, skip, (size_t)W, row);
        }
    }
    free(t);
    free(skip);
    if (o.colorbar) {
        uint8_t *strip = img.pixels + (size_t)H * img.width * 3;
        memset(strip, 255, (size_t)bar_h * img.width * 3); /* white */
        int x0 = 4 * scale, x1 = img.width - 4 * scale, y0 = H + 3 * scale, y1 = H + 10 * scale;
        for (int x = x0; x < x1; x++) {
            uint8_t rgb[3];
            ramp(&o, x1 - 1 > x0 ? (float)(x - x0) / (float)(x1 - 1 - x0) : 0.5f, rgb);
            for (int y = y0; y < y1; y++)
                memcpy(img.pixels + ((size_t)y * img.width + x) * 3, rgb, 3);
        }
        static const uint8_t ink[3] = {0, 0, 0};
        char lo[48], hi[48], left[64], right[64];
        /* near end: the small depth or the large disparity */
        format_value(lo, sizeof lo, o.disparity ? vmax : vmin, o.disparity);
        format_value(hi, sizeof hi, o.disparity ? vmin : vmax, o.disparity);
        snprintf(left, sizeof left, "near %s", lo);
        snprintf(right, sizeof right, "%s far", hi);
        int ty = H + 12 * scale;
        draw_text(&img, x0, ty, left, scale, ink);
        draw_text(&img, x1 - text_width(right, scale) + scale, ty, right, scale, ink);
        const char *mid = o.disparity ? "relative disparity (no unit)" : "depth (metres)";
        int mw = text_width(mid, scale);
        if (mw + text_width(left, scale) + text_width(right, scale) + 8 * scale < x1 - x0)
            draw_text(&img, (img.width - mw) / 2, ty, mid, scale, ink);
    }
    *out = img;
    return MD_OK;
}

md_status md_depth_save_preview_ex(const char *path, const md_depth *depth,
                                   const md_preview_options *opts, float range[2], md_error *err)
{
    if (!path)
        return md_fail(err, MD_ERR_ARG, "preview: no path");
    md_image img;
    md_status st = md_depth_render_preview(depth, opts, &img, range, err);
    if (st != MD_OK) {
        if (err && err->message[0]) {
            char msg[sizeof err->message];
            snprintf(msg, sizeof msg, "%s", err->message);
            md_fail(err, st, "%s: %s", path, msg);
        }
        return st;
    }
    st = md_image_save_png(path, &img, err);
    md_image_free(&img);
    return st;
}
