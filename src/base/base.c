#include "base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
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

char *md_strdup(const char *s, const char *what, md_error *err)
{
    if (!s)
        s = "";
    size_t n = strlen(s);
    char *d = md_malloc(n + 1, what, err);
    if (d)
        memcpy(d, s, n + 1);
    return d;
}

void *md_calloc(size_t count, size_t size, const char *what, md_error *err)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        md_fail(err, MD_ERR_NOMEM, "out of memory allocating %zu x %zu bytes for %s", count, size,
                what);
    return p;
}

int md_open_regular(const char *path, size_t *size, md_error *err)
{
    /* O_NONBLOCK: opening a FIFO (or a terminal) for reading must not wait
     * for a writer; the type is checked on the open descriptor (no race with
     * a rename between a stat and the open) and blocking reads come back. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        md_fail(err, MD_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        md_fail(err, MD_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        md_fail(err, MD_ERR_IO, "%s: not a regular file (%s)", path,
                S_ISDIR(st.st_mode)    ? "a folder"
                : S_ISFIFO(st.st_mode) ? "a FIFO"
                : S_ISSOCK(st.st_mode) ? "a socket"
                                       : "a device");
        close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        md_fail(err, MD_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (size)
        *size = st.st_size > 0 ? (size_t)st.st_size : 0;
    return fd;
}

md_status md_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size,
                       md_error *err)
{
    *data = NULL;
    *size = 0;
    size_t n;
    int fd = md_open_regular(path, &n, err);
    if (fd < 0)
        return MD_ERR_IO;
    if (n > max_bytes) {
        close(fd);
        return md_fail(err, MD_ERR_NOMEM, "%s: file is %zu bytes, more than the %zu allowed", path,
                       n, max_bytes);
    }
    uint8_t *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got > ((size_t)1 << 30) ? (size_t)1 << 30 : n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            md_status st = md_fail(err, MD_ERR_IO, "%s: read error%s%s", path, r ? ": " : "",
                                   r ? strerror(errno) : " (file shrank while reading)");
            free(buf);
            close(fd);
            return st;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *data = buf;
    *size = n;
    return MD_OK;
}

md_status md_name_file(md_error *err, md_status st, const char *path)
{
    if (st == MD_OK || !err || !path || !*path || strstr(err->message, path))
        return st;
    char msg[sizeof err->message];
    size_t plen = strnlen(path, sizeof msg - 3);
    memcpy(msg, path, plen);
    memcpy(msg + plen, ": ", 2);
    size_t rest = sizeof msg - plen - 3, mlen = strnlen(err->message, rest);
    memcpy(msg + plen + 2, err->message, mlen);
    msg[plen + 2 + mlen] = '\0';
    memcpy(err->message, msg, sizeof msg);
    return st;
}

/* Six characters of a name that is new with high probability: the clock,
 * the process, the attempt and a stack address mixed (splitmix64). O_EXCL
 * makes a collision a retry, never a shared file. */
static void random_suffix(char out[7], unsigned attempt)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t z = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)out ^
                 ((uint64_t)attempt * 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    for (int i = 0; i < 6; i++) {
        out[i] = alphabet[z % 62];
        z /= 62;
    }
    out[6] = '\0';
}

md_status md_atomic_open(md_atomic_file *af, const char *path, md_error *err)
{
    memset(af, 0, sizeof *af);
    if (!path || !*path)
        return md_fail(err, MD_ERR_ARG, "cannot write a file with an empty name");
    size_t len = strlen(path);
    af->final_path = malloc(len + 1);
    af->temp_path = malloc(len + 16);
    if (!af->final_path || !af->temp_path) {
        md_atomic_abort(af);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(af->final_path, path, len + 1);
    /* "<name>.tmp.XXXXXX" beside the target; a name within 11 bytes of
     * NAME_MAX is shortened for the temporary so the target stays writable. */
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0, base_len = len - dir_len;
    if (base_len > MD_NAME_MAX - 11)
        base_len = MD_NAME_MAX - 11;
    int fd = -1, e = 0;
    for (unsigned attempt = 0; attempt < 100; attempt++) {
        char suffix[7];
        random_suffix(suffix, attempt);
        snprintf(af->temp_path, len + 16, "%.*s%.*s.tmp.%s", (int)dir_len, path, (int)base_len,
                 path + dir_len, suffix);
        /* Mode 0666: the kernel applies the process umask, as for any new file. */
        fd = open(af->temp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
        e = errno;
        if (fd >= 0 || e != EEXIST)
            break;
    }
    if (fd < 0) {
        md_status st = md_fail(err, MD_ERR_IO, "%s: cannot create file: %s", path, strerror(e));
        free(af->temp_path);
        af->temp_path = NULL;
        md_atomic_abort(af);
        return st;
    }
    af->fp = fdopen(fd, "wb");
    if (!af->fp) {
        close(fd);
        md_atomic_abort(af);
        return md_fail(err, MD_ERR_NOMEM, "%s: cannot open for writing", path);
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

uint64_t md_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

const char *md_enum_name(const char *const *names, size_t n, int i)
{
    return i >= 0 && (size_t)i < n ? names[i] : "unknown";
}

int md_enum_parse(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcasecmp(name, names[i]) == 0)
            return (int)i;
    return -1;
}

const char *md_version(void)
{
    return MD_VERSION_STRING;
}
