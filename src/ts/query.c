/*
 * query.c — time-series range queries and aggregation (query.h): points
 * from a source go through the range and the filters, into the current
 * bucket's accumulator; a bucket is emitted when a point of a later bucket
 * arrives (or the source ends), preceded by the empty buckets in between
 * with EMPTY. The sink applies direction and COUNT: forward with COUNT
 * stops reading once full; reverse keeps the last COUNT in a ring.
 *
 * Invariants: bucket arithmetic is done in 128 bits (a bucket may start
 * before INT64_MIN or end after INT64_MAX; reported timestamps saturate);
 * every allocation failure is CAIRN_ENOMEM with nothing leaked.
 * Locking: none; everything lives on the caller's stack or heap.
 */
#include "ts/query.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cairn.h"

typedef __int128 i128;

static const char *const agg_names[CAIRN_TS_AGG__COUNT] = {
    [CAIRN_TS_AGG_AVG] = "avg",     [CAIRN_TS_AGG_SUM] = "sum",
    [CAIRN_TS_AGG_MIN] = "min",     [CAIRN_TS_AGG_MAX] = "max",
    [CAIRN_TS_AGG_RANGE] = "range", [CAIRN_TS_AGG_COUNT] = "count",
    [CAIRN_TS_AGG_FIRST] = "first", [CAIRN_TS_AGG_LAST] = "last",
    [CAIRN_TS_AGG_STD_P] = "std.p", [CAIRN_TS_AGG_STD_S] = "std.s",
    [CAIRN_TS_AGG_VAR_P] = "var.p", [CAIRN_TS_AGG_VAR_S] = "var.s",
    [CAIRN_TS_AGG_TWA] = "twa",
};

int cairn_ts_aggregator_from_name(const char *name, size_t len)
{
    if (!name)
        return CAIRN_EINVAL;
    for (int a = 1; a < CAIRN_TS_AGG__COUNT; a++)
        if (strlen(agg_names[a]) == len && strncasecmp(agg_names[a], name, len) == 0)
            return a;
    return CAIRN_EINVAL;
}

const char *cairn_ts_aggregator_name(cairn_ts_aggregator agg)
{
    if ((int)agg <= 0 || agg >= CAIRN_TS_AGG__COUNT)
        return NULL;
    return agg_names[agg];
}

static int64_t sat64(i128 v)
{
    if (v < (i128)INT64_MIN)
        return INT64_MIN;
    if (v > (i128)INT64_MAX)
        return INT64_MAX;
    return (int64_t)v;
}

/* ---- per-bucket accumulator ---- */

typedef struct acc {
    uint64_t n;
    double sum, min, max, first, last;
    double mean, m2; /* Welford */
    bool all_finite;
} acc;

static void acc_reset(acc *a)
{
    memset(a, 0, sizeof *a);
    a->all_finite = true;
}

static void acc_add(acc *a, double v)
{
    if (a->n == 0) {
        a->min = a->max = a->first = v;
    } else {
        if (v < a->min)
            a->min = v;
        if (v > a->max)
            a->max = v;
    }
    a->last = v;
    a->n++;
    a->sum += v;
    double d = v - a->mean;
    a->mean += d / (double)a->n;
    a->m2 += d * (v - a->mean);
    if (!isfinite(v))
        a->all_finite = false;
}

/* The aggregate of a non-empty accumulator (twa aside). */
static double acc_value(const acc *a, cairn_ts_aggregator agg)
{
    double n = (double)a->n;
    switch (agg) {
    case CAIRN_TS_AGG_AVG:
        /* The plain sum, as the reference implementation reports it; the
         * running mean when only the sum overflowed. */
        if (!isfinite(a->sum) && a->all_finite)
            return a->mean;
        return a->sum / n;
    case CAIRN_TS_AGG_SUM: return a->sum;
    case CAIRN_TS_AGG_MIN: return a->min;
    case CAIRN_TS_AGG_MAX: return a->max;
    case CAIRN_TS_AGG_RANGE: return a->max - a->min;
    case CAIRN_TS_AGG_COUNT: return n;
    case CAIRN_TS_AGG_FIRST: return a->first;
    case CAIRN_TS_AGG_LAST: return a->last;
    case CAIRN_TS_AGG_VAR_P: return a->m2 / n;
    case CAIRN_TS_AGG_VAR_S: return a->n > 1 ? a->m2 / (n - 1) : 0.0;
    case CAIRN_TS_AGG_STD_P: return sqrt(a->m2 / n);
    case CAIRN_TS_AGG_STD_S: return a->n > 1 ? sqrt(a->m2 / (n - 1)) : 0.0;
    default: return NAN;
    }
}

/* ---- the sink: direction, COUNT, max_points ---- */

typedef struct sink {
    cairn_ts_point *buf;
    size_t n, cap;
    bool ring;       /* reverse with COUNT: keep the last `limit` */
    size_t head;     /* ring: index of the oldest */
    uint64_t limit;  /* COUNT, or UINT64_MAX */
    size_t max_points;
    bool full;       /* forward: COUNT reached, stop reading */
} sink;

static int sink_reserve(sink *s, size_t extra)
{
    if (s->ring)
        return 0;
    if (extra > SIZE_MAX / sizeof(cairn_ts_point) - s->n)
        return CAIRN_ENOMEM;
    size_t need = s->n + extra;
    if (s->max_points && need > s->max_points)
        return CAIRN_ETOOLARGE;
    if (need <= s->cap)
        return 0;
    size_t nc = s->cap ? s->cap : 64;
    while (nc < need)
        nc = nc > SIZE_MAX / 2 / sizeof(cairn_ts_point) ? need : nc * 2;
    cairn_ts_point *nb = realloc(s->buf, nc * sizeof *nb);
    if (!nb)
        return CAIRN_ENOMEM;
    s->buf = nb;
    s->cap = nc;
    return 0;
}

static int sink_put(sink *s, int64_t ts, double v)
{
    if (s->full)
        return 0;
    if (s->ring) {
        cairn_ts_point p = { ts, v };
        if (s->n < s->cap) {
            s->buf[s->n++] = p;
        } else {
            s->buf[s->head] = p;
            s->head = (s->head + 1) % s->cap;
        }
        return 0;
    }
    int rc = sink_reserve(s, 1);
    if (rc)
        return rc;
    s->buf[s->n].ts = ts;
    s->buf[s->n].v = v;
    s->n++;
    if ((uint64_t)s->n >= s->limit)
        s->full = true;
    return 0;
}

/* ---- the run ---- */

typedef struct run {
    const cairn_ts_query *q;
    cairn_ts_source *src;
    sink out;
    int64_t *fts; /* sorted FILTER_BY_TS */
    size_t nfts, fi;
    int64_t align;
    /* aggregation */
    bool open;        /* a bucket is open */
    i128 bstart;      /* its start */
    acc a;
    bool have_last;   /* a point passed before */
    cairn_ts_point last;    /* the last point that passed */
    /* twa neighbours of the first and after the last passing point, taken
     * from the stream (unfiltered, non-NaN) */
    bool have_pre;
    cairn_ts_point pre;
    bool have_post;
    cairn_ts_point post;
    /* twa state of the open bucket */
    double tw_num, tw_den;
    bool tw_left_unknown; /* no point before the bucket's first */
    cairn_ts_point tw_pend; /* the latest point of the bucket */
    double tw_pend_w;       /* its weight so far */
    bool tw_have_prev;
    int64_t tw_prev_t;      /* the point before tw_pend */
} run;

static i128 bucket_of(const run *r, int64_t ts)
{
    i128 d = r->q->bucket;
    i128 m = ((i128)ts - r->align) % d;
    if (m < 0)
        m += d;
    return (i128)ts - m;
}

static int64_t report_ts(const run *r, i128 start)
{
    switch (r->q->bucket_ts) {
    case CAIRN_TS_BT_END: return sat64(start + r->q->bucket);
    case CAIRN_TS_BT_MID: return sat64(start + r->q->bucket / 2);
    default: return sat64(start);
    }
}

static void tw_add(run *r, double v, double w)
{
    r->tw_num += v * w;
    r->tw_den += w;
}

/* A passing point opens the twa state of a bucket; prev is the point
 * before it (the previous bucket's last, or the series' neighbour). */
static void twa_first(run *r, cairn_ts_point x, const cairn_ts_point *prev)
{
    i128 s = r->bstart;
    r->tw_num = r->tw_den = 0;
    r->tw_pend = x;
    if (!prev) {
        r->tw_left_unknown = true;
        r->tw_pend_w = 0;
        r->tw_have_prev = false;
        return;
    }
    r->tw_left_unknown = false;
    r->tw_have_prev = true;
    r->tw_prev_t = prev->ts;
    /* the midpoint between prev and x is at or before the bucket start:
     * x holds from the start; otherwise prev holds up to the midpoint */
    if ((i128)x.ts + prev->ts <= 2 * s) {
        r->tw_pend_w = (double)((i128)x.ts - s);
    } else {
        tw_add(r, prev->v, (double)((i128)prev->ts + x.ts - 2 * s) / 2.0);
        r->tw_pend_w = (double)((i128)x.ts - prev->ts) / 2.0;
    }
}

static void twa_next_in_bucket(run *r, cairn_ts_point x)
{
    double h = (double)((i128)x.ts - r->tw_pend.ts) / 2.0;
    if (r->tw_left_unknown) {
        double left = (double)((i128)r->tw_pend.ts - r->bstart);
        r->tw_pend_w = h < left ? h : left;
        r->tw_left_unknown = false;
    }
    tw_add(r, r->tw_pend.v, r->tw_pend_w + h);
    r->tw_have_prev = true;
    r->tw_prev_t = r->tw_pend.ts;
    r->tw_pend = x;
    r->tw_pend_w = h;
}

static double twa_finish(run *r, const cairn_ts_point *next)
{
    i128 e = r->bstart + r->q->bucket;
    cairn_ts_point x = r->tw_pend;
    if (next) {
        double h = (double)((i128)next->ts - x.ts) / 2.0;
        if (r->tw_left_unknown) {
            double left = (double)((i128)x.ts - r->bstart);
            r->tw_pend_w = h < left ? h : left;
        }
        if ((i128)x.ts + next->ts >= 2 * e) {
            tw_add(r, x.v, r->tw_pend_w + (double)(e - x.ts));
        } else {
            tw_add(r, x.v, r->tw_pend_w + h);
            tw_add(r, next->v, (double)(2 * e - x.ts - next->ts) / 2.0);
        }
    } else if (r->tw_left_unknown) {
        return x.v; /* the only point, with no neighbour either side */
    } else {
        double h = (double)((i128)x.ts - r->tw_prev_t) / 2.0;
        double right = (double)(e - x.ts);
        tw_add(r, x.v, r->tw_pend_w + (h < right ? h : right));
    }
    return r->tw_num / r->tw_den;
}

/* Emit the open bucket; next is the point after its last (twa). */
static int close_bucket(run *r, const cairn_ts_point *next)
{
    double v = r->q->agg == CAIRN_TS_AGG_TWA ? twa_finish(r, next)
                                              : acc_value(&r->a, r->q->agg);
    r->open = false;
    return sink_put(&r->out, report_ts(r, r->bstart), v);
}

/* The value of an empty bucket [s, s + d) between points a and b. */
static double empty_value(const run *r, i128 s, cairn_ts_point a, cairn_ts_point b)
{
    switch (r->q->agg) {
    case CAIRN_TS_AGG_SUM:
    case CAIRN_TS_AGG_COUNT: return 0.0;
    case CAIRN_TS_AGG_LAST: return a.v;
    case CAIRN_TS_AGG_TWA: {
        /* the mean of the line through a and b over the bucket: its value
         * at the bucket's middle */
        double frac = (double)(2 * s + r->q->bucket - 2 * (i128)a.ts) /
                      (double)(2 * ((i128)b.ts - a.ts));
        return a.v + (b.v - a.v) * frac;
    }
    default: return NAN;
    }
}

/* The empty buckets strictly between from_start and to_start. */
static int fill_empty(run *r, i128 from_start, i128 to_start, cairn_ts_point a,
                      cairn_ts_point b)
{
    i128 d = r->q->bucket;
    i128 nb = (to_start - from_start) / d - 1;
    if (nb <= 0)
        return 0;
    i128 first = from_start + d;
    sink *s = &r->out;
    if (s->ring) {
        if (nb > (i128)s->cap) { /* only the last cap ones stay */
            first += (nb - (i128)s->cap) * d;
            nb = (i128)s->cap;
        }
    } else {
        i128 room = s->limit == UINT64_MAX ? nb : (i128)(s->limit - s->n);
        if (nb > room)
            nb = room;
        if (nb > (i128)SIZE_MAX)
            return CAIRN_ENOMEM;
        int rc = sink_reserve(s, (size_t)nb);
        if (rc)
            return rc;
    }
    for (i128 i = 0; i < nb; i++) {
        i128 st = first + i * d;
        int rc = sink_put(s, report_ts(r, st), empty_value(r, st, a, b));
        if (rc)
            return rc;
    }
    return 0;
}

static int open_bucket(run *r, cairn_ts_point p)
{
    r->open = true;
    r->bstart = bucket_of(r, p.ts);
    acc_reset(&r->a);
    if (r->q->agg != CAIRN_TS_AGG_TWA)
        return 0;
    cairn_ts_point prev;
    bool have = false;
    if (r->have_last) {
        prev = r->last;
        have = true;
    } else if (r->have_pre) {
        prev = r->pre;
        have = true;
    } else if (r->src->before) {
        int rc = r->src->before(r->src->ctx, p.ts, &prev);
        if (rc < 0)
            return rc;
        have = rc > 0 && prev.ts < p.ts;
    }
    twa_first(r, p, have ? &prev : NULL);
    return 0;
}

static int feed(run *r, cairn_ts_point p)
{
    int rc;
    if (r->q->agg == CAIRN_TS_AGG_NONE)
        return sink_put(&r->out, p.ts, p.v);
    if (r->open && bucket_of(r, p.ts) == r->bstart) {
        acc_add(&r->a, p.v);
        if (r->q->agg == CAIRN_TS_AGG_TWA)
            twa_next_in_bucket(r, p);
        return 0;
    }
    if (r->open) {
        i128 prev_start = r->bstart;
        if ((rc = close_bucket(r, &p)))
            return rc;
        if (r->q->empty && (rc = fill_empty(r, prev_start, bucket_of(r, p.ts),
                                            r->last, p)))
            return rc;
        if (r->out.full)
            return 0;
    }
    if ((rc = open_bucket(r, p)))
        return rc;
    acc_add(&r->a, p.v);
    return 0;
}

static bool passes(run *r, cairn_ts_point p)
{
    const cairn_ts_query *q = r->q;
    if (p.ts < q->from || p.ts > q->to)
        return false;
    if (r->nfts) {
        while (r->fi < r->nfts && r->fts[r->fi] < p.ts)
            r->fi++;
        if (r->fi == r->nfts || r->fts[r->fi] != p.ts)
            return false;
    }
    if (q->has_filter_value && !(p.v >= q->filter_min && p.v <= q->filter_max))
        return false;
    if (q->agg != CAIRN_TS_AGG_NONE && isnan(p.v))
        return false;
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int run_stream(run *r)
{
    bool have_any = false;
    int64_t prev_ts = 0;
    bool twa = r->q->agg == CAIRN_TS_AGG_TWA;
    for (;;) {
        const cairn_ts_point *pts = NULL;
        size_t np = 0;
        int rc = r->src->next(r->src->ctx, &pts, &np);
        if (rc < 0)
            return rc;
        if (np == 0)
            break;
        if (!pts)
            return CAIRN_EINVAL;
        for (size_t i = 0; i < np; i++) {
            cairn_ts_point p = pts[i];
            if (have_any && p.ts <= prev_ts)
                return CAIRN_EINVAL;
            have_any = true;
            prev_ts = p.ts;
            if (!passes(r, p)) {
                if (twa && !isnan(p.v)) {
                    if (!r->have_last) {
                        r->pre = p;
                        r->have_pre = true;
                    } else if (!r->have_post) {
                        r->post = p;
                        r->have_post = true;
                    }
                }
                if (p.ts > r->q->to && (!twa || r->have_post || !r->have_last))
                    return 0; /* nothing more can pass or be needed */
                continue;
            }
            if ((rc = feed(r, p)))
                return rc;
            r->last = p;
            r->have_last = true;
            r->have_post = false;
            if (r->out.full)
                return 0;
        }
    }
    return 0;
}

static int finish(run *r)
{
    if (!r->open || r->out.full)
        return 0;
    cairn_ts_point next;
    bool have = false;
    if (r->q->agg == CAIRN_TS_AGG_TWA) {
        if (r->have_post) {
            next = r->post;
            have = true;
        } else if (r->src->after) {
            int rc = r->src->after(r->src->ctx, r->last.ts, &next);
            if (rc < 0)
                return rc;
            have = rc > 0 && next.ts > r->last.ts;
        }
    }
    return close_bucket(r, have ? &next : NULL);
}

/* The result in its final order, as a fresh array. */
static int take_result(run *r, cairn_ts_point **out, size_t *n)
{
    sink *s = &r->out;
    if (s->n == 0) {
        free(s->buf);
        s->buf = NULL;
        return 0;
    }
    if (s->ring) {
        /* oldest first at head; reversed: newest first */
        cairn_ts_point *res = malloc(s->n * sizeof *res);
        if (!res)
            return CAIRN_ENOMEM;
        for (size_t i = 0; i < s->n; i++)
            res[i] = s->buf[(s->head + s->n - 1 - i) % s->n];
        free(s->buf);
        s->buf = NULL;
        *out = res;
        *n = s->n;
        return 0;
    }
    if (r->q->reverse) {
        for (size_t i = 0, j = s->n - 1; i < j; i++, j--) {
            cairn_ts_point t = s->buf[i];
            s->buf[i] = s->buf[j];
            s->buf[j] = t;
        }
    }
    if (r->q->has_count && s->n > r->q->count)
        s->n = (size_t)r->q->count; /* reverse without a ring: the newest */
    *out = s->buf;
    *n = s->n;
    s->buf = NULL;
    return 0;
}

int cairn_ts_query_run(const cairn_ts_query *q, cairn_ts_source *src,
                       cairn_ts_point **out, size_t *n)
{
    if (!q || !src || !src->next || !out || !n)
        return CAIRN_EINVAL;
    *out = NULL;
    *n = 0;
    if ((int)q->agg < 0 || q->agg >= CAIRN_TS_AGG__COUNT)
        return CAIRN_EINVAL;
    if (q->agg != CAIRN_TS_AGG_NONE && q->bucket <= 0)
        return CAIRN_EINVAL;
    if (q->has_count && q->count == 0)
        return CAIRN_EINVAL;
    if (q->n_filter_ts && !q->filter_ts)
        return CAIRN_EINVAL;
    if ((int)q->bucket_ts < 0 || q->bucket_ts > CAIRN_TS_BT_MID ||
        (int)q->align_kind < 0 || q->align_kind > CAIRN_TS_ALIGN_END)
        return CAIRN_EINVAL;
    if (q->from > q->to)
        return 0;

    run r;
    memset(&r, 0, sizeof r);
    r.q = q;
    r.src = src;
    r.align = q->align_kind == CAIRN_TS_ALIGN_START ? q->from
            : q->align_kind == CAIRN_TS_ALIGN_END   ? q->to
                                                    : q->align;
    r.out.limit = q->has_count ? q->count : UINT64_MAX;
    r.out.max_points = q->max_points;
    if (q->has_count && q->reverse) {
        uint64_t cap = q->count;
        if (q->max_points && cap > q->max_points)
            cap = (uint64_t)q->max_points + 1; /* one more tells ETOOLARGE */
        if (cap > SIZE_MAX / sizeof(cairn_ts_point) || cap > ((uint64_t)1 << 40))
            cap = 0; /* absurd: fall back to collecting everything */
        if (cap) {
            r.out.ring = true;
            r.out.cap = (size_t)cap;
            r.out.buf = malloc(r.out.cap * sizeof *r.out.buf);
            if (!r.out.buf)
                return CAIRN_ENOMEM;
        }
    }
    if (!r.out.ring && q->reverse)
        r.out.limit = UINT64_MAX; /* COUNT applies after reversing */
    if (q->n_filter_ts) {
        r.fts = malloc(q->n_filter_ts * sizeof *r.fts);
        if (!r.fts) {
            free(r.out.buf);
            return CAIRN_ENOMEM;
        }
        memcpy(r.fts, q->filter_ts, q->n_filter_ts * sizeof *r.fts);
        qsort(r.fts, q->n_filter_ts, sizeof *r.fts, cmp_i64);
        r.nfts = q->n_filter_ts;
    }
    int rc = run_stream(&r);
    if (!rc)
        rc = finish(&r);
    if (!rc && r.out.ring && q->max_points && r.out.n > q->max_points)
        rc = CAIRN_ETOOLARGE;
    if (!rc)
        rc = take_result(&r, out, n);
    free(r.fts);
    free(r.out.buf);
    if (rc) {
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* ---- multi-series reduce ---- */

int cairn_ts_reduce(cairn_ts_aggregator reducer,
                    const cairn_ts_point *const *series, const size_t *lens,
                    size_t nseries, bool reverse, cairn_ts_point **out,
                    size_t *n)
{
    if (!out || !n || (nseries && (!series || !lens)))
        return CAIRN_EINVAL;
    *out = NULL;
    *n = 0;
    switch (reducer) {
    case CAIRN_TS_AGG_AVG: case CAIRN_TS_AGG_SUM: case CAIRN_TS_AGG_MIN:
    case CAIRN_TS_AGG_MAX: case CAIRN_TS_AGG_RANGE: case CAIRN_TS_AGG_COUNT:
    case CAIRN_TS_AGG_STD_P: case CAIRN_TS_AGG_STD_S: case CAIRN_TS_AGG_VAR_P:
    case CAIRN_TS_AGG_VAR_S:
        break;
    default:
        return CAIRN_EINVAL;
    }
    size_t total = 0;
    for (size_t i = 0; i < nseries; i++) {
        if (lens[i] && !series[i])
            return CAIRN_EINVAL;
        for (size_t j = 1; j < lens[i]; j++) {
            int64_t a = series[i][j - 1].ts, b = series[i][j].ts;
            if (reverse ? a <= b : a >= b)
                return CAIRN_EINVAL;
        }
        if (lens[i] > SIZE_MAX / sizeof(cairn_ts_point) - total)
            return CAIRN_ENOMEM;
        total += lens[i];
    }
    if (total == 0)
        return 0;
    size_t *cur = calloc(nseries, sizeof *cur);
    cairn_ts_point *res = malloc(total * sizeof *res);
    if (!cur || !res) {
        free(cur);
        free(res);
        return CAIRN_ENOMEM;
    }
    size_t nres = 0;
    for (;;) {
        bool any = false;
        int64_t ts = 0;
        for (size_t i = 0; i < nseries; i++) {
            if (cur[i] == lens[i])
                continue;
            int64_t t = series[i][cur[i]].ts;
            if (!any || (reverse ? t > ts : t < ts))
                ts = t;
            any = true;
        }
        if (!any)
            break;
        acc a;
        acc_reset(&a);
        for (size_t i = 0; i < nseries; i++) {
            if (cur[i] < lens[i] && series[i][cur[i]].ts == ts) {
                double v = series[i][cur[i]].v;
                if (!isnan(v))
                    acc_add(&a, v);
                cur[i]++;
            }
        }
        double v;
        if (a.n == 0)
            v = reducer == CAIRN_TS_AGG_COUNT || reducer == CAIRN_TS_AGG_SUM ? 0.0 : NAN;
        else
            v = acc_value(&a, reducer);
        res[nres].ts = ts;
        res[nres].v = v;
        nres++;
    }
    free(cur);
    *out = res;
    *n = nres;
    return 0;
}

/* ---- array source ---- */

static int arr_next(void *ctx, const cairn_ts_point **pts, size_t *n)
{
    cairn_ts_array_source *a = ctx;
    size_t left = a->n - a->pos;
    size_t k = a->batch && a->batch < left ? a->batch : left;
    *pts = a->pts + a->pos;
    *n = k;
    a->pos += k;
    return 0;
}

static int arr_before(void *ctx, int64_t ts, cairn_ts_point *p)
{
    cairn_ts_array_source *a = ctx;
    size_t lo = 0, hi = a->n; /* first index with ts >= ts */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->pts[mid].ts < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (lo > 0) {
        lo--;
        if (!isnan(a->pts[lo].v)) {
            *p = a->pts[lo];
            return 1;
        }
    }
    return 0;
}

static int arr_after(void *ctx, int64_t ts, cairn_ts_point *p)
{
    cairn_ts_array_source *a = ctx;
    size_t lo = 0, hi = a->n; /* first index with ts > ts */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->pts[mid].ts <= ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < a->n; lo++) {
        if (!isnan(a->pts[lo].v)) {
            *p = a->pts[lo];
            return 1;
        }
    }
    return 0;
}

void cairn_ts_array_source_init(cairn_ts_array_source *a, cairn_ts_source *src,
                                const cairn_ts_point *pts, size_t n,
                                size_t batch)
{
    a->pts = pts;
    a->n = pts ? n : 0;
    a->pos = 0;
    a->batch = batch;
    src->next = arr_next;
    src->before = arr_before;
    src->after = arr_after;
    src->ctx = a;
}
