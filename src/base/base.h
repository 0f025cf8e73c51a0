/* Internal helpers shared by every module: error reporting, overflow-checked
 * sizes, whole-file reads and atomic (temp + rename) writes. */
#ifndef MD_BASE_H
#define MD_BASE_H

#include "metricdepth.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#if defined(__GNUC__)
#define MD_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define MD_PRINTF(a, b)
#endif

/* Fills err (if not NULL) and returns code, so callers can write
 * `return md_fail(err, MD_ERR_FORMAT, "%s: truncated header", path);` */
md_status md_fail(md_error *err, md_status code, const char *fmt, ...) MD_PRINTF(3, 4);

/* Largest image side and element count we accept from any file: protects
 * every allocation from hostile headers. */
#define MD_MAX_DIM 32768
#define MD_MAX_ELEMENTS ((size_t)1 << 31)
/* Largest image or depth map area (2^27 = 134 megapixels, e.g. 16384x8192):
 * a few bytes of compressed file can claim 32768x32768, and every pixel
 * costs tens of bytes on its way through decoding, depth and previews. */
#define MD_MAX_PIXELS ((size_t)1 << 27)

/* a*b into *out; false on overflow. */
bool md_mul_size(size_t a, size_t b, size_t *out);

/* malloc/calloc that report through err on failure (message names what). */
void *md_malloc(size_t bytes, const char *what, md_error *err);
/* A copy of s (NULL reads as ""), or NULL with an out-of-memory error naming what. */
char *md_strdup(const char *s, const char *what, md_error *err);
void *md_calloc(size_t count, size_t size, const char *what, md_error *err);

/* Largest file name (one path component) we create; the atomic writer keeps
 * its temporaries within it. */
#define MD_NAME_MAX 255

/* Opens path for reading without blocking on FIFOs or devices: a regular file
 * gives a (blocking) descriptor and its size; anything else fails with
 * MD_ERR_IO naming what it is. Returns -1 on failure. Every file reader goes
 * through this (or md_read_file). */
int md_open_regular(const char *path, size_t *size, md_error *err);

/* Reads a whole file (at most max_bytes) into a new buffer. */
md_status md_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size,
                       md_error *err);

/* Prefixes err's message with "path: " unless it already names path (for
 * out-of-memory and other messages from code that does not know the file).
 * Returns st unchanged. */
md_status md_name_file(md_error *err, md_status st, const char *path);

/* Atomic output: writes go to "<path>.tmp.XXXXXX" in the same folder (a new
 * file, created with O_EXCL and a random suffix, mode 0666 less the umask;
 * the name part is shortened when the target is within 11 bytes of
 * MD_NAME_MAX); commit flushes, fsyncs and renames over path; abort removes
 * the temp file. */
typedef struct {
    FILE *fp;
    char *final_path;
    char *temp_path;
} md_atomic_file;

md_status md_atomic_open(md_atomic_file *af, const char *path, md_error *err);
md_status md_atomic_commit(md_atomic_file *af, md_error *err);
void md_atomic_abort(md_atomic_file *af);

/* Lower-case file extension without the dot ("" if none), pointing into path. */
const char *md_path_extension(const char *path);
/* Case-insensitive extension test: md_path_has_ext(p, "png"). */
bool md_path_has_ext(const char *path, const char *ext);

/* splitmix64 (Steele, Lea and Flood): the next value of a 64-bit state; the
 * one small generator for seeded draws (its state is the caller's). */
uint64_t md_splitmix64(uint64_t *state);

/* Enum names: names[i] for 0 <= i < n, else "unknown"; the index of name
 * (case-insensitive) or -1 (also for NULL). */
const char *md_enum_name(const char *const *names, size_t n, int i);
int md_enum_parse(const char *const *names, size_t n, const char *name);

/* An installed data file SUB/NAME (e.g. "models", "fastdepth_7.onnx"):
 * $METRICDEPTH_DATA_DIR/SUB/NAME when that is set, else the first readable of
 * PREFIX/share/metricdepth/SUB/NAME (PREFIX: where this library or executable
 * is installed), ~/.local/share/metricdepth/SUB/NAME, SOURCE_DIR/NAME (the
 * build's source tree; may be NULL). */
md_status md_find_data_file(const char *sub, const char *name, const char *source_dir, char *buf,
                            size_t size, md_error *err);

/* Monotonic seconds, for progress and benchmarks. */
double md_now_seconds(void);

#endif
