/*
 * test_wal_concurrency.c — many threads on one WAL, on the real disk (POSIX
 * env), meant to run under TSan too (label "concurrency").
 *
 *  - 16 threads appending with sync=always: every LSN is acknowledged exactly
 *    once, the LSNs form one total order 1..N with no hole, each thread sees
 *    its own LSNs increase, and reopening replays exactly those records with
 *    the bytes each thread wrote.
 *  - Async appends with durability callbacks from 8 threads: every callback
 *    runs exactly once, with status 0, never two at once, and each thread's
 *    callbacks in the order of its (increasing) LSNs.
 *  - Appenders, a thread calling cairn_wal_sync(), and a thread truncating
 *    old segments, all at once with small segments (rotations under load):
 *    nothing acknowledged is lost among the segments that were kept.
 *  - Gathering rounds with every kind of waiter (cairn_wal_append_sync,
 *    ticket, cairn_wal_append + cairn_wal_wait, appends nobody waits for
 *    until later) and a load that shrinks (threads with ever fewer records,
 *    so rounds gather for writers that are gone): every record is
 *    acknowledged once and replayed, rounds take several records each.
 *
 * Sizes: CAIRN_CONC_RECORDS records per thread (default 150).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>

#include "cairn.h"
#include "util/coding.h"
#include "wal/wal.h"
#include "wal_model.h"

#define NTHREADS 16

static uint64_t records_per_thread(void)
{
    return tu_env_u64("CAIRN_CONC_RECORDS", 150);
}

/* Payload: thread id (4 bytes), sequence (4 bytes), then filler bytes
 * derived from both, length 8 + (seq * 37 + tid) % 300. */
static size_t make_payload(uint8_t *buf, uint32_t tid, uint32_t seq)
{
    size_t len = 8 + (size_t)((seq * 37u + tid) % 300u);
    cairn_put_u32(buf, tid);
    cairn_put_u32(buf + 4, seq);
    tu_fill(buf + 8, len - 8, ((uint64_t)tid << 32) | seq);
    return len;
}

typedef struct thr {
    cairn_wal *w;
    uint32_t tid;
    uint32_t n;
    uint32_t kind;      /* how it waits (writer) */
    uint64_t *lsns;     /* lsns[i]: LSN acknowledged for the i-th append */
    int errors;
    int disorder;
} thr;

/* Appends t->n records and waits for each to be durable, in the way
 * t->kind says: 0 append_sync, 1 a ticket, 2 append then wait, 3 waits
 * only for every fourth record (and the last). */
static void *writer(void *p)
{
    thr *t = p;
    uint8_t buf[400];
    uint64_t prev = 0;
    for (uint32_t i = 0; i < t->n; i++) {
        size_t len = make_payload(buf, t->tid, i);
        uint64_t lsn = 0;
        int rc = 0;
        switch (t->kind) {
        case 0:
            rc = cairn_wal_append_sync(t->w, 1, buf, len, &lsn);
            break;
        case 1: {
            cairn_wal_ticket tk;
            rc = cairn_wal_append_ticket(t->w, 1, buf, len, NULL, NULL, &tk);
            lsn = tk.lsn;
            if (rc == 0)
                rc = cairn_wal_wait_ticket(t->w, &tk);
            break;
        }
        case 2:
            rc = cairn_wal_append(t->w, 1, buf, len, &lsn);
            if (rc == 0)
                rc = cairn_wal_wait(t->w, lsn);
            break;
        default:
            rc = cairn_wal_append(t->w, 1, buf, len, &lsn);
            if (rc == 0 && (i % 4 == 3 || i + 1 == t->n))
                rc = cairn_wal_wait(t->w, lsn);
            break;
        }
        if (rc != 0) {
            t->errors++;
            continue;
        }
        if (lsn <= prev)
            t->disorder++;
        prev = lsn;
        t->lsns[i] = lsn;
    }
    return NULL;
}

/* Give each of the nt writers (w, tid, n, kind set) room for its LSNs, run
 * them all at once and wait for them. */
static void run_writers(thr *t, uint32_t nt)
{
    pthread_t *th = calloc(nt, sizeof *th);
    assert_non_null(th);
    for (uint32_t i = 0; i < nt; i++) {
        t[i].lsns = calloc(t[i].n ? t[i].n : 1, sizeof(uint64_t));
        assert_non_null(t[i].lsns);
    }
    for (uint32_t i = 0; i < nt; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, &t[i]), 0);
    for (uint32_t i = 0; i < nt; i++)
        pthread_join(th[i], NULL);
    free(th);
}

/* Replay check: record lsn must be the one thread tid got for seq. */
typedef struct owner {
    uint32_t tid, seq;
} owner;

typedef struct replay_check {
    owner *by_lsn; /* index lsn - 1 */
    uint64_t total;
    uint64_t seen;
    uint64_t expect_next; /* 0: any first LSN (after truncation) */
    int bad;
} replay_check;

static int check_replay(void *arg, const cairn_wal_record *rec)
{
    replay_check *c = arg;
    if (c->expect_next == 0)
        c->expect_next = rec->lsn;
    if (rec->lsn != c->expect_next || rec->lsn == 0 || rec->lsn > c->total) {
        c->bad++;
        c->expect_next = rec->lsn + 1;
        return 0;
    }
    c->expect_next = rec->lsn + 1;
    c->seen++;
    owner o = c->by_lsn[rec->lsn - 1];
    uint8_t buf[400];
    size_t len = make_payload(buf, o.tid, o.seq);
    if (rec->type != 1 || rec->len != len || memcmp(rec->data, buf, len) != 0)
        c->bad++;
    return 0;
}

/* The LSNs the nt writers got: each 1..total exactly once, in order per
 * writer, no errors. Returns who wrote each (the caller frees it). */
static owner *collect_lsns(const thr *t, uint32_t nt, uint64_t total)
{
    owner *by_lsn = calloc(total, sizeof *by_lsn);
    uint8_t *hit = calloc(total, 1);
    assert_non_null(by_lsn);
    assert_non_null(hit);
    for (uint32_t i = 0; i < nt; i++) {
        assert_int_equal(t[i].errors, 0);
        assert_int_equal(t[i].disorder, 0);
        for (uint32_t s = 0; s < t[i].n; s++) {
            uint64_t lsn = t[i].lsns[s];
            assert_true(lsn >= 1 && lsn <= total);
            assert_int_equal(hit[lsn - 1], 0); /* never given twice */
            hit[lsn - 1] = 1;
            by_lsn[lsn - 1] = (owner){i, s};
        }
    }
    for (uint64_t l = 0; l < total; l++)
        assert_int_equal(hit[l], 1);
    free(hit);
    return by_lsn;
}

/* Reopen the log in dir: exactly those records, in order, with the right
 * bytes. */
static void replay_expect(const char *dir, owner *by_lsn, uint64_t total)
{
    replay_check c = {.by_lsn = by_lsn, .total = total, .expect_next = 1};
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.read_only = true;
    o.replay = check_replay;
    o.replay_arg = &c;
    cairn_wal *w = NULL;
    assert_int_equal(cairn_wal_open(dir, &o, &w, NULL), 0);
    assert_int_equal(cairn_wal_close(w), 0);
    assert_int_equal(c.bad, 0);
    assert_int_equal(c.seen, total);
}

static void test_sixteen_writers_always(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("walconc");
    assert_non_null(dir);
    uint32_t n = (uint32_t)records_per_thread();
    uint64_t total = (uint64_t)n * NTHREADS;

    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.segment_size = 256 * 1024; /* several rotations under load */
    cairn_wal *w = NULL;
    assert_int_equal(cairn_wal_open(dir, &o, &w, NULL), 0);

    thr t[NTHREADS];
    for (uint32_t i = 0; i < NTHREADS; i++)
        t[i] = (thr){.w = w, .tid = i, .n = n};
    run_writers(t, NTHREADS);

    /* Every LSN 1..total acknowledged exactly once. */
    owner *by_lsn = collect_lsns(t, NTHREADS, total);
    assert_int_equal(cairn_wal_last_lsn(w), total);
    assert_true(cairn_wal_durable_lsn(w) >= total);

    cairn_wal_stats st;
    cairn_wal_get_stats(w, &st);
    assert_int_equal(st.appends, total);
    assert_int_equal(st.failed_records, 0);
    /* At most one per record, plus per segment: seal, file, directory. */
    assert_true(st.syncs >= 1 && st.syncs <= total + 3 * (st.rotations + 1));
    assert_true(st.rotations >= 1);
    assert_int_equal(cairn_wal_close(w), 0);
    replay_expect(dir, by_lsn, total);

    for (int i = 0; i < NTHREADS; i++)
        free(t[i].lsns);
    free(by_lsn);
    tu_rmrf(dir);
    free(dir);
}

/* ---- callbacks ---- */

static atomic_int cb_running;  /* callbacks running right now */
static atomic_int cb_overlaps; /* times two ran at once */

typedef struct cb_log {
    uint64_t *lsns;   /* appended LSNs, in append order */
    uint64_t *called; /* LSNs called back, in call order */
    int *status;
    atomic_size_t n;
    size_t cap;
} cb_log;

static void on_ack(void *arg, uint64_t lsn, int status)
{
    cb_log *l = arg;
    if (atomic_fetch_add(&cb_running, 1) != 0)
        atomic_fetch_add(&cb_overlaps, 1);
    size_t i = atomic_load(&l->n);
    if (i < l->cap) {
        l->called[i] = lsn;
        l->status[i] = status;
    }
    atomic_store(&l->n, i + 1);
    atomic_fetch_sub(&cb_running, 1);
}

typedef struct async_thr {
    cairn_wal *w;
    cb_log log;
    uint32_t tid, n;
    int errors;
} async_thr;

static void *async_writer(void *p)
{
    async_thr *t = p;
    uint8_t buf[400];
    for (uint32_t i = 0; i < t->n; i++) {
        size_t len = make_payload(buf, t->tid, i);
        uint64_t lsn = 0;
        if (cairn_wal_append(t->w, 1, buf, len, &lsn) != 0) {
            t->errors++;
            continue;
        }
        t->log.lsns[i] = lsn;
        if (cairn_wal_on_durable(t->w, lsn, on_ack, &t->log) != 0)
            t->errors++;
        /* Now and then wait, so that some callbacks are registered for
         * LSNs that are durable already (they run at once). */
        if (i % 16 == 15 && cairn_wal_wait(t->w, lsn) != 0)
            t->errors++;
    }
    return NULL;
}

static void test_callbacks_in_lsn_order(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("walcb");
    assert_non_null(dir);
    uint32_t n = (uint32_t)records_per_thread();
    enum { T = 8 };
    uint64_t total = (uint64_t)n * T;

    cairn_wal_options o;
    cairn_wal_options_init(&o);
    cairn_wal *w = NULL;
    assert_int_equal(cairn_wal_open(dir, &o, &w, NULL), 0);
    async_thr t[T];
    pthread_t th[T];
    for (uint32_t i = 0; i < T; i++) {
        t[i] = (async_thr){.w = w, .tid = i, .n = n};
        t[i].log.cap = n;
        t[i].log.lsns = calloc(n, sizeof(uint64_t));
        t[i].log.called = calloc(n, sizeof(uint64_t));
        t[i].log.status = calloc(n, sizeof(int));
        assert_non_null(t[i].log.lsns);
        assert_non_null(t[i].log.called);
        assert_non_null(t[i].log.status);
        atomic_init(&t[i].log.n, 0);
        assert_int_equal(pthread_create(&th[i], NULL, async_writer, &t[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].errors, 0);
    }
    /* Every record durable; then every callback must have run or be about
     * to (the thread running them may still be inside one). */
    assert_int_equal(cairn_wal_sync(w), 0);
    assert_int_equal(cairn_wal_wait(w, total), 0);
    for (int spin = 0; spin < 10000; spin++) {
        size_t got = 0;
        for (int i = 0; i < T; i++)
            got += atomic_load(&t[i].log.n);
        if (got >= total)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(cairn_wal_close(w), 0);

    assert_int_equal(atomic_load(&cb_overlaps), 0);
    for (int i = 0; i < T; i++) {
        cb_log *l = &t[i].log;
        assert_int_equal(atomic_load(&l->n), n); /* each exactly once */
        for (uint32_t q = 0; q < n; q++) {
            assert_int_equal(l->status[q], 0);
            /* In the order this thread registered them (= LSN order). */
            assert_int_equal(l->called[q], l->lsns[q]);
        }
        free(l->lsns);
        free(l->called);
        free(l->status);
    }
    tu_rmrf(dir);
    free(dir);
}

/* ---- appends, syncs and truncation at once ---- */

typedef struct side {
    cairn_wal *w;
    atomic_int stop;
    int errors;
    int truncated;
} side;

static void *syncer(void *p)
{
    side *s = p;
    while (!atomic_load(&s->stop)) {
        if (cairn_wal_sync(s->w) != 0)
            s->errors++;
    }
    return NULL;
}

static void *truncator(void *p)
{
    side *s = p;
    /* Until the writers are done, and (however slow the build) until it
     * has dropped a segment: at most 10 s more. */
    for (int after = 0; !atomic_load(&s->stop) ||
                        (s->truncated == 0 && after++ < 5000);) {
        uint64_t d = cairn_wal_durable_lsn(s->w);
        int rc = cairn_wal_truncate_before(s->w, d > 50 ? d - 50 : 1);
        if (rc < 0)
            s->errors++;
        else
            s->truncated += rc;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void test_append_sync_truncate_together(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("walmix");
    assert_non_null(dir);
    uint32_t n = (uint32_t)records_per_thread();
    enum { T = 4 };
    uint64_t total = (uint64_t)n * T;

    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.segment_size = 16 * 1024;
    cairn_wal *w = NULL;
    assert_int_equal(cairn_wal_open(dir, &o, &w, NULL), 0);

    side s = {.w = w};
    atomic_init(&s.stop, 0);
    pthread_t ts, tt;
    assert_int_equal(pthread_create(&ts, NULL, syncer, &s), 0);
    assert_int_equal(pthread_create(&tt, NULL, truncator, &s), 0);
    thr t[T];
    for (uint32_t i = 0; i < T; i++)
        t[i] = (thr){.w = w, .tid = i, .n = n};
    run_writers(t, T);
    atomic_store(&s.stop, 1);
    pthread_join(ts, NULL);
    pthread_join(tt, NULL);
    assert_int_equal(s.errors, 0);
    assert_true(s.truncated > 0);
    for (int i = 0; i < T; i++)
        assert_int_equal(t[i].errors, 0);

    owner *by_lsn = calloc(total, sizeof *by_lsn);
    assert_non_null(by_lsn);
    for (uint32_t i = 0; i < T; i++)
        for (uint32_t q = 0; q < n; q++)
            by_lsn[t[i].lsns[q] - 1] = (owner){i, q};
    assert_int_equal(cairn_wal_close(w), 0);

    /* The kept segments hold a suffix ending at the last record, with no
     * hole and the right bytes. */
    replay_check c = {.by_lsn = by_lsn, .total = total};
    cairn_wal_recovery info;
    cairn_wal_options_init(&o);
    o.read_only = true;
    o.replay = check_replay;
    o.replay_arg = &c;
    assert_int_equal(cairn_wal_open(dir, &o, &w, &info), 0);
    assert_int_equal(cairn_wal_close(w), 0);
    assert_true(info.first_lsn >= 1);
    assert_int_equal(info.last_lsn, total);
    assert_int_equal(c.seen, total - info.first_lsn + 1);
    assert_int_equal(c.bad, 0);

    for (int i = 0; i < T; i++)
        free(t[i].lsns);
    free(by_lsn);
    tu_rmrf(dir);
    free(dir);
}

/* ---- gathering with every kind of waiter, load shrinking ---- */

static void test_gathering_mixed_waiters(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("walgather");
    assert_non_null(dir);
    uint32_t n = (uint32_t)records_per_thread();
    enum { T = 16 };

    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.segment_size = 128 * 1024; /* rotations while rounds gather */
    cairn_wal *w = NULL;
    assert_int_equal(cairn_wal_open(dir, &o, &w, NULL), 0);

    /* Thread i writes n * (i + 1) / T records: the writers finish one by
     * one and the last one ends alone. */
    thr t[T];
    uint64_t total = 0;
    for (uint32_t i = 0; i < T; i++) {
        uint32_t cnt = n * (i + 1) / T;
        if (cnt == 0)
            cnt = 1;
        t[i] = (thr){.w = w, .tid = i, .n = cnt, .kind = i % 4};
        total += cnt;
    }
    run_writers(t, T);

    owner *by_lsn = collect_lsns(t, T, total);
    assert_int_equal(cairn_wal_last_lsn(w), total);
    assert_true(cairn_wal_durable_lsn(w) >= total);
    cairn_wal_stats st;
    cairn_wal_get_stats(w, &st);
    assert_int_equal(st.appends, total);
    assert_int_equal(st.failed_records, 0);
    /* How many records a round takes depends on the disk and the
     * scheduler (one each on tmpfs, whose syncs cost nothing): printed,
     * and test_one_round_takes_all checks that a round takes them all. */
    assert_true(st.group_commits >= 1);
    fprintf(stderr, "gathering: %" PRIu64 " records in %" PRIu64 " rounds\n",
            st.appends, st.group_commits);
    assert_int_equal(cairn_wal_close(w), 0);
    replay_expect(dir, by_lsn, total);

    for (int i = 0; i < T; i++)
        free(t[i].lsns);
    free(by_lsn);
    tu_rmrf(dir);
    free(dir);
}

typedef struct one_arg {
    cairn_wal *w;
    uint32_t tid;
    uint64_t lsn; /* 0: the append failed */
} one_arg;

static void *append_one(void *p)
{
    one_arg *a = p;
    char rec[32];
    int len = snprintf(rec, sizeof rec, "one %u", a->tid);
    if (cairn_wal_append(a->w, 1, rec, (size_t)len, &a->lsn) != 0)
        a->lsn = 0;
    return NULL;
}

/* Sixteen threads append a record each without waiting; one sync then
 * writes and syncs them all in one round. */
static void test_one_round_takes_all(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("walround");
    assert_non_null(dir);
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    cairn_wal *w = NULL;
    assert_int_equal(cairn_wal_open(dir, &o, &w, NULL), 0);
    cairn_wal_stats before, after;
    cairn_wal_get_stats(w, &before);
    enum { T = 16 };
    one_arg a[T];
    pthread_t th[T];
    for (uint32_t i = 0; i < T; i++) {
        a[i] = (one_arg){.w = w, .tid = i};
        assert_int_equal(pthread_create(&th[i], NULL, append_one, &a[i]), 0);
    }
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        assert_int_not_equal(a[i].lsn, 0);
    }
    assert_int_equal(cairn_wal_durable_lsn(w), 0);
    assert_int_equal(cairn_wal_sync(w), 0);
    assert_int_equal(cairn_wal_durable_lsn(w), T);
    cairn_wal_get_stats(w, &after);
    assert_int_equal(after.appends - before.appends, T);
    assert_int_equal(after.group_commits - before.group_commits, 1);
    assert_int_equal(cairn_wal_close(w), 0);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sixteen_writers_always),
        cmocka_unit_test(test_callbacks_in_lsn_order),
        cmocka_unit_test(test_append_sync_truncate_together),
        cmocka_unit_test(test_gathering_mixed_waiters),
        cmocka_unit_test(test_one_round_takes_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
