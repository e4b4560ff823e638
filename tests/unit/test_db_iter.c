/*
 * test_db_iter.c — the public iterator (cairn_iter: src/db/iterator.c)
 * against in-memory models, on the memory env with a tiny memtable and tiny
 * levels so the data spans memtables and sorted files (the tests assert
 * that flushes and compactions happened).
 *
 *  - Random puts/deletes; iterators with random bounds / prefixes / none:
 *    full scans both ways and random walks (first, last, seek,
 *    seek_for_prev, next, prev, seeks to the iterator's own key) checked
 *    key by key, value and commit version, against the model. The keys
 *    include the empty key, keys that are prefixes of others, 0x00 and 0xff
 *    bytes, and keys starting 0xff 0xff (a prefix without a successor).
 *  - A snapshot iterator (and a read-only transaction's) keeps showing its
 *    snapshot while later writes, flushes and compactions go on, and while
 *    another thread writes (run it under TSan too).
 *  - Transaction iterators: own puts and deletes overlaid on the snapshot,
 *    both directions and direction changes; writes made after creation are
 *    not seen; the iterator outlives the transaction.
 *  - as_of_version / as_of_time_us: the past, compared with saved models;
 *    CAIRN_EHISTORY and CAIRN_EINVAL.
 *  - Serializable transactions: a concurrent commit into an iterator's
 *    range (bounds, prefix, unbounded) makes the commit fail with
 *    CAIRN_ECONFLICT; outside the range (or under snapshot isolation) it
 *    commits.
 *  - Invalid arguments; a damaged sorted file stops a scan with
 *    CAIRN_ECORRUPT (everything shown before it is right).
 *
 * Knobs: CAIRN_ITER_OPS (random operations, default 4000), CAIRN_TEST_SEED.
 * Locking: single-threaded except the concurrent-writer test (one writer
 * thread with its own model; the main thread reads only the snapshot).
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cairn.h"
#include "env/env.h"
#include "test_util.h"

#define NKEYS 300
#define MAXK 16
#define MAXV 200

/* ---------- keys, in bytewise order ---------- */

typedef struct kbuf {
    uint8_t k[MAXK];
    size_t l;
} kbuf;

static kbuf g_keys[NKEYS];

static int bytes_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static int kbuf_cmp(const void *a, const void *b)
{
    const kbuf *x = a, *y = b;
    return bytes_cmp(x->k, x->l, y->k, y->l);
}

static void keys_init(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    g_keys[0].l = 0; /* the empty key */
    memcpy(g_keys[1].k, "\xff\xff", 2);
    g_keys[1].l = 2;
    memcpy(g_keys[2].k, "\xff\xff\x01", 3);
    g_keys[2].l = 3;
    for (int i = 3; i < NKEYS; i++) {
        kbuf *b = &g_keys[i];
        int n = snprintf((char *)b->k, MAXK, "%c%d", "abcde"[i % 5], i / 5);
        if (i % 7 == 0) {
            b->k[n++] = 0;
            b->k[n++] = 'x';
        }
        if (i % 11 == 0)
            b->k[n++] = 0xff;
        b->l = (size_t)n;
    }
    qsort(g_keys, NKEYS, sizeof g_keys[0], kbuf_cmp);
    for (int i = 1; i < NKEYS; i++)
        assert_true(kbuf_cmp(&g_keys[i - 1], &g_keys[i]) < 0);
}

/* ---------- the model ---------- */

typedef struct model {
    uint8_t *val[NKEYS]; /* NULL: absent */
    size_t len[NKEYS];
    uint64_t ver[NKEYS]; /* commit version; 0 for a transaction's own */
} model;

static void model_set(model *m, int i, const void *v, size_t len,
                      uint64_t ver)
{
    free(m->val[i]);
    m->val[i] = malloc(len + 1);
    assert_non_null(m->val[i]);
    if (len)
        memcpy(m->val[i], v, len);
    m->len[i] = len;
    m->ver[i] = ver;
}

static void model_del(model *m, int i)
{
    free(m->val[i]);
    m->val[i] = NULL;
    m->len[i] = 0;
    m->ver[i] = 0;
}

static void model_copy(model *dst, const model *src)
{
    memset(dst, 0, sizeof *dst);
    for (int i = 0; i < NKEYS; i++)
        if (src->val[i])
            model_set(dst, i, src->val[i], src->len[i], src->ver[i]);
}

static void model_free(model *m)
{
    for (int i = 0; i < NKEYS; i++)
        model_del(m, i);
}

/* ---------- ranges ---------- */

typedef struct rspec {
    bool lo, hi, pre;
    uint8_t lob[MAXK + 2], hib[MAXK + 2], preb[MAXK + 2];
    size_t lolen, hilen, plen;
} rspec;

static void rs_opts(const rspec *r, cairn_iter_options *o)
{
    memset(o, 0, sizeof *o);
    if (r->lo) {
        o->lower = r->lob;
        o->lower_len = r->lolen;
    }
    if (r->hi) {
        o->upper = r->hib;
        o->upper_len = r->hilen;
    }
    if (r->pre) {
        o->prefix = r->preb;
        o->prefix_len = r->plen;
    }
}

static bool rs_in(const rspec *r, int i)
{
    const kbuf *k = &g_keys[i];
    if (r->pre)
        return k->l >= r->plen && (!r->plen || memcmp(k->k, r->preb, r->plen) == 0);
    if (r->lo && bytes_cmp(k->k, k->l, r->lob, r->lolen) < 0)
        return false;
    if (r->hi && bytes_cmp(k->k, k->l, r->hib, r->hilen) >= 0)
        return false;
    return true;
}

/* A seek target: a key, a key plus 0x00, a key cut short, a key bumped,
 * the empty key, a key above all. out has room for MAXK + 2 bytes. */
static size_t probe(uint64_t *rng, uint8_t *out)
{
    const kbuf *k = &g_keys[tu_rand(rng, NKEYS)];
    memcpy(out, k->k, k->l);
    size_t l = k->l;
    switch (tu_rand(rng, 8)) {
    case 3:
        out[l++] = 0;
        break;
    case 4:
        if (l)
            l--;
        break;
    case 5:
        if (l && out[l - 1] < 0xff)
            out[l - 1]++;
        break;
    case 6:
        l = 0;
        break;
    case 7:
        memcpy(out, "\xff\xff\xff", 3);
        l = 3;
        break;
    default:
        break;
    }
    return l;
}

static void rs_random(rspec *r, uint64_t *rng)
{
    memset(r, 0, sizeof *r);
    switch (tu_rand(rng, 5)) {
    case 0:
        return; /* unbounded */
    case 1:
        r->lo = true;
        r->lolen = probe(rng, r->lob);
        return;
    case 2:
        r->hi = true;
        r->hilen = probe(rng, r->hib);
        return;
    case 3: {
        r->lo = r->hi = true;
        r->lolen = probe(rng, r->lob);
        r->hilen = probe(rng, r->hib);
        if (bytes_cmp(r->lob, r->lolen, r->hib, r->hilen) > 0) {
            uint8_t t[MAXK + 2];
            size_t tl = r->lolen;
            memcpy(t, r->lob, tl);
            memcpy(r->lob, r->hib, r->hilen);
            r->lolen = r->hilen;
            memcpy(r->hib, t, tl);
            r->hilen = tl;
        }
        return;
    }
    default: {
        r->pre = true;
        uint64_t c = tu_rand(rng, 6);
        if (c == 0) {
            memcpy(r->preb, "a1", 2);
            r->plen = 2;
        } else if (c == 1) {
            memcpy(r->preb, "\xff\xff", 2); /* no successor */
            r->plen = 2;
        } else {
            const kbuf *k = &g_keys[tu_rand(rng, NKEYS)];
            r->plen = (size_t)tu_rand(rng, k->l + 1);
            memcpy(r->preb, k->k, r->plen);
        }
        return;
    }
    }
}

/* ---------- expected positions ---------- */

static bool m_live(const model *m, const rspec *r, int i)
{
    return m->val[i] && rs_in(r, i);
}

static int m_fwd(const model *m, const rspec *r, int i)
{
    for (; i < NKEYS; i++)
        if (m_live(m, r, i))
            return i;
    return -1;
}

static int m_bwd(const model *m, const rspec *r, int i)
{
    for (; i >= 0; i--)
        if (m_live(m, r, i))
            return i;
    return -1;
}

/* The first key index >= p (or > p with strict). */
static int kbound(const uint8_t *p, size_t pl, bool strict)
{
    int i = 0;
    while (i < NKEYS) {
        int c = bytes_cmp(g_keys[i].k, g_keys[i].l, p, pl);
        if (c > 0 || (c == 0 && !strict))
            break;
        i++;
    }
    return i;
}

/* The iterator shows model entry j (or is at a true end for j < 0). */
static void check_at(const cairn_iter *it, const model *m, int j)
{
    if (j < 0) {
        if (cairn_iter_valid(it)) {
            size_t kl;
            cairn_iter_key(it, &kl);
            fprintf(stderr, "want end, iterator has a %zu-byte key\n", kl);
        }
        assert_false(cairn_iter_valid(it));
        assert_int_equal(cairn_iter_status(it), 0);
        size_t l = 7;
        assert_null(cairn_iter_key(it, &l));
        assert_int_equal(l, 0);
        return;
    }
    if (!cairn_iter_valid(it))
        fprintf(stderr, "want key #%d, iterator invalid (status %s)\n", j,
                cairn_strerror(cairn_iter_status(it)));
    assert_true(cairn_iter_valid(it));
    size_t kl = 0, vl = 0;
    const void *k = cairn_iter_key(it, &kl);
    const void *v = cairn_iter_value(it, &vl);
    assert_non_null(k);
    assert_non_null(v);
    if (kl != g_keys[j].l || (kl && memcmp(k, g_keys[j].k, kl) != 0))
        fprintf(stderr, "want key #%d (%zu bytes), got %zu bytes\n", j,
                g_keys[j].l, kl);
    assert_int_equal(kl, g_keys[j].l);
    assert_memory_equal(k, g_keys[j].k, kl);
    assert_int_equal(vl, m->len[j]);
    assert_memory_equal(v, m->val[j], vl);
    assert_int_equal(cairn_iter_version(it), m->ver[j]);
}

/* Forward over everything, then backward; returns the keys seen. */
static size_t check_full(cairn_iter *it, const model *m, const rspec *r)
{
    size_t n = 0;
    cairn_iter_first(it);
    int j = m_fwd(m, r, 0);
    for (; j >= 0; j = m_fwd(m, r, j + 1)) {
        check_at(it, m, j);
        n++;
        cairn_iter_next(it);
    }
    check_at(it, m, -1);
    cairn_iter_next(it); /* a no-op at the end */
    check_at(it, m, -1);
    cairn_iter_last(it);
    for (j = m_bwd(m, r, NKEYS - 1); j >= 0; j = m_bwd(m, r, j - 1)) {
        check_at(it, m, j);
        cairn_iter_prev(it);
    }
    check_at(it, m, -1);
    return n;
}

/* Random moves, each checked. */
static void check_walk(cairn_iter *it, const model *m, const rspec *r,
                       uint64_t *rng, int steps)
{
    int cur = -1;
    for (int s = 0; s < steps; s++) {
        uint8_t p[MAXK + 2];
        uint64_t op = tu_rand(rng, 100);
        if (op < 8) {
            cairn_iter_first(it);
            cur = m_fwd(m, r, 0);
        } else if (op < 16) {
            cairn_iter_last(it);
            cur = m_bwd(m, r, NKEYS - 1);
        } else if (op < 30) {
            size_t pl = probe(rng, p);
            cairn_iter_seek(it, p, pl);
            cur = m_fwd(m, r, kbound(p, pl, false));
        } else if (op < 44) {
            size_t pl = probe(rng, p);
            cairn_iter_seek_for_prev(it, p, pl);
            cur = m_bwd(m, r, kbound(p, pl, true) - 1);
        } else if (op < 50) {
            /* Seek to the iterator's own key (the pointer points into it). */
            if (cairn_iter_valid(it)) {
                size_t kl;
                const void *k = cairn_iter_key(it, &kl);
                if (op & 1)
                    cairn_iter_seek(it, k, kl);
                else
                    cairn_iter_seek_for_prev(it, k, kl);
            }
        } else if (op < 75) {
            cairn_iter_next(it);
            if (cur >= 0)
                cur = m_fwd(m, r, cur + 1);
        } else {
            cairn_iter_prev(it);
            if (cur >= 0)
                cur = m_bwd(m, r, cur - 1);
        }
        check_at(it, m, cur);
    }
}

/* ---------- the database ---------- */

static void db_options(cairn_options *o, cairn_env *env, uint64_t history_ms)
{
    cairn_options_init(o);
    o->env = env;
    o->sync_mode = CAIRN_SYNC_NONE;
    o->memtable_size = 16 * 1024;
    o->sst_target_file_size = 8 * 1024;
    o->level_base_size = 32 * 1024;
    o->l0_compaction_trigger = 2;
    o->sst_block_size = 512;
    o->block_cache_size = 64 * 1024;
    o->wal_segment_size = 64 * 1024;
    o->history_ms = history_ms;
}

static cairn_db *db_open(cairn_env *env, uint64_t history_ms)
{
    cairn_options o;
    db_options(&o, env, history_ms);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    return db;
}

static void put_rand(cairn_db *db, model *m, int i, uint64_t *rng)
{
    uint8_t v[MAXV];
    size_t vl = (size_t)tu_rand(rng, MAXV);
    tu_fill(v, vl, tu_splitmix(rng));
    uint64_t ver = 0;
    assert_int_equal(cairn_put(db, g_keys[i].k, g_keys[i].l, v, vl, &ver), 0);
    assert_true(ver > 0);
    model_set(m, i, v, vl, ver);
}

static void del_key(cairn_db *db, model *m, int i)
{
    assert_int_equal(cairn_delete(db, g_keys[i].k, g_keys[i].l, NULL), 0);
    model_del(m, i);
}

static void random_op(cairn_db *db, model *m, uint64_t *rng)
{
    int i = (int)tu_rand(rng, NKEYS);
    if (tu_rand(rng, 100) < 75)
        put_rand(db, m, i, rng);
    else
        del_key(db, m, i);
}

static uint64_t files_now(cairn_db *db)
{
    cairn_stats st;
    cairn_get_stats(db, &st);
    uint64_t n = 0;
    for (int l = 0; l < 8; l++)
        n += st.level_files[l];
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t seed0(void)
{
    return tu_env_u64("CAIRN_TEST_SEED", 20261201);
}

/* ---------- tests ---------- */

static void test_model_scans(void **state)
{
    (void)state;
    keys_init();
    uint64_t rng = seed0();
    uint64_t ops = tu_env_u64("CAIRN_ITER_OPS", 4000);
    cairn_env *env = cairn_env_mem_new();
    cairn_db *db = db_open(env, 3600 * 1000);
    model m = {0};
    size_t checks = 0, with_files = 0, shown = 0;
    for (uint64_t op = 0; op < ops; op++) {
        random_op(db, &m, &rng);
        /* Background flushes may lag on a busy machine: one explicit flush
         * early makes sure most iterators meet sorted files. */
        if (op == ops / 8)
            assert_int_equal(cairn_flush(db), 0);
        if (op % 120 != 119)
            continue;
        rspec r;
        rs_random(&r, &rng);
        cairn_iter_options o;
        rs_opts(&r, &o);
        cairn_iter *it = NULL;
        assert_int_equal(cairn_iter_new(db, &o, &it), 0);
        assert_false(cairn_iter_valid(it)); /* not positioned yet */
        if (files_now(db) > 0)
            with_files++;
        shown += check_full(it, &m, &r);
        check_walk(it, &m, &r, &rng, 150);
        cairn_iter_free(it);
        checks++;
    }
    /* One last full look, unbounded. */
    rspec all = {0};
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    shown += check_full(it, &m, &all);
    check_walk(it, &m, &all, &rng, 500);
    cairn_iter_free(it);
    cairn_stats st;
    cairn_get_stats(db, &st);
    fprintf(stderr,
            "iter model: %" PRIu64 " ops, %zu iterators (%zu over sorted "
            "files), %zu keys shown, %" PRIu64 " flushes, %" PRIu64
            " compactions, %" PRIu64 " files\n",
            ops, checks, with_files, shown, st.flushes, st.compactions,
            files_now(db));
    assert_true(st.flushes >= 3);
    assert_true(st.compactions >= 1);
    assert_true(with_files > checks / 2);
    assert_true(shown > 1000);
    assert_int_equal(cairn_close(db), 0);
    model_free(&m);
    cairn_env_destroy(env);
}

static void populate(cairn_db *db, model *m, uint64_t *rng)
{
    for (int i = 0; i < NKEYS; i++)
        put_rand(db, m, i, rng);
    for (int i = 0; i < NKEYS; i += 4)
        del_key(db, m, i);
}

/* A snapshot iterator, left mid-walk while everything is overwritten and
 * flushed and compacted, still shows the snapshot. */
static void test_snapshot_stable(void **state)
{
    (void)state;
    keys_init();
    uint64_t rng = seed0() + 1;
    cairn_env *env = cairn_env_mem_new();
    cairn_db *db = db_open(env, 3600 * 1000);
    model m = {0}, snap = {0};
    populate(db, &m, &rng);
    model_copy(&snap, &m);

    rspec all = {0}, pre = {0};
    pre.pre = true;
    memcpy(pre.preb, "a", 1);
    pre.plen = 1;
    cairn_iter_options po;
    rs_opts(&pre, &po);
    cairn_iter *it = NULL, *pit = NULL, *tit = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    assert_int_equal(cairn_iter_new(db, &po, &pit), 0);
    cairn_txn_options to = {.read_only = true};
    cairn_txn *ro = NULL;
    assert_int_equal(cairn_txn_begin(db, &to, &ro), 0);
    assert_int_equal(cairn_txn_iter(ro, NULL, &tit), 0);

    cairn_stats s0;
    cairn_get_stats(db, &s0);
    cairn_iter_seek(it, g_keys[NKEYS / 2].k, g_keys[NKEYS / 2].l);
    int cur = m_fwd(&snap, &all, NKEYS / 2);
    cairn_iter_seek_for_prev(pit, "\xff", 1);
    int pcur = m_bwd(&snap, &pre, NKEYS - 1);
    check_at(it, &snap, cur);
    check_at(pit, &snap, pcur);
    int rounds = 0;
    for (;; rounds++) {
        cairn_stats st;
        cairn_get_stats(db, &st);
        if (rounds >= 20 && st.flushes >= s0.flushes + 4 &&
            st.compactions >= s0.compactions + 2)
            break;
        assert_true(rounds < 5000);
        for (int w = 0; w < 40; w++)
            random_op(db, &m, &rng);
        /* One step of each old iterator per round, so the walks cross the
         * flushes and compactions. */
        if (cur < 0) {
            cairn_iter_first(it);
            cur = m_fwd(&snap, &all, 0);
        } else {
            cairn_iter_next(it);
            cur = m_fwd(&snap, &all, cur + 1);
        }
        check_at(it, &snap, cur);
        if (pcur < 0) {
            cairn_iter_last(pit);
            pcur = m_bwd(&snap, &pre, NKEYS - 1);
        } else {
            cairn_iter_prev(pit);
            pcur = m_bwd(&snap, &pre, pcur - 1);
        }
        check_at(pit, &snap, pcur);
    }
    check_full(it, &snap, &all);
    check_full(pit, &snap, &pre);
    check_full(tit, &snap, &all);
    check_walk(it, &snap, &all, &rng, 300);
    cairn_iter_free(it);
    cairn_iter_free(pit);
    cairn_txn_abort(ro);
    /* The transaction is gone; its iterator stays usable. */
    check_full(tit, &snap, &all);
    cairn_iter_free(tit);
    /* A fresh iterator sees the present. */
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    check_full(it, &m, &all);
    cairn_iter_free(it);
    fprintf(stderr, "snapshot: %d rounds of writes while iterating\n",
            rounds);
    assert_int_equal(cairn_close(db), 0);
    model_free(&m);
    model_free(&snap);
    cairn_env_destroy(env);
}

typedef struct writer_arg {
    cairn_db *db;
    model m; /* the writer's, read by the main thread after the join */
    uint64_t rng;
    int ops;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *a = p;
    for (int i = 0; i < a->ops; i++)
        random_op(a->db, &a->m, &a->rng);
    return NULL;
}

/* Snapshot iterators read while another thread writes (and the engine
 * flushes and compacts). */
static void test_snapshot_concurrent_writer(void **state)
{
    (void)state;
    keys_init();
    uint64_t rng = seed0() + 2;
    cairn_env *env = cairn_env_mem_new();
    cairn_db *db = db_open(env, 3600 * 1000);
    writer_arg wa = {.db = db, .rng = rng + 99, .ops = 3000};
    populate(db, &wa.m, &rng);
    model snap;
    model_copy(&snap, &wa.m);
    rspec all = {0};
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    cairn_stats s0;
    cairn_get_stats(db, &s0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, writer_main, &wa), 0);
    int passes = 0;
    for (; passes < 6; passes++) {
        check_full(it, &snap, &all);
        check_walk(it, &snap, &all, &rng, 200);
        /* A second iterator at whatever is current: only its order and
         * uniqueness can be checked while the writer runs. */
        cairn_iter *now = NULL;
        assert_int_equal(cairn_iter_new(db, NULL, &now), 0);
        size_t n = 0;
        uint8_t prev[MAXK];
        size_t prevl = 0;
        for (cairn_iter_first(now); cairn_iter_valid(now);
             cairn_iter_next(now), n++) {
            size_t kl;
            const void *k = cairn_iter_key(now, &kl);
            assert_true(kl <= MAXK);
            if (n)
                assert_true(bytes_cmp(prev, prevl, k, kl) < 0);
            memcpy(prev, k, kl);
            prevl = kl;
        }
        assert_int_equal(cairn_iter_status(now), 0);
        assert_true(n <= NKEYS);
        cairn_iter_free(now);
    }
    pthread_join(th, NULL);
    check_full(it, &snap, &all);
    cairn_iter_free(it);
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    check_full(it, &wa.m, &all);
    cairn_iter_free(it);
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_true(st.flushes > s0.flushes);
    assert_int_equal(cairn_close(db), 0);
    model_free(&wa.m);
    model_free(&snap);
    cairn_env_destroy(env);
}

/* A random write of the transaction, mirrored in eff. Half of them go to a
 * few hot keys, so puts and deletes of one key follow each other. */
static void txn_random_write(cairn_txn *t, model *eff, uint64_t *rng,
                             bool *wrote)
{
    int i = tu_rand(rng, 2) ? (int)tu_rand(rng, NKEYS)
                            : (int)(tu_rand(rng, 12) * 17 % NKEYS);
    wrote[i] = true;
    if (tu_rand(rng, 100) < 60) {
        uint8_t v[MAXV] = {0};
        size_t vl = tu_rand(rng, 4) ? (size_t)tu_rand(rng, MAXV) : 0;
        tu_fill(v, vl, tu_splitmix(rng));
        assert_int_equal(cairn_txn_put(t, g_keys[i].k, g_keys[i].l, v, vl),
                         0);
        model_set(eff, i, v, vl, 0);
    } else {
        assert_int_equal(cairn_txn_delete(t, g_keys[i].k, g_keys[i].l), 0);
        model_del(eff, i);
    }
}

static void test_txn_overlay(void **state)
{
    (void)state;
    keys_init();
    uint64_t rng = seed0() + 3;
    cairn_env *env = cairn_env_mem_new();
    cairn_db *db = db_open(env, 3600 * 1000);
    model m = {0};
    populate(db, &m, &rng);
    for (int i = 0; i < 1500; i++) /* spread over memtables and files */
        random_op(db, &m, &rng);
    /* Flushes run in the background: make sure files exist (however busy
     * the machine), then put more in the memtable. */
    assert_int_equal(cairn_flush(db), 0);
    for (int i = 0; i < 200; i++)
        random_op(db, &m, &rng);
    assert_true(files_now(db) > 0);
    int commits = 0;
    for (int round = 0; round < 40; round++) {
        cairn_txn *t = NULL;
        assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
        model eff;
        model_copy(&eff, &m);
        bool wrote[NKEYS] = {0};
        int nw = (int)tu_rand(&rng, 60);
        for (int w = 0; w < nw; w++)
            txn_random_write(t, &eff, &rng, wrote);
        /* Commits after the snapshot are not seen (only in odd rounds, so
         * even rounds can commit without conflicts). */
        bool others = round & 1;
        if (others)
            for (int w = 0; w < 30; w++)
                random_op(db, &m, &rng);
        rspec r;
        rs_random(&r, &rng);
        if (round % 5 == 0)
            memset(&r, 0, sizeof r);
        cairn_iter_options o;
        rs_opts(&r, &o);
        cairn_iter *it = NULL;
        assert_int_equal(cairn_txn_iter(t, &o, &it), 0);
        check_full(it, &eff, &r);
        check_walk(it, &eff, &r, &rng, 200);
        /* Writes after the iterator's creation: not seen by it, seen by a
         * new one. */
        model old;
        model_copy(&old, &eff);
        for (int w = 0; w < 20; w++)
            txn_random_write(t, &eff, &rng, wrote);
        check_full(it, &old, &r);
        cairn_iter *it2 = NULL;
        assert_int_equal(cairn_txn_iter(t, &o, &it2), 0);
        check_full(it2, &eff, &r);
        check_walk(it2, &eff, &r, &rng, 200);
        cairn_iter_free(it2);
        if (!others && tu_rand(&rng, 2)) {
            uint64_t v = 0;
            assert_int_equal(cairn_txn_commit(t, &v), 0);
            for (int i = 0; i < NKEYS; i++) {
                if (!wrote[i])
                    continue;
                if (eff.val[i])
                    model_set(&m, i, eff.val[i], eff.len[i], v);
                else
                    model_del(&m, i);
            }
            commits++;
        } else {
            cairn_txn_abort(t);
        }
        /* The iterator outlives its transaction. */
        check_full(it, &old, &r);
        cairn_iter_free(it);
        model_free(&old);
        model_free(&eff);
    }
    rspec all = {0};
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    check_full(it, &m, &all);
    cairn_iter_free(it);
    assert_true(commits > 0);
    assert_int_equal(cairn_close(db), 0);
    model_free(&m);
    cairn_env_destroy(env);
}

/* Own writes over an empty database and over keys the snapshot lacks;
 * direction changes right at own entries. */
static void test_txn_overlay_small(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_db *db = db_open(env, 3600 * 1000);
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    cairn_iter *it = NULL;
    assert_int_equal(cairn_txn_iter(t, NULL, &it), 0);
    cairn_iter_first(it);
    assert_false(cairn_iter_valid(it));
    cairn_iter_last(it);
    assert_false(cairn_iter_valid(it));
    cairn_iter_free(it);
    assert_int_equal(cairn_put(db, "b", 1, "B", 1, NULL), 0);
    assert_int_equal(cairn_put(db, "d", 1, "D", 1, NULL), 0);
    cairn_txn_abort(t);

    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    assert_int_equal(cairn_txn_put(t, "a", 1, "a1", 2), 0);
    assert_int_equal(cairn_txn_put(t, "c", 1, "c1", 2), 0);
    assert_int_equal(cairn_txn_put(t, "d", 1, "d1", 2), 0); /* shadows D */
    assert_int_equal(cairn_txn_delete(t, "b", 1), 0);       /* hides B */
    assert_int_equal(cairn_txn_delete(t, "e", 1), 0);       /* absent */
    assert_int_equal(cairn_txn_put(t, "", 0, "", 0), 0);    /* empty key */
    assert_int_equal(cairn_txn_iter(t, NULL, &it), 0);
    const char *want[] = {"", "a", "c", "d"};
    const char *wval[] = {"", "a1", "c1", "d1"};
    size_t kl, vl;
    cairn_iter_first(it);
    for (int i = 0; i < 4; i++) {
        assert_true(cairn_iter_valid(it));
        const void *k = cairn_iter_key(it, &kl);
        const void *v = cairn_iter_value(it, &vl);
        assert_int_equal(kl, strlen(want[i]));
        assert_memory_equal(k, want[i], kl);
        assert_int_equal(vl, strlen(wval[i]));
        assert_memory_equal(v, wval[i], vl);
        assert_int_equal(cairn_iter_version(it), 0);
        cairn_iter_next(it);
    }
    assert_false(cairn_iter_valid(it));
    /* Back and forth around "c" and "d". */
    cairn_iter_seek(it, "c", 1);
    cairn_iter_prev(it);
    assert_memory_equal(cairn_iter_key(it, &kl), "a", 1);
    cairn_iter_next(it);
    assert_memory_equal(cairn_iter_key(it, &kl), "c", 1);
    cairn_iter_next(it);
    assert_memory_equal(cairn_iter_key(it, &kl), "d", 1);
    cairn_iter_prev(it);
    assert_memory_equal(cairn_iter_key(it, &kl), "c", 1);
    cairn_iter_seek_for_prev(it, "bz", 2);
    assert_memory_equal(cairn_iter_key(it, &kl), "a", 1);
    cairn_iter_seek(it, "d\x00", 2);
    assert_false(cairn_iter_valid(it));
    cairn_iter_seek_for_prev(it, "zz", 2);
    assert_memory_equal(cairn_iter_key(it, &kl), "d", 1);
    cairn_iter_free(it);
    uint64_t v = 0;
    assert_int_equal(cairn_txn_commit(t, &v), 0);
    /* Committed: the stored versions. */
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    cairn_iter_last(it);
    assert_memory_equal(cairn_iter_key(it, &kl), "d", 1);
    assert_memory_equal(cairn_iter_value(it, &vl), "d1", 2);
    assert_int_equal(cairn_iter_version(it), v);
    cairn_iter_free(it);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

typedef struct saved {
    uint64_t ver, time_us;
    model m;
} saved;

static void test_as_of(void **state)
{
    (void)state;
    keys_init();
    uint64_t rng = seed0() + 4;
    cairn_env *env = cairn_env_mem_new();
    cairn_db *db = db_open(env, 3600 * 1000);
    model m = {0};
    saved sv[6];
    int nsv = 0;
    for (int op = 0; op < 3000; op++) {
        random_op(db, &m, &rng);
        if (op % 500 == 250) {
            saved *s = &sv[nsv++];
            s->ver = cairn_current_version(db);
            model_copy(&s->m, &m);
            /* A time strictly between this commit and the next. */
            sleep_ms(2);
            s->time_us = now_us();
            sleep_ms(2);
        }
    }
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_true(st.flushes >= 3);
    assert_true(cairn_oldest_version(db) <= sv[0].ver);
    for (int i = 0; i < nsv; i++) {
        rspec r;
        rs_random(&r, &rng);
        cairn_iter_options o;
        rs_opts(&r, &o);
        o.as_of_version = sv[i].ver;
        cairn_iter *it = NULL;
        assert_int_equal(cairn_iter_new(db, &o, &it), 0);
        check_full(it, &sv[i].m, &r);
        check_walk(it, &sv[i].m, &r, &rng, 200);
        cairn_iter_free(it);
        rspec all = {0};
        cairn_iter_options to = {.as_of_time_us = sv[i].time_us};
        assert_int_equal(cairn_iter_new(db, &to, &it), 0);
        check_full(it, &sv[i].m, &all);
        cairn_iter_free(it);
        /* The same version pinned by a read-only transaction. */
        cairn_txn_options tro = {.read_only = true, .at_version = sv[i].ver};
        cairn_txn *t = NULL;
        assert_int_equal(cairn_txn_begin(db, &tro, &t), 0);
        assert_int_equal(cairn_txn_iter(t, &o, &it), CAIRN_EINVAL);
        assert_null(it);
        cairn_iter_options plain;
        rs_opts(&r, &plain);
        assert_int_equal(cairn_txn_iter(t, &plain, &it), 0);
        check_full(it, &sv[i].m, &r);
        cairn_iter_free(it);
        cairn_txn_abort(t);
    }
    /* After a reopen the times of versions in sorted files are not
     * indexed: reads by time are then exact or refused, never wrong. */
    assert_int_equal(cairn_close(db), 0);
    db = db_open(env, 3600 * 1000);
    int by_time = 0;
    for (int i = 0; i < nsv; i++) {
        rspec all = {0};
        cairn_iter_options to = {.as_of_time_us = sv[i].time_us};
        cairn_iter *it = NULL;
        int rc = cairn_iter_new(db, &to, &it);
        assert_true(rc == 0 || rc == CAIRN_EHISTORY);
        if (rc == 0) {
            check_full(it, &sv[i].m, &all);
            cairn_iter_free(it);
            by_time++;
        }
        to = (cairn_iter_options){.as_of_version = sv[i].ver};
        rc = cairn_iter_new(db, &to, &it);
        assert_true(rc == 0 || rc == CAIRN_EHISTORY);
        if (rc == 0) {
            check_full(it, &sv[i].m, &all);
            cairn_iter_free(it);
        }
        model_free(&sv[i].m);
    }
    fprintf(stderr, "as of: %d of %d past times read after a reopen\n",
            by_time, nsv);
    /* The present, by version. */
    cairn_iter_options o = {.as_of_version = cairn_current_version(db)};
    rspec all = {0};
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, &o, &it), 0);
    check_full(it, &m, &all);
    cairn_iter_free(it);
    o.as_of_version = cairn_current_version(db) + 1; /* the future */
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EINVAL);
    o.as_of_version = 0;
    o.as_of_time_us = now_us() + 3600ull * 1000000u;
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EINVAL);
    assert_null(it);
    assert_int_equal(cairn_close(db), 0);
    model_free(&m);
    cairn_env_destroy(env);
}

/* No history kept: reads of the past are refused once it is collected. */
static void test_history_window(void **state)
{
    (void)state;
    keys_init();
    uint64_t rng = seed0() + 5;
    cairn_env *env = cairn_env_mem_new();
    cairn_db *db = db_open(env, 0);
    model m = {0};
    int op = 0;
    for (; op < 20000 && cairn_oldest_version(db) < 2; op++) {
        random_op(db, &m, &rng);
        if (op > 2000)
            sleep_ms(1); /* give the collector time */
    }
    uint64_t oldest = cairn_oldest_version(db);
    assert_true(oldest >= 2);
    cairn_iter *it = NULL;
    cairn_iter_options o = {.as_of_version = 1};
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EHISTORY);
    assert_null(it);
    o.as_of_version = 0;
    o.as_of_time_us = 1; /* 1970 */
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EHISTORY);
    assert_null(it);
    /* The present still reads. */
    o.as_of_time_us = 0;
    o.as_of_version = cairn_current_version(db);
    assert_int_equal(cairn_iter_new(db, &o, &it), 0);
    rspec all = {0};
    check_full(it, &m, &all);
    cairn_iter_free(it);
    assert_int_equal(cairn_close(db), 0);
    model_free(&m);
    cairn_env_destroy(env);
}

/* A serializable transaction iterates a range and writes elsewhere; a
 * concurrent write lands at key w. The commit's result. */
static int ser_case(cairn_db *db, cairn_isolation iso,
                    const cairn_iter_options *o, const char *w, bool walk)
{
    cairn_txn_options to = {.isolation = iso};
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, &to, &t), 0);
    cairn_iter *it = NULL;
    assert_int_equal(cairn_txn_iter(t, o, &it), 0);
    if (walk) {
        size_t n = 0;
        for (cairn_iter_first(it); cairn_iter_valid(it); cairn_iter_next(it))
            n++;
        assert_int_equal(cairn_iter_status(it), 0);
        assert_true(n > 0);
    }
    cairn_iter_free(it);
    assert_int_equal(cairn_txn_put(t, "zz-out", 6, "x", 1), 0);
    assert_int_equal(cairn_put(db, w, strlen(w), "new", 3, NULL), 0);
    return cairn_txn_commit(t, NULL);
}

static void test_serializable_ranges(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_db *db = db_open(env, 3600 * 1000);
    const char *ks[] = {"a", "b", "b5", "c", "d", "p1", "p15", "p2", "q"};
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        assert_int_equal(cairn_put(db, ks[i], strlen(ks[i]), "v", 1, NULL),
                         0);
    cairn_isolation S = CAIRN_ISOLATION_SERIALIZABLE;
    cairn_iter_options bounds = {.lower = "b", .lower_len = 1,
                                 .upper = "d", .upper_len = 1};
    cairn_iter_options pre = {.prefix = "p1", .prefix_len = 2};
    /* Into the range: a conflict (a new key, an update, a delete). */
    assert_int_equal(ser_case(db, S, &bounds, "c1", true), CAIRN_ECONFLICT);
    assert_int_equal(ser_case(db, S, &bounds, "b", true), CAIRN_ECONFLICT);
    assert_int_equal(ser_case(db, S, &pre, "p15", true), CAIRN_ECONFLICT);
    assert_int_equal(ser_case(db, S, &pre, "p1\xff", true), CAIRN_ECONFLICT);
    /* Created, never walked: the range counts all the same. */
    assert_int_equal(ser_case(db, S, &bounds, "bb", false), CAIRN_ECONFLICT);
    /* Unbounded: anything conflicts. */
    assert_int_equal(ser_case(db, S, NULL, "zzz", true), CAIRN_ECONFLICT);
    {
        cairn_txn_options to = {.isolation = S};
        cairn_txn *t = NULL;
        assert_int_equal(cairn_txn_begin(db, &to, &t), 0);
        cairn_iter *it = NULL;
        assert_int_equal(cairn_txn_iter(t, &bounds, &it), 0);
        cairn_iter_free(it);
        assert_int_equal(cairn_txn_put(t, "zz-out", 6, "x", 1), 0);
        assert_int_equal(cairn_delete(db, "b5", 2, NULL), 0);
        assert_int_equal(cairn_txn_commit(t, NULL), CAIRN_ECONFLICT);
    }
    /* Outside the range (the upper bound is exclusive): commits. */
    assert_int_equal(ser_case(db, S, &bounds, "d", true), 0);
    assert_int_equal(ser_case(db, S, &bounds, "a", true), 0);
    assert_int_equal(ser_case(db, S, &pre, "p2", true), 0);
    assert_int_equal(ser_case(db, S, &pre, "p", true), 0);
    /* Snapshot isolation validates no reads. */
    assert_int_equal(ser_case(db, CAIRN_ISOLATION_SNAPSHOT, &bounds, "c2",
                              true),
                     0);
    assert_int_equal(ser_case(db, CAIRN_ISOLATION_SNAPSHOT, NULL, "c3", true),
                     0);
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_int_equal(st.conflicts, 7);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

static void test_invalid(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_db *db = db_open(env, 3600 * 1000);
    assert_int_equal(cairn_put(db, "k1", 2, "v1", 2, NULL), 0);
    assert_int_equal(cairn_put(db, "k2", 2, "v2", 2, NULL), 0);
    cairn_iter *it = (cairn_iter *)&it; /* garbage: must be reset */
    assert_int_equal(cairn_iter_new(NULL, NULL, &it), CAIRN_EINVAL);
    assert_null(it);
    assert_int_equal(cairn_iter_new(db, NULL, NULL), CAIRN_EINVAL);
    assert_int_equal(cairn_txn_iter(NULL, NULL, &it), CAIRN_EINVAL);
    cairn_iter_options o = {.prefix = "k", .prefix_len = 1, .lower = "a",
                            .lower_len = 1};
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EINVAL);
    o = (cairn_iter_options){.prefix = "k", .prefix_len = 1, .upper = "z",
                             .upper_len = 1};
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EINVAL);
    o = (cairn_iter_options){.lower = "k2", .lower_len = 2, .upper = "k1",
                             .upper_len = 2};
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EINVAL);
    o = (cairn_iter_options){.lower = NULL, .lower_len = 3};
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EINVAL);
    o = (cairn_iter_options){.upper = NULL, .upper_len = 3};
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EINVAL);
    o = (cairn_iter_options){.prefix = NULL, .prefix_len = 3};
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EINVAL);
    o = (cairn_iter_options){.as_of_version = 1, .as_of_time_us = 1};
    assert_int_equal(cairn_iter_new(db, &o, &it), CAIRN_EINVAL);
    cairn_txn *t = NULL;
    assert_int_equal(cairn_txn_begin(db, NULL, &t), 0);
    o = (cairn_iter_options){.as_of_version = 1};
    assert_int_equal(cairn_txn_iter(t, &o, &it), CAIRN_EINVAL);
    o = (cairn_iter_options){.as_of_time_us = 1};
    assert_int_equal(cairn_txn_iter(t, &o, &it), CAIRN_EINVAL);
    o = (cairn_iter_options){.prefix = "k", .prefix_len = 1, .lower = "a",
                             .lower_len = 1};
    assert_int_equal(cairn_txn_iter(t, &o, &it), CAIRN_EINVAL);
    assert_null(it);
    cairn_txn_abort(t);

    /* Empty ranges are fine: lower == upper, an empty upper bound. */
    o = (cairn_iter_options){.lower = "k1", .lower_len = 2, .upper = "k1",
                             .upper_len = 2};
    assert_int_equal(cairn_iter_new(db, &o, &it), 0);
    cairn_iter_first(it);
    assert_false(cairn_iter_valid(it));
    cairn_iter_last(it);
    assert_false(cairn_iter_valid(it));
    cairn_iter_free(it);
    o = (cairn_iter_options){.upper = "", .upper_len = 0};
    assert_int_equal(cairn_iter_new(db, &o, &it), 0);
    cairn_iter_seek_for_prev(it, "zz", 2);
    assert_false(cairn_iter_valid(it));
    assert_int_equal(cairn_iter_status(it), 0);
    cairn_iter_free(it);
    /* An empty lower bound bounds nothing. */
    o = (cairn_iter_options){.lower = "", .lower_len = 0};
    assert_int_equal(cairn_iter_new(db, &o, &it), 0);
    cairn_iter_first(it);
    size_t kl = 0, vl = 0;
    assert_memory_equal(cairn_iter_key(it, &kl), "k1", 2);

    /* Moves on an invalid iterator, accessors when invalid, bad seeks. */
    cairn_iter_seek(it, NULL, 3);
    assert_false(cairn_iter_valid(it));
    assert_int_equal(cairn_iter_status(it), CAIRN_EINVAL);
    cairn_iter_next(it);
    cairn_iter_prev(it);
    assert_false(cairn_iter_valid(it));
    kl = vl = 9;
    assert_null(cairn_iter_key(it, &kl));
    assert_null(cairn_iter_value(it, &vl));
    assert_int_equal(kl, 0);
    assert_int_equal(vl, 0);
    assert_int_equal(cairn_iter_version(it), 0);
    cairn_iter_last(it); /* starts over */
    assert_int_equal(cairn_iter_status(it), 0);
    assert_memory_equal(cairn_iter_key(it, &kl), "k2", 2);
    cairn_iter_seek_for_prev(it, NULL, 1);
    assert_int_equal(cairn_iter_status(it), CAIRN_EINVAL);
    cairn_iter_seek(it, NULL, 0); /* the empty key: fine */
    assert_int_equal(cairn_iter_status(it), 0);
    assert_memory_equal(cairn_iter_key(it, &kl), "k1", 2);
    cairn_iter_free(it);
    cairn_iter_free(NULL);
    assert_false(cairn_iter_valid(NULL));
    cairn_iter_first(NULL);
    cairn_iter_next(NULL);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

/* Flip one byte early in every sorted file (inside its first data block),
 * reopen and scan: the scan stops with CAIRN_ECORRUPT, and what it showed
 * before is right. */
static void test_corruption(void **state)
{
    (void)state;
    keys_init();
    uint64_t rng = seed0() + 6;
    cairn_env *env = cairn_env_mem_new();
    cairn_db *db = db_open(env, 3600 * 1000);
    model m = {0};
    populate(db, &m, &rng);
    for (int i = 0; i < 1500; i++)
        random_op(db, &m, &rng);
    assert_int_equal(cairn_close(db), 0);
    char **names = NULL;
    size_t n = 0, damaged = 0;
    assert_int_equal(cairn_env_list_dir(env, "/db", &names, &n), 0);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (l < 4 || strcmp(names[i] + l - 4, ".sst") != 0)
            continue;
        char path[256];
        snprintf(path, sizeof path, "/db/%s", names[i]);
        cairn_file *f = NULL;
        assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_WRITE, &f), 0);
        uint8_t b;
        size_t got = 0;
        assert_int_equal(cairn_file_read_at(f, 40, &b, 1, &got), 0);
        assert_int_equal(got, 1);
        b ^= 0x5a;
        assert_int_equal(cairn_file_write_at(f, 40, &b, 1), 0);
        assert_int_equal(cairn_file_close(f), 0);
        damaged++;
    }
    cairn_env_free_list(names, n);
    assert_true(damaged > 0);
    db = db_open(env, 3600 * 1000);
    rspec all = {0};
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    for (int pass = 0; pass < 2; pass++) {
        int j = m_fwd(&m, &all, 0);
        size_t shown = 0;
        for (cairn_iter_first(it); cairn_iter_valid(it); cairn_iter_next(it)) {
            assert_true(j >= 0);
            check_at(it, &m, j);
            j = m_fwd(&m, &all, j + 1);
            shown++;
        }
        assert_int_equal(cairn_iter_status(it), CAIRN_ECORRUPT);
        cairn_iter_next(it); /* stays stopped */
        assert_false(cairn_iter_valid(it));
        assert_int_equal(cairn_iter_status(it), CAIRN_ECORRUPT);
        /* Backward meets the damage too. */
        for (cairn_iter_last(it); cairn_iter_valid(it); cairn_iter_prev(it))
            ;
        assert_int_equal(cairn_iter_status(it), CAIRN_ECORRUPT);
    }
    cairn_iter_free(it);
    (void)cairn_close(db);
    model_free(&m);
    cairn_env_destroy(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_scans),
        cmocka_unit_test(test_snapshot_stable),
        cmocka_unit_test(test_snapshot_concurrent_writer),
        cmocka_unit_test(test_txn_overlay),
        cmocka_unit_test(test_txn_overlay_small),
        cmocka_unit_test(test_as_of),
        cmocka_unit_test(test_history_window),
        cmocka_unit_test(test_serializable_ranges),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_corruption),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
