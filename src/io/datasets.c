/* RGB/depth pairs: pair-list files (read and write) and detection of the
 * dataset layouts we know.
 *
 * Pair-list format, one pair per line:
 *
 *     rgb_path depth_path [divisor|sun|sun:DIVISOR] [fx fy cx cy]
 *
 *  - fields are separated by spaces or tabs, so paths cannot contain
 *    whitespace (md_pairs_write refuses such paths rather than writing a list
 *    that would read back differently);
 *  - '#' at the start of a line or after whitespace starts a comment (a '#'
 *    inside a path, e.g. "a#b.png", is part of the path); blank lines are fine;
 *  - relative paths are relative to the list file's folder;
 *  - divisor: metres = raw / divisor (default 1000, millimetres); "sun" is the
 *    SUN RGB-D bit-rotated encoding with divisor 1000, "sun:D" the same with
 *    divisor D;
 *  - the four intrinsics are optional; 6 fields mean "no divisor, intrinsics".
 *
 * md_pairs_write makes relative paths absolute (against the current working
 * folder, lexically) because it writes to a FILE* and cannot know where the
 * list will live: a written list therefore reads back to the same files from
 * anywhere.
 *
 * Detection (md_pairs_detect) walks the folder recursively (hidden entries
 * skipped, symlinks followed with cycle protection, 32 levels at most). In
 * each folder the pairs found there come first, sorted by RGB path in natural
 * order (digit runs compare as numbers), then the subfolders in natural order.
 * Layouts:
 *  - NYU BTS: rgb_N.(jpg|png) + sync_depth_N.png, in one folder or in sibling
 *    rgb/ and depth/ folders; mm (divisor 1000); intrinsics from
 *    test_annotations.json (Metric3D "cam_in") when it lists the file, else the
 *    NYU Depth V2 colour camera.
 *  - DenseDepth NYU test export: N_colors.png + N_depth.png; we assume 16-bit
 *    millimetres (divisor 1000) and the NYU camera, as for BTS (DenseDepth's
 *    own loader is not available to check the unit against).
 *  - 3DMatch / SUN3D / 7-Scenes: frame-N.color.(png|jpg) + frame-N.depth.png,
 *    mm; intrinsics from camera-intrinsics.txt (3x3 matrix) in the folder or
 *    up to two folders above. 7-Scenes' 65535 "invalid" marker is handled by
 *    md_depth_load (keep_65535 = 0).
 *  - KITTI / Metric3D: rgb/NAME.(png|jpg) + depth/NAME.png; divisor 256 when
 *    the folder path contains "kitti" (any case), else 1000; test_annotations.json
 *    "depth_scale" and "cam_in" override when they list the file.
 *  - slambook: color/N.png + depth/N.pgm (or .png), mm.
 *  - TUM: N.png + N_depth.png (N all digits), value / 5000 = metres. No
 *    intrinsics unless a camera-intrinsics.txt is found: the TUM sequences use
 *    three different calibrations and nothing in these files says which one.
 *  - UniDepth demo: rgb.(png|jpg) + depth.png, mm, intrinsics from
 *    intrinsics.npy (3x3) when present.
 *  - Open3D test data: TUM_color.png + TUM_depth.png (/5000) and
 *    SUN_color.(jpg|png) + SUN_depth.png (SUN bit-rotated mm).
 *    NYU_color.ppm + NYU_depth.pgm is deliberately NOT a pair: that depth is raw
 *    Kinect disparity, not registered to the colour image and not metric.
 * A camera-intrinsics.txt applies to every layout, below per-file annotations
 * and intrinsics.npy and above the layout defaults.
 */
#include "base/base.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define LIST_MAX_BYTES ((size_t)64 << 20)
#define AUX_MAX_BYTES ((size_t)16 << 20)
#define WALK_MAX_DEPTH 32

/* ------------------------------------------------------------ helpers */

static char *dup_str(const char *s, md_error *err)
{
    return md_strdup(s, "string", err);
}

/* dir + "/" + name; name as is when dir is empty or name is absolute. */
static char *path_join(const char *dir, const char *name, md_error *err)
{
    if (!dir || !*dir || name[0] == '/')
        return dup_str(name, err);
    size_t a = strlen(dir), b = strlen(name);
    int slash = dir[a - 1] != '/';
    char *p = md_malloc(a + (size_t)slash + b + 1, "path", err);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    if (slash)
        p[a] = '/';
    memcpy(p + a + (size_t)slash, name, b + 1);
    return p;
}

/* Natural order: runs of digits compare by value, the rest bytewise; ties
 * (e.g. "01" vs "1") fall back to strcmp so the order is total. */
static int natcmp(const char *a, const char *b)
{
    const char *p = a, *q = b;
    while (*p && *q) {
        if (isdigit((unsigned char)*p) && isdigit((unsigned char)*q)) {
            while (*p == '0')
                p++;
            while (*q == '0')
                q++;
            size_t lp = 0, lq = 0;
            while (isdigit((unsigned char)p[lp]))
                lp++;
            while (isdigit((unsigned char)q[lq]))
                lq++;
            if (lp != lq)
                return lp < lq ? -1 : 1;
            int c = memcmp(p, q, lp);
            if (c != 0)
                return c < 0 ? -1 : 1;
            p += lp;
            q += lq;
        } else {
            if (*p != *q)
                return (unsigned char)*p < (unsigned char)*q ? -1 : 1;
            p++;
            q++;
        }
    }
    if (*p || *q)
        return *p ? 1 : -1;
    return strcmp(a, b);
}

static void pair_clear(md_pair *p)
{
    free(p->rgb_path);
    free(p->depth_path);
    memset(p, 0, sizeof *p);
}

/* Frees the pairs appended after `count` and restores the count. */
static void list_truncate(md_pair_list *list, size_t count)
{
    for (size_t i = count; i < list->count; i++)
        pair_clear(&list->items[i]);
    list->count = count;
    if (count == 0) {
        free(list->items);
        list->items = NULL;
    }
}

static int valid_intrinsics(const md_intrinsics *K)
{
    return isfinite(K->fx) && isfinite(K->fy) && isfinite(K->cx) && isfinite(K->cy) &&
           K->fx > 0 && K->fy > 0;
}

/* ------------------------------------------------------------ pair lists */

md_status md_pair_list_append(md_pair_list *list, const md_pair *pair, md_error *err)
{
    if (!list || !pair || !pair->rgb_path || !pair->depth_path || !*pair->rgb_path ||
        !*pair->depth_path)
        return md_fail(err, MD_ERR_ARG, "md_pair_list_append: missing list, pair or path");
    if (!isfinite(pair->depth_divisor) || pair->depth_divisor < 0)
        return md_fail(err, MD_ERR_ARG, "%s: depth divisor %g is not a positive number",
                       pair->depth_path, pair->depth_divisor);
    if (pair->encoding != MD_DEPTH_PLAIN && pair->encoding != MD_DEPTH_SUN_ROTATED)
        return md_fail(err, MD_ERR_ARG, "%s: unknown depth encoding %d", pair->depth_path,
                       (int)pair->encoding);
    if (pair->has_intrinsics && !valid_intrinsics(&pair->K))
        return md_fail(err, MD_ERR_ARG, "%s: invalid intrinsics", pair->rgb_path);
    /* md_pair_list has no capacity field: ask realloc for the next power of
     * two every time. A same-size realloc is cheap, growth is geometric, and a
     * list whose items were allocated elsewhere is still grown correctly. */
    size_t cap = 16, bytes;
    while (cap < list->count + 1 && cap <= SIZE_MAX / 4)
        cap *= 2;
    if (cap < list->count + 1 || !md_mul_size(cap, sizeof *list->items, &bytes))
        return md_fail(err, MD_ERR_NOMEM, "pair list too long");
    md_pair copy = *pair;
    copy.rgb_path = dup_str(pair->rgb_path, err);
    copy.depth_path = copy.rgb_path ? dup_str(pair->depth_path, err) : NULL;
    if (!copy.rgb_path || !copy.depth_path) {
        free(copy.rgb_path);
        return MD_ERR_NOMEM;
    }
    if (copy.depth_divisor == 0)
        copy.depth_divisor = 1000.0;
    if (!copy.has_intrinsics)
        memset(&copy.K, 0, sizeof copy.K);
    md_pair *items = realloc(list->items, bytes);
    if (!items) {
        pair_clear(&copy);
        return md_fail(err, MD_ERR_NOMEM, "out of memory growing the pair list");
    }
    list->items = items;
    list->items[list->count++] = copy;
    return MD_OK;
}

void md_pair_list_free(md_pair_list *list)
{
    if (!list)
        return;
    list_truncate(list, 0);
}

md_status md_pair_load_depth(const md_pair *pair, md_depth *out, md_error *err)
{
    if (!pair || !pair->depth_path || !out)
        return md_fail(err, MD_ERR_ARG, "md_pair_load_depth: missing pair or output");
    md_depth_read_options opts;
    memset(&opts, 0, sizeof opts);
    opts.divisor = pair->depth_divisor > 0 ? pair->depth_divisor : 1000.0;
    opts.encoding = pair->encoding;
    opts.keep_65535 = 0;
    return md_depth_load(pair->depth_path, &opts, out, err);
}

/* Strict number: the whole token, finite. */
static int parse_number(const char *tok, double *v)
{
    if (!*tok)
        return 0;
    char *end;
    errno = 0;
    double x = strtod(tok, &end);
    if (*end != '\0' || errno == ERANGE || !isfinite(x))
        return 0;
    *v = x;
    return 1;
}

/* "1000", "256", "5000", "sun", "sun:1000". */
static int parse_divisor(const char *tok, double *divisor, md_depth_encoding *enc)
{
    if (strncasecmp(tok, "sun", 3) == 0) {
        *enc = MD_DEPTH_SUN_ROTATED;
        if (tok[3] == '\0') {
            *divisor = 1000.0;
            return 1;
        }
        if (tok[3] != ':')
            return 0;
        tok += 4;
    } else {
        *enc = MD_DEPTH_PLAIN;
    }
    double d;
    if (!parse_number(tok, &d) || d <= 0)
        return 0;
    *divisor = d;
    return 1;
}

#define LIST_MAX_FIELDS 8

static md_status parse_list_line(const char *path, int lineno, char *line, const char *dir,
                                 md_pair_list *list, md_error *err)
{
    /* Comment: '#' at the start or after whitespace. */
    for (char *c = line; *c; c++) {
        if (*c == '#' && (c == line || c[-1] == ' ' || c[-1] == '\t')) {
            *c = '\0';
            break;
        }
    }
    char *tok[LIST_MAX_FIELDS];
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f')
            p++;
        if (!*p)
            break;
        if (n == LIST_MAX_FIELDS)
            return md_fail(err, MD_ERR_FORMAT,
                           "%s:%d: too many fields (expected rgb_path depth_path [divisor|sun] "
                           "[fx fy cx cy]; paths cannot contain spaces)",
                           path, lineno);
        tok[n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\v' && *p != '\f')
            p++;
        if (*p)
            *p++ = '\0';
    }
    if (n == 0)
        return MD_OK;
    if (n == 1 || n == 4 || n == 5 || n > 7)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s:%d: %d field%s; expected rgb_path depth_path [divisor|sun] "
                       "[fx fy cx cy] (paths cannot contain spaces)",
                       path, lineno, n, n == 1 ? "" : "s");
    md_pair pair;
    memset(&pair, 0, sizeof pair);
    pair.depth_divisor = 1000.0;
    pair.encoding = MD_DEPTH_PLAIN;
    int k = 2;
    if (n == 3 || n == 7) {
        if (!parse_divisor(tok[2], &pair.depth_divisor, &pair.encoding))
            return md_fail(err, MD_ERR_FORMAT,
                           "%s:%d: bad divisor '%s' (a positive number, 'sun' or 'sun:N')",
                           path, lineno, tok[2]);
        k = 3;
    }
    if (n - k == 4) {
        double v[4];
        for (int i = 0; i < 4; i++) {
            if (!parse_number(tok[k + i], &v[i]))
                return md_fail(err, MD_ERR_FORMAT, "%s:%d: bad intrinsic value '%s'", path,
                               lineno, tok[k + i]);
        }
        pair.K.fx = v[0];
        pair.K.fy = v[1];
        pair.K.cx = v[2];
        pair.K.cy = v[3];
        if (!valid_intrinsics(&pair.K))
            return md_fail(err, MD_ERR_FORMAT, "%s:%d: focal lengths must be positive", path,
                           lineno);
        pair.has_intrinsics = 1;
    }
    char *rgb = path_join(dir, tok[0], err);
    char *depth = rgb ? path_join(dir, tok[1], err) : NULL;
    md_status st = MD_ERR_NOMEM;
    if (rgb && depth) {
        pair.rgb_path = rgb;
        pair.depth_path = depth;
        st = md_pair_list_append(list, &pair, err);
    }
    free(rgb);
    free(depth);
    return st;
}

md_status md_pairs_read_list(const char *path, md_pair_list *list, md_error *err)
{
    if (!path || !list)
        return md_fail(err, MD_ERR_ARG, "md_pairs_read_list: missing path or list");
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, LIST_MAX_BYTES, &data, &size, err);
    if (st != MD_OK)
        return st;
    if (memchr(data, '\0', size)) {
        free(data);
        return md_fail(err, MD_ERR_FORMAT, "%s: not a text pair list (contains NUL bytes)", path);
    }
    /* The list's folder: "" (current folder) when the path has no slash. */
    char *dir = dup_str(path, err);
    if (!dir) {
        free(data);
        return MD_ERR_NOMEM;
    }
    char *slash = strrchr(dir, '/');
    if (!slash)
        dir[0] = '\0';
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';

    size_t start = list->count;
    char *p = (char *)data, *end = (char *)data + size;
    if (size >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* a UTF-8 byte-order mark (Windows editors) is not part of the first path */
    int lineno = 0;
    while (p < end && st == MD_OK) {
        lineno++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *next = nl ? nl + 1 : end;
        if (nl)
            *nl = '\0';
        st = parse_list_line(path, lineno, p, dir, list, err);
        p = next;
    }
    if (st != MD_OK)
        list_truncate(list, start);
    free(dir);
    free(data);
    return st;
}

/* Shortest %g that reads back to the same double. */
static void format_double(char *buf, size_t size, double v)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static int path_writable(const char *p)
{
    if (!*p)
        return 0;
    for (const char *c = p; *c; c++)
        if (isspace((unsigned char)*c))
            return 0;
    return 1;
}

static char *absolute_path(const char *p, const char *cwd, md_error *err)
{
    if (p[0] == '/')
        return dup_str(p, err);
    while (p[0] == '.' && p[1] == '/') {
        p += 2;
        while (*p == '/')
            p++;
    }
    if (strcmp(p, ".") == 0 || !*p)
        return dup_str(cwd, err);
    return path_join(cwd, p, err);
}

md_status md_pairs_write(FILE *f, const md_pair_list *list, md_error *err)
{
    if (!f || !list || (list->count && !list->items))
        return md_fail(err, MD_ERR_ARG, "md_pairs_write: missing stream or list");
    /* Check everything first so that a refused list writes nothing. */
    int need_cwd = 0;
    for (size_t i = 0; i < list->count; i++) {
        const md_pair *p = &list->items[i];
        if (!p->rgb_path || !p->depth_path)
            return md_fail(err, MD_ERR_ARG, "pair %zu has no path", i + 1);
        const char *bad = !path_writable(p->rgb_path)     ? p->rgb_path
                          : !path_writable(p->depth_path) ? p->depth_path
                                                          : NULL;
        if (bad)
            return md_fail(err, MD_ERR_UNSUPPORTED,
                           "'%s': pair lists cannot hold empty paths or paths with whitespace",
                           bad);
        if (p->rgb_path[0] != '/' || p->depth_path[0] != '/')
            need_cwd = 1;
    }
    char *cwd = NULL;
    if (need_cwd) {
        size_t cap = 4096;
        cwd = md_malloc(cap, "working folder", err);
        if (!cwd)
            return MD_ERR_NOMEM;
        if (!getcwd(cwd, cap)) {
            md_status st = md_fail(err, MD_ERR_IO, "cannot get the working folder: %s",
                                   strerror(errno));
            free(cwd);
            return st;
        }
        if (!path_writable(cwd)) {
            md_status st = md_fail(err, MD_ERR_UNSUPPORTED,
                                   "'%s': relative paths below a folder with whitespace "
                                   "cannot be written to a pair list",
                                   cwd);
            free(cwd);
            return st;
        }
    }

    int bad = 0;
    bad |= fprintf(f, "# metricdepth pair list: rgb_path depth_path divisor|sun [fx fy cx cy]\n") < 0;
    bad |= fprintf(f, "# metres = raw / divisor; 'sun' = SUN RGB-D bit-rotated millimetres; "
                      "%zu pair%s\n",
                   list->count, list->count == 1 ? "" : "s") < 0;
    md_status st = MD_OK;
    for (size_t i = 0; i < list->count && !bad && st == MD_OK; i++) {
        const md_pair *p = &list->items[i];
        char *rgb = absolute_path(p->rgb_path, cwd, err);
        char *depth = rgb ? absolute_path(p->depth_path, cwd, err) : NULL;
        if (!rgb || !depth) {
            free(rgb);
            st = MD_ERR_NOMEM;
            break;
        }
        char div[96], num[64];
        double d = p->depth_divisor > 0 ? p->depth_divisor : 1000.0;
        if (p->encoding == MD_DEPTH_SUN_ROTATED) {
            if (d == 1000.0) {
                snprintf(div, sizeof div, "sun");
            } else {
                format_double(num, sizeof num, d);
                snprintf(div, sizeof div, "sun:%s", num);
            }
        } else {
            format_double(div, sizeof div, d);
        }
        bad |= fprintf(f, "%s %s %s", rgb, depth, div) < 0;
        if (p->has_intrinsics) {
            const double k[4] = {p->K.fx, p->K.fy, p->K.cx, p->K.cy};
            for (int j = 0; j < 4; j++) {
                format_double(num, sizeof num, k[j]);
                bad |= fprintf(f, " %s", num) < 0;
            }
        }
        bad |= fputc('\n', f) == EOF;
        free(rgb);
        free(depth);
    }
    free(cwd);
    if (st != MD_OK)
        return st;
    if (bad || ferror(f))
        return md_fail(err, MD_ERR_IO, "pair list: write error: %s", strerror(errno));
    return MD_OK;
}

/* ------------------------------------------------------------ folder listing */

typedef struct {
    char **names;
    size_t count, cap;
} name_vec;

static void names_free(name_vec *v)
{
    for (size_t i = 0; i < v->count; i++)
        free(v->names[i]);
    free(v->names);
    memset(v, 0, sizeof *v);
}

static md_status names_push(name_vec *v, const char *name, md_error *err)
{
    if (v->count == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        char **n = realloc(v->names, cap * sizeof *n);
        if (!n)
            return md_fail(err, MD_ERR_NOMEM, "out of memory listing a folder");
        v->names = n;
        v->cap = cap;
    }
    char *s = dup_str(name, err);
    if (!s)
        return MD_ERR_NOMEM;
    v->names[v->count++] = s;
    return MD_OK;
}

static int cmp_names(const void *a, const void *b)
{
    return natcmp(*(char *const *)a, *(char *const *)b);
}

static int names_has(const name_vec *v, const char *name)
{
    if (!v->count)
        return 0;
    return bsearch(&name, v->names, v->count, sizeof *v->names, cmp_names) != NULL;
}

/* Lists the visible regular files and folders of dir, naturally sorted. */
static md_status list_dir(const char *dir, name_vec *files, name_vec *dirs, md_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return md_fail(err, MD_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    md_status st = MD_OK;
    struct dirent *e;
    while (st == MD_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *full = path_join(dir, e->d_name, err);
        if (!full) {
            st = MD_ERR_NOMEM;
            break;
        }
        struct stat sb;
        if (stat(full, &sb) == 0) { /* dangling links are skipped */
            if (S_ISREG(sb.st_mode))
                st = names_push(files, e->d_name, err);
            else if (S_ISDIR(sb.st_mode) && dirs)
                st = names_push(dirs, e->d_name, err);
        }
        free(full);
    }
    closedir(d);
    if (st != MD_OK)
        return st;
    if (files->count)
        qsort(files->names, files->count, sizeof *files->names, cmp_names);
    if (dirs && dirs->count)
        qsort(dirs->names, dirs->count, sizeof *dirs->names, cmp_names);
    return MD_OK;
}

/* ------------------------------------------------------------ side files */

/* camera-intrinsics.txt: a 3x3 matrix [fx 0 cx; 0 fy cy; 0 0 1]. */
static md_status read_intrinsics_txt(const char *path, md_intrinsics *K, md_error *err)
{
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, AUX_MAX_BYTES, &data, &size, err);
    if (st != MD_OK)
        return st;
    double m[9];
    int n = 0;
    const char *p = (const char *)data;
    for (;;) {
        while (isspace((unsigned char)*p) || *p == ',' || *p == '[' || *p == ']' || *p == ';')
            p++;
        if (!*p)
            break;
        char *end;
        double v = strtod(p, &end);
        if (end == p || n == 9 || !isfinite(v)) {
            free(data);
            return md_fail(err, MD_ERR_FORMAT, "%s: expected a 3x3 intrinsics matrix (9 numbers)",
                           path);
        }
        m[n++] = v;
        p = end;
    }
    free(data);
    if (n != 9 || m[3] != 0 || m[6] != 0 || m[7] != 0 || fabs(m[8] - 1.0) > 1e-9 || m[0] <= 0 ||
        m[4] <= 0)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: expected a 3x3 intrinsics matrix [fx 0 cx; 0 fy cy; 0 0 1]", path);
    K->fx = m[0];
    K->fy = m[4];
    K->cx = m[2];
    K->cy = m[5];
    return MD_OK;
}

/* intrinsics.npy (UniDepth): a 3x3 matrix. */
static md_status read_intrinsics_npy(const char *path, md_intrinsics *K, md_error *err)
{
    md_tensor t;
    memset(&t, 0, sizeof t);
    md_status st = md_npy_load(path, &t, err);
    if (st != MD_OK)
        return st;
    if (t.ndim != 2 || t.shape[0] != 3 || t.shape[1] != 3) {
        md_tensor_free(&t);
        return md_fail(err, MD_ERR_FORMAT, "%s: expected a 3x3 intrinsics matrix", path);
    }
    K->fx = t.data[0];
    K->cx = t.data[2];
    K->fy = t.data[4];
    K->cy = t.data[5];
    md_tensor_free(&t);
    if (!valid_intrinsics(K))
        return md_fail(err, MD_ERR_FORMAT, "%s: intrinsics must have positive focal lengths",
                       path);
    return MD_OK;
}

/* Metric3D test_annotations.json: {"files": [{"rgb": ..., "depth": ...,
 * "cam_in": [fx, fy, cx, cy], "depth_scale": s}, ...]}. A small JSON reader
 * that keeps just those fields and skips everything else. */
typedef struct {
    char rgb[256], depth[256]; /* basenames */
    int has_K;
    md_intrinsics K;
    double scale; /* 0 = not given */
} annotation;

typedef struct {
    annotation *items;
    size_t count;
} annotation_set;

typedef struct {
    const char *p;
    int depth;
} json_reader;

static void json_ws(json_reader *j)
{
    while (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')
        j->p++;
}

/* Reads a string into buf (truncated, still consumed); \u escapes become '?'. */
static int json_string(json_reader *j, char *buf, size_t cap)
{
    size_t n = 0;
    if (*j->p != '"')
        return 0;
    j->p++;
    while (*j->p != '"') {
        char c = *j->p;
        if (c == '\0' || (unsigned char)c < 0x20)
            return 0;
        if (c == '\\') {
            j->p++;
            switch (*j->p) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case '/': c = '/'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u':
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)j->p[i]))
                        return 0;
                j->p += 4;
                c = '?';
                break;
            default: return 0;
            }
        }
        if (buf && n + 1 < cap)
            buf[n++] = c;
        j->p++;
    }
    j->p++;
    if (buf && cap)
        buf[n] = '\0';
    return 1;
}

static int json_number(json_reader *j, double *v)
{
    const char *s = j->p;
    if (*s != '-' && !isdigit((unsigned char)*s))
        return 0;
    char *end;
    double x = strtod(s, &end);
    if (end == s)
        return 0;
    j->p = end;
    if (v)
        *v = x;
    return 1;
}

/* Consumes c if it is next (never steps over the terminating NUL). */
static int json_expect(json_reader *j, char c)
{
    if (*j->p != c)
        return 0;
    j->p++;
    return 1;
}

static int json_skip(json_reader *j);

static int json_skip_container(json_reader *j, char open, char close)
{
    if (*j->p != open || ++j->depth > 64)
        return 0;
    j->p++;
    json_ws(j);
    if (*j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        if (open == '{') {
            json_ws(j);
            if (!json_string(j, NULL, 0))
                return 0;
            json_ws(j);
            if (!json_expect(j, ':'))
                return 0;
        }
        if (!json_skip(j))
            return 0;
        json_ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == close) {
            j->p++;
            j->depth--;
            return 1;
        }
        return 0;
    }
}

static int json_skip(json_reader *j)
{
    json_ws(j);
    switch (*j->p) {
    case '{': return json_skip_container(j, '{', '}');
    case '[': return json_skip_container(j, '[', ']');
    case '"': return json_string(j, NULL, 0);
    case 't': if (strncmp(j->p, "true", 4) == 0) { j->p += 4; return 1; } return 0;
    case 'f': if (strncmp(j->p, "false", 5) == 0) { j->p += 5; return 1; } return 0;
    case 'n': if (strncmp(j->p, "null", 4) == 0) { j->p += 4; return 1; } return 0;
    default: return json_number(j, NULL);
    }
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* One {"rgb":..., ...} entry. */
static int json_annotation(json_reader *j, annotation *a)
{
    memset(a, 0, sizeof *a);
    json_ws(j);
    if (*j->p != '{')
        return json_skip(j) ? 2 : 0; /* not an object: ignored */
    j->p++;
    json_ws(j);
    if (*j->p == '}') {
        j->p++;
        return 2;
    }
    for (;;) {
        char key[32], val[1024];
        json_ws(j);
        if (!json_string(j, key, sizeof key))
            return 0;
        json_ws(j);
        if (!json_expect(j, ':'))
            return 0;
        json_ws(j);
        if ((strcmp(key, "rgb") == 0 || strcmp(key, "depth") == 0) && *j->p == '"') {
            if (!json_string(j, val, sizeof val))
                return 0;
            /* Too long a name cannot match a file we list: keep it empty. */
            char *dst = key[0] == 'r' ? a->rgb : a->depth;
            const char *b = base_name(val);
            size_t len = strlen(b);
            if (len < sizeof a->rgb)
                memcpy(dst, b, len + 1);
        } else if (strcmp(key, "depth_scale") == 0 && *j->p != '"' && *j->p != '[' &&
                   *j->p != '{' && *j->p != 'n') {
            if (!json_number(j, &a->scale))
                return 0;
        } else if (strcmp(key, "cam_in") == 0 && *j->p == '[') {
            double v[4];
            int n = 0;
            j->p++;
            json_ws(j);
            while (*j->p != ']') {
                double x;
                if (!json_number(j, &x))
                    return 0;
                if (n < 4)
                    v[n] = x;
                n++;
                json_ws(j);
                if (*j->p == ',') {
                    j->p++;
                    json_ws(j);
                } else if (*j->p != ']') {
                    return 0;
                }
            }
            j->p++;
            if (n == 4) {
                a->K.fx = v[0];
                a->K.fy = v[1];
                a->K.cx = v[2];
                a->K.cy = v[3];
                a->has_K = valid_intrinsics(&a->K);
            }
        } else if (!json_skip(j)) {
            return 0;
        }
        json_ws(j);
        if (*j->p == ',') {
            j->p++;
            continue;
        }
        if (*j->p == '}') {
            j->p++;
            return 1;
        }
        return 0;
    }
}

static md_status read_annotations(const char *path, annotation_set *set, md_error *err)
{
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, AUX_MAX_BYTES, &data, &size, err);
    if (st != MD_OK)
        return st;
    json_reader j = {(const char *)data, 0};
    int ok = 1;
    json_ws(&j);
    if (*j.p != '{')
        ok = 0;
    else
        j.p++;
    json_ws(&j);
    if (ok && *j.p == '}') {
        j.p++;
    } else {
        while (ok) {
            char key[32];
            json_ws(&j);
            if (!json_string(&j, key, sizeof key)) {
                ok = 0;
                break;
            }
            json_ws(&j);
            if (!json_expect(&j, ':')) {
                ok = 0;
                break;
            }
            json_ws(&j);
            if (strcmp(key, "files") == 0 && *j.p == '[') {
                j.p++;
                json_ws(&j);
                while (ok && *j.p != ']') {
                    annotation a;
                    int r = json_annotation(&j, &a);
                    if (r == 0) {
                        ok = 0;
                        break;
                    }
                    if (r == 1 && a.rgb[0]) {
                        annotation *items =
                            realloc(set->items, (set->count + 1) * sizeof *set->items);
                        if (!items) {
                            free(data);
                            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
                        }
                        set->items = items;
                        set->items[set->count++] = a;
                    }
                    json_ws(&j);
                    if (*j.p == ',') {
                        j.p++;
                        json_ws(&j);
                    } else if (*j.p != ']') {
                        ok = 0;
                    }
                }
                if (ok)
                    j.p++;
            } else if (!json_skip(&j)) {
                ok = 0;
                break;
            }
            json_ws(&j);
            if (*j.p == ',') {
                j.p++;
                continue;
            }
            if (*j.p == '}') {
                j.p++;
                break;
            }
            ok = 0;
        }
    }
    if (ok) {
        json_ws(&j);
        ok = *j.p == '\0';
    }
    free(data);
    if (!ok)
        return md_fail(err, MD_ERR_FORMAT, "%s: malformed JSON near byte %zu", path,
                       (size_t)(j.p - (const char *)data));
    return MD_OK;
}

static const annotation *find_annotation(const annotation_set *set, const char *rgb_name,
                                         const char *depth_name)
{
    for (size_t i = 0; i < set->count; i++) {
        const annotation *a = &set->items[i];
        if (strcmp(a->rgb, rgb_name) == 0 && (!a->depth[0] || strcmp(a->depth, depth_name) == 0))
            return a;
    }
    return NULL;
}

/* ------------------------------------------------------------ detection */

typedef struct {
    const char *dir;
    const name_vec *files;
    /* lazily loaded side information */
    int have_cam_txt_loaded, have_cam_txt;
    md_intrinsics cam_txt;
    int annotations_loaded;
    annotation_set ann;
    int npy_loaded, have_npy;
    md_intrinsics npy;
    md_pair_list found; /* pairs of this folder, sorted before moving out */
} folder_ctx;

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* camera-intrinsics.txt in dir, dir/.. or dir/../.. */
static md_status folder_cam_txt(folder_ctx *fc, md_error *err)
{
    if (fc->have_cam_txt_loaded)
        return MD_OK;
    fc->have_cam_txt_loaded = 1;
    static const char *const rel[] = {"camera-intrinsics.txt", "../camera-intrinsics.txt",
                                      "../../camera-intrinsics.txt"};
    for (int i = 0; i < 3; i++) {
        char *p = path_join(fc->dir, rel[i], err);
        if (!p)
            return MD_ERR_NOMEM;
        if (file_exists(p)) {
            md_status st = read_intrinsics_txt(p, &fc->cam_txt, err);
            free(p);
            if (st != MD_OK)
                return st;
            fc->have_cam_txt = 1;
            return MD_OK;
        }
        free(p);
    }
    return MD_OK;
}

static md_status folder_annotations(folder_ctx *fc, md_error *err)
{
    if (fc->annotations_loaded)
        return MD_OK;
    fc->annotations_loaded = 1;
    if (!names_has(fc->files, "test_annotations.json"))
        return MD_OK;
    char *p = path_join(fc->dir, "test_annotations.json", err);
    if (!p)
        return MD_ERR_NOMEM;
    md_status st = read_annotations(p, &fc->ann, err);
    free(p);
    return st;
}

static md_status folder_npy(folder_ctx *fc, md_error *err)
{
    if (fc->npy_loaded)
        return MD_OK;
    fc->npy_loaded = 1;
    if (!names_has(fc->files, "intrinsics.npy"))
        return MD_OK;
    char *p = path_join(fc->dir, "intrinsics.npy", err);
    if (!p)
        return MD_ERR_NOMEM;
    md_status st = read_intrinsics_npy(p, &fc->npy, err);
    free(p);
    if (st == MD_OK)
        fc->have_npy = 1;
    return st;
}

enum { K_NONE = 0, K_NYU = 1 };

/* Adds one pair. rgb_rel / depth_rel are relative to fc->dir. */
static md_status add_pair(folder_ctx *fc, const char *rgb_rel, const char *depth_rel,
                          double divisor, md_depth_encoding enc, int default_K, int use_npy,
                          md_error *err)
{
    md_pair pair;
    memset(&pair, 0, sizeof pair);
    pair.depth_divisor = divisor;
    pair.encoding = enc;
    md_status st = folder_annotations(fc, err);
    if (st == MD_OK)
        st = folder_cam_txt(fc, err);
    if (st == MD_OK && use_npy)
        st = folder_npy(fc, err);
    if (st != MD_OK)
        return st;
    const annotation *a = find_annotation(&fc->ann, base_name(rgb_rel), base_name(depth_rel));
    if (a && a->scale > 0 && isfinite(a->scale))
        pair.depth_divisor = a->scale;
    if (a && a->has_K) {
        pair.K = a->K;
        pair.has_intrinsics = 1;
    } else if (use_npy && fc->have_npy) {
        pair.K = fc->npy;
        pair.has_intrinsics = 1;
    } else if (fc->have_cam_txt) {
        pair.K = fc->cam_txt;
        pair.has_intrinsics = 1;
    } else if (default_K == K_NYU) {
        pair.K = md_intrinsics_nyu();
        pair.has_intrinsics = 1;
    }
    pair.rgb_path = path_join(fc->dir, rgb_rel, err);
    pair.depth_path = pair.rgb_path ? path_join(fc->dir, depth_rel, err) : NULL;
    st = MD_ERR_NOMEM;
    if (pair.rgb_path && pair.depth_path)
        st = md_pair_list_append(&fc->found, &pair, err);
    free(pair.rgb_path);
    free(pair.depth_path);
    return st;
}

static int is_image_ext(const char *ext)
{
    return strcasecmp(ext, "png") == 0 || strcasecmp(ext, "jpg") == 0 ||
           strcasecmp(ext, "jpeg") == 0;
}

static int all_digits(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return 0;
    return 1;
}

static int ci_contains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return 1;
    return 0;
}

/* Layouts with both files in this folder. */
static md_status detect_flat(folder_ctx *fc, md_error *err)
{
    const name_vec *files = fc->files;
    char buf[1024];
    md_status st = MD_OK;
    for (size_t i = 0; i < files->count && st == MD_OK; i++) {
        const char *name = files->names[i];
        size_t len = strlen(name);
        if (len + 32 > sizeof buf)
            continue;
        const char *dot = strrchr(name, '.');
        if (!dot || !is_image_ext(dot + 1))
            continue;
        size_t stem = (size_t)(dot - name);

        /* NYU BTS: rgb_N.jpg + sync_depth_N.png */
        if (strncmp(name, "rgb_", 4) == 0 && stem > 4) {
            snprintf(buf, sizeof buf, "sync_depth_%.*s.png", (int)(stem - 4), name + 4);
            if (names_has(files, buf)) {
                st = add_pair(fc, name, buf, 1000.0, MD_DEPTH_PLAIN, K_NYU, 0, err);
                continue;
            }
        }
        /* DenseDepth: N_colors.png + N_depth.png */
        if (stem > 7 && strncmp(name + stem - 7, "_colors", 7) == 0) {
            snprintf(buf, sizeof buf, "%.*s_depth.png", (int)(stem - 7), name);
            if (names_has(files, buf)) {
                st = add_pair(fc, name, buf, 1000.0, MD_DEPTH_PLAIN, K_NYU, 0, err);
                continue;
            }
        }
        /* 3DMatch / SUN3D / 7-Scenes: frame-N.color.ext + frame-N.depth.png */
        if (stem > 6 && strncmp(name + stem - 6, ".color", 6) == 0) {
            snprintf(buf, sizeof buf, "%.*s.depth.png", (int)(stem - 6), name);
            if (names_has(files, buf)) {
                st = add_pair(fc, name, buf, 1000.0, MD_DEPTH_PLAIN, K_NONE, 0, err);
                continue;
            }
        }
        /* TUM: N.png + N_depth.png */
        if (all_digits(name, stem)) {
            snprintf(buf, sizeof buf, "%.*s_depth.png", (int)stem, name);
            if (names_has(files, buf)) {
                st = add_pair(fc, name, buf, 5000.0, MD_DEPTH_PLAIN, K_NONE, 0, err);
                continue;
            }
        }
        /* Open3D test data. NYU_color.ppm / NYU_depth.pgm is raw disparity,
         * not metric depth, and is never a pair (its .ppm extension already
         * keeps it out of this loop; the explicit test documents the intent). */
        if (strncmp(name, "NYU_", 4) == 0)
            continue;
        if (strcmp(name, "TUM_color.png") == 0 && names_has(files, "TUM_depth.png")) {
            st = add_pair(fc, name, "TUM_depth.png", 5000.0, MD_DEPTH_PLAIN, K_NONE, 0, err);
            continue;
        }
        if (strncmp(name, "SUN_color.", 10) == 0 && names_has(files, "SUN_depth.png")) {
            st = add_pair(fc, name, "SUN_depth.png", 1000.0, MD_DEPTH_SUN_ROTATED, K_NONE, 0, err);
            continue;
        }
        /* UniDepth demo: rgb.png + depth.png (+ intrinsics.npy) */
        if (stem == 3 && strncmp(name, "rgb", 3) == 0 && names_has(files, "depth.png")) {
            st = add_pair(fc, name, "depth.png", 1000.0, MD_DEPTH_PLAIN, K_NONE, 1, err);
            continue;
        }
    }
    return st;
}

/* Layouts with sibling folders: rgb/ (or color/) + depth/. */
static md_status detect_siblings(folder_ctx *fc, const name_vec *subdirs, md_error *err)
{
    if (!names_has(subdirs, "depth"))
        return MD_OK;
    static const char *const rgb_dirs[] = {"rgb", "color"};
    md_status st = MD_OK;
    for (int r = 0; r < 2 && st == MD_OK; r++) {
        if (!names_has(subdirs, rgb_dirs[r]))
            continue;
        name_vec rgb = {0}, depth = {0};
        char *rgb_dir = path_join(fc->dir, rgb_dirs[r], err);
        char *depth_dir = rgb_dir ? path_join(fc->dir, "depth", err) : NULL;
        if (!rgb_dir || !depth_dir)
            st = MD_ERR_NOMEM;
        if (st == MD_OK)
            st = list_dir(rgb_dir, &rgb, NULL, err);
        if (st == MD_OK)
            st = list_dir(depth_dir, &depth, NULL, err);
        int kitti = ci_contains(fc->dir, "kitti");
        char buf[1024], rgb_rel[1100], depth_rel[1100];
        for (size_t i = 0; i < rgb.count && st == MD_OK; i++) {
            const char *name = rgb.names[i];
            size_t len = strlen(name);
            const char *dot = strrchr(name, '.');
            if (len + 32 > sizeof buf || !dot || !is_image_ext(dot + 1))
                continue;
            size_t stem = (size_t)(dot - name);
            int found = 0, bts = 0;
            if (strncmp(name, "rgb_", 4) == 0 && stem > 4) {
                snprintf(buf, sizeof buf, "sync_depth_%.*s.png", (int)(stem - 4), name + 4);
                found = bts = names_has(&depth, buf);
            }
            if (!found) {
                snprintf(buf, sizeof buf, "%.*s.png", (int)stem, name);
                found = names_has(&depth, buf);
            }
            if (!found) {
                snprintf(buf, sizeof buf, "%.*s.pgm", (int)stem, name);
                found = names_has(&depth, buf);
            }
            if (!found)
                continue;
            snprintf(rgb_rel, sizeof rgb_rel, "%s/%s", rgb_dirs[r], name);
            snprintf(depth_rel, sizeof depth_rel, "depth/%s", buf);
            double divisor = (!bts && kitti) ? 256.0 : 1000.0;
            st = add_pair(fc, rgb_rel, depth_rel, divisor, MD_DEPTH_PLAIN, bts ? K_NYU : K_NONE, 0,
                          err);
        }
        names_free(&rgb);
        names_free(&depth);
        free(rgb_dir);
        free(depth_dir);
    }
    return st;
}

static int cmp_pairs(const void *a, const void *b)
{
    const md_pair *p = a, *q = b;
    int c = natcmp(p->rgb_path, q->rgb_path);
    return c ? c : natcmp(p->depth_path, q->depth_path);
}

typedef struct {
    dev_t dev[WALK_MAX_DEPTH + 1];
    ino_t ino[WALK_MAX_DEPTH + 1];
    int depth;
} walk_ctx;

static md_status walk(walk_ctx *w, const char *dir, md_pair_list *out, md_error *err)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return md_fail(err, MD_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return md_fail(err, MD_ERR_IO, "%s: not a folder", dir);
    for (int i = 0; i < w->depth; i++)
        if (w->dev[i] == sb.st_dev && w->ino[i] == sb.st_ino)
            return MD_OK; /* a symlink loop: already being walked */
    if (w->depth > WALK_MAX_DEPTH)
        return MD_OK;
    w->dev[w->depth] = sb.st_dev;
    w->ino[w->depth] = sb.st_ino;
    w->depth++;

    name_vec files = {0}, subdirs = {0};
    folder_ctx fc;
    memset(&fc, 0, sizeof fc);
    fc.dir = dir;
    fc.files = &files;
    md_status st = list_dir(dir, &files, &subdirs, err);
    if (st == MD_OK)
        st = detect_flat(&fc, err);
    if (st == MD_OK)
        st = detect_siblings(&fc, &subdirs, err);
    if (st == MD_OK && fc.found.count) {
        qsort(fc.found.items, fc.found.count, sizeof *fc.found.items, cmp_pairs);
        for (size_t i = 0; i < fc.found.count && st == MD_OK; i++)
            st = md_pair_list_append(out, &fc.found.items[i], err);
    }
    md_pair_list_free(&fc.found);
    free(fc.ann.items);
    for (size_t i = 0; i < subdirs.count && st == MD_OK; i++) {
        char *sub = path_join(dir, subdirs.names[i], err);
        if (!sub) {
            st = MD_ERR_NOMEM;
            break;
        }
        st = walk(w, sub, out, err);
        free(sub);
    }
    names_free(&files);
    names_free(&subdirs);
    w->depth--;
    return st;
}

md_status md_pairs_detect(const char *dir, md_pair_list *list, md_error *err)
{
    if (!dir || !*dir || !list)
        return md_fail(err, MD_ERR_ARG, "md_pairs_detect: missing folder or list");
    walk_ctx w;
    memset(&w, 0, sizeof w);
    size_t start = list->count;
    md_status st = walk(&w, dir, list, err);
    if (st != MD_OK)
        list_truncate(list, start);
    return st;
}

md_status md_pairs_save(const char *path, const md_pair_list *list, md_error *err)
{
    if (!path)
        return md_fail(err, MD_ERR_ARG, "md_pairs_save: no path");
    md_atomic_file af;
    md_status st = md_atomic_open(&af, path, err);
    if (st != MD_OK)
        return st;
    st = md_pairs_write(af.fp, list, err);
    if (st != MD_OK) {
        md_atomic_abort(&af);
        return st;
    }
    return md_atomic_commit(&af, err);
}
