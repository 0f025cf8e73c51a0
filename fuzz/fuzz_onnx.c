/* libFuzzer harness for the ONNX reader and the graph builder, built and run
 * by scripts/fuzz with the seeds of fuzz/make_seeds.c (one small graph per
 * operator, a chain of the builder's rewrites, the crash reproducers); the
 * real FastDepth model is a good extra seed:
 *
 *   scripts/fuzz 600 onnx
 *   cp ../shared/models/fastdepth/fastdepth_7.onnx build-fuzz/corpus-onnx/  # optional
 *
 * Every input goes through md_onnx_parse; a model that parses is built into
 * an executor (activation memory capped at 64 MiB), once with an md_error and
 * once without (the status must not depend on it), and, when the input is
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
    md_status st = md_onnx_graph_build(&m, "fuzz", (size_t)64 << 20, MD_GEMM_F32, &g, &err);
    md_onnx_graph *g2 = NULL;
    if (md_onnx_graph_build(&m, "fuzz", (size_t)64 << 20, MD_GEMM_F32, &g2, NULL) != st)
        __builtin_trap(); /* the status may not depend on err */
    md_onnx_graph_free(g2);
    if (st == MD_OK) {
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
