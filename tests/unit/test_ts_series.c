/*
 * test_ts_series.c — time series through the engine (src/ts/series.c):
 * create, add (in order, out of order into the open part and into sealed
 * chunks, duplicates under every policy, retention), range reads against a
 * model, durability across a clean reopen and a power cut (every
 * acknowledged point is there), deletion, and concurrent writers (also
 * under TSan).
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
#include "ts/query.h"

static uint64_t rng = 88172645463325252ULL;

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

/* The model: a sorted array of points. */
typedef struct model {
    cairn_ts_point *p;
    size_t n, cap;
    int64_t newest;
    bool any;
} model;

static int model_add(model *m, const cairn_ts_options *o, int64_t ts,
                     double v)
{
    if (o->retention_ms && m->any && ts < m->newest &&
        (uint64_t)m->newest - (uint64_t)ts > o->retention_ms)
        return CAIRN_EHISTORY;
    size_t i = 0;
    while (i < m->n && m->p[i].ts < ts)
        i++;
    if (i < m->n && m->p[i].ts == ts) {
        double old = m->p[i].v;
        switch (o->duplicate_policy) {
        case CAIRN_TS_DUP_BLOCK:
            return CAIRN_EEXIST;
        case CAIRN_TS_DUP_FIRST:
            break;
        case CAIRN_TS_DUP_LAST:
            m->p[i].v = v;
            break;
        case CAIRN_TS_DUP_MIN:
            m->p[i].v = v < old ? v : old;
            break;
        case CAIRN_TS_DUP_MAX:
            m->p[i].v = v > old ? v : old;
            break;
        case CAIRN_TS_DUP_SUM:
            m->p[i].v = old + v;
            break;
        }
    } else {
        if (m->n == m->cap) {
            m->cap = m->cap ? m->cap * 2 : 256;
            m->p = realloc(m->p, m->cap * sizeof *m->p);
            assert_non_null(m->p);
        }
        memmove(m->p + i + 1, m->p + i, (m->n - i) * sizeof *m->p);
        m->p[i] = (cairn_ts_point){ts, v};
        m->n++;
    }
    if (!m->any || ts > m->newest)
        m->newest = ts;
    m->any = true;
    return 0;
}

/* The series' range [from, to] equals the model's (after retention). */
static void check_range(cairn_db *db, const char *name, const model *m,
                        const cairn_ts_options *o, int64_t from, int64_t to)
{
    cairn_ts_point *p = NULL;
    size_t n = 0;
    assert_int_equal(cairn_ts_range(db, name, strlen(name), from, to, &p, &n),
                     0);
    size_t j = 0;
    for (size_t i = 0; i < m->n; i++) {
        int64_t ts = m->p[i].ts;
        if (ts < from || ts > to)
            continue;
        if (o->retention_ms && ts < m->newest &&
            (uint64_t)m->newest - (uint64_t)ts > o->retention_ms)
            continue;
        assert_true(j < n);
        assert_true(p[j].ts == ts);
        assert_memory_equal(&p[j].v, &m->p[i].v, 8);
        j++;
    }
    assert_int_equal(j, n);
    cairn_free(p);
}

static void test_create_and_errors(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    db_opts(&o, mem);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    assert_int_equal(cairn_ts_add(db, "s", 1, 1, 1), CAIRN_ENOTFOUND);
    assert_int_equal(cairn_ts_create(db, "s", 1, NULL), 0);
    assert_int_equal(cairn_ts_create(db, "s", 1, NULL), CAIRN_EEXIST);
    cairn_ts_options to;
    cairn_ts_options_init(&to);
    to.chunk_size = 10;
    assert_int_equal(cairn_ts_create(db, "t", 1, &to), CAIRN_EINVAL);
    /* A key that holds something else. */
    const uint8_t k[] = {0x01, 'x'};
    const uint8_t rec[] = {1, 0, 'v'}; /* a string record */
    assert_int_equal(cairn_put(db, k, 2, rec, 3, NULL), 0);
    assert_int_equal(cairn_ts_create(db, "x", 1, NULL), CAIRN_EEXIST);
    assert_int_equal(cairn_ts_add(db, "x", 1, 1, 1), CAIRN_ENOTSUP);
    assert_int_equal(cairn_ts_add(db, "s", 1, 5, 2.5), 0);
    assert_int_equal(cairn_ts_add(db, "s", 1, 5, 3), CAIRN_EEXIST); /* BLOCK */
    cairn_ts_point *p = NULL;
    size_t n = 0;
    assert_int_equal(cairn_ts_range(db, "s", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_true(n == 1 && p[0].ts == 5 && p[0].v == 2.5);
    cairn_free(p);
    assert_int_equal(cairn_ts_range(db, "s", 1, 6, 4, &p, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(cairn_ts_delete(db, "s", 1), 0);
    assert_int_equal(cairn_ts_range(db, "s", 1, 0, 10, &p, &n),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_ts_create(db, "s", 1, NULL), 0);
    assert_int_equal(cairn_ts_range(db, "s", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_int_equal(n, 0);
    /* Deleted behind the series layer's back (the key alone), then
     * created again: the new series starts empty. */
    assert_int_equal(cairn_ts_add(db, "s", 1, 7, 7), 0);
    const uint8_t sk[] = {0x01, 's'};
    assert_int_equal(cairn_delete(db, sk, 2, NULL), 0);
    assert_int_equal(cairn_ts_create(db, "s", 1, NULL), 0);
    assert_int_equal(cairn_ts_add(db, "s", 1, 8, 8), 0);
    assert_int_equal(cairn_ts_range(db, "s", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_true(n == 1 && p[0].ts == 8);
    cairn_free(p);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

/* Random points, in and out of order, under each policy and a retention,
 * with small chunks: the series equals the model, after every batch, after
 * a reopen, and after a power cut. */
static void run_model(int policy, uint64_t retention, bool uncompressed)
{
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    db_opts(&o, mem);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    cairn_ts_options to;
    cairn_ts_options_init(&to);
    to.chunk_size = 128;
    to.duplicate_policy = (cairn_ts_dup_policy)policy;
    to.retention_ms = retention;
    to.uncompressed = uncompressed;
    assert_int_equal(cairn_ts_create(db, "m", 1, &to), 0);
    model m = {0};
    int64_t t = -50000;
    cairn_ts_sample batch[40];
    int res[40];
    for (int round = 0; round < 60; round++) {
        size_t nb = 1 + rnd() % 40;
        for (size_t i = 0; i < nb; i++) {
            uint64_t r = rnd() % 10;
            int64_t ts;
            if (r < 6)
                ts = (t += 1 + (int64_t)(rnd() % 2000));
            else if (r < 8)
                ts = t - (int64_t)(rnd() % 20000); /* out of order */
            else
                ts = m.n ? m.p[rnd() % m.n].ts : t; /* a duplicate */
            double v = rnd() % 3 ? (double)(rnd() % 1000)
                                 : (double)(rnd() % 100000) / 7.0;
            batch[i] = (cairn_ts_sample){"m", 1, ts, v};
        }
        assert_int_equal(cairn_ts_add_many(db, batch, nb, res), 0);
        for (size_t i = 0; i < nb; i++) {
            int want = model_add(&m, &to, batch[i].ts, batch[i].v);
            assert_int_equal(res[i], want);
        }
        check_range(db, "m", &m, &to, INT64_MIN, INT64_MAX);
    }
    for (int q = 0; q < 20; q++) {
        int64_t a = -60000 + (int64_t)(rnd() % 200000);
        check_range(db, "m", &m, &to, a, a + (int64_t)(rnd() % 50000));
    }
    /* The points went through sealed chunks (0x03 keys), not only the
     * point log (0x04). */
    size_t chunks = 0;
    const uint8_t pre = 0x03;
    cairn_iter_options io = {.prefix = &pre, .prefix_len = 1};
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, &io, &it), 0);
    for (cairn_iter_first(it); cairn_iter_valid(it); cairn_iter_next(it))
        chunks++;
    cairn_iter_free(it);
    assert_true(chunks >= (retention ? 1u : 3u)); /* retention drops some */
    /* A clean reopen. */
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    check_range(db, "m", &m, &to, INT64_MIN, INT64_MAX);
    /* More points, then a power cut: every acknowledged point survives. */
    for (int i = 0; i < 50; i++) {
        int64_t ts = (t += 1000);
        int rc = cairn_ts_add(db, "m", 1, ts, i);
        assert_int_equal(rc, model_add(&m, &to, ts, i));
    }
    assert_int_equal(cairn_env_mem_power_loss(mem, true, 7), 0);
    (void)cairn_close(db);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    check_range(db, "m", &m, &to, INT64_MIN, INT64_MAX);
    /* and it goes on */
    assert_int_equal(cairn_ts_add(db, "m", 1, t + 1, 1), 0);
    assert_int_equal(model_add(&m, &to, t + 1, 1), 0);
    check_range(db, "m", &m, &to, INT64_MIN, INT64_MAX);
    assert_int_equal(cairn_close(db), 0);
    free(m.p);
    cairn_env_destroy(mem);
}

static void test_model_policies(void **state)
{
    (void)state;
    for (int p = CAIRN_TS_DUP_BLOCK; p <= CAIRN_TS_DUP_SUM; p++)
        run_model(p, 0, false);
}

static void test_model_retention(void **state)
{
    (void)state;
    run_model(CAIRN_TS_DUP_LAST, 30000, false);
    run_model(CAIRN_TS_DUP_SUM, 5000, true);
}

/* A write whose commit fails (the log cannot be written) leaves the
 * series as it was: its points, replaced values and inserted ones are all
 * undone; the same write then succeeds. */
static void test_failed_write_undone(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    cairn_options o;
    db_opts(&o, env);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    cairn_ts_options to;
    cairn_ts_options_init(&to);
    to.duplicate_policy = CAIRN_TS_DUP_SUM;
    assert_int_equal(cairn_ts_create(db, "u", 1, &to), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(cairn_ts_add(db, "u", 1, i * 10, i), 0);
    cairn_ts_sample s[4] = {{"u", 1, 25, 100}, /* inserted in the middle */
                            {"u", 1, 30, 100}, /* summed into 3 */
                            {"u", 1, 200, 1},  /* appended */
                            {"u", 1, 30, 1}};  /* again */
    int res[4];
    cairn_fault_rule rule = {.op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE),
                             .path_substr = "wal",
                             .fail_at = 1,
                             .error = CAIRN_ENOSPC};
    cairn_env_fault_set(env, &rule);
    int rc = cairn_ts_add_many(db, s, 4, res);
    cairn_env_fault_reset(env);
    assert_int_not_equal(rc, 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(res[i], rc);
    cairn_ts_point *p = NULL;
    size_t n = 0;
    assert_int_equal(cairn_ts_range(db, "u", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_int_equal(n, 10);
    for (int i = 0; i < 10; i++)
        assert_true(p[i].ts == i * 10 && p[i].v == i);
    cairn_free(p);
    assert_int_equal(cairn_ts_add_many(db, s, 4, res), 0);
    assert_int_equal(cairn_ts_range(db, "u", 1, 25, 30, &p, &n), 0);
    assert_true(n == 2 && p[0].v == 100 && p[1].v == 3 + 100 + 1);
    cairn_free(p);
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    assert_int_equal(cairn_ts_range(db, "u", 1, INT64_MIN, INT64_MAX, &p, &n),
                     0);
    assert_int_equal(n, 12);
    assert_true(p[3].ts == 25 && p[4].v == 104 && p[11].ts == 200);
    cairn_free(p);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

/* Queries over the stored series (sealed chunks and the open part, NaN
 * values among them) give what the same query gives over all the points
 * in memory: every aggregator, twa's neighbours outside the range
 * included, forward and reverse, with filters. */
static void test_query_range(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    db_opts(&o, mem);
    o.sync_mode = CAIRN_SYNC_NONE;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    cairn_ts_options to;
    cairn_ts_options_init(&to);
    to.chunk_size = 128;
    assert_int_equal(cairn_ts_create(db, "q", 1, &to), 0);
    enum { N = 3000 };
    static cairn_ts_point all[N];
    int64_t t = -1000000;
    for (int i = 0; i < N; i++) {
        t += 1 + (int64_t)(rnd() % 3000);
        double v = rnd() % 17 == 0 ? NAN : (double)(rnd() % 1000) / 4.0;
        all[i] = (cairn_ts_point){t, v};
        assert_int_equal(cairn_ts_add(db, "q", 1, t, v), 0);
    }
    for (int k = 0; k < 400; k++) {
        cairn_ts_query q = {0};
        int64_t a = all[0].ts - 5000 + (int64_t)(rnd() % (uint64_t)(t - all[0].ts + 10000));
        q.from = a;
        q.to = a + (int64_t)(rnd() % 2000000);
        q.reverse = rnd() % 2;
        q.agg = (cairn_ts_aggregator)(rnd() % CAIRN_TS_AGG__COUNT);
        if (q.agg != CAIRN_TS_AGG_NONE) {
            q.bucket = 1 + (int64_t)(rnd() % 50000);
            q.bucket_ts = (cairn_ts_bucket_ts)(rnd() % 3);
            q.empty = rnd() % 3 == 0;
            q.align = (int64_t)(rnd() % 1000);
        }
        if (rnd() % 4 == 0) {
            q.has_filter_value = true;
            q.filter_min = 50;
            q.filter_max = 200;
        }
        if (rnd() % 4 == 0) {
            q.has_count = true;
            q.count = 1 + rnd() % 20;
        }
        q.max_points = 1000000;
        cairn_ts_point *got = NULL, *want = NULL;
        size_t ng = 0, nw = 0;
        assert_int_equal(cairn_ts_query_range(db, "q", 1, &q, &got, &ng), 0);
        cairn_ts_array_source as;
        cairn_ts_source src;
        cairn_ts_array_source_init(&as, &src, all, N, 100);
        assert_int_equal(cairn_ts_query_run(&q, &src, &want, &nw), 0);
        assert_int_equal(ng, nw);
        for (size_t i = 0; i < ng; i++) {
            assert_true(got[i].ts == want[i].ts);
            assert_true(memcmp(&got[i].v, &want[i].v, 8) == 0 ||
                        (isnan(got[i].v) && isnan(want[i].v)));
        }
        free(want);
        cairn_free(got);
    }
    cairn_ts_query bad = {.from = 0, .to = 10, .agg = CAIRN_TS_AGG_AVG};
    cairn_ts_point *p = NULL;
    size_t n = 0;
    assert_int_equal(cairn_ts_query_range(db, "q", 1, &bad, &p, &n),
                     CAIRN_EINVAL); /* no bucket duration */
    assert_int_equal(cairn_ts_aggregator_from_name("TWA", 3),
                     CAIRN_TS_AGG_TWA);
    assert_int_equal(cairn_ts_aggregator_from_name("median", 6),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

#define L(n, v) {{n, sizeof n - 1}, {v, sizeof v - 1}}

static size_t query(cairn_db *db, const char *f1, const char *f2,
                    char out[][16])
{
    const char *ex[2] = {f1, f2};
    size_t lens[2] = {strlen(f1), f2 ? strlen(f2) : 0};
    cairn_ts_str *keys = NULL;
    size_t n = 0;
    char err[128];
    int rc = cairn_ts_query_index(db, ex, lens, f2 ? 2 : 1, &keys, &n, err,
                                  sizeof err);
    assert_int_equal(rc, 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(keys[i].len < 16);
        memcpy(out[i], keys[i].p, keys[i].len);
        out[i][keys[i].len] = 0;
    }
    cairn_ts_keys_free(keys, n);
    return n;
}

/* Labels are stored with the series; FILTER queries find the series by
 * them, through creations and deletions, after a reopen (the index is
 * rebuilt from the registry), and not a series whose key was deleted
 * behind the series layer's back. */
static void test_labels_and_filters(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    db_opts(&o, mem);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    static const cairn_ts_label l1[] = {L("room", "study"),
                                        L("type", "temperature")};
    static const cairn_ts_label l2[] = {L("room", "kitchen"),
                                        L("type", "temperature")};
    static const cairn_ts_label l3[] = {L("room", "study"),
                                        L("type", "humidity")};
    static const cairn_ts_label bad[] = {L("ro=om", "x")};
    static const cairn_ts_label dup[] = {L("a", "1"), L("a", "2")};
    cairn_ts_options to;
    cairn_ts_options_init(&to);
    to.labels = bad;
    to.nlabels = 1;
    assert_int_equal(cairn_ts_create(db, "x", 1, &to), CAIRN_EINVAL);
    to.labels = dup;
    to.nlabels = 2;
    assert_int_equal(cairn_ts_create(db, "x", 1, &to), CAIRN_EINVAL);
    to.labels = l1;
    assert_int_equal(cairn_ts_create(db, "t1", 2, &to), 0);
    /* the first query loads the index; later creations join it */
    char got[8][16];
    assert_int_equal(query(db, "type=temperature", NULL, got), 1);
    to.labels = l2;
    assert_int_equal(cairn_ts_create(db, "t2", 2, &to), 0);
    to.labels = l3;
    assert_int_equal(cairn_ts_create(db, "h1", 2, &to), 0);
    to.nlabels = 0;
    to.labels = NULL;
    assert_int_equal(cairn_ts_create(db, "bare", 4, &to), 0);
    assert_int_equal(query(db, "type=temperature", NULL, got), 2);
    assert_string_equal(got[0], "t1");
    assert_string_equal(got[1], "t2");
    assert_int_equal(query(db, "room=study", "type!=temperature", got), 1);
    assert_string_equal(got[0], "h1");
    assert_int_equal(query(db, "room=(study,kitchen)", "type=", got), 0);
    assert_int_equal(query(db, "room=(study,kitchen)", NULL, got), 3);
    cairn_ts_label *lab = NULL;
    size_t nl = 0;
    assert_int_equal(cairn_ts_get_labels(db, "t2", 2, &lab, &nl), 0);
    assert_int_equal(nl, 2);
    assert_true(lab[0].name.len == 4 && !memcmp(lab[0].name.p, "room", 4));
    assert_true(lab[0].value.len == 7 && !memcmp(lab[0].value.p, "kitchen", 7));
    cairn_free(lab);
    /* A bad filter. */
    const char *ex[1] = {"room!=study"};
    size_t lens[1] = {11};
    cairn_ts_str *keys = NULL;
    size_t n = 0;
    char err[128] = "";
    assert_int_equal(cairn_ts_query_index(db, ex, lens, 1, &keys, &n, err,
                                          sizeof err),
                     CAIRN_EINVAL);
    assert_true(err[0] != 0);
    /* Deleted through the layer, and behind its back. */
    assert_int_equal(cairn_ts_delete(db, "t1", 2), 0);
    const uint8_t hk[] = {0x01, 'h', '1'};
    assert_int_equal(cairn_delete(db, hk, 3, NULL), 0);
    assert_int_equal(query(db, "room=study", NULL, got), 0);
    assert_int_equal(query(db, "type=temperature", NULL, got), 1);
    assert_string_equal(got[0], "t2");
    /* After a reopen, from the registry. */
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    assert_int_equal(query(db, "type=temperature", NULL, got), 1);
    assert_string_equal(got[0], "t2");
    to.labels = l1;
    to.nlabels = 2;
    assert_int_equal(cairn_ts_create(db, "h1", 2, &to), 0); /* reused key */
    assert_int_equal(query(db, "type=temperature", NULL, got), 2);
    assert_string_equal(got[0], "h1");
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

typedef struct wargs {
    cairn_db *db;
    int id;
    int failures;
} wargs;

static void *writer(void *arg)
{
    wargs *w = arg;
    char own[8];
    snprintf(own, sizeof own, "own%d", w->id);
    for (int i = 0; i < 400; i++) {
        /* its own series, in order */
        if (cairn_ts_add(w->db, own, strlen(own), i, i) != 0)
            w->failures++;
        /* the shared one (timestamps that belong to this thread) and its
         * own, in one call: listed in either order, so that two calls
         * lock the same series given in different orders */
        cairn_ts_sample s[4];
        for (int j = 0; j < 3; j++)
            s[j] = (cairn_ts_sample){"shared", 6, (int64_t)(i * 3 + j) * 8 +
                                                   w->id, 1.0};
        s[3] = (cairn_ts_sample){own, strlen(own), 100000 + i, 2.0};
        if (w->id & 1) {
            cairn_ts_sample tmp = s[0];
            s[0] = s[3];
            s[3] = tmp;
        }
        int res[4];
        if (cairn_ts_add_many(w->db, s, 4, res) != 0 || res[0] || res[1] ||
            res[2] || res[3])
            w->failures++;
    }
    return NULL;
}

static void test_concurrent_writers(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_options o;
    db_opts(&o, mem);
    o.sync_mode = CAIRN_SYNC_NONE;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    cairn_ts_options to;
    cairn_ts_options_init(&to);
    to.chunk_size = 256;
    assert_int_equal(cairn_ts_create(db, "shared", 6, &to), 0);
    for (int i = 0; i < 4; i++) {
        char own[8];
        snprintf(own, sizeof own, "own%d", i);
        assert_int_equal(cairn_ts_create(db, own, strlen(own), &to), 0);
    }
    pthread_t th[4];
    wargs wa[4];
    for (int i = 0; i < 4; i++) {
        wa[i] = (wargs){db, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, writer, &wa[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(wa[i].failures, 0);
    }
    cairn_ts_point *p = NULL;
    size_t n = 0;
    assert_int_equal(
        cairn_ts_range(db, "shared", 6, INT64_MIN, INT64_MAX, &p, &n), 0);
    assert_int_equal(n, 4 * 400 * 3);
    for (size_t i = 1; i < n; i++)
        assert_true(p[i].ts > p[i - 1].ts);
    cairn_free(p);
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    for (int i = 0; i < 4; i++) {
        char own[8];
        snprintf(own, sizeof own, "own%d", i);
        assert_int_equal(cairn_ts_range(db, own, strlen(own), 0, 1000, &p, &n),
                         0);
        assert_int_equal(n, 400);
        cairn_free(p);
        assert_int_equal(
            cairn_ts_range(db, own, strlen(own), 100000, 200000, &p, &n), 0);
        assert_int_equal(n, 400); /* the points given with the shared ones */
        cairn_free(p);
    }
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_errors),
        cmocka_unit_test(test_model_policies),
        cmocka_unit_test(test_model_retention),
        cmocka_unit_test(test_failed_write_undone),
        cmocka_unit_test(test_query_range),
        cmocka_unit_test(test_labels_and_filters),
        cmocka_unit_test(test_concurrent_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
