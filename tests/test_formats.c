/* Weight containers from hand-built bytes: safetensors (F32/F16/BF16,
 * corrupt and truncated headers), zip (stored, deflated, truncated), the
 * restricted unpickler (a state dict, forbidden globals, unknown opcodes,
 * out-of-range strides) and a whole .pth, plus the shared reference files. */
#include "check.h"

#include "base/base.h"
#include "formats/weights.h"
#include "writers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ----------------------------------------------------------- safetensors */

static void test_safetensors_ok(void)
{
    uint8_t data[16 + 6 + 4 + 4];
    float f[4] = {1.0f, -2.5f, 3.25f, 1e-3f}, f5 = 7.5f;
    memcpy(data, f, 16);
    uint16_t h[3] = {0x3c00, 0xc000, 0x0001}; /* 1, -2, smallest subnormal */
    memcpy(data + 16, h, 6);
    uint16_t bf[2] = {0x3f80, 0xc140}; /* 1, -12 */
    memcpy(data + 22, bf, 4);
    memcpy(data + 26, &f5, 4);
    buf b = safetensors("{\"__metadata__\":{\"format\":\"pt\",\"n\":[1,{\"x\":null}]},"
                          " \"a.w\" : {\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                          "\"h\":{\"shape\":[3],\"dtype\":\"F16\",\"data_offsets\":[16,22]},"
                          "\"b\\u0041\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[22,26]},"
                          "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[26,30]}}",
                          data, sizeof data);
    md_weights w = {0};
    md_error err = {0};
    CHECK_OK(md_safetensors_parse(b.d, b.n, "mem", &w, &err), &err);
    CHECK(w.count == 4);
    const md_weight *a = md_weights_find(&w, "a.w");
    CHECK(a && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 2 && a->dtype == MD_WDT_F32);
    float out[4] = {0};
    if (a) {
        md_weight_to_f32(a, out);
        CHECK(memcmp(out, f, 16) == 0);
    }
    const md_weight *t = md_weights_find(&w, "h");
    if (t) {
        md_weight_to_f32(t, out);
        CHECK(out[0] == 1.0f && out[1] == -2.0f);
        CHECK_NEAR(out[2], 5.9604645e-8, 1e-14);
    }
    CHECK(t != NULL);
    t = md_weights_find(&w, "bA");
    CHECK(t != NULL);
    if (t) {
        md_weight_to_f32(t, out);
        CHECK(out[0] == 1.0f && out[1] == -12.0f);
    }
    t = md_weights_find(&w, "s");
    CHECK(t && t->ndim == 0 && md_weight_numel(t) == 1);
    if (t) {
        md_weight_to_f32(t, out);
        CHECK(out[0] == 7.5f);
    }
    md_weights_free(&w);
    free(b.d);
}

static void expect_st_fail(const char *header, size_t data_bytes, md_status code,
                           const char *needle)
{
    uint8_t data[64] = {0};
    buf b = safetensors(header, data, data_bytes);
    md_weights w = {0};
    md_error err = {0};
    md_status s = md_safetensors_parse(b.d, b.n, "bad.safetensors", &w, &err);
    CHECK_MSG(s == code && strstr(err.message, needle) && strstr(err.message, "bad.safetensors"),
              "%s -> %d: %s", header, (int)s, err.message);
    md_weights_free(&w);
    free(b.d);
}

static void test_safetensors_bad(void)
{
    /* data offsets past the end (a truncated file) */
    expect_st_fail("{\"x\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
                   MD_ERR_FORMAT, "'x'");
    /* byte count does not match the shape */
    expect_st_fail("{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", 16,
                   MD_ERR_FORMAT, "shape needs 12");
    expect_st_fail("{\"x\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16,
                   MD_ERR_UNSUPPORTED, "I64");
    expect_st_fail("{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
                   MD_ERR_FORMAT, "negative");
    expect_st_fail("{\"x\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, MD_ERR_FORMAT, "data_offsets");
    expect_st_fail("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                   "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                   4, MD_ERR_FORMAT, "twice");
    expect_st_fail("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4,
                   MD_ERR_FORMAT, "header");
    expect_st_fail("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4,
                   MD_ERR_FORMAT, "trailing");
    expect_st_fail("[1]", 0, MD_ERR_FORMAT, "not a JSON object");
    expect_st_fail("{\"x\":{\"dtype\":\"F32\",\"shape\":[1e3],\"data_offsets\":[0,4]}}", 4,
                   MD_ERR_FORMAT, "integer");
    /* header length larger than the file */
    uint8_t tiny[12] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    md_weights w = {0};
    md_error err = {0};
    CHECK(md_safetensors_parse(tiny, sizeof tiny, "t", &w, &err) == MD_ERR_FORMAT);
    CHECK(strstr(err.message, "header length") != NULL);
    md_weights_free(&w);
    CHECK(md_safetensors_parse(tiny, 5, "t", &w, &err) == MD_ERR_FORMAT);
    md_weights_free(&w);

    /* tensors sharing bytes: the format forbids it (both would read the same
     * values, a silently wrong model) */
    expect_st_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   12, MD_ERR_FORMAT, "overlap");
    expect_st_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                   "\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]}}",
                   16, MD_ERR_FORMAT, "'a' and 'b' overlap");
    /* touching and empty tensors are fine */
    uint8_t d16[16] = {0};
    buf ok = safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                         "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]},"
                         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                         d16, 16);
    CHECK_OK(md_safetensors_parse(ok.d, ok.n, "ok", &w, &err), &err);
    md_weights_free(&w);
    free(ok.d);

    /* error positions count from the start of the file: every cut of a
     * header (and a trailing backslash) gives a position inside the file */
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\\\"c\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
    for (size_t cut = 1; cut < strlen(hdr); cut++) {
        char part[256];
        snprintf(part, sizeof part, "%.*s", (int)cut, hdr);
        buf t = safetensors(part, NULL, 0);
        md_status s = md_safetensors_parse(t.d, t.n, "cut", &w, &err);
        const char *at = strstr(err.message, "at byte ");
        long pos = at ? strtol(at + 8, NULL, 10) : 8;
        CHECK_MSG(s == MD_ERR_FORMAT && pos >= 8 && pos <= (long)t.n, "cut %zu -> %d: %s", cut,
                  (int)s, err.message);
        md_weights_free(&w);
        free(t.d);
    }
    buf pos = safetensors("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}  x}",
                          d16, 8);
    CHECK(md_safetensors_parse(pos.d, pos.n, "pos", &w, &err) == MD_ERR_FORMAT);
    /* the stray 'x' is byte 8 + 55 of the file */
    CHECK_MSG(strstr(err.message, "at byte 63") != NULL, "%s", err.message);
    md_weights_free(&w);
    free(pos.d);
}

/* ------------------------------------------------------------------- zip */

/* The writer: F32, F16 (1, -2, 65504, the smallest subnormal, round-to-even
 * 1 + 2^-11 -> 1) and BF16 back through our reader; shapes that would read
 * past the data refused. */
static void test_safetensors_write(void)
{
    char path[] = "/tmp/md_test_st_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return;
    close(fd);
    md_error err = {0};
    const float a[6] = {1, 2, 3, 4, 5, 6.5f};
    const float h[5] = {1.0f, -2.0f, 65504.0f, 5.9604645e-08f, 1.00048828125f};
    const float b[2] = {1.0f, -12.0f};
    md_tensor_out t[3] = {{"a", MD_WDT_F32, 2, {2, 3}, a},
                          {"h", MD_WDT_F16, 1, {5}, h},
                          {"b", MD_WDT_BF16, 1, {2}, b}};
    md_meta_entry meta[] = {{"format", "test"}};
    CHECK_OK(md_safetensors_write(path, t, 3, meta, 1, &err), &err);
    md_weights w = {0};
    CHECK_OK(md_weights_open(path, &w, &err), &err);
    const md_weight *x = md_weights_find(&w, "a");
    float out[6] = {0};
    CHECK(x && x->ndim == 2 && x->shape[0] == 2 && x->shape[1] == 3 && x->dtype == MD_WDT_F32);
    if (x) {
        md_weight_to_f32(x, out);
        CHECK(memcmp(out, a, sizeof a) == 0);
    }
    x = md_weights_find(&w, "h");
    CHECK(x && x->dtype == MD_WDT_F16 && x->shape[0] == 5);
    if (x) {
        md_weight_to_f32(x, out);
        CHECK(out[0] == 1.0f && out[1] == -2.0f && out[2] == 65504.0f &&
              out[3] == 5.9604645e-08f && out[4] == 1.0f);
    }
    x = md_weights_find(&w, "b");
    if (x) {
        md_weight_to_f32(x, out);
        CHECK(x->dtype == MD_WDT_BF16 && out[0] == 1.0f && out[1] == -12.0f);
    }
    md_weights_free(&w);
    /* a negative or absurd dimension: refused, naming the tensor */
    md_tensor_out bad = {"neg", MD_WDT_F32, 2, {-1, 3}, a};
    CHECK(md_safetensors_write(path, &bad, 1, NULL, 0, &err) == MD_ERR_ARG &&
          strstr(err.message, "'neg'"));
    bad.shape[0] = INT64_C(1) << 40;
    bad.shape[1] = 1 << 20;
    CHECK(md_safetensors_write(path, &bad, 1, NULL, 0, &err) == MD_ERR_ARG);
    unlink(path);
}

static void test_zip(void)
{
    uint8_t big[3000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i % 7);
    zip_item items[2] = {{"a/stored", (const uint8_t *)"hello", 5, false},
                         {"a/deflated", big, sizeof big, true}};
    buf b = make_zip(items, 2);
    md_zip z;
    md_error err = {0};
    CHECK_OK(md_zip_open(b.d, b.n, "z.zip", &z, &err), &err);
    CHECK(z.count == 2);
    const md_zip_entry *e = md_zip_find(&z, "a/stored");
    const uint8_t *d;
    uint8_t *owned;
    size_t n;
    CHECK(e != NULL);
    if (e) {
        CHECK_OK(md_zip_read(&z, e, "z.zip", &d, &owned, &n, &err), &err);
        CHECK(n == 5 && memcmp(d, "hello", 5) == 0 && owned == NULL);
    }
    e = md_zip_find(&z, "a/deflated");
    CHECK(e != NULL && e->method == 8);
    if (e) {
        CHECK_OK(md_zip_read(&z, e, "z.zip", &d, &owned, &n, &err), &err);
        CHECK(n == sizeof big && owned && memcmp(d, big, sizeof big) == 0);
        free(owned);
    }
    CHECK(md_zip_find(&z, "nope") == NULL);
    md_zip_close(&z);
    /* truncations: every prefix fails cleanly (no end record) */
    for (size_t cut = 0; cut < b.n; cut += 7) {
        md_status s = md_zip_open(b.d, cut, "z.zip", &z, &err);
        CHECK(s == MD_ERR_FORMAT);
        if (s == MD_OK)
            md_zip_close(&z);
    }
    /* a corrupted deflate stream is refused */
    for (size_t i = 0; i + 4 < b.n; i++) {
        if (memcmp(b.d + i, "PK\x03\x04", 4) == 0 && b.d[i + 8] == 8) {
            size_t data_at = i + 30 + strlen("a/deflated") + 4;
            b.d[data_at] ^= 0xff;
            b.d[data_at + 1] ^= 0x55;
            break;
        }
    }
    CHECK_OK(md_zip_open(b.d, b.n, "z.zip", &z, &err), &err);
    e = md_zip_find(&z, "a/deflated");
    if (e) {
        md_status s = md_zip_read(&z, e, "z.zip", &d, &owned, &n, &err);
        CHECK(s == MD_ERR_FORMAT);
        if (s == MD_OK)
            free(owned);
    }
    md_zip_close(&z);
    free(b.d);
}

/* One stored entry whose sizes and offset live in zip64 extra fields, with a
 * zip64 end-of-central-directory record and locator. */
static void test_zip64(void)
{
    buf b = {0};
    const char *name = "big/data/0";
    put_str(&b, "PK\x03\x04");
    put_u16(&b, 45);
    put_u16(&b, 0);
    put_u16(&b, 0);
    put_u32(&b, 0);
    put_u32(&b, 0);
    put_u32(&b, 0xffffffffu);
    put_u32(&b, 0xffffffffu);
    put_u16(&b, (unsigned)strlen(name));
    put_u16(&b, 20);
    put_str(&b, name);
    put_u16(&b, 1);
    put_u16(&b, 16);
    put_u64(&b, 4);
    put_u64(&b, 4);
    put_str(&b, "abcd");
    uint64_t cd_off = b.n;
    put_str(&b, "PK\x01\x02");
    put_u16(&b, 45);
    put_u16(&b, 45);
    put_u16(&b, 0);
    put_u16(&b, 0);
    put_u32(&b, 0);
    put_u32(&b, 0);
    put_u32(&b, 0xffffffffu);
    put_u32(&b, 0xffffffffu);
    put_u16(&b, (unsigned)strlen(name));
    put_u16(&b, 28);
    put_u16(&b, 0);
    put_u16(&b, 0);
    put_u16(&b, 0);
    put_u32(&b, 0);
    put_u32(&b, 0xffffffffu);
    put_str(&b, name);
    put_u16(&b, 1);
    put_u16(&b, 24);
    put_u64(&b, 4); /* size */
    put_u64(&b, 4); /* compressed size */
    put_u64(&b, 0); /* local header offset */
    uint64_t cd_size = b.n - cd_off, z64 = b.n;
    put_str(&b, "PK\x06\x06");
    put_u64(&b, 44);
    put_u16(&b, 45);
    put_u16(&b, 45);
    put_u32(&b, 0);
    put_u32(&b, 0);
    put_u64(&b, 1);
    put_u64(&b, 1);
    put_u64(&b, cd_size);
    put_u64(&b, cd_off);
    put_str(&b, "PK\x06\x07");
    put_u32(&b, 0);
    put_u64(&b, z64);
    put_u32(&b, 1);
    put_str(&b, "PK\x05\x06");
    put_u16(&b, 0);
    put_u16(&b, 0);
    put_u16(&b, 0xffff);
    put_u16(&b, 0xffff);
    put_u32(&b, 0xffffffffu);
    put_u32(&b, 0xffffffffu);
    put_u16(&b, 0);
    md_zip z;
    md_error err = {0};
    CHECK_OK(md_zip_open(b.d, b.n, "z64.zip", &z, &err), &err);
    const md_zip_entry *e = md_zip_find(&z, name);
    CHECK(e && e->size == 4 && e->comp_size == 4 && e->local_offset == 0);
    if (e) {
        const uint8_t *d;
        uint8_t *owned;
        size_t n;
        CHECK_OK(md_zip_read(&z, e, "z64.zip", &d, &owned, &n, &err), &err);
        CHECK(n == 4 && d && memcmp(d, "abcd", 4) == 0);
        free(owned);
    }
    md_zip_close(&z);
    /* a broken locator is refused */
    b.d[z64 + 1] = 'X';
    CHECK(md_zip_open(b.d, b.n, "z64.zip", &z, &err) == MD_ERR_FORMAT);
    free(b.d);
}

/* ---------------------------------------------------------------- pickle */

static md_status storage_cb(void *ctx, const char *key, const uint8_t **data, size_t *size,
                            md_error *err)
{
    static const float st[6] = {0, 1, 2, 3, 4, 5};
    (void)ctx;
    if (strcmp(key, "0") != 0)
        return md_fail(err, MD_ERR_FORMAT, "no storage %s", key);
    *data = (const uint8_t *)st;
    *size = sizeof st;
    return MD_OK;
}

static void test_pickle(void)
{
    buf b = state_dict_pickle("layer.weight", NULL, 2);
    md_weights w = {0};
    md_error err = {0};
    CHECK_OK(md_pickle_load_state_dict(b.d, b.n, "p.pkl", storage_cb, NULL, &w, &err), &err);
    const md_weight *t = md_weights_find(&w, "layer.weight");
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 2);
    if (t) {
        float out[4];
        md_weight_to_f32(t, out);
        /* [i][j] = storage[1 + i + 2 j] */
        CHECK(out[0] == 1 && out[1] == 3 && out[2] == 2 && out[3] == 4);
    }
    md_weights_free(&w);
    free(b.d);

    /* a stride that leaves the storage */
    b = state_dict_pickle("w", NULL, 5);
    md_status s = md_pickle_load_state_dict(b.d, b.n, "p.pkl", storage_cb, NULL, &w, &err);
    CHECK_MSG(s == MD_ERR_FORMAT && strstr(err.message, "'w'"), "%d %s", (int)s, err.message);
    md_weights_free(&w);
    free(b.d);
    /* stride 0: 46341 x 46340 floats (8.6 GB) read from a 24-byte storage */
    b = state_dict_pickle_shaped("w", NULL, 46341, 46340, 0, 0);
    s = md_pickle_load_state_dict(b.d, b.n, "p.pkl", storage_cb, NULL, &w, &err);
    CHECK_MSG(s == MD_ERR_FORMAT && strstr(err.message, "'w'") && strstr(err.message, "storage"),
              "%d %s", (int)s, err.message);
    md_weights_free(&w);
    free(b.d);
    /* a broadcast view that fits its storage stays fine (4 elements, 24 bytes) */
    b = state_dict_pickle_shaped("w", NULL, 2, 2, 0, 1);
    CHECK_OK(md_pickle_load_state_dict(b.d, b.n, "p.pkl", storage_cb, NULL, &w, &err), &err);
    md_weights_free(&w);
    free(b.d);

    /* forbidden globals are refused by name, before anything else happens */
    const char *bad[] = {"cos\nsystem\n", "cbuiltins\neval\n", "ctorch\nload\n",
                         "ccollections\nOrderedDictX\n"};
    const char *names[] = {"os.system", "builtins.eval", "torch.load",
                           "collections.OrderedDictX"};
    for (int i = 0; i < 4; i++) {
        b = state_dict_pickle("w", bad[i], 2);
        s = md_pickle_load_state_dict(b.d, b.n, "p.pkl", storage_cb, NULL, &w, &err);
        CHECK_MSG(s == MD_ERR_UNSUPPORTED && strstr(err.message, names[i]) &&
                      strstr(err.message, "forbidden global"),
                  "%d %s", (int)s, err.message);
        md_weights_free(&w);
        free(b.d);
    }
    /* STACK_GLOBAL with a forbidden name, an unknown opcode, truncation */
    const uint8_t sg[] = {0x80, 4, 0x8c, 2, 'o', 's', 0x8c, 6, 's', 'y', 's', 't', 'e', 'm', 0x93, '.'};
    s = md_pickle_load_state_dict(sg, sizeof sg, "p.pkl", storage_cb, NULL, &w, &err);
    CHECK(s == MD_ERR_UNSUPPORTED && strstr(err.message, "os.system"));
    md_weights_free(&w);
    const uint8_t inst[] = {0x80, 2, 'i', 'o', 's', '\n', 's', 'y', 's', 't', 'e', 'm', '\n', '.'};
    s = md_pickle_load_state_dict(inst, sizeof inst, "p.pkl", storage_cb, NULL, &w, &err);
    CHECK(s == MD_ERR_UNSUPPORTED && strstr(err.message, "opcode 0x69"));
    md_weights_free(&w);
    b = state_dict_pickle("w", NULL, 2);
    for (size_t cut = 0; cut < b.n; cut++) {
        s = md_pickle_load_state_dict(b.d, cut, "p.pkl", storage_cb, NULL, &w, &err);
        CHECK(s != MD_OK);
        md_weights_free(&w);
    }
    free(b.d);
    /* REDUCE on a storage class, and a non-dict result */
    const uint8_t call_storage[] = {0x80, 2, 'c', 't', 'o', 'r', 'c', 'h', '\n', 'F', 'l', 'o',
                                    'a', 't', 'S', 't', 'o', 'r', 'a', 'g', 'e', '\n', ')', 'R', '.'};
    s = md_pickle_load_state_dict(call_storage, sizeof call_storage, "p.pkl", storage_cb, NULL, &w,
                                  &err);
    CHECK(s == MD_ERR_FORMAT);
    md_weights_free(&w);
    const uint8_t list[] = {0x80, 2, ']', 'K', 1, 'a', '.'};
    s = md_pickle_load_state_dict(list, sizeof list, "p.pkl", storage_cb, NULL, &w, &err);
    CHECK(s == MD_ERR_FORMAT && strstr(err.message, "state dict"));
    md_weights_free(&w);
}

/* Small files that once made the unpickler allocate without bound: one value
 * per opcode (None, then POP: 2^20 values from 2 MB, 31 KB deflated), a list
 * that appends itself (DUP, APPEND), a memo index far out. Each stops at the
 * budget with MD_ERR_NOMEM naming the file, also inside a .pth. */
static void test_pickle_limits(void)
{
    md_weights w = {0};
    md_error err = {0};
    buf b = {0};
    put_str(&b, "\x80\x02");
    for (int i = 0; i < (1 << 21); i++)
        put_str(&b, "N0");
    put_str(&b, "}.");
    md_status s = md_pickle_load_state_dict(b.d, b.n, "bomb.pkl", storage_cb, NULL, &w, &err);
    CHECK_MSG(s == MD_ERR_NOMEM && strstr(err.message, "bomb.pkl"), "%d %s", (int)s, err.message);
    md_weights_free(&w);
    CHECK(md_pickle_load_state_dict(b.d, b.n, "bomb.pkl", storage_cb, NULL, &w, NULL) == s);
    md_weights_free(&w);
    float st[6] = {0};
    zip_item items[2] = {{"archive/data.pkl", b.d, b.n, true},
                         {"archive/data/0", (const uint8_t *)st, sizeof st, false}};
    buf z = make_zip(items, 2);
    CHECK(z.n < 64 * 1024);
    s = md_pth_parse(z.d, z.n, "bomb.pth", &w, &err);
    CHECK_MSG(s == MD_ERR_NOMEM && strstr(err.message, "bomb.pth"), "%d %s", (int)s, err.message);
    md_weights_free(&w);
    free(z.d);
    free(b.d);

    memset(&b, 0, sizeof b);
    put_str(&b, "\x80\x02]");
    for (int i = 0; i < (1 << 23); i++)
        put_str(&b, "2a");
    put_str(&b, ".");
    s = md_pickle_load_state_dict(b.d, b.n, "list.pkl", storage_cb, NULL, &w, &err);
    CHECK_MSG(s == MD_ERR_NOMEM && strstr(err.message, "list.pkl"), "%d %s", (int)s, err.message);
    md_weights_free(&w);
    free(b.d);

    const uint8_t memo[] = {0x80, 2, 'N', 'r', 0xff, 0xff, 0xff, 0x00, '.'};
    s = md_pickle_load_state_dict(memo, sizeof memo, "memo.pkl", storage_cb, NULL, &w, &err);
    CHECK_MSG(s == MD_ERR_FORMAT && strstr(err.message, "memo"), "%d %s", (int)s, err.message);
    md_weights_free(&w);
}

static void test_pth(void)
{
    buf pk = state_dict_pickle("enc.w", NULL, 2);
    float st[6] = {10, 11, 12, 13, 14, 15};
    zip_item items[4] = {{"archive/data.pkl", pk.d, pk.n, false},
                         {"archive/byteorder", (const uint8_t *)"little", 6, false},
                         {"archive/data/0", (const uint8_t *)st, sizeof st, true},
                         {"archive/version", (const uint8_t *)"3\n", 2, false}};
    buf z = make_zip(items, 4);
    md_weights w = {0};
    md_error err = {0};
    CHECK_OK(md_pth_parse(z.d, z.n, "m.pth", &w, &err), &err);
    const md_weight *t = md_weights_find(&w, "enc.w");
    CHECK(t != NULL);
    if (t) {
        float out[4];
        md_weight_to_f32(t, out);
        CHECK(out[0] == 11 && out[1] == 13 && out[2] == 12 && out[3] == 14);
    }
    md_weights_free(&w);

    /* the same file through md_weights_open */
    char path[] = "/tmp/md_formats_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK(write(fd, z.d, z.n) == (ssize_t)z.n);
        close(fd);
        CHECK_OK(md_weights_open(path, &w, &err), &err);
        CHECK(md_weights_find(&w, "enc.w") != NULL);
        md_weights_free(&w);
        /* truncated */
        CHECK(truncate(path, (off_t)(z.n - 10)) == 0);
        CHECK(md_weights_open(path, &w, &err) == MD_ERR_FORMAT);
        unlink(path);
    }
    CHECK(md_weights_open("/nonexistent/x.pth", &w, &err) == MD_ERR_IO);
    free(z.d);

    /* storage entry missing */
    zip_item no_data[1] = {{"archive/data.pkl", pk.d, pk.n, false}};
    z = make_zip(no_data, 1);
    md_status s = md_pth_parse(z.d, z.n, "m.pth", &w, &err);
    CHECK(s == MD_ERR_FORMAT && strstr(err.message, "archive/data/0"));
    md_weights_free(&w);
    free(z.d);
    /* storage shorter than the pickle claims */
    zip_item short_data[2] = {{"archive/data.pkl", pk.d, pk.n, false},
                              {"archive/data/0", (const uint8_t *)st, 8, false}};
    z = make_zip(short_data, 2);
    s = md_pth_parse(z.d, z.n, "m.pth", &w, &err);
    CHECK(s == MD_ERR_FORMAT);
    md_weights_free(&w);
    free(z.d);
    free(pk.d);
}

static void test_reference_files(void)
{
    char st_path[1024], pth_path[1024];
    snprintf(st_path, sizeof st_path, "%s/reference/da2/tiny/model.safetensors", check_shared_dir());
    snprintf(pth_path, sizeof pth_path, "%s/reference/da2/tiny/model.pth", check_shared_dir());
    if (access(st_path, R_OK) != 0) {
        fprintf(stderr, "  (shared data absent: reference files skipped)\n");
        return;
    }
    md_weights a = {0}, b = {0};
    md_error err = {0};
    CHECK_OK(md_weights_open(st_path, &a, &err), &err);
    CHECK_OK(md_weights_open(pth_path, &b, &err), &err);
    CHECK(a.count == 239 && b.count == 239);
    /* the two files hold the same tensors */
    size_t same = 0;
    for (size_t i = 0; i < a.count; i++) {
        const md_weight *x = &a.items[i], *y = md_weights_find(&b, x->name);
        if (!y || y->ndim != x->ndim || md_weight_numel(x) != md_weight_numel(y))
            continue;
        size_t n = (size_t)md_weight_numel(x);
        float *fx = malloc(n * 4 + 4), *fy = malloc(n * 4 + 4);
        md_weight_to_f32(x, fx);
        md_weight_to_f32(y, fy);
        same += memcmp(fx, fy, n * 4) == 0;
        free(fx);
        free(fy);
    }
    CHECK(same == a.count);
    const md_weight *pe = md_weights_find(&a, "pretrained.pos_embed");
    CHECK(pe && pe->ndim == 3 && pe->shape[1] == 1370 && pe->shape[2] == 128);
    md_weights_free(&a);
    md_weights_free(&b);
}

int main(void)
{
    RUN_TEST(test_safetensors_ok);
    RUN_TEST(test_safetensors_bad);
    RUN_TEST(test_safetensors_write);
    RUN_TEST(test_zip);
    RUN_TEST(test_zip64);
    RUN_TEST(test_pickle);
    RUN_TEST(test_pickle_limits);
    RUN_TEST(test_pth);
    RUN_TEST(test_reference_files);
    return check_finish();
}
