#include "cli.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

static int run(int argc, char **argv);

const cli_command cmd_metrics = {
    "metrics", "depth accuracy metrics of a prediction against ground truth",
    "usage: metricdepth metrics --pred FILE --gt FILE [options]\n\n"
    "Prints AbsRel, SqRel, RMSE, RMSE-log, log10, SILog and delta1..3 of pred\n"
    "against gt. SILog = sqrt(mean(e^2) - 0.5 mean(e)^2), e = ln pred - ln gt\n"
    "(Depth Anything V2's definition, not multiplied by 100).\n\n"
    "options:\n"
    "  --pred FILE          predicted depth (.npy/.pfm metres, or 16-bit PNG/PGM)\n"
    "  --gt FILE            ground-truth depth\n"
    "  --protocol P         seed (default): pixels with gt > 0 and pred > 0, whole image;\n"
    "                       eigen: crop rows 45..470, cols 41..600 of 480x640 (scaled for\n"
    "                       other sizes), gt in (1e-3, 10) m, pred clipped to [1e-3, 10]\n"
    "  --scale S            multiply pred by S first (default 1)\n"
    "  --pred-divisor D     raw/D = metres for integer pred files (default 1000)\n"
    "  --gt-divisor D       raw/D = metres for integer gt files (default 1000)\n"
    "  --json               print JSON\n"
    "  -h, --help           this text\n\n"
    "example:\n"
    "  metricdepth metrics --pred out/rgb_00000.depth.npy --protocol eigen \\\n"
    "      --gt ../shared/data/nyu_demo_metric3d/depth/sync_depth_00000.png\n",
    run};

cJSON *cli_metrics_json(const md_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "abs_rel", m->abs_rel);
    cJSON_AddNumberToObject(o, "sq_rel", m->sq_rel);
    cJSON_AddNumberToObject(o, "rmse", m->rmse);
    cJSON_AddNumberToObject(o, "rmse_log", m->rmse_log);
    cJSON_AddNumberToObject(o, "log10", m->log10);
    cJSON_AddNumberToObject(o, "silog", m->silog);
    cJSON_AddNumberToObject(o, "delta1", m->delta1);
    cJSON_AddNumberToObject(o, "delta2", m->delta2);
    cJSON_AddNumberToObject(o, "delta3", m->delta3);
    return o;
}

static void print_metrics(const md_metrics *m, bool json)
{
    if (json) {
        cJSON *o = cli_metrics_json(m);
        cJSON_AddNumberToObject(o, "valid_pixels", (double)m->n_valid);
        char *text = cJSON_Print(o);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(o);
        return;
    }
    printf("AbsRel    %.4f\n", m->abs_rel);
    printf("SqRel     %.4f\n", m->sq_rel);
    printf("RMSE      %.4f m\n", m->rmse);
    printf("RMSE-log  %.4f\n", m->rmse_log);
    printf("log10     %.4f\n", m->log10);
    printf("SILog     %.4f\n", m->silog);
    printf("delta1    %.4f\n", m->delta1);
    printf("delta2    %.4f\n", m->delta2);
    printf("delta3    %.4f\n", m->delta3);
    printf("pixels    %zu\n", m->n_valid);
}

static int run(int argc, char **argv)
{
    const char *pred_path = NULL, *gt_path = NULL, *protocol_s = "seed", *scale_s = "1";
    const char *pred_div_s = "1000", *gt_div_s = "1000";
    bool json = false;
    cli_option options[] = {{"pred", 0, true, &pred_path, NULL},
                            {"gt", 0, true, &gt_path, NULL},
                            {"protocol", 0, true, &protocol_s, NULL},
                            {"scale", 0, true, &scale_s, NULL},
                            {"pred-divisor", 0, true, &pred_div_s, NULL},
                            {"gt-divisor", 0, true, &gt_div_s, NULL},
                            {"json", 0, false, NULL, &json},
                            {NULL, 0, false, NULL, NULL}};
    char *pos[64];
    int npos = 0;
    if (argc > 60)
        return cli_usage_error(&cmd_metrics, "too many arguments");
    int rc = cli_parse(&cmd_metrics, argc, argv, options, pos, &npos);
    if (rc != 0)
        return rc < 0 ? CLI_EXIT_OK : rc;
    if (npos > 0)
        return cli_usage_error(&cmd_metrics, "unexpected argument '%s'", pos[0]);
    if (!pred_path || !gt_path)
        return cli_usage_error(&cmd_metrics, "--pred and --gt are required");
    int protocol = md_protocol_parse(protocol_s);
    if (protocol < 0)
        return cli_usage_error(&cmd_metrics, "unknown protocol '%s' (seed, eigen)", protocol_s);
    double scale, pred_div, gt_div;
    if (!cli_parse_double(scale_s, &scale) || scale <= 0)
        return cli_usage_error(&cmd_metrics, "--scale must be a positive number");
    if (!cli_parse_double(pred_div_s, &pred_div) || pred_div <= 0 ||
        !cli_parse_double(gt_div_s, &gt_div) || gt_div <= 0)
        return cli_usage_error(&cmd_metrics, "divisors must be positive numbers");

    md_error err = {0};
    md_depth pred = {0}, gt = {0};
    md_metrics m;
    int status = CLI_EXIT_OK;
    if (cli_load_depth(pred_path, pred_div, &pred, &err) != MD_OK ||
        cli_load_depth(gt_path, gt_div, &gt, &err) != MD_OK) {
        status = cli_report(&err);
        goto done;
    }
    for (size_t i = 0; i < (size_t)pred.width * (size_t)pred.height; i++)
        pred.data[i] *= (float)scale;
    if (md_metrics_compute(&pred, &gt, (md_protocol)protocol, &m, &err) != MD_OK) {
        status = cli_report(&err);
        goto done;
    }
    print_metrics(&m, json);
done:
    md_depth_free(&pred);
    md_depth_free(&gt);
    return status;
}
