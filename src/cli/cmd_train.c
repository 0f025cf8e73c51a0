/* metricdepth train: a scale model from a scales CSV (seed report, step 2). */
#include "cli.h"
#include "metricdepth_report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(int argc, char **argv);

const cli_command cmd_train = {
    "train", "train a scale model (ln s* per image) on a fit-scales CSV",
    "usage: metricdepth train --scales scales.csv [options] -o scale.safetensors\n\n"
    "Trains a scale model on the rows of a CSV written by 'metricdepth fit-scales'\n"
    "(each image's oracle ln s*). Architectures:\n"
    "  encoder (default)    ridge regression of ln s* on the base network's\n"
    "                       encoder features (the per-channel means of its encoder\n"
    "                       layers, from the same forward pass), a bootstrap\n"
    "                       ensemble of 10, the distance of an image from the\n"
    "                       training images, and a gate calibrated on the\n"
    "                       training data: predict applies the scale only to\n"
    "                       images like those it was trained on. Groups (for the\n"
    "                       cross-validation and the calibration) are the images'\n"
    "                       folders; groups under 10 images are merged.\n"
    "  compact, paper       the seed report's RGB-only CNNs (MSE on ln s, Adam,\n"
    "                       step decay): compact (4 conv stages + pooling + MLP) or\n"
    "                       the seed's own (2 convs + FC of 205.6 M params)\n"
    "Writes OUT (.safetensors with the architecture, the base model and a hash of\n"
    "the training list); the CNNs also write BASE.log.csv (epoch,train_loss,\n"
    "val_loss) and BASE.loss.png, where BASE is OUT without its extension. Prints\n"
    "the errors of ln s on the training images. Rows whose files cannot be read\n"
    "are skipped with a warning.\n\n"
    "options:\n"
    "  --scales FILE        the fit-scales CSV (required)\n"
    "  -o, --output FILE    the model to write (required)\n"
    "  --arch A             encoder (default), compact or paper\n"
    "  --model FILE         the base depth model the scales were fitted for\n"
    "                       (default: the installed FastDepth); the encoder reads\n"
    "                       its features, and every model records its file name\n"
    "  --cache DIR          base predictions and features (default:\n"
    "                       .metricdepth-cache/ beside the CSV, where fit-scales\n"
    "                       put them)\n"
    "  --no-cache           neither read nor write the cache\n"
    "  --seed N             encoder: bootstrap and calibration folds; CNNs: split,\n"
    "                       initialisation, shuffling (default 0)\n"
    "  --threads N          default: all cores\n"
    "encoder options:\n"
    "  --alpha X            ridge strength (lambda = X x features); default: chosen\n"
    "                       by leave-one-group-out CV, 10 with one group\n"
    "  --members N          bootstrap members (default 10)\n"
    "CNN options:\n"
    "  --epochs N           default 30\n"
    "  --batch N            default 30\n"
    "  --lr X               Adam learning rate, default 1e-3\n"
    "  --step N             decay the learning rate every N epochs (default 10)\n"
    "  --gamma X            by this factor (default 0.5)\n"
    "  --val X              fraction held out for validation (default 0.2)\n"
    "  --val-every N        validate every N epochs (default 5)\n"
    "  -h, --help           this text\n\n"
    "examples:\n"
    "  metricdepth fit-scales --data ../shared/data/sun3d_studyroom -o sun3d.csv\n"
    "  metricdepth train --scales sun3d.csv -o scale.safetensors\n"
    "  metricdepth train --scales sun3d.csv --arch compact -o cnn.safetensors\n"
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
    size_t cap = 64 + (size_t)log->epochs * 64, len = 0;
    char *text = malloc(cap);
    if (!text) {
        err->code = MD_ERR_NOMEM;
        snprintf(err->message, sizeof err->message, "%s: out of memory", path);
        return MD_ERR_NOMEM;
    }
    len += (size_t)snprintf(text + len, cap - len, "epoch,train_loss,val_loss\n");
    for (int e = 0; e < log->epochs; e++) {
        len += (size_t)snprintf(text + len, cap - len, "%d,%.9g,", e + 1, log->train_loss[e]);
        if (!isnan(log->val_loss[e]))
            len += (size_t)snprintf(text + len, cap - len, "%.9g", log->val_loss[e]);
        len += (size_t)snprintf(text + len, cap - len, "\n");
    }
    md_status st = md_file_write_atomic(path, text, len, err);
    free(text);
    return st;
}

typedef struct {
    cli_progress progress;
} build_ui;

static void on_build(void *user, const md_eval_progress *p)
{
    build_ui *ui = user;
    if (p->error) {
        if (ui->progress.tty)
            fputc('\n', stderr);
        fprintf(stderr, "metricdepth: warning: %s (skipped)\n", p->error->message);
    }
    cli_progress_step(&ui->progress, p->item);
}

static int run(int argc, char **argv)
{
    const char *scales_s = NULL, *out_s = NULL, *arch_s = "encoder", *model_s = NULL;
    const char *epochs_s = NULL, *batch_s = NULL, *lr_s = NULL, *step_s = NULL, *gamma_s = NULL;
    const char *val_s = NULL, *val_every_s = NULL, *seed_s = NULL, *threads_s = NULL;
    const char *alpha_s = NULL, *members_s = NULL, *cache_s = NULL;
    bool no_cache = false;
    cli_option options[] = {{"scales", 0, true, &scales_s, NULL},
                            {"output", 'o', true, &out_s, NULL},
                            {"arch", 0, true, &arch_s, NULL},
                            {"model", 0, true, &model_s, NULL},
                            {"cache", 0, true, &cache_s, NULL},
                            {"no-cache", 0, false, NULL, &no_cache},
                            {"alpha", 0, true, &alpha_s, NULL},
                            {"members", 0, true, &members_s, NULL},
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
    free(pos);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    md_train_options o = md_train_defaults();
    int arch = md_scale_arch_parse(arch_s), seed = 0;
    if (npos != 0)
        return cli_usage_error(&cmd_train, "unexpected argument (the CSV goes after --scales)");
    if (!scales_s || !out_s)
        return cli_usage_error(&cmd_train, "give --scales FILE and -o MODEL");
    if (arch < 0)
        return cli_usage_error(&cmd_train, "--arch is encoder, compact or paper (got '%s')",
                               arch_s);
    if ((epochs_s && (!cli_parse_int(epochs_s, &o.epochs) || o.epochs < 1)) ||
        (batch_s && (!cli_parse_int(batch_s, &o.batch_size) || o.batch_size < 1)) ||
        (step_s && (!cli_parse_int(step_s, &o.step_size) || o.step_size < 1)) ||
        (val_every_s && (!cli_parse_int(val_every_s, &o.val_every) || o.val_every < 1)) ||
        (members_s && (!cli_parse_int(members_s, &o.members) || o.members < 1)) ||
        (threads_s && (!cli_parse_int(threads_s, &o.threads) || o.threads < 0)) ||
        (seed_s && (!cli_parse_int(seed_s, &seed) || seed < 0)))
        return cli_usage_error(&cmd_train, "--epochs, --batch, --step, --val-every, --members "
                                           "want numbers >= 1; --threads, --seed numbers >= 0");
    if ((lr_s && (!cli_parse_double(lr_s, &o.lr) || o.lr <= 0)) ||
        (gamma_s && (!cli_parse_double(gamma_s, &o.gamma) || o.gamma <= 0)) ||
        (alpha_s && (!cli_parse_double(alpha_s, &o.alpha) || o.alpha <= 0)) ||
        (val_s && (!cli_parse_double(val_s, &o.val_fraction) || o.val_fraction < 0 ||
                   o.val_fraction >= 1)))
        return cli_usage_error(&cmd_train, "--lr, --gamma and --alpha want numbers > 0, --val a "
                                           "fraction in [0, 1)");
    bool encoder = arch == MD_SCALE_ARCH_ENCODER;
    if (encoder && (epochs_s || batch_s || lr_s || step_s || gamma_s || val_s || val_every_s))
        return cli_usage_error(&cmd_train, "--epochs, --batch, --lr, --step, --gamma, --val and "
                                           "--val-every are CNN options (--arch compact|paper)");
    if (!encoder && (alpha_s || members_s))
        return cli_usage_error(&cmd_train, "--alpha and --members go with --arch encoder");
    o.arch = (md_scale_arch)arch;
    o.seed = (uint64_t)seed;

    md_error err = {0};
    md_scales_table table = {0};
    md_training_set set = {0};
    md_evaluator *ev = NULL;
    md_scale_model *model = NULL;
    md_train_log log = {0};
    char model_buf[4096], cache_buf[4096];
    if (md_scales_read(scales_s, &table, &err) != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }
    if (table.count == 0) {
        fprintf(stderr, "metricdepth: error: %s: no rows\n", scales_s);
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    if (!model_s) {
        if (md_default_model_path(model_buf, sizeof model_buf, &err) != MD_OK) {
            rc = cli_report(&err);
            goto done;
        }
        model_s = model_buf;
    }
    if (encoder) {
        md_eval_options eo = md_eval_options_default();
        eo.model_path = model_s;
        eo.model_options.threads = o.threads;
        eo.features = 1;
        if (!no_cache) {
            if (!cache_s) {
                cli_sibling_dir(cache_buf, sizeof cache_buf, scales_s, ".metricdepth-cache");
                cache_s = cache_buf;
            }
            if (cli_make_dirs(cache_s, &err) != MD_OK) {
                rc = cli_report(&err);
                goto done;
            }
            eo.cache_dir = cache_s;
        }
        if (md_evaluator_create(&eo, &ev, &err) != MD_OK) {
            rc = cli_report(&err);
            goto done;
        }
    }
    build_ui bui;
    cli_progress_start(&bui.progress, encoder ? "features" : "images", table.count);
    md_eval_callbacks cb = {on_build, NULL, &bui};
    md_status st = md_training_set_build(ev, &table, o.arch, &cb, &set, &err);
    cli_progress_finish(&bui.progress);
    if (st != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }
    if (set.count == 0) {
        fprintf(stderr, "metricdepth: error: %s: none of the rows could be read\n", scales_s);
        rc = CLI_EXIT_FAILURE;
        goto done;
    }
    char hash[32];
    snprintf(hash, sizeof hash, "fnv1a64:%016llx", (unsigned long long)md_scales_hash(&set.used));
    const char *slash = strrchr(model_s, '/');
    o.base_model = slash ? slash + 1 : model_s;
    o.list_hash = hash;
    train_ui ui = {.tty = isatty(STDERR_FILENO) != 0, .last_epoch = 0};
    o.progress = on_progress;
    o.progress_user = &ui;
    fprintf(stderr, "train: %zu images, arch %s, base model %s, list %s\n", set.count,
            md_scale_arch_name(o.arch), o.base_model, hash);
    st = md_scale_model_fit(set.samples, set.count, &o, &model, &log, &err);
    if (ui.tty && !encoder)
        fputc('\n', stderr);
    if (st != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }
    if (md_scale_model_save(model, out_s, &err) != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }
    char log_path[4096] = "", png_path[4096] = "";
    if (!encoder) {
        cli_sibling_path(log_path, sizeof log_path, out_s, ".log.csv");
        cli_sibling_path(png_path, sizeof png_path, out_s, ".loss.png");
        char title[128];
        snprintf(title, sizeof title, "%s scale CNN: training and validation loss",
                 md_scale_arch_name(o.arch));
        if (write_log(log_path, &log, &err) != MD_OK ||
            md_plot_loss_curves(png_path, log.train_loss, log.val_loss, log.epochs, title,
                                &err) != MD_OK) {
            rc = cli_report(&err);
            goto done;
        }
    }
    printf("model: %s\n", md_scale_model_describe(model));
    if (log.summary)
        printf("%s", log.summary);
    /* the final model on its training images */
    double mae = 0, mse = 0, wsum = 0;
    for (size_t i = 0; i < set.count; i++) {
        md_scale_estimate e;
        const md_scale_sample *s = &set.samples[i];
        if (md_scale_model_estimate(model, s->image, s->features, &e, &err) != MD_OK) {
            rc = cli_report(&err);
            goto done;
        }
        mae += fabs(e.log_scale - s->log_scale);
        mse += (e.log_scale - s->log_scale) * (e.log_scale - s->log_scale);
        wsum += e.weight;
    }
    double n = (double)set.count;
    if (!encoder && log.epochs)
        printf("last epoch running train loss (MSE of ln s): %.5f; last validation MSE: %.5f "
               "(%zu images)\n",
               log.train_loss[log.epochs - 1], log.val_loss[log.epochs - 1], log.n_val);
    printf("final model on its %zu training images: MAE %.5f, RMSE %.5f of ln s%s", set.count,
           mae / n, sqrt(mse / n), encoder ? "" : "\n");
    if (encoder)
        printf(", mean gate weight %.2f (in-sample)\n", wsum / n);
    fprintf(stderr, "wrote %s%s%s%s%s\n", out_s, log_path[0] ? ", " : "", log_path,
            png_path[0] ? ", " : "", png_path);
done:
    md_scale_model_free(model);
    md_train_log_free(&log);
    md_training_set_free(&set);
    md_evaluator_free(ev);
    md_scales_free(&table);
    return rc;
}
