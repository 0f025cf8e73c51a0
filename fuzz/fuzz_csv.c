/* libFuzzer harness for the CSV readers: the scales CSV of fit-scales/train
 * (md_scales_read) and the training log of eval (md_eval_read_loss_log).
 * What the scales reader accepts must write back and read back to the same
 * table. Built and run by scripts/fuzz. */
#include "eval/fit.h"
#include "report/report.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char in_path[64], out_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!in_path[0]) {
        snprintf(in_path, sizeof in_path, "/tmp/md_fuzz_csv_%d.csv", (int)getpid());
        snprintf(out_path, sizeof out_path, "/tmp/md_fuzz_csv_%d.out.csv", (int)getpid());
    }
    FILE *f = fopen(in_path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);

    md_error err = {0};
    md_scales_table t = {0};
    if (md_scales_read(in_path, &t, &err) == MD_OK) {
        if (md_scales_write(out_path, &t, &err) == MD_OK) {
            md_scales_table again = {0};
            if (md_scales_read(out_path, &again, &err) != MD_OK || again.count != t.count)
                __builtin_trap();
            for (size_t i = 0; i < t.count; i++)
                if (strcmp(again.items[i].rgb, t.items[i].rgb) != 0 ||
                    strcmp(again.items[i].depth, t.items[i].depth) != 0)
                    __builtin_trap();
            md_scales_free(&again);
        }
    }
    md_scales_free(&t);

    double *train = NULL, *val = NULL;
    int epochs = 0;
    if (md_eval_read_loss_log(in_path, &train, &val, &epochs, &err) == MD_OK) {
        volatile double sink = 0;
        for (int i = 0; i < epochs; i++)
            sink += train[i] + (isnan(val[i]) ? 0 : val[i]);
        (void)sink;
    }
    free(train);
    free(val);
    return 0;
}
