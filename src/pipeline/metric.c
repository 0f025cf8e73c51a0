/* The one-call metric prediction: base network, then the scale source. */
#include "base/base.h"

#include <string.h>

md_status md_predict_metric(md_model *model, const md_image *img, const md_scale_options *opts,
                            md_depth *out, md_scale_record *rec, md_error *err)
{
    md_scale_options o = opts ? *opts : md_scale_options_default();
    if (!o.base_model_name)
        o.base_model_name = md_model_file_name(model);
    /* the encoder scale model reads what the network's encoder computed */
    md_features f = {0};
    int want = o.scale_model && md_scale_model_arch(o.scale_model) == MD_SCALE_ARCH_ENCODER &&
               (o.source == MD_SCALE_SOURCE_ADAPTIVE || o.source == MD_SCALE_SOURCE_AUTO);
    md_status st = md_model_predict_ex(model, img, out, want ? &f : NULL, err);
    if (st != MD_OK)
        return st;
    st = md_scale_depth(img, want ? &f : NULL, out, &o, rec, err);
    md_features_free(&f);
    if (st != MD_OK)
        md_depth_free(out);
    return st;
}
