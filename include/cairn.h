/*
 * cairn.h — the public API of libcairn.
 *
 * This is the only header an embedding program includes. It grows with each
 * layer: the version macros, the error codes and cairn_strerror(); the
 * database: open/close, auto-commit calls, transactions, time travel,
 * iterators (range scans).
 * Everything under src/ is internal.
 *
 * Errors: every function that can fail returns an int; 0 (CAIRN_OK) is
 * success, a negative CAIRN_E* code is failure. No function aborts the process
 * on bad input or on an I/O failure.
 *
 * Threading:
 *   - cairn_strerror() and cairn_version_string() are thread-safe and return
 *     pointers to static, immutable strings.
 *   - A cairn_db handle is shared by any number of threads: every cairn_*
 *     call taking a db may run concurrently with any other, except
 *     cairn_close(), which must be called once, after every other call on
 *     the handle has returned, every transaction has ended and every
 *     iterator has been freed.
 *   - A cairn_txn belongs to one thread at a time: calls on one transaction
 *     must not overlap (hand it to another thread only with a happens-before
 *     edge, e.g. a mutex or a queue). Different transactions may run in
 *     parallel freely.
 *   - Readers never block writers and writers never block readers. A commit
 *     with sync=always waits for its fsync; commits from many threads share
 *     fsyncs (group commit).
 *
 * Memory: values returned to the caller (cairn_get, cairn_txn_get, ...) are
 * allocated with malloc and belong to the caller: free them with
 * cairn_free() (or free()).
 */
#ifndef CAIRN_H
#define CAIRN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CAIRN_VERSION_MAJOR 0
#define CAIRN_VERSION_MINOR 1
#define CAIRN_VERSION_PATCH 0
#define CAIRN_VERSION_STRING "0.1.0"
/* One number that grows with each release: 0x00MMmmpp. */
#define CAIRN_VERSION_NUMBER                                                   \
    ((CAIRN_VERSION_MAJOR << 16) | (CAIRN_VERSION_MINOR << 8) |                \
     CAIRN_VERSION_PATCH)

/* Error codes. Stable: their numeric values never change once released. */
enum {
    CAIRN_OK = 0,
    CAIRN_EINVAL = -1,    /* invalid argument */
    CAIRN_ENOMEM = -2,    /* out of memory */
    CAIRN_EIO = -3,       /* I/O error reported by the operating system */
    CAIRN_ENOSPC = -4,    /* no space left on device */
    CAIRN_ECORRUPT = -5,  /* stored data failed a checksum or format check */
    CAIRN_ENOTFOUND = -6, /* no such key, file or record */
    CAIRN_ECONFLICT = -7, /* transaction conflict: retry */
    CAIRN_EREADONLY = -8, /* read-only (by choice, or after an fsync failure) */
    CAIRN_ETOOLARGE = -9, /* value or record larger than the configured limit */
    CAIRN_EBUSY = -10,    /* resource locked by another user (e.g. the data dir) */
    CAIRN_EEXIST = -11,   /* already exists */
    CAIRN_ENOTSUP = -12,  /* operation not supported here */
    CAIRN_ECLOSED = -13,  /* handle is shutting down or closed */
    CAIRN_EHISTORY = -14, /* requested version is older than the history window */
    CAIRN_EVERSION = -15, /* file written by an unknown (newer) format version */
    CAIRN_EUNAVAILABLE = -16, /* the archive tier cannot be reached (its
                                 directory is missing, its mount gone, or
                                 it fails I/O): data kept there cannot be
                                 read until it is back */
};

/* A short, static, human-readable description of an error code. Unknown
 * codes get "unknown error". Never returns NULL. */
const char *cairn_strerror(int err);

/* The library's version string, e.g. "0.1.0" (may differ from the header's
 * CAIRN_VERSION_STRING when linked against another build). */
const char *cairn_version_string(void);


/* ------------------------------------------------------------------------
 * The database
 * ------------------------------------------------------------------------ */

typedef struct cairn_db cairn_db;
typedef struct cairn_txn cairn_txn;
struct cairn_env; /* internal: the I/O layer (tests pass a fault env) */

typedef enum {
    CAIRN_SYNC_ALWAYS = 0,   /* commit returns once its log record is fsynced */
    CAIRN_SYNC_INTERVAL = 1, /* fsync every sync_interval_ms; a crash may lose
                                the commits of the last interval */
    CAIRN_SYNC_NONE = 2,     /* the OS decides; a power loss may lose commits */
} cairn_sync_mode;

typedef enum {
    CAIRN_ISOLATION_DEFAULT = 0,      /* the database's default */
    CAIRN_ISOLATION_SNAPSHOT = 1,     /* snapshot isolation, first committer
                                         wins on write-write conflicts */
    CAIRN_ISOLATION_SERIALIZABLE = 2, /* also validates what was read (keys
                                         and scanned ranges): no write skew */
} cairn_isolation;

typedef struct cairn_options {
    cairn_sync_mode sync_mode;   /* CAIRN_SYNC_ALWAYS */
    uint32_t sync_interval_ms;   /* 1000, for CAIRN_SYNC_INTERVAL */
    size_t memtable_size;        /* 64 MiB: in-memory table size at which it is
                                    frozen and compacted (old versions dropped) */
    uint64_t history_ms;         /* 600000 (10 min): how far back reads "as of"
                                    a version or time work; 0 keeps only what
                                    open transactions need */
    cairn_isolation isolation;   /* CAIRN_ISOLATION_SNAPSHOT */
    bool create_if_missing;      /* true */
    bool read_only;              /* false: open for reading only */
    size_t max_key_size;         /* 65536 bytes */
    size_t max_value_size;       /* 64 MiB */
    uint64_t wal_segment_size;   /* 64 MiB */
    struct cairn_env *env;       /* NULL: the operating system's files */
    /* The row cache: recently read values (and "no such key" answers) by
     * user key, in front of the sorted files and the block cache. Every
     * answer it gives is exact (reads probe the memtables first, and the
     * flush that moves a newer version into a file supersedes the key's
     * entry). Point reads use it: cairn_get, cairn_txn_get,
     * cairn_get_many, cairn_get_at_version/_at_time (reads of the past
     * and cairn_get_many never fill it); scans do not. Bytes (each entry
     * costs its key, its value and 144 bytes); 256 MiB from
     * cairn_options_init, 0 turns it off (cairn_set_cache_sizes can turn
     * it on later). */
    size_t row_cache_size;
    /* true (cairn_options_init): a flush offers the row cache the newest
     * state of each key it writes to a file, while the cache has free room
     * (an offer never pushes out an entry), so that lately written keys
     * are read from memory; false: only reads fill it. */
    bool row_cache_flush_offers;
    /* false (cairn_options_init): once the row cache is full, a key
     * enters it on its second read that misses it within a window of
     * about 500,000 such reads (a 256 KiB filter of key hashes), so reads
     * spread once over many keys do not push out what is read again
     * (while it has room, every miss enters); true: on every read that
     * misses it. */
    bool row_cache_admit_all;
    /* false (cairn_options_init): a thread whose reads the row cache
     * answers less than one time in 16 (over its last 512 lookups)
     * consults it for one read in 32 only, until it answers more again (a
     * lookup costs memory misses and a lock, and saves a file read only
     * when it hits); true: every read consults it. */
    bool row_cache_consult_all;
    /* Sorted files on disk (0 = the default): */
    size_t block_cache_size;     /* 256 MiB of decoded blocks in memory (at
                                    most: filled as blocks are read) */
    uint64_t sst_target_file_size; /* 64 MiB per compaction output file */
    uint64_t level_base_size;    /* 256 MiB: level 1's size; each level
                                    below is 10x the one above */
    uint32_t l0_compaction_trigger; /* 4 level-0 files start a compaction */
    /* The engine's background threads (flushes, compactions, archiving)
     * run this many nice steps below the process (0..19; 0, the default:
     * the same priority), or with 20 under SCHED_IDLE (Linux: only on CPU
     * time no other thread wants, and a CPU running nothing else counts
     * as free for requests' threads), so that on a busy machine requests
     * get the CPU first; writes that outrun them meet the usual slowdowns
     * and stalls, which give them the CPU back. */
    int background_nice;
    size_t sst_block_size;       /* 4096: uncompressed data block size */
    /* The archive tier: a directory (a slower volume, a network mount) that
     * sorted files move to, recompressed, and are read from in place
     * (NULL or "": none). It belongs to this database alone: files there
     * that the database does not know are removed. If it cannot be reached
     * the database still opens and works, except that reads of data kept
     * there fail with CAIRN_EUNAVAILABLE (cairn_stats says so). */
    const char *archive_dir;
    /* The archive policy, applied in the background (about once a second):
     * a local file is archived when it is at archive_min_level or deeper
     * and at least archive_min_age_s seconds old; a rule left at 0 is not
     * applied, and with both at 0 nothing is archived automatically. */
    int archive_min_level;
    uint64_t archive_min_age_s;
    int archive_zstd_level;      /* 19: zstd level of archived blocks */
    /* Large values (docs/architecture.md, "blob/"): values of at least
     * blob_threshold bytes are stored once, by content (SHA-256), in blob
     * files under <path>/blob, each compressed on its own; the log and the
     * sorted files hold a small reference. Every read returns the value as
     * it was put. 4096 from cairn_options_init; 0: never. */
    size_t blob_threshold;
    /* Values of at least this many bytes are cut into content-defined
     * chunks (about 64 KiB), each stored once: two large values that differ
     * in a few bytes share most chunks. 0: 256 KiB; SIZE_MAX: never. */
    size_t blob_chunk_threshold;
    /* Garbage collection rewrites a blob file once this fraction of its
     * bytes is no longer referenced (0: 0.5). */
    double blob_gc_dead_fraction;
    uint64_t blob_file_size;     /* 0: 256 MiB per blob file */
} cairn_options;

/* Fill *opts with the defaults above. */
void cairn_options_init(cairn_options *opts);

/* Open the database in directory path (created if missing and allowed),
 * recovering every committed transaction from its log. opts may be NULL
 * for the defaults. Errors: CAIRN_EBUSY (another process has it open),
 * CAIRN_ECORRUPT (damaged log; nothing is changed), CAIRN_ENOTFOUND (no
 * database there and create_if_missing is false), CAIRN_EIO, ... */
int cairn_open(const char *path, const cairn_options *opts, cairn_db **out);
/* Why the last cairn_open on the calling thread failed, in one line: the
 * file and what is wrong with it where the part that failed says so (a
 * damaged log segment and the offset, a manifest record, a sorted file the
 * manifest names but that is missing, a log record replay refused, a log
 * that starts after what the sorted files cover...), else the error's
 * name. "" after an open that succeeded. The string is the thread's own,
 * valid until its next cairn_open. */
const char *cairn_open_error(void);

/* Write every memtable into sorted files now (the log before them is then
 * dropped). Waits for it. CAIRN_EREADONLY on a read-only handle. */
int cairn_flush(cairn_db *db);

/* Waits until the background work the writes so far have caused is done:
 * no memtable flush and no compaction running or waiting to run (the
 * database is settled). For benchmarks and tests that measure or check a
 * settled database. Writes made meanwhile may cause more; CAIRN_EBUSY if
 * timeout_ms passes first (0: only look). */
int cairn_wait_idle(cairn_db *db, uint32_t timeout_ms);

/* Flush the memtables, then merge every sorted file down into the deepest
 * level that holds data (at least level 2, the first written with the
 * bottom-most codec), level by level: a full compaction. Afterwards the
 * data sits in one level, rewritten with its codec, with the versions no
 * snapshot and no history window can read dropped. Reads and
 * writes go on meanwhile; what is flushed during the run may stay above.
 * It rewrites the whole database, so it takes as long as writing it:
 * fn (may be NULL) is called after each merge with the level being
 * emptied, the level it goes into, and the bytes that level held when its
 * turn came and how many of them have moved down (done <= total). Waits
 * for it. Errors: CAIRN_EREADONLY, CAIRN_EIO, CAIRN_ENOSPC (the files
 * stay as they were; nothing is lost), CAIRN_EBUSY (closing meanwhile). */
typedef void (*cairn_compact_progress_fn)(void *arg, int level, int target,
                                          uint64_t done, uint64_t total);
int cairn_compact(cairn_db *db, cairn_compact_progress_fn fn, void *arg);

/* Flush the memtables (best effort: the log keeps what a failed flush did
 * not write), sync and close. Returns the first error met; the handle is
 * freed anyway. */
int cairn_close(cairn_db *db);

/* ---- the archive tier (cairn_options.archive_dir) ----
 * Sorted files are named by number (NNNNNN.sst; cairn_file_info lists
 * them). Archiving copies a file into the archive with every block
 * recompressed (zstd at archive_zstd_level), records the move durably, then
 * deletes the local copy; recalling is the reverse (blocks compressed as
 * the file's level is locally). Reads of archived files go to the archive
 * transparently; their blocks enter the block cache like any other.
 * Errors: CAIRN_ENOTSUP (no archive_dir), CAIRN_ENOTFOUND (no such file;
 * also when a compaction replaced it meanwhile), CAIRN_EUNAVAILABLE,
 * CAIRN_EREADONLY, CAIRN_EIO / CAIRN_ENOSPC (nothing was changed). A file
 * already where it is asked to go: 0. */
int cairn_archive_file(cairn_db *db, uint64_t number);
int cairn_recall_file(cairn_db *db, uint64_t number);

/* Archive now every local file at min_level or deeper and at least
 * min_age_s seconds old (the rules of the background policy; a rule at 0
 * is not applied; both at 0: every local file). fn (may be NULL) is
 * called after each file with its number, level, size before and after
 * (bytes) and outcome. Returns the first error (CAIRN_EINVAL: min_level
 * outside 0..7). */
typedef void (*cairn_archive_progress_fn)(void *arg, uint64_t number,
                                          int level, uint64_t bytes_before,
                                          uint64_t bytes_after, int status);
int cairn_archive_run(cairn_db *db, int min_level, uint64_t min_age_s,
                      cairn_archive_progress_fn fn, void *arg);

/* The sorted files of the database: number, level, tier (0 local, 1
 * archive), size. *out is malloc'ed (cairn_free). */
typedef struct cairn_file_info {
    uint64_t number;
    int level;
    int tier;
    uint64_t bytes;
} cairn_file_info;
int cairn_list_files(cairn_db *db, cairn_file_info **out, size_t *n);

/* Free memory returned by the library. */
void cairn_free(void *p);

/* ---- auto-commit calls: each is one transaction ---- */

/* Keys are 0..max_key_size bytes (the empty key is a key); values
 * 0..max_value_size bytes. version (may be NULL) receives the commit
 * version. */
int cairn_put(cairn_db *db, const void *key, size_t klen, const void *val,
              size_t vlen, uint64_t *version);
int cairn_delete(cairn_db *db, const void *key, size_t klen,
                 uint64_t *version);
/* CAIRN_ENOTFOUND if the key has no value. *val is malloc'ed (non-NULL even
 * for an empty value). */
int cairn_get(cairn_db *db, const void *key, size_t klen, void **val,
              size_t *vlen);

/* A hint that key is about to be read (by cairn_get, a transaction or a
 * read as of a version): starts loading the memory such a read touches
 * first, so that a caller with several reads at hand (a pipeline of
 * requests) can overlap their memory latencies. Changes nothing, does no
 * I/O, never fails; keys that are invalid are ignored. */
void cairn_prefetch(cairn_db *db, const void *key, size_t klen);

/* n point reads at one snapshot (the current visible version when the call
 * begins), taken through their stages together so that their memory
 * latencies overlap: each key's memtable and filter probes are hinted,
 * then each is placed (memtable, or file and data block, whose place in
 * the block cache starts loading), then each is read. For each i, rcs[i]
 * and vals[i] / vlens[i] (vlens may be NULL) are what cairn_get would give
 * at that snapshot: 0 with a malloc'ed value, CAIRN_ENOTFOUND, or an error
 * (an invalid key gets CAIRN_EINVAL or CAIRN_ETOOLARGE, the others are
 * still read); vals[i] is NULL unless rcs[i] is 0. The row cache is
 * consulted as cairn_get does, but not filled by a miss. Returns 0, or
 * CAIRN_EINVAL (db NULL, or an array NULL with n > 0: nothing read). */
int cairn_get_many(cairn_db *db, size_t n, const void *const *keys,
                   const size_t *klens, void **vals, size_t *vlens, int *rcs);

/* One write of a batch; val == NULL deletes the key. */
typedef struct cairn_write {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
} cairn_write;

/* All writes in one atomic commit (later writes of the same key win). */
int cairn_write_batch(cairn_db *db, const cairn_write *writes, size_t n,
                      uint64_t *version);

/* ---- transactions ---- */

typedef struct cairn_txn_options {
    bool read_only;            /* false */
    cairn_isolation isolation; /* CAIRN_ISOLATION_DEFAULT */
    /* Pin the snapshot in the past (read-only transactions only): at most
     * one of the two may be non-zero. CAIRN_EHISTORY if older than the
     * history window, CAIRN_EINVAL if in the future. */
    uint64_t at_version;
    uint64_t at_time_us;       /* microseconds since the Unix epoch */
    /* Read-write transactions: if it read nothing through itself (no
     * cairn_txn_get, cairn_txn_scan or cairn_txn_iter), commit its writes
     * blind, as cairn_put does: no first-committer-wins check (its writes
     * follow any commit of the same keys since its snapshot; nothing it
     * saw could be stale), and instead of failing it waits for a commit of
     * the same keys still in flight (cairn_txn_commit_async: CAIRN_EBUSY
     * then). It skips validation's lookup of every key it writes. Reads
     * made around the transaction (cairn_get and the like) are not seen:
     * a caller that decides what to write from those must leave this off.
     * false: validated as usual. */
    bool blind_if_unread;
} cairn_txn_options;

/* opts may be NULL: read-write, the database's default isolation, now. */
int cairn_txn_begin(cairn_db *db, const cairn_txn_options *opts,
                    cairn_txn **out);

/* Reads see the snapshot plus the transaction's own writes. */
int cairn_txn_get(cairn_txn *txn, const void *key, size_t klen, void **val,
                  size_t *vlen);
int cairn_txn_put(cairn_txn *txn, const void *key, size_t klen,
                  const void *val, size_t vlen);
int cairn_txn_delete(cairn_txn *txn, const void *key, size_t klen);

/* Visit the live keys in [start, end) in key order (end NULL: to the end),
 * at most limit of them (0: no limit), as the transaction sees them. The
 * callback returns 0 to go on, anything else to stop (cairn_txn_scan then
 * returns 0). key/val are valid only during the call. In a serializable
 * transaction the scanned range joins the read set. */
typedef int (*cairn_scan_fn)(void *arg, const void *key, size_t klen,
                             const void *val, size_t vlen);
int cairn_txn_scan(cairn_txn *txn, const void *start, size_t slen,
                   const void *end, size_t elen, size_t limit,
                   cairn_scan_fn fn, void *arg);

/* Commit: CAIRN_ECONFLICT if a concurrent commit won (retry the whole
 * transaction), CAIRN_EREADONLY after an fsync failure, ... On success
 * *version (may be NULL) is the commit version (for a transaction that
 * wrote nothing: its snapshot version). The transaction is freed in every
 * case. */
int cairn_txn_commit(cairn_txn *txn, uint64_t *version);

/* Commit without waiting for the log, for callers that must not block (an
 * event loop). The transaction is validated and its record queued at once:
 *   - 0: queued. fn(arg, status, version) runs exactly once later, on an
 *     engine thread (never inside this call), once the commit is durable
 *     under the sync mode and visible (status 0, version its commit
 *     version) or has failed (status < 0, e.g. CAIRN_EIO, CAIRN_EREADONLY).
 *     Keep fn short: it delays other commits' acknowledgements.
 *   - 1: nothing to commit (read-only, or no writes): *version (may be
 *     NULL) is the snapshot version; fn is not called.
 *   - < 0: not committed, fn is not called: CAIRN_ECONFLICT (retry),
 *     CAIRN_EBUSY where cairn_txn_commit would have waited (writes are
 *     being slowed or stalled for compaction, memtables full, a blind
 *     commit's key in flight: use cairn_txn_commit from a thread that may
 *     block), or any error of cairn_txn_commit.
 * The transaction is consumed in every case. */
typedef void (*cairn_commit_fn)(void *arg, int status, uint64_t version);
int cairn_txn_commit_async(cairn_txn *txn, cairn_commit_fn fn, void *arg,
                           uint64_t *version);

/* Drop the transaction and its writes; frees it. */
void cairn_txn_abort(cairn_txn *txn);

/* The version the transaction reads at (for a transaction pinned to a
 * time: the newest version committed at or before that time). */
uint64_t cairn_txn_snapshot(const cairn_txn *txn);

/* ---- time travel ---- */

/* The newest committed version (0 for an empty database). */
uint64_t cairn_current_version(cairn_db *db);
/* The oldest version reads "as of" still see whole. */
uint64_t cairn_oldest_version(cairn_db *db);

/* Read key as it was at a commit version / at a time. CAIRN_EHISTORY when
 * that is older than the history window, CAIRN_ENOTFOUND when the key had
 * no value then. */
int cairn_get_at_version(cairn_db *db, const void *key, size_t klen,
                         uint64_t version, void **val, size_t *vlen);
int cairn_get_at_time(cairn_db *db, const void *key, size_t klen,
                      uint64_t time_us, void **val, size_t *vlen);

/* One version of a key. value is NULL for a deletion. */
typedef struct cairn_key_version {
    uint64_t version;
    uint64_t time_us;
    bool deleted;
    void *value;
    size_t vlen;
} cairn_key_version;

/* The versions of key still readable, newest first, at most max (0: all).
 * *out is an array of *n entries; free it with cairn_key_versions_free.
 * The last one may be the key's value as of the start of the history
 * window: once compaction has moved it to the bottom level, its commit
 * version and time are no longer kept and read as 0. */
int cairn_key_versions(cairn_db *db, const void *key, size_t klen,
                       size_t max, cairn_key_version **out, size_t *n);
void cairn_key_versions_free(cairn_key_version *v, size_t n);

/* ---- iterators: range scans, forward and backward ---- */

/* An ordered view over the live keys of one snapshot: each key at most once,
 * with its newest value at the snapshot; deleted keys are not shown. Keys
 * come in bytewise order (a key before every longer key it is a prefix of;
 * the empty key first).
 *
 * Lifetime: an iterator holds the table set of its snapshot (memtables and
 * sorted files) until cairn_iter_free, so whatever it shows stays
 * consistent while writes, flushes and compactions go on; a long-lived
 * iterator therefore pins memory and disk space (files compacted away are
 * deleted only once it is freed). Free every iterator before cairn_close().
 *
 * Threading: an iterator belongs to one thread at a time (like a
 * transaction); different iterators, on one database or transaction, may be
 * used in parallel. Creating one with cairn_iter_new may run concurrently
 * with any other call on the database; cairn_txn_iter is a call on the
 * transaction (see above).
 *
 * Positioning: a new iterator is not positioned (not valid): call first,
 * last, seek or seek_for_prev. next / prev on an invalid iterator do
 * nothing. Directions may change freely.
 *
 * Errors: if reading stored data fails (CAIRN_ECORRUPT for damaged data,
 * CAIRN_EIO, CAIRN_ENOMEM), the iterator becomes invalid and
 * cairn_iter_status returns the error, until the next first / last / seek /
 * seek_for_prev, which starts over. An invalid iterator with status 0 is a
 * true end: after a loop, check cairn_iter_status. A seek with key NULL and
 * klen > 0 leaves the iterator invalid with CAIRN_EINVAL. */
typedef struct cairn_iter cairn_iter;

typedef struct cairn_iter_options {
    /* Bounds: keys in [lower, upper). NULL = unbounded (a non-NULL bound
     * of length 0 is the empty key: as lower it bounds nothing, as upper
     * it excludes everything). Copied. CAIRN_EINVAL if lower > upper. */
    const void *lower;
    size_t lower_len;
    const void *upper;
    size_t upper_len;
    /* Only the keys starting with prefix (NULL: no prefix). Not together
     * with lower / upper (CAIRN_EINVAL). Copied. */
    const void *prefix;
    size_t prefix_len;
    /* cairn_iter_new only (a transaction has its own snapshot: pin it with
     * cairn_txn_options.at_version / at_time_us instead): read the database
     * as it was at a commit version / at a time (microseconds since the
     * Unix epoch; the newest version committed at or before it). At most
     * one of the two non-zero; 0 = now. CAIRN_EHISTORY if older than
     * cairn_oldest_version(), CAIRN_EINVAL if in the future. */
    uint64_t as_of_version;
    uint64_t as_of_time_us;
} cairn_iter_options;

/* An iterator over the database at the newest visible version (or as of
 * opts->as_of_*). opts may be NULL: no bounds, now. Errors: CAIRN_EINVAL,
 * CAIRN_EHISTORY, CAIRN_ENOMEM. */
int cairn_iter_new(cairn_db *db, const cairn_iter_options *opts,
                   cairn_iter **out);

/* An iterator over what txn sees: its snapshot plus its own writes as they
 * are NOW (its puts shadow stored values, with version 0; its deletes hide
 * keys). Writes the transaction makes after this call are not seen by this
 * iterator (create a new one to see them). The iterator copies what it
 * needs and does not refer to txn afterwards: it stays usable after the
 * transaction is committed or aborted (still showing the same state).
 * In a serializable transaction the iterator's whole range — [lower,
 * upper), the keys starting with prefix, or every key when unbounded —
 * joins the read set at creation, whether or not it is then walked: a
 * concurrent commit that writes into it makes cairn_txn_commit fail with
 * CAIRN_ECONFLICT. opts->as_of_* must be 0 (CAIRN_EINVAL). */
int cairn_txn_iter(cairn_txn *txn, const cairn_iter_options *opts,
                   cairn_iter **out);

void cairn_iter_first(cairn_iter *it);  /* the smallest key shown */
void cairn_iter_last(cairn_iter *it);   /* the largest key shown */
/* The first key >= key / the last key <= key (within the bounds). key may
 * point into the iterator's own current key. */
void cairn_iter_seek(cairn_iter *it, const void *key, size_t klen);
void cairn_iter_seek_for_prev(cairn_iter *it, const void *key, size_t klen);
void cairn_iter_next(cairn_iter *it);
void cairn_iter_prev(cairn_iter *it);
bool cairn_iter_valid(const cairn_iter *it);
/* The current key / value (NULL with length 0 when not valid; the value is
 * never NULL while valid, even when empty). A value stored out of line
 * (blob_threshold) is read when the iterator lands on its key: if it cannot
 * be read the iterator stops there (not valid) and cairn_iter_status says
 * why (CAIRN_ECORRUPT for a missing or damaged blob). The pointers stay
 * valid until the iterator's next move or cairn_iter_free. */
const void *cairn_iter_key(const cairn_iter *it, size_t *klen);
const void *cairn_iter_value(const cairn_iter *it, size_t *vlen);
/* The commit version of the current value: 0 for a transaction's own
 * uncommitted write (and when not valid). */
uint64_t cairn_iter_version(const cairn_iter *it);
/* 0, or the error that stopped the iterator (see above). */
int cairn_iter_status(const cairn_iter *it);
void cairn_iter_free(cairn_iter *it); /* NULL is a no-op */

/* Statistics. */
typedef struct cairn_stats {
    uint64_t commits;          /* transactions committed since open */
    uint64_t conflicts;        /* commits refused with CAIRN_ECONFLICT */
    uint64_t current_version;
    uint64_t oldest_version;
    uint64_t memtable_bytes;   /* memory held by in-memory tables */
    uint64_t memtable_entries; /* versions held in memory */
    uint64_t gc_runs;          /* memtable compactions done */
    uint64_t gc_dropped;       /* versions reclaimed */
    uint64_t wal_syncs;        /* fsyncs of the log */
    uint64_t wal_sync_p50_ns;  /* latency of the log's fsyncs that made */
    uint64_t wal_sync_p99_ns;  /* commits durable, within ~19%; 0: none */
    uint64_t recovered_commits; /* transactions replayed at open */
    /* Sorted files: */
    uint64_t level_files[8];   /* files per level */
    uint64_t level_bytes[8];   /* bytes per level */
    uint64_t flushes;          /* memtables written to level 0 */
    uint64_t flush_bytes;
    uint64_t compactions;      /* merges (trivial moves not included) */
    uint64_t compact_read_bytes, compact_write_bytes;
    uint64_t sst_logical_bytes; /* keys + values (every version) in sorted
                                   files; / sst_file_bytes: compression */
    uint64_t sst_file_bytes;    /* the sorted files' sizes */
    uint64_t block_cache_hits, block_cache_misses;
    uint64_t block_cache_bytes; /* in use */
    uint64_t block_cache_capacity;
    uint64_t block_cache_evictions;
    /* The row cache (cairn_options.row_cache_size): */
    uint64_t row_cache_hits;    /* reads answered from it */
    uint64_t row_cache_misses;  /* reads that went to the tables */
    uint64_t row_cache_inserts;
    uint64_t row_cache_evictions; /* dropped for room (LRU) */
    uint64_t row_cache_invalidations; /* older entries erased by the flush
                                         of a newer state of their key */
    uint64_t row_cache_bytes;   /* in use (keys + values + overhead) */
    uint64_t row_cache_capacity;
    uint64_t row_cache_entries;
    uint64_t row_cache_not_admitted; /* misses not filled: the key's first
                                        in the admission window */
    uint64_t row_cache_bypassed; /* reads that did not consult it: their
                                    thread found it rarely answering
                                    (row_cache_consult_all; each thread
                                    adds its count 512 at a time) */
    /* Latency of the caches' hits (one lookup in 64 per thread is timed;
     * 0 before the first): */
    uint64_t row_cache_hit_p50_ns, row_cache_hit_p99_ns;
    uint64_t block_cache_hit_p50_ns, block_cache_hit_p99_ns;
    int write_pressure;        /* 0 none, 1 slowed down, 2 stopped */
    const char *write_pressure_reason; /* static text, "" when none */
    int background_error;      /* last flush/compaction error, 0 if none */
    int fatal_error;           /* CAIRN_EREADONLY once a failed log write
                                  or sync (or a durable commit that could
                                  not be applied) made the database
                                  read-only for good; 0 while writable */
    uint64_t write_slowdowns;  /* commits delayed 1 ms (level 0 filling up) */
    uint64_t write_stalls;     /* waits for a flush or compaction to make room */
    uint64_t flush_failures;   /* flushes that failed since open; each is
                                  retried a second later, and
                                  background_error shows its error only
                                  until a flush succeeds: this count stays */
    /* The tiers: [0] local disk, [1] the archive (cairn_options.archive_dir). */
    uint64_t tier_files[2];
    uint64_t tier_bytes[2];          /* stored */
    uint64_t tier_logical_bytes[2];  /* keys + values; / tier_bytes: the
                                        compression ratio */
    uint64_t tier_block_hits[2];     /* data block reads the block cache
                                        answered, for files of the tier */
    uint64_t tier_block_misses[2];   /* read from the files */
    uint64_t tier_read_p50_ns[2];    /* latency of those file reads (read,
                                        check, decompress), within ~19% */
    uint64_t tier_read_p99_ns[2];
    uint64_t tier_hit_p50_ns[2];     /* block cache hits for the tier's */
    uint64_t tier_hit_p99_ns[2];     /* files (sampled, as above) */
    uint64_t archive_moves;          /* files archived since open */
    uint64_t archive_recalls;        /* files recalled since open */
    uint64_t archive_bytes_in, archive_bytes_out; /* their sizes before and
                                                     after */
    bool archive_configured;
    bool archive_available;          /* false: its last I/O failed */
    int archive_error;               /* the last failed move's error */
    /* Large values stored out of line (blob files): */
    uint64_t blob_logical_bytes; /* value bytes of the references held (each
                                    reference counted: a value kept by 3
                                    versions counts 3 times) */
    uint64_t blob_stored_bytes;  /* record bytes in the blob files (after
                                    compression; dead ones included) */
    uint64_t blob_file_bytes;    /* the blob files' sizes */
    uint64_t blob_distinct;      /* distinct blobs (chunks) stored */
    uint64_t blob_dedup_hits;    /* writes that found their blob stored */
    uint64_t blob_files;
    uint64_t blob_dead_bytes;    /* stored bytes no reference needs */
    uint64_t blob_gc_runs;
    uint64_t blob_gc_bytes_reclaimed;
    uint64_t blob_missing;       /* referenced blobs not in any file (0) */
    uint64_t blob_reads;         /* values read from blob files */
    uint64_t blob_read_p50_ns;   /* their latency (read, verify, */
    uint64_t blob_read_p99_ns;   /* decompress) */
} cairn_stats;
void cairn_get_stats(cairn_db *db, cairn_stats *out);

/* Run the blob store's garbage collection now: every blob file whose
 * unreferenced fraction is at least dead_fraction (a negative value: the
 * database's blob_gc_dead_fraction) is rewritten without its dead blobs
 * and deleted. Reads and writes go on meanwhile. 0 (also when there is no
 * blob store), CAIRN_EREADONLY, CAIRN_EUNAVAILABLE (a sorted file in the
 * archive could not be opened since the database opened: the blobs it
 * refers to are not counted, so none is collected until it has been; the
 * background collection waits likewise), or an I/O error. */
int cairn_blob_gc(cairn_db *db, double dead_fraction);

/* Recount the references to blobs from what the database holds (every
 * sorted file and memtable of the current state) and compare with the
 * counts the engine keeps. Meant for a quiet database (a reader holding an
 * old state keeps counts above the recount). */
typedef struct cairn_blob_check_report {
    uint64_t referenced;   /* distinct blobs referenced */
    uint64_t references;   /* references (one per chunk per version) */
    uint64_t mismatched;   /* blobs whose kept count differs (error) */
    uint64_t missing;      /* referenced but not stored or unreadable
                              (error) */
    uint64_t unreferenced; /* stored, referenced by nothing (garbage, not an
                              error: GC reclaims it) */
    uint64_t unreferenced_bytes;
    char first_error[256]; /* "" when none */
} cairn_blob_check_report;
/* deep: also read and verify every referenced blob. 0 when the counts
 * agree and nothing is missing, CAIRN_ECORRUPT otherwise (report says
 * what), or an error that kept the check from running. */
int cairn_blob_check(cairn_db *db, bool deep, cairn_blob_check_report *out);

/* The message of the last blob read that failed with CAIRN_ECORRUPT
 * ("" if none): which blob, which file, what was wrong. */
void cairn_blob_last_error(cairn_db *db, char *buf, size_t cap);

/* Change the memory budgets of the two caches while the database runs:
 * row_cache_bytes for the row cache (0 turns it off and frees its
 * entries), block_cache_bytes for the block cache (0 keeps no block once
 * its readers are done with it). CAIRN_CACHE_SIZE_KEEP leaves a budget as
 * it is. Shrinking evicts least recently used entries at once. Safe to
 * call from any thread at any time. CAIRN_EINVAL for a NULL db. */
#define CAIRN_CACHE_SIZE_KEEP SIZE_MAX
int cairn_set_cache_sizes(cairn_db *db, size_t row_cache_bytes,
                          size_t block_cache_bytes);

/* ---- time series ---- */

/* A series is a key holding points (int64 millisecond timestamp, double),
 * stored in compressed chunks through the engine (docs/format/ts.md): in
 * the same key space as the server's keys, logged, versioned and flushed
 * like any value. Every point a call accepts is durable when the call
 * returns, under the database's sync mode. Calls on one series are
 * serialized; different series proceed in parallel. */

typedef struct cairn_ts_point {
    int64_t ts; /* milliseconds since the Unix epoch (may be negative) */
    double v;
} cairn_ts_point;

typedef enum {
    CAIRN_TS_DUP_BLOCK = 0, /* a second point at a timestamp is refused */
    CAIRN_TS_DUP_FIRST = 1, /* the first value stays */
    CAIRN_TS_DUP_LAST = 2,  /* the new value replaces it */
    CAIRN_TS_DUP_MIN = 3,
    CAIRN_TS_DUP_MAX = 4,
    CAIRN_TS_DUP_SUM = 5,
} cairn_ts_dup_policy;

/* A byte string (not NUL-terminated) and a label: name=value. */
typedef struct cairn_ts_str {
    const char *p;
    size_t len;
} cairn_ts_str;

typedef struct cairn_ts_label {
    cairn_ts_str name, value;
} cairn_ts_label;

typedef struct cairn_ts_options {
    uint64_t retention_ms;  /* 0: keep every point. Otherwise points older
                               than the newest timestamp - retention are
                               refused on write and dropped (whole chunks
                               as they age, and trimmed from reads) */
    uint32_t chunk_size;    /* 4096: bytes at which a chunk is sealed
                               (64 .. 1 MiB) */
    cairn_ts_dup_policy duplicate_policy; /* CAIRN_TS_DUP_BLOCK */
    bool uncompressed;      /* false: compressed chunks */
    /* Labels (name=value, distinct names; docs/format/ts.md says which
     * bytes they may hold): FILTER expressions select series by them.
     * Copied. */
    const cairn_ts_label *labels;
    size_t nlabels;
    /* IGNORE (RedisTimeSeries 1.12): with the LAST policy, a point added
     * in order (ts >= the newest) within ignore_max_time_ms of the newest
     * and within ignore_max_val of its value is ignored (result
     * CAIRN_TS_IGNORED). Both 0: off. */
    uint64_t ignore_max_time_ms;
    double ignore_max_val;
} cairn_ts_options;

void cairn_ts_options_init(cairn_ts_options *o);

/* Create series key (CAIRN_EEXIST if the key exists, whatever it holds). */
int cairn_ts_create(cairn_db *db, const void *key, size_t klen,
                    const cairn_ts_options *opts);

/* Add one point. CAIRN_ENOTFOUND: no such series; CAIRN_ENOTSUP: the key
 * holds something else; CAIRN_EEXIST: a point at ts exists and the policy
 * is BLOCK; CAIRN_EHISTORY: older than the retention allows. */
int cairn_ts_add(cairn_db *db, const void *key, size_t klen, int64_t ts,
                 double v);

/* Add points to one or more series in one atomic commit (the points
 * refused one by one, e.g. blocked duplicates, aside). results (may be
 * NULL) receives each sample's outcome (0 or an error as for
 * cairn_ts_add); the return value is 0, or the error that failed the
 * commit (CAIRN_EIO, ...: then no point of the call was written). */
typedef struct cairn_ts_sample {
    const void *key;
    size_t klen;
    int64_t ts;
    double v;
} cairn_ts_sample;
int cairn_ts_add_many(cairn_db *db, const cairn_ts_sample *samples, size_t n,
                      int *results);

/* The points of a series with from <= ts <= to, in time order (a malloc'ed
 * array: free with cairn_free; *pts is NULL when *n is 0). */
int cairn_ts_range(cairn_db *db, const void *key, size_t klen, int64_t from,
                   int64_t to, cairn_ts_point **pts, size_t *n);

/* Range queries with filters and aggregation, as TS.RANGE / TS.REVRANGE
 * answer them. */
typedef enum cairn_ts_aggregator {
    CAIRN_TS_AGG_NONE = 0, /* raw points */
    CAIRN_TS_AGG_AVG,
    CAIRN_TS_AGG_SUM,
    CAIRN_TS_AGG_MIN,
    CAIRN_TS_AGG_MAX,
    CAIRN_TS_AGG_RANGE,
    CAIRN_TS_AGG_COUNT,
    CAIRN_TS_AGG_FIRST,
    CAIRN_TS_AGG_LAST,
    CAIRN_TS_AGG_STD_P,
    CAIRN_TS_AGG_STD_S,
    CAIRN_TS_AGG_VAR_P,
    CAIRN_TS_AGG_VAR_S,
    CAIRN_TS_AGG_TWA,
    CAIRN_TS_AGG__COUNT
} cairn_ts_aggregator;

/* Which timestamp a bucket is reported at (BUCKETTIMESTAMP). */
typedef enum cairn_ts_bucket_ts {
    CAIRN_TS_BT_START = 0, /* "-" / "start" (default) */
    CAIRN_TS_BT_END,       /* "+" / "end": start + duration */
    CAIRN_TS_BT_MID,       /* "~" / "mid": start + duration / 2 */
} cairn_ts_bucket_ts;

/* ALIGN: a timestamp, or the query's from ("-"/"start") or to ("+"/"end").
 * Refusing "start" with a "-" from is the parser's business. */
typedef enum cairn_ts_align_kind {
    CAIRN_TS_ALIGN_VALUE = 0, /* align (0 when ALIGN is absent) */
    CAIRN_TS_ALIGN_START,
    CAIRN_TS_ALIGN_END,
} cairn_ts_align_kind;

typedef struct cairn_ts_query {
    int64_t from, to;  /* inclusive; from > to gives an empty result */
    bool reverse;      /* TS.REVRANGE */
    /* FILTER_BY_TS: active when n_filter_ts > 0; any order, duplicates
     * allowed (not copied beyond the call). */
    const int64_t *filter_ts;
    size_t n_filter_ts;
    /* FILTER_BY_VALUE: min <= v <= max (NaN never passes). */
    bool has_filter_value;
    double filter_min, filter_max;
    /* COUNT: at most count points or buckets; 0 with has_count: EINVAL. */
    bool has_count;
    uint64_t count;
    /* AGGREGATION (agg != CAIRN_TS_AGG_NONE): bucket > 0. */
    cairn_ts_aggregator agg;
    int64_t bucket;
    cairn_ts_align_kind align_kind;
    int64_t align;
    cairn_ts_bucket_ts bucket_ts;
    bool empty; /* EMPTY: report the empty buckets between non-empty ones */
    /* A guard: more result points than this is CAIRN_ETOOLARGE (0: none).
     * EMPTY over a long gap with a short bucket can ask for a lot. */
    size_t max_points;
    /* LATEST: on a series fed by a compaction rule, also report the bucket
     * still open at the source (computed from the source's points). */
    bool latest;
} cairn_ts_query;

/* Run q over series key: the points or buckets (a malloc'ed array: free
 * with cairn_free). Errors: CAIRN_EINVAL (bad query), CAIRN_ETOOLARGE
 * (more than q->max_points), CAIRN_ENOTFOUND, CAIRN_ENOTSUP. */
int cairn_ts_query_range(cairn_db *db, const void *key, size_t klen,
                         const cairn_ts_query *q, cairn_ts_point **pts,
                         size_t *n);

/* An aggregator by its RedisTimeSeries name ("avg", "std.p", "twa", ...;
 * any case): its value, or CAIRN_EINVAL. */
int cairn_ts_aggregator_from_name(const char *name, size_t len);

/* The series whose labels match every FILTER expression (RedisTimeSeries'
 * grammar: l=v, l!=v, l=, l!=, l=(a,b), l!=(a,b); at least one of l=v or
 * l=(...)). *keys is a malloc'ed array of *n keys in key order, each a
 * malloc'ed copy: free with cairn_ts_keys_free. CAIRN_EINVAL with a message
 * in err (may be NULL) for a bad filter. */
int cairn_ts_query_index(cairn_db *db, const char *const *exprs,
                         const size_t *lens, size_t nexprs, cairn_ts_str **keys,
                         size_t *n, char *err, size_t errlen);
void cairn_ts_keys_free(cairn_ts_str *keys, size_t n);

/* A series' labels (*labels: malloc'ed, one block with their bytes; free
 * with cairn_free). The _ex form reads inside txn (NULL: none), which may
 * hold the series already (a write to it earlier in the transaction). */
int cairn_ts_get_labels(cairn_db *db, const void *key, size_t klen,
                        cairn_ts_label **labels, size_t *n);
int cairn_ts_get_labels_ex(cairn_db *db, cairn_txn *txn, const void *key,
                           size_t klen, cairn_ts_label **labels, size_t *n);

/* Delete a series and all its points (and the rules from and to it). */
int cairn_ts_delete(cairn_db *db, const void *key, size_t klen);

/* ---- time series: the full interface (what cairn-server's TS.* use) ----
 *
 * Every call below takes a transaction txn (may be NULL: the call runs and
 * commits one of its own). With a txn, the call's writes commit or abort
 * with it, and reads see the txn's own earlier series writes. The series
 * a txn writes stay locked until it ends: other calls on them wait. A txn
 * that holds series and needs one more that another caller holds gets
 * CAIRN_ECONFLICT (abort it and retry: nothing waits in a cycle), as it
 * does when a series changed after the txn's snapshot was taken.
 *
 * Calls that can fail for a reason a user must read take err/errlen (may
 * be NULL): a message without the "TSDB: " prefix. */

/* A result of cairn_ts_add_many_ex: the point was ignored (IGNORE). */
#define CAIRN_TS_IGNORED 1

typedef struct cairn_ts_write_opts {
    cairn_txn *txn;                 /* NULL: commit on its own */
    const cairn_ts_options *create; /* non-NULL: create a missing series
                                       with these options (else a missing
                                       series is CAIRN_ENOTFOUND) */
    bool has_on_duplicate;          /* ON_DUPLICATE for this write */
    cairn_ts_dup_policy on_duplicate;
} cairn_ts_write_opts;

/* cairn_ts_add_many with options (o may be NULL: as cairn_ts_add_many).
 * results[i]: 0, CAIRN_TS_IGNORED, or an error as for cairn_ts_add. Each
 * accepted point also feeds the rules of its series (and theirs), in the
 * same commit. */
int cairn_ts_add_many_ex(cairn_db *db, const cairn_ts_write_opts *o,
                         const cairn_ts_sample *samples, size_t n,
                         int *results);

/* TS.INCRBY (by > 0) / TS.DECRBY (by < 0): a point at ts (has_ts) or at
 * the wall clock, valued the newest point's value + by (by alone in an
 * empty series). ts older than the newest: CAIRN_EINVAL with err "timestamp
 * must be equal to or higher than the maximum existing timestamp". *out:
 * the point written. */
int cairn_ts_incrby(cairn_db *db, const cairn_ts_write_opts *o,
                    const void *key, size_t klen, double by, bool has_ts,
                    int64_t ts, cairn_ts_point *out, char *err,
                    size_t errlen);

int cairn_ts_create_ex(cairn_db *db, cairn_txn *txn, const void *key,
                       size_t klen, const cairn_ts_options *opts);
int cairn_ts_delete_ex(cairn_db *db, cairn_txn *txn, const void *key,
                       size_t klen);

/* TS.ALTER: change what is set; the rest stays. */
typedef struct cairn_ts_alter_opts {
    bool set_retention;
    uint64_t retention_ms;
    bool set_chunk_size;
    uint32_t chunk_size; /* for chunks sealed from now on */
    bool set_duplicate_policy;
    cairn_ts_dup_policy duplicate_policy;
    bool set_labels; /* replaces every label (nlabels 0: none left) */
    const cairn_ts_label *labels;
    size_t nlabels;
    bool set_ignore;
    uint64_t ignore_max_time_ms;
    double ignore_max_val;
} cairn_ts_alter_opts;
int cairn_ts_alter(cairn_db *db, cairn_txn *txn, const void *key, size_t klen,
                   const cairn_ts_alter_opts *a, char *err, size_t errlen);

/* TS.DEL: delete the points with from <= ts <= to; *deleted: how many.
 * The buckets of rules fed by the series are recomputed. */
int cairn_ts_del_range(cairn_db *db, cairn_txn *txn, const void *key,
                       size_t klen, int64_t from, int64_t to,
                       uint64_t *deleted);

/* cairn_ts_query_range inside txn (q->latest honoured). */
int cairn_ts_query_range_ex(cairn_db *db, cairn_txn *txn, const void *key,
                            size_t klen, const cairn_ts_query *q,
                            cairn_ts_point **pts, size_t *n);

/* TS.GET: the newest point (*found false: the series is empty). latest:
 * as cairn_ts_query.latest. */
int cairn_ts_get_last(cairn_db *db, cairn_txn *txn, const void *key,
                      size_t klen, bool latest, bool *found,
                      cairn_ts_point *p);

/* Compaction rules: src feeds dst with agg over buckets of bucket_ms
 * (> 0) aligned to align_ms. A closed bucket (one older than the bucket of
 * src's newest point) is written to dst in the commit of the point that
 * closed it; a point added to a closed bucket, or deleted from it,
 * rewrites that bucket in dst. dst may feed rules of its own; a series has
 * at most one source. Errors (err says which): CAIRN_ENOTFOUND (either key
 * missing), CAIRN_ENOTSUP (not a series), CAIRN_EINVAL (same key; dst has
 * a source already; the rule would close a cycle; bad agg or bucket),
 * CAIRN_EEXIST (the rule exists). */
int cairn_ts_create_rule(cairn_db *db, cairn_txn *txn, const void *src,
                         size_t slen, const void *dst, size_t dlen,
                         cairn_ts_aggregator agg, int64_t bucket_ms,
                         int64_t align_ms, char *err, size_t errlen);
/* CAIRN_ENOTFOUND: no such series, or no such rule (err says). */
int cairn_ts_delete_rule(cairn_db *db, cairn_txn *txn, const void *src,
                         size_t slen, const void *dst, size_t dlen, char *err,
                         size_t errlen);

/* Rename a series (RENAME): its points, labels and rules follow it.
 * CAIRN_EEXIST: to exists. */
int cairn_ts_rename(cairn_db *db, cairn_txn *txn, const void *from,
                    size_t flen, const void *to, size_t tlen);

/* Delete every series (FLUSHALL): their chunks, logs and registry. The
 * caller deletes the series records (0x01 keys) in the same txn. */
int cairn_ts_drop_all(cairn_db *db, cairn_txn *txn);

/* Whether the database holds (or may hold) a series: false only when it
 * never held one since it was opened and holds none (cheap after the
 * first call). A writer that overwrites keys without reading them first
 * must delete a series there through cairn_ts_delete_ex. */
bool cairn_ts_any(cairn_db *db);

/* TS.INFO. */
typedef struct cairn_ts_rule {
    cairn_ts_str key; /* the destination */
    cairn_ts_aggregator agg;
    int64_t bucket_ms, align_ms;
} cairn_ts_rule;

typedef struct cairn_ts_info {
    uint64_t total_samples;
    uint64_t memory_bytes; /* bytes stored: chunks, log records, record */
    int64_t first_ts, last_ts; /* both 0 when empty */
    uint64_t chunk_count;      /* sealed chunks, + 1 for the open part */
    cairn_ts_options opts;     /* opts.labels / nlabels: its labels */
    bool has_source;
    cairn_ts_str source;
    cairn_ts_rule *rules;
    size_t nrules;
} cairn_ts_info;
int cairn_ts_info_get(cairn_db *db, cairn_txn *txn, const void *key,
                      size_t klen, cairn_ts_info **out);
void cairn_ts_info_free(cairn_ts_info *info);

#ifdef __cplusplus
}
#endif

#endif /* CAIRN_H */
