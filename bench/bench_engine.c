/*
 * bench_engine.c — `cairn-bench engine`: Cairn side by side with LMDB and
 * RocksDB, same machine, same disk, same run.
 *
 *   cairn-bench engine [--dir DIR] [--json] [--keys N] [--quick] [--runs N]
 *                      [--engines cairn,lmdb,rocksdb] [--duration SECS]
 *                      [--keep]
 *
 * Purpose. Measure the storage engine, not the disk (except in the durable
 * workload, which measures exactly how well each engine shares fsyncs):
 *
 *   fillseq      N auto-commit puts in key order, one thread, no fsync
 *   fillrandom   N auto-commit puts in a random order, one thread, no fsync
 *   readrandom   after fillrandom, in the same open database: N gets
 *                (at least 100000) of random existing keys, with 1 and
 *                with 2 threads
 *   rmw          read-modify-write transactions (get, bump a counter, put,
 *                commit, retry on conflict) on random keys, 1 and 2 threads,
 *                no fsync; max(N/4, 10000) transactions per measurement
 *   durable      single-key puts with sync on every commit, 1/16/64 threads,
 *                for a fixed duration; next to a raw pwrite(100 B) +
 *                fdatasync loop on a file in the same directory, one
 *                thread, run before and after the durable measurements of
 *                each run (the median of all those samples is the base)
 *
 * Every engine gets one transaction per operation: Cairn's auto-commit
 * cairn_put/cairn_get; LMDB one write txn per put and a renewed read-only
 * txn per get; RocksDB rocksdb_put/rocksdb_get (WAL on), and a pessimistic
 * TransactionDB for rmw. Sync off means CAIRN_SYNC_NONE, LMDB
 * MDB_NOSYNC|MDB_NOMETASYNC, RocksDB sync=0.
 *
 * Invariants.
 *   - Keys are 16 ASCII digits of an index in [0, N): key order is index
 *     order. Values are 100 bytes: [0,8) a counter (little-endian; 0 when
 *     loaded, +1 per rmw), [8,16) the index, [16,100) 84 bytes of a fixed
 *     pseudo-random pool at an index-dependent offset (incompressible).
 *   - Every value read is checked against that layout. After fillseq a
 *     sample is read back, after durable a sample too (a key may be missing
 *     there, never wrong); after rmw every key is read and the counters must
 *     add up to the number of committed transactions (no lost updates). Any
 *     wrong or missing value is reported and makes the program exit 1, as
 *     does an engine error. Performance targets never change the exit
 *     status.
 *   - Each measurement uses a fresh directory under DIR, removed afterwards
 *     unless --keep. Each run measures every engine once per workload,
 *     engines interleaved (the starting engine rotates from run to run);
 *     the figures reported are medians over the runs.
 *
 * Locking. Worker threads share nothing mutable but the atomic stop flag of
 * the timed workloads; each has its own counters, which the main thread
 * reads after pthread_join. The start is a barrier, so the clock starts
 * when every worker is ready. An engine handle is shared by the workers as
 * its library allows (cairn_db, MDB_env, rocksdb_t/rocksdb_transactiondb_t
 * are thread-safe); per-thread engine state (LMDB's read txn, RocksDB's
 * reusable txn object) belongs to one worker.
 *
 * Output. Progress on stderr. On stdout a table (one row per workload,
 * thread count and engine: median ops/s, cairn/<engine> ratio, each run's
 * figure) and the targets, which are informative; or, with --json, JSON
 * Lines: one object per row ({"bench":"engine","workload":...,"engine":...,
 * "threads":...,"status":...,"ops_per_sec":...,"runs":[...],...}) and a
 * final {"bench":"engine","summary":{...}}. Exit status 0 when every engine
 * ran and read back what it was given, 1 otherwise, 2 on a usage error.
 *
 * Build switches: LMDB code is compiled under CAIRN_HAVE_LMDB, RocksDB code
 * under CAIRN_HAVE_ROCKSDB; without them the engine is reported "not
 * built". -DBENCH_ENGINE_STANDALONE adds a main() (for testing this file
 * alone).
 */
#include "bench.h"

#include <cairn.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifdef CAIRN_HAVE_LMDB
#include <lmdb.h>
#endif
#ifdef CAIRN_HAVE_ROCKSDB
#include <rocksdb/c.h>
#endif

/* ------------------------------------------------------------------------
 * Keys and values
 * ------------------------------------------------------------------------ */

#define KEY_LEN 16
#define VAL_LEN 100
#define VAL_HDR 16
#define POOL_SIZE (1u << 20)
#define OUT_MAX 256 /* read buffer: longer values are wrong anyway */

static uint8_t g_pool[POOL_SIZE + VAL_LEN];

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* splitmix64: a tiny per-thread generator. */
static uint64_t rng_next(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ULL;
    return mix64(*s);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void pool_init(void)
{
    uint64_t s = 0xca17b0a7ULL;
    for (size_t i = 0; i < sizeof g_pool; i += 8) {
        uint64_t r = rng_next(&s);
        size_t n = sizeof g_pool - i < 8 ? sizeof g_pool - i : 8;
        memcpy(g_pool + i, &r, n);
    }
}

static void key_make(uint8_t k[KEY_LEN], uint64_t idx)
{
    for (int i = KEY_LEN - 1; i >= 0; i--) {
        k[i] = (uint8_t)('0' + idx % 10);
        idx /= 10;
    }
}

static const uint8_t *val_tail(uint64_t idx)
{
    return g_pool + mix64(idx ^ 0x5bd1e995ULL) % POOL_SIZE;
}

static void val_make(uint8_t v[VAL_LEN], uint64_t idx, uint64_t counter)
{
    put_le64(v, counter);
    put_le64(v + 8, idx);
    memcpy(v + VAL_HDR, val_tail(idx), VAL_LEN - VAL_HDR);
}

/* True if v is a value of key idx; *counter (may be NULL) gets its counter. */
static bool val_check(const uint8_t *v, size_t len, uint64_t idx,
                      uint64_t *counter)
{
    if (len != VAL_LEN || get_le64(v + 8) != idx ||
        memcmp(v + VAL_HDR, val_tail(idx), VAL_LEN - VAL_HDR) != 0)
        return false;
    if (counter)
        *counter = get_le64(v);
    return true;
}

/* ------------------------------------------------------------------------
 * Engines
 * ------------------------------------------------------------------------ */

typedef enum {
    MODE_NOSYNC,  /* fills and reads: no fsync per commit */
    MODE_TXN,     /* rmw: no fsync; RocksDB opens a TransactionDB */
    MODE_DURABLE, /* sync on every commit */
} open_mode;

/* Results of get/rmw: */
#define RES_OK 0
#define RES_MISSING 1 /* no such key */
#define RES_BAD 2     /* a value that is not the key's */
#define RES_ERR (-1)  /* engine error (printed) */

typedef struct engine_ops {
    const char *name;
    bool built;
    /* NULL on failure (the reason printed on stderr). */
    void *(*open)(const char *dir, open_mode mode);
    void (*close)(void *db);
    /* Per-thread state, made in the thread that uses it (NULL is fine). */
    void *(*thread_init)(void *db);
    void (*thread_fini)(void *db, void *ts);
    int (*put)(void *db, void *ts, const uint8_t *key, const uint8_t *val);
    /* Copies at most OUT_MAX bytes to out, *vlen = the value's length. */
    int (*get)(void *db, void *ts, const uint8_t *key, uint8_t *out,
               size_t *vlen);
    /* Loads indices [first, first + n) with counter 0, in few commits. */
    int (*load)(void *db, uint64_t first, uint64_t n);
    /* One read-modify-write transaction on key idx (retries counted). */
    int (*rmw)(void *db, void *ts, uint64_t idx, uint64_t *retries);
} engine_ops;

static void copy_out(uint8_t *out, size_t *vlen, const void *v, size_t n)
{
    *vlen = n;
    memcpy(out, v, n < OUT_MAX ? n : OUT_MAX);
}

/* ---- Cairn ---- */

static void *cairn_e_open(const char *dir, open_mode mode)
{
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = mode == MODE_DURABLE ? CAIRN_SYNC_ALWAYS : CAIRN_SYNC_NONE;
    o.create_if_missing = true;
    cairn_db *db = NULL;
    int rc = cairn_open(dir, &o, &db);
    if (rc != CAIRN_OK) {
        fprintf(stderr, "cairn: open %s: %s (%d)\n", dir, cairn_strerror(rc),
                rc);
        return NULL;
    }
    return db;
}

static void cairn_e_close(void *db)
{
    int rc = cairn_close(db);
    if (rc != CAIRN_OK)
        fprintf(stderr, "cairn: close: %s (%d)\n", cairn_strerror(rc), rc);
}

static int cairn_e_put(void *db, void *ts, const uint8_t *key,
                       const uint8_t *val)
{
    (void)ts;
    int rc = cairn_put(db, key, KEY_LEN, val, VAL_LEN, NULL);
    if (rc != CAIRN_OK) {
        fprintf(stderr, "cairn: put: %s (%d)\n", cairn_strerror(rc), rc);
        return RES_ERR;
    }
    return RES_OK;
}

static int cairn_e_get(void *db, void *ts, const uint8_t *key, uint8_t *out,
                       size_t *vlen)
{
    (void)ts;
    void *v = NULL;
    size_t n = 0;
    int rc = cairn_get(db, key, KEY_LEN, &v, &n);
    if (rc == CAIRN_ENOTFOUND)
        return RES_MISSING;
    if (rc != CAIRN_OK) {
        fprintf(stderr, "cairn: get: %s (%d)\n", cairn_strerror(rc), rc);
        return RES_ERR;
    }
    if (v == NULL) {
        fprintf(stderr, "cairn: get: success with a NULL value\n");
        return RES_BAD;
    }
    copy_out(out, vlen, v, n);
    cairn_free(v);
    return RES_OK;
}

#define LOAD_BATCH 1000

static int cairn_e_load(void *db, uint64_t first, uint64_t n)
{
    static uint8_t keys[LOAD_BATCH][KEY_LEN], vals[LOAD_BATCH][VAL_LEN];
    cairn_write w[LOAD_BATCH];
    for (uint64_t done = 0; done < n;) {
        size_t m = n - done < LOAD_BATCH ? (size_t)(n - done) : LOAD_BATCH;
        for (size_t i = 0; i < m; i++) {
            key_make(keys[i], first + done + i);
            val_make(vals[i], first + done + i, 0);
            w[i] = (cairn_write){keys[i], KEY_LEN, vals[i], VAL_LEN};
        }
        int rc = cairn_write_batch(db, w, m, NULL);
        if (rc != CAIRN_OK) {
            fprintf(stderr, "cairn: write_batch: %s (%d)\n",
                    cairn_strerror(rc), rc);
            return RES_ERR;
        }
        done += m;
    }
    return RES_OK;
}

static int cairn_e_rmw(void *db, void *ts, uint64_t idx, uint64_t *retries)
{
    (void)ts;
    uint8_t key[KEY_LEN], nv[VAL_LEN];
    key_make(key, idx);
    for (;;) {
        cairn_txn *t = NULL;
        int rc = cairn_txn_begin(db, NULL, &t);
        if (rc != CAIRN_OK) {
            fprintf(stderr, "cairn: txn_begin: %s (%d)\n", cairn_strerror(rc),
                    rc);
            return RES_ERR;
        }
        void *v = NULL;
        size_t n = 0;
        rc = cairn_txn_get(t, key, KEY_LEN, &v, &n);
        if (rc == CAIRN_ECONFLICT) {
            cairn_txn_abort(t);
            ++*retries;
            continue;
        }
        if (rc == CAIRN_ENOTFOUND) {
            cairn_txn_abort(t);
            return RES_MISSING;
        }
        if (rc != CAIRN_OK) {
            cairn_txn_abort(t);
            fprintf(stderr, "cairn: txn_get: %s (%d)\n", cairn_strerror(rc),
                    rc);
            return RES_ERR;
        }
        uint64_t c = 0;
        bool ok = v != NULL && val_check(v, n, idx, &c);
        cairn_free(v);
        if (!ok) {
            cairn_txn_abort(t);
            return RES_BAD;
        }
        val_make(nv, idx, c + 1);
        rc = cairn_txn_put(t, key, KEY_LEN, nv, VAL_LEN);
        if (rc == CAIRN_ECONFLICT) {
            cairn_txn_abort(t);
            ++*retries;
            continue;
        }
        if (rc != CAIRN_OK) {
            cairn_txn_abort(t);
            fprintf(stderr, "cairn: txn_put: %s (%d)\n", cairn_strerror(rc),
                    rc);
            return RES_ERR;
        }
        rc = cairn_txn_commit(t, NULL); /* frees t in every case */
        if (rc == CAIRN_ECONFLICT) {
            ++*retries;
            continue;
        }
        if (rc != CAIRN_OK) {
            fprintf(stderr, "cairn: txn_commit: %s (%d)\n", cairn_strerror(rc),
                    rc);
            return RES_ERR;
        }
        return RES_OK;
    }
}

/* ---- LMDB ---- */

#ifdef CAIRN_HAVE_LMDB
typedef struct lmdb_db {
    MDB_env *env;
    MDB_dbi dbi;
} lmdb_db;

typedef struct lmdb_ts {
    MDB_txn *rtxn; /* reset between gets, renewed for each */
} lmdb_ts;

#define LMDB_MAPSIZE ((size_t)4 << 30)

static void lmdb_err(const char *what, int rc)
{
    fprintf(stderr, "lmdb: %s: %s (%d)\n", what, mdb_strerror(rc), rc);
}

static void *lmdb_e_open(const char *dir, open_mode mode)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "lmdb: mkdir %s: %s\n", dir, strerror(errno));
        return NULL;
    }
    lmdb_db *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    unsigned flags = MDB_NOTLS;
    if (mode != MODE_DURABLE)
        flags |= MDB_NOSYNC | MDB_NOMETASYNC;
    int rc = mdb_env_create(&d->env);
    if (rc != 0) {
        lmdb_err("env_create", rc);
        free(d);
        return NULL;
    }
    if ((rc = mdb_env_set_mapsize(d->env, LMDB_MAPSIZE)) != 0 ||
        (rc = mdb_env_set_maxreaders(d->env, 256)) != 0 ||
        (rc = mdb_env_open(d->env, dir, flags, 0644)) != 0) {
        lmdb_err("env_open", rc);
        mdb_env_close(d->env);
        free(d);
        return NULL;
    }
    MDB_txn *t = NULL;
    if ((rc = mdb_txn_begin(d->env, NULL, 0, &t)) != 0 ||
        (rc = mdb_dbi_open(t, NULL, 0, &d->dbi)) != 0 ||
        (rc = mdb_txn_commit(t)) != 0) {
        lmdb_err("dbi_open", rc);
        mdb_env_close(d->env);
        free(d);
        return NULL;
    }
    return d;
}

static void lmdb_e_close(void *db)
{
    lmdb_db *d = db;
    mdb_env_close(d->env);
    free(d);
}

static void *lmdb_e_thread_init(void *db)
{
    (void)db;
    return calloc(1, sizeof(lmdb_ts));
}

static void lmdb_e_thread_fini(void *db, void *ts)
{
    (void)db;
    lmdb_ts *t = ts;
    if (t != NULL && t->rtxn != NULL)
        mdb_txn_abort(t->rtxn);
    free(t);
}

static int lmdb_e_put(void *db, void *ts, const uint8_t *key,
                      const uint8_t *val)
{
    (void)ts;
    lmdb_db *d = db;
    MDB_txn *t = NULL;
    MDB_val k = {KEY_LEN, (void *)key}, v = {VAL_LEN, (void *)val};
    int rc = mdb_txn_begin(d->env, NULL, 0, &t);
    if (rc != 0) {
        lmdb_err("txn_begin", rc);
        return RES_ERR;
    }
    if ((rc = mdb_put(t, d->dbi, &k, &v, 0)) != 0) {
        mdb_txn_abort(t);
        lmdb_err("put", rc);
        return RES_ERR;
    }
    if ((rc = mdb_txn_commit(t)) != 0) {
        lmdb_err("commit", rc);
        return RES_ERR;
    }
    return RES_OK;
}

static int lmdb_e_get(void *db, void *ts, const uint8_t *key, uint8_t *out,
                      size_t *vlen)
{
    lmdb_db *d = db;
    lmdb_ts *t = ts;
    int rc;
    if (t == NULL)
        return RES_ERR;
    if (t->rtxn == NULL)
        rc = mdb_txn_begin(d->env, NULL, MDB_RDONLY, &t->rtxn);
    else
        rc = mdb_txn_renew(t->rtxn);
    if (rc != 0) {
        lmdb_err("read txn", rc);
        return RES_ERR;
    }
    MDB_val k = {KEY_LEN, (void *)key}, v = {0, NULL};
    rc = mdb_get(t->rtxn, d->dbi, &k, &v);
    if (rc == 0)
        copy_out(out, vlen, v.mv_data, v.mv_size);
    mdb_txn_reset(t->rtxn);
    if (rc == MDB_NOTFOUND)
        return RES_MISSING;
    if (rc != 0) {
        lmdb_err("get", rc);
        return RES_ERR;
    }
    return RES_OK;
}

static int lmdb_e_load(void *db, uint64_t first, uint64_t n)
{
    lmdb_db *d = db;
    uint8_t key[KEY_LEN], val[VAL_LEN];
    for (uint64_t done = 0; done < n;) {
        MDB_txn *t = NULL;
        int rc = mdb_txn_begin(d->env, NULL, 0, &t);
        if (rc != 0) {
            lmdb_err("txn_begin", rc);
            return RES_ERR;
        }
        for (uint64_t i = 0; i < 10000 && done < n; i++, done++) {
            key_make(key, first + done);
            val_make(val, first + done, 0);
            MDB_val k = {KEY_LEN, key}, v = {VAL_LEN, val};
            if ((rc = mdb_put(t, d->dbi, &k, &v, 0)) != 0) {
                mdb_txn_abort(t);
                lmdb_err("put", rc);
                return RES_ERR;
            }
        }
        if ((rc = mdb_txn_commit(t)) != 0) {
            lmdb_err("commit", rc);
            return RES_ERR;
        }
    }
    return RES_OK;
}

static int lmdb_e_rmw(void *db, void *ts, uint64_t idx, uint64_t *retries)
{
    (void)ts;
    (void)retries; /* one writer at a time: no conflicts */
    lmdb_db *d = db;
    uint8_t key[KEY_LEN], nv[VAL_LEN];
    key_make(key, idx);
    MDB_txn *t = NULL;
    int rc = mdb_txn_begin(d->env, NULL, 0, &t);
    if (rc != 0) {
        lmdb_err("txn_begin", rc);
        return RES_ERR;
    }
    MDB_val k = {KEY_LEN, key}, v = {0, NULL};
    rc = mdb_get(t, d->dbi, &k, &v);
    if (rc == MDB_NOTFOUND) {
        mdb_txn_abort(t);
        return RES_MISSING;
    }
    if (rc != 0) {
        mdb_txn_abort(t);
        lmdb_err("get", rc);
        return RES_ERR;
    }
    uint64_t c = 0;
    if (!val_check(v.mv_data, v.mv_size, idx, &c)) {
        mdb_txn_abort(t);
        return RES_BAD;
    }
    val_make(nv, idx, c + 1);
    MDB_val nval = {VAL_LEN, nv};
    if ((rc = mdb_put(t, d->dbi, &k, &nval, 0)) != 0) {
        mdb_txn_abort(t);
        lmdb_err("put", rc);
        return RES_ERR;
    }
    if ((rc = mdb_txn_commit(t)) != 0) {
        lmdb_err("commit", rc);
        return RES_ERR;
    }
    return RES_OK;
}
#endif /* CAIRN_HAVE_LMDB */

/* ---- RocksDB ---- */

#ifdef CAIRN_HAVE_ROCKSDB
typedef struct rocks_db {
    rocksdb_t *db;                /* MODE_NOSYNC, MODE_DURABLE */
    rocksdb_transactiondb_t *tdb; /* MODE_TXN */
    rocksdb_options_t *opts;
    rocksdb_transactiondb_options_t *tdbopts;
    rocksdb_transaction_options_t *topts;
    rocksdb_writeoptions_t *wo;
    rocksdb_readoptions_t *ro;
} rocks_db;

typedef struct rocks_ts {
    rocksdb_transaction_t *txn; /* reused from one transaction to the next */
} rocks_ts;

#define ROCKS_WRITE_BUFFER ((size_t)64 << 20)

static int g_rocks_compression = -1; /* as RocksDB reported it */

static void rocks_free_opts(rocks_db *d)
{
    if (d->opts)
        rocksdb_options_destroy(d->opts);
    if (d->tdbopts)
        rocksdb_transactiondb_options_destroy(d->tdbopts);
    if (d->topts)
        rocksdb_transaction_options_destroy(d->topts);
    if (d->wo)
        rocksdb_writeoptions_destroy(d->wo);
    if (d->ro)
        rocksdb_readoptions_destroy(d->ro);
    free(d);
}

static void rocks_err(const char *what, char *err)
{
    fprintf(stderr, "rocksdb: %s: %s\n", what, err ? err : "?");
    rocksdb_free(err);
}

static void *rocks_e_open(const char *dir, open_mode mode)
{
    rocks_db *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(d->opts, 1);
    rocksdb_options_set_write_buffer_size(d->opts, ROCKS_WRITE_BUFFER);
    g_rocks_compression = rocksdb_options_get_compression(d->opts);
    d->wo = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(d->wo, mode == MODE_DURABLE);
    d->ro = rocksdb_readoptions_create();
    char *err = NULL;
    if (mode == MODE_TXN) {
        d->tdbopts = rocksdb_transactiondb_options_create();
        d->topts = rocksdb_transaction_options_create();
        d->tdb = rocksdb_transactiondb_open(d->opts, d->tdbopts, dir, &err);
    } else {
        d->db = rocksdb_open(d->opts, dir, &err);
    }
    if (err != NULL || (d->db == NULL && d->tdb == NULL)) {
        rocks_err("open", err);
        rocks_free_opts(d);
        return NULL;
    }
    return d;
}

static void rocks_e_close(void *db)
{
    rocks_db *d = db;
    if (d->tdb)
        rocksdb_transactiondb_close(d->tdb);
    if (d->db)
        rocksdb_close(d->db);
    rocks_free_opts(d);
}

static void *rocks_e_thread_init(void *db)
{
    (void)db;
    return calloc(1, sizeof(rocks_ts));
}

static void rocks_e_thread_fini(void *db, void *ts)
{
    (void)db;
    rocks_ts *t = ts;
    if (t != NULL && t->txn != NULL)
        rocksdb_transaction_destroy(t->txn);
    free(t);
}

static int rocks_e_put(void *db, void *ts, const uint8_t *key,
                       const uint8_t *val)
{
    (void)ts;
    rocks_db *d = db;
    char *err = NULL;
    if (d->tdb)
        rocksdb_transactiondb_put(d->tdb, d->wo, (const char *)key, KEY_LEN,
                                  (const char *)val, VAL_LEN, &err);
    else
        rocksdb_put(d->db, d->wo, (const char *)key, KEY_LEN,
                    (const char *)val, VAL_LEN, &err);
    if (err != NULL) {
        rocks_err("put", err);
        return RES_ERR;
    }
    return RES_OK;
}

static int rocks_e_get(void *db, void *ts, const uint8_t *key, uint8_t *out,
                       size_t *vlen)
{
    (void)ts;
    rocks_db *d = db;
    char *err = NULL;
    size_t n = 0;
    char *v = d->tdb ? rocksdb_transactiondb_get(d->tdb, d->ro,
                                                 (const char *)key, KEY_LEN,
                                                 &n, &err)
                     : rocksdb_get(d->db, d->ro, (const char *)key, KEY_LEN,
                                   &n, &err);
    if (err != NULL) {
        rocks_err("get", err);
        return RES_ERR;
    }
    if (v == NULL)
        return RES_MISSING;
    copy_out(out, vlen, v, n);
    rocksdb_free(v);
    return RES_OK;
}

static int rocks_e_load(void *db, uint64_t first, uint64_t n)
{
    rocks_db *d = db;
    uint8_t key[KEY_LEN], val[VAL_LEN];
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    for (uint64_t done = 0; done < n;) {
        rocksdb_writebatch_clear(b);
        for (uint64_t i = 0; i < LOAD_BATCH && done < n; i++, done++) {
            key_make(key, first + done);
            val_make(val, first + done, 0);
            rocksdb_writebatch_put(b, (const char *)key, KEY_LEN,
                                   (const char *)val, VAL_LEN);
        }
        char *err = NULL;
        if (d->tdb)
            rocksdb_transactiondb_write(d->tdb, d->wo, b, &err);
        else
            rocksdb_write(d->db, d->wo, b, &err);
        if (err != NULL) {
            rocksdb_writebatch_destroy(b);
            rocks_err("write", err);
            return RES_ERR;
        }
    }
    rocksdb_writebatch_destroy(b);
    return RES_OK;
}

/* Statuses after which the transaction is simply tried again. */
static bool rocks_retryable(const char *err)
{
    return strstr(err, "Resource busy") != NULL ||
           strstr(err, "timed out") != NULL ||
           strstr(err, "Try again") != NULL || strstr(err, "expired") != NULL;
}

static int rocks_e_rmw(void *db, void *ts, uint64_t idx, uint64_t *retries)
{
    rocks_db *d = db;
    rocks_ts *t = ts;
    if (d->tdb == NULL || t == NULL)
        return RES_ERR;
    uint8_t key[KEY_LEN], nv[VAL_LEN];
    key_make(key, idx);
    for (;;) {
        char *err = NULL, *err2 = NULL;
        t->txn = rocksdb_transaction_begin(d->tdb, d->wo, d->topts, t->txn);
        size_t n = 0;
        char *v = rocksdb_transaction_get_for_update(
            t->txn, d->ro, (const char *)key, KEY_LEN, &n, 1, &err);
        if (err == NULL && v == NULL) {
            rocksdb_transaction_rollback(t->txn, &err2);
            rocksdb_free(err2);
            return RES_MISSING;
        }
        if (err == NULL) {
            uint64_t c = 0;
            bool ok = val_check((const uint8_t *)v, n, idx, &c);
            rocksdb_free(v);
            if (!ok) {
                rocksdb_transaction_rollback(t->txn, &err2);
                rocksdb_free(err2);
                return RES_BAD;
            }
            val_make(nv, idx, c + 1);
            rocksdb_transaction_put(t->txn, (const char *)key, KEY_LEN,
                                    (const char *)nv, VAL_LEN, &err);
        }
        if (err == NULL)
            rocksdb_transaction_commit(t->txn, &err);
        if (err == NULL)
            return RES_OK;
        rocksdb_transaction_rollback(t->txn, &err2);
        rocksdb_free(err2);
        if (rocks_retryable(err)) {
            rocksdb_free(err);
            ++*retries;
            continue;
        }
        rocks_err("rmw transaction", err);
        return RES_ERR;
    }
}

static const char *rocks_compression_name(int c)
{
    switch (c) {
    case rocksdb_no_compression: return "none";
    case rocksdb_snappy_compression: return "snappy";
    case rocksdb_zlib_compression: return "zlib";
    case rocksdb_bz2_compression: return "bz2";
    case rocksdb_lz4_compression: return "lz4";
    case rocksdb_lz4hc_compression: return "lz4hc";
    case rocksdb_xpress_compression: return "xpress";
    case rocksdb_zstd_compression: return "zstd";
    default: return "unknown";
    }
}
#endif /* CAIRN_HAVE_ROCKSDB */

enum { ENG_CAIRN, ENG_LMDB, ENG_ROCKSDB, NENGINES, ENG_RAW = NENGINES };

static const engine_ops ENGINES[NENGINES] = {
    [ENG_CAIRN] = {"cairn", true, cairn_e_open, cairn_e_close, NULL, NULL,
                   cairn_e_put, cairn_e_get, cairn_e_load, cairn_e_rmw},
#ifdef CAIRN_HAVE_LMDB
    [ENG_LMDB] = {"lmdb", true, lmdb_e_open, lmdb_e_close, lmdb_e_thread_init,
                  lmdb_e_thread_fini, lmdb_e_put, lmdb_e_get, lmdb_e_load,
                  lmdb_e_rmw},
#else
    [ENG_LMDB] = {"lmdb", false, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                  NULL},
#endif
#ifdef CAIRN_HAVE_ROCKSDB
    [ENG_ROCKSDB] = {"rocksdb", true, rocks_e_open, rocks_e_close,
                     rocks_e_thread_init, rocks_e_thread_fini, rocks_e_put,
                     rocks_e_get, rocks_e_load, rocks_e_rmw},
#else
    [ENG_ROCKSDB] = {"rocksdb", false, NULL, NULL, NULL, NULL, NULL, NULL,
                     NULL, NULL},
#endif
};

static const char *engine_name(int ei)
{
    return ei == ENG_RAW ? "raw_fsync" : ENGINES[ei].name;
}

static void *ts_init(const engine_ops *e, void *db)
{
    return e->thread_init ? e->thread_init(db) : NULL;
}

static void ts_fini(const engine_ops *e, void *db, void *ts)
{
    if (e->thread_fini)
        e->thread_fini(db, ts);
}

/* ------------------------------------------------------------------------
 * Configuration and results
 * ------------------------------------------------------------------------ */

enum { W_FILLSEQ, W_FILLRANDOM, W_READRANDOM, W_RMW, W_DURABLE };
static const char *const WL_NAMES[] = {"fillseq", "fillrandom", "readrandom",
                                       "rmw", "durable"};

typedef struct row_def {
    int wl;
    int threads;
} row_def;

static const row_def ROWS[] = {
    {W_FILLSEQ, 1}, {W_FILLRANDOM, 1}, {W_READRANDOM, 1}, {W_READRANDOM, 2},
    {W_RMW, 1},     {W_RMW, 2},        {W_DURABLE, 1},    {W_DURABLE, 16},
    {W_DURABLE, 64},
};
#define NROWS (sizeof ROWS / sizeof ROWS[0])

enum { ST_OFF, ST_NOTBUILT, ST_OK, ST_ERROR };

typedef struct result {
    int status;
    int n;          /* runs recorded */
    double *ops;    /* ops/s of each run */
    double *cps;    /* Cairn durable: commits per log fsync, each run */
    uint64_t mismatches, retries, errors;
} result;

static struct {
    const char *dir;
    bool json, keep;
    uint64_t keys;
    int runs;
    double duration;
    bool selected[NENGINES];
} g_cfg;

static result g_res[NROWS][NENGINES + 1]; /* + ENG_RAW (durable rows) */
static uint32_t *g_perm;                  /* fillrandom order */
static uint64_t g_mismatches, g_errors;

static result *res_at(int wl, int threads, int ei)
{
    for (size_t r = 0; r < NROWS; r++)
        if (ROWS[r].wl == wl && ROWS[r].threads == threads)
            return &g_res[r][ei];
    return NULL;
}

static void res_record(result *r, double ops, double cps)
{
    r->ops[r->n] = ops;
    r->cps[r->n] = cps;
    r->n++;
}

static void res_fail(result *r)
{
    r->status = ST_ERROR;
    r->errors++;
    g_errors++;
}

static void res_mismatch(result *r, uint64_t n)
{
    r->mismatches += n;
    g_mismatches += n;
}

static double res_median(const result *r)
{
    return bench_median(r->ops, (size_t)r->n);
}

static void progress(int run, int wl, int threads, int ei, double ops,
                     const char *extra)
{
    char b[32];
    fprintf(stderr, "[%d/%d] %-10s %2d thr  %-9s %9s ops/s%s\n", run + 1,
            g_cfg.runs, WL_NAMES[wl], threads, engine_name(ei),
            bench_fmt_rate(ops, b, sizeof b), extra ? extra : "");
}

/* ------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------ */

static int rm_cb(const char *p, const struct stat *sb, int flag,
                 struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(p) != 0 && errno != ENOENT)
        fprintf(stderr, "remove %s: %s\n", p, strerror(errno));
    return 0;
}

static void rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        nftw(path, rm_cb, 32, FTW_DEPTH | FTW_PHYS);
}

static int mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return -1;
            buf[i] = c;
        }
    }
    return 0;
}

/* DIR/<workload>[-<threads>t]-<engine>-r<run> (threads 0: the phase
 * covers several thread counts in one database). */
static void wl_dir(char *buf, size_t n, int wl, int threads, int ei, int run)
{
    char t[16] = "";
    if (threads > 0)
        snprintf(t, sizeof t, "-%dt", threads);
    snprintf(buf, n, "%s/%s%s-%s-r%d", g_cfg.dir, WL_NAMES[wl], t,
             engine_name(ei), run + 1);
}

static void wl_done(const char *dir)
{
    if (!g_cfg.keep)
        rm_rf(dir);
}

/* ------------------------------------------------------------------------
 * Worker threads
 * ------------------------------------------------------------------------ */

enum { K_READ, K_RMW, K_DURABLE };

static atomic_bool g_stop;

typedef struct worker {
    const engine_ops *e;
    void *db;
    int kind;
    uint64_t nops; /* K_READ, K_RMW */
    uint64_t seed;
    pthread_barrier_t *start;
    /* out */
    uint64_t done, mismatches, retries;
    int err;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    const engine_ops *e = w->e;
    void *ts = ts_init(e, w->db);
    if (e->thread_init != NULL && ts == NULL)
        w->err = 1;
    pthread_barrier_wait(w->start);
    uint64_t s = w->seed, n = g_cfg.keys;
    uint8_t key[KEY_LEN], val[VAL_LEN], out[OUT_MAX];
    size_t vlen;
    uint64_t c;
    int rc;
    if (w->err)
        goto out;
    switch (w->kind) {
    case K_READ:
        for (uint64_t i = 0; i < w->nops; i++) {
            uint64_t idx = rng_next(&s) % n;
            key_make(key, idx);
            rc = e->get(w->db, ts, key, out, &vlen);
            if (rc == RES_ERR) {
                w->err = 1;
                break;
            }
            if (rc != RES_OK || !val_check(out, vlen, idx, &c) || c != 0)
                w->mismatches++;
            w->done++;
        }
        break;
    case K_RMW:
        for (uint64_t i = 0; i < w->nops; i++) {
            rc = e->rmw(w->db, ts, rng_next(&s) % n, &w->retries);
            if (rc == RES_ERR) {
                w->err = 1;
                break;
            }
            if (rc != RES_OK)
                w->mismatches++;
            else
                w->done++; /* committed */
        }
        break;
    case K_DURABLE:
        while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
            uint64_t idx = rng_next(&s) % n;
            key_make(key, idx);
            val_make(val, idx, 0);
            if (e->put(w->db, ts, key, val) != RES_OK) {
                w->err = 1;
                break;
            }
            w->done++;
        }
        break;
    }
out:
    ts_fini(e, w->db, ts);
    return NULL;
}

typedef struct run_out {
    double secs;
    uint64_t done, mismatches, retries;
    int err;
} run_out;

/* Runs nthreads workers; K_READ/K_RMW split total_ops among them, K_DURABLE
 * runs for g_cfg.duration. Returns -1 if threads could not be started. */
static int run_threads(const engine_ops *e, void *db, int kind, int nthreads,
                       uint64_t total_ops, uint64_t seed, run_out *o)
{
    memset(o, 0, sizeof *o);
    worker *w = calloc((size_t)nthreads, sizeof *w);
    pthread_t *tid = calloc((size_t)nthreads, sizeof *tid);
    pthread_barrier_t start;
    if (w == NULL || tid == NULL ||
        pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1) != 0) {
        free(w);
        free(tid);
        return -1;
    }
    atomic_store(&g_stop, false);
    int started = 0;
    for (int i = 0; i < nthreads; i++) {
        w[i] = (worker){.e = e,
                        .db = db,
                        .kind = kind,
                        .nops = total_ops / (uint64_t)nthreads +
                                ((uint64_t)i < total_ops % (uint64_t)nthreads),
                        .seed = mix64(seed * 1000003u + (uint64_t)i + 1),
                        .start = &start};
        if (pthread_create(&tid[i], NULL, worker_main, &w[i]) != 0)
            break;
        started++;
    }
    if (started < nthreads) {
        /* Cannot happen in practice; the started workers are stuck at the
         * barrier, so give up loudly rather than hang or leak them. */
        fprintf(stderr, "engine: pthread_create failed after %d threads\n",
                started);
        exit(1);
    }
    pthread_barrier_wait(&start);
    double t0 = bench_now();
    if (kind == K_DURABLE) {
        struct timespec d = {(time_t)g_cfg.duration,
                             (long)((g_cfg.duration - (double)(time_t)
                                                          g_cfg.duration) *
                                    1e9)};
        while (nanosleep(&d, &d) != 0 && errno == EINTR)
            ;
        atomic_store(&g_stop, true);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);
    o->secs = bench_now() - t0;
    for (int i = 0; i < nthreads; i++) {
        o->done += w[i].done;
        o->mismatches += w[i].mismatches;
        o->retries += w[i].retries;
        o->err |= w[i].err;
    }
    pthread_barrier_destroy(&start);
    free(w);
    free(tid);
    return 0;
}

/* ------------------------------------------------------------------------
 * Verification (not timed)
 * ------------------------------------------------------------------------ */

/* Reads up to `samples` random keys; a key may be absent only if
 * allow_missing. Returns the number of wrong reads, or -1 on an error. */
static int64_t verify_sample(const engine_ops *e, void *db, uint64_t samples,
                             uint64_t seed, bool allow_missing)
{
    void *ts = ts_init(e, db);
    uint64_t s = seed, bad = 0, c;
    uint8_t key[KEY_LEN], out[OUT_MAX];
    size_t vlen;
    int64_t ret = 0;
    for (uint64_t i = 0; i < samples; i++) {
        uint64_t idx = rng_next(&s) % g_cfg.keys;
        key_make(key, idx);
        int rc = e->get(db, ts, key, out, &vlen);
        if (rc == RES_ERR) {
            ret = -1;
            break;
        }
        if (rc == RES_MISSING && allow_missing)
            continue;
        if (rc != RES_OK || !val_check(out, vlen, idx, &c) || c != 0) {
            if (bad < 5)
                fprintf(stderr, "%s: WRONG READ of key %016llu (%s)\n",
                        e->name, (unsigned long long)idx,
                        rc == RES_MISSING ? "missing" : "bad value");
            bad++;
        }
    }
    ts_fini(e, db, ts);
    return ret < 0 ? ret : (int64_t)bad;
}

/* Reads every key; *sum gets the sum of the counters. Returns the number
 * of missing or wrong values, or -1 on an error. */
static int64_t sum_counters(const engine_ops *e, void *db, uint64_t *sum)
{
    void *ts = ts_init(e, db);
    uint64_t bad = 0, c;
    uint8_t key[KEY_LEN], out[OUT_MAX];
    size_t vlen;
    int64_t ret = 0;
    *sum = 0;
    for (uint64_t idx = 0; idx < g_cfg.keys; idx++) {
        key_make(key, idx);
        int rc = e->get(db, ts, key, out, &vlen);
        if (rc == RES_ERR) {
            ret = -1;
            break;
        }
        if (rc != RES_OK || !val_check(out, vlen, idx, &c)) {
            if (bad < 5)
                fprintf(stderr, "%s: WRONG READ of key %016llu (%s)\n",
                        e->name, (unsigned long long)idx,
                        rc == RES_MISSING ? "missing" : "bad value");
            bad++;
            continue;
        }
        *sum += c;
    }
    ts_fini(e, db, ts);
    return ret < 0 ? ret : (int64_t)bad;
}

/* ------------------------------------------------------------------------
 * Workloads
 * ------------------------------------------------------------------------ */

static bool usable(int ei, int wl, int threads)
{
    result *r = res_at(wl, threads, ei);
    return r != NULL && r->status == ST_OK;
}

static void *open_fresh(const engine_ops *e, const char *dir, open_mode m)
{
    rm_rf(dir);
    return e->open(dir, m);
}

/* One single-threaded fill in the main thread; returns ops/s or -1. */
static double fill(const engine_ops *e, void *db, bool seq)
{
    void *ts = ts_init(e, db);
    uint8_t key[KEY_LEN], val[VAL_LEN];
    double t0 = bench_now();
    for (uint64_t i = 0; i < g_cfg.keys; i++) {
        uint64_t idx = seq ? i : g_perm[i];
        key_make(key, idx);
        val_make(val, idx, 0);
        if (e->put(db, ts, key, val) != RES_OK) {
            ts_fini(e, db, ts);
            return -1;
        }
    }
    double secs = bench_now() - t0;
    ts_fini(e, db, ts);
    return (double)g_cfg.keys / secs;
}

static void phase_fillseq(int ei, int run)
{
    const engine_ops *e = &ENGINES[ei];
    result *r = res_at(W_FILLSEQ, 1, ei);
    if (r->status != ST_OK)
        return;
    char dir[4200];
    wl_dir(dir, sizeof dir, W_FILLSEQ, 0, ei, run);
    void *db = open_fresh(e, dir, MODE_NOSYNC);
    if (db == NULL) {
        res_fail(r);
        return;
    }
    double ops = fill(e, db, true);
    if (ops < 0) {
        res_fail(r);
    } else {
        res_record(r, ops, 0);
        progress(run, W_FILLSEQ, 1, ei, ops, NULL);
        uint64_t n = g_cfg.keys < 20000 ? g_cfg.keys : 20000;
        int64_t bad = verify_sample(e, db, n, 0xf111 + (uint64_t)run, false);
        if (bad < 0)
            res_fail(r);
        else if (bad > 0)
            res_mismatch(r, (uint64_t)bad);
    }
    e->close(db);
    wl_done(dir);
}

/* N gets per readrandom measurement (at least 100000, so that tiny key
 * counts still time something). */
static uint64_t read_ops(void)
{
    return g_cfg.keys > 100000 ? g_cfg.keys : 100000;
}

static void phase_fillrandom_read(int ei, int run)
{
    const engine_ops *e = &ENGINES[ei];
    result *rf = res_at(W_FILLRANDOM, 1, ei);
    if (rf->status != ST_OK)
        return;
    char dir[4200];
    wl_dir(dir, sizeof dir, W_FILLRANDOM, 0, ei, run);
    void *db = open_fresh(e, dir, MODE_NOSYNC);
    if (db == NULL) {
        res_fail(rf);
        return;
    }
    double ops = fill(e, db, false);
    if (ops < 0) {
        res_fail(rf);
        e->close(db);
        wl_done(dir);
        return;
    }
    res_record(rf, ops, 0);
    progress(run, W_FILLRANDOM, 1, ei, ops, NULL);
    static const int thr[] = {1, 2};
    for (size_t k = 0; k < 2; k++) {
        result *rr = res_at(W_READRANDOM, thr[k], ei);
        if (rr->status != ST_OK)
            continue;
        run_out o;
        if (run_threads(e, db, K_READ, thr[k], read_ops(),
                        0x7ead + (uint64_t)run * 7 + k, &o) != 0 ||
            o.err) {
            res_fail(rr);
            continue;
        }
        char extra[64] = "";
        if (o.mismatches) {
            res_mismatch(rr, o.mismatches);
            snprintf(extra, sizeof extra, "  WRONG READS: %llu",
                     (unsigned long long)o.mismatches);
        }
        double rops = (double)o.done / o.secs;
        res_record(rr, rops, 0);
        progress(run, W_READRANDOM, thr[k], ei, rops, extra);
    }
    e->close(db);
    wl_done(dir);
}

static void phase_rmw(int ei, int run)
{
    const engine_ops *e = &ENGINES[ei];
    if (!usable(ei, W_RMW, 1) && !usable(ei, W_RMW, 2))
        return;
    char dir[4200];
    wl_dir(dir, sizeof dir, W_RMW, 0, ei, run);
    void *db = open_fresh(e, dir, MODE_TXN);
    if (db == NULL || e->load(db, 0, g_cfg.keys) != RES_OK) {
        res_fail(res_at(W_RMW, 1, ei));
        res_fail(res_at(W_RMW, 2, ei));
        if (db)
            e->close(db);
        wl_done(dir);
        return;
    }
    uint64_t commits = 0, nops = g_cfg.keys / 4 > 10000 ? g_cfg.keys / 4
                                                        : 10000;
    static const int thr[] = {1, 2};
    result *last = NULL;
    for (size_t k = 0; k < 2; k++) {
        result *r = res_at(W_RMW, thr[k], ei);
        if (r->status != ST_OK)
            continue;
        run_out o;
        if (run_threads(e, db, K_RMW, thr[k], nops,
                        0x4e3 + (uint64_t)run * 7 + k, &o) != 0 ||
            o.err) {
            res_fail(r);
            continue;
        }
        commits += o.done;
        last = r;
        char extra[96];
        int m = snprintf(extra, sizeof extra, "  (%llu retries)",
                         (unsigned long long)o.retries);
        if (o.mismatches) {
            res_mismatch(r, o.mismatches);
            snprintf(extra + m, sizeof extra - (size_t)m,
                     "  WRONG READS: %llu", (unsigned long long)o.mismatches);
        }
        r->retries += o.retries;
        double ops = (double)o.done / o.secs;
        res_record(r, ops, 0);
        progress(run, W_RMW, thr[k], ei, ops, extra);
    }
    if (last != NULL) {
        uint64_t sum = 0;
        int64_t bad = sum_counters(e, db, &sum);
        if (bad < 0) {
            res_fail(last);
        } else {
            if (bad > 0)
                res_mismatch(last, (uint64_t)bad);
            if (sum != commits) {
                fprintf(stderr,
                        "%s: rmw counters add up to %llu but %llu "
                        "transactions committed (%s)\n",
                        e->name, (unsigned long long)sum,
                        (unsigned long long)commits,
                        sum < commits ? "LOST UPDATES" : "PHANTOM UPDATES");
                res_mismatch(last, sum > commits ? sum - commits
                                                 : commits - sum);
            }
        }
    }
    e->close(db);
    wl_done(dir);
}

static void phase_durable(int ei, int threads, int run)
{
    const engine_ops *e = &ENGINES[ei];
    result *r = res_at(W_DURABLE, threads, ei);
    if (r->status != ST_OK)
        return;
    char dir[4200];
    wl_dir(dir, sizeof dir, W_DURABLE, threads, ei, run);
    void *db = open_fresh(e, dir, MODE_DURABLE);
    if (db == NULL) {
        res_fail(r);
        return;
    }
    run_out o;
    if (run_threads(e, db, K_DURABLE, threads, 0,
                    0xd0 + (uint64_t)run * 131 + (uint64_t)threads, &o) != 0 ||
        o.err) {
        res_fail(r);
        e->close(db);
        wl_done(dir);
        return;
    }
    double ops = (double)o.done / o.secs, cps = 0;
    char extra[64] = "";
    if (ei == ENG_CAIRN) {
        cairn_stats st;
        memset(&st, 0, sizeof st);
        cairn_get_stats(db, &st);
        if (st.wal_syncs > 0) {
            cps = (double)st.commits / (double)st.wal_syncs;
            snprintf(extra, sizeof extra, "  (%.1f commits/fsync)", cps);
        }
    }
    res_record(r, ops, cps);
    progress(run, W_DURABLE, threads, ei, ops, extra);
    int64_t bad = verify_sample(e, db, g_cfg.keys < 1000 ? g_cfg.keys : 1000,
                                0xd5 + (uint64_t)run, true);
    if (bad < 0)
        res_fail(r);
    else if (bad > 0)
        res_mismatch(r, (uint64_t)bad);
    e->close(db);
    wl_done(dir);
}

#define RAW_FILE_SIZE ((off_t)16 << 20)

/* pwrite(100 B) + fdatasync in a loop, overwriting a preallocated (written
 * and synced) file: one data block per fsync, no metadata. */
static void phase_raw(int run)
{
    result *r = res_at(W_DURABLE, 1, ENG_RAW);
    if (r->status != ST_OK)
        return;
    char path[4200];
    snprintf(path, sizeof path, "%s/raw-fsync-r%d.dat", g_cfg.dir, run + 1);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "raw fsync: open %s: %s\n", path, strerror(errno));
        res_fail(r);
        return;
    }
    static uint8_t zero[1 << 20];
    for (off_t off = 0; off < RAW_FILE_SIZE; off += (off_t)sizeof zero)
        if (pwrite(fd, zero, sizeof zero, off) != (ssize_t)sizeof zero) {
            fprintf(stderr, "raw fsync: write: %s\n", strerror(errno));
            res_fail(r);
            close(fd);
            return;
        }
    if (fsync(fd) != 0) {
        fprintf(stderr, "raw fsync: fsync: %s\n", strerror(errno));
        res_fail(r);
        close(fd);
        return;
    }
    uint8_t rec[VAL_LEN];
    val_make(rec, 0, 0);
    uint64_t n = 0;
    off_t off = 0;
    double t0 = bench_now(), t1 = t0;
    while ((t1 = bench_now()) - t0 < g_cfg.duration) {
        if (pwrite(fd, rec, sizeof rec, off) != (ssize_t)sizeof rec ||
            fdatasync(fd) != 0) {
            fprintf(stderr, "raw fsync: %s\n", strerror(errno));
            res_fail(r);
            close(fd);
            return;
        }
        n++;
        off += (off_t)sizeof rec;
        if (off + (off_t)sizeof rec > RAW_FILE_SIZE)
            off = 0;
    }
    close(fd);
    if (!g_cfg.keep)
        unlink(path);
    double ops = (double)n / (t1 - t0);
    res_record(r, ops, 0);
    progress(run, W_DURABLE, 1, ENG_RAW, ops, NULL);
}

/* ------------------------------------------------------------------------
 * Output
 * ------------------------------------------------------------------------ */

static const char *status_name(int st)
{
    switch (st) {
    case ST_NOTBUILT: return "not built";
    case ST_ERROR: return "error";
    case ST_OFF: return "not selected";
    default: return "ok";
    }
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static const char *compression_note(void)
{
#ifdef CAIRN_HAVE_ROCKSDB
    if (g_rocks_compression < 0) { /* not opened yet: ask the defaults */
        rocksdb_options_t *o = rocksdb_options_create();
        g_rocks_compression = rocksdb_options_get_compression(o);
        rocksdb_options_destroy(o);
    }
    return rocks_compression_name(g_rocks_compression);
#else
    return "n/a";
#endif
}

static double median_of(int wl, int threads, int ei)
{
    result *r = res_at(wl, threads, ei);
    return r && r->status == ST_OK && r->n > 0 ? res_median(r) : -1;
}

static void print_json_row(size_t row, int ei)
{
    const result *r = &g_res[row][ei];
    printf("{\"bench\":\"engine\",\"workload\":\"%s\",\"engine\":\"%s\","
           "\"threads\":%d,\"status\":\"%s\"",
           WL_NAMES[ROWS[row].wl], engine_name(ei), ROWS[row].threads,
           status_name(r->status));
    if (r->n > 0) {
        printf(",\"ops_per_sec\":%.1f,\"runs\":[", res_median(r));
        for (int i = 0; i < r->n; i++)
            printf("%s%.1f", i ? "," : "", r->ops[i]);
        printf("]");
        double c = median_of(ROWS[row].wl, ROWS[row].threads, ENG_CAIRN);
        if (ei != ENG_CAIRN && ei != ENG_RAW && c > 0 && res_median(r) > 0)
            printf(",\"cairn_over_engine\":%.3f", c / res_median(r));
        double raw = median_of(W_DURABLE, 1, ENG_RAW);
        if (ROWS[row].wl == W_DURABLE && ei != ENG_RAW && raw > 0)
            printf(",\"over_raw_fsync\":%.3f", res_median(r) / raw);
        if (ROWS[row].wl == W_DURABLE && ei == ENG_CAIRN)
            printf(",\"commits_per_fsync\":%.2f",
                   bench_median(r->cps, (size_t)r->n));
    }
    if (ROWS[row].wl == W_RMW)
        printf(",\"retries\":%llu", (unsigned long long)r->retries);
    printf(",\"mismatches\":%llu,\"errors\":%llu}\n",
           (unsigned long long)r->mismatches, (unsigned long long)r->errors);
}

static void print_human_row(size_t row, int ei)
{
    const result *r = &g_res[row][ei];
    char b[32], ratio[64] = "", runs[256] = "";
    const char *rate = status_name(r->status);
    if (r->n > 0 && r->status == ST_OK) {
        double m = res_median(r);
        rate = bench_fmt_rate(m, b, sizeof b);
        double c = median_of(ROWS[row].wl, ROWS[row].threads, ENG_CAIRN);
        double raw = median_of(W_DURABLE, 1, ENG_RAW);
        if (ROWS[row].wl == W_DURABLE && ei != ENG_RAW && raw > 0) {
            if (ei == ENG_CAIRN)
                snprintf(ratio, sizeof ratio, "= %.1fx raw fsync", m / raw);
            else if (c > 0 && m > 0)
                snprintf(ratio, sizeof ratio, "cairn/%s = %.2fx, %.1fx raw",
                         engine_name(ei), c / m, m / raw);
            else
                snprintf(ratio, sizeof ratio, "= %.1fx raw fsync", m / raw);
        } else if (ei != ENG_CAIRN && ei != ENG_RAW && c > 0 && m > 0) {
            snprintf(ratio, sizeof ratio, "cairn/%s = %.2fx", engine_name(ei),
                     c / m);
        }
        size_t len = 0;
        for (int i = 0; i < r->n && len + 16 < sizeof runs; i++) {
            char rb[32];
            len += (size_t)snprintf(runs + len, sizeof runs - len, "%s%s",
                                    i ? " " : "",
                                    bench_fmt_rate(r->ops[i], rb, sizeof rb));
        }
    }
    printf("%-11s %3d  %-9s %9s  %-34s %s", WL_NAMES[ROWS[row].wl],
           ROWS[row].threads, engine_name(ei), rate, ratio, runs);
    if (ROWS[row].wl == W_RMW && r->n > 0)
        printf("  [%llu retries]", (unsigned long long)r->retries);
    if (ROWS[row].wl == W_DURABLE && ei == ENG_CAIRN && r->n > 0)
        printf("  [%.1f commits/fsync]", bench_median(r->cps, (size_t)r->n));
    if (r->mismatches)
        printf("  WRONG DATA: %llu", (unsigned long long)r->mismatches);
    printf("\n");
}

/* A target: "name ... PASS/FAIL/n/a". */
typedef struct target {
    const char *name;
    const char *verdict;
    char detail[1024];
} target;

static void eval_targets(target t[3])
{
    char a[32], b[32];
    /* readrandom: cairn >= lmdb at 1 and 2 threads */
    t[0].name = "readrandom: cairn >= lmdb";
    double c1 = median_of(W_READRANDOM, 1, ENG_CAIRN),
           l1 = median_of(W_READRANDOM, 1, ENG_LMDB),
           c2 = median_of(W_READRANDOM, 2, ENG_CAIRN),
           l2 = median_of(W_READRANDOM, 2, ENG_LMDB);
    if (c1 > 0 && l1 > 0 && c2 > 0 && l2 > 0) {
        char a2[32], b2[32];
        t[0].verdict = c1 >= l1 && c2 >= l2 ? "PASS" : "FAIL";
        snprintf(t[0].detail, sizeof t[0].detail,
                 "1 thread %s vs %s (%.2fx), 2 threads %s vs %s (%.2fx)",
                 bench_fmt_rate(c1, a, sizeof a),
                 bench_fmt_rate(l1, b, sizeof b), c1 / l1,
                 bench_fmt_rate(c2, a2, sizeof a2),
                 bench_fmt_rate(l2, b2, sizeof b2), c2 / l2);
    } else {
        t[0].verdict = "n/a";
        snprintf(t[0].detail, sizeof t[0].detail, "missing measurements");
    }
    t[1].name = "fillrandom: cairn >= 1.5x rocksdb";
    double cf = median_of(W_FILLRANDOM, 1, ENG_CAIRN),
           rf = median_of(W_FILLRANDOM, 1, ENG_ROCKSDB);
    if (cf > 0 && rf > 0) {
        t[1].verdict = cf >= 1.5 * rf ? "PASS" : "FAIL";
        snprintf(t[1].detail, sizeof t[1].detail, "%s vs %s (%.2fx)",
                 bench_fmt_rate(cf, a, sizeof a),
                 bench_fmt_rate(rf, b, sizeof b), cf / rf);
    } else {
        t[1].verdict = "n/a";
        snprintf(t[1].detail, sizeof t[1].detail, "missing measurements");
    }
    t[2].name = "durable 64 threads: cairn >= 30x raw fsync";
    double cd = median_of(W_DURABLE, 64, ENG_CAIRN),
           raw = median_of(W_DURABLE, 1, ENG_RAW);
    if (cd > 0 && raw > 0) {
        t[2].verdict = cd >= 30 * raw ? "PASS" : "FAIL";
        snprintf(t[2].detail, sizeof t[2].detail, "%s vs %s (%.1fx)",
                 bench_fmt_rate(cd, a, sizeof a),
                 bench_fmt_rate(raw, b, sizeof b), cd / raw);
    } else {
        t[2].verdict = "n/a";
        snprintf(t[2].detail, sizeof t[2].detail, "missing measurements");
    }
}

static bool row_engine_shown(size_t row, int ei)
{
    if (ei == ENG_RAW)
        return ROWS[row].wl == W_DURABLE && ROWS[row].threads == 1;
    return g_cfg.selected[ei];
}

static void print_results(void)
{
    target t[3];
    eval_targets(t);
    if (g_cfg.json) {
        for (size_t row = 0; row < NROWS; row++)
            for (int ei = 0; ei <= ENG_RAW; ei++)
                if (row_engine_shown(row, ei))
                    print_json_row(row, ei);
        printf("{\"bench\":\"engine\",\"summary\":{\"keys\":%llu,"
               "\"key_bytes\":%d,\"value_bytes\":%d,\"runs\":%d,"
               "\"duration_s\":%.3f,\"dir\":",
               (unsigned long long)g_cfg.keys, KEY_LEN, VAL_LEN, g_cfg.runs,
               g_cfg.duration);
        json_str(g_cfg.dir);
        printf(",\"rocksdb_compression\":\"%s\",\"mismatches\":%llu,"
               "\"errors\":%llu,\"targets\":[",
               compression_note(), (unsigned long long)g_mismatches,
               (unsigned long long)g_errors);
        for (int i = 0; i < 3; i++) {
            printf("%s{\"target\":", i ? "," : "");
            json_str(t[i].name);
            printf(",\"result\":\"%s\",\"detail\":", t[i].verdict);
            json_str(t[i].detail);
            printf("}");
        }
        printf("]}}\n");
        fflush(stdout);
        return;
    }
    printf("cairn-bench engine: %llu keys, %d-byte keys, %d-byte values; "
           "median of %d run%s; durable runs %.1f s each\n",
           (unsigned long long)g_cfg.keys, KEY_LEN, VAL_LEN, g_cfg.runs,
           g_cfg.runs == 1 ? "" : "s", g_cfg.duration);
    printf("  one transaction per operation everywhere; sync off except in "
           "'durable'\n");
    printf("  cairn %s: cairn_put/cairn_get auto-commit, rmw with "
           "cairn_txn_* (default isolation)\n",
           cairn_version_string());
#ifdef CAIRN_HAVE_LMDB
    printf("  %s: one write txn per put, a renewed read txn per get, "
           "MDB_NOSYNC|MDB_NOMETASYNC when sync is off, 4 GiB map\n",
           mdb_version(NULL, NULL, NULL));
#endif
#ifdef CAIRN_HAVE_ROCKSDB
    printf("  rocksdb: rocksdb_put/get (WAL on), rmw with a pessimistic "
           "TransactionDB (get_for_update); 64 MiB write buffer; "
           "compression %s (RocksDB default)\n",
           compression_note());
#endif
    printf("  raw fsync: pwrite(100 B) + fdatasync over a preallocated file, "
           "1 thread, sampled before and after the durable runs\n\n");
    printf("%-11s %3s  %-9s %9s  %-34s %s\n", "workload", "thr", "engine",
           "ops/s", "ratio", "runs");
    for (size_t row = 0; row < NROWS; row++) {
        for (int ei = 0; ei <= ENG_RAW; ei++)
            if (row_engine_shown(row, ei))
                print_human_row(row, ei);
    }
    printf("\ntargets (informative):\n");
    for (int i = 0; i < 3; i++)
        printf("  %-44s %s  %s\n", t[i].name, t[i].verdict, t[i].detail);
    if (g_mismatches || g_errors)
        printf("\nFAILED: %llu wrong or missing values read, %llu engine "
               "errors (see stderr)\n",
               (unsigned long long)g_mismatches,
               (unsigned long long)g_errors);
    fflush(stdout);
}

/* ------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-bench engine [--dir DIR] [--json] [--keys N] "
            "[--quick] [--runs N]\n"
            "                          [--engines cairn,lmdb,rocksdb] "
            "[--duration SECS] [--keep]\n"
            "  --dir DIR       where the databases go "
            "(default ./cairn-bench-data/engine)\n"
            "  --json          JSON Lines on stdout instead of a table\n"
            "  --keys N        number of keys (default 1000000; --quick "
            "50000)\n"
            "  --quick         50000 keys, 1 run, 0.5 s durable runs\n"
            "  --runs N        runs per measurement, median reported "
            "(default 3; --quick 1)\n"
            "  --engines LIST  comma-separated subset of cairn,lmdb,rocksdb\n"
            "  --duration S    seconds per durable measurement (default 2; "
            "--quick 0.5)\n"
            "  --keep          keep the database directories\n");
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

static bool parse_engines(const char *s, bool sel[NENGINES])
{
    memset(sel, 0, NENGINES * sizeof sel[0]);
    char buf[256];
    if (strlen(s) >= sizeof buf)
        return false;
    strcpy(buf, s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        int found = -1;
        for (int i = 0; i < NENGINES; i++)
            if (strcmp(tok, ENGINES[i].name) == 0)
                found = i;
        if (found < 0) {
            fprintf(stderr, "engine: unknown engine '%s'\n", tok);
            return false;
        }
        sel[found] = true;
    }
    return true;
}

int cairn_bench_engine_main(int argc, char **argv)
{
    const char *dir = "./cairn-bench-data/engine";
    bool quick = false, json = false, keep = false;
    uint64_t keys = 0, runs = 0;
    double duration = 0;
    bool sel[NENGINES] = {true, true, true};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--quick") == 0) {
            quick = true;
        } else if (strcmp(a, "--keep") == 0) {
            keep = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--dir") == 0 && v) {
            dir = v;
            i++;
        } else if (strcmp(a, "--keys") == 0 && v) {
            if (!parse_u64(v, &keys) || keys == 0 || keys > (1ULL << 31)) {
                fprintf(stderr, "engine: --keys: 1..2^31\n");
                return 2;
            }
            i++;
        } else if (strcmp(a, "--runs") == 0 && v) {
            if (!parse_u64(v, &runs) || runs == 0 || runs > 1000) {
                fprintf(stderr, "engine: --runs: 1..1000\n");
                return 2;
            }
            i++;
        } else if (strcmp(a, "--duration") == 0 && v) {
            char *end;
            duration = strtod(v, &end);
            if (*end || end == v || !(duration > 0 && duration <= 3600)) {
                fprintf(stderr, "engine: --duration: (0, 3600] seconds\n");
                return 2;
            }
            i++;
        } else if (strcmp(a, "--engines") == 0 && v) {
            if (!parse_engines(v, sel))
                return 2;
            i++;
        } else {
            fprintf(stderr, "engine: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    g_cfg.dir = dir;
    g_cfg.json = json;
    g_cfg.keep = keep;
    g_cfg.keys = keys ? keys : quick ? 50000 : 1000000;
    g_cfg.runs = (int)(runs ? runs : quick ? 1 : 3);
    g_cfg.duration = duration > 0 ? duration : quick ? 0.5 : 2.0;
    memcpy(g_cfg.selected, sel, sizeof sel);

    if (mkdir_p(dir) != 0) {
        fprintf(stderr, "engine: cannot create %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    pool_init();
    g_perm = malloc(g_cfg.keys * sizeof *g_perm);
    double *store = calloc(NROWS * (NENGINES + 1) * 4 * (size_t)g_cfg.runs,
                           sizeof *store);
    if (g_perm == NULL || store == NULL) {
        fprintf(stderr, "engine: out of memory\n");
        free(g_perm);
        free(store);
        return 1;
    }
    for (uint64_t i = 0; i < g_cfg.keys; i++)
        g_perm[i] = (uint32_t)i;
    uint64_t s = 0x5eed;
    for (uint64_t i = g_cfg.keys - 1; i > 0; i--) {
        uint64_t j = rng_next(&s) % (i + 1);
        uint32_t tmp = g_perm[i];
        g_perm[i] = g_perm[j];
        g_perm[j] = tmp;
    }
    memset(g_res, 0, sizeof g_res);
    g_mismatches = g_errors = 0;
    double *p = store;
    for (size_t row = 0; row < NROWS; row++)
        for (int ei = 0; ei <= ENG_RAW; ei++) {
            result *r = &g_res[row][ei];
            r->ops = p; /* room for 2 samples per run (raw fsync) */
            r->cps = p + 2 * (size_t)g_cfg.runs;
            p += 4 * (size_t)g_cfg.runs;
            if (ei == ENG_RAW)
                r->status = row_engine_shown(row, ei) ? ST_OK : ST_OFF;
            else if (!sel[ei])
                r->status = ST_OFF;
            else if (!ENGINES[ei].built)
                r->status = ST_NOTBUILT;
            else
                r->status = ST_OK;
        }

    fprintf(stderr,
            "engine: %llu keys, %d run(s), durable %.1f s, dir %s\n",
            (unsigned long long)g_cfg.keys, g_cfg.runs, g_cfg.duration, dir);
    for (int ei = 0; ei < NENGINES; ei++)
        if (sel[ei] && !ENGINES[ei].built)
            fprintf(stderr, "engine: %s: not built\n", ENGINES[ei].name);
    double t_start = bench_now();
    for (int run = 0; run < g_cfg.runs; run++) {
        int order[NENGINES];
        for (int k = 0; k < NENGINES; k++)
            order[k] = (run + k) % NENGINES;
        for (int k = 0; k < NENGINES; k++)
            phase_fillseq(order[k], run);
        for (int k = 0; k < NENGINES; k++)
            phase_fillrandom_read(order[k], run);
        for (int k = 0; k < NENGINES; k++)
            phase_rmw(order[k], run);
        phase_raw(run);
        static const int dthr[] = {1, 16, 64};
        for (size_t d = 0; d < 3; d++)
            for (int k = 0; k < NENGINES; k++)
                phase_durable(order[k], dthr[d], run);
        phase_raw(run); /* the disk drifts: sample it before and after */
    }
    fprintf(stderr, "engine: done in %.1f s\n", bench_now() - t_start);
    print_results();
    free(g_perm);
    g_perm = NULL;
    free(store);
    if (g_mismatches || g_errors) {
        fprintf(stderr,
                "engine: FAILED: %llu wrong or missing values, %llu errors\n",
                (unsigned long long)g_mismatches,
                (unsigned long long)g_errors);
        return 1;
    }
    return 0;
}

#ifdef BENCH_ENGINE_STANDALONE
int main(int argc, char **argv)
{
    return cairn_bench_engine_main(argc, argv);
}
#endif
