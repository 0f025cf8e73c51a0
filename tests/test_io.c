/* Tests of the I/O module against independent truth: files whose bytes are
 * built by hand here (PNG chunks assembled with zlib, PGM/PPM/PFM/npy headers
 * typed out), statistics of the shared data quoted from its PROVENANCE.txt,
 * and hand-computed back-projections. Every reader is also fed truncated and
 * corrupted files, and every writer an unwritable target. */
#include "check.h"
#include "metricdepth.h"
#include "metricdepth_video.h"

#include <sys/resource.h>
#include <pthread.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <libavutil/log.h>
#include <tiffio.h>
#include <webp/encode.h>
#include <zlib.h>

static char tmpdir[64];

static const char *tmp_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%.200s", tmpdir, name);
    return buf;
}

static int write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    int ok = fwrite(data, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc((size_t)len + 1);
    if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Number of entries in tmpdir whose name starts with prefix. */
static int count_prefix(const char *prefix)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ------------------------------------------------ hand-built PNG files */

static size_t png_chunk(uint8_t *out, const char *type, const uint8_t *data, size_t len)
{
    put_be32(out, (uint32_t)len);
    memcpy(out + 4, type, 4);
    if (len)
        memcpy(out + 8, data, len);
    uLong crc = crc32(0L, Z_NULL, 0);
    crc = crc32(crc, out + 4, (uInt)(len + 4));
    put_be32(out + 8 + len, (uint32_t)crc);
    return len + 12;
}

/* A PNG from its filtered scanlines (each row starts with its filter byte).
 * Returns a malloc'd buffer; *n its size. */
static uint8_t *png_build(int w, int h, int bit_depth, int color_type, const uint8_t *raw,
                          size_t raw_len, const uint8_t *plte, size_t plte_len, size_t *n)
{
    uLongf zlen = compressBound((uLong)raw_len);
    uint8_t *z = malloc(zlen);
    uint8_t *out = malloc(zlen + plte_len + 128);
    compress(z, &zlen, raw, (uLong)raw_len);
    size_t pos = 0;
    memcpy(out, "\x89PNG\r\n\x1a\n", 8);
    pos = 8;
    uint8_t ihdr[13];
    put_be32(ihdr, (uint32_t)w);
    put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = (uint8_t)bit_depth;
    ihdr[9] = (uint8_t)color_type;
    ihdr[10] = ihdr[11] = ihdr[12] = 0;
    pos += png_chunk(out + pos, "IHDR", ihdr, 13);
    if (plte)
        pos += png_chunk(out + pos, "PLTE", plte, plte_len);
    pos += png_chunk(out + pos, "IDAT", z, zlen);
    pos += png_chunk(out + pos, "IEND", NULL, 0);
    free(z);
    *n = pos;
    return out;
}

/* ----------------------------------------------- failure expectations */

static md_status try_image(const char *path, md_error *err)
{
    md_image img = {0};
    md_status st = md_image_load(path, &img, err);
    md_image_free(&img);
    return st;
}

static md_status try_depth(const char *path, md_error *err)
{
    md_depth d = {0};
    md_status st = md_depth_load(path, NULL, &d, err);
    md_depth_free(&d);
    return st;
}

static md_status try_npy(const char *path, md_error *err)
{
    md_tensor t = {0};
    md_status st = md_npy_load(path, &t, err);
    md_tensor_free(&t);
    return st;
}

typedef md_status (*loader_fn)(const char *, md_error *);

/* The loader must fail, and say which file. */
static void expect_fail(loader_fn fn, const char *path, const char *what)
{
    md_error err = {0};
    md_status st = fn(path, &err);
    CHECK_MSG(st != MD_OK, "%s: %s accepted a broken file", path, what);
    CHECK_MSG(strstr(err.message, path) != NULL, "%s: message lacks the path: %s", what,
              err.message);
}

/* Writes bytes[0..len) for several truncation lengths and checks that the
 * loader rejects every one. */
static void expect_truncations_fail(loader_fn fn, const uint8_t *bytes, size_t n, const char *what)
{
    size_t lens[] = {0, 1, 2, 5, 8, 12, 16, 33, 60, n / 4, n / 2, (n * 3) / 4, n - 16, n - 5,
                     n - 1};
    char path[512];
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        if (lens[k] >= n)
            continue;
        char name[64];
        snprintf(name, sizeof name, "trunc_%s_%zu", what, lens[k]);
        tmp_path(path, sizeof path, name);
        CHECK(write_bytes(path, bytes, lens[k]));
        expect_fail(fn, path, what);
        unlink(path);
    }
}

/* ------------------------------------------------------------ PGM/PPM */

static void test_pnm_handmade(void)
{
    md_error err = {0};
    char path[512];

    /* P5, 8-bit, 3x2, with a comment: grey replicated to RGB. */
    const char p5[] = "P5\n# a comment\n3 2\n255\n\x00\x10\x20\x80\xc0\xff";
    tmp_path(path, sizeof path, "g8.pgm");
    CHECK(write_bytes(path, p5, sizeof p5 - 1));
    md_image img = {0};
    CHECK_OK(md_image_load(path, &img, &err), &err);
    CHECK(img.width == 3 && img.height == 2);
    if (img.pixels) {
        const uint8_t want[6] = {0x00, 0x10, 0x20, 0x80, 0xc0, 0xff};
        for (int i = 0; i < 6; i++)
            CHECK(img.pixels[3 * i] == want[i] && img.pixels[3 * i + 1] == want[i] &&
                  img.pixels[3 * i + 2] == want[i]);
    }
    md_image_free(&img);
    /* An 8-bit PGM cannot be a depth map. */
    md_depth d = {0};
    CHECK(md_depth_load(path, NULL, &d, &err) == MD_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, path) && strstr(err.message, "8-bit"));

    /* P6, maxval 1000, 16-bit big-endian samples: 1000 -> 255, 500 -> 127.5 -> 128, 0 -> 0;
     * 2000 > maxval saturates to 255. */
    const uint8_t p6[] = {'P', '6', ' ', '2', ' ', '1', ' ', '1', '0', '0', '0', '\n',
                          0x03, 0xE8, 0x01, 0xF4, 0x00, 0x00, /* 1000 500 0 */
                          0x00, 0x04, 0x07, 0xD0, 0x00, 0x02}; /* 4 2000 2 */
    tmp_path(path, sizeof path, "c16.ppm");
    CHECK(write_bytes(path, p6, sizeof p6));
    CHECK_OK(md_image_load(path, &img, &err), &err);
    CHECK(img.width == 2 && img.height == 1);
    if (img.pixels) {
        CHECK(img.pixels[0] == 255 && img.pixels[1] == 128 && img.pixels[2] == 0);
        /* 4*255/1000 = 1.02 -> 1; 2*255/1000 = 0.51 -> 1 */
        CHECK(img.pixels[3] == 1 && img.pixels[4] == 255 && img.pixels[5] == 1);
    }
    md_image_free(&img);
    CHECK(md_depth_load(path, NULL, &d, &err) == MD_ERR_UNSUPPORTED); /* colour */

    /* P5 16-bit depth, 3x2: raw mm 0, 1000, 2500 / 65535, 1234, 300. */
    const uint8_t g16[] = {'P', '5', '\n', '3', ' ', '2', '\n', '6', '5', '5', '3', '5', '\n',
                           0x00, 0x00, 0x03, 0xE8, 0x09, 0xC4,
                           0xFF, 0xFF, 0x04, 0xD2, 0x01, 0x2C};
    tmp_path(path, sizeof path, "d16.pgm");
    CHECK(write_bytes(path, g16, sizeof g16));
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    CHECK(d.width == 3 && d.height == 2 && d.mask == NULL);
    if (d.data) {
        const float want[6] = {0.0f, 1.0f, 2.5f, 0.0f, 1.234f, 0.3f};
        for (int i = 0; i < 6; i++)
            CHECK_NEAR(d.data[i], want[i], 1e-6);
    }
    md_depth_free(&d);
    md_depth_read_options o = {5000.0, MD_DEPTH_PLAIN, 1};
    CHECK_OK(md_depth_load(path, &o, &d, &err), &err);
    if (d.data) {
        CHECK_NEAR(d.data[1], 0.2, 1e-6);
        CHECK_NEAR(d.data[3], 65535.0 / 5000.0, 1e-5); /* kept */
    }
    md_depth_free(&d);
    /* As an image, the 16-bit grey scales to 8 bits: 65535 -> 255, 1000 -> 3.89 -> 4. */
    CHECK_OK(md_image_load(path, &img, &err), &err);
    if (img.pixels)
        CHECK(img.pixels[3 * 3] == 255 && img.pixels[3] == 4);
    md_image_free(&img);

    /* SUN RGB-D rotation: raw 21272 = 0x5318 -> (0x5318 >> 3) | (0x5318 << 13) & 0xFFFF
     * = 0x0A63 | 0x0000 = 2659 mm (the open3d PROVENANCE example). */
    const uint8_t sun[] = {'P', '5', ' ', '2', ' ', '1', ' ', '6', '5', '5', '3', '5', ' ',
                           0x53, 0x18, 0x00, 0x09};
    /* 0x0009 -> (1) | (0x0009 << 13 = 0x12000 & 0xFFFF = 0x2000) = 8193 mm */
    tmp_path(path, sizeof path, "sun.pgm");
    CHECK(write_bytes(path, sun, sizeof sun));
    md_depth_read_options so = {0, MD_DEPTH_SUN_ROTATED, 0};
    CHECK_OK(md_depth_load(path, &so, &d, &err), &err);
    if (d.data) {
        CHECK_NEAR(d.data[0], 2.659, 1e-6);
        CHECK_NEAR(d.data[1], 8.193, 1e-6);
    }
    md_depth_free(&d);

    /* Header errors. */
    struct {
        const char *name, *bytes;
    } bad[] = {
        {"zero.pgm", "P5 0 2 255\n"},
        {"maxval0.pgm", "P5 1 1 0\nA"},
        {"maxval_big.pgm", "P5 1 1 65536\nAA"},
        {"huge.pgm", "P5 40000 1 255\n"},
        {"nomax.pgm", "P5 2 2"},
        {"letters.pgm", "P5 a b 255\n"},
        {"noterm.pgm", "P5 1 1 255"},
        {"ascii.pgm", "P2 1 1 255\n7\n"},
        {"overflow.pgm", "P5 99999999999999999999 1 255\n"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        tmp_path(path, sizeof path, bad[k].name);
        CHECK(write_bytes(path, bad[k].bytes, strlen(bad[k].bytes)));
        expect_fail(try_image, path, bad[k].name);
        expect_fail(try_depth, path, bad[k].name);
    }
    tmp_path(path, sizeof path, "d16.pgm");
    expect_truncations_fail(try_depth, g16, sizeof g16, "pgm16");
    expect_truncations_fail(try_image, p6, sizeof p6, "ppm16");
}

/* ------------------------------------------------------------------ npy */

/* A v1.0 .npy: magic, header dict padded with spaces to a 64-byte boundary. */
static size_t npy_build(uint8_t *out, const char *dict, const void *data, size_t data_len)
{
    size_t len = strlen(dict);
    size_t total = (10 + len + 1 + 63) / 64 * 64;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (uint8_t)((total - 10) & 0xFF);
    out[9] = (uint8_t)((total - 10) >> 8);
    memcpy(out + 10, dict, len);
    memset(out + 10 + len, ' ', total - 10 - len - 1);
    out[total - 1] = '\n';
    memcpy(out + total, data, data_len);
    return total + data_len;
}

static void test_npy_handmade(void)
{
    md_error err = {0};
    char path[512];
    uint8_t buf[1024];
    md_tensor t = {0};
    md_depth d = {0};

    /* <f4 (2, 3): 1.0 = 0x3F800000, -2.0 = 0xC0000000, 0.5 = 0x3F000000, little-endian. */
    const uint8_t f4[] = {0, 0, 0x80, 0x3F, 0, 0, 0, 0xC0, 0, 0, 0, 0x3F,
                          0, 0, 0x40, 0x40, 0, 0, 0xC0, 0x7F, 0, 0, 0x80, 0x7F};
    /* 3.0, NaN (0x7FC00000), +inf (0x7F800000) */
    size_t n = npy_build(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f4,
                         sizeof f4);
    tmp_path(path, sizeof path, "f4.npy");
    CHECK(write_bytes(path, buf, n));
    CHECK_OK(md_npy_load(path, &t, &err), &err);
    CHECK(t.ndim == 2 && t.shape[0] == 2 && t.shape[1] == 3 && md_tensor_numel(&t) == 6);
    if (t.data) {
        CHECK(t.data[0] == 1.0f && t.data[1] == -2.0f && t.data[2] == 0.5f && t.data[3] == 3.0f);
        CHECK(isnan(t.data[4]) && isinf(t.data[5]));
    }
    md_tensor_free(&t);
    CHECK(t.data == NULL && t.ndim == 0);
    /* As depth: float is metres; negative, NaN and inf become 0. */
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    CHECK(d.width == 3 && d.height == 2);
    if (d.data) {
        const float want[6] = {1.0f, 0.0f, 0.5f, 3.0f, 0.0f, 0.0f};
        for (int i = 0; i < 6; i++)
            CHECK(d.data[i] == want[i]);
    }
    md_depth_free(&d);
    expect_truncations_fail(try_npy, buf, n, "npyf4");
    expect_truncations_fail(try_depth, buf, n, "npyf4d");

    /* >f8 (1, 2, 2) big-endian: 1.5 = 0x3FF8000000000000, 2.25 = 0x4002000000000000,
     * 0.125 = 0x3FC0000000000000, 10 = 0x4024000000000000. Leading singleton -> 2x2 depth. */
    const uint8_t f8[] = {0x3F, 0xF8, 0, 0, 0, 0, 0, 0, 0x40, 0x02, 0, 0, 0, 0, 0, 0,
                          0x3F, 0xC0, 0, 0, 0, 0, 0, 0, 0x40, 0x24, 0, 0, 0, 0, 0, 0};
    n = npy_build(buf, "{\"descr\": \">f8\", \"fortran_order\": False, \"shape\": (1, 2, 2)}", f8,
                  sizeof f8);
    tmp_path(path, sizeof path, "f8.npy");
    CHECK(write_bytes(path, buf, n));
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    CHECK(d.width == 2 && d.height == 2);
    if (d.data)
        CHECK(d.data[0] == 1.5f && d.data[1] == 2.25f && d.data[2] == 0.125f && d.data[3] == 10.0f);
    md_depth_free(&d);

    /* <u2 (1, 1, 2, 2): 1000, 65535, 0, 4321 with the divisor. */
    const uint8_t u2[] = {0xE8, 0x03, 0xFF, 0xFF, 0x00, 0x00, 0xE1, 0x10};
    n = npy_build(buf, "{'descr': '<u2', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", u2,
                  sizeof u2);
    tmp_path(path, sizeof path, "u2.npy");
    CHECK(write_bytes(path, buf, n));
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    if (d.data) {
        CHECK_NEAR(d.data[0], 1.0, 1e-7);
        CHECK(d.data[1] == 0.0f && d.data[2] == 0.0f);
        CHECK_NEAR(d.data[3], 4.321, 1e-6);
    }
    md_depth_free(&d);
    md_depth_read_options o = {256.0, MD_DEPTH_PLAIN, 1};
    CHECK_OK(md_depth_load(path, &o, &d, &err), &err);
    if (d.data)
        CHECK_NEAR(d.data[1], 65535.0 / 256.0, 1e-4);
    md_depth_free(&d);
    CHECK_OK(md_npy_load(path, &t, &err), &err);
    CHECK(t.ndim == 4 && md_tensor_numel(&t) == 4);
    if (t.data)
        CHECK(t.data[0] == 1000.0f && t.data[1] == 65535.0f && t.data[3] == 4321.0f);
    md_tensor_free(&t);

    /* Integer dtypes to float32: |u1 (4,), <i4 (2,), >i2 (2,), <i8 (1,), |b1 (3,). */
    struct {
        const char *dict;
        uint8_t data[16];
        size_t len;
        int count;
        float want[4];
    } ints[] = {
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", {0, 1, 200, 255}, 4, 4,
         {0, 1, 200, 255}},
        {"{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
         {0xFF, 0xFF, 0xFF, 0xFF, 0x40, 0xE2, 0x01, 0x00}, 8, 2, {-1, 123456}},
        {"{'descr': '>i2', 'fortran_order': False, 'shape': (2,), }", {0x80, 0x00, 0x01, 0x02}, 4,
         2, {-32768, 258}},
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }",
         {0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}, 8, 1, {-2}},
        {"{'descr': '|b1', 'fortran_order': False, 'shape': (3,), }", {0, 1, 1}, 3, 3, {0, 1, 1}},
        {"{'descr': '<u4', 'fortran_order': False, 'shape': (), }", {7, 0, 0, 0}, 4, 1, {7}},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        n = npy_build(buf, ints[k].dict, ints[k].data, ints[k].len);
        tmp_path(path, sizeof path, "int.npy");
        CHECK(write_bytes(path, buf, n));
        CHECK_OK(md_npy_load(path, &t, &err), &err);
        CHECK((int)md_tensor_numel(&t) == ints[k].count);
        for (int i = 0; t.data && i < ints[k].count; i++)
            CHECK_MSG(t.data[i] == ints[k].want[i], "%s [%d] = %g", ints[k].dict, i,
                      (double)t.data[i]);
        md_tensor_free(&t);
    }

    /* Format version 2.0: 4-byte header length. */
    {
        const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }";
        size_t len = strlen(dict), total = (12 + len + 1 + 63) / 64 * 64;
        memcpy(buf, "\x93NUMPY\x02\x00", 8);
        put_be32(buf + 8, 0);
        buf[8] = (uint8_t)(total - 12);
        memcpy(buf + 12, dict, len);
        memset(buf + 12 + len, ' ', total - 12 - len - 1);
        buf[total - 1] = '\n';
        memcpy(buf + total, "\x00\x00\x20\x41", 4); /* 10.0 */
        tmp_path(path, sizeof path, "v2.npy");
        CHECK(write_bytes(path, buf, total + 4));
        CHECK_OK(md_npy_load(path, &t, &err), &err);
        CHECK(t.ndim == 1 && t.shape[0] == 1 && t.data && t.data[0] == 10.0f);
        md_tensor_free(&t);
    }

    /* Header errors and data length mismatches. */
    const uint8_t four[16] = {0};
    struct {
        const char *dict;
        size_t data_len;
        md_status want;
    } bad[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, MD_ERR_UNSUPPORTED},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 12, MD_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 16 + 0, MD_OK},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }", 16, MD_ERR_FORMAT},
        {"{'descr': '<f4', 'shape': (2, 2), }", 16, MD_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'x': 1}", 16, MD_ERR_FORMAT},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", 16,
         MD_ERR_FORMAT},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, MD_ERR_UNSUPPORTED},
        {"{'descr': '<f2', 'fortran_order': False, 'shape': (8,), }", 16, MD_ERR_UNSUPPORTED},
        {"{'descr': '|f4', 'fortran_order': False, 'shape': (4,), }", 16, MD_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4), }", 16, MD_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-4,), }", 16, MD_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } junk", 16, MD_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (4,), }", 16, MD_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", 16,
         MD_ERR_UNSUPPORTED},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 16,
         MD_ERR_FORMAT},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1,4), }", 16,
         MD_ERR_FORMAT},
        {"['descr', '<f4']", 16, MD_ERR_FORMAT},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        n = npy_build(buf, bad[k].dict, four, bad[k].data_len);
        tmp_path(path, sizeof path, "bad.npy");
        CHECK(write_bytes(path, buf, n));
        md_status st = md_npy_load(path, &t, &err);
        CHECK_MSG(st == bad[k].want, "%s -> %d (%s)", bad[k].dict, (int)st, err.message);
        if (bad[k].want != MD_OK)
            CHECK_MSG(strstr(err.message, path) != NULL, "message lacks path: %s", err.message);
        md_tensor_free(&t);
    }
    /* Unsupported major version, and a header length past the end of the file. */
    n = npy_build(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", four, 4);
    buf[6] = 9;
    tmp_path(path, sizeof path, "v9.npy");
    CHECK(write_bytes(path, buf, n));
    expect_fail(try_npy, path, "npy v9");
    buf[6] = 1;
    buf[9] = 0xFF;
    CHECK(write_bytes(path, buf, n));
    expect_fail(try_npy, path, "npy hlen");
    /* Depth needs a 2-D shape. */
    n = npy_build(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 2), }", four, 16);
    tmp_path(path, sizeof path, "3d.npy");
    CHECK(write_bytes(path, buf, n));
    CHECK(md_depth_load(path, NULL, &d, &err) == MD_ERR_UNSUPPORTED);
    n = npy_build(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 1), }", four, 16);
    CHECK(write_bytes(path, buf, n));
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    CHECK(d.width == 2 && d.height == 2);
    md_depth_free(&d);

    /* md_npy_save: header bytes by the spec, data little-endian float32. */
    float vals[6] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, -1.0f};
    md_tensor s = {.ndim = 2, .shape = {2, 3}, .data = vals};
    tmp_path(path, sizeof path, "saved.npy");
    CHECK_OK(md_npy_save(path, &s, &err), &err);
    size_t fn;
    uint8_t *fb = read_bytes(path, &fn);
    CHECK(fb != NULL);
    if (fb) {
        size_t hl = (size_t)fb[8] | (size_t)fb[9] << 8;
        CHECK(memcmp(fb, "\x93NUMPY\x01\x00", 8) == 0);
        CHECK((10 + hl) % 64 == 0 && fn == 10 + hl + 24);
        CHECK(fb[10 + hl - 1] == '\n');
        char hdr[256] = {0};
        memcpy(hdr, fb + 10, hl < 255 ? hl : 255);
        CHECK(strstr(hdr, "'descr': '<f4'") && strstr(hdr, "'fortran_order': False") &&
              strstr(hdr, "'shape': (2, 3)"));
        CHECK(memcmp(fb + 10 + hl, "\x00\x00\x80\x3F", 4) == 0);        /* 1.0 */
        CHECK(memcmp(fb + 10 + hl + 20, "\x00\x00\x80\xBF", 4) == 0);   /* -1.0 */
    }
    free(fb);
    CHECK_OK(md_npy_load(path, &t, &err), &err);
    CHECK(t.ndim == 2 && t.shape[0] == 2 && t.shape[1] == 3);
    for (int i = 0; t.data && i < 6; i++)
        CHECK(t.data[i] == vals[i]);
    md_tensor_free(&t);
    md_tensor one = {.ndim = 1, .shape = {6}, .data = vals};
    CHECK_OK(md_npy_save(path, &one, &err), &err);
    fb = read_bytes(path, &fn);
    if (fb) {
        char hdr[256] = {0};
        memcpy(hdr, fb + 10, 100);
        CHECK(strstr(hdr, "'shape': (6,)") != NULL);
    }
    free(fb);
    md_tensor badt = {.ndim = 9, .data = vals};
    CHECK(md_npy_save(path, &badt, &err) == MD_ERR_ARG);
    md_tensor neg = {.ndim = 1, .shape = {-1}, .data = vals};
    CHECK(md_tensor_numel(&neg) == 0);
    md_tensor scalar = {.ndim = 0, .data = vals};
    CHECK(md_tensor_numel(&scalar) == 1);
}

/* ------------------------------------------------------------------ PFM */

static void test_pfm_handmade(void)
{
    md_error err = {0};
    char path[512];
    md_depth d = {0};
    /* 2x2, little-endian (scale -1). File rows bottom-to-top: the first stored
     * row (1.0, 2.0) is the image's bottom row. */
    const uint8_t le[] = {'P', 'f', '\n', '2', ' ', '2', '\n', '-', '1', '.', '0', '\n',
                          0, 0, 0x80, 0x3F, 0, 0, 0, 0x40,  /* 1.0 2.0 (bottom) */
                          0, 0, 0x40, 0x40, 0, 0, 0x80, 0xBF}; /* 3.0 -1.0 (top) */
    tmp_path(path, sizeof path, "le.pfm");
    CHECK(write_bytes(path, le, sizeof le));
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    CHECK(d.width == 2 && d.height == 2);
    if (d.data)
        CHECK(d.data[0] == 3.0f && d.data[1] == 0.0f && d.data[2] == 1.0f && d.data[3] == 2.0f);
    md_depth_free(&d);
    expect_truncations_fail(try_depth, le, sizeof le, "pfm");

    /* 3x1 big-endian (scale 1.0): 0.25, NaN, 7.5; float depth ignores the divisor. */
    const uint8_t be[] = {'P', 'f', ' ', '3', ' ', '1', ' ', '1', '.', '0', '\n',
                          0x3E, 0x80, 0, 0, 0x7F, 0xC0, 0, 0, 0x40, 0xF0, 0, 0};
    tmp_path(path, sizeof path, "be.pfm");
    CHECK(write_bytes(path, be, sizeof be));
    md_depth_read_options o = {5000.0, MD_DEPTH_PLAIN, 0};
    CHECK_OK(md_depth_load(path, &o, &d, &err), &err);
    if (d.data)
        CHECK(d.data[0] == 0.25f && d.data[1] == 0.0f && d.data[2] == 7.5f);
    md_depth_free(&d);

    struct {
        const char *name, *header;
        size_t data_len;
        md_status want;
    } bad[] = {
        {"pf3.pfm", "PF 1 1 -1.0\n", 12, MD_ERR_UNSUPPORTED},
        {"scale0.pfm", "Pf 1 1 0.0\n", 4, MD_ERR_FORMAT},
        {"scalenan.pfm", "Pf 1 1 nan\n", 4, MD_ERR_FORMAT},
        {"scalex.pfm", "Pf 1 1 -1.0x\n", 4, MD_ERR_FORMAT},
        {"zero.pfm", "Pf 0 1 -1.0\n", 0, MD_ERR_FORMAT},
        {"huge.pfm", "Pf 1 99999 -1.0\n", 4, MD_ERR_UNSUPPORTED},
        {"nohdr.pfm", "Pf 2\n", 8, MD_ERR_FORMAT},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        uint8_t bytes[64] = {0};
        size_t len = strlen(bad[k].header);
        memcpy(bytes, bad[k].header, len);
        tmp_path(path, sizeof path, bad[k].name);
        CHECK(write_bytes(path, bytes, len + bad[k].data_len));
        md_status st = md_depth_load(path, NULL, &d, &err);
        CHECK_MSG(st == bad[k].want, "%s -> %d (%s)", bad[k].name, (int)st, err.message);
        CHECK(strstr(err.message, path) != NULL);
        md_depth_free(&d);
    }
}

/* ------------------------------------------------------------------ PNG */

static void test_png_handmade(void)
{
    md_error err = {0};
    char path[512];
    md_depth d = {0};
    md_image img = {0};
    size_t n;

    /* 16-bit grey 3x2, filter 0: 0, 1000, 65535 / 257*100, 3258, 65534. */
    const uint8_t raw16[] = {0, 0x00, 0x00, 0x03, 0xE8, 0xFF, 0xFF,
                             0, 0x64, 0x64, 0x0C, 0xBA, 0xFF, 0xFE};
    uint8_t *png = png_build(3, 2, 16, 0, raw16, sizeof raw16, NULL, 0, &n);
    tmp_path(path, sizeof path, "g16.png");
    CHECK(write_bytes(path, png, n));
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    CHECK(d.width == 3 && d.height == 2);
    if (d.data) {
        CHECK(d.data[0] == 0.0f && d.data[2] == 0.0f); /* 0 and 65535 invalid */
        CHECK_NEAR(d.data[1], 1.0, 1e-7);
        CHECK_NEAR(d.data[3], 25.7, 1e-5);
        CHECK_NEAR(d.data[4], 3.258, 1e-6);
        CHECK_NEAR(d.data[5], 65.534, 1e-4);
    }
    md_depth_free(&d);
    /* As an image: 16 -> 8 bits; 0x6464 = 257*100 -> exactly 100, 65535 -> 255. */
    CHECK_OK(md_image_load(path, &img, &err), &err);
    if (img.pixels) {
        CHECK(img.pixels[0] == 0 && img.pixels[6] == 255);
        CHECK(img.pixels[9] == 100 && img.pixels[10] == 100 && img.pixels[11] == 100);
    }
    md_image_free(&img);
    expect_truncations_fail(try_depth, png, n, "png16");
    expect_truncations_fail(try_image, png, n, "png16i");
    /* A flipped bit in IHDR (CRC mismatch) and in IDAT. */
    png[16 + 3] ^= 0x01; /* width byte */
    tmp_path(path, sizeof path, "flip_ihdr.png");
    CHECK(write_bytes(path, png, n));
    expect_fail(try_depth, path, "png ihdr flip");
    expect_fail(try_image, path, "png ihdr flip");
    png[16 + 3] ^= 0x01;
    png[8 + 25 + 10] ^= 0x40; /* inside IDAT data */
    tmp_path(path, sizeof path, "flip_idat.png");
    CHECK(write_bytes(path, png, n));
    expect_fail(try_depth, path, "png idat flip");
    expect_fail(try_image, path, "png idat flip");
    free(png);

    /* 8-bit RGB 2x2 with the Sub filter on row 1: raw (10,20,30) (15,25,35) is
     * stored as 10,20,30, 5,5,5. Row 0 uses filter 0. */
    const uint8_t rgb[] = {0, 255, 0, 0, 0, 0, 255, 1, 10, 20, 30, 5, 5, 5};
    png = png_build(2, 2, 8, 2, rgb, sizeof rgb, NULL, 0, &n);
    tmp_path(path, sizeof path, "rgb8.png");
    CHECK(write_bytes(path, png, n));
    CHECK_OK(md_image_load(path, &img, &err), &err);
    if (img.pixels) {
        const uint8_t want[12] = {255, 0, 0, 0, 0, 255, 10, 20, 30, 15, 25, 35};
        CHECK(memcmp(img.pixels, want, 12) == 0);
    }
    md_image_free(&img);
    /* Not a depth PNG: the message says why. */
    CHECK(md_depth_load(path, NULL, &d, &err) == MD_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, path) && strstr(err.message, "16-bit"));
    free(png);

    /* 8-bit grey 2x1 PNG as depth: rejected too. */
    const uint8_t g8[] = {0, 7, 9};
    png = png_build(2, 1, 8, 0, g8, sizeof g8, NULL, 0, &n);
    tmp_path(path, sizeof path, "g8.png");
    CHECK(write_bytes(path, png, n));
    CHECK(md_depth_load(path, NULL, &d, &err) == MD_ERR_UNSUPPORTED);
    free(png);

    /* Palette, 2-bit: 4 pixels, indices 0,1,2,3 packed in one byte 0b00011011. */
    const uint8_t pal[] = {1, 2, 3, 40, 50, 60, 70, 80, 90, 200, 210, 220};
    const uint8_t idx[] = {0, 0x1B};
    png = png_build(4, 1, 2, 3, idx, sizeof idx, pal, sizeof pal, &n);
    tmp_path(path, sizeof path, "pal.png");
    CHECK(write_bytes(path, png, n));
    CHECK_OK(md_image_load(path, &img, &err), &err);
    CHECK(img.width == 4 && img.height == 1);
    if (img.pixels)
        CHECK(memcmp(img.pixels, pal, 12) == 0);
    md_image_free(&img);
    free(png);

    /* Palette with a tRNS chunk (transparency is dropped, colours kept), and
     * 8-bit grey and RGB with tRNS. */
    {
        uint8_t trns_png[256];
        size_t tn = 0;
        uint8_t *base = png_build(4, 1, 2, 3, idx, sizeof idx, pal, sizeof pal, &n);
        /* insert tRNS (alpha of entries 0 and 1) before IDAT: after IHDR (33) + PLTE (24) */
        size_t cut = 8 + 25 + 12 + sizeof pal;
        memcpy(trns_png, base, cut);
        tn = cut + png_chunk(trns_png + cut, "tRNS", (const uint8_t *)"\x00\x80", 2);
        memcpy(trns_png + tn, base + cut, n - cut);
        tn += n - cut;
        free(base);
        tmp_path(path, sizeof path, "pal_trns.png");
        CHECK(write_bytes(path, trns_png, tn));
        CHECK_OK(md_image_load(path, &img, &err), &err);
        CHECK(img.width == 4 && img.height == 1 && img.pixels && memcmp(img.pixels, pal, 12) == 0);
        md_image_free(&img);

        const uint8_t g2[] = {0, 5, 6};
        base = png_build(2, 1, 8, 0, g2, sizeof g2, NULL, 0, &n);
        cut = 8 + 25;
        memcpy(trns_png, base, cut);
        tn = cut + png_chunk(trns_png + cut, "tRNS", (const uint8_t *)"\x00\x05", 2);
        memcpy(trns_png + tn, base + cut, n - cut);
        tn += n - cut;
        free(base);
        tmp_path(path, sizeof path, "g_trns.png");
        CHECK(write_bytes(path, trns_png, tn));
        CHECK_OK(md_image_load(path, &img, &err), &err);
        CHECK(img.pixels && img.pixels[0] == 5 && img.pixels[3] == 6 && img.pixels[5] == 6);
        md_image_free(&img);

        base = png_build(2, 2, 8, 2, rgb, sizeof rgb, NULL, 0, &n);
        memcpy(trns_png, base, cut);
        tn = cut + png_chunk(trns_png + cut, "tRNS", (const uint8_t *)"\x00\xff\x00\x00\x00\x00", 6);
        memcpy(trns_png + tn, base + cut, n - cut);
        tn += n - cut;
        free(base);
        tmp_path(path, sizeof path, "rgb_trns.png");
        CHECK(write_bytes(path, trns_png, tn));
        CHECK_OK(md_image_load(path, &img, &err), &err);
        const uint8_t want[12] = {255, 0, 0, 0, 0, 255, 10, 20, 30, 15, 25, 35};
        CHECK(img.pixels && memcmp(img.pixels, want, 12) == 0);
        md_image_free(&img);
    }

    /* Grey+alpha 8-bit (alpha dropped) and RGBA 16-bit (scaled, alpha dropped). */
    const uint8_t ga[] = {0, 77, 0, 99, 255};
    png = png_build(2, 1, 8, 4, ga, sizeof ga, NULL, 0, &n);
    tmp_path(path, sizeof path, "ga.png");
    CHECK(write_bytes(path, png, n));
    CHECK_OK(md_image_load(path, &img, &err), &err);
    if (img.pixels)
        CHECK(img.pixels[0] == 77 && img.pixels[2] == 77 && img.pixels[3] == 99 &&
              img.pixels[5] == 99);
    md_image_free(&img);
    free(png);
    const uint8_t rgba16[] = {0, 0x01, 0x01, 0x80, 0x80, 0xFF, 0xFF, 0x00, 0x00};
    png = png_build(1, 1, 16, 6, rgba16, sizeof rgba16, NULL, 0, &n);
    tmp_path(path, sizeof path, "rgba16.png");
    CHECK(write_bytes(path, png, n));
    CHECK_OK(md_image_load(path, &img, &err), &err);
    if (img.pixels) /* 257 -> 1, 0x8080 = 257*128 -> 128, 65535 -> 255 */
        CHECK(img.pixels[0] == 1 && img.pixels[1] == 128 && img.pixels[2] == 255);
    md_image_free(&img);
    free(png);

    /* A header claiming 30000x30000 in a tiny file: rejected without allocating. */
    const uint8_t one[] = {0, 0};
    png = png_build(30000, 30000, 8, 0, one, sizeof one, NULL, 0, &n);
    tmp_path(path, sizeof path, "big.png");
    CHECK(write_bytes(path, png, n));
    expect_fail(try_image, path, "png huge");
    free(png);
    png = png_build(40000, 1, 8, 0, one, sizeof one, NULL, 0, &n);
    CHECK(write_bytes(path, png, n));
    expect_fail(try_image, path, "png too wide");
    free(png);
}

/* ----------------------------------------------------------------- JPEG */

/* The test's own JPEG encoder: a solid colour through libjpeg's compressor. */
static uint8_t *jpeg_solid(int w, int h, const uint8_t rgb[3], int progressive, int cmyk,
                           unsigned long *n)
{
    int comps = cmyk ? 4 : 3;
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    jpeg_mem_dest(&c, &out, n);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    if (progressive)
        jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * (size_t)comps);
    for (int x = 0; x < w; x++) {
        memcpy(row + comps * x, rgb, 3);
        if (cmyk)
            row[comps * x + 3] = 0;
    }
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return out;
}

static void test_jpeg(void)
{
    md_error err = {0};
    char path[512];
    md_image img = {0};
    const uint8_t colour[3] = {200, 100, 50};
    unsigned long n = 0;
    uint8_t *jpg;
    for (int prog = 1; prog >= 0; prog--) { /* progressive, then baseline (kept) */
        jpg = jpeg_solid(37, 21, colour, prog, 0, &n);
        tmp_path(path, sizeof path, "solid.jpg");
        CHECK(write_bytes(path, jpg, n));
        CHECK_OK(md_image_load(path, &img, &err), &err);
        CHECK(img.width == 37 && img.height == 21);
        int worst = 0;
        for (size_t i = 0; img.pixels && i < 37 * 21 * 3; i++) {
            int diff = abs((int)img.pixels[i] - colour[i % 3]);
            worst = diff > worst ? diff : worst;
        }
        CHECK_MSG(worst <= 3, "worst JPEG error %d", worst);
        md_image_free(&img);
        expect_truncations_fail(try_image, jpg, n, prog ? "jpegprog" : "jpeg");
        if (prog)
            free(jpg);
    }
    /* CMYK: a clear "unsupported", not a crash or a wrong colour. */
    uint8_t *cmyk = jpeg_solid(8, 8, colour, 0, 1, &n);
    tmp_path(path, sizeof path, "cmyk.jpg");
    CHECK(write_bytes(path, cmyk, n));
    CHECK(md_image_load(path, &img, &err) == MD_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, path) && strstr(err.message, "CMYK"));
    free(cmyk);
    tmp_path(path, sizeof path, "solid.jpg");
    /* A JPEG is never depth. */
    md_depth d = {0};
    CHECK(md_depth_load(path, NULL, &d, &err) == MD_ERR_UNSUPPORTED);
    /* Garbage after the SOI marker. */
    memset(jpg + 2, 0x55, 40);
    tmp_path(path, sizeof path, "garbage.jpg");
    CHECK(write_bytes(path, jpg, n));
    expect_fail(try_image, path, "jpeg garbage");
    free(jpg);
}

/* ------------------------------------------------------------ shared data */

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

typedef struct {
    size_t valid, total;
    double min, median, max;
} depth_stats;

static depth_stats stats_of(const md_depth *d)
{
    depth_stats s = {0};
    s.total = (size_t)d->width * (size_t)d->height;
    float *v = malloc(s.total * sizeof *v);
    for (size_t i = 0; i < s.total; i++)
        if (md_depth_valid_at(d, i))
            v[s.valid++] = d->data[i];
    if (s.valid) {
        qsort(v, s.valid, sizeof *v, cmp_float);
        s.min = v[0];
        s.max = v[s.valid - 1];
        s.median = s.valid % 2 ? v[s.valid / 2] : 0.5 * (v[s.valid / 2 - 1] + v[s.valid / 2]);
    }
    free(v);
    return s;
}

static void test_shared_depth(void)
{
    md_error err = {0};
    char path[1024];
    const char *sh = check_shared_dir();
    md_depth d = {0};
    depth_stats s;

    /* NYU: 640x480 mm; PROVENANCE: 00000 min 1390 med 3258 max 6625, valid 0.67-0.75. */
    snprintf(path, sizeof path, "%s/data/nyu_demo_metric3d/depth/sync_depth_00000.png", sh);
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    CHECK(d.width == 640 && d.height == 480);
    s = stats_of(&d);
    CHECK_NEAR(s.min, 1.390, 1e-6);
    CHECK_NEAR(s.max, 6.625, 1e-6);
    CHECK_NEAR(s.median, 3.258, 0.0015);
    CHECK((double)s.valid / (double)s.total > 0.67 && (double)s.valid / (double)s.total < 0.75);
    md_depth_free(&d);
    snprintf(path, sizeof path, "%s/data/nyu_demo_metric3d/depth/sync_depth_00100.png", sh);
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    s = stats_of(&d);
    CHECK_NEAR(s.min, 0.713, 1e-6);
    CHECK_NEAR(s.max, 6.446, 1e-6);
    CHECK_NEAR(s.median, 2.479, 0.0015);
    md_depth_free(&d);

    /* UniDepth NYU: min 1653 median 3495 max 10000 mm, valid 0.681. */
    snprintf(path, sizeof path, "%s/data/nyu_demo_unidepth/depth.png", sh);
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    s = stats_of(&d);
    CHECK_NEAR(s.min, 1.653, 1e-6);
    CHECK_NEAR(s.max, 10.0, 1e-6);
    CHECK_NEAR(s.median, 3.495, 0.0015);
    CHECK_NEAR((double)s.valid / (double)s.total, 0.681, 0.001);
    md_depth_free(&d);

    /* slambook2 PGM: big-endian uint16 mm; 1.pgm valid 0.68, min 946, median 2915, max 9823. */
    snprintf(path, sizeof path, "%s/data/slambook2_kinect/ch5_rgbd/depth/1.pgm", sh);
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    CHECK(d.width == 640 && d.height == 480);
    s = stats_of(&d);
    CHECK_NEAR(s.min, 0.946, 1e-6);
    CHECK_NEAR(s.max, 9.823, 1e-6);
    CHECK_NEAR(s.median, 2.915, 0.0015);
    CHECK_NEAR((double)s.valid / (double)s.total, 0.68, 0.01);
    md_depth_free(&d);

    /* TUM (ch7): value / 5000; 1_depth.png valid 0.667, median 7510 -> 1.502 m. */
    snprintf(path, sizeof path, "%s/data/slambook2_kinect/ch7_tum/1_depth.png", sh);
    md_depth_read_options tum = {5000.0, MD_DEPTH_PLAIN, 0};
    CHECK_OK(md_depth_load(path, &tum, &d, &err), &err);
    s = stats_of(&d);
    CHECK_NEAR(s.median, 1.502, 0.0005);
    CHECK_NEAR((double)s.valid / (double)s.total, 0.667, 0.001);
    md_depth_free(&d);

    /* SUN RGB-D rotated encoding. PROVENANCE: median raw 21272 -> 2659 mm. Each
     * decoded pixel must equal the rotation formula applied in this test to the
     * raw value read with divisor 1. The median of the decoded map is not 2.659:
     * the rotation is not monotonic, and ~2.8% of the raw values have low bits
     * set (decoding to >= 8.192 m), which pulls the decoded median to ~2.72 m. */
    snprintf(path, sizeof path, "%s/data/open3d_testdata_rgbd/SUN_depth.png", sh);
    md_depth_read_options sun = {1000.0, MD_DEPTH_SUN_ROTATED, 0};
    md_depth_read_options raw = {1.0, MD_DEPTH_PLAIN, 1};
    md_depth rawd = {0};
    CHECK_OK(md_depth_load(path, &sun, &d, &err), &err);
    CHECK_OK(md_depth_load(path, &raw, &rawd, &err), &err);
    s = stats_of(&rawd);
    CHECK_NEAR(s.median, 21272.0, 8.5);
    uint32_t rm = (uint32_t)s.median & ~7u;
    CHECK(((rm >> 3) | (rm << 13 & 0xFFFFu)) == 2659);
    if (d.data && rawd.data && d.width == rawd.width && d.height == rawd.height) {
        size_t bad = 0, n = (size_t)d.width * (size_t)d.height;
        for (size_t i = 0; i < n; i++) {
            uint32_t v = (uint32_t)rawd.data[i];
            uint32_t mm = ((v >> 3) | (v << 13)) & 0xFFFFu;
            float want = mm == 65535u ? 0.0f : (float)(mm / 1000.0);
            bad += d.data[i] != want;
        }
        CHECK_MSG(bad == 0, "%zu SUN pixels differ from the rotation formula", bad);
        s = stats_of(&d);
        CHECK(s.median > 2.6 && s.median < 2.8);
    }
    md_depth_free(&d);
    md_depth_free(&rawd);

    /* KITTI: value / 256, sparse (valid 0.18-0.21), median ~13.5 m, max ~85 m. */
    snprintf(path, sizeof path, "%s/data/kitti_demo_metric3d/depth/0000000005.png", sh);
    md_depth_read_options kitti = {256.0, MD_DEPTH_PLAIN, 0};
    CHECK_OK(md_depth_load(path, &kitti, &d, &err), &err);
    CHECK(d.width == 1242 && d.height == 375);
    s = stats_of(&d);
    CHECK(s.median > 13.0 && s.median < 14.0);
    CHECK((double)s.valid / (double)s.total > 0.18 && (double)s.valid / (double)s.total < 0.21);
    CHECK(s.max > 80.0 && s.max < 86.0);
    md_depth_free(&d);

    /* 7-Scenes: 65535 is invalid by default, kept on request. */
    size_t frames_with_65535 = 0;
    for (int f = 0; f < 1000; f += 4) {
        snprintf(path, sizeof path, "%s/data/7scenes_redkitchen/frame-%06d.depth.png", sh, f);
        md_depth keep = {0};
        md_depth_read_options ko = {0, MD_DEPTH_PLAIN, 1};
        CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
        CHECK_OK(md_depth_load(path, &ko, &keep, &err), &err);
        if (!d.data || !keep.data) {
            md_depth_free(&d);
            md_depth_free(&keep);
            break;
        }
        size_t sat = 0, mismatch = 0, n = (size_t)d.width * (size_t)d.height;
        for (size_t i = 0; i < n; i++) {
            if (keep.data[i] == 65.535f) {
                sat++;
                mismatch += d.data[i] != 0.0f;
            } else {
                mismatch += d.data[i] != keep.data[i];
            }
        }
        CHECK(mismatch == 0);
        frames_with_65535 += sat > 0;
        if (f == 0) {
            s = stats_of(&d);
            CHECK(s.median > 1.0 && s.median < 3.0);
        }
        md_depth_free(&d);
        md_depth_free(&keep);
    }
    CHECK_MSG(frames_with_65535 > 0, "PROVENANCE says some 7-Scenes frames contain 65535");

    /* The NYU raw-disparity PGM (P5, maxval 65535) loads as 640x480. */
    snprintf(path, sizeof path, "%s/data/open3d_testdata_rgbd/NYU_depth.pgm", sh);
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    CHECK(d.width == 640 && d.height == 480);
    md_depth_free(&d);

    /* A real .npy: UniDepth intrinsics, float32 3x3. */
    snprintf(path, sizeof path, "%s/data/nyu_demo_unidepth/intrinsics.npy", sh);
    md_tensor t = {0};
    CHECK_OK(md_npy_load(path, &t, &err), &err);
    CHECK(t.ndim == 2 && t.shape[0] == 3 && t.shape[1] == 3);
    if (t.data && md_tensor_numel(&t) == 9) {
        CHECK_NEAR(t.data[0], 518.86, 0.01);
        CHECK_NEAR(t.data[4], 519.47, 0.01);
        CHECK_NEAR(t.data[2], 325.58, 0.01);
        CHECK_NEAR(t.data[5], 253.74, 0.01);
        CHECK_NEAR(t.data[8], 1.0, 1e-6);
    }
    md_tensor_free(&t);
}

static void test_shared_images(void)
{
    md_error err = {0};
    char path[1024];
    const char *sh = check_shared_dir();
    md_image img = {0};
    struct {
        const char *rel;
        int w, h;
    } files[] = {
        {"nyu_demo_metric3d/rgb/rgb_00000.jpg", 640, 480},
        {"nyu_demo_metric3d/rgb/rgb_00050.jpg", 640, 480},
        {"nyu_demo_unidepth/rgb.png", 640, 480},
        {"open3d_testdata_rgbd/NYU_color.ppm", 640, 480},
        {"open3d_testdata_rgbd/SUN_color.jpg", 640, 480},
        {"open3d_testdata_rgbd/TUM_color.png", 640, 480},
        {"kitti_demo_metric3d/rgb/0000000005.png", 1242, 375},
        {"slambook2_kinect/ch5_rgbd/color/1.png", 640, 480},
        {"7scenes_redkitchen/frame-000000.color.jpg", 640, 480},
        {"7scenes_redkitchen/frame-000500.color.jpg", 640, 480},
        {"sun3d_studyroom/fragment-1-rgbd-frames/frame-000935.color.png", 640, 480},
    };
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        snprintf(path, sizeof path, "%s/data/%s", sh, files[k].rel);
        if (!file_exists(path) && strstr(files[k].rel, "sun3d"))
            continue; /* the SUN3D naming is a guess; the others are documented */
        CHECK_OK(md_image_load(path, &img, &err), &err);
        CHECK_MSG(img.width == files[k].w && img.height == files[k].h, "%s: %dx%d", path,
                  img.width, img.height);
        /* A real photo is not constant: the channels vary across the image. */
        if (img.pixels) {
            size_t n = (size_t)img.width * (size_t)img.height * 3;
            uint8_t lo = 255, hi = 0;
            for (size_t i = 0; i < n; i++) {
                lo = img.pixels[i] < lo ? img.pixels[i] : lo;
                hi = img.pixels[i] > hi ? img.pixels[i] : hi;
            }
            CHECK(hi - lo > 100);
        }
        md_image_free(&img);
    }

    /* Corrupt copies of real files: truncations and header damage. */
    const char *victims[] = {"nyu_demo_metric3d/rgb/rgb_00000.jpg",
                             "nyu_demo_metric3d/depth/sync_depth_00000.png",
                             "slambook2_kinect/ch5_rgbd/depth/1.pgm",
                             "open3d_testdata_rgbd/NYU_color.ppm"};
    for (size_t k = 0; k < sizeof victims / sizeof victims[0]; k++) {
        snprintf(path, sizeof path, "%s/data/%s", sh, victims[k]);
        size_t n = 0;
        uint8_t *bytes = read_bytes(path, &n);
        CHECK(bytes != NULL && n > 1000);
        if (!bytes)
            continue;
        int is_depth = strstr(victims[k], "depth") != NULL;
        char what[32];
        snprintf(what, sizeof what, "shared%zu", k);
        expect_truncations_fail(is_depth ? try_depth : try_image, bytes, n, what);
        expect_truncations_fail(try_image, bytes, n, what);
        free(bytes);
    }
}

/* ---------------------------------------------------- depth write/read */

static void test_depth_roundtrip(void)
{
    md_error err = {0};
    char path[512];
    md_depth d = {0}, r = {0};
    CHECK_OK(md_depth_alloc(&d, 4, 2, &err), &err);
    CHECK(d.mask == NULL && d.data && d.data[7] == 0.0f);
    const float v[8] = {1.0f, 1.2344f, 1.2346f, 0.0f, 70.0f, 65.5349f, 0.0004f, 2.5f};
    memcpy(d.data, v, sizeof v);
    d.mask = calloc(8, 1);
    memset(d.mask, 1, 8);
    d.mask[7] = 0; /* 2.5 masked out */

    /* PNG: millimetres, rounded, clipped to 65534 (65535 reads as invalid),
     * invalid 0. Read back with default options: a far depth stays valid. */
    tmp_path(path, sizeof path, "rt.png");
    CHECK_OK(md_depth_save(path, &d, &err), &err);
    CHECK_OK(md_depth_load(path, NULL, &r, &err), &err);
    CHECK(r.width == 4 && r.height == 2);
    if (r.data) {
        const float want[8] = {1.0f, 1.234f, 1.235f, 0.0f, 65.534f, 65.534f, 0.0f, 0.0f};
        for (int i = 0; i < 8; i++)
            CHECK_MSG(fabsf(r.data[i] - want[i]) < 1e-6f, "[%d] %.6f != %.6f", i,
                      (double)r.data[i], (double)want[i]);
    }
    md_depth_free(&r);
    /* The saved file is a plain 16-bit greyscale PNG: check its IHDR bytes. */
    size_t n;
    uint8_t *fb = read_bytes(path, &n);
    if (fb) {
        CHECK(memcmp(fb + 12, "IHDR", 4) == 0);
        CHECK(fb[16] == 0 && fb[19] == 4 && fb[23] == 2); /* width 4, height 2 */
        CHECK(fb[24] == 16 && fb[25] == 0);                /* 16-bit, greyscale */
    }
    free(fb);

    /* npy: float32, invalid stays 0. */
    tmp_path(path, sizeof path, "rt.npy");
    CHECK_OK(md_depth_save(path, &d, &err), &err);
    CHECK_OK(md_depth_load(path, NULL, &r, &err), &err);
    if (r.data) {
        for (int i = 0; i < 7; i++)
            CHECK(r.data[i] == v[i]);
        CHECK(r.data[7] == 0.0f);
    }
    md_depth_free(&r);

    /* PFM: header bytes and bottom-to-top rows checked directly. */
    tmp_path(path, sizeof path, "rt.pfm");
    CHECK_OK(md_depth_save(path, &d, &err), &err);
    fb = read_bytes(path, &n);
    if (fb) {
        const char hdr[] = "Pf\n4 2\n-1.0\n";
        CHECK(n == strlen(hdr) + 32 && memcmp(fb, hdr, strlen(hdr)) == 0);
        /* first stored float = bottom-left pixel = 70.0 = 0x428C0000 LE */
        CHECK(memcmp(fb + strlen(hdr), "\x00\x00\x8C\x42", 4) == 0);
        /* last stored float = top-right pixel = 0.0 */
        CHECK(memcmp(fb + n - 4, "\x00\x00\x00\x00", 4) == 0);
    }
    free(fb);
    CHECK_OK(md_depth_load(path, NULL, &r, &err), &err);
    if (r.data) {
        for (int i = 0; i < 7; i++)
            CHECK(r.data[i] == v[i]);
        CHECK(r.data[7] == 0.0f);
    }
    md_depth_free(&r);

    tmp_path(path, sizeof path, "rt.tiff");
    CHECK(md_depth_save(path, &d, &err) == MD_ERR_ARG);
    CHECK(!file_exists(path));
    md_depth_free(&d);
    CHECK(d.data == NULL && d.mask == NULL);
    CHECK(md_depth_alloc(&d, 0, 5, &err) == MD_ERR_ARG);
    CHECK(md_depth_alloc(&d, 40000, 5, &err) == MD_ERR_ARG);

    /* Image save/load: exact. */
    uint8_t px[2 * 3 * 3];
    for (int i = 0; i < 18; i++)
        px[i] = (uint8_t)(i * 14 + 3);
    md_image img = {3, 2, px}, back = {0};
    tmp_path(path, sizeof path, "img.png");
    CHECK_OK(md_image_save_png(path, &img, &err), &err);
    CHECK_OK(md_image_load(path, &back, &err), &err);
    CHECK(back.width == 3 && back.height == 2 && back.pixels && memcmp(back.pixels, px, 18) == 0);
    md_image_free(&back);
}

/* ------------------------------------------------------------------ PLY */

typedef struct {
    float x, y, z;
    uint8_t r, g, b;
} ply_vertex;

/* Parses the PLY this module writes; returns the vertex count or -1. */
static long parse_ply(const char *path, ply_vertex *out, long cap)
{
    size_t n;
    uint8_t *b = read_bytes(path, &n);
    if (!b)
        return -1;
    b[n] = 0;
    const char *end = strstr((const char *)b, "end_header\n");
    long count = -1;
    const char *ev = strstr((const char *)b, "element vertex ");
    if (!end || !ev || strncmp((const char *)b, "ply\nformat binary_little_endian 1.0\n", 36) != 0 ||
        !strstr((const char *)b, "property float x\nproperty float y\nproperty float z\n"
                                 "property uchar red\nproperty uchar green\nproperty uchar blue\n")) {
        free(b);
        return -1;
    }
    count = strtol(ev + 15, NULL, 10);
    size_t off = (size_t)(end - (const char *)b) + 11;
    if (n != off + (size_t)count * 15 || count > cap) {
        free(b);
        return -1;
    }
    for (long i = 0; i < count; i++) {
        const uint8_t *p = b + off + (size_t)i * 15;
        uint32_t u[3];
        for (int k = 0; k < 3; k++)
            u[k] = (uint32_t)p[4 * k] | (uint32_t)p[4 * k + 1] << 8 |
                   (uint32_t)p[4 * k + 2] << 16 | (uint32_t)p[4 * k + 3] << 24;
        memcpy(&out[i].x, &u[0], 4);
        memcpy(&out[i].y, &u[1], 4);
        memcpy(&out[i].z, &u[2], 4);
        out[i].r = p[12];
        out[i].g = p[13];
        out[i].b = p[14];
    }
    free(b);
    return count;
}

static void test_ply(void)
{
    md_error err = {0};
    char path[512];
    md_depth d = {0};
    CHECK_OK(md_depth_alloc(&d, 4, 3, &err), &err);
    const float z[12] = {1.0f, 0.0f, 2.0f, 4.0f, NAN, 3.0f, -1.0f, 1.5f, 2.5f, 0.5f, 6.0f, 2.0f};
    memcpy(d.data, z, sizeof z);
    d.mask = malloc(12);
    memset(d.mask, 1, 12);
    d.mask[9] = 0; /* (u=1, v=2) masked */
    uint8_t px[36];
    for (int i = 0; i < 12; i++) {
        px[3 * i] = (uint8_t)(10 * i);
        px[3 * i + 1] = (uint8_t)(10 * i + 1);
        px[3 * i + 2] = (uint8_t)(255 - i);
    }
    md_image rgb = {4, 3, px};
    md_intrinsics K = {2.0, 4.0, 1.5, 1.0};
    /* Hand-computed: x = (u - 1.5) z / 2, y = (v - 1) z / 4, pixel index i = 4v + u. */
    const struct {
        int i;
        float x, y, z;
    } want[8] = {
        {0, -0.75f, -0.25f, 1.0f}, {2, 0.5f, -0.5f, 2.0f},   {3, 3.0f, -1.0f, 4.0f},
        {5, -0.75f, 0.0f, 3.0f},   {7, 1.125f, 0.0f, 1.5f},  {8, -1.875f, 0.625f, 2.5f},
        {10, 1.5f, 1.5f, 6.0f},    {11, 1.5f, 0.5f, 2.0f},
    };
    ply_vertex vx[16];
    tmp_path(path, sizeof path, "cloud.ply");
    CHECK_OK(md_pointcloud_save_ply(path, &d, &rgb, &K, 1, 0.0f, &err), &err);
    long cnt = parse_ply(path, vx, 16);
    CHECK_MSG(cnt == 8, "vertex count %ld", cnt);
    for (long k = 0; k < cnt && k < 8; k++) {
        CHECK_NEAR(vx[k].x, want[k].x, 1e-6);
        CHECK_NEAR(vx[k].y, want[k].y, 1e-6);
        CHECK_NEAR(vx[k].z, want[k].z, 1e-6);
        int i = want[k].i;
        CHECK(vx[k].r == 10 * i && vx[k].g == 10 * i + 1 && vx[k].b == 255 - i);
    }
    /* max_depth 3: drops the 4 m and 6 m points (3 m itself stays). */
    CHECK_OK(md_pointcloud_save_ply(path, &d, &rgb, &K, 1, 3.0f, &err), &err);
    CHECK(parse_ply(path, vx, 16) == 6);
    /* stride 2: rows 0, 2 x columns 0, 2 -> pixels 0, 2, 8, 10; grey without rgb. */
    CHECK_OK(md_pointcloud_save_ply(path, &d, NULL, &K, 2, 0.0f, &err), &err);
    cnt = parse_ply(path, vx, 16);
    CHECK(cnt == 4);
    if (cnt == 4) {
        CHECK_NEAR(vx[2].x, -1.875, 1e-6);
        CHECK_NEAR(vx[3].z, 6.0, 1e-6);
        CHECK(vx[0].r == 128 && vx[0].g == 128 && vx[3].b == 128);
    }
    /* Errors: size mismatch, stride 0, leaves the previous file untouched. */
    size_t before_n;
    uint8_t *before = read_bytes(path, &before_n);
    md_image small = {3, 3, px};
    CHECK(md_pointcloud_save_ply(path, &d, &small, &K, 1, 0.0f, &err) == MD_ERR_ARG);
    CHECK(md_pointcloud_save_ply(path, &d, &rgb, &K, 0, 0.0f, &err) == MD_ERR_ARG);
    md_intrinsics K0 = {0, 1, 0, 0};
    CHECK(md_pointcloud_save_ply(path, &d, &rgb, &K0, 1, 0.0f, &err) == MD_ERR_ARG);
    size_t after_n;
    uint8_t *after = read_bytes(path, &after_n);
    CHECK(before && after && before_n == after_n && memcmp(before, after, before_n) == 0);
    free(before);
    free(after);
    md_depth_free(&d);

    md_intrinsics nyu = md_intrinsics_nyu();
    CHECK(nyu.fx == 518.8579 && nyu.fy == 519.4696 && nyu.cx == 325.5824 && nyu.cy == 253.7362);
}

/* ------------------------------------------------------ unwritable paths */

static void test_unwritable(void)
{
    md_error err = {0};
    char path[512], dirpath[512];
    md_depth d = {0};
    CHECK_OK(md_depth_alloc(&d, 2, 2, &err), &err);
    d.data[0] = 1.0f;
    uint8_t px[12] = {0};
    md_image img = {2, 2, px};
    md_intrinsics K = md_intrinsics_nyu();
    float vals[2] = {1, 2};
    md_tensor t = {.ndim = 1, .shape = {2}, .data = vals};
    const char *names[] = {"out.png", "out.npy", "out.pfm", "out.ply", "img.png", "t.npy"};

    /* 1: a folder that does not exist. 2: the target is an existing folder, so
     * the final rename fails after the data was written. */
    for (int mode = 0; mode < 2; mode++) {
        for (int k = 0; k < 6; k++) {
            if (mode == 0) {
                snprintf(path, sizeof path, "%s/no-such-dir/%s", tmpdir, names[k]);
            } else {
                snprintf(dirpath, sizeof dirpath, "dir_%s", names[k]);
                tmp_path(path, sizeof path, dirpath);
                mkdir(path, 0755);
            }
            md_status st;
            switch (k) {
            case 0: case 1: case 2: st = md_depth_save(path, &d, &err); break;
            case 3: st = md_pointcloud_save_ply(path, &d, NULL, &K, 1, 0.0f, &err); break;
            case 4: st = md_image_save_png(path, &img, &err); break;
            default: st = md_npy_save(path, &t, &err); break;
            }
            CHECK_MSG(st == MD_ERR_IO, "%s -> %d", path, (int)st);
            CHECK_MSG(strstr(err.message, path) != NULL, "message lacks path: %s", err.message);
            if (mode == 1) {
                char prefix[600];
                snprintf(prefix, sizeof prefix, "dir_%s.tmp.", names[k]);
                CHECK_MSG(count_prefix(prefix) == 0, "temporary file left behind for %s", path);
                rmdir(path);
            }
        }
    }
    CHECK(count_prefix("no-such-dir") == 0);
    md_depth_free(&d);
}

/* ------------------------------------------------------ argument checks */

static void test_args(void)
{
    md_error err = {0};
    md_image img = {0};
    md_depth d = {0};
    md_tensor t = {0};
    CHECK(md_image_load(NULL, &img, &err) == MD_ERR_ARG);
    CHECK(md_image_load("x", NULL, &err) == MD_ERR_ARG);
    CHECK(md_depth_load(NULL, NULL, &d, &err) == MD_ERR_ARG);
    CHECK(md_npy_load(NULL, &t, &err) == MD_ERR_ARG);
    CHECK(md_image_load("/nonexistent/x.png", &img, &err) == MD_ERR_IO);
    CHECK(strstr(err.message, "/nonexistent/x.png") != NULL);
    md_depth_read_options bad = {-5.0, MD_DEPTH_PLAIN, 0};
    CHECK(md_depth_load("/nonexistent/x.png", &bad, &d, &err) == MD_ERR_ARG);
    CHECK(md_depth_save("x.png", NULL, &err) == MD_ERR_ARG);
    CHECK(md_image_save_png("x.png", &img, &err) == MD_ERR_ARG);
    /* NULL err is allowed everywhere. */
    CHECK(md_image_load("/nonexistent/x.png", &img, NULL) == MD_ERR_IO);
    md_image_free(NULL);
    md_depth_free(NULL);
    md_tensor_free(NULL);
    md_image_free(&img);
    md_depth_free(&d);
    md_tensor_free(&t);
    /* Empty and unknown files. */
    char path[512];
    tmp_path(path, sizeof path, "empty.bin");
    CHECK(write_bytes(path, "", 0));
    expect_fail(try_image, path, "empty");
    expect_fail(try_depth, path, "empty");
    expect_fail(try_npy, path, "empty");
    tmp_path(path, sizeof path, "text.bin");
    CHECK(write_bytes(path, "hello world\n", 12));
    expect_fail(try_image, path, "text");
    expect_fail(try_depth, path, "text");
    expect_fail(try_npy, path, "text");
}

/* --------------------------------------------- fuzz regression inputs */

static void test_regressions(void)
{
    /* Inputs that once crashed or misbehaved (see fuzz/fuzz_io.c): every
     * loader must return cleanly (OK or not) without crashing.
     * ok-palette-trns.png: 4x1 2-bit palette PNG with a tRNS chunk (made by
     * hand), once rejected because palette expansion added an alpha channel. */
    DIR *dir = opendir(MD_TEST_DATA_DIR "/io");
    if (!dir)
        return;
    struct dirent *e;
    int seen = 0;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/io/%s", MD_TEST_DATA_DIR, e->d_name);
        md_error err = {0};
        md_status st = try_image(path, &err);
        try_depth(path, &err);
        try_npy(path, &err);
        /* "ok-*" files are valid images that a reader once rejected. */
        if (strncmp(e->d_name, "ok-", 3) == 0)
            CHECK_MSG(st == MD_OK, "%s: %s", e->d_name, err.message);
        seen++;
    }
    closedir(dir);
    fprintf(stderr, "  %d regression inputs ran\n", seen);
}


/* ------------------------------------------------ batches: inputs, names */

static void touch_image(const char *path)
{
    /* a 1x1 binary PPM: enough for the byte sniffing of folder scans */
    write_bytes(path, "P6\n1 1\n255\n\x10\x20\x30", 14);
}

static const char *find_name(const md_input_list *l, const char *suffix)
{
    for (size_t i = 0; i < l->count; i++) {
        size_t n = strlen(l->items[i].path), m = strlen(suffix);
        if (n >= m && strcmp(l->items[i].path + n - m, suffix) == 0)
            return l->items[i].name;
    }
    return NULL;
}

static void test_inputs(void)
{
    md_error err = {0};
    char p[512], q[512];
    const char *dirs[] = {"in", "in/color", "in/tum", "in/sub", "in/sub/deep", "in/.hidden",
                          "other", "other/color"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        mkdir(tmp_path(p, sizeof p, dirs[i]), 0777);
    const char *imgs[] = {"in/color/1.png", "in/tum/1.png", "in/sub/b.ppm", "in/sub/a.ppm",
                          "in/sub/deep/z.ppm", "in/.hidden/h.ppm", "in/x.jpg", "in/x.png",
                          "other/color/1.png"};
    for (size_t i = 0; i < sizeof imgs / sizeof *imgs; i++)
        touch_image(tmp_path(p, sizeof p, imgs[i]));
    write_bytes(tmp_path(p, sizeof p, "in/notes.txt.bak"), "hello", 5);
    write_bytes(tmp_path(p, sizeof p, "in/clip.mp4"), "not really", 10);

    md_input_list l;
    memset(&l, 0, sizeof l);
    CHECK_OK(md_inputs_add(&l, tmp_path(p, sizeof p, "in"), &err), &err);
    /* recursive, sorted, hidden folder and non-images left out, the video kept */
    CHECK(l.count == 8);
    CHECK(l.ignored == 1);
    if (l.count == 8) {
        CHECK(strcmp(l.items[0].name, "clip.mp4") == 0 && l.items[0].kind == MD_INPUT_VIDEO);
        CHECK(strcmp(l.items[1].name, "color/1.png") == 0);
        CHECK(strcmp(l.items[2].name, "sub/a.ppm") == 0);
    }
    /* the same file again (another path to it) is kept once; a file given
     * directly is named by its file name */
    snprintf(q, sizeof q, "%s/in/../in/x.png", tmpdir);
    CHECK_OK(md_inputs_add(&l, q, &err), &err);
    CHECK_OK(md_inputs_add(&l, tmp_path(p, sizeof p, "other"), &err), &err);
    CHECK_OK(md_inputs_finish(&l, &err), &err);
    CHECK(l.duplicates == 1 && l.count == 9);
    const char *n;
    CHECK((n = find_name(&l, "in/tum/1.png")) && strcmp(n, "tum/1") == 0);
    /* "color/1" below both folders: each keeps one more parent */
    CHECK((n = find_name(&l, "in/color/1.png")) && strcmp(n, "in/color/1") == 0);
    CHECK((n = find_name(&l, "other/color/1.png")) && strcmp(n, "other/color/1") == 0);
    /* same stem, different extensions: the extension stays */
    CHECK((n = find_name(&l, "in/x.jpg")) && strcmp(n, "x.jpg") == 0);
    CHECK((n = find_name(&l, "in/x.png")) && strcmp(n, "x.png") == 0);
    CHECK((n = find_name(&l, "in/sub/deep/z.ppm")) && strcmp(n, "sub/deep/z") == 0);
    /* sorted by name, all distinct */
    for (size_t i = 1; i < l.count; i++)
        CHECK(strcmp(l.items[i - 1].name, l.items[i].name) < 0);

    /* shards: contiguous blocks, sizes 3, 3, 3 of 9, and 3, 3, 4 of 10 */
    size_t b, e;
    CHECK_OK(md_shard_range(10, 1, 3, &b, &e, &err), &err);
    CHECK(b == 0 && e == 3);
    CHECK_OK(md_shard_range(10, 3, 3, &b, &e, &err), &err);
    CHECK(b == 6 && e == 10);
    CHECK(md_shard_range(10, 4, 3, &b, &e, &err) == MD_ERR_ARG);
    CHECK(md_shard_range(10, 0, 3, &b, &e, &err) == MD_ERR_ARG);
    CHECK(md_inputs_shard(NULL, 1, 1, &err) == MD_ERR_ARG); /* not a crash */
    char first[64] = "";
    snprintf(first, sizeof first, "%s", l.items[3].name);
    CHECK_OK(md_inputs_shard(&l, 2, 3, &err), &err);
    CHECK(l.count == 3 && strcmp(l.items[0].name, first) == 0);
    md_input_list_free(&l);

    /* a list: comments, a byte order mark, paths relative to the list */
    const char list[] = "\xEF\xBB\xBF# my images\n  color/1.png  \n\nsub/a.ppm\r\n../other/color/1.png\n";
    write_bytes(tmp_path(p, sizeof p, "in/list.txt"), list, sizeof list - 1);
    memset(&l, 0, sizeof l);
    CHECK_OK(md_inputs_add(&l, tmp_path(p, sizeof p, "in/list.txt"), &err), &err);
    CHECK(l.count == 3);
    CHECK_OK(md_inputs_finish(&l, &err), &err);
    CHECK((n = find_name(&l, "in/color/1.png")) && strcmp(n, "color/1") == 0);
    CHECK((n = find_name(&l, "in/sub/a.ppm")) && strcmp(n, "sub/a") == 0);
    CHECK((n = find_name(&l, "other/color/1.png")) && strcmp(n, "other/color/1") == 0);
    /* a file given directly is named by its file name */
    CHECK_OK(md_inputs_add(&l, tmp_path(p, sizeof p, "in/sub/deep/z.ppm"), &err), &err);
    CHECK_OK(md_inputs_finish(&l, &err), &err);
    CHECK((n = find_name(&l, "in/sub/deep/z.ppm")) && strcmp(n, "z") == 0);
    md_input_list_free(&l);
    /* a missing file in a list is named with its line */
    write_bytes(tmp_path(p, sizeof p, "in/bad.txt"), "color/1.png\nnope.png\n", 21);
    memset(&l, 0, sizeof l);
    CHECK(md_inputs_add(&l, tmp_path(p, sizeof p, "in/bad.txt"), &err) == MD_ERR_IO &&
          strstr(err.message, "bad.txt:2:") && strstr(err.message, "nope.png"));
    md_input_list_free(&l);
    /* an empty folder is an error; a FIFO is listed (its reader refuses it
     * without blocking, and the batch goes on: test_cli) */
    mkdir(tmp_path(p, sizeof p, "empty"), 0777);
    memset(&l, 0, sizeof l);
    CHECK(md_inputs_add(&l, tmp_path(p, sizeof p, "empty"), &err) == MD_ERR_DATA &&
          strstr(err.message, "no image"));
    mkfifo(tmp_path(p, sizeof p, "fifo.png"), 0666);
    CHECK_OK(md_inputs_add(&l, tmp_path(p, sizeof p, "fifo.png"), &err), &err);
    CHECK(l.count == 1 && l.items[0].kind == MD_INPUT_IMAGE);
    md_input_list_free(&l);
    memset(&l, 0, sizeof l);
    /* the output folder inside an input folder is not scanned */
    CHECK_OK(md_inputs_exclude(&l, tmp_path(p, sizeof p, "in/sub"), &err), &err);
    CHECK_OK(md_inputs_add(&l, tmp_path(p, sizeof p, "in"), &err), &err);
    CHECK(l.count == 5 && find_name(&l, "sub/a.ppm") == NULL);
    md_input_list_free(&l);
}

/* The first bytes of a PNG as far as its IHDR: signature, chunk length 13,
 * "IHDR", width 2, height 2, bit depth, colour type, then zeros (the CRC is
 * not checked by a folder scan, which reads no further). */
static void write_png_head(const char *path, uint8_t bit_depth, uint8_t colour_type)
{
    uint8_t b[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                     0, 0, 0, 2, 0, 0, 0, 2, bit_depth, colour_type};
    write_bytes(path, (const char *)b, sizeof b);
}

/* Folder scans for predict leave out RGB-D datasets' depth maps (16-bit grey
 * PNG, PGM above 255) and keep every other image, 16-bit colour included. */
static void test_inputs_depth_maps(void)
{
    md_error err = {0};
    char p[512];
    const char *dirs[] = {"rgbd", "rgbd/depth", "rgbd/rgb"};
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        mkdir(tmp_path(p, sizeof p, dirs[i]), 0777);
    write_png_head(tmp_path(p, sizeof p, "rgbd/rgb/1.png"), 8, 2);     /* 8-bit RGB */
    write_png_head(tmp_path(p, sizeof p, "rgbd/depth/1.png"), 16, 0);  /* 16-bit grey */
    write_bytes(tmp_path(p, sizeof p, "rgbd/depth/2.pgm"), "P5\n# kinect\n1 1\n65535\n\1\2",
                sizeof "P5\n# kinect\n1 1\n65535\n\1\2" - 1);
    write_bytes(tmp_path(p, sizeof p, "rgbd/grey8.pgm"), "P5 1 1 255\n\7", 12);
    write_png_head(tmp_path(p, sizeof p, "rgbd/rgb16.png"), 16, 2);    /* 16-bit RGB */
    write_png_head(tmp_path(p, sizeof p, "rgbd/ga16.png"), 16, 4);     /* 16-bit grey + alpha */
    write_png_head(tmp_path(p, sizeof p, "rgbd/grey8.png"), 8, 0);     /* 8-bit grey */

    md_input_list l;
    memset(&l, 0, sizeof l);
    CHECK_OK(md_inputs_add(&l, tmp_path(p, sizeof p, "rgbd"), &err), &err);
    CHECK(l.count == 7 && l.depth_maps == 0); /* not asked: every image */
    md_input_list_free(&l);

    memset(&l, 0, sizeof l);
    l.skip_depth_maps = 1;
    CHECK_OK(md_inputs_add(&l, tmp_path(p, sizeof p, "rgbd"), &err), &err);
    CHECK(l.count == 5 && l.depth_maps == 2);
    CHECK(find_name(&l, "depth/1.png") == NULL && find_name(&l, "depth/2.pgm") == NULL);
    CHECK(find_name(&l, "rgbd/rgb16.png") && find_name(&l, "rgbd/grey8.pgm"));
    size_t n = l.first_depth_map ? strlen(l.first_depth_map) : 0;
    CHECK(n > 11 && strcmp(l.first_depth_map + n - 11, "depth/1.png") == 0);
    /* named directly, a depth map is the user's choice: kept */
    CHECK_OK(md_inputs_add(&l, tmp_path(p, sizeof p, "rgbd/depth/1.png"), &err), &err);
    CHECK(l.count == 6 && l.depth_maps == 2);
    /* a folder of depth maps alone: an error that says why */
    CHECK(md_inputs_add(&l, tmp_path(p, sizeof p, "rgbd/depth"), &err) == MD_ERR_DATA &&
          strstr(err.message, "only 2 16-bit grey images"));
    md_input_list_free(&l);

    /* real datasets: Kinect PGMs beside 8-bit colour PNGs (slambook2), and
     * Open3D's NYU PGM, SUN and TUM 16-bit PNGs beside PPM, JPEG and PNG photos */
    char dir[1024];
    memset(&l, 0, sizeof l);
    l.skip_depth_maps = 1;
    snprintf(dir, sizeof dir, "%s/data/slambook2_kinect/ch5_rgbd", check_shared_dir());
    CHECK_OK(md_inputs_add(&l, dir, &err), &err);
    CHECK(l.count == 5 && l.depth_maps == 5);
    snprintf(dir, sizeof dir, "%s/data/open3d_testdata_rgbd", check_shared_dir());
    CHECK_OK(md_inputs_add(&l, dir, &err), &err);
    CHECK(l.count == 8 && l.depth_maps == 8);
    CHECK(find_name(&l, "TUM_color.png") && find_name(&l, "NYU_color.ppm") &&
          find_name(&l, "SUN_color.jpg") && !find_name(&l, "TUM_depth.png"));
    md_input_list_free(&l);
}

/* ------------------------------------------------------------ output sets */

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void test_output_sets(void)
{
    md_error err = {0};
    char dir[256], p[1024];
    tmp_path(dir, sizeof dir, "sets/out");
    md_output_dir *od = NULL;
    md_output_dir_report rep;
    CHECK_OK(md_output_dir_open(dir, &od, &rep, &err), &err);
    if (!od)
        return;
    CHECK(rep.recovered_sets == 0 && rep.removed_files == 0);
    md_output_set *s = NULL;
    const char *a, *b;
    CHECK_OK(md_output_set_begin(od, &s, &err), &err);
    CHECK_OK(md_output_set_file(s, "sub/x.depth.npy", &a, &err), &err);
    CHECK_OK(md_output_set_file(s, "sub/x.json", &b, &err), &err);
    CHECK(strstr(a, ".npy") && strstr(b, ".json"));
    /* names that leave the folder, or repeat, are refused */
    const char *c;
    CHECK(md_output_set_file(s, "../escape.png", &c, &err) == MD_ERR_ARG);
    CHECK(md_output_set_file(s, "/abs.png", &c, &err) == MD_ERR_ARG);
    CHECK(md_output_set_file(s, "sub/x.json", &c, &err) == MD_ERR_ARG);
    write_bytes(a, "A", 1);
    write_bytes(b, "B", 1);
    snprintf(p, sizeof p, "%s/sub", dir);
    CHECK(!file_exists(p)); /* nothing visible before the commit */
    CHECK_OK(md_output_set_commit(s, &err), &err);
    snprintf(p, sizeof p, "%s/sub/x.depth.npy", dir);
    CHECK(file_exists(p));
    snprintf(p, sizeof p, "%s/sub/x.json", dir);
    CHECK(file_exists(p));
    /* a set with a file never written does not commit, and leaves nothing */
    CHECK_OK(md_output_set_begin(od, &s, &err), &err);
    CHECK_OK(md_output_set_file(s, "y.png", &a, &err), &err);
    CHECK_OK(md_output_set_file(s, "y.json", &b, &err), &err);
    write_bytes(a, "A", 1);
    CHECK(md_output_set_commit(s, &err) == MD_ERR_IO && strstr(err.message, "y.json"));
    snprintf(p, sizeof p, "%s/y.png", dir);
    CHECK(!file_exists(p));
    /* an aborted set leaves nothing */
    CHECK_OK(md_output_set_begin(od, &s, &err), &err);
    CHECK_OK(md_output_set_file(s, "z.png", &a, &err), &err);
    write_bytes(a, "Z", 1);
    char staged[1024];
    snprintf(staged, sizeof staged, "%s", a);
    /* error messages name the final file, not the temporary */
    md_error e2 = {0};
    snprintf(e2.message, sizeof e2.message, "%.300s: disk full", staged);
    md_output_set_explain(s, &e2);
    snprintf(p, sizeof p, "%s/z.png: disk full", dir);
    CHECK_MSG(strcmp(e2.message, p) == 0, "%s", e2.message);
    md_output_set_abort(s);
    CHECK(!file_exists(staged));
    md_output_dir_close(od);
    /* the last run out leaves nothing of its own */
    snprintf(p, sizeof p, "%s/.metricdepth", dir);
    CHECK(!file_exists(p));
    CHECK(count_files(dir) == 1); /* sub/ */

    /* What a killed run leaves: a staging folder with an unlocked lock, a
     * set with its journal (decided: finished by the next run) and a set
     * without (undecided: removed). Built by hand as the format says. */
    char st[512];
    snprintf(st, sizeof st, "%s/.metricdepth", dir);
    mkdir(st, 0777);
    snprintf(p, sizeof p, "%s/run-1-dead.lock", st);
    write_bytes(p, "", 0);
    snprintf(p, sizeof p, "%s/run-1-dead", st);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/run-1-dead/1.0.k.depth.png", st);
    write_bytes(p, "K1", 2);
    snprintf(p, sizeof p, "%s/run-1-dead/1.1.k.json", st);
    write_bytes(p, "K2", 2);
    snprintf(p, sizeof p, "%s/run-1-dead/1.journal", st);
    const char journal[] = "1.0.k.depth.png\tdeep/k.depth.png\n1.1.k.json\tdeep/k.json\n";
    write_bytes(p, journal, sizeof journal - 1);
    snprintf(p, sizeof p, "%s/run-1-dead/2.0.u.png", st);
    write_bytes(p, "U", 1);
    snprintf(p, sizeof p, "%s/run-1-dead/2.0.u.png.tmp.AbC123", st);
    write_bytes(p, "T", 1);
    CHECK_OK(md_output_dir_open(dir, &od, &rep, &err), &err);
    CHECK(rep.recovered_sets == 1 && rep.recovered_files == 2);
    CHECK(rep.removed_files == 2);
    snprintf(p, sizeof p, "%s/deep/k.depth.png", dir);
    size_t n = 0;
    uint8_t *data = read_bytes(p, &n);
    CHECK(data && n == 2 && memcmp(data, "K1", 2) == 0);
    free(data);
    snprintf(p, sizeof p, "%s/u.png", dir);
    CHECK(!file_exists(p));
    snprintf(p, sizeof p, "%s/run-1-dead", st);
    CHECK(!file_exists(p));
    /* a live run's staging is left alone by another run */
    md_output_dir *od2 = NULL;
    CHECK_OK(md_output_set_begin(od, &s, &err), &err);
    CHECK_OK(md_output_set_file(s, "live.png", &a, &err), &err);
    write_bytes(a, "L", 1);
    CHECK_OK(md_output_dir_open(dir, &od2, &rep, &err), &err);
    CHECK(rep.removed_files == 0 && file_exists(a));
    CHECK_OK(md_output_set_commit(s, &err), &err);
    snprintf(p, sizeof p, "%s/live.png", dir);
    CHECK(file_exists(p));
    md_output_dir_close(od2);
    md_output_dir_close(od);
    CHECK(!file_exists(st));
    /* an output folder that cannot be created is found at once */
    tmp_path(p, sizeof p, "sets/file");
    write_bytes(p, "x", 1);
    snprintf(st, sizeof st, "%.300s/inside", p);
    CHECK(md_output_dir_open(st, &od, NULL, &err) == MD_ERR_IO && strstr(err.message, "inside"));
}

/* ------------------------------------------------ formats and orientation */

/* A W x H image whose pixel (x, y) is (10x + 1, 10y + 1, 7): every pixel says
 * where it came from. */
static void coded_image(md_image *img, int w, int h)
{
    img->width = w;
    img->height = h;
    img->pixels = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *px = img->pixels + ((size_t)y * w + x) * 3;
            px[0] = (uint8_t)(10 * x + 1);
            px[1] = (uint8_t)(10 * y + 1);
            px[2] = 7;
        }
}

/* Source pixel of output (x, y) for each orientation, from the EXIF spec's
 * pictures (row 0 / column 0 sides), worked out for a W x H stored image. */
static void exif_source(int o, int W, int H, int x, int y, int *sx, int *sy)
{
    switch (o) {
    case 1: *sx = x; *sy = y; break;
    case 2: *sx = W - 1 - x; *sy = y; break;         /* row 0 top, col 0 right */
    case 3: *sx = W - 1 - x; *sy = H - 1 - y; break; /* row 0 bottom, col 0 right */
    case 4: *sx = x; *sy = H - 1 - y; break;         /* row 0 bottom, col 0 left */
    case 5: *sx = y; *sy = x; break;                 /* row 0 left, col 0 top */
    case 6: *sx = y; *sy = H - 1 - x; break;         /* row 0 right, col 0 top */
    case 7: *sx = W - 1 - y; *sy = H - 1 - x; break; /* row 0 right, col 0 bottom */
    default: *sx = W - 1 - y; *sy = x; break;        /* 8: row 0 left, col 0 bottom */
    }
}

static void test_orientation(void)
{
    md_error err = {0};
    for (int o = 1; o <= 8; o++) {
        md_image img;
        coded_image(&img, 3, 2);
        CHECK_OK(md_image_orient(&img, o, &err), &err);
        int swap = o >= 5;
        CHECK(img.width == (swap ? 2 : 3) && img.height == (swap ? 3 : 2));
        for (int y = 0; y < img.height; y++)
            for (int x = 0; x < img.width; x++) {
                int sx, sy;
                exif_source(o, 3, 2, x, y, &sx, &sy);
                const uint8_t *px = img.pixels + ((size_t)y * img.width + x) * 3;
                CHECK_MSG(px[0] == 10 * sx + 1 && px[1] == 10 * sy + 1,
                          "orientation %d at (%d,%d)", o, x, y);
            }
        md_image_free(&img);
    }
    /* orientation 6 on a real photo: the visual top of a portrait phone
     * photo is the stored image's left column. A 16x8 JPEG, left half red,
     * right half blue, with an EXIF block spliced in after SOI. */
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je;
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    unsigned char *buf = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&ci, &buf, &size);
    ci.image_width = 16;
    ci.image_height = 8;
    ci.input_components = 3;
    ci.in_color_space = JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 95, TRUE);
    jpeg_start_compress(&ci, TRUE);
    uint8_t row[16 * 3];
    for (int x = 0; x < 16; x++) {
        row[3 * x] = x < 8 ? 250 : 5;
        row[3 * x + 1] = 5;
        row[3 * x + 2] = x < 8 ? 5 : 250;
    }
    while (ci.next_scanline < 8) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&ci, &r, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    /* APP1: "Exif\0\0", big-endian TIFF header, IFD0 with one entry:
     * tag 0x0112 (Orientation), type 3 (SHORT), count 1, value 6 */
    static const uint8_t app1[] = {0xFF, 0xE1, 0x00, 0x22, 'E', 'x', 'i', 'f', 0, 0,
                                   'M', 'M', 0, 42, 0, 0, 0, 8, 0, 1,
                                   0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0,
                                   0, 0, 0, 0};
    size_t total = size + sizeof app1;
    uint8_t *file = malloc(total);
    memcpy(file, buf, 2);
    memcpy(file + 2, app1, sizeof app1);
    memcpy(file + 2 + sizeof app1, buf + 2, size - 2);
    free(buf);
    char p[512];
    write_bytes(tmp_path(p, sizeof p, "portrait.jpg"), file, total);
    free(file);
    md_image img;
    md_image_info info;
    CHECK_OK(md_image_load_info(p, &img, &info, &err), &err);
    CHECK(info.orientation == 6 && info.width0 == 16 && info.height0 == 8);
    CHECK(img.width == 8 && img.height == 16);
    if (img.pixels && img.width == 8) {
        /* rotated clockwise: the red left half is now on top */
        const uint8_t *top = img.pixels + (2 * 8 + 4) * 3, *bottom = img.pixels + (13 * 8 + 4) * 3;
        CHECK(top[0] > 200 && top[2] < 60);
        CHECK(bottom[2] > 200 && bottom[0] < 60);
    }
    md_image_free(&img);
}

static void check_same_pixels(const md_image *a, const md_image *b, int tol, const char *what)
{
    int same = a->width == b->width && a->height == b->height && a->pixels && b->pixels;
    for (size_t i = 0; same && i < (size_t)a->width * a->height * 3; i++)
        same = abs((int)a->pixels[i] - (int)b->pixels[i]) <= tol;
    CHECK_MSG(same, "%s: pixels differ", what);
}

static void test_more_formats(void)
{
    md_error err = {0};
    char p[512];
    md_image ref, img;
    md_image_info info;
    coded_image(&ref, 5, 3);
    /* WebP, lossless: exact */
    uint8_t *webp = NULL;
    size_t n = WebPEncodeLosslessRGB(ref.pixels, 5, 3, 15, &webp);
    CHECK(n > 0);
    write_bytes(tmp_path(p, sizeof p, "x.webp"), webp, n);
    WebPFree(webp);
    CHECK_OK(md_image_load_info(p, &img, &info, &err), &err);
    CHECK(strcmp(info.format, "webp") == 0);
    check_same_pixels(&img, &ref, 0, "webp");
    md_image_free(&img);
    /* WebP truncated: an error naming the file */
    write_bytes(p, "RIFF\x20\x00\x00\x00WEBPVP8L", 16);
    CHECK(md_image_load(p, &img, &err) == MD_ERR_FORMAT && strstr(err.message, "x.webp"));
    /* TIFF through libtiff, with orientation 8 (rotate 90 counter-clockwise) */
    TIFF *t = TIFFOpen(tmp_path(p, sizeof p, "x.tif"), "w");
    CHECK(t != NULL);
    if (t) {
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, 5);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, 3);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
        TIFFSetField(t, TIFFTAG_ORIENTATION, 8);
        for (int y = 0; y < 3; y++)
            TIFFWriteScanline(t, ref.pixels + y * 15, (uint32_t)y, 0);
        TIFFClose(t);
        CHECK_OK(md_image_load_info(p, &img, &info, &err), &err);
        CHECK(strcmp(info.format, "tiff") == 0 && info.orientation == 8);
        md_image want;
        coded_image(&want, 5, 3);
        CHECK_OK(md_image_orient(&want, 8, &err), &err);
        check_same_pixels(&img, &want, 0, "tiff orientation 8");
        md_image_free(&want);
        md_image_free(&img);
    }
    /* BMP, 24-bit bottom-up, rows padded to 4 bytes: a 2x2 typed out */
    static const uint8_t bmp24[] = {
        'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0,                /* file header */
        40, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 1, 0, 24, 0, 0, 0, 0, 0, /* info header */
        16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        /* bottom row first, BGR: (0,1) blue, (1,1) green; then top: red, white */
        255, 0, 0, 0, 255, 0, 0, 0, 0, 0, 255, 255, 255, 255, 255, 0};
    write_bytes(tmp_path(p, sizeof p, "x.bmp"), bmp24, sizeof bmp24);
    CHECK_OK(md_image_load_info(p, &img, &info, &err), &err);
    CHECK(strcmp(info.format, "bmp") == 0 && img.width == 2 && img.height == 2);
    if (img.pixels && img.width == 2) {
        static const uint8_t want[12] = {255, 0, 0, 255, 255, 255, 0, 0, 255, 0, 255, 0};
        CHECK(memcmp(img.pixels, want, 12) == 0);
    }
    md_image_free(&img);
    /* 8-bit palette, top-down (negative height), 3x1: indices 2, 0, 1 */
    static const uint8_t bmp8[] = {
        'B', 'M', 70, 0, 0, 0, 0, 0, 0, 0, 66, 0, 0, 0,
        40, 0, 0, 0, 3, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 8, 0, 0, 0, 0, 0,
        4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0,
        10, 20, 30, 0, 40, 50, 60, 0, 70, 80, 90, 0, /* palette, BGRx */
        2, 0, 1, 0};
    write_bytes(tmp_path(p, sizeof p, "p.bmp"), bmp8, sizeof bmp8);
    CHECK_OK(md_image_load(p, &img, &err), &err);
    if (img.pixels && img.width == 3 && img.height == 1) {
        static const uint8_t want[9] = {90, 80, 70, 30, 20, 10, 60, 50, 40};
        CHECK(memcmp(img.pixels, want, 9) == 0);
    } else {
        CHECK(0);
    }
    md_image_free(&img);
    /* truncated pixel data, compressed BMP: errors naming the file */
    write_bytes(tmp_path(p, sizeof p, "t.bmp"), bmp24, sizeof bmp24 - 8);
    CHECK(md_image_load(p, &img, &err) == MD_ERR_FORMAT && strstr(err.message, "t.bmp"));
    uint8_t rle[sizeof bmp24];
    memcpy(rle, bmp24, sizeof rle);
    rle[30] = 1; /* BI_RLE8 */
    write_bytes(tmp_path(p, sizeof p, "r.bmp"), rle, sizeof rle);
    CHECK(md_image_load(p, &img, &err) == MD_ERR_UNSUPPORTED && strstr(err.message, "r.bmp"));
    /* a 16-bit grey PNG is reported as such (a depth map given as a photo) */
    md_depth d;
    CHECK_OK(md_depth_alloc(&d, 4, 2, &err), &err);
    for (int i = 0; i < 8; i++)
        d.data[i] = 1.0f + i;
    CHECK_OK(md_depth_save(tmp_path(p, sizeof p, "d.png"), &d, &err), &err);
    CHECK_OK(md_image_load_info(p, &img, &info, &err), &err);
    CHECK(info.channels == 1 && info.bit_depth == 16);
    md_image_free(&img);
    md_depth_free(&d);
    md_image_free(&ref);
}

/* ----------------------------------------------------------- intrinsics */

static void test_camera(void)
{
    md_error err = {0};
    /* 60 degrees across 640 pixels: f = 320 / tan(30 deg) = 554.2563 */
    md_intrinsics K = md_intrinsics_from_fov(640, 480, 60.0);
    CHECK_NEAR(K.fx, 554.25626, 1e-4);
    CHECK(K.fx == K.fy);
    CHECK_NEAR(K.cx, 319.5, 1e-12);
    CHECK_NEAR(K.cy, 239.5, 1e-12);
    /* portrait: the longer side is the height */
    K = md_intrinsics_from_fov(480, 640, 90.0);
    CHECK_NEAR(K.fx, 320.0, 1e-9); /* 320 / tan(45 deg) */
    CHECK_NEAR(K.cx, 239.5, 1e-12);
    CHECK_NEAR(md_intrinsics_fov(&K, 480, 640), 90.0, 1e-9);
    /* KITTI's camera (721.5377 at 1242x375) halved: pixel edges scale, centres
     * move by half a pixel: cx' = (609.5593 + 0.5) / 2 - 0.5 = 304.52965 */
    md_intrinsics kitti = {721.5377, 721.5377, 609.5593, 172.854};
    md_intrinsics h = md_intrinsics_resize(&kitti, 1242, 375, 621, 188);
    CHECK_NEAR(h.fx, 360.76885, 1e-9);
    CHECK_NEAR(h.cx, 304.52965, 1e-9);
    CHECK_NEAR(h.fy, 721.5377 * 188.0 / 375.0, 1e-9);
    CHECK_NEAR(h.cy, (172.854 + 0.5) * 188.0 / 375.0 - 0.5, 1e-9);
    /* parsing: four numbers, six (with the size), a 3x3 matrix from a file */
    int w, hh;
    CHECK_OK(md_intrinsics_parse("500,501,320,240", "k", &K, &w, &hh, &err), &err);
    CHECK(K.fx == 500 && K.fy == 501 && K.cx == 320 && K.cy == 240 && w == 0 && hh == 0);
    CHECK_OK(md_intrinsics_parse("500 501 320 240 640 480", "k", &K, &w, &hh, &err), &err);
    CHECK(w == 640 && hh == 480);
    char p[512];
    const char txt[] = "# camera-intrinsics.txt\n585 0 320\n0 585 240\n0 0 1\n";
    write_bytes(tmp_path(p, sizeof p, "K.txt"), txt, sizeof txt - 1);
    CHECK_OK(md_intrinsics_load(p, &K, &w, &hh, &err), &err);
    CHECK(K.fx == 585 && K.fy == 585 && K.cx == 320 && K.cy == 240);
    CHECK(md_intrinsics_parse("500,320,240", "k", &K, &w, &hh, &err) == MD_ERR_FORMAT &&
          strstr(err.message, "3 numbers"));
    CHECK(md_intrinsics_parse("1 2 3 4 5 6 7 8 9", "k", &K, &w, &hh, &err) == MD_ERR_FORMAT);
    CHECK(md_intrinsics_parse("-5,5,1,1", "k", &K, &w, &hh, &err) == MD_ERR_FORMAT);
    CHECK(md_intrinsics_parse("5,5,1,x", "k", &K, &w, &hh, &err) == MD_ERR_FORMAT);
}

/* -------------------------------------------------------------- previews */

static void test_preview_colorbar(void)
{
    md_error err = {0};
    md_depth d;
    CHECK_OK(md_depth_alloc(&d, 100, 20, &err), &err);
    for (int y = 0; y < 20; y++)
        for (int x = 0; x < 100; x++)
            d.data[y * 100 + x] = 1.0f + 3.0f * x / 99.0f; /* 1 m left, 4 m right */
    d.data[0] = 0.0f; /* invalid: black */
    md_preview_options o = md_preview_defaults();
    o.vmin = 1.0f;
    o.vmax = 4.0f;
    md_image img;
    float range[2];
    CHECK_OK(md_depth_render_preview(&d, &o, &img, range, &err), &err);
    CHECK(range[0] == 1.0f && range[1] == 4.0f);
    CHECK(img.width == 100 && img.height == 20 + 22); /* scale 1 under 480 px */
    uint8_t near[3], far[3];
    md_colormap_lookup(MD_COLORMAP_TURBO, 0.0f, near);
    md_colormap_lookup(MD_COLORMAP_TURBO, 1.0f, far);
    if (img.pixels) {
        CHECK(memcmp(img.pixels + (1 * 100 + 0) * 3, near, 3) == 0);
        CHECK(memcmp(img.pixels + (1 * 100 + 99) * 3, far, 3) == 0);
        CHECK(img.pixels[0] == 0 && img.pixels[1] == 0 && img.pixels[2] == 0);
        /* the bar: near colour at its left end, far at its right, white around */
        int y = 20 + 5;
        CHECK(memcmp(img.pixels + (y * 100 + 4) * 3, near, 3) == 0);
        CHECK(memcmp(img.pixels + (y * 100 + 95) * 3, far, 3) == 0);
        CHECK(img.pixels[(y * 100 + 1) * 3] == 255);
        /* the labels: some dark pixels in the text row */
        int ink = 0;
        for (int yy = 32; yy < 39; yy++)
            for (int x = 0; x < 50; x++)
                ink += img.pixels[(yy * 100 + x) * 3] == 0;
        CHECK(ink > 10);
    }
    md_image_free(&img);
    /* grey: near white; disparity: the ramp runs the other way (large = near) */
    o.grayscale = 1;
    o.colorbar = 0;
    CHECK_OK(md_depth_render_preview(&d, &o, &img, NULL, &err), &err);
    CHECK(img.height == 20 && img.pixels[(100 + 0) * 3] == 255 && img.pixels[(100 + 99) * 3] == 0);
    md_image_free(&img);
    o.disparity = 1;
    CHECK_OK(md_depth_render_preview(&d, &o, &img, NULL, &err), &err);
    CHECK(img.pixels[(100 + 0) * 3] == 0 && img.pixels[(100 + 99) * 3] == 255);
    md_image_free(&img);
    /* side by side: the photo on the left, unchanged */
    md_image rgb;
    coded_image(&rgb, 100, 20);
    o = md_preview_defaults();
    o.rgb = &rgb;
    CHECK_OK(md_depth_render_preview(&d, &o, &img, NULL, &err), &err);
    CHECK(img.width > 200 && memcmp(img.pixels, rgb.pixels, 300) == 0);
    md_image_free(&img);
    md_image_free(&rgb);
    md_depth_free(&d);
}

static void test_png_divisor(void)
{
    md_error err = {0};
    md_depth d;
    CHECK_OK(md_depth_alloc(&d, 3, 1, &err), &err);
    d.data[0] = 1.0f;
    d.data[1] = 70.0f;
    d.data[2] = 300.0f;
    char p[512];
    size_t clipped = 99;
    CHECK_OK(md_depth_save_png16(tmp_path(p, sizeof p, "div.png"), &d, 1000.0, &clipped, &err),
             &err);
    CHECK(clipped == 2); /* 70 m and 300 m are beyond 65.534 m */
    CHECK_OK(md_depth_save_png16(p, &d, 256.0, &clipped, &err), &err);
    CHECK(clipped == 1); /* 300 x 256 = 76800 > 65534; 70 x 256 = 17920 fits */
    md_depth back;
    md_depth_read_options ro = {.divisor = 256.0};
    CHECK_OK(md_depth_load(p, &ro, &back, &err), &err);
    if (back.data) {
        CHECK_NEAR(back.data[0], 1.0, 1e-6);
        CHECK_NEAR(back.data[1], 70.0, 1e-6);
        CHECK_NEAR(back.data[2], 65534.0 / 256.0, 1e-4);
    }
    md_depth_free(&back);
    CHECK(md_depth_save_png16(p, &d, 0.0, &clipped, &err) == MD_ERR_ARG);
    /* relative disparity goes to .disparity.* names and never into a PLY */
    md_output_dir *od = NULL;
    md_output_set *s = NULL;
    CHECK_OK(md_output_dir_open(tmp_path(p, sizeof p, "rel"), &od, NULL, &err), &err);
    CHECK_OK(md_output_set_begin(od, &s, &err), &err);
    md_write_options wo = md_write_defaults();
    wo.relative = 1;
    md_write_report rep;
    CHECK_OK(md_write_depth_set(s, "r", &d, NULL, &wo, &rep, &err), &err);
    CHECK_NEAR(rep.png_divisor, 65534.0 / 300.0, 1e-9);
    CHECK_OK(md_output_set_commit(s, &err), &err);
    CHECK(file_exists(tmp_path(p, sizeof p, "rel/r.disparity.png")));
    CHECK(file_exists(tmp_path(p, sizeof p, "rel/r.disparity.npy")));
    CHECK(!file_exists(tmp_path(p, sizeof p, "rel/r.depth.npy")));
    CHECK_OK(md_output_set_begin(od, &s, &err), &err);
    wo.outputs |= MD_OUT_PLY;
    CHECK(md_write_depth_set(s, "r2", &d, NULL, &wo, &rep, &err) == MD_ERR_ARG &&
          strstr(err.message, "relative"));
    md_output_set_abort(s);
    md_output_dir_close(od);
    unsigned f;
    char bad[16];
    CHECK(md_outputs_parse("png16,npy,ply", &f, bad, sizeof bad) == 0 &&
          f == (MD_OUT_PNG16 | MD_OUT_NPY | MD_OUT_PLY));
    CHECK(md_outputs_parse("png,jpeg", &f, bad, sizeof bad) == -1 && strcmp(bad, "jpeg") == 0);
    md_depth_free(&d);
}

/* ---------------------------------------------------------------- video */

static void test_video_roundtrip(void)
{
    md_error err = {0};
    char p[512];
    static const uint8_t colours[6][3] = {{200, 30, 30}, {30, 200, 30}, {30, 30, 200},
                                          {200, 200, 30}, {30, 200, 200}, {128, 128, 128}};
    md_video_writer *w = NULL;
    CHECK_OK(md_video_writer_open(tmp_path(p, sizeof p, "v.mp4"), 64, 48, 5.0, &w, &err), &err);
    if (!w)
        return;
    md_image img = {64, 48, malloc(64 * 48 * 3)};
    for (int f = 0; f < 6; f++) {
        for (int i = 0; i < 64 * 48; i++)
            memcpy(img.pixels + 3 * i, colours[f], 3);
        CHECK_OK(md_video_write(w, &img, &err), &err);
    }
    free(img.pixels);
    md_image odd = {63, 48, calloc(63 * 48, 3)};
    CHECK(md_video_write(w, &odd, &err) == MD_ERR_ARG); /* another size */
    free(odd.pixels);
    CHECK_OK(md_video_writer_close(w, &err), &err);
    md_video_reader *r = NULL;
    md_video_info vi;
    CHECK_OK(md_video_open(p, &r, &vi, &err), &err);
    if (!r)
        return;
    CHECK(vi.width == 64 && vi.height == 48);
    CHECK_NEAR(vi.fps, 5.0, 1e-6);
    int frames = 0, got = 1;
    while (got) {
        md_image f;
        CHECK_OK(md_video_read(r, &f, &got, &err), &err);
        if (!got)
            break;
        if (frames < 6 && f.pixels) {
            const uint8_t *c = f.pixels + (24 * 64 + 32) * 3;
            for (int k = 0; k < 3; k++)
                CHECK_MSG(abs((int)c[k] - (int)colours[frames][k]) <= 12, "frame %d channel %d: %d",
                          frames, k, c[k]);
        }
        md_image_free(&f);
        frames++;
    }
    CHECK_MSG(frames == 6, "%d frames back", frames);
    md_video_close(r);
    /* not a video: an error naming the file */
    write_bytes(tmp_path(p, sizeof p, "bad.mp4"), "nothing here", 12);
    CHECK(md_video_open(p, &r, &vi, &err) != MD_OK && strstr(err.message, "bad.mp4"));
}

/* Caller buffers: pixels in with a stride in every layout, depth out with
 * a stride and an invalid value; point clouds in memory by hand. */
static void test_buffers(void)
{
    md_error err = {0};
    /* a 2x2 image, stride 16: pixel (x, y) = (10x + y, 100 + x, 200 - y) */
    uint8_t buf[2 * 16];
    static const int bpp[5] = {3, 3, 4, 4, 1};
    for (int f = 0; f < 5; f++) {
        memset(buf, 0xee, sizeof buf);
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 2; x++) {
                uint8_t r = (uint8_t)(10 * x + y), g = (uint8_t)(100 + x), b = (uint8_t)(200 - y);
                uint8_t *p = buf + y * 16 + x * bpp[f];
                if (f == MD_PIXELS_RGB || f == MD_PIXELS_RGBA)
                    p[0] = r, p[1] = g, p[2] = b;
                else if (f == MD_PIXELS_BGR || f == MD_PIXELS_BGRA)
                    p[0] = b, p[1] = g, p[2] = r;
                else
                    p[0] = r;
            }
        md_image img = {0};
        CHECK_OK(md_image_from_pixels(buf, 2, 2, 16, (md_pixel_format)f, &img, &err), &err);
        for (int y = 0; y < 2 && img.pixels; y++)
            for (int x = 0; x < 2; x++) {
                const uint8_t *q = img.pixels + (y * 2 + x) * 3;
                uint8_t r = (uint8_t)(10 * x + y);
                if (f == MD_PIXELS_GRAY)
                    CHECK(q[0] == r && q[1] == r && q[2] == r);
                else
                    CHECK(q[0] == r && q[1] == 100 + x && q[2] == 200 - y);
            }
        md_image_free(&img);
    }
    md_image img = {0};
    CHECK(md_image_from_pixels(buf, 6, 2, 16, MD_PIXELS_RGB, &img, &err) == MD_ERR_ARG); /* 18 > 16 */
    CHECK(md_image_from_pixels(NULL, 2, 2, 16, MD_PIXELS_RGB, &img, NULL) == MD_ERR_ARG);
    CHECK(md_image_from_pixels(buf, 2, 2, 16, (md_pixel_format)9, &img, &err) == MD_ERR_ARG);

    md_depth d = {0};
    CHECK_OK(md_depth_alloc(&d, 3, 2, &err), &err);
    for (int i = 0; i < 6; i++)
        d.data[i] = (float)(i + 1);
    d.data[4] = 0; /* invalid */
    float out[2 * 4];
    for (int i = 0; i < 8; i++)
        out[i] = -7;
    CHECK_OK(md_depth_export(&d, out, 4 * sizeof(float), NAN, &err), &err);
    CHECK(out[0] == 1 && out[1] == 2 && out[2] == 3 && out[3] == -7); /* padding untouched */
    CHECK(out[4] == 4 && isnan(out[5]) && out[6] == 6 && out[7] == -7);
    CHECK(md_depth_export(&d, out, 2 * sizeof(float), 0, &err) == MD_ERR_ARG);

    /* the cloud of pixel (1,0) at 2 m and (0,1) at 4 m with fx 100, fy 50, cx 1, cy 0.5:
     * (0, -0.5*2/50, 2) = (0, -0.02, 2) and (-1*4/100, 0.5*4/50, 4) = (-0.04, 0.04, 4) */
    md_depth e = {0};
    CHECK_OK(md_depth_alloc(&e, 2, 2, &err), &err);
    e.data[1] = 2;
    e.data[2] = 4;
    md_intrinsics K = {100, 50, 1, 0.5};
    md_pointcloud c;
    CHECK_OK(md_pointcloud_from_depth(&e, NULL, &K, 1, 0, &c, &err), &err);
    CHECK(c.n == 2 && c.rgb == NULL);
    if (c.n == 2) {
        CHECK_NEAR(c.xyz[0], 0, 1e-7);
        CHECK_NEAR(c.xyz[1], -0.02, 1e-7);
        CHECK_NEAR(c.xyz[2], 2, 0);
        CHECK_NEAR(c.xyz[3], -0.04, 1e-7);
        CHECK_NEAR(c.xyz[4], 0.04, 1e-7);
        CHECK_NEAR(c.xyz[5], 4, 0);
    }
    md_pointcloud_free(&c);
    CHECK_OK(md_pointcloud_from_depth(&e, NULL, &K, 1, 3.0f, &c, &err), &err); /* max depth 3 */
    CHECK(c.n == 1);
    md_pointcloud_free(&c);
    CHECK(md_pointcloud_from_depth(&e, NULL, &K, 0, 0, &c, &err) == MD_ERR_ARG);
    md_depth_free(&d);
    md_depth_free(&e);
    CHECK(strcmp(md_version(), MD_VERSION_STRING) == 0);
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Small files that claim a huge area are refused before decoding (a 33 KB
 * 16384x16384 1-bit PNG once took 5.3 GB); a 16-bit PGM depth sample above
 * maxval is invalid, not used as is. */
static void test_resource_limits(void)
{
    char path[256];
    md_error err = {0};
    size_t row = 1 + 16384 / 8, raw_len = row * 16384, n;
    uint8_t *raw = calloc(raw_len, 1); /* filter 0, all black */
    uint8_t *png = raw ? png_build(16384, 16384, 1, 0, raw, raw_len, NULL, 0, &n) : NULL;
    free(raw);
    CHECK(png && n < 64 * 1024);
    CHECK(png && write_bytes(tmp_path(path, sizeof path, "huge-1bit.png"), png, n));
    free(png);
    long before = peak_rss_kb();
    md_image img = {0};
    md_status st = md_image_load(path, &img, &err);
    CHECK_MSG(st == MD_ERR_UNSUPPORTED && strstr(err.message, path) &&
                  strstr(err.message, "larger than"),
              "%d %s", (int)st, err.message);
    CHECK(img.pixels == NULL);
    CHECK_MSG(peak_rss_kb() - before < 50 * 1024, "peak memory grew by %ld MB",
              (peak_rss_kb() - before) / 1024);
    /* the same area claimed by Netpbm headers, as image and as depth */
    const char *pgm = "P5\n16384 16384\n65535\n";
    CHECK(write_bytes(tmp_path(path, sizeof path, "huge.pgm"), pgm, strlen(pgm)));
    CHECK(md_image_load(path, &img, &err) == MD_ERR_UNSUPPORTED && strstr(err.message, path));
    md_depth d = {0};
    CHECK(md_depth_load(path, NULL, &d, &err) == MD_ERR_UNSUPPORTED &&
          strstr(err.message, "larger than"));
    /* but 16384x8192 (the limit) only fails for its missing data */
    pgm = "P5\n16384 8192\n65535\n";
    CHECK(write_bytes(tmp_path(path, sizeof path, "limit.pgm"), pgm, strlen(pgm)));
    CHECK(md_depth_load(path, NULL, &d, &err) == MD_ERR_FORMAT && strstr(err.message, "truncated"));

    /* maxval 1000: samples 500 (0.5 m), 1000 (1 m), 2000 (invalid) */
    const uint8_t over[] = {'P', '5', '\n', '3', ' ', '1', '\n', '1', '0', '0', '0', '\n',
                            0x01, 0xf4, 0x03, 0xe8, 0x07, 0xd0};
    CHECK(write_bytes(tmp_path(path, sizeof path, "over.pgm"), over, sizeof over));
    CHECK_OK(md_depth_load(path, NULL, &d, &err), &err);
    if (d.data) {
        CHECK_NEAR(d.data[0], 0.5, 1e-7);
        CHECK_NEAR(d.data[1], 1.0, 1e-7);
        CHECK(d.data[2] == 0.0f);
    }
    md_depth_free(&d);
}

typedef struct {
    int id;
    md_status st;
} saver_job;

static void *save_depth_maps(void *arg)
{
    saver_job *j = arg;
    md_depth d = {0};
    md_error err = {0};
    j->st = md_depth_alloc(&d, 32, 16, &err);
    for (int i = 0; j->st == MD_OK && i < 20; i++) {
        for (int k = 0; k < 32 * 16; k++)
            d.data[k] = 0.5f + (float)(k + i);
        char path[256];
        snprintf(path, sizeof path, "%s/umask-%d-%d.%s", tmpdir, j->id, i,
                 i % 3 == 0 ? "png" : i % 3 == 1 ? "npy" : "pfm");
        j->st = md_depth_save(path, &d, &err);
    }
    md_depth_free(&d);
    return NULL;
}

/* Four threads saving depth maps at once: the process umask stays as it was
 * (the writer once set it to 0 and back, racing with the other threads) and
 * every file gets the mode the umask gives. */
static void test_concurrent_saves_umask(void)
{
    mode_t old = umask(022);
    pthread_t th[4];
    saver_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].id = i;
        jobs[i].st = MD_ERR_IO;
        CHECK(pthread_create(&th[i], NULL, save_depth_maps, &jobs[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(jobs[i].st == MD_OK);
    }
    CHECK(umask(old) == 022);
    int files = 0, right_mode = 0, temps = 0;
    DIR *dir = opendir(tmpdir);
    for (struct dirent *e; dir && (e = readdir(dir));) {
        if (strncmp(e->d_name, "umask-", 6) != 0)
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", tmpdir, e->d_name);
        struct stat st;
        files++;
        temps += strstr(e->d_name, ".tmp.") != NULL;
        right_mode += stat(path, &st) == 0 && (st.st_mode & 0777) == 0644;
        unlink(path);
    }
    if (dir)
        closedir(dir);
    CHECK_MSG(files == 80 && right_mode == 80 && temps == 0, "%d files, %d with mode 0644, %d temps",
              files, right_mode, temps);
}

int main(void)
{
    av_log_set_level(AV_LOG_FATAL); /* this program's choice: FFmpeg quiet */
    snprintf(tmpdir, sizeof tmpdir, "/tmp/md_test_io_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "cannot create a temporary folder: %s\n", strerror(errno));
        return 1;
    }
    RUN_TEST(test_pnm_handmade);
    RUN_TEST(test_npy_handmade);
    RUN_TEST(test_pfm_handmade);
    RUN_TEST(test_png_handmade);
    RUN_TEST(test_jpeg);
    RUN_TEST(test_depth_roundtrip);
    RUN_TEST(test_ply);
    RUN_TEST(test_unwritable);
    RUN_TEST(test_args);
    RUN_TEST(test_regressions);
    RUN_TEST(test_concurrent_saves_umask);
    RUN_TEST(test_resource_limits);
    RUN_TEST(test_inputs);
    RUN_TEST(test_inputs_depth_maps);
    RUN_TEST(test_output_sets);
    RUN_TEST(test_orientation);
    RUN_TEST(test_more_formats);
    RUN_TEST(test_camera);
    RUN_TEST(test_preview_colorbar);
    RUN_TEST(test_png_divisor);
    RUN_TEST(test_video_roundtrip);
    RUN_TEST(test_buffers);

    struct stat st;
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/data", check_shared_dir());
    int have_shared = stat(probe, &st) == 0;
    if (have_shared) {
        RUN_TEST(test_shared_depth);
        RUN_TEST(test_shared_images);
    } else {
        fprintf(stderr, "skip shared-data tests: %s not found\n", probe);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    int rc = check_finish();
    return rc == 0 && !have_shared ? 77 : rc;
}
