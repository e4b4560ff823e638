/*
 * cairn_stress.c — cairn-stress: many threads run a random mix of
 * operations against a database while keeping the state every key must be
 * in, check every read against it, and (in the crash modes) kill the
 * database over and over and check that it comes back with everything it
 * acknowledged.
 *
 * The expected state. Key i is "k%08u" (so key order is number order). Its
 * state is one 32-bit word: 0 never written; gen << 1 a value of
 * generation gen; gen << 1 | 1 deleted at generation gen. Generations of a
 * key only grow. A value names its key and generation and its bytes follow
 * from them (val_fill), so any value read is checked whole: the right key,
 * the right length, the right bytes, and the generation the state says.
 * Each key has { cur, pending, owner }:
 *   - cur: the state after the last acknowledged write;
 *   - pending: the state an operation in flight is writing (0: none);
 *   - owner: 0 for a one-key write, else the writing thread + 1 for a write
 *     of several keys in one commit (batch, transaction).
 * A writer sets pending (and owner) before it calls the engine, and after
 * the engine acknowledges it stores cur = pending, then clears pending.
 * So at any moment, and after a crash at any moment, the key's stored
 * state is cur or pending; never anything else. A write that fails (power
 * and fault modes) leaves pending set, since it may still come back after
 * the reopen; no other write takes that key until the reopen settles it.
 *
 * Locking: one mutex per key. Every operation on a key holds its mutex
 * (operations on several keys take them in ascending key order), so inside
 * a process the expected state is exact: a read under the lock must give
 * cur. Scans and snapshots copy the expected states of their keys under
 * the locks, take their snapshot (iterator, read-only transaction), then
 * let the locks go: what they read later must equal the copy however the
 * keys changed since. Time-travel reads check a key at a version this
 * thread wrote it at (CAIRN_EHISTORY allowed once it is out of the window).
 *
 * Time series: thread t also owns series "ts<t>" (256-byte chunks, so
 * that a run seals many): it adds batches of 1..20 points (one commit
 * each) and reads ranges back; its expected state is the count of points
 * acknowledged plus the batch in flight (ks[keys + t]). After a reopen the
 * series must hold the acknowledged points, or those and the whole batch.
 * Each series feeds a rule (created with it, in one transaction): "ts<t>.sum"
 * holds the sum of every closed 10-second bucket, with a retention of 600
 * s; after a reopen it must equal the rollup of the points the series
 * holds, exactly (written in the same commits as they were).
 *
 * Modes:
 *   - default: run for --seconds / --ops, close, reopen, verify every key.
 *   - --crash-cycles N: the expected state lives in memory shared with
 *     forked children. Each cycle forks a child that opens the database
 *     and runs the workload (sync=always); the parent SIGKILLs it after a
 *     random delay (one cycle in five within 15 ms of the fork, so during
 *     recovery), reopens the database, verifies every key (cur or pending,
 *     and the keys of one multi-key write all old or all new), makes the
 *     recovered state the expected one, and goes on with the same data.
 *   - --power-cycles N: in one process, on a memory env behind the fault
 *     env: power is cut at a random I/O call (unsynced bytes lost, half the
 *     cycles with the last block torn); the threads stop at their first
 *     error; the database is closed, reopened on the same memory and
 *     verified likewise.
 *   - --fault-cycles N: the same, with a random I/O call (and up to two
 *     after it) failing with EIO or ENOSPC instead of a power cut: once the
 *     threads have stopped and the disk works again, the open database
 *     must read every key as acknowledged (or as the failed write left
 *     it), then it is closed, reopened and verified.
 *   - --fault-path LIST: the power cut or the error of each cycle goes to
 *     files whose path holds one of LIST's substrings (one picked per
 *     cycle), so that rare files (the manifest, CURRENT) get their share.
 * Exit status: 0 no discrepancy; 1 a discrepancy (printed with the key,
 * the expected and the actual state); 2 usage or setup error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "env/env.h"

/* ---- configuration ---- */

#define MAX_FAULT_PATHS 8 /* --fault-path substrings */

typedef struct stress_cfg {
    char dir[4096];
    bool own_dir;          /* created here (removed after a clean pass) */
    int threads;           /* 8 */
    uint32_t keys;         /* 4000 */
    double seconds;        /* 10 (0 with --ops: no time limit) */
    uint64_t ops;          /* 0: no limit */
    uint64_t seed;
    cairn_sync_mode sync;  /* always */
    uint64_t history_ms;   /* 2000 */
    int crash_cycles;
    int power_cycles;
    int fault_cycles;
    int kill_min_ms, kill_max_ms; /* 30, 400 */
    /* --fault-path: where the faults of --fault-cycles / --power-cycles go,
     * one of these per cycle, at random: a substring of the file's path,
     * or "" for any call. */
    char fault_path_buf[256];
    const char *fault_paths[MAX_FAULT_PATHS];
    int nfault_paths; /* 0: any call */
    bool quiet;
} stress_cfg;

/* ---- expected state ---- */

typedef struct kstate {
    _Atomic uint32_t cur;
    _Atomic uint32_t pending;
    _Atomic uint32_t owner;
} kstate;

#define ST_ABSENT 1u /* what a read that found nothing gives */

static inline uint32_t st_gen(uint32_t st) { return st >> 1; }
static inline bool st_deleted(uint32_t st) { return st == 0 || (st & 1u); }

/* Does a read's result (actual; ST_ABSENT when not found) agree with
 * state exp? */
static bool st_match(uint32_t actual, uint32_t exp)
{
    if (actual == ST_ABSENT)
        return st_deleted(exp);
    return actual == exp;
}

static void st_describe(uint32_t st, char *buf, size_t len)
{
    if (st == 0)
        snprintf(buf, len, "absent (never written)");
    else if (st == ST_ABSENT)
        snprintf(buf, len, "absent");
    else if (st & 1u)
        snprintf(buf, len, "deleted (generation %" PRIu32 ")", st_gen(st));
    else
        snprintf(buf, len, "value of generation %" PRIu32, st_gen(st));
}

/* ---- keys and values ---- */

#define KEY_LEN 9

static void key_of(uint32_t id, char out[KEY_LEN + 1])
{
    out[0] = 'k';
    for (int i = KEY_LEN - 1; i >= 1; i--) {
        out[i] = (char)('0' + id % 10);
        id /= 10;
    }
    out[KEY_LEN] = '\0';
}

static bool key_parse(const void *k, size_t len, uint32_t *id)
{
    const char *s = k;
    if (len != KEY_LEN || s[0] != 'k')
        return false;
    uint32_t v = 0;
    for (size_t i = 1; i < KEY_LEN; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    *id = v;
    return true;
}

static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* Value length of (key, gen): mostly 8..130 bytes, one in 64 a few KiB. */
/* Value sizes: mostly small; 1 in 64 of 2..8 KB (those from 4096 bytes
 * on are stored out of line, in the blob store); 1 in 128 large, cut into
 * chunks (the runs set blob_chunk_threshold to 32 KiB): one of 4 contents
 * (length and bytes past the 8-byte header), so large values of different
 * keys and generations share every chunk but their first (deduplication:
 * the same cut points follow from the same bytes). */
#define VAL_MAX (8 + 60000 + 3 * 15000)

static bool val_big(uint32_t key, uint32_t gen)
{
    return (mix32(key * 0x9E3779B1u ^ gen) & 127u) == 1;
}

static size_t val_len(uint32_t key, uint32_t gen)
{
    uint32_t h = mix32(key * 0x9E3779B1u ^ gen);
    if ((h & 127u) == 1)
        return 8 + 60000 + ((h >> 20) & 3u) * 15000;
    if ((h & 63u) == 0)
        return 8 + 2000 + (h >> 8) % 6000;
    return 8 + (h >> 8) % 123;
}

static uint8_t val_byte(uint32_t key, uint32_t gen, size_t i)
{
    if (val_big(key, gen)) {
        uint32_t c = (mix32(key * 0x9E3779B1u ^ gen) >> 20) & 3u;
        return (uint8_t)(mix32(c * 0x01000193u + (uint32_t)(i >> 2)) >>
                         (8 * (i & 3)));
    }
    return (uint8_t)(key * 7u + gen * 13u + (uint32_t)i * 31u);
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* buf holds val_len(key, gen) bytes. */
static void val_fill(uint8_t *buf, uint32_t key, uint32_t gen)
{
    size_t len = val_len(key, gen);
    put32(buf, key);
    put32(buf + 4, gen);
    for (size_t i = 8; i < len; i++)
        buf[i] = val_byte(key, gen, i);
}

/* Check a value read for key: whole and well formed. Gives its state
 * (gen << 1) or, when damaged, 0 with why filled in. */
static uint32_t val_state(uint32_t key, const void *v, size_t len, char *why,
                          size_t wl)
{
    const uint8_t *p = v;
    if (len < 8) {
        snprintf(why, wl, "a %zu-byte value (too short to be one of ours)",
                 len);
        return 0;
    }
    uint32_t k = get32(p), gen = get32(p + 4);
    if (k != key) {
        snprintf(why, wl, "the value of key %" PRIu32 " (generation %" PRIu32
                          ")", k, gen);
        return 0;
    }
    if (gen == 0 || gen > (UINT32_MAX >> 1)) {
        snprintf(why, wl, "a value with generation %" PRIu32, gen);
        return 0;
    }
    if (len != val_len(key, gen)) {
        snprintf(why, wl, "generation %" PRIu32 " with %zu bytes, not %zu",
                 gen, len, val_len(key, gen));
        return 0;
    }
    for (size_t i = 8; i < len; i++)
        if (p[i] != val_byte(key, gen, i)) {
            snprintf(why, wl, "generation %" PRIu32 " with byte %zu wrong "
                              "(0x%02x, not 0x%02x)", gen, i, p[i],
                     val_byte(key, gen, i));
            return 0;
        }
    return gen << 1;
}

/* ---- random numbers (xorshift64*) ---- */

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint32_t rnd_below(uint64_t *s, uint32_t n)
{
    return n ? (uint32_t)(rnd(s) % n) : 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(uint32_t ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---- the run ---- */

enum {
    OP_PUT,
    OP_DELETE,
    OP_GET,
    OP_BATCH,
    OP_TXN,
    OP_ABORT,
    OP_SCAN,
    OP_SNAPSHOT,
    OP_TIMETRAVEL,
    OP_VERSIONS,
    OP_FLUSH,
    OP_COMPACT,
    OP_TS_ADD,
    OP_TS_RANGE,
    OP__COUNT
};

static const char *const op_names[OP__COUNT] = {
    "put", "delete", "get", "batch", "txn", "abort", "scan", "snapshot",
    "time-travel", "versions", "flush", "compact", "ts-add", "ts-range"};

typedef struct run {
    const stress_cfg *cfg;
    cairn_db *db;
    kstate *ks;
    uint32_t nkeys;
    pthread_mutex_t *locks;
    bool power_mode;        /* an error ends the thread, it is not a finding */
    cairn_env *fenv;        /* power/fault cycles: the fault env */
    _Atomic uint64_t fault_seen_ns; /* when the first fault was seen */
    atomic_bool stop;
    atomic_int failed;      /* discrepancies */
    atomic_int errors;      /* unexpected errors (not in power mode) */
    atomic_int errors_expected; /* power/fault mode: operations that failed */
    _Atomic uint64_t counts[OP__COUNT];
    _Atomic uint64_t ops_done;
    _Atomic uint64_t *shared_ops; /* crash mode: the parent reads it */
    _Atomic uint64_t conflicts;
    _Atomic uint64_t history_misses;
    uint64_t deadline_ns;   /* 0: none */
    uint64_t ops_limit;     /* 0: none */
    pthread_mutex_t print_lock;
} run;

#define RING 64
#define MAX_GROUP 8

typedef struct tt_entry {
    uint32_t key;
    uint32_t st;
    uint64_t version;
} tt_entry;

typedef struct worker {
    run *r;
    int idx;
    uint64_t rng;
    tt_entry ring[RING];
    size_t ring_n, ring_pos;
    /* a snapshot held across operations */
    cairn_txn *snap;
    uint32_t snap_keys[MAX_GROUP];
    uint32_t snap_st[MAX_GROUP];
    size_t snap_n;
    uint32_t snap_age;
    uint8_t *vbuf; /* a value being written */
    pthread_t tid;
} worker;

static void discrepancy(run *r, const char *op, uint32_t key, uint32_t exp,
                        uint32_t pend, uint32_t actual, const char *why)
{
    char k[KEY_LEN + 1], e[64], p[64], a[96];
    key_of(key, k);
    st_describe(exp, e, sizeof e);
    st_describe(pend, p, sizeof p);
    if (why)
        snprintf(a, sizeof a, "%s", why);
    else
        st_describe(actual, a, sizeof a);
    pthread_mutex_lock(&r->print_lock);
    fprintf(stderr, "cairn-stress: DISCREPANCY in %s: key %s: expected %s%s%s,"
                    " got %s\n", op, k, e, pend ? " or " : "",
            pend ? p : "", a);
    pthread_mutex_unlock(&r->print_lock);
    atomic_fetch_add(&r->failed, 1);
    atomic_store(&r->stop, true);
}

/* An error the engine returned: a finding unless power was cut (then it is
 * how the thread learns it must stop). Returns rc. */
static int op_error(run *r, const char *op, uint32_t key, int rc)
{
    if (r->power_mode) {
        atomic_fetch_add(&r->errors_expected, 1);
        return rc;
    }
    char k[KEY_LEN + 1];
    key_of(key, k);
    pthread_mutex_lock(&r->print_lock);
    fprintf(stderr, "cairn-stress: unexpected error in %s (key %s): %s\n", op,
            k, cairn_strerror(rc));
    pthread_mutex_unlock(&r->print_lock);
    atomic_fetch_add(&r->errors, 1);
    atomic_store(&r->stop, true);
    return rc;
}

/* What a get gives: state, ST_ABSENT, or 0 (damaged value, why set) and
 * *rc < 0 on an error. */
static uint32_t read_state(cairn_db *db, cairn_txn *txn, uint32_t key,
                           int *rc, char *why, size_t wl)
{
    char k[KEY_LEN + 1];
    key_of(key, k);
    void *v = NULL;
    size_t vl = 0;
    int e = txn ? cairn_txn_get(txn, k, KEY_LEN, &v, &vl)
                : cairn_get(db, k, KEY_LEN, &v, &vl);
    *rc = 0;
    if (e == CAIRN_ENOTFOUND)
        return ST_ABSENT;
    if (e < 0) {
        *rc = e;
        return 0;
    }
    uint32_t st = val_state(key, v, vl, why, wl);
    cairn_free(v);
    return st;
}

static void lock_keys(run *r, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pthread_mutex_lock(&r->locks[ids[i]]);
}

static void unlock_keys(run *r, const uint32_t *ids, size_t n)
{
    for (size_t i = n; i-- > 0;)
        pthread_mutex_unlock(&r->locks[ids[i]]);
}

/* n distinct random keys in ascending order. */
static size_t pick_keys(worker *w, uint32_t *ids, size_t n)
{
    run *r = w->r;
    if (n > r->nkeys)
        n = r->nkeys;
    size_t got = 0;
    while (got < n) {
        uint32_t k = rnd_below(&w->rng, r->nkeys);
        bool dup = false;
        for (size_t i = 0; i < got; i++)
            dup |= ids[i] == k;
        if (!dup)
            ids[got++] = k;
    }
    for (size_t i = 1; i < got; i++)
        for (size_t j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
            uint32_t t = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = t;
        }
    return got;
}

/* The next state of key (a put or a deletion), past every state it had. */
static uint32_t next_state(run *r, uint32_t key, bool del)
{
    uint32_t g1 = st_gen(atomic_load(&r->ks[key].cur));
    uint32_t g2 = st_gen(atomic_load(&r->ks[key].pending));
    uint32_t g = (g1 > g2 ? g1 : g2) + 1;
    return g << 1 | (del ? 1u : 0u);
}

/* A key whose last write failed (power or fault mode) has an unknown
 * outcome: the write may come back after the reopen. Its pending state
 * must stay until then, so no later write may take the key this cycle.
 * Called under the key's lock. */
static bool key_unsettled(const run *r, uint32_t key)
{
    return atomic_load(&r->ks[key].pending) != 0;
}

static bool any_unsettled(const run *r, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (key_unsettled(r, ids[i]))
            return true;
    return false;
}

static void remember(worker *w, uint32_t key, uint32_t st, uint64_t version)
{
    w->ring[w->ring_pos] = (tt_entry){key, st, version};
    w->ring_pos = (w->ring_pos + 1) % RING;
    if (w->ring_n < RING)
        w->ring_n++;
}

/* Check one key under its lock: the engine gives exactly cur. */
static int check_key(worker *w, const char *op, cairn_txn *txn, uint32_t key,
                     uint32_t exp)
{
    run *r = w->r;
    char why[160];
    int rc;
    uint32_t a = read_state(r->db, txn, key, &rc, why, sizeof why);
    if (rc < 0)
        return op_error(r, op, key, rc);
    if (a == 0) {
        discrepancy(r, op, key, exp, 0, 0, why);
        return 1;
    }
    if (!st_match(a, exp)) {
        discrepancy(r, op, key, exp, 0, a, NULL);
        return 1;
    }
    return 0;
}

static int op_write_one(worker *w, bool del)
{
    run *r = w->r;
    uint32_t key = rnd_below(&w->rng, r->nkeys);
    char k[KEY_LEN + 1];
    key_of(key, k);
    pthread_mutex_lock(&r->locks[key]);
    if (key_unsettled(r, key)) {
        pthread_mutex_unlock(&r->locks[key]);
        return 0;
    }
    uint32_t st = next_state(r, key, del);
    atomic_store(&r->ks[key].owner, 0);
    atomic_store(&r->ks[key].pending, st);
    uint64_t ver = 0;
    int rc;
    if (del) {
        rc = cairn_delete(r->db, k, KEY_LEN, &ver);
    } else {
        val_fill(w->vbuf, key, st_gen(st));
        rc = cairn_put(r->db, k, KEY_LEN, w->vbuf, val_len(key, st_gen(st)),
                       &ver);
    }
    if (rc == 0) {
        atomic_store(&r->ks[key].cur, st);
        atomic_store(&r->ks[key].pending, 0);
        remember(w, key, st, ver);
    }
    pthread_mutex_unlock(&r->locks[key]);
    return rc < 0 ? op_error(r, del ? "delete" : "put", key, rc) : 0;
}

static int op_get(worker *w)
{
    run *r = w->r;
    uint32_t key = rnd_below(&w->rng, r->nkeys);
    pthread_mutex_lock(&r->locks[key]);
    int rc = check_key(w, "get", NULL, key, atomic_load(&r->ks[key].cur));
    pthread_mutex_unlock(&r->locks[key]);
    return rc;
}

/* A batch of puts and deletes on 2..8 keys: one atomic commit. */
static int op_batch(worker *w)
{
    run *r = w->r;
    uint32_t ids[MAX_GROUP], st[MAX_GROUP] = {0};
    size_t n = pick_keys(w, ids, 2 + rnd_below(&w->rng, MAX_GROUP - 1));
    char keys[MAX_GROUP][KEY_LEN + 1];
    uint8_t *vals[MAX_GROUP] = {0};
    cairn_write wr[MAX_GROUP];
    int rc = 0;
    lock_keys(r, ids, n);
    if (any_unsettled(r, ids, n)) {
        unlock_keys(r, ids, n);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        bool del = rnd_below(&w->rng, 5) == 0;
        st[i] = next_state(r, ids[i], del);
        key_of(ids[i], keys[i]);
        wr[i] = (cairn_write){keys[i], KEY_LEN, NULL, 0};
        if (!del) {
            size_t len = val_len(ids[i], st_gen(st[i]));
            vals[i] = malloc(len);
            if (!vals[i]) {
                rc = CAIRN_ENOMEM;
                goto out;
            }
            val_fill(vals[i], ids[i], st_gen(st[i]));
            wr[i].val = vals[i];
            wr[i].vlen = len;
        }
    }
    for (size_t i = 0; i < n; i++) {
        atomic_store(&r->ks[ids[i]].owner, (uint32_t)w->idx + 1);
        atomic_store(&r->ks[ids[i]].pending, st[i]);
    }
    uint64_t ver = 0;
    rc = cairn_write_batch(r->db, wr, n, &ver);
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            atomic_store(&r->ks[ids[i]].cur, st[i]);
            atomic_store(&r->ks[ids[i]].pending, 0);
            atomic_store(&r->ks[ids[i]].owner, 0);
        }
        uint32_t j = rnd_below(&w->rng, (uint32_t)n);
        remember(w, ids[j], st[j], ver);
    }
out:
    unlock_keys(r, ids, n);
    for (size_t i = 0; i < n; i++)
        free(vals[i]);
    return rc < 0 ? op_error(r, "batch", ids[0], rc) : 0;
}

/* A transaction on 1..5 keys: read each (it must be cur), write some, read
 * its own writes back, then commit (or, for OP_ABORT, abort and check that
 * nothing changed). Snapshot or serializable at random. */
static int op_txn(worker *w, bool abort_it)
{
    run *r = w->r;
    const char *op = abort_it ? "abort" : "txn";
    uint32_t ids[MAX_GROUP], st[MAX_GROUP] = {0};
    bool wrote[MAX_GROUP] = {0};
    size_t n = pick_keys(w, ids, 1 + rnd_below(&w->rng, 5));
    int rc = 0, found = 0;
    lock_keys(r, ids, n);
    if (any_unsettled(r, ids, n)) {
        unlock_keys(r, ids, n);
        return 0;
    }
    cairn_txn_options to = {0};
    to.isolation = rnd_below(&w->rng, 2) ? CAIRN_ISOLATION_SERIALIZABLE
                                         : CAIRN_ISOLATION_SNAPSHOT;
    cairn_txn *t = NULL;
    rc = cairn_txn_begin(r->db, &to, &t);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n && found == 0; i++)
        found = check_key(w, op, t, ids[i], atomic_load(&r->ks[ids[i]].cur));
    if (found != 0) {
        cairn_txn_abort(t);
        rc = found < 0 ? found : 0;
        goto out_nocheck;
    }
    size_t nw = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 == n && nw == 0)
            wrote[i] = true;
        else
            wrote[i] = rnd_below(&w->rng, 3) != 0;
        if (!wrote[i])
            continue;
        nw++;
        bool del = rnd_below(&w->rng, 6) == 0;
        st[i] = next_state(r, ids[i], del);
        char k[KEY_LEN + 1];
        key_of(ids[i], k);
        if (del) {
            rc = cairn_txn_delete(t, k, KEY_LEN);
        } else {
            val_fill(w->vbuf, ids[i], st_gen(st[i]));
            rc = cairn_txn_put(t, k, KEY_LEN, w->vbuf,
                               val_len(ids[i], st_gen(st[i])));
        }
        if (rc < 0) {
            cairn_txn_abort(t);
            goto out;
        }
        found = check_key(w, op, t, ids[i], st[i]); /* its own write */
        if (found != 0) {
            cairn_txn_abort(t);
            rc = found < 0 ? found : 0;
            goto out_nocheck;
        }
    }
    if (abort_it) {
        cairn_txn_abort(t);
        for (size_t i = 0; i < n && found == 0; i++)
            found = check_key(w, op, NULL, ids[i],
                              atomic_load(&r->ks[ids[i]].cur));
        rc = found < 0 ? found : 0;
        goto out_nocheck;
    }
    for (size_t i = 0; i < n; i++)
        if (wrote[i]) {
            atomic_store(&r->ks[ids[i]].owner, (uint32_t)w->idx + 1);
            atomic_store(&r->ks[ids[i]].pending, st[i]);
        }
    uint64_t ver = 0;
    rc = cairn_txn_commit(t, &ver);
    if (rc == CAIRN_ECONFLICT) {
        /* Every key it read or wrote is locked here: nothing could
         * conflict with it. */
        atomic_fetch_add(&r->conflicts, 1);
        for (size_t i = 0; i < n; i++)
            if (wrote[i]) {
                atomic_store(&r->ks[ids[i]].pending, 0);
                atomic_store(&r->ks[ids[i]].owner, 0);
            }
        unlock_keys(r, ids, n);
        pthread_mutex_lock(&r->print_lock);
        fprintf(stderr, "cairn-stress: DISCREPANCY in txn: a conflict on "
                        "keys no other thread touched\n");
        pthread_mutex_unlock(&r->print_lock);
        atomic_fetch_add(&r->failed, 1);
        atomic_store(&r->stop, true);
        return 1;
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            if (wrote[i]) {
                atomic_store(&r->ks[ids[i]].cur, st[i]);
                atomic_store(&r->ks[ids[i]].pending, 0);
                atomic_store(&r->ks[ids[i]].owner, 0);
                remember(w, ids[i], st[i], ver);
            }
    }
out:
    unlock_keys(r, ids, n);
    return rc < 0 ? op_error(r, op, ids[0], rc) : 0;
out_nocheck:
    unlock_keys(r, ids, n);
    if (rc < 0)
        return op_error(r, op, ids[0], rc);
    return found;
}

/* A range of 1..48 keys read through an iterator whose snapshot is taken
 * under the keys' locks: after they are let go, the iterator must still
 * show exactly the states copied then, forward or backward. */
static int op_scan(worker *w)
{
    run *r = w->r;
    /* At most 48 keys: a thread holds at most 64 mutexes under TSan, and
     * the engine takes some of its own while these are held. */
    uint32_t len = 1 + rnd_below(&w->rng, 48);
    if (len > r->nkeys)
        len = r->nkeys;
    uint32_t a = rnd_below(&w->rng, r->nkeys - len + 1);
    uint32_t exp[48];
    char lo[KEY_LEN + 1], hi[KEY_LEN + 1];
    key_of(a, lo);
    key_of(a + len, hi);
    for (uint32_t i = 0; i < len; i++)
        pthread_mutex_lock(&r->locks[a + i]);
    for (uint32_t i = 0; i < len; i++)
        exp[i] = atomic_load(&r->ks[a + i].cur);
    cairn_iter_options io = {0};
    io.lower = lo;
    io.lower_len = KEY_LEN;
    io.upper = hi;
    io.upper_len = KEY_LEN;
    cairn_iter *it = NULL;
    int rc = cairn_iter_new(r->db, &io, &it);
    for (uint32_t i = len; i-- > 0;)
        pthread_mutex_unlock(&r->locks[a + i]);
    if (rc < 0)
        return op_error(r, "scan", a, rc);
    bool back = rnd_below(&w->rng, 2);
    /* next: the next id expected to be visited (forward: ascending). */
    int64_t next = back ? (int64_t)a + len - 1 : (int64_t)a;
    if (back)
        cairn_iter_last(it);
    else
        cairn_iter_first(it);
    int found = 0;
    while (cairn_iter_valid(it) && found == 0) {
        size_t kl = 0, vl = 0;
        const void *k = cairn_iter_key(it, &kl);
        const void *v = cairn_iter_value(it, &vl);
        uint32_t id;
        if (!key_parse(k, kl, &id) || id < a || id >= a + len ||
            (back ? (int64_t)id > next : (int64_t)id < next)) {
            discrepancy(r, "scan", a, 0, 0, 0,
                        "a key out of the range or out of order");
            found = 1;
            break;
        }
        /* the keys skipped over must be absent */
        while (next != (int64_t)id && found == 0) {
            uint32_t e = exp[next - a];
            if (!st_deleted(e)) {
                discrepancy(r, "scan", (uint32_t)next, e, 0, ST_ABSENT, NULL);
                found = 1;
            }
            next += back ? -1 : 1;
        }
        if (found)
            break;
        char why[160];
        uint32_t s = val_state(id, v, vl, why, sizeof why);
        if (s == 0) {
            discrepancy(r, "scan", id, exp[id - a], 0, 0, why);
            found = 1;
        } else if (!st_match(s, exp[id - a])) {
            discrepancy(r, "scan", id, exp[id - a], 0, s, NULL);
            found = 1;
        }
        next += back ? -1 : 1;
        if (back)
            cairn_iter_prev(it);
        else
            cairn_iter_next(it);
    }
    if (found == 0) {
        rc = cairn_iter_status(it);
        if (rc < 0) {
            cairn_iter_free(it);
            return op_error(r, "scan", a, rc);
        }
        for (; found == 0 && next >= (int64_t)a && next < (int64_t)a + len;
             next += back ? -1 : 1) {
            uint32_t e = exp[next - a];
            if (!st_deleted(e)) {
                discrepancy(r, "scan", (uint32_t)next, e, 0, ST_ABSENT, NULL);
                found = 1;
            }
        }
    }
    cairn_iter_free(it);
    return found;
}

/* Take a read-only snapshot of a few keys (their states copied under the
 * locks), or check the one held: it must still read the copied states. */
static int op_snapshot(worker *w)
{
    run *r = w->r;
    if (w->snap) {
        int found = 0;
        for (size_t i = 0; i < w->snap_n && found == 0; i++)
            found = check_key(w, "snapshot", w->snap, w->snap_keys[i],
                              w->snap_st[i]);
        cairn_txn_abort(w->snap);
        w->snap = NULL;
        return found;
    }
    w->snap_n = pick_keys(w, w->snap_keys, 1 + rnd_below(&w->rng, MAX_GROUP));
    lock_keys(r, w->snap_keys, w->snap_n);
    for (size_t i = 0; i < w->snap_n; i++)
        w->snap_st[i] = atomic_load(&r->ks[w->snap_keys[i]].cur);
    cairn_txn_options to = {0};
    to.read_only = true;
    int rc = cairn_txn_begin(r->db, &to, &w->snap);
    unlock_keys(r, w->snap_keys, w->snap_n);
    if (rc < 0) {
        w->snap = NULL;
        return op_error(r, "snapshot", w->snap_keys[0], rc);
    }
    return 0;
}

/* Read a key as of a version this thread wrote it at. */
static int op_timetravel(worker *w)
{
    run *r = w->r;
    if (w->ring_n == 0)
        return op_get(w);
    tt_entry e = w->ring[rnd_below(&w->rng, (uint32_t)w->ring_n)];
    if (e.version == 0)
        return 0;
    char k[KEY_LEN + 1];
    key_of(e.key, k);
    void *v = NULL;
    size_t vl = 0;
    int rc = cairn_get_at_version(r->db, k, KEY_LEN, e.version, &v, &vl);
    if (rc == CAIRN_EHISTORY) {
        atomic_fetch_add(&r->history_misses, 1);
        return 0;
    }
    uint32_t a = ST_ABSENT;
    char why[160];
    if (rc == 0) {
        a = val_state(e.key, v, vl, why, sizeof why);
        cairn_free(v);
        if (a == 0) {
            discrepancy(r, "time-travel", e.key, e.st, 0, 0, why);
            return 1;
        }
    } else if (rc != CAIRN_ENOTFOUND) {
        return op_error(r, "time-travel", e.key, rc);
    }
    if (!st_match(a, e.st)) {
        discrepancy(r, "time-travel", e.key, e.st, 0, a, NULL);
        return 1;
    }
    return 0;
}

/* List a key's versions: the newest is cur, versions strictly decrease,
 * every value is whole, generations decrease with them. */
static int op_versions(worker *w)
{
    run *r = w->r;
    uint32_t key = rnd_below(&w->rng, r->nkeys);
    char k[KEY_LEN + 1];
    key_of(key, k);
    pthread_mutex_lock(&r->locks[key]);
    uint32_t exp = atomic_load(&r->ks[key].cur);
    cairn_key_version *v = NULL;
    size_t n = 0;
    int rc = cairn_key_versions(r->db, k, KEY_LEN, 8, &v, &n);
    pthread_mutex_unlock(&r->locks[key]);
    if (rc < 0)
        return op_error(r, "versions", key, rc);
    int found = 0;
    uint32_t prev_gen = UINT32_MAX;
    for (size_t i = 0; i < n && found == 0; i++) {
        uint32_t a = ST_ABSENT;
        char why[160];
        if (!v[i].deleted) {
            a = val_state(key, v[i].value, v[i].vlen, why, sizeof why);
            if (a == 0) {
                discrepancy(r, "versions", key, exp, 0, 0, why);
                found = 1;
                break;
            }
            if (st_gen(a) >= prev_gen) {
                discrepancy(r, "versions", key, exp, 0, a,
                            "generations not decreasing with versions");
                found = 1;
                break;
            }
            prev_gen = st_gen(a);
        }
        if (i > 0 && v[i].version != 0 && v[i].version >= v[i - 1].version) {
            discrepancy(r, "versions", key, exp, 0, a,
                        "versions not strictly decreasing");
            found = 1;
        }
        if (i == 0 && !st_match(a, exp)) {
            discrepancy(r, "versions", key, exp, 0, a, NULL);
            found = 1;
        }
    }
    if (n == 0 && !st_deleted(exp)) {
        discrepancy(r, "versions", key, exp, 0, ST_ABSENT, "no version");
        found = 1;
    }
    cairn_key_versions_free(v, n);
    return found;
}

/* ---- time series: one series per thread ----
 * Thread t owns series "ts<t>"; its point i (from 1) is at i seconds, with
 * a value that follows from (t, i). The expected state of the series is
 * the kstate after the keys, ks[nkeys + t]: cur = points acknowledged,
 * pending = points of the write in flight (one commit: all or none). */

static double ts_value(int t, uint32_t i)
{
    double v = (double)(((uint32_t)t * 1000003u + i * 7u) % 100000u);
    return i % 5 == 0 ? v + 0.25 : v;
}

static void ts_name(int t, char out[16])
{
    snprintf(out, 16, "ts%d", t);
}

#define TS_ROLL_BUCKET 10000
#define TS_ROLL_RETENTION 600000

static void ts_roll_name(int t, char out[24])
{
    snprintf(out, 24, "ts%d.sum", t);
}

/* The rollup of points 1..n of thread t's series against what the
 * destination holds: 0 or a description in why. */
static int ts_check_rollup(cairn_db *db, int t, uint32_t n, char *why,
                           size_t wl)
{
    char name[24];
    ts_roll_name(t, name);
    cairn_ts_point *p = NULL;
    size_t got = 0;
    int rc = cairn_ts_range(db, name, strlen(name), INT64_MIN, INT64_MAX, &p,
                            &got);
    if (rc < 0) {
        snprintf(why, wl, "rollup %s: %s", name, cairn_strerror(rc));
        return 1;
    }
    /* Buckets of 10 points: bucket k holds points 10k..10k+9 (point i at
     * i s); the bucket of point n is open. */
    uint32_t open_k = n / 10, first_k = 0;
    if (open_k > 0) {
        int64_t newest = (int64_t)(open_k - 1) * TS_ROLL_BUCKET;
        int64_t keep = newest - TS_ROLL_RETENTION;
        first_k = keep > 0 ? (uint32_t)(keep / TS_ROLL_BUCKET) : 0;
    }
    size_t want = open_k > first_k ? open_k - first_k : 0;
    int bad = 0;
    if (got != want) {
        snprintf(why, wl, "rollup %s: %zu buckets, not %zu (%" PRIu32
                          " points)", name, got, want, n);
        bad = 1;
    }
    for (size_t j = 0; !bad && j < got; j++) {
        uint32_t k = first_k + (uint32_t)j;
        double sum = 0;
        for (uint32_t i = k == 0 ? 1 : k * 10; i < k * 10 + 10 && i <= n; i++)
            sum += ts_value(t, i);
        if (p[j].ts != (int64_t)k * TS_ROLL_BUCKET || p[j].v != sum) {
            snprintf(why, wl, "rollup %s: bucket %zu is (%" PRId64 ", %g), "
                              "not (%" PRId64 ", %g)", name, j, p[j].ts,
                     p[j].v, (int64_t)k * TS_ROLL_BUCKET, sum);
            bad = 1;
        }
    }
    cairn_free(p);
    return bad;
}

/* Thread t's series, its rollup and the rule, in one transaction (or
 * nothing, when the series exists). */
static int ts_setup(cairn_db *db, int t)
{
    char name[16], roll[24];
    ts_name(t, name);
    ts_roll_name(t, roll);
    for (int attempt = 0; attempt < 1000; attempt++) {
        cairn_txn *txn = NULL;
        int rc = cairn_txn_begin(db, NULL, &txn);
        if (rc)
            return rc;
        cairn_ts_options tso;
        cairn_ts_options_init(&tso);
        tso.chunk_size = 256; /* small: a short run seals many chunks */
        rc = cairn_ts_create_ex(db, txn, name, strlen(name), &tso);
        if (rc == 0) {
            tso.retention_ms = TS_ROLL_RETENTION;
            rc = cairn_ts_create_ex(db, txn, roll, strlen(roll), &tso);
        }
        if (rc == 0)
            rc = cairn_ts_create_rule(db, txn, name, strlen(name), roll,
                                      strlen(roll), CAIRN_TS_AGG_SUM,
                                      TS_ROLL_BUCKET, 0, NULL, 0);
        if (rc == 0) {
            rc = cairn_txn_commit(txn, NULL);
        } else {
            cairn_txn_abort(txn);
        }
        if (rc != CAIRN_ECONFLICT)
            return rc == CAIRN_EEXIST ? 0 : rc;
        /* Another thread's creation took the id counter: back off. */
        struct timespec d = {0, 50000L * (1 + (attempt % 16) + t % 4)};
        nanosleep(&d, NULL);
    }
    return CAIRN_ECONFLICT;
}

/* Check points (n of them, from index first) against the series' model;
 * 0 or a description in why. */
static int ts_check(int t, const cairn_ts_point *p, size_t n, uint32_t first,
                    char *why, size_t wl)
{
    for (size_t j = 0; j < n; j++) {
        uint32_t i = first + (uint32_t)j;
        double want = ts_value(t, i);
        if (p[j].ts != (int64_t)i * 1000 ||
            memcmp(&p[j].v, &want, sizeof want) != 0) {
            snprintf(why, wl, "point %zu is (%" PRId64 ", %g), not (%" PRId64
                              ", %g)", j, p[j].ts, p[j].v,
                     (int64_t)i * 1000, want);
            return 1;
        }
    }
    return 0;
}

static int op_ts_add(worker *w)
{
    run *r = w->r;
    kstate *st = &r->ks[r->nkeys + (uint32_t)w->idx];
    char name[16];
    ts_name(w->idx, name);
    uint32_t n0 = atomic_load(&st->cur);
    uint32_t k = 1 + rnd_below(&w->rng, 20);
    cairn_ts_sample smp[20];
    int res[20];
    for (uint32_t j = 0; j < k; j++)
        smp[j] = (cairn_ts_sample){name, strlen(name),
                                   (int64_t)(n0 + 1 + j) * 1000,
                                   ts_value(w->idx, n0 + 1 + j)};
    atomic_store(&st->pending, k);
    int rc = cairn_ts_add_many(r->db, smp, k, res);
    for (uint32_t j = 0; rc == 0 && j < k; j++)
        rc = res[j];
    if (rc < 0)
        return op_error(r, "ts-add", 0, rc);
    atomic_store(&st->cur, n0 + k);
    atomic_store(&st->pending, 0);
    return 0;
}

static int op_ts_range(worker *w)
{
    run *r = w->r;
    kstate *st = &r->ks[r->nkeys + (uint32_t)w->idx];
    char name[16];
    ts_name(w->idx, name);
    uint32_t n = atomic_load(&st->cur);
    uint32_t a = 1 + rnd_below(&w->rng, n ? n : 1);
    uint32_t b = a + rnd_below(&w->rng, 300);
    cairn_ts_point *p = NULL;
    size_t got = 0;
    int rc = cairn_ts_range(r->db, name, strlen(name), (int64_t)a * 1000,
                            (int64_t)b * 1000, &p, &got);
    if (rc < 0)
        return op_error(r, "ts-range", 0, rc);
    size_t want = a > n ? 0 : (b < n ? b : n) - a + 1;
    char why[160] = "";
    int bad = got != want;
    if (bad)
        snprintf(why, sizeof why, "%zu points, not %zu", got, want);
    else
        bad = ts_check(w->idx, p, got, a, why, sizeof why);
    cairn_free(p);
    if (bad) {
        pthread_mutex_lock(&r->print_lock);
        fprintf(stderr, "cairn-stress: DISCREPANCY in ts-range: series %s, "
                        "points %" PRIu32 "..%" PRIu32 ": %s\n", name, a, b,
                why);
        pthread_mutex_unlock(&r->print_lock);
        atomic_fetch_add(&r->failed, 1);
        atomic_store(&r->stop, true);
        return 1;
    }
    return 0;
}

/* After a reopen: each thread's series holds exactly its acknowledged
 * points, or those and the whole write in flight. */
static int verify_ts(const stress_cfg *cfg, cairn_db *db, kstate *ts,
                     const char *when, bool fixup)
{
    int failed = 0;
    for (int t = 0; t < cfg->threads; t++) {
        char name[16];
        ts_name(t, name);
        uint32_t cur = atomic_load(&ts[t].cur);
        uint32_t pend = atomic_load(&ts[t].pending);
        cairn_ts_point *p = NULL;
        size_t n = 0;
        int rc = cairn_ts_range(db, name, strlen(name), INT64_MIN, INT64_MAX,
                                &p, &n);
        char why[160] = "";
        if (rc == CAIRN_ENOTFOUND && cur == 0) {
            n = 0;
        } else if (rc < 0) {
            snprintf(why, sizeof why, "%s", cairn_strerror(rc));
        } else if (n != cur && n != (size_t)cur + pend) {
            snprintf(why, sizeof why, "%zu points, not %" PRIu32 "%s", n, cur,
                     pend ? " or with the write in flight" : "");
        } else if (!ts_check(t, p, n, 1, why, sizeof why)) {
            ts_check_rollup(db, t, (uint32_t)n, why, sizeof why);
        }
        cairn_free(p);
        if (why[0]) {
            fprintf(stderr, "cairn-stress: DISCREPANCY %s: series %s: %s\n",
                    when, name, why);
            failed = 1;
        } else if (fixup) {
            atomic_store(&ts[t].cur, (uint32_t)n);
            atomic_store(&ts[t].pending, 0);
        }
    }
    return failed;
}

static bool time_is_up(run *r)
{
    if (atomic_load(&r->stop))
        return true;
    if (r->fenv) {
        /* Power or fault cycles: 50 ms after the first fault, stop (the
         * threads that only read would not notice it). */
        uint64_t t = atomic_load(&r->fault_seen_ns), now = now_ns();
        if (t == 0 && (cairn_env_fault_injected(r->fenv) > 0 ||
                       cairn_env_fault_power_is_cut(r->fenv))) {
            uint64_t zero = 0;
            atomic_compare_exchange_strong(&r->fault_seen_ns, &zero, now);
            t = atomic_load(&r->fault_seen_ns);
        }
        if (t && now > t + 50000000ull)
            return true;
    }
    if (r->ops_limit && atomic_load(&r->ops_done) >= r->ops_limit)
        return true;
    if (r->deadline_ns && now_ns() >= r->deadline_ns)
        return true;
    return false;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    run *r = w->r;
    int crc = ts_setup(r->db, w->idx);
    if (crc < 0) {
        (void)op_error(r, "ts-create", 0, crc);
        return NULL;
    }
    while (!time_is_up(r)) {
        uint32_t dice = rnd_below(&w->rng, 1000);
        int op, rc;
        if (dice < 260) {
            op = OP_PUT;
            rc = op_write_one(w, false);
        } else if (dice < 320) {
            op = OP_DELETE;
            rc = op_write_one(w, true);
        } else if (dice < 560) {
            op = OP_GET;
            rc = op_get(w);
        } else if (dice < 630) {
            op = OP_BATCH;
            rc = op_batch(w);
        } else if (dice < 720) {
            op = OP_TXN;
            rc = op_txn(w, false);
        } else if (dice < 740) {
            op = OP_ABORT;
            rc = op_txn(w, true);
        } else if (dice < 800) {
            op = OP_SCAN;
            rc = op_scan(w);
        } else if (dice < 850) {
            op = OP_SNAPSHOT;
            rc = op_snapshot(w);
        } else if (dice < 940) {
            op = OP_TIMETRAVEL;
            rc = op_timetravel(w);
        } else if (dice < 970) {
            op = OP_VERSIONS;
            rc = op_versions(w);
        } else if (dice < 988) {
            op = OP_TS_ADD;
            rc = op_ts_add(w);
        } else if (dice < 998) {
            op = OP_TS_RANGE;
            rc = op_ts_range(w);
        } else if (dice < 999 || w->idx != 0 || rnd_below(&w->rng, 20)) {
            op = OP_FLUSH;
            rc = cairn_flush(r->db);
            if (rc < 0)
                rc = op_error(r, "flush", 0, rc);
        } else {
            op = OP_COMPACT;
            rc = cairn_compact(r->db, NULL, NULL);
            if (rc < 0)
                rc = op_error(r, "compact", 0, rc);
        }
        if (rc != 0)
            break;
        atomic_fetch_add(&r->counts[op], 1);
        atomic_fetch_add(&r->ops_done, 1);
        if (r->shared_ops)
            atomic_fetch_add(r->shared_ops, 1);
    }
    if (w->snap) {
        cairn_txn_abort(w->snap);
        w->snap = NULL;
    }
    return NULL;
}

/* Run the workload threads until time, op count, stop or (power mode)
 * their errors end them. Returns 0 when they ended without finding. */
static int run_workers(run *r, uint64_t seed)
{
    int nt = r->cfg->threads;
    worker *ws = calloc((size_t)nt, sizeof *ws);
    if (!ws)
        return 2;
    int made = 0;
    for (int i = 0; i < nt; i++) {
        ws[i].r = r;
        ws[i].idx = i;
        ws[i].rng = seed * 0x9E3779B97F4A7C15ULL + (uint64_t)i * 7919 + 1;
        ws[i].vbuf = malloc(VAL_MAX);
        if (!ws[i].vbuf || pthread_create(&ws[i].tid, NULL, worker_main,
                                          &ws[i]) != 0) {
            atomic_store(&r->stop, true);
            free(ws[i].vbuf);
            break;
        }
        made++;
    }
    for (int i = 0; i < made; i++) {
        pthread_join(ws[i].tid, NULL);
        free(ws[i].vbuf);
    }
    free(ws);
    return made == nt ? 0 : 2;
}

/* ---- verification after a reopen ---- */

typedef struct verify_result {
    uint64_t present;      /* keys with a value */
    uint64_t pending;      /* keys with a write in flight at the crash */
    uint64_t pending_new;  /* ... that came back written */
    int failed;
} verify_result;

/* Check every key against cur/pending, the keys of each multi-key write
 * all old or all new, then a full scan; then make what was found the
 * expected state. */
/* The blob store's reference counts against a recount from the tree (no
 * writer runs): equal, and no referenced blob missing. The recount is
 * exact only while no flush or compaction moves references between a
 * memtable and a file under it, and one may run in the background after
 * a reopen: a difference is checked again (up to 20 times, 50 ms apart),
 * and only one that stays is a finding. Returns 1 on a finding. */
static int verify_blob_counts(cairn_db *db, const char *when)
{
    cairn_blob_check_report rep;
    int rc = 0;
    for (int attempt = 0; attempt < 20; attempt++) {
        rc = cairn_blob_check(db, false, &rep);
        if (rc != CAIRN_ECORRUPT || rep.missing)
            break;
        struct timespec d = {0, 50000000};
        nanosleep(&d, NULL);
    }
    if (rc == 0)
        return 0;
    fprintf(stderr, "cairn-stress: DISCREPANCY %s: blob references: %s "
                    "(%" PRIu64 " counts differ, %" PRIu64 " missing)\n",
            when, rep.first_error[0] ? rep.first_error : cairn_strerror(rc),
            rep.mismatched, rep.missing);
    return 1;
}

static verify_result verify_all(const stress_cfg *cfg, cairn_db *db,
                                kstate *ks, uint32_t nkeys, const char *when,
                                bool fixup)
{
    verify_result vr = {0};
    int nt = cfg->threads;
    /* per owner: 1 = saw an old key, 2 = saw a new key */
    int *group = calloc((size_t)nt + 1, sizeof *group);
    uint32_t *found = calloc(nkeys, sizeof *found);
    if (!group || !found) {
        fprintf(stderr, "cairn-stress: out of memory\n");
        free(group);
        free(found);
        vr.failed = 1;
        return vr;
    }
    for (uint32_t key = 0; key < nkeys; key++) {
        uint32_t cur = atomic_load(&ks[key].cur);
        uint32_t pend = atomic_load(&ks[key].pending);
        uint32_t owner = atomic_load(&ks[key].owner);
        char why[160], k[KEY_LEN + 1], e[64], p[64], a[64];
        int rc;
        uint32_t st = read_state(db, NULL, key, &rc, why, sizeof why);
        key_of(key, k);
        if (rc < 0) {
            if (++vr.failed <= 20)
                fprintf(stderr, "cairn-stress: %s: reading key %s: %s\n",
                        when, k, cairn_strerror(rc));
            continue;
        }
        if (st == 0) {
            st_describe(cur, e, sizeof e);
            if (++vr.failed <= 20)
                fprintf(stderr, "cairn-stress: DISCREPANCY %s: key %s: "
                                "expected %s, got %s\n", when, k, e, why);
            continue;
        }
        bool old_ok = st_match(st, cur);
        bool new_ok = pend != 0 && st_match(st, pend);
        if (!old_ok && !new_ok) {
            st_describe(cur, e, sizeof e);
            st_describe(pend, p, sizeof p);
            st_describe(st, a, sizeof a);
            if (++vr.failed <= 20)
                fprintf(stderr, "cairn-stress: DISCREPANCY %s: key %s: "
                                "expected %s%s%s, got %s%s\n", when, k, e,
                        pend ? " or " : "", pend ? p : "", a,
                        pend ? "" : " (an acknowledged write is lost or a "
                                    "stranger came back)");
            continue;
        }
        if (pend) {
            vr.pending++;
            if (new_ok && !old_ok)
                vr.pending_new++;
            if (owner > 0 && owner <= (uint32_t)nt && old_ok != new_ok)
                group[owner] |= new_ok ? 2 : 1;
        }
        found[key] = new_ok ? pend : cur;
    }
    for (int t = 1; t <= nt; t++)
        if (group[t] == 3) {
            fprintf(stderr, "cairn-stress: DISCREPANCY %s: the multi-key "
                            "write of thread %d came back in part (some of "
                            "its keys old, some new)\n", when, t - 1);
            vr.failed = 1;
        }
    if (vr.failed > 20)
        fprintf(stderr, "cairn-stress: %s: %d keys wrong in all\n", when,
                vr.failed);
    /* Full scan: exactly the keys with values, each whole and as found
     * (after the gets passed: it would only repeat what they found). */
    cairn_iter *it = NULL;
    cairn_iter_options sio = {0};
    sio.prefix = "k"; /* the keys; the series live beside them */
    sio.prefix_len = 1;
    int rc = vr.failed ? 0 : cairn_iter_new(db, &sio, &it);
    if (vr.failed) {
    } else if (rc < 0) {
        fprintf(stderr, "cairn-stress: %s: iterator: %s\n", when,
                cairn_strerror(rc));
        vr.failed = 1;
    } else {
        uint64_t seen = 0;
        for (cairn_iter_first(it); cairn_iter_valid(it); cairn_iter_next(it)) {
            size_t kl = 0, vl = 0;
            const void *kp = cairn_iter_key(it, &kl);
            const void *v = cairn_iter_value(it, &vl);
            uint32_t id;
            char why[160];
            if (!key_parse(kp, kl, &id) || id >= nkeys) {
                fprintf(stderr, "cairn-stress: DISCREPANCY %s: the scan "
                                "shows a key that was never written (%zu "
                                "bytes)\n", when, kl);
                vr.failed = 1;
                break;
            }
            uint32_t s = val_state(id, v, vl, why, sizeof why);
            if (s == 0 || !st_match(s, found[id])) {
                char k[KEY_LEN + 1];
                key_of(id, k);
                fprintf(stderr, "cairn-stress: DISCREPANCY %s: the scan "
                                "disagrees with a get on key %s%s%s\n", when,
                        k, s == 0 ? ": " : "", s == 0 ? why : "");
                vr.failed = 1;
            }
            seen++;
        }
        rc = cairn_iter_status(it);
        if (rc < 0) {
            fprintf(stderr, "cairn-stress: %s: scan: %s\n", when,
                    cairn_strerror(rc));
            vr.failed = 1;
        }
        cairn_iter_free(it);
        uint64_t present = 0;
        for (uint32_t key = 0; key < nkeys; key++)
            present += !st_deleted(found[key]);
        if (seen != present && !vr.failed) {
            fprintf(stderr, "cairn-stress: DISCREPANCY %s: the scan shows "
                            "%" PRIu64 " keys, gets find %" PRIu64 "\n",
                    when, seen, present);
            vr.failed = 1;
        }
        vr.present = present;
    }
    if (!vr.failed && verify_ts(cfg, db, ks + nkeys, when, fixup))
        vr.failed = 1;
    if (!vr.failed && verify_blob_counts(db, when))
        vr.failed = 1;
    if (!vr.failed && fixup)
        for (uint32_t key = 0; key < nkeys; key++) {
            atomic_store(&ks[key].cur, found[key]);
            atomic_store(&ks[key].pending, 0);
            atomic_store(&ks[key].owner, 0);
        }
    free(group);
    free(found);
    return vr;
}

/* ---- modes ---- */

static void db_options(const stress_cfg *cfg, cairn_options *o,
                       struct cairn_env *env)
{
    cairn_options_init(o);
    o->sync_mode = cfg->sync;
    o->sync_interval_ms = 5;
    o->history_ms = cfg->history_ms;
    /* Small sizes so that a short run flushes and compacts many times. */
    o->memtable_size = 256 << 10;
    o->sst_target_file_size = 128 << 10;
    o->level_base_size = 512 << 10;
    o->l0_compaction_trigger = 3;
    o->wal_segment_size = 1 << 20;
    o->block_cache_size = 4 << 20;
    /* A row cache far smaller than the keys' values: entries come and go
     * (evicted, invalidated by writes) all the time. */
    o->row_cache_size = 256 << 10;
    /* Values from 4 KiB on go to the blob store, in small files (rotation,
     * sealing and GC all happen in a short run); from 32 KiB on in chunks. */
    o->blob_threshold = 4096;
    o->blob_chunk_threshold = 32u << 10;
    o->blob_file_size = 1u << 20;
    o->blob_gc_dead_fraction = 0.3;
    o->env = env;
}

static int init_run(run *r, const stress_cfg *cfg, kstate *ks)
{
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->ks = ks;
    r->nkeys = cfg->keys;
    r->locks = calloc(cfg->keys, sizeof *r->locks);
    if (!r->locks)
        return -1;
    for (uint32_t i = 0; i < cfg->keys; i++)
        pthread_mutex_init(&r->locks[i], NULL);
    pthread_mutex_init(&r->print_lock, NULL);
    return 0;
}

static void free_run(run *r)
{
    for (uint32_t i = 0; i < r->nkeys; i++)
        pthread_mutex_destroy(&r->locks[i]);
    free(r->locks);
    pthread_mutex_destroy(&r->print_lock);
}

static void print_counts(const run *r, double secs)
{
    uint64_t total = atomic_load(&r->ops_done);
    printf("cairn-stress: %" PRIu64 " operations in %.1f s (%.0f/s):", total,
           secs, secs > 0 ? (double)total / secs : 0.0);
    for (int i = 0; i < OP__COUNT; i++)
        printf(" %s %" PRIu64 "%s", op_names[i], atomic_load(&r->counts[i]),
               i + 1 < OP__COUNT ? "," : "\n");
}

static void print_engine(cairn_db *db)
{
    cairn_stats s;
    cairn_get_stats(db, &s);
    printf("cairn-stress: engine: %" PRIu64 " commits, %" PRIu64
           " flushes, %" PRIu64 " compactions, %" PRIu64 " log syncs;"
           " row cache %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64
           " evictions, %" PRIu64 " invalidations;"
           " files per level", s.commits, s.flushes, s.compactions,
           s.wal_syncs, s.row_cache_hits, s.row_cache_misses,
           s.row_cache_evictions, s.row_cache_invalidations);
    for (int l = 0; l < 8; l++)
        if (s.level_files[l])
            printf(" L%d:%" PRIu64, l, s.level_files[l]);
    printf("\n");
    printf("cairn-stress: blobs: %" PRIu64 " distinct in %" PRIu64
           " files (%" PRIu64 " bytes stored, %" PRIu64 " dead), %" PRIu64
           " dedup hits, %" PRIu64 " GC runs reclaimed %" PRIu64 " bytes\n",
           s.blob_distinct, s.blob_files, s.blob_stored_bytes,
           s.blob_dead_bytes, s.blob_dedup_hits, s.blob_gc_runs,
           s.blob_gc_bytes_reclaimed);
}

static int mode_run(const stress_cfg *cfg)
{
    kstate *ks = calloc((size_t)cfg->keys + (size_t)cfg->threads, sizeof *ks);
    run r;
    if (!ks || init_run(&r, cfg, ks) < 0) {
        fprintf(stderr, "cairn-stress: out of memory\n");
        free(ks);
        return 2;
    }
    cairn_options o;
    db_options(cfg, &o, NULL);
    int rc = cairn_open(cfg->dir, &o, &r.db);
    if (rc < 0) {
        fprintf(stderr, "cairn-stress: open %s: %s\n", cfg->dir,
                cairn_strerror(rc));
        free_run(&r);
        free(ks);
        return 2;
    }
    /* A database left by an earlier run: adopt what it holds. */
    verify_result vr = verify_all(cfg, r.db, ks, cfg->keys, "at open", true);
    int status = vr.failed ? 1 : 0;
    uint64_t t0 = now_ns();
    if (!status) {
        if (cfg->seconds > 0)
            r.deadline_ns = t0 + (uint64_t)(cfg->seconds * 1e9);
        r.ops_limit = cfg->ops;
        if (run_workers(&r, cfg->seed) != 0)
            status = 2;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    print_counts(&r, secs);
    print_engine(r.db);
    printf("cairn-stress: %" PRIu64 " time-travel reads out of the history "
           "window\n", atomic_load(&r.history_misses));
    if (atomic_load(&r.failed) || atomic_load(&r.errors))
        status = 1;
    rc = cairn_close(r.db);
    r.db = NULL;
    if (rc < 0 && status == 0) {
        fprintf(stderr, "cairn-stress: close: %s\n", cairn_strerror(rc));
        status = 1;
    }
    if (status == 0) {
        rc = cairn_open(cfg->dir, &o, &r.db);
        if (rc < 0) {
            fprintf(stderr, "cairn-stress: reopen: %s (%s)\n",
                    cairn_strerror(rc), cairn_open_error());
            status = 1;
        } else {
            vr = verify_all(cfg, r.db, ks, cfg->keys, "after reopen", true);
            if (vr.failed)
                status = 1;
            else
                printf("cairn-stress: after reopen: %" PRIu32 " keys "
                       "verified, %" PRIu64 " with values\n", cfg->keys,
                       vr.present);
            if (cairn_close(r.db) < 0 && status == 0)
                status = 1;
        }
    }
    free_run(&r);
    free(ks);
    return status;
}

/* The child of a crash cycle: open, run until killed. */
static int crash_child(const stress_cfg *cfg, kstate *ks, uint64_t seed,
                       _Atomic uint64_t *ops_out)
{
    run r;
    if (init_run(&r, cfg, ks) < 0)
        return 2;
    cairn_options o;
    db_options(cfg, &o, NULL);
    int rc = cairn_open(cfg->dir, &o, &r.db);
    if (rc < 0) {
        fprintf(stderr, "cairn-stress: child: open: %s (%s)\n",
                cairn_strerror(rc), cairn_open_error());
        return 3;
    }
    r.deadline_ns = now_ns() + 60ull * 1000000000ull; /* killed long before */
    r.shared_ops = ops_out;
    int status = run_workers(&r, seed);
    if (atomic_load(&r.failed) || atomic_load(&r.errors))
        status = 1;
    (void)cairn_close(r.db);
    return status ? status : 4; /* never reached in a normal cycle */
}

typedef struct shared_hdr {
    _Atomic uint64_t child_ops;
} shared_hdr;

static int mode_crash(const stress_cfg *cfg)
{
    size_t bytes = sizeof(shared_hdr) +
                   ((size_t)cfg->keys + (size_t)cfg->threads) * sizeof(kstate);
    void *mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("cairn-stress: mmap");
        return 2;
    }
    shared_hdr *hdr = mem;
    kstate *ks = (kstate *)((char *)mem + sizeof(shared_hdr));
    uint64_t rng = cfg->seed * 2654435761ULL + 17;
    uint64_t total_ops = 0, total_pending = 0, total_new = 0;
    uint64_t t0 = now_ns();
    cairn_options o;
    db_options(cfg, &o, NULL);
    /* Adopt what the directory holds. */
    cairn_db *db = NULL;
    int rc = cairn_open(cfg->dir, &o, &db);
    if (rc < 0) {
        fprintf(stderr, "cairn-stress: open %s: %s\n", cfg->dir,
                cairn_strerror(rc));
        return 2;
    }
    verify_result vr = verify_all(cfg, db, ks, cfg->keys, "at open", true);
    (void)cairn_close(db);
    if (vr.failed)
        return 1;
    for (int c = 1; c <= cfg->crash_cycles; c++) {
        atomic_store(&hdr->child_ops, 0);
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid < 0) {
            perror("cairn-stress: fork");
            return 2;
        }
        if (pid == 0)
            _exit(crash_child(cfg, ks, cfg->seed + (uint64_t)c * 1000003,
                              &hdr->child_ops));
        uint32_t delay;
        if (c % 5 == 0)
            delay = rnd_below(&rng, 15);
        else
            delay = (uint32_t)cfg->kill_min_ms +
                    rnd_below(&rng, (uint32_t)(cfg->kill_max_ms -
                                               cfg->kill_min_ms + 1));
        sleep_ms(delay);
        kill(pid, SIGKILL);
        int ws = 0;
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
        }
        if (WIFEXITED(ws)) {
            fprintf(stderr, "cairn-stress: cycle %d: the workload ended by "
                            "itself with status %d\n", c, WEXITSTATUS(ws));
            return 1;
        }
        total_ops += atomic_load(&hdr->child_ops);
        char when[64];
        snprintf(when, sizeof when, "after crash %d", c);
        db = NULL;
        rc = cairn_open(cfg->dir, &o, &db);
        if (rc < 0) {
            fprintf(stderr, "cairn-stress: %s: open: %s (%s)\n", when,
                    cairn_strerror(rc), cairn_open_error());
            return 1;
        }
        vr = verify_all(cfg, db, ks, cfg->keys, when, true);
        rc = cairn_close(db);
        if (vr.failed)
            return 1;
        if (rc < 0) {
            fprintf(stderr, "cairn-stress: %s: close: %s\n", when,
                    cairn_strerror(rc));
            return 1;
        }
        total_pending += vr.pending;
        total_new += vr.pending_new;
        if (!cfg->quiet && (c % 10 == 0 || c == cfg->crash_cycles))
            printf("cairn-stress: crash cycle %d/%d: killed after %" PRIu32
                   " ms, recovered and verified %" PRIu32 " keys (%" PRIu64
                   " with values); so far %" PRIu64 " operations, writes in "
                   "flight at the kills %" PRIu64 " (%" PRIu64 " came back)\n",
                   c, cfg->crash_cycles, delay, cfg->keys, vr.present,
                   total_ops, total_pending, total_new);
        fflush(stdout);
    }
    printf("cairn-stress: %d crash cycles in %.1f s, %" PRIu64 " operations, "
           "no acknowledged write lost, no partial write seen\n",
           cfg->crash_cycles, (double)(now_ns() - t0) / 1e9, total_ops);
    munmap(mem, bytes);
    return 0;
}

/* Power cuts (faults = false) or I/O errors (faults = true) on a memory
 * disk, one per cycle, under the running workload.
 *   - power: at a random I/O call power is cut (unsynced bytes lost, half
 *     the cycles tearing the last block); every call after fails. The
 *     threads stop at their first error.
 *   - faults: a random I/O call and the next 0..2 fail with EIO or (every
 *     other cycle) ENOSPC, a failing write writing part of its bytes.
 *     The threads stop at their first error; flushes and compactions
 *     that fail go on in the background. Once the threads are done and the
 *     disk works again, the open database must still read every key as
 *     acknowledged (or as the failed write left it); then it is closed.
 * Either way, the database is reopened on the same memory and verified
 * (every acknowledged write there, in-flight ones old or new, multi-key
 * writes whole). */
/* Copy every file under dir of env (the memory disk) into out, a real
 * directory, so that a failed check leaves its evidence: `cairn check`,
 * `cairn wal dump` and the rest can read it. Files first, then each entry
 * that lists as a directory. */
static void dump_tree(cairn_env *env, const char *dir, const char *out)
{
    char **names = NULL;
    size_t n = 0;
    if (mkdir(out, 0755) != 0 && errno != EEXIST)
        return;
    if (cairn_env_list_dir(env, dir, &names, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char src[1024], dst[1024];
        snprintf(src, sizeof src, "%s/%s", dir, names[i]);
        snprintf(dst, sizeof dst, "%s/%s", out, names[i]);
        char **sub = NULL;
        size_t ns = 0;
        if (cairn_env_list_dir(env, src, &sub, &ns) == 0) {
            cairn_env_free_list(sub, ns);
            dump_tree(env, src, dst);
            continue;
        }
        cairn_file *f = NULL;
        uint64_t size = 0;
        if (cairn_env_open(env, src, CAIRN_OPEN_READ, &f) != 0)
            continue;
        FILE *o = fopen(dst, "wb");
        if (o && cairn_file_size(f, &size) == 0) {
            static uint8_t buf[1 << 16];
            for (uint64_t off = 0; off < size;) {
                size_t got = 0;
                size_t want = size - off < sizeof buf ? (size_t)(size - off)
                                                      : sizeof buf;
                if (cairn_file_read_at(f, off, buf, want, &got) != 0 ||
                    got == 0 || fwrite(buf, 1, got, o) != got)
                    break;
                off += got;
            }
        }
        if (o)
            fclose(o);
        cairn_file_close(f);
    }
    cairn_env_free_list(names, n);
}

/* After a failed reopen or check of the memory disk: its files, for a
 * look with the tools. */
static void keep_evidence(const stress_cfg *cfg, cairn_env *mem)
{
    const char *tmp = getenv("TMPDIR");
    char out[512];
    snprintf(out, sizeof out, "%s/cairn-stress-failed-%" PRIu64,
             tmp && *tmp ? tmp : "/tmp", cfg->seed);
    dump_tree(mem, "/stress", out);
    fprintf(stderr, "cairn-stress: the disk's files are in %s (cairn check "
                    "%s)\n", out, out);
}

static int mode_cycles(const stress_cfg *cfg, bool faults)
{
    int cycles = faults ? cfg->fault_cycles : cfg->power_cycles;
    const char *what = faults ? "I/O error" : "power cut";
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *fenv = mem ? cairn_env_fault_new(mem) : NULL;
    kstate *ks = calloc((size_t)cfg->keys + (size_t)cfg->threads, sizeof *ks);
    if (!mem || !fenv || !ks) {
        fprintf(stderr, "cairn-stress: out of memory\n");
        return 2;
    }
    cairn_options o;
    db_options(cfg, &o, fenv);
    uint64_t rng = cfg->seed * 0x9E3779B97F4A7C15ULL + 5;
    uint64_t t0 = now_ns(), total_ops = 0, fired = 0, pend = 0, pnew = 0;
    uint64_t failed_ops = 0, readonly = 0;
    int status = 0;
    /* I/O calls a cycle makes (per --fault-path), learnt as we go. */
    uint64_t calls_seen[MAX_FAULT_PATHS];
    for (int i = 0; i < MAX_FAULT_PATHS; i++)
        calls_seen[i] = cfg->nfault_paths ? 400 : 4000;
    for (int c = 1; c <= cycles && status == 0; c++) {
        run r;
        if (init_run(&r, cfg, ks) < 0) {
            status = 2;
            break;
        }
        r.power_mode = true;
        r.fenv = fenv;
        int rc = cairn_open("/stress", &o, &r.db);
        char when[64];
        snprintf(when, sizeof when, "after %s %d", what, c - 1);
        if (rc < 0) {
            fprintf(stderr, "cairn-stress: %s: open: %s (%s)\n", when,
                    cairn_strerror(rc), cairn_open_error());
            keep_evidence(cfg, mem);
            free_run(&r);
            status = 1;
            break;
        }
        verify_result vr = verify_all(cfg, r.db, ks, cfg->keys, when, true);
        if (vr.failed) {
            (void)cairn_close(r.db);
            free_run(&r);
            status = 1;
            break;
        }
        pend += vr.pending;
        pnew += vr.pending_new;
        cairn_fault_rule rule = {0};
        int focus = cfg->nfault_paths
                        ? (int)(rnd(&rng) % (uint64_t)cfg->nfault_paths)
                        : 0;
        if (cfg->nfault_paths && cfg->fault_paths[focus][0])
            rule.path_substr = cfg->fault_paths[focus];
        uint64_t at = 1 + rnd(&rng) % (calls_seen[focus] + 1);
        rule.seed = rnd(&rng);
        if (faults) {
            rule.fail_at = at;
            rule.fail_count = 1 + rnd(&rng) % 3;
            rule.error = c & 1 ? CAIRN_ENOSPC : CAIRN_EIO;
            rule.short_write = rule.error == CAIRN_ENOSPC;
        } else {
            rule.power_cut_at = at;
            rule.torn = c & 1;
        }
        cairn_env_fault_set(fenv, &rule);
        /* The threads run until 50 ms after the fault (or the cut stops
         * them); a cycle with no fault by 2 s ends there (power: cut by
         * hand). */
        r.deadline_ns = now_ns() + 2000000000ull;
        if (run_workers(&r, rnd(&rng)) != 0)
            status = 2;
        uint64_t calls = cairn_env_fault_calls(fenv);
        if (calls > calls_seen[focus])
            calls_seen[focus] = calls;
        total_ops += atomic_load(&r.ops_done);
        if (atomic_load(&r.failed))
            status = 1;
        if (faults) {
            fired += cairn_env_fault_injected(fenv) > 0;
            failed_ops += atomic_load(&r.errors_expected);
            cairn_env_fault_reset(fenv);
            /* A failed log sync makes the database read-only: probe it
             * (with a key outside the key space). */
            if (status == 0 &&
                cairn_put(r.db, "probe", 5, "x", 1, NULL) == CAIRN_EREADONLY)
                readonly++;
            else if (status == 0)
                (void)cairn_delete(r.db, "probe", 5, NULL);
            snprintf(when, sizeof when, "after %s %d, before the close", what,
                     c);
            if (status == 0 &&
                verify_all(cfg, r.db, ks, cfg->keys, when, false).failed)
                status = 1;
            (void)cairn_close(r.db); /* may report the fault */
        } else {
            if (!cairn_env_fault_power_is_cut(fenv))
                (void)cairn_env_mem_power_loss(mem, c & 1, rule.seed);
            else
                fired++;
            (void)cairn_close(r.db); /* fails: the power is off */
            cairn_env_fault_reset(fenv);
        }
        free_run(&r);
        if (!cfg->quiet && (c % 10 == 0 || c == cycles))
            printf("cairn-stress: %s cycle %d/%d: %" PRIu64 " operations "
                   "so far; writes in flight at the faults: %" PRIu64 " (%"
                   PRIu64 " came back)\n", what, c, cycles, total_ops,
                   pend, pnew);
        fflush(stdout);
    }
    if (status == 0) {
        cairn_db *db = NULL;
        int rc = cairn_open("/stress", &o, &db);
        if (rc < 0) {
            fprintf(stderr, "cairn-stress: final open: %s (%s)\n",
                    cairn_strerror(rc), cairn_open_error());
            keep_evidence(cfg, mem);
            status = 1;
        } else {
            verify_result vr = verify_all(cfg, db, ks, cfg->keys,
                                          "after the last cycle", true);
            if (vr.failed)
                status = 1;
            if (cairn_close(db) < 0 && status == 0)
                status = 1;
        }
    }
    if (status == 0 && faults)
        printf("cairn-stress: %d cycles with I/O errors (%" PRIu64 " fired; "
               "%" PRIu64 " operations failed with the error, %" PRIu64
               " cycles left the database read-only) in %.1f s, %" PRIu64
               " operations, no acknowledged write lost, no partial write "
               "seen, every key readable after each error\n", cycles, fired,
               failed_ops, readonly, (double)(now_ns() - t0) / 1e9,
               total_ops);
    else if (status == 0)
        printf("cairn-stress: %d power cuts (%" PRIu64 " at a random I/O "
               "call, the rest by hand) in %.1f s, %" PRIu64 " operations, "
               "no acknowledged write lost, no partial write seen\n",
               cycles, fired, (double)(now_ns() - t0) / 1e9, total_ops);
    cairn_env_destroy(fenv);
    cairn_env_destroy(mem);
    free(ks);
    return status;
}

/* ---- command line ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: cairn-stress [options]\n"
        "  --dir PATH          database directory (default: a new one under\n"
        "                      $TMPDIR, removed after a clean pass)\n"
        "  --threads N         worker threads (8)\n"
        "  --keys N            key space (4000)\n"
        "  --seconds S         run time (10)\n"
        "  --ops N             stop after N operations (no limit)\n"
        "  --seed N            randomness (from the clock)\n"
        "  --sync MODE         always|interval|none (always)\n"
        "  --history-ms N      history window (2000)\n"
        "  --crash-cycles N    SIGKILL the workload N times, verify after each\n"
        "  --kill-ms MIN:MAX   delay before each kill (30:400)\n"
        "  --power-cycles N    cut power N times on a memory disk, verify after\n"
        "                      each\n"
        "  --fault-cycles N    fail I/O calls (EIO, ENOSPC) N times on a memory\n"
        "                      disk, verify before and after each reopen\n"
        "  --fault-path LIST   with --power-cycles / --fault-cycles: each cycle\n"
        "                      aims its fault at files whose path holds one\n"
        "                      of these comma-separated substrings, picked at\n"
        "                      random (\"any\": every call), e.g.\n"
        "                      any,MANIFEST,.sst,blob/,wal-,CURRENT\n"
        "  --quiet             no per-cycle progress lines\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static int rm_tree(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", path);
    return system(cmd);
}

int main(int argc, char **argv)
{
    stress_cfg cfg = {0};
    cfg.threads = 8;
    cfg.keys = 4000;
    cfg.seconds = 10;
    cfg.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    cfg.sync = CAIRN_SYNC_ALWAYS;
    cfg.history_ms = 2000;
    cfg.kill_min_ms = 30;
    cfg.kill_max_ms = 400;
    bool ops_given = false, secs_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--quiet")) {
            cfg.quiet = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "cairn-stress: %s needs a value\n", a);
            usage(stderr);
            return 2;
        }
        i++;
        if (!strcmp(a, "--dir")) {
            snprintf(cfg.dir, sizeof cfg.dir, "%s", v);
        } else if (!strcmp(a, "--sync")) {
            if (!strcmp(v, "always"))
                cfg.sync = CAIRN_SYNC_ALWAYS;
            else if (!strcmp(v, "interval"))
                cfg.sync = CAIRN_SYNC_INTERVAL;
            else if (!strcmp(v, "none"))
                cfg.sync = CAIRN_SYNC_NONE;
            else {
                fprintf(stderr, "cairn-stress: --sync: always, interval or "
                                "none, not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--seconds")) {
            char *end;
            cfg.seconds = strtod(v, &end);
            if (end == v || *end || cfg.seconds < 0) {
                fprintf(stderr, "cairn-stress: --seconds: '%s'\n", v);
                return 2;
            }
            secs_given = true;
        } else if (!strcmp(a, "--fault-path")) {
            snprintf(cfg.fault_path_buf, sizeof cfg.fault_path_buf, "%s", v);
            cfg.nfault_paths = 0;
            char *save = NULL, *tok = cfg.fault_path_buf;
            /* strsep keeps empty fields: "" (any call) is one. */
            while ((save = strsep(&tok, ",")) != NULL) {
                if (cfg.nfault_paths == MAX_FAULT_PATHS) {
                    fprintf(stderr, "cairn-stress: --fault-path: at most %d "
                                    "substrings\n", MAX_FAULT_PATHS);
                    return 2;
                }
                cfg.fault_paths[cfg.nfault_paths++] =
                    strcmp(save, "any") ? save : "";
            }
        } else if (!strcmp(a, "--kill-ms")) {
            int lo, hi;
            if (sscanf(v, "%d:%d", &lo, &hi) != 2 || lo < 0 || hi < lo) {
                fprintf(stderr, "cairn-stress: --kill-ms MIN:MAX, not '%s'\n",
                        v);
                return 2;
            }
            cfg.kill_min_ms = lo;
            cfg.kill_max_ms = hi;
        } else if (parse_u64(v, &n)) {
            if (!strcmp(a, "--threads") && n >= 1 && n <= 256)
                cfg.threads = (int)n;
            else if (!strcmp(a, "--keys") && n >= 1 && n <= 99999999)
                cfg.keys = (uint32_t)n;
            else if (!strcmp(a, "--ops")) {
                cfg.ops = n;
                ops_given = true;
            } else if (!strcmp(a, "--seed"))
                cfg.seed = n;
            else if (!strcmp(a, "--history-ms"))
                cfg.history_ms = n;
            else if (!strcmp(a, "--crash-cycles") && n <= 1000000)
                cfg.crash_cycles = (int)n;
            else if (!strcmp(a, "--power-cycles") && n <= 1000000)
                cfg.power_cycles = (int)n;
            else if (!strcmp(a, "--fault-cycles") && n <= 1000000)
                cfg.fault_cycles = (int)n;
            else {
                fprintf(stderr, "cairn-stress: unknown option or value out "
                                "of range: %s %s\n", a, v);
                usage(stderr);
                return 2;
            }
        } else {
            fprintf(stderr, "cairn-stress: unknown option or bad number: %s "
                            "%s\n", a, v);
            usage(stderr);
            return 2;
        }
    }
    if (ops_given && !secs_given)
        cfg.seconds = 0;
    if ((cfg.crash_cycles > 0) + (cfg.power_cycles > 0) +
            (cfg.fault_cycles > 0) > 1) {
        fprintf(stderr, "cairn-stress: --crash-cycles, --power-cycles and "
                        "--fault-cycles are separate runs\n");
        return 2;
    }
    if ((cfg.crash_cycles || cfg.power_cycles || cfg.fault_cycles) &&
        cfg.sync != CAIRN_SYNC_ALWAYS) {
        fprintf(stderr, "cairn-stress: crash and power cycles check that "
                        "acknowledged writes survive: they need --sync "
                        "always\n");
        return 2;
    }
    bool memdisk = cfg.power_cycles || cfg.fault_cycles;
    if (!cfg.dir[0] && !memdisk) {
        const char *tmp = getenv("TMPDIR");
        snprintf(cfg.dir, sizeof cfg.dir, "%s/cairn-stress-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(cfg.dir)) {
            perror("cairn-stress: mkdtemp");
            return 2;
        }
        cfg.own_dir = true;
    }
    printf("cairn-stress: seed %" PRIu64 ", %d threads, %" PRIu32 " keys%s%s\n",
           cfg.seed, cfg.threads, cfg.keys,
           memdisk ? ", memory disk" : ", directory ",
           memdisk ? "" : cfg.dir);
    fflush(stdout);
    int status;
    if (cfg.crash_cycles)
        status = mode_crash(&cfg);
    else if (cfg.power_cycles)
        status = mode_cycles(&cfg, false);
    else if (cfg.fault_cycles)
        status = mode_cycles(&cfg, true);
    else
        status = mode_run(&cfg);
    if (status == 0 && cfg.own_dir)
        rm_tree(cfg.dir);
    else if (cfg.own_dir)
        fprintf(stderr, "cairn-stress: the database is left in %s\n", cfg.dir);
    printf("cairn-stress: %s\n", status == 0 ? "PASS" : "FAIL");
    return status;
}
