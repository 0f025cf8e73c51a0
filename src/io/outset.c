/* Output sets: every file of one image appears, or none does.
 *
 * Layout inside an output folder DIR:
 *   DIR/.metricdepth/run-ID.lock   held (flock) by a live run for its whole life
 *   DIR/.metricdepth/run-ID/       that run's staging folder: the files of the
 *                                  sets being written, and their journals
 *   DIR/.metricdepth/commit.lock   taken (flock) around every commit
 *
 * A set is written file by file into the staging folder (each file itself
 * through the atomic temp + rename writers). Commit, under the commit lock:
 * write the set's journal (staged name -> final name, atomically), rename every
 * staged file to its final name, delete the journal. A run killed at any point
 * leaves either no journal (the set never appears: its staged files are
 * removed by the next run) or a journal (the next run finishes its renames),
 * so the folder only ever holds complete sets. Two runs into one folder do
 * not mix their sets: the commits are serialised, and each applies a whole
 * set. A run's staging is cleaned when it closes; a killed run's by the next
 * run that opens the folder, once the run's lock shows it is dead. */
#define _DEFAULT_SOURCE /* realpath, flock */
#include "io_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STAGE_DIR ".metricdepth"
#define MAX_SET_FILES 64
/* Staged names keep the end of the final name (its extension picks the
 * writer) within this many bytes, so long names never exceed NAME_MAX. */
#define STAGED_NAME_TAIL 160

struct md_output_dir {
    char *dir;        /* the output folder */
    char *stage;      /* DIR/.metricdepth */
    char *run;        /* DIR/.metricdepth/run-ID */
    char *run_lock;   /* DIR/.metricdepth/run-ID.lock */
    int lock_fd;
    pthread_mutex_t mu;
    unsigned long next_set;
};

struct md_output_set {
    md_output_dir *d;
    unsigned long id;
    int n;
    char *staged[MAX_SET_FILES]; /* full paths */
    char *final[MAX_SET_FILES];  /* relative to the folder */
};

static char *fmt_path(md_error *err, const char *fmt, ...) MD_PRINTF(2, 3);
static char *fmt_path(md_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        md_fail(err, MD_ERR_ARG, "bad path");
        return NULL;
    }
    char *p = md_malloc((size_t)n + 1, "path", err);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

md_status md_make_dirs(const char *path, md_error *err)
{
    if (!path || !*path)
        return md_fail(err, MD_ERR_ARG, "md_make_dirs: empty path");
    size_t len = strlen(path);
    char *buf = md_malloc(len + 1, "path", err);
    if (!buf)
        return MD_ERR_NOMEM;
    memcpy(buf, path, len + 1);
    md_status st = MD_OK;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
                st = md_fail(err, MD_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
                break;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(buf);
    struct stat sb;
    if (st == MD_OK && (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        st = md_fail(err, MD_ERR_IO, "%s: not a folder", path);
    return st;
}

/* ----------------------------------------------------------- journals */

/* Journal lines: "STAGED_NAME\tFINAL_REL\n", with '\\', '\t' and '\n' in names
 * escaped as "\\\\", "\\t", "\\n". */
static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\t')
            fputs("\\t", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *o++ = *s == 't' ? '\t' : *s == 'n' ? '\n' : *s;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

static md_status make_parent_dirs(const char *dir, const char *rel, md_error *err)
{
    const char *slash = strrchr(rel, '/');
    if (!slash)
        return MD_OK;
    char *p = fmt_path(err, "%s/%.*s", dir, (int)(slash - rel), rel);
    if (!p)
        return MD_ERR_NOMEM;
    md_status st = md_make_dirs(p, err);
    free(p);
    return st;
}

/* Applies a journal: renames each staged file that is still there. */
static md_status roll_forward(const char *dir, const char *run, const char *journal,
                              size_t *files, md_error *err)
{
    uint8_t *data;
    size_t size;
    md_status st = md_read_file(journal, (size_t)1 << 24, &data, &size, err);
    if (st != MD_OK)
        return st;
    char *line = (char *)data;
    while (st == MD_OK && line && *line) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *tab = strchr(line, '\t');
        if (tab) {
            *tab = '\0';
            unescape(line);
            unescape(tab + 1);
            char *from = fmt_path(err, "%s/%s", run, line);
            char *to = fmt_path(err, "%s/%s", dir, tab + 1);
            if (!from || !to) {
                st = MD_ERR_NOMEM;
            } else if (access(from, F_OK) == 0) {
                st = make_parent_dirs(dir, tab + 1, err);
                if (st == MD_OK && rename(from, to) != 0)
                    st = md_fail(err, MD_ERR_IO, "%s: cannot rename into place: %s", to,
                                 strerror(errno));
                if (st == MD_OK && files)
                    (*files)++;
            }
            free(from);
            free(to);
        }
        line = next;
    }
    free(data);
    return st;
}

static int lock_file(const char *path, int nonblock)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX | (nonblock ? LOCK_NB : 0)) != 0) {
        if (errno == EINTR && !nonblock)
            continue;
        close(fd);
        return -1;
    }
    return fd;
}

/* Removes a staging folder (flat: files only), finishing its journals first. */
static md_status clean_run(const char *dir, const char *run, md_output_dir_report *rep,
                           md_error *err)
{
    DIR *d = opendir(run);
    if (!d)
        return errno == ENOENT ? MD_OK
                               : md_fail(err, MD_ERR_IO, "%s: cannot open: %s", run, strerror(errno));
    md_status st = MD_OK;
    struct dirent *e;
    /* journals first (a journal's own temporary, *.journal.tmp.*, is not one) */
    while ((e = readdir(d)) != NULL && st == MD_OK) {
        size_t n = strlen(e->d_name);
        if (n > 8 && strcmp(e->d_name + n - 8, ".journal") == 0) {
            char *j = fmt_path(err, "%s/%s", run, e->d_name);
            if (!j) {
                st = MD_ERR_NOMEM;
                break;
            }
            size_t files = 0;
            st = roll_forward(dir, run, j, &files, err);
            if (st == MD_OK) {
                unlink(j);
                if (rep) {
                    rep->recovered_sets++;
                    rep->recovered_files += files;
                }
            }
            free(j);
        }
    }
    rewinddir(d);
    while (st == MD_OK && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *f = fmt_path(err, "%s/%s", run, e->d_name);
        if (!f) {
            st = MD_ERR_NOMEM;
            break;
        }
        if (unlink(f) == 0 && rep)
            rep->removed_files++;
        free(f);
    }
    closedir(d);
    if (st == MD_OK)
        rmdir(run);
    return st;
}

/* The commit lock. The last run to leave a folder deletes the lock file (so
 * nothing of ours stays behind): whoever then holds the old, deleted file
 * sees that the path no longer names it, and locks the new one instead. */
static int commit_lock(const md_output_dir *od)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/commit.lock", od->stage);
    for (int tries = 0; tries < 100; tries++) {
        int fd = lock_file(path, 0);
        if (fd < 0)
            return -1;
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev)
            return fd;
        close(fd);
    }
    errno = EAGAIN;
    return -1;
}

/* Whether a run other than this one has a lock file in the staging folder. */
static int other_runs(const md_output_dir *od)
{
    DIR *d = opendir(od->stage);
    if (!d)
        return 0;
    const char *mine = strrchr(od->run_lock, '/') + 1;
    int others = 0;
    struct dirent *e;
    while (!others && (e = readdir(d)) != NULL)
        others = strncmp(e->d_name, "run-", 4) == 0 && strcmp(e->d_name, mine) != 0;
    closedir(d);
    return others;
}

/* Finishes or removes what killed runs left in DIR/.metricdepth. */
static md_status recover(md_output_dir *od, md_output_dir_report *rep, md_error *err)
{
    DIR *d = opendir(od->stage);
    if (!d)
        return md_fail(err, MD_ERR_IO, "%s: cannot open: %s", od->stage, strerror(errno));
    md_status st = MD_OK;
    struct dirent *e;
    while (st == MD_OK && (e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        size_t n = strlen(name);
        if (strncmp(name, "run-", 4) != 0)
            continue;
        int is_lock = n > 5 && strcmp(name + n - 5, ".lock") == 0;
        char *lock = is_lock ? fmt_path(err, "%s/%s", od->stage, name)
                             : fmt_path(err, "%s/%s.lock", od->stage, name);
        char *run = is_lock ? fmt_path(err, "%s/%.*s", od->stage, (int)(n - 5), name)
                            : fmt_path(err, "%s/%s", od->stage, name);
        if (!lock || !run) {
            st = MD_ERR_NOMEM;
        } else if (strcmp(lock, od->run_lock) != 0) {
            /* A live run holds its lock; a lock we can take belongs to a dead
             * run. A staging folder without its lock file is dead too (the
             * lock is created first and removed last). */
            int fd = access(lock, F_OK) == 0 ? lock_file(lock, 1) : -2;
            if (fd != -1) {
                int cfd = commit_lock(od);
                st = clean_run(od->dir, run, rep, err);
                if (st == MD_OK && fd >= 0)
                    unlink(lock);
                if (fd >= 0)
                    close(fd);
                if (cfd >= 0)
                    close(cfd);
            }
        }
        free(lock);
        free(run);
    }
    closedir(d);
    return st;
}

md_status md_output_dir_open(const char *dir, md_output_dir **out, md_output_dir_report *rep,
                             md_error *err)
{
    if (out)
        *out = NULL;
    if (rep)
        memset(rep, 0, sizeof *rep);
    if (!dir || !*dir || !out)
        return md_fail(err, MD_ERR_ARG, "md_output_dir_open: no folder");
    md_status st = md_make_dirs(dir, err);
    if (st != MD_OK)
        return st;
    md_output_dir *od = md_calloc(1, sizeof *od, "output folder", err);
    if (!od)
        return MD_ERR_NOMEM;
    od->lock_fd = -1;
    pthread_mutex_init(&od->mu, NULL);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long salt = (unsigned long)ts.tv_nsec ^ ((unsigned long)(uintptr_t)od >> 4);
    od->dir = fmt_path(err, "%s", dir);
    od->stage = fmt_path(err, "%s/%s", dir, STAGE_DIR);
    od->run = fmt_path(err, "%s/%s/run-%ld-%lx", dir, STAGE_DIR, (long)getpid(), salt & 0xffffff);
    od->run_lock = od->run ? fmt_path(err, "%s.lock", od->run) : NULL;
    if (!od->dir || !od->stage || !od->run || !od->run_lock) {
        md_output_dir_close(od);
        return MD_ERR_NOMEM;
    }
    if (mkdir(od->stage, 0777) != 0 && errno != EEXIST) {
        st = md_fail(err, MD_ERR_IO, "%s: cannot write into this folder: %s", dir, strerror(errno));
        md_output_dir_close(od);
        return st;
    }
    /* Lock first, then the staging folder: a folder without a lock is dead.
     * Another run may take and delete a lock file between its creation and
     * our flock (it looked dead): we check that the lock we hold is still the
     * file at that path. */
    struct stat a, b;
    od->lock_fd = lock_file(od->run_lock, 1);
    if (od->lock_fd >= 0 && (fstat(od->lock_fd, &a) != 0 || stat(od->run_lock, &b) != 0 ||
                             a.st_ino != b.st_ino || a.st_dev != b.st_dev)) {
        close(od->lock_fd);
        od->lock_fd = -1;
        errno = EAGAIN;
    }
    if (od->lock_fd < 0 || mkdir(od->run, 0777) != 0) {
        st = md_fail(err, MD_ERR_IO, "%s: cannot write into this folder: %s", dir, strerror(errno));
        md_output_dir_close(od);
        return st;
    }
    st = recover(od, rep, err);
    if (st != MD_OK) {
        md_output_dir_close(od);
        return st;
    }
    *out = od;
    return MD_OK;
}

const char *md_output_dir_path(const md_output_dir *od)
{
    return od ? od->dir : "";
}

void md_output_dir_close(md_output_dir *od)
{
    if (!od)
        return;
    if (od->run && od->dir && od->lock_fd >= 0) {
        int cfd = commit_lock(od);
        clean_run(od->dir, od->run, NULL, NULL);
        unlink(od->run_lock);
        if (cfd >= 0 && !other_runs(od)) {
            /* the last one out: the folder keeps nothing of ours */
            char path[4096];
            snprintf(path, sizeof path, "%s/commit.lock", od->stage);
            unlink(path);
            rmdir(od->stage); /* fails, as it should, if anything else is there */
        }
        if (cfd >= 0)
            close(cfd);
    }
    if (od->lock_fd >= 0)
        close(od->lock_fd);
    pthread_mutex_destroy(&od->mu);
    free(od->dir);
    free(od->stage);
    free(od->run);
    free(od->run_lock);
    free(od);
}

/* --------------------------------------------------------------- sets */

md_status md_output_set_begin(md_output_dir *od, md_output_set **out, md_error *err)
{
    if (out)
        *out = NULL;
    if (!od || !out)
        return md_fail(err, MD_ERR_ARG, "md_output_set_begin: NULL argument");
    md_output_set *s = md_calloc(1, sizeof *s, "output set", err);
    if (!s)
        return MD_ERR_NOMEM;
    s->d = od;
    pthread_mutex_lock(&od->mu);
    s->id = ++od->next_set;
    pthread_mutex_unlock(&od->mu);
    *out = s;
    return MD_OK;
}

/* A relative output name must stay inside the folder. */
static int safe_rel(const char *rel)
{
    if (!rel[0] || rel[0] == '/' || strchr(rel, '\n') || strlen(rel) > 4000)
        return 0;
    for (const char *p = rel; *p;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (strncmp(p, STAGE_DIR, n) == 0 && n == strlen(STAGE_DIR))
            return 0;
        p += n + (slash != NULL);
    }
    return 1;
}

md_status md_output_set_file(md_output_set *s, const char *rel, const char **staged,
                             md_error *err)
{
    if (staged)
        *staged = NULL;
    if (!s || !rel || !staged)
        return md_fail(err, MD_ERR_ARG, "md_output_set_file: NULL argument");
    if (!safe_rel(rel))
        return md_fail(err, MD_ERR_ARG, "%s: not a name inside the output folder", rel);
    if (s->n == MAX_SET_FILES)
        return md_fail(err, MD_ERR_ARG, "%s: more than %d files in one output set", rel,
                       MAX_SET_FILES);
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->final[i], rel) == 0)
            return md_fail(err, MD_ERR_ARG, "%s: named twice in one output set", rel);
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    size_t bl = strlen(base);
    if (bl > STAGED_NAME_TAIL)
        base += bl - STAGED_NAME_TAIL;
    s->final[s->n] = fmt_path(err, "%s", rel);
    s->staged[s->n] = fmt_path(err, "%s/%lu.%d.%s", s->d->run, s->id, s->n, base);
    if (!s->final[s->n] || !s->staged[s->n]) {
        free(s->final[s->n]);
        free(s->staged[s->n]);
        s->final[s->n] = s->staged[s->n] = NULL;
        return MD_ERR_NOMEM;
    }
    *staged = s->staged[s->n++];
    return MD_OK;
}

static void set_free(md_output_set *s, int remove_staged)
{
    for (int i = 0; i < s->n; i++) {
        if (remove_staged)
            unlink(s->staged[i]);
        free(s->staged[i]);
        free(s->final[i]);
    }
    free(s);
}

md_status md_output_set_commit(md_output_set *s, md_error *err)
{
    if (!s)
        return md_fail(err, MD_ERR_ARG, "md_output_set_commit: NULL set");
    md_output_dir *od = s->d;
    md_status st = MD_OK;
    for (int i = 0; i < s->n && st == MD_OK; i++)
        if (access(s->staged[i], F_OK) != 0)
            st = md_fail(err, MD_ERR_IO, "%s/%s: was never written", od->dir, s->final[i]);
    for (int i = 0; i < s->n && st == MD_OK; i++)
        st = make_parent_dirs(od->dir, s->final[i], err);
    char *journal = st == MD_OK ? fmt_path(err, "%s/%lu.journal", od->run, s->id) : NULL;
    if (st == MD_OK && !journal)
        st = MD_ERR_NOMEM;
    int cfd = -1, decided = 0;
    if (st == MD_OK) {
        cfd = commit_lock(od);
        if (cfd < 0)
            st = md_fail(err, MD_ERR_IO, "%s/%s/commit.lock: cannot lock: %s", od->dir, STAGE_DIR,
                         strerror(errno));
    }
    if (st == MD_OK) {
        md_atomic_file af;
        st = md_atomic_open(&af, journal, err);
        if (st == MD_OK) {
            for (int i = 0; i < s->n; i++) {
                put_escaped(af.fp, strrchr(s->staged[i], '/') + 1);
                fputc('\t', af.fp);
                put_escaped(af.fp, s->final[i]);
                fputc('\n', af.fp);
            }
            st = md_atomic_commit(&af, err);
            decided = st == MD_OK;
        }
    }
    if (st == MD_OK) {
        /* From here the set is decided: a rename that fails now is retried
         * by the next run from the journal. */
        st = roll_forward(od->dir, od->run, journal, NULL, err);
        if (st == MD_OK)
            unlink(journal);
    }
    if (cfd >= 0)
        close(cfd);
    free(journal);
    /* A decided set keeps its staged files for the journal's next try. */
    set_free(s, st != MD_OK && !decided);
    return st;
}

void md_output_set_abort(md_output_set *s)
{
    if (s)
        set_free(s, 1);
}

void md_output_set_explain(const md_output_set *s, md_error *err)
{
    if (!s || !err)
        return;
    for (int i = 0; i < s->n; i++) {
        char *hit = strstr(err->message, s->staged[i]);
        if (!hit)
            continue;
        char buf[sizeof err->message];
        size_t pre = (size_t)(hit - err->message);
        const char *rest = hit + strlen(s->staged[i]);
        /* the atomic writers' own ".tmp.XXXXXX" suffix goes too */
        if (strncmp(rest, ".tmp.", 5) == 0 && strlen(rest) >= 11)
            rest += 11;
        snprintf(buf, sizeof buf, "%.*s%s/%s%s", (int)pre, err->message, s->d->dir, s->final[i],
                 rest);
        snprintf(err->message, sizeof err->message, "%s", buf);
        return;
    }
}
