/*
 * blob_ref.c — encode and decode of blob references (docs/format/blob.md,
 * "Reference record"). Both sides apply one validity check (ref_valid on
 * the struct, the same rules field by field while decoding), so encode and
 * decode agree on what a reference may be.
 * Locking: none.
 */
#include "blob/blob_ref.h"

#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "util/coding.h"

/* A chunk entry's smallest encoding: hash and four one-byte varints. */
#define MIN_ENTRY (CAIRN_BLOB_HASH_SIZE + 4)

static bool loc_valid(const cairn_blob_loc *l)
{
    return l->file >= 1 && l->offset >= CAIRN_BLOB_FILE_HEADER_SIZE &&
           l->stored_len <= CAIRN_BLOB_REF_MAX_LEN;
}

static bool params_valid(const cairn_cdc_params *p)
{
    return p->min_size >= 1 && p->min_size <= p->avg_size &&
           p->avg_size <= p->max_size && (p->avg_size & (p->avg_size - 1)) == 0;
}

static bool ref_valid(const cairn_blob_ref *r)
{
    if (!r || !r->chunks || r->nchunks == 0)
        return false;
    if (r->type == CAIRN_BLOB_REF_SINGLE) {
        const cairn_blob_chunk *c = &r->chunks[0];
        return r->nchunks == 1 && c->raw_len <= CAIRN_BLOB_REF_MAX_LEN &&
               r->raw_len == c->raw_len && loc_valid(&c->loc);
    }
    if (r->type != CAIRN_BLOB_REF_CHUNKED || r->chunker == 0 ||
        !params_valid(&r->params))
        return false;
    uint64_t sum = 0;
    for (size_t i = 0; i < r->nchunks; i++) {
        const cairn_blob_chunk *c = &r->chunks[i];
        if (c->raw_len == 0 || c->raw_len > CAIRN_BLOB_REF_MAX_LEN ||
            !loc_valid(&c->loc) || sum > UINT64_MAX - c->raw_len)
            return false;
        sum += c->raw_len;
    }
    return sum == r->raw_len;
}

static size_t loc_size(const cairn_blob_loc *l)
{
    return cairn_varint_len(l->file) + cairn_varint_len(l->offset) +
           cairn_varint_len(l->stored_len);
}

size_t cairn_blob_ref_size(const cairn_blob_ref *r)
{
    if (!ref_valid(r))
        return 0;
    size_t n = 1 + cairn_varint_len(r->raw_len);
    if (r->type == CAIRN_BLOB_REF_SINGLE)
        return n + CAIRN_BLOB_HASH_SIZE + loc_size(&r->chunks[0].loc);
    n += 1 + cairn_varint_len(r->params.min_size) +
         cairn_varint_len(r->params.avg_size) +
         cairn_varint_len(r->params.max_size) + cairn_varint_len(r->nchunks);
    for (size_t i = 0; i < r->nchunks; i++)
        n += CAIRN_BLOB_HASH_SIZE + cairn_varint_len(r->chunks[i].raw_len) +
             loc_size(&r->chunks[i].loc);
    return n;
}

static uint8_t *put_loc(uint8_t *p, const cairn_blob_loc *l)
{
    p += cairn_put_varint64(p, l->file);
    p += cairn_put_varint64(p, l->offset);
    p += cairn_put_varint64(p, l->stored_len);
    return p;
}

int cairn_blob_ref_encode(const cairn_blob_ref *r, uint8_t *out, size_t cap,
                          size_t *len)
{
    size_t need = cairn_blob_ref_size(r);
    if (need == 0 || !out || cap < need)
        return CAIRN_EINVAL;
    uint8_t *p = out;
    *p++ = r->type;
    p += cairn_put_varint64(p, r->raw_len);
    if (r->type == CAIRN_BLOB_REF_SINGLE) {
        memcpy(p, r->chunks[0].hash, CAIRN_BLOB_HASH_SIZE);
        p = put_loc(p + CAIRN_BLOB_HASH_SIZE, &r->chunks[0].loc);
    } else {
        *p++ = r->chunker;
        p += cairn_put_varint64(p, r->params.min_size);
        p += cairn_put_varint64(p, r->params.avg_size);
        p += cairn_put_varint64(p, r->params.max_size);
        p += cairn_put_varint64(p, r->nchunks);
        for (size_t i = 0; i < r->nchunks; i++) {
            const cairn_blob_chunk *c = &r->chunks[i];
            memcpy(p, c->hash, CAIRN_BLOB_HASH_SIZE);
            p += CAIRN_BLOB_HASH_SIZE;
            p += cairn_put_varint64(p, c->raw_len);
            p = put_loc(p, &c->loc);
        }
    }
    if (len)
        *len = (size_t)(p - out);
    return 0;
}

/* A varint no larger than max. */
static const uint8_t *get_bounded(const uint8_t *p, const uint8_t *end,
                                  uint64_t max, uint64_t *v)
{
    p = p ? cairn_get_varint64(p, end, v) : NULL;
    return (p && *v <= max) ? p : NULL;
}

static const uint8_t *get_hash(const uint8_t *p, const uint8_t *end,
                               uint8_t *hash)
{
    if (!p || (size_t)(end - p) < CAIRN_BLOB_HASH_SIZE)
        return NULL;
    memcpy(hash, p, CAIRN_BLOB_HASH_SIZE);
    return p + CAIRN_BLOB_HASH_SIZE;
}

static const uint8_t *get_loc(const uint8_t *p, const uint8_t *end,
                              cairn_blob_loc *l)
{
    uint64_t sl = 0;
    p = get_bounded(p, end, UINT64_MAX, &l->file);
    p = get_bounded(p, end, UINT64_MAX, &l->offset);
    p = get_bounded(p, end, CAIRN_BLOB_REF_MAX_LEN, &sl);
    l->stored_len = (uint32_t)sl;
    return (p && loc_valid(l)) ? p : NULL;
}

void cairn_blob_ref_clear(cairn_blob_ref *r)
{
    if (!r)
        return;
    free(r->chunks);
    memset(r, 0, sizeof *r);
}

int cairn_blob_ref_decode(const uint8_t *p, size_t len, cairn_blob_ref *r)
{
    if (!r)
        return CAIRN_EINVAL;
    memset(r, 0, sizeof *r);
    if (!p || len < 1)
        return CAIRN_ECORRUPT;
    const uint8_t *end = p + len;
    uint8_t type = *p++;
    uint64_t raw = 0;
    if (type == CAIRN_BLOB_REF_SINGLE) {
        cairn_blob_chunk c;
        p = get_bounded(p, end, CAIRN_BLOB_REF_MAX_LEN, &raw);
        p = get_hash(p, end, c.hash);
        p = get_loc(p, end, &c.loc);
        if (!p || p != end)
            return CAIRN_ECORRUPT;
        c.raw_len = (uint32_t)raw;
        r->chunks = malloc(sizeof c);
        if (!r->chunks)
            return CAIRN_ENOMEM;
        r->chunks[0] = c;
        r->type = type;
        r->raw_len = raw;
        r->nchunks = 1;
        return 0;
    }
    if (type != CAIRN_BLOB_REF_CHUNKED)
        return CAIRN_ECORRUPT;
    uint64_t mn = 0, avg = 0, mx = 0, n = 0;
    p = get_bounded(p, end, UINT64_MAX, &raw);
    if (!p || p == end || *p == 0)
        return CAIRN_ECORRUPT;
    uint8_t chunker = *p++;
    p = get_bounded(p, end, UINT32_MAX, &mn);
    p = get_bounded(p, end, UINT32_MAX, &avg);
    p = get_bounded(p, end, UINT32_MAX, &mx);
    p = get_bounded(p, end, UINT64_MAX, &n);
    /* The count is bounded by the bytes left, so a damaged count cannot
     * ask for a large allocation. */
    if (!p || n == 0 || n > (uint64_t)(end - p) / MIN_ENTRY)
        return CAIRN_ECORRUPT;
    r->type = type;
    r->raw_len = raw;
    r->chunker = chunker;
    r->params.min_size = (uint32_t)mn;
    r->params.avg_size = (uint32_t)avg;
    r->params.max_size = (uint32_t)mx;
    if (!params_valid(&r->params)) {
        memset(r, 0, sizeof *r);
        return CAIRN_ECORRUPT;
    }
    r->chunks = malloc((size_t)n * sizeof *r->chunks);
    if (!r->chunks) {
        memset(r, 0, sizeof *r);
        return CAIRN_ENOMEM;
    }
    r->nchunks = (size_t)n;
    uint64_t sum = 0;
    for (size_t i = 0; i < r->nchunks; i++) {
        cairn_blob_chunk *c = &r->chunks[i];
        uint64_t cl = 0;
        p = get_hash(p, end, c->hash);
        p = get_bounded(p, end, CAIRN_BLOB_REF_MAX_LEN, &cl);
        p = get_loc(p, end, &c->loc);
        if (!p || cl == 0)
            goto bad;
        if (sum > UINT64_MAX - cl)
            goto bad;
        c->raw_len = (uint32_t)cl;
        sum += cl;
    }
    if (p != end || sum != raw)
        goto bad;
    return 0;
bad:
    cairn_blob_ref_clear(r);
    return CAIRN_ECORRUPT;
}
