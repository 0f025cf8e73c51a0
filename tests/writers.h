/* Hand-encoders for the model files the tests (and the fuzz seed generator,
 * fuzz/make_seeds.c) write themselves: protobuf / ONNX one-node graphs,
 * safetensors, zip archives and the pickle of a torch state dict. Written
 * from the published formats (onnx.proto field numbers, the safetensors
 * layout, PKWARE's APPNOTE, the pickle opcodes), never from files made by
 * other tools. */
#ifndef MD_TESTS_WRITERS_H
#define MD_TESTS_WRITERS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define MDW_FN static __attribute__((unused))

/* --------------------------------------------------------- byte buffers */

typedef struct {
    uint8_t *d;
    size_t n, cap;
} buf;

MDW_FN void put(buf *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->d = realloc(b->d, b->cap);
        if (!b->d)
            abort();
    }
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

MDW_FN void put_str(buf *b, const char *s) { put(b, s, strlen(s)); }

MDW_FN void put_u8(buf *b, unsigned v)
{
    uint8_t x = (uint8_t)v;
    put(b, &x, 1);
}

MDW_FN void put_u16(buf *b, unsigned v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(b, x, 2);
}

MDW_FN void put_u32(buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(b, x, 4);
}

MDW_FN void put_u64(buf *b, uint64_t v)
{
    put_u32(b, (uint32_t)v);
    put_u32(b, (uint32_t)(v >> 32));
}

MDW_FN bool write_file(const char *path, const uint8_t *d, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return false;
    bool ok = fwrite(d, 1, n, fp) == n;
    return fclose(fp) == 0 && ok;
}

/* ------------------------------------------------------------ protobuf */

MDW_FN void varint(buf *b, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        put(b, &c, 1);
    } while (v);
}

MDW_FN void key(buf *b, int field, int wire) { varint(b, (uint64_t)field << 3 | (uint64_t)wire); }
MDW_FN void f_int(buf *b, int field, int64_t v)
{
    key(b, field, 0);
    varint(b, (uint64_t)v);
}
MDW_FN void f_bytes(buf *b, int field, const void *p, size_t n)
{
    key(b, field, 2);
    varint(b, n);
    put(b, p, n);
}
MDW_FN void f_str(buf *b, int field, const char *s) { f_bytes(b, field, s, strlen(s)); }
MDW_FN void f_msg(buf *b, int field, buf *sub)
{
    f_bytes(b, field, sub->d, sub->n);
    free(sub->d);
    memset(sub, 0, sizeof *sub);
}
MDW_FN void f_float(buf *b, int field, float f)
{
    key(b, field, 5);
    put(b, &f, 4); /* little-endian host */
}

/* ---------------------------------------------------------------- ONNX */

/* AttributeProto: name, then the value fields, then its type (20). */
MDW_FN buf attr_begin(const char *name)
{
    buf a = {0};
    f_str(&a, 1, name);
    return a;
}

MDW_FN void attr_end(buf *node, buf *a, int type)
{
    f_int(a, 20, type);
    f_msg(node, 5, a);
}

MDW_FN void attr_ints(buf *node, const char *name, const int64_t *v, int n)
{
    buf a = attr_begin(name);
    for (int i = 0; i < n; i++)
        f_int(&a, 8, v[i]);
    attr_end(node, &a, 7);
}

MDW_FN void a_int(buf *node, const char *name, int64_t v)
{
    buf a = attr_begin(name);
    f_int(&a, 3, v);
    attr_end(node, &a, 2);
}

MDW_FN void a_float(buf *node, const char *name, float v)
{
    buf a = attr_begin(name);
    f_float(&a, 2, v);
    attr_end(node, &a, 1);
}

MDW_FN void a_str(buf *node, const char *name, const char *v)
{
    buf a = attr_begin(name);
    f_str(&a, 4, v);
    attr_end(node, &a, 3);
}

MDW_FN void a_floats(buf *node, const char *name, const float *v, int n)
{
    buf a = attr_begin(name);
    f_bytes(&a, 7, v, sizeof(float) * (size_t)n); /* packed */
    attr_end(node, &a, 6);
}

/* ValueInfoProto for a float tensor. */
MDW_FN void value_info(buf *g, int field, const char *name, const int64_t *dims, int nd)
{
    buf vi = {0}, tp = {0}, tt = {0}, shp = {0};
    for (int i = 0; i < nd; i++) {
        buf dim = {0};
        f_int(&dim, 1, dims[i]);
        f_msg(&shp, 1, &dim);
    }
    f_int(&tt, 1, 1);
    f_msg(&tt, 2, &shp);
    f_msg(&tp, 1, &tt);
    f_str(&vi, 1, name);
    f_msg(&vi, 2, &tp);
    f_msg(g, field, &vi);
}

/* An initializer: float data (f) or int64 data (i64). */
typedef struct {
    const char *name;
    int nd;
    int64_t dims[4];
    const float *f;     /* float data, or */
    const int64_t *i64; /* int64 data */
} tinit;

MDW_FN size_t dims_numel(int nd, const int64_t *d)
{
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)d[i];
    return n;
}

static int seed_counter;

/* A node op(inputs) -> output; attrs holds encoded attribute fields (taken). */
typedef struct {
    const char *op;
    const char *const *inputs;
    int n_in;
    const char *output;
    buf *attrs;
} tnode;

/* Model of nodes in order, the last one's output "Y"; graph input "X" of
 * xdims. With $MD_ONNX_SEED_DIR set, each model is also written there
 * (fuzzing seeds, named after the last node's op). */
MDW_FN buf graph_model(int64_t opset, const tnode *nodes, int n_nodes, const tinit *inits,
                       int n_inits, const int64_t *xdims, int xnd)
{
    buf m = {0}, g = {0}, ops = {0};
    f_int(&m, 1, 7);
    for (int k = 0; k < n_nodes; k++) {
        buf node = {0};
        for (int i = 0; i < nodes[k].n_in; i++)
            f_str(&node, 1, nodes[k].inputs[i]);
        f_str(&node, 2, nodes[k].output);
        f_str(&node, 4, nodes[k].op);
        buf *at = nodes[k].attrs;
        if (at && at->n) {
            put(&node, at->d, at->n);
            free(at->d);
            memset(at, 0, sizeof *at);
        }
        f_msg(&g, 1, &node);
    }
    for (int k = 0; k < n_inits; k++) {
        buf t = {0}, packed = {0};
        for (int d = 0; d < inits[k].nd; d++)
            varint(&packed, (uint64_t)inits[k].dims[d]);
        if (packed.n)
            f_bytes(&t, 1, packed.d, packed.n);
        free(packed.d);
        size_t n = dims_numel(inits[k].nd, inits[k].dims);
        if (inits[k].f) {
            f_int(&t, 2, 1);
            for (size_t i = 0; i < n; i++) /* unpacked float_data */
                f_float(&t, 4, inits[k].f[i]);
        } else {
            f_int(&t, 2, 7);
            buf pi = {0};
            for (size_t i = 0; i < n; i++)
                varint(&pi, (uint64_t)inits[k].i64[i]);
            f_bytes(&t, 7, pi.d, pi.n);
            free(pi.d);
        }
        f_str(&t, 8, inits[k].name);
        f_msg(&g, 5, &t);
    }
    value_info(&g, 11, "X", xdims, xnd);
    value_info(&g, 12, "Y", NULL, 0);
    f_msg(&m, 7, &g);
    f_str(&ops, 1, "");
    f_int(&ops, 2, opset);
    f_msg(&m, 8, &ops);
    const char *dir = getenv("MD_ONNX_SEED_DIR"); /* fuzz seeds */
    if (dir) {
        char path[512];
        snprintf(path, sizeof path, "%s/seed-%02d-%s.onnx", dir, seed_counter++,
                 nodes[n_nodes - 1].op);
        write_file(path, m.d, m.n);
    }
    return m;
}

/* Model with one node op(inputs) -> "Y". */
MDW_FN buf one_node(int64_t opset, const char *op, const char *const *inputs, int n_in,
                    buf *node_attrs, const tinit *inits, int n_inits, const int64_t *xdims,
                    int xnd)
{
    tnode n = {op, inputs, n_in, "Y", node_attrs};
    return graph_model(opset, &n, 1, inits, n_inits, xdims, xnd);
}

/* --------------------------------------------------------- safetensors */

/* 8-byte little-endian header length, the JSON header, then the data. */
MDW_FN buf safetensors(const char *header, const void *data, size_t n)
{
    buf b = {0};
    put_u64(&b, strlen(header));
    put_str(&b, header);
    put(&b, data, n);
    return b;
}

/* ----------------------------------------------------------------- zip */

typedef struct {
    const char *name;
    const uint8_t *data;
    size_t size;
    bool deflate;
} zip_item;

MDW_FN buf make_zip(const zip_item *items, int n)
{
    buf b = {0}, cd = {0};
    for (int i = 0; i < n; i++) {
        uint8_t *payload = (uint8_t *)items[i].data;
        size_t psize = items[i].size;
        uint8_t *comp = NULL;
        if (items[i].deflate) {
            z_stream zs;
            memset(&zs, 0, sizeof zs);
            deflateInit2(&zs, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
            comp = malloc(psize + psize / 100 + 128);
            zs.next_in = payload;
            zs.avail_in = (uInt)psize;
            zs.next_out = comp;
            zs.avail_out = (uInt)(psize + psize / 100 + 128);
            deflate(&zs, Z_FINISH);
            psize = zs.total_out;
            deflateEnd(&zs);
            payload = comp;
        }
        uint32_t off = (uint32_t)b.n;
        uint32_t crc = (uint32_t)crc32(0, items[i].data, (uInt)items[i].size);
        put_str(&b, "PK\x03\x04");
        put_u16(&b, 20);
        put_u16(&b, 0);
        put_u16(&b, items[i].deflate ? 8 : 0);
        put_u32(&b, 0);
        put_u32(&b, crc);
        put_u32(&b, (uint32_t)psize);
        put_u32(&b, (uint32_t)items[i].size);
        put_u16(&b, (unsigned)strlen(items[i].name));
        put_u16(&b, 4); /* an extra field, as torch's alignment padding */
        put_str(&b, items[i].name);
        put(&b, "FB\0\0", 4);
        put(&b, payload, psize);
        put_str(&cd, "PK\x01\x02");
        put_u16(&cd, 20);
        put_u16(&cd, 20);
        put_u16(&cd, 0);
        put_u16(&cd, items[i].deflate ? 8 : 0);
        put_u32(&cd, 0);
        put_u32(&cd, crc);
        put_u32(&cd, (uint32_t)psize);
        put_u32(&cd, (uint32_t)items[i].size);
        put_u16(&cd, (unsigned)strlen(items[i].name));
        put_u16(&cd, 0);
        put_u16(&cd, 0);
        put_u16(&cd, 0);
        put_u16(&cd, 0);
        put_u32(&cd, 0);
        put_u32(&cd, off);
        put_str(&cd, items[i].name);
        free(comp);
    }
    uint32_t cd_off = (uint32_t)b.n;
    put(&b, cd.d, cd.n);
    put_str(&b, "PK\x05\x06");
    put_u16(&b, 0);
    put_u16(&b, 0);
    put_u16(&b, (unsigned)n);
    put_u16(&b, (unsigned)n);
    put_u32(&b, (uint32_t)cd.n);
    put_u32(&b, cd_off);
    put_u16(&b, 0);
    free(cd.d);
    return b;
}

/* -------------------------------------------------------------- pickle */

MDW_FN void put_unicode(buf *b, const char *s)
{
    put_u8(b, 'X');
    put_u32(b, (uint32_t)strlen(s));
    put_str(b, s);
}

/* A pickle int: BININT1 below 256, else BININT (4 bytes). */
MDW_FN void put_pickle_int(buf *b, uint32_t v)
{
    if (v < 256) {
        put_u8(b, 'K');
        put_u8(b, v);
    } else {
        put_u8(b, 'J');
        put_u32(b, v);
    }
}

/* OrderedDict with one tensor `name`: storage "0" (float, 6 elements),
 * offset 1, size [d0, d1], stride [s0, s1]. bad_global replaces the
 * _rebuild_tensor_v2 GLOBAL opcode when given. */
MDW_FN buf state_dict_pickle_shaped(const char *name, const char *bad_global, uint32_t d0,
                                    uint32_t d1, uint32_t s0, uint32_t s1)
{
    buf b = {0};
    put_u8(&b, 0x80);
    put_u8(&b, 2);
    put_str(&b, "ccollections\nOrderedDict\n");
    put(&b, "q\x00)R", 4); /* BINPUT 0, EMPTY_TUPLE, REDUCE */
    put_u8(&b, 'q');
    put_u8(&b, 1);
    put_u8(&b, '(');
    put_unicode(&b, name);
    put_str(&b, bad_global ? bad_global : "ctorch._utils\n_rebuild_tensor_v2\n");
    put_u8(&b, 'r');
    put_u32(&b, 70000); /* LONG_BINPUT */
    put_u8(&b, '(');
    put_u8(&b, '(');
    put_unicode(&b, "storage");
    put_str(&b, "ctorch\nFloatStorage\n");
    put_unicode(&b, "0");
    put_unicode(&b, "cpu");
    put_str(&b, "K\x06t");
    put_u8(&b, 'Q');      /* BINPERSID */
    put_str(&b, "K\x01"); /* offset */
    put_pickle_int(&b, d0);
    put_pickle_int(&b, d1);
    put_u8(&b, 0x86); /* size */
    put_pickle_int(&b, s0);
    put_pickle_int(&b, s1);
    put_u8(&b, 0x86); /* stride */
    put_u8(&b, 0x89); /* NEWFALSE */
    put(&b, "h\x00)R", 4); /* BINGET 0: OrderedDict, (), REDUCE */
    put_str(&b, "tR");
    put_str(&b, "u"); /* SETITEMS */
    put_str(&b, "}b"); /* BUILD with an empty state */
    put_u8(&b, '.');
    return b;
}

/* The same with size [2, 2] and stride [1, stride1]. */
MDW_FN buf state_dict_pickle(const char *name, const char *bad_global, int stride1)
{
    return state_dict_pickle_shaped(name, bad_global, 2, 2, 1, (uint32_t)stride1);
}

/* A torch.save archive around a pickle and one float storage "0". */
MDW_FN buf make_pth(const buf *pickle, const float *storage, size_t n_floats)
{
    zip_item items[4] = {{"archive/data.pkl", pickle->d, pickle->n, false},
                         {"archive/byteorder", (const uint8_t *)"little", 6, false},
                         {"archive/data/0", (const uint8_t *)storage, n_floats * sizeof(float),
                          false},
                         {"archive/version", (const uint8_t *)"3\n", 2, false}};
    return make_zip(items, 4);
}

#endif
