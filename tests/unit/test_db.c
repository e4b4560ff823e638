/*
 * test_db.c — the embedded database API of cairn.h ("The database"), tested
 * as a black box through the public header, on the real disk (POSIX env).
 *
 * How: each test opens a fresh directory (tu_mkdtemp) and checks what the
 * header and docs/format/database.md promise, with exact expected values
 * (worker threads record failures; the main thread asserts):
 *
 *  - Durability without close: a forked child puts 1,000 keys and dies
 *    without cairn_close (_exit with sync=always; SIGKILL with sync=none,
 *    whose commits must survive a process crash too); the parent reopens
 *    (read-only first, then normally) and finds every key with its exact
 *    bytes, current_version == 1000.
 *  - Lost updates: 100 read-modify-write transactions from 20 threads on 10
 *    counters, retried on CAIRN_ECONFLICT: every counter ends at exactly 10,
 *    in snapshot and in serializable isolation; conflicts really happened and
 *    the stats count them.
 *  - API basics: missing keys, round trips, the empty key and value, binary
 *    keys, size limits (CAIRN_ETOOLARGE, nothing applied), bad arguments
 *    (CAIRN_EINVAL), every sync mode across a clean close, read-own-writes,
 *    abort, read-only transactions (CAIRN_EREADONLY), write batches (atomic
 *    under a concurrent reader; later writes of a key win), transactions and
 *    batches of 5,000 writes, commit versions, the commit version of a
 *    transaction that wrote nothing, scans (order, [start,end), limit, early
 *    stop, own writes and deletes merged; and 150 random rounds against a
 *    model), read-only open, the directory lock (CAIRN_EBUSY in-process and
 *    from another process), missing or empty directory (CAIRN_ENOTFOUND),
 *    the FORMAT file and a newer format (CAIRN_EVERSION).
 *  - Snapshot isolation: first committer wins, snapshots are stable, and a
 *    snapshot scanned again and again while writers rewrite every key and
 *    the GC swaps tables under it returns exactly the snapshot.
 *  - Serializable: write skew is refused (and allowed under snapshot, which
 *    proves the difference), disjoint read/write sets still commit, phantoms
 *    in a scanned range (also one cut short by a limit) and reads of missing
 *    keys are refused.
 *  - Time travel: get_at_version / get_at_time / key_versions / pinned
 *    read-only transactions, exact against recorded versions and clock
 *    readings; future versions are CAIRN_EINVAL; with history_ms = 0 the GC
 *    makes old versions CAIRN_EHISTORY (but never what an open transaction
 *    needs); with a long history they survive GC; reads by version and by
 *    time racing a writer and the GC (50 ms window) are exact whenever the
 *    version is >= oldest_version, CAIRN_EHISTORY only once it is not.
 *  - GC bounds memory: 200,000 updates of 100 keys in a 256 KiB memtable;
 *    reads "as of" any version are refused below oldest_version and exact
 *    above it, before and after reopening.
 *  - Commit timestamps strictly increase with the version (4 threads).
 *  - Recovery: 5 cycles of open / write / close / reopen, full model check,
 *    time travel across restarts.
 *
 * Sizes: CAIRN_DB_GC_UPDATES (default 200000) for the GC memory test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "test_util.h"

/* ---------- helpers ---------- */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Failures inside worker threads: cmocka's asserts must run on the main
 * thread, so workers record the first failure and the main thread asserts. */
static atomic_int g_fail;
static char g_fail_msg[512];
#define T_FAIL(...)                                                            \
    do {                                                                       \
        if (atomic_exchange(&g_fail, 1) == 0)                                  \
            snprintf(g_fail_msg, sizeof g_fail_msg, __VA_ARGS__);              \
    } while (0)

static void assert_no_thread_failure(void)
{
    if (atomic_load(&g_fail))
        fprintf(stderr, "worker failure: %s\n", g_fail_msg);
    assert_int_equal(atomic_load(&g_fail), 0);
}

static void reset_thread_failure(void)
{
    atomic_store(&g_fail, 0);
    g_fail_msg[0] = 0;
}

static cairn_db *db_open(const char *dir, const cairn_options *o)
{
    cairn_db *db = NULL;
    int rc = cairn_open(dir, o, &db);
    if (rc != 0)
        fprintf(stderr, "cairn_open(%s): %s\n", dir, cairn_strerror(rc));
    assert_int_equal(rc, 0);
    assert_non_null(db);
    return db;
}

static void db_close(cairn_db *db)
{
    assert_int_equal(cairn_close(db), 0);
}

static uint64_t put_str(cairn_db *db, const char *k, const char *v)
{
    uint64_t ver = 0;
    assert_int_equal(cairn_put(db, k, strlen(k), v, strlen(v), &ver), 0);
    assert_true(ver > 0);
    return ver;
}

static uint64_t del_str(cairn_db *db, const char *k)
{
    uint64_t ver = 0;
    assert_int_equal(cairn_delete(db, k, strlen(k), &ver), 0);
    assert_true(ver > 0);
    return ver;
}

/* Compare a returned value with the expected one (v NULL: expected absent,
 * rc must be CAIRN_ENOTFOUND). Frees val. */
static void match_value(int rc, void *val, size_t vlen, const char *v,
                         size_t len, const char *what, const char *key)
{
    if (!v) {
        if (rc != CAIRN_ENOTFOUND)
            fprintf(stderr, "%s(%s): expected not found, got %s\n", what, key,
                    cairn_strerror(rc));
        assert_int_equal(rc, CAIRN_ENOTFOUND);
        return;
    }
    if (rc != 0)
        fprintf(stderr, "%s(%s): expected \"%.*s\", got %s\n", what, key,
                (int)len, v, cairn_strerror(rc));
    assert_int_equal(rc, 0);
    assert_non_null(val);
    if (vlen != len || memcmp(val, v, len) != 0)
        fprintf(stderr, "%s(%s): expected \"%.*s\", got \"%.*s\"\n", what, key,
                (int)len, v, (int)vlen, (const char *)val);
    assert_int_equal(vlen, len);
    if (len)
        assert_memory_equal(val, v, len);
    cairn_free(val);
}

static void check_str(cairn_db *db, const char *k, const char *v)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = cairn_get(db, k, strlen(k), &val, &vlen);
    match_value(rc, val, vlen, v, v ? strlen(v) : 0, "cairn_get", k);
}

static void check_txn_str(cairn_txn *t, const char *k, const char *v)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = cairn_txn_get(t, k, strlen(k), &val, &vlen);
    match_value(rc, val, vlen, v, v ? strlen(v) : 0, "cairn_txn_get", k);
}

static void check_at_version(cairn_db *db, const char *k, uint64_t ver,
                             const char *v)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = cairn_get_at_version(db, k, strlen(k), ver, &val, &vlen);
    match_value(rc, val, vlen, v, v ? strlen(v) : 0, "cairn_get_at_version",
                 k);
}

static void check_at_time(cairn_db *db, const char *k, uint64_t t,
                          const char *v)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = cairn_get_at_time(db, k, strlen(k), t, &val, &vlen);
    match_value(rc, val, vlen, v, v ? strlen(v) : 0, "cairn_get_at_time", k);
}

static cairn_txn *txn_begin(cairn_db *db, bool read_only, cairn_isolation iso)
{
    cairn_txn_options o = {.read_only = read_only, .isolation = iso};
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, &o, &t), 0);
    assert_non_null(t);
    return t;
}

static void txn_put_str(cairn_txn *t, const char *k, const char *v)
{
    assert_int_equal(cairn_txn_put(t, k, strlen(k), v, strlen(v)), 0);
}

static void txn_del_str(cairn_txn *t, const char *k)
{
    assert_int_equal(cairn_txn_delete(t, k, strlen(k)), 0);
}

static char *fresh_dir(const char *tag)
{
    char *dir = tu_mkdtemp(tag);
    assert_non_null(dir);
    return dir;
}

static void drop_dir(char *dir)
{
    tu_rmrf(dir);
    free(dir);
}

/* ---------- canonical 1: acknowledged puts survive a dying process ---------- */

static size_t kill_vlen(int i)
{
    return (size_t)((i * 37) % 301); /* 0..300 bytes */
}

static void kill_child(const char *dir, bool sigkill)
{
    /* _exit: the defaults (sync=always). SIGKILL: sync=none, which must
     * survive the death of the process too (only a power loss may lose
     * its commits), and 1 MiB log segments (recovery after a crash reads
     * the preallocated tail of the last segment: keeps it short). */
    cairn_options o;
    cairn_options_init(&o);
    if (sigkill) {
        o.sync_mode = CAIRN_SYNC_NONE;
        o.wal_segment_size = 1 << 20;
    }
    cairn_db *db = NULL;
    int rc = cairn_open(dir, &o, &db);
    if (rc != 0) {
        fprintf(stderr, "child: open: %s\n", cairn_strerror(rc));
        _exit(2);
    }
    uint8_t buf[301];
    uint64_t prev = 0;
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof key, "key-%04d", i);
        size_t n = kill_vlen(i);
        tu_fill(buf, n, (uint64_t)i);
        uint64_t v = 0;
        rc = cairn_put(db, key, strlen(key), buf, n, &v);
        if (rc != 0) {
            fprintf(stderr, "child: put %d: %s\n", i, cairn_strerror(rc));
            _exit(3);
        }
        if (v <= prev) {
            fprintf(stderr, "child: put %d: version %" PRIu64
                            " not above %" PRIu64 "\n", i, v, prev);
            _exit(4);
        }
        prev = v;
    }
    if (sigkill)
        kill(getpid(), SIGKILL);
    _exit(0); /* no cairn_close */
}

static void check_kill_key(cairn_db *db, int i)
{
    char key[16];
    snprintf(key, sizeof key, "key-%04d", i);
    void *val = NULL;
    size_t vlen = 0;
    int rc = cairn_get(db, key, strlen(key), &val, &vlen);
    if (rc != 0)
        fprintf(stderr, "%s: %s\n", key, cairn_strerror(rc));
    assert_int_equal(rc, 0);
    assert_non_null(val);
    assert_int_equal(vlen, kill_vlen(i));
    assert_true(tu_check(val, vlen, (uint64_t)i));
    cairn_free(val);
}

static void run_kill_test(bool sigkill)
{
    char *dir = fresh_dir("db-kill");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        kill_child(dir, sigkill);
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (sigkill) {
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGKILL);
    } else {
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fprintf(stderr, "child status %d\n", st);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    /* A read-only open of the crashed database sees everything and changes
     * nothing (the normal open below still recovers 1000 commits). */
    cairn_options ro;
    cairn_options_init(&ro);
    ro.read_only = true;
    cairn_db *db = db_open(dir, &ro);
    assert_int_equal(cairn_current_version(db), 1000);
    for (int i = 0; i < 1000; i += 111)
        check_kill_key(db, i);
    assert_int_equal(cairn_put(db, "x", 1, "y", 1, NULL), CAIRN_EREADONLY);
    db_close(db);
    db = db_open(dir, NULL);
    for (int i = 0; i < 1000; i++)
        check_kill_key(db, i);
    check_str(db, "key-1000", NULL);
    /* One commit per put, versions from 1, none skipped (nothing failed). */
    assert_int_equal(cairn_current_version(db), 1000);
    cairn_stats st2;
    cairn_get_stats(db, &st2);
    assert_int_equal(st2.recovered_commits, 1000);
    assert_int_equal(st2.current_version, 1000);
    /* The recovered database goes on from there. */
    assert_int_equal(put_str(db, "after", "x"), 1001);
    db_close(db);
    drop_dir(dir);
}

static void test_canonical_exit_without_close(void **state)
{
    (void)state;
    run_kill_test(false);
}

static void test_canonical_sigkill(void **state)
{
    (void)state;
    run_kill_test(true);
}

/* ---------- canonical 2: concurrent read-modify-write counters ---------- */

#define CTR_THREADS 20
#define CTR_TXNS 100
#define CTR_COUNTERS 10

typedef struct ctr_arg {
    cairn_db *db;
    cairn_isolation iso;
    int first; /* first transaction index of this thread */
    int count;
    pthread_barrier_t *barrier;
    uint64_t conflicts;
    uint64_t commits;
} ctr_arg;

/* Read counter (decimal string; absent = 0) inside txn. */
static int txn_get_counter(cairn_txn *t, const char *key, uint64_t *out)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = cairn_txn_get(t, key, strlen(key), &val, &vlen);
    if (rc == CAIRN_ENOTFOUND) {
        *out = 0;
        return 0;
    }
    if (rc != 0)
        return rc;
    char buf[32];
    if (vlen >= sizeof buf) {
        cairn_free(val);
        return CAIRN_ECORRUPT;
    }
    memcpy(buf, val, vlen);
    buf[vlen] = 0;
    cairn_free(val);
    *out = strtoull(buf, NULL, 10);
    return 0;
}

static void *ctr_main(void *p)
{
    ctr_arg *a = p;
    pthread_barrier_wait(a->barrier);
    for (int i = a->first; i < a->first + a->count; i++) {
        char key[16];
        snprintf(key, sizeof key, "ctr-%d", i % CTR_COUNTERS);
        for (int attempt = 0;; attempt++) {
            if (attempt > 100000) {
                T_FAIL("txn %d: no progress after 100000 attempts", i);
                return NULL;
            }
            cairn_txn_options o = {.isolation = a->iso};
            cairn_txn *t = NULL;
            int rc = cairn_txn_begin(a->db, &o, &t);
            if (rc != 0) {
                T_FAIL("txn_begin: %s", cairn_strerror(rc));
                return NULL;
            }
            uint64_t n = 0;
            rc = txn_get_counter(t, key, &n);
            if (rc != 0) {
                T_FAIL("txn_get %s: %s", key, cairn_strerror(rc));
                cairn_txn_abort(t);
                return NULL;
            }
            /* Widen the window between read and commit so transactions
             * overlap and conflicts really happen. */
            if (attempt < 3)
                usleep(200);
            char buf[32];
            int len = snprintf(buf, sizeof buf, "%" PRIu64, n + 1);
            rc = cairn_txn_put(t, key, strlen(key), buf, (size_t)len);
            if (rc != 0) {
                T_FAIL("txn_put: %s", cairn_strerror(rc));
                cairn_txn_abort(t);
                return NULL;
            }
            uint64_t ver = 0;
            rc = cairn_txn_commit(t, &ver);
            if (rc == 0) {
                a->commits++;
                break;
            }
            if (rc != CAIRN_ECONFLICT) {
                T_FAIL("commit: %s", cairn_strerror(rc));
                return NULL;
            }
            a->conflicts++;
        }
    }
    return NULL;
}

static void run_counters(cairn_isolation iso)
{
    reset_thread_failure();
    char *dir = fresh_dir("db-ctr");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    cairn_db *db = db_open(dir, &o);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, CTR_THREADS);
    pthread_t th[CTR_THREADS];
    ctr_arg args[CTR_THREADS];
    int per = CTR_TXNS / CTR_THREADS;
    for (int i = 0; i < CTR_THREADS; i++) {
        args[i] = (ctr_arg){.db = db, .iso = iso, .first = i * per,
                            .count = per, .barrier = &barrier};
        assert_int_equal(pthread_create(&th[i], NULL, ctr_main, &args[i]), 0);
    }
    uint64_t conflicts = 0, commits = 0;
    for (int i = 0; i < CTR_THREADS; i++) {
        pthread_join(th[i], NULL);
        conflicts += args[i].conflicts;
        commits += args[i].commits;
    }
    pthread_barrier_destroy(&barrier);
    assert_no_thread_failure();
    assert_int_equal(commits, CTR_TXNS);
    for (int c = 0; c < CTR_COUNTERS; c++) {
        char key[16];
        snprintf(key, sizeof key, "ctr-%d", c);
        check_str(db, key, "10");
    }
    cairn_stats st;
    cairn_get_stats(db, &st);
    fprintf(stderr, "counters (%s): %" PRIu64 " commits, %" PRIu64
                    " conflicts retried\n",
            iso == CAIRN_ISOLATION_SERIALIZABLE ? "serializable" : "snapshot",
            commits, conflicts);
    assert_int_equal(st.commits, CTR_TXNS);
    assert_int_equal(st.conflicts, conflicts);
    assert_int_equal(st.current_version, cairn_current_version(db));
    assert_true(st.current_version >= CTR_TXNS);
    /* 20 threads released together, 200 us between read and commit, on 10
     * counters: transactions overlapped, so some must have conflicted. */
    assert_true(conflicts > 0);
    db_close(db);
    /* And after reopening. */
    db = db_open(dir, &o);
    for (int c = 0; c < CTR_COUNTERS; c++) {
        char key[16];
        snprintf(key, sizeof key, "ctr-%d", c);
        check_str(db, key, "10");
    }
    db_close(db);
    drop_dir(dir);
}

static void test_counters_snapshot(void **state)
{
    (void)state;
    run_counters(CAIRN_ISOLATION_SNAPSHOT);
}

static void test_counters_serializable(void **state)
{
    (void)state;
    run_counters(CAIRN_ISOLATION_SERIALIZABLE);
}

/* ---------- API basics ---------- */

static void test_basic_round_trips(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-basic");
    cairn_db *db = db_open(dir, NULL);
    assert_int_equal(cairn_current_version(db), 0);
    check_str(db, "missing", NULL);
    uint64_t v1 = put_str(db, "alpha", "one");
    assert_int_equal(v1, 1);
    assert_int_equal(cairn_current_version(db), 1);
    check_str(db, "alpha", "one");
    uint64_t v2 = put_str(db, "alpha", "uno");
    assert_true(v2 > v1);
    check_str(db, "alpha", "uno");
    uint64_t v3 = del_str(db, "alpha");
    assert_true(v3 > v2);
    check_str(db, "alpha", NULL);
    /* Put again after a delete. */
    put_str(db, "alpha", "eins");
    check_str(db, "alpha", "eins");

    /* The empty key is a key; the empty value is a value (non-NULL). */
    check_str(db, "", NULL);
    put_str(db, "", "empty-key");
    check_str(db, "", "empty-key");
    put_str(db, "empty-val", "");
    void *val = NULL;
    size_t vlen = 99;
    assert_int_equal(cairn_get(db, "empty-val", 9, &val, &vlen), 0);
    assert_non_null(val);
    assert_int_equal(vlen, 0);
    cairn_free(val);
    assert_int_equal(cairn_put(db, "", 0, "", 0, NULL), 0);
    val = NULL;
    vlen = 99;
    assert_int_equal(cairn_get(db, "", 0, &val, &vlen), 0);
    assert_non_null(val);
    assert_int_equal(vlen, 0);
    cairn_free(val);
    del_str(db, "");
    check_str(db, "", NULL);
    check_str(db, "empty-val", "");

    /* Binary keys: embedded NULs and prefixes are distinct keys. */
    assert_int_equal(cairn_put(db, "a\0b", 3, "A0B", 3, NULL), 0);
    assert_int_equal(cairn_put(db, "a\0", 2, "A0", 2, NULL), 0);
    assert_int_equal(cairn_put(db, "a", 1, "A", 1, NULL), 0);
    val = NULL;
    assert_int_equal(cairn_get(db, "a\0b", 3, &val, &vlen), 0);
    assert_int_equal(vlen, 3);
    assert_memory_equal(val, "A0B", 3);
    cairn_free(val);
    assert_int_equal(cairn_get(db, "a\0", 2, &val, &vlen), 0);
    assert_int_equal(vlen, 2);
    assert_memory_equal(val, "A0", 2);
    cairn_free(val);
    check_str(db, "a", "A");
    assert_int_equal(cairn_get(db, "a\0c", 3, &val, &vlen), CAIRN_ENOTFOUND);

    /* A large value (1 MiB) round trips. */
    size_t big = 1 << 20;
    uint8_t *b = malloc(big);
    assert_non_null(b);
    tu_fill(b, big, 77);
    assert_int_equal(cairn_put(db, "big", 3, b, big, NULL), 0);
    val = NULL;
    assert_int_equal(cairn_get(db, "big", 3, &val, &vlen), 0);
    assert_int_equal(vlen, big);
    assert_true(tu_check(val, vlen, 77));
    cairn_free(val);
    free(b);

    /* cairn_strerror knows the codes used here. */
    assert_string_not_equal(cairn_strerror(CAIRN_EHISTORY), "unknown error");
    assert_string_equal(cairn_strerror(12345), "unknown error");
    db_close(db);

    /* All of it after reopening. */
    db = db_open(dir, NULL);
    check_str(db, "alpha", "eins");
    check_str(db, "", NULL);
    check_str(db, "empty-val", "");
    check_str(db, "a", "A");
    assert_int_equal(cairn_get(db, "big", 3, &val, &vlen), 0);
    assert_int_equal(vlen, big);
    assert_true(tu_check(val, vlen, 77));
    cairn_free(val);
    db_close(db);
    drop_dir(dir);
}

static void test_size_limits(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-limits");
    cairn_options o;
    cairn_options_init(&o);
    o.max_key_size = 16;
    o.max_value_size = 100;
    cairn_db *db = db_open(dir, &o);
    char key[32];
    uint8_t val[200];
    memset(key, 'k', sizeof key);
    memset(val, 'v', sizeof val);
    /* At the limit: fine. */
    assert_int_equal(cairn_put(db, key, 16, val, 100, NULL), 0);
    /* Over: refused, nothing written. */
    uint64_t before = cairn_current_version(db);
    assert_int_equal(cairn_put(db, key, 17, val, 1, NULL), CAIRN_ETOOLARGE);
    assert_int_equal(cairn_put(db, "small", 5, val, 101, NULL),
                     CAIRN_ETOOLARGE);
    assert_int_equal(cairn_delete(db, key, 17, NULL), CAIRN_ETOOLARGE);
    assert_int_equal(cairn_current_version(db), before);
    check_str(db, "small", NULL);
    /* A batch with one bad write applies nothing. */
    cairn_write w[3] = {
        {"b1", 2, "x", 1},
        {"b2", 2, val, 101},
        {"b3", 2, "z", 1},
    };
    assert_int_equal(cairn_write_batch(db, w, 3, NULL), CAIRN_ETOOLARGE);
    check_str(db, "b1", NULL);
    check_str(db, "b3", NULL);
    assert_int_equal(cairn_current_version(db), before);
    /* In a transaction: refused at the put or at the commit, never applied. */
    cairn_txn *t = txn_begin(db, false, CAIRN_ISOLATION_DEFAULT);
    txn_put_str(t, "t1", "ok");
    int rc = cairn_txn_put(t, "t2", 2, val, 101);
    if (rc == 0) {
        assert_int_equal(cairn_txn_commit(t, NULL), CAIRN_ETOOLARGE);
    } else {
        assert_int_equal(rc, CAIRN_ETOOLARGE);
        cairn_txn_abort(t);
    }
    check_str(db, "t1", NULL);
    check_str(db, "t2", NULL);
    assert_int_equal(cairn_current_version(db), before);
    db_close(db);
    drop_dir(dir);
}

static void test_txn_own_writes_and_abort(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-txn");
    cairn_db *db = db_open(dir, NULL);
    put_str(db, "x", "x0");
    put_str(db, "y", "y0");

    cairn_txn *t = txn_begin(db, false, CAIRN_ISOLATION_DEFAULT);
    check_txn_str(t, "x", "x0");
    txn_put_str(t, "x", "x1");
    check_txn_str(t, "x", "x1");      /* own write */
    txn_put_str(t, "x", "x2");
    check_txn_str(t, "x", "x2");      /* last own write wins */
    txn_del_str(t, "y");
    check_txn_str(t, "y", NULL);      /* own delete */
    txn_put_str(t, "new", "n1");
    check_txn_str(t, "new", "n1");
    txn_del_str(t, "new");
    check_txn_str(t, "new", NULL);
    /* Nothing is visible outside before commit. */
    check_str(db, "x", "x0");
    check_str(db, "y", "y0");
    cairn_txn_abort(t);
    /* Abort discards everything. */
    check_str(db, "x", "x0");
    check_str(db, "y", "y0");
    check_str(db, "new", NULL);
    assert_int_equal(cairn_current_version(db), 2);

    /* The same, committed. */
    t = txn_begin(db, false, CAIRN_ISOLATION_DEFAULT);
    txn_put_str(t, "x", "x1");
    txn_put_str(t, "x", "x2");
    txn_del_str(t, "y");
    txn_put_str(t, "z", "z1");
    uint64_t ver = 0;
    assert_int_equal(cairn_txn_commit(t, &ver), 0);
    assert_int_equal(ver, 3); /* one commit for the whole transaction */
    check_str(db, "x", "x2");
    check_str(db, "y", NULL);
    check_str(db, "z", "z1");
    check_at_version(db, "x", 2, "x0");
    check_at_version(db, "y", 2, "y0");
    check_at_version(db, "z", 2, NULL);

    /* Read-only transactions refuse writes. */
    t = txn_begin(db, true, CAIRN_ISOLATION_DEFAULT);
    check_txn_str(t, "x", "x2");
    assert_int_equal(cairn_txn_put(t, "x", 1, "bad", 3), CAIRN_EREADONLY);
    assert_int_equal(cairn_txn_delete(t, "x", 1), CAIRN_EREADONLY);
    check_txn_str(t, "x", "x2");
    uint64_t snap = cairn_txn_snapshot(t);
    assert_int_equal(snap, 3);
    ver = 0;
    assert_int_equal(cairn_txn_commit(t, &ver), 0);
    assert_int_equal(ver, snap);
    check_str(db, "x", "x2");
    assert_int_equal(cairn_current_version(db), 3);
    db_close(db);
    drop_dir(dir);
}

static void test_commit_versions(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-versions");
    cairn_db *db = db_open(dir, NULL);
    uint64_t prev = 0;
    for (int i = 0; i < 50; i++) {
        uint64_t v = 0;
        char k[16];
        snprintf(k, sizeof k, "k%d", i % 7);
        switch (i % 4) {
        case 0:
            assert_int_equal(cairn_put(db, k, strlen(k), "v", 1, &v), 0);
            break;
        case 1:
            assert_int_equal(cairn_delete(db, k, strlen(k), &v), 0);
            break;
        case 2: {
            cairn_write w[2] = {{k, strlen(k), "a", 1}, {"other", 5, NULL, 0}};
            assert_int_equal(cairn_write_batch(db, w, 2, &v), 0);
            break;
        }
        default: {
            cairn_txn *t = txn_begin(db, false, CAIRN_ISOLATION_DEFAULT);
            assert_int_equal(cairn_txn_snapshot(t), prev);
            txn_put_str(t, k, "t");
            assert_int_equal(cairn_txn_commit(t, &v), 0);
        }
        }
        assert_true(v > prev);
        assert_int_equal(cairn_current_version(db), v);
        prev = v;
    }
    assert_int_equal(prev, 50);

    /* A transaction that wrote nothing commits with its snapshot version,
     * even when others committed meanwhile; it consumes no version. */
    cairn_txn *t = txn_begin(db, false, CAIRN_ISOLATION_DEFAULT);
    uint64_t snap = cairn_txn_snapshot(t);
    assert_int_equal(snap, 50);
    check_txn_str(t, "k0", NULL); /* the last op (i = 49) deleted k0 */
    check_txn_str(t, "k1", "t");  /* i = 43: a transaction's put */
    put_str(db, "meanwhile", "1");
    uint64_t v = 0;
    assert_int_equal(cairn_txn_commit(t, &v), 0);
    assert_int_equal(v, snap);
    assert_int_equal(cairn_current_version(db), 51);
    t = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    assert_int_equal(cairn_txn_snapshot(t), 51);
    check_txn_str(t, "meanwhile", "1");
    put_str(db, "meanwhile", "2"); /* overwrites what t read */
    v = 0;
    /* t wrote nothing: it is serializable at its snapshot. Committing it
     * may succeed (at its snapshot version) or be refused as a conflict;
     * either way it consumes no version. */
    int rc = cairn_txn_commit(t, &v);
    assert_true(rc == 0 || rc == CAIRN_ECONFLICT);
    if (rc == 0)
        assert_int_equal(v, 51);
    assert_int_equal(put_str(db, "next", "n"), 53);
    db_close(db);
    drop_dir(dir);
}

/* --- write batches --- */

typedef struct batch_arg {
    cairn_db *db;
    int iterations;
    atomic_bool done;
    uint64_t reads;
} batch_arg;

static void *batch_writer(void *p)
{
    batch_arg *a = p;
    for (int it = 1; it <= a->iterations; it++) {
        char val[16];
        snprintf(val, sizeof val, "%08d", it);
        char keys[10][16];
        cairn_write w[10];
        for (int k = 0; k < 10; k++) {
            snprintf(keys[k], sizeof keys[k], "bk%d", k);
            w[k] = (cairn_write){keys[k], strlen(keys[k]), val, 8};
        }
        int rc = cairn_write_batch(a->db, w, 10, NULL);
        if (rc != 0) {
            T_FAIL("write_batch: %s", cairn_strerror(rc));
            break;
        }
    }
    atomic_store(&a->done, true);
    return NULL;
}

typedef struct scan_collect {
    int n;
    char vals[16][16];
    char keys[16][16];
} scan_collect;

static int collect_cb(void *arg, const void *key, size_t klen, const void *val,
                      size_t vlen)
{
    scan_collect *c = arg;
    if (c->n >= 16)
        return 1;
    snprintf(c->keys[c->n], 16, "%.*s", (int)klen, (const char *)key);
    snprintf(c->vals[c->n], 16, "%.*s", (int)vlen, (const char *)val);
    c->n++;
    return 0;
}

static void *batch_reader(void *p)
{
    batch_arg *a = p;
    /* At least one read, however late this thread starts. */
    while ((a->reads == 0 || !atomic_load(&a->done)) &&
           !atomic_load(&g_fail)) {
        cairn_txn_options o = {.read_only = true};
        cairn_txn *t = NULL;
        int rc = cairn_txn_begin(a->db, &o, &t);
        if (rc != 0) {
            T_FAIL("txn_begin: %s", cairn_strerror(rc));
            return NULL;
        }
        char first[16] = "";
        int found = -1; /* -1 unknown, 0 absent, 1 present */
        for (int k = 0; k < 10; k++) {
            char key[16];
            snprintf(key, sizeof key, "bk%d", k);
            void *val = NULL;
            size_t vlen = 0;
            rc = cairn_txn_get(t, key, strlen(key), &val, &vlen);
            int f = rc == 0;
            if (rc != 0 && rc != CAIRN_ENOTFOUND) {
                T_FAIL("txn_get: %s", cairn_strerror(rc));
                cairn_txn_abort(t);
                return NULL;
            }
            char cur[16] = "";
            if (f) {
                snprintf(cur, sizeof cur, "%.*s", (int)vlen, (char *)val);
                cairn_free(val);
            }
            if (found == -1) {
                found = f;
                strcpy(first, cur);
            } else if (found != f || strcmp(first, cur) != 0) {
                T_FAIL("fractured batch: bk0=%s bk%d=%s", first, k, cur);
                cairn_txn_abort(t);
                return NULL;
            }
        }
        /* The same through a scan of the transaction. */
        scan_collect c = {0};
        rc = cairn_txn_scan(t, "bk", 2, "bl", 2, 0, collect_cb, &c);
        if (rc != 0 || c.n != (found ? 10 : 0)) {
            T_FAIL("scan: rc %d, %d keys", rc, c.n);
            cairn_txn_abort(t);
            return NULL;
        }
        for (int k = 0; k < c.n; k++)
            if (strcmp(c.vals[k], first) != 0) {
                T_FAIL("fractured scan: %s vs %s", c.vals[k], first);
                break;
            }
        cairn_txn_abort(t);
        /* Point reads as of one version agree too. */
        uint64_t v = cairn_current_version(a->db);
        char vals[10][16];
        int present = 0;
        for (int k = 0; k < 10; k++) {
            char key[16];
            snprintf(key, sizeof key, "bk%d", k);
            void *val = NULL;
            size_t vlen = 0;
            rc = cairn_get_at_version(a->db, key, strlen(key), v, &val, &vlen);
            vals[k][0] = 0;
            if (rc == 0) {
                present++;
                snprintf(vals[k], 16, "%.*s", (int)vlen, (char *)val);
                cairn_free(val);
            } else if (rc != CAIRN_ENOTFOUND) {
                T_FAIL("get_at_version %" PRIu64 ": %s", v,
                       cairn_strerror(rc));
                return NULL;
            }
            if (k > 0 && strcmp(vals[k], vals[0]) != 0) {
                T_FAIL("fractured at version %" PRIu64 ": %s vs %s", v,
                       vals[k], vals[0]);
                return NULL;
            }
        }
        if (present != 0 && present != 10)
            T_FAIL("batch half visible at version %" PRIu64, v);
        a->reads++;
    }
    return NULL;
}

static void test_write_batch(void **state)
{
    (void)state;
    reset_thread_failure();
    char *dir = fresh_dir("db-batch");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    cairn_db *db = db_open(dir, &o);

    /* Later writes of the same key win; NULL deletes. */
    put_str(db, "gone", "here");
    cairn_write w[5] = {
        {"dup", 3, "first", 5},
        {"gone", 4, NULL, 0},
        {"dup", 3, "second", 6},
        {"del-then-put", 12, NULL, 0},
        {"del-then-put", 12, "back", 4},
    };
    uint64_t v = 0;
    assert_int_equal(cairn_write_batch(db, w, 5, &v), 0);
    assert_int_equal(v, 2);
    check_str(db, "dup", "second");
    check_str(db, "gone", NULL);
    check_str(db, "del-then-put", "back");
    cairn_write w2[2] = {{"dup", 3, "x", 1}, {"dup", 3, NULL, 0}};
    assert_int_equal(cairn_write_batch(db, w2, 2, &v), 0);
    check_str(db, "dup", NULL);
    check_at_version(db, "dup", 2, "second");

    /* Atomic under a concurrent reader. */
    batch_arg a = {.db = db, .iterations = 2000};
    atomic_init(&a.done, false);
    pthread_t wt, rt;
    assert_int_equal(pthread_create(&rt, NULL, batch_reader, &a), 0);
    assert_int_equal(pthread_create(&wt, NULL, batch_writer, &a), 0);
    pthread_join(wt, NULL);
    pthread_join(rt, NULL);
    assert_no_thread_failure();
    fprintf(stderr, "write batch: %" PRIu64 " consistent reads during %d "
                    "batches\n", a.reads, a.iterations);
    assert_true(a.reads > 0);
    for (int k = 0; k < 10; k++) {
        char key[16];
        snprintf(key, sizeof key, "bk%d", k);
        check_str(db, key, "00002000");
    }
    db_close(db);
    db = db_open(dir, &o);
    for (int k = 0; k < 10; k++) {
        char key[16];
        snprintf(key, sizeof key, "bk%d", k);
        check_str(db, key, "00002000");
    }
    check_str(db, "dup", NULL);
    check_str(db, "del-then-put", "back");
    db_close(db);
    drop_dir(dir);
}

/* --- scans --- */

typedef struct scan_list {
    int n;
    int stop_after; /* 0: never */
    char out[1024];
} scan_list;

/* Appends "key=val," for each visited pair. */
static int list_cb(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    scan_list *l = arg;
    size_t used = strlen(l->out);
    snprintf(l->out + used, sizeof l->out - used, "%.*s=%.*s,", (int)klen,
             (const char *)key, (int)vlen, (const char *)val);
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

static void expect_scan(cairn_txn *t, const char *start, const char *end,
                        size_t limit, int stop_after, const char *want)
{
    scan_list l = {.stop_after = stop_after};
    int rc = cairn_txn_scan(t, start, strlen(start), end, end ? strlen(end) : 0,
                            limit, list_cb, &l);
    assert_int_equal(rc, 0);
    if (strcmp(l.out, want) != 0)
        fprintf(stderr, "scan [%s, %s) limit %zu: got  %s\n"
                        "                          want %s\n",
                start, end ? end : "END", limit, l.out, want);
    assert_string_equal(l.out, want);
}

static void test_scan(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-scan");
    cairn_db *db = db_open(dir, NULL);
    const char *keys[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    /* Insert out of order. */
    for (int i = 7; i >= 0; i--) {
        char v[4] = {(char)('A' + i), 0};
        put_str(db, keys[i], v);
    }
    put_str(db, "", "EMPTY");
    del_str(db, "d");
    put_str(db, "b", "B"); /* an older version of b exists too */

    cairn_txn *t = txn_begin(db, false, CAIRN_ISOLATION_SNAPSHOT);
    expect_scan(t, "", NULL, 0, 0, "=EMPTY,a=A,b=B,c=C,e=E,f=F,g=G,h=H,");
    txn_put_str(t, "c", "C2");
    txn_put_str(t, "cc", "new");
    txn_del_str(t, "e");
    txn_put_str(t, "z", "Z");
    txn_put_str(t, "aa", "x");
    txn_del_str(t, "aa"); /* own put then delete: invisible */
    expect_scan(t, "b", "g", 0, 0, "b=B,c=C2,cc=new,f=F,");
    expect_scan(t, "b", "g", 2, 0, "b=B,c=C2,");
    expect_scan(t, "b", "g", 3, 0, "b=B,c=C2,cc=new,");
    expect_scan(t, "b", "g", 0, 3, "b=B,c=C2,cc=new,"); /* callback stops */
    expect_scan(t, "c", "cc", 0, 0, "c=C2,");           /* end exclusive */
    expect_scan(t, "ca", "d", 0, 0, "cc=new,");
    expect_scan(t, "", NULL, 0, 0,
                "=EMPTY,a=A,b=B,c=C2,cc=new,f=F,g=G,h=H,z=Z,");
    expect_scan(t, "g", NULL, 0, 0, "g=G,h=H,z=Z,");
    expect_scan(t, "g", "g", 0, 0, "");  /* empty range */
    expect_scan(t, "h", "b", 0, 0, "");  /* start after end */
    expect_scan(t, "zz", NULL, 0, 0, "");
    /* The limit counts live keys: own deletes do not use it up. */
    expect_scan(t, "d", NULL, 2, 0, "f=F,g=G,");
    txn_put_str(t, "d", "D2"); /* re-create a key deleted in the snapshot */
    expect_scan(t, "c", "e", 0, 0, "c=C2,cc=new,d=D2,");
    /* Outside the transaction nothing changed yet. */
    cairn_txn *r = txn_begin(db, true, CAIRN_ISOLATION_DEFAULT);
    expect_scan(r, "b", "g", 0, 0, "b=B,c=C,e=E,f=F,");
    cairn_txn_abort(r);
    assert_int_equal(cairn_txn_commit(t, NULL), 0);
    r = txn_begin(db, true, CAIRN_ISOLATION_DEFAULT);
    expect_scan(r, "", NULL, 0, 0,
                "=EMPTY,a=A,b=B,c=C2,cc=new,d=D2,f=F,g=G,h=H,z=Z,");
    cairn_txn_abort(r);

    /* Byte order: 0xff sorts after everything, shorter prefix first. */
    assert_int_equal(cairn_put(db, "\xff", 1, "FF", 2, NULL), 0);
    put_str(db, "b\x01", "B1");
    r = txn_begin(db, true, CAIRN_ISOLATION_DEFAULT);
    expect_scan(r, "b", "c", 0, 0, "b=B,b\x01=B1,");
    scan_list l = {0};
    assert_int_equal(cairn_txn_scan(r, "z", 1, NULL, 0, 0, list_cb, &l), 0);
    assert_string_equal(l.out, "z=Z,\xff=FF,");
    cairn_txn_abort(r);
    db_close(db);
    drop_dir(dir);
}

/* --- opening --- */

static void test_open_read_only(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-ro");
    cairn_db *db = db_open(dir, NULL);
    put_str(db, "k", "v");
    db_close(db);

    cairn_options o;
    cairn_options_init(&o);
    o.read_only = true;
    db = db_open(dir, &o);
    check_str(db, "k", "v");
    assert_int_equal(cairn_put(db, "k", 1, "w", 1, NULL), CAIRN_EREADONLY);
    assert_int_equal(cairn_put(db, "n", 1, "w", 1, NULL), CAIRN_EREADONLY);
    assert_int_equal(cairn_delete(db, "k", 1, NULL), CAIRN_EREADONLY);
    cairn_write w = {"k", 1, "w", 1};
    assert_int_equal(cairn_write_batch(db, &w, 1, NULL), CAIRN_EREADONLY);
    /* A read-write transaction cannot get a write through: refused at
     * begin, at the put or at the commit, always with CAIRN_EREADONLY. */
    cairn_txn *t = NULL;
    int rc = cairn_txn_begin(db, NULL, &t);
    if (rc == 0) {
        rc = cairn_txn_put(t, "k", 1, "w", 1);
        if (rc == 0)
            rc = cairn_txn_commit(t, NULL);
        else
            cairn_txn_abort(t);
    }
    assert_int_equal(rc, CAIRN_EREADONLY);
    /* Read-only transactions work. */
    t = txn_begin(db, true, CAIRN_ISOLATION_DEFAULT);
    check_txn_str(t, "k", "v");
    assert_int_equal(cairn_txn_commit(t, NULL), 0);
    check_str(db, "k", "v");
    check_str(db, "n", NULL);
    assert_int_equal(cairn_current_version(db), 1);
    db_close(db);
    /* Nothing was written: a normal open sees the same. */
    db = db_open(dir, NULL);
    check_str(db, "k", "v");
    assert_int_equal(cairn_current_version(db), 1);
    db_close(db);
    drop_dir(dir);
}

static void test_open_busy(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-busy");
    cairn_db *db = db_open(dir, NULL);
    put_str(db, "k", "v");
    cairn_db *db2 = NULL;
    assert_int_equal(cairn_open(dir, NULL, &db2), CAIRN_EBUSY);
    /* From another process too. */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        cairn_db *d = NULL;
        int rc = cairn_open(dir, NULL, &d);
        _exit(rc == CAIRN_EBUSY ? 0 : 1);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    /* The failed opens disturbed nothing. */
    check_str(db, "k", "v");
    put_str(db, "k2", "v2");
    db_close(db);
    /* Free again after close. */
    db = db_open(dir, NULL);
    check_str(db, "k", "v");
    check_str(db, "k2", "v2");
    db_close(db);
    drop_dir(dir);
}

static void test_open_missing_and_format(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-missing");
    char path[1024];
    snprintf(path, sizeof path, "%s/nope", dir);
    cairn_options o;
    cairn_options_init(&o);
    o.create_if_missing = false;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(path, &o, &db), CAIRN_ENOTFOUND);
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0); /* not created */

    /* Read-only never creates. */
    cairn_options ro;
    cairn_options_init(&ro);
    ro.read_only = true;
    assert_int_equal(cairn_open(path, &ro, &db), CAIRN_ENOTFOUND);
    assert_int_not_equal(stat(path, &sb), 0);
    /* An existing but empty directory is no database either. */
    assert_int_equal(cairn_open(dir, &o, &db), CAIRN_ENOTFOUND);

    /* Created when allowed; FORMAT says "cairn-db 1". */
    db = db_open(path, NULL);
    put_str(db, "k", "v");
    db_close(db);
    char fpath[1100];
    snprintf(fpath, sizeof fpath, "%s/FORMAT", path);
    FILE *f = fopen(fpath, "r");
    assert_non_null(f);
    char line[64] = {0};
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_int_equal(strncmp(line, "cairn-db 1", 10), 0);
    assert_true(line[10] == '\n' || line[10] == 0);
    /* It exists now: create_if_missing=false opens it. */
    db = db_open(path, &o);
    check_str(db, "k", "v");
    db_close(db);
    /* A database that never committed anything opens read-only. */
    char epath[1100];
    snprintf(epath, sizeof epath, "%s/empty", dir);
    db = db_open(epath, NULL);
    db_close(db);
    db = db_open(epath, &ro);
    check_str(db, "k", NULL);
    assert_int_equal(cairn_current_version(db), 0);
    assert_int_equal(cairn_put(db, "k", 1, "v", 1, NULL), CAIRN_EREADONLY);
    db_close(db);
    /* A newer format is refused. */
    f = fopen(fpath, "w");
    assert_non_null(f);
    fputs("cairn-db 99\n", f);
    fclose(f);
    db = NULL;
    assert_int_equal(cairn_open(path, NULL, &db), CAIRN_EVERSION);
    drop_dir(dir);
}

/* ---------- snapshot isolation ---------- */

static void test_first_committer_wins(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-fcw");
    cairn_db *db = db_open(dir, NULL);
    put_str(db, "k", "0");
    put_str(db, "other", "o");
    for (int iso = CAIRN_ISOLATION_SNAPSHOT;
         iso <= CAIRN_ISOLATION_SERIALIZABLE; iso++) {
        /* Blind writes of the same key. */
        cairn_txn *t1 = txn_begin(db, false, (cairn_isolation)iso);
        cairn_txn *t2 = txn_begin(db, false, (cairn_isolation)iso);
        txn_put_str(t1, "k", "t1");
        txn_put_str(t2, "k", "t2");
        txn_put_str(t2, "side", "t2"); /* must not appear either */
        uint64_t v1 = 0;
        assert_int_equal(cairn_txn_commit(t1, &v1), 0);
        assert_int_equal(cairn_txn_commit(t2, NULL), CAIRN_ECONFLICT);
        check_str(db, "k", "t1");
        check_str(db, "side", NULL);
        assert_int_equal(cairn_current_version(db), v1);

        /* A delete against a put. */
        t1 = txn_begin(db, false, (cairn_isolation)iso);
        t2 = txn_begin(db, false, (cairn_isolation)iso);
        txn_del_str(t1, "k");
        txn_put_str(t2, "k", "t2b");
        assert_int_equal(cairn_txn_commit(t1, NULL), 0);
        assert_int_equal(cairn_txn_commit(t2, NULL), CAIRN_ECONFLICT);
        check_str(db, "k", NULL);

        /* Conflict with an auto-commit put. */
        t2 = txn_begin(db, false, (cairn_isolation)iso);
        txn_put_str(t2, "k", "late");
        put_str(db, "k", "auto");
        assert_int_equal(cairn_txn_commit(t2, NULL), CAIRN_ECONFLICT);
        check_str(db, "k", "auto");

        /* Disjoint writes both commit. */
        t1 = txn_begin(db, false, (cairn_isolation)iso);
        t2 = txn_begin(db, false, (cairn_isolation)iso);
        txn_put_str(t1, "p", "1");
        txn_put_str(t2, "q", "2");
        assert_int_equal(cairn_txn_commit(t2, NULL), 0);
        assert_int_equal(cairn_txn_commit(t1, NULL), 0);
        check_str(db, "p", "1");
        check_str(db, "q", "2");
    }
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_int_equal(st.conflicts, 6);
    db_close(db);
    drop_dir(dir);
}

static void test_snapshot_stability(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-snap");
    cairn_db *db = db_open(dir, NULL);
    put_str(db, "a", "a1");
    put_str(db, "b", "b1");
    cairn_txn *t = txn_begin(db, false, CAIRN_ISOLATION_SNAPSHOT);
    cairn_txn *r = txn_begin(db, true, CAIRN_ISOLATION_DEFAULT);
    assert_int_equal(cairn_txn_snapshot(t), 2);
    assert_int_equal(cairn_txn_snapshot(r), 2);
    put_str(db, "a", "a2");
    del_str(db, "b");
    put_str(db, "c", "c1");
    cairn_write w[2] = {{"a", 1, "a3", 2}, {"d", 1, "d1", 2}};
    assert_int_equal(cairn_write_batch(db, w, 2, NULL), 0);
    for (int i = 0; i < 2; i++) {
        cairn_txn *x = i ? r : t;
        check_txn_str(x, "a", "a1");
        check_txn_str(x, "b", "b1");
        check_txn_str(x, "c", NULL);
        check_txn_str(x, "d", NULL);
        expect_scan(x, "", NULL, 0, 0, "a=a1,b=b1,");
    }
    check_str(db, "a", "a3");
    check_str(db, "b", NULL);
    /* t can still write keys nobody else touched. */
    txn_put_str(t, "e", "e1");
    assert_int_equal(cairn_txn_commit(t, NULL), 0);
    assert_int_equal(cairn_txn_commit(r, NULL), 0);
    check_str(db, "e", "e1");
    db_close(db);
    drop_dir(dir);
}

/* ---------- serializable ---------- */

/* Write skew: x=1, y=1, invariant x+y >= 1. Returns how many of the two
 * committed; *sum is x+y afterwards. via_db_default: the isolation comes
 * from the database options, the transactions ask for DEFAULT. */
static int write_skew(cairn_isolation iso, bool via_db_default, int *sum)
{
    char *dir = fresh_dir("db-skew");
    cairn_options o;
    cairn_options_init(&o);
    if (via_db_default)
        o.isolation = iso;
    cairn_db *db = db_open(dir, &o);
    put_str(db, "x", "1");
    put_str(db, "y", "1");
    cairn_isolation ti = via_db_default ? CAIRN_ISOLATION_DEFAULT : iso;
    cairn_txn *t1 = txn_begin(db, false, ti);
    cairn_txn *t2 = txn_begin(db, false, ti);
    check_txn_str(t1, "x", "1");
    check_txn_str(t1, "y", "1");
    check_txn_str(t2, "x", "1");
    check_txn_str(t2, "y", "1");
    txn_put_str(t1, "x", "0");
    txn_put_str(t2, "y", "0");
    int rc1 = cairn_txn_commit(t1, NULL);
    int rc2 = cairn_txn_commit(t2, NULL);
    assert_true(rc1 == 0 || rc1 == CAIRN_ECONFLICT);
    assert_true(rc2 == 0 || rc2 == CAIRN_ECONFLICT);
    void *val;
    size_t vlen;
    int s = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cairn_get(db, i ? "y" : "x", 1, &val, &vlen), 0);
        assert_int_equal(vlen, 1);
        s += ((char *)val)[0] - '0';
        cairn_free(val);
    }
    *sum = s;
    db_close(db);
    drop_dir(dir);
    return (rc1 == 0) + (rc2 == 0);
}

static void test_write_skew(void **state)
{
    (void)state;
    int sum = -1;
    /* Snapshot isolation allows it (the documented anomaly)... */
    assert_int_equal(write_skew(CAIRN_ISOLATION_SNAPSHOT, false, &sum), 2);
    assert_int_equal(sum, 0);
    assert_int_equal(write_skew(CAIRN_ISOLATION_SNAPSHOT, true, &sum), 2);
    assert_int_equal(sum, 0);
    /* ...serializable refuses exactly one of the two. */
    assert_int_equal(write_skew(CAIRN_ISOLATION_SERIALIZABLE, false, &sum), 1);
    assert_int_equal(sum, 1);
    assert_int_equal(write_skew(CAIRN_ISOLATION_SERIALIZABLE, true, &sum), 1);
    assert_int_equal(sum, 1);
}

static void test_serializable_precision(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-ser");
    cairn_db *db = db_open(dir, NULL);
    put_str(db, "x", "1");
    put_str(db, "y", "1");
    /* Disjoint read and write sets: both commit. */
    cairn_txn *t1 = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    cairn_txn *t2 = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    check_txn_str(t1, "x", "1");
    txn_put_str(t1, "x", "2");
    check_txn_str(t2, "y", "1");
    txn_put_str(t2, "y", "2");
    assert_int_equal(cairn_txn_commit(t1, NULL), 0);
    assert_int_equal(cairn_txn_commit(t2, NULL), 0);
    check_str(db, "x", "2");
    check_str(db, "y", "2");

    /* A read of a key someone else then wrote: refused. */
    t1 = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    check_txn_str(t1, "x", "2");
    txn_put_str(t1, "out", "1");
    put_str(db, "x", "3");
    assert_int_equal(cairn_txn_commit(t1, NULL), CAIRN_ECONFLICT);
    check_str(db, "out", NULL);
    /* The same under snapshot isolation commits (only writes conflict). */
    t1 = txn_begin(db, false, CAIRN_ISOLATION_SNAPSHOT);
    check_txn_str(t1, "x", "3");
    txn_put_str(t1, "out", "1");
    put_str(db, "x", "4");
    assert_int_equal(cairn_txn_commit(t1, NULL), 0);
    check_str(db, "out", "1");

    /* A read of a missing key that someone then creates: refused. */
    t1 = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    check_txn_str(t1, "ghost", NULL);
    txn_put_str(t1, "out2", "1");
    put_str(db, "ghost", "boo");
    assert_int_equal(cairn_txn_commit(t1, NULL), CAIRN_ECONFLICT);
    check_str(db, "out2", NULL);

    /* Phantom: t1 scans [a, z) and writes outside it; an insert into the
     * range commits first: t1 is refused. */
    put_str(db, "b", "B");
    put_str(db, "c", "C");
    t1 = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    expect_scan(t1, "a", "z", 0, 0, "b=B,c=C,ghost=boo,out=1,x=4,y=2,");
    txn_put_str(t1, "zz-total", "6");
    put_str(db, "m", "phantom");
    assert_int_equal(cairn_txn_commit(t1, NULL), CAIRN_ECONFLICT);
    check_str(db, "zz-total", NULL);
    /* A delete inside the range is a phantom too. */
    t1 = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    expect_scan(t1, "a", "d", 0, 0, "b=B,c=C,");
    txn_put_str(t1, "zz-total", "2");
    del_str(db, "c");
    assert_int_equal(cairn_txn_commit(t1, NULL), CAIRN_ECONFLICT);
    check_str(db, "zz-total", NULL);
    /* Control: an insert outside the scanned range does not conflict. */
    t1 = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    expect_scan(t1, "a", "d", 0, 0, "b=B,");
    txn_put_str(t1, "zz-total", "1");
    put_str(db, "d", "outside"); /* [a, d) excludes d */
    put_str(db, "~", "outside-too");
    assert_int_equal(cairn_txn_commit(t1, NULL), 0);
    check_str(db, "zz-total", "1");
    /* A scan cut short by its limit still guards what it saw: an insert
     * between two keys it returned is a phantom. */
    t1 = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    expect_scan(t1, "a", NULL, 2, 0, "b=B,d=outside,");
    txn_put_str(t1, "zz-total", "3");
    put_str(db, "ba", "phantom-2");
    assert_int_equal(cairn_txn_commit(t1, NULL), CAIRN_ECONFLICT);
    /* Same with a callback that stops early. */
    t1 = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    expect_scan(t1, "a", NULL, 0, 2, "b=B,ba=phantom-2,");
    txn_put_str(t1, "zz-total", "4");
    del_str(db, "ba");
    assert_int_equal(cairn_txn_commit(t1, NULL), CAIRN_ECONFLICT);
    check_str(db, "zz-total", "1");
    /* The same phantom under snapshot isolation commits. */
    t1 = txn_begin(db, false, CAIRN_ISOLATION_SNAPSHOT);
    expect_scan(t1, "a", "d", 0, 0, "b=B,");
    txn_put_str(t1, "zz-total", "x");
    put_str(db, "bb", "phantom");
    assert_int_equal(cairn_txn_commit(t1, NULL), 0);
    db_close(db);
    drop_dir(dir);
}

/* ---------- time travel ---------- */

static void test_time_travel(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-tt");
    cairn_db *db = db_open(dir, NULL);
    uint64_t v0 = put_str(db, "other", "o0");
    uint64_t tb[3], ta[3], tmid[3], ver[3];
    const char *vals[3] = {"v1", "v2", "v3"};
    uint64_t between = 0;
    for (int i = 0; i < 3; i++) {
        sleep_ms(2);
        tb[i] = now_us();
        ver[i] = put_str(db, "k", vals[i]);
        ta[i] = now_us();
        sleep_ms(1);
        tmid[i] = now_us();
        sleep_ms(1);
        if (i == 0)
            between = put_str(db, "other", "o1"); /* a version between */
    }
    assert_true(ver[0] > v0 && between > ver[0] && ver[1] > between &&
                ver[2] > ver[1]);
    for (int i = 0; i < 3; i++) {
        check_at_version(db, "k", ver[i], vals[i]);
        check_at_time(db, "k", tmid[i], vals[i]);
        check_at_time(db, "k", ta[i], vals[i]);
    }
    check_at_version(db, "k", v0, NULL);
    check_at_version(db, "k", between, "v1");
    check_at_version(db, "k", ver[1] - 1, "v1");
    check_at_time(db, "k", tb[0] - 1, NULL);
    check_at_version(db, "other", ver[0], "o0");
    check_at_version(db, "other", between, "o1");
    check_at_version(db, "other", ver[2], "o1");

    uint64_t tdb = now_us();
    uint64_t vd = del_str(db, "k");
    uint64_t tda = now_us();
    check_str(db, "k", NULL);
    check_at_version(db, "k", vd, NULL);
    check_at_version(db, "k", vd - 1, "v3");
    check_at_version(db, "k", ver[2], "v3");

    /* key_versions: newest first, deletions flagged, times inside the
     * interval of each commit call and strictly decreasing. */
    cairn_key_version *kv = NULL;
    size_t n = 0;
    assert_int_equal(cairn_key_versions(db, "k", 1, 0, &kv, &n), 0);
    assert_int_equal(n, 4);
    assert_non_null(kv);
    assert_int_equal(kv[0].version, vd);
    assert_true(kv[0].deleted);
    assert_null(kv[0].value);
    assert_true(kv[0].time_us >= tdb && kv[0].time_us <= tda);
    for (int i = 0; i < 3; i++) {
        cairn_key_version *e = &kv[3 - i];
        assert_int_equal(e->version, ver[i]);
        assert_false(e->deleted);
        assert_int_equal(e->vlen, 2);
        assert_memory_equal(e->value, vals[i], 2);
        if (e->time_us < tb[i] || e->time_us > ta[i])
            fprintf(stderr, "commit time %" PRIu64 " outside [%" PRIu64
                            ", %" PRIu64 "]\n", e->time_us, tb[i], ta[i]);
        assert_true(e->time_us >= tb[i] && e->time_us <= ta[i]);
        /* At exactly its commit time a read sees it; just before, not. */
        check_at_time(db, "k", e->time_us, vals[i]);
        check_at_time(db, "k", e->time_us - 1, i ? vals[i - 1] : NULL);
    }
    for (size_t i = 1; i < n; i++) {
        assert_true(kv[i].version < kv[i - 1].version);
        assert_true(kv[i].time_us < kv[i - 1].time_us);
    }
    uint64_t tdel = kv[0].time_us;
    cairn_key_versions_free(kv, n);
    check_at_time(db, "k", tdel, NULL);
    check_at_time(db, "k", tdel - 1, "v3");
    /* At most max entries, the newest. */
    assert_int_equal(cairn_key_versions(db, "k", 1, 2, &kv, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(kv[0].version, vd);
    assert_int_equal(kv[1].version, ver[2]);
    cairn_key_versions_free(kv, n);
    /* A key never written has no versions. */
    kv = NULL;
    n = 99;
    int rc = cairn_key_versions(db, "never", 5, 0, &kv, &n);
    assert_true(rc == 0 || rc == CAIRN_ENOTFOUND);
    if (rc == 0) {
        assert_int_equal(n, 0);
        cairn_key_versions_free(kv, n);
    }

    /* Pinned read-only transactions over several keys. */
    cairn_write w1[3] = {{"pa", 2, "a1", 2}, {"pb", 2, "b1", 2},
                         {"pc", 2, "c1", 2}};
    uint64_t s1 = 0, s2 = 0, s3 = 0;
    sleep_ms(2);
    assert_int_equal(cairn_write_batch(db, w1, 3, &s1), 0);
    sleep_ms(2);
    uint64_t t1 = now_us();
    sleep_ms(2);
    cairn_write w2[3] = {{"pa", 2, "a2", 2}, {"pb", 2, "b2", 2},
                         {"pc", 2, "c2", 2}};
    assert_int_equal(cairn_write_batch(db, w2, 3, &s2), 0);
    sleep_ms(2);
    uint64_t t2 = now_us();
    sleep_ms(2);
    cairn_write w3[2] = {{"pb", 2, NULL, 0}, {"pd", 2, "d3", 2}};
    assert_int_equal(cairn_write_batch(db, w3, 2, &s3), 0);
    sleep_ms(2);
    uint64_t t3 = now_us();
    put_str(db, "pa", "a4"); /* the present moves on */
    const char *want[3] = {"pa=a1,pb=b1,pc=c1,", "pa=a2,pb=b2,pc=c2,",
                           "pa=a2,pc=c2,pd=d3,"};
    uint64_t svs[3] = {s1, s2, s3}, tms[3] = {t1, t2, t3};
    for (int i = 0; i < 3; i++) {
        for (int by_time = 0; by_time < 2; by_time++) {
            cairn_txn_options o = {.read_only = true};
            if (by_time)
                o.at_time_us = tms[i];
            else
                o.at_version = svs[i];
            cairn_txn *t = NULL;
            assert_int_equal(cairn_txn_begin(db, &o, &t), 0);
            assert_int_equal(cairn_txn_snapshot(t), svs[i]);
            expect_scan(t, "p", "q", 0, 0, want[i]);
            check_txn_str(t, "pa", i ? "a2" : "a1");
            check_txn_str(t, "pb", i == 0 ? "b1" : i == 1 ? "b2" : NULL);
            check_txn_str(t, "pd", i == 2 ? "d3" : NULL);
            assert_int_equal(cairn_txn_put(t, "pa", 2, "zz", 2),
                             CAIRN_EREADONLY);
            uint64_t cv = 0;
            assert_int_equal(cairn_txn_commit(t, &cv), 0);
            assert_int_equal(cv, svs[i]);
        }
    }
    check_str(db, "pa", "a4");

    /* Errors: the future, both pins, a pin on a read-write transaction. */
    uint64_t cur = cairn_current_version(db);
    void *val = NULL;
    size_t vlen = 0;
    assert_int_equal(cairn_get_at_version(db, "pa", 2, cur + 1, &val, &vlen),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_get_at_version(db, "pa", 2, cur + 1000, &val, &vlen),
                     CAIRN_EINVAL);
    check_at_version(db, "pa", cur, "a4");
    cairn_txn *t = NULL;
    cairn_txn_options o = {.read_only = true, .at_version = cur + 1};
    assert_int_equal(cairn_txn_begin(db, &o, &t), CAIRN_EINVAL);
    o = (cairn_txn_options){.read_only = true,
                            .at_time_us = now_us() + 3600ull * 1000000u};
    assert_int_equal(cairn_txn_begin(db, &o, &t), CAIRN_EINVAL);
    o = (cairn_txn_options){.read_only = true, .at_version = s1,
                            .at_time_us = t1};
    assert_int_equal(cairn_txn_begin(db, &o, &t), CAIRN_EINVAL);
    o = (cairn_txn_options){.read_only = false, .at_version = s1};
    assert_int_equal(cairn_txn_begin(db, &o, &t), CAIRN_EINVAL);
    db_close(db);

    /* History survives a restart (it is within the window). */
    db = db_open(dir, NULL);
    check_at_version(db, "k", ver[0], "v1");
    check_at_version(db, "k", ver[2], "v3");
    check_at_version(db, "k", vd, NULL);
    check_at_time(db, "k", tmid[1], "v2");
    assert_int_equal(cairn_key_versions(db, "k", 1, 0, &kv, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(kv[0].time_us, tdel);
    cairn_key_versions_free(kv, n);
    o = (cairn_txn_options){.read_only = true, .at_time_us = t2};
    assert_int_equal(cairn_txn_begin(db, &o, &t), 0);
    /* The close wrote everything into sorted files, whose commit times are
     * not indexed after a restart: the snapshot version is then an upper
     * bound and reads filter by time, so they see exactly the state at
     * t2. */
    assert_true(cairn_txn_snapshot(t) >= s2);
    expect_scan(t, "p", "q", 0, 0, want[1]);
    cairn_txn_abort(t);
    db_close(db);
    drop_dir(dir);
}

/* Write about `bytes` of 1 KiB values over 64 keys. */
static void churn(cairn_db *db, size_t bytes, uint64_t seed)
{
    uint8_t buf[1024];
    for (size_t i = 0; i * sizeof buf < bytes; i++) {
        char key[16];
        snprintf(key, sizeof key, "churn-%02zu", i % 64);
        tu_fill(buf, sizeof buf, seed + i);
        assert_int_equal(cairn_put(db, key, strlen(key), buf, sizeof buf, NULL),
                         0);
    }
}

static uint64_t gc_runs(cairn_db *db)
{
    cairn_stats st;
    cairn_get_stats(db, &st);
    return st.gc_runs;
}

/* The collector runs in the background: keep writing a little until it
 * has completed `more` runs beyond `base` (at most ~10 s). */
static void wait_gc(cairn_db *db, uint64_t base, uint64_t more)
{
    for (int i = 0; i < 10000 && gc_runs(db) < base + more; i++) {
        churn(db, 16 * 1024, 777 + (uint64_t)i);
        sleep_ms(1);
    }
    assert_true(gc_runs(db) >= base + more);
}

static void test_history_gc(void **state)
{
    (void)state;
    for (int longh = 0; longh < 2; longh++) {
        char *dir = fresh_dir("db-gc");
        cairn_options o;
        cairn_options_init(&o);
        o.sync_mode = CAIRN_SYNC_NONE;
        o.memtable_size = 64 * 1024;
        o.history_ms = longh ? 3600ull * 1000 : 0;
        cairn_db *db = db_open(dir, &o);
        uint64_t v1 = put_str(db, "k", "old");
        assert_int_equal(v1, 1);
        uint64_t t_old = now_us();
        put_str(db, "k2", "k2-old");
        uint64_t v3 = put_str(db, "k", "new");
        put_str(db, "gone", "soon");
        uint64_t vdel = del_str(db, "gone");
        /* An open transaction and a pinned one keep what they need. */
        cairn_txn *t = txn_begin(db, false, CAIRN_ISOLATION_SNAPSHOT);
        cairn_txn_options po = {.read_only = true, .at_version = vdel - 1};
        cairn_txn *pin = NULL;
        assert_int_equal(cairn_txn_begin(db, &po, &pin), 0);
        uint64_t snap = cairn_txn_snapshot(t);
        put_str(db, "k2", "k2-new");
        uint64_t runs0 = gc_runs(db);
        churn(db, 4u << 20, 1000);
        wait_gc(db, runs0, 1);
        cairn_stats st;
        cairn_get_stats(db, &st);
        fprintf(stderr, "gc (history %s): %" PRIu64 " runs, %" PRIu64
                        " dropped, oldest %" PRIu64 ", memtable %" PRIu64
                        " B\n", longh ? "1 h" : "0", st.gc_runs, st.gc_dropped,
                st.oldest_version, st.memtable_bytes);
        assert_true(st.gc_runs > 0);
        check_txn_str(t, "k", "new");
        check_txn_str(t, "k2", "k2-old");
        check_txn_str(t, "gone", NULL);
        check_txn_str(t, "churn-00", NULL);
        assert_int_equal(cairn_txn_snapshot(t), snap);
        check_txn_str(pin, "k", "new");
        check_txn_str(pin, "k2", "k2-old");
        check_txn_str(pin, "gone", "soon");
        cairn_txn_abort(pin);
        /* A writer whose snapshot is old still detects conflicts. */
        txn_put_str(t, "k2", "from-t");
        assert_int_equal(cairn_txn_commit(t, NULL), CAIRN_ECONFLICT);
        /* GC again, with nothing pinned: two runs, so that one starts
         * after the transactions ended. */
        runs0 = gc_runs(db);
        churn(db, 2u << 20, 5000);
        wait_gc(db, runs0, 2);
        cairn_get_stats(db, &st);
        if (longh) {
            assert_true(st.oldest_version <= 1);
            assert_true(cairn_oldest_version(db) <= 1);
            check_at_version(db, "k", v1, "old");
            check_at_version(db, "k", v3, "new");
            check_at_version(db, "gone", vdel - 1, "soon");
            check_at_time(db, "k", t_old, "old");
            cairn_key_version *kv;
            size_t n;
            assert_int_equal(cairn_key_versions(db, "k", 1, 0, &kv, &n), 0);
            assert_int_equal(n, 2);
            cairn_key_versions_free(kv, n);
        } else {
            assert_true(st.gc_dropped > 0);
            uint64_t oldest = cairn_oldest_version(db);
            assert_true(oldest > v3);
            assert_true(st.oldest_version <= oldest);
            assert_true(oldest <= cairn_current_version(db));
            void *val = NULL;
            size_t vlen = 0;
            assert_int_equal(cairn_get_at_version(db, "k", 1, v1, &val, &vlen),
                             CAIRN_EHISTORY);
            assert_int_equal(
                cairn_get_at_version(db, "gone", 4, vdel - 1, &val, &vlen),
                CAIRN_EHISTORY);
            assert_int_equal(cairn_get_at_time(db, "k", 1, t_old, &val, &vlen),
                             CAIRN_EHISTORY);
            cairn_txn *tt = NULL;
            assert_int_equal(cairn_txn_begin(db, &po, &tt), CAIRN_EHISTORY);
            cairn_txn_options pt = {.read_only = true, .at_time_us = t_old};
            assert_int_equal(cairn_txn_begin(db, &pt, &tt), CAIRN_EHISTORY);
            /* Versions from the window on read fine: the oldest one too.
             * Background flushes and compactions may still raise the
             * horizon (with no history window it follows what the files
             * hold), so a read at an oldest version read earlier may be
             * refused, but only once the horizon has moved past it. */
            for (int tries = 0;; tries++) {
                uint64_t o2 = cairn_oldest_version(db);
                assert_true(o2 >= oldest);
                int grc = cairn_get_at_version(db, "k", 1, o2, &val, &vlen);
                if (grc == CAIRN_EHISTORY && tries < 1000) {
                    assert_true(cairn_oldest_version(db) > o2);
                    continue;
                }
                match_value(grc, val, vlen, "new", 3, "cairn_get_at_version",
                            "k");
                break;
            }
            check_at_version(db, "k2", cairn_current_version(db), "k2-new");
            /* "old" is shadowed below the window: not listed any more;
             * "new", the value as of the window's start, is (with version
             * and time 0 once a bottom-level compaction has forgotten
             * them). */
            cairn_key_version *kv;
            size_t n;
            assert_int_equal(cairn_key_versions(db, "k", 1, 0, &kv, &n), 0);
            assert_int_equal(n, 1);
            assert_true(kv[0].version == v3 || kv[0].version == 0);
            assert_true(kv[0].version != 0 || kv[0].time_us == 0);
            cairn_key_versions_free(kv, n);
        }
        check_str(db, "k", "new");
        check_str(db, "k2", "k2-new");
        check_str(db, "gone", NULL);
        db_close(db);
        drop_dir(dir);
    }
}

static void test_gc_bounds_memory(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-gcmem");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.memtable_size = 256 * 1024;
    o.history_ms = 0;
    cairn_db *db = db_open(dir, &o);
    const int keys = 100;
    const int updates = (int)tu_env_u64("CAIRN_DB_GC_UPDATES", 200000);
    uint8_t buf[100];
    uint64_t peak = 0;
    for (int i = 0; i < updates; i++) {
        char key[16];
        snprintf(key, sizeof key, "gk-%03d", i % keys);
        tu_fill(buf, sizeof buf, (uint64_t)i);
        assert_int_equal(cairn_put(db, key, strlen(key), buf, sizeof buf, NULL),
                         0);
        if (i % 10000 == 0) {
            cairn_stats st;
            cairn_get_stats(db, &st);
            if (st.memtable_bytes > peak)
                peak = st.memtable_bytes;
        }
    }
    /* Let a collection in progress finish (on a slow build, for up to
     * 10 s). */
    cairn_stats st;
    for (int w = 0; w < 100; w++) {
        sleep_ms(100);
        cairn_get_stats(db, &st);
        if (st.memtable_bytes < 4u << 20 && st.gc_dropped > 0)
            break;
    }
    fprintf(stderr, "gc memory: %d updates, memtable %" PRIu64
                    " B (peak sample %" PRIu64 " B), %" PRIu64
                    " entries, %" PRIu64 " runs, %" PRIu64 " dropped\n",
            updates, st.memtable_bytes, peak, st.memtable_entries, st.gc_runs,
            st.gc_dropped);
    assert_true(st.memtable_bytes < 4u << 20);
    assert_true(peak < 8u << 20); /* sampled while writing */
    assert_true(st.gc_runs > 0);
    assert_true(st.gc_dropped > 0);
    assert_int_equal(st.commits, (uint64_t)updates);
    assert_true(st.memtable_entries < (uint64_t)updates / 4);
    for (int pass = 0; pass < 2; pass++) {
        /* Versions were dropped: reading "as of" below the window is
         * refused, and anything at or above it is exact. Update i was
         * version i + 1. */
        uint64_t oldest = cairn_oldest_version(db);
        assert_true(oldest > 1);
        uint64_t rng = 12345 + (uint64_t)pass;
        for (int q = 0; q < 2000; q++) {
            uint64_t V = 1 + tu_rand(&rng, (uint64_t)updates);
            int k = (int)tu_rand(&rng, (uint64_t)keys);
            char key[16];
            snprintf(key, sizeof key, "gk-%03d", k);
            void *val = NULL;
            size_t vlen = 0;
            int rc = cairn_get_at_version(db, key, strlen(key), V, &val, &vlen);
            if (V < oldest) {
                assert_int_equal(rc, CAIRN_EHISTORY);
                continue;
            }
            /* The last update i <= V - 1 with i % keys == k. */
            if ((int)(V - 1) < k) {
                assert_int_equal(rc, CAIRN_ENOTFOUND);
                continue;
            }
            int i = (int)(((V - 1 - (uint64_t)k) / (uint64_t)keys) *
                              (uint64_t)keys) + k;
            if (rc != 0)
                fprintf(stderr, "%s at %" PRIu64 " (oldest %" PRIu64 "): %s\n",
                        key, V, oldest, cairn_strerror(rc));
            assert_int_equal(rc, 0);
            assert_int_equal(vlen, sizeof buf);
            assert_true(tu_check(val, vlen, (uint64_t)i));
            cairn_free(val);
        }
        for (int k = 0; k < keys; k++) {
            char key[16];
            snprintf(key, sizeof key, "gk-%03d", k);
            int last = ((updates - 1 - k) / keys) * keys + k;
            void *val = NULL;
            size_t vlen = 0;
            assert_int_equal(cairn_get(db, key, strlen(key), &val, &vlen), 0);
            assert_int_equal(vlen, sizeof buf);
            assert_true(tu_check(val, vlen, (uint64_t)last));
            cairn_free(val);
        }
        db_close(db);
        if (pass == 0) {
            db = db_open(dir, &o);
            cairn_get_stats(db, &st);
            fprintf(stderr, "gc memory after reopen: memtable %" PRIu64
                            " B, %" PRIu64 " recovered commits\n",
                    st.memtable_bytes, st.recovered_commits);
            assert_int_equal(cairn_current_version(db), (uint64_t)updates);
        }
    }
    drop_dir(dir);
}

/* The scheduling policy of this process's thread named `name`, once it
 * has named itself (threads take their priority first); -1 if none did
 * within 10 s. */
static int thread_policy(const char *name)
{
    for (int tries = 0; tries < 1000; tries++) {
        DIR *d = opendir("/proc/self/task");
        assert_non_null(d);
        struct dirent *de;
        int policy = -1;
        while (policy < 0 && (de = readdir(d)) != NULL) {
            if (de->d_name[0] == '.')
                continue;
            char path[300], comm[32] = "";
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", de->d_name);
            FILE *f = fopen(path, "r");
            if (!f)
                continue; /* a thread that ended meanwhile */
            if (fgets(comm, sizeof comm, f))
                comm[strcspn(comm, "\n")] = 0;
            fclose(f);
            if (strcmp(comm, name) == 0)
                policy = sched_getscheduler((pid_t)atoi(de->d_name));
        }
        closedir(d);
        if (policy >= 0)
            return policy;
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void test_bad_arguments_and_sync_modes(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-args");
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(NULL, NULL, &db), CAIRN_EINVAL);
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = (cairn_sync_mode)7;
    assert_int_equal(cairn_open(dir, &o, &db), CAIRN_EINVAL);
    cairn_options_init(&o);
    o.isolation = (cairn_isolation)9;
    assert_int_equal(cairn_open(dir, &o, &db), CAIRN_EINVAL);
    cairn_options_init(&o);
    o.background_nice = 21; /* 0..19 nice steps, 20 SCHED_IDLE */
    assert_int_equal(cairn_open(dir, &o, &db), CAIRN_EINVAL);
    o.background_nice = -1;
    assert_int_equal(cairn_open(dir, &o, &db), CAIRN_EINVAL);
    o.background_nice = 20; /* background threads under SCHED_IDLE */
    char *idle_dir = fresh_dir("db-idle");
    assert_int_equal(cairn_open(idle_dir, &o, &db), 0);
    assert_int_equal(thread_policy("cairn-collect"), SCHED_IDLE);
    assert_int_equal(thread_policy("cairn-compact"), SCHED_IDLE);
    assert_int_equal(cairn_put(db, "idle", 4, "v", 1, NULL), 0);
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(cairn_close(db), 0);
    drop_dir(idle_dir);
    db = db_open(dir, NULL);
    void *val = NULL;
    size_t vlen = 0;
    assert_int_equal(cairn_put(db, NULL, 5, "v", 1, NULL), CAIRN_EINVAL);
    assert_int_equal(cairn_put(db, "k", 1, NULL, 5, NULL), CAIRN_EINVAL);
    assert_int_equal(cairn_get(db, "k", 1, NULL, NULL), CAIRN_EINVAL);
    assert_int_equal(cairn_get(db, NULL, 3, &val, &vlen), CAIRN_EINVAL);
    cairn_write w = {NULL, 4, "v", 1};
    assert_int_equal(cairn_write_batch(db, &w, 1, NULL), CAIRN_EINVAL);
    cairn_txn_options to = {.isolation = (cairn_isolation)9};
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, &to, &t), CAIRN_EINVAL);
    assert_int_equal(cairn_get_at_time(db, "k", 1,
                                       now_us() + 3600ull * 1000000u, &val,
                                       &vlen),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_current_version(db), 0); /* nothing committed */
    db_close(db);
    drop_dir(dir);

    /* Every sync mode keeps what was committed across a clean close. */
    for (int m = CAIRN_SYNC_ALWAYS; m <= CAIRN_SYNC_NONE; m++) {
        dir = fresh_dir("db-sync");
        cairn_options_init(&o);
        o.sync_mode = (cairn_sync_mode)m;
        o.sync_interval_ms = 5;
        db = db_open(dir, &o);
        for (int i = 0; i < 50; i++) {
            char k[16], v[32];
            snprintf(k, sizeof k, "s%02d", i);
            snprintf(v, sizeof v, "m%d-%d", m, i);
            put_str(db, k, v);
        }
        cairn_stats st;
        cairn_get_stats(db, &st);
        if (m == CAIRN_SYNC_ALWAYS) {
            assert_true(st.wal_syncs >= 1);
            assert_true(st.wal_sync_p50_ns > 0);
            assert_true(st.wal_sync_p99_ns >= st.wal_sync_p50_ns);
        } else if (m == CAIRN_SYNC_NONE) {
            assert_int_equal(st.wal_sync_p50_ns, 0); /* no round synced */
        }
        db_close(db);
        db = db_open(dir, &o);
        for (int i = 0; i < 50; i++) {
            char k[16], v[32];
            snprintf(k, sizeof k, "s%02d", i);
            snprintf(v, sizeof v, "m%d-%d", m, i);
            check_str(db, k, v);
        }
        assert_int_equal(cairn_current_version(db), 50);
        db_close(db);
        drop_dir(dir);
    }
}

/* A long-lived snapshot scanned again and again while writers rewrite
 * every key and the GC (history_ms = 0, 64 KiB memtables) swaps tables
 * under it: each scan returns exactly the snapshot. */
typedef struct gcscan_arg {
    cairn_db *db;
    atomic_bool stop;
    uint64_t rounds;
} gcscan_arg;

#define GCS_KEYS 2000

static void *gcscan_writer(void *p)
{
    gcscan_arg *a = p;
    uint64_t rng = 99;
    while (!atomic_load(&a->stop)) {
        int k = (int)tu_rand(&rng, GCS_KEYS);
        char key[16], val[32];
        snprintf(key, sizeof key, "g%05d", k);
        int rc;
        if (tu_rand(&rng, 8) == 0) {
            rc = cairn_delete(a->db, key, strlen(key), NULL);
        } else {
            snprintf(val, sizeof val, "r%" PRIu64 "-%d", a->rounds, k);
            rc = cairn_put(a->db, key, strlen(key), val, strlen(val), NULL);
        }
        if (rc != 0) {
            T_FAIL("writer: %s", cairn_strerror(rc));
            return NULL;
        }
        a->rounds++;
    }
    return NULL;
}

typedef struct gcscan_check {
    int next;
    bool bad;
    char why[128];
} gcscan_check;

static int gcscan_cb(void *arg, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    gcscan_check *c = arg;
    char want_k[16], want_v[32];
    snprintf(want_k, sizeof want_k, "g%05d", c->next);
    snprintf(want_v, sizeof want_v, "orig-%d", c->next);
    if (klen != strlen(want_k) || memcmp(key, want_k, klen) != 0 ||
        vlen != strlen(want_v) || memcmp(val, want_v, vlen) != 0) {
        snprintf(c->why, sizeof c->why, "expected %s=%s, got %.*s=%.*s",
                 want_k, want_v, (int)klen, (const char *)key, (int)vlen,
                 (const char *)val);
        c->bad = true;
        return 1;
    }
    c->next++;
    return 0;
}

static void test_snapshot_scan_during_gc(void **state)
{
    (void)state;
    reset_thread_failure();
    char *dir = fresh_dir("db-gcscan");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.memtable_size = 64 * 1024;
    o.history_ms = 0;
    cairn_db *db = db_open(dir, &o);
    for (int ro = 0; ro < 2; ro++) {
        /* (Re)write the state the snapshot will hold. */
        for (int base = 0; base < GCS_KEYS; base += 100) {
            cairn_write w[100];
            char keys[100][16], vals[100][32];
            for (int i = 0; i < 100; i++) {
                snprintf(keys[i], sizeof keys[i], "g%05d", base + i);
                snprintf(vals[i], sizeof vals[i], "orig-%d", base + i);
                w[i] = (cairn_write){keys[i], strlen(keys[i]), vals[i],
                                     strlen(vals[i])};
            }
            assert_int_equal(cairn_write_batch(db, w, 100, NULL), 0);
        }
        cairn_txn *t = txn_begin(db, ro, CAIRN_ISOLATION_SNAPSHOT);
        cairn_stats st0;
        cairn_get_stats(db, &st0);
        gcscan_arg a = {.db = db};
        atomic_init(&a.stop, false);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, gcscan_writer, &a), 0);
        int scans = 0;
        cairn_stats st;
        do {
            gcscan_check c = {0};
            assert_int_equal(cairn_txn_scan(t, "g", 1, "h", 1, 0, gcscan_cb,
                                            &c),
                             0);
            if (c.bad)
                fprintf(stderr, "scan %d (%s txn): %s\n", scans,
                        ro ? "read-only" : "read-write", c.why);
            assert_false(c.bad);
            assert_int_equal(c.next, GCS_KEYS);
            check_txn_str(t, "g00007", "orig-7");
            scans++;
            cairn_get_stats(db, &st);
        } while ((st.gc_runs < st0.gc_runs + 5 || scans < 5) && scans < 100000 &&
                 !atomic_load(&g_fail));
        atomic_store(&a.stop, true);
        pthread_join(th, NULL);
        assert_no_thread_failure();
        fprintf(stderr, "snapshot scans during gc (%s): %d scans, %" PRIu64
                        " writes, %" PRIu64 " gc runs\n",
                ro ? "read-only" : "read-write", scans, a.rounds,
                st.gc_runs - st0.gc_runs);
        assert_true(st.gc_runs >= st0.gc_runs + 5);
        cairn_txn_abort(t);
    }
    db_close(db);
    drop_dir(dir);
}

/* Scans against a model: random committed state, random transaction
 * writes on top, random ranges and limits (the empty key included). */
#define SR_KEYS 48

static void sr_key(int i, char *out, size_t *len)
{
    /* Index 0 is the empty key; the others sort by index. */
    if (i == 0) {
        *len = 0;
        out[0] = 0;
        return;
    }
    *len = (size_t)snprintf(out, 16, "s%02d", i);
}

typedef struct sr_out {
    int n;
    int keys[SR_KEYS];
    char vals[SR_KEYS][24];
    bool bad;
} sr_out;

static int sr_cb(void *arg, const void *key, size_t klen, const void *val,
                 size_t vlen)
{
    sr_out *o = arg;
    const char *ks = key;
    int idx = -1;
    if (klen == 0)
        idx = 0;
    else if (klen == 3 && ks[0] == 's' && ks[1] >= '0' && ks[1] <= '9' &&
             ks[2] >= '0' && ks[2] <= '9')
        idx = (ks[1] - '0') * 10 + (ks[2] - '0');
    if (idx < 0 || idx >= SR_KEYS || o->n >= SR_KEYS || vlen >= 24) {
        o->bad = true;
        return 1;
    }
    o->keys[o->n] = idx;
    memcpy(o->vals[o->n], val, vlen);
    o->vals[o->n][vlen] = 0;
    o->n++;
    return 0;
}

static void test_scan_random(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-scanr");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    cairn_db *db = db_open(dir, &o);
    char committed[SR_KEYS][24]; /* "" absent */
    memset(committed, 0, sizeof committed);
    uint64_t rng = 31337;
    for (int round = 0; round < 150; round++) {
        /* Change the committed state a little. */
        for (int i = 0; i < 10; i++) {
            int k = (int)tu_rand(&rng, SR_KEYS);
            char key[16];
            size_t klen;
            sr_key(k, key, &klen);
            if (tu_rand(&rng, 3) == 0) {
                assert_int_equal(cairn_delete(db, key, klen, NULL), 0);
                committed[k][0] = 0;
            } else {
                snprintf(committed[k], 24, "c%d.%d", round % 10000, i % 1000);
                assert_int_equal(cairn_put(db, key, klen, committed[k],
                                           strlen(committed[k]), NULL),
                                 0);
            }
        }
        cairn_txn *t = txn_begin(db, false, CAIRN_ISOLATION_DEFAULT);
        char view[SR_KEYS][24];
        memcpy(view, committed, sizeof view);
        int nw = (int)tu_rand(&rng, 20);
        bool wrote5 = false;
        for (int i = 0; i < nw; i++) {
            int k = (int)tu_rand(&rng, SR_KEYS);
            wrote5 |= k == 5;
            char key[16];
            size_t klen;
            sr_key(k, key, &klen);
            if (tu_rand(&rng, 3) == 0) {
                assert_int_equal(cairn_txn_delete(t, key, klen), 0);
                view[k][0] = 0;
            } else {
                snprintf(view[k], 24, "t%d.%d", round % 10000, i % 1000);
                assert_int_equal(
                    cairn_txn_put(t, key, klen, view[k], strlen(view[k])), 0);
            }
        }
        /* Someone else commits meanwhile: invisible to t. */
        put_str(db, "s05", "outsider");
        for (int q = 0; q < 8; q++) {
            int lo = (int)tu_rand(&rng, SR_KEYS);
            int hi = lo + (int)tu_rand(&rng, (uint64_t)(SR_KEYS - lo + 1));
            bool to_end = tu_rand(&rng, 4) == 0;
            size_t limit = tu_rand(&rng, 3) == 0 ? 1 + tu_rand(&rng, 6) : 0;
            char lk[16], hk[16];
            size_t ll, hl;
            sr_key(lo, lk, &ll);
            sr_key(hi < SR_KEYS ? hi : 0, hk, &hl);
            if (hi >= SR_KEYS)
                to_end = true;
            sr_out out = {0};
            assert_int_equal(cairn_txn_scan(t, lk, ll, to_end ? NULL : hk,
                                            to_end ? 0 : hl, limit, sr_cb,
                                            &out),
                             0);
            assert_false(out.bad);
            int n = 0;
            int end = to_end ? SR_KEYS : hi;
            for (int k = lo; k < end && (!limit || (size_t)n < limit); k++) {
                if (!view[k][0])
                    continue;
                if (n >= out.n || out.keys[n] != k ||
                    strcmp(out.vals[n], view[k]) != 0)
                    fprintf(stderr, "round %d scan [%d, %d%s) limit %zu: "
                                    "entry %d: want key %d=%s, got %d=%s\n",
                            round, lo, end, to_end ? " (end)" : "", limit, n,
                            k, view[k], n < out.n ? out.keys[n] : -1,
                            n < out.n ? out.vals[n] : "(none)");
                assert_true(n < out.n);
                assert_int_equal(out.keys[n], k);
                assert_string_equal(out.vals[n], view[k]);
                n++;
            }
            assert_int_equal(out.n, n);
        }
        if (tu_rand(&rng, 2)) {
            /* It conflicts exactly when it wrote s05, which the outsider
             * committed after its snapshot. */
            int rc = cairn_txn_commit(t, NULL);
            if (wrote5) {
                assert_int_equal(rc, CAIRN_ECONFLICT);
            } else {
                assert_int_equal(rc, 0);
                memcpy(committed, view, sizeof committed);
            }
        } else {
            cairn_txn_abort(t);
        }
        snprintf(committed[5], 24, "outsider");
        void *val = NULL;
        size_t vlen = 0;
        int rc = cairn_get(db, "s05", 3, &val, &vlen);
        assert_int_equal(rc, 0);
        assert_int_equal(vlen, 8);
        assert_memory_equal(val, "outsider", 8);
        cairn_free(val);
    }
    db_close(db);
    drop_dir(dir);
}

/* Big write sets: a transaction of 5,000 puts (read back, scanned,
 * committed as one version) and a batch of 5,000 writes. */
static void test_big_write_sets(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-big");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    cairn_db *db = db_open(dir, &o);
    enum { N = 5000 };
    cairn_txn *t = txn_begin(db, false, CAIRN_ISOLATION_SERIALIZABLE);
    for (int i = N - 1; i >= 0; i--) {
        char k[16], v[16];
        snprintf(k, sizeof k, "big%05d", i);
        snprintf(v, sizeof v, "v%d", i);
        txn_put_str(t, k, v);
        if (i % 7 == 0)
            txn_del_str(t, k);
    }
    for (int i = 0; i < N; i++) {
        char k[16], v[16];
        snprintf(k, sizeof k, "big%05d", i);
        snprintf(v, sizeof v, "v%d", i);
        check_txn_str(t, k, i % 7 == 0 ? NULL : v);
    }
    scan_list l = {0};
    assert_int_equal(cairn_txn_scan(t, "big", 3, NULL, 0, 3, list_cb, &l), 0);
    assert_string_equal(l.out, "big00001=v1,big00002=v2,big00003=v3,");
    uint64_t v1 = 0;
    assert_int_equal(cairn_txn_commit(t, &v1), 0);
    assert_int_equal(v1, 1);
    check_str(db, "big04999", "v4999");
    check_str(db, "big04996", "v4996");
    check_str(db, "big04998", NULL); /* 4998 = 7 * 714: deleted */
    check_str(db, "big00007", NULL);

    cairn_write *w = calloc(N + 1, sizeof *w);
    char (*keys)[16] = calloc(N, sizeof *keys);
    assert_true(w && keys);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], 16, "big%05d", i);
        w[i] = (cairn_write){keys[i], strlen(keys[i]), i % 2 ? "odd" : NULL,
                             i % 2 ? 3 : 0};
    }
    w[N] = (cairn_write){keys[1], strlen(keys[1]), "last", 4}; /* wins */
    uint64_t v2 = 0;
    assert_int_equal(cairn_write_batch(db, w, N + 1, &v2), 0);
    assert_int_equal(v2, 2);
    check_str(db, "big00000", NULL);
    check_str(db, "big00001", "last");
    check_str(db, "big00003", "odd");
    check_at_version(db, "big00003", 1, "v3");
    db_close(db);
    db = db_open(dir, &o);
    check_str(db, "big00001", "last");
    check_str(db, "big04999", "odd");
    check_str(db, "big04998", NULL);
    check_str(db, "big04996", NULL);
    check_at_version(db, "big04996", 1, "v4996");
    check_at_version(db, "big04997", 1, "v4997");
    check_str(db, "big04997", "odd");
    assert_int_equal(cairn_current_version(db), 2);
    db_close(db);
    free(w);
    free(keys);
    drop_dir(dir);
}

/* Reads "as of" a version while a writer commits and the GC (history of
 * 50 ms, 16 KiB memtables) moves the window: a read at a version the
 * window still holds (>= oldest) returns exactly the state at that
 * version; CAIRN_EHISTORY only once oldest has passed it. */
#define TW_KEYS 16
#define TW_MAX 400000

typedef struct tw_log {
    uint64_t *ver[TW_KEYS];
    uint32_t *val[TW_KEYS];
    atomic_size_t n[TW_KEYS];
    atomic_uint_fast64_t last; /* every write up to this version is logged */
    uint64_t *gver, *gts;      /* every commit: version, commit time */
    atomic_size_t gn;
    atomic_bool stop;
    cairn_db *db;
    uint64_t writes;
} tw_log;

static void *tw_writer(void *p)
{
    tw_log *lg = p;
    uint64_t rng = 5;
    for (uint32_t i = 1; !atomic_load(&lg->stop) && i < TW_MAX; i++) {
        int k = (int)tu_rand(&rng, TW_KEYS);
        char key[16], val[64];
        snprintf(key, sizeof key, "tw%02d", k);
        memset(val, 'x', sizeof val);
        snprintf(val, sizeof val, "%u", i);
        val[strlen(val)] = '.';
        uint64_t v = 0;
        int rc = cairn_put(lg->db, key, strlen(key), val, sizeof val, &v);
        if (rc != 0) {
            T_FAIL("put: %s", cairn_strerror(rc));
            return NULL;
        }
        /* Its commit time: the newest version of the key is ours. */
        cairn_key_version *kv = NULL;
        size_t nkv = 0;
        rc = cairn_key_versions(lg->db, key, strlen(key), 1, &kv, &nkv);
        if (rc != 0 || nkv != 1 || kv[0].version != v) {
            T_FAIL("key_versions(%s, 1): %s, %zu entries, version %" PRIu64
                   " (put got %" PRIu64 ")", key, cairn_strerror(rc), nkv,
                   nkv ? kv[0].version : 0, v);
            if (rc == 0)
                cairn_key_versions_free(kv, nkv);
            return NULL;
        }
        size_t g = atomic_load(&lg->gn);
        lg->gver[g] = v;
        lg->gts[g] = kv[0].time_us;
        cairn_key_versions_free(kv, nkv);
        size_t n = atomic_load(&lg->n[k]);
        lg->ver[k][n] = v;
        lg->val[k][n] = i;
        atomic_store(&lg->n[k], n + 1);
        atomic_store(&lg->gn, g + 1);
        atomic_store(&lg->last, v);
        lg->writes++;
    }
    return NULL;
}

/* The value id of key k at version V from the log; 0 if none. */
static uint32_t tw_expect(tw_log *lg, int k, uint64_t V)
{
    size_t n = atomic_load(&lg->n[k]);
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (lg->ver[k][mid] <= V)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? lg->val[k][lo - 1] : 0;
}

static void test_time_travel_under_gc(void **state)
{
    (void)state;
    reset_thread_failure();
    char *dir = fresh_dir("db-twgc");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.memtable_size = 16 * 1024;
    o.history_ms = 50;
    cairn_db *db = db_open(dir, &o);
    tw_log *lg = calloc(1, sizeof *lg);
    assert_non_null(lg);
    for (int k = 0; k < TW_KEYS; k++) {
        lg->ver[k] = malloc(TW_MAX * sizeof(uint64_t));
        lg->val[k] = malloc(TW_MAX * sizeof(uint32_t));
        assert_true(lg->ver[k] && lg->val[k]);
        atomic_init(&lg->n[k], 0);
    }
    atomic_init(&lg->last, 0);
    atomic_init(&lg->stop, false);
    atomic_init(&lg->gn, 0);
    lg->gver = malloc(TW_MAX * sizeof(uint64_t));
    lg->gts = malloc(TW_MAX * sizeof(uint64_t));
    assert_true(lg->gver && lg->gts);
    lg->db = db;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, tw_writer, lg), 0);
    uint64_t rng = 77, reads = 0, ehist = 0, notfound = 0, treads = 0;
    /* 1.5 s, and on a slow build (TSan) until a collection has run and
     * both kinds of read passed 1000 (for at most a minute). */
    uint64_t t_end = now_us() + 1500 * 1000, t_cap = t_end + 60000000u;
    while (!atomic_load(&g_fail) && now_us() < t_cap &&
           (now_us() < t_end || reads <= 1000 || treads <= 1000 ||
            gc_runs(db) == 0)) {
        if (tu_rand(&rng, 2) == 0) {
            /* By time: a time T between commits j and j + 1 reads the
             * state at commit j's version. */
            size_t gn = atomic_load(&lg->gn);
            if (gn < 2)
                continue;
            size_t back = (size_t)tu_rand(&rng, gn - 1 < 3000 ? gn - 1 : 3000);
            size_t j = gn - 2 - back;
            uint64_t T = lg->gts[j] + tu_rand(&rng, lg->gts[j + 1] - lg->gts[j]);
            if (lg->gts[j + 1] <= lg->gts[j]) {
                fprintf(stderr, "commit times not increasing: %" PRIu64
                                " then %" PRIu64 "\n",
                        lg->gts[j], lg->gts[j + 1]);
                fail();
            }
            uint64_t V = lg->gver[j];
            int k = (int)tu_rand(&rng, TW_KEYS);
            char key[16];
            snprintf(key, sizeof key, "tw%02d", k);
            void *val = NULL;
            size_t vlen = 0;
            int rc = cairn_get_at_time(db, key, strlen(key), T, &val, &vlen);
            uint32_t want = tw_expect(lg, k, V);
            treads++;
            if (rc == CAIRN_EHISTORY) {
                uint64_t now_oldest = cairn_oldest_version(db);
                if (now_oldest <= V)
                    fprintf(stderr, "EHISTORY at time %" PRIu64 " (version %"
                                    PRIu64 ") but oldest is %" PRIu64 "\n",
                            T, V, now_oldest);
                assert_true(now_oldest > V);
                ehist++;
                continue;
            }
            if (want == 0) {
                assert_int_equal(rc, CAIRN_ENOTFOUND);
                continue;
            }
            if (rc != 0)
                fprintf(stderr, "%s at time %" PRIu64 " (version %" PRIu64
                                "): %s\n", key, T, V, cairn_strerror(rc));
            assert_int_equal(rc, 0);
            uint32_t got = (uint32_t)strtoul(val, NULL, 10);
            if (got != want)
                fprintf(stderr, "%s at time %" PRIu64 " (version %" PRIu64
                                "): want write #%u, got #%u\n",
                        key, T, V, want, got);
            assert_int_equal(got, want);
            cairn_free(val);
            continue;
        }
        uint64_t last = atomic_load(&lg->last);
        uint64_t oldest = cairn_oldest_version(db);
        if (last == 0 || oldest > last)
            continue;
        uint64_t lo = oldest ? oldest : 1;
        if (lo > last)
            continue;
        uint64_t V = lo + tu_rand(&rng, last - lo + 1);
        int k = (int)tu_rand(&rng, TW_KEYS);
        char key[16];
        snprintf(key, sizeof key, "tw%02d", k);
        void *val = NULL;
        size_t vlen = 0;
        int rc = cairn_get_at_version(db, key, strlen(key), V, &val, &vlen);
        uint32_t want = tw_expect(lg, k, V);
        reads++;
        if (rc == CAIRN_EHISTORY) {
            uint64_t now_oldest = cairn_oldest_version(db);
            if (now_oldest <= V)
                fprintf(stderr, "EHISTORY at version %" PRIu64
                                " but oldest is %" PRIu64 "\n", V, now_oldest);
            assert_true(now_oldest > V);
            ehist++;
            continue;
        }
        if (want == 0) {
            if (rc != CAIRN_ENOTFOUND)
                fprintf(stderr, "%s at %" PRIu64 ": want absent, got %s\n",
                        key, V, cairn_strerror(rc));
            assert_int_equal(rc, CAIRN_ENOTFOUND);
            notfound++;
            continue;
        }
        if (rc != 0)
            fprintf(stderr, "%s at %" PRIu64 " (oldest %" PRIu64 "): %s\n",
                    key, V, oldest, cairn_strerror(rc));
        assert_int_equal(rc, 0);
        assert_int_equal(vlen, 64);
        uint32_t got = (uint32_t)strtoul(val, NULL, 10);
        if (got != want)
            fprintf(stderr, "%s at version %" PRIu64 " (oldest %" PRIu64
                            "): want write #%u, got #%u\n",
                    key, V, oldest, want, got);
        assert_int_equal(got, want);
        cairn_free(val);
    }
    atomic_store(&lg->stop, true);
    pthread_join(th, NULL);
    assert_no_thread_failure();
    cairn_stats st;
    cairn_get_stats(db, &st);
    fprintf(stderr, "time travel under gc: %" PRIu64 " writes, %" PRIu64
                    " reads by version and %" PRIu64 " by time (%" PRIu64
                    " out of history, %" PRIu64 " absent), %" PRIu64
                    " gc runs, oldest %" PRIu64 "\n",
            lg->writes, reads, treads, ehist, notfound, st.gc_runs,
            st.oldest_version);
    assert_true(st.gc_runs > 0);
    assert_true(reads > 1000);
    assert_true(treads > 1000);
    /* The window moved: versions older than 50 ms are gone. */
    sleep_ms(60);
    uint64_t runs0 = gc_runs(db);
    churn(db, 64 * 1024, 9);
    wait_gc(db, runs0, 2);
    uint64_t oldest = cairn_oldest_version(db);
    assert_true(oldest > 1);
    void *val = NULL;
    size_t vlen = 0;
    assert_int_equal(cairn_get_at_version(db, "tw00", 4, oldest - 1, &val,
                                          &vlen),
                     CAIRN_EHISTORY);
    for (int k = 0; k < TW_KEYS; k++) {
        free(lg->ver[k]);
        free(lg->val[k]);
    }
    free(lg->gver);
    free(lg->gts);
    free(lg);
    db_close(db);
    drop_dir(dir);
}

/* ---------- timestamps ---------- */

typedef struct ts_arg {
    cairn_db *db;
    int id;
    int n;
} ts_arg;

static void *ts_main(void *p)
{
    ts_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        char key[16];
        /* Own key and a shared one. */
        if (i % 2)
            snprintf(key, sizeof key, "ts-%d", a->id);
        else
            snprintf(key, sizeof key, "ts-shared");
        int rc = cairn_put(a->db, key, strlen(key), "v", 1, NULL);
        if (rc != 0) {
            T_FAIL("put: %s", cairn_strerror(rc));
            return NULL;
        }
    }
    return NULL;
}

static int cmp_kv_version(const void *x, const void *y)
{
    const cairn_key_version *a = x, *b = y;
    return a->version < b->version ? -1 : a->version > b->version;
}

static void test_timestamps_monotonic(void **state)
{
    (void)state;
    reset_thread_failure();
    char *dir = fresh_dir("db-ts");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    cairn_db *db = db_open(dir, &o);
    enum { T = 4, N = 2000 };
    pthread_t th[T];
    ts_arg args[T];
    for (int i = 0; i < T; i++) {
        args[i] = (ts_arg){db, i, N};
        assert_int_equal(pthread_create(&th[i], NULL, ts_main, &args[i]), 0);
    }
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    assert_no_thread_failure();
    /* Gather every version of every key; sorted by version, the commit
     * times must strictly increase, and the versions be 1..T*N. */
    cairn_key_version *all = calloc(T * N, sizeof *all);
    assert_non_null(all);
    size_t total = 0;
    for (int i = -1; i < T; i++) {
        char key[16];
        if (i < 0)
            snprintf(key, sizeof key, "ts-shared");
        else
            snprintf(key, sizeof key, "ts-%d", i);
        cairn_key_version *kv;
        size_t n;
        assert_int_equal(cairn_key_versions(db, key, strlen(key), 0, &kv, &n),
                         0);
        assert_int_equal(n, (size_t)(i < 0 ? T * N / 2 : N / 2));
        for (size_t j = 0; j < n; j++) {
            all[total] = kv[j];
            all[total].value = NULL;
            total++;
        }
        cairn_key_versions_free(kv, n);
    }
    assert_int_equal(total, (size_t)T * N);
    qsort(all, total, sizeof *all, cmp_kv_version);
    for (size_t j = 0; j < total; j++) {
        assert_int_equal(all[j].version, j + 1);
        if (j > 0 && all[j].time_us <= all[j - 1].time_us)
            fprintf(stderr, "version %" PRIu64 " time %" PRIu64
                            " not after version %" PRIu64 " time %" PRIu64 "\n",
                    all[j].version, all[j].time_us, all[j - 1].version,
                    all[j - 1].time_us);
        assert_true(j == 0 || all[j].time_us > all[j - 1].time_us);
    }
    /* Reads at each commit time see exactly that version's state. */
    for (size_t j = 0; j < total; j += 97) {
        uint64_t tt = all[j].time_us;
        cairn_txn_options to = {.read_only = true, .at_time_us = tt};
        cairn_txn *t = NULL;
        assert_int_equal(cairn_txn_begin(db, &to, &t), 0);
        assert_int_equal(cairn_txn_snapshot(t), all[j].version);
        cairn_txn_abort(t);
    }
    free(all);
    db_close(db);
    drop_dir(dir);
}

/* ---------- recovery cycles ---------- */

#define RC_KEYS 600

static void model_check(cairn_db *db, char model[RC_KEYS][40])
{
    for (int i = 0; i < RC_KEYS; i++) {
        char key[16];
        snprintf(key, sizeof key, "rk-%04d", i);
        check_str(db, key, model[i][0] ? model[i] : NULL);
    }
}

static void test_recovery_cycles(void **state)
{
    (void)state;
    char *dir = fresh_dir("db-recov");
    static char model[RC_KEYS][40]; /* "" = absent */
    memset(model, 0, sizeof model);
    uint64_t rng = 4242;
    uint64_t last_version = 0, commits = 0;
    uint64_t cycle_ver[5];
    char cycle_val0[5][40];
    for (int c = 0; c < 5; c++) {
        cairn_db *db = db_open(dir, NULL);
        assert_int_equal(cairn_current_version(db), last_version);
        cairn_stats st;
        cairn_get_stats(db, &st);
        /* A clean close flushed everything: nothing left to replay. */
        assert_int_equal(st.recovered_commits, 0);
        (void)commits;
        model_check(db, model);
        /* History of earlier cycles, across restarts. */
        for (int p = 0; p < c; p++)
            check_at_version(db, "rk-0000", cycle_ver[p],
                             cycle_val0[p][0] ? cycle_val0[p] : NULL);
        for (int i = 0; i < 150; i++) {
            int k = (int)tu_rand(&rng, RC_KEYS);
            char key[16];
            snprintf(key, sizeof key, "rk-%04d", k);
            uint64_t op = tu_rand(&rng, 10);
            if (op < 6) {
                snprintf(model[k], 40, "c%d-i%d", c, i);
                last_version = put_str(db, key, model[k]);
            } else if (op < 8) {
                model[k][0] = 0;
                last_version = del_str(db, key);
            } else {
                /* A transaction over 3 keys, or a batch. */
                cairn_txn *t = txn_begin(db, false, CAIRN_ISOLATION_DEFAULT);
                for (int j = 0; j < 3; j++) {
                    int kk = (k + j * 7) % RC_KEYS;
                    char kkey[16];
                    snprintf(kkey, sizeof kkey, "rk-%04d", kk);
                    snprintf(model[kk], 40, "t%d-%d-%d", c, i, j);
                    txn_put_str(t, kkey, model[kk]);
                }
                assert_int_equal(cairn_txn_commit(t, &last_version), 0);
            }
            commits++;
            /* Keep rk-0000 moving, for the time-travel checks. */
            if (i == 75) {
                snprintf(model[0], 40, "zero-%d", c);
                last_version = put_str(db, "rk-0000", model[0]);
                commits++;
            }
        }
        cycle_ver[c] = last_version;
        memcpy(cycle_val0[c], model[0], 40);
        assert_int_equal(cairn_current_version(db), last_version);
        model_check(db, model);
        db_close(db);
    }
    cairn_db *db = db_open(dir, NULL);
    model_check(db, model);
    assert_int_equal(cairn_current_version(db), last_version);
    assert_int_equal(last_version, commits);
    db_close(db);
    drop_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_exit_without_close),
        cmocka_unit_test(test_canonical_sigkill),
        cmocka_unit_test(test_counters_snapshot),
        cmocka_unit_test(test_counters_serializable),
        cmocka_unit_test(test_basic_round_trips),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_txn_own_writes_and_abort),
        cmocka_unit_test(test_commit_versions),
        cmocka_unit_test(test_write_batch),
        cmocka_unit_test(test_scan),
        cmocka_unit_test(test_scan_random),
        cmocka_unit_test(test_big_write_sets),
        cmocka_unit_test(test_bad_arguments_and_sync_modes),
        cmocka_unit_test(test_open_read_only),
        cmocka_unit_test(test_open_busy),
        cmocka_unit_test(test_open_missing_and_format),
        cmocka_unit_test(test_first_committer_wins),
        cmocka_unit_test(test_snapshot_stability),
        cmocka_unit_test(test_write_skew),
        cmocka_unit_test(test_serializable_precision),
        cmocka_unit_test(test_time_travel),
        cmocka_unit_test(test_history_gc),
        cmocka_unit_test(test_gc_bounds_memory),
        cmocka_unit_test(test_snapshot_scan_during_gc),
        cmocka_unit_test(test_time_travel_under_gc),
        cmocka_unit_test(test_timestamps_monotonic),
        cmocka_unit_test(test_recovery_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
