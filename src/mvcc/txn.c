/*
 * txn.c — transactions and the commit pipeline.
 *
 * A transaction reads at a snapshot version S through the table set it took
 * at begin, plus its own write set. Commit:
 *   1. validate (commit_mu, then inflight_mu): no key written, and in
 *      serializable mode no key read and no range scanned, has a version
 *      newer than S, committed or in flight: first committer wins;
 *   2. assign the next version and a timestamp (strictly increasing), put
 *      the written keys in the in-flight map, and append the commit record
 *      to the WAL with its durability callback, in the same critical
 *      section, so LSN order is version order and callbacks come in
 *      version order;
 *   3. group commit: the committer leads a WAL round or sleeps until one
 *      covers its record (one write and one fsync for every commit
 *      waiting);
 *   4. the thread that completes the round runs the callbacks, in version
 *      order, before waking anyone: apply the writes to the active
 *      memtable (the row cache is left alone: readers probe the
 *      memtables first, and the flush that moves these versions into a
 *      file supersedes the keys' entries), drop them from the in-flight
 *      map, publish (visible
 *      advances over every settled version) and mark the commit done;
 *   5. the committer wakes (once) and returns: acknowledged.
 * Blind writes (cairn_put, cairn_delete, cairn_write_batch) have nothing to
 * validate but the in-flight map: if a key is in flight they wait for it to
 * publish and go again, so they never fail with a conflict.
 *
 * Point reads (cairn_get, cairn_txn_get) ask the row cache first and may
 * fill it (the rule is in db/db_internal.h).
 *
 * Invariants and lock order: see db/db_internal.h. A transaction is used by
 * one thread at a time and takes no lock while it reads, but briefly a
 * row cache shard's (and, to fill the cache, tables_mu).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db/db_internal.h"
#include "lsm/iter.h"
#include "util/coding.h"

typedef struct ws_entry {
    uint8_t *key; /* key bytes, then value bytes, one allocation */
    size_t klen;
    uint8_t *val;
    size_t vlen;
    uint64_t hash;
    bool del;
    /* Set at commit for a value stored out of line: its reference record
     * (malloc'ed), whose blobs stay pinned until the txn is released. */
    uint8_t *ref;
    size_t reflen;
} ws_entry;

typedef struct rs_key {
    uint8_t *key;
    size_t klen;
    uint64_t hash;
} rs_key;

typedef struct rs_range {
    uint8_t *lo, *hi; /* one allocation; hi NULL: to the end */
    size_t lolen, hilen;
} rs_range;

/* A commit between its WAL append and its acknowledgement. Lives on the
 * committing thread's stack until `pub.done`; an asynchronous one lives in
 * its transaction (async_commit, cairn_txn.async) until it has fired. */
typedef struct commit_ctx {
    cairn_db *db;
    cairn_txn *t;
    uint64_t ts;
    int status;
    bool applied; /* cairn_txn_apply_batch applied it (result: apply_rc) */
    int apply_rc;
    db_pub_waiter pub; /* pub.v is the commit version */
} commit_ctx;

typedef struct async_commit {
    commit_ctx c;
    cairn_commit_fn fn;
    void *arg;
} async_commit;

/* What a transaction of a few small writes (the common commit: a SET, an
 * INCR) holds without allocating: its first writes' entries and their key
 * and value bytes, and an asynchronous commit's context. Such a commit is
 * freed on the log's thread, not the one that made it: one allocation
 * instead of five keeps the allocator's cross-thread traffic down. */
#define TXN_SMALL_W 2
#define TXN_SMALL_KV 320

struct cairn_txn {
    cairn_db *db;
    db_tables *tables;
    uint64_t snapshot;
    uint64_t max_ts; /* reads see commits at or before it (time travel) */
    bool read_only, serializable, blind, registered;
    bool pinned; /* read-only at a chosen version or time: never fills the
                    row cache */
    snap_node snap;
    ws_entry *w;
    size_t nw, capw;
    uint32_t *widx; /* open addressing: index + 1 into w, 0 empty */
    size_t widx_cap;
    rs_key *rk;
    size_t nrk, caprk;
    rs_range *rr;
    size_t nrr, caprr;
    int err; /* a write that failed (out of memory): commit refuses */
    bool read_any; /* a read happened: the snapshot is in use */
    bool blind_if_unread; /* cairn_txn_options.blind_if_unread */
    cairn_txn_hook_fn hook; /* called once, when the txn ends */
    void *hook_arg;
    ws_entry w_small[TXN_SMALL_W]; /* w's first home */
    size_t kv_used;                /* bytes of kv_small taken */
    uint8_t kv_small[TXN_SMALL_KV]; /* small writes' key+value bytes */
    async_commit async;            /* cairn_txn_commit_async's context */
};

/* A write's key+value bytes: from kv_small while it has room. */
static uint8_t *kv_alloc(cairn_txn *t, size_t n)
{
    if (n <= TXN_SMALL_KV - t->kv_used) {
        uint8_t *p = t->kv_small + t->kv_used;
        t->kv_used += n;
        return p;
    }
    return malloc(n);
}

static void kv_free(cairn_txn *t, uint8_t *p)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)t->kv_small;
    if (a < lo || a >= lo + TXN_SMALL_KV)
        free(p); /* kv_small's bytes are not reused: a txn is short */
}


/* One hash per key for the write set, the in-flight map, the memtables,
 * the files' filters and the row cache. */
static uint64_t key_hash(const void *k, size_t n)
{
    return cairn_row_cache_hash(k, n);
}

/* ---------- the write set ---------- */

static int widx_rebuild(cairn_txn *t, size_t cap)
{
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return CAIRN_ENOMEM;
    for (size_t i = 0; i < t->nw; i++) {
        size_t h = t->w[i].hash & (cap - 1);
        while (idx[h])
            h = (h + 1) & (cap - 1);
        idx[h] = (uint32_t)(i + 1);
    }
    free(t->widx);
    t->widx = idx;
    t->widx_cap = cap;
    return 0;
}

static ws_entry *ws_find(cairn_txn *t, const void *key, size_t klen,
                         uint64_t h)
{
    if (!t->widx) {
        for (size_t i = 0; i < t->nw; i++)
            if (t->w[i].hash == h && t->w[i].klen == klen &&
                (!klen || memcmp(t->w[i].key, key, klen) == 0))
                return &t->w[i];
        return NULL;
    }
    size_t m = t->widx_cap - 1;
    for (size_t p = h & m; t->widx[p]; p = (p + 1) & m) {
        ws_entry *e = &t->w[t->widx[p] - 1];
        if (e->hash == h && e->klen == klen &&
            (!klen || memcmp(e->key, key, klen) == 0))
            return e;
    }
    return NULL;
}

static int ws_set(cairn_txn *t, const void *key, size_t klen, const void *val,
                  size_t vlen, bool del)
{
    uint64_t h = key_hash(key, klen);
    uint8_t *buf = kv_alloc(t, klen + vlen + 1);
    if (!buf)
        return CAIRN_ENOMEM;
    if (klen)
        memcpy(buf, key, klen);
    if (vlen)
        memcpy(buf + klen, val, vlen);
    ws_entry *e = ws_find(t, key, klen, h);
    if (e) {
        kv_free(t, e->key);
    } else {
        if (t->nw == t->capw) {
            size_t nc = t->capw * 2;
            ws_entry *p = t->w == t->w_small ? malloc(nc * sizeof *p)
                                             : realloc(t->w, nc * sizeof *p);
            if (!p) {
                kv_free(t, buf);
                return CAIRN_ENOMEM;
            }
            if (t->w == t->w_small)
                memcpy(p, t->w_small, t->nw * sizeof *p);
            t->w = p;
            t->capw = nc;
        }
        e = &t->w[t->nw++];
        if (t->nw > 8 && t->nw * 2 > t->widx_cap) {
            size_t cap = t->widx_cap ? t->widx_cap * 2 : 32;
            while (cap < t->nw * 2)
                cap *= 2;
            e->hash = h; /* so the rebuild places it */
            if (widx_rebuild(t, cap) != 0) {
                t->nw--;
                kv_free(t, buf);
                return CAIRN_ENOMEM;
            }
        } else if (t->widx) {
            size_t m = t->widx_cap - 1, p = h & m;
            while (t->widx[p])
                p = (p + 1) & m;
            t->widx[p] = (uint32_t)t->nw;
        }
    }
    e->key = buf;
    e->klen = klen;
    e->val = del ? NULL : buf + klen;
    e->vlen = del ? 0 : vlen;
    e->hash = h;
    e->del = del;
    e->ref = NULL;
    e->reflen = 0;
    return 0;
}

static int ws_cmp(const void *a, const void *b)
{
    const ws_entry *x = a, *y = b;
    return cairn_key_cmp(x->key, x->klen, y->key, y->klen);
}

/* ---------- the read set (serializable) ---------- */

static int rs_add_key(cairn_txn *t, const void *key, size_t klen, uint64_t h)
{
    if (t->nrk == t->caprk) {
        size_t nc = t->caprk ? t->caprk * 2 : 8;
        rs_key *p = realloc(t->rk, nc * sizeof *p);
        if (!p)
            return CAIRN_ENOMEM;
        t->rk = p;
        t->caprk = nc;
    }
    uint8_t *k = malloc(klen ? klen : 1);
    if (!k)
        return CAIRN_ENOMEM;
    if (klen)
        memcpy(k, key, klen);
    t->rk[t->nrk++] = (rs_key){k, klen, h};
    return 0;
}

static int rs_add_range(cairn_txn *t, const void *lo, size_t lolen,
                        const void *hi, size_t hilen)
{
    if (t->nrr == t->caprr) {
        size_t nc = t->caprr ? t->caprr * 2 : 4;
        rs_range *p = realloc(t->rr, nc * sizeof *p);
        if (!p)
            return CAIRN_ENOMEM;
        t->rr = p;
        t->caprr = nc;
    }
    uint8_t *b = malloc(lolen + hilen + 1);
    if (!b)
        return CAIRN_ENOMEM;
    if (lolen)
        memcpy(b, lo, lolen);
    if (hi && hilen)
        memcpy(b + lolen, hi, hilen);
    t->rr[t->nrr++] = (rs_range){b, hi ? b + lolen : NULL, lolen, hilen};
    return 0;
}

/* ---------- the in-flight map (inflight_mu held) ---------- */

static inflight_slot *inflight_lookup(cairn_db *db, const uint8_t *key,
                                      size_t klen, uint64_t h)
{
    if (!db->inflight_cap)
        return NULL;
    size_t m = db->inflight_cap - 1;
    for (size_t p = h & m;; p = (p + 1) & m) {
        inflight_slot *s = &db->inflight[p];
        if (!s->key && !s->tomb)
            return NULL;
        if (s->key && s->hash == h && s->klen == klen &&
            (!klen || memcmp(s->key, key, klen) == 0))
            return s;
    }
}

/* Make room for n more keys. */
static int inflight_reserve(cairn_db *db, size_t n)
{
    if ((db->inflight_used + n) * 2 <= db->inflight_cap)
        return 0;
    size_t cap = db->inflight_cap ? db->inflight_cap : 64;
    while ((db->inflight_n + n) * 2 > cap)
        cap *= 2;
    inflight_slot *ns = calloc(cap, sizeof *ns);
    if (!ns)
        return CAIRN_ENOMEM;
    for (size_t i = 0; i < db->inflight_cap; i++) {
        inflight_slot *s = &db->inflight[i];
        if (!s->key)
            continue;
        size_t p = s->hash & (cap - 1);
        while (ns[p].key)
            p = (p + 1) & (cap - 1);
        ns[p] = *s;
    }
    free(db->inflight);
    db->inflight = ns;
    db->inflight_cap = cap;
    db->inflight_used = db->inflight_n;
    return 0;
}

static void inflight_add(cairn_db *db, const uint8_t *key, size_t klen,
                         uint64_t h, uint64_t v)
{
    size_t m = db->inflight_cap - 1, p = h & m;
    while (db->inflight[p].key)
        p = (p + 1) & m;
    if (!db->inflight[p].tomb)
        db->inflight_used++;
    db->inflight[p] = (inflight_slot){key, klen, h, v, false};
    db->inflight_n++;
}

static void inflight_del(cairn_db *db, const uint8_t *key, size_t klen,
                         uint64_t h)
{
    inflight_slot *s = inflight_lookup(db, key, klen, h);
    if (!s)
        return;
    *s = (inflight_slot){.tomb = true};
    db->inflight_n--;
    /* All gone: clear the tombstones too, once they are many (clearing the
     * whole table after every commit cost a tenth of a single writer's time
     * once a batch had grown the table; inflight_reserve rehashes anyway
     * when live keys plus tombstones reach half the table). */
    if (db->inflight_n == 0 && db->inflight_used * 8 >= db->inflight_cap) {
        memset(db->inflight, 0, db->inflight_cap * sizeof *db->inflight);
        db->inflight_used = 0;
    }
}

/* ---------- validation (commit_mu and inflight_mu held) ---------- */

/* 1 when key has a version newer than S (or one in flight), 0 when not,
 * or the error that kept it from being read (a disk error is reported as
 * itself: a caller that retries conflicts must not loop on a broken
 * disk). */
static int key_changed(cairn_db *db, db_tables *tabs, const uint8_t *key,
                       size_t klen, uint64_t h, uint64_t S)
{
    if (inflight_lookup(db, key, klen, h))
        return 1;
    uint64_t latest = 0;
    int rc = cairn_db_latest_above(tabs, key, klen, S, &latest);
    return rc < 0 ? rc : latest > S;
}

/* The same for a range. */
static int range_changed(cairn_db *db, db_tables *tabs, const rs_range *r,
                         uint64_t S)
{
    for (size_t i = 0; i < db->inflight_cap; i++) {
        inflight_slot *s = &db->inflight[i];
        if (s->key && cairn_key_cmp(s->key, s->klen, r->lo, r->lolen) >= 0 &&
            (!r->hi || cairn_key_cmp(s->key, s->klen, r->hi, r->hilen) < 0))
            return 1;
    }
    cairn_memtable *tab[5];
    size_t n = 0;
    tab[n++] = tabs->active;
    for (size_t i = 0; i < tabs->nimm; i++)
        tab[n++] = tabs->imm[i];
    for (size_t i = 0; i < n; i++) {
        cairn_mt_iter it;
        cairn_mt_iter_init(&it, tab[i]);
        cairn_mt_iter_seek(&it, r->lo, r->lolen, UINT64_MAX);
        for (; cairn_mt_iter_valid(&it); cairn_mt_iter_next(&it)) {
            cairn_mt_entry e;
            cairn_mt_iter_entry(&it, &e);
            if (r->hi && cairn_key_cmp(e.key, e.klen, r->hi, r->hilen) >= 0)
                break;
            if (e.version > S)
                return 1;
        }
    }
    /* Sorted files matter only if they hold versions newer than S. */
    cairn_tree_view *v = tabs->view;
    if (!v || cairn_tree_view_max_version(v) <= S)
        return 0;
    for (size_t i = 0; i < cairn_tree_view_nfiles(v); i++) {
        if (cairn_tree_view_meta(v, i)->max_version <= S)
            continue;
        const cairn_sst_reader *rd = NULL;
        int orc = cairn_tree_view_reader_ex(v, i, &rd, NULL, 0);
        if (orc != 0)
            return orc; /* an archived file out of reach */
        const cairn_sst_props *p = cairn_sst_props_get(rd);
        if (p->entries == 0 || p->max_version <= S)
            continue;
        cairn_sst_iter *it;
        if (cairn_sst_iter_new(rd, &it) != 0)
            return CAIRN_ENOMEM;
        int changed = 0;
        for (cairn_sst_iter_seek(it, r->lo, r->lolen, UINT64_MAX);
             cairn_sst_iter_valid(it); cairn_sst_iter_next(it)) {
            cairn_sst_entry e;
            cairn_sst_iter_entry(it, &e);
            if (r->hi && cairn_key_cmp(e.key, e.klen, r->hi, r->hilen) >= 0)
                break;
            if (e.version > S) {
                changed = 1;
                break;
            }
        }
        if (cairn_sst_iter_status(it) != 0)
            changed = cairn_sst_iter_status(it);
        cairn_sst_iter_free(it);
        if (changed)
            return changed;
    }
    return 0;
}

/* ---------- begin / end ---------- */

static void txn_init(cairn_txn *t, cairn_db *db)
{
    memset(t, 0, offsetof(cairn_txn, w_small)); /* the rest as needed */
    t->db = db;
    t->max_ts = UINT64_MAX;
    t->w = t->w_small;
    t->capw = TXN_SMALL_W;
    t->kv_used = 0;
}

static void txn_release(cairn_txn *t)
{
    if (t->registered)
        cairn_db_snap_unregister(t->db, &t->snap);
    t->registered = false;
    cairn_db_tables_release(t->tables);
    t->tables = NULL;
    for (size_t i = 0; i < t->nw; i++) {
        kv_free(t, t->w[i].key);
        if (t->w[i].ref) {
            /* Applied (and counted by its memtable) or failed: either way
             * the commit no longer needs its blobs pinned. */
            cairn_blob_store_ref_record(t->db->blobs, t->w[i].ref,
                                        t->w[i].reflen, -1, true);
            free(t->w[i].ref);
        }
    }
    if (t->w != t->w_small)
        free(t->w);
    free(t->widx);
    for (size_t i = 0; i < t->nrk; i++)
        free(t->rk[i].key);
    free(t->rk);
    for (size_t i = 0; i < t->nrr; i++)
        free(t->rr[i].lo);
    free(t->rr);
}

int cairn_txn_begin(cairn_db *db, const cairn_txn_options *opts,
                    cairn_txn **out)
{
    if (!db || !out)
        return CAIRN_EINVAL;
    *out = NULL;
    cairn_txn_options o = {0};
    if (opts)
        o = *opts;
    if ((o.at_version && o.at_time_us) ||
        ((o.at_version || o.at_time_us) && !o.read_only) ||
        o.isolation > CAIRN_ISOLATION_SERIALIZABLE)
        return CAIRN_EINVAL;
    if (!o.read_only && db->read_only)
        return CAIRN_EREADONLY;
    cairn_txn *t = malloc(sizeof *t);
    if (!t)
        return CAIRN_ENOMEM;
    txn_init(t, db);
    t->read_only = o.read_only;
    t->blind_if_unread = o.blind_if_unread && !o.read_only;
    t->pinned = o.at_version || o.at_time_us;
    cairn_isolation iso =
        o.isolation == CAIRN_ISOLATION_DEFAULT ? db->opts.isolation : o.isolation;
    t->serializable = iso == CAIRN_ISOLATION_SERIALIZABLE && !o.read_only;
    /* The table set and the versions it serves, together: see
     * db_internal.h. */
    int rc = 0;
    if (o.read_only) {
        uint64_t vis, oldest;
        t->tables = cairn_db_tables_acquire(db, &vis, &oldest);
        t->snapshot = vis;
        if (o.at_version) {
            if (o.at_version > vis)
                rc = CAIRN_EINVAL;
            else if (o.at_version < oldest)
                rc = CAIRN_EHISTORY;
            t->snapshot = o.at_version;
        } else if (o.at_time_us) {
            rc = cairn_db_version_at_time(db, o.at_time_us, vis, oldest,
                                          &t->snapshot, &t->max_ts);
        }
    } else {
        /* Registered, so garbage collection keeps what validation needs. */
        t->tables = cairn_db_snap_register(db, &t->snap);
        t->registered = true;
        t->snapshot = t->snap.version;
    }
    if (rc != 0) {
        txn_release(t);
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

uint64_t cairn_txn_snapshot(const cairn_txn *t)
{
    return t ? t->snapshot : 0;
}

void cairn_txn_abort(cairn_txn *t)
{
    if (!t)
        return;
    if (t->hook)
        t->hook(t->hook_arg, 1, 0);
    txn_release(t);
    free(t);
}

/* ---------- reads ---------- */

static int check_key(cairn_db *db, const void *key, size_t klen)
{
    if (!key && klen)
        return CAIRN_EINVAL;
    return klen > db->opts.max_key_size ? CAIRN_ETOOLARGE : 0;
}

/* The row cache gate: a lookup costs a memory miss and a shard lock and
 * pays only when it hits. Each thread keeps the hit rate of its last
 * RC_WINDOW lookups (per database: the state restarts when the thread
 * reads another one); below 1 in RC_PAY_DIV, the thread consults the cache
 * for one read in RC_BYPASS_EVERY only, until a window of those (which
 * still fill it, as usual) shows it paying again. Bypassing is always
 * exact: the tables are the truth, the cache a shortcut. Thread-local
 * only; the bypassed count reaches the database's counter when a window
 * ends or RC_WINDOW reads have passed by. */
#define RC_WINDOW 512
#define RC_PAY_DIV 16
#define RC_BYPASS_EVERY 32

typedef struct rc_gate {
    uint64_t db; /* the database's open_id; 0: none yet */
    uint32_t seen, hits, skip;
    uint64_t bypassed;
    bool bypass;
} rc_gate;

static _Thread_local rc_gate rcg;

/* Whether this thread is passing the row cache by (its hints too). */
static bool rc_bypassing(const cairn_db *db)
{
    return rcg.db == db->open_id && rcg.bypass;
}

/* Whether this read consults the row cache. */
static bool rc_consult(cairn_db *db)
{
    if (db->opts.row_cache_consult_all)
        return true;
    if (rcg.db != db->open_id)
        rcg = (rc_gate){.db = db->open_id};
    if (!rcg.bypass || ++rcg.skip == RC_BYPASS_EVERY) {
        rcg.skip = 0;
        return true;
    }
    if (++rcg.bypassed == RC_WINDOW) {
        atomic_fetch_add_explicit(&db->st_rc_bypassed, rcg.bypassed,
                                  memory_order_relaxed);
        rcg.bypassed = 0;
    }
    return false;
}

/* The outcome of a lookup rc_consult allowed. */
static void rc_outcome(cairn_db *db, bool hit)
{
    if (db->opts.row_cache_consult_all)
        return;
    rcg.hits += hit;
    if (++rcg.seen < RC_WINDOW)
        return;
    rcg.bypass = rcg.hits * RC_PAY_DIV < rcg.seen;
    if (rcg.bypassed)
        atomic_fetch_add_explicit(&db->st_rc_bypassed, rcg.bypassed,
                                  memory_order_relaxed);
    rcg.seen = rcg.hits = 0;
    rcg.bypassed = 0;
}

int cairn_txn_get(cairn_txn *t, const void *key, size_t klen, void **val,
                  size_t *vlen)
{
    if (!t || !val)
        return CAIRN_EINVAL;
    int rc = check_key(t->db, key, klen);
    if (rc)
        return rc;
    t->read_any = true;
    uint64_t h = key_hash(key, klen);
    ws_entry *w = t->nw ? ws_find(t, key, klen, h) : NULL;
    if (w) {
        if (w->del)
            return CAIRN_ENOTFOUND;
        cairn_mt_entry e = {.value = w->val, .vlen = w->vlen};
        return cairn_db_copy_value(t->db, &e, val, vlen);
    }
    if (t->serializable && (rc = rs_add_key(t, key, klen, h)) != 0)
        return rc;
    cairn_db *db = t->db;
    cairn_mt_entry e;
    cairn_sst_pin pin = {0};
    /* The memtables first; the row cache stands in front of the sorted
     * files only (as in cairn_get). */
    int r = cairn_db_read_mem(t->tables, key, klen, t->snapshot, t->max_ts,
                              &e);
    if (r == 0 && cairn_row_cache_enabled(db->rcache) &&
        cairn_db_has_files(t->tables) && rc_consult(db)) {
        /* An entry at or below the snapshot (and time bound) is the answer
         * (db_internal.h). */
        bool admit = false;
        bool hit = cairn_db_rc_lookup(db, h, key, klen, t->snapshot,
                                      t->max_ts, val, vlen, &rc,
                                      t->pinned ? NULL : &admit);
        rc_outcome(db, hit);
        if (hit)
            return rc;
        /* Filling needs a table set taken after the key's epoch: a fresh
         * one, which reads as ours does while nothing was published since
         * our snapshot. */
        if (admit && atomic_load(&db->visible) == t->snapshot) {
            uint64_t ep = cairn_row_cache_epoch(db->rcache, h), vis, oldest;
            db_tables *fresh = cairn_db_tables_acquire(db, &vis, &oldest);
            bool done = vis == t->snapshot &&
                        cairn_db_rc_fill(db, fresh, h, key, klen, vis, oldest,
                                         ep, val, vlen, &rc);
            cairn_db_tables_release(fresh);
            if (done)
                return rc;
        }
    }
    if (r == 0)
        r = cairn_db_read_files(t->tables, key, klen, t->snapshot, t->max_ts,
                                &e, &pin);
    if (r < 0)
        rc = r;
    else if (r == 0 || e.kind == CAIRN_MT_DELETE)
        rc = CAIRN_ENOTFOUND;
    else
        rc = cairn_db_copy_value(t->db, &e, val, vlen);
    cairn_sst_pin_release(&pin);
    return rc;
}

/* Start loading what a point read of key (whose key_hash is h: one hash
 * serves the memtables' index, the files' filters and the row cache) in t
 * probes first, each independent of the others: the memtables' hash
 * buckets, the filter blocks of the files that may hold it and, for a read
 * that may consult the row cache (row_cache), its bucket. */
static void read_prefetch(cairn_db *db, db_tables *t, const void *key,
                          size_t klen, uint64_t h, bool row_cache)
{
    cairn_memtable_prefetch(t->active, h);
    for (size_t i = 0; i < t->nimm; i++)
        cairn_memtable_prefetch(t->imm[i], h);
    if (t->view) {
        cairn_tree_view_prefetch(t->view, key, klen, h);
        /* As cairn_get: only with files, and while the thread consults
         * it. */
        if (row_cache && cairn_db_has_files(t) && !rc_bypassing(db))
            cairn_row_cache_prefetch(db->rcache, h);
    }
}

int cairn_get(cairn_db *db, const void *key, size_t klen, void **val,
              size_t *vlen)
{
    if (!db || !val)
        return CAIRN_EINVAL;
    int rc = check_key(db, key, klen);
    if (rc)
        return rc;
    uint64_t S, oldest;
    bool lent;
    db_tables *tabs = cairn_db_tables_borrow(db, &S, &oldest, &lent);
    bool files = cairn_db_has_files(tabs);
    uint64_t h = files ? key_hash(key, klen) : 0;
    if (files)
        read_prefetch(db, tabs, key, klen, h, true);
    cairn_mt_entry e;
    cairn_sst_pin pin = {0};
    /* The memtables answer for keys written lately, as cheaply as the row
     * cache would: it stands in front of the sorted files only. */
    int r = cairn_db_read_mem(tabs, key, klen, S, UINT64_MAX, &e);
    if (r == 0 && cairn_row_cache_enabled(db->rcache) && files &&
        rc_consult(db)) {
        bool fill = false; /* a miss the row cache admits */
        bool hit = cairn_db_rc_lookup(db, h, key, klen, S, UINT64_MAX, val,
                                      vlen, &rc, &fill);
        rc_outcome(db, hit);
        if (hit) {
            cairn_db_tables_return(db, tabs, lent);
            return rc;
        }
        /* Filling needs a table set taken after the key's epoch was read
         * (db_internal.h): a fresh one. Its visible version is at least
         * S, and any state between the start of the call and its end is
         * this read's answer. */
        if (fill) {
            uint64_t ep = cairn_row_cache_epoch(db->rcache, h), vis, old2;
            db_tables *fresh = cairn_db_tables_acquire(db, &vis, &old2);
            bool done = cairn_db_rc_fill(db, fresh, h, key, klen, vis, old2,
                                         ep, val, vlen, &rc);
            cairn_db_tables_release(fresh);
            if (done) {
                cairn_db_tables_return(db, tabs, lent);
                return rc;
            }
        }
    }
    if (r == 0)
        r = cairn_db_read_files(tabs, key, klen, S, UINT64_MAX, &e, &pin);
    if (r < 0)
        rc = r;
    else if (r == 0 || e.kind == CAIRN_MT_DELETE)
        rc = CAIRN_ENOTFOUND;
    else
        rc = cairn_db_copy_value(db, &e, val, vlen);
    cairn_sst_pin_release(&pin);
    cairn_db_tables_return(db, tabs, lent);
    return rc;
}

/* cairn_get_many's row cache lookup (no fill), if the gate consults it:
 * true when it answered (*rc as cairn_db_rc_lookup's *res). */
static bool rc_answer(cairn_db *db, uint64_t h, const void *key, size_t klen,
                      uint64_t S, void **val, size_t *vlen, int *rc)
{
    if (!rc_consult(db))
        return false;
    bool hit = cairn_db_rc_lookup(db, h, key, klen, S, UINT64_MAX, val, vlen,
                                  rc, NULL);
    rc_outcome(db, hit);
    return hit;
}

/* Keys cairn_get_many takes through its stages together. */
#define GM_CHUNK 32

int cairn_get_many(cairn_db *db, size_t n, const void *const *keys,
                   const size_t *klens, void **vals, size_t *vlens, int *rcs)
{
    if (!db || (n && (!keys || !klens || !vals || !rcs)))
        return CAIRN_EINVAL;
    uint64_t S, oldest;
    bool lent;
    db_tables *t = cairn_db_tables_borrow(db, &S, &oldest, &lent);
    /* The row cache stands in front of the files, as in cairn_get; a miss
     * here does not fill it (a fill needs a table set taken after the
     * key's epoch: the flushes and single reads fill it). */
    bool rc_on = cairn_row_cache_enabled(db->rcache) &&
                 cairn_db_has_files(t);
    for (size_t base = 0; base < n; base += GM_CHUNK) {
        size_t m = n - base < GM_CHUNK ? n - base : GM_CHUNK;
        const void *const *k = keys + base;
        const size_t *kl = klens + base;
        int *rc = rcs + base;
        void **val = vals + base;
        size_t *vl = vlens ? vlens + base : NULL;
        cairn_tree_loc loc[GM_CHUNK];
        uint64_t h[GM_CHUNK];
        bool done[GM_CHUNK];
        /* 1: hint each key's first probes (memtable buckets, filters). */
        for (size_t i = 0; i < m; i++) {
            val[i] = NULL;
            rc[i] = check_key(db, k[i], kl[i]);
            done[i] = rc[i] != 0;
            if (!done[i]) {
                h[i] = key_hash(k[i], kl[i]);
                read_prefetch(db, t, k[i], kl[i], h[i], rc_on);
            }
        }
        /* 1b: with the buckets loaded, the memtables' and the row
         * cache's entries. */
        bool rc_hint = rc_on && !rc_bypassing(db);
        for (size_t i = 0; i < m; i++) {
            if (done[i])
                continue;
            cairn_memtable_prefetch_entry(t->active, h[i]);
            for (size_t j = 0; j < t->nimm; j++)
                cairn_memtable_prefetch_entry(t->imm[j], h[i]);
            if (rc_hint)
                cairn_row_cache_prefetch_entry(db->rcache, h[i]);
        }
        /* 2: the memtables answer, or the files' filters and indexes
         * (now loaded) place the key, its data block hinted. */
        for (size_t i = 0; i < m; i++) {
            if (done[i])
                continue;
            cairn_mt_entry e;
            if (cairn_db_read_mem(t, k[i], kl[i], S, UINT64_MAX, &e)) {
                rc[i] = e.kind == CAIRN_MT_DELETE
                            ? CAIRN_ENOTFOUND
                            : cairn_db_copy_value(db, &e, &val[i],
                                                  vl ? &vl[i] : NULL);
                done[i] = true;
            } else if (!t->view) {
                rc[i] = CAIRN_ENOTFOUND;
                done[i] = true;
            } else if (rc_on && rc_answer(db, h[i], k[i], kl[i], S, &val[i],
                                          vl ? &vl[i] : NULL, &rc[i])) {
                done[i] = true;
            } else {
                cairn_tree_view_locate(t->view, k[i], kl[i], S, &loc[i]);
            }
        }
        /* 3: the reads, from where each was placed. */
        for (size_t i = 0; i < m; i++) {
            if (done[i])
                continue;
            cairn_mt_entry e;
            cairn_sst_pin pin;
            int r = cairn_db_read_files_at(t, &loc[i], k[i], kl[i], S,
                                           UINT64_MAX, &e, &pin);
            if (r < 0)
                rc[i] = r;
            else if (r == 0 || e.kind == CAIRN_MT_DELETE)
                rc[i] = CAIRN_ENOTFOUND;
            else
                rc[i] = cairn_db_copy_value(db, &e, &val[i],
                                            vl ? &vl[i] : NULL);
            cairn_sst_pin_release(&pin);
        }
    }
    cairn_db_tables_return(db, t, lent);
    return 0;
}

void cairn_prefetch(cairn_db *db, const void *key, size_t klen)
{
    if (!db || check_key(db, key, klen) != 0)
        return;
    uint64_t S, oldest;
    bool lent;
    db_tables *t = cairn_db_tables_borrow(db, &S, &oldest, &lent);
    read_prefetch(db, t, key, klen, key_hash(key, klen), true);
    cairn_db_tables_return(db, t, lent);
}

static int wp_cmp(const void *a, const void *b)
{
    const ws_entry *x = *(ws_entry *const *)a, *y = *(ws_entry *const *)b;
    return cairn_key_cmp(x->key, x->klen, y->key, y->klen);
}

int cairn_txn_scan(cairn_txn *t, const void *start, size_t slen,
                   const void *end, size_t elen, size_t limit,
                   cairn_scan_fn fn, void *arg)
{
    if (!t || !fn || (!start && slen) || (end == NULL && elen))
        return CAIRN_EINVAL;
    int rc = 0;
    t->read_any = true;
    if (t->serializable &&
        (rc = rs_add_range(t, start, slen, end, elen)) != 0)
        return rc;
    /* The transaction's own writes in range, sorted. */
    ws_entry **mine = NULL;
    size_t nmine = 0;
    if (t->nw) {
        mine = malloc(t->nw * sizeof *mine);
        if (!mine)
            return CAIRN_ENOMEM;
        for (size_t i = 0; i < t->nw; i++) {
            ws_entry *w = &t->w[i];
            if (cairn_key_cmp(w->key, w->klen, start, slen) >= 0 &&
                (!end || cairn_key_cmp(w->key, w->klen, end, elen) < 0))
                mine[nmine++] = w;
        }
        qsort(mine, nmine, sizeof *mine, wp_cmp);
    }
    /* Everything stored, seen at the snapshot (the user iterator owns the
     * merge). */
    cairn_uiter *u = NULL;
    cairn_iiter *merged = cairn_db_merge_all(t->tables);
    if (merged)
        u = cairn_uiter_new(merged, t->snapshot, t->max_ts, start, slen, end,
                            elen);
    if (!u)
        rc = CAIRN_ENOMEM;
    if (rc != 0) {
        free(mine);
        return rc;
    }
    cairn_uiter_seek(u, start, slen);
    size_t emitted = 0, mi = 0;
    bool stop = false;
    while (!stop && (!limit || emitted < limit)) {
        size_t kl = 0;
        const uint8_t *kk = NULL;
        bool have = cairn_uiter_valid(u);
        if (have)
            kk = cairn_uiter_key(u, &kl);
        /* Own writes at or before the stored key go first (and hide it). */
        if (mi < nmine &&
            (!have || cairn_key_cmp(mine[mi]->key, mine[mi]->klen, kk, kl) <= 0)) {
            ws_entry *w = mine[mi++];
            if (have && cairn_key_cmp(w->key, w->klen, kk, kl) == 0)
                cairn_uiter_next(u);
            if (!w->del) {
                emitted++;
                if (fn(arg, w->key, w->klen, w->val, w->vlen) != 0)
                    stop = true;
            }
            continue;
        }
        if (!have)
            break;
        size_t vl;
        const uint8_t *vv = cairn_uiter_value(u, &vl);
        void *resolved = NULL;
        if (cairn_uiter_is_blob(u)) {
            rc = cairn_db_blob_resolve(t->db, vv, vl, &resolved, &vl);
            if (rc != 0)
                break;
            vv = resolved;
        }
        emitted++;
        int frc = fn(arg, kk, kl, vv, vl);
        free(resolved);
        if (frc != 0)
            stop = true;
        else
            cairn_uiter_next(u);
    }
    if (rc == 0)
        rc = cairn_uiter_status(u);
    cairn_uiter_free(u);
    free(mine);
    return rc;
}

/* ---------- writes ---------- */

static int txn_write(cairn_txn *t, const void *key, size_t klen,
                     const void *val, size_t vlen, bool del)
{
    if (!t || (!val && vlen))
        return CAIRN_EINVAL;
    if (t->read_only)
        return CAIRN_EREADONLY;
    int rc = check_key(t->db, key, klen);
    if (rc)
        return rc;
    if (vlen > t->db->opts.max_value_size)
        return CAIRN_ETOOLARGE;
    rc = ws_set(t, key, klen, val, vlen, del);
    if (rc)
        t->err = rc;
    return rc;
}

int cairn_txn_put(cairn_txn *t, const void *key, size_t klen, const void *val,
                  size_t vlen)
{
    return txn_write(t, key, klen, val ? val : "", vlen, false);
}

int cairn_txn_delete(cairn_txn *t, const void *key, size_t klen)
{
    return txn_write(t, key, klen, NULL, 0, true);
}

/* ---------- commit ---------- */

#define REC_HDR 20u
#define W_HDR 9u

static uint8_t *encode_commit(cairn_txn *t, size_t *len)
{
    size_t n = REC_HDR;
    for (size_t i = 0; i < t->nw; i++)
        n += W_HDR + t->w[i].klen +
             (t->w[i].ref ? t->w[i].reflen : t->w[i].vlen);
    uint8_t *b = malloc(n);
    if (!b)
        return NULL;
    cairn_put_u32(b + 16, (uint32_t)t->nw);
    uint8_t *p = b + REC_HDR;
    for (size_t i = 0; i < t->nw; i++) {
        ws_entry *w = &t->w[i];
        const uint8_t *v = w->ref ? w->ref : w->val;
        size_t vl = w->ref ? w->reflen : w->vlen;
        p[0] = w->del ? CAIRN_MT_DELETE : w->ref ? CAIRN_MT_BLOB : CAIRN_MT_PUT;
        cairn_put_u32(p + 1, (uint32_t)w->klen);
        cairn_put_u32(p + 5, (uint32_t)vl);
        p += W_HDR;
        if (w->klen)
            memcpy(p, w->key, w->klen);
        p += w->klen;
        if (vl)
            memcpy(p, v, vl);
        p += vl;
    }
    *len = n;
    return b;
}

static cairn_mt_kind write_kind(const ws_entry *w)
{
    return w->del ? CAIRN_MT_DELETE : w->ref ? CAIRN_MT_BLOB : CAIRN_MT_PUT;
}

/* What a write costs the memtable's budget: key, value, node overhead. */
static uint64_t write_bytes(const ws_entry *w)
{
    return w->klen + (w->ref ? w->reflen : w->vlen) + 64;
}

/* Become the active memtable's writer for commits up to LSN lsn (applies
 * come in LSN order, so it is the newest LSN the generation's memtable
 * holds). */
static db_tables *apply_begin(cairn_db *db, uint64_t lsn, uint64_t *gen)
{
    db_tables *tabs = cairn_db_writer_begin(db, gen);
    atomic_store(&db->gen_lsn[*gen & 1], lsn);
    return tabs;
}

/* Done writing bytes (write_bytes) into it: kick a flush when full. */
static void apply_end(cairn_db *db, db_tables *tabs, uint64_t gen,
                      uint64_t bytes)
{
    bool full = atomic_fetch_add(&db->active_bytes, bytes) + bytes >=
                db->opts.memtable_size;
    cairn_db_writer_end(db, tabs, gen);
    if (full)
        cairn_db_gc_kick(db);
}

/* One write into the memtable. Out of memory here would leave a durable
 * commit half applied: wait a while for memory before giving up. */
static int apply_one(cairn_memtable *mt, const ws_entry *w, uint64_t v,
                     uint64_t ts)
{
    int rc = CAIRN_ENOMEM;
    for (int tries = 0; tries < 1000 && rc == CAIRN_ENOMEM; tries++) {
        if (tries) {
            struct timespec d = {0, 1000000};
            nanosleep(&d, NULL);
        }
        rc = cairn_memtable_insert(mt, w->key, w->klen, v, ts, write_kind(w),
                                   w->ref ? w->ref : w->val,
                                   w->ref ? w->reflen : w->vlen);
    }
    return rc;
}

/* Insert one commit's writes into the active memtable. */
static int apply_writes(cairn_db *db, cairn_txn *t, uint64_t v, uint64_t ts,
                        uint64_t lsn)
{
    uint64_t gen, bytes = 0;
    db_tables *tabs = apply_begin(db, lsn, &gen);
    int rc = 0;
    for (size_t i = 0; i < t->nw && rc == 0; i++) {
        ws_entry *w = &t->w[i];
        bytes += write_bytes(w);
        rc = apply_one(tabs->active, w, v, ts);
        if (rc == 0 && w->ref)
            cairn_db_blob_inserted(db, w->ref, w->reflen);
    }
    apply_end(db, tabs, gen, bytes);
    return rc;
}

/* Take the transaction's keys out of the in-flight map. */
static void inflight_drop(cairn_db *db, cairn_txn *t)
{
    pthread_mutex_lock(&db->inflight_mu);
    for (size_t i = 0; i < t->nw; i++)
        inflight_del(db, t->w[i].key, t->w[i].klen, t->w[i].hash);
    pthread_mutex_unlock(&db->inflight_mu);
}

/* Wait until visible moves past what it was (a blind write waiting for an
 * in-flight commit of the same key). */
static void wait_visible_change(cairn_db *db, uint64_t seen)
{
    pthread_mutex_lock(&db->pub_mu);
    db->blind_waiters++;
    if (atomic_load(&db->visible) == seen) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&db->pub_cv, &db->pub_mu, &ts);
    }
    db->blind_waiters--;
    pthread_mutex_unlock(&db->pub_mu);
}

static void async_fire(db_pub_waiter *w);

/* WAL callback, in LSN (= version) order, on the thread that completed the
 * group commit: apply, leave the in-flight map, publish, wake the
 * committer. Takes no lock the committing path holds while it waits. */
static void commit_durable(void *arg, uint64_t lsn, int status)
{
    commit_ctx *c = arg;
    cairn_db *db = c->db;
    int rc = status;
    if (rc == 0)
        rc = c->applied ? c->apply_rc
                        : apply_writes(db, c->t, c->pub.v, c->ts, lsn);
    /* The row cache needs nothing here: every reader that may see this
     * version probes the memtable holding it before the cache, and the
     * flush that moves it into a file supersedes the key's entry first
     * (db_internal.h). (Test hook: between the apply and the publish.) */
    if (db->rc_commit_hook)
        db->rc_commit_hook(db->rc_hook_arg);
    inflight_drop(db, c->t);
    /* A failed sync makes the log (and so the database) read-only; a failed
     * write (e.g. no space) fails just this commit. A durable commit that
     * cannot be applied leaves memory behind the log: read-only too. */
    if (rc != 0 && (cairn_wal_status(db->wal) != 0 || rc == CAIRN_ENOMEM))
        atomic_store(&db->fatal, CAIRN_EREADONLY);
    c->status = rc;
    cairn_db_settle(db, &c->pub); /* c may be gone after this */
}

/* The log's batch hook (cairn_wal_set_batch_hook): the commits of a batch
 * of settled callbacks that succeeded are applied to the memtable
 * together, their skiplist searches overlapped
 * (cairn_memtable_insert_batch), as one writer (one generation: gen_lsn
 * ends at the batch's newest LSN, as if applied one by one). Each commit's
 * callback (commit_durable) then finds itself applied and goes on from
 * there. Fewer than two commits, or no memory for the list: each applies
 * its own. */
void cairn_txn_apply_batch(void *arg, const cairn_wal_settled *s, size_t n)
{
    cairn_db *db = arg;
    size_t ncommits = 0, nwrites = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i].cb == commit_durable && s[i].status == 0) {
            ncommits++;
            nwrites += ((commit_ctx *)s[i].arg)->t->nw;
        }
    if (ncommits < 2)
        return;
    cairn_mt_write *mw = malloc(nwrites * sizeof *mw);
    int *rcs = malloc(nwrites * sizeof *rcs);
    if (!mw || !rcs) {
        free(mw);
        free(rcs);
        return;
    }
    uint64_t bytes = 0, last_lsn = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].cb != commit_durable || s[i].status != 0)
            continue;
        commit_ctx *c = s[i].arg;
        last_lsn = s[i].lsn;
        for (size_t j = 0; j < c->t->nw; j++, k++) {
            const ws_entry *w = &c->t->w[j];
            mw[k] = (cairn_mt_write){
                .key = w->key, .klen = w->klen, .version = c->pub.v,
                .ts_us = c->ts, .kind = write_kind(w),
                .value = w->ref ? w->ref : w->val,
                .vlen = w->ref ? w->reflen : w->vlen};
            bytes += write_bytes(w);
        }
    }
    uint64_t gen;
    db_tables *tabs = apply_begin(db, last_lsn, &gen);
    cairn_memtable_insert_batch(tabs->active, mw, nwrites, rcs);
    k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i].cb != commit_durable || s[i].status != 0)
            continue;
        commit_ctx *c = s[i].arg;
        int rc = 0;
        for (size_t j = 0; j < c->t->nw; j++, k++) {
            const ws_entry *w = &c->t->w[j];
            if (rcs[k] == CAIRN_ENOMEM) /* retried, waiting for memory */
                rcs[k] = apply_one(tabs->active, w, c->pub.v, c->ts);
            if (rcs[k] == 0 && w->ref)
                cairn_db_blob_inserted(db, w->ref, w->reflen);
            if (rc == 0)
                rc = rcs[k];
        }
        c->apply_rc = rc;
        c->applied = true;
    }
    apply_end(db, tabs, gen, bytes);
    atomic_fetch_add(&db->st_apply_batches, 1);
    free(mw);
    free(rcs);
}

/* Store the large values out of line (blob store): each gets its
 * reference record, its blobs pinned, and the blobs are made durable
 * before the record can be (sync modes always and interval). On failure
 * nothing is logged; what was stored stays pinned until txn_release. */
static int store_blobs(cairn_db *db, cairn_txn *t)
{
    uint64_t need = 0;
    for (size_t i = 0; i < t->nw; i++) {
        ws_entry *w = &t->w[i];
        if (w->del || w->ref || !cairn_db_blob_wanted(db, w->vlen))
            continue;
        uint64_t seq = 0;
        int rc = cairn_blob_store_put(db->blobs, w->val, w->vlen, &w->ref,
                                      &w->reflen, &seq);
        if (rc != 0)
            return rc;
        if (seq > need)
            need = seq;
    }
    if (need && db->opts.sync_mode != CAIRN_SYNC_NONE) {
        int rc = cairn_blob_store_sync(db->blobs, need);
        if (rc == CAIRN_EREADONLY)
            atomic_store(&db->fatal, CAIRN_EREADONLY);
        return rc;
    }
    return 0;
}

/* Validate, assign the version and append the commit record (with
 * commit_durable as its callback, on c). The caller then waits for the
 * ticket (tk) or, asynchronously (tk NULL), lets the log's background
 * thread settle it. 0, 1 when there is nothing to commit (*version is the
 * snapshot), or an error (nothing appended). */
static int txn_submit(cairn_txn *t, commit_ctx *c, cairn_wal_ticket *tk,
                      uint64_t *version)
{
    cairn_db *db = t->db;
    if (t->err)
        return t->err;
    if (t->read_only || t->nw == 0) {
        if (version)
            *version = t->snapshot;
        return 1;
    }
    if (db->read_only)
        return CAIRN_EREADONLY;
    size_t wbytes = 0;
    for (size_t i = 0; i < t->nw; i++)
        wbytes += t->w[i].klen + t->w[i].vlen;
    int trc = tk ? cairn_db_throttle(db, wbytes) : cairn_db_throttle_try(db);
    if (trc != 0)
        return trc;
    qsort(t->w, t->nw, sizeof *t->w, ws_cmp);
    free(t->widx); /* positions changed; no lookups after this */
    t->widx = NULL;
    int brc = store_blobs(db, t);
    if (brc != 0)
        return brc;
    size_t len = 0;
    uint8_t *rec = encode_commit(t, &len);
    if (!rec)
        return CAIRN_ENOMEM;

    c->db = db;
    c->t = t;
    /* Blind: only in-flight commits of the same keys stop it (it waits for
     * them); nothing it read can have gone stale. */
    bool blind = t->blind || (t->blind_if_unread && !t->read_any);
    int rc;
    for (;;) {
        pthread_mutex_lock(&db->commit_mu);
        /* In-flight map first, then the table set: a commit that left the
         * map had been applied, so the set taken now holds its writes. */
        pthread_mutex_lock(&db->inflight_mu);
        db_tables *tabs = cairn_db_tables_acquire(db, NULL, NULL);
        rc = atomic_load(&db->fatal);
        int ch = 0; /* 1: a conflict; < 0: could not tell (an error) */
        for (size_t i = 0; rc == 0 && ch == 0 && i < t->nw; i++) {
            ws_entry *w = &t->w[i];
            ch = blind
                     ? inflight_lookup(db, w->key, w->klen, w->hash) != NULL
                     : key_changed(db, tabs, w->key, w->klen, w->hash,
                                   t->snapshot);
        }
        for (size_t i = 0; rc == 0 && ch == 0 && i < t->nrk; i++)
            ch = key_changed(db, tabs, t->rk[i].key, t->rk[i].klen,
                             t->rk[i].hash, t->snapshot);
        for (size_t i = 0; rc == 0 && ch == 0 && i < t->nrr; i++)
            ch = range_changed(db, tabs, &t->rr[i], t->snapshot);
        cairn_db_tables_release(tabs);
        if (rc == 0 && ch < 0)
            rc = ch;
        bool conflict = ch > 0;
        if (rc == 0 && !conflict)
            rc = inflight_reserve(db, t->nw);
        if (rc == 0 && !conflict) {
            uint64_t v = db->last_assigned + 1;
            uint64_t ts = cairn_db_now_us();
            if (ts <= db->last_ts)
                ts = db->last_ts + 1; /* never backwards */
            cairn_put_u64(rec, v);
            cairn_put_u64(rec + 8, ts);
            /* Everything the callback undoes is in place before the record
             * can become durable. */
            for (size_t i = 0; i < t->nw; i++)
                inflight_add(db, t->w[i].key, t->w[i].klen, t->w[i].hash, v);
            pthread_mutex_unlock(&db->inflight_mu);
            cairn_db_vt_append(db, v, ts); /* out of memory: the next
                                              commit's entry fills it in */
            c->ts = ts;
            c->status = 0;
            c->applied = false;
            db_pub_waiter_init(&c->pub, v);
            if (!tk) /* before the append: the callback may run at once */
                c->pub.fire = async_fire;
            rc = tk ? cairn_wal_append_ticket(db->wal, CAIRN_WAL_TYPE_COMMIT,
                                              rec, len, commit_durable, c, tk)
                    : cairn_wal_append_async(db->wal, CAIRN_WAL_TYPE_COMMIT,
                                             rec, len, commit_durable, c,
                                             NULL);
            if (rc == 0) {
                db->last_assigned = v;
                db->last_ts = ts;
            } else {
                db_pub_waiter_destroy(&c->pub);
                cairn_db_vt_unappend(db, v);
                inflight_drop(db, t);
                if (rc == CAIRN_EREADONLY || rc == CAIRN_EIO)
                    atomic_store(&db->fatal, CAIRN_EREADONLY);
            }
        } else {
            pthread_mutex_unlock(&db->inflight_mu);
        }
        pthread_mutex_unlock(&db->commit_mu);
        if (conflict && blind && rc == 0) {
            if (!tk) { /* asynchronous: must not wait */
                rc = CAIRN_EBUSY;
                break;
            }
            wait_visible_change(db, atomic_load(&db->visible));
            continue;
        }
        if (conflict && rc == 0)
            rc = CAIRN_ECONFLICT;
        break;
    }
    free(rec);
    if (rc == CAIRN_ECONFLICT)
        atomic_fetch_add(&db->st_conflicts, 1);
    return rc;
}

static int txn_commit(cairn_txn *t, uint64_t *version)
{
    commit_ctx c;
    cairn_wal_ticket ticket = {0};
    int rc = txn_submit(t, &c, &ticket, version);
    if (rc != 0)
        return rc == 1 ? 0 : rc;
    /* Drive the group commit (lead a round or sleep until one covers us);
     * the callback applies and publishes before the round's waiters wake,
     * so the wait below rarely sleeps. */
    cairn_wal_wait_ticket(t->db->wal, &ticket);
    cairn_db_wait_published(t->db, &c.pub);
    db_pub_waiter_destroy(&c.pub);
    if (c.status != 0)
        return c.status;
    atomic_fetch_add(&t->db->st_commits, 1);
    if (version)
        *version = c.pub.v;
    return 0;
}

/* An asynchronous commit is visible (or failed): tell its caller, then
 * free the transaction and the context. */
static void async_fire(db_pub_waiter *w)
{
    async_commit *a = (async_commit *)(void *)((char *)w -
                                               offsetof(async_commit, c.pub));
    cairn_txn *t = a->c.t;
    if (a->c.status == 0)
        atomic_fetch_add(&t->db->st_commits, 1);
    a->fn(a->arg, a->c.status, a->c.status == 0 ? a->c.pub.v : 0);
    db_pub_waiter_destroy(&a->c.pub);
    txn_release(t);
    free(t); /* a with it */
}

int cairn_txn_commit_async(cairn_txn *t, cairn_commit_fn fn, void *arg,
                           uint64_t *version)
{
    if (!t || !fn) {
        if (t)
            cairn_txn_abort(t);
        return CAIRN_EINVAL;
    }
    if (t->hook) {
        /* Its hook must run on the thread that ran the txn (it lets go of
         * locks taken there): commit synchronously instead. */
        cairn_txn_abort(t);
        return CAIRN_EBUSY;
    }
    async_commit *a = &t->async;
    memset(a, 0, sizeof *a);
    a->fn = fn;
    a->arg = arg;
    int rc = txn_submit(t, &a->c, NULL, version);
    if (rc != 0)
        cairn_txn_abort(t);
    return rc;
}

int cairn_txn_commit(cairn_txn *t, uint64_t *version)
{
    if (!t)
        return CAIRN_EINVAL;
    uint64_t v = 0;
    int rc = txn_commit(t, &v);
    if (version)
        *version = v;
    if (t->hook)
        t->hook(t->hook_arg, rc, v);
    txn_release(t);
    free(t);
    return rc;
}

void cairn_txn_set_hook(cairn_txn *t, cairn_txn_hook_fn fn, void *arg)
{
    t->hook = fn;
    t->hook_arg = arg;
}

void *cairn_txn_hook_arg(const cairn_txn *t, cairn_txn_hook_fn fn)
{
    return t->hook == fn ? t->hook_arg : NULL;
}

void cairn_txn_poison(cairn_txn *t, int rc)
{
    if (!t->err)
        t->err = rc;
}

int cairn_txn_renew(cairn_txn *t)
{
    if (t->read_only || t->nw || t->nrk || t->nrr || t->read_any ||
        !t->registered)
        return CAIRN_EBUSY;
    cairn_db_snap_unregister(t->db, &t->snap);
    cairn_db_tables_release(t->tables);
    t->tables = cairn_db_snap_register(t->db, &t->snap);
    t->snapshot = t->snap.version;
    return 0;
}

/* ---------- auto-commit writes ---------- */

static int blind_commit(cairn_db *db, const cairn_write *ws, size_t n,
                        uint64_t *version)
{
    if (!db || (!ws && n))
        return CAIRN_EINVAL;
    if (db->read_only)
        return CAIRN_EREADONLY;
    cairn_txn t;
    txn_init(&t, db);
    t.blind = true;
    t.snapshot = UINT64_MAX;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = txn_write(&t, ws[i].key, ws[i].klen,
                       ws[i].val ? ws[i].val : NULL, ws[i].val ? ws[i].vlen : 0,
                       ws[i].val == NULL);
    if (rc == 0)
        rc = txn_commit(&t, version);
    txn_release(&t);
    return rc;
}

int cairn_put(cairn_db *db, const void *key, size_t klen, const void *val,
              size_t vlen, uint64_t *version)
{
    if (!val && vlen)
        return CAIRN_EINVAL;
    cairn_write w = {key, klen, val ? val : "", vlen};
    return blind_commit(db, &w, 1, version);
}

int cairn_delete(cairn_db *db, const void *key, size_t klen, uint64_t *version)
{
    cairn_write w = {key, klen, NULL, 0};
    return blind_commit(db, &w, 1, version);
}

int cairn_write_batch(cairn_db *db, const cairn_write *writes, size_t n,
                      uint64_t *version)
{
    return blind_commit(db, writes, n, version);
}

/* ---------- replay ---------- */

int cairn_db_apply_replay(cairn_db *db, const cairn_wal_record *rec)
{
    if (rec->type != CAIRN_WAL_TYPE_COMMIT || rec->len < REC_HDR)
        return CAIRN_ECORRUPT;
    const uint8_t *p = rec->data;
    uint64_t v = cairn_get_u64(p), ts = cairn_get_u64(p + 8);
    uint32_t n = cairn_get_u32(p + 16);
    if (v <= db->flushed_version)
        return 0; /* in the sorted files already */
    if (v <= db->last_assigned || ts <= db->last_ts || n == 0)
        return CAIRN_ECORRUPT;
    /* Check the whole record before applying any of it. */
    size_t off = REC_HDR;
    for (uint32_t i = 0; i < n; i++) {
        if (rec->len - off < W_HDR)
            return CAIRN_ECORRUPT;
        uint8_t kind = p[off];
        uint64_t kl = cairn_get_u32(p + off + 1), vl = cairn_get_u32(p + off + 5);
        if ((kind != CAIRN_MT_PUT && kind != CAIRN_MT_DELETE &&
             kind != CAIRN_MT_BLOB) ||
            (kind == CAIRN_MT_DELETE && vl) ||
            rec->len - off - W_HDR < kl + vl)
            return CAIRN_ECORRUPT;
        if (kind == CAIRN_MT_BLOB) {
            cairn_blob_ref r;
            int drc = cairn_blob_ref_decode(p + off + W_HDR + kl, vl, &r);
            cairn_blob_ref_clear(&r);
            if (drc)
                return drc == CAIRN_ENOMEM ? drc : CAIRN_ECORRUPT;
        }
        off += W_HDR + kl + vl;
    }
    if (off != rec->len)
        return CAIRN_ECORRUPT;
    cairn_memtable *mt = db->tables->active;
    off = REC_HDR;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t kind = p[off];
        size_t kl = cairn_get_u32(p + off + 1), vl = cairn_get_u32(p + off + 5);
        const uint8_t *k = p + off + W_HDR;
        int rc = cairn_memtable_insert(mt, k, kl, v, ts, (cairn_mt_kind)kind,
                                       kind != CAIRN_MT_DELETE ? k + kl : NULL,
                                       vl);
        if (rc == CAIRN_EEXIST)
            return CAIRN_ECORRUPT; /* the same key twice in one commit */
        if (rc)
            return rc;
        if (kind == CAIRN_MT_BLOB)
            cairn_db_blob_inserted(db, k + kl, vl);
        off += W_HDR + kl + vl;
    }
    db->last_assigned = v;
    db->last_ts = ts;
    atomic_store(&db->visible, v);
    atomic_fetch_add(&db->st_recovered, 1);
    return cairn_db_vt_append(db, v, ts);
}

/* ---------- iterators (db/iterator.c) ---------- */

static int own_cmp(const void *a, const void *b)
{
    const cairn_own_write *x = a, *y = b;
    return cairn_key_cmp(x->key, x->klen, y->key, y->klen);
}

static bool in_range(const ws_entry *w, const void *lo, size_t lolen,
                     const void *hi, size_t hilen)
{
    return (!lo || cairn_key_cmp(w->key, w->klen, lo, lolen) >= 0) &&
           (!hi || cairn_key_cmp(w->key, w->klen, hi, hilen) < 0);
}

int cairn_txn_iter_prepare(cairn_txn *t, const void *lo, size_t lolen,
                           const void *hi, size_t hilen,
                           cairn_txn_iter_src *out)
{
    t->read_any = true;
    memset(out, 0, sizeof *out);
    /* The writes in range, copied (the write set changes under later puts:
     * ws_set frees a replaced entry's bytes) into one allocation: the
     * entries, then their bytes. */
    size_t n = 0, bytes = 0;
    for (size_t i = 0; i < t->nw; i++) {
        if (in_range(&t->w[i], lo, lolen, hi, hilen)) {
            n++;
            bytes += t->w[i].klen + t->w[i].vlen;
        }
    }
    cairn_own_write *own = NULL;
    if (n) {
        own = malloc(n * sizeof *own + bytes + 1);
        if (!own)
            return CAIRN_ENOMEM;
        uint8_t *p = (uint8_t *)(own + n);
        size_t j = 0;
        for (size_t i = 0; i < t->nw; i++) {
            const ws_entry *w = &t->w[i];
            if (!in_range(w, lo, lolen, hi, hilen))
                continue;
            cairn_own_write *o = &own[j++];
            o->key = p;
            o->klen = w->klen;
            if (w->klen)
                memcpy(p, w->key, w->klen);
            p += w->klen;
            o->del = w->del;
            o->val = w->del ? NULL : p;
            o->vlen = w->del ? 0 : w->vlen;
            if (o->vlen)
                memcpy(p, w->val, o->vlen);
            p += o->vlen;
        }
        qsort(own, n, sizeof *own, own_cmp);
    }
    if (t->serializable) {
        int rc = rs_add_range(t, lo, lolen, hi, hilen);
        if (rc != 0) {
            free(own);
            return rc;
        }
    }
    atomic_fetch_add(&t->tables->refs, 1);
    out->db = t->db;
    out->tables = t->tables;
    out->snapshot = t->snapshot;
    out->max_ts = t->max_ts;
    out->own = own;
    out->nown = n;
    return 0;
}
