#include "cli.h"

#include <stdio.h>

static int run(int argc, char **argv);

const cli_command cmd_run_model = {
    "run-model", "run the raw network on a preprocessed tensor (.npy in, .npy out)",
    "usage: metricdepth run-model --model FILE --input X.npy --output Y.npy\n\n"
    "Runs only the network, on an already preprocessed float tensor (NCHW or CHW),\n"
    "and writes its raw output: for checking against reference implementations.\n\n"
    "options:\n"
    "  --model FILE         network (default: the installed FastDepth)\n"
    "  --input FILE         input tensor (.npy; float32/float64)\n"
    "  --output FILE        output tensor (.npy float32)\n"
    "  --threads N          worker threads (default: all cores)\n"
    "  --max-depth M        DA2 metric head max depth (default from file name)\n"
    "  -h, --help           this text\n\n"
    "example:\n"
    "  metricdepth run-model --input ../shared/reference/da2/tiny/preprocessed.npy \\\n"
    "      --model ../shared/reference/da2/tiny/model.safetensors --output depth_net.npy\n",
    run};

int cli_open_model(const char *path, const md_model_options *opts, md_model **model);

static int run(int argc, char **argv)
{
    const char *model_path = NULL, *input = NULL, *output = NULL, *threads_s = "0";
    const char *max_depth_s = "0";
    cli_option options[] = {{"model", 0, true, &model_path, NULL},
                            {"input", 0, true, &input, NULL},
                            {"output", 'o', true, &output, NULL},
                            {"threads", 0, true, &threads_s, NULL},
                            {"max-depth", 0, true, &max_depth_s, NULL},
                            {NULL, 0, false, NULL, NULL}};
    char *pos[64];
    int npos = 0;
    if (argc > 60)
        return cli_usage_error(&cmd_run_model, "too many arguments");
    int rc = cli_parse(&cmd_run_model, argc, argv, options, pos, &npos);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    md_model_options mo = {0};
    if (npos > 0)
        return cli_usage_error(&cmd_run_model, "unexpected argument '%s'", pos[0]);
    if (!input || !output)
        return cli_usage_error(&cmd_run_model, "--input and --output are required");
    if (!cli_parse_int(threads_s, &mo.threads) || mo.threads < 0 ||
        !cli_parse_double(max_depth_s, &mo.max_depth) || mo.max_depth < 0)
        return cli_usage_error(&cmd_run_model, "--threads and --max-depth want numbers >= 0");
    md_error err = {0};
    md_tensor in = {0}, out = {0};
    md_model *model = NULL;
    if (md_npy_load(input, &in, &err) != MD_OK)
        return cli_report(&err);
    rc = cli_open_model(model_path, &mo, &model);
    if (rc == CLI_EXIT_OK) {
        md_status st = md_model_run_tensor(model, &in, &out, &err);
        if (st == MD_ERR_DATA) { /* the tensor does not fit the network: name the file */
            fprintf(stderr, "metricdepth: error: %s: %s\n", input, err.message);
            rc = CLI_EXIT_FAILURE;
        } else if (st != MD_OK || md_npy_save(output, &out, &err) != MD_OK) {
            rc = cli_report(&err);
        }
    }
    md_model_free(model);
    md_tensor_free(&in);
    md_tensor_free(&out);
    return rc;
}
