/*
 * test_row_cache.c — the row cache (src/cache/row_cache.c) on its own: a
 * sharded byte-bounded CLOCK cache of key -> value or absence at a
 * version, with per-entry expiry and invalidation epochs.
 *
 *  - Single-threaded cases: round trip (values, empty values and keys,
 *    absent entries, copies owned by the caller); the version and time
 *    bounds of a lookup; exact counters and charges; CLOCK eviction
 *    order in one shard; the byte budget (usage <= capacity after every
 *    insert, entries larger than a shard's share not stored and dropping
 *    the key's older entry); replacement keeps the newer version;
 *    invalidation and conditional inserts (a moved epoch refuses, another
 *    slot's does not);
 *    set_capacity shrink / zero / grow; TTL expiry under an injected clock;
 *    what the cache's charges leave out of real memory (malloc's own count,
 *    plain builds only).
 *  - Threads: 6 threads over 64 keys. Two writers per key space follow the
 *    engine's protocol with a model "tree" (newest[k] applied, pub[k]
 *    published): apply, invalidate, publish. Readers look up at pub[k] and
 *    must never get a version older than the pub[k] they read before the
 *    lookup; on a miss they fill as the engine does (epoch, then the
 *    published and newest versions, insert only if newest <= published,
 *    conditional on the epoch). Every value's bytes derive from (key,
 *    version) and are checked. One thread shrinks and grows the capacity
 *    meanwhile. CAIRN_RC_STRESS_OPS sets operations per thread (default
 *    200000, 50000 under TSan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cache/row_cache.h"
#include "cairn.h"
#include "test_util.h"

#if defined(__SANITIZE_THREAD__)
#define STRESS_OPS_DEFAULT 50000
#else
#define STRESS_OPS_DEFAULT 200000
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static uint64_t H(const char *k)
{
    return cairn_row_cache_hash(k, strlen(k));
}

static int put(cairn_row_cache *c, const char *k, const char *v, uint64_t ver)
{
    return cairn_row_cache_insert(c, H(k), k, strlen(k), v, v ? strlen(v) : 0,
                                  v == NULL, ver, ver * 10, 0, NULL);
}

/* 1 and the value's bytes in buf (or "<absent>"), 0 on a miss. */
static int get(cairn_row_cache *c, const char *k, uint64_t maxv, char *buf,
               size_t cap)
{
    cairn_row_cache_value v;
    int r = cairn_row_cache_lookup(c, H(k), k, strlen(k), maxv, UINT64_MAX,
                                   &v, NULL);
    if (r != 1)
        return r;
    if (v.deleted) {
        assert_null(v.val);
        snprintf(buf, cap, "<absent>");
    } else {
        assert_non_null(v.val);
        assert_true(v.vlen < cap);
        memcpy(buf, v.val, v.vlen);
        buf[v.vlen] = '\0';
        free(v.val);
    }
    return 1;
}

static bool has(cairn_row_cache *c, const char *k)
{
    char b[256];
    return get(c, k, UINT64_MAX, b, sizeof b) == 1;
}

/* A supersede by a state newer than any (what a commit's erase was): the
 * key's epoch moves and every entry of it goes. */
static void invalidate(cairn_row_cache *c, uint64_t h, const char *k,
                       size_t klen)
{
    assert_int_equal(cairn_row_cache_supersede(c, h, k, klen, NULL, 0, true,
                                               UINT64_MAX, 0, false),
                     0);
}

static cairn_row_cache_stats stats(cairn_row_cache *c)
{
    cairn_row_cache_stats s;
    cairn_row_cache_get_stats(c, &s);
    return s;
}

static size_t charge_of(const char *k, const char *v)
{
    return cairn_row_cache_charge(strlen(k), v ? strlen(v) : 0);
}

/* ---------- single-threaded ---------- */

static void test_roundtrip(void **state)
{
    (void)state;
    cairn_row_cache *c = cairn_row_cache_new(1 << 20, 4);
    assert_non_null(c);
    assert_true(cairn_row_cache_enabled(c));
    char b[256];
    assert_int_equal(get(c, "a", UINT64_MAX, b, sizeof b), 0);
    assert_int_equal(put(c, "a", "alpha", 5), 1);
    assert_int_equal(put(c, "b", "", 6), 1);
    assert_int_equal(put(c, "gone", NULL, 7), 1);
    assert_int_equal(get(c, "a", UINT64_MAX, b, sizeof b), 1);
    assert_string_equal(b, "alpha");
    assert_int_equal(get(c, "b", UINT64_MAX, b, sizeof b), 1);
    assert_string_equal(b, "");
    assert_int_equal(get(c, "gone", UINT64_MAX, b, sizeof b), 1);
    assert_string_equal(b, "<absent>");

    /* Version, time and the empty key. */
    cairn_row_cache_value v;
    assert_int_equal(cairn_row_cache_insert(c, cairn_row_cache_hash(NULL, 0),
                                            NULL, 0, "e", 1, false, 9, 90, 0,
                                            NULL),
                     1);
    assert_int_equal(cairn_row_cache_lookup(c, cairn_row_cache_hash(NULL, 0),
                                            NULL, 0, 9, 90, &v, NULL),
                     1);
    assert_int_equal(v.version, 9);
    assert_int_equal(v.ts_us, 90);
    assert_int_equal(v.vlen, 1);
    assert_memory_equal(v.val, "e", 1);
    free(v.val);

    /* Bad arguments are refused, not crashed on. */
    assert_int_equal(cairn_row_cache_insert(c, 1, NULL, 3, "x", 1, false, 1, 1,
                                            0, NULL),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_row_cache_insert(c, 1, "k", 1, NULL, 3, false, 1, 1,
                                            0, NULL),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_row_cache_insert(NULL, 1, "k", 1, "v", 1, false, 1,
                                            1, 0, NULL),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_row_cache_lookup(NULL, 1, "k", 1, 1, 1, &v, NULL),
                     0);
    assert_int_equal(cairn_row_cache_lookup(c, 1, NULL, 3, 1, 1, &v, NULL), 0);
    assert_int_equal(cairn_row_cache_supersede(NULL, 1, "k", 1, NULL, 0, true,
                                               1, 0, false),
                     CAIRN_EINVAL);
    cairn_row_cache_set_capacity(NULL, 5);
    assert_false(cairn_row_cache_enabled(NULL));
    cairn_row_cache_free(NULL);
    cairn_row_cache_free(c);
}

static void test_bounds(void **state)
{
    (void)state;
    cairn_row_cache *c = cairn_row_cache_new(1 << 20, 1);
    char b[64];
    assert_int_equal(put(c, "k", "v10", 10), 1); /* ts 100 */
    assert_int_equal(get(c, "k", 9, b, sizeof b), 0);
    assert_int_equal(get(c, "k", 10, b, sizeof b), 1);
    assert_int_equal(get(c, "k", 11, b, sizeof b), 1);
    cairn_row_cache_value v;
    assert_int_equal(
        cairn_row_cache_lookup(c, H("k"), "k", 1, 50, 99, &v, NULL), 0);
    assert_int_equal(
        cairn_row_cache_lookup(c, H("k"), "k", 1, 50, 100, &v, NULL), 1);
    free(v.val);
    /* A too-new entry is a miss but stays. */
    cairn_row_cache_stats s = stats(c);
    assert_int_equal(s.hits, 3);
    assert_int_equal(s.misses, 2);
    assert_int_equal(s.entries, 1);
    cairn_row_cache_free(c);
}

static void test_counters(void **state)
{
    (void)state;
    cairn_row_cache *c = cairn_row_cache_new(1 << 20, 8);
    size_t want = 0;
    char k[32], val[128];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "key%d", i);
        snprintf(val, sizeof val, "%0*d", i % 50, i);
        assert_int_equal(put(c, k, val, 1), 1);
        want += charge_of(k, val);
    }
    cairn_row_cache_stats s = stats(c);
    assert_int_equal(s.entries, 100);
    assert_int_equal(s.inserts, 100);
    assert_int_equal(s.usage, want);
    assert_int_equal(s.capacity, 1 << 20);
    assert_int_equal(s.evictions, 0);
    for (int i = 0; i < 150; i++) {
        snprintf(k, sizeof k, "key%d", i);
        assert_int_equal(has(c, k), i < 100);
    }
    s = stats(c);
    assert_int_equal(s.hits, 100);
    assert_int_equal(s.misses, 50);
    /* The charge covers the key, the value and a header. */
    assert_true(cairn_row_cache_charge(10, 20) >= 30 + 32);
    assert_int_equal(cairn_row_cache_charge(10, 20) - cairn_row_cache_charge(0, 0),
                     30);
    cairn_row_cache_free(c);
}

static void test_clock_order(void **state)
{
    (void)state;
    size_t ch = cairn_row_cache_charge(1, 4);
    cairn_row_cache *c = cairn_row_cache_new(3 * ch, 1);
    assert_int_equal(put(c, "a", "aaaa", 1), 1);
    assert_int_equal(put(c, "b", "bbbb", 1), 1);
    assert_int_equal(put(c, "c", "cccc", 1), 1);
    assert_true(has(c, "a")); /* a is flagged: a second chance */
    assert_int_equal(put(c, "d", "dddd", 1), 1);
    /* The hand passed a (flag cleared, moved to the newest end) and took
     * b, the oldest entry not hit: the ring is now c a d, none flagged. */
    cairn_row_cache_value v;
    assert_int_equal(cairn_row_cache_lookup(c, H("b"), "b", 1, UINT64_MAX,
                                            UINT64_MAX, &v, NULL),
                     0);
    assert_true(has(c, "c")); /* c flagged */
    assert_int_equal(put(c, "e", "eeee", 1), 1);
    /* c is passed over; a, not hit since its second chance, goes. */
    assert_false(has(c, "a"));
    assert_true(has(c, "c") && has(c, "d") && has(c, "e"));
    /* All three flagged: the hand clears them all and takes the oldest,
     * d (the ring was d c e after e's insert). */
    assert_int_equal(put(c, "f", "ffff", 1), 1);
    assert_false(has(c, "d"));
    assert_true(has(c, "e") && has(c, "c") && has(c, "f"));
    cairn_row_cache_stats s = stats(c);
    assert_int_equal(s.evictions, 3);
    assert_int_equal(s.usage, 3 * ch);
    cairn_row_cache_free(c);
}

static void test_budget(void **state)
{
    (void)state;
    const size_t cap = 64 << 10;
    cairn_row_cache *c = cairn_row_cache_new(cap, 8); /* 8 KiB a shard */
    uint64_t seed = 42;
    uint8_t *val = malloc(20000);
    assert_non_null(val);
    size_t stored = 0, refused = 0;
    for (int i = 0; i < 20000; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "k%llu",
                          (unsigned long long)tu_rand(&seed, 3000));
        size_t vl = tu_rand(&seed, 100) == 0 ? 8000 + tu_rand(&seed, 12000)
                                             : tu_rand(&seed, 600);
        tu_fill(val, vl, (uint64_t)i);
        int r = cairn_row_cache_insert(c, cairn_row_cache_hash(k, (size_t)kl),
                                       k, (size_t)kl, val, vl, false,
                                       (uint64_t)i, 0, 0, NULL);
        assert_true(r == 0 || r == 1);
        if (r == 1)
            stored++;
        else
            refused++;
        /* Larger than a shard's share: never stored. */
        if (cairn_row_cache_charge((size_t)kl, vl) > cap / 8)
            assert_int_equal(r, 0);
        cairn_row_cache_stats s = stats(c);
        assert_true(s.usage <= s.capacity);
        if (r == 0) /* and no older entry of the key is left */
            assert_false(has(c, k));
    }
    assert_true(stored > 1000 && refused > 10);
    assert_true(stats(c).evictions > 0);
    free(val);
    cairn_row_cache_free(c);
}

static void test_replace(void **state)
{
    (void)state;
    cairn_row_cache *c = cairn_row_cache_new(1 << 20, 2);
    char b[64];
    assert_int_equal(put(c, "k", "v5", 5), 1);
    assert_int_equal(put(c, "k", "v7", 7), 1);
    assert_int_equal(get(c, "k", UINT64_MAX, b, sizeof b), 1);
    assert_string_equal(b, "v7");
    /* An older state never replaces a newer one. */
    assert_int_equal(put(c, "k", "v6", 6), 0);
    assert_int_equal(get(c, "k", UINT64_MAX, b, sizeof b), 1);
    assert_string_equal(b, "v7");
    assert_int_equal(put(c, "k", NULL, 8), 1);
    assert_int_equal(get(c, "k", UINT64_MAX, b, sizeof b), 1);
    assert_string_equal(b, "<absent>");
    cairn_row_cache_stats s = stats(c);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.usage, charge_of("k", NULL));
    cairn_row_cache_free(c);
}

static void test_invalidate(void **state)
{
    (void)state;
    cairn_row_cache *c = cairn_row_cache_new(1 << 20, 4);
    uint64_t h = H("k");
    uint64_t e0 = cairn_row_cache_epoch(c, h);
    assert_int_equal(put(c, "k", "v1", 1), 1);
    invalidate(c, h, "k", 1);
    assert_false(has(c, "k"));
    uint64_t e1 = cairn_row_cache_epoch(c, h);
    assert_true(e1 != e0);
    /* A fill that read before the invalidation is refused... */
    assert_int_equal(cairn_row_cache_insert(c, h, "k", 1, "v1", 2, false, 1, 0,
                                            0, &e0),
                     0);
    assert_false(has(c, "k"));
    /* ...one that read after it is not. */
    assert_int_equal(cairn_row_cache_insert(c, h, "k", 1, "v2", 2, false, 2, 0,
                                            0, &e1),
                     1);
    assert_true(has(c, "k"));
    /* Invalidating a missing key still moves its epoch. */
    uint64_t hm = H("missing");
    uint64_t em = cairn_row_cache_epoch(c, hm);
    invalidate(c, hm, "missing", 7);
    assert_true(cairn_row_cache_epoch(c, hm) != em);
    /* A key in another slot or shard keeps its epoch. */
    char k[32];
    int found = 0;
    for (int i = 0; i < 1000 && !found; i++) {
        snprintf(k, sizeof k, "other%d", i);
        uint64_t ho = H(k);
        if (((ho >> 48) & 3) != ((h >> 48) & 3) ||
            ((ho >> 24) & 63) != ((h >> 24) & 63)) {
            uint64_t eo = cairn_row_cache_epoch(c, ho);
            invalidate(c, h, "k", 1);
            assert_int_equal(cairn_row_cache_epoch(c, ho), eo);
            assert_int_equal(cairn_row_cache_insert(c, ho, k, strlen(k), "x", 1,
                                                    false, 1, 0, 0, &eo),
                             1);
            found = 1;
        }
    }
    assert_true(found);
    cairn_row_cache_stats s = stats(c);
    assert_int_equal(s.invalidations, 2);
    assert_int_equal(s.fills_refused, 1);
    cairn_row_cache_free(c);
}

static void test_set_capacity(void **state)
{
    (void)state;
    cairn_row_cache *c = cairn_row_cache_new(256 << 10, 4);
    char k[32], v[200];
    memset(v, 'v', sizeof v - 1);
    v[sizeof v - 1] = '\0';
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof k, "key%04d", i);
        assert_int_equal(put(c, k, v, 1), 1);
    }
    cairn_row_cache_stats s = stats(c);
    assert_int_equal(s.entries, 500);
    cairn_row_cache_set_capacity(c, 32 << 10);
    s = stats(c);
    assert_int_equal(s.capacity, 32 << 10);
    assert_true(s.usage <= s.capacity);
    assert_true(s.entries < 500 && s.entries > 0);
    assert_int_equal(s.evictions, 500 - s.entries);
    /* The most recently inserted survive. */
    assert_true(has(c, "key0499"));
    assert_false(has(c, "key0000"));
    cairn_row_cache_set_capacity(c, 0);
    s = stats(c);
    assert_int_equal(s.usage, 0);
    assert_int_equal(s.entries, 0);
    assert_false(cairn_row_cache_enabled(c));
    assert_int_equal(put(c, "x", "y", 1), 0);
    cairn_row_cache_set_capacity(c, 1 << 20);
    assert_true(cairn_row_cache_enabled(c));
    assert_int_equal(put(c, "x", "y", 1), 1);
    assert_true(has(c, "x"));
    cairn_row_cache_free(c);

    /* Made with capacity 0, enabled later. */
    c = cairn_row_cache_new(0, 0);
    assert_non_null(c);
    assert_int_equal(put(c, "x", "y", 1), 0);
    cairn_row_cache_set_capacity(c, 1 << 20);
    assert_int_equal(put(c, "x", "y", 1), 1);
    cairn_row_cache_free(c);
}

static _Atomic uint64_t g_now = 1000;

static uint64_t fake_clock(void *arg)
{
    (void)arg;
    return atomic_load(&g_now);
}

static void test_ttl(void **state)
{
    (void)state;
    cairn_row_cache *c = cairn_row_cache_new(1 << 20, 2);
    cairn_row_cache_set_clock(c, fake_clock, NULL);
    uint64_t h = H("t");
    assert_int_equal(cairn_row_cache_insert(c, h, "t", 1, "tv", 2, false, 1, 0,
                                            100, NULL),
                     1);
    assert_int_equal(cairn_row_cache_insert(c, H("forever"), "forever", 7, "f",
                                            1, false, 1, 0, 0, NULL),
                     1);
    assert_int_equal(cairn_row_cache_insert(c, H("huge"), "huge", 4, "h", 1,
                                            false, 1, 0, UINT64_MAX, NULL),
                     1);
    atomic_store(&g_now, 1099);
    assert_true(has(c, "t"));
    atomic_store(&g_now, 1100);
    assert_false(has(c, "t"));
    cairn_row_cache_stats s = stats(c);
    assert_int_equal(s.expirations, 1);
    assert_int_equal(s.entries, 2); /* freed by the lookup that found it */
    atomic_store(&g_now, UINT64_MAX / 2);
    assert_true(has(c, "forever"));
    assert_true(has(c, "huge"));
    /* Re-inserted, it lives again for its own TTL. */
    assert_int_equal(cairn_row_cache_insert(c, h, "t", 1, "tv", 2, false, 2, 0,
                                            5, NULL),
                     1);
    assert_true(has(c, "t"));
    atomic_store(&g_now, UINT64_MAX / 2 + 5);
    assert_false(has(c, "t"));
    assert_int_equal(stats(c).expirations, 2);
    cairn_row_cache_free(c);
}

/* The charges against what malloc really hands out: filling the cache to
 * its budget may not take much more memory than the budget. */
static void test_memory(void **state)
{
    (void)state;
    if (SANITIZED) {
        fprintf(stderr, "test_memory: skipped under a sanitizer (its "
                        "allocator keeps its own counts)\n");
        return;
    }
    const size_t cap = 8 << 20;
    cairn_row_cache *c = cairn_row_cache_new(cap, 0);
    struct mallinfo2 m0 = mallinfo2();
    uint64_t seed = 7;
    uint8_t val[300];
    for (int i = 0; i < 200000; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "user:%08d", i);
        size_t vl = 20 + tu_rand(&seed, 280);
        tu_fill(val, vl, (uint64_t)i);
        cairn_row_cache_insert(c, cairn_row_cache_hash(k, (size_t)kl), k,
                               (size_t)kl, val, vl, false, 1, 0, 0, NULL);
    }
    struct mallinfo2 m1 = mallinfo2();
    cairn_row_cache_stats s = stats(c);
    assert_true(s.usage <= cap);
    assert_true(s.usage > cap - cap / 10); /* it did fill */
    size_t grown = m1.uordblks - m0.uordblks;
    /* Entries (malloc rounds each up a little) and the bucket arrays. */
    fprintf(stderr, "row cache: %zu bytes charged, %zu allocated, %" PRIu64
                    " entries\n",
            (size_t)s.usage, grown, s.entries);
    assert_true(grown <= cap + cap / 16);
    cairn_row_cache_free(c);
}

/* ---------- threads ---------- */

#define ST_KEYS 64
#define ST_WRITERS 2
#define ST_READERS 3

typedef struct st_shared {
    cairn_row_cache *c;
    _Atomic uint64_t newest[ST_KEYS]; /* applied */
    _Atomic uint64_t pub[ST_KEYS];    /* published */
    pthread_mutex_t key_mu[ST_KEYS];  /* one writer per key at a time */
    uint64_t ops;
    _Atomic int failures;
    _Atomic uint64_t hits;
    _Atomic bool stop;
} st_shared;

typedef struct st_arg {
    st_shared *sh;
    int id;
} st_arg;

static size_t st_vlen(int k, uint64_t ver)
{
    return (size_t)((k * 131 + ver * 17) % 700);
}

static void st_key(int k, char *buf)
{
    snprintf(buf, 16, "key%02d", k);
}

static void *st_writer(void *p)
{
    st_arg *a = p;
    st_shared *sh = a->sh;
    uint64_t seed = 1000 + (uint64_t)a->id;
    for (uint64_t i = 0; i < sh->ops / 4; i++) {
        int k = (int)tu_rand(&seed, ST_KEYS);
        char key[16];
        st_key(k, key);
        pthread_mutex_lock(&sh->key_mu[k]);
        uint64_t v = atomic_load(&sh->newest[k]) + 1;
        atomic_store(&sh->newest[k], v); /* apply */
        if (cairn_row_cache_supersede(sh->c,
                                      cairn_row_cache_hash(key, strlen(key)),
                                      key, strlen(key), NULL, 0, true,
                                      UINT64_MAX, 0, false) != 0)
            atomic_fetch_add(&sh->failures, 1); /* (no cmocka off main) */
        atomic_store(&sh->pub[k], v); /* publish */
        pthread_mutex_unlock(&sh->key_mu[k]);
    }
    return NULL;
}

static void *st_reader(void *p)
{
    st_arg *a = p;
    st_shared *sh = a->sh;
    uint64_t seed = 2000 + (uint64_t)a->id;
    uint8_t *buf = malloc(1024);
    for (uint64_t i = 0; i < sh->ops; i++) {
        int k = (int)tu_rand(&seed, ST_KEYS);
        char key[16];
        st_key(k, key);
        size_t kl = strlen(key);
        uint64_t h = cairn_row_cache_hash(key, kl);
        uint64_t S = atomic_load(&sh->pub[k]);
        cairn_row_cache_value v;
        int r = cairn_row_cache_lookup(sh->c, h, key, kl, S, UINT64_MAX, &v,
                                       NULL);
        if (r == 1) {
            atomic_fetch_add(&sh->hits, 1);
            /* Never older than what was published before the lookup. */
            if (v.version != S || v.deleted != (v.version % 5 == 0) ||
                (!v.deleted && (v.vlen != st_vlen(k, v.version) ||
                                !tu_check(v.val, v.vlen,
                                          (uint64_t)k << 32 | v.version))))
                atomic_fetch_add(&sh->failures, 1);
            free(v.val);
            continue;
        }
        if (r != 0) {
            atomic_fetch_add(&sh->failures, 1);
            continue;
        }
        /* Fill as the engine does: epoch, then what is published and what
         * is applied; only the newest, only if the epoch held. */
        uint64_t ep = cairn_row_cache_epoch(sh->c, h);
        uint64_t vis = atomic_load(&sh->pub[k]);
        uint64_t x = atomic_load(&sh->newest[k]);
        if (x > vis)
            continue;
        size_t vl = st_vlen(k, x);
        bool del = x % 5 == 0;
        tu_fill(buf, vl, (uint64_t)k << 32 | x);
        if (cairn_row_cache_insert(sh->c, h, key, kl, del ? NULL : buf,
                                   del ? 0 : vl, del, x, 0, 0, &ep) < 0)
            atomic_fetch_add(&sh->failures, 1);
    }
    free(buf);
    return NULL;
}

static void *st_resizer(void *p)
{
    st_shared *sh = p;
    uint64_t seed = 3;
    while (!atomic_load(&sh->stop)) {
        cairn_row_cache_set_capacity(sh->c, 2048 + tu_rand(&seed, 40000));
        struct timespec d = {0, 200000};
        nanosleep(&d, NULL);
    }
    cairn_row_cache_set_capacity(sh->c, 24 << 10);
    return NULL;
}

/* The admission filter: a miss is admitted on the key's second read in the
 * window, a hit says nothing, admit_all admits every miss, and the window
 * ends (the filter clears) after about 2^19 keys first seen. */
static bool miss_admits(cairn_row_cache *c, const char *k)
{
    cairn_row_cache_value v;
    bool admit = true;
    int r = cairn_row_cache_lookup(c, H(k), k, strlen(k), UINT64_MAX,
                                   UINT64_MAX, &v, &admit);
    assert_int_equal(r, 0);
    return admit;
}

/* Inserts 200-byte entries worth three times c's capacity: every shard
 * full (each within an entry of its share). */
static void fill_up(cairn_row_cache *c)
{
    char k[32], v[200];
    memset(v, 'f', sizeof v - 1);
    v[sizeof v - 1] = '\0';
    cairn_row_cache_stats st;
    cairn_row_cache_get_stats(c, &st);
    size_t bytes = 0;
    for (unsigned i = 0; bytes < 3 * st.capacity; i++) {
        snprintf(k, sizeof k, "fill%u", i);
        assert_int_equal(put(c, k, v, 1), 1);
        bytes += cairn_row_cache_charge(strlen(k), strlen(v));
    }
    cairn_row_cache_get_stats(c, &st);
    assert_true(st.evictions > 0);
}

static void test_admission(void **state)
{
    (void)state;
    cairn_row_cache *c = cairn_row_cache_new(1 << 20, 4);
    assert_non_null(c);
    /* While there is room every miss is admitted (it pushes nothing
     * out), and the filter records nothing. */
    assert_true(miss_admits(c, "a"));
    assert_true(miss_admits(c, "b"));
    fill_up(c);
    cairn_row_cache_stats st0;
    cairn_row_cache_get_stats(c, &st0);
    assert_int_equal(st0.not_admitted, 0);
    /* Full: a key's first missed read is not admitted, its second is. */
    assert_false(miss_admits(c, "a"));
    assert_false(miss_admits(c, "b"));
    assert_true(miss_admits(c, "a"));
    assert_true(miss_admits(c, "b"));
    cairn_row_cache_stats st;
    cairn_row_cache_get_stats(c, &st);
    assert_int_equal(st.not_admitted, 2);
    assert_int_equal(st.misses - st0.misses, 4);
    /* A hit leaves *admit false. */
    assert_int_equal(put(c, "a", "1", 1), 1);
    cairn_row_cache_value v;
    bool admit = true;
    assert_int_equal(cairn_row_cache_lookup(c, H("a"), "a", 1, UINT64_MAX,
                                            UINT64_MAX, &v, &admit),
                     1);
    free(v.val);
    assert_false(admit);
    /* Without admit (a reader that never fills) nothing is recorded. */
    assert_int_equal(get(c, "c", UINT64_MAX, NULL, 0), 0);
    assert_false(miss_admits(c, "c"));
    /* admit_all. */
    cairn_row_cache_set_admit_all(c, true);
    assert_true(miss_admits(c, "d"));
    cairn_row_cache_set_admit_all(c, false);
    assert_false(miss_admits(c, "e"));
    /* The window: after 2^20 keys first seen, every shard has cleared at
     * least once, so the first thousand are mostly new again (at most a
     * quarter of a shard's bits is set after a clear). */
    char k[32];
    size_t refused = 0;
    for (unsigned i = 0; i < (1u << 20); i++) {
        snprintf(k, sizeof k, "w%u", i);
        refused += !miss_admits(c, k);
    }
    assert_true(refused > (1u << 19)); /* mostly first reads */
    refused = 0;
    for (unsigned i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "w%u", i);
        refused += !miss_admits(c, k);
    }
    assert_true(refused > 500);
    cairn_row_cache_free(c);
}

/* A flush's supersede: bumps the epoch, drops an older entry (keeps a
 * newer one), and offers only into free room. */
static void test_supersede(void **state)
{
    (void)state;
    cairn_row_cache *c = cairn_row_cache_new(1 << 20, 4);
    assert_non_null(c);
    char b[300];
    /* The read hints change nothing, empty or not (see below). */
    cairn_row_cache_prefetch_entry(c, H("k"));
    cairn_row_cache_prefetch_entry(NULL, H("k"));
    /* Offered into room: stored, at its version. */
    assert_int_equal(cairn_row_cache_supersede(c, H("k"), "k", 1, "v5", 2,
                                               false, 5, 50, true),
                     1);
    cairn_row_cache_prefetch(c, H("k"));
    cairn_row_cache_prefetch_entry(c, H("k"));
    assert_int_equal(get(c, "k", UINT64_MAX, b, sizeof b), 1);
    assert_string_equal(b, "v5");
    assert_int_equal(get(c, "k", 4, b, sizeof b), 0); /* too new for 4 */
    /* An older state does not replace a newer entry. */
    assert_int_equal(cairn_row_cache_supersede(c, H("k"), "k", 1, "v3", 2,
                                               false, 3, 30, true),
                     0);
    assert_int_equal(get(c, "k", UINT64_MAX, b, sizeof b), 1);
    assert_string_equal(b, "v5");
    /* Without offer: the epoch moves (a fill that read it before is
     * refused) and the older entry goes. */
    uint64_t ep = cairn_row_cache_epoch(c, H("k"));
    assert_int_equal(cairn_row_cache_supersede(c, H("k"), "k", 1, "v7", 2,
                                               false, 7, 70, false),
                     0);
    assert_true(cairn_row_cache_epoch(c, H("k")) != ep);
    assert_int_equal(get(c, "k", UINT64_MAX, b, sizeof b), 0);
    assert_int_equal(cairn_row_cache_insert(c, H("k"), "k", 1, "v6", 2, false,
                                            6, 60, 0, &ep),
                     0);
    assert_int_equal(get(c, "k", UINT64_MAX, b, sizeof b), 0);
    /* A deletion is offered as "absent". */
    assert_int_equal(cairn_row_cache_supersede(c, H("d"), "d", 1, NULL, 0,
                                               true, 8, 80, true),
                     1);
    assert_int_equal(get(c, "d", UINT64_MAX, b, sizeof b), 1);
    assert_string_equal(b, "<absent>");
    /* Full: an offer stores nothing and evicts nothing, but still drops
     * the key's older entry. */
    assert_true(cairn_row_cache_has_room(c));
    fill_up(c);
    assert_false(cairn_row_cache_has_room(c));
    cairn_row_cache_stats st0, st1;
    assert_int_equal(put(c, "old", "o", 1), 1);
    cairn_row_cache_get_stats(c, &st0);
    char big[250];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(cairn_row_cache_supersede(c, H("old"), "old", 3, big,
                                               strlen(big), false, 2, 20,
                                               true),
                     0);
    cairn_row_cache_get_stats(c, &st1);
    assert_int_equal(st1.evictions, st0.evictions);
    assert_int_equal(st1.entries, st0.entries - 1);
    assert_int_equal(st1.invalidations, st0.invalidations + 1);
    assert_int_equal(get(c, "old", UINT64_MAX, b, sizeof b), 0);
    cairn_row_cache_free(c);
}

static void test_stress(void **state)
{
    (void)state;
    st_shared *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    sh->c = cairn_row_cache_new(24 << 10, 4);
    sh->ops = tu_env_u64("CAIRN_RC_STRESS_OPS", STRESS_OPS_DEFAULT);
    for (int k = 0; k < ST_KEYS; k++) {
        pthread_mutex_init(&sh->key_mu[k], NULL);
        atomic_init(&sh->newest[k], 1);
        atomic_init(&sh->pub[k], 1);
    }
    pthread_t th[ST_WRITERS + ST_READERS], rz;
    st_arg args[ST_WRITERS + ST_READERS];
    pthread_create(&rz, NULL, st_resizer, sh);
    for (int i = 0; i < ST_WRITERS + ST_READERS; i++) {
        args[i] = (st_arg){sh, i};
        pthread_create(&th[i], NULL, i < ST_WRITERS ? st_writer : st_reader,
                       &args[i]);
    }
    for (int i = 0; i < ST_WRITERS + ST_READERS; i++)
        pthread_join(th[i], NULL);
    atomic_store(&sh->stop, true);
    pthread_join(rz, NULL);
    assert_int_equal(atomic_load(&sh->failures), 0);
    cairn_row_cache_stats s = stats(sh->c);
    fprintf(stderr, "row cache stress: %" PRIu64 " hits, %" PRIu64
                    " misses, %" PRIu64 " inserts, %" PRIu64
                    " evictions, %" PRIu64 " invalidations, %" PRIu64
                    " refused\n",
            s.hits, s.misses, s.inserts, s.evictions, s.invalidations,
            s.fills_refused);
    assert_true(s.hits > 0 && s.inserts > 0);
    assert_true(s.usage <= s.capacity);
    /* How often a writer found a reader's fill to invalidate depends on
     * the interleaving (none, were the writers done before the readers
     * began). Once for certain: a cached state, then a newer one. */
    uint64_t h = cairn_row_cache_hash("st-final", 8);
    uint64_t ep = cairn_row_cache_epoch(sh->c, h);
    assert_int_equal(cairn_row_cache_insert(sh->c, h, "st-final", 8, "v", 1,
                                            false, 1, 0, 0, &ep),
                     1);
    assert_int_equal(cairn_row_cache_supersede(sh->c, h, "st-final", 8, NULL,
                                               0, true, 2, 0, false),
                     0);
    cairn_row_cache_stats s2 = stats(sh->c);
    assert_int_equal(s2.invalidations, s.invalidations + 1);
    for (int k = 0; k < ST_KEYS; k++)
        pthread_mutex_destroy(&sh->key_mu[k]);
    cairn_row_cache_free(sh->c);
    free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_clock_order),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_invalidate),
        cmocka_unit_test(test_set_capacity),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_admission),
        cmocka_unit_test(test_supersede),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
