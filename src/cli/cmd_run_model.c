#include "cli.h"

#include <math.h>
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
    "  --max-depth M        DA2 metric head max depth (default from config.json or the\n"
    "                       file name)\n"
    "  --relative, --metric DA2 head kind when the file does not tell\n"
    "  --compare REF.npy    also compare the output with a reference tensor: prints the\n"
    "                       largest and mean absolute difference, exit 1 above --tol\n"
    "  --tol T              largest absolute difference allowed (default 1e-3)\n"
    "  -h, --help           this text\n\n"
    "example:\n"
    "  metricdepth run-model --input ../shared/reference/da2/tiny/preprocessed.npy \\\n"
    "      --model ../shared/reference/da2/tiny/model.safetensors --output depth_net.npy\n"
    "  metricdepth run-model --model ../shared/reference/da2/tiny_hf/model.safetensors \\\n"
    "      --input ../shared/reference/da2/tiny/preprocessed.npy --output d.npy \\\n"
    "      --compare ../shared/reference/da2/tiny/depth_net.npy\n",
    run};

int cli_open_model(const char *path, const md_model_options *opts, md_model **model);

static int run(int argc, char **argv)
{
    const char *model_path = NULL, *input = NULL, *output = NULL, *threads_s = "0";
    const char *max_depth_s = "0", *compare = NULL, *tol_s = "1e-3";
    bool relative = false, metric = false;
    cli_option options[] = {{"model", 0, true, &model_path, NULL},
                            {"compare", 0, true, &compare, NULL},
                            {"tol", 0, true, &tol_s, NULL},
                            {"relative", 0, false, NULL, &relative},
                            {"metric", 0, false, NULL, &metric},
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
    double tol;
    if (!cli_parse_double(tol_s, &tol) || tol < 0)
        return cli_usage_error(&cmd_run_model, "--tol wants a number >= 0");
    if (relative && metric)
        return cli_usage_error(&cmd_run_model, "--relative and --metric contradict each other");
    mo.relative = relative ? MD_HEAD_RELATIVE : metric ? MD_HEAD_METRIC : MD_HEAD_AUTO;
    md_error err = {0};
    md_tensor in = {0}, out = {0};
    md_model *model = NULL;
    if (md_npy_load(input, &in, &err) != MD_OK)
        return cli_report(&err);
    rc = cli_open_model(model_path, &mo, &model);
    if (rc == CLI_EXIT_OK) {
        md_model_info info;
        md_model_get_info(model, &info);
        fprintf(stderr, "model: %s\n", md_model_describe(model));
        if (info.note[0])
            fprintf(stderr, "warning: %s\n", info.note);
        md_status st = md_model_run_tensor(model, &in, &out, &err);
        if (st == MD_ERR_DATA) { /* the tensor does not fit the network: name the file */
            fprintf(stderr, "metricdepth: error: %s: %s\n", input, err.message);
            rc = CLI_EXIT_FAILURE;
        } else if (st != MD_OK || md_npy_save(output, &out, &err) != MD_OK) {
            rc = cli_report(&err);
        }
    }
    if (rc == CLI_EXIT_OK && compare) {
        md_tensor ref = {0};
        if (md_npy_load(compare, &ref, &err) != MD_OK) {
            rc = cli_report(&err);
        } else if (md_tensor_numel(&ref) != md_tensor_numel(&out)) {
            fprintf(stderr, "metricdepth: error: %s has %zu values, the output %zu\n", compare,
                    md_tensor_numel(&ref), md_tensor_numel(&out));
            rc = CLI_EXIT_FAILURE;
        } else {
            double mx = 0, sum = 0;
            size_t n = md_tensor_numel(&ref);
            for (size_t i = 0; i < n; i++) {
                double d = fabs((double)out.data[i] - (double)ref.data[i]);
                if (!(d <= mx)) /* NaN counts as the largest */
                    mx = d;
                sum += d;
            }
            printf("compared with %s: max abs diff %.3g, mean %.3g over %zu values\n", compare,
                   mx, n ? sum / (double)n : 0.0, n);
            if (!(mx <= tol)) {
                fprintf(stderr, "metricdepth: error: %s: differs by %.3g, more than --tol %g\n",
                        compare, mx, tol);
                rc = CLI_EXIT_FAILURE;
            }
        }
        md_tensor_free(&ref);
    }
    md_model_free(model);
    md_tensor_free(&in);
    md_tensor_free(&out);
    return rc;
}
