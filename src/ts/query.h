/*
 * query.h — time-series range queries and aggregation (TS.RANGE,
 * TS.REVRANGE and the per-series part of TS.MRANGE): pure functions over
 * the points a source yields, no storage. Semantics (docs/architecture.md,
 * ts/ section): filters (FILTER_BY_TS, FILTER_BY_VALUE) apply to raw points
 * first, then aggregation into buckets, then the direction, then COUNT.
 *
 * Invariants: a source yields points in strictly increasing timestamp order
 * (a point out of order is CAIRN_EINVAL, never a crash); the result is in
 * increasing order, or decreasing with reverse; with aggregation only the
 * current bucket is held while reading (buckets are emitted as they
 * complete), so memory is O(result), and O(count) for a reverse query with
 * COUNT. Nothing aborts on bad input: bad arguments are CAIRN_EINVAL.
 * Locking: none. A query and its source belong to one thread for the call.
 */
#ifndef CAIRN_TS_QUERY_H
#define CAIRN_TS_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ts/chunk.h" /* cairn_ts_point */

typedef enum cairn_ts_aggregator {
    CAIRN_TS_AGG_NONE = 0, /* raw points */
    CAIRN_TS_AGG_AVG,
    CAIRN_TS_AGG_SUM,
    CAIRN_TS_AGG_MIN,
    CAIRN_TS_AGG_MAX,
    CAIRN_TS_AGG_RANGE,
    CAIRN_TS_AGG_COUNT,
    CAIRN_TS_AGG_FIRST,
    CAIRN_TS_AGG_LAST,
    CAIRN_TS_AGG_STD_P,
    CAIRN_TS_AGG_STD_S,
    CAIRN_TS_AGG_VAR_P,
    CAIRN_TS_AGG_VAR_S,
    CAIRN_TS_AGG_TWA,
    CAIRN_TS_AGG__COUNT
} cairn_ts_aggregator;

/* Which timestamp a bucket is reported at (BUCKETTIMESTAMP). */
typedef enum cairn_ts_bucket_ts {
    CAIRN_TS_BT_START = 0, /* "-" / "start" (default) */
    CAIRN_TS_BT_END,       /* "+" / "end": start + duration */
    CAIRN_TS_BT_MID,       /* "~" / "mid": start + duration / 2 */
} cairn_ts_bucket_ts;

/* ALIGN: a timestamp, or the query's from ("-"/"start") or to ("+"/"end").
 * Refusing "start" with a "-" from is the parser's business. */
typedef enum cairn_ts_align_kind {
    CAIRN_TS_ALIGN_VALUE = 0, /* align (0 when ALIGN is absent) */
    CAIRN_TS_ALIGN_START,
    CAIRN_TS_ALIGN_END,
} cairn_ts_align_kind;

typedef struct cairn_ts_query {
    int64_t from, to;  /* inclusive; from > to gives an empty result */
    bool reverse;      /* TS.REVRANGE */
    /* FILTER_BY_TS: active when n_filter_ts > 0; any order, duplicates
     * allowed (not copied beyond the call). */
    const int64_t *filter_ts;
    size_t n_filter_ts;
    /* FILTER_BY_VALUE: min <= v <= max (NaN never passes). */
    bool has_filter_value;
    double filter_min, filter_max;
    /* COUNT: at most count points or buckets; 0 with has_count: EINVAL. */
    bool has_count;
    uint64_t count;
    /* AGGREGATION (agg != CAIRN_TS_AGG_NONE): bucket > 0. */
    cairn_ts_aggregator agg;
    int64_t bucket;
    cairn_ts_align_kind align_kind;
    int64_t align;
    cairn_ts_bucket_ts bucket_ts;
    bool empty; /* EMPTY: report the empty buckets between non-empty ones */
    /* A guard: more result points than this is CAIRN_ETOOLARGE (0: none).
     * EMPTY over a long gap with a short bucket can ask for a lot. */
    size_t max_points;
} cairn_ts_query;

/* Where the points come from. The storage layer feeds one chunk at a time.
 *
 * next: the next batch of the series' points, borrowed until the next call
 *   (*n == 0: no more). Over all calls the points are in strictly
 *   increasing time order and include every point of the series in
 *   [from, to]; points outside the range may come too (they are skipped,
 *   but count as neighbours for twa). Returns 0 or a CAIRN_E* code, which
 *   the query returns as is.
 * before / after (optional; only twa calls them, at most once each): the
 *   series' last point with timestamp < ts, resp. the first with
 *   timestamp > ts, among points whose value is not NaN. Return 1 with *p
 *   set, 0 if there is none, or a CAIRN_E* code. NULL: there is none.
 */
typedef struct cairn_ts_source {
    int (*next)(void *ctx, const cairn_ts_point **pts, size_t *n);
    int (*before)(void *ctx, int64_t ts, cairn_ts_point *p);
    int (*after)(void *ctx, int64_t ts, cairn_ts_point *p);
    void *ctx;
} cairn_ts_source;

/* Run a query. On success *out is a malloc'ed array of *n points (NULL
 * when *n == 0; free with free()). Errors: CAIRN_EINVAL (bad query: an
 * aggregator out of range, bucket <= 0, COUNT 0, a NULL argument; or a
 * source out of order), CAIRN_ENOMEM, CAIRN_ETOOLARGE (max_points), or the
 * source's error; nothing is returned then. */
int cairn_ts_query_run(const cairn_ts_query *q, cairn_ts_source *src,
                       cairn_ts_point **out, size_t *n);

/* Aggregator names ("avg", "sum", "min", "max", "range", "count", "first",
 * "last", "std.p", "std.s", "var.p", "var.s", "twa"), case-insensitive.
 * Returns the enum value (> 0), or CAIRN_EINVAL for anything else. */
int cairn_ts_aggregator_from_name(const char *name, size_t len);
/* The lower-case name, or NULL for CAIRN_TS_AGG_NONE and out of range. */
const char *cairn_ts_aggregator_name(cairn_ts_aggregator agg);

/* TS.MRANGE ... GROUPBY label REDUCE reducer: combine several series'
 * results (each strictly increasing, or strictly decreasing with reverse)
 * into one, a point per timestamp present in any of them, reduced over the
 * values at that timestamp. Reducers: avg, sum, min, max, range, count,
 * std.p, std.s, var.p, var.s (others: CAIRN_EINVAL). NaN values are left
 * out of the reduction (a timestamp whose values are all NaN gives NaN, and
 * 0 for count and sum). *out as for cairn_ts_query_run. Errors:
 * CAIRN_EINVAL (a reducer not listed, an input out of order, NULL series
 * with a non-zero length), CAIRN_ENOMEM. */
int cairn_ts_reduce(cairn_ts_aggregator reducer,
                    const cairn_ts_point *const *series, const size_t *lens,
                    size_t nseries, bool reverse, cairn_ts_point **out,
                    size_t *n);

/* A source over an array of points (strictly increasing; not copied),
 * yielding at most batch points a call (0: all at once). For tests, and
 * for callers holding a decoded chunk. */
typedef struct cairn_ts_array_source {
    const cairn_ts_point *pts;
    size_t n, pos, batch;
} cairn_ts_array_source;

void cairn_ts_array_source_init(cairn_ts_array_source *a, cairn_ts_source *src,
                                const cairn_ts_point *pts, size_t n,
                                size_t batch);

#endif /* CAIRN_TS_QUERY_H */
