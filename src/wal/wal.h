/*
 * wal.h — the segmented write-ahead log with group commit.
 *
 * What it is: an append-only log of opaque records (type byte + payload),
 * each given a log sequence number (LSN) that strictly increases. The byte
 * layout is in docs/format/wal.md. The WAL knows records, not transactions.
 *
 * Acknowledgement: a record is "acknowledged" when it is as safe as the sync
 * mode promises:
 *   - CAIRN_WAL_SYNC_ALWAYS   (default) written and fdatasync'ed;
 *   - CAIRN_WAL_SYNC_INTERVAL written to the OS; a background thread
 *     fdatasyncs every sync_interval_ms;
 *   - CAIRN_WAL_SYNC_NONE     written to the OS; synced only at segment
 *     rotation, cairn_wal_sync() and close.
 * cairn_wal_wait() and the callbacks of cairn_wal_on_durable() report
 * acknowledgement in that sense; cairn_wal_durable_lsn() is always the LSN up
 * to which records are really on stable storage.
 *
 * Group commit: appends from any number of threads are copied into a shared
 * pending buffer under a mutex. One thread at a time is the "leader": it
 * takes everything pending, writes it with one write (per segment) and one
 * fdatasync, then wakes everyone whose record it covered. A thread waiting
 * for its record becomes the leader if nobody is; a background thread leads
 * for records nobody waits on (async appends with callbacks) and runs the
 * interval syncs.
 *
 * Failures: a failed write fails the records of that write (their waiters and
 * callbacks get the error) and the log goes on in a new segment; LSNs of
 * failed records are never reused, so LSNs may skip. A failed fdatasync (or a
 * failure while sealing a segment) makes the log read-only for good: every
 * later append fails with CAIRN_EREADONLY. It never retries an fsync.
 *
 * Threading: every function may be called from any thread concurrently,
 * except cairn_wal_close(), which must not race with other calls on the same
 * handle. Durability callbacks run on a thread inside the WAL (the leader,
 * the background thread or a cairn_wal_on_durable caller), one at a time,
 * without WAL locks held; they must be short and must not
 * call cairn_wal_wait() or cairn_wal_close().
 */
#ifndef CAIRN_WAL_H
#define CAIRN_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env/env.h"

#define CAIRN_WAL_FORMAT_VERSION 1u
#define CAIRN_WAL_SEGMENT_HEADER_SIZE 48u
#define CAIRN_WAL_RECORD_HEADER_SIZE 24u
#define CAIRN_WAL_DEFAULT_SEGMENT_SIZE (64ull << 20)
#define CAIRN_WAL_DEFAULT_MAX_RECORD (256ull << 20)
#define CAIRN_WAL_HARD_MAX_RECORD 0xFFFFFFFFull

typedef struct cairn_wal cairn_wal;

typedef enum {
    CAIRN_WAL_SYNC_ALWAYS = 0,
    CAIRN_WAL_SYNC_INTERVAL = 1,
    CAIRN_WAL_SYNC_NONE = 2,
} cairn_wal_sync_mode;

/* A record as seen by replay and by the dump tool. data is valid only for
 * the duration of the callback. */
typedef struct cairn_wal_record {
    uint64_t lsn;
    uint8_t type;
    const void *data;
    size_t len;
    const char *segment; /* path of the segment file holding it */
    uint64_t offset;     /* byte offset of its header in that file */
} cairn_wal_record;

/* Return 0 to go on; a negative CAIRN_E* code stops the open with it. */
typedef int (*cairn_wal_replay_fn)(void *arg, const cairn_wal_record *rec);

/* status is 0 when lsn is acknowledged, else the error that failed it. */
typedef void (*cairn_wal_ack_fn)(void *arg, uint64_t lsn, int status);

typedef void (*cairn_wal_progress_fn)(void *arg, uint64_t done_bytes,
                                      uint64_t total_bytes);

typedef struct cairn_wal_options {
    cairn_env *env;               /* NULL: the POSIX env */
    uint64_t segment_size;        /* rotate past this many bytes (64 MiB) */
    cairn_wal_sync_mode sync_mode; /* CAIRN_WAL_SYNC_ALWAYS */
    uint32_t sync_interval_ms;    /* for INTERVAL (1000) */
    bool preallocate;             /* extend new segments to segment_size (true) */
    uint64_t max_record;          /* largest payload accepted (256 MiB) */
    bool read_only;               /* recover and read, change nothing */
    bool salvage;                 /* on corruption keep the good prefix */
    /* Recovery hands every record with lsn >= replay_from to replay, in
     * LSN order, before cairn_wal_open returns. */
    cairn_wal_replay_fn replay;
    void *replay_arg;
    uint64_t replay_from;
    /* Called now and then while recovery scans the log. */
    cairn_wal_progress_fn progress;
    void *progress_arg;
    /* Where cairn_wal_truncate_before() puts compressed segments; NULL
     * deletes them instead. */
    const char *archive_dir;
    int archive_level;            /* zstd level for archiving (19) */
} cairn_wal_options;

/* What recovery found. Strings are empty when not applicable. */
typedef struct cairn_wal_recovery {
    uint64_t segments;       /* segment files read */
    uint64_t records;        /* valid records found */
    uint64_t bytes;          /* bytes of valid records (headers included) */
    uint64_t first_lsn;      /* first record's LSN, 0 if none */
    uint64_t last_lsn;       /* last record's LSN (or the chain's previous LSN
                                if the log holds no record) */
    uint64_t chain_start;    /* the oldest segment's previous LSN (where the
                                log starts; 0 for a log holding its very
                                first record): records at or below it are no
                                longer in the log */
    uint64_t torn_bytes;     /* bytes of torn tail cut off (or, read-only,
                                that would be cut off) */
    uint64_t torn_offset;    /* where the torn tail started */
    char torn_segment[512];
    uint64_t dropped_bytes;  /* salvage: bytes dropped after a corruption */
    uint64_t error_offset;   /* corruption: offset in error_segment */
    char error_segment[512];
    char message[768];       /* one line saying what happened (error or torn
                                tail or salvage), empty if the log was clean */
} cairn_wal_recovery;

void cairn_wal_options_init(cairn_wal_options *opts);

/* Open (creating if needed) the log in dir, recovering it: see
 * docs/format/wal.md for the rules. info may be NULL. On CAIRN_ECORRUPT,
 * info->message names the file and offset. */
int cairn_wal_open(const char *dir, const cairn_wal_options *opts,
                   cairn_wal **out, cairn_wal_recovery *info);

/* Write and sync everything pending, seal the newest segment (trim its
 * preallocated tail), release the lock and free the handle. Returns the
 * first error met (the handle is freed regardless). */
int cairn_wal_close(cairn_wal *wal);

/* Queue a record; returns at once with its LSN. Nothing is promised about
 * durability until cairn_wal_wait() / cairn_wal_on_durable() say so.
 * type must be 1..255. CAIRN_ETOOLARGE over max_record. */
int cairn_wal_append(cairn_wal *wal, uint8_t type, const void *data,
                     size_t len, uint64_t *lsn);

/* Same, from several pieces concatenated into one payload. */
int cairn_wal_appendv(cairn_wal *wal, uint8_t type, const void *const *parts,
                      const size_t *lens, size_t nparts, uint64_t *lsn);

/* Block until lsn is acknowledged (see the sync modes above). Returns 0, or
 * the error that failed that record. */
int cairn_wal_wait(cairn_wal *wal, uint64_t lsn);

/* append + wait. */
int cairn_wal_append_sync(cairn_wal *wal, uint8_t type, const void *data,
                          size_t len, uint64_t *lsn);

/* Call cb(arg, lsn, status) once lsn is acknowledged or failed: from a WAL
 * thread, or from a thread calling into the WAL (possibly this one, before
 * this call returns, if lsn is settled already). Callbacks never run
 * concurrently with one another; callbacks pending at the same time run in
 * LSN order, so the callbacks one thread registers for increasing LSNs run
 * in that order (a failed LSN may settle, and be called back, before an
 * earlier one that is still waiting for its sync). */
int cairn_wal_on_durable(cairn_wal *wal, uint64_t lsn, cairn_wal_ack_fn cb,
                         void *arg);

/* A callback settled and about to run (cairn_wal_set_batch_hook). */
typedef struct cairn_wal_settled {
    uint64_t lsn;
    cairn_wal_ack_fn cb;
    void *arg;
    int status;
} cairn_wal_settled;

/* fn(arg, s, n) is called with each batch of settled callbacks (in LSN
 * order) just before they run, by the thread that will run them (one
 * thread at a time, as the callbacks), without the log's mutex: it may do
 * part of their work together (the engine applies many commits to its
 * memtable at once) and leave the rest to them. Set it before the log is
 * shared; NULL: none. */
typedef void (*cairn_wal_batch_fn)(void *arg, const cairn_wal_settled *s,
                                   size_t n);
void cairn_wal_set_batch_hook(cairn_wal *wal, cairn_wal_batch_fn fn,
                              void *arg);

/* Append, and register cb(arg, lsn, status) for its durability in the
 * same step (so callbacks registered this way are in LSN order, with no
 * window in which the record could settle first). The callback runs in the
 * thread that completes the round holding the record (or in one already
 * running earlier callbacks), before that round's waiters are woken; still,
 * a waiter woken early (another round's wake-up) may see its record
 * acknowledged before the callback ran: a caller that needs the callback's
 * effects must wait for them itself. Nothing kicks
 * the background thread: the caller (or another) must drive the log, e.g.
 * with cairn_wal_wait(lsn). */
int cairn_wal_append_notify(cairn_wal *wal, uint8_t type, const void *data,
                            size_t len, cairn_wal_ack_fn cb, void *arg,
                            uint64_t *lsn);

/* What a durable append needs to wait for its record cheaply: its LSN and
 * the group-commit round that will cover it, noted while the record was
 * appended, so the wait can go to sleep without taking the log's mutex
 * again. Fill it with cairn_wal_append_ticket; use it once, from any one
 * thread, with cairn_wal_wait_ticket. */
typedef struct cairn_wal_ticket {
    uint64_t lsn;
    uint64_t round;
    uint32_t seen;
    bool sleep;
} cairn_wal_ticket;

/* cairn_wal_append_notify for a caller that will not wait: the log's
 * background thread leads the group commit that settles the record (and
 * runs cb), so nobody has to call cairn_wal_wait. */
int cairn_wal_append_async(cairn_wal *wal, uint8_t type, const void *data,
                           size_t len, cairn_wal_ack_fn cb, void *arg,
                           uint64_t *lsn);

/* cairn_wal_append_notify (cb may be NULL: no callback) that also fills
 * *ticket (ticket->lsn is the record's LSN). */
int cairn_wal_append_ticket(cairn_wal *wal, uint8_t type, const void *data,
                            size_t len, cairn_wal_ack_fn cb, void *arg,
                            cairn_wal_ticket *ticket);

/* cairn_wal_wait(ticket->lsn), faster. */
int cairn_wal_wait_ticket(cairn_wal *wal, const cairn_wal_ticket *ticket);

/* Make every record appended so far durable (write + fdatasync), whatever
 * the sync mode. */
int cairn_wal_sync(cairn_wal *wal);

/* LSN of the last record appended (0 if none yet). */
uint64_t cairn_wal_last_lsn(cairn_wal *wal);
/* LSN up to which records are on stable storage. */
uint64_t cairn_wal_durable_lsn(cairn_wal *wal);
/* 0, or the sticky error that made the log read-only. */
int cairn_wal_status(cairn_wal *wal);

/* Drop (or archive) every sealed segment whose records all have LSN < lsn.
 * The newest segment is never dropped. Returns the number of segments
 * dropped, or a negative error. */
int cairn_wal_truncate_before(cairn_wal *wal, uint64_t lsn);

/* cairn_wal_close for a log whose records up to covered_lsn are kept
 * elsewhere (e.g. in sorted files): if that is every record, the log is
 * left as one empty segment that carries the LSN sequence on. */
int cairn_wal_close_covered(cairn_wal *wal, uint64_t covered_lsn);

/* Number of segment files in the log right now. */
size_t cairn_wal_segment_count(cairn_wal *wal);

/* Statistics for INFO/stats. */
typedef struct cairn_wal_stats {
    uint64_t appends;      /* records appended */
    uint64_t bytes;        /* bytes written (headers included) */
    uint64_t group_commits; /* leader rounds that wrote something */
    uint64_t syncs;        /* fsyncs issued (files and directories) */
    uint64_t rotations;    /* segments sealed */
    uint64_t failed_records;
    /* Latency of the fdatasyncs that made records durable (one per group
     * commit round in sync mode "always", per interval sync otherwise),
     * within ~19%; 0 before the first. */
    uint64_t sync_p50_ns, sync_p99_ns;
} cairn_wal_stats;
void cairn_wal_get_stats(cairn_wal *wal, cairn_wal_stats *out);

/* Decompress an archived segment (wal-N.log.zst) back into a segment file. */
int cairn_wal_unarchive(cairn_env *env, const char *zst_path,
                        const char *out_path);

#endif /* CAIRN_WAL_H */
