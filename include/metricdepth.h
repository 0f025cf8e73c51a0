/*
 * metricdepth: metric depth from one RGB image, in C.
 *
 * Conventions that hold for the whole API:
 *  - Every fallible function returns md_status and, on failure, fills the
 *    caller's md_error (which may be NULL) with a message naming the file and
 *    the problem. Nothing prints, exits or aborts.
 *  - Structs returned through out-parameters own their memory; release them
 *    with the matching *_free function (safe on zeroed structs).
 *  - Depth is float metres. A depth pixel is valid when it is finite, > 0 and,
 *    if the map carries a mask, mask[i] != 0. Readers store invalid pixels as 0.
 *  - Every file writer writes a temporary file beside the target and renames it,
 *    so a failure never leaves a partial output.
 *  - No global mutable state: all state lives in the objects you pass.
 *  - Thread safety: functions without a handle are reentrant. Plain structs
 *    (md_image, md_depth, md_tensor, md_pair_list, ...) are data: any number of
 *    threads may read one, none may write it meanwhile. Each handle states its
 *    own contract: md_threadpool, md_model and md_scale_model are shared
 *    freely between threads once loaded.
 */
#ifndef METRICDEPTH_H
#define METRICDEPTH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MD_VERSION_STRING "0.2.0"

/* ---------------------------------------------------------------- errors */

typedef enum {
    MD_OK = 0,
    MD_ERR_ARG = 1,         /* the caller passed an invalid argument */
    MD_ERR_IO = 2,          /* a file could not be opened, read or written */
    MD_ERR_FORMAT = 3,      /* a file is corrupt, truncated or not of the expected format */
    MD_ERR_UNSUPPORTED = 4, /* a well-formed input uses a feature we do not support */
    MD_ERR_NOMEM = 5,       /* out of memory, or a size beyond our limits */
    MD_ERR_DATA = 6         /* data unusable: no valid pixel, size mismatch, NaN */
} md_status;

typedef struct {
    md_status code;
    char message[512];
} md_error;

/* "ok", "invalid argument", "i/o error", ... */
const char *md_status_name(md_status status);

/* The library's version at run time ("0.1.0"); MD_VERSION_STRING is the
 * header's. */
const char *md_version(void);

/* Writes size bytes to path atomically (a temporary file beside it, then a
 * rename), as every writer of the library does: for an application's own
 * sidecar files. */
md_status md_file_write_atomic(const char *path, const void *data, size_t size, md_error *err);

/* ---------------------------------------------------------------- images */

/* 8-bit RGB, interleaved, row-major, no padding. */
typedef struct {
    int width, height;
    uint8_t *pixels; /* width*height*3 */
} md_image;

/* Reads PNG (8/16-bit, grey/RGB/palette/alpha: converted to 8-bit RGB), JPEG,
 * WebP, TIFF, BMP (uncompressed), PPM/PGM (P5/P6, maxval up to 65535). The
 * format is detected from the bytes. The EXIF orientation of a JPEG (and the
 * orientation tag of a TIFF) is applied: a portrait phone photo comes out
 * upright. */
md_status md_image_load(const char *path, md_image *out, md_error *err);

/* What md_image_load_info found in the file. */
typedef struct {
    const char *format;  /* "png", "jpeg", "webp", "tiff", "bmp", "ppm", "pgm" */
    int channels;        /* as stored: 1 grey, 2 grey + alpha, 3 colour, 4 colour + alpha */
    int bit_depth;       /* bits per sample as stored (PNG, PNM; 8 otherwise) */
    int orientation;     /* the EXIF/TIFF orientation applied (1 = none, 6 = rotated 90 cw, ...) */
    int width0, height0; /* the size as stored, before the orientation */
} md_image_info;

/* md_image_load, also telling what the file held (info may be NULL). A 16-bit
 * grey image is usually a depth map, not a photo: callers can warn. */
md_status md_image_load_info(const char *path, md_image *out, md_image_info *info,
                             md_error *err);
/* Applies an EXIF orientation (1..8) in place: 2 mirror, 3 rotate 180, 4 flip,
 * 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise. */
md_status md_image_orient(md_image *img, int orientation, md_error *err);
/* Writes an 8-bit RGB PNG. */
md_status md_image_save_png(const char *path, const md_image *img, md_error *err);

/* Layouts of a caller's pixel buffer. */
typedef enum {
    MD_PIXELS_RGB = 0,  /* 3 bytes per pixel */
    MD_PIXELS_BGR = 1,  /* OpenCV's order */
    MD_PIXELS_RGBA = 2, /* 4 bytes, alpha ignored */
    MD_PIXELS_BGRA = 3,
    MD_PIXELS_GRAY = 4  /* 1 byte, copied to all three channels */
} md_pixel_format;

/* Copies a caller's 8-bit image (rows stride bytes apart, stride >= width x
 * bytes per pixel) into a new md_image: camera frames and decoded video go
 * in without a file. */
md_status md_image_from_pixels(const uint8_t *pixels, int width, int height, size_t stride,
                               md_pixel_format format, md_image *out, md_error *err);
void md_image_free(md_image *img);

/* ----------------------------------------------------------- depth maps */

typedef struct {
    int width, height;
    float *data;   /* width*height metres; invalid = 0 */
    uint8_t *mask; /* optional: 1 = valid; NULL = every finite positive pixel is valid */
} md_depth;

typedef enum {
    MD_DEPTH_PLAIN = 0,      /* metres = raw / divisor */
    MD_DEPTH_SUN_ROTATED = 1 /* SUN RGB-D: mm = (v >> 3) | (v << 13), 16 bits, then / divisor */
} md_depth_encoding;

typedef struct {
    double divisor;             /* raw integer / divisor = metres; 0 = 1000 (mm). Ignored for float files */
    md_depth_encoding encoding;
    int keep_65535;             /* 0 (default): raw 65535 is invalid (7-Scenes saturation marker) */
} md_depth_read_options;

/* Reads a depth map: 16-bit PNG, 16-bit PGM (P5, big-endian), .npy
 * (float32/float64/uint16, 2-D or with singleton leading dims, C order), PFM.
 * Integer formats are divided by opts->divisor; float formats are metres.
 * Non-finite or negative values become 0 (invalid). opts may be NULL. */
md_status md_depth_load(const char *path, const md_depth_read_options *opts, md_depth *out,
                        md_error *err);
/* Writes by extension: .png (16-bit, millimetres, rounded, 0 = invalid, clipped
 * to 65.534 m because readers take 65535 as invalid), .npy (float32), .pfm (float32, little-endian). */
md_status md_depth_save(const char *path, const md_depth *depth, md_error *err);
/* 16-bit PNG with raw = round(metres x divisor) (1000: mm, the default of
 * md_depth_save; 256: KITTI's), 0 = invalid. Values above 65534 / divisor are
 * written as 65534 and counted in *clipped (may be NULL). */
md_status md_depth_save_png16(const char *path, const md_depth *depth, double divisor,
                              size_t *clipped, md_error *err);
md_status md_depth_alloc(md_depth *d, int width, int height, md_error *err);
/* Copies depth into a caller's float buffer (rows stride bytes apart, stride
 * >= width x 4), invalid pixels as invalid_value (0, or NAN). */
md_status md_depth_export(const md_depth *depth, float *dst, size_t stride, float invalid_value,
                          md_error *err);
void md_depth_free(md_depth *d);
static inline int md_depth_valid_at(const md_depth *d, size_t i)
{
    float v = d->data[i];
    return v > 0.0f && v < 3.0e38f && (d->mask == NULL || d->mask[i] != 0);
}

typedef enum { MD_COLORMAP_TURBO = 0, MD_COLORMAP_INFERNO = 1 } md_colormap;

/* Colourised preview PNG: invalid pixels black. vmin == vmax == 0 picks the
 * range automatically (2nd..98th percentile of valid pixels). Near = low end. */
md_status md_depth_save_preview(const char *path, const md_depth *depth, md_colormap cmap,
                                float vmin, float vmax, md_error *err);
/* Maps t in [0,1] to 8-bit RGB. */
void md_colormap_lookup(md_colormap cmap, float t, uint8_t rgb[3]);
/* The automatic preview range: 2nd and 98th percentiles of the valid pixels
 * (0, 0 when none is valid). */
md_status md_depth_auto_range(const md_depth *depth, float *vmin, float *vmax, md_error *err);

/* Previews with a colour bar. Convention: near is the left, low end of the bar
 * (blue in turbo, black in inferno, white in grey); the bar's labels give the
 * range ("near 0.52 m" ... "4.31 m far"). */
typedef struct {
    md_colormap cmap;
    int grayscale;       /* a grey ramp instead of the colour map: near = white */
    float vmin, vmax;    /* the range drawn (metres, or disparity); 0, 0 = automatic */
    int colorbar;        /* draw the bar with the range under the image */
    int disparity;       /* values are relative disparity (near = large; no unit) */
    const md_image *rgb; /* side by side: the image on the left (same size), or NULL */
} md_preview_options;

md_preview_options md_preview_defaults(void); /* turbo, automatic range, colour bar */
/* Renders the preview into a new image; range (may be NULL) gets the range used. */
md_status md_depth_render_preview(const md_depth *depth, const md_preview_options *opts,
                                  md_image *out, float range[2], md_error *err);
md_status md_depth_save_preview_ex(const char *path, const md_depth *depth,
                                   const md_preview_options *opts, float range[2], md_error *err);

/* ------------------------------------------------------ generic tensors */

/* A dense float32 array, C order. Used for .npy I/O and raw network runs. */
typedef struct {
    int ndim;
    int64_t shape[8];
    float *data;
} md_tensor;

/* .npy reader: float32, float64, uint16 (and int/uint 8..64, bool) converted to float32. */
md_status md_npy_load(const char *path, md_tensor *out, md_error *err);
md_status md_npy_save(const char *path, const md_tensor *t, md_error *err);
size_t md_tensor_numel(const md_tensor *t);
void md_tensor_free(md_tensor *t);

/* --------------------------------------------------------- point clouds */

typedef struct {
    double fx, fy, cx, cy;
} md_intrinsics;

/* NYU Depth V2 colour camera: 518.8579, 519.4696, 325.5824, 253.7362. */
md_intrinsics md_intrinsics_nyu(void);

/* Pixel convention: pixel (u, v) has its centre at integer coordinates. */

/* The field of view assumed when the camera is unknown: 60 degrees across the
 * image's longer side. */
#define MD_DEFAULT_FOV_DEG 60.0
/* Square pixels (fx = fy), principal point at the image centre ((W-1)/2,
 * (H-1)/2), focal length f = (L/2) / tan(fov/2) with L the longer side in
 * pixels. Zeros for a bad size or fov outside (0, 180). */
md_intrinsics md_intrinsics_from_fov(int width, int height, double fov_deg);
/* K of a from_w x from_h image, for the same image resized to to_w x to_h:
 * fx' = fx sx, cx' = (cx + 0.5) sx - 0.5 (and the same in y). */
md_intrinsics md_intrinsics_resize(const md_intrinsics *K, int from_w, int from_h, int to_w,
                                   int to_h);
/* The field of view (degrees) across the longer side that K gives at this size. */
double md_intrinsics_fov(const md_intrinsics *K, int width, int height);
/* Parses "fx fy cx cy [width height]" or a 3x3 matrix "fx 0 cx 0 fy cy 0 0 1"
 * [width height] (numbers separated by spaces, commas, semicolons or lines,
 * '#' comments). width/height (may be NULL) get the size K was made for, 0
 * when not given. what names the source in messages. */
md_status md_intrinsics_parse(const char *text, const char *what, md_intrinsics *K, int *width,
                              int *height, md_error *err);
/* The same from a text file (e.g. a dataset's camera-intrinsics.txt). */
md_status md_intrinsics_load(const char *path, md_intrinsics *K, int *width, int *height,
                             md_error *err);
/* A point cloud in memory: n points, xyz (3 floats each, metres, camera frame:
 * x right, y down, z forward) and rgb (3 bytes each, NULL without colour). */
typedef struct {
    size_t n;
    float *xyz;
    uint8_t *rgb;
} md_pointcloud;

/* Back-projects the valid pixels of depth (every stride-th row and column,
 * depth <= max_depth when max_depth > 0) with K; colours from rgb when given
 * (same size as depth). An empty cloud (n = 0) is not an error. */
md_status md_pointcloud_from_depth(const md_depth *depth, const md_image *rgb,
                                   const md_intrinsics *K, int stride, float max_depth,
                                   md_pointcloud *out, md_error *err);
void md_pointcloud_free(md_pointcloud *cloud);

/* Back-projects valid pixels (every stride-th row and column, depth <= max_depth
 * when max_depth > 0) to a binary little-endian PLY: float x y z in metres
 * (camera frame: x right, y down, z forward) and uchar red green blue from rgb
 * (grey when rgb is NULL; rgb must match the depth size). */
md_status md_pointcloud_save_ply(const char *path, const md_depth *depth, const md_image *rgb,
                                 const md_intrinsics *K, int stride, float max_depth,
                                 md_error *err);

/* ------------------------------------------------- batches: inputs, outputs */

/* What predict reads: images and videos, from files, folders and lists. */
typedef enum { MD_INPUT_IMAGE = 0, MD_INPUT_VIDEO = 1 } md_input_kind;

typedef struct {
    char *path;         /* the file to read */
    char *name;         /* output name: relative path without extension ("color/1"),
                           unique in the list after md_inputs_finish */
    md_input_kind kind;
} md_input;

typedef struct {
    md_input *items;
    size_t count, cap;
    size_t ignored;     /* files in scanned folders that are neither images nor videos */
    size_t duplicates;  /* the same file named twice, kept once */
    char *exclude;      /* canonical path of a folder never scanned (md_inputs_exclude) */
    int skip_depth_maps;    /* set before md_inputs_add: folder scans leave out 16-bit
                               greyscale PNG and PGM files (RGB-D datasets' depth maps) */
    size_t depth_maps;      /* how many they left out */
    char *first_depth_map;  /* the first of them (freed by md_input_list_free) */
} md_input_list;

/* Appends arg: a file (named by its file name), a folder (every image and
 * video below it, recursively, in sorted order, hidden entries and symbolic
 * links to folders skipped, and 16-bit grey PNG/PGM depth maps too when
 * list->skip_depth_maps is set; named by the path below the folder) or a .txt/.lst
 * list (one path per line, '#' comments, relative to the list's folder; named
 * by the path as written). Images are recognised by their bytes, videos by
 * their extension. A folder with nothing usable is an error. */
md_status md_inputs_add(md_input_list *list, const char *arg, md_error *err);
/* Leaves dir out of every folder scan (the output folder inside an input folder). */
md_status md_inputs_exclude(md_input_list *list, const char *dir, md_error *err);
/* Drops repeated files, makes the names unique (colliding names keep their
 * extension, else as many parent folders as it takes: "color/1", "tum/1") and
 * sorts the list by name. */
md_status md_inputs_finish(md_input_list *list, md_error *err);
/* Keeps shard k of n (1 <= k <= n): the k-th of n contiguous blocks of the
 * list, sizes differing by at most one, so that shards concatenated in order
 * give the whole list. */
md_status md_inputs_shard(md_input_list *list, int k, int n, md_error *err);
/* The block [*begin, *end) of shard k of n over count items. */
md_status md_shard_range(size_t count, int k, int n, size_t *begin, size_t *end, md_error *err);
void md_input_list_free(md_input_list *list);
/* 1 when the path's extension is a video container's (.mp4, .mkv, .avi, .mov, ...). */
int md_path_is_video(const char *path);

/* mkdir -p. */
md_status md_make_dirs(const char *path, md_error *err);

/* Output sets: all files of one image appear together or not at all, even if
 * the process is killed; two runs writing into one folder never mix their
 * sets; what a killed run left is finished or removed by the next run that
 * opens the folder. Thread safety: one md_output_dir may be shared by threads;
 * each md_output_set is used by one thread at a time. */
typedef struct md_output_dir md_output_dir;
typedef struct md_output_set md_output_set;

typedef struct {
    size_t recovered_sets, recovered_files; /* killed runs' sets completed from their journals */
    size_t removed_files;                   /* killed runs' unfinished files removed */
} md_output_dir_report;

/* Creates dir if needed, checks it is writable, and cleans up after killed
 * runs (rep may be NULL). */
md_status md_output_dir_open(const char *dir, md_output_dir **out, md_output_dir_report *rep,
                             md_error *err);
const char *md_output_dir_path(const md_output_dir *od);
/* Removes this run's unfinished files. */
void md_output_dir_close(md_output_dir *od);
md_status md_output_set_begin(md_output_dir *od, md_output_set **out, md_error *err);
/* Where to write the file that will appear as rel (relative to the folder,
 * e.g. "color/1.depth.png"): a temporary path with the same extension, valid
 * until the set is committed or aborted. */
md_status md_output_set_file(md_output_set *set, const char *rel, const char **path,
                             md_error *err);
/* Moves every file of the set into place (creating subfolders) and frees the set. */
md_status md_output_set_commit(md_output_set *set, md_error *err);
/* Deletes the set's files and frees it. */
void md_output_set_abort(md_output_set *set);

/* The files written for one prediction (md_write_depth_set). */
enum {
    MD_OUT_PNG16 = 1,    /* NAME.depth.png: 16-bit, metres x divisor (default mm) */
    MD_OUT_NPY = 2,      /* NAME.depth.npy: float32 metres */
    MD_OUT_PFM = 4,      /* NAME.depth.pfm: float32 metres */
    MD_OUT_PREVIEW = 8,  /* NAME.preview.png: colourised, with a colour bar */
    MD_OUT_PLY = 16,     /* NAME.ply: point cloud (metric depth only) */
    MD_OUT_JSON = 32,    /* NAME.json: the sidecar (written by the application) */
    MD_OUT_VIDEO = 64    /* NAME.depth.mp4: colourised depth video (video inputs) */
};
/* Relative disparity is written as NAME.disparity.{png,npy,pfm,mp4}, never
 * as depth: md_output_suffix(flag, relative) gives the suffix. */
const char *md_output_suffix(unsigned flag, int relative);
/* Parses "png16,npy,pfm,preview,ply,json,video" ("png" = png16); -1 on an
 * unknown name (copied to bad). */
int md_outputs_parse(const char *list, unsigned *flags, char *bad, size_t bad_size);

typedef struct {
    unsigned outputs;           /* MD_OUT_* bits; JSON and VIDEO are the caller's */
    double png_divisor;         /* raw = metres x divisor; default 1000 (mm) */
    md_preview_options preview; /* colour map, range, grey, colour bar */
    int side_by_side;           /* preview: the RGB image left of the depth */
    md_intrinsics K;            /* for the point cloud, at the depth map's size */
    int ply_stride;             /* every stride-th row and column (default 1) */
    float ply_max_depth;        /* points beyond are left out; 0 = no limit */
    int relative;               /* the values are relative disparity, not metres */
} md_write_options;

typedef struct {
    size_t clipped;             /* PNG pixels beyond 65534 / divisor, written as 65534 */
    double png_divisor;         /* the divisor used (relative: 65534 / the largest value) */
    float range[2];             /* the preview's range */
} md_write_report;

md_write_options md_write_defaults(void); /* png16, npy, preview, json; mm; turbo */
/* Writes the chosen files of NAME into the set (not yet committed). img is the
 * image the depth came from (PLY colours, side-by-side preview). */
md_status md_write_depth_set(md_output_set *set, const char *name, const md_depth *depth,
                             const md_image *img, const md_write_options *opts,
                             md_write_report *rep, md_error *err);
/* Rewrites err's message so it names the final files, not the set's temporaries. */
void md_output_set_explain(const md_output_set *set, md_error *err);

/* ------------------------------------------------------------- datasets */

typedef struct {
    char *rgb_path;
    char *depth_path;
    double depth_divisor;       /* metres = raw / divisor */
    md_depth_encoding encoding; /* written as divisor token "sun" in pair lists */
    int has_intrinsics;
    md_intrinsics K;
} md_pair;

typedef struct {
    md_pair *items;
    size_t count;
} md_pair_list;

/* Pair list file: one pair per line, "rgb_path depth_path [divisor|sun] [fx fy cx cy]",
 * '#' starts a comment. Relative paths are relative to the list file's folder. Appends. */
md_status md_pairs_read_list(const char *path, md_pair_list *list, md_error *err);
/* Detects the known dataset layouts below dir (NYU BTS, DenseDepth, 3DMatch/7-Scenes,
 * KITTI/Metric3D, TUM, slambook, Open3D test data) and appends the pairs in a stable order. */
md_status md_pairs_detect(const char *dir, md_pair_list *list, md_error *err);
/* Writes the list in the pair-list format (with a header comment). */
md_status md_pairs_write(FILE *f, const md_pair_list *list, md_error *err);
/* The same into a file, atomically. */
md_status md_pairs_save(const char *path, const md_pair_list *list, md_error *err);
md_status md_pair_list_append(md_pair_list *list, const md_pair *pair, md_error *err);
void md_pair_list_free(md_pair_list *list);
/* Loads the pair's ground-truth depth with its divisor and encoding. */
md_status md_pair_load_depth(const md_pair *pair, md_depth *out, md_error *err);

/* Renders the built-in sample scene (a furnished room, procedurally textured)
 * with exact metric depth: the embedded default input of `metricdepth demo` and
 * a ground truth for tests. variant picks the camera pose (0..3). */
md_status md_render_sample_scene(int width, int height, int variant, md_image *rgb,
                                 md_depth *depth, md_intrinsics *K, md_error *err);

/* -------------------------------------------------------- optimal scale */

typedef enum {
    MD_SCALE_W1 = 0,     /* argmin W1(s*pred, gt): exact weighted median, O(n log n) */
    MD_SCALE_W2 = 1,     /* argmin W2(s*pred, gt): closed form on sorted values */
    MD_SCALE_MEDIAN = 2, /* median(gt) / median(pred) */
    MD_SCALE_LSQ = 3,    /* argmin sum (s*p - g)^2 */
    MD_SCALE_LOGLSQ = 4  /* argmin sum (log s + log p - log g)^2 */
} md_scale_method;

/* Parses "w1", "w2", "median", "lsq", "loglsq". Returns -1 if unknown. */
int md_scale_method_parse(const char *name);
const char *md_scale_method_name(md_scale_method m);

/* Fits s over n paired samples (already filtered: all finite and > 0), clamped
 * to [lo, hi]. Fails with MD_ERR_DATA when n == 0. */
md_status md_scale_fit(const float *pred, const float *gt, size_t n, md_scale_method method,
                       double lo, double hi, double *scale, md_error *err);
/* W1 distance between the empirical distributions of scale*pred and gt (equal counts:
 * the mean |scale*p_(i) - g_(i)| over sorted values). */
double md_w1_distance(const float *pred, const float *gt, size_t n, double scale);

/* Collects the pixels valid in both maps (same size required) into new arrays. */
md_status md_depth_valid_samples(const md_depth *pred, const md_depth *gt, float **pred_out,
                                 float **gt_out, size_t *n_out, md_error *err);

/* --------------------------------------------------------------- metrics */

typedef enum {
    MD_PROTOCOL_SEED = 0, /* valid = gt > 0 and pred > 0, whole image */
    MD_PROTOCOL_EIGEN = 1 /* crop rows 45..470, cols 41..600 of 480x640 (scaled for other
                             sizes), gt in (1e-3, 10), pred clipped to [1e-3, 10]; under
                             both protocols a pixel without a valid prediction (<= 0,
                             non-finite, or outside pred's mask) is left out */
} md_protocol;

int md_protocol_parse(const char *name); /* "seed" | "eigen", -1 if unknown */

typedef struct {
    double abs_rel, sq_rel, rmse, rmse_log, log10, silog;
    double delta1, delta2, delta3; /* fractions in [0,1] */
    size_t n_valid;
} md_metrics;

/* Per-image metrics. SILog = sqrt(mean(e^2) - 0.5 mean(e)^2), e = ln pred - ln gt
 * (Depth Anything V2's definition, unscaled). Fails with MD_ERR_DATA if no pixel is valid. */
md_status md_metrics_compute(const md_depth *pred, const md_depth *gt, md_protocol protocol,
                             md_metrics *out, md_error *err);
/* Mean of per-image metrics (n_valid summed). */
void md_metrics_mean(const md_metrics *items, size_t n, md_metrics *out);

/* How one prediction's error depends on its scale: metrics of s x pred
 * against gt for any s, from a fixed few kilobytes (the sums behind RMSE and
 * a quantile sketch of pred/gt). RMSE is exact; AbsRel and delta1 are within
 * about 1/MD_CURVE_POINTS of exact. Seed protocol (pixels valid in both). */
#define MD_CURVE_POINTS 1024
typedef struct {
    float q[MD_CURVE_POINTS]; /* mid-quantiles of pred/gt */
    size_t n;                 /* pixels */
    double sum_p2, sum_pg, sum_g2;
} md_scale_curve;

md_status md_scale_curve_build(const md_depth *pred, const md_depth *gt, md_scale_curve *out,
                               md_error *err);
/* abs_rel, rmse, delta1 and n_valid of s x pred; the other fields NaN. */
void md_scale_curve_eval(const md_scale_curve *curve, double s, md_metrics *out);

/* ------------------------------------------------- base network features */

/* What the base network computed besides depth: the per-channel means of its
 * encoder's activations, a fixed-length description of the image as the
 * network saw it (the encoder scale predictor reads it). signature tells
 * which layers produced them: equal for the same architecture. n = 0 when the
 * backend gives none (Depth Anything V2, for now). */
typedef struct {
    size_t n;
    float *values;
    uint64_t signature;
} md_features;

void md_features_free(md_features *features);

/* ------------------------------------------------------- scale models */

/* A scale model predicts ln s* per image, so that exp(prediction) x base
 * depth is metric, and says how far to trust it (md_scale_model_estimate).
 * Thread safety: a loaded or trained model is read-only; every call on it may
 * run from several threads at once. */
typedef struct md_scale_model md_scale_model;

typedef enum {
    MD_SCALE_ARCH_PAPER = 0,   /* the seed's RGB-only CNN: conv3x3 3->64, ReLU, maxpool2,
                                  conv3x3 64->128, ReLU, maxpool2, FC 128*56*56 -> 512, ReLU,
                                  FC 512 -> 1 (205.6 M params) */
    MD_SCALE_ARCH_COMPACT = 1, /* RGB-only: conv stages + global average pooling + small MLP */
    MD_SCALE_ARCH_ENCODER = 2  /* the default: ridge ensemble on the base network's encoder
                                  features, with a distance from the training data and a gate
                                  calibrated on it (docs/adaptive-scaling.md) */
} md_scale_arch;

int md_scale_arch_parse(const char *name); /* "paper" | "compact" | "encoder", -1 if unknown */
const char *md_scale_arch_name(md_scale_arch arch);

typedef struct {
    int epoch, epochs;     /* 1-based epoch being run */
    int batch, batches;    /* 1-based batch within the epoch */
    double train_loss;     /* running mean MSE of this epoch so far */
    double val_loss;       /* last validation MSE, NaN before the first */
    double elapsed_s, eta_s;
} md_train_progress;

typedef struct {
    md_scale_arch arch;    /* default MD_SCALE_ARCH_ENCODER */
    /* encoder */
    double alpha;          /* ridge strength (lambda = alpha x features); 0 (default): chosen by
                              leave-one-group-out CV, or 10 with fewer than two groups */
    int members;           /* bootstrap members of the ensemble (default 10) */
    /* CNNs */
    int input_size;        /* square network input (default 224) */
    int epochs;            /* default 30 */
    int batch_size;        /* default 30 */
    double lr;             /* Adam learning rate, default 1e-3 */
    double beta1, beta2, eps; /* default 0.9, 0.999, 1e-8 */
    int step_size;         /* learning-rate decay every step_size epochs (default 10) */
    double gamma;          /* by this factor (default 0.5) */
    double val_fraction;   /* held out for validation (default 0.2) */
    int val_every;         /* validate every N epochs (default 5) */
    /* all */
    uint64_t seed;         /* CNNs: split, init, shuffling; encoder: bootstrap and calibration
                              folds (default 0) */
    int threads;           /* 0 = all cores */
    const char *base_model;   /* recorded in the saved model's metadata */
    const char *list_hash;    /* hash of the training list, recorded too */
    void (*progress)(void *user, const md_train_progress *p); /* may be NULL */
    void *progress_user;
} md_train_options;

md_train_options md_train_defaults(void);

/* What training did. CNNs: per-epoch losses (train_loss[e] every epoch,
 * val_loss[e] NaN where no validation ran). Encoder: no epochs; summary
 * describes the choice of alpha and the gate's calibration. Free with
 * md_train_log_free. */
typedef struct {
    int epochs;
    double *train_loss;
    double *val_loss;
    size_t n_train, n_val;
    char *summary; /* may be NULL */
} md_train_log;

/* One training image. */
typedef struct {
    const md_image *image;        /* CNNs (NULL for the encoder) */
    const md_features *features;  /* the encoder: the base network's features for the image */
    const md_scale_curve *curve;  /* the encoder: the base prediction's error against its scale
                                     (md_scale_curve_build), for choosing alpha and checking the
                                     gate; NULL: ln-space errors instead */
    double log_scale;             /* the target ln s* */
    const char *group;            /* the sequence or dataset it comes from (e.g. its folder);
                                     groups under 10 images are merged into one */
} md_scale_sample;

/* Trains a scale model of opts->arch on n samples. */
md_status md_scale_model_fit(const md_scale_sample *samples, size_t n,
                             const md_train_options *opts, md_scale_model **out,
                             md_train_log *log, md_error *err);
/* The CNNs on images alone (PyTorch default init, MSE on ln s, Adam, step
 * decay); deterministic for a seed and thread count. */
md_status md_scale_model_train(const md_image *images, const double *log_scales, size_t n,
                               const md_train_options *opts, md_scale_model **out,
                               md_train_log *log, md_error *err);
void md_train_log_free(md_train_log *log);

md_scale_arch md_scale_model_arch(const md_scale_model *model);
/* The predicted ln s for one image as it is (no gate; the CNNs only need img,
 * the encoder only features). */
md_status md_scale_model_predict(const md_scale_model *model, const md_image *img,
                                 const md_features *features, double *log_scale, md_error *err);
/* .safetensors with metadata (architecture, base model, list hash and each
 * architecture's constants). */
md_status md_scale_model_save(const md_scale_model *model, const char *path, md_error *err);
md_status md_scale_model_load(const char *path, md_scale_model **out, md_error *err);
/* "encoder scale model, 7280 features, 363 images, trained for fastdepth_7.onnx" */
const char *md_scale_model_describe(const md_scale_model *model);
/* The base model name recorded at training time ("" if none). */
const char *md_scale_model_base(const md_scale_model *model);
void md_scale_model_free(md_scale_model *model);

/* ----------------------------------------------------------- thread pools */

/* A team of worker threads the library's kernels split their work over.
 * Every model has one: its own (md_model_options.threads) or the
 * application's (md_model_options.pool), which several models may share.
 *
 * Thread safety: md_threadpool_threads may be called from any thread. Any
 * number of threads (and models) may use one pool at once: one parallel
 * region owns the team at a time and a caller that finds it busy runs its
 * work on its own thread instead of waiting, with the same results.
 * md_threadpool_free must not race with any use, and comes after every model
 * using the pool is freed. */
typedef struct md_threadpool md_threadpool;

/* threads: the team's size, the calling thread included (0 = one per online
 * CPU; 1 = no extra threads: everything runs on the caller). */
md_status md_threadpool_create(int threads, md_threadpool **out, md_error *err);
int md_threadpool_threads(const md_threadpool *pool);
void md_threadpool_free(md_threadpool *pool);

/* -------------------------------------------------------------- runtime */

/* What the kernels run on, for benchmarks and bug reports. */
typedef struct {
    char cpu[64];             /* the processor's brand string, with its x86 family and model */
    int cpus;                 /* online CPUs */
    const char *fp32_kernels; /* "avx512" or "generic C" */
    const char *bf16_kernels; /* "avx512_bf16" or "bf16 emulated in C" */
    int amx_bf16;             /* the CPU has AMX-BF16 tiles (not used by the kernels yet) */
} md_runtime_info;

void md_runtime_describe(md_runtime_info *out);

/* Measured on the calling thread in about 0.1 s of its CPU time: the clock
 * (a chain of dependent integer additions, one per cycle) and how many
 * float32 FMA and bf16 dot-product flops the kernels' instructions retire
 * per cycle (16 independent chains). Peak GFLOP/s of n cores = n x ghz x
 * flop_per_cycle. Zero where the CPU lacks the instructions. */
typedef struct {
    double ghz, fp32_flop_per_cycle, bf16_flop_per_cycle;
} md_cpu_throughput;

void md_cpu_measure(md_cpu_throughput *out);

/* ---------------------------------------------------------------- models */

/* A depth network: weights, immutable after md_model_load, and a thread pool.
 *
 * Thread safety: every function taking a const md_model * (predict,
 * predict_ex, run_tensor, features, gflop, gflop_bf16, describe) may be
 * called from any number of threads at once on one model (each call has its
 * own activations: DA2 allocates them per call, the
 * ONNX backend takes a workspace from a small cache behind a mutex, as ONNX
 * Runtime's Run), and give the same bits as on one thread. This is the
 * model/state split of llama.cpp and whisper.cpp without a handle to manage:
 * weights are shared, state is per call. md_model_free must not race with
 * any other use. */
typedef struct md_model md_model;

/* The arithmetic of the matrix products (the bulk of a network's work). */
typedef enum {
    MD_PRECISION_FP32 = 0, /* float32 throughout: matches the reference implementations */
    MD_PRECISION_BF16 = 1, /* weights converted to bfloat16 once at load, products of bf16
                              values summed in float32. Depth Anything V2: LayerNorm, softmax,
                              GELU and residual sums stay float32; ONNX models: the
                              convolutions' products only (depthwise layers stay float32).
                              Native on CPUs with AVX512_BF16, emulated (slowly) elsewhere */
    MD_PRECISION_AUTO = 2  /* bf16 where the CPU multiplies bf16 natively, else fp32 */
} md_precision;

/* "fp32" | "bf16" | "auto"; -1 if unknown. */
int md_precision_parse(const char *name);
const char *md_precision_name(md_precision precision);

/* Depth Anything V2's head: relative and metric checkpoints hold the same
 * tensors, so the kind is read from config.json's depth_estimation_type (the
 * transformers layout), else the official file names
 * (depth_anything_v2_vits.pth is relative, depth_anything_v2_metric_*.pth
 * metric), else taken as metric. */
enum { MD_HEAD_AUTO = 0, MD_HEAD_RELATIVE = 1, MD_HEAD_METRIC = 2 };

typedef struct {
    int threads;       /* own pool of this many (0 = all cores); ignored when pool is set */
    md_threadpool *pool; /* the application's pool (borrowed: must outlive the model), or NULL */
    int input_size;    /* DA2: shorter side target (default 518); 0 = model default */
    double max_depth;  /* DA2 metric head: 0 = from config.json or the file name (20 indoor
                          hypersim, 80 outdoor vkitti; 20 when neither says) */
    int relative;      /* DA2 head: MD_HEAD_AUTO (0, from the file), MD_HEAD_RELATIVE (1:
                          ReLU, relative disparity) or MD_HEAD_METRIC (2: sigmoid x max_depth).
                          A kind that contradicts the file is used, with a note in md_model_info */
    md_precision precision; /* default fp32; bf16 and auto apply to Depth Anything V2 and to
                               ONNX models alike */
} md_model_options;

/* What a model outputs. */
typedef enum {
    MD_OUTPUT_METRIC = 0,  /* depth in metres */
    MD_OUTPUT_RELATIVE = 1 /* relative disparity (inverse depth up to an unknown scale and
                              shift, no unit; near = large): never metres until a scale
                              source makes it metric */
} md_output_kind;

typedef struct {
    md_output_kind output;
    double max_depth;      /* the largest depth a metric head can give; 0 unknown or unbounded */
    int indoor;            /* 1 trained on indoor scenes, 0 outdoor, -1 unknown */
    int crop_aspect_w, crop_aspect_h; /* the network sees only a centre crop of this aspect
                                         (FastDepth: 4:3); 0 when it sees the whole image */
    char note[320];        /* what the loader decided and why, e.g. a flag that contradicts the
                              checkpoint; "" when nothing to say */
} md_model_info;

/* Opens a depth network; the backend is chosen by the file (ONNX, .pth, .safetensors). */
md_status md_model_load(const char *path, const md_model_options *opts, md_model **out,
                        md_error *err);
/* Full pipeline: preprocess, run, map back to the image size. out->mask marks the
 * pixels the network actually saw (e.g. FastDepth's centre crop). */
md_status md_model_predict(const md_model *model, const md_image *img, md_depth *out,
                           md_error *err);

/* The length of the features this model gives (0: none) and their signature. */
size_t md_model_features(const md_model *model, uint64_t *signature);
/* md_model_predict that also returns the encoder features (features may be
 * NULL); they come from the same forward pass, at the cost of a few
 * additions. */
md_status md_model_predict_ex(const md_model *model, const md_image *img, md_depth *out,
                              md_features *features, md_error *err);
/* The network input md_model_predict makes of img (what run_tensor takes):
 * with md_model_run_tensor, the network alone, e.g. to time it. */
md_status md_model_preprocess(const md_model *model, const md_image *img, md_tensor *out,
                              md_error *err);
/* Raw network on an already preprocessed NCHW (or CHW) tensor. */
md_status md_model_run_tensor(const md_model *model, const md_tensor *input, md_tensor *output,
                              md_error *err);
/* Arithmetic of one forward pass at this image size in GFLOP (multiply-add = 2),
 * 0 if the backend cannot tell. For benchmarks. */
double md_model_gflop(const md_model *model, int width, int height);
/* Of md_model_gflop, the part whose products run in bf16: 0 at fp32; at bf16,
 * all but what stays float32 (an ONNX model's depthwise convolutions, Gemm and
 * MatMul). With the machine's two peaks, the least time the arithmetic takes. */
double md_model_gflop_bf16(const md_model *model, int width, int height);
/* "fastdepth (onnx)", "depth-anything-v2 vits metric", ... */
const char *md_model_describe(const md_model *model);
/* The precision the model runs in: fp32 or bf16 (auto resolved at load). */
md_precision md_model_precision(const md_model *model);
/* What the model outputs and where it was trained (see md_model_info). */
void md_model_get_info(const md_model *model, md_model_info *info);
void md_model_free(md_model *model);
/* The default base model: $METRICDEPTH_MODEL, else
 * $METRICDEPTH_MODELS_DIR/fastdepth_7.onnx (either, when set, is used or
 * refused, never replaced), else models/fastdepth_7.onnx in the first data
 * folder that has it: $METRICDEPTH_DATA_DIR, PREFIX/share/metricdepth (where
 * this library is installed), ~/.local/share/metricdepth, the source tree. */
md_status md_default_model_path(char *buf, size_t size, md_error *err);

/* ------------------------------------------------ sparse metric anchors */

/* A metric depth measurement at one pixel of the input image: a rangefinder
 * beam, a LiDAR/ToF point projected into the image, a SLAM/VIO feature with
 * depth, a tape-measured distance. Pixel (u, v) covers [u, u+1) x [v, v+1):
 * column u, row v, so 0 <= u < width and 0 <= v < height. */
typedef struct {
    float u, v;    /* pixel coordinates of the input image */
    float depth;   /* metres along the optical axis (z), > 0 */
    float weight;  /* relative trust, > 0 (1 by default) */
} md_anchor;

typedef struct {
    md_anchor *items;
    size_t count;
} md_anchor_set;

/* Reads anchors from a text list or a sparse depth image, told apart by the
 * file's bytes:
 *  - text: one anchor per line, "u v depth_m [weight]", '#' starts a comment,
 *    blank lines are skipped;
 *  - sparse depth image: 16-bit PNG (millimetres, or raw / divisor) or .npy
 *    (float metres; integer types divided by divisor), 0 = no measurement, the
 *    size of the input image; every non-zero pixel is an anchor of weight 1.
 * width and height (both > 0) are the input image's size: every anchor must
 * lie inside it and a sparse image must have exactly that size. divisor <= 0
 * means 1000 (millimetres). Errors name the file (and the line for text):
 * unparsable lines, anchors outside the image, depths that are not finite and
 * positive, weights that are not finite and positive, no anchor at all. */
md_status md_anchors_load(const char *path, int width, int height, double divisor,
                          md_anchor_set *out, md_error *err);
/* Every valid pixel of a sparse depth map as an anchor of weight 1. */
md_status md_anchors_from_depth(const md_depth *sparse, md_anchor_set *out, md_error *err);
/* Checks an anchor set against an image size (name, may be NULL, prefixes messages). */
md_status md_anchors_check(const md_anchor_set *set, int width, int height, const char *name,
                           md_error *err);
void md_anchor_set_free(md_anchor_set *set);

/* How a global fit turns anchors into a scale (r_i = anchor depth / base depth
 * at the anchor, w_i = its weight). See src/scale/anchors.c for derivations. */
typedef enum {
    MD_ANCHOR_FIT_ROBUST = 0,     /* default: Hampel's skipped median: the weighted median of the
                                     log ratios, anchors beyond 5.2 MAD of it flagged as outliers
                                     (X84 rule), the weighted median of the rest; then moved by
                                     half their robust variance towards the scale of least
                                     relative error */
    MD_ANCHOR_FIT_W1 = 1,         /* argmin W1 between the weighted distributions of s*base and
                                     anchor depths (the oracle's criterion on the anchors) */
    MD_ANCHOR_FIT_MEDIAN = 2,     /* weighted median of r_i */
    MD_ANCHOR_FIT_LSQ = 3,        /* argmin sum w_i (s p_i - g_i)^2: not robust */
    MD_ANCHOR_FIT_SCALE_SHIFT = 4 /* inverse depth: 1/g = a q + b, q = the base's inverse depth
                                     (or its disparity for a relative network), least absolute
                                     relative residual g (a q + b) - 1; X84 outlier flags.
                                     Needs 3 anchors */
} md_anchor_fit;

/* "robust", "w1", "median", "lsq", "scale-shift"; parse returns -1 if unknown. */
const char *md_anchor_fit_name(md_anchor_fit fit);
int md_anchor_fit_parse(const char *name);
/* The fewest anchors on valid base pixels a fit needs (1; 3 for scale-shift). */
size_t md_anchor_fit_min_count(md_anchor_fit fit);

/* ---------------------------------------------------- metric prediction */

/* Where the scale that makes the base network's depth metric comes from. */
typedef enum {
    MD_SCALE_SOURCE_AUTO = 0,     /* the default: adaptive, through its confidence gate, when a
                                     scale model trained for this base model is given; else none */
    MD_SCALE_SOURCE_NONE = 1,     /* the base network's output as it is */
    MD_SCALE_SOURCE_ADAPTIVE = 2, /* the scale model's prediction, through its gate unless ungated */
    MD_SCALE_SOURCE_ORACLE = 3,   /* the exact optimal scale against ground truth */
    MD_SCALE_SOURCE_ANCHORS = 4   /* fitted to sparse metric measurements */
} md_scale_source;

/* "auto", "none", "adaptive", "oracle", "anchors"; parse returns -1 if unknown. */
const char *md_scale_source_name(md_scale_source source);
int md_scale_source_parse(const char *name);

/* What a scale model says about one image: the predicted ln s and how far to
 * trust it. The gate turns that into the ln s actually applied:
 * applied = weight * log_scale (weight 0: keep the base network's output). */
typedef struct {
    double log_scale;    /* the predictor's ln s */
    double log_scale_sd; /* predictive spread (standard deviation) of ln s; NaN if unknown */
    double distance;     /* distance of the input from the training data, in units of the
                            training data's own spread (about 1 = typical); NaN if unknown */
    double weight;       /* the gate's weight in [0, 1] */
    char note[160];      /* why the gate chose this weight, e.g. "far from training data" */
} md_scale_estimate;

/* The scale model's estimate for an image from what the base network computed
 * for it: the encoder reads its features; the RGB-only CNNs read img, and give
 * weight 1 with unknown spread and distance. */
md_status md_scale_model_estimate(const md_scale_model *model, const md_image *img,
                                  const md_features *features, md_scale_estimate *out,
                                  md_error *err);

typedef struct {
    md_scale_source source;
    /* adaptive and auto */
    const md_scale_model *scale_model; /* NULL: auto means none, adaptive is an error */
    const char *base_model_name;       /* the base model's file name, for auto's check that the
                                          scale model was trained for it (NULL: no check) */
    int ungated;                       /* 1: apply the prediction whatever its confidence */
    /* oracle */
    const md_depth *gt;                /* ground truth, same size as the image */
    md_scale_method oracle_method;     /* default MD_SCALE_W1 */
    double lo, hi;                     /* allowed oracle scale range, default [0.1, 2] (anchor
                                          fits are not clamped: the measurements decide) */
    /* anchors */
    const md_anchor_set *anchors;      /* metric measurements in the image's pixel coordinates */
    const char *anchors_name;          /* names them in messages (their file); may be NULL */
    md_anchor_fit anchor_fit;          /* default MD_ANCHOR_FIT_ROBUST */
    int base_is_disparity;             /* 1: the base map holds relative inverse depth (a relative
                                          network such as DA2's relative head): only
                                          MD_ANCHOR_FIT_SCALE_SHIFT applies */
    int scale_map;                     /* 1: a pixel-wise scale map from the anchors (scale-only
                                          fits) instead of one global scale */
} md_scale_options;

md_scale_options md_scale_options_default(void);

/* What was applied to one image, for logs, JSON sidecars and tables. */
typedef struct {
    md_scale_source source;     /* the source that ran (auto resolved to adaptive or none) */
    double scale;               /* the factor the base depth was multiplied by (1: none) */
    double predicted_log_scale; /* the source's ln s before the gate (oracle: the fit); NaN for none */
    double log_scale_sd;        /* adaptive: predictive spread of ln s; anchors: standard error of
                                   the fitted ln s (NaN with too few anchors); NaN otherwise */
    double distance;            /* adaptive: distance from the training data; NaN otherwise */
    double confidence;          /* the weight in [0, 1] given to the source's ln s (1 for oracle
                                   and anchors) */
    int applied;                /* 1 when the source's scale was applied, fully or in part */
    int at_range_limit;         /* oracle: the fit sits on lo or hi (the true optimum may lie beyond) */
    char note[160];             /* a sentence on why, "" if nothing to say */
    /* anchors (zero for other sources) */
    md_anchor_fit anchor_fit;   /* the fit that ran */
    double shift;               /* scale-shift fit: inverse-depth shift b in 1/m, so that
                                   depth = 1 / (1 / (scale * base) + shift) (for a disparity base
                                   q: depth = 1 / (q / scale + shift)); 0 for scale-only fits */
    int anchors_total;          /* anchors given */
    int anchors_used;           /* those on a pixel with a valid base depth */
    int anchors_inliers;        /* those the fit kept (all used ones for non-robust fits) */
    double anchor_residual_sd;  /* robust sd of ln(anchor / fitted depth) over the used anchors */
    /* scale map (anchors with scale_map): ln s per pixel, map_width x map_height = the depth's
     * size, row-major: depth[i] = base[i] * exp(log_scale_map[i]); scale above is the global
     * fit the map falls back to far from anchors. NULL when no map was built. Owned by the
     * record: release with md_scale_record_free before reusing the record. */
    int map_width, map_height;
    float *log_scale_map;
    /* sequences (md_scale_filter_apply; zero otherwise) */
    int filtered;               /* 1: scale is the filtered one of a sequence */
    double raw_scale;           /* this frame's own scale, before the filter */
    int filter_rejected;        /* the filter took this frame's scale for an outlier */
} md_scale_record;

/* Frees the record's scale map (safe on a zeroed record or one without a map). */
void md_scale_record_free(md_scale_record *rec);

/* Applies the scale source to a base depth map in place (depth x scale) and
 * records what it did. img and features are what the base network saw and
 * computed for it (the scale model reads them; either may be NULL when the
 * source does not need it). The same call serves predict and evaluation, so
 * cached base predictions give the same numbers as a fresh run. */
md_status md_scale_depth(const md_image *img, const md_features *features, md_depth *depth,
                         const md_scale_options *opts, md_scale_record *rec, md_error *err);

/* One call for metric depth: the base network on img, then the scale source
 * (opts NULL: MD_SCALE_SOURCE_AUTO with no scale model, i.e. none). out gets
 * the depth at the image size, with the mask of pixels the network saw; rec
 * (may be NULL) gets what was applied. This is what `metricdepth predict` does. */
md_status md_predict_metric(md_model *model, const md_image *img, const md_scale_options *opts,
                            md_depth *out, md_scale_record *rec, md_error *err);

/* --------------------------------------------------- per-cell scale oracle */

/* The oracle of a coarse scale map: the image cut into cells_x x cells_y
 * equal cells (cell (cx, cy) covers columns [cx W / cells_x, (cx + 1) W / cells_x)
 * and likewise rows), each with its own optimal scale (md_scale_fit: method,
 * clamped to [lo, hi]) over its pixels valid in both maps.
 * log_scales[cy * cells_x + cx] = ln s of the cell; NaN where fewer than
 * max(min_pixels, 1) pixels are valid. Applied per cell
 * (md_depth_apply_cell_scales), the upper bound of any predictor of a grid of
 * scales, and its training target. */
md_status md_scale_cell_oracle(const md_depth *pred, const md_depth *gt, int cells_x, int cells_y,
                               md_scale_method method, double lo, double hi, size_t min_pixels,
                               double *log_scales, md_error *err);
/* Multiplies each cell of depth (cut as above) by exp(log_scales[cell]), NaN
 * cells by exp(fallback_log_scale). */
md_status md_depth_apply_cell_scales(md_depth *depth, int cells_x, int cells_y,
                                     const double *log_scales, double fallback_log_scale,
                                     md_error *err);

/* ------------------------------------------------- steady scale over video */

/* Filters ln s over consecutive frames so that the scale does not flicker:
 * a Kalman filter for a random walk of ln s, tuned by one time constant, with
 * outlier rejection. See src/scale/sequence.c for the derivation.
 *  - Each frame gives a raw ln s (from anchors, the scale model, ...) and,
 *    when known, its standard error sd (NaN: unknown, taken as typical).
 *  - In steady state with equally precise raw values it is the exponential
 *    filter x_t = x_{t-1} + alpha (z_t - x_{t-1}), alpha = 1 - exp(-dt / tau):
 *    tau is the time constant. A raw value more precise than the running
 *    average counts for more, a less precise one for less.
 *  - A raw value further than gate standard deviations from the prediction is
 *    rejected (kept out of the estimate); after 3 rejections in a row the
 *    filter restarts from the latest value (the scene or the sensor changed).
 *  - Optional input: the base network's depth level (ln of the median of its
 *    valid depth) per frame. The metric depth level of a scene moves slowly
 *    while a network's output level jumps from frame to frame; with the level
 *    given, the prediction keeps the metric level (ln s + level) steady rather
 *    than ln s itself, so ln s may follow the network's jumps at once.
 * Thread safety: a filter is one sequence's state; calls on one filter must
 * not overlap (use one filter per stream); different filters are independent. */
typedef struct md_scale_filter md_scale_filter;

typedef struct {
    double time_constant_s; /* tau, seconds; default 0.2 */
    double gate;            /* outlier gate in standard deviations; default 3 */
    int use_level;          /* 1: use the base depth level input (when finite); default 1 */
} md_scale_filter_options;

md_scale_filter_options md_scale_filter_defaults(void);

typedef struct {
    double log_scale;    /* filtered ln s for this frame */
    double log_scale_sd; /* its standard deviation under the filter's model */
    int rejected;        /* 1: the raw value was rejected as an outlier */
    int restarted;       /* 1: the filter restarted at this frame */
} md_scale_filter_output;

md_status md_scale_filter_new(const md_scale_filter_options *opts, md_scale_filter **out,
                              md_error *err);
/* One frame at time t_s (seconds, increasing): raw ln s, its sd (NaN if
 * unknown) and the base depth level (NaN if not given). */
md_status md_scale_filter_update(md_scale_filter *f, double t_s, double raw_log_scale,
                                 double raw_sd, double base_level, md_scale_filter_output *out,
                                 md_error *err);
/* Forgets the sequence (the next update starts afresh). */
void md_scale_filter_reset(md_scale_filter *f);
void md_scale_filter_free(md_scale_filter *f);
/* ln of the median of the valid pixels of depth (NaN if none): the level input. */
double md_depth_log_level(const md_depth *depth);
/* One frame of a sequence, after md_scale_depth (or md_predict_metric) scaled
 * it: the filter takes the frame's ln s (ln rec->scale, its sd
 * rec->log_scale_sd) and the base depth's level (the scaled depth's level less
 * ln rec->scale), then depth and rec's scale map are rescaled to the filtered
 * scale, rec->scale becomes it, rec->raw_scale keeps the frame's own and
 * rec->filtered is set. A scale-shift record is refused (MD_ERR_UNSUPPORTED):
 * its depth is not a multiple of the base. */
md_status md_scale_filter_apply(md_scale_filter *f, double t_s, md_depth *depth,
                                md_scale_record *rec, md_error *err);

/* How much of the image got depth, and whether the network suits the scene. */
typedef struct {
    double coverage;  /* share of pixels the network saw (0..1) */
    int outdoor_like; /* an indoor network on an outdoor-looking scene */
    char note[320];   /* a warning in words; "" when all is well */
} md_coverage;
void md_depth_coverage(const md_model *model, const md_depth *depth, md_coverage *out);

/* The model file's name without its folder ("fastdepth_7.onnx"). */
const char *md_model_file_name(const md_model *model);

/* The default scale model for a base model (its file name, e.g.
 * "fastdepth_7.onnx"): $METRICDEPTH_SCALE_MODEL when set (an error if it
 * cannot be read), else scale_models/STEM.scale.safetensors in the installed
 * data folders (see md_default_model_path). MD_ERR_IO when there is none. */
md_status md_default_scale_model_path(const char *base_model_name, char *buf, size_t size,
                                      md_error *err);

#ifdef __cplusplus
}
#endif
#endif
