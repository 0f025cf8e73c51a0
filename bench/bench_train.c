/* Scale CNN training speed through the public API.
 *   bench_train [paper_batches (default 4)] [threads (default 2)] [compact_images (default 314)]
 * paper: batches of 30 at 224x224 on random 320x240 images; the time per batch
 * is taken between progress callbacks (after the first batch, so set-up and
 * initialisation of the 205.6 M parameters are not counted). compact: one
 * epoch over all images (no validation split), timed by the progress clock.
 * Prints seconds per batch / epoch (wall and process CPU), a 30-epoch
 * projection and peak RSS. */
#include "metricdepth.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
    double first_end, last_end;
    double cpu_first, cpu_last; /* process CPU seconds, all threads */
    int batches;
} timing;

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void on_progress(void *user, const md_train_progress *p)
{
    timing *t = user;
    double cpu = cpu_seconds();
    if (t->batches == 0) {
        t->first_end = p->elapsed_s;
        t->cpu_first = cpu;
    }
    t->last_end = p->elapsed_s;
    t->cpu_last = cpu;
    t->batches++;
}

static md_image *random_images(int n, int w, int h)
{
    md_image *imgs = calloc((size_t)n, sizeof *imgs);
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < n && imgs; i++) {
        imgs[i].width = w;
        imgs[i].height = h;
        imgs[i].pixels = malloc((size_t)w * h * 3);
        if (!imgs[i].pixels)
            return NULL;
        for (size_t j = 0; j < (size_t)w * h * 3; j++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            imgs[i].pixels[j] = (uint8_t)(s >> 24);
        }
    }
    return imgs;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv)
{
    int paper_batches = argc > 1 ? atoi(argv[1]) : 4;
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    int n_compact = argc > 3 ? atoi(argv[3]) : 314;
    if (paper_batches < 2 || threads < 1 || n_compact < 1) {
        fprintf(stderr, "usage: bench_train [paper_batches>=2] [threads] [compact_images]\n");
        return 2;
    }
    int n = paper_batches * 30 > n_compact ? paper_batches * 30 : n_compact;
    md_image *imgs = random_images(n, 320, 240);
    double *targets = malloc(sizeof(double) * (size_t)n);
    if (!imgs || !targets)
        return 1;
    for (int i = 0; i < n; i++)
        targets[i] = 0.3 * ((i % 7) - 3) / 3.0;
    md_error err = {0};

    /* paper */
    md_train_options o = md_train_defaults();
    o.arch = MD_SCALE_ARCH_PAPER;
    o.epochs = 1;
    o.val_fraction = 0.0;
    o.threads = threads;
    timing tp = {0};
    o.progress = on_progress;
    o.progress_user = &tp;
    md_scale_model *m = NULL;
    md_train_log log = {0};
    if (md_scale_model_train(imgs, targets, (size_t)paper_batches * 30, &o, &m, &log, &err) !=
        MD_OK) {
        fprintf(stderr, "paper: %s\n", err.message);
        return 1;
    }
    double spb = (tp.last_end - tp.first_end) / (tp.batches - 1);
    /* 314 images, 80/20 split: 252 train = 9 batches per epoch (8 x 30 + 12);
     * validation (62 images, forward only, about a third of a training batch's
     * work per 30) after epochs 5, 10, ..., 30. */
    double proj = 30 * (8 + 12.0 / 30) * spb + 6 * (62.0 / 30) * spb / 3;
    printf("paper:   %.2f s per batch of 30 (%d timed, %d threads), projected 30 epochs on 314 "
           "images: %.1f min (%s)\n",
           spb, tp.batches - 1, threads, proj / 60, md_scale_model_describe(m));
    /* CPU time is robust on a shared machine: CPU seconds / threads is what a
     * batch would take with the cores to itself (if the threads scale). */
    printf("         %.2f CPU s per batch (%.2f s per thread), peak RSS so far %.0f MiB\n",
           (tp.cpu_last - tp.cpu_first) / (tp.batches - 1),
           (tp.cpu_last - tp.cpu_first) / (tp.batches - 1) / threads, peak_rss_mib());
    md_scale_model_free(m);
    md_train_log_free(&log);

    /* compact */
    o.arch = MD_SCALE_ARCH_COMPACT;
    timing tc = {0};
    o.progress_user = &tc;
    if (md_scale_model_train(imgs, targets, (size_t)n_compact, &o, &m, &log, &err) != MD_OK) {
        fprintf(stderr, "compact: %s\n", err.message);
        return 1;
    }
    printf("compact: %.2f s per epoch of %d images (%d batches, %.3f s per batch of 30), 30 "
           "epochs: %.1f min (%s)\n",
           tc.last_end, n_compact, tc.batches, tc.last_end / tc.batches, 30 * tc.last_end / 60,
           md_scale_model_describe(m));
    printf("peak RSS %.0f MiB\n", peak_rss_mib());
    md_scale_model_free(m);
    md_train_log_free(&log);
    for (int i = 0; i < n; i++)
        free(imgs[i].pixels);
    free(imgs);
    free(targets);
    return 0;
}
