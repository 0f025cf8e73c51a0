/* Format sniffing and the text headers of binary PGM/PPM (Netpbm) and PFM. */
#include "io_internal.h"

#include <math.h>
#include <stdlib.h>

md_file_kind md_io_sniff(const uint8_t *d, size_t n)
{
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && memcmp(d, png_sig, 8) == 0)
        return MD_FILE_PNG;
    if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        return MD_FILE_JPEG;
    if (n >= 12 && memcmp(d, "RIFF", 4) == 0 && memcmp(d + 8, "WEBP", 4) == 0)
        return MD_FILE_WEBP;
    if (n >= 4 && (memcmp(d, "II*\0", 4) == 0 || memcmp(d, "MM\0*", 4) == 0))
        return MD_FILE_TIFF;
    if (n >= 14 && d[0] == 'B' && d[1] == 'M')
        return MD_FILE_BMP;
    if (n >= 6 && memcmp(d, "\x93NUMPY", 6) == 0)
        return MD_FILE_NPY;
    if (n >= 2 && d[0] == 'P') {
        switch (d[1]) {
        case '5': return MD_FILE_PGM;
        case '6': return MD_FILE_PPM;
        case 'f': return MD_FILE_PFM;
        case 'F': return MD_FILE_PFM3;
        case '1': case '2': case '3': case '4': case '7': return MD_FILE_PNM_ASCII;
        default: break;
        }
    }
    return MD_FILE_UNKNOWN;
}

static int is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and (when comments) '#' comments to the end of the line.
 * Returns the number of bytes skipped. */
static size_t skip_space(const uint8_t *d, size_t n, size_t *pos, int comments)
{
    size_t start = *pos;
    while (*pos < n) {
        if (is_space(d[*pos])) {
            (*pos)++;
        } else if (comments && d[*pos] == '#') {
            while (*pos < n && d[*pos] != '\n' && d[*pos] != '\r')
                (*pos)++;
        } else {
            break;
        }
    }
    return *pos - start;
}

/* Unsigned decimal, at most max; false if absent or too large. */
static int read_uint(const uint8_t *d, size_t n, size_t *pos, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    size_t start = *pos;
    while (*pos < n && d[*pos] >= '0' && d[*pos] <= '9') {
        v = v * 10 + (unsigned long)(d[*pos] - '0');
        if (v > max)
            return 0;
        (*pos)++;
    }
    *out = v;
    return *pos > start;
}

static md_status check_dims(const char *path, const char *what, unsigned long w, unsigned long h,
                            md_error *err)
{
    if (w == 0 || h == 0)
        return md_fail(err, MD_ERR_FORMAT, "%s: %s has zero size %lux%lu", path, what, w, h);
    if (w > MD_MAX_DIM || h > MD_MAX_DIM)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: %s is %lux%lu, larger than the %d limit", path,
                       what, w, h, MD_MAX_DIM);
    if ((size_t)w * (size_t)h > MD_MAX_PIXELS)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: %s of %lux%lu pixels is larger than the %zu supported", path, what, w,
                       h, MD_MAX_PIXELS);
    return MD_OK;
}

/* Width, height and maxval after the two magic bytes, each after whitespace
 * or comments; *pos ends on the byte after maxval. false when one is missing. */
static int pnm_numbers(const uint8_t *d, size_t n, size_t *pos, unsigned long *w,
                       unsigned long *h, unsigned long *maxval)
{
    *pos = 2;
    *w = *h = *maxval = 0;
    return skip_space(d, n, pos, 1) && read_uint(d, n, pos, 99999999ul, w) &&
           skip_space(d, n, pos, 1) && read_uint(d, n, pos, 99999999ul, h) &&
           skip_space(d, n, pos, 1) && read_uint(d, n, pos, 99999999ul, maxval);
}

md_status md_io_pnm_parse(const char *path, const uint8_t *d, size_t n, md_pnm_header *h,
                          md_error *err)
{
    memset(h, 0, sizeof *h);
    if (n < 2 || d[0] != 'P' || (d[1] != '5' && d[1] != '6'))
        return md_fail(err, MD_ERR_FORMAT, "%s: not a binary PGM/PPM (P5/P6) file", path);
    h->channels = d[1] == '6' ? 3 : 1;
    size_t pos;
    unsigned long w, hh, maxval;
    const char *what = h->channels == 3 ? "PPM" : "PGM";
    if (!pnm_numbers(d, n, &pos, &w, &hh, &maxval))
        return md_fail(err, MD_ERR_FORMAT, "%s: %s header is truncated or malformed", path, what);
    if (pos >= n || !is_space(d[pos]))
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: %s header must end with one whitespace byte after maxval", path, what);
    pos++;
    md_status st = check_dims(path, what, w, hh, err);
    if (st != MD_OK)
        return st;
    if (maxval == 0 || maxval > 65535)
        return md_fail(err, MD_ERR_FORMAT, "%s: %s maxval %lu is outside 1..65535", path, what,
                       maxval);
    h->width = (int)w;
    h->height = (int)hh;
    h->maxval = (unsigned)maxval;
    h->bytes_per_sample = maxval > 255 ? 2 : 1;
    h->data_offset = pos;
    size_t need;
    if (!md_mul_size((size_t)w * (size_t)hh, (size_t)h->channels * (size_t)h->bytes_per_sample,
                     &need))
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: %s is too large for this machine", path, what);
    if (n - pos < need)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: truncated %s: %zu bytes of pixel data, %lux%lu needs %zu", path, what,
                       n - pos, w, hh, need);
    return MD_OK;
}

/* Whether a file's first bytes are a 16-bit greyscale PNG (IHDR, which the
 * PNG specification puts first: bit depth 16, colour type 0) or a PGM whose
 * maxval is above 255: how RGB-D datasets store depth, not how photos come. */
int md_io_is_grey16(const uint8_t *d, size_t n)
{
    switch (md_io_sniff(d, n)) {
    case MD_FILE_PNG:
        return n >= 26 && memcmp(d + 12, "IHDR", 4) == 0 && d[24] == 16 && d[25] == 0;
    case MD_FILE_PGM: {
        size_t pos;
        unsigned long w, h, maxval;
        return pnm_numbers(d, n, &pos, &w, &h, &maxval) && maxval > 255 && maxval <= 65535;
    }
    default:
        return 0;
    }
}

md_status md_io_pfm_parse(const char *path, const uint8_t *d, size_t n, md_pfm_header *h,
                          md_error *err)
{
    memset(h, 0, sizeof *h);
    if (n < 2 || d[0] != 'P' || (d[1] != 'f' && d[1] != 'F'))
        return md_fail(err, MD_ERR_FORMAT, "%s: not a PFM file", path);
    h->channels = d[1] == 'F' ? 3 : 1;
    size_t pos = 2;
    unsigned long w, hh;
    if (!skip_space(d, n, &pos, 0) || !read_uint(d, n, &pos, 99999999ul, &w) ||
        !skip_space(d, n, &pos, 0) || !read_uint(d, n, &pos, 99999999ul, &hh) ||
        !skip_space(d, n, &pos, 0))
        return md_fail(err, MD_ERR_FORMAT, "%s: PFM header is truncated or malformed", path);
    char tok[64];
    size_t len = 0;
    while (pos < n && !is_space(d[pos]) && len < sizeof tok - 1)
        tok[len++] = (char)d[pos++];
    tok[len] = 0;
    if (len == 0 || pos >= n || !is_space(d[pos]))
        return md_fail(err, MD_ERR_FORMAT, "%s: PFM scale line is truncated or malformed", path);
    pos++;
    char *end;
    double scale = strtod(tok, &end);
    if (*end != 0 || !isfinite(scale) || scale == 0.0)
        return md_fail(err, MD_ERR_FORMAT, "%s: PFM scale '%s' is not a non-zero number", path,
                       tok);
    md_status st = check_dims(path, "PFM", w, hh, err);
    if (st != MD_OK)
        return st;
    h->width = (int)w;
    h->height = (int)hh;
    h->scale = scale;
    h->data_offset = pos;
    size_t need;
    if (!md_mul_size((size_t)w * (size_t)hh, (size_t)h->channels * 4, &need))
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: PFM is too large for this machine", path);
    if (n - pos < need)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: truncated PFM: %zu bytes of pixel data, %lux%lu needs %zu", path,
                       n - pos, w, hh, need);
    return MD_OK;
}
