/* libFuzzer harness for the I/O readers. Not built by default:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
 *         -D_POSIX_C_SOURCE=200809L fuzz/fuzz_io.c src/io/\*.c src/base/\*.c \
 *         -lpng -ljpeg -lz -lm -o fuzz_io
 *   ./fuzz_io -max_total_time=60 corpus/
 *
 * Each input is written to a temporary file and handed to md_image_load_info
 * (PNG, JPEG with its EXIF orientation, WebP, TIFF, BMP, PNM), md_depth_load
 * (plain and SUN encodings), md_npy_load, the intrinsics parser and, as a
 * .txt file, the input-list reader. When a small input
 * loads, it is also written back (PNG / PFM) and re-read, and the round trip
 * must be exact; a mismatch traps so the fuzzer reports it. */
#include "metricdepth.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char input_path[64];
static char output_png[80];
static char output_pfm[80];
static char list_path[80];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void remove_temp_files(void)
{
    unlink(input_path);
    unlink(output_png);
    unlink(output_pfm);
    unlink(list_path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(input_path, sizeof input_path, "/tmp/md_fuzz_io_XXXXXX");
    int fd = mkstemp(input_path);
    if (fd < 0)
        return 0;
    close(fd);
    snprintf(output_png, sizeof output_png, "%s.out.png", input_path);
    snprintf(output_pfm, sizeof output_pfm, "%s.out.pfm", input_path);
    snprintf(list_path, sizeof list_path, "%s.txt", input_path);
    atexit(remove_temp_files);
    return 0;
}

static void check_image_roundtrip(const md_image *img)
{
    if ((size_t)img->width * (size_t)img->height > 4096)
        return;
    md_error err;
    md_image back = {0};
    if (md_image_save_png(output_png, img, &err) != MD_OK)
        __builtin_trap();
    if (md_image_load(output_png, &back, &err) != MD_OK || back.width != img->width ||
        back.height != img->height ||
        memcmp(back.pixels, img->pixels, (size_t)img->width * (size_t)img->height * 3) != 0)
        __builtin_trap();
    md_image_free(&back);
}

static void check_depth_roundtrip(const md_depth *d)
{
    size_t n = (size_t)d->width * (size_t)d->height;
    if (n > 4096)
        return;
    for (size_t i = 0; i < n; i++) /* readers store invalid as 0, never NaN/neg */
        if (!(d->data[i] >= 0.0f) || d->data[i] > 3.0e38f)
            __builtin_trap();
    md_error err;
    md_depth back = {0};
    if (md_depth_save(output_pfm, d, &err) != MD_OK)
        __builtin_trap();
    if (md_depth_load(output_pfm, NULL, &back, &err) != MD_OK || back.width != d->width ||
        back.height != d->height || memcmp(back.data, d->data, n * sizeof(float)) != 0)
        __builtin_trap();
    md_depth_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!input_path[0])
        LLVMFuzzerInitialize(NULL, NULL);
    FILE *f = fopen(input_path, "wb");
    if (!f)
        return 0;
    if (size)
        fwrite(data, 1, size, f);
    fclose(f);

    md_error err;
    md_image img = {0};
    md_image_info info;
    if (md_image_load_info(input_path, &img, &info, &err) == MD_OK) {
        /* orientations 5-8 swap the sides, the others keep them */
        int swap = info.orientation >= 5;
        if (info.orientation < 1 || info.orientation > 8 ||
            img.width != (swap ? info.height0 : info.width0) ||
            img.height != (swap ? info.width0 : info.height0))
            __builtin_trap();
        check_image_roundtrip(&img);
    }
    md_image_free(&img);

    if (size < 4096) {
        char text[4096];
        memcpy(text, data, size);
        text[size] = '\0';
        md_intrinsics K;
        int w, h;
        if (md_intrinsics_parse(text, "fuzz", &K, &w, &h, &err) == MD_OK &&
            (!(K.fx > 0) || !(K.fy > 0) || w < 0 || h < 0))
            __builtin_trap();
        f = fopen(list_path, "wb");
        if (f) {
            fwrite(data, 1, size, f);
            fclose(f);
            md_input_list list;
            memset(&list, 0, sizeof list);
            if (md_inputs_add(&list, list_path, &err) == MD_OK)
                md_inputs_finish(&list, &err);
            md_input_list_free(&list);
        }
    }

    md_depth d = {0};
    if (md_depth_load(input_path, NULL, &d, &err) == MD_OK)
        check_depth_roundtrip(&d);
    md_depth_free(&d);
    md_depth_read_options sun = {0, MD_DEPTH_SUN_ROTATED, 1};
    if (md_depth_load(input_path, &sun, &d, &err) == MD_OK)
        check_depth_roundtrip(&d);
    md_depth_free(&d);

    md_tensor t = {0};
    if (md_npy_load(input_path, &t, &err) == MD_OK) {
        size_t n = md_tensor_numel(&t);
        volatile float sum = 0.0f;
        for (size_t i = 0; i < n; i++) /* touch every element */
            sum += t.data[i];
        (void)sum;
    }
    md_tensor_free(&t);
    return 0;
}
