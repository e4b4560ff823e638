/*
 * series.c — time series stored through the engine (docs/format/ts.md,
 * "Series storage"): a series record at 0x01|name (value record type 2),
 * sealed chunks at 0x03|id|first-ts, and point-log records at
 * 0x04|id|seq holding the points accepted since the last seal, so that
 * every acknowledged point is in the log of the engine.
 *
 * In memory (db->ts, made on first use): a table of the series used so
 * far, each with its open part (the points not yet sealed, sorted and
 * unique) and an encoder mirroring it while points come in order.
 *
 * Invariants:
 *   - the open part in memory equals the point-log records applied in seq
 *     order; every point older than the open part is in a sealed chunk,
 *     and every sealed chunk's points are older than the open part's;
 *   - memory changes only after the commit that makes them durable
 *     succeeded (a failed commit leaves the series as it was).
 * Locking: ts_store.mu guards the table (lookup, insert, remove); each
 * series' mu serializes its writes and reads (held across the engine
 * calls, so a read sees sealed chunks and the open part of one moment).
 * No thread waits for a series' mu while it holds store.mu (lookups let
 * the table go first; a series stays allocated, once dead, until the
 * store is freed), so a writer may hold several series' mu while it looks
 * up more; it takes them in key order, so two such writers never wait
 * for each other in a cycle.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn.h"
#include "db/db_internal.h"
#include "ts/chunk.h"
#include "ts/labels.h"
#include "ts/query.h"
#include "ts/series.h"
#include "util/coding.h"

#define REC_TYPE_TS 2
#define KEY_DATA 0x01
#define KEY_CHUNK 0x03
#define KEY_LOG 0x04
#define KEY_NEXT_ID 0x05
#define KEY_REGISTRY 0x06 /* 0x06|id -> name: every series, for filters */
#define SERIES_VERSION 1

typedef struct ts_series {
    struct ts_series *next; /* hash chain */
    uint8_t *name;
    size_t nlen;
    uint64_t id;
    cairn_ts_options opt;     /* opt.labels unused: see labels */
    cairn_ts_labels *labels; /* NULL: none */
    pthread_mutex_t mu;
    atomic_bool dead;        /* deleted: callers must look it up again */
    cairn_ts_point *open;    /* the open part: sorted, unique */
    size_t nopen, capopen;
    cairn_ts_enc enc;        /* encodes open[] while points come in order */
    bool enc_valid;
    uint64_t first_seq, next_seq; /* point-log records [first, next) */
    bool has_sealed;
    int64_t sealed_last;     /* newest timestamp in the sealed chunks */
    int64_t newest;          /* newest timestamp of the series */
    bool has_points;
} ts_series;

typedef struct ix_name {
    uint64_t id;
    uint8_t *name;
    size_t nlen;
} ix_name;

struct cairn_ts_store {
    pthread_mutex_t mu;
    /* The label index over every series, loaded on the first filter
     * query from the registry (0x06 keys), kept up to date after. */
    cairn_ts_index *ix;
    bool ix_loaded;
    ix_name *names; /* by id, ascending */
    size_t nnames, capnames;
    ts_series **slots;
    size_t nslots, count;
    ts_series *dead; /* deleted series, freed with the store: a caller may
                        still be about to lock one to find it dead */
};

void cairn_ts_options_init(cairn_ts_options *o)
{
    memset(o, 0, sizeof *o);
    o->chunk_size = 4096;
    o->duplicate_policy = CAIRN_TS_DUP_BLOCK;
}

/* ---- keys ---- */

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static uint64_t ts_key(int64_t ts)
{
    return (uint64_t)ts ^ 0x8000000000000000ULL;
}

static void chunk_key(uint8_t k[17], uint64_t id, int64_t ts)
{
    k[0] = KEY_CHUNK;
    put_be64(k + 1, id);
    put_be64(k + 9, ts_key(ts));
}

static void log_key(uint8_t k[17], uint64_t id, uint64_t seq)
{
    k[0] = KEY_LOG;
    put_be64(k + 1, id);
    put_be64(k + 9, seq);
}

/* An iterator over the keys of one kind (KEY_CHUNK, KEY_LOG) of series
 * id, in key order: through txn when given (its own writes shown). */
static int series_iter(cairn_db *db, cairn_txn *txn, uint8_t kind,
                       uint64_t id, cairn_iter **it)
{
    uint8_t pre[9];
    pre[0] = kind;
    put_be64(pre + 1, id);
    cairn_iter_options io = {0};
    io.prefix = pre; /* copied */
    io.prefix_len = 9;
    return txn ? cairn_txn_iter(txn, &io, it) : cairn_iter_new(db, &io, it);
}

static uint8_t *data_key(const void *name, size_t nlen, size_t *klen)
{
    uint8_t *k = malloc(nlen + 1);
    if (!k)
        return NULL;
    k[0] = KEY_DATA;
    if (nlen)
        memcpy(k + 1, name, nlen);
    *klen = nlen + 1;
    return k;
}

/* ---- the series record ---- */

/* The value record of a series: header (type, flags), then the series
 * record with its labels (lab may be NULL: none) and no rules yet. */
static uint8_t *encode_record(uint64_t id, const cairn_ts_options *o,
                              const cairn_ts_labels *lab, size_t *len)
{
    uint8_t *lb = NULL;
    size_t ll = 0;
    if (lab && lab->n && cairn_ts_labels_encode(lab, &lb, &ll) != 0)
        return NULL;
    size_t n = 2 + 27 + ll + 4;
    uint8_t *b = calloc(1, n);
    if (!b) {
        free(lb);
        return NULL;
    }
    b[0] = REC_TYPE_TS;
    b[1] = 0;
    uint8_t *p = b + 2;
    p[0] = SERIES_VERSION;
    cairn_put_u64(p + 1, id);
    cairn_put_u64(p + 9, o->retention_ms);
    cairn_put_u32(p + 17, o->chunk_size);
    p[21] = (uint8_t)o->duplicate_policy;
    p[22] = o->uncompressed ? 1 : 2;
    cairn_put_u32(p + 23, (uint32_t)ll);
    if (ll)
        memcpy(p + 27, lb, ll);
    cairn_put_u32(p + 27 + ll, 0); /* rules */
    free(lb);
    *len = n;
    return b;
}

/* CAIRN_ENOTSUP when the value is not a series, CAIRN_ECORRUPT when it is
 * one but damaged. lab (may be NULL) receives the labels (NULL: none). */
static int decode_record(const uint8_t *b, size_t len, uint64_t *id,
                         cairn_ts_options *o, cairn_ts_labels **lab)
{
    if (lab)
        *lab = NULL;
    if (len < 2 || b[0] != REC_TYPE_TS)
        return CAIRN_ENOTSUP;
    size_t off = 2;
    if (b[1] & ~1u)
        return CAIRN_ECORRUPT;
    if (b[1] & 1u)
        off += 8; /* an expiry time */
    if (len < off + 27 + 4)
        return CAIRN_ECORRUPT;
    const uint8_t *p = b + off;
    if (p[0] != SERIES_VERSION)
        return CAIRN_EVERSION;
    cairn_ts_options_init(o);
    *id = cairn_get_u64(p + 1);
    o->retention_ms = cairn_get_u64(p + 9);
    o->chunk_size = cairn_get_u32(p + 17);
    if (p[21] > CAIRN_TS_DUP_SUM || (p[22] != 1 && p[22] != 2) ||
        o->chunk_size == 0)
        return CAIRN_ECORRUPT;
    o->duplicate_policy = (cairn_ts_dup_policy)p[21];
    o->uncompressed = p[22] == 1;
    uint32_t ll = cairn_get_u32(p + 23);
    if (ll > len - off - 27 - 4)
        return CAIRN_ECORRUPT;
    if (ll && lab) {
        int rc = cairn_ts_labels_decode(p + 27, ll, lab);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- the table ---- */

static uint64_t name_hash(const void *name, size_t nlen)
{
    const uint8_t *p = name;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < nlen; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static cairn_ts_store *store_get(cairn_db *db)
{
    pthread_mutex_lock(&db->ts_mu);
    if (!db->ts) {
        cairn_ts_store *s = calloc(1, sizeof *s);
        if (s) {
            s->nslots = 64;
            s->slots = calloc(s->nslots, sizeof *s->slots);
            if (!s->slots) {
                free(s);
                s = NULL;
            } else {
                pthread_mutex_init(&s->mu, NULL);
            }
        }
        db->ts = s;
    }
    cairn_ts_store *s = db->ts;
    pthread_mutex_unlock(&db->ts_mu);
    return s;
}

static void series_free(ts_series *se)
{
    if (!se)
        return;
    cairn_ts_enc_free(&se->enc);
    cairn_ts_labels_free(se->labels);
    free(se->open);
    free(se->name);
    pthread_mutex_destroy(&se->mu);
    free(se);
}

void cairn_ts_store_free(cairn_ts_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nslots; i++)
        for (ts_series *se = s->slots[i], *nx; se; se = nx) {
            nx = se->next;
            series_free(se);
        }
    for (ts_series *se = s->dead, *nx; se; se = nx) {
        nx = se->next;
        series_free(se);
    }
    cairn_ts_index_free(s->ix);
    for (size_t i = 0; i < s->nnames; i++)
        free(s->names[i].name);
    free(s->names);
    free(s->slots);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static ts_series **slot_of(cairn_ts_store *s, const void *name, size_t nlen)
{
    ts_series **pp = &s->slots[name_hash(name, nlen) % s->nslots];
    while (*pp && !((*pp)->nlen == nlen &&
                    (nlen == 0 || memcmp((*pp)->name, name, nlen) == 0)))
        pp = &(*pp)->next;
    return pp;
}

static void grow(cairn_ts_store *s)
{
    size_t n = s->nslots * 2;
    ts_series **slots = calloc(n, sizeof *slots);
    if (!slots)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < s->nslots; i++)
        for (ts_series *se = s->slots[i], *nx; se; se = nx) {
            nx = se->next;
            size_t j = name_hash(se->name, se->nlen) % n;
            se->next = slots[j];
            slots[j] = se;
        }
    free(s->slots);
    s->slots = slots;
    s->nslots = n;
}

/* ---- the open part ---- */

/* Index of the first open point with ts >= t. */
static size_t open_lower(const ts_series *se, int64_t t)
{
    size_t lo = 0, hi = se->nopen;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (se->open[mid].ts < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Set the open point at ts to v (insert or replace). */
static int open_set(ts_series *se, int64_t ts, double v)
{
    size_t i = open_lower(se, ts);
    if (i < se->nopen && se->open[i].ts == ts) {
        se->open[i].v = v;
        se->enc_valid = false;
        return 0;
    }
    if (se->nopen == se->capopen) {
        size_t cap = se->capopen ? se->capopen * 2 : 64;
        cairn_ts_point *p = realloc(se->open, cap * sizeof *p);
        if (!p)
            return CAIRN_ENOMEM;
        se->open = p;
        se->capopen = cap;
    }
    memmove(se->open + i + 1, se->open + i,
            (se->nopen - i) * sizeof *se->open);
    se->open[i] = (cairn_ts_point){ts, v};
    se->nopen++;
    if (i + 1 == se->nopen && se->enc_valid) {
        if (cairn_ts_enc_add(&se->enc, ts, v) != 0)
            se->enc_valid = false;
    } else {
        se->enc_valid = false;
    }
    return 0;
}

/* The encoded size of the open part (re-encoding it when points came out
 * of order). */
static size_t open_size(ts_series *se)
{
    if (!se->enc_valid) {
        cairn_ts_enc_reset(&se->enc);
        se->enc_valid = true;
        for (size_t i = 0; i < se->nopen; i++)
            if (cairn_ts_enc_add(&se->enc, se->open[i].ts, se->open[i].v)) {
                se->enc_valid = false;
                return SIZE_MAX; /* out of memory: seal now */
            }
    }
    return cairn_ts_enc_size(&se->enc);
}

/* What the policy makes of a new value v where old exists: 0 and *out, or
 * CAIRN_EEXIST (BLOCK). */
static int apply_policy(cairn_ts_dup_policy p, double old, double v,
                        double *out)
{
    switch (p) {
    case CAIRN_TS_DUP_BLOCK:
        return CAIRN_EEXIST;
    case CAIRN_TS_DUP_FIRST:
        *out = old;
        return 0;
    case CAIRN_TS_DUP_LAST:
        *out = v;
        return 0;
    case CAIRN_TS_DUP_MIN:
        *out = v < old ? v : old;
        return 0;
    case CAIRN_TS_DUP_MAX:
        *out = v > old ? v : old;
        return 0;
    case CAIRN_TS_DUP_SUM:
        *out = old + v;
        return 0;
    }
    return CAIRN_EINVAL;
}

/* ---- loading ---- */

/* The chunk of series id with the greatest first timestamp <= ts (ts
 * INT64_MAX: the newest chunk). 0 with *found false when there is none. */
static int chunk_at(cairn_db *db, cairn_txn *txn, uint64_t id, int64_t ts,
                    bool *found, int64_t *first, uint8_t **val, size_t *vlen)
{
    uint8_t at[17];
    chunk_key(at, id, ts);
    cairn_iter *it = NULL;
    int rc = series_iter(db, txn, KEY_CHUNK, id, &it);
    if (rc)
        return rc;
    cairn_iter_seek_for_prev(it, at, 17);
    *found = false;
    if (cairn_iter_valid(it)) {
        size_t kl = 0, cl = 0;
        const uint8_t *k = cairn_iter_key(it, &kl);
        const uint8_t *c = cairn_iter_value(it, &cl);
        if (kl != 17) {
            rc = CAIRN_ECORRUPT;
        } else {
            *found = true;
            *first = (int64_t)(get_be64(k + 9) ^ 0x8000000000000000ULL);
            if (val) {
                *val = malloc(cl ? cl : 1);
                if (!*val)
                    rc = CAIRN_ENOMEM;
                else
                    memcpy(*val, c, cl);
                *vlen = cl;
            }
        }
    }
    if (rc == 0)
        rc = cairn_iter_status(it);
    cairn_iter_free(it);
    return rc;
}

static int series_load(cairn_db *db, const void *name, size_t nlen,
                       ts_series **out)
{
    size_t klen;
    uint8_t *k = data_key(name, nlen, &klen);
    if (!k)
        return CAIRN_ENOMEM;
    void *v = NULL;
    size_t vl = 0;
    int rc = cairn_get(db, k, klen, &v, &vl);
    free(k);
    if (rc)
        return rc;
    ts_series *se = calloc(1, sizeof *se);
    if (!se) {
        cairn_free(v);
        return CAIRN_ENOMEM;
    }
    pthread_mutex_init(&se->mu, NULL);
    rc = decode_record(v, vl, &se->id, &se->opt, &se->labels);
    cairn_free(v);
    se->name = malloc(nlen ? nlen : 1);
    if (rc == 0 && !se->name)
        rc = CAIRN_ENOMEM;
    if (rc) {
        series_free(se);
        return rc;
    }
    if (nlen)
        memcpy(se->name, name, nlen);
    se->nlen = nlen;
    cairn_ts_enc_init(&se->enc, !se->opt.uncompressed);
    se->enc_valid = true;

    /* The newest sealed chunk's last timestamp. */
    bool found = false;
    int64_t first = 0;
    uint8_t *c = NULL;
    size_t cl = 0;
    rc = chunk_at(db, NULL, se->id, INT64_MAX, &found, &first, &c, &cl);
    if (rc == 0 && found) {
        int64_t last;
        rc = cairn_ts_chunk_info(c, cl, NULL, NULL, NULL, &last);
        if (rc == 0) {
            se->has_sealed = true;
            se->sealed_last = last;
            se->newest = last;
            se->has_points = true;
        }
    }
    free(c);

    /* The point log, in seq order. */
    cairn_iter *it = NULL;
    bool first_rec = true;
    if (rc == 0)
        rc = series_iter(db, NULL, KEY_LOG, se->id, &it);
    if (rc == 0) {
        for (cairn_iter_first(it); rc == 0 && cairn_iter_valid(it);
             cairn_iter_next(it)) {
            size_t kl = 0, ll = 0;
            const uint8_t *lk = cairn_iter_key(it, &kl);
            const uint8_t *lv = cairn_iter_value(it, &ll);
            if (kl != 17 || ll < 4 || (ll - 4) % 16 ||
                (ll - 4) / 16 != cairn_get_u32(lv)) {
                rc = CAIRN_ECORRUPT;
                break;
            }
            uint64_t seq = get_be64(lk + 9);
            if (first_rec)
                se->first_seq = seq;
            first_rec = false;
            se->next_seq = seq + 1;
            uint32_t n = cairn_get_u32(lv);
            for (uint32_t i = 0; i < n && rc == 0; i++) {
                int64_t ts = (int64_t)cairn_get_u64(lv + 4 + 16 * (size_t)i);
                uint64_t bits = cairn_get_u64(lv + 12 + 16 * (size_t)i);
                double pv;
                memcpy(&pv, &bits, 8);
                rc = open_set(se, ts, pv);
                if (!se->has_points || ts > se->newest)
                    se->newest = ts;
                se->has_points = true;
            }
        }
        if (rc == 0)
            rc = cairn_iter_status(it);
        cairn_iter_free(it);
    }
    if (rc) {
        series_free(se);
        return rc;
    }
    *out = se;
    return 0;
}

/* The series named name, loaded on first use, with its mu held. */
static int series_lock(cairn_db *db, const void *name, size_t nlen,
                       ts_series **out)
{
    cairn_ts_store *s = store_get(db);
    if (!s)
        return CAIRN_ENOMEM;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        ts_series **pp = slot_of(s, name, nlen);
        ts_series *se = *pp;
        if (!se) {
            /* Load under the table lock: one loader per name. */
            int rc = series_load(db, name, nlen, &se);
            if (rc) {
                pthread_mutex_unlock(&s->mu);
                return rc;
            }
            se->next = NULL;
            *pp = se;
            if (++s->count > s->nslots * 2)
                grow(s);
        }
        /* Never wait for a series under the table lock (a writer of
         * several series holds some while it looks up the next); a series
         * found here stays allocated until the store goes, dead or not. */
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&se->mu);
        if (!atomic_load(&se->dead)) {
            *out = se;
            return 0;
        }
        pthread_mutex_unlock(&se->mu); /* deleted meanwhile: again */
    }
}

/* ---- the label index ---- */

/* Add series id to the index if it is loaded (store.mu not held). */
static void index_add(cairn_db *db, uint64_t id, const void *name,
                      size_t nlen, const cairn_ts_labels *lab);
static void index_remove(cairn_db *db, uint64_t id);

/* ---- create, delete ---- */

/* Drop the table's entry for name, if any (it moves to the dead list). */
static void forget(cairn_db *db, const void *name, size_t nlen)
{
    cairn_ts_store *s = store_get(db);
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    ts_series **pp = slot_of(s, name, nlen);
    ts_series *se = *pp;
    if (se) {
        atomic_store(&se->dead, true);
        *pp = se->next;
        s->count--;
        se->next = s->dead;
        s->dead = se;
    }
    pthread_mutex_unlock(&s->mu);
}


int cairn_ts_create(cairn_db *db, const void *key, size_t klen,
                    const cairn_ts_options *opts)
{
    cairn_ts_options o;
    if (opts)
        o = *opts;
    else
        cairn_ts_options_init(&o);
    if (!db || (!key && klen) || o.chunk_size < 64 ||
        o.chunk_size > (1u << 20) || o.duplicate_policy > CAIRN_TS_DUP_SUM ||
        (!o.labels && o.nlabels))
        return CAIRN_EINVAL;
    cairn_ts_labels *lab = NULL;
    int rc = cairn_ts_labels_new(o.labels, o.nlabels, &lab);
    if (rc)
        return rc;
    size_t dkl;
    uint8_t *dk = data_key(key, klen, &dkl);
    if (!dk) {
        cairn_ts_labels_free(lab);
        return CAIRN_ENOMEM;
    }
    uint64_t id = 0;
    for (int attempt = 0;; attempt++) {
        cairn_txn *t = NULL;
        rc = cairn_txn_begin(db, NULL, &t);
        if (rc)
            break;
        void *v = NULL;
        size_t vl = 0;
        rc = cairn_txn_get(t, dk, dkl, &v, &vl);
        if (rc == 0) {
            cairn_free(v);
            cairn_txn_abort(t);
            rc = CAIRN_EEXIST;
            break;
        }
        if (rc != CAIRN_ENOTFOUND) {
            cairn_txn_abort(t);
            break;
        }
        /* The next id: a counter every create writes (two creates
         * conflict on it, and the loser retries). */
        static const uint8_t nk[1] = {KEY_NEXT_ID};
        id = 1;
        rc = cairn_txn_get(t, nk, 1, &v, &vl);
        if (rc == 0) {
            if (vl == 8)
                id = cairn_get_u64(v);
            else
                rc = CAIRN_ECORRUPT;
            cairn_free(v);
        } else if (rc == CAIRN_ENOTFOUND) {
            rc = 0;
        }
        uint8_t idv[8];
        cairn_put_u64(idv, id + 1);
        size_t rl = 0;
        uint8_t *rec = rc ? NULL : encode_record(id, &o, lab, &rl);
        if (rc == 0 && !rec)
            rc = CAIRN_ENOMEM;
        if (rc == 0)
            rc = cairn_txn_put(t, nk, 1, idv, 8);
        if (rc == 0)
            rc = cairn_txn_put(t, dk, dkl, rec, rl);
        uint8_t rk[9];
        rk[0] = KEY_REGISTRY;
        put_be64(rk + 1, id);
        if (rc == 0)
            rc = cairn_txn_put(t, rk, 9, key, klen);
        free(rec);
        if (rc) {
            cairn_txn_abort(t);
            break;
        }
        rc = cairn_txn_commit(t, NULL);
        if (rc != CAIRN_ECONFLICT || attempt >= 1000)
            break;
        /* Another create took the counter: its commit may still be on its
         * way to the disk, so back off before reading it again. */
        struct timespec ts = {0, (long)(20000 + (attempt < 8 ? attempt : 8) *
                                                    50000L)};
        nanosleep(&ts, NULL);
    }
    free(dk);
    if (rc == 0) {
        forget(db, key, klen); /* a stale entry of a key deleted behind
                                  this layer's back (not through it) */
        index_add(db, id, key, klen, lab);
    }
    cairn_ts_labels_free(lab);
    return rc;
}

int cairn_ts_delete(cairn_db *db, const void *key, size_t klen)
{
    if (!db || (!key && klen))
        return CAIRN_EINVAL;
    ts_series *se = NULL;
    int rc = series_lock(db, key, klen, &se);
    if (rc)
        return rc;
    cairn_txn *t = NULL;
    rc = cairn_txn_begin(db, NULL, &t);
    size_t dkl;
    uint8_t *dk = rc ? NULL : data_key(key, klen, &dkl);
    if (rc == 0 && !dk)
        rc = CAIRN_ENOMEM;
    if (rc == 0)
        rc = cairn_txn_delete(t, dk, dkl);
    free(dk);
    uint8_t rk[9];
    rk[0] = KEY_REGISTRY;
    put_be64(rk + 1, se->id);
    if (rc == 0)
        rc = cairn_txn_delete(t, rk, 9);
    /* Every chunk and log record of the series. */
    for (int prefix = KEY_CHUNK; rc == 0 && prefix <= KEY_LOG; prefix++) {
        cairn_iter *it = NULL;
        rc = series_iter(db, t, (uint8_t)prefix, se->id, &it);
        for (cairn_iter_first(it); rc == 0 && cairn_iter_valid(it);
             cairn_iter_next(it)) {
            size_t kl = 0;
            const void *k = cairn_iter_key(it, &kl);
            rc = cairn_txn_delete(t, k, kl);
        }
        if (rc == 0)
            rc = cairn_iter_status(it);
        cairn_iter_free(it);
    }
    if (rc == 0) {
        rc = cairn_txn_commit(t, NULL);
    } else if (t) {
        cairn_txn_abort(t);
    }
    if (rc == 0) {
        cairn_ts_store *s = db->ts;
        index_remove(db, se->id);
        atomic_store(&se->dead, true);
        pthread_mutex_unlock(&se->mu);
        pthread_mutex_lock(&s->mu);
        ts_series **pp = slot_of(s, key, klen);
        if (*pp == se) {
            *pp = se->next;
            s->count--;
        }
        se->next = s->dead;
        s->dead = se;
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    pthread_mutex_unlock(&se->mu);
    return rc;
}

/* ---- writes ---- */

#define SEAL_ZSTD_LEVEL 9

static bool older_than_retention(const ts_series *se, int64_t ts)
{
    if (!se->opt.retention_ms || !se->has_points)
        return false;
    /* ts < newest - retention, without overflow */
    return (uint64_t)se->newest - (uint64_t)ts > se->opt.retention_ms &&
           ts < se->newest;
}

/* The start of a read from from, after what the retention drops. */
static int64_t retained_from(const ts_series *se, int64_t from)
{
    return older_than_retention(se, from)
               ? (int64_t)((uint64_t)se->newest - se->opt.retention_ms)
               : from;
}

static int point_cmp(const void *a, const void *b)
{
    const cairn_ts_point *x = a, *y = b;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

/* Put the point into the sealed chunk that covers it (within txn). */
static int sealed_upsert(cairn_db *db, cairn_txn *t, ts_series *se,
                         int64_t ts, double v)
{
    bool found = false;
    int64_t first = 0;
    uint8_t *c = NULL;
    size_t cl = 0;
    int rc = chunk_at(db, t, se->id, ts, &found, &first, &c, &cl);
    if (rc)
        return rc;
    cairn_ts_point *pts = NULL;
    size_t n = 0;
    if (found) {
        rc = cairn_ts_chunk_decode(c, cl, &pts, &n);
        free(c);
        if (rc)
            return rc;
    }
    /* merge */
    size_t i = 0;
    while (i < n && pts[i].ts < ts)
        i++;
    if (i < n && pts[i].ts == ts) {
        rc = apply_policy(se->opt.duplicate_policy, pts[i].v, v, &pts[i].v);
        if (rc) {
            free(pts);
            return rc;
        }
    } else {
        cairn_ts_point *np = realloc(pts, (n + 1) * sizeof *np);
        if (!np) {
            free(pts);
            return CAIRN_ENOMEM;
        }
        pts = np;
        memmove(pts + i + 1, pts + i, (n - i) * sizeof *pts);
        pts[i] = (cairn_ts_point){ts, v};
        n++;
    }
    cairn_ts_enc e;
    cairn_ts_enc_init(&e, !se->opt.uncompressed);
    for (size_t j = 0; j < n && rc == 0; j++)
        rc = cairn_ts_enc_add(&e, pts[j].ts, pts[j].v);
    uint8_t *b = NULL;
    size_t bl = 0;
    if (rc == 0)
        rc = cairn_ts_enc_bytes(&e, true, SEAL_ZSTD_LEVEL, &b, &bl);
    cairn_ts_enc_free(&e);
    uint8_t k[17];
    if (rc == 0 && found && pts[0].ts != first) {
        chunk_key(k, se->id, first); /* it starts earlier now */
        rc = cairn_txn_delete(t, k, 17);
    }
    if (rc == 0) {
        chunk_key(k, se->id, pts[0].ts);
        rc = cairn_txn_put(t, k, 17, b, bl);
    }
    free(b);
    free(pts);
    return rc;
}

/* Delete the chunks wholly older than the retention (within txn). */
static int drop_old_chunks(cairn_txn *t, ts_series *se)
{
    if (!se->opt.retention_ms || !se->has_points)
        return 0;
    cairn_iter *it = NULL;
    int rc = series_iter(NULL, t, KEY_CHUNK, se->id, &it);
    if (rc)
        return rc;
    for (cairn_iter_first(it); rc == 0 && cairn_iter_valid(it);
         cairn_iter_next(it)) {
        size_t kl = 0, cl = 0;
        const void *k = cairn_iter_key(it, &kl);
        const uint8_t *c = cairn_iter_value(it, &cl);
        int64_t last;
        rc = cairn_ts_chunk_info(c, cl, NULL, NULL, NULL, &last);
        if (rc || !older_than_retention(se, last))
            break;
        rc = cairn_txn_delete(t, k, kl);
    }
    if (rc == 0)
        rc = cairn_iter_status(it);
    cairn_iter_free(it);
    return rc;
}

/* What a staged write changed, to make it stick or undo it. */
typedef struct ts_undo {
    int64_t ts;
    double old;    /* the value it replaced */
    bool replaced; /* else: inserted */
} ts_undo;

typedef struct ts_stage {
    ts_undo *undo; /* what the write did to the open part, in order */
    size_t nundo;
    int64_t saved_newest;
    bool saved_has;
    bool sealed;
    uint64_t seq;
    int64_t seal_last;
    size_t nlog;
    bool touched; /* the series' memory may have changed */
} ts_stage;

/* Stage the samples idx[0..n) (all of series se, whose mu is held) into
 * transaction t and the series' memory. results[idx[i]] gets each one's
 * outcome. Returns 0, or an error that must fail the commit; either way
 * series_settle must follow. */
static int series_stage(cairn_db *db, cairn_txn *t, ts_series *se,
                        const cairn_ts_sample *smp, const size_t *idx,
                        size_t n, int *results, ts_stage *st)
{
    memset(st, 0, sizeof *st);
    st->saved_newest = se->newest;
    st->saved_has = se->has_points;
    st->seq = se->next_seq;
    st->undo = malloc((n ? n : 1) * sizeof *st->undo);
    if (!st->undo)
        return CAIRN_ENOMEM;
    st->touched = true;
    cairn_ts_point *logp = malloc((n ? n : 1) * sizeof *logp);
    int rc = logp ? 0 : CAIRN_ENOMEM;
    size_t nlog = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const cairn_ts_sample *p = &smp[idx[i]];
        int r = 0;
        if (older_than_retention(se, p->ts)) {
            r = CAIRN_EHISTORY;
        } else if (se->has_sealed && p->ts <= se->sealed_last) {
            r = sealed_upsert(db, t, se, p->ts, p->v);
            if (r != 0 && r != CAIRN_EEXIST) {
                rc = r;
                break;
            }
        } else {
            size_t j = open_lower(se, p->ts);
            double v = p->v;
            bool exists = j < se->nopen && se->open[j].ts == p->ts;
            double old = exists ? se->open[j].v : 0;
            if (exists)
                r = apply_policy(se->opt.duplicate_policy, old, p->v, &v);
            if (r == 0)
                r = open_set(se, p->ts, v);
            if (r == 0)
                st->undo[st->nundo++] = (ts_undo){p->ts, old, exists};
            if (r == CAIRN_ENOMEM) {
                rc = r;
                break;
            }
            if (r == 0)
                logp[nlog++].ts = p->ts; /* values filled in below */
        }
        if (r == 0) {
            if (!se->has_points || p->ts > se->newest)
                se->newest = p->ts;
            se->has_points = true;
        }
        if (results)
            results[idx[i]] = r;
    }
    /* The log record: each changed timestamp once, with its value as the
     * open part has it now (after every point of this write). */
    if (rc == 0 && nlog > 1) {
        bool sorted = true;
        for (size_t q = 1; q < nlog && sorted; q++)
            sorted = logp[q - 1].ts < logp[q].ts;
        if (!sorted) {
            qsort(logp, nlog, sizeof *logp, point_cmp);
            size_t u = 1;
            for (size_t q = 1; q < nlog; q++)
                if (logp[q].ts != logp[u - 1].ts)
                    logp[u++] = logp[q];
            nlog = u;
        }
    }
    for (size_t q = 0; rc == 0 && q < nlog; q++)
        logp[q].v = se->open[open_lower(se, logp[q].ts)].v;
    if (rc == 0 && nlog && open_size(se) >= se->opt.chunk_size) {
        /* Seal the open part: one chunk, and the log goes. */
        uint8_t *b = NULL;
        size_t bl = 0;
        rc = cairn_ts_enc_bytes(&se->enc, true, SEAL_ZSTD_LEVEL, &b, &bl);
        uint8_t k[17];
        if (rc == 0) {
            chunk_key(k, se->id, se->open[0].ts);
            rc = cairn_txn_put(t, k, 17, b, bl);
        }
        free(b);
        for (uint64_t q = se->first_seq; rc == 0 && q < se->next_seq; q++) {
            log_key(k, se->id, q);
            rc = cairn_txn_delete(t, k, 17);
        }
        if (rc == 0)
            rc = drop_old_chunks(t, se);
        st->seal_last = se->open[se->nopen - 1].ts;
        st->sealed = true;
    } else if (rc == 0 && nlog) {
        uint8_t *v = malloc(4 + 16 * nlog);
        if (!v)
            rc = CAIRN_ENOMEM;
        for (size_t q = 0; rc == 0 && q < nlog; q++) {
            uint64_t bits;
            memcpy(&bits, &logp[q].v, 8);
            cairn_put_u64(v + 4 + 16 * q, (uint64_t)logp[q].ts);
            cairn_put_u64(v + 12 + 16 * q, bits);
        }
        uint8_t k[17];
        if (rc == 0) {
            cairn_put_u32(v, (uint32_t)nlog);
            log_key(k, se->id, st->seq);
            rc = cairn_txn_put(t, k, 17, v, 4 + 16 * nlog);
        }
        free(v);
    }
    st->nlog = nlog;
    free(logp);
    return rc;
}

/* After the commit (rc its outcome, or the staging error): keep what was
 * staged, or put the series back as it was. */
static void series_settle(ts_series *se, ts_stage *st, int rc,
                          const size_t *idx, size_t n, int *results)
{
    if (rc == 0) {
        if (st->sealed) {
            se->has_sealed = true;
            se->sealed_last = st->seal_last; /* the open part was newest */
            se->nopen = 0;
            cairn_ts_enc_reset(&se->enc);
            se->enc_valid = true;
            se->first_seq = se->next_seq;
        } else if (st->nlog) {
            if (se->first_seq == se->next_seq)
                se->first_seq = st->seq;
            se->next_seq = st->seq + 1;
        }
    } else if (st->touched) {
        /* Undo, newest change first. */
        for (size_t u = st->nundo; u-- > 0;) {
            size_t j = open_lower(se, st->undo[u].ts);
            if (st->undo[u].replaced) {
                se->open[j].v = st->undo[u].old;
            } else {
                memmove(se->open + j, se->open + j + 1,
                        (se->nopen - j - 1) * sizeof *se->open);
                se->nopen--;
            }
        }
        se->enc_valid = false;
        se->newest = st->saved_newest;
        se->has_points = st->saved_has;
    }
    if (rc != 0) {
        if (results)
            for (size_t i = 0; i < n; i++)
                if (results[idx[i]] == 0)
                    results[idx[i]] = rc;
    }
    free(st->undo);
    st->undo = NULL;
}

typedef struct ts_group {
    const void *key;
    size_t klen;
    size_t first, n;     /* its samples: order[first .. first + n) */
    ts_series *se;       /* locked, or NULL (lookup failed: err) */
    int err;
    ts_stage st;
} ts_group;

static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    return c ? c : (al > bl) - (al < bl);
}

static int group_cmp(const void *a, const void *b)
{
    const ts_group *x = a, *y = b;
    return key_cmp(x->key, x->klen, y->key, y->klen);
}

int cairn_ts_add_many(cairn_db *db, const cairn_ts_sample *samples, size_t n,
                      int *results)
{
    if (!db || (!samples && n))
        return CAIRN_EINVAL;
    if (n == 0)
        return 0;
    /* Group the samples by series (each group keeps the samples' order). */
    bool *done = calloc(n, sizeof *done);
    size_t *order = malloc(n * sizeof *order);
    ts_group *g = calloc(n, sizeof *g);
    if (!done || !order || !g) {
        free(done);
        free(order);
        free(g);
        return CAIRN_ENOMEM;
    }
    size_t ng = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (done[i])
            continue;
        ts_group *gr = &g[ng++];
        gr->key = samples[i].key;
        gr->klen = samples[i].klen;
        gr->first = m;
        for (size_t j = i; j < n; j++)
            if (!done[j] && key_cmp(samples[j].key, samples[j].klen,
                                    gr->key, gr->klen) == 0) {
                order[m++] = j;
                done[j] = true;
            }
        gr->n = m - gr->first;
    }
    /* Lock the series in key order (two writers of overlapping sets never
     * wait for each other in a cycle), stage them all into one
     * transaction, commit once. */
    qsort(g, ng, sizeof *g, group_cmp);
    for (size_t k = 0; k < ng; k++) {
        g[k].err = series_lock(db, g[k].key, g[k].klen, &g[k].se);
        if (g[k].err) {
            g[k].se = NULL;
            if (results)
                for (size_t q = 0; q < g[k].n; q++)
                    results[order[g[k].first + q]] = g[k].err;
        }
    }
    cairn_txn *t = NULL;
    int rc = cairn_txn_begin(db, NULL, &t);
    size_t staged = 0;
    for (size_t k = 0; k < ng; k++) {
        if (!g[k].se)
            continue;
        int src = rc ? rc
                     : series_stage(db, t, g[k].se, samples, order + g[k].first,
                                    g[k].n, results, &g[k].st);
        staged = k + 1;
        if (src && !rc)
            rc = src;
        if (rc)
            break;
    }
    if (rc == 0 && t)
        rc = cairn_txn_commit(t, NULL); /* frees t */
    else if (t)
        cairn_txn_abort(t);
    for (size_t k = 0; k < ng; k++) {
        if (!g[k].se)
            continue;
        if (k < staged)
            series_settle(g[k].se, &g[k].st, rc, order + g[k].first, g[k].n,
                          results);
        else if (rc && results)
            for (size_t q = 0; q < g[k].n; q++)
                results[order[g[k].first + q]] = rc;
        pthread_mutex_unlock(&g[k].se->mu);
    }
    int first_err = rc;
    for (size_t k = 0; k < ng && !first_err; k++)
        if (g[k].err && g[k].err != CAIRN_ENOTFOUND &&
            g[k].err != CAIRN_ENOTSUP)
            first_err = g[k].err;
    free(done);
    free(order);
    free(g);
    return first_err;
}

int cairn_ts_add(cairn_db *db, const void *key, size_t klen, int64_t ts,
                 double v)
{
    if (!db || (!key && klen))
        return CAIRN_EINVAL;
    cairn_ts_sample s = {key, klen, ts, v};
    int r = 0;
    int rc = cairn_ts_add_many(db, &s, 1, &r);
    return rc ? rc : r;
}

/* ---- reads ---- */

static int out_push(cairn_ts_point **out, size_t *n, size_t *cap,
                    cairn_ts_point p)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 256;
        cairn_ts_point *q = realloc(*out, c * sizeof *q);
        if (!q)
            return CAIRN_ENOMEM;
        *out = q;
        *cap = c;
    }
    (*out)[(*n)++] = p;
    return 0;
}

/* The points in [from, to] of a locked series. */
static int series_points(cairn_db *db, ts_series *se, int64_t from,
                         int64_t to, cairn_ts_point **pts, size_t *n);

int cairn_ts_range(cairn_db *db, const void *key, size_t klen, int64_t from,
                   int64_t to, cairn_ts_point **pts, size_t *n)
{
    if (!db || (!key && klen) || !pts || !n)
        return CAIRN_EINVAL;
    *pts = NULL;
    *n = 0;
    ts_series *se = NULL;
    int rc = series_lock(db, key, klen, &se);
    if (rc)
        return rc;
    rc = series_points(db, se, retained_from(se, from), to, pts, n);
    pthread_mutex_unlock(&se->mu);
    return rc;
}

static int series_points(cairn_db *db, ts_series *se, int64_t from,
                         int64_t to, cairn_ts_point **pts, size_t *n)
{
    int rc = 0;
    cairn_ts_point *out = NULL;
    size_t cnt = 0, cap = 0;
    if (se->has_sealed && from <= to && from <= se->sealed_last) {
        bool found = false;
        int64_t first = 0;
        rc = chunk_at(db, NULL, se->id, from, &found, &first, NULL, NULL);
        uint8_t lo[17];
        chunk_key(lo, se->id, found ? first : INT64_MIN);
        cairn_iter *it = NULL;
        if (rc == 0)
            rc = series_iter(db, NULL, KEY_CHUNK, se->id, &it);
        if (rc == 0)
            cairn_iter_seek(it, lo, 17); /* the chunk holding from */
        for (; rc == 0 && cairn_iter_valid(it); cairn_iter_next(it)) {
            size_t kl = 0, cl = 0;
            const uint8_t *k = cairn_iter_key(it, &kl);
            const uint8_t *c = cairn_iter_value(it, &cl);
            if (kl != 17) {
                rc = CAIRN_ECORRUPT;
                break;
            }
            int64_t cfirst = (int64_t)(get_be64(k + 9) ^ 0x8000000000000000ULL);
            if (cfirst > to)
                break;
            cairn_ts_point *cp = NULL;
            size_t cn = 0;
            rc = cairn_ts_chunk_decode(c, cl, &cp, &cn);
            for (size_t i = 0; rc == 0 && i < cn; i++)
                if (cp[i].ts >= from && cp[i].ts <= to)
                    rc = out_push(&out, &cnt, &cap, cp[i]);
            free(cp);
        }
        if (rc == 0 && it)
            rc = cairn_iter_status(it);
        cairn_iter_free(it);
    }
    for (size_t i = open_lower(se, from); rc == 0 && i < se->nopen &&
                                          se->open[i].ts <= to;
         i++)
        rc = out_push(&out, &cnt, &cap, se->open[i]);
    if (rc) {
        free(out);
        return rc;
    }
    *pts = out;
    *n = cnt;
    return 0;
}

/* ---- queries ---- */

/* The series' last point with timestamp < ts (dir < 0), or first with
 * timestamp > ts (dir > 0), among points whose value is not NaN: 1 with
 * *out, 0 when there is none, or an error. se->mu is held. */
static int series_neighbour(cairn_db *db, ts_series *se, int64_t ts, int dir,
                            cairn_ts_point *out)
{
    if (dir < 0) {
        for (size_t i = open_lower(se, ts); i-- > 0;)
            if (!isnan(se->open[i].v)) {
                *out = se->open[i];
                return 1;
            }
        if (ts == INT64_MIN)
            return 0;
    }
    if (se->has_sealed && (dir < 0 || ts < se->sealed_last)) {
        uint8_t at[17];
        chunk_key(at, se->id, dir < 0 ? ts - 1 : ts);
        cairn_iter *it = NULL;
        int rc = series_iter(db, NULL, KEY_CHUNK, se->id, &it);
        if (rc)
            return rc;
        cairn_iter_seek_for_prev(it, at, 17);
        if (dir > 0 && !cairn_iter_valid(it))
            cairn_iter_first(it);
        int found = 0;
        while (rc == 0 && !found && cairn_iter_valid(it)) {
            size_t cl = 0;
            const uint8_t *c = cairn_iter_value(it, &cl);
            cairn_ts_point *p = NULL;
            size_t n = 0;
            rc = cairn_ts_chunk_decode(c, cl, &p, &n);
            if (rc == 0 && dir < 0) {
                for (size_t i = n; i-- > 0 && !found;)
                    if (p[i].ts < ts && !isnan(p[i].v)) {
                        *out = p[i];
                        found = 1;
                    }
            } else if (rc == 0) {
                for (size_t i = 0; i < n && !found; i++)
                    if (p[i].ts > ts && !isnan(p[i].v)) {
                        *out = p[i];
                        found = 1;
                    }
            }
            free(p);
            if (dir < 0)
                cairn_iter_prev(it);
            else
                cairn_iter_next(it);
        }
        if (rc == 0)
            rc = cairn_iter_status(it);
        cairn_iter_free(it);
        if (rc || found || dir < 0)
            return rc ? rc : found;
    }
    if (dir > 0) {
        size_t i = ts == INT64_MAX ? se->nopen : open_lower(se, ts + 1);
        for (; i < se->nopen; i++)
            if (!isnan(se->open[i].v)) {
                *out = se->open[i];
                return 1;
            }
    }
    return 0;
}

typedef struct series_src {
    cairn_db *db;
    ts_series *se;
    const cairn_ts_point *pts;
    size_t n;
    bool given;
} series_src;

static int src_next(void *ctx, const cairn_ts_point **pts, size_t *n)
{
    series_src *s = ctx;
    *pts = s->pts;
    *n = s->given ? 0 : s->n;
    s->given = true;
    return 0;
}

static int src_before(void *ctx, int64_t ts, cairn_ts_point *p)
{
    series_src *s = ctx;
    return series_neighbour(s->db, s->se, ts, -1, p);
}

static int src_after(void *ctx, int64_t ts, cairn_ts_point *p)
{
    series_src *s = ctx;
    return series_neighbour(s->db, s->se, ts, 1, p);
}

int cairn_ts_query_range(cairn_db *db, const void *key, size_t klen,
                         const cairn_ts_query *q, cairn_ts_point **pts,
                         size_t *n)
{
    if (!db || (!key && klen) || !q || !pts || !n)
        return CAIRN_EINVAL;
    *pts = NULL;
    *n = 0;
    ts_series *se = NULL;
    int rc = series_lock(db, key, klen, &se);
    if (rc)
        return rc;
    cairn_ts_query qq = *q;
    qq.from = retained_from(se, qq.from);
    cairn_ts_point *raw = NULL;
    size_t nraw = 0;
    if (qq.from <= qq.to)
        rc = series_points(db, se, qq.from, qq.to, &raw, &nraw);
    if (rc == 0) {
        series_src ss = {db, se, raw, nraw, false};
        cairn_ts_source src = {src_next, src_before, src_after, &ss};
        cairn_ts_point *out = NULL;
        size_t cnt = 0;
        rc = cairn_ts_query_run(&qq, &src, &out, &cnt);
        if (rc == 0) {
            *pts = out;
            *n = cnt;
        }
    }
    pthread_mutex_unlock(&se->mu);
    free(raw);
    return rc;
}

/* ---- the label index ---- */

static cairn_ts_labels *empty_labels(void)
{
    cairn_ts_labels *l = NULL;
    return cairn_ts_labels_new(NULL, 0, &l) == 0 ? l : NULL;
}

/* Under store.mu: record (id, name, labels). 0, or CAIRN_ENOMEM. */
static int ix_put(cairn_ts_store *s, uint64_t id, const void *name,
                  size_t nlen, const cairn_ts_labels *lab)
{
    cairn_ts_labels *none = lab ? NULL : empty_labels();
    if (!lab && !none)
        return CAIRN_ENOMEM;
    int rc = cairn_ts_index_add(s->ix, id, lab ? lab : none);
    cairn_ts_labels_free(none);
    if (rc == CAIRN_EEXIST)
        return 0; /* already there (a loader saw it first) */
    if (rc)
        return rc;
    if (s->nnames == s->capnames) {
        size_t cap = s->capnames ? s->capnames * 2 : 64;
        ix_name *nn = realloc(s->names, cap * sizeof *nn);
        if (!nn) {
            cairn_ts_index_remove(s->ix, id);
            return CAIRN_ENOMEM;
        }
        s->names = nn;
        s->capnames = cap;
    }
    uint8_t *cp = malloc(nlen ? nlen : 1);
    if (!cp) {
        cairn_ts_index_remove(s->ix, id);
        return CAIRN_ENOMEM;
    }
    if (nlen)
        memcpy(cp, name, nlen);
    size_t i = s->nnames;
    while (i > 0 && s->names[i - 1].id > id)
        i--;
    memmove(s->names + i + 1, s->names + i,
            (s->nnames - i) * sizeof *s->names);
    s->names[i] = (ix_name){id, cp, nlen};
    s->nnames++;
    return 0;
}

static ix_name *ix_find(cairn_ts_store *s, uint64_t id)
{
    size_t lo = 0, hi = s->nnames;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->names[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->nnames && s->names[lo].id == id ? &s->names[lo] : NULL;
}

static void ix_drop(cairn_ts_store *s, uint64_t id)
{
    ix_name *e = ix_find(s, id);
    if (!e)
        return;
    (void)cairn_ts_index_remove(s->ix, id);
    free(e->name);
    size_t i = (size_t)(e - s->names);
    memmove(s->names + i, s->names + i + 1,
            (s->nnames - i - 1) * sizeof *s->names);
    s->nnames--;
}

static void index_add(cairn_db *db, uint64_t id, const void *name,
                      size_t nlen, const cairn_ts_labels *lab)
{
    cairn_ts_store *s = store_get(db);
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->ix_loaded && ix_put(s, id, name, nlen, lab) != 0)
        s->ix_loaded = false; /* out of memory: load again when asked */
    pthread_mutex_unlock(&s->mu);
}

static void index_remove(cairn_db *db, uint64_t id)
{
    cairn_ts_store *s = store_get(db);
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    if (s->ix_loaded)
        ix_drop(s, id);
    pthread_mutex_unlock(&s->mu);
}

/* Is series id still name's series? (A key deleted or replaced behind
 * this layer's back leaves a stale registry entry.) */
static int registry_live(cairn_db *db, uint64_t id, const void *name,
                         size_t nlen, cairn_ts_labels **lab)
{
    size_t dkl;
    uint8_t *dk = data_key(name, nlen, &dkl);
    if (!dk)
        return CAIRN_ENOMEM;
    void *v = NULL;
    size_t vl = 0;
    int rc = cairn_get(db, dk, dkl, &v, &vl);
    free(dk);
    if (rc == CAIRN_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    uint64_t rid = 0;
    cairn_ts_options o;
    rc = decode_record(v, vl, &rid, &o, lab);
    cairn_free(v);
    if (rc == CAIRN_ENOTSUP)
        return 0;
    if (rc)
        return rc;
    if (rid != id) {
        if (lab) {
            cairn_ts_labels_free(*lab);
            *lab = NULL;
        }
        return 0;
    }
    return 1;
}

/* Under store.mu: read the registry into the index. */
static int ix_load(cairn_db *db, cairn_ts_store *s)
{
    if (s->ix_loaded)
        return 0;
    cairn_ts_index_free(s->ix);
    for (size_t i = 0; i < s->nnames; i++)
        free(s->names[i].name);
    s->nnames = 0;
    s->ix = NULL;
    int rc = cairn_ts_index_new(&s->ix);
    const uint8_t pre = KEY_REGISTRY;
    cairn_iter_options io = {0};
    io.prefix = &pre;
    io.prefix_len = 1;
    cairn_iter *it = NULL;
    if (rc == 0)
        rc = cairn_iter_new(db, &io, &it);
    for (cairn_iter_first(it); rc == 0 && cairn_iter_valid(it);
         cairn_iter_next(it)) {
        size_t kl = 0, vl = 0;
        const uint8_t *k = cairn_iter_key(it, &kl);
        const void *v = cairn_iter_value(it, &vl);
        if (kl != 9) {
            rc = CAIRN_ECORRUPT;
            break;
        }
        uint64_t id = get_be64(k + 1);
        cairn_ts_labels *lab = NULL;
        int live = registry_live(db, id, v, vl, &lab);
        if (live < 0)
            rc = live;
        else if (live)
            rc = ix_put(s, id, v, vl, lab);
        cairn_ts_labels_free(lab);
    }
    if (rc == 0 && it)
        rc = cairn_iter_status(it);
    cairn_iter_free(it);
    s->ix_loaded = rc == 0;
    return rc;
}

static int str_cmp(const void *a, const void *b)
{
    const cairn_ts_str *x = a, *y = b;
    return key_cmp(x->p, x->len, y->p, y->len);
}

void cairn_ts_keys_free(cairn_ts_str *keys, size_t n)
{
    for (size_t i = 0; keys && i < n; i++)
        free((void *)keys[i].p);
    free(keys);
}

int cairn_ts_query_index(cairn_db *db, const char *const *exprs,
                         const size_t *lens, size_t nexprs, cairn_ts_str **keys,
                         size_t *n, char *err, size_t errlen)
{
    if (!db || !keys || !n || (!exprs && nexprs))
        return CAIRN_EINVAL;
    *keys = NULL;
    *n = 0;
    char e[256] = "";
    cairn_ts_filter *f = NULL;
    int rc = cairn_ts_filter_parse(exprs, lens, nexprs, &f, e, sizeof e);
    if (rc) {
        if (err && errlen)
            snprintf(err, errlen, "%s", e);
        return rc;
    }
    cairn_ts_store *s = store_get(db);
    if (!s) {
        cairn_ts_filter_free(f);
        return CAIRN_ENOMEM;
    }
    pthread_mutex_lock(&s->mu);
    rc = ix_load(db, s);
    uint64_t *ids = NULL;
    size_t nids = 0;
    if (rc == 0)
        rc = cairn_ts_index_query(s->ix, f, &ids, &nids);
    cairn_ts_str *out = rc ? NULL : calloc(nids ? nids : 1, sizeof *out);
    if (rc == 0 && !out)
        rc = CAIRN_ENOMEM;
    size_t m = 0;
    for (size_t i = 0; rc == 0 && i < nids; i++) {
        ix_name *e2 = ix_find(s, ids[i]);
        if (!e2)
            continue;
        int live = registry_live(db, e2->id, e2->name, e2->nlen, NULL);
        if (live < 0) {
            rc = live;
        } else if (!live) {
            ix_drop(s, ids[i]); /* deleted behind this layer's back */
        } else {
            char *cp = malloc(e2->nlen ? e2->nlen : 1);
            if (!cp) {
                rc = CAIRN_ENOMEM;
                break;
            }
            if (e2->nlen)
                memcpy(cp, e2->name, e2->nlen);
            out[m++] = (cairn_ts_str){cp, e2->nlen};
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(ids);
    cairn_ts_filter_free(f);
    if (rc) {
        cairn_ts_keys_free(out, m);
        return rc;
    }
    qsort(out, m, sizeof *out, str_cmp);
    *keys = out;
    *n = m;
    return 0;
}

int cairn_ts_get_labels(cairn_db *db, const void *key, size_t klen,
                        cairn_ts_label **labels, size_t *n)
{
    if (!db || (!key && klen) || !labels || !n)
        return CAIRN_EINVAL;
    *labels = NULL;
    *n = 0;
    ts_series *se = NULL;
    int rc = series_lock(db, key, klen, &se);
    if (rc)
        return rc;
    size_t cnt = se->labels ? se->labels->n : 0, bytes = 0;
    for (size_t i = 0; i < cnt; i++)
        bytes += se->labels->v[i].name.len + se->labels->v[i].value.len;
    cairn_ts_label *out = malloc(cnt * sizeof *out + bytes + 1);
    if (!out) {
        pthread_mutex_unlock(&se->mu);
        return CAIRN_ENOMEM;
    }
    char *p = (char *)(out + cnt);
    for (size_t i = 0; i < cnt; i++) {
        const cairn_ts_label *l = &se->labels->v[i];
        memcpy(p, l->name.p, l->name.len);
        out[i].name = (cairn_ts_str){p, l->name.len};
        p += l->name.len;
        memcpy(p, l->value.p, l->value.len);
        out[i].value = (cairn_ts_str){p, l->value.len};
        p += l->value.len;
    }
    pthread_mutex_unlock(&se->mu);
    *labels = out;
    *n = cnt;
    return 0;
}

/* ---- the full interface: being implemented (ENOTSUP until then) ---- */

int cairn_ts_add_many_ex(cairn_db *db, const cairn_ts_write_opts *o,
                         const cairn_ts_sample *samples, size_t n,
                         int *results)
{
    if (!o || (!o->txn && !o->create && !o->has_on_duplicate))
        return cairn_ts_add_many(db, samples, n, results);
    return CAIRN_ENOTSUP;
}

int cairn_ts_incrby(cairn_db *db, const cairn_ts_write_opts *o,
                    const void *key, size_t klen, double by, bool has_ts,
                    int64_t ts, cairn_ts_point *out, char *err, size_t errlen)
{
    (void)db, (void)o, (void)key, (void)klen, (void)by, (void)has_ts,
        (void)ts, (void)out, (void)err, (void)errlen;
    return CAIRN_ENOTSUP;
}

int cairn_ts_create_ex(cairn_db *db, cairn_txn *txn, const void *key,
                       size_t klen, const cairn_ts_options *opts)
{
    return txn ? CAIRN_ENOTSUP : cairn_ts_create(db, key, klen, opts);
}

int cairn_ts_delete_ex(cairn_db *db, cairn_txn *txn, const void *key,
                       size_t klen)
{
    return txn ? CAIRN_ENOTSUP : cairn_ts_delete(db, key, klen);
}

int cairn_ts_alter(cairn_db *db, cairn_txn *txn, const void *key, size_t klen,
                   const cairn_ts_alter_opts *a, char *err, size_t errlen)
{
    (void)db, (void)txn, (void)key, (void)klen, (void)a, (void)err,
        (void)errlen;
    return CAIRN_ENOTSUP;
}

int cairn_ts_del_range(cairn_db *db, cairn_txn *txn, const void *key,
                       size_t klen, int64_t from, int64_t to,
                       uint64_t *deleted)
{
    (void)db, (void)txn, (void)key, (void)klen, (void)from, (void)to,
        (void)deleted;
    return CAIRN_ENOTSUP;
}

int cairn_ts_query_range_ex(cairn_db *db, cairn_txn *txn, const void *key,
                            size_t klen, const cairn_ts_query *q,
                            cairn_ts_point **pts, size_t *n)
{
    return txn ? CAIRN_ENOTSUP : cairn_ts_query_range(db, key, klen, q, pts, n);
}

int cairn_ts_get_last(cairn_db *db, cairn_txn *txn, const void *key,
                      size_t klen, bool latest, bool *found, cairn_ts_point *p)
{
    (void)latest;
    cairn_ts_query q = {.from = INT64_MIN, .to = INT64_MAX, .reverse = true,
                        .has_count = true, .count = 1};
    cairn_ts_point *pts = NULL;
    size_t n = 0;
    int rc = cairn_ts_query_range_ex(db, txn, key, klen, &q, &pts, &n);
    if (rc)
        return rc;
    *found = n > 0;
    if (n)
        *p = pts[0];
    free(pts);
    return 0;
}

int cairn_ts_create_rule(cairn_db *db, cairn_txn *txn, const void *src,
                         size_t slen, const void *dst, size_t dlen,
                         cairn_ts_aggregator agg, int64_t bucket_ms,
                         int64_t align_ms, char *err, size_t errlen)
{
    (void)db, (void)txn, (void)src, (void)slen, (void)dst, (void)dlen,
        (void)agg, (void)bucket_ms, (void)align_ms, (void)err, (void)errlen;
    return CAIRN_ENOTSUP;
}

int cairn_ts_delete_rule(cairn_db *db, cairn_txn *txn, const void *src,
                         size_t slen, const void *dst, size_t dlen, char *err,
                         size_t errlen)
{
    (void)db, (void)txn, (void)src, (void)slen, (void)dst, (void)dlen,
        (void)err, (void)errlen;
    return CAIRN_ENOTSUP;
}

int cairn_ts_rename(cairn_db *db, cairn_txn *txn, const void *from,
                    size_t flen, const void *to, size_t tlen)
{
    (void)db, (void)txn, (void)from, (void)flen, (void)to, (void)tlen;
    return CAIRN_ENOTSUP;
}

int cairn_ts_drop_all(cairn_db *db, cairn_txn *txn)
{
    (void)db, (void)txn;
    return CAIRN_ENOTSUP;
}

int cairn_ts_info_get(cairn_db *db, cairn_txn *txn, const void *key,
                      size_t klen, cairn_ts_info **out)
{
    (void)db, (void)txn, (void)key, (void)klen, (void)out;
    return CAIRN_ENOTSUP;
}

void cairn_ts_info_free(cairn_ts_info *info)
{
    (void)info;
}
