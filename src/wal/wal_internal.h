/*
 * wal_internal.h — the WAL handle's layout, shared by wal.c (append, group
 * commit, truncation) and wal_recover.c (open and recovery). Not part of any
 * API. See wal.c for the invariants and the locking rules of each field.
 */
#ifndef CAIRN_WAL_INTERNAL_H
#define CAIRN_WAL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "util/hist.h"
#include "wal/wal.h"

#define CAIRN_WAL_MAGIC "CAIRNWAL"
/* A spare batch buffer larger than this is freed rather than kept. */
#define CAIRN_WAL_KEEP_BUFFER (16u << 20)

typedef struct wal_seg_info {
    uint64_t first_lsn;
    uint64_t prev_lsn;
} wal_seg_info;

typedef struct wal_failed_range {
    uint64_t lo, hi;
    int err;
} wal_failed_range;

typedef struct wal_ack_cb {
    uint64_t lsn;
    cairn_wal_ack_fn cb;
    void *arg;
} wal_ack_cb;

struct cairn_wal {
    cairn_env *env;
    char *dir;
    char *archive_dir;
    cairn_wal_options opts;
    cairn_filelock *lock;
    bool read_only;

    pthread_mutex_t mu;
    pthread_mutex_t trunc_mu;
    pthread_cond_t cv_ack;
    /* Group-commit waiters sleep (futex) on round_word[r & 1] for the round
     * r that will cover their record: the round in progress if it took the
     * record, else the next one. The round's end bumps the word and wakes
     * them; they check fast_ack without taking mu, so a wake-up does not
     * queue them all on the mutex again. */
    _Atomic uint32_t round_word[2];
    /* Threads in (or about to enter) a futex wait on round_word[i]: the
     * round's end makes the wake syscall only when there are any (a single
     * writer then commits without one). Waiter: sleepers++, then load the
     * word; waker: word++, then load sleepers; all seq_cst, so either the
     * waker sees the sleeper or the sleeper sees the new word. */
    _Atomic uint32_t round_sleepers[2];
    /* Every LSN <= fast_ack is acknowledged with success (it stops moving
     * once any record has failed: then waiters check under mu). */
    _Atomic uint64_t fast_ack;
    pthread_cond_t cv_bg;

    /* --- guarded by mu --- */
    uint64_t next_lsn;
    uint8_t *pend;
    size_t pend_len, pend_cap;
    uint64_t pend_first, pend_count;
    uint8_t *spare;
    size_t spare_cap;
    bool leader_active;
    uint64_t round_seq;  /* rounds started so far */
    uint64_t round_last; /* last LSN taken by the round in progress (0: none) */
    uint64_t written_lsn, durable_lsn;
    int sticky;
    wal_failed_range *failed;
    size_t nfailed, capfailed;
    wal_ack_cb *cbs;
    size_t ncbs, capcbs;
    bool cb_firing;     /* a thread is running callbacks (without mu) */
    cairn_wal_batch_fn batch_hook; /* set before the log is shared */
    void *batch_hook_arg;
    bool kick, stop;
    uint64_t last_sync_ms;
    /* Background rounds (asynchronous appends): how many records the last
     * one took, to gather about as many before the next (for at most half
     * gc_sync_us; see bg_gather); bg_gather: the background thread is
     * waiting for pend_count to reach it (0: not waiting). */
    uint64_t bg_last_records, bg_gather;
    /* Gathering before a round (sync mode "always"; gather_begin in
     * wal.c). gc_expect: records the next round should take (the last
     * round's plus those pending when it ended); gc_sync_us: how long the
     * last round that synced took to write and sync. gathering: a thread
     * holds the leader role (leader_active) but has not started the round:
     * it waits until pend_count reaches gc_target or the monotonic clock
     * gc_deadline_us, and any waiter finding either under mu may start the
     * round instead (the role passes with gathering cleared). gc_start_pend:
     * records pending when the gathering began; gc_backoff: rounds left
     * that do not gather (after one that did not pay). */
    bool gathering;
    uint64_t gc_expect, gc_sync_us, gc_target, gc_deadline_us;
    uint64_t gc_start_pend, gc_backoff;
    wal_seg_info *segs;
    size_t nsegs, capsegs;
    cairn_wal_stats stats;
    cairn_hist sync_ns; /* round fdatasync latencies (leader, no lock) */

    /* --- owned by the leader (or by open/close, single-threaded) --- */
    cairn_file *cur;
    uint64_t cur_first;
    uint64_t cur_off;
    uint64_t zeroed_upto; /* the current segment holds written zeros (or
                             records) up to here */
    uint64_t cur_records;
    uint64_t cur_last_lsn;
    bool cur_dirty;
    bool cur_prealloc;      /* the current segment was preallocated whole */
    bool need_new_segment;
    uint64_t last_good_lsn; /* last LSN in the on-disk chain */
    uint64_t synced_upto;   /* last LSN known synced */

    pthread_t bg;
    bool bg_started;
};

uint64_t cairn_wal_now_us(void);
char *cairn_wal_segment_path(const char *dir, uint64_t first_lsn);
void cairn_wal_encode_segment_header(uint8_t out[CAIRN_WAL_SEGMENT_HEADER_SIZE],
                                     uint64_t first_lsn, uint64_t prev_lsn,
                                     uint64_t created_us);
uint64_t cairn_wal_record_checksum(const uint8_t *hdr, uint64_t payload_hash);
int cairn_wal_start(cairn_wal *w);
void cairn_wal_free(cairn_wal *w);

#endif /* CAIRN_WAL_INTERNAL_H */
