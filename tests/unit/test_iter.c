/*
 * test_iter.c — the iterator stack (src/lsm/iter.c) and the memtable's
 * backward positioning (cairn_mt_iter_seek_last / seek_for_prev / prev).
 *
 *  - Memtable backward moves against a sorted reference: seek_last, prev
 *    over the whole table, seek_for_prev at random targets (versions 0 and
 *    UINT64_MAX included, the empty key, keys absent and prefixes of others)
 *    mixed with next. Concurrency: one writer inserting while two readers
 *    walk backward (and seek_for_prev) over and over: entries come in
 *    strictly descending order and every entry whose insert was published
 *    before the walk started is met (run it under TSan too).
 *  - Random worlds: commits (1-2 keys each, several versions per key, three
 *    hot keys with dozens of versions, deletes, empty values, the empty key,
 *    keys that are prefixes of others, bytes 0x00 and 0xff; timestamps
 *    monotone, or in some worlds random so the time bound is independent of
 *    the version) spread over 2-4 memtables and 1-3 sorted files built on the
 *    memory env; some entries are duplicated into an OLDER source with
 *    different contents (a stale put, or a delete), which the merge must
 *    hide behind the newer source's copy.
 *  - Merging iterator vs a brute-force reference: full scans both ways,
 *    random seek / seek_for_prev, random walks with direction changes;
 *    ten children (deeper heap), one child (returned as is), none.
 *  - User iterator vs the reference at many random snapshots and time
 *    bounds, with random bounds and prefixes: full scans both ways and
 *    random walks mixing first / last / seek / seek_for_prev / next / prev,
 *    including seeks to the iterator's own current key (the key pointer
 *    points into the iterator: it must be copied first).
 *  - Cost: a key with 2000 versions (deletes among them) as the only child,
 *    wrapped to count child steps and seeks: scans both ways and direction
 *    changes at several snapshots take a bounded number of child moves (the
 *    re-seek paths of the user iterator), not one per version.
 *  - Entries at version UINT64_MAX (the first possible entry of a key) next
 *    to bounds that equal their key, at every bound/snapshot combination.
 *  - Errors: a sorted file with its first (or a middle) data block damaged:
 *    the merge and the user iterator become invalid with CAIRN_ECORRUPT and
 *    a message; everything shown before that is right. A child that fails
 *    at random moves: every answer is either right or an error, never wrong
 *    data, never an early "end".
 *  - Prefix successor edge cases.
 *
 * CAIRN_ITER_TEST_SCALE (default 1) multiplies the number of random worlds
 * and walks. The random user-iterator worlds shrink under TSan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cairn.h"
#include "env/env.h"
#include "lsm/iter.h"
#include "mvcc/memtable.h"
#include "sst/sst.h"
#include "test_util.h"

/* TSan makes every atomic load of the memtable costly and only the
 * concurrent test needs it: the single-threaded workloads shrink there. */
#if defined(__SANITIZE_THREAD__)
#define CONC_ENTRIES 12000
#define USER_ROUNDS 2
#else
#define CONC_ENTRIES 40000
#define USER_ROUNDS 8
#endif

static uint64_t g_scale = 1;

/* ---------- reference order, written independently of iter.c ---------- */

#define KMAX 8

static int ref_ukey(const uint8_t *a, size_t alen, const uint8_t *b,
                    size_t blen)
{
    for (size_t i = 0; i < alen && i < blen; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return alen == blen ? 0 : alen < blen ? -1 : 1;
}

static int ref_ikey(const uint8_t *a, size_t alen, uint64_t av,
                    const uint8_t *b, size_t blen, uint64_t bv)
{
    int c = ref_ukey(a, alen, b, blen);
    if (c)
        return c;
    return av == bv ? 0 : av > bv ? -1 : 1;
}

static const uint8_t g_alpha[] = {0x00, 'a', 'b', 0xff};

static size_t rand_key(uint64_t *rng, uint8_t *k, size_t maxlen)
{
    size_t len = tu_rand(rng, maxlen + 1);
    for (size_t i = 0; i < len; i++)
        k[i] = g_alpha[tu_rand(rng, 4)];
    return len;
}

/* ---------- memtable backward moves ---------- */

typedef struct mref {
    uint8_t key[KMAX];
    size_t klen;
    uint64_t version;
} mref;

static int mref_cmp(const void *x, const void *y)
{
    const mref *a = x, *b = y;
    return ref_ikey(a->key, a->klen, a->version, b->key, b->klen, b->version);
}

/* Index of the last reference entry <= (k, v), or -1. */
static long mref_floor(const mref *r, size_t n, const uint8_t *k, size_t kl,
                       uint64_t v)
{
    long ans = -1;
    for (size_t i = 0; i < n; i++) /* brute force on purpose */
        if (ref_ikey(r[i].key, r[i].klen, r[i].version, k, kl, v) <= 0)
            ans = (long)i;
    return ans;
}

static void check_mt_at(const cairn_mt_iter *it, const mref *r, long idx)
{
    if (idx < 0) {
        assert_false(cairn_mt_iter_valid(it));
        return;
    }
    assert_true(cairn_mt_iter_valid(it));
    cairn_mt_entry e;
    cairn_mt_iter_entry(it, &e);
    assert_int_equal(e.klen, r[idx].klen);
    assert_memory_equal(e.key, r[idx].key, e.klen);
    assert_int_equal(e.version, r[idx].version);
}

static void test_memtable_backward(void **state)
{
    (void)state;
    uint64_t rng = 7;
    for (int round = 0; round < 4; round++) {
        cairn_memtable *mt = cairn_memtable_new_sized(1 << 16);
        assert_non_null(mt);
        cairn_mt_iter it;
        cairn_mt_iter_init(&it, mt);
        /* Empty table. */
        cairn_mt_iter_seek_last(&it);
        assert_false(cairn_mt_iter_valid(&it));
        cairn_mt_iter_seek_for_prev(&it, "a", 1, 0);
        assert_false(cairn_mt_iter_valid(&it));

        size_t n = round == 0 ? 1 : 300 + tu_rand(&rng, 1500);
        mref *r = calloc(n, sizeof(*r));
        assert_non_null(r);
        size_t have = 0;
        while (have < n) {
            mref *m = &r[have];
            m->klen = rand_key(&rng, m->key, 5);
            m->version = 1 + tu_rand(&rng, 40);
            if (tu_rand(&rng, 20) == 0)
                m->version = UINT64_MAX - tu_rand(&rng, 2);
            int rc = cairn_memtable_insert(mt, m->key, m->klen, m->version,
                                           m->version, CAIRN_MT_PUT, "v", 1);
            if (rc == CAIRN_EEXIST)
                continue;
            assert_int_equal(rc, 0);
            have++;
        }
        qsort(r, n, sizeof(*r), mref_cmp);

        /* Backward over everything. */
        cairn_mt_iter_seek_last(&it);
        for (long i = (long)n - 1; i >= 0; i--) {
            check_mt_at(&it, r, i);
            cairn_mt_iter_prev(&it);
        }
        assert_false(cairn_mt_iter_valid(&it));

        /* seek_for_prev at random targets, then a few steps either way. */
        for (int q = 0; q < 400; q++) {
            uint8_t k[KMAX];
            size_t kl = rand_key(&rng, k, 6);
            uint64_t v;
            switch (tu_rand(&rng, 4)) {
            case 0: v = 0; break;
            case 1: v = UINT64_MAX; break;
            default: v = tu_rand(&rng, 45); break;
            }
            if (q % 7 == 0 && n) { /* an exact entry */
                const mref *m = &r[tu_rand(&rng, n)];
                memcpy(k, m->key, m->klen);
                kl = m->klen;
                v = m->version;
            }
            long idx = mref_floor(r, n, k, kl, v);
            cairn_mt_iter_seek_for_prev(&it, kl ? (const void *)k : "", kl, v);
            check_mt_at(&it, r, idx);
            for (int s = 0; s < 6 && idx >= 0 && idx < (long)n; s++) {
                if (tu_rand(&rng, 2)) {
                    cairn_mt_iter_prev(&it);
                    idx--;
                } else {
                    cairn_mt_iter_next(&it);
                    idx++;
                }
                check_mt_at(&it, r, idx < (long)n ? idx : -1);
            }
        }
        free(r);
        cairn_memtable_unref(mt);
    }
}

/* One writer inserts versions 1..N (one entry each, over a few hundred
 * keys) and publishes how many have been inserted; readers walk backward
 * from the end over and over. */
typedef struct conc_ctx {
    cairn_memtable *mt;
    _Atomic uint64_t published;
    _Atomic bool done;
    _Atomic uint64_t order_errors, missing, bad_floor, walks;
} conc_ctx;

static void conc_key(uint64_t i, uint8_t *k, size_t *kl)
{
    uint64_t s = i % 397;
    *kl = 1 + (size_t)(s % 5);
    for (size_t j = 0; j < *kl; j++) {
        k[j] = g_alpha[s & 3];
        s = s / 4 + j * 3;
    }
}

static void *conc_writer(void *arg)
{
    conc_ctx *c = arg;
    for (uint64_t i = 1; i <= CONC_ENTRIES; i++) {
        uint8_t k[KMAX];
        size_t kl;
        conc_key(i, k, &kl);
        if (cairn_memtable_insert(c->mt, k, kl, i, i, CAIRN_MT_PUT, "x", 1))
            atomic_fetch_add(&c->order_errors, 1);
        atomic_store_explicit(&c->published, i, memory_order_release);
    }
    atomic_store(&c->done, true);
    return NULL;
}

static void *conc_reader(void *arg)
{
    conc_ctx *c = arg;
    uint8_t *seen = calloc(CONC_ENTRIES + 1, 1);
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    if (!seen) {
        atomic_fetch_add(&c->order_errors, 1);
        return NULL;
    }
    cairn_mt_iter it;
    cairn_mt_iter_init(&it, c->mt);
    for (;;) {
        bool last_round = atomic_load(&c->done);
        uint64_t w =
            atomic_load_explicit(&c->published, memory_order_acquire);
        memset(seen, 0, CONC_ENTRIES + 1);
        cairn_mt_entry prev = {0}, e;
        bool have = false;
        for (cairn_mt_iter_seek_last(&it); cairn_mt_iter_valid(&it);
             cairn_mt_iter_prev(&it)) {
            cairn_mt_iter_entry(&it, &e);
            if (have && ref_ikey(e.key, e.klen, e.version, prev.key,
                                 prev.klen, prev.version) >= 0)
                atomic_fetch_add(&c->order_errors, 1);
            if (e.version >= 1 && e.version <= CONC_ENTRIES)
                seen[e.version] = 1;
            prev = e;
            have = true;
        }
        for (uint64_t v = 1; v <= w; v++)
            if (!seen[v])
                atomic_fetch_add(&c->missing, 1);
        /* A few floors: never past the target; the published entry just
         * at the target is found exactly. */
        for (int q = 0; q < 50 && w; q++) {
            uint64_t v = 1 + tu_rand(&rng, w);
            uint8_t k[KMAX];
            size_t kl;
            conc_key(v, k, &kl);
            cairn_mt_iter_seek_for_prev(&it, k, kl, v);
            if (!cairn_mt_iter_valid(&it)) {
                atomic_fetch_add(&c->bad_floor, 1);
                continue;
            }
            cairn_mt_iter_entry(&it, &e);
            if (e.version != v || e.klen != kl || memcmp(e.key, k, kl))
                atomic_fetch_add(&c->bad_floor, 1);
        }
        atomic_fetch_add(&c->walks, 1);
        if (last_round)
            break;
    }
    free(seen);
    return NULL;
}

static void test_memtable_backward_concurrent(void **state)
{
    (void)state;
    conc_ctx *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->mt = cairn_memtable_new();
    assert_non_null(c->mt);
    pthread_t w, r[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&r[i], NULL, conc_reader, c), 0);
    assert_int_equal(pthread_create(&w, NULL, conc_writer, c), 0);
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(r[i], NULL);
    fprintf(stderr, "  backward walks during inserts: %llu\n",
            (unsigned long long)atomic_load(&c->walks));
    assert_int_equal(atomic_load(&c->order_errors), 0);
    assert_int_equal(atomic_load(&c->missing), 0);
    assert_int_equal(atomic_load(&c->bad_floor), 0);
    assert_true(atomic_load(&c->walks) >= 2);
    cairn_memtable_unref(c->mt);
    free(c);
}

/* ---------- random worlds ---------- */

typedef struct rent {
    uint8_t key[KMAX];
    size_t klen;
    uint64_t version, ts;
    int kind; /* CAIRN_IKIND_PUT / DELETE */
    uint8_t val[24];
    size_t vlen;
    int src;     /* source index (0 = newest) */
    bool shadow; /* a stale copy in an older source: not in the reference */
} rent;

#define MAX_SRC 10

typedef struct world {
    rent *all; /* every stored entry, shadows included */
    size_t nall;
    rent *ref; /* the merged truth: sorted, unique (key, version) */
    size_t nref;
    int nmt, nsst;
    cairn_memtable *mt[MAX_SRC];
    cairn_sst_reader *sst[MAX_SRC];
    char sst_path[MAX_SRC][32];
    cairn_env *env;
    uint64_t maxv, maxts;
    uint8_t pool[64][KMAX];
    size_t pool_len[64];
    size_t npool;
} world;

static int rent_cmp(const void *x, const void *y)
{
    const rent *a = x, *b = y;
    return ref_ikey(a->key, a->klen, a->version, b->key, b->klen, b->version);
}

typedef struct world_opts {
    int nmt, nsst;
    size_t commits;
    bool random_ts;
    size_t block_size;
} world_opts;

static void build_sst(world *w, int s, uint64_t *rng, size_t block_size)
{
    int src = w->nmt + s;
    snprintf(w->sst_path[s], sizeof(w->sst_path[s]), "f%d.sst", s);
    cairn_sst_options o;
    cairn_sst_options_init(&o);
    o.block_size = block_size;
    o.restart_interval = 1 + (uint32_t)tu_rand(rng, 8);
    o.codec = (cairn_sst_codec)tu_rand(rng, 3);
    cairn_sst_builder *b = NULL;
    assert_int_equal(cairn_sst_builder_new(w->env, w->sst_path[s], &o, &b), 0);
    rent *mine = calloc(w->nall + 1, sizeof(*mine));
    assert_non_null(mine);
    size_t n = 0;
    for (size_t i = 0; i < w->nall; i++)
        if (w->all[i].src == src)
            mine[n++] = w->all[i];
    qsort(mine, n, sizeof(*mine), rent_cmp);
    for (size_t i = 0; i < n; i++) {
        const rent *e = &mine[i];
        assert_int_equal(cairn_sst_builder_add(
                             b, e->key, e->klen, e->version, e->ts,
                             (cairn_sst_kind)e->kind,
                             e->kind == CAIRN_IKIND_PUT ? e->val : NULL,
                             e->vlen),
                         0);
    }
    free(mine);
    assert_int_equal(cairn_sst_builder_finish(b, NULL), 0);
    char msg[CAIRN_SST_ERRMSG_LEN];
    assert_int_equal(cairn_sst_open(w->env, w->sst_path[s], (uint64_t)s + 1,
                                    NULL, &w->sst[s], msg),
                     0);
}

static void world_build(world *w, uint64_t seed, const world_opts *o)
{
    memset(w, 0, sizeof(*w));
    uint64_t rng = seed;
    w->nmt = o->nmt;
    w->nsst = o->nsst;
    int nsrc = w->nmt + w->nsst;
    assert_true(nsrc >= 1 && nsrc <= MAX_SRC);

    /* A pool of keys: the empty key, prefixes of each other, 0x00/0xff. */
    w->npool = 20 + tu_rand(&rng, 40);
    for (size_t i = 0; i < w->npool; i++) {
        if (i == 0) {
            w->pool_len[i] = 0;
        } else if (i < 4 || tu_rand(&rng, 3) == 0) {
            /* a prefix or an extension of an earlier key */
            size_t j = tu_rand(&rng, i);
            size_t l = w->pool_len[j];
            memcpy(w->pool[i], w->pool[j], l);
            if (l > 1 && tu_rand(&rng, 2)) {
                w->pool_len[i] = l - 1;
            } else if (l < KMAX - 1) {
                w->pool[i][l] = g_alpha[tu_rand(&rng, 4)];
                w->pool_len[i] = l + 1;
            } else {
                w->pool_len[i] = rand_key(&rng, w->pool[i], 4);
            }
        } else {
            w->pool_len[i] = rand_key(&rng, w->pool[i], 4);
        }
    }

    size_t cap = o->commits * 2 * 2 + 8;
    w->all = calloc(cap, sizeof(rent));
    assert_non_null(w->all);
    uint64_t ts = 1000;
    for (uint64_t v = 1; v <= o->commits; v++) {
        ts = o->random_ts ? 1 + tu_rand(&rng, 3000) : ts + tu_rand(&rng, 3);
        size_t nk = 1 + tu_rand(&rng, 2);
        size_t first_pick = SIZE_MAX;
        for (size_t j = 0; j < nk; j++) {
            size_t p = tu_rand(&rng, 10) < 3 ? tu_rand(&rng, 3)
                                              : tu_rand(&rng, w->npool);
            if (p == first_pick) /* same key twice in one commit */
                continue;
            first_pick = p;
            /* Several keys of the pool may be equal: keep (key, v) unique. */
            bool dup = false;
            for (size_t q = w->nall; q-- > 0 && w->all[q].version == v;)
                if (ref_ukey(w->all[q].key, w->all[q].klen, w->pool[p],
                             w->pool_len[p]) == 0)
                    dup = true;
            if (dup)
                continue;
            rent *e = &w->all[w->nall++];
            memcpy(e->key, w->pool[p], w->pool_len[p]);
            e->klen = w->pool_len[p];
            e->version = v;
            e->ts = ts;
            e->src = (int)tu_rand(&rng, (uint64_t)nsrc);
            if (tu_rand(&rng, 5) == 0) {
                e->kind = CAIRN_IKIND_DELETE;
            } else {
                e->kind = CAIRN_IKIND_PUT;
                e->vlen = tu_rand(&rng, 4) == 0 ? 0 : 1 + tu_rand(&rng, 20);
                tu_fill(e->val, e->vlen, v * 131 + j);
            }
            if (e->ts > w->maxts)
                w->maxts = e->ts;
            /* A stale copy in an older source. */
            if (e->src + 1 < nsrc && tu_rand(&rng, 10) == 0) {
                rent *s = &w->all[w->nall++];
                *s = *e;
                s->src = e->src + 1 +
                         (int)tu_rand(&rng, (uint64_t)(nsrc - e->src - 1));
                s->shadow = true;
                if (e->kind == CAIRN_IKIND_PUT && tu_rand(&rng, 2)) {
                    s->kind = CAIRN_IKIND_DELETE;
                    s->vlen = 0;
                } else {
                    s->kind = CAIRN_IKIND_PUT;
                    memcpy(s->val, "STALE", 5);
                    s->vlen = 5;
                }
            }
        }
    }
    w->maxv = o->commits;

    /* Memtables: insert in a shuffled order. */
    size_t *perm = malloc((w->nall + 1) * sizeof(size_t));
    assert_non_null(perm);
    for (size_t i = 0; i < w->nall; i++)
        perm[i] = i;
    for (size_t i = w->nall; i > 1; i--) {
        size_t j = tu_rand(&rng, i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (int m = 0; m < w->nmt; m++) {
        w->mt[m] = cairn_memtable_new_sized(1 << 16);
        assert_non_null(w->mt[m]);
    }
    for (size_t i = 0; i < w->nall; i++) {
        const rent *e = &w->all[perm[i]];
        if (e->src >= w->nmt)
            continue;
        assert_int_equal(cairn_memtable_insert(
                             w->mt[e->src], e->key, e->klen, e->version,
                             e->ts, (cairn_mt_kind)e->kind,
                             e->kind == CAIRN_IKIND_PUT ? e->val : NULL,
                             e->vlen),
                         0);
    }
    free(perm);
    if (w->nsst) {
        w->env = cairn_env_mem_new();
        assert_non_null(w->env);
        for (int s = 0; s < w->nsst; s++)
            build_sst(w, s, &rng, o->block_size);
    }

    /* The truth. */
    w->ref = calloc(w->nall + 1, sizeof(rent));
    assert_non_null(w->ref);
    for (size_t i = 0; i < w->nall; i++)
        if (!w->all[i].shadow)
            w->ref[w->nref++] = w->all[i];
    qsort(w->ref, w->nref, sizeof(rent), rent_cmp);
    for (size_t i = 1; i < w->nref; i++)
        assert_true(rent_cmp(&w->ref[i - 1], &w->ref[i]) < 0);
}

static void world_free(world *w)
{
    for (int m = 0; m < w->nmt; m++)
        cairn_memtable_unref(w->mt[m]);
    for (int s = 0; s < w->nsst; s++)
        cairn_sst_close(w->sst[s]);
    cairn_env_destroy(w->env);
    free(w->all);
    free(w->ref);
}

/* A merge over the world's sources, newest first. */
static cairn_iiter *world_merge(world *w)
{
    cairn_iiter *ch[MAX_SRC];
    int n = 0;
    for (int m = 0; m < w->nmt; m++)
        ch[n++] = cairn_iiter_from_memtable(w->mt[m]);
    for (int s = 0; s < w->nsst; s++)
        ch[n++] = cairn_iiter_from_sst(w->sst[s]);
    cairn_iiter *it = cairn_iiter_merge(ch, (size_t)n);
    assert_non_null(it);
    return it;
}

/* ---------- merging iterator vs the reference ---------- */

static void check_ient(const cairn_ientry *e, const rent *r)
{
    assert_int_equal(e->klen, r->klen);
    assert_memory_equal(e->key, r->key, r->klen);
    assert_int_equal(e->version, r->version);
    assert_int_equal(e->ts_us, r->ts);
    assert_int_equal(e->kind, r->kind);
    if (r->kind == CAIRN_IKIND_PUT) {
        assert_non_null(e->value);
        assert_int_equal(e->vlen, r->vlen);
        assert_memory_equal(e->value, r->val, r->vlen);
    } else {
        assert_null(e->value);
        assert_int_equal(e->vlen, 0);
    }
}

/* Expect `it` at ref[idx] (idx outside [0, n): invalid, status 0). */
static void check_merge_at(cairn_iiter *it, const world *w, long idx)
{
    assert_int_equal(cairn_iiter_status(it), 0);
    if (idx < 0 || idx >= (long)w->nref) {
        assert_false(cairn_iiter_valid(it));
        return;
    }
    assert_true(cairn_iiter_valid(it));
    cairn_ientry e;
    cairn_iiter_entry(it, &e);
    check_ient(&e, &w->ref[idx]);
}

static long ref_lower_idx(const world *w, const uint8_t *k, size_t kl,
                          uint64_t v)
{
    long lo = 0, hi = (long)w->nref;
    while (lo < hi) {
        long mid = (lo + hi) / 2;
        const rent *e = &w->ref[mid];
        if (ref_ikey(e->key, e->klen, e->version, k, kl, v) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static long ref_floor_idx(const world *w, const uint8_t *k, size_t kl,
                          uint64_t v)
{
    long i = ref_lower_idx(w, k, kl, v);
    if (i < (long)w->nref) {
        const rent *e = &w->ref[i];
        if (ref_ikey(e->key, e->klen, e->version, k, kl, v) == 0)
            return i;
    }
    return i - 1;
}

static uint64_t rand_version(uint64_t *rng, const world *w)
{
    switch (tu_rand(rng, 5)) {
    case 0: return 0;
    case 1: return UINT64_MAX;
    default: return tu_rand(rng, w->maxv + 2);
    }
}

static void random_target(uint64_t *rng, const world *w, uint8_t *k,
                          size_t *kl)
{
    if (w->npool && tu_rand(rng, 2)) {
        size_t p = tu_rand(rng, w->npool);
        memcpy(k, w->pool[p], w->pool_len[p]);
        *kl = w->pool_len[p];
    } else {
        *kl = rand_key(rng, k, 5);
    }
}

static void check_merge_world(world *w, uint64_t seed)
{
    uint64_t rng = seed;
    cairn_iiter *it = world_merge(w);

    /* Unpositioned. */
    assert_false(cairn_iiter_valid(it));

    /* Full scans. */
    cairn_iiter_seek_first(it);
    for (long i = 0; i < (long)w->nref; i++) {
        check_merge_at(it, w, i);
        cairn_iiter_next(it);
    }
    check_merge_at(it, w, -1);
    cairn_iiter_seek_last(it);
    for (long i = (long)w->nref - 1; i >= 0; i--) {
        check_merge_at(it, w, i);
        cairn_iiter_prev(it);
    }
    check_merge_at(it, w, -1);

    /* Random walk. */
    long idx = -1;
    for (uint64_t step = 0; step < 1500; step++) {
        bool valid = idx >= 0 && idx < (long)w->nref;
        uint64_t op = tu_rand(&rng, 10);
        if (valid && op < 3) {
            cairn_iiter_next(it);
            idx++;
        } else if (valid && op < 6) {
            cairn_iiter_prev(it);
            idx--;
        } else if (op < 8) {
            uint8_t k[KMAX];
            size_t kl;
            random_target(&rng, w, k, &kl);
            uint64_t v = rand_version(&rng, w);
            if (tu_rand(&rng, 2)) {
                cairn_iiter_seek(it, k, kl, v);
                idx = ref_lower_idx(w, k, kl, v);
            } else {
                cairn_iiter_seek_for_prev(it, k, kl, v);
                idx = ref_floor_idx(w, k, kl, v);
            }
        } else if (op == 8) {
            cairn_iiter_seek_first(it);
            idx = 0;
        } else {
            cairn_iiter_seek_last(it);
            idx = (long)w->nref - 1;
        }
        if (idx >= (long)w->nref)
            idx = (long)w->nref;
        if (idx < -1)
            idx = -1;
        check_merge_at(it, w, idx);
    }
    cairn_iiter_destroy(it);
}

/* ---------- user iterator vs the reference ---------- */

typedef struct vis {
    long *idx; /* indexes into w->ref of the entries shown, in key order */
    size_t n;
} vis;

/* The reference answer: per user key in [lower, upper), the newest entry
 * with version <= snap and ts <= max_ts, if it is a put. */
static void vis_build(const world *w, uint64_t snap, uint64_t max_ts,
                      const uint8_t *lo, size_t lolen, const uint8_t *up,
                      size_t uplen, vis *out)
{
    out->idx = malloc((w->nref + 1) * sizeof(long));
    assert_non_null(out->idx);
    out->n = 0;
    size_t i = 0;
    while (i < w->nref) {
        size_t j = i;
        long best = -1;
        while (j < w->nref && ref_ukey(w->ref[j].key, w->ref[j].klen,
                                       w->ref[i].key, w->ref[i].klen) == 0) {
            const rent *e = &w->ref[j];
            if (best < 0 && e->version <= snap && e->ts <= max_ts)
                best = (long)j;
            j++;
        }
        const rent *k = &w->ref[i];
        bool in = (!lo || ref_ukey(k->key, k->klen, lo, lolen) >= 0) &&
                  (!up || ref_ukey(k->key, k->klen, up, uplen) < 0);
        if (in && best >= 0 && w->ref[best].kind == CAIRN_IKIND_PUT)
            out->idx[out->n++] = best;
        i = j;
    }
}

/* Position (in vis) of the first shown key >= k. */
static long vis_ceil(const world *w, const vis *v, const uint8_t *k, size_t kl)
{
    for (size_t i = 0; i < v->n; i++) {
        const rent *e = &w->ref[v->idx[i]];
        if (ref_ukey(e->key, e->klen, k, kl) >= 0)
            return (long)i;
    }
    return (long)v->n;
}

/* Position of the last shown key <= k, or -1. */
static long vis_floor(const world *w, const vis *v, const uint8_t *k,
                      size_t kl)
{
    long ans = -1;
    for (size_t i = 0; i < v->n; i++) {
        const rent *e = &w->ref[v->idx[i]];
        if (ref_ukey(e->key, e->klen, k, kl) <= 0)
            ans = (long)i;
    }
    return ans;
}

static void check_u_entry(cairn_uiter *u, const rent *r)
{
    assert_true(cairn_uiter_valid(u));
    size_t kl, vl;
    const uint8_t *k = cairn_uiter_key(u, &kl);
    const uint8_t *v = cairn_uiter_value(u, &vl);
    assert_int_equal(kl, r->klen);
    assert_memory_equal(k, r->key, kl);
    assert_non_null(v);
    assert_int_equal(vl, r->vlen);
    assert_memory_equal(v, r->val, vl);
    assert_int_equal(cairn_uiter_version(u), r->version);
    assert_int_equal(cairn_uiter_ts(u), r->ts);
}

static void check_u_at(cairn_uiter *u, const world *w, const vis *v, long pos)
{
    assert_int_equal(cairn_uiter_status(u), 0);
    if (pos < 0 || pos >= (long)v->n) {
        assert_false(cairn_uiter_valid(u));
        return;
    }
    check_u_entry(u, &w->ref[v->idx[pos]]);
}

static void check_uiter(world *w, cairn_uiter *u, const vis *v, uint64_t *rng,
                        uint64_t steps)
{
    assert_false(cairn_uiter_valid(u));
    /* Full scans. */
    cairn_uiter_first(u);
    for (long i = 0; i < (long)v->n; i++) {
        check_u_at(u, w, v, i);
        cairn_uiter_next(u);
    }
    check_u_at(u, w, v, -1);
    cairn_uiter_last(u);
    for (long i = (long)v->n - 1; i >= 0; i--) {
        check_u_at(u, w, v, i);
        cairn_uiter_prev(u);
    }
    check_u_at(u, w, v, -1);

    /* Random walk. */
    long pos = -1;
    for (uint64_t s = 0; s < steps; s++) {
        bool valid = pos >= 0 && pos < (long)v->n;
        uint64_t op = tu_rand(rng, 12);
        if (valid && op < 4) {
            cairn_uiter_next(u);
            pos++;
        } else if (valid && op < 8) {
            cairn_uiter_prev(u);
            pos--;
        } else if (valid && op == 8) {
            /* Seek to our own key: the pointer is into the iterator. */
            size_t kl;
            const uint8_t *k = cairn_uiter_key(u, &kl);
            if (tu_rand(rng, 2))
                cairn_uiter_seek(u, k, kl);
            else
                cairn_uiter_seek_for_prev(u, k, kl);
        } else if (op <= 10) {
            uint8_t k[KMAX];
            size_t kl;
            random_target(rng, w, k, &kl);
            if (op == 9) {
                cairn_uiter_seek(u, k, kl);
                pos = vis_ceil(w, v, k, kl);
            } else {
                cairn_uiter_seek_for_prev(u, k, kl);
                pos = vis_floor(w, v, k, kl);
            }
        } else if (tu_rand(rng, 2)) {
            cairn_uiter_first(u);
            pos = 0;
        } else {
            cairn_uiter_last(u);
            pos = (long)v->n - 1;
        }
        if (pos > (long)v->n)
            pos = (long)v->n;
        check_u_at(u, w, v, pos);
    }
}

static void random_bound(uint64_t *rng, const world *w, uint8_t *buf,
                         size_t *len, const uint8_t **out)
{
    if (tu_rand(rng, 3) == 0) {
        *out = NULL;
        *len = 0;
        return;
    }
    random_target(rng, w, buf, len);
    *out = buf;
}

static void check_user_world(world *w, uint64_t seed, int configs)
{
    uint64_t rng = seed;
    for (int c = 0; c < configs; c++) {
        uint64_t snap, max_ts = UINT64_MAX;
        switch (tu_rand(&rng, 6)) {
        case 0: snap = UINT64_MAX; break;
        case 1: snap = 0; break;
        default: snap = tu_rand(&rng, w->maxv + 2); break;
        }
        if (tu_rand(&rng, 3) == 0)
            max_ts = tu_rand(&rng, w->maxts + 2);
        uint8_t lob[KMAX], upb[KMAX];
        size_t lolen = 0, uplen = 0;
        const uint8_t *lo = NULL, *up = NULL;
        cairn_uiter *u;
        if (tu_rand(&rng, 4) == 0) {
            /* A prefix: [prefix, successor). */
            lolen = rand_key(&rng, lob, 2);
            if (tu_rand(&rng, 4) == 0)
                for (size_t i = 0; i < lolen; i++)
                    lob[i] = 0xff;
            lo = lob;
            size_t sl = 0;
            if (cairn_prefix_successor(lob, lolen, upb, &sl)) {
                up = upb;
                uplen = sl;
            }
            u = cairn_uiter_new_prefix(world_merge(w), snap, max_ts, lob,
                                       lolen);
        } else {
            random_bound(&rng, w, lob, &lolen, &lo);
            random_bound(&rng, w, upb, &uplen, &up);
            u = cairn_uiter_new(world_merge(w), snap, max_ts, lo, lolen, up,
                                uplen);
        }
        assert_non_null(u);
        vis v;
        vis_build(w, snap, max_ts, lo, lolen, up, uplen, &v);
        check_uiter(w, u, &v, &rng, 150);
        free(v.idx);
        cairn_uiter_free(u);
    }
}

static void world_opts_random(uint64_t *rng, world_opts *o)
{
    o->nmt = 2 + (int)tu_rand(rng, 3);
    o->nsst = 1 + (int)tu_rand(rng, 3);
    o->commits = 100 + tu_rand(rng, 400);
    o->random_ts = tu_rand(rng, 3) == 0;
    o->block_size = 64 + tu_rand(rng, 400);
}

static void test_merge_random(void **state)
{
    (void)state;
    uint64_t rng = 11;
    for (uint64_t round = 0; round < 6 * g_scale; round++) {
        world_opts o;
        world_opts_random(&rng, &o);
        world w;
        world_build(&w, tu_splitmix(&rng), &o);
        check_merge_world(&w, tu_splitmix(&rng));
        world_free(&w);
    }
}

static void test_merge_shapes(void **state)
{
    (void)state;
    uint64_t rng = 12;
    /* Ten memtables: a deeper heap. */
    world_opts o = {.nmt = 10, .nsst = 0, .commits = 300, .block_size = 256};
    world w;
    world_build(&w, tu_splitmix(&rng), &o);
    check_merge_world(&w, 1);
    check_user_world(&w, 2, 6);
    world_free(&w);
    /* One sorted file: the merge is the child itself. */
    o = (world_opts){.nmt = 0, .nsst = 1, .commits = 200, .block_size = 100};
    world_build(&w, tu_splitmix(&rng), &o);
    cairn_iiter *only = cairn_iiter_from_sst(w.sst[0]);
    assert_non_null(only);
    cairn_iiter *m = cairn_iiter_merge(&only, 1);
    assert_ptr_equal(m, only);
    cairn_iiter_destroy(m);
    check_merge_world(&w, 3);
    check_user_world(&w, 4, 6);
    world_free(&w);
    /* No children: always empty. */
    cairn_iiter *e = cairn_iiter_merge(NULL, 0);
    assert_non_null(e);
    cairn_iiter_seek_first(e);
    assert_false(cairn_iiter_valid(e));
    cairn_iiter_seek_for_prev(e, "a", 1, 0);
    assert_false(cairn_iiter_valid(e));
    assert_int_equal(cairn_iiter_status(e), 0);
    cairn_uiter *u = cairn_uiter_new(e, UINT64_MAX, UINT64_MAX, NULL, 0,
                                     NULL, 0);
    assert_non_null(u);
    cairn_uiter_first(u);
    assert_false(cairn_uiter_valid(u));
    cairn_uiter_last(u);
    assert_false(cairn_uiter_valid(u));
    assert_int_equal(cairn_uiter_status(u), 0);
    cairn_uiter_free(u);
    /* A NULL child (failed constructor): NULL, the others destroyed (ASan
     * checks the memtable reference is dropped). */
    cairn_memtable *mt = cairn_memtable_new();
    assert_non_null(mt);
    cairn_iiter *ch[2] = {cairn_iiter_from_memtable(mt), NULL};
    assert_null(cairn_iiter_merge(ch, 2));
    cairn_memtable_unref(mt);
    assert_null(cairn_uiter_new(NULL, 1, 1, NULL, 0, NULL, 0));
}

static void test_user_random(void **state)
{
    (void)state;
    uint64_t rng = 21;
    for (uint64_t round = 0; round < USER_ROUNDS * g_scale; round++) {
        world_opts o;
        world_opts_random(&rng, &o);
        world w;
        world_build(&w, tu_splitmix(&rng), &o);
        check_user_world(&w, tu_splitmix(&rng), 25);
        world_free(&w);
    }
}

/* One key with many versions (hot key): every snapshot, both directions,
 * neighbours on both sides; exercises the re-seek paths. */
static void test_user_hot_key(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof(w));
    w.nmt = 2;
    for (int m = 0; m < 2; m++) {
        w.mt[m] = cairn_memtable_new();
        assert_non_null(w.mt[m]);
    }
    w.all = calloc(400, sizeof(rent));
    assert_non_null(w.all);
    uint64_t v = 0;
    const char *keys[] = {"a", "h", "z"};
    for (int k = 0; k < 3; k++) {
        int nv = k == 1 ? 120 : 3;
        for (int i = 0; i < nv; i++) {
            rent *e = &w.all[w.nall++];
            e->klen = 1;
            e->key[0] = (uint8_t)keys[k][0];
            e->version = ++v;
            e->ts = 10 * v;
            e->src = (int)(v % 2);
            /* hot key: deleted at some versions */
            e->kind = (k == 1 && i % 9 == 4) ? CAIRN_IKIND_DELETE
                                              : CAIRN_IKIND_PUT;
            if (e->kind == CAIRN_IKIND_PUT) {
                e->vlen = 8;
                memcpy(e->val, &v, 8);
            }
            assert_int_equal(cairn_memtable_insert(
                                 w.mt[e->src], e->key, 1, e->version, e->ts,
                                 (cairn_mt_kind)e->kind,
                                 e->kind == CAIRN_IKIND_PUT ? e->val : NULL,
                                 e->vlen),
                             0);
        }
    }
    w.maxv = v;
    w.maxts = 10 * v;
    w.ref = calloc(w.nall, sizeof(rent));
    assert_non_null(w.ref);
    memcpy(w.ref, w.all, w.nall * sizeof(rent));
    w.nref = w.nall;
    qsort(w.ref, w.nref, sizeof(rent), rent_cmp);
    uint64_t rng = 5;
    for (uint64_t snap = 0; snap <= v + 1; snap++) {
        for (int t = 0; t < 2; t++) {
            uint64_t max_ts = t ? UINT64_MAX : 10 * tu_rand(&rng, v + 2);
            cairn_uiter *u = cairn_uiter_new(world_merge(&w), snap, max_ts,
                                             NULL, 0, NULL, 0);
            assert_non_null(u);
            vis vv;
            vis_build(&w, snap, max_ts, NULL, 0, NULL, 0, &vv);
            check_uiter(&w, u, &vv, &rng, 30);
            free(vv.idx);
            cairn_uiter_free(u);
        }
    }
    world_free(&w);
}

/* ---------- errors ---------- */

/* Flip a byte in the middle of data block `blk` of SST s, reopen it. */
static void damage_block(world *w, int s, size_t blk)
{
    uint64_t off = 0, size = 0;
    assert_int_equal(cairn_sst_data_block(w->sst[s], blk, &off, &size), 0);
    cairn_sst_close(w->sst[s]);
    cairn_file *f = NULL;
    assert_int_equal(
        cairn_env_open(w->env, w->sst_path[s], CAIRN_OPEN_WRITE, &f), 0);
    uint8_t b;
    size_t nr = 0;
    uint64_t at = off + size / 2;
    assert_int_equal(cairn_file_read_at(f, at, &b, 1, &nr), 0);
    assert_int_equal(nr, 1);
    b ^= 0x5a;
    assert_int_equal(cairn_file_write_at(f, at, &b, 1), 0);
    assert_int_equal(cairn_file_close(f), 0);
    char msg[CAIRN_SST_ERRMSG_LEN];
    assert_int_equal(cairn_sst_open(w->env, w->sst_path[s], 100 + (uint64_t)s,
                                    NULL, &w->sst[s], msg),
                     0);
}

static void assert_corrupt_u(cairn_uiter *u)
{
    assert_false(cairn_uiter_valid(u));
    assert_int_equal(cairn_uiter_status(u), CAIRN_ECORRUPT);
    assert_true(strlen(cairn_uiter_errmsg(u)) > 0);
}

static void test_corrupt_sst(void **state)
{
    (void)state;
    uint64_t rng = 31;
    int scan_errors = 0, seek_errors = 0;
    for (int round = 0; round < 6; round++) {
        world_opts o = {.nmt = 2, .nsst = 1, .commits = 300,
                        .block_size = 128};
        world w;
        world_build(&w, tu_splitmix(&rng), &o);
        uint64_t nblocks = cairn_sst_props_get(w.sst[0])->data_blocks;
        assert_true(nblocks >= 3);
        size_t blk = round % 2 ? 0 : (size_t)(nblocks / 2);
        damage_block(&w, 0, blk);

        /* The merge: a full scan forward and backward ends in the error,
         * and what comes before it is right. */
        cairn_iiter *m = world_merge(&w);
        cairn_iiter_seek_first(m);
        long i = 0;
        for (; cairn_iiter_valid(m); i++) {
            check_merge_at(m, &w, i);
            cairn_iiter_next(m);
        }
        assert_int_equal(cairn_iiter_status(m), CAIRN_ECORRUPT);
        assert_true(strlen(cairn_iiter_errmsg(m)) > 0);
        assert_true(i < (long)w.nref);
        if (blk == 0)
            assert_int_equal(i, 0);
        cairn_iiter_seek_last(m);
        i = (long)w.nref - 1;
        for (; cairn_iiter_valid(m); i--) {
            check_merge_at(m, &w, i);
            cairn_iiter_prev(m);
        }
        assert_int_equal(cairn_iiter_status(m), CAIRN_ECORRUPT);
        assert_true(i >= 0);
        cairn_iiter_destroy(m);

        /* The user iterator at the newest snapshot. */
        vis v;
        vis_build(&w, UINT64_MAX, UINT64_MAX, NULL, 0, NULL, 0, &v);
        cairn_uiter *u = cairn_uiter_new(world_merge(&w), UINT64_MAX,
                                         UINT64_MAX, NULL, 0, NULL, 0);
        assert_non_null(u);
        /* Full scans: right up to the error. A scan may also end cleanly
         * if its re-seeks over a hot key's versions jumped over the damaged
         * block (nothing in it was needed): then it must be complete. */
        cairn_uiter_first(u);
        long pos = 0;
        for (; cairn_uiter_valid(u); pos++) {
            check_u_at(u, &w, &v, pos);
            cairn_uiter_next(u);
        }
        if (cairn_uiter_status(u)) {
            assert_corrupt_u(u);
            scan_errors++;
        } else {
            assert_int_equal(pos, (long)v.n);
        }
        if (blk == 0) /* first() reads the first block */
            assert_int_equal(cairn_uiter_status(u), CAIRN_ECORRUPT);
        if (blk == 0)
            assert_int_equal(pos, 0);
        cairn_uiter_last(u);
        pos = (long)v.n - 1;
        for (; cairn_uiter_valid(u); pos--) {
            check_u_at(u, &w, &v, pos);
            cairn_uiter_prev(u);
        }
        if (cairn_uiter_status(u)) {
            assert_corrupt_u(u);
            scan_errors++;
        } else {
            assert_int_equal(pos, -1);
        }
        free(v.idx);
        cairn_uiter_free(u);

        /* Random seeks at random snapshots: right, or the error; never a
         * wrong entry. */
        for (int snaps = 0; snaps < 4; snaps++) {
            uint64_t snap = tu_rand(&rng, w.maxv + 2);
            vis_build(&w, snap, UINT64_MAX, NULL, 0, NULL, 0, &v);
            u = cairn_uiter_new(world_merge(&w), snap, UINT64_MAX, NULL, 0,
                                NULL, 0);
            assert_non_null(u);
            for (int q = 0; q < 60; q++) {
                uint8_t k[KMAX];
                size_t kl;
                random_target(&rng, &w, k, &kl);
                bool fwd = tu_rand(&rng, 2);
                if (fwd)
                    cairn_uiter_seek(u, k, kl);
                else
                    cairn_uiter_seek_for_prev(u, k, kl);
                long want =
                    fwd ? vis_ceil(&w, &v, k, kl) : vis_floor(&w, &v, k, kl);
                for (int s = 0; s < 4; s++) {
                    if (cairn_uiter_status(u)) {
                        assert_corrupt_u(u);
                        seek_errors++;
                        break;
                    }
                    check_u_at(u, &w, &v, want);
                    if (!cairn_uiter_valid(u))
                        break;
                    if (tu_rand(&rng, 2)) {
                        cairn_uiter_next(u);
                        want++;
                    } else {
                        cairn_uiter_prev(u);
                        want--;
                    }
                }
            }
            free(v.idx);
            cairn_uiter_free(u);
        }

        /* The merge sought to every entry stored in the file: right or the
         * error, and the entries of the damaged block give the error. */
        m = world_merge(&w);
        int merrors = 0;
        for (size_t j = 0; j < w.nall; j++) {
            const rent *e = &w.all[j];
            if (e->src != w.nmt)
                continue;
            bool fwd = j % 2;
            if (fwd)
                cairn_iiter_seek(m, e->key, e->klen, e->version);
            else
                cairn_iiter_seek_for_prev(m, e->key, e->klen, e->version);
            if (cairn_iiter_status(m)) {
                assert_false(cairn_iiter_valid(m));
                assert_int_equal(cairn_iiter_status(m), CAIRN_ECORRUPT);
                merrors++;
                continue;
            }
            check_merge_at(m, &w,
                           ref_lower_idx(&w, e->key, e->klen, e->version));
        }
        assert_true(merrors > 0);
        cairn_iiter_destroy(m);
        world_free(&w);
    }
    fprintf(stderr,
            "  damaged file: %d scans and %d seeks ended in the error\n",
            scan_errors, seek_errors);
    assert_true(scan_errors >= 6);
    assert_true(seek_errors > 0);
}

/* A child over a sorted array that fails at random moves with
 * CAIRN_ECORRUPT (until its next seek). */
typedef struct vec_iter {
    cairn_iiter base;
    const rent *e;
    long n, pos;
    uint64_t rng;
    unsigned fail_per_mille;
    int status;
    uint64_t failures;
    uint64_t steps, seeks; /* next/prev calls; seek* calls */
} vec_iter;

static bool vec_maybe_fail(vec_iter *v)
{
    v->status = 0;
    if (tu_rand(&v->rng, 1000) < v->fail_per_mille) {
        v->status = CAIRN_ECORRUPT;
        v->pos = -1;
        v->failures++;
        return true;
    }
    return false;
}
static long vec_lower(const vec_iter *v, const uint8_t *k, size_t kl,
                      uint64_t ver)
{
    long i = 0;
    while (i < v->n &&
           ref_ikey(v->e[i].key, v->e[i].klen, v->e[i].version, k, kl, ver) < 0)
        i++;
    return i;
}
static void vec_seek_first(cairn_iiter *it)
{
    vec_iter *v = (vec_iter *)it;
    v->seeks++;
    if (!vec_maybe_fail(v))
        v->pos = v->n ? 0 : -1;
}
static void vec_seek_last(cairn_iiter *it)
{
    vec_iter *v = (vec_iter *)it;
    v->seeks++;
    if (!vec_maybe_fail(v))
        v->pos = v->n - 1;
}
static void vec_seek(cairn_iiter *it, const void *k, size_t kl, uint64_t ver)
{
    vec_iter *v = (vec_iter *)it;
    v->seeks++;
    if (!vec_maybe_fail(v)) {
        long i = vec_lower(v, k, kl, ver);
        v->pos = i < v->n ? i : -1;
    }
}
static void vec_seek_for_prev(cairn_iiter *it, const void *k, size_t kl,
                              uint64_t ver)
{
    vec_iter *v = (vec_iter *)it;
    v->seeks++;
    if (!vec_maybe_fail(v)) {
        long i = vec_lower(v, k, kl, ver);
        if (i < v->n && ref_ikey(v->e[i].key, v->e[i].klen, v->e[i].version,
                                 k, kl, ver) == 0)
            v->pos = i;
        else
            v->pos = i - 1;
    }
}
static void vec_next(cairn_iiter *it)
{
    vec_iter *v = (vec_iter *)it;
    v->steps++;
    if (!vec_maybe_fail(v))
        v->pos = v->pos + 1 < v->n ? v->pos + 1 : -1;
}
static void vec_prev(cairn_iiter *it)
{
    vec_iter *v = (vec_iter *)it;
    v->steps++;
    if (!vec_maybe_fail(v))
        v->pos--;
}
static bool vec_valid(const cairn_iiter *it)
{
    return ((const vec_iter *)it)->pos >= 0;
}
static void vec_entry(const cairn_iiter *it, cairn_ientry *out)
{
    const vec_iter *v = (const vec_iter *)it;
    const rent *e = &v->e[v->pos];
    out->key = e->key;
    out->klen = e->klen;
    out->version = e->version;
    out->ts_us = e->ts;
    out->kind = (cairn_ikind)e->kind;
    out->value = e->kind == CAIRN_IKIND_PUT ? e->val : NULL;
    out->vlen = e->vlen;
}
static int vec_status(const cairn_iiter *it)
{
    return ((const vec_iter *)it)->status;
}
static const char *vec_errmsg(const cairn_iiter *it)
{
    return ((const vec_iter *)it)->status ? "injected damage" : "";
}
static void vec_destroy(cairn_iiter *it)
{
    free(it);
}
static const cairn_iiter_ops vec_ops = {
    vec_seek_first, vec_seek_last, vec_seek,  vec_seek_for_prev,
    vec_next,       vec_prev,      vec_valid, vec_entry,
    vec_status,     vec_errmsg,    vec_destroy,
};

static void test_child_errors(void **state)
{
    (void)state;
    uint64_t rng = 41;
    uint64_t total_fail = 0, total_ok = 0;
    for (int round = 0; round < 4; round++) {
        /* The world's entries of the last source go into a failing child
         * instead of a sorted file. */
        world_opts o = {.nmt = 3, .nsst = 0, .commits = 250};
        world w;
        world_build(&w, tu_splitmix(&rng), &o);
        rent *mine = calloc(w.nall + 1, sizeof(rent));
        assert_non_null(mine);
        long n = 0;
        for (size_t i = 0; i < w.nall; i++)
            if (w.all[i].src == 2)
                mine[n++] = w.all[i];
        qsort(mine, (size_t)n, sizeof(rent), rent_cmp);
        cairn_memtable_unref(w.mt[2]);
        w.nmt = 2;

        for (int c = 0; c < 6; c++) {
            vec_iter *vi = calloc(1, sizeof(*vi));
            assert_non_null(vi);
            vi->base.ops = &vec_ops;
            vi->e = mine;
            vi->n = n;
            vi->pos = -1;
            vi->rng = tu_splitmix(&rng);
            vi->fail_per_mille = 5 + (unsigned)tu_rand(&rng, 30);
            cairn_iiter *ch[3] = {cairn_iiter_from_memtable(w.mt[0]),
                                  cairn_iiter_from_memtable(w.mt[1]),
                                  &vi->base};
            cairn_iiter *m = cairn_iiter_merge(ch, 3);
            assert_non_null(m);
            uint64_t snap = tu_rand(&rng, w.maxv + 2);
            cairn_uiter *u =
                cairn_uiter_new(m, snap, UINT64_MAX, NULL, 0, NULL, 0);
            assert_non_null(u);
            vis v;
            vis_build(&w, snap, UINT64_MAX, NULL, 0, NULL, 0, &v);
            long pos = -1;
            bool known = false; /* pos is meaningful */
            for (int s = 0; s < 600; s++) {
                uint64_t op = tu_rand(&rng, 10);
                if (known && cairn_uiter_valid(u) && op < 4) {
                    cairn_uiter_next(u);
                    pos++;
                } else if (known && cairn_uiter_valid(u) && op < 8) {
                    cairn_uiter_prev(u);
                    pos--;
                } else {
                    uint8_t k[KMAX];
                    size_t kl;
                    random_target(&rng, &w, k, &kl);
                    if (op % 2) {
                        cairn_uiter_seek(u, k, kl);
                        pos = vis_ceil(&w, &v, k, kl);
                    } else {
                        cairn_uiter_seek_for_prev(u, k, kl);
                        pos = vis_floor(&w, &v, k, kl);
                    }
                }
                if (pos > (long)v.n)
                    pos = (long)v.n;
                if (cairn_uiter_status(u) != 0) {
                    assert_corrupt_u(u);
                    assert_string_equal(cairn_uiter_errmsg(u),
                                        "injected damage");
                    known = false;
                    total_fail++;
                    continue;
                }
                known = true;
                check_u_at(u, &w, &v, pos);
                total_ok++;
            }
            /* The merge directly: right or failed. */
            cairn_iiter *m2;
            {
                vec_iter *v2 = calloc(1, sizeof(*v2));
                assert_non_null(v2);
                *v2 = *vi;
                v2->rng = tu_splitmix(&rng);
                v2->pos = -1;
                v2->status = 0;
                cairn_iiter *c2[3] = {cairn_iiter_from_memtable(w.mt[0]),
                                      cairn_iiter_from_memtable(w.mt[1]),
                                      &v2->base};
                m2 = cairn_iiter_merge(c2, 3);
                assert_non_null(m2);
            }
            long idx = -1;
            known = false;
            for (int s = 0; s < 600; s++) {
                uint64_t op = tu_rand(&rng, 10);
                bool valid = cairn_iiter_valid(m2);
                if (known && valid && op < 4) {
                    cairn_iiter_next(m2);
                    idx++;
                } else if (known && valid && op < 8) {
                    cairn_iiter_prev(m2);
                    idx--;
                } else {
                    uint8_t k[KMAX];
                    size_t kl;
                    random_target(&rng, &w, k, &kl);
                    uint64_t ver = rand_version(&rng, &w);
                    if (op % 2) {
                        cairn_iiter_seek(m2, k, kl, ver);
                        idx = ref_lower_idx(&w, k, kl, ver);
                    } else {
                        cairn_iiter_seek_for_prev(m2, k, kl, ver);
                        idx = ref_floor_idx(&w, k, kl, ver);
                    }
                }
                if (cairn_iiter_status(m2) != 0) {
                    assert_false(cairn_iiter_valid(m2));
                    assert_int_equal(cairn_iiter_status(m2), CAIRN_ECORRUPT);
                    assert_string_equal(cairn_iiter_errmsg(m2),
                                        "injected damage");
                    known = false;
                    total_fail++;
                    continue;
                }
                known = true;
                check_merge_at(m2, &w, idx);
                total_ok++;
            }
            cairn_iiter_destroy(m2);
            free(v.idx);
            cairn_uiter_free(u);
        }
        free(mine);
        world_free(&w);
    }
    fprintf(stderr, "  child errors: %llu failed answers, %llu right ones\n",
            (unsigned long long)total_fail, (unsigned long long)total_ok);
    assert_true(total_fail > 50);
    assert_true(total_ok > 1000);
}

/* A key with 2000 versions between two ordinary keys, as the only child
 * (a counting vec_iter): a scan either way at any snapshot costs a bounded
 * number of child steps and seeks, not one step per version. */
static void test_user_hot_key_cost(void **state)
{
    (void)state;
    const long nv = 2000;
    rent *e = calloc((size_t)nv + 2, sizeof(rent));
    assert_non_null(e);
    long n = 0;
    e[n].key[0] = 'a';
    e[n].klen = 1;
    e[n].version = 1;
    e[n].ts = 1;
    e[n].kind = CAIRN_IKIND_PUT;
    n++;
    for (long i = nv; i >= 1; i--, n++) { /* newest first */
        e[n].key[0] = 'h';
        e[n].klen = 1;
        e[n].version = (uint64_t)i + 1;
        e[n].ts = (uint64_t)i + 1;
        e[n].kind = i % 3 == 0 ? CAIRN_IKIND_DELETE : CAIRN_IKIND_PUT;
    }
    e[n].key[0] = 'z';
    e[n].klen = 1;
    e[n].version = 1;
    e[n].ts = 1;
    e[n].kind = CAIRN_IKIND_PUT;
    n++;
    const uint64_t snaps[] = {UINT64_MAX, (uint64_t)nv / 2,
                              (uint64_t)nv / 2 + 1,
                              4, 1};
    for (size_t si = 0; si < sizeof(snaps) / sizeof(snaps[0]); si++) {
        uint64_t snap = snaps[si];
        /* What 'h' shows: its newest version <= snap, if a put. */
        uint64_t hv = snap > (uint64_t)nv + 1 ? (uint64_t)nv + 1 : snap;
        bool h_shown = hv >= 2 && (hv - 1) % 3 != 0;
        vec_iter *vi = calloc(1, sizeof(*vi));
        assert_non_null(vi);
        vi->base.ops = &vec_ops;
        vi->e = e;
        vi->n = n;
        vi->pos = -1;
        cairn_uiter *u =
            cairn_uiter_new(&vi->base, snap, UINT64_MAX, NULL, 0, NULL, 0);
        assert_non_null(u);
        for (int dir = 0; dir < 2; dir++) {
            vi->steps = vi->seeks = 0;
            char got[4] = {0};
            int ng = 0;
            if (dir == 0) {
                for (cairn_uiter_first(u); cairn_uiter_valid(u);
                     cairn_uiter_next(u)) {
                    size_t kl;
                    got[ng++] = (char)cairn_uiter_key(u, &kl)[0];
                    if (got[ng - 1] == 'h')
                        assert_int_equal(cairn_uiter_version(u), hv);
                }
            } else {
                for (cairn_uiter_last(u); cairn_uiter_valid(u);
                     cairn_uiter_prev(u)) {
                    size_t kl;
                    got[ng++] = (char)cairn_uiter_key(u, &kl)[0];
                    if (got[ng - 1] == 'h')
                        assert_int_equal(cairn_uiter_version(u), hv);
                }
            }
            assert_int_equal(cairn_uiter_status(u), 0);
            const char *want = h_shown ? (dir ? "zha" : "ahz")
                                       : (dir ? "za" : "az");
            assert_string_equal(got, want);
            assert_true(vi->steps <= 8 * CAIRN_UITER_MAX_SKIP);
            assert_true(vi->seeks <= 8);
        }
        /* Direction changes on the hot key. */
        if (h_shown) {
            vi->steps = vi->seeks = 0;
            for (int k = 0; k < 10; k++) {
                size_t kl;
                cairn_uiter_seek(u, "h", 1);
                assert_true(cairn_uiter_valid(u));
                assert_int_equal(cairn_uiter_key(u, &kl)[0], 'h');
                assert_int_equal(cairn_uiter_version(u), hv);
                cairn_uiter_prev(u); /* turn back over h's newer versions */
                assert_true(cairn_uiter_valid(u));
                assert_int_equal(cairn_uiter_key(u, &kl)[0], 'a');
                cairn_uiter_next(u);
                assert_true(cairn_uiter_valid(u));
                assert_int_equal(cairn_uiter_key(u, &kl)[0], 'h');
                assert_int_equal(cairn_uiter_version(u), hv);
                cairn_uiter_next(u);
                assert_true(cairn_uiter_valid(u));
                assert_int_equal(cairn_uiter_key(u, &kl)[0], 'z');
                cairn_uiter_prev(u);
                assert_true(cairn_uiter_valid(u));
                assert_int_equal(cairn_uiter_key(u, &kl)[0], 'h');
                assert_int_equal(cairn_uiter_version(u), hv);
                cairn_uiter_next(u);
                assert_true(cairn_uiter_valid(u));
                assert_int_equal(cairn_uiter_key(u, &kl)[0], 'z');
            }
            assert_true(vi->steps <= 10 * 8 * CAIRN_UITER_MAX_SKIP);
        }
        cairn_uiter_free(u);
    }
    free(e);
}

/* Entries at version UINT64_MAX (the first possible entry of a key) next
 * to bounds and hot keys. */
static void test_user_edge_versions(void **state)
{
    (void)state;
    world w;
    memset(&w, 0, sizeof(w));
    w.nmt = 2;
    for (int m = 0; m < 2; m++) {
        w.mt[m] = cairn_memtable_new();
        assert_non_null(w.mt[m]);
    }
    w.all = calloc(64, sizeof(rent));
    assert_non_null(w.all);
    const char *keys[] = {"", "a", "k", "m", "m\x00"};
    const uint64_t vers[] = {UINT64_MAX, UINT64_MAX - 1, 30, 20, 12, 11, 10,
                             9, 8, 7, 6, 5, 4, 3, 2, 1};
    for (int k = 0; k < 5; k++) {
        int nv = k == 2 ? 16 : k == 3 ? 1 : 3;
        for (int i = 0; i < nv; i++) {
            rent *e = &w.all[w.nall++];
            e->klen = strlen(keys[k]) + (k == 4);
            memcpy(e->key, keys[k], e->klen);
            e->version = vers[i];
            e->ts = i == 0 ? 5 : 1;
            e->src = (i + k) % 2;
            e->kind = (k == 2 && i == 1) ? CAIRN_IKIND_DELETE : CAIRN_IKIND_PUT;
            if (e->kind == CAIRN_IKIND_PUT) {
                e->vlen = 3;
                memcpy(e->val, &vers[i], 3);
            }
            assert_int_equal(cairn_memtable_insert(
                                 w.mt[e->src], e->key, e->klen, e->version,
                                 e->ts, (cairn_mt_kind)e->kind,
                                 e->kind == CAIRN_IKIND_PUT ? e->val : NULL,
                                 e->vlen),
                             0);
        }
    }
    w.maxv = UINT64_MAX;
    w.maxts = 5;
    w.ref = calloc(w.nall, sizeof(rent));
    assert_non_null(w.ref);
    memcpy(w.ref, w.all, w.nall * sizeof(rent));
    w.nref = w.nall;
    qsort(w.ref, w.nref, sizeof(rent), rent_cmp);
    for (int k = 0; k < 5; k++) {
        memcpy(w.pool[k], keys[k], strlen(keys[k]) + (k == 4));
        w.pool_len[k] = strlen(keys[k]) + (k == 4);
    }
    w.npool = 5;
    check_merge_world(&w, 9);
    uint64_t rng = 77;
    const uint64_t snaps[] = {UINT64_MAX, UINT64_MAX - 1, 25, 10, 1};
    for (size_t si = 0; si < 5; si++) {
        for (int b = 0; b < 25; b++) {
            uint64_t max_ts = b % 2 ? 1 : UINT64_MAX;
            const uint8_t *lo = NULL, *up = NULL;
            size_t lol = 0, upl = 0;
            if (b / 5 > 0) {
                lo = w.pool[(b / 5) - 1];
                lol = w.pool_len[(b / 5) - 1];
            }
            if (b % 5 > 0) {
                up = w.pool[b % 5];
                upl = w.pool_len[b % 5];
            }
            cairn_uiter *u = cairn_uiter_new(world_merge(&w), snaps[si],
                                             max_ts, lo, lol, up, upl);
            assert_non_null(u);
            vis v;
            vis_build(&w, snaps[si], max_ts, lo, lol, up, upl, &v);
            check_uiter(&w, u, &v, &rng, 40);
            free(v.idx);
            cairn_uiter_free(u);
        }
    }
    world_free(&w);
}

/* ---------- prefix successor ---------- */

static void test_prefix_successor(void **state)
{
    (void)state;
    uint8_t out[8];
    size_t ol = 99;
    assert_false(cairn_prefix_successor("", 0, out, &ol));
    assert_false(cairn_prefix_successor("\xff\xff", 2, out, &ol));
    assert_true(cairn_prefix_successor("ab", 2, out, &ol));
    assert_int_equal(ol, 2);
    assert_memory_equal(out, "ac", 2);
    assert_true(cairn_prefix_successor("a\xff\xff", 3, out, &ol));
    assert_int_equal(ol, 1);
    assert_memory_equal(out, "b", 1);
    assert_true(cairn_prefix_successor("\x00", 1, out, &ol));
    assert_int_equal(ol, 1);
    assert_int_equal(out[0], 1);
    assert_true(cairn_prefix_successor("a\xfe\xff", 3, out, &ol));
    assert_int_equal(ol, 2);
    assert_memory_equal(out, "a\xff", 2);

    /* Prefix iteration over hand-made keys. */
    cairn_memtable *mt = cairn_memtable_new();
    assert_non_null(mt);
    const char *keys[] = {"", "a", "a\xff", "a\xff\xff", "a\xff\xff\x00",
                          "b", "\xff", "\xff\xff", "\xff\xff\x01"};
    const size_t klen[] = {0, 1, 2, 3, 4, 1, 1, 2, 3};
    for (int i = 0; i < 9; i++)
        assert_int_equal(cairn_memtable_insert(mt, keys[i], klen[i], 1, 1,
                                               CAIRN_MT_PUT, "v", 1),
                         0);
    struct {
        const char *p;
        size_t pl;
        int first, count;
    } cases[] = {
        {"a\xff", 2, 2, 3}, {"a", 1, 1, 4},       {"\xff", 1, 6, 3},
        {"\xff\xff", 2, 7, 2}, {"", 0, 0, 9},      {"c", 1, -1, 0},
        {"a\xff\xff\x00", 4, 4, 1},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        cairn_uiter *u = cairn_uiter_new_prefix(cairn_iiter_from_memtable(mt),
                                                UINT64_MAX, UINT64_MAX,
                                                cases[c].p, cases[c].pl);
        assert_non_null(u);
        for (int dir = 0; dir < 2; dir++) {
            int n = 0;
            if (dir == 0) {
                for (cairn_uiter_first(u); cairn_uiter_valid(u);
                     cairn_uiter_next(u), n++) {
                    size_t kl;
                    const uint8_t *k = cairn_uiter_key(u, &kl);
                    int want = cases[c].first + n;
                    assert_int_equal(kl, klen[want]);
                    assert_memory_equal(k, keys[want], kl);
                }
            } else {
                for (cairn_uiter_last(u); cairn_uiter_valid(u);
                     cairn_uiter_prev(u), n++) {
                    size_t kl;
                    const uint8_t *k = cairn_uiter_key(u, &kl);
                    int want = cases[c].first + cases[c].count - 1 - n;
                    assert_int_equal(kl, klen[want]);
                    assert_memory_equal(k, keys[want], kl);
                }
            }
            assert_int_equal(n, cases[c].count);
            assert_int_equal(cairn_uiter_status(u), 0);
        }
        cairn_uiter_free(u);
    }
    cairn_memtable_unref(mt);
}

int main(void)
{
    g_scale = tu_env_u64("CAIRN_ITER_TEST_SCALE", 1);
    if (g_scale == 0)
        g_scale = 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memtable_backward),
        cmocka_unit_test(test_memtable_backward_concurrent),
        cmocka_unit_test(test_merge_random),
        cmocka_unit_test(test_merge_shapes),
        cmocka_unit_test(test_user_random),
        cmocka_unit_test(test_user_hot_key),
        cmocka_unit_test(test_corrupt_sst),
        cmocka_unit_test(test_child_errors),
        cmocka_unit_test(test_user_hot_key_cost),
        cmocka_unit_test(test_user_edge_versions),
        cmocka_unit_test(test_prefix_successor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
