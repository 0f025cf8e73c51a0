/* The anchors of one image for predict: --anchors names one file for every
 * image, or a folder with one file per image. */
#include "cli.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cli_anchors_for_image(const char *arg, double divisor, const char *image_path, int width,
                          int height, md_anchor_set *out, char *name, size_t name_size,
                          md_error *err)
{
    struct stat sb;
    memset(out, 0, sizeof *out);
    snprintf(name, name_size, "%s", arg);
    if (stat(arg, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        static const char *const ext[] = {".txt", ".png", ".npy"};
        char stem[1024], file[1100];
        cli_stem(stem, sizeof stem, image_path);
        bool found = false;
        for (size_t i = 0; i < sizeof ext / sizeof *ext && !found; i++) {
            snprintf(file, sizeof file, "%s%s", stem, ext[i]);
            cli_path_join(name, name_size, arg, file);
            found = access(name, F_OK) == 0;
        }
        if (!found) {
            err->code = MD_ERR_IO;
            snprintf(err->message, sizeof err->message,
                     "%.200s: no anchors for %.150s (looked for %.100s.txt, .png, .npy)", arg,
                     image_path, stem);
            return -1;
        }
    }
    return md_anchors_load(name, width, height, divisor, out, err) == MD_OK ? 0 : -1;
}
