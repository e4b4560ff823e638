/*
 * sst_builder.c — writes one sorted file (format: docs/format/sst.md).
 *
 * Flow: entries go into the current data block (prefix-compressed keys,
 * a restart point every restart_interval entries); when its raw size
 * reaches block_size the block is closed: compressed with the file's codec
 * (kept only if at least 1/8 smaller), framed (type byte + XXH3-64 over the
 * stored bytes and the type byte), appended to the write buffer, and its
 * last internal key and handle added to the index block. finish writes the
 * last data block, the filter (built from the 64-bit hashes of the distinct
 * user keys, 8 bytes per key kept until then), the index, properties and
 * (empty) metaindex blocks and the footer, then fdatasyncs.
 *
 * Invariants:
 *   - b->off is the file offset of the next block: bytes written plus bytes
 *     in the write buffer. The file is written strictly sequentially.
 *   - b->data.last holds the last internal key added (also after the data
 *     block was closed), so order checks and index keys come from it.
 *   - Once an I/O or memory error happened, b->status holds it and the
 *     builder only fails; the file is removed by finish or abandon.
 *
 * Locking: none. A builder belongs to one thread at a time.
 */
#include "sst/sst.h"

#include <inttypes.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#include <zstd.h>

#include "cairn.h"
#include "blob/blob_ref.h"
#include "sst/bloom.h"
#include "util/coding.h"

#define MIN_WRITE_BUFFER ((size_t)64 << 10)
#define MAX_BLOCK_SIZE ((size_t)256 << 20)

/* ---------- block builder (data, index) ---------- */

typedef struct blockb {
    uint8_t *buf; /* entries, then (at finish) the restart array */
    size_t len, cap;
    uint32_t *restarts;
    size_t nr, rcap;
    uint32_t interval, counter;
    uint64_t entries; /* in the current block */
    uint8_t *last;    /* last key added (kept across reset) */
    size_t lastlen, lastcap;
} blockb;

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    uint8_t *p = realloc(*buf, n);
    if (!p)
        return CAIRN_ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

/* Raw size the block would have if finished now. */
static size_t blockb_size(const blockb *bb)
{
    return bb->len + 4 * bb->nr + 4;
}

/* Append (key, hdr || val). */
static int blockb_add(blockb *bb, const uint8_t *key, size_t klen,
                      const uint8_t *hdr, size_t hlen, const uint8_t *val,
                      size_t vlen)
{
    size_t shared = 0;
    if (bb->entries > 0 && bb->counter < bb->interval) {
        size_t m = bb->lastlen < klen ? bb->lastlen : klen;
        while (shared < m && bb->last[shared] == key[shared])
            shared++;
    } else {
        if (bb->nr == bb->rcap) {
            size_t n = bb->rcap ? bb->rcap * 2 : 16;
            uint32_t *r = realloc(bb->restarts, n * sizeof *r);
            if (!r)
                return CAIRN_ENOMEM;
            bb->restarts = r;
            bb->rcap = n;
        }
        bb->restarts[bb->nr++] = (uint32_t)bb->len;
        bb->counter = 0;
    }
    size_t unshared = klen - shared;
    size_t need = bb->len + 15 + unshared + hlen + vlen;
    if (grow(&bb->buf, &bb->cap, need) ||
        grow(&bb->last, &bb->lastcap, klen ? klen : 1))
        return CAIRN_ENOMEM;
    uint8_t *p = bb->buf + bb->len;
    p += cairn_put_varint64(p, shared);
    p += cairn_put_varint64(p, unshared);
    p += cairn_put_varint64(p, hlen + vlen);
    memcpy(p, key + shared, unshared);
    p += unshared;
    if (hlen)
        memcpy(p, hdr, hlen);
    p += hlen;
    if (vlen)
        memcpy(p, val, vlen);
    p += vlen;
    bb->len = (size_t)(p - bb->buf);
    memcpy(bb->last + shared, key + shared, unshared);
    bb->lastlen = klen;
    bb->counter++;
    bb->entries++;
    return 0;
}

/* Append the restart array; the result is bb->buf[0, return) and the buffer
 * has room for a block trailer after it. */
static int blockb_finish(blockb *bb, size_t *rawlen)
{
    size_t raw = blockb_size(bb);
    if (grow(&bb->buf, &bb->cap, raw + CAIRN_SST_TRAILER_SIZE))
        return CAIRN_ENOMEM;
    uint8_t *p = bb->buf + bb->len;
    for (size_t i = 0; i < bb->nr; i++, p += 4)
        cairn_put_u32(p, bb->restarts[i]);
    cairn_put_u32(p, (uint32_t)bb->nr);
    *rawlen = raw;
    return 0;
}

static void blockb_reset(blockb *bb, size_t keep_cap)
{
    bb->len = 0;
    bb->nr = 0;
    bb->counter = 0;
    bb->entries = 0;
    if (bb->cap > keep_cap) { /* after a huge entry, do not hold its memory */
        free(bb->buf);
        bb->buf = NULL;
        bb->cap = 0;
    }
}

static void blockb_free(blockb *bb)
{
    free(bb->buf);
    free(bb->restarts);
    free(bb->last);
}

/* ---------- the builder ---------- */

/* A blob a CAIRN_SST_BLOB entry refers to (one per chunk), for the blob
 * references block. */
typedef struct bref {
    uint8_t hash[CAIRN_BLOB_HASH_SIZE];
    uint64_t count;
    cairn_blob_loc loc;
} bref;

static int bref_cmp(const void *a, const void *b)
{
    return memcmp(((const bref *)a)->hash, ((const bref *)b)->hash,
                  CAIRN_BLOB_HASH_SIZE);
}

struct cairn_sst_builder {
    cairn_env *env;
    char *path;
    cairn_file *f;
    cairn_sst_options opt;
    int status;

    blockb data, index;
    uint8_t *ikey; /* internal key being added */
    size_t ikcap;

    uint8_t *wbuf; /* write buffer */
    size_t wlen, wcap;
    uint64_t woff; /* file offset of wbuf[0] */
    uint64_t off;  /* file offset of the next block */

    uint8_t *scratch; /* compression output */
    size_t scap;
    ZSTD_CCtx *cctx;

    uint64_t *hashes; /* bloom hashes of distinct user keys */
    size_t nhash, hcap;

    cairn_sst_props p; /* accumulated properties (keys unset) */
    uint8_t *smallest; /* first internal key */
    size_t smallest_len;

    bref *brefs; /* one per chunk of every blob reference added */
    size_t nbref, bref_cap;
};

void cairn_sst_options_init(cairn_sst_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->block_size = 4096;
    opt->restart_interval = 4;
    opt->codec = CAIRN_SST_CODEC_LZ4;
    opt->zstd_level = 3;
    opt->bloom_bits_per_key = 10;
    opt->write_buffer_size = (size_t)256 << 10;
}

void cairn_sst_props_clear(cairn_sst_props *props)
{
    if (!props)
        return;
    free(props->smallest_key);
    free(props->largest_key);
    memset(props, 0, sizeof *props);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int cairn_sst_builder_new(cairn_env *env, const char *path,
                          const cairn_sst_options *opt,
                          cairn_sst_builder **out)
{
    if (!out)
        return CAIRN_EINVAL;
    *out = NULL;
    if (!env || !path)
        return CAIRN_EINVAL;
    cairn_sst_options o;
    if (opt)
        o = *opt;
    else
        cairn_sst_options_init(&o);
    if (o.block_size == 0 || o.block_size > MAX_BLOCK_SIZE ||
        o.restart_interval == 0 || o.bloom_bits_per_key > 64 ||
        (o.bloom_kind != 0 && o.bloom_kind != CAIRN_BLOOM_KIND_DOUBLE &&
         o.bloom_kind != CAIRN_BLOOM_KIND_BLOCKED))
        return CAIRN_EINVAL;
    if (o.codec != CAIRN_SST_CODEC_NONE && o.codec != CAIRN_SST_CODEC_LZ4 &&
        o.codec != CAIRN_SST_CODEC_ZSTD)
        return CAIRN_EINVAL;
    if (o.codec == CAIRN_SST_CODEC_ZSTD &&
        (o.zstd_level < ZSTD_minCLevel() || o.zstd_level > ZSTD_maxCLevel()))
        return CAIRN_EINVAL;
    if (o.codec != CAIRN_SST_CODEC_ZSTD)
        o.zstd_level = 0;
    if (o.write_buffer_size < MIN_WRITE_BUFFER)
        o.write_buffer_size = MIN_WRITE_BUFFER;

    cairn_sst_builder *b = calloc(1, sizeof *b);
    if (!b)
        return CAIRN_ENOMEM;
    b->env = env;
    b->opt = o;
    b->data.interval = o.restart_interval;
    b->index.interval = 16;
    b->path = strdup(path);
    b->wcap = o.write_buffer_size;
    b->wbuf = malloc(b->wcap);
    if (o.codec == CAIRN_SST_CODEC_ZSTD)
        b->cctx = ZSTD_createCCtx();
    if (!b->path || !b->wbuf || (o.codec == CAIRN_SST_CODEC_ZSTD && !b->cctx)) {
        cairn_sst_builder_abandon(b);
        return CAIRN_ENOMEM;
    }
    int rc = cairn_env_open(env, path,
                            CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                CAIRN_OPEN_EXCL,
                            &b->f);
    if (rc) {
        b->f = NULL;
        free(b->path);
        b->path = NULL; /* not ours: do not unlink */
        cairn_sst_builder_abandon(b);
        return rc;
    }
    b->p.block_size = o.block_size;
    b->p.restart_interval = o.restart_interval;
    b->p.bloom_bits_per_key = o.bloom_bits_per_key;
    b->p.codec = o.codec;
    b->p.zstd_level = o.zstd_level;
    b->p.creation_ts_us = now_us();
    *out = b;
    return 0;
}

static int flush_wbuf(cairn_sst_builder *b)
{
    if (b->wlen == 0)
        return 0;
    int rc = cairn_file_write_at(b->f, b->woff, b->wbuf, b->wlen);
    if (rc)
        return rc;
    b->woff += b->wlen;
    b->wlen = 0;
    return 0;
}

/* Append n bytes to the file through the write buffer. */
static int write_out(cairn_sst_builder *b, const uint8_t *p, size_t n)
{
    if (b->wlen + n > b->wcap) {
        int rc = flush_wbuf(b);
        if (rc)
            return rc;
    }
    if (n >= b->wcap) { /* a big block: write it straight from its buffer */
        int rc = cairn_file_write_at(b->f, b->woff, p, n);
        if (rc)
            return rc;
        b->woff += n;
    } else {
        memcpy(b->wbuf + b->wlen, p, n);
        b->wlen += n;
    }
    b->off += n;
    return 0;
}

/* Frame and append a block whose raw contents are data[0, n); data has
 * room for CAIRN_SST_TRAILER_SIZE more bytes. codec: what to try. */
static int emit_block(cairn_sst_builder *b, uint8_t *data, size_t n,
                      cairn_sst_codec codec, uint64_t *off, uint64_t *size)
{
    uint8_t *stored = data;
    size_t slen = n;
    uint8_t type = CAIRN_SST_CODEC_NONE;
    if (codec != CAIRN_SST_CODEC_NONE && n > 0 && n <= LZ4_MAX_INPUT_SIZE) {
        size_t bound = codec == CAIRN_SST_CODEC_LZ4
                           ? (size_t)LZ4_compressBound((int)n)
                           : ZSTD_compressBound(n);
        if (grow(&b->scratch, &b->scap,
                 CAIRN_VARINT64_MAX + bound + CAIRN_SST_TRAILER_SIZE))
            return CAIRN_ENOMEM;
        size_t h = cairn_put_varint64(b->scratch, n), clen = 0;
        if (codec == CAIRN_SST_CODEC_LZ4) {
            int c = LZ4_compress_default((const char *)data,
                                         (char *)b->scratch + h, (int)n,
                                         (int)bound);
            if (c > 0)
                clen = h + (size_t)c;
        } else {
            size_t c = ZSTD_compressCCtx(b->cctx, b->scratch + h, bound, data,
                                         n, b->opt.zstd_level);
            if (!ZSTD_isError(c))
                clen = h + c;
        }
        if (clen > 0 && clen < n - n / 8) {
            stored = b->scratch;
            slen = clen;
            type = (uint8_t)codec;
        }
    }
    stored[slen] = type;
    cairn_put_u64(stored + slen + 1, XXH3_64bits(stored, slen + 1));
    *off = b->off;
    *size = slen;
    int rc = write_out(b, stored, slen + CAIRN_SST_TRAILER_SIZE);
    if (b->scap > ((size_t)4 << 20) && b->scap > 4 * b->opt.block_size) {
        free(b->scratch); /* after a huge block, do not hold its memory */
        b->scratch = NULL;
        b->scap = 0;
    }
    return rc;
}

static int flush_data_block(cairn_sst_builder *b)
{
    if (b->data.entries == 0)
        return 0;
    size_t raw;
    uint64_t off, size;
    int rc = blockb_finish(&b->data, &raw);
    if (!rc)
        rc = emit_block(b, b->data.buf, raw, b->opt.codec, &off, &size);
    if (rc)
        return rc;
    /* emit_block left the raw contents in place (the trailer after). */
    if (b->opt.fill_cache)
        cairn_sst_cache_fill(b->opt.fill_cache, b->opt.fill_file_id, off,
                             b->data.buf, raw);
    b->p.raw_data_size += raw;
    b->p.stored_data_size += size + CAIRN_SST_TRAILER_SIZE;
    b->p.data_blocks++;
    uint8_t h[2 * CAIRN_VARINT64_MAX];
    size_t hl = cairn_put_varint64(h, off);
    hl += cairn_put_varint64(h + hl, size);
    rc = blockb_add(&b->index, b->data.last, b->data.lastlen, h, hl, NULL, 0);
    blockb_reset(&b->data, 4 * b->opt.block_size + (1u << 16));
    return rc;
}

int cairn_sst_builder_add(cairn_sst_builder *b, const void *key, size_t klen,
                          uint64_t version, uint64_t ts_us, cairn_sst_kind kind,
                          const void *value, size_t vlen)
{
    if (!b || (!key && klen) || (!value && vlen))
        return CAIRN_EINVAL;
    if (kind != CAIRN_SST_PUT && kind != CAIRN_SST_DELETE &&
        kind != CAIRN_SST_BLOB)
        return CAIRN_EINVAL;
    if (kind == CAIRN_SST_DELETE && vlen)
        return CAIRN_EINVAL;
    if (klen > CAIRN_SST_MAX_KEY || vlen > CAIRN_SST_MAX_VALUE)
        return CAIRN_ETOOLARGE;
    if (b->status)
        return b->status;
    if (kind == CAIRN_SST_BLOB) {
        /* Its blobs go into the blob references block. */
        cairn_blob_ref ref;
        int drc = cairn_blob_ref_decode(value, vlen, &ref);
        if (drc == 0 && b->nbref + ref.nchunks > b->bref_cap) {
            size_t nc = b->bref_cap ? b->bref_cap * 2 : 64;
            while (nc < b->nbref + ref.nchunks)
                nc *= 2;
            bref *p = realloc(b->brefs, nc * sizeof *p);
            if (!p)
                drc = CAIRN_ENOMEM;
            else {
                b->brefs = p;
                b->bref_cap = nc;
            }
        }
        if (drc == 0) {
            for (size_t i = 0; i < ref.nchunks; i++) {
                bref *r = &b->brefs[b->nbref++];
                memcpy(r->hash, ref.chunks[i].hash, CAIRN_BLOB_HASH_SIZE);
                r->count = 1;
                r->loc = ref.chunks[i].loc;
            }
        }
        cairn_blob_ref_clear(&ref);
        if (drc == CAIRN_ENOMEM)
            return b->status = drc;
        if (drc)
            return CAIRN_EINVAL; /* not a reference record */
    }
    if (grow(&b->ikey, &b->ikcap, klen + 8))
        return b->status = CAIRN_ENOMEM;
    if (klen)
        memcpy(b->ikey, key, klen);
    cairn_sst_put_trailer(b->ikey + klen, version);
    size_t iklen = klen + 8;

    bool new_key = true;
    if (b->p.entries > 0) {
        const uint8_t *last = b->data.last;
        size_t lastlen = b->data.lastlen;
        if (cairn_sst_ikey_cmp(b->ikey, iklen, last, lastlen) <= 0)
            return CAIRN_EINVAL;
        new_key = lastlen != iklen || memcmp(last, b->ikey, klen) != 0;
    }
    if (new_key && b->opt.bloom_bits_per_key) {
        if (b->nhash == b->hcap) {
            size_t n = b->hcap ? b->hcap * 2 : 256;
            uint64_t *h = realloc(b->hashes, n * sizeof *h);
            if (!h)
                return b->status = CAIRN_ENOMEM;
            b->hashes = h;
            b->hcap = n;
        }
        b->hashes[b->nhash++] = cairn_bloom_hash(key, klen);
    }
    if (b->p.entries == 0) {
        b->smallest = malloc(iklen);
        if (!b->smallest)
            return b->status = CAIRN_ENOMEM;
        memcpy(b->smallest, b->ikey, iklen);
        b->smallest_len = iklen;
    }

    uint8_t hdr[1 + CAIRN_VARINT64_MAX];
    hdr[0] = (uint8_t)kind;
    size_t hlen = 1 + cairn_put_varint64(hdr + 1, ts_us);
    int rc = blockb_add(&b->data, b->ikey, iklen, hdr, hlen, value, vlen);
    if (rc)
        return b->status = rc;

    cairn_sst_props *p = &b->p;
    if (p->entries == 0) {
        p->min_version = p->max_version = version;
        p->min_ts = p->max_ts = ts_us;
    } else {
        if (version < p->min_version)
            p->min_version = version;
        if (version > p->max_version)
            p->max_version = version;
        if (ts_us < p->min_ts)
            p->min_ts = ts_us;
        if (ts_us > p->max_ts)
            p->max_ts = ts_us;
    }
    p->entries++;
    p->deletes += kind == CAIRN_SST_DELETE;
    p->distinct_keys += new_key;
    p->raw_key_bytes += klen;
    p->raw_value_bytes += vlen;

    if (blockb_size(&b->data) >= b->opt.block_size) {
        rc = flush_data_block(b);
        if (rc)
            return b->status = rc;
    }
    return 0;
}

uint64_t cairn_sst_builder_file_size(const cairn_sst_builder *b)
{
    return b ? b->off : 0;
}

uint64_t cairn_sst_builder_entries(const cairn_sst_builder *b)
{
    return b ? b->p.entries : 0;
}

static void builder_free(cairn_sst_builder *b, bool unlink_file)
{
    if (unlink_file && b->opt.fill_cache)
        cairn_block_cache_erase_file(b->opt.fill_cache, b->opt.fill_file_id);
    if (b->f)
        cairn_file_close(b->f);
    if (unlink_file && b->path)
        cairn_env_unlink(b->env, b->path);
    blockb_free(&b->data);
    blockb_free(&b->index);
    free(b->ikey);
    free(b->wbuf);
    free(b->scratch);
    ZSTD_freeCCtx(b->cctx);
    free(b->hashes);
    free(b->smallest);
    free(b->brefs);
    free(b->path);
    free(b);
}

void cairn_sst_builder_abandon(cairn_sst_builder *b)
{
    if (b)
        builder_free(b, true);
}

/* Split an internal key into a malloc'ed user key copy and its version. */
static int split_copy(const uint8_t *ik, size_t iklen, uint8_t **key,
                      size_t *klen, uint64_t *version)
{
    *klen = iklen - 8;
    *key = malloc(*klen ? *klen : 1);
    if (!*key)
        return CAIRN_ENOMEM;
    memcpy(*key, ik, *klen);
    *version = cairn_sst_get_trailer(ik + *klen);
    return 0;
}

/* The properties block's raw contents (docs/format/sst.md), in a malloc'ed
 * buffer with room for the trailer. */
static int props_encode(const cairn_sst_builder *b, uint8_t **out, size_t *len)
{
    const cairn_sst_props *p = &b->p;
    size_t slen = p->entries ? b->smallest_len : 0;
    size_t llen = p->entries ? b->data.lastlen : 0;
    size_t cap = 128 + 2 * CAIRN_VARINT64_MAX + slen + llen +
                 CAIRN_SST_TRAILER_SIZE;
    uint8_t *buf = calloc(1, cap);
    if (!buf)
        return CAIRN_ENOMEM;
    cairn_put_u32(buf + 0, 128);
    buf[4] = (uint8_t)p->codec;
    buf[5] = (uint8_t)p->bloom_bits_per_key;
    cairn_put_u32(buf + 8, (uint32_t)p->zstd_level);
    cairn_put_u32(buf + 12, p->restart_interval);
    cairn_put_u64(buf + 16, p->block_size);
    cairn_put_u64(buf + 24, p->entries);
    cairn_put_u64(buf + 32, p->deletes);
    cairn_put_u64(buf + 40, p->distinct_keys);
    cairn_put_u64(buf + 48, p->min_version);
    cairn_put_u64(buf + 56, p->max_version);
    cairn_put_u64(buf + 64, p->min_ts);
    cairn_put_u64(buf + 72, p->max_ts);
    cairn_put_u64(buf + 80, p->raw_key_bytes);
    cairn_put_u64(buf + 88, p->raw_value_bytes);
    cairn_put_u64(buf + 96, p->raw_data_size);
    cairn_put_u64(buf + 104, p->stored_data_size);
    cairn_put_u64(buf + 112, p->data_blocks);
    cairn_put_u64(buf + 120, p->creation_ts_us);
    size_t n = 128;
    n += cairn_put_varint64(buf + n, slen);
    if (slen)
        memcpy(buf + n, b->smallest, slen);
    n += slen;
    n += cairn_put_varint64(buf + n, llen);
    if (llen)
        memcpy(buf + n, b->data.last, llen);
    n += llen;
    *out = buf;
    *len = n;
    return 0;
}

/* The blob references block (sorted by hash, one entry per distinct blob
 * with the number of entries of this file naming it), then the metaindex
 * naming it; *moff and *msize get the metaindex's handle. */
static int emit_blob_refs(cairn_sst_builder *b, uint64_t *moff,
                          uint64_t *msize)
{
    qsort(b->brefs, b->nbref, sizeof *b->brefs, bref_cmp);
    size_t n = 0;
    for (size_t i = 0; i < b->nbref; i++) {
        if (n > 0 && memcmp(b->brefs[n - 1].hash, b->brefs[i].hash,
                            CAIRN_BLOB_HASH_SIZE) == 0)
            b->brefs[n - 1].count += b->brefs[i].count;
        else
            b->brefs[n++] = b->brefs[i];
    }
    size_t cap = CAIRN_VARINT64_MAX +
                 n * (CAIRN_BLOB_HASH_SIZE + 4 * CAIRN_VARINT64_MAX) +
                 CAIRN_SST_TRAILER_SIZE;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return CAIRN_ENOMEM;
    size_t len = cairn_put_varint64(buf, n);
    for (size_t i = 0; i < n; i++) {
        const bref *r = &b->brefs[i];
        memcpy(buf + len, r->hash, CAIRN_BLOB_HASH_SIZE);
        len += CAIRN_BLOB_HASH_SIZE;
        len += cairn_put_varint64(buf + len, r->count);
        len += cairn_put_varint64(buf + len, r->loc.file);
        len += cairn_put_varint64(buf + len, r->loc.offset);
        len += cairn_put_varint64(buf + len, r->loc.stored_len);
    }
    uint64_t off, size;
    int rc = emit_block(b, buf, len, CAIRN_SST_CODEC_NONE, &off, &size);
    free(buf);
    if (rc)
        return rc;
    blockb mb;
    memset(&mb, 0, sizeof mb);
    mb.interval = 16;
    uint8_t hdl[2 * CAIRN_VARINT64_MAX];
    size_t hl = cairn_put_varint64(hdl, off);
    hl += cairn_put_varint64(hdl + hl, size);
    rc = blockb_add(&mb, (const uint8_t *)CAIRN_SST_BLOB_REFS_NAME,
                    strlen(CAIRN_SST_BLOB_REFS_NAME), hdl, hl, NULL, 0);
    size_t raw = 0;
    if (!rc)
        rc = blockb_finish(&mb, &raw);
    if (!rc)
        rc = emit_block(b, mb.buf, raw, CAIRN_SST_CODEC_NONE, moff, msize);
    blockb_free(&mb);
    return rc;
}

static int finish_file(cairn_sst_builder *b, cairn_sst_props *props_out)
{
    int rc = flush_data_block(b);
    if (rc)
        return rc;
    uint64_t h[4][2] = {{0}}; /* metaindex, filter, index, properties */

    if (b->opt.bloom_bits_per_key && b->nhash > 0) {
        int kind = b->opt.bloom_kind ? b->opt.bloom_kind : CAIRN_BLOOM_KIND;
        size_t flen = cairn_bloom_size(kind, b->nhash,
                                       b->opt.bloom_bits_per_key);
        uint8_t *fb = malloc(flen + CAIRN_SST_TRAILER_SIZE);
        if (!fb)
            return CAIRN_ENOMEM;
        cairn_bloom_build(kind, b->hashes, b->nhash,
                          b->opt.bloom_bits_per_key, fb);
        rc = emit_block(b, fb, flen, CAIRN_SST_CODEC_NONE, &h[1][0], &h[1][1]);
        free(fb);
        if (rc)
            return rc;
    }
    free(b->hashes);
    b->hashes = NULL;

    size_t raw;
    rc = blockb_finish(&b->index, &raw);
    if (!rc)
        rc = emit_block(b, b->index.buf, raw, b->opt.codec, &h[2][0], &h[2][1]);
    if (rc)
        return rc;

    uint8_t *pb;
    rc = props_encode(b, &pb, &raw);
    if (rc)
        return rc;
    rc = emit_block(b, pb, raw, b->opt.codec, &h[3][0], &h[3][1]);
    free(pb);
    if (rc)
        return rc;

    if (b->nbref == 0) {
        uint8_t meta[4 + CAIRN_SST_TRAILER_SIZE] = {0}; /* empty metaindex */
        rc = emit_block(b, meta, 4, CAIRN_SST_CODEC_NONE, &h[0][0], &h[0][1]);
    } else {
        rc = emit_blob_refs(b, &h[0][0], &h[0][1]);
    }
    if (rc)
        return rc;

    uint8_t footer[CAIRN_SST_FOOTER_SIZE];
    memcpy(footer, CAIRN_SST_MAGIC, 8);
    cairn_put_u32(footer + 8, CAIRN_SST_FORMAT_VERSION);
    cairn_put_u32(footer + 12, 0);
    for (int i = 0; i < 4; i++) {
        cairn_put_u64(footer + 16 + 16 * i, h[i][0]);
        cairn_put_u64(footer + 24 + 16 * i, h[i][1]);
    }
    cairn_put_u64(footer + 80, XXH3_64bits(footer, 80));
    rc = write_out(b, footer, sizeof footer);
    if (!rc)
        rc = flush_wbuf(b);
    if (!rc)
        rc = cairn_file_sync(b->f, CAIRN_SYNC_DATA);
    if (!rc) {
        rc = cairn_file_close(b->f);
        b->f = NULL;
    }
    if (rc)
        return rc;

    if (props_out) {
        cairn_sst_props *p = props_out;
        *p = b->p;
        p->file_size = b->off;
        p->filter_size = h[1][1];
        p->index_size = h[2][1];
        p->smallest_key = p->largest_key = NULL;
        if (b->p.entries) {
            rc = split_copy(b->smallest, b->smallest_len, &p->smallest_key,
                            &p->smallest_klen, &p->smallest_version);
            if (!rc)
                rc = split_copy(b->data.last, b->data.lastlen, &p->largest_key,
                                &p->largest_klen, &p->largest_version);
            if (rc)
                return rc;
        }
    }
    return 0;
}

int cairn_sst_builder_finish(cairn_sst_builder *b, cairn_sst_props *props_out)
{
    if (props_out)
        memset(props_out, 0, sizeof *props_out);
    if (!b)
        return CAIRN_EINVAL;
    int rc = b->status ? b->status : finish_file(b, props_out);
    if (rc)
        cairn_sst_props_clear(props_out);
    builder_free(b, rc != 0);
    return rc;
}
