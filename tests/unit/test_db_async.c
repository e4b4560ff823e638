/*
 * test_db_async.c — cairn_txn_commit_async, the commit an event loop uses.
 *
 *  - Many commits queued from one thread without waiting: every callback
 *    runs exactly once, never inside the call, with status 0 and increasing
 *    versions, only after the write is visible; they were applied to the
 *    memtable in batches (cairn_txn_apply_batch); everything reads back,
 *    and again after a reopen (the commits were durable).
 *  - Conflicts are refused at once (fn never called); a transaction with
 *    nothing to write returns 1 with its snapshot; bad arguments.
 *  - blind_if_unread: a transaction that read nothing commits over a newer
 *    commit of its key (synchronously and not), one that read (get, scan
 *    or iterator) conflicts as usual, and with its key in flight an
 *    asynchronous one gets CAIRN_EBUSY (from the commit hook).
 *  - Synchronous and asynchronous commits from several threads at once:
 *    each counter ends at exactly what was acknowledged.
 *  - A failing fsync (fault env): the callbacks report the error, the
 *    database turns read-only, nothing unacknowledged is reported done.
 * Every test runs on the memory env or a temporary directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn.h"
#include "db/db_internal.h"
#include "env/env.h"
#include "test_util.h"

#define NASYNC 2000

typedef struct probe {
    cairn_db *db;
    atomic_int fired;
    atomic_int bad;         /* ordering/visibility/status violations */
    atomic_int failed;      /* callbacks with status < 0 */
    _Atomic uint64_t last_version;
    pthread_t caller;       /* the thread calling commit_async */
    char key[32];           /* the key each callback checks (one at a time) */
} probe;

typedef struct one {
    probe *p;
    char key[32];
    char val[32];
} one;

static void on_commit(void *arg, int status, uint64_t version)
{
    one *o = arg;
    probe *p = o->p;
    if (pthread_equal(pthread_self(), p->caller))
        atomic_fetch_add(&p->bad, 1); /* ran on the caller: inside the call */
    if (status != 0) {
        atomic_fetch_add(&p->failed, 1);
    } else {
        uint64_t last = atomic_load(&p->last_version);
        if (version <= last)
            atomic_fetch_add(&p->bad, 1);
        atomic_store(&p->last_version, version);
        /* Visible by the time we are told. */
        void *v = NULL;
        size_t vl = 0;
        if (cairn_get(p->db, o->key, strlen(o->key), &v, &vl) != 0 ||
            vl != strlen(o->val) || memcmp(v, o->val, vl) != 0)
            atomic_fetch_add(&p->bad, 1);
        free(v);
        if (cairn_current_version(p->db) < version)
            atomic_fetch_add(&p->bad, 1);
    }
    atomic_fetch_add(&p->fired, 1);
}

static void wait_fired(probe *p, int n)
{
    for (int i = 0; i < 20000 && atomic_load(&p->fired) < n; i++) {
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
    assert_int_equal(atomic_load(&p->fired), n);
}

static void test_async_many(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-many");
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, NULL, &db), 0);
    probe p = {.db = db, .caller = pthread_self()};
    one *os = calloc(NASYNC, sizeof *os);
    assert_non_null(os);
    for (int i = 0; i < NASYNC; i++) {
        os[i].p = &p;
        snprintf(os[i].key, sizeof os[i].key, "k%05d", i);
        snprintf(os[i].val, sizeof os[i].val, "v%d", i * 7);
        cairn_txn *t = NULL;
        assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
        assert_int_equal(cairn_txn_put(t, os[i].key, strlen(os[i].key),
                                       os[i].val, strlen(os[i].val)),
                         0);
        int rc = cairn_txn_commit_async(t, on_commit, &os[i], NULL);
        assert_int_equal(rc, 0);
    }
    wait_fired(&p, NASYNC);
    assert_int_equal(atomic_load(&p.bad), 0);
    assert_int_equal(atomic_load(&p.failed), 0);
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_true(st.commits >= NASYNC);
    /* Queued together, they were settled (and applied) in batches. */
    assert_true(atomic_load(&db->st_apply_batches) > 0);
    assert_int_equal(cairn_close(db), 0);

    /* Durable: all there after a reopen. */
    assert_int_equal(cairn_open(dir, NULL, &db), 0);
    for (int i = 0; i < NASYNC; i++) {
        void *v = NULL;
        size_t vl = 0;
        assert_int_equal(cairn_get(db, os[i].key, strlen(os[i].key), &v, &vl),
                         0);
        assert_int_equal(vl, strlen(os[i].val));
        assert_memory_equal(v, os[i].val, vl);
        free(v);
    }
    assert_int_equal(cairn_close(db), 0);
    free(os);
    tu_rmrf(dir);
    free(dir);
}

static void never(void *arg, int status, uint64_t version)
{
    (void)status;
    (void)version;
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_async_conflict_and_empty(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-conflict");
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, NULL, &db), 0);
    atomic_int calls = 0;

    /* Two writers of one key: the second is refused at once. */
    cairn_txn *t1 = NULL, *t2 = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t1), 0);
    assert_int_equal(cairn_txn_begin(db, NULL, &t2), 0);
    assert_int_equal(cairn_txn_put(t1, "k", 1, "1", 1), 0);
    assert_int_equal(cairn_txn_put(t2, "k", 1, "2", 1), 0);
    probe p = {.db = db, .caller = pthread_self()};
    one o = {.p = &p, .key = "k", .val = "1"};
    assert_int_equal(cairn_txn_commit_async(t1, on_commit, &o, NULL), 0);
    assert_int_equal(cairn_txn_commit_async(t2, never, &calls, NULL),
                     CAIRN_ECONFLICT);
    wait_fired(&p, 1);
    assert_int_equal(atomic_load(&p.bad), 0);

    /* Nothing to write: 1 and the snapshot; no callback. */
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    uint64_t snap = cairn_txn_snapshot(t), v = 0;
    assert_int_equal(cairn_txn_commit_async(t, never, &calls, &v), 1);
    assert_int_equal(v, snap);

    /* Bad arguments consume the transaction too. */
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    assert_int_equal(cairn_txn_commit_async(t, NULL, NULL, NULL),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_txn_commit_async(NULL, never, &calls, NULL),
                     CAIRN_EINVAL);

    struct timespec d = {0, 20000000};
    nanosleep(&d, NULL);
    assert_int_equal(atomic_load(&calls), 0);
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

/* ---------- blind_if_unread ---------- */

static void expect_val(cairn_db *db, const char *k, const char *want)
{
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(cairn_get(db, k, strlen(k), &v, &vl), 0);
    assert_int_equal(vl, strlen(want));
    assert_memory_equal(v, want, vl);
    free(v);
}

static cairn_txn *blind_txn(cairn_db *db, cairn_isolation iso)
{
    cairn_txn_options o = {.isolation = iso, .blind_if_unread = true};
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, &o, &t), 0);
    return t;
}

static int count_fn(void *arg, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (*(int *)arg)++;
    return 0;
}

/* In the commit hook (between the apply and the publish, the first
 * commit's key still in flight): a blind asynchronous commit of the same
 * key cannot wait there, so it is refused with CAIRN_EBUSY. */
typedef struct blind_hook {
    cairn_db *db;
    bool armed;
    int rc;
    atomic_int calls;
} blind_hook;

static void blind_commit_hook(void *arg)
{
    blind_hook *h = arg;
    if (!h->armed)
        return;
    h->armed = false;
    cairn_txn *t = NULL;
    cairn_txn_options o = {.blind_if_unread = true};
    h->rc = cairn_txn_begin(h->db, &o, &t);
    if (h->rc == 0 && (h->rc = cairn_txn_put(t, "k", 1, "hook", 4)) == 0)
        h->rc = cairn_txn_commit_async(t, never, &h->calls, NULL);
    else if (t)
        cairn_txn_abort(t);
}

static void test_blind_if_unread(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-blind");
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, NULL, &db), 0);
    assert_int_equal(cairn_put(db, "k", 1, "0", 1, NULL), 0);
    for (int iso = CAIRN_ISOLATION_SNAPSHOT;
         iso <= CAIRN_ISOLATION_SERIALIZABLE; iso++) {
        /* Read nothing: commits after a newer commit of its key, and its
         * write is the newest. */
        cairn_txn *t = blind_txn(db, (cairn_isolation)iso);
        assert_int_equal(cairn_txn_put(t, "k", 1, "blind", 5), 0);
        assert_int_equal(cairn_put(db, "k", 1, "other", 5, NULL), 0);
        uint64_t v = 0;
        assert_int_equal(cairn_txn_commit(t, &v), 0);
        assert_int_equal(v, cairn_current_version(db));
        expect_val(db, "k", "blind");

        /* The same asynchronously. */
        t = blind_txn(db, (cairn_isolation)iso);
        assert_int_equal(cairn_txn_put(t, "k", 1, "async", 5), 0);
        assert_int_equal(cairn_put(db, "k", 1, "other", 5, NULL), 0);
        probe p = {.db = db, .caller = pthread_self()};
        one o = {.p = &p, .key = "k", .val = "async"};
        assert_int_equal(cairn_txn_commit_async(t, on_commit, &o, NULL), 0);
        wait_fired(&p, 1);
        assert_int_equal(atomic_load(&p.bad), 0);
        assert_int_equal(atomic_load(&p.failed), 0);

        /* A get, a scan or an iterator through it (even of another key):
         * validated as usual, so the newer commit wins. */
        for (int how = 0; how < 3; how++) {
            t = blind_txn(db, (cairn_isolation)iso);
            if (how == 0) {
                void *val = NULL;
                size_t vl = 0;
                assert_int_equal(cairn_txn_get(t, "x", 1, &val, &vl),
                                 CAIRN_ENOTFOUND);
            } else if (how == 1) {
                int n = 0;
                assert_int_equal(
                    cairn_txn_scan(t, "x", 1, "y", 1, 0, count_fn, &n), 0);
                assert_int_equal(n, 0);
            } else {
                cairn_iter *it = NULL;
                assert_int_equal(cairn_txn_iter(t, NULL, &it), 0);
                cairn_iter_first(it);
                cairn_iter_free(it);
            }
            assert_int_equal(cairn_txn_put(t, "k", 1, "stale", 5), 0);
            assert_int_equal(cairn_put(db, "k", 1, "won", 3, NULL), 0);
            assert_int_equal(cairn_txn_commit(t, NULL), CAIRN_ECONFLICT);
            expect_val(db, "k", "won");
        }

        /* Off (the default): a blind write conflicts as ever. */
        t = NULL;
        assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
        assert_int_equal(cairn_txn_put(t, "k", 1, "late", 4), 0);
        assert_int_equal(cairn_put(db, "k", 1, "first", 5, NULL), 0);
        assert_int_equal(cairn_txn_commit(t, NULL), CAIRN_ECONFLICT);
        expect_val(db, "k", "first");
    }

    /* Its key in flight: an asynchronous blind commit says CAIRN_EBUSY
     * (it would have to wait), and nothing of it lands. */
    blind_hook h = {.db = db, .armed = true, .rc = -100};
    db->rc_hook_arg = &h;
    db->rc_commit_hook = blind_commit_hook;
    assert_int_equal(cairn_put(db, "k", 1, "first", 5, NULL), 0);
    db->rc_commit_hook = NULL;
    assert_false(h.armed);
    assert_int_equal(h.rc, CAIRN_EBUSY);
    struct timespec d = {0, 20000000};
    nanosleep(&d, NULL);
    assert_int_equal(atomic_load(&h.calls), 0);
    expect_val(db, "k", "first");
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

/* Mixed: threads incrementing counters with cairn_txn_commit, and one
 * thread with cairn_txn_commit_async (retrying its conflicts). */
#define NCOUNTERS 4
#define INCS 150

typedef struct mixed {
    cairn_db *db;
    atomic_int acked[NCOUNTERS];
    atomic_int pending;
    atomic_int errors;
} mixed;

static int read_counter(cairn_txn *t, int c, int *out)
{
    char k[16];
    snprintf(k, sizeof k, "c%d", c);
    void *v = NULL;
    size_t vl = 0;
    int rc = cairn_txn_get(t, k, strlen(k), &v, &vl);
    if (rc == CAIRN_ENOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rc)
        return rc;
    char buf[32] = {0};
    memcpy(buf, v, vl < 31 ? vl : 31);
    free(v);
    *out = atoi(buf);
    return 0;
}

static cairn_txn *incr_txn(cairn_db *db, int c)
{
    cairn_txn *t = NULL;
    if (cairn_txn_begin(db, NULL, &t) != 0)
        return NULL;
    int n = 0;
    char k[16], v[16];
    snprintf(k, sizeof k, "c%d", c);
    if (read_counter(t, c, &n) != 0) {
        cairn_txn_abort(t);
        return NULL;
    }
    snprintf(v, sizeof v, "%d", n + 1);
    if (cairn_txn_put(t, k, strlen(k), v, strlen(v)) != 0) {
        cairn_txn_abort(t);
        return NULL;
    }
    return t;
}

static void *sync_incr(void *arg)
{
    mixed *m = arg;
    for (int i = 0; i < INCS; i++) {
        int c = i % NCOUNTERS;
        for (;;) {
            cairn_txn *t = incr_txn(m->db, c);
            if (!t) {
                atomic_fetch_add(&m->errors, 1);
                break;
            }
            int rc = cairn_txn_commit(t, NULL);
            if (rc == CAIRN_ECONFLICT)
                continue;
            if (rc)
                atomic_fetch_add(&m->errors, 1);
            else
                atomic_fetch_add(&m->acked[c], 1);
            break;
        }
    }
    return NULL;
}

typedef struct ainc {
    mixed *m;
    int c;
    atomic_int done; /* 1 ok, -1 failed */
} ainc;

static void on_incr(void *arg, int status, uint64_t version)
{
    (void)version;
    ainc *a = arg;
    if (status == 0)
        atomic_fetch_add(&a->m->acked[a->c], 1);
    atomic_store(&a->done, status == 0 ? 1 : -1);
}

static void *async_incr(void *arg)
{
    mixed *m = arg;
    for (int i = 0; i < INCS; i++) {
        ainc a = {.m = m, .c = (i + 1) % NCOUNTERS};
        for (;;) {
            cairn_txn *t = incr_txn(m->db, a.c);
            if (!t) {
                atomic_fetch_add(&m->errors, 1);
                break;
            }
            int rc = cairn_txn_commit_async(t, on_incr, &a, NULL);
            if (rc == CAIRN_ECONFLICT || rc == CAIRN_EBUSY)
                continue;
            if (rc != 0) {
                atomic_fetch_add(&m->errors, 1);
                break;
            }
            while (atomic_load(&a.done) == 0) {
                struct timespec d = {0, 100000};
                nanosleep(&d, NULL);
            }
            if (atomic_load(&a.done) < 0)
                atomic_fetch_add(&m->errors, 1);
            break;
        }
    }
    return NULL;
}

static void test_async_mixed_counters(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("async-mixed");
    mixed m = {0};
    assert_int_equal(cairn_open(dir, NULL, &m.db), 0);
    pthread_t th[4];
    assert_int_equal(pthread_create(&th[0], NULL, sync_incr, &m), 0);
    assert_int_equal(pthread_create(&th[1], NULL, sync_incr, &m), 0);
    assert_int_equal(pthread_create(&th[2], NULL, async_incr, &m), 0);
    assert_int_equal(pthread_create(&th[3], NULL, async_incr, &m), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&m.errors), 0);
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(m.db, NULL, &t), 0);
    int total = 0;
    for (int c = 0; c < NCOUNTERS; c++) {
        int n = -1;
        assert_int_equal(read_counter(t, c, &n), 0);
        assert_int_equal(n, atomic_load(&m.acked[c]));
        total += n;
    }
    cairn_txn_abort(t);
    assert_int_equal(total, 4 * INCS);
    assert_int_equal(cairn_close(m.db), 0);
    tu_rmrf(dir);
    free(dir);
}

static void test_async_failing_sync(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    assert_non_null(env);
    cairn_options o;
    cairn_options_init(&o);
    o.env = env;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    probe p = {.db = db, .caller = pthread_self()};
    one first = {.p = &p, .key = "a", .val = "1"};
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    assert_int_equal(cairn_txn_put(t, "a", 1, "1", 1), 0);
    assert_int_equal(cairn_txn_commit_async(t, on_commit, &first, NULL), 0);
    wait_fired(&p, 1);
    assert_int_equal(atomic_load(&p.failed), 0);

    /* Every log sync fails from now on. */
    cairn_fault_rule rule = {.op_mask = CAIRN_OPMASK(CAIRN_OP_SYNC),
                             .path_substr = "wal-",
                             .fail_at = 1,
                             .fail_count = UINT64_MAX,
                             .error = CAIRN_EIO};
    cairn_env_fault_set(env, &rule);
    one second = {.p = &p, .key = "b", .val = "2"};
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    assert_int_equal(cairn_txn_put(t, "b", 1, "2", 1), 0);
    int rc = cairn_txn_commit_async(t, on_commit, &second, NULL);
    if (rc == 0) {
        wait_fired(&p, 2);
        assert_int_equal(atomic_load(&p.failed), 1);
    } else {
        assert_true(rc < 0);
    }
    assert_int_equal(atomic_load(&p.bad), 0);
    /* Read-only now, and says so; the first commit still reads back. */
    assert_int_equal(cairn_put(db, "c", 1, "3", 1, NULL), CAIRN_EREADONLY);
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(cairn_get(db, "a", 1, &v, &vl), 0);
    free(v);
    (void)cairn_close(db);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_async_many),
        cmocka_unit_test(test_async_conflict_and_empty),
        cmocka_unit_test(test_blind_if_unread),
        cmocka_unit_test(test_async_mixed_counters),
        cmocka_unit_test(test_async_failing_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
