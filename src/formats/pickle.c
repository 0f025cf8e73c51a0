/* A restricted unpickler for PyTorch state dicts, and the .pth (torch.save
 * zip) reader built on it.
 *
 * It understands the pickle opcodes a state dict uses (protocol 2, plus the
 * few protocol 4 framing ones) and exactly these globals:
 *   collections.OrderedDict, torch._utils._rebuild_tensor_v2,
 *   torch._utils._rebuild_parameter, torch.{Float,Half,BFloat16}Storage.
 * "Calling" one of them builds a plain value here; nothing is ever executed.
 * Any other global or opcode is rejected with its name. */
#include "formats/weights.h"

#include "base/base.h"

#include <stdlib.h>
#include <string.h>

/* Limits: a real state dict needs a few values per tensor (a ViT-L has ~500
 * tensors, ~10^4 values, ~2 MB here), so these are far above any checkpoint
 * and far below what a small hostile pickle could make us allocate (one
 * value per opcode byte, every container growing by a DUP+APPEND pair). */
#define PK_MAX_STACK (1u << 20)
#define PK_MAX_MEMO (1u << 20)
#define PK_MAX_VALUES (1u << 20)
#define PK_MAX_BYTES ((size_t)64 << 20) /* values, strings, lists, stack, memo */

typedef enum {
    PV_NONE,
    PV_BOOL,
    PV_INT,
    PV_FLOAT,
    PV_STR,
    PV_TUPLE,
    PV_LIST,
    PV_DICT,
    PV_GLOBAL,
    PV_STORAGE,
    PV_TENSOR
} pv_kind;

typedef enum {
    G_ORDERED_DICT,
    G_REBUILD_TENSOR_V2,
    G_REBUILD_PARAMETER,
    G_FLOAT_STORAGE,
    G_HALF_STORAGE,
    G_BFLOAT16_STORAGE
} pv_global;

typedef struct pv pv;
struct pv {
    pv_kind kind;
    int64_t i;      /* INT, BOOL; GLOBAL: pv_global */
    double f;       /* FLOAT */
    char *s;        /* STR (NUL-terminated copy) */
    size_t slen;
    pv **items;     /* TUPLE, LIST; DICT: key, value, key, value ... */
    size_t n, cap;
    md_weight t;    /* STORAGE: dtype, data, avail_bytes; TENSOR: the tensor */
};

typedef struct {
    const uint8_t *p, *end, *start;
    const char *path;
    md_error *err;
    pv **all;            /* every value, for freeing */
    size_t n_all, cap_all;
    pv **stack;
    size_t sp, cap_stack;
    size_t *marks;
    size_t n_marks, cap_marks;
    pv **memo;
    size_t cap_memo, memo_count;
    md_pickle_storage_fn storage;
    void *ctx;
    size_t bytes;        /* allocated so far, against PK_MAX_BYTES */
    md_status st;        /* the first failure (err may be NULL) */
} unpickler;

static md_status pk_bad(unpickler *u, const char *what)
{
    return u->st = md_fail(u->err, MD_ERR_FORMAT, "%s: pickle: %s at byte %ld", u->path, what,
                           (long)(u->p - u->start));
}

static md_status pk_nomem(unpickler *u)
{
    return u->st = md_fail(u->err, MD_ERR_NOMEM, "%s: pickle: out of memory at byte %ld", u->path,
                           (long)(u->p - u->start));
}

static void over_budget(unpickler *u)
{
    u->st = md_fail(u->err, MD_ERR_NOMEM,
                    "%s: pickle: more than %zu MB of values at byte %ld (not a plain state dict)",
                    u->path, PK_MAX_BYTES >> 20, (long)(u->p - u->start));
}

/* Counts n more bytes against the budget: false (status set) beyond it. */
static bool charge(unpickler *u, size_t n)
{
    if (n > PK_MAX_BYTES - u->bytes) {
        over_budget(u);
        return false;
    }
    u->bytes += n;
    return true;
}

/* Grows *arr to hold need elements; false with the status set when over the
 * budget or out of memory. */
static bool grow(unpickler *u, void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t nc = *cap ? *cap : 16;
    while (nc < need && nc <= PK_MAX_BYTES)
        nc *= 2;
    if (nc > PK_MAX_BYTES / elem) {
        over_budget(u);
        return false;
    }
    if (!charge(u, (nc - *cap) * elem))
        return false;
    void *a = realloc(*arr, nc * elem);
    if (!a) {
        pk_nomem(u);
        return false;
    }
    *arr = a;
    *cap = nc;
    return true;
}

static pv *pv_new(unpickler *u, pv_kind kind)
{
    if (u->n_all >= PK_MAX_VALUES) {
        u->st = md_fail(u->err, MD_ERR_NOMEM,
                        "%s: pickle: more than %u values at byte %ld (not a plain state dict)",
                        u->path, PK_MAX_VALUES, (long)(u->p - u->start));
        return NULL;
    }
    if (!grow(u, (void **)&u->all, &u->cap_all, u->n_all + 1, sizeof(pv *)) ||
        !charge(u, sizeof(pv)))
        return NULL;
    pv *v = calloc(1, sizeof *v);
    if (!v) {
        pk_nomem(u);
        return NULL;
    }
    v->kind = kind;
    u->all[u->n_all++] = v;
    return v;
}

static md_status pv_append(unpickler *u, pv *seq, pv *item)
{
    if (!grow(u, (void **)&seq->items, &seq->cap, seq->n + 1, sizeof(pv *)))
        return u->st;
    seq->items[seq->n++] = item;
    return MD_OK;
}

static md_status push(unpickler *u, pv *v)
{
    if (!v)
        return u->st;
    if (u->sp >= PK_MAX_STACK)
        return pk_bad(u, "stack too deep");
    if (!grow(u, (void **)&u->stack, &u->cap_stack, u->sp + 1, sizeof(pv *)))
        return u->st;
    u->stack[u->sp++] = v;
    return MD_OK;
}

static pv *pop(unpickler *u)
{
    size_t floor_sp = u->n_marks ? u->marks[u->n_marks - 1] : 0;
    if (u->sp <= floor_sp) {
        pk_bad(u, "stack underflow");
        return NULL;
    }
    return u->stack[--u->sp];
}

static pv *top(unpickler *u)
{
    size_t floor_sp = u->n_marks ? u->marks[u->n_marks - 1] : 0;
    if (u->sp <= floor_sp) {
        pk_bad(u, "stack underflow");
        return NULL;
    }
    return u->stack[u->sp - 1];
}

/* Pops the topmost mark; *from is the stack index where the marked items begin. */
static md_status pop_mark(unpickler *u, size_t *from)
{
    if (u->n_marks == 0)
        return pk_bad(u, "no MARK on the stack");
    *from = u->marks[--u->n_marks];
    return MD_OK;
}

static bool need(unpickler *u, size_t n)
{
    return (size_t)(u->end - u->p) >= n;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static md_status memo_put(unpickler *u, size_t idx)
{
    pv *v = top(u);
    if (!v)
        return MD_ERR_FORMAT;
    if (idx >= PK_MAX_MEMO)
        return pk_bad(u, "memo index too large");
    if (idx >= u->cap_memo) {
        size_t old = u->cap_memo;
        if (!grow(u, (void **)&u->memo, &u->cap_memo, idx + 1, sizeof(pv *)))
            return u->st;
        memset(u->memo + old, 0, (u->cap_memo - old) * sizeof(pv *));
    }
    if (!u->memo[idx])
        u->memo_count++;
    u->memo[idx] = v;
    return MD_OK;
}

static md_status memo_get(unpickler *u, size_t idx)
{
    if (idx >= u->cap_memo || !u->memo[idx])
        return pk_bad(u, "memo key not found");
    return push(u, u->memo[idx]);
}

static md_status make_str(unpickler *u, size_t len)
{
    if (!need(u, len))
        return pk_bad(u, "truncated string");
    pv *v = pv_new(u, PV_STR);
    if (!v)
        return u->st;
    if (!charge(u, len + 1))
        return u->st;
    v->s = malloc(len + 1);
    if (!v->s)
        return pk_nomem(u);
    memcpy(v->s, u->p, len);
    v->s[len] = '\0';
    v->slen = len;
    u->p += len;
    return push(u, v);
}

static md_status make_int(unpickler *u, int64_t x)
{
    pv *v = pv_new(u, PV_INT);
    if (v)
        v->i = x;
    return push(u, v);
}

/* Resolves module + name against the allow-list. */
static md_status make_global(unpickler *u, const char *mod, size_t mlen, const char *name,
                             size_t nlen)
{
    static const struct {
        const char *mod, *name;
        pv_global g;
    } allowed[] = {
        {"collections", "OrderedDict", G_ORDERED_DICT},
        {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_TENSOR_V2},
        {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAMETER},
        {"torch", "FloatStorage", G_FLOAT_STORAGE},
        {"torch", "HalfStorage", G_HALF_STORAGE},
        {"torch", "BFloat16Storage", G_BFLOAT16_STORAGE},
    };
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (strlen(allowed[i].mod) == mlen && memcmp(allowed[i].mod, mod, mlen) == 0 &&
            strlen(allowed[i].name) == nlen && memcmp(allowed[i].name, name, nlen) == 0) {
            pv *v = pv_new(u, PV_GLOBAL);
            if (v)
                v->i = allowed[i].g;
            return push(u, v);
        }
    }
    return md_fail(u->err, MD_ERR_UNSUPPORTED,
                   "%s: pickle: forbidden global '%.*s.%.*s' (only a plain tensor state dict "
                   "is accepted; nothing in the file is executed)",
                   u->path, (int)(mlen > 100 ? 100 : mlen), mod, (int)(nlen > 100 ? 100 : nlen),
                   name);
}

static bool as_int(const pv *v, int64_t *out)
{
    if (!v || (v->kind != PV_INT && v->kind != PV_BOOL))
        return false;
    *out = v->i;
    return true;
}

static md_status rebuild_tensor(unpickler *u, const pv *args, pv **out)
{
    if (args->kind != PV_TUPLE || args->n < 4 || args->items[0]->kind != PV_STORAGE ||
        args->items[2]->kind != PV_TUPLE || args->items[3]->kind != PV_TUPLE)
        return pk_bad(u, "bad _rebuild_tensor_v2 arguments");
    const pv *storage = args->items[0], *size = args->items[2], *stride = args->items[3];
    int64_t off;
    if (!as_int(args->items[1], &off) || off < 0)
        return pk_bad(u, "bad tensor storage offset");
    if (size->n != stride->n || size->n > MD_WEIGHT_MAX_DIMS)
        return pk_bad(u, "bad tensor size/stride");
    pv *t = pv_new(u, PV_TENSOR);
    if (!t)
        return u->st;
    t->t = storage->t;
    t->t.ndim = (int)size->n;
    t->t.offset = off;
    for (size_t i = 0; i < size->n; i++) {
        if (!as_int(size->items[i], &t->t.shape[i]) || !as_int(stride->items[i], &t->t.stride[i]) ||
            t->t.shape[i] < 0 || t->t.stride[i] < 0)
            return pk_bad(u, "bad tensor size/stride");
    }
    *out = t;
    return MD_OK;
}

static md_status op_reduce(unpickler *u)
{
    pv *args = pop(u);
    pv *fn = args ? pop(u) : NULL;
    if (!fn)
        return MD_ERR_FORMAT;
    if (fn->kind != PV_GLOBAL || args->kind != PV_TUPLE)
        return pk_bad(u, "REDUCE on something that is not an allowed global");
    pv *res = NULL;
    md_status s;
    switch ((pv_global)fn->i) {
    case G_ORDERED_DICT:
        res = pv_new(u, PV_DICT);
        break;
    case G_REBUILD_TENSOR_V2:
        if ((s = rebuild_tensor(u, args, &res)) != MD_OK)
            return s;
        break;
    case G_REBUILD_PARAMETER:
        if (args->n < 1 || args->items[0]->kind != PV_TENSOR)
            return pk_bad(u, "bad _rebuild_parameter arguments");
        res = args->items[0];
        break;
    default:
        return pk_bad(u, "a storage type cannot be called");
    }
    return push(u, res);
}

static md_status op_persid(unpickler *u)
{
    pv *pid = pop(u);
    if (!pid)
        return MD_ERR_FORMAT;
    int64_t numel;
    if (pid->kind != PV_TUPLE || pid->n < 5 || pid->items[0]->kind != PV_STR ||
        strcmp(pid->items[0]->s, "storage") != 0 || pid->items[1]->kind != PV_GLOBAL ||
        pid->items[2]->kind != PV_STR || !as_int(pid->items[4], &numel) || numel < 0)
        return pk_bad(u, "unsupported persistent id (expected a torch storage)");
    md_wdtype dt;
    switch ((pv_global)pid->items[1]->i) {
    case G_FLOAT_STORAGE: dt = MD_WDT_F32; break;
    case G_HALF_STORAGE: dt = MD_WDT_F16; break;
    case G_BFLOAT16_STORAGE: dt = MD_WDT_BF16; break;
    default: return pk_bad(u, "persistent id names no storage type");
    }
    if ((uint64_t)numel > (uint64_t)MD_MAX_ELEMENTS * 2)
        return pk_bad(u, "storage too large");
    const uint8_t *data;
    size_t size;
    md_status s = u->storage(u->ctx, pid->items[2]->s, &data, &size, u->err);
    if (s != MD_OK)
        return s;
    size_t bytes = (size_t)numel * md_wdtype_size(dt);
    if (bytes > size)
        return md_fail(u->err, MD_ERR_FORMAT,
                       "%s: storage '%.100s' holds %zu bytes, the pickle says %zu (truncated?)",
                       u->path, pid->items[2]->s, size, bytes);
    pv *st = pv_new(u, PV_STORAGE);
    if (!st)
        return u->st;
    st->t.dtype = dt;
    st->t.data = data;
    st->t.avail_bytes = bytes;
    return push(u, st);
}

static md_status op_setitems(unpickler *u, size_t from)
{
    if (from == 0)
        return pk_bad(u, "SETITEMS without a dict");
    pv *d = u->stack[from - 1];
    if (d->kind != PV_DICT)
        return pk_bad(u, "SETITEM(S) on something that is not a dict");
    if ((u->sp - from) % 2)
        return pk_bad(u, "odd number of items for SETITEMS");
    for (size_t i = from; i < u->sp; i++) {
        md_status s = pv_append(u, d, u->stack[i]);
        if (s != MD_OK)
            return s;
    }
    u->sp = from;
    return MD_OK;
}

static md_status run(unpickler *u, pv **result)
{
    md_status s = MD_OK;
    while (s == MD_OK) {
        if (!need(u, 1))
            return pk_bad(u, "truncated pickle (no STOP)");
        uint8_t op = *u->p++;
        switch (op) {
        case 0x80: /* PROTO */
            if (!need(u, 1))
                return pk_bad(u, "truncated PROTO");
            if (*u->p > 5)
                return pk_bad(u, "unsupported pickle protocol");
            u->p++;
            break;
        case 0x95: /* FRAME */
            if (!need(u, 8))
                return pk_bad(u, "truncated FRAME");
            u->p += 8;
            break;
        case '}': s = push(u, pv_new(u, PV_DICT)); break;
        case ']': s = push(u, pv_new(u, PV_LIST)); break;
        case ')': s = push(u, pv_new(u, PV_TUPLE)); break;
        case 'N': s = push(u, pv_new(u, PV_NONE)); break;
        case 0x88: /* NEWTRUE */
        case 0x89: { /* NEWFALSE */
            pv *v = pv_new(u, PV_BOOL);
            if (v)
                v->i = op == 0x88;
            s = push(u, v);
            break;
        }
        case '(': /* MARK */
            if (!grow(u, (void **)&u->marks, &u->cap_marks, u->n_marks + 1, sizeof(size_t)))
                return u->st;
            if (u->n_marks >= PK_MAX_STACK)
                return pk_bad(u, "too many marks");
            u->marks[u->n_marks++] = u->sp;
            break;
        case 'X': /* BINUNICODE */
            if (!need(u, 4))
                return pk_bad(u, "truncated BINUNICODE");
            u->p += 4;
            s = make_str(u, le32(u->p - 4));
            break;
        case 0x8c: /* SHORT_BINUNICODE */
            if (!need(u, 1))
                return pk_bad(u, "truncated SHORT_BINUNICODE");
            u->p++;
            s = make_str(u, u->p[-1]);
            break;
        case 'q': /* BINPUT */
            if (!need(u, 1))
                return pk_bad(u, "truncated BINPUT");
            s = memo_put(u, *u->p++);
            break;
        case 'r': /* LONG_BINPUT */
            if (!need(u, 4))
                return pk_bad(u, "truncated LONG_BINPUT");
            u->p += 4;
            s = memo_put(u, le32(u->p - 4));
            break;
        case 0x94: /* MEMOIZE */
            s = memo_put(u, u->memo_count); /* the next key: len(memo) */
            break;
        case 'h': /* BINGET */
            if (!need(u, 1))
                return pk_bad(u, "truncated BINGET");
            s = memo_get(u, *u->p++);
            break;
        case 'j': /* LONG_BINGET */
            if (!need(u, 4))
                return pk_bad(u, "truncated LONG_BINGET");
            u->p += 4;
            s = memo_get(u, le32(u->p - 4));
            break;
        case 'c': { /* GLOBAL "module\nname\n" */
            const uint8_t *m = u->p;
            const uint8_t *nl1 = memchr(m, '\n', (size_t)(u->end - m));
            if (!nl1)
                return pk_bad(u, "truncated GLOBAL");
            const uint8_t *nm = nl1 + 1;
            const uint8_t *nl2 = memchr(nm, '\n', (size_t)(u->end - nm));
            if (!nl2)
                return pk_bad(u, "truncated GLOBAL");
            u->p = nl2 + 1;
            s = make_global(u, (const char *)m, (size_t)(nl1 - m), (const char *)nm,
                            (size_t)(nl2 - nm));
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            pv *name = pop(u);
            pv *mod = name ? pop(u) : NULL;
            if (!mod)
                return MD_ERR_FORMAT;
            if (name->kind != PV_STR || mod->kind != PV_STR)
                return pk_bad(u, "STACK_GLOBAL needs two strings");
            s = make_global(u, mod->s, mod->slen, name->s, name->slen);
            break;
        }
        case 'Q': s = op_persid(u); break;
        case 't': { /* TUPLE */
            size_t from = 0;
            if ((s = pop_mark(u, &from)) != MD_OK)
                return s;
            pv *t = pv_new(u, PV_TUPLE);
            if (!t)
                return u->st;
            for (size_t i = from; i < u->sp && s == MD_OK; i++)
                s = pv_append(u, t, u->stack[i]);
            u->sp = from;
            if (s == MD_OK)
                s = push(u, t);
            break;
        }
        case 0x85: /* TUPLE1 */
        case 0x86: /* TUPLE2 */
        case 0x87: { /* TUPLE3 */
            size_t k = (size_t)(op - 0x84);
            size_t floor_sp = u->n_marks ? u->marks[u->n_marks - 1] : 0;
            if (u->sp < floor_sp + k)
                return pk_bad(u, "stack underflow");
            pv *t = pv_new(u, PV_TUPLE);
            if (!t)
                return u->st;
            for (size_t i = u->sp - k; i < u->sp && s == MD_OK; i++)
                s = pv_append(u, t, u->stack[i]);
            u->sp -= k;
            if (s == MD_OK)
                s = push(u, t);
            break;
        }
        case 'J': /* BININT */
            if (!need(u, 4))
                return pk_bad(u, "truncated BININT");
            u->p += 4;
            s = make_int(u, (int32_t)le32(u->p - 4));
            break;
        case 'K': /* BININT1 */
            if (!need(u, 1))
                return pk_bad(u, "truncated BININT1");
            s = make_int(u, *u->p++);
            break;
        case 'M': /* BININT2 */
            if (!need(u, 2))
                return pk_bad(u, "truncated BININT2");
            u->p += 2;
            s = make_int(u, u->p[-2] | (u->p[-1] << 8));
            break;
        case 0x8a: { /* LONG1 */
            if (!need(u, 1))
                return pk_bad(u, "truncated LONG1");
            size_t n = *u->p++;
            if (n > 8 || !need(u, n))
                return pk_bad(u, "LONG1 too long");
            uint64_t x = 0;
            for (size_t i = 0; i < n; i++)
                x |= (uint64_t)u->p[i] << (8 * i);
            if (n > 0 && n < 8 && (u->p[n - 1] & 0x80))
                x |= ~(uint64_t)0 << (8 * n);
            u->p += n;
            s = make_int(u, (int64_t)x);
            break;
        }
        case 'G': { /* BINFLOAT, big-endian double */
            if (!need(u, 8))
                return pk_bad(u, "truncated BINFLOAT");
            uint64_t bits = 0;
            for (int i = 0; i < 8; i++)
                bits = (bits << 8) | u->p[i];
            u->p += 8;
            pv *v = pv_new(u, PV_FLOAT);
            if (v)
                memcpy(&v->f, &bits, 8);
            s = push(u, v);
            break;
        }
        case 'R': s = op_reduce(u); break;
        case 'b': { /* BUILD: state is applied to nothing we keep (dict metadata) */
            pv *state = pop(u);
            if (!state || !top(u))
                return MD_ERR_FORMAT;
            break;
        }
        case 's': { /* SETITEM */
            pv *v = pop(u);
            pv *k = v ? pop(u) : NULL;
            pv *d = k ? top(u) : NULL;
            if (!d)
                return MD_ERR_FORMAT;
            if (d->kind != PV_DICT)
                return pk_bad(u, "SETITEM on something that is not a dict");
            if ((s = pv_append(u, d, k)) == MD_OK)
                s = pv_append(u, d, v);
            break;
        }
        case 'u': { /* SETITEMS */
            size_t from = 0;
            if ((s = pop_mark(u, &from)) != MD_OK)
                return s;
            if (from <= (u->n_marks ? u->marks[u->n_marks - 1] : 0))
                return pk_bad(u, "SETITEMS without a dict");
            s = op_setitems(u, from);
            break;
        }
        case 'a': { /* APPEND */
            pv *v = pop(u);
            pv *l = v ? top(u) : NULL;
            if (!l)
                return MD_ERR_FORMAT;
            if (l->kind != PV_LIST)
                return pk_bad(u, "APPEND on something that is not a list");
            s = pv_append(u, l, v);
            break;
        }
        case 'e': { /* APPENDS */
            size_t from = 0;
            if ((s = pop_mark(u, &from)) != MD_OK)
                return s;
            if (from <= (u->n_marks ? u->marks[u->n_marks - 1] : 0) ||
                u->stack[from - 1]->kind != PV_LIST)
                return pk_bad(u, "APPENDS without a list");
            pv *l = u->stack[from - 1];
            for (size_t i = from; i < u->sp && s == MD_OK; i++)
                s = pv_append(u, l, u->stack[i]);
            u->sp = from;
            break;
        }
        case '0': /* POP */
            if (!pop(u))
                return MD_ERR_FORMAT;
            break;
        case '1': { /* POP_MARK */
            size_t from = 0;
            if ((s = pop_mark(u, &from)) != MD_OK)
                return s;
            u->sp = from;
            break;
        }
        case '2': { /* DUP */
            pv *v = top(u);
            if (!v)
                return MD_ERR_FORMAT;
            s = push(u, v);
            break;
        }
        case '.': { /* STOP */
            pv *v = pop(u);
            if (!v)
                return MD_ERR_FORMAT;
            *result = v;
            return MD_OK;
        }
        default: {
            char what[64];
            snprintf(what, sizeof what, "unsupported opcode 0x%02x", op);
            u->p--;
            return md_fail(u->err, MD_ERR_UNSUPPORTED, "%s: pickle: %s at byte %ld", u->path, what,
                           (long)(u->p - u->start));
        }
        }
    }
    return s;
}

static size_t add_tensors(const pv *d, const char *path, md_weights *w, md_error *err,
                          md_status *st)
{
    size_t added = 0;
    for (size_t i = 0; i + 1 < d->n && *st == MD_OK; i += 2) {
        const pv *k = d->items[i], *v = d->items[i + 1];
        if (k->kind == PV_STR && v->kind == PV_TENSOR) {
            *st = md_weights_add(w, k->s, k->slen, &v->t, path, err);
            added++;
        }
    }
    return added;
}

md_status md_pickle_load_state_dict(const uint8_t *pkl, size_t size, const char *path,
                                    md_pickle_storage_fn storage, void *ctx, md_weights *w,
                                    md_error *err)
{
    unpickler u;
    memset(&u, 0, sizeof u);
    u.p = u.start = pkl;
    u.end = pkl + size;
    u.path = path;
    u.err = err;
    u.storage = storage;
    u.ctx = ctx;
    pv *res = NULL;
    md_status s = run(&u, &res);
    if (s == MD_OK && res->kind != PV_DICT)
        s = md_fail(err, MD_ERR_FORMAT, "%s: the pickle does not hold a state dict", path);
    if (s == MD_OK) {
        size_t n = add_tensors(res, path, w, err, &s);
        /* A training checkpoint: {"model": state_dict, ...} or {"state_dict": ...}. */
        for (size_t i = 0; n == 0 && s == MD_OK && i + 1 < res->n; i += 2) {
            const pv *k = res->items[i], *v = res->items[i + 1];
            if (k->kind == PV_STR && v->kind == PV_DICT &&
                (strcmp(k->s, "model") == 0 || strcmp(k->s, "state_dict") == 0))
                n = add_tensors(v, path, w, err, &s);
        }
        if (s == MD_OK && n == 0)
            s = md_fail(err, MD_ERR_FORMAT, "%s: the state dict holds no tensors", path);
        if (s == MD_OK)
            s = md_weights_finish(w, path, err);
    }
    for (size_t i = 0; i < u.n_all; i++) {
        free(u.all[i]->s);
        free(u.all[i]->items);
        free(u.all[i]);
    }
    free(u.all);
    free(u.stack);
    free(u.marks);
    free(u.memo);
    return s;
}

/* ------------------------------------------------------------ .pth files */

typedef struct {
    md_zip *zip;
    const char *prefix; /* "archive/" */
    size_t prefix_len;
    const char *path;
    md_weights *w;
    const uint8_t **cache; /* per zip entry: its bytes once read (storages are shared) */
    size_t *cache_size;
} pth_ctx;

static md_status pth_storage(void *vctx, const char *key, const uint8_t **data, size_t *size,
                             md_error *err)
{
    pth_ctx *c = vctx;
    size_t klen = strlen(key);
    if (klen > 64 || strchr(key, '/'))
        return md_fail(err, MD_ERR_FORMAT, "%s: bad storage key '%.64s'", c->path, key);
    char name[1200];
    snprintf(name, sizeof name, "%.*sdata/%s", (int)c->prefix_len, c->prefix, key);
    const md_zip_entry *e = md_zip_find(c->zip, name);
    if (!e)
        return md_fail(err, MD_ERR_FORMAT, "%s: storage '%s' missing from the archive", c->path,
                       name);
    size_t idx = (size_t)(e - c->zip->entries);
    if (c->cache[idx]) {
        *data = c->cache[idx];
        *size = c->cache_size[idx];
        return MD_OK;
    }
    uint8_t *owned = NULL;
    md_status s = md_zip_read(c->zip, e, c->path, data, &owned, size, err);
    if (s == MD_OK && owned)
        s = md_weights_own(c->w, owned, c->path, err);
    if (s == MD_OK) {
        c->cache[idx] = *data;
        c->cache_size[idx] = *size;
    }
    return s;
}

md_status md_pth_parse(const uint8_t *buf, size_t size, const char *path, md_weights *w,
                       md_error *err)
{
    md_zip z;
    md_status s = md_zip_open(buf, size, path, &z, err);
    if (s != MD_OK)
        return s;
    const md_zip_entry *pk = NULL;
    for (size_t i = 0; i < z.count; i++) {
        const char *n = z.entries[i].name;
        size_t len = strlen(n);
        const char *slash = strchr(n, '/');
        if (len >= 8 && strcmp(n + len - 8, "data.pkl") == 0 && slash && slash == n + len - 9 &&
            len < 1000) {
            pk = &z.entries[i];
            break;
        }
    }
    if (!pk) {
        md_zip_close(&z);
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: zip archive without <name>/data.pkl (not a torch.save checkpoint)",
                       path);
    }
    pth_ctx ctx = {&z, pk->name, strlen(pk->name) - 8, path, w, NULL, NULL};
    ctx.cache = calloc(z.count, sizeof *ctx.cache);
    ctx.cache_size = calloc(z.count, sizeof *ctx.cache_size);
    if (!ctx.cache || !ctx.cache_size) {
        free(ctx.cache);
        free(ctx.cache_size);
        md_zip_close(&z);
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
    }
    char bo_name[1100];
    snprintf(bo_name, sizeof bo_name, "%.*sbyteorder", (int)ctx.prefix_len, ctx.prefix);
    const md_zip_entry *bo = md_zip_find(&z, bo_name);
    if (bo) {
        const uint8_t *d;
        uint8_t *owned;
        size_t n;
        s = md_zip_read(&z, bo, path, &d, &owned, &n, err);
        if (s == MD_OK && !(n == 6 && memcmp(d, "little", 6) == 0))
            s = md_fail(err, MD_ERR_UNSUPPORTED, "%s: big-endian checkpoints are not supported",
                        path);
        free(owned);
        if (s != MD_OK) {
            free(ctx.cache);
            free(ctx.cache_size);
            md_zip_close(&z);
            return s;
        }
    }
    const uint8_t *pkl;
    uint8_t *pkl_owned;
    size_t pkl_size;
    s = md_zip_read(&z, pk, path, &pkl, &pkl_owned, &pkl_size, err);
    if (s == MD_OK)
        s = md_pickle_load_state_dict(pkl, pkl_size, path, pth_storage, &ctx, w, err);
    free(pkl_owned);
    free(ctx.cache);
    free(ctx.cache_size);
    md_zip_close(&z);
    return s;
}
