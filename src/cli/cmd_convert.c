#include "cli.h"
#include "metricdepth_video.h"

#include <stdio.h>
#include <string.h>

static int run_convert(int argc, char **argv);
static int run_preview(int argc, char **argv);

const cli_command cmd_convert = {
    "convert", "convert a depth map between formats (PNG mm, PGM, npy, PFM); images <-> video",
    "usage: metricdepth convert IN -o OUT [--divisor D] [--sun]\n"
    "       metricdepth convert IMAGE|FOLDER|LIST... -o CLIP.mp4 [--fps F]\n"
    "       metricdepth convert CLIP.mp4 -o FOLDER/\n\n"
    "Reads any supported depth map and writes it in the format of OUT's extension:\n"
    ".png (16-bit millimetres, 0 = invalid), .npy (float32 metres), .pfm (float32 metres).\n"
    "With a video OUT (.mp4, .mkv, .avi, .mov), encodes the images (sorted by name) as\n"
    "its frames; with a video IN and a folder OUT, writes its frames as 000001.png, ...\n\n"
    "options:\n"
    "  --fps F              frame rate of a video made from images (default 10)\n"
    "  --divisor D          raw/D = metres for integer inputs (default 1000;\n"
    "                       5000 TUM, 256 KITTI)\n"
    "  --sun                input uses SUN RGB-D's bit-rotated encoding\n"
    "  --keep-65535         treat raw 65535 as a depth (default: invalid, as 7-Scenes)\n"
    "  -o, --output FILE    output file\n"
    "  -h, --help           this text\n\n"
    "example:\n"
    "  metricdepth convert ../shared/data/slambook2_kinect/ch7_tum/1_depth.png \\\n"
    "      --divisor 5000 -o depth.npy\n",
    run_convert};

const cli_command cmd_preview = {
    "preview", "colourised PNG preview of a depth map",
    "usage: metricdepth preview DEPTH -o OUT.png [options]\n\n"
    "Colours a depth map with a perceptual colormap (near = dark end for inferno,\n"
    "blue end for turbo); invalid pixels are black.\n\n"
    "options:\n"
    "  --colormap NAME      turbo (default) or inferno\n"
    "  --range MIN,MAX      fixed range in metres (default: 2nd..98th percentile)\n"
    "  --divisor D          raw/D = metres for integer inputs (default 1000)\n"
    "  -o, --output FILE    output PNG\n"
    "  -h, --help           this text\n\n"
    "example:\n"
    "  metricdepth preview ../shared/data/nyu_demo_metric3d/depth/sync_depth_00000.png \\\n"
    "      --range 0,8 -o gt.png\n",
    run_preview};

/* Images (files, folders, lists) -> one video, frames in name order. */
static int images_to_video(char **in, int n, const char *output, double fps)
{
    md_error err = {0};
    md_input_list list;
    memset(&list, 0, sizeof list);
    md_video_writer *w = NULL;
    md_image img = {0};
    int status = CLI_EXIT_OK;
    for (int i = 0; i < n && status == CLI_EXIT_OK; i++)
        if (md_inputs_add(&list, in[i], &err) != MD_OK)
            status = cli_report(&err);
    if (status == CLI_EXIT_OK && md_inputs_finish(&list, &err) != MD_OK)
        status = cli_report(&err);
    const char *slash = strrchr(output, '/');
    if (slash && slash != output && status == CLI_EXIT_OK) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - output), output);
        if (md_make_dirs(dir, &err) != MD_OK)
            status = cli_report(&err);
    }
    size_t frames = 0;
    for (size_t i = 0; i < list.count && status == CLI_EXIT_OK; i++) {
        if (list.items[i].kind != MD_INPUT_IMAGE)
            continue;
        if (md_image_load(list.items[i].path, &img, &err) != MD_OK ||
            (!w && md_video_writer_open(output, img.width, img.height, fps, &w, &err) != MD_OK))
            status = cli_report(&err);
        else if (md_video_write(w, &img, &err) != MD_OK)
            status = cli_report(&err);
        else
            frames++;
        md_image_free(&img);
    }
    if (w && status == CLI_EXIT_OK && md_video_writer_close(w, &err) != MD_OK)
        status = cli_report(&err);
    else if (w && status != CLI_EXIT_OK)
        md_video_writer_abort(w);
    if (status == CLI_EXIT_OK && frames == 0) {
        fprintf(stderr, "metricdepth: error: no image to encode\n");
        status = CLI_EXIT_FAILURE;
    }
    if (status == CLI_EXIT_OK)
        fprintf(stderr, "wrote %zu frames to %s\n", frames, output);
    md_input_list_free(&list);
    return status;
}

/* A video -> numbered PNG frames in a folder. */
static int video_to_frames(const char *input, const char *dir)
{
    md_error err = {0};
    md_video_reader *r = NULL;
    md_video_info vi;
    if (md_make_dirs(dir, &err) != MD_OK || md_video_open(input, &r, &vi, &err) != MD_OK)
        return cli_report(&err);
    int status = CLI_EXIT_OK, got = 1;
    size_t frames = 0;
    while (status == CLI_EXIT_OK) {
        md_image img;
        if (md_video_read(r, &img, &got, &err) != MD_OK) {
            status = cli_report(&err);
            break;
        }
        if (!got)
            break;
        char name[32], path[4096];
        snprintf(name, sizeof name, "%06zu.png", ++frames);
        cli_path_join(path, sizeof path, dir, name);
        if (md_image_save_png(path, &img, &err) != MD_OK)
            status = cli_report(&err);
        md_image_free(&img);
    }
    md_video_close(r);
    if (status == CLI_EXIT_OK)
        fprintf(stderr, "wrote %zu frames to %s\n", frames, dir);
    return status;
}

static int run_convert(int argc, char **argv)
{
    const char *output = NULL, *div_s = "1000", *fps_s = NULL;
    bool sun = false, keep = false;
    cli_option options[] = {{"output", 'o', true, &output, NULL},
                            {"fps", 0, true, &fps_s, NULL},
                            {"divisor", 0, true, &div_s, NULL},
                            {"sun", 0, false, NULL, &sun},
                            {"keep-65535", 0, false, NULL, &keep},
                            {NULL, 0, false, NULL, NULL}};
    char *pos[64];
    int npos = 0;
    if (argc > 60)
        return cli_usage_error(&cmd_convert, "too many arguments");
    int rc = cli_parse(&cmd_convert, argc, argv, options, pos, &npos);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (output && md_path_is_video(output)) {
        double fps = 10;
        if (npos < 1)
            return cli_usage_error(&cmd_convert, "give the images to encode");
        if (fps_s && (!cli_parse_double(fps_s, &fps) || fps <= 0 || fps > 1000))
            return cli_usage_error(&cmd_convert, "--fps wants frames per second in (0, 1000]");
        return images_to_video(pos, npos, output, fps);
    }
    if (fps_s)
        return cli_usage_error(&cmd_convert, "--fps applies when OUT is a video");
    if (npos == 1 && output && md_path_is_video(pos[0]))
        return video_to_frames(pos[0], output);
    if (npos != 1 || !output)
        return cli_usage_error(&cmd_convert, "give one input file and -o OUT");
    double divisor;
    if (!cli_parse_double(div_s, &divisor) || divisor <= 0)
        return cli_usage_error(&cmd_convert, "--divisor must be positive");
    md_depth_read_options o = {.divisor = divisor,
                               .encoding = sun ? MD_DEPTH_SUN_ROTATED : MD_DEPTH_PLAIN,
                               .keep_65535 = keep};
    md_error err = {0};
    md_depth d = {0};
    int status = CLI_EXIT_OK;
    if (md_depth_load(pos[0], &o, &d, &err) != MD_OK || md_depth_save(output, &d, &err) != MD_OK)
        status = cli_report(&err);
    md_depth_free(&d);
    return status;
}

static int run_preview(int argc, char **argv)
{
    const char *output = NULL, *div_s = "1000", *cmap_s = "turbo", *range_s = NULL;
    cli_option options[] = {{"output", 'o', true, &output, NULL},
                            {"divisor", 0, true, &div_s, NULL},
                            {"colormap", 0, true, &cmap_s, NULL},
                            {"range", 0, true, &range_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char *pos[64];
    int npos = 0;
    if (argc > 60)
        return cli_usage_error(&cmd_preview, "too many arguments");
    int rc = cli_parse(&cmd_preview, argc, argv, options, pos, &npos);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (npos != 1 || !output)
        return cli_usage_error(&cmd_preview, "give one depth file and -o OUT.png");
    double divisor, vmin = 0, vmax = 0;
    if (!cli_parse_double(div_s, &divisor) || divisor <= 0)
        return cli_usage_error(&cmd_preview, "--divisor must be positive");
    if (range_s && (!cli_parse_pair(range_s, &vmin, &vmax) || vmin < 0 || vmax <= vmin))
        return cli_usage_error(&cmd_preview, "--range wants MIN,MAX with 0 <= MIN < MAX");
    md_colormap cmap;
    if (strcmp(cmap_s, "turbo") == 0)
        cmap = MD_COLORMAP_TURBO;
    else if (strcmp(cmap_s, "inferno") == 0)
        cmap = MD_COLORMAP_INFERNO;
    else
        return cli_usage_error(&cmd_preview, "unknown colormap '%s' (turbo, inferno)", cmap_s);
    md_error err = {0};
    md_depth d = {0};
    int status = CLI_EXIT_OK;
    if (cli_load_depth(pos[0], divisor, &d, &err) != MD_OK ||
        md_depth_save_preview(output, &d, cmap, (float)vmin, (float)vmax, &err) != MD_OK)
        status = cli_report(&err);
    md_depth_free(&d);
    return status;
}
