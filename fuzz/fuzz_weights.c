/* libFuzzer harness over the weight-file parsers: safetensors, the zip
 * reader + restricted unpickler (.pth), and the unpickler alone. Every tensor
 * that parses is converted to float32 so out-of-range extents show up.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *     fuzz/fuzz_weights.c src/formats/safetensors.c src/formats/zip.c \
 *     src/formats/pickle.c src/base/base.c -lz -lm -o fuzz_weights
 *   ./fuzz_weights -max_total_time=60 fuzz/corpus-weights seeds/
 */
#include "base/base.h"
#include "formats/weights.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void touch_all(const md_weights *w)
{
    for (size_t i = 0; i < w->count; i++) {
        int64_t n = md_weight_numel(&w->items[i]);
        if (n <= 0 || n > (1 << 24))
            continue;
        float *buf = malloc((size_t)n * sizeof(float));
        if (!buf)
            continue;
        md_weight_to_f32(&w->items[i], buf);
        volatile float sink = buf[n - 1];
        (void)sink;
        free(buf);
    }
}

typedef struct {
    const uint8_t *data;
    size_t size;
} fixed_storage;

static md_status storage_cb(void *ctx, const char *key, const uint8_t **data, size_t *size,
                            md_error *err)
{
    const fixed_storage *fs = ctx;
    if (key[0] == 'x')
        return md_fail(err, MD_ERR_FORMAT, "no storage %s", key);
    /* different keys see different windows of the input */
    size_t off = (size_t)(key[0] & 7);
    if (off > fs->size)
        off = fs->size;
    *data = fs->data + off;
    *size = fs->size - off;
    return MD_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The parsers keep pointers into the buffer: give them a private copy so
       reads past the end are caught exactly. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    md_error err;
    md_weights w;

    memset(&w, 0, sizeof w);
    if (md_safetensors_parse(copy, size, "fuzz", &w, &err) == MD_OK)
        touch_all(&w);
    md_weights_free(&w);

    memset(&w, 0, sizeof w);
    if (md_pth_parse(copy, size, "fuzz", &w, &err) == MD_OK)
        touch_all(&w);
    md_weights_free(&w);

    md_zip z;
    if (md_zip_open(copy, size, "fuzz", &z, &err) == MD_OK) {
        for (size_t i = 0; i < z.count && i < 64; i++) {
            const uint8_t *d;
            uint8_t *owned;
            size_t n;
            if (md_zip_read(&z, &z.entries[i], "fuzz", &d, &owned, &n, &err) == MD_OK) {
                if (n) {
                    volatile uint8_t sink = d[n - 1];
                    (void)sink;
                }
                free(owned);
            }
        }
        md_zip_close(&z);
    }

    fixed_storage fs = {copy, size};
    memset(&w, 0, sizeof w);
    if (md_pickle_load_state_dict(copy, size, "fuzz", storage_cb, &fs, &w, &err) == MD_OK)
        touch_all(&w);
    md_weights_free(&w);
    free(copy);
    return 0;
}
