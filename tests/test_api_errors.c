/* Every public function of metricdepth.h, fed bad input, with an md_error and
 * with err == NULL: the header promises that err may be NULL and that the
 * status never depends on it. Each case runs twice and must give the same,
 * expected status (the expectation is written here by hand), fill the
 * md_error with that code and a message, and not crash (the suite also runs
 * under ASan/UBSan). Inputs are files this test writes: a FIFO, a folder,
 * missing, empty and corrupt files, and the ONNX graphs that once crashed
 * the loader. */
#include "check.h"
#include "metricdepth.h"
#include "writers.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
/* The inputs main writes (and two that do not exist). */
static char fifo[128], folder[128], missing[128], empty[128], junk[128], out[128];

static const char *in_dir(char *dst, size_t size, const char *name)
{
    snprintf(dst, size, "%s/%s", dir, name);
    return dst;
}

/* Runs CALL (which passes E as its md_error *) with an md_error and with
 * NULL; both must return WANT, the first with err filled. */
#define BOTH(want, call)                                                                       \
    do {                                                                                       \
        md_error both_e_ = {0};                                                                \
        md_error *E = &both_e_;                                                                \
        md_status both_a_ = (call);                                                            \
        E = NULL;                                                                              \
        md_status both_b_ = (call);                                                            \
        (void)E;                                                                               \
        CHECK_MSG(both_a_ == (want) && both_b_ == both_a_ && both_e_.code == both_a_ &&        \
                      both_e_.message[0] != '\0',                                              \
                  "%s: %d with err (%s), %d without, want %d", #call, (int)both_a_,            \
                  both_e_.message, (int)both_b_, (int)(want));                                 \
    } while (0)

static void write_text(const char *path, const char *text)
{
    CHECK(write_file(path, (const uint8_t *)text, strlen(text)));
}

static void test_images_and_depth(void)
{
    md_image img = {0};
    md_depth d = {0};
    md_tensor t = {0};
    const char *readers[] = {fifo, folder, missing};
    for (int i = 0; i < 3; i++) {
        BOTH(MD_ERR_IO, md_image_load(readers[i], &img, E));
        BOTH(MD_ERR_IO, md_depth_load(readers[i], NULL, &d, E));
        BOTH(MD_ERR_IO, md_npy_load(readers[i], &t, E));
    }
    BOTH(MD_ERR_FORMAT, md_image_load(empty, &img, E));
    BOTH(MD_ERR_FORMAT, md_image_load(junk, &img, E));
    BOTH(MD_ERR_FORMAT, md_depth_load(junk, NULL, &d, E));
    BOTH(MD_ERR_FORMAT, md_npy_load(junk, &t, E));
    BOTH(MD_ERR_ARG, md_image_load(NULL, &img, E));
    BOTH(MD_ERR_ARG, md_image_load(junk, NULL, E));
    BOTH(MD_ERR_ARG, md_depth_load(NULL, NULL, &d, E));
    BOTH(MD_ERR_ARG, md_depth_load(junk, NULL, NULL, E));
    md_depth_read_options bad_div = {-1.0, MD_DEPTH_PLAIN, 0};
    BOTH(MD_ERR_ARG, md_depth_load(junk, &bad_div, &d, E));
    BOTH(MD_ERR_ARG, md_npy_load(NULL, &t, E));
    CHECK(img.pixels == NULL && d.data == NULL && t.data == NULL);

    /* writers */
    uint8_t px[12] = {0};
    md_image small = {2, 2, px};
    md_image zero = {0, 2, px};
    BOTH(MD_ERR_ARG, md_image_save_png(out, NULL, E));
    BOTH(MD_ERR_ARG, md_image_save_png(out, &zero, E));
    BOTH(MD_ERR_IO, md_image_save_png(out, &small, E));
    float dv[4] = {1, 2, 3, 4};
    md_depth dep = {2, 2, dv, NULL};
    md_depth bad_dep = {-1, 2, dv, NULL};
    BOTH(MD_ERR_ARG, md_depth_save(out, NULL, E));
    BOTH(MD_ERR_ARG, md_depth_save(out, &bad_dep, E));
    BOTH(MD_ERR_IO, md_depth_save(out, &dep, E));
    char ext[128];
    BOTH(MD_ERR_ARG, md_depth_save(in_dir(ext, sizeof ext, "depth.jpg"), &dep, E));
    BOTH(MD_ERR_IO, md_depth_save_preview(out, &dep, MD_COLORMAP_TURBO, 0, 0, E));
    BOTH(MD_ERR_ARG, md_depth_save_preview(out, NULL, MD_COLORMAP_TURBO, 0, 0, E));
    BOTH(MD_ERR_ARG, md_depth_alloc(&d, 0, 5, E));
    BOTH(MD_ERR_ARG, md_depth_alloc(NULL, 5, 5, E));
    md_tensor bad_t = {9, {0}, dv};
    BOTH(MD_ERR_ARG, md_npy_save(out, &bad_t, E));
    BOTH(MD_ERR_ARG, md_npy_save(out, NULL, E));
    md_intrinsics K = md_intrinsics_nyu();
    BOTH(MD_ERR_ARG, md_pointcloud_save_ply(out, NULL, NULL, &K, 1, 0, E));
    BOTH(MD_ERR_ARG, md_pointcloud_save_ply(out, &dep, NULL, &K, 0, 0, E));
    BOTH(MD_ERR_ARG, md_pointcloud_save_ply(out, &dep, &(md_image){3, 2, px}, &K, 1, 0, E));
    BOTH(MD_ERR_IO, md_pointcloud_save_ply(out, &dep, NULL, &K, 1, 0, E));
    md_pointcloud pc = {0};
    BOTH(MD_ERR_ARG, md_pointcloud_from_depth(NULL, NULL, &K, 1, 0, &pc, E));
    BOTH(MD_ERR_ARG, md_pointcloud_from_depth(&dep, NULL, &K, 0, 0, &pc, E));
    md_pointcloud_free(NULL);
    BOTH(MD_ERR_IO, md_file_write_atomic(out, "x", 1, E));
    BOTH(MD_ERR_ARG, md_file_write_atomic(NULL, "x", 1, E));

    /* caller buffers: NULL, a stride shorter than a row, a bad pixel format */
    BOTH(MD_ERR_ARG, md_image_from_pixels(NULL, 2, 2, 6, MD_PIXELS_RGB, &img, E));
    BOTH(MD_ERR_ARG, md_image_from_pixels(px, 2, 2, 5, MD_PIXELS_RGB, &img, E));
    BOTH(MD_ERR_ARG, md_image_from_pixels(px, 2, 2, 6, (md_pixel_format)42, &img, E));
    float dst[4];
    BOTH(MD_ERR_ARG, md_depth_export(NULL, dst, 2, 0.0f, E));
    BOTH(MD_ERR_ARG, md_depth_export(&dep, dst, 1, 0.0f, E));
    CHECK(md_version() != NULL);
    md_image_free(NULL);
    md_depth_free(NULL);
    md_tensor_free(NULL);
    CHECK(md_tensor_numel(NULL) == 0);
    CHECK(strcmp(md_status_name((md_status)99), "unknown error") == 0);
}

static void test_datasets_and_scene(void)
{
    char bad_list[128];
    in_dir(bad_list, sizeof bad_list, "bad_list.txt");
    md_pair_list l = {0};
    BOTH(MD_ERR_IO, md_pairs_read_list(fifo, &l, E));
    BOTH(MD_ERR_IO, md_pairs_read_list(missing, &l, E));
    BOTH(MD_ERR_FORMAT, md_pairs_read_list(bad_list, &l, E));
    BOTH(MD_ERR_ARG, md_pairs_read_list(NULL, &l, E));
    BOTH(MD_ERR_IO, md_pairs_detect(missing, &l, E));
    BOTH(MD_ERR_ARG, md_pairs_detect(NULL, &l, E));
    BOTH(MD_ERR_ARG, md_pairs_write(NULL, &l, E));
    char never[128];
    BOTH(MD_ERR_IO, md_pairs_save(out, &l, E));
    BOTH(MD_ERR_ARG, md_pairs_save(in_dir(never, sizeof never, "never.txt"), NULL, E));
    CHECK(access(never, F_OK) != 0);
    md_pair p = {missing, missing, 1000, MD_DEPTH_PLAIN, 0, {0, 0, 0, 0}};
    md_pair bad_div = {junk, junk, -3, MD_DEPTH_PLAIN, 0, {0, 0, 0, 0}};
    BOTH(MD_ERR_ARG, md_pair_list_append(&l, &bad_div, E));
    BOTH(MD_ERR_ARG, md_pair_list_append(NULL, &p, E));
    md_depth d = {0};
    BOTH(MD_ERR_IO, md_pair_load_depth(&p, &d, E));
    BOTH(MD_ERR_ARG, md_pair_load_depth(NULL, &d, E));
    CHECK(l.count == 0);
    md_pair_list_free(&l);
    md_pair_list_free(NULL);

    md_image rgb = {0};
    md_intrinsics K;
    BOTH(MD_ERR_ARG, md_render_sample_scene(0, 10, 0, &rgb, &d, &K, E));
    BOTH(MD_ERR_ARG, md_render_sample_scene(64, 48, 99, &rgb, &d, &K, E));
}

static void test_scale_and_metrics(void)
{
    float p[3] = {1, 2, 3}, g[3] = {2, 4, 6};
    double s = 0;
    BOTH(MD_ERR_DATA, md_scale_fit(p, g, 0, MD_SCALE_W1, 0.1, 10, &s, E));
    BOTH(MD_ERR_ARG, md_scale_fit(p, g, 3, MD_SCALE_W1, 2, 1, &s, E));
    BOTH(MD_ERR_ARG, md_scale_fit(p, g, 3, (md_scale_method)42, 0.1, 10, &s, E));
    BOTH(MD_ERR_ARG, md_scale_fit(NULL, g, 3, MD_SCALE_W1, 0.1, 10, &s, E));
    CHECK(md_scale_method_parse("l3") == -1 && md_protocol_parse("kitti") == -1 &&
          md_scale_arch_parse("huge") == -1);

    float a[4] = {1, 2, 3, 4}, z[4] = {0};
    md_depth d22 = {2, 2, a, NULL}, d41 = {4, 1, a, NULL}, none = {2, 2, z, NULL};
    float *po = NULL, *go = NULL;
    size_t n = 0;
    BOTH(MD_ERR_DATA, md_depth_valid_samples(&d22, &d41, &po, &go, &n, E));
    BOTH(MD_ERR_ARG, md_depth_valid_samples(NULL, &d41, &po, &go, &n, E));
    md_metrics m;
    BOTH(MD_ERR_DATA, md_metrics_compute(&d22, &d41, MD_PROTOCOL_SEED, &m, E));
    BOTH(MD_ERR_DATA, md_metrics_compute(&d22, &none, MD_PROTOCOL_SEED, &m, E));
    BOTH(MD_ERR_ARG, md_metrics_compute(&d22, &d22, (md_protocol)7, &m, E));
    BOTH(MD_ERR_ARG, md_metrics_compute(NULL, &d22, MD_PROTOCOL_SEED, &m, E));
    md_scale_curve curve;
    BOTH(MD_ERR_DATA, md_scale_curve_build(&d22, &d41, &curve, E));
    BOTH(MD_ERR_DATA, md_scale_curve_build(&d22, &none, &curve, E));
    BOTH(MD_ERR_ARG, md_scale_curve_build(NULL, &d41, &curve, E));
    md_metrics_mean(NULL, 0, &m);
    CHECK(m.n_valid == 0);
}

static void test_scale_model(void)
{
    md_scale_model *sm = NULL;
    BOTH(MD_ERR_IO, md_scale_model_load(fifo, &sm, E));
    BOTH(MD_ERR_IO, md_scale_model_load(missing, &sm, E));
    BOTH(MD_ERR_FORMAT, md_scale_model_load(junk, &sm, E));
    CHECK(sm == NULL);
    md_train_options o = md_train_defaults();
    md_train_log log = {0};
    double ls[1] = {0};
    BOTH(MD_ERR_ARG, md_scale_model_train(NULL, ls, 0, &o, &sm, &log, E));
    uint8_t px[3] = {0};
    md_image img = {1, 1, px};
    double out_ls;
    BOTH(MD_ERR_ARG, md_scale_model_predict(NULL, &img, NULL, &out_ls, E));
    md_scale_estimate est;
    BOTH(MD_ERR_ARG, md_scale_model_estimate(NULL, &img, NULL, &est, E));
    BOTH(MD_ERR_DATA, md_scale_model_fit(NULL, 0, &o, &sm, &log, E)); /* no samples */
    /* scale stage: adaptive without a model, oracle without ground truth, no depth */
    float dv[4] = {1, 2, 3, 4};
    md_depth dep = {2, 2, dv, NULL};
    md_scale_options so = md_scale_options_default();
    md_scale_record rec;
    BOTH(MD_ERR_ARG, md_scale_depth(&img, NULL, NULL, &so, &rec, E));
    so.source = MD_SCALE_SOURCE_ADAPTIVE;
    BOTH(MD_ERR_ARG, md_scale_depth(&img, NULL, &dep, &so, &rec, E));
    so.source = MD_SCALE_SOURCE_ORACLE;
    BOTH(MD_ERR_ARG, md_scale_depth(&img, NULL, &dep, &so, &rec, E));
    CHECK(md_scale_source_parse("magic") == -1);
    BOTH(MD_ERR_ARG, md_scale_model_save(NULL, out, E));
    md_scale_model_free(NULL);
    md_train_log_free(NULL);
}

static void test_models(void)
{
    char junk_onnx[128], empty_st[128];
    in_dir(junk_onnx, sizeof junk_onnx, "junk.onnx");
    in_dir(empty_st, sizeof empty_st, "empty.safetensors");
    md_model *m = NULL;
    BOTH(MD_ERR_IO, md_model_load(fifo, NULL, &m, E));
    BOTH(MD_ERR_IO, md_model_load(folder, NULL, &m, E));
    BOTH(MD_ERR_IO, md_model_load(missing, NULL, &m, E));
    BOTH(MD_ERR_FORMAT, md_model_load(junk_onnx, NULL, &m, E));
    BOTH(MD_ERR_FORMAT, md_model_load(empty_st, NULL, &m, E));
    BOTH(MD_ERR_UNSUPPORTED, md_model_load(junk, NULL, &m, E)); /* .png: no model format */
    BOTH(MD_ERR_ARG, md_model_load(NULL, NULL, &m, E));
    BOTH(MD_ERR_ARG, md_model_load(junk_onnx, NULL, NULL, E));
    /* the graphs that crashed the builder (an empty constant broadcast, a
     * MatMul constant with an inner size of 0) and an unsupported operator */
    static const float one[4] = {1, 1, 1, 1};
    tinit k0 = {"K", 1, {0}, one, NULL}, k20 = {"K", 2, {2, 0}, one, NULL};
    buf g[3] = {one_node(7, "Add", (const char *[]){"X", "K"}, 2, NULL, &k0, 1, (int64_t[]){1}, 1),
                one_node(9, "MatMul", (const char *[]){"K", "X"}, 2, NULL, &k20, 1,
                         (int64_t[]){1, 1}, 2),
                one_node(9, "Softmax", (const char *[]){"X"}, 1, NULL, NULL, 0, (int64_t[]){1, 4},
                         2)};
    md_status want[3] = {MD_ERR_FORMAT, MD_ERR_FORMAT, MD_ERR_UNSUPPORTED};
    for (int i = 0; i < 3; i++) {
        char path[128], name[32];
        snprintf(name, sizeof name, "graph%d.onnx", i);
        CHECK(write_file(in_dir(path, sizeof path, name), g[i].d, g[i].n));
        BOTH(want[i], md_model_load(path, NULL, &m, E));
        free(g[i].d);
    }
    CHECK(m == NULL);

    uint8_t px[3] = {0};
    md_image img = {1, 1, px};
    md_depth d = {0};
    md_tensor t = {0}, o = {0};
    BOTH(MD_ERR_ARG, md_model_predict(NULL, &img, &d, E));
    BOTH(MD_ERR_ARG, md_model_predict_ex(NULL, &img, &d, NULL, E));
    BOTH(MD_ERR_ARG, md_predict_metric(NULL, &img, NULL, &d, NULL, E));
    CHECK(md_model_features(NULL, NULL) == 0);
    CHECK(md_model_file_name(NULL) != NULL);
    md_features_free(NULL);
    BOTH(MD_ERR_ARG, md_model_run_tensor(NULL, &t, &o, E));
    CHECK(md_model_gflop(NULL, 10, 10) == 0.0);
    CHECK(md_model_gflop_bf16(NULL, 10, 10) == 0.0);
    CHECK(md_model_describe(NULL) != NULL);
    md_model_free(NULL);
    BOTH(MD_ERR_ARG, md_default_model_path(NULL, 0, E));
    BOTH(MD_ERR_ARG, md_default_scale_model_path(NULL, NULL, 0, E));
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/md_api_errors_XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    alarm(300); /* a reader that blocks on the FIFO fails instead of hanging */
    char path[128];
    CHECK(mkfifo(in_dir(fifo, sizeof fifo, "fifo.png"), 0600) == 0);
    CHECK(mkdir(in_dir(folder, sizeof folder, "folder.png"), 0700) == 0);
    in_dir(missing, sizeof missing, "missing.png");
    in_dir(out, sizeof out, "no-such-folder/out.png");
    write_text(in_dir(empty, sizeof empty, "empty.png"), "");
    write_text(in_dir(junk, sizeof junk, "junk.png"), "this is not an image, a depth map or a model");
    write_text(in_dir(path, sizeof path, "junk.onnx"), "\x0a\xff\xff\xff\xff\x0f");
    write_text(in_dir(path, sizeof path, "empty.safetensors"), "\x02\0\0\0\0\0\0\0{}");
    write_text(in_dir(path, sizeof path, "bad_list.txt"), "only-one-field.png\n");
    RUN_TEST(test_images_and_depth);
    RUN_TEST(test_datasets_and_scene);
    RUN_TEST(test_scale_and_metrics);
    RUN_TEST(test_scale_model);
    RUN_TEST(test_models);
    check_remove_tree(dir);
    return check_finish();
}
