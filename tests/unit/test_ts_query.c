/*
 * test_ts_query.c — range queries and aggregation (src/ts/query.c) against
 * a brute-force reference written here the plain way (materialise the
 * series, filter, bucket by floor division, compute each aggregate from its
 * bucket's points, twa from each point's interval clipped to the bucket):
 * random series (regular and jittered, constant, random walk, integers,
 * NaN and infinities, negative timestamps) under random queries with every
 * option, fed to the query in random batches, both sliced to the range and
 * as the whole series. Plus the RedisTimeSeries documentation's examples,
 * errors, saturation at the ends of int64, early stop and huge EMPTY gaps
 * under COUNT, and the multi-series reduce.
 * Locking: single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "test_util.h"
#include "ts/query.h"

typedef __int128 i128;
typedef cairn_ts_point pt;

static uint64_t seed = 0x5EEDBA5Eu;

static uint64_t rnd(uint64_t n) { return tu_rand(&seed, n); }
static double rndu(void) { return (double)(tu_splitmix(&seed) >> 11) / 9007199254740992.0; }

/* ---- the reference ---- */

static i128 floordiv(i128 a, i128 b)
{
    i128 q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t sat(i128 v)
{
    return v < INT64_MIN ? INT64_MIN : v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static int64_t ref_report(const cairn_ts_query *q, i128 s)
{
    if (q->bucket_ts == CAIRN_TS_BT_END)
        return sat(s + q->bucket);
    if (q->bucket_ts == CAIRN_TS_BT_MID)
        return sat(s + q->bucket / 2);
    return sat(s);
}

static double ref_twa(const pt *S, size_t ns, size_t first, size_t k, bool hasP,
                      bool hasN, double s, double e)
{
    /* S: [P?] bucket points [N?]; first: index of the bucket's first */
    if (k == 1 && !hasP && !hasN)
        return S[first].v;
    double num = 0, den = 0;
    for (size_t i = first; i < first + k; i++) {
        double t = (double)S[i].ts;
        double a = i > 0 ? (S[i - 1].ts + t) / 2 : t - ((double)S[i + 1].ts - t) / 2;
        double b = i + 1 < ns ? (t + S[i + 1].ts) / 2 : t + (t - (double)S[i - 1].ts) / 2;
        double len = fmin(b, e) - fmax(a, s);
        if (len > 0) {
            num += S[i].v * len;
            den += len;
        }
    }
    if (hasP) {
        double len = fmin(((double)S[0].ts + S[1].ts) / 2, e) - s;
        if (len > 0) {
            num += S[0].v * len;
            den += len;
        }
    }
    if (hasN) {
        double len = e - fmax(((double)S[ns - 2].ts + S[ns - 1].ts) / 2, s);
        if (len > 0) {
            num += S[ns - 1].v * len;
            den += len;
        }
    }
    return num / den;
}

static double ref_agg(cairn_ts_aggregator agg, const pt *p, size_t k)
{
    double sum = 0, mn = p[0].v, mx = p[0].v;
    long double lsum = 0;
    for (size_t i = 0; i < k; i++) {
        sum += p[i].v;
        lsum += p[i].v;
        if (p[i].v < mn) mn = p[i].v;
        if (p[i].v > mx) mx = p[i].v;
    }
    long double mean = lsum / k, ss = 0;
    for (size_t i = 0; i < k; i++)
        ss += (p[i].v - mean) * (p[i].v - mean);
    switch (agg) {
    case CAIRN_TS_AGG_AVG: return isfinite(sum) ? sum / k : (double)mean;
    case CAIRN_TS_AGG_SUM: return sum;
    case CAIRN_TS_AGG_MIN: return mn;
    case CAIRN_TS_AGG_MAX: return mx;
    case CAIRN_TS_AGG_RANGE: return mx - mn;
    case CAIRN_TS_AGG_COUNT: return (double)k;
    case CAIRN_TS_AGG_FIRST: return p[0].v;
    case CAIRN_TS_AGG_LAST: return p[k - 1].v;
    case CAIRN_TS_AGG_VAR_P: return (double)(ss / k);
    case CAIRN_TS_AGG_VAR_S: return k > 1 ? (double)(ss / (k - 1)) : 0;
    case CAIRN_TS_AGG_STD_P: return sqrt((double)(ss / k));
    case CAIRN_TS_AGG_STD_S: return k > 1 ? sqrt((double)(ss / (k - 1))) : 0;
    default: return NAN;
    }
}

/* The whole query the plain way; returns a malloc'ed array. */
static pt *reference(const cairn_ts_query *q, const pt *ser, size_t n, size_t *rn)
{
    *rn = 0;
    pt *F = malloc((n + 1) * sizeof *F);
    size_t nf = 0;
    if (q->from <= q->to) {
        for (size_t i = 0; i < n; i++) {
            pt p = ser[i];
            if (p.ts < q->from || p.ts > q->to)
                continue;
            if (q->n_filter_ts) {
                bool found = false;
                for (size_t j = 0; j < q->n_filter_ts; j++)
                    found |= q->filter_ts[j] == p.ts;
                if (!found)
                    continue;
            }
            if (q->has_filter_value && !(p.v >= q->filter_min && p.v <= q->filter_max))
                continue;
            if (q->agg != CAIRN_TS_AGG_NONE && isnan(p.v))
                continue;
            F[nf++] = p;
        }
    }
    pt *R;
    size_t nr = 0;
    if (q->agg == CAIRN_TS_AGG_NONE) {
        R = F;
        nr = nf;
    } else {
        int64_t align = q->align_kind == CAIRN_TS_ALIGN_START ? q->from
                      : q->align_kind == CAIRN_TS_ALIGN_END   ? q->to : q->align;
        i128 d = q->bucket;
        size_t cap = 16;
        R = malloc(cap * sizeof *R);
        size_t i = 0;
        i128 prev_s = 0;
        while (i < nf) {
            i128 s = align + floordiv((i128)F[i].ts - align, d) * d;
            size_t j = i;
            while (j < nf && align + floordiv((i128)F[j].ts - align, d) * d == s)
                j++;
            if (q->empty && i > 0) {
                for (i128 es = prev_s + d; es < s; es += d) {
                    double v = NAN;
                    pt A = F[i - 1], B = F[i];
                    if (q->agg == CAIRN_TS_AGG_SUM || q->agg == CAIRN_TS_AGG_COUNT)
                        v = 0;
                    else if (q->agg == CAIRN_TS_AGG_LAST)
                        v = A.v;
                    else if (q->agg == CAIRN_TS_AGG_TWA)
                        v = A.v + (B.v - A.v) * (((double)es + (double)d / 2 - A.ts) /
                                                 ((double)B.ts - A.ts));
                    if (nr == cap)
                        R = realloc(R, (cap *= 2) * sizeof *R);
                    R[nr++] = (pt){ ref_report(q, es), v };
                }
            }
            double v;
            if (q->agg == CAIRN_TS_AGG_TWA) {
                pt *S = malloc((j - i + 2) * sizeof *S);
                size_t ns = 0;
                bool hasP = false, hasN = false;
                if (i > 0) {
                    S[ns++] = F[i - 1];
                    hasP = true;
                } else {
                    for (size_t x = n; x-- > 0;)
                        if (ser[x].ts < F[i].ts && !isnan(ser[x].v)) {
                            S[ns++] = ser[x];
                            hasP = true;
                            break;
                        }
                }
                size_t first = ns;
                for (size_t x = i; x < j; x++)
                    S[ns++] = F[x];
                if (j < nf) {
                    S[ns++] = F[j];
                    hasN = true;
                } else {
                    for (size_t x = 0; x < n; x++)
                        if (ser[x].ts > F[j - 1].ts && !isnan(ser[x].v)) {
                            S[ns++] = ser[x];
                            hasN = true;
                            break;
                        }
                }
                v = ref_twa(S, ns, first, j - i, hasP, hasN, (double)s, (double)(s + d));
                free(S);
            } else {
                v = ref_agg(q->agg, F + i, j - i);
            }
            if (nr == cap)
                R = realloc(R, (cap *= 2) * sizeof *R);
            R[nr++] = (pt){ ref_report(q, s), v };
            prev_s = s;
            i = j;
        }
        free(F);
    }
    if (q->reverse)
        for (size_t a = 0, b = nr ? nr - 1 : 0; a < b; a++, b--) {
            pt t = R[a];
            R[a] = R[b];
            R[b] = t;
        }
    if (q->has_count && nr > q->count)
        nr = q->count;
    *rn = nr;
    return R;
}

/* ---- comparing ---- */

static bool same_bits(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static bool close_to(double a, double b, double scale)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    if (!isfinite(a) || !isfinite(b))
        return a == b;
    return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b)) + 1e-9 * scale;
}

static int check_equal(const cairn_ts_query *q, const pt *got, size_t ng,
                       const pt *want, size_t nw, double vmax, char *why, size_t whylen)
{
    if (ng != nw) {
        snprintf(why, whylen, "count %zu, want %zu", ng, nw);
        return 0;
    }
    for (size_t i = 0; i < ng; i++) {
        if (got[i].ts != want[i].ts) {
            snprintf(why, whylen, "[%zu] ts %lld, want %lld", i, (long long)got[i].ts,
                     (long long)want[i].ts);
            return 0;
        }
        bool ok;
        switch (q->agg) {
        case CAIRN_TS_AGG_VAR_P:
        case CAIRN_TS_AGG_VAR_S: ok = close_to(got[i].v, want[i].v, vmax * vmax); break;
        case CAIRN_TS_AGG_AVG:
        case CAIRN_TS_AGG_STD_P:
        case CAIRN_TS_AGG_STD_S:
        case CAIRN_TS_AGG_TWA: ok = close_to(got[i].v, want[i].v, vmax); break;
        default: ok = same_bits(got[i].v, want[i].v); break;
        }
        if (!ok) {
            snprintf(why, whylen, "[%zu] ts %lld value %.17g, want %.17g", i,
                     (long long)got[i].ts, got[i].v, want[i].v);
            return 0;
        }
    }
    return 1;
}

/* ---- a test source: the range's slice in random batches, neighbours
 * from the whole series ---- */

typedef struct tsrc {
    const pt *all;
    size_t nall;
    size_t lo, hi, pos; /* the slice [lo, hi) */
    bool random_batches;
    size_t calls;
    int fail_at; /* next call that fails with CAIRN_EIO (0: never) */
} tsrc;

static int tsrc_next(void *ctx, const cairn_ts_point **pts, size_t *n)
{
    tsrc *s = ctx;
    s->calls++;
    if (s->fail_at && (int)s->calls == s->fail_at)
        return CAIRN_EIO;
    size_t left = s->hi - s->pos;
    size_t k = left;
    if (s->random_batches && left)
        k = 1 + (size_t)rnd(left < 40 ? left : 40);
    *pts = s->all + s->pos;
    *n = k;
    s->pos += k;
    return 0;
}

static int tsrc_before(void *ctx, int64_t ts, cairn_ts_point *p)
{
    tsrc *s = ctx;
    for (size_t i = s->nall; i-- > 0;)
        if (s->all[i].ts < ts && !isnan(s->all[i].v)) {
            *p = s->all[i];
            return 1;
        }
    return 0;
}

static int tsrc_after(void *ctx, int64_t ts, cairn_ts_point *p)
{
    tsrc *s = ctx;
    for (size_t i = 0; i < s->nall; i++)
        if (s->all[i].ts > ts && !isnan(s->all[i].v)) {
            *p = s->all[i];
            return 1;
        }
    return 0;
}

static void tsrc_init(tsrc *t, cairn_ts_source *src, const pt *all, size_t n,
                      int64_t from, int64_t to, bool slice)
{
    memset(t, 0, sizeof *t);
    t->all = all;
    t->nall = n;
    t->hi = n;
    if (slice) {
        while (t->lo < n && all[t->lo].ts < from)
            t->lo++;
        t->hi = t->lo;
        while (t->hi < n && all[t->hi].ts <= to)
            t->hi++;
    }
    t->pos = t->lo;
    t->random_batches = true;
    src->next = tsrc_next;
    src->before = tsrc_before;
    src->after = tsrc_after;
    src->ctx = t;
}

/* ---- random series and queries ---- */

static size_t make_series(pt *p, size_t max, double *vmax)
{
    size_t n = (size_t)rnd(max + 1);
    int64_t ts = (int64_t)rnd(2000000) - 1000000;
    int64_t step = 1 + (int64_t)rnd(50);
    int tsmode = (int)rnd(3);   /* regular, jittered, random gaps */
    int vmode = (int)rnd(4);    /* constant, walk, integers, walk with specials */
    double v = (double)((int64_t)rnd(2000) - 1000), c = v;
    *vmax = 1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            if (tsmode == 0)
                ts += step;
            else if (tsmode == 1)
                ts += step + (int64_t)rnd(2 * (uint64_t)step + 1) - step / 2 + 1;
            else
                ts += 1 + (int64_t)rnd(rnd(4) == 0 ? 500 : 20);
        }
        switch (vmode) {
        case 0: v = c; break;
        case 1: v += rndu() * 20 - 10; break;
        case 2: v = (double)((int64_t)rnd(200) - 100); break;
        default:
            v += rndu() * 2 - 1;
            break;
        }
        double out = v;
        if (vmode == 3) {
            uint64_t r = rnd(20);
            if (r == 0)
                out = NAN;
            else if (r == 1)
                out = INFINITY;
            else if (r == 2)
                out = -INFINITY;
        }
        p[i].ts = ts;
        p[i].v = out;
        if (isfinite(out) && fabs(out) > *vmax)
            *vmax = fabs(out);
    }
    return n;
}

static void random_query(cairn_ts_query *q, const pt *ser, size_t n, int64_t *fts)
{
    memset(q, 0, sizeof *q);
    int64_t lo = n ? ser[0].ts : 0, hi = n ? ser[n - 1].ts : 1000;
    int64_t span = hi - lo + 1;
    switch (rnd(5)) {
    case 0: q->from = INT64_MIN; q->to = INT64_MAX; break;
    case 1: q->from = lo - (int64_t)rnd(100); q->to = hi + (int64_t)rnd(100); break;
    case 2: /* possibly empty or reversed */
        q->from = lo + (int64_t)rnd((uint64_t)span + 50) - 25;
        q->to = lo + (int64_t)rnd((uint64_t)span + 50) - 25;
        break;
    default:
        q->from = lo + (int64_t)rnd((uint64_t)span);
        q->to = q->from + (int64_t)rnd((uint64_t)(hi - q->from) + 10);
        break;
    }
    q->reverse = rnd(2);
    if (rnd(4) == 0) {
        size_t k = 1 + (size_t)rnd(30);
        for (size_t i = 0; i < k; i++)
            fts[i] = n && rnd(3) ? ser[rnd(n)].ts : lo + (int64_t)rnd((uint64_t)span);
        q->filter_ts = fts;
        q->n_filter_ts = k;
    }
    if (rnd(4) == 0) {
        q->has_filter_value = true;
        double a = n ? ser[rnd(n)].v : 0, b = n ? ser[rnd(n)].v : 0;
        if (isnan(a)) a = -50;
        if (isnan(b)) b = 50;
        q->filter_min = fmin(a, b);
        q->filter_max = fmax(a, b);
        if (rnd(8) == 0) { /* min > max: nothing passes */
            q->filter_min = 10;
            q->filter_max = -10;
        }
    }
    if (rnd(3) == 0) {
        q->has_count = true;
        q->count = 1 + rnd(rnd(2) ? 5 : 100);
    }
    if (rnd(5)) {
        q->agg = (cairn_ts_aggregator)(1 + rnd(CAIRN_TS_AGG__COUNT - 1));
        static const int64_t durs[] = { 1, 2, 3, 7, 10, 25, 100, 1000, 5000 };
        q->bucket = rnd(6) ? durs[rnd(sizeof durs / sizeof durs[0])]
                           : 1 + (int64_t)rnd((uint64_t)span + 1);
        q->align_kind = (cairn_ts_align_kind)rnd(3);
        if (q->align_kind == CAIRN_TS_ALIGN_VALUE)
            q->align = rnd(3) ? (int64_t)rnd(2000000) - 1000000 : 0;
        q->bucket_ts = (cairn_ts_bucket_ts)rnd(3);
        q->empty = rnd(2);
    }
}

static void test_random_against_reference(void **state)
{
    (void)state;
    enum { MAXN = 400, ITERS = 30000 };
    pt *ser = malloc(MAXN * sizeof *ser);
    int64_t fts[32];
    char why[256];
    size_t nonempty = 0, with_agg = 0, with_empty = 0, twa_runs = 0;
    for (int it = 0; it < ITERS; it++) {
        double vmax;
        size_t n = make_series(ser, rnd(10) ? MAXN : 3, &vmax);
        cairn_ts_query q;
        random_query(&q, ser, n, fts);
        size_t nw;
        pt *want = reference(&q, ser, n, &nw);
        /* 0: the whole series; 1: the range's slice; 2: the whole series
         * without neighbour callbacks (twa finds them in the stream) */
        for (int slice = 0; slice < 3; slice++) {
            tsrc t;
            cairn_ts_source src;
            tsrc_init(&t, &src, ser, n, q.from, q.to, slice == 1);
            if (slice == 2)
                src.before = src.after = NULL;
            pt *got = NULL;
            size_t ng = 99;
            int rc = cairn_ts_query_run(&q, &src, &got, &ng);
            assert_int_equal(rc, 0);
            if (!check_equal(&q, got, ng, want, nw, vmax, why, sizeof why)) {
                fail_msg("iteration %d (%s source): %s; n=%zu from=%lld to=%lld rev=%d "
                         "agg=%s bucket=%lld align=%d/%lld bt=%d empty=%d count=%d/%llu "
                         "fts=%zu fbv=%d",
                         it, slice == 1 ? "sliced" : slice ? "whole, no callbacks" : "whole", why, n, (long long)q.from,
                         (long long)q.to, q.reverse,
                         q.agg ? cairn_ts_aggregator_name(q.agg) : "none",
                         (long long)q.bucket, q.align_kind, (long long)q.align,
                         q.bucket_ts, q.empty, q.has_count,
                         (unsigned long long)q.count, q.n_filter_ts, q.has_filter_value);
            }
            free(got);
        }
        nonempty += nw > 0;
        with_agg += q.agg != CAIRN_TS_AGG_NONE && nw > 0;
        with_empty += q.empty && nw > 2;
        twa_runs += q.agg == CAIRN_TS_AGG_TWA && nw > 0;
        free(want);
    }
    free(ser);
    /* the generator exercised what it should */
    assert_true(nonempty > ITERS / 2);
    assert_true(with_agg > ITERS / 3);
    assert_true(with_empty > ITERS / 20);
    assert_true(twa_runs > ITERS / 40);
}

/* ---- the documentation's examples ---- */

static void run_q(const cairn_ts_query *q, const pt *s, size_t n, pt **out, size_t *nout)
{
    cairn_ts_array_source a;
    cairn_ts_source src;
    cairn_ts_array_source_init(&a, &src, s, n, 2);
    assert_int_equal(cairn_ts_query_run(q, &src, out, nout), 0);
}

static void expect(const pt *got, size_t ng, const pt *want, size_t nw)
{
    assert_int_equal(ng, nw);
    for (size_t i = 0; i < nw; i++) {
        assert_int_equal(got[i].ts, want[i].ts);
        assert_true(same_bits(got[i].v, want[i].v));
    }
}

static cairn_ts_query all_range(void)
{
    cairn_ts_query q;
    memset(&q, 0, sizeof q);
    q.from = INT64_MIN;
    q.to = INT64_MAX;
    return q;
}

static void test_doc_examples(void **state)
{
    (void)state;
    pt *got;
    size_t ng;
    /* ts.range / ts.revrange: temp:TLV, FILTER_BY_VALUE -100 100 */
    const pt tlv[] = { { 1000, 30 }, { 1010, 35 }, { 1020, 9999 }, { 1030, 40 } };
    cairn_ts_query q = all_range();
    q.has_filter_value = true;
    q.filter_min = -100;
    q.filter_max = 100;
    run_q(&q, tlv, 4, &got, &ng);
    expect(got, ng, (pt[]){ { 1000, 30 }, { 1010, 35 }, { 1030, 40 } }, 3);
    free(got);
    q.reverse = true;
    run_q(&q, tlv, 4, &got, &ng);
    expect(got, ng, (pt[]){ { 1030, 40 }, { 1010, 35 }, { 1000, 30 } }, 3);
    free(got);
    q.agg = CAIRN_TS_AGG_AVG;
    q.bucket = 1000;
    run_q(&q, tlv, 4, &got, &ng);
    expect(got, ng, (pt[]){ { 1000, 35 } }, 1);
    free(got);

    /* stock:A, min 20: default alignment, ALIGN 10, ALIGN - from 5 */
    const pt stock[] = { { 1000, 100 }, { 1010, 110 }, { 1020, 120 }, { 2000, 200 }, { 2010, 210 },
                         { 2020, 220 }, { 3000, 300 }, { 3010, 310 }, { 3020, 320 } };
    q = all_range();
    q.reverse = true;
    q.agg = CAIRN_TS_AGG_MIN;
    q.bucket = 20;
    run_q(&q, stock, 9, &got, &ng);
    expect(got, ng, (pt[]){ { 3020, 320 }, { 3000, 300 }, { 2020, 220 }, { 2000, 200 },
                            { 1020, 120 }, { 1000, 100 } }, 6);
    free(got);
    q.align = 10;
    run_q(&q, stock, 9, &got, &ng);
    expect(got, ng, (pt[]){ { 3010, 310 }, { 2990, 300 }, { 2010, 210 }, { 1990, 200 },
                            { 1010, 110 }, { 990, 100 } }, 6);
    free(got);
    q.reverse = false;
    run_q(&q, stock, 9, &got, &ng);
    expect(got, ng, (pt[]){ { 990, 100 }, { 1010, 110 }, { 1990, 200 }, { 2010, 210 },
                            { 2990, 300 }, { 3010, 310 } }, 6);
    free(got);
    q.from = 5;
    q.align_kind = CAIRN_TS_ALIGN_START;
    q.reverse = true;
    run_q(&q, stock, 9, &got, &ng);
    expect(got, ng, (pt[]){ { 3005, 310 }, { 2985, 300 }, { 2005, 210 }, { 1985, 200 },
                            { 1005, 110 }, { 985, 100 } }, 6);
    free(got);

    /* time series page: rg:2 avg 2 (the reference's double sums, to the bit) */
    const pt rg2[] = { { 0, 1.8 }, { 1, 2.1 }, { 2, 2.3 }, { 3, 1.9 }, { 4, 1.78 } };
    q = all_range();
    q.agg = CAIRN_TS_AGG_AVG;
    q.bucket = 2;
    run_q(&q, rg2, 5, &got, &ng);
    expect(got, ng, (pt[]){ { 0, 1.9500000000000002 }, { 2, 2.0999999999999996 }, { 4, 1.78 } }, 3);
    free(got);

    /* sensor3: min 25 over 10..70, aligned to 0 and to the start */
    const pt s3[] = { { 10, 1000 }, { 20, 2000 }, { 30, 3000 }, { 40, 4000 },
                      { 50, 5000 }, { 60, 6000 }, { 70, 7000 } };
    q = all_range();
    q.from = 10;
    q.to = 70;
    q.agg = CAIRN_TS_AGG_MIN;
    q.bucket = 25;
    run_q(&q, s3, 7, &got, &ng);
    expect(got, ng, (pt[]){ { 0, 1000 }, { 25, 3000 }, { 50, 5000 } }, 3);
    free(got);
    q.align_kind = CAIRN_TS_ALIGN_START;
    run_q(&q, s3, 7, &got, &ng);
    expect(got, ng, (pt[]){ { 10, 1000 }, { 35, 4000 }, { 60, 6000 } }, 3);
    free(got);
    /* BUCKETTIMESTAMP + and ~ on the same buckets */
    q.bucket_ts = CAIRN_TS_BT_END;
    run_q(&q, s3, 7, &got, &ng);
    expect(got, ng, (pt[]){ { 35, 1000 }, { 60, 4000 }, { 85, 6000 } }, 3);
    free(got);
    q.bucket_ts = CAIRN_TS_BT_MID;
    run_q(&q, s3, 7, &got, &ng);
    expect(got, ng, (pt[]){ { 22, 1000 }, { 47, 4000 }, { 72, 6000 } }, 3);
    free(got);
}

/* EMPTY values, twa by hand, COUNT with REVRANGE, negative timestamps. */
static void test_hand_checked(void **state)
{
    (void)state;
    pt *got;
    size_t ng;
    const pt s[] = { { -25, 4 }, { -15, 6 }, { 10, 2 }, { 35, 8 } };
    cairn_ts_query q = all_range();
    q.agg = CAIRN_TS_AGG_SUM;
    q.bucket = 10;
    q.empty = true;
    run_q(&q, s, 4, &got, &ng);
    /* buckets -30, -20, [-10, 0 empty], 10, [20 empty], 30 */
    expect(got, ng, (pt[]){ { -30, 4 }, { -20, 6 }, { -10, 0 }, { 0, 0 }, { 10, 2 },
                            { 20, 0 }, { 30, 8 } }, 7);
    free(got);
    q.agg = CAIRN_TS_AGG_LAST;
    run_q(&q, s, 4, &got, &ng);
    expect(got, ng, (pt[]){ { -30, 4 }, { -20, 6 }, { -10, 6 }, { 0, 6 }, { 10, 2 },
                            { 20, 2 }, { 30, 8 } }, 7);
    free(got);
    q.agg = CAIRN_TS_AGG_MAX;
    q.reverse = true;
    q.has_count = true;
    q.count = 3;
    run_q(&q, s, 4, &got, &ng);
    assert_int_equal(ng, 3);
    assert_int_equal(got[0].ts, 30);
    assert_true(got[0].v == 8);
    assert_int_equal(got[1].ts, 20);
    assert_true(isnan(got[1].v));
    assert_int_equal(got[2].ts, 10);
    free(got);

    /* twa, empty bucket [0, 10) between (-15, 6) and (10, 2): the line's
     * value at 5 is 6 + (2 - 6) * 20 / 25 = 2.8 */
    q = all_range();
    q.agg = CAIRN_TS_AGG_TWA;
    q.bucket = 10;
    q.empty = true;
    q.from = -20;
    q.to = 10;
    run_q(&q, s, 4, &got, &ng);
    assert_int_equal(ng, 4);
    assert_int_equal(got[2].ts, 0);
    assert_true(fabs(got[2].v - 2.8) < 1e-12);
    /* bucket [-20,-10) holds only (-15, 6); neighbours (-25, 4) and (10, 2):
     * midpoint -20 is at the start, so 6 holds from -20 to the midpoint
     * -2.5, past the end: twa = 6 */
    assert_int_equal(got[0].ts, -20);
    assert_true(got[0].v == 6);
    /* bucket [10, 20) holds (10, 2), next (35, 8) with midpoint 22.5 past
     * the end: 2 */
    assert_int_equal(got[3].ts, 10);
    assert_true(got[3].v == 2);
    free(got);

    /* twa inside a bucket: points 0:0, 4:4, 10:10 (next bucket at 20)
     * bucket [0,20): 0 has no point before: its left part is
     * min(2, 0) = 0, right 2; 4: 2 + 3; 10: 3 + min(3, 10) (no next);
     * (0*2 + 4*5 + 10*6) / 13 */
    const pt t[] = { { 0, 0 }, { 4, 4 }, { 10, 10 } };
    q = all_range();
    q.agg = CAIRN_TS_AGG_TWA;
    q.bucket = 20;
    run_q(&q, t, 3, &got, &ng);
    assert_int_equal(ng, 1);
    assert_true(fabs(got[0].v - 80.0 / 13.0) < 1e-12);
    free(got);
    /* one point alone in the series: its value */
    run_q(&q, t, 1, &got, &ng);
    assert_int_equal(ng, 1);
    assert_true(got[0].v == 0);
    free(got);

    /* var/std: 2, 4, 4, 4, 5, 5, 7, 9 has population variance 4 */
    const pt w[] = { { 1, 2 }, { 2, 4 }, { 3, 4 }, { 4, 4 }, { 5, 5 }, { 6, 5 }, { 7, 7 }, { 8, 9 } };
    q = all_range();
    q.bucket = 100;
    q.agg = CAIRN_TS_AGG_VAR_P;
    run_q(&q, w, 8, &got, &ng);
    assert_true(fabs(got[0].v - 4) < 1e-12);
    free(got);
    q.agg = CAIRN_TS_AGG_STD_S;
    run_q(&q, w, 8, &got, &ng);
    assert_true(fabs(got[0].v - sqrt(32.0 / 7)) < 1e-12);
    free(got);
    q.agg = CAIRN_TS_AGG_VAR_S; /* one value: 0 */
    run_q(&q, w, 1, &got, &ng);
    assert_true(got[0].v == 0);
    free(got);
    /* large offset, tiny spread: Welford keeps it */
    pt big[1000];
    for (int i = 0; i < 1000; i++)
        big[i] = (pt){ i, 1e9 + (i % 2 ? 0.5 : -0.5) };
    q.agg = CAIRN_TS_AGG_VAR_P;
    q.bucket = 10000;
    run_q(&q, big, 1000, &got, &ng);
    assert_true(fabs(got[0].v - 0.25) < 1e-6);
    free(got);
}

/* Timestamps at the ends of int64: buckets past them, saturated reports. */
static void test_int64_edges(void **state)
{
    (void)state;
    pt *got;
    size_t ng;
    const pt s[] = { { INT64_MIN, 1 }, { INT64_MIN + 5, 2 }, { INT64_MAX - 3, 3 }, { INT64_MAX, 4 } };
    cairn_ts_query q = all_range();
    q.agg = CAIRN_TS_AGG_COUNT;
    q.bucket = 1000;
    run_q(&q, s, 4, &got, &ng);
    size_t nw;
    pt *want = reference(&q, s, 4, &nw);
    expect(got, ng, want, nw);
    assert_int_equal(ng, 2);
    assert_int_equal(got[0].ts, INT64_MIN); /* starts before INT64_MIN */
    assert_true(got[0].v == 2);
    free(got);
    free(want);
    q.bucket_ts = CAIRN_TS_BT_END;
    q.agg = CAIRN_TS_AGG_TWA;
    run_q(&q, s, 4, &got, &ng);
    assert_int_equal(ng, 2);
    assert_int_equal(got[1].ts, INT64_MAX); /* ends after INT64_MAX */
    assert_true(isfinite(got[0].v) && isfinite(got[1].v));
    free(got);
    q.bucket = INT64_MAX;
    q.align = INT64_MIN;
    q.agg = CAIRN_TS_AGG_SUM;
    run_q(&q, s, 4, &got, &ng);
    want = reference(&q, s, 4, &nw);
    expect(got, ng, want, nw);
    free(got);
    free(want);
}

/* COUNT stops reading early; EMPTY gaps far larger than memory under COUNT;
 * max_points. */
static void test_count_and_limits(void **state)
{
    (void)state;
    pt *s = malloc(1000 * sizeof *s);
    for (int i = 0; i < 1000; i++)
        s[i] = (pt){ i * 10, i };
    cairn_ts_query q = all_range();
    q.has_count = true;
    q.count = 1;
    cairn_ts_array_source a;
    cairn_ts_source src;
    cairn_ts_array_source_init(&a, &src, s, 1000, 1);
    pt *got;
    size_t ng;
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), 0);
    assert_int_equal(ng, 1);
    assert_int_equal(a.pos, 1); /* read one point, not a thousand */
    free(got);
    q.agg = CAIRN_TS_AGG_AVG;
    q.bucket = 100;
    q.count = 2;
    cairn_ts_array_source_init(&a, &src, s, 1000, 1);
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), 0);
    expect(got, ng, (pt[]){ { 0, 4.5 }, { 100, 14.5 } }, 2);
    assert_true(a.pos <= 25);
    free(got);

    const pt gap[] = { { 0, 1 }, { 1000000000000000LL, 2 } };
    q = all_range();
    q.agg = CAIRN_TS_AGG_COUNT;
    q.bucket = 1;
    q.empty = true;
    q.has_count = true;
    q.count = 3;
    run_q(&q, gap, 2, &got, &ng);
    expect(got, ng, (pt[]){ { 0, 1 }, { 1, 0 }, { 2, 0 } }, 3);
    free(got);
    q.reverse = true;
    run_q(&q, gap, 2, &got, &ng);
    expect(got, ng, (pt[]){ { 1000000000000000LL, 1 }, { 999999999999999LL, 0 },
                            { 999999999999998LL, 0 } }, 3);
    free(got);
    q.has_count = false;
    q.max_points = 1000;
    cairn_ts_array_source_init(&a, &src, gap, 2, 0);
    got = (pt *)1;
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), CAIRN_ETOOLARGE);
    assert_null(got);
    assert_int_equal(ng, 0);
    q.reverse = false;
    cairn_ts_array_source_init(&a, &src, gap, 2, 0);
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), CAIRN_ETOOLARGE);
    /* reverse with COUNT above max_points: too large when the result is */
    q.reverse = true;
    q.has_count = true;
    q.count = 5000;
    cairn_ts_array_source_init(&a, &src, gap, 2, 0);
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), CAIRN_ETOOLARGE);
    q.agg = CAIRN_TS_AGG_NONE;
    q.empty = false;
    cairn_ts_array_source_init(&a, &src, gap, 2, 0);
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), 0);
    assert_int_equal(ng, 2);
    free(got);
    free(s);
}

static void test_errors(void **state)
{
    (void)state;
    const pt s[] = { { 1, 1 }, { 2, 2 }, { 3, 3 } };
    cairn_ts_array_source a;
    cairn_ts_source src;
    pt *got = (pt *)1;
    size_t ng = 7;
    cairn_ts_query q = all_range();
    cairn_ts_array_source_init(&a, &src, s, 3, 0);
    q.agg = CAIRN_TS_AGG_AVG;
    q.bucket = 0;
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), CAIRN_EINVAL);
    assert_null(got);
    assert_int_equal(ng, 0);
    q.bucket = -5;
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), CAIRN_EINVAL);
    q.bucket = 5;
    q.agg = (cairn_ts_aggregator)99;
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), CAIRN_EINVAL);
    q.agg = CAIRN_TS_AGG_AVG;
    q.has_count = true;
    q.count = 0;
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), CAIRN_EINVAL);
    q.has_count = false;
    q.bucket_ts = (cairn_ts_bucket_ts)7;
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), CAIRN_EINVAL);
    q.bucket_ts = CAIRN_TS_BT_START;
    assert_int_equal(cairn_ts_query_run(NULL, &src, &got, &ng), CAIRN_EINVAL);
    assert_int_equal(cairn_ts_query_run(&q, NULL, &got, &ng), CAIRN_EINVAL);
    assert_int_equal(cairn_ts_query_run(&q, &src, NULL, &ng), CAIRN_EINVAL);
    /* from > to: empty, not an error */
    q.from = 10;
    q.to = 0;
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), 0);
    assert_int_equal(ng, 0);
    assert_null(got);
    /* a source out of order */
    const pt bad[] = { { 1, 1 }, { 3, 3 }, { 3, 4 } };
    q = all_range();
    cairn_ts_array_source_init(&a, &src, bad, 3, 1);
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), CAIRN_EINVAL);
    assert_null(got);
    /* a source's error comes back, nothing leaks */
    tsrc t;
    tsrc_init(&t, &src, s, 3, INT64_MIN, INT64_MAX, false);
    t.random_batches = false;
    t.fail_at = 1;
    q.agg = CAIRN_TS_AGG_TWA;
    q.bucket = 2;
    assert_int_equal(cairn_ts_query_run(&q, &src, &got, &ng), CAIRN_EIO);
    assert_null(got);
    /* names */
    for (int i = 1; i < CAIRN_TS_AGG__COUNT; i++) {
        const char *nm = cairn_ts_aggregator_name((cairn_ts_aggregator)i);
        assert_non_null(nm);
        assert_int_equal(cairn_ts_aggregator_from_name(nm, strlen(nm)), i);
    }
    assert_int_equal(cairn_ts_aggregator_from_name("STD.P", 5), CAIRN_TS_AGG_STD_P);
    assert_int_equal(cairn_ts_aggregator_from_name("Twa", 3), CAIRN_TS_AGG_TWA);
    assert_int_equal(cairn_ts_aggregator_from_name("avgx", 3), CAIRN_TS_AGG_AVG);
    assert_int_equal(cairn_ts_aggregator_from_name("av", 2), CAIRN_EINVAL);
    assert_int_equal(cairn_ts_aggregator_from_name("median", 6), CAIRN_EINVAL);
    assert_int_equal(cairn_ts_aggregator_from_name("", 0), CAIRN_EINVAL);
    assert_int_equal(cairn_ts_aggregator_from_name(NULL, 3), CAIRN_EINVAL);
    assert_null(cairn_ts_aggregator_name(CAIRN_TS_AGG_NONE));
    assert_null(cairn_ts_aggregator_name((cairn_ts_aggregator)CAIRN_TS_AGG__COUNT));
}

/* ---- reduce ---- */

static void test_reduce_doc_example(void **state)
{
    (void)state;
    /* the time series page: wind speeds grouped by country */
    const pt w1[] = { { 1, 12 }, { 2, 14 }, { 3, 10 } }, w2[] = { { 1, 18 }, { 2, 21 }, { 3, 24 } };
    const pt w3[] = { { 1, 5 }, { 2, 4 }, { 3, 8 } }, w4[] = { { 1, 20 }, { 2, 25 }, { 3, 18 } };
    const pt *uk[] = { w1, w2 }, *us[] = { w3, w4 };
    size_t lens[] = { 3, 3 };
    pt *got;
    size_t ng;
    assert_int_equal(cairn_ts_reduce(CAIRN_TS_AGG_MAX, uk, lens, 2, false, &got, &ng), 0);
    expect(got, ng, (pt[]){ { 1, 18 }, { 2, 21 }, { 3, 24 } }, 3);
    free(got);
    assert_int_equal(cairn_ts_reduce(CAIRN_TS_AGG_MAX, us, lens, 2, false, &got, &ng), 0);
    expect(got, ng, (pt[]){ { 1, 20 }, { 2, 25 }, { 3, 18 } }, 3);
    free(got);
    assert_int_equal(cairn_ts_reduce(CAIRN_TS_AGG_AVG, uk, lens, 2, false, &got, &ng), 0);
    expect(got, ng, (pt[]){ { 1, 15 }, { 2, 17.5 }, { 3, 17 } }, 3);
    free(got);
    assert_int_equal(cairn_ts_reduce(CAIRN_TS_AGG_AVG, us, lens, 2, false, &got, &ng), 0);
    expect(got, ng, (pt[]){ { 1, 12.5 }, { 2, 14.5 }, { 3, 13 } }, 3);
    free(got);
    assert_int_equal(cairn_ts_reduce(CAIRN_TS_AGG_FIRST, uk, lens, 2, false, &got, &ng), CAIRN_EINVAL);
    assert_int_equal(cairn_ts_reduce(CAIRN_TS_AGG_TWA, uk, lens, 2, false, &got, &ng), CAIRN_EINVAL);
    assert_int_equal(cairn_ts_reduce(CAIRN_TS_AGG_SUM, uk, lens, 2, true, &got, &ng), CAIRN_EINVAL);
    assert_int_equal(cairn_ts_reduce(CAIRN_TS_AGG_SUM, NULL, NULL, 0, false, &got, &ng), 0);
    assert_int_equal(ng, 0);
}

static void test_reduce_random(void **state)
{
    (void)state;
    static const cairn_ts_aggregator reducers[] = {
        CAIRN_TS_AGG_AVG, CAIRN_TS_AGG_SUM, CAIRN_TS_AGG_MIN, CAIRN_TS_AGG_MAX,
        CAIRN_TS_AGG_RANGE, CAIRN_TS_AGG_COUNT, CAIRN_TS_AGG_STD_P, CAIRN_TS_AGG_STD_S,
        CAIRN_TS_AGG_VAR_P, CAIRN_TS_AGG_VAR_S,
    };
    for (int it = 0; it < 2000; it++) {
        size_t ns = (size_t)rnd(6);
        pt *ser[6];
        size_t lens[6];
        bool rev = rnd(2);
        for (size_t i = 0; i < ns; i++) {
            lens[i] = (size_t)rnd(40);
            ser[i] = malloc((lens[i] + 1) * sizeof(pt));
            int64_t ts = (int64_t)rnd(20) - 10;
            for (size_t j = 0; j < lens[i]; j++) {
                ts += 1 + (int64_t)rnd(3);
                double v = (double)((int64_t)rnd(100) - 50) / 4;
                if (rnd(15) == 0)
                    v = NAN;
                ser[i][rev ? lens[i] - 1 - j : j] = (pt){ ts, v };
            }
        }
        cairn_ts_aggregator red = reducers[rnd(10)];
        pt *got;
        size_t ng;
        assert_int_equal(cairn_ts_reduce(red, (const pt *const *)ser, lens, ns, rev, &got, &ng), 0);
        /* brute force: every timestamp from -20 to 200, in order */
        size_t k = 0;
        for (int64_t x = -20; x <= 200; x++) {
            int64_t ts = rev ? 180 - x : x;
            pt vals[6];
            size_t nv = 0, present = 0;
            for (size_t i = 0; i < ns; i++)
                for (size_t j = 0; j < lens[i]; j++)
                    if (ser[i][j].ts == ts) {
                        present++;
                        if (!isnan(ser[i][j].v))
                            vals[nv++] = ser[i][j];
                    }
            if (!present)
                continue;
            assert_true(k < ng);
            assert_int_equal(got[k].ts, ts);
            double want;
            if (nv == 0)
                want = red == CAIRN_TS_AGG_COUNT || red == CAIRN_TS_AGG_SUM ? 0 : NAN;
            else
                want = ref_agg(red, vals, nv);
            assert_true(close_to(got[k].v, want, 100));
            k++;
        }
        assert_int_equal(k, ng);
        free(got);
        for (size_t i = 0; i < ns; i++)
            free(ser[i]);
    }
}

int main(void)
{
    const char *s = getenv("CAIRN_TEST_SEED");
    if (s)
        seed = strtoull(s, NULL, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_examples),
        cmocka_unit_test(test_hand_checked),
        cmocka_unit_test(test_int64_edges),
        cmocka_unit_test(test_count_and_limits),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_reduce_doc_example),
        cmocka_unit_test(test_reduce_random),
        cmocka_unit_test(test_random_against_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
