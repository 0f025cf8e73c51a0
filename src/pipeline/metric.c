/* The one-call metric prediction: base network, then the scale source. */
#include "base/base.h"

#include <string.h>

md_status md_predict_metric(md_model *model, const md_image *img, const md_scale_options *opts,
                            md_depth *out, md_scale_record *rec, md_error *err)
{
    md_status st = md_model_predict(model, img, out, err);
    if (st != MD_OK)
        return st;
    md_scale_options o = opts ? *opts : md_scale_options_default();
    if (!o.base_model_name)
        o.base_model_name = md_model_file_name(model);
    st = md_scale_depth(img, out, &o, rec, err);
    if (st != MD_OK)
        md_depth_free(out);
    return st;
}
