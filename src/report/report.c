/* Evaluation report: per-split summaries (the seed's Tables 1 and 2), the
 * per-image CSV, and the Markdown and HTML reports. */
#include "base/base.h"
#include "report/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A CSV field: quoted (RFC 4180) when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_metrics(FILE *f, const md_metrics *m)
{
    fprintf(f, ",%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g", m->abs_rel, m->sq_rel, m->rmse,
            m->rmse_log, m->log10, m->silog, m->delta1, m->delta2, m->delta3);
}

static void csv_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, ",%.9g", v);
    else
        fputc(',', f);
}

md_status md_eval_write_csv(const char *path, const md_eval_set *s, md_error *err)
{
    if (!path || !s)
        return md_fail(err, MD_ERR_ARG, "per-image CSV: NULL argument");
    int adaptive = s->count > 0, constant = s->count > 0;
    for (size_t i = 0; i < s->count; i++) {
        adaptive &= s->items[i].has_adaptive != 0;
        constant &= s->items[i].has_constant != 0;
    }
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    static const char *names[] = {"abs_rel", "sq_rel", "rmse",   "rmse_log", "log10",
                                  "silog",   "delta1", "delta2", "delta3"};
    const char *methods[5];
    int nm = 0;
    methods[nm++] = "unscaled";
    methods[nm++] = "oracle";
    if (adaptive) {
        methods[nm++] = "adaptive";
        methods[nm++] = "gated";
    }
    if (constant)
        methods[nm++] = "constant";
    fprintf(af.fp, "split,rgb,depth,oracle_scale,oracle_log_scale,oracle_at_limit");
    if (adaptive)
        fprintf(af.fp, ",pred_log_scale,pred_log_scale_sd,distance,gate_weight");
    for (int m = 0; m < nm; m++)
        for (int k = 0; k < 9; k++)
            fprintf(af.fp, ",%s_%s", names[k], methods[m]);
    fputc('\n', af.fp);
    for (size_t i = 0; i < s->count; i++) {
        const md_eval_item *it = &s->items[i];
        fprintf(af.fp, "%s,", it->split == MD_SPLIT_TEST ? "test" : "train");
        csv_field(af.fp, it->rgb);
        fputc(',', af.fp);
        csv_field(af.fp, it->depth);
        fprintf(af.fp, ",%.9g,%.9g,%d", it->oracle_scale, log(it->oracle_scale),
                it->oracle_at_limit != 0);
        if (adaptive) {
            csv_number(af.fp, it->estimate.log_scale);
            csv_number(af.fp, it->estimate.log_scale_sd);
            csv_number(af.fp, it->estimate.distance);
            csv_number(af.fp, it->estimate.weight);
        }
        csv_metrics(af.fp, &it->unscaled);
        csv_metrics(af.fp, &it->oracle);
        if (adaptive) {
            csv_metrics(af.fp, &it->adaptive);
            csv_metrics(af.fp, &it->gated);
        }
        if (constant)
            csv_metrics(af.fp, &it->constant);
        fputc('\n', af.fp);
    }
    if (ferror(af.fp)) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed", path);
    }
    return md_atomic_commit(&af, err);
}

/* ------------------------------------------------------------ the reports */

/* Both reports are built from the same table cells; fmt picks the markup. */
typedef enum { FMT_MD, FMT_HTML } report_fmt;

static void put_text(FILE *f, report_fmt fmt, const char *s)
{
    if (!s)
        s = "";
    if (fmt == FMT_MD) {
        for (; *s; s++) {
            if (*s == '|' || *s == '*' || *s == '_' || *s == '<' || *s == '>' || *s == '`' ||
                *s == '[' || *s == ']')
                fputc('\\', f);
            fputc(*s, f);
        }
        return;
    }
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

/* A URL-ish relative path for a link: only safe characters pass; others are
 * percent-encoded. */
static void put_link(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-_./~", c))
            fputc(c, f);
        else
            fprintf(f, "%%%02X", c);
    }
}

static void heading(FILE *f, report_fmt fmt, int level, const char *s)
{
    if (fmt == FMT_MD) {
        for (int i = 0; i < level; i++)
            fputc('#', f);
        fputc(' ', f);
        put_text(f, fmt, s);
        fputs("\n\n", f);
    } else {
        fprintf(f, "<h%d>", level);
        put_text(f, fmt, s);
        fprintf(f, "</h%d>\n", level);
    }
}

static void para(FILE *f, report_fmt fmt, const char *s)
{
    fputs(fmt == FMT_HTML ? "<p>" : "", f);
    put_text(f, fmt, s);
    fputs(fmt == FMT_HTML ? "</p>\n" : "\n\n", f);
}

/* Table rows: cells already formatted (plain text). first row = header. */
static void table(FILE *f, report_fmt fmt, const char *const *cells, int rows, int cols,
                  const int *section_rows)
{
    if (fmt == FMT_MD) {
        for (int r = 0; r < rows; r++) {
            fputc('|', f);
            for (int c = 0; c < cols; c++) {
                fputc(' ', f);
                int bold = section_rows && section_rows[r] && c == 0;
                if (bold)
                    fputs("**", f);
                put_text(f, fmt, cells[r * cols + c]);
                if (bold)
                    fputs("**", f);
                fputs(" |", f);
            }
            fputc('\n', f);
            if (r == 0) {
                fputc('|', f);
                for (int c = 0; c < cols; c++)
                    fputs(c ? "---:|" : "---|", f);
                fputc('\n', f);
            }
        }
        fputc('\n', f);
        return;
    }
    fputs("<table>\n", f);
    for (int r = 0; r < rows; r++) {
        int sec = section_rows && section_rows[r];
        fputs(sec ? "<tr class=\"section\">" : "<tr>", f);
        for (int c = 0; c < cols; c++) {
            const char *tag = r == 0 ? "th" : "td";
            fprintf(f, "<%s>", tag);
            put_text(f, fmt, cells[r * cols + c]);
            fprintf(f, "</%s>", tag);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
}

typedef char cell[48];

static void fmt_num(char *buf, double v, int decimals)
{
    if (isfinite(v))
        snprintf(buf, sizeof(cell), "%.*f", decimals, v);
    else
        snprintf(buf, sizeof(cell), "n/a");
}

static void write_report(FILE *f, report_fmt fmt, const md_report_info *info,
                         const md_eval_summary sums[2])
{
    static const char *split_name[2] = {"Training set", "Test set"};
    int adaptive = info->scale_model != NULL;
    int constant = sums[0].has_constant || sums[1].has_constant;
    char line[2048];
    heading(f, fmt, 1, info->title ? info->title : "metricdepth evaluation report");
    if (fmt == FMT_HTML)
        fputs("<ul>\n", f);
    const char *labels[] = {"Training data", "Test data", "Base model", "Scale model",
                            "Protocol"};
    char protocol[256];
    snprintf(protocol, sizeof protocol, "%s",
             info->protocol && strcmp(info->protocol, "eigen") == 0
                 ? "eigen (crop rows 45..470, cols 41..600 of 480x640, gt in (1e-3, 10) m, "
                   "prediction clipped to [1e-3, 10]); metrics per image, then averaged"
                 : "seed (pixels with gt > 0 and pred > 0, whole image); metrics per image, "
                   "then averaged");
    const char *values[] = {info->train_data, info->test_data, info->base_model,
                            info->scale_model ? info->scale_model
                                              : "none: the adaptive columns are omitted "
                                                "(run with --scale-model to add them)",
                            protocol};
    for (int i = 0; i < 5; i++) {
        fputs(fmt == FMT_HTML ? "<li><b>" : "- **", f);
        put_text(f, fmt, labels[i]);
        fputs(fmt == FMT_HTML ? ":</b> " : ":** ", f);
        put_text(f, fmt, values[i] ? values[i] : "none");
        fputs(fmt == FMT_HTML ? "</li>\n" : "\n", f);
    }
    if (fmt == FMT_HTML)
        fputs("</ul>\n", f);
    else
        fputc('\n', f);
    snprintf(line, sizeof line,
             "Oracle scale: s* = argmin over the scale range of W1(s*pred, gt) per image. Median s*: "
             "train %.3f (%zu images), test %.3f (%zu images).",
             sums[0].scale_median, sums[0].n, sums[1].scale_median, sums[1].n);
    para(f, fmt, line);
    if (sums[0].at_limit || sums[1].at_limit) {
        snprintf(line, sizeof line,
                 "Warning: the oracle scale sits on the range limit for %zu training and %zu test "
                 "images: their true optimum lies beyond the range, and the oracle row "
                 "understates what a scale could win there.",
                 sums[0].at_limit, sums[1].at_limit);
        para(f, fmt, line);
    }
    if (info->notes)
        para(f, fmt, info->notes);

    if (adaptive) {
        heading(f, fmt, 2, "Table 1: scaling factor estimation (ln s, predicted vs oracle)");
        cell c[3][4];
        const char *p[3 * 4];
        const char *hdr[4] = {"Dataset", "images", "MAE", "RMSE"};
        for (int k = 0; k < 4; k++)
            p[k] = hdr[k];
        for (int s = 0; s < 2; s++) {
            snprintf(c[s][0], sizeof(cell), "%s", split_name[s]);
            snprintf(c[s][1], sizeof(cell), "%zu", sums[s].n);
            fmt_num(c[s][2], sums[s].log_mae, 4);
            fmt_num(c[s][3], sums[s].log_rmse, 4);
            for (int k = 0; k < 4; k++)
                p[(s + 1) * 4 + k] = c[s][k];
        }
        table(f, fmt, p, 3, 4, NULL);
    }

    heading(f, fmt, 2, "Table 2: depth estimation (mean of per-image metrics)");
    enum { COLS = 10 };
    const char *hdr[COLS] = {"Method", "AbsRel", "RMSE", "delta1 (%)", "SqRel",
                             "RMSE-log", "log10", "SILog", "delta2 (%)", "delta3 (%)"};
    cell c[12][COLS];
    const char *p[13 * COLS];
    int section[13] = {0};
    int rows = 1;
    for (int k = 0; k < COLS; k++)
        p[k] = hdr[k];
    int r = 0;
    for (int s = 0; s < 2; s++) {
        snprintf(c[r][0], sizeof(cell), "%s (%zu images)", split_name[s], sums[s].n);
        for (int k = 1; k < COLS; k++)
            c[r][k][0] = '\0';
        section[rows] = 1;
        for (int k = 0; k < COLS; k++)
            p[rows * COLS + k] = c[r][k];
        r++;
        rows++;
        for (int m = 0; m < 5; m++) {
            static const char *mname[5] = {"unscaled", "oracle scale", "adaptive scale",
                                           "gated adaptive scale", ""};
            if ((m == 2 && !adaptive) || (m == 3 && !adaptive) || (m == 4 && !constant))
                continue;
            const md_metrics *mm = m == 0   ? &sums[s].unscaled
                                   : m == 1 ? &sums[s].oracle
                                   : m == 2 ? &sums[s].adaptive
                                   : m == 3 ? &sums[s].gated
                                            : &sums[s].constant;
            int ok = sums[s].n > 0 && (m < 2 || (m <= 3 && sums[s].has_adaptive) ||
                                       (m == 4 && sums[s].has_constant));
            if (m == 4)
                snprintf(c[r][0], sizeof(cell), "constant scale %.3f", info->constant_scale);
            else
                snprintf(c[r][0], sizeof(cell), "%s", mname[m]);
            double v[COLS] = {0, mm->abs_rel, mm->rmse, 100 * mm->delta1, mm->sq_rel,
                              mm->rmse_log, mm->log10, mm->silog, 100 * mm->delta2,
                              100 * mm->delta3};
            for (int k = 1; k < COLS; k++)
                fmt_num(c[r][k], ok ? v[k] : NAN, (k == 3 || k >= 8) ? 2 : 4);
            for (int k = 0; k < COLS; k++)
                p[rows * COLS + k] = c[r][k];
            r++;
            rows++;
        }
    }
    table(f, fmt, p, rows, COLS, section);
    if (adaptive) {
        cell g[4];
        fmt_num(g[0], 100 * sums[0].gap_closed, 1);
        fmt_num(g[1], 100 * sums[1].gap_closed, 1);
        fmt_num(g[2], 100 * sums[0].gap_closed_gated, 1);
        fmt_num(g[3], 100 * sums[1].gap_closed_gated, 1);
        snprintf(line, sizeof line,
                 "Gap closed, (AbsRel unscaled - AbsRel method) / (AbsRel unscaled - AbsRel "
                 "oracle; n/a where the oracle gains nothing): adaptive train %s %%, test %s %%; "
                 "gated adaptive (what predict applies by default: the prediction times the "
                 "gate's weight, which is 0 where the scale model is unsure) train %s %%, test "
                 "%s %%. The gate applied a scale to %zu of %zu training and %zu of %zu test "
                 "images.",
                 g[0], g[1], g[2], g[3], sums[0].n_applied, sums[0].n, sums[1].n_applied,
                 sums[1].n);
        para(f, fmt, line);
    } else {
        para(f, fmt, "No scale model was given: no adaptive rows.");
    }
    if (constant) {
        snprintf(line, sizeof line,
                 "Baseline: one constant scale for every image, %.4f = exp(mean ln s* over the "
                 "training set); it closes %.1f %% of the AbsRel gap on the training set and "
                 "%.1f %% on the test set.",
                 info->constant_scale, 100 * sums[0].gap_closed_constant,
                 100 * sums[1].gap_closed_constant);
        para(f, fmt, line);
    }

    if (info->n_figures) {
        heading(f, fmt, 2, "Figures");
        for (size_t i = 0; i < info->n_figures; i++) {
            const md_report_figure *fg = &info->figures[i];
            if (fmt == FMT_MD) {
                fputs("![", f);
                put_text(f, fmt, fg->caption);
                fputs("](", f);
                put_link(f, fg->path);
                fputs(")\n\n*", f);
                put_text(f, fmt, fg->caption);
                fputs("*\n\n", f);
            } else {
                fputs("<figure><a href=\"", f);
                put_link(f, fg->path);
                fputs("\"><img src=\"", f);
                put_link(f, fg->path);
                fputs("\" alt=\"", f);
                put_text(f, fmt, fg->caption);
                fputs("\"></a><figcaption>", f);
                put_text(f, fmt, fg->caption);
                fputs("</figcaption></figure>\n", f);
            }
        }
    }
    para(f, fmt, "Per-image values: per_image.csv; all numbers: summary.json.");
}

static md_status write_file(const char *path, report_fmt fmt, const md_report_info *info,
                            const md_eval_summary sums[2], md_error *err)
{
    if (!path || !info || !sums)
        return md_fail(err, MD_ERR_ARG, "report: invalid argument");
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    if (fmt == FMT_HTML) {
        fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", af.fp);
        put_text(af.fp, fmt, info->title ? info->title : "metricdepth evaluation report");
        fputs("</title>\n<style>\n"
              "body{font-family:sans-serif;max-width:1640px;margin:1em auto;padding:0 1em;"
              "color:#222;line-height:1.4}\n"
              "table{border-collapse:collapse;margin:0.5em 0 1em}\n"
              "th,td{border:1px solid #ccc;padding:3px 9px;text-align:right}\n"
              "th:first-child,td:first-child{text-align:left}\n"
              "th{background:#eee}\ntr.section td{background:#f6f6f6;font-weight:bold}\n"
              "figure{margin:1em 0}\nimg{max-width:100%;height:auto;border:1px solid #ddd}\n"
              "figcaption{color:#555;font-size:0.9em}\n"
              "</style></head><body>\n",
              af.fp);
    }
    write_report(af.fp, fmt, info, sums);
    if (fmt == FMT_HTML)
        fputs("</body></html>\n", af.fp);
    if (ferror(af.fp)) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed", path);
    }
    return md_atomic_commit(&af, err);
}

md_status md_eval_write_markdown(const char *path, const md_report_info *info,
                                 const md_eval_summary sums[2], md_error *err)
{
    return write_file(path, FMT_MD, info, sums, err);
}

md_status md_eval_write_html(const char *path, const md_report_info *info,
                             const md_eval_summary sums[2], md_error *err)
{
    return write_file(path, FMT_HTML, info, sums, err);
}

md_status md_eval_read_loss_log(const char *path, double **train_loss, double **val_loss,
                                int *epochs, md_error *err)
{
    *train_loss = *val_loss = NULL;
    *epochs = 0;
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, (size_t)1 << 24, &data, &size, err);
    if (st != MD_OK)
        return st;
    char *text = md_malloc(size + 1, "loss log", err);
    if (!text) {
        free(data);
        return MD_ERR_NOMEM; /* md_malloc set err; never read it back: it may be NULL */
    }
    memcpy(text, data, size);
    text[size] = '\0';
    free(data);
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += text[i] == '\n';
    double *tr = md_malloc(lines * sizeof *tr, "loss log", err);
    double *va = tr ? md_malloc(lines * sizeof *va, "loss log", err) : NULL;
    if (!tr || !va) {
        free(tr);
        free(text);
        return MD_ERR_NOMEM; /* md_malloc set err; never read it back: it may be NULL */
    }
    int n = 0, line_no = 0;
    char *save = NULL;
    st = MD_OK;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line_no++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (line_no == 1) {
            if (strcmp(line, "epoch,train_loss,val_loss") != 0) {
                st = md_fail(err, MD_ERR_FORMAT, "%s:1: expected the header "
                             "epoch,train_loss,val_loss", path);
                break;
            }
            continue;
        }
        char *end;
        long e = strtol(line, &end, 10);
        if (*end != ',' || e != n + 1) {
            st = md_fail(err, MD_ERR_FORMAT, "%s:%d: expected epoch %d", path, line_no, n + 1);
            break;
        }
        char *p = end + 1;
        tr[n] = strtod(p, &end);
        if (end == p || *end != ',') {
            st = md_fail(err, MD_ERR_FORMAT, "%s:%d: bad train_loss", path, line_no);
            break;
        }
        p = end + 1;
        if (*p == '\0') {
            va[n] = NAN;
        } else {
            va[n] = strtod(p, &end);
            if (end == p || *end != '\0') {
                st = md_fail(err, MD_ERR_FORMAT, "%s:%d: bad val_loss", path, line_no);
                break;
            }
        }
        n++;
    }
    free(text);
    if (st == MD_OK && n == 0)
        st = md_fail(err, MD_ERR_FORMAT, "%s: no epochs", path);
    if (st != MD_OK) {
        free(tr);
        free(va);
        return st;
    }
    *train_loss = tr;
    *val_loss = va;
    *epochs = n;
    return MD_OK;
}
