#include "cli.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const cli_option *find_option(const cli_option *options, const char *name, size_t len,
                                     char short_name)
{
    for (const cli_option *o = options; o && o->name; o++) {
        if (short_name ? o->short_name == short_name
                       : (strlen(o->name) == len && strncmp(o->name, name, len) == 0))
            return o;
    }
    return NULL;
}

/* Edit distance (insertions, deletions, substitutions, adjacent swaps) of two
 * short strings; capped at 99. */
static int edit_distance(const char *a, size_t n, const char *b)
{
    size_t m = strlen(b);
    if (n > 40 || m > 40)
        return 99;
    int d[41][41];
    for (size_t i = 0; i <= n; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

/* The option closest to an unknown name ("overwirte" -> "overwrite"), or NULL
 * when none is close: at most a third of the name's letters wrong, or the name
 * a prefix of exactly one option. */
static const char *nearest_option(const cli_option *options, const char *name)
{
    const char *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    const char *best = NULL, *prefix = NULL;
    int best_d = 99, prefixes = 0;
    for (const cli_option *o = options; o && o->name; o++) {
        int dist = edit_distance(name, n, o->name);
        if (dist < best_d) {
            best_d = dist;
            best = o->name;
        }
        if (n >= 2 && strncmp(o->name, name, n) == 0) {
            prefixes++;
            prefix = o->name;
        }
    }
    if (best && best_d <= (int)(n + 2) / 3)
        return best;
    return prefixes == 1 ? prefix : NULL;
}

int cli_parse(const cli_command *cmd, int argc, char **argv, const cli_option *options,
              char **positional, int *n_positional)
{
    *n_positional = 0;
    if (!positional) { /* the caller's calloc failed */
        fprintf(stderr, "metricdepth: error: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    bool only_positional = false;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (only_positional || arg[0] != '-' || arg[1] == '\0') {
            positional[(*n_positional)++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            only_positional = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            printf("%s", cmd->usage);
            return -1;
        }
        const cli_option *opt;
        const char *inline_value = NULL;
        if (arg[1] == '-') {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            opt = find_option(options, name, len, 0);
            if (eq)
                inline_value = eq + 1;
        } else {
            if (arg[2] != '\0')
                return cli_usage_error(cmd, "unknown option '%s'", arg);
            opt = find_option(options, NULL, 0, arg[1]);
        }
        if (!opt) {
            const char *near = arg[1] == '-' ? nearest_option(options, arg + 2) : NULL;
            if (near)
                return cli_usage_error(cmd, "unknown option '%s'; did you mean '--%s'?", arg, near);
            return cli_usage_error(cmd, "unknown option '%s' (see 'metricdepth %s --help')", arg,
                                   cmd->name);
        }
        if (opt->takes_value) {
            if (inline_value) {
                *opt->value = inline_value;
            } else if (i + 1 < argc) {
                *opt->value = argv[++i];
            } else {
                return cli_usage_error(cmd, "option '--%s' needs a value", opt->name);
            }
        } else {
            if (inline_value)
                return cli_usage_error(cmd, "option '--%s' takes no value", opt->name);
            *opt->flag = true;
        }
    }
    return 0;
}

int cli_usage_error(const cli_command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "metricdepth %s: ", cmd->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_exit_code(md_status st)
{
    switch (st) {
    case MD_OK: return CLI_EXIT_OK;
    case MD_ERR_ARG: return CLI_EXIT_USAGE;
    default: return CLI_EXIT_FAILURE;
    }
}

int cli_report(const md_error *err)
{
    fprintf(stderr, "metricdepth: error: %s\n",
            err->message[0] ? err->message : md_status_name(err->code));
    return cli_exit_code(err->code);
}

bool cli_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end != '\0' || errno != 0 || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool cli_parse_int(const char *s, int *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || errno != 0 || v < -1000000000L || v > 1000000000L)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_list(const char *s, double *vals, int n)
{
    char buf[256];
    if (!s || strlen(s) >= sizeof buf)
        return false;
    strcpy(buf, s);
    char *p = buf;
    for (int i = 0; i < n; i++) {
        char *comma = strchr(p, ',');
        if ((i < n - 1) != (comma != NULL))
            return false;
        if (comma)
            *comma = '\0';
        if (!cli_parse_double(p, &vals[i]))
            return false;
        p = comma + 1;
    }
    return true;
}

bool cli_parse_pair(const char *s, double *a, double *b)
{
    double v[2];
    if (!parse_list(s, v, 2))
        return false;
    *a = v[0];
    *b = v[1];
    return true;
}

bool cli_parse_range_f(const char *s, float *lo, float *hi)
{
    double a, b;
    if (!cli_parse_pair(s, &a, &b) || !(a < b) || fabs(a) > 1e30 || fabs(b) > 1e30)
        return false;
    *lo = (float)a;
    *hi = (float)b;
    return *lo < *hi;
}

bool cli_parse_shard(const char *s, int *k, int *n)
{
    int a, b;
    char tail;
    if (!s || sscanf(s, "%d/%d%c", &a, &b, &tail) != 2 || b < 1 || a < 1 || a > b ||
        b > 1000000)
        return false;
    *k = a;
    *n = b;
    return true;
}

bool cli_parse_intrinsics(const char *s, md_intrinsics *K)
{
    double v[4];
    if (!parse_list(s, v, 4) || v[0] <= 0 || v[1] <= 0)
        return false;
    K->fx = v[0];
    K->fy = v[1];
    K->cx = v[2];
    K->cy = v[3];
    return true;
}

bool cli_parse_size(const char *s, int *height, int *width)
{
    int h, w;
    char tail;
    if (!s || sscanf(s, "%dx%d%c", &h, &w, &tail) != 2 || h <= 0 || w <= 0 || h > 16384 ||
        w > 16384)
        return false;
    *height = h;
    *width = w;
    return true;
}

md_status cli_load_depth(const char *path, double divisor, md_depth *out, md_error *err)
{
    md_depth_read_options o = {.divisor = divisor};
    return md_depth_load(path, &o, out, err);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *label, size_t total)
{
    p->label = label;
    p->total = total;
    p->done = 0;
    p->start = now();
    p->tty = isatty(STDERR_FILENO) != 0;
}

void cli_progress_step(cli_progress *p, const char *item)
{
    p->done++;
    if (!p->tty)
        return;
    double elapsed = now() - p->start;
    double eta = p->done ? elapsed / (double)p->done * (double)(p->total - p->done) : 0.0;
    int width = 28;
    int filled = p->total ? (int)((double)width * (double)p->done / (double)p->total) : width;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    double rate = elapsed > 0 ? (double)p->done / elapsed : 0.0;
    if (p->total)
        fprintf(stderr, "\r%s [%s] %zu/%zu  %.2f/s, %.1fs elapsed, ETA %.1fs  %-30.30s", p->label,
                bar, p->done, p->total, rate, elapsed, eta, item ? item : "");
    else /* length unknown (a stream) */
        fprintf(stderr, "\r%s %zu  %.2f/s, %.1fs elapsed  %-30.30s", p->label, p->done, rate,
                elapsed, item ? item : "");
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p)
{
    if (p->tty)
        fputc('\n', stderr);
    double t = now() - p->start;
    fprintf(stderr, "%s: %zu/%zu done in %.2f s (%.2f per second)\n", p->label, p->done,
            p->total ? p->total : p->done, t, t > 0 ? (double)p->done / t : 0.0);
}

void cli_path_join(char *buf, size_t size, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    if (n > 0 && dir[n - 1] == '/')
        snprintf(buf, size, "%s%s", dir, name);
    else
        snprintf(buf, size, "%s/%s", dir, name);
}

void cli_sibling_path(char *buf, size_t size, const char *path, const char *suffix)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(path, '.');
    size_t n = dot && (!slash || dot > slash + 1) ? (size_t)(dot - path) : strlen(path);
    snprintf(buf, size, "%.*s%s", (int)n, path, suffix);
}

void cli_sibling_dir(char *buf, size_t size, const char *path, const char *name)
{
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(buf, size, "%.*s/%s", (int)(slash - path), path, name);
    else
        snprintf(buf, size, "%s", name);
}

const char *cli_report_cache(const char *out_dir, const char *cache_arg, char *buf, size_t size,
                             md_error *err)
{
    if (!cache_arg) {
        cli_path_join(buf, size, out_dir, ".metricdepth-cache");
        cache_arg = buf;
    }
    return cli_make_dirs(cache_arg, err) == MD_OK ? cache_arg : NULL;
}

void cli_stem(char *buf, size_t size, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(buf, size, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf)
        *dot = '\0';
}

md_status cli_make_dirs(const char *path, md_error *err)
{
    return md_make_dirs(path, err);
}

int cli_collect_pairs(const char *source, md_pair_list *list, md_error *err)
{
    struct stat sb;
    if (stat(source, &sb) != 0) {
        snprintf(err->message, sizeof err->message, "%.400s: %s", source, strerror(errno));
        err->code = MD_ERR_IO;
        return -1;
    }
    md_status st = S_ISDIR(sb.st_mode) ? md_pairs_detect(source, list, err)
                                       : md_pairs_read_list(source, list, err);
    return st == MD_OK ? 0 : -1;
}

int cli_scale_setup(md_scale_options *so, const char *scale_model_path, const md_model *model,
                    md_scale_model **out)
{
    *out = NULL;
    so->base_model_name = md_model_file_name(model);
    if (so->source != MD_SCALE_SOURCE_AUTO && so->source != MD_SCALE_SOURCE_ADAPTIVE)
        return CLI_EXIT_OK;
    md_error err = {0};
    char buf[4096];
    const char *path = scale_model_path;
    if (!path) {
        if (md_default_scale_model_path(so->base_model_name, buf, sizeof buf, &err) != MD_OK) {
            if (so->source == MD_SCALE_SOURCE_AUTO)
                return CLI_EXIT_OK; /* no scale model: auto means none */
            fprintf(stderr, "metricdepth: error: --scale adaptive: %s (give --scale-model FILE)\n",
                    err.message);
            return CLI_EXIT_FAILURE;
        }
        path = buf;
    }
    md_scale_model *sm = NULL;
    if (md_scale_model_load(path, &sm, &err) != MD_OK) {
        if (scale_model_path || so->source == MD_SCALE_SOURCE_ADAPTIVE)
            return cli_report(&err);
        fprintf(stderr, "warning: default scale model unusable, no scaling: %s\n", err.message);
        return CLI_EXIT_OK;
    }
    const char *trained_for = md_scale_model_base(sm);
    bool match = trained_for && strcmp(trained_for, so->base_model_name) == 0;
    if (!match)
        fprintf(stderr, "%s: scale model %s was trained for base model '%s', not %s%s\n",
                so->source == MD_SCALE_SOURCE_AUTO ? "note" : "warning", path,
                trained_for && *trained_for ? trained_for : "(unknown)", so->base_model_name,
                so->source == MD_SCALE_SOURCE_AUTO
                    ? ": not applied (--scale adaptive forces it)"
                    : "; its scales may be wrong for this model");
    else
        fprintf(stderr, "scale model: %s (%s)\n", md_scale_model_describe(sm), path);
    so->scale_model = sm;
    *out = sm;
    return CLI_EXIT_OK;
}

static void add_number_or_null(cJSON *o, const char *name, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, name, v);
    else
        cJSON_AddNullToObject(o, name);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The anchors' part of a record: the fit, the counts and, for a scale map,
 * its size and the spread of its ln s (the map itself is in the record). */
static cJSON *anchors_json(const md_scale_record *rec)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "fit", md_anchor_fit_name(rec->anchor_fit));
    cJSON_AddNumberToObject(a, "given", rec->anchors_total);
    cJSON_AddNumberToObject(a, "used", rec->anchors_used);
    cJSON_AddNumberToObject(a, "inliers", rec->anchors_inliers);
    add_number_or_null(a, "residual_sd", rec->anchor_residual_sd);
    if (rec->anchor_fit == MD_ANCHOR_FIT_SCALE_SHIFT)
        cJSON_AddNumberToObject(a, "inverse_depth_shift", rec->shift);
    if (rec->log_scale_map) {
        cJSON *m = cJSON_AddObjectToObject(a, "scale_map");
        cJSON_AddNumberToObject(m, "width", rec->map_width);
        cJSON_AddNumberToObject(m, "height", rec->map_height);
        size_t n = (size_t)rec->map_width * (size_t)rec->map_height;
        float *v = malloc(n * sizeof *v);
        if (v && n) {
            memcpy(v, rec->log_scale_map, n * sizeof *v);
            qsort(v, n, sizeof *v, cmp_float);
            cJSON_AddNumberToObject(m, "log_scale_p5", v[n / 20]);
            cJSON_AddNumberToObject(m, "log_scale_median", v[n / 2]);
            cJSON_AddNumberToObject(m, "log_scale_p95", v[n - 1 - n / 20]);
        }
        free(v);
    }
    return a;
}

cJSON *cli_scale_record_json(const md_scale_record *rec)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "source", md_scale_source_name(rec->source));
    cJSON_AddNumberToObject(o, "scale", rec->scale);
    cJSON_AddBoolToObject(o, "applied", rec->applied != 0);
    add_number_or_null(o, "confidence", rec->confidence);
    add_number_or_null(o, "predicted_log_scale", rec->predicted_log_scale);
    add_number_or_null(o, "log_scale_sd", rec->log_scale_sd);
    add_number_or_null(o, "distance", rec->distance);
    if (rec->source == MD_SCALE_SOURCE_ORACLE)
        cJSON_AddBoolToObject(o, "at_range_limit", rec->at_range_limit != 0);
    if (rec->source == MD_SCALE_SOURCE_ANCHORS)
        cJSON_AddItemToObject(o, "anchors", anchors_json(rec));
    if (rec->filtered) {
        cJSON *q = cJSON_AddObjectToObject(o, "sequence");
        cJSON_AddNumberToObject(q, "raw_scale", rec->raw_scale);
        cJSON_AddNumberToObject(q, "raw_log_scale", log(rec->raw_scale));
        cJSON_AddNumberToObject(q, "filtered_scale", rec->scale);
        cJSON_AddNumberToObject(q, "filtered_log_scale", log(rec->scale));
        cJSON_AddBoolToObject(q, "rejected", rec->filter_rejected != 0);
    }
    cJSON_AddStringToObject(o, "note", rec->note);
    return o;
}

void cli_print_scale_record(FILE *f, const char *item, const md_scale_record *rec)
{
    fprintf(f, "%s: scale %.4f (%s", item, rec->scale, md_scale_source_name(rec->source));
    if (rec->source == MD_SCALE_SOURCE_ADAPTIVE) {
        fprintf(f, ", predicted ln s %+.4f", rec->predicted_log_scale);
        if (isfinite(rec->log_scale_sd))
            fprintf(f, " sd %.3f", rec->log_scale_sd);
        if (isfinite(rec->distance))
            fprintf(f, ", distance %.2f", rec->distance);
        fprintf(f, ", confidence %.2f, %s", rec->confidence,
                rec->applied ? (rec->confidence < 1.0 ? "partly applied" : "applied")
                             : "not applied");
    }
    if (rec->source == MD_SCALE_SOURCE_ANCHORS) {
        fprintf(f, " %s", md_anchor_fit_name(rec->anchor_fit));
        if (rec->anchor_fit == MD_ANCHOR_FIT_SCALE_SHIFT)
            fprintf(f, ", inverse-depth shift %+.4f /m", rec->shift);
    }
    if (rec->filtered)
        fprintf(f, ", filtered from %.4f%s", rec->raw_scale,
                rec->filter_rejected ? " (rejected as an outlier)" : "");
    fprintf(f, ")%s%s\n", rec->note[0] ? ": " : "", rec->note);
}

int cli_write_json(const char *path, cJSON *root, md_error *err)
{
    char *text = cJSON_Print(root);
    if (!text) {
        err->code = MD_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "%s: out of memory", path);
        return -1;
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* cJSON_Print's terminator becomes the final newline */
    md_status st = md_file_write_atomic(path, text, n + 1, err);
    free(text);
    return st == MD_OK ? 0 : -1;
}

int cli_parse_sets(const cli_command *cmd, int argc, char **argv, const cli_option *options,
                   const char *name_a, const char *name_b, const char **sets[2], int n[2])
{
    sets[0] = sets[1] = NULL;
    n[0] = n[1] = 0;
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    sets[0] = calloc((size_t)argc + 1, sizeof(char *));
    sets[1] = calloc((size_t)argc + 1, sizeof(char *));
    if (!pos || !sets[0] || !sets[1]) {
        free(pos);
        free(sets[0]);
        free(sets[1]);
        sets[0] = sets[1] = NULL;
        fprintf(stderr, "metricdepth: error: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    int npos = 0;
    int rc = cli_parse(cmd, argc, argv, options, pos, &npos);
    if (rc == 0) {
        size_t la = strlen(name_a), lb = name_b ? strlen(name_b) : 0;
        int set = 0, p = 0;
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i];
            if (p < npos && a == pos[p]) {
                sets[set][n[set]++] = a;
                p++;
                continue;
            }
            if (strncmp(a, "--", 2) != 0)
                continue;
            const char *flag = a + 2;
            int which = -1;
            size_t len = 0;
            if (strncmp(flag, name_a, la) == 0 && (flag[la] == '\0' || flag[la] == '='))
                which = 0, len = la;
            else if (name_b && strncmp(flag, name_b, lb) == 0 &&
                     (flag[lb] == '\0' || flag[lb] == '='))
                which = 1, len = lb;
            if (which < 0)
                continue;
            set = which;
            if (flag[len] == '=')
                sets[set][n[set]++] = flag + len + 1;
            else if (i + 1 < argc)
                sets[set][n[set]++] = argv[++i];
        }
    }
    free(pos);
    if (rc != 0) {
        free(sets[0]);
        free(sets[1]);
        sets[0] = sets[1] = NULL;
    }
    return rc;
}
