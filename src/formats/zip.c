/* A read-only zip reader over a memory buffer (the PKWARE APPNOTE layout):
 * end-of-central-directory record (and its zip64 form), central directory
 * entries, local headers; stored and deflated entries. Every offset and
 * length is checked against the buffer before use. */
#include "formats/weights.h"

#include "base/base.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ZIP_MAX_ENTRIES (1u << 20)

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

void md_zip_close(md_zip *z)
{
    if (!z)
        return;
    for (size_t i = 0; i < z->count; i++)
        free(z->entries[i].name);
    free(z->entries);
    memset(z, 0, sizeof *z);
}

/* Reads the zip64 extended-information extra field for the values that were
 * 0xFFFFFFFF in the fixed header. */
static bool zip64_extra(const uint8_t *extra, size_t len, md_zip_entry *e, bool need_size,
                        bool need_comp, bool need_off)
{
    size_t p = 0;
    while (p + 4 <= len) {
        uint16_t id = rd16(extra + p), sz = rd16(extra + p + 2);
        if (p + 4 + sz > len)
            return false;
        if (id == 0x0001) {
            const uint8_t *d = extra + p + 4;
            size_t q = 0;
            if (need_size) {
                if (q + 8 > sz)
                    return false;
                e->size = rd64(d + q);
                q += 8;
            }
            if (need_comp) {
                if (q + 8 > sz)
                    return false;
                e->comp_size = rd64(d + q);
                q += 8;
            }
            if (need_off) {
                if (q + 8 > sz)
                    return false;
                e->local_offset = rd64(d + q);
            }
            return true;
        }
        p += 4 + (size_t)sz;
    }
    return !(need_size || need_comp || need_off);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const md_zip_entry *)a)->name, ((const md_zip_entry *)b)->name);
}

md_status md_zip_open(const uint8_t *buf, size_t size, const char *path, md_zip *z, md_error *err)
{
    memset(z, 0, sizeof *z);
    if (size < 22)
        return md_fail(err, MD_ERR_FORMAT, "%s: too short for a zip archive", path);
    /* The EOCD record is 22 bytes plus a comment of up to 65535 bytes. */
    size_t lo = size > 22 + 65535 ? size - 22 - 65535 : 0;
    size_t eocd = SIZE_MAX;
    for (size_t p = size - 22 + 1; p-- > lo;) {
        if (memcmp(buf + p, "PK\x05\x06", 4) == 0 && p + 22 + rd16(buf + p + 20) == size) {
            eocd = p;
            break;
        }
    }
    if (eocd == SIZE_MAX)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: no zip end-of-central-directory record (truncated archive?)", path);
    const uint8_t *e = buf + eocd;
    uint64_t count = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0)
        return md_fail(err, MD_ERR_UNSUPPORTED, "%s: multi-disk zip archives are not supported",
                       path);
    if (count == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        if (eocd < 20 || memcmp(buf + eocd - 20, "PK\x06\x07", 4) != 0)
            return md_fail(err, MD_ERR_FORMAT, "%s: zip64 locator missing", path);
        uint64_t z64 = rd64(buf + eocd - 20 + 8);
        if (z64 > size || size - z64 < 56 || memcmp(buf + z64, "PK\x06\x06", 4) != 0)
            return md_fail(err, MD_ERR_FORMAT, "%s: bad zip64 end-of-central-directory record",
                           path);
        count = rd64(buf + z64 + 32);
        cd_size = rd64(buf + z64 + 40);
        cd_off = rd64(buf + z64 + 48);
    }
    if (cd_off > size || cd_size > size - cd_off)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: zip central directory lies outside the file (truncated archive?)",
                       path);
    if (count > ZIP_MAX_ENTRIES || count > cd_size / 46 + 1)
        return md_fail(err, MD_ERR_FORMAT, "%s: implausible zip entry count %llu", path,
                       (unsigned long long)count);
    z->buf = buf;
    z->size = size;
    z->entries = calloc(count ? (size_t)count : 1, sizeof *z->entries);
    if (!z->entries)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory for the zip directory", path);
    size_t p = (size_t)cd_off, cd_end = (size_t)(cd_off + cd_size);
    for (uint64_t i = 0; i < count; i++) {
        if (cd_end - p < 46 || memcmp(buf + p, "PK\x01\x02", 4) != 0) {
            md_zip_close(z);
            return md_fail(err, MD_ERR_FORMAT, "%s: corrupt zip central directory entry %llu",
                           path, (unsigned long long)i);
        }
        const uint8_t *h = buf + p;
        size_t nlen = rd16(h + 28), xlen = rd16(h + 30), clen = rd16(h + 32);
        if (cd_end - p - 46 < nlen + xlen + clen) {
            md_zip_close(z);
            return md_fail(err, MD_ERR_FORMAT, "%s: corrupt zip central directory entry %llu",
                           path, (unsigned long long)i);
        }
        md_zip_entry *ent = &z->entries[z->count];
        ent->method = rd16(h + 10);
        ent->comp_size = rd32(h + 20);
        ent->size = rd32(h + 24);
        ent->local_offset = rd32(h + 42);
        if (rd16(h + 8) & 1) {
            md_zip_close(z);
            return md_fail(err, MD_ERR_UNSUPPORTED, "%s: encrypted zip entries are not supported",
                           path);
        }
        if (!zip64_extra(h + 46 + nlen, xlen, ent, ent->size == 0xffffffffu,
                         ent->comp_size == 0xffffffffu, ent->local_offset == 0xffffffffu)) {
            md_zip_close(z);
            return md_fail(err, MD_ERR_FORMAT, "%s: bad zip64 extra field in entry %llu", path,
                           (unsigned long long)i);
        }
        ent->name = malloc(nlen + 1);
        if (!ent->name) {
            md_zip_close(z);
            return md_fail(err, MD_ERR_NOMEM, "%s: out of memory", path);
        }
        memcpy(ent->name, h + 46, nlen);
        ent->name[nlen] = '\0';
        z->count++;
        p += 46 + nlen + xlen + clen;
    }
    /* sorted by name: lookups are binary searches */
    if (z->count > 1)
        qsort(z->entries, z->count, sizeof *z->entries, cmp_entry);
    return MD_OK;
}

const md_zip_entry *md_zip_find(const md_zip *z, const char *name)
{
    size_t lo = 0, hi = z->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->entries[mid].name, name);
        if (c == 0)
            return &z->entries[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

md_status md_zip_read(const md_zip *z, const md_zip_entry *e, const char *path,
                      const uint8_t **data, uint8_t **owned, size_t *size, md_error *err)
{
    *data = NULL;
    *owned = NULL;
    *size = 0;
    if (e->local_offset > z->size || z->size - e->local_offset < 30 ||
        memcmp(z->buf + e->local_offset, "PK\x03\x04", 4) != 0)
        return md_fail(err, MD_ERR_FORMAT, "%s: zip entry '%.200s' has a bad local header", path,
                       e->name);
    const uint8_t *h = z->buf + e->local_offset;
    uint64_t start = e->local_offset + 30 + (uint64_t)rd16(h + 26) + rd16(h + 28);
    if (start > z->size || e->comp_size > z->size - start)
        return md_fail(err, MD_ERR_FORMAT,
                       "%s: zip entry '%.200s' extends past the end of the file (truncated?)",
                       path, e->name);
    const uint8_t *src = z->buf + start;
    if (e->method == 0) {
        if (e->size != e->comp_size)
            return md_fail(err, MD_ERR_FORMAT, "%s: stored zip entry '%.200s' has two sizes",
                           path, e->name);
        *data = src;
        *size = (size_t)e->size;
        return MD_OK;
    }
    if (e->method != 8)
        return md_fail(err, MD_ERR_UNSUPPORTED,
                       "%s: zip entry '%.200s' uses compression method %d (only stored and "
                       "deflate are supported)",
                       path, e->name, e->method);
    if (e->size > (uint64_t)MD_MAX_ELEMENTS * 4 || e->size > e->comp_size * 1100 + 1024)
        return md_fail(err, MD_ERR_FORMAT, "%s: zip entry '%.200s' has an implausible size",
                       path, e->name);
    uint8_t *out = malloc(e->size ? (size_t)e->size : 1);
    if (!out)
        return md_fail(err, MD_ERR_NOMEM, "%s: out of memory inflating '%.200s'", path, e->name);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -15) != Z_OK) {
        free(out);
        return md_fail(err, MD_ERR_NOMEM, "%s: cannot start inflate", path);
    }
    uint64_t in_left = e->comp_size, out_left = e->size;
    zs.next_in = (Bytef *)(uintptr_t)src;
    zs.next_out = out;
    int rc = Z_OK;
    while (rc == Z_OK) {
        uInt in_chunk = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
        uInt out_chunk = out_left > (1u << 30) ? (1u << 30) : (uInt)out_left;
        zs.avail_in = in_chunk;
        zs.avail_out = out_chunk;
        rc = inflate(&zs, Z_FINISH);
        in_left -= in_chunk - zs.avail_in;
        out_left -= out_chunk - zs.avail_out;
        bool progressed = zs.avail_in != in_chunk || zs.avail_out != out_chunk;
        if (rc == Z_BUF_ERROR && progressed && in_left > 0 && out_left > 0)
            rc = Z_OK; /* a 1 GiB window filled up: go on with the next one */
    }
    inflateEnd(&zs);
    if (rc != Z_STREAM_END || out_left != 0) {
        free(out);
        return md_fail(err, MD_ERR_FORMAT, "%s: zip entry '%.200s' does not inflate to %llu bytes",
                       path, e->name, (unsigned long long)e->size);
    }
    *data = out;
    *owned = out;
    *size = (size_t)e->size;
    return MD_OK;
}
