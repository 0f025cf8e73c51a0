#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(int argc, char **argv);

const cli_command cmd_predict = {
    "predict", "metric depth for one or more images (depth PNG/npy, preview, PLY)",
    "usage: metricdepth predict [options] IMAGE... [-o DIR]\n\n"
    "Runs the depth network on each image and writes into DIR, per image STEM:\n"
    "  STEM.depth.png     16-bit depth in millimetres (0 = invalid)\n"
    "  STEM.depth.npy     float32 depth in metres\n"
    "  STEM.preview.png   colourised depth (turbo, near = blue)\n"
    "  STEM.ply           point cloud, with --ply\n"
    "Pixels the network did not see (FastDepth's centre crop leaves a border) are\n"
    "written as 0 (invalid) and left out of point clouds and metrics.\n"
    "A bad image is reported and skipped; the others are still written (exit 3).\n\n"
    "options:\n"
    "  --model FILE         depth network: FastDepth .onnx (default: the installed\n"
    "                       FastDepth), Depth Anything V2 .pth or .safetensors\n"
    "  -o, --output DIR     output folder (default: out)\n"
    "  --ply                also write a point cloud per image\n"
    "  --intrinsics FX,FY,CX,CY\n"
    "                       camera for the point cloud (default: NYU's, scaled to\n"
    "                       the image width)\n"
    "  --scale MODE         how the network's depth is scaled:\n"
    "                       adaptive: times exp(ln s) predicted by a scale CNN\n"
    "                       (--scale-model, else the default one below);\n"
    "                       oracle: the exact W1-optimal scale against --gt;\n"
    "                       none: the network's metric output as it is.\n"
    "                       Default: adaptive with the default scale model when\n"
    "                       it exists and was trained for the base model in use\n"
    "                       (same file name), else none. The default scale model\n"
    "                       is $METRICDEPTH_SCALE_MODEL, else\n"
    "                       data/scale_models/fastdepth_compact.safetensors of\n"
    "                       the source tree (trained for fastdepth_7.onnx).\n"
    "  --scale-model FILE   scale CNN from 'metricdepth train' (implies adaptive;\n"
    "                       warns if it was trained for another base model)\n"
    "  --gt FILE            ground truth for --scale oracle (one image only)\n"
    "  --gt-divisor D       raw/D = metres for integer gt files (default 1000)\n"
    "  --range LO,HI        allowed oracle scale range (default 0.1,2)\n"
    "  --input-size N       DA2: network input's shorter side (default 518)\n"
    "  --max-depth M        DA2 metric head: max depth (default from file name: 20\n"
    "                       indoor, 80 for vkitti)\n"
    "  --relative           DA2: the checkpoint has the relative (ReLU) head\n"
    "  --threads N          worker threads (default: all cores)\n"
    "  -h, --help           this text\n\n"
    "examples:\n"
    "  metricdepth predict photo.jpg --ply -o out\n"
    "  metricdepth predict --model depth_anything_v2_metric_hypersim_vits.pth *.jpg\n"
    "  metricdepth predict --scale-model scale.safetensors photo.jpg -o out\n"
    "  metricdepth predict --scale none photo.jpg -o out   # raw network depth\n",
    run};

/* NYU's camera scaled to an image of this size (a sensible guess when the
 * user gives none: the default model was trained on NYU). */
static md_intrinsics guess_intrinsics(int width, int height)
{
    md_intrinsics K = md_intrinsics_nyu();
    double sx = width / 640.0, sy = height / 480.0;
    K.fx *= sx;
    K.cx *= sx;
    K.fy *= sy;
    K.cy *= sy;
    return K;
}

typedef struct {
    const char *outdir;
    bool ply, oracle;
    md_scale_model *scale_model; /* adaptive scaling when not NULL */
    const md_intrinsics *K;
    const char *gt_path;
    double gt_divisor, lo, hi;
} predict_config;

int cli_write_depth_outputs(const char *outdir, const char *stem, const md_depth *depth,
                            const md_image *img, const md_intrinsics *K, bool ply,
                            const float preview_range[2], md_error *err);

/* Writes STEM.depth.png/.npy, STEM.preview.png (preview_range NULL = automatic)
 * and optionally STEM.ply. */
int cli_write_depth_outputs(const char *outdir, const char *stem, const md_depth *depth,
                            const md_image *img, const md_intrinsics *K, bool ply,
                            const float preview_range[2], md_error *err)
{
    char name[1024], path[4096];
    snprintf(name, sizeof name, "%s.depth.png", stem);
    cli_path_join(path, sizeof path, outdir, name);
    if (md_depth_save(path, depth, err) != MD_OK)
        return -1;
    snprintf(name, sizeof name, "%s.depth.npy", stem);
    cli_path_join(path, sizeof path, outdir, name);
    if (md_depth_save(path, depth, err) != MD_OK)
        return -1;
    snprintf(name, sizeof name, "%s.preview.png", stem);
    cli_path_join(path, sizeof path, outdir, name);
    if (md_depth_save_preview(path, depth, MD_COLORMAP_TURBO,
                              preview_range ? preview_range[0] : 0.0f,
                              preview_range ? preview_range[1] : 0.0f, err) != MD_OK)
        return -1;
    if (ply) {
        snprintf(name, sizeof name, "%s.ply", stem);
        cli_path_join(path, sizeof path, outdir, name);
        md_intrinsics k = K ? *K : guess_intrinsics(depth->width, depth->height);
        if (md_pointcloud_save_ply(path, depth, img, &k, 1, 0.0f, err) != MD_OK)
            return -1;
    }
    return 0;
}

static md_status oracle_scale(md_depth *depth, const predict_config *c, double *scale,
                              md_error *err)
{
    md_depth gt = {0};
    float *p = NULL, *g = NULL;
    size_t n = 0;
    md_status st = cli_load_depth(c->gt_path, c->gt_divisor, &gt, err);
    if (st == MD_OK)
        st = md_depth_valid_samples(depth, &gt, &p, &g, &n, err);
    if (st == MD_OK)
        st = md_scale_fit(p, g, n, MD_SCALE_W1, c->lo, c->hi, scale, err);
    if (st == MD_OK)
        for (size_t i = 0; i < (size_t)depth->width * (size_t)depth->height; i++)
            depth->data[i] *= (float)*scale;
    free(p);
    free(g);
    md_depth_free(&gt);
    return st;
}

static int predict_one(md_model *model, const char *image_path, const predict_config *c,
                       md_error *err)
{
    md_image img = {0};
    md_depth depth = {0};
    int rc = -1;
    if (md_image_load(image_path, &img, err) != MD_OK ||
        md_model_predict(model, &img, &depth, err) != MD_OK)
        goto done;
    double scale = 1.0, log_scale = 0.0;
    if (c->oracle && oracle_scale(&depth, c, &scale, err) != MD_OK)
        goto done;
    if (c->scale_model) {
        if (md_scale_model_predict(c->scale_model, &img, &log_scale, err) != MD_OK)
            goto done;
        scale = exp(log_scale);
        for (size_t i = 0; i < (size_t)depth.width * (size_t)depth.height; i++)
            depth.data[i] *= (float)scale;
    }
    char stem[1024];
    cli_stem(stem, sizeof stem, image_path);
    if (cli_write_depth_outputs(c->outdir, stem, &depth, &img, c->K, c->ply, NULL, err) != 0)
        goto done;
    if (c->oracle)
        fprintf(stderr, "%s: oracle scale %.4f\n", image_path, scale);
    if (c->scale_model)
        fprintf(stderr, "%s: adaptive scale %.4f (ln s = %+.4f)\n", image_path, scale, log_scale);
    rc = 0;
done:
    md_image_free(&img);
    md_depth_free(&depth);
    return rc;
}

/* The default scale model: $METRICDEPTH_SCALE_MODEL, else the one shipped in
 * the source tree's data/scale_models. 0 if none exists. */
static int default_scale_model_path(char *buf, size_t size)
{
    const char *env = getenv("METRICDEPTH_SCALE_MODEL");
    if (env && *env)
        snprintf(buf, size, "%s", env);
    else
        snprintf(buf, size, "%s/scale_models/fastdepth_compact.safetensors", MD_DATA_DIR);
    return access(buf, R_OK) == 0; /* an existence test: opening could block (a FIFO) */
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Opens the scale model the options ask for (or the default one when it fits
 * the base model), into *out (NULL: no adaptive scaling). */
int cli_open_scale_model(const char *scale_s, const char *scale_model_path,
                            const char *base_path, md_scale_model **out)
{
    *out = NULL;
    if (strcmp(scale_s, "none") == 0 || strcmp(scale_s, "oracle") == 0)
        return CLI_EXIT_OK;
    bool explicit_mode = strcmp(scale_s, "adaptive") == 0;
    char buf[4096];
    const char *path = scale_model_path;
    if (!path) {
        if (!default_scale_model_path(buf, sizeof buf)) {
            if (!explicit_mode)
                return CLI_EXIT_OK;
            fprintf(stderr, "metricdepth: error: --scale adaptive: no scale model: %s does not "
                            "exist (give --scale-model FILE)\n", buf);
            return CLI_EXIT_FAILURE;
        }
        path = buf;
    }
    md_error err = {0};
    md_scale_model *sm = NULL;
    if (md_scale_model_load(path, &sm, &err) != MD_OK) {
        if (scale_model_path || explicit_mode)
            return cli_report(&err);
        fprintf(stderr, "warning: default scale model unusable, no scaling: %s\n", err.message);
        return CLI_EXIT_OK;
    }
    const char *trained_for = md_scale_model_base(sm);
    bool match = trained_for && strcmp(trained_for, base_name(base_path)) == 0;
    if (!match && !scale_model_path && !explicit_mode) {
        fprintf(stderr, "note: default scale model %s was trained for '%s', not %s: no scaling "
                        "(use --scale-model or --scale adaptive to force it)\n",
                path, trained_for ? trained_for : "", base_name(base_path));
        md_scale_model_free(sm);
        return CLI_EXIT_OK;
    }
    if (!match)
        fprintf(stderr, "warning: scale model %s was trained for base model '%s', not %s; "
                        "its scales may be wrong for this model\n",
                path, trained_for && *trained_for ? trained_for : "(unknown)",
                base_name(base_path));
    fprintf(stderr, "scale model: %s (%s)\n", md_scale_model_describe(sm), path);
    *out = sm;
    return CLI_EXIT_OK;
}

int cli_open_model(const char *path, const md_model_options *opts, md_model **model);

/* Opens --model, or the default model, with a message naming the file. */
int cli_open_model(const char *path, const md_model_options *opts, md_model **model)
{
    md_error err = {0};
    char buf[4096];
    if (!path) {
        if (md_default_model_path(buf, sizeof buf, &err) != MD_OK)
            return cli_report(&err);
        path = buf;
    }
    if (md_model_load(path, opts, model, &err) != MD_OK)
        return cli_report(&err);
    return CLI_EXIT_OK;
}

static int run(int argc, char **argv)
{
    const char *model_path = NULL, *outdir = "out", *k_s = NULL, *scale_s = "auto";
    const char *scale_model_s = NULL;
    const char *gt_path = NULL, *gt_div_s = "1000", *range_s = "0.1,2";
    const char *input_size_s = "0", *max_depth_s = "0", *threads_s = "0";
    bool ply = false, relative = false;
    cli_option options[] = {{"model", 0, true, &model_path, NULL},
                            {"output", 'o', true, &outdir, NULL},
                            {"ply", 0, false, NULL, &ply},
                            {"intrinsics", 0, true, &k_s, NULL},
                            {"scale", 0, true, &scale_s, NULL},
                            {"scale-model", 0, true, &scale_model_s, NULL},
                            {"gt", 0, true, &gt_path, NULL},
                            {"gt-divisor", 0, true, &gt_div_s, NULL},
                            {"range", 0, true, &range_s, NULL},
                            {"input-size", 0, true, &input_size_s, NULL},
                            {"max-depth", 0, true, &max_depth_s, NULL},
                            {"relative", 0, false, NULL, &relative},
                            {"threads", 0, true, &threads_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    int rc = cli_parse(&cmd_predict, argc, argv, options, pos, &npos);
    if (rc != 0) {
        free(pos);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    predict_config c = {.outdir = outdir, .ply = ply, .gt_path = gt_path};
    md_intrinsics K;
    md_model_options mo = {0};
    if (npos == 0)
        rc = cli_usage_error(&cmd_predict, "give at least one image");
    else if (k_s && !cli_parse_intrinsics(k_s, &K))
        rc = cli_usage_error(&cmd_predict, "--intrinsics wants FX,FY,CX,CY");
    else if (strcmp(scale_s, "none") != 0 && strcmp(scale_s, "oracle") != 0 &&
             strcmp(scale_s, "adaptive") != 0 && strcmp(scale_s, "auto") != 0)
        rc = cli_usage_error(&cmd_predict, "--scale is adaptive, oracle or none (got '%s')",
                             scale_s);
    else if (scale_model_s && (strcmp(scale_s, "none") == 0 || strcmp(scale_s, "oracle") == 0))
        rc = cli_usage_error(&cmd_predict, "--scale-model goes with --scale adaptive, not %s",
                             scale_s);
    else if (strcmp(scale_s, "oracle") == 0 && (!gt_path || npos != 1))
        rc = cli_usage_error(&cmd_predict, "--scale oracle needs --gt and exactly one image");
    else if (!cli_parse_double(gt_div_s, &c.gt_divisor) || c.gt_divisor <= 0)
        rc = cli_usage_error(&cmd_predict, "--gt-divisor must be positive");
    else if (!cli_parse_pair(range_s, &c.lo, &c.hi) || c.lo <= 0 || c.lo > c.hi)
        rc = cli_usage_error(&cmd_predict, "--range wants LO,HI with 0 < LO <= HI");
    else if (!cli_parse_int(input_size_s, &mo.input_size) || mo.input_size < 0 ||
             !cli_parse_double(max_depth_s, &mo.max_depth) || mo.max_depth < 0 ||
             !cli_parse_int(threads_s, &mo.threads) || mo.threads < 0)
        rc = cli_usage_error(&cmd_predict, "--input-size, --max-depth, --threads want numbers >= 0");
    if (rc != 0) {
        free(pos);
        return rc;
    }
    c.oracle = strcmp(scale_s, "oracle") == 0;
    c.K = k_s ? &K : NULL;
    mo.relative = relative;

    md_error err = {0};
    if (cli_make_dirs(outdir, &err) != MD_OK) {
        free(pos);
        return cli_report(&err);
    }
    char model_buf[4096];
    if (!model_path) {
        if (md_default_model_path(model_buf, sizeof model_buf, &err) != MD_OK) {
            free(pos);
            return cli_report(&err);
        }
        model_path = model_buf;
    }
    md_model *model = NULL;
    rc = cli_open_model(model_path, &mo, &model);
    if (rc == CLI_EXIT_OK)
        rc = cli_open_scale_model(scale_s, scale_model_s, model_path, &c.scale_model);
    if (rc != CLI_EXIT_OK) {
        md_model_free(model);
        free(pos);
        return rc;
    }
    fprintf(stderr, "model: %s\n", md_model_describe(model));
    cli_progress progress;
    cli_progress_start(&progress, "predict", (size_t)npos);
    int failed = 0;
    for (int i = 0; i < npos; i++) {
        if (predict_one(model, pos[i], &c, &err) != 0) {
            if (progress.tty)
                fputc('\n', stderr);
            fprintf(stderr, "metricdepth: error: %s (skipped)\n", err.message);
            failed++;
        }
        cli_progress_step(&progress, pos[i]);
    }
    cli_progress_finish(&progress);
    fprintf(stderr, "wrote %d of %d images to %s/\n", npos - failed, npos, outdir);
    md_model_free(model);
    md_scale_model_free(c.scale_model);
    free(pos);
    if (failed == 0)
        return CLI_EXIT_OK;
    return failed == npos ? CLI_EXIT_FAILURE : CLI_EXIT_PARTIAL;
}
