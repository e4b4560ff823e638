/*
 * cairn_bench.c — Cairn's benchmarks (`cairn-bench`).
 *
 * What it is for: measuring Cairn next to the hardware, in the same run and
 * on the same disk, so every figure comes with the physical limit it is
 * judged against. Benchmarks live in one table (`commands` below): a new one
 * (kv, ts, server) is a function plus a row. Today: `cairn-bench wal`,
 * durable appends (group commit) and 1 MiB records vs. raw pwrite+fdatasync;
 * `engine` (bench_engine.c), the engine next to its peers; `ts`
 * (bench_ts.c), the time-series chunk codec next to zstd, embedded ingest
 * and queries, and the same through cairn-server.
 *
 * Invariants:
 *   - Each case runs in its own fresh subdirectory of DIR (raw-small,
 *     wal-w16, wal-large-w1, ...), emptied first and deleted after unless
 *     --keep. Deletion removes only the files directly inside those named
 *     subdirectories; it never recurses.
 *   - Raw baselines call pwrite/fdatasync directly (the disk, not the
 *     library). The reference is a plain loop on a growing file; the same
 *     loop on a preallocated file is shown too, since on ext4 growing a file
 *     costs a metadata write per fdatasync that the WAL avoids.
 *   - A WAL append counts once cairn_wal_append_sync() returned 0. After
 *     each case the log is closed, reopened read-only and replayed: it must
 *     hold exactly the acknowledged records, per writer and in order, or the
 *     benchmark reports data loss and exits 1.
 *   - Throughput = acknowledged work / time from the start signal until the
 *     last writer returned. Runs are interleaved (raw, WAL cases, raw, ...);
 *     reported figures are medians, ratios are computed from medians.
 *   - Results go to stdout (text, or one JSON object), progress and errors
 *     to stderr. Exit 0 whatever the verdicts; 1 error or data loss; 2 usage.
 *
 * Locking: the main thread owns all state except each writer's context
 * (counters, latency histogram), written only by its writer thread and read
 * by the main thread after pthread_join. Writers start together at a gate
 * (mutex + condvar + `go` flag) and stop on the atomic `stop` flag, set by
 * the main thread at the deadline or by a writer that failed. The WAL handle
 * is shared by the writers (it is thread-safe); only the main thread opens
 * and closes it, with no writer running.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cairn.h"
#include "env/env.h"
#include "wal/wal.h"

enum {
    EXIT_OK = 0,    /* ran (whatever the verdicts) */
    EXIT_ERROR = 1, /* I/O or library error, or data loss */
    EXIT_USAGE = 2, /* bad usage, unknown command */
};

static const char *progname = "cairn-bench";

/* ---------- small helpers ---------- */

static void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errmsg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleep until the CLOCK_MONOTONIC time `deadline` (ns). */
static void sleep_until_ns(uint64_t deadline)
{
    struct timespec ts = {(time_t)(deadline / 1000000000u),
                          (long)(deadline % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (n >= 1); NAN for n == 0. */
static double median(const double *v, size_t n)
{
    if (n == 0)
        return NAN;
    double *c = malloc(n * sizeof *c);
    if (!c)
        return v[0];
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    double m = n % 2 ? c[n / 2] : (c[n / 2 - 1] + c[n / 2]) / 2.0;
    free(c);
    return m;
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Remove a case directory: its regular files, then itself. Missing is fine.
 * Refuses (CAIRN_EINVAL) to go into a subdirectory. */
static int remove_case_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : cairn_errno_to_err(errno);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (errno = 0, e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = path_join(dir, e->d_name);
        if (!p) {
            rc = CAIRN_ENOMEM;
            break;
        }
        struct stat st;
        if (lstat(p, &st) != 0) {
            rc = cairn_errno_to_err(errno);
        } else if (S_ISDIR(st.st_mode)) {
            errmsg("refusing to delete %s: unexpected subdirectory", p);
            rc = CAIRN_EINVAL;
        } else if (unlink(p) != 0) {
            rc = cairn_errno_to_err(errno);
        }
        free(p);
    }
    if (rc == 0 && errno != 0)
        rc = cairn_errno_to_err(errno);
    closedir(d);
    if (rc == 0 && rmdir(dir) != 0 && errno != ENOENT)
        rc = cairn_errno_to_err(errno);
    if (rc != 0)
        errmsg("cannot delete %s: %s", dir, cairn_strerror(rc));
    return rc;
}

static const char *fs_name(unsigned long t)
{
    static const struct {
        unsigned long magic;
        const char *name;
    } names[] = {
        {0xEF53ul, "ext2/3/4"},   {0x58465342ul, "xfs"},
        {0x9123683Eul, "btrfs"},  {0x01021994ul, "tmpfs"},
        {0x794C7630ul, "overlayfs"}, {0x2FC12FC1ul, "zfs"},
        {0xF2F52010ul, "f2fs"},   {0x6969ul, "nfs"},
        {0x65735546ul, "fuse"},   {0xFF534D42ul, "cifs"},
        {0x858458F6ul, "ramfs"},  {0x4D44ul, "vfat"},
        {0x5346544Eul, "ntfs"},   {0x01021997ul, "9p"},
        {0x73717368ul, "squashfs"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].magic == t)
            return names[i].name;
    return "unknown";
}

/* ---------- latency histogram ----------
 * Log-linear buckets over nanoseconds: values below 64 exactly, above that
 * 32 buckets per power of two (about 3% resolution). 1920 counters. */

#define HIST_SUB 32u
#define HIST_BUCKETS (64u + 58u * HIST_SUB)

typedef struct hist {
    uint64_t n;
    uint64_t b[HIST_BUCKETS];
} hist;

static unsigned hist_index(uint64_t v)
{
    if (v < 64)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
    unsigned sub = (unsigned)(v >> (e - 5)) & (HIST_SUB - 1);
    return 64u + (e - 6) * HIST_SUB + sub;
}

/* Midpoint of bucket i, in ns. */
static double hist_value(unsigned i)
{
    if (i < 64)
        return (double)i;
    unsigned e = (i - 64) / HIST_SUB + 6, sub = (i - 64) % HIST_SUB;
    double lo = (double)((uint64_t)(HIST_SUB + sub) << (e - 5));
    double width = (double)(1ull << (e - 5));
    return lo + width / 2.0;
}

static void hist_add(hist *h, uint64_t ns)
{
    h->b[hist_index(ns)]++;
    h->n++;
}

static void hist_merge(hist *dst, const hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->n += src->n;
}

/* The q-quantile (0 < q <= 1) in microseconds; NAN if empty. */
static double hist_quantile_us(const hist *h, double q)
{
    if (h->n == 0)
        return NAN;
    double want = q * (double)h->n;
    uint64_t rank = (uint64_t)want; /* ceil, without libm */
    if ((double)rank < want)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank)
            return hist_value(i) / 1000.0;
    }
    return hist_value(HIST_BUCKETS - 1) / 1000.0;
}

/* ======================================================================
 * cairn-bench wal
 * ====================================================================== */

#define SMALL_RECORD 100u
#define LARGE_RECORD (1u << 20)
#define REC_TYPE 1u
#define MAX_WRITERS 1024
#define MAX_WRITER_CASES 32
#define GROUP_COMMIT_WRITERS 64
#define GROUP_COMMIT_TARGET 30.0 /* x raw fsync rate */
#define LARGE_TARGET 80.0        /* % of raw sequential */
#define MB 1e6
#define RAW_PREALLOC (64ull << 20) /* like the WAL's default segment */

typedef struct wal_cfg {
    const char *dir;
    bool json, quick, keep;
    double seconds;
    int runs;
    int writers[MAX_WRITER_CASES];
    int nwriters;
} wal_cfg;

/* One measurement (one case, one run). */
typedef struct sample {
    double seconds;      /* measured window */
    uint64_t ops;        /* raw: write+sync pairs; WAL: acknowledged appends */
    uint64_t bytes;      /* payload bytes acknowledged */
    uint64_t syncs;      /* fdatasyncs issued (raw: = ops; WAL: stats delta) */
    uint64_t group_commits;
    double rate;         /* ops/s (small) or MB/s (large) */
    double per_sync;     /* records per fdatasync */
    double p50_us, p99_us;
} sample;

/* All runs of one case. */
typedef struct series {
    const char *label; /* "raw small", "wal 16 writers", ... */
    char subdir[32];   /* under DIR */
    bool wal, large, prealloc;
    int writers;
    sample *runs;
    /* medians */
    double rate, per_sync, syncs, p50_us, p99_us;
} series;

/* ---------- raw baselines ---------- */

static int run_raw(const wal_cfg *cfg, const char *path, bool large,
                   bool prealloc, sample *out)
{
    size_t sz = large ? LARGE_RECORD : SMALL_RECORD;
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, sz) != 0)
        return CAIRN_ENOMEM;
    for (size_t i = 0; i < sz; i++)
        buf[i] = (uint8_t)(i * 131u + 7u);
    hist *h = calloc(1, sizeof *h);
    if (!h) {
        free(buf);
        return CAIRN_ENOMEM;
    }
    int rc = 0;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = cairn_errno_to_err(errno);
        errmsg("cannot create %s: %s", path, strerror(errno));
        free(buf);
        free(h);
        return rc;
    }
    uint64_t off = 0, ops = 0, allocated = 0;
    if (prealloc) {
        int e = posix_fallocate(fd, 0, (off_t)RAW_PREALLOC);
        if (e == 0 && fdatasync(fd) != 0)
            e = errno;
        if (e != 0) {
            rc = cairn_errno_to_err(e);
            errmsg("preallocating %s: %s", path, strerror(e));
            close(fd);
            free(buf);
            free(h);
            return rc;
        }
        allocated = RAW_PREALLOC;
    }
    uint64_t t0 = now_ns();
    uint64_t deadline = t0 + (uint64_t)(cfg->seconds * 1e9);
    uint64_t t = t0;
    while (t < deadline) {
        if (prealloc && off + sz > allocated) {
            /* Past the preallocated space: extend it, as the WAL does when
             * it starts a new segment (counted in the op's latency). */
            int e = posix_fallocate(fd, (off_t)allocated, (off_t)RAW_PREALLOC);
            if (e != 0) {
                rc = cairn_errno_to_err(e);
                errmsg("preallocating %s: %s", path, strerror(e));
                goto out;
            }
            allocated += RAW_PREALLOC;
        }
        size_t done = 0;
        while (done < sz) {
            ssize_t n = pwrite(fd, buf + done, sz - done, (off_t)(off + done));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                rc = n < 0 ? cairn_errno_to_err(errno) : CAIRN_EIO;
                errmsg("pwrite %s: %s", path,
                       n < 0 ? strerror(errno) : "wrote nothing");
                goto out;
            }
            done += (size_t)n;
        }
        if (fdatasync(fd) != 0) {
            rc = cairn_errno_to_err(errno);
            errmsg("fdatasync %s: %s", path, strerror(errno));
            goto out;
        }
        uint64_t t1 = now_ns();
        hist_add(h, t1 - t);
        t = t1;
        off += sz;
        ops++;
    }
out:
    if (close(fd) != 0 && rc == 0) {
        rc = cairn_errno_to_err(errno);
        errmsg("close %s: %s", path, strerror(errno));
    }
    if (rc == 0) {
        memset(out, 0, sizeof *out);
        out->seconds = (double)(t - t0) / 1e9;
        out->ops = ops;
        out->bytes = off;
        out->syncs = ops;
        out->per_sync = 1.0;
        out->rate = large ? (double)off / MB / out->seconds
                          : (double)ops / out->seconds;
        out->p50_us = hist_quantile_us(h, 0.50);
        out->p99_us = hist_quantile_us(h, 0.99);
    }
    free(buf);
    free(h);
    return rc;
}

/* ---------- WAL cases ---------- */

typedef struct writer_ctx {
    /* set by the main thread before start */
    struct wal_run *run;
    int id;
    /* owned by the writer thread until joined */
    uint8_t *buf;
    uint64_t acked;
    int err;
    hist h;
} writer_ctx;

typedef struct wal_run {
    cairn_wal *wal;
    size_t rec_size;
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    int ready;  /* gate_mu */
    bool go;    /* gate_mu */
    bool abort; /* gate_mu */
    pthread_cond_t ready_cv;
    atomic_bool stop;
} wal_run;

static void *writer_main(void *arg)
{
    writer_ctx *c = arg;
    wal_run *r = c->run;
    pthread_mutex_lock(&r->gate_mu);
    r->ready++;
    pthread_cond_signal(&r->ready_cv);
    while (!r->go && !r->abort)
        pthread_cond_wait(&r->gate_cv, &r->gate_mu);
    bool aborted = r->abort;
    pthread_mutex_unlock(&r->gate_mu);
    if (aborted)
        return NULL;
    uint64_t seq = 0;
    while (!atomic_load_explicit(&r->stop, memory_order_relaxed)) {
        /* Payload tag: writer id and per-writer sequence number, checked
         * again on replay. */
        uint64_t id = (uint64_t)c->id;
        memcpy(c->buf, &id, 8);
        memcpy(c->buf + 8, &seq, 8);
        uint64_t t0 = now_ns();
        int rc = cairn_wal_append_sync(r->wal, REC_TYPE, c->buf, r->rec_size,
                                       NULL);
        uint64_t t1 = now_ns();
        if (rc != 0) {
            c->err = rc;
            atomic_store_explicit(&r->stop, true, memory_order_relaxed);
            break;
        }
        hist_add(&c->h, t1 - t0);
        c->acked++;
        seq++;
    }
    return NULL;
}

/* Replay check: every record must carry (writer, seq) with seq the next
 * one expected from that writer. */
typedef struct replay_ctx {
    size_t rec_size;
    int nwriters;
    uint64_t *next_seq; /* per writer: records seen */
    uint64_t records;
    uint64_t prev_lsn;
    char problem[256];
} replay_ctx;

static int replay_count(void *arg, const cairn_wal_record *rec)
{
    replay_ctx *x = arg;
    x->records++;
    if (x->problem[0])
        return 0;
    uint64_t id = UINT64_MAX, seq = UINT64_MAX;
    if (rec->len >= 16) {
        memcpy(&id, rec->data, 8);
        memcpy(&seq, (const uint8_t *)rec->data + 8, 8);
    }
    if (rec->type != REC_TYPE || rec->len != x->rec_size) {
        snprintf(x->problem, sizeof x->problem,
                 "record LSN %" PRIu64 ": type %u, %zu bytes (expected type %u,"
                 " %zu bytes)",
                 rec->lsn, (unsigned)rec->type, rec->len, REC_TYPE,
                 x->rec_size);
    } else if (id >= (uint64_t)x->nwriters) {
        snprintf(x->problem, sizeof x->problem,
                 "record LSN %" PRIu64 ": unknown writer %" PRIu64, rec->lsn,
                 id);
    } else if (seq != x->next_seq[id]) {
        snprintf(x->problem, sizeof x->problem,
                 "record LSN %" PRIu64 ": writer %" PRIu64 " sequence %" PRIu64
                 ", expected %" PRIu64 " (a record is missing or repeated)",
                 rec->lsn, id, seq, x->next_seq[id]);
    } else if (x->prev_lsn && rec->lsn != x->prev_lsn + 1) {
        snprintf(x->problem, sizeof x->problem,
                 "record LSN %" PRIu64 " follows LSN %" PRIu64
                 " (LSN gap with no failed append)",
                 rec->lsn, x->prev_lsn);
    } else {
        x->next_seq[id]++;
    }
    x->prev_lsn = rec->lsn;
    return 0;
}

/* Reopen the closed log read-only and check it holds exactly the
 * acknowledged records. Returns 0, CAIRN_ECORRUPT on data loss, or the
 * open error. */
static int verify_wal(const char *dir, writer_ctx *ws, int n, size_t rec_size,
                      uint64_t acked)
{
    replay_ctx x = {.rec_size = rec_size, .nwriters = n};
    x.next_seq = calloc((size_t)n, sizeof *x.next_seq);
    if (!x.next_seq)
        return CAIRN_ENOMEM;
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.read_only = true;
    o.replay = replay_count;
    o.replay_arg = &x;
    o.replay_from = 0;
    cairn_wal_recovery info;
    cairn_wal *w = NULL;
    int rc = cairn_wal_open(dir, &o, &w, &info);
    if (rc != 0) {
        errmsg("reopening %s read-only failed: %s%s%s", dir,
               cairn_strerror(rc), info.message[0] ? ": " : "", info.message);
        free(x.next_seq);
        return rc;
    }
    cairn_wal_close(w);
    if (x.problem[0]) {
        errmsg("DATA LOSS in %s: %s", dir, x.problem);
        rc = CAIRN_ECORRUPT;
    } else if (x.records != acked) {
        errmsg("DATA LOSS in %s: %" PRIu64 " appends acknowledged, %" PRIu64
               " records recovered",
               dir, acked, x.records);
        rc = CAIRN_ECORRUPT;
    } else {
        for (int i = 0; i < n; i++) {
            if (x.next_seq[i] != ws[i].acked) {
                errmsg("DATA LOSS in %s: writer %d had %" PRIu64
                       " appends acknowledged, %" PRIu64 " recovered",
                       dir, i, ws[i].acked, x.next_seq[i]);
                rc = CAIRN_ECORRUPT;
                break;
            }
        }
    }
    if (rc == 0 && info.torn_bytes)
        progress("note: %s: recovery found a torn tail of %" PRIu64
                 " bytes after a clean close\n",
                 dir, info.torn_bytes);
    free(x.next_seq);
    return rc;
}

static int run_wal(const wal_cfg *cfg, const char *dir, int nw, size_t rec_size,
                   sample *out)
{
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.sync_mode = CAIRN_WAL_SYNC_ALWAYS;
    o.preallocate = true;
    cairn_wal_recovery info;
    cairn_wal *wal = NULL;
    int rc = cairn_wal_open(dir, &o, &wal, &info);
    if (rc != 0) {
        errmsg("cannot open WAL in %s: %s%s%s", dir, cairn_strerror(rc),
               info.message[0] ? ": " : "", info.message);
        return rc;
    }
    if (info.records != 0) {
        errmsg("WAL in %s is not fresh (%" PRIu64 " records)", dir,
               info.records);
        cairn_wal_close(wal);
        return CAIRN_EEXIST;
    }

    wal_run r = {.wal = wal, .rec_size = rec_size};
    atomic_init(&r.stop, false);
    pthread_mutex_init(&r.gate_mu, NULL);
    pthread_cond_init(&r.gate_cv, NULL);
    pthread_cond_init(&r.ready_cv, NULL);
    writer_ctx *ws = calloc((size_t)nw, sizeof *ws);
    pthread_t *tids = calloc((size_t)nw, sizeof *tids);
    int started = 0;
    if (!ws || !tids)
        rc = CAIRN_ENOMEM;
    for (int i = 0; rc == 0 && i < nw; i++) {
        ws[i].run = &r;
        ws[i].id = i;
        ws[i].buf = malloc(rec_size);
        if (!ws[i].buf) {
            rc = CAIRN_ENOMEM;
            break;
        }
        for (size_t j = 0; j < rec_size; j++)
            ws[i].buf[j] = (uint8_t)(j * 31u + (size_t)i);
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 1u << 20);
    for (int i = 0; rc == 0 && i < nw; i++) {
        int e = pthread_create(&tids[i], &attr, writer_main, &ws[i]);
        if (e != 0) {
            errmsg("cannot start writer thread %d: %s", i, strerror(e));
            rc = CAIRN_ENOMEM;
            break;
        }
        started++;
    }
    pthread_attr_destroy(&attr);

    /* Wait until every writer sits at the gate, then open it. */
    cairn_wal_stats s0 = {0}, s1 = {0};
    uint64_t t0 = 0, t1 = 0;
    pthread_mutex_lock(&r.gate_mu);
    while (rc == 0 && r.ready < started)
        pthread_cond_wait(&r.ready_cv, &r.gate_mu);
    if (rc == 0) {
        cairn_wal_get_stats(wal, &s0);
        t0 = now_ns();
        r.go = true;
    } else {
        r.abort = true;
    }
    pthread_cond_broadcast(&r.gate_cv);
    pthread_mutex_unlock(&r.gate_mu);

    if (rc == 0) {
        uint64_t deadline = t0 + (uint64_t)(cfg->seconds * 1e9);
        /* Sleep in slices so a writer's error ends the case early. */
        while (!atomic_load_explicit(&r.stop, memory_order_relaxed)) {
            uint64_t now = now_ns();
            if (now >= deadline)
                break;
            uint64_t next = now + 50000000u;
            sleep_until_ns(next < deadline ? next : deadline);
        }
        atomic_store_explicit(&r.stop, true, memory_order_relaxed);
    }
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    t1 = now_ns();
    cairn_wal_get_stats(wal, &s1);

    hist *h = calloc(1, sizeof *h);
    uint64_t acked = 0;
    if (!h && rc == 0)
        rc = CAIRN_ENOMEM;
    for (int i = 0; i < started; i++) {
        if (ws[i].err && rc == 0) {
            rc = ws[i].err;
            errmsg("writer %d: cairn_wal_append_sync failed: %s", i,
                   cairn_strerror(rc));
        }
        acked += ws[i].acked;
        if (h)
            hist_merge(h, &ws[i].h);
    }
    int crc = cairn_wal_close(wal);
    if (crc != 0) {
        errmsg("cairn_wal_close(%s): %s", dir, cairn_strerror(crc));
        if (rc == 0)
            rc = crc;
    }
    if (rc == 0 && ws)
        rc = verify_wal(dir, ws, nw, rec_size, acked);
    if (rc == 0) {
        memset(out, 0, sizeof *out);
        out->seconds = (double)(t1 - t0) / 1e9;
        out->ops = acked;
        out->bytes = acked * rec_size;
        out->syncs = s1.syncs - s0.syncs;
        out->group_commits = s1.group_commits - s0.group_commits;
        out->per_sync = out->syncs ? (double)acked / (double)out->syncs : NAN;
        out->rate = rec_size >= LARGE_RECORD
                        ? (double)out->bytes / MB / out->seconds
                        : (double)acked / out->seconds;
        out->p50_us = hist_quantile_us(h, 0.50);
        out->p99_us = hist_quantile_us(h, 0.99);
    }
    free(h);
    for (int i = 0; ws && i < nw; i++)
        free(ws[i].buf);
    free(ws);
    free(tids);
    pthread_mutex_destroy(&r.gate_mu);
    pthread_cond_destroy(&r.gate_cv);
    pthread_cond_destroy(&r.ready_cv);
    return rc;
}

/* Run one case once in its fresh subdirectory. */
static int run_case(const wal_cfg *cfg, series *s, int run)
{
    progress("running %s, run %d/%d...", s->label, run + 1, cfg->runs);
    char *dir = path_join(cfg->dir, s->subdir);
    if (!dir)
        return CAIRN_ENOMEM;
    int rc = remove_case_dir(dir);
    if (rc == 0 && mkdir(dir, 0755) != 0) {
        rc = cairn_errno_to_err(errno);
        errmsg("cannot create %s: %s", dir, strerror(errno));
    }
    sample *smp = &s->runs[run];
    if (rc == 0) {
        if (!s->wal) {
            char *file = path_join(dir, "raw.dat");
            rc = file ? run_raw(cfg, file, s->large, s->prealloc, smp)
                      : CAIRN_ENOMEM;
            free(file);
        } else {
            rc = run_wal(cfg, dir, s->writers,
                         s->large ? LARGE_RECORD : SMALL_RECORD, smp);
        }
    }
    if (rc == 0) {
        if (s->large)
            progress(" %.1f MB/s\n", smp->rate);
        else if (s->wal)
            progress(" %.0f appends/s, %.1f records/sync\n", smp->rate,
                     smp->per_sync);
        else
            progress(" %.0f fsyncs/s\n", smp->rate);
    } else {
        progress(" failed\n");
    }
    /* With an error the directory stays, for inspection. */
    if (rc == 0 && !cfg->keep)
        rc = remove_case_dir(dir);
    free(dir);
    return rc;
}

/* Median of one field over the runs of a series. */
static double field_median(const series *s, int runs, size_t off)
{
    double *v = malloc((size_t)runs * sizeof *v);
    if (!v)
        return NAN;
    for (int i = 0; i < runs; i++) {
        const char *base = (const char *)&s->runs[i] + off;
        if (off == offsetof(sample, syncs)) {
            uint64_t u;
            memcpy(&u, base, sizeof u);
            v[i] = (double)u;
        } else {
            memcpy(&v[i], base, sizeof v[i]);
        }
    }
    double m = median(v, (size_t)runs);
    free(v);
    return m;
}

static void series_medians(series *s, int runs)
{
    s->rate = field_median(s, runs, offsetof(sample, rate));
    s->per_sync = field_median(s, runs, offsetof(sample, per_sync));
    s->syncs = field_median(s, runs, offsetof(sample, syncs));
    s->p50_us = field_median(s, runs, offsetof(sample, p50_us));
    s->p99_us = field_median(s, runs, offsetof(sample, p99_us));
}

/* ---------- output ---------- */


static double ratio(double a, double b) { return b > 0 ? a / b : NAN; }

/* One run of a series as a JSON object; raw_rate is the same run's raw
 * baseline (for the per-run ratio), or NAN. */
static void json_sample(FILE *f, const series *s, const sample *x,
                        double raw_rate)
{
    fputc('{', f);
    if (s->large) {
        fputs("\"mb_per_s\":", f);
        bench_json_num(f, x->rate);
    } else {
        fputs(s->wal ? "\"appends_per_s\":" : "\"ops_per_s\":", f);
        bench_json_num(f, x->rate);
    }
    fprintf(f, ",\"ops\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"seconds\":",
            x->ops, x->bytes);
    bench_json_num(f, x->seconds);
    if (s->wal) {
        fprintf(f, ",\"syncs\":%" PRIu64 ",\"group_commits\":%" PRIu64
                   ",\"records_per_sync\":",
                x->syncs, x->group_commits);
        bench_json_num(f, x->per_sync);
        fputs(s->large ? ",\"percent_of_raw_same_run\":"
                       : ",\"ratio_to_raw_same_run\":",
              f);
        bench_json_num(f, s->large ? 100.0 * ratio(x->rate, raw_rate)
                             : ratio(x->rate, raw_rate));
    }
    fputs(",\"p50_us\":", f);
    bench_json_num(f, x->p50_us);
    fputs(",\"p99_us\":", f);
    bench_json_num(f, x->p99_us);
    fputc('}', f);
}

static void json_series(FILE *f, const series *s, int runs,
                        const series *raw, const series *raw_pre)
{
    fputc('{', f);
    if (s->wal)
        fprintf(f, "\"writers\":%d,", s->writers);
    fputs("\"median\":{", f);
    fputs(s->large ? "\"mb_per_s\":"
                   : (s->wal ? "\"appends_per_s\":" : "\"ops_per_s\":"),
          f);
    bench_json_num(f, s->rate);
    if (s->wal) {
        fputs(",\"syncs\":", f);
        bench_json_num(f, s->syncs);
        fputs(",\"records_per_sync\":", f);
        bench_json_num(f, s->per_sync);
        if (s->large) {
            fputs(",\"percent_of_raw\":", f);
            bench_json_num(f, 100.0 * ratio(s->rate, raw->rate));
        } else {
            fputs(",\"ratio_to_raw\":", f);
            bench_json_num(f, ratio(s->rate, raw->rate));
            if (raw_pre) {
                fputs(",\"ratio_to_raw_prealloc\":", f);
                bench_json_num(f, ratio(s->rate, raw_pre->rate));
            }
        }
    }
    fputs(",\"p50_us\":", f);
    bench_json_num(f, s->p50_us);
    fputs(",\"p99_us\":", f);
    bench_json_num(f, s->p99_us);
    fputs("},\"runs\":[", f);
    for (int i = 0; i < runs; i++) {
        if (i)
            fputc(',', f);
        json_sample(f, s, &s->runs[i], raw->runs[i].rate);
    }
    fputs("]}", f);
}

/* Everything the report needs. The series pointers point into cases. */
typedef struct wal_results {
    const wal_cfg *cfg;
    const char *fsname, *ftype_hex;
    series *cases;
    int ncases;
    const series *raw_small, *raw_pre, *wal_small, *raw_large, *wal_large;
    int nlarge;
    /* verdicts, from medians */
    const series *gc; /* the 64-writer case, NULL if not measured */
    double gc_ratio, gc_ratio_pre, large_pct;
    bool gc_pass, large_pass;
} wal_results;

static void compute_verdicts(wal_results *r)
{
    r->gc = NULL;
    for (int i = 0; i < r->cfg->nwriters; i++)
        if (r->wal_small[i].writers == GROUP_COMMIT_WRITERS)
            r->gc = &r->wal_small[i];
    r->gc_ratio = r->gc ? ratio(r->gc->rate, r->raw_small->rate) : NAN;
    r->gc_ratio_pre = r->gc ? ratio(r->gc->rate, r->raw_pre->rate) : NAN;
    r->gc_pass = r->gc && r->gc_ratio >= GROUP_COMMIT_TARGET;
    r->large_pct = 100.0 * ratio(r->wal_large[0].rate, r->raw_large->rate);
    r->large_pass = r->large_pct >= LARGE_TARGET;
}

static void print_json(FILE *out, const wal_results *r)
{
    const wal_cfg *cfg = r->cfg;
    fputs("{\"benchmark\":\"wal\",\"cairn_version\":", out);
    bench_json_str(out, cairn_version_string());
    fputs(",\"dir\":", out);
    bench_json_str(out, cfg->dir);
    fputs(",\"filesystem\":{\"name\":", out);
    bench_json_str(out, r->fsname);
    fputs(",\"f_type\":", out);
    bench_json_str(out, r->ftype_hex);
    fputs("},\"seconds_per_case\":", out);
    bench_json_num(out, cfg->seconds);
    fprintf(out,
            ",\"runs\":%d,\"quick\":%s,\"small_record_bytes\":%u,"
            "\"large_record_bytes\":%u,\"sync_mode\":\"always\","
            "\"preallocate\":true",
            cfg->runs, cfg->quick ? "true" : "false", SMALL_RECORD,
            LARGE_RECORD);
    fputs(",\"raw_small\":", out);
    json_series(out, r->raw_small, cfg->runs, r->raw_small, NULL);
    fputs(",\"raw_small_prealloc\":", out);
    json_series(out, r->raw_pre, cfg->runs, r->raw_small, NULL);
    fputs(",\"wal_small\":[", out);
    for (int i = 0; i < cfg->nwriters; i++) {
        if (i)
            fputc(',', out);
        json_series(out, &r->wal_small[i], cfg->runs, r->raw_small,
                    r->raw_pre);
    }
    fputs("],\"raw_large\":", out);
    json_series(out, r->raw_large, cfg->runs, r->raw_large, NULL);
    fputs(",\"wal_large\":[", out);
    for (int i = 0; i < r->nlarge; i++) {
        if (i)
            fputc(',', out);
        json_series(out, &r->wal_large[i], cfg->runs, r->raw_large, NULL);
    }
    fprintf(out, "],\"verdicts\":{\"group_commit\":{\"writers\":%d,"
                 "\"ratio\":",
            GROUP_COMMIT_WRITERS);
    bench_json_num(out, r->gc_ratio);
    fputs(",\"ratio_to_raw_prealloc\":", out);
    bench_json_num(out, r->gc_ratio_pre);
    fputs(",\"target\":", out);
    bench_json_num(out, GROUP_COMMIT_TARGET);
    fprintf(out, ",\"pass\":%s},",
            r->gc ? (r->gc_pass ? "true" : "false") : "null");
    fputs("\"large_records\":{\"writers\":1,\"percent\":", out);
    bench_json_num(out, r->large_pct);
    fputs(",\"target\":", out);
    bench_json_num(out, LARGE_TARGET);
    fprintf(out, ",\"pass\":%s}}}\n", r->large_pass ? "true" : "false");
}

static void print_human(FILE *out, const wal_results *r)
{
    const wal_cfg *cfg = r->cfg;
    const series *raw = r->raw_small, *pre = r->raw_pre, *rl = r->raw_large;
    fputs("\nsmall records (100 B payload), every append waits for "
          "fdatasync\n",
          out);
    fprintf(out, "  %-20s %9s %8s %8s %8s %8s %9s %9s\n", "case", "ops/s",
            "x raw", "x pre", "fsyncs", "rec/sync", "p50 us", "p99 us");
    fprintf(out, "  %-20s %9.0f %7.2fx %7.2fx %8.0f %8s %9.1f %9.1f\n",
            "raw fsync", raw->rate, 1.0, ratio(raw->rate, pre->rate),
            raw->syncs, "1", raw->p50_us, raw->p99_us);
    fprintf(out, "  %-20s %9.0f %7.2fx %7.2fx %8.0f %8s %9.1f %9.1f\n",
            "raw fsync prealloc", pre->rate, ratio(pre->rate, raw->rate), 1.0,
            pre->syncs, "1", pre->p50_us, pre->p99_us);
    for (int i = 0; i < cfg->nwriters; i++) {
        const series *s = &r->wal_small[i];
        fprintf(out, "  %-20s %9.0f %7.2fx %7.2fx %8.0f %8.1f %9.1f %9.1f\n",
                s->label, s->rate, ratio(s->rate, raw->rate),
                ratio(s->rate, pre->rate), s->syncs, s->per_sync, s->p50_us,
                s->p99_us);
    }
    fputs("  (raw fsync: the plain loop on a growing file; prealloc: the same"
          " loop on a\n   file preallocated like a WAL segment. x raw / x pre:"
          " ratio to each.)\n",
          out);
    fputs("\nlarge records (1 MiB payload), every append waits for "
          "fdatasync\n",
          out);
    fprintf(out, "  %-20s %9s %8s %8s %8s %8s %9s %9s\n", "case", "MB/s",
            "% raw", "", "fsyncs", "rec/sync", "p50 us", "p99 us");
    fprintf(out, "  %-20s %9.1f %7.0f%% %8s %8.0f %8s %9.1f %9.1f\n",
            "raw sequential", rl->rate, 100.0, "", rl->syncs, "1", rl->p50_us,
            rl->p99_us);
    for (int i = 0; i < r->nlarge; i++) {
        const series *s = &r->wal_large[i];
        fprintf(out, "  %-20s %9.1f %7.0f%% %8s %8.0f %8.2f %9.1f %9.1f\n",
                s->label, s->rate, 100.0 * ratio(s->rate, rl->rate), "",
                s->syncs, s->per_sync, s->p50_us, s->p99_us);
    }
    if (cfg->runs > 1) {
        fputs("\nper run (ops/s for small records, MB/s for large):\n", out);
        for (int i = 0; i < r->ncases; i++) {
            fprintf(out, "  %-20s", r->cases[i].label);
            for (int k = 0; k < cfg->runs; k++)
                fprintf(out, " %10.1f", r->cases[i].runs[k].rate);
            fputc('\n', out);
        }
    }
    fputc('\n', out);
    if (r->gc)
        fprintf(out,
                "group commit: %d writers = %.1f\u00d7 raw fsync rate "
                "(target >= %.0f\u00d7): %s\n",
                GROUP_COMMIT_WRITERS, r->gc_ratio, GROUP_COMMIT_TARGET,
                r->gc_pass ? "PASS" : "FAIL");
    else
        fprintf(out,
                "group commit: not measured (no %d-writer case in --writers)\n",
                GROUP_COMMIT_WRITERS);
    fprintf(out,
            "large records: 1 writer = %.0f%% of raw sequential "
            "(target >= %.0f%%): %s\n",
            r->large_pct, LARGE_TARGET, r->large_pass ? "PASS" : "FAIL");
    if (r->gc)
        fprintf(out,
                "  (for reference: %d writers = %.1f\u00d7 the preallocated "
                "raw fsync rate)\n",
                GROUP_COMMIT_WRITERS, r->gc_ratio_pre);
}

/* ---------- the command ---------- */

static const char wal_usage[] =
    "usage: cairn-bench wal [--dir DIR] [--json] [--seconds S] [--quick]\n"
    "                       [--keep] [--writers LIST] [--runs N]\n"
    "\n"
    "Durable WAL appends next to the raw disk, same disk, same run:\n"
    "  raw small   pwrite 100 B + fdatasync loop, one thread (the raw fsync"
    " rate);\n"
    "              also on a preallocated file, for reference\n"
    "  wal small   W threads looping cairn_wal_append_sync(100 B), sync mode\n"
    "              ALWAYS, for each W in LIST\n"
    "  raw large   write 1 MiB + fdatasync loop, one thread\n"
    "  wal large   cairn_wal_append_sync(1 MiB), 1 and 4 writers\n"
    "Each case runs N times, interleaved; figures are medians. After each WAL\n"
    "case the log is reopened read-only and must hold exactly the\n"
    "acknowledged records, else the benchmark fails (exit 1).\n"
    "\n"
    "  --dir DIR       where to work (default ./cairn-bench-data; created if\n"
    "                  missing); each case uses a fresh subdirectory\n"
    "  --seconds S     seconds per case and run (default 2; --quick 0.3)\n"
    "  --runs N        runs per case (default 3; --quick 1)\n"
    "  --writers LIST  writer counts for small records (default 1,4,16,64)\n"
    "  --quick         short run (0.3 s per case, 1 run: about 3 s of"
    " measurement)\n"
    "  --keep          keep the case directories (DIR/wal-w1, ...) for\n"
    "                  `cairn wal verify`\n"
    "  --json          print one JSON object instead of the tables\n"
    "Exit status: 0 ran (whatever the verdicts), 1 error or data loss,\n"
    "2 bad usage.\n";

static int parse_writers(const char *s, wal_cfg *cfg)
{
    cfg->nwriters = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 1 || v > MAX_WRITERS ||
            (*end != ',' && *end != '\0'))
            return -1;
        if (cfg->nwriters == MAX_WRITER_CASES)
            return -1;
        cfg->writers[cfg->nwriters++] = (int)v;
        p = *end == ',' ? end + 1 : end;
        if (*end == ',' && *p == '\0')
            return -1;
    }
    return cfg->nwriters > 0 ? 0 : -1;
}

/* Returns the option's value for "--name VALUE" or "--name=VALUE", advancing
 * *i. *matched says whether argv[*i] was this option; the value is NULL
 * when it is missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *name,
                             bool *matched)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    *matched = false;
    if (strncmp(a, name, n) != 0)
        return NULL;
    if (a[n] == '=') {
        *matched = true;
        return a + n + 1;
    }
    if (a[n] != '\0')
        return NULL;
    *matched = true;
    if (*i + 1 >= argc)
        return NULL;
    return argv[++*i];
}

static int cmd_wal(int argc, char **argv)
{
    wal_cfg cfg = {.dir = "./cairn-bench-data"};
    double seconds = -1;
    int runs = -1;
    bool writers_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        bool m;
        if (strcmp(a, "--json") == 0) {
            cfg.json = true;
        } else if (strcmp(a, "--quick") == 0) {
            cfg.quick = true;
        } else if (strcmp(a, "--keep") == 0) {
            cfg.keep = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(wal_usage, stdout);
            return EXIT_OK;
        } else if ((v = opt_value(argc, argv, &i, "--dir", &m)) || m) {
            if (!v || !*v) {
                errmsg("wal: --dir needs a directory");
                return EXIT_USAGE;
            }
            cfg.dir = v;
        } else if ((v = opt_value(argc, argv, &i, "--seconds", &m)) || m) {
            char *end;
            seconds = v ? strtod(v, &end) : -1;
            if (!v || end == v || *end || !(seconds > 0) || seconds > 86400) {
                errmsg("wal: --seconds needs a number of seconds in (0, 86400]");
                return EXIT_USAGE;
            }
        } else if ((v = opt_value(argc, argv, &i, "--runs", &m)) || m) {
            char *end;
            long n = v ? strtol(v, &end, 10) : -1;
            if (!v || end == v || *end || n < 1 || n > 1000) {
                errmsg("wal: --runs needs a count in 1..1000");
                return EXIT_USAGE;
            }
            runs = (int)n;
        } else if ((v = opt_value(argc, argv, &i, "--writers", &m)) || m) {
            if (!v || parse_writers(v, &cfg) != 0) {
                errmsg("wal: --writers needs a comma-separated list of counts"
                       " in 1..%d (at most %d)",
                       MAX_WRITERS, MAX_WRITER_CASES);
                return EXIT_USAGE;
            }
            writers_set = true;
        } else {
            errmsg("wal: unknown option '%s' (try '%s wal --help')", a,
                   progname);
            return EXIT_USAGE;
        }
    }
    cfg.seconds = seconds > 0 ? seconds : (cfg.quick ? 0.3 : 2.0);
    cfg.runs = runs > 0 ? runs : (cfg.quick ? 1 : 3);
    if (!writers_set) {
        static const int def[] = {1, 4, 16, 64};
        cfg.nwriters = 4;
        memcpy(cfg.writers, def, sizeof def);
    }

    /* The working directory and its file system. */
    int rc = cairn_env_mkdir_p(cairn_env_posix(), cfg.dir);
    if (rc != 0) {
        errmsg("cannot create %s: %s", cfg.dir, cairn_strerror(rc));
        return EXIT_ERROR;
    }
    struct statfs sfs;
    if (statfs(cfg.dir, &sfs) != 0) {
        errmsg("statfs %s: %s", cfg.dir, strerror(errno));
        return EXIT_ERROR;
    }
    unsigned long ftype = (unsigned long)sfs.f_type & 0xFFFFFFFFul;
    char ftype_hex[16];
    snprintf(ftype_hex, sizeof ftype_hex, "0x%lx", ftype);
    const char *fsname = fs_name(ftype);
    FILE *out = stdout;
    if (!cfg.json) {
        fprintf(out, "cairn-bench wal (cairn %s)\n", cairn_version_string());
        fprintf(out, "dir: %s\nfilesystem: %s (f_type %s)\n", cfg.dir, fsname,
                ftype_hex);
        fprintf(out,
                "%d run%s x %.2f s per case, interleaved; figures are medians"
                "\n",
                cfg.runs, cfg.runs == 1 ? "" : "s", cfg.seconds);
        if (ftype == 0x01021994ul || ftype == 0x858458F6ul)
            fprintf(out, "warning: %s keeps data in memory; fdatasync is "
                         "nearly free there and the figures say little\n",
                    fsname);
        fflush(out);
    }
    progress("cairn-bench wal: dir %s, filesystem %s (f_type %s)\n", cfg.dir,
             fsname, ftype_hex);

    /* The cases, in the order each run goes through them. */
    int ncases = 3 + cfg.nwriters + 2;
    series *cases = calloc((size_t)ncases, sizeof *cases);
    char (*labels)[40] = calloc((size_t)ncases, sizeof *labels);
    if (!cases || !labels) {
        free(cases);
        free(labels);
        errmsg("out of memory");
        return EXIT_ERROR;
    }
    int k = 0;
    series *raw_small = &cases[k++];
    raw_small->label = "raw small";
    snprintf(raw_small->subdir, sizeof raw_small->subdir, "raw-small");
    series *raw_pre = &cases[k++];
    raw_pre->label = "raw small prealloc";
    raw_pre->prealloc = true;
    snprintf(raw_pre->subdir, sizeof raw_pre->subdir, "raw-small-prealloc");
    series *wal_small = &cases[k];
    for (int i = 0; i < cfg.nwriters; i++, k++) {
        series *s = &cases[k];
        s->wal = true;
        s->writers = cfg.writers[i];
        snprintf(labels[k], sizeof labels[k], "wal %d writer%s", s->writers,
                 s->writers == 1 ? "" : "s");
        s->label = labels[k];
        snprintf(s->subdir, sizeof s->subdir, "wal-w%d", s->writers);
    }
    series *raw_large = &cases[k++];
    raw_large->label = "raw large";
    raw_large->large = true;
    snprintf(raw_large->subdir, sizeof raw_large->subdir, "raw-large");
    series *wal_large = &cases[k];
    static const int large_writers[2] = {1, 4};
    for (int i = 0; i < 2; i++, k++) {
        series *s = &cases[k];
        s->wal = s->large = true;
        s->writers = large_writers[i];
        snprintf(labels[k], sizeof labels[k], "wal large %d writer%s",
                 s->writers, s->writers == 1 ? "" : "s");
        s->label = labels[k];
        snprintf(s->subdir, sizeof s->subdir, "wal-large-w%d", s->writers);
    }
    rc = 0;
    for (int i = 0; i < ncases && rc == 0; i++) {
        cases[i].runs = calloc((size_t)cfg.runs, sizeof *cases[i].runs);
        if (!cases[i].runs)
            rc = CAIRN_ENOMEM;
    }
    /* A repeated writer count would share a subdirectory: harmless, since
     * each case empties it first. */

    for (int run = 0; run < cfg.runs && rc == 0; run++)
        for (int i = 0; i < ncases && rc == 0; i++)
            rc = run_case(&cfg, &cases[i], run);

    int status = EXIT_OK;
    if (rc != 0) {
        if (rc == CAIRN_ECORRUPT)
            errmsg("wal benchmark failed: the log did not give back exactly "
                   "the acknowledged records (see above)");
        else
            errmsg("wal benchmark failed: %s", cairn_strerror(rc));
        status = EXIT_ERROR;
        goto done;
    }
    for (int i = 0; i < ncases; i++)
        series_medians(&cases[i], cfg.runs);

    wal_results res = {
        .cfg = &cfg,
        .fsname = fsname,
        .ftype_hex = ftype_hex,
        .cases = cases,
        .ncases = ncases,
        .raw_small = raw_small,
        .raw_pre = raw_pre,
        .wal_small = wal_small,
        .raw_large = raw_large,
        .wal_large = wal_large,
        .nlarge = 2,
    };
    compute_verdicts(&res);
    if (cfg.json)
        print_json(out, &res);
    else
        print_human(out, &res);
    if (fflush(out) != 0 || ferror(out)) {
        errmsg("cannot write the results: %s", strerror(errno));
        status = EXIT_ERROR;
    }

done:
    for (int i = 0; i < ncases; i++)
        free(cases[i].runs);
    free(cases);
    free(labels);
    /* DIR itself stays: it may be the user's own directory. */
    return status;
}

/* ======================================================================
 * the command table
 * ====================================================================== */

typedef struct command {
    const char *name;
    const char *args;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *usage;                 /* detailed help, or NULL */
} command;

static int cmd_help(int argc, char **argv);

static const command commands[] = {
    {"wal", "[--dir DIR] [--json] [--seconds S] [--quick] [--keep] "
            "[--writers LIST] [--runs N]",
     "durable WAL appends and large records vs. raw write+fdatasync", cmd_wal,
     wal_usage},
    {"engine", "[--dir DIR] [--json] [--keys N] [--quick] [--runs N] "
               "[--engines LIST] [--workloads LIST] [--duration S] "
               "[--plot FILE | --no-plot] [--keep]",
     "transactional engine vs. RocksDB, LevelDB, LMDB and SQLite: fills, "
     "overwrite, warm and cold random reads, scans, seeks, synced fills, "
     "YCSB A/B/C/F, read-modify-write, durable commits; size and "
     "amplification; a chart",
     cairn_bench_engine_main, NULL},
    {"ts", "[--json] [--quick] [--tsdata PATH] [--chunk-size BYTES] "
           "[--runs N] [--seed N] [--sets LIST] [--parts LIST] "
           "[--server-bin PATH]",
     "time series: the chunk codec's bytes per point (appendable, sealed) "
     "on real machine metrics, a random walk and counters, next to zstd -19 "
     "and -3 of the plain points; encode and decode speed; embedded ingest "
     "and range latency; TS.MADD ingest and TS.RANGE / TS.MRANGE latency "
     "through a cairn-server it starts, beside the embedded figures",
     cairn_bench_ts_main, NULL},
    {"tiers", "[--dir DIR] [--json] [--quick] [--mb N] [--parts LIST] "
              "[--engines LIST] [--reads N] [--keep]",
     "tiered storage: 16 KiB values of which half repeat, stored bytes "
     "against logical and against zstd of the distinct content, beside "
     "RocksDB with blob files; read latency p50/p99 of 4 KiB values per "
     "tier (row cache, block cache, local file, archive, blob file) and "
     "the files' size local and archived",
     cairn_bench_tiers_main, NULL},
    {"help", "[COMMAND]", "print this help, or a command's", cmd_help, NULL},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: %s COMMAND [OPTIONS]\n\nbenchmarks:\n", progname);
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %s %s %s\n      %s\n", progname, commands[i].name,
                commands[i].args, commands[i].summary);
    fprintf(f, "\n'%s help COMMAND' or '%s COMMAND --help' for details.\n",
            progname, progname);
}

static int cmd_help(int argc, char **argv)
{
    if (argc >= 2) {
        const command *c = find_command(argv[1]);
        if (!c) {
            errmsg("unknown command '%s'", argv[1]);
            usage(stderr);
            return EXIT_USAGE;
        }
        if (c->usage)
            fputs(c->usage, stdout);
        else
            usage(stdout);
        return EXIT_OK;
    }
    usage(stdout);
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return EXIT_OK;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
        return cmd_help(1, argv + 1);
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s %s\n", progname, cairn_version_string());
        return EXIT_OK;
    }
    const command *c = find_command(argv[1]);
    if (!c) {
        errmsg("unknown command '%s'", argv[1]);
        usage(stderr);
        return EXIT_USAGE;
    }
    return c->run(argc - 1, argv + 1);
}
