/*
 * test_lsm_crash.c — power cuts and I/O errors at every step of flushes and
 * compactions: the database always reopens with every acknowledged commit,
 * no deleted key comes back, point reads agree with a full scan, and the
 * recovered database takes new writes and survives a clean close.
 *
 * The workload: one thread (sync=always, an 8 KiB memtable, 4 KiB files,
 * 512-byte blocks, a 16 KiB level 1, two level-0 files start a compaction,
 * history 0 so flush and compaction drop old versions and bottom-most
 * tombstones, 16 KiB log segments) runs a fixed, seeded list of 700 puts
 * and deletes (deletes of keys written earlier, so a resurrection shows)
 * through ~15 flushes and ~8 compactions (level 0 -> 1 and 1 -> 2; the
 * calibration run asserts it). After each write that fills the memtable,
 * the thread waits until the flush and the compactions it starts are done
 * and the background is idle, so runs make the same I/O calls in nearly
 * the same order (the engine's threads run beside it; the checks never
 * rely on that order, only the coverage report does).
 *
 * The I/O path: db -> trace env (this file) -> fault env -> memory env. The
 * trace env serializes every call (so its numbering is exactly the fault
 * env's), records op, path and calling thread of each, and tells the
 * threads apart by their first call: the test thread ("main": commits, and
 * the log replay's flushes in an open); the log's thread (wal/ files); on a
 * fresh database the first other thread to create an .sst file is the
 * flusher; any other is the compactor. So each cut is classified by where
 * it landed ("flush: write MANIFEST", "compaction: read sst", ...) and each
 * sweep prints that coverage in one line.
 *
 * The sweeps (each cycle starts from an empty memory env):
 *   1. power cut at global call k (torn and not torn alternately): by
 *      default every k from the first flush through the end of the first
 *      compaction plus every CAIRN_LSM_CRASH_STRIDE-th call elsewhere (a
 *      step the numbering missed is cut again through its file's name);
 *      the test asserts every call of that flush and that compaction was
 *      cut. With CAIRN_LSM_CRASH_FULL=1: every k, torn and not torn;
 *   2. power cut at the j-th call on a MANIFEST file (every j) and on an
 *      .sst file (every 5th j; every j when full): path rules land exactly
 *      on those steps whatever the threads do;
 *   3. power cut at each call of creating the database (the CURRENT.tmp
 *      write, sync, rename; the manifest rolls over nowhere else within
 *      reach of the public options), then reopen;
 *   4. a cut before the manifest edit of the 4th flush, then a second cut
 *      at each call of the recovery (replay, the flushes it makes, the
 *      compactions after), then each manifest call of it by name;
 *   5. I/O errors: call k fails once with CAIRN_EIO, then with CAIRN_ENOSPC
 *      (a failing write first writes part of its bytes); same plan as 1
 *      with 3x the stride. The failure must be reported: the op in flight
 *      fails, or a later write does (read-only), or
 *      cairn_get_stats().background_error shows it, or flush_failures
 *      counts it (a failed flush is retried a second later and, once one
 *      succeeds, background_error is 0 again) (unlinks and the log
 *      truncation after a flush are best effort: exempt). After each flush
 *      that follows the fault the live database is checked against the
 *      model (so a loss shows before later writes hide it); at the end it
 *      is closed, power is cut, and it is reopened and checked.
 * The check (after each crash, power cut by hand if the rule did not
 * fire): reopen, cairn_get of every key against the model (the write in
 * flight, or a write that failed, may or may not be there; nothing else),
 * a full cairn_txn_scan must return exactly what the reads did; then 16
 * new writes, a clean close, a reopen and the same check again.
 *
 * Knobs: CAIRN_LSM_CRASH_FULL=1 (exhaustive: ~3 minutes),
 * CAIRN_LSM_CRASH_STRIDE (default 7), CAIRN_TEST_SEED; for debugging
 * CAIRN_LSM_CRASH_ONLY=k (only cut/fail number k in every sweep),
 * CAIRN_LSM_CRASH_VERBOSE=1 (a line per cycle), CAIRN_LSM_CRASH_DUMP=1
 * (the calls around each hit).
 *
 * Locking: the test is single-threaded; the trace env's mutex is held
 * across every forwarded call (so calls from the engine's threads are
 * serialized and numbered in one order) and guards its log and counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "cairn.h"
#include "env/env.h"
#include "test_util.h"

#define NKEYS 160
#define KLEN 8 /* "key%05d" */
#define MINV 16
#define MAXV 300
#define NOPS 700
#define EXTRA_OPS 16

#define MEMTABLE_SIZE (8 * 1024)
#define SST_TARGET (4 * 1024)
#define LEVEL_BASE (16 * 1024)
#define L0_TRIGGER 2
#define NUM_LEVELS 7 /* the engine's default */

#define DBDIR "/db"

static bool g_verbose;
static int g_fail_prints; /* failed cycles printed in this sweep */
static bool g_dump; /* CAIRN_LSM_CRASH_DUMP: print the calls around hits */
static char g_msg[1024];

/* ======================================================================
 * The trace env
 * ====================================================================== */

enum { ROLE_FG, ROLE_WAL, ROLE_FLUSH, ROLE_COMPACT, ROLE__N };
static const char *const role_name[ROLE__N] = {"main", "log thread",
                                               "flush", "compaction"};

enum { PC_WAL, PC_SST, PC_MANIFEST, PC_CURRENT, PC_DIR, PC_OTHER, PC__N };
static const char *const pc_name[PC__N] = {"wal", "sst", "MANIFEST",
                                           "CURRENT", "dir", "other"};

typedef struct trec {
    uint8_t op, role, pc;
    int32_t rc;
    uint32_t epoch;  /* the workload op running when the call came */
    uint32_t mnum;   /* number among the calls matching the rule, 0: none */
    char path[48];   /* the tail of the (first) path */
} trec;

#define MAX_THREADS 8

typedef struct tenv {
    cairn_env base;
    cairn_env *inner; /* the fault env */
    pthread_mutex_t mu;
    pthread_t main_thread;
    struct {
        pthread_t id;
        int role;
    } th[MAX_THREADS];
    int nth;
    bool have_flusher; /* true: no thread is taken for the flusher */
    uint32_t epoch;
    /* Mirror of the fault rule's selection. */
    uint32_t op_mask;
    char substr[32];
    uint64_t matched;
    uint64_t log_writes; /* writes to the log by commits (never reset) */
    trec *log;
    size_t nlog, caplog;
    bool busy;
    uint64_t last_ns; /* end of the last call */
} tenv;

typedef struct tfile_ {
    cairn_file base;
    cairn_file *inner;
    char path[128];
} tfile_;

static const cairn_env_ops trace_ops;

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int path_class(cairn_env_op op, const char *p)
{
    if (!p)
        return PC_OTHER;
    if (strstr(p, "/wal"))
        return PC_WAL;
    if (strstr(p, ".sst"))
        return PC_SST;
    if (strstr(p, "MANIFEST"))
        return PC_MANIFEST;
    if (strstr(p, "CURRENT"))
        return PC_CURRENT;
    if (op == CAIRN_OP_SYNC_DIR || op == CAIRN_OP_LIST_DIR ||
        op == CAIRN_OP_MKDIR || strcmp(p, DBDIR) == 0)
        return PC_DIR;
    return PC_OTHER;
}

/* The calling thread's role, learned at its first call (mu held). */
static int role_of(tenv *t, cairn_env_op op, int pc, int flags)
{
    pthread_t self = pthread_self();
    if (pthread_equal(self, t->main_thread))
        return ROLE_FG;
    for (int i = 0; i < t->nth; i++)
        if (pthread_equal(self, t->th[i].id))
            return t->th[i].role;
    int role;
    if (pc == PC_WAL)
        role = ROLE_WAL;
    else if (!t->have_flusher && pc == PC_SST && op == CAIRN_OP_OPEN &&
             (flags & CAIRN_OPEN_CREATE)) {
        role = ROLE_FLUSH;
        t->have_flusher = true;
    } else {
        role = ROLE_COMPACT;
    }
    if (t->nth < MAX_THREADS) {
        t->th[t->nth].id = self;
        t->th[t->nth].role = role;
        t->nth++;
    }
    return role;
}

/* Start a call: take mu (released by tr_end), log it. close and unlock are
 * neither counted nor logged, like the fault env does. */
static void tr_begin(tenv *t, cairn_env_op op, const char *p1, const char *p2,
                     int flags)
{
    pthread_mutex_lock(&t->mu);
    t->busy = true;
    if (t->nlog == t->caplog) {
        size_t nc = t->caplog ? t->caplog * 2 : 4096;
        trec *n = realloc(t->log, nc * sizeof *n);
        if (!n)
            abort(); /* the test's own memory */
        t->log = n;
        t->caplog = nc;
    }
    trec *r = &t->log[t->nlog++];
    memset(r, 0, sizeof *r);
    r->op = (uint8_t)op;
    r->pc = (uint8_t)path_class(op, p1);
    if (p2 && r->pc == PC_OTHER)
        r->pc = (uint8_t)path_class(op, p2);
    r->role = (uint8_t)role_of(t, op, r->pc, flags);
    r->epoch = t->epoch;
    if (p1) {
        size_t l = strlen(p1);
        snprintf(r->path, sizeof r->path, "%s",
                 l >= sizeof r->path ? p1 + l - (sizeof r->path - 1) : p1);
    }
    bool match = (t->op_mask == 0 || (t->op_mask & CAIRN_OPMASK(op))) &&
                 (!t->substr[0] || (p1 && strstr(p1, t->substr)) ||
                  (p2 && strstr(p2, t->substr)));
    if (match)
        r->mnum = (uint32_t)++t->matched;
    if (op == CAIRN_OP_WRITE && r->pc == PC_WAL &&
        (r->role == ROLE_FG || r->role == ROLE_WAL))
        t->log_writes++;
}

static int tr_end(tenv *t, int rc)
{
    t->log[t->nlog - 1].rc = rc;
    t->busy = false;
    t->last_ns = mono_ns();
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static int tr_open(cairn_env *env, const char *path, int flags,
                   cairn_file **out)
{
    tenv *t = (tenv *)env;
    *out = NULL;
    tfile_ *f = calloc(1, sizeof *f);
    if (!f)
        return CAIRN_ENOMEM;
    snprintf(f->path, sizeof f->path, "%s", path);
    tr_begin(t, CAIRN_OP_OPEN, path, NULL, flags);
    int rc = cairn_env_open(t->inner, path, flags, &f->inner);
    if (rc) {
        free(f);
    } else {
        f->base.env = env;
        *out = &f->base;
    }
    return tr_end(t, rc);
}

static int tr_close(cairn_file *file)
{
    tfile_ *f = (tfile_ *)file;
    int rc = cairn_file_close(f->inner);
    free(f);
    return rc;
}

#define TF(file) tfile_ *f = (tfile_ *)(file); tenv *t = (tenv *)f->base.env

static int tr_read_at(cairn_file *file, uint64_t off, void *buf, size_t len,
                      size_t *nread)
{
    TF(file);
    tr_begin(t, CAIRN_OP_READ, f->path, NULL, 0);
    return tr_end(t, cairn_file_read_at(f->inner, off, buf, len, nread));
}

static int tr_write_at(cairn_file *file, uint64_t off, const void *buf,
                       size_t len)
{
    TF(file);
    tr_begin(t, CAIRN_OP_WRITE, f->path, NULL, 0);
    return tr_end(t, cairn_file_write_at(f->inner, off, buf, len));
}

static int tr_sync(cairn_file *file, int kind)
{
    TF(file);
    tr_begin(t, CAIRN_OP_SYNC, f->path, NULL, 0);
    return tr_end(t, cairn_file_sync(f->inner, kind));
}

static int tr_truncate(cairn_file *file, uint64_t size)
{
    TF(file);
    tr_begin(t, CAIRN_OP_TRUNCATE, f->path, NULL, 0);
    return tr_end(t, cairn_file_truncate(f->inner, size));
}

static int tr_allocate(cairn_file *file, uint64_t off, uint64_t len)
{
    TF(file);
    tr_begin(t, CAIRN_OP_ALLOCATE, f->path, NULL, 0);
    return tr_end(t, cairn_file_allocate(f->inner, off, len));
}

static int tr_size(cairn_file *file, uint64_t *out)
{
    TF(file);
    tr_begin(t, CAIRN_OP_SIZE, f->path, NULL, 0);
    return tr_end(t, cairn_file_size(f->inner, out));
}

static int tr_sync_dir(cairn_env *env, const char *dir)
{
    tenv *t = (tenv *)env;
    tr_begin(t, CAIRN_OP_SYNC_DIR, dir, NULL, 0);
    return tr_end(t, cairn_env_sync_dir(t->inner, dir));
}

static int tr_rename(cairn_env *env, const char *from, const char *to)
{
    tenv *t = (tenv *)env;
    tr_begin(t, CAIRN_OP_RENAME, from, to, 0);
    return tr_end(t, cairn_env_rename(t->inner, from, to));
}

static int tr_unlink(cairn_env *env, const char *path)
{
    tenv *t = (tenv *)env;
    tr_begin(t, CAIRN_OP_UNLINK, path, NULL, 0);
    return tr_end(t, cairn_env_unlink(t->inner, path));
}

static int tr_list_dir(cairn_env *env, const char *dir, char ***names,
                       size_t *count)
{
    tenv *t = (tenv *)env;
    tr_begin(t, CAIRN_OP_LIST_DIR, dir, NULL, 0);
    return tr_end(t, cairn_env_list_dir(t->inner, dir, names, count));
}

static int tr_mkdir(cairn_env *env, const char *path)
{
    tenv *t = (tenv *)env;
    tr_begin(t, CAIRN_OP_MKDIR, path, NULL, 0);
    return tr_end(t, cairn_env_mkdir(t->inner, path));
}

/* The fault env's lock handle is returned as is: unlock goes straight to
 * it (unlock is never counted). */
static int tr_lock(cairn_env *env, const char *path, cairn_filelock **out)
{
    tenv *t = (tenv *)env;
    tr_begin(t, CAIRN_OP_LOCK, path, NULL, 0);
    return tr_end(t, cairn_env_lock(t->inner, path, out));
}

static int tr_unlock(cairn_filelock *l)
{
    return cairn_env_unlock(l);
}

static int tr_exists(cairn_env *env, const char *path)
{
    tenv *t = (tenv *)env;
    tr_begin(t, CAIRN_OP_EXISTS, path, NULL, 0);
    return tr_end(t, cairn_env_exists(t->inner, path));
}

static void tr_destroy(cairn_env *env)
{
    tenv *t = (tenv *)env;
    pthread_mutex_destroy(&t->mu);
    free(t->log);
    free(t);
}

static const cairn_env_ops trace_ops = {
    .name = "trace",
    .open = tr_open,
    .close = tr_close,
    .read_at = tr_read_at,
    .write_at = tr_write_at,
    .sync = tr_sync,
    .truncate = tr_truncate,
    .allocate = tr_allocate,
    .size = tr_size,
    .sync_dir = tr_sync_dir,
    .rename = tr_rename,
    .unlink = tr_unlink,
    .list_dir = tr_list_dir,
    .mkdir = tr_mkdir,
    .lock = tr_lock,
    .unlock = tr_unlock,
    .exists = tr_exists,
    .destroy = tr_destroy,
};

static tenv *trace_new(cairn_env *inner)
{
    tenv *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->base.ops = &trace_ops;
    t->inner = inner;
    pthread_mutex_init(&t->mu, NULL);
    t->main_thread = pthread_self();
    return t;
}

/* Install rule on the fault env and restart the trace's numbering with the
 * same selection (no call may be running: the caller made sure the
 * background is idle). rule NULL: reset the fault env. With learn, the
 * first thread other than the test's and the log's to create an .sst file
 * is taken for the flusher (a fresh database); else none is (an open
 * flushes on the test's thread while it replays the log). */
static void trace_restart_ex(tenv *t, const cairn_fault_rule *rule,
                             bool learn)
{
    pthread_mutex_lock(&t->mu);
    cairn_env_fault_reset(t->inner); /* also ends a power cut */
    if (rule)
        cairn_env_fault_set(t->inner, rule);
    t->op_mask = rule ? rule->op_mask : 0;
    snprintf(t->substr, sizeof t->substr, "%s",
             rule && rule->path_substr ? rule->path_substr : "");
    t->matched = 0;
    t->nlog = 0;
    t->nth = 0;
    t->have_flusher = !learn;
    t->epoch = 0;
    pthread_mutex_unlock(&t->mu);
}

static void trace_restart(tenv *t, const cairn_fault_rule *rule)
{
    trace_restart_ex(t, rule, true);
}

/* Start op e; returns the count of log writes so far. */
static uint64_t trace_epoch(tenv *t, uint32_t e)
{
    pthread_mutex_lock(&t->mu);
    t->epoch = e;
    uint64_t w = t->log_writes;
    pthread_mutex_unlock(&t->mu);
    return w;
}

static uint64_t trace_log_writes(tenv *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t w = t->log_writes;
    pthread_mutex_unlock(&t->mu);
    return w;
}

/* ns since the last call ended; 0 while one runs. */
static uint64_t trace_idle_ns(tenv *t)
{
    pthread_mutex_lock(&t->mu);
    uint64_t now = mono_ns();
    uint64_t idle = t->busy ? 0 : now - t->last_ns;
    pthread_mutex_unlock(&t->mu);
    return idle;
}

/* The record of the n-th matching call, or NULL. */
static const trec *trace_match(tenv *t, uint64_t n)
{
    for (size_t i = 0; i < t->nlog; i++)
        if (t->log[i].mnum == n)
            return &t->log[i];
    return NULL;
}

static void rec_str(const trec *r, char *out, size_t len)
{
    if (!r) {
        snprintf(out, len, "(no call)");
        return;
    }
    snprintf(out, len, "%s: %s %s [%s] op %" PRIu32 " rc %d",
             role_name[r->role], cairn_env_op_name((cairn_env_op)r->op),
             pc_name[r->pc], r->path, r->epoch, r->rc);
}

/* The same step of the workload: the same call on the same file by the
 * same thread during the same op. A file is unlinked by whichever thread
 * drops the last reference to it, when it does: for unlinks, the call and
 * the file are enough. */
static bool rec_same(const trec *a, const trec *b)
{
    if (!a || !b || a->op != b->op || a->pc != b->pc ||
        strcmp(a->path, b->path) != 0)
        return false;
    return a->op == CAIRN_OP_UNLINK ||
           (a->role == b->role && a->epoch == b->epoch);
}

/* ======================================================================
 * The workload and the model
 * ====================================================================== */

typedef struct wop {
    bool del;
    uint16_t key;
    uint16_t vlen;
} wop;

static wop g_ops[NOPS + EXTRA_OPS];

static void key_of(int i, char k[16])
{
    snprintf(k, 16, "key%05d", i);
}

/* The value of op i (a put of key): a header naming both, then bytes
 * determined by them. */
static void make_value(uint32_t i, int key, size_t vlen, uint8_t *out)
{
    char hdr[16];
    snprintf(hdr, sizeof hdr, "%04d/%06" PRIu32 ":", key, i);
    size_t h = strlen(hdr);
    memcpy(out, hdr, h < vlen ? h : vlen);
    if (vlen > h)
        tu_fill(out + h, vlen - h, (uint64_t)i * 7919u + (uint64_t)key);
}

static void gen_ops(uint64_t seed)
{
    uint64_t rng = seed;
    bool present[NKEYS] = {0};
    int npresent = 0;
    for (int i = 0; i < NOPS + EXTRA_OPS; i++) {
        wop *w = &g_ops[i];
        bool del = i >= NOPS / 5 && npresent > 0 && tu_rand(&rng, 100) < 35;
        if (del) {
            int k = (int)tu_rand(&rng, NKEYS);
            while (!present[k])
                k = (k + 1) % NKEYS;
            *w = (wop){.del = true, .key = (uint16_t)k};
            present[k] = false;
            npresent--;
        } else {
            int k = (int)tu_rand(&rng, NKEYS);
            *w = (wop){.key = (uint16_t)k,
                       .vlen = (uint16_t)(MINV + tu_rand(&rng, MAXV - MINV))};
            if (!present[k])
                npresent++;
            present[k] = true;
        }
    }
}

/* Per key: the acknowledged state (-1 absent, else the op whose put holds
 * the value), plus the states of failed ops since, which may or may not
 * have reached the log. */
#define MAX_MAYBE 64

typedef struct model {
    int32_t acked[NKEYS];
    struct {
        uint16_t key;
        int32_t state;
    } maybe[MAX_MAYBE];
    int nmaybe;
} model;

static void model_init(model *m)
{
    for (int i = 0; i < NKEYS; i++)
        m->acked[i] = -1;
    m->nmaybe = 0;
}

static int32_t op_state(uint32_t i)
{
    return g_ops[i].del ? -1 : (int32_t)i;
}

static void model_ack(model *m, uint32_t i)
{
    int k = g_ops[i].key;
    m->acked[k] = op_state(i);
    int n = 0;
    for (int j = 0; j < m->nmaybe; j++)
        if (m->maybe[j].key != k)
            m->maybe[n++] = m->maybe[j];
    m->nmaybe = n;
}

static void model_maybe(model *m, uint32_t i)
{
    assert_true(m->nmaybe < MAX_MAYBE);
    m->maybe[m->nmaybe].key = g_ops[i].key;
    m->maybe[m->nmaybe].state = op_state(i);
    m->nmaybe++;
}

static bool allowed(const model *m, int k, int32_t state)
{
    if (m->acked[k] == state)
        return true;
    for (int j = 0; j < m->nmaybe; j++)
        if (m->maybe[j].key == k && m->maybe[j].state == state)
            return true;
    return false;
}

/* The state a value stands for: the op named in its header, if the value
 * is exactly that op's value for key k; else -2 (damaged or foreign). */
static int32_t value_state(int k, const void *val, size_t vlen)
{
    const char *p = val;
    if (vlen < 12 || p[4] != '/' || p[11] != ':')
        return -2;
    char num[8];
    memcpy(num, p, 4);
    num[4] = 0;
    if (atoi(num) != k)
        return -2;
    memcpy(num, p + 5, 6);
    num[6] = 0;
    int i = atoi(num);
    if (i < 0 || i >= NOPS + EXTRA_OPS || g_ops[i].del || g_ops[i].key != k ||
        g_ops[i].vlen != vlen)
        return -2;
    uint8_t want[MAXV];
    make_value((uint32_t)i, k, vlen, want);
    return memcmp(want, val, vlen) == 0 ? i : -2;
}

static int do_op(cairn_db *db, uint32_t i)
{
    const wop *w = &g_ops[i];
    char k[16];
    key_of(w->key, k);
    if (w->del)
        return cairn_delete(db, k, KLEN, NULL);
    uint8_t v[MAXV];
    make_value(i, w->key, w->vlen, v);
    return cairn_put(db, k, KLEN, v, w->vlen, NULL);
}

/* ---------- the check ---------- */

typedef struct scan_ctx {
    int32_t seen[NKEYS]; /* what the reads returned */
    int last;            /* last key index scanned */
    char bad[256];
} scan_ctx;

static int scan_cb(void *arg, const void *key, size_t klen, const void *val,
                   size_t vlen)
{
    scan_ctx *c = arg;
    if (c->bad[0])
        return 1;
    char kb[16] = {0};
    memcpy(kb, key, klen < 15 ? klen : 15);
    int k = -1;
    if (klen != KLEN || sscanf(kb, "key%05d", &k) != 1 || k < 0 ||
        k >= NKEYS) {
        snprintf(c->bad, sizeof c->bad, "scan: unknown key '%s' (%zu bytes)",
                 kb, klen);
        return 1;
    }
    if (k <= c->last) {
        snprintf(c->bad, sizeof c->bad, "scan: key %d after key %d", k,
                 c->last);
        return 1;
    }
    for (int j = c->last + 1; j < k; j++)
        if (c->seen[j] >= 0) {
            snprintf(c->bad, sizeof c->bad,
                     "scan skipped key %d, which cairn_get reads as op %d", j,
                     (int)c->seen[j]);
            return 1;
        }
    int32_t st = value_state(k, val, vlen);
    if (st != c->seen[k]) {
        snprintf(c->bad, sizeof c->bad,
                 "scan: key %d holds state %d, cairn_get read state %d", k,
                 (int)st, (int)c->seen[k]);
        return 1;
    }
    c->last = k;
    return 0;
}

/* Check db against m; on success, with adopt, take what was read as the
 * acknowledged state (the maybes are settled: right after a recovery).
 * NULL if fine, else what is wrong. */
static const char *verify(cairn_db *db, model *m, bool adopt)
{
    scan_ctx c;
    memset(&c, 0, sizeof c);
    c.last = -1;
    for (int k = 0; k < NKEYS; k++) {
        char name[16];
        key_of(k, name);
        void *v = NULL;
        size_t vl = 0;
        int rc = cairn_get(db, name, KLEN, &v, &vl);
        int32_t st;
        if (rc == CAIRN_ENOTFOUND) {
            st = -1;
        } else if (rc != 0) {
            snprintf(g_msg, sizeof g_msg, "get %s: %s", name,
                     cairn_strerror(rc));
            return g_msg;
        } else {
            st = value_state(k, v, vl);
            cairn_free(v);
            if (st == -2) {
                snprintf(g_msg, sizeof g_msg,
                         "get %s: a damaged or foreign value (%zu bytes)",
                         name, vl);
                return g_msg;
            }
        }
        if (!allowed(m, k, st)) {
            snprintf(g_msg, sizeof g_msg,
                     "%s: read state %d (%s), acknowledged state %d (%s)%s",
                     name, (int)st, st < 0 ? "absent" : "put",
                     (int)m->acked[k], m->acked[k] < 0 ? "deleted/absent"
                                                       : "put",
                     st >= 0 && m->acked[k] < 0 ? ": a DELETED KEY IS BACK"
                     : st < 0 ? ": AN ACKNOWLEDGED PUT IS LOST"
                              : ": an older or foreign value");
            return g_msg;
        }
        c.seen[k] = st;
    }
    cairn_txn *t = NULL;
    cairn_txn_options to = {.read_only = true};
    int rc = cairn_txn_begin(db, &to, &t);
    if (rc != 0) {
        snprintf(g_msg, sizeof g_msg, "txn_begin: %s", cairn_strerror(rc));
        return g_msg;
    }
    rc = cairn_txn_scan(t, NULL, 0, NULL, 0, 0, scan_cb, &c);
    cairn_txn_abort(t);
    if (rc != 0) {
        snprintf(g_msg, sizeof g_msg, "scan: %s", cairn_strerror(rc));
        return g_msg;
    }
    if (c.bad[0]) {
        snprintf(g_msg, sizeof g_msg, "%s", c.bad);
        return g_msg;
    }
    for (int j = c.last + 1; j < NKEYS; j++)
        if (c.seen[j] >= 0) {
            snprintf(g_msg, sizeof g_msg,
                     "scan ended before key %d, which cairn_get reads", j);
            return g_msg;
        }
    if (adopt) {
        for (int k = 0; k < NKEYS; k++)
            m->acked[k] = c.seen[k];
        m->nmaybe = 0;
    }
    return NULL;
}

/* ======================================================================
 * Running the workload
 * ====================================================================== */

typedef struct rig {
    cairn_env *mem, *fault;
    tenv *tr;
} rig;

static void rig_new(rig *r)
{
    r->mem = cairn_env_mem_new();
    assert_non_null(r->mem);
    r->fault = cairn_env_fault_new(r->mem);
    assert_non_null(r->fault);
    r->tr = trace_new(r->fault);
}

static void rig_free(rig *r)
{
    cairn_env_destroy(&r->tr->base);
    cairn_env_destroy(r->fault);
    cairn_env_destroy(r->mem);
}

static void db_options(cairn_options *o, rig *r)
{
    cairn_options_init(o);
    o->env = &r->tr->base;
    o->sync_mode = CAIRN_SYNC_ALWAYS;
    o->memtable_size = MEMTABLE_SIZE;
    o->sst_target_file_size = SST_TARGET;
    o->level_base_size = LEVEL_BASE;
    o->l0_compaction_trigger = L0_TRIGGER;
    o->sst_block_size = 512;
    o->block_cache_size = 256 * 1024;
    o->wal_segment_size = 16 * 1024;
    o->history_ms = 0;
}

static bool compaction_due(const cairn_stats *st)
{
    if (st->level_files[0] >= L0_TRIGGER)
        return true;
    uint64_t target = LEVEL_BASE;
    for (int l = 1; l < NUM_LEVELS - 1; l++, target *= 10)
        if (st->level_bytes[l] >= target)
            return true;
    return false;
}

typedef struct run_stats {
    int bg_error;        /* a non-zero background_error seen */
    uint64_t flush_failures; /* stats.flush_failures, last seen (a failed
                                flush retried with success clears
                                background_error, not this count) */
    uint64_t timeouts;   /* settles that gave up */
} run_stats;

/* Wait for the flushes this thread expects (stats.gc_runs >= want_gc) and
 * the compactions they start, then for an idle background. With a fault
 * injected or the power cut, only for an idle background. */
static void settle(cairn_db *db, rig *r, uint64_t want_gc, run_stats *rs)
{
    uint64_t start = mono_ns();
    for (;;) {
        cairn_stats st;
        cairn_get_stats(db, &st);
        if (st.background_error && !rs->bg_error)
            rs->bg_error = st.background_error;
        rs->flush_failures = st.flush_failures;
        bool trouble = cairn_env_fault_power_is_cut(r->fault) ||
                       cairn_env_fault_injected(r->fault) > 0;
        bool done = st.gc_runs >= want_gc && !compaction_due(&st);
        uint64_t idle = trace_idle_ns(r->tr);
        if (done && idle >= 200 * 1000)
            return;
        if (trouble && idle >= 3 * 1000 * 1000)
            return;
        if (mono_ns() - start > 3000000000ull) {
            rs->timeouts++;
            return;
        }
        struct timespec d = {0, 20000};
        nanosleep(&d, NULL);
    }
}

enum { MODE_PLAIN, MODE_CUT, MODE_FAIL };

typedef struct workload_out {
    uint32_t ops_done;    /* ops attempted */
    uint32_t ops_failed;
    uint32_t ops_refused; /* failed before writing the log: never there */
    int first_rc;         /* first failing op's error */
    uint32_t first_failed_op;
    uint32_t live_checks; /* MODE_FAIL: checks of the live database */
    char live_err[512];   /* what the first failed one found */
    run_stats rs;
    cairn_stats st;       /* at the end */
} workload_out;

/* Run ops [from, to) on db. A failed op that wrote to the log becomes a
 * maybe; one refused before (no log write while it ran: read-only, or the
 * flush error while memtables are full) must never show. MODE_CUT stops at
 * the power cut; MODE_FAIL goes on (the disk is fine after one failure)
 * except once the database is read-only. */
static void workload(cairn_db *db, rig *r, model *m, uint32_t from,
                     uint32_t to, int mode, workload_out *out)
{
    uint64_t bytes = 0, want_gc = 0;
    cairn_stats st;
    cairn_get_stats(db, &st);
    want_gc = st.gc_runs;
    for (uint32_t i = from; i < to; i++) {
        if (mode == MODE_CUT && cairn_env_fault_power_is_cut(r->fault))
            break; /* the op would never start */
        uint64_t lw = trace_epoch(r->tr, i);
        int rc = do_op(db, i);
        out->ops_done++;
        if (rc == 0) {
            model_ack(m, i);
        } else {
            if (trace_log_writes(r->tr) != lw)
                model_maybe(m, i);
            else
                out->ops_refused++;
            if (!out->ops_failed++) {
                out->first_rc = rc;
                out->first_failed_op = i;
            }
            if (mode != MODE_FAIL || rc == CAIRN_EREADONLY)
                break;
        }
        /* The engine's count: key + value + 64 per write applied; the
         * write that reaches memtable_size asks for a flush. */
        if (rc == 0)
            bytes += KLEN + (g_ops[i].del ? 0 : g_ops[i].vlen) + 64;
        if (bytes >= MEMTABLE_SIZE) {
            bytes = 0;
            want_gc++;
            settle(db, r, want_gc, &out->rs);
            if (mode == MODE_FAIL && cairn_env_fault_injected(r->fault)) {
                /* After the fault, each flush and compaction it touched
                 * must have kept every key: check before later writes
                 * hide a loss. */
                const char *why = verify(db, m, false);
                out->live_checks++;
                if (why) {
                    snprintf(out->live_err, sizeof out->live_err,
                             "after op %" PRIu32 ": %s", i, why);
                    break;
                }
            }
        }
    }
    settle(db, r, 0, &out->rs);
    cairn_get_stats(db, &out->st);
    if (out->st.background_error && !out->rs.bg_error)
        out->rs.bg_error = out->st.background_error;
    out->rs.flush_failures = out->st.flush_failures;
}

/* After a crash or a fault: reopen (no faults), check, write more, close
 * cleanly, reopen, check again. NULL if fine. */
static const char *recover_and_check(rig *r, model *m, uint32_t extra_from)
{
    cairn_options o;
    db_options(&o, r);
    trace_restart(r->tr, NULL);
    cairn_db *db = NULL;
    int rc = cairn_open(DBDIR, &o, &db);
    if (rc != 0) {
        snprintf(g_msg, sizeof g_msg, "reopen: %s", cairn_strerror(rc));
        return g_msg;
    }
    const char *why = verify(db, m, true);
    if (why) {
        (void)cairn_close(db);
        return why;
    }
    /* New writes are taken. */
    workload_out wo;
    memset(&wo, 0, sizeof wo);
    workload(db, r, m, extra_from, extra_from + EXTRA_OPS, MODE_PLAIN, &wo);
    if (wo.ops_failed) {
        snprintf(g_msg, sizeof g_msg, "after recovery: op %" PRIu32 ": %s",
                 wo.first_failed_op, cairn_strerror(wo.first_rc));
        (void)cairn_close(db);
        return g_msg;
    }
    rc = cairn_close(db);
    if (rc != 0) {
        snprintf(g_msg, sizeof g_msg, "clean close: %s", cairn_strerror(rc));
        return g_msg;
    }
    db = NULL;
    rc = cairn_open(DBDIR, &o, &db);
    if (rc != 0) {
        snprintf(g_msg, sizeof g_msg, "reopen after clean close: %s",
                 cairn_strerror(rc));
        return g_msg;
    }
    why = verify(db, m, true);
    rc = cairn_close(db);
    if (!why && rc != 0) {
        snprintf(g_msg, sizeof g_msg, "last close: %s", cairn_strerror(rc));
        why = g_msg;
    }
    return why;
}

/* ---------- one cycle ---------- */

typedef struct cycle_cfg {
    int mode;
    cairn_fault_rule rule; /* power_cut_at or fail_at set */
    /* MODE_CUT: then crash the recovery too: power cut by rule2 (none if
     * rule2.power_cut_at is 0: then it only counts calls) while the
     * database reopens and does the flushes of the log's replay and the
     * compactions they start. */
    bool second;
    cairn_fault_rule rule2;
} cycle_cfg;

typedef struct cycle_out {
    bool fired;           /* the cut happened / the fault was injected */
    bool unreported;      /* MODE_FAIL: the fault was reported nowhere */
    bool failed;          /* a check failed (printed, up to a limit) */
    bool have_hit;
    trec hit;             /* the call the rule hit */
    uint64_t calls;       /* calls of the workload (with keep_log) */
    trec *log;            /* the workload's calls (calibration only) */
    size_t nlog;
    workload_out wo;
    /* With second: */
    bool fired2;
    bool have_hit2;
    trec hit2;
    uint64_t calls2;      /* calls of the recovery */
    int open2_rc;
    cairn_stats st2;      /* after the recovery (when it opened) */
} cycle_out;

static void cycle_fail(const char *what, const cycle_cfg *c,
                       const cycle_out *co, const char *why)
{
    char hs[160];
    rec_str(co->have_hit ? &co->hit : NULL, hs, sizeof hs);
    fprintf(stderr,
            "%s: rule %s%s at %" PRIu64 " (%s%s, seed %" PRIu64
            "): hit %s; %" PRIu32 " ops done, first failure op %" PRIu32
            " (%s): %s\n",
            what,
            c->rule.path_substr ? "path " : "call",
            c->rule.path_substr ? c->rule.path_substr : "",
            c->rule.power_cut_at ? c->rule.power_cut_at : c->rule.fail_at,
            c->mode == MODE_CUT ? "power cut" : cairn_strerror(c->rule.error),
            c->rule.torn ? ", torn" : "", c->rule.seed, hs,
            co->wo.ops_done, co->wo.first_failed_op,
            co->wo.ops_failed ? cairn_strerror(co->wo.first_rc) : "none",
            why);
}

/* Is a failure of this call allowed to go unreported? Unlinks of files
 * nothing needs any more are best effort (the next open removes
 * leftovers), and so is cutting the log after a flush (its sync_dir):
 * replay skips what the sorted files hold. So is preallocating a new log
 * segment when it fails for lack of space: the segment is used without
 * it, growing as records are written, whose own writes and syncs report a
 * real lack of space. */
static bool best_effort(const trec *r, int error)
{
    return r->op == CAIRN_OP_UNLINK ||
           (r->role == ROLE_FLUSH && r->pc == PC_WAL) || /* log truncation */
           (r->op == CAIRN_OP_ALLOCATE && r->pc == PC_WAL &&
            error == CAIRN_ENOSPC);
}

/* Reopen after the first crash with power cut at rule2 (if set), let the
 * background finish, close (errors ignored: the power may be gone). */
static void second_crash(rig *r, const cycle_cfg *c, cycle_out *co)
{
    cairn_options o;
    db_options(&o, r);
    trace_restart_ex(r->tr, &c->rule2, false);
    cairn_db *db = NULL;
    co->open2_rc = cairn_open(DBDIR, &o, &db);
    if (co->open2_rc == 0) {
        run_stats rs = {0};
        settle(db, r, 0, &rs);
        cairn_get_stats(db, &co->st2);
    }
    pthread_mutex_lock(&r->tr->mu);
    co->calls2 = r->tr->matched;
    const trec *h = c->rule2.power_cut_at
                        ? trace_match(r->tr, c->rule2.power_cut_at)
                        : NULL;
    if (h) {
        co->hit2 = *h;
        co->have_hit2 = true;
    }
    pthread_mutex_unlock(&r->tr->mu);
    if (db)
        (void)cairn_close(db);
    co->fired2 = cairn_env_fault_power_is_cut(r->fault);
    if (!co->fired2)
        assert_int_equal(cairn_env_mem_power_loss(r->mem, c->rule2.torn,
                                                  c->rule2.seed ^ 0x2ec0),
                         0);
}

/* Note the call the rule hit (the at-th matching one), if it came. */
static void capture_hit(rig *r, uint64_t at, cycle_out *co)
{
    pthread_mutex_lock(&r->tr->mu);
    const trec *h = at ? trace_match(r->tr, at) : NULL;
    if (h) {
        co->hit = *h;
        co->have_hit = true;
    }
    if (g_dump && h) {
        /* The calls around the hit (debugging). */
        size_t hi = (size_t)(h - r->tr->log);
        for (size_t i = hi > 5 ? hi - 5 : 0; i < r->tr->nlog && i < hi + 80;
             i++) {
            char rs[160];
            rec_str(&r->tr->log[i], rs, sizeof rs);
            fprintf(stderr, "  %s%zu: %s\n", i == hi ? "*" : " ", i + 1, rs);
        }
    }
    pthread_mutex_unlock(&r->tr->mu);
}

static void run_cycle(const char *what, const cycle_cfg *c, cycle_out *co,
                      bool keep_log)
{
    memset(co, 0, sizeof *co);
    rig r;
    rig_new(&r);
    cairn_options o;
    db_options(&o, &r);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(DBDIR, &o, &db), 0);
    /* The background is idle on a fresh database: no call is running. */
    settle(db, &r, 0, &co->wo.rs);
    trace_restart(r.tr, c->mode == MODE_PLAIN ? NULL : &c->rule);
    model m;
    model_init(&m);
    workload(db, &r, &m, 0, NOPS, c->mode, &co->wo);
    uint64_t at = c->rule.power_cut_at ? c->rule.power_cut_at
                                       : c->rule.fail_at;
    if (keep_log) {
        pthread_mutex_lock(&r.tr->mu);
        co->calls = r.tr->matched;
        co->log = malloc((r.tr->nlog ? r.tr->nlog : 1) * sizeof *co->log);
        assert_non_null(co->log);
        memcpy(co->log, r.tr->log, r.tr->nlog * sizeof *co->log);
        co->nlog = r.tr->nlog;
        pthread_mutex_unlock(&r.tr->mu);
    }

    const char *why = NULL;
    if (c->mode == MODE_FAIL) {
        capture_hit(&r, at, co);
        co->fired = cairn_env_fault_injected(r.fault) > 0;
        /* The disk is fine again; the database must still read right. */
        trace_restart(r.tr, NULL);
        if (co->fired && !co->have_hit)
            why = "a fault was injected at no traced call";
        if (!why && co->wo.live_err[0])
            why = co->wo.live_err;
        if (!why && co->fired && !best_effort(&co->hit, c->rule.error) &&
            co->wo.ops_failed == 0 && co->wo.rs.bg_error == 0 &&
            co->wo.rs.flush_failures == 0) {
            /* Counted by the caller, which fails the sweep at its end (so
             * the data checks of every cycle still run). */
            co->unreported = true;
        }
        if (!why)
            why = verify(db, &m, false);
        (void)cairn_close(db);
        if (!why) {
            /* Whatever was acknowledged is durable. */
            assert_int_equal(cairn_env_mem_power_loss(r.mem, false, 1), 0);
        }
    } else {
        (void)cairn_close(db); /* may fail: the power is gone */
        capture_hit(&r, at, co); /* the cut may come while closing */
        co->fired = cairn_env_fault_power_is_cut(r.fault);
        if (!co->fired)
            assert_int_equal(cairn_env_mem_power_loss(r.mem, c->rule.torn,
                                                      c->rule.seed ^ 0x5eed),
                             0);
    }
    if (c->second) {
        second_crash(&r, c, co);
        if (!co->fired2 && co->open2_rc != 0) {
            snprintf(g_msg, sizeof g_msg,
                     "the first reopen failed with no second cut: %s",
                     cairn_strerror(co->open2_rc));
            why = g_msg;
        }
    }
    if (!why)
        why = recover_and_check(&r, &m, NOPS);
    if (why) {
        co->failed = true;
        if (g_fail_prints++ < 8)
            cycle_fail(what, c, co, why);
    }
    if (g_verbose) {
        char hs[160];
        rec_str(co->have_hit ? &co->hit : NULL, hs, sizeof hs);
        fprintf(stderr,
                "%s %" PRIu64 ": %s; ops %" PRIu32 " failed %" PRIu32
                " bg %d; %" PRIu64 " flushes %" PRIu64
                " compactions, files %" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n",
                what, at, hs, co->wo.ops_done, co->wo.ops_failed,
                co->wo.rs.bg_error, co->wo.st.flushes, co->wo.st.compactions,
                co->wo.st.level_files[0], co->wo.st.level_files[1],
                co->wo.st.level_files[2]);
    }
    rig_free(&r);
}

/* ======================================================================
 * Coverage
 * ====================================================================== */

typedef struct coverage {
    uint64_t n[ROLE__N][PC__N][CAIRN_OP__COUNT];
    uint64_t bad[ROLE__N][PC__N][CAIRN_OP__COUNT]; /* failed cycles */
    uint64_t cycles, fired, as_planned, planned, failed;
} coverage;

static void cov_init(coverage *cv)
{
    memset(cv, 0, sizeof *cv);
    g_fail_prints = 0;
}

static void cov_add_hit(coverage *cv, bool failed, bool fired,
                        const trec *hit)
{
    cv->cycles++;
    if (failed) {
        cv->failed++;
        if (hit)
            cv->bad[hit->role][hit->pc][hit->op]++;
    }
    if (fired)
        cv->fired++;
    if (hit && fired)
        cv->n[hit->role][hit->pc][hit->op]++;
}

static void cov_add(coverage *cv, const cycle_out *co)
{
    cov_add_hit(cv, co->failed, co->fired, co->have_hit ? &co->hit : NULL);
}

/* "flush{open sst 21, write sst 21, ...}" */
static void cov_str(const coverage *cv, int role, char *out, size_t len)
{
    size_t w = 0;
    w += (size_t)snprintf(out + w, len - w, "%s{", role_name[role]);
    bool first = true;
    for (int pc = 0; pc < PC__N; pc++)
        for (int op = 0; op < CAIRN_OP__COUNT; op++)
            if (cv->n[role][pc][op] && w < len) {
                w += (size_t)snprintf(out + w, len - w, "%s%s %s %" PRIu64,
                                      first ? "" : ", ",
                                      cairn_env_op_name((cairn_env_op)op),
                                      pc_name[pc], cv->n[role][pc][op]);
                first = false;
            }
    if (w < len)
        snprintf(out + w, len - w, "}");
}

static void cov_print(const char *what, const coverage *cv)
{
    static const int order[ROLE__N] = {ROLE_FLUSH, ROLE_COMPACT, ROLE_FG,
                                       ROLE_WAL};
    char b[4096] = "", planned[64] = "";
    size_t w = 0;
    for (int i = 0; i < ROLE__N && w < sizeof b; i++) {
        int r = order[i];
        uint64_t any = 0;
        for (int pc = 0; pc < PC__N; pc++)
            for (int op = 0; op < CAIRN_OP__COUNT; op++)
                any += cv->n[r][pc][op];
        if (!any)
            continue;
        char one[1024];
        cov_str(cv, r, one, sizeof one);
        w += (size_t)snprintf(b + w, sizeof b - w, " %s", one);
    }
    if (cv->planned)
        snprintf(planned, sizeof planned,
                 ", %" PRIu64 "/%" PRIu64 " on the calibration's call",
                 cv->as_planned, cv->planned);
    fprintf(stderr,
            "%s: %" PRIu64 " cycles, %" PRIu64 " fired%s, %" PRIu64
            " FAILED; hits by step:%s\n",
            what, cv->cycles, cv->fired, planned, cv->failed, b);
    for (int r = 0; r < ROLE__N; r++)
        for (int pc = 0; pc < PC__N; pc++)
            for (int op = 0; op < CAIRN_OP__COUNT; op++)
                if (cv->bad[r][pc][op])
                    fprintf(stderr, "    failed after a hit at %s: %s %s: %"
                            PRIu64 " cycles\n", role_name[r],
                            cairn_env_op_name((cairn_env_op)op), pc_name[pc],
                            cv->bad[r][pc][op]);
}

/* ======================================================================
 * Calibration and plans
 * ====================================================================== */

static bool g_full;
static uint64_t g_seed;
static uint64_t g_stride;
static uint64_t g_only; /* CAIRN_LSM_CRASH_ONLY: just this k (debugging) */

typedef struct calib {
    trec *log;
    size_t n;
    cairn_stats st;
    /* The first flush and the first compaction: [lo, hi] (1-based). */
    uint64_t flush_lo, flush_hi, comp_lo, comp_hi;
    uint64_t manifest_calls, sst_calls;
} calib;

static calib g_cal;
static bool g_have_cal;

static void calibrate(void)
{
    if (g_have_cal)
        return;
    g_full = tu_env_u64("CAIRN_LSM_CRASH_FULL", 0) != 0;
    g_verbose = tu_env_u64("CAIRN_LSM_CRASH_VERBOSE", 0) != 0;
    g_seed = tu_env_u64("CAIRN_TEST_SEED", 20261125);
    g_stride = tu_env_u64("CAIRN_LSM_CRASH_STRIDE", 7);
    if (g_stride == 0)
        g_stride = 1;
    g_only = tu_env_u64("CAIRN_LSM_CRASH_ONLY", 0);
    g_dump = tu_env_u64("CAIRN_LSM_CRASH_DUMP", 0) != 0;
    gen_ops(g_seed);
    cycle_cfg c = {.mode = MODE_PLAIN};
    cycle_out co;
    run_cycle("calibration", &c, &co, true);
    assert_false(co.failed);
    calib *k = &g_cal;
    k->log = co.log;
    k->n = co.nlog;
    k->st = co.wo.st;
    assert_int_equal(co.wo.ops_failed, 0);
    assert_int_equal(co.wo.rs.timeouts, 0);
    assert_int_equal(co.wo.rs.bg_error, 0);
    assert_int_equal(co.calls, k->n);
    /* The run goes through flushes and compactions, into level 2. */
    assert_true(k->st.flushes >= 10);
    assert_true(k->st.compactions >= 5);
    assert_true(k->st.level_files[2] > 0);
    uint32_t fe = UINT32_MAX, ce = UINT32_MAX;
    uint64_t per_role[ROLE__N] = {0};
    for (size_t i = 0; i < k->n; i++) {
        const trec *r = &k->log[i];
        per_role[r->role]++;
        if (r->pc == PC_MANIFEST)
            k->manifest_calls++;
        if (r->pc == PC_SST)
            k->sst_calls++;
        if (r->role == ROLE_FLUSH && fe == UINT32_MAX)
            fe = r->epoch;
        if (r->role == ROLE_COMPACT && ce == UINT32_MAX)
            ce = r->epoch;
        if (r->role == ROLE_FLUSH && r->epoch == fe) {
            if (!k->flush_lo)
                k->flush_lo = i + 1;
            k->flush_hi = i + 1;
        }
        if (r->role == ROLE_COMPACT && r->epoch == ce) {
            if (!k->comp_lo)
                k->comp_lo = i + 1;
            k->comp_hi = i + 1;
        }
    }
    assert_true(k->flush_lo > 0 && k->comp_lo > 0);
    fprintf(stderr,
            "calibration: %" PRIu32 " ops, %zu I/O calls (commit %" PRIu64
            ", log thread %" PRIu64 ", flush %" PRIu64 ", compaction %" PRIu64
            "; %" PRIu64 " on MANIFEST, %" PRIu64 " on sst), %" PRIu64
            " flushes, %" PRIu64 " compactions, files L0 %" PRIu64
            " L1 %" PRIu64 " L2 %" PRIu64 "; first flush calls %" PRIu64
            "-%" PRIu64 ", first compaction %" PRIu64 "-%" PRIu64 "\n",
            co.wo.ops_done, k->n, per_role[ROLE_FG], per_role[ROLE_WAL],
            per_role[ROLE_FLUSH], per_role[ROLE_COMPACT], k->manifest_calls,
            k->sst_calls, k->st.flushes, k->st.compactions,
            k->st.level_files[0], k->st.level_files[1], k->st.level_files[2],
            k->flush_lo, k->flush_hi, k->comp_lo, k->comp_hi);
    g_have_cal = true;
}

/* Which global calls to hit: all when full; else the first flush and the
 * first compaction whole, and every stride-th call elsewhere. */
static bool planned(uint64_t k, uint64_t stride)
{
    if (g_only)
        return k == g_only;
    if (g_full)
        return true;
    const calib *c = &g_cal;
    if ((k >= c->flush_lo && k <= c->flush_hi) ||
        (k >= c->comp_lo && k <= c->comp_hi))
        return true;
    return (k - 1) % stride == 0 || k == c->n + 1;
}

/* ======================================================================
 * The tests
 * ====================================================================== */

static void test_calibrate(void **state)
{
    (void)state;
    calibrate();
}

/* 1. Power cut at global call k. */
static void test_power_cut_every_call(void **state)
{
    (void)state;
    calibrate();
    const calib *cal = &g_cal;
    coverage cv;
    cov_init(&cv);
    uint64_t seed = g_seed;
    /* The steps of the first flush and the first compaction, and whether
     * a cut has landed on each. */
    uint64_t nreg = (cal->flush_hi - cal->flush_lo + 1) +
                    (cal->comp_hi - cal->comp_lo + 1);
    uint64_t *reg = calloc(nreg, sizeof *reg);
    bool *covered = calloc(nreg, sizeof *covered);
    assert_true(reg && covered);
    nreg = 0;
    for (uint64_t k = 1; k <= cal->n; k++)
        if ((k >= cal->flush_lo && k <= cal->flush_hi) ||
            (k >= cal->comp_lo && k <= cal->comp_hi))
            reg[nreg++] = k;
    uint64_t retries = 0;
    for (int pass = 0; pass < (g_full ? 2 : 1); pass++)
        for (uint64_t k = 1; k <= cal->n + 1; k++) {
            if (!planned(k, g_stride))
                continue;
            const trec *want = k <= cal->n ? &cal->log[k - 1] : NULL;
            cycle_cfg c = {.mode = MODE_CUT,
                           .rule = {.power_cut_at = k,
                                    .torn = ((k + (uint64_t)pass) & 1) != 0,
                                    .seed = tu_splitmix(&seed)}};
            cycle_out co;
            run_cycle("power cut", &c, &co, false);
            cov_add(&cv, &co);
            if (want) {
                cv.planned++;
                if (co.have_hit && rec_same(want, &co.hit))
                    cv.as_planned++;
            }
            for (uint64_t i = 0; i < nreg && co.fired && co.have_hit; i++)
                if (rec_same(&cal->log[reg[i] - 1], &co.hit))
                    covered[i] = true;
        }
    /* A step the global numbering missed (a file unlinked by whichever
     * thread drops the last reference, at a time that varies): cut at it
     * through its file's name, which numbers the calls on that file only. */
    for (uint64_t i = 0; i < nreg && !g_only; i++) {
        const trec *want = &cal->log[reg[i] - 1];
        const char *base = strrchr(want->path, '/');
        base = base ? base + 1 : want->path;
        for (int attempt = 0; attempt < 3 && !covered[i] && *base; attempt++) {
            uint64_t j = 0;
            for (uint64_t x = 0; x < reg[i]; x++)
                j += strstr(cal->log[x].path, base) != NULL;
            cycle_cfg c = {.mode = MODE_CUT,
                           .rule = {.path_substr = base,
                                    .power_cut_at = j,
                                    .torn = (i & 1) != 0,
                                    .seed = tu_splitmix(&seed)}};
            cycle_out co;
            run_cycle("power cut by name", &c, &co, false);
            cov_add(&cv, &co);
            retries++;
            if (co.fired && co.have_hit && rec_same(want, &co.hit))
                covered[i] = true;
        }
    }
    uint64_t ncov = 0;
    for (uint64_t i = 0; i < nreg; i++) {
        ncov += covered[i];
        if (!covered[i] && !g_only) {
            char a[160];
            rec_str(&cal->log[reg[i] - 1], a, sizeof a);
            fprintf(stderr, "  call %" PRIu64 " never cut: %s\n", reg[i], a);
        }
    }
    cov_print(g_full ? "power cut at every call" : "power cut sweep", &cv);
    fprintf(stderr,
            "  first flush + first compaction: %" PRIu64 "/%" PRIu64
            " steps cut (%" PRIu64 " by file name)\n",
            ncov, nreg, retries);
    free(reg);
    free(covered);
    assert_int_equal(cv.failed, 0);
    if (g_only)
        return;
    /* Every step of one whole flush and one whole compaction was cut. */
    assert_int_equal(ncov, nreg);
    /* All fire but k past the end of a run that made a few calls fewer. */
    assert_true(cv.fired + 8 >= cv.cycles);
}

/* 2. Power cut at the j-th call on a MANIFEST / .sst file. */
static void path_sweep(const char *substr, uint64_t total, uint64_t stride)
{
    coverage cv;
    cov_init(&cv);
    uint64_t seed = g_seed ^ 0xabcdef;
    for (uint64_t j = 1; j <= total; j++) {
        if (g_only ? j != g_only : !g_full && (j - 1) % stride != 0)
            continue;
        cycle_cfg c = {.mode = MODE_CUT,
                       .rule = {.path_substr = substr,
                                .power_cut_at = j,
                                .torn = (j & 1) != 0,
                                .seed = tu_splitmix(&seed)}};
        cycle_out co;
        run_cycle(substr, &c, &co, false);
        cov_add(&cv, &co);
        /* A path rule lands exactly: the j-th call on such a file. */
        if (co.fired) {
            assert_true(co.have_hit);
            assert_non_null(strstr(co.hit.path, substr));
        }
    }
    char what[64];
    snprintf(what, sizeof what, "power cut at each call on %s", substr);
    cov_print(what, &cv);
    assert_int_equal(cv.failed, 0);
    if (g_only)
        return;
    assert_true(cv.fired * 10 >= cv.cycles * 9);
    /* Both flushes and compactions were cut there. */
    uint64_t fl = 0, cp = 0;
    for (int pc = 0; pc < PC__N; pc++)
        for (int op = 0; op < CAIRN_OP__COUNT; op++) {
            fl += cv.n[ROLE_FLUSH][pc][op];
            cp += cv.n[ROLE_COMPACT][pc][op];
        }
    assert_true(fl > 0 && cp > 0);
}

static void test_power_cut_manifest(void **state)
{
    (void)state;
    calibrate();
    path_sweep("MANIFEST", g_cal.manifest_calls, 1);
}

static void test_power_cut_sst(void **state)
{
    (void)state;
    calibrate();
    path_sweep(".sst", g_cal.sst_calls, 5);
}

/* 3. Power cut while the database is created. */
static void test_power_cut_create(void **state)
{
    (void)state;
    calibrate();
    /* Count the calls of creating it. */
    rig r;
    rig_new(&r);
    cairn_options o;
    db_options(&o, &r);
    trace_restart(r.tr, NULL);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(DBDIR, &o, &db), 0);
    uint64_t n = cairn_env_fault_calls(r.fault);
    bool renamed = false;
    pthread_mutex_lock(&r.tr->mu);
    for (size_t i = 0; i < r.tr->nlog; i++)
        renamed |= r.tr->log[i].op == CAIRN_OP_RENAME;
    pthread_mutex_unlock(&r.tr->mu);
    assert_int_equal(cairn_close(db), 0);
    rig_free(&r);
    assert_true(renamed); /* CURRENT.tmp -> CURRENT */
    uint64_t seed = g_seed ^ 0xc0ffee, cut = 0;
    for (uint64_t k = 1; k <= n + 1; k++) {
        rig_new(&r);
        db_options(&o, &r);
        cairn_fault_rule rule = {.power_cut_at = k,
                                 .torn = (k & 1) != 0,
                                 .seed = tu_splitmix(&seed)};
        trace_restart(r.tr, &rule);
        db = NULL;
        int rc = cairn_open(DBDIR, &o, &db);
        if (rc == 0) {
            /* Created before the cut, or the cut hit a call whose failure
             * open survives: it must work as any database. */
            (void)cairn_close(db);
        }
        bool fired = cairn_env_fault_power_is_cut(r.fault);
        cut += fired;
        if (!fired)
            assert_int_equal(cairn_env_mem_power_loss(r.mem, rule.torn,
                                                      rule.seed), 0);
        model m;
        model_init(&m);
        const char *why = recover_and_check(&r, &m, NOPS);
        if (why)
            fprintf(stderr, "create: cut at call %" PRIu64 ": %s\n", k, why);
        assert_null(why);
        rig_free(&r);
    }
    fprintf(stderr,
            "power cut while creating: %" PRIu64 " calls, %" PRIu64
            " cuts, every one reopened as an empty, working database\n",
            n, cut);
    assert_true(cut >= n || g_only);
}

/* 3b. A crash in the middle of a flush (before its manifest edit), then
 * power cut at each call of the recovery: the open replays the log,
 * flushing on the way, and the compactions that follow. */
static void test_power_cut_recovery(void **state)
{
    (void)state;
    calibrate();
    const calib *cal = &g_cal;
    uint64_t j = 0, nth = 0, pick = 0;
    for (size_t i = 0; i < cal->n && !pick; i++) {
        const trec *r = &cal->log[i];
        if (r->pc != PC_MANIFEST)
            continue;
        j++;
        if (r->role == ROLE_FLUSH && r->op == CAIRN_OP_WRITE && ++nth == 4)
            pick = j;
    }
    assert_true(pick > 0);
    uint64_t seed = g_seed ^ 0x4ec0;
    cycle_cfg base = {.mode = MODE_CUT,
                      .rule = {.path_substr = "MANIFEST",
                               .power_cut_at = pick,
                               .seed = tu_splitmix(&seed)},
                      .second = true};
    coverage cv;
    cov_init(&cv);
    cycle_out co;
    run_cycle("recovery (count)", &base, &co, false);
    assert_false(co.failed);
    assert_true(co.fired);
    uint64_t n = co.calls2;
    uint64_t replay_flushes = co.st2.flushes;
    if (g_verbose)
        fprintf(stderr,
                "recovery: %" PRIu64 " calls, %" PRIu64 " flushes, %" PRIu64
                " compactions, files %" PRIu64 "/%" PRIu64 "/%" PRIu64
                ", background_error %d\n",
                n, co.st2.flushes, co.st2.compactions, co.st2.level_files[0],
                co.st2.level_files[1], co.st2.level_files[2],
                co.st2.background_error);
    /* The recovery flushed while replaying the log. */
    assert_true(replay_flushes >= 1);
    /* And how many of them are on the manifest. */
    base.rule2 = (cairn_fault_rule){.path_substr = "MANIFEST"};
    run_cycle("recovery (count)", &base, &co, false);
    assert_false(co.failed);
    uint64_t nm = co.calls2;
    assert_true(nm >= 2);
    /* Every call, then every manifest call by name (the compactions run
     * beside the replay, so their place in the numbering varies). */
    for (int by_name = 0; by_name < 2; by_name++)
        for (uint64_t k = 1; k <= (by_name ? nm : n + 1); k++) {
            if (g_only && k != g_only)
                continue;
            cycle_cfg c = base;
            c.rule2 = (cairn_fault_rule){
                .path_substr = by_name ? "MANIFEST" : NULL,
                .power_cut_at = k,
                .torn = (k & 1) != 0,
                .seed = tu_splitmix(&seed)};
            run_cycle("recovery", &c, &co, false);
            cov_add_hit(&cv, co.failed, co.fired2,
                        co.have_hit2 ? &co.hit2 : NULL);
        }
    char what[160];
    snprintf(what, sizeof what,
             "power cut in recovery (first cut: MANIFEST call %" PRIu64
             ", %" PRIu64 " calls to reopen, %" PRIu64 " flushes in it)",
             pick, n, replay_flushes);
    cov_print(what, &cv);
    assert_int_equal(cv.failed, 0);
    if (!g_only)
        assert_true(cv.fired >= n + nm);
}

/* 4. I/O error at global call k. */
static void fault_sweep(int error, const char *name)
{
    calibrate();
    const calib *cal = &g_cal;
    coverage cv;
    cov_init(&cv);
    uint64_t stride = g_full ? 1 : g_stride * 3;
    uint64_t by_op = 0, by_bg = 0, silent_unlinks = 0, unreported = 0;
    uint64_t refused = 0, failed_ops = 0, live = 0;
    static uint64_t unrep[ROLE__N][PC__N][CAIRN_OP__COUNT];
    memset(unrep, 0, sizeof unrep);
    for (uint64_t k = 1; k <= cal->n + 1; k++) {
        if (!planned(k, stride))
            continue;
        /* No space: a failing write first writes part of its bytes. */
        cycle_cfg c = {.mode = MODE_FAIL,
                       .rule = {.fail_at = k,
                                .fail_count = 1,
                                .error = error,
                                .short_write = error == CAIRN_ENOSPC,
                                .seed = k}};
        cycle_out co;
        run_cycle(name, &c, &co, false);
        cov_add(&cv, &co);
        refused += co.wo.ops_refused;
        live += co.wo.live_checks;
        failed_ops += co.wo.ops_failed;
        if (co.unreported) {
            char hs[160];
            rec_str(&co.hit, hs, sizeof hs);
            if (unreported++ < 5)
                fprintf(stderr,
                        "%s at call %" PRIu64 " (%s) was reported nowhere: "
                        "all %" PRIu32 " ops succeeded, background_error "
                        "stayed 0, no flush failed\n",
                        name, k, hs, co.wo.ops_done);
            unrep[co.hit.role][co.hit.pc][co.hit.op]++;
        } else if (co.fired) {
            if (co.wo.ops_failed)
                by_op++;
            else if (co.wo.rs.bg_error || co.wo.rs.flush_failures)
                by_bg++;
            else
                silent_unlinks++;
        }
    }
    char what[64];
    snprintf(what, sizeof what, "%s at call k", name);
    cov_print(what, &cv);
    fprintf(stderr,
            "  the fault reported by the op %" PRIu64
            ", by background_error %" PRIu64
            ", unreported best-effort calls %" PRIu64
            ", UNREPORTED failures %" PRIu64 "; %" PRIu64
            " failed ops (%" PRIu64 " refused before the log, checked "
            "absent); %" PRIu64 " checks of the live database after a "
            "fault\n",
            by_op, by_bg, silent_unlinks, unreported, failed_ops, refused,
            live);
    for (int r = 0; r < ROLE__N; r++)
        for (int pc = 0; pc < PC__N; pc++)
            for (int op = 0; op < CAIRN_OP__COUNT; op++)
                if (unrep[r][pc][op])
                    fprintf(stderr, "    unreported: %s: %s %s x%" PRIu64 "\n",
                            role_name[r], cairn_env_op_name((cairn_env_op)op),
                            pc_name[pc], unrep[r][pc][op]);
    assert_int_equal(cv.failed, 0);
    /* All fire but k past the end of a run that made a few calls fewer. */
    assert_true(cv.fired + 8 >= cv.cycles);
    assert_int_equal(unreported, 0);
}

static void test_eio_every_call(void **state)
{
    (void)state;
    fault_sweep(CAIRN_EIO, "EIO");
}

static void test_enospc_every_call(void **state)
{
    (void)state;
    fault_sweep(CAIRN_ENOSPC, "ENOSPC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calibrate),
        cmocka_unit_test(test_power_cut_every_call),
        cmocka_unit_test(test_power_cut_manifest),
        cmocka_unit_test(test_power_cut_sst),
        cmocka_unit_test(test_power_cut_create),
        cmocka_unit_test(test_power_cut_recovery),
        cmocka_unit_test(test_eio_every_call),
        cmocka_unit_test(test_enospc_every_call),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    free(g_cal.log);
    return rc;
}
