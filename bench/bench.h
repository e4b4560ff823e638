/*
 * bench.h — shared declarations of the cairn-bench subcommands.
 *
 * cairn-bench (bench/cairn_bench.c) is one program with a table of
 * subcommands; each subcommand lives in its own file and is entered through
 * a cairn_bench_<name>_main(argc, argv) function whose argv[0] is the
 * subcommand's name (e.g. "engine"). Exit status: 0 when the run completed,
 * 1 when it failed (an engine reported an error or returned wrong data),
 * 2 on a usage error.
 *
 * The helpers below are tiny, static inline, and have no state: they may be
 * called from any thread.
 */
#ifndef CAIRN_BENCH_H
#define CAIRN_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* `cairn-bench engine`: Cairn side by side with RocksDB, LevelDB, LMDB
 * and SQLite (bench/bench_engine.c). */
int cairn_bench_engine_main(int argc, char **argv);

/* `cairn-bench ts`: the time-series benchmark (bench/bench_ts.c): the
 * codec part, chunk sizes next to zstd and codec speed; the engine part,
 * embedded ingest and range latency; the server part, the same through a
 * cairn-server it starts (bench/bench_ts_server.c). */
int cairn_bench_ts_main(int argc, char **argv);

/* `cairn-bench tiers`: the tiered-storage benchmark (bench/bench_tiers.c):
 * deduplicated large values (stored against logical bytes, beside RocksDB
 * with blob files and zstd of the distinct content) and read latency per
 * tier (row cache, block cache, local file, archive, blob file). */
int cairn_bench_tiers_main(int argc, char **argv);

/* Files (bench/bench_fs.c; main thread only: the walks keep their sums in
 * globals). */
void bench_rm_rf(const char *path);       /* rm -rf, errors printed */
int bench_mkdir_p(const char *path);      /* mkdir -p: 0 or -1 */
/* Allocated and apparent bytes of the regular files under dir. */
void bench_du(const char *dir, uint64_t *alloc, uint64_t *size);
/* Drops dir's files from the OS page cache (fsync, POSIX_FADV_DONTNEED);
 * returns the bytes still resident after, -1 on an error. */
int64_t bench_drop_cache(const char *dir);
/* This process's I/O (/proc/self/io, all threads): bytes handed to write
 * calls, page-cache pages dirtied for files (what goes to storage), and
 * those cancelled by truncation or deletion before writeback. */
typedef struct bench_io_counts {
    uint64_t wchar, write_bytes, cancelled;
} bench_io_counts;
bool bench_proc_io(bench_io_counts *c);

/* JSON output: a number (null when not finite), a string (quoted and
 * escaped). */
void bench_json_num(FILE *f, double v);
void bench_json_str(FILE *f, const char *s);

/* splitmix64's finalizer, and the generator built on it (a tiny one per
 * thread: *s is its state). */
static inline uint64_t bench_mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint64_t bench_rng_next(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ULL;
    return bench_mix64(*s);
}

/* Seconds on the monotonic clock (arbitrary origin). */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0..n) (the mean of the two middle values for even n; 0
 * for n == 0). v is left untouched. */
static inline double bench_median(const double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    double stackbuf[64];
    double *s = n <= 64 ? stackbuf : (double *)malloc(n * sizeof *s);
    if (s == NULL) { /* out of memory: a slow selection without a copy */
        for (size_t i = 0; i < n; i++) {
            size_t below = 0, equal = 0;
            for (size_t j = 0; j < n; j++) {
                below += v[j] < v[i];
                equal += v[j] == v[i];
            }
            if (below <= n / 2 && n / 2 < below + equal)
                return v[i]; /* the upper median */
        }
        return v[0];
    }
    memcpy(s, v, n * sizeof *s);
    qsort(s, n, sizeof *s, bench_cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
    if (s != stackbuf)
        free(s);
    return m;
}

/* A rate in a short human form: "987", "12.3k", "1.23M". buf gets at most
 * n bytes (16 is plenty); returns buf. */
static inline char *bench_fmt_rate(double r, char *buf, size_t n)
{
    if (r >= 1e9)
        snprintf(buf, n, "%.2fG", r / 1e9);
    else if (r >= 1e6)
        snprintf(buf, n, "%.2fM", r / 1e6);
    else if (r >= 1e3)
        snprintf(buf, n, "%.1fk", r / 1e3);
    else
        snprintf(buf, n, "%.0f", r);
    return buf;
}

#endif /* CAIRN_BENCH_H */
