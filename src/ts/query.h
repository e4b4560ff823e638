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

/* cairn_ts_aggregator, cairn_ts_bucket_ts, cairn_ts_align_kind and
 * cairn_ts_query are in cairn.h (cairn_ts_query_range takes a query). */

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
