/*
 * test_db_crash.c — crashes under concurrent committers: every acknowledged
 * transaction survives, and no transaction is ever half there.
 *
 * Workload (both tests): 4 threads commit transactions that each write 3
 * distinct keys out of 30 with the same 24-byte value, which names the
 * transaction (a unique id) and its 3 keys and carries a check word. Some
 * are write batches, some snapshot transactions that first read their keys,
 * some serializable ones that also read a fourth key (so some conflict and
 * die). Before each commit the attempt (id, keys) is reported; after a
 * commit returns OK the acknowledgement (id, commit version).
 *
 * Check after each recovery (history_ms and memtable_size large, so no
 * version is dropped; every version of every key is listed with
 * cairn_key_versions):
 *   - every value is intact, names its own key, and comes from a reported
 *     attempt with the same keys;
 *   - atomicity: each version appears on exactly the 3 keys its value names
 *     (never 1 or 2), and one attempt has at most one version;
 *   - durability: every acknowledged transaction is there at its
 *     acknowledged version; everything seen after an earlier recovery is
 *     still there; an attempt that did not come back after the recovery
 *     that followed it never comes back later;
 *   - versions are <= cairn_current_version and commit timestamps strictly
 *     increase with the version.
 * The database carries over from cycle to cycle, so recovery of recovered
 * logs is tested too.
 *
 * 1. test_crash_sigkill: a forked child opens the database (sync=always;
 *    half as many cycles again with sync=none and with sync=interval, whose
 *    log is written through a mapping: a kill loses no acknowledged commit
 *    in any mode) and runs the writers, reporting through a pipe
 *    (fixed-size records, atomic below PIPE_BUF); the parent SIGKILLs it
 *    after a random 5-100 ms counted from the child's first acknowledged
 *    commit (after its open), or in one cycle of 5 after 0-3 ms counted
 *    from the fork, so that some kills land during recovery; it drains the
 *    pipe, reopens and checks.
 * 2. test_crash_power_loss: in one process, on the memory env through the
 *    fault env: power is cut at a random I/O call of the workload (half the
 *    cycles tearing the last unsynced block); writers stop at their first
 *    error; the database is closed (errors ignored), reopened on the same
 *    memory env and checked.
 * 3. The same with sync=none and sync=interval (1 ms): acknowledged commits
 *    may be lost in a power cut, but only a suffix of them (nothing lost
 *    below the newest version that came back), never half a transaction,
 *    and a lost commit never comes back later.
 * 4. test_io_failures: a failed log write (no space) fails only its commit
 *    (invisible, never recovered; the next commits work); a failed fsync
 *    turns the database read-only (CAIRN_EREADONLY for every write path,
 *    reads still work); after a restart everything acknowledged is there.
 *
 * Cycles: CAIRN_CRASH_CYCLES (default 20 for each test; the long run 500).
 * Seed: CAIRN_TEST_SEED.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "env/env.h"
#include "test_util.h"

#define NKEYS 30
#define NTHREADS 4
#define VLEN 24

/* ---------- a u64 -> u64 hash map (keys non-zero) ---------- */

typedef struct u64map {
    uint64_t *k, *v;
    size_t cap, n;
} u64map;

static size_t map_slot(const u64map *m, uint64_t key)
{
    uint64_t h = key; /* ids differ in high bits: mix them all down */
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    h ^= h >> 31;
    size_t i = (size_t)h & (m->cap - 1);
    while (m->k[i] && m->k[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void map_put(u64map *m, uint64_t key, uint64_t val);

static void map_grow(u64map *m)
{
    u64map n = {.cap = m->cap ? m->cap * 2 : 1024};
    n.k = calloc(n.cap, sizeof *n.k);
    n.v = calloc(n.cap, sizeof *n.v);
    assert_true(n.k && n.v);
    for (size_t i = 0; i < m->cap; i++)
        if (m->k[i])
            map_put(&n, m->k[i], m->v[i]);
    free(m->k);
    free(m->v);
    *m = n;
}

static void map_put(u64map *m, uint64_t key, uint64_t val)
{
    if ((m->n + 1) * 2 > m->cap)
        map_grow(m);
    size_t i = map_slot(m, key);
    if (!m->k[i]) {
        m->k[i] = key;
        m->n++;
    }
    m->v[i] = val;
}

static bool map_get(const u64map *m, uint64_t key, uint64_t *val)
{
    if (!m->cap)
        return false;
    size_t i = map_slot(m, key);
    if (!m->k[i])
        return false;
    if (val)
        *val = m->v[i];
    return true;
}

static void map_free(u64map *m)
{
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof *m);
}

/* ---------- the workload ---------- */

static uint64_t check_word(uint64_t id, const uint8_t keys[3])
{
    uint64_t s = id ^ ((uint64_t)keys[0] << 40) ^ ((uint64_t)keys[1] << 48) ^
                 ((uint64_t)keys[2] << 56);
    return tu_splitmix(&s);
}

static void enc_value(uint8_t out[VLEN], uint64_t id, const uint8_t keys[3])
{
    memset(out, 0, VLEN);
    memcpy(out, &id, 8);
    memcpy(out + 8, keys, 3);
    uint64_t c = check_word(id, keys);
    memcpy(out + 16, &c, 8);
}

static bool dec_value(const void *val, size_t vlen, uint64_t *id,
                      uint8_t keys[3])
{
    if (vlen != VLEN)
        return false;
    const uint8_t *p = val;
    memcpy(id, p, 8);
    memcpy(keys, p + 8, 3);
    for (int i = 11; i < 16; i++)
        if (p[i])
            return false;
    uint64_t c;
    memcpy(&c, p + 16, 8);
    if (c != check_word(*id, keys))
        return false;
    for (int i = 0; i < 3; i++)
        if (keys[i] >= NKEYS)
            return false;
    return keys[0] != keys[1] && keys[0] != keys[2] && keys[1] != keys[2];
}

static void key_name(int k, char out[8])
{
    snprintf(out, 8, "ck-%02d", k % 100);
}

enum { REP_ATTEMPT = 1, REP_ACK = 2, REP_READY = 3 };

/* Where the writers report: a pipe (child) or the model (in process). */
typedef void (*report_fn)(void *ctx, int kind, uint64_t id,
                          const uint8_t keys[3], uint64_t version);

typedef struct writer_arg {
    cairn_db *db;
    uint64_t id_base; /* ids: id_base | seq */
    uint64_t seed;
    uint64_t max_txns; /* 0: until an error */
    report_fn report;
    void *ctx;
    uint64_t acked, conflicts;
    int last_rc;
} writer_arg;

/* One attempt; 0, CAIRN_ECONFLICT or the error. */
static int one_txn(cairn_db *db, uint64_t id, const uint8_t keys[3], int mode,
                   int extra, uint64_t *ver)
{
    uint8_t val[VLEN];
    enc_value(val, id, keys);
    char names[3][8];
    for (int i = 0; i < 3; i++)
        key_name(keys[i], names[i]);
    if (mode == 0) {
        cairn_write w[3];
        for (int i = 0; i < 3; i++)
            w[i] = (cairn_write){names[i], strlen(names[i]), val, VLEN};
        return cairn_write_batch(db, w, 3, ver);
    }
    cairn_txn_options o = {.isolation = mode == 1
                                            ? CAIRN_ISOLATION_SNAPSHOT
                                            : CAIRN_ISOLATION_SERIALIZABLE};
    cairn_txn *t = NULL;
    int rc = cairn_txn_begin(db, &o, &t);
    if (rc != 0)
        return rc;
    for (int i = 0; i < 3 + (mode == 2); i++) {
        char xn[8];
        key_name(i < 3 ? keys[i] : extra, xn);
        void *v = NULL;
        size_t vl = 0;
        rc = cairn_txn_get(t, xn, strlen(xn), &v, &vl);
        if (rc == 0)
            cairn_free(v);
        else if (rc != CAIRN_ENOTFOUND)
            goto fail;
    }
    for (int i = 0; i < 3; i++) {
        rc = cairn_txn_put(t, names[i], strlen(names[i]), val, VLEN);
        if (rc != 0)
            goto fail;
    }
    return cairn_txn_commit(t, ver);
fail:
    cairn_txn_abort(t);
    return rc;
}

static void *writer_main(void *p)
{
    writer_arg *a = p;
    uint64_t rng = a->seed;
    for (uint64_t seq = 1; !a->max_txns || seq <= a->max_txns; seq++) {
        uint64_t id = a->id_base | seq;
        uint8_t keys[3];
        keys[0] = (uint8_t)tu_rand(&rng, NKEYS);
        do
            keys[1] = (uint8_t)tu_rand(&rng, NKEYS);
        while (keys[1] == keys[0]);
        do
            keys[2] = (uint8_t)tu_rand(&rng, NKEYS);
        while (keys[2] == keys[0] || keys[2] == keys[1]);
        int mode = (int)tu_rand(&rng, 3);
        int extra = (int)tu_rand(&rng, NKEYS);
        a->report(a->ctx, REP_ATTEMPT, id, keys, 0);
        uint64_t ver = 0;
        int rc = one_txn(a->db, id, keys, mode, extra, &ver);
        if (rc == 0) {
            a->report(a->ctx, REP_ACK, id, keys, ver);
            a->acked++;
        } else if (rc == CAIRN_ECONFLICT) {
            a->conflicts++;
        } else {
            a->last_rc = rc;
            break;
        }
    }
    return NULL;
}

/* ---------- the model and the check ---------- */

typedef struct attempt {
    uint64_t id;
    uint8_t keys[3];
    uint32_t cycle;
    bool acked;
    bool lost;        /* acknowledged, lost in a power cut (sync=none) */
    uint64_t version; /* acknowledged version */
} attempt;

typedef struct model {
    pthread_mutex_t mu;
    attempt *att;
    size_t n, cap;
    u64map by_id;   /* id -> index + 1 */
    u64map durable; /* version -> id: what the last recovery showed */
    uint32_t cycle;
    uint64_t acked_total, present_unacked, conflicts, acked_lost;
} model;

static void model_init(model *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

static void model_free(model *m)
{
    free(m->att);
    map_free(&m->by_id);
    map_free(&m->durable);
    pthread_mutex_destroy(&m->mu);
}

static attempt *model_find(model *m, uint64_t id)
{
    uint64_t idx;
    return map_get(&m->by_id, id, &idx) ? &m->att[idx - 1] : NULL;
}

/* A writer's report (called from writer threads). */
static void model_report(void *ctx, int kind, uint64_t id,
                         const uint8_t keys[3], uint64_t version)
{
    model *m = ctx;
    pthread_mutex_lock(&m->mu);
    if (kind == REP_ATTEMPT) {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 1024;
            m->att = realloc(m->att, m->cap * sizeof *m->att);
            if (!m->att)
                abort();
        }
        attempt *a = &m->att[m->n++];
        *a = (attempt){.id = id, .cycle = m->cycle};
        memcpy(a->keys, keys, 3);
        map_put(&m->by_id, id, m->n);
    } else if (kind == REP_ACK) {
        attempt *a = model_find(m, id);
        if (!a)
            abort(); /* acknowledged before reported: a test bug */
        a->acked = true;
        a->version = version;
        m->acked_total++;
    }
    pthread_mutex_unlock(&m->mu);
}

typedef struct seen {
    uint64_t version, id, time_us;
    uint32_t mask;
} seen;

static int cmp_seen(const void *a, const void *b)
{
    const seen *x = a, *y = b;
    return x->version < y->version ? -1 : x->version > y->version;
}

static char g_msg[512];

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            snprintf(g_msg, sizeof g_msg, __VA_ARGS__);                        \
            goto out;                                                          \
        }                                                                      \
    } while (0)

/* Check the recovered database against the model; then what is there is
 * the new durable set. acked_durable: every acknowledged commit must be
 * there (sync=always); else (sync=none/interval after a power cut) the
 * acknowledged commits that are there must be a prefix: none lost below
 * the newest version recovered. NULL if fine, else what is wrong. */
static const char *verify(cairn_db *db, model *m, bool acked_durable)
{
    const char *err = g_msg;
    u64map vidx = {0}; /* version -> index + 1 into sv */
    seen *sv = NULL;
    size_t nsv = 0, capsv = 0;
    u64map id_ver = {0};
    uint64_t cur = cairn_current_version(db);
    for (int k = 0; k < NKEYS; k++) {
        char name[8];
        key_name(k, name);
        cairn_key_version *kv = NULL;
        size_t n = 0;
        int rc = cairn_key_versions(db, name, strlen(name), 0, &kv, &n);
        if (rc == CAIRN_ENOTFOUND) {
            n = 0;
            kv = NULL;
            rc = 0;
        }
        CHECK(rc == 0, "key_versions(%s): %s", name, cairn_strerror(rc));
        bool bad = false;
        for (size_t i = 0; i < n && !bad; i++) {
            uint64_t id;
            uint8_t keys[3];
            bad = true;
            if (kv[i].deleted ||
                !dec_value(kv[i].value, kv[i].vlen, &id, keys)) {
                snprintf(g_msg, sizeof g_msg,
                         "%s version %" PRIu64 ": damaged value (deleted %d, "
                         "%zu bytes)", name, kv[i].version, kv[i].deleted,
                         kv[i].vlen);
                break;
            }
            if (keys[0] != k && keys[1] != k && keys[2] != k) {
                snprintf(g_msg, sizeof g_msg,
                         "%s version %" PRIu64 ": value of txn %" PRIx64
                         " which wrote keys %d,%d,%d", name, kv[i].version, id,
                         keys[0], keys[1], keys[2]);
                break;
            }
            if (i > 0 && kv[i].version >= kv[i - 1].version) {
                snprintf(g_msg, sizeof g_msg, "%s: versions not newest first",
                         name);
                break;
            }
            uint64_t idx;
            if (map_get(&vidx, kv[i].version, &idx)) {
                seen *s = &sv[idx - 1];
                if (s->id != id || s->time_us != kv[i].time_us) {
                    snprintf(g_msg, sizeof g_msg,
                             "version %" PRIu64 " carries txn %" PRIx64
                             " on one key and %" PRIx64 " on %s", s->version,
                             s->id, id, name);
                    break;
                }
                s->mask |= 1u << k;
            } else {
                if (nsv == capsv) {
                    capsv = capsv ? capsv * 2 : 1024;
                    sv = realloc(sv, capsv * sizeof *sv);
                    assert_non_null(sv);
                }
                sv[nsv++] = (seen){kv[i].version, id, kv[i].time_us, 1u << k};
                map_put(&vidx, kv[i].version, nsv);
            }
            bad = false;
        }
        cairn_key_versions_free(kv, n);
        if (bad)
            goto out;
    }
    for (size_t i = 0; i < nsv; i++) {
        seen *s = &sv[i];
        attempt *a = model_find(m, s->id);
        CHECK(a, "version %" PRIu64 ": txn %" PRIx64 " was never attempted",
              s->version, s->id);
        uint32_t want = (1u << a->keys[0]) | (1u << a->keys[1]) |
                        (1u << a->keys[2]);
        CHECK(s->mask == want,
              "txn %" PRIx64 " (version %" PRIu64 ") is half there: on key "
              "mask %#x, wrote %#x", s->id, s->version, s->mask, want);
        CHECK(!map_get(&id_ver, s->id, NULL),
              "txn %" PRIx64 " appears at two versions", s->id);
        map_put(&id_ver, s->id, s->version);
        CHECK(s->version <= cur, "version %" PRIu64 " above current %" PRIu64,
              s->version, cur);
        if (a->acked)
            CHECK(a->version == s->version,
                  "txn %" PRIx64 " acknowledged at version %" PRIu64
                  " but found at %" PRIu64, s->id, a->version, s->version);
        else
            m->present_unacked += a->cycle == m->cycle;
        if (a->cycle < m->cycle) {
            uint64_t did;
            CHECK(map_get(&m->durable, s->version, &did) && did == s->id,
                  "txn %" PRIx64 " (version %" PRIu64 ") of cycle %u was not "
                  "there after that cycle's recovery but came back in cycle %u",
                  s->id, s->version, a->cycle, m->cycle);
        }
    }
    /* Every acknowledged transaction is there (or, without sync, every one
     * below the newest version that came back). */
    uint64_t maxv = 0;
    for (size_t i = 0; i < nsv; i++)
        if (sv[i].version > maxv)
            maxv = sv[i].version;
    for (size_t i = 0; i < m->n; i++) {
        attempt *a = &m->att[i];
        if (!a->acked)
            continue;
        uint64_t idx;
        if (map_get(&vidx, a->version, &idx) && sv[idx - 1].id == a->id)
            continue;
        CHECK(!acked_durable, "acknowledged txn %" PRIx64 " (version %" PRIu64
              ", cycle %u) lost", a->id, a->version, a->cycle);
        CHECK(a->cycle == m->cycle && a->version > maxv,
              "acknowledged txn %" PRIx64 " (version %" PRIu64 ", cycle %u) "
              "lost while version %" PRIu64 " survived: not a prefix",
              a->id, a->version, a->cycle, maxv);
        /* Gone for good: its version may be given to a new commit. */
        a->acked = false;
        a->lost = true;
        m->acked_lost++;
    }
    /* Everything durable before still is. */
    for (size_t i = 0; i < m->durable.cap; i++) {
        if (!m->durable.k[i])
            continue;
        uint64_t idx;
        CHECK(map_get(&vidx, m->durable.k[i], &idx) &&
                  sv[idx - 1].id == m->durable.v[i],
              "version %" PRIu64 " (txn %" PRIx64 ") recovered before, now "
              "lost", m->durable.k[i], m->durable.v[i]);
    }
    /* Timestamps increase with versions. */
    if (nsv)
        qsort(sv, nsv, sizeof *sv, cmp_seen);
    for (size_t i = 1; i < nsv; i++)
        CHECK(sv[i].time_us > sv[i - 1].time_us,
              "version %" PRIu64 " has time %" PRIu64 ", not after version %"
              PRIu64 " at %" PRIu64, sv[i].version, sv[i].time_us,
              sv[i - 1].version, sv[i - 1].time_us);
    /* What is there now is durable. */
    map_free(&m->durable);
    for (size_t i = 0; i < nsv; i++)
        map_put(&m->durable, sv[i].version, sv[i].id);
    err = NULL;
out:
    map_free(&vidx);
    map_free(&id_ver);
    free(sv);
    return err;
}

/* The sync mode of the SIGKILL runs (a forked child inherits it). */
static cairn_sync_mode g_kill_sync = CAIRN_SYNC_ALWAYS;

static void db_options(cairn_options *o)
{
    cairn_options_init(o);
    o->sync_mode = g_kill_sync;
    o->history_ms = 365ull * 24 * 3600 * 1000; /* keep every version */
    o->memtable_size = 1ull << 30;
    /* Small segments: rotations happen under the workload, and recovery
     * after a kill does not scan a 64 MiB preallocated tail. */
    o->wal_segment_size = 256 * 1024;
}

static uint64_t cycles(void)
{
    return tu_env_u64("CAIRN_CRASH_CYCLES", 20);
}

/* ---------- 1. SIGKILL of a child process ---------- */

typedef struct wire {
    uint32_t kind;
    uint8_t keys[3];
    uint8_t pad;
    uint64_t id;
    uint64_t version;
    uint64_t pad2;
} wire;
_Static_assert(sizeof(wire) == 32, "wire record size");

static void pipe_report(void *ctx, int kind, uint64_t id,
                        const uint8_t keys[3], uint64_t version)
{
    int fd = *(int *)ctx;
    wire w = {.kind = (uint32_t)kind, .id = id, .version = version};
    if (keys)
        memcpy(w.keys, keys, 3);
    /* < PIPE_BUF: atomic, never interleaved with another thread's. */
    ssize_t r;
    do
        r = write(fd, &w, sizeof w);
    while (r < 0 && errno == EINTR);
}

static void child_main(const char *dir, int fd, uint64_t cycle, uint64_t seed)
{
    alarm(60); /* never outlive a lost parent for long */
    cairn_options o;
    db_options(&o);
    cairn_db *db = NULL;
    int rc = cairn_open(dir, &o, &db);
    if (rc != 0) {
        fprintf(stderr, "child: open: %s\n", cairn_strerror(rc));
        _exit(2);
    }
    pipe_report(&fd, REP_READY, 0, NULL, 0);
    pthread_t th[NTHREADS];
    writer_arg a[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        a[i] = (writer_arg){.db = db,
                            .id_base = ((cycle + 1) << 40) |
                                       ((uint64_t)(i + 1) << 32),
                            .seed = seed + (uint64_t)i * 7919,
                            .max_txns = 1000000,
                            .report = pipe_report,
                            .ctx = &fd};
        if (pthread_create(&th[i], NULL, writer_main, &a[i]) != 0)
            _exit(3);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < NTHREADS; i++)
        if (a[i].last_rc) {
            fprintf(stderr, "child: commit: %s\n",
                    cairn_strerror(a[i].last_rc));
            _exit(4);
        }
    _exit(0);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

typedef struct pipe_reader {
    int fd;
    uint8_t buf[64 * 1024];
    size_t have;
    bool eof, ready;
    model *m;
} pipe_reader;

/* Read what is there (waiting up to timeout_ms); feed whole records. */
static void pipe_pump(pipe_reader *pr, int timeout_ms)
{
    struct pollfd pfd = {.fd = pr->fd, .events = POLLIN};
    int n = poll(&pfd, 1, timeout_ms);
    if (n <= 0)
        return;
    ssize_t r = read(pr->fd, pr->buf + pr->have, sizeof pr->buf - pr->have);
    if (r == 0) {
        pr->eof = true;
        return;
    }
    if (r < 0)
        return;
    pr->have += (size_t)r;
    size_t off = 0;
    while (pr->have - off >= sizeof(wire)) {
        wire w;
        memcpy(&w, pr->buf + off, sizeof w);
        off += sizeof w;
        if (w.kind == REP_READY)
            pr->ready = true;
        else
            model_report(pr->m, (int)w.kind, w.id, w.keys, w.version);
    }
    memmove(pr->buf, pr->buf + off, pr->have - off);
    pr->have -= off;
}

static void run_sigkill(cairn_sync_mode mode, uint64_t n, const char *label)
{
    g_kill_sync = mode;
    uint64_t rng = tu_env_u64("CAIRN_TEST_SEED", 20261125);
    char *dir = tu_mkdtemp("db-crash");
    assert_non_null(dir);
    model m;
    model_init(&m);
    uint64_t kills_during_open = 0, cycles_with_acks = 0, waited = 0;
    for (uint64_t c = 0; c < n; c++) {
        m.cycle = (uint32_t)c;
        uint64_t acked_before = m.acked_total;
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            child_main(dir, fds[1], c, tu_splitmix(&rng));
        }
        close(fds[1]);
        (void)tu_splitmix(&rng); /* the child's seed */
        pipe_reader *pr = calloc(1, sizeof *pr);
        assert_non_null(pr);
        pr->fd = fds[0];
        pr->m = &m;
        bool from_fork = tu_rand(&rng, 5) == 0;
        /* From the fork, 0-3 ms: the child's open (recovery) takes about
         * that long, so some of these kills land inside it. */
        uint64_t delay =
            from_fork ? tu_rand(&rng, 4) : 5 + tu_rand(&rng, 96);
        waited += from_fork ? 0 : 1;
        uint64_t t0 = mono_ms();
        if (!from_fork) {
            /* Wait for the child's open (recovery) to finish. */
            while (!pr->ready && !pr->eof && mono_ms() - t0 < 30000)
                pipe_pump(pr, 10);
            assert_true(pr->ready);
            /* And for its first acknowledged commit, so that the kill lands
             * among commits however slow the build (TSan) makes them. */
            while (m.acked_total == acked_before && !pr->eof &&
                   mono_ms() - t0 < 30000)
                pipe_pump(pr, 10);
            t0 = mono_ms();
        }
        while (!pr->eof && mono_ms() - t0 < delay)
            pipe_pump(pr, (int)(delay - (mono_ms() - t0)) + 1);
        if (!pr->ready)
            kills_during_open++;
        assert_false(pr->eof); /* the child runs until killed */
        assert_int_equal(kill(pid, SIGKILL), 0);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        if (!WIFSIGNALED(st))
            fprintf(stderr, "cycle %" PRIu64 ": child exited with %d\n", c,
                    WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        assert_true(WIFSIGNALED(st));
        assert_int_equal(WTERMSIG(st), SIGKILL);
        while (!pr->eof)
            pipe_pump(pr, 1000);
        assert_int_equal(pr->have, 0); /* no torn record */
        close(fds[0]);
        free(pr);
        if (m.acked_total > acked_before)
            cycles_with_acks++;

        cairn_options o;
        db_options(&o);
        cairn_db *db = NULL;
        int rc = cairn_open(dir, &o, &db);
        if (rc != 0)
            fprintf(stderr, "cycle %" PRIu64 ": reopen: %s\n", c,
                    cairn_strerror(rc));
        assert_int_equal(rc, 0);
        const char *why = verify(db, &m, true);
        if (why)
            fprintf(stderr, "cycle %" PRIu64 ": %s\n", c, why);
        assert_null(why);
        assert_int_equal(cairn_close(db), 0);
    }
    fprintf(stderr,
            "sigkill, %s: %" PRIu64 " cycles (%" PRIu64
            " killed during open, %" PRIu64
            " with acknowledged commits), %" PRIu64
            " acknowledged transactions all recovered, %" PRIu64
            " unacknowledged ones recovered whole, %zu attempts\n",
            label, n, kills_during_open, cycles_with_acks, m.acked_total,
            m.present_unacked, m.n);
    /* Every kill that waited for a first acknowledgement landed while
     * transactions committed; some of the others landed in the open. */
    assert_true(cycles_with_acks >= waited);
    model_free(&m);
    tu_rmrf(dir);
    free(dir);
    g_kill_sync = CAIRN_SYNC_ALWAYS;
}

static void test_crash_sigkill(void **state)
{
    (void)state;
    run_sigkill(CAIRN_SYNC_ALWAYS, cycles(), "sync=always");
}

/* Without a sync per commit the log is written through a mapping of its
 * segment (env_posix.c): a killed process leaves those bytes in the page
 * cache just as written ones, so every acknowledged commit survives a kill
 * (not a power loss) here too. */
static void test_crash_sigkill_sync_none(void **state)
{
    (void)state;
    run_sigkill(CAIRN_SYNC_NONE, (cycles() + 1) / 2, "sync=none");
}

static void test_crash_sigkill_sync_interval(void **state)
{
    (void)state;
    run_sigkill(CAIRN_SYNC_INTERVAL, (cycles() + 1) / 2, "sync=interval");
}

/* ---------- 2. power loss on the memory env ---------- */

static uint64_t run_writers(cairn_db *db, model *m, uint64_t *rng,
                            uint64_t cycle, uint64_t max_txns)
{
    pthread_t th[NTHREADS];
    writer_arg a[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        a[i] = (writer_arg){.db = db,
                            .id_base = ((cycle + 1) << 40) |
                                       ((uint64_t)(i + 1) << 32),
                            .seed = tu_splitmix(rng),
                            .max_txns = max_txns,
                            .report = model_report,
                            .ctx = m};
        assert_int_equal(pthread_create(&th[i], NULL, writer_main, &a[i]), 0);
    }
    uint64_t acked = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        acked += a[i].acked;
        m->conflicts += a[i].conflicts;
        if (a[i].last_rc && a[i].last_rc != CAIRN_EIO &&
            a[i].last_rc != CAIRN_EREADONLY)
            fprintf(stderr, "writer stopped with %s\n",
                    cairn_strerror(a[i].last_rc));
    }
    return acked;
}

static void pl_options(cairn_options *o, cairn_env *env, uint64_t *rng,
                       cairn_sync_mode mode)
{
    db_options(o);
    o->env = env;
    o->sync_mode = mode;
    o->sync_interval_ms = 1;
    static const uint64_t seg[] = {16 * 1024, 64 * 1024, 1 << 20};
    o->wal_segment_size = seg[tu_rand(rng, 3)];
    /* Small memtables and levels: cuts land in flushes (file writes,
     * syncs, manifest edits, log truncation) and compactions too. */
    static const size_t mt[] = {16 * 1024, 64 * 1024, 1u << 30};
    o->memtable_size = mt[tu_rand(rng, 3)];
    o->sst_target_file_size = 16 * 1024;
    o->level_base_size = 64 * 1024;
    o->l0_compaction_trigger = 2;
}

/* I/O calls of one uninterrupted workload, to place the cuts. */
static uint64_t calibrate(uint64_t txns, cairn_sync_mode mode)
{
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    uint64_t rng = 1;
    cairn_options o;
    pl_options(&o, env, &rng, mode);
    o.wal_segment_size = 64 * 1024;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    model m;
    model_init(&m);
    cairn_env_fault_reset(env);
    run_writers(db, &m, &rng, 0, txns);
    uint64_t calls = cairn_env_fault_calls(env);
    assert_int_equal(cairn_close(db), 0);
    model_free(&m);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
    return calls;
}

static void run_power_loss(cairn_sync_mode mode, const char *name)
{
    uint64_t n = cycles();
    uint64_t rng = tu_env_u64("CAIRN_TEST_SEED", 20261125) + 1 + (uint64_t)mode;
    const uint64_t txns = 40; /* per thread and cycle */
    bool durable = mode == CAIRN_SYNC_ALWAYS;
    uint64_t calls = calibrate(txns, mode);
    assert_true(calls > 20);
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    assert_non_null(mem);
    assert_non_null(env);
    model m;
    model_init(&m);
    uint64_t cuts = 0, torn_cycles = 0;
    for (uint64_t c = 0; c < n; c++) {
        /* m.cycle is still c - 1: its attempts are the fresh ones. */
        cairn_options o;
        pl_options(&o, env, &rng, mode);
        cairn_env_fault_reset(env);
        cairn_db *db = NULL;
        int rc = cairn_open("/db", &o, &db);
        if (rc != 0)
            fprintf(stderr, "%s cycle %" PRIu64 ": open: %s\n", name, c,
                    cairn_strerror(rc));
        assert_int_equal(rc, 0);
        if (c > 0) {
            /* This open recovered what the cut left: check it. */
            const char *why = verify(db, &m, durable);
            if (why)
                fprintf(stderr, "%s cycle %" PRIu64 ": %s\n", name, c, why);
            assert_null(why);
        }
        m.cycle = (uint32_t)c;
        bool torn = tu_rand(&rng, 2) == 0;
        cairn_fault_rule rule = {
            .power_cut_at = 1 + tu_rand(&rng, calls + calls / 10),
            .torn = torn,
            .seed = tu_splitmix(&rng),
        };
        cairn_env_fault_set(env, &rule);
        run_writers(db, &m, &rng, c, txns);
        (void)cairn_close(db); /* may fail: the power is gone */
        if (cairn_env_fault_power_is_cut(env)) {
            cuts++;
        } else {
            assert_int_equal(
                cairn_env_mem_power_loss(mem, torn, tu_splitmix(&rng)), 0);
        }
        torn_cycles += torn;
    }
    /* The last recovery. */
    cairn_env_fault_reset(env);
    cairn_options o;
    pl_options(&o, env, &rng, mode);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    const char *why = verify(db, &m, durable);
    if (why)
        fprintf(stderr, "%s final: %s\n", name, why);
    assert_null(why);
    /* The recovered database takes new commits, kept by a clean close
     * whatever the sync mode. */
    m.cycle = (uint32_t)n;
    uint64_t before = m.acked_total;
    run_writers(db, &m, &rng, n, 5);
    assert_true(m.acked_total > before);
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    why = verify(db, &m, true);
    if (why)
        fprintf(stderr, "%s after clean close: %s\n", name, why);
    assert_null(why);
    assert_int_equal(cairn_close(db), 0);
    fprintf(stderr,
            "power loss (%s): %" PRIu64 " cycles, %" PRIu64 " cuts mid-run, %"
            PRIu64 " torn, %" PRIu64 " acknowledged transactions, %" PRIu64
            " of them lost (allowed without sync; always a suffix), %" PRIu64
            " unacknowledged recovered whole, %" PRIu64 " conflicts\n",
            name, n, cuts, torn_cycles, m.acked_total, m.acked_lost,
            m.present_unacked, m.conflicts);
    assert_true(cuts * 2 >= n);
    assert_true(m.acked_total > m.acked_lost);
    if (durable)
        assert_int_equal(m.acked_lost, 0);
    model_free(&m);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

static void test_crash_power_loss(void **state)
{
    (void)state;
    run_power_loss(CAIRN_SYNC_ALWAYS, "sync=always");
}

static void test_crash_power_loss_sync_none(void **state)
{
    (void)state;
    run_power_loss(CAIRN_SYNC_NONE, "sync=none");
}

static void test_crash_power_loss_sync_interval(void **state)
{
    (void)state;
    run_power_loss(CAIRN_SYNC_INTERVAL, "sync=interval 1 ms");
}

/* ---------- 4. I/O errors without a crash ---------- */

static void put_ok(cairn_db *db, const char *k, const char *v, uint64_t *ver)
{
    int rc = cairn_put(db, k, strlen(k), v, strlen(v), ver);
    if (rc != 0)
        fprintf(stderr, "put %s: %s\n", k, cairn_strerror(rc));
    assert_int_equal(rc, 0);
}

static void expect_get(cairn_db *db, const char *k, const char *v)
{
    void *val = NULL;
    size_t vlen = 0;
    int rc = cairn_get(db, k, strlen(k), &val, &vlen);
    if (!v) {
        assert_int_equal(rc, CAIRN_ENOTFOUND);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(vlen, strlen(v));
    assert_memory_equal(val, v, vlen);
    cairn_free(val);
}

/* A failed log write (no space) fails that commit only: it is not
 * visible, later commits go on, and it does not come back on reopen. A
 * failed fsync makes the database read-only for good (CAIRN_EREADONLY),
 * reads still work, the failed commit is not visible, and after a restart
 * everything acknowledged before is there. */
static void test_io_failures(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    cairn_options o;
    db_options(&o);
    o.env = env;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    uint64_t v1 = 0, v2 = 0, v3 = 0;
    put_ok(db, "a", "1", &v1);

    /* No space on the next log write. */
    cairn_fault_rule rule = {.op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE),
                             .fail_at = 1,
                             .error = CAIRN_ENOSPC};
    cairn_env_fault_set(env, &rule);
    int rc = cairn_put(db, "nospace", 7, "x", 1, NULL);
    assert_true(cairn_env_fault_injected(env) >= 1);
    assert_int_not_equal(rc, 0);
    assert_int_not_equal(rc, CAIRN_ECONFLICT);
    cairn_env_fault_reset(env);
    expect_get(db, "nospace", NULL);
    put_ok(db, "b", "2", &v2);
    assert_true(v2 > v1);
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    assert_int_equal(cairn_txn_put(t, "c", 1, "3", 1), 0);
    assert_int_equal(cairn_txn_commit(t, &v3), 0);
    assert_true(v3 > v2);
    expect_get(db, "b", "2");
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    expect_get(db, "a", "1");
    expect_get(db, "b", "2");
    expect_get(db, "c", "3");
    expect_get(db, "nospace", NULL);
    assert_true(cairn_current_version(db) >= v3);

    /* A failed fsync: read-only for good. */
    rule = (cairn_fault_rule){.op_mask = CAIRN_OPMASK(CAIRN_OP_SYNC),
                              .fail_at = 1,
                              .error = CAIRN_EIO};
    cairn_env_fault_set(env, &rule);
    rc = cairn_put(db, "unsynced", 8, "x", 1, NULL);
    assert_true(cairn_env_fault_injected(env) >= 1);
    assert_int_not_equal(rc, 0);
    cairn_env_fault_reset(env); /* the disk is fine again: too late */
    expect_get(db, "unsynced", NULL);
    assert_int_equal(cairn_put(db, "d", 1, "4", 1, NULL), CAIRN_EREADONLY);
    assert_int_equal(cairn_delete(db, "a", 1, NULL), CAIRN_EREADONLY);
    cairn_write w = {"e", 1, "5", 1};
    assert_int_equal(cairn_write_batch(db, &w, 1, NULL), CAIRN_EREADONLY);
    t = NULL;
    rc = cairn_txn_begin(db, NULL, &t);
    if (rc == 0) {
        rc = cairn_txn_put(t, "f", 1, "6", 1);
        if (rc == 0)
            rc = cairn_txn_commit(t, NULL);
        else
            cairn_txn_abort(t);
    }
    assert_int_equal(rc, CAIRN_EREADONLY);
    expect_get(db, "a", "1");
    expect_get(db, "c", "3");
    expect_get(db, "d", NULL);
    (void)cairn_close(db); /* reports the failure, frees anyway */
    /* After a restart: everything acknowledged; the failed commit may or
     * may not be there (its record may have reached the disk), never
     * anything else. */
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    expect_get(db, "a", "1");
    expect_get(db, "b", "2");
    expect_get(db, "c", "3");
    expect_get(db, "d", NULL);
    expect_get(db, "e", NULL);
    expect_get(db, "f", NULL);
    expect_get(db, "nospace", NULL);
    void *val = NULL;
    size_t vlen = 0;
    rc = cairn_get(db, "unsynced", 8, &val, &vlen);
    assert_true(rc == 0 || rc == CAIRN_ENOTFOUND);
    if (rc == 0) {
        assert_int_equal(vlen, 1);
        cairn_free(val);
    }
    put_ok(db, "g", "7", NULL); /* writable again */
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_sigkill),
        cmocka_unit_test(test_crash_sigkill_sync_none),
        cmocka_unit_test(test_crash_sigkill_sync_interval),
        cmocka_unit_test(test_crash_power_loss),
        cmocka_unit_test(test_crash_power_loss_sync_none),
        cmocka_unit_test(test_crash_power_loss_sync_interval),
        cmocka_unit_test(test_io_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
