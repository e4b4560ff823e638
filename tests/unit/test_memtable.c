/*
 * test_memtable.c — the MVCC memtable (src/mvcc/memtable.c): a concurrent
 * skiplist of (key asc, version desc) entries over an arena.
 *
 *  - Order: random keys (bytes 0x00/'a'/'b'/0xff, lengths 0..6, so prefixes,
 *    the empty key and unsigned compare all occur) and versions inserted in
 *    random order, duplicates refused; the iteration equals a qsort'ed
 *    reference (compared with an independent comparator); random seeks and
 *    gets agree with the reference.
 *  - get / latest_version / duplicate semantics on hand-made cases; large
 *    (4 MiB) values; seek edge cases; refcounting (ASan checks that the last
 *    unref frees everything and the earlier ones free nothing); the block
 *    pool keeps what was reserved (blocks and a hash bucket array), a
 *    table on pooled memory reads back its own data and none of the old
 *    table's keys, and unreserving sheds it all.
 *  - Batches (cairn_memtable_insert_batch): the same workload in random
 *    batches and one by one gives the same results and the same table.
 *  - Concurrency: 4 inserters (two of them in batches) + 2 readers that
 *    iterate (order, and every entry published before the scan started is
 *    seen) and get published keys; and
 *    4 threads racing to insert the same entries (exactly one wins each).
 *    Thread bodies only count failures; the main thread asserts.
 *  - Hash index (point lookups): get / latest_version agree with a brute-force
 *    answer computed from a full iteration, for random workloads with ~100
 *    versions per key (old snapshots take the skiplist fallback), with the
 *    default and the smallest (1024-bucket, long chains) index, inserted by
 *    one thread or by 4 racing threads; memory() counts the bucket array
 *    (allocated at the first insert). Writers inserting increasing versions
 *    of the SAME 8 keys while readers get at a version known to be fully
 *    inserted (a watermark published through an atomic): the answer must be
 *    exactly the reference version, or for a bound above the watermark a
 *    version between the reference and the bound. Threads racing to create
 *    the entry of the same new keys (one entry per key must win).
 *  - A single-thread throughput figure printed to stderr (inserts of 16-byte
 *    keys / 100-byte values, then as many random gets; 100k entries by
 *    default, CAIRN_MT_BENCH_N overrides, CAIRN_MT_BENCH_SIZED=0 uses the
 *    default-sized index instead of cairn_memtable_new_sized).
 *
 * Sizes shrink under TSan/ASan (__SANITIZE_THREAD__ / __SANITIZE_ADDRESS__).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include <xxhash.h>

#include "cairn.h"
#include "mvcc/memtable.h"
#include "test_util.h"

/* The throughput figure uses 100k entries by default everywhere (keeps the
 * normal-build run short); CAIRN_MT_BENCH_N=1000000 gives the 1M figure. */
#define BENCH_N_DEFAULT 100000
#if defined(__SANITIZE_THREAD__)
#define CONC_PER_WRITER 30000
#define RACE_ENTRIES 10000
#define HOT_VERSIONS 30000
#elif defined(__SANITIZE_ADDRESS__)
#define CONC_PER_WRITER 50000
#define RACE_ENTRIES 20000
#define HOT_VERSIONS 100000
#else
#define CONC_PER_WRITER 50000
#define RACE_ENTRIES 20000
#define HOT_VERSIONS 100000
#endif

/* ---------- reference order, written independently of memtable.c ---------- */

static int ref_cmp(const uint8_t *a, size_t alen, uint64_t av, const uint8_t *b,
                   size_t blen, uint64_t bv)
{
    for (size_t i = 0; i < alen && i < blen; i++) {
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    }
    if (alen != blen)
        return alen < blen ? -1 : 1;
    if (av != bv)
        return av > bv ? -1 : 1;
    return 0;
}

static int entry_cmp(const cairn_mt_entry *a, const cairn_mt_entry *b)
{
    return ref_cmp(a->key, a->klen, a->version, b->key, b->klen, b->version);
}

typedef struct {
    uint8_t key[8];
    size_t klen;
    uint64_t version;
    uint64_t ts;
    cairn_mt_kind kind;
    size_t vlen;
    size_t idx; /* insertion index: value seed, and tie-break (first wins) */
} ref_entry;

static int ref_qsort_cmp(const void *pa, const void *pb)
{
    const ref_entry *a = pa, *b = pb;
    int c = ref_cmp(a->key, a->klen, a->version, b->key, b->klen, b->version);
    if (c)
        return c;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Index of the first reference entry >= (key, version), n if none. */
static size_t ref_lower_bound(const ref_entry *r, size_t n, const uint8_t *key,
                              size_t klen, uint64_t version)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ref_cmp(r[mid].key, r[mid].klen, r[mid].version, key, klen,
                    version) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static const uint8_t alphabet[4] = {0x00, 'a', 'b', 0xff};

static size_t random_key(uint64_t *s, uint8_t key[8])
{
    size_t klen = (size_t)tu_rand(s, 7);
    for (size_t i = 0; i < klen; i++)
        key[i] = alphabet[tu_rand(s, 4)];
    return klen;
}

static void check_entry_matches(const cairn_mt_entry *e, const ref_entry *r)
{
    assert_int_equal(e->klen, r->klen);
    if (r->klen)
        assert_memory_equal(e->key, r->key, r->klen);
    assert_non_null(e->key);
    assert_int_equal(e->version, r->version);
    assert_int_equal(e->ts_us, r->ts);
    assert_int_equal(e->kind, r->kind);
    if (r->kind == CAIRN_MT_DELETE) {
        assert_null(e->value);
        assert_int_equal(e->vlen, 0);
    } else {
        assert_non_null(e->value);
        assert_int_equal(e->vlen, r->vlen);
        assert_true(tu_check(e->value, e->vlen, r->idx));
    }
}

/* ---------- order, against a sorted reference ---------- */

static void test_order_random(void **state)
{
    (void)state;
    enum { N = 20000, PROBES = 5000 };
    uint64_t seed = 12345;
    ref_entry *all = calloc(N, sizeof *all);
    assert_non_null(all);
    cairn_memtable *mt = cairn_memtable_new();
    assert_non_null(mt);
    assert_int_equal(cairn_memtable_count(mt), 0);
    assert_int_equal(cairn_memtable_max_version(mt), 0);
    assert_int_equal(cairn_memtable_memory(mt), 0);

    size_t ok = 0, dup = 0;
    uint64_t maxv = 0;
    uint8_t vbuf[64];
    for (size_t i = 0; i < N; i++) {
        ref_entry *r = &all[i];
        r->klen = random_key(&seed, r->key);
        r->version = 1 + tu_rand(&seed, 8);
        r->ts = tu_rand(&seed, 1000);
        r->kind = i % 7 == 0 ? CAIRN_MT_DELETE : CAIRN_MT_PUT;
        r->vlen = r->kind == CAIRN_MT_DELETE ? 0 : i % 50;
        r->idx = i;
        tu_fill(vbuf, r->vlen, i);
        int rc = cairn_memtable_insert(mt, r->key, r->klen, r->version, r->ts,
                                       r->kind, r->vlen ? vbuf : NULL, r->vlen);
        if (rc == 0) {
            ok++;
            if (r->version > maxv)
                maxv = r->version;
        } else {
            assert_int_equal(rc, CAIRN_EEXIST);
            dup++;
        }
    }

    /* Unique reference, keeping the first insert of each (key, version). */
    qsort(all, N, sizeof *all, ref_qsort_cmp);
    size_t u = 0;
    for (size_t i = 0; i < N; i++) {
        if (u && ref_cmp(all[u - 1].key, all[u - 1].klen, all[u - 1].version,
                         all[i].key, all[i].klen, all[i].version) == 0)
            continue;
        all[u++] = all[i];
    }
    assert_int_equal(ok, u);
    assert_int_equal(dup, N - u);
    assert_true(dup > 1000); /* the test really exercised duplicates */
    assert_int_equal(cairn_memtable_count(mt), u);
    assert_int_equal(cairn_memtable_max_version(mt), maxv);
    assert_true(cairn_memtable_memory(mt) >= ((size_t)1 << 20));

    /* Full iteration equals the reference, strictly increasing. */
    cairn_mt_iter it;
    cairn_mt_iter_init(&it, mt);
    assert_false(cairn_mt_iter_valid(&it));
    cairn_mt_iter_seek_first(&it);
    size_t seen = 0;
    cairn_mt_entry prev = {0}, e;
    for (; cairn_mt_iter_valid(&it); cairn_mt_iter_next(&it)) {
        assert_true(seen < u);
        cairn_mt_iter_entry(&it, &e);
        assert_int_equal((uintptr_t)e.key % 8, 0); /* nodes 8-byte aligned */
        if (seen)
            assert_true(entry_cmp(&prev, &e) < 0);
        check_entry_matches(&e, &all[seen]);
        prev = e;
        seen++;
    }
    assert_int_equal(seen, u);

    /* Random seeks and gets against the reference. */
    for (size_t p = 0; p < PROBES; p++) {
        uint8_t key[8];
        size_t klen = random_key(&seed, key);
        uint64_t v = tu_rand(&seed, 10); /* 0..9, around the real 1..8 */
        if (p % 5 == 0)
            v = UINT64_MAX;
        size_t lb = ref_lower_bound(all, u, key, klen, v);
        cairn_mt_iter_seek(&it, key, klen, v);
        if (lb == u) {
            assert_false(cairn_mt_iter_valid(&it));
        } else {
            assert_true(cairn_mt_iter_valid(&it));
            cairn_mt_iter_entry(&it, &e);
            check_entry_matches(&e, &all[lb]);
        }

        uint64_t max_ts = p % 3 == 0 ? UINT64_MAX : tu_rand(&seed, 1000);
        size_t want = u;
        for (size_t j = lb;
             j < u && all[j].klen == klen && memcmp(all[j].key, key, klen) == 0;
             j++) {
            if (all[j].ts <= max_ts) {
                want = j;
                break;
            }
        }
        bool found = cairn_memtable_get(mt, key, klen, v, max_ts, &e);
        assert_int_equal(found, want != u);
        if (found)
            check_entry_matches(&e, &all[want]);

        size_t first = ref_lower_bound(all, u, key, klen, UINT64_MAX);
        uint64_t latest = first < u && all[first].klen == klen &&
                                  memcmp(all[first].key, key, klen) == 0
                              ? all[first].version
                              : 0;
        assert_int_equal(cairn_memtable_latest_version(mt, key, klen), latest);
    }

    cairn_memtable_unref(mt);
    free(all);
}

/* ---------- get semantics ---------- */

#define K(s) (const uint8_t *)(s), (sizeof(s) - 1)

static void put(cairn_memtable *mt, const uint8_t *k, size_t klen, uint64_t v,
                uint64_t ts, const char *val)
{
    assert_int_equal(cairn_memtable_insert(mt, k, klen, v, ts, CAIRN_MT_PUT,
                                           val, strlen(val)),
                     0);
}

static void del(cairn_memtable *mt, const uint8_t *k, size_t klen, uint64_t v,
                uint64_t ts)
{
    assert_int_equal(
        cairn_memtable_insert(mt, k, klen, v, ts, CAIRN_MT_DELETE, NULL, 0), 0);
}

/* get must find (kind, version, value) — value NULL means a delete. */
static void expect_get(cairn_memtable *mt, const uint8_t *k, size_t klen,
                       uint64_t maxv, uint64_t maxts, uint64_t version,
                       const char *value)
{
    cairn_mt_entry e;
    memset(&e, 0xAB, sizeof e);
    assert_true(cairn_memtable_get(mt, k, klen, maxv, maxts, &e));
    assert_int_equal(e.version, version);
    assert_int_equal(e.klen, klen);
    if (klen)
        assert_memory_equal(e.key, k, klen);
    if (value) {
        assert_int_equal(e.kind, CAIRN_MT_PUT);
        assert_int_equal(e.vlen, strlen(value));
        assert_non_null(e.value);
        assert_memory_equal(e.value, value, strlen(value));
    } else {
        assert_int_equal(e.kind, CAIRN_MT_DELETE);
        assert_null(e.value);
        assert_int_equal(e.vlen, 0);
    }
}

static void expect_miss(cairn_memtable *mt, const uint8_t *k, size_t klen,
                        uint64_t maxv, uint64_t maxts)
{
    cairn_mt_entry e;
    assert_false(cairn_memtable_get(mt, k, klen, maxv, maxts, &e));
}

static cairn_memtable *make_sample(void)
{
    cairn_memtable *mt = cairn_memtable_new();
    assert_non_null(mt);
    /* Out-of-order inserts; ts not monotonic in version (25 has ts 350). */
    put(mt, K("k"), 30, 300, "v30");
    put(mt, K("k"), 10, 100, "v10");
    put(mt, K("k"), 25, 350, "v25");
    del(mt, K("k"), 20, 200);
    put(mt, K("ka"), 5, 50, "ka5");
    put(mt, K("k\0"), 6, 60, "knul6");
    put(mt, K(""), 7, 70, ""); /* empty key, empty value */
    put(mt, K(""), 3, 30, "e3");
    put(mt, K("j"), 40, 400, "j40");
    put(mt, K("kb"), 2, 20, "");
    return mt;
}

static void test_get_semantics(void **state)
{
    (void)state;
    cairn_memtable *mt = make_sample();
    const uint64_t M = UINT64_MAX;

    expect_get(mt, K("k"), M, M, 30, "v30");
    expect_get(mt, K("k"), 30, M, 30, "v30");
    expect_get(mt, K("k"), 29, M, 25, "v25");
    expect_get(mt, K("k"), 25, M, 25, "v25");
    expect_get(mt, K("k"), 24, M, 20, NULL); /* delete entry returned */
    expect_get(mt, K("k"), 20, M, 20, NULL);
    expect_get(mt, K("k"), 19, M, 10, "v10");
    expect_get(mt, K("k"), 10, M, 10, "v10");
    expect_miss(mt, K("k"), 9, M);
    expect_miss(mt, K("k"), 0, M);
    /* Timestamp bound: versions 30(ts300) 25(ts350) 20(ts200) 10(ts100). */
    expect_get(mt, K("k"), M, 349, 30, "v30");
    expect_get(mt, K("k"), 29, 349, 20, NULL); /* 25 is too late by ts */
    expect_get(mt, K("k"), 29, 350, 25, "v25");
    expect_get(mt, K("k"), M, 299, 20, NULL);
    expect_get(mt, K("k"), M, 199, 10, "v10");
    expect_get(mt, K("k"), M, 100, 10, "v10");
    expect_miss(mt, K("k"), M, 99);
    expect_miss(mt, K("k"), 15, 99);

    /* Prefixes and neighbours do not leak into each other. */
    expect_get(mt, K("ka"), M, M, 5, "ka5");
    expect_miss(mt, K("ka"), 4, M);
    expect_get(mt, K("k\0"), M, M, 6, "knul6");
    expect_get(mt, K("kb"), M, M, 2, "");
    expect_miss(mt, K("kc"), M, M);
    expect_miss(mt, K("kaa"), M, M);
    expect_miss(mt, K("jj"), M, M);
    expect_miss(mt, K("i"), M, M);
    expect_miss(mt, K("zzz"), M, M);
    expect_get(mt, K("j"), M, M, 40, "j40");

    /* Empty key, and an empty put value: non-NULL pointer, length 0. */
    expect_get(mt, K(""), M, M, 7, "");
    expect_get(mt, (const uint8_t *)NULL, 0, M, M, 7, "");
    expect_get(mt, K(""), 6, M, 3, "e3");
    expect_miss(mt, K(""), 2, M);
    /* out may be NULL. */
    assert_true(cairn_memtable_get(mt, K("k"), M, M, NULL));

    cairn_memtable *empty = cairn_memtable_new();
    assert_non_null(empty);
    expect_miss(empty, K(""), M, M);
    expect_miss(empty, K("k"), M, M);
    cairn_memtable_unref(empty);
    cairn_memtable_unref(mt);
}

static void test_latest_and_duplicates(void **state)
{
    (void)state;
    cairn_memtable *mt = make_sample();
    assert_int_equal(cairn_memtable_latest_version(mt, K("k")), 30);
    assert_int_equal(cairn_memtable_latest_version(mt, K("ka")), 5);
    assert_int_equal(cairn_memtable_latest_version(mt, K("")), 7);
    assert_int_equal(cairn_memtable_latest_version(mt, NULL, 0), 7);
    assert_int_equal(cairn_memtable_latest_version(mt, K("k\0")), 6);
    assert_int_equal(cairn_memtable_latest_version(mt, K("kz")), 0);
    assert_int_equal(cairn_memtable_latest_version(mt, K("a")), 0);
    assert_int_equal(cairn_memtable_count(mt), 10);
    assert_int_equal(cairn_memtable_max_version(mt), 40);

    /* A newer delete becomes the latest version. */
    del(mt, K("ka"), 9, 90);
    assert_int_equal(cairn_memtable_latest_version(mt, K("ka")), 9);
    assert_int_equal(cairn_memtable_count(mt), 11);

    size_t mem = cairn_memtable_memory(mt);
    const char *other = "other";
    assert_int_equal(
        cairn_memtable_insert(mt, K("k"), 20, 999, CAIRN_MT_PUT, other, 5),
        CAIRN_EEXIST);
    assert_int_equal(
        cairn_memtable_insert(mt, K("k"), 30, 1, CAIRN_MT_DELETE, NULL, 0),
        CAIRN_EEXIST);
    assert_int_equal(
        cairn_memtable_insert(mt, K(""), 7, 1, CAIRN_MT_PUT, "x", 1),
        CAIRN_EEXIST);
    /* Invalid arguments change nothing either. */
    assert_int_equal(
        cairn_memtable_insert(mt, K("new"), 0, 1, CAIRN_MT_PUT, "x", 1),
        CAIRN_EINVAL);
    assert_int_equal(
        cairn_memtable_insert(mt, NULL, 3, 1, 1, CAIRN_MT_PUT, "x", 1),
        CAIRN_EINVAL);
    assert_int_equal(
        cairn_memtable_insert(mt, K("new"), 1, 1, CAIRN_MT_PUT, NULL, 1),
        CAIRN_EINVAL);
    assert_int_equal(
        cairn_memtable_insert(mt, K("new"), 1, 1, CAIRN_MT_DELETE, "x", 1),
        CAIRN_EINVAL);
    assert_int_equal(
        cairn_memtable_insert(mt, K("new"), 1, 1, (cairn_mt_kind)4, "x", 1),
        CAIRN_EINVAL);
    assert_int_equal(cairn_memtable_count(mt), 11);
    assert_int_equal(cairn_memtable_max_version(mt), 40);
    assert_int_equal(cairn_memtable_memory(mt), mem);
    assert_int_equal(cairn_memtable_latest_version(mt, K("new")), 0);
    expect_get(mt, K("k"), 20, UINT64_MAX, 20, NULL);
    expect_get(mt, K("k"), 30, UINT64_MAX, 30, "v30");
    expect_get(mt, K(""), 7, UINT64_MAX, 7, "");

    /* Exactly one entry per (key, version) in the iteration. */
    cairn_mt_iter it;
    cairn_mt_iter_init(&it, mt);
    size_t n = 0;
    for (cairn_mt_iter_seek_first(&it); cairn_mt_iter_valid(&it);
         cairn_mt_iter_next(&it))
        n++;
    assert_int_equal(n, 11);

    /* UINT64_MAX is a usable version, and max_version follows it. */
    put(mt, K("top"), UINT64_MAX, 1, "max");
    assert_int_equal(cairn_memtable_max_version(mt), UINT64_MAX);
    assert_int_equal(cairn_memtable_latest_version(mt, K("top")), UINT64_MAX);
    expect_get(mt, K("top"), UINT64_MAX, UINT64_MAX, UINT64_MAX, "max");
    cairn_memtable_unref(mt);
}

/* ---------- large values ---------- */

static void test_large_value(void **state)
{
    (void)state;
    const size_t big = (size_t)4 << 20;
    uint8_t *v = malloc(big);
    assert_non_null(v);
    tu_fill(v, big, 77);
    cairn_memtable *mt = cairn_memtable_new();
    assert_non_null(mt);
    put(mt, K("before"), 1, 1, "small");
    size_t mem0 = cairn_memtable_memory(mt);
    assert_int_equal(
        cairn_memtable_insert(mt, K("big"), 5, 5, CAIRN_MT_PUT, v, big), 0);
    assert_true(cairn_memtable_memory(mt) >= mem0 + big);
    /* Large key too (dedicated block path with a large key part). */
    uint8_t *bigkey = malloc(300000);
    assert_non_null(bigkey);
    tu_fill(bigkey, 300000, 78);
    assert_int_equal(
        cairn_memtable_insert(mt, bigkey, 300000, 6, 6, CAIRN_MT_PUT, "bk", 2),
        0);
    put(mt, K("after"), 2, 2, "small2");
    memset(v, 0, big); /* the memtable keeps its own copy */

    cairn_mt_entry e;
    assert_true(cairn_memtable_get(mt, K("big"), UINT64_MAX, UINT64_MAX, &e));
    assert_int_equal(e.vlen, big);
    assert_int_equal(e.version, 5);
    assert_true(tu_check(e.value, e.vlen, 77));
    assert_true(
        cairn_memtable_get(mt, bigkey, 300000, UINT64_MAX, UINT64_MAX, &e));
    assert_int_equal(e.klen, 300000);
    assert_memory_equal(e.key, bigkey, 300000);
    assert_memory_equal(e.value, "bk", 2);
    expect_get(mt, K("before"), UINT64_MAX, UINT64_MAX, 1, "small");
    expect_get(mt, K("after"), UINT64_MAX, UINT64_MAX, 2, "small2");
    assert_int_equal(cairn_memtable_count(mt), 4);
    cairn_memtable_unref(mt);
    free(bigkey);
    free(v);
}

/* ---------- seek ---------- */

static void expect_at(cairn_mt_iter *it, const uint8_t *k, size_t klen,
                      uint64_t version)
{
    cairn_mt_entry e;
    assert_true(cairn_mt_iter_valid(it));
    cairn_mt_iter_entry(it, &e);
    assert_int_equal(e.klen, klen);
    if (klen)
        assert_memory_equal(e.key, k, klen);
    assert_int_equal(e.version, version);
}

static void test_seek(void **state)
{
    (void)state;
    cairn_memtable *mt = cairn_memtable_new();
    assert_non_null(mt);
    const char *keys[] = {"c", "a", "bb", "b"};
    const uint64_t vers[] = {5, 1, 9};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 3; j++)
            put(mt, (const uint8_t *)keys[i], strlen(keys[i]), vers[j], 1, "v");
    cairn_mt_iter it;
    cairn_mt_iter_init(&it, mt);

    cairn_mt_iter_seek_first(&it);
    expect_at(&it, K("a"), 9);
    cairn_mt_iter_next(&it);
    expect_at(&it, K("a"), 5);
    cairn_mt_iter_next(&it);
    expect_at(&it, K("a"), 1);
    cairn_mt_iter_next(&it);
    expect_at(&it, K("b"), 9);

    cairn_mt_iter_seek(&it, K("b"), 7);
    expect_at(&it, K("b"), 5);
    cairn_mt_iter_seek(&it, K("b"), 5);
    expect_at(&it, K("b"), 5);
    cairn_mt_iter_seek(&it, K("b"), 9);
    expect_at(&it, K("b"), 9);
    cairn_mt_iter_seek(&it, K("b"), 100);
    expect_at(&it, K("b"), 9);
    cairn_mt_iter_seek(&it, K("b"), UINT64_MAX);
    expect_at(&it, K("b"), 9);
    cairn_mt_iter_seek(&it, K("b"), 1);
    expect_at(&it, K("b"), 1);
    cairn_mt_iter_seek(&it, K("b"), 0); /* past every version of "b" */
    expect_at(&it, K("bb"), 9);
    cairn_mt_iter_seek(&it, K("b\0"), UINT64_MAX); /* between "b" and "bb" */
    expect_at(&it, K("bb"), 9);
    cairn_mt_iter_seek(&it, K("ba"), UINT64_MAX);
    expect_at(&it, K("bb"), 9);
    cairn_mt_iter_seek(&it, K("bc"), UINT64_MAX);
    expect_at(&it, K("c"), 9);
    cairn_mt_iter_seek(&it, K(""), UINT64_MAX);
    expect_at(&it, K("a"), 9);
    cairn_mt_iter_seek(&it, NULL, 0, 0);
    expect_at(&it, K("a"), 9);
    cairn_mt_iter_seek(&it, K("c"), 2);
    expect_at(&it, K("c"), 1);
    cairn_mt_iter_next(&it);
    assert_false(cairn_mt_iter_valid(&it));
    cairn_mt_iter_seek(&it, K("c"), 0);
    assert_false(cairn_mt_iter_valid(&it));
    cairn_mt_iter_seek(&it, K("d"), UINT64_MAX);
    assert_false(cairn_mt_iter_valid(&it));

    /* An empty memtable. */
    cairn_memtable *empty = cairn_memtable_new();
    assert_non_null(empty);
    cairn_mt_iter_init(&it, empty);
    cairn_mt_iter_seek_first(&it);
    assert_false(cairn_mt_iter_valid(&it));
    cairn_mt_iter_seek(&it, K("a"), UINT64_MAX);
    assert_false(cairn_mt_iter_valid(&it));
    cairn_memtable_unref(empty);
    cairn_memtable_unref(mt);
}

/* ---------- refcount ---------- */

static void test_refcount(void **state)
{
    (void)state;
    cairn_memtable *mt = cairn_memtable_new();
    assert_non_null(mt);
    cairn_memtable_ref(mt);
    cairn_memtable_ref(mt);
    /* Several arena blocks plus a dedicated one, so freeing walks a list. */
    uint8_t val[1000];
    for (uint64_t i = 0; i < 3000; i++) {
        uint8_t key[8];
        memcpy(key, &i, 8);
        tu_fill(val, sizeof val, i);
        assert_int_equal(cairn_memtable_insert(mt, key, 8, i + 1, i,
                                               CAIRN_MT_PUT, val, sizeof val),
                         0);
    }
    uint8_t *big = calloc(1, 600000);
    assert_non_null(big);
    assert_int_equal(
        cairn_memtable_insert(mt, K("big"), 1, 1, CAIRN_MT_PUT, big, 600000),
        0);
    free(big);
    assert_true(cairn_memtable_memory(mt) >= 3 * ((size_t)1 << 20) + 600000);

    cairn_memtable_unref(mt); /* 3 -> 2: still alive (ASan would catch a UAF) */
    cairn_memtable_unref(mt); /* 2 -> 1 */
    cairn_mt_entry e;
    for (uint64_t i = 0; i < 3000; i += 7) {
        uint8_t key[8];
        memcpy(key, &i, 8);
        assert_true(cairn_memtable_get(mt, key, 8, UINT64_MAX, UINT64_MAX, &e));
        assert_int_equal(e.version, i + 1);
        assert_true(tu_check(e.value, e.vlen, i));
    }
    assert_int_equal(cairn_memtable_count(mt), 3001);
    cairn_memtable_unref(mt); /* 1 -> 0: frees; ASan's leak check confirms */
    cairn_memtable_unref(NULL);
}

/* ---------- block pool ---------- */

/* 3000 entries of 1000-byte values, versions from v0 (about 3 MiB: 3 or
 * 4 arena blocks). */
static void pool_fill(cairn_memtable *mt, uint64_t v0)
{
    uint8_t val[1000];
    for (uint64_t i = 0; i < 3000; i++) {
        uint8_t key[8];
        memcpy(key, &i, 8);
        tu_fill(val, sizeof val, i + v0);
        assert_int_equal(cairn_memtable_insert(mt, key, 8, v0 + i, i,
                                               CAIRN_MT_PUT, val, sizeof val),
                         0);
    }
}

static void test_block_pool(void **state)
{
    (void)state;
    assert_int_equal(cairn_memtable_pool_blocks(), 0); /* nothing reserved */
    /* Without a reservation, freed blocks are not kept. */
    cairn_memtable *mt = cairn_memtable_new();
    assert_non_null(mt);
    pool_fill(mt, 1);
    cairn_memtable_unref(mt);
    assert_int_equal(cairn_memtable_pool_blocks(), 0);

    assert_int_equal(cairn_memtable_pool_arrays(), 0);

    /* Two blocks' worth reserved: a freed table leaves two blocks and its
     * hash bucket array behind. It also held keys the next one will not. */
    cairn_memtable_pool_reserve((uint64_t)2 << 20);
    mt = cairn_memtable_new();
    assert_non_null(mt);
    pool_fill(mt, 1);
    for (uint64_t i = 5000; i < 5100; i++) {
        uint8_t key[8];
        memcpy(key, &i, 8);
        assert_int_equal(cairn_memtable_insert(mt, key, 8, i, i, CAIRN_MT_PUT,
                                               key, 8),
                         0);
    }
    cairn_memtable_unref(mt);
    assert_int_equal(cairn_memtable_pool_blocks(), 2);
    assert_int_equal(cairn_memtable_pool_arrays(), 1);

    /* The next table takes them (a block per MiB written) and reads back
     * what it wrote into them, not what the first table left there. */
    mt = cairn_memtable_new();
    assert_non_null(mt);
    pool_fill(mt, 100000);
    assert_int_equal(cairn_memtable_pool_blocks(), 0);
    assert_int_equal(cairn_memtable_pool_arrays(), 0); /* taken, zeroed */
    cairn_mt_entry e;
    for (uint64_t i = 5000; i < 5100; i++) { /* only the old table's */
        uint8_t key[8];
        memcpy(key, &i, 8);
        assert_false(
            cairn_memtable_get(mt, key, 8, UINT64_MAX, UINT64_MAX, &e));
        assert_int_equal(cairn_memtable_latest_version(mt, key, 8), 0);
    }
    for (uint64_t i = 0; i < 3000; i += 3) {
        uint8_t key[8];
        memcpy(key, &i, 8);
        assert_true(cairn_memtable_get(mt, key, 8, UINT64_MAX, UINT64_MAX, &e));
        assert_int_equal(e.version, 100000 + i);
        assert_true(tu_check(e.value, e.vlen, i + 100000));
    }
    assert_int_equal(cairn_memtable_count(mt), 3000);
    cairn_memtable_unref(mt);
    assert_int_equal(cairn_memtable_pool_blocks(), 2);
    assert_int_equal(cairn_memtable_pool_arrays(), 1);

    /* A bigger reservation keeps more; giving it back sheds them at once
     * (ASan's leak check: nothing is lost on the way). */
    cairn_memtable_pool_reserve((uint64_t)8 << 20);
    mt = cairn_memtable_new();
    assert_non_null(mt);
    pool_fill(mt, 1);
    cairn_memtable_unref(mt);
    size_t kept = cairn_memtable_pool_blocks();
    assert_true(kept >= 3 && kept <= 4);
    assert_int_equal(cairn_memtable_pool_arrays(), 1); /* one table */
    cairn_memtable_pool_unreserve((uint64_t)8 << 20);
    assert_int_equal(cairn_memtable_pool_blocks(), 2);
    assert_int_equal(cairn_memtable_pool_arrays(), 1);
    cairn_memtable_pool_unreserve((uint64_t)2 << 20);
    assert_int_equal(cairn_memtable_pool_blocks(), 0);
    assert_int_equal(cairn_memtable_pool_arrays(), 0);
    cairn_memtable_pool_unreserve(1); /* more than reserved: clamps at 0 */
    assert_int_equal(cairn_memtable_pool_blocks(), 0);
}

/* ---------- concurrency: inserters + readers ---------- */

#define NWRITERS 4
#define NREADERS 2

typedef struct {
    cairn_memtable *mt;
    _Atomic uint64_t published[NWRITERS]; /* entries done per writer */
    _Atomic bool done;
    _Atomic uint64_t errors;       /* any failed check in a thread */
    _Atomic uint64_t missing;      /* published entry not found */
    _Atomic uint64_t order_errors; /* iteration out of order */
    _Atomic uint64_t short_scans;  /* a scan saw fewer than published */
    _Atomic uint64_t scans, gets;
} conc_ctx;

typedef struct {
    conc_ctx *ctx;
    int id;
} conc_arg;

/* Entry i of writer w: key = 4-byte hash prefix, w, (i / 2) big-endian, so
 * consecutive pairs share a key with two versions; version unique overall. */
static size_t conc_key(int w, uint64_t i, uint8_t key[9])
{
    uint64_t k = i / 2;
    uint64_t h = tu_splitmix(&(uint64_t){((uint64_t)w << 32) | k});
    key[0] = (uint8_t)(h >> 56);
    key[1] = (uint8_t)(h >> 48);
    key[2] = (uint8_t)(h >> 40);
    key[3] = (uint8_t)(h >> 32);
    key[4] = (uint8_t)w;
    key[5] = (uint8_t)(k >> 24);
    key[6] = (uint8_t)(k >> 16);
    key[7] = (uint8_t)(k >> 8);
    key[8] = (uint8_t)k;
    return 9;
}

static uint64_t conc_version(int w, uint64_t i)
{
    return (uint64_t)w * CONC_PER_WRITER + i + 1;
}

static void *conc_writer(void *p)
{
    conc_arg *a = p;
    conc_ctx *c = a->ctx;
    uint8_t key[9], val[40];
    if (a->id % 2) { /* odd writers insert in batches */
        enum { B = 13 };
        uint8_t keys[B][9], vals[B][40];
        cairn_mt_write w[B];
        int rcs[B];
        for (uint64_t i = 0; i < CONC_PER_WRITER;) {
            size_t n = 0;
            for (; n < B && i + n < CONC_PER_WRITER; n++) {
                uint64_t v = conc_version(a->id, i + n);
                size_t klen = conc_key(a->id, i + n, keys[n]);
                tu_fill(vals[n], (i + n) % 40, v);
                w[n] = (cairn_mt_write){keys[n], klen, v, v, CAIRN_MT_PUT,
                                        vals[n], (i + n) % 40};
            }
            cairn_memtable_insert_batch(c->mt, w, n, rcs);
            for (size_t j = 0; j < n; j++)
                if (rcs[j] != 0)
                    atomic_fetch_add(&c->errors, 1);
            i += n;
            atomic_store_explicit(&c->published[a->id], i,
                                  memory_order_release);
        }
        return NULL;
    }
    for (uint64_t i = 0; i < CONC_PER_WRITER; i++) {
        size_t klen = conc_key(a->id, i, key);
        uint64_t v = conc_version(a->id, i);
        size_t vlen = i % 40;
        tu_fill(val, vlen, v);
        if (cairn_memtable_insert(c->mt, key, klen, v, v, CAIRN_MT_PUT, val,
                                  vlen) != 0)
            atomic_fetch_add(&c->errors, 1);
        atomic_store_explicit(&c->published[a->id], i + 1,
                              memory_order_release);
    }
    return NULL;
}

static void *conc_reader(void *p)
{
    conc_arg *a = p;
    conc_ctx *c = a->ctx;
    uint64_t seed = 999 + (uint64_t)a->id;
    /* At least one scan, however late this thread starts. */
    while (atomic_load(&c->scans) == 0 || !atomic_load(&c->done)) {
        /* Scan: strictly increasing, and sees everything published before. */
        uint64_t before = 0;
        for (int w = 0; w < NWRITERS; w++)
            before +=
                atomic_load_explicit(&c->published[w], memory_order_acquire);
        cairn_mt_iter it;
        cairn_mt_iter_init(&it, c->mt);
        cairn_mt_entry prev, e;
        uint64_t n = 0;
        for (cairn_mt_iter_seek_first(&it); cairn_mt_iter_valid(&it);
             cairn_mt_iter_next(&it)) {
            cairn_mt_iter_entry(&it, &e);
            if (n && entry_cmp(&prev, &e) >= 0)
                atomic_fetch_add(&c->order_errors, 1);
            prev = e;
            n++;
        }
        if (n < before)
            atomic_fetch_add(&c->short_scans, 1);
        atomic_fetch_add(&c->scans, 1);

        /* Gets of published entries, exact version and value. */
        for (int g = 0; g < 500; g++) {
            int w = (int)tu_rand(&seed, NWRITERS);
            uint64_t pub =
                atomic_load_explicit(&c->published[w], memory_order_acquire);
            if (!pub)
                continue;
            uint64_t i = tu_rand(&seed, pub);
            uint8_t key[9];
            size_t klen = conc_key(w, i, key);
            uint64_t v = conc_version(w, i);
            if (!cairn_memtable_get(c->mt, key, klen, v, UINT64_MAX, &e) ||
                e.version != v) {
                atomic_fetch_add(&c->missing, 1);
                continue;
            }
            if (e.kind != CAIRN_MT_PUT || e.ts_us != v || e.vlen != i % 40 ||
                !tu_check(e.value, e.vlen, v) ||
                cairn_memtable_latest_version(c->mt, key, klen) < v)
                atomic_fetch_add(&c->errors, 1);
            atomic_fetch_add(&c->gets, 1);
        }
    }
    return NULL;
}

static void test_concurrent_insert_read(void **state)
{
    (void)state;
    conc_ctx *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->mt = cairn_memtable_new();
    assert_non_null(c->mt);
    pthread_t wt[NWRITERS], rt[NREADERS];
    conc_arg wa[NWRITERS], ra[NREADERS];
    for (int i = 0; i < NREADERS; i++) {
        ra[i] = (conc_arg){c, i};
        assert_int_equal(pthread_create(&rt[i], NULL, conc_reader, &ra[i]), 0);
    }
    for (int i = 0; i < NWRITERS; i++) {
        wa[i] = (conc_arg){c, i};
        assert_int_equal(pthread_create(&wt[i], NULL, conc_writer, &wa[i]), 0);
    }
    for (int i = 0; i < NWRITERS; i++)
        pthread_join(wt[i], NULL);
    atomic_store(&c->done, true);
    for (int i = 0; i < NREADERS; i++)
        pthread_join(rt[i], NULL);

    fprintf(
        stderr, "  concurrent: %d writers x %d, reader scans %llu, gets %llu\n",
        NWRITERS, CONC_PER_WRITER, (unsigned long long)atomic_load(&c->scans),
        (unsigned long long)atomic_load(&c->gets));
    assert_int_equal(atomic_load(&c->errors), 0);
    assert_int_equal(atomic_load(&c->missing), 0);
    assert_int_equal(atomic_load(&c->order_errors), 0);
    assert_int_equal(atomic_load(&c->short_scans), 0);
    assert_true(atomic_load(&c->scans) > 0);

    const uint64_t total = (uint64_t)NWRITERS * CONC_PER_WRITER;
    assert_int_equal(cairn_memtable_count(c->mt), total);
    assert_int_equal(cairn_memtable_max_version(c->mt), total);

    /* Full order check, and every entry present with its value. */
    cairn_mt_iter it;
    cairn_mt_iter_init(&it, c->mt);
    cairn_mt_entry prev, e;
    uint64_t n = 0;
    uint8_t *seen = calloc(total + 1, 1);
    assert_non_null(seen);
    for (cairn_mt_iter_seek_first(&it); cairn_mt_iter_valid(&it);
         cairn_mt_iter_next(&it)) {
        cairn_mt_iter_entry(&it, &e);
        if (n)
            assert_true(entry_cmp(&prev, &e) < 0);
        assert_true(e.version >= 1 && e.version <= total);
        assert_false(seen[e.version]);
        seen[e.version] = 1;
        int w = (int)((e.version - 1) / CONC_PER_WRITER);
        uint64_t i = (e.version - 1) % CONC_PER_WRITER;
        uint8_t key[9];
        size_t klen = conc_key(w, i, key);
        assert_int_equal(e.klen, klen);
        assert_memory_equal(e.key, key, klen);
        assert_true(tu_check(e.value, e.vlen, e.version));
        prev = e;
        n++;
    }
    assert_int_equal(n, total);
    free(seen);
    cairn_memtable_unref(c->mt);
    free(c);
}

/* ---------- concurrency: racing duplicates ---------- */

typedef struct {
    cairn_memtable *mt;
    int id;
    uint64_t ok, exist, other;
} race_arg;

/* All threads walk the same entries in the same order, meeting at a barrier
 * every RACE_BATCH entries, so two running threads often insert the same
 * entry at the same moment (the duplicate found on a CAS retry). The stride
 * must be coprime with RACE_ENTRIES (checked) to visit every entry. */
#define RACE_BATCH 16
#define RACE_STRIDE 7919u
static pthread_barrier_t race_barrier;

static uint64_t gcd(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static void *race_inserter(void *p)
{
    race_arg *a = p;
    uint64_t j = 0;
    for (uint64_t n = 0; n < RACE_ENTRIES; n++) {
        if (n % RACE_BATCH == 0)
            pthread_barrier_wait(&race_barrier);
        j = (j + RACE_STRIDE) % RACE_ENTRIES;
        uint64_t k = j / 3; /* three versions per key */
        uint8_t key[8];
        for (int b = 0; b < 8; b++)
            key[b] = (uint8_t)(tu_splitmix(&(uint64_t){k}) >> (8 * b));
        uint8_t val[256]; /* copying it widens the race window */
        memset(val, 't', sizeof val);
        val[0] = (uint8_t)a->id;
        int rc = cairn_memtable_insert(a->mt, key, 8, j % 3 + 1, 0,
                                       CAIRN_MT_PUT, val, sizeof val);
        if (rc == 0)
            a->ok++;
        else if (rc == CAIRN_EEXIST)
            a->exist++;
        else
            a->other++;
    }
    return NULL;
}

static void test_concurrent_duplicates(void **state)
{
    (void)state;
    assert_int_equal(gcd(RACE_STRIDE, RACE_ENTRIES), 1);
    assert_int_equal(pthread_barrier_init(&race_barrier, NULL, 4), 0);
    cairn_memtable *mt = cairn_memtable_new();
    assert_non_null(mt);
    pthread_t t[4];
    race_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (race_arg){mt, i, 0, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, race_inserter, &a[i]), 0);
    }
    uint64_t ok = 0, exist = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].other, 0);
        ok += a[i].ok;
        exist += a[i].exist;
    }
    assert_int_equal(ok, RACE_ENTRIES);
    assert_int_equal(exist, 3 * (uint64_t)RACE_ENTRIES);
    assert_int_equal(cairn_memtable_count(mt), RACE_ENTRIES);
    cairn_mt_iter it;
    cairn_mt_iter_init(&it, mt);
    cairn_mt_entry prev, e;
    uint64_t n = 0;
    for (cairn_mt_iter_seek_first(&it); cairn_mt_iter_valid(&it);
         cairn_mt_iter_next(&it)) {
        cairn_mt_iter_entry(&it, &e);
        if (n)
            assert_true(entry_cmp(&prev, &e) < 0);
        prev = e;
        n++;
    }
    assert_int_equal(n, RACE_ENTRIES);
    pthread_barrier_destroy(&race_barrier);
    cairn_memtable_unref(mt);
}

/* ---------- hash index vs a brute-force scan of the iteration ---------- */

typedef struct {
    const uint8_t *key;
    size_t klen;
    uint64_t version, ts;
} scan_entry;

typedef struct {
    scan_entry *e; /* the whole iteration, in order */
    size_t n;
    size_t *group; /* start index of each distinct user key, plus n */
    size_t ngroups;
} scan_ref;

static void scan_build(cairn_memtable *mt, scan_ref *r)
{
    size_t cap = (size_t)cairn_memtable_count(mt) + 1;
    r->e = calloc(cap, sizeof *r->e);
    r->group = calloc(cap + 1, sizeof *r->group);
    assert_non_null(r->e);
    assert_non_null(r->group);
    r->n = r->ngroups = 0;
    cairn_mt_iter it;
    cairn_mt_iter_init(&it, mt);
    cairn_mt_entry e;
    for (cairn_mt_iter_seek_first(&it); cairn_mt_iter_valid(&it);
         cairn_mt_iter_next(&it)) {
        assert_true(r->n < cap);
        cairn_mt_iter_entry(&it, &e);
        scan_entry *s = &r->e[r->n];
        *s = (scan_entry){e.key, e.klen, e.version, e.ts_us};
        if (r->n == 0 ||
            ref_cmp(s[-1].key, s[-1].klen, 0, s->key, s->klen, 0) != 0)
            r->group[r->ngroups++] = r->n;
        r->n++;
    }
    r->group[r->ngroups] = r->n;
}

static void scan_free(scan_ref *r)
{
    free(r->e);
    free(r->group);
}

/* The group of `key`, or ngroups if absent (binary search on the groups). */
static size_t scan_group(const scan_ref *r, const uint8_t *key, size_t klen)
{
    size_t lo = 0, hi = r->ngroups;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const scan_entry *g = &r->e[r->group[mid]];
        int c = ref_cmp(g->key, g->klen, 0, key, klen, 0);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return r->ngroups;
}

/* Brute force: the first (newest) entry of the group within both bounds. */
static const scan_entry *scan_get(const scan_ref *r, size_t g,
                                  uint64_t max_version, uint64_t max_ts)
{
    if (g == r->ngroups)
        return NULL;
    for (size_t i = r->group[g]; i < r->group[g + 1]; i++)
        if (r->e[i].version <= max_version && r->e[i].ts <= max_ts)
            return &r->e[i];
    return NULL;
}

/* Probe get / latest_version for every key of the iteration and for random
 * (mostly absent) keys, with bounds around the real versions. */
static void check_against_scan(cairn_memtable *mt, uint64_t *seed,
                               size_t probes, uint64_t vmax, uint64_t tsmax)
{
    scan_ref r;
    scan_build(mt, &r);
    assert_int_equal(r.n, cairn_memtable_count(mt));
    cairn_mt_entry e;
    uint64_t fallbacks = 0;
    for (size_t p = 0; p < probes + r.ngroups; p++) {
        uint8_t kbuf[8];
        const uint8_t *key;
        size_t klen, g;
        if (p < r.ngroups) { /* every present key at least once */
            g = p;
            key = r.e[r.group[g]].key;
            klen = r.e[r.group[g]].klen;
        } else {
            klen = random_key(seed, kbuf);
            key = kbuf;
            g = scan_group(&r, key, klen);
        }
        uint64_t latest = g < r.ngroups ? r.e[r.group[g]].version : 0;
        assert_int_equal(cairn_memtable_latest_version(mt, key, klen), latest);

        for (int q = 0; q < 4; q++) {
            uint64_t maxv = q == 0 ? UINT64_MAX : tu_rand(seed, vmax + 2);
            uint64_t maxts = q == 1 ? UINT64_MAX : tu_rand(seed, tsmax + 2);
            if (q == 2)
                maxts = UINT64_MAX;
            const scan_entry *want = scan_get(&r, g, maxv, maxts);
            if (want && want != &r.e[r.group[g]] &&
                r.e[r.group[g]].version > maxv)
                fallbacks++;
            memset(&e, 0xCD, sizeof e);
            bool found = cairn_memtable_get(mt, key, klen, maxv, maxts, &e);
            assert_int_equal(found, want != NULL);
            if (!want)
                continue;
            assert_int_equal(e.version, want->version);
            assert_int_equal(e.ts_us, want->ts);
            assert_int_equal(e.klen, klen);
            assert_ptr_equal(e.key, want->key); /* the very same node */
        }
    }
    assert_true(fallbacks > 0 || r.n == r.ngroups);
    scan_free(&r);
}

typedef struct {
    uint8_t key[8];
    size_t klen;
    uint64_t version, ts;
} mv_op;

/* ~ops / nkeys versions per key, versions 1..vmax in random order. */
static mv_op *mv_workload(uint64_t *seed, size_t ops, size_t nkeys,
                          uint64_t vmax)
{
    uint8_t(*keys)[8] = calloc(nkeys, 8);
    size_t *klens = calloc(nkeys, sizeof *klens);
    mv_op *w = calloc(ops, sizeof *w);
    assert_non_null(keys);
    assert_non_null(klens);
    assert_non_null(w);
    for (size_t k = 0; k < nkeys; k++)
        klens[k] = random_key(seed, keys[k]);
    for (size_t i = 0; i < ops; i++) {
        size_t k = (size_t)tu_rand(seed, nkeys);
        memcpy(w[i].key, keys[k], 8);
        w[i].klen = klens[k];
        w[i].version = 1 + tu_rand(seed, vmax);
        w[i].ts = tu_rand(seed, 1000);
    }
    free(keys);
    free(klens);
    return w;
}

static int mv_insert(cairn_memtable *mt, const mv_op *op)
{
    uint8_t v[8];
    memcpy(v, &op->version, 8);
    return cairn_memtable_insert(
        mt, op->key, op->klen, op->version, op->ts,
        op->version % 5 ? CAIRN_MT_PUT : CAIRN_MT_DELETE,
        op->version % 5 ? v : NULL, op->version % 5 ? 8 : 0);
}

static void test_hash_matches_scan(void **state)
{
    (void)state;
    enum { OPS = 30000, NKEYS = 300, VMAX = 1000 };
    for (int round = 0; round < 4; round++) {
        uint64_t seed = 777 + (uint64_t)round;
        /* Rounds 0/2: default index; 1/3: 1024 buckets. Rounds 2/3 also
         * have many more keys (the smallest index then has long chains). */
        size_t nkeys = round < 2 ? NKEYS : 5000;
        cairn_memtable *mt =
            round % 2 ? cairn_memtable_new_sized(0) : cairn_memtable_new();
        assert_non_null(mt);
        /* Before any insert: nothing found, nothing allocated (hints on
         * an empty table do nothing). */
        cairn_memtable_prefetch(mt, XXH3_64bits("a", 1));
        cairn_memtable_prefetch_entry(mt, XXH3_64bits("a", 1));
        assert_int_equal(cairn_memtable_latest_version(mt, K("a")), 0);
        assert_false(
            cairn_memtable_get(mt, K("a"), UINT64_MAX, UINT64_MAX, NULL));
        assert_int_equal(cairn_memtable_memory(mt), 0);
        mv_op *w = mv_workload(&seed, OPS, nkeys, VMAX);
        for (size_t i = 0; i < OPS; i++) {
            int rc = mv_insert(mt, &w[i]);
            assert_true(rc == 0 || rc == CAIRN_EEXIST);
            /* Interleaved spot checks while the table grows, after the
             * read hints (present and absent keys): they change nothing. */
            if (i % 997 == 0) {
                uint64_t hk = XXH3_64bits(w[i].key, w[i].klen);
                cairn_memtable_prefetch(mt, hk);
                cairn_memtable_prefetch_entry(mt, hk);
                cairn_memtable_prefetch_entry(mt, hk ^ 0x5555);
                assert_true(cairn_memtable_latest_version(
                                mt, w[i].key, w[i].klen) >= w[i].version);
            }
        }
        check_against_scan(mt, &seed, 3000, VMAX, 1000);
        cairn_memtable_unref(mt);
        free(w);
    }
}

/* The same workload through cairn_memtable_insert_batch (batches of 1..40,
 * so keys next to each other and the same (key, version) twice fall in one
 * batch, and invalid inserts among them) and through one insert at a time:
 * the same result for each insert, the same entries in the same order,
 * and gets agree with a scan. */
static void test_insert_batch(void **state)
{
    (void)state;
    enum { OPS = 30000, VMAX = 1000 };
    for (int round = 0; round < 2; round++) {
        uint64_t seed = 4242 + (uint64_t)round;
        size_t nkeys = round ? 5000 : 300;
        cairn_memtable *one = cairn_memtable_new();
        cairn_memtable *bat = cairn_memtable_new_sized(round ? 0 : 1 << 20);
        assert_non_null(one);
        assert_non_null(bat);
        mv_op *w = mv_workload(&seed, OPS, nkeys, VMAX);
        cairn_mt_write *mw = calloc(OPS, sizeof *mw);
        int *want = calloc(OPS, sizeof *want), *got = calloc(OPS, sizeof *got);
        uint64_t *vals = calloc(OPS, sizeof *vals);
        assert_non_null(mw);
        assert_non_null(want);
        assert_non_null(got);
        assert_non_null(vals);
        for (size_t i = 0; i < OPS; i++) {
            bool del = w[i].version % 5 == 0;
            vals[i] = w[i].version;
            /* Every 101st is invalid (version 0): refused, nothing else
             * changes. */
            uint64_t v = i % 101 == 50 ? 0 : w[i].version;
            mw[i] = (cairn_mt_write){w[i].key, w[i].klen, v, w[i].ts,
                                     del ? CAIRN_MT_DELETE : CAIRN_MT_PUT,
                                     del ? NULL : &vals[i], del ? 0 : 8};
            want[i] = cairn_memtable_insert(one, mw[i].key, mw[i].klen,
                                            mw[i].version, mw[i].ts_us,
                                            mw[i].kind, mw[i].value,
                                            mw[i].vlen);
        }
        for (size_t i = 0; i < OPS;) {
            size_t n = 1 + (size_t)tu_rand(&seed, 40);
            if (n > OPS - i)
                n = OPS - i;
            cairn_memtable_insert_batch(bat, mw + i, n, got + i);
            i += n;
        }
        size_t dups = 0;
        for (size_t i = 0; i < OPS; i++) {
            assert_int_equal(got[i], want[i]);
            dups += want[i] == CAIRN_EEXIST;
        }
        assert_true(dups > 0);
        assert_int_equal(want[50], CAIRN_EINVAL);
        assert_int_equal(cairn_memtable_count(bat), cairn_memtable_count(one));
        cairn_mt_iter a, b;
        cairn_mt_iter_init(&a, one);
        cairn_mt_iter_init(&b, bat);
        cairn_mt_iter_seek_first(&a);
        cairn_mt_iter_seek_first(&b);
        for (; cairn_mt_iter_valid(&a);
             cairn_mt_iter_next(&a), cairn_mt_iter_next(&b)) {
            assert_true(cairn_mt_iter_valid(&b));
            cairn_mt_entry x, y;
            cairn_mt_iter_entry(&a, &x);
            cairn_mt_iter_entry(&b, &y);
            assert_int_equal(entry_cmp(&x, &y), 0);
            assert_int_equal(x.kind, y.kind);
            assert_int_equal(x.ts_us, y.ts_us);
            assert_int_equal(x.vlen, y.vlen);
            if (x.vlen)
                assert_memory_equal(x.value, y.value, x.vlen);
        }
        assert_false(cairn_mt_iter_valid(&b));
        check_against_scan(bat, &seed, 3000, VMAX, 1000);
        cairn_memtable_unref(one);
        cairn_memtable_unref(bat);
        free(w);
        free(mw);
        free(want);
        free(got);
        free(vals);
    }
}

/* memory() counts the bucket array once the first insert allocated it. */
static void test_hash_memory(void **state)
{
    (void)state;
    cairn_memtable *a = cairn_memtable_new();
    cairn_memtable *b = cairn_memtable_new_sized(0);
    cairn_memtable *c = cairn_memtable_new_sized((size_t)64 << 20);
    cairn_memtable *d = cairn_memtable_new_sized(((size_t)64 << 20) + 128);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_non_null(d);
    cairn_memtable *all[4] = {a, b, c, d};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(cairn_memtable_memory(all[i]), 0);
        put(all[i], K("x"), 1, 1, "y");
    }
    size_t mb = cairn_memtable_memory(b); /* one arena block + 1024 buckets */
    assert_true(mb > 1024 * sizeof(void *));
    assert_int_equal(cairn_memtable_memory(a) - mb,
                     ((size_t)65536 - 1024) * sizeof(void *));
    assert_int_equal(cairn_memtable_memory(c) - mb,
                     ((size_t)1048576 - 1024) * sizeof(void *));
    assert_int_equal(cairn_memtable_memory(d) - mb,
                     ((size_t)2097152 - 1024) * sizeof(void *));
    for (int i = 0; i < 4; i++) {
        expect_get(all[i], K("x"), UINT64_MAX, UINT64_MAX, 1, "y");
        /* A second key and version cost arena bytes only. */
        size_t m0 = cairn_memtable_memory(all[i]);
        put(all[i], K("x"), 2, 2, "z");
        put(all[i], K("w"), 3, 3, "z");
        assert_int_equal(cairn_memtable_memory(all[i]), m0);
        expect_get(all[i], K("x"), UINT64_MAX, UINT64_MAX, 2, "z");
        expect_get(all[i], K("x"), 1, UINT64_MAX, 1, "y");
        cairn_memtable_unref(all[i]);
    }
}

/* ---------- hash index: racing inserters, then a brute-force check ----- */

#define MV_THREADS 4

typedef struct {
    cairn_memtable *mt;
    const mv_op *w;
    size_t ops;
    int id;
    _Atomic uint64_t *ok, *errors;
} mv_arg;

/* Thread t inserts the ops with i % MV_THREADS == t forwards and those of
 * thread t + 1 backwards, so every op is raced by two threads. */
static void *mv_inserter(void *p)
{
    mv_arg *a = p;
    for (size_t pass = 0; pass < 2; pass++) {
        size_t part = (size_t)(a->id + (int)pass) % MV_THREADS;
        for (size_t j = 0; j < a->ops; j++) {
            size_t i = pass ? a->ops - 1 - j : j;
            if (i % MV_THREADS != part)
                continue;
            int rc = mv_insert(a->mt, &a->w[i]);
            if (rc == 0)
                atomic_fetch_add(a->ok, 1);
            else if (rc != CAIRN_EEXIST)
                atomic_fetch_add(a->errors, 1);
        }
    }
    return NULL;
}

static void test_hash_after_concurrent_inserts(void **state)
{
    (void)state;
    enum { OPS = 20000, NKEYS = 400, VMAX = 800 };
    for (int round = 0; round < 2; round++) {
        uint64_t seed = 4040 + (uint64_t)round;
        cairn_memtable *mt =
            round ? cairn_memtable_new_sized(0) : cairn_memtable_new();
        assert_non_null(mt);
        mv_op *w = mv_workload(&seed, OPS, NKEYS, VMAX);
        _Atomic uint64_t ok = 0, errors = 0;
        pthread_t t[MV_THREADS];
        mv_arg a[MV_THREADS];
        for (int i = 0; i < MV_THREADS; i++) {
            a[i] = (mv_arg){mt, w, OPS, i, &ok, &errors};
            assert_int_equal(pthread_create(&t[i], NULL, mv_inserter, &a[i]),
                             0);
        }
        for (int i = 0; i < MV_THREADS; i++)
            pthread_join(t[i], NULL);
        assert_int_equal(atomic_load(&errors), 0);
        assert_int_equal(atomic_load(&ok), cairn_memtable_count(mt));
        check_against_scan(mt, &seed, 2000, VMAX, 1000);
        cairn_memtable_unref(mt);
        free(w);
    }
}

/* ---------- hash index: racing first inserts of the same new keys ------ */

#define FRESH_THREADS 4
static pthread_barrier_t fresh_barrier;

typedef struct {
    cairn_memtable *mt;
    int id;
    uint64_t errors;
} fresh_arg;

/* Every thread inserts version id+1 of the same fresh keys in the same order,
 * meeting at a barrier every RACE_BATCH keys, so the entry of a new key is
 * often created by several threads at once (the push CAS fails and the
 * rescan must find the other thread's entry). */
static void *fresh_inserter(void *p)
{
    fresh_arg *a = p;
    for (uint64_t k = 0; k < RACE_ENTRIES; k++) {
        if (k % RACE_BATCH == 0)
            pthread_barrier_wait(&fresh_barrier);
        uint8_t key[8];
        uint64_t s = k ^ 0xF4E5;
        uint64_t h = tu_splitmix(&s);
        memcpy(key, &h, 8);
        uint64_t v = (uint64_t)a->id + 1;
        uint8_t val[256]; /* copying it widens the scan-to-push window */
        memset(val, 'f', sizeof val);
        memcpy(val, &v, 8);
        if (cairn_memtable_insert(a->mt, key, 8, v, v, CAIRN_MT_PUT, val,
                                  sizeof val))
            a->errors++;
    }
    return NULL;
}

static void test_hash_fresh_key_race(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        assert_int_equal(
            pthread_barrier_init(&fresh_barrier, NULL, FRESH_THREADS), 0);
        cairn_memtable *mt =
            round ? cairn_memtable_new_sized(0) : cairn_memtable_new();
        assert_non_null(mt);
        pthread_t t[FRESH_THREADS];
        fresh_arg a[FRESH_THREADS];
        for (int i = 0; i < FRESH_THREADS; i++) {
            a[i] = (fresh_arg){mt, i, 0};
            assert_int_equal(pthread_create(&t[i], NULL, fresh_inserter, &a[i]),
                             0);
        }
        for (int i = 0; i < FRESH_THREADS; i++) {
            pthread_join(t[i], NULL);
            assert_int_equal(a[i].errors, 0);
        }
        pthread_barrier_destroy(&fresh_barrier);
        assert_int_equal(cairn_memtable_count(mt),
                         (uint64_t)RACE_ENTRIES * FRESH_THREADS);
        uint64_t bad = 0;
        for (uint64_t k = 0; k < RACE_ENTRIES; k++) {
            uint8_t key[8];
            uint64_t s = k ^ 0xF4E5;
            uint64_t h = tu_splitmix(&s);
            memcpy(key, &h, 8);
            if (cairn_memtable_latest_version(mt, key, 8) != FRESH_THREADS)
                bad++;
            for (uint64_t v = 1; v <= FRESH_THREADS; v++) {
                cairn_mt_entry e;
                if (!cairn_memtable_get(mt, key, 8, v, UINT64_MAX, &e) ||
                    e.version != v)
                    bad++;
            }
        }
        assert_int_equal(bad, 0);
        cairn_memtable_unref(mt);
    }
}

/* ---------- hash index: hot keys, readers at a fully inserted version --- */

#define HOT_KEYS 8
#define HOT_WRITERS 3
#define HOT_READERS 2

typedef struct {
    cairn_memtable *mt;
    _Atomic uint64_t next_version; /* last version handed out */
    _Atomic uint64_t watermark;    /* every version <= it has been inserted */
    _Atomic uint8_t *done;         /* done[v]: insert of v returned */
    _Atomic bool stop;
    _Atomic uint64_t errors, wrong, gets, exact;
} hot_ctx;

/* Version v belongs to key v % HOT_KEYS, has ts v and value "v" (8 bytes). */
static void hot_key(uint64_t k, uint8_t key[4])
{
    memcpy(key, "hot", 3);
    key[3] = (uint8_t)('0' + k);
}

/* The newest version <= bound of key k (0 if none): all versions <= bound
 * are known to be there. */
static uint64_t hot_ref(uint64_t k, uint64_t bound)
{
    if (bound < k || (k == 0 && bound < HOT_KEYS))
        return 0;
    return bound - (bound - k) % HOT_KEYS;
}

static void *hot_writer(void *p)
{
    hot_ctx *c = p;
    for (;;) {
        uint64_t v = atomic_fetch_add(&c->next_version, 1) + 1;
        if (v > HOT_VERSIONS)
            break;
        uint8_t key[4];
        hot_key(v % HOT_KEYS, key);
        if (cairn_memtable_insert(c->mt, key, 4, v, v, CAIRN_MT_PUT, &v, 8))
            atomic_fetch_add(&c->errors, 1);
        atomic_store_explicit(&c->done[v], 1, memory_order_release);
        /* Advance the watermark over every finished version. */
        uint64_t w = atomic_load_explicit(&c->watermark, memory_order_acquire);
        while (w < HOT_VERSIONS &&
               atomic_load_explicit(&c->done[w + 1], memory_order_acquire)) {
            if (atomic_compare_exchange_weak_explicit(&c->watermark, &w, w + 1,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire))
                w++;
        }
    }
    return NULL;
}

static void *hot_reader(void *p)
{
    hot_ctx *c = p;
    uint64_t seed = (uint64_t)(uintptr_t)p ^ 0x5eed;
    cairn_mt_entry e;
    /* At least one get, however late the readers start. */
    while (atomic_load(&c->gets) == 0 || !atomic_load(&c->stop)) {
        uint64_t m = atomic_load_explicit(&c->watermark, memory_order_acquire);
        uint64_t k = tu_rand(&seed, HOT_KEYS);
        uint8_t key[4];
        hot_key(k, key);
        uint64_t maxv, maxts = UINT64_MAX, lo;
        switch (tu_rand(&seed, 4)) {
        case 0: /* exactly the watermark */
            maxv = lo = m;
            break;
        case 1: /* an old snapshot (often the skiplist fallback) */
            maxv = lo = tu_rand(&seed, m + 1);
            break;
        case 2: /* a timestamp bound (ts == version) */
            maxv = UINT64_MAX;
            maxts = lo = tu_rand(&seed, m + 1);
            break;
        default: /* above the watermark: racing inserts may show */
            maxv = m + tu_rand(&seed, 64);
            lo = m;
            break;
        }
        uint64_t ref = hot_ref(k, lo);
        bool exact = maxv == lo || maxts == lo;
        bool found = cairn_memtable_get(c->mt, key, 4, maxv, maxts, &e);
        uint64_t got = found ? e.version : 0;
        bool ok;
        if (exact)
            ok = got == ref;
        else
            ok = got >= ref && got <= maxv && (!found || got % HOT_KEYS == k);
        if (found) {
            uint64_t val;
            ok = ok && e.kind == CAIRN_MT_PUT && e.vlen == 8 &&
                 e.ts_us == got && e.klen == 4 && memcmp(e.key, key, 4) == 0;
            if (ok) {
                memcpy(&val, e.value, 8);
                ok = val == got;
            }
        }
        uint64_t latest = cairn_memtable_latest_version(c->mt, key, 4);
        if (latest < hot_ref(k, m) || (latest && latest % HOT_KEYS != k))
            ok = false;
        if (!ok)
            atomic_fetch_add(&c->wrong, 1);
        atomic_fetch_add(&c->gets, 1);
        if (exact)
            atomic_fetch_add(&c->exact, 1);
    }
    return NULL;
}

static void test_hash_hot_keys_concurrent(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        hot_ctx *c = calloc(1, sizeof *c);
        assert_non_null(c);
        c->done = calloc(HOT_VERSIONS + 2, sizeof *c->done);
        assert_non_null(c->done);
        c->mt = round ? cairn_memtable_new_sized(0) : cairn_memtable_new();
        assert_non_null(c->mt);
        pthread_t wt[HOT_WRITERS], rt[HOT_READERS];
        for (int i = 0; i < HOT_READERS; i++)
            assert_int_equal(pthread_create(&rt[i], NULL, hot_reader, c), 0);
        for (int i = 0; i < HOT_WRITERS; i++)
            assert_int_equal(pthread_create(&wt[i], NULL, hot_writer, c), 0);
        for (int i = 0; i < HOT_WRITERS; i++)
            pthread_join(wt[i], NULL);
        atomic_store(&c->stop, true);
        for (int i = 0; i < HOT_READERS; i++)
            pthread_join(rt[i], NULL);
        fprintf(stderr,
                "  hot keys: %d versions of %d keys, %llu gets "
                "(%llu exact)\n",
                HOT_VERSIONS, HOT_KEYS,
                (unsigned long long)atomic_load(&c->gets),
                (unsigned long long)atomic_load(&c->exact));
        assert_int_equal(atomic_load(&c->errors), 0);
        assert_int_equal(atomic_load(&c->wrong), 0);
        assert_true(atomic_load(&c->gets) > 0);
        assert_int_equal(atomic_load(&c->watermark), HOT_VERSIONS);
        assert_int_equal(cairn_memtable_count(c->mt), HOT_VERSIONS);
        /* Quiescent: every key's latest and a sweep of bounds are exact. */
        uint64_t seed = 99;
        for (uint64_t k = 0; k < HOT_KEYS; k++) {
            uint8_t key[4];
            hot_key(k, key);
            assert_int_equal(cairn_memtable_latest_version(c->mt, key, 4),
                             hot_ref(k, HOT_VERSIONS));
            for (int q = 0; q < 200; q++) {
                uint64_t b = tu_rand(&seed, HOT_VERSIONS + 10);
                cairn_mt_entry e;
                uint64_t ref = hot_ref(k, b);
                bool found =
                    cairn_memtable_get(c->mt, key, 4, b, UINT64_MAX, &e);
                assert_int_equal(found, ref != 0);
                if (found)
                    assert_int_equal(e.version, ref);
                found = cairn_memtable_get(c->mt, key, 4, UINT64_MAX, b, &e);
                assert_int_equal(found, ref != 0);
                if (found)
                    assert_int_equal(e.version, ref);
            }
        }
        check_against_scan(c->mt, &seed, 100, HOT_VERSIONS, HOT_VERSIONS);
        cairn_memtable_unref(c->mt);
        free(c->done);
        free(c);
    }
}

/* ---------- throughput (printed, not asserted) ---------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_key(uint64_t i, uint8_t key[16])
{
    uint64_t s = i;
    uint64_t a = tu_splitmix(&s), b = tu_splitmix(&s);
    memcpy(key, &a, 8);
    memcpy(key + 8, &b, 8);
}

static void test_throughput(void **state)
{
    (void)state;
    const uint64_t bench_n = tu_env_u64("CAIRN_MT_BENCH_N", BENCH_N_DEFAULT);
    /* Sized for the ~200 bytes an entry takes (CAIRN_MT_BENCH_SIZED=0: the
     * default cairn_memtable_new() index instead). */
    const bool sized = tu_env_u64("CAIRN_MT_BENCH_SIZED", 1) != 0;
    cairn_memtable *mt =
        sized ? cairn_memtable_new_sized(bench_n * 200) : cairn_memtable_new();
    assert_non_null(mt);
    uint8_t key[16], val[100];
    memset(val, 'v', sizeof val);
    double t0 = now_s();
    for (uint64_t i = 0; i < bench_n; i++) {
        bench_key(i, key);
        assert_int_equal(cairn_memtable_insert(mt, key, 16, i + 1, i,
                                               CAIRN_MT_PUT, val, sizeof val),
                         0);
    }
    double t1 = now_s();
    uint64_t seed = 4242, found = 0;
    cairn_mt_entry e;
    for (uint64_t n = 0; n < bench_n; n++) {
        uint64_t i = tu_rand(&seed, bench_n);
        bench_key(i, key);
        if (cairn_memtable_get(mt, key, 16, UINT64_MAX, UINT64_MAX, &e) &&
            e.version == i + 1)
            found++;
    }
    double t2 = now_s();
    fprintf(stderr,
            "  throughput (%llu entries, 16B keys, 100B values, 1 thread): "
            "insert %.0f/s, get %.0f/s, arena %.1f MiB\n",
            (unsigned long long)bench_n, (double)bench_n / (t1 - t0),
            (double)bench_n / (t2 - t1),
            (double)cairn_memtable_memory(mt) / (1 << 20));
    assert_int_equal(found, bench_n);
    assert_int_equal(cairn_memtable_count(mt), bench_n);
    cairn_memtable_unref(mt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_random),
        cmocka_unit_test(test_get_semantics),
        cmocka_unit_test(test_latest_and_duplicates),
        cmocka_unit_test(test_large_value),
        cmocka_unit_test(test_seek),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_concurrent_insert_read),
        cmocka_unit_test(test_concurrent_duplicates),
        cmocka_unit_test(test_hash_matches_scan),
        cmocka_unit_test(test_insert_batch),
        cmocka_unit_test(test_hash_memory),
        cmocka_unit_test(test_hash_after_concurrent_inserts),
        cmocka_unit_test(test_hash_fresh_key_race),
        cmocka_unit_test(test_hash_hot_keys_concurrent),
        cmocka_unit_test(test_block_pool),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
