/*
 * wal.c — segmented write-ahead log: append, group commit, rotation,
 * truncation/archival. Recovery lives in wal_recover.c.
 *
 * Invariants (see also docs/format/wal.md):
 *   - LSNs strictly increase; LSNs of failed records are never reused within
 *     one open handle.
 *   - Only the leader (the thread holding the role leader_active stands
 *     for, taken under mu) touches the current segment file and the cur_*
 *     fields; it drops mu while it does I/O. So writes to a segment are
 *     never concurrent. A role taken for gathering (gathering set, see
 *     below) passes, under mu and with gathering cleared, to whichever
 *     waiter ends the gathering; the role is never held twice, and while
 *     gathering nobody does I/O.
 *   - Every segment but the newest is sealed: trimmed to its last good record
 *     and synced, before the next one is created.
 *   - durable_lsn / written_lsn: every LSN <= them that is not in a failed
 *     range is synced / written to the OS.
 *   - After a sync failure `sticky` is set and never cleared: the log is
 *     read-only for the rest of the handle's life.
 *
 * Group commit: a waiter whose record is pending and finds no leader leads
 * a round (writes everything pending, one fdatasync in sync mode
 * "always"); the others sleep on the round's futex word until its end. In
 * sync mode "always" the would-be leader may first gather (gather_begin):
 * it takes the role with gathering set and sleeps (with a deadline) until
 * about as many records are pending as the writers the last round answered
 * plus those already waiting (gc_expect), for at most half the last sync
 * time (and not for a few rounds after a gathering that timed out with
 * less than half the missing records). Records appended meanwhile belong
 * to the coming round (round_seq has not moved: their tickets name it).
 * Whoever finds the gathering done under mu (enough records, or the
 * deadline passed) ends it and leads the round: usually the writer whose
 * append completed it (its ticket then sends it to mu instead of to
 * sleep), else the gatherer when its sleep times out. The gatherer always
 * exists until the round that takes its record starts, so a gathering
 * always ends.
 *
 * Locking: one mutex (mu) guards all shared state: the pending buffer, LSN
 * counters, failed ranges, callbacks, segment list, stats, the gathering
 * state (gathering, gc_*); but the fsync latency histogram (sync_ns) is
 * lock-free: the leader adds to it, cairn_wal_get_stats reads it.
 * cv_ack wakes waiters after each leader round; cv_bg wakes the background
 * thread.
 * Durability callbacks run without mu, by one thread at a time (cb_firing):
 * that thread pops the settled prefix of the sorted queue, runs it, and
 * loops until nothing settled is left, so callbacks never overlap and those
 * pending together run in LSN order. trunc_mu serializes truncations.
 */
#include "wal/wal_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#include <zstd.h>

#include "cairn.h"
#include "util/coding.h"

/* ---------- small helpers ---------- */

uint64_t cairn_wal_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_us(void)
{
    return mono_ns() / 1000u;
}

static uint64_t mono_ms(void)
{
    return mono_us() / 1000u;
}

char *cairn_wal_segment_path(const char *dir, uint64_t first_lsn)
{
    size_t n = strlen(dir) + 32;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/wal-%020" PRIu64 ".log", dir, first_lsn);
    return p;
}

void cairn_wal_encode_segment_header(uint8_t out[CAIRN_WAL_SEGMENT_HEADER_SIZE],
                                     uint64_t first_lsn, uint64_t prev_lsn,
                                     uint64_t created_us)
{
    memcpy(out, CAIRN_WAL_MAGIC, 8);
    cairn_put_u32(out + 8, CAIRN_WAL_FORMAT_VERSION);
    cairn_put_u32(out + 12, CAIRN_WAL_SEGMENT_HEADER_SIZE);
    cairn_put_u64(out + 16, first_lsn);
    cairn_put_u64(out + 24, prev_lsn);
    cairn_put_u64(out + 32, created_us);
    cairn_put_u64(out + 40, XXH3_64bits(out, 40));
}

uint64_t cairn_wal_record_checksum(const uint8_t *hdr, uint64_t payload_hash)
{
    return XXH3_64bits_withSeed(hdr + 8, 16, payload_hash);
}

void cairn_wal_options_init(cairn_wal_options *o)
{
    memset(o, 0, sizeof *o);
    o->segment_size = CAIRN_WAL_DEFAULT_SEGMENT_SIZE;
    o->sync_mode = CAIRN_WAL_SYNC_ALWAYS;
    o->sync_interval_ms = 1000;
    o->preallocate = true;
    o->max_record = CAIRN_WAL_DEFAULT_MAX_RECORD;
    o->archive_level = 19;
}

/* ---------- shared-state helpers (mu held) ---------- */

static int add_failed(cairn_wal *w, uint64_t lo, uint64_t hi, int err)
{
    if (lo == 0 || hi < lo)
        return 0;
    w->stats.failed_records += hi - lo + 1;
    if (w->nfailed > 0) {
        wal_failed_range *last = &w->failed[w->nfailed - 1];
        if (last->hi + 1 == lo && last->err == err) {
            last->hi = hi;
            return 0;
        }
    }
    if (w->nfailed == w->capfailed) {
        size_t nc = w->capfailed ? w->capfailed * 2 : 8;
        wal_failed_range *nf = realloc(w->failed, nc * sizeof *nf);
        if (!nf)
            return CAIRN_ENOMEM;
        w->failed = nf;
        w->capfailed = nc;
    }
    w->failed[w->nfailed++] = (wal_failed_range){lo, hi, err};
    return 0;
}

static int failed_status(const cairn_wal *w, uint64_t lsn)
{
    for (size_t i = w->nfailed; i > 0; i--) {
        const wal_failed_range *r = &w->failed[i - 1];
        if (lsn >= r->lo && lsn <= r->hi)
            return r->err;
    }
    return 0;
}

static uint64_t ack_lsn(const cairn_wal *w)
{
    return w->opts.sync_mode == CAIRN_WAL_SYNC_ALWAYS ? w->durable_lsn
                                                      : w->written_lsn;
}

/* 0 acknowledged, 1 still pending, <0 failed with that error. */
static int lsn_status(const cairn_wal *w, uint64_t lsn, bool need_durable)
{
    int f = failed_status(w, lsn);
    if (f)
        return f;
    uint64_t a = need_durable ? w->durable_lsn : ack_lsn(w);
    if (lsn <= a)
        return 0;
    if (w->sticky)
        return w->sticky;
    return 1;
}

/* Fail everything still pending (mu held). Used once the log is read-only. */
static void fail_pending(cairn_wal *w, int err)
{
    if (w->pend_count > 0) {
        add_failed(w, w->pend_first, w->next_lsn - 1, err);
        w->pend_len = 0;
        w->pend_count = 0;
        w->pend_first = 0;
    }
}

/* ---------- leader I/O (leader role held, mu NOT held) ---------- */

static int seg_list_push(cairn_wal *w, uint64_t first, uint64_t prev)
{
    if (w->nsegs == w->capsegs) {
        size_t nc = w->capsegs ? w->capsegs * 2 : 16;
        wal_seg_info *ns = realloc(w->segs, nc * sizeof *ns);
        if (!ns)
            return CAIRN_ENOMEM;
        w->segs = ns;
        w->capsegs = nc;
    }
    w->segs[w->nsegs++] = (wal_seg_info){first, prev};
    return 0;
}

/* Seal the current segment: trim to cur_off and sync; an empty one is
 * removed. Any failure here is sticky (the segment's state is unknown). */
static int seal_current(cairn_wal *w)
{
    if (!w->cur)
        return 0;
    int rc = 0;
    char *path = cairn_wal_segment_path(w->dir, w->cur_first);
    if (!path)
        return CAIRN_ENOMEM;
    if (w->cur_records == 0) {
        cairn_file_close(w->cur);
        w->cur = NULL;
        rc = cairn_env_unlink(w->env, path);
        if (rc == 0)
            rc = cairn_env_sync_dir(w->env, w->dir);
        if (rc == 0) {
            pthread_mutex_lock(&w->mu);
            if (w->nsegs > 0 && w->segs[w->nsegs - 1].first_lsn == w->cur_first)
                w->nsegs--;
            pthread_mutex_unlock(&w->mu);
        }
    } else {
        uint64_t size = 0;
        rc = cairn_file_size(w->cur, &size);
        if (rc == 0 && size != w->cur_off)
            rc = cairn_file_truncate(w->cur, w->cur_off);
        if (rc == 0 && (w->cur_dirty || size != w->cur_off)) {
            rc = cairn_file_sync(w->cur, CAIRN_SYNC_DATA);
            pthread_mutex_lock(&w->mu);
            w->stats.syncs++;
            pthread_mutex_unlock(&w->mu);
        }
        int crc = cairn_file_close(w->cur);
        if (rc == 0)
            rc = crc;
        w->cur = NULL;
        if (rc == 0) {
            w->cur_dirty = false;
            w->synced_upto = w->cur_last_lsn;
        }
    }
    free(path);
    return rc;
}

/* Create and open a fresh segment whose first record will be first_lsn. */
static int create_segment(cairn_wal *w, uint64_t first_lsn)
{
    char *path = cairn_wal_segment_path(w->dir, first_lsn);
    if (!path)
        return CAIRN_ENOMEM;
    cairn_file *f = NULL;
    int rc = cairn_env_open(w->env, path,
                            CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                CAIRN_OPEN_TRUNC,
                            &f);
    uint8_t hdr[CAIRN_WAL_SEGMENT_HEADER_SIZE];
    bool prealloc = w->opts.preallocate;
    if (rc == 0 && prealloc) {
        rc = cairn_file_allocate(f, 0, w->opts.segment_size);
        if (rc == CAIRN_ENOSPC) {
            /* Less free space than a whole segment (64 MiB by default):
             * go on without preallocation. The file grows as records are
             * written, and those writes fail with no space themselves once
             * the space is really gone. Refusing here made every write fail
             * (and a new database impossible to create) on a file system
             * with room left for many records. Whatever a failed allocate
             * left past the header reads as zeros: the end of the log. */
            prealloc = false;
            rc = 0;
        }
    }
    if (rc == 0) {
        cairn_wal_encode_segment_header(hdr, first_lsn, w->last_good_lsn,
                                        cairn_wal_now_us());
        rc = cairn_file_write_at(f, 0, hdr, sizeof hdr);
    }
    if (rc == 0)
        rc = cairn_file_sync(f, CAIRN_SYNC_DATA);
    if (rc == 0)
        rc = cairn_env_sync_dir(w->env, w->dir);
    if (rc != 0) {
        /* Leave nothing half-made behind if we can; recovery copes if not. */
        if (f)
            cairn_file_close(f);
        cairn_env_unlink(w->env, path);
        free(path);
        return rc;
    }
    free(path);
    pthread_mutex_lock(&w->mu);
    rc = seg_list_push(w, first_lsn, w->last_good_lsn);
    w->stats.rotations += w->cur_first ? 1 : 0;
    w->stats.syncs += 2; /* the new file and its directory */
    pthread_mutex_unlock(&w->mu);
    w->cur = f;
    w->cur_first = first_lsn;
    w->cur_off = CAIRN_WAL_SEGMENT_HEADER_SIZE;
    w->zeroed_upto = CAIRN_WAL_SEGMENT_HEADER_SIZE;
    w->cur_prealloc = prealloc;
    /* Without a sync per round, a write call per round is most of a
     * commit's cost: write through a mapping of the reserved segment
     * instead, where the env can (the bytes land in the same page cache;
     * env.h). A sync per round would write-protect the pages each time, so
     * sync mode always keeps its write calls. */
    if (prealloc && w->opts.sync_mode != CAIRN_WAL_SYNC_ALWAYS)
        (void)cairn_file_map_writes(f, w->opts.segment_size);
    w->cur_records = 0;
    w->cur_last_lsn = w->last_good_lsn;
    w->cur_dirty = false;
    w->need_new_segment = false;
    return rc;
}

/* Result of writing one batch. */
typedef struct batch_result {
    uint64_t written_upto; /* last LSN written (0: none) */
    uint64_t synced_upto;  /* last LSN synced (0: none) */
    uint64_t fail_lo;      /* failed LSNs: fail_lo..max(fail_hi, batch end) */
    uint64_t fail_hi;
    int fail_err;
    int sticky;            /* nonzero: the log must turn read-only */
    uint64_t syncs, bytes, writes; /* for the stats, added under mu later */
} batch_result;

static uint64_t rec_lsn(const uint8_t *rec) { return cairn_get_u64(rec + 8); }
static size_t rec_size(const uint8_t *rec)
{
    return CAIRN_WAL_RECORD_HEADER_SIZE + cairn_get_u32(rec + 16);
}

/* A sync (or seal) failed: nothing written since the last good sync can be
 * trusted, in any mode, and the log turns read-only. */
static void sticky_failure(cairn_wal *w, batch_result *res, int rc)
{
    res->fail_lo = w->synced_upto + 1;
    res->fail_hi = w->cur_last_lsn;
    res->fail_err = rc;
    res->sticky = rc;
}

/* Zeros written ahead of the records. A preallocated (fallocated) range is
 * "unwritten" to the file system: the first fdatasync after a write into
 * it must also update the extent map, which on ext4 makes every small
 * synced write cost about a third more. Writing zeros a megabyte at a time
 * ahead of the records pays that once per megabyte. The zeros read as the
 * end of the log (docs/format/wal.md), so they are safe on disk whatever
 * happens; a failure here fails the batch like a failed record write.
 * Not in sync mode none, where no write is synced on its own. */
#define WAL_ZERO_AHEAD (1u << 20)
static uint8_t wal_zeros[WAL_ZERO_AHEAD];

static int zero_ahead(cairn_wal *w, uint64_t end)
{
    if (w->zeroed_upto < w->cur_off)
        w->zeroed_upto = w->cur_off; /* never behind the records */
    /* Without a sync per write there is no extent update to save: the
     * zeros would only double the bytes written. */
    /* Nothing to gain on a segment that was not preallocated (no space
     * for it): the zeros would only take space the records need. */
    if (!w->cur_prealloc || end <= w->zeroed_upto ||
        w->opts.sync_mode == CAIRN_WAL_SYNC_NONE)
        return 0;
    uint64_t limit = w->opts.segment_size;
    uint64_t to = end + WAL_ZERO_AHEAD;
    if (to > limit)
        to = limit;
    while (w->zeroed_upto < to) {
        uint64_t n = to - w->zeroed_upto;
        if (n > WAL_ZERO_AHEAD)
            n = WAL_ZERO_AHEAD;
        int rc = cairn_file_write_at(w->cur, w->zeroed_upto, wal_zeros, n);
        if (rc != 0)
            return rc;
        w->zeroed_upto += n;
    }
    return 0;
}

static void write_batch(cairn_wal *w, const uint8_t *buf, size_t len,
                        bool do_sync, batch_result *res)
{
    memset(res, 0, sizeof *res);
    size_t off = 0;
    while (off < len) {
        uint64_t first = rec_lsn(buf + off);
        if (w->need_new_segment || !w->cur) {
            int rc = seal_current(w);
            if (rc != 0) {
                sticky_failure(w, res, rc);
                return;
            }
            if (w->synced_upto > res->synced_upto)
                res->synced_upto = w->synced_upto;
            rc = create_segment(w, first);
            if (rc != 0) {
                w->need_new_segment = true;
                res->fail_lo = first;
                res->fail_err = rc;
                if (rc == CAIRN_ENOMEM)
                    res->sticky = rc;
                return;
            }
        }
        /* Gather the records that fit in this segment (at least one). */
        size_t start = off;
        uint64_t n = 0;
        while (off < len) {
            size_t rs = rec_size(buf + off);
            if (w->cur_records + n > 0 &&
                w->cur_off + (off - start) + rs > w->opts.segment_size)
                break;
            off += rs;
            n++;
        }
        /* Large writes pay the extent update once for many bytes anyway;
         * zeroing ahead of them would only double the bytes written. */
        int rc = off - start < WAL_ZERO_AHEAD / 8
                     ? zero_ahead(w, w->cur_off + (off - start))
                     : 0;
        if (rc == 0)
            rc = cairn_file_write_at(w->cur, w->cur_off, buf + start,
                                     off - start);
        if (rc != 0) {
            /* The bytes may be partly on disk: the segment is sealed at
             * cur_off and the next records go to a new segment. */
            w->need_new_segment = true;
            res->fail_lo = first;
            res->fail_err = rc;
            break;
        }
        res->writes++;
        res->bytes += off - start;
        w->cur_off += off - start;
        w->cur_records += n;
        w->cur_last_lsn = first + n - 1; /* LSNs in a batch are consecutive */
        w->last_good_lsn = w->cur_last_lsn;
        w->cur_dirty = true;
        res->written_upto = w->cur_last_lsn;
        if (off < len)
            w->need_new_segment = true; /* segment full */
    }
    if (do_sync && w->cur && w->cur_dirty && !res->fail_lo) {
        uint64_t t0 = mono_ns();
        int rc = cairn_file_sync(w->cur, CAIRN_SYNC_DATA);
        cairn_hist_add(&w->sync_ns, mono_ns() - t0);
        res->syncs++;
        if (rc != 0) {
            sticky_failure(w, res, rc);
            return;
        }
        w->cur_dirty = false;
        w->synced_upto = w->cur_last_lsn;
    }
    if (w->synced_upto > res->synced_upto)
        res->synced_upto = w->synced_upto;
}

/* ---------- leader rounds ---------- */

typedef cairn_wal_settled fired_cb;

/* Pop every callback whose LSN is settled (mu held). Caller frees *out. */
static size_t collect_callbacks(cairn_wal *w, fired_cb **out)
{
    size_t n = 0;
    while (n < w->ncbs) {
        wal_ack_cb *c = &w->cbs[n];
        int st = lsn_status(w, c->lsn, false);
        if (st == 1)
            break;
        n++;
    }
    /* Later callbacks may be settled too if an earlier LSN failed later...
     * callbacks are sorted by LSN and settlement is monotone in LSN except
     * for failed ranges, which are settled as well, so the prefix is all. */
    if (n == 0) {
        *out = NULL;
        return 0;
    }
    fired_cb *v = malloc(n * sizeof *v);
    if (!v) {
        *out = NULL;
        return 0; /* try again next round */
    }
    for (size_t i = 0; i < n; i++) {
        v[i].lsn = w->cbs[i].lsn;
        v[i].cb = w->cbs[i].cb;
        v[i].arg = w->cbs[i].arg;
        v[i].status = lsn_status(w, w->cbs[i].lsn, false);
    }
    memmove(w->cbs, w->cbs + n, (w->ncbs - n) * sizeof *w->cbs);
    w->ncbs -= n;
    *out = v;
    return n;
}

/* Run every settled callback (mu held; dropped while callbacks run). If
 * another thread is already running callbacks, leave them to it: it loops
 * until the queue has no settled entry left. */
static void fire_callbacks(cairn_wal *w)
{
    if (w->cb_firing)
        return;
    w->cb_firing = true;
    for (;;) {
        fired_cb *fired = NULL;
        size_t nfired = collect_callbacks(w, &fired);
        if (!nfired)
            break;
        pthread_mutex_unlock(&w->mu);
        if (w->batch_hook)
            w->batch_hook(w->batch_hook_arg, fired, nfired);
        for (size_t i = 0; i < nfired; i++)
            fired[i].cb(fired[i].arg, fired[i].lsn, fired[i].status);
        free(fired);
        pthread_mutex_lock(&w->mu);
    }
    w->cb_firing = false;
}

/* Sleep on round r's futex word while it reads val (until the monotonic
 * time deadline_us, if nonzero). Sleeper: sleepers++, then load the word;
 * waker (round_wake): word++, then load sleepers; all seq_cst, so either
 * the waker sees the sleeper or the sleeper sees the new word. */
static void round_sleep(cairn_wal *w, uint64_t r, uint32_t val,
                        uint64_t deadline_us)
{
    unsigned i = (unsigned)(r & 1);
    _Atomic uint32_t *word = &w->round_word[i];
    struct timespec rel, *timeout = NULL;
    if (deadline_us) {
        uint64_t now = mono_us();
        if (now >= deadline_us)
            return;
        uint64_t left = deadline_us - now;
        rel.tv_sec = (time_t)(left / 1000000u);
        rel.tv_nsec = (long)(left % 1000000u) * 1000L;
        timeout = &rel;
    }
    atomic_fetch_add(&w->round_sleepers[i], 1);
    if (atomic_load(word) == val)
        syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, timeout,
                NULL, 0);
    atomic_fetch_sub(&w->round_sleepers[i], 1);
}

/* End of round r: bump its word and wake up to n of its sleepers. */
static void round_wake(cairn_wal *w, uint64_t r, int n)
{
    unsigned i = (unsigned)(r & 1);
    atomic_fetch_add(&w->round_word[i], 1);
    if (atomic_load(&w->round_sleepers[i]) != 0)
        syscall(SYS_futex, (uint32_t *)&w->round_word[i], FUTEX_WAKE_PRIVATE,
                n, NULL, NULL, 0);
}

/* One leader round. Called with mu held and leader_active false (or true
 * with gathering just ended by the caller: the role is the caller's);
 * returns with mu held and leader_active false. Writes whatever is pending
 * (and syncs, per mode or force_sync). */
static void leader_round(cairn_wal *w, bool force_sync)
{
    w->leader_active = true;
    uint64_t seq = ++w->round_seq;
    uint64_t batch_records = w->pend_count;
    w->round_last = w->pend_count ? w->next_lsn - 1 : 0;
    uint8_t *batch = w->pend;
    size_t batch_cap = w->pend_cap;
    size_t batch_len = w->pend_len;
    uint64_t batch_last = w->pend_count ? w->next_lsn - 1 : 0;
    w->pend = w->spare;
    w->pend_cap = w->spare_cap;
    w->spare = NULL;
    w->spare_cap = 0;
    w->pend_len = 0;
    w->pend_count = 0;
    w->pend_first = 0;
    bool do_sync = force_sync || w->opts.sync_mode == CAIRN_WAL_SYNC_ALWAYS;
    pthread_mutex_unlock(&w->mu);

    batch_result res;
    uint64_t t0 = do_sync ? mono_us() : 0;
    write_batch(w, batch, batch_len, do_sync, &res);
    uint64_t took = do_sync ? mono_us() - t0 : 0;

    pthread_mutex_lock(&w->mu);
    if (res.syncs)
        w->gc_sync_us = took;
    /* The writers this round answers come back; those that arrived during
     * it are waiting already: the next round should take about both. */
    w->gc_expect = batch_records + w->pend_count;
    w->stats.syncs += res.syncs;
    w->stats.bytes += res.bytes;
    if (res.writes)
        w->stats.group_commits++;
    if (res.written_upto > w->written_lsn)
        w->written_lsn = res.written_upto;
    if (res.synced_upto > w->durable_lsn)
        w->durable_lsn = res.synced_upto;
    if (do_sync && !res.fail_lo && !res.sticky) {
        /* Everything written before this round is synced as well. */
        if (w->written_lsn > w->durable_lsn)
            w->durable_lsn = w->written_lsn;
        w->last_sync_ms = mono_ms();
    }
    if (res.fail_lo) {
        uint64_t hi = res.fail_hi > batch_last ? res.fail_hi : batch_last;
        add_failed(w, res.fail_lo, hi, res.fail_err);
        if (res.sticky && !w->sticky)
            w->sticky = res.sticky;
    }
    if (w->sticky)
        fail_pending(w, CAIRN_EREADONLY);
    /* Keep one buffer for the next round; drop huge ones. */
    if (!w->spare && batch && batch_cap <= CAIRN_WAL_KEEP_BUFFER) {
        w->spare = batch;
        w->spare_cap = batch_cap;
    } else {
        free(batch);
    }
    if (w->nfailed == 0 && !w->sticky)
        atomic_store(&w->fast_ack, ack_lsn(w));
    /* Callbacks first (in LSN order, one thread at a time), then the
     * waiters: a waiter that registered a callback (append_notify) finds it
     * done when it wakes. Handing the leader role on before the callbacks
     * let the next round start with fewer records (commits apply in the
     * callbacks) and cost durable commits more than it saved. */
    fire_callbacks(w);
    w->leader_active = false;
    w->round_last = 0;
    if (w->pend_count > 0 && w->ncbs > 0) {
        w->kick = true;
        pthread_cond_signal(&w->cv_bg);
    }
    bool next = w->pend_count > 0, failing = w->sticky != 0;
    /* Wake outside mu: a thread woken while mu is held only blocks on it
     * again, and with many writers that convoy, not the disk, sets the pace.
     * The next round's leader first (waking this round's waiters takes a
     * while with many of them), then this round's waiters (everyone, once
     * the log has failed). Safe: the state they test changed under mu, and
     * they test it under mu (or through their ticket's futex word) before
     * sleeping. */
    pthread_mutex_unlock(&w->mu);
    if (failing || next)
        round_wake(w, seq + 1, failing ? INT_MAX : 1);
    round_wake(w, seq, INT_MAX);
    pthread_cond_broadcast(&w->cv_ack);
    pthread_mutex_lock(&w->mu);
}

/* A leader gathers for at most half the time the last synced round took,
 * and never longer than this. */
#define WAL_GATHER_MAX_US 2000
/* Nor once this many bytes are pending: a sync that large costs about its
 * bytes, whatever the records, and waiting for more saves nothing. */
#define WAL_GATHER_MAX_BYTES (256u << 10)
/* Rounds that do not gather after one whose gathering did not pay. */
#define WAL_GATHER_BACKOFF 7

/* Before a background round in sync mode "always": if fewer records are
 * pending than the last round took, wait a little for the rest (mu held;
 * dropped while waiting). The writers of the last round are answered when
 * it ends and come back with their next records a moment later; starting
 * the next round at once would take only the few already there, and the
 * rest would wait a whole sync behind it (rounds alternating between two
 * halves of the writers, each as slow as a full one). Waits at most half
 * the last synced round's time (and never over WAL_GATHER_MAX_US), so a
 * load that shrank costs one short wait. */
static void bg_gather(cairn_wal *w)
{
    if (w->opts.sync_mode != CAIRN_WAL_SYNC_ALWAYS ||
        w->pend_count >= w->bg_last_records || w->bg_last_records < 4)
        return;
    uint64_t wait_us = w->gc_sync_us / 2;
    if (wait_us > WAL_GATHER_MAX_US)
        wait_us = WAL_GATHER_MAX_US;
    if (wait_us < 20)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(wait_us * 1000);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    /* Most of the last round's writers is enough. */
    w->bg_gather = w->bg_last_records - w->bg_last_records / 8;
    while (w->bg_gather && !w->stop && !w->leader_active &&
           w->pend_count < w->bg_gather) {
        if (pthread_cond_timedwait(&w->cv_bg, &w->mu, &ts) == ETIMEDOUT)
            break;
    }
    w->bg_gather = 0;
}

static void *bg_main(void *arg)
{
    pthread_setname_np(pthread_self(), "cairn-wal");
    cairn_wal *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        bool did = false;
        if (!w->leader_active && !w->sticky) {
            if (w->kick && w->pend_count > 0) {
                bg_gather(w);
                if (w->leader_active || w->pend_count == 0 || w->sticky ||
                    w->stop)
                    continue; /* a committer led it meanwhile */
                w->kick = false;
                uint64_t recs = w->pend_count;
                leader_round(w, false);
                w->bg_last_records = recs;
                did = true;
            } else if (w->opts.sync_mode == CAIRN_WAL_SYNC_INTERVAL &&
                       (w->written_lsn > w->durable_lsn || w->pend_count > 0) &&
                       mono_ms() >= w->last_sync_ms + w->opts.sync_interval_ms) {
                leader_round(w, true);
                did = true;
            }
        }
        if (did)
            continue;
        w->kick = false;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t wait_ms = 1000;
        if (w->opts.sync_mode == CAIRN_WAL_SYNC_INTERVAL) {
            uint64_t now = mono_ms(), due = w->last_sync_ms +
                                            w->opts.sync_interval_ms;
            wait_ms = due > now ? due - now : 1;
            if (wait_ms > w->opts.sync_interval_ms)
                wait_ms = w->opts.sync_interval_ms;
        }
        ts.tv_sec += (time_t)(wait_ms / 1000);
        ts.tv_nsec += (long)((wait_ms % 1000) * 1000000);
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->cv_bg, &w->mu, &ts);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---------- gathering (sync mode "always") ---------- */

/* A thread about to lead a round (mu held, no leader): should it gather
 * first? In sync mode "always", when fewer records are pending than the
 * last round's writers will bring back, yes: it takes the leader role in
 * the gathering state and this returns the gathering's deadline (monotonic
 * us; 0: lead now, no gathering).
 *
 * Why: a round's writers are answered when it ends and come back with
 * their next records a moment later. A round started at once takes only
 * the records that came during the last one; the others queue behind it
 * for a whole sync. The writers then split into two halves, rounds
 * alternating between them, each paying a full sync for half the records.
 * So the round waits until 7/8 of the expected records are pending (the
 * last few stragglers are not worth waiting for: they take the next
 * round), but for no more than half the last sync time: a load that shrank
 * costs one short wait, and gc_expect follows what came. One writer (or a
 * round's worth already pending, or large records) never waits; nor, for a
 * few rounds, does anyone after a gathering that did not pay (gather_end). */
static uint64_t gather_begin(cairn_wal *w)
{
    if (w->opts.sync_mode != CAIRN_WAL_SYNC_ALWAYS || w->pend_count == 0 ||
        w->pend_len >= WAL_GATHER_MAX_BYTES || w->sticky || w->stop)
        return 0;
    uint64_t target = w->gc_expect - w->gc_expect / 8;
    if (w->pend_count >= target)
        return 0;
    uint64_t budget = w->gc_sync_us / 2;
    if (budget > WAL_GATHER_MAX_US)
        budget = WAL_GATHER_MAX_US;
    if (budget == 0)
        return 0;
    if (w->gc_backoff > 0) {
        w->gc_backoff--;
        return 0;
    }
    w->leader_active = true;
    w->gathering = true;
    w->gc_target = target;
    w->gc_start_pend = w->pend_count;
    w->gc_deadline_us = mono_us() + budget;
    return w->gc_deadline_us;
}

/* Whether the gathering in progress is over (mu held): enough records
 * pending, or its time is up. Whoever finds it over under mu ends it and
 * leads the round (wait_for). */
static bool gather_done(const cairn_wal *w)
{
    return w->pend_count >= w->gc_target ||
           w->pend_len >= WAL_GATHER_MAX_BYTES || w->stop || w->sticky ||
           mono_us() >= w->gc_deadline_us;
}

/* The gathering ends (mu held); the caller leads the round. If its time
 * ran out before even half the missing records came, the writers come back
 * slower than a sync takes (waking each costs a few microseconds, and the
 * CPUs are few): then rounds that do not wait serve them better, one half
 * syncing while the other comes back, so the next WAL_GATHER_BACKOFF
 * rounds do not gather, and the one after tries again. */
static void gather_end(cairn_wal *w)
{
    w->gathering = false;
    uint64_t missing = w->gc_target - w->gc_start_pend;
    uint64_t came = w->pend_count - w->gc_start_pend;
    if (w->pend_count < w->gc_target && w->pend_len < WAL_GATHER_MAX_BYTES &&
        !w->stop && !w->sticky && came * 2 < missing)
        w->gc_backoff = WAL_GATHER_BACKOFF;
}

/* ---------- public API ---------- */

static int append_parts(cairn_wal *w, uint8_t type, const void *const *parts,
                        const size_t *lens, size_t nparts, cairn_wal_ack_fn cb,
                        void *cb_arg, uint64_t *lsn_out, cairn_wal_ticket *tk,
                        bool kick)
{
    if (!w || type == 0 || (nparts && (!parts || !lens)))
        return CAIRN_EINVAL;
    size_t len = 0;
    XXH3_state_t *st = NULL;
    uint64_t phash;
    for (size_t i = 0; i < nparts; i++) {
        if (lens[i] > w->opts.max_record || len + lens[i] > w->opts.max_record)
            return CAIRN_ETOOLARGE;
        len += lens[i];
    }
    if (nparts == 1) {
        phash = XXH3_64bits(parts[0], lens[0]);
    } else {
        st = XXH3_createState();
        if (!st)
            return CAIRN_ENOMEM;
        XXH3_64bits_reset(st);
        for (size_t i = 0; i < nparts; i++)
            XXH3_64bits_update(st, parts[i], lens[i]);
        phash = XXH3_64bits_digest(st);
        XXH3_freeState(st);
    }
    size_t need = CAIRN_WAL_RECORD_HEADER_SIZE + len;

    pthread_mutex_lock(&w->mu);
    if (w->read_only || w->sticky || w->stop) {
        int rc = w->read_only || w->sticky ? CAIRN_EREADONLY : CAIRN_ECLOSED;
        pthread_mutex_unlock(&w->mu);
        return rc;
    }
    if (cb && w->ncbs == w->capcbs) { /* room first: no record without it */
        size_t nc = w->capcbs ? w->capcbs * 2 : 64;
        wal_ack_cb *n = realloc(w->cbs, nc * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&w->mu);
            return CAIRN_ENOMEM;
        }
        w->cbs = n;
        w->capcbs = nc;
    }
    if (w->pend_len + need > w->pend_cap) {
        size_t nc = w->pend_cap ? w->pend_cap : 64 * 1024;
        while (nc < w->pend_len + need)
            nc *= 2;
        uint8_t *nb = realloc(w->pend, nc);
        if (!nb) {
            pthread_mutex_unlock(&w->mu);
            return CAIRN_ENOMEM;
        }
        w->pend = nb;
        w->pend_cap = nc;
    }
    uint64_t lsn = w->next_lsn++;
    uint8_t *h = w->pend + w->pend_len;
    cairn_put_u64(h + 8, lsn);
    cairn_put_u32(h + 16, (uint32_t)len);
    h[20] = type;
    h[21] = h[22] = h[23] = 0;
    cairn_put_u64(h, cairn_wal_record_checksum(h, phash));
    uint8_t *p = h + CAIRN_WAL_RECORD_HEADER_SIZE;
    for (size_t i = 0; i < nparts; i++) {
        if (lens[i])
            memcpy(p, parts[i], lens[i]);
        p += lens[i];
    }
    w->pend_len += need;
    if (w->pend_count++ == 0)
        w->pend_first = lsn;
    w->stats.appends++;
    if (cb) /* the newest LSN: its place in the sorted queue is the end */
        w->cbs[w->ncbs++] = (wal_ack_cb){lsn, cb, cb_arg};
    if (tk) {
        /* The record is pending, so it goes to the round after the one in
         * progress (or to the one being gathered: round_seq moves when it
         * starts); that round's word, read now, tells a later wait whether
         * the round has ended without taking mu again. With no leader the
         * waiter must lead (or find the record settled) under mu. */
        tk->lsn = lsn;
        tk->round = w->round_seq + 1;
        tk->seen = atomic_load(&w->round_word[tk->round & 1]);
        tk->sleep = w->leader_active;
        /* A round gathering and this record completes it (or its time is
         * up): the wait takes mu and starts the round itself, instead of
         * sleeping until the gatherer wakes to do it (see wait_for). */
        if (w->gathering && gather_done(w))
            tk->sleep = false;
    }
    /* Nobody will wait for this record: have the background thread lead a
     * round now (a leader in progress kicks it at the end of its round). */
    bool signal = kick && !w->leader_active && !w->kick;
    if (signal)
        w->kick = true;
    /* The background thread gathering a round: wake it once it has enough. */
    if (w->bg_gather && w->pend_count >= w->bg_gather) {
        w->bg_gather = 0;
        signal = true;
    }
    pthread_mutex_unlock(&w->mu);
    if (signal)
        pthread_cond_signal(&w->cv_bg);
    if (lsn_out)
        *lsn_out = lsn;
    return 0;
}

int cairn_wal_appendv(cairn_wal *w, uint8_t type, const void *const *parts,
                      const size_t *lens, size_t nparts, uint64_t *lsn_out)
{
    return append_parts(w, type, parts, lens, nparts, NULL, NULL, lsn_out,
                        NULL, false);
}

/* One record with a callback; kick: the background thread leads. */
static int append_cb(cairn_wal *w, uint8_t type, const void *data, size_t len,
                     cairn_wal_ack_fn cb, void *arg, uint64_t *lsn, bool kick)
{
    const void *parts[1] = {data};
    size_t lens[1] = {len};
    if (!cb || (len && !data))
        return CAIRN_EINVAL;
    return append_parts(w, type, parts, lens, 1, cb, arg, lsn, NULL, kick);
}

int cairn_wal_append_notify(cairn_wal *w, uint8_t type, const void *data,
                            size_t len, cairn_wal_ack_fn cb, void *arg,
                            uint64_t *lsn)
{
    return append_cb(w, type, data, len, cb, arg, lsn, false);
}

int cairn_wal_append_async(cairn_wal *w, uint8_t type, const void *data,
                           size_t len, cairn_wal_ack_fn cb, void *arg,
                           uint64_t *lsn)
{
    return append_cb(w, type, data, len, cb, arg, lsn, true);
}

int cairn_wal_append_ticket(cairn_wal *w, uint8_t type, const void *data,
                            size_t len, cairn_wal_ack_fn cb, void *arg,
                            cairn_wal_ticket *tk)
{
    const void *parts[1] = {data};
    size_t lens[1] = {len};
    if (!tk || (len && !data))
        return CAIRN_EINVAL;
    return append_parts(w, type, parts, lens, 1, cb, arg, NULL, tk, false);
}

int cairn_wal_append(cairn_wal *w, uint8_t type, const void *data, size_t len,
                     uint64_t *lsn)
{
    const void *parts[1] = {data};
    size_t lens[1] = {len};
    if (len && !data)
        return CAIRN_EINVAL;
    return cairn_wal_appendv(w, type, parts, lens, 1, lsn);
}

/* Wait (leading rounds when nobody else does) until lsn is settled. With a
 * ticket whose round had a leader at append time, first sleep on that
 * round's word without taking mu: the leader in progress wakes one waiter
 * of the next round to lead it, so someone will (or, if the role is held
 * for gathering, the gathering ends by its deadline and its round takes the
 * record). In sync mode "always" a waiter about to lead may gather first
 * (gather_begin); any waiter that finds the gathering done leads. */
static int wait_for(cairn_wal *w, uint64_t lsn, bool need_durable,
                    const cairn_wal_ticket *tk)
{
    if (lsn && !need_durable && lsn <= atomic_load(&w->fast_ack))
        return 0;
    if (tk && tk->sleep && !need_durable) {
        round_sleep(w, tk->round, tk->seen, 0);
        if (lsn <= atomic_load(&w->fast_ack))
            return 0;
    }
    pthread_mutex_lock(&w->mu);
    if (lsn == 0 || lsn >= w->next_lsn) {
        pthread_mutex_unlock(&w->mu);
        return CAIRN_EINVAL;
    }
    int st;
    bool gatherer = false;     /* this thread started the gathering */
    uint64_t deadline_us = 0;  /* when its gathering ends */
    while ((st = lsn_status(w, lsn, need_durable)) == 1) {
        if (!w->gathering)
            gatherer = false;
        if (!w->leader_active) {
            deadline_us = need_durable ? 0 : gather_begin(w);
            if (!deadline_us) {
                leader_round(w, need_durable);
                continue;
            }
            gatherer = true;
        }
        if (w->gathering && gather_done(w)) {
            /* Enough records (or the time is up): start the round here,
             * holding the role the gatherer took. */
            gather_end(w);
            leader_round(w, need_durable);
            continue;
        }
        if (gatherer) {
            /* Sleep until the round ends (someone else completed the
             * gathering and led it) or the time is up. */
            uint64_t r = w->round_seq + 1;
            uint32_t seen = atomic_load(&w->round_word[r & 1]);
            pthread_mutex_unlock(&w->mu);
            round_sleep(w, r, seen, deadline_us);
            if (!need_durable && lsn <= atomic_load(&w->fast_ack))
                return 0;
            pthread_mutex_lock(&w->mu);
            continue;
        }
        /* Sleep until the round that covers lsn ends: the one in progress
         * if it took lsn, else the next (whose leader we may be asked to
         * be). */
        uint64_t r = lsn <= w->round_last ? w->round_seq : w->round_seq + 1;
        uint32_t seen = atomic_load(&w->round_word[r & 1]);
        pthread_mutex_unlock(&w->mu);
        round_sleep(w, r, seen, 0); /* at once if it ended */
        if (!need_durable && lsn <= atomic_load(&w->fast_ack))
            return 0;
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return st;
}

int cairn_wal_wait(cairn_wal *w, uint64_t lsn)
{
    if (!w)
        return CAIRN_EINVAL;
    if (w->read_only)
        return CAIRN_EREADONLY;
    return wait_for(w, lsn, false, NULL);
}

int cairn_wal_wait_ticket(cairn_wal *w, const cairn_wal_ticket *tk)
{
    if (!w || !tk)
        return CAIRN_EINVAL;
    if (w->read_only)
        return CAIRN_EREADONLY;
    return wait_for(w, tk->lsn, false, tk);
}

int cairn_wal_append_sync(cairn_wal *w, uint8_t type, const void *data,
                          size_t len, uint64_t *lsn_out)
{
    cairn_wal_ticket tk;
    int rc = cairn_wal_append_ticket(w, type, data, len, NULL, NULL, &tk);
    if (rc != 0)
        return rc;
    if (lsn_out)
        *lsn_out = tk.lsn;
    return wait_for(w, tk.lsn, false, &tk);
}

void cairn_wal_set_batch_hook(cairn_wal *w, cairn_wal_batch_fn fn, void *arg)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->batch_hook = fn;
    w->batch_hook_arg = arg;
    pthread_mutex_unlock(&w->mu);
}

int cairn_wal_on_durable(cairn_wal *w, uint64_t lsn, cairn_wal_ack_fn cb,
                         void *arg)
{
    if (!w || !cb)
        return CAIRN_EINVAL;
    pthread_mutex_lock(&w->mu);
    if (lsn == 0 || lsn >= w->next_lsn) {
        pthread_mutex_unlock(&w->mu);
        return CAIRN_EINVAL;
    }
    int st = lsn_status(w, lsn, false);
    if (w->ncbs == w->capcbs) {
        size_t nc = w->capcbs ? w->capcbs * 2 : 64;
        wal_ack_cb *n = realloc(w->cbs, nc * sizeof *n);
        if (!n) {
            pthread_mutex_unlock(&w->mu);
            return CAIRN_ENOMEM;
        }
        w->cbs = n;
        w->capcbs = nc;
    }
    /* Keep sorted by LSN; appends usually come in order, so scan from the end. */
    size_t i = w->ncbs;
    while (i > 0 && w->cbs[i - 1].lsn > lsn)
        i--;
    memmove(w->cbs + i + 1, w->cbs + i, (w->ncbs - i) * sizeof *w->cbs);
    w->cbs[i] = (wal_ack_cb){lsn, cb, arg};
    w->ncbs++;
    if (st != 1) {
        /* Settled already: run it here (after any earlier ones queued),
         * unless another thread is running callbacks and will take it. */
        fire_callbacks(w);
    } else {
        w->kick = true;
        pthread_cond_signal(&w->cv_bg);
    }
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int cairn_wal_sync(cairn_wal *w)
{
    if (!w)
        return CAIRN_EINVAL;
    if (w->read_only)
        return CAIRN_EREADONLY;
    pthread_mutex_lock(&w->mu);
    uint64_t target = w->next_lsn - 1;
    int rc = 0;
    for (;;) {
        if (w->sticky) {
            rc = w->sticky;
            break;
        }
        if (w->leader_active) {
            pthread_cond_wait(&w->cv_ack, &w->mu);
            continue;
        }
        if (w->pend_count == 0 && w->written_lsn <= w->durable_lsn)
            break; /* nothing written-but-unsynced, nothing pending */
        uint64_t w0 = w->written_lsn, d0 = w->durable_lsn;
        leader_round(w, true);
        if (w->pend_count == 0 && w->written_lsn == w0 && w->durable_lsn == d0)
            break; /* the round failed: the status below says how */
    }
    if (rc == 0 && target > 0) {
        int st = lsn_status(w, target, true);
        rc = st == 1 ? CAIRN_EIO : st;
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

uint64_t cairn_wal_last_lsn(cairn_wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->next_lsn - 1;
    pthread_mutex_unlock(&w->mu);
    return v;
}

uint64_t cairn_wal_durable_lsn(cairn_wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->durable_lsn;
    pthread_mutex_unlock(&w->mu);
    return v;
}

int cairn_wal_status(cairn_wal *w)
{
    pthread_mutex_lock(&w->mu);
    int v = w->sticky;
    pthread_mutex_unlock(&w->mu);
    return v;
}

size_t cairn_wal_segment_count(cairn_wal *w)
{
    pthread_mutex_lock(&w->mu);
    size_t v = w->nsegs;
    pthread_mutex_unlock(&w->mu);
    return v;
}

void cairn_wal_get_stats(cairn_wal *w, cairn_wal_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->stats;
    pthread_mutex_unlock(&w->mu);
    out->sync_p50_ns = cairn_hist_quantile(&w->sync_ns, 0.5);
    out->sync_p99_ns = cairn_hist_quantile(&w->sync_ns, 0.99);
}

/* ---------- truncation and archival ---------- */

static int archive_segment(cairn_wal *w, const char *src_path, uint64_t first)
{
    size_t n = strlen(w->archive_dir) + 40;
    char *dst = malloc(n), *tmp = malloc(n + 8);
    if (!dst || !tmp) {
        free(dst);
        free(tmp);
        return CAIRN_ENOMEM;
    }
    snprintf(dst, n, "%s/wal-%020" PRIu64 ".log.zst", w->archive_dir, first);
    snprintf(tmp, n + 8, "%s.tmp", dst);
    cairn_file *in = NULL, *out = NULL;
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    size_t inbuf_sz = ZSTD_CStreamInSize(), outbuf_sz = ZSTD_CStreamOutSize();
    uint8_t *inbuf = malloc(inbuf_sz), *outbuf = malloc(outbuf_sz);
    int rc = (cc && inbuf && outbuf) ? 0 : CAIRN_ENOMEM;
    if (rc == 0)
        rc = cairn_env_mkdir_p(w->env, w->archive_dir);
    if (rc == 0)
        rc = cairn_env_open(w->env, src_path, CAIRN_OPEN_READ, &in);
    if (rc == 0)
        rc = cairn_env_open(w->env, tmp,
                            CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                CAIRN_OPEN_TRUNC,
                            &out);
    if (rc == 0) {
        ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel,
                               w->opts.archive_level);
        ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    }
    uint64_t roff = 0, woff = 0;
    while (rc == 0) {
        size_t got = 0;
        rc = cairn_file_read_at(in, roff, inbuf, inbuf_sz, &got);
        if (rc != 0)
            break;
        roff += got;
        bool last = got < inbuf_sz;
        ZSTD_inBuffer ib = {inbuf, got, 0};
        bool done = false;
        while (!done && rc == 0) {
            ZSTD_outBuffer ob = {outbuf, outbuf_sz, 0};
            size_t r = ZSTD_compressStream2(cc, &ob, &ib,
                                            last ? ZSTD_e_end : ZSTD_e_continue);
            if (ZSTD_isError(r)) {
                rc = CAIRN_EIO;
                break;
            }
            if (ob.pos) {
                rc = cairn_file_write_at(out, woff, outbuf, ob.pos);
                woff += ob.pos;
            }
            done = last ? (r == 0) : (ib.pos == ib.size);
        }
        if (last)
            break;
    }
    if (rc == 0)
        rc = cairn_file_sync(out, CAIRN_SYNC_FULL);
    cairn_file_close(in);
    if (out) {
        int crc = cairn_file_close(out);
        if (rc == 0)
            rc = crc;
    }
    if (rc == 0)
        rc = cairn_env_rename(w->env, tmp, dst);
    if (rc == 0)
        rc = cairn_env_sync_dir(w->env, w->archive_dir);
    if (rc != 0 && out)
        cairn_env_unlink(w->env, tmp);
    ZSTD_freeCCtx(cc);
    free(inbuf);
    free(outbuf);
    free(dst);
    free(tmp);
    return rc;
}

int cairn_wal_truncate_before(cairn_wal *w, uint64_t lsn)
{
    if (!w)
        return CAIRN_EINVAL;
    if (w->read_only)
        return CAIRN_EREADONLY;
    pthread_mutex_lock(&w->trunc_mu);
    int dropped = 0, rc = 0;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        /* segs[0] can go when segs[1] exists and everything in segs[0]
         * (which ends at segs[1].prev_lsn) is below lsn. */
        bool can = w->nsegs >= 2 && w->segs[1].prev_lsn < lsn;
        uint64_t first = can ? w->segs[0].first_lsn : 0;
        pthread_mutex_unlock(&w->mu);
        if (!can)
            break;
        char *path = cairn_wal_segment_path(w->dir, first);
        if (!path) {
            rc = CAIRN_ENOMEM;
            break;
        }
        if (w->archive_dir)
            rc = archive_segment(w, path, first);
        if (rc == 0) {
            rc = cairn_env_unlink(w->env, path);
            if (rc == CAIRN_ENOTFOUND)
                rc = 0;
        }
        if (rc == 0)
            rc = cairn_env_sync_dir(w->env, w->dir);
        free(path);
        if (rc != 0)
            break;
        pthread_mutex_lock(&w->mu);
        memmove(w->segs, w->segs + 1, (w->nsegs - 1) * sizeof *w->segs);
        w->nsegs--;
        pthread_mutex_unlock(&w->mu);
        dropped++;
    }
    pthread_mutex_unlock(&w->trunc_mu);
    return rc != 0 ? rc : dropped;
}

int cairn_wal_unarchive(cairn_env *env, const char *zst_path,
                        const char *out_path)
{
    if (!env)
        env = cairn_env_posix();
    cairn_file *in = NULL, *out = NULL;
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    size_t inbuf_sz = ZSTD_DStreamInSize(), outbuf_sz = ZSTD_DStreamOutSize();
    uint8_t *inbuf = malloc(inbuf_sz), *outbuf = malloc(outbuf_sz);
    int rc = (dc && inbuf && outbuf) ? 0 : CAIRN_ENOMEM;
    if (rc == 0)
        rc = cairn_env_open(env, zst_path, CAIRN_OPEN_READ, &in);
    if (rc == 0)
        rc = cairn_env_open(env, out_path,
                            CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                CAIRN_OPEN_TRUNC,
                            &out);
    uint64_t roff = 0, woff = 0;
    size_t last_ret = 1;
    while (rc == 0) {
        size_t got = 0;
        rc = cairn_file_read_at(in, roff, inbuf, inbuf_sz, &got);
        if (rc != 0 || got == 0)
            break;
        roff += got;
        ZSTD_inBuffer ib = {inbuf, got, 0};
        while (ib.pos < ib.size && rc == 0) {
            ZSTD_outBuffer ob = {outbuf, outbuf_sz, 0};
            last_ret = ZSTD_decompressStream(dc, &ob, &ib);
            if (ZSTD_isError(last_ret)) {
                rc = CAIRN_ECORRUPT;
                break;
            }
            if (ob.pos) {
                rc = cairn_file_write_at(out, woff, outbuf, ob.pos);
                woff += ob.pos;
            }
        }
    }
    if (rc == 0 && last_ret != 0)
        rc = CAIRN_ECORRUPT; /* truncated frame */
    if (rc == 0)
        rc = cairn_file_sync(out, CAIRN_SYNC_DATA);
    cairn_file_close(in);
    if (out)
        cairn_file_close(out);
    ZSTD_freeDCtx(dc);
    free(inbuf);
    free(outbuf);
    return rc;
}

/* ---------- open / close ---------- */

int cairn_wal_start(cairn_wal *w)
{
    /* Called by cairn_wal_open after recovery, write mode only: begin a new
     * segment after the recovered chain and start the background thread. */
    w->next_lsn = w->last_good_lsn + 1;
    w->written_lsn = w->durable_lsn = w->last_good_lsn;
    w->synced_upto = w->last_good_lsn;
    int rc = create_segment(w, w->next_lsn);
    if (rc != 0)
        return rc;
    w->last_sync_ms = mono_ms();
    if (pthread_create(&w->bg, NULL, bg_main, w) != 0)
        return CAIRN_ENOMEM;
    w->bg_started = true;
    return 0;
}

void cairn_wal_free(cairn_wal *w)
{
    if (!w)
        return;
    if (w->cur)
        cairn_file_close(w->cur);
    cairn_env_unlock(w->lock);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->trunc_mu);
    pthread_cond_destroy(&w->cv_ack);
    pthread_cond_destroy(&w->cv_bg);
    free(w->pend);
    free(w->spare);
    free(w->failed);
    free(w->cbs);
    free(w->segs);
    free(w->dir);
    free(w->archive_dir);
    free(w);
}

static int wal_close(cairn_wal *w, uint64_t covered)
{
    if (!w)
        return 0;
    int rc = 0;
    if (!w->read_only) {
        rc = cairn_wal_sync(w);
        pthread_mutex_lock(&w->mu);
        w->stop = true;
        pthread_cond_broadcast(&w->cv_bg);
        pthread_mutex_unlock(&w->mu);
        if (w->bg_started)
            pthread_join(w->bg, NULL);
        /* No other thread may use the handle now: seal the newest segment
         * (trim its preallocated tail) unless the log is broken. */
        pthread_mutex_lock(&w->mu);
        int sticky = w->sticky;
        uint64_t last = w->next_lsn - 1;
        bool clean = w->nfailed == 0;
        pthread_mutex_unlock(&w->mu);
        if (rc == 0 && !sticky && clean && covered && covered >= last &&
            w->cur && w->cur_records > 0 && w->cur_last_lsn == last) {
            /* Everything is kept elsewhere: start an empty segment (its
             * header carries the LSN chain on) and drop the others. A
             * failure here leaves a longer log, never a shorter one. */
            int src = seal_current(w);
            if (src == 0)
                src = create_segment(w, last + 1);
            if (src == 0)
                src = cairn_wal_truncate_before(w, last + 1);
            if (src < 0 && rc == 0)
                rc = src;
        }
        if (!sticky && w->cur && w->cur_records > 0) {
            int src = seal_current(w);
            if (rc == 0)
                rc = src;
        } else if (!sticky && w->cur) {
            /* No record: keep the file (its header carries the LSN chain)
             * but not its preallocated zeros. */
            uint64_t size = 0;
            int src = cairn_file_size(w->cur, &size);
            if (src == 0 && size != w->cur_off) {
                src = cairn_file_truncate(w->cur, w->cur_off);
                if (src == 0)
                    src = cairn_file_sync(w->cur, CAIRN_SYNC_DATA);
            }
            if (rc == 0)
                rc = src;
        }
        /* Callbacks still registered (their records failed) hear about it. */
        pthread_mutex_lock(&w->mu);
        fail_pending(w, CAIRN_ECLOSED);
        for (size_t i = 0; i < w->ncbs; i++) {
            int st = lsn_status(w, w->cbs[i].lsn, false);
            w->cbs[i].cb(w->cbs[i].arg, w->cbs[i].lsn,
                         st == 1 ? CAIRN_ECLOSED : st);
        }
        w->ncbs = 0;
        pthread_mutex_unlock(&w->mu);
    }
    cairn_wal_free(w);
    return rc;
}

int cairn_wal_close(cairn_wal *w)
{
    return wal_close(w, 0);
}

int cairn_wal_close_covered(cairn_wal *w, uint64_t covered_lsn)
{
    return wal_close(w, covered_lsn);
}
