/* The smallest embedding of metricdepth: what `metricdepth predict` does by
 * default (the installed FastDepth, the shipped scale model through its
 * confidence gate), for one image, into a .npy of metres.
 * Build: cc embed.c $(pkg-config --cflags --libs metricdepth) -o embed */
#include <metricdepth.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: embed IMAGE OUT.npy\n");
        return 2;
    }
    md_error err = {0};
    char path[4096], scale_path[4096];
    md_model *model = NULL;
    md_scale_model *scale = NULL;
    md_image img = {0};
    md_depth depth = {0};
    md_scale_record rec;
    md_scale_options so = md_scale_options_default();
    int ok = md_default_model_path(path, sizeof path, &err) == MD_OK &&
             md_model_load(path, NULL, &model, &err) == MD_OK &&
             md_image_load(argv[1], &img, &err) == MD_OK;
    if (ok && md_default_scale_model_path(md_model_file_name(model), scale_path,
                                          sizeof scale_path, NULL) == MD_OK)
        ok = md_scale_model_load(scale_path, &scale, &err) == MD_OK;
    so.scale_model = scale;
    ok = ok && md_predict_metric(model, &img, &so, &depth, &rec, &err) == MD_OK &&
         md_depth_save(argv[2], &depth, &err) == MD_OK;
    if (ok)
        printf("metricdepth %s, model %s: scale %.4f (%s)\n", md_version(), path, rec.scale,
               md_scale_source_name(rec.source));
    else
        fprintf(stderr, "embed: %s\n", err.message);
    md_depth_free(&depth);
    md_image_free(&img);
    md_scale_model_free(scale);
    md_model_free(model);
    return ok ? 0 : 1;
}
