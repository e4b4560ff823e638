/*
 * bench_ts.c — `cairn-bench ts`: the time-series benchmark, in three parts
 * (--parts, all by default): `codec`, the chunk codec (src/ts/chunk.c,
 * docs/format/ts.md) on real and generated points, next to zstd over the
 * same points as a plain file, measured in the same run; `engine`, the
 * embedded series layer; `server`, cairn-server (below).
 *
 *   cairn-bench ts [--json] [--quick] [--tsdata PATH] [--chunk-size BYTES]
 *                  [--runs N] [--seed N] [--sets LIST] [--parts LIST]
 *                  [--server-bin PATH]
 *
 * The sets:
 *   machine-metrics  the real data set (--tsdata; 135 series, 121,500
 *                    points, 1 s sampling with the sampler's jitter),
 *                    read from its .zst in-process with libzstd's
 *                    streaming decoder. Default path: the repository's
 *                    ../shared/tsdata/machine-metrics.csv.zst, i.e.
 *                    CAIRN_BENCH_TSDATA, which CMake sets from the source
 *                    directory (cache variable CAIRN_TSDATA overrides it).
 *                    A missing default file skips the set (with a note);
 *                    a missing --tsdata file is an error.
 *   random-walk      100 series x 10,000 points, every 10 s exactly; each
 *                    value is the previous one plus a uniform step in
 *                    [-1, 1) at full double precision (the hard case for
 *                    XOR coding: every mantissa bit is noise)
 *   counters         100 series x 10,000 points, every 1 s exactly;
 *                    integer counters, each step adding 0..10
 * Generated sets come from a splitmix64 stream seeded by --seed: the same
 * seed gives the same points. --quick makes them 20 x 2,000.
 *
 * For each set, each series is encoded into chunks with cairn_ts_enc_*;
 * a chunk is cut once its appendable size (header + body) reaches
 * --chunk-size bytes (default 4096, as RedisTimeSeries' default chunk
 * size), or at CAIRN_TS_CHUNK_MAX_POINTS. Reported, in bytes per point
 * over the set's points:
 *   live          every chunk as appendable bytes (no zstd)
 *   sealed        every chunk sealed (cairn_ts_enc_bytes seal, zstd -19)
 *   uncompressed  encoding 1 with the same policy (16 B/pt + headers)
 *   zstd -19/-3   the same points as one plain buffer, 16 bytes each
 *                 (int64 ms timestamp, double bits, little-endian, file
 *                 order), compressed in one ZSTD_compress call
 * and the speed of the codec on one core: encoding (cairn_ts_enc_add and
 * cutting appendable chunks), decoding live and sealed chunks
 * (cairn_ts_chunk_decode), medians of --runs runs (default 5), and the
 * time sealing took in the sizing pass (one run).
 *
 * Targets, on machine-metrics (informative, like the other benches'):
 * live at most 1.37 bytes/point (Gorilla's published figure), sealed no
 * larger than zstd -19 of the raw points.
 *
 * Invariants:
 *   - Every chunk (live, sealed, uncompressed) is decoded and compared to
 *     the points it was built from, timestamps and value bits; any
 *     difference or decode error is a failure (exit 1).
 *   - A point set is read-only once built; every measurement reads it.
 *   - Results go to stdout (a table, or one JSON object with --json),
 *     progress and errors to stderr. Exit 0 when it ran, whatever the
 *     verdicts; 1 on an error, a mismatch or a wrong server reply; 2 on
 *     bad usage.
 * The engine part (--parts engine): embedded ingest through
 * cairn_ts_add_many in batches of 1,000 points (one series and 100, sync
 * none; one series, sync always) into a fresh database in $TMPDIR, and the
 * latency of a raw range and a 1-minute avg over one day of 10-second
 * points (medians of 201 queries).
 * The server part (--parts server, bench_ts_server.c): cairn-server
 * started by the benchmark (--server-bin PATH, by default the one next to
 * cairn-bench), sync always and sync none; TS.MADD ingest pipelined over 1
 * and 4 connections, and TS.RANGE / TS.MRANGE latency (median, p99) over
 * 100 series of one day, beside the engine part's figures where they
 * correspond.
 *
 * Locking: none here; one thread does everything but the server part's
 * ingest, whose client threads live inside ts_server_measure.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "bench.h"
#include "bench_ts_server.h"
#include "cairn.h"
#include "env/env.h"
#include "ts/chunk.h"
#include "util/coding.h"

#ifndef CAIRN_BENCH_TSDATA
#define CAIRN_BENCH_TSDATA "../shared/tsdata/machine-metrics.csv.zst"
#endif

#define TS_LIVE_TARGET 1.37 /* bytes/point, Gorilla's published figure */
#define TS_SEAL_LEVEL 19
#define TS_DEFAULT_CHUNK 4096u
#define TS_MIN_CHUNK 64u
#define TS_MAX_CHUNK (16u << 20)

enum { EXIT_OK = 0, EXIT_ERROR = 1, EXIT_USAGE = 2 };

/* ---------- configuration ---------- */

enum { SET_MACHINE, SET_WALK, SET_COUNTERS, NSETS };
static const char *const SET_NAMES[NSETS] = {"machine-metrics", "random-walk",
                                             "counters"};

/* ---------- parts ---------- */

typedef struct ts_part {
    const char *name;
    const char *summary;
} ts_part;

/* The parts of the benchmark, in the order they run. */
static const ts_part PARTS[] = {
    {"codec", "chunk sizes (live, sealed, uncompressed) next to zstd, codec "
              "speed"},
    {"engine", "embedded ingest (batches of 1,000, one series and 100) and "
               "query latency over one day of 10-second points"},
    {"server", "cairn-server: TS.MADD ingest (pipelined, 1 and 4 "
               "connections, sync always and none) and TS.RANGE / "
               "TS.MRANGE latency"},
};
#define NPARTS (sizeof PARTS / sizeof PARTS[0])
enum { PART_CODEC = 0, PART_ENGINE = 1, PART_SERVER = 2 };

typedef struct ts_cfg {
    bool json, quick, tsdata_given;
    bool parts[NPARTS];
    const char *tsdata;
    const char *server_bin; /* NULL: next to cairn-bench */
    size_t chunk_size;
    int runs;
    uint64_t seed;
    bool sets[NSETS];
    size_t gen_series, gen_points; /* per generated set */
} ts_cfg;

/* ---------- point sets ---------- */

typedef struct ts_set {
    const char *name;
    char source[512];   /* where the points came from */
    const char *skipped; /* non-NULL: not measured, and why */
    cairn_ts_point *pts; /* all points, series after series */
    size_t npts, cap;
    size_t *off; /* series i is pts[off[i] .. off[i+1]) */
    size_t nseries, off_cap;
} ts_set;

static void set_free(ts_set *s)
{
    free(s->pts);
    free(s->off);
    s->pts = NULL;
    s->off = NULL;
}

static int set_push(ts_set *s, int64_t ts, double v)
{
    if (s->npts == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        cairn_ts_point *p = realloc(s->pts, cap * sizeof *p);
        if (!p)
            return CAIRN_ENOMEM;
        s->pts = p;
        s->cap = cap;
    }
    s->pts[s->npts].ts = ts;
    s->pts[s->npts].v = v;
    s->npts++;
    return 0;
}

/* Start a new series at the current end of the points. */
static int set_begin_series(ts_set *s)
{
    if (s->nseries + 2 > s->off_cap) {
        size_t cap = s->off_cap ? s->off_cap * 2 : 64;
        size_t *o = realloc(s->off, cap * sizeof *o);
        if (!o)
            return CAIRN_ENOMEM;
        s->off = o;
        s->off_cap = cap;
    }
    s->off[s->nseries++] = s->npts;
    s->off[s->nseries] = s->npts;
    return 0;
}

static void set_end(ts_set *s)
{
    if (s->off)
        s->off[s->nseries] = s->npts;
}

/* splitmix64: a small seeded stream, good enough for test data. */
static uint64_t sm64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double sm64_unit(uint64_t *state) /* [0, 1) */
{
    return (double)(sm64(state) >> 11) * (1.0 / 9007199254740992.0);
}

#define GEN_START_MS 1700000000000LL

static int gen_walk(const ts_cfg *cfg, ts_set *s)
{
    uint64_t st = cfg->seed ^ 0x5741u;
    snprintf(s->source, sizeof s->source,
             "generated: %zu series x %zu points, 10 s interval, random "
             "walk, uniform steps in [-1, 1), seed %" PRIu64,
             cfg->gen_series, cfg->gen_points, cfg->seed);
    for (size_t i = 0; i < cfg->gen_series; i++) {
        int rc = set_begin_series(s);
        if (rc)
            return rc;
        double v = 100.0 + 900.0 * sm64_unit(&st);
        for (size_t j = 0; j < cfg->gen_points; j++) {
            if ((rc = set_push(s, GEN_START_MS + (int64_t)j * 10000, v)))
                return rc;
            v += 2.0 * sm64_unit(&st) - 1.0;
        }
    }
    set_end(s);
    return 0;
}

static int gen_counters(const ts_cfg *cfg, ts_set *s)
{
    uint64_t st = cfg->seed ^ 0xC0u;
    snprintf(s->source, sizeof s->source,
             "generated: %zu series x %zu points, 1 s interval, integer "
             "counters, increments 0..10, seed %" PRIu64,
             cfg->gen_series, cfg->gen_points, cfg->seed);
    for (size_t i = 0; i < cfg->gen_series; i++) {
        int rc = set_begin_series(s);
        if (rc)
            return rc;
        int64_t v = (int64_t)(sm64(&st) % 1000000u);
        for (size_t j = 0; j < cfg->gen_points; j++) {
            if ((rc = set_push(s, GEN_START_MS + (int64_t)j * 1000,
                               (double)v)))
                return rc;
            v += (int64_t)(sm64(&st) % 11u);
        }
    }
    set_end(s);
    return 0;
}

/* ---------- the real data set: a .csv.zst read in-process ---------- */

typedef struct csv_state {
    ts_set *set;
    const char *path;
    unsigned long line;
    char *prev_name; /* the current series' name */
    char **names;    /* every series seen, to refuse a name that returns */
    size_t nnames, names_cap;
    char *acc; /* a line split across output buffers */
    size_t acc_len, acc_cap;
} csv_state;

static int csv_bad(const csv_state *c, const char *what)
{
    fprintf(stderr, "cairn-bench ts: %s, line %lu: %s\n", c->path, c->line,
            what);
    return CAIRN_EINVAL;
}

static int csv_line(csv_state *c, char *s, size_t n)
{
    c->line++;
    if (n > 0 && s[n - 1] == '\r')
        s[--n] = '\0';
    if (c->line == 1)
        return strcmp(s, "series_name,unix_ms_timestamp,value") == 0
                   ? 0
                   : csv_bad(c, "expected the header "
                                "series_name,unix_ms_timestamp,value");
    if (n == 0)
        return 0;
    char *c1 = strchr(s, ',');
    char *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
    if (!c1 || !c2 || c1 == s)
        return csv_bad(c, "expected series_name,unix_ms_timestamp,value");
    *c1 = *c2 = '\0';
    char *end;
    errno = 0;
    long long ts = strtoll(c1 + 1, &end, 10);
    if (errno || end == c1 + 1 || *end)
        return csv_bad(c, "bad timestamp");
    errno = 0;
    double v = strtod(c2 + 1, &end);
    if (errno == ERANGE && v != 0.0)
        errno = 0; /* an overflow gives inf, kept as such */
    if (end == c2 + 1 || *end)
        return csv_bad(c, "bad value");
    ts_set *set = c->set;
    if (!c->prev_name || strcmp(c->prev_name, s) != 0) {
        for (size_t i = 0; i < c->nnames; i++)
            if (strcmp(c->names[i], s) == 0)
                return csv_bad(c, "series not grouped (its name returns)");
        if (c->nnames == c->names_cap) {
            size_t cap = c->names_cap ? c->names_cap * 2 : 64;
            char **nn = realloc(c->names, cap * sizeof *nn);
            if (!nn)
                return CAIRN_ENOMEM;
            c->names = nn;
            c->names_cap = cap;
        }
        char *copy = strdup(s);
        if (!copy)
            return CAIRN_ENOMEM;
        c->names[c->nnames++] = copy;
        c->prev_name = copy;
        int rc = set_begin_series(set);
        if (rc)
            return rc;
    } else if ((int64_t)ts <= set->pts[set->npts - 1].ts) {
        return csv_bad(c, "timestamps not increasing within the series");
    }
    return set_push(set, (int64_t)ts, v);
}

/* Feed decompressed bytes; whole lines are parsed, a partial one kept. */
static int csv_feed(csv_state *c, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        if (c->acc_len + take + 1 > c->acc_cap) {
            size_t cap = c->acc_cap ? c->acc_cap : 256;
            while (cap < c->acc_len + take + 1)
                cap *= 2;
            char *a = realloc(c->acc, cap);
            if (!a)
                return CAIRN_ENOMEM;
            c->acc = a;
            c->acc_cap = cap;
        }
        memcpy(c->acc + c->acc_len, p, take);
        c->acc_len += take;
        c->acc[c->acc_len] = '\0';
        if (!nl)
            return 0;
        int rc = csv_line(c, c->acc, c->acc_len);
        if (rc)
            return rc;
        c->acc_len = 0;
        p += take + 1;
        n -= take + 1;
    }
    return 0;
}

static int load_tsdata(const char *path, ts_set *s)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        fprintf(stderr, "cairn-bench ts: cannot open %s: %s\n", path,
                strerror(e));
        return cairn_errno_to_err(e);
    }
    snprintf(s->source, sizeof s->source, "%s", path);
    csv_state c = {.set = s, .path = path};
    size_t in_cap = ZSTD_DStreamInSize(), out_cap = ZSTD_DStreamOutSize();
    char *in = malloc(in_cap), *out = malloc(out_cap);
    ZSTD_DCtx *dc = ZSTD_createDCtx();
    int rc = in && out && dc ? 0 : CAIRN_ENOMEM;
    size_t last = 0; /* 0 once a frame is complete */
    bool any = false;
    while (rc == 0) {
        size_t got = fread(in, 1, in_cap, f);
        if (got == 0) {
            if (ferror(f)) {
                fprintf(stderr, "cairn-bench ts: reading %s: %s\n", path,
                        strerror(errno));
                rc = CAIRN_EIO;
            }
            break;
        }
        any = true;
        ZSTD_inBuffer ib = {in, got, 0};
        while (rc == 0 && ib.pos < ib.size) {
            ZSTD_outBuffer ob = {out, out_cap, 0};
            last = ZSTD_decompressStream(dc, &ob, &ib);
            if (ZSTD_isError(last)) {
                fprintf(stderr, "cairn-bench ts: %s: zstd: %s\n", path,
                        ZSTD_getErrorName(last));
                rc = CAIRN_ECORRUPT;
                break;
            }
            rc = csv_feed(&c, out, ob.pos);
        }
    }
    /* flush what the decoder still holds for a complete input */
    while (rc == 0 && last != 0 && any) {
        ZSTD_inBuffer ib = {in, 0, 0};
        ZSTD_outBuffer ob = {out, out_cap, 0};
        last = ZSTD_decompressStream(dc, &ob, &ib);
        if (ZSTD_isError(last) || ob.pos == 0)
            break;
        rc = csv_feed(&c, out, ob.pos);
    }
    if (rc == 0 && (!any || last != 0)) {
        fprintf(stderr, "cairn-bench ts: %s: truncated zstd frame\n", path);
        rc = CAIRN_ECORRUPT;
    }
    if (rc == 0 && c.acc_len > 0) /* a last line without a newline */
        rc = csv_line(&c, c.acc, c.acc_len);
    if (rc == 0 && s->npts == 0) {
        fprintf(stderr, "cairn-bench ts: %s: no points\n", path);
        rc = CAIRN_EINVAL;
    }
    set_end(s);
    for (size_t i = 0; i < c.nnames; i++)
        free(c.names[i]);
    free(c.names);
    free(c.acc);
    ZSTD_freeDCtx(dc);
    free(in);
    free(out);
    fclose(f);
    return rc;
}

/* ---------- chunks ---------- */

typedef struct chunk_list {
    uint8_t **buf;
    size_t *len;
    size_t *first; /* index of the chunk's first point in the set */
    uint32_t *count;
    size_t n, cap;
    uint64_t bytes;
    size_t nxor, nint, nraw, nzstd; /* chunks per encoding; zstd bodies */
} chunk_list;

static void chunks_free(chunk_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->buf[i]);
    free(l->buf);
    free(l->len);
    free(l->first);
    free(l->count);
    memset(l, 0, sizeof *l);
}

/* Takes b (malloc'ed). */
static int chunks_push(chunk_list *l, uint8_t *b, size_t len, size_t first,
                       uint32_t count)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        uint8_t **nb = realloc(l->buf, cap * sizeof *nb);
        if (nb)
            l->buf = nb;
        size_t *nl = realloc(l->len, cap * sizeof *nl);
        if (nl)
            l->len = nl;
        size_t *nf = realloc(l->first, cap * sizeof *nf);
        if (nf)
            l->first = nf;
        uint32_t *nc = realloc(l->count, cap * sizeof *nc);
        if (nc)
            l->count = nc;
        if (!nb || !nl || !nf || !nc) {
            free(b);
            return CAIRN_ENOMEM;
        }
        l->cap = cap;
    }
    l->buf[l->n] = b;
    l->len[l->n] = len;
    l->first[l->n] = first;
    l->count[l->n] = count;
    l->n++;
    l->bytes += len;
    switch (b[0]) {
    case CAIRN_TS_ENC_XOR:
        l->nxor++;
        break;
    case CAIRN_TS_ENC_INT:
        l->nint++;
        break;
    default:
        l->nraw++;
        break;
    }
    if (b[1] & CAIRN_TS_CHUNK_FLAG_ZSTD)
        l->nzstd++;
    return 0;
}

/* Emit the encoder's chunk into live (unsealed) and, when given, sealed
 * (timing the sealing into *seal_s), then reset it. */
static int cut_chunk(cairn_ts_enc *e, size_t first, chunk_list *live,
                     chunk_list *sealed, double *seal_s)
{
    uint8_t *b;
    size_t len;
    int rc = cairn_ts_enc_bytes(e, false, 0, &b, &len);
    if (rc == 0)
        rc = chunks_push(live, b, len, first, e->count);
    if (rc == 0 && sealed) {
        double t0 = bench_now();
        rc = cairn_ts_enc_bytes(e, true, TS_SEAL_LEVEL, &b, &len);
        *seal_s += bench_now() - t0;
        if (rc == 0)
            rc = chunks_push(sealed, b, len, first, e->count);
    }
    cairn_ts_enc_reset(e);
    return rc;
}

/* Encode every series of s into chunks under the size policy. */
static int encode_set(const ts_set *s, bool compressed, size_t chunk_size,
                      chunk_list *live, chunk_list *sealed, double *seal_s)
{
    cairn_ts_enc e;
    cairn_ts_enc_init(&e, compressed);
    int rc = 0;
    for (size_t i = 0; i < s->nseries && rc == 0; i++) {
        size_t first = s->off[i];
        for (size_t j = s->off[i]; j < s->off[i + 1] && rc == 0; j++) {
            rc = cairn_ts_enc_add(&e, s->pts[j].ts, s->pts[j].v);
            if (rc == 0 && (cairn_ts_enc_size(&e) >= chunk_size ||
                            e.count == CAIRN_TS_CHUNK_MAX_POINTS)) {
                rc = cut_chunk(&e, first, live, sealed, seal_s);
                first = j + 1;
            }
        }
        if (rc == 0 && e.count > 0)
            rc = cut_chunk(&e, first, live, sealed, seal_s);
    }
    cairn_ts_enc_free(&e);
    return rc;
}

/* Decode every chunk and compare with the points; returns the number of
 * chunks that failed. */
static size_t verify_chunks(const ts_set *s, const chunk_list *l,
                            const char *what)
{
    size_t bad = 0, covered = 0;
    for (size_t i = 0; i < l->n; i++) {
        cairn_ts_point *p = NULL;
        size_t n = 0;
        int rc = cairn_ts_chunk_decode(l->buf[i], l->len[i], &p, &n);
        bool ok = rc == 0 && n == l->count[i];
        for (size_t j = 0; ok && j < n; j++) {
            const cairn_ts_point *want = &s->pts[l->first[i] + j];
            ok = p[j].ts == want->ts && memcmp(&p[j].v, &want->v, 8) == 0;
        }
        free(p);
        if (!ok) {
            if (bad < 5)
                fprintf(stderr,
                        "cairn-bench ts: %s: %s chunk %zu (points %zu.. of "
                        "%u) does not decode to its points: %s\n",
                        s->name, what, i, l->first[i], l->count[i],
                        rc ? cairn_strerror(rc) : "different points");
            bad++;
        }
        covered += l->count[i];
    }
    if (covered != s->npts) {
        fprintf(stderr,
                "cairn-bench ts: %s: %s chunks hold %zu points, not %zu\n",
                s->name, what, covered, s->npts);
        bad++;
    }
    return bad;
}

/* ---------- zstd over the plain 16-byte points ---------- */

static int zstd_plain(const ts_set *s, int level, size_t *out_len,
                      double *secs)
{
    size_t raw_len = s->npts * 16;
    uint8_t *raw = malloc(raw_len ? raw_len : 1);
    size_t bound = ZSTD_compressBound(raw_len);
    uint8_t *dst = malloc(bound);
    if (!raw || !dst) {
        free(raw);
        free(dst);
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < s->npts; i++) {
        uint64_t bits;
        memcpy(&bits, &s->pts[i].v, 8);
        cairn_put_u64(raw + 16 * i, (uint64_t)s->pts[i].ts);
        cairn_put_u64(raw + 16 * i + 8, bits);
    }
    double t0 = bench_now();
    size_t cs = ZSTD_compress(dst, bound, raw, raw_len, level);
    *secs = bench_now() - t0;
    int rc = 0;
    if (ZSTD_isError(cs)) {
        fprintf(stderr, "cairn-bench ts: zstd -%d: %s\n", level,
                ZSTD_getErrorName(cs));
        rc = CAIRN_EIO;
    } else {
        /* the baseline must be a real one: it decompresses to the input */
        uint8_t *back = malloc(raw_len ? raw_len : 1);
        size_t got = back ? ZSTD_decompress(back, raw_len, dst, cs) : 0;
        if (!back)
            rc = CAIRN_ENOMEM;
        else if (ZSTD_isError(got) || got != raw_len ||
                 memcmp(back, raw, raw_len) != 0)
            rc = CAIRN_ECORRUPT;
        free(back);
        *out_len = cs;
    }
    free(raw);
    free(dst);
    return rc;
}

/* ---------- speed ---------- */

/* One encoding pass, as the sizing pass but without sealing or keeping
 * anything: add the points, cut appendable chunks. */
static int time_encode(const ts_set *s, size_t chunk_size, double *secs)
{
    cairn_ts_enc e;
    cairn_ts_enc_init(&e, true);
    int rc = 0;
    uint64_t sink = 0;
    double t0 = bench_now();
    for (size_t i = 0; i < s->nseries && rc == 0; i++) {
        for (size_t j = s->off[i]; j <= s->off[i + 1] && rc == 0; j++) {
            bool end = j == s->off[i + 1];
            if (!end)
                rc = cairn_ts_enc_add(&e, s->pts[j].ts, s->pts[j].v);
            if (rc == 0 && e.count > 0 &&
                (end || cairn_ts_enc_size(&e) >= chunk_size ||
                 e.count == CAIRN_TS_CHUNK_MAX_POINTS)) {
                uint8_t *b;
                size_t len;
                rc = cairn_ts_enc_bytes(&e, false, 0, &b, &len);
                if (rc == 0) {
                    sink += b[len - 1];
                    free(b);
                }
                cairn_ts_enc_reset(&e);
            }
        }
    }
    *secs = bench_now() - t0;
    cairn_ts_enc_free(&e);
    if (sink == UINT64_MAX) /* keeps the work observable */
        fputc('\0', stderr);
    return rc;
}

static int time_decode(const chunk_list *l, double *secs)
{
    uint64_t sink = 0;
    double t0 = bench_now();
    for (size_t i = 0; i < l->n; i++) {
        cairn_ts_point *p = NULL;
        size_t n = 0;
        int rc = cairn_ts_chunk_decode(l->buf[i], l->len[i], &p, &n);
        if (rc)
            return rc;
        sink += (uint64_t)p[n - 1].ts;
        free(p);
    }
    *secs = bench_now() - t0;
    if (sink == 1) /* keeps the work observable */
        fputc('\0', stderr);
    return 0;
}

/* ---------- results ---------- */

typedef struct set_result {
    ts_set set;
    bool measured;
    size_t mismatches;
    chunk_list live, sealed, plain;
    uint64_t zstd19, zstd3;
    double zstd19_s, zstd3_s, seal_s;
    double enc_ns, dec_live_ns, dec_sealed_ns; /* per point, medians */
} set_result;

static double bpp(uint64_t bytes, size_t points)
{
    return points ? (double)bytes / (double)points : NAN;
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : NAN;
}

static int measure_set(const ts_cfg *cfg, set_result *r)
{
    const ts_set *s = &r->set;
    fprintf(stderr, "cairn-bench ts: %s: %zu series, %zu points: encoding\n",
            s->name, s->nseries, s->npts);
    int rc = encode_set(s, true, cfg->chunk_size, &r->live, &r->sealed,
                        &r->seal_s);
    if (rc == 0)
        rc = encode_set(s, false, cfg->chunk_size, &r->plain, NULL, NULL);
    if (rc) {
        fprintf(stderr, "cairn-bench ts: %s: encoding failed: %s\n", s->name,
                cairn_strerror(rc));
        return rc;
    }
    r->mismatches = verify_chunks(s, &r->live, "live") +
                    verify_chunks(s, &r->sealed, "sealed") +
                    verify_chunks(s, &r->plain, "uncompressed");
    fprintf(stderr, "cairn-bench ts: %s: zstd -19 and -3 of the plain points\n",
            s->name);
    size_t z = 0;
    rc = zstd_plain(s, 19, &z, &r->zstd19_s);
    r->zstd19 = z;
    if (rc == 0)
        rc = zstd_plain(s, 3, &z, &r->zstd3_s);
    r->zstd3 = z;
    if (rc) {
        fprintf(stderr, "cairn-bench ts: %s: zstd baseline failed: %s\n",
                s->name, cairn_strerror(rc));
        return rc;
    }
    if (r->mismatches) { /* figures without speed; the run fails */
        r->enc_ns = r->dec_live_ns = r->dec_sealed_ns = NAN;
        r->measured = true;
        return 0;
    }
    fprintf(stderr, "cairn-bench ts: %s: speed, %d run%s\n", s->name,
            cfg->runs, cfg->runs == 1 ? "" : "s");
    double enc[64], dl[64], ds[64];
    for (int i = 0; i < cfg->runs && rc == 0; i++) {
        rc = time_encode(s, cfg->chunk_size, &enc[i]);
        if (rc == 0)
            rc = time_decode(&r->live, &dl[i]);
        if (rc == 0)
            rc = time_decode(&r->sealed, &ds[i]);
    }
    if (rc) {
        fprintf(stderr, "cairn-bench ts: %s: timing failed: %s\n", s->name,
                cairn_strerror(rc));
        return rc;
    }
    double np = (double)s->npts;
    r->enc_ns = bench_median(enc, (size_t)cfg->runs) * 1e9 / np;
    r->dec_live_ns = bench_median(dl, (size_t)cfg->runs) * 1e9 / np;
    r->dec_sealed_ns = bench_median(ds, (size_t)cfg->runs) * 1e9 / np;
    r->measured = true;
    return 0;
}

/* ---------- output ---------- */


static void json_bool_or_null(FILE *f, bool known, bool v)
{
    fputs(!known ? "null" : v ? "true" : "false", f);
}

typedef struct verdicts {
    bool known; /* machine-metrics measured */
    double live, sealed, zstd19;
    bool live_pass, sealed_pass;
} verdicts;

static verdicts get_verdicts(const set_result *res)
{
    verdicts v = {0};
    const set_result *m = &res[SET_MACHINE];
    if (!m->measured)
        return v;
    v.known = true;
    v.live = bpp(m->live.bytes, m->set.npts);
    v.sealed = bpp(m->sealed.bytes, m->set.npts);
    v.zstd19 = bpp(m->zstd19, m->set.npts);
    v.live_pass = v.live <= TS_LIVE_TARGET;
    v.sealed_pass = m->sealed.bytes <= m->zstd19;
    return v;
}

static void json_chunks(FILE *f, const chunk_list *l, size_t npts)
{
    fprintf(f,
            "{\"chunks\":%zu,\"bytes\":%" PRIu64 ",\"bytes_per_point\":",
            l->n, l->bytes);
    bench_json_num(f, bpp(l->bytes, npts));
    fprintf(f,
            ",\"encodings\":{\"xor\":%zu,\"int\":%zu,\"uncompressed\":%zu},"
            "\"zstd_bodies\":%zu}",
            l->nxor, l->nint, l->nraw, l->nzstd);
}

/* ---------- the engine part ---------- */

typedef struct engine_result {
    bool measured;
    size_t ingest_points;
    double ingest1_none, ingest100_none; /* points/s, sync none */
    double ingest1_always;               /* points/s, sync always */
    size_t day_points;
    double raw_day_ms, avg1m_day_ms;     /* medians */
} engine_result;

static int ingest(const char *dir, cairn_sync_mode sync, int nseries,
                  size_t npoints, double *pps)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return -1;
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = sync;
    cairn_db *db = NULL;
    if (cairn_open(dir, &o, &db) != 0)
        return -1;
    char names[100][16];
    int rc = 0;
    for (int i = 0; i < nseries && rc == 0; i++) {
        snprintf(names[i], sizeof names[i], "s%03d", i);
        rc = cairn_ts_create(db, names[i], strlen(names[i]), NULL);
    }
    cairn_ts_sample *b = malloc(1000 * sizeof *b);
    int *res = malloc(1000 * sizeof *res);
    if (!b || !res)
        rc = -1;
    double t0 = bench_now();
    for (size_t done = 0; rc == 0 && done < npoints; done += 1000)
        for (size_t i = 0; i < 1000 && rc == 0; i++) {
            size_t k = done + i;
            int sidx = (int)(k % (size_t)nseries);
            b[i] = (cairn_ts_sample){names[sidx], strlen(names[sidx]),
                                     1700000000000LL +
                                         (int64_t)(k / (size_t)nseries) * 1000,
                                     (double)(k % 977)};
            if (i == 999)
                rc = cairn_ts_add_many(db, b, 1000, res);
        }
    double dt = bench_now() - t0;
    *pps = (double)npoints / dt;
    free(b);
    free(res);
    if (cairn_close(db) != 0)
        rc = -1;
    return rc;
}

static int measure_engine(const ts_cfg *cfg, engine_result *er)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/cairn-bench-ts-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    int runs = cfg->runs;
    er->ingest_points = cfg->quick ? 100000 : 2000000;
    double v1[16], v100[16], va[16];
    int rc = 0;
    for (int r = 0; r < runs && r < 16 && rc == 0; r++) {
        rc = ingest(dir, CAIRN_SYNC_NONE, 1, er->ingest_points, &v1[r]);
        if (rc == 0)
            rc = ingest(dir, CAIRN_SYNC_NONE, 100, er->ingest_points,
                        &v100[r]);
        if (rc == 0)
            rc = ingest(dir, CAIRN_SYNC_ALWAYS, 1, er->ingest_points / 4,
                        &va[r]);
    }
    int nr = runs < 16 ? runs : 16;
    er->ingest1_none = bench_median(v1, (size_t)nr);
    er->ingest100_none = bench_median(v100, (size_t)nr);
    er->ingest1_always = bench_median(va, (size_t)nr);
    /* One day of 10-second points, then the queries. */
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cairn_db *db = NULL;
    if (rc == 0 && (system(cmd) != 0 || cairn_open(dir, &o, &db) != 0))
        rc = -1;
    er->day_points = 8640;
    const int64_t t0 = 1700000000000LL;
    if (rc == 0)
        rc = cairn_ts_create(db, "day", 3, NULL);
    double v = 100;
    uint64_t st = cfg->seed | 1;
    for (size_t i = 0; rc == 0 && i < er->day_points; i++) {
        v += (double)(int)(sm64(&st) % 21) - 10.0;
        rc = cairn_ts_add(db, "day", 3, t0 + (int64_t)i * 10000, v);
    }
    enum { Q = 201 };
    static double raw[Q], avg[Q];
    for (int k = 0; k < Q && rc == 0; k++) {
        cairn_ts_point *p = NULL;
        size_t n = 0;
        double a = bench_now();
        rc = cairn_ts_range(db, "day", 3, t0, t0 + 86400000LL - 1, &p, &n);
        raw[k] = (bench_now() - a) * 1e3;
        if (rc == 0 && n != er->day_points)
            rc = -1;
        cairn_free(p);
        cairn_ts_query q = {0};
        q.from = t0;
        q.to = t0 + 86400000LL - 1;
        q.agg = CAIRN_TS_AGG_AVG;
        q.bucket = 60000;
        q.align_kind = CAIRN_TS_ALIGN_START; /* buckets from the day's start */
        a = bench_now();
        if (rc == 0)
            rc = cairn_ts_query_range(db, "day", 3, &q, &p, &n);
        avg[k] = (bench_now() - a) * 1e3;
        if (rc == 0 && n != 1440)
            rc = -1;
        cairn_free(p);
    }
    er->raw_day_ms = bench_median(raw, Q);
    er->avg1m_day_ms = bench_median(avg, Q);
    if (db && cairn_close(db) != 0)
        rc = -1;
    if (system(cmd) != 0)
        rc = -1;
    er->measured = rc == 0;
    if (rc)
        fprintf(stderr, "cairn-bench ts: engine: %s\n",
                rc < 0 && rc != -1 ? cairn_strerror(rc) : "setup failed");
    return rc;
}

static void print_engine_human(FILE *f, const engine_result *er)
{
    char r1[16], r2[16], r3[16];
    fprintf(f, "\nthe engine (embedded, batches of 1,000 points, %zu "
               "points per run; medians):\n",
            er->ingest_points);
    fprintf(f, "  ingest, one series, sync none:   %s points/s (target: 2M)\n",
            bench_fmt_rate(er->ingest1_none, r1, sizeof r1));
    fprintf(f, "  ingest, 100 series, sync none:   %s points/s\n",
            bench_fmt_rate(er->ingest100_none, r2, sizeof r2));
    fprintf(f, "  ingest, one series, sync always: %s points/s\n",
            bench_fmt_rate(er->ingest1_always, r3, sizeof r3));
    fprintf(f, "  one day of 10-second points (%zu): raw range %.3f ms, "
               "1-minute avg %.3f ms (target: < 1 ms)\n",
            er->day_points, er->raw_day_ms, er->avg1m_day_ms);
}

static void print_engine_json(FILE *f, const engine_result *er)
{
    fprintf(f, ",\"engine\":{\"measured\":%s", er->measured ? "true" : "false");
    if (er->measured)
        fprintf(f,
                ",\"ingest_points\":%zu"
                ",\"ingest_one_series_sync_none_pps\":%.0f"
                ",\"ingest_100_series_sync_none_pps\":%.0f"
                ",\"ingest_one_series_sync_always_pps\":%.0f"
                ",\"day_points\":%zu,\"raw_day_ms\":%.4f"
                ",\"avg_1m_day_ms\":%.4f",
                er->ingest_points, er->ingest1_none, er->ingest100_none,
                er->ingest1_always, er->day_points, er->raw_day_ms,
                er->avg1m_day_ms);
    fputc('}', f);
}

/* The engine part's figures, for the server part's ratios. */
static ts_server_embedded embedded_of(const engine_result *er)
{
    ts_server_embedded e = {0};
    e.known = er->measured;
    e.ingest1_none = er->ingest1_none;
    e.ingest100_none = er->ingest100_none;
    e.ingest1_always = er->ingest1_always;
    e.raw_day_ms = er->raw_day_ms;
    e.avg1m_day_ms = er->avg1m_day_ms;
    return e;
}

static void print_json(FILE *f, const ts_cfg *cfg, const set_result *res,
                       const engine_result *er, const ts_server_result *sr,
                       double elapsed)
{
    fputs("{\"benchmark\":\"ts\",\"cairn_version\":", f);
    bench_json_str(f, cairn_version_string());
    fputs(",\"parts\":[", f);
    for (size_t k = 0, n = 0; k < NPARTS; k++)
        if (cfg->parts[k])
            fprintf(f, "%s\"%s\"", n++ ? "," : "", PARTS[k].name);
    fprintf(f,
            "],\"quick\":%s,\"runs\":%d,\"seed\":%" PRIu64
            ",\"chunk_size\":%zu,\"seal_zstd_level\":%d,\"codec\":{\"sets\":[",
            cfg->quick ? "true" : "false", cfg->runs, cfg->seed,
            cfg->chunk_size, TS_SEAL_LEVEL);
    bool firstset = true;
    for (int i = 0; i < NSETS; i++) {
        const set_result *r = &res[i];
        if (!cfg->sets[i])
            continue;
        if (!firstset)
            fputc(',', f);
        firstset = false;
        fputs("{\"name\":", f);
        bench_json_str(f, SET_NAMES[i]);
        fputs(",\"source\":", f);
        bench_json_str(f, r->set.source);
        if (!r->measured) {
            fputs(",\"skipped\":", f);
            bench_json_str(f, r->set.skipped ? r->set.skipped : "not measured");
            fputc('}', f);
            continue;
        }
        size_t np = r->set.npts;
        fprintf(f, ",\"series\":%zu,\"points\":%zu,\"live\":", r->set.nseries,
                np);
        json_chunks(f, &r->live, np);
        fputs(",\"sealed\":", f);
        json_chunks(f, &r->sealed, np);
        fputs(",\"uncompressed\":", f);
        json_chunks(f, &r->plain, np);
        fprintf(f, ",\"plain_bytes\":%zu,\"zstd19\":{\"bytes\":%" PRIu64
                   ",\"bytes_per_point\":",
                np * 16, r->zstd19);
        bench_json_num(f, bpp(r->zstd19, np));
        fputs(",\"compress_seconds\":", f);
        bench_json_num(f, r->zstd19_s);
        fprintf(f, "},\"zstd3\":{\"bytes\":%" PRIu64 ",\"bytes_per_point\":",
                r->zstd3);
        bench_json_num(f, bpp(r->zstd3, np));
        fputs(",\"compress_seconds\":", f);
        bench_json_num(f, r->zstd3_s);
        fputs("},\"ratios\":{\"sealed_to_zstd19\":", f);
        bench_json_num(f, ratio((double)r->sealed.bytes, (double)r->zstd19));
        fputs(",\"live_to_zstd19\":", f);
        bench_json_num(f, ratio((double)r->live.bytes, (double)r->zstd19));
        fputs(",\"sealed_to_zstd3\":", f);
        bench_json_num(f, ratio((double)r->sealed.bytes, (double)r->zstd3));
        fputs(",\"live_to_target\":", f);
        bench_json_num(f, bpp(r->live.bytes, np) / TS_LIVE_TARGET);
        fputs("},\"speed\":{\"encode_ns_per_point\":", f);
        bench_json_num(f, r->enc_ns);
        fputs(",\"encode_points_per_s\":", f);
        bench_json_num(f, 1e9 / r->enc_ns);
        fputs(",\"decode_live_ns_per_point\":", f);
        bench_json_num(f, r->dec_live_ns);
        fputs(",\"decode_live_points_per_s\":", f);
        bench_json_num(f, 1e9 / r->dec_live_ns);
        fputs(",\"decode_sealed_ns_per_point\":", f);
        bench_json_num(f, r->dec_sealed_ns);
        fputs(",\"decode_sealed_points_per_s\":", f);
        bench_json_num(f, 1e9 / r->dec_sealed_ns);
        fputs(",\"seal_ns_per_point_one_run\":", f);
        bench_json_num(f, r->seal_s * 1e9 / (double)np);
        fprintf(f, "},\"mismatches\":%zu}", r->mismatches);
    }
    verdicts v = get_verdicts(res);
    fputs("],\"targets\":{\"set\":\"machine-metrics\",\"live_max_bytes_per_"
          "point\":",
          f);
    bench_json_num(f, TS_LIVE_TARGET);
    fputs(",\"live\":", f);
    bench_json_num(f, v.known ? v.live : NAN);
    fputs(",\"live_pass\":", f);
    json_bool_or_null(f, v.known, v.live_pass);
    fputs(",\"sealed\":", f);
    bench_json_num(f, v.known ? v.sealed : NAN);
    fputs(",\"zstd19\":", f);
    bench_json_num(f, v.known ? v.zstd19 : NAN);
    fputs(",\"sealed_pass\":", f);
    json_bool_or_null(f, v.known, v.sealed_pass);
    fputs("}}", f);
    if (cfg->parts[PART_ENGINE])
        print_engine_json(f, er);
    if (cfg->parts[PART_SERVER]) {
        ts_server_embedded e = embedded_of(er);
        ts_server_print_json(f, sr, &e);
    }
    fputs(",\"elapsed_seconds\":", f);
    bench_json_num(f, elapsed);
    fputs("}\n", f);
}

static void fmt_speed(double ns, char *buf, size_t n)
{
    char rate[16];
    snprintf(buf, n, "%6.1f ns (%s/s)", ns,
             bench_fmt_rate(1e9 / ns, rate, sizeof rate));
}

static void print_human(FILE *f, const ts_cfg *cfg, const set_result *res,
                        double elapsed)
{
    fprintf(f, "cairn-bench ts (cairn %s): the chunk codec\n",
            cairn_version_string());
    fprintf(f,
            "chunks cut at %zu bytes appendable; sealed = zstd -%d over the "
            "body when smaller;\nzstd -19 / -3 = the same points as one "
            "plain file, 16 bytes each, in one frame\n\n",
            cfg->chunk_size, TS_SEAL_LEVEL);
    for (int i = 0; i < NSETS; i++) {
        if (!cfg->sets[i])
            continue;
        const set_result *r = &res[i];
        fprintf(f, "  %-16s %s%s%s\n", SET_NAMES[i], r->set.source,
                r->measured ? "" : " -- skipped: ",
                r->measured ? "" : (r->set.skipped ? r->set.skipped : "?"));
    }
    fprintf(f, "\nbytes per point\n");
    fprintf(f, "%-16s %7s %8s %7s %7s %7s %8s %8s %8s %8s %8s\n", "set",
            "series", "points", "chunks", "live", "sealed", "uncomp",
            "zstd-19", "zstd-3", "seal/z19", "live/z19");
    for (int i = 0; i < NSETS; i++) {
        const set_result *r = &res[i];
        if (!cfg->sets[i] || !r->measured)
            continue;
        size_t np = r->set.npts;
        fprintf(f,
                "%-16s %7zu %8zu %7zu %7.3f %7.3f %8.3f %8.3f %8.3f %8.3f "
                "%8.3f\n",
                SET_NAMES[i], r->set.nseries, np, r->live.n,
                bpp(r->live.bytes, np), bpp(r->sealed.bytes, np),
                bpp(r->plain.bytes, np), bpp(r->zstd19, np),
                bpp(r->zstd3, np),
                ratio((double)r->sealed.bytes, (double)r->zstd19),
                ratio((double)r->live.bytes, (double)r->zstd19));
    }
    fprintf(f, "\nchunks: live encodings (int / xor), sealed with a zstd "
               "body\n");
    for (int i = 0; i < NSETS; i++) {
        const set_result *r = &res[i];
        if (!cfg->sets[i] || !r->measured)
            continue;
        fprintf(f, "%-16s %zu int, %zu xor; %zu of %zu sealed compressed\n",
                SET_NAMES[i], r->live.nint, r->live.nxor, r->sealed.nzstd,
                r->sealed.n);
    }
    fprintf(f,
            "\ncodec speed, one core, ns/point (points/s), median of %d "
            "run%s; seal: the sizing pass (one run)\n",
            cfg->runs, cfg->runs == 1 ? "" : "s");
    fprintf(f, "%-16s %-22s %-22s %-22s %s\n", "set", "encode", "decode live",
            "decode sealed", "seal (zstd -19)");
    for (int i = 0; i < NSETS; i++) {
        const set_result *r = &res[i];
        if (!cfg->sets[i] || !r->measured)
            continue;
        char a[48], b[48], c[48], d[48];
        fmt_speed(r->enc_ns, a, sizeof a);
        fmt_speed(r->dec_live_ns, b, sizeof b);
        fmt_speed(r->dec_sealed_ns, c, sizeof c);
        fmt_speed(r->seal_s * 1e9 / (double)r->set.npts, d, sizeof d);
        fprintf(f, "%-16s %-22s %-22s %-22s %s\n", SET_NAMES[i], a, b, c, d);
    }
    verdicts v = get_verdicts(res);
    fprintf(f, "\ntargets (machine-metrics):\n");
    if (!v.known) {
        fprintf(f, "  not measured (the set was skipped)\n");
    } else {
        fprintf(f, "  live <= %.2f B/pt (Gorilla): %.3f = %.2fx the target "
                   "-- %s\n",
                TS_LIVE_TARGET, v.live, v.live / TS_LIVE_TARGET,
                v.live_pass ? "pass" : "FAIL");
        fprintf(f, "  sealed <= zstd -19 of the raw points: %.3f vs %.3f = "
                   "%.2fx -- %s\n",
                v.sealed, v.zstd19, v.sealed / v.zstd19,
                v.sealed_pass ? "pass" : "FAIL");
    }
    size_t bad = 0;
    for (int i = 0; i < NSETS; i++)
        bad += res[i].mismatches;
    fprintf(f, "every chunk decoded to its points: %s\n",
            bad ? "NO (see stderr)" : "yes");
    fprintf(f, "elapsed %.1f s\n", elapsed);
}

/* ---------- the command ---------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cairn-bench ts [--json] [--quick] [--tsdata PATH] "
            "[--chunk-size BYTES]\n"
            "                      [--runs N] [--seed N] [--sets LIST] "
            "[--parts LIST]\n"
            "                      [--server-bin PATH]\n"
            "\n"
            "The time-series benchmark. Part codec: bytes per point of the "
            "chunk codec\n"
            "(live = appendable chunks, sealed = zstd -19 over each body, "
            "uncompressed)\n"
            "next to the same points as a plain 16-bytes-per-point file "
            "under zstd -19\n"
            "and -3, same run; every chunk is decoded and checked; encode "
            "and decode\n"
            "speed on one core. Part engine: embedded ingest in batches of "
            "1,000 points\n"
            "and range latency over one day of 10-second points. Part "
            "server: cairn-server\n"
            "started on a free 127.0.0.1 port (sync always, then none): "
            "TS.MADD ingest,\n"
            "1,000 points a command, 16 in flight, 1 and 4 connections; "
            "TS.RANGE and\n"
            "TS.MRANGE median and p99 latency over 100 series of one day; "
            "every reply\n"
            "is checked; beside the engine part's figures.\n"
            "\n"
            "  --tsdata PATH     the machine-metrics .csv.zst (default %s;\n"
            "                    skipped with a note when that is missing)\n"
            "  --chunk-size B    cut a chunk once it reaches B bytes "
            "appendable (default %u)\n"
            "  --runs N          timed runs, median reported (default 5; "
            "--quick 1)\n"
            "  --seed N          seed of the generated sets (default 1)\n"
            "  --sets LIST       comma-separated subset of machine-metrics,"
            "random-walk,counters\n"
            "  --parts LIST      comma-separated subset of codec,engine,"
            "server (default: all)\n"
            "  --server-bin PATH the cairn-server to start (default: the "
            "one next to\n"
            "                    cairn-bench; skipped with a note when that "
            "is missing)\n"
            "  --quick           generated sets of 20 x 2,000 points, 1 run; "
            "smaller\n"
            "                    engine and server runs (10 queried series, "
            "21 queries)\n"
            "  --json            one JSON object instead of the tables\n"
            "Exit status: 0 ran (whatever the verdicts), 1 error, a chunk "
            "that did not\ndecode to its points or a wrong server reply, 2 "
            "bad usage.\n",
            CAIRN_BENCH_TSDATA, TS_DEFAULT_CHUNK);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static bool parse_names(const char *s, const char *const *names, size_t n,
                        bool *sel)
{
    memset(sel, 0, n * sizeof sel[0]);
    const char *p = s;
    bool any = false;
    while (*p) {
        size_t len = strcspn(p, ",");
        bool found = false;
        for (size_t i = 0; i < n; i++)
            if (strlen(names[i]) == len && strncmp(p, names[i], len) == 0)
                sel[i] = found = true;
        if (!found)
            return false;
        any = true;
        p += len;
        if (*p == ',')
            p++;
    }
    return any;
}

int cairn_bench_ts_main(int argc, char **argv)
{
    ts_cfg cfg = {.tsdata = CAIRN_BENCH_TSDATA,
                  .chunk_size = TS_DEFAULT_CHUNK,
                  .seed = 1};
    for (int i = 0; i < NSETS; i++)
        cfg.sets[i] = true;
    for (size_t k = 0; k < NPARTS; k++)
        cfg.parts[k] = true;
    int runs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        if (strcmp(a, "--json") == 0) {
            cfg.json = true;
        } else if (strcmp(a, "--quick") == 0) {
            cfg.quick = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        } else if (strcmp(a, "--tsdata") == 0) {
            if (!v || !*v) {
                fprintf(stderr, "ts: --tsdata needs a path\n");
                return EXIT_USAGE;
            }
            cfg.tsdata = v;
            cfg.tsdata_given = true;
            i++;
        } else if (strcmp(a, "--server-bin") == 0) {
            if (!v || !*v) {
                fprintf(stderr, "ts: --server-bin needs a path\n");
                return EXIT_USAGE;
            }
            cfg.server_bin = v;
            i++;
        } else if (strcmp(a, "--chunk-size") == 0) {
            if (!v || !parse_u64(v, &u) || u < TS_MIN_CHUNK ||
                u > TS_MAX_CHUNK) {
                fprintf(stderr, "ts: --chunk-size needs bytes in %u..%u\n",
                        TS_MIN_CHUNK, TS_MAX_CHUNK);
                return EXIT_USAGE;
            }
            cfg.chunk_size = (size_t)u;
            i++;
        } else if (strcmp(a, "--runs") == 0) {
            if (!v || !parse_u64(v, &u) || u < 1 || u > 64) {
                fprintf(stderr, "ts: --runs needs a count in 1..64\n");
                return EXIT_USAGE;
            }
            runs = (int)u;
            i++;
        } else if (strcmp(a, "--seed") == 0) {
            if (!v || !parse_u64(v, &u)) {
                fprintf(stderr, "ts: --seed needs an unsigned integer\n");
                return EXIT_USAGE;
            }
            cfg.seed = u;
            i++;
        } else if (strcmp(a, "--sets") == 0) {
            if (!v || !parse_names(v, SET_NAMES, NSETS, cfg.sets)) {
                fprintf(stderr, "ts: --sets needs a comma-separated subset "
                                "of machine-metrics,random-walk,counters\n");
                return EXIT_USAGE;
            }
            i++;
        } else if (strcmp(a, "--parts") == 0) {
            const char *names[NPARTS];
            for (size_t k = 0; k < NPARTS; k++)
                names[k] = PARTS[k].name;
            if (!v || !parse_names(v, names, NPARTS, cfg.parts)) {
                fprintf(stderr, "ts: --parts needs a comma-separated list "
                                "of:");
                for (size_t k = 0; k < NPARTS; k++)
                    fprintf(stderr, " %s (%s)", PARTS[k].name,
                            PARTS[k].summary);
                fputc('\n', stderr);
                return EXIT_USAGE;
            }
            i++;
        } else {
            fprintf(stderr, "ts: unknown option '%s' (try 'cairn-bench ts "
                            "--help')\n",
                    a);
            return EXIT_USAGE;
        }
    }
    cfg.runs = runs ? runs : (cfg.quick ? 1 : 5);
    cfg.gen_series = cfg.quick ? 20 : 100;
    cfg.gen_points = cfg.quick ? 2000 : 10000;

    if (!cfg.parts[PART_CODEC])
        for (int i = 0; i < NSETS; i++)
            cfg.sets[i] = false;
    double t0 = bench_now();
    set_result res[NSETS];
    memset(res, 0, sizeof res);
    int status = EXIT_OK;
    engine_result er;
    memset(&er, 0, sizeof er);
    ts_server_result sr;
    memset(&sr, 0, sizeof sr);
    for (int i = 0; i < NSETS && status == EXIT_OK; i++) {
        set_result *r = &res[i];
        r->set.name = SET_NAMES[i];
        if (!cfg.sets[i])
            continue;
        int rc = 0;
        if (i == SET_MACHINE) {
            FILE *probe = cfg.tsdata_given ? NULL : fopen(cfg.tsdata, "rb");
            if (!cfg.tsdata_given && !probe) {
                snprintf(r->set.source, sizeof r->set.source, "%s",
                         cfg.tsdata);
                r->set.skipped = "file not found (--tsdata PATH)";
                fprintf(stderr,
                        "cairn-bench ts: %s not found: machine-metrics "
                        "skipped (--tsdata PATH)\n",
                        cfg.tsdata);
                continue;
            }
            if (probe)
                fclose(probe);
            rc = load_tsdata(cfg.tsdata, &r->set);
        } else if (i == SET_WALK) {
            rc = gen_walk(&cfg, &r->set);
        } else {
            rc = gen_counters(&cfg, &r->set);
        }
        if (rc == 0)
            rc = measure_set(&cfg, r);
        if (rc != 0)
            status = EXIT_ERROR;
    }
    if (status == EXIT_OK && cfg.parts[PART_ENGINE] &&
        measure_engine(&cfg, &er) != 0) {
        fprintf(stderr, "cairn-bench ts: the engine part failed\n");
        status = EXIT_ERROR;
    }
    if (status == EXIT_OK && cfg.parts[PART_SERVER]) {
        ts_server_cfg sc = {.quick = cfg.quick,
                            .runs = cfg.runs,
                            .seed = cfg.seed,
                            .server_bin = cfg.server_bin};
        if (ts_server_measure(&sc, &sr) != 0) {
            fprintf(stderr, "cairn-bench ts: the server part failed\n");
            status = EXIT_ERROR;
        }
    }
    double elapsed = bench_now() - t0;
    size_t bad = 0;
    for (int i = 0; i < NSETS; i++)
        bad += res[i].mismatches;
    if (status == EXIT_OK) {
        /* mismatches too: the figures are printed, then the failure */
        if (cfg.json) {
            print_json(stdout, &cfg, res, &er, &sr, elapsed);
        } else {
            if (cfg.parts[PART_CODEC])
                print_human(stdout, &cfg, res, elapsed);
            if (er.measured)
                print_engine_human(stdout, &er);
            if (cfg.parts[PART_SERVER]) {
                ts_server_embedded e = embedded_of(&er);
                ts_server_print_human(stdout, &sr, &e);
            }
        }
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "cairn-bench ts: cannot write the results: %s\n",
                    strerror(errno));
            status = EXIT_ERROR;
        }
    }
    if (bad) {
        fprintf(stderr,
                "cairn-bench ts: %zu chunk%s did not decode to their "
                "points\n",
                bad, bad == 1 ? "" : "s");
        status = EXIT_ERROR;
    }
    for (int i = 0; i < NSETS; i++) {
        chunks_free(&res[i].live);
        chunks_free(&res[i].sealed);
        chunks_free(&res[i].plain);
        set_free(&res[i].set);
    }
    return status;
}
