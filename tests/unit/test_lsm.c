/*
 * test_lsm.c — the database over sorted files, checked step by step against
 * a simple in-memory model: random puts, deletes, reads, range scans,
 * snapshots held across flushes and compactions, history reads and reopens,
 * with a tiny memtable and tiny levels so that the run goes through many
 * flushes and compactions (the test asserts that it did).
 *
 * Knobs: CAIRN_LSM_OPS (operations, default 6000), CAIRN_TEST_SEED.
 * Locking: single-threaded (the engine's background threads run beside it).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cairn.h"
#include "env/env.h"
#include "test_util.h"

#define NKEYS 600
#define MAXV 300

typedef struct model {
    char *val[NKEYS]; /* NULL: absent */
    size_t len[NKEYS];
} model;

static void key_of(int i, char *k) { snprintf(k, 16, "key%05d", i); }

static void model_copy(model *dst, const model *src)
{
    for (int i = 0; i < NKEYS; i++) {
        dst->len[i] = src->len[i];
        dst->val[i] = NULL;
        if (src->val[i]) {
            dst->val[i] = malloc(src->len[i] + 1);
            memcpy(dst->val[i], src->val[i], src->len[i] + 1);
        }
    }
}

static void model_free(model *m)
{
    for (int i = 0; i < NKEYS; i++) {
        free(m->val[i]);
        m->val[i] = NULL;
    }
}

static void lsm_options(cairn_options *o, cairn_env *env)
{
    cairn_options_init(o);
    o->env = env;
    o->sync_mode = CAIRN_SYNC_NONE;
    o->memtable_size = 24 * 1024;
    o->sst_target_file_size = 8 * 1024;
    o->level_base_size = 32 * 1024;
    o->l0_compaction_trigger = 2;
    o->sst_block_size = 512;
    o->block_cache_size = 64 * 1024;
    o->history_ms = 3600 * 1000;
    o->wal_segment_size = 64 * 1024;
}

/* One key through cairn_txn_get at a snapshot, compared with the model. */
static void check_get(cairn_txn *t, const model *m, int i)
{
    char k[16];
    key_of(i, k);
    void *v = NULL;
    size_t vl = 0;
    int rc = cairn_txn_get(t, k, strlen(k), &v, &vl);
    if (m->val[i]) {
        if (rc != 0)
            fprintf(stderr, "%s: want %zu bytes, got %s\n", k, m->len[i],
                    cairn_strerror(rc));
        assert_int_equal(rc, 0);
        assert_int_equal(vl, m->len[i]);
        assert_memory_equal(v, m->val[i], vl);
    } else {
        if (rc != CAIRN_ENOTFOUND)
            fprintf(stderr, "%s: want absent, got %s (%zu bytes)\n", k,
                    cairn_strerror(rc), vl);
        assert_int_equal(rc, CAIRN_ENOTFOUND);
    }
    cairn_free(v);
}

typedef struct scan_ctx {
    const model *m;
    int next; /* next model index to expect at or after */
    int hi;
    size_t seen;
} scan_ctx;

static int scan_cb(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    scan_ctx *c = arg;
    while (c->next < c->hi && !c->m->val[c->next])
        c->next++;
    assert_true(c->next < c->hi);
    char k[16];
    key_of(c->next, k);
    assert_int_equal(klen, strlen(k));
    assert_memory_equal(key, k, klen);
    assert_int_equal(vlen, c->m->len[c->next]);
    assert_memory_equal(val, c->m->val[c->next], vlen);
    c->next++;
    c->seen++;
    return 0;
}

static void check_scan(cairn_txn *t, const model *m, int lo, int hi)
{
    char a[16], b[16];
    key_of(lo, a);
    key_of(hi, b);
    scan_ctx c = {m, lo, hi, 0};
    assert_int_equal(cairn_txn_scan(t, a, strlen(a), hi < NKEYS ? b : NULL,
                                    hi < NKEYS ? strlen(b) : 0, 0, scan_cb, &c),
                     0);
    while (c.next < hi && !m->val[c.next])
        c.next++;
    assert_int_equal(c.next, hi); /* nothing missing at the end */
}

/* Every key, an absent one, an invalid one and a key too long, read
 * together with cairn_get_many (in an order that jumps across files and
 * blocks, more than one chunk of them), against the model. */
static void check_many(cairn_db *db, const model *m)
{
    enum { N = NKEYS + 3 };
    static char big[70000];
    memset(big, 'k', sizeof big);
    char names[NKEYS][16];
    const void *keys[N];
    size_t lens[N], vlens[N];
    void *vals[N];
    int rcs[N];
    for (int j = 0; j < NKEYS; j++) {
        key_of(j * 7 % NKEYS, names[j]); /* 7 and NKEYS are coprime */
        keys[j] = names[j];
        lens[j] = strlen(names[j]);
    }
    keys[NKEYS] = "absent";
    lens[NKEYS] = 6;
    keys[NKEYS + 1] = NULL; /* invalid */
    lens[NKEYS + 1] = 3;
    keys[NKEYS + 2] = big; /* over the key size limit */
    lens[NKEYS + 2] = sizeof big;
    assert_int_equal(cairn_get_many(db, N, keys, lens, vals, vlens, rcs), 0);
    for (int j = 0; j < NKEYS; j++) {
        int i = j * 7 % NKEYS;
        if (m->val[i]) {
            assert_int_equal(rcs[j], 0);
            assert_int_equal(vlens[j], m->len[i]);
            assert_memory_equal(vals[j], m->val[i], m->len[i]);
            cairn_free(vals[j]);
        } else {
            assert_int_equal(rcs[j], CAIRN_ENOTFOUND);
            assert_null(vals[j]);
        }
    }
    assert_int_equal(rcs[NKEYS], CAIRN_ENOTFOUND);
    assert_int_equal(rcs[NKEYS + 1], CAIRN_EINVAL);
    assert_int_equal(rcs[NKEYS + 2], CAIRN_ETOOLARGE);
    for (int j = NKEYS; j < N; j++)
        assert_null(vals[j]);
    /* Lengths optional; nothing to read; bad arguments. */
    assert_int_equal(cairn_get_many(db, 2, keys, lens, vals, NULL, rcs), 0);
    for (int j = 0; j < 2; j++)
        cairn_free(vals[j]);
    assert_int_equal(cairn_get_many(db, 0, NULL, NULL, NULL, NULL, NULL), 0);
    assert_int_equal(cairn_get_many(NULL, 1, keys, lens, vals, vlens, rcs),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_get_many(db, 1, keys, lens, NULL, vlens, rcs),
                     CAIRN_EINVAL);
}

static void check_all(cairn_db *db, const model *m)
{
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    for (int i = 0; i < NKEYS; i++) {
        /* Hints run ahead of the reads, as a pipelining caller's would,
         * across the tree's flushes and compactions: they change nothing. */
        char k[16];
        key_of((i + 8) % NKEYS, k);
        cairn_prefetch(db, k, strlen(k));
        check_get(t, m, i);
    }
    check_scan(t, m, 0, NKEYS);
    cairn_txn_abort(t);
    check_many(db, m);
}

static void test_model(void **state)
{
    (void)state;
    uint64_t rng = tu_env_u64("CAIRN_TEST_SEED", 20261125);
    uint64_t ops = tu_env_u64("CAIRN_LSM_OPS", 20000);
    cairn_env *env = cairn_env_mem_new();
    cairn_options o;
    lsm_options(&o, env);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    model m = {0};
    /* A snapshot held for a while, with the model as it was. */
    cairn_txn *snap = NULL;
    model snap_m = {0};
    uint64_t snap_until = 0;
    /* A version and the model at it, for history reads. */
    uint64_t hist_ver = 0;
    model hist_m = {0};
    char vbuf[MAXV + 32];
    uint64_t flushes = 0, compactions = 0, reopens = 0;
    for (uint64_t op = 0; op < ops; op++) {
        uint64_t r = tu_rand(&rng, 1000);
        int i = (int)tu_rand(&rng, NKEYS);
        char k[16];
        key_of(i, k);
        if (r < 550) {
            size_t vl = (size_t)tu_rand(&rng, MAXV);
            for (size_t x = 0; x < vl; x++)
                vbuf[x] = (char)('a' + (op + x * 7) % 26);
            vbuf[vl] = 0;
            assert_int_equal(cairn_put(db, k, strlen(k), vbuf, vl, NULL), 0);
            free(m.val[i]);
            m.val[i] = malloc(vl + 1);
            memcpy(m.val[i], vbuf, vl + 1);
            m.len[i] = vl;
        } else if (r < 700) {
            int rc = cairn_delete(db, k, strlen(k), NULL);
            assert_true(rc == 0 || rc == CAIRN_ENOTFOUND);
            free(m.val[i]);
            m.val[i] = NULL;
        } else if (r < 900) {
            cairn_txn *t = NULL;
            assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
            check_get(t, &m, i);
            cairn_txn_abort(t);
        } else if (r < 960) {
            int hi = i + 1 + (int)tu_rand(&rng, 80);
            if (hi > NKEYS)
                hi = NKEYS;
            cairn_txn *t = NULL;
            assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
            check_scan(t, &m, i, hi);
            cairn_txn_abort(t);
        } else if (r < 975) {
            if (snap) { /* check the old snapshot, then let it go */
                for (int j = 0; j < 40; j++)
                    check_get(snap, &snap_m, (int)tu_rand(&rng, NKEYS));
                check_scan(snap, &snap_m, 0, NKEYS);
                cairn_txn_abort(snap);
                model_free(&snap_m);
                snap = NULL;
            }
            cairn_txn_options to = {0};
            to.read_only = true;
            assert_int_equal(cairn_txn_begin(db, &to, &snap), 0);
            model_copy(&snap_m, &m);
            snap_until = op + 1500;
        } else if (r < 990) {
            /* History: the value at a remembered version. */
            if (hist_ver) {
                for (int j = 0; j < 20; j++) {
                    int x = (int)tu_rand(&rng, NKEYS);
                    char kk[16];
                    key_of(x, kk);
                    void *v = NULL;
                    size_t vl = 0;
                    int rc = cairn_get_at_version(db, kk, strlen(kk), hist_ver,
                                                  &v, &vl);
                    if (rc == CAIRN_EHISTORY)
                        break; /* after a reopen: refused, never wrong */
                    if (hist_m.val[x]) {
                        assert_int_equal(rc, 0);
                        assert_int_equal(vl, hist_m.len[x]);
                        assert_memory_equal(v, hist_m.val[x], vl);
                    } else {
                        assert_int_equal(rc, CAIRN_ENOTFOUND);
                    }
                    cairn_free(v);
                }
                model_free(&hist_m);
            }
            hist_ver = cairn_current_version(db);
            model_copy(&hist_m, &m);
        } else if (r < 993) {
            if (snap) { /* a reopen ends every transaction */
                check_scan(snap, &snap_m, 0, NKEYS);
                cairn_txn_abort(snap);
                model_free(&snap_m);
                snap = NULL;
            }
            cairn_stats st;
            cairn_get_stats(db, &st);
            flushes += st.flushes;
            compactions += st.compactions;
            assert_int_equal(cairn_close(db), 0);
            assert_int_equal(cairn_open("/db", &o, &db), 0);
            reopens++;
            check_all(db, &m);
        }
        if (snap && op >= snap_until) {
            check_scan(snap, &snap_m, 0, NKEYS);
            cairn_txn_abort(snap);
            model_free(&snap_m);
            snap = NULL;
        }
    }
    if (snap) {
        check_scan(snap, &snap_m, 0, NKEYS);
        cairn_txn_abort(snap);
        model_free(&snap_m);
    }
    check_all(db, &m);
    cairn_stats st;
    cairn_get_stats(db, &st);
    flushes += st.flushes;
    compactions += st.compactions;
    uint64_t files = 0;
    for (int l = 0; l < 8; l++)
        files += st.level_files[l];
    fprintf(stderr,
            "lsm model: %" PRIu64 " ops, %" PRIu64 " reopens, %" PRIu64
            " flushes, %" PRIu64 " compactions, %" PRIu64
            " files now (L0 %" PRIu64 ", L1 %" PRIu64 ", L2 %" PRIu64
            "), cache hits %" PRIu64 " misses %" PRIu64 "\n",
            ops, reopens, flushes, compactions, files, st.level_files[0],
            st.level_files[1], st.level_files[2], st.block_cache_hits,
            st.block_cache_misses);
    assert_true(flushes > 10);
    assert_true(compactions > 2);
    assert_true(st.level_files[1] + st.level_files[2] > 0);
    /* An explicit flush leaves nothing in memory tables; reads unchanged. */
    assert_int_equal(cairn_flush(db), 0);
    cairn_get_stats(db, &st);
    assert_int_equal(st.memtable_entries, 0);
    check_all(db, &m);
    assert_int_equal(cairn_close(db), 0);
    /* Once more after a clean close. */
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    check_all(db, &m);
    assert_int_equal(cairn_close(db), 0);
    model_free(&m);
    model_free(&hist_m);
    cairn_env_destroy(env);
}

/* No space for sorted files: flushes fail, frozen memtables pile up, and
 * writes then fail with CAIRN_ENOSPC instead of waiting forever or growing
 * memory without bound; reads go on; once space is back, writes resume and
 * nothing acknowledged is lost. */
static void test_disk_full(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    cairn_options o;
    lsm_options(&o, env);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    model m = {0};
    char vbuf[MAXV + 1];
    memset(vbuf, 'x', sizeof vbuf);
    int i = 0;
    for (; i < 300; i++) { /* some data in files first */
        char k[16];
        key_of(i % NKEYS, k);
        assert_int_equal(cairn_put(db, k, strlen(k), vbuf, 100, NULL), 0);
        free(m.val[i % NKEYS]);
        m.val[i % NKEYS] = strndup(vbuf, 100);
        m.len[i % NKEYS] = 100;
    }
    cairn_fault_rule rule = {
        .op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE) | CAIRN_OPMASK(CAIRN_OP_OPEN),
        .path_substr = ".sst",
        .fail_at = 1,
        .fail_count = UINT64_MAX,
        .error = CAIRN_ENOSPC,
    };
    cairn_env_fault_set(env, &rule);
    int rc = 0;
    int acked = 0;
    for (int n = 0; n < 100000 && rc == 0; n++, i++) {
        char k[16];
        key_of(i % NKEYS, k);
        vbuf[0] = (char)('a' + n % 26);
        rc = cairn_put(db, k, strlen(k), vbuf, 200, NULL);
        if (rc == 0) {
            free(m.val[i % NKEYS]);
            m.val[i % NKEYS] = strndup(vbuf, 200);
            m.len[i % NKEYS] = 200;
            acked++;
        }
    }
    fprintf(stderr, "disk full: %d writes acknowledged, then %s\n", acked,
            cairn_strerror(rc));
    assert_int_equal(rc, CAIRN_ENOSPC);
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_int_equal(st.background_error, CAIRN_ENOSPC);
    check_all(db, &m); /* reads go on */
    /* Space is back: the collector retries (about once a second). */
    cairn_env_fault_reset(env);
    rc = CAIRN_ENOSPC;
    for (int tries = 0; tries < 100 && rc != 0; tries++) {
        char k[16];
        key_of(0, k);
        rc = cairn_put(db, k, strlen(k), "back", 4, NULL);
        if (rc != 0) {
            struct timespec d = {0, 100 * 1000000L};
            nanosleep(&d, NULL);
        }
    }
    assert_int_equal(rc, 0);
    free(m.val[0]);
    m.val[0] = strdup("back");
    m.len[0] = 4;
    check_all(db, &m);
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    check_all(db, &m);
    assert_int_equal(cairn_close(db), 0);
    model_free(&m);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

typedef struct progress_log {
    int calls, last_level, target;
    uint64_t done, total;
} progress_log;

/* A commit whose validation cannot read the sorted files (a disk error)
 * fails with that error, not with CAIRN_ECONFLICT: a caller that retries
 * conflicts would otherwise loop for as long as the disk is broken. */
static void test_validation_read_error(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    cairn_options o;
    lsm_options(&o, env);
    /* A cache too small to keep a block (not even those the flushes
     * write): validation has to read the file. */
    o.block_cache_size = 1024;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    assert_int_equal(cairn_put(db, "k", 1, "v1", 2, NULL), 0);
    assert_int_equal(cairn_flush(db), 0);
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    /* Files now hold a version newer than t's snapshot, so validating k
     * must read them. */
    assert_int_equal(cairn_put(db, "other", 5, "x", 1, NULL), 0);
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(cairn_txn_put(t, "k", 1, "v2", 2), 0);
    cairn_fault_rule rule = {.op_mask = CAIRN_OPMASK(CAIRN_OP_READ),
                             .path_substr = ".sst",
                             .fail_at = 1,
                             .fail_count = UINT64_MAX,
                             .error = CAIRN_EIO};
    cairn_env_fault_set(env, &rule);
    int rc = cairn_txn_commit(t, NULL);
    assert_true(cairn_env_fault_injected(env) >= 1);
    assert_int_equal(rc, CAIRN_EIO);
    cairn_env_fault_reset(env);
    /* The disk works again: the same transaction commits. */
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    assert_int_equal(cairn_txn_put(t, "k", 1, "v2", 2), 0);
    assert_int_equal(cairn_txn_commit(t, NULL), 0);
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(cairn_get(db, "k", 1, &v, &vl), 0);
    assert_true(vl == 2 && memcmp(v, "v2", 2) == 0);
    cairn_free(v);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

static void on_progress(void *arg, int level, int target, uint64_t done,
                        uint64_t total)
{
    progress_log *p = arg;
    assert_true(done <= total);
    assert_true(level < target);
    assert_true(level >= p->last_level); /* levels go down in order */
    p->calls++;
    p->last_level = level;
    p->target = target;
    p->done = done;
    p->total = total;
}

/* A database at "/db" on a fresh memory env (*mem) with lsm_options. */
static cairn_db *open_lsm(cairn_env **mem, cairn_options *o)
{
    *mem = cairn_env_mem_new();
    lsm_options(o, *mem);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", o, &db), 0);
    return db;
}

/* cairn_compact: every file ends in the deepest level that held data,
 * the contents are unchanged (a snapshot taken before still reads its
 * values), and writes made before and after go on as usual. */
static void test_full_compaction(void **state)
{
    (void)state;
    cairn_env *mem;
    cairn_options o;
    cairn_db *db = open_lsm(&mem, &o);
    model m = {0};
    char vbuf[MAXV + 1];
    for (int i = 0; i < 8000; i++) {
        int k = (int)((unsigned)i * 7919u % NKEYS);
        char key[16];
        key_of(k, key);
        size_t vl = 20 + (size_t)(i * 37 % 180);
        memset(vbuf, 'a' + i % 26, vl);
        vbuf[vl] = 0;
        if (i % 11 == 5) {
            int rc = cairn_delete(db, key, strlen(key), NULL);
            assert_true(rc == 0 || rc == CAIRN_ENOTFOUND);
            free(m.val[k]);
            m.val[k] = NULL;
        } else {
            assert_int_equal(cairn_put(db, key, strlen(key), vbuf, vl, NULL),
                             0);
            free(m.val[k]);
            m.val[k] = strndup(vbuf, vl);
            m.len[k] = vl;
        }
    }
    cairn_stats st;
    int deepest = 0, above = 0;
    for (int tries = 0; tries < 200 && deepest < 2; tries++) {
        if (tries) { /* the background compactions catch up */
            struct timespec d = {0, 50 * 1000000L};
            nanosleep(&d, NULL);
        }
        cairn_get_stats(db, &st);
        for (int l = 0; l < 8; l++)
            if (st.level_files[l])
                deepest = l;
    }
    for (int l = 0; l < deepest; l++)
        above += (int)st.level_files[l];
    fprintf(stderr, "before: deepest level %d, %d files above it\n", deepest,
            above);
    assert_true(deepest >= 2); /* the run made several levels */
    cairn_txn *snap = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &snap), 0);
    model before;
    model_copy(&before, &m);

    progress_log p = {0};
    assert_int_equal(cairn_compact(db, on_progress, &p), 0);
    assert_true(p.calls > 0);
    assert_int_equal(p.target, deepest);
    assert_int_equal(p.done, p.total); /* the last level emptied whole */
    cairn_get_stats(db, &st);
    for (int l = 0; l < 8; l++)
        if (l != deepest)
            assert_int_equal(st.level_files[l], 0);
    assert_true(st.level_files[deepest] > 0);
    check_all(db, &m);
    for (int i = 0; i < NKEYS; i++)
        check_get(snap, &before, i);
    cairn_txn_abort(snap);

    /* Writes go on; a second run with nothing above is a no-op. */
    assert_int_equal(cairn_put(db, "key00001", 8, "after", 5, NULL), 0);
    free(m.val[1]);
    m.val[1] = strdup("after");
    m.len[1] = 5;
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    check_all(db, &m);
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    check_all(db, &m);
    cairn_get_stats(db, &st);
    for (int l = 0; l < 8; l++)
        if (l != deepest)
            assert_int_equal(st.level_files[l], 0);
    assert_int_equal(cairn_close(db), 0);
    o.read_only = true; /* a read-only handle refuses */
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    assert_int_equal(cairn_compact(db, NULL, NULL), CAIRN_EREADONLY);
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(cairn_get(db, "key00001", 8, &v, &vl), 0);
    assert_int_equal(vl, 5);
    assert_memory_equal(v, "after", 5);
    cairn_free(v);
    assert_int_equal(cairn_close(db), 0);
    model_free(&m);
    model_free(&before);
    cairn_env_destroy(mem);
}

/* cairn_wait_idle: after a burst of writes that leaves flushes and
 * compactions to do, it returns once they are done: nothing runs after it
 * (the counters stand still), level 0 is below its trigger, and a second
 * call that only looks finds nothing to wait for. */
static void test_wait_idle(void **state)
{
    (void)state;
    assert_int_equal(cairn_wait_idle(NULL, 0), CAIRN_EINVAL);
    cairn_env *mem;
    cairn_options o;
    cairn_db *db = open_lsm(&mem, &o);
    char vbuf[MAXV + 1];
    for (int i = 0; i < 6000; i++) {
        char key[16];
        key_of((int)((unsigned)i * 7919u % NKEYS), key);
        size_t vl = 50 + (size_t)(i * 37 % 200);
        memset(vbuf, 'a' + i % 26, vl);
        assert_int_equal(cairn_put(db, key, strlen(key), vbuf, vl, NULL), 0);
    }
    assert_int_equal(cairn_wait_idle(db, 60000), 0);
    cairn_stats a, b;
    cairn_get_stats(db, &a);
    assert_true(a.flushes > 0);
    assert_true(a.compactions > 0);
    assert_true(a.level_files[0] < o.l0_compaction_trigger);
    struct timespec d = {0, 300 * 1000000L};
    nanosleep(&d, NULL);
    cairn_get_stats(db, &b);
    assert_int_equal(b.flushes, a.flushes);
    assert_int_equal(b.compactions, a.compactions);
    assert_int_equal(b.compact_write_bytes, a.compact_write_bytes);
    assert_int_equal(cairn_wait_idle(db, 0), 0);
    assert_int_equal(cairn_close(db), 0);
    /* A read-only handle has no background work: settled at once. */
    o.read_only = true;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    assert_int_equal(cairn_wait_idle(db, 0), 0);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* After a reopen the versions in sorted files have no entry in the time
 * index; once the newest time in those files leaves the history window,
 * all of them have: the horizon rises to the last of them, so compaction
 * drops their old versions, and reads as of a time inside the window but
 * before the next commit still see that last state. */
static void test_horizon_after_reopen(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    lsm_options(&o, mem);
    o.history_ms = 300;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    uint64_t t_before = wall_us();
    struct timespec d = {0, 2 * 1000000L};
    nanosleep(&d, NULL);
    assert_int_equal(cairn_put(db, "a", 1, "1", 1, NULL), 0);
    assert_int_equal(cairn_put(db, "a", 1, "2", 1, NULL), 0);
    assert_int_equal(cairn_put(db, "b", 1, "x", 1, NULL), 0);
    uint64_t last = cairn_current_version(db);
    assert_int_equal(cairn_close(db), 0);

    assert_int_equal(cairn_open("/db", &o, &db), 0);
    struct timespec w = {0, 450 * 1000000L}; /* past the window */
    nanosleep(&w, NULL);
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    assert_int_equal(cairn_oldest_version(db), last);
    cairn_key_version *kv = NULL;
    size_t n = 0;
    assert_int_equal(cairn_key_versions(db, "a", 1, 10, &kv, &n), 0);
    assert_int_equal(n, 1); /* "1" is gone */
    assert_int_equal(kv[0].vlen, 1);
    assert_memory_equal(kv[0].value, "2", 1);
    cairn_key_versions_free(kv, n);
    /* Inside the window, before any new commit: the last state. */
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(cairn_get_at_time(db, "a", 1, wall_us() - 100000, &v,
                                       &vl),
                     0);
    assert_int_equal(vl, 1);
    assert_memory_equal(v, "2", 1);
    cairn_free(v);
    /* Before the files' newest time: refused, not guessed. */
    assert_int_equal(cairn_get_at_time(db, "a", 1, t_before, &v, &vl),
                     CAIRN_EHISTORY);
    /* A new commit is indexed; the time between still reads the old
     * state. */
    uint64_t t_mid = wall_us();
    nanosleep(&d, NULL);
    assert_int_equal(cairn_put(db, "a", 1, "3", 1, NULL), 0);
    assert_int_equal(cairn_get_at_time(db, "a", 1, t_mid, &v, &vl), 0);
    assert_memory_equal(v, "2", 1);
    cairn_free(v);
    assert_int_equal(cairn_get(db, "a", 1, &v, &vl), 0);
    assert_memory_equal(v, "3", 1);
    cairn_free(v);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

/* cairn_prefetch takes anything: bad arguments are ignored, reads after it
 * are what they were, from the memtable and from sorted files. */
static void test_prefetch(void **state)
{
    (void)state;
    cairn_env *mem;
    cairn_options o;
    cairn_db *db = open_lsm(&mem, &o);
    static char big[2u << 20];
    memset(big, 'k', sizeof big);
    for (int round = 0; round < 2; round++) {
        cairn_prefetch(NULL, "a", 1);
        cairn_prefetch(db, NULL, 5);
        cairn_prefetch(db, NULL, 0);
        cairn_prefetch(db, big, sizeof big); /* over the key size limit */
        cairn_prefetch(db, "a", 1);
        cairn_prefetch(db, "absent", 6);
        void *v = NULL;
        size_t vl = 0;
        if (round == 0) {
            assert_int_equal(cairn_get(db, "a", 1, &v, &vl), CAIRN_ENOTFOUND);
            assert_int_equal(cairn_put(db, "a", 1, "1", 1, NULL), 0);
        } else {
            assert_int_equal(cairn_get(db, "a", 1, &v, &vl), 0);
            assert_int_equal(vl, 1);
            assert_memory_equal(v, "1", 1);
            cairn_free(v);
        }
        assert_int_equal(cairn_get(db, "absent", 6, &v, &vl),
                         CAIRN_ENOTFOUND);
        assert_int_equal(cairn_flush(db), 0); /* round 1: from a file */
    }
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_validation_read_error),
        cmocka_unit_test(test_full_compaction),
        cmocka_unit_test(test_wait_idle),
        cmocka_unit_test(test_horizon_after_reopen),
        cmocka_unit_test(test_prefetch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
