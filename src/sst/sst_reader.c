/*
 * sst_reader.c — reads sorted files (format: docs/format/sst.md): open
 * (footer, metaindex, filter, index, properties, all verified and kept in
 * memory), iterators, point lookups, verify and dump.
 *
 * Blocks: a data block is read whole (stored bytes + trailer), its XXH3
 * checked before anything else looks at it, decompressed, and its restart
 * array checked (R >= 1, restart[0] = 0, increasing, before the array).
 * The decoded block (sst_block) then lives either in the block cache (key
 * (file_id, offset), charge = its allocation) pinned by a handle, or in
 * memory owned by one iterator / one pin. Every entry parse is
 * bounds-checked against the restart array, so a block that passed its
 * checksum but is malformed (a writer bug, a foreign file) yields
 * CAIRN_ECORRUPT, never an out-of-bounds read.
 *
 * Iterator invariants (when valid): blk is block bi of the index; cur is the
 * offset of the current entry and next the offset just after it;
 * restart(ri) <= cur < restart(ri + 1); key holds the current internal key
 * (prefix-decoded from the previous entries since restart(ri)).
 *
 * Locking: a reader is immutable after open, so readers, gets and iterators
 * on one file run in parallel without locks: each iterator (and each get,
 * which uses a stack iterator) has its own key buffer, block handle and
 * decompression context; the file handle allows concurrent read_at and the
 * block cache does its own locking.
 */
#include "sst/sst.h"

#include <inttypes.h>
#include <limits.h>
#include <lz4.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <zstd.h>

#include "cairn.h"
#include "util/keycmp.h"
#include <time.h>
#include "sst/bloom.h"
#include "util/coding.h"

#define MAX_STORED_BLOCK (CAIRN_SST_MAX_RAW_BLOCK + ((size_t)1 << 24))

/* A decoded block: raw contents in data[0, size). One allocation, starting
 * at data: the raw contents, padding to 8 bytes, for a data block the
 * restart words (nw of them, right before this header), then this header,
 * then for a data block room for its block cache entry (block_room), so
 * that the cache entry, the header, the restart array (the end of the
 * contents) and the words sit together: a seek reads them from a few
 * adjacent cache lines instead of probing restart entries all over the
 * block. */
#define BLK_PREFIX 24
typedef struct sst_block {
    uint8_t *data;     /* the raw contents; the allocation's start */
    uint32_t size;     /* raw contents length */
    uint32_t restarts; /* offset of the restart array (= end of entries) */
    uint32_t nr;       /* number of restarts */
    uint32_t nw;       /* restart words: nr in a data block, else 0 */
    /* Data blocks: every restart key's user key starts with prefix[0, cpl)
     * (the longest prefix the first and last share, at most BLK_PREFIX
     * bytes); word i is key_word of restart i's user key after it. */
    uint32_t cpl;
    uint8_t prefix[BLK_PREFIX];
} sst_block;

static const uint64_t *block_words(const sst_block *b)
{
    return (const uint64_t *)(const void *)b - b->nw;
}

static void block_free(sst_block *b)
{
    if (b)
        free(b->data);
}

typedef struct idx_ent {
    uint64_t off, size; /* handle of the data block */
    size_t koff;        /* its last internal key: keys[koff, koff + klen) */
    size_t klen;
} idx_ent;

struct cairn_sst_reader {
    cairn_env *env;
    cairn_file *f;
    char *path;
    uint64_t file_id;
    cairn_block_cache *cache;
    uint64_t file_size, footer_off, data_end;
    uint64_t meta[4][2]; /* footer handles: metaindex, filter, index, props */
    uint64_t brefs[2];   /* blob references block (size 0: none) */
    idx_ent *idx;
    size_t nidx;
    uint8_t *keys; /* index keys */
    /* Every index key's user key starts with the same cpl bytes (those of
     * the first; the longest prefix the first and last share). dk[i] is
     * the word of index key i's user key bytes [cpl, cpl + 8), zero-padded
     * (key_word): a dense array, so the index search's steps touch 8 bytes
     * each and mostly stay in the processor's caches; where two words
     * differ they order the keys (key_word). */
    size_t cpl;
    uint64_t *dk;
    /* boff[i] = idx[i].off (in dk's allocation): what a block cache hit
     * needs, without touching the larger idx entry. */
    uint64_t *boff;
    /* hint[i]: where data block i last sat in the block cache (its cache
     * entry, just after its header), or NULL; only ever prefetched
     * (cairn_sst_locate), never dereferenced, so a stale one (the block
     * evicted, its memory reused) is harmless. */
    _Atomic(void *) *hint;
    /* The filter block's contents, in a copy whose bit array is 64-byte
     * aligned (a blocked filter's block is one cache line); NULL: no
     * filter, or one of a kind this reader does not know. */
    const uint8_t *fdata;
    size_t fsize;
    void *fmem; /* fdata's allocation */
    sst_block *propblk; /* properties block (props' keys point into it) */
    cairn_sst_read_stats *stats; /* data block reads are counted here (NULL:
                                    not counted) */
    cairn_sst_props props;
};

/* A growable key buffer with inline room for short keys (never copied by
 * value once in use). */
typedef struct kbuf {
    uint8_t *p;
    size_t len, cap;
    uint8_t inl[112];
} kbuf;

static void kbuf_init(kbuf *k)
{
    k->p = k->inl;
    k->len = 0;
    k->cap = sizeof k->inl;
}

static void kbuf_free(kbuf *k)
{
    if (k->p != k->inl)
        free(k->p);
    kbuf_init(k);
}

/* Keep the first `keep` bytes, append n bytes of src. */
static int kbuf_set(kbuf *k, size_t keep, const uint8_t *src, size_t n)
{
    size_t need = keep + n;
    if (need > k->cap) {
        size_t c = k->cap * 2;
        while (c < need)
            c *= 2;
        uint8_t *p = malloc(c);
        if (!p)
            return CAIRN_ENOMEM;
        memcpy(p, k->p, keep);
        if (k->p != k->inl)
            free(k->p);
        k->p = p;
        k->cap = c;
    }
    memcpy(k->p + keep, src, n);
    k->len = need;
    return 0;
}

/* ---------- order ---------- */

static inline int ukey_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                           size_t blen)
{
    return cairn_key_cmp(a, alen, b, blen);
}

int cairn_sst_ikey_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                       size_t blen)
{
    int c = ukey_cmp(a, alen - 8, b, blen - 8);
    return c ? c : memcmp(a + alen - 8, b + blen - 8, 8);
}

/* The word of user key bytes k[from, from + 8) (k has n bytes), zero-padded,
 * big-endian. Two keys that agree before `from` and whose words differ
 * order as their words do: at the first differing byte either both keys
 * have a byte, or the shorter one has ended (a 0 pad) and the longer has a
 * non-zero byte, and the shorter key sorts first. Equal words decide
 * nothing. */
static uint64_t key_word(const uint8_t *k, size_t n, size_t from)
{
    if (n >= from + 8)
        return cairn_key_word_(k + from);
    uint8_t buf[8] = {0};
    if (n > from)
        memcpy(buf, k + from, n - from);
    return cairn_key_word_(buf);
}

/* The first of w[0, n) (ascending) that is >= x, n if none; branch-free
 * halving (a conditional move per step: the steps of a search over keys
 * are unpredictable, and mispredicted branches cost more than the loads). */
static size_t word_lower_bound(const uint64_t *w, size_t n, uint64_t x)
{
    if (n == 0)
        return 0;
    const uint64_t *base = w;
    while (n > 1) {
        size_t half = n / 2;
        base = base[half - 1] < x ? base + half : base;
        n -= half;
    }
    return (size_t)(base - w) + (*base < x);
}

/* [*lo, *hi): the words of w[0, n) equal to x. The run of equal words is
 * usually empty or one long: its end is found by galloping from its start
 * (the neighbouring words, mostly in the cache line just loaded), not by
 * a second search over the whole rest. */
static void word_equal_range(const uint64_t *w, size_t n, uint64_t x,
                             size_t *lo, size_t *hi)
{
    size_t l = word_lower_bound(w, n, x);
    *lo = l;
    if (l == n || w[l] != x) {
        *hi = l;
        return;
    }
    if (x == UINT64_MAX) {
        *hi = n;
        return;
    }
    /* w[l, from) == x; w[to] > x (or to == n); the end lies in [from, to]. */
    size_t from = l + 1, step = 1, to;
    for (;;) {
        to = from - 1 + step;
        if (to >= n) {
            to = n;
            break;
        }
        if (w[to] != x)
            break;
        from = to + 1;
        step *= 2;
    }
    *hi = from + word_lower_bound(w + from, to - from, x + 1);
}

/* Internal key ik against the target (tk, tv). */
static int cmp_target(const uint8_t *ik, size_t iklen, const uint8_t *tk,
                      size_t tklen, uint64_t tv)
{
    int c = ukey_cmp(ik, iklen - 8, tk, tklen);
    if (c)
        return c;
    uint64_t v = cairn_sst_get_trailer(ik + iklen - 8);
    return v > tv ? -1 : v < tv;
}

/* ---------- errors ---------- */

static int fail_msg(char *errmsg, int rc, const char *path, uint64_t off,
                    const char *fmt, ...)
{
    if (errmsg) {
        char what[160];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        snprintf(errmsg, CAIRN_SST_ERRMSG_LEN, "%s at offset %" PRIu64 " in %s",
                 what, off, path);
    }
    return rc;
}

#define CORRUPT(errmsg, path, off, ...)                                        \
    fail_msg(errmsg, CAIRN_ECORRUPT, path, off, __VA_ARGS__)

/* ---------- blocks ---------- */

static uint32_t restart_at(const sst_block *b, uint32_t i)
{
    return cairn_get_u32(b->data + b->restarts + 4 * (size_t)i);
}

/* Check the restart array of a decoded block; fills restarts and nr. */
static bool block_parse_restarts(sst_block *b)
{
    if (b->size < 4)
        return false;
    uint32_t nr = cairn_get_u32(b->data + b->size - 4);
    if (nr == 0) {
        b->nr = 0;
        b->restarts = 0;
        return b->size == 4;
    }
    if (nr > (b->size - 4) / 4)
        return false;
    b->nr = nr;
    b->restarts = b->size - 4 - 4 * nr;
    uint32_t prev = 0;
    for (uint32_t i = 0; i < nr; i++) {
        uint32_t r = restart_at(b, i);
        if ((i == 0 && r != 0) || (i > 0 && r <= prev) || r >= b->restarts)
            return false;
        prev = r;
    }
    return true;
}

static uint32_t parse_entry(const sst_block *b, uint32_t p, uint32_t *shared,
                            const uint8_t **delta, uint32_t *unshared,
                            const uint8_t **val, uint32_t *vlen);

/* What read_block checks and builds. */
enum { BLK_RAW, BLK_ENTRIES, BLK_DATA };

/* The user key of restart i of a data block (restart entries hold their
 * whole key, at least the 8-byte trailer); false if malformed. */
static bool restart_ukey(const sst_block *b, uint32_t i, const uint8_t **k,
                         size_t *klen)
{
    uint32_t shared, unshared, vlen;
    const uint8_t *val;
    if (!parse_entry(b, restart_at(b, i), &shared, k, &unshared, &val,
                     &vlen) ||
        shared != 0 || unshared < 8)
        return false;
    *klen = unshared - 8;
    return true;
}

/* Put the header (and for a data block the restart words) behind the raw
 * contents buf[0, size) and shrink or grow the allocation to fit. On
 * failure buf is freed; *what says why (NULL: out of memory). */
static sst_block *block_finish(uint8_t *buf, uint32_t size, int kind,
                               const char **what)
{
    sst_block t = {.data = buf, .size = size};
    *what = NULL;
    if (kind != BLK_RAW && !block_parse_restarts(&t)) {
        free(buf);
        *what = "bad restart array";
        return NULL;
    }
    if (kind == BLK_DATA) {
        const uint8_t *k0, *kl;
        size_t l0, ll;
        if (t.nr == 0) {
            free(buf);
            *what = "empty data block";
            return NULL;
        }
        if (!restart_ukey(&t, 0, &k0, &l0) ||
            !restart_ukey(&t, t.nr - 1, &kl, &ll)) {
            free(buf);
            *what = "malformed restart entry in data block";
            return NULL;
        }
        size_t m = l0 < ll ? l0 : ll, c = 0;
        if (m > BLK_PREFIX)
            m = BLK_PREFIX;
        while (c < m && k0[c] == kl[c])
            c++;
        t.cpl = (uint32_t)c;
        memcpy(t.prefix, k0, c);
        t.nw = t.nr;
    }
    size_t pad = ((size_t)size + 7) & ~(size_t)7;
    size_t total = pad + 8 * (size_t)t.nw + sizeof t +
                   (kind == BLK_DATA ? CAIRN_BLOCK_CACHE_ENTRY_SIZE : 0);
    uint8_t *mem = realloc(buf, total);
    if (!mem) {
        free(buf);
        return NULL;
    }
    sst_block *b = (sst_block *)(void *)(mem + pad + 8 * (size_t)t.nw);
    t.data = mem;
    *b = t;
    /* The words, checking every restart entry on the way. */
    uint64_t *w = (uint64_t *)(void *)(mem + pad);
    for (uint32_t i = 0; i < t.nw; i++) {
        const uint8_t *k = NULL;
        size_t l = 0;
        if (!restart_ukey(b, i, &k, &l)) {
            free(mem);
            *what = "malformed restart entry in data block";
            return NULL;
        }
        w[i] = key_word(k, l, t.cpl);
    }
    return b;
}

/* The allocation behind a decoded block (what the block cache charges). */
static size_t block_charge(const sst_block *b)
{
    return (((size_t)b->size + 7) & ~(size_t)7) + 8 * (size_t)b->nw +
           sizeof *b + (b->nw ? CAIRN_BLOCK_CACHE_ENTRY_SIZE : 0);
}

/* A data block's room for its block cache entry, right behind the header
 * (cairn_block_cache_insert_at). */
static void *block_room(sst_block *b)
{
    return (uint8_t *)b + sizeof *b;
}

/* Read, verify and decode the block (off, size). dctx: a lazily created
 * zstd context to reuse, or NULL. kind: BLK_ENTRIES for a block in the
 * entry format (index, metaindex): its restart array is checked; BLK_DATA
 * for a data block: its restart entries too, and its restart words built;
 * BLK_RAW for anything else. */
static int read_block(cairn_file *f, const char *path, uint64_t off,
                      uint64_t size, ZSTD_DCtx **dctx, int kind,
                      sst_block **out, char *errmsg)
{
    *out = NULL;
    if (size > MAX_STORED_BLOCK)
        return CORRUPT(errmsg, path, off, "block size %" PRIu64 " too large",
                       size);
    size_t total = (size_t)size + CAIRN_SST_TRAILER_SIZE;
    uint8_t *b = malloc(total);
    if (!b)
        return CAIRN_ENOMEM;
    size_t n = 0;
    int rc = cairn_file_read_at(f, off, b, total, &n);
    if (rc) {
        free(b);
        return fail_msg(errmsg, rc, path, off, "read error (%s)",
                        cairn_strerror(rc));
    }
    if (n < total) {
        free(b);
        return CORRUPT(errmsg, path, off, "block runs past the end of the file");
    }
    uint8_t type = b[size];
    if (XXH3_64bits(b, (size_t)size + 1) != cairn_get_u64(b + size + 1)) {
        free(b);
        return CORRUPT(errmsg, path, off, "block checksum mismatch");
    }
    uint32_t rawlen;
    if (type == CAIRN_SST_CODEC_NONE) {
        if (size > CAIRN_SST_MAX_RAW_BLOCK) {
            free(b);
            return CORRUPT(errmsg, path, off, "raw block too large");
        }
        rawlen = (uint32_t)size;
    } else if (type == CAIRN_SST_CODEC_LZ4 || type == CAIRN_SST_CODEC_ZSTD) {
        uint64_t raw;
        const uint8_t *end = b + size;
        const uint8_t *src = cairn_get_varint64(b, end, &raw);
        size_t srclen = src ? (size_t)(end - src) : 0;
        if (!src || raw > CAIRN_SST_MAX_RAW_BLOCK || srclen > INT_MAX) {
            free(b);
            return CORRUPT(errmsg, path, off, "bad compressed block header");
        }
        /* Room for the header and words behind the contents, so that
         * block_finish rarely has to move them. */
        uint8_t *d = malloc((size_t)raw + 8 + raw / 8 + sizeof(sst_block) +
                            CAIRN_BLOCK_CACHE_ENTRY_SIZE);
        if (!d) {
            free(b);
            return CAIRN_ENOMEM;
        }
        bool ok;
        if (type == CAIRN_SST_CODEC_LZ4) {
            int r = LZ4_decompress_safe((const char *)src, (char *)d,
                                        (int)srclen, (int)raw);
            ok = r >= 0 && (uint64_t)r == raw;
        } else {
            size_t r;
            if (dctx && !*dctx)
                *dctx = ZSTD_createDCtx();
            if (dctx && *dctx)
                r = ZSTD_decompressDCtx(*dctx, d, (size_t)raw, src, srclen);
            else
                r = ZSTD_decompress(d, (size_t)raw, src, srclen);
            ok = !ZSTD_isError(r) && r == raw;
        }
        free(b);
        if (!ok) {
            free(d);
            return CORRUPT(errmsg, path, off, "block does not decompress");
        }
        b = d;
        rawlen = (uint32_t)raw;
    } else {
        free(b);
        return CORRUPT(errmsg, path, off, "unknown block type %u", type);
    }
    const char *what;
    sst_block *blk = block_finish(b, rawlen, kind, &what);
    if (!blk)
        return what ? CORRUPT(errmsg, path, off, "%s", what) : CAIRN_ENOMEM;
    *out = blk;
    return 0;
}

/* Decode the entry header at data[p] of block b: key delta and value. Returns
 * the offset after the entry, or 0 if malformed (an entry is never empty). */
static uint32_t parse_entry(const sst_block *b, uint32_t p, uint32_t *shared,
                            const uint8_t **delta, uint32_t *unshared,
                            const uint8_t **val, uint32_t *vlen)
{
    const uint8_t *lim = b->data + b->restarts, *q = b->data + p;
    if (p >= b->restarts)
        return 0;
    /* Three one-byte lengths (keys and values under 128 bytes): the
     * common case, decoded without the general loop. */
    if (lim - q > 3 && ((q[0] | q[1] | q[2]) & 0x80) == 0) {
        *shared = q[0];
        *unshared = q[1];
        *vlen = q[2];
        q += 3;
        if (*unshared > (size_t)(lim - q) ||
            *vlen > (size_t)(lim - q) - *unshared)
            return 0;
        *delta = q;
        *val = q + *unshared;
        return (uint32_t)(*val + *vlen - b->data);
    }
    q = cairn_get_varint32(q, lim, shared);
    if (q)
        q = cairn_get_varint32(q, lim, unshared);
    if (q)
        q = cairn_get_varint32(q, lim, vlen);
    if (!q || *unshared > (size_t)(lim - q) ||
        *vlen > (size_t)(lim - q) - *unshared)
        return 0;
    *delta = q;
    *val = q + *unshared;
    return (uint32_t)(*val + *vlen - b->data);
}

/* ---------- iterator ---------- */

struct cairn_sst_iter {
    const cairn_sst_reader *r;
    int status;
    bool valid;
    size_t bi;               /* index of the block held */
    sst_block *blk;          /* the block held, or NULL */
    cairn_cache_handle *h;   /* its cache handle (NULL: owned) */
    uint32_t cur, next, ri, shared;
    kbuf key;                /* current internal key */
    uint64_t version, ts;
    cairn_sst_kind kind;
    const uint8_t *val;
    size_t vlen;
    ZSTD_DCtx *dctx;
    bool use_dctx;
    bool no_fill;            /* blocks read on a miss stay out of the cache */
    char errmsg[CAIRN_SST_ERRMSG_LEN];
};

static void it_release(cairn_sst_iter *it)
{
    if (it->h)
        cairn_block_cache_release(it->r->cache, it->h);
    else
        block_free(it->blk);
    it->h = NULL;
    it->blk = NULL;
}

static void it_init(cairn_sst_iter *it, const cairn_sst_reader *r,
                    bool use_dctx)
{
    memset(it, 0, offsetof(cairn_sst_iter, key));
    kbuf_init(&it->key);
    it->dctx = NULL;
    it->use_dctx = use_dctx;
    it->no_fill = false;
    it->errmsg[0] = '\0';
    it->r = r;
}

static void it_fini(cairn_sst_iter *it)
{
    it_release(it);
    kbuf_free(&it->key);
    ZSTD_freeDCtx(it->dctx);
    it->dctx = NULL;
}

static void it_fail(cairn_sst_iter *it, int rc)
{
    it->status = rc;
    it->valid = false;
    it_release(it);
}

static void it_corrupt(cairn_sst_iter *it, const char *what)
{
    uint64_t off = it->blk ? it->r->idx[it->bi].off : 0;
    it_fail(it, CORRUPT(it->errmsg, it->r->path, off, "%s", what));
}

static void block_free_fn(void *p)
{
    block_free(p);
}

void cairn_sst_cache_fill(cairn_block_cache *c, uint64_t file_id,
                          uint64_t off, const uint8_t *raw, size_t n)
{
    if (!c || n == 0 || n > UINT32_MAX)
        return;
    /* The decoded block's charge, about: raw bytes, words, header. */
    if (!cairn_block_cache_has_room(c, file_id, off, n + n / 8 + 512))
        return;
    uint8_t *buf = malloc(n);
    if (!buf)
        return;
    memcpy(buf, raw, n);
    const char *what;
    sst_block *b = block_finish(buf, (uint32_t)n, BLK_DATA, &what);
    if (b) /* no handle: not pinned; frees b itself on failure */
        (void)cairn_block_cache_insert_at(c, file_id, off, b, block_charge(b),
                                          block_free_fn, block_room(b), NULL);
}

/* This thread's hit counter stripe: threads take them round robin. */
static unsigned hit_stripe(void)
{
    static atomic_uint next;
    static _Thread_local unsigned mine = UINT_MAX;
    if (mine == UINT_MAX)
        mine = atomic_fetch_add_explicit(&next, 1, memory_order_relaxed) %
               CAIRN_SST_HIT_STRIPES;
    return mine;
}

/* Remember where block i sits in the cache (a store only when it moved:
 * readers of a block share its line of hints). */
static void set_hint(const cairn_sst_reader *r, size_t i, void *h)
{
    if (r->hint &&
        atomic_load_explicit(&r->hint[i], memory_order_relaxed) != h)
        atomic_store_explicit(&r->hint[i], h, memory_order_relaxed);
}

/* Make data block i the one held. */
static int it_load(cairn_sst_iter *it, size_t i)
{
    const cairn_sst_reader *r = it->r;
    if (it->blk && it->bi == i)
        return 0;
    it_release(it);
    if (r->cache) {
        /* One lookup in CAIRN_SST_HIT_SAMPLE per thread is timed. */
        static _Thread_local uint32_t sample;
        bool timed = r->stats && ++sample % CAIRN_SST_HIT_SAMPLE == 0;
        struct timespec h0, h1;
        if (timed)
            clock_gettime(CLOCK_MONOTONIC, &h0);
        cairn_cache_handle *h =
            cairn_block_cache_lookup(r->cache, r->file_id, r->boff[i]);
        if (h) {
            if (r->stats)
                atomic_fetch_add_explicit(&r->stats->hit_stripe[hit_stripe()].n,
                                          1, memory_order_relaxed);
            if (timed) {
                clock_gettime(CLOCK_MONOTONIC, &h1);
                int64_t ns = (int64_t)(h1.tv_sec - h0.tv_sec) * 1000000000 +
                             (h1.tv_nsec - h0.tv_nsec);
                cairn_hist_add(&r->stats->hit_ns, ns > 0 ? (uint64_t)ns : 0);
            }
            it->h = h;
            it->blk = cairn_cache_handle_data(h);
            it->bi = i;
            set_hint(r, i, h);
            return 0;
        }
    }
    const idx_ent *e = &r->idx[i];
    sst_block *b;
    struct timespec t0, t1;
    if (r->stats)
        clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = read_block(r->f, r->path, e->off, e->size,
                        it->use_dctx ? &it->dctx : NULL, BLK_DATA, &b,
                        it->errmsg);
    if (r->stats) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 +
                     (t1.tv_nsec - t0.tv_nsec);
        atomic_fetch_add_explicit(&r->stats->misses, 1, memory_order_relaxed);
        cairn_hist_add(&r->stats->miss_ns, ns > 0 ? (uint64_t)ns : 0);
    }
    if (rc) {
        it_fail(it, rc);
        return rc;
    }
    if (r->cache && !it->no_fill) {
        cairn_cache_handle *h = NULL;
        rc = cairn_block_cache_insert_at(r->cache, r->file_id, e->off, b,
                                         block_charge(b), block_free_fn,
                                         block_room(b), &h);
        if (rc) { /* b has been freed */
            snprintf(it->errmsg, sizeof it->errmsg, "%s", cairn_strerror(rc));
            it_fail(it, rc);
            return rc;
        }
        it->h = h;
        set_hint(r, i, h);
    }
    it->blk = b;
    it->bi = i;
    return 0;
}

/* Rebuild the key of the entry at offset p of the held block in the key
 * buffer (which holds the previous entry's key); the entry's end, shared
 * length and value bytes in the out parameters. 0 or the iterator's error
 * (a malformed entry, or a key shorter than its 8-byte trailer). */
static int it_key_at(cairn_sst_iter *it, uint32_t p, uint32_t *next,
                     uint32_t *shared, const uint8_t **val, uint32_t *vlen)
{
    uint32_t unshared;
    const uint8_t *delta;
    *next = parse_entry(it->blk, p, shared, &delta, &unshared, val, vlen);
    if (!*next || *shared > it->key.len || *shared + unshared < 8) {
        it_corrupt(it, "malformed entry in data block");
        return it->status;
    }
    if (kbuf_set(&it->key, *shared, delta, unshared)) {
        snprintf(it->errmsg, sizeof it->errmsg, "%s",
                 cairn_strerror(CAIRN_ENOMEM));
        it_fail(it, CAIRN_ENOMEM);
        return it->status;
    }
    return 0;
}

/* Make the entry at offset p, whose key it_key_at has rebuilt (next,
 * shared, val, vlen: what it gave), the current one: decode its value
 * header and set the iterator's position. */
static int it_take(cairn_sst_iter *it, uint32_t p, uint32_t next,
                   uint32_t shared, const uint8_t *val, uint32_t vlen)
{
    const sst_block *b = it->blk;
    const uint8_t *end = val + vlen, *q;
    uint64_t ts;
    if (vlen < 2 || (val[0] != CAIRN_SST_PUT && val[0] != CAIRN_SST_DELETE &&
                     val[0] != CAIRN_SST_BLOB) ||
        !(q = cairn_get_varint64(val + 1, end, &ts)) ||
        (val[0] == CAIRN_SST_DELETE && q != end)) {
        it_corrupt(it, "malformed entry in data block");
        return it->status;
    }
    it->kind = (cairn_sst_kind)val[0];
    it->ts = ts;
    it->val = q;
    it->vlen = (size_t)(end - q);
    it->version = cairn_sst_get_trailer(it->key.p + it->key.len - 8);
    it->shared = shared;
    it->cur = p;
    it->next = next;
    while (it->ri + 1 < b->nr && restart_at(b, it->ri + 1) <= p)
        it->ri++;
    return 0;
}

/* Decode the entry at offset p of the held block (the key buffer holds the
 * previous entry's key). */
static int it_parse(cairn_sst_iter *it, uint32_t p)
{
    uint32_t next, shared, vlen;
    const uint8_t *val;
    int rc = it_key_at(it, p, &next, &shared, &val, &vlen);
    return rc ? rc : it_take(it, p, next, shared, val, vlen);
}

static int blk_first(cairn_sst_iter *it)
{
    it->ri = 0;
    it->key.len = 0;
    return it_parse(it, 0);
}

static int blk_last(cairn_sst_iter *it)
{
    const sst_block *b = it->blk;
    it->ri = b->nr - 1;
    it->key.len = 0;
    int rc = it_parse(it, restart_at(b, it->ri));
    while (!rc && it->next < b->restarts)
        rc = it_parse(it, it->next);
    return rc;
}

/* Step back inside the block; 1 if already at its first entry. */
static int blk_prev(cairn_sst_iter *it)
{
    const sst_block *b = it->blk;
    uint32_t target = it->cur;
    if (target == 0)
        return 1;
    while (it->ri > 0 && restart_at(b, it->ri) >= target)
        it->ri--;
    it->key.len = 0;
    int rc = it_parse(it, restart_at(b, it->ri));
    while (!rc && it->next < target)
        rc = it_parse(it, it->next);
    if (!rc && it->next != target) {
        it_corrupt(it, "restart point inside an entry");
        return it->status;
    }
    return rc;
}

/* Position at the first entry >= target in the held block: 1 if found, 0 if
 * every entry is below it, <0 on error. */
static int blk_seek(cairn_sst_iter *it, const uint8_t *tk, size_t tklen,
                    uint64_t tv)
{
    const sst_block *b = it->blk;
    uint32_t left = 0;
    /* The last restart whose key is below the target (0 if none), found
     * in the restart words: restarts before lo have words below the
     * target's, so their keys are below it; from lo on, those whose word
     * equals the target's are compared in full. */
    size_t m = tklen < b->cpl ? tklen : b->cpl;
    int pc = m ? memcmp(tk, b->prefix, m) : 0;
    if (pc > 0) {
        left = b->nr - 1;
    } else if (pc == 0 && tklen >= b->cpl && b->nr > 1) {
        const uint64_t *w = block_words(b);
        uint64_t tw = key_word(tk, tklen, b->cpl);
        size_t lo, hi;
        word_equal_range(w, b->nr, tw, &lo, &hi);
        while (lo < hi) { /* restarts with the target's word */
            size_t mid = lo + (hi - lo) / 2;
            const uint8_t *k;
            uint32_t shared, unshared, vlen;
            const uint8_t *val;
            parse_entry(b, restart_at(b, (uint32_t)mid), &shared, &k,
                        &unshared, &val, &vlen); /* checked at load */
            if (cmp_target(k, unshared, tk, tklen, tv) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        left = lo ? (uint32_t)lo - 1 : 0;
    }
    it->ri = left;
    it->key.len = 0;
    /* Walk from the restart point building only the keys; the entry that
     * stops the walk (the first >= target, or the last, for prev()) is
     * then decoded whole. */
    uint32_t p = restart_at(b, left);
    for (;;) {
        uint32_t next, shared, vlen;
        const uint8_t *val;
        int rc = it_key_at(it, p, &next, &shared, &val, &vlen);
        if (rc)
            return rc;
        bool found = cmp_target(it->key.p, it->key.len, tk, tklen, tv) >= 0;
        if (found) {
            /* A point lookup copies the value out next: start loading the
             * cache lines it spans while the lookup unwinds. */
            uintptr_t a = (uintptr_t)val & ~(uintptr_t)63;
            uintptr_t z = (uintptr_t)val + (vlen < 256 ? vlen : 256);
            for (; a < z; a += 64)
                __builtin_prefetch((const void *)a);
        }
        if (found || next >= b->restarts) {
            rc = it_take(it, p, next, shared, val, vlen);
            return rc ? rc : found;
        }
        p = next;
    }
}

/* First index entry whose key is >= target (nidx if none). */
static size_t index_lower_bound(const cairn_sst_reader *r, const uint8_t *tk,
                                size_t tklen, uint64_t tv)
{
    if (r->nidx == 0)
        return 0;
    /* Against the prefix every index key shares: a target that differs in
     * it (or is a proper prefix of it) is below or above them all. */
    size_t m = tklen < r->cpl ? tklen : r->cpl;
    int pc = m ? memcmp(tk, r->keys + r->idx[0].koff, m) : 0;
    if (pc < 0 || (pc == 0 && tklen < r->cpl))
        return 0;
    if (pc > 0)
        return r->nidx;
    uint64_t tw = key_word(tk, tklen, r->cpl);
    size_t lo, hi;
    word_equal_range(r->dk, r->nidx, tw, &lo, &hi);
    while (lo < hi) { /* keys with the target's word: compared in full */
        size_t mid = lo + (hi - lo) / 2;
        const idx_ent *e = &r->idx[mid];
        if (cmp_target(r->keys + e->koff, e->klen, tk, tklen, tv) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void cairn_sst_iter_set_fill_cache(cairn_sst_iter *it, bool fill)
{
    it->no_fill = !fill;
}

int cairn_sst_iter_new(const cairn_sst_reader *r, cairn_sst_iter **out)
{
    if (!out)
        return CAIRN_EINVAL;
    *out = NULL;
    if (!r)
        return CAIRN_EINVAL;
    cairn_sst_iter *it = malloc(sizeof *it);
    if (!it)
        return CAIRN_ENOMEM;
    it_init(it, r, true);
    *out = it;
    return 0;
}

void cairn_sst_iter_free(cairn_sst_iter *it)
{
    if (!it)
        return;
    it_fini(it);
    free(it);
}

static void it_reset(cairn_sst_iter *it)
{
    it->status = 0;
    it->valid = false;
    it->errmsg[0] = '\0';
}

/* Position at the first entry of block i or later; invalid past the end. */
static void it_first_from(cairn_sst_iter *it, size_t i)
{
    if (i >= it->r->nidx) {
        it->valid = false;
        it_release(it);
        return;
    }
    if (it_load(it, i) || blk_first(it))
        return;
    it->valid = true;
}

void cairn_sst_iter_seek_first(cairn_sst_iter *it)
{
    it_reset(it);
    it_first_from(it, 0);
}

void cairn_sst_iter_seek_last(cairn_sst_iter *it)
{
    it_reset(it);
    if (it->r->nidx == 0)
        return;
    if (it_load(it, it->r->nidx - 1) || blk_last(it))
        return;
    it->valid = true;
}

/* Seek to (tk, version), whose index search gave data block i. */
static void it_seek_in(cairn_sst_iter *it, size_t i, const uint8_t *tk,
                       size_t klen, uint64_t version)
{
    if (i >= it->r->nidx) {
        it_release(it);
        return;
    }
    if (it_load(it, i))
        return;
    int rc = blk_seek(it, tk, klen, version);
    if (rc < 0)
        return;
    if (rc == 1)
        it->valid = true;
    else /* the index key said otherwise: go on at the next block */
        it_first_from(it, i + 1);
}

void cairn_sst_iter_seek(cairn_sst_iter *it, const void *key, size_t klen,
                         uint64_t version)
{
    it_reset(it);
    const uint8_t *tk = klen ? key : (const uint8_t *)"";
    it_seek_in(it, index_lower_bound(it->r, tk, klen, version), tk, klen,
               version);
}

void cairn_sst_iter_next(cairn_sst_iter *it)
{
    if (!it->valid)
        return;
    if (it->next < it->blk->restarts)
        it_parse(it, it->next); /* on error: invalid, status set */
    else
        it_first_from(it, it->bi + 1);
}

void cairn_sst_iter_prev(cairn_sst_iter *it)
{
    if (!it->valid)
        return;
    if (blk_prev(it) != 1) /* moved inside the block, or failed */
        return;
    if (it->bi == 0) {
        it->valid = false;
        it_release(it);
        return;
    }
    if (!it_load(it, it->bi - 1))
        blk_last(it);
}

void cairn_sst_iter_seek_for_prev(cairn_sst_iter *it, const void *key,
                                  size_t klen, uint64_t version)
{
    const uint8_t *tk = klen ? key : (const uint8_t *)"";
    cairn_sst_iter_seek(it, tk, klen, version);
    if (it->status)
        return;
    if (!it->valid) {
        cairn_sst_iter_seek_last(it);
        return;
    }
    if (cmp_target(it->key.p, it->key.len, tk, klen, version) > 0)
        cairn_sst_iter_prev(it);
}

bool cairn_sst_iter_valid(const cairn_sst_iter *it)
{
    return it->valid;
}

void cairn_sst_iter_entry(const cairn_sst_iter *it, cairn_sst_entry *out)
{
    out->key = it->key.p;
    out->klen = it->key.len - 8;
    out->version = it->version;
    out->ts_us = it->ts;
    out->kind = it->kind;
    out->value = it->kind != CAIRN_SST_DELETE ? it->val : NULL;
    out->vlen = it->kind != CAIRN_SST_DELETE ? it->vlen : 0;
}

int cairn_sst_iter_status(const cairn_sst_iter *it)
{
    return it->status;
}

const char *cairn_sst_iter_errmsg(const cairn_sst_iter *it)
{
    return it->errmsg;
}

/* ---------- point lookups ---------- */

bool cairn_sst_may_contain(const cairn_sst_reader *r, const void *key,
                           size_t klen)
{
    if (!r->fdata)
        return true;
    return cairn_bloom_may_contain(r->fdata, r->fsize,
                                   cairn_bloom_hash(key, klen));
}

void cairn_sst_prefetch(const cairn_sst_reader *r, uint64_t hash)
{
    if (r->fdata)
        cairn_bloom_prefetch(r->fdata, r->fsize, hash);
}

void cairn_sst_pin_release(cairn_sst_pin *pin)
{
    if (!pin)
        return;
    if (pin->handle)
        cairn_block_cache_release(pin->cache, pin->handle);
    block_free(pin->block);
    memset(pin, 0, sizeof *pin);
}

/* cairn_sst_get past its filter check, with the data block its index
 * search gives (SIZE_MAX: search the index now). */
static int sst_get_in(const cairn_sst_reader *r, size_t block, const void *key,
                      size_t klen, uint64_t max_version, uint64_t max_ts,
                      cairn_sst_entry *out, cairn_sst_pin *pin, char *errmsg)
{
    const uint8_t *k = klen ? key : (const uint8_t *)"";
    cairn_sst_iter it;
    it_init(&it, r, false);
    if (block == SIZE_MAX)
        block = index_lower_bound(r, k, klen, max_version);
    it_seek_in(&it, block, k, klen, max_version);
    int rc = CAIRN_ENOTFOUND;
    while (it.valid && it.key.len - 8 == klen &&
           (klen == 0 || memcmp(it.key.p, k, klen) == 0)) {
        if (it.ts <= max_ts) {
            cairn_sst_iter_entry(&it, out);
            out->key = key ? key : k;
            if (it.h) {
                pin->cache = r->cache;
                pin->handle = it.h;
            } else {
                pin->block = it.blk;
            }
            it.h = NULL;
            it.blk = NULL;
            rc = 0;
            break;
        }
        cairn_sst_iter_next(&it);
    }
    if (rc && it.status) {
        rc = it.status;
        if (errmsg)
            snprintf(errmsg, CAIRN_SST_ERRMSG_LEN, "%s", it.errmsg);
    }
    it_fini(&it);
    return rc;
}

int cairn_sst_get(const cairn_sst_reader *r, const void *key, size_t klen,
                  uint64_t max_version, uint64_t max_ts, cairn_sst_entry *out,
                  cairn_sst_pin *pin, char *errmsg)
{
    if (!r || !out || !pin || (!key && klen))
        return CAIRN_EINVAL;
    memset(pin, 0, sizeof *pin);
    const uint8_t *k = klen ? key : (const uint8_t *)"";
    if (!cairn_sst_may_contain(r, k, klen))
        return CAIRN_ENOTFOUND;
    return sst_get_in(r, SIZE_MAX, key, klen, max_version, max_ts, out, pin,
                      errmsg);
}

size_t cairn_sst_locate(const cairn_sst_reader *r, const void *key,
                        size_t klen, uint64_t max_version)
{
    const uint8_t *k = klen ? key : (const uint8_t *)"";
    if (!cairn_sst_may_contain(r, k, klen))
        return SIZE_MAX;
    size_t i = index_lower_bound(r, k, klen, max_version);
    const char *h = i < r->nidx && r->hint
                        ? atomic_load_explicit(&r->hint[i],
                                               memory_order_relaxed)
                        : NULL;
    if (h) {
        /* The cache entry sits right after the block's header, which the
         * restart words precede: the lines a lookup and a seek read
         * first. */
        __builtin_prefetch(h);
        __builtin_prefetch(h - 64);
        __builtin_prefetch(h - 128);
    }
    return i;
}

int cairn_sst_get_at(const cairn_sst_reader *r, size_t block, const void *key,
                     size_t klen, uint64_t max_version, uint64_t max_ts,
                     cairn_sst_entry *out, cairn_sst_pin *pin, char *errmsg)
{
    if (!r || !out || !pin || (!key && klen) || block == SIZE_MAX)
        return CAIRN_EINVAL;
    memset(pin, 0, sizeof *pin);
    return sst_get_in(r, block, key, klen, max_version, max_ts, out, pin,
                      errmsg);
}

/* ---------- open ---------- */

/* Walk a block's entries in order with full structural checks: restart
 * points fall on entry starts with shared = 0, keys strictly increase
 * (cmp), and the last entry ends at the restart array. Two key buffers
 * alternate so the previous key is still there to compare with. */
typedef struct walk {
    const sst_block *b;
    uint32_t p, rk; /* next entry offset, next restart index */
    kbuf keys[2];
    int cur;        /* keys[cur] is the current key */
    uint64_t n;     /* entries walked */
    int (*cmp)(const uint8_t *, size_t, const uint8_t *, size_t);
    const uint8_t *key, *val;
    size_t klen;
    uint32_t vlen;
} walk;

static void walk_init(walk *w, const sst_block *b,
                      int (*cmp)(const uint8_t *, size_t, const uint8_t *,
                                 size_t))
{
    w->b = b;
    w->p = 0;
    w->rk = 0;
    kbuf_init(&w->keys[0]);
    kbuf_init(&w->keys[1]);
    w->cur = 0;
    w->n = 0;
    w->cmp = cmp;
}

static void walk_fini(walk *w)
{
    kbuf_free(&w->keys[0]);
    kbuf_free(&w->keys[1]);
}

/* 1: an entry (w->key, w->val); 0: the end; CAIRN_ECORRUPT / ENOMEM. */
static int walk_next(walk *w, size_t min_klen)
{
    const sst_block *b = w->b;
    if (w->p >= b->restarts)
        return w->rk == b->nr ? 0 : CAIRN_ECORRUPT;
    bool at_restart = w->rk < b->nr && restart_at(b, w->rk) == w->p;
    if (!at_restart && w->rk < b->nr && restart_at(b, w->rk) < w->p)
        return CAIRN_ECORRUPT; /* a restart inside an entry */
    uint32_t shared, unshared;
    const uint8_t *delta;
    uint32_t next = parse_entry(b, w->p, &shared, &delta, &unshared, &w->val,
                                &w->vlen);
    kbuf *prev = &w->keys[w->cur], *k = &w->keys[1 - w->cur];
    if (!next || shared > prev->len || (at_restart && shared != 0) ||
        (w->p == 0 && !at_restart))
        return CAIRN_ECORRUPT;
    k->len = 0;
    if (kbuf_set(k, 0, prev->p, shared) ||
        kbuf_set(k, shared, delta, unshared))
        return CAIRN_ENOMEM;
    if (k->len < min_klen ||
        (w->n > 0 && w->cmp(prev->p, prev->len, k->p, k->len) >= 0))
        return CAIRN_ECORRUPT;
    w->cur = 1 - w->cur;
    w->key = k->p;
    w->klen = k->len;
    w->rk += at_restart;
    w->p = next;
    w->n++;
    return 1;
}

static bool handle_ok(uint64_t off, uint64_t size, uint64_t limit)
{
    return off <= limit && size <= limit - off &&
           CAIRN_SST_TRAILER_SIZE <= limit - off - size;
}

static int parse_metaindex(cairn_sst_reader *r, const sst_block *b,
                           char *errmsg)
{
    walk w;
    walk_init(&w, b, ukey_cmp);
    int rc;
    while ((rc = walk_next(&w, 0)) == 1) {
        uint64_t off, size;
        const uint8_t *end = w.val + w.vlen;
        const uint8_t *q = cairn_get_varint64(w.val, end, &off);
        if (q)
            q = cairn_get_varint64(q, end, &size);
        if (!q || q != end || !handle_ok(off, size, r->footer_off)) {
            rc = CAIRN_ECORRUPT;
            break;
        }
        /* Names this reader does not know are skipped. */
        static const char bn[] = CAIRN_SST_BLOB_REFS_NAME;
        if (w.klen == sizeof bn - 1 && memcmp(w.key, bn, w.klen) == 0) {
            if (size == 0 || off + size + CAIRN_SST_TRAILER_SIZE !=
                                 r->meta[0][0]) {
                rc = CAIRN_ECORRUPT;
                break;
            }
            r->brefs[0] = off;
            r->brefs[1] = size;
        }
    }
    walk_fini(&w);
    if (rc == CAIRN_ENOMEM)
        return rc;
    if (rc)
        return CORRUPT(errmsg, r->path, r->meta[0][0], "malformed metaindex block");
    return 0;
}

static int parse_index(cairn_sst_reader *r, const sst_block *b, char *errmsg)
{
    walk w;
    walk_init(&w, b, cairn_sst_ikey_cmp);
    size_t cap = 0, kcap = 0, klen = 0;
    uint64_t prev_end = 0;
    int rc;
    while ((rc = walk_next(&w, 8)) == 1) {
        uint64_t off, size;
        const uint8_t *end = w.val + w.vlen;
        const uint8_t *q = cairn_get_varint64(w.val, end, &off);
        if (q)
            q = cairn_get_varint64(q, end, &size);
        if (!q || q != end || off < prev_end ||
            !handle_ok(off, size, r->data_end)) {
            rc = CAIRN_ECORRUPT;
            break;
        }
        prev_end = off + size + CAIRN_SST_TRAILER_SIZE;
        if (r->nidx == cap) {
            size_t n = cap ? cap * 2 : 64;
            idx_ent *e = realloc(r->idx, n * sizeof *e);
            if (!e) {
                rc = CAIRN_ENOMEM;
                break;
            }
            r->idx = e;
            cap = n;
        }
        if (klen + w.klen > kcap) {
            size_t n = kcap ? kcap * 2 : 4096;
            while (n < klen + w.klen)
                n *= 2;
            uint8_t *k = realloc(r->keys, n);
            if (!k) {
                rc = CAIRN_ENOMEM;
                break;
            }
            r->keys = k;
            kcap = n;
        }
        memcpy(r->keys + klen, w.key, w.klen);
        idx_ent *ne = &r->idx[r->nidx++];
        *ne = (idx_ent){off, size, klen, w.klen};
        klen += w.klen;
    }
    walk_fini(&w);
    if (rc == CAIRN_ENOMEM)
        return rc;
    if (rc)
        return CORRUPT(errmsg, r->path, r->meta[2][0], "malformed index block");
    if (r->nidx == 0)
        return 0;
    /* Sorted keys: what the first and last share, all share. */
    const idx_ent *a = &r->idx[0], *z = &r->idx[r->nidx - 1];
    const uint8_t *ak = r->keys + a->koff, *zk = r->keys + z->koff;
    size_t an = a->klen - 8, zn = z->klen - 8;
    size_t cpl = 0;
    while (cpl < an && cpl < zn && ak[cpl] == zk[cpl])
        cpl++;
    r->cpl = cpl;
    r->dk = malloc(2 * r->nidx * sizeof *r->dk);
    if (!r->dk)
        return CAIRN_ENOMEM;
    r->boff = r->dk + r->nidx;
    r->hint = calloc(r->nidx, sizeof *r->hint);
    if (!r->hint)
        return CAIRN_ENOMEM;
    for (size_t i = 0; i < r->nidx; i++) {
        r->dk[i] = key_word(r->keys + r->idx[i].koff, r->idx[i].klen - 8, cpl);
        r->boff[i] = r->idx[i].off;
    }
    return 0;
}

static int parse_props(cairn_sst_reader *r, sst_block *b, char *errmsg)
{
    cairn_sst_props *p = &r->props;
    const uint8_t *d = b->data, *end = b->data + b->size;
    uint64_t off = r->meta[3][0];
    if (b->size < 128)
        return CORRUPT(errmsg, r->path, off, "properties block too short");
    uint32_t fixed = cairn_get_u32(d);
    if (fixed < 128 || fixed > b->size)
        return CORRUPT(errmsg, r->path, off, "bad properties length");
    p->codec = (cairn_sst_codec)d[4];
    p->bloom_bits_per_key = d[5];
    p->zstd_level = (int)(int32_t)cairn_get_u32(d + 8);
    p->restart_interval = cairn_get_u32(d + 12);
    p->block_size = cairn_get_u64(d + 16);
    p->entries = cairn_get_u64(d + 24);
    p->deletes = cairn_get_u64(d + 32);
    p->distinct_keys = cairn_get_u64(d + 40);
    p->min_version = cairn_get_u64(d + 48);
    p->max_version = cairn_get_u64(d + 56);
    p->min_ts = cairn_get_u64(d + 64);
    p->max_ts = cairn_get_u64(d + 72);
    p->raw_key_bytes = cairn_get_u64(d + 80);
    p->raw_value_bytes = cairn_get_u64(d + 88);
    p->raw_data_size = cairn_get_u64(d + 96);
    p->stored_data_size = cairn_get_u64(d + 104);
    p->data_blocks = cairn_get_u64(d + 112);
    p->creation_ts_us = cairn_get_u64(d + 120);
    const uint8_t *q = d + fixed;
    uint32_t sl = 0, ll = 0;
    const uint8_t *sk = NULL, *lk = NULL;
    q = cairn_get_varint32(q, end, &sl);
    if (q && sl <= (size_t)(end - q)) {
        sk = q;
        q = cairn_get_varint32(q + sl, end, &ll);
        if (q && ll <= (size_t)(end - q))
            lk = q;
    }
    if (!sk || !lk)
        return CORRUPT(errmsg, r->path, off, "malformed properties keys");
    bool empty = p->entries == 0;
    bool bad = (empty != (r->nidx == 0)) || p->data_blocks != r->nidx ||
               p->deletes > p->entries || p->distinct_keys > p->entries ||
               (empty && (sl || ll));
    if (!bad && !empty) {
        const idx_ent *last = &r->idx[r->nidx - 1];
        bad = sl < 8 || ll < 8 || p->distinct_keys == 0 ||
              p->min_version > p->max_version || p->min_ts > p->max_ts ||
              cairn_sst_ikey_cmp(sk, sl, lk, ll) > 0 ||
              cairn_sst_ikey_cmp(sk, sl, r->keys + r->idx[0].koff,
                                 r->idx[0].klen) > 0 ||
              ll != last->klen || memcmp(lk, r->keys + last->koff, ll) != 0;
    }
    if (bad)
        return CORRUPT(errmsg, r->path, off,
                       "properties disagree with the index");
    if (!empty) {
        p->smallest_key = (uint8_t *)sk;
        p->smallest_klen = sl - 8;
        p->smallest_version = cairn_sst_get_trailer(sk + sl - 8);
        p->largest_key = (uint8_t *)lk;
        p->largest_klen = ll - 8;
        p->largest_version = cairn_sst_get_trailer(lk + ll - 8);
    }
    p->file_size = r->file_size;
    p->filter_size = r->meta[1][1];
    p->index_size = r->meta[2][1];
    return 0;
}

static int open_file(cairn_sst_reader *r, char *errmsg)
{
    const char *path = r->path;
    int rc = cairn_env_open(r->env, path, CAIRN_OPEN_READ, &r->f);
    if (rc) {
        r->f = NULL;
        return fail_msg(errmsg, rc, path, 0, "cannot open (%s)",
                        cairn_strerror(rc));
    }
    rc = cairn_file_size(r->f, &r->file_size);
    if (rc)
        return fail_msg(errmsg, rc, path, 0, "cannot stat (%s)",
                        cairn_strerror(rc));
    if (r->file_size < CAIRN_SST_FOOTER_SIZE)
        return CORRUPT(errmsg, path, 0,
                       "file too short for a footer (%" PRIu64 " bytes)",
                       r->file_size);
    uint64_t fo = r->footer_off = r->file_size - CAIRN_SST_FOOTER_SIZE;
    uint8_t ft[CAIRN_SST_FOOTER_SIZE];
    size_t n = 0;
    rc = cairn_file_read_at(r->f, fo, ft, sizeof ft, &n);
    if (rc)
        return fail_msg(errmsg, rc, path, fo, "read error (%s)",
                        cairn_strerror(rc));
    if (n != sizeof ft)
        return CORRUPT(errmsg, path, fo, "short read of the footer");
    if (memcmp(ft, CAIRN_SST_MAGIC, 8) != 0)
        return CORRUPT(errmsg, path, fo, "bad magic (not a sorted file?)");
    if (XXH3_64bits(ft, 80) != cairn_get_u64(ft + 80))
        return CORRUPT(errmsg, path, fo, "footer checksum mismatch");
    uint32_t version = cairn_get_u32(ft + 8), flags = cairn_get_u32(ft + 12);
    if (version == 0)
        return CORRUPT(errmsg, path, fo, "format version 0");
    if (version > CAIRN_SST_FORMAT_VERSION || flags != 0)
        return fail_msg(errmsg, CAIRN_EVERSION, path, fo,
                        "format version %u flags 0x%x: newer than this "
                        "reader (version %u)",
                        version, flags, CAIRN_SST_FORMAT_VERSION);
    r->data_end = fo;
    for (int i = 0; i < 4; i++) {
        r->meta[i][0] = cairn_get_u64(ft + 16 + 16 * i);
        r->meta[i][1] = cairn_get_u64(ft + 24 + 16 * i);
        bool none = i == 1 && r->meta[i][0] == 0 && r->meta[i][1] == 0;
        if (none)
            continue;
        if (r->meta[i][1] == 0 || !handle_ok(r->meta[i][0], r->meta[i][1], fo))
            return CORRUPT(errmsg, path, fo, "bad block handle in the footer");
        if (r->meta[i][0] < r->data_end)
            r->data_end = r->meta[i][0];
    }

    sst_block *b;
    rc = read_block(r->f, path, r->meta[0][0], r->meta[0][1], NULL,
                    BLK_ENTRIES, &b, errmsg);
    if (rc)
        return rc;
    rc = parse_metaindex(r, b, errmsg);
    block_free(b);
    if (rc)
        return rc;

    if (r->meta[1][1]) {
        sst_block *fb = NULL;
        rc = read_block(r->f, path, r->meta[1][0], r->meta[1][1], NULL, BLK_RAW,
                        &fb, errmsg);
        if (rc)
            return rc;
        int fc = cairn_bloom_check(fb->data, fb->size);
        if (fc == 0) { /* a kind we know: keep it, aligned */
            r->fsize = fb->size;
            r->fdata = cairn_bloom_aligned_copy(fb->data, fb->size, &r->fmem);
        }
        block_free(fb);
        if (fc < 0)
            return CORRUPT(errmsg, path, r->meta[1][0], "malformed filter block");
        if (fc == 0 && !r->fdata)
            return CAIRN_ENOMEM;
    }

    rc = read_block(r->f, path, r->meta[2][0], r->meta[2][1], NULL,
                    BLK_ENTRIES, &b, errmsg);
    if (rc)
        return rc;
    rc = parse_index(r, b, errmsg);
    block_free(b);
    if (rc)
        return rc;

    rc = read_block(r->f, path, r->meta[3][0], r->meta[3][1], NULL, BLK_RAW,
                    &r->propblk, errmsg);
    if (rc)
        return rc;
    return parse_props(r, r->propblk, errmsg);
}

int cairn_sst_open(cairn_env *env, const char *path, uint64_t file_id,
                   cairn_block_cache *cache, cairn_sst_reader **out,
                   char *errmsg)
{
    if (errmsg)
        errmsg[0] = '\0';
    if (!out)
        return CAIRN_EINVAL;
    *out = NULL;
    if (!env || !path)
        return CAIRN_EINVAL;
    cairn_sst_reader *r = calloc(1, sizeof *r);
    if (!r)
        return CAIRN_ENOMEM;
    r->env = env;
    r->file_id = file_id;
    r->cache = cache;
    r->path = strdup(path);
    if (!r->path) {
        free(r);
        return CAIRN_ENOMEM;
    }
    int rc = open_file(r, errmsg);
    if (rc) {
        if (rc == CAIRN_ENOMEM && errmsg && !errmsg[0])
            snprintf(errmsg, CAIRN_SST_ERRMSG_LEN, "%s: %s", path,
                     cairn_strerror(rc));
        cairn_sst_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

int cairn_sst_blob_refs(const cairn_sst_reader *r, cairn_sst_blob_ref_fn fn,
                        void *arg, char *errmsg)
{
    if (r->brefs[1] == 0)
        return 0;
    sst_block *b = NULL;
    int rc = read_block(r->f, r->path, r->brefs[0], r->brefs[1], NULL, BLK_RAW,
                        &b, errmsg);
    if (rc)
        return rc;
    const uint8_t *p = b->data, *end = b->data + b->size;
    uint64_t n = 0;
    const uint8_t *prev = NULL;
    p = cairn_get_varint64(p, end, &n);
    if (!p || n == 0 || n > b->size / 32)
        rc = CAIRN_ECORRUPT;
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        uint64_t count, file, off, slen;
        if ((size_t)(end - p) < 32) {
            rc = CAIRN_ECORRUPT;
            break;
        }
        const uint8_t *h = p;
        p += 32;
        if (!(p = cairn_get_varint64(p, end, &count)) ||
            !(p = cairn_get_varint64(p, end, &file)) ||
            !(p = cairn_get_varint64(p, end, &off)) ||
            !(p = cairn_get_varint64(p, end, &slen)) || count == 0 ||
            slen > UINT32_MAX || (prev && memcmp(prev, h, 32) >= 0)) {
            rc = CAIRN_ECORRUPT;
            break;
        }
        prev = h;
        if (fn) {
            rc = fn(arg, h, count, file, off, (uint32_t)slen);
            if (rc) {
                block_free(b);
                return rc;
            }
        }
    }
    if (rc == 0 && p != end)
        rc = CAIRN_ECORRUPT;
    block_free(b);
    if (rc == CAIRN_ECORRUPT)
        return CORRUPT(errmsg, r->path, r->brefs[0],
                       "malformed blob references block");
    return rc;
}

void cairn_sst_uncache(cairn_sst_reader *r)
{
    if (r && r->cache && r->boff)
        cairn_block_cache_erase_blocks(r->cache, r->file_id, r->boff,
                                       r->nidx);
}

void cairn_sst_close(cairn_sst_reader *r)
{
    if (!r)
        return;
    cairn_file_close(r->f);
    free(r->idx);
    free(r->dk);
    free(r->hint);
    free(r->keys);
    free(r->fmem);
    block_free(r->propblk);
    free(r->path);
    free(r);
}

const cairn_sst_props *cairn_sst_props_get(const cairn_sst_reader *r)
{
    return &r->props;
}

void cairn_sst_set_read_stats(cairn_sst_reader *r, cairn_sst_read_stats *s)
{
    r->stats = s;
}

uint64_t cairn_sst_read_stats_hits(cairn_sst_read_stats *s)
{
    uint64_t n = 0;
    for (int i = 0; i < CAIRN_SST_HIT_STRIPES; i++)
        n += atomic_load_explicit(&s->hit_stripe[i].n, memory_order_relaxed);
    return n;
}

const char *cairn_sst_path(const cairn_sst_reader *r)
{
    return r->path;
}

uint64_t cairn_sst_file_id(const cairn_sst_reader *r)
{
    return r->file_id;
}

int cairn_sst_data_block(const cairn_sst_reader *r, size_t i, uint64_t *off,
                         uint64_t *size)
{
    if (!r || i >= r->nidx)
        return CAIRN_EINVAL;
    if (off)
        *off = r->idx[i].off;
    if (size)
        *size = r->idx[i].size;
    return 0;
}

/* ---------- verify ---------- */

typedef struct vstate {
    uint64_t entries, deletes, distinct, kbytes, vbytes, raw, stored;
    uint64_t minv, maxv, mints, maxts;
    kbuf prev; /* previous internal key in the file */
    kbuf first;
} vstate;

/* Check one data block entry by entry. */
static int verify_block(const cairn_sst_reader *r, size_t i,
                        const sst_block *b, vstate *s, char *errmsg)
{
    const idx_ent *e = &r->idx[i];
    walk w;
    walk_init(&w, b, cairn_sst_ikey_cmp);
    int rc;
    const char *why = NULL; /* set: corruption found here (message to do) */
    while ((rc = walk_next(&w, 8)) == 1) {
        const uint8_t *end = w.val + w.vlen, *q = NULL;
        uint64_t ts = 0;
        if (w.vlen >= 2 && (w.val[0] == CAIRN_SST_PUT ||
                            w.val[0] == CAIRN_SST_DELETE ||
                            w.val[0] == CAIRN_SST_BLOB))
            q = cairn_get_varint64(w.val + 1, end, &ts);
        if (!q || (w.val[0] == CAIRN_SST_DELETE && q != end)) {
            why = "malformed entry in data block";
            break;
        }
        const uint8_t *k = w.key;
        size_t kl = w.klen;
        uint64_t v = cairn_sst_get_trailer(k + kl - 8);
        bool new_key = true;
        if (s->entries > 0) {
            if (cairn_sst_ikey_cmp(s->prev.p, s->prev.len, k, kl) >= 0) {
                why = "keys out of order across blocks";
                break;
            }
            new_key = ukey_cmp(s->prev.p, s->prev.len - 8, k, kl - 8) != 0;
        } else if (kbuf_set(&s->first, 0, k, kl)) {
            rc = CAIRN_ENOMEM;
            break;
        }
        if (new_key && r->fdata &&
            !cairn_bloom_may_contain(r->fdata, r->fsize,
                                     cairn_bloom_hash(k, kl - 8))) {
            walk_fini(&w);
            return CORRUPT(errmsg, r->path, r->meta[1][0],
                           "bloom filter misses a key of the block at %" PRIu64,
                           e->off);
        }
        if (kbuf_set(&s->prev, 0, k, kl)) {
            rc = CAIRN_ENOMEM;
            break;
        }
        if (s->entries == 0 || v < s->minv)
            s->minv = v;
        if (s->entries == 0 || v > s->maxv)
            s->maxv = v;
        if (s->entries == 0 || ts < s->mints)
            s->mints = ts;
        if (s->entries == 0 || ts > s->maxts)
            s->maxts = ts;
        s->entries++;
        s->deletes += w.val[0] == CAIRN_SST_DELETE;
        s->distinct += new_key;
        s->kbytes += kl - 8;
        s->vbytes += (uint64_t)(end - q);
    }
    uint64_t n = w.n;
    walk_fini(&w);
    if (why)
        return CORRUPT(errmsg, r->path, e->off, "%s", why);
    if (rc == CAIRN_ENOMEM)
        return fail_msg(errmsg, rc, r->path, e->off, "out of memory");
    if (rc)
        return CORRUPT(errmsg, r->path, e->off, "malformed data block");
    if (n == 0)
        return CORRUPT(errmsg, r->path, e->off, "empty data block");
    if (s->prev.len != e->klen || memcmp(s->prev.p, r->keys + e->koff, e->klen))
        return CORRUPT(errmsg, r->path, e->off,
                       "index key differs from the block's last key");
    return 0;
}

static int verify_file(const cairn_sst_reader *r, cairn_sst_progress_fn progress,
                       void *arg, vstate *s, char *errmsg)
{
    const char *path = r->path;
    uint64_t total = r->data_end, expect = 0;
    ZSTD_DCtx *dctx = NULL;
    int rc = 0;
    for (size_t i = 0; i < r->nidx && !rc; i++) {
        const idx_ent *e = &r->idx[i];
        if (e->off != expect) {
            rc = CORRUPT(errmsg, path, e->off,
                         "data block not where the previous one ends (%" PRIu64
                         ")",
                         expect);
            break;
        }
        sst_block *b;
        rc = read_block(r->f, path, e->off, e->size, &dctx, BLK_DATA, &b,
                        errmsg);
        if (rc)
            break;
        s->raw += b->size;
        s->stored += e->size + CAIRN_SST_TRAILER_SIZE;
        rc = verify_block(r, i, b, s, errmsg);
        block_free(b);
        expect = e->off + e->size + CAIRN_SST_TRAILER_SIZE;
        if (!rc && progress)
            progress(arg, expect, total);
    }
    ZSTD_freeDCtx(dctx);
    if (rc)
        return rc;
    if (expect != r->data_end)
        return CORRUPT(errmsg, path, expect,
                       "data blocks end before the meta blocks (%" PRIu64 ")",
                       r->data_end);
    /* Meta blocks in writer order, each right after the previous one. */
    static const int order[5] = {1, 2, 3, 4, 0};
    for (int j = 0; j < 5; j++) {
        const uint64_t *h = order[j] == 4 ? r->brefs : r->meta[order[j]];
        if ((order[j] == 1 || order[j] == 4) && h[1] == 0)
            continue;
        if (h[0] != expect)
            return CORRUPT(errmsg, path, h[0],
                           "meta block not where expected (%" PRIu64 ")",
                           expect);
        expect = h[0] + h[1] + CAIRN_SST_TRAILER_SIZE;
    }
    if (expect != r->footer_off)
        return CORRUPT(errmsg, path, expect, "gap before the footer");

    const cairn_sst_props *p = &r->props;
    uint64_t po = r->meta[3][0];
    if (p->entries != s->entries || p->deletes != s->deletes ||
        p->distinct_keys != s->distinct || p->raw_key_bytes != s->kbytes ||
        p->raw_value_bytes != s->vbytes || p->raw_data_size != s->raw ||
        p->stored_data_size != s->stored)
        return CORRUPT(errmsg, path, po, "properties: counts or sizes differ "
                                         "from the data blocks");
    if (s->entries &&
        (p->min_version != s->minv || p->max_version != s->maxv ||
         p->min_ts != s->mints || p->max_ts != s->maxts))
        return CORRUPT(errmsg, path, po,
                       "properties: version or time bounds differ");
    if (s->entries &&
        (s->first.len != p->smallest_klen + 8 ||
         memcmp(s->first.p, p->smallest_key, s->first.len) != 0))
        return CORRUPT(errmsg, path, po, "properties: wrong smallest key");
    if (r->fdata && p->bloom_bits_per_key &&
        r->fsize != cairn_bloom_size(r->fdata[0], s->distinct,
                                     p->bloom_bits_per_key))
        return CORRUPT(errmsg, path, r->meta[1][0], "filter size is wrong");
    return 0;
}

int cairn_sst_verify(cairn_env *env, const char *path,
                     cairn_sst_progress_fn progress, void *arg, char *errmsg)
{
    cairn_sst_reader *r;
    int rc = cairn_sst_open(env, path, 0, NULL, &r, errmsg);
    if (rc)
        return rc;
    vstate s;
    memset(&s, 0, sizeof s);
    kbuf_init(&s.prev);
    kbuf_init(&s.first);
    rc = verify_file(r, progress, arg, &s, errmsg);
    kbuf_free(&s.prev);
    kbuf_free(&s.first);
    cairn_sst_close(r);
    return rc;
}

/* ---------- dump ---------- */

static void put_escaped(FILE *out, const uint8_t *p, size_t n, size_t max)
{
    fputc('"', out);
    for (size_t i = 0; i < n && i < max; i++) {
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
            fputc(p[i], out);
        else
            fprintf(out, "\\x%02x", p[i]);
    }
    fputc('"', out);
    if (n > max)
        fputs("...", out);
}

static const char *codec_name(cairn_sst_codec c)
{
    switch (c) {
    case CAIRN_SST_CODEC_NONE:
        return "none";
    case CAIRN_SST_CODEC_LZ4:
        return "lz4";
    case CAIRN_SST_CODEC_ZSTD:
        return "zstd";
    }
    return "unknown";
}

int cairn_sst_dump(const cairn_sst_reader *r, FILE *out, uint64_t limit,
                   char *errmsg)
{
    const cairn_sst_props *p = &r->props;
    fprintf(out, "file: %s\n", r->path);
    fprintf(out, "format version: %d\n", CAIRN_SST_FORMAT_VERSION);
    fprintf(out, "file size: %" PRIu64 "\n", p->file_size);
    fprintf(out, "entries: %" PRIu64 " (deletes %" PRIu64
                 ", distinct keys %" PRIu64 ")\n",
            p->entries, p->deletes, p->distinct_keys);
    fprintf(out, "versions: %" PRIu64 "..%" PRIu64 "\n", p->min_version,
            p->max_version);
    fprintf(out, "timestamps: %" PRIu64 "..%" PRIu64 "\n", p->min_ts,
            p->max_ts);
    fprintf(out, "raw key bytes: %" PRIu64 ", raw value bytes: %" PRIu64 "\n",
            p->raw_key_bytes, p->raw_value_bytes);
    fprintf(out, "data blocks: %" PRIu64 ", raw %" PRIu64 " bytes, stored %"
                 PRIu64 " bytes\n",
            p->data_blocks, p->raw_data_size, p->stored_data_size);
    fprintf(out, "codec: %s", codec_name(p->codec));
    if (p->codec == CAIRN_SST_CODEC_ZSTD)
        fprintf(out, " (level %d)", p->zstd_level);
    fprintf(out, ", block size %" PRIu64 ", restart interval %u\n",
            p->block_size, p->restart_interval);
    fprintf(out, "filter: %u bits per key, %" PRIu64 " bytes; index: %" PRIu64
                 " bytes\n",
            p->bloom_bits_per_key, p->filter_size, p->index_size);
    fprintf(out, "created: %" PRIu64 " us\n", p->creation_ts_us);
    if (p->entries) {
        fputs("smallest: ", out);
        put_escaped(out, p->smallest_key, p->smallest_klen, 256);
        fprintf(out, " @%" PRIu64 "\nlargest: ", p->smallest_version);
        put_escaped(out, p->largest_key, p->largest_klen, 256);
        fprintf(out, " @%" PRIu64 "\n", p->largest_version);
    }
    fputs("--- entries\n", out);
    cairn_sst_iter *it;
    int rc = cairn_sst_iter_new(r, &it);
    if (rc)
        return rc;
    uint64_t n = 0;
    for (cairn_sst_iter_seek_first(it); cairn_sst_iter_valid(it);
         cairn_sst_iter_next(it)) {
        if (limit && n == limit)
            break;
        cairn_sst_entry e;
        cairn_sst_iter_entry(it, &e);
        put_escaped(out, e.key, e.klen, 256);
        fprintf(out, " @%" PRIu64 " ts=%" PRIu64, e.version, e.ts_us);
        if (e.kind == CAIRN_SST_DELETE) {
            fputs(" DEL\n", out);
        } else {
            fprintf(out, " %s %zu bytes ",
                    e.kind == CAIRN_SST_BLOB ? "BLOBREF" : "PUT", e.vlen);
            put_escaped(out, e.value, e.vlen, 32);
            fputc('\n', out);
        }
        n++;
    }
    rc = cairn_sst_iter_status(it);
    if (rc && errmsg)
        snprintf(errmsg, CAIRN_SST_ERRMSG_LEN, "%s", cairn_sst_iter_errmsg(it));
    cairn_sst_iter_free(it);
    return rc;
}
