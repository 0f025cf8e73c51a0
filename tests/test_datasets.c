/* Pair lists, dataset detection and the sample scene.
 *
 * Expectations come from outside the code: hand-written pair lists, a folder
 * tree built here with known names, the counts, names, units and intrinsics
 * stated in ../shared/README.md and each data folder's PROVENANCE.txt, and
 * hand-computed ray geometry for the sample scene (poses as documented in
 * src/scene/sample_scene.c). Exits 77 (skipped) when ../shared is missing and
 * everything else passed. */
#include "check.h"
#include "metricdepth.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PI 3.14159265358979323846

/* ------------------------------------------------------------ helpers */

static char g_tmp[64]; /* the test's temp folder (set once in main) */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        check_failed++;
        return;
    }
    fputs(text, f);
    fclose(f);
}

static void tpath(char *buf, size_t n, const char *rel)
{
    snprintf(buf, n, "%s/%s", g_tmp, rel);
}

/* Creates the folders of rel and an (empty unless text) file at its end. */
static void touch(const char *rel, const char *text)
{
    char buf[1024];
    tpath(buf, sizeof buf, rel);
    for (char *p = buf + strlen(g_tmp) + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    write_text(buf, text ? text : "");
}

static void remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char sub[2048];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
                remove_tree(sub);
            else
                unlink(sub);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static const md_pair *find_pair(const md_pair_list *l, const char *rgb_suffix)
{
    for (size_t i = 0; i < l->count; i++)
        if (ends_with(l->items[i].rgb_path, rgb_suffix))
            return &l->items[i];
    return NULL;
}

/* ------------------------------------------------------------ pair lists */

static void test_read_list(void)
{
    md_error err = {0};
    char list_path[512];
    tpath(list_path, sizeof list_path, "lists/good.txt");
    touch("lists/good.txt",
          "# a comment line\n"
          "\n"
          "   \t  \n"
          "a.png a_depth.png\n"
          "sub/b.jpg sub/b.png 256   # KITTI style, trailing comment\n"
          "/abs/c.png /abs/c_depth.png 5000 525 526.5 319.5 239.25\r\n"
          "\td.jpg\td.png\tsun\n"
          "e#1.png e#1_depth.png 1000 500 500 320 240\n"
          "f.png f.pgm 518.5 519 325.5 253.5\n"
          "g.png g.png sun:256\n"
          "h.png h.png 1e3#no-space-so-not-a-comment\n");
    /* The last line must fail ("1e3#..." is not a number): read a list
     * without it first. */
    char good_path[512];
    tpath(good_path, sizeof good_path, "lists/good2.txt");
    {
        FILE *in = fopen(list_path, "rb");
        FILE *out = fopen(good_path, "wb");
        char line[512];
        while (in && out && fgets(line, sizeof line, in))
            if (strncmp(line, "h.png", 5) != 0)
                fputs(line, out);
        if (in)
            fclose(in);
        if (out)
            fclose(out);
    }
    md_pair_list l = {0};
    CHECK_OK(md_pairs_read_list(good_path, &l, &err), &err);
    CHECK(l.count == 7);
    if (l.count == 7) {
        char exp[1024];
        tpath(exp, sizeof exp, "lists/a.png");
        CHECK(strcmp(l.items[0].rgb_path, exp) == 0);
        tpath(exp, sizeof exp, "lists/a_depth.png");
        CHECK(strcmp(l.items[0].depth_path, exp) == 0);
        CHECK(l.items[0].depth_divisor == 1000.0);
        CHECK(l.items[0].encoding == MD_DEPTH_PLAIN);
        CHECK(!l.items[0].has_intrinsics);

        tpath(exp, sizeof exp, "lists/sub/b.png");
        CHECK(strcmp(l.items[1].depth_path, exp) == 0);
        CHECK(l.items[1].depth_divisor == 256.0);

        CHECK(strcmp(l.items[2].rgb_path, "/abs/c.png") == 0);
        CHECK(strcmp(l.items[2].depth_path, "/abs/c_depth.png") == 0);
        CHECK(l.items[2].depth_divisor == 5000.0);
        CHECK(l.items[2].has_intrinsics);
        CHECK(l.items[2].K.fx == 525.0 && l.items[2].K.fy == 526.5);
        CHECK(l.items[2].K.cx == 319.5 && l.items[2].K.cy == 239.25);

        CHECK(l.items[3].encoding == MD_DEPTH_SUN_ROTATED);
        CHECK(l.items[3].depth_divisor == 1000.0);
        tpath(exp, sizeof exp, "lists/d.jpg");
        CHECK(strcmp(l.items[3].rgb_path, exp) == 0);

        tpath(exp, sizeof exp, "lists/e#1.png"); /* '#' inside a path is kept */
        CHECK(strcmp(l.items[4].rgb_path, exp) == 0);
        CHECK(l.items[4].has_intrinsics && l.items[4].K.fx == 500.0);

        /* 6 fields: no divisor, intrinsics */
        CHECK(l.items[5].depth_divisor == 1000.0);
        CHECK(l.items[5].has_intrinsics);
        CHECK(l.items[5].K.fx == 518.5 && l.items[5].K.fy == 519.0);
        CHECK(l.items[5].K.cx == 325.5 && l.items[5].K.cy == 253.5);

        CHECK(l.items[6].encoding == MD_DEPTH_SUN_ROTATED);
        CHECK(l.items[6].depth_divisor == 256.0);
    }

    /* Reading appends. */
    size_t before = l.count;
    CHECK_OK(md_pairs_read_list(good_path, &l, &err), &err);
    CHECK(l.count == 2 * before);

    /* The full file fails on its line 11, and leaves the list as it was. */
    before = l.count;
    CHECK(md_pairs_read_list(list_path, &l, &err) == MD_ERR_FORMAT);
    CHECK(l.count == before);
    CHECK_MSG(strstr(err.message, "good.txt:11:") != NULL, "message: %s", err.message);
    md_pair_list_free(&l);
    CHECK(l.count == 0 && l.items == NULL);
    md_pair_list_free(&l); /* twice is fine */
}

static void expect_malformed(const char *name, const char *text, int line)
{
    md_error err = {0};
    char rel[128], path[512], needle[160];
    snprintf(rel, sizeof rel, "lists/%s", name);
    touch(rel, text);
    tpath(path, sizeof path, rel);
    md_pair_list l = {0};
    md_status st = md_pairs_read_list(path, &l, &err);
    CHECK_MSG(st == MD_ERR_FORMAT, "%s: status %d", name, (int)st);
    snprintf(needle, sizeof needle, "%s:%d:", name, line);
    CHECK_MSG(strstr(err.message, needle) != NULL, "%s: message '%s' lacks '%s'", name,
              err.message, needle);
    CHECK(l.count == 0);
    md_pair_list_free(&l);
}

static void test_malformed_lists(void)
{
    expect_malformed("one_field.txt", "a.png b.png\n# fine\nlonely.png\n", 3);
    expect_malformed("bad_div.txt", "a.png b.png abc\n", 1);
    expect_malformed("neg_div.txt", "# x\n\na.png b.png -5\n", 3);
    expect_malformed("zero_div.txt", "a.png b.png 0\n", 1);
    expect_malformed("four.txt", "a.png b.png 1000 1\n", 1);
    expect_malformed("five.txt", "a.png b.png 1 2 3\n", 1);
    expect_malformed("eight.txt", "a.png b.png 1000 1 2 3 4 5\n", 1);
    expect_malformed("bad_k.txt", "a.png b.png 1000 500 x 320 240\n", 1);
    expect_malformed("zero_f.txt", "a.png b.png 1000 0 500 320 240\n", 1);
    expect_malformed("sun_bad.txt", "a.png b.png sunny\n", 1);
    expect_malformed("spaces.txt", "my file.png depth.png 1000\n", 1); /* 4 fields */

    md_error err = {0};
    md_pair_list l = {0};
    CHECK(md_pairs_read_list("/nonexistent/list.txt", &l, &err) == MD_ERR_IO);
    CHECK(strstr(err.message, "/nonexistent/list.txt") != NULL);
    CHECK(md_pairs_read_list(NULL, &l, &err) == MD_ERR_ARG);

    /* An empty list is fine. */
    char path[512];
    touch("lists/empty.txt", "");
    tpath(path, sizeof path, "lists/empty.txt");
    CHECK_OK(md_pairs_read_list(path, &l, &err), &err);
    CHECK(l.count == 0);

    /* A UTF-8 byte-order mark (as Windows editors write) is not part of the
     * first path; elsewhere it would be a name's bytes and is kept. */
    touch("lists/bom.txt", "\xEF\xBB\xBF" "a.png a_depth.png\n");
    tpath(path, sizeof path, "lists/bom.txt");
    CHECK_OK(md_pairs_read_list(path, &l, &err), &err);
    char want[512];
    tpath(want, sizeof want, "lists/a.png");
    CHECK(l.count == 1 && strcmp(l.items[0].rgb_path, want) == 0);
    md_pair_list_free(&l);
    touch("lists/bom_only.txt", "\xEF\xBB\xBF");
    tpath(path, sizeof path, "lists/bom_only.txt");
    CHECK_OK(md_pairs_read_list(path, &l, &err), &err);
    CHECK(l.count == 0);
}

static void test_append_copies(void)
{
    md_error err = {0};
    md_pair_list l = {0};
    char rgb[] = "x.png", depth[] = "x_depth.png";
    md_pair p = {0};
    p.rgb_path = rgb;
    p.depth_path = depth;
    p.depth_divisor = 256;
    CHECK_OK(md_pair_list_append(&l, &p, &err), &err);
    rgb[0] = 'y';
    CHECK(l.count == 1 && strcmp(l.items[0].rgb_path, "x.png") == 0);
    CHECK(l.items[0].rgb_path != rgb);
    p.depth_divisor = 0; /* 0 means the default, millimetres */
    CHECK_OK(md_pair_list_append(&l, &p, &err), &err);
    CHECK(l.count == 2 && l.items[1].depth_divisor == 1000.0);
    p.depth_divisor = -1;
    CHECK(md_pair_list_append(&l, &p, &err) == MD_ERR_ARG);
    p.depth_divisor = 1000;
    p.rgb_path = NULL;
    CHECK(md_pair_list_append(&l, &p, &err) == MD_ERR_ARG);
    CHECK(l.count == 2);
    md_pair_list_free(&l);

    /* Many appends keep every pair. */
    p.rgb_path = rgb;
    int ok = 1;
    for (int i = 0; i < 5000 && ok; i++) {
        snprintf(rgb, sizeof rgb, "%05d", i % 100000);
        ok = md_pair_list_append(&l, &p, &err) == MD_OK;
    }
    CHECK(ok && l.count == 5000);
    CHECK(l.count == 5000 && strcmp(l.items[4999].rgb_path, "04999") == 0 &&
          strcmp(l.items[1234].rgb_path, "01234") == 0);
    md_pair_list_free(&l);

    /* A list whose items array was allocated by the caller, exactly sized. */
    l.items = calloc(3, sizeof *l.items);
    l.count = 3;
    for (int i = 0; i < 3; i++) {
        l.items[i].rgb_path = strdup("r.png");
        l.items[i].depth_path = strdup("d.png");
        l.items[i].depth_divisor = 1000;
    }
    CHECK_OK(md_pair_list_append(&l, &p, &err), &err);
    CHECK(l.count == 4 && strcmp(l.items[3].rgb_path, "04999") == 0);
    md_pair_list_free(&l);
}

static void test_write_read_round_trip(void)
{
    md_error err = {0};
    md_pair_list l = {0};
    md_pair p = {0};
    char cwd[1024];
    CHECK(getcwd(cwd, sizeof cwd) != NULL);

    p.rgb_path = "/data/a/rgb_00000.jpg";
    p.depth_path = "/data/a/sync_depth_00000.png";
    p.depth_divisor = 1000;
    p.has_intrinsics = 1;
    p.K.fx = 518.8579;
    p.K.fy = 519.46961;
    p.K.cx = 325.58245;
    p.K.cy = 253.73617;
    CHECK_OK(md_pair_list_append(&l, &p, &err), &err);
    memset(&p, 0, sizeof p);
    p.rgb_path = "rel/kitti.png"; /* relative: written against the working folder */
    p.depth_path = "./rel/kitti_depth.png";
    p.depth_divisor = 256;
    CHECK_OK(md_pair_list_append(&l, &p, &err), &err);
    p.rgb_path = "/s/SUN_color.jpg";
    p.depth_path = "/s/SUN_depth.png";
    p.depth_divisor = 1000;
    p.encoding = MD_DEPTH_SUN_ROTATED;
    CHECK_OK(md_pair_list_append(&l, &p, &err), &err);
    p.depth_divisor = 0.1; /* not exactly representable: must still round-trip */
    p.has_intrinsics = 1;
    p.K.fx = 1.0 / 3.0;
    p.K.fy = 570.342205;
    p.K.cx = -0.5;
    p.K.cy = 1e-7;
    CHECK_OK(md_pair_list_append(&l, &p, &err), &err);

    char path[512];
    tpath(path, sizeof path, "lists/written.txt");
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK_OK(md_pairs_write(f, &l, &err), &err);
    fclose(f);

    /* The header is a comment. */
    f = fopen(path, "r");
    char first[256] = "";
    if (f) {
        CHECK(fgets(first, sizeof first, f) != NULL);
        fclose(f);
    }
    CHECK(first[0] == '#');

    md_pair_list r = {0};
    CHECK_OK(md_pairs_read_list(path, &r, &err), &err);
    CHECK(r.count == l.count);
    if (r.count == 4) {
        char exp[2048];
        CHECK(strcmp(r.items[0].rgb_path, "/data/a/rgb_00000.jpg") == 0);
        CHECK(strcmp(r.items[0].depth_path, "/data/a/sync_depth_00000.png") == 0);
        snprintf(exp, sizeof exp, "%s/rel/kitti.png", cwd);
        CHECK_MSG(strcmp(r.items[1].rgb_path, exp) == 0, "%s vs %s", r.items[1].rgb_path, exp);
        snprintf(exp, sizeof exp, "%s/rel/kitti_depth.png", cwd);
        CHECK_MSG(strcmp(r.items[1].depth_path, exp) == 0, "%s", r.items[1].depth_path);
        for (size_t i = 0; i < 4; i++) {
            const md_pair *a = &l.items[i], *b = &r.items[i];
            CHECK(a->depth_divisor == b->depth_divisor);
            CHECK(a->encoding == b->encoding);
            CHECK(a->has_intrinsics == b->has_intrinsics);
            if (a->has_intrinsics && b->has_intrinsics)
                CHECK(a->K.fx == b->K.fx && a->K.fy == b->K.fy && a->K.cx == b->K.cx &&
                      a->K.cy == b->K.cy);
        }
        CHECK(!r.items[1].has_intrinsics);
        CHECK(r.items[2].encoding == MD_DEPTH_SUN_ROTATED && r.items[2].depth_divisor == 1000.0);
    }
    md_pair_list_free(&r);

    /* A path with a space cannot be written; nothing is written. */
    memset(&p, 0, sizeof p);
    p.rgb_path = "/my data/x.png";
    p.depth_path = "/d.png";
    p.depth_divisor = 1000;
    CHECK_OK(md_pair_list_append(&l, &p, &err), &err);
    tpath(path, sizeof path, "lists/refused.txt");
    f = fopen(path, "w");
    if (f) {
        CHECK(md_pairs_write(f, &l, &err) == MD_ERR_UNSUPPORTED);
        CHECK(strstr(err.message, "/my data/x.png") != NULL);
        CHECK(ftell(f) == 0);
        fclose(f);
    }
    md_pair_list_free(&l);
}

/* ------------------------------------------------------------ detection: built tree */

static void build_tree(void)
{
    touch("tree/bts/rgb_2.jpg", NULL);
    touch("tree/bts/sync_depth_2.png", NULL);
    touch("tree/bts/rgb_10.jpg", NULL);
    touch("tree/bts/sync_depth_10.png", NULL);
    touch("tree/bts/rgb_3.jpg", NULL); /* no depth: not a pair */
    touch("tree/dense/00001_colors.png", NULL);
    touch("tree/dense/00001_depth.png", NULL);
    touch("tree/scans/camera-intrinsics.txt", "500 0 320\n0 501 240.5\n0 0 1\n");
    touch("tree/scans/seq/frame-000010.color.jpg", NULL);
    touch("tree/scans/seq/frame-000010.depth.png", NULL);
    touch("tree/scans/seq/frame-000002.color.png", NULL);
    touch("tree/scans/seq/frame-000002.depth.png", NULL);
    touch("tree/scans/seq/frame-000003.color.png", NULL); /* no depth */
    touch("tree/scans/seq/frame-000002.pose.txt", NULL);
    touch("tree/tum/1.png", NULL);
    touch("tree/tum/1_depth.png", NULL);
    touch("tree/tum/2.png", NULL); /* no depth */
    touch("tree/o3d/TUM_color.png", NULL);
    touch("tree/o3d/TUM_depth.png", NULL);
    touch("tree/o3d/SUN_color.jpg", NULL);
    touch("tree/o3d/SUN_depth.png", NULL);
    touch("tree/o3d/NYU_color.ppm", NULL); /* raw disparity: never a pair */
    touch("tree/o3d/NYU_depth.pgm", NULL);
    touch("tree/uni/rgb.png", NULL);
    touch("tree/uni/depth.png", NULL);
    touch("tree/kitti_demo/rgb/a.png", NULL);
    touch("tree/kitti_demo/rgb/b.png", NULL);
    touch("tree/kitti_demo/depth/a.png", NULL);
    touch("tree/kitti_demo/depth/b.png", NULL);
    touch("tree/kitti_demo/test_annotations.json",
          "{\"files\": [{\"cam_in\": [700.5, 701.5, 600.25, 180.125], \"rgb\": "
          "\"data/kitti_demo/rgb/a.png\", \"depth\": \"data/kitti_demo/depth/a.png\", "
          "\"depth_scale\": 256.0, \"extra\": {\"nested\": [1, true, null, \"s\\\"q\"]}}],\n"
          " \"meta\": \"ignored\"}\n");
    touch("tree/plain/rgb/x.png", NULL);
    touch("tree/plain/depth/x.png", NULL);
    touch("tree/slam/color/1.png", NULL);
    touch("tree/slam/color/2.png", NULL);
    touch("tree/slam/depth/1.pgm", NULL);
    touch("tree/slam/depth/2.pgm", NULL);
    touch("tree/.hidden/1.png", NULL);
    touch("tree/.hidden/1_depth.png", NULL);
    touch("tree/notes.txt", "not data");
}

static void test_detect_built_tree(void)
{
    md_error err = {0};
    build_tree();
    char root[512];
    tpath(root, sizeof root, "tree");
    md_pair_list l = {0};
    CHECK_OK(md_pairs_detect(root, &l, &err), &err);
    /* bts 2, dense 1, kitti 2, o3d 2, plain 1, scans 2, slam 2, tum 1, uni 1 */
    static const char *const order[] = {
        "bts/rgb_2.jpg",        "bts/rgb_10.jpg",      "dense/00001_colors.png",
        "kitti_demo/rgb/a.png", "kitti_demo/rgb/b.png", "o3d/SUN_color.jpg",
        "o3d/TUM_color.png",    "plain/rgb/x.png",     "scans/seq/frame-000002.color.png",
        "scans/seq/frame-000010.color.jpg", "slam/color/1.png", "slam/color/2.png",
        "tum/1.png",            "uni/rgb.png"};
    size_t n = sizeof order / sizeof order[0];
    CHECK_MSG(l.count == n, "found %zu pairs, expected %zu", l.count, n);
    for (size_t i = 0; i < l.count && i < n; i++) {
        char exp[1024];
        snprintf(exp, sizeof exp, "%s/%s", root, order[i]);
        CHECK_MSG(strcmp(l.items[i].rgb_path, exp) == 0, "pair %zu: %s, expected %s", i,
                  l.items[i].rgb_path, exp);
    }
    const md_pair *p;
    char exp[1024];
    if ((p = find_pair(&l, "/bts/rgb_10.jpg"))) {
        snprintf(exp, sizeof exp, "%s/bts/sync_depth_10.png", root);
        CHECK(strcmp(p->depth_path, exp) == 0);
        CHECK(p->depth_divisor == 1000.0 && p->encoding == MD_DEPTH_PLAIN);
        /* no annotations: the NYU camera */
        CHECK(p->has_intrinsics);
        CHECK_NEAR(p->K.fx, 518.8579, 1e-9);
        CHECK_NEAR(p->K.cy, 253.7362, 1e-9);
    }
    if ((p = find_pair(&l, "/dense/00001_colors.png"))) {
        CHECK(ends_with(p->depth_path, "/dense/00001_depth.png"));
        CHECK(p->depth_divisor == 1000.0);
    }
    if ((p = find_pair(&l, "frame-000010.color.jpg"))) {
        CHECK(ends_with(p->depth_path, "/scans/seq/frame-000010.depth.png"));
        CHECK(p->depth_divisor == 1000.0);
        CHECK(p->has_intrinsics && p->K.fx == 500.0 && p->K.fy == 501.0 && p->K.cx == 320.0 &&
              p->K.cy == 240.5);
    }
    if ((p = find_pair(&l, "/tum/1.png"))) {
        CHECK(ends_with(p->depth_path, "/tum/1_depth.png"));
        CHECK(p->depth_divisor == 5000.0 && !p->has_intrinsics);
    }
    if ((p = find_pair(&l, "/o3d/TUM_color.png"))) {
        CHECK(ends_with(p->depth_path, "/o3d/TUM_depth.png"));
        CHECK(p->depth_divisor == 5000.0 && p->encoding == MD_DEPTH_PLAIN);
    }
    if ((p = find_pair(&l, "/o3d/SUN_color.jpg"))) {
        CHECK(ends_with(p->depth_path, "/o3d/SUN_depth.png"));
        CHECK(p->encoding == MD_DEPTH_SUN_ROTATED && p->depth_divisor == 1000.0);
    }
    CHECK(find_pair(&l, "NYU_color.ppm") == NULL);
    if ((p = find_pair(&l, "/uni/rgb.png"))) {
        CHECK(ends_with(p->depth_path, "/uni/depth.png"));
        CHECK(p->depth_divisor == 1000.0 && !p->has_intrinsics);
    }
    if ((p = find_pair(&l, "/kitti_demo/rgb/a.png"))) {
        CHECK(ends_with(p->depth_path, "/kitti_demo/depth/a.png"));
        CHECK(p->depth_divisor == 256.0);
        CHECK(p->has_intrinsics && p->K.fx == 700.5 && p->K.fy == 701.5 &&
              p->K.cx == 600.25 && p->K.cy == 180.125);
    }
    if ((p = find_pair(&l, "/kitti_demo/rgb/b.png"))) {
        CHECK(p->depth_divisor == 256.0); /* from the folder name */
        CHECK(!p->has_intrinsics);
    }
    if ((p = find_pair(&l, "/plain/rgb/x.png")))
        CHECK(p->depth_divisor == 1000.0);
    if ((p = find_pair(&l, "/slam/color/2.png"))) {
        CHECK(ends_with(p->depth_path, "/slam/depth/2.pgm"));
        CHECK(p->depth_divisor == 1000.0);
    }
    for (size_t i = 0; i < l.count; i++)
        CHECK(strstr(l.items[i].rgb_path, ".hidden") == NULL);

    /* Detection is deterministic and appends. */
    size_t first = l.count;
    CHECK_OK(md_pairs_detect(root, &l, &err), &err);
    CHECK(l.count == 2 * first);
    for (size_t i = 0; i < first && l.count == 2 * first; i++)
        CHECK(strcmp(l.items[i].rgb_path, l.items[first + i].rgb_path) == 0 &&
              strcmp(l.items[i].depth_path, l.items[first + i].depth_path) == 0);
    md_pair_list_free(&l);

    /* A broken side file is an error naming it, and the list is unchanged. */
    touch("bad/seq/camera-intrinsics.txt", "1 2 3\n");
    touch("bad/seq/frame-1.color.png", NULL);
    touch("bad/seq/frame-1.depth.png", NULL);
    tpath(root, sizeof root, "bad");
    CHECK(md_pairs_detect(root, &l, &err) == MD_ERR_FORMAT);
    CHECK(strstr(err.message, "camera-intrinsics.txt") != NULL);
    CHECK(l.count == 0);
    touch("badjson/test_annotations.json", "{\"files\": [ {\"rgb\": \"a.png\", } ");
    touch("badjson/rgb/a.png", NULL);
    touch("badjson/depth/a.png", NULL);
    tpath(root, sizeof root, "badjson");
    CHECK(md_pairs_detect(root, &l, &err) == MD_ERR_FORMAT);
    CHECK(strstr(err.message, "test_annotations.json") != NULL);
    CHECK(l.count == 0);

    CHECK(md_pairs_detect("/nonexistent-folder-xyz", &l, &err) == MD_ERR_IO);
    CHECK(strstr(err.message, "/nonexistent-folder-xyz") != NULL);
    CHECK(md_pairs_detect(NULL, &l, &err) == MD_ERR_ARG);
    md_pair_list_free(&l);
}

/* ------------------------------------------------------------ detection: shared data */

static int g_shared_missing;

static size_t detect_count(const char *data, const char *folder, md_pair_list *l)
{
    md_error err = {0};
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", data, folder);
    md_pair_list_free(l);
    CHECK_OK(md_pairs_detect(dir, l, &err), &err);
    fprintf(stderr, "  %s: %zu pairs\n", folder, l->count);
    return l->count;
}

static int cmp_f(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median of the valid pixels and their fraction; -1 on load failure. */
static double depth_median(const md_pair *p, double *valid_frac, float *max_out)
{
    md_error err = {0};
    md_depth d = {0};
    md_status st = md_pair_load_depth(p, &d, &err);
    CHECK_OK(st, &err);
    if (st != MD_OK)
        return -1;
    size_t n = (size_t)d.width * (size_t)d.height, m = 0;
    float *v = malloc(n * sizeof *v);
    float mx = 0;
    for (size_t i = 0; i < n; i++)
        if (md_depth_valid_at(&d, i)) {
            v[m++] = d.data[i];
            if (d.data[i] > mx)
                mx = d.data[i];
        }
    double med = -1;
    if (m) {
        qsort(v, m, sizeof *v, cmp_f);
        med = v[m / 2];
    }
    if (valid_frac)
        *valid_frac = (double)m / (double)n;
    if (max_out)
        *max_out = mx;
    free(v);
    md_depth_free(&d);
    return med;
}

static void test_detect_shared_data(void)
{
    char data[1024];
    snprintf(data, sizeof data, "%s/data", check_shared_dir());
    struct stat st;
    if (stat(data, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "  %s missing: shared-data checks skipped\n", data);
        g_shared_missing = 1;
        return;
    }
    md_pair_list l = {0};
    const md_pair *p;
    size_t total = 0;

    /* Counts from ../shared/README.md. */
    total += detect_count(data, "nyu_demo_metric3d", &l);
    CHECK(l.count == 3);
    if ((p = find_pair(&l, "/rgb/rgb_00050.jpg"))) {
        CHECK(ends_with(p->depth_path, "/depth/sync_depth_00050.png"));
        CHECK(p->depth_divisor == 1000.0);
        CHECK(p->has_intrinsics && p->K.fx == 518.8579 && p->K.fy == 519.46961 &&
              p->K.cx == 325.58245 && p->K.cy == 253.73617); /* test_annotations.json cam_in */
    }
    CHECK(l.count == 3 && ends_with(l.items[0].rgb_path, "rgb_00000.jpg") &&
          ends_with(l.items[2].rgb_path, "rgb_00100.jpg"));
    if ((p = find_pair(&l, "/rgb/rgb_00000.jpg"))) {
        /* PROVENANCE: 00000 median 3258 mm, valid fraction 0.67-0.75 */
        double frac;
        double med = depth_median(p, &frac, NULL);
        CHECK_NEAR(med, 3.258, 0.05);
        CHECK(frac > 0.6 && frac < 0.8);
    }

    total += detect_count(data, "nyu_demo_unidepth", &l);
    CHECK(l.count == 1);
    if ((p = find_pair(&l, "/nyu_demo_unidepth/rgb.png"))) {
        CHECK(ends_with(p->depth_path, "/nyu_demo_unidepth/depth.png"));
        CHECK(p->depth_divisor == 1000.0);
        /* intrinsics.npy: fx 518.86, fy 519.47, cx 325.58, cy 253.74 */
        CHECK(p->has_intrinsics);
        CHECK_NEAR(p->K.fx, 518.86, 0.01);
        CHECK_NEAR(p->K.fy, 519.47, 0.01);
        CHECK_NEAR(p->K.cx, 325.58, 0.01);
        CHECK_NEAR(p->K.cy, 253.74, 0.01);
        double frac;
        double med = depth_median(p, &frac, NULL); /* median 3495 mm, valid 0.681 */
        CHECK_NEAR(med, 3.495, 0.05);
        CHECK_NEAR(frac, 0.681, 0.01);
    }

    total += detect_count(data, "sun3d_studyroom", &l);
    CHECK(l.count == 100);
    if (l.count == 100) {
        CHECK(ends_with(l.items[0].rgb_path, "fragment-1-rgbd-frames/frame-000935.color.png"));
        CHECK(ends_with(l.items[49].rgb_path, "fragment-1-rgbd-frames/frame-000984.color.png"));
        CHECK(ends_with(l.items[50].rgb_path, "fragment-2-rgbd-frames/frame-003160.color.png"));
        CHECK(ends_with(l.items[99].depth_path, "fragment-2-rgbd-frames/frame-003209.depth.png"));
        int all_k = 1;
        for (size_t i = 0; i < l.count; i++) {
            const md_pair *q = &l.items[i];
            all_k &= q->has_intrinsics && q->K.fx == 570.342205 && q->K.fy == 570.342205 &&
                     q->K.cx == 320.0 && q->K.cy == 240.0 && q->depth_divisor == 1000.0;
        }
        CHECK(all_k);
    }

    total += detect_count(data, "7scenes_redkitchen", &l);
    CHECK(l.count == 250);
    if (l.count == 250) {
        CHECK(ends_with(l.items[0].rgb_path, "frame-000000.color.jpg"));
        CHECK(ends_with(l.items[1].rgb_path, "frame-000004.color.jpg"));
        CHECK(ends_with(l.items[249].rgb_path, "frame-000996.color.jpg"));
        CHECK(ends_with(l.items[249].depth_path, "frame-000996.depth.png"));
        CHECK(l.items[7].has_intrinsics && l.items[7].K.fx == 585.0 && l.items[7].K.fy == 585.0 &&
              l.items[7].K.cx == 320.0 && l.items[7].K.cy == 240.0);
        /* 65535 is invalid: no valid pixel reaches 65.535 m; median 1.6-2.3 m */
        float mx;
        double med = depth_median(&l.items[0], NULL, &mx);
        CHECK(mx < 65.0f);
        CHECK(med > 0.8 && med < 3.0);
    }

    total += detect_count(data, "slambook2_kinect", &l);
    CHECK(l.count == 7);
    if ((p = find_pair(&l, "ch5_rgbd/color/1.png"))) {
        CHECK(ends_with(p->depth_path, "ch5_rgbd/depth/1.pgm"));
        CHECK(p->depth_divisor == 1000.0);
        double frac;
        double med = depth_median(p, &frac, NULL); /* 1.pgm: median 2915 mm, valid 0.68 */
        CHECK_NEAR(med, 2.915, 0.03);
        CHECK_NEAR(frac, 0.68, 0.01);
    }
    CHECK(find_pair(&l, "ch5_rgbd/color/5.png") != NULL);
    if ((p = find_pair(&l, "ch7_tum/1.png"))) {
        CHECK(ends_with(p->depth_path, "ch7_tum/1_depth.png"));
        CHECK(p->depth_divisor == 5000.0);
        double frac;
        double med = depth_median(p, &frac, NULL); /* 1_depth.png: median 7510/5000 = 1.50 m */
        CHECK_NEAR(med, 1.502, 0.02);
        CHECK_NEAR(frac, 0.667, 0.01);
    }
    CHECK(find_pair(&l, "ch7_tum/2.png") != NULL);

    total += detect_count(data, "open3d_testdata_rgbd", &l);
    CHECK(l.count == 2); /* TUM + SUN; the NYU raw-disparity pair is not metric */
    CHECK(find_pair(&l, "NYU_color.ppm") == NULL);
    if ((p = find_pair(&l, "/TUM_color.png"))) {
        CHECK(p->depth_divisor == 5000.0 && p->encoding == MD_DEPTH_PLAIN);
        double med = depth_median(p, NULL, NULL); /* median raw 12075 -> 2.415 m */
        CHECK_NEAR(med, 2.415, 0.03);
    }
    if ((p = find_pair(&l, "/SUN_color.jpg"))) {
        CHECK(ends_with(p->depth_path, "/SUN_depth.png"));
        CHECK(p->encoding == MD_DEPTH_SUN_ROTATED && p->depth_divisor == 1000.0);
        /* PROVENANCE: median raw 21272 -> 2659 mm. The rotation is not monotonic,
         * so that is the decode of the raw median, not the median depth; decoding
         * every pixel independently (a few lines of Python) gives a median of
         * 2723 mm and 0.818 valid. Both say millimetres near 2.7 m. */
        double frac;
        double med = depth_median(p, &frac, NULL);
        CHECK_NEAR(med, 2.723, 0.01);
        CHECK_NEAR(frac, 0.818, 0.01);
    }

    total += detect_count(data, "kitti_demo_metric3d", &l);
    CHECK(l.count == 3);
    if (l.count == 3) {
        CHECK(ends_with(l.items[0].rgb_path, "rgb/0000000005.png"));
        CHECK(ends_with(l.items[1].rgb_path, "rgb/0000000050.png"));
        CHECK(ends_with(l.items[2].rgb_path, "rgb/0000000100.png"));
        CHECK(ends_with(l.items[2].depth_path, "depth/0000000100.png"));
        for (size_t i = 0; i < 3; i++) {
            p = &l.items[i];
            CHECK(p->depth_divisor == 256.0);
            CHECK(p->has_intrinsics && p->K.fx == 707.0493 && p->K.fy == 707.0493 &&
                  p->K.cx == 604.0814 && p->K.cy == 180.5066);
        }
        /* value/256: median ~13.5 m, valid 0.18-0.21, max ~85 m */
        double frac;
        float mx;
        double med = depth_median(&l.items[1], &frac, &mx);
        CHECK(med > 12.5 && med < 14.5);
        CHECK(frac > 0.17 && frac < 0.22);
        CHECK(mx > 75.0f && mx < 90.0f);
    }
    CHECK(total == 366);

    /* The whole folder at once: same total. */
    md_error err = {0};
    md_pair_list_free(&l);
    CHECK_OK(md_pairs_detect(data, &l, &err), &err);
    CHECK(l.count == 366);

    /* Round trip of the real list through a file. */
    char path[512];
    tpath(path, sizeof path, "lists/shared.txt");
    FILE *f = fopen(path, "w");
    if (f) {
        CHECK_OK(md_pairs_write(f, &l, &err), &err);
        fclose(f);
        md_pair_list r = {0};
        CHECK_OK(md_pairs_read_list(path, &r, &err), &err);
        CHECK(r.count == l.count);
        int same = r.count == l.count;
        for (size_t i = 0; same && i < r.count; i++) {
            const md_pair *a = &l.items[i], *b = &r.items[i];
            /* detected paths are absolute here iff data is; compare tails */
            same &= ends_with(b->rgb_path, a->rgb_path + (a->rgb_path[0] == '/' ? 0 : 1)) &&
                    a->depth_divisor == b->depth_divisor && a->encoding == b->encoding &&
                    a->has_intrinsics == b->has_intrinsics && a->K.fx == b->K.fx &&
                    a->K.cy == b->K.cy;
        }
        CHECK(same);
        md_pair_list_free(&r);
    }
    md_pair_list_free(&l);
}

/* ------------------------------------------------------------ sample scene */

/* Poses as documented in sample_scene.c. */
static const double k_pos[4][3] = {{0.0, 1.5, 0.0}, {-0.8, 1.5, 0.4}, {0.8, 1.4, 0.2},
                                   {0.2, 1.5, -0.5}};
static const double k_pitch[4] = {10, 12, 8, 0};

static void test_scene_intrinsics_and_range(void)
{
    md_error err = {0};
    for (int v = 0; v < 4; v++) {
        md_depth d = {0};
        md_intrinsics K;
        CHECK_OK(md_render_sample_scene(640, 480, v, NULL, &d, &K, &err), &err);
        if (!d.data)
            continue;
        CHECK(d.width == 640 && d.height == 480);
        CHECK(K.fx == 512.0 && K.fy == 512.0 && K.cx == 319.5 && K.cy == 239.5);
        size_t valid = 0;
        float mn = 1e9f, mx = 0;
        for (size_t i = 0; i < 640 * 480; i++) {
            valid += md_depth_valid_at(&d, i);
            mn = d.data[i] < mn ? d.data[i] : mn;
            mx = d.data[i] > mx ? d.data[i] : mx;
        }
        CHECK(valid == 640 * 480);
        CHECK_MSG(mn > 1.0f && mx < 6.5f, "variant %d: depth %g..%g", v, mn, mx);
        md_depth_free(&d);
    }
}

static void test_scene_geometry(void)
{
    md_error err = {0};
    md_depth d0 = {0}, d3 = {0};
    md_intrinsics K;
    CHECK_OK(md_render_sample_scene(640, 480, 0, NULL, &d0, &K, &err), &err);
    CHECK_OK(md_render_sample_scene(640, 480, 3, NULL, &d3, NULL, &err), &err);
    if (!d0.data || !d3.data) {
        md_depth_free(&d0);
        md_depth_free(&d3);
        return;
    }
#define AT(d, u, v) ((double)(d).data[(size_t)(v) * 640 + (size_t)(u)])
    const double fx = 512, cx = 319.5, cy = 239.5;

    /* Variant 3 is level and faces +z: every back-wall pixel (z = 5.5) has
     * z-depth 5.5 - (-0.5) = 6.0, whatever its column. */
    CHECK_NEAR(AT(d3, 320, 240), 6.0, 1e-4);
    CHECK_NEAR(AT(d3, 319, 239), 6.0, 1e-4);
    CHECK_NEAR(AT(d3, 200, 200), 6.0, 1e-4);
    /* Level camera: a floor pixel at row v sees the floor 1.5 m below, so
     * z = 1.5 / ((v - cy) / fy), and back-projection gives y = 1.5. */
    for (int u = 500; u <= 630; u += 65) {
        double z = AT(d3, u, 479);
        CHECK_NEAR(z, 1.5 / ((479 - cy) / fx), 1e-4);
        CHECK_NEAR((479 - cy) * z / fx, 1.5, 1e-4);
    }
    /* Left wall x = -2.2 from x = 0.2 along the centre row: z = -2.4 / a. */
    CHECK_NEAR(AT(d3, 0, 240), -2.4 / ((0 - cx) / fx), 1e-4);
    /* Ceiling (2.8 m, 1.3 m above the camera) at the top row. */
    CHECK_NEAR(AT(d3, 320, 0), 1.3 / ((cy - 0) / fx), 1e-4);
    /* The ball (centre (-0.7, 0.3, 2.2), r 0.3): solve |o + t d - c| = r for
     * the ray of pixel (149, 467), d = (a, -b, 1) in world axes. */
    {
        double a = (149 - cx) / fx, b = (467 - cy) / fx;
        double dx = a, dy = -b, dz = 1;
        double ox = 0.2 + 0.7, oy = 1.5 - 0.3, oz = -0.5 - 2.2; /* o - c */
        double A = dx * dx + dy * dy + dz * dz, B = ox * dx + oy * dy + oz * dz;
        double C = ox * ox + oy * oy + oz * oz - 0.09;
        double t = (-B - sqrt(B * B - A * C)) / A;
        CHECK_NEAR(AT(d3, 149, 467), t, 1e-4);
    }

    /* Variant 0 pitches 10 degrees down from (0, 1.5, 0). The ray of pixel
     * (u, v) has world direction a*right + b*down + forward, whose vertical
     * component is -(b cos p + sin p): the floor is at z = 1.5 / (b cos p + sin p). */
    double p = 10 * PI / 180;
    for (int u = 40; u <= 600; u += 280) {
        double b = (479 - cy) / fx;
        double z = AT(d0, u, 479);
        CHECK_NEAR(z, 1.5 / (b * cos(p) + sin(p)), 1e-4);
        /* Back-projected camera point (x, y, z): height below the camera is
         * y cos p + z sin p = 1.5. */
        double y = (479 - cy) * z / fx;
        CHECK_NEAR(y * cos(p) + z * sin(p), 1.5, 1e-4);
    }
    /* Back wall through pixel (320, 100): world z of the ray is
     * t (cos p - b sin p) = 5.5. */
    {
        double b = (100 - cy) / fx;
        CHECK_NEAR(AT(d0, 320, 100), 5.5 / (cos(p) - b * sin(p)), 1e-4);
    }
#undef AT
    md_depth_free(&d0);
    md_depth_free(&d3);

    /* The other variants: floor at the bottom-centre pixel, same formula with
     * their own height and pitch (yaw does not change the vertical component). */
    for (int v = 1; v <= 2; v++) {
        md_depth d = {0};
        CHECK_OK(md_render_sample_scene(640, 480, v, NULL, &d, NULL, &err), &err);
        if (!d.data)
            continue;
        double pv = k_pitch[v] * PI / 180, b = (479 - cy) / fx;
        CHECK_NEAR(d.data[479 * 640 + 560], k_pos[v][1] / (b * cos(pv) + sin(pv)), 1e-4);
        md_depth_free(&d);
    }
}

static void test_scene_rgb_and_determinism(void)
{
    md_error err = {0};
    md_image a = {0}, b = {0}, c = {0};
    md_depth da = {0}, db = {0};
    CHECK_OK(md_render_sample_scene(160, 120, 1, &a, &da, NULL, &err), &err);
    CHECK_OK(md_render_sample_scene(160, 120, 1, &b, &db, NULL, &err), &err);
    CHECK_OK(md_render_sample_scene(160, 120, 2, &c, NULL, NULL, &err), &err);
    if (a.pixels && b.pixels && c.pixels && da.data && db.data) {
        CHECK(a.width == 160 && a.height == 120);
        CHECK(memcmp(a.pixels, b.pixels, 160 * 120 * 3) == 0);
        CHECK(memcmp(da.data, db.data, 160 * 120 * sizeof(float)) == 0);
        CHECK(memcmp(a.pixels, c.pixels, 160 * 120 * 3) != 0); /* the pose moved */
        /* An image, not a flat fill: a spread of grey levels and colours. */
        int mn = 255, mx = 0;
        for (size_t i = 0; i < 160 * 120 * 3; i++) {
            mn = a.pixels[i] < mn ? a.pixels[i] : mn;
            mx = a.pixels[i] > mx ? a.pixels[i] : mx;
        }
        CHECK(mx - mn > 150);
    }
    md_image_free(&a);
    md_image_free(&b);
    md_image_free(&c);
    md_depth_free(&da);
    md_depth_free(&db);

    md_image img = {0};
    CHECK(md_render_sample_scene(0, 10, 0, &img, NULL, NULL, &err) == MD_ERR_ARG);
    CHECK(md_render_sample_scene(10, 10, 4, &img, NULL, NULL, &err) == MD_ERR_ARG);
    CHECK(md_render_sample_scene(10, 10, -1, &img, NULL, NULL, &err) == MD_ERR_ARG);
    CHECK(md_render_sample_scene(10, 10, 0, NULL, NULL, NULL, &err) == MD_ERR_ARG);
    CHECK(img.pixels == NULL);
}

int main(void)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/md_test_datasets_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "cannot create a temp folder\n");
        return 1;
    }
    RUN_TEST(test_read_list);
    RUN_TEST(test_malformed_lists);
    RUN_TEST(test_append_copies);
    RUN_TEST(test_write_read_round_trip);
    RUN_TEST(test_detect_built_tree);
    RUN_TEST(test_detect_shared_data);
    RUN_TEST(test_scene_intrinsics_and_range);
    RUN_TEST(test_scene_geometry);
    RUN_TEST(test_scene_rgb_and_determinism);
    remove_tree(g_tmp);
    int rc = check_finish();
    if (rc == 0 && g_shared_missing)
        return 77;
    return rc;
}
