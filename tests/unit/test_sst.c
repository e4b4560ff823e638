/*
 * test_sst.c — sorted files (src/sst/): builder, reader, iterator, bloom
 * filter, verify and dump, on the memory env.
 *
 *  - Round trip of random entries (several versions per key, deletes, empty
 *    values, values larger than a block, the empty key, long keys) with
 *    every codec and two block sizes: forward and backward scans, random
 *    walks of seek / seek_for_prev / next / prev / seek_first / seek_last
 *    (direction changes included) and gets with version and time bounds,
 *    all against a brute-force reference built with its own comparator;
 *    the same with a block cache too small for the file (evictions).
 *  - Bloom filter: no false negatives, false positive rate < 2% at 10
 *    bits per key (measured, printed), both directly and through a file.
 *  - Properties of a hand-made file, field by field; an empty file.
 *  - Refusals: out-of-order and duplicate adds, bad arguments, EEXIST.
 *  - Damage: every byte of small files flipped in turn (data, filter,
 *    index, properties, metaindex blocks, trailers and footer): open, scan,
 *    get or verify report CAIRN_ECORRUPT naming the file and the damaged
 *    block's offset, and nothing read before the error differs from the
 *    reference; every truncation fails at open; the same flips with the
 *    block checksum recomputed never crash and verify flags most of them;
 *    a newer format version or
 *    an unknown flag gives CAIRN_EVERSION.
 *  - I/O failures: every write or sync of a build failed in turn: an error
 *    comes back and no file is left; abandon leaves no file.
 *  - Sizes: compression shrinks compressible data (LZ4, zstd) and none
 *    does not; builder_file_size tracks the file; writes are batched.
 *  - 16 MiB values with LZ4 and zstd.
 *  - Block cache: a second scan hits for every block; pins keep blocks; a
 *    builder with fill_cache leaves every block in it as the reader wants
 *    it (no miss), only while there is room, and takes them back when
 *    abandoned.
 *  - Concurrency: 4 threads share one reader (with a small cache and
 *    without one), each checking gets and seeks against the reference.
 *  - verify (with progress) and dump (with a limit).
 *
 * CAIRN_SST_TEST_SCALE (default 1) multiplies the random workload sizes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <xxhash.h>

#include "cache/block_cache.h"
#include "cairn.h"
#include "env/env.h"
#include "sst/bloom.h"
#include "sst/sst.h"
#include "util/coding.h"
#include "test_util.h"

/* ---------- reference model, written independently of the reader ---------- */

typedef struct ref_ent {
    uint8_t *key;
    size_t klen;
    uint64_t version, ts;
    int kind; /* 1 put, 2 delete */
    uint8_t *val;
    size_t vlen;
} ref_ent;

typedef struct ref_set {
    ref_ent *e;
    size_t n;
} ref_set;

static int ukey_order(const uint8_t *a, size_t alen, const uint8_t *b,
                      size_t blen)
{
    for (size_t i = 0; i < alen && i < blen; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return alen == blen ? 0 : alen < blen ? -1 : 1;
}

static int ref_order(const uint8_t *a, size_t alen, uint64_t av,
                     const uint8_t *b, size_t blen, uint64_t bv)
{
    int c = ukey_order(a, alen, b, blen);
    if (c)
        return c;
    return av == bv ? 0 : av > bv ? -1 : 1;
}

static int ref_qsort_cmp(const void *x, const void *y)
{
    const ref_ent *a = x, *b = y;
    return ref_order(a->key, a->klen, a->version, b->key, b->klen, b->version);
}

static void ref_free(ref_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        /* keys are shared by the versions of one key: freed at the first */
        if (i == 0 || s->e[i].key != s->e[i - 1].key)
            free(s->e[i].key);
        free(s->e[i].val);
    }
    free(s->e);
    s->e = NULL;
    s->n = 0;
}

/* First index whose entry >= (k, v). */
static size_t ref_lower(const ref_set *s, const uint8_t *k, size_t kl,
                        uint64_t v)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const ref_ent *e = &s->e[mid];
        if (ref_order(e->key, e->klen, e->version, k, kl, v) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

typedef struct gen_opts {
    size_t nkeys;
    unsigned max_versions;
    unsigned big_per_mille; /* values of 5..30 KiB */
    bool monotone_ts;
    bool short_keys; /* no keys of 200+ bytes */
} gen_opts;

static void gen_key(uint64_t *rng, uint8_t *k, size_t *kl, bool short_keys)
{
    static const uint8_t alpha[] = {0x00, 'a', 'b', 'k', 0xff};
    uint64_t r = tu_rand(rng, 100);
    if (r < 3 && !short_keys) { /* a long key */
        *kl = 200 + tu_rand(rng, 3000);
        tu_fill(k, *kl, tu_splitmix(rng));
    } else if (r < 50) { /* shared prefixes */
        *kl = (size_t)sprintf((char *)k, "user:%06" PRIu64,
                              tu_rand(rng, 1000000));
    } else {
        *kl = tu_rand(rng, 9);
        for (size_t i = 0; i < *kl; i++)
            k[i] = alpha[tu_rand(rng, sizeof alpha)];
    }
}

static ref_set gen_entries(uint64_t seed, const gen_opts *o)
{
    uint64_t rng = seed;
    ref_set s = {0};
    size_t cap = o->nkeys * o->max_versions + 1;
    s.e = calloc(cap, sizeof *s.e);
    assert_non_null(s.e);
    uint8_t kb[4096];
    /* random keys (the empty key always among them), then sort + dedupe */
    ref_ent *tmp = calloc(o->nkeys + 1, sizeof *tmp);
    assert_non_null(tmp);
    size_t nk = 0;
    tmp[nk].key = malloc(1);
    tmp[nk++].klen = 0;
    for (size_t i = 0; i < o->nkeys; i++) {
        size_t kl;
        gen_key(&rng, kb, &kl, o->short_keys);
        tmp[nk].key = malloc(kl ? kl : 1);
        memcpy(tmp[nk].key, kb, kl);
        tmp[nk++].klen = kl;
    }
    qsort(tmp, nk, sizeof *tmp, ref_qsort_cmp);
    size_t kept = SIZE_MAX; /* index of the last key kept */
    for (size_t i = 0; i < nk; i++) {
        if (kept != SIZE_MAX && ukey_order(tmp[i].key, tmp[i].klen,
                                           tmp[kept].key,
                                           tmp[kept].klen) == 0) {
            free(tmp[i].key);
            continue;
        }
        kept = i;
        unsigned nv = 1 + (unsigned)tu_rand(&rng, o->max_versions);
        uint64_t vs[64];
        unsigned got = 0;
        while (got < nv) {
            uint64_t v = 1 + tu_rand(&rng, 1000);
            bool dup = false;
            for (unsigned j = 0; j < got; j++)
                dup |= vs[j] == v;
            if (!dup)
                vs[got++] = v;
        }
        for (unsigned j = 0; j < nv; j++) {
            ref_ent *e = &s.e[s.n++];
            e->key = tmp[i].key;
            e->klen = tmp[i].klen;
            e->version = vs[j];
            e->ts = o->monotone_ts ? 1700000000000000ull + vs[j] * 1000
                                   : 1700000000000000ull + tu_rand(&rng, 1000000);
            e->kind = tu_rand(&rng, 5) == 0 ? 2 : 1;
            if (e->kind == 1) {
                uint64_t r = tu_rand(&rng, 1000);
                e->vlen = r < o->big_per_mille ? 5000 + tu_rand(&rng, 25000)
                          : r < 100            ? 0
                                               : tu_rand(&rng, 120);
                e->val = malloc(e->vlen ? e->vlen : 1);
                tu_fill(e->val, e->vlen, tu_splitmix(&rng));
            }
        }
    }
    free(tmp);
    qsort(s.e, s.n, sizeof *s.e, ref_qsort_cmp);
    return s;
}

/* ---------- helpers ---------- */

static void opts_of(cairn_sst_options *o, cairn_sst_codec codec,
                    size_t block_size)
{
    cairn_sst_options_init(o);
    o->codec = codec;
    o->block_size = block_size;
}

static void build(cairn_env *env, const char *path, const cairn_sst_options *o,
                  const ref_set *s, cairn_sst_props *props)
{
    cairn_sst_builder *b;
    assert_int_equal(cairn_sst_builder_new(env, path, o, &b), 0);
    uint64_t last_size = 0;
    for (size_t i = 0; i < s->n; i++) {
        const ref_ent *e = &s->e[i];
        assert_int_equal(cairn_sst_builder_add(b, e->key, e->klen, e->version,
                                               e->ts, (cairn_sst_kind)e->kind,
                                               e->val, e->vlen),
                         0);
        uint64_t fs = cairn_sst_builder_file_size(b);
        assert_true(fs >= last_size);
        last_size = fs;
    }
    assert_int_equal(cairn_sst_builder_entries(b), s->n);
    cairn_sst_props p;
    assert_int_equal(cairn_sst_builder_finish(b, &p), 0);
    assert_true(p.file_size >= last_size);
    if (props)
        *props = p;
    else
        cairn_sst_props_clear(&p);
}

static bool same_entry(const cairn_sst_entry *g, const ref_ent *e)
{
    if (g->klen != e->klen || memcmp(g->key, e->key, e->klen) != 0 ||
        g->version != e->version || g->ts_us != e->ts ||
        (int)g->kind != e->kind)
        return false;
    if (e->kind == 2)
        return g->value == NULL && g->vlen == 0;
    return g->value != NULL && g->vlen == e->vlen &&
           memcmp(g->value, e->val, e->vlen) == 0;
}

static void check_it(cairn_sst_iter *it, const ref_set *s, long pos)
{
    assert_int_equal(cairn_sst_iter_status(it), 0);
    if (pos < 0 || (size_t)pos >= s->n) {
        assert_false(cairn_sst_iter_valid(it));
        return;
    }
    assert_true(cairn_sst_iter_valid(it));
    cairn_sst_entry g;
    cairn_sst_iter_entry(it, &g);
    assert_true(same_entry(&g, &s->e[pos]));
}

static void scan_both_ways(const cairn_sst_reader *r, const ref_set *s)
{
    cairn_sst_iter *it;
    assert_int_equal(cairn_sst_iter_new(r, &it), 0);
    assert_false(cairn_sst_iter_valid(it));
    size_t i = 0;
    for (cairn_sst_iter_seek_first(it); cairn_sst_iter_valid(it);
         cairn_sst_iter_next(it), i++) {
        assert_true(i < s->n);
        check_it(it, s, (long)i);
    }
    assert_int_equal(cairn_sst_iter_status(it), 0);
    assert_int_equal(i, s->n);
    i = s->n;
    for (cairn_sst_iter_seek_last(it); cairn_sst_iter_valid(it);
         cairn_sst_iter_prev(it)) {
        assert_true(i > 0);
        check_it(it, s, (long)--i);
    }
    assert_int_equal(cairn_sst_iter_status(it), 0);
    assert_int_equal(i, 0);
    cairn_sst_iter_free(it);
}

/* A random seek target: an existing key with a version near one of its
 * versions, or a made-up key. */
static void pick_target(uint64_t *rng, const ref_set *s, uint8_t *kb,
                        const uint8_t **k, size_t *kl, uint64_t *v)
{
    uint64_t r = tu_rand(rng, 10);
    if (r < 7 && s->n) {
        const ref_ent *e = &s->e[tu_rand(rng, s->n)];
        *k = e->key;
        *kl = e->klen;
        switch (tu_rand(rng, 5)) {
        case 0: *v = e->version; break;
        case 1: *v = e->version + 1; break;
        case 2: *v = e->version - 1; break;
        case 3: *v = UINT64_MAX; break;
        default: *v = 0; break;
        }
    } else {
        gen_key(rng, kb, kl, false);
        *k = kb;
        *v = tu_rand(rng, 3) == 0 ? UINT64_MAX : tu_rand(rng, 1100);
    }
}

static void random_walk(const cairn_sst_reader *r, const ref_set *s,
                        uint64_t seed, unsigned steps)
{
    uint64_t rng = seed;
    cairn_sst_iter *it;
    assert_int_equal(cairn_sst_iter_new(r, &it), 0);
    long pos = -1;
    uint8_t kb[4096];
    for (unsigned step = 0; step < steps; step++) {
        const uint8_t *k;
        size_t kl;
        uint64_t v;
        switch (tu_rand(&rng, 8)) {
        case 0:
            cairn_sst_iter_seek_first(it);
            pos = s->n ? 0 : -1;
            break;
        case 1:
            cairn_sst_iter_seek_last(it);
            pos = (long)s->n - 1;
            break;
        case 2:
            pick_target(&rng, s, kb, &k, &kl, &v);
            cairn_sst_iter_seek(it, k, kl, v);
            pos = (long)ref_lower(s, k, kl, v);
            if ((size_t)pos == s->n)
                pos = -1;
            break;
        case 3:
            pick_target(&rng, s, kb, &k, &kl, &v);
            cairn_sst_iter_seek_for_prev(it, k, kl, v);
            /* last entry <= (k, v): before the first entry > (k, v) */
            pos = (long)ref_lower(s, k, kl, v);
            if ((size_t)pos < s->n &&
                ref_order(s->e[pos].key, s->e[pos].klen, s->e[pos].version, k,
                          kl, v) == 0)
                break;
            pos--;
            break;
        case 4:
        case 5:
            if (pos >= 0) {
                cairn_sst_iter_next(it);
                pos = (size_t)(pos + 1) == s->n ? -1 : pos + 1;
            }
            break;
        default:
            if (pos >= 0) {
                cairn_sst_iter_prev(it);
                pos--;
            }
            break;
        }
        check_it(it, s, pos);
    }
    cairn_sst_iter_free(it);
}

/* The reference answer of a get: index of the newest entry of k with
 * version <= mv and ts <= mt, or -1. */
static long ref_get(const ref_set *s, const uint8_t *k, size_t kl, uint64_t mv,
                    uint64_t mt)
{
    long best = -1;
    for (size_t i = ref_lower(s, k, kl, UINT64_MAX); i < s->n; i++) {
        const ref_ent *e = &s->e[i];
        if (ukey_order(e->key, e->klen, k, kl) != 0)
            break;
        if (e->version <= mv && e->ts <= mt &&
            (best < 0 || e->version > s->e[best].version))
            best = (long)i;
    }
    return best;
}

static void random_gets(const cairn_sst_reader *r, const ref_set *s,
                        uint64_t seed, unsigned n)
{
    uint64_t rng = seed;
    uint8_t kb[4096];
    unsigned found = 0;
    for (unsigned q = 0; q < n; q++) {
        const uint8_t *k;
        size_t kl;
        uint64_t mv, mt;
        pick_target(&rng, s, kb, &k, &kl, &mv);
        uint64_t tr = tu_rand(&rng, 3);
        mt = tr == 0 ? UINT64_MAX
                     : 1700000000000000ull + tu_rand(&rng, 1100000);
        long want = ref_get(s, k, kl, mv, mt);
        cairn_sst_entry g;
        cairn_sst_pin pin;
        char msg[CAIRN_SST_ERRMSG_LEN];
        int rc = cairn_sst_get(r, k, kl, mv, mt, &g, &pin, msg);
        if (want < 0) {
            assert_int_equal(rc, CAIRN_ENOTFOUND);
        } else {
            assert_int_equal(rc, 0);
            assert_true(same_entry(&g, &s->e[want]));
            assert_ptr_equal(g.key, k);
            found++;
        }
        cairn_sst_pin_release(&pin);
    }
    assert_true(found > n / 10);
}

/* ---------- round trip ---------- */

static unsigned scale(void)
{
    return (unsigned)tu_env_u64("CAIRN_SST_TEST_SCALE", 1);
}

static void roundtrip_one(cairn_sst_codec codec, size_t block_size,
                          bool monotone, cairn_block_cache *cache,
                          uint64_t seed)
{
    cairn_env *env = cairn_env_mem_new();
    assert_int_equal(cairn_env_mkdir_p(env, "/t"), 0);
    gen_opts g = {.nkeys = 1200 * scale(), .max_versions = 5,
                  .big_per_mille = 8, .monotone_ts = monotone};
    ref_set s = gen_entries(seed, &g);
    cairn_sst_options o;
    opts_of(&o, codec, block_size);
    cairn_sst_props bp;
    build(env, "/t/1.sst", &o, &s, &bp);

    cairn_sst_reader *r;
    char msg[CAIRN_SST_ERRMSG_LEN];
    assert_int_equal(cairn_sst_open(env, "/t/1.sst", 1, cache, &r, msg), 0);
    const cairn_sst_props *p = cairn_sst_props_get(r);
    assert_int_equal(p->entries, s.n);
    assert_int_equal(p->data_blocks, bp.data_blocks);
    assert_true(p->data_blocks > (codec == CAIRN_SST_CODEC_NONE ? 20u : 5u));
    assert_int_equal(p->file_size, bp.file_size);
    assert_int_equal(p->codec, codec);
    assert_int_equal(p->smallest_klen, 0); /* the empty key is the smallest */
    cairn_sst_props_clear(&bp);

    scan_both_ways(r, &s);
    random_walk(r, &s, seed + 1, 3000 * scale());
    random_gets(r, &s, seed + 2, 3000 * scale());
    cairn_sst_close(r);
    assert_int_equal(cairn_sst_verify(env, "/t/1.sst", NULL, NULL, msg), 0);
    ref_free(&s);
    cairn_env_destroy(env);
}

static void test_roundtrip_none(void **state)
{
    (void)state;
    roundtrip_one(CAIRN_SST_CODEC_NONE, 512, true, NULL, 11);
    roundtrip_one(CAIRN_SST_CODEC_NONE, 4096, false, NULL, 12);
}

static void test_roundtrip_lz4(void **state)
{
    (void)state;
    roundtrip_one(CAIRN_SST_CODEC_LZ4, 512, false, NULL, 21);
    roundtrip_one(CAIRN_SST_CODEC_LZ4, 4096, true, NULL, 22);
}

static void test_roundtrip_zstd(void **state)
{
    (void)state;
    roundtrip_one(CAIRN_SST_CODEC_ZSTD, 512, true, NULL, 31);
    roundtrip_one(CAIRN_SST_CODEC_ZSTD, 4096, false, NULL, 32);
}

static void test_roundtrip_small_cache(void **state)
{
    (void)state;
    /* far smaller than the file: lookups miss, blocks are evicted while
     * other blocks stay pinned by the iterator */
    cairn_block_cache *c = cairn_block_cache_new(16 << 10, 2);
    assert_non_null(c);
    roundtrip_one(CAIRN_SST_CODEC_LZ4, 1024, false, c, 41);
    cairn_block_cache_stats st;
    cairn_block_cache_get_stats(c, &st);
    assert_true(st.hits > 0);
    assert_true(st.evictions > 0);
    cairn_block_cache_erase_file(c, 1);
    cairn_block_cache_free(c);
}

/* A builder with fill_cache puts each data block in the cache, decoded as
 * a reader of the file would: the reader then finds every block there
 * (no miss) and reads the same entries; while the cache has room only
 * (nothing evicted); an abandoned builder takes its blocks out. */
static void test_write_fills_cache(void **state)
{
    (void)state;
    for (int codec = 0; codec < 3; codec++) {
        cairn_env *env = cairn_env_mem_new();
        gen_opts g = {.nkeys = 1200, .max_versions = 5, .big_per_mille = 8};
        ref_set s = gen_entries(60 + (uint64_t)codec, &g);
        cairn_block_cache *c = cairn_block_cache_new(64 << 20, 4);
        assert_non_null(c);
        cairn_sst_options o;
        opts_of(&o, (cairn_sst_codec)codec, 1024);
        o.fill_cache = c;
        o.fill_file_id = 5;
        cairn_sst_props bp;
        build(env, "f.sst", &o, &s, &bp);
        cairn_block_cache_stats st;
        cairn_block_cache_get_stats(c, &st);
        assert_true(bp.data_blocks > 5);
        assert_int_equal(st.inserts, bp.data_blocks);
        assert_int_equal(st.entries, bp.data_blocks);
        cairn_sst_props_clear(&bp);
        cairn_sst_reader *r;
        char msg[CAIRN_SST_ERRMSG_LEN];
        assert_int_equal(cairn_sst_open(env, "f.sst", 5, c, &r, msg), 0);
        scan_both_ways(r, &s);
        random_gets(r, &s, 61, 2000);
        cairn_block_cache_get_stats(c, &st);
        assert_true(st.hits > 0);
        assert_int_equal(st.misses, 0);
        cairn_sst_close(r);

        /* A cache with room for a few blocks: filled up to its budget,
         * nothing evicted. */
        cairn_block_cache *small = cairn_block_cache_new(16 << 10, 1);
        assert_non_null(small);
        o.fill_cache = small;
        build(env, "g.sst", &o, &s, &bp);
        cairn_block_cache_get_stats(small, &st);
        assert_true(st.inserts > 0 && st.inserts < bp.data_blocks);
        assert_int_equal(st.evictions, 0);
        assert_true(st.usage <= st.capacity);
        cairn_sst_props_clear(&bp);

        /* Abandoned: its blocks leave the cache with it. */
        cairn_block_cache *ab = cairn_block_cache_new(64 << 20, 4);
        assert_non_null(ab);
        o.fill_cache = ab;
        cairn_sst_builder *b;
        assert_int_equal(cairn_sst_builder_new(env, "h.sst", &o, &b), 0);
        for (size_t i = 0; i < s.n; i++)
            assert_int_equal(
                cairn_sst_builder_add(b, s.e[i].key, s.e[i].klen,
                                      s.e[i].version, s.e[i].ts,
                                      (cairn_sst_kind)s.e[i].kind, s.e[i].val,
                                      s.e[i].vlen),
                0);
        cairn_block_cache_get_stats(ab, &st);
        assert_true(st.entries > 0);
        cairn_sst_builder_abandon(b);
        cairn_block_cache_get_stats(ab, &st);
        assert_int_equal(st.entries, 0);
        assert_int_equal(st.usage, 0);

        cairn_block_cache_free(ab);
        cairn_block_cache_free(small);
        cairn_block_cache_free(c);
        ref_free(&s);
        cairn_env_destroy(env);
    }
}

/* Restart interval 1 and a large one; a zero-length value in every entry. */
static void test_restart_intervals(void **state)
{
    (void)state;
    uint32_t intervals[] = {1, 3, 128};
    for (size_t t = 0; t < 3; t++) {
        cairn_env *env = cairn_env_mem_new();
        gen_opts g = {.nkeys = 400, .max_versions = 3, .monotone_ts = true};
        ref_set s = gen_entries(100 + t, &g);
        cairn_sst_options o;
        opts_of(&o, CAIRN_SST_CODEC_LZ4, 700);
        o.restart_interval = intervals[t];
        build(env, "x.sst", &o, &s, NULL);
        cairn_sst_reader *r;
        assert_int_equal(cairn_sst_open(env, "x.sst", 1, NULL, &r, NULL), 0);
        assert_int_equal(cairn_sst_props_get(r)->restart_interval, intervals[t]);
        scan_both_ways(r, &s);
        random_walk(r, &s, 7 + t, 1500);
        random_gets(r, &s, 8 + t, 1000);
        cairn_sst_close(r);
        assert_int_equal(cairn_sst_verify(env, "x.sst", NULL, NULL, NULL), 0);
        ref_free(&s);
        cairn_env_destroy(env);
    }
}

/* ---------- bloom ---------- */

/* ---------- index search ---------- */

typedef struct tkey {
    uint8_t b[24];
    size_t n;
} tkey;

static int tkey_cmp(const void *x, const void *y)
{
    const tkey *a = x, *b = y;
    size_t n = a->n < b->n ? a->n : b->n;
    int c = memcmp(a->b, b->b, n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* Random keys over a small alphabet with zero bytes, all starting with a
 * shared prefix, of lengths on both sides of 16 (where the reader's
 * 16-byte key-prefix words are cut and zero-padded, so keys that differ
 * only by trailing zero bytes tie there): every seek lands on the first
 * key >= the target, as a sorted array says. Tiny blocks make an index of
 * hundreds of entries. */
static void test_index_search(void **state)
{
    (void)state;
    static const uint8_t alpha[] = {0, 1, 'a', 'b', 0xff};
    cairn_env *env = cairn_env_mem_new();
    uint64_t rng = 0x1dc5;
    size_t n = 3000;
    tkey *k = calloc(n, sizeof *k);
    assert_non_null(k);
    for (size_t i = 0; i < n; i++) {
        memcpy(k[i].b, "pfx", 3);
        k[i].n = 3 + (size_t)tu_rand(&rng, 18);
        for (size_t j = 3; j < k[i].n; j++)
            k[i].b[j] = alpha[tu_rand(&rng, sizeof alpha)];
    }
    qsort(k, n, sizeof *k, tkey_cmp);
    size_t m = 0; /* distinct */
    for (size_t i = 0; i < n; i++)
        if (m == 0 || tkey_cmp(&k[m - 1], &k[i]) != 0)
            k[m++] = k[i];
    cairn_sst_options o;
    cairn_sst_options_init(&o);
    o.block_size = 64;
    o.restart_interval = 2;
    cairn_sst_builder *b;
    assert_int_equal(cairn_sst_builder_new(env, "ix.sst", &o, &b), 0);
    for (size_t i = 0; i < m; i++)
        assert_int_equal(cairn_sst_builder_add(b, k[i].b, k[i].n, 5, 5,
                                               CAIRN_SST_PUT, "v", 1),
                         0);
    cairn_sst_props p;
    assert_int_equal(cairn_sst_builder_finish(b, &p), 0);
    assert_true(p.data_blocks > 100);
    cairn_sst_props_clear(&p);
    cairn_sst_reader *r;
    assert_int_equal(cairn_sst_open(env, "ix.sst", 7, NULL, &r, NULL), 0);
    cairn_sst_iter *it;
    assert_int_equal(cairn_sst_iter_new(r, &it), 0);
    for (int t = 0; t < 20000; t++) {
        tkey q;
        if (t % 3 == 0) { /* a key of the file, maybe cut or extended */
            q = k[tu_rand(&rng, m)];
            if (t % 2 && q.n > 0)
                q.n -= 1;
            else if (q.n < sizeof q.b)
                q.b[q.n++] = alpha[tu_rand(&rng, sizeof alpha)];
        } else {
            size_t pl = tu_rand(&rng, 4) == 0 ? tu_rand(&rng, 4) : 3;
            memcpy(q.b, tu_rand(&rng, 8) == 0 ? "pfw" : "pfx", 3);
            if (tu_rand(&rng, 16) == 0)
                q.b[0] = 'q';
            q.n = pl + (size_t)tu_rand(&rng, 18);
            if (q.n > sizeof q.b)
                q.n = sizeof q.b;
            for (size_t j = pl; j < q.n; j++)
                q.b[j] = alpha[tu_rand(&rng, sizeof alpha)];
        }
        size_t lo = 0, hi = m; /* first key >= q */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (tkey_cmp(&k[mid], &q) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        cairn_sst_iter_seek(it, q.b, q.n, UINT64_MAX);
        if (lo == m) {
            assert_false(cairn_sst_iter_valid(it));
            continue;
        }
        assert_true(cairn_sst_iter_valid(it));
        cairn_sst_entry e;
        cairn_sst_iter_entry(it, &e);
        assert_int_equal(e.klen, k[lo].n);
        assert_memory_equal(e.key, k[lo].b, e.klen);
    }
    assert_int_equal(cairn_sst_iter_status(it), 0);
    cairn_sst_iter_free(it);
    cairn_sst_close(r);
    free(k);
    cairn_env_destroy(env);
}

/* Both kinds: no false negatives, about 1% false positives at 10 bits per
 * key, headers checked; kind 2 in an aligned copy probes the same. */
static void bloom_kind(int kind, size_t expect_len)
{
    size_t n = 100000;
    uint64_t *h = malloc(n * sizeof *h);
    assert_non_null(h);
    char k[32];
    for (size_t i = 0; i < n; i++) {
        int kl = sprintf(k, "key-%zu", i);
        h[i] = cairn_bloom_hash(k, (size_t)kl);
    }
    assert_int_equal(cairn_bloom_probes(10), 7);
    size_t len = cairn_bloom_size(kind, n, 10);
    assert_int_equal(len, expect_len);
    uint8_t *f = malloc(len);
    assert_non_null(f);
    cairn_bloom_build(kind, h, n, 10, f);
    assert_int_equal(f[0], kind);
    assert_int_equal(cairn_bloom_check(f, len), 0);
    void *mem = NULL;
    const uint8_t *al = cairn_bloom_aligned_copy(f, len, &mem);
    assert_non_null(al);
    assert_int_equal(((uintptr_t)(al + 2)) % 64, 0);
    assert_memory_equal(al, f, len);
    for (size_t i = 0; i < n; i++) {
        assert_true(cairn_bloom_may_contain(f, len, h[i]));
        assert_true(cairn_bloom_may_contain(al, len, h[i]));
    }
    size_t fp = 0, probes = 100000;
    for (size_t i = 0; i < probes; i++) {
        int kl = sprintf(k, "absent-%zu", i);
        uint64_t x = cairn_bloom_hash(k, (size_t)kl);
        bool m = cairn_bloom_may_contain(f, len, x);
        assert_int_equal(m, cairn_bloom_may_contain(al, len, x));
        fp += m;
    }
    free(mem);
    double rate = (double)fp / (double)probes;
    fprintf(stderr, "bloom kind %d: %.3f%% false positives at 10 bits/key\n",
            kind, rate * 100);
    assert_true(rate < 0.02);
    assert_true(rate > 0.001); /* it is a real filter, not all-ones */
    /* unknown kinds are ignored, bad headers are corruption */
    f[0] = 9;
    assert_int_equal(cairn_bloom_check(f, len), 1);
    f[0] = (uint8_t)kind;
    f[1] = 0;
    assert_int_equal(cairn_bloom_check(f, len), CAIRN_ECORRUPT);
    f[1] = 31;
    assert_int_equal(cairn_bloom_check(f, len), CAIRN_ECORRUPT);
    assert_int_equal(cairn_bloom_check(f, 2), CAIRN_ECORRUPT);
    f[1] = 7;
    if (kind == CAIRN_BLOOM_KIND_BLOCKED) /* not whole 64-byte blocks */
        assert_int_equal(cairn_bloom_check(f, len - 1), CAIRN_ECORRUPT);
    free(f);
    free(h);
}

static void test_bloom_direct(void **state)
{
    (void)state;
    bloom_kind(CAIRN_BLOOM_KIND_DOUBLE, 2 + 100000 * 10 / 8);
    /* 1,000,000 bits = 1953.1 blocks of 512: 1954 blocks */
    bloom_kind(CAIRN_BLOOM_KIND_BLOCKED, 2 + 1954 * 64);
    assert_int_equal(cairn_bloom_size(CAIRN_BLOOM_KIND_BLOCKED, 1, 10), 66);
    assert_int_equal(cairn_bloom_size(7, 1000, 10), 0);
}

/* A file written with filter kind `kind` (0: the default) reads back with
 * its filter: every key present, about 1% of absent keys let through. */
static void bloom_file(cairn_env *env, int kind)
{
    cairn_sst_options fo;
    cairn_sst_options_init(&fo);
    fo.bloom_kind = (uint8_t)kind;
    char name[32];
    snprintf(name, sizeof name, "b%d.sst", kind);
    cairn_sst_builder *b;
    assert_int_equal(cairn_sst_builder_new(env, name, &fo, &b), 0);
    size_t n = 20000;
    char k[32];
    for (size_t i = 0; i < n; i++) {
        int kl = sprintf(k, "k%08zu", i);
        /* two versions each: the filter counts each user key once */
        assert_int_equal(cairn_sst_builder_add(b, k, (size_t)kl, 9, 9,
                                               CAIRN_SST_PUT, "v", 1),
                         0);
        assert_int_equal(cairn_sst_builder_add(b, k, (size_t)kl, 8, 8,
                                               CAIRN_SST_DELETE, NULL, 0),
                         0);
    }
    cairn_sst_props p;
    assert_int_equal(cairn_sst_builder_finish(b, &p), 0);
    assert_int_equal(p.distinct_keys, n);
    assert_int_equal(p.filter_size,
                     cairn_bloom_size(kind ? kind : CAIRN_BLOOM_KIND, n, 10));
    cairn_sst_props_clear(&p);
    cairn_sst_reader *r;
    assert_int_equal(cairn_sst_open(env, name, 3, NULL, &r, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        int kl = sprintf(k, "k%08zu", i);
        assert_true(cairn_sst_may_contain(r, k, (size_t)kl));
    }
    size_t fp = 0;
    for (size_t i = 0; i < n; i++) {
        int kl = sprintf(k, "q%08zu", i);
        fp += cairn_sst_may_contain(r, k, (size_t)kl);
    }
    fprintf(stderr, "bloom in file (kind %d): %.3f%% false positives\n",
            kind ? kind : CAIRN_BLOOM_KIND, 100.0 * (double)fp / (double)n);
    assert_true(fp < n / 50);
    /* a get of an absent key the filter lets through still says not found */
    cairn_sst_entry e;
    cairn_sst_pin pin;
    for (size_t i = 0; i < 200; i++) {
        int kl = sprintf(k, "q%08zu", i);
        assert_int_equal(
            cairn_sst_get(r, k, (size_t)kl, UINT64_MAX, UINT64_MAX, &e, &pin,
                          NULL),
            CAIRN_ENOTFOUND);
        assert_null(pin.block);
        assert_null(pin.handle);
    }
    cairn_sst_close(r);
    assert_int_equal(cairn_sst_verify(env, name, NULL, NULL, NULL), 0);
}

static void test_bloom_in_file(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    bloom_file(env, 0);
    bloom_file(env, CAIRN_BLOOM_KIND_DOUBLE); /* files of older writers */
    bloom_file(env, CAIRN_BLOOM_KIND_BLOCKED);
    cairn_sst_options o;
    cairn_sst_options_init(&o);
    o.bloom_kind = 5;
    cairn_sst_builder *b;
    assert_int_equal(cairn_sst_builder_new(env, "bad.sst", &o, &b),
                     CAIRN_EINVAL);
    cairn_sst_props p;
    cairn_sst_reader *r;
    cairn_sst_entry e;
    cairn_sst_pin pin;

    /* no filter at 0 bits per key: everything "may" be there */
    cairn_sst_options_init(&o);
    o.bloom_bits_per_key = 0;
    assert_int_equal(cairn_sst_builder_new(env, "nf.sst", &o, &b), 0);
    assert_int_equal(cairn_sst_builder_add(b, "a", 1, 1, 1, CAIRN_SST_PUT,
                                           "x", 1),
                     0);
    assert_int_equal(cairn_sst_builder_finish(b, &p), 0);
    assert_int_equal(p.filter_size, 0);
    cairn_sst_props_clear(&p);
    assert_int_equal(cairn_sst_open(env, "nf.sst", 4, NULL, &r, NULL), 0);
    assert_true(cairn_sst_may_contain(r, "zzz", 3));
    assert_int_equal(cairn_sst_get(r, "zzz", 3, 5, 5, &e, &pin, NULL),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_sst_get(r, "a", 1, 5, 5, &e, &pin, NULL), 0);
    assert_int_equal(e.vlen, 1);
    assert_memory_equal(e.value, "x", 1);
    cairn_sst_pin_release(&pin);
    cairn_sst_close(r);
    assert_int_equal(cairn_sst_verify(env, "nf.sst", NULL, NULL, NULL), 0);
    cairn_env_destroy(env);
}

/* ---------- properties, empty files, refusals ---------- */

static void test_props(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_sst_options o;
    opts_of(&o, CAIRN_SST_CODEC_ZSTD, 32);
    o.zstd_level = 5;
    o.restart_interval = 4;
    cairn_sst_builder *b;
    assert_int_equal(cairn_sst_builder_new(env, "p.sst", &o, &b), 0);
    assert_int_equal(cairn_sst_builder_file_size(b), 0);
    /* a: v30 put "hello", v20 delete; b: v25 put ""; c: v10 put 100 x */
    uint8_t big[100];
    memset(big, 'x', sizeof big);
    assert_int_equal(cairn_sst_builder_add(b, "a", 1, 30, 3000, CAIRN_SST_PUT,
                                           "hello", 5),
                     0);
    assert_int_equal(cairn_sst_builder_add(b, "a", 1, 20, 2000,
                                           CAIRN_SST_DELETE, NULL, 0),
                     0);
    assert_int_equal(cairn_sst_builder_add(b, "bb", 2, 25, 2500, CAIRN_SST_PUT,
                                           "", 0),
                     0);
    assert_int_equal(cairn_sst_builder_add(b, "ccc", 3, 10, 5000,
                                           CAIRN_SST_PUT, big, sizeof big),
                     0);
    assert_int_equal(cairn_sst_builder_entries(b), 4);
    cairn_sst_props p;
    assert_int_equal(cairn_sst_builder_finish(b, &p), 0);
    assert_int_equal(p.entries, 4);
    assert_int_equal(p.deletes, 1);
    assert_int_equal(p.distinct_keys, 3);
    assert_int_equal(p.min_version, 10);
    assert_int_equal(p.max_version, 30);
    assert_int_equal(p.min_ts, 2000);
    assert_int_equal(p.max_ts, 5000);
    assert_int_equal(p.raw_key_bytes, 1 + 1 + 2 + 3);
    assert_int_equal(p.raw_value_bytes, 5 + 0 + 0 + 100);
    assert_int_equal(p.codec, CAIRN_SST_CODEC_ZSTD);
    assert_int_equal(p.zstd_level, 5);
    assert_int_equal(p.block_size, 32);
    assert_int_equal(p.restart_interval, 4);
    assert_int_equal(p.bloom_bits_per_key, 10);
    assert_true(p.data_blocks >= 2);
    assert_true(p.raw_data_size > p.raw_key_bytes + p.raw_value_bytes);
    assert_true(p.stored_data_size > 0);
    assert_int_equal(p.smallest_klen, 1);
    assert_memory_equal(p.smallest_key, "a", 1);
    assert_int_equal(p.smallest_version, 30);
    assert_int_equal(p.largest_klen, 3);
    assert_memory_equal(p.largest_key, "ccc", 3);
    assert_int_equal(p.largest_version, 10);
    uint64_t now = (uint64_t)time(NULL) * 1000000u;
    assert_true(p.creation_ts_us > now - 60000000u &&
                p.creation_ts_us < now + 60000000u);

    cairn_file *f;
    uint64_t fsize;
    assert_int_equal(cairn_env_open(env, "p.sst", CAIRN_OPEN_READ, &f), 0);
    assert_int_equal(cairn_file_size(f, &fsize), 0);
    cairn_file_close(f);
    assert_int_equal(p.file_size, fsize);

    cairn_sst_reader *r;
    assert_int_equal(cairn_sst_open(env, "p.sst", 1, NULL, &r, NULL), 0);
    const cairn_sst_props *q = cairn_sst_props_get(r);
    assert_int_equal(q->entries, p.entries);
    assert_int_equal(q->deletes, p.deletes);
    assert_int_equal(q->distinct_keys, p.distinct_keys);
    assert_int_equal(q->min_version, p.min_version);
    assert_int_equal(q->max_version, p.max_version);
    assert_int_equal(q->min_ts, p.min_ts);
    assert_int_equal(q->max_ts, p.max_ts);
    assert_int_equal(q->raw_key_bytes, p.raw_key_bytes);
    assert_int_equal(q->raw_value_bytes, p.raw_value_bytes);
    assert_int_equal(q->raw_data_size, p.raw_data_size);
    assert_int_equal(q->stored_data_size, p.stored_data_size);
    assert_int_equal(q->data_blocks, p.data_blocks);
    assert_int_equal(q->creation_ts_us, p.creation_ts_us);
    assert_int_equal(q->codec, p.codec);
    assert_int_equal(q->zstd_level, p.zstd_level);
    assert_int_equal(q->block_size, p.block_size);
    assert_int_equal(q->restart_interval, p.restart_interval);
    assert_int_equal(q->bloom_bits_per_key, p.bloom_bits_per_key);
    assert_int_equal(q->file_size, p.file_size);
    assert_int_equal(q->filter_size, p.filter_size);
    assert_int_equal(q->index_size, p.index_size);
    assert_int_equal(q->smallest_klen, 1);
    assert_memory_equal(q->smallest_key, "a", 1);
    assert_int_equal(q->smallest_version, 30);
    assert_int_equal(q->largest_klen, 3);
    assert_memory_equal(q->largest_key, "ccc", 3);
    assert_int_equal(q->largest_version, 10);
    for (size_t i = 0; i < q->data_blocks; i++) {
        uint64_t off, size;
        assert_int_equal(cairn_sst_data_block(r, i, &off, &size), 0);
        assert_true(off < q->file_size && size > 0);
    }
    assert_int_equal(cairn_sst_data_block(r, q->data_blocks, NULL, NULL),
                     CAIRN_EINVAL);
    assert_string_equal(cairn_sst_path(r), "p.sst");
    assert_int_equal(cairn_sst_file_id(r), 1);

    /* gets with version and time bounds on the hand-made entries */
    cairn_sst_entry e;
    cairn_sst_pin pin;
    assert_int_equal(cairn_sst_get(r, "a", 1, 100, UINT64_MAX, &e, &pin, NULL),
                     0);
    assert_int_equal(e.version, 30);
    assert_int_equal(e.kind, CAIRN_SST_PUT);
    assert_memory_equal(e.value, "hello", 5);
    cairn_sst_pin_release(&pin);
    assert_int_equal(cairn_sst_get(r, "a", 1, 29, UINT64_MAX, &e, &pin, NULL),
                     0);
    assert_int_equal(e.version, 20);
    assert_int_equal(e.kind, CAIRN_SST_DELETE);
    assert_null(e.value);
    cairn_sst_pin_release(&pin);
    assert_int_equal(cairn_sst_get(r, "a", 1, 100, 2999, &e, &pin, NULL), 0);
    assert_int_equal(e.version, 20);
    cairn_sst_pin_release(&pin);
    assert_int_equal(cairn_sst_get(r, "a", 1, 19, UINT64_MAX, &e, &pin, NULL),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_sst_get(r, "bb", 2, 25, 2500, &e, &pin, NULL), 0);
    assert_non_null(e.value);
    assert_int_equal(e.vlen, 0);
    cairn_sst_pin_release(&pin);
    assert_int_equal(cairn_sst_get(r, "b", 1, 100, UINT64_MAX, &e, &pin, NULL),
                     CAIRN_ENOTFOUND);
    cairn_sst_close(r);
    cairn_sst_props_clear(&p);
    assert_null(p.smallest_key);
    cairn_env_destroy(env);
}

static void test_empty_file(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_sst_builder *b;
    assert_int_equal(cairn_sst_builder_new(env, "e.sst", NULL, &b), 0);
    cairn_sst_props p;
    assert_int_equal(cairn_sst_builder_finish(b, &p), 0);
    assert_int_equal(p.entries, 0);
    assert_int_equal(p.data_blocks, 0);
    assert_null(p.smallest_key);
    cairn_sst_props_clear(&p);
    cairn_sst_reader *r;
    assert_int_equal(cairn_sst_open(env, "e.sst", 1, NULL, &r, NULL), 0);
    assert_int_equal(cairn_sst_props_get(r)->entries, 0);
    cairn_sst_iter *it;
    assert_int_equal(cairn_sst_iter_new(r, &it), 0);
    cairn_sst_iter_seek_first(it);
    assert_false(cairn_sst_iter_valid(it));
    cairn_sst_iter_seek_last(it);
    assert_false(cairn_sst_iter_valid(it));
    cairn_sst_iter_seek(it, "a", 1, 5);
    assert_false(cairn_sst_iter_valid(it));
    cairn_sst_iter_seek_for_prev(it, "a", 1, 5);
    assert_false(cairn_sst_iter_valid(it));
    assert_int_equal(cairn_sst_iter_status(it), 0);
    cairn_sst_iter_free(it);
    cairn_sst_entry e;
    cairn_sst_pin pin;
    assert_int_equal(cairn_sst_get(r, "", 0, 5, 5, &e, &pin, NULL),
                     CAIRN_ENOTFOUND);
    cairn_sst_close(r);
    assert_int_equal(cairn_sst_verify(env, "e.sst", NULL, NULL, NULL), 0);
    cairn_env_destroy(env);
}

static void test_refusals(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_sst_builder *b;
    cairn_sst_options o;
    cairn_sst_options_init(&o);
    o.block_size = 0;
    assert_int_equal(cairn_sst_builder_new(env, "r.sst", &o, &b), CAIRN_EINVAL);
    cairn_sst_options_init(&o);
    o.restart_interval = 0;
    assert_int_equal(cairn_sst_builder_new(env, "r.sst", &o, &b), CAIRN_EINVAL);
    cairn_sst_options_init(&o);
    o.codec = (cairn_sst_codec)7;
    assert_int_equal(cairn_sst_builder_new(env, "r.sst", &o, &b), CAIRN_EINVAL);
    cairn_sst_options_init(&o);
    o.codec = CAIRN_SST_CODEC_ZSTD;
    o.zstd_level = 1000;
    assert_int_equal(cairn_sst_builder_new(env, "r.sst", &o, &b), CAIRN_EINVAL);
    assert_int_equal(cairn_env_exists(env, "r.sst"), CAIRN_ENOTFOUND);

    assert_int_equal(cairn_sst_builder_new(env, "r.sst", NULL, &b), 0);
    assert_int_equal(cairn_sst_builder_add(b, "m", 1, 10, 1, CAIRN_SST_PUT,
                                           "v", 1),
                     0);
    /* same (key, version); higher version of the same key; smaller key */
    assert_int_equal(cairn_sst_builder_add(b, "m", 1, 10, 1, CAIRN_SST_PUT,
                                           "v", 1),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_sst_builder_add(b, "m", 1, 11, 1, CAIRN_SST_PUT,
                                           "v", 1),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_sst_builder_add(b, "l", 1, 1, 1, CAIRN_SST_PUT,
                                           "v", 1),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_sst_builder_add(b, "", 0, 1, 1, CAIRN_SST_PUT,
                                           "v", 1),
                     CAIRN_EINVAL);
    /* "m" < "m\0": a longer key with the prefix comes after */
    assert_int_equal(cairn_sst_builder_add(b, "m\0", 2, 99, 1, CAIRN_SST_PUT,
                                           "v", 1),
                     0);
    assert_int_equal(cairn_sst_builder_add(b, "m", 1, 5, 1, CAIRN_SST_PUT,
                                           "v", 1),
                     CAIRN_EINVAL);
    /* bad arguments */
    assert_int_equal(cairn_sst_builder_add(b, "z", 1, 1, 1, CAIRN_SST_DELETE,
                                           "v", 1),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_sst_builder_add(b, "z", 1, 1, 1, (cairn_sst_kind)4,
                                           "v", 1),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_sst_builder_add(b, NULL, 1, 1, 1, CAIRN_SST_PUT,
                                           "v", 1),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_sst_builder_add(b, "z", 1, 1, 1, CAIRN_SST_PUT,
                                           NULL, 1),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_sst_builder_add(b, "z", 1, 1, 1, CAIRN_SST_PUT,
                                           "v", CAIRN_SST_MAX_VALUE + 1),
                     CAIRN_ETOOLARGE);
    /* the builder goes on after refusals */
    assert_int_equal(cairn_sst_builder_add(b, "z", 1, 1, 1, CAIRN_SST_PUT,
                                           "v", 1),
                     0);
    assert_int_equal(cairn_sst_builder_entries(b), 3);
    /* a second builder on the same path: the file exists */
    cairn_sst_builder *b2;
    assert_int_equal(cairn_sst_builder_new(env, "r.sst", NULL, &b2),
                     CAIRN_EEXIST);
    assert_null(b2);
    assert_int_equal(cairn_sst_builder_finish(b, NULL), 0);
    assert_int_equal(cairn_sst_builder_new(env, "r.sst", NULL, &b2),
                     CAIRN_EEXIST);
    cairn_sst_reader *r;
    assert_int_equal(cairn_sst_open(env, "r.sst", 1, NULL, &r, NULL), 0);
    assert_int_equal(cairn_sst_props_get(r)->entries, 3);
    cairn_sst_close(r);
    /* a failed EEXIST did not remove the existing file */
    assert_int_equal(cairn_env_exists(env, "r.sst"), 0);

    /* abandon leaves no file */
    assert_int_equal(cairn_sst_builder_new(env, "a.sst", NULL, &b), 0);
    for (int i = 0; i < 5000; i++) {
        char k[16];
        int kl = sprintf(k, "%08d", i);
        assert_int_equal(cairn_sst_builder_add(b, k, (size_t)kl, 1, 1,
                                               CAIRN_SST_PUT, k, (size_t)kl),
                         0);
    }
    assert_true(cairn_sst_builder_file_size(b) > 0);
    assert_int_equal(cairn_env_exists(env, "a.sst"), 0);
    cairn_sst_builder_abandon(b);
    assert_int_equal(cairn_env_exists(env, "a.sst"), CAIRN_ENOTFOUND);
    cairn_sst_builder_abandon(NULL);

    /* open errors */
    char msg[CAIRN_SST_ERRMSG_LEN];
    assert_int_equal(cairn_sst_open(env, "missing.sst", 1, NULL, &r, msg),
                     CAIRN_ENOTFOUND);
    assert_null(r);
    assert_non_null(strstr(msg, "missing.sst"));
    cairn_env_destroy(env);
}

/* ---------- damage ---------- */

typedef struct region {
    uint64_t start, end; /* [start, end): a block with its trailer, or the
                            footer */
} region;

static uint8_t *read_all(cairn_env *env, const char *path, size_t *len)
{
    cairn_file *f;
    uint64_t size;
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_READ, &f), 0);
    assert_int_equal(cairn_file_size(f, &size), 0);
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    size_t n;
    assert_int_equal(cairn_file_read_at(f, 0, buf, size, &n), 0);
    assert_int_equal(n, size);
    cairn_file_close(f);
    *len = size;
    return buf;
}

static void write_all(cairn_env *env, const char *path, const uint8_t *buf,
                      size_t len)
{
    cairn_file *f;
    assert_int_equal(cairn_env_open(env, path,
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                        CAIRN_OPEN_TRUNC,
                                    &f),
                     0);
    assert_int_equal(cairn_file_write_at(f, 0, buf, len), 0);
    cairn_file_close(f);
}

/* The regions of a good file: data blocks from the reader, meta blocks from
 * the footer as docs/format/sst.md lays it out. */
static size_t file_regions(cairn_env *env, const char *path, const uint8_t *buf,
                           size_t len, region *out)
{
    cairn_sst_reader *r;
    assert_int_equal(cairn_sst_open(env, path, 1, NULL, &r, NULL), 0);
    size_t n = 0;
    for (size_t i = 0; i < cairn_sst_props_get(r)->data_blocks; i++) {
        uint64_t off, size;
        assert_int_equal(cairn_sst_data_block(r, i, &off, &size), 0);
        out[n++] = (region){off, off + size + CAIRN_SST_TRAILER_SIZE};
    }
    cairn_sst_close(r);
    const uint8_t *ft = buf + len - CAIRN_SST_FOOTER_SIZE;
    assert_memory_equal(ft, "CAIRNSST", 8);
    assert_int_equal(cairn_get_u32(ft + 8), 1);
    for (int i = 0; i < 4; i++) {
        uint64_t off = cairn_get_u64(ft + 16 + 16 * i);
        uint64_t size = cairn_get_u64(ft + 24 + 16 * i);
        if (size)
            out[n++] = (region){off, off + size + CAIRN_SST_TRAILER_SIZE};
    }
    out[n++] = (region){len - CAIRN_SST_FOOTER_SIZE, len};
    /* the regions tile the file exactly */
    uint64_t covered = 0;
    for (size_t i = 0; i < n; i++)
        covered += out[i].end - out[i].start;
    assert_int_equal(covered, len);
    return n;
}

static uint64_t region_of(const region *rg, size_t n, uint64_t pos)
{
    for (size_t i = 0; i < n; i++)
        if (pos >= rg[i].start && pos < rg[i].end)
            return rg[i].start;
    fail_msg("byte %" PRIu64 " in no region", pos);
    return 0;
}

static void assert_names(const char *msg, const char *path, uint64_t off)
{
    char want[64];
    snprintf(want, sizeof want, "at offset %" PRIu64 " ", off);
    if (!strstr(msg, path) || !strstr(msg, want))
        fail_msg("message \"%s\" does not name %s %s", msg, path, want);
}

/* Scan the whole damaged file: the entries before the error must equal the
 * reference; returns the scan's final status. */
static int damaged_scan(const cairn_sst_reader *r, const ref_set *s,
                        char *msg)
{
    cairn_sst_iter *it;
    assert_int_equal(cairn_sst_iter_new(r, &it), 0);
    size_t i = 0;
    for (cairn_sst_iter_seek_first(it); cairn_sst_iter_valid(it);
         cairn_sst_iter_next(it), i++) {
        cairn_sst_entry g;
        cairn_sst_iter_entry(it, &g);
        assert_true(i < s->n);
        assert_true(same_entry(&g, &s->e[i]));
    }
    int rc = cairn_sst_iter_status(it);
    if (rc)
        snprintf(msg, CAIRN_SST_ERRMSG_LEN, "%s", cairn_sst_iter_errmsg(it));
    else
        assert_int_equal(i, s->n);
    cairn_sst_iter_free(it);
    return rc;
}

static void corrupt_every_byte(cairn_sst_codec codec, bool every_byte)
{
    cairn_env *env = cairn_env_mem_new();
    gen_opts g = {.nkeys = 28, .max_versions = 2, .monotone_ts = true,
                  .short_keys = true};
    ref_set s = gen_entries(500 + codec, &g);
    cairn_sst_options o;
    opts_of(&o, codec, 256);
    o.restart_interval = 4;
    build(env, "good.sst", &o, &s, NULL);
    size_t len;
    uint8_t *good = read_all(env, "good.sst", &len);
    region rg[512];
    size_t nrg = file_regions(env, "good.sst", good, len, rg);
    assert_true(nrg >= 8);
    uint8_t *bad = malloc(len);
    assert_non_null(bad);
    const char *path = "bad.sst";
    char msg[CAIRN_SST_ERRMSG_LEN];
    size_t at_open = 0, at_read = 0;
    for (uint64_t pos = 0; pos < len; pos++) {
        uint64_t start = region_of(rg, nrg, pos);
        if (!every_byte) { /* the first, a middle and the last byte of each */
            bool pick = false;
            for (size_t i = 0; i < nrg; i++)
                pick |= pos == rg[i].start || pos == rg[i].end - 1 ||
                        pos == (rg[i].start + rg[i].end) / 2;
            if (!pick)
                continue;
        }
        memcpy(bad, good, len);
        bad[pos] ^= (uint8_t)(1u << (pos % 8));
        write_all(env, path, bad, len);
        cairn_sst_reader *r;
        msg[0] = '\0';
        int rc = cairn_sst_open(env, path, 9, NULL, &r, msg);
        if (rc) {
            assert_int_equal(rc, CAIRN_ECORRUPT);
            assert_names(msg, path, start);
            at_open++;
        } else {
            rc = damaged_scan(r, &s, msg);
            assert_int_equal(rc, CAIRN_ECORRUPT);
            assert_names(msg, path, start);
            /* gets: right answer or the error, never a wrong entry */
            if (!every_byte || pos % 11 == 0) {
                size_t errors = 0;
                for (size_t i = 0; i < s.n; i++) {
                    const ref_ent *e = &s.e[i];
                    cairn_sst_entry ge;
                    cairn_sst_pin pin;
                    rc = cairn_sst_get(r, e->key, e->klen, e->version, e->ts,
                                       &ge, &pin, msg);
                    if (rc) {
                        assert_int_equal(rc, CAIRN_ECORRUPT);
                        assert_names(msg, path, start);
                        errors++;
                    } else {
                        assert_true(same_entry(&ge, e));
                    }
                    cairn_sst_pin_release(&pin);
                }
                assert_true(errors > 0);
            }
            cairn_sst_close(r);
            at_read++;
        }
        rc = cairn_sst_verify(env, path, NULL, NULL, msg);
        assert_int_equal(rc, CAIRN_ECORRUPT);
        assert_names(msg, path, start);
    }
    assert_true(at_open > 0);
    assert_true(at_read > 0);

    /* truncations: every length fails at open */
    for (size_t l = 0; l < len; l++) {
        write_all(env, path, good, l);
        cairn_sst_reader *r;
        assert_int_equal(cairn_sst_open(env, path, 9, NULL, &r, msg),
                         CAIRN_ECORRUPT);
        assert_null(r);
        assert_non_null(strstr(msg, path));
    }
    free(bad);
    free(good);
    ref_free(&s);
    cairn_env_destroy(env);
}

static void test_corrupt_none(void **state)
{
    (void)state;
    corrupt_every_byte(CAIRN_SST_CODEC_NONE, true);
}

static void test_corrupt_lz4(void **state)
{
    (void)state;
    corrupt_every_byte(CAIRN_SST_CODEC_LZ4, true);
}

static void test_corrupt_zstd(void **state)
{
    (void)state;
    corrupt_every_byte(CAIRN_SST_CODEC_ZSTD, false);
}

/* Damage with a recomputed checksum (what a writer bug or a foreign file
 * looks like): every byte of every block of a raw file is flipped and its
 * block's checksum fixed. Nothing may crash or read out of bounds (ASan);
 * every call returns 0, CAIRN_ENOTFOUND or CAIRN_ECORRUPT. A flipped value
 * or timestamp byte makes a valid file, but every flip of the index and
 * metaindex blocks must be flagged (by open or verify). */
static void test_rechecksummed_damage(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    gen_opts g = {.nkeys = 20, .max_versions = 2, .monotone_ts = true,
                  .short_keys = true};
    ref_set s = gen_entries(4711, &g);
    cairn_sst_options o;
    opts_of(&o, CAIRN_SST_CODEC_NONE, 200);
    o.restart_interval = 3;
    build(env, "good.sst", &o, &s, NULL);
    size_t len;
    uint8_t *good = read_all(env, "good.sst", &len);
    region rg[256];
    size_t nrg = file_regions(env, "good.sst", good, len, rg);
    assert_int_equal(cairn_get_u64(good + len - CAIRN_SST_FOOTER_SIZE + 32),
                     rg[nrg - 4].start); /* the filter is there */
    uint8_t *bad = malloc(len);
    assert_non_null(bad);
    size_t tried = 0, flagged = 0, open_failed = 0, meta_tried = 0,
           meta_flagged = 0;
    char msg[CAIRN_SST_ERRMSG_LEN];
    /* regions: data blocks, metaindex, filter, index, properties, footer */
    size_t meta_idx = nrg - 5, index_idx = nrg - 3;
    for (size_t k = 0; k + 1 < nrg; k++) { /* every block, not the footer */
        bool must = k == meta_idx || k == index_idx;
        uint64_t body_end = rg[k].end - CAIRN_SST_TRAILER_SIZE;
        for (uint64_t pos = rg[k].start; pos < body_end; pos++) {
            memcpy(bad, good, len);
            bad[pos] ^= (uint8_t)(1u << (pos % 8));
            cairn_put_u64(bad + body_end + 1,
                          XXH3_64bits(bad + rg[k].start,
                                      body_end - rg[k].start + 1));
            write_all(env, "bad.sst", bad, len);
            tried++;
            meta_tried += must;
            cairn_sst_reader *r;
            int rc = cairn_sst_open(env, "bad.sst", 1, NULL, &r, msg);
            if (rc) {
                assert_int_equal(rc, CAIRN_ECORRUPT);
                open_failed++;
                flagged++;
                meta_flagged += must;
                continue;
            }
            cairn_sst_iter *it;
            assert_int_equal(cairn_sst_iter_new(r, &it), 0);
            size_t n = 0;
            for (cairn_sst_iter_seek_first(it);
                 cairn_sst_iter_valid(it) && n < 10 * s.n;
                 cairn_sst_iter_next(it))
                n++;
            rc = cairn_sst_iter_status(it);
            assert_true(rc == 0 || rc == CAIRN_ECORRUPT);
            for (cairn_sst_iter_seek_last(it);
                 cairn_sst_iter_valid(it) && n > 0; cairn_sst_iter_prev(it))
                n--;
            rc = cairn_sst_iter_status(it);
            assert_true(rc == 0 || rc == CAIRN_ECORRUPT);
            for (size_t i = 0; i < s.n; i += 3) {
                cairn_sst_iter_seek(it, s.e[i].key, s.e[i].klen,
                                    s.e[i].version);
                cairn_sst_iter_seek_for_prev(it, s.e[i].key, s.e[i].klen,
                                             s.e[i].version);
                if (cairn_sst_iter_valid(it))
                    cairn_sst_iter_prev(it);
                cairn_sst_entry e;
                cairn_sst_pin pin;
                rc = cairn_sst_get(r, s.e[i].key, s.e[i].klen, UINT64_MAX,
                                   UINT64_MAX, &e, &pin, msg);
                assert_true(rc == 0 || rc == CAIRN_ENOTFOUND ||
                            rc == CAIRN_ECORRUPT);
                cairn_sst_pin_release(&pin);
            }
            cairn_sst_iter_free(it);
            cairn_sst_close(r);
            rc = cairn_sst_verify(env, "bad.sst", NULL, NULL, msg);
            assert_true(rc == 0 || rc == CAIRN_ECORRUPT);
            flagged += rc == CAIRN_ECORRUPT;
            meta_flagged += must && rc == CAIRN_ECORRUPT;
        }
    }
    fprintf(stderr, "re-checksummed damage: %zu files, %zu flagged (%zu at "
                    "open)\n",
            tried, flagged, open_failed);
    assert_true(open_failed > 0);
    assert_true(flagged > tried / 4);
    assert_true(meta_tried > 50);
    assert_int_equal(meta_flagged, meta_tried);
    free(bad);
    free(good);
    ref_free(&s);
    cairn_env_destroy(env);
}

static void test_newer_version(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    gen_opts g = {.nkeys = 10, .max_versions = 1, .monotone_ts = true};
    ref_set s = gen_entries(5, &g);
    build(env, "v.sst", NULL, &s, NULL);
    size_t len;
    uint8_t *buf = read_all(env, "v.sst", &len);
    uint8_t *ft = buf + len - CAIRN_SST_FOOTER_SIZE;
    char msg[CAIRN_SST_ERRMSG_LEN];
    cairn_sst_reader *r;
    /* version 2 with a valid checksum: a newer writer */
    cairn_put_u32(ft + 8, 2);
    cairn_put_u64(ft + 80, XXH3_64bits(ft, 80));
    write_all(env, "v2.sst", buf, len);
    assert_int_equal(cairn_sst_open(env, "v2.sst", 1, NULL, &r, msg),
                     CAIRN_EVERSION);
    assert_non_null(strstr(msg, "v2.sst"));
    assert_int_equal(cairn_sst_verify(env, "v2.sst", NULL, NULL, msg),
                     CAIRN_EVERSION);
    /* an unknown flag */
    cairn_put_u32(ft + 8, 1);
    cairn_put_u32(ft + 12, 4);
    cairn_put_u64(ft + 80, XXH3_64bits(ft, 80));
    write_all(env, "v3.sst", buf, len);
    assert_int_equal(cairn_sst_open(env, "v3.sst", 1, NULL, &r, msg),
                     CAIRN_EVERSION);
    /* version 0 is no version */
    cairn_put_u32(ft + 8, 0);
    cairn_put_u32(ft + 12, 0);
    cairn_put_u64(ft + 80, XXH3_64bits(ft, 80));
    write_all(env, "v0.sst", buf, len);
    assert_int_equal(cairn_sst_open(env, "v0.sst", 1, NULL, &r, msg),
                     CAIRN_ECORRUPT);
    /* back to 1: opens */
    cairn_put_u32(ft + 8, 1);
    cairn_put_u64(ft + 80, XXH3_64bits(ft, 80));
    write_all(env, "v1.sst", buf, len);
    assert_int_equal(cairn_sst_open(env, "v1.sst", 1, NULL, &r, msg), 0);
    cairn_sst_close(r);
    free(buf);
    ref_free(&s);
    cairn_env_destroy(env);
}

/* ---------- I/O failures ---------- */

static int build_on(cairn_env *env, const char *path, const ref_set *s)
{
    cairn_sst_options o;
    opts_of(&o, CAIRN_SST_CODEC_LZ4, 1024);
    o.write_buffer_size = 64 << 10;
    cairn_sst_builder *b;
    int rc = cairn_sst_builder_new(env, path, &o, &b);
    if (rc)
        return rc;
    for (size_t i = 0; i < s->n; i++) {
        const ref_ent *e = &s->e[i];
        rc = cairn_sst_builder_add(b, e->key, e->klen, e->version, e->ts,
                                   (cairn_sst_kind)e->kind, e->val, e->vlen);
        if (rc) {
            cairn_sst_builder_abandon(b);
            return rc;
        }
    }
    return cairn_sst_builder_finish(b, NULL);
}

static void test_io_faults(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    gen_opts g = {.nkeys = 1500, .max_versions = 3, .big_per_mille = 20,
                  .monotone_ts = true};
    ref_set s = gen_entries(77, &g);
    cairn_fault_rule rule = {
        .op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE) | CAIRN_OPMASK(CAIRN_OP_SYNC) |
                   CAIRN_OPMASK(CAIRN_OP_OPEN),
        .error = CAIRN_EIO};
    cairn_env_fault_set(env, &rule);
    assert_int_equal(build_on(env, "f0.sst", &s), 0);
    uint64_t calls = cairn_env_fault_calls(env);
    assert_true(calls >= 4); /* open, several writes, one sync */
    assert_int_equal(cairn_sst_verify(env, "f0.sst", NULL, NULL, NULL), 0);
    for (uint64_t k = 1; k <= calls; k++) {
        char path[32];
        sprintf(path, "f%" PRIu64 ".sst", k);
        rule.fail_at = k;
        rule.short_write = k % 2 == 0;
        rule.seed = k;
        rule.error = k % 3 == 0 ? CAIRN_ENOSPC : CAIRN_EIO;
        cairn_env_fault_set(env, &rule);
        int rc = build_on(env, path, &s);
        assert_int_equal(cairn_env_fault_injected(env), 1);
        assert_int_equal(rc, rule.error);
        cairn_env_fault_reset(env);
        assert_int_equal(cairn_env_exists(env, path), CAIRN_ENOTFOUND);
    }
    ref_free(&s);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

/* ---------- sizes and compression ---------- */

static void test_sizes_and_compression(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem); /* counts the writes */
    cairn_sst_codec codecs[] = {CAIRN_SST_CODEC_NONE, CAIRN_SST_CODEC_LZ4,
                                CAIRN_SST_CODEC_ZSTD};
    uint64_t stored[3] = {0};
    for (int c = 0; c < 3; c++) {
        char path[32];
        sprintf(path, "c%d.sst", c);
        cairn_fault_rule rule = {.op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE)};
        cairn_env_fault_set(env, &rule);
        cairn_sst_options o;
        opts_of(&o, codecs[c], 4096);
        cairn_sst_builder *b;
        assert_int_equal(cairn_sst_builder_new(env, path, &o, &b), 0);
        const char *words[] = {"alpha ", "beta ", "gamma ", "delta "};
        char val[300];
        size_t n = 8000;
        uint64_t prev = 0;
        for (size_t i = 0; i < n; i++) {
            char k[32];
            int kl = sprintf(k, "metric.cpu.host%06zu", i);
            size_t vl = 0;
            while (vl + 8 < sizeof val)
                vl += (size_t)sprintf(val + vl, "%s", words[(i + vl) % 4]);
            assert_int_equal(cairn_sst_builder_add(b, k, (size_t)kl, i + 1,
                                                   i + 1, CAIRN_SST_PUT, val,
                                                   vl),
                             0);
            uint64_t fs = cairn_sst_builder_file_size(b);
            assert_true(fs >= prev);
            prev = fs;
        }
        cairn_sst_props p;
        assert_int_equal(cairn_sst_builder_finish(b, &p), 0);
        uint64_t writes = cairn_env_fault_calls(env);
        cairn_env_fault_reset(env);
        /* the size the builder reported trails the file by less than the
         * meta blocks, the last data block and the footer */
        assert_true(prev <= p.file_size);
        assert_true(p.file_size - prev < 64 * 1024 + 4096 + p.index_size +
                                              p.filter_size + 1024);
        cairn_file *f;
        uint64_t real;
        assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_READ, &f), 0);
        assert_int_equal(cairn_file_size(f, &real), 0);
        cairn_file_close(f);
        assert_int_equal(real, p.file_size);
        /* batched writes: one per 256 KiB or so, not one per entry */
        assert_true(writes <= p.file_size / (64 * 1024) + 2);
        stored[c] = p.stored_data_size;
        if (codecs[c] == CAIRN_SST_CODEC_NONE)
            assert_true(p.stored_data_size > p.raw_data_size);
        else
            assert_true(p.stored_data_size * 3 < p.raw_data_size);
        fprintf(stderr, "codec %d: raw %" PRIu64 " stored %" PRIu64
                        " file %" PRIu64 " (%" PRIu64 " writes)\n",
                c, p.raw_data_size, p.stored_data_size, p.file_size, writes);
        cairn_sst_props_clear(&p);
        assert_int_equal(cairn_sst_verify(env, path, NULL, NULL, NULL), 0);
    }
    assert_true(stored[1] < stored[0] && stored[2] < stored[0]);

    /* incompressible values: blocks are stored raw even with LZ4 */
    cairn_sst_options o;
    opts_of(&o, CAIRN_SST_CODEC_LZ4, 4096);
    cairn_sst_builder *b;
    assert_int_equal(cairn_sst_builder_new(env, "rnd.sst", &o, &b), 0);
    uint8_t v[500];
    for (size_t i = 0; i < 500; i++) {
        char k[16];
        int kl = sprintf(k, "%06zu", i);
        tu_fill(v, sizeof v, i);
        assert_int_equal(cairn_sst_builder_add(b, k, (size_t)kl, 1, 1,
                                               CAIRN_SST_PUT, v, sizeof v),
                         0);
    }
    cairn_sst_props p;
    assert_int_equal(cairn_sst_builder_finish(b, &p), 0);
    assert_int_equal(p.stored_data_size,
                     p.raw_data_size + p.data_blocks * CAIRN_SST_TRAILER_SIZE);
    cairn_sst_props_clear(&p);
    assert_int_equal(cairn_sst_verify(env, "rnd.sst", NULL, NULL, NULL), 0);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

/* ---------- large values ---------- */

static void test_large_values(void **state)
{
    (void)state;
    cairn_sst_codec codecs[] = {CAIRN_SST_CODEC_LZ4, CAIRN_SST_CODEC_ZSTD};
    size_t big = (size_t)16 << 20;
    uint8_t *v = malloc(big);
    assert_non_null(v);
    /* half random, half zeros: compresses, but not to nothing */
    tu_fill(v, big / 2, 4242);
    memset(v + big / 2, 0, big / 2);
    for (int c = 0; c < 2; c++) {
        cairn_env *env = cairn_env_mem_new();
        cairn_sst_options o;
        opts_of(&o, codecs[c], 4096);
        o.zstd_level = 1;
        cairn_sst_builder *b;
        assert_int_equal(cairn_sst_builder_new(env, "big.sst", &o, &b), 0);
        assert_int_equal(cairn_sst_builder_add(b, "a", 1, 5, 5, CAIRN_SST_PUT,
                                               "small", 5),
                         0);
        assert_int_equal(cairn_sst_builder_add(b, "big", 3, 7, 7,
                                               CAIRN_SST_PUT, v, big),
                         0);
        assert_int_equal(cairn_sst_builder_add(b, "big", 3, 6, 6,
                                               CAIRN_SST_PUT, v, big - 1),
                         0);
        assert_int_equal(cairn_sst_builder_add(b, "c", 1, 1, 1, CAIRN_SST_PUT,
                                               "z", 1),
                         0);
        cairn_sst_props p;
        assert_int_equal(cairn_sst_builder_finish(b, &p), 0);
        assert_true(p.stored_data_size < p.raw_data_size);
        assert_true(p.raw_data_size > 2 * big);
        cairn_sst_props_clear(&p);
        cairn_sst_reader *r;
        assert_int_equal(cairn_sst_open(env, "big.sst", 1, NULL, &r, NULL), 0);
        cairn_sst_entry e;
        cairn_sst_pin pin;
        assert_int_equal(cairn_sst_get(r, "big", 3, 100, 100, &e, &pin, NULL),
                         0);
        assert_int_equal(e.version, 7);
        assert_int_equal(e.vlen, big);
        assert_memory_equal(e.value, v, big);
        cairn_sst_pin_release(&pin);
        assert_int_equal(cairn_sst_get(r, "big", 3, 6, 100, &e, &pin, NULL),
                         0);
        assert_int_equal(e.vlen, big - 1);
        assert_memory_equal(e.value, v, big - 1);
        cairn_sst_pin_release(&pin);
        cairn_sst_iter *it;
        assert_int_equal(cairn_sst_iter_new(r, &it), 0);
        size_t n = 0;
        for (cairn_sst_iter_seek_last(it); cairn_sst_iter_valid(it);
             cairn_sst_iter_prev(it))
            n++;
        assert_int_equal(n, 4);
        cairn_sst_iter_free(it);
        cairn_sst_close(r);
        assert_int_equal(cairn_sst_verify(env, "big.sst", NULL, NULL, NULL), 0);
        cairn_env_destroy(env);
    }
    free(v);
}

/* ---------- block cache ---------- */

static void test_block_cache(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    gen_opts g = {.nkeys = 800, .max_versions = 3, .monotone_ts = true};
    ref_set s = gen_entries(900, &g);
    cairn_sst_options o;
    opts_of(&o, CAIRN_SST_CODEC_LZ4, 1024);
    build(env, "c.sst", &o, &s, NULL);
    cairn_block_cache *c = cairn_block_cache_new(8 << 20, 4);
    assert_non_null(c);
    cairn_sst_reader *r;
    assert_int_equal(cairn_sst_open(env, "c.sst", 42, c, &r, NULL), 0);
    uint64_t nb = cairn_sst_props_get(r)->data_blocks;
    assert_true(nb > 10);

    cairn_block_cache_stats st0, st1, st2;
    cairn_block_cache_get_stats(c, &st0);
    scan_both_ways(r, &s); /* first pass: the forward scan misses each block */
    cairn_block_cache_get_stats(c, &st1);
    assert_int_equal(st1.misses - st0.misses, nb);
    assert_int_equal(st1.inserts - st0.inserts, nb);
    assert_int_equal(st1.entries, nb);
    scan_both_ways(r, &s); /* second pass: all hits */
    cairn_block_cache_get_stats(c, &st2);
    assert_int_equal(st2.misses, st1.misses);
    assert_int_equal(st2.hits - st1.hits, 2 * nb);
    fprintf(stderr, "block cache: %" PRIu64 " blocks, second pass %" PRIu64
                    " hits, 0 misses\n",
            nb, st2.hits - st1.hits);

    /* a pinned block stays valid after its file's entries are erased */
    const ref_ent *e0 = &s.e[s.n / 2];
    cairn_sst_entry e;
    cairn_sst_pin pin;
    assert_int_equal(cairn_sst_get(r, e0->key, e0->klen, e0->version, e0->ts,
                                   &e, &pin, NULL),
                     0);
    assert_non_null(pin.handle);
    assert_null(pin.block);
    cairn_block_cache_erase_file(c, 42);
    cairn_block_cache_get_stats(c, &st2);
    assert_int_equal(st2.entries, 0);
    assert_true(st2.usage > 0); /* the pinned block */
    assert_true(same_entry(&e, e0));
    cairn_sst_pin_release(&pin);
    cairn_block_cache_get_stats(c, &st2);
    assert_int_equal(st2.usage, 0);
    random_gets(r, &s, 3, 500);
    random_walk(r, &s, 4, 500);
    cairn_sst_close(r);
    cairn_block_cache_free(c);
    ref_free(&s);
    cairn_env_destroy(env);
}

/* ---------- concurrency ---------- */

typedef struct conc_arg {
    const cairn_sst_reader *r;
    const ref_set *s;
    uint64_t seed;
    atomic_uint_fast64_t *bad;
} conc_arg;

static void *conc_thread(void *p)
{
    conc_arg *a = p;
    uint64_t rng = a->seed;
    cairn_sst_iter *it;
    if (cairn_sst_iter_new(a->r, &it)) {
        atomic_fetch_add(a->bad, 1);
        return NULL;
    }
    uint8_t kb[4096];
    unsigned ops = 1500;
    for (unsigned q = 0; q < ops; q++) {
        const uint8_t *k;
        size_t kl;
        uint64_t v;
        pick_target(&rng, a->s, kb, &k, &kl, &v);
        if (q % 2) {
            long want = ref_get(a->s, k, kl, v, UINT64_MAX);
            cairn_sst_entry g;
            cairn_sst_pin pin;
            int rc = cairn_sst_get(a->r, k, kl, v, UINT64_MAX, &g, &pin, NULL);
            if (want < 0 ? rc != CAIRN_ENOTFOUND
                         : rc != 0 || !same_entry(&g, &a->s->e[want]))
                atomic_fetch_add(a->bad, 1);
            cairn_sst_pin_release(&pin);
        } else {
            size_t pos = ref_lower(a->s, k, kl, v);
            cairn_sst_iter_seek(it, k, kl, v);
            for (int step = 0; step < 8; step++, pos++) {
                cairn_sst_entry g;
                bool valid = cairn_sst_iter_valid(it);
                if (valid != (pos < a->s->n)) {
                    atomic_fetch_add(a->bad, 1);
                    break;
                }
                if (!valid)
                    break;
                cairn_sst_iter_entry(it, &g);
                if (!same_entry(&g, &a->s->e[pos]))
                    atomic_fetch_add(a->bad, 1);
                cairn_sst_iter_next(it);
            }
            if (cairn_sst_iter_status(it))
                atomic_fetch_add(a->bad, 1);
        }
    }
    cairn_sst_iter_free(it);
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    gen_opts g = {.nkeys = 1000, .max_versions = 4, .big_per_mille = 5,
                  .monotone_ts = true};
    ref_set s = gen_entries(1234, &g);
    cairn_sst_options o;
    opts_of(&o, CAIRN_SST_CODEC_ZSTD, 1024);
    build(env, "t.sst", &o, &s, NULL);
    for (int with_cache = 0; with_cache < 2; with_cache++) {
        cairn_block_cache *c =
            with_cache ? cairn_block_cache_new(64 << 10, 4) : NULL;
        cairn_sst_reader *r;
        assert_int_equal(cairn_sst_open(env, "t.sst", 5, c, &r, NULL), 0);
        atomic_uint_fast64_t bad = 0;
        pthread_t th[4];
        conc_arg args[4];
        for (int i = 0; i < 4; i++) {
            args[i] = (conc_arg){r, &s, 1000 + (uint64_t)i, &bad};
            assert_int_equal(pthread_create(&th[i], NULL, conc_thread,
                                            &args[i]),
                             0);
        }
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&bad), 0);
        cairn_sst_close(r);
        if (c) {
            cairn_block_cache_stats st;
            cairn_block_cache_get_stats(c, &st);
            assert_true(st.hits > 0 && st.misses > 0);
            cairn_block_cache_free(c);
        }
    }
    ref_free(&s);
    cairn_env_destroy(env);
}

/* ---------- verify and dump ---------- */

typedef struct prog {
    uint64_t calls, last, total;
    bool monotone;
} prog;

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
    prog *p = arg;
    p->monotone &= done > p->last && done <= total;
    p->calls++;
    p->last = done;
    p->total = total;
}

static void test_verify_and_dump(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    gen_opts g = {.nkeys = 300, .max_versions = 3, .monotone_ts = true};
    ref_set s = gen_entries(31337, &g);
    cairn_sst_options o;
    opts_of(&o, CAIRN_SST_CODEC_LZ4, 512);
    cairn_sst_props bp;
    build(env, "d.sst", &o, &s, &bp);
    prog pr = {.monotone = true};
    assert_int_equal(cairn_sst_verify(env, "d.sst", on_progress, &pr, NULL), 0);
    assert_int_equal(pr.calls, bp.data_blocks);
    assert_true(pr.monotone);
    assert_int_equal(pr.last, pr.total);
    assert_int_equal(pr.total, bp.stored_data_size);
    cairn_sst_props_clear(&bp);

    cairn_sst_reader *r;
    assert_int_equal(cairn_sst_open(env, "d.sst", 1, NULL, &r, NULL), 0);
    char *text = NULL;
    size_t tlen = 0;
    FILE *out = open_memstream(&text, &tlen);
    assert_non_null(out);
    assert_int_equal(cairn_sst_dump(r, out, 10, NULL), 0);
    fclose(out);
    assert_non_null(strstr(text, "entries: "));
    assert_non_null(strstr(text, "codec: lz4"));
    assert_non_null(strstr(text, "--- entries\n"));
    /* the first entry is the empty key; exactly 10 entry lines */
    const char *ents = strstr(text, "--- entries\n") + 12;
    assert_int_equal(strncmp(ents, "\"\" @", 4), 0);
    size_t lines = 0;
    for (const char *q = ents; *q; q++)
        lines += *q == '\n';
    assert_int_equal(lines, 10);
    free(text);
    /* no limit: every entry, deletes shown as DEL */
    text = NULL;
    out = open_memstream(&text, &tlen);
    assert_int_equal(cairn_sst_dump(r, out, 0, NULL), 0);
    fclose(out);
    ents = strstr(text, "--- entries\n") + 12;
    lines = 0;
    for (const char *q = ents; *q; q++)
        lines += *q == '\n';
    assert_int_equal(lines, s.n);
    size_t dels = 0;
    for (size_t i = 0; i < s.n; i++)
        dels += s.e[i].kind == 2;
    assert_true(dels > 0);
    assert_non_null(strstr(text, " DEL\n"));
    free(text);
    cairn_sst_close(r);
    ref_free(&s);
    cairn_env_destroy(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_none),
        cmocka_unit_test(test_roundtrip_lz4),
        cmocka_unit_test(test_roundtrip_zstd),
        cmocka_unit_test(test_roundtrip_small_cache),
        cmocka_unit_test(test_write_fills_cache),
        cmocka_unit_test(test_restart_intervals),
        cmocka_unit_test(test_bloom_direct),
        cmocka_unit_test(test_bloom_in_file),
        cmocka_unit_test(test_index_search),
        cmocka_unit_test(test_props),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_corrupt_none),
        cmocka_unit_test(test_corrupt_lz4),
        cmocka_unit_test(test_corrupt_zstd),
        cmocka_unit_test(test_rechecksummed_damage),
        cmocka_unit_test(test_newer_version),
        cmocka_unit_test(test_io_faults),
        cmocka_unit_test(test_sizes_and_compression),
        cmocka_unit_test(test_large_values),
        cmocka_unit_test(test_block_cache),
        cmocka_unit_test(test_concurrent_readers),
        cmocka_unit_test(test_verify_and_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
