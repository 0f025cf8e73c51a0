/* Batch inputs: files, folders (recursive, sorted) and .txt lists, each with a
 * unique output name.
 *
 * Naming rule (documented in the README and `predict --help`): an input found
 * in a folder is named by its path below that folder; one from a list by the
 * path written in the list (below the list's folder when relative); a file
 * given directly by its file name. The extension is dropped. Where two inputs
 * would get the same name, each of them keeps as many of its parent folders as
 * it takes to tell them apart (".../color/1.png" and ".../tum/1.png" become
 * "color/1" and "tum/1"); inputs that differ only by extension keep it
 * ("x.jpg", "x.png"); the same file named twice is kept once. */
#define _DEFAULT_SOURCE /* realpath, flock */
#include "io_internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/stat.h>

#define MD_INPUT_MAX_DEPTH 64
#define MD_INPUT_MAX_LIST_BYTES ((size_t)256 << 20)

static const char *const k_video_ext[] = {"mp4", "mkv", "avi", "mov", "webm", "m4v",
                                          "mpg", "mpeg", "wmv", "flv", "ts", "y4m"};

int md_path_is_video(const char *path)
{
    const char *ext = md_path_extension(path);
    for (size_t i = 0; i < sizeof k_video_ext / sizeof *k_video_ext; i++)
        if (strcasecmp(ext, k_video_ext[i]) == 0)
            return 1;
    return 0;
}

/* What a file's first bytes say it is. */
typedef enum { SNIFF_OTHER, SNIFF_IMAGE, SNIFF_DEPTH_MAP } sniff_kind;

/* SNIFF_DEPTH_MAP: a 16-bit greyscale PNG or PGM, as RGB-D datasets store
 * depth; SNIFF_IMAGE: any other image md_image_load reads. */
static sniff_kind sniff_image_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return SNIFF_OTHER;
    uint8_t head[512] = {0};
    size_t n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    md_file_kind k = md_io_sniff(head, n);
    if (k != MD_FILE_PNG && k != MD_FILE_JPEG && k != MD_FILE_PGM && k != MD_FILE_PPM &&
        k != MD_FILE_WEBP && k != MD_FILE_TIFF && k != MD_FILE_BMP)
        return SNIFF_OTHER;
    return md_io_is_grey16(head, n) ? SNIFF_DEPTH_MAP : SNIFF_IMAGE;
}

static char *dup_str(const char *s, md_error *err)
{
    return md_strdup(s, "path", err);
}

static char *join(const char *dir, const char *name, md_error *err)
{
    size_t a = strlen(dir), b = strlen(name);
    int slash = a > 0 && dir[a - 1] != '/';
    char *p = md_malloc(a + b + 2, "path", err);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    if (slash)
        p[a] = '/';
    memcpy(p + a + slash, name, b + 1);
    return p;
}

/* rel without empty, "." and ".." components: names stay inside the output folder. */
static void normalise_rel(char *rel)
{
    char *o = rel;
    for (char *p = rel; *p;) {
        char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        int skip = n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.');
        if (!skip) {
            if (o != rel)
                *o++ = '/';
            memmove(o, p, n);
            o += n;
        }
        p += n + (slash != NULL);
    }
    *o = '\0';
}

static md_status append(md_input_list *list, const char *path, const char *rel,
                        md_input_kind kind, md_error *err)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 64;
        md_input *items = realloc(list->items, cap * sizeof *items);
        if (!items)
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory listing inputs", path);
        list->items = items;
        list->cap = cap;
    }
    md_input *it = &list->items[list->count];
    memset(it, 0, sizeof *it);
    it->path = dup_str(path, err);
    it->name = dup_str(rel, err);
    it->kind = kind;
    if (!it->path || !it->name) {
        free(it->path);
        free(it->name);
        return MD_ERR_NOMEM;
    }
    normalise_rel(it->name);
    if (!it->name[0]) {
        free(it->name);
        const char *base = strrchr(path, '/');
        it->name = dup_str(base ? base + 1 : path, err);
        if (!it->name) {
            free(it->path);
            return MD_ERR_NOMEM;
        }
    }
    list->count++;
    return MD_OK;
}

/* A depth map left out of a folder scan: counted, the first one kept for the
 * caller's note. */
static md_status note_depth_map(md_input_list *list, const char *path, md_error *err)
{
    if (list->depth_maps++ == 0 && !(list->first_depth_map = dup_str(path, err)))
        return MD_ERR_NOMEM;
    return MD_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether the folder is the one to leave out (the output folder, when it lies
 * inside an input folder: earlier outputs must not become inputs). */
static int is_excluded(const md_input_list *list, const char *dir)
{
    if (!list->exclude)
        return 0;
    char real[PATH_MAX];
    return realpath(dir, real) && strcmp(real, list->exclude) == 0;
}

static md_status scan_dir(md_input_list *list, const char *dir, const char *rel, int depth,
                          md_error *err)
{
    if (depth > MD_INPUT_MAX_DEPTH)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: folders nested more than %d deep", dir,
                       MD_INPUT_MAX_DEPTH);
    DIR *d = opendir(dir);
    if (!d)
        return md_fail(err, MD_ERR_IO, "%s: cannot open folder: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    md_status st = MD_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') /* hidden files, ".", "..", our own staging */
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **nn = realloc(names, cap * sizeof *nn);
            if (!nn) {
                st = md_fail(err, MD_ERR_NOMEM, "%s: out of memory listing the folder", dir);
                break;
            }
            names = nn;
        }
        names[n] = dup_str(e->d_name, err);
        if (!names[n]) {
            st = MD_ERR_NOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (st == MD_OK && n > 1)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && st == MD_OK; i++) {
        char *path = join(dir, names[i], err);
        char *r = rel[0] ? join(rel, names[i], err) : dup_str(names[i], err);
        struct stat sb, lsb;
        if (!path || !r) {
            st = MD_ERR_NOMEM;
        } else if (lstat(path, &lsb) == 0 && stat(path, &sb) == 0) {
            if (S_ISDIR(sb.st_mode)) {
                /* symbolic links to folders are not followed: no cycles */
                if (!S_ISLNK(lsb.st_mode) && !is_excluded(list, path))
                    st = scan_dir(list, path, r, depth + 1, err);
            } else if (S_ISREG(sb.st_mode)) {
                sniff_kind kind;
                if (md_path_is_video(path))
                    st = append(list, path, r, MD_INPUT_VIDEO, err);
                else if ((kind = sniff_image_file(path)) == SNIFF_OTHER)
                    list->ignored++;
                else if (kind == SNIFF_DEPTH_MAP && list->skip_depth_maps)
                    st = note_depth_map(list, path, err);
                else
                    st = append(list, path, r, MD_INPUT_IMAGE, err);
            }
        }
        free(path);
        free(r);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return st;
}

/* One path per line, '#' comments, blank lines skipped, relative paths below
 * the list's folder. The path written in the list names the output. */
static md_status read_list(md_input_list *list, const char *path, md_error *err)
{
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(path, MD_INPUT_MAX_LIST_BYTES, &data, &size, err);
    if (st != MD_OK)
        return st;
    char *dir = dup_str(path, err);
    if (!dir) {
        free(data);
        return MD_ERR_NOMEM;
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[1] = '\0';
    else
        dir[0] = '\0';
    char *text = (char *)data;
    if (size >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) /* UTF-8 byte order mark */
        text += 3;
    if (memchr(data, '\0', size))
        st = md_fail(err, MD_ERR_FORMAT, "%s: not a text list of image paths (binary data)", path);
    int line_no = 0;
    for (char *line = text; st == MD_OK && line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line_no++;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (*line && *line != '#') {
            char *full = line[0] == '/' || !dir[0] ? dup_str(line, err) : join(dir, line, err);
            struct stat sb;
            if (!full) {
                st = MD_ERR_NOMEM;
            } else if (stat(full, &sb) != 0) {
                st = md_fail(err, MD_ERR_IO, "%s:%d: %s: %s", path, line_no, full, strerror(errno));
            } else if (!S_ISREG(sb.st_mode)) {
                st = md_fail(err, MD_ERR_IO, "%s:%d: %s: not a regular file", path, line_no, full);
            } else {
                const char *rel = line;
                while (rel[0] == '/')
                    rel++;
                while (strncmp(rel, "../", 3) == 0 || strncmp(rel, "./", 2) == 0)
                    rel += rel[1] == '/' ? 2 : 3;
                st = append(list, full, rel[0] ? rel : line,
                            md_path_is_video(full) ? MD_INPUT_VIDEO : MD_INPUT_IMAGE, err);
            }
            free(full);
        }
        line = next;
    }
    free(dir);
    free(data);
    return st;
}

md_status md_inputs_exclude(md_input_list *list, const char *dir, md_error *err)
{
    if (!list || !dir)
        return md_fail(err, MD_ERR_ARG, "md_inputs_exclude: NULL argument");
    char real[PATH_MAX];
    if (!realpath(dir, real))
        return MD_OK; /* not there yet: it cannot be inside an input folder's listing */
    free(list->exclude);
    list->exclude = dup_str(real, err);
    return list->exclude ? MD_OK : MD_ERR_NOMEM;
}

md_status md_inputs_add(md_input_list *list, const char *arg, md_error *err)
{
    if (!list || !arg || !*arg)
        return md_fail(err, MD_ERR_ARG, "md_inputs_add: no path");
    struct stat sb;
    if (stat(arg, &sb) != 0)
        return md_fail(err, MD_ERR_IO, "%s: %s", arg, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        size_t before = list->count, maps_before = list->depth_maps;
        md_status st = scan_dir(list, arg, "", 0, err);
        if (st == MD_OK && list->count == before && list->depth_maps > maps_before)
            return md_fail(err, MD_ERR_DATA,
                           "%s: no image or video in this folder, only %zu 16-bit grey "
                           "images (depth maps, left out of folder scans; name them "
                           "directly or in a list to predict them as photos)",
                           arg, list->depth_maps - maps_before);
        if (st == MD_OK && list->count == before)
            return md_fail(err, MD_ERR_DATA, "%s: no image or video in this folder", arg);
        return st;
    }
    /* A FIFO or device is listed like an image: its reader refuses it without
     * opening it for reading (it would block), and the batch goes on. */
    if (S_ISREG(sb.st_mode) && (md_path_has_ext(arg, "txt") || md_path_has_ext(arg, "lst")))
        return read_list(list, arg, err);
    const char *base = strrchr(arg, '/');
    return append(list, arg, base ? base + 1 : arg,
                  md_path_is_video(arg) ? MD_INPUT_VIDEO : MD_INPUT_IMAGE, err);
}

/* --------------------------------------------------------------- naming */

typedef struct {
    md_input *in;
    char *real;    /* canonical path (realpath), for duplicates and parents */
    char *key;     /* the name being made unique */
    size_t index;  /* original position */
} name_slot;

static int cmp_key(const void *a, const void *b)
{
    const name_slot *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

static void strip_ext(char *s)
{
    char *slash = strrchr(s, '/');
    char *dot = strrchr(s, '.');
    if (dot && (!slash || dot > slash + 1) && dot != s)
        *dot = '\0';
}

/* The last `parts` components of a canonical path ("/a/b/c.png", 2 -> "b/c.png"),
 * NULL when the path has fewer. */
static const char *tail_parts(const char *real, int parts)
{
    const char *p = real + strlen(real);
    int seen = 0;
    while (p > real) {
        p--;
        if (*p == '/' && ++seen == parts)
            return p + 1;
    }
    return NULL;
}

static md_status set_key(name_slot *s, const char *text, int keep_ext, md_error *err)
{
    char *k = dup_str(text, err);
    if (!k)
        return MD_ERR_NOMEM;
    if (!keep_ext)
        strip_ext(k);
    free(s->key);
    s->key = k;
    return MD_OK;
}

md_status md_inputs_finish(md_input_list *list, md_error *err)
{
    if (!list)
        return md_fail(err, MD_ERR_ARG, "md_inputs_finish: NULL list");
    size_t n = list->count;
    if (n == 0)
        return MD_OK;
    name_slot *s = md_calloc(n, sizeof *s, "input names", err);
    if (!s)
        return MD_ERR_NOMEM;
    md_status st = MD_OK;
    for (size_t i = 0; i < n && st == MD_OK; i++) {
        s[i].in = &list->items[i];
        s[i].index = i;
        char real[PATH_MAX];
        s[i].real = dup_str(realpath(s[i].in->path, real) ? real : s[i].in->path, err);
        if (!s[i].real)
            st = MD_ERR_NOMEM;
        else
            st = set_key(&s[i], s[i].in->name, 0, err);
    }
    /* The same file twice (by canonical path): keep the first. */
    size_t kept = 0;
    for (size_t i = 0; i < n && st == MD_OK; i++) {
        int dup = 0;
        for (size_t j = 0; j < kept && !dup; j++)
            dup = strcmp(s[j].real, s[i].real) == 0;
        if (dup) {
            list->duplicates++;
            free(s[i].real);
            free(s[i].key);
            continue;
        }
        s[kept++] = s[i];
    }
    n = st == MD_OK ? kept : n;
    /* Widen colliding names until unique: within a group of equal names, keep
     * the extension when that tells them apart, else keep one more parent
     * folder each; a counter is the last resort (paths that realpath could not
     * resolve). Each round re-sorts and handles every group. */
    for (int round = 0; st == MD_OK && round < MD_INPUT_MAX_DEPTH + 2; round++) {
        qsort(s, n, sizeof *s, cmp_key);
        int changed = 0;
        for (size_t i = 0; i < n && st == MD_OK;) {
            size_t j = i + 1;
            while (j < n && strcmp(s[j].key, s[i].key) == 0)
                j++;
            if (j - i > 1) {
                changed = 1;
                int parts = 1;
                for (const char *c = s[i].key; *c; c++)
                    parts += *c == '/';
                /* with extensions: distinct? */
                int distinct = 1;
                for (size_t a = i; a < j && distinct; a++)
                    for (size_t b = a + 1; b < j && distinct; b++) {
                        const char *ta = tail_parts(s[a].real, parts);
                        const char *tb = tail_parts(s[b].real, parts);
                        distinct = ta && tb && strcmp(ta, tb) != 0;
                    }
                for (size_t k = i; k < j && st == MD_OK; k++) {
                    const char *t = tail_parts(s[k].real, distinct ? parts : parts + 1);
                    if (t && round <= MD_INPUT_MAX_DEPTH) {
                        st = set_key(&s[k], t, distinct, err);
                    } else {
                        char buf[32];
                        snprintf(buf, sizeof buf, "~%zu", k - i + 1);
                        size_t len = strlen(s[k].key);
                        char *nk = md_malloc(len + strlen(buf) + 1, "input names", err);
                        if (!nk) {
                            st = MD_ERR_NOMEM;
                            break;
                        }
                        memcpy(nk, s[k].key, len);
                        strcpy(nk + len, buf);
                        free(s[k].key);
                        s[k].key = nk;
                    }
                }
            }
            i = j;
        }
        if (!changed)
            break;
    }
    if (st == MD_OK) {
        /* Rebuild the list in name order: the order every shard agrees on. */
        md_input *items = md_calloc(n, sizeof *items, "inputs", err);
        if (!items) {
            st = MD_ERR_NOMEM;
        } else {
            qsort(s, n, sizeof *s, cmp_key);
            for (size_t i = 0; i < n; i++) {
                items[i] = *s[i].in;
                free(items[i].name);
                items[i].name = s[i].key;
                s[i].key = NULL;
                s[i].in->path = NULL;
                s[i].in->name = NULL;
            }
            for (size_t i = 0; i < list->count; i++) {
                free(list->items[i].path);
                free(list->items[i].name);
            }
            free(list->items);
            list->items = items;
            list->count = list->cap = n;
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(s[i].real);
        free(s[i].key);
    }
    free(s);
    return st;
}

md_status md_shard_range(size_t count, int k, int n, size_t *begin, size_t *end, md_error *err)
{
    if (n < 1 || k < 1 || k > n)
        return md_fail(err, MD_ERR_ARG, "shard %d/%d: want 1 <= K <= N", k, n);
    /* contiguous blocks whose sizes differ by at most one: shard outputs
     * concatenated in K order give the unsharded order */
    *begin = (size_t)((unsigned long long)count * (unsigned long long)(k - 1) / (unsigned)n);
    *end = (size_t)((unsigned long long)count * (unsigned long long)k / (unsigned)n);
    return MD_OK;
}

md_status md_inputs_shard(md_input_list *list, int k, int n, md_error *err)
{
    if (!list)
        return md_fail(err, MD_ERR_ARG, "md_inputs_shard: no list");
    size_t b, e;
    md_status st = md_shard_range(list->count, k, n, &b, &e, err);
    if (st != MD_OK)
        return st;
    for (size_t i = 0; i < list->count; i++) {
        if (i >= b && i < e)
            continue;
        free(list->items[i].path);
        free(list->items[i].name);
    }
    if (e > b)
        memmove(list->items, list->items + b, (e - b) * sizeof *list->items);
    list->count = e - b;
    return MD_OK;
}

void md_input_list_free(md_input_list *list)
{
    if (!list)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].path);
        free(list->items[i].name);
    }
    free(list->items);
    free(list->exclude);
    free(list->first_depth_map);
    memset(list, 0, sizeof *list);
}
