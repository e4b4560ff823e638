/*
 * db.c — the database handle: open (with recovery from the write-ahead
 * log and the sorted files), close, table sets, publishing versions, flushing
 * memtables into the tree, backpressure, time travel and statistics. Transactions and the commit
 * pipeline live in src/mvcc/txn.c.
 *
 * Invariants and lock order: see db_internal.h.
 *
 * Flush: when the active memtable passes memtable_size, the collector thread
 * freezes it (a new active memtable takes the inserts), waits for the
 * commits still inserting into it, and writes the frozen tables, oldest
 * first, into level-0 files (lsm/tree.c), swapping each out of the table set
 * once its file is recorded. Old versions are dropped by flush and
 * compaction below the horizon H = min(newest version older than the history
 * window, oldest registered read-write snapshot), computed here (gc_horizon)
 * for the tree. Readers that hold an old set keep reading it; it is freed
 * with its last reader.
 */
#include "db/db_internal.h"
#include "ts/series.h"
#include "lsm/iter.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/coding.h"
#include "util/thread.h"

/* Why this thread's last cairn_open failed (cairn_open_error). */
static _Thread_local char open_err[1024];

static void open_fail(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static void open_fail(const char *fmt, ...)
{
    if (open_err[0])
        return; /* the first, most precise word stands */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(open_err, sizeof open_err, fmt, ap);
    va_end(ap);
}

const char *cairn_open_error(void)
{
    return open_err;
}

static int open_db(const char *path, const cairn_options *opts,
                   cairn_db **out);

void cairn_options_init(cairn_options *o)
{
    memset(o, 0, sizeof *o);
    o->sync_mode = CAIRN_SYNC_ALWAYS;
    o->sync_interval_ms = 1000;
    o->memtable_size = 64u << 20;
    o->history_ms = 600000;
    o->isolation = CAIRN_ISOLATION_SNAPSHOT;
    o->create_if_missing = true;
    o->max_key_size = 65536;
    o->max_value_size = 64u << 20;
    o->wal_segment_size = 64u << 20;
    o->row_cache_size = 256u << 20;
    o->row_cache_flush_offers = true;
    o->blob_threshold = 4096;
    o->blob_chunk_threshold = 256u << 10;
    o->blob_gc_dead_fraction = 0.5;
}

void cairn_free(void *p)
{
    free(p);
}

uint64_t cairn_db_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---------- table sets ---------- */

static db_tables *tables_new(cairn_memtable *active, cairn_memtable **imm,
                             const uint64_t *imm_lsn, size_t nimm,
                             cairn_tree_view *view)
{
    db_tables *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    atomic_init(&t->refs, 1);
    t->active = active;
    cairn_memtable_ref(active);
    t->nimm = nimm;
    for (size_t i = 0; i < nimm; i++) {
        t->imm[i] = imm[i];
        t->imm_lsn[i] = imm_lsn ? imm_lsn[i] : 0;
        cairn_memtable_ref(imm[i]);
    }
    t->view = view;
    if (view)
        cairn_tree_view_ref(view);
    return t;
}

db_tables *cairn_db_tables_acquire(cairn_db *db, uint64_t *visible,
                                   uint64_t *oldest)
{
    pthread_mutex_lock(&db->tables_mu);
    db_tables *t = db->tables;
    atomic_fetch_add(&t->refs, 1);
    if (visible)
        *visible = atomic_load(&db->visible);
    if (oldest)
        *oldest = atomic_load(&db->oldest);
    pthread_mutex_unlock(&db->tables_mu);
    return t;
}

/* The thread's slot for db, claiming one on first use (NULL: none left).
 * A thread remembers its slots of the last few handles it read, by handle
 * id (ids are never reused, so an entry of a closed handle never matches);
 * one that falls out of this list leaves its slot unused (holding at most
 * a reference the next scrape drops). */
#define TL_SLOTS 4
static _Thread_local struct {
    uint64_t id;
    db_slot *slot;
} tl_slot[TL_SLOTS];
static _Thread_local unsigned tl_slot_next;

static db_slot *my_slot(cairn_db *db)
{
    for (unsigned i = 0; i < TL_SLOTS; i++)
        if (tl_slot[i].id == db->id)
            return tl_slot[i].slot;
    if (!db->slots ||
        atomic_load_explicit(&db->slots_used, memory_order_relaxed) >= DB_SLOTS)
        return NULL;
    unsigned k = atomic_fetch_add_explicit(&db->slots_used, 1,
                                           memory_order_relaxed);
    if (k >= DB_SLOTS)
        return NULL;
    unsigned i = tl_slot_next++ % TL_SLOTS;
    tl_slot[i].id = db->id;
    tl_slot[i].slot = &db->slots[k];
    return tl_slot[i].slot;
}

db_tables *cairn_db_tables_borrow(cairn_db *db, uint64_t *visible,
                                  uint64_t *oldest, bool *lent)
{
    db_slot *s = my_slot(db);
    *lent = false;
    if (!s)
        return cairn_db_tables_acquire(db, visible, oldest);
    db_tables *p =
        atomic_exchange_explicit(&s->t, DB_SLOT_LENT, memory_order_acq_rel);
    if (p == DB_SLOT_LENT) /* nested: the slot is lent already */
        return cairn_db_tables_acquire(db, visible, oldest);
    *lent = true;
    if (p) {
        /* Still current after visible and oldest were read: it was current
         * all along (a replaced set never comes back), as if they had been
         * read under tables_mu with it. */
        uint64_t vis = atomic_load_explicit(&db->visible, memory_order_acquire);
        uint64_t old = atomic_load_explicit(&db->oldest, memory_order_acquire);
        if (p == __atomic_load_n(&db->tables, __ATOMIC_ACQUIRE)) {
            if (visible)
                *visible = vis;
            if (oldest)
                *oldest = old;
            return p;
        }
        cairn_db_tables_release(p); /* replaced: the slot's reference */
    }
    /* A fresh reference, which the slot keeps on return. */
    return cairn_db_tables_acquire(db, visible, oldest);
}

void cairn_db_tables_return(cairn_db *db, db_tables *t, bool lent)
{
    if (!lent) {
        cairn_db_tables_release(t);
        return;
    }
    db_slot *s = my_slot(db);
    db_tables *expect = DB_SLOT_LENT;
    /* Fails if a scrape took the slot meanwhile: then the reference is
     * ours to drop. */
    if (!s || !atomic_compare_exchange_strong_explicit(
                  &s->t, &expect, t, memory_order_acq_rel,
                  memory_order_acquire))
        cairn_db_tables_release(t);
}

void cairn_db_slots_scrape(cairn_db *db)
{
    if (!db->slots)
        return;
    unsigned n = atomic_load_explicit(&db->slots_used, memory_order_relaxed);
    if (n > DB_SLOTS)
        n = DB_SLOTS;
    for (unsigned i = 0; i < n; i++) {
        db_tables *p = atomic_exchange_explicit(&db->slots[i].t, NULL,
                                                memory_order_acq_rel);
        if (p && p != DB_SLOT_LENT)
            cairn_db_tables_release(p);
    }
}

/* Install a new current table set (tables_mu held). */
static void tables_install(cairn_db *db, db_tables *t)
{
    __atomic_store_n(&db->tables, t, __ATOMIC_RELEASE);
}

db_tables *cairn_db_writer_begin(cairn_db *db, uint64_t *gen)
{
    pthread_mutex_lock(&db->tables_mu);
    db_tables *t = db->tables;
    atomic_fetch_add(&t->refs, 1);
    *gen = db->active_gen;
    atomic_fetch_add(&db->writers[*gen & 1], 1);
    pthread_mutex_unlock(&db->tables_mu);
    return t;
}

void cairn_db_writer_end(cairn_db *db, db_tables *t, uint64_t gen)
{
    atomic_fetch_sub(&db->writers[gen & 1], 1);
    cairn_db_tables_release(t);
}

void cairn_db_tables_release(db_tables *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    cairn_memtable_unref(t->active);
    for (size_t i = 0; i < t->nimm; i++)
        cairn_memtable_unref(t->imm[i]);
    cairn_tree_view_unref(t->view);
    free(t);
}

int cairn_db_read_mem(db_tables *t, const void *key, size_t klen, uint64_t S,
                      uint64_t max_ts, cairn_mt_entry *out)
{
    /* Per key, newer tables hold newer versions: the first hit wins. */
    if (cairn_memtable_get(t->active, key, klen, S, max_ts, out))
        return 1;
    for (size_t i = 0; i < t->nimm; i++)
        if (cairn_memtable_get(t->imm[i], key, klen, S, max_ts, out))
            return 1;
    return 0;
}

bool cairn_db_has_files(db_tables *t)
{
    return t->view && cairn_tree_view_nfiles(t->view) > 0;
}

int cairn_db_read(db_tables *t, const void *key, size_t klen, uint64_t S,
                  uint64_t max_ts, cairn_mt_entry *out, cairn_sst_pin *pin)
{
    memset(pin, 0, sizeof *pin);
    if (cairn_db_read_mem(t, key, klen, S, max_ts, out))
        return 1;
    return cairn_db_read_files(t, key, klen, S, max_ts, out, pin);
}

int cairn_db_read_files(db_tables *t, const void *key, size_t klen,
                        uint64_t S, uint64_t max_ts, cairn_mt_entry *out,
                        cairn_sst_pin *pin)
{
    return cairn_db_read_files_at(t, NULL, key, klen, S, max_ts, out, pin);
}

int cairn_db_read_files_at(db_tables *t, const cairn_tree_loc *loc,
                           const void *key, size_t klen, uint64_t S,
                           uint64_t max_ts, cairn_mt_entry *out,
                           cairn_sst_pin *pin)
{
    memset(pin, 0, sizeof *pin);
    if (!t->view)
        return 0;
    cairn_sst_entry e;
    int rc = loc ? cairn_tree_view_read_at(t->view, loc, key, klen, S,
                                           max_ts, &e, pin, NULL)
                 : cairn_tree_view_read(t->view, key, klen, S, max_ts, &e,
                                        pin, NULL);
    if (rc == CAIRN_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    out->key = e.key;
    out->klen = e.klen;
    out->version = e.version;
    out->ts_us = e.ts_us;
    out->kind = (cairn_mt_kind)e.kind; /* same values */
    out->value = e.value;
    out->vlen = e.vlen;
    return 1;
}

cairn_iiter *cairn_db_merge_all(db_tables *t)
{
    size_t nfiles = t->view ? cairn_tree_view_nfiles(t->view) : 0;
    cairn_iiter **src = calloc(1 + t->nimm + nfiles, sizeof *src);
    if (!src)
        return NULL;
    size_t n = 0;
    src[n++] = cairn_iiter_from_memtable(t->active);
    for (size_t i = 0; i < t->nimm; i++)
        src[n++] = cairn_iiter_from_memtable(t->imm[i]);
    for (size_t i = 0; i < nfiles; i++)
        src[n++] = cairn_tree_view_iter(t->view, i, true);
    /* The merge owns the children (and destroys them if one is NULL). */
    cairn_iiter *merged = cairn_iiter_merge(src, n);
    free(src);
    return merged;
}

int cairn_db_latest_above(db_tables *t, const void *key, size_t klen,
                          uint64_t S, uint64_t *latest)
{
    uint64_t v = cairn_memtable_latest_version(t->active, key, klen);
    for (size_t i = 0; v == 0 && i < t->nimm; i++)
        v = cairn_memtable_latest_version(t->imm[i], key, klen);
    *latest = v;
    if (v || !t->view || cairn_tree_view_max_version(t->view) <= S)
        return 0;
    cairn_sst_entry e;
    cairn_sst_pin pin = {0};
    int rc = cairn_tree_view_read(t->view, key, klen, UINT64_MAX, UINT64_MAX,
                                  &e, &pin, NULL);
    if (rc == 0)
        *latest = e.version;
    cairn_sst_pin_release(&pin);
    return rc == CAIRN_ENOTFOUND ? 0 : rc;
}

int cairn_db_copy_value(cairn_db *db, const cairn_mt_entry *e, void **val,
                        size_t *vlen)
{
    if (!val)
        return 0;
    if (e->kind == CAIRN_MT_BLOB) {
        size_t n = 0;
        int rc = cairn_db_blob_resolve(db, e->value, e->vlen, val, &n);
        if (rc == 0 && vlen)
            *vlen = n;
        return rc;
    }
    void *p = malloc(e->vlen ? e->vlen : 1);
    if (!p)
        return CAIRN_ENOMEM;
    if (e->vlen)
        memcpy(p, e->value, e->vlen);
    *val = p;
    if (vlen)
        *vlen = e->vlen;
    return 0;
}

/* ---------- version -> timestamp index ---------- */

/* ---------- the row cache ---------- */

bool cairn_db_rc_lookup(cairn_db *db, uint64_t h, const void *key, size_t klen,
                        uint64_t S, uint64_t max_ts, void **val, size_t *vlen,
                        int *res, bool *admit)
{
    cairn_row_cache_value v;
    static _Thread_local uint32_t sample;
    bool timed = db->rcache && ++sample % CAIRN_SST_HIT_SAMPLE == 0;
    struct timespec t0, t1;
    if (timed)
        clock_gettime(CLOCK_MONOTONIC, &t0);
    int r = cairn_row_cache_lookup(db->rcache, h, key, klen, S, max_ts, &v,
                                   admit);
    if (r == 0)
        return false;
    if (timed && r > 0) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 +
                     (t1.tv_nsec - t0.tv_nsec);
        cairn_hist_add(&db->rc_hit_ns, ns > 0 ? (uint64_t)ns : 0);
    }
    if (r < 0) {
        *res = r;
    } else if (v.deleted) {
        *res = CAIRN_ENOTFOUND;
    } else {
        *val = v.val;
        if (vlen)
            *vlen = v.vlen;
        *res = 0;
    }
    return true;
}

bool cairn_db_rc_fill(cairn_db *db, db_tables *t, uint64_t h, const void *key,
                      size_t klen, uint64_t S, uint64_t oldest, uint64_t epoch,
                      void **val, size_t *vlen, int *res)
{
    cairn_mt_entry e;
    cairn_sst_pin pin;
    /* The newest version stored, published or not: an applied commit newer
     * than S must not leave an older state cached once its flush is done,
     * and that flush may have superseded the key before epoch was read. */
    int r = cairn_db_read(t, key, klen, UINT64_MAX, UINT64_MAX, &e, &pin);
    if (r < 0) {
        cairn_sst_pin_release(&pin);
        *res = r;
        return true;
    }
    if (r == 1 && e.version > S) {
        cairn_sst_pin_release(&pin);
        return false;
    }
    bool absent = r == 0 || e.kind == CAIRN_MT_DELETE;
    size_t got = 0;
    *res = absent ? CAIRN_ENOTFOUND : cairn_db_copy_value(db, &e, val, &got);
    if (vlen && !absent)
        *vlen = got;
    if (*res != 0 && *res != CAIRN_ENOTFOUND) {
        cairn_sst_pin_release(&pin);
        return true; /* a value that cannot be read is not cached */
    }
    if (db->rc_fill_hook)
        db->rc_fill_hook(db->rc_hook_arg);
    /* Filed at its commit version and time; a state whose version the
     * tables no longer know (none left, or zeroed by a bottom-level
     * compaction) holds from the fill's horizon on, for readers by version
     * only (db_internal.h). */
    uint64_t ver = r == 1 ? e.version : 0, ts = r == 1 ? e.ts_us : 0;
    if (ver == 0) {
        ver = oldest;
        ts = UINT64_MAX;
    }
    /* A value stored out of line is cached as the value itself. */
    const void *cv = absent ? NULL
                     : e.kind == CAIRN_MT_BLOB ? (const void *)*val
                                               : (const void *)e.value;
    cairn_row_cache_insert(db->rcache, h, key, klen, cv, absent ? 0 : got,
                           absent, ver, ts, 0, &epoch);
    cairn_sst_pin_release(&pin);
    return true;
}

int cairn_db_vt_append(cairn_db *db, uint64_t version, uint64_t ts)
{
    pthread_mutex_lock(&db->vt_mu);
    if (db->vt_n == 0 && db->vt_off == 0)
        db->vt_base = version;
    uint64_t next = db->vt_base + db->vt_n;
    int rc = 0;
    /* Versions that failed (or were never logged) take the timestamp of the
     * next one, keeping the index non-decreasing. */
    while (next <= version) {
        if (db->vt_off + db->vt_n == db->vt_cap) {
            if (db->vt_off > db->vt_n) {
                memmove(db->vt_ts, db->vt_ts + db->vt_off,
                        db->vt_n * sizeof *db->vt_ts);
                db->vt_off = 0;
            } else {
                size_t nc = db->vt_cap ? db->vt_cap * 2 : 1024;
                uint64_t *p = realloc(db->vt_ts, nc * sizeof *p);
                if (!p) {
                    rc = CAIRN_ENOMEM;
                    break;
                }
                db->vt_ts = p;
                db->vt_cap = nc;
            }
        }
        db->vt_ts[db->vt_off + db->vt_n++] = ts;
        next++;
    }
    pthread_mutex_unlock(&db->vt_mu);
    return rc;
}

void cairn_db_vt_unappend(cairn_db *db, uint64_t v)
{
    pthread_mutex_lock(&db->vt_mu);
    if (db->vt_n > 0 && db->vt_base + db->vt_n - 1 == v)
        db->vt_n--;
    pthread_mutex_unlock(&db->vt_mu);
}

/* Newest version whose timestamp is <= t (0 if none is known), capped at
 * cap. vt_mu held. */
static uint64_t vt_version_at(cairn_db *db, uint64_t t, uint64_t cap)
{
    size_t lo = 0, hi = db->vt_n;
    /* No time indexed yet (no commit since open): vt_ts may be NULL, and
     * NULL + 0 is undefined, so no pointer is formed. */
    const uint64_t *v = hi ? db->vt_ts + db->vt_off : NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t ver = lo == 0 ? (db->vt_base ? db->vt_base - 1 : 0)
                           : db->vt_base + lo - 1;
    return ver < cap ? ver : cap;
}

/* Drop index entries below ver (keeps ver itself). vt_mu held. */
static void vt_trim(cairn_db *db, uint64_t ver)
{
    if (ver <= db->vt_base || db->vt_n == 0)
        return;
    uint64_t drop = ver - db->vt_base;
    if (drop >= db->vt_n)
        drop = db->vt_n - 1;
    db->vt_off += drop;
    db->vt_n -= drop;
    db->vt_base += drop;
}

/* ---------- snapshots ---------- */

db_tables *cairn_db_snap_register(cairn_db *db, snap_node *n)
{
    pthread_mutex_lock(&db->snap_mu);
    db_tables *t = cairn_db_tables_acquire(db, &n->version, NULL);
    n->next = db->snaps.next;
    n->prev = &db->snaps;
    db->snaps.next->prev = n;
    db->snaps.next = n;
    pthread_mutex_unlock(&db->snap_mu);
    return t;
}

void cairn_db_snap_unregister(cairn_db *db, snap_node *n)
{
    pthread_mutex_lock(&db->snap_mu);
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = NULL;
    pthread_mutex_unlock(&db->snap_mu);
}

/* ---------- publishing ---------- */

/* w is visible: wake its committer, or queue it to fire (pub_mu held). */
static void pub_mark(db_pub_waiter *w, db_pub_waiter ***fire_tail)
{
    if (w->fire) {
        w->done = true;
        w->fnext = NULL;
        **fire_tail = w;
        *fire_tail = &w->fnext;
    } else {
        /* Signal, then mark: a committer that sees done without pub_mu
         * (cairn_db_wait_published) returns and takes w (on its stack)
         * with it; nothing here touches w after the mark. */
        pthread_cond_signal(&w->cv);
        atomic_store_explicit(&w->done, true, memory_order_release);
    }
}

void cairn_db_settle(cairn_db *db, db_pub_waiter *w)
{
    db_pub_waiter *fire_head = NULL, **fire_tail = &fire_head;
    pthread_mutex_lock(&db->pub_mu);
    uint64_t vis = atomic_load(&db->visible);
    if (w->v > vis + 1) {
        /* An earlier version is still on its way: wait in line (sorted;
         * settlements come in version order, so this is rare). */
        db_pub_waiter **pp = &db->pub_waiters;
        while (*pp && (*pp)->v < w->v)
            pp = &(*pp)->next;
        w->next = *pp;
        *pp = w;
    } else {
        if (w->v > vis)
            vis = w->v;
        pub_mark(w, &fire_tail);
        /* Versions settled earlier that waited for this one go too. */
        db_pub_waiter *q = db->pub_waiters;
        while (q && q->v <= vis + 1) {
            if (q->v > vis)
                vis = q->v;
            db_pub_waiter *n = q->next;
            pub_mark(q, &fire_tail);
            q = n;
        }
        db->pub_waiters = q;
        atomic_store(&db->visible, vis);
        if (db->blind_waiters)
            pthread_cond_broadcast(&db->pub_cv);
    }
    pthread_mutex_unlock(&db->pub_mu);
    /* Asynchronous commits learn they are visible here, in version order;
     * a fired waiter may be freed by its callback. */
    while (fire_head) {
        db_pub_waiter *d = fire_head;
        fire_head = d->fnext;
        d->fire(d);
    }
}

void cairn_db_wait_published(cairn_db *db, db_pub_waiter *w)
{
    /* Usually visible already (the log's callbacks settle a round before
     * its waiters wake): then no pub_mu, for which a whole round's
     * committers would queue at once. */
    if (atomic_load_explicit(&w->done, memory_order_acquire))
        return;
    pthread_mutex_lock(&db->pub_mu);
    while (!w->done)
        pthread_cond_wait(&w->cv, &db->pub_mu);
    pthread_mutex_unlock(&db->pub_mu);
}

/* ---------- horizon and flush ---------- */

/* Commit time of version v if the index knows it (vt_mu held), else 0. */
static uint64_t vt_time_of(cairn_db *db, uint64_t v)
{
    if (db->vt_n == 0 || v < db->vt_base || v - db->vt_base >= db->vt_n)
        return 0;
    return db->vt_ts[db->vt_off + (v - db->vt_base)];
}

/* The horizon: oldest version any reader may still ask for. Raises
 * db->oldest (and oldest_ts, its commit time) to it and returns it, with
 * its time in *ts. */
static uint64_t gc_horizon(cairn_db *db, uint64_t *ts)
{
    uint64_t vis = atomic_load(&db->visible);
    uint64_t now = cairn_db_now_us();
    uint64_t cut = now > db->opts.history_ms * 1000u
                       ? now - db->opts.history_ms * 1000u
                       : 0;
    pthread_mutex_lock(&db->vt_mu);
    uint64_t H = vt_version_at(db, cut, vis);
    uint64_t H_ts = 0; /* H's time when the index does not know it */
    /* After a restart the index starts at the first version replayed from
     * the log; the versions below it (in sorted files) have unknown times,
     * so none of them is known to be out of the window until a version the
     * index knows is, or until the newest time in those files is: then
     * they all are, and that time stands for unknown_hi's (an upper bound;
     * reads as of earlier times are out of the window anyway). */
    if ((db->vt_n == 0 || db->vt_ts[db->vt_off] > cut) &&
        atomic_load(&db->oldest) < db->unknown_hi) {
        H = atomic_load(&db->oldest);
        if (db->unknown_ts != 0 && db->unknown_ts <= cut) {
            H = db->unknown_hi;
            H_ts = db->unknown_ts;
        }
    }
    pthread_mutex_unlock(&db->vt_mu);
    pthread_mutex_lock(&db->snap_mu);
    for (snap_node *s = db->snaps.next; s != &db->snaps; s = s->next)
        if (s->version < H)
            H = s->version;
    uint64_t old = atomic_load(&db->oldest);
    if (H > old) {
        pthread_mutex_lock(&db->vt_mu);
        uint64_t t = vt_time_of(db, H);
        pthread_mutex_unlock(&db->vt_mu);
        if (t == 0 && H == db->unknown_hi)
            t = H_ts;
        if (t) { /* unknown: keep the old horizon (collect less) */
            atomic_store(&db->oldest_ts, t);
            atomic_store(&db->oldest, H);
        } else {
            H = old;
        }
    } else {
        H = old;
    }
    *ts = atomic_load(&db->oldest_ts);
    pthread_mutex_unlock(&db->snap_mu);
    pthread_mutex_lock(&db->vt_mu);
    vt_trim(db, H);
    pthread_mutex_unlock(&db->vt_mu);
    return H;
}

/* A flush is where the row cache learns of writes (db_internal.h): before
 * mt's file replaces it in the table set, each key mt held is superseded
 * by its newest state there (its epoch bumped, an older entry dropped)
 * and, while the cache has free room, that state is offered to it (never
 * pushing out what reads brought in), so that reads of lately written
 * keys, soon only in files, need not go to the files. Values stored out
 * of line are superseded but left to reads to cache. Collector thread
 * (or open). */
static void rc_flush_pass(cairn_db *db, cairn_memtable *mt)
{
    if (!db->rcache)
        return;
    cairn_mt_iter it;
    cairn_mt_iter_init(&it, mt);
    cairn_mt_iter_seek_first(&it);
    const uint8_t *last = NULL;
    size_t last_len = 0;
    bool room = db->opts.row_cache_flush_offers &&
                cairn_row_cache_has_room(db->rcache);
    for (uint64_t n = 0; cairn_mt_iter_valid(&it); cairn_mt_iter_next(&it)) {
        cairn_mt_entry e;
        cairn_mt_iter_entry(&it, &e);
        if (last && e.klen == last_len && !memcmp(e.key, last, e.klen))
            continue; /* an older version of the key just done */
        last = e.key;
        last_len = e.klen;
        if (room && ++n % 256 == 0)
            room = cairn_row_cache_has_room(db->rcache);
        bool del = e.kind == CAIRN_MT_DELETE;
        cairn_row_cache_supersede(db->rcache,
                                  cairn_row_cache_hash(e.key, e.klen), e.key,
                                  e.klen, del ? NULL : e.value,
                                  del ? 0 : e.vlen, del, e.version, e.ts_us,
                                  room && e.kind != CAIRN_MT_BLOB);
    }
}

/* Write the frozen tables, oldest first, into level-0 files, dropping each
 * from the table set once its file is recorded; the log before what they
 * held may then go. Collector thread, or open during replay. */
static int flush_frozen(cairn_db *db)
{
    for (;;) {
        pthread_mutex_lock(&db->tables_mu);
        db_tables *cur = db->tables;
        if (cur->nimm == 0) {
            pthread_mutex_unlock(&db->tables_mu);
            return 0;
        }
        cairn_memtable *mt = cur->imm[cur->nimm - 1];
        uint64_t lsn = cur->imm_lsn[cur->nimm - 1];
        cairn_memtable_ref(mt);
        pthread_mutex_unlock(&db->tables_mu);

        uint64_t last = cairn_memtable_max_version(mt);
        if (last < cairn_tree_last_version(db->tree))
            last = cairn_tree_last_version(db->tree);
        if (lsn < cairn_tree_log_lsn(db->tree))
            lsn = cairn_tree_log_lsn(db->tree);
        uint64_t bytes = 0;
        int rc = cairn_tree_flush(db->tree, mt, lsn, last, &bytes);
        if (rc != 0) {
            cairn_memtable_unref(mt);
            if (rc == CAIRN_EREADONLY)
                atomic_store(&db->fatal, CAIRN_EREADONLY);
            return rc;
        }
        rc_flush_pass(db, mt);
        cairn_tree_view *view = cairn_tree_view_get(db->tree);
        pthread_mutex_lock(&db->tables_mu);
        cur = db->tables; /* frozen tables leave only under flush_mu */
        db_tables *next = tables_new(cur->active, cur->imm, cur->imm_lsn,
                                     cur->nimm - 1, view);
        if (next)
            tables_install(db, next);
        pthread_mutex_unlock(&db->tables_mu);
        cairn_tree_view_unref(view);
        cairn_memtable_unref(mt);
        if (!next)
            return CAIRN_ENOMEM; /* the table stays; the next run drops it */
        cairn_db_slots_scrape(db);
        cairn_db_tables_release(cur);
        atomic_fetch_add(&db->st_gc_runs, 1);
        if (db->wal)
            cairn_wal_truncate_before(db->wal, lsn + 1);
    }
}

/* Freeze the active table (when there is room for another frozen one) and
 * flush the frozen tables into sorted files. Called by the collector
 * thread, or by open during replay (no other thread then). */
static int gc_run_locked(cairn_db *db);

static int gc_run(cairn_db *db)
{
    pthread_mutex_lock(&db->flush_mu);
    int rc = gc_run_locked(db);
    pthread_mutex_unlock(&db->flush_mu);
    return rc;
}

static int gc_run_locked(cairn_db *db)
{
    pthread_mutex_lock(&db->tables_mu);
    db_tables *old = db->tables;
    /* After failed flushes (no space, ...) frozen tables pile up: flush
     * those first rather than freeze again, so none is ever dropped. */
    bool freeze = old->nimm + 1 < sizeof old->imm / sizeof old->imm[0] &&
                  cairn_memtable_count(old->active) > 0;
    pthread_mutex_unlock(&db->tables_mu);
    if (freeze) {
        cairn_memtable *fresh = cairn_db_memtable_new(db);
        if (!fresh)
            return CAIRN_ENOMEM;
        pthread_mutex_lock(&db->tables_mu);
        old = db->tables; /* unchanged: swaps happen under flush_mu */
        cairn_memtable *imm[4];
        uint64_t imm_lsn[4];
        size_t nimm = 0;
        imm_lsn[nimm] = 0; /* filled in below, once its writers are done */
        imm[nimm++] = old->active;
        for (size_t i = 0; i < old->nimm; i++) {
            imm_lsn[nimm] = old->imm_lsn[i];
            imm[nimm++] = old->imm[i];
        }
        db_tables *frozen = tables_new(fresh, imm, imm_lsn, nimm, old->view);
        if (!frozen) {
            pthread_mutex_unlock(&db->tables_mu);
            cairn_memtable_unref(fresh);
            return CAIRN_ENOMEM;
        }
        tables_install(db, frozen);
        uint64_t gen = db->active_gen++;
        atomic_store(&db->active_bytes, 0);
        pthread_mutex_unlock(&db->tables_mu);
        cairn_db_slots_scrape(db);
        cairn_memtable_unref(fresh); /* the table set holds it */

        /* Commits that took the old active table before the swap finish
         * their inserts first. (Writers of generation gen - 2, which share
         * the counter, were waited for at the previous freeze.) */
        while (atomic_load(&db->writers[gen & 1]) > 0) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
        /* Only the collector reads imm_lsn; no writer of generation gen + 2
         * exists before the next freeze. */
        frozen->imm_lsn[0] = atomic_exchange(&db->gen_lsn[gen & 1], 0);
        cairn_db_tables_release(old);
    }
    return flush_frozen(db);
}

/* The tree asks which versions flush and compaction must keep. */
static uint64_t tree_horizon(void *arg, uint64_t *ts)
{
    return gc_horizon(arg, ts);
}

static void *gc_main(void *arg)
{
    cairn_db *db = arg;
    /* Nice first, name second: a thread seen by its name has its nice. */
    cairn_thread_nice(db->opts.background_nice);
    pthread_setname_np(pthread_self(), "cairn-collect");
    pthread_mutex_lock(&db->gc_mu);
    for (;;) {
        bool timed_out = false;
        while (!db->gc_request && !db->gc_stop && !timed_out) {
            if (!db->blobs || db->read_only) {
                pthread_cond_wait(&db->gc_cv, &db->gc_mu);
                continue;
            }
            /* The blob store's garbage is looked at every second. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            timed_out = pthread_cond_timedwait(&db->gc_cv, &db->gc_mu,
                                               &ts) != 0;
        }
        if (db->gc_stop)
            break;
        bool flush = db->gc_request;
        db->gc_request = false;
        db->gc_busy = flush;
        pthread_mutex_unlock(&db->gc_mu);
        int rc = flush ? gc_run(db) : 0;
        if (flush)
            atomic_store(&db->flush_error, rc);
        if (flush && rc != 0)
            atomic_fetch_add(&db->st_flush_failures, 1);
        cairn_db_blob_background(db);
        pthread_mutex_lock(&db->gc_mu);
        db->gc_busy = false;
        pthread_cond_broadcast(&db->gc_idle_cv);
        if (rc != 0) {
            /* Out of memory: try again a little later, not in a spin. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&db->gc_cv, &db->gc_mu, &ts);
            db->gc_request = true;
        }
    }
    pthread_mutex_unlock(&db->gc_mu);
    return NULL;
}

/* The active memtable may outgrow its size while the collector freezes
 * it; writers wait past this many times its size. */
#define ACTIVE_HARD_LIMIT 4

int cairn_db_throttle(cairn_db *db, size_t bytes)
{
    /* The common case (room, no pressure) and a failing flush, without a
     * wait. */
    int ferr = cairn_db_throttle_try(db);
    if (ferr != CAIRN_EBUSY)
        return ferr;
    /* Frozen memtables piling up (flushes cannot keep up, or fail): wait
     * for the collector rather than grow memory without bound. */
    for (int i = 0; i < 10000; i++) {
        uint64_t active = atomic_load(&db->active_bytes);
        if (active < db->opts.memtable_size)
            break; /* the common case, without a lock */
        pthread_mutex_lock(&db->tables_mu);
        /* Also when the collector has not even frozen the active table
         * (a starved thread on a loaded machine): it must not grow past a
         * few times its size either. */
        bool full = (db->tables->nimm >= 3 &&
                     atomic_load(&db->active_bytes) >= db->opts.memtable_size) ||
                    active >= ACTIVE_HARD_LIMIT * (uint64_t)db->opts.memtable_size;
        pthread_mutex_unlock(&db->tables_mu);
        if (!full)
            break;
        ferr = atomic_load(&db->flush_error);
        if (ferr != 0 && ferr != CAIRN_ENOMEM)
            return ferr; /* e.g. no space for sorted files: say so */
        atomic_fetch_add(&db->st_stalls, 1);
        cairn_db_gc_kick(db);
        struct timespec d = {0, 1000000};
        nanosleep(&d, NULL);
    }
    if (!db->tree)
        return 0;
    int p = cairn_tree_pressure(db->tree);
    if (p == 1) {
        /* Slow writes to about 16 MB/s while level 0 is past its slowdown
         * mark: every 16 KiB committed in that state costs a 1 ms pause
         * (to whichever commit crosses the mark). */
        uint64_t before = atomic_fetch_add(&db->slow_debt, bytes);
        if ((before + bytes) / 16384 != before / 16384) {
            atomic_fetch_add(&db->st_slowdowns, 1);
            struct timespec d = {0, 1000000};
            nanosleep(&d, NULL);
        }
        return 0;
    }
    while (p == 2) {
        cairn_tree_stats ts;
        cairn_tree_get_stats(db->tree, &ts);
        if (ts.bg_error)
            return ts.bg_error; /* compaction cannot make room: say why */
        atomic_fetch_add(&db->st_stalls, 1);
        cairn_tree_wait_pressure(db->tree, 2, 100);
        p = cairn_tree_pressure(db->tree);
    }
    return 0;
}

int cairn_db_throttle_try(cairn_db *db)
{
    /* Flushes failing (e.g. no space for sorted files): refuse to grow the
     * memtables past their size rather than take memory without bound. */
    int ferr = atomic_load(&db->flush_error);
    if (ferr != 0 && ferr != CAIRN_ENOMEM &&
        atomic_load(&db->active_bytes) >= db->opts.memtable_size)
        return ferr;
    uint64_t active = atomic_load(&db->active_bytes);
    if (active >= db->opts.memtable_size) {
        pthread_mutex_lock(&db->tables_mu);
        bool full = db->tables->nimm >= 3 ||
                    active >= ACTIVE_HARD_LIMIT *
                                  (uint64_t)db->opts.memtable_size;
        pthread_mutex_unlock(&db->tables_mu);
        if (full)
            return CAIRN_EBUSY;
    }
    if (db->tree && cairn_tree_pressure(db->tree) != 0)
        return CAIRN_EBUSY; /* slowdown or stall: the waiting path decides */
    return 0;
}

void cairn_db_gc_kick(cairn_db *db)
{
    pthread_mutex_lock(&db->gc_mu);
    if (!db->gc_request) {
        db->gc_request = true;
        pthread_cond_signal(&db->gc_cv);
    }
    pthread_mutex_unlock(&db->gc_mu);
}

/* ---------- open / close ---------- */

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* Read or create the FORMAT file. */
static int check_format(cairn_db *db, bool fresh)
{
    char *fp = join(db->path, "FORMAT");
    if (!fp)
        return CAIRN_ENOMEM;
    cairn_file *f = NULL;
    int rc = cairn_env_exists(db->env, fp);
    if (rc == CAIRN_ENOTFOUND) {
        if (!fresh || db->read_only) {
            free(fp);
            return fresh ? CAIRN_EREADONLY : CAIRN_ENOTFOUND;
        }
        char line[32];
        int n = snprintf(line, sizeof line, "cairn-db %d\n",
                         CAIRN_DB_FORMAT_VERSION);
        rc = cairn_env_open(db->env, fp,
                            CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                CAIRN_OPEN_TRUNC,
                            &f);
        if (rc == 0)
            rc = cairn_file_write_at(f, 0, line, (size_t)n);
        if (rc == 0)
            rc = cairn_file_sync(f, CAIRN_SYNC_FULL);
        if (f) {
            int crc = cairn_file_close(f);
            if (rc == 0)
                rc = crc;
        }
        if (rc == 0)
            rc = cairn_env_sync_dir(db->env, db->path);
        free(fp);
        return rc;
    }
    if (rc != 0) {
        free(fp);
        return rc;
    }
    rc = cairn_env_open(db->env, fp, CAIRN_OPEN_READ, &f);
    free(fp);
    if (rc != 0)
        return rc;
    char buf[64] = {0};
    size_t got = 0;
    rc = cairn_file_read_at(f, 0, buf, sizeof buf - 1, &got);
    cairn_file_close(f);
    if (rc != 0)
        return rc;
    buf[got] = 0;
    int ver = 0;
    if (sscanf(buf, "cairn-db %d", &ver) != 1 || ver < 1) {
        open_fail("%s/FORMAT: not a \"cairn-db N\" line", db->path);
        return CAIRN_ECORRUPT;
    }
    if (ver > CAIRN_DB_FORMAT_VERSION)
        return CAIRN_EVERSION;
    return 0;
}

static int replay_cb(void *arg, const cairn_wal_record *rec)
{
    cairn_db *db = arg;
    int rc = cairn_db_apply_replay(db, rec);
    if (rc != 0) {
        const uint8_t *p = rec->data;
        if (rec->len >= 16)
            open_fail("replaying the log: the record at LSN %" PRIu64
                      " (type %u, %zu bytes, version %" PRIu64
                      ", time %" PRIu64 " us) was refused (%s); the log had "
                      "replayed up to version %" PRIu64 ", time %" PRIu64
                      " us, on top of sorted files holding versions up to %"
                      PRIu64,
                      rec->lsn, (unsigned)rec->type, (size_t)rec->len,
                      cairn_get_u64(p), cairn_get_u64(p + 8),
                      cairn_strerror(rc), db->last_assigned, db->last_ts,
                      db->flushed_version);
        else
            open_fail("replaying the log: the record at LSN %" PRIu64
                      " (type %u, %zu bytes) was refused (%s)",
                      rec->lsn, (unsigned)rec->type, (size_t)rec->len,
                      cairn_strerror(rc));
        return rc;
    }
    atomic_store(&db->gen_lsn[db->active_gen & 1], rec->lsn);
    /* Keep memory bounded while replaying a long log. A read-only open
     * cannot write sorted files: its memtable holds the whole log (a flush
     * would fail the open with CAIRN_EREADONLY, or, with no tree yet,
     * reach a NULL tree). */
    uint64_t bytes = rec->len + 64;
    if (atomic_fetch_add(&db->active_bytes, bytes) + bytes >=
            db->opts.memtable_size &&
        !db->read_only)
        rc = gc_run(db);
    return rc;
}

/* A move between tiers changed the tree's view: a new table set with the
 * same memtables and that view, so readers go to the new copy and the old
 * one can go. (A flush racing with this may install its own, older view:
 * still a whole, valid state; the next flush or move moves on.) */
static void tree_view_changed(void *arg)
{
    cairn_db *db = arg;
    cairn_tree_view *view = cairn_tree_view_get(db->tree);
    pthread_mutex_lock(&db->tables_mu);
    db_tables *cur = db->tables;
    db_tables *next = tables_new(cur->active, cur->imm, cur->imm_lsn,
                                 cur->nimm, view);
    if (next)
        tables_install(db, next);
    pthread_mutex_unlock(&db->tables_mu);
    cairn_tree_view_unref(view);
    if (next) {
        cairn_db_slots_scrape(db);
        cairn_db_tables_release(cur);
    }
}

/* Open the sorted files (creating the tree of a new or older database)
 * and take what they cover as the starting point of replay. */
static int open_tree(cairn_db *db)
{
    cairn_options *o = &db->opts;
    cairn_tree_options to;
    cairn_tree_options_init(&to);
    if (o->block_cache_size)
        to.block_cache_bytes = o->block_cache_size;
    if (o->sst_target_file_size)
        to.target_file_size = o->sst_target_file_size;
    if (o->level_base_size)
        to.base_level_bytes = o->level_base_size;
    if (o->l0_compaction_trigger) {
        to.l0_compaction_trigger = o->l0_compaction_trigger;
        if (to.l0_slowdown < to.l0_compaction_trigger)
            to.l0_slowdown = to.l0_compaction_trigger;
        if (to.l0_stop < to.l0_slowdown)
            to.l0_stop = to.l0_slowdown;
    }
    if (o->sst_block_size)
        to.block_size = o->sst_block_size;
    to.background_nice = o->background_nice;
    to.read_only = o->read_only;
    to.create_if_missing = !o->read_only;
    to.horizon = tree_horizon;
    to.horizon_arg = db;
    to.archive_dir = o->archive_dir;
    to.archive_policy.min_level = o->archive_min_level;
    to.archive_policy.min_age_s = o->archive_min_age_s;
    if (o->archive_zstd_level > 0)
        to.archive_zstd_level = o->archive_zstd_level;
    to.view_changed = tree_view_changed;
    to.view_changed_arg = db;
    to.file_open_hook = cairn_db_blob_file_open;
    to.file_close_hook = cairn_db_blob_file_close;
    to.file_hook_arg = db;
    char msg[512];
    msg[0] = '\0';
    int rc = cairn_tree_open(db->env, db->path, &to, &db->tree, msg,
                             sizeof msg);
    if (rc == CAIRN_ENOTFOUND && o->read_only)
        return 0; /* never flushed: everything is in the log */
    if (rc != 0) {
        open_fail("sorted files: %s", msg[0] ? msg : cairn_strerror(rc));
        return rc;
    }
    cairn_tree_view *view = cairn_tree_view_get(db->tree);
    db->tables->view = view; /* not shared yet */
    db->flushed_version = cairn_tree_last_version(db->tree);
    db->last_assigned = db->flushed_version;
    /* Reads as of versions whose history flush or compaction dropped are
     * refused (the time index of older versions is rebuilt only from the
     * log, so reads by time start there too). */
    uint64_t hts = 0;
    atomic_store(&db->oldest, cairn_tree_horizon(db->tree, &hts));
    atomic_store(&db->oldest_ts, hts);
    db->unknown_hi = db->flushed_version;
    for (size_t i = 0; i < cairn_tree_view_nfiles(view); i++) {
        const cairn_sst_reader *r = cairn_tree_view_reader(view, i);
        /* An archived file out of reach: its creation time bounds its
         * commit times from above (the safe side). */
        uint64_t mts = r ? cairn_sst_props_get(r)->max_ts
                         : cairn_tree_view_meta(view, i)->created_us;
        if (mts > db->unknown_ts)
            db->unknown_ts = mts;
    }
    if (db->unknown_ts > db->last_ts)
        db->last_ts = db->unknown_ts;
    return 0;
}

static void db_free(cairn_db *db)
{
    if (!db)
        return;
    /* No move may take a new view into the table sets from here on. */
    cairn_tree_archive_stop(db->tree);
    cairn_db_slots_scrape(db);
    free(db->slots);
    db->slots = NULL;
    if (db->tables)
        cairn_db_tables_release(db->tables);
    db->tables = NULL;
    cairn_tree_close(db->tree);
    cairn_db_blob_close(db); /* after everything that counts references */
    pthread_mutex_destroy(&db->blob_err_mu);
    cairn_env_unlock(db->lock);
    free(db->inflight);
    free(db->vt_ts);
    cairn_row_cache_free(db->rcache);
    cairn_ts_store_free(db->ts);
    pthread_mutex_destroy(&db->ts_mu);
    pthread_mutex_destroy(&db->commit_mu);
    pthread_mutex_destroy(&db->inflight_mu);
    pthread_mutex_destroy(&db->vt_mu);
    pthread_mutex_destroy(&db->snap_mu);
    pthread_mutex_destroy(&db->tables_mu);
    pthread_mutex_destroy(&db->pub_mu);
    pthread_cond_destroy(&db->pub_cv);
    pthread_mutex_destroy(&db->gc_mu);
    pthread_mutex_destroy(&db->flush_mu);
    pthread_cond_destroy(&db->gc_cv);
    pthread_cond_destroy(&db->gc_idle_cv);
    free(db->path);
    free(db->wal_dir);
    cairn_memtable_pool_unreserve(db->pool_reserved);
    free(db);
}

int cairn_open(const char *path, const cairn_options *opts, cairn_db **out)
{
    open_err[0] = '\0';
    int rc = open_db(path, opts, out);
    if (rc != 0)
        open_fail("%s", cairn_strerror(rc)); /* unless a layer said more */
    return rc;
}

static int open_db(const char *path, const cairn_options *opts,
                   cairn_db **out)
{
    if (!path || !*path || !out)
        return CAIRN_EINVAL;
    *out = NULL;
    cairn_db *db = calloc(1, sizeof *db);
    if (!db)
        return CAIRN_ENOMEM;
    if (opts)
        db->opts = *opts;
    else
        cairn_options_init(&db->opts);
    static atomic_uint_fast64_t opens;
    db->open_id = atomic_fetch_add(&opens, 1) + 1;
    cairn_options *o = &db->opts;
    if (o->sync_mode > CAIRN_SYNC_NONE ||
        o->isolation > CAIRN_ISOLATION_SERIALIZABLE ||
        o->background_nice < 0 || o->background_nice > 20) {
        free(db);
        return CAIRN_EINVAL;
    }
    if (o->isolation == CAIRN_ISOLATION_DEFAULT)
        o->isolation = CAIRN_ISOLATION_SNAPSHOT;
    if (o->memtable_size == 0)
        o->memtable_size = 64u << 20;
    if (o->max_key_size == 0)
        o->max_key_size = 65536;
    if (o->max_value_size == 0)
        o->max_value_size = 64u << 20;
    if (o->max_key_size > 0xFFFFFFFFu || o->max_value_size > 0xFFFFFFFFu) {
        free(db);
        return CAIRN_EINVAL;
    }
    static atomic_uint_fast64_t next_id = 1;
    db->id = atomic_fetch_add(&next_id, 1);
    /* One memtable's worth of arena blocks outlives its memtable, for the
     * next one (memtable.c, block pool); given back in db_free. */
    db->pool_reserved = o->memtable_size;
    cairn_memtable_pool_reserve(db->pool_reserved);
    /* Without slots (out of memory) every read takes the locked path. */
    db->slots = aligned_alloc(_Alignof(db_slot), DB_SLOTS * sizeof(db_slot));
    if (db->slots)
        memset(db->slots, 0, DB_SLOTS * sizeof(db_slot));
    db->env = o->env ? o->env : cairn_env_posix();
    db->read_only = o->read_only;
    /* Hot locks spin a little before sleeping: their critical sections
     * are short, and with many committers a sleep/wake pair costs more. */
    pthread_mutexattr_t spin;
    pthread_mutexattr_init(&spin);
    pthread_mutexattr_settype(&spin, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(&db->ts_mu, NULL);
    pthread_mutex_init(&db->commit_mu, &spin);
    pthread_mutex_init(&db->inflight_mu, &spin);
    pthread_mutex_init(&db->vt_mu, NULL);
    pthread_mutex_init(&db->snap_mu, &spin);
    pthread_mutex_init(&db->tables_mu, &spin);
    pthread_mutex_init(&db->pub_mu, &spin);
    pthread_mutexattr_destroy(&spin);
    pthread_cond_init(&db->pub_cv, NULL);
    pthread_mutex_init(&db->gc_mu, NULL);
    pthread_mutex_init(&db->flush_mu, NULL);
    pthread_mutex_init(&db->blob_err_mu, NULL);
    pthread_cond_init(&db->gc_cv, NULL);
    pthread_cond_init(&db->gc_idle_cv, NULL);
    db->snaps.next = db->snaps.prev = &db->snaps;
    atomic_init(&db->visible, 0);
    atomic_init(&db->oldest, 0);
    atomic_init(&db->active_bytes, 0);
    atomic_init(&db->fatal, 0);
    atomic_init(&db->flush_error, 0);
    atomic_init(&db->writers[0], 0);
    atomic_init(&db->writers[1], 0);
    db->path = strdup(path);
    db->wal_dir = join(path, "wal");
    int rc = db->path && db->wal_dir ? 0 : CAIRN_ENOMEM;

    bool fresh = false;
    if (rc == 0) {
        rc = cairn_env_exists(db->env, path);
        if (rc == CAIRN_ENOTFOUND && o->create_if_missing && !o->read_only) {
            rc = cairn_env_mkdir_p(db->env, path);
            fresh = true;
        }
    }
    if (rc == 0 && !fresh) {
        /* An existing directory is a database if it has FORMAT; an empty
         * one may become one. */
        char **names = NULL;
        size_t count = 0;
        rc = cairn_env_list_dir(db->env, path, &names, &count);
        if (rc == 0) {
            fresh = count == 0;
            cairn_env_free_list(names, count);
        }
        if (rc == 0 && fresh && !o->create_if_missing)
            rc = CAIRN_ENOTFOUND;
    }
    /* One process at a time, before anything is read or written (the
     * sorted files' manifest is opened before the log, which locks its own
     * directory too). */
    if (rc == 0 && !o->read_only) {
        char *lp = join(path, "LOCK");
        rc = lp ? cairn_env_lock(db->env, lp, &db->lock) : CAIRN_ENOMEM;
        free(lp);
    }
    if (rc == 0)
        rc = check_format(db, fresh);

    if (rc == 0) {
        rc = cairn_db_blob_open(db); /* before the tree: it counts refs */
        if (rc != 0)
            open_fail("blob store: %s",
                      db->blob_err[0] ? db->blob_err : cairn_strerror(rc));
    }
    cairn_memtable *mt = NULL;
    if (rc == 0) {
        mt = cairn_db_memtable_new(db);
        db->tables = mt ? tables_new(mt, NULL, NULL, 0, NULL) : NULL;
        cairn_memtable_unref(mt);
        if (!db->tables)
            rc = CAIRN_ENOMEM;
    }
    if (rc == 0)
        rc = open_tree(db);
    if (rc == 0)
        cairn_db_blob_after_tree(db);
    if (rc == 0) {
        cairn_wal_options wo;
        cairn_wal_options_init(&wo);
        wo.env = db->env;
        wo.sync_mode = o->sync_mode == CAIRN_SYNC_ALWAYS     ? CAIRN_WAL_SYNC_ALWAYS
                       : o->sync_mode == CAIRN_SYNC_INTERVAL ? CAIRN_WAL_SYNC_INTERVAL
                                                             : CAIRN_WAL_SYNC_NONE;
        wo.sync_interval_ms = o->sync_interval_ms ? o->sync_interval_ms : 1000;
        if (o->wal_segment_size)
            wo.segment_size = o->wal_segment_size;
        wo.read_only = o->read_only;
        wo.replay = replay_cb;
        wo.replay_arg = db;
        /* A commit record carries the value plus framing. */
        wo.max_record = (uint64_t)o->max_value_size + o->max_key_size + 64;
        if (wo.max_record < CAIRN_WAL_DEFAULT_MAX_RECORD)
            wo.max_record = CAIRN_WAL_DEFAULT_MAX_RECORD;
        if (wo.max_record > CAIRN_WAL_HARD_MAX_RECORD)
            wo.max_record = CAIRN_WAL_HARD_MAX_RECORD;
        /* A read-only open of a database that never logged anything has
         * nothing to read and creates nothing. */
        if (!o->read_only)
            rc = cairn_env_mkdir_p(db->env, db->wal_dir);
        cairn_wal_recovery winfo;
        memset(&winfo, 0, sizeof winfo);
        /* (Before replay, whose flushes raise it.) */
        uint64_t covered = db->tree ? cairn_tree_log_lsn(db->tree) : 0;
        if (rc == 0 && (!o->read_only ||
                        cairn_env_exists(db->env, db->wal_dir) == 0)) {
            rc = cairn_wal_open(db->wal_dir, &wo, &db->wal, &winfo);
            if (rc != 0 && winfo.message[0])
                open_fail("log: %s", winfo.message);
        }
        /* The log must reach back to what the sorted files hold: segments
         * are dropped only below a flush the manifest recorded, so a log
         * starting after the manifest's LSN means records that are in
         * neither (a manifest whose last edits were cut off, as a torn
         * tail, after the log was truncated). Replaying the rest would show
         * a state that never existed. */
        if (rc == 0 && db->wal && winfo.segments > 0 &&
            winfo.chain_start > covered) {
            open_fail("log: it starts after LSN %" PRIu64 ", but the sorted "
                      "files cover the log only up to LSN %" PRIu64
                      " (segments in between are missing)",
                      winfo.chain_start, covered);
            rc = CAIRN_ECORRUPT;
        }
        if (rc == 0 && db->wal)
            cairn_wal_set_batch_hook(db->wal, cairn_txn_apply_batch, db);
    }
    if (rc == 0 && db->tree)
        cairn_tree_compact_kick(db->tree); /* level 0 may need it already */
    if (rc == 0) {
        /* Made after replay, so it starts empty: every flush from here on
         * supersedes its keys' entries. */
        db->rcache = cairn_row_cache_new(o->row_cache_size, 0);
        if (!db->rcache)
            rc = CAIRN_ENOMEM;
        else
            cairn_row_cache_set_admit_all(db->rcache, o->row_cache_admit_all);
    }
    if (rc == 0) {
        atomic_store(&db->visible, db->last_assigned);
        if (pthread_create(&db->gc_thread, NULL, gc_main, db) == 0)
            db->gc_started = true;
        else
            rc = CAIRN_ENOMEM;
    }
    if (rc != 0) {
        if (db->wal)
            cairn_wal_close(db->wal);
        db_free(db);
        return rc;
    }
    if (db->tree)
        cairn_tree_archive_kick(db->tree); /* table sets are ready */
    *out = db;
    return 0;
}

int cairn_flush(cairn_db *db)
{
    if (!db)
        return CAIRN_EINVAL;
    if (db->read_only || !db->tree)
        return CAIRN_EREADONLY;
    int rc = atomic_load(&db->fatal);
    if (rc != 0)
        return rc;
    /* Everything committed so far is in the active memtable or frozen
     * ones: freeze and write them all. */
    return gc_run(db);
}

/* The collector has a flush running or asked for (gc_mu held). */
static bool gc_pending(const cairn_db *db)
{
    return db->gc_started && !db->gc_stop && (db->gc_request || db->gc_busy);
}

/* Waits for !gc_pending (gc_mu held); CAIRN_EBUSY past the deadline. */
static int gc_wait_idle(cairn_db *db, const struct timespec *deadline)
{
    while (gc_pending(db) &&
           pthread_cond_timedwait(&db->gc_idle_cv, &db->gc_mu, deadline) !=
               ETIMEDOUT) {
    }
    return gc_pending(db) ? CAIRN_EBUSY : 0;
}

int cairn_wait_idle(cairn_db *db, uint32_t timeout_ms)
{
    if (!db)
        return CAIRN_EINVAL;
    struct timespec deadline;
    cairn_deadline_ms(&deadline, timeout_ms);
    /* A flush kicks the compaction thread before the collector goes idle;
     * a compaction asks for no flush: collector, then compactions, then
     * the collector once more (a write meanwhile may have asked). */
    for (;;) {
        pthread_mutex_lock(&db->gc_mu);
        int rc = gc_wait_idle(db, &deadline);
        pthread_mutex_unlock(&db->gc_mu);
        if (rc == 0 && db->tree)
            rc = cairn_tree_wait_idle(db->tree, &deadline);
        if (rc != 0)
            return rc;
        pthread_mutex_lock(&db->gc_mu);
        bool again = gc_pending(db);
        pthread_mutex_unlock(&db->gc_mu);
        if (!again)
            return 0;
    }
}

int cairn_compact(cairn_db *db, cairn_compact_progress_fn fn, void *arg)
{
    int rc = cairn_flush(db);
    if (rc != 0)
        return rc;
    rc = cairn_tree_compact_full(db->tree, fn, arg);
    if (rc == 0)
        rc = atomic_load(&db->fatal);
    return rc;
}

int cairn_close(cairn_db *db)
{
    if (!db)
        return CAIRN_EINVAL;
    if (db->gc_started) {
        pthread_mutex_lock(&db->gc_mu);
        db->gc_stop = true;
        pthread_cond_signal(&db->gc_cv);
        pthread_cond_broadcast(&db->gc_idle_cv);
        pthread_mutex_unlock(&db->gc_mu);
        pthread_join(db->gc_thread, NULL);
    }
    /* A clean close leaves the memtables in sorted files, so the next open
     * replays (almost) nothing. Best effort: if it fails, the log still
     * holds everything. */
    uint64_t covered = 0;
    if (!db->read_only && db->tree && db->wal && atomic_load(&db->fatal) == 0 &&
        cairn_wal_status(db->wal) == 0 && gc_run(db) == 0)
        covered = cairn_tree_log_lsn(db->tree);
    int rc = db->wal ? cairn_wal_close_covered(db->wal, covered) : 0;
    db_free(db);
    return rc;
}

/* ---------- time travel ---------- */

uint64_t cairn_current_version(cairn_db *db)
{
    return db ? atomic_load(&db->visible) : 0;
}

uint64_t cairn_oldest_version(cairn_db *db)
{
    return db ? atomic_load(&db->oldest) : 0;
}

/* Resolve a time to a version readable now: 0 / EHISTORY / EINVAL. */
int cairn_db_version_at_time(cairn_db *db, uint64_t t, uint64_t vis,
                             uint64_t oldest, uint64_t *ver, uint64_t *max_ts)
{
    if (t > cairn_db_now_us() + 1000000u)
        return CAIRN_EINVAL; /* the future (beyond clock jitter) */
    *max_ts = t; /* reads filter by time too: exact even when the version
                    is only an upper bound */
    pthread_mutex_lock(&db->vt_mu);
    uint64_t v = vt_version_at(db, t, vis);
    /* The index starts at the oldest version kept (or at the first version
     * ever, if nothing was collected), or, after a restart, at the first
     * version replayed from the log; `oldest` may be a little stale (the
     * collector may have moved on since the caller read it), so judge by
     * the index. */
    uint64_t first = db->vt_base;
    bool before = db->vt_n == 0 || t < db->vt_ts[db->vt_off];
    pthread_mutex_unlock(&db->vt_mu);
    if (before && (oldest < db->unknown_hi ||
                   (oldest == db->unknown_hi && oldest > 0))) {
        /* t falls among versions from sorted files whose times are not
         * indexed: fine as long as it is not before the horizon's time
         * (the horizon may be unknown_hi itself, once the files' newest
         * time left the window: see gc_horizon). */
        uint64_t ots = atomic_load(&db->oldest_ts);
        if (oldest > 0 && t < ots)
            return CAIRN_EHISTORY;
        *ver = db->vt_n ? first - 1 : vis;
        if (*ver > vis)
            *ver = vis;
        return 0;
    }
    bool collected = oldest > 0 || first > 1;
    if (collected && (before || v < oldest))
        return CAIRN_EHISTORY;
    *ver = v;
    return 0;
}

static int get_at(cairn_db *db, const void *key, size_t klen, bool by_time,
                  uint64_t at, void **val, size_t *vlen)
{
    if (!db || (!key && klen) || !val)
        return CAIRN_EINVAL;
    if (klen > db->opts.max_key_size)
        return CAIRN_ETOOLARGE;
    uint64_t vis, oldest;
    db_tables *t = cairn_db_tables_acquire(db, &vis, &oldest);
    uint64_t ver = at, max_ts = UINT64_MAX;
    int rc = 0;
    if (by_time)
        rc = cairn_db_version_at_time(db, at, vis, oldest, &ver, &max_ts);
    else if (ver > vis)
        rc = CAIRN_EINVAL;
    else if (ver < oldest)
        rc = CAIRN_EHISTORY;
    /* The memtables first; then the row cache answers reads of the past
     * too (an entry's version is the newest of its key in the files);
     * they never fill it. */
    cairn_mt_entry e;
    int r = rc == 0 ? cairn_db_read_mem(t, key, klen, ver, max_ts, &e) : 0;
    if (rc == 0 && r == 0 && cairn_row_cache_enabled(db->rcache) &&
        cairn_db_has_files(t) &&
        cairn_db_rc_lookup(db, cairn_row_cache_hash(key, klen), key, klen, ver,
                           max_ts, val, vlen, &rc, NULL)) {
        cairn_db_tables_release(t);
        return rc;
    }
    if (rc == 0) {
        cairn_sst_pin pin = {0};
        if (r == 0)
            r = cairn_db_read_files(t, key, klen, ver, max_ts, &e, &pin);
        if (r < 0)
            rc = r;
        else if (r == 0 || e.kind == CAIRN_MT_DELETE)
            rc = CAIRN_ENOTFOUND;
        else
            rc = cairn_db_copy_value(db, &e, val, vlen);
        cairn_sst_pin_release(&pin);
    }
    cairn_db_tables_release(t);
    return rc;
}

int cairn_get_at_version(cairn_db *db, const void *key, size_t klen,
                         uint64_t version, void **val, size_t *vlen)
{
    return get_at(db, key, klen, false, version, val, vlen);
}

int cairn_get_at_time(cairn_db *db, const void *key, size_t klen,
                      uint64_t time_us, void **val, size_t *vlen)
{
    return get_at(db, key, klen, true, time_us, val, vlen);
}

/* Collects the versions of a key found in the sorted files. */
typedef struct kv_acc {
    cairn_db *db;
    cairn_key_version **v;
    size_t *cnt, *cap;
    size_t max;
    uint64_t oldest;
    bool below;
    int rc;
} kv_acc;

static int kv_add(void *arg, const cairn_sst_entry *e)
{
    kv_acc *a = arg;
    if (a->below || (a->max && *a->cnt == a->max))
        return 1;
    if (e->version <= a->oldest)
        a->below = true; /* older ones may be partly collected */
    if (*a->cnt == *a->cap) {
        size_t nc = *a->cap ? *a->cap * 2 : 8;
        cairn_key_version *p = realloc(*a->v, nc * sizeof *p);
        if (!p) {
            a->rc = CAIRN_ENOMEM;
            return 1;
        }
        *a->v = p;
        *a->cap = nc;
    }
    cairn_key_version *kv = &(*a->v)[*a->cnt];
    memset(kv, 0, sizeof *kv);
    kv->version = e->version;
    kv->time_us = e->ts_us;
    kv->deleted = e->kind == CAIRN_SST_DELETE;
    if (!kv->deleted) {
        cairn_mt_entry me = {.value = e->value,
                             .vlen = e->vlen,
                             .kind = (cairn_mt_kind)e->kind};
        a->rc = cairn_db_copy_value(a->db, &me, &kv->value, &kv->vlen);
        if (a->rc)
            return 1;
    }
    (*a->cnt)++;
    return 0;
}

int cairn_key_versions(cairn_db *db, const void *key, size_t klen, size_t max,
                       cairn_key_version **out, size_t *n)
{
    if (!db || (!key && klen) || !out || !n)
        return CAIRN_EINVAL;
    *out = NULL;
    *n = 0;
    if (klen > db->opts.max_key_size)
        return CAIRN_ETOOLARGE;
    uint64_t vis, oldest;
    db_tables *t = cairn_db_tables_acquire(db, &vis, &oldest);
    cairn_key_version *v = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    bool below = false; /* reached the newest version <= oldest */
    cairn_memtable *tabs[5];
    size_t nt = 0;
    tabs[nt++] = t->active;
    for (size_t i = 0; i < t->nimm; i++)
        tabs[nt++] = t->imm[i];
    for (size_t i = 0; i < nt && rc == 0 && !below; i++) {
        cairn_mt_iter it;
        cairn_mt_iter_init(&it, tabs[i]);
        cairn_mt_iter_seek(&it, key, klen, vis);
        for (; cairn_mt_iter_valid(&it) && !below; cairn_mt_iter_next(&it)) {
            cairn_mt_entry e;
            cairn_mt_iter_entry(&it, &e);
            if (e.klen != klen || (klen && memcmp(e.key, key, klen) != 0))
                break;
            if (max && cnt == max) {
                below = true;
                break;
            }
            if (e.version <= oldest)
                below = true; /* older ones may be partly collected */
            if (cnt == cap) {
                size_t nc = cap ? cap * 2 : 8;
                cairn_key_version *p = realloc(v, nc * sizeof *p);
                if (!p) {
                    rc = CAIRN_ENOMEM;
                    break;
                }
                v = p;
                cap = nc;
            }
            cairn_key_version *kv = &v[cnt];
            memset(kv, 0, sizeof *kv);
            kv->version = e.version;
            kv->time_us = e.ts_us;
            kv->deleted = e.kind == CAIRN_MT_DELETE;
            if (!kv->deleted) {
                rc = cairn_db_copy_value(db, &e, &kv->value, &kv->vlen);
                if (rc)
                    break;
            }
            cnt++;
        }
    }
    if (rc == 0 && !below && t->view) {
        kv_acc acc = {db, &v, &cnt, &cap, max, oldest, false, 0};
        rc = cairn_tree_view_versions(t->view, key, klen, vis, kv_add, &acc);
        if (rc == 0)
            rc = acc.rc;
    }
    cairn_db_tables_release(t);
    if (rc) {
        cairn_key_versions_free(v, cnt);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

void cairn_key_versions_free(cairn_key_version *v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i].value);
    free(v);
}

void cairn_get_stats(cairn_db *db, cairn_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!db)
        return;
    out->commits = atomic_load(&db->st_commits);
    out->conflicts = atomic_load(&db->st_conflicts);
    out->current_version = atomic_load(&db->visible);
    out->oldest_version = atomic_load(&db->oldest);
    out->gc_runs = atomic_load(&db->st_gc_runs);
    out->gc_dropped = atomic_load(&db->st_gc_dropped);
    out->recovered_commits = atomic_load(&db->st_recovered);
    cairn_row_cache_stats rs;
    cairn_row_cache_get_stats(db->rcache, &rs);
    out->row_cache_hits = rs.hits;
    out->row_cache_misses = rs.misses;
    out->row_cache_inserts = rs.inserts;
    out->row_cache_evictions = rs.evictions;
    out->row_cache_invalidations = rs.invalidations;
    out->row_cache_bytes = rs.usage;
    out->row_cache_capacity = rs.capacity;
    out->row_cache_entries = rs.entries;
    out->row_cache_not_admitted = rs.not_admitted;
    out->row_cache_bypassed = atomic_load(&db->st_rc_bypassed);
    out->row_cache_hit_p50_ns = cairn_hist_quantile(&db->rc_hit_ns, 0.5);
    out->row_cache_hit_p99_ns = cairn_hist_quantile(&db->rc_hit_ns, 0.99);
    db_tables *t = cairn_db_tables_acquire(db, NULL, NULL);
    out->memtable_bytes = cairn_memtable_memory(t->active);
    out->memtable_entries = cairn_memtable_count(t->active);
    for (size_t i = 0; i < t->nimm; i++) {
        out->memtable_bytes += cairn_memtable_memory(t->imm[i]);
        out->memtable_entries += cairn_memtable_count(t->imm[i]);
    }
    cairn_db_tables_release(t);
    if (db->wal) {
        cairn_wal_stats ws;
        cairn_wal_get_stats(db->wal, &ws);
        out->wal_syncs = ws.syncs;
        out->wal_sync_p50_ns = ws.sync_p50_ns;
        out->wal_sync_p99_ns = ws.sync_p99_ns;
    }
    if (db->blobs) {
        cairn_blob_store_stats bs;
        cairn_blob_store_get_stats(db->blobs, &bs);
        out->blob_logical_bytes = bs.logical_bytes;
        out->blob_stored_bytes = bs.stored_bytes;
        out->blob_file_bytes = bs.file_bytes;
        out->blob_distinct = bs.distinct;
        out->blob_dedup_hits = bs.dedup_hits;
        out->blob_files = bs.files;
        out->blob_dead_bytes = bs.dead_bytes;
        out->blob_gc_runs = bs.gc_runs;
        out->blob_gc_bytes_reclaimed = bs.gc_bytes_reclaimed;
        out->blob_reads = bs.reads;
        out->blob_read_p50_ns = bs.read_p50_ns;
        out->blob_read_p99_ns = bs.read_p99_ns;
        out->blob_missing = bs.missing;
    }
    out->write_pressure_reason = "";
    out->fatal_error = atomic_load(&db->fatal);
    if (db->tree) {
        cairn_tree_stats ts;
        cairn_tree_get_stats(db->tree, &ts);
        for (int l = 0; l < 8; l++) {
            out->level_files[l] = ts.level_files[l];
            out->level_bytes[l] = ts.level_bytes[l];
        }
        out->flushes = ts.flushes;
        out->flush_bytes = ts.flush_bytes;
        out->compactions = ts.compactions;
        out->compact_read_bytes = ts.compact_read_bytes;
        out->compact_write_bytes = ts.compact_write_bytes;
        out->sst_logical_bytes = ts.logical_bytes;
        out->sst_file_bytes = ts.file_bytes;
        out->gc_dropped += ts.dropped_versions + ts.dropped_tombstones;
        out->block_cache_hits = ts.cache.hits;
        out->block_cache_misses = ts.cache.misses;
        out->block_cache_bytes = ts.cache.usage;
        out->block_cache_capacity = ts.cache.capacity;
        out->block_cache_evictions = ts.cache.evictions;
        out->write_pressure = ts.pressure;
        out->write_pressure_reason = ts.pressure_reason;
        out->background_error = ts.bg_error ? ts.bg_error
                                            : atomic_load(&db->flush_error);
        out->write_slowdowns = atomic_load(&db->st_slowdowns);
        out->write_stalls = atomic_load(&db->st_stalls);
        out->flush_failures = atomic_load(&db->st_flush_failures);
        cairn_tree_tier_stats tt;
        cairn_tree_get_tier_stats(db->tree, &tt);
        for (int k = 0; k < 2; k++) {
            out->tier_files[k] = tt.files[k];
            out->tier_bytes[k] = tt.bytes[k];
            out->tier_logical_bytes[k] = tt.logical_bytes[k];
            out->tier_block_hits[k] = tt.hits[k];
            out->tier_block_misses[k] = tt.misses[k];
            out->tier_read_p50_ns[k] = tt.read_p50_ns[k];
            out->tier_read_p99_ns[k] = tt.read_p99_ns[k];
            out->tier_hit_p50_ns[k] = tt.hit_p50_ns[k];
            out->tier_hit_p99_ns[k] = tt.hit_p99_ns[k];
        }
        out->block_cache_hit_p50_ns = tt.cache_hit_p50_ns;
        out->block_cache_hit_p99_ns = tt.cache_hit_p99_ns;
        out->archive_moves = tt.archived;
        out->archive_recalls = tt.recalled;
        out->archive_bytes_in = tt.archive_in_bytes;
        out->archive_bytes_out = tt.archive_out_bytes;
        out->archive_configured = tt.configured;
        out->archive_available = tt.available;
        out->archive_error = tt.last_move_error;
    }
}

/* ---------- the archive tier ---------- */

int cairn_archive_file(cairn_db *db, uint64_t number)
{
    if (!db)
        return CAIRN_EINVAL;
    if (db->read_only || !db->tree)
        return CAIRN_EREADONLY;
    return cairn_tree_archive_file(db->tree, number, NULL);
}

int cairn_recall_file(cairn_db *db, uint64_t number)
{
    if (!db)
        return CAIRN_EINVAL;
    if (db->read_only || !db->tree)
        return CAIRN_EREADONLY;
    return cairn_tree_recall_file(db->tree, number, NULL);
}

typedef struct archive_cb {
    cairn_archive_progress_fn fn;
    void *arg;
} archive_cb;

static void archive_progress(void *arg, const cairn_tree_move_info *i, int rc)
{
    archive_cb *c = arg;
    if (c->fn)
        c->fn(c->arg, i->number, i->level, i->bytes_before, i->bytes_after,
              rc);
}

int cairn_archive_run(cairn_db *db, int min_level, uint64_t min_age_s,
                      cairn_archive_progress_fn fn, void *arg)
{
    if (!db || min_level < 0 || min_level > 7)
        return CAIRN_EINVAL;
    if (db->read_only || !db->tree)
        return CAIRN_EREADONLY;
    cairn_tier_policy p = {.min_level = min_level, .min_age_s = min_age_s};
    archive_cb c = {fn, arg};
    return cairn_tree_archive_run(db->tree, &p, archive_progress, &c);
}

int cairn_list_files(cairn_db *db, cairn_file_info **out, size_t *n)
{
    if (!db || !out || !n)
        return CAIRN_EINVAL;
    *out = NULL;
    *n = 0;
    if (!db->tree)
        return 0;
    cairn_tree_view *w = cairn_tree_view_get(db->tree);
    size_t nf = cairn_tree_view_nfiles(w);
    cairn_file_info *fi = nf ? calloc(nf, sizeof *fi) : NULL;
    if (nf && !fi) {
        cairn_tree_view_unref(w);
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < nf; i++) {
        const cairn_file_meta *m = cairn_tree_view_meta(w, i);
        const cairn_sst_reader *r = cairn_tree_view_reader(w, i);
        fi[i].number = m->number;
        fi[i].level = cairn_tree_view_file_level(w, i);
        fi[i].tier = m->tier;
        fi[i].bytes = r ? cairn_sst_props_get(r)->file_size : m->file_size;
    }
    cairn_tree_view_unref(w);
    *out = fi;
    *n = nf;
    return 0;
}

int cairn_set_cache_sizes(cairn_db *db, size_t row_cache_bytes,
                          size_t block_cache_bytes)
{
    if (!db)
        return CAIRN_EINVAL;
    if (row_cache_bytes != CAIRN_CACHE_SIZE_KEEP)
        cairn_row_cache_set_capacity(db->rcache, row_cache_bytes);
    if (block_cache_bytes != CAIRN_CACHE_SIZE_KEEP && db->tree)
        cairn_block_cache_set_capacity(cairn_tree_cache(db->tree),
                                       block_cache_bytes);
    return 0;
}
