/* metricdepth train: the scale CNN from a scales CSV (seed report, step 2). */
#include "cli.h"
#include "metricdepth_report.h"
#include "base/base.h"
#include "eval/fit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(int argc, char **argv);

const cli_command cmd_train = {
    "train", "train the scale CNN (log s* from RGB) on a fit-scales CSV",
    "usage: metricdepth train --scales scales.csv [options] -o scale.safetensors\n\n"
    "Trains a small CNN to predict ln(s*) from the RGB image alone (MSE on ln s,\n"
    "Adam, step decay; the seed report's recipe), on the rows of a CSV written by\n"
    "'metricdepth fit-scales'. Images that cannot be read are skipped with a\n"
    "warning. Writes:\n"
    "  OUT                  the model (.safetensors, with its architecture, the\n"
    "                       base model and a hash of the training list)\n"
    "  BASE.log.csv         epoch,train_loss,val_loss (val empty where none ran)\n"
    "  BASE.loss.png        both curves on a log axis\n"
    "where BASE is OUT without its extension. Prints the final train and\n"
    "validation MSE and MAE of ln s.\n\n"
    "options:\n"
    "  --scales FILE        the fit-scales CSV (required)\n"
    "  -o, --output FILE    the model to write (required)\n"
    "  --arch A             compact (default: 4 conv stages + pooling + MLP, small)\n"
    "                       or paper (the seed's: 2 convs + FC of 205.6 M params)\n"
    "  --model NAME         base depth model the scales were fitted for (recorded;\n"
    "                       default: the default model's file name)\n"
    "  --epochs N           default 30\n"
    "  --batch N            default 30\n"
    "  --lr X               Adam learning rate, default 1e-3\n"
    "  --step N             decay the learning rate every N epochs (default 10)\n"
    "  --gamma X            by this factor (default 0.5)\n"
    "  --val X              fraction held out for validation (default 0.2)\n"
    "  --val-every N        validate every N epochs (default 5)\n"
    "  --seed N             split, initialisation and shuffling (default 0)\n"
    "  --threads N          default: all cores\n"
    "  -h, --help           this text\n\n"
    "examples:\n"
    "  metricdepth fit-scales --data ../shared/data/sun3d_studyroom -o sun3d.csv\n"
    "  metricdepth train --scales sun3d.csv --arch compact -o scale.safetensors\n"
    "  metricdepth predict --scale-model scale.safetensors photo.jpg -o out\n",
    run};

typedef struct {
    bool tty;
    int last_epoch;
} train_ui;

static void on_progress(void *user, const md_train_progress *p)
{
    train_ui *ui = user;
    char val[32];
    if (isnan(p->val_loss))
        snprintf(val, sizeof val, "-");
    else
        snprintf(val, sizeof val, "%.5f", p->val_loss);
    if (ui->tty) {
        fprintf(stderr,
                "\rtrain: epoch %d/%d batch %d/%d  loss %.5f  val %s  %.0fs elapsed, ETA %.0fs   ",
                p->epoch, p->epochs, p->batch, p->batches, p->train_loss, val, p->elapsed_s,
                p->eta_s);
        fflush(stderr);
    } else if (p->batch == p->batches && p->epoch != ui->last_epoch) {
        fprintf(stderr, "train: epoch %d/%d  loss %.5f  val %s  %.1fs elapsed, ETA %.0fs\n",
                p->epoch, p->epochs, p->train_loss, val, p->elapsed_s, p->eta_s);
    }
    if (p->batch == p->batches)
        ui->last_epoch = p->epoch;
}

static md_status write_log(const char *path, const md_train_log *log, md_error *err)
{
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    fprintf(af.fp, "epoch,train_loss,val_loss\n");
    for (int e = 0; e < log->epochs; e++) {
        fprintf(af.fp, "%d,%.9g,", e + 1, log->train_loss[e]);
        if (!isnan(log->val_loss[e]))
            fprintf(af.fp, "%.9g", log->val_loss[e]);
        fputc('\n', af.fp);
    }
    if (ferror(af.fp)) {
        md_atomic_abort(&af);
        return md_fail(err, MD_ERR_IO, "%s: write failed", path);
    }
    return md_atomic_commit(&af, err);
}

static int run(int argc, char **argv)
{
    const char *scales_s = NULL, *out_s = NULL, *arch_s = "compact", *model_s = NULL;
    const char *epochs_s = NULL, *batch_s = NULL, *lr_s = NULL, *step_s = NULL, *gamma_s = NULL;
    const char *val_s = NULL, *val_every_s = NULL, *seed_s = NULL, *threads_s = NULL;
    cli_option options[] = {{"scales", 0, true, &scales_s, NULL},
                            {"output", 'o', true, &out_s, NULL},
                            {"arch", 0, true, &arch_s, NULL},
                            {"model", 0, true, &model_s, NULL},
                            {"epochs", 0, true, &epochs_s, NULL},
                            {"batch", 0, true, &batch_s, NULL},
                            {"lr", 0, true, &lr_s, NULL},
                            {"step", 0, true, &step_s, NULL},
                            {"gamma", 0, true, &gamma_s, NULL},
                            {"val", 0, true, &val_s, NULL},
                            {"val-every", 0, true, &val_every_s, NULL},
                            {"seed", 0, true, &seed_s, NULL},
                            {"threads", 0, true, &threads_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    if (!pos)
        return CLI_EXIT_FAILURE;
    int npos = 0;
    int rc = cli_parse(&cmd_train, argc, argv, options, pos, &npos);
    if (rc != 0) {
        free(pos);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    free(pos);
    md_train_options o = md_train_defaults();
    int arch = md_scale_arch_parse(arch_s), seed = 0;
    if (npos != 0)
        return cli_usage_error(&cmd_train, "unexpected argument (the CSV goes after --scales)");
    if (!scales_s || !out_s)
        return cli_usage_error(&cmd_train, "give --scales FILE and -o MODEL");
    if (arch < 0)
        return cli_usage_error(&cmd_train, "--arch is paper or compact (got '%s')", arch_s);
    if ((epochs_s && (!cli_parse_int(epochs_s, &o.epochs) || o.epochs < 1)) ||
        (batch_s && (!cli_parse_int(batch_s, &o.batch_size) || o.batch_size < 1)) ||
        (step_s && (!cli_parse_int(step_s, &o.step_size) || o.step_size < 1)) ||
        (val_every_s && (!cli_parse_int(val_every_s, &o.val_every) || o.val_every < 1)) ||
        (threads_s && (!cli_parse_int(threads_s, &o.threads) || o.threads < 0)) ||
        (seed_s && (!cli_parse_int(seed_s, &seed) || seed < 0)))
        return cli_usage_error(&cmd_train, "--epochs, --batch, --step, --val-every want numbers "
                                           ">= 1; --threads, --seed numbers >= 0");
    if ((lr_s && (!cli_parse_double(lr_s, &o.lr) || o.lr <= 0)) ||
        (gamma_s && (!cli_parse_double(gamma_s, &o.gamma) || o.gamma <= 0)) ||
        (val_s && (!cli_parse_double(val_s, &o.val_fraction) || o.val_fraction < 0 ||
                   o.val_fraction >= 1)))
        return cli_usage_error(&cmd_train, "--lr and --gamma want numbers > 0, --val a fraction "
                                           "in [0, 1)");
    o.arch = (md_scale_arch)arch;
    o.seed = (uint64_t)seed;

    md_error err = {0};
    md_scales_table table = {0}, used = {0};
    if (md_scales_read(scales_s, &table, &err) != MD_OK) {
        md_scales_free(&table);
        return cli_report(&err);
    }
    if (table.count == 0) {
        md_scales_free(&table);
        fprintf(stderr, "metricdepth: error: %s: no rows\n", scales_s);
        return CLI_EXIT_FAILURE;
    }
    md_image *images = calloc(table.count, sizeof *images);
    double *targets = calloc(table.count, sizeof *targets);
    md_scale_model *model = NULL;
    md_train_log log = {0};
    rc = CLI_EXIT_OK;
    if (!images || !targets) {
        fprintf(stderr, "metricdepth: error: out of memory\n");
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    /* The trainer keeps every image and its preprocessed copy in memory:
     * stop with a clear error before that outgrows the machine, and never
     * count an out-of-memory as an unreadable image (training on the rest
     * would quietly change the data). */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    double budget = pages > 0 && page > 0 ? 0.75 * (double)pages * (double)page : 1e18;
    double per_input = 4.0 * 3 * (o.input_size > 0 ? o.input_size : 224) *
                       (o.input_size > 0 ? o.input_size : 224);
    double kept = 0;
    size_t n = 0;
    for (size_t i = 0; i < table.count; i++) {
        md_error e = {0};
        md_status ls = md_image_load(table.items[i].rgb, &images[n], &e);
        if (ls == MD_ERR_NOMEM) {
            fprintf(stderr, "metricdepth: error: out of memory after loading %zu images: %s\n", n,
                    e.message);
            rc = CLI_EXIT_FAILURE;
            goto done;
        }
        if (ls != MD_OK) {
            fprintf(stderr, "metricdepth: warning: %s (skipped)\n", e.message);
            continue;
        }
        kept += 3.0 * images[n].width * images[n].height + per_input;
        if (kept > budget) {
            fprintf(stderr,
                    "metricdepth: error: %s: the first %zu images already need %.1f GB in memory "
                    "(training keeps every image), more than 3/4 of this machine's %.1f GB; "
                    "train on fewer or smaller images\n",
                    scales_s, n + 1, kept / 1e9, budget / 0.75 / 1e9);
            md_image_free(&images[n]);
            rc = CLI_EXIT_FAILURE;
            goto done;
        }
        if (md_scales_append(&used, &table.items[i], &err) != MD_OK) {
            md_image_free(&images[n]);
            rc = cli_report(&err);
            goto done;
        }
        targets[n++] = table.items[i].log_scale;
    }
    if (n == 0) {
        fprintf(stderr, "metricdepth: error: %s: none of the images could be read\n", scales_s);
        rc = CLI_EXIT_FAILURE;
        goto done;
    }

    char hash[32], base_buf[4096];
    snprintf(hash, sizeof hash, "fnv1a64:%016llx", (unsigned long long)md_scales_hash(&used));
    const char *base = model_s;
    if (!base) {
        md_error e = {0};
        base = md_default_model_path(base_buf, sizeof base_buf, &e) == MD_OK ? base_buf
                                                                              : "fastdepth_7.onnx";
    }
    const char *slash = strrchr(base, '/');
    o.base_model = slash ? slash + 1 : base;
    o.list_hash = hash;
    train_ui ui = {.tty = isatty(STDERR_FILENO) != 0, .last_epoch = 0};
    o.progress = on_progress;
    o.progress_user = &ui;
    fprintf(stderr, "train: %zu images, arch %s, base model %s, list %s\n", n,
            md_scale_arch_name(o.arch), o.base_model, hash);
    md_status st = md_scale_model_train(images, targets, n, &o, &model, &log, &err);
    if (ui.tty)
        fputc('\n', stderr);
    if (st != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }
    char log_path[4096], png_path[4096];
    cli_sibling_path(log_path, sizeof log_path, out_s, ".log.csv");
    cli_sibling_path(png_path, sizeof png_path, out_s, ".loss.png");
    char title[128];
    snprintf(title, sizeof title, "%s scale CNN: training and validation loss",
             md_scale_arch_name(o.arch));
    if (md_scale_model_save(model, out_s, &err) != MD_OK || write_log(log_path, &log, &err) != MD_OK ||
        md_plot_loss_curves(png_path, log.train_loss, log.val_loss, log.epochs, title, &err) !=
            MD_OK) {
        rc = cli_report(&err);
        goto done;
    }

    /* final errors of ln s over every image (the split lives inside the trainer) */
    double mae = 0, mse = 0, last_val = NAN;
    for (size_t i = 0; i < n; i++) {
        double p;
        if (md_scale_model_predict(model, &images[i], &p, &err) != MD_OK) {
            rc = cli_report(&err);
            goto done;
        }
        mae += fabs(p - targets[i]);
        mse += (p - targets[i]) * (p - targets[i]);
    }
    for (int e = 0; e < log.epochs; e++)
        if (!isnan(log.val_loss[e]))
            last_val = log.val_loss[e];
    printf("model: %s\n", md_scale_model_describe(model));
    printf("last epoch running train loss (MSE of ln s): %.5f\n",
           log.epochs ? log.train_loss[log.epochs - 1] : NAN);
    /* The final model's errors. The trainer validates after the last epoch, so
     * the validation MSE is the final model's; the train MSE follows from it and
     * the MSE over all images (the split itself stays inside the trainer). */
    double mse_all = mse / (double)n;
    if (log.n_val && log.epochs > 0 && !isnan(log.val_loss[log.epochs - 1]) &&
        log.n_train + log.n_val == n) {
        double mse_train = (mse_all * (double)n - last_val * (double)log.n_val) / (double)log.n_train;
        printf("final model, MSE of ln s: train %.5f (%zu images), validation %.5f (%zu images)\n",
               mse_train < 0 ? 0.0 : mse_train, log.n_train, last_val, log.n_val);
    } else if (log.n_val) {
        printf("last validation MSE of ln s: %.5f (%zu images)\n", last_val, log.n_val);
    }
    printf("final model, all %zu images: MSE %.5f, MAE %.5f of ln s (RMSE %.4f)\n", n, mse_all,
           mae / (double)n, sqrt(mse_all));
    fprintf(stderr, "wrote %s, %s, %s\n", out_s, log_path, png_path);
done:
    if (images)
        for (size_t i = 0; i < table.count; i++)
            md_image_free(&images[i]);
    free(images);
    free(targets);
    md_scale_model_free(model);
    md_train_log_free(&log);
    md_scales_free(&table);
    md_scales_free(&used);
    return rc;
}
