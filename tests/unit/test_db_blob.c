/*
 * test_db_blob.c — large values stored out of line through the engine
 * (db/blob.c, blob/blob_store.c).
 *
 * What it proves:
 *   - values at or above blob_threshold come back byte-identical from every
 *     read path (get, txn get, get at version / time, key versions,
 *     iterators both ways, scans, the row cache), before and after flush,
 *     compaction and reopen; a value stored twice is stored once (dedup);
 *   - reference counts stay exact (cairn_blob_check recounts from the tree)
 *     through overwrites, deletes, aborts, flushes, compactions, restarts;
 *   - GC reclaims exactly the dead space and never a live blob, also while
 *     readers run in other threads, and a snapshot or iterator reading an
 *     old version keeps its blob until it ends;
 *   - chunking: a 64 MiB value edited in 10 places shares all but a few
 *     chunks with the original;
 *   - a damaged or missing blob reads as CAIRN_ECORRUPT with a message, and
 *     cairn_blob_check reports it; arbitrary bytes as a reference record
 *     give an error, never a crash;
 *   - power cut at every I/O call of a blob workload (puts with dedup,
 *     flush, compaction, GC), and an I/O error at every call: after reopen
 *     every acknowledged value reads back identical, counts are exact, no
 *     reference names a missing blob.
 *
 * Locking: one thread per test except the GC-with-readers test.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob/blob_store.h"
#include "cairn.h"
#include "db/db_internal.h"
#include "env/env.h"
#include "test_util.h"

#define POOL 12
#define VLEN 9000 /* >= the 4096 threshold */

/* Value i of the pool: half random, half zeros (compresses about 2:1). */
static void pool_value(uint8_t *buf, size_t len, uint64_t i)
{
    tu_fill(buf, len / 2, 1000 + i);
    memset(buf + len / 2, (int)(i & 0xFF), len - len / 2);
}

/* The number in a key "keyNNN" (kl bytes, not NUL-terminated); -1 if it
 * is not one. */
static int key_num(const char *k, size_t kl)
{
    if (kl <= 3 || kl > 12 || memcmp(k, "key", 3) != 0)
        return -1;
    int n = 0;
    for (size_t i = 3; i < kl; i++) {
        if (k[i] < '0' || k[i] > '9')
            return -1;
        n = n * 10 + (k[i] - '0');
    }
    return n;
}

static void opts_for(cairn_options *o, cairn_env *env)
{
    cairn_options_init(o);
    o->env = env;
    o->history_ms = 0;
    o->memtable_size = 1u << 20;
    o->wal_segment_size = 256u << 10; /* memory env: small preallocations */
    o->blob_file_size = 256u << 10; /* many sealed files: GC has work */
}

static void check_value(cairn_db *db, const char *key, const uint8_t *want,
                         size_t wlen)
{
    void *v = NULL;
    size_t vl = 0;
    int rc = cairn_get(db, key, strlen(key), &v, &vl);
    if (rc != 0) {
        char msg[256];
        cairn_blob_last_error(db, msg, sizeof msg);
        fprintf(stderr, "get %s: %s (%s)\n", key, cairn_strerror(rc), msg);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(vl, wlen);
    assert_memory_equal(v, want, wlen);
    cairn_free(v);
}

static void expect_check_ok(cairn_db *db)
{
    cairn_blob_check_report r;
    int rc = cairn_blob_check(db, true, &r);
    if (rc != 0)
        fprintf(stderr, "blob check: %s: %s\n", cairn_strerror(rc),
                r.first_error);
    assert_int_equal(rc, 0);
    assert_int_equal(r.mismatched, 0);
    assert_int_equal(r.missing, 0);
}

/* ---- model: key k holds pool value m[k] (or -1: absent) ---- */

#define NKEYS 40

typedef struct model {
    int v[NKEYS];
    size_t len[NKEYS];
} model;

static void key_name(char *buf, size_t cap, int k)
{
    snprintf(buf, cap, "key%03d", k);
}

static void verify_model(cairn_db *db, const model *m)
{
    uint8_t *want = malloc(VLEN * 4);
    assert_non_null(want);
    for (int k = 0; k < NKEYS; k++) {
        char key[32];
        key_name(key, sizeof key, k);
        if (m->v[k] < 0) {
            void *v = NULL;
            assert_int_equal(cairn_get(db, key, strlen(key), &v, NULL),
                             CAIRN_ENOTFOUND);
            continue;
        }
        pool_value(want, m->len[k], (uint64_t)m->v[k]);
        check_value(db, key, want, m->len[k]);
    }
    /* The iterator, forward and backward. */
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    int seen = 0;
    for (cairn_iter_first(it); cairn_iter_valid(it);
         cairn_iter_next(it)) {
        size_t kl, vl;
        const char *kk = cairn_iter_key(it, &kl);
        const void *vv = cairn_iter_value(it, &vl);
        assert_non_null(vv);
        int k = key_num(kk, kl);
        assert_true(k >= 0 && k < NKEYS && m->v[k] >= 0);
        pool_value(want, m->len[k], (uint64_t)m->v[k]);
        assert_int_equal(vl, m->len[k]);
        assert_memory_equal(vv, want, vl);
        seen++;
    }
    assert_int_equal(cairn_iter_status(it), 0);
    int back = 0;
    for (cairn_iter_last(it); cairn_iter_valid(it); cairn_iter_prev(it)) {
        size_t kl, vl;
        const char *kk = cairn_iter_key(it, &kl);
        const void *vv = cairn_iter_value(it, &vl);
        int k = key_num(kk, kl);
        assert_true(k >= 0 && k < NKEYS && m->v[k] >= 0);
        pool_value(want, m->len[k], (uint64_t)m->v[k]);
        assert_int_equal(vl, m->len[k]);
        assert_memory_equal(vv, want, vl);
        back++;
    }
    assert_int_equal(seen, back);
    int live = 0;
    for (int k = 0; k < NKEYS; k++)
        live += m->v[k] >= 0;
    assert_int_equal(seen, live);
    cairn_iter_free(it);
    free(want);
}

/* A random step: put a pool value (some small, kept inline), delete, or a
 * transaction that is aborted. */
static void random_step(cairn_db *db, model *m, uint64_t *rng)
{
    uint8_t *buf = malloc(VLEN * 4);
    assert_non_null(buf);
    int k = (int)tu_rand(rng, NKEYS);
    char key[32];
    key_name(key, sizeof key, k);
    uint64_t r = tu_rand(rng, 10);
    if (r < 6) {
        int v = (int)tu_rand(rng, POOL);
        size_t len = (size_t)(v % 4 == 3 ? 100 : VLEN * (1 + v % 3));
        pool_value(buf, len, (uint64_t)v);
        assert_int_equal(cairn_put(db, key, strlen(key), buf, len, NULL), 0);
        m->v[k] = v;
        m->len[k] = len;
    } else if (r < 8) {
        assert_int_equal(cairn_delete(db, key, strlen(key), NULL), 0);
        m->v[k] = -1;
    } else {
        cairn_txn *t = NULL;
        assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
        pool_value(buf, VLEN, 77);
        assert_int_equal(cairn_txn_put(t, key, strlen(key), buf, VLEN), 0);
        cairn_txn_abort(t);
    }
    free(buf);
}

static void test_roundtrip_dedup(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_options o;
    opts_for(&o, env);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    uint8_t buf[VLEN];
    uint64_t vers[POOL * 3];
    for (int i = 0; i < POOL * 3; i++) {
        char key[32];
        key_name(key, sizeof key, i);
        pool_value(buf, VLEN, (uint64_t)(i % POOL));
        assert_int_equal(cairn_put(db, key, strlen(key), buf, VLEN, &vers[i]),
                         0);
    }
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_int_equal(st.blob_distinct, POOL);
    assert_int_equal(st.blob_dedup_hits, POOL * 2);
    assert_int_equal(st.blob_logical_bytes, (uint64_t)VLEN * POOL * 3);
    /* compressed about 2:1, stored once */
    assert_true(st.blob_stored_bytes < (uint64_t)VLEN * POOL * 6 / 10);
    assert_true(st.blob_stored_bytes > (uint64_t)VLEN * POOL * 4 / 10);
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < POOL * 3; i++) {
            char key[32];
            key_name(key, sizeof key, i);
            pool_value(buf, VLEN, (uint64_t)(i % POOL));
            check_value(db, key, buf, VLEN); /* twice: the row cache */
            check_value(db, key, buf, VLEN);
            void *v = NULL;
            size_t vl = 0;
            (void)vers;
            assert_int_equal(cairn_get_at_version(db, key, strlen(key),
                                                  cairn_current_version(db),
                                                  &v, &vl),
                             0);
            assert_int_equal(vl, VLEN);
            assert_memory_equal(v, buf, VLEN);
            cairn_free(v);
            cairn_txn *t = NULL;
            assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
            assert_int_equal(cairn_txn_get(t, key, strlen(key), &v, &vl), 0);
            assert_memory_equal(v, buf, VLEN);
            cairn_free(v);
            cairn_txn_abort(t);
            cairn_key_version *kv = NULL;
            size_t nkv = 0;
            assert_int_equal(cairn_key_versions(db, key, strlen(key), 0, &kv,
                                                &nkv),
                             0);
            assert_true(nkv >= 1);
            assert_int_equal(kv[0].vlen, VLEN);
            assert_memory_equal(kv[0].value, buf, VLEN);
            cairn_key_versions_free(kv, nkv);
        }
        expect_check_ok(db);
        if (pass == 0)
            assert_int_equal(cairn_flush(db), 0);
        if (pass == 1) {
            assert_int_equal(cairn_close(db), 0);
            assert_int_equal(cairn_open("/db", &o, &db), 0);
        }
    }
    /* The log and the sorted files hold references, not the values. */
    cairn_get_stats(db, &st);
    assert_true(st.sst_logical_bytes < (uint64_t)VLEN * POOL);
    assert_int_equal(st.blob_distinct, POOL);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

static void test_counts_exact(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_options o;
    opts_for(&o, env);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    model m;
    for (int k = 0; k < NKEYS; k++)
        m.v[k] = -1;
    uint64_t rng = 42;
    for (int round = 0; round < 12; round++) {
        for (int i = 0; i < 60; i++)
            random_step(db, &m, &rng);
        verify_model(db, &m);
        expect_check_ok(db);
        switch (round % 4) {
        case 0:
            assert_int_equal(cairn_flush(db), 0);
            break;
        case 1:
            assert_int_equal(cairn_compact(db, NULL, NULL), 0);
            break;
        case 2:
            assert_int_equal(cairn_close(db), 0);
            assert_int_equal(cairn_open("/db", &o, &db), 0);
            break;
        default:
            assert_int_equal(cairn_blob_gc(db, 0), 0);
            break;
        }
        verify_model(db, &m);
        expect_check_ok(db);
    }
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

static void test_gc_reclaims(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_options o;
    opts_for(&o, env);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    enum { N = 200 };
    uint8_t buf[VLEN];
    for (int i = 0; i < N; i++) {
        char key[32];
        snprintf(key, sizeof key, "g%04d", i);
        pool_value(buf, VLEN, (uint64_t)(5000 + i));
        assert_int_equal(cairn_put(db, key, strlen(key), buf, VLEN, NULL), 0);
    }
    cairn_stats s0, s1;
    cairn_get_stats(db, &s0);
    for (int i = 0; i < N; i += 2) {
        char key[32];
        snprintf(key, sizeof key, "g%04d", i);
        assert_int_equal(cairn_delete(db, key, strlen(key), NULL), 0);
    }
    /* History 0: a full compaction drops the deleted versions. */
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    expect_check_ok(db);
    assert_int_equal(cairn_blob_gc(db, 0), 0);
    cairn_get_stats(db, &s1);
    fprintf(stderr,
            "gc: stored %" PRIu64 " -> %" PRIu64 " bytes (dead %" PRIu64
            "), files %" PRIu64 " -> %" PRIu64 ", reclaimed %" PRIu64 "\n",
            s0.blob_stored_bytes, s1.blob_stored_bytes, s1.blob_dead_bytes,
            s0.blob_files, s1.blob_files, s1.blob_gc_bytes_reclaimed);
    assert_int_equal(s1.blob_distinct, N / 2);
    /* Only the live half is left, but for the appender's current file
     * (never rewritten while written): at most one file's worth more. */
    uint64_t live = s0.blob_stored_bytes / 2;
    assert_true(s1.blob_stored_bytes >= live);
    assert_true(s1.blob_stored_bytes - s1.blob_dead_bytes <= live + live / 20);
    assert_true(s1.blob_dead_bytes <= o.blob_file_size);
    assert_true(s1.blob_gc_bytes_reclaimed > 0);
    for (int i = 1; i < N; i += 2) {
        char key[32];
        snprintf(key, sizeof key, "g%04d", i);
        pool_value(buf, VLEN, (uint64_t)(5000 + i));
        check_value(db, key, buf, VLEN);
    }
    expect_check_ok(db);
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    for (int i = 1; i < N; i += 2) {
        char key[32];
        snprintf(key, sizeof key, "g%04d", i);
        pool_value(buf, VLEN, (uint64_t)(5000 + i));
        check_value(db, key, buf, VLEN);
    }
    expect_check_ok(db);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

static void test_snapshot_keeps_blob(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_options o;
    opts_for(&o, env);
    o.blob_file_size = 64u << 10;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    uint8_t a[VLEN], b[VLEN];
    pool_value(a, VLEN, 1);
    pool_value(b, VLEN, 2);
    assert_int_equal(cairn_put(db, "k", 1, a, VLEN, NULL), 0);
    /* Fill a few files so the one holding a is sealed. */
    for (int i = 0; i < 30; i++) {
        uint8_t f[VLEN];
        pool_value(f, VLEN, (uint64_t)(900 + i));
        char key[16];
        snprintf(key, sizeof key, "f%d", i);
        assert_int_equal(cairn_put(db, key, strlen(key), f, VLEN, NULL), 0);
        assert_int_equal(cairn_delete(db, key, strlen(key), NULL), 0);
    }
    cairn_txn *ro = NULL;
    cairn_txn_options to = {0};
    to.read_only = true;
    assert_int_equal(cairn_txn_begin(db, &to, &ro), 0);
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    assert_int_equal(cairn_put(db, "k", 1, b, VLEN, NULL), 0);
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    assert_int_equal(cairn_blob_gc(db, 0), 0);
    /* a is dead in the current version, alive for the snapshot. */
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(cairn_txn_get(ro, "k", 1, &v, &vl), 0);
    assert_int_equal(vl, VLEN);
    assert_memory_equal(v, a, VLEN);
    cairn_free(v);
    cairn_iter_seek(it, "k", 1);
    assert_true(cairn_iter_valid(it));
    const void *iv = cairn_iter_value(it, &vl);
    assert_non_null(iv);
    assert_memory_equal(iv, a, VLEN);
    check_value(db, "k", b, VLEN);
    cairn_stats s;
    cairn_get_stats(db, &s);
    uint64_t distinct_with = s.blob_distinct;
    cairn_iter_free(it);
    cairn_txn_abort(ro);
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    assert_int_equal(cairn_blob_gc(db, 0), 0);
    cairn_get_stats(db, &s);
    assert_true(s.blob_distinct < distinct_with);
    check_value(db, "k", b, VLEN);
    expect_check_ok(db);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

/* Reads of the past (inside the history window) keep their blobs; blob
 * files and sorted files never share a number, also across reopens. */
static void test_history_and_numbers(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_options o;
    opts_for(&o, env);
    o.history_ms = 600000;
    o.blob_file_size = 32u << 10;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    uint8_t a[VLEN], b[VLEN];
    pool_value(a, VLEN, 31);
    pool_value(b, VLEN, 32);
    uint64_t va = 0;
    assert_int_equal(cairn_put(db, "h", 1, a, VLEN, &va), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cairn_put(db, "h", 1, b, VLEN, NULL), 0);
        assert_int_equal(cairn_delete(db, "h", 1, NULL), 0);
        assert_int_equal(cairn_flush(db), 0);
        assert_int_equal(cairn_close(db), 0);
        assert_int_equal(cairn_open("/db", &o, &db), 0);
    }
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    assert_int_equal(cairn_blob_gc(db, 0), 0);
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(cairn_get_at_version(db, "h", 1, va, &v, &vl), 0);
    assert_int_equal(vl, VLEN);
    assert_memory_equal(v, a, VLEN);
    cairn_free(v);
    assert_int_equal(cairn_get(db, "h", 1, &v, &vl), CAIRN_ENOTFOUND);
    expect_check_ok(db);
    assert_int_equal(cairn_close(db), 0);
    /* Every number is used once: NNNNNN.sst and NNNNNN.blob. */
    char **l1 = NULL, **l2 = NULL;
    size_t n1 = 0, n2 = 0;
    assert_int_equal(cairn_env_list_dir(env, "/db", &l1, &n1), 0);
    assert_int_equal(cairn_env_list_dir(env, "/db/blob", &l2, &n2), 0);
    unsigned long nums[256];
    size_t nn = 0, nblob = 0;
    for (size_t i = 0; i < n1 + n2; i++) {
        const char *nm = i < n1 ? l1[i] : l2[i - n1];
        unsigned long x;
        char ext[8];
        if (sscanf(nm, "%lu.%7s", &x, ext) == 2 &&
            (strcmp(ext, "sst") == 0 || strcmp(ext, "blob") == 0)) {
            for (size_t j = 0; j < nn; j++)
                assert_true(nums[j] != x);
            if (nn < 256)
                nums[nn++] = x;
            nblob += strcmp(ext, "blob") == 0;
        }
    }
    assert_true(nblob >= 1);
    cairn_env_free_list(l1, n1);
    cairn_env_free_list(l2, n2);
    cairn_env_destroy(env);
}

static void test_chunking(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_options o;
    opts_for(&o, env);
    o.blob_file_size = 0;
    o.memtable_size = 4u << 20;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    size_t n = 64u << 20;
    uint8_t *v = malloc(n);
    assert_non_null(v);
    tu_fill(v, n, 7);
    assert_int_equal(cairn_put(db, "big1", 4, v, n, NULL), 0);
    cairn_stats s0, s1;
    cairn_get_stats(db, &s0);
    uint64_t rng = 3;
    for (int i = 0; i < 10; i++)
        v[tu_rand(&rng, n)] ^= 0x5A;
    assert_int_equal(cairn_put(db, "big2", 4, v, n, NULL), 0);
    cairn_get_stats(db, &s1);
    uint64_t grew = s1.blob_stored_bytes - s0.blob_stored_bytes;
    fprintf(stderr,
            "chunking: 64 MiB value: %" PRIu64 " stored bytes; the copy with "
            "10 edits added %" PRIu64 " bytes (%" PRIu64 " chunks)\n",
            s0.blob_stored_bytes, grew, s1.blob_distinct - s0.blob_distinct);
    /* each edit changes a chunk or two of 16..256 KiB */
    assert_true(grew <= 20 * (256u << 10));
    assert_true(s1.blob_distinct - s0.blob_distinct <= 20);
    void *got = NULL;
    size_t gl = 0;
    assert_int_equal(cairn_get(db, "big2", 4, &got, &gl), 0);
    assert_int_equal(gl, n);
    assert_memory_equal(got, v, n);
    cairn_free(got);
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(cairn_get(db, "big1", 4, &got, &gl), 0);
    assert_int_equal(gl, n);
    tu_fill(v, n, 7);
    assert_memory_equal(got, v, n);
    cairn_free(got);
    expect_check_ok(db);
    free(v);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

/* The blob files of /db/blob. */
static size_t blob_files(cairn_env *env, char names[][64], size_t cap)
{
    char **list = NULL;
    size_t count = 0, n = 0;
    assert_int_equal(cairn_env_list_dir(env, "/db/blob", &list, &count), 0);
    for (size_t i = 0; i < count && n < cap; i++)
        if (strstr(list[i], ".blob"))
            snprintf(names[n++], 64, "/db/blob/%s", list[i]);
    cairn_env_free_list(list, count);
    return n;
}

static void test_damage(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_options o;
    opts_for(&o, env);
    o.row_cache_size = 0;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    uint8_t buf[VLEN];
    pool_value(buf, VLEN, 3);
    assert_int_equal(cairn_put(db, "a", 1, buf, VLEN, NULL), 0);
    assert_int_equal(cairn_close(db), 0);
    char names[8][64];
    assert_int_equal(blob_files(env, names, 8), 1);
    /* Flip a byte inside the record (past the file and record headers). */
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, names[0], CAIRN_OPEN_READ |
                                                       CAIRN_OPEN_WRITE,
                                    &f),
                     0);
    uint8_t byte;
    size_t got = 0;
    assert_int_equal(cairn_file_read_at(f, 32 + 64 + 10, &byte, 1, &got), 0);
    byte ^= 0xFF;
    assert_int_equal(cairn_file_write_at(f, 32 + 64 + 10, &byte, 1), 0);
    assert_int_equal(cairn_file_close(f), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    void *v = NULL;
    assert_int_equal(cairn_get(db, "a", 1, &v, NULL), CAIRN_ECORRUPT);
    char msg[256];
    cairn_blob_last_error(db, msg, sizeof msg);
    fprintf(stderr, "damaged blob: %s\n", msg);
    assert_non_null(strstr(msg, "blob"));
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    cairn_iter_first(it);
    assert_false(cairn_iter_valid(it));
    assert_int_equal(cairn_iter_status(it), CAIRN_ECORRUPT);
    cairn_iter_free(it);
    cairn_blob_check_report r;
    assert_int_equal(cairn_blob_check(db, true, &r), CAIRN_ECORRUPT);
    assert_int_equal(r.missing, 1);
    assert_int_equal(cairn_close(db), 0);
    /* A missing file: every read of it is CAIRN_ECORRUPT too. */
    assert_int_equal(cairn_env_unlink(env, names[0]), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    assert_int_equal(cairn_get(db, "a", 1, &v, NULL), CAIRN_ECORRUPT);
    cairn_blob_last_error(db, msg, sizeof msg);
    assert_non_null(strstr(msg, "missing"));
    assert_int_equal(cairn_blob_check(db, false, &r), CAIRN_ECORRUPT);
    assert_int_equal(r.missing, 1);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

/* Arbitrary bytes as a reference record: an error, never a crash. */
static uint64_t num_fn(void *arg)
{
    return ++*(uint64_t *)arg;
}

static void test_bad_references(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    uint64_t num = 0;
    cairn_blob_store_options bo = {.env = env, .dir = "/b",
                                   .next_number = num_fn,
                                   .next_number_arg = &num};
    cairn_blob_store *s = NULL;
    assert_int_equal(cairn_blob_store_open(&bo, &s, NULL, 0), 0);
    uint8_t val[5000];
    tu_fill(val, sizeof val, 1);
    uint8_t *ref = NULL;
    size_t rl = 0;
    uint64_t seq = 0;
    assert_int_equal(cairn_blob_store_put(s, val, sizeof val, &ref, &rl, &seq),
                     0);
    assert_int_equal(cairn_blob_store_sync(s, seq), 0);
    uint64_t rng = 9;
    uint8_t buf[512];
    for (int i = 0; i < 20000; i++) {
        size_t n;
        if (i % 2) { /* mutate the real record */
            n = rl;
            memcpy(buf, ref, rl);
            for (int j = 0; j < 1 + (int)tu_rand(&rng, 3); j++)
                buf[tu_rand(&rng, n)] ^= (uint8_t)(1 + tu_rand(&rng, 255));
            if (tu_rand(&rng, 4) == 0)
                n = tu_rand(&rng, rl + 1);
        } else {
            n = tu_rand(&rng, sizeof buf);
            tu_fill(buf, n, tu_splitmix(&rng));
        }
        void *out = NULL;
        size_t ol = 0;
        int rc = cairn_blob_store_get(s, buf, n, &out, &ol, NULL, 0);
        if (rc == 0) { /* only a record naming the stored blob reads */
            assert_int_equal(ol, sizeof val);
            assert_memory_equal(out, val, sizeof val);
        } else {
            assert_true(rc == CAIRN_ECORRUPT);
        }
        free(out);
    }
    free(ref);
    assert_int_equal(cairn_blob_store_close(s), 0);
    cairn_env_destroy(env);
}

/* ---- faults ---- */

typedef struct fmodel {
    int v[NKEYS];     /* acknowledged value, -1 absent */
    int maybe[NKEYS]; /* a failed write's value (-2: none) */
} fmodel;

/* The workload for the fault tests; stops at the first error. */
static int fault_workload(cairn_db *db, fmodel *m, uint64_t seed)
{
    uint64_t rng = seed;
    uint8_t buf[VLEN];
    for (int i = 0; i < 36; i++) {
        int k = (int)tu_rand(&rng, 12);
        char key[32];
        key_name(key, sizeof key, k);
        int v = (int)tu_rand(&rng, 6);
        pool_value(buf, VLEN, (uint64_t)v);
        int rc;
        if (i % 9 == 8) {
            m->maybe[k] = -1;
            rc = cairn_delete(db, key, strlen(key), NULL);
            if (rc == 0)
                m->v[k] = -1;
        } else {
            m->maybe[k] = v;
            rc = cairn_put(db, key, strlen(key), buf, VLEN, NULL);
            if (rc == 0)
                m->v[k] = v;
        }
        if (rc == 0)
            m->maybe[k] = -2;
        if (rc)
            return rc;
        if (i == 12 && (rc = cairn_flush(db)) != 0)
            return rc;
        if (i == 24 && (rc = cairn_compact(db, NULL, NULL)) != 0)
            return rc;
    }
    return cairn_blob_gc(db, 0);
}

static void fault_verify(cairn_db *db, const fmodel *m)
{
    uint8_t buf[VLEN];
    for (int k = 0; k < 12; k++) {
        char key[32];
        key_name(key, sizeof key, k);
        void *v = NULL;
        size_t vl = 0;
        int rc = cairn_get(db, key, strlen(key), &v, &vl);
        bool ok = false;
        if (rc == CAIRN_ENOTFOUND)
            ok = m->v[k] == -1 || m->maybe[k] == -1;
        else if (rc == 0 && vl == VLEN) {
            for (int c = 0; c < 2 && !ok; c++) {
                int want = c ? m->maybe[k] : m->v[k];
                if (want < 0)
                    continue;
                pool_value(buf, VLEN, (uint64_t)want);
                ok = memcmp(v, buf, VLEN) == 0;
            }
        }
        if (!ok) {
            char msg[256];
            cairn_blob_last_error(db, msg, sizeof msg);
            fprintf(stderr, "key %d: rc %s (%s), acked %d, maybe %d\n", k,
                    cairn_strerror(rc), msg, m->v[k], m->maybe[k]);
        }
        assert_true(ok);
        cairn_free(v);
    }
    expect_check_ok(db);
}

static void run_faults(bool power)
{
    uint64_t total = 0;
    {
        /* Count the calls of a clean run. */
        cairn_env *mem = cairn_env_mem_new();
        cairn_env *env = cairn_env_fault_new(mem);
        cairn_options o;
        opts_for(&o, env);
        o.blob_file_size = 32u << 10;
        cairn_db *db = NULL;
        assert_int_equal(cairn_open("/db", &o, &db), 0);
        fmodel m;
        for (int k = 0; k < NKEYS; k++) {
            m.v[k] = -1;
            m.maybe[k] = -2;
        }
        cairn_fault_rule all = {0};
        cairn_env_fault_set(env, &all);
        assert_int_equal(fault_workload(db, &m, 5), 0);
        total = cairn_env_fault_calls(env);
        assert_int_equal(cairn_close(db), 0);
        cairn_env_destroy(env);
        cairn_env_destroy(mem);
    }
    assert_true(total > 50);
    uint64_t step = total > 400 ? total / 400 : 1;
    uint64_t cases = 0;
    for (uint64_t at = 1; at <= total; at += step) {
        cairn_env *mem = cairn_env_mem_new();
        cairn_env *env = cairn_env_fault_new(mem);
        cairn_options o;
        opts_for(&o, env);
        o.blob_file_size = 32u << 10;
        cairn_db *db = NULL;
        assert_int_equal(cairn_open("/db", &o, &db), 0);
        fmodel m;
        for (int k = 0; k < NKEYS; k++) {
            m.v[k] = -1;
            m.maybe[k] = -2;
        }
        cairn_fault_rule rule = {0};
        if (power) {
            rule.power_cut_at = at;
            rule.torn = at % 2;
            rule.seed = at;
        } else {
            rule.fail_at = at;
            rule.error = at % 3 ? CAIRN_EIO : CAIRN_ENOSPC;
        }
        cairn_env_fault_set(env, &rule);
        (void)fault_workload(db, &m, 5);
        (void)cairn_close(db);
        if (power && !cairn_env_fault_power_is_cut(env))
            assert_int_equal(cairn_env_mem_power_loss(mem, false, at), 0);
        cairn_env_fault_reset(env);
        int rc = cairn_open("/db", &o, &db);
        if (rc != 0)
            fprintf(stderr, "%s at call %" PRIu64 ": reopen: %s\n",
                    power ? "power cut" : "I/O error", at,
                    cairn_strerror(rc));
        assert_int_equal(rc, 0);
        fault_verify(db, &m);
        /* The recovered store takes writes and GC. */
        uint8_t buf[VLEN];
        pool_value(buf, VLEN, 99);
        assert_int_equal(cairn_put(db, "x", 1, buf, VLEN, NULL), 0);
        assert_int_equal(cairn_blob_gc(db, 0), 0);
        check_value(db, "x", buf, VLEN);
        fault_verify(db, &m);
        assert_int_equal(cairn_close(db), 0);
        cairn_env_destroy(env);
        cairn_env_destroy(mem);
        cases++;
    }
    fprintf(stderr, "%s: %" PRIu64 " calls in the workload, %" PRIu64
                    " cases\n",
            power ? "power cut at each call" : "I/O error at each call", total,
            cases);
}

static void test_power_cut_each_call(void **state)
{
    (void)state;
    run_faults(true);
}

static void test_io_error_each_call(void **state)
{
    (void)state;
    run_faults(false);
}

/* ---- power loss at each step of a GC ---- */

typedef struct gc_cut {
    cairn_env *mem;
    int at; /* the step to cut power at */
    bool cut;
} gc_cut;

static void gc_hook(void *arg, int step)
{
    gc_cut *g = arg;
    if (!g->cut && step == g->at) {
        assert_int_equal(cairn_env_mem_power_loss(g->mem, true, 77), 0);
        g->cut = true;
    }
}

static void test_gc_power_loss_steps(void **state)
{
    (void)state;
    for (int at = 0; at <= 2; at++) {
        cairn_env *mem = cairn_env_mem_new();
        cairn_options o;
        opts_for(&o, mem);
        o.blob_file_size = 64u << 10;
        cairn_db *db = NULL;
        assert_int_equal(cairn_open("/db", &o, &db), 0);
        uint8_t buf[VLEN];
        for (int i = 0; i < 60; i++) {
            char key[32];
            snprintf(key, sizeof key, "g%04d", i);
            pool_value(buf, VLEN, (uint64_t)(700 + i));
            assert_int_equal(cairn_put(db, key, strlen(key), buf, VLEN, NULL),
                             0);
        }
        for (int i = 0; i < 60; i += 2) {
            char key[32];
            snprintf(key, sizeof key, "g%04d", i);
            assert_int_equal(cairn_delete(db, key, strlen(key), NULL), 0);
        }
        assert_int_equal(cairn_compact(db, NULL, NULL), 0);
        cairn_stats s0;
        cairn_get_stats(db, &s0);
        gc_cut g = {mem, at, false};
        cairn_blob_store_set_gc_hook(db->blobs, gc_hook, &g);
        (void)cairn_blob_gc(db, 0); /* fails once the power is gone */
        assert_true(g.cut);
        (void)cairn_close(db);
        assert_int_equal(cairn_open("/db", &o, &db), 0);
        for (int i = 1; i < 60; i += 2) {
            char key[32];
            snprintf(key, sizeof key, "g%04d", i);
            pool_value(buf, VLEN, (uint64_t)(700 + i));
            check_value(db, key, buf, VLEN);
        }
        expect_check_ok(db);
        /* A later GC reclaims what the cut left. */
        assert_int_equal(cairn_blob_gc(db, 0), 0);
        cairn_stats s1;
        cairn_get_stats(db, &s1);
        assert_true(s1.blob_stored_bytes < s0.blob_stored_bytes);
        assert_true(s1.blob_dead_bytes <= o.blob_file_size);
        for (int i = 1; i < 60; i += 2) {
            char key[32];
            snprintf(key, sizeof key, "g%04d", i);
            pool_value(buf, VLEN, (uint64_t)(700 + i));
            check_value(db, key, buf, VLEN);
        }
        expect_check_ok(db);
        assert_int_equal(cairn_close(db), 0);
        cairn_env_destroy(mem);
    }
}

/* ---- GC while readers read ---- */

typedef struct rd_arg {
    cairn_db *db;
    atomic_bool stop;
    atomic_uint_fast64_t reads, bad;
} rd_arg;

static void *reader_main(void *p)
{
    rd_arg *a = p;
    uint8_t buf[VLEN];
    uint64_t rng = 11;
    /* At least one read, however late this thread starts. */
    while (atomic_load(&a->reads) == 0 || !atomic_load(&a->stop)) {
        int i = 1 + 2 * (int)tu_rand(&rng, 100); /* the kept (odd) keys */
        char key[32];
        snprintf(key, sizeof key, "g%04d", i);
        void *v = NULL;
        size_t vl = 0;
        int rc = cairn_get(a->db, key, strlen(key), &v, &vl);
        pool_value(buf, VLEN, (uint64_t)(5000 + i));
        if (rc != 0 || vl != VLEN || memcmp(v, buf, VLEN) != 0)
            atomic_fetch_add(&a->bad, 1);
        cairn_free(v);
        atomic_fetch_add(&a->reads, 1);
    }
    return NULL;
}

static void test_gc_with_readers(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_options o;
    opts_for(&o, env);
    o.row_cache_size = 0; /* every read goes to the blob files */
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    uint8_t buf[VLEN];
    for (int i = 0; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof key, "g%04d", i);
        pool_value(buf, VLEN, (uint64_t)(5000 + i));
        assert_int_equal(cairn_put(db, key, strlen(key), buf, VLEN, NULL), 0);
    }
    rd_arg a = {.db = db};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &a), 0);
    for (int round = 0; round < 4; round++) {
        for (int i = round % 2 ? 0 : 200; i < 200; i += 2) {
            char key[32];
            snprintf(key, sizeof key, "g%04d", i);
            assert_int_equal(cairn_delete(db, key, strlen(key), NULL), 0);
        }
        /* new garbage: values written then deleted */
        for (int i = 0; i < 40; i++) {
            pool_value(buf, VLEN, (uint64_t)(9000 + round * 100 + i));
            assert_int_equal(cairn_put(db, "tmp", 3, buf, VLEN, NULL), 0);
        }
        assert_int_equal(cairn_delete(db, "tmp", 3, NULL), 0);
        assert_int_equal(cairn_compact(db, NULL, NULL), 0);
        assert_int_equal(cairn_blob_gc(db, 0), 0);
    }
    atomic_store(&a.stop, true);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    fprintf(stderr, "gc with readers: %" PRIu64 " reads, %" PRIu64 " bad\n",
            (uint64_t)atomic_load(&a.reads), (uint64_t)atomic_load(&a.bad));
    assert_true(atomic_load(&a.reads) > 0);
    assert_int_equal(atomic_load(&a.bad), 0);
    cairn_stats s;
    cairn_get_stats(db, &s);
    assert_true(s.blob_gc_bytes_reclaimed > 0);
    expect_check_ok(db);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_dedup),
        cmocka_unit_test(test_counts_exact),
        cmocka_unit_test(test_gc_reclaims),
        cmocka_unit_test(test_snapshot_keeps_blob),
        cmocka_unit_test(test_history_and_numbers),
        cmocka_unit_test(test_chunking),
        cmocka_unit_test(test_damage),
        cmocka_unit_test(test_bad_references),
        cmocka_unit_test(test_power_cut_each_call),
        cmocka_unit_test(test_io_error_each_call),
        cmocka_unit_test(test_gc_power_loss_steps),
        cmocka_unit_test(test_gc_with_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
