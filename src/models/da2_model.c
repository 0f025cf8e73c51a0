#include "backend.h"
#include "core/core.h"

/* Placeholder until the backend lands. */
md_status md_da2_model_open(const char *path, const md_model_options *opts,
                             const md_model_backend **backend, void **impl, md_error *err)
{
    (void)opts;
    *backend = NULL;
    *impl = NULL;
    return md_fail(err, MD_ERR_UNSUPPORTED, "%s: the da2 backend is not built yet", path);
}
