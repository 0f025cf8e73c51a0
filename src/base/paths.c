/* Where installed data lives: models and scale models are found without the
 * source tree. The folders, in order:
 *   1. $METRICDEPTH_DATA_DIR (when set it is the only place looked at),
 *   2. PREFIX/share/metricdepth, PREFIX being the install prefix of the
 *      library or executable this code is in (found at run time, so an
 *      install moved to another prefix still finds its data),
 *   3. the user's folder, ${XDG_DATA_HOME:-~/.local/share}/metricdepth,
 *   4. the source tree this build came from (MD_DATA_DIR, MD_MODELS_DIR), so
 *      a build runs before it is installed. */
#define _GNU_SOURCE /* dladdr */
#include "base/base.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int readable(const char *path)
{
    return access(path, R_OK) == 0;
}

/* PREFIX/share/metricdepth from the file holding this function: it sits in
 * PREFIX/lib[/multiarch] or PREFIX/bin. */
static int prefix_share(char *buf, size_t size)
{
    Dl_info info;
    if (!dladdr((void *)prefix_share, &info) || !info.dli_fname)
        return 0;
    char self[PATH_MAX];
    if (!realpath(info.dli_fname, self))
        return 0;
    for (int up = 1; up <= 2; up++) {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", self);
        for (int k = 0; k <= up; k++) {
            char *slash = strrchr(dir, '/');
            if (!slash)
                return 0;
            *slash = '\0';
        }
        int n = snprintf(buf, size, "%s/share/metricdepth", dir);
        if (n > 0 && (size_t)n < size && readable(buf))
            return 1;
    }
    return 0;
}

md_status md_find_data_file(const char *sub, const char *name, const char *source_dir, char *buf,
                            size_t size, md_error *err)
{
    const char *env = getenv("METRICDEPTH_DATA_DIR");
    if (env && *env) {
        snprintf(buf, size, "%s/%s/%s", env, sub, name);
        if (readable(buf))
            return MD_OK;
        return md_fail(err, MD_ERR_IO, "%s: not found (METRICDEPTH_DATA_DIR is %s)", buf, env);
    }
    char root[PATH_MAX];
    if (prefix_share(root, sizeof root)) {
        snprintf(buf, size, "%s/%s/%s", root, sub, name);
        if (readable(buf))
            return MD_OK;
    }
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(buf, size, "%s/metricdepth/%s/%s", xdg, sub, name);
    else if (home && *home)
        snprintf(buf, size, "%s/.local/share/metricdepth/%s/%s", home, sub, name);
    else
        buf[0] = '\0';
    if (buf[0] && readable(buf))
        return MD_OK;
    if (source_dir) {
        snprintf(buf, size, "%s/%s", source_dir, name);
        if (readable(buf))
            return MD_OK;
    }
    return md_fail(err, MD_ERR_IO,
                   "%s/%s not found in $METRICDEPTH_DATA_DIR, PREFIX/share/metricdepth, "
                   "~/.local/share/metricdepth or %s",
                   sub, name, source_dir ? source_dir : "the source tree");
}
