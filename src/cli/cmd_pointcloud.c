#include "cli.h"

#include <stdio.h>

static int run(int argc, char **argv);

const cli_command cmd_pointcloud = {
    "pointcloud", "back-project a depth map (+ RGB) to a PLY point cloud",
    "usage: metricdepth pointcloud --depth FILE [options] -o OUT.ply\n\n"
    "Writes a binary little-endian PLY (float x y z in metres, camera frame:\n"
    "x right, y down, z forward; uchar red green blue), skipping invalid pixels.\n\n"
    "options:\n"
    "  --depth FILE         depth map (.npy/.pfm metres, or 16-bit PNG/PGM)\n"
    "  --rgb FILE           colour image of the same size (default: grey points)\n"
    "  --divisor D          raw/D = metres for integer depth files (default 1000)\n"
    "  --intrinsics FX,FY,CX,CY\n"
    "                       camera (default NYU: 518.8579,519.4696,325.5824,253.7362)\n"
    "  --stride N           keep every N-th row and column (default 1)\n"
    "  --max-depth M        drop points farther than M metres (default: keep all)\n"
    "  -o, --output FILE    the PLY to write\n"
    "  -h, --help           this text\n\n"
    "example:\n"
    "  metricdepth pointcloud --depth out/rgb_00000.depth.png \\\n"
    "      --rgb ../shared/data/nyu_demo_metric3d/rgb/rgb_00000.jpg -o room.ply\n",
    run};

static int run(int argc, char **argv)
{
    const char *depth_path = NULL, *rgb_path = NULL, *div_s = "1000", *k_s = NULL;
    const char *stride_s = "1", *max_s = "0", *output = NULL;
    cli_option options[] = {{"depth", 0, true, &depth_path, NULL},
                            {"rgb", 0, true, &rgb_path, NULL},
                            {"divisor", 0, true, &div_s, NULL},
                            {"intrinsics", 0, true, &k_s, NULL},
                            {"stride", 0, true, &stride_s, NULL},
                            {"max-depth", 0, true, &max_s, NULL},
                            {"output", 'o', true, &output, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char *pos[64];
    int npos = 0;
    if (argc > 60)
        return cli_usage_error(&cmd_pointcloud, "too many arguments");
    int rc = cli_parse(&cmd_pointcloud, argc, argv, options, pos, &npos);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (npos > 0)
        return cli_usage_error(&cmd_pointcloud, "unexpected argument '%s'", pos[0]);
    if (!depth_path || !output)
        return cli_usage_error(&cmd_pointcloud, "--depth and -o are required");
    md_intrinsics K = md_intrinsics_nyu();
    if (k_s && !cli_parse_intrinsics(k_s, &K))
        return cli_usage_error(&cmd_pointcloud, "--intrinsics wants FX,FY,CX,CY, got '%s'", k_s);
    double divisor, max_depth;
    int stride;
    if (!cli_parse_double(div_s, &divisor) || divisor <= 0)
        return cli_usage_error(&cmd_pointcloud, "--divisor must be positive");
    if (!cli_parse_int(stride_s, &stride) || stride < 1)
        return cli_usage_error(&cmd_pointcloud, "--stride must be an integer >= 1");
    if (!cli_parse_double(max_s, &max_depth) || max_depth < 0)
        return cli_usage_error(&cmd_pointcloud, "--max-depth must be >= 0");

    md_error err = {0};
    md_depth depth = {0};
    md_image rgb = {0};
    int status = CLI_EXIT_OK;
    if (cli_load_depth(depth_path, divisor, &depth, &err) != MD_OK ||
        (rgb_path && md_image_load(rgb_path, &rgb, &err) != MD_OK) ||
        md_pointcloud_save_ply(output, &depth, rgb_path ? &rgb : NULL, &K, stride,
                               (float)max_depth, &err) != MD_OK)
        status = cli_report(&err);
    else
        fprintf(stderr, "wrote %s\n", output);
    md_depth_free(&depth);
    md_image_free(&rgb);
    return status;
}
