/*
 * db_internal.h — the cairn_db handle and what db.c (open, close, recovery,
 * garbage collection, time travel) and txn.c (transactions, the commit
 * pipeline) share.
 *
 * Invariants:
 *   - Versions are assigned under commit_mu, contiguously (last_assigned+1),
 *     in the same order as their WAL records' LSNs; commit timestamps
 *     strictly increase with the version.
 *   - visible: every version <= visible is settled (applied to a memtable or
 *     failed). Readers read at a snapshot S <= visible; nothing with a
 *     version > visible is ever returned.
 *   - A key is in the in-flight map while its commit has a version but is
 *     not yet applied; at most one in-flight commit writes a given key (the
 *     second one's validation sees the first and refuses or waits). Hence,
 *     per key, newer memtables hold newer versions than older memtables.
 *   - Memtables are never changed except by inserts into the active one;
 *     a flush swaps a frozen memtable for the view holding its file, in one
 *     new table set. A reader holding a table set reads a consistent state
 *     at any S with oldest <= S <= visible, both read under tables_mu
 *     together with the set (a commit is applied before it is published,
 *     into a memtable that stays in the set until its file replaces it).
 *   - Validation takes the table set inside commit_mu, after the commits it
 *     must see have left the in-flight map (so after they were applied).
 *   - oldest_version <= min(registered snapshots of read-write
 *     transactions) and <= visible; it never decreases.
 *   - The row cache (rcache) holds, per key, at most one state (value or
 *     absent) at a version V, and only while no version of the key newer
 *     than V is in a sorted file: it stands in front of the files only,
 *     and every read probes its table set's memtables (at its snapshot)
 *     before it, so a newer version still in a memtable is found there
 *     first (a reader's set holds every version <= its snapshot). Commits
 *     leave the cache alone; the flush that moves a memtable into a file
 *     supersedes each of its keys' entries (cairn_row_cache_supersede:
 *     bumps the key's epoch, drops an older entry, offers the new state
 *     while there is room) before the table set without that memtable is
 *     installed. A read may fill the cache only with the newest version
 *     the tables hold, found in a table set taken after the key's epoch
 *     was read and at most the visible version read with that set; the
 *     insert is refused if the epoch moved (a flush of a newer version
 *     came between). So, for a reader at snapshot S that found no version
 *     <= S in its memtables, an entry with version V <= S is the newest
 *     version <= S. Versions of one key are applied in version order, so
 *     a memtable never holds an older version of a key than an older
 *     memtable does (a flush never supersedes with an older state: the
 *     newer entry is kept). An entry is filed at its commit
 *     version, except where the tables no longer know it (no version at
 *     all, or a version zeroed by a bottom-level compaction): then at the
 *     oldest readable version of the fill's table set, with time
 *     UINT64_MAX, so that readers below that horizon (pinned read-only
 *     transactions holding older views) and readers by time never use it.
 *
 * Locking (acquire in this order; none is held while waiting for the WAL):
 *   commit_mu  validation, version/timestamp assignment, WAL append order,
 *              last_ts
 *   inflight_mu the in-flight map (also taken, alone, by the WAL callback
 *              that applies a durable commit)
 *   vt_mu      the version -> timestamp index
 *   snap_mu    the registry of read-write snapshots, oldest_version updates
 *   tables_mu  the current table set pointer and its writer counts
 *   pub_mu     publishing (visible) and the settled-but-not-visible waiters
 *   gc_mu      the garbage collector's wake-ups
 * The row cache's shard mutexes are leaves: taken with none of the above
 * held, and nothing is taken under them.
 */
#ifndef CAIRN_DB_INTERNAL_H
#define CAIRN_DB_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "blob/blob_store.h"
#include "cache/row_cache.h"
#include "sst/sst.h" /* cairn_hist, CAIRN_SST_HIT_SAMPLE */
#include "cairn.h"
#include "env/env.h"
#include "lsm/tree.h"
#include "mvcc/memtable.h"
#include "util/keycmp.h"
#include "wal/wal.h"

#define CAIRN_DB_FORMAT_VERSION 1
#define CAIRN_WAL_TYPE_COMMIT 1

/* The memtables readers look at: the active one (receives inserts) and the
 * frozen ones, newest first. Refcounted; replaced, never changed (except
 * active_writers). */
typedef struct db_tables {
    atomic_int refs;
    cairn_memtable *active;
    size_t nimm;
    cairn_memtable *imm[4];
    uint64_t imm_lsn[4];    /* last WAL LSN applied to imm[i] (0: none) */
    cairn_tree_view *view;  /* the sorted files under the memtables */
} db_tables;

/* A thread's cached table set (see struct cairn_db, slots). */
#define DB_SLOTS 64
typedef struct db_slot {
    _Alignas(64) _Atomic(db_tables *) t;
} db_slot;
#define DB_SLOT_LENT ((db_tables *)(uintptr_t)1)

/* The in-flight map: key -> version of the commit about to apply it. */
typedef struct inflight_slot {
    const uint8_t *key; /* NULL: empty; points into the committing txn */
    size_t klen;
    uint64_t hash;
    uint64_t version;
    bool tomb; /* deleted slot (keeps probe chains intact) */
} inflight_slot;

typedef struct snap_node {
    struct snap_node *prev, *next;
    uint64_t version;
} snap_node;

struct cairn_ts_store;

struct cairn_db {
    cairn_options opts;
    pthread_mutex_t ts_mu;     /* guards the making of ts */
    struct cairn_ts_store *ts; /* time series (ts/series.c), on first use */
    char *path;
    char *wal_dir;
    cairn_env *env;
    cairn_filelock *lock; /* LOCK in the database directory */
    cairn_wal *wal;
    bool read_only;

    pthread_mutex_t commit_mu;
    uint64_t last_assigned;
    uint64_t last_ts;
    inflight_slot *inflight;
    size_t inflight_cap, inflight_n, inflight_used;
    atomic_int fatal; /* sticky: the log failed, or a durable commit could
                         not be applied; the database is read-only */
    pthread_mutex_t inflight_mu; /* the in-flight map (inside commit_mu) */

    pthread_mutex_t vt_mu;
    uint64_t *vt_ts;   /* vt_ts[i]: timestamp of version vt_base + i */
    uint64_t vt_base;  /* first version in the index (>= 1) */
    size_t vt_n, vt_cap, vt_off;

    pthread_mutex_t snap_mu;
    snap_node snaps; /* circular list head */
    atomic_uint_fast64_t oldest;

    pthread_mutex_t tables_mu;
    db_tables *tables; /* written under tables_mu with release order (atomic
                          builtins): cairn_db_tables_borrow reads it
                          without the lock */
    /* Per-thread cached table sets (cairn_db_tables_borrow): slot i holds
     * NULL, a set it owns one reference to, or DB_SLOT_LENT while its
     * thread reads with that set. */
    uint64_t id; /* unique per open handle in the process; never reused */
    uint64_t pool_reserved; /* memtable block pool bytes held (db_free) */
    db_slot *slots; /* DB_SLOTS of them */
    atomic_uint slots_used;
    uint64_t active_gen;   /* bumped when the active memtable is frozen */
    atomic_int writers[2]; /* commits inserting into the active memtable of
                              generation g, at writers[g & 1] */
    atomic_uint_fast64_t active_bytes; /* bytes applied to the active memtable
                                          since it was created (approx.) */
    atomic_uint_fast64_t gen_lsn[2]; /* last LSN applied to the active
                                        memtable of generation g, at [g & 1] */
    cairn_tree *tree;               /* the sorted files */
    uint64_t flushed_version;       /* at open: versions <= it are in sorted
                                       files (replay skips them) */
    uint64_t unknown_hi;            /* versions <= it (from sorted files at
                                       open) are not in the time index */
    uint64_t unknown_ts;            /* the newest commit time in those files
                                       (their properties' max): once it is
                                       out of the history window, so is
                                       every version <= unknown_hi */
    atomic_uint_fast64_t oldest_ts; /* commit time of `oldest` (0: none
                                       collected) */

    pthread_mutex_t pub_mu;
    pthread_cond_t pub_cv; /* visible moved (for blind_waiters) */
    atomic_uint_fast64_t visible;
    struct db_pub_waiter *pub_waiters; /* settled versions > visible,
                                          sorted */
    int blind_waiters; /* blind writes waiting for an in-flight key */

    pthread_mutex_t gc_mu;
    pthread_cond_t gc_cv;
    pthread_cond_t gc_idle_cv; /* broadcast when gc_busy goes false */
    bool gc_request, gc_stop, gc_started;
    bool gc_busy; /* the collector is flushing (a request it took) */
    pthread_t gc_thread;

    pthread_mutex_t flush_mu; /* one freeze + flush at a time (collector,
                                 cairn_flush, close) */
    atomic_uint_fast64_t st_slowdowns, st_stalls;
    atomic_uint_fast64_t st_flush_failures; /* collector flushes that failed */
    atomic_uint_fast64_t slow_debt; /* bytes committed while slowed down */
    atomic_int flush_error; /* the collector's last result (0: fine) */
    atomic_uint_fast64_t st_commits, st_conflicts, st_gc_runs, st_gc_dropped,
        st_recovered;
    atomic_uint_fast64_t st_apply_batches; /* cairn_txn_apply_batch runs */
    uint64_t open_id; /* unique per open in the process (a thread's row
                         cache gate knows its database by it, not by an
                         address a later open may reuse) */
    atomic_uint_fast64_t st_rc_bypassed; /* reads past the row cache (txn.c
                                            rc_consult), added per window */

    /* Values stored out of line (db/blob.c): NULL when blob_threshold is
     * 0 and the directory holds no blob file. */
    cairn_blob_store *blobs;
    pthread_mutex_t blob_err_mu;
    char blob_err[256]; /* the last blob read error's message */
    atomic_uint_fast64_t blob_gc_due_checks;

    cairn_hist rc_hit_ns;   /* row cache hits, one lookup in
                               CAIRN_SST_HIT_SAMPLE timed per thread */
    cairn_row_cache *rcache; /* made once replay is over (so it starts
                                empty); NULL until then */
    /* Test hooks (NULL in normal use; set before the calls they watch):
     * rc_fill_hook runs in a read that fills the row cache, after the
     * tables were read and before the insert; rc_commit_hook runs in a
     * commit after its apply, before it is published. */
    void (*rc_fill_hook)(void *arg);
    void (*rc_commit_hook)(void *arg);
    void *rc_hook_arg;
};

/* db.c */
uint64_t cairn_db_now_us(void);
/* cairn_db_tables_acquire for a short read on this thread: mostly without
 * any lock or shared write, using the set this thread's slot caches while
 * it is still the current one (*lent true: give it back with
 * cairn_db_tables_return, and borrow nothing else meanwhile on this
 * thread; the caller must not keep it). Threads past the DB_SLOTS-th that
 * read a handle, and a nested borrow, take the locked path (*lent false).
 * Either way the result is released with cairn_db_tables_return. */
db_tables *cairn_db_tables_borrow(cairn_db *db, uint64_t *visible,
                                  uint64_t *oldest, bool *lent);
void cairn_db_tables_return(cairn_db *db, db_tables *t, bool lent);
/* Drop every reference the slots cache (after a new table set was
 * installed, and at close). */
void cairn_db_slots_scrape(cairn_db *db);
/* Take the current table set and, in the same critical section, the
 * visible and oldest versions (either may be NULL): every version in
 * [oldest, visible] reads whole from that set. */
db_tables *cairn_db_tables_acquire(cairn_db *db, uint64_t *visible,
                                   uint64_t *oldest);
/* Take the table set to insert into its active memtable; *gen is for
 * cairn_db_writer_end (the collector waits for such writers). */
db_tables *cairn_db_writer_begin(cairn_db *db, uint64_t *gen);
void cairn_db_writer_end(cairn_db *db, db_tables *t, uint64_t gen);
void cairn_db_tables_release(db_tables *t);
/* Newest entry of key with version <= S and ts_us <= max_ts across the
 * memtables (newest first), then the sorted files. 1 found (*out filled;
 * out->value stays valid until cairn_sst_pin_release(pin), which the caller
 * must call either way), 0 not found, or a negative error (a damaged
 * file). */
int cairn_db_read(db_tables *t, const void *key, size_t klen, uint64_t S,
                  uint64_t max_ts, cairn_mt_entry *out, cairn_sst_pin *pin);
/* The two halves of cairn_db_read: the memtables only (1 found, 0 not;
 * nothing to release), and the sorted files only (as cairn_db_read). */
int cairn_db_read_mem(db_tables *t, const void *key, size_t klen, uint64_t S,
                      uint64_t max_ts, cairn_mt_entry *out);
int cairn_db_read_files(db_tables *t, const void *key, size_t klen,
                        uint64_t S, uint64_t max_ts, cairn_mt_entry *out,
                        cairn_sst_pin *pin);
/* cairn_db_read_files from where cairn_tree_view_locate placed key (loc
 * NULL: the whole read). */
int cairn_db_read_files_at(db_tables *t, const cairn_tree_loc *loc,
                           const void *key, size_t klen, uint64_t S,
                           uint64_t max_ts, cairn_mt_entry *out,
                           cairn_sst_pin *pin);
/* Whether the set has any sorted file (the row cache only stands in front
 * of them). */
bool cairn_db_has_files(db_tables *t);
/* Every version stored in t, merged (memtables newest first, then the
 * sorted files in search order): NULL when out of memory. The caller owns
 * it; t must outlive it. */
struct cairn_iiter *cairn_db_merge_all(db_tables *t);
/* *latest = the newest version of key if it is newer than S; otherwise
 * some value <= S (0 if the key has no version at all). Returns 0, or the
 * error that kept the sorted files from being read (validation reports it
 * as it is, rather than guess a conflict). */
int cairn_db_latest_above(db_tables *t, const void *key, size_t klen,
                          uint64_t S, uint64_t *latest);
void cairn_db_gc_kick(cairn_db *db);
/* Write backpressure, before a commit: waits while frozen memtables pile
 * up, slows down (to ~16 MB/s) past the level-0 slowdown mark, waits past the
 * stop mark. Returns 0, or the background error that keeps compaction
 * from making room. */
int cairn_db_throttle(cairn_db *db, size_t bytes);
/* The same check for a caller that must not sleep (an asynchronous
 * commit): CAIRN_EBUSY where cairn_db_throttle would wait. */
int cairn_db_throttle_try(cairn_db *db);
int cairn_db_vt_append(cairn_db *db, uint64_t version, uint64_t ts);
/* Register a read-write snapshot: takes the table set and the visible
 * version (n->version) together, and keeps the collector below it. */
db_tables *cairn_db_snap_register(cairn_db *db, snap_node *n);
void cairn_db_snap_unregister(cairn_db *db, snap_node *n);
/* A commit waiting to become visible (on the committer's stack; or, for
 * an asynchronous commit, on the heap with `fire` set: settle then calls
 * fire(w) once w->v is visible, without pub_mu, instead of signalling). */
typedef struct db_pub_waiter {
    uint64_t v;
    atomic_bool done; /* visible (set under pub_mu; read without it by
                         cairn_db_wait_published) */
    pthread_cond_t cv;
    struct db_pub_waiter *next;
    void (*fire)(struct db_pub_waiter *w);
    struct db_pub_waiter *fnext; /* settle's list of waiters to fire */
} db_pub_waiter;
static inline void db_pub_waiter_init(db_pub_waiter *w, uint64_t v)
{
    w->v = v;
    w->done = false;
    w->next = NULL;
    w->fire = NULL;
    w->fnext = NULL;
    pthread_cond_init(&w->cv, NULL);
}
static inline void db_pub_waiter_destroy(db_pub_waiter *w)
{
    pthread_cond_destroy(&w->cv);
}
/* Version w->v is settled (applied or failed): make it visible as soon as
 * every earlier version is, and wake its committer then. Never blocks. */
void cairn_db_settle(cairn_db *db, db_pub_waiter *w);
/* Block until w->v is visible. */
void cairn_db_wait_published(cairn_db *db, db_pub_waiter *w);
/* Undo cairn_db_vt_append of the newest version v (its log append
 * failed). */
void cairn_db_vt_unappend(cairn_db *db, uint64_t v);
/* Resolve a time to the newest version committed at or before it (or, for
 * versions whose times are not indexed, an upper bound) and the time bound
 * reads must apply with it (*max_ts):
 * CAIRN_EHISTORY if older than what is kept, CAIRN_EINVAL if in the
 * future. */
int cairn_db_version_at_time(cairn_db *db, uint64_t t, uint64_t visible,
                             uint64_t oldest, uint64_t *ver,
                             uint64_t *max_ts);
/* Copy a value out for the caller (non-NULL even when empty); a blob
 * reference (CAIRN_MT_BLOB) is resolved into its value. */
int cairn_db_copy_value(cairn_db *db, const cairn_mt_entry *e, void **val,
                        size_t *vlen);

/* db/blob.c: the engine's side of the blob store. */
/* Open the store (before the tree: its hooks count references). */
int cairn_db_blob_open(cairn_db *db);
/* After the tree is open: file numbers past the blob files'. */
void cairn_db_blob_after_tree(cairn_db *db);
void cairn_db_blob_close(cairn_db *db);
/* Hooks for the tree (reference counts of sorted files). */
int cairn_db_blob_file_open(void *arg, const cairn_sst_reader *r,
                            void **state, char *errmsg);
void cairn_db_blob_file_close(void *arg, void *state);
/* A new memtable counts the references it holds until it is freed. */
cairn_memtable *cairn_db_memtable_new(cairn_db *db);
/* A reference record was inserted into a memtable: count it. */
void cairn_db_blob_inserted(cairn_db *db, const uint8_t *ref, size_t len);

/* The log's batch hook (txn.c): applies a batch of settled commits to the
 * memtable together; arg is the db. */
void cairn_txn_apply_batch(void *arg, const cairn_wal_settled *s, size_t n);
/* Resolve a reference record into the value (malloc'ed). */
int cairn_db_blob_resolve(cairn_db *db, const uint8_t *ref, size_t len,
                          void **val, size_t *vlen);
/* Should this value go out of line? */
bool cairn_db_blob_wanted(const cairn_db *db, size_t vlen);
/* Background GC step (collector thread): rewrite files past the dead
 * fraction. */
void cairn_db_blob_background(cairn_db *db);

/* The row cache, for a read of key (hash h = cairn_row_cache_hash) at
 * snapshot S with time bound max_ts: true when the cache answers it, with
 * *res 0 (*val, *vlen filled as cairn_db_copy_value does), CAIRN_ENOTFOUND
 * or CAIRN_ENOMEM; false for a miss (or no cache). admit non-NULL: the
 * caller would fill the cache on a miss, and *admit says whether to (the
 * cache's admission filter, cairn_row_cache_lookup). */
bool cairn_db_rc_lookup(cairn_db *db, uint64_t h, const void *key, size_t klen,
                        uint64_t S, uint64_t max_ts, void **val, size_t *vlen,
                        int *res, bool *admit);
/* A read that may fill the row cache: t, S (= the visible version) and
 * oldest were taken together (cairn_db_tables_acquire) after epoch was
 * read (cairn_row_cache_epoch). Reads the newest version of key in t; if
 * it is at most S, answers with it (true, *res as above, or a read error)
 * and offers it to the cache. false (nothing inserted) when t holds a
 * version newer than S: the caller reads at S as usual. */
bool cairn_db_rc_fill(cairn_db *db, db_tables *t, uint64_t h, const void *key,
                      size_t klen, uint64_t S, uint64_t oldest, uint64_t epoch,
                      void **val, size_t *vlen, int *res);

/* txn.c */
int cairn_db_apply_replay(cairn_db *db, const cairn_wal_record *rec);

/* One of a transaction's own writes, copied for an iterator. val is NULL
 * for a deletion, non-NULL (even empty) for a put. */
typedef struct cairn_own_write {
    const uint8_t *key;
    size_t klen;
    const uint8_t *val;
    size_t vlen;
    bool del;
} cairn_own_write;

/* What an iterator over a transaction needs (db/iterator.c). */
typedef struct cairn_txn_iter_src {
    cairn_db *db;
    db_tables *tables;    /* the snapshot's table set, referenced: release
                             with cairn_db_tables_release */
    uint64_t snapshot;
    uint64_t max_ts;      /* reads see commits at or before it */
    cairn_own_write *own; /* the writes with keys in [lo, hi), sorted by key,
                             copied: one allocation (free), NULL if none */
    size_t nown;
} cairn_txn_iter_src;

/* Fill *out for an iterator over [lo, hi) of t (lo NULL: from the start; hi
 * NULL: to the end) and, in a serializable transaction, add that range to
 * the read set. 0 or CAIRN_ENOMEM (nothing to release then). A call on the
 * transaction (its thread). */
/* Transaction hooks (the time-series layer keeps series locked and
 * changed in memory until the txn that wrote them ends). fn runs once, at
 * the end of cairn_txn_commit (rc its outcome, version the commit's) or in
 * cairn_txn_abort (rc 1), before the txn is freed, on the calling thread.
 * One hook per txn. cairn_txn_commit_async refuses a hooked txn: it
 * aborts it and returns CAIRN_EBUSY (commit it synchronously). */
typedef void (*cairn_txn_hook_fn)(void *arg, int rc, uint64_t version);
void cairn_txn_set_hook(cairn_txn *t, cairn_txn_hook_fn fn, void *arg);
/* The arg set with fn, or NULL (no hook, or another fn). */
void *cairn_txn_hook_arg(const cairn_txn *t, cairn_txn_hook_fn fn);
/* Make the commit fail with rc (a write the txn needed could not be
 * made: committing the rest would apply part of a command). */
void cairn_txn_poison(cairn_txn *t, int rc);
/* Move the snapshot to now: only while the txn has read and written
 * nothing (else CAIRN_EBUSY). */
int cairn_txn_renew(cairn_txn *t);

int cairn_txn_iter_prepare(cairn_txn *t, const void *lo, size_t lolen,
                           const void *hi, size_t hilen,
                           cairn_txn_iter_src *out);

#endif /* CAIRN_DB_INTERNAL_H */
