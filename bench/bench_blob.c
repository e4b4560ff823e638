/*
 * bench_blob.c — `cairn-bench blob`: large values through the blob store.
 *
 * Writes --mib MiB (256) of --value-kib KiB values (16) with sync=interval,
 * half of them repeats of earlier values (deduplicated), every value
 * compressible about 2:1 (each 16-byte group: 8 random bytes, 8 zeros).
 * Reports, from the same run: logical bytes written, bytes stored in the
 * blob files (records' stored bytes, and the files' sizes), the distinct
 * content compressed with zstd level 3 on its own (each distinct value, as
 * the store does), the ratio of the files' sizes to it (the store's
 * overhead: file and record headers, seals), write throughput (value
 * generation included, about 10 us a value; --threads writers, 1 by
 * default: every put of a new value syncs its blob before its log record,
 * so one writer pays about one fdatasync per new value, while concurrent
 * writers share them), and the latency of gets of blob values (row cache
 * off, so every get reads its blob file).
 *
 * Locking: the writers share only the database and an atomic counter.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "bench.h"
#include "cairn.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Distinct value d: 8 random bytes then 8 zeros, repeated. */
static void fill_value(uint8_t *p, size_t n, uint64_t d)
{
    uint64_t s = d * 0x2545F4914F6CDD1Dull + 1;
    for (size_t i = 0; i < n; i += 16) {
        uint64_t v = splitmix(&s);
        size_t a = n - i < 8 ? n - i : 8;
        memcpy(p + i, &v, a);
        if (n - i > 8)
            memset(p + i + 8, 0, n - i - 8 < 8 ? n - i - 8 : 8);
    }
}

typedef struct wctx {
    cairn_db *db;
    const uint64_t *which;
    size_t n, vlen;
    atomic_size_t next;
    atomic_int err;
} wctx;

static void *writer(void *arg)
{
    wctx *w = arg;
    uint8_t *v = malloc(w->vlen);
    if (!v) {
        atomic_store(&w->err, CAIRN_ENOMEM);
        return NULL;
    }
    for (;;) {
        size_t i = atomic_fetch_add(&w->next, 1);
        if (i >= w->n || atomic_load(&w->err))
            break;
        fill_value(v, w->vlen, w->which[i]);
        char key[32];
        snprintf(key, sizeof key, "v%08zu", i);
        int rc = cairn_put(w->db, key, strlen(key), v, w->vlen, NULL);
        if (rc)
            atomic_store(&w->err, rc);
    }
    free(v);
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int cairn_bench_blob_main(int argc, char **argv)
{
    size_t mib = 256, vkib = 16, threads = 1;
    const char *dir = NULL;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
            mib = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--value-kib") == 0 && i + 1 < argc)
            vkib = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else {
            fprintf(stderr,
                    "usage: cairn-bench blob [--mib N] [--value-kib N] "
                    "[--threads N] [--dir DIR] [--json]\n");
            return 2;
        }
    }
    char tmpl[] = "/tmp/cairn-bench-blob-XXXXXX";
    char path[4096];
    if (!dir) {
        if (!mkdtemp(tmpl)) {
            perror("mkdtemp");
            return 1;
        }
        dir = tmpl;
    }
    snprintf(path, sizeof path, "%s/db", dir);
    size_t vlen = vkib << 10;
    size_t n = (mib << 20) / vlen;
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_INTERVAL;
    o.row_cache_size = 0;
    cairn_db *db = NULL;
    int rc = cairn_open(path, &o, &db);
    if (rc) {
        fprintf(stderr, "open %s: %s\n", path, cairn_strerror(rc));
        return 1;
    }
    uint8_t *v = malloc(vlen);
    uint64_t *which = malloc(n * sizeof *which);
    uint8_t *zb = malloc(ZSTD_compressBound(vlen));
    if (!v || !which || !zb)
        return 1;
    /* Half new values, half repeats of an earlier one. */
    uint64_t rng = 12345, ndistinct = 0, zbytes = 0, ztime = 0;
    for (size_t i = 0; i < n; i++)
        which[i] = (i == 0 || splitmix(&rng) % 2) ? ndistinct++
                                                   : splitmix(&rng) % ndistinct;
    /* The distinct content under zstd -3, each value on its own (not
     * timed). */
    for (uint64_t d = 0; d < ndistinct; d++) {
        fill_value(v, vlen, d);
        uint64_t z0 = mono_ns();
        size_t zl = ZSTD_compress(zb, ZSTD_compressBound(vlen), v, vlen, 3);
        ztime += mono_ns() - z0;
        zbytes += ZSTD_isError(zl) || zl >= vlen ? vlen : zl;
    }
    /* The writes (value generation included: about 10 us a value). */
    if (threads < 1)
        threads = 1;
    if (threads > 64)
        threads = 64;
    wctx wc = {.db = db, .which = which, .n = n, .vlen = vlen};
    atomic_init(&wc.next, 0);
    atomic_init(&wc.err, 0);
    pthread_t th[64];
    uint64_t t0 = mono_ns();
    for (size_t t = 0; t < threads; t++)
        pthread_create(&th[t], NULL, writer, &wc);
    for (size_t t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    uint64_t wall = mono_ns() - t0;
    if (atomic_load(&wc.err)) {
        fprintf(stderr, "put: %s\n", cairn_strerror(atomic_load(&wc.err)));
        return 1;
    }
    cairn_stats st;
    cairn_get_stats(db, &st);
    double logical = (double)n * (double)vlen;
    double mbps = logical / 1e6 / ((double)wall / 1e9);
    /* Gets of blob values, random keys. */
    size_t ng = n < 20000 ? n : 20000;
    uint64_t *lat = malloc(ng * sizeof *lat);
    for (size_t i = 0; i < ng; i++) {
        size_t k = splitmix(&rng) % n;
        char key[32];
        snprintf(key, sizeof key, "v%08zu", k);
        void *got = NULL;
        size_t gl = 0;
        uint64_t g0 = mono_ns();
        rc = cairn_get(db, key, strlen(key), &got, &gl);
        lat[i] = mono_ns() - g0;
        if (rc || gl != vlen) {
            fprintf(stderr, "get %s: %s\n", key, cairn_strerror(rc));
            return 1;
        }
        cairn_free(got);
    }
    qsort(lat, ng, sizeof *lat, cmp_u64);
    double p50 = (double)lat[ng / 2] / 1000.0,
           p99 = (double)lat[ng * 99 / 100] / 1000.0;
    /* Physical: the files' sizes (headers, record headers, seals). */
    double ratio = (double)st.blob_file_bytes / (double)zbytes;
    if (json) {
        printf("{\"bench\":\"blob\",\"values\":%zu,\"value_bytes\":%zu,"
               "\"distinct\":%" PRIu64 ",\"logical_bytes\":%.0f,"
               "\"stored_bytes\":%" PRIu64 ",\"file_bytes\":%" PRIu64
               ",\"distinct_zstd3_bytes\":%" PRIu64 ",\"stored_ratio\":%.4f,"
               "\"dedup_hits\":%" PRIu64 ",\"threads\":%zu,"
               "\"write_mb_s\":%.1f,"
               "\"get_p50_us\":%.1f,\"get_p99_us\":%.1f}\n",
               n, vlen, ndistinct, logical, st.blob_stored_bytes,
               st.blob_file_bytes, zbytes, ratio, st.blob_dedup_hits, threads,
               mbps,
               p50, p99);
    } else {
        printf("blob store: %zu values of %zu KiB (%" PRIu64
               " distinct, the rest repeats), sync=interval\n",
               n, vkib, ndistinct);
        printf("  logical bytes             %14.0f\n", logical);
        printf("  stored in blob files      %14" PRIu64 "  (files %" PRIu64
               " bytes, %" PRIu64 " files)\n",
               st.blob_stored_bytes, st.blob_file_bytes, st.blob_files);
        printf("  distinct, zstd -3 each    %14" PRIu64 "  (%.2f:1)\n",
               zbytes, (double)ndistinct * (double)vlen / (double)zbytes);
        printf("  file bytes / distinct zstd %13.4f\n", ratio);
        printf("  dedup hits                %14" PRIu64 "\n",
               st.blob_dedup_hits);
        printf("  write throughput          %11.1f MB/s (logical, %zu "
               "writer%s)\n",
               mbps, threads, threads == 1 ? "" : "s");
        printf("  get of a blob value       p50 %.1f us, p99 %.1f us (%zu "
               "gets, row cache off)\n",
               p50, p99, ng);
    }
    (void)ztime;
    cairn_close(db);
    free(v);
    free(which);
    free(zb);
    free(lat);
    if (dir == tmpl) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpl);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpl);
    }
    return 0;
}
