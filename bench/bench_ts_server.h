/*
 * bench_ts_server.h — the server part of `cairn-bench ts`
 * (bench/bench_ts_server.c): cairn-server started by the benchmark,
 * TS.MADD ingest over RESP and TS.RANGE / TS.MRANGE latency, beside the
 * embedded figures of the engine part.
 *
 * Invariants: ts_server_measure leaves no server running and no data
 * directory behind, whatever its outcome; a result is printed only when
 * measured (or skipped, with the reason).
 * Locking: the calls are made from one thread; ts_server_measure runs
 * its own client threads and joins them before it returns.
 */
#ifndef CAIRN_BENCH_TS_SERVER_H
#define CAIRN_BENCH_TS_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TS_SRV_MAX_RUNS 64
#define TS_SRV_NINGEST 8 /* {always, none} x {1, 100 series} x {1, 4 conns} */
#define TS_SRV_NQUERY 4

typedef struct ts_server_cfg {
    bool quick;
    int runs;              /* ingest runs per case, 1..TS_SRV_MAX_RUNS */
    uint64_t seed;         /* of the queried day's values */
    const char *server_bin; /* NULL: cairn-server next to this program */
} ts_server_cfg;

/* The engine part's figures of the same run (known: it was measured). */
typedef struct ts_server_embedded {
    bool known;
    double ingest1_none, ingest100_none, ingest1_always; /* points/s */
    double raw_day_ms, avg1m_day_ms;                     /* medians */
} ts_server_embedded;

typedef struct ts_server_ingest {
    const char *sync; /* "always" or "none" */
    int series;       /* series per TS.MADD (and per connection): 1, 100 */
    int conns;        /* connections, each with its own series */
    size_t points;    /* per run, all connections together */
    double pps;       /* points/s, median over the runs */
    double run_pps[TS_SRV_MAX_RUNS];
} ts_server_ingest;

typedef struct ts_server_query {
    const char *name;  /* JSON key: range_raw, range_avg_1m, ... */
    const char *label; /* for the table */
    size_t series;     /* series per reply (1 for TS.RANGE) */
    size_t points;     /* points per series in a reply */
    double median_ms, p99_ms;
} ts_server_query;

typedef struct ts_server_result {
    bool measured;
    const char *skipped; /* non-NULL: not measured, and why */
    char server_bin[4096];
    int runs, pipeline, points_per_command;
    ts_server_ingest ingest[TS_SRV_NINGEST];
    size_t day_series, day_points, nqueries;
    ts_server_query q[TS_SRV_NQUERY];
    double elapsed;
} ts_server_result;

/* Run the part. 0 when measured or skipped (r->skipped: the default
 * cairn-server is missing); -1 on a failure, reported on stderr (a server
 * that does not start, a wrong or error reply, an I/O error). */
int ts_server_measure(const ts_server_cfg *cfg, ts_server_result *r);

void ts_server_print_human(FILE *f, const ts_server_result *r,
                           const ts_server_embedded *e);

/* `,"server":{...}` (for the ts JSON object). */
void ts_server_print_json(FILE *f, const ts_server_result *r,
                          const ts_server_embedded *e);

#endif /* CAIRN_BENCH_TS_SERVER_H */
