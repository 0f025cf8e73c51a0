/* JPEG through libjpeg(-turbo). Errors and warnings (a warning means corrupt
 * or truncated data, e.g. "premature end of JPEG file") both longjmp back
 * here, so a bad file is reported instead of being silently patched up or
 * ending the process. */
#include "io_internal.h"

#include <setjmp.h>
#include <stdlib.h>

#include <jpeglib.h>

/* Bounds on what one hostile file can make the decoder do. */
#define JPEG_MAX_SCANS 1000
#define JPEG_MAX_MEMORY ((long)768 * 1024 * 1024)

typedef struct {
    struct jpeg_error_mgr pub; /* first: libjpeg casts cinfo->err to this type */
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX];
} jpeg_err_ctx;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_err_ctx jerr;
    struct jpeg_progress_mgr progress;
    const uint8_t *data;
    size_t size;
    uint8_t *pixels;
    size_t rows_alloc;
    int width, height;
    md_status status;
} jpeg_read_ctx;

static void on_error_exit(j_common_ptr cinfo)
{
    jpeg_err_ctx *e = (jpeg_err_ctx *)(void *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

static void on_emit(j_common_ptr cinfo, int level)
{
    if (level < 0) { /* a warning: corrupt data */
        jpeg_err_ctx *e = (jpeg_err_ctx *)(void *)cinfo->err;
        (*cinfo->err->format_message)(cinfo, e->msg);
        longjmp(e->jump, 1);
    }
}

static void on_output(j_common_ptr cinfo)
{
    (void)cinfo; /* library code never prints */
}

static void on_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->is_decompressor && d->input_scan_number > JPEG_MAX_SCANS) {
        jpeg_err_ctx *e = (jpeg_err_ctx *)(void *)cinfo->err;
        snprintf(e->msg, sizeof e->msg, "more than %d progressive scans", JPEG_MAX_SCANS);
        longjmp(e->jump, 1);
    }
}

static int decode(jpeg_read_ctx *c)
{
    j_decompress_ptr cinfo = &c->cinfo;
    if (setjmp(c->jerr.jump))
        return -1;
    jpeg_create_decompress(cinfo);
    cinfo->mem->max_memory_to_use = JPEG_MAX_MEMORY;
    c->progress.progress_monitor = on_progress;
    cinfo->progress = &c->progress;
    jpeg_mem_src(cinfo, c->data, (unsigned long)c->size);
    jpeg_read_header(cinfo, TRUE);
    if (cinfo->image_width == 0 || cinfo->image_height == 0 ||
        cinfo->image_width > MD_MAX_DIM || cinfo->image_height > MD_MAX_DIM) {
        c->status = MD_ERR_UNSUPPORTED;
        snprintf(c->jerr.msg, sizeof c->jerr.msg, "image size %ux%u outside 1..%d",
                 (unsigned)cinfo->image_width, (unsigned)cinfo->image_height, MD_MAX_DIM);
        return -1;
    }
    if ((size_t)cinfo->image_width * cinfo->image_height > MD_MAX_PIXELS) {
        c->status = MD_ERR_UNSUPPORTED;
        snprintf(c->jerr.msg, sizeof c->jerr.msg,
                 "image of %ux%u pixels is larger than the %zu supported",
                 (unsigned)cinfo->image_width, (unsigned)cinfo->image_height, MD_MAX_PIXELS);
        return -1;
    }
    if (cinfo->jpeg_color_space == JCS_CMYK || cinfo->jpeg_color_space == JCS_YCCK) {
        c->status = MD_ERR_UNSUPPORTED;
        snprintf(c->jerr.msg, sizeof c->jerr.msg, "CMYK/YCCK JPEGs are not supported");
        return -1;
    }
    cinfo->out_color_space = JCS_RGB;
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != 3) {
        c->status = MD_ERR_UNSUPPORTED;
        snprintf(c->jerr.msg, sizeof c->jerr.msg, "cannot convert to RGB");
        return -1;
    }
    size_t w = cinfo->output_width, h = cinfo->output_height, stride = w * 3;
    /* Grow the output as rows arrive, so a tiny file that claims a huge size
     * fails on its missing data before we allocate for all of it. */
    while (cinfo->output_scanline < cinfo->output_height) {
        size_t y = cinfo->output_scanline;
        if (y >= c->rows_alloc) {
            size_t rows = c->rows_alloc ? c->rows_alloc * 2 : 64;
            if (rows > h)
                rows = h;
            uint8_t *p = realloc(c->pixels, rows * stride);
            if (!p) {
                c->status = MD_ERR_NOMEM;
                snprintf(c->jerr.msg, sizeof c->jerr.msg, "out of memory");
                return -1;
            }
            c->pixels = p;
            c->rows_alloc = rows;
        }
        JSAMPROW row = c->pixels + y * stride;
        jpeg_read_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_decompress(cinfo);
    c->width = (int)w;
    c->height = (int)h;
    return 0;
}

md_status md_io_jpeg_decode_rgb8(const char *path, const uint8_t *data, size_t size, int *w,
                                 int *h, uint8_t **pixels, md_error *err)
{
    *pixels = NULL;
    *w = *h = 0;
    jpeg_read_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the JPEG decoder", path);
    c->data = data;
    c->size = size;
    c->status = MD_ERR_FORMAT;
    c->cinfo.err = jpeg_std_error(&c->jerr.pub);
    c->jerr.pub.error_exit = on_error_exit;
    c->jerr.pub.emit_message = on_emit;
    c->jerr.pub.output_message = on_output;
    int rc = decode(c);
    jpeg_destroy_decompress(&c->cinfo);
    md_status st = MD_OK;
    if (rc != 0) {
        st = md_fail(err, c->status, "%s: %s JPEG: %s", path,
                     c->status == MD_ERR_FORMAT ? "corrupt" : "cannot read", c->jerr.msg);
        free(c->pixels);
    } else {
        *pixels = c->pixels;
        *w = c->width;
        *h = c->height;
    }
    free(c);
    return st;
}
