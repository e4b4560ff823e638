/*
 * bench_tiers.c — `cairn-bench tiers`: what the tiered storage costs and
 * saves.
 *
 * Part "dedup": writes --mb MiB (2048 by default) of 16 KiB values under
 * distinct keys, of which half repeat a value written earlier (each value
 * compresses about 2:1). It reports, for Cairn (values stored once per
 * content in the blob store) and for RocksDB with blob files (min_blob_size
 * 4096, zstd: the same layout without deduplication), the bytes stored
 * (du of the database directory after a flush and a close), the bytes
 * written to storage (/proc/self/io write_bytes, open to close) and the
 * write rate; beside them, in the same run, zstd -3 of every value (a store
 * that compresses but does not deduplicate can do no better) and zstd -3 of
 * the distinct values only (the target: Cairn's stored bytes within 5 % of
 * it). Every engine's values are read back (a sample) and compared.
 *
 * Part "latency": 4 KiB values read one at a time from each tier: the row
 * cache (a hot set), the block cache (row cache off), a local sorted file
 * (caches off, the OS page cache dropped), the archive (the same files
 * moved to the archive directory, dropped likewise; the archive is a
 * directory on the same disk here) and a blob file (a second database
 * whose 4 KiB values are stored out of line). p50/p99 per tier.
 *
 * Output: a table on stdout, or with --json one JSON object per line;
 * progress on stderr. Exit 0 when the run completed, 1 on an engine error
 * or a wrong value read, 2 on a usage error.
 *
 * Locking: none; one thread does everything.
 */
#include "bench.h"

#include <cairn.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#ifdef CAIRN_HAVE_ROCKSDB
#include <rocksdb/c.h>
#endif

#define DEDUP_VAL_LEN 16384u
#define LAT_VAL_LEN 4096u
#define BATCH 16u
#define CHECK_SAMPLE 1000u

typedef struct tiers_cfg {
    const char *dir;
    bool json, quick, keep;
    uint64_t mb;
    uint64_t reads;
    bool part_dedup, part_latency;
    bool eng_cairn, eng_rocksdb;
} tiers_cfg;

static tiers_cfg g;

/* ---- values ---- */

/* The value of content id: runs of 16..47 bytes, half random, half copied
 * from up to 256 bytes back, so zstd -3 halves it about. */
static void gen_value(uint8_t *v, size_t len, uint64_t id)
{
    uint64_t s = bench_mix64(id * 0x2545F4914F6CDD1DULL + 1);
    size_t i = 0;
    while (i < len) {
        uint64_t r = bench_rng_next(&s);
        size_t run = 16 + (size_t)(r & 31);
        if (run > len - i)
            run = len - i;
        if (i >= 256 && (r >> 8) & 1) {
            size_t back = run + (size_t)((r >> 16) % (256 - run));
            for (size_t k = 0; k < run; k++)
                v[i + k] = v[i + k - back];
        } else {
            for (size_t k = 0; k < run; k += 8) {
                uint64_t w = bench_rng_next(&s);
                size_t n = run - k < 8 ? run - k : 8;
                memcpy(v + i + k, &w, n);
            }
        }
        i += run;
    }
}

static int key_of(char *k, size_t cap, char tag, uint64_t i)
{
    return snprintf(k, cap, "%c%012" PRIu64, tag, i);
}

/* ---- percentiles ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void pcts(uint64_t *ns, size_t n, double *p50, double *p99)
{
    *p50 = *p99 = 0;
    if (n == 0)
        return;
    qsort(ns, n, sizeof *ns, cmp_u64);
    *p50 = (double)ns[n / 2] / 1000.0;
    size_t i99 = (size_t)((double)n * 0.99);
    if (i99 >= n)
        i99 = n - 1;
    *p99 = (double)ns[i99] / 1000.0;
}

static uint64_t now_ns(void)
{
    return (uint64_t)(bench_now() * 1e9);
}

/* ---- the dedup part ---- */

/* The write sequence: write j stores content ids[j]. */
typedef struct dedup_plan {
    uint64_t nwrites, ndistinct;
    uint64_t *ids;
    uint64_t logical, zstd_all, zstd_distinct;
} dedup_plan;

static int plan_make(dedup_plan *p)
{
    memset(p, 0, sizeof *p);
    p->nwrites = g.mb * 1048576ull / DEDUP_VAL_LEN;
    if (p->nwrites < 2)
        p->nwrites = 2;
    p->ids = malloc(p->nwrites * sizeof *p->ids);
    uint64_t *csize = malloc(p->nwrites * sizeof *csize);
    uint8_t *v = malloc(DEDUP_VAL_LEN);
    size_t cap = ZSTD_compressBound(DEDUP_VAL_LEN);
    uint8_t *c = malloc(cap);
    ZSTD_CCtx *cx = ZSTD_createCCtx();
    if (!p->ids || !csize || !v || !c || !cx) {
        fprintf(stderr, "tiers: out of memory\n");
        free(csize);
        free(v);
        free(c);
        ZSTD_freeCCtx(cx);
        return -1;
    }
    uint64_t s = 42;
    for (uint64_t j = 0; j < p->nwrites; j++) {
        uint64_t r = bench_rng_next(&s);
        uint64_t id;
        if (j > 0 && (r & 1))
            id = (r >> 1) % p->ndistinct;
        else {
            id = p->ndistinct++;
            gen_value(v, DEDUP_VAL_LEN, id);
            size_t z = ZSTD_compressCCtx(cx, c, cap, v, DEDUP_VAL_LEN, 3);
            if (ZSTD_isError(z)) {
                fprintf(stderr, "tiers: zstd: %s\n", ZSTD_getErrorName(z));
                z = DEDUP_VAL_LEN;
            }
            csize[id] = z;
            p->zstd_distinct += z;
        }
        p->ids[j] = id;
        p->logical += DEDUP_VAL_LEN;
        p->zstd_all += csize[id];
    }
    free(csize);
    free(v);
    free(c);
    ZSTD_freeCCtx(cx);
    return 0;
}

typedef struct dedup_result {
    bool ran;
    double write_s;
    uint64_t stored, written;
} dedup_result;

static void progress_line(const char *who, uint64_t done, uint64_t total,
                          double t0)
{
    if (total >= 20 && done % (total / 20) == 0 && !g.json)
        fprintf(stderr, "\r  %s: %" PRIu64 "/%" PRIu64 " writes, %.1f s ",
                who, done, total, bench_now() - t0);
}

static int cairn_dedup(const dedup_plan *p, const char *dir, dedup_result *r)
{
    bench_rm_rf(dir);
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_INTERVAL;
    cairn_db *db = NULL;
    bench_io_counts io0 = {0}, io1 = {0};
    bool have_io = bench_proc_io(&io0);
    int rc = cairn_open(dir, &o, &db);
    if (rc < 0) {
        fprintf(stderr, "tiers: cairn open %s: %s\n", dir, cairn_strerror(rc));
        return -1;
    }
    uint8_t *vals = malloc((size_t)BATCH * DEDUP_VAL_LEN);
    char keys[BATCH][24];
    cairn_write w[BATCH];
    if (!vals) {
        cairn_close(db);
        return -1;
    }
    double t0 = bench_now();
    for (uint64_t j = 0; j < p->nwrites && rc >= 0;) {
        size_t n = 0;
        for (; n < BATCH && j < p->nwrites; n++, j++) {
            key_of(keys[n], sizeof keys[n], 'd', j);
            gen_value(vals + n * DEDUP_VAL_LEN, DEDUP_VAL_LEN, p->ids[j]);
            w[n] = (cairn_write){keys[n], strlen(keys[n]),
                                 vals + n * DEDUP_VAL_LEN, DEDUP_VAL_LEN};
        }
        rc = cairn_write_batch(db, w, n, NULL);
        progress_line("cairn", j, p->nwrites, t0);
    }
    if (rc >= 0)
        rc = cairn_flush(db);
    r->write_s = bench_now() - t0;
    if (rc < 0)
        fprintf(stderr, "\ntiers: cairn write: %s\n", cairn_strerror(rc));
    /* Read a sample back. */
    uint64_t s = 7;
    uint8_t *exp = vals;
    for (unsigned i = 0; i < CHECK_SAMPLE && rc >= 0; i++) {
        uint64_t j = bench_rng_next(&s) % p->nwrites;
        char k[24];
        key_of(k, sizeof k, 'd', j);
        void *v = NULL;
        size_t vl = 0;
        rc = cairn_get(db, k, strlen(k), &v, &vl);
        if (rc < 0) {
            fprintf(stderr, "\ntiers: cairn get %s: %s\n", k,
                    cairn_strerror(rc));
            break;
        }
        gen_value(exp, DEDUP_VAL_LEN, p->ids[j]);
        if (vl != DEDUP_VAL_LEN || memcmp(v, exp, vl) != 0) {
            fprintf(stderr, "\ntiers: cairn: key %s read back wrong\n", k);
            rc = -1;
        }
        cairn_free(v);
    }
    int crc = cairn_close(db);
    if (rc >= 0 && crc < 0) {
        fprintf(stderr, "\ntiers: cairn close: %s\n", cairn_strerror(crc));
        rc = crc;
    }
    free(vals);
    if (have_io && bench_proc_io(&io1))
        r->written = io1.write_bytes - io0.write_bytes;
    uint64_t alloc = 0, size = 0;
    bench_du(dir, &alloc, &size);
    r->stored = size;
    r->ran = rc >= 0;
    if (!g.json)
        fprintf(stderr, "\n");
    return rc < 0 ? -1 : 0;
}

#ifdef CAIRN_HAVE_ROCKSDB
static int rocks_dedup(const dedup_plan *p, const char *dir, dedup_result *r)
{
    bench_rm_rf(dir);
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_compression(o, rocksdb_zstd_compression);
    rocksdb_options_set_enable_blob_files(o, 1);
    rocksdb_options_set_min_blob_size(o, 4096);
    rocksdb_options_set_blob_compression_type(o, rocksdb_zstd_compression);
    rocksdb_options_set_enable_blob_gc(o, 1);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    char *err = NULL;
    bench_io_counts io0 = {0}, io1 = {0};
    bool have_io = bench_proc_io(&io0);
    rocksdb_t *db = rocksdb_open(o, dir, &err);
    int rc = 0;
    uint8_t *vals = malloc((size_t)BATCH * DEDUP_VAL_LEN);
    if (!db || !vals) {
        fprintf(stderr, "tiers: rocksdb open %s: %s\n", dir,
                err ? err : "out of memory");
        rc = -1;
        goto out;
    }
    double t0 = bench_now();
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    for (uint64_t j = 0; j < p->nwrites && rc == 0;) {
        rocksdb_writebatch_clear(b);
        for (size_t n = 0; n < BATCH && j < p->nwrites; n++, j++) {
            char k[24];
            key_of(k, sizeof k, 'd', j);
            gen_value(vals + n * DEDUP_VAL_LEN, DEDUP_VAL_LEN, p->ids[j]);
            rocksdb_writebatch_put(b, k, strlen(k),
                                   (const char *)vals + n * DEDUP_VAL_LEN,
                                   DEDUP_VAL_LEN);
        }
        rocksdb_write(db, wo, b, &err);
        if (err) {
            fprintf(stderr, "\ntiers: rocksdb write: %s\n", err);
            rc = -1;
        }
        progress_line("rocksdb", j, p->nwrites, t0);
    }
    rocksdb_writebatch_destroy(b);
    if (rc == 0) {
        rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
        rocksdb_flushoptions_set_wait(fo, 1);
        rocksdb_flush(db, fo, &err);
        rocksdb_flushoptions_destroy(fo);
        if (err) {
            fprintf(stderr, "\ntiers: rocksdb flush: %s\n", err);
            rc = -1;
        }
    }
    r->write_s = bench_now() - t0;
    uint64_t s = 7;
    for (unsigned i = 0; i < CHECK_SAMPLE && rc == 0; i++) {
        uint64_t j = bench_rng_next(&s) % p->nwrites;
        char k[24];
        key_of(k, sizeof k, 'd', j);
        size_t vl = 0;
        char *v = rocksdb_get(db, ro, k, strlen(k), &vl, &err);
        gen_value(vals, DEDUP_VAL_LEN, p->ids[j]);
        if (err || !v || vl != DEDUP_VAL_LEN || memcmp(v, vals, vl) != 0) {
            fprintf(stderr, "\ntiers: rocksdb: key %s read back wrong%s%s\n",
                    k, err ? ": " : "", err ? err : "");
            rc = -1;
        }
        rocksdb_free(v);
    }
    rocksdb_close(db);
    if (have_io && bench_proc_io(&io1))
        r->written = io1.write_bytes - io0.write_bytes;
    uint64_t alloc = 0, size = 0;
    bench_du(dir, &alloc, &size);
    r->stored = size;
    r->ran = rc == 0;
    if (!g.json)
        fprintf(stderr, "\n");
out:
    if (err)
        rocksdb_free(err);
    free(vals);
    rocksdb_readoptions_destroy(ro);
    rocksdb_writeoptions_destroy(wo);
    rocksdb_options_destroy(o);
    return rc;
}
#endif

static double mib(uint64_t b)
{
    return (double)b / 1048576.0;
}

static int part_dedup(void)
{
    dedup_plan p;
    if (!g.json)
        fprintf(stderr, "tiers: dedup: planning %" PRIu64 " MiB of %u-byte "
                        "values\n", g.mb, DEDUP_VAL_LEN);
    if (plan_make(&p) < 0)
        return -1;
    char dir[4096];
    dedup_result rc_cairn = {0}, rc_rocks = {0};
    int rc = 0;
    if (g.eng_cairn) {
        snprintf(dir, sizeof dir, "%s/dedup-cairn", g.dir);
        if (cairn_dedup(&p, dir, &rc_cairn) < 0)
            rc = -1;
        if (!g.keep)
            bench_rm_rf(dir);
    }
#ifdef CAIRN_HAVE_ROCKSDB
    if (g.eng_rocksdb && rc == 0) {
        snprintf(dir, sizeof dir, "%s/dedup-rocksdb", g.dir);
        if (rocks_dedup(&p, dir, &rc_rocks) < 0)
            rc = -1;
        if (!g.keep)
            bench_rm_rf(dir);
    }
#endif
    double target = (double)p.zstd_distinct;
    if (g.json) {
        printf("{\"part\":\"dedup\",\"value_bytes\":%u,\"writes\":%" PRIu64
               ",\"distinct\":%" PRIu64 ",\"logical_bytes\":%" PRIu64
               ",\"zstd3_all_bytes\":%" PRIu64
               ",\"zstd3_distinct_bytes\":%" PRIu64,
               DEDUP_VAL_LEN, p.nwrites, p.ndistinct, p.logical, p.zstd_all,
               p.zstd_distinct);
        const dedup_result *rs[2] = {&rc_cairn, &rc_rocks};
        const char *names[2] = {"cairn", "rocksdb_blob"};
        for (int i = 0; i < 2; i++)
            if (rs[i]->ran)
                printf(",\"%s\":{\"stored_bytes\":%" PRIu64
                       ",\"written_bytes\":%" PRIu64
                       ",\"write_mb_s\":%.1f,\"stored_vs_distinct_zstd\":%.4f}",
                       names[i], rs[i]->stored, rs[i]->written,
                       mib(p.logical) / rs[i]->write_s,
                       (double)rs[i]->stored / target);
        printf("}\n");
    } else {
        printf("dedup: %.0f MiB logical: %" PRIu64 " values of %u bytes, %"
               PRIu64 " distinct (%.0f%% repeats)\n",
               mib(p.logical), p.nwrites, DEDUP_VAL_LEN, p.ndistinct,
               100.0 * (double)(p.nwrites - p.ndistinct) / (double)p.nwrites);
        printf("  zstd -3 of every value (no dedup)  %10.1f MiB\n",
               mib(p.zstd_all));
        printf("  zstd -3 of the distinct values     %10.1f MiB  (the "
               "target)\n", mib(p.zstd_distinct));
        printf("  %-14s %12s %10s %14s %12s %10s\n", "engine", "stored MiB",
               "/logical", "/distinct zstd", "written MiB", "write MB/s");
        const dedup_result *rs[2] = {&rc_cairn, &rc_rocks};
        const char *names[2] = {"cairn", "rocksdb-blob"};
        for (int i = 0; i < 2; i++)
            if (rs[i]->ran)
                printf("  %-14s %12.1f %9.3fx %13.3fx %12.1f %10.1f\n",
                       names[i], mib(rs[i]->stored),
                       (double)rs[i]->stored / (double)p.logical,
                       (double)rs[i]->stored / target, mib(rs[i]->written),
                       (double)p.logical / 1e6 / rs[i]->write_s);
        if (rc_cairn.ran) {
            double ratio = (double)rc_cairn.stored / target;
            printf("  target: cairn stored within 5%% of zstd of the distinct "
                   "values: %s (%.3fx)\n", ratio <= 1.05 ? "PASS" : "FAIL",
                   ratio);
        }
        if (rc_cairn.ran && rc_rocks.ran)
            printf("  cairn stores %.2fx less than rocksdb-blob\n",
                   (double)rc_rocks.stored / (double)rc_cairn.stored);
    }
    free(p.ids);
    return rc;
}

/* ---- the latency part ---- */

typedef struct lat_row {
    const char *tier;
    const char *note;
    bool ran;
    double p50, p99;
    uint64_t n;
} lat_row;

/* Reads reads keys of [0, nkeys) (from hot ones: [0, hot)) and records
 * each get's latency; checks every value. */
static int lat_reads(cairn_db *db, char tag, uint64_t nkeys, uint64_t hot,
                     uint64_t seed, lat_row *row)
{
    uint64_t n = g.reads;
    uint64_t *ns = malloc(n * sizeof *ns);
    uint8_t *exp = malloc(LAT_VAL_LEN);
    if (!ns || !exp) {
        free(ns);
        free(exp);
        return -1;
    }
    uint64_t s = seed;
    int rc = 0;
    for (uint64_t i = 0; i < n && rc == 0; i++) {
        uint64_t k = bench_rng_next(&s) % (hot ? hot : nkeys);
        char key[24];
        key_of(key, sizeof key, tag, k);
        void *v = NULL;
        size_t vl = 0;
        uint64_t t0 = now_ns();
        int grc = cairn_get(db, key, strlen(key), &v, &vl);
        ns[i] = now_ns() - t0;
        if (grc < 0) {
            fprintf(stderr, "tiers: %s: get %s: %s\n", row->tier, key,
                    cairn_strerror(grc));
            rc = -1;
        } else {
            gen_value(exp, LAT_VAL_LEN, k + 1000000007ull);
            if (vl != LAT_VAL_LEN || memcmp(v, exp, vl) != 0) {
                fprintf(stderr, "tiers: %s: key %s read back wrong\n",
                        row->tier, key);
                rc = -1;
            }
        }
        cairn_free(v);
    }
    if (rc == 0) {
        pcts(ns, n, &row->p50, &row->p99);
        row->n = n;
        row->ran = true;
    }
    free(ns);
    free(exp);
    return rc;
}

static int lat_fill(cairn_db *db, char tag, uint64_t nkeys)
{
    uint8_t *vals = malloc((size_t)BATCH * LAT_VAL_LEN);
    char keys[BATCH][24];
    cairn_write w[BATCH];
    int rc = vals ? 0 : -1;
    for (uint64_t j = 0; j < nkeys && rc >= 0;) {
        size_t n = 0;
        for (; n < BATCH && j < nkeys; n++, j++) {
            key_of(keys[n], sizeof keys[n], tag, j);
            gen_value(vals + n * LAT_VAL_LEN, LAT_VAL_LEN, j + 1000000007ull);
            w[n] = (cairn_write){keys[n], strlen(keys[n]),
                                 vals + n * LAT_VAL_LEN, LAT_VAL_LEN};
        }
        rc = cairn_write_batch(db, w, n, NULL);
    }
    if (rc >= 0)
        rc = cairn_flush(db);
    if (rc >= 0)
        rc = cairn_compact(db, NULL, NULL);
    if (rc < 0 && vals)
        fprintf(stderr, "tiers: fill: %s\n", cairn_strerror(rc));
    free(vals);
    return rc < 0 ? -1 : 0;
}

static int part_latency(void)
{
    uint64_t nkeys = g.quick ? 8192 : 65536;
    char dir[4096], adir[4096], bdir[4096];
    snprintf(dir, sizeof dir, "%s/lat-cairn", g.dir);
    snprintf(adir, sizeof adir, "%s/lat-archive", g.dir);
    snprintf(bdir, sizeof bdir, "%s/lat-blob", g.dir);
    bench_rm_rf(dir);
    bench_rm_rf(adir);
    bench_rm_rf(bdir);
    if (bench_mkdir_p(adir) != 0) {
        fprintf(stderr, "tiers: mkdir %s: %s\n", adir, strerror(errno));
        return -1;
    }
    lat_row rows[5] = {
        {"row cache", "a hot set of 1024 keys", false, 0, 0, 0},
        {"block cache", "row cache off, blocks warm", false, 0, 0, 0},
        {"local file", "caches off, OS page cache dropped", false, 0, 0, 0},
        {"archive", "caches off, OS page cache dropped, same disk", false, 0,
         0, 0},
        {"blob file", "values out of line; caches off, page cache dropped",
         false, 0, 0, 0},
    };
    int rc = 0;
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.blob_threshold = LAT_VAL_LEN + 1; /* 4 KiB values stay in the files */
    o.archive_dir = adir;
    cairn_db *db = NULL;
    if (!g.json)
        fprintf(stderr, "tiers: latency: %" PRIu64 " values of %u bytes\n",
                nkeys, LAT_VAL_LEN);
    int orc = cairn_open(dir, &o, &db);
    if (orc < 0) {
        fprintf(stderr, "tiers: open %s: %s\n", dir, cairn_strerror(orc));
        return -1;
    }
    rc = lat_fill(db, 'l', nkeys);
    /* Row cache: a hot set, read once to fill. */
    if (rc == 0) {
        cairn_set_cache_sizes(db, 64u << 20, 256u << 20);
        uint64_t keep = g.reads;
        g.reads = 4096;
        rc = lat_reads(db, 'l', nkeys, 1024, 1, &rows[0]);
        g.reads = keep;
        rows[0].ran = false;
        if (rc == 0)
            rc = lat_reads(db, 'l', nkeys, 1024, 2, &rows[0]);
    }
    /* Block cache: every block warm, the row cache off. */
    if (rc == 0) {
        cairn_set_cache_sizes(db, 0, 1024u << 20);
        uint64_t keep = g.reads;
        g.reads = nkeys * 4;
        rc = lat_reads(db, 'l', nkeys, 0, 3, &rows[1]);
        g.reads = keep;
        rows[1].ran = false;
        if (rc == 0)
            rc = lat_reads(db, 'l', nkeys, 0, 4, &rows[1]);
    }
    /* Local file: no caches, the OS page cache dropped. */
    if (rc == 0) {
        cairn_set_cache_sizes(db, 0, 0);
        if (bench_drop_cache(dir) < 0)
            fprintf(stderr, "tiers: could not drop the page cache of %s\n",
                    dir);
        rc = lat_reads(db, 'l', nkeys, 0, 5, &rows[2]);
    }
    /* Archive: every file moved, then the same. */
    cairn_stats st;
    uint64_t local_bytes = 0, local_logical = 0, arch_bytes = 0;
    double arch_s = 0;
    if (rc == 0) {
        cairn_get_stats(db, &st);
        local_bytes = st.tier_bytes[0];
        local_logical = st.tier_logical_bytes[0];
        double t0 = bench_now();
        int arc = cairn_archive_run(db, 0, 0, NULL, NULL);
        arch_s = bench_now() - t0;
        cairn_get_stats(db, &st);
        arch_bytes = st.tier_bytes[1];
        if (arc < 0) {
            fprintf(stderr, "tiers: archive: %s\n", cairn_strerror(arc));
            rc = -1;
        } else {
            if (bench_drop_cache(adir) < 0)
                fprintf(stderr, "tiers: could not drop the page cache of "
                                "%s\n", adir);
            rc = lat_reads(db, 'l', nkeys, 0, 6, &rows[3]);
        }
    }
    int crc = cairn_close(db);
    if (crc < 0 && rc == 0) {
        fprintf(stderr, "tiers: close: %s\n", cairn_strerror(crc));
        rc = -1;
    }
    /* Blob file: a database whose 4 KiB values are out of line. */
    if (rc == 0) {
        cairn_options_init(&o);
        o.sync_mode = CAIRN_SYNC_NONE;
        o.blob_threshold = LAT_VAL_LEN;
        orc = cairn_open(bdir, &o, &db);
        if (orc < 0) {
            fprintf(stderr, "tiers: open %s: %s\n", bdir,
                    cairn_strerror(orc));
            rc = -1;
        } else {
            rc = lat_fill(db, 'l', nkeys);
            if (rc == 0) {
                cairn_set_cache_sizes(db, 0, 0);
                if (bench_drop_cache(bdir) < 0)
                    fprintf(stderr, "tiers: could not drop the page cache of "
                                    "%s\n", bdir);
                rc = lat_reads(db, 'l', nkeys, 0, 7, &rows[4]);
            }
            crc = cairn_close(db);
            if (crc < 0 && rc == 0)
                rc = -1;
        }
    }
    if (!g.keep) {
        bench_rm_rf(dir);
        bench_rm_rf(adir);
        bench_rm_rf(bdir);
    }
    if (g.json) {
        printf("{\"part\":\"archive_size\",\"logical_bytes\":%" PRIu64
               ",\"local_bytes\":%" PRIu64 ",\"archived_bytes\":%" PRIu64
               ",\"archive_seconds\":%.2f}\n", local_logical, local_bytes,
               arch_bytes, arch_s);
        for (int i = 0; i < 5; i++)
            if (rows[i].ran)
                printf("{\"part\":\"latency\",\"tier\":\"%s\",\"value_bytes\":"
                       "%u,\"reads\":%" PRIu64 ",\"p50_us\":%.2f,\"p99_us\":"
                       "%.2f}\n", rows[i].tier, LAT_VAL_LEN, rows[i].n,
                       rows[i].p50, rows[i].p99);
    } else {
        printf("read latency, %u-byte values, one get at a time (%" PRIu64
               " keys):\n", LAT_VAL_LEN, nkeys);
        printf("  %-12s %10s %10s  %s\n", "tier", "p50 us", "p99 us", "how");
        for (int i = 0; i < 5; i++)
            if (rows[i].ran)
                printf("  %-12s %10.2f %10.2f  %s\n", rows[i].tier,
                       rows[i].p50, rows[i].p99, rows[i].note);
        if (local_bytes && arch_bytes)
            printf("sorted files: %.1f MiB of keys and values in %.1f MiB "
                   "local (zstd 3), %.1f MiB archived (zstd 19, %.1f%% of "
                   "local; the move took %.1f s)\n", mib(local_logical),
                   mib(local_bytes), mib(arch_bytes),
                   100.0 * (double)arch_bytes / (double)local_bytes, arch_s);
    }
    return rc;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-bench tiers [--dir DIR] [--json] [--quick] [--mb N]\n"
            "                         [--parts LIST] [--engines LIST] "
            "[--reads N] [--keep]\n"
            "  --dir DIR       where the databases go (default "
            "./cairn-bench-data/tiers)\n"
            "  --json          JSON Lines on stdout instead of a table\n"
            "  --quick         128 MiB for dedup, 8192 keys and 2000 reads "
            "per tier\n"
            "  --mb N          logical MiB written by the dedup part (2048)\n"
            "  --parts LIST    dedup,latency (both)\n"
            "  --engines LIST  cairn,rocksdb for the dedup part (both; "
            "rocksdb when built in)\n"
            "  --reads N       gets measured per tier (20000)\n"
            "  --keep          keep the database directories\n");
}

static bool list_has(const char *list, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, word, n) == 0)
            return true;
        if (!e)
            break;
        p = e + 1;
    }
    return false;
}

int cairn_bench_tiers_main(int argc, char **argv)
{
    memset(&g, 0, sizeof g);
    g.dir = "./cairn-bench-data/tiers";
    g.mb = 2048;
    g.reads = 20000;
    g.part_dedup = g.part_latency = true;
    g.eng_cairn = g.eng_rocksdb = true;
    bool mb_set = false, reads_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json"))
            g.json = true;
        else if (!strcmp(a, "--quick"))
            g.quick = true;
        else if (!strcmp(a, "--keep"))
            g.keep = true;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (v && !strcmp(a, "--dir")) {
            g.dir = v;
            i++;
        } else if (v && !strcmp(a, "--mb")) {
            char *end;
            g.mb = strtoull(v, &end, 10);
            if (*end || g.mb == 0) {
                fprintf(stderr, "tiers: bad --mb %s\n", v);
                return 2;
            }
            mb_set = true;
            i++;
        } else if (v && !strcmp(a, "--reads")) {
            char *end;
            g.reads = strtoull(v, &end, 10);
            if (*end || g.reads == 0) {
                fprintf(stderr, "tiers: bad --reads %s\n", v);
                return 2;
            }
            reads_set = true;
            i++;
        } else if (v && !strcmp(a, "--parts")) {
            g.part_dedup = list_has(v, "dedup");
            g.part_latency = list_has(v, "latency");
            if (!g.part_dedup && !g.part_latency) {
                fprintf(stderr, "tiers: --parts: dedup, latency\n");
                return 2;
            }
            i++;
        } else if (v && !strcmp(a, "--engines")) {
            g.eng_cairn = list_has(v, "cairn");
            g.eng_rocksdb = list_has(v, "rocksdb");
            if (!g.eng_cairn && !g.eng_rocksdb) {
                fprintf(stderr, "tiers: --engines: cairn, rocksdb\n");
                return 2;
            }
            i++;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (g.quick && !mb_set)
        g.mb = 128;
    if (g.quick && !reads_set)
        g.reads = 2000;
    if (bench_mkdir_p(g.dir) != 0) {
        fprintf(stderr, "tiers: mkdir %s: %s\n", g.dir, strerror(errno));
        return 1;
    }
    int rc = 0;
    if (g.part_dedup && part_dedup() < 0)
        rc = 1;
    if (g.part_latency && rc == 0 && part_latency() < 0)
        rc = 1;
    return rc;
}
