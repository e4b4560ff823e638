/*
 * bench_engine.c — `cairn-bench engine`: Cairn side by side with RocksDB,
 * LevelDB, LMDB and SQLite: same machine, same disk, same run, the same key
 * and value streams for every engine.
 *
 *   cairn-bench engine [--dir DIR] [--json] [--keys N] [--quick] [--runs N]
 *                      [--engines LIST] [--workloads LIST] [--duration SECS]
 *                      [--plot FILE | --no-plot] [--keep]
 *
 * Purpose. Measure the storage engines, not the disk, except where a
 * workload syncs (fillsync, durable: there it measures how well each engine
 * shares fsyncs). N keys (default 1000000), 16-byte keys, 100-byte values:
 *
 *   fillseq          N puts in key order into an empty database, 1 thread
 *   overwrite        then N puts of uniformly random existing keys (same db)
 *   fillrandom       N puts in a random order into an empty database; the
 *                    database is later flushed and closed: its size on disk
 *                    (du) over the user bytes is the space amplification,
 *                    the bytes the process wrote from open to close over
 *                    the user bytes the write amplification, both to
 *                    storage (/proc/self/io write_bytes: pages dirtied) and
 *                    through write calls (wchar)
 *   readrandom       in that open database (caches warm), once the fill's
 *                    background work is done (flushes, compactions; Cairn:
 *                    cairn_wait_idle; RocksDB: until its properties show
 *                    none running or pending): max(N, 100000) gets of
 *                    uniformly random keys, 1 and 2 threads
 *   readhot          then max(N, 100000) gets, 1 and 2 threads, 90% of
 *                    them to a hot set of 1% of the keys (every 100th
 *                    key), the rest uniform; Cairn runs it twice on the
 *                    same open database, with its row cache (the table's
 *                    figure) and with it turned off (cairn_set_cache_sizes,
 *                    row cache 0; the notes and the JSON give that figure
 *                    and the on/off ratio), in alternating order per run
 *   readseq          a full scan in key order (repeated until 1M entries);
 *                    entries/s
 *   seekrandom       max(N/10, 25000) times: seek to a uniformly random key,
 *                    read 10 entries (one snapshot per seek); seeks/s
 *   readrandom-cold  after that close: fsync + POSIX_FADV_DONTNEED on every
 *                    file of the database directory (the OS page cache
 *                    drops them; what stays resident is reported), reopen
 *                    (time reported, not counted), max(N/10, 10000) gets on
 *                    1 thread; the engine's own caches start empty
 *   fillsync         puts in random order into an empty database, 1
 *                    thread, each synced by the engine's sync option;
 *                    max(N/50, 1000) puts or 2 x --duration seconds,
 *                    whichever ends first
 *   ycsb-a/b/c/f     YCSB core workloads on a bulk-loaded database, 2
 *                    threads, max(N/4, 50000) operations each: A 50% read
 *                    50% update, B 95/5, C 100% read, F 50% read 50%
 *                    read-modify-write (a transaction); keys chosen by
 *                    YCSB's scrambled Zipfian generator (theta 0.99: a
 *                    Zipfian over 10^10 items, FNV-1a hashed modulo N)
 *   rmw              read-modify-write transactions (get, bump a counter,
 *                    put, commit, retry on conflict) on uniformly random
 *                    keys, 1 and 2 threads; max(N/4, 10000) per measurement
 *   durable          single-key puts with sync on every commit, 1/16/64
 *                    threads, for --duration seconds; next to a raw
 *                    pwrite(100 B) + fdatasync loop on a file in the same
 *                    directory, one thread, run before and after the durable
 *                    measurements of each run (the median is the base)
 *
 * Databases: fillseq+overwrite share one; fillrandom, readrandom, readhot,
 * readseq, seekrandom and readrandom-cold share one (a workload that is not selected
 * still loads what the selected ones need, unmeasured); ycsb-a, -b, -c, -f
 * share a bulk-loaded one, in that order (blind updates before the counters
 * move); rmw gets its own bulk-loaded one, as do fillsync and each durable
 * measurement.
 *
 * Every engine gets one transaction per operation: Cairn's auto-commit
 * cairn_put/cairn_get, a read-only transaction per scan (cairn_txn_scan,
 * one snapshot per call); RocksDB and LevelDB put/get and one iterator per scan;
 * LMDB one write txn per put and a renewed read txn per get or scan; SQLite
 * (WAL mode, one table "kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID",
 * prepared statements, a connection per thread) one auto-commit statement
 * per operation. Sync off: CAIRN_SYNC_NONE, RocksDB/LevelDB sync=0, LMDB
 * MDB_NOSYNC|MDB_NOMETASYNC, SQLite synchronous=NORMAL; sync on: the
 * opposite and SQLite synchronous=FULL. Read-modify-write: Cairn's
 * transactions, a RocksDB pessimistic TransactionDB (the ycsb and rmw
 * databases are opened as one), LMDB's single write txn, SQLite BEGIN
 * IMMEDIATE, and for LevelDB, which has no transactions, get+put under a
 * mutex of the benchmark.
 *
 * Invariants.
 *   - Keys are 16 ASCII digits of an index in [0, N): key order is index
 *     order. Values are 100 bytes: [0,8) a word (little-endian): low 32 bits
 *     a counter (+1 per read-modify-write), high 32 bits a stamp (0 when
 *     loaded, non-zero after a blind update); [8,16) the index; [16,100) 84
 *     bytes of a fixed pseudo-random pool at an index-dependent offset
 *     (incompressible).
 *   - Every value read is checked against that layout; reads after a fill
 *     also want the word 0, reads before any read-modify-write a counter 0.
 *     Scans must return exactly the keys expected, in order. After the
 *     ycsb and the rmw runs every key of their database is read and the
 *     counters must add up to the committed read-modify-writes (no lost
 *     updates). Any wrong or missing value is counted and reported and
 *     makes the program exit 1, as does an engine error. Performance
 *     targets never change the exit status.
 *   - Key streams depend on the workload, run and thread only, never on
 *     the engine: every engine sees the same keys in the same order.
 *   - Each database lives in a fresh directory under DIR, removed afterwards
 *     unless --keep. Each run measures every engine once per workload,
 *     engines interleaved (the starting engine rotates from run to run);
 *     the figures reported are medians over the runs.
 *
 * Locking. Worker threads share nothing mutable but the atomic stop flag of
 * the timed workloads; each has its own counters, which the main thread
 * reads after pthread_join. The start is a barrier, so the clock starts
 * when every worker is ready. An engine handle is shared by the workers as
 * its library allows (cairn_db, rocksdb_t, rocksdb_transactiondb_t,
 * leveldb_t and MDB_env are thread-safe); per-thread engine state (LMDB's
 * read txn, RocksDB's reusable txn object, a SQLite connection) belongs to
 * one worker. LevelDB's read-modify-write mutex is the only lock here.
 * Everything else (results, files, the plot) is the main thread's.
 *
 * Output. Progress on stderr. On stdout a table (one line per workload and
 * thread count: median ops/s of each engine side by side, then the
 * cairn/<engine> ratios and notes), the size and amplification after
 * fillrandom, and the targets, which are informative; or, with --json, JSON
 * Lines: one object per workload x engine x threads ({"bench":"engine",
 * "workload":...,"engine":...,"threads":...,"status":...,"ops_per_sec":
 * median,"runs":[...],"keys":...,"ops":...,"bytes":...}) and a final
 * {"bench":"engine","summary":{...}}. A chart (grouped bars, log scale) goes
 * to DIR/bench-engine.png or --plot FILE through gnuplot, with its data in
 * FILE.dat and script in FILE.gp; without gnuplot that is a note, not an
 * error. Exit status 0 when every engine ran and read back what it was
 * given, 1 otherwise, 2 on a usage error.
 *
 * Build switches: CAIRN_HAVE_ROCKSDB, CAIRN_HAVE_LEVELDB, CAIRN_HAVE_LMDB,
 * CAIRN_HAVE_SQLITE compile each peer in (CMakeLists.txt sets them when the
 * library is installed); without one, that engine is reported "not built".
 * -DBENCH_ENGINE_STANDALONE adds a main() (for testing this file alone).
 */
#include "bench.h"

#include <cairn.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
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
#include <unistd.h>

#ifdef CAIRN_HAVE_LMDB
#include <lmdb.h>
#endif
#ifdef CAIRN_HAVE_ROCKSDB
#include <rocksdb/c.h>
#endif
#ifdef CAIRN_HAVE_LEVELDB
#include <leveldb/c.h>
#endif
#ifdef CAIRN_HAVE_SQLITE
#include <sqlite3.h>
#endif

extern char **environ;

/* ------------------------------------------------------------------------
 * Keys and values
 * ------------------------------------------------------------------------ */

#define KEY_LEN 16
#define VAL_LEN 100
#define VAL_HDR 16
#define ENTRY_BYTES (KEY_LEN + VAL_LEN)
#define POOL_SIZE (1u << 20)
#define OUT_MAX 256 /* read buffer: longer values are wrong anyway */
#define COUNT_MASK 0xffffffffULL
#define SEEK_ENTRIES 10 /* entries read per seekrandom operation */

static uint8_t g_pool[POOL_SIZE + VAL_LEN];

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *s)
{
    return (double)(bench_rng_next(s) >> 11) * 0x1.0p-53;
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
        uint64_t r = bench_rng_next(&s);
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

/* The key of the next index, in place (scans walk keys this way). */
static void key_inc(uint8_t k[KEY_LEN])
{
    for (int i = KEY_LEN - 1; i >= 0; i--) {
        if (k[i] != '9') {
            k[i]++;
            return;
        }
        k[i] = '0';
    }
}

static const uint8_t *val_tail(uint64_t idx)
{
    return g_pool + bench_mix64(idx ^ 0x5bd1e995ULL) % POOL_SIZE;
}

static void val_make(uint8_t v[VAL_LEN], uint64_t idx, uint64_t word)
{
    put_le64(v, word);
    put_le64(v + 8, idx);
    memcpy(v + VAL_HDR, val_tail(idx), VAL_LEN - VAL_HDR);
}

/* The word of a blind update: a non-zero stamp, counter 0. */
static uint64_t stamp_word(uint64_t seq)
{
    return (1 + seq % 0x7fffffffULL) << 32;
}

/* True if v is a value of key idx; *word (may be NULL) gets its word. */
static bool val_check(const void *vp, size_t len, uint64_t idx, uint64_t *word)
{
    const uint8_t *v = vp;
    if (len != VAL_LEN || get_le64(v + 8) != idx ||
        memcmp(v + VAL_HDR, val_tail(idx), VAL_LEN - VAL_HDR) != 0)
        return false;
    if (word)
        *word = get_le64(v);
    return true;
}

/* ------------------------------------------------------------------------
 * YCSB's scrambled Zipfian key chooser: a Zipfian over 10^10 items with
 * theta 0.99 and YCSB's precomputed zeta(10^10), the item's FNV-1a 64-bit
 * hash (as a non-negative long) modulo N. Read-only once set up.
 * ------------------------------------------------------------------------ */

#define ZIPF_THETA 0.99
#define ZIPF_ITEMS 10000000000.0
#define ZIPF_ZETAN 26.46902820178302

typedef struct zipf {
    double alpha, eta, half_pow_theta;
} zipf;

static zipf g_zipf;

static void zipf_init(zipf *z)
{
    double zeta2 = 1.0 + pow(0.5, ZIPF_THETA);
    z->alpha = 1.0 / (1.0 - ZIPF_THETA);
    z->eta = (1.0 - pow(2.0 / ZIPF_ITEMS, 1.0 - ZIPF_THETA)) /
             (1.0 - zeta2 / ZIPF_ZETAN);
    z->half_pow_theta = pow(0.5, ZIPF_THETA);
}

static uint64_t fnv1a64(uint64_t v)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 8; i++) {
        h ^= v & 0xff;
        v >>= 8;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t zipf_key(const zipf *z, uint64_t *s, uint64_t n)
{
    double u = rng_unit(s), uz = u * ZIPF_ZETAN;
    uint64_t item;
    if (uz < 1.0)
        item = 0;
    else if (uz < 1.0 + z->half_pow_theta)
        item = 1;
    else
        item = (uint64_t)(ZIPF_ITEMS *
                          pow(z->eta * u - z->eta + 1.0, z->alpha));
    uint64_t h = fnv1a64(item);
    if (h >> 63)
        h = ~h + 1; /* the absolute value of the signed hash */
    return h % n;
}

/* ------------------------------------------------------------------------
 * Engines
 * ------------------------------------------------------------------------ */

typedef enum {
    MODE_NOSYNC,  /* fills, reads, scans: no fsync per commit */
    MODE_TXN,     /* ycsb, rmw: no fsync; RocksDB opens a TransactionDB */
    MODE_DURABLE, /* sync on every commit */
} open_mode;

/* Results of the operations: */
#define RES_OK 0
#define RES_MISSING 1 /* no such key */
#define RES_BAD 2     /* a value that is not the key's */
#define RES_ERR (-1)  /* engine error (printed) */

/* A scan visits each entry; non-zero stops the scan. Same shape as
 * cairn_scan_fn, so Cairn's scan takes it as it is. */
typedef int (*visit_fn)(void *arg, const void *key, size_t klen,
                        const void *val, size_t vlen);

typedef struct engine_ops {
    const char *name;
    bool built;
    /* NULL on failure (the reason printed on stderr). */
    void *(*open)(const char *dir, open_mode mode);
    /* Closes and frees; RES_ERR if the engine reported an error. */
    int (*close)(void *db);
    /* Moves what is buffered in memory into the database files (RocksDB's
     * memtable flush); NULL when the engine has nothing to do. */
    int (*flush)(void *db);
    /* A full manual compaction: everything merged down into the deepest
     * level (for the settled size); NULL when the engine has none. */
    int (*compact)(void *db);
    /* Waits until the background work the writes so far caused (flushes,
     * compactions) is done, so reads are measured without it; NULL when
     * the engine has none. */
    int (*settle)(void *db);
    /* Per-thread state, made in the thread that uses it (NULL is fine
     * when thread_init is NULL). */
    void *(*thread_init)(void *db);
    void (*thread_fini)(void *db, void *ts);
    int (*put)(void *db, void *ts, const uint8_t *key, const uint8_t *val);
    /* Copies at most OUT_MAX bytes to out, *vlen = the value's length. */
    int (*get)(void *db, void *ts, const uint8_t *key, uint8_t *out,
               size_t *vlen);
    /* Visits the entries from start (NULL: the first key) in key order, at
     * most limit (0: all), in one snapshot. */
    int (*scan)(void *db, void *ts, const uint8_t *start, uint64_t limit,
                visit_fn fn, void *arg);
    /* Loads indices [first, first + n) with word 0, in few commits. */
    int (*load)(void *db, uint64_t first, uint64_t n);
    /* One read-modify-write transaction on key idx: the counter + 1
     * (retries counted). */
    int (*rmw)(void *db, void *ts, uint64_t idx, uint64_t *retries);
} engine_ops;

static void copy_out(uint8_t *out, size_t *vlen, const void *v, size_t n)
{
    *vlen = n;
    memcpy(out, v, n < OUT_MAX ? n : OUT_MAX);
}

#if defined(CAIRN_HAVE_LMDB) || defined(CAIRN_HAVE_SQLITE)
static int mkdir_one(const char *dir, const char *who)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: mkdir %s: %s\n", who, dir, strerror(errno));
        return -1;
    }
    return 0;
}
#endif

#define LOAD_BATCH 1000

/* ---- Cairn ---- */

/* --history-ms: Cairn's history window (-1: the engine's default). */
static int64_t g_history_ms = -1;

static void *cairn_e_open(const char *dir, open_mode mode)
{
    cairn_options o;
    cairn_options_init(&o);
    if (g_history_ms >= 0)
        o.history_ms = (uint64_t)g_history_ms;
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

static int cairn_e_compact(void *db)
{
    int rc = cairn_compact(db, NULL, NULL);
    if (rc != CAIRN_OK) {
        fprintf(stderr, "cairn: compact: %s (%d)\n", cairn_strerror(rc), rc);
        return RES_ERR;
    }
    return RES_OK;
}

static int cairn_e_settle(void *db)
{
    int rc = cairn_wait_idle(db, 600000);
    if (rc != CAIRN_OK) {
        fprintf(stderr, "cairn: wait_idle: %s (%d)\n", cairn_strerror(rc),
                rc);
        return RES_ERR;
    }
    return RES_OK;
}

static int cairn_e_close(void *db)
{
    if (getenv("CAIRN_BENCH_STATS")) { /* diagnostics: what the run cost */
        cairn_stats st;
        cairn_get_stats(db, &st);
        fprintf(stderr,
                "cairn stats: flushes %llu, compactions %llu (read %.1f MiB, "
                "written %.1f MiB), slowdowns %llu, stalls %llu, L0..L4 "
                "files %llu/%llu/%llu/%llu/%llu\n",
                (unsigned long long)st.flushes,
                (unsigned long long)st.compactions,
                st.compact_read_bytes / 1048576.0,
                st.compact_write_bytes / 1048576.0,
                (unsigned long long)st.write_slowdowns,
                (unsigned long long)st.write_stalls,
                (unsigned long long)st.level_files[0],
                (unsigned long long)st.level_files[1],
                (unsigned long long)st.level_files[2],
                (unsigned long long)st.level_files[3],
                (unsigned long long)st.level_files[4]);
    }
    int rc = cairn_close(db);
    if (rc != CAIRN_OK) {
        fprintf(stderr, "cairn: close: %s (%d)\n", cairn_strerror(rc), rc);
        return RES_ERR;
    }
    return RES_OK;
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

/* A scan is cairn_txn_scan with the
 * visitor as its callback, inside a read-only transaction (one snapshot
 * per call, like an iterator per call for the other engines). */
static int cairn_e_scan(void *db, void *ts, const uint8_t *start,
                        uint64_t limit, visit_fn fn, void *arg)
{
    (void)ts;
    cairn_txn_options to;
    memset(&to, 0, sizeof to);
    to.read_only = true;
    cairn_txn *t = NULL;
    int rc = cairn_txn_begin(db, &to, &t);
    if (rc != CAIRN_OK) {
        fprintf(stderr, "cairn: txn_begin (read-only): %s (%d)\n",
                cairn_strerror(rc), rc);
        return RES_ERR;
    }
    rc = cairn_txn_scan(t, start ? (const void *)start : "",
                        start ? KEY_LEN : 0, NULL, 0, (size_t)limit, fn, arg);
    cairn_txn_abort(t);
    if (rc != CAIRN_OK) {
        fprintf(stderr, "cairn: txn_scan: %s (%d)\n", cairn_strerror(rc), rc);
        return RES_ERR;
    }
    return RES_OK;
}

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
    MDB_txn *rtxn; /* reset between reads, renewed for each */
} lmdb_ts;

/* The map: 4 GiB, or 600 bytes a key for big runs (B-tree pages of random
 * inserts are about two-thirds full); set by the entry point. */
static size_t g_lmdb_mapsize = (size_t)4 << 30;

static void lmdb_err(const char *what, int rc)
{
    fprintf(stderr, "lmdb: %s: %s (%d)\n", what, mdb_strerror(rc), rc);
}

static void *lmdb_e_open(const char *dir, open_mode mode)
{
    if (mkdir_one(dir, "lmdb") != 0)
        return NULL;
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
    if ((rc = mdb_env_set_mapsize(d->env, g_lmdb_mapsize)) != 0 ||
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

static int lmdb_e_close(void *db)
{
    lmdb_db *d = db;
    mdb_env_close(d->env);
    free(d);
    return RES_OK;
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

/* Starts the thread's read transaction (renewing the reset one). */
static int lmdb_read_begin(lmdb_db *d, lmdb_ts *t)
{
    int rc = t->rtxn == NULL ? mdb_txn_begin(d->env, NULL, MDB_RDONLY, &t->rtxn)
                             : mdb_txn_renew(t->rtxn);
    if (rc != 0) {
        lmdb_err("read txn", rc);
        return RES_ERR;
    }
    return RES_OK;
}

static int lmdb_e_get(void *db, void *ts, const uint8_t *key, uint8_t *out,
                      size_t *vlen)
{
    lmdb_db *d = db;
    lmdb_ts *t = ts;
    if (t == NULL || lmdb_read_begin(d, t) != RES_OK)
        return RES_ERR;
    MDB_val k = {KEY_LEN, (void *)key}, v = {0, NULL};
    int rc = mdb_get(t->rtxn, d->dbi, &k, &v);
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

static int lmdb_e_scan(void *db, void *ts, const uint8_t *start,
                       uint64_t limit, visit_fn fn, void *arg)
{
    lmdb_db *d = db;
    lmdb_ts *t = ts;
    if (t == NULL || lmdb_read_begin(d, t) != RES_OK)
        return RES_ERR;
    MDB_cursor *c = NULL;
    int rc = mdb_cursor_open(t->rtxn, d->dbi, &c);
    if (rc != 0) {
        mdb_txn_reset(t->rtxn);
        lmdb_err("cursor_open", rc);
        return RES_ERR;
    }
    MDB_val k = {KEY_LEN, (void *)start}, v = {0, NULL};
    rc = mdb_cursor_get(c, &k, &v, start ? MDB_SET_RANGE : MDB_FIRST);
    for (uint64_t n = 0; rc == 0 && (limit == 0 || n < limit); n++) {
        if (fn(arg, k.mv_data, k.mv_size, v.mv_data, v.mv_size) != 0)
            break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    mdb_txn_reset(t->rtxn);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        lmdb_err("cursor_get", rc);
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
    rocksdb_block_based_table_options_t *bbo;
    rocksdb_cache_t *cache;
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
    if (d->bbo)
        rocksdb_block_based_options_destroy(d->bbo);
    if (d->cache)
        rocksdb_cache_destroy(d->cache);
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
    /* The same codecs as Cairn (sizes compare like for like): LZ4, and
     * zstd for the bottom-most data. */
    rocksdb_options_set_compression(d->opts, rocksdb_lz4_compression);
    rocksdb_options_set_bottommost_compression(d->opts,
                                               rocksdb_zstd_compression);
    g_rocks_compression = rocksdb_options_get_compression(d->opts);
    /* What Cairn has by default: a 10-bit bloom filter per file and a
     * 256 MiB block cache (RocksDB's defaults: no filter, 8 MiB). */
    d->bbo = rocksdb_block_based_options_create();
    d->cache = rocksdb_cache_create_lru((size_t)256 << 20);
    rocksdb_block_based_options_set_filter_policy(
        d->bbo, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_block_based_options_set_block_cache(d->bbo, d->cache);
    rocksdb_options_set_block_based_table_factory(d->opts, d->bbo);
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

static int rocks_e_close(void *db)
{
    rocks_db *d = db;
    if (d->tdb)
        rocksdb_transactiondb_close(d->tdb);
    if (d->db)
        rocksdb_close(d->db);
    rocks_free_opts(d);
    return RES_OK;
}

/* No flush or compaction running or pending, as RocksDB's properties
 * tell (polled every 10 ms, for at most 10 minutes). */
static int rocks_e_settle(void *db)
{
    rocks_db *d = db;
    if (d->db == NULL)
        return RES_OK;
    static const char *const props[] = {
        "rocksdb.num-running-flushes", "rocksdb.num-running-compactions",
        "rocksdb.mem-table-flush-pending", "rocksdb.compaction-pending"};
    for (int i = 0; i < 60000; i++) {
        bool busy = false;
        for (size_t p = 0; p < sizeof props / sizeof props[0]; p++) {
            uint64_t v = 0;
            if (rocksdb_property_int(d->db, props[p], &v) != 0) {
                fprintf(stderr, "rocksdb: no property %s\n", props[p]);
                return RES_ERR;
            }
            busy = busy || v != 0;
        }
        if (!busy)
            return RES_OK;
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "rocksdb: background work still running after 10 min\n");
    return RES_ERR;
}

static int rocks_e_flush(void *db)
{
    rocks_db *d = db;
    if (d->db == NULL)
        return RES_OK;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    char *err = NULL;
    rocksdb_flush(d->db, fo, &err);
    rocksdb_flushoptions_destroy(fo);
    if (err != NULL) {
        rocks_err("flush", err);
        return RES_ERR;
    }
    return RES_OK;
}

/* CompactRange over every key with the default options: each level in
 * turn merged into the next, down to the deepest one holding data. */
static int rocks_e_compact(void *db)
{
    rocks_db *d = db;
    if (d->db == NULL)
        return RES_OK;
    rocksdb_compact_range(d->db, NULL, 0, NULL, 0);
    return RES_OK;
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

static int rocks_e_scan(void *db, void *ts, const uint8_t *start,
                        uint64_t limit, visit_fn fn, void *arg)
{
    (void)ts;
    rocks_db *d = db;
    rocksdb_iterator_t *it =
        d->tdb ? rocksdb_transactiondb_create_iterator(d->tdb, d->ro)
               : rocksdb_create_iterator(d->db, d->ro);
    if (start)
        rocksdb_iter_seek(it, (const char *)start, KEY_LEN);
    else
        rocksdb_iter_seek_to_first(it);
    for (uint64_t n = 0; rocksdb_iter_valid(it) && (limit == 0 || n < limit);
         n++) {
        size_t kl = 0, vl = 0;
        const char *k = rocksdb_iter_key(it, &kl);
        const char *v = rocksdb_iter_value(it, &vl);
        if (fn(arg, k, kl, v, vl) != 0)
            break;
        rocksdb_iter_next(it);
    }
    char *err = NULL;
    rocksdb_iter_get_error(it, &err);
    rocksdb_iter_destroy(it);
    if (err != NULL) {
        rocks_err("iterator", err);
        return RES_ERR;
    }
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
            bool ok = val_check(v, n, idx, &c);
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

/* ---- LevelDB ---- */

#ifdef CAIRN_HAVE_LEVELDB
typedef struct ldb_db {
    leveldb_t *db;
    leveldb_options_t *opts;
    leveldb_writeoptions_t *wo;
    leveldb_readoptions_t *ro;
    /* LevelDB has no transactions: read-modify-write is get+put under this
     * lock, as an application would do it. */
    pthread_mutex_t rmw_lock;
} ldb_db;

static void ldb_err(const char *what, char *err)
{
    fprintf(stderr, "leveldb: %s: %s\n", what, err ? err : "?");
    leveldb_free(err);
}

static void ldb_free_all(ldb_db *d)
{
    if (d->opts)
        leveldb_options_destroy(d->opts);
    if (d->wo)
        leveldb_writeoptions_destroy(d->wo);
    if (d->ro)
        leveldb_readoptions_destroy(d->ro);
    pthread_mutex_destroy(&d->rmw_lock);
    free(d);
}

static void *ldb_e_open(const char *dir, open_mode mode)
{
    ldb_db *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    if (pthread_mutex_init(&d->rmw_lock, NULL) != 0) {
        free(d);
        return NULL;
    }
    d->opts = leveldb_options_create();
    leveldb_options_set_create_if_missing(d->opts, 1);
    d->wo = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(d->wo, mode == MODE_DURABLE);
    d->ro = leveldb_readoptions_create();
    char *err = NULL;
    d->db = leveldb_open(d->opts, dir, &err);
    if (err != NULL || d->db == NULL) {
        ldb_err("open", err);
        ldb_free_all(d);
        return NULL;
    }
    return d;
}

static int ldb_e_close(void *db)
{
    ldb_db *d = db;
    leveldb_close(d->db);
    ldb_free_all(d);
    return RES_OK;
}

static int ldb_e_put(void *db, void *ts, const uint8_t *key,
                     const uint8_t *val)
{
    (void)ts;
    ldb_db *d = db;
    char *err = NULL;
    leveldb_put(d->db, d->wo, (const char *)key, KEY_LEN, (const char *)val,
                VAL_LEN, &err);
    if (err != NULL) {
        ldb_err("put", err);
        return RES_ERR;
    }
    return RES_OK;
}

static int ldb_e_get(void *db, void *ts, const uint8_t *key, uint8_t *out,
                     size_t *vlen)
{
    (void)ts;
    ldb_db *d = db;
    char *err = NULL;
    size_t n = 0;
    char *v = leveldb_get(d->db, d->ro, (const char *)key, KEY_LEN, &n, &err);
    if (err != NULL) {
        ldb_err("get", err);
        return RES_ERR;
    }
    if (v == NULL)
        return RES_MISSING;
    copy_out(out, vlen, v, n);
    leveldb_free(v);
    return RES_OK;
}

static int ldb_e_scan(void *db, void *ts, const uint8_t *start,
                      uint64_t limit, visit_fn fn, void *arg)
{
    (void)ts;
    ldb_db *d = db;
    leveldb_iterator_t *it = leveldb_create_iterator(d->db, d->ro);
    if (start)
        leveldb_iter_seek(it, (const char *)start, KEY_LEN);
    else
        leveldb_iter_seek_to_first(it);
    for (uint64_t n = 0; leveldb_iter_valid(it) && (limit == 0 || n < limit);
         n++) {
        size_t kl = 0, vl = 0;
        const char *k = leveldb_iter_key(it, &kl);
        const char *v = leveldb_iter_value(it, &vl);
        if (fn(arg, k, kl, v, vl) != 0)
            break;
        leveldb_iter_next(it);
    }
    char *err = NULL;
    leveldb_iter_get_error(it, &err);
    leveldb_iter_destroy(it);
    if (err != NULL) {
        ldb_err("iterator", err);
        return RES_ERR;
    }
    return RES_OK;
}

static int ldb_e_load(void *db, uint64_t first, uint64_t n)
{
    ldb_db *d = db;
    uint8_t key[KEY_LEN], val[VAL_LEN];
    leveldb_writebatch_t *b = leveldb_writebatch_create();
    for (uint64_t done = 0; done < n;) {
        leveldb_writebatch_clear(b);
        for (uint64_t i = 0; i < LOAD_BATCH && done < n; i++, done++) {
            key_make(key, first + done);
            val_make(val, first + done, 0);
            leveldb_writebatch_put(b, (const char *)key, KEY_LEN,
                                   (const char *)val, VAL_LEN);
        }
        char *err = NULL;
        leveldb_write(d->db, d->wo, b, &err);
        if (err != NULL) {
            leveldb_writebatch_destroy(b);
            ldb_err("write", err);
            return RES_ERR;
        }
    }
    leveldb_writebatch_destroy(b);
    return RES_OK;
}

static int ldb_e_rmw(void *db, void *ts, uint64_t idx, uint64_t *retries)
{
    (void)retries; /* serialized by the lock: no conflicts */
    ldb_db *d = db;
    uint8_t key[KEY_LEN], out[OUT_MAX], nv[VAL_LEN];
    size_t n = 0;
    uint64_t c = 0;
    key_make(key, idx);
    pthread_mutex_lock(&d->rmw_lock);
    int rc = ldb_e_get(db, ts, key, out, &n);
    if (rc == RES_OK && !val_check(out, n, idx, &c))
        rc = RES_BAD;
    if (rc == RES_OK) {
        val_make(nv, idx, c + 1);
        rc = ldb_e_put(db, ts, key, nv);
    }
    pthread_mutex_unlock(&d->rmw_lock);
    return rc;
}
#endif /* CAIRN_HAVE_LEVELDB */

/* ---- SQLite ---- */

#ifdef CAIRN_HAVE_SQLITE
/* One connection and its prepared statements; used by one thread. */
typedef struct sq_conn {
    sqlite3 *c;
    sqlite3_stmt *get, *put, *scan_from, *scan_all, *begin, *commit,
        *rollback;
} sq_conn;

typedef struct sq_db {
    char path[4200]; /* DIR/kv.sqlite */
    bool durable;
    sq_conn main; /* open, load and close: the main thread's */
} sq_db;

#define SQ_BUSY_GIVE_UP 30.0 /* seconds of waiting before a write fails */

/* Writers take turns on SQLite's single write lock. Wait with backoff from
 * 10 us doubling to 1 ms (the default handler sleeps whole milliseconds
 * from the start, leaving the lock idle; fixed short sleeps make 64
 * waiting threads thrash it). Gives up after SQ_BUSY_GIVE_UP seconds. */
static int sq_busy(void *arg, int count)
{
    (void)arg;
    long us = count < 7 ? 10L << count : 1000L;
    if (count > 7 && (double)(count - 7) * 1e-3 > SQ_BUSY_GIVE_UP)
        return 0;
    struct timespec d = {0, us * 1000L};
    nanosleep(&d, NULL);
    return 1;
}

static int sq_fail(sqlite3 *c, const char *what, int rc)
{
    fprintf(stderr, "sqlite: %s: %s (%d)\n", what,
            c ? sqlite3_errmsg(c) : sqlite3_errstr(rc), rc);
    return RES_ERR;
}

static int sq_exec(sqlite3 *c, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "sqlite: %s: %s (%d)\n", sql,
                msg ? msg : sqlite3_errstr(rc), rc);
        sqlite3_free(msg);
        return RES_ERR;
    }
    return RES_OK;
}

/* Steps a statement that returns no rows, then resets it. */
static int sq_run(sq_conn *k, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return RES_OK;
    return sq_fail(k->c, what, rc);
}

static void sq_conn_close(sq_conn *k)
{
    sqlite3_stmt *all[] = {k->get,   k->put,    k->scan_from, k->scan_all,
                           k->begin, k->commit, k->rollback};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        sqlite3_finalize(all[i]); /* NULL is a no-op */
    if (k->c != NULL) {
        int rc = sqlite3_close(k->c);
        if (rc != SQLITE_OK)
            sq_fail(k->c, "close", rc);
    }
    memset(k, 0, sizeof *k);
}

static int sq_conn_open(sq_conn *k, const char *path, bool durable,
                        bool create)
{
    memset(k, 0, sizeof *k);
    int rc = sqlite3_open_v2(path, &k->c,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                                 SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        sq_fail(k->c, "open", rc);
        sqlite3_close(k->c);
        k->c = NULL;
        return RES_ERR;
    }
    sqlite3_busy_handler(k->c, sq_busy, NULL);
    if ((create && sq_exec(k->c, "PRAGMA journal_mode=WAL") != RES_OK) ||
        sq_exec(k->c, durable ? "PRAGMA synchronous=FULL"
                              : "PRAGMA synchronous=NORMAL") != RES_OK ||
        (create && sq_exec(k->c, "CREATE TABLE IF NOT EXISTS kv(k BLOB "
                                 "PRIMARY KEY, v BLOB) WITHOUT ROWID") !=
                       RES_OK)) {
        sq_conn_close(k);
        return RES_ERR;
    }
    static const char *const sql[] = {
        "SELECT v FROM kv WHERE k = ?1",
        ("INSERT INTO kv(k, v) VALUES(?1, ?2) "
         "ON CONFLICT(k) DO UPDATE SET v = excluded.v"),
        "SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2",
        "SELECT k, v FROM kv ORDER BY k LIMIT ?1",
        "BEGIN IMMEDIATE",
        "COMMIT",
        "ROLLBACK",
    };
    sqlite3_stmt **out[] = {&k->get,   &k->put,    &k->scan_from, &k->scan_all,
                            &k->begin, &k->commit, &k->rollback};
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        rc = sqlite3_prepare_v2(k->c, sql[i], -1, out[i], NULL);
        if (rc != SQLITE_OK) {
            sq_fail(k->c, sql[i], rc);
            sq_conn_close(k);
            return RES_ERR;
        }
    }
    return RES_OK;
}

static void *sq_e_open(const char *dir, open_mode mode)
{
    if (mkdir_one(dir, "sqlite") != 0)
        return NULL;
    sq_db *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    snprintf(d->path, sizeof d->path, "%s/kv.sqlite", dir);
    d->durable = mode == MODE_DURABLE;
    if (sq_conn_open(&d->main, d->path, d->durable, true) != RES_OK) {
        free(d);
        return NULL;
    }
    return d;
}

/* Closing the last connection checkpoints the WAL into the database file
 * and removes the WAL. */
static int sq_e_close(void *db)
{
    sq_db *d = db;
    sq_conn_close(&d->main);
    free(d);
    return RES_OK;
}

static void *sq_e_thread_init(void *db)
{
    sq_db *d = db;
    sq_conn *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    if (sq_conn_open(k, d->path, d->durable, false) != RES_OK) {
        free(k);
        return NULL;
    }
    return k;
}

static void sq_e_thread_fini(void *db, void *ts)
{
    (void)db;
    if (ts != NULL) {
        sq_conn_close(ts);
        free(ts);
    }
}

static int sq_put_with(sq_conn *k, const uint8_t *key, const uint8_t *val)
{
    sqlite3_bind_blob(k->put, 1, key, KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(k->put, 2, val, VAL_LEN, SQLITE_STATIC);
    return sq_run(k, k->put, "put");
}

static int sq_e_put(void *db, void *ts, const uint8_t *key,
                    const uint8_t *val)
{
    (void)db;
    if (ts == NULL)
        return RES_ERR;
    return sq_put_with(ts, key, val);
}

static int sq_get_with(sq_conn *k, const uint8_t *key, uint8_t *out,
                       size_t *vlen)
{
    sqlite3_bind_blob(k->get, 1, key, KEY_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(k->get);
    if (rc == SQLITE_ROW) {
        const void *v = sqlite3_column_blob(k->get, 0);
        int n = sqlite3_column_bytes(k->get, 0);
        if (v == NULL && n > 0) {
            sqlite3_reset(k->get);
            return sq_fail(k->c, "get (column)", SQLITE_NOMEM);
        }
        copy_out(out, vlen, v, (size_t)n);
        sqlite3_reset(k->get);
        return RES_OK;
    }
    sqlite3_reset(k->get);
    if (rc == SQLITE_DONE)
        return RES_MISSING;
    return sq_fail(k->c, "get", rc);
}

static int sq_e_get(void *db, void *ts, const uint8_t *key, uint8_t *out,
                    size_t *vlen)
{
    (void)db;
    if (ts == NULL)
        return RES_ERR;
    return sq_get_with(ts, key, out, vlen);
}

static int sq_e_scan(void *db, void *ts, const uint8_t *start,
                     uint64_t limit, visit_fn fn, void *arg)
{
    (void)db;
    sq_conn *k = ts;
    if (k == NULL)
        return RES_ERR;
    sqlite3_stmt *s = start ? k->scan_from : k->scan_all;
    int p = 1;
    if (start)
        sqlite3_bind_blob(s, p++, start, KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(s, p, limit ? (sqlite3_int64)limit : -1);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const void *kv = sqlite3_column_blob(s, 0);
        int kl = sqlite3_column_bytes(s, 0);
        const void *vv = sqlite3_column_blob(s, 1);
        int vl = sqlite3_column_bytes(s, 1);
        if (fn(arg, kv, (size_t)kl, vv, (size_t)vl) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? RES_OK : sq_fail(k->c, "scan", rc);
}

static int sq_e_load(void *db, uint64_t first, uint64_t n)
{
    sq_db *d = db;
    uint8_t key[KEY_LEN], val[VAL_LEN];
    for (uint64_t done = 0; done < n;) {
        if (sq_exec(d->main.c, "BEGIN") != RES_OK)
            return RES_ERR;
        for (uint64_t i = 0; i < 10000 && done < n; i++, done++) {
            key_make(key, first + done);
            val_make(val, first + done, 0);
            if (sq_put_with(&d->main, key, val) != RES_OK) {
                sq_exec(d->main.c, "ROLLBACK");
                return RES_ERR;
            }
        }
        if (sq_exec(d->main.c, "COMMIT") != RES_OK)
            return RES_ERR;
    }
    return RES_OK;
}

static int sq_e_rmw(void *db, void *ts, uint64_t idx, uint64_t *retries)
{
    (void)db;
    (void)retries; /* BEGIN IMMEDIATE waits for the write lock: no retry */
    sq_conn *k = ts;
    if (k == NULL)
        return RES_ERR;
    uint8_t key[KEY_LEN], out[OUT_MAX], nv[VAL_LEN];
    size_t n = 0;
    uint64_t c = 0;
    key_make(key, idx);
    if (sq_run(k, k->begin, "BEGIN IMMEDIATE") != RES_OK)
        return RES_ERR;
    int rc = sq_get_with(k, key, out, &n);
    if (rc == RES_OK && !val_check(out, n, idx, &c))
        rc = RES_BAD;
    if (rc == RES_OK) {
        val_make(nv, idx, c + 1);
        rc = sq_put_with(k, key, nv);
    }
    if (rc == RES_OK)
        rc = sq_run(k, k->commit, "COMMIT");
    if (rc != RES_OK && !sqlite3_get_autocommit(k->c))
        sq_run(k, k->rollback, "ROLLBACK");
    return rc;
}
#endif /* CAIRN_HAVE_SQLITE */

/* ---- the table ---- */

enum {
    ENG_CAIRN,
    ENG_ROCKSDB,
    ENG_LEVELDB,
    ENG_LMDB,
    ENG_SQLITE,
    NENGINES,
    ENG_RAW = NENGINES /* the raw-fsync baseline of the durable rows */
};

static const engine_ops ENGINES[NENGINES] = {
    [ENG_CAIRN] = {.name = "cairn", .built = true, .open = cairn_e_open,
                   .close = cairn_e_close, .compact = cairn_e_compact,
                   .settle = cairn_e_settle,
                   .put = cairn_e_put,
                   .get = cairn_e_get, .scan = cairn_e_scan,
                   .load = cairn_e_load, .rmw = cairn_e_rmw},
#ifdef CAIRN_HAVE_ROCKSDB
    [ENG_ROCKSDB] = {.name = "rocksdb", .built = true, .open = rocks_e_open,
                     .close = rocks_e_close, .flush = rocks_e_flush,
                     .compact = rocks_e_compact, .settle = rocks_e_settle,
                     .thread_init = rocks_e_thread_init,
                     .thread_fini = rocks_e_thread_fini, .put = rocks_e_put,
                     .get = rocks_e_get, .scan = rocks_e_scan,
                     .load = rocks_e_load, .rmw = rocks_e_rmw},
#else
    [ENG_ROCKSDB] = {.name = "rocksdb"},
#endif
#ifdef CAIRN_HAVE_LEVELDB
    [ENG_LEVELDB] = {.name = "leveldb", .built = true, .open = ldb_e_open,
                     .close = ldb_e_close, .put = ldb_e_put,
                     .get = ldb_e_get, .scan = ldb_e_scan,
                     .load = ldb_e_load, .rmw = ldb_e_rmw},
#else
    [ENG_LEVELDB] = {.name = "leveldb"},
#endif
#ifdef CAIRN_HAVE_LMDB
    [ENG_LMDB] = {.name = "lmdb", .built = true, .open = lmdb_e_open,
                  .close = lmdb_e_close, .thread_init = lmdb_e_thread_init,
                  .thread_fini = lmdb_e_thread_fini, .put = lmdb_e_put,
                  .get = lmdb_e_get, .scan = lmdb_e_scan,
                  .load = lmdb_e_load, .rmw = lmdb_e_rmw},
#else
    [ENG_LMDB] = {.name = "lmdb"},
#endif
#ifdef CAIRN_HAVE_SQLITE
    [ENG_SQLITE] = {.name = "sqlite", .built = true, .open = sq_e_open,
                    .close = sq_e_close, .thread_init = sq_e_thread_init,
                    .thread_fini = sq_e_thread_fini, .put = sq_e_put,
                    .get = sq_e_get, .scan = sq_e_scan, .load = sq_e_load,
                    .rmw = sq_e_rmw},
#else
    [ENG_SQLITE] = {.name = "sqlite"},
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

enum {
    W_FILLSEQ,
    W_FILLRANDOM,
    W_OVERWRITE,
    W_READRANDOM,
    W_READHOT,
    W_READCOLD,
    W_READSEQ,
    W_SEEKRANDOM,
    W_FILLSYNC,
    W_YCSB_A,
    W_YCSB_B,
    W_YCSB_C,
    W_YCSB_F,
    W_RMW,
    W_DURABLE,
    NWL
};
static const char *const WL_NAMES[NWL] = {
    "fillseq",    "fillrandom", "overwrite", "readrandom", "readhot",
    "readrandom-cold", "readseq", "seekrandom", "fillsync", "ycsb-a",
    "ycsb-b",     "ycsb-c",     "ycsb-f",     "rmw",       "durable"};

#define YCSB_THREADS 2

typedef struct row_def {
    int wl;
    int threads;
} row_def;

/* The table's lines, in order. */
static const row_def ROWS[] = {
    {W_FILLSEQ, 1},           {W_FILLRANDOM, 1},
    {W_OVERWRITE, 1},         {W_READRANDOM, 1},
    {W_READRANDOM, 2},        {W_READHOT, 1},
    {W_READHOT, 2},           {W_READCOLD, 1},
    {W_READSEQ, 1},           {W_SEEKRANDOM, 1},
    {W_FILLSYNC, 1},          {W_YCSB_A, YCSB_THREADS},
    {W_YCSB_B, YCSB_THREADS}, {W_YCSB_C, YCSB_THREADS},
    {W_YCSB_F, YCSB_THREADS}, {W_RMW, 1},
    {W_RMW, 2},               {W_DURABLE, 1},
    {W_DURABLE, 16},          {W_DURABLE, 64},
};
#define NROWS (sizeof ROWS / sizeof ROWS[0])

/* YCSB core workloads: the share of reads and of blind updates; the rest
 * is read-modify-write. */
typedef struct ycsb_mix {
    double read, update;
} ycsb_mix;

static const ycsb_mix YCSB_A = {0.50, 0.50}, YCSB_B = {0.95, 0.05},
                      YCSB_C = {1.00, 0.00}, YCSB_F = {0.50, 0.00};

enum { ST_OFF, ST_NOTBUILT, ST_OK, ST_ERROR };

/* What each measurement records, one sample per run (raw fsync: two). */
enum {
    S_OPS,       /* operations per second */
    S_AUX,       /* durable (Cairn): commits per log fsync; cold: open s;
                    readhot (Cairn): ops/s with the row cache off */
    S_DB_ALLOC,  /* fillrandom: du of the db dir after close (bytes) */
    S_DB_SIZE,   /* fillrandom: the files' apparent size (bytes) */
    S_WRITTEN,   /* fillrandom: /proc/self/io write_bytes, open to close */
    S_CANCELLED, /* fillrandom: cancelled_write_bytes over the same span */
    S_WCHAR,     /* fillrandom: wchar (bytes passed to write calls), same */
    S_RESIDENT,  /* cold: bytes still in the page cache after the drop */
    S_DB_FULL,   /* fillrandom: du after a reopen, a full compaction and a
                    close (the settled size) */
    S_SYNC_US,   /* durable (Cairn): median latency of the log's fsyncs */
    NSAMPLES
};

typedef struct result {
    int status;
    int n[NSAMPLES];
    double *v[NSAMPLES];
    uint64_t nops;  /* operations per measurement (the last one) */
    uint64_t bytes; /* user bytes moved per measurement */
    uint64_t mismatches, retries, errors;
} result;

static struct {
    const char *dir;
    const char *plot; /* NULL: no chart */
    bool json, keep;
    uint64_t keys;
    int runs;
    double duration;
    bool selected[NENGINES];
    bool wl[NWL];
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

static void res_add(result *r, int kind, double x)
{
    if (r->n[kind] < 2 * g_cfg.runs)
        r->v[kind][r->n[kind]++] = x;
}

/* The median of a kind of sample, -1 if there is none. */
static double res_med(const result *r, int kind)
{
    return r->n[kind] > 0 ? bench_median(r->v[kind], (size_t)r->n[kind])
                          : -1.0;
}

static void res_record(result *r, double ops_per_sec, uint64_t nops)
{
    res_add(r, S_OPS, ops_per_sec);
    r->nops = nops;
    r->bytes = nops * ENTRY_BYTES;
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

/* bad < 0: an engine error; > 0: wrong reads. */
static void res_check(result *r, int64_t bad)
{
    if (bad < 0)
        res_fail(r);
    else if (bad > 0)
        res_mismatch(r, (uint64_t)bad);
}

static bool usable(int ei, int wl, int threads)
{
    result *r = res_at(wl, threads, ei);
    return r != NULL && r->status == ST_OK;
}

static void progress(int run, int wl, int threads, int ei, double ops,
                     const char *extra)
{
    char b[32];
    fprintf(stderr, "[%d/%d] %-15s %2d thr  %-9s %9s ops/s%s\n", run + 1,
            g_cfg.runs, WL_NAMES[wl], threads, engine_name(ei),
            bench_fmt_rate(ops, b, sizeof b), extra ? extra : "");
}

/* Operations per measurement. */
static uint64_t at_least(uint64_t v, uint64_t floor)
{
    return v > floor ? v : floor;
}
static uint64_t read_ops(void) { return at_least(g_cfg.keys, 100000); }
static uint64_t cold_ops(void) { return at_least(g_cfg.keys / 10, 10000); }
static uint64_t seek_ops(void) { return at_least(g_cfg.keys / 10, 25000); }
static uint64_t ycsb_ops(void) { return at_least(g_cfg.keys / 4, 50000); }
static uint64_t rmw_ops(void) { return at_least(g_cfg.keys / 4, 10000); }
static uint64_t fillsync_ops(void)
{
    uint64_t n = at_least(g_cfg.keys / 50, 1000);
    return n < g_cfg.keys ? n : g_cfg.keys;
}
static double fillsync_secs(void) { return 2 * g_cfg.duration; }
/* readseq: full scans until at least 1M entries were read. */
static uint64_t readseq_passes(void)
{
    return at_least(1000000 / g_cfg.keys, 1);
}

/* ------------------------------------------------------------------------
 * Files (the main thread's: the nftw callbacks use the globals below)
 * ------------------------------------------------------------------------ */

/* DIR/<what>-<engine>-r<run>. */
static void wl_dir(char *buf, size_t n, const char *what, int ei, int run)
{
    snprintf(buf, n, "%s/%s-%s-r%d", g_cfg.dir, what, engine_name(ei),
             run + 1);
}

static void wl_done(const char *dir)
{
    if (!g_cfg.keep)
        bench_rm_rf(dir);
}

/* ------------------------------------------------------------------------
 * Checking what was read
 * ------------------------------------------------------------------------ */

/* What a read may see in the word of a value. */
enum {
    EXPECT_PRISTINE, /* 0: as loaded */
    EXPECT_NO_COUNT, /* any stamp, counter 0 (no read-modify-write yet) */
    EXPECT_ANY,      /* any word */
};

static bool word_ok(uint64_t w, int expect)
{
    switch (expect) {
    case EXPECT_PRISTINE: return w == 0;
    case EXPECT_NO_COUNT: return (w & COUNT_MASK) == 0;
    default: return true;
    }
}

static bool value_ok(const void *v, size_t len, uint64_t idx, int expect)
{
    uint64_t w = 0;
    return val_check(v, len, idx, &w) && word_ok(w, expect);
}

static bool key_parse(const void *kp, size_t klen, uint64_t *idx)
{
    const uint8_t *k = kp;
    if (klen != KEY_LEN)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < KEY_LEN; i++) {
        if (k[i] < '0' || k[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(k[i] - '0');
    }
    *idx = v;
    return true;
}

/* A scan's visitor: every entry must be the next key in index order with
 * its value. A key out of place counts once and the check follows it. */
typedef struct scan_check {
    uint8_t want[KEY_LEN]; /* the key expected next */
    uint64_t idx;          /* its index */
    uint64_t seen, bad;
    int expect;
    const char *engine;
} scan_check;

static void scan_check_init(scan_check *c, uint64_t first, int expect,
                            const char *engine)
{
    memset(c, 0, sizeof *c);
    key_make(c->want, first);
    c->idx = first;
    c->expect = expect;
    c->engine = engine;
}

static int scan_visit(void *arg, const void *key, size_t klen,
                      const void *val, size_t vlen)
{
    scan_check *c = arg;
    if (klen != KEY_LEN || memcmp(key, c->want, KEY_LEN) != 0) {
        uint64_t got = 0;
        if (c->bad < 5)
            fprintf(stderr, "%s: SCAN: expected key %016llu, got %s\n",
                    c->engine, (unsigned long long)c->idx,
                    klen == KEY_LEN ? "another key" : "a key of another size");
        c->bad++;
        if (key_parse(key, klen, &got)) {
            c->idx = got;
            memcpy(c->want, key, KEY_LEN);
        }
    } else if (!value_ok(val, vlen, c->idx, c->expect)) {
        if (c->bad < 5)
            fprintf(stderr, "%s: SCAN: wrong value for key %016llu\n",
                    c->engine, (unsigned long long)c->idx);
        c->bad++;
    }
    c->idx++;
    key_inc(c->want);
    c->seen++;
    return 0;
}

/* Entries a scan from idx with limit should return. */
static uint64_t scan_expected(uint64_t idx, uint64_t limit)
{
    uint64_t left = g_cfg.keys - idx;
    return limit == 0 || left < limit ? left : limit;
}

static uint64_t absdiff(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/* ------------------------------------------------------------------------
 * Worker threads
 * ------------------------------------------------------------------------ */

enum { K_READ, K_READHOT, K_SEEK, K_YCSB, K_RMW, K_DURABLE };

/* readhot: 90% of reads go to every 100th key (1% of them). */
static uint64_t hot_key(uint64_t *s, uint64_t n)
{
    uint64_t r = bench_rng_next(s);
    uint64_t hot = n / 100 ? n / 100 : 1;
    if (r % 10 != 0)
        return (bench_rng_next(s) % hot) * 100 % n;
    return bench_rng_next(s) % n;
}

/* One multi-threaded measurement. */
typedef struct job {
    int kind;
    int threads;
    uint64_t ops; /* split among the threads (K_DURABLE: runs for time) */
    uint64_t seed;
    int expect;            /* K_READ, K_SEEK, K_YCSB reads */
    const ycsb_mix *mix;   /* K_YCSB */
} job;

static atomic_bool g_stop;

typedef struct worker {
    const engine_ops *e;
    void *db;
    const job *j;
    uint64_t nops;
    uint64_t seed;
    pthread_barrier_t *start;
    /* out */
    uint64_t done, mismatches, retries, rmw_done, entries;
    int err;
} worker;

static void worker_read(worker *w, void *ts, uint64_t idx)
{
    uint8_t key[KEY_LEN], out[OUT_MAX];
    size_t vlen = 0;
    key_make(key, idx);
    int rc = w->e->get(w->db, ts, key, out, &vlen);
    if (rc == RES_ERR) {
        w->err = 1;
        return;
    }
    if (rc != RES_OK || !value_ok(out, vlen, idx, w->j->expect)) {
        if (w->mismatches < 5)
            fprintf(stderr, "%s: WRONG READ of key %016llu (%s)\n",
                    w->e->name, (unsigned long long)idx,
                    rc == RES_MISSING ? "missing" : "bad value");
        w->mismatches++;
    }
}

static void worker_rmw(worker *w, void *ts, uint64_t idx)
{
    int rc = w->e->rmw(w->db, ts, idx, &w->retries);
    if (rc == RES_ERR) {
        w->err = 1;
        return;
    }
    if (rc != RES_OK) {
        if (w->mismatches < 5)
            fprintf(stderr, "%s: WRONG READ in rmw of key %016llu (%s)\n",
                    w->e->name, (unsigned long long)idx,
                    rc == RES_MISSING ? "missing" : "bad value");
        w->mismatches++;
    } else {
        w->rmw_done++;
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    const engine_ops *e = w->e;
    void *ts = ts_init(e, w->db);
    if (e->thread_init != NULL && ts == NULL)
        w->err = 1;
    pthread_barrier_wait(w->start);
    uint64_t s = w->seed, n = g_cfg.keys;
    uint8_t key[KEY_LEN], val[VAL_LEN];
    if (w->err)
        goto out;
    switch (w->j->kind) {
    case K_READ:
        for (uint64_t i = 0; i < w->nops && !w->err; i++, w->done++)
            worker_read(w, ts, bench_rng_next(&s) % n);
        break;
    case K_READHOT:
        for (uint64_t i = 0; i < w->nops && !w->err; i++, w->done++)
            worker_read(w, ts, hot_key(&s, n));
        break;
    case K_SEEK:
        for (uint64_t i = 0; i < w->nops; i++, w->done++) {
            uint64_t idx = bench_rng_next(&s) % n;
            scan_check c;
            scan_check_init(&c, idx, w->j->expect, e->name);
            key_make(key, idx);
            if (e->scan(w->db, ts, key, SEEK_ENTRIES, scan_visit, &c) !=
                RES_OK) {
                w->err = 1;
                break;
            }
            w->mismatches +=
                c.bad + absdiff(c.seen, scan_expected(idx, SEEK_ENTRIES));
            w->entries += c.seen;
        }
        break;
    case K_YCSB:
        for (uint64_t i = 0; i < w->nops && !w->err; i++, w->done++) {
            uint64_t idx = zipf_key(&g_zipf, &s, n);
            double u = rng_unit(&s);
            if (u < w->j->mix->read) {
                worker_read(w, ts, idx);
            } else if (u < w->j->mix->read + w->j->mix->update) {
                key_make(key, idx);
                val_make(val, idx, stamp_word(i));
                if (e->put(w->db, ts, key, val) != RES_OK)
                    w->err = 1;
            } else {
                worker_rmw(w, ts, idx);
            }
        }
        break;
    case K_RMW:
        for (uint64_t i = 0; i < w->nops && !w->err; i++)
            worker_rmw(w, ts, bench_rng_next(&s) % n);
        w->done = w->rmw_done; /* committed */
        break;
    case K_DURABLE:
        while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
            uint64_t idx = bench_rng_next(&s) % n;
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
    uint64_t done, mismatches, retries, rmw_done, entries;
    int err;
} run_out;

/* Runs the job's workers; K_DURABLE runs for g_cfg.duration. Exits the
 * program if threads cannot be started (nothing sane to report then). */
static void run_threads(const engine_ops *e, void *db, const job *j,
                        run_out *o)
{
    memset(o, 0, sizeof *o);
    int nthreads = j->threads;
    worker *w = calloc((size_t)nthreads, sizeof *w);
    pthread_t *tid = calloc((size_t)nthreads, sizeof *tid);
    pthread_barrier_t start;
    if (w == NULL || tid == NULL ||
        pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1) != 0) {
        fprintf(stderr, "engine: out of memory starting threads\n");
        exit(1);
    }
    atomic_store(&g_stop, false);
    int started = 0;
    for (int i = 0; i < nthreads; i++) {
        w[i] = (worker){.e = e,
                        .db = db,
                        .j = j,
                        .nops = j->ops / (uint64_t)nthreads +
                                ((uint64_t)i < j->ops % (uint64_t)nthreads),
                        .seed = bench_mix64(j->seed * 1000003u + (uint64_t)i + 1),
                        .start = &start};
        if (pthread_create(&tid[i], NULL, worker_main, &w[i]) != 0)
            break;
        started++;
    }
    if (started < nthreads) {
        /* The started workers are stuck at the barrier: give up loudly
         * rather than hang or leak them. */
        fprintf(stderr, "engine: pthread_create failed after %d threads\n",
                started);
        exit(1);
    }
    pthread_barrier_wait(&start);
    double t0 = bench_now();
    if (j->kind == K_DURABLE) {
        double d = g_cfg.duration;
        struct timespec ts = {(time_t)d,
                              (long)((d - (double)(time_t)d) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
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
        o->rmw_done += w[i].rmw_done;
        o->entries += w[i].entries;
        o->err |= w[i].err;
    }
    pthread_barrier_destroy(&start);
    free(w);
    free(tid);
}

/* ------------------------------------------------------------------------
 * Verification (not timed)
 * ------------------------------------------------------------------------ */

/* Reads up to `samples` random keys; a key may be absent only if
 * allow_missing. Returns the number of wrong reads, or -1 on an error. */
static int64_t verify_sample(const engine_ops *e, void *db, uint64_t samples,
                             uint64_t seed, int expect, bool allow_missing)
{
    void *ts = ts_init(e, db);
    if (e->thread_init != NULL && ts == NULL)
        return -1;
    uint64_t s = seed, bad = 0;
    uint8_t key[KEY_LEN], out[OUT_MAX];
    size_t vlen = 0;
    int64_t ret = 0;
    for (uint64_t i = 0; i < samples; i++) {
        uint64_t idx = bench_rng_next(&s) % g_cfg.keys;
        key_make(key, idx);
        int rc = e->get(db, ts, key, out, &vlen);
        if (rc == RES_ERR) {
            ret = -1;
            break;
        }
        if (rc == RES_MISSING && allow_missing)
            continue;
        if (rc != RES_OK || !value_ok(out, vlen, idx, expect)) {
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

/* Reads the keys g_perm[0..n): each must be there, as loaded. */
static int64_t verify_perm_prefix(const engine_ops *e, void *db, uint64_t n)
{
    void *ts = ts_init(e, db);
    if (e->thread_init != NULL && ts == NULL)
        return -1;
    uint64_t bad = 0;
    uint8_t key[KEY_LEN], out[OUT_MAX];
    size_t vlen = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t idx = g_perm[i];
        key_make(key, idx);
        int rc = e->get(db, ts, key, out, &vlen);
        if (rc == RES_ERR) {
            ts_fini(e, db, ts);
            return -1;
        }
        if (rc != RES_OK || !value_ok(out, vlen, idx, EXPECT_PRISTINE)) {
            if (bad < 5)
                fprintf(stderr, "%s: WRONG READ of key %016llu (%s)\n",
                        e->name, (unsigned long long)idx,
                        rc == RES_MISSING ? "missing" : "bad value");
            bad++;
        }
    }
    ts_fini(e, db, ts);
    return (int64_t)bad;
}

/* Reads every key; *sum gets the sum of the counters. Returns the number
 * of missing or wrong values, or -1 on an error. */
static int64_t sum_counters(const engine_ops *e, void *db, uint64_t *sum)
{
    void *ts = ts_init(e, db);
    if (e->thread_init != NULL && ts == NULL)
        return -1;
    uint64_t bad = 0, w = 0;
    uint8_t key[KEY_LEN], out[OUT_MAX];
    size_t vlen = 0;
    int64_t ret = 0;
    *sum = 0;
    for (uint64_t idx = 0; idx < g_cfg.keys; idx++) {
        key_make(key, idx);
        int rc = e->get(db, ts, key, out, &vlen);
        if (rc == RES_ERR) {
            ret = -1;
            break;
        }
        if (rc != RES_OK || !val_check(out, vlen, idx, &w)) {
            if (bad < 5)
                fprintf(stderr, "%s: WRONG READ of key %016llu (%s)\n",
                        e->name, (unsigned long long)idx,
                        rc == RES_MISSING ? "missing" : "bad value");
            bad++;
            continue;
        }
        *sum += w & COUNT_MASK;
    }
    ts_fini(e, db, ts);
    return ret < 0 ? ret : (int64_t)bad;
}

/* ------------------------------------------------------------------------
 * Single-threaded loops (main thread)
 * ------------------------------------------------------------------------ */

/* N puts, in key order or in g_perm's; returns ops/s or -1. */
static double fill(const engine_ops *e, void *db, bool seq)
{
    void *ts = ts_init(e, db);
    if (e->thread_init != NULL && ts == NULL)
        return -1;
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

/* nops puts of uniformly random existing keys, stamped values; ops/s or
 * -1. */
static double overwrite(const engine_ops *e, void *db, uint64_t nops,
                        uint64_t seed)
{
    void *ts = ts_init(e, db);
    if (e->thread_init != NULL && ts == NULL)
        return -1;
    uint8_t key[KEY_LEN], val[VAL_LEN];
    uint64_t s = seed;
    double t0 = bench_now();
    for (uint64_t i = 0; i < nops; i++) {
        uint64_t idx = bench_rng_next(&s) % g_cfg.keys;
        key_make(key, idx);
        val_make(val, idx, stamp_word(i));
        if (e->put(db, ts, key, val) != RES_OK) {
            ts_fini(e, db, ts);
            return -1;
        }
    }
    double secs = bench_now() - t0;
    ts_fini(e, db, ts);
    return (double)nops / secs;
}

/* Synced puts of g_perm[0..) until maxops or maxsecs; *done gets the
 * count. Returns ops/s or -1. */
static double fillsync_loop(const engine_ops *e, void *db, uint64_t maxops,
                            double maxsecs, uint64_t *done)
{
    void *ts = ts_init(e, db);
    if (e->thread_init != NULL && ts == NULL)
        return -1;
    uint8_t key[KEY_LEN], val[VAL_LEN];
    double t0 = bench_now(), t1 = t0;
    uint64_t i = 0;
    for (; i < maxops && (t1 = bench_now()) - t0 < maxsecs; i++) {
        key_make(key, g_perm[i]);
        val_make(val, g_perm[i], 0);
        if (e->put(db, ts, key, val) != RES_OK) {
            ts_fini(e, db, ts);
            return -1;
        }
    }
    t1 = bench_now();
    ts_fini(e, db, ts);
    *done = i;
    return (double)i / (t1 - t0);
}

/* Full scans in key order; ops/s are entries/s. *bad gets wrong or
 * missing entries. Returns -1 on an engine error. */
static double readseq(const engine_ops *e, void *db, uint64_t passes,
                      uint64_t *entries, uint64_t *bad)
{
    void *ts = ts_init(e, db);
    if (e->thread_init != NULL && ts == NULL)
        return -1;
    *entries = *bad = 0;
    double t0 = bench_now();
    for (uint64_t p = 0; p < passes; p++) {
        scan_check c;
        scan_check_init(&c, 0, EXPECT_PRISTINE, e->name);
        if (e->scan(db, ts, NULL, 0, scan_visit, &c) != RES_OK) {
            ts_fini(e, db, ts);
            return -1;
        }
        *bad += c.bad + absdiff(c.seen, g_cfg.keys);
        *entries += c.seen;
    }
    double secs = bench_now() - t0;
    ts_fini(e, db, ts);
    return (double)*entries / secs;
}

/* ------------------------------------------------------------------------
 * Workloads
 * ------------------------------------------------------------------------ */

static void *open_fresh(const engine_ops *e, const char *dir, open_mode m)
{
    bench_rm_rf(dir);
    return e->open(dir, m);
}

static void close_db(const engine_ops *e, void *db, result *blame)
{
    if (e->close(db) != RES_OK && blame != NULL)
        res_fail(blame);
}

/* The first selected row of a phase (it takes the blame for errors of the
 * shared steps: load, flush, close), NULL if none is selected. */
static result *first_usable(int ei, const row_def *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (usable(ei, rows[i].wl, rows[i].threads))
            return res_at(rows[i].wl, rows[i].threads, ei);
    return NULL;
}

static void fail_all(int ei, const row_def *rows, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (usable(ei, rows[i].wl, rows[i].threads))
            res_fail(res_at(rows[i].wl, rows[i].threads, ei));
}

/* Puts a threaded measurement into its row and prints the progress line;
 * false if the engine failed. */
static bool record_threads(int ei, int run, int wl, int threads,
                           const run_out *o)
{
    result *r = res_at(wl, threads, ei);
    if (o->err) {
        res_fail(r);
        return false;
    }
    char extra[256] = "";
    size_t m = 0;
    if (o->retries)
        m += (size_t)snprintf(extra + m, sizeof extra - m,
                              "  (%llu retries)",
                              (unsigned long long)o->retries);
    if (o->mismatches) {
        res_mismatch(r, o->mismatches);
        snprintf(extra + m, sizeof extra - m, "  WRONG READS: %llu",
                 (unsigned long long)o->mismatches);
    }
    r->retries += o->retries;
    double ops = (double)o->done / o->secs;
    res_record(r, ops, o->done);
    if (o->entries)
        r->bytes = o->entries * ENTRY_BYTES;
    progress(run, wl, threads, ei, ops, extra);
    return true;
}

/* fillseq, then overwrite in the same database. */
static void phase_seq(int ei, int run)
{
    static const row_def rows[] = {{W_FILLSEQ, 1}, {W_OVERWRITE, 1}};
    const engine_ops *e = &ENGINES[ei];
    result *blame = first_usable(ei, rows, 2);
    if (blame == NULL)
        return;
    char dir[4200];
    wl_dir(dir, sizeof dir, "seq", ei, run);
    void *db = open_fresh(e, dir, MODE_NOSYNC);
    if (db == NULL) {
        fail_all(ei, rows, 2);
        return;
    }
    uint64_t n = g_cfg.keys;
    if (usable(ei, W_FILLSEQ, 1)) {
        result *r = res_at(W_FILLSEQ, 1, ei);
        double ops = fill(e, db, true);
        if (ops < 0) {
            fail_all(ei, rows, 2);
            goto done;
        }
        res_record(r, ops, n);
        progress(run, W_FILLSEQ, 1, ei, ops, NULL);
        res_check(r, verify_sample(e, db, n < 20000 ? n : 20000,
                                   0xf111 + (uint64_t)run, EXPECT_PRISTINE,
                                   false));
    } else if (e->load(db, 0, n) != RES_OK) {
        fail_all(ei, rows, 2);
        goto done;
    }
    if (usable(ei, W_OVERWRITE, 1)) {
        result *r = res_at(W_OVERWRITE, 1, ei);
        double ops = overwrite(e, db, n, 0x0e7e + (uint64_t)run * 7);
        if (ops < 0) {
            res_fail(r);
        } else {
            res_record(r, ops, n);
            progress(run, W_OVERWRITE, 1, ei, ops, NULL);
            res_check(r, verify_sample(e, db, n < 20000 ? n : 20000,
                                       0x0e11 + (uint64_t)run,
                                       EXPECT_NO_COUNT, false));
        }
    }
done:
    close_db(e, db, blame);
    wl_done(dir);
}

static void fmt_bytes(double b, char *buf, size_t n)
{
    if (b >= 1024.0 * 1024 * 1024)
        snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024)
        snprintf(buf, n, "%.1f MiB", b / (1024.0 * 1024));
    else if (b >= 1024.0)
        snprintf(buf, n, "%.1f KiB", b / 1024.0);
    else
        snprintf(buf, n, "%.0f B", b);
}

/* readhot at one thread count. Cairn: with its row cache and without
 * (the same open database, its row cache turned off and back on between
 * the two), the order alternating from run to run. */
static void readhot(int ei, void *db, int run, int threads)
{
    const engine_ops *e = &ENGINES[ei];
    job j = {.kind = K_READHOT, .threads = threads, .ops = read_ops(),
             .seed = 0x4075 + (uint64_t)run * 7 + (uint64_t)threads,
             .expect = EXPECT_PRISTINE};
    run_out o;
    if (ei != ENG_CAIRN) {
        run_threads(e, db, &j, &o);
        record_threads(ei, run, W_READHOT, threads, &o);
        return;
    }
    cairn_stats st;
    cairn_get_stats(db, &st);
    size_t budget = (size_t)st.row_cache_capacity;
    double off = -1;
    for (int pass = 0; pass < 2; pass++) {
        bool cache_on = (pass == 0) == (run % 2 == 0);
        cairn_set_cache_sizes(db, cache_on ? budget : 0,
                              CAIRN_CACHE_SIZE_KEEP);
        run_threads(e, db, &j, &o);
        if (cache_on) {
            if (!record_threads(ei, run, W_READHOT, threads, &o))
                break;
            continue;
        }
        result *r = res_at(W_READHOT, threads, ei);
        if (o.err) {
            res_fail(r);
            break;
        }
        res_mismatch(r, o.mismatches);
        off = (double)o.done / o.secs;
        res_add(r, S_AUX, off);
        char b[32];
        fprintf(stderr, "[%d/%d] %-15s %2d thr  %-9s %9s ops/s  (row cache "
                        "off)%s\n",
                run + 1, g_cfg.runs, WL_NAMES[W_READHOT], threads,
                engine_name(ei), bench_fmt_rate(off, b, sizeof b),
                o.mismatches ? "  WRONG READS" : "");
    }
    cairn_set_cache_sizes(db, budget, CAIRN_CACHE_SIZE_KEEP);
}

/* fillrandom; in the same open database readrandom (warm), readseq,
 * seekrandom; flush, close, measure size and writes; then readrandom-cold
 * after the page cache drop and a reopen. */
static void phase_random(int ei, int run)
{
    static const row_def rows[] = {
        {W_FILLRANDOM, 1}, {W_READRANDOM, 1}, {W_READRANDOM, 2},
        {W_READHOT, 1},    {W_READHOT, 2},    {W_READSEQ, 1},
        {W_SEEKRANDOM, 1}, {W_READCOLD, 1}};
    const size_t nrows = sizeof rows / sizeof rows[0];
    const engine_ops *e = &ENGINES[ei];
    result *blame = first_usable(ei, rows, nrows);
    if (blame == NULL)
        return;
    char dir[4200];
    wl_dir(dir, sizeof dir, "random", ei, run);
    bench_rm_rf(dir);
    bench_io_counts io0, io1;
    bool have_io = bench_proc_io(&io0);
    void *db = e->open(dir, MODE_NOSYNC);
    if (db == NULL) {
        fail_all(ei, rows, nrows);
        return;
    }
    uint64_t n = g_cfg.keys;
    double ops = fill(e, db, false);
    if (ops < 0) {
        fail_all(ei, rows, nrows);
        close_db(e, db, NULL);
        wl_done(dir);
        return;
    }
    if (usable(ei, W_FILLRANDOM, 1)) {
        res_record(res_at(W_FILLRANDOM, 1, ei), ops, n);
        progress(run, W_FILLRANDOM, 1, ei, ops, NULL);
    }
    res_check(blame, verify_sample(e, db, n < 20000 ? n : 20000,
                                   0xf2 + (uint64_t)run, EXPECT_PRISTINE,
                                   false));
    /* The reads measure reading, not the fill's flushes and compactions
     * competing for the CPUs (a 2-core machine has none to spare). */
    if (e->settle != NULL)
        res_check(blame, e->settle(db));
    static const int thr[] = {1, 2};
    for (size_t k = 0; k < 2; k++) {
        if (!usable(ei, W_READRANDOM, thr[k]))
            continue;
        job j = {.kind = K_READ, .threads = thr[k], .ops = read_ops(),
                 .seed = 0x7ead + (uint64_t)run * 7 + k,
                 .expect = EXPECT_PRISTINE};
        run_out o;
        run_threads(e, db, &j, &o);
        record_threads(ei, run, W_READRANDOM, thr[k], &o);
    }
    for (size_t k = 0; k < 2; k++)
        if (usable(ei, W_READHOT, thr[k]))
            readhot(ei, db, run, thr[k]);
    if (usable(ei, W_READSEQ, 1)) {
        result *r = res_at(W_READSEQ, 1, ei);
        uint64_t entries = 0, bad = 0;
        double sops = readseq(e, db, readseq_passes(), &entries, &bad);
        if (sops < 0) {
            res_fail(r);
        } else {
            res_record(r, sops, entries);
            res_mismatch(r, bad);
            progress(run, W_READSEQ, 1, ei, sops,
                     bad ? "  WRONG ENTRIES" : NULL);
        }
    }
    if (usable(ei, W_SEEKRANDOM, 1)) {
        job j = {.kind = K_SEEK, .threads = 1, .ops = seek_ops(),
                 .seed = 0x5eec + (uint64_t)run * 7,
                 .expect = EXPECT_PRISTINE};
        run_out o;
        run_threads(e, db, &j, &o);
        record_threads(ei, run, W_SEEKRANDOM, 1, &o);
    }
    if (e->flush != NULL && e->flush(db) != RES_OK)
        res_fail(blame);
    close_db(e, db, blame);
    if (have_io)
        have_io = bench_proc_io(&io1);
    uint64_t alloc = 0, size = 0;
    bench_du(dir, &alloc, &size);
    if (usable(ei, W_FILLRANDOM, 1)) {
        result *r = res_at(W_FILLRANDOM, 1, ei);
        double user = (double)n * ENTRY_BYTES;
        char a[32], w[32] = "n/a";
        res_add(r, S_DB_ALLOC, (double)alloc);
        res_add(r, S_DB_SIZE, (double)size);
        fmt_bytes((double)alloc, a, sizeof a);
        if (have_io) {
            double wb = (double)(io1.write_bytes - io0.write_bytes);
            res_add(r, S_WRITTEN, wb);
            res_add(r, S_CANCELLED, (double)(io1.cancelled - io0.cancelled));
            double wc = (double)(io1.wchar - io0.wchar);
            res_add(r, S_WCHAR, wc);
            fmt_bytes(wb, w, sizeof w);
            fprintf(stderr,
                    "      fillrandom %-9s db %s (space amp %.2fx), to "
                    "storage %s (write amp %.2fx; write calls %.2fx)\n",
                    e->name, a, (double)alloc / user, w, wb / user,
                    wc / user);
        } else {
            fprintf(stderr, "      fillrandom %-9s db %s (space amp %.2fx)\n",
                    e->name, a, (double)alloc / user);
        }
    }
    if (usable(ei, W_READCOLD, 1)) {
        result *r = res_at(W_READCOLD, 1, ei);
        int64_t resident = bench_drop_cache(dir);
        double t0 = bench_now();
        db = resident < 0 ? NULL : e->open(dir, MODE_NOSYNC);
        double open_s = bench_now() - t0;
        if (db == NULL) {
            res_fail(r);
        } else {
            job j = {.kind = K_READ, .threads = 1, .ops = cold_ops(),
                     .seed = 0xc01d + (uint64_t)run * 7,
                     .expect = EXPECT_PRISTINE};
            run_out o;
            run_threads(e, db, &j, &o);
            if (record_threads(ei, run, W_READCOLD, 1, &o)) {
                char rb[32];
                fmt_bytes((double)resident, rb, sizeof rb);
                res_add(r, S_AUX, open_s);
                res_add(r, S_RESIDENT, (double)resident);
                fprintf(stderr,
                        "      readrandom-cold %-9s reopen %.2f s, %s still "
                        "cached after the drop\n",
                        e->name, open_s, rb);
            }
            close_db(e, db, r);
        }
    }
    if (e->compact != NULL && usable(ei, W_FILLRANDOM, 1)) {
        /* The size at close depends on how much data the background
         * compactions had moved down by then (upper levels use the faster,
         * weaker codec); after a full compaction on each engine all of it
         * sits in the deepest level: the settled size. */
        result *r = res_at(W_FILLRANDOM, 1, ei);
        double t0 = bench_now();
        db = e->open(dir, MODE_NOSYNC);
        int rc = db == NULL ? RES_ERR : e->compact(db);
        if (db != NULL)
            close_db(e, db, r);
        if (rc != RES_OK) {
            res_fail(r);
        } else {
            uint64_t full = 0, full_size = 0;
            bench_du(dir, &full, &full_size);
            res_add(r, S_DB_FULL, (double)full);
            char a[32];
            fmt_bytes((double)full, a, sizeof a);
            fprintf(stderr,
                    "      fillrandom %-9s db %s after a full compaction "
                    "(space amp %.2fx, %.1f s)\n",
                    e->name, a, (double)full / ((double)n * ENTRY_BYTES),
                    bench_now() - t0);
        }
    }
    wl_done(dir);
}

/* The rows of a bulk-loaded transactional database, in the order they
 * run: blind updates (ycsb-a, ycsb-b) before any read-modify-write, so
 * every counter stays 0 until then. */
static const row_def YCSB_ROWS[] = {{W_YCSB_A, YCSB_THREADS},
                                    {W_YCSB_B, YCSB_THREADS},
                                    {W_YCSB_C, YCSB_THREADS},
                                    {W_YCSB_F, YCSB_THREADS}};
static const row_def RMW_ROWS[] = {{W_RMW, 1}, {W_RMW, 2}};

/* Loads a database (MODE_TXN), runs the rows, then reads every counter
 * back: they must add up to the committed read-modify-writes. */
static void phase_txn(int ei, int run, const char *what, const row_def *rows,
                      size_t nrows)
{
    const engine_ops *e = &ENGINES[ei];
    result *blame = first_usable(ei, rows, nrows);
    if (blame == NULL)
        return;
    char dir[4200];
    wl_dir(dir, sizeof dir, what, ei, run);
    void *db = open_fresh(e, dir, MODE_TXN);
    if (db == NULL || e->load(db, 0, g_cfg.keys) != RES_OK) {
        fail_all(ei, rows, nrows);
        if (db != NULL)
            close_db(e, db, NULL);
        wl_done(dir);
        return;
    }
    uint64_t commits = 0;
    bool known = true; /* false once a measurement failed midway */
    result *last = blame;
    for (size_t i = 0; i < nrows; i++) {
        int wl = rows[i].wl, thr = rows[i].threads;
        if (!usable(ei, wl, thr))
            continue;
        job j = {.threads = thr, .seed = (uint64_t)wl * 0x9e37 +
                                         (uint64_t)run * 7 + (uint64_t)thr};
        if (wl == W_RMW) {
            j.kind = K_RMW;
            j.ops = rmw_ops();
        } else {
            j.kind = K_YCSB;
            j.ops = ycsb_ops();
            j.mix = wl == W_YCSB_A   ? &YCSB_A
                    : wl == W_YCSB_B ? &YCSB_B
                    : wl == W_YCSB_C ? &YCSB_C
                                     : &YCSB_F;
            j.expect = wl == W_YCSB_F ? EXPECT_ANY : EXPECT_NO_COUNT;
        }
        run_out o;
        run_threads(e, db, &j, &o);
        if (!record_threads(ei, run, wl, thr, &o))
            known = false;
        commits += o.rmw_done;
        last = res_at(wl, thr, ei);
    }
    uint64_t sum = 0;
    int64_t bad = sum_counters(e, db, &sum);
    res_check(last, bad);
    if (bad >= 0 && known && sum != commits) {
        fprintf(stderr,
                "%s: counters add up to %llu but %llu read-modify-writes "
                "committed (%s)\n",
                e->name, (unsigned long long)sum,
                (unsigned long long)commits,
                sum < commits ? "LOST UPDATES" : "PHANTOM UPDATES");
        res_mismatch(last, absdiff(sum, commits));
    }
    close_db(e, db, last);
    wl_done(dir);
}

static void phase_fillsync(int ei, int run)
{
    const engine_ops *e = &ENGINES[ei];
    result *r = res_at(W_FILLSYNC, 1, ei);
    if (r->status != ST_OK)
        return;
    char dir[4200];
    wl_dir(dir, sizeof dir, "fillsync", ei, run);
    void *db = open_fresh(e, dir, MODE_DURABLE);
    if (db == NULL) {
        res_fail(r);
        return;
    }
    uint64_t done = 0;
    double ops = fillsync_loop(e, db, fillsync_ops(), fillsync_secs(), &done);
    if (ops < 0) {
        res_fail(r);
    } else {
        char extra[64];
        snprintf(extra, sizeof extra, "  (%llu puts)",
                 (unsigned long long)done);
        res_record(r, ops, done);
        progress(run, W_FILLSYNC, 1, ei, ops, extra);
        res_check(r, verify_perm_prefix(e, db, done));
    }
    close_db(e, db, r);
    wl_done(dir);
}

static void phase_durable(int ei, int threads, int run)
{
    const engine_ops *e = &ENGINES[ei];
    result *r = res_at(W_DURABLE, threads, ei);
    if (r->status != ST_OK)
        return;
    char dir[4200], what[32];
    snprintf(what, sizeof what, "durable-%dt", threads);
    wl_dir(dir, sizeof dir, what, ei, run);
    void *db = open_fresh(e, dir, MODE_DURABLE);
    if (db == NULL) {
        res_fail(r);
        return;
    }
    job j = {.kind = K_DURABLE, .threads = threads,
             .seed = 0xd0 + (uint64_t)run * 131 + (uint64_t)threads};
    run_out o;
    run_threads(e, db, &j, &o);
    if (o.err) {
        res_fail(r);
        close_db(e, db, NULL);
        wl_done(dir);
        return;
    }
    double ops = (double)o.done / o.secs;
    char extra[96] = "";
    if (ei == ENG_CAIRN) {
        cairn_stats st;
        memset(&st, 0, sizeof st);
        cairn_get_stats(db, &st);
        if (st.wal_syncs > 0) {
            double cps = (double)st.commits / (double)st.wal_syncs;
            double sync_us = (double)st.wal_sync_p50_ns / 1e3;
            res_add(r, S_AUX, cps);
            res_add(r, S_SYNC_US, sync_us);
            snprintf(extra, sizeof extra,
                     "  (%.1f commits/fsync, fsync p50 %.0f us)", cps,
                     sync_us);
        }
    }
    res_record(r, ops, o.done);
    progress(run, W_DURABLE, threads, ei, ops, extra);
    res_check(r, verify_sample(e, db, g_cfg.keys < 1000 ? g_cfg.keys : 1000,
                               0xd5 + (uint64_t)run, EXPECT_PRISTINE, true));
    close_db(e, db, r);
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
    res_add(r, S_OPS, ops);
    r->nops = n;
    r->bytes = n * VAL_LEN;
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
        g_rocks_compression = rocksdb_lz4_compression; /* as rocks_e_open */
    }
    return rocks_compression_name(g_rocks_compression);
#else
    return "n/a";
#endif
}

static const char COLD_NOTE[] =
    "readrandom-cold: the database closed, every file in its directory "
    "fsynced and dropped from the OS page cache (posix_fadvise "
    "POSIX_FADV_DONTNEED), reopened (open time not counted, shown), then "
    "random gets on 1 thread with the engine's caches empty; an engine that "
    "rebuilds its data in memory at open (Cairn replays its log) pays in "
    "the reopen time and then reads memory";

/* The median ops/s of a row's engine, -1 if there is none. */
static double median_of(int wl, int threads, int ei)
{
    result *r = res_at(wl, threads, ei);
    return r && r->status == ST_OK ? res_med(r, S_OPS) : -1;
}

static bool row_selected(size_t row)
{
    return g_cfg.wl[ROWS[row].wl];
}

/* Engine columns of the table and the chart: selected and built. */
static bool engine_shown(int ei)
{
    return g_cfg.selected[ei] && ENGINES[ei].built;
}

static void print_json_row(size_t row, int ei)
{
    const result *r = &g_res[row][ei];
    int wl = ROWS[row].wl;
    printf("{\"bench\":\"engine\",\"workload\":\"%s\",\"engine\":\"%s\","
           "\"threads\":%d,\"status\":\"%s\",\"keys\":%llu",
           WL_NAMES[wl], engine_name(ei), ROWS[row].threads,
           status_name(r->status), (unsigned long long)g_cfg.keys);
    if (r->n[S_OPS] > 0) {
        double m = res_med(r, S_OPS);
        printf(",\"ops_per_sec\":%.1f,\"repeats\":%d,\"runs\":[", m,
               r->n[S_OPS]);
        for (int i = 0; i < r->n[S_OPS]; i++)
            printf("%s%.1f", i ? "," : "", r->v[S_OPS][i]);
        printf("],\"ops\":%llu,\"bytes\":%llu", (unsigned long long)r->nops,
               (unsigned long long)r->bytes);
        double c = median_of(wl, ROWS[row].threads, ENG_CAIRN);
        if (ei != ENG_CAIRN && ei != ENG_RAW && c > 0 && m > 0)
            printf(",\"cairn_over_engine\":%.3f", c / m);
        double raw = median_of(W_DURABLE, 1, ENG_RAW);
        if (wl == W_DURABLE && ei != ENG_RAW && raw > 0)
            printf(",\"over_raw_fsync\":%.3f", m / raw);
        if (wl == W_DURABLE && ei == ENG_CAIRN && r->n[S_AUX] > 0)
            printf(",\"commits_per_fsync\":%.2f", res_med(r, S_AUX));
        if (wl == W_DURABLE && ei == ENG_CAIRN && r->n[S_SYNC_US] > 0)
            printf(",\"fsync_p50_us\":%.1f", res_med(r, S_SYNC_US));
        if (wl == W_READHOT && ei == ENG_CAIRN && r->n[S_AUX] > 0)
            printf(",\"row_cache_off_ops_per_sec\":%.1f,"
                   "\"row_cache_on_over_off\":%.3f",
                   res_med(r, S_AUX), m / res_med(r, S_AUX));
        if (wl == W_READCOLD && r->n[S_AUX] > 0)
            printf(",\"open_secs\":%.3f,\"cached_after_drop_bytes\":%.0f",
                   res_med(r, S_AUX), res_med(r, S_RESIDENT));
    }
    if (wl == W_FILLRANDOM && r->n[S_DB_ALLOC] > 0) {
        double user = (double)g_cfg.keys * ENTRY_BYTES;
        double alloc = res_med(r, S_DB_ALLOC);
        printf(",\"user_bytes\":%.0f,\"db_bytes\":%.0f,"
               "\"db_apparent_bytes\":%.0f,\"space_amp\":%.3f",
               user, alloc, res_med(r, S_DB_SIZE), alloc / user);
        if (r->n[S_DB_FULL] > 0)
            printf(",\"db_bytes_full_compaction\":%.0f,"
                   "\"space_amp_full_compaction\":%.3f",
                   res_med(r, S_DB_FULL), res_med(r, S_DB_FULL) / user);
        if (r->n[S_WRITTEN] > 0)
            printf(",\"write_bytes\":%.0f,\"cancelled_write_bytes\":%.0f,"
                   "\"write_amp\":%.3f,\"write_call_bytes\":%.0f,"
                   "\"write_call_amp\":%.3f",
                   res_med(r, S_WRITTEN), res_med(r, S_CANCELLED),
                   res_med(r, S_WRITTEN) / user, res_med(r, S_WCHAR),
                   res_med(r, S_WCHAR) / user);
    }
    if (wl == W_RMW || wl == W_YCSB_F)
        printf(",\"retries\":%llu", (unsigned long long)r->retries);
    printf(",\"mismatches\":%llu,\"errors\":%llu}\n",
           (unsigned long long)r->mismatches, (unsigned long long)r->errors);
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

/* Appends to a string in a fixed buffer, never past its end. */
static void cat_f(char *buf, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cat_f(char *buf, size_t n, const char *fmt, ...)
{
    size_t len = strlen(buf);
    if (len + 1 >= n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + len, n - len, fmt, ap);
    va_end(ap);
}

/* The notes of a table line: what does not fit a column. */
static void row_notes(size_t row, char *notes, size_t n)
{
    int wl = ROWS[row].wl, thr = ROWS[row].threads;
    char b[32];
    notes[0] = '\0';
    if (wl == W_DURABLE) {
        double raw = median_of(W_DURABLE, 1, ENG_RAW);
        double c = median_of(W_DURABLE, thr, ENG_CAIRN);
        const result *rc = &g_res[row][ENG_CAIRN];
        if (raw > 0) {
            cat_f(notes, n, "raw fsync %s/s",
                  bench_fmt_rate(raw, b, sizeof b));
            if (c > 0)
                cat_f(notes, n, "; cairn = %.1fx raw", c / raw);
        }
        if (rc->n[S_AUX] > 0)
            cat_f(notes, n, ", %.1f commits/fsync", res_med(rc, S_AUX));
        /* The log's fsync under this load beside the raw loop's time per
         * write+fsync: how much the load itself slows each sync. */
        if (rc->n[S_SYNC_US] > 0 && raw > 0)
            cat_f(notes, n, ", fsync p50 %.0f us (raw %.0f us)",
                  res_med(rc, S_SYNC_US), 1e6 / raw);
    }
    if (wl == W_RMW || wl == W_YCSB_F) {
        bool first = true;
        for (int ei = 0; ei < NENGINES; ei++)
            if (engine_shown(ei) && g_res[row][ei].retries) {
                cat_f(notes, n, "%s%s %llu", first ? "retries: " : ", ",
                      engine_name(ei),
                      (unsigned long long)g_res[row][ei].retries);
                first = false;
            }
    }
    if (wl == W_READCOLD) {
        bool first = true;
        for (int ei = 0; ei < NENGINES; ei++)
            if (engine_shown(ei) && g_res[row][ei].n[S_AUX] > 0) {
                cat_f(notes, n, "%s%s %.2f", first ? "reopen s: " : ", ",
                      engine_name(ei), res_med(&g_res[row][ei], S_AUX));
                first = false;
            }
        first = true;
        for (int ei = 0; ei < NENGINES; ei++)
            if (engine_shown(ei) && res_med(&g_res[row][ei], S_RESIDENT) > 0) {
                fmt_bytes(res_med(&g_res[row][ei], S_RESIDENT), b, sizeof b);
                cat_f(notes, n, "%s%s %s", first ? "; still cached: " : ", ",
                      engine_name(ei), b);
                first = false;
            }
    }
    if (wl == W_READHOT) {
        const result *rc = &g_res[row][ENG_CAIRN];
        double c = median_of(wl, thr, ENG_CAIRN);
        if (rc->n[S_AUX] > 0 && c > 0)
            cat_f(notes, n, "cairn without row cache %s/s (on/off %.2fx)",
                  bench_fmt_rate(res_med(rc, S_AUX), b, sizeof b),
                  c / res_med(rc, S_AUX));
    }
    if (wl == W_FILLSYNC) {
        bool first = true;
        for (int ei = 0; ei < NENGINES; ei++)
            if (engine_shown(ei) && g_res[row][ei].n[S_OPS] > 0) {
                cat_f(notes, n, "%s%s %llu", first ? "puts: " : ", ",
                      engine_name(ei),
                      (unsigned long long)g_res[row][ei].nops);
                first = false;
            }
    }
    for (int ei = 0; ei < NENGINES; ei++)
        if (g_res[row][ei].mismatches)
            cat_f(notes, n, "%sWRONG DATA %s: %llu", notes[0] ? "; " : "",
                  engine_name(ei),
                  (unsigned long long)g_res[row][ei].mismatches);
}

static void print_engine_lines(void)
{
    printf("  cairn %s: cairn_put/cairn_get auto-commit; scans: "
           "cairn_txn_scan in a read-only txn; "
           "read-modify-write with cairn_txn_*\n",
           cairn_version_string());
#ifdef CAIRN_HAVE_ROCKSDB
#ifdef CAIRN_ROCKSDB_VERSION
    printf("  rocksdb %s", CAIRN_ROCKSDB_VERSION);
#else
    printf("  rocksdb");
#endif
    printf(": put/get (WAL on), an iterator per scan, flush before close; "
           "ycsb/rmw on a pessimistic TransactionDB (get_for_update); "
           "64 MiB write buffer, compression %s, bottommost zstd (Cairn's "
           "codecs: LZ4, zstd for the bottom-most data below level 1), "
           "10-bit bloom filters and a 256 MiB block cache (as Cairn)\n",
           compression_note());
#endif
#ifdef CAIRN_HAVE_LEVELDB
    printf("  leveldb %d.%d: put/get, an iterator per scan, defaults "
           "(4 MiB write buffer, 8 MiB cache, no bloom filter); "
           "read-modify-write as get+put under a mutex (no transactions)\n",
           leveldb_major_version(), leveldb_minor_version());
#endif
#ifdef CAIRN_HAVE_LMDB
    printf("  %s: a write txn per put, a renewed read txn per get or "
           "scan, MDB_NOSYNC|MDB_NOMETASYNC when sync is off, %.0f GiB "
           "map\n",
           mdb_version(NULL, NULL, NULL),
           (double)g_lmdb_mapsize / (1024.0 * 1024 * 1024));
#endif
#ifdef CAIRN_HAVE_SQLITE
    printf("  sqlite %s: WAL mode, kv(k BLOB PRIMARY KEY, v BLOB) WITHOUT "
           "ROWID, prepared statements, a connection per thread, "
           "synchronous=NORMAL (FULL in fillsync/durable), default cache; "
           "upsert per put, BEGIN IMMEDIATE for read-modify-write; "
           "writers wait for the lock with 10 us..1 ms backoff\n",
           sqlite3_libversion());
#endif
}

static char g_plot_note[3 * 4200 + 512]; /* what became of the chart */

static void print_human(double elapsed)
{
    target t[3];
    eval_targets(t);
    printf("cairn-bench engine: %llu keys, %d-byte keys, %d-byte values; "
           "median of %d run%s; run time %.0f s\n",
           (unsigned long long)g_cfg.keys, KEY_LEN, VAL_LEN, g_cfg.runs,
           g_cfg.runs == 1 ? "" : "s", elapsed);
    printf("  one transaction per operation everywhere; sync off except in "
           "fillsync and durable; ops/s (readseq: entries/s; seekrandom: "
           "seeks/s, %d entries each); reads after the fill's flushes "
           "and compactions are done\n",
           SEEK_ENTRIES);
    print_engine_lines();
    for (int ei = 0; ei < NENGINES; ei++)
        if (g_cfg.selected[ei] && !ENGINES[ei].built)
            printf("  %s: not built (install its -dev package, rebuild)\n",
                   ENGINES[ei].name);
    if (g_cfg.wl[W_READCOLD])
        printf("  %s\n", COLD_NOTE);
    if (g_cfg.wl[W_YCSB_A] || g_cfg.wl[W_YCSB_B] || g_cfg.wl[W_YCSB_C] ||
        g_cfg.wl[W_YCSB_F])
        printf("  ycsb: %d threads, %llu ops per workload, keys by YCSB's "
               "scrambled Zipfian (theta 0.99); F = 50%% read, 50%% "
               "read-modify-write\n",
               YCSB_THREADS, (unsigned long long)ycsb_ops());
    if (g_cfg.wl[W_READHOT])
        printf("  readhot: %llu gets, 90%% of them to 1%% of the keys; "
               "cairn's column with its row cache\n"
               "    (the default budget), the notes without it (same "
               "database)\n",
               (unsigned long long)read_ops());
    if (g_cfg.wl[W_FILLSYNC])
        printf("  fillsync: up to %llu puts or %.1f s, sync per put\n",
               (unsigned long long)fillsync_ops(), fillsync_secs());
    if (g_cfg.wl[W_DURABLE])
        printf("  durable: %.1f s per measurement; raw fsync: pwrite(100 B) "
               "+ fdatasync, 1 thread\n",
               g_cfg.duration);
    printf("\n");
    printf("%-15s %3s", "workload", "thr");
    for (int ei = 0; ei < NENGINES; ei++)
        if (engine_shown(ei))
            printf(" %9s", ENGINES[ei].name);
    bool cairn_col = engine_shown(ENG_CAIRN);
    if (cairn_col)
        for (int ei = 1; ei < NENGINES; ei++)
            if (engine_shown(ei)) {
                char h[32];
                snprintf(h, sizeof h, "c/%s", ENGINES[ei].name);
                printf(" %9s", h);
            }
    printf("  notes\n");
    for (size_t row = 0; row < NROWS; row++) {
        if (!row_selected(row))
            continue;
        int wl = ROWS[row].wl, thr = ROWS[row].threads;
        printf("%-15s %3d", WL_NAMES[wl], thr);
        for (int ei = 0; ei < NENGINES; ei++) {
            if (!engine_shown(ei))
                continue;
            const result *r = &g_res[row][ei];
            char b[32];
            if (r->status == ST_ERROR)
                printf(" %9s", "error");
            else if (r->n[S_OPS] > 0)
                printf(" %9s",
                       bench_fmt_rate(res_med(r, S_OPS), b, sizeof b));
            else
                printf(" %9s", "-");
        }
        double c = median_of(wl, thr, ENG_CAIRN);
        if (cairn_col)
            for (int ei = 1; ei < NENGINES; ei++) {
                if (!engine_shown(ei))
                    continue;
                double m = median_of(wl, thr, ei);
                if (c > 0 && m > 0) {
                    char b[32];
                    snprintf(b, sizeof b, "%.2fx", c / m);
                    printf(" %9s", b);
                } else {
                    printf(" %9s", "-");
                }
            }
        char notes[1024];
        row_notes(row, notes, sizeof notes);
        printf("%s%s\n", notes[0] ? "  " : "", notes);
    }

    if (g_cfg.wl[W_FILLRANDOM]) {
        double user = (double)g_cfg.keys * ENTRY_BYTES;
        char ub[32];
        fmt_bytes(user, ub, sizeof ub);
        printf("\nafter fillrandom, flushed and closed (%llu keys x %d B = "
               "%s of keys and values):\n",
               (unsigned long long)g_cfg.keys, ENTRY_BYTES, ub);
        printf("  db size: du of the db directory; space amp: db size / "
               "keys and values\n"
               "  from open to close (fill, flush, reads, close), "
               "/proc/self/io: to storage = write_bytes\n"
               "  (pages dirtied; a page rewritten while dirty counts once), "
               "write calls = wchar;\n"
               "  write amp: bytes / keys and values\n"
               "  full compaction: db size after a reopen, a full manual "
               "compaction and a close\n"
               "  (everything in the deepest level: the settled size)\n");
        printf("  %-9s %12s %10s %12s %10s %12s %10s %16s\n", "engine",
               "db size", "space amp", "to storage", "write amp",
               "write calls", "write amp", "full compaction");
        for (int ei = 0; ei < NENGINES; ei++) {
            const result *r = res_at(W_FILLRANDOM, 1, ei);
            if (!engine_shown(ei) || r->n[S_DB_ALLOC] == 0)
                continue;
            char a[32], w[32] = "n/a", wa[32] = "n/a", c[32] = "n/a",
                        ca[32] = "n/a";
            double alloc = res_med(r, S_DB_ALLOC);
            fmt_bytes(alloc, a, sizeof a);
            if (r->n[S_WRITTEN] > 0) {
                fmt_bytes(res_med(r, S_WRITTEN), w, sizeof w);
                snprintf(wa, sizeof wa, "%.2fx",
                         res_med(r, S_WRITTEN) / user);
                fmt_bytes(res_med(r, S_WCHAR), c, sizeof c);
                snprintf(ca, sizeof ca, "%.2fx", res_med(r, S_WCHAR) / user);
            }
            char fc[40] = "n/a";
            if (r->n[S_DB_FULL] > 0) {
                char b[32];
                fmt_bytes(res_med(r, S_DB_FULL), b, sizeof b);
                snprintf(fc, sizeof fc, "%s (%.2fx)", b,
                         res_med(r, S_DB_FULL) / user);
            }
            printf("  %-9s %12s %9.2fx %12s %10s %12s %10s %16s\n",
                   ENGINES[ei].name, a, alloc / user, w, wa, c, ca, fc);
        }
    }
    printf("\ntargets (informative):\n");
    for (int i = 0; i < 3; i++)
        printf("  %-44s %s  %s\n", t[i].name, t[i].verdict, t[i].detail);
    if (g_plot_note[0])
        printf("\n%s\n", g_plot_note);
    if (g_mismatches || g_errors)
        printf("\nFAILED: %llu wrong or missing values read, %llu engine "
               "errors (see stderr)\n",
               (unsigned long long)g_mismatches,
               (unsigned long long)g_errors);
    fflush(stdout);
}

static void print_json(double elapsed)
{
    target t[3];
    eval_targets(t);
    for (size_t row = 0; row < NROWS; row++) {
        if (!row_selected(row))
            continue;
        for (int ei = 0; ei < NENGINES; ei++)
            if (g_cfg.selected[ei])
                print_json_row(row, ei);
        if (ROWS[row].wl == W_DURABLE && ROWS[row].threads == 1)
            print_json_row(row, ENG_RAW);
    }
    printf("{\"bench\":\"engine\",\"summary\":{\"keys\":%llu,"
           "\"key_bytes\":%d,\"value_bytes\":%d,\"runs\":%d,"
           "\"duration_s\":%.3f,\"elapsed_s\":%.1f,\"dir\":",
           (unsigned long long)g_cfg.keys, KEY_LEN, VAL_LEN, g_cfg.runs,
           g_cfg.duration, elapsed);
    json_str(g_cfg.dir);
    printf(",\"rocksdb_compression\":\"%s\",\"cold\":",
           compression_note());
    json_str(COLD_NOTE);
    printf(",\"plot\":");
    json_str(g_plot_note);
    printf(",\"mismatches\":%llu,\"errors\":%llu,\"targets\":[",
           (unsigned long long)g_mismatches, (unsigned long long)g_errors);
    for (int i = 0; i < 3; i++) {
        printf("%s{\"target\":", i ? "," : "");
        json_str(t[i].name);
        printf(",\"result\":\"%s\",\"detail\":", t[i].verdict);
        json_str(t[i].detail);
        printf("}");
    }
    printf("]}}\n");
    fflush(stdout);
}

/* ------------------------------------------------------------------------
 * The chart: FILE.dat (one line per workload row, one column per engine),
 * FILE.gp (the gnuplot script), then gnuplot FILE.gp makes FILE.
 * ------------------------------------------------------------------------ */

/* FILE with its ".png" (if any) replaced by ext. */
static void plot_sibling(char *buf, size_t n, const char *png, const char *ext)
{
    size_t len = strlen(png);
    if (len >= 4 && strcmp(png + len - 4, ".png") == 0)
        len -= 4;
    snprintf(buf, n, "%.*s%s", (int)len, png, ext);
}

/* A gnuplot single-quoted string: a quote is written twice. */
static void gp_quoted(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

static void make_plot(void)
{
    g_plot_note[0] = '\0';
    if (g_cfg.plot == NULL)
        return;
    const char *png = g_cfg.plot;
    char dat[4200], gp[4200];
    plot_sibling(dat, sizeof dat, png, ".dat");
    plot_sibling(gp, sizeof gp, png, ".gp");
    int ncols = 0;
    for (int ei = 0; ei < NENGINES; ei++)
        ncols += engine_shown(ei);
    double lo = 0, hi = 0;
    size_t nrows = 0;
    FILE *f = fopen(dat, "w");
    if (f == NULL) {
        snprintf(g_plot_note, sizeof g_plot_note, "chart: cannot write %s: %s",
                 dat, strerror(errno));
        return;
    }
    fprintf(f, "# cairn-bench engine: ops/s (median of %d run%s), %llu keys; "
               "'-' = not measured\nworkload",
            g_cfg.runs, g_cfg.runs == 1 ? "" : "s",
            (unsigned long long)g_cfg.keys);
    for (int ei = 0; ei < NENGINES; ei++)
        if (engine_shown(ei))
            fprintf(f, " %s", ENGINES[ei].name);
    fputc('\n', f);
    for (size_t row = 0; row < NROWS; row++) {
        int wl = ROWS[row].wl, thr = ROWS[row].threads;
        bool any = false;
        for (int ei = 0; ei < NENGINES; ei++)
            any |= engine_shown(ei) && median_of(wl, thr, ei) > 0;
        if (!row_selected(row) || !any)
            continue;
        bool multi = false; /* the workload has rows at other counts */
        for (size_t o = 0; o < NROWS; o++)
            multi |= o != row && ROWS[o].wl == wl;
        if (multi)
            fprintf(f, "%s/%dt", WL_NAMES[wl], thr);
        else
            fprintf(f, "%s", WL_NAMES[wl]);
        for (int ei = 0; ei < NENGINES; ei++) {
            if (!engine_shown(ei))
                continue;
            double m = median_of(wl, thr, ei);
            if (m > 0) {
                fprintf(f, " %.1f", m);
                lo = lo == 0 || m < lo ? m : lo;
                hi = m > hi ? m : hi;
            } else {
                fprintf(f, " -");
            }
        }
        fputc('\n', f);
        nrows++;
    }
    bool ok = fclose(f) == 0;
    if (!ok || nrows == 0 || ncols == 0) {
        snprintf(g_plot_note, sizeof g_plot_note, "chart: %s",
                 ok ? "nothing measured, no chart" : "cannot write the data");
        return;
    }
    f = fopen(gp, "w");
    if (f == NULL) {
        snprintf(g_plot_note, sizeof g_plot_note, "chart: cannot write %s: %s",
                 gp, strerror(errno));
        return;
    }
    double ylo = pow(10, floor(log10(lo))), yhi = pow(10, ceil(log10(hi)));
    if (yhi <= hi * 1.5)
        yhi *= 3; /* room for the key above the tallest bar */
    int width = 300 + (int)nrows * (30 + 12 * ncols);
    fprintf(f, "# cairn-bench engine chart; data in the .dat beside it\n"
               "if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
               "  set terminal pngcairo size %d,720 noenhanced font ',10'\n"
               "} else {\n"
               "  set terminal png size %d,720 noenhanced\n"
               "}\n"
               "set output ",
            width, width);
    gp_quoted(f, png);
    fprintf(f, "\nset title 'cairn-bench engine: %llu keys, %d-byte keys, "
               "%d-byte values; median of %d run%s (ops/s; readseq: "
               "entries/s)'\n"
               "set style data histograms\n"
               "set style histogram clustered gap 1\n"
               "set style fill solid 0.85 border -1\n"
               "set boxwidth 0.9\n"
               "set logscale y\n"
               "set yrange [%g:%g]\n"
               "set format y '%%.0s%%c'\n"
               "set ylabel 'operations per second (log scale)'\n"
               "set xtics rotate by -35 scale 0 nomirror\n"
               "set grid ytics\n"
               "set key top right horizontal\n"
               "set datafile missing '-'\n"
               "plot for [i=2:%d] ",
            (unsigned long long)g_cfg.keys, KEY_LEN, VAL_LEN, g_cfg.runs,
            g_cfg.runs == 1 ? "" : "s", ylo, yhi, ncols + 1);
    gp_quoted(f, dat);
    fprintf(f, " using i:xtic(1) title columnheader(i)\n");
    if (fclose(f) != 0) {
        snprintf(g_plot_note, sizeof g_plot_note, "chart: cannot write %s",
                 gp);
        return;
    }
    /* gnuplot's own output goes to stderr: stdout is the results'. */
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    char *argv[] = {"gnuplot", gp, NULL};
    pid_t pid;
    int rc = posix_spawnp(&pid, "gnuplot", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc == ENOENT) {
        snprintf(g_plot_note, sizeof g_plot_note,
                 "chart: gnuplot is not installed (apt-get install "
                 "gnuplot-nox); its data is in %s, its script in %s",
                 dat, gp);
        return;
    }
    int st = 0;
    if (rc != 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
        WEXITSTATUS(st) != 0) {
        snprintf(g_plot_note, sizeof g_plot_note,
                 "chart: gnuplot failed (%s); data in %s, script in %s",
                 rc ? strerror(rc) : "see stderr", dat, gp);
        return;
    }
    snprintf(g_plot_note, sizeof g_plot_note, "chart: %s (data %s)", png,
             dat);
}

/* ------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-bench engine [--dir DIR] [--json] [--keys N] "
            "[--quick] [--runs N]\n"
            "                          [--engines LIST] [--workloads LIST] "
            "[--duration SECS]\n"
            "                          [--plot FILE | --no-plot] [--keep] "
            "[--history-ms N]\n"
            "  --dir DIR        where the databases go "
            "(default ./cairn-bench-data/engine)\n"
            "  --json           JSON Lines on stdout instead of a table\n"
            "  --keys N         number of keys (default 1000000; --quick "
            "50000; e.g. 20000000 for a big run)\n"
            "  --quick          50000 keys, 1 run, 0.5 s durable runs\n"
            "  --runs N         runs per measurement, median reported "
            "(default 3; --quick 1)\n"
            "  --engines LIST   comma-separated subset of "
            "cairn,rocksdb,leveldb,lmdb,sqlite\n"
            "  --workloads LIST comma-separated subset of fillseq,fillrandom,"
            "overwrite,\n"
            "                   readrandom,readhot,readrandom-cold,readseq,"
            "seekrandom,fillsync,\n"
            "                   ycsb-a,ycsb-b,ycsb-c,ycsb-f,rmw,durable "
            "(also: ycsb = the four, all)\n"
            "  --duration S     seconds per durable measurement, fillsync at "
            "most twice that\n"
            "                   (default 2; --quick 0.5)\n"
            "  --plot FILE      the chart (PNG, needs gnuplot; default "
            "DIR/bench-engine.png),\n"
            "                   with FILE.dat and FILE.gp beside it\n"
            "  --no-plot        no chart\n"
            "  --keep           keep the database directories\n"
            "  --history-ms N   Cairn's history window (default: the "
            "engine's, 10 min);\n"
            "                   0 keeps no history, as the other engines "
            "(compare sizes so)\n");
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

/* A comma-separated list of names into flags; false on an unknown name. */
static bool parse_list(const char *s, const char *what,
                       const char *const *names, int n, bool *sel)
{
    memset(sel, 0, (size_t)n * sizeof sel[0]);
    char buf[512];
    if (strlen(s) >= sizeof buf) {
        fprintf(stderr, "engine: --%s: list too long\n", what);
        return false;
    }
    strcpy(buf, s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        bool found = false;
        if (strcmp(tok, "all") == 0) {
            for (int i = 0; i < n; i++)
                sel[i] = true;
            found = true;
        } else if (names == WL_NAMES && strcmp(tok, "ycsb") == 0) {
            sel[W_YCSB_A] = sel[W_YCSB_B] = sel[W_YCSB_C] = sel[W_YCSB_F] =
                true;
            found = true;
        }
        for (int i = 0; i < n; i++)
            if (strcmp(tok, names[i]) == 0) {
                sel[i] = true;
                found = true;
            }
        if (!found) {
            fprintf(stderr, "engine: --%s: unknown name '%s'\n", what, tok);
            return false;
        }
    }
    return true;
}

int cairn_bench_engine_main(int argc, char **argv)
{
    const char *dir = "./cairn-bench-data/engine", *plot = NULL;
    bool quick = false, json = false, keep = false, no_plot = false;
    uint64_t keys = 0, runs = 0;
    double duration = 0;
    bool sel[NENGINES], wl[NWL];
    const char *engine_names[NENGINES];
    for (int i = 0; i < NENGINES; i++) {
        sel[i] = true;
        engine_names[i] = ENGINES[i].name;
    }
    for (int i = 0; i < NWL; i++)
        wl[i] = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--quick") == 0) {
            quick = true;
        } else if (strcmp(a, "--keep") == 0) {
            keep = true;
        } else if (strcmp(a, "--no-plot") == 0) {
            no_plot = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--dir") == 0 && v) {
            dir = v;
            i++;
        } else if (strcmp(a, "--plot") == 0 && v) {
            plot = v;
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
        } else if (strcmp(a, "--history-ms") == 0 && v) {
            uint64_t h;
            if (!parse_u64(v, &h) || h > (1ULL << 40)) {
                fprintf(stderr, "engine: --history-ms: milliseconds\n");
                return 2;
            }
            g_history_ms = (int64_t)h;
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
            if (!parse_list(v, "engines", engine_names, NENGINES, sel))
                return 2;
            i++;
        } else if (strcmp(a, "--workloads") == 0 && v) {
            if (!parse_list(v, "workloads", WL_NAMES, NWL, wl))
                return 2;
            i++;
        } else {
            fprintf(stderr, "engine: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (plot != NULL && no_plot) {
        fprintf(stderr, "engine: --plot and --no-plot together\n");
        return 2;
    }
    char plot_buf[4200];
    if (!no_plot && plot == NULL) {
        snprintf(plot_buf, sizeof plot_buf, "%s/bench-engine.png", dir);
        plot = plot_buf;
    }
    g_cfg.dir = dir;
    g_cfg.plot = no_plot ? NULL : plot;
    g_cfg.json = json;
    g_cfg.keep = keep;
    g_cfg.keys = keys ? keys : quick ? 50000 : 1000000;
    g_cfg.runs = (int)(runs ? runs : quick ? 1 : 3);
    g_cfg.duration = duration > 0 ? duration : quick ? 0.5 : 2.0;
    memcpy(g_cfg.selected, sel, sizeof sel);
    memcpy(g_cfg.wl, wl, sizeof wl);
#ifdef CAIRN_HAVE_LMDB
    {
        uint64_t want = g_cfg.keys * 600, four = (uint64_t)4 << 30;
        uint64_t mib = (uint64_t)1 << 20;
        want = want > four ? want : four;
        g_lmdb_mapsize = (size_t)((want + mib - 1) / mib * mib);
    }
#endif

    if (bench_mkdir_p(dir) != 0) {
        fprintf(stderr, "engine: cannot create %s: %s\n", dir,
                strerror(errno));
        return 1;
    }
    pool_init();
    zipf_init(&g_zipf);
    g_perm = malloc(g_cfg.keys * sizeof *g_perm);
    size_t per = 2 * (size_t)g_cfg.runs;
    double *store =
        calloc(NROWS * (NENGINES + 1) * NSAMPLES * per, sizeof *store);
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
        uint64_t j = bench_rng_next(&s) % (i + 1);
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
            for (int k = 0; k < NSAMPLES; k++, p += per)
                r->v[k] = p;
            bool on = row_selected(row);
            if (ei == ENG_RAW)
                r->status = on && ROWS[row].wl == W_DURABLE &&
                                    ROWS[row].threads == 1
                                ? ST_OK
                                : ST_OFF;
            else if (!on || !sel[ei])
                r->status = ST_OFF;
            else if (!ENGINES[ei].built)
                r->status = ST_NOTBUILT;
            else
                r->status = ST_OK;
        }

    fprintf(stderr, "engine: %llu keys, %d run(s), durable %.1f s, dir %s\n",
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
            phase_seq(order[k], run);
        for (int k = 0; k < NENGINES; k++)
            phase_random(order[k], run);
        for (int k = 0; k < NENGINES; k++)
            phase_txn(order[k], run, "ycsb", YCSB_ROWS,
                      sizeof YCSB_ROWS / sizeof YCSB_ROWS[0]);
        for (int k = 0; k < NENGINES; k++)
            phase_txn(order[k], run, "rmw", RMW_ROWS,
                      sizeof RMW_ROWS / sizeof RMW_ROWS[0]);
        for (int k = 0; k < NENGINES; k++)
            phase_fillsync(order[k], run);
        if (g_cfg.wl[W_DURABLE]) {
            phase_raw(run);
            static const int dthr[] = {1, 16, 64};
            for (size_t d = 0; d < 3; d++)
                for (int k = 0; k < NENGINES; k++)
                    phase_durable(order[k], dthr[d], run);
            phase_raw(run); /* the disk drifts: sample before and after */
        }
    }
    double elapsed = bench_now() - t_start;
    fprintf(stderr, "engine: done in %.1f s\n", elapsed);
    make_plot();
    if (g_plot_note[0])
        fprintf(stderr, "engine: %s\n", g_plot_note);
    if (json)
        print_json(elapsed);
    else
        print_human(elapsed);
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
