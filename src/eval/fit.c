/* Per-pair oracle scales, the prediction cache, trimming and the scales CSV. */
#include "eval/fit.h"

#include "base/base.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ table */

static char *dup_string(const char *s, md_error *err)
{
    size_t n = strlen(s) + 1;
    char *d = md_malloc(n, "string", err);
    if (d)
        memcpy(d, s, n);
    return d;
}

md_status md_scales_append(md_scales_table *t, const md_scales_row *row, md_error *err)
{
    if (!t || !row || !row->rgb || !row->depth)
        return md_fail(err, MD_ERR_ARG, "md_scales_append: NULL argument");
    if (t->count == t->capacity) {
        size_t cap = t->capacity ? t->capacity * 2 : 64, bytes;
        if (!md_mul_size(cap, sizeof *t->items, &bytes))
            return md_fail(err, MD_ERR_NOMEM, "scales table too large");
        md_scales_row *items = realloc(t->items, bytes);
        if (!items)
            return md_fail(err, MD_ERR_NOMEM, "out of memory for the scales table");
        t->items = items;
        t->capacity = cap;
    }
    md_scales_row r = *row;
    r.rgb = dup_string(row->rgb, err);
    r.depth = r.rgb ? dup_string(row->depth, err) : NULL;
    if (!r.rgb || !r.depth) {
        free(r.rgb);
        return MD_ERR_NOMEM;
    }
    t->items[t->count++] = r;
    return MD_OK;
}

void md_scales_free(md_scales_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->count; i++) {
        free(t->items[i].rgb);
        free(t->items[i].depth);
    }
    free(t->items);
    t->items = NULL;
    t->count = t->capacity = 0;
}

/* ------------------------------------------------------------ CSV */

static int csv_unsafe(const char *s)
{
    return strpbrk(s, ",\"\r\n") != NULL;
}

md_status md_scales_write(const char *path, const md_scales_table *t, md_error *err)
{
    if (!path || !t)
        return md_fail(err, MD_ERR_ARG, "md_scales_write: NULL argument");
    int adaptive = t->count > 0;
    for (size_t i = 0; i < t->count; i++) {
        const md_scales_row *r = &t->items[i];
        if (csv_unsafe(r->rgb) || csv_unsafe(r->depth))
            return md_fail(err, MD_ERR_DATA,
                           "%s: cannot write a path with a comma, quote or line break: %s", path,
                           csv_unsafe(r->rgb) ? r->rgb : r->depth);
        if (!r->has_adaptive)
            adaptive = 0;
    }
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    fprintf(af.fp, "%s%s\n", MD_SCALES_CSV_HEADER, adaptive ? MD_SCALES_CSV_ADAPTIVE : "");
    for (size_t i = 0; i < t->count; i++) {
        const md_scales_row *r = &t->items[i];
        char div[64];
        if (r->encoding == MD_DEPTH_SUN_ROTATED)
            snprintf(div, sizeof div, "sun");
        else
            snprintf(div, sizeof div, "%.17g", r->divisor);
        fprintf(af.fp, "%s,%s,%s,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g", r->rgb,
                r->depth, div, r->scale, r->log_scale, r->w1_before, r->w1_after,
                r->before.abs_rel, r->before.rmse, r->before.delta1, r->after.abs_rel,
                r->after.rmse, r->after.delta1);
        if (adaptive)
            fprintf(af.fp, ",%.9g,%.9g,%.9g,%.9g", r->pred_log_scale, r->adaptive.abs_rel,
                    r->adaptive.rmse, r->adaptive.delta1);
        fputc('\n', af.fp);
    }
    if (ferror(af.fp)) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed", path);
    }
    return md_atomic_commit(&af, err);
}

static int parse_number(const char *s, double *out)
{
    if (!*s)
        return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(v))
        return 0;
    *out = v;
    return 1;
}

/* Joins a relative path onto the CSV's folder (dir_len bytes of csv_path). */
static char *resolve(const char *csv_path, size_t dir_len, const char *p, md_error *err)
{
    if (p[0] == '/' || dir_len == 0)
        return dup_string(p, err);
    size_t n = dir_len + strlen(p) + 1;
    char *out = md_malloc(n, "path", err);
    if (out) {
        memcpy(out, csv_path, dir_len);
        strcpy(out + dir_len, p);
    }
    return out;
}

#define FIT_MAX_FIELDS 17

md_status md_scales_read(const char *path, md_scales_table *t, md_error *err)
{
    if (!path || !t)
        return md_fail(err, MD_ERR_ARG, "md_scales_read: NULL argument");
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, (size_t)1 << 30, &data, &size, err);
    if (st != MD_OK)
        return st;
    char *text = md_malloc(size + 1, path, err);
    if (!text) {
        free(data);
        return MD_ERR_NOMEM;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    free(data);
    if (memchr(text, '\0', size)) {
        free(text);
        return md_fail(err, MD_ERR_FORMAT, "%s:1: not a text file (NUL byte)", path);
    }
    const char *slash = strrchr(path, '/');
    size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;

    size_t start_count = t->count;
    int n_fields = 0, line_no = 0;
    char *line = text;
    st = MD_OK;
    while (line && st == MD_OK) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line_no++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        if (line_no == 1) {
            if (strcmp(line, MD_SCALES_CSV_HEADER) == 0)
                n_fields = 13;
            else if (strcmp(line, MD_SCALES_CSV_HEADER MD_SCALES_CSV_ADAPTIVE) == 0)
                n_fields = 17;
            else
                st = md_fail(err, MD_ERR_FORMAT,
                             "%s:1: not a scales CSV: the header must be '%s' (optionally with "
                             "'%s')",
                             path, MD_SCALES_CSV_HEADER, &MD_SCALES_CSV_ADAPTIVE[1]); /* without its leading comma */
            line = next;
            continue;
        }
        if (len == 0) {
            line = next;
            continue;
        }
        char *f[FIT_MAX_FIELDS + 1];
        int nf = 0;
        for (char *p = line;;) {
            if (nf <= FIT_MAX_FIELDS)
                f[nf] = p;
            nf++;
            char *c = strchr(p, ',');
            if (!c)
                break;
            *c = '\0';
            p = c + 1;
        }
        if (nf != n_fields) {
            st = md_fail(err, MD_ERR_FORMAT, "%s:%d: %d fields, expected %d", path, line_no, nf,
                         n_fields);
            break;
        }
        if (!f[0][0] || !f[1][0]) {
            st = md_fail(err, MD_ERR_FORMAT, "%s:%d: empty image path", path, line_no);
            break;
        }
        md_scales_row r;
        memset(&r, 0, sizeof r);
        if (strcmp(f[2], "sun") == 0) {
            r.encoding = MD_DEPTH_SUN_ROTATED;
            r.divisor = 1000.0;
        } else if (!parse_number(f[2], &r.divisor) || r.divisor <= 0) {
            st = md_fail(err, MD_ERR_FORMAT, "%s:%d: divisor '%s' is not a positive number or 'sun'",
                         path, line_no, f[2]);
            break;
        }
        double *num[] = {&r.scale,         &r.log_scale,      &r.w1_before,    &r.w1_after,
                         &r.before.abs_rel, &r.before.rmse,   &r.before.delta1, &r.after.abs_rel,
                         &r.after.rmse,    &r.after.delta1,   &r.pred_log_scale,
                         &r.adaptive.abs_rel, &r.adaptive.rmse, &r.adaptive.delta1};
        static const char *const names[] = {
            "scale",   "log_scale",     "w1_before",      "w1_after",         "abs_rel_before",
            "rmse_before", "delta1_before", "abs_rel_after", "rmse_after",     "delta1_after",
            "pred_log_scale", "abs_rel_adaptive", "rmse_adaptive", "delta1_adaptive"};
        for (int k = 3; k < n_fields && st == MD_OK; k++)
            if (!parse_number(f[k], num[k - 3]))
                st = md_fail(err, MD_ERR_FORMAT, "%s:%d: %s '%s' is not a finite number", path,
                             line_no, names[k - 3], f[k]);
        if (st != MD_OK)
            break;
        if (r.scale <= 0) {
            st = md_fail(err, MD_ERR_FORMAT, "%s:%d: scale %s is not positive", path, line_no,
                         f[3]);
            break;
        }
        if (fabs(log(r.scale) - r.log_scale) > 1e-4) {
            st = md_fail(err, MD_ERR_FORMAT, "%s:%d: log_scale %s is not ln(scale %s)", path,
                         line_no, f[4], f[3]);
            break;
        }
        r.has_adaptive = n_fields == 17;
        r.rgb = resolve(path, dir_len, f[0], err);
        r.depth = r.rgb ? resolve(path, dir_len, f[1], err) : NULL;
        if (!r.rgb || !r.depth) {
            free(r.rgb);
            st = MD_ERR_NOMEM;
            break;
        }
        st = md_scales_append(t, &r, err);
        free(r.rgb);
        free(r.depth);
        line = next;
    }
    if (st == MD_OK && line_no == 0)
        st = md_fail(err, MD_ERR_FORMAT, "%s:1: empty file (no header)", path);
    free(text);
    if (st != MD_OK) {
        /* leave the table as it was */
        for (size_t i = start_count; i < t->count; i++) {
            free(t->items[i].rgb);
            free(t->items[i].depth);
        }
        t->count = start_count;
    }
    return st;
}

/* ------------------------------------------------------------ hashing and cache */

uint64_t md_fnv1a64(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t md_scales_hash(const md_scales_table *t)
{
    uint64_t h = MD_FNV1A64_INIT;
    for (size_t i = 0; i < t->count; i++) {
        char num[64];
        int n = snprintf(num, sizeof num, "\t%.9g\n", t->items[i].log_scale);
        h = md_fnv1a64(h, t->items[i].rgb, strlen(t->items[i].rgb));
        h = md_fnv1a64(h, num, (size_t)n);
    }
    return h;
}

static md_status hash_file_identity(uint64_t *h, const char *path, md_error *err)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return md_fail(err, MD_ERR_IO, "%s: %s", path, strerror(errno));
    /* the path made absolute (not canonical: no realpath in strict POSIX mode) */
    char cwd[4096];
    if (path[0] != '/' && getcwd(cwd, sizeof cwd)) {
        *h = md_fnv1a64(*h, cwd, strlen(cwd));
        *h = md_fnv1a64(*h, "/", 1);
    }
    *h = md_fnv1a64(*h, path, strlen(path) + 1);
    char id[128];
    int n = snprintf(id, sizeof id, "%lld:%lld.%09ld;", (long long)sb.st_size,
                     (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec);
    *h = md_fnv1a64(*h, id, (size_t)n);
    return MD_OK;
}

md_status md_cache_key(const char *model_path, const char *rgb_path, char key[17],
                           md_error *err)
{
    return md_cache_key_variant(model_path, NULL, rgb_path, key, err);
}

md_status md_cache_key_variant(const char *model_path, const char *variant, const char *rgb_path,
                               char key[17], md_error *err)
{
    if (!model_path || !rgb_path || !key)
        return md_fail(err, MD_ERR_ARG, "md_cache_key: NULL argument");
    uint64_t h = MD_FNV1A64_INIT;
    md_status st = hash_file_identity(&h, model_path, err);
    /* after the model, with its terminator: no variant hashes as before */
    if (st == MD_OK && variant && variant[0])
        h = md_fnv1a64(h, variant, strlen(variant) + 1);
    if (st == MD_OK)
        st = hash_file_identity(&h, rgb_path, err);
    if (st != MD_OK)
        return st;
    snprintf(key, 17, "%016llx", (unsigned long long)h);
    return MD_OK;
}

md_status md_cache_store(const char *path, const md_depth *pred, md_error *err)
{
    if (!path || !pred || !pred->data)
        return md_fail(err, MD_ERR_ARG, "md_cache_store: NULL argument");
    size_t n = (size_t)pred->width * (size_t)pred->height;
    md_depth copy = {0};
    md_status st = md_depth_alloc(&copy, pred->width, pred->height, err);
    if (st != MD_OK)
        return st;
    for (size_t i = 0; i < n; i++)
        copy.data[i] = md_depth_valid_at(pred, i) ? pred->data[i] : 0.0f;
    st = md_depth_save(path, &copy, err);
    md_depth_free(&copy);
    return st;
}

md_status md_cache_store_features(const char *path, const md_features *f, md_error *err)
{
    if (!path || !f || (f->n && !f->values))
        return md_fail(err, MD_ERR_ARG, "md_cache_store_features: NULL argument");
    md_tensor t = {1, {(int64_t)f->n}, f->values};
    return md_npy_save(path, &t, err);
}

md_status md_cache_load_features(const char *path, uint64_t signature, md_features *out,
                                 md_error *err)
{
    memset(out, 0, sizeof *out);
    struct stat sb;
    if (!path || stat(path, &sb) != 0)
        return md_fail(err, MD_ERR_IO, "%s: not in the cache", path ? path : "(null)");
    md_tensor t = {0};
    md_status st = md_npy_load(path, &t, err);
    if (st != MD_OK)
        return st;
    if (t.ndim != 1 || t.shape[0] < 1) {
        md_tensor_free(&t);
        return md_fail(err, MD_ERR_FORMAT, "%s: cached features are not a 1-D array", path);
    }
    out->n = (size_t)t.shape[0];
    out->values = t.data;
    out->signature = signature;
    return MD_OK;
}

md_status md_cache_load(const char *path, md_depth *out, md_error *err)
{
    struct stat sb;
    if (!path || stat(path, &sb) != 0)
        return md_fail(err, MD_ERR_IO, "%s: not in the cache", path ? path : "(null)");
    return md_depth_load(path, NULL, out, err);
}



/* ------------------------------------------------------------ per-pair fit */

md_status md_fit_scaled_metrics(const md_depth *pred, const md_depth *gt, double scale,
                                md_metrics *out, md_error *err)
{
    md_depth s = {0};
    md_status st = md_depth_alloc(&s, pred->width, pred->height, err);
    if (st != MD_OK)
        return st;
    size_t n = (size_t)pred->width * (size_t)pred->height;
    for (size_t i = 0; i < n; i++)
        s.data[i] = md_depth_valid_at(pred, i) ? (float)(scale * pred->data[i]) : 0.0f;
    st = md_metrics_compute(&s, gt, MD_PROTOCOL_SEED, out, err);
    md_depth_free(&s);
    return st;
}

md_status md_scales_fit(const md_depth *pred, const md_depth *gt, md_scale_method method,
                      double lo, double hi, md_scales_row *row, md_error *err)
{
    if (!pred || !gt || !row)
        return md_fail(err, MD_ERR_ARG, "md_scales_fit: NULL argument");
    if (pred->width != gt->width || pred->height != gt->height)
        return md_fail(err, MD_ERR_DATA,
                       "size mismatch: the image (prediction) is %dx%d, the depth %dx%d",
                       pred->width, pred->height, gt->width, gt->height);
    float *p = NULL, *g = NULL;
    size_t n = 0;
    double s = 1.0;
    md_status st = md_depth_valid_samples(pred, gt, &p, &g, &n, err);
    if (st == MD_OK && n == 0)
        st = md_fail(err, MD_ERR_DATA, "no pixel is valid in both the prediction and the depth");
    if (st == MD_OK)
        st = md_scale_fit(p, g, n, method, lo, hi, &s, err);
    if (st == MD_OK) {
        row->scale = s;
        row->log_scale = log(s);
        row->w1_before = md_w1_distance(p, g, n, 1.0);
        row->w1_after = md_w1_distance(p, g, n, s);
        st = md_metrics_compute(pred, gt, MD_PROTOCOL_SEED, &row->before, err);
    }
    if (st == MD_OK)
        st = md_fit_scaled_metrics(pred, gt, s, &row->after, err);
    free(p);
    free(g);
    return st;
}
