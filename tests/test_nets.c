/* md_model: backend choice by file content, errors naming the file, the
 * default-model lookup order, and argument checks. The backends' numerics are
 * tested against reference tensors in test_onnx and test_da2. */
#include "check.h"
#include "metricdepth.h"
#include "ops/cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[64];

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void test_load_errors_name_the_file(void)
{
    md_error err = {0};
    md_model *m = (md_model *)1;
    CHECK(md_model_load("/nonexistent/model.onnx", NULL, &m, &err) == MD_ERR_IO);
    CHECK(m == NULL);
    CHECK(strstr(err.message, "/nonexistent/model.onnx") != NULL);

    char path[128];
    snprintf(path, sizeof path, "%s/weights.bin", tmpdir);
    write_file(path, "not a model at all", 18);
    CHECK(md_model_load(path, NULL, &m, &err) == MD_ERR_UNSUPPORTED);
    CHECK(strstr(err.message, "weights.bin") != NULL);

    /* A zip that is no PyTorch checkpoint goes to the DA2 reader, which says why. */
    snprintf(path, sizeof path, "%s/broken.pth", tmpdir);
    write_file(path, "PK\x03\x04garbage", 11);
    md_status st = md_model_load(path, NULL, &m, &err);
    CHECK(st != MD_OK && m == NULL);
    CHECK(strstr(err.message, "broken.pth") != NULL);

    /* An .onnx file that is not protobuf: the ONNX reader rejects it. */
    snprintf(path, sizeof path, "%s/broken.onnx", tmpdir);
    write_file(path, "\xff\xff\xff\xff\xff\xff", 6);
    st = md_model_load(path, NULL, &m, &err);
    CHECK(st != MD_OK && m == NULL);
    CHECK(strstr(err.message, "broken.onnx") != NULL);
}

static void test_argument_checks(void)
{
    md_error err = {0};
    md_depth d;
    md_tensor t;
    md_image empty = {0};
    CHECK(md_model_predict(NULL, &empty, &d, &err) == MD_ERR_ARG);
    CHECK(md_model_run_tensor(NULL, NULL, &t, &err) == MD_ERR_ARG);
    CHECK(md_model_gflop(NULL, 640, 480) == 0.0);
    CHECK(strcmp(md_model_describe(NULL), "") == 0);
    md_model_free(NULL);
}

static void test_backends_by_content(const char *shared)
{
    md_error err = {0};
    char path[512];
    md_model *m = NULL;
    snprintf(path, sizeof path, "%s/models/fastdepth/fastdepth_7.onnx", shared);
    CHECK_OK(md_model_load(path, NULL, &m, &err), &err);
    if (m) {
        CHECK(strstr(md_model_describe(m), "ONNX") != NULL);
        /* FastDepth: 0.73 GFLOP per 224x224 pass (multiply-add = 2), whatever the image size */
        CHECK_NEAR(md_model_gflop(m, 640, 480), 0.73, 0.02);
        md_model_free(m);
    }
    /* The DA2 safetensors file is recognised by its header, not its name. */
    char copy[128];
    snprintf(copy, sizeof copy, "%s/renamed.bin", tmpdir);
    snprintf(path, sizeof path, "%s/reference/da2/tiny/model.safetensors", shared);
    if (symlink(path, copy) == 0) {
        m = NULL;
        CHECK_OK(md_model_load(copy, NULL, &m, &err), &err);
        if (m) {
            CHECK(strstr(md_model_describe(m), "depth-anything") != NULL);
            md_model_free(m);
        }
        unlink(copy);
    }
}

static void test_default_model_lookup(void)
{
    md_error err = {0};
    char buf[512], dir[128], want[256], file[256];
    /* an explicitly named model is used when readable, refused when not */
    snprintf(file, sizeof file, "%s/mine.onnx", tmpdir);
    write_file(file, "x", 1);
    setenv("METRICDEPTH_MODEL", file, 1);
    CHECK_OK(md_default_model_path(buf, sizeof buf, &err), &err);
    CHECK(strcmp(buf, file) == 0);
    setenv("METRICDEPTH_MODEL", "/some/where/model.onnx", 1);
    CHECK(md_default_model_path(buf, sizeof buf, &err) == MD_ERR_IO);
    CHECK(strstr(err.message, "/some/where/model.onnx") != NULL);
    CHECK(md_default_model_path(buf, sizeof buf, NULL) == MD_ERR_IO);
    unsetenv("METRICDEPTH_MODEL");
    unlink(file);

    snprintf(dir, sizeof dir, "%s/models", tmpdir);
    mkdir(dir, 0700);
    snprintf(want, sizeof want, "%s/fastdepth_7.onnx", dir);
    write_file(want, "x", 1);
    setenv("METRICDEPTH_MODELS_DIR", dir, 1);
    CHECK_OK(md_default_model_path(buf, sizeof buf, &err), &err);
    CHECK(strcmp(buf, want) == 0);
    /* METRICDEPTH_DATA_DIR/models: the installed layout (share/metricdepth) */
    unsetenv("METRICDEPTH_MODELS_DIR");
    setenv("METRICDEPTH_DATA_DIR", tmpdir, 1);
    CHECK_OK(md_default_model_path(buf, sizeof buf, &err), &err);
    CHECK(strcmp(buf, want) == 0);
    unlink(want);
    /* a named folder without the model is an error, not a fallback */
    setenv("METRICDEPTH_MODELS_DIR", dir, 1);
    CHECK(md_default_model_path(buf, sizeof buf, &err) == MD_ERR_IO);
    unsetenv("METRICDEPTH_MODELS_DIR");
    CHECK(md_default_model_path(buf, sizeof buf, &err) == MD_ERR_IO);
    unsetenv("METRICDEPTH_DATA_DIR");
    rmdir(dir);
}

/* Precision: names round-trip; an ONNX model refuses bf16 (auto keeps it
 * fp32); unknown values are refused. */
static void test_precision(const char *shared)
{
    CHECK(md_precision_parse("fp32") == MD_PRECISION_FP32);
    CHECK(md_precision_parse("bf16") == MD_PRECISION_BF16);
    CHECK(md_precision_parse("auto") == MD_PRECISION_AUTO);
    CHECK(md_precision_parse("fp16") == -1 && md_precision_parse(NULL) == -1);
    CHECK(strcmp(md_precision_name(MD_PRECISION_BF16), "bf16") == 0);
    char path[512];
    snprintf(path, sizeof path, "%s/models/fastdepth/fastdepth_7.onnx", shared);
    md_error err = {0};
    md_model *m = NULL;
    md_model_options opts = {0};
    /* ONNX models take bf16 too (their convolutions' products); auto is
     * bf16 exactly where the CPU multiplies bf16 natively */
    opts.precision = MD_PRECISION_BF16;
    CHECK_OK(md_model_load(path, &opts, &m, &err), &err);
    CHECK(md_model_precision(m) == MD_PRECISION_BF16);
    md_model_free(m);
    opts.precision = MD_PRECISION_AUTO;
    CHECK_OK(md_model_load(path, &opts, &m, &err), &err);
    md_cpu_features cpu = md_cpu_detect();
    CHECK(md_model_precision(m) ==
          (cpu.avx512_bf16 || cpu.amx_bf16 ? MD_PRECISION_BF16 : MD_PRECISION_FP32));
    md_model_free(m);
    opts.precision = (md_precision)7;
    CHECK(md_model_load(path, &opts, &m, &err) == MD_ERR_ARG && m == NULL);
    md_runtime_info info;
    md_runtime_describe(&info);
    CHECK(info.cpus >= 1 && info.cpu[0] && info.fp32_kernels && info.bf16_kernels);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/md_test_models_XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    RUN_TEST(test_load_errors_name_the_file);
    RUN_TEST(test_argument_checks);
    RUN_TEST(test_default_model_lookup);
    const char *shared = check_shared_dir();
    char probe[512];
    snprintf(probe, sizeof probe, "%s/models/fastdepth/fastdepth_7.onnx", shared);
    if (access(probe, R_OK) == 0) {
        test_backends_by_content(shared);
        test_precision(shared);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_finish();
}
