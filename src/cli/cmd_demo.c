#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int run(int argc, char **argv);

const cli_command cmd_demo = {
    "demo", "the whole path on the built-in sample scene (no input needed)",
    "usage: metricdepth demo [options]\n\n"
    "Renders the built-in sample scene (a furnished room with exact metric depth),\n"
    "runs the depth network on it, and writes into DIR:\n"
    "  sample.rgb.png, sample.gt.png, sample.gt.preview.png   the scene and its true depth\n"
    "  sample.depth.png/.npy, sample.preview.png, sample.ply  the network's own depth\n"
    "then prints the accuracy of the network's depth, of the depth scaled by the\n"
    "shipped scale CNN (as 'predict' does by default) and of the oracle-scaled depth.\n\n"
    "options:\n"
    "  --model FILE         depth network (default: the installed FastDepth)\n"
    "  -o, --output DIR     output folder (default: out/demo)\n"
    "  --variant N          camera pose of the sample scene, 0..3 (default 0)\n"
    "  --size HxW           image size (default 480x640)\n"
    "  --threads N          worker threads (default: all cores)\n"
    "  -h, --help           this text\n",
    run};

/* Writes STEM.depth.png/.npy, STEM.preview.png and STEM.ply. */
static int write_outputs(const char *outdir, const char *stem, const md_depth *depth,
                         const md_image *img, const md_intrinsics *K, const float range[2],
                         md_error *err)
{
    char name[1024], path[4096];
    static const char *const suffix[3] = {".depth.png", ".depth.npy", ".ply"};
    for (int i = 0; i < 3; i++) {
        snprintf(name, sizeof name, "%s%s", stem, suffix[i]);
        cli_path_join(path, sizeof path, outdir, name);
        md_status st = i < 2 ? md_depth_save(path, depth, err)
                             : md_pointcloud_save_ply(path, depth, img, K, 1, 0.0f, err);
        if (st != MD_OK)
            return -1;
    }
    snprintf(name, sizeof name, "%s.preview.png", stem);
    cli_path_join(path, sizeof path, outdir, name);
    md_preview_options po = md_preview_defaults();
    po.vmin = range[0];
    po.vmax = range[1];
    return md_depth_save_preview_ex(path, depth, &po, NULL, err) == MD_OK ? 0 : -1;
}
int cli_open_model(const char *path, const md_model_options *opts, md_model **model);

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_row(const char *label, const md_metrics *m)
{
    printf("  %-32s %7.4f %7.4f %7.3f %7.3f\n", label, m->abs_rel, m->rmse, m->delta1, m->silog);
}

static int run(int argc, char **argv)
{
    const char *model_path = NULL, *outdir = "out/demo", *variant_s = "0", *size_s = "480x640";
    const char *threads_s = "0";
    cli_option options[] = {{"model", 0, true, &model_path, NULL},
                            {"output", 'o', true, &outdir, NULL},
                            {"variant", 0, true, &variant_s, NULL},
                            {"size", 0, true, &size_s, NULL},
                            {"threads", 0, true, &threads_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char *pos[64];
    int npos = 0;
    if (argc > 60)
        return cli_usage_error(&cmd_demo, "too many arguments");
    int rc = cli_parse(&cmd_demo, argc, argv, options, pos, &npos);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    int variant, height, width;
    md_model_options mo = {0};
    if (npos > 0)
        return cli_usage_error(&cmd_demo, "unexpected argument '%s'", pos[0]);
    if (!cli_parse_int(variant_s, &variant) || variant < 0 || variant > 3)
        return cli_usage_error(&cmd_demo, "--variant is 0..3");
    if (!cli_parse_size(size_s, &height, &width) || height < 32 || width < 32)
        return cli_usage_error(&cmd_demo, "--size wants HxW, at least 32x32");
    if (!cli_parse_int(threads_s, &mo.threads) || mo.threads < 0)
        return cli_usage_error(&cmd_demo, "--threads wants a number >= 0");

    md_error err = {0};
    md_image rgb = {0};
    md_depth gt = {0}, pred = {0}, scaled_pred = {0};
    md_features features = {0};
    md_intrinsics K;
    md_model *model = NULL;
    md_scale_model *scale_model = NULL;
    float *p = NULL, *g = NULL;
    int status = CLI_EXIT_FAILURE;
    char path[4096];

    if (cli_make_dirs(outdir, &err) != MD_OK ||
        md_render_sample_scene(width, height, variant, &rgb, &gt, &K, &err) != MD_OK)
        goto fail;
    cli_path_join(path, sizeof path, outdir, "sample.rgb.png");
    if (md_image_save_png(path, &rgb, &err) != MD_OK)
        goto fail;
    cli_path_join(path, sizeof path, outdir, "sample.gt.png");
    if (md_depth_save(path, &gt, &err) != MD_OK)
        goto fail;
    /* Both previews share the true depth's range, so their colours compare. */
    float range[2] = {0.0f, 0.0f};
    for (size_t i = 0; i < (size_t)width * (size_t)height; i++)
        if (gt.data[i] > range[1])
            range[1] = gt.data[i];
    cli_path_join(path, sizeof path, outdir, "sample.gt.preview.png");
    if (md_depth_save_preview(path, &gt, MD_COLORMAP_TURBO, range[0], range[1], &err) != MD_OK)
        goto fail;
    printf("sample scene: %dx%d, variant %d, fx %.1f fy %.1f cx %.1f cy %.1f\n", width, height,
           variant, K.fx, K.fy, K.cx, K.cy);

    char model_buf[4096];
    if (!model_path) {
        if (md_default_model_path(model_buf, sizeof model_buf, &err) != MD_OK)
            goto fail;
        model_path = model_buf;
    }
    md_scale_options so = md_scale_options_default();
    rc = cli_open_model(model_path, &mo, &model);
    if (rc == CLI_EXIT_OK)
        rc = cli_scale_setup(&so, NULL, model, &scale_model);
    if (rc != CLI_EXIT_OK) {
        md_model_free(model);
        md_image_free(&rgb);
        md_depth_free(&gt);
        return rc;
    }
    printf("model: %s\n", md_model_describe(model));
    double t0 = seconds();
    if (md_model_predict_ex(model, &rgb, &pred, &features, &err) != MD_OK)
        goto fail;
    printf("predict: %.1f ms\n", 1e3 * (seconds() - t0));

    md_metrics raw, adaptive, scaled;
    size_t n;
    double s;
    md_scale_record rec;
    if (md_metrics_compute(&pred, &gt, MD_PROTOCOL_SEED, &raw, &err) != MD_OK ||
        md_depth_valid_samples(&pred, &gt, &p, &g, &n, &err) != MD_OK ||
        md_scale_fit(p, g, n, MD_SCALE_W1, 0.1, 2.0, &s, &err) != MD_OK)
        goto fail;
    size_t npix = (size_t)pred.width * (size_t)pred.height;
    /* The default scale source (what predict applies), on a copy. */
    if (md_depth_alloc(&scaled_pred, pred.width, pred.height, &err) != MD_OK)
        goto fail;
    memcpy(scaled_pred.data, pred.data, sizeof(float) * npix);
    if (pred.mask) {
        scaled_pred.mask = malloc(npix);
        if (!scaled_pred.mask)
            goto fail;
        memcpy(scaled_pred.mask, pred.mask, npix);
    }
    if (md_scale_depth(&rgb, &features, &scaled_pred, &so, &rec, &err) != MD_OK ||
        md_metrics_compute(&scaled_pred, &gt, MD_PROTOCOL_SEED, &adaptive, &err) != MD_OK)
        goto fail;
    cli_print_scale_record(stdout, "sample", &rec);
    /* the outputs are what predict writes: the default scale applied */
    if (write_outputs(outdir, "sample", &scaled_pred, &rgb, &K, range, &err) != 0)
        goto fail;
    for (size_t i = 0; i < npix; i++)
        pred.data[i] *= (float)s;
    if (md_metrics_compute(&pred, &gt, MD_PROTOCOL_SEED, &scaled, &err) != MD_OK)
        goto fail;
    printf("\naccuracy against the exact depth (%zu pixels the network saw):\n", n);
    printf("  %-32s %7s %7s %7s %7s\n", "", "AbsRel", "RMSE", "delta1", "SILog");
    print_row("network output", &raw);
    char label[64];
    if (rec.source != MD_SCALE_SOURCE_NONE) {
        snprintf(label, sizeof label, "default (%s, x%.3f)", md_scale_source_name(rec.source),
                 rec.scale);
        print_row(label, &adaptive);
    }
    snprintf(label, sizeof label, "oracle W1 scale (x%.3f)", s);
    print_row(label, &scaled);
    printf("\nwrote %s/: sample.rgb.png sample.gt.png sample.gt.preview.png\n"
           "       sample.depth.png sample.depth.npy sample.preview.png sample.ply\n",
           outdir);
    status = CLI_EXIT_OK;
    goto done;
fail:
    status = cli_report(&err);
done:
    free(p);
    free(g);
    md_model_free(model);
    md_scale_model_free(scale_model);
    md_image_free(&rgb);
    md_depth_free(&gt);
    md_depth_free(&pred);
    md_depth_free(&scaled_pred);
    md_features_free(&features);
    return status;
}
