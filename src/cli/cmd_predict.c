#include "cli.h"

#include "base/pipe.h"
#include "base/pool.h"
#include "metricdepth_video.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int run(int argc, char **argv);

const cli_command cmd_predict = {
    "predict", "metric depth for images, folders, lists and videos (PNG/npy/PFM, preview, PLY)",
    "usage: metricdepth predict [options] INPUT... [-o DIR]\n\n"
    "INPUT is an image (PNG, JPEG, WebP, TIFF, BMP, PPM/PGM; JPEG EXIF orientation\n"
    "applied), a folder (every image and video below it, sorted; 16-bit grey PNG\n"
    "and PGM files, an RGB-D dataset's depth maps, are left out with a note), a .txt\n"
    "list (one path per line, relative to the list) or a video (.mp4, .mkv, .avi,\n"
    ".mov, ...).\n"
    "Per input NAME, written into DIR as one set (all files or none, even if killed):\n"
    "  NAME.depth.png     16-bit depth, metres x --png-divisor (default mm; 0 = invalid)\n"
    "  NAME.depth.npy     float32 depth in metres   (--outputs npy)\n"
    "  NAME.depth.pfm     float32 depth in metres   (--outputs pfm)\n"
    "  NAME.preview.png   colourised depth with a colour bar: near = blue (turbo),\n"
    "                     black (inferno) or white (--grayscale); the bar gives the range\n"
    "  NAME.ply           point cloud               (--outputs ply, or --ply)\n"
    "  NAME.json          what was done: scale source and scale, intrinsics, files,\n"
    "                     coverage, model kind\n"
    "A relative model (Depth Anything V2's relative checkpoints) writes\n"
    "NAME.disparity.{png,npy,pfm}: relative disparity, never metres. A video gives\n"
    "NAME.depth.mp4 (the preview as a video) and, with per-frame outputs, NAME/000001.*.\n"
    "NAME is the input's path below the folder or list it came from, or its file\n"
    "name; inputs that would share a name keep their extension or as many parent\n"
    "folders as it takes ('color/1', 'tum/1'). An input whose files are all there is\n"
    "skipped (a re-run resumes a batch); --overwrite redoes it.\n"
    "Pixels the network did not see (FastDepth's centre crop) are written as 0\n"
    "(invalid), with a warning giving the share that has depth.\n"
    "A bad input is reported and skipped (exit 3). Ctrl-C or SIGTERM stops cleanly:\n"
    "finished sets stay, the image in flight is dropped, exit 130 or 143.\n\n"
    "options:\n"
    "  --model FILE         depth network: FastDepth .onnx (default: the installed\n"
    "                       FastDepth), Depth Anything V2 .pth or .safetensors (the\n"
    "                       official names or transformers' layout with config.json)\n"
    "  -o, --output DIR     output folder (default: out); checked before any work\n"
    "  --outputs LIST       png16,npy,pfm,preview,ply,json,video (default\n"
    "                       png16,npy,preview,json; videos: video,json)\n"
    "  --pred-only          only the preview (as Depth Anything V2's run.py --pred-only)\n"
    "  --ply                add ply to the outputs\n"
    "  --overwrite          replace inputs' existing outputs (atomically)\n"
    "  --png-divisor D      16-bit PNG value = metres x D (default 1000 = mm; 256 =\n"
    "                       KITTI's, up to 256 m); clipped pixels are counted\n"
    "  --range MIN,MAX      preview range in metres, shared by the whole batch\n"
    "                       (default: each image's 2nd..98th percentile)\n"
    "  --grayscale          grey preview, near = white\n"
    "  --colormap NAME      turbo (default) or inferno\n"
    "  --side-by-side       preview with the RGB image on the left\n"
    "  --fov DEG            field of view across the longer side, for the point\n"
    "                       cloud and the sidecar (default 60, square pixels,\n"
    "                       principal point at the centre)\n"
    "  --intrinsics K       FX,FY,CX,CY[,W,H] or a file (fx fy cx cy or a 3x3 matrix,\n"
    "                       optionally followed by the width and height they are\n"
    "                       for: then scaled to each image's size)\n"
    "  --ply-stride N       every N-th row and column in the point cloud (default 1)\n"
    "  --ply-max-depth M    leave points beyond M metres out of the point cloud\n"
    "  --shard K/N          only the K-th of N equal parts of the sorted inputs\n"
    "  --scale MODE         where the scale that makes depth metric comes from:\n"
    "                       auto (default): the scale model (--scale-model, else\n"
    "                       the default one) when it was trained for the base\n"
    "                       model in use, applied through its confidence gate;\n"
    "                       else none.\n"
    "                       adaptive: the scale model's prediction through its\n"
    "                       gate, whatever base model it was trained for;\n"
    "                       oracle: the exact W1-optimal scale against --gt;\n"
    "                       anchors: fitted to metric measurements (--anchors);\n"
    "                       none: the network's metric output as it is.\n"
    "                       The gate keeps the base network's output (or shrinks\n"
    "                       towards it) where the scale model is unsure.\n"
    "  --scale-model FILE   scale model from 'metricdepth train' (default:\n"
    "                       $METRICDEPTH_SCALE_MODEL, else the shipped one)\n"
    "  --ungated            apply the scale model's prediction whatever its\n"
    "                       confidence\n"
    "  --gt FILE            ground truth for --scale oracle (one image only)\n"
    "  --gt-divisor D       raw/D = metres for integer gt files (default 1000)\n"
    "  --scale-range LO,HI  allowed oracle scale range (default 0.1,2)\n"
    "  --anchors FILE|DIR   metric measurements (implies --scale anchors): a text\n"
    "                       list 'u v depth_m [weight]' per line (pixel column and\n"
    "                       row of the input image, '#' comments) or a sparse depth\n"
    "                       image of the image's size (16-bit PNG in mm, .npy in m;\n"
    "                       0 = no measurement); a folder holds one per image,\n"
    "                       named like the image (STEM.txt, STEM.png or STEM.npy);\n"
    "                       a video's frames all use one file\n"
    "  --anchors-divisor D  raw/D = metres for an integer sparse image (default 1000)\n"
    "  --anchor-fit F       robust (default: median with outlier rejection, moved\n"
    "                       towards the least relative error), w1,\n"
    "                       median, lsq, or scale-shift (scale and shift in inverse\n"
    "                       depth; the default, and the only fit, for a relative\n"
    "                       network, whose output then becomes metric depth)\n"
    "  --scale-map          a pixel-wise scale map from the anchors instead of one\n"
    "                       scale (needs 8 anchors to depart from the global scale)\n"
    "  --sequence           the images (in the order given, a folder's by name) or a\n"
    "                       video's frames are consecutive: the scale is filtered over\n"
    "                       time so that it does not flicker (the sidecar keeps each\n"
    "                       frame's raw scale)\n"
    "  --fps F              frame rate of a sequence of images (default 30; a video's\n"
    "                       own)\n"
    "  --time-constant S    the filter's time constant (default 0.2 s)\n"
    "  --input-size N       DA2: network input's shorter side (default 518)\n"
    "  --max-depth M        DA2 metric head: max depth (default from config.json or\n"
    "                       the file name: 20 indoor, 80 vkitti/outdoor)\n"
    "  --relative, --metric DA2: the head kind, when the file does not tell (a flag\n"
    "                       that contradicts config.json or the official file name\n"
    "                       is obeyed, with a warning)\n"
    "  --threads N          network threads (default: all cores); with 1, also one\n"
    "                       thread writing outputs instead of two\n"
    "  --precision P        fp32 (default), bf16 (the matrix products in bfloat16: faster\n"
    "                       on CPUs with AVX512_BF16; depth within a few cm for Depth\n"
    "                       Anything V2, about 0.1 % for FastDepth) or auto (bf16 where\n"
    "                       the CPU has it)\n"
    "  -h, --help           this text\n\n"
    "examples:\n"
    "  metricdepth predict photo.jpg --ply -o out\n"
    "  metricdepth predict photos/ -o depth --outputs png16,json --range 0.5,8\n"
    "  metricdepth predict list.txt --model depth_anything_v2_metric_hypersim_vits.pth\n"
    "  metricdepth predict clip.mp4 -o out               # out/clip.depth.mp4\n"
    "  metricdepth predict photos/ --shard 2/8 -o depth   # one job of eight\n"
    "  metricdepth predict --scale none photo.jpg -o out   # raw network depth\n"
    "  metricdepth predict --anchors lidar.png --scale-map photo.jpg -o out\n"
    "  metricdepth predict --sequence --anchors anchors/ frames/ -o out\n",
    run};

/* ------------------------------------------------------------ settings */

typedef struct {
    md_write_options write;      /* which files, PNG divisor, preview, PLY */
    unsigned video_outputs;      /* the outputs of a video input (default video, json) */
    int overwrite;
    int have_K, have_fov;
    md_intrinsics K;             /* --intrinsics */
    int K_w, K_h;                /* the size K is for (0: the image's own) */
    char K_source[160];
    double fov;
    md_scale_options scale;
    const char *gt_path;         /* --scale oracle */
    double gt_divisor;
    int relative_model;          /* the written depth is relative disparity */
    const char *anchors;         /* --anchors FILE|DIR */
    double anchors_divisor;
    int sequence;                /* --sequence: filter the scale over frames */
    double fps;
} predict_config;

/* Ctrl-C and SIGTERM: the batch stops after the image in flight. A second
 * signal ends the process at once (its temporaries go at the next run). The
 * pipeline's threads read the flag too: a lock-free atomic is both safe to
 * set in a signal handler and free of data races between threads. */
static atomic_int stop_signal;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal flag must be a lock-free atomic");

static void on_signal(int sig)
{
    atomic_store(&stop_signal, sig);
    signal(sig, SIG_DFL);
}

static md_intrinsics intrinsics_for(const predict_config *c, int w, int h, char *how, size_t n)
{
    if (c->have_K) {
        if (c->K_w > 0 && (c->K_w != w || c->K_h != h)) {
            snprintf(how, n, "%s, scaled from %dx%d", c->K_source, c->K_w, c->K_h);
            return md_intrinsics_resize(&c->K, c->K_w, c->K_h, w, h);
        }
        snprintf(how, n, "%s", c->K_source);
        return c->K;
    }
    double fov = c->have_fov ? c->fov : MD_DEFAULT_FOV_DEG;
    snprintf(how, n, "%s %g degree field of view across the longer side, square pixels",
             c->have_fov ? "--fov:" : "default:", fov);
    return md_intrinsics_from_fov(w, h, fov);
}

/* --------------------------------------------------------- one image */

typedef struct {
    size_t index;        /* into the batch's inputs */
    md_image img;
    md_image_info info;
    md_depth depth, gt;
    md_scale_record rec;
    md_coverage cov;
    md_write_report wrote;
    md_intrinsics K;
    char K_how[256];
    md_error err;
    int stage_failed;
    md_anchor_set anchors;
    char anchors_name[1024];
} item;

typedef struct {
    const predict_config *c;
    md_model *model;
    md_output_dir *od;
    const md_input *inputs;
    size_t *todo;        /* indices into inputs of the images to run */
    size_t n_todo;
    cli_progress progress;
    size_t written, failed;
    int last_w, last_h;
    int crop_w, crop_h; /* the image size the crop warning was last given for */
    /* video */
    const md_input *video;
    md_video_reader *reader;
    md_video_writer *writer;
    md_output_set *video_set;
    md_video_info vinfo;
    cJSON *frames;       /* per-frame records */
    float video_range[2];
    size_t frame_no;
    md_scale_filter *filter; /* --sequence: one stream at a time (reset per video) */
    double frame_dt;         /* seconds between frames */
} batch;

static int load_image(void *user, size_t i, void *slot)
{
    batch *b = user;
    item *it = slot;
    memset(it, 0, sizeof *it);
    it->index = i;
    const md_input *in = &b->inputs[b->todo[i]];
    if (md_image_load_info(in->path, &it->img, &it->info, &it->err) != MD_OK)
        return -1;
    if (b->c->anchors &&
        cli_anchors_for_image(b->c->anchors, b->c->anchors_divisor, in->path, it->img.width,
                              it->img.height, &it->anchors, it->anchors_name,
                              sizeof it->anchors_name, &it->err) != 0)
        return -1;
    if (b->c->scale.source == MD_SCALE_SOURCE_ORACLE &&
        cli_load_depth(b->c->gt_path, b->c->gt_divisor, &it->gt, &it->err) != MD_OK)
        return -1;
    return 0;
}

static int run_network(void *user, size_t i, void *slot)
{
    batch *b = user;
    item *it = slot;
    (void)i;
    md_scale_options so = b->c->scale;
    if (it->gt.data)
        so.gt = &it->gt;
    if (it->anchors.count) {
        so.anchors = &it->anchors;
        so.anchors_name = it->anchors_name;
    }
    if (md_predict_metric(b->model, &it->img, &so, &it->depth, &it->rec, &it->err) != MD_OK)
        return -1;
    /* the run stage takes the items one at a time, in order: the filter sees
     * the frames as they come */
    if (b->filter &&
        md_scale_filter_apply(b->filter, (double)i * b->frame_dt, &it->depth, &it->rec,
                              &it->err) != MD_OK)
        return -1;
    md_depth_coverage(b->model, &it->depth, &it->cov);
    return 0;
}

static cJSON *intrinsics_json(const md_intrinsics *K, int w, int h, const char *how)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "fx", K->fx);
    cJSON_AddNumberToObject(o, "fy", K->fy);
    cJSON_AddNumberToObject(o, "cx", K->cx);
    cJSON_AddNumberToObject(o, "cy", K->cy);
    cJSON_AddNumberToObject(o, "width", w);
    cJSON_AddNumberToObject(o, "height", h);
    cJSON_AddNumberToObject(o, "fov_deg", md_intrinsics_fov(K, w, h));
    cJSON_AddStringToObject(o, "source", how);
    cJSON_AddStringToObject(o, "convention", "pixel centres at integer coordinates");
    return o;
}

/* The sidecar: the scale record as the lead keeps it, and beside it what this
 * command knows (files, intrinsics, coverage, the model's kind). */
static cJSON *sidecar(const batch *b, const char *image_path, const char *name,
                      unsigned outputs, const item *it)
{
    const predict_config *c = b->c;
    md_model_info info;
    md_model_get_info(b->model, &info);
    int rel = c->relative_model;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "image", image_path);
    cJSON_AddStringToObject(root, "model", md_model_file_name(b->model));
    if (rel)
        cJSON_AddNullToObject(root, "depth_unit");
    else
        cJSON_AddStringToObject(root, "depth_unit", "m");
    cJSON_AddStringToObject(root, "values", rel ? "relative disparity (no unit; near = large)"
                                                : "metric depth (metres)");
    cJSON_AddItemToObject(root, "scale", cli_scale_record_json(&it->rec));
    cJSON *mk = cJSON_AddObjectToObject(root, "model_kind");
    cJSON_AddStringToObject(mk, "describe", md_model_describe(b->model));
    cJSON_AddStringToObject(mk, "output", rel ? "relative" : "metric");
    if (info.max_depth > 0)
        cJSON_AddNumberToObject(mk, "max_depth", info.max_depth);
    if (info.indoor >= 0)
        cJSON_AddStringToObject(mk, "trained_on", info.indoor ? "indoor" : "outdoor");
    if (info.note[0])
        cJSON_AddStringToObject(mk, "note", info.note);
    cJSON *img = cJSON_AddObjectToObject(root, "input");
    cJSON_AddNumberToObject(img, "width", it->depth.width);
    cJSON_AddNumberToObject(img, "height", it->depth.height);
    cJSON_AddStringToObject(img, "format", it->info.format ? it->info.format : "");
    cJSON_AddNumberToObject(img, "exif_orientation", it->info.orientation);
    cJSON_AddItemToObject(root, "intrinsics",
                          intrinsics_json(&it->K, it->depth.width, it->depth.height, it->K_how));
    cJSON *cov = cJSON_AddObjectToObject(root, "coverage");
    cJSON_AddNumberToObject(cov, "share_with_depth", it->cov.coverage);
    cJSON_AddBoolToObject(cov, "outdoor_like", it->cov.outdoor_like != 0);
    cJSON_AddStringToObject(cov, "note", it->cov.note);
    cJSON *out = cJSON_AddObjectToObject(root, "outputs");
    static const unsigned kinds[] = {MD_OUT_PNG16, MD_OUT_NPY, MD_OUT_PFM, MD_OUT_PREVIEW,
                                     MD_OUT_PLY};
    static const char *const keys[] = {"png16", "npy", "pfm", "preview", "ply"};
    for (int k = 0; k < 5; k++) {
        if (!(outputs & kinds[k]))
            continue;
        char file[2048];
        const char *base = strrchr(name, '/');
        snprintf(file, sizeof file, "%s%s", base ? base + 1 : name, md_output_suffix(kinds[k], rel));
        cJSON *f = cJSON_AddObjectToObject(out, keys[k]);
        cJSON_AddStringToObject(f, "file", file);
        if (kinds[k] == MD_OUT_PNG16) {
            cJSON_AddNumberToObject(f, "divisor", it->wrote.png_divisor);
            cJSON_AddStringToObject(f, "meaning", rel ? "disparity = value / divisor"
                                                      : "metres = value / divisor, 0 = invalid");
            cJSON_AddNumberToObject(f, "clipped_pixels", (double)it->wrote.clipped);
        } else if (kinds[k] == MD_OUT_PREVIEW) {
            cJSON *r = cJSON_AddArrayToObject(f, "range");
            cJSON_AddItemToArray(r, cJSON_CreateNumber(it->wrote.range[0]));
            cJSON_AddItemToArray(r, cJSON_CreateNumber(it->wrote.range[1]));
            cJSON_AddStringToObject(f, "near", c->write.preview.grayscale ? "white"
                                               : c->write.preview.cmap == MD_COLORMAP_INFERNO
                                                   ? "black"
                                                   : "blue");
        } else if (kinds[k] == MD_OUT_PLY) {
            cJSON_AddNumberToObject(f, "stride", c->write.ply_stride);
            if (c->write.ply_max_depth > 0)
                cJSON_AddNumberToObject(f, "max_depth", c->write.ply_max_depth);
        }
    }
    return root;
}

/* Writes the set of one image (or one video frame) and commits it. */
static int save_set(batch *b, const char *name, const char *source, unsigned outputs, item *it)
{
    const predict_config *c = b->c;
    it->K = intrinsics_for(c, it->depth.width, it->depth.height, it->K_how, sizeof it->K_how);
    md_write_options wo = c->write;
    wo.K = it->K;
    wo.relative = c->relative_model;
    wo.outputs = outputs & ~(unsigned)(MD_OUT_JSON | MD_OUT_VIDEO);
    md_output_set *set = NULL;
    if (md_output_set_begin(b->od, &set, &it->err) != MD_OK)
        return -1;
    int rc = 0;
    if (md_write_depth_set(set, name, &it->depth, &it->img, &wo, &it->wrote, &it->err) != MD_OK)
        rc = -1;
    if (rc == 0 && (outputs & MD_OUT_JSON)) {
        char rel[4096];
        const char *path;
        snprintf(rel, sizeof rel, "%s.json", name);
        cJSON *root = sidecar(b, source, name, outputs, it);
        if (md_output_set_file(set, rel, &path, &it->err) != MD_OK ||
            cli_write_json(path, root, &it->err) != 0)
            rc = -1;
        cJSON_Delete(root);
    }
    if (rc == 0 && md_output_set_commit(set, &it->err) != MD_OK) {
        md_output_set_explain(set, &it->err);
        return -1; /* the commit freed the set */
    }
    if (rc != 0) {
        md_output_set_explain(set, &it->err);
        md_output_set_abort(set);
    }
    return rc;
}

static int save_image(void *user, size_t i, void *slot)
{
    batch *b = user;
    item *it = slot;
    const md_input *in = &b->inputs[b->todo[i]];
    return save_set(b, in->name, in->path, b->c->write.outputs, it);
}

/* Warnings about one item: printed once, before its result line. */
static void warn_item(batch *b, const char *path, item *it)
{
    if (it->info.channels == 1 && it->info.bit_depth == 16)
        fprintf(stderr, "warning: %s is a 16-bit grey image: a depth map, not a photo? (read as "
                        "RGB)\n", path);
    if (it->info.orientation > 1)
        fprintf(stderr, "%s: EXIF orientation %d applied (%dx%d as stored, %dx%d upright)\n",
                path, it->info.orientation, it->info.width0, it->info.height0, it->img.width,
                it->img.height);
    /* The crop alone depends only on the image size: said once for a run of
     * images of one size, not on every line of a folder of them. */
    if (it->cov.outdoor_like) {
        fprintf(stderr, "warning: %s: %s\n", path, it->cov.note);
    } else if (it->cov.note[0] &&
               (it->depth.width != b->crop_w || it->depth.height != b->crop_h)) {
        b->crop_w = it->depth.width;
        b->crop_h = it->depth.height;
        fprintf(stderr, "warning: %s: %s (said once for images of this size)\n", path,
                it->cov.note);
    }
    if (it->wrote.clipped)
        fprintf(stderr,
                "warning: %s: %zu pixels beyond %.3f m clipped in the 16-bit PNG (use "
                "--png-divisor %g or less, or .npy)\n",
                path, it->wrote.clipped, 65534.0 / b->c->write.png_divisor,
                floor(65534.0 / 100.0));
    if (it->depth.width != b->last_w || it->depth.height != b->last_h) {
        b->last_w = it->depth.width;
        b->last_h = it->depth.height;
        if (b->c->write.outputs & (MD_OUT_PLY | MD_OUT_JSON))
            fprintf(stderr, "intrinsics for %dx%d: fx %.2f fy %.2f cx %.2f cy %.2f (%s)\n",
                    it->depth.width, it->depth.height, it->K.fx, it->K.fy, it->K.cx, it->K.cy,
                    it->K_how);
    }
}

static void done_image(void *user, size_t i, void *slot, int failed)
{
    batch *b = user;
    item *it = slot;
    const md_input *in = &b->inputs[b->todo[i]];
    if (failed == MD_PIPE_DROPPED) {
        /* stopped before it ran: nothing to say */
    } else if (failed) {
        if (b->progress.tty)
            fputc('\n', stderr);
        fprintf(stderr, "metricdepth: error: %s (skipped)\n",
                it->err.message[0] ? it->err.message : in->path);
        b->failed++;
    } else {
        if (b->progress.tty)
            fputc('\n', stderr);
        warn_item(b, in->path, it);
        cli_print_scale_record(stdout, in->path, &it->rec);
        fflush(stdout);
        b->written++;
    }
    if (failed != MD_PIPE_DROPPED)
        cli_progress_step(&b->progress, in->name);
    md_image_free(&it->img);
    md_depth_free(&it->depth);
    md_depth_free(&it->gt);
    md_anchor_set_free(&it->anchors);
    md_scale_record_free(&it->rec);
}

/* ------------------------------------------------------------- videos */

static int load_frame(void *user, size_t i, void *slot)
{
    batch *b = user;
    item *it = slot;
    memset(it, 0, sizeof *it);
    it->index = i;
    int got = 0;
    if (md_video_read(b->reader, &it->img, &got, &it->err) != MD_OK)
        return -1;
    if (got && b->c->anchors &&
        cli_anchors_for_image(b->c->anchors, b->c->anchors_divisor, b->video->path,
                              it->img.width, it->img.height, &it->anchors, it->anchors_name,
                              sizeof it->anchors_name, &it->err) != 0)
        return -1;
    return got ? 0 : MD_PIPE_END;
}

static int save_frame(void *user, size_t i, void *slot)
{
    batch *b = user;
    item *it = slot;
    const predict_config *c = b->c;
    char name[4096];
    snprintf(name, sizeof name, "%s/%06zu", b->video->name, i + 1);
    unsigned per_frame = c->video_outputs & (MD_OUT_PNG16 | MD_OUT_NPY | MD_OUT_PFM |
                                             MD_OUT_PREVIEW | MD_OUT_PLY);
    if (per_frame && save_set(b, name, b->video->path, per_frame | MD_OUT_JSON, it) != 0)
        return -1;
    if (!per_frame)
        it->K = intrinsics_for(c, it->depth.width, it->depth.height, it->K_how,
                               sizeof it->K_how);
    if (c->video_outputs & MD_OUT_VIDEO) {
        md_preview_options po = c->write.preview;
        po.disparity = c->relative_model;
        if (c->write.side_by_side)
            po.rgb = &it->img;
        /* one range for the whole video, so that colours mean the same depth
         * in every frame: --range, else the first frame's */
        if (b->video_range[1] > b->video_range[0]) {
            po.vmin = b->video_range[0];
            po.vmax = b->video_range[1];
        }
        md_image frame;
        float range[2];
        if (md_depth_render_preview(&it->depth, &po, &frame, range, &it->err) != MD_OK)
            return -1;
        if (!(b->video_range[1] > b->video_range[0])) {
            b->video_range[0] = range[0];
            b->video_range[1] = range[1] > range[0] ? range[1] : range[0] + 1.0f;
        }
        md_status st = MD_OK;
        if (!b->writer) {
            const char *path;
            char rel[4096];
            snprintf(rel, sizeof rel, "%s%s", b->video->name,
                     md_output_suffix(MD_OUT_VIDEO, c->relative_model));
            st = md_output_set_file(b->video_set, rel, &path, &it->err);
            if (st == MD_OK)
                st = md_video_writer_open(path, frame.width, frame.height,
                                          b->vinfo.fps > 0 ? b->vinfo.fps : 25.0, &b->writer,
                                          &it->err);
            if (st != MD_OK)
                md_output_set_explain(b->video_set, &it->err);
        }
        if (st == MD_OK)
            st = md_video_write(b->writer, &frame, &it->err);
        md_image_free(&frame);
        if (st != MD_OK)
            return -1;
    }
    if (b->frames) {
        cJSON *f = cJSON_CreateObject();
        cJSON_AddNumberToObject(f, "frame", (double)(i + 1));
        cJSON_AddItemToObject(f, "scale", cli_scale_record_json(&it->rec));
        cJSON_AddNumberToObject(f, "coverage", it->cov.coverage);
        cJSON_AddItemToArray(b->frames, f);
    }
    return 0;
}

static void done_frame(void *user, size_t i, void *slot, int failed)
{
    batch *b = user;
    item *it = slot;
    if (failed && failed != MD_PIPE_DROPPED) {
        if (b->progress.tty)
            fputc('\n', stderr);
        fprintf(stderr, "metricdepth: error: %s: frame %zu: %s\n", b->video->path, i + 1,
                it->err.message);
        b->failed++;
    } else if (!failed) {
        if (i == 0)
            warn_item(b, b->video->path, it);
        b->frame_no = i + 1;
        cli_progress_step(&b->progress, b->video->name);
    }
    md_image_free(&it->img);
    md_depth_free(&it->depth);
    md_anchor_set_free(&it->anchors);
    md_scale_record_free(&it->rec);
}

/* One video: frames through the pipeline, then the depth video and the
 * sidecar committed as one set. Returns 0, or -1 (reported). */
static int predict_video(batch *b, const md_input *in)
{
    const predict_config *c = b->c;
    md_error err = {0};
    b->video = in;
    b->frames = cJSON_CreateArray();
    b->video_range[0] = c->write.preview.vmin;
    b->video_range[1] = c->write.preview.vmax;
    b->failed = 0;
    b->frame_no = 0;
    int rc = 0;
    if (md_video_open(in->path, &b->reader, &b->vinfo, &err) != MD_OK ||
        md_output_set_begin(b->od, &b->video_set, &err) != MD_OK) {
        fprintf(stderr, "metricdepth: error: %s (skipped)\n", err.message);
        md_video_close(b->reader);
        b->reader = NULL;
        cJSON_Delete(b->frames);
        b->frames = NULL;
        return -1;
    }
    fprintf(stderr, "%s: video %dx%d, %.3g frames/s, %s%s\n", in->path, b->vinfo.width,
            b->vinfo.height, b->vinfo.fps, b->vinfo.codec,
            b->vinfo.frames ? "" : ", length unknown");
    cli_progress_start(&b->progress, in->name, (size_t)b->vinfo.frames);
    if (b->filter) { /* a new stream */
        md_scale_filter_reset(b->filter);
        b->frame_dt = 1.0 / (b->vinfo.fps > 0 ? b->vinfo.fps : c->fps);
    }
    item slots[3];
    memset(slots, 0, sizeof slots);
    md_pipe_config pc = {.count = (size_t)-1, .load_threads = 1, .save_threads = 1,
                         .depth = 3, .slots = slots, .slot_size = sizeof(item), .user = b,
                         .load = load_frame, .run = run_network, .save = save_frame,
                         .done = done_frame, .stop = &stop_signal};
    md_pipe_stats ps;
    if (md_pipe_run(&pc, &ps) != 0) {
        fprintf(stderr, "metricdepth: error: cannot start threads\n");
        rc = -1;
    }
    cli_progress_finish(&b->progress);
    md_video_close(b->reader);
    b->reader = NULL;
    if (rc == 0 && (ps.stopped || ps.failed || ps.done == 0)) {
        if (ps.done == 0 && !ps.stopped && !ps.failed)
            fprintf(stderr, "metricdepth: error: %s: no frame decoded (skipped)\n", in->path);
        rc = -1;
    }
    md_status st = MD_OK;
    if (b->writer) {
        if (rc == 0)
            st = md_video_writer_close(b->writer, &err);
        else
            md_video_writer_abort(b->writer);
        b->writer = NULL;
    }
    if (rc == 0 && st == MD_OK && (c->video_outputs & MD_OUT_JSON)) {
        char rel[4096];
        const char *path;
        snprintf(rel, sizeof rel, "%s.json", in->name);
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "video", in->path);
        cJSON_AddStringToObject(root, "model", md_model_file_name(b->model));
        if (c->relative_model)
            cJSON_AddNullToObject(root, "depth_unit");
        else
            cJSON_AddStringToObject(root, "depth_unit", "m");
        cJSON_AddNumberToObject(root, "fps", b->vinfo.fps);
        cJSON_AddNumberToObject(root, "frames_written", (double)b->frame_no);
        char how[256];
        md_intrinsics K = intrinsics_for(c, b->vinfo.width, b->vinfo.height, how, sizeof how);
        cJSON_AddItemToObject(root, "intrinsics",
                              intrinsics_json(&K, b->vinfo.width, b->vinfo.height, how));
        if (c->video_outputs & MD_OUT_VIDEO) {
            cJSON *v = cJSON_AddObjectToObject(root, "depth_video");
            char file[2048];
            const char *base = strrchr(in->name, '/');
            snprintf(file, sizeof file, "%s%s", base ? base + 1 : in->name,
                     md_output_suffix(MD_OUT_VIDEO, c->relative_model));
            cJSON_AddStringToObject(v, "file", file);
            cJSON *r = cJSON_AddArrayToObject(v, "range");
            cJSON_AddItemToArray(r, cJSON_CreateNumber(b->video_range[0]));
            cJSON_AddItemToArray(r, cJSON_CreateNumber(b->video_range[1]));
        }
        cJSON_AddItemToObject(root, "frames", b->frames);
        b->frames = NULL;
        if (md_output_set_file(b->video_set, rel, &path, &err) != MD_OK ||
            cli_write_json(path, root, &err) != 0)
            st = MD_ERR_IO;
        cJSON_Delete(root);
    }
    cJSON_Delete(b->frames);
    b->frames = NULL;
    if (rc == 0 && st == MD_OK) {
        st = md_output_set_commit(b->video_set, &err);
        b->video_set = NULL;
    }
    if (st != MD_OK) {
        if (b->video_set)
            md_output_set_explain(b->video_set, &err);
        fprintf(stderr, "metricdepth: error: %s (skipped)\n", err.message);
        rc = -1;
    }
    if (b->video_set)
        md_output_set_abort(b->video_set);
    b->video_set = NULL;
    if (rc == 0)
        printf("%s: %zu frames\n", in->path, b->frame_no);
    b->video = NULL;
    return rc;
}

/* ------------------------------------------------------------ the batch */

/* Whether every file of the input's set is already there. */
static int outputs_exist(const predict_config *c, const char *dir, const md_input *in)
{
    static const unsigned kinds[] = {MD_OUT_PNG16, MD_OUT_NPY,  MD_OUT_PFM,  MD_OUT_PREVIEW,
                                     MD_OUT_PLY,   MD_OUT_JSON, MD_OUT_VIDEO};
    int any = 0;
    unsigned outputs = in->kind == MD_INPUT_VIDEO ? c->video_outputs : c->write.outputs;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        unsigned f = kinds[k];
        if (!(outputs & f))
            continue;
        if (in->kind == MD_INPUT_VIDEO && f != MD_OUT_JSON && f != MD_OUT_VIDEO)
            continue; /* frames: the video's sidecar is written last */
        if (in->kind == MD_INPUT_IMAGE && f == MD_OUT_VIDEO)
            continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s%s", dir, in->name,
                 md_output_suffix(f, c->relative_model));
        if (access(path, F_OK) != 0)
            return 0;
        any = 1;
    }
    return any;
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
    const char *model_path = NULL, *outdir = "out", *k_s = NULL, *scale_s = NULL;
    const char *scale_model_s = NULL, *outputs_s = NULL, *fov_s = NULL, *range_s = NULL;
    const char *gt_path = NULL, *gt_div_s = NULL, *scale_range_s = NULL, *cmap_s = NULL;
    const char *input_size_s = NULL, *max_depth_s = NULL, *threads_s = "0";
    const char *precision_s = "fp32";
    const char *png_div_s = NULL, *stride_s = NULL, *ply_max_s = NULL, *shard_s = NULL;
    bool ply = false, relative = false, metric = false, ungated = false, pred_only = false;
    bool overwrite = false, grayscale = false, side_by_side = false;
    const char *anchors_s = NULL, *anchors_div_s = NULL, *anchor_fit_s = NULL, *fps_s = NULL;
    const char *tau_s = NULL;
    bool scale_map = false, sequence = false;
    cli_option options[] = {{"model", 0, true, &model_path, NULL},
                            {"output", 'o', true, &outdir, NULL},
                            {"outputs", 0, true, &outputs_s, NULL},
                            {"pred-only", 0, false, NULL, &pred_only},
                            {"ply", 0, false, NULL, &ply},
                            {"overwrite", 0, false, NULL, &overwrite},
                            {"png-divisor", 0, true, &png_div_s, NULL},
                            {"range", 0, true, &range_s, NULL},
                            {"grayscale", 0, false, NULL, &grayscale},
                            {"colormap", 0, true, &cmap_s, NULL},
                            {"side-by-side", 0, false, NULL, &side_by_side},
                            {"fov", 0, true, &fov_s, NULL},
                            {"intrinsics", 0, true, &k_s, NULL},
                            {"ply-stride", 0, true, &stride_s, NULL},
                            {"ply-max-depth", 0, true, &ply_max_s, NULL},
                            {"shard", 0, true, &shard_s, NULL},
                            {"scale", 0, true, &scale_s, NULL},
                            {"scale-model", 0, true, &scale_model_s, NULL},
                            {"ungated", 0, false, NULL, &ungated},
                            {"gt", 0, true, &gt_path, NULL},
                            {"gt-divisor", 0, true, &gt_div_s, NULL},
                            {"scale-range", 0, true, &scale_range_s, NULL},
                            {"input-size", 0, true, &input_size_s, NULL},
                            {"max-depth", 0, true, &max_depth_s, NULL},
                            {"relative", 0, false, NULL, &relative},
                            {"metric", 0, false, NULL, &metric},
                            {"threads", 0, true, &threads_s, NULL},
                            {"anchors", 0, true, &anchors_s, NULL},
                            {"anchors-divisor", 0, true, &anchors_div_s, NULL},
                            {"anchor-fit", 0, true, &anchor_fit_s, NULL},
                            {"scale-map", 0, false, NULL, &scale_map},
                            {"sequence", 0, false, NULL, &sequence},
                            {"fps", 0, true, &fps_s, NULL},
                            {"time-constant", 0, true, &tau_s, NULL},
                            {"precision", 0, true, &precision_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    int rc = cli_parse(&cmd_predict, argc, argv, options, pos, &npos);
    if (rc != 0) {
        free(pos);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    predict_config c;
    memset(&c, 0, sizeof c);
    c.write = md_write_defaults();
    c.overwrite = overwrite;
    c.gt_path = gt_path;
    c.gt_divisor = 1000;
    c.scale = md_scale_options_default();
    if (!scale_s) /* --anchors alone means anchors */
        scale_s = anchors_s ? "anchors" : "auto";
    int source = md_scale_source_parse(scale_s);
    int fit = anchor_fit_s ? md_anchor_fit_parse(anchor_fit_s) : MD_ANCHOR_FIT_ROBUST;
    md_scale_filter_options fo = md_scale_filter_defaults();
    c.anchors_divisor = 1000;
    c.fps = 30;
    md_model_options mo = {0};
    int shard_k = 1, shard_n = 1;
    char bad[80];
    md_error err = {0};
    const cli_command *cmd = &cmd_predict;
    /* --- flags: each checked against the others before any work */
    if (npos == 0)
        rc = cli_usage_error(cmd, "give at least one image, folder, list or video");
    else if (outputs_s && pred_only)
        rc = cli_usage_error(cmd, "--pred-only is --outputs preview: give one of them");
    else if (outputs_s && md_outputs_parse(outputs_s, &c.write.outputs, bad, sizeof bad) != 0)
        rc = cli_usage_error(cmd, "--outputs: unknown output '%s' (png16, npy, pfm, preview, "
                                  "ply, json, video)", bad);
    else if (source < 0)
        rc = cli_usage_error(cmd, "--scale is auto, adaptive, oracle, anchors or none (got '%s')",
                             scale_s);
    else if (source == MD_SCALE_SOURCE_ANCHORS && !anchors_s)
        rc = cli_usage_error(cmd, "--scale anchors needs --anchors FILE|DIR");
    else if ((anchors_s || anchors_div_s || anchor_fit_s || scale_map) &&
             source != MD_SCALE_SOURCE_ANCHORS)
        rc = cli_usage_error(cmd, "--anchors, --anchors-divisor, --anchor-fit and --scale-map "
                                  "go with --scale anchors, not %s", scale_s);
    else if (fit < 0)
        rc = cli_usage_error(cmd, "--anchor-fit is robust, w1, median, lsq or scale-shift (got "
                                  "'%s')", anchor_fit_s);
    else if (scale_map && fit == MD_ANCHOR_FIT_SCALE_SHIFT)
        rc = cli_usage_error(cmd, "--scale-map refines a scale-only fit, not scale-shift");
    else if (anchors_div_s &&
             (!cli_parse_double(anchors_div_s, &c.anchors_divisor) || c.anchors_divisor <= 0))
        rc = cli_usage_error(cmd, "--anchors-divisor must be positive");
    else if ((fps_s || tau_s) && !sequence)
        rc = cli_usage_error(cmd, "--fps and --time-constant go with --sequence");
    else if (sequence && source == MD_SCALE_SOURCE_ANCHORS && fit == MD_ANCHOR_FIT_SCALE_SHIFT)
        rc = cli_usage_error(cmd, "--sequence filters one scale; a scale-shift fit has two");
    else if (fps_s && (!cli_parse_double(fps_s, &c.fps) || c.fps <= 0))
        rc = cli_usage_error(cmd, "--fps wants a positive number");
    else if (tau_s && (!cli_parse_double(tau_s, &fo.time_constant_s) || fo.time_constant_s <= 0))
        rc = cli_usage_error(cmd, "--time-constant wants seconds > 0");
    else if (scale_model_s && source != MD_SCALE_SOURCE_AUTO && source != MD_SCALE_SOURCE_ADAPTIVE)
        rc = cli_usage_error(cmd, "--scale-model goes with --scale auto or adaptive, not %s",
                             scale_s);
    else if (ungated && source != MD_SCALE_SOURCE_AUTO && source != MD_SCALE_SOURCE_ADAPTIVE)
        rc = cli_usage_error(cmd, "--ungated goes with --scale auto or adaptive, not %s", scale_s);
    else if (source == MD_SCALE_SOURCE_ORACLE && (!gt_path || npos != 1))
        rc = cli_usage_error(cmd, "--scale oracle needs --gt and exactly one image");
    else if ((gt_path || gt_div_s || scale_range_s) && source != MD_SCALE_SOURCE_ORACLE)
        rc = cli_usage_error(cmd, "--%s goes with --scale oracle",
                             gt_path ? "gt" : gt_div_s ? "gt-divisor" : "scale-range");
    else if (gt_div_s && (!cli_parse_double(gt_div_s, &c.gt_divisor) || c.gt_divisor <= 0))
        rc = cli_usage_error(cmd, "--gt-divisor must be positive");
    else if (scale_range_s && (!cli_parse_pair(scale_range_s, &c.scale.lo, &c.scale.hi) ||
                               c.scale.lo <= 0 || c.scale.lo > c.scale.hi))
        rc = cli_usage_error(cmd, "--scale-range wants LO,HI with 0 < LO <= HI");
    else if (relative && metric)
        rc = cli_usage_error(cmd, "--relative and --metric contradict each other");
    else if ((input_size_s && (!cli_parse_int(input_size_s, &mo.input_size) || mo.input_size < 14)) ||
             (max_depth_s && (!cli_parse_double(max_depth_s, &mo.max_depth) || mo.max_depth <= 0)) ||
             !cli_parse_int(threads_s, &mo.threads) || mo.threads < 0)
        rc = cli_usage_error(cmd, "--input-size wants a number >= 14, --max-depth > 0, "
                                  "--threads >= 0");
    else if (shard_s && !cli_parse_shard(shard_s, &shard_k, &shard_n))
        rc = cli_usage_error(cmd, "--shard wants K/N with 1 <= K <= N (got '%s')", shard_s);
    else if (md_precision_parse(precision_s) < 0)
        rc = cli_usage_error(cmd, "--precision is fp32, bf16 or auto (got '%s')", precision_s);
    if (rc != 0) {
        free(pos);
        return rc;
    }
    if (pred_only)
        c.write.outputs = MD_OUT_PREVIEW;
    /* a video gives a depth video unless the outputs are chosen */
    c.video_outputs = outputs_s ? c.write.outputs : pred_only ? MD_OUT_VIDEO
                                                              : MD_OUT_VIDEO | MD_OUT_JSON;
    if (ply) {
        c.write.outputs |= MD_OUT_PLY;
        c.video_outputs |= MD_OUT_PLY;
    }
    unsigned o = c.write.outputs | c.video_outputs;
    double d;
    /* flags whose output is not being written are mistakes, not no-ops */
    if (png_div_s && !(o & MD_OUT_PNG16))
        rc = cli_usage_error(cmd, "--png-divisor applies to the png16 output, which is off");
    else if (png_div_s && (!cli_parse_double(png_div_s, &c.write.png_divisor) ||
                           c.write.png_divisor <= 0))
        rc = cli_usage_error(cmd, "--png-divisor must be positive");
    else if ((range_s || grayscale || side_by_side || cmap_s) &&
             !(o & (MD_OUT_PREVIEW | MD_OUT_VIDEO)))
        rc = cli_usage_error(cmd, "--%s applies to the preview, which is off",
                             range_s ? "range" : grayscale ? "grayscale"
                                                : side_by_side ? "side-by-side" : "colormap");
    else if (range_s && !cli_parse_range_f(range_s, &c.write.preview.vmin, &c.write.preview.vmax))
        rc = cli_usage_error(cmd, "--range wants MIN,MAX with MIN < MAX");
    else if (cmap_s && strcmp(cmap_s, "turbo") != 0 && strcmp(cmap_s, "inferno") != 0)
        rc = cli_usage_error(cmd, "--colormap is turbo or inferno (got '%s')", cmap_s);
    else if ((stride_s || ply_max_s) && !(o & MD_OUT_PLY))
        rc = cli_usage_error(cmd, "--%s applies to the point cloud: add --ply",
                             stride_s ? "ply-stride" : "ply-max-depth");
    else if (stride_s && (!cli_parse_int(stride_s, &c.write.ply_stride) || c.write.ply_stride < 1))
        rc = cli_usage_error(cmd, "--ply-stride wants a whole number >= 1");
    else if (ply_max_s && (!cli_parse_double(ply_max_s, &d) || d <= 0))
        rc = cli_usage_error(cmd, "--ply-max-depth wants metres > 0");
    else if ((k_s || fov_s) && !(o & (MD_OUT_PLY | MD_OUT_JSON)))
        rc = cli_usage_error(cmd, "--%s applies to the point cloud and the sidecar, which are off",
                             k_s ? "intrinsics" : "fov");
    else if (k_s && fov_s)
        rc = cli_usage_error(cmd, "--intrinsics and --fov both set the camera: give one");
    else if (fov_s && (!cli_parse_double(fov_s, &c.fov) || c.fov <= 0 || c.fov >= 180))
        rc = cli_usage_error(cmd, "--fov wants degrees in (0, 180)");
    if (rc != 0) {
        free(pos);
        return rc;
    }
    if (ply_max_s)
        c.write.ply_max_depth = (float)d;
    c.write.preview.grayscale = grayscale;
    c.write.side_by_side = side_by_side;
    if (cmap_s && strcmp(cmap_s, "inferno") == 0)
        c.write.preview.cmap = MD_COLORMAP_INFERNO;
    c.have_fov = fov_s != NULL;
    if (k_s) {
        /* a file, or numbers on the command line */
        md_status st = access(k_s, F_OK) == 0
                           ? md_intrinsics_load(k_s, &c.K, &c.K_w, &c.K_h, &err)
                           : md_intrinsics_parse(k_s, "--intrinsics", &c.K, &c.K_w, &c.K_h, &err);
        if (st != MD_OK) {
            free(pos);
            return access(k_s, F_OK) == 0 ? cli_report(&err)
                                           : cli_usage_error(cmd, "%s", err.message);
        }
        c.have_K = 1;
        snprintf(c.K_source, sizeof c.K_source, "--intrinsics %.120s", k_s);
    }
    c.scale.source = (md_scale_source)source;
    c.scale.ungated = ungated;
    c.scale.anchor_fit = (md_anchor_fit)fit;
    c.scale.scale_map = scale_map;
    c.anchors = anchors_s;
    c.sequence = sequence;
    mo.relative = relative ? MD_HEAD_RELATIVE : metric ? MD_HEAD_METRIC : MD_HEAD_AUTO;
    mo.precision = (md_precision)md_precision_parse(precision_s);

    /* from here a signal stops the batch cleanly (also while the model loads) */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    /* --- the output folder first: a bad one is found before any work */
    md_output_dir *od = NULL;
    md_output_dir_report rep;
    if (md_output_dir_open(outdir, &od, &rep, &err) != MD_OK) {
        free(pos);
        return cli_report(&err);
    }
    if (rep.recovered_sets || rep.removed_files)
        fprintf(stderr, "%s: finished %zu output sets of an interrupted run, removed %zu "
                        "unfinished files\n", outdir, rep.recovered_sets, rep.removed_files);

    /* --- inputs */
    md_input_list inputs;
    memset(&inputs, 0, sizeof inputs);
    md_model *model = NULL;
    md_scale_model *scale_model = NULL;
    size_t *todo = NULL;
    int status = CLI_EXIT_FAILURE;
    /* before the first goto: the exit path frees its filter */
    batch b;
    memset(&b, 0, sizeof b);
    inputs.skip_depth_maps = 1; /* an RGB-D dataset's folder holds its depth maps too */
    if (md_inputs_exclude(&inputs, outdir, &err) != MD_OK)
        goto report;
    for (int i = 0; i < npos; i++)
        if (md_inputs_add(&inputs, pos[i], &err) != MD_OK)
            goto report;
    if (md_inputs_finish(&inputs, &err) != MD_OK)
        goto report;
    if (inputs.duplicates)
        fprintf(stderr, "note: %zu input%s named twice, predicted once\n", inputs.duplicates,
                inputs.duplicates == 1 ? "" : "s");
    if (inputs.depth_maps)
        fprintf(stderr, "note: left out %zu 16-bit grey image%s found in folders (depth maps, "
                        "such as %s); name one directly or in a list to predict it as a photo\n",
                inputs.depth_maps, inputs.depth_maps == 1 ? "" : "s", inputs.first_depth_map);
    if (shard_n > 1) {
        size_t total = inputs.count;
        if (md_inputs_shard(&inputs, shard_k, shard_n, &err) != MD_OK)
            goto report;
        fprintf(stderr, "shard %d/%d: %zu of %zu inputs\n", shard_k, shard_n, inputs.count, total);
    }
    if (source == MD_SCALE_SOURCE_ORACLE && inputs.count != 1) {
        free(pos);
        md_input_list_free(&inputs);
        md_output_dir_close(od);
        return cli_usage_error(cmd, "--scale oracle needs exactly one image");
    }

    /* --- the model, and flags that do not fit it */
    rc = cli_open_model(model_path, &mo, &model);
    if (rc != CLI_EXIT_OK)
        goto done;
    md_model_info info;
    md_model_get_info(model, &info);
    int is_da2 = strstr(md_model_describe(model), "depth-anything") != NULL;
    if (!is_da2 && (input_size_s || max_depth_s || relative || metric)) {
        rc = cli_usage_error(cmd, "--%s applies to Depth Anything V2, not %s",
                             input_size_s ? "input-size" : max_depth_s ? "max-depth"
                                           : relative ? "relative" : "metric",
                             md_model_file_name(model));
        goto done;
    }
    c.relative_model = info.output == MD_OUTPUT_RELATIVE;
    if (c.relative_model && source == MD_SCALE_SOURCE_ANCHORS) {
        /* anchors turn disparity into metric depth, by scale and shift only */
        if (anchor_fit_s && fit != MD_ANCHOR_FIT_SCALE_SHIFT) {
            rc = cli_usage_error(cmd, "%s outputs relative disparity: its anchors need "
                                      "--anchor-fit scale-shift", md_model_file_name(model));
            goto done;
        }
        if (sequence) {
            rc = cli_usage_error(cmd, "--sequence filters one scale; a relative network's "
                                      "anchors fit a scale and a shift");
            goto done;
        }
        c.scale.anchor_fit = MD_ANCHOR_FIT_SCALE_SHIFT;
        c.scale.base_is_disparity = 1;
        c.relative_model = 0; /* what is written is metric */
    }
    if (c.relative_model && (source == MD_SCALE_SOURCE_ORACLE || source == MD_SCALE_SOURCE_ADAPTIVE)) {
        rc = cli_usage_error(cmd, "--scale %s needs metric depth; %s outputs relative disparity",
                             scale_s, md_model_file_name(model));
        goto done;
    }
    if (c.relative_model && (o & MD_OUT_PLY)) {
        rc = cli_usage_error(cmd, "a point cloud needs metric depth; %s outputs relative "
                                  "disparity (no metres)", md_model_file_name(model));
        goto done;
    }
    rc = cli_scale_setup(&c.scale, scale_model_s, model, &scale_model);
    if (rc != CLI_EXIT_OK)
        goto done;
    fprintf(stderr, "model: %s\n", md_model_describe(model));
    if (info.note[0])
        fprintf(stderr, "warning: %s\n", info.note);
    if (c.relative_model)
        fprintf(stderr, "note: relative model: writing relative disparity (NAME.disparity.*), "
                        "not metres\n");

    /* --- what is left to do */
    todo = calloc(inputs.count + 1, sizeof *todo);
    if (!todo) {
        fprintf(stderr, "metricdepth: error: out of memory\n");
        goto done;
    }
    size_t n_images = 0, n_videos = 0, skipped = 0;
    for (size_t i = 0; i < inputs.count; i++) {
        if (!c.overwrite && outputs_exist(&c, outdir, &inputs.items[i])) {
            skipped++;
            continue;
        }
        if (inputs.items[i].kind == MD_INPUT_IMAGE)
            todo[n_images++] = i;
        else
            n_videos++;
    }
    if (skipped)
        fprintf(stderr, "%zu input%s already done in %s/ (use --overwrite to redo)\n", skipped,
                skipped == 1 ? "" : "s", outdir);

    b.c = &c;
    b.model = model;
    b.od = od;
    b.inputs = inputs.items;
    b.todo = todo;
    b.n_todo = n_images;
    b.frame_dt = 1.0 / c.fps;
    if (c.sequence && md_scale_filter_new(&fo, &b.filter, &err) != MD_OK) {
        rc = cli_report(&err);
        goto done;
    }
    size_t failed = 0, written = 0;
    if (n_images) {
        /* Two savers: the default outputs (two PNGs, .npy, JSON) cost a
         * 640x480 FastDepth image more CPU than its network, and one saver
         * thread was the pipeline's bottleneck (1.3x the throughput on the
         * two-core VM). Results are still reported in input order. One
         * when the user keeps the network to one thread (a CPU budget) or
         * the machine has one core. */
        int savers = mo.threads == 1 || md_cpu_count() < 2 ? 1 : 2;
        item slots[6];
        memset(slots, 0, sizeof slots);
        md_pipe_config pc = {.count = n_images, .load_threads = 1, .save_threads = savers,
                             .depth = 6, .slots = slots, .slot_size = sizeof(item), .user = &b,
                             .load = load_image, .run = run_network, .save = save_image,
                             .done = done_image, .stop = &stop_signal};
        md_pipe_stats ps;
        cli_progress_start(&b.progress, "predict", n_images);
        if (md_pipe_run(&pc, &ps) != 0) {
            fprintf(stderr, "metricdepth: error: cannot start threads\n");
            goto done;
        }
        cli_progress_finish(&b.progress);
        failed += b.failed;
        written += b.written;
    }
    for (size_t i = 0; i < inputs.count && !atomic_load(&stop_signal); i++) {
        if (inputs.items[i].kind != MD_INPUT_VIDEO ||
            (!c.overwrite && outputs_exist(&c, outdir, &inputs.items[i])))
            continue;
        if (predict_video(&b, &inputs.items[i]) == 0)
            written++;
        else if (!atomic_load(&stop_signal))
            failed++;
    }
    size_t total = n_images + n_videos;
    int stopped_by = atomic_load(&stop_signal);
    if (stopped_by) {
        fprintf(stderr,
                "metricdepth: stopped by %s: %zu of %zu inputs written to %s/, %zu failed; the "
                "rest were not started and no unfinished file is left\n",
                stopped_by == SIGINT ? "SIGINT" : "SIGTERM", written, total, outdir, failed);
        status = 128 + stopped_by;
        goto done;
    }
    fprintf(stderr, "wrote %zu of %zu inputs to %s/\n", written, total, outdir);
    status = failed == 0 ? CLI_EXIT_OK : written == 0 ? CLI_EXIT_FAILURE : CLI_EXIT_PARTIAL;
    goto done;
report:
    status = cli_report(&err);
done:
    if (rc != CLI_EXIT_OK && status == CLI_EXIT_FAILURE)
        status = rc;
    md_scale_filter_free(b.filter);
    md_output_dir_close(od);
    md_model_free(model);
    md_scale_model_free(scale_model);
    md_input_list_free(&inputs);
    free(todo);
    free(pos);
    return status;
}
