/* ONNX protobuf reader. Wire format (protobuf encoding spec): each field is a
 * varint tag (field_number << 3 | wire_type) followed by a varint (type 0), 8
 * bytes (type 1), a varint length and that many bytes (type 2) or 4 bytes
 * (type 5). Groups (types 3, 4) are obsolete and rejected. Field numbers are
 * those of onnx.proto (ModelProto, GraphProto, NodeProto, AttributeProto,
 * TensorProto, ValueInfoProto, TypeProto, TensorShapeProto). */
#include "formats/onnx.h"
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

#define PB_VARINT 0
#define PB_I64 1
#define PB_LEN 2
#define PB_I32 5
/* Messages nest at most ModelProto > GraphProto > NodeProto > AttributeProto >
 * TensorProto (+ ValueInfo > TypeProto > Tensor > Shape > Dimension); the limit
 * keeps a hostile file from recursing (we never descend into sub-graphs). */
#define PB_MAX_DEPTH 16

typedef struct {
    const uint8_t *p, *end;
    const uint8_t *base; /* start of the whole file, for offsets in messages */
    int depth;
} pb_reader;

typedef struct {
    const char *path;
    md_error *err;
    md_status st;
} pb_ctx;

bool md_pb_read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    const uint8_t *q = *p;
    for (int i = 0; i < 10; i++) {
        if (q >= end)
            return false;
        uint8_t b = *q++;
        if (i == 9 && b > 1) /* the 10th byte carries only bit 63 */
            return false;
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *p = q;
            *out = v;
            return true;
        }
    }
    return false;
}

static md_status pb_bad(pb_ctx *c, const pb_reader *r, const char *what)
{
    c->st = md_fail(c->err, MD_ERR_FORMAT, "%s: corrupt ONNX protobuf at byte %zu: %s", c->path,
                    (size_t)(r->p - r->base), what);
    return c->st;
}

static bool pb_tag(pb_reader *r, uint32_t *field, int *wire)
{
    uint64_t t;
    if (!md_pb_read_varint(&r->p, r->end, &t))
        return false;
    if ((t >> 3) == 0 || (t >> 3) > 0x1fffffff)
        return false;
    *field = (uint32_t)(t >> 3);
    *wire = (int)(t & 7);
    return true;
}

/* Length-delimited payload as a sub-reader. */
static bool pb_len(pb_reader *r, pb_reader *sub)
{
    uint64_t n;
    if (!md_pb_read_varint(&r->p, r->end, &n))
        return false;
    if (n > (uint64_t)(r->end - r->p))
        return false;
    sub->p = r->p;
    sub->end = r->p + n;
    sub->base = r->base;
    sub->depth = r->depth + 1;
    r->p += n;
    return sub->depth <= PB_MAX_DEPTH;
}

static bool pb_skip(pb_reader *r, int wire)
{
    uint64_t v;
    pb_reader sub;
    switch (wire) {
    case PB_VARINT: return md_pb_read_varint(&r->p, r->end, &v);
    case PB_I64:
        if (r->end - r->p < 8)
            return false;
        r->p += 8;
        return true;
    case PB_LEN: return pb_len(r, &sub);
    case PB_I32:
        if (r->end - r->p < 4)
            return false;
        r->p += 4;
        return true;
    default: return false;
    }
}

static uint32_t rd_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd_u64(const uint8_t *p)
{
    return (uint64_t)rd_u32(p) | (uint64_t)rd_u32(p + 4) << 32;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double bits_f64(uint64_t u)
{
    double d;
    memcpy(&d, &u, 8);
    return d;
}

/* Copies bytes as a NUL-terminated string (replacing any old value). */
static md_status pb_string(pb_ctx *c, pb_reader *r, int wire, char **dst, size_t *len_out)
{
    pb_reader sub;
    if (wire != PB_LEN || !pb_len(r, &sub))
        return pb_bad(c, r, "bad string field");
    size_t n = (size_t)(sub.end - sub.p);
    char *s = md_malloc(n + 1, "ONNX string", c->err);
    if (!s)
        return c->st = MD_ERR_NOMEM;
    memcpy(s, sub.p, n);
    s[n] = 0;
    free(*dst);
    *dst = s;
    if (len_out)
        *len_out = n;
    return MD_OK;
}

static md_status pb_int(pb_ctx *c, pb_reader *r, int wire, int64_t *dst)
{
    uint64_t v;
    if (wire != PB_VARINT || !md_pb_read_varint(&r->p, r->end, &v))
        return pb_bad(c, r, "bad integer field");
    *dst = (int64_t)v;
    return MD_OK;
}

/* Growable array append: *arr holds *n items of size sz. */
static void *grow(pb_ctx *c, void **arr, size_t *n, size_t *cap, size_t sz)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 8;
        size_t bytes;
        if (!md_mul_size(nc, sz, &bytes)) {
            c->st = md_fail(c->err, MD_ERR_NOMEM, "%s: too many ONNX items", c->path);
            return NULL;
        }
        void *na = realloc(*arr, bytes);
        if (!na) {
            c->st = md_fail(c->err, MD_ERR_NOMEM, "%s: out of memory reading ONNX", c->path);
            return NULL;
        }
        *arr = na;
        *cap = nc;
    }
    void *item = (char *)*arr + *n * sz;
    memset(item, 0, sz);
    (*n)++;
    return item;
}

/* Repeated int64 (packed or one per tag). */
static md_status pb_ints(pb_ctx *c, pb_reader *r, int wire, int64_t **arr, size_t *n,
                         size_t *cap)
{
    if (wire == PB_VARINT) {
        int64_t v = 0;
        if (pb_int(c, r, wire, &v))
            return c->st;
        int64_t *slot = grow(c, (void **)arr, n, cap, sizeof **arr);
        if (!slot)
            return c->st;
        *slot = v;
        return MD_OK;
    }
    pb_reader sub;
    if (wire != PB_LEN || !pb_len(r, &sub))
        return pb_bad(c, r, "bad repeated integer field");
    while (sub.p < sub.end) {
        uint64_t v;
        if (!md_pb_read_varint(&sub.p, sub.end, &v))
            return pb_bad(c, &sub, "bad packed varint");
        int64_t *slot = grow(c, (void **)arr, n, cap, sizeof **arr);
        if (!slot)
            return c->st;
        *slot = (int64_t)v;
    }
    return MD_OK;
}

/* Repeated float (fixed32, packed or not) or double (fixed64) into floats. */
static md_status pb_reals(pb_ctx *c, pb_reader *r, int wire, int width, float **arr, size_t *n,
                          size_t *cap)
{
    int single = width == 4 ? PB_I32 : PB_I64;
    pb_reader sub;
    if (wire == single) {
        sub.p = r->p;
        sub.end = r->end - r->p >= width ? r->p + width : r->end;
        sub.base = r->base;
        if (sub.end - sub.p < width)
            return pb_bad(c, r, "truncated number");
        r->p += width;
    } else if (wire != PB_LEN || !pb_len(r, &sub)) {
        return pb_bad(c, r, "bad repeated real field");
    }
    if ((size_t)(sub.end - sub.p) % (size_t)width)
        return pb_bad(c, r, "packed real field length not a multiple of its width");
    size_t count = (size_t)(sub.end - sub.p) / (size_t)width;
    if (*n + count > *cap) {
        size_t nc = *n + count, bytes;
        if (!md_mul_size(nc, sizeof(float), &bytes))
            return c->st = md_fail(c->err, MD_ERR_NOMEM, "%s: too many values", c->path);
        float *na = realloc(*arr, bytes ? bytes : 1);
        if (!na)
            return c->st = md_fail(c->err, MD_ERR_NOMEM, "%s: out of memory", c->path);
        *arr = na;
        *cap = nc;
    }
    for (size_t i = 0; i < count; i++, sub.p += width)
        (*arr)[(*n)++] = width == 4 ? bits_f32(rd_u32(sub.p)) : (float)bits_f64(rd_u64(sub.p));
    return MD_OK;
}

const char *md_onnx_dtype_name(int t, char *buf, size_t size)
{
    static const char *const names[] = {"UNDEFINED", "FLOAT",  "UINT8",  "INT8",   "UINT16",
                                        "INT16",     "INT32",  "INT64",  "STRING", "BOOL",
                                        "FLOAT16",   "DOUBLE", "UINT32", "UINT64", "COMPLEX64",
                                        "COMPLEX128", "BFLOAT16"};
    if (t >= 0 && t < (int)(sizeof names / sizeof names[0]))
        return names[t];
    snprintf(buf, size, "type %d", t);
    return buf;
}

static void tensor_free(md_onnx_tensor *t)
{
    if (!t)
        return;
    free(t->name);
    free(t->f32);
    free(t->i64);
    memset(t, 0, sizeof *t);
}

static md_status parse_tensor(pb_ctx *c, pb_reader *r, md_onnx_tensor *t)
{
    int64_t *dims = NULL, *ints = NULL;
    size_t n_dims = 0, cap_dims = 0, n_ints = 0, cap_ints = 0;
    float *reals = NULL;
    size_t n_reals = 0, cap_reals = 0;
    pb_reader raw = {0};
    bool has_raw = false, external = false;
    int64_t dtype = 0;
    int real_width = 0; /* which repeated real field was used */
    while (r->p < r->end && c->st == MD_OK) {
        uint32_t f;
        int w;
        if (!pb_tag(r, &f, &w)) {
            pb_bad(c, r, "bad tag in TensorProto");
            break;
        }
        switch (f) {
        case 1: pb_ints(c, r, w, &dims, &n_dims, &cap_dims); break;
        case 2: pb_int(c, r, w, &dtype); break;
        case 4:
        case 10: /* float_data / double_data */
            if (real_width && real_width != (f == 4 ? 4 : 8)) {
                pb_bad(c, r, "both float_data and double_data");
                break;
            }
            real_width = f == 4 ? 4 : 8;
            pb_reals(c, r, w, real_width, &reals, &n_reals, &cap_reals);
            break;
        case 5:
        case 7: /* int32_data (varint) / int64_data */
            pb_ints(c, r, w, &ints, &n_ints, &cap_ints);
            break;
        case 8: pb_string(c, r, w, &t->name, NULL); break;
        case 9:
            if (w != PB_LEN || !pb_len(r, &raw))
                pb_bad(c, r, "bad raw_data");
            has_raw = true;
            break;
        case 13: /* external_data: note it, then skip the entry */
            external = true;
            /* fall through */
        default:
            if (!pb_skip(r, w))
                pb_bad(c, r, "bad field in TensorProto");
        }
    }
    const char *nm = t->name ? t->name : "(unnamed)";
    char tb[32];
    if (c->st == MD_OK && external)
        c->st = md_fail(c->err, MD_ERR_UNSUPPORTED,
                        "%s: tensor '%s' keeps its data in an external file (unsupported)",
                        c->path, nm);
    if (c->st == MD_OK && n_dims > MD_ONNX_MAX_DIMS)
        c->st = md_fail(c->err, MD_ERR_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions (max %d)",
                        c->path, nm, n_dims, MD_ONNX_MAX_DIMS);
    size_t numel = 1;
    for (size_t i = 0; c->st == MD_OK && i < n_dims; i++) {
        if (dims[i] < 0 || dims[i] > (int64_t)MD_MAX_ELEMENTS ||
            !md_mul_size(numel, (size_t)dims[i], &numel) || numel > MD_MAX_ELEMENTS)
            c->st = md_fail(c->err, MD_ERR_FORMAT, "%s: tensor '%s' has a bad shape", c->path, nm);
        else
            t->dims[i] = dims[i];
    }
    t->ndim = (int)n_dims;
    t->numel = numel;
    t->data_type = (int)dtype;
    bool is_real = dtype == MD_ONNX_FLOAT || dtype == MD_ONNX_DOUBLE;
    bool is_int = dtype == MD_ONNX_INT64 || dtype == MD_ONNX_INT32;
    if (c->st == MD_OK && !is_real && !is_int)
        c->st = md_fail(c->err, MD_ERR_UNSUPPORTED,
                        "%s: tensor '%s' has data type %s (supported: FLOAT, DOUBLE, INT32, INT64)",
                        c->path, nm, md_onnx_dtype_name((int)dtype, tb, sizeof tb));
    size_t esize = dtype == MD_ONNX_FLOAT || dtype == MD_ONNX_INT32 ? 4 : 8;
    if (c->st == MD_OK) {
        if (has_raw) {
            size_t want;
            if (!md_mul_size(numel, esize, &want) || want != (size_t)(raw.end - raw.p))
                c->st = md_fail(c->err, MD_ERR_FORMAT,
                                "%s: tensor '%s': raw_data holds %zu bytes, shape needs %zu x %zu",
                                c->path, nm, (size_t)(raw.end - raw.p), numel, esize);
        } else {
            size_t have = is_real ? n_reals : n_ints;
            if (is_real && real_width && real_width != (int)esize)
                c->st = md_fail(c->err, MD_ERR_FORMAT, "%s: tensor '%s': data field mismatch",
                                c->path, nm);
            else if (have != numel)
                c->st = md_fail(c->err, MD_ERR_FORMAT,
                                "%s: tensor '%s' holds %zu values, its shape needs %zu", c->path,
                                nm, have, numel);
        }
    }
    if (c->st == MD_OK) {
        if (is_real) {
            t->f32 = md_malloc(numel * sizeof(float), "ONNX tensor", c->err);
            if (!t->f32)
                c->st = MD_ERR_NOMEM;
            for (size_t i = 0; t->f32 && i < numel; i++) {
                if (has_raw)
                    t->f32[i] = esize == 4 ? bits_f32(rd_u32(raw.p + 4 * i))
                                           : (float)bits_f64(rd_u64(raw.p + 8 * i));
                else
                    t->f32[i] = reals[i];
            }
        } else {
            t->i64 = md_malloc(numel * sizeof(int64_t), "ONNX tensor", c->err);
            if (!t->i64)
                c->st = MD_ERR_NOMEM;
            for (size_t i = 0; t->i64 && i < numel; i++) {
                if (has_raw)
                    t->i64[i] = esize == 4 ? (int64_t)(int32_t)rd_u32(raw.p + 4 * i)
                                           : (int64_t)rd_u64(raw.p + 8 * i);
                else
                    t->i64[i] = esize == 4 ? (int64_t)(int32_t)ints[i] : ints[i];
            }
        }
    }
    free(dims);
    free(ints);
    free(reals);
    return c->st;
}

static md_status parse_attr(pb_ctx *c, pb_reader *r, md_onnx_attr *a)
{
    size_t cap_f = 0, cap_i = 0;
    int64_t type = 0;
    while (r->p < r->end && c->st == MD_OK) {
        uint32_t f;
        int w;
        pb_reader sub;
        if (!pb_tag(r, &f, &w)) {
            pb_bad(c, r, "bad tag in AttributeProto");
            break;
        }
        switch (f) {
        case 1: pb_string(c, r, w, &a->name, NULL); break;
        case 20: pb_int(c, r, w, &type); break;
        case 2:
            if (w != PB_I32 || r->end - r->p < 4) {
                pb_bad(c, r, "bad float attribute");
                break;
            }
            a->f = bits_f32(rd_u32(r->p));
            r->p += 4;
            break;
        case 3: pb_int(c, r, w, &a->i); break;
        case 4: pb_string(c, r, w, &a->s, &a->s_len); break;
        case 5:
            if (w != PB_LEN || !pb_len(r, &sub)) {
                pb_bad(c, r, "bad tensor attribute");
                break;
            }
            if (a->t) {
                tensor_free(a->t);
            } else {
                a->t = md_calloc(1, sizeof *a->t, "ONNX tensor", c->err);
                if (!a->t) {
                    c->st = MD_ERR_NOMEM;
                    break;
                }
            }
            parse_tensor(c, &sub, a->t);
            break;
        case 7: pb_reals(c, r, w, 4, &a->floats, &a->n_floats, &cap_f); break;
        case 8: pb_ints(c, r, w, &a->ints, &a->n_ints, &cap_i); break;
        default:
            if (!pb_skip(r, w))
                pb_bad(c, r, "bad field in AttributeProto");
        }
    }
    a->type = (int)type;
    if (c->st == MD_OK && !a->name)
        return pb_bad(c, r, "attribute without a name");
    return c->st;
}

static md_status parse_node(pb_ctx *c, pb_reader *r, md_onnx_node *n)
{
    size_t cap_in = 0, cap_out = 0, cap_at = 0;
    while (r->p < r->end && c->st == MD_OK) {
        uint32_t f;
        int w;
        pb_reader sub;
        char **slot;
        if (!pb_tag(r, &f, &w)) {
            pb_bad(c, r, "bad tag in NodeProto");
            break;
        }
        switch (f) {
        case 1:
        case 2:
            slot = f == 1 ? grow(c, (void **)&n->inputs, &n->n_inputs, &cap_in, sizeof(char *))
                          : grow(c, (void **)&n->outputs, &n->n_outputs, &cap_out,
                                 sizeof(char *));
            if (slot)
                pb_string(c, r, w, slot, NULL);
            break;
        case 3: pb_string(c, r, w, &n->name, NULL); break;
        case 4: pb_string(c, r, w, &n->op_type, NULL); break;
        case 7: pb_string(c, r, w, &n->domain, NULL); break;
        case 5: {
            if (w != PB_LEN || !pb_len(r, &sub)) {
                pb_bad(c, r, "bad attribute");
                break;
            }
            md_onnx_attr *a = grow(c, (void **)&n->attrs, &n->n_attrs, &cap_at, sizeof *a);
            if (a)
                parse_attr(c, &sub, a);
            break;
        }
        default:
            if (!pb_skip(r, w))
                pb_bad(c, r, "bad field in NodeProto");
        }
    }
    if (c->st == MD_OK && !n->op_type)
        return pb_bad(c, r, "node without op_type");
    return c->st;
}

/* TensorShapeProto.Dimension: dim_value = 1, dim_param = 2. */
static md_status parse_shape(pb_ctx *c, pb_reader *r, md_onnx_value_info *v)
{
    v->ndim = 0;
    while (r->p < r->end && c->st == MD_OK) {
        uint32_t f;
        int w;
        pb_reader sub;
        if (!pb_tag(r, &f, &w)) {
            pb_bad(c, r, "bad tag in TensorShapeProto");
            break;
        }
        if (f != 1) {
            if (!pb_skip(r, w))
                pb_bad(c, r, "bad field in TensorShapeProto");
            continue;
        }
        if (w != PB_LEN || !pb_len(r, &sub)) {
            pb_bad(c, r, "bad dimension");
            break;
        }
        if (v->ndim >= MD_ONNX_MAX_DIMS)
            return c->st = md_fail(c->err, MD_ERR_UNSUPPORTED,
                                   "%s: value '%s' has more than %d dimensions", c->path,
                                   v->name ? v->name : "?", MD_ONNX_MAX_DIMS);
        int64_t d = -1;
        while (sub.p < sub.end && c->st == MD_OK) {
            uint32_t f2;
            int w2;
            if (!pb_tag(&sub, &f2, &w2)) {
                pb_bad(c, &sub, "bad tag in Dimension");
                break;
            }
            if (f2 == 1)
                pb_int(c, &sub, w2, &d);
            else if (!pb_skip(&sub, w2))
                pb_bad(c, &sub, "bad field in Dimension");
        }
        v->dims[v->ndim++] = d < 0 ? -1 : d;
    }
    return c->st;
}

/* ValueInfoProto: name = 1, type = 2 (TypeProto: tensor_type = 1 (elem_type = 1, shape = 2)). */
static md_status parse_value_info(pb_ctx *c, pb_reader *r, md_onnx_value_info *v)
{
    v->ndim = -1;
    while (r->p < r->end && c->st == MD_OK) {
        uint32_t f;
        int w;
        pb_reader type, tt;
        if (!pb_tag(r, &f, &w)) {
            pb_bad(c, r, "bad tag in ValueInfoProto");
            break;
        }
        if (f == 1) {
            pb_string(c, r, w, &v->name, NULL);
            continue;
        }
        if (f != 2) {
            if (!pb_skip(r, w))
                pb_bad(c, r, "bad field in ValueInfoProto");
            continue;
        }
        if (w != PB_LEN || !pb_len(r, &type)) {
            pb_bad(c, r, "bad TypeProto");
            break;
        }
        while (type.p < type.end && c->st == MD_OK) {
            if (!pb_tag(&type, &f, &w)) {
                pb_bad(c, &type, "bad tag in TypeProto");
                break;
            }
            if (f != 1) {
                if (!pb_skip(&type, w))
                    pb_bad(c, &type, "bad field in TypeProto");
                continue;
            }
            if (w != PB_LEN || !pb_len(&type, &tt)) {
                pb_bad(c, &type, "bad TypeProto.Tensor");
                break;
            }
            while (tt.p < tt.end && c->st == MD_OK) {
                pb_reader shp;
                int64_t et = 0;
                if (!pb_tag(&tt, &f, &w)) {
                    pb_bad(c, &tt, "bad tag in TypeProto.Tensor");
                    break;
                }
                if (f == 1) {
                    if (pb_int(c, &tt, w, &et) == MD_OK)
                        v->elem_type = (int)et;
                } else if (f == 2) {
                    if (w != PB_LEN || !pb_len(&tt, &shp))
                        pb_bad(c, &tt, "bad TensorShapeProto");
                    else
                        parse_shape(c, &shp, v);
                } else if (!pb_skip(&tt, w)) {
                    pb_bad(c, &tt, "bad field in TypeProto.Tensor");
                }
            }
        }
    }
    if (c->st == MD_OK && !v->name)
        return pb_bad(c, r, "value without a name");
    return c->st;
}

static md_status parse_graph(pb_ctx *c, pb_reader *r, md_onnx_model *m)
{
    size_t cap_n = 0, cap_t = 0, cap_i = 0, cap_o = 0;
    while (r->p < r->end && c->st == MD_OK) {
        uint32_t f;
        int w;
        pb_reader sub;
        if (!pb_tag(r, &f, &w)) {
            pb_bad(c, r, "bad tag in GraphProto");
            break;
        }
        if (f == 2) {
            pb_string(c, r, w, &m->graph_name, NULL);
            continue;
        }
        if (f != 1 && f != 5 && f != 11 && f != 12) {
            if (f == 15 && w == PB_LEN)
                return c->st = md_fail(c->err, MD_ERR_UNSUPPORTED,
                                       "%s: sparse initializers are not supported", c->path);
            if (!pb_skip(r, w))
                pb_bad(c, r, "bad field in GraphProto");
            continue;
        }
        if (w != PB_LEN || !pb_len(r, &sub)) {
            pb_bad(c, r, "bad GraphProto entry");
            break;
        }
        if (f == 1) {
            md_onnx_node *n = grow(c, (void **)&m->nodes, &m->n_nodes, &cap_n, sizeof *n);
            if (n)
                parse_node(c, &sub, n);
        } else if (f == 5) {
            md_onnx_tensor *t =
                grow(c, (void **)&m->initializers, &m->n_initializers, &cap_t, sizeof *t);
            if (t)
                parse_tensor(c, &sub, t);
            if (c->st == MD_OK && !t->name)
                pb_bad(c, r, "initializer without a name");
        } else {
            md_onnx_value_info *v =
                f == 11 ? grow(c, (void **)&m->inputs, &m->n_inputs, &cap_i, sizeof *v)
                        : grow(c, (void **)&m->outputs, &m->n_outputs, &cap_o, sizeof *v);
            if (v)
                parse_value_info(c, &sub, v);
        }
    }
    return c->st;
}

md_status md_onnx_parse(const uint8_t *data, size_t size, const char *path, md_onnx_model *m,
                        md_error *err)
{
    memset(m, 0, sizeof *m);
    pb_ctx c = {path ? path : "onnx", err, MD_OK};
    pb_reader r = {data, data + size, data, 0};
    bool has_graph = false;
    while (r.p < r.end && c.st == MD_OK) {
        uint32_t f;
        int w;
        pb_reader sub;
        if (!pb_tag(&r, &f, &w)) {
            pb_bad(&c, &r, "bad tag in ModelProto");
            break;
        }
        switch (f) {
        case 1: pb_int(&c, &r, w, &m->ir_version); break;
        case 2: pb_string(&c, &r, w, &m->producer, NULL); break;
        case 7:
            if (has_graph) {
                pb_bad(&c, &r, "two graphs");
                break;
            }
            has_graph = true;
            if (w != PB_LEN || !pb_len(&r, &sub))
                pb_bad(&c, &r, "bad graph");
            else
                parse_graph(&c, &sub, m);
            break;
        case 8: { /* OperatorSetIdProto: domain = 1, version = 2 */
            if (w != PB_LEN || !pb_len(&r, &sub)) {
                pb_bad(&c, &r, "bad opset_import");
                break;
            }
            char *domain = NULL;
            int64_t version = 0;
            while (sub.p < sub.end && c.st == MD_OK) {
                uint32_t f2;
                int w2;
                if (!pb_tag(&sub, &f2, &w2))
                    pb_bad(&c, &sub, "bad tag in OperatorSetIdProto");
                else if (f2 == 1)
                    pb_string(&c, &sub, w2, &domain, NULL);
                else if (f2 == 2)
                    pb_int(&c, &sub, w2, &version);
                else if (!pb_skip(&sub, w2))
                    pb_bad(&c, &sub, "bad field in OperatorSetIdProto");
            }
            if (c.st == MD_OK && (!domain || !*domain || strcmp(domain, "ai.onnx") == 0))
                m->opset = version;
            free(domain);
            break;
        }
        default:
            if (!pb_skip(&r, w))
                pb_bad(&c, &r, "bad field in ModelProto");
        }
    }
    if (c.st == MD_OK && !has_graph)
        c.st = md_fail(err, MD_ERR_FORMAT, "%s: not an ONNX model (no graph)", c.path);
    if (c.st != MD_OK)
        md_onnx_free(m);
    return c.st;
}

md_status md_onnx_load(const char *path, md_onnx_model *out, md_error *err)
{
    uint8_t *data;
    size_t size;
    memset(out, 0, sizeof *out);
    md_status st = md_read_file(path, (size_t)1 << 31, &data, &size, err);
    if (st != MD_OK)
        return st;
    st = md_onnx_parse(data, size, path, out, err);
    free(data);
    return md_name_file(err, st, path); /* e.g. an allocation message naming no file */
}

static void attr_free(md_onnx_attr *a)
{
    free(a->name);
    free(a->s);
    if (a->t) {
        tensor_free(a->t);
        free(a->t);
    }
    free(a->floats);
    free(a->ints);
}

void md_onnx_free(md_onnx_model *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_nodes; i++) {
        md_onnx_node *n = &m->nodes[i];
        free(n->name);
        free(n->op_type);
        free(n->domain);
        for (size_t j = 0; j < n->n_inputs; j++)
            free(n->inputs[j]);
        for (size_t j = 0; j < n->n_outputs; j++)
            free(n->outputs[j]);
        free(n->inputs);
        free(n->outputs);
        for (size_t j = 0; j < n->n_attrs; j++)
            attr_free(&n->attrs[j]);
        free(n->attrs);
    }
    free(m->nodes);
    for (size_t i = 0; i < m->n_initializers; i++)
        tensor_free(&m->initializers[i]);
    free(m->initializers);
    for (size_t i = 0; i < m->n_inputs; i++)
        free(m->inputs[i].name);
    free(m->inputs);
    for (size_t i = 0; i < m->n_outputs; i++)
        free(m->outputs[i].name);
    free(m->outputs);
    free(m->producer);
    free(m->graph_name);
    memset(m, 0, sizeof *m);
}

const md_onnx_attr *md_onnx_node_attr(const md_onnx_node *node, const char *name)
{
    for (size_t i = 0; i < node->n_attrs; i++)
        if (strcmp(node->attrs[i].name, name) == 0)
            return &node->attrs[i];
    return NULL;
}

const md_onnx_tensor *md_onnx_find_initializer(const md_onnx_model *m, const char *name)
{
    for (size_t i = 0; i < m->n_initializers; i++)
        if (strcmp(m->initializers[i].name, name) == 0)
            return &m->initializers[i];
    return NULL;
}
