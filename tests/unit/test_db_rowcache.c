/*
 * test_db_rowcache.c — the row cache inside the engine: every answer it
 * gives must be what the tables would give at the reader's snapshot.
 *
 *  - Basics: a key in the memtable is read there, the cache untouched; in
 *    a sorted file, a second read is a hit; overwrites and deletes are
 *    seen at once; absent keys are cached too; transactions and reads as of a
 *    version or time use entries at or below their snapshot and read the
 *    tables for older ones; a read-only transaction's snapshot holds while
 *    the cache moves on; cairn_set_cache_sizes turns the row cache off and
 *    on and resizes the block cache; stats.
 *  - The gate: a thread whose lookups miss bypasses the cache for most
 *    reads (still exact), comes back on a hot set; never bypassed with
 *    row_cache_consult_all.
 *  - Flush offers: a flush puts each key's newest state in the cache
 *    while it has room (never evicting); a newer version is read from the
 *    memtable while the older entry stays, until its flush supersedes it.
 *  - The races, made to happen with the engine's test hooks: (1) a read
 *    that read the old version from the tables, then a commit of the key
 *    and its flush (which supersedes the key's entry) before the read
 *    inserts: the insert must be refused; (2) a read whose snapshot
 *    predates a commit that is applied but not yet published: it answers
 *    with the old version and must not cache the new one; a cached older
 *    state stays until the flush. Both through cairn_get and
 *    cairn_txn_get.
 *  - Versions the tables no longer know: after a full compaction with no
 *    history window a key's version is zeroed (or a deleted key has no
 *    version left); a read-only transaction holding an older view must
 *    still read its own snapshot, not the cached newer state.
 *  - A model run: writer threads (puts, deletes, batches, read-modify-write
 *    transactions) and reader threads (cairn_get, read-only and read-write
 *    transactions, reads as of a version and as of a time) over 48 keys
 *    with a 24 KiB row cache (evictions all the time), a 256 KiB memtable
 *    (flushes and compactions) and a thread changing the cache budgets
 *    (off and on again). Each key's committed writes are logged (version,
 *    sequence, put or delete) under the key's mutex, which its writers hold
 *    through commit and log; a reader checks a read after it by taking that
 *    mutex, so the log then holds every version <= its snapshot. A
 *    cairn_get must return the state at some version between the current
 *    versions read before and after it; every other read exactly the state
 *    at its snapshot. Values carry (key, sequence) and bytes derived from
 *    them. Run with a 10-minute history and with none (reads of the past
 *    may then fail with CAIRN_EHISTORY). CAIRN_RCDB_OPS: reads per reader
 *    thread (default 20000; 4000 under a sanitizer).
 *  - Budget: 8 MiB of values read through a 256 KiB row cache: the cache's
 *    bytes never pass its capacity.
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
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "db/db_internal.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define OPS_DEFAULT 4000
#else
#define OPS_DEFAULT 20000
#endif

static cairn_db *open_db(const char *dir, size_t row_cache, uint64_t history_ms)
{
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.row_cache_size = row_cache;
    o.row_cache_admit_all = true; /* the fill mechanics, from the 1st read */
    o.row_cache_flush_offers = false; /* reads fill it (test_flush_offers) */
    o.history_ms = history_ms;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    return db;
}

static int gets(cairn_db *db, const char *k, char *buf, size_t cap)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = cairn_get(db, k, strlen(k), &v, &vl);
    if (rc == 0) {
        assert_true(vl < cap);
        memcpy(buf, v, vl);
        buf[vl] = '\0';
        cairn_free(v);
    }
    return rc;
}

static int txn_gets(cairn_txn *t, const char *k, char *buf, size_t cap)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = cairn_txn_get(t, k, strlen(k), &v, &vl);
    if (rc == 0) {
        assert_true(vl < cap);
        memcpy(buf, v, vl);
        buf[vl] = '\0';
        cairn_free(v);
    }
    return rc;
}

static uint64_t puts_(cairn_db *db, const char *k, const char *v)
{
    uint64_t ver = 0;
    assert_int_equal(cairn_put(db, k, strlen(k), v, strlen(v), &ver), 0);
    return ver;
}

static cairn_stats st(cairn_db *db)
{
    cairn_stats s;
    cairn_get_stats(db, &s);
    return s;
}

/* The cached state of k, by the cache's own lookup: 1 (version in *ver),
 * 0 none. */
static int cached(cairn_db *db, const char *k, uint64_t *ver, char *buf,
                  size_t cap)
{
    cairn_row_cache_value v;
    int r = cairn_row_cache_lookup(db->rcache, cairn_row_cache_hash(k, strlen(k)),
                                   k, strlen(k), UINT64_MAX, UINT64_MAX, &v,
                                   NULL);
    if (r != 1)
        return r;
    *ver = v.version;
    if (v.deleted) {
        snprintf(buf, cap, "<absent>");
    } else {
        assert_true(v.vlen < cap);
        memcpy(buf, v.val, v.vlen);
        buf[v.vlen] = '\0';
        free(v.val);
    }
    return 1;
}

/* ---------- basics ---------- */

/* Default admission: while the cache has room every miss fills it; once
 * full, a key is cached on its second read that misses, by cairn_get and
 * by a transaction. */
static void test_admission(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("rcadm");
    cairn_options o;
    cairn_options_init(&o);
    assert_false(o.row_cache_admit_all);
    assert_true(o.row_cache_flush_offers);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.row_cache_size = 64 << 10;
    o.row_cache_flush_offers = false;
    o.row_cache_consult_all = true;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    char b[128], k[32], v[128];
    memset(v, 'v', 100);
    v[100] = '\0';
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "f%04d", i);
        puts_(db, k, v);
    }
    puts_(db, "a", "one");
    puts_(db, "b", "two");
    assert_int_equal(cairn_flush(db), 0); /* the cache fronts the files */
    /* Room: each first read fills, until the cache is full. */
    assert_int_equal(gets(db, "f0000", b, sizeof b), 0);
    cairn_stats s0 = st(db);
    assert_int_equal(s0.row_cache_inserts, 1);
    assert_int_equal(s0.row_cache_not_admitted, 0);
    for (int i = 1; i < 1000; i++) {
        snprintf(k, sizeof k, "f%04d", i);
        assert_int_equal(gets(db, k, b, sizeof b), 0);
    }
    s0 = st(db);
    assert_true(s0.row_cache_inserts > 100);
    assert_true(s0.row_cache_not_admitted > 0);
    assert_true(s0.row_cache_bytes > (64 << 10) - 4096);
    assert_int_equal(gets(db, "a", b, sizeof b), 0); /* first: not cached */
    assert_string_equal(b, "one");
    cairn_stats s = st(db);
    assert_int_equal(s.row_cache_misses - s0.row_cache_misses, 1);
    assert_int_equal(s.row_cache_not_admitted - s0.row_cache_not_admitted, 1);
    assert_int_equal(s.row_cache_inserts - s0.row_cache_inserts, 0);
    assert_int_equal(gets(db, "a", b, sizeof b), 0); /* second: fills */
    assert_int_equal(gets(db, "a", b, sizeof b), 0); /* third: a hit */
    assert_string_equal(b, "one");
    s = st(db);
    assert_int_equal(s.row_cache_misses - s0.row_cache_misses, 2);
    assert_int_equal(s.row_cache_inserts - s0.row_cache_inserts, 1);
    assert_int_equal(s.row_cache_hits - s0.row_cache_hits, 1);
    /* The same through a transaction. */
    for (int i = 0; i < 3; i++) {
        cairn_txn *t = NULL;
        assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
        assert_int_equal(txn_gets(t, "b", b, sizeof b), 0);
        assert_string_equal(b, "two");
        cairn_txn_abort(t);
    }
    s = st(db);
    assert_int_equal(s.row_cache_not_admitted - s0.row_cache_not_admitted, 2);
    assert_int_equal(s.row_cache_inserts - s0.row_cache_inserts, 2);
    assert_int_equal(s.row_cache_hits - s0.row_cache_hits, 2);
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

/* The gate (cairn_options.row_cache_consult_all false): reads the row
 * cache does not answer make the thread bypass it for most reads, which
 * still answer exactly; reads it answers again bring it back. With
 * consult_all, no read bypasses it. */
static void bypass_run(bool consult_all)
{
    char *dir = tu_mkdtemp("rcbyp");
    cairn_options o;
    cairn_options_init(&o);
    assert_false(o.row_cache_consult_all);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.row_cache_consult_all = consult_all;
    o.row_cache_flush_offers = false; /* reads alone fill it */
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    enum { NKEYS = 6000 };
    char k[32], v[32], b[128];
    for (int i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof k, "k%05d", i);
        snprintf(v, sizeof v, "v%05d", i);
        puts_(db, k, v);
    }
    assert_int_equal(cairn_flush(db), 0);
    /* Each key read once: misses only. */
    for (int i = 0; i < NKEYS; i++) {
        snprintf(k, sizeof k, "k%05d", i);
        snprintf(v, sizeof v, "v%05d", i);
        assert_int_equal(gets(db, k, b, sizeof b), 0);
        assert_string_equal(b, v);
    }
    assert_int_equal(gets(db, "nope", b, sizeof b), CAIRN_ENOTFOUND);
    cairn_stats s = st(db);
    assert_int_equal(s.row_cache_hits, 0);
    if (consult_all) {
        assert_int_equal(s.row_cache_bypassed, 0);
        assert_int_equal(s.row_cache_misses, NKEYS + 1);
    } else {
        /* After the first window of 512 lookups, 31 reads in 32 pass it
         * by (counted 512 at a time, or when a window ends). */
        assert_true(s.row_cache_bypassed >= 3 * NKEYS / 5);
        assert_true(s.row_cache_misses + s.row_cache_bypassed + 512 >
                    NKEYS);
        assert_true(s.row_cache_misses < NKEYS / 2);
    }
    /* A few hot keys: the lookups the thread still makes fill and hit, a
     * window shows the cache paying, and every read consults it again. */
    for (int r = 0; r < 60000; r++) {
        int i = r % 8;
        snprintf(k, sizeof k, "k%05d", i);
        snprintf(v, sizeof v, "v%05d", i);
        assert_int_equal(gets(db, k, b, sizeof b), 0);
        assert_string_equal(b, v);
    }
    cairn_stats s2 = st(db);
    assert_true(s2.row_cache_hits > 40000);
    if (consult_all)
        assert_int_equal(s2.row_cache_bypassed, 0);
    /* A write of a hot key is seen at once, through the cache. */
    puts_(db, "k00003", "new");
    assert_int_equal(cairn_flush(db), 0);
    for (int r = 0; r < 3; r++) {
        assert_int_equal(gets(db, "k00003", b, sizeof b), 0);
        assert_string_equal(b, "new");
    }
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

static void test_bypass(void **state)
{
    (void)state;
    bypass_run(false);
    bypass_run(true);
}

static void test_basics(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("rcdb");
    cairn_db *db = open_db(dir, 1 << 20, 600000);
    char b[128];
    void *val;
    size_t vl;
    cairn_stats s0 = st(db);
    assert_int_equal(s0.row_cache_capacity, 1 << 20);
    assert_int_equal(s0.row_cache_bytes, 0);

    /* A key in the memtable is read there: the cache is not used. */
    uint64_t v1 = puts_(db, "a", "one");
    assert_int_equal(gets(db, "a", b, sizeof b), 0);
    assert_int_equal(gets(db, "a", b, sizeof b), 0);
    assert_int_equal(st(db).row_cache_misses, 0);
    assert_int_equal(st(db).row_cache_hits, 0);
    /* In a sorted file, it is. */
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(gets(db, "a", b, sizeof b), 0); /* miss, fills */
    assert_string_equal(b, "one");
    assert_int_equal(gets(db, "a", b, sizeof b), 0); /* hit */
    assert_string_equal(b, "one");
    cairn_stats s = st(db);
    assert_int_equal(s.row_cache_hits, 1);
    assert_int_equal(s.row_cache_misses, 1);
    assert_int_equal(s.row_cache_inserts, 1);
    assert_int_equal(s.row_cache_entries, 1);
    assert_true(s.row_cache_bytes > 0 && s.row_cache_bytes <= 1 << 20);

    /* An overwrite is seen at once: from the memtable, which a read
     * probes first; the older entry goes when the flush that moves the
     * new version into a file supersedes it. */
    uint64_t v2 = puts_(db, "a", "two");
    assert_true(v2 > v1);
    assert_int_equal(st(db).row_cache_invalidations, 0);
    assert_int_equal(gets(db, "a", b, sizeof b), 0);
    assert_string_equal(b, "two");
    uint64_t cv;
    assert_int_equal(cached(db, "a", &cv, b, sizeof b), 1);
    assert_int_equal(cv, v1);
    assert_string_equal(b, "one");
    assert_int_equal(cairn_get_at_version(db, "a", 1, v2, &val, &vl), 0);
    assert_memory_equal(val, "two", 3);
    cairn_free(val);
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(st(db).row_cache_invalidations, 1);
    assert_int_equal(cached(db, "a", &cv, b, sizeof b), 0);
    assert_int_equal(gets(db, "a", b, sizeof b), 0);
    assert_string_equal(b, "two");

    /* Absent keys are cached too; a put of one is seen. */
    assert_int_equal(gets(db, "nokey", b, sizeof b), CAIRN_ENOTFOUND);
    assert_int_equal(cached(db, "nokey", &cv, b, sizeof b), 1);
    assert_string_equal(b, "<absent>");
    assert_int_equal(gets(db, "nokey", b, sizeof b), CAIRN_ENOTFOUND);
    puts_(db, "nokey", "now");
    assert_int_equal(gets(db, "nokey", b, sizeof b), 0);
    assert_string_equal(b, "now");

    /* Deletes are seen, and cached as absent (once in a file). */
    uint64_t v3;
    assert_int_equal(cairn_delete(db, "a", 1, &v3), 0);
    assert_int_equal(gets(db, "a", b, sizeof b), CAIRN_ENOTFOUND);
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(gets(db, "a", b, sizeof b), CAIRN_ENOTFOUND);
    assert_int_equal(cached(db, "a", &cv, b, sizeof b), 1);
    assert_int_equal(cv, v3);
    assert_int_equal(gets(db, "a", b, sizeof b), CAIRN_ENOTFOUND);

    /* Reads of the past: the entry (at v3) is too new for v1 and v2. */
    assert_int_equal(cairn_get_at_version(db, "a", 1, v1, &val, &vl), 0);
    assert_memory_equal(val, "one", 3);
    cairn_free(val);
    assert_int_equal(cairn_get_at_version(db, "a", 1, v2, &val, &vl), 0);
    assert_memory_equal(val, "two", 3);
    cairn_free(val);
    assert_int_equal(cairn_get_at_version(db, "a", 1, v3, &val, &vl),
                     CAIRN_ENOTFOUND);
    /* ...and never fill it. */
    assert_int_equal(cached(db, "a", &cv, b, sizeof b), 1);
    assert_int_equal(cv, v3);

    /* A transaction's own writes come first; a read-only one keeps its
     * snapshot while the cache moves on. */
    puts_(db, "t", "t1");
    cairn_txn_options ro = {.read_only = true};
    cairn_txn *rt;
    assert_int_equal(cairn_txn_begin(db, &ro, &rt), 0);
    assert_int_equal(txn_gets(rt, "t", b, sizeof b), 0);
    assert_string_equal(b, "t1");
    puts_(db, "t", "t2");
    assert_int_equal(gets(db, "t", b, sizeof b), 0);
    assert_string_equal(b, "t2");
    assert_int_equal(gets(db, "t", b, sizeof b), 0);
    assert_int_equal(txn_gets(rt, "t", b, sizeof b), 0);
    assert_string_equal(b, "t1");
    cairn_txn_abort(rt);
    cairn_txn *wt;
    assert_int_equal(cairn_txn_begin(db, NULL, &wt), 0);
    assert_int_equal(txn_gets(wt, "t", b, sizeof b), 0);
    assert_string_equal(b, "t2");
    assert_int_equal(cairn_txn_put(wt, "t", 1, "mine", 4), 0);
    assert_int_equal(txn_gets(wt, "t", b, sizeof b), 0);
    assert_string_equal(b, "mine");
    assert_int_equal(cairn_txn_commit(wt, NULL), 0);
    assert_int_equal(gets(db, "t", b, sizeof b), 0);
    assert_string_equal(b, "mine");

    /* A transaction fills the cache when its snapshot is the newest. */
    puts_(db, "u", "u1");
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(cairn_txn_begin(db, NULL, &wt), 0);
    assert_int_equal(txn_gets(wt, "u", b, sizeof b), 0);
    assert_int_equal(cached(db, "u", &cv, b, sizeof b), 1);
    assert_string_equal(b, "u1");
    cairn_txn_abort(wt);

    /* Reads by time use entries whose time is known. */
    uint64_t hits0 = st(db).row_cache_hits;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_us = (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u;
    assert_int_equal(cairn_get_at_time(db, "u", 1, now_us, &val, &vl), 0);
    assert_memory_equal(val, "u1", 2);
    cairn_free(val);
    assert_int_equal(st(db).row_cache_hits, hits0 + 1);

    /* The budgets at run time. */
    assert_int_equal(cairn_set_cache_sizes(db, 0, CAIRN_CACHE_SIZE_KEEP), 0);
    s = st(db);
    assert_int_equal(s.row_cache_capacity, 0);
    assert_int_equal(s.row_cache_bytes, 0);
    uint64_t hits = s.row_cache_hits;
    assert_int_equal(gets(db, "u", b, sizeof b), 0);
    assert_int_equal(gets(db, "u", b, sizeof b), 0);
    assert_int_equal(st(db).row_cache_hits, hits); /* off: not used */
    assert_int_equal(cairn_set_cache_sizes(db, 4096, 8 << 20), 0);
    s = st(db);
    assert_int_equal(s.row_cache_capacity, 4096);
    assert_int_equal(s.block_cache_capacity, 8 << 20);
    assert_int_equal(gets(db, "u", b, sizeof b), 0);
    assert_int_equal(gets(db, "u", b, sizeof b), 0);
    assert_int_equal(st(db).row_cache_hits, hits + 1);
    assert_int_equal(cairn_set_cache_sizes(NULL, 1, 1), CAIRN_EINVAL);
    assert_int_equal(cairn_close(db), 0);

    /* Off from the open, on later; the cache starts empty after a reopen
     * (the log's replay never fills it). */
    db = open_db(dir, 0, 600000);
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(st(db).row_cache_capacity, 0);
    assert_int_equal(gets(db, "t", b, sizeof b), 0);
    assert_string_equal(b, "mine");
    assert_int_equal(st(db).row_cache_entries, 0);
    assert_int_equal(cairn_set_cache_sizes(db, 1 << 20, CAIRN_CACHE_SIZE_KEEP), 0);
    assert_int_equal(gets(db, "t", b, sizeof b), 0);
    assert_int_equal(gets(db, "t", b, sizeof b), 0);
    assert_int_equal(st(db).row_cache_hits, 1);
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

/* ---------- flush offers ---------- */

/* A flush offers each key's newest state (deletions as absent) while the
 * cache has room, never evicting for it; a newer version waits in the
 * memtable while the older entry stays, until its own flush supersedes
 * it; reads of the past below an entry read the tables. */
static void test_flush_offers(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("rcoffer");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.row_cache_size = 1 << 20;
    o.row_cache_consult_all = true;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    char b[256], k[32], v[128];
    uint64_t cv, va1 = puts_(db, "a", "a1");
    puts_(db, "a", "a2");
    uint64_t va3 = puts_(db, "a", "a3");
    puts_(db, "b", "b1");
    uint64_t vd;
    puts_(db, "d", "d1");
    assert_int_equal(cairn_delete(db, "d", 1, &vd), 0);
    assert_int_equal(cairn_flush(db), 0);
    cairn_stats s = st(db);
    assert_int_equal(s.row_cache_entries, 3);
    assert_int_equal(cached(db, "a", &cv, b, sizeof b), 1);
    assert_int_equal(cv, va3);
    assert_string_equal(b, "a3");
    assert_int_equal(cached(db, "d", &cv, b, sizeof b), 1);
    assert_int_equal(cv, vd);
    assert_string_equal(b, "<absent>");
    /* Reads hit, none misses. */
    cairn_stats s0 = st(db);
    assert_int_equal(gets(db, "a", b, sizeof b), 0);
    assert_string_equal(b, "a3");
    assert_int_equal(gets(db, "b", b, sizeof b), 0);
    assert_string_equal(b, "b1");
    assert_int_equal(gets(db, "d", b, sizeof b), CAIRN_ENOTFOUND);
    s = st(db);
    assert_int_equal(s.row_cache_hits - s0.row_cache_hits, 3);
    assert_int_equal(s.row_cache_misses - s0.row_cache_misses, 0);
    /* The past below the entry comes from the tables. */
    void *val;
    size_t vl;
    assert_int_equal(cairn_get_at_version(db, "a", 1, va1, &val, &vl), 0);
    assert_memory_equal(val, "a1", 2);
    cairn_free(val);
    /* A newer version: read from the memtable while "a3" stays cached,
     * at every snapshot that can see it, by version too. */
    uint64_t va4 = puts_(db, "a", "a4");
    assert_int_equal(cached(db, "a", &cv, b, sizeof b), 1);
    assert_int_equal(cv, va3);
    assert_int_equal(gets(db, "a", b, sizeof b), 0);
    assert_string_equal(b, "a4");
    assert_int_equal(cairn_get_at_version(db, "a", 1, va4, &val, &vl), 0);
    assert_memory_equal(val, "a4", 2);
    cairn_free(val);
    assert_int_equal(cairn_get_at_version(db, "a", 1, va3, &val, &vl), 0);
    assert_memory_equal(val, "a3", 2);
    cairn_free(val);
    void *vals[2];
    size_t vls[2];
    int rcs[2];
    const void *keys[2] = {"a", "b"};
    size_t kls[2] = {1, 1};
    assert_int_equal(cairn_get_many(db, 2, keys, kls, vals, vls, rcs), 0);
    assert_int_equal(rcs[0], 0);
    assert_memory_equal(vals[0], "a4", 2);
    assert_int_equal(rcs[1], 0);
    assert_memory_equal(vals[1], "b1", 2);
    cairn_free(vals[0]);
    cairn_free(vals[1]);
    /* Its flush supersedes the entry. */
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(cached(db, "a", &cv, b, sizeof b), 1);
    assert_int_equal(cv, va4);
    assert_string_equal(b, "a4");
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);

    /* A cache too small for a flush: offers fill its room and stop; they
     * evict nothing. */
    o.row_cache_size = 16 << 10;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    memset(v, 'v', 100);
    v[100] = '\0';
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "k%04d", i);
        puts_(db, k, v);
    }
    assert_int_equal(cairn_flush(db), 0);
    s = st(db);
    assert_int_equal(s.row_cache_evictions, 0);
    assert_true(s.row_cache_entries > 10 && s.row_cache_entries < 1000);
    assert_true(s.row_cache_bytes <= 16 << 10);
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "k%04d", i);
        assert_int_equal(gets(db, k, b, sizeof b), 0);
        assert_string_equal(b, v);
    }
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);

    /* Off: a flush leaves the cache alone. */
    o.row_cache_size = 1 << 20;
    o.row_cache_flush_offers = false;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    puts_(db, "x", "x1");
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(st(db).row_cache_entries, 0);
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

/* ---------- the races, through the hooks ---------- */

typedef struct hook_ctx {
    cairn_db *db;
    bool armed;
    int rc;
    char seen[64];
    uint64_t ver;
} hook_ctx;

/* Runs between a filling read's table read and its insert: commit a new
 * value of "k" there and flush it into a file (the flush supersedes the
 * key's entry: the insert must then be refused). */
static void fill_hook(void *arg)
{
    hook_ctx *h = arg;
    if (!h->armed)
        return;
    h->armed = false;
    h->rc = cairn_put(h->db, "k", 1, "new", 3, &h->ver);
    if (h->rc == 0)
        h->rc = cairn_flush(h->db);
}

/* Runs in a commit after it was applied, before it is published: read
 * "k" there (it must still be the old value). */
static void commit_hook(void *arg)
{
    hook_ctx *h = arg;
    if (!h->armed)
        return;
    h->armed = false;
    h->rc = gets(h->db, "k", h->seen, sizeof h->seen);
}

static void commit_hook_txn(void *arg)
{
    hook_ctx *h = arg;
    if (!h->armed)
        return;
    h->armed = false;
    cairn_txn *t;
    h->rc = cairn_txn_begin(h->db, NULL, &t);
    if (h->rc == 0) {
        h->rc = txn_gets(t, "k", h->seen, sizeof h->seen);
        cairn_txn_abort(t);
    }
}

static void test_race_fill(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("rcdb");
    cairn_db *db = open_db(dir, 1 << 20, 600000);
    hook_ctx h = {.db = db};
    db->rc_hook_arg = &h;
    db->rc_fill_hook = fill_hook;
    char b[64];
    uint64_t cv;
    for (int via_txn = 0; via_txn < 2; via_txn++) {
        puts_(db, "k", "old");
        assert_int_equal(cairn_flush(db), 0);
        h.armed = true;
        h.rc = -100;
        if (via_txn) {
            cairn_txn *t;
            assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
            assert_int_equal(txn_gets(t, "k", b, sizeof b), 0);
            cairn_txn_abort(t);
        } else {
            assert_int_equal(gets(db, "k", b, sizeof b), 0);
        }
        assert_false(h.armed); /* the hook ran */
        assert_int_equal(h.rc, 0);
        assert_string_equal(b, "old"); /* its snapshot's value */
        /* The stale value was not cached. */
        int r = cached(db, "k", &cv, b, sizeof b);
        assert_true(r == 0 || (cv == h.ver && strcmp(b, "new") == 0));
        assert_int_equal(gets(db, "k", b, sizeof b), 0);
        assert_string_equal(b, "new");
        assert_int_equal(gets(db, "k", b, sizeof b), 0);
        assert_string_equal(b, "new");
    }
    cairn_row_cache_stats rs;
    cairn_row_cache_get_stats(db->rcache, &rs);
    assert_int_equal(rs.fills_refused, 2);
    db->rc_fill_hook = NULL;
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

static void test_race_unpublished(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("rcdb");
    cairn_db *db = open_db(dir, 1 << 20, 600000);
    hook_ctx h = {.db = db};
    db->rc_hook_arg = &h;
    char b[64];
    uint64_t cv;
    for (int via_txn = 0; via_txn < 2; via_txn++) {
        db->rc_commit_hook = via_txn ? commit_hook_txn : commit_hook;
        puts_(db, "k", "old");
        assert_int_equal(cairn_flush(db), 0);
        /* Cache "old" first (the commit leaves it: readers of the new
         * version find it in the memtable first), then once more with
         * nothing cached. */
        for (int warm = 1; warm >= 0; warm--) {
            if (warm) {
                assert_int_equal(gets(db, "k", b, sizeof b), 0);
                assert_int_equal(cached(db, "k", &cv, b, sizeof b), 1);
            }
            h.armed = true;
            h.rc = -100;
            h.seen[0] = '\0';
            uint64_t v = puts_(db, "k", "new");
            assert_false(h.armed);
            assert_int_equal(h.rc, 0);
            assert_string_equal(h.seen, "old"); /* not yet visible */
            int r = cached(db, "k", &cv, b, sizeof b);
            if (warm)
                assert_true(r == 1 && cv < v && strcmp(b, "old") == 0);
            else
                assert_int_equal(r, 0); /* the hook's read did not fill */
            assert_int_equal(gets(db, "k", b, sizeof b), 0);
            assert_string_equal(b, "new");
            assert_int_equal(gets(db, "k", b, sizeof b), 0);
            assert_string_equal(b, "new");
            /* The flush that moves "new" into a file supersedes "old". */
            assert_int_equal(cairn_flush(db), 0);
            r = cached(db, "k", &cv, b, sizeof b);
            assert_true(r == 0 || (cv == v && strcmp(b, "new") == 0));
            assert_int_equal(gets(db, "k", b, sizeof b), 0);
            assert_string_equal(b, "new");
            puts_(db, "k", "old");
            assert_int_equal(cairn_flush(db), 0);
        }
    }
    db->rc_commit_hook = NULL;
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

/* ---------- versions the tables no longer know ---------- */

static void test_zeroed_versions(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("rcdb");
    cairn_db *db = open_db(dir, 1 << 20, 0); /* no history window */
    char b[64];
    uint64_t cv;
    puts_(db, "z", "B");
    puts_(db, "gone", "G");
    cairn_txn_options ro = {.read_only = true};
    cairn_txn *rt;
    assert_int_equal(cairn_txn_begin(db, &ro, &rt), 0); /* holds its view */
    uint64_t S = cairn_txn_snapshot(rt);
    puts_(db, "z", "C");
    assert_int_equal(cairn_delete(db, "gone", 4, NULL), 0);
    usleep(2000);
    /* Down to the bottom level: z's version becomes 0, "gone" leaves no
     * version at all. */
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    /* Table sets take the tree's files at a flush: one more makes the
     * compacted files the ones read. */
    puts_(db, "other", "x");
    assert_int_equal(cairn_flush(db), 0);
    uint64_t oldest = cairn_oldest_version(db);
    assert_true(oldest > S);
    cairn_key_version *kv;
    size_t n;
    assert_int_equal(cairn_key_versions(db, "z", 1, 0, &kv, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(kv[0].version, 0);
    cairn_key_versions_free(kv, n);

    assert_int_equal(gets(db, "z", b, sizeof b), 0);
    assert_string_equal(b, "C");
    assert_int_equal(gets(db, "gone", b, sizeof b), CAIRN_ENOTFOUND);
    /* Filed at the horizon, not at 0. */
    assert_int_equal(cached(db, "z", &cv, b, sizeof b), 1);
    assert_true(cv >= oldest);
    assert_int_equal(cached(db, "gone", &cv, b, sizeof b), 1);
    assert_true(cv >= oldest);
    assert_int_equal(gets(db, "z", b, sizeof b), 0);
    assert_string_equal(b, "C");
    /* The old view still reads its snapshot. */
    assert_int_equal(txn_gets(rt, "z", b, sizeof b), 0);
    assert_string_equal(b, "B");
    assert_int_equal(txn_gets(rt, "gone", b, sizeof b), 0);
    assert_string_equal(b, "G");
    cairn_txn_abort(rt);
    /* Reads by time do not use such entries (their time is unknown). */
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    void *val = NULL;
    size_t vl;
    uint64_t hits = st(db).row_cache_hits;
    int rc = cairn_get_at_time(db, "z", 1,
                               (uint64_t)now.tv_sec * 1000000u +
                                   (uint64_t)now.tv_nsec / 1000u,
                               &val, &vl);
    assert_true(rc == 0 || rc == CAIRN_EHISTORY);
    if (rc == 0) {
        assert_memory_equal(val, "C", 1);
        cairn_free(val);
    }
    assert_int_equal(st(db).row_cache_hits, hits);
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

/* ---------- the model run ---------- */

#define MK 48
#define MW 2 /* writer threads */
#define MR 3 /* reader threads */

typedef struct hist_ent {
    uint64_t version;
    uint32_t seq; /* 0 for a delete */
} hist_ent;

typedef struct mkey {
    pthread_mutex_t mu;
    hist_ent *h;
    size_t n, cap;
    uint32_t next_seq;
} mkey;

typedef struct model {
    cairn_db *db;
    mkey keys[MK];
    bool history;
    uint64_t ops;
    atomic_bool stop;
    atomic_int failures;
    atomic_uint_fast64_t reads, writes;
    char msg[256];
} model;

static void mfail(model *m, const char *fmt, ...)
{
    if (atomic_fetch_add(&m->failures, 1) == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->msg, sizeof m->msg, fmt, ap);
        va_end(ap);
    }
}

static void mkey_name(int k, char *buf)
{
    snprintf(buf, 8, "m%02d", k);
}

static size_t mval_len(int k, uint32_t seq)
{
    uint64_t s = (uint64_t)k << 32 | seq;
    uint64_t r = tu_splitmix(&s);
    return r % 29 == 0 ? 30000 + r % 10000 : 8 + r % 500;
}

static uint8_t *mval(int k, uint32_t seq, size_t *len)
{
    size_t n = mval_len(k, seq);
    uint8_t *v = malloc(n);
    if (!v)
        return NULL;
    tu_fill(v, n, (uint64_t)k << 32 | seq);
    memcpy(v, &seq, 4);
    *len = n;
    return v;
}

/* The sequence of k's state at version V (0: absent); k's mutex held. */
static uint32_t state_at(mkey *mk, uint64_t V)
{
    uint32_t s = 0;
    for (size_t i = 0; i < mk->n && mk->h[i].version <= V; i++)
        s = mk->h[i].seq;
    return s;
}

static void hist_add(model *m, int k, uint64_t v, uint32_t seq)
{
    mkey *mk = &m->keys[k];
    if (mk->n == mk->cap) {
        size_t nc = mk->cap ? mk->cap * 2 : 64;
        hist_ent *p = realloc(mk->h, nc * sizeof *p);
        if (!p) {
            mfail(m, "out of memory");
            return;
        }
        mk->h = p;
        mk->cap = nc;
    }
    if (mk->n && mk->h[mk->n - 1].version >= v)
        mfail(m, "versions of key %d out of order", k);
    mk->h[mk->n++] = (hist_ent){v, seq};
}

/* The sequence a read returned (0: absent), or UINT32_MAX for bad bytes. */
static uint32_t decode(int k, int rc, const void *v, size_t vl)
{
    if (rc == CAIRN_ENOTFOUND)
        return 0;
    if (rc != 0 || vl < 4)
        return UINT32_MAX;
    uint32_t seq;
    memcpy(&seq, v, 4);
    if (seq == 0 || vl != mval_len(k, seq))
        return UINT32_MAX;
    uint8_t *want = malloc(vl);
    if (!want)
        return UINT32_MAX;
    tu_fill(want, vl, (uint64_t)k << 32 | seq);
    memcpy(want, &seq, 4);
    bool ok = memcmp(want, v, vl) == 0;
    free(want);
    return ok ? seq : UINT32_MAX;
}

static void *m_writer(void *p)
{
    model *m = p;
    uint64_t seed = (uint64_t)(uintptr_t)p ^ (uint64_t)pthread_self();
    while (!atomic_load(&m->stop)) {
        int k = (int)tu_rand(&seed, MK), op = (int)tu_rand(&seed, 20);
        char key[8];
        mkey_name(k, key);
        mkey *mk = &m->keys[k];
        if (op == 0) {
            /* A batch of two keys (locked in order). */
            int k2 = (int)tu_rand(&seed, MK);
            if (k2 == k)
                continue;
            int lo = k < k2 ? k : k2, hi = k < k2 ? k2 : k;
            pthread_mutex_lock(&m->keys[lo].mu);
            pthread_mutex_lock(&m->keys[hi].mu);
            char key2[8];
            mkey_name(k2, key2);
            uint32_t s1 = ++mk->next_seq, s2 = ++m->keys[k2].next_seq;
            size_t l1;
            uint8_t *v1 = mval(k, s1, &l1);
            cairn_write w[2] = {{key, strlen(key), v1, l1},
                                {key2, strlen(key2), NULL, 0}};
            uint64_t ver;
            int rc = v1 ? cairn_write_batch(m->db, w, 2, &ver) : CAIRN_ENOMEM;
            if (rc != 0) {
                mfail(m, "batch: %s", cairn_strerror(rc));
            } else {
                hist_add(m, k, ver, s1);
                hist_add(m, k2, ver, 0);
            }
            (void)s2;
            free(v1);
            pthread_mutex_unlock(&m->keys[hi].mu);
            pthread_mutex_unlock(&m->keys[lo].mu);
        } else if (op < 4) {
            /* Read-modify-write in a transaction (nobody else writes k
             * meanwhile: its read is exact). */
            pthread_mutex_lock(&mk->mu);
            cairn_txn *t;
            int rc = cairn_txn_begin(m->db, NULL, &t);
            if (rc == 0) {
                void *v = NULL;
                size_t vl = 0;
                int g = cairn_txn_get(t, key, strlen(key), &v, &vl);
                uint32_t got = decode(k, g, v, vl);
                uint32_t want = state_at(mk, cairn_txn_snapshot(t));
                if (got != want)
                    mfail(m, "rmw read of %s: seq %u, want %u", key, got, want);
                cairn_free(v);
                uint32_t s = ++mk->next_seq;
                size_t l;
                uint8_t *nv = mval(k, s, &l);
                uint64_t ver;
                rc = nv ? cairn_txn_put(t, key, strlen(key), nv, l)
                        : CAIRN_ENOMEM;
                if (rc == 0) {
                    rc = cairn_txn_commit(t, &ver);
                    if (rc == 0)
                        hist_add(m, k, ver, s);
                } else {
                    cairn_txn_abort(t);
                }
                free(nv);
            }
            if (rc != 0)
                mfail(m, "rmw of %s: %s", key, cairn_strerror(rc));
            pthread_mutex_unlock(&mk->mu);
        } else {
            pthread_mutex_lock(&mk->mu);
            uint64_t ver;
            int rc;
            uint32_t s = 0;
            if (op < 7) {
                rc = cairn_delete(m->db, key, strlen(key), &ver);
            } else {
                s = ++mk->next_seq;
                size_t l;
                uint8_t *v = mval(k, s, &l);
                rc = v ? cairn_put(m->db, key, strlen(key), v, l, &ver)
                       : CAIRN_ENOMEM;
                free(v);
            }
            if (rc == 0)
                hist_add(m, k, ver, s);
            else
                mfail(m, "write of %s: %s", key, cairn_strerror(rc));
            pthread_mutex_unlock(&mk->mu);
        }
        atomic_fetch_add(&m->writes, 1);
    }
    return NULL;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Reads of k in t, checked against the state at t's snapshot. */
static void check_txn_reads(model *m, cairn_txn *t, uint64_t *seed, int n)
{
    uint64_t S = cairn_txn_snapshot(t);
    for (int i = 0; i < n; i++) {
        int k = (int)tu_rand(seed, MK);
        char key[8];
        mkey_name(k, key);
        void *v = NULL;
        size_t vl = 0;
        int rc = cairn_txn_get(t, key, strlen(key), &v, &vl);
        uint32_t got = decode(k, rc, v, vl);
        cairn_free(v);
        mkey *mk = &m->keys[k];
        pthread_mutex_lock(&mk->mu);
        uint32_t want = state_at(mk, S);
        pthread_mutex_unlock(&mk->mu);
        if (got != want)
            mfail(m, "txn read of %s at %" PRIu64 ": seq %u, want %u (rc %d)",
                  key, S, got, want, rc);
        atomic_fetch_add(&m->reads, 1);
    }
}

static void *m_reader(void *p)
{
    model *m = p;
    uint64_t seed = (uint64_t)pthread_self() * 31;
    for (uint64_t i = 0; i < m->ops && atomic_load(&m->failures) == 0; i++) {
        int op = (int)tu_rand(&seed, 10);
        if (op < 5) {
            int k = (int)tu_rand(&seed, MK);
            char key[8];
            mkey_name(k, key);
            uint64_t v0 = cairn_current_version(m->db);
            void *v = NULL;
            size_t vl = 0;
            int rc = cairn_get(m->db, key, strlen(key), &v, &vl);
            uint64_t v1 = cairn_current_version(m->db);
            uint32_t got = decode(k, rc, v, vl);
            cairn_free(v);
            mkey *mk = &m->keys[k];
            pthread_mutex_lock(&mk->mu);
            bool ok = got == state_at(mk, v0);
            for (size_t j = 0; !ok && j < mk->n; j++)
                ok = mk->h[j].version > v0 && mk->h[j].version <= v1 &&
                     mk->h[j].seq == got;
            pthread_mutex_unlock(&mk->mu);
            if (!ok)
                mfail(m, "get of %s between %" PRIu64 " and %" PRIu64
                         ": seq %u (rc %d)",
                      key, v0, v1, got, rc);
            atomic_fetch_add(&m->reads, 1);
        } else if (op < 7) {
            cairn_txn_options o = {.read_only = op == 5};
            cairn_txn *t;
            int rc = cairn_txn_begin(m->db, &o, &t);
            if (rc != 0) {
                mfail(m, "begin: %s", cairn_strerror(rc));
                continue;
            }
            check_txn_reads(m, t, &seed, 3);
            cairn_txn_abort(t);
        } else if (op < 9) {
            /* As of a version: directly, or in a pinned transaction. */
            /* The oldest first: it may pass a current version read
             * before it (with no history window it follows it closely). */
            uint64_t old = cairn_oldest_version(m->db);
            uint64_t cur = cairn_current_version(m->db);
            uint64_t V = old + tu_rand(&seed, cur - old + 1);
            if (op == 7) {
                int k = (int)tu_rand(&seed, MK);
                char key[8];
                mkey_name(k, key);
                void *v = NULL;
                size_t vl = 0;
                int rc = cairn_get_at_version(m->db, key, strlen(key), V, &v,
                                              &vl);
                if (rc == CAIRN_EHISTORY && !m->history)
                    continue;
                uint32_t got = decode(k, rc, v, vl);
                cairn_free(v);
                mkey *mk = &m->keys[k];
                pthread_mutex_lock(&mk->mu);
                uint32_t want = state_at(mk, V);
                pthread_mutex_unlock(&mk->mu);
                if (got != want)
                    mfail(m, "read of %s as of %" PRIu64 ": seq %u, want %u "
                             "(rc %d)",
                          key, V, got, want, rc);
                atomic_fetch_add(&m->reads, 1);
            } else {
                cairn_txn_options o = {.read_only = true, .at_version = V};
                cairn_txn *t;
                int rc = cairn_txn_begin(m->db, &o, &t);
                if (rc == CAIRN_EHISTORY && !m->history)
                    continue;
                if (rc != 0) {
                    mfail(m, "begin at %" PRIu64 ": %s", V, cairn_strerror(rc));
                    continue;
                }
                check_txn_reads(m, t, &seed, 3);
                cairn_txn_abort(t);
            }
        } else {
            /* As of a time, up to 20 ms back. */
            cairn_txn_options o = {.read_only = true,
                                   .at_time_us = now_us() -
                                                 tu_rand(&seed, 20000)};
            cairn_txn *t;
            int rc = cairn_txn_begin(m->db, &o, &t);
            if (rc == CAIRN_EHISTORY)
                continue; /* before the first commit, or the window */
            if (rc != 0) {
                mfail(m, "begin at a time: %s", cairn_strerror(rc));
                continue;
            }
            check_txn_reads(m, t, &seed, 3);
            cairn_txn_abort(t);
        }
    }
    return NULL;
}

/* Changes the budgets now and then, the row cache off for a while too. */
static void *m_sizer(void *p)
{
    model *m = p;
    uint64_t seed = 99;
    while (!atomic_load(&m->stop)) {
        uint64_t r = tu_rand(&seed, 10);
        size_t row = r == 0 ? 0 : (size_t)(4096 + tu_rand(&seed, 40000));
        cairn_set_cache_sizes(m->db, row,
                              r == 1 ? (size_t)(64 << 10) : (size_t)(4 << 20));
        usleep(2000);
        cairn_stats s;
        cairn_get_stats(m->db, &s);
        if (s.row_cache_bytes > s.row_cache_capacity &&
            s.row_cache_capacity == row)
            mfail(m, "row cache %" PRIu64 " bytes over %" PRIu64,
                  s.row_cache_bytes, s.row_cache_capacity);
    }
    cairn_set_cache_sizes(m->db, 24 << 10, 4 << 20);
    return NULL;
}

static void *m_flusher(void *p)
{
    model *m = p;
    while (!atomic_load(&m->stop)) {
        usleep(30000);
        int rc = cairn_flush(m->db);
        if (rc != 0)
            mfail(m, "flush: %s", cairn_strerror(rc));
    }
    return NULL;
}

/* Every key read twice (writers stopped): each its last state. */
static void model_read_all_twice(model *m)
{
    for (int k = 0; k < MK; k++) {
        char key[8];
        mkey_name(k, key);
        for (int rep = 0; rep < 2; rep++) {
            void *v = NULL;
            size_t vl = 0;
            int rc = cairn_get(m->db, key, strlen(key), &v, &vl);
            uint32_t got = decode(k, rc, v, vl);
            cairn_free(v);
            assert_int_equal(got, state_at(&m->keys[k], UINT64_MAX));
        }
    }
}

/* With the writers stopped: every key read twice from the files (cached
 * by the first read, a hit for the second), then written once more and
 * flushed. The flush must supersede (and count as invalidated) the cached
 * states of the keys it holds. */
static void model_supersede_cached(model *m)
{
    assert_int_equal(cairn_flush(m->db), 0);
    cairn_set_cache_sizes(m->db, 64 << 10, 4 << 20);
    cairn_stats start;
    cairn_get_stats(m->db, &start);
    model_read_all_twice(m);
    cairn_stats before, after;
    cairn_get_stats(m->db, &before);
    assert_true(before.row_cache_entries > 0);
    /* The second read of a key the first one cached is a hit. */
    assert_true(before.row_cache_hits > start.row_cache_hits);
    for (int k = 0; k < MK; k++) {
        char key[8];
        mkey_name(k, key);
        uint32_t seq = ++m->keys[k].next_seq;
        size_t l = 0;
        uint8_t *v = mval(k, seq, &l);
        assert_non_null(v);
        uint64_t ver;
        assert_int_equal(cairn_put(m->db, key, strlen(key), v, l, &ver), 0);
        free(v);
        hist_add(m, k, ver, seq);
    }
    assert_int_equal(cairn_flush(m->db), 0);
    cairn_get_stats(m->db, &after);
    assert_true(after.row_cache_invalidations > before.row_cache_invalidations);
    assert_int_equal(atomic_load(&m->failures), 0);
}

static void run_model(bool history)
{
    char *dir = tu_mkdtemp("rcmodel");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.row_cache_size = 24 << 10;
    o.row_cache_admit_all = true;
    o.row_cache_consult_all = true; /* every read goes through it */
    o.memtable_size = 256 << 10;
    o.block_cache_size = 4 << 20;
    o.sst_target_file_size = 256 << 10;
    o.level_base_size = 1 << 20;
    o.history_ms = history ? 600000 : 0;
    model *m = calloc(1, sizeof *m);
    assert_non_null(m);
    assert_int_equal(cairn_open(dir, &o, &m->db), 0);
    m->history = history;
    m->ops = tu_env_u64("CAIRN_RCDB_OPS", OPS_DEFAULT);
    for (int k = 0; k < MK; k++)
        pthread_mutex_init(&m->keys[k].mu, NULL);
    pthread_t w[MW], r[MR], sz, fl;
    for (int i = 0; i < MW; i++)
        pthread_create(&w[i], NULL, m_writer, m);
    for (int i = 0; i < MR; i++)
        pthread_create(&r[i], NULL, m_reader, m);
    pthread_create(&sz, NULL, m_sizer, m);
    pthread_create(&fl, NULL, m_flusher, m);
    for (int i = 0; i < MR; i++)
        pthread_join(r[i], NULL);
    atomic_store(&m->stop, true);
    for (int i = 0; i < MW; i++)
        pthread_join(w[i], NULL);
    pthread_join(sz, NULL);
    pthread_join(fl, NULL);
    if (atomic_load(&m->failures))
        fprintf(stderr, "first failure: %s\n", m->msg);
    assert_int_equal(atomic_load(&m->failures), 0);

    cairn_stats s;
    cairn_get_stats(m->db, &s);
    fprintf(stderr,
            "model (%s history): %" PRIu64 " reads, %" PRIu64 " writes; row "
            "cache %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
            " inserts, %" PRIu64 " evictions, %" PRIu64 " invalidations; %"
            PRIu64 " flushes, %" PRIu64 " compactions\n",
            history ? "10-minute" : "no", (uint64_t)atomic_load(&m->reads),
            (uint64_t)atomic_load(&m->writes), s.row_cache_hits,
            s.row_cache_misses, s.row_cache_inserts, s.row_cache_evictions,
            s.row_cache_invalidations, s.flushes, s.compactions);
    assert_true(s.flushes > 0);
    assert_true(s.row_cache_bytes <= s.row_cache_capacity);
    /* How many reads the cache answered and how many cached states the
     * run's flushes superseded depends on timing (no supersedes, at
     * times, under TSan). Have both happen for certain. */
    model_supersede_cached(m);

    /* Every key's last state, from the cache or not, after the run and
     * after a reopen. The first round reads every key from sorted files
     * through a cache too small for them all: it must evict. */
    assert_int_equal(cairn_flush(m->db), 0);
    cairn_set_cache_sizes(m->db, 1024, 4 << 20);
    for (int round = 0; round < 2; round++) {
        model_read_all_twice(m);
        cairn_get_stats(m->db, &s);
        if (round == 0)
            assert_true(s.row_cache_evictions > 0);
        assert_true(s.row_cache_bytes <= s.row_cache_capacity);
        assert_int_equal(cairn_close(m->db), 0);
        m->db = NULL;
        if (round == 0)
            assert_int_equal(cairn_open(dir, &o, &m->db), 0);
    }
    for (int k = 0; k < MK; k++) {
        pthread_mutex_destroy(&m->keys[k].mu);
        free(m->keys[k].h);
    }
    free(m);
    tu_rmrf(dir);
    free(dir);
}

static void test_model_history(void **state)
{
    (void)state;
    run_model(true);
}

static void test_model_no_history(void **state)
{
    (void)state;
    run_model(false);
}

/* ---------- the budget under load ---------- */

static void test_budget(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("rcdb");
    const size_t cap = 256 << 10;
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.row_cache_size = cap;
    o.row_cache_admit_all = true;
    o.row_cache_consult_all = true;
    o.memtable_size = 1 << 20;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    const int n = 8192;
    uint8_t val[2048];
    for (int i = 0; i < n; i++) {
        char k[16];
        int kl = snprintf(k, sizeof k, "b%05d", i);
        size_t vl = 64 + (size_t)(i * 7919) % 1984;
        tu_fill(val, vl, (uint64_t)i);
        assert_int_equal(cairn_put(db, k, (size_t)kl, val, vl, NULL), 0);
    }
    uint64_t seed = 5, max_bytes = 0, loaded = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int j = 0; j < n; j++) {
            int i = pass ? (int)tu_rand(&seed, n) : j;
            char k[16];
            int kl = snprintf(k, sizeof k, "b%05d", i);
            void *v;
            size_t vl;
            assert_int_equal(cairn_get(db, k, (size_t)kl, &v, &vl), 0);
            assert_int_equal(vl, 64 + (size_t)(i * 7919) % 1984);
            assert_true(tu_check(v, vl, (uint64_t)i));
            loaded += vl;
            cairn_free(v);
            cairn_stats s = st(db);
            assert_true(s.row_cache_bytes <= cap);
            if (s.row_cache_bytes > max_bytes)
                max_bytes = s.row_cache_bytes;
        }
    }
    cairn_stats s = st(db);
    fprintf(stderr, "budget: %" PRIu64 " bytes read through a %zu-byte row "
                    "cache; at most %" PRIu64 " in it, %" PRIu64
                    " entries now, %" PRIu64 " evictions\n",
            loaded, cap, max_bytes, s.row_cache_entries, s.row_cache_evictions);
    assert_true(max_bytes > cap / 2);
    assert_true(s.row_cache_evictions > 0);
    /* Shrinking evicts at once. */
    assert_int_equal(cairn_set_cache_sizes(db, cap / 8, CAIRN_CACHE_SIZE_KEEP), 0);
    s = st(db);
    assert_true(s.row_cache_bytes <= cap / 8);
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_admission),
        cmocka_unit_test(test_bypass),
        cmocka_unit_test(test_flush_offers),
        cmocka_unit_test(test_race_fill),
        cmocka_unit_test(test_race_unpublished),
        cmocka_unit_test(test_zeroed_versions),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_model_history),
        cmocka_unit_test(test_model_no_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
