/*
 * test_block_cache.c — the block cache (src/cache/block_cache.c): a sharded
 * CLOCK cache of refcounted blocks keyed by (file_id, offset).
 *
 *  - Single-threaded cases on hand-made sequences: insert/lookup/release
 *    round trip and NULL handling; exact hit/miss/insert/eviction/entries/
 *    usage counters; eviction order (CLOCK: a touched entry outlives older
 *    ones); the byte budget (usage <= capacity after every unpinned insert,
 *    and back to 0 once every file is erased); pinned entries surviving
 *    eviction, erase
 *    and replacement and being freed exactly once, by their last release;
 *    replace; erase_file; erase_blocks; set_capacity shrink/zero/grow; oversize entries
 *    (dropped at once without a handle, pinned then freed on release with
 *    one); hash table growth; free_fn calling back into the cache (it must
 *    not run under the shard lock, or this would self-deadlock); the same
 *    cases with the entries embedded in their blocks (insert_at).
 *  - Every block records the id of its insert; free_fn counts frees per id,
 *    so each test checks "freed exactly once, and only when expected", and
 *    that all frees == all inserts at the end (ASan checks the memory side).
 *  - Stress: 8 threads doing random lookups / inserts (pinned or not) /
 *    releases / erase_file / set_capacity over 4 files x 32 offsets with a
 *    small capacity, holding up to 4 handles each; every block carries a
 *    pattern derived from its key and a per-insert seed, verified while
 *    pinned. Thread bodies only count failures; the main thread asserts.
 *    CAIRN_BC_STRESS_OPS sets the operations per thread (default 200000,
 *    60000 under TSan).
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

#include "cache/block_cache.h"
#include "cairn.h"
#include "test_util.h"

#if defined(__SANITIZE_THREAD__)
#define STRESS_OPS_DEFAULT 60000
#else
#define STRESS_OPS_DEFAULT 200000
#endif

#define MAX_IDS 65536
#define BLOCK_MAGIC 0xB10CCA4EB10CCA4Eull
#define DEAD_MAGIC 0xDEADDEADDEADDEADull

/* ---------- test blocks and free accounting ---------- */

typedef struct tblock {
    uint64_t magic;
    uint64_t id; /* insert number: index into g_freed (if < MAX_IDS) */
    uint64_t file_id;
    uint64_t off;
    uint64_t seed; /* per insert: the payload derives from key and seed */
    size_t len;
    uint8_t payload[];
} tblock;

static _Atomic uint64_t g_inserted; /* insert calls (each hands over data) */
static _Atomic uint64_t g_freed_total;
static _Atomic uint32_t g_freed[MAX_IDS];
static _Atomic uint64_t g_next_id;

/* Set by the re-entrancy test: free_fn looks this key up in this cache. */
static cairn_block_cache *g_reenter_cache;
static _Atomic uint64_t g_reenter_calls;

static void reset_counts(void)
{
    atomic_store(&g_inserted, 0);
    atomic_store(&g_freed_total, 0);
    atomic_store(&g_next_id, 0);
    for (size_t i = 0; i < MAX_IDS; i++)
        atomic_store(&g_freed[i], 0);
    g_reenter_cache = NULL;
    atomic_store(&g_reenter_calls, 0);
}

static inline uint8_t pattern_byte(const tblock *b, size_t i)
{
    uint64_t k = b->seed ^ (b->file_id * 0x9E3779B97F4A7C15ull) ^ b->off;
    return (uint8_t)((k >> ((i & 7) * 8)) + i * 31);
}

/* Every block has room for an embedded cache entry behind its payload
 * (cairn_block_cache_insert_at), used when g_embed is set. */
static bool g_embed;

static size_t room_off(size_t len)
{
    return (sizeof(tblock) + len + 7) & ~(size_t)7;
}

static void *room_of(tblock *b)
{
    return (uint8_t *)b + room_off(b->len);
}

static tblock *mk_block(uint64_t file_id, uint64_t off, size_t len,
                        uint64_t seed)
{
    tblock *b = malloc(room_off(len) + CAIRN_BLOCK_CACHE_ENTRY_SIZE);
    if (!b)
        return NULL;
    b->magic = BLOCK_MAGIC;
    b->id = atomic_fetch_add(&g_next_id, 1);
    b->file_id = file_id;
    b->off = off;
    b->seed = seed;
    b->len = len;
    for (size_t i = 0; i < len; i++)
        b->payload[i] = pattern_byte(b, i);
    return b;
}

/* True if b is a live block of (file_id, off) with an intact pattern. */
static bool block_ok(const tblock *b, uint64_t file_id, uint64_t off)
{
    if (!b || b->magic != BLOCK_MAGIC || b->file_id != file_id ||
        b->off != off)
        return false;
    for (size_t i = 0; i < b->len; i++) {
        if (b->payload[i] != pattern_byte(b, i))
            return false;
    }
    return true;
}

static void t_free(void *p)
{
    tblock *b = p;
    if (g_reenter_cache) {
        /* Would self-deadlock if free_fn ran under the shard lock. */
        cairn_cache_handle *h =
            cairn_block_cache_lookup(g_reenter_cache, b->file_id, b->off);
        cairn_block_cache_release(g_reenter_cache, h);
        atomic_fetch_add(&g_reenter_calls, 1);
    }
    if (b->id < MAX_IDS)
        atomic_fetch_add(&g_freed[b->id], 1);
    atomic_fetch_add(&g_freed_total, 1);
    size_t total = sizeof *b + b->len;
    memset(b, 0xdd, total);
    b->magic = DEAD_MAGIC;
    free(b);
}

/* Inserts a fresh block of len bytes (charge = len unless charge != 0);
 * returns its id. */
static uint64_t ins(cairn_block_cache *c, uint64_t file_id, uint64_t off,
                    size_t charge, cairn_cache_handle **out)
{
    tblock *b = mk_block(file_id, off, 16, off * 7 + file_id);
    assert_non_null(b);
    uint64_t id = b->id;
    atomic_fetch_add(&g_inserted, 1);
    if (g_embed)
        assert_int_equal(cairn_block_cache_insert_at(c, file_id, off, b,
                                                     charge, t_free,
                                                     room_of(b), out),
                         0);
    else
        assert_int_equal(
            cairn_block_cache_insert(c, file_id, off, b, charge, t_free, out),
            0);
    if (out) {
        assert_non_null(*out);
        assert_ptr_equal(cairn_cache_handle_data(*out), b);
        assert_int_equal(cairn_cache_handle_charge(*out), charge);
    }
    return id;
}

static uint32_t freed(uint64_t id)
{
    return atomic_load(&g_freed[id]);
}

static cairn_block_cache_stats stats(cairn_block_cache *c)
{
    cairn_block_cache_stats s;
    cairn_block_cache_get_stats(c, &s);
    return s;
}

/* True if (file_id, off) is cached; checks the data and releases. */
static bool present(cairn_block_cache *c, uint64_t file_id, uint64_t off)
{
    cairn_cache_handle *h = cairn_block_cache_lookup(c, file_id, off);
    if (!h)
        return false;
    assert_true(block_ok(cairn_cache_handle_data(h), file_id, off));
    cairn_block_cache_release(c, h);
    return true;
}

/* Frees the cache and checks every inserted block was freed exactly once. */
static void finish(cairn_block_cache *c)
{
    cairn_block_cache_free(c);
    assert_int_equal(atomic_load(&g_freed_total), atomic_load(&g_inserted));
    uint64_t n = atomic_load(&g_next_id);
    for (uint64_t i = 0; i < n && i < MAX_IDS; i++)
        assert_int_equal(freed(i), 1);
}

/* ---------- single-threaded cases ---------- */

static void test_roundtrip(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new(1 << 20, 0);
    assert_non_null(c);

    cairn_cache_handle *h = NULL;
    uint64_t id = ins(c, 1, 4096, 100, &h);
    assert_true(block_ok(cairn_cache_handle_data(h), 1, 4096));
    cairn_block_cache_release(c, h);
    assert_int_equal(freed(id), 0);

    cairn_cache_handle *h2 = cairn_block_cache_lookup(c, 1, 4096);
    assert_non_null(h2);
    assert_ptr_equal(h2, h);
    tblock *b = cairn_cache_handle_data(h2);
    assert_int_equal(b->id, id);
    assert_true(block_ok(b, 1, 4096));
    assert_int_equal(cairn_cache_handle_charge(h2), 100);
    cairn_block_cache_release(c, h2);

    assert_null(cairn_block_cache_lookup(c, 1, 8192));
    assert_null(cairn_block_cache_lookup(c, 2, 4096));
    assert_null(cairn_block_cache_lookup(c, 4096, 1));

    /* NULL arguments are harmless. */
    cairn_block_cache_release(c, NULL);
    cairn_block_cache_release(NULL, NULL);
    assert_null(cairn_block_cache_lookup(NULL, 1, 4096));
    cairn_block_cache_free(NULL);
    assert_null(cairn_cache_handle_data(NULL));

    /* Insert without a handle; the cache owns the data. */
    uint64_t id2 = ins(c, 2, 0, 50, NULL);
    assert_true(present(c, 2, 0));
    assert_int_equal(freed(id2), 0);

    cairn_block_cache_stats s = stats(c);
    assert_int_equal(s.capacity, 1 << 20);
    assert_int_equal(s.usage, 150);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.hits, 2);
    assert_int_equal(s.misses, 3);
    assert_int_equal(s.inserts, 2);
    assert_int_equal(s.evictions, 0);
    finish(c);
}

static void test_counters(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new(1000, 1);
    assert_non_null(c);
    for (uint64_t i = 0; i < 10; i++)
        ins(c, 1, i, 100, NULL);
    cairn_block_cache_stats s = stats(c);
    assert_int_equal(s.entries, 10);
    assert_int_equal(s.usage, 1000);
    assert_int_equal(s.inserts, 10);
    assert_int_equal(s.evictions, 0);

    ins(c, 1, 10, 100, NULL);
    ins(c, 1, 11, 250, NULL); /* evicts 3 more (1, 2, 3) */
    s = stats(c);
    assert_int_equal(s.inserts, 12);
    assert_int_equal(s.evictions, 4);
    assert_int_equal(s.entries, 8);
    assert_int_equal(s.usage, 950);
    for (uint64_t i = 0; i < 4; i++)
        assert_int_equal(freed(i), 1);
    for (uint64_t i = 4; i < 12; i++)
        assert_int_equal(freed(i), 0);

    for (uint64_t i = 0; i < 12; i++)
        assert_int_equal(present(c, 1, i), i >= 4);
    s = stats(c);
    assert_int_equal(s.hits, 8);
    assert_int_equal(s.misses, 4);
    assert_int_equal(s.evictions, 4);
    finish(c);
}

static void test_clock_order(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new(400, 1);
    assert_non_null(c);
    uint64_t k[8];
    for (int i = 0; i < 4; i++)
        k[i] = ins(c, 3, (uint64_t)i, 100, NULL);
    /* Front (evicted first) -> back: 0 1 2 3. Touch 0: it is passed over
     * once, to the back: 1 2 3 0. */
    assert_true(present(c, 3, 0));
    k[4] = ins(c, 3, 4, 100, NULL); /* evicts 1: 2 3 0 4 */
    assert_int_equal(freed(k[1]), 1);
    assert_int_equal(freed(k[0]), 0);
    k[5] = ins(c, 3, 5, 100, NULL); /* evicts 2: 3 0 4 5 */
    assert_int_equal(freed(k[2]), 1);
    assert_int_equal(freed(k[3]), 0);
    /* Touch 3 then 0: 4 5 3 0. */
    assert_true(present(c, 3, 3));
    assert_true(present(c, 3, 0));
    k[6] = ins(c, 3, 6, 100, NULL); /* evicts 4: 5 3 0 6 */
    assert_int_equal(freed(k[4]), 1);
    k[7] = ins(c, 3, 7, 150, NULL); /* evicts 5 and 3: 0 6 7 */
    assert_int_equal(freed(k[5]), 1);
    assert_int_equal(freed(k[3]), 1);
    assert_int_equal(freed(k[0]), 0);
    assert_int_equal(freed(k[6]), 0);
    assert_false(present(c, 3, 1));
    assert_false(present(c, 3, 3));
    assert_true(present(c, 3, 0));
    assert_true(present(c, 3, 6));
    assert_true(present(c, 3, 7));
    assert_int_equal(stats(c).usage, 350);
    assert_int_equal(stats(c).evictions, 5);

    /* A held handle: eviction passes over a pinned entry (to the back). */
    cairn_cache_handle *h = cairn_block_cache_lookup(c, 3, 0); /* 6 7 | 0 */
    assert_non_null(h);
    ins(c, 3, 8, 100, NULL); /* 6 7 8 + pinned 0: 450 > 400, evicts 6 */
    assert_int_equal(freed(k[6]), 1);
    cairn_block_cache_release(c, h); /* 7 8 0 */
    assert_int_equal(freed(k[0]), 0);
    ins(c, 3, 9, 100, NULL); /* evicts 7 */
    assert_int_equal(freed(k[7]), 1);
    assert_true(present(c, 3, 0));
    finish(c);
}

static void test_budget(void **state)
{
    reset_counts();
    const size_t cap = 64 * 1024;
    cairn_block_cache *c = cairn_block_cache_new(cap, 16);
    assert_non_null(c);
    uint64_t rs = 42;
    uint64_t charged = 0;
    for (int i = 0; i < 5000; i++) {
        uint64_t f = 1 + tu_rand(&rs, 8);
        uint64_t off = tu_rand(&rs, 512) * 4096;
        size_t charge = 1 + (size_t)tu_rand(&rs, 4096);
        charged += charge;
        ins(c, f, off, charge, NULL);
        cairn_block_cache_stats s = stats(c);
        assert_true(s.usage <= cap);
        if (i % 7 == 0)
            (void)present(c, f, tu_rand(&rs, 512) * 4096);
    }
    cairn_block_cache_stats s = stats(c);
    assert_true(s.evictions > 0);
    assert_true(s.usage > cap / 2); /* it does hold data */
    assert_true(charged > 10 * cap);
    for (uint64_t f = 1; f <= 8; f++)
        cairn_block_cache_erase_file(c, f);
    s = stats(c);
    assert_int_equal(s.usage, 0);
    assert_int_equal(s.entries, 0);
    assert_int_equal(atomic_load(&g_freed_total), atomic_load(&g_inserted));
    finish(c);
}

static void test_pinned(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new(300, 1);
    assert_non_null(c);

    cairn_cache_handle *ha = NULL;
    uint64_t a = ins(c, 7, 0, 100, &ha);
    /* A second pin on the same entry. */
    cairn_cache_handle *ha2 = cairn_block_cache_lookup(c, 7, 0);
    assert_ptr_equal(ha2, ha);

    for (uint64_t i = 0; i < 20; i++)
        ins(c, 1, i, 100, NULL);
    assert_int_equal(freed(a), 0);
    cairn_block_cache_stats s = stats(c);
    assert_int_equal(s.usage, 300);
    assert_int_equal(s.evictions, 18);
    cairn_block_cache_release(c, ha2); /* still pinned by ha */
    for (uint64_t i = 20; i < 30; i++)
        ins(c, 1, i, 100, NULL);
    assert_int_equal(freed(a), 0);
    assert_true(block_ok(cairn_cache_handle_data(ha), 7, 0));

    /* Fill the shard with pins: usage may pass capacity; unpinned inserts
     * then go at once. */
    cairn_cache_handle *hb = NULL, *hc = NULL, *he = NULL;
    uint64_t b = ins(c, 7, 1, 100, &hb);
    uint64_t cc = ins(c, 8, 0, 100, &hc);
    s = stats(c);
    assert_int_equal(s.usage, 300);
    assert_int_equal(s.entries, 3);
    uint64_t d = ins(c, 1, 100, 100, NULL);
    assert_int_equal(freed(d), 1);
    assert_false(present(c, 1, 100));
    uint64_t e = ins(c, 8, 1, 100, &he);
    s = stats(c);
    assert_int_equal(s.usage, 400);
    assert_int_equal(s.entries, 4);
    uint64_t ev_before = s.evictions;

    /* Erase file 7 while a and b are pinned: gone from the cache, still
     * readable through the handles, not freed. */
    cairn_block_cache_erase_file(c, 7);
    assert_false(present(c, 7, 0));
    assert_false(present(c, 7, 1));
    assert_int_equal(freed(a), 0);
    assert_int_equal(freed(b), 0);
    assert_true(block_ok(cairn_cache_handle_data(ha), 7, 0));
    assert_true(block_ok(cairn_cache_handle_data(hb), 7, 1));
    s = stats(c);
    assert_int_equal(s.entries, 2);
    assert_int_equal(s.usage, 400); /* pinned erased entries still count */

    cairn_block_cache_release(c, ha);
    assert_int_equal(freed(a), 1);
    assert_int_equal(stats(c).usage, 300);
    cairn_block_cache_release(c, hb);
    assert_int_equal(freed(b), 1);
    assert_int_equal(stats(c).usage, 200);

    /* Released in-cache entries become evictable again. */
    cairn_block_cache_release(c, hc);
    cairn_block_cache_release(c, he);
    assert_int_equal(freed(cc), 0);
    assert_int_equal(freed(e), 0);
    assert_int_equal(stats(c).evictions, ev_before);
    ins(c, 1, 200, 100, NULL);
    ins(c, 1, 201, 100, NULL); /* evicts cc (released first) */
    assert_int_equal(freed(cc), 1);
    assert_int_equal(freed(e), 0);
    assert_true(present(c, 8, 1));
    assert_int_equal(stats(c).usage, 300);
    finish(c);
}

static void test_replace(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new(1000, 1);
    assert_non_null(c);
    uint64_t a = ins(c, 1, 0, 100, NULL);
    uint64_t b = ins(c, 1, 0, 200, NULL);
    assert_int_equal(freed(a), 1); /* unpinned: freed at once */
    cairn_block_cache_stats s = stats(c);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.usage, 200);
    assert_int_equal(s.inserts, 2);
    assert_int_equal(s.evictions, 0);

    cairn_cache_handle *h = cairn_block_cache_lookup(c, 1, 0);
    assert_non_null(h);
    assert_int_equal(((tblock *)cairn_cache_handle_data(h))->id, b);

    /* Replace while the old one is pinned. */
    cairn_cache_handle *hn = NULL;
    uint64_t d = ins(c, 1, 0, 50, &hn);
    assert_int_equal(freed(b), 0);
    s = stats(c);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.usage, 250);
    cairn_cache_handle *h3 = cairn_block_cache_lookup(c, 1, 0);
    assert_ptr_equal(h3, hn);
    assert_int_equal(((tblock *)cairn_cache_handle_data(h3))->id, d);
    assert_true(block_ok(cairn_cache_handle_data(h), 1, 0));
    assert_int_equal(((tblock *)cairn_cache_handle_data(h))->id, b);
    cairn_block_cache_release(c, h);
    assert_int_equal(freed(b), 1);
    assert_int_equal(stats(c).usage, 50);

    /* Replace the pinned new one too, then release both its handles. */
    uint64_t e = ins(c, 1, 0, 60, NULL);
    assert_int_equal(freed(d), 0);
    cairn_block_cache_release(c, h3);
    assert_int_equal(freed(d), 0);
    cairn_block_cache_release(c, hn);
    assert_int_equal(freed(d), 1);
    assert_int_equal(freed(e), 0);
    s = stats(c);
    assert_int_equal(s.usage, 60);
    assert_int_equal(s.entries, 1);
    finish(c);
}

static void test_erase_file(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new(1 << 20, 8);
    assert_non_null(c);
    uint64_t ids[4][100];
    for (uint64_t f = 1; f <= 3; f++)
        for (uint64_t o = 0; o < 100; o++)
            ids[f][o] = ins(c, f, o * 4096, 10, NULL);
    cairn_block_cache_erase_file(c, 2);
    cairn_block_cache_erase_file(c, 99); /* no such file: no-op */
    cairn_block_cache_stats s = stats(c);
    assert_int_equal(s.entries, 200);
    assert_int_equal(s.usage, 2000);
    assert_int_equal(s.evictions, 0);
    for (uint64_t f = 1; f <= 3; f++) {
        for (uint64_t o = 0; o < 100; o++) {
            assert_int_equal(freed(ids[f][o]), f == 2);
            assert_int_equal(present(c, f, o * 4096), f != 2);
        }
    }
    /* The file's keys can be cached again. */
    ins(c, 2, 0, 10, NULL);
    assert_true(present(c, 2, 0));
    finish(c);
}

static void test_erase_blocks(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new(1 << 20, 8);
    assert_non_null(c);
    uint64_t ids[3][10];
    for (uint64_t f = 1; f <= 2; f++)
        for (uint64_t o = 0; o < 10; o++)
            ids[f][o] = ins(c, f, o * 4096, 10, NULL);
    /* A pinned block of the file: erased, freed at its release. */
    cairn_cache_handle *h = cairn_block_cache_lookup(c, 1, 2 * 4096);
    assert_non_null(h);
    /* Even offsets of file 1, one offset it never had, none of file 2. */
    uint64_t offs[] = {0, 2 * 4096, 4 * 4096, 6 * 4096, 8 * 4096, 12345};
    cairn_block_cache_erase_blocks(c, 1, offs, 6);
    cairn_block_cache_erase_blocks(c, 3, offs, 6); /* no such file */
    cairn_block_cache_erase_blocks(c, 1, NULL, 0);
    for (uint64_t f = 1; f <= 2; f++) {
        for (uint64_t o = 0; o < 10; o++) {
            bool gone = f == 1 && o % 2 == 0;
            assert_int_equal(present(c, f, o * 4096), !gone);
            assert_int_equal(freed(ids[f][o]), gone && o != 2);
        }
    }
    cairn_block_cache_stats s = stats(c);
    assert_int_equal(s.entries, 15);
    assert_int_equal(s.usage, 160); /* the pinned one still counts */
    cairn_block_cache_release(c, h);
    assert_int_equal(freed(ids[1][2]), 1);
    s = stats(c);
    assert_int_equal(s.usage, 150);
    assert_int_equal(s.evictions, 0);
    finish(c);
}

static void test_set_capacity(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new(10000, 4);
    assert_non_null(c);
    for (uint64_t i = 0; i < 200; i++)
        ins(c, 1, i, 100, NULL);
    cairn_block_cache_stats s = stats(c);
    assert_true(s.usage <= 10000);
    assert_true(s.usage >= 8000);
    uint64_t ev = s.evictions;

    cairn_block_cache_set_capacity(c, 3000);
    s = stats(c);
    assert_int_equal(s.capacity, 3000);
    assert_true(s.usage <= 3000);
    assert_true(s.evictions > ev);
    assert_int_equal(s.usage, s.entries * 100);

    /* Zero: everything unpinned goes; a pinned entry stays until release. */
    cairn_cache_handle *h = NULL;
    uint64_t p = ins(c, 2, 0, 100, &h);
    cairn_block_cache_set_capacity(c, 0);
    s = stats(c);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.usage, 100);
    assert_int_equal(freed(p), 0);
    assert_true(present(c, 2, 0)); /* a pinned entry can be shared */
    cairn_block_cache_release(c, h);
    assert_int_equal(freed(p), 1);
    s = stats(c);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.usage, 0);

    /* Grow back: entries are kept again. */
    cairn_block_cache_set_capacity(c, 10000);
    ins(c, 3, 0, 100, NULL);
    assert_true(present(c, 3, 0));
    assert_int_equal(stats(c).capacity, 10000);
    finish(c);
}

static void test_oversize(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new(400, 1);
    assert_non_null(c);
    uint64_t k0 = ins(c, 1, 0, 100, NULL);

    /* Without a handle: dropped at once, nothing else disturbed. */
    uint64_t big = ins(c, 1, 1, 500, NULL);
    assert_int_equal(freed(big), 1);
    assert_false(present(c, 1, 1));
    assert_true(present(c, 1, 0));
    cairn_block_cache_stats s = stats(c);
    assert_int_equal(s.inserts, 1);
    assert_int_equal(s.entries, 1);
    assert_int_equal(s.usage, 100);

    /* An oversize insert under an existing key drops the old entry too. */
    uint64_t big2 = ins(c, 1, 0, 401, NULL);
    assert_int_equal(freed(big2), 1);
    assert_int_equal(freed(k0), 1);
    assert_false(present(c, 1, 0));
    assert_int_equal(stats(c).usage, 0);

    /* With a handle: inserted and pinned, shared by lookups while pinned,
     * freed by the last release. */
    uint64_t k2 = ins(c, 1, 2, 100, NULL);
    uint64_t k3 = ins(c, 1, 3, 100, NULL);
    cairn_cache_handle *h = NULL;
    uint64_t big3 = ins(c, 1, 4, 500, &h);
    assert_int_equal(freed(k2), 1); /* budget: unpinned ones evicted */
    assert_int_equal(freed(k3), 1);
    cairn_cache_handle *h2 = cairn_block_cache_lookup(c, 1, 4);
    assert_ptr_equal(h2, h);
    s = stats(c);
    assert_int_equal(s.usage, 500);
    assert_int_equal(s.entries, 1);
    cairn_block_cache_release(c, h2);
    assert_int_equal(freed(big3), 0);
    assert_true(block_ok(cairn_cache_handle_data(h), 1, 4));
    cairn_block_cache_release(c, h);
    assert_int_equal(freed(big3), 1);
    assert_false(present(c, 1, 4));
    s = stats(c);
    assert_int_equal(s.usage, 0);
    assert_int_equal(s.entries, 0);

    /* A capacity-sized entry fits. */
    ins(c, 1, 5, 400, NULL);
    assert_true(present(c, 1, 5));
    finish(c);
}

static void test_table_growth(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new((size_t)1 << 40, 2);
    assert_non_null(c);
    const uint64_t n = 20000;
    for (uint64_t i = 0; i < n; i++)
        ins(c, i % 5, i * 4096, 1, NULL);
    assert_int_equal(stats(c).entries, n);
    for (uint64_t i = 0; i < n; i++)
        assert_true(present(c, i % 5, i * 4096));
    assert_false(present(c, 0, 4096)); /* 1 % 5 != 0 */
    cairn_block_cache_erase_file(c, 3);
    assert_int_equal(stats(c).entries, n - n / 5);
    for (uint64_t i = 0; i < n; i += 97)
        assert_int_equal(present(c, i % 5, i * 4096), i % 5 != 3);
    assert_int_equal(stats(c).evictions, 0);
    finish(c);
}

static void test_free_fn_reenters(void **state)
{
    reset_counts();
    cairn_block_cache *c = cairn_block_cache_new(200, 1);
    assert_non_null(c);
    g_reenter_cache = c;
    ins(c, 1, 0, 100, NULL);
    ins(c, 1, 1, 100, NULL);
    ins(c, 1, 2, 100, NULL); /* eviction */
    ins(c, 1, 2, 100, NULL); /* replace */
    cairn_cache_handle *h = NULL;
    ins(c, 2, 0, 100, &h);
    cairn_block_cache_erase_file(c, 2); /* detached while pinned */
    cairn_block_cache_release(c, h);    /* last release frees */
    cairn_block_cache_erase_file(c, 1); /* erase */
    ins(c, 1, 3, 100, NULL);
    cairn_block_cache_set_capacity(c, 0); /* shrink */
    ins(c, 1, 4, 500, NULL);              /* oversize drop */
    assert_int_equal(atomic_load(&g_reenter_calls), 7);
    assert_int_equal(atomic_load(&g_freed_total), 7);
    g_reenter_cache = NULL;
    finish(c);
}

/* ---------- multi-threaded stress ---------- */

#define ST_THREADS 8
#define ST_FILES 4
#define ST_OFFS 32
#define ST_HELD 4

typedef struct {
    cairn_block_cache *c;
    uint64_t seed;
    uint64_t ops;
    uint64_t failures; /* written by the thread, read after join */
    uint64_t hits;
} stress_arg;

static size_t st_len(uint64_t f, uint64_t o)
{
    return 64 + (size_t)((f * 131 + o * 17) % 448);
}

static bool st_check(cairn_cache_handle *h, uint64_t f, uint64_t o)
{
    tblock *b = cairn_cache_handle_data(h);
    return block_ok(b, f, o) && b->len == st_len(f, o) &&
           cairn_cache_handle_charge(h) == b->len;
}

static void *stress_thread(void *p)
{
    stress_arg *a = p;
    uint64_t rs = a->seed;
    cairn_cache_handle *held[ST_HELD] = {0};
    uint64_t held_f[ST_HELD], held_o[ST_HELD];

    for (uint64_t n = 0; n < a->ops; n++) {
        uint64_t r = tu_rand(&rs, 1000);
        uint64_t f = 1 + tu_rand(&rs, ST_FILES);
        uint64_t o = tu_rand(&rs, ST_OFFS) * 4096;
        int slot = (int)tu_rand(&rs, ST_HELD);
        cairn_cache_handle *h = NULL;

        if (r < 500) { /* lookup */
            h = cairn_block_cache_lookup(a->c, f, o);
            if (h) {
                a->hits++;
                if (!st_check(h, f, o))
                    a->failures++;
            }
        } else if (r < 850) { /* insert, pinned 1 in 3 */
            tblock *b = mk_block(f, o, st_len(f, o), tu_splitmix(&rs));
            if (!b) {
                a->failures++;
                continue;
            }
            atomic_fetch_add(&g_inserted, 1);
            bool pin = tu_rand(&rs, 3) == 0;
            /* Half the entries embedded in their blocks. */
            int rc = tu_rand(&rs, 2)
                         ? cairn_block_cache_insert_at(a->c, f, o, b, b->len,
                                                       t_free, room_of(b),
                                                       pin ? &h : NULL)
                         : cairn_block_cache_insert(a->c, f, o, b, b->len,
                                                    t_free, pin ? &h : NULL);
            if (rc != 0 || (pin && !h))
                a->failures++;
            if (h && !st_check(h, f, o))
                a->failures++;
        } else if (r < 860) {
            cairn_block_cache_erase_file(a->c, f);
        } else if (r < 862) {
            cairn_block_cache_set_capacity(a->c,
                                           2048 + (size_t)tu_rand(&rs, 16384));
        } else if (held[slot]) { /* release a held handle */
            if (!st_check(held[slot], held_f[slot], held_o[slot]))
                a->failures++;
            cairn_block_cache_release(a->c, held[slot]);
            held[slot] = NULL;
        }

        if (h) {
            /* Keep it for a while, or release it now. */
            if (!held[slot] && tu_rand(&rs, 4) == 0) {
                held[slot] = h;
                held_f[slot] = f;
                held_o[slot] = o;
            } else {
                cairn_block_cache_release(a->c, h);
            }
        }
        if ((n & 63) == 0) {
            for (int i = 0; i < ST_HELD; i++) {
                if (held[i] && !st_check(held[i], held_f[i], held_o[i]))
                    a->failures++;
            }
        }
    }
    for (int i = 0; i < ST_HELD; i++) {
        if (held[i]) {
            if (!st_check(held[i], held_f[i], held_o[i]))
                a->failures++;
            cairn_block_cache_release(a->c, held[i]);
        }
    }
    return NULL;
}

/* The cases above again with every entry embedded in its block
 * (insert_at): the block's free_fn frees the entry with it, so ASan sees
 * any use of an entry after its block was freed. */
static void test_embedded(void **state)
{
    g_embed = true;
    test_roundtrip(state);
    test_budget(state);
    test_pinned(state);
    test_replace(state);
    test_erase_file(state);
    test_set_capacity(state);
    test_oversize(state);
    test_free_fn_reenters(state);
    g_embed = false;
}

static void test_stress(void **state)
{
    reset_counts();
    const size_t cap = 8192;
    cairn_block_cache *c = cairn_block_cache_new(cap, 4);
    assert_non_null(c);
    uint64_t ops = tu_env_u64("CAIRN_BC_STRESS_OPS", STRESS_OPS_DEFAULT);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    stress_arg args[ST_THREADS];
    pthread_t th[ST_THREADS];
    for (int i = 0; i < ST_THREADS; i++) {
        args[i] = (stress_arg){.c = c, .seed = 1000 + (uint64_t)i, .ops = ops};
        assert_int_equal(pthread_create(&th[i], NULL, stress_thread, &args[i]),
                         0);
    }
    /* Lock-free stats reads race with the workers (TSan checks them). */
    /* Each counter is monotonic, so the sums are too. */
    uint64_t bad_polls = 0;
    cairn_block_cache_stats prev = stats(c);
    for (int i = 0; i < 2000; i++) {
        cairn_block_cache_stats s = stats(c);
        bad_polls += s.hits < prev.hits || s.misses < prev.misses ||
                     s.inserts < prev.inserts || s.evictions < prev.evictions;
        prev = s;
    }
    assert_int_equal(bad_polls, 0);
    uint64_t failures = 0, hits = 0;
    for (int i = 0; i < ST_THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        failures += args[i].failures;
        hits += args[i].hits;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(failures, 0);

    cairn_block_cache_stats s = stats(c);
    assert_true(s.hits == hits);
    assert_true(s.hits > 0 && s.misses > 0 && s.evictions > 0);
    /* Nothing pinned any more: within budget. */
    assert_true(s.usage <= s.capacity);
    assert_true(s.entries <= (uint64_t)ST_FILES * ST_OFFS);
    /* Accounting is exact: erasing every file empties the cache. */
    for (uint64_t f = 1; f <= ST_FILES; f++)
        cairn_block_cache_erase_file(c, f);
    s = stats(c);
    assert_int_equal(s.usage, 0);
    assert_int_equal(s.entries, 0);
    assert_int_equal(atomic_load(&g_freed_total), atomic_load(&g_inserted));
    cairn_block_cache_free(c);
    assert_int_equal(atomic_load(&g_freed_total), atomic_load(&g_inserted));
    assert_true(atomic_load(&g_inserted) > ops); /* it did insert */
    fprintf(stderr,
            "block cache stress: %d threads x %llu ops in %.2f s "
            "(%llu inserts, %llu hits, %llu misses, %llu evictions)\n",
            ST_THREADS, (unsigned long long)ops,
            (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
            (unsigned long long)atomic_load(&g_inserted),
            (unsigned long long)s.hits, (unsigned long long)s.misses,
            (unsigned long long)s.evictions);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_clock_order),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_pinned),
        cmocka_unit_test(test_replace),
        cmocka_unit_test(test_erase_file),
        cmocka_unit_test(test_erase_blocks),
        cmocka_unit_test(test_set_capacity),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_table_growth),
        cmocka_unit_test(test_free_fn_reenters),
        cmocka_unit_test(test_embedded),
        cmocka_unit_test(test_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
