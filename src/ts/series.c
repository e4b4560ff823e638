/*
 * series.c — time series stored through the engine (docs/format/ts.md,
 * "Series storage"): a series record at 0x01|name (value record type 2:
 * options, labels, rules), sealed chunks at 0x03|id|first-ts, and
 * point-log records at 0x04|id|seq holding the points accepted since the
 * last seal, so that every acknowledged point is in the log of the engine.
 *
 * In memory (db->ts, made on first use): a table of the series used so
 * far, each with its open part (the points not yet sealed, sorted and
 * unique), an encoder mirroring it while points come in order, its rules
 * and its source.
 *
 * Every call runs in a "tx" (ts_tx) tied to an engine transaction: the
 * caller's, or one of the call's own. A tx locks the series it touches
 * and changes their memory as it stages writes into the transaction; when
 * the transaction ends (a hook of the engine's), a commit keeps the
 * memory and records the commit version on the series, a failure or an
 * abort marks every series the tx changed dead (the next caller loads it
 * again from what is committed), and the locks go.
 *
 * Invariants:
 *   - a series not held by a tx has memory equal to the committed state:
 *     the open part equals the point-log records applied in seq order;
 *     every point older than the open part is in a sealed chunk, and every
 *     sealed chunk's points are older than the open part's;
 *   - a rule's destination holds, for every closed bucket of its source (a
 *     bucket older than the bucket of the source's newest point) that was
 *     touched since the rule exists, the aggregate of the source's points
 *     in it (written in the commit that closed or changed the bucket);
 *   - rules form no cycle; a series has at most one source;
 *   - series.version: no commit after it changed the series (a tx whose
 *     snapshot is older must not use the series' memory: ECONFLICT).
 * Locking: ts_store.mu guards the table (lookup, insert, remove) and the
 * label index; each series' mu is held by the one tx (or plain read)
 * using it, from its first use to the end of the transaction. No thread
 * waits for a series' mu while it holds store.mu (a series found there
 * stays allocated, once dead, until the store is freed). A tx waits for a
 * series only while it holds none, or in the key-ordered lock phase of a
 * call that began holding none; otherwise it only tries, and a failure is
 * CAIRN_ECONFLICT (the caller retries): no cycle of waits.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
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
#define MAX_RETRIES 1000

typedef struct ts_rule_mem {
    uint8_t *dst;
    size_t dlen;
    cairn_ts_aggregator agg;
    int64_t bucket, align;
} ts_rule_mem;

typedef struct ts_series {
    struct ts_series *next; /* hash chain */
    uint8_t *name;
    size_t nlen;
    uint64_t id;
    cairn_ts_options opt;     /* opt.labels unused: see labels */
    cairn_ts_labels *labels; /* NULL: none */
    ts_rule_mem *rules;      /* the series it feeds */
    size_t nrules;
    uint8_t *src;            /* the series feeding it (has_src) */
    size_t slen;
    bool has_src;
    pthread_mutex_t mu;
    atomic_bool dead;        /* deleted: callers must look it up again */
    uint64_t version;        /* see the invariants */
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
    atomic_int any;      /* cairn_ts_any: -1 unknown, 0 none, 1 some */
    uint64_t dropped_at; /* the visible version when a series last left
                            the table (a load at an older snapshot may
                            miss its last commits) */
};

void cairn_ts_options_init(cairn_ts_options *o)
{
    memset(o, 0, sizeof *o);
    o->chunk_size = 4096;
    o->duplicate_policy = CAIRN_TS_DUP_BLOCK;
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

static int key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    return c ? c : (al > bl) - (al < bl);
}

static bool name_eq(const void *a, size_t al, const void *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    if (c && n)
        memcpy(c, p, n);
    return c;
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

/* A series record, decoded (decode_record allocates lab, rules and src:
 * meta_free), or a view of a series' memory to encode (nothing owned). */
typedef struct ts_meta {
    uint64_t id;
    cairn_ts_options opt;
    cairn_ts_labels *lab;
    ts_rule_mem *rules;
    size_t nrules;
    uint8_t *src;
    size_t slen;
    bool has_src;
} ts_meta;

static void meta_free(ts_meta *m)
{
    cairn_ts_labels_free(m->lab);
    for (size_t i = 0; i < m->nrules; i++)
        free(m->rules[i].dst);
    free(m->rules);
    free(m->src);
    memset(m, 0, sizeof *m);
}

static ts_meta meta_of(const ts_series *se)
{
    ts_meta m = {se->id, se->opt, se->labels, se->rules, se->nrules,
                 se->src, se->slen, se->has_src};
    return m;
}

/* The value record of a series: header (type, flags), then the series
 * record (docs/format/ts.md). NULL: out of memory. */
static uint8_t *encode_record(const ts_meta *m, size_t *len)
{
    uint8_t *lb = NULL;
    size_t ll = 0;
    if (m->lab && m->lab->n && cairn_ts_labels_encode(m->lab, &lb, &ll) != 0)
        return NULL;
    size_t n = 2 + 27 + ll + 4;
    for (size_t i = 0; i < m->nrules; i++)
        n += 4 + m->rules[i].dlen + 17;
    n += 1 + 4 + (m->has_src ? m->slen : 0) + 16;
    uint8_t *b = calloc(1, n);
    if (!b) {
        free(lb);
        return NULL;
    }
    b[0] = REC_TYPE_TS;
    b[1] = 0;
    uint8_t *p = b + 2;
    p[0] = SERIES_VERSION;
    cairn_put_u64(p + 1, m->id);
    cairn_put_u64(p + 9, m->opt.retention_ms);
    cairn_put_u32(p + 17, m->opt.chunk_size);
    p[21] = (uint8_t)m->opt.duplicate_policy;
    p[22] = m->opt.uncompressed ? 1 : 2;
    cairn_put_u32(p + 23, (uint32_t)ll);
    if (ll)
        memcpy(p + 27, lb, ll);
    free(lb);
    p += 27 + ll;
    cairn_put_u32(p, (uint32_t)m->nrules);
    p += 4;
    for (size_t i = 0; i < m->nrules; i++) {
        const ts_rule_mem *r = &m->rules[i];
        cairn_put_u32(p, (uint32_t)r->dlen);
        if (r->dlen)
            memcpy(p + 4, r->dst, r->dlen);
        p += 4 + r->dlen;
        p[0] = (uint8_t)r->agg;
        cairn_put_u64(p + 1, (uint64_t)r->bucket);
        cairn_put_u64(p + 9, (uint64_t)r->align);
        p += 17;
    }
    p[0] = m->has_src ? 1 : 0;
    cairn_put_u32(p + 1, m->has_src ? (uint32_t)m->slen : 0);
    p += 5;
    if (m->has_src && m->slen) {
        memcpy(p, m->src, m->slen);
        p += m->slen;
    }
    cairn_put_u64(p, m->opt.ignore_max_time_ms);
    uint64_t bits;
    memcpy(&bits, &m->opt.ignore_max_val, 8);
    cairn_put_u64(p + 8, bits);
    *len = n;
    return b;
}

/* CAIRN_ENOTSUP when the value is not a series, CAIRN_ECORRUPT when it is
 * one but damaged. The labels, rules and source are decoded when want_all
 * (else m->lab, rules, src stay empty). */
static int decode_record(const uint8_t *b, size_t len, ts_meta *m,
                         bool want_all)
{
    memset(m, 0, sizeof *m);
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
    cairn_ts_options *o = &m->opt;
    cairn_ts_options_init(o);
    m->id = cairn_get_u64(p + 1);
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
    int rc = 0;
    if (ll && want_all)
        rc = cairn_ts_labels_decode(p + 27, ll, &m->lab);
    if (rc)
        return rc;
    size_t q = off + 27 + ll; /* the rules */
    uint32_t nr = cairn_get_u32(b + q);
    q += 4;
    if (nr > (len - q) / 21) {
        meta_free(m);
        return CAIRN_ECORRUPT;
    }
    if (nr && want_all) {
        m->rules = calloc(nr, sizeof *m->rules);
        if (!m->rules) {
            meta_free(m);
            return CAIRN_ENOMEM;
        }
    }
    for (uint32_t i = 0; i < nr; i++) {
        if (len - q < 4)
            goto corrupt;
        uint32_t dl = cairn_get_u32(b + q);
        if (dl > len - q - 4 || len - q - 4 - dl < 17)
            goto corrupt;
        const uint8_t *r = b + q + 4 + dl;
        int64_t bucket = (int64_t)cairn_get_u64(r + 1);
        if (r[0] == CAIRN_TS_AGG_NONE || r[0] >= CAIRN_TS_AGG__COUNT ||
            bucket <= 0)
            goto corrupt;
        if (want_all) {
            ts_rule_mem *rm = &m->rules[m->nrules];
            rm->dst = dup_bytes(b + q + 4, dl);
            if (!rm->dst) {
                meta_free(m);
                return CAIRN_ENOMEM;
            }
            m->nrules++;
            rm->dlen = dl;
            rm->agg = (cairn_ts_aggregator)r[0];
            rm->bucket = bucket;
            rm->align = (int64_t)cairn_get_u64(r + 9);
        }
        q += 4 + dl + 17;
    }
    if (q == len)
        return 0; /* written before sources and IGNORE existed */
    if (len - q < 5)
        goto corrupt;
    bool hs = b[q] == 1;
    uint32_t sl = cairn_get_u32(b + q + 1);
    if (b[q] > 1 || (!hs && sl) || sl > len - q - 5 ||
        len - q - 5 - sl != 16)
        goto corrupt;
    if (hs && want_all) {
        m->src = dup_bytes(b + q + 5, sl);
        if (!m->src) {
            meta_free(m);
            return CAIRN_ENOMEM;
        }
        m->slen = sl;
    }
    m->has_src = hs;
    q += 5 + sl;
    o->ignore_max_time_ms = cairn_get_u64(b + q);
    uint64_t bits = cairn_get_u64(b + q + 8);
    memcpy(&o->ignore_max_val, &bits, 8);
    return 0;
corrupt:
    meta_free(m);
    return CAIRN_ECORRUPT;
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
    /* Made once, then only read: the common case takes no lock. */
    cairn_ts_store *made = __atomic_load_n(&db->ts, __ATOMIC_ACQUIRE);
    if (made)
        return made;
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
                atomic_init(&s->any, -1);
            }
        }
        __atomic_store_n(&db->ts, s, __ATOMIC_RELEASE);
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
    for (size_t i = 0; i < se->nrules; i++)
        free(se->rules[i].dst);
    free(se->rules);
    free(se->src);
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


/* Under store.mu: take se out of the table (if it is there) onto the dead
 * list, marked dead. */
static void table_drop(cairn_db *db, cairn_ts_store *s, ts_series *se)
{
    if (atomic_load(&se->dead))
        return; /* on the dead list already */
    atomic_store(&se->dead, true);
    ts_series **pp = slot_of(s, se->name, se->nlen);
    if (*pp == se) {
        *pp = se->next;
        s->count--;
    }
    se->next = s->dead;
    s->dead = se;
    s->dropped_at = cairn_current_version(db);
}

/* A dead series' holder lets go of what it no longer needs (se->mu held;
 * nobody reads a dead series' points). */
static void series_shed(ts_series *se)
{
    free(se->open);
    se->open = NULL;
    se->nopen = se->capopen = 0;
    cairn_ts_enc_reset(&se->enc);
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

/* Call fn on each sealed chunk of series id that may hold points in
 * [from, to] (the one holding from, then each later one that starts at or
 * before to), in time order, through view (may be NULL). fn's non-zero
 * return stops the walk and is returned. */
typedef int (*chunk_fn)(void *arg, int64_t first, const uint8_t *c,
                        size_t cl);

static int for_chunks(cairn_db *db, cairn_txn *view, uint64_t id,
                      int64_t from, int64_t to, chunk_fn fn, void *arg)
{
    bool found = false;
    int64_t first = 0;
    int rc = chunk_at(db, view, id, from, &found, &first, NULL, NULL);
    uint8_t lo[17];
    chunk_key(lo, id, found ? first : INT64_MIN);
    cairn_iter *it = NULL;
    if (rc == 0)
        rc = series_iter(db, view, KEY_CHUNK, id, &it);
    if (rc == 0)
        cairn_iter_seek(it, lo, 17);
    for (; rc == 0 && cairn_iter_valid(it); cairn_iter_next(it)) {
        size_t kl = 0, cl = 0;
        const uint8_t *k = cairn_iter_key(it, &kl);
        const uint8_t *c = cairn_iter_value(it, &cl);
        if (kl != 17) {
            rc = CAIRN_ECORRUPT;
            break;
        }
        int64_t cf = (int64_t)(get_be64(k + 9) ^ 0x8000000000000000ULL);
        if (cf > to)
            break;
        rc = fn(arg, cf, c, cl);
    }
    if (rc == 0 && it)
        rc = cairn_iter_status(it);
    cairn_iter_free(it);
    return rc;
}

/* Load series name from the engine (through txn when given: its own
 * writes shown). */
static int series_load(cairn_db *db, cairn_txn *txn, const void *name,
                       size_t nlen, ts_series **out)
{
    size_t klen;
    uint8_t *k = data_key(name, nlen, &klen);
    if (!k)
        return CAIRN_ENOMEM;
    void *v = NULL;
    size_t vl = 0;
    int rc = txn ? cairn_txn_get(txn, k, klen, &v, &vl)
                 : cairn_get(db, k, klen, &v, &vl);
    free(k);
    if (rc)
        return rc;
    ts_series *se = calloc(1, sizeof *se);
    if (!se) {
        cairn_free(v);
        return CAIRN_ENOMEM;
    }
    pthread_mutex_init(&se->mu, NULL);
    ts_meta m;
    rc = decode_record(v, vl, &m, true);
    cairn_free(v);
    if (rc == 0) {
        se->id = m.id;
        se->opt = m.opt;
        se->labels = m.lab;
        se->rules = m.rules;
        se->nrules = m.nrules;
        se->src = m.src;
        se->slen = m.slen;
        se->has_src = m.has_src;
    }
    se->name = dup_bytes(name, nlen);
    if (rc == 0 && !se->name)
        rc = CAIRN_ENOMEM;
    if (rc) {
        series_free(se);
        return rc;
    }
    se->nlen = nlen;
    cairn_ts_enc_init(&se->enc, !se->opt.uncompressed);
    se->enc_valid = true;

    /* The newest sealed chunk's last timestamp. */
    bool found = false;
    int64_t first = 0;
    uint8_t *c = NULL;
    size_t cl = 0;
    rc = chunk_at(db, txn, se->id, INT64_MAX, &found, &first, &c, &cl);
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
        rc = series_iter(db, txn, KEY_LOG, se->id, &it);
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

/* A plain read's lock: the series named name, loaded on first use, with
 * its mu held (the caller holds no other series). */
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
            int rc = series_load(db, NULL, name, nlen, &se);
            if (rc) {
                pthread_mutex_unlock(&s->mu);
                return rc;
            }
            se->version = cairn_current_version(db);
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
        series_shed(se);
        pthread_mutex_unlock(&se->mu); /* deleted meanwhile: again */
    }
}

/* ---- the label index (below) ---- */

static void index_add(cairn_db *db, uint64_t id, const void *name,
                      size_t nlen, const cairn_ts_labels *lab);
static void index_remove(cairn_db *db, uint64_t id);

/* ---- transactions ---- */

typedef struct tx_item {
    ts_series *se;
    uint64_t h;  /* name_hash of its name when taken */
    bool dirty; /* its memory changed */
    bool fresh; /* loaded by this tx (perhaps from its own writes) */
} tx_item;

enum { ACT_IX_ADD, ACT_IX_REMOVE, ACT_DROP_ALL };

typedef struct tx_act {
    int kind;
    uint64_t id;
    uint8_t *name;
    size_t nlen;
    cairn_ts_labels *lab;
} tx_act;

typedef struct ts_tx {
    cairn_db *db;
    cairn_txn *t; /* NULL until an own tx begins its transaction */
    bool own;     /* the transaction is the call's */
    tx_item *items;
    size_t n, cap;
    uint32_t *hix; /* open addressing over items by name: index + 1 */
    size_t hcap;   /* a power of two > 2 n, or 0 */
    tx_act *acts; /* done after a commit */
    size_t nacts, capacts;
    bool waitable; /* the lock phase of a call that began holding none */
} ts_tx;

static void tx_free(ts_tx *tx)
{
    for (size_t i = 0; i < tx->nacts; i++) {
        free(tx->acts[i].name);
        cairn_ts_labels_free(tx->acts[i].lab);
    }
    free(tx->acts);
    free(tx->items);
    free(tx->hix);
    free(tx);
}

/* The end of the transaction (the engine's hook; rc 0: committed). */
static void tx_end(void *arg, int rc, uint64_t version)
{
    ts_tx *tx = arg;
    cairn_ts_store *s = tx->db->ts;
    /* What the commit changed beyond the series (the index, FLUSHALL),
     * before any series is let go. */
    for (size_t i = 0; rc == 0 && i < tx->nacts; i++) {
        tx_act *a = &tx->acts[i];
        if (a->kind == ACT_IX_ADD) {
            index_add(tx->db, a->id, a->name, a->nlen, a->lab);
        } else if (a->kind == ACT_IX_REMOVE) {
            index_remove(tx->db, a->id);
        } else {
            /* FLUSHALL: every series in memory goes, the index too. */
            pthread_mutex_lock(&s->mu);
            for (size_t j = 0; j < s->nslots; j++)
                while (s->slots[j])
                    table_drop(tx->db, s, s->slots[j]);
            s->ix_loaded = false;
            pthread_mutex_unlock(&s->mu);
        }
    }
    for (size_t i = tx->n; i-- > 0;) {
        tx_item *it = &tx->items[i];
        ts_series *se = it->se;
        if (rc == 0 && it->dirty)
            se->version = version;
        if (rc != 0 && (it->dirty || it->fresh) && !atomic_load(&se->dead)) {
            pthread_mutex_lock(&s->mu);
            table_drop(tx->db, s, se);
            pthread_mutex_unlock(&s->mu);
        }
        if (atomic_load(&se->dead))
            series_shed(se);
        pthread_mutex_unlock(&se->mu);
    }
    tx_free(tx);
}

static int tx_act_push(ts_tx *tx, int kind, uint64_t id, const void *name,
                       size_t nlen, const cairn_ts_labels *lab)
{
    if (tx->nacts == tx->capacts) {
        size_t cap = tx->capacts ? tx->capacts * 2 : 4;
        tx_act *a = realloc(tx->acts, cap * sizeof *a);
        if (!a)
            return CAIRN_ENOMEM;
        tx->acts = a;
        tx->capacts = cap;
    }
    tx_act a = {kind, id, NULL, nlen, NULL};
    if (name) {
        a.name = dup_bytes(name, nlen);
        if (!a.name)
            return CAIRN_ENOMEM;
    }
    if (lab && cairn_ts_labels_new(lab->v, lab->n, &a.lab) != 0) {
        free(a.name);
        return CAIRN_ENOMEM;
    }
    tx->acts[tx->nacts++] = a;
    return 0;
}

/* The tx of transaction txn (made and hooked on first use), or a new own
 * tx (txn NULL: its transaction begins at tx_txn). */
static int tx_get(cairn_db *db, cairn_txn *txn, ts_tx **out)
{
    if (!store_get(db))
        return CAIRN_ENOMEM;
    ts_tx *tx = txn ? cairn_txn_hook_arg(txn, tx_end) : NULL;
    if (!tx) {
        tx = calloc(1, sizeof *tx);
        if (!tx)
            return CAIRN_ENOMEM;
        tx->db = db;
        tx->t = txn;
        tx->own = txn == NULL;
        if (txn)
            cairn_txn_set_hook(txn, tx_end, tx);
    }
    *out = tx;
    return 0;
}

/* The transaction of an own tx begins (once its lock phase is over, so
 * that its snapshot sees every commit of the series it holds). */
static int tx_txn(ts_tx *tx)
{
    if (tx->t)
        return 0;
    int rc = cairn_txn_begin(tx->db, NULL, &tx->t);
    if (rc == 0)
        cairn_txn_set_hook(tx->t, tx_end, tx);
    return rc;
}

/* Errors that leave a command half-written into a txn of the caller's. */
static bool machinery_error(int rc)
{
    return rc == CAIRN_ECONFLICT || rc == CAIRN_EIO || rc == CAIRN_ENOMEM ||
           rc == CAIRN_ECORRUPT || rc == CAIRN_ENOSPC || rc == CAIRN_EBUSY ||
           rc == CAIRN_EREADONLY || rc == CAIRN_ECLOSED ||
           rc == CAIRN_EVERSION;
}

/* The end of a call: an own tx commits (rc 0, wrote) or aborts; a
 * caller's txn is poisoned when the call failed half-way. */
static int tx_finish(ts_tx *tx, int rc)
{
    if (rc == CAIRN_EBUSY)
        rc = CAIRN_ECONFLICT; /* a series another caller holds: retry */
    if (!tx->own) {
        if (machinery_error(rc))
            cairn_txn_poison(tx->t, rc);
        return rc;
    }
    if (!tx->t) {
        tx_end(tx, rc ? rc : 1, 0);
        return rc;
    }
    if (rc == 0)
        return cairn_txn_commit(tx->t, NULL); /* the hook ends tx */
    cairn_txn_abort(tx->t);
    return rc;
}

static void backoff(int attempt)
{
    struct timespec ts = {0, (long)(20000 + (attempt < 8 ? attempt : 8) *
                                                50000L)};
    nanosleep(&ts, NULL);
}

/* Run body in txn, or in own txs retried on conflict. */
typedef int (*tx_body)(ts_tx *tx, void *arg);

static int tx_run(cairn_db *db, cairn_txn *txn, tx_body body, void *arg)
{
    for (int attempt = 0;; attempt++) {
        ts_tx *tx = NULL;
        int rc = tx_get(db, txn, &tx);
        if (rc)
            return rc;
        tx->waitable = tx->n == 0;
        rc = body(tx, arg);
        rc = tx_finish(tx, rc);
        if (rc != CAIRN_ECONFLICT || txn || attempt >= MAX_RETRIES)
            return rc;
        backoff(attempt);
    }
}

static tx_item *tx_find(ts_tx *tx, const void *name, size_t nlen)
{
    if (!tx->hcap) {
        for (size_t i = 0; i < tx->n; i++)
            if (!atomic_load(&tx->items[i].se->dead) &&
                name_eq(tx->items[i].se->name, tx->items[i].se->nlen, name,
                        nlen))
                return &tx->items[i];
        return NULL;
    }
    uint64_t h = name_hash(name, nlen);
    for (size_t p = h & (tx->hcap - 1); tx->hix[p];
         p = (p + 1) & (tx->hcap - 1)) {
        tx_item *it = &tx->items[tx->hix[p] - 1];
        if (it->h == h && !atomic_load(&it->se->dead) &&
            name_eq(it->se->name, it->se->nlen, name, nlen))
            return it;
    }
    return NULL;
}

/* Index the last item (items past 16 are found by hash). */
static void tx_index_last(ts_tx *tx)
{
    if (tx->n <= 16 && !tx->hcap)
        return;
    if (tx->n * 2 >= tx->hcap) {
        size_t cap = tx->hcap ? tx->hcap * 2 : 64;
        uint32_t *h = calloc(cap, sizeof *h);
        if (!h) {
            free(tx->hix); /* linear scans instead */
            tx->hix = NULL;
            tx->hcap = 0;
            return;
        }
        free(tx->hix);
        tx->hix = h;
        tx->hcap = cap;
        for (size_t i = 0; i + 1 < tx->n; i++) {
            size_t p = tx->items[i].h & (cap - 1);
            while (h[p])
                p = (p + 1) & (cap - 1);
            h[p] = (uint32_t)(i + 1);
        }
    }
    size_t p = tx->items[tx->n - 1].h & (tx->hcap - 1);
    while (tx->hix[p])
        p = (p + 1) & (tx->hcap - 1);
    tx->hix[p] = (uint32_t)tx->n;
}

static tx_item *tx_item_of(ts_tx *tx, ts_series *se)
{
    for (size_t i = 0; i < tx->n; i++)
        if (tx->items[i].se == se)
            return &tx->items[i];
    return NULL;
}

static void tx_dirty(ts_tx *tx, ts_series *se)
{
    tx_item *it = tx_item_of(tx, se);
    if (it)
        it->dirty = true;
}

/* Take series name for tx: held already, or locked now (waiting only
 * while tx->waitable; else CAIRN_EBUSY when another holds it). Errors:
 * CAIRN_ENOTFOUND, CAIRN_ENOTSUP (not a series), CAIRN_ECONFLICT (the
 * series changed after the txn's snapshot). */
static int tx_lock(ts_tx *tx, const void *name, size_t nlen, ts_series **out)
{
    tx_item *held = tx_find(tx, name, nlen);
    if (held) {
        *out = held->se;
        return 0;
    }
    if (tx->n == tx->cap) {
        size_t cap = tx->cap ? tx->cap * 2 : 8;
        tx_item *ni = realloc(tx->items, cap * sizeof *ni);
        if (!ni)
            return CAIRN_ENOMEM;
        tx->items = ni;
        tx->cap = cap;
    }
    if (tx->t && tx->n == 0)
        (void)cairn_txn_renew(tx->t); /* a later snapshot, if still free */
    cairn_ts_store *s = tx->db->ts;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        ts_series **pp = slot_of(s, name, nlen);
        ts_series *se = *pp;
        bool fresh = false;
        if (!se) {
            int rc = series_load(tx->db, tx->t, name, nlen, &se);
            if (rc) {
                pthread_mutex_unlock(&s->mu);
                return rc;
            }
            uint64_t snap = tx->t ? cairn_txn_snapshot(tx->t) : 0;
            if (tx->t && s->dropped_at > snap) {
                pthread_mutex_unlock(&s->mu);
                series_free(se);
                return CAIRN_ECONFLICT;
            }
            se->version = tx->t ? snap : cairn_current_version(tx->db);
            se->next = NULL;
            *pp = se;
            if (++s->count > s->nslots * 2)
                grow(s);
            /* New: nobody else has it, so the try takes it (a try, never
             * a wait, under the table lock). */
            if (pthread_mutex_trylock(&se->mu) != 0) {
                *pp = se->next;
                s->count--;
                pthread_mutex_unlock(&s->mu);
                series_free(se);
                return CAIRN_EBUSY;
            }
            fresh = true;
            pthread_mutex_unlock(&s->mu);
        } else {
            pthread_mutex_unlock(&s->mu);
            if (tx->waitable || tx->n == 0)
                pthread_mutex_lock(&se->mu);
            else if (pthread_mutex_trylock(&se->mu) != 0)
                return CAIRN_EBUSY;
            if (atomic_load(&se->dead)) {
                series_shed(se);
                pthread_mutex_unlock(&se->mu);
                continue;
            }
            if (tx->t && se->version > cairn_txn_snapshot(tx->t) &&
                (tx->n > 0 || cairn_txn_renew(tx->t) != 0 ||
                 se->version > cairn_txn_snapshot(tx->t))) {
                pthread_mutex_unlock(&se->mu);
                return CAIRN_ECONFLICT;
            }
        }
        tx->items[tx->n++] = (tx_item){se, name_hash(se->name, se->nlen),
                                       false, fresh};
        tx_index_last(tx);
        *out = se;
        return 0;
    }
}

/* Let go of the series taken since mark (nothing written to them). */
static void tx_unlock_from(ts_tx *tx, size_t mark)
{
    if (tx->hcap && tx->n > mark) {
        /* The index forgets every item; items up to mark go back in. */
        free(tx->hix);
        tx->hix = NULL;
        tx->hcap = 0;
        size_t n = tx->n;
        for (tx->n = 1; tx->n <= mark; tx->n++)
            tx_index_last(tx);
        tx->n = n;
    }
    while (tx->n > mark) {
        tx_item *it = &tx->items[--tx->n];
        if (it->fresh) {
            pthread_mutex_lock(&tx->db->ts->mu);
            table_drop(tx->db, tx->db->ts, it->se);
            pthread_mutex_unlock(&tx->db->ts->mu);
        }
        if (atomic_load(&it->se->dead))
            series_shed(it->se);
        pthread_mutex_unlock(&it->se->mu);
    }
}

/* Write series se's record (its memory as it is now) into the txn. */
static int write_record(ts_tx *tx, ts_series *se)
{
    ts_meta m = meta_of(se);
    size_t rl = 0;
    uint8_t *rec = encode_record(&m, &rl);
    size_t dkl;
    uint8_t *dk = data_key(se->name, se->nlen, &dkl);
    int rc = rec && dk ? cairn_txn_put(tx->t, dk, dkl, rec, rl) : CAIRN_ENOMEM;
    free(rec);
    free(dk);
    if (rc == 0)
        tx_dirty(tx, se);
    return rc;
}

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
                         int64_t ts, double v, cairn_ts_dup_policy policy)
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
        rc = apply_policy(policy, pts[i].v, v, &pts[i].v);
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
/* A point to stage: policy < 0 is the series' own. */
typedef struct stage_in {
    int64_t ts;
    double v;
    int policy;
} stage_in;

/* The value of the newest point (se->has_points), through view. */
static int newest_value(cairn_db *db, cairn_txn *view, ts_series *se,
                        double *v)
{
    if (se->nopen) {
        *v = se->open[se->nopen - 1].v;
        return 0;
    }
    bool found = false;
    int64_t first = 0;
    uint8_t *c = NULL;
    size_t cl = 0;
    int rc = chunk_at(db, view, se->id, INT64_MAX, &found, &first, &c, &cl);
    if (rc == 0 && !found)
        rc = CAIRN_ECORRUPT;
    cairn_ts_point *p = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = cairn_ts_chunk_decode(c, cl, &p, &n);
    if (rc == 0 && n == 0)
        rc = CAIRN_ECORRUPT;
    if (rc == 0)
        *v = p[n - 1].v;
    free(p);
    free(c);
    return rc;
}

/* Write the open part's log afresh: one record at next_seq (none when the
 * open part is empty), the older records deleted. */
static int relog_open(ts_tx *tx, ts_series *se)
{
    uint8_t k[17];
    int rc = 0;
    for (uint64_t q = se->first_seq; rc == 0 && q < se->next_seq; q++) {
        log_key(k, se->id, q);
        rc = cairn_txn_delete(tx->t, k, 17);
    }
    se->first_seq = se->next_seq;
    if (rc || !se->nopen)
        return rc;
    uint8_t *v = malloc(4 + 16 * se->nopen);
    if (!v)
        return CAIRN_ENOMEM;
    cairn_put_u32(v, (uint32_t)se->nopen);
    for (size_t q = 0; q < se->nopen; q++) {
        uint64_t bits;
        memcpy(&bits, &se->open[q].v, 8);
        cairn_put_u64(v + 4 + 16 * q, (uint64_t)se->open[q].ts);
        cairn_put_u64(v + 12 + 16 * q, bits);
    }
    log_key(k, se->id, se->next_seq);
    rc = cairn_txn_put(tx->t, k, 17, v, 4 + 16 * se->nopen);
    free(v);
    if (rc == 0)
        se->next_seq++;
    return rc;
}

/* Stage the points in[0..n) into tx's transaction and the memory of se
 * (held by tx, marked dirty: a failure of the transaction drops it).
 * res[i]: 0, CAIRN_TS_IGNORED, or the point's own refusal (CAIRN_EEXIST,
 * CAIRN_EHISTORY). Returns 0, or an error that fails the call. */
static int series_stage(ts_tx *tx, ts_series *se, const stage_in *in,
                        size_t n, int *res)
{
    cairn_db *db = tx->db;
    cairn_txn *t = tx->t;
    tx_dirty(tx, se);
    cairn_ts_point *logp = malloc((n ? n : 1) * sizeof *logp);
    if (!logp)
        return CAIRN_ENOMEM;
    int rc = 0;
    size_t nlog = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const stage_in *p = &in[i];
        cairn_ts_dup_policy pol = p->policy < 0
                                      ? se->opt.duplicate_policy
                                      : (cairn_ts_dup_policy)p->policy;
        int r = 0;
        if (se->opt.duplicate_policy == CAIRN_TS_DUP_LAST && !se->has_src &&
            (se->opt.ignore_max_time_ms || se->opt.ignore_max_val > 0) &&
            se->nopen && p->ts >= se->newest &&
            (uint64_t)p->ts - (uint64_t)se->newest <=
                se->opt.ignore_max_time_ms &&
            fabs(p->v - se->open[se->nopen - 1].v) <=
                se->opt.ignore_max_val) {
            res[i] = CAIRN_TS_IGNORED;
            continue;
        }
        if (older_than_retention(se, p->ts)) {
            r = CAIRN_EHISTORY;
        } else if (se->has_sealed && p->ts <= se->sealed_last) {
            r = sealed_upsert(db, t, se, p->ts, p->v, pol);
            if (r != 0 && r != CAIRN_EEXIST) {
                rc = r;
                break;
            }
        } else {
            size_t j = open_lower(se, p->ts);
            double v = p->v;
            bool exists = j < se->nopen && se->open[j].ts == p->ts;
            if (exists)
                r = apply_policy(pol, se->open[j].v, p->v, &v);
            if (r == 0)
                r = open_set(se, p->ts, v);
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
        res[i] = r;
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
        if (rc == 0) {
            se->has_sealed = true;
            se->sealed_last = se->open[se->nopen - 1].ts;
            se->nopen = 0;
            cairn_ts_enc_reset(&se->enc);
            se->enc_valid = true;
            se->first_seq = se->next_seq;
        }
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
            log_key(k, se->id, se->next_seq);
            rc = cairn_txn_put(t, k, 17, v, 4 + 16 * nlog);
        }
        free(v);
        if (rc == 0)
            se->next_seq++; /* first_seq stays (or was next_seq) */
    }
    free(logp);
    return rc;
}

/* ---- point deletion ---- */

typedef struct chunk_copy {
    int64_t first;
    uint8_t *c;
    size_t cl;
} chunk_copy;

typedef struct chunk_copies {
    chunk_copy *v;
    size_t n, cap;
} chunk_copies;

static int copy_chunk(void *arg, int64_t first, const uint8_t *c, size_t cl)
{
    chunk_copies *cp = arg;
    if (cp->n == cp->cap) {
        size_t cap = cp->cap ? cp->cap * 2 : 8;
        chunk_copy *v = realloc(cp->v, cap * sizeof *v);
        if (!v)
            return CAIRN_ENOMEM;
        cp->v = v;
        cp->cap = cap;
    }
    uint8_t *b = dup_bytes(c, cl);
    if (!b)
        return CAIRN_ENOMEM;
    cp->v[cp->n++] = (chunk_copy){first, b, cl};
    return 0;
}

/* Delete se's points with from <= ts <= to (se held by tx). *gone: the
 * deleted timestamps (malloc'ed, may be NULL when *ngone is 0). */
static int series_del_points(ts_tx *tx, ts_series *se, int64_t from,
                             int64_t to, int64_t **gone, size_t *ngone)
{
    *gone = NULL;
    *ngone = 0;
    if (from > to || !se->has_points)
        return 0;
    tx_dirty(tx, se);
    int64_t *g = NULL;
    size_t ng = 0, capg = 0;
    int rc = 0;
#define GONE_PUSH(x)                                                      \
    do {                                                                  \
        if (ng == capg) {                                                 \
            size_t c_ = capg ? capg * 2 : 64;                             \
            int64_t *n_ = realloc(g, c_ * sizeof *n_);                    \
            if (!n_) {                                                    \
                rc = CAIRN_ENOMEM;                                        \
                break;                                                    \
            }                                                             \
            g = n_;                                                       \
            capg = c_;                                                    \
        }                                                                 \
        g[ng++] = (x);                                                    \
    } while (0)
    if (se->has_sealed && from <= se->sealed_last) {
        /* The chunks that may hold points in [from, to], copied first
         * (they change under the walk). */
        chunk_copies cp = {0};
        rc = for_chunks(tx->db, tx->t, se->id, from, to, copy_chunk, &cp);
        chunk_copy *cs = cp.v;
        size_t ncs = cp.n;
        for (size_t i = 0; rc == 0 && i < ncs; i++) {
            cairn_ts_point *p = NULL;
            size_t n = 0, m = 0, before = 0;
            rc = cairn_ts_chunk_decode(cs[i].c, cs[i].cl, &p, &n);
            for (size_t j = 0; rc == 0 && j < n; j++) {
                if (p[j].ts >= from && p[j].ts <= to)
                    GONE_PUSH(p[j].ts);
                else
                    p[m++] = p[j];
            }
            before = n;
            if (rc == 0 && m != before) {
                uint8_t k[17];
                chunk_key(k, se->id, cs[i].first);
                rc = cairn_txn_delete(tx->t, k, 17);
                if (rc == 0 && m) {
                    cairn_ts_enc e;
                    cairn_ts_enc_init(&e, !se->opt.uncompressed);
                    for (size_t j = 0; j < m && rc == 0; j++)
                        rc = cairn_ts_enc_add(&e, p[j].ts, p[j].v);
                    uint8_t *b = NULL;
                    size_t bl = 0;
                    if (rc == 0)
                        rc = cairn_ts_enc_bytes(&e, true, SEAL_ZSTD_LEVEL, &b,
                                                &bl);
                    cairn_ts_enc_free(&e);
                    chunk_key(k, se->id, p[0].ts);
                    if (rc == 0)
                        rc = cairn_txn_put(tx->t, k, 17, b, bl);
                    free(b);
                }
            }
            free(p);
        }
        for (size_t i = 0; i < cp.n; i++)
            free(cs[i].c);
        free(cs);
    }
    /* The open part. */
    size_t m = 0, before = se->nopen;
    for (size_t j = 0; rc == 0 && j < se->nopen; j++) {
        if (se->open[j].ts >= from && se->open[j].ts <= to)
            GONE_PUSH(se->open[j].ts);
        else
            se->open[m++] = se->open[j];
    }
#undef GONE_PUSH
    if (rc == 0 && m != before) {
        se->nopen = m;
        se->enc_valid = false;
        rc = relog_open(tx, se);
    }
    /* What is newest now. */
    if (rc == 0 && ng) {
        bool found = false;
        int64_t first = 0;
        uint8_t *c = NULL;
        size_t cl = 0;
        rc = chunk_at(tx->db, tx->t, se->id, INT64_MAX, &found, &first, &c,
                      &cl);
        se->has_sealed = false;
        if (rc == 0 && found) {
            int64_t last;
            rc = cairn_ts_chunk_info(c, cl, NULL, NULL, NULL, &last);
            if (rc == 0) {
                se->has_sealed = true;
                se->sealed_last = last;
            }
        }
        free(c);
        se->has_points = se->nopen || se->has_sealed;
        se->newest = se->nopen ? se->open[se->nopen - 1].ts
                               : se->has_sealed ? se->sealed_last : 0;
    }
    if (rc) {
        free(g);
        return rc;
    }
    *gone = g;
    *ngone = ng;
    return 0;
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

typedef struct points_acc {
    int64_t from, to;
    cairn_ts_point *out;
    size_t n, cap;
} points_acc;

/* A chunk's points within [from, to], appended to acc. */
static int push_chunk(void *arg, int64_t first, const uint8_t *c, size_t cl)
{
    (void)first;
    points_acc *acc = arg;
    cairn_ts_point *cp = NULL;
    size_t cn = 0;
    int rc = cairn_ts_chunk_decode(c, cl, &cp, &cn);
    for (size_t i = 0; rc == 0 && i < cn; i++)
        if (cp[i].ts >= acc->from && cp[i].ts <= acc->to)
            rc = out_push(&acc->out, &acc->n, &acc->cap, cp[i]);
    free(cp);
    return rc;
}

/* The points in [from, to] of a held series, through view (may be NULL). */
static int series_points(cairn_db *db, cairn_txn *view, ts_series *se,
                         int64_t from, int64_t to, cairn_ts_point **pts,
                         size_t *n)
{
    int rc = 0;
    cairn_ts_point *out = NULL;
    size_t cnt = 0, cap = 0;
    if (se->has_sealed && from <= to && from <= se->sealed_last) {
        points_acc acc = {from, to, NULL, 0, 0};
        rc = for_chunks(db, view, se->id, from, to, push_chunk, &acc);
        out = acc.out;
        cnt = acc.n;
        cap = acc.cap;
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
static int series_neighbour(cairn_db *db, cairn_txn *view, ts_series *se,
                            int64_t ts, int dir, cairn_ts_point *out)
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
        int rc = series_iter(db, view, KEY_CHUNK, se->id, &it);
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
    cairn_txn *view;
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
    return series_neighbour(s->db, s->view, s->se, ts, -1, p);
}

static int src_after(void *ctx, int64_t ts, cairn_ts_point *p)
{
    series_src *s = ctx;
    return series_neighbour(s->db, s->view, s->se, ts, 1, p);
}

/* Run q over a held series (through view), with extra (may be NULL: the
 * LATEST bucket of a rule's destination) as one more point after the
 * series' own. */
static int series_query(cairn_db *db, cairn_txn *view, ts_series *se,
                        const cairn_ts_query *q, const cairn_ts_point *extra,
                        cairn_ts_point **pts, size_t *n)
{
    *pts = NULL;
    *n = 0;
    cairn_ts_query qq = *q;
    qq.from = retained_from(se, qq.from);
    cairn_ts_point *raw = NULL;
    size_t nraw = 0;
    int rc = 0;
    if (qq.from <= qq.to)
        rc = series_points(db, view, se, qq.from, qq.to, &raw, &nraw);
    if (rc == 0 && extra && extra->ts >= qq.from && extra->ts <= qq.to &&
        (!nraw || raw[nraw - 1].ts < extra->ts)) {
        size_t cap = nraw;
        rc = out_push(&raw, &nraw, &cap, *extra);
    }
    if (rc == 0) {
        series_src ss = {db, view, se, raw, nraw, false};
        cairn_ts_source src = {src_next, src_before, src_after, &ss};
        rc = cairn_ts_query_run(&qq, &src, pts, n);
    }
    free(raw);
    return rc;
}

/* ---- rules ---- */

typedef __int128 i128;

/* The start of the bucket holding t (saturated to int64). */
static int64_t bucket_start(int64_t t, int64_t bucket, int64_t align)
{
    i128 m = ((i128)t - align) % bucket;
    if (m < 0)
        m += bucket;
    i128 s = (i128)t - m;
    return s < (i128)INT64_MIN ? INT64_MIN : (int64_t)s;
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int rules_update(ts_tx *tx, ts_series *se, bool old_has,
                        int64_t old_newest, const int64_t *ts, size_t nts,
                        int depth);

/* The aggregate of rule r over se's bucket [b, b + bucket): *found false
 * when the bucket holds no point. */
static int rule_bucket(ts_tx *tx, ts_series *se, const ts_rule_mem *r,
                       int64_t b, bool *found, double *v)
{
    cairn_ts_query q = {0};
    q.from = b;
    q.to = b > INT64_MAX - (r->bucket - 1) ? INT64_MAX : b + (r->bucket - 1);
    q.agg = r->agg;
    q.bucket = r->bucket;
    q.align_kind = CAIRN_TS_ALIGN_VALUE;
    q.align = r->align;
    cairn_ts_point *p = NULL;
    size_t n = 0;
    int rc = series_query(tx->db, tx->t, se, &q, NULL, &p, &n);
    *found = rc == 0 && n > 0;
    if (*found)
        *v = p[0].v;
    free(p);
    return rc;
}

/* se (held by tx) changed: its points at ts[0..nts) were written or
 * deleted, and its newest point was old_newest (old_has) before. Bring
 * every rule's destination up to date (see the invariants), and theirs. */
static int rules_update(ts_tx *tx, ts_series *se, bool old_has,
                        int64_t old_newest, const int64_t *ts, size_t nts,
                        int depth)
{
    if (!se->nrules || (!nts && !old_has))
        return 0;
    if (depth > 64)
        return CAIRN_ECORRUPT; /* rules never chain this deep */
    int rc = 0;
    for (size_t ri = 0; rc == 0 && ri < se->nrules; ri++) {
        ts_rule_mem r = se->rules[ri];
        ts_series *d = NULL;
        rc = tx_lock(tx, r.dst, r.dlen, &d);
        if (rc == CAIRN_ENOTFOUND || rc == CAIRN_ENOTSUP) {
            rc = 0; /* a destination deleted behind this layer's back */
            continue;
        }
        if (rc)
            break;
        bool open_has = se->has_points;
        int64_t open_b = open_has ? bucket_start(se->newest, r.bucket, r.align)
                                  : INT64_MIN;
        int64_t *bs = malloc((nts + 1) * sizeof *bs);
        if (!bs) {
            rc = CAIRN_ENOMEM;
            break;
        }
        size_t nb = 0;
        for (size_t i = 0; i < nts; i++)
            bs[nb++] = bucket_start(ts[i], r.bucket, r.align);
        if (old_has) {
            int64_t ob = bucket_start(old_newest, r.bucket, r.align);
            if (!open_has || ob < open_b)
                bs[nb++] = ob; /* the bucket that was open closed */
        }
        qsort(bs, nb, sizeof *bs, i64_cmp);
        size_t u = 0;
        for (size_t i = 0; i < nb; i++)
            if (!u || bs[i] != bs[u - 1])
                bs[u++] = bs[i];
        nb = u;
        /* Closed buckets: their aggregate now; the open one (and any
         * newer, emptied by a deletion) have no point in the destination. */
        stage_in *up = malloc((nb ? nb : 1) * sizeof *up);
        int *ures = malloc((nb ? nb : 1) * sizeof *ures);
        int64_t *upts = malloc((nb ? nb : 1) * sizeof *upts);
        size_t nup = 0;
        if (!up || !ures || !upts)
            rc = CAIRN_ENOMEM;
        for (size_t i = 0; rc == 0 && i < nb; i++) {
            bool found = false;
            double v = 0;
            if (open_has && bs[i] < open_b)
                rc = rule_bucket(tx, se, &r, bs[i], &found, &v);
            if (rc)
                break;
            if (found) {
                up[nup] = (stage_in){bs[i], v, CAIRN_TS_DUP_LAST};
                upts[nup++] = bs[i];
            } else if (d->has_points && bs[i] <= d->newest) {
                bool dh = d->has_points;
                int64_t dn = d->newest;
                int64_t *g = NULL;
                size_t ng = 0;
                rc = series_del_points(tx, d, bs[i], bs[i], &g, &ng);
                if (rc == 0 && ng)
                    rc = rules_update(tx, d, dh, dn, g, ng, depth + 1);
                free(g);
            }
        }
        if (rc == 0 && nup) {
            bool dh = d->has_points;
            int64_t dn = d->newest;
            rc = series_stage(tx, d, up, nup, ures);
            size_t m = 0;
            for (size_t i = 0; rc == 0 && i < nup; i++)
                if (ures[i] == 0)
                    upts[m++] = upts[i];
            if (rc == 0)
                rc = rules_update(tx, d, dh, dn, upts, m, depth + 1);
        }
        free(up);
        free(ures);
        free(upts);
        free(bs);
    }
    return rc;
}

/* Take every series that se's rules feed, and theirs (tx->waitable off:
 * only tries). CAIRN_EBUSY: one is held by another caller. */
static int lock_closure(ts_tx *tx, size_t from, const uint8_t **busy,
                        size_t *busylen)
{
    for (size_t i = from; i < tx->n; i++) {
        ts_series *se = tx->items[i].se;
        for (size_t r = 0; r < se->nrules; r++) {
            ts_series *d = NULL;
            int rc = tx_lock(tx, se->rules[r].dst, se->rules[r].dlen, &d);
            if (rc == CAIRN_ENOTFOUND || rc == CAIRN_ENOTSUP)
                continue;
            if (rc == CAIRN_EBUSY) {
                *busy = se->rules[r].dst;
                *busylen = se->rules[r].dlen;
            }
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* ---- locking several series ---- */

typedef struct name_ref {
    const uint8_t *p;
    size_t len;
} name_ref;

static int name_ref_cmp(const void *a, const void *b)
{
    const name_ref *x = a, *y = b;
    return key_cmp(x->p, x->len, y->p, y->len);
}

/* Take the named series in key order (waiting while tx->waitable).
 * errs[i] (may be NULL) receives each name's CAIRN_ENOTFOUND /
 * CAIRN_ENOTSUP, which stop nothing; other errors are returned. names is
 * sorted in place and may hold duplicates. */
static int lock_set(ts_tx *tx, name_ref *names, size_t n, int *errs)
{
    qsort(names, n, sizeof *names, name_ref_cmp);
    for (size_t i = 0; i < n; i++) {
        ts_series *se = NULL;
        int rc = tx_lock(tx, names[i].p, names[i].len, &se);
        if (errs)
            errs[i] = rc;
        if (rc && rc != CAIRN_ENOTFOUND && rc != CAIRN_ENOTSUP)
            return rc;
    }
    return 0;
}

/* The series related to se by rules (its source, its destinations), as
 * copies in one array (free each p, then the array). */
static int related_names(const ts_series *se, name_ref **out, size_t *n)
{
    size_t m = se->nrules + (se->has_src ? 1 : 0);
    name_ref *r = calloc(m + 1, sizeof *r);
    if (!r)
        return CAIRN_ENOMEM;
    size_t k = 0;
    int rc = 0;
    if (se->has_src) {
        r[k].p = dup_bytes(se->src, se->slen);
        r[k].len = se->slen;
        rc = r[k++].p ? 0 : CAIRN_ENOMEM;
    }
    for (size_t i = 0; rc == 0 && i < se->nrules; i++) {
        r[k].p = dup_bytes(se->rules[i].dst, se->rules[i].dlen);
        r[k].len = se->rules[i].dlen;
        rc = r[k++].p ? 0 : CAIRN_ENOMEM;
    }
    if (rc) {
        for (size_t i = 0; i < k; i++)
            free((void *)r[i].p);
        free(r);
        return rc;
    }
    *out = r;
    *n = k;
    return 0;
}

static void names_free(name_ref *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++)
        free((void *)r[i].p);
    free(r);
}

/* Take series key and every series related to it by rules (keys[0..nk)
 * more too, e.g. a rule's other end): in key order when tx may wait, else
 * by trying. *se: key's series. */
static int lock_with_related(ts_tx *tx, const void *key, size_t klen,
                             const name_ref *more, size_t nmore,
                             ts_series **se_out)
{
    for (int round = 0;; round++) {
        size_t mark = tx->n;
        ts_series *se = NULL;
        int rc = tx_lock(tx, key, klen, &se);
        if (rc)
            return rc;
        name_ref *rel = NULL;
        size_t nrel = 0;
        rc = related_names(se, &rel, &nrel);
        if (rc)
            return rc;
        name_ref *all = calloc(nrel + nmore + 1, sizeof *all);
        if (!all) {
            names_free(rel, nrel);
            return CAIRN_ENOMEM;
        }
        memcpy(all, rel, nrel * sizeof *all);
        if (nmore)
            memcpy(all + nrel, more, nmore * sizeof *all);
        all[nrel + nmore] = (name_ref){key, klen};
        size_t nall = nrel + nmore + 1;
        bool again = false;
        if (nall > 1 && tx->waitable && round < 8) {
            /* Let go, then take them all in key order. */
            tx_unlock_from(tx, mark);
            rc = lock_set(tx, all, nall, NULL);
            if (rc == 0) {
                tx_item *it = tx_find(tx, key, klen);
                name_ref *rel2 = NULL;
                size_t nrel2 = 0;
                if (!it) {
                    rc = CAIRN_ENOTFOUND;
                } else {
                    se = it->se;
                    rc = related_names(se, &rel2, &nrel2);
                }
                if (rc == 0) {
                    again = nrel2 != nrel;
                    for (size_t i = 0; !again && i < nrel; i++)
                        again = !name_eq(rel[i].p, rel[i].len, rel2[i].p,
                                         rel2[i].len);
                }
                names_free(rel2, nrel2);
                if (again)
                    tx_unlock_from(tx, mark);
            }
        } else {
            for (size_t i = 0; rc == 0 && i < nall; i++) {
                ts_series *x = NULL;
                rc = tx_lock(tx, all[i].p, all[i].len, &x);
                if (rc == CAIRN_ENOTFOUND || rc == CAIRN_ENOTSUP)
                    rc = 0;
            }
            if (rc == 0) {
                tx_item *it = tx_find(tx, key, klen);
                rc = it ? 0 : CAIRN_ENOTFOUND;
                if (it)
                    se = it->se;
            }
        }
        names_free(rel, nrel);
        free(all);
        if (rc)
            return rc;
        if (!again) {
            tx->waitable = false;
            *se_out = se;
            return 0;
        }
    }
}

/* ---- create, delete ---- */

static int check_opts(const cairn_ts_options *o)
{
    if (o->chunk_size < 64 || o->chunk_size > (1u << 20) ||
        o->duplicate_policy > CAIRN_TS_DUP_SUM || (!o->labels && o->nlabels) ||
        isnan(o->ignore_max_val) || o->ignore_max_val < 0)
        return CAIRN_EINVAL;
    return 0;
}

/* Create series key in tx's transaction. */
static int create_in(ts_tx *tx, const void *key, size_t klen,
                     const cairn_ts_options *opts)
{
    cairn_ts_options o;
    if (opts)
        o = *opts;
    else
        cairn_ts_options_init(&o);
    int rc = check_opts(&o);
    if (rc)
        return rc;
    cairn_ts_labels *lab = NULL;
    rc = cairn_ts_labels_new(o.labels, o.nlabels, &lab);
    if (rc)
        return rc;
    rc = tx_txn(tx);
    size_t dkl = 0;
    uint8_t *dk = rc ? NULL : data_key(key, klen, &dkl);
    if (rc == 0 && !dk)
        rc = CAIRN_ENOMEM;
    void *v = NULL;
    size_t vl = 0;
    if (rc == 0) {
        rc = cairn_txn_get(tx->t, dk, dkl, &v, &vl);
        if (rc == 0) {
            cairn_free(v);
            rc = CAIRN_EEXIST;
        } else if (rc == CAIRN_ENOTFOUND) {
            rc = 0;
        }
    }
    /* The next id: a counter every create writes (two creates conflict
     * on it, and the loser retries). */
    static const uint8_t nk[1] = {KEY_NEXT_ID};
    uint64_t id = 1;
    if (rc == 0) {
        rc = cairn_txn_get(tx->t, nk, 1, &v, &vl);
        if (rc == 0) {
            if (vl == 8)
                id = cairn_get_u64(v);
            else
                rc = CAIRN_ECORRUPT;
            cairn_free(v);
        } else if (rc == CAIRN_ENOTFOUND) {
            rc = 0;
        }
    }
    uint8_t idv[8];
    cairn_put_u64(idv, id + 1);
    atomic_store(&tx->db->ts->any, 1);
    ts_meta m = {id, o, lab, NULL, 0, NULL, 0, false};
    size_t rl = 0;
    uint8_t *rec = rc ? NULL : encode_record(&m, &rl);
    if (rc == 0 && !rec)
        rc = CAIRN_ENOMEM;
    if (rc == 0)
        rc = cairn_txn_put(tx->t, nk, 1, idv, 8);
    if (rc == 0)
        rc = cairn_txn_put(tx->t, dk, dkl, rec, rl);
    uint8_t rk[9];
    rk[0] = KEY_REGISTRY;
    put_be64(rk + 1, id);
    if (rc == 0)
        rc = cairn_txn_put(tx->t, rk, 9, key, klen);
    free(rec);
    free(dk);
    if (rc == 0) {
        /* A table entry for the name is stale (a key deleted behind this
         * layer's back) or another caller's that this commit will
         * conflict with: either way, it goes. */
        cairn_ts_store *s = tx->db->ts;
        pthread_mutex_lock(&s->mu);
        ts_series *old = *slot_of(s, key, klen);
        if (old)
            table_drop(tx->db, s, old);
        pthread_mutex_unlock(&s->mu);
        rc = tx_act_push(tx, ACT_IX_ADD, id, key, klen, lab);
    }
    cairn_ts_labels_free(lab);
    return rc;
}

typedef struct key_args {
    const void *key;
    size_t klen;
    const void *key2;
    size_t klen2;
    const cairn_ts_options *opts;
    const cairn_ts_alter_opts *alter;
    char *err;
    size_t errlen;
} key_args;

static int create_body(ts_tx *tx, void *arg)
{
    key_args *a = arg;
    return create_in(tx, a->key, a->klen, a->opts);
}

int cairn_ts_create_ex(cairn_db *db, cairn_txn *txn, const void *key,
                       size_t klen, const cairn_ts_options *opts)
{
    if (!db || (!key && klen))
        return CAIRN_EINVAL;
    key_args a = {.key = key, .klen = klen, .opts = opts};
    return tx_run(db, txn, create_body, &a);
}

int cairn_ts_create(cairn_db *db, const void *key, size_t klen,
                    const cairn_ts_options *opts)
{
    return cairn_ts_create_ex(db, NULL, key, klen, opts);
}

/* Delete every key of one kind of series id (within tx). */
static int delete_kind(ts_tx *tx, uint8_t kind, uint64_t id)
{
    cairn_iter *it = NULL;
    int rc = series_iter(tx->db, tx->t, kind, id, &it);
    for (cairn_iter_first(it); rc == 0 && cairn_iter_valid(it);
         cairn_iter_next(it)) {
        size_t kl = 0;
        const void *k = cairn_iter_key(it, &kl);
        rc = cairn_txn_delete(tx->t, k, kl);
    }
    if (rc == 0)
        rc = cairn_iter_status(it);
    cairn_iter_free(it);
    return rc;
}

/* Remove the rule src -> dst from src's memory (and say if it was there). */
static bool rule_remove(ts_series *src, const void *dst, size_t dlen)
{
    for (size_t i = 0; i < src->nrules; i++)
        if (name_eq(src->rules[i].dst, src->rules[i].dlen, dst, dlen)) {
            free(src->rules[i].dst);
            memmove(src->rules + i, src->rules + i + 1,
                    (src->nrules - i - 1) * sizeof *src->rules);
            src->nrules--;
            return true;
        }
    return false;
}

static void src_clear(ts_series *d)
{
    free(d->src);
    d->src = NULL;
    d->slen = 0;
    d->has_src = false;
}

/* Delete series se (held, with its related series) in tx. */
static int delete_in(ts_tx *tx, ts_series *se)
{
    int rc = tx_txn(tx);
    if (rc)
        return rc;
    if (se->has_src) {
        tx_item *s = tx_find(tx, se->src, se->slen);
        if (s && rule_remove(s->se, se->name, se->nlen))
            rc = write_record(tx, s->se);
    }
    for (size_t i = 0; rc == 0 && i < se->nrules; i++) {
        tx_item *d = tx_find(tx, se->rules[i].dst, se->rules[i].dlen);
        if (d && d->se->has_src &&
            name_eq(d->se->src, d->se->slen, se->name, se->nlen)) {
            src_clear(d->se);
            rc = write_record(tx, d->se);
        }
    }
    size_t dkl;
    uint8_t *dk = rc ? NULL : data_key(se->name, se->nlen, &dkl);
    if (rc == 0 && !dk)
        rc = CAIRN_ENOMEM;
    if (rc == 0)
        rc = cairn_txn_delete(tx->t, dk, dkl);
    free(dk);
    uint8_t rk[9];
    rk[0] = KEY_REGISTRY;
    put_be64(rk + 1, se->id);
    if (rc == 0)
        rc = cairn_txn_delete(tx->t, rk, 9);
    if (rc == 0)
        rc = delete_kind(tx, KEY_CHUNK, se->id);
    if (rc == 0)
        rc = delete_kind(tx, KEY_LOG, se->id);
    if (rc == 0)
        rc = tx_act_push(tx, ACT_IX_REMOVE, se->id, NULL, 0, NULL);
    if (rc == 0) {
        tx_dirty(tx, se);
        pthread_mutex_lock(&tx->db->ts->mu);
        table_drop(tx->db, tx->db->ts, se);
        pthread_mutex_unlock(&tx->db->ts->mu);
    }
    return rc;
}

static int delete_body(ts_tx *tx, void *arg)
{
    key_args *a = arg;
    ts_series *se = NULL;
    int rc = lock_with_related(tx, a->key, a->klen, NULL, 0, &se);
    return rc ? rc : delete_in(tx, se);
}

int cairn_ts_delete_ex(cairn_db *db, cairn_txn *txn, const void *key,
                       size_t klen)
{
    if (!db || (!key && klen))
        return CAIRN_EINVAL;
    key_args a = {.key = key, .klen = klen};
    return tx_run(db, txn, delete_body, &a);
}

int cairn_ts_delete(cairn_db *db, const void *key, size_t klen)
{
    return cairn_ts_delete_ex(db, NULL, key, klen);
}

/* ---- adding points ---- */

typedef struct add_args {
    const cairn_ts_write_opts *o;
    const cairn_ts_sample *smp;
    size_t n;
    int *res;
} add_args;

typedef struct add_group {
    const void *key;
    size_t klen;
    size_t first, n; /* its samples: order[first .. first + n) */
} add_group;

/* qsort has no context argument: the samples being sorted (one sort at a
 * time per thread). */
static _Thread_local const cairn_ts_sample *sort_smp;

static int smp_idx_cmp(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const cairn_ts_sample *x = &sort_smp[i], *y = &sort_smp[j];
    int c = key_cmp(x->key, x->klen, y->key, y->klen);
    return c ? c : (i > j) - (i < j);
}

/* Stage a group's samples into its series and feed the series' rules. */
static int add_group_stage(ts_tx *tx, ts_series *se, const add_args *a,
                           const size_t *idx, size_t n)
{
    stage_in *in = malloc((n ? n : 1) * sizeof *in);
    int *r = malloc((n ? n : 1) * sizeof *r);
    int64_t *acc = malloc((n ? n : 1) * sizeof *acc);
    int rc = in && r && acc ? 0 : CAIRN_ENOMEM;
    int pol = a->o && a->o->has_on_duplicate ? (int)a->o->on_duplicate : -1;
    for (size_t i = 0; rc == 0 && i < n; i++)
        in[i] = (stage_in){a->smp[idx[i]].ts, a->smp[idx[i]].v, pol};
    bool old_has = se->has_points;
    int64_t old_newest = se->newest;
    if (rc == 0)
        rc = series_stage(tx, se, in, n, r);
    size_t nacc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        a->res[idx[i]] = r[i];
        if (r[i] == 0)
            acc[nacc++] = in[i].ts;
    }
    if (rc == 0)
        rc = rules_update(tx, se, old_has, old_newest, acc, nacc, 0);
    free(in);
    free(r);
    free(acc);
    return rc;
}

static int add_body(ts_tx *tx, void *arg)
{
    add_args *a = arg;
    size_t n = a->n;
    for (size_t i = 0; i < n; i++)
        a->res[i] = 0;
    /* Group the samples by series: their indexes sorted by key, then by
     * position (so each group keeps the samples' order). */
    size_t *order = malloc(n * sizeof *order);
    add_group *g = calloc(n, sizeof *g);
    name_ref *names = calloc(n, sizeof *names);
    int rc = order && g && names ? 0 : CAIRN_ENOMEM;
    size_t ng = 0;
    if (rc == 0) {
        for (size_t i = 0; i < n; i++)
            order[i] = i;
        sort_smp = a->smp;
        qsort(order, n, sizeof *order, smp_idx_cmp);
        sort_smp = NULL;
        for (size_t i = 0; i < n; i++) {
            const cairn_ts_sample *x = &a->smp[order[i]];
            if (ng == 0 || key_cmp(x->key, x->klen, g[ng - 1].key,
                                   g[ng - 1].klen) != 0)
                g[ng++] = (add_group){x->key, x->klen, i, 0};
            g[ng - 1].n++;
        }
    }
    /* Take the series in key order (and what their rules feed: when one
     * of those is busy, let go and take everything in key order). */
    name_ref *extra = NULL;
    size_t nextra = 0;
    size_t mark = tx->n;
    for (int round = 0; rc == 0; round++) {
        name_ref *all = realloc(names, (ng + nextra) * sizeof *all + 1);
        if (!all) {
            rc = CAIRN_ENOMEM;
            break;
        }
        names = all;
        for (size_t k = 0; k < ng; k++)
            names[k] = (name_ref){g[k].key, g[k].klen};
        for (size_t k = 0; k < nextra; k++)
            names[ng + k] = extra[k];
        rc = lock_set(tx, names, ng + nextra, NULL);
        if (rc)
            break;
        bool waitable = tx->waitable;
        tx->waitable = false;
        const uint8_t *busy = NULL;
        size_t busylen = 0;
        rc = lock_closure(tx, mark, &busy, &busylen);
        if (rc == CAIRN_EBUSY && waitable && round < 16) {
            name_ref *ne = realloc(extra, (nextra + 1) * sizeof *ne);
            uint8_t *cp = dup_bytes(busy, busylen);
            if (!ne || !cp) {
                free(cp);
                if (ne)
                    extra = ne;
                rc = CAIRN_ENOMEM;
                break;
            }
            extra = ne;
            extra[nextra++] = (name_ref){cp, busylen};
            tx_unlock_from(tx, mark);
            tx->waitable = true;
            rc = 0;
            continue;
        }
        break;
    }
    tx->waitable = false;
    if (rc == 0)
        rc = tx_txn(tx);
    for (size_t k = 0; rc == 0 && k < ng; k++) {
        ts_series *se = NULL;
        tx_item *it = tx_find(tx, g[k].key, g[k].klen);
        int r = 0;
        if (it) {
            se = it->se;
        } else {
            r = tx_lock(tx, g[k].key, g[k].klen, &se);
            if (r == CAIRN_ENOTFOUND && a->o && a->o->create) {
                r = create_in(tx, g[k].key, g[k].klen, a->o->create);
                if (r == 0)
                    r = tx_lock(tx, g[k].key, g[k].klen, &se);
            }
        }
        if (r == CAIRN_ENOTFOUND || r == CAIRN_ENOTSUP || r == CAIRN_EINVAL) {
            for (size_t q = 0; q < g[k].n; q++)
                a->res[order[g[k].first + q]] = r;
            continue;
        }
        if (r) {
            rc = r;
            break;
        }
        rc = add_group_stage(tx, se, a, order + g[k].first, g[k].n);
    }
    if (rc && !tx->own) {
        for (size_t i = 0; i < n; i++)
            if (a->res[i] == 0 || a->res[i] == CAIRN_TS_IGNORED)
                a->res[i] = rc;
    }
    for (size_t k = 0; k < nextra; k++)
        free((void *)extra[k].p);
    free(extra);
    free(order);
    free(g);
    free(names);
    return rc;
}

int cairn_ts_add_many_ex(cairn_db *db, const cairn_ts_write_opts *o,
                         const cairn_ts_sample *samples, size_t n,
                         int *results)
{
    if (!db || (!samples && n))
        return CAIRN_EINVAL;
    if (n == 0)
        return 0;
    int *res = results ? results : malloc(n * sizeof *res);
    if (!res)
        return CAIRN_ENOMEM;
    add_args a = {o, samples, n, res};
    int rc = tx_run(db, o ? o->txn : NULL, add_body, &a);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            if (res[i] == 0 || res[i] == CAIRN_TS_IGNORED)
                res[i] = rc;
    }
    if (rc == 0) {
        /* The first error that is not a point's own refusal. */
        for (size_t i = 0; i < n && !rc; i++)
            if (res[i] < 0 && res[i] != CAIRN_ENOTFOUND &&
                res[i] != CAIRN_ENOTSUP && res[i] != CAIRN_EEXIST &&
                res[i] != CAIRN_EHISTORY && res[i] != CAIRN_EINVAL)
                rc = res[i];
    }
    if (!results)
        free(res);
    return rc;
}

int cairn_ts_add_many(cairn_db *db, const cairn_ts_sample *samples, size_t n,
                      int *results)
{
    return cairn_ts_add_many_ex(db, NULL, samples, n, results);
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

/* ---- TS.INCRBY ---- */

typedef struct incr_args {
    const cairn_ts_write_opts *o;
    const void *key;
    size_t klen;
    double by;
    bool has_ts;
    int64_t ts;
    cairn_ts_point *out;
    char *err;
    size_t errlen;
} incr_args;

static int incr_body(ts_tx *tx, void *arg)
{
    incr_args *a = arg;
    ts_series *se = NULL;
    int rc = lock_with_related(tx, a->key, a->klen, NULL, 0, &se);
    if (rc == CAIRN_ENOTFOUND && a->o && a->o->create) {
        rc = create_in(tx, a->key, a->klen, a->o->create);
        if (rc == 0)
            rc = tx_lock(tx, a->key, a->klen, &se);
    }
    if (rc)
        return rc;
    tx->waitable = false;
    rc = tx_txn(tx);
    if (rc)
        return rc;
    int64_t ts = a->ts;
    if (!a->has_ts) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        ts = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    }
    double v = a->by;
    if (se->has_points) {
        if (ts < se->newest) {
            set_err(a->err, a->errlen,
                    "timestamp must be equal to or higher than the maximum "
                    "existing timestamp");
            return CAIRN_EINVAL;
        }
        double last = 0;
        rc = newest_value(tx->db, tx->t, se, &last);
        if (rc)
            return rc;
        v = last + a->by;
    }
    stage_in in = {ts, v, CAIRN_TS_DUP_LAST};
    int r = 0;
    bool old_has = se->has_points;
    int64_t old_newest = se->newest;
    rc = series_stage(tx, se, &in, 1, &r);
    if (rc == 0 && r == 0)
        rc = rules_update(tx, se, old_has, old_newest, &ts, 1, 0);
    if (rc == 0 && r < 0)
        rc = r;
    if (rc == 0 && a->out)
        *a->out = (cairn_ts_point){ts, v};
    return rc;
}

int cairn_ts_incrby(cairn_db *db, const cairn_ts_write_opts *o,
                    const void *key, size_t klen, double by, bool has_ts,
                    int64_t ts, cairn_ts_point *out, char *err, size_t errlen)
{
    if (!db || (!key && klen) || !isfinite(by))
        return CAIRN_EINVAL;
    incr_args a = {o, key, klen, by, has_ts, ts, out, err, errlen};
    return tx_run(db, o ? o->txn : NULL, incr_body, &a);
}

/* ---- TS.ALTER ---- */

static int alter_body(ts_tx *tx, void *arg)
{
    key_args *a = arg;
    const cairn_ts_alter_opts *o = a->alter;
    ts_series *se = NULL;
    int rc = tx_lock(tx, a->key, a->klen, &se);
    if (rc)
        return rc;
    tx->waitable = false;
    cairn_ts_options no = se->opt;
    if (o->set_retention)
        no.retention_ms = o->retention_ms;
    if (o->set_chunk_size)
        no.chunk_size = o->chunk_size;
    if (o->set_duplicate_policy)
        no.duplicate_policy = o->duplicate_policy;
    if (o->set_ignore) {
        no.ignore_max_time_ms = o->ignore_max_time_ms;
        no.ignore_max_val = o->ignore_max_val;
    }
    no.labels = o->labels;
    no.nlabels = o->nlabels;
    if (check_opts(&no) != 0 || (o->set_labels && !o->labels && o->nlabels)) {
        set_err(a->err, a->errlen, "invalid series options");
        return CAIRN_EINVAL;
    }
    cairn_ts_labels *lab = NULL;
    if (o->set_labels) {
        rc = cairn_ts_labels_new(o->labels, o->nlabels, &lab);
        if (rc) {
            set_err(a->err, a->errlen, "invalid labels");
            return rc;
        }
    }
    rc = tx_txn(tx);
    if (rc) {
        cairn_ts_labels_free(lab);
        return rc;
    }
    tx_dirty(tx, se);
    no.labels = NULL;
    no.nlabels = 0;
    se->opt = no;
    if (o->set_labels) {
        cairn_ts_labels_free(se->labels);
        se->labels = lab;
    }
    rc = write_record(tx, se);
    if (rc == 0 && o->set_labels) {
        rc = tx_act_push(tx, ACT_IX_REMOVE, se->id, NULL, 0, NULL);
        if (rc == 0)
            rc = tx_act_push(tx, ACT_IX_ADD, se->id, se->name, se->nlen,
                             se->labels);
    }
    return rc;
}

int cairn_ts_alter(cairn_db *db, cairn_txn *txn, const void *key, size_t klen,
                   const cairn_ts_alter_opts *o, char *err, size_t errlen)
{
    if (!db || (!key && klen) || !o)
        return CAIRN_EINVAL;
    key_args a = {.key = key, .klen = klen, .alter = o, .err = err,
                  .errlen = errlen};
    return tx_run(db, txn, alter_body, &a);
}

/* ---- TS.DEL ---- */

typedef struct del_args {
    const void *key;
    size_t klen;
    int64_t from, to;
    uint64_t *deleted;
} del_args;

static int del_body(ts_tx *tx, void *arg)
{
    del_args *a = arg;
    ts_series *se = NULL;
    int rc = lock_with_related(tx, a->key, a->klen, NULL, 0, &se);
    if (rc == 0)
        rc = tx_txn(tx);
    if (rc)
        return rc;
    bool old_has = se->has_points;
    int64_t old_newest = se->newest;
    int64_t *g = NULL;
    size_t ng = 0;
    rc = series_del_points(tx, se, a->from, a->to, &g, &ng);
    if (rc == 0 && ng)
        rc = rules_update(tx, se, old_has, old_newest, g, ng, 0);
    free(g);
    if (rc == 0 && a->deleted)
        *a->deleted = ng;
    return rc;
}

int cairn_ts_del_range(cairn_db *db, cairn_txn *txn, const void *key,
                       size_t klen, int64_t from, int64_t to,
                       uint64_t *deleted)
{
    if (!db || (!key && klen))
        return CAIRN_EINVAL;
    if (deleted)
        *deleted = 0;
    del_args a = {key, klen, from, to, deleted};
    return tx_run(db, txn, del_body, &a);
}

/* ---- reads ---- */

/* Copy labels (may be NULL) into dst, their bytes from p on; returns
 * the end of the bytes written. */
static char *labels_copy(const cairn_ts_labels *l, cairn_ts_label *dst,
                         char *p)
{
    for (size_t i = 0; l && i < l->n; i++) {
        const cairn_ts_label *x = &l->v[i];
        memcpy(p, x->name.p, x->name.len);
        dst[i].name = (cairn_ts_str){p, x->name.len};
        p += x->name.len;
        memcpy(p, x->value.p, x->value.len);
        dst[i].value = (cairn_ts_str){p, x->value.len};
        p += x->value.len;
    }
    return p;
}

/* A read's hold on series name: through tx (held to its end), or a plain
 * lock (held until read_release). */
static int read_take(cairn_db *db, ts_tx *tx, const void *name, size_t nlen,
                     ts_series **se)
{
    int rc = tx ? tx_lock(tx, name, nlen, se) : series_lock(db, name, nlen, se);
    if (rc == 0 && tx)
        tx->waitable = false;
    return rc;
}

static void read_release(ts_tx *tx, ts_series *se)
{
    if (!tx)
        pthread_mutex_unlock(&se->mu);
}

/* LATEST: the bucket still open at dst's source, as a point (*found). */
static int latest_point(cairn_db *db, ts_tx *tx, const uint8_t *src,
                        size_t slen, const uint8_t *dst, size_t dlen,
                        bool *found, cairn_ts_point *p)
{
    *found = false;
    ts_series *s = NULL;
    int rc = read_take(db, tx, src, slen, &s);
    if (rc == CAIRN_ENOTFOUND || rc == CAIRN_ENOTSUP)
        return 0;
    if (rc)
        return rc;
    for (size_t i = 0; i < s->nrules && s->has_points; i++) {
        ts_rule_mem *r = &s->rules[i];
        if (!name_eq(r->dst, r->dlen, dst, dlen))
            continue;
        int64_t b = bucket_start(s->newest, r->bucket, r->align);
        cairn_ts_query q = {0};
        q.from = b;
        q.to = s->newest;
        q.agg = r->agg;
        q.bucket = r->bucket;
        q.align = r->align;
        cairn_ts_point *pts = NULL;
        size_t n = 0;
        rc = series_query(db, tx ? tx->t : NULL, s, &q, NULL, &pts, &n);
        if (rc == 0 && n) {
            *found = true;
            *p = (cairn_ts_point){b, pts[0].v};
        }
        free(pts);
        break;
    }
    read_release(tx, s);
    return rc;
}

typedef struct read_args {
    const void *key;
    size_t klen;
    const cairn_ts_query *q;
    cairn_ts_point **pts;
    size_t *n;
} read_args;

static int read_in(cairn_db *db, ts_tx *tx, read_args *a)
{
    ts_series *se = NULL;
    int rc = read_take(db, tx, a->key, a->klen, &se);
    if (rc)
        return rc;
    bool has_extra = false;
    cairn_ts_point extra = {0, 0};
    if (a->q->latest && se->has_src) {
        uint8_t *src = dup_bytes(se->src, se->slen);
        size_t slen = se->slen;
        if (!src) {
            rc = CAIRN_ENOMEM;
        } else if (tx) {
            rc = latest_point(db, tx, src, slen, a->key, a->klen, &has_extra,
                              &extra);
        } else {
            /* One series at a time: let dst go while src is read. */
            pthread_mutex_unlock(&se->mu);
            rc = latest_point(db, NULL, src, slen, a->key, a->klen,
                              &has_extra, &extra);
            int r2 = series_lock(db, a->key, a->klen, &se);
            if (r2) {
                free(src);
                return r2;
            }
        }
        free(src);
    }
    if (rc == 0)
        rc = series_query(db, tx ? tx->t : NULL, se, a->q,
                          has_extra ? &extra : NULL, a->pts, a->n);
    read_release(tx, se);
    return rc;
}

static int read_body(ts_tx *tx, void *arg)
{
    return read_in(tx->db, tx, arg);
}

int cairn_ts_query_range_ex(cairn_db *db, cairn_txn *txn, const void *key,
                            size_t klen, const cairn_ts_query *q,
                            cairn_ts_point **pts, size_t *n)
{
    if (!db || (!key && klen) || !q || !pts || !n)
        return CAIRN_EINVAL;
    *pts = NULL;
    *n = 0;
    read_args a = {key, klen, q, pts, n};
    if (!txn)
        return read_in(db, NULL, &a);
    return tx_run(db, txn, read_body, &a);
}

int cairn_ts_query_range(cairn_db *db, const void *key, size_t klen,
                         const cairn_ts_query *q, cairn_ts_point **pts,
                         size_t *n)
{
    return cairn_ts_query_range_ex(db, NULL, key, klen, q, pts, n);
}

int cairn_ts_range(cairn_db *db, const void *key, size_t klen, int64_t from,
                   int64_t to, cairn_ts_point **pts, size_t *n)
{
    cairn_ts_query q = {0};
    q.from = from;
    q.to = to;
    return cairn_ts_query_range_ex(db, NULL, key, klen, &q, pts, n);
}

typedef struct last_args {
    const void *key;
    size_t klen;
    bool *found;
    cairn_ts_point *p;
    bool need_query; /* out: LATEST on a destination: ask a query */
} last_args;

static int last_in(cairn_db *db, ts_tx *tx, last_args *a, bool latest)
{
    ts_series *se = NULL;
    int rc = read_take(db, tx, a->key, a->klen, &se);
    if (rc)
        return rc;
    *a->found = false;
    if (latest && se->has_src) {
        a->need_query = true;
    } else if (se->has_points) {
        double v = 0;
        rc = newest_value(db, tx ? tx->t : NULL, se, &v);
        if (rc == 0) {
            *a->found = true;
            *a->p = (cairn_ts_point){se->newest, v};
        }
    }
    read_release(tx, se);
    return rc;
}

static int last_body(ts_tx *tx, void *arg)
{
    return last_in(tx->db, tx, arg, false);
}

int cairn_ts_get_last(cairn_db *db, cairn_txn *txn, const void *key,
                      size_t klen, bool latest, bool *found, cairn_ts_point *p)
{
    if (!db || (!key && klen) || !found || !p)
        return CAIRN_EINVAL;
    last_args la = {key, klen, found, p, false};
    int rc = txn ? tx_run(db, txn, last_body, &la)
                 : last_in(db, NULL, &la, latest);
    if (rc || !(latest && (la.need_query || txn)))
        return rc;
    cairn_ts_query q = {0};
    q.from = INT64_MIN;
    q.to = INT64_MAX;
    q.reverse = true;
    q.has_count = true;
    q.count = 1;
    q.latest = true;
    cairn_ts_point *pts = NULL;
    size_t n = 0;
    rc = cairn_ts_query_range_ex(db, txn, key, klen, &q, &pts, &n);
    if (rc)
        return rc;
    *found = n > 0;
    if (n)
        *p = pts[0];
    free(pts);
    return 0;
}

/* ---- rules ---- */

typedef struct rule_args {
    const void *src, *dst;
    size_t slen, dlen;
    cairn_ts_aggregator agg;
    int64_t bucket, align;
    char *err;
    size_t errlen;
} rule_args;

/* Does following sources up from series name (through the txn's view)
 * reach target? */
static int reaches(ts_tx *tx, const void *name, size_t nlen,
                   const void *target, size_t tlen, bool *yes)
{
    *yes = false;
    uint8_t *cur = dup_bytes(name, nlen);
    size_t cl = nlen;
    int rc = cur ? 0 : CAIRN_ENOMEM;
    for (int steps = 0; rc == 0 && steps < 100000; steps++) {
        if (name_eq(cur, cl, target, tlen)) {
            *yes = true;
            break;
        }
        size_t dkl;
        uint8_t *dk = data_key(cur, cl, &dkl);
        void *v = NULL;
        size_t vl = 0;
        rc = dk ? cairn_txn_get(tx->t, dk, dkl, &v, &vl) : CAIRN_ENOMEM;
        free(dk);
        if (rc == CAIRN_ENOTFOUND) {
            rc = 0;
            break;
        }
        ts_meta m;
        if (rc == 0)
            rc = decode_record(v, vl, &m, true);
        cairn_free(v);
        if (rc == CAIRN_ENOTSUP) {
            rc = 0;
            break;
        }
        if (rc)
            break;
        bool more = m.has_src;
        free(cur);
        cur = m.src;
        cl = m.slen;
        m.src = NULL;
        meta_free(&m);
        if (!more)
            break;
    }
    free(cur);
    return rc;
}

static int lock_pair(ts_tx *tx, rule_args *a, ts_series **s, ts_series **d)
{
    name_ref pair[2] = {{a->src, a->slen}, {a->dst, a->dlen}};
    int errs[2] = {0, 0};
    int rc = lock_set(tx, pair, 2, errs);
    tx->waitable = false;
    if (rc == 0)
        rc = errs[0] ? errs[0] : errs[1];
    if (rc == CAIRN_ENOTFOUND)
        set_err(a->err, a->errlen, "the key does not exist");
    if (rc)
        return rc;
    tx_item *si = tx_find(tx, a->src, a->slen);
    tx_item *di = tx_find(tx, a->dst, a->dlen);
    if (!si || !di)
        return CAIRN_ENOTFOUND;
    *s = si->se;
    *d = di->se;
    return tx_txn(tx);
}

static int create_rule_body(ts_tx *tx, void *arg)
{
    rule_args *a = arg;
    ts_series *s = NULL, *d = NULL;
    int rc = lock_pair(tx, a, &s, &d);
    if (rc)
        return rc;
    if (d->has_src) {
        set_err(a->err, a->errlen,
                name_eq(d->src, d->slen, a->src, a->slen)
                    ? "the destination key already has a src rule"
                    : "the destination key already has a src rule");
        return CAIRN_EINVAL;
    }
    bool cycle = false;
    rc = reaches(tx, a->src, a->slen, a->dst, a->dlen, &cycle);
    if (rc)
        return rc;
    if (cycle) {
        set_err(a->err, a->errlen,
                "the rule would close a cycle of compaction rules");
        return CAIRN_EINVAL;
    }
    ts_rule_mem *nr = realloc(s->rules, (s->nrules + 1) * sizeof *nr);
    if (!nr)
        return CAIRN_ENOMEM;
    s->rules = nr;
    uint8_t *dn = dup_bytes(a->dst, a->dlen);
    uint8_t *sn = dup_bytes(a->src, a->slen);
    if (!dn || !sn) {
        free(dn);
        free(sn);
        return CAIRN_ENOMEM;
    }
    tx_dirty(tx, s);
    tx_dirty(tx, d);
    s->rules[s->nrules++] = (ts_rule_mem){dn, a->dlen, a->agg, a->bucket,
                                          a->align};
    src_clear(d);
    d->src = sn;
    d->slen = a->slen;
    d->has_src = true;
    rc = write_record(tx, s);
    if (rc == 0)
        rc = write_record(tx, d);
    return rc;
}

static int check_rule(rule_args *a)
{
    if (a->agg <= CAIRN_TS_AGG_NONE || a->agg >= CAIRN_TS_AGG__COUNT) {
        set_err(a->err, a->errlen, "Unknown aggregation type");
        return CAIRN_EINVAL;
    }
    if (a->bucket <= 0) {
        set_err(a->err, a->errlen, "bucketDuration must be greater than zero");
        return CAIRN_EINVAL;
    }
    if (name_eq(a->src, a->slen, a->dst, a->dlen)) {
        set_err(a->err, a->errlen,
                "the source key and destination key should be different");
        return CAIRN_EINVAL;
    }
    return 0;
}

int cairn_ts_create_rule(cairn_db *db, cairn_txn *txn, const void *src,
                         size_t slen, const void *dst, size_t dlen,
                         cairn_ts_aggregator agg, int64_t bucket_ms,
                         int64_t align_ms, char *err, size_t errlen)
{
    if (!db || (!src && slen) || (!dst && dlen))
        return CAIRN_EINVAL;
    rule_args a = {src, dst, slen, dlen, agg, bucket_ms, align_ms, err,
                   errlen};
    int rc = check_rule(&a);
    return rc ? rc : tx_run(db, txn, create_rule_body, &a);
}

static int delete_rule_body(ts_tx *tx, void *arg)
{
    rule_args *a = arg;
    ts_series *s = NULL, *d = NULL;
    int rc = lock_pair(tx, a, &s, &d);
    if (rc)
        return rc;
    if (!rule_remove(s, a->dst, a->dlen)) {
        set_err(a->err, a->errlen, "compaction rule does not exist");
        return CAIRN_ENOTFOUND;
    }
    tx_dirty(tx, s);
    tx_dirty(tx, d);
    if (d->has_src && name_eq(d->src, d->slen, a->src, a->slen))
        src_clear(d);
    rc = write_record(tx, s);
    if (rc == 0)
        rc = write_record(tx, d);
    return rc;
}

int cairn_ts_delete_rule(cairn_db *db, cairn_txn *txn, const void *src,
                         size_t slen, const void *dst, size_t dlen, char *err,
                         size_t errlen)
{
    if (!db || (!src && slen) || (!dst && dlen))
        return CAIRN_EINVAL;
    rule_args a = {src, dst, slen, dlen, CAIRN_TS_AGG_NONE, 0, 0, err,
                   errlen};
    return tx_run(db, txn, delete_rule_body, &a);
}

/* ---- RENAME ---- */

static int rename_body(ts_tx *tx, void *arg)
{
    key_args *a = arg;
    if (name_eq(a->key, a->klen, a->key2, a->klen2))
        return CAIRN_EINVAL;
    ts_series *se = NULL;
    name_ref to = {a->key2, a->klen2};
    int rc = lock_with_related(tx, a->key, a->klen, &to, 1, &se);
    if (rc == 0)
        rc = tx_txn(tx);
    if (rc)
        return rc;
    size_t nkl = 0, okl = 0;
    uint8_t *nk = data_key(a->key2, a->klen2, &nkl);
    uint8_t *ok = data_key(a->key, a->klen, &okl);
    uint8_t *newname = dup_bytes(a->key2, a->klen2);
    void *v = NULL;
    size_t vl = 0;
    rc = nk && ok && newname ? cairn_txn_get(tx->t, nk, nkl, &v, &vl)
                             : CAIRN_ENOMEM;
    if (rc == 0) {
        cairn_free(v);
        rc = CAIRN_EEXIST;
    } else if (rc == CAIRN_ENOTFOUND) {
        rc = 0;
    }
    /* The related series now name the new key. */
    if (rc == 0 && se->has_src) {
        tx_item *s = tx_find(tx, se->src, se->slen);
        for (size_t i = 0; s && i < s->se->nrules; i++)
            if (name_eq(s->se->rules[i].dst, s->se->rules[i].dlen, a->key,
                        a->klen)) {
                uint8_t *cp = dup_bytes(a->key2, a->klen2);
                if (!cp) {
                    rc = CAIRN_ENOMEM;
                    break;
                }
                tx_dirty(tx, s->se);
                free(s->se->rules[i].dst);
                s->se->rules[i].dst = cp;
                s->se->rules[i].dlen = a->klen2;
                rc = write_record(tx, s->se);
            }
    }
    for (size_t i = 0; rc == 0 && i < se->nrules; i++) {
        tx_item *d = tx_find(tx, se->rules[i].dst, se->rules[i].dlen);
        if (d && d->se->has_src &&
            name_eq(d->se->src, d->se->slen, a->key, a->klen)) {
            uint8_t *cp = dup_bytes(a->key2, a->klen2);
            if (!cp) {
                rc = CAIRN_ENOMEM;
                break;
            }
            tx_dirty(tx, d->se);
            src_clear(d->se);
            d->se->src = cp;
            d->se->slen = a->klen2;
            d->se->has_src = true;
            rc = write_record(tx, d->se);
        }
    }
    if (rc == 0) {
        /* The series itself: its record under the new name, the registry,
         * and its memory leaves the table (loaded again by the new name). */
        tx_dirty(tx, se);
        pthread_mutex_lock(&tx->db->ts->mu);
        table_drop(tx->db, tx->db->ts, se);
        pthread_mutex_unlock(&tx->db->ts->mu);
        free(se->name);
        se->name = newname;
        se->nlen = a->klen2;
        newname = NULL;
        ts_meta m = meta_of(se);
        size_t rl = 0;
        uint8_t *rec = encode_record(&m, &rl);
        rc = rec ? cairn_txn_put(tx->t, nk, nkl, rec, rl) : CAIRN_ENOMEM;
        free(rec);
        if (rc == 0)
            rc = cairn_txn_delete(tx->t, ok, okl);
        uint8_t rk[9];
        rk[0] = KEY_REGISTRY;
        put_be64(rk + 1, se->id);
        if (rc == 0)
            rc = cairn_txn_put(tx->t, rk, 9, a->key2, a->klen2);
        if (rc == 0)
            rc = tx_act_push(tx, ACT_IX_REMOVE, se->id, NULL, 0, NULL);
        if (rc == 0)
            rc = tx_act_push(tx, ACT_IX_ADD, se->id, a->key2, a->klen2,
                             se->labels);
    }
    free(newname);
    free(nk);
    free(ok);
    return rc;
}

int cairn_ts_rename(cairn_db *db, cairn_txn *txn, const void *from,
                    size_t flen, const void *to, size_t tlen)
{
    if (!db || (!from && flen) || (!to && tlen))
        return CAIRN_EINVAL;
    key_args a = {.key = from, .klen = flen, .key2 = to, .klen2 = tlen};
    return tx_run(db, txn, rename_body, &a);
}

/* ---- FLUSHALL ---- */

static int drop_all_body(ts_tx *tx, void *arg)
{
    (void)arg;
    int rc = tx_txn(tx);
    static const uint8_t kinds[] = {KEY_CHUNK, KEY_LOG, KEY_REGISTRY};
    for (size_t i = 0; rc == 0 && i < sizeof kinds; i++) {
        cairn_iter_options io = {0};
        io.prefix = &kinds[i];
        io.prefix_len = 1;
        cairn_iter *it = NULL;
        rc = cairn_txn_iter(tx->t, &io, &it);
        for (cairn_iter_first(it); rc == 0 && cairn_iter_valid(it);
             cairn_iter_next(it)) {
            size_t kl = 0;
            const void *k = cairn_iter_key(it, &kl);
            rc = cairn_txn_delete(tx->t, k, kl);
        }
        if (rc == 0)
            rc = cairn_iter_status(it);
        cairn_iter_free(it);
    }
    if (rc == 0)
        rc = tx_act_push(tx, ACT_DROP_ALL, 0, NULL, 0, NULL);
    return rc;
}

int cairn_ts_drop_all(cairn_db *db, cairn_txn *txn)
{
    if (!db)
        return CAIRN_EINVAL;
    return tx_run(db, txn, drop_all_body, NULL);
}

/* ---- TS.INFO ---- */

typedef struct info_args {
    const void *key;
    size_t klen;
    cairn_ts_info **out;
} info_args;

static int info_in(cairn_db *db, ts_tx *tx, info_args *a)
{
    ts_series *se = NULL;
    int rc = read_take(db, tx, a->key, a->klen, &se);
    if (rc)
        return rc;
    cairn_txn *view = tx ? tx->t : NULL;
    /* One block: the struct, the labels, the rules, then their bytes. */
    size_t nl = se->labels ? se->labels->n : 0, bytes = se->slen;
    for (size_t i = 0; i < nl; i++)
        bytes += se->labels->v[i].name.len + se->labels->v[i].value.len;
    for (size_t i = 0; i < se->nrules; i++)
        bytes += se->rules[i].dlen;
    cairn_ts_info *in = calloc(1, sizeof *in + nl * sizeof(cairn_ts_label) +
                                      se->nrules * sizeof(cairn_ts_rule) +
                                      bytes + 1);
    if (!in) {
        read_release(tx, se);
        return CAIRN_ENOMEM;
    }
    cairn_ts_label *labs = (cairn_ts_label *)(in + 1);
    cairn_ts_rule *rules = (cairn_ts_rule *)(labs + nl);
    char *p = (char *)(rules + se->nrules);
    in->opts = se->opt;
    p = labels_copy(se->labels, labs, p);
    in->opts.labels = nl ? labs : NULL;
    in->opts.nlabels = nl;
    for (size_t i = 0; i < se->nrules; i++) {
        const ts_rule_mem *r = &se->rules[i];
        if (r->dlen)
            memcpy(p, r->dst, r->dlen);
        rules[i] = (cairn_ts_rule){{p, r->dlen}, r->agg, r->bucket, r->align};
        p += r->dlen;
    }
    in->rules = se->nrules ? rules : NULL;
    in->nrules = se->nrules;
    if (se->has_src) {
        if (se->slen)
            memcpy(p, se->src, se->slen);
        in->has_source = true;
        in->source = (cairn_ts_str){p, se->slen};
    }
    /* The points: the sealed chunks, then the open part. */
    cairn_iter *it = NULL;
    rc = series_iter(db, view, KEY_CHUNK, se->id, &it);
    bool have_first = false;
    for (cairn_iter_first(it); rc == 0 && cairn_iter_valid(it);
         cairn_iter_next(it)) {
        size_t cl = 0;
        const uint8_t *c = cairn_iter_value(it, &cl);
        uint32_t cnt = 0;
        int64_t f = 0;
        rc = cairn_ts_chunk_info(c, cl, NULL, &cnt, &f, NULL);
        if (rc)
            break;
        if (!have_first)
            in->first_ts = f;
        have_first = true;
        in->total_samples += cnt;
        in->memory_bytes += cl + 17;
        in->chunk_count++;
    }
    if (rc == 0 && it)
        rc = cairn_iter_status(it);
    cairn_iter_free(it);
    if (rc == 0) {
        if (se->nopen) {
            if (!have_first)
                in->first_ts = se->open[0].ts;
            in->total_samples += se->nopen;
            in->memory_bytes += 16 * se->nopen + 21 * (se->next_seq -
                                                      se->first_seq);
        }
        in->chunk_count++; /* the open part */
        in->memory_bytes += 64 + se->nlen;
        in->last_ts = se->has_points ? se->newest : 0;
        if (!se->has_points)
            in->first_ts = 0;
    }
    read_release(tx, se);
    if (rc) {
        free(in);
        return rc;
    }
    *a->out = in;
    return 0;
}

static int info_body(ts_tx *tx, void *arg)
{
    return info_in(tx->db, tx, arg);
}

int cairn_ts_info_get(cairn_db *db, cairn_txn *txn, const void *key,
                      size_t klen, cairn_ts_info **out)
{
    if (!db || (!key && klen) || !out)
        return CAIRN_EINVAL;
    *out = NULL;
    info_args a = {key, klen, out};
    return txn ? tx_run(db, txn, info_body, &a) : info_in(db, NULL, &a);
}

void cairn_ts_info_free(cairn_ts_info *info)
{
    free(info);
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
    ts_meta m;
    rc = decode_record(v, vl, &m, lab != NULL);
    cairn_free(v);
    if (rc == CAIRN_ENOTSUP)
        return 0;
    if (rc)
        return rc;
    if (lab) {
        *lab = m.lab;
        m.lab = NULL;
    }
    uint64_t rid = m.id;
    meta_free(&m);
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

typedef struct labels_args {
    const void *key;
    size_t klen;
    cairn_ts_label **labels;
    size_t *n;
} labels_args;

static int labels_in(cairn_db *db, ts_tx *tx, labels_args *a)
{
    ts_series *se = NULL;
    int rc = read_take(db, tx, a->key, a->klen, &se);
    if (rc)
        return rc;
    size_t cnt = se->labels ? se->labels->n : 0, bytes = 0;
    for (size_t i = 0; i < cnt; i++)
        bytes += se->labels->v[i].name.len + se->labels->v[i].value.len;
    cairn_ts_label *out = malloc(cnt * sizeof *out + bytes + 1);
    if (out)
        labels_copy(se->labels, out, (char *)(out + cnt));
    read_release(tx, se);
    if (!out)
        return CAIRN_ENOMEM;
    *a->labels = out;
    *a->n = cnt;
    return 0;
}

static int labels_body(ts_tx *tx, void *arg)
{
    return labels_in(tx->db, tx, arg);
}

int cairn_ts_get_labels_ex(cairn_db *db, cairn_txn *txn, const void *key,
                           size_t klen, cairn_ts_label **labels, size_t *n)
{
    if (!db || (!key && klen) || !labels || !n)
        return CAIRN_EINVAL;
    *labels = NULL;
    *n = 0;
    labels_args a = {key, klen, labels, n};
    /* In a transaction through its view: the series may be one it holds
     * (taking its lock again would wait for ourselves). */
    return txn ? tx_run(db, txn, labels_body, &a) : labels_in(db, NULL, &a);
}

int cairn_ts_get_labels(cairn_db *db, const void *key, size_t klen,
                        cairn_ts_label **labels, size_t *n)
{
    return cairn_ts_get_labels_ex(db, NULL, key, klen, labels, n);
}


bool cairn_ts_any(cairn_db *db)
{
    cairn_ts_store *s = store_get(db);
    if (!s)
        return true;
    int a = atomic_load(&s->any);
    if (a >= 0)
        return a == 1;
    /* Any series ever made wrote the id counter. */
    static const uint8_t nk[1] = {KEY_NEXT_ID};
    void *v = NULL;
    size_t vl = 0;
    int rc = cairn_get(db, nk, 1, &v, &vl);
    cairn_free(v);
    if (rc == CAIRN_ENOTFOUND) {
        int expect = -1;
        atomic_compare_exchange_strong(&s->any, &expect, 0);
        return atomic_load(&s->any) == 1;
    }
    if (rc == 0)
        atomic_store(&s->any, 1);
    return true;
}
