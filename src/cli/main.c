/* metricdepth: the command-line tool. Dispatches to one subcommand per file. */
#include "cli.h"

#include <libavutil/log.h>

#include <stdio.h>
#include <string.h>

/* LeakSanitizer (ASan builds only; ignored otherwise): cairo's text API loads
 * fontconfig, whose process-wide caches are never freed. Those third-party
 * allocations are not ours to free; everything else still counts. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

static const cli_command *const commands[] = {
    &cmd_demo,  &cmd_predict, &cmd_run_model, &cmd_bench,   &cmd_pairs,
    &cmd_scale, &cmd_metrics, &cmd_pointcloud, &cmd_convert, &cmd_preview,
    &cmd_fit_scales, &cmd_train, &cmd_eval, &cmd_eval_anchors, &cmd_merge,
};
static const size_t n_commands = sizeof commands / sizeof commands[0];

static void print_help(void)
{
    printf("metricdepth %s: metric depth from one RGB image\n\n"
           "usage: metricdepth <command> [options]\n"
           "       metricdepth <command> --help\n\n"
           "commands:\n",
           MD_VERSION_STRING);
    for (size_t i = 0; i < n_commands; i++)
        printf("  %-12s %s\n", commands[i]->name, commands[i]->summary);
    printf("  %-12s %s\n", "help", "this list, or 'help COMMAND' for one command");
    printf("\nexit codes: 0 ok, 1 failure (bad input, unreadable file), 2 usage error,\n"
           "            3 batch finished with some items failed\n");
}

int main(int argc, char **argv)
{
    /* FFmpeg's libraries print to stderr by default; the tool reports their
     * errors itself. (A process-wide setting: the application's to make.) */
    av_log_set_level(AV_LOG_FATAL);
    if (argc < 2) {
        print_help();
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("metricdepth %s\n", MD_VERSION_STRING);
        return CLI_EXIT_OK;
    }
    bool help = strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0;
    if (help && argc >= 3)
        name = argv[2];
    else if (help) {
        print_help();
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < n_commands; i++) {
        if (strcmp(commands[i]->name, name) == 0) {
            if (help) {
                printf("%s", commands[i]->usage);
                return CLI_EXIT_OK;
            }
            return commands[i]->run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "metricdepth: unknown command '%s' (see 'metricdepth help')\n", name);
    return CLI_EXIT_USAGE;
}
