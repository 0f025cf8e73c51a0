#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int run(int argc, char **argv);

const cli_command cmd_pairs = {
    "pairs", "find RGB/depth pairs in dataset folders and print a pair list",
    "usage: metricdepth pairs [options] DIR|LIST...\n\n"
    "Finds RGB-D pairs in folders (NYU BTS rgb_N.jpg/sync_depth_N.png, DenseDepth\n"
    "N_colors.png/N_depth.png, 3DMatch/SUN3D/7-Scenes frame-N.color.*/frame-N.depth.png,\n"
    "KITTI rgb/+depth/, TUM N.png/N_depth.png, slambook color/+depth/, UniDepth,\n"
    "Open3D test data) or reads pair-list files, and prints one pair list:\n"
    "  rgb_path depth_path divisor [fx fy cx cy]\n"
    "Save it, edit it, and pass it to other commands with --data.\n\n"
    "options:\n"
    "  -o, --output FILE   write the list to FILE instead of standard output\n"
    "  -q, --quiet         no per-folder counts on standard error\n"
    "  -h, --help          this text\n\n"
    "example:\n"
    "  metricdepth pairs ../shared/data/* -o pairs.txt\n",
    run};

static int run(int argc, char **argv)
{
    const char *output = NULL;
    bool quiet = false;
    cli_option options[] = {{"output", 'o', true, &output, NULL},
                            {"quiet", 'q', false, NULL, &quiet},
                            {NULL, 0, false, NULL, NULL}};
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0;
    int rc = cli_parse(&cmd_pairs, argc, argv, options, pos, &npos);
    if (rc != 0) {
        free(pos);
        return rc < 0 ? CLI_EXIT_OK : rc;
    }
    if (npos == 0) {
        free(pos);
        return cli_usage_error(&cmd_pairs, "give at least one folder or pair list");
    }
    md_pair_list list = {0};
    md_error err = {0};
    int status = CLI_EXIT_OK;
    for (int i = 0; i < npos; i++) {
        size_t before = list.count;
        if (cli_collect_pairs(pos[i], &list, &err) != 0) {
            cli_report(&err);
            status = CLI_EXIT_FAILURE;
            continue;
        }
        if (!quiet)
            fprintf(stderr, "%s: %zu pairs\n", pos[i], list.count - before);
    }
    if (!quiet)
        fprintf(stderr, "total: %zu pairs\n", list.count);
    if (output) {
        if (md_pairs_save(output, &list, &err) != MD_OK)
            status = cli_report(&err);
    } else if (md_pairs_write(stdout, &list, &err) != MD_OK) {
        status = cli_report(&err);
    }
    md_pair_list_free(&list);
    free(pos);
    return status;
}
