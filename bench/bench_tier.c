/*
 * bench_tier.c — `cairn-bench tier`: what the archive tier costs and saves.
 *
 * One database of N keys with 4 KiB values (log-like text: compressible),
 * fully compacted (zstd level 3 at the bottom level), then:
 *   1. point reads served by the block cache (every block cached);
 *   2. point reads from the local files with the block cache off and the
 *      files dropped from the OS page cache first (posix_fadvise
 *      DONTNEED), so the first read of each block goes to the disk;
 *   3. every file archived (zstd level 19) into an archive directory on
 *      the same disk (or --archive-dir), then the same cold reads from the
 *      archived files.
 * Each read phase reads the same R random keys (latency of cairn_get:
 * p50, p99), and the sizes of the files in each place are reported, with
 * the engine's own per-tier block read percentiles next to them.
 *
 * Output: a table on stdout; --json: one JSON object per result.
 * Threading: one thread.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"

static const char tier_usage[] =
    "usage: cairn-bench tier [--dir DIR] [--archive-dir DIR] [--keys N]\n"
    "                        [--reads N] [--json] [--keep]\n"
    "  Point-read latency of 4 KiB values from the block cache, from local\n"
    "  sorted files (block cache off, OS page cache dropped) and from\n"
    "  archived ones (same), and the files' size local (zstd 3) and\n"
    "  archived (zstd 19).\n"
    "  --dir DIR          work directory (./cairn-bench-data/tier)\n"
    "  --archive-dir DIR  the archive (DIR/archive: the same disk)\n"
    "  --keys N           keys written (10000: about 40 MiB of values)\n"
    "  --reads N          random reads per phase (2000)\n"
    "  --keep             keep the files afterwards\n";

static const char *words[] = {
    "GET", "POST", "/api/v1/users/", "/api/v1/orders/", "200", "404", "500",
    "host=web-", "region=eu-west-", "latency_ms=", "bytes=", "agent=curl/",
    "Mozilla/5.0", "session=", "trace=", "status=ok", "status=retry",
};

static size_t make_value(uint64_t i, char *buf, size_t len)
{
    uint64_t s = i * 0x9E3779B97F4A7C15ull + 1;
    size_t n = 0;
    while (n < len) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        const char *w = words[s % (sizeof words / sizeof *words)];
        int k = snprintf(buf + n, len - n + 1, "%s%u ", w,
                         (unsigned)((s >> 20) % 1000));
        if (k < 0)
            break;
        n += (size_t)k;
    }
    return len;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct phase {
    const char *name;
    uint64_t p50_ns, p99_ns;
    double seconds;
} phase;

static int read_phase(cairn_db *db, const uint64_t *keys, size_t n,
                      phase *out)
{
    uint64_t *lat = malloc(n * sizeof *lat);
    if (!lat)
        return CAIRN_ENOMEM;
    double t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "key%08" PRIu64, keys[i]);
        void *v = NULL;
        size_t vl = 0;
        double a = bench_now();
        int rc = cairn_get(db, k, (size_t)kl, &v, &vl);
        double b = bench_now();
        cairn_free(v);
        if (rc != 0) {
            free(lat);
            return rc;
        }
        lat[i] = (uint64_t)((b - a) * 1e9);
    }
    out->seconds = bench_now() - t0;
    qsort(lat, n, sizeof *lat, cmp_u64);
    out->p50_ns = lat[n / 2];
    out->p99_ns = lat[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
    free(lat);
    return 0;
}

int cairn_bench_tier_main(int argc, char **argv)
{
    const char *dir = "./cairn-bench-data/tier", *adir = NULL;
    uint64_t nkeys = 10000, nreads = 2000;
    bool json = false, keep = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(a, "--archive-dir") && i + 1 < argc)
            adir = argv[++i];
        else if (!strcmp(a, "--keys") && i + 1 < argc)
            nkeys = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--reads") && i + 1 < argc)
            nreads = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--json"))
            json = true;
        else if (!strcmp(a, "--keep"))
            keep = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(tier_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "cairn-bench tier: unknown option %s\n%s", a,
                    tier_usage);
            return 2;
        }
    }
    if (nkeys < 100 || nreads < 10) {
        fprintf(stderr, "cairn-bench tier: --keys >= 100, --reads >= 10\n");
        return 2;
    }
    char db_dir[4096], arch[4096];
    snprintf(db_dir, sizeof db_dir, "%s/db", dir);
    if (adir)
        snprintf(arch, sizeof arch, "%s", adir);
    else
        snprintf(arch, sizeof arch, "%s/archive", dir);
    bench_rm_rf(db_dir);
    bench_rm_rf(arch);
    if (bench_mkdir_p(dir) != 0) {
        fprintf(stderr, "cairn-bench tier: cannot prepare %s\n", dir);
        return 1;
    }
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.row_cache_size = 0;
    o.block_cache_size = 256u << 20;
    o.archive_dir = arch;
    cairn_db *db = NULL;
    int rc = cairn_open(db_dir, &o, &db);
    if (rc != 0) {
        fprintf(stderr, "cairn-bench tier: open: %s\n", cairn_strerror(rc));
        return 1;
    }
    char *val = malloc(4096 + 64);
    double t0 = bench_now();
    for (uint64_t i = 0; i < nkeys && rc == 0; i++) {
        char k[32];
        int kl = snprintf(k, sizeof k, "key%08" PRIu64, i);
        make_value(i, val, 4096);
        rc = cairn_put(db, k, (size_t)kl, val, 4096, NULL);
    }
    if (rc == 0)
        rc = cairn_compact(db, NULL, NULL);
    double fill_s = bench_now() - t0;
    free(val);
    uint64_t *keys = malloc(nreads * sizeof *keys);
    uint64_t s = 12345;
    for (uint64_t i = 0; i < nreads; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        keys[i] = s % nkeys;
    }
    phase ph[3] = {{.name = "block cache"},
                   {.name = "local file, cold block cache"},
                   {.name = "archived file, cold block cache"}};
    cairn_stats st_local, st_arch;
    memset(&st_local, 0, sizeof st_local);
    memset(&st_arch, 0, sizeof st_arch);
    double archive_s = 0;
    if (rc == 0) {
        /* 1: warm the cache with the keys, then read them again. */
        phase warm;
        rc = read_phase(db, keys, nreads, &warm);
        if (rc == 0)
            rc = read_phase(db, keys, nreads, &ph[0]);
    }
    if (rc == 0) {
        /* 2: no block cache, no page cache. */
        cairn_set_cache_sizes(db, CAIRN_CACHE_SIZE_KEEP, 0);
        bench_drop_cache(db_dir);
        rc = read_phase(db, keys, nreads, &ph[1]);
        cairn_get_stats(db, &st_local);
    }
    if (rc == 0) {
        double a = bench_now();
        rc = cairn_archive_run(db, 0, 0, NULL, NULL);
        archive_s = bench_now() - a;
    }
    if (rc == 0) {
        bench_drop_cache(arch);
        rc = read_phase(db, keys, nreads, &ph[2]);
        cairn_get_stats(db, &st_arch);
    }
    int crc = cairn_close(db);
    free(keys);
    if (rc == 0)
        rc = crc;
    if (rc != 0) {
        fprintf(stderr, "cairn-bench tier: %s\n", cairn_strerror(rc));
        return 1;
    }
    uint64_t lb = st_local.tier_bytes[0], ab = st_arch.tier_bytes[1];
    uint64_t logical = st_local.tier_logical_bytes[0];
    if (json) {
        for (int i = 0; i < 3; i++)
            printf("{\"bench\": \"tier\", \"phase\": \"%s\", \"reads\": %" PRIu64
                   ", \"value_bytes\": 4096, \"p50_us\": %.1f, \"p99_us\": "
                   "%.1f}\n",
                   ph[i].name, nreads, (double)ph[i].p50_ns / 1e3,
                   (double)ph[i].p99_ns / 1e3);
        printf("{\"bench\": \"tier\", \"keys\": %" PRIu64
               ", \"logical_bytes\": %" PRIu64 ", \"local_bytes\": %" PRIu64
               ", \"archived_bytes\": %" PRIu64 ", \"archive_seconds\": %.2f"
               ", \"engine_block_read_p50_us\": [%.1f, %.1f]"
               ", \"engine_block_read_p99_us\": [%.1f, %.1f]}\n",
               nkeys, logical, lb, ab, archive_s,
               (double)st_local.tier_read_p50_ns[0] / 1e3,
               (double)st_arch.tier_read_p50_ns[1] / 1e3,
               (double)st_local.tier_read_p99_ns[0] / 1e3,
               (double)st_arch.tier_read_p99_ns[1] / 1e3);
    } else {
        printf("cairn-bench tier: %" PRIu64 " keys x 4 KiB values, %" PRIu64
               " random point reads per phase (fill + compact %.1f s)\n",
               nkeys, nreads, fill_s);
        printf("archive: %s%s\n", arch,
               adir ? "" : " (same disk as the database)");
        printf("%-34s %10s %10s\n", "served from", "p50 us", "p99 us");
        for (int i = 0; i < 3; i++)
            printf("%-34s %10.1f %10.1f\n", ph[i].name,
                   (double)ph[i].p50_ns / 1e3, (double)ph[i].p99_ns / 1e3);
        printf("engine's block reads (miss path): local p50 %.1f us p99 "
               "%.1f us; archive p50 %.1f us p99 %.1f us\n",
               (double)st_local.tier_read_p50_ns[0] / 1e3,
               (double)st_local.tier_read_p99_ns[0] / 1e3,
               (double)st_arch.tier_read_p50_ns[1] / 1e3,
               (double)st_arch.tier_read_p99_ns[1] / 1e3);
        printf("size: keys+values %" PRIu64 " bytes; local files (zstd 3) %"
               PRIu64 " bytes (ratio %.2f); archived (zstd 19) %" PRIu64
               " bytes (ratio %.2f, %.1f%% of local); archiving took %.2f s\n",
               logical, lb, lb ? (double)logical / (double)lb : 0.0, ab,
               ab ? (double)logical / (double)ab : 0.0,
               lb ? 100.0 * (double)ab / (double)lb : 0.0, archive_s);
    }
    if (!keep) {
        bench_rm_rf(db_dir);
        bench_rm_rf(arch);
    }
    return 0;
}
