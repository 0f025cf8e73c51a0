#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>

static int run(int argc, char **argv);

const cli_command cmd_scale = {
    "scale", "optimal scale aligning a predicted depth map with ground truth",
    "usage: metricdepth scale --pred FILE --gt FILE [options]\n\n"
    "Finds the scale s that best aligns s*pred with gt over pixels valid in both,\n"
    "and prints s with the Wasserstein-1 distance before and after scaling.\n\n"
    "options:\n"
    "  --pred FILE          predicted depth (.npy/.pfm metres, or 16-bit PNG/PGM)\n"
    "  --gt FILE            ground-truth depth (same formats)\n"
    "  --method M           w1 (default: exact W1 optimum, the seed's criterion), w2,\n"
    "                       median, lsq, loglsq\n"
    "  --range LO,HI        allowed scale range (default 0.1,2)\n"
    "  --pred-divisor D     raw/D = metres for integer pred files (default 1000)\n"
    "  --gt-divisor D       raw/D = metres for integer gt files (default 1000;\n"
    "                       5000 TUM, 256 KITTI)\n"
    "  --json               print JSON instead of text\n"
    "  -h, --help           this text\n\n"
    "example:\n"
    "  metricdepth scale --pred out/rgb_00000.depth.npy \\\n"
    "      --gt ../shared/data/nyu_demo_metric3d/depth/sync_depth_00000.png\n",
    run};

static int run(int argc, char **argv)
{
    const char *pred_path = NULL, *gt_path = NULL, *method_s = "w1", *range_s = "0.1,2";
    const char *pred_div_s = "1000", *gt_div_s = "1000";
    bool json = false;
    cli_option options[] = {{"pred", 0, true, &pred_path, NULL},
                            {"gt", 0, true, &gt_path, NULL},
                            {"method", 0, true, &method_s, NULL},
                            {"range", 0, true, &range_s, NULL},
                            {"pred-divisor", 0, true, &pred_div_s, NULL},
                            {"gt-divisor", 0, true, &gt_div_s, NULL},
                            {"json", 0, false, NULL, &json},
                            {NULL, 0, false, NULL, NULL}};
    char *pos[64];
    int npos = 0;
    if (argc > 60)
        return cli_usage_error(&cmd_scale, "too many arguments");
    int rc = cli_parse(&cmd_scale, argc, argv, options, pos, &npos);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (npos > 0)
        return cli_usage_error(&cmd_scale, "unexpected argument '%s'", pos[0]);
    if (!pred_path || !gt_path)
        return cli_usage_error(&cmd_scale, "--pred and --gt are required");
    int method = md_scale_method_parse(method_s);
    if (method < 0)
        return cli_usage_error(&cmd_scale, "unknown method '%s' (w1, w2, median, lsq, loglsq)",
                               method_s);
    double lo, hi, pred_div, gt_div;
    if (!cli_parse_pair(range_s, &lo, &hi) || lo <= 0 || lo > hi)
        return cli_usage_error(&cmd_scale, "--range wants LO,HI with 0 < LO <= HI, got '%s'",
                               range_s);
    if (!cli_parse_double(pred_div_s, &pred_div) || pred_div <= 0 ||
        !cli_parse_double(gt_div_s, &gt_div) || gt_div <= 0)
        return cli_usage_error(&cmd_scale, "divisors must be positive numbers");

    md_error err = {0};
    md_depth pred = {0}, gt = {0};
    float *p = NULL, *g = NULL;
    size_t n = 0;
    double s = 1.0;
    int status = CLI_EXIT_OK;
    if (cli_load_depth(pred_path, pred_div, &pred, &err) != MD_OK ||
        cli_load_depth(gt_path, gt_div, &gt, &err) != MD_OK ||
        md_depth_valid_samples(&pred, &gt, &p, &g, &n, &err) != MD_OK ||
        md_scale_fit(p, g, n, (md_scale_method)method, lo, hi, &s, &err) != MD_OK) {
        status = cli_report(&err);
        goto done;
    }
    double w1_before = md_w1_distance(p, g, n, 1.0);
    double w1_after = md_w1_distance(p, g, n, s);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "method", md_scale_method_name((md_scale_method)method));
        cJSON_AddNumberToObject(o, "scale", s);
        cJSON_AddNumberToObject(o, "log_scale", log(s));
        cJSON_AddNumberToObject(o, "w1_before", w1_before);
        cJSON_AddNumberToObject(o, "w1_after", w1_after);
        cJSON_AddNumberToObject(o, "valid_pixels", (double)n);
        char *text = cJSON_Print(o);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(o);
    } else {
        printf("method        %s\n", md_scale_method_name((md_scale_method)method));
        printf("scale         %.6f\n", s);
        printf("log scale     %.6f\n", log(s));
        printf("W1 before     %.6f m\n", w1_before);
        printf("W1 after      %.6f m\n", w1_after);
        printf("valid pixels  %zu\n", n);
    }
done:
    free(p);
    free(g);
    md_depth_free(&pred);
    md_depth_free(&gt);
    return status;
}
