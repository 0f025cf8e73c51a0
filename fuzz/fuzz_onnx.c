/* libFuzzer harness for the ONNX reader and the graph builder. Not built by
 * default:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *         -D_POSIX_C_SOURCE=200809L fuzz/fuzz_onnx.c src/formats/onnx.c \
 *         src/nets/onnx_graph.c src/ops/\*.c src/base/\*.c \
 *         -lm -lpthread -o fuzz_onnx
 *   mkdir -p fuzz/corpus-onnx && cp ../shared/models/fastdepth/fastdepth_7.onnx fuzz/corpus-onnx/
 *   MD_ONNX_SEED_DIR=$PWD/fuzz/corpus-onnx build/tests/test_onnx   # small hand-made models
 *   ./fuzz_onnx -max_total_time=60 -max_len=6000000 fuzz/corpus-onnx
 *
 * Every input goes through md_onnx_parse; a model that parses is built into
 * an executor (activation memory capped at 64 MiB) and, when the input is
 * small (at most 4096 values), run once on a ramp so the kernels see the
 * shapes the builder accepted. */
#include "base/base.h"
#include "formats/onnx.h"
#include "nets/onnx_graph.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    md_onnx_model m;
    md_error err;
    if (md_onnx_parse(data, size, "fuzz", &m, &err) != MD_OK) {
        if (err.code == MD_OK || !err.message[0])
            __builtin_trap(); /* a failure must say why */
        return 0;
    }
    md_onnx_graph *g = NULL;
    if (md_onnx_graph_build(&m, "fuzz", (size_t)64 << 20, &g, &err) == MD_OK) {
        const md_onnx_graph_info *info = md_onnx_graph_get_info(g);
        /* Keep runs cheap: small inputs and modest arithmetic only. */
        if (info->in_numel <= 4096 && info->flop < 5e7) {
            float *in = malloc(sizeof(float) * info->in_numel);
            md_onnx_ws *ws = md_onnx_ws_create(g, 1);
            if (in && ws) {
                for (size_t i = 0; i < info->in_numel; i++)
                    in[i] = (float)(i % 17) * 0.125f - 1.0f;
                const float *out = md_onnx_graph_run(g, ws, NULL, in, NULL);
                volatile float sink = info->out_numel ? out[info->out_numel - 1] : 0.0f;
                (void)sink;
            }
            free(in);
            md_onnx_ws_free(ws);
        }
        md_onnx_graph_free(g);
    } else if (!err.message[0]) {
        __builtin_trap();
    }
    md_onnx_free(&m);
    return 0;
}
