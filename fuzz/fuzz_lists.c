/* libFuzzer harness for the text readers: pair lists (md_pairs_read_list)
 * and, through the same bytes, the dataset writer's round trip. Each input is
 * written to a temporary list file; whatever parses must write back and read
 * back to the same pairs. Built and run by scripts/fuzz. */
#include "metricdepth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char list_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!list_path[0]) {
        snprintf(list_path, sizeof list_path, "/tmp/md_fuzz_list_%d.txt", (int)getpid());
    }
    FILE *f = fopen(list_path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);

    md_pair_list list = {0};
    md_error err = {0};
    if (md_pairs_read_list(list_path, &list, &err) == MD_OK) {
        /* Round trip: what we accept we must be able to write and read back. */
        char *buf = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        if (mem && md_pairs_write(mem, &list, &err) == MD_OK) {
            fclose(mem);
            mem = NULL;
            FILE *g = fopen(list_path, "wb");
            if (g) {
                fwrite(buf, 1, len, g);
                fclose(g);
                md_pair_list again = {0};
                if (md_pairs_read_list(list_path, &again, &err) != MD_OK ||
                    again.count != list.count)
                    __builtin_trap();
                for (size_t i = 0; i < list.count; i++)
                    if (strcmp(again.items[i].rgb_path, list.items[i].rgb_path) != 0 ||
                        strcmp(again.items[i].depth_path, list.items[i].depth_path) != 0 ||
                        again.items[i].depth_divisor != list.items[i].depth_divisor)
                        __builtin_trap();
                md_pair_list_free(&again);
            }
        }
        if (mem)
            fclose(mem);
        free(buf);
    }
    md_pair_list_free(&list);
    return 0;
}
