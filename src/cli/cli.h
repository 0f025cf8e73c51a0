/* Shared pieces of the command-line tool: option parsing, exit codes,
 * progress bars. Each subcommand lives in its own cmd_*.c file. */
#ifndef MD_CLI_H
#define MD_CLI_H

#include "metricdepth.h"

#include <stdbool.h>
#include <stdio.h>

/* Exit codes (documented in the README). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILURE = 1, /* bad input or a failed operation */
    CLI_EXIT_USAGE = 2,   /* wrong flags or arguments */
    CLI_EXIT_PARTIAL = 3  /* a batch finished but some items failed */
};

typedef struct {
    const char *name;   /* long name without "--" */
    char short_name;    /* 0 if none */
    bool takes_value;
    const char **value; /* set for options with a value */
    bool *flag;         /* set for boolean flags */
} cli_option;

typedef struct {
    const char *name;
    const char *summary;
    const char *usage; /* full --help text */
    int (*run)(int argc, char **argv);
} cli_command;

/* Parses argv[1..] (argv[0] is the command name). Positional arguments are
 * collected in order into positional (which must hold argc entries).
 * Returns -1 when --help was asked for (help already printed), CLI_EXIT_USAGE
 * on a bad flag (message printed), 0 otherwise. */
int cli_parse(const cli_command *cmd, int argc, char **argv, const cli_option *options,
              char **positional, int *n_positional);

/* cli_parse, then the values of --NAME_A and --NAME_B (each may repeat) with
 * the plain arguments after each (before either: A's) gathered into sets[0]
 * and sets[1] (new arrays of argv pointers: free them; NULL on failure). */
int cli_parse_sets(const cli_command *cmd, int argc, char **argv, const cli_option *options,
                   const char *name_a, const char *name_b, const char **sets[2], int n[2]);

/* Prints "metricdepth CMD: message" to stderr and returns CLI_EXIT_USAGE. */
int cli_usage_error(const cli_command *cmd, const char *fmt, ...);
/* Prints "metricdepth: error: <err.message>" and returns the exit code for it. */
int cli_report(const md_error *err);
int cli_exit_code(md_status st);

bool cli_parse_double(const char *s, double *out);
bool cli_parse_int(const char *s, int *out);
/* "a,b" -> two doubles. */
bool cli_parse_pair(const char *s, double *a, double *b);
/* "fx,fy,cx,cy" */
/* "MIN,MAX" with MIN < MAX. */
bool cli_parse_range_f(const char *s, float *lo, float *hi);
/* "K/N" with 1 <= K <= N. */
bool cli_parse_shard(const char *s, int *k, int *n);
bool cli_parse_intrinsics(const char *s, md_intrinsics *K);
/* "480x640" (height x width) */
bool cli_parse_size(const char *s, int *height, int *width);

/* Loads a depth map for pred/gt flags: integer formats use divisor
 * (0 = 1000), float formats are metres. */
md_status cli_load_depth(const char *path, double divisor, md_depth *out, md_error *err);

/* A one-line progress bar on stderr with ETA; silent when stderr is not a
 * terminal except for a final summary line. */
typedef struct {
    const char *label;
    size_t total, done;
    double start;
    bool tty;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, size_t total);
void cli_progress_step(cli_progress *p, const char *item);
void cli_progress_finish(cli_progress *p);

/* Joins dir and name into buf ("dir/name"). */
void cli_path_join(char *buf, size_t size, const char *dir, const char *name);
/* path without its extension + suffix ("m/scale.safetensors", ".log.csv" ->
 * "m/scale.log.csv"): how train names the files beside a model, and how eval
 * finds them. */
void cli_sibling_path(char *buf, size_t size, const char *path, const char *suffix);
/* name in the folder of path ("d/scales.csv", ".cache" -> "d/.cache"). */
void cli_sibling_dir(char *buf, size_t size, const char *path, const char *name);
/* File name without folder and extension ("a/b/rgb_1.jpg" -> "rgb_1"). */
void cli_stem(char *buf, size_t size, const char *path);
/* mkdir -p */
md_status cli_make_dirs(const char *path, md_error *err);
/* The prediction cache of a report written to out_dir: cache_arg (--cache)
 * or OUT_DIR/.metricdepth-cache (in buf), created. The folder, or NULL with
 * err filled. */
const char *cli_report_cache(const char *out_dir, const char *cache_arg, char *buf, size_t size,
                             md_error *err);

/* Completes scale options for --scale/--scale-model: the base model's name
 * and, for auto and adaptive, the scale model (--scale-model FILE, else the
 * default one; auto without one means none). *out (the caller frees it) is the
 * loaded model or NULL. Prints what it chose. Returns an exit code. */
int cli_scale_setup(md_scale_options *so, const char *scale_model_path, const md_model *model,
                    md_scale_model **out);

/* Appends the pairs of a dataset folder (detected) or a pair-list file to
 * list; 0 on success, -1 with err filled. */
int cli_collect_pairs(const char *source, md_pair_list *list, md_error *err);

/* The metrics as a new cJSON object (keys abs_rel ... delta3). */
struct cJSON;
struct cJSON *cli_metrics_json(const md_metrics *m);
/* A scale record as a JSON object (source, scale, applied, confidence, ...). */
struct cJSON *cli_scale_record_json(const md_scale_record *rec);
/* "ITEM: scale 1.0823 (adaptive, predicted ln s +0.0791 sd 0.050, ...)" */
void cli_print_scale_record(FILE *f, const char *item, const md_scale_record *rec);
/* Writes root as pretty JSON to path atomically; -1 with err filled on failure. */
int cli_write_json(const char *path, struct cJSON *root, md_error *err);

/* The anchors of image_path (width x height) for --anchors ARG: ARG itself
 * when it is a file, else ARG/STEM.txt, .png or .npy (STEM: the image's file
 * name without extension). name gets the file used (for messages). 0, or -1
 * with err filled. */
int cli_anchors_for_image(const char *arg, double divisor, const char *image_path, int width,
                          int height, md_anchor_set *out, char *name, size_t name_size,
                          md_error *err);

/* Subcommands. */
extern const cli_command cmd_predict, cmd_demo, cmd_run_model, cmd_bench, cmd_pairs, cmd_scale,
    cmd_metrics, cmd_pointcloud, cmd_convert, cmd_preview, cmd_fit_scales, cmd_train, cmd_eval,
    cmd_eval_anchors, cmd_merge;

#endif
