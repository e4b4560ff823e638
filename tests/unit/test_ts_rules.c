/*
 * test_ts_rules.c — the time-series calls beyond add and range
 * (src/ts/series.c): compaction rules against a naive reference (in-order
 * and out-of-order points, deletions, chains, reopen), rule errors
 * (cycles, second sources, missing keys), writes inside a caller's
 * transaction (commit, abort, conflicts), TS.ALTER, TS.INCRBY, TS.DEL,
 * TS.GET with LATEST, IGNORE, RENAME, FLUSHALL, TS.INFO, and threads
 * writing sources whose rules feed shared chains (also under TSan).
 * Locking: the concurrency test's threads share only the database handle.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "env/env.h"

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void db_opts(cairn_options *o, cairn_env *env)
{
    cairn_options_init(o);
    o->env = env;
    o->memtable_size = 64 << 10;
    o->sst_target_file_size = 32 << 10;
    o->level_base_size = 128 << 10;
    o->wal_segment_size = 256 << 10;
}

/* ---- the reference ---- */

typedef struct model {
    cairn_ts_point *p;
    size_t n, cap;
} model;

static void model_set(model *m, int64_t ts, double v)
{
    size_t i = 0;
    while (i < m->n && m->p[i].ts < ts)
        i++;
    if (i < m->n && m->p[i].ts == ts) {
        m->p[i].v = v;
        return;
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->p = realloc(m->p, m->cap * sizeof *m->p);
        assert_non_null(m->p);
    }
    memmove(m->p + i + 1, m->p + i, (m->n - i) * sizeof *m->p);
    m->p[i] = (cairn_ts_point){ts, v};
    m->n++;
}

static void model_del(model *m, int64_t from, int64_t to)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->p[i].ts < from || m->p[i].ts > to)
            m->p[k++] = m->p[i];
    m->n = k;
}

static int64_t bstart(int64_t t, int64_t bucket, int64_t align)
{
    int64_t r = (t - align) % bucket;
    if (r < 0)
        r += bucket;
    return t - r;
}

/* The naive aggregate of one bucket's values. */
static double agg_of(cairn_ts_aggregator a, const double *v, size_t n)
{
    double s = 0, mn = v[0], mx = v[0];
    for (size_t i = 0; i < n; i++) {
        s += v[i];
        mn = v[i] < mn ? v[i] : mn;
        mx = v[i] > mx ? v[i] : mx;
    }
    switch (a) {
    case CAIRN_TS_AGG_AVG: return s / (double)n;
    case CAIRN_TS_AGG_SUM: return s;
    case CAIRN_TS_AGG_MIN: return mn;
    case CAIRN_TS_AGG_MAX: return mx;
    case CAIRN_TS_AGG_RANGE: return mx - mn;
    case CAIRN_TS_AGG_COUNT: return (double)n;
    case CAIRN_TS_AGG_FIRST: return v[0];
    case CAIRN_TS_AGG_LAST: return v[n - 1];
    default: break;
    }
    fail_msg("aggregator %d not in the reference", (int)a);
    return 0;
}

/* What a rule's destination must hold: the aggregate of every closed
 * bucket (older than the bucket of the newest point) that has points. */
static void expected_rollup(const model *src, cairn_ts_aggregator a,
                            int64_t bucket, int64_t align, model *out)
{
    out->n = 0;
    if (!src->n)
        return;
    int64_t open_b = bstart(src->p[src->n - 1].ts, bucket, align);
    double *vals = malloc(src->n * sizeof *vals);
    size_t i = 0;
    while (i < src->n) {
        int64_t b = bstart(src->p[i].ts, bucket, align);
        if (b >= open_b)
            break;
        size_t k = 0;
        while (i < src->n && bstart(src->p[i].ts, bucket, align) == b)
            vals[k++] = src->p[i++].v;
        model_set(out, b, agg_of(a, vals, k));
    }
    free(vals);
}

static void assert_series(cairn_db *db, const char *key, const model *m)
{
    cairn_ts_point *p = NULL;
    size_t n = 0;
    assert_int_equal(
        cairn_ts_range(db, key, strlen(key), INT64_MIN, INT64_MAX, &p, &n), 0);
    if (n != m->n)
        fail_msg("%s: %zu points, expected %zu", key, n, m->n);
    for (size_t i = 0; i < n; i++) {
        if (p[i].ts != m->p[i].ts ||
            fabs(p[i].v - m->p[i].v) > 1e-9 * (1 + fabs(m->p[i].v)))
            fail_msg("%s[%zu]: (%lld, %.17g), expected (%lld, %.17g)", key, i,
                     (long long)p[i].ts, p[i].v, (long long)m->p[i].ts,
                     m->p[i].v);
    }
    cairn_free(p);
}

static void create_simple(cairn_db *db, const char *key, cairn_ts_dup_policy p,
                          uint32_t chunk)
{
    cairn_ts_options o;
    cairn_ts_options_init(&o);
    o.duplicate_policy = p;
    o.chunk_size = chunk;
    assert_int_equal(cairn_ts_create(db, key, strlen(key), &o), 0);
}

static int mkrule(cairn_db *db, const char *s, const char *d,
                  cairn_ts_aggregator a, int64_t bucket, int64_t align)
{
    char err[128] = "";
    return cairn_ts_create_rule(db, NULL, s, strlen(s), d, strlen(d), a,
                                bucket, align, err, sizeof err);
}

/* ---- rules against the reference ---- */

typedef struct rule_case {
    const char *dst;
    cairn_ts_aggregator agg;
    int64_t bucket, align;
} rule_case;

static const rule_case RULES[] = {
    {"d_avg", CAIRN_TS_AGG_AVG, 1000, 0},
    {"d_sum", CAIRN_TS_AGG_SUM, 1000, 300},
    {"d_min", CAIRN_TS_AGG_MIN, 2500, 0},
    {"d_max", CAIRN_TS_AGG_MAX, 1000, 0},
    {"d_count", CAIRN_TS_AGG_COUNT, 700, 50},
    {"d_first", CAIRN_TS_AGG_FIRST, 1000, 0},
    {"d_last", CAIRN_TS_AGG_LAST, 3000, 0},
    {"d_range", CAIRN_TS_AGG_RANGE, 1000, 0},
};
#define NRULES (sizeof RULES / sizeof RULES[0])

static void check_all(cairn_db *db, const model *src)
{
    assert_series(db, "src", src);
    model e = {0}, e2 = {0};
    for (size_t r = 0; r < NRULES; r++) {
        expected_rollup(src, RULES[r].agg, RULES[r].bucket, RULES[r].align,
                        &e);
        assert_series(db, RULES[r].dst, &e);
        if (r == 0) { /* the chain: d_avg feeds d_chain (max over 5 s) */
            expected_rollup(&e, CAIRN_TS_AGG_MAX, 5000, 0, &e2);
            assert_series(db, "d_chain", &e2);
        }
    }
    free(e.p);
    free(e2.p);
}

static void test_rules_reference(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    db_opts(&o, mem);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    create_simple(db, "src", CAIRN_TS_DUP_LAST, 256); /* small: many seals */
    for (size_t r = 0; r < NRULES; r++) {
        create_simple(db, RULES[r].dst, CAIRN_TS_DUP_BLOCK, 128);
        assert_int_equal(mkrule(db, "src", RULES[r].dst, RULES[r].agg,
                                RULES[r].bucket, RULES[r].align),
                         0);
    }
    create_simple(db, "d_chain", CAIRN_TS_DUP_BLOCK, 128);
    assert_int_equal(mkrule(db, "d_avg", "d_chain", CAIRN_TS_AGG_MAX, 5000, 0),
                     0);
    model src = {0};
    int64_t t = 100000;
    for (int round = 0; round < 60; round++) {
        /* A batch: mostly forward with jitter, some into older buckets
         * (sealed chunks among them), integer and fractional values. */
        cairn_ts_sample s[40];
        int res[40];
        size_t n = 1 + rnd() % 40;
        for (size_t i = 0; i < n; i++) {
            int64_t ts;
            if (rnd() % 6 == 0 && t > 100000)
                ts = 100000 + (int64_t)(rnd() % (uint64_t)(t - 100000 + 1));
            else
                ts = (t += 50 + (int64_t)(rnd() % 400));
            double v = rnd() % 3 ? (double)(rnd() % 1000) / 8.0
                                 : (double)(int)(rnd() % 50) - 25;
            s[i] = (cairn_ts_sample){"src", 3, ts, v};
        }
        assert_int_equal(cairn_ts_add_many(db, s, n, res), 0);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(res[i], 0);
            model_set(&src, s[i].ts, s[i].v);
        }
        if (round % 7 == 3) {
            /* TS.DEL of a span: buckets recomputed, emptied ones go. */
            int64_t a = 100000 + (int64_t)(rnd() % (uint64_t)(t - 100000));
            int64_t b = a + (int64_t)(rnd() % 4000);
            uint64_t gone = 0;
            size_t before = src.n;
            assert_int_equal(
                cairn_ts_del_range(db, NULL, "src", 3, a, b, &gone), 0);
            model_del(&src, a, b);
            assert_int_equal(gone, before - src.n);
        }
        if (round % 10 == 9) {
            check_all(db, &src);
            assert_int_equal(cairn_close(db), 0);
            assert_int_equal(cairn_open("/db", &o, &db), 0);
        }
    }
    check_all(db, &src);

    /* TS.INFO names the rules and the source. */
    cairn_ts_info *in = NULL;
    assert_int_equal(cairn_ts_info_get(db, NULL, "src", 3, &in), 0);
    assert_int_equal(in->nrules, NRULES);
    assert_false(in->has_source);
    assert_int_equal(in->total_samples, src.n);
    assert_true(in->first_ts == src.p[0].ts &&
                in->last_ts == src.p[src.n - 1].ts);
    assert_true(in->rules[1].agg == CAIRN_TS_AGG_SUM &&
                in->rules[1].bucket_ms == 1000 && in->rules[1].align_ms == 300);
    assert_memory_equal(in->rules[1].key.p, "d_sum", 5);
    cairn_ts_info_free(in);
    assert_int_equal(cairn_ts_info_get(db, NULL, "d_chain", 7, &in), 0);
    assert_true(in->has_source && in->source.len == 5 &&
                memcmp(in->source.p, "d_avg", 5) == 0);
    cairn_ts_info_free(in);

    /* LATEST: the open bucket, from the source's points. */
    bool found = false;
    cairn_ts_point last;
    int64_t open_b = bstart(src.p[src.n - 1].ts, 1000, 0);
    double sum = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < src.n; i++)
        if (src.p[i].ts >= open_b) {
            sum += src.p[i].v;
            cnt++;
        }
    assert_int_equal(cairn_ts_get_last(db, NULL, "d_avg", 5, true, &found,
                                       &last),
                     0);
    assert_true(found && last.ts == open_b);
    assert_true(fabs(last.v - sum / (double)cnt) < 1e-9);
    assert_int_equal(cairn_ts_get_last(db, NULL, "d_avg", 5, false, &found,
                                       &last),
                     0);
    assert_true(found && last.ts < open_b);
    cairn_ts_query q = {.from = INT64_MIN, .to = INT64_MAX, .latest = true};
    cairn_ts_point *p = NULL;
    size_t n = 0;
    assert_int_equal(cairn_ts_query_range(db, "d_avg", 5, &q, &p, &n), 0);
    assert_true(n > 0 && p[n - 1].ts == open_b);
    cairn_free(p);

    /* Deleting the rule stops the feed; deleting a destination removes
     * its rule from the source. */
    char err[128];
    assert_int_equal(cairn_ts_delete_rule(db, NULL, "src", 3, "d_max", 5, err,
                                          sizeof err),
                     0);
    assert_int_equal(cairn_ts_delete_rule(db, NULL, "src", 3, "d_max", 5, err,
                                          sizeof err),
                     CAIRN_ENOTFOUND);
    assert_string_equal(err, "compaction rule does not exist");
    assert_int_equal(cairn_ts_delete(db, "d_min", 5), 0);
    assert_int_equal(cairn_ts_info_get(db, NULL, "src", 3, &in), 0);
    assert_int_equal(in->nrules, NRULES - 2);
    cairn_ts_info_free(in);
    assert_int_equal(cairn_ts_add(db, "src", 3, t + 100000, 1), 0);
    free(src.p);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

static void test_rule_errors(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    db_opts(&o, mem);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    for (const char *k = "abcd"; *k; k++) {
        char name[2] = {*k, 0};
        create_simple(db, name, CAIRN_TS_DUP_BLOCK, 4096);
    }
    assert_int_equal(cairn_put(db, "\x01str", 4, "\x01\x00x", 3, NULL), 0);
    char err[128] = "";
    assert_int_equal(cairn_ts_create_rule(db, NULL, "a", 1, "a", 1,
                                          CAIRN_TS_AGG_AVG, 10, 0, err,
                                          sizeof err),
                     CAIRN_EINVAL);
    assert_string_equal(err,
                        "the source key and destination key should be different");
    assert_int_equal(cairn_ts_create_rule(db, NULL, "a", 1, "b", 1,
                                          CAIRN_TS_AGG_AVG, 0, 0, err,
                                          sizeof err),
                     CAIRN_EINVAL);
    assert_string_equal(err, "bucketDuration must be greater than zero");
    assert_int_equal(cairn_ts_create_rule(db, NULL, "a", 1, "b", 1,
                                          CAIRN_TS_AGG_NONE, 10, 0, err,
                                          sizeof err),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_ts_create_rule(db, NULL, "a", 1, "zz", 2,
                                          CAIRN_TS_AGG_AVG, 10, 0, err,
                                          sizeof err),
                     CAIRN_ENOTFOUND);
    assert_string_equal(err, "the key does not exist");
    assert_int_equal(cairn_ts_create_rule(db, NULL, "a", 1, "str", 3,
                                          CAIRN_TS_AGG_AVG, 10, 0, err,
                                          sizeof err),
                     CAIRN_ENOTSUP);
    /* a -> b -> c; then c -> a closes a cycle; d -> b is a second source */
    assert_int_equal(mkrule(db, "a", "b", CAIRN_TS_AGG_AVG, 10, 0), 0);
    assert_int_equal(mkrule(db, "b", "c", CAIRN_TS_AGG_SUM, 100, 0), 0);
    assert_int_equal(cairn_ts_create_rule(db, NULL, "c", 1, "a", 1,
                                          CAIRN_TS_AGG_AVG, 10, 0, err,
                                          sizeof err),
                     CAIRN_EINVAL);
    assert_string_equal(err, "the rule would close a cycle of compaction rules");
    assert_int_equal(cairn_ts_create_rule(db, NULL, "d", 1, "b", 1,
                                          CAIRN_TS_AGG_AVG, 10, 0, err,
                                          sizeof err),
                     CAIRN_EINVAL);
    assert_string_equal(err, "the destination key already has a src rule");
    /* Nothing of the refused rules stuck. */
    cairn_ts_info *in = NULL;
    assert_int_equal(cairn_ts_info_get(db, NULL, "c", 1, &in), 0);
    assert_int_equal(in->nrules, 0);
    cairn_ts_info_free(in);
    assert_int_equal(cairn_ts_info_get(db, NULL, "d", 1, &in), 0);
    assert_int_equal(in->nrules, 0);
    cairn_ts_info_free(in);
    /* The chain works: points at 0..29 into a; 10-buckets close. */
    for (int i = 0; i < 30; i++)
        assert_int_equal(cairn_ts_add(db, "a", 1, i, i), 0);
    assert_int_equal(cairn_ts_add(db, "a", 1, 250, 0), 0);
    cairn_ts_point *p = NULL;
    size_t n = 0;
    assert_int_equal(cairn_ts_range(db, "b", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_int_equal(n, 3);
    assert_true(p[0].v == 4.5 && p[1].v == 14.5 && p[2].v == 24.5);
    cairn_free(p);
    assert_int_equal(cairn_ts_range(db, "c", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_int_equal(n, 0); /* b's newest (20) is in c's open bucket */
    cairn_free(p);
    /* RENAME of the middle: the rules follow it, and it still works. */
    assert_int_equal(cairn_ts_rename(db, NULL, "b", 1, "c", 1), CAIRN_EEXIST);
    assert_int_equal(cairn_ts_rename(db, NULL, "b", 1, "bb", 2), 0);
    assert_int_equal(cairn_ts_range(db, "b", 1, 0, 10, &p, &n),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_ts_info_get(db, NULL, "bb", 2, &in), 0);
    assert_true(in->has_source && in->source.len == 1 && in->nrules == 1 &&
                in->total_samples == 3);
    cairn_ts_info_free(in);
    assert_int_equal(cairn_ts_add(db, "a", 1, 1000, 0), 0); /* closes 250 */
    assert_int_equal(cairn_ts_range(db, "bb", 2, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_true(n == 4 && p[3].ts == 250);
    cairn_free(p);
    assert_int_equal(cairn_ts_range(db, "c", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_true(n == 1 && p[0].ts == 0 && p[0].v == 4.5 + 14.5 + 24.5);
    cairn_free(p);
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    assert_int_equal(cairn_ts_info_get(db, NULL, "a", 1, &in), 0);
    assert_true(in->nrules == 1 && in->rules[0].key.len == 2);
    cairn_ts_info_free(in);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

/* ---- transactions ---- */

static void test_in_transactions(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    db_opts(&o, mem);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    create_simple(db, "x", CAIRN_TS_DUP_LAST, 128);
    create_simple(db, "y", CAIRN_TS_DUP_LAST, 128);
    create_simple(db, "w", CAIRN_TS_DUP_LAST, 128);
    for (int i = 0; i < 100; i++)
        assert_int_equal(cairn_ts_add(db, "x", 1, i, i), 0);

    /* Aborted: nothing of it, in memory or stored; a create too. */
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    cairn_ts_write_opts w = {.txn = t};
    cairn_ts_sample s[3] = {{"x", 1, 5, -1}, {"x", 1, 500, 7}, {"y", 1, 1, 1}};
    int res[3];
    assert_int_equal(cairn_ts_add_many_ex(db, &w, s, 3, res), 0);
    assert_int_equal(cairn_ts_create_ex(db, t, "z", 1, NULL), 0);
    assert_int_equal(cairn_ts_add_many_ex(
                         db, &w, &(cairn_ts_sample){"z", 1, 3, 3}, 1, res),
                     0);
    assert_int_equal(res[0], 0);
    cairn_ts_point *p = NULL;
    size_t n = 0;
    cairn_ts_query q = {.from = INT64_MIN, .to = INT64_MAX};
    assert_int_equal(cairn_ts_query_range_ex(db, t, "x", 1, &q, &p, &n), 0);
    assert_true(n == 101 && p[5].v == -1); /* its own writes */
    cairn_free(p);
    cairn_txn_abort(t);
    assert_int_equal(cairn_ts_range(db, "x", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_true(n == 100 && p[5].v == 5 && p[99].ts == 99);
    cairn_free(p);
    assert_int_equal(cairn_ts_range(db, "y", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_int_equal(n, 0);
    assert_int_equal(cairn_ts_range(db, "z", 1, 0, 10, &p, &n),
                     CAIRN_ENOTFOUND);

    /* Committed: all of it, with a key of the caller's in the same txn. */
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    w.txn = t;
    assert_int_equal(cairn_ts_add_many_ex(db, &w, s, 3, res), 0);
    assert_int_equal(cairn_txn_put(t, "plain", 5, "v", 1), 0);
    /* Another caller holding w while t holds x and y and wants w: t
     * conflicts (it never waits while it holds series). */
    cairn_txn *t2 = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t2), 0);
    assert_int_equal(cairn_ts_del_range(db, t2, "w", 1, 0, 0, NULL), 0);
    assert_int_equal(cairn_ts_add_many_ex(
                         db, &w, &(cairn_ts_sample){"w", 1, 2, 2}, 1, res),
                     CAIRN_ECONFLICT);
    cairn_txn_abort(t2);
    /* the conflict poisoned t: its commit fails, nothing applied */
    assert_int_equal(cairn_txn_commit(t, NULL), CAIRN_ECONFLICT);
    assert_int_equal(cairn_ts_range(db, "x", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_int_equal(n, 100);
    cairn_free(p);
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    w.txn = t;
    assert_int_equal(cairn_ts_add_many_ex(db, &w, s, 3, res), 0);
    assert_int_equal(cairn_txn_put(t, "plain", 5, "v", 1), 0);
    assert_int_equal(cairn_txn_commit(t, NULL), 0);
    assert_int_equal(cairn_ts_range(db, "x", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_true(n == 101 && p[5].v == -1 && p[100].ts == 500);
    cairn_free(p);

    /* A txn whose snapshot is older than a commit to the series. */
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(cairn_txn_get(t, "plain", 5, &v, &vl), 0); /* in use */
    cairn_free(v);
    assert_int_equal(cairn_ts_add(db, "x", 1, 600, 1), 0);
    w.txn = t;
    assert_int_equal(cairn_ts_add_many_ex(
                         db, &w, &(cairn_ts_sample){"x", 1, 700, 1}, 1, res),
                     CAIRN_ECONFLICT);
    cairn_txn_abort(t);

    /* Delete and create again in one txn. */
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    assert_int_equal(cairn_ts_delete_ex(db, t, "x", 1), 0);
    assert_int_equal(cairn_ts_create_ex(db, t, "x", 1, NULL), 0);
    w.txn = t;
    assert_int_equal(cairn_ts_add_many_ex(
                         db, &w, &(cairn_ts_sample){"x", 1, 42, 4}, 1, res),
                     0);
    assert_int_equal(cairn_txn_commit(t, NULL), 0);
    assert_int_equal(cairn_ts_range(db, "x", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_true(n == 1 && p[0].ts == 42);
    cairn_free(p);
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    assert_int_equal(cairn_ts_range(db, "x", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_true(n == 1 && p[0].ts == 42 && p[0].v == 4);
    cairn_free(p);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

/* ---- ALTER, INCRBY, IGNORE, auto-create, FLUSHALL ---- */

static void test_alter_incr_ignore_flush(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    db_opts(&o, mem);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    cairn_ts_label l1[] = {{{"host", 4}, {"a", 1}}};
    cairn_ts_options co;
    cairn_ts_options_init(&co);
    co.labels = l1;
    co.nlabels = 1;
    cairn_ts_write_opts w = {.create = &co};
    /* INCRBY creates the series, then counts; older timestamps refused. */
    cairn_ts_point pt;
    char err[160] = "";
    assert_int_equal(cairn_ts_incrby(db, &w, "cnt", 3, 5, true, 1000, &pt, err,
                                     sizeof err),
                     0);
    assert_true(pt.ts == 1000 && pt.v == 5);
    assert_int_equal(cairn_ts_incrby(db, &w, "cnt", 3, 2.5, true, 1000, &pt,
                                     err, sizeof err),
                     0);
    assert_true(pt.ts == 1000 && pt.v == 7.5);
    assert_int_equal(cairn_ts_incrby(db, &w, "cnt", 3, -10, true, 2000, &pt,
                                     err, sizeof err),
                     0);
    assert_true(pt.ts == 2000 && pt.v == -2.5);
    assert_int_equal(cairn_ts_incrby(db, &w, "cnt", 3, 1, true, 1500, &pt, err,
                                     sizeof err),
                     CAIRN_EINVAL);
    assert_string_equal(err, "timestamp must be equal to or higher than the "
                             "maximum existing timestamp");
    assert_int_equal(cairn_ts_incrby(db, NULL, "nope", 4, 1, false, 0, &pt,
                                     err, sizeof err),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_ts_incrby(db, &w, "cnt", 3, 1, false, 0, &pt, err,
                                     sizeof err),
                     0);
    assert_true(pt.ts > 1700000000000LL && pt.v == -1.5); /* the wall clock */
    bool found = false;
    assert_int_equal(cairn_ts_get_last(db, NULL, "cnt", 3, false, &found, &pt),
                     0);
    assert_true(found && pt.v == -1.5);

    /* ALTER: labels (the index follows), retention, policy. */
    const char *f = "host=a";
    size_t fl = strlen(f);
    cairn_ts_str *keys = NULL;
    size_t nk = 0;
    assert_int_equal(cairn_ts_query_index(db, &f, &fl, 1, &keys, &nk, NULL, 0),
                     0);
    assert_int_equal(nk, 1);
    cairn_ts_keys_free(keys, nk);
    cairn_ts_label l2[] = {{{"host", 4}, {"b", 1}}, {{"dc", 2}, {"x", 1}}};
    cairn_ts_alter_opts al = {.set_labels = true, .labels = l2, .nlabels = 2,
                              .set_duplicate_policy = true,
                              .duplicate_policy = CAIRN_TS_DUP_MAX,
                              .set_retention = true, .retention_ms = 60000};
    assert_int_equal(cairn_ts_alter(db, NULL, "cnt", 3, &al, err, sizeof err),
                     0);
    assert_int_equal(cairn_ts_query_index(db, &f, &fl, 1, &keys, &nk, NULL, 0),
                     0);
    assert_int_equal(nk, 0);
    cairn_ts_keys_free(keys, nk);
    f = "dc=x";
    fl = 4;
    assert_int_equal(cairn_ts_query_index(db, &f, &fl, 1, &keys, &nk, NULL, 0),
                     0);
    assert_int_equal(nk, 1);
    cairn_ts_keys_free(keys, nk);
    cairn_ts_alter_opts bad = {.set_chunk_size = true, .chunk_size = 3};
    assert_int_equal(cairn_ts_alter(db, NULL, "cnt", 3, &bad, err, sizeof err),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    cairn_ts_info *in = NULL;
    assert_int_equal(cairn_ts_info_get(db, NULL, "cnt", 3, &in), 0);
    assert_true(in->opts.retention_ms == 60000 &&
                in->opts.duplicate_policy == CAIRN_TS_DUP_MAX &&
                in->opts.nlabels == 2 && in->total_samples == 3);
    cairn_ts_info_free(in);
    assert_int_equal(cairn_ts_add(db, "cnt", 3, 1000, 0), CAIRN_EHISTORY);

    /* ON_DUPLICATE for one write overrides the series' policy. */
    cairn_ts_write_opts ow = {.has_on_duplicate = true,
                              .on_duplicate = CAIRN_TS_DUP_SUM};
    int r = 0;
    assert_int_equal(cairn_ts_add_many_ex(
                         db, &ow, &(cairn_ts_sample){"cnt", 3, pt.ts, 10}, 1,
                         &r),
                     0);
    assert_int_equal(cairn_ts_get_last(db, NULL, "cnt", 3, false, &found, &pt),
                     0);
    assert_true(r == 0 && pt.v == 8.5);

    /* IGNORE: in-order points close to the last are dropped. */
    cairn_ts_options io;
    cairn_ts_options_init(&io);
    io.duplicate_policy = CAIRN_TS_DUP_LAST;
    io.ignore_max_time_ms = 100;
    io.ignore_max_val = 0.5;
    assert_int_equal(cairn_ts_create(db, "ign", 3, &io), 0);
    cairn_ts_sample s[4] = {{"ign", 3, 1000, 1},
                            {"ign", 3, 1050, 1.2},  /* ignored */
                            {"ign", 3, 1060, 5},    /* value moved */
                            {"ign", 3, 1300, 5.1}}; /* too late */
    int res[4];
    assert_int_equal(cairn_ts_add_many(db, s, 4, res), 0);
    assert_true(res[0] == 0 && res[1] == CAIRN_TS_IGNORED && res[2] == 0 &&
                res[3] == 0);
    cairn_ts_point *p = NULL;
    size_t n = 0;
    assert_int_equal(
        cairn_ts_range(db, "ign", 3, INT64_MIN, INT64_MAX, &p, &n), 0);
    assert_int_equal(n, 3);
    cairn_free(p);

    /* FLUSHALL: every series goes (the caller deletes the records). */
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    assert_int_equal(cairn_ts_drop_all(db, t), 0);
    assert_int_equal(cairn_txn_delete(t, "\x01" "cnt", 4), 0);
    assert_int_equal(cairn_txn_delete(t, "\x01" "ign", 4), 0);
    assert_int_equal(cairn_txn_commit(t, NULL), 0);
    assert_int_equal(cairn_ts_range(db, "cnt", 3, 0, 10, &p, &n),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_ts_query_index(db, &f, &fl, 1, &keys, &nk, NULL, 0),
                     0);
    assert_int_equal(nk, 0);
    cairn_ts_keys_free(keys, nk);
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    size_t left = 0;
    for (cairn_iter_first(it); cairn_iter_valid(it); cairn_iter_next(it)) {
        size_t kl;
        const uint8_t *k = cairn_iter_key(it, &kl);
        left += k[0] >= 0x03 && k[0] != 0x05; /* the id counter stays */
    }
    cairn_iter_free(it);
    assert_int_equal(left, 0);
    assert_int_equal(cairn_ts_create(db, "cnt", 3, NULL), 0);
    assert_int_equal(cairn_ts_add(db, "cnt", 3, 1, 1), 0);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

/* ---- threads over rules ---- */

#define NSRC 6
#define PER_THREAD 300

typedef struct thr {
    cairn_db *db;
    int id;
    uint64_t seed;
} thr;

static void *writer(void *arg)
{
    thr *a = arg;
    uint64_t x = a->seed;
    for (int i = 0; i < PER_THREAD; i++) {
        cairn_ts_sample s[4];
        char names[4][8];
        for (int j = 0; j < 4; j++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            snprintf(names[j], sizeof names[j], "s%d", (int)(x % NSRC));
            s[j] = (cairn_ts_sample){names[j], strlen(names[j]),
                                     (int64_t)(i * 10 + a->id), 1.0};
        }
        int res[4];
        int rc = cairn_ts_add_many(a->db, s, 4, res);
        if (rc != 0)
            return (void *)(intptr_t)rc;
        if (i % 50 == 0) {
            cairn_ts_point *p = NULL;
            size_t n = 0;
            cairn_ts_query q = {.from = INT64_MIN, .to = INT64_MAX,
                                .latest = true};
            rc = cairn_ts_query_range(a->db, "roll", 4, &q, &p, &n);
            cairn_free(p);
            if (rc)
                return (void *)(intptr_t)rc;
        }
    }
    return NULL;
}

static void test_threads_and_rules(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    db_opts(&o, mem);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    /* s0..s5 each feed r0..r5 (count per 100 ms); r0 feeds roll. */
    for (int i = 0; i < NSRC; i++) {
        char s[8], r[8];
        snprintf(s, sizeof s, "s%d", i);
        snprintf(r, sizeof r, "r%d", i);
        create_simple(db, s, CAIRN_TS_DUP_SUM, 256);
        create_simple(db, r, CAIRN_TS_DUP_BLOCK, 256);
        assert_int_equal(mkrule(db, s, r, CAIRN_TS_AGG_SUM, 100, 0), 0);
    }
    create_simple(db, "roll", CAIRN_TS_DUP_BLOCK, 256);
    assert_int_equal(mkrule(db, "r0", "roll", CAIRN_TS_AGG_SUM, 1000, 0), 0);
    pthread_t th[4];
    thr a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (thr){db, i, 0x1234567ULL * (uint64_t)(i + 1)};
        assert_int_equal(pthread_create(&th[i], NULL, writer, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        assert_int_equal((int)(intptr_t)ret, 0);
    }
    /* Every destination equals the rollup of its source. */
    for (int i = 0; i < NSRC; i++) {
        char s[8], r[8];
        snprintf(s, sizeof s, "s%d", i);
        snprintf(r, sizeof r, "r%d", i);
        cairn_ts_point *p = NULL;
        size_t n = 0;
        assert_int_equal(
            cairn_ts_range(db, s, strlen(s), INT64_MIN, INT64_MAX, &p, &n), 0);
        model m = {0}, e = {0};
        for (size_t k = 0; k < n; k++)
            model_set(&m, p[k].ts, p[k].v);
        cairn_free(p);
        expected_rollup(&m, CAIRN_TS_AGG_SUM, 100, 0, &e);
        assert_series(db, r, &e);
        if (i == 0) {
            model e2 = {0};
            expected_rollup(&e, CAIRN_TS_AGG_SUM, 1000, 0, &e2);
            assert_series(db, "roll", &e2);
            free(e2.p);
        }
        free(m.p);
        free(e.p);
    }
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_reference),
        cmocka_unit_test(test_rule_errors),
        cmocka_unit_test(test_in_transactions),
        cmocka_unit_test(test_alter_incr_ignore_flush),
        cmocka_unit_test(test_threads_and_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
