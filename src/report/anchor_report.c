/* The anchor experiment's report folder: tables (Markdown, CSV, JSON) and
 * the AbsRel-against-K figures. */
#include "base/base.h"
#include "eval/anchor_eval.h"
#include "report/report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* dir/name into buf; false when it does not fit. */
static bool join(char *buf, size_t size, const char *dir, const char *name)
{
    size_t n = strlen(dir), m = strlen(name);
    bool slash = n && dir[n - 1] == '/';
    if (n + !slash + m + 1 > size)
        return false;
    memcpy(buf, dir, n);
    if (!slash)
        buf[n++] = '/';
    memcpy(buf + n, name, m + 1);
    return true;
}

static int find_cond(const md_anchor_eval_options *o, double noise, double out, int *ni, int *oi)
{
    for (int a = 0; a < o->n_noise; a++)
        for (int b = 0; b < o->n_outliers; b++)
            if (fabs(o->noise[a] - noise) < 1e-12 && fabs(o->outliers[b] - out) < 1e-12) {
                *ni = a;
                *oi = b;
                return 1;
            }
    return 0;
}

static void fmt_stat(char *buf, size_t size, double m, double sd, int digits)
{
    if (!isfinite(m))
        snprintf(buf, size, "-");
    else if (isfinite(sd))
        snprintf(buf, size, "%.*f ± %.*f", digits, m, digits, sd);
    else
        snprintf(buf, size, "%.*f", digits, m);
}

static const char *last_part(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A file written by fn(f, ae) through the atomic writer. */
typedef void (*writer_fn)(FILE *f, const md_anchor_eval *ae, const void *ctx);

static md_status write_file(const char *path, writer_fn fn, const md_anchor_eval *ae,
                            const void *ctx, md_error *err)
{
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    fn(af.fp, ae, ctx);
    if (ferror(af.fp)) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed", path);
    }
    return md_atomic_commit(&af, err);
}

static void results_csv(FILE *f, const md_anchor_eval *ae, const void *ctx)
{
    (void)ctx;
    const md_anchor_eval_options *o = md_anchor_eval_get_options(ae);
    fprintf(f, "dataset,noise,outliers,k,method,seed,images,abs_rel,delta1\n");
    for (int set = 0; set < md_anchor_eval_count(ae); set++) {
        const char *name = md_anchor_eval_name(ae, set);
        for (int r = 0; r < MD_ANCHOR_FIRST_FIT_ROW; r++) {
            md_anchor_stat s = md_anchor_eval_stat(ae, set, 0, 0, 0, r, 0);
            if (s.images)
                fprintf(f, "%s,,,,%s,,%zu,%.6f,%.6f\n", name, md_anchor_row_key(r), s.images,
                        s.abs_rel, s.delta1);
        }
        for (int ni = 0; ni < o->n_noise; ni++)
            for (int oi = 0; oi < o->n_outliers; oi++)
                for (int ki = 0; ki < o->n_k; ki++)
                    for (int r = MD_ANCHOR_FIRST_FIT_ROW; r < MD_ANCHOR_ROWS; r++)
                        for (int seed = 0; seed < o->seeds; seed++) {
                            md_anchor_stat s = md_anchor_eval_stat(ae, set, ni, oi, ki, r, seed);
                            if (s.images)
                                fprintf(f, "%s,%g,%g,%d,%s,%d,%zu,%.6f,%.6f\n", name,
                                        o->noise[ni], o->outliers[oi], o->k[ki],
                                        md_anchor_row_key(r), seed, s.images, s.abs_rel,
                                        s.delta1);
                        }
    }
}

static const char *const seq_keys[MD_SEQ_VARIANTS] = {"raw", "filtered", "filtered_level",
                                                      "oracle"};

static void sequences_csv(FILE *f, const md_anchor_eval *ae, const void *ctx)
{
    (void)ctx;
    const md_seq_result *r;
    size_t n = md_anchor_eval_sequences(ae, &r);
    fprintf(f, "dataset,run,k,seed,frames,rejected");
    for (int v = 0; v < MD_SEQ_VARIANTS; v++)
        fprintf(f, ",jitter_%s,level_jitter_%s,abs_rel_%s,delta1_%s", seq_keys[v], seq_keys[v],
                seq_keys[v], seq_keys[v]);
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s,%s,%d,%d,%zu,%zu", md_anchor_eval_name(ae, r[i].set), r[i].run, r[i].k,
                r[i].seed, r[i].frames, r[i].rejected);
        for (int v = 0; v < MD_SEQ_VARIANTS; v++)
            fprintf(f, ",%.6f,%.6f,%.6f,%.6f", r[i].jitter[v], r[i].level_jitter[v],
                    r[i].abs_rel[v], r[i].delta1[v]);
        fputc('\n', f);
    }
}

static void cells_csv(FILE *f, const md_anchor_eval *ae, const void *ctx)
{
    (void)ctx;
    const md_anchor_eval_options *o = md_anchor_eval_get_options(ae);
    const md_cell_target *c;
    size_t n = md_anchor_eval_cells(ae, &c);
    int nc = o->cells_x * o->cells_y;
    fprintf(f, "dataset,rgb,depth,cells_x,cells_y");
    for (int k = 0; k < nc; k++)
        fprintf(f, ",log_scale_%d_%d", k % o->cells_x, k / o->cells_x);
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s,%s,%s,%d,%d", md_anchor_eval_name(ae, c[i].set), c[i].rgb, c[i].depth,
                o->cells_x, o->cells_y);
        for (int k = 0; k < nc; k++) {
            if (isfinite(c[i].log_scales[k]))
                fprintf(f, ",%.6f", c[i].log_scales[k]);
            else
                fputs(",", f);
        }
        fputc('\n', f);
    }
}

/* Mean and sd over seeds of the sequence results of one (run, K). */
typedef struct {
    const md_seq_result *first;
    size_t frames, rejected;
    double jit[MD_SEQ_VARIANTS], jit_sd[MD_SEQ_VARIANTS];
    double lev[MD_SEQ_VARIANTS], lev_sd[MD_SEQ_VARIANTS];
    double ar[MD_SEQ_VARIANTS], ar_sd[MD_SEQ_VARIANTS];
} seq_summary;

static size_t summarize_seqs(const md_anchor_eval *ae, seq_summary *out, size_t max)
{
    const md_seq_result *r;
    size_t n = md_anchor_eval_sequences(ae, &r), m = 0;
    for (size_t i = 0; i < n && m < max; i++) {
        if (r[i].seed != 0)
            continue;
        seq_summary *s = &out[m++];
        memset(s, 0, sizeof *s);
        s->first = &r[i];
        s->frames = r[i].frames;
        for (int v = 0; v < MD_SEQ_VARIANTS; v++) {
            double a[MD_ANCHOR_MAX_SEEDS], b[MD_ANCHOR_MAX_SEEDS], c[MD_ANCHOR_MAX_SEEDS];
            size_t ns = 0;
            for (size_t q = i; q < n && ns < MD_ANCHOR_MAX_SEEDS; q++) {
                if (r[q].k != r[i].k || r[q].set != r[i].set || strcmp(r[q].run, r[i].run) != 0)
                    continue;
                a[ns] = r[q].jitter[v];
                b[ns] = r[q].level_jitter[v];
                c[ns] = r[q].abs_rel[v];
                if (v == 0)
                    s->rejected += r[q].rejected;
                ns++;
            }
            md_mean_sd(a, ns, &s->jit[v], &s->jit_sd[v]);
            md_mean_sd(b, ns, &s->lev[v], &s->lev_sd[v]);
            md_mean_sd(c, ns, &s->ar[v], &s->ar_sd[v]);
        }
    }
    return m;
}

typedef struct {
    const char *model;
    int ni, oi;        /* the main condition */
    double noise, out;
} report_ctx;

static void table_header(FILE *f, const md_anchor_eval_options *o)
{
    fprintf(f, "| method |");
    for (int ki = 0; ki < o->n_k; ki++)
        fprintf(f, " K=%d |", o->k[ki]);
    fprintf(f, "\n|---|");
    for (int ki = 0; ki < o->n_k; ki++)
        fprintf(f, "---|");
    fputc('\n', f);
}

static void report_md(FILE *f, const md_anchor_eval *ae, const void *ctx)
{
    const report_ctx *c = ctx;
    const md_anchor_eval_options *o = md_anchor_eval_get_options(ae);
    char buf[128];
    fprintf(f, "# Metric scale from sparse anchors\n\n");
    fprintf(f, "Base model: `%s`. Seed protocol (pixels valid in both maps), metrics per image "
               "then averaged over the dataset; anchor rows: mean ± sd over %d seeds. Anchors: "
               "K distinct pixels valid in both maps, depth × (1 + noise·N(0,1)), gross outliers "
               "with the given probability (depth × f, |ln f| uniform in [ln 1.5, ln 4], "
               "either sign). Per-cell oracle: %dx%d cells. Scale-shift needs 3 anchors.\n\n",
            c->model, o->seeds, o->cells_x, o->cells_y);
    for (int set = 0; set < md_anchor_eval_count(ae); set++) {
        const char *name = md_anchor_eval_name(ae, set);
        md_anchor_stat base = md_anchor_eval_stat(ae, set, 0, 0, 0, MD_ANCHOR_ROW_BASE, -1);
        fprintf(f, "## %s (%zu images): noise %g %%, outliers %g %%\n\n", name, base.images,
                100 * c->noise, 100 * c->out);
        for (int pass = 0; pass < 2; pass++) {
            fprintf(f, pass ? "\ndelta1:\n\n" : "AbsRel:\n\n");
            table_header(f, o);
            for (int r = 0; r < MD_ANCHOR_ROWS; r++) {
                fprintf(f, "| %s |", md_anchor_row_name(r));
                for (int ki = 0; ki < o->n_k; ki++) {
                    md_anchor_stat s = md_anchor_eval_stat(ae, set, c->ni, c->oi, ki, r, -1);
                    if (pass == 0)
                        fmt_stat(buf, sizeof buf, s.abs_rel, s.abs_rel_sd, 4);
                    else
                        fmt_stat(buf, sizeof buf, s.delta1, s.delta1_sd, 3);
                    fprintf(f, " %s |", buf);
                }
                fputc('\n', f);
            }
        }
        fprintf(f, "\n![AbsRel against K](fig/abs_rel_vs_k_%s.png)\n\n", name);
    }

    for (int ki = 0; ki < o->n_k; ki++) {
        if (o->k[ki] != 16)
            continue;
        fprintf(f, "## K = 16: every condition, AbsRel relative to the global W1 oracle\n\n");
        fprintf(f, "| dataset | noise | outliers | oracle | robust | vs oracle | median | vs "
                   "oracle | scale map | vs oracle |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for (int set = 0; set < md_anchor_eval_count(ae); set++)
            for (int ni = 0; ni < o->n_noise; ni++)
                for (int oi = 0; oi < o->n_outliers; oi++) {
                    double orc = md_anchor_eval_stat(ae, set, 0, 0, 0, MD_ANCHOR_ROW_ORACLE, -1)
                                     .abs_rel;
                    fprintf(f, "| %s | %g %% | %g %% | %.4f |", md_anchor_eval_name(ae, set),
                            100 * o->noise[ni], 100 * o->outliers[oi], orc);
                    const int rows[3] = {MD_ANCHOR_ROW_ROBUST, MD_ANCHOR_ROW_MEDIAN,
                                         MD_ANCHOR_ROW_MAP};
                    for (int q = 0; q < 3; q++) {
                        md_anchor_stat s = md_anchor_eval_stat(ae, set, ni, oi, ki, rows[q], -1);
                        fmt_stat(buf, sizeof buf, s.abs_rel, s.abs_rel_sd, 4);
                        fprintf(f, " %s | %+.1f %% |", buf, 100 * (s.abs_rel / orc - 1));
                    }
                    fputc('\n', f);
                }
        fputc('\n', f);
    }

    seq_summary sum[256];
    size_t nsum = summarize_seqs(ae, sum, sizeof sum / sizeof *sum);
    if (!nsum)
        return;
    fprintf(f, "## Sequences: frame-to-frame jitter (sd of the differences)\n\n");
    fprintf(f, "Anchors drawn afresh every frame (noise %g %%, outliers %g %%); raw = each "
               "frame's robust fit; scale filter time constant %g s, gate %g sd, frame times "
               "from the frame numbers at %g fps; oracle = each frame's W1 oracle (the truth "
               "moves too). Level: ln s + ln median(base depth), the metric depth level that "
               "flickers on screen. Mean ± sd over %d seeds.\n\n",
            100 * o->seq_noise, 100 * o->seq_outliers, o->filter.time_constant_s, o->filter.gate,
            o->fps, o->seeds);
    static const char *const what[3] = {"ln s jitter", "level jitter", "AbsRel"};
    for (int t = 0; t < 3; t++) {
        fprintf(f, "%s:\n\n| run | frames | K | raw | filtered | filtered, level input | "
                   "oracle |\n|---|---|---|---|---|---|---|\n",
                what[t]);
        for (size_t i = 0; i < nsum; i++) {
            const seq_summary *s = &sum[i];
            fprintf(f, "| %s/%s | %zu | %d |", md_anchor_eval_name(ae, s->first->set),
                    last_part(s->first->run), s->frames, s->first->k);
            for (int v = 0; v < MD_SEQ_VARIANTS; v++) {
                const double *m = t == 0 ? s->jit : t == 1 ? s->lev : s->ar;
                const double *sd = t == 0 ? s->jit_sd : t == 1 ? s->lev_sd : s->ar_sd;
                fmt_stat(buf, sizeof buf, m[v], v == MD_SEQ_ORACLE ? NAN : sd[v], 4);
                fprintf(f, " %s |", buf);
            }
            fputc('\n', f);
        }
        fputc('\n', f);
    }
}

static md_status write_json(const char *path, const md_anchor_eval *ae, const report_ctx *c,
                            md_error *err)
{
    const md_anchor_eval_options *o = md_anchor_eval_get_options(ae);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", c->model);
    cJSON_AddNumberToObject(root, "seeds", o->seeds);
    cJSON_AddNumberToObject(root, "noise", c->noise);
    cJSON_AddNumberToObject(root, "outliers", c->out);
    cJSON *sets = cJSON_AddArrayToObject(root, "datasets");
    for (int set = 0; set < md_anchor_eval_count(ae); set++) {
        cJSON *ds = cJSON_CreateObject();
        cJSON_AddStringToObject(ds, "name", md_anchor_eval_name(ae, set));
        cJSON *rows = cJSON_AddObjectToObject(ds, "rows");
        for (int r = 0; r < MD_ANCHOR_ROWS; r++) {
            cJSON *arr = cJSON_AddArrayToObject(rows, md_anchor_row_key(r));
            for (int ki = 0; ki < o->n_k; ki++) {
                md_anchor_stat s = md_anchor_eval_stat(ae, set, c->ni, c->oi, ki, r, -1);
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "k", o->k[ki]);
                if (isfinite(s.abs_rel)) {
                    cJSON_AddNumberToObject(e, "abs_rel", s.abs_rel);
                    cJSON_AddNumberToObject(e, "delta1", s.delta1);
                }
                if (isfinite(s.abs_rel_sd)) {
                    cJSON_AddNumberToObject(e, "abs_rel_sd", s.abs_rel_sd);
                    cJSON_AddNumberToObject(e, "delta1_sd", s.delta1_sd);
                }
                cJSON_AddItemToArray(arr, e);
            }
        }
        cJSON_AddItemToArray(sets, ds);
    }
    seq_summary sum[256];
    size_t nsum = summarize_seqs(ae, sum, sizeof sum / sizeof *sum);
    cJSON *sq = cJSON_AddArrayToObject(root, "sequences");
    for (size_t i = 0; i < nsum; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "dataset", md_anchor_eval_name(ae, sum[i].first->set));
        cJSON_AddStringToObject(e, "run", last_part(sum[i].first->run));
        cJSON_AddNumberToObject(e, "k", sum[i].first->k);
        for (int v = 0; v < MD_SEQ_VARIANTS; v++) {
            char key[64];
            snprintf(key, sizeof key, "jitter_%s", seq_keys[v]);
            cJSON_AddNumberToObject(e, key, sum[i].jit[v]);
            snprintf(key, sizeof key, "level_jitter_%s", seq_keys[v]);
            cJSON_AddNumberToObject(e, key, sum[i].lev[v]);
            snprintf(key, sizeof key, "abs_rel_%s", seq_keys[v]);
            cJSON_AddNumberToObject(e, key, sum[i].ar[v]);
        }
        cJSON_AddItemToArray(sq, e);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    size_t n = strlen(text);
    text[n] = '\n'; /* the terminator becomes the final newline */
    md_status st = md_file_write_atomic(path, text, n + 1, err);
    free(text);
    return st;
}

static md_status figures(const char *figdir, const md_anchor_eval *ae, const report_ctx *c,
                         md_error *err)
{
    const md_anchor_eval_options *o = md_anchor_eval_get_options(ae);
    /* colours by position: the fits first, then the reference levels (the
     * global oracle black, the base network grey). The gated image-only rows
     * are left to the tables: where the gate keeps the base network they
     * would hide its line. */
    static const int order[] = {MD_ANCHOR_ROW_ROBUST, MD_ANCHOR_ROW_MEDIAN,
                                MD_ANCHOR_ROW_LSQ,    MD_ANCHOR_ROW_SHIFT,
                                MD_ANCHOR_ROW_MAP,    MD_ANCHOR_ROW_CELLS,
                                MD_ANCHOR_ROW_ORACLE, MD_ANCHOR_ROW_BASE,
                                MD_ANCHOR_ROW_IMAGE,  MD_ANCHOR_ROW_IMAGE_MAP};
    enum { NS = sizeof order / sizeof *order };
    for (int set = 0; set < md_anchor_eval_count(ae); set++) {
        double x[MD_ANCHOR_MAX_LIST], y[NS][MD_ANCHOR_MAX_LIST], e[NS][MD_ANCHOR_MAX_LIST];
        md_plot_series ser[NS];
        for (int ki = 0; ki < o->n_k; ki++)
            x[ki] = o->k[ki];
        for (int q = 0; q < NS; q++) {
            int r = order[q];
            for (int ki = 0; ki < o->n_k; ki++) {
                md_anchor_stat s = md_anchor_eval_stat(ae, set, c->ni, c->oi, ki, r, -1);
                y[q][ki] = s.abs_rel;
                e[q][ki] = s.abs_rel_sd;
            }
            ser[q] = (md_plot_series){md_anchor_row_name(r), x, y[q], e[q], (size_t)o->n_k,
                                      r < MD_ANCHOR_FIRST_FIT_ROW};
        }
        char name[160], path[4096], title[256];
        snprintf(name, sizeof name, "abs_rel_vs_k_%s.png", md_anchor_eval_name(ae, set));
        if (!join(path, sizeof path, figdir, name))
            return md_fail(err, MD_ERR_ARG, "%s: path too long", figdir);
        snprintf(title, sizeof title, "%s: AbsRel against anchors (noise %g %%, outliers %g %%)",
                 md_anchor_eval_name(ae, set), 100 * c->noise, 100 * c->out);
        /* up to 1.5 x the base network's AbsRel: a fit that does far worse
         * (scale-shift on 4 anchors) is cut rather than flattening the rest */
        double base = md_anchor_eval_stat(ae, set, 0, 0, 0, MD_ANCHOR_ROW_BASE, -1).abs_rel;
        md_status st = md_plot_lines(path, title, "anchors per image (K)",
                                     "AbsRel (mean over images)", 1, 1.5 * base, ser, NS, err);
        if (st != MD_OK)
            return st;
    }
    return MD_OK;
}

md_status md_anchor_report_write(const char *dir, const md_anchor_eval *ae, const char *model,
                                 double main_noise, double main_outliers, md_error *err)
{
    if (!dir || !ae)
        return md_fail(err, MD_ERR_ARG, "anchor report: NULL argument");
    report_ctx c = {model ? model : "", 0, 0, main_noise, main_outliers};
    if (!find_cond(md_anchor_eval_get_options(ae), main_noise, main_outliers, &c.ni, &c.oi))
        return md_fail(err, MD_ERR_ARG,
                       "anchor report: noise %g with outliers %g is not a condition of the "
                       "experiment",
                       main_noise, main_outliers);
    char path[4096], figdir[4096];
    if (!join(figdir, sizeof figdir, dir, "fig") || !join(path, sizeof path, dir, "sequences.csv"))
        return md_fail(err, MD_ERR_ARG, "%.200s: path too long", dir);
    md_status st = md_report_make_dir(dir, err);
    if (st == MD_OK)
        st = md_report_make_dir(figdir, err);
    if (st == MD_OK)
        st = figures(figdir, ae, &c, err);
    if (st == MD_OK) {
        join(path, sizeof path, dir, "results.csv");
        st = write_file(path, results_csv, ae, NULL, err);
    }
    if (st == MD_OK) {
        join(path, sizeof path, dir, "sequences.csv");
        st = write_file(path, sequences_csv, ae, NULL, err);
    }
    if (st == MD_OK) {
        join(path, sizeof path, dir, "cells.csv");
        st = write_file(path, cells_csv, ae, NULL, err);
    }
    if (st == MD_OK) {
        join(path, sizeof path, dir, "summary.json");
        st = write_json(path, ae, &c, err);
    }
    if (st == MD_OK) {
        join(path, sizeof path, dir, "report.md");
        st = write_file(path, report_md, ae, &c, err);
    }
    return st;
}
