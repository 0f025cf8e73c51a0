#include "base/base.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *md_status_name(md_status status)
{
    switch (status) {
    case MD_OK: return "ok";
    case MD_ERR_ARG: return "invalid argument";
    case MD_ERR_IO: return "i/o error";
    case MD_ERR_FORMAT: return "bad file format";
    case MD_ERR_UNSUPPORTED: return "unsupported";
    case MD_ERR_NOMEM: return "out of memory";
    case MD_ERR_DATA: return "unusable data";
    }
    return "unknown error";
}

md_status md_fail(md_error *err, md_status code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

bool md_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return false;
    *out = a * b;
    return true;
}

void *md_malloc(size_t bytes, const char *what, md_error *err)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        md_fail(err, MD_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void *md_calloc(size_t count, size_t size, const char *what, md_error *err)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        md_fail(err, MD_ERR_NOMEM, "out of memory allocating %zu x %zu bytes for %s", count, size,
                what);
    return p;
}

md_status md_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size,
                       md_error *err)
{
    *data = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return md_fail(err, MD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return md_fail(err, MD_ERR_IO, "%s: not a regular file", path);
    }
    if ((unsigned long long)st.st_size > max_bytes) {
        fclose(fp);
        return md_fail(err, MD_ERR_NOMEM, "%s: file is %lld bytes, more than the %zu allowed", path,
                       (long long)st.st_size, max_bytes);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = md_malloc(n + 1, path, err);
    if (!buf) {
        fclose(fp);
        return MD_ERR_NOMEM;
    }
    if (fread(buf, 1, n, fp) != n) {
        free(buf);
        fclose(fp);
        return md_fail(err, MD_ERR_IO, "%s: read error", path);
    }
    fclose(fp);
    buf[n] = 0;
    *data = buf;
    *size = n;
    return MD_OK;
}

md_status md_atomic_open(md_atomic_file *af, const char *path, md_error *err)
{
    memset(af, 0, sizeof *af);
    size_t len = strlen(path);
    af->final_path = md_malloc(len + 1, "path", err);
    af->temp_path = md_malloc(len + 16, "path", err);
    if (!af->final_path || !af->temp_path) {
        md_atomic_abort(af);
        return MD_ERR_NOMEM;
    }
    memcpy(af->final_path, path, len + 1);
    snprintf(af->temp_path, len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(af->temp_path);
    if (fd < 0) {
        md_status st = md_fail(err, MD_ERR_IO, "%s: cannot create file: %s", path, strerror(errno));
        free(af->temp_path);
        af->temp_path = NULL;
        md_atomic_abort(af);
        return st;
    }
    /* mkstemp creates 0600; outputs are ordinary files, so honour the umask. */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        close(fd);
        md_atomic_abort(af);
        return md_fail(err, MD_ERR_IO, "%s: cannot open for writing", path);
    }
    return MD_OK;
}

md_status md_atomic_commit(md_atomic_file *af, md_error *err)
{
    int bad = ferror(af->fp);
    if (fflush(af->fp) != 0)
        bad = 1;
    if (!bad && fsync(fileno(af->fp)) != 0)
        bad = 1;
    if (fclose(af->fp) != 0)
        bad = 1;
    af->fp = NULL;
    if (bad) {
        md_status st = md_fail(err, MD_ERR_IO, "%s: write failed: %s", af->final_path,
                               strerror(errno));
        md_atomic_abort(af);
        return st;
    }
    if (rename(af->temp_path, af->final_path) != 0) {
        md_status st = md_fail(err, MD_ERR_IO, "%s: cannot rename temporary file: %s",
                               af->final_path, strerror(errno));
        md_atomic_abort(af);
        return st;
    }
    free(af->temp_path);
    free(af->final_path);
    memset(af, 0, sizeof *af);
    return MD_OK;
}

void md_atomic_abort(md_atomic_file *af)
{
    if (af->fp)
        fclose(af->fp);
    if (af->temp_path)
        remove(af->temp_path);
    free(af->temp_path);
    free(af->final_path);
    memset(af, 0, sizeof *af);
}

const char *md_path_extension(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    if (!dot || (slash && dot < slash))
        return "";
    return dot + 1;
}

bool md_path_has_ext(const char *path, const char *ext)
{
    return strcasecmp(md_path_extension(path), ext) == 0;
}

double md_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

md_status md_file_write_atomic(const char *path, const void *data, size_t size, md_error *err)
{
    if (!path || (!data && size))
        return md_fail(err, MD_ERR_ARG, "write: no path or no data");
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    if (size && fwrite(data, 1, size, af.fp) != size) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed", path);
    }
    return md_atomic_commit(&af, err);
}

const char *md_version(void)
{
    return MD_VERSION_STRING;
}
