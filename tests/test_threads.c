/* Thread safety of md_model: N application threads share one model (and, in
 * the last case, one application thread pool shared by two models) and each
 * runs 20 predictions; every output must equal, bit for bit, what one thread
 * got alone. Run under ThreadSanitizer by scripts/test-tsan. Models: FastDepth
 * (ONNX backend, per-run workspaces from a cache) and the tiny Depth Anything
 * V2 (per-call activations). */
#include "check.h"
#include "metricdepth.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define N_THREADS 4
#define N_RUNS 20
#define N_IMAGES 3

typedef struct {
    const md_model *model;
    const md_image *images;
    const md_depth *want; /* [N_IMAGES] */
    const md_tensor *tin, *tout; /* run_tensor input and its expected output */
    int id, mismatches, failures;
} worker;

static bool same_depth(const md_depth *a, const md_depth *b)
{
    if (a->width != b->width || a->height != b->height)
        return false;
    size_t n = (size_t)a->width * a->height;
    if (memcmp(a->data, b->data, n * sizeof(float)) != 0)
        return false;
    if ((a->mask == NULL) != (b->mask == NULL))
        return false;
    return !a->mask || memcmp(a->mask, b->mask, n) == 0;
}

static void *run_worker(void *arg)
{
    worker *w = arg;
    for (int r = 0; r < N_RUNS; r++) {
        int k = (r + w->id) % N_IMAGES;
        md_error err = {0};
        if (w->tin && r % 5 == 4) { /* now and then the raw network */
            md_tensor out = {0};
            if (md_model_run_tensor(w->model, w->tin, &out, &err) != MD_OK)
                w->failures++;
            else if (md_tensor_numel(&out) != md_tensor_numel(w->tout) ||
                     memcmp(out.data, w->tout->data, md_tensor_numel(&out) * sizeof(float)) != 0)
                w->mismatches++;
            md_tensor_free(&out);
            continue;
        }
        md_depth d = {0};
        if (md_model_predict(w->model, &w->images[k], &d, &err) != MD_OK)
            w->failures++;
        else if (!same_depth(&d, &w->want[k]))
            w->mismatches++;
        md_depth_free(&d);
    }
    return NULL;
}

/* Reference outputs on this thread, then N_THREADS threads at once. */
static void hammer(const md_model *m, const char *what, const md_image *images,
                   const md_tensor *tin)
{
    md_error err = {0};
    md_depth want[N_IMAGES];
    memset(want, 0, sizeof want);
    md_tensor tout = {0};
    for (int k = 0; k < N_IMAGES; k++)
        CHECK_OK(md_model_predict(m, &images[k], &want[k], &err), &err);
    if (tin)
        CHECK_OK(md_model_run_tensor(m, tin, &tout, &err), &err);
    worker w[N_THREADS];
    pthread_t tid[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (worker){m, images, want, tin, &tout, i, 0, 0};
        CHECK(pthread_create(&tid[i], NULL, run_worker, &w[i]) == 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(tid[i], NULL);
        CHECK_MSG(w[i].failures == 0 && w[i].mismatches == 0,
                  "%s, thread %d: %d failed, %d of %d outputs differ from one thread's", what, i,
                  w[i].failures, w[i].mismatches, N_RUNS);
    }
    for (int k = 0; k < N_IMAGES; k++)
        md_depth_free(&want[k]);
    md_tensor_free(&tout);
}

static void make_images(md_image *images)
{
    static const int sizes[N_IMAGES][2] = {{160, 120}, {200, 150}, {97, 131}};
    for (int k = 0; k < N_IMAGES; k++) {
        md_error err = {0};
        md_depth d = {0};
        md_intrinsics K;
        CHECK_OK(md_render_sample_scene(sizes[k][0], sizes[k][1], k, &images[k], &d, &K, &err),
                 &err);
        md_depth_free(&d);
    }
}

int main(void)
{
    const char *shared = check_shared_dir();
    char fd[512], da2[512];
    snprintf(fd, sizeof fd, "%s/models/fastdepth/fastdepth_7.onnx", shared);
    snprintf(da2, sizeof da2, "%s/reference/da2/tiny/model.safetensors", shared);
    FILE *probe = fopen(fd, "rb");
    if (!probe) {
        fprintf(stderr, "skipped: %s not found\n", fd);
        return 77;
    }
    fclose(probe);
    md_image images[N_IMAGES];
    memset(images, 0, sizeof images);
    make_images(images);
    md_error err = {0};

    /* Each model on its own two-thread pool, four callers at once. */
    md_model_options opts = {0};
    opts.threads = 2;
    opts.input_size = 140; /* DA2: the tiny reference's input size (FastDepth ignores it) */
    md_model *m = NULL;
    float *x = calloc(3 * 224 * 224, sizeof(float));
    for (int i = 0; x && i < 3 * 224 * 224; i++)
        x[i] = (float)((i * 7919) % 255) / 255.0f;
    md_tensor tin = {4, {1, 3, 224, 224}, x};
    CHECK_OK(md_model_load(fd, &opts, &m, &err), &err);
    if (m)
        hammer(m, "fastdepth", images, x ? &tin : NULL);
    md_model_free(m);
    m = NULL;
    CHECK_OK(md_model_load(da2, &opts, &m, &err), &err);
    if (m)
        hammer(m, "depth anything v2 tiny", images, NULL);
    md_model_free(m);

    /* One application pool shared by both models, each model hammered while
     * the other runs: the pool hands regions to one caller at a time. */
    md_threadpool *pool = NULL;
    CHECK_OK(md_threadpool_create(3, &pool, &err), &err);
    CHECK(md_threadpool_threads(pool) == 3);
    md_model_options shared_opts = {0};
    shared_opts.pool = pool;
    shared_opts.input_size = 140;
    md_model *a = NULL, *b = NULL;
    CHECK_OK(md_model_load(fd, &shared_opts, &a, &err), &err);
    CHECK_OK(md_model_load(da2, &shared_opts, &b, &err), &err);
    if (a && b) {
        hammer(a, "fastdepth on a shared pool", images, NULL);
        hammer(b, "depth anything v2 on a shared pool", images, NULL);
    }
    md_model_free(a);
    md_model_free(b);
    md_threadpool_free(pool);
    CHECK(md_threadpool_create(-1, &pool, &err) == MD_ERR_ARG && pool == NULL);
    free(x);
    for (int k = 0; k < N_IMAGES; k++)
        md_image_free(&images[k]);
    return check_finish();
}
