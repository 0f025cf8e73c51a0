#include "cli.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const cli_command cmd_predict = {
    "predict", "metric depth for one or more images (depth PNG/npy, preview, PLY)",
    "usage: metricdepth predict [options] IMAGE... [-o DIR]\n\n"
    "Runs the depth network on each image and writes into DIR, per image STEM:\n"
    "  STEM.depth.png     16-bit depth in millimetres (0 = invalid)\n"
    "  STEM.depth.npy     float32 depth in metres\n"
    "  STEM.preview.png   colourised depth (turbo, near = blue)\n"
    "  STEM.ply           point cloud, with --ply\n"
    "  STEM.json          what was applied: scale source, scale, its confidence,\n"
    "                     whether the gate applied it\n"
    "and prints one line per image with the same facts on stdout.\n"
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
    "  --scale MODE         where the scale that makes depth metric comes from:\n"
    "                       auto (default): the scale model (--scale-model, else\n"
    "                       the default one) when it was trained for the base\n"
    "                       model in use, applied through its confidence gate;\n"
    "                       else none.\n"
    "                       adaptive: the scale model's prediction through its\n"
    "                       gate, whatever base model it was trained for;\n"
    "                       oracle: the exact W1-optimal scale against --gt;\n"
    "                       none: the network's metric output as it is.\n"
    "                       The gate keeps the base network's output (or shrinks\n"
    "                       towards it) where the scale model is unsure.\n"
    "  --scale-model FILE   scale model from 'metricdepth train' (default:\n"
    "                       $METRICDEPTH_SCALE_MODEL, else the shipped one)\n"
    "  --ungated            apply the scale model's prediction whatever its\n"
    "                       confidence\n"
    "  --gt FILE            ground truth for --scale oracle (one image only)\n"
    "  --gt-divisor D       raw/D = metres for integer gt files (default 1000)\n"
    "  --range LO,HI        allowed oracle scale range (default 0.1,2)\n"
    "  --input-size N       DA2: network input's shorter side (default 518)\n"
    "  --max-depth M        DA2 metric head: max depth (default from file name: 20\n"
    "                       indoor, 80 for vkitti)\n"
    "  --relative           DA2: the checkpoint has the relative (ReLU) head\n"
    "  --threads N          worker threads (default: all cores)\n"
    "  --precision P        fp32 (default), bf16 (Depth Anything V2: faster on CPUs with\n"
    "                       AVX512_BF16, depth within a few cm) or auto (bf16 where the\n"
    "                       CPU has it)\n"
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
    bool ply;
    const md_intrinsics *K;
    md_scale_options scale;
    const char *gt_path; /* --scale oracle */
    double gt_divisor;
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

static int write_sidecar(const char *outdir, const char *stem, const char *image_path,
                         const md_model *model, const md_scale_record *rec, md_error *err)
{
    char name[1100], path[4096];
    snprintf(name, sizeof name, "%s.json", stem);
    cli_path_join(path, sizeof path, outdir, name);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "image", image_path);
    cJSON_AddStringToObject(root, "model", md_model_file_name(model));
    cJSON_AddStringToObject(root, "depth_unit", "m");
    cJSON_AddItemToObject(root, "scale", cli_scale_record_json(rec));
    int rc = cli_write_json(path, root, err);
    cJSON_Delete(root);
    return rc;
}

static int predict_one(md_model *model, const char *image_path, const predict_config *c,
                       md_error *err)
{
    md_image img = {0};
    md_depth depth = {0};
    md_scale_record rec;
    int rc = -1;
    md_depth gt = {0};
    md_scale_options so = c->scale;
    if (so.source == MD_SCALE_SOURCE_ORACLE) {
        if (cli_load_depth(c->gt_path, c->gt_divisor, &gt, err) != MD_OK)
            goto done;
        so.gt = &gt;
    }
    if (md_image_load(image_path, &img, err) != MD_OK ||
        md_predict_metric(model, &img, &so, &depth, &rec, err) != MD_OK)
        goto done;
    char stem[1024];
    cli_stem(stem, sizeof stem, image_path);
    if (cli_write_depth_outputs(c->outdir, stem, &depth, &img, c->K, c->ply, NULL, err) != 0 ||
        write_sidecar(c->outdir, stem, image_path, model, &rec, err) != 0)
        goto done;
    cli_print_scale_record(stdout, image_path, &rec);
    rc = 0;
done:
    md_image_free(&img);
    md_depth_free(&depth);
    md_depth_free(&gt);
    return rc;
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
    const char *input_size_s = "0", *max_depth_s = "0", *threads_s = "0", *precision_s = "fp32";
    bool ply = false, relative = false, ungated = false;
    cli_option options[] = {{"model", 0, true, &model_path, NULL},
                            {"output", 'o', true, &outdir, NULL},
                            {"ply", 0, false, NULL, &ply},
                            {"intrinsics", 0, true, &k_s, NULL},
                            {"scale", 0, true, &scale_s, NULL},
                            {"scale-model", 0, true, &scale_model_s, NULL},
                            {"ungated", 0, false, NULL, &ungated},
                            {"gt", 0, true, &gt_path, NULL},
                            {"gt-divisor", 0, true, &gt_div_s, NULL},
                            {"range", 0, true, &range_s, NULL},
                            {"input-size", 0, true, &input_size_s, NULL},
                            {"max-depth", 0, true, &max_depth_s, NULL},
                            {"relative", 0, false, NULL, &relative},
                            {"threads", 0, true, &threads_s, NULL},
                            {"precision", 0, true, &precision_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    int rc = cli_parse(&cmd_predict, argc, argv, options, pos, &npos);
    if (rc != 0) {
        free(pos);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    predict_config c = {.outdir = outdir, .ply = ply, .gt_path = gt_path};
    c.scale = md_scale_options_default();
    int source = md_scale_source_parse(scale_s);
    md_intrinsics K;
    md_model_options mo = {0};
    if (npos == 0)
        rc = cli_usage_error(&cmd_predict, "give at least one image");
    else if (k_s && !cli_parse_intrinsics(k_s, &K))
        rc = cli_usage_error(&cmd_predict, "--intrinsics wants FX,FY,CX,CY");
    else if (source < 0 || source == MD_SCALE_SOURCE_ANCHORS)
        rc = cli_usage_error(&cmd_predict, "--scale is auto, adaptive, oracle or none (got '%s')",
                             scale_s);
    else if (scale_model_s && (source == MD_SCALE_SOURCE_NONE || source == MD_SCALE_SOURCE_ORACLE))
        rc = cli_usage_error(&cmd_predict, "--scale-model goes with --scale auto or adaptive, not %s",
                             scale_s);
    else if (ungated && (source == MD_SCALE_SOURCE_NONE || source == MD_SCALE_SOURCE_ORACLE))
        rc = cli_usage_error(&cmd_predict, "--ungated goes with --scale auto or adaptive, not %s",
                             scale_s);
    else if (source == MD_SCALE_SOURCE_ORACLE && (!gt_path || npos != 1))
        rc = cli_usage_error(&cmd_predict, "--scale oracle needs --gt and exactly one image");
    else if (gt_path && source != MD_SCALE_SOURCE_ORACLE)
        rc = cli_usage_error(&cmd_predict, "--gt goes with --scale oracle");
    else if (!cli_parse_double(gt_div_s, &c.gt_divisor) || c.gt_divisor <= 0)
        rc = cli_usage_error(&cmd_predict, "--gt-divisor must be positive");
    else if (!cli_parse_pair(range_s, &c.scale.lo, &c.scale.hi) || c.scale.lo <= 0 ||
             c.scale.lo > c.scale.hi)
        rc = cli_usage_error(&cmd_predict, "--range wants LO,HI with 0 < LO <= HI");
    else if (!cli_parse_int(input_size_s, &mo.input_size) || mo.input_size < 0 ||
             !cli_parse_double(max_depth_s, &mo.max_depth) || mo.max_depth < 0 ||
             !cli_parse_int(threads_s, &mo.threads) || mo.threads < 0)
        rc = cli_usage_error(&cmd_predict, "--input-size, --max-depth, --threads want numbers >= 0");
    else if (md_precision_parse(precision_s) < 0)
        rc = cli_usage_error(&cmd_predict, "--precision is fp32, bf16 or auto (got '%s')",
                             precision_s);
    if (rc != 0) {
        free(pos);
        return rc;
    }
    c.scale.source = (md_scale_source)source;
    mo.precision = (md_precision)md_precision_parse(precision_s);
    c.scale.ungated = ungated;
    c.K = k_s ? &K : NULL;
    mo.relative = relative;

    md_error err = {0};
    if (cli_make_dirs(outdir, &err) != MD_OK) {
        free(pos);
        return cli_report(&err);
    }
    md_model *model = NULL;
    md_scale_model *scale_model = NULL;
    rc = cli_open_model(model_path, &mo, &model);
    if (rc == CLI_EXIT_OK)
        rc = cli_scale_setup(&c.scale, scale_model_s, model, &scale_model);
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
    md_scale_model_free(scale_model);
    free(pos);
    if (failed == 0)
        return CLI_EXIT_OK;
    return failed == npos ? CLI_EXIT_FAILURE : CLI_EXIT_PARTIAL;
}
