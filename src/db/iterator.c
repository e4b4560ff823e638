/*
 * iterator.c — the public iterator (cairn_iter): range scans over a
 * database snapshot or a transaction, forward and backward, with seek,
 * bounds and prefixes.
 *
 * Layers: the stored data is a cairn_uiter (lsm/iter.h) over the merge of
 * the table set's memtables (newest first) and sorted files (search order),
 * read at the snapshot. A transaction's iterator overlays a sorted copy of
 * its own writes (taken at creation) on it: an own put shadows the stored
 * value of its key, an own delete hides the key.
 *
 * Invariants of the overlay, with K the current key:
 *   - forward (dir > 0): u sits on the first stored key >= K (invalid if
 *     none), pos is the index of the first own write >= K (nown if none);
 *   - backward (dir < 0): u sits on the last stored key <= K (invalid if
 *     none), pos is the number of own writes <= K (the last is own[pos-1]).
 * So a step moves the source(s) sitting on K (cur_u, cur_m) and a change of
 * direction moves only u (one step, or first/last when it ran off the
 * end): pos already means "first > K" going forward and "count < K" going
 * backward. Own writes are filtered to the bounds at creation, so only u
 * needs to apply them.
 *
 * Lifetime: the iterator holds its table set reference (memtables and the
 * files' view) until it is freed; it never refers to a transaction after
 * creation. Locking: none; an iterator belongs to one thread at a time; the
 * sources follow their own rules (memtable.h, sst.h).
 */
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"
#include "lsm/iter.h"

struct cairn_iter {
    db_tables *tables;
    cairn_uiter *u;
    cairn_own_write *own; /* sorted, within the bounds; one allocation */
    size_t nown;
    size_t pos; /* see the invariants above */
    int dir;    /* 1 forward, -1 backward */
    bool valid;
    bool cur_u; /* the current key is u's */
    bool cur_m; /* the current key is an own write's (it wins over u's) */
    int status;
    cairn_db *db;
    /* The current value when it is stored out of line: read when the
     * iterator lands on its key (freed when it moves). */
    void *bval;
    size_t blen;
    bool bset;
};

/* The range an iterator covers. */
typedef struct iter_range {
    const void *lo, *hi; /* NULL: unbounded */
    size_t lolen, hilen;
    uint8_t *succ;       /* owned: the prefix's successor (hi) */
} iter_range;

static int range_from_opts(const cairn_iter_options *o, iter_range *r)
{
    memset(r, 0, sizeof *r);
    if (!o)
        return 0;
    if ((!o->lower && o->lower_len) || (!o->upper && o->upper_len) ||
        (!o->prefix && o->prefix_len))
        return CAIRN_EINVAL;
    if (o->prefix && (o->lower || o->upper))
        return CAIRN_EINVAL;
    if (o->prefix) {
        r->lo = o->prefix;
        r->lolen = o->prefix_len;
        if (o->prefix_len) {
            r->succ = malloc(o->prefix_len);
            if (!r->succ)
                return CAIRN_ENOMEM;
            size_t sl = 0;
            if (cairn_prefix_successor(o->prefix, o->prefix_len, r->succ,
                                       &sl)) {
                r->hi = r->succ;
                r->hilen = sl;
            }
        }
        return 0;
    }
    if (o->lower && o->upper &&
        cairn_key_cmp(o->lower, o->lower_len, o->upper, o->upper_len) > 0)
        return CAIRN_EINVAL;
    r->lo = o->lower;
    r->lolen = o->lower_len;
    r->hi = o->upper;
    r->hilen = o->upper_len;
    return 0;
}

/* The iterator over tabs at snapshot S (and commit times <= max_ts) with
 * the own writes given. Takes ownership of tabs' reference and of own, in
 * every case. */
static int iter_make(cairn_db *db, db_tables *tabs, uint64_t S,
                     uint64_t max_ts,
                     const iter_range *r, cairn_own_write *own, size_t nown,
                     cairn_iter **out)
{
    cairn_iter *it = calloc(1, sizeof *it);
    /* The user iterator owns the merge (and destroys it if it fails). */
    cairn_iiter *merged = it ? cairn_db_merge_all(tabs) : NULL;
    if (it)
        it->u = merged ? cairn_uiter_new(merged, S, max_ts, r->lo, r->lolen,
                                         r->hi, r->hilen)
                       : NULL;
    if (!it || !it->u) {
        free(it);
        free(own);
        cairn_db_tables_release(tabs);
        return CAIRN_ENOMEM;
    }
    it->tables = tabs;
    it->db = db;
    it->own = own;
    it->nown = nown;
    it->dir = 1;
    *out = it;
    return 0;
}

int cairn_iter_new(cairn_db *db, const cairn_iter_options *opts,
                   cairn_iter **out)
{
    if (!out)
        return CAIRN_EINVAL;
    *out = NULL;
    if (!db)
        return CAIRN_EINVAL;
    if (opts && opts->as_of_version && opts->as_of_time_us)
        return CAIRN_EINVAL;
    iter_range r;
    int rc = range_from_opts(opts, &r);
    if (rc != 0)
        return rc;
    /* The table set and the versions it serves, together (db_internal.h):
     * every version in [oldest, visible] reads whole from it. */
    uint64_t vis, oldest, S, max_ts = UINT64_MAX;
    db_tables *tabs = cairn_db_tables_acquire(db, &vis, &oldest);
    S = vis;
    if (opts && opts->as_of_version) {
        if (opts->as_of_version > vis)
            rc = CAIRN_EINVAL;
        else if (opts->as_of_version < oldest)
            rc = CAIRN_EHISTORY;
        S = opts->as_of_version;
    } else if (opts && opts->as_of_time_us) {
        rc = cairn_db_version_at_time(db, opts->as_of_time_us, vis, oldest,
                                      &S, &max_ts);
    }
    if (rc == 0)
        rc = iter_make(db, tabs, S, max_ts, &r, NULL, 0, out);
    else
        cairn_db_tables_release(tabs);
    free(r.succ);
    return rc;
}

int cairn_txn_iter(cairn_txn *txn, const cairn_iter_options *opts,
                   cairn_iter **out)
{
    if (!out)
        return CAIRN_EINVAL;
    *out = NULL;
    if (!txn || (opts && (opts->as_of_version || opts->as_of_time_us)))
        return CAIRN_EINVAL;
    iter_range r;
    int rc = range_from_opts(opts, &r);
    if (rc != 0)
        return rc;
    cairn_txn_iter_src s;
    rc = cairn_txn_iter_prepare(txn, r.lo, r.lolen, r.hi, r.hilen, &s);
    if (rc == 0)
        rc = iter_make(s.db, s.tables, s.snapshot, s.max_ts, &r, s.own,
                       s.nown, out);
    free(r.succ);
    return rc;
}

void cairn_iter_free(cairn_iter *it)
{
    if (!it)
        return;
    cairn_uiter_free(it->u);
    free(it->bval);
    free(it->own);
    cairn_db_tables_release(it->tables);
    free(it);
}

/* ---------- the overlay ---------- */

static int own_cmp_key(const cairn_own_write *w, const void *key, size_t klen)
{
    return cairn_key_cmp(w->key, w->klen, key, klen);
}

/* The number of own writes < key (or <= key with inclusive). */
static size_t own_rank(const cairn_iter *it, const void *key, size_t klen,
                       bool inclusive)
{
    size_t lo = 0, hi = it->nown;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = own_cmp_key(&it->own[mid], key, klen);
        if (c < 0 || (inclusive && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Is u valid? If not and it failed, the iterator fails with it. */
static bool u_ok(cairn_iter *it)
{
    if (cairn_uiter_valid(it->u))
        return true;
    it->status = cairn_uiter_status(it->u);
    return false;
}

/* From the forward invariant's positions, settle on the smallest key shown
 * (own deletes hide their key, own puts shadow u's). */
static void drop_bval(cairn_iter *it)
{
    free(it->bval);
    it->bval = NULL;
    it->blen = 0;
    it->bset = false;
}

static void resolve_fwd_keys(cairn_iter *it);
static void resolve_bwd_keys(cairn_iter *it);

/* The iterator landed on a key: a value stored out of line is read now,
 * so that a missing or damaged blob (CAIRN_ECORRUPT) or an I/O error
 * ends the iteration with that status, like a damaged block does. */
static void settle_blob(cairn_iter *it)
{
    if (!it->valid || it->cur_m || !cairn_uiter_is_blob(it->u))
        return;
    size_t l = 0;
    const uint8_t *v = cairn_uiter_value(it->u, &l);
    int rc = cairn_db_blob_resolve(it->db, v, l, &it->bval, &it->blen);
    if (rc != 0) {
        it->bval = NULL;
        it->blen = 0;
        it->valid = it->cur_u = it->cur_m = false;
        it->status = rc;
        return;
    }
    it->bset = true;
}

static void resolve_fwd(cairn_iter *it)
{
    drop_bval(it);
    resolve_fwd_keys(it);
    settle_blob(it);
}

static void resolve_bwd(cairn_iter *it)
{
    drop_bval(it);
    resolve_bwd_keys(it);
    settle_blob(it);
}

static void resolve_fwd_keys(cairn_iter *it)
{
    it->dir = 1;
    it->valid = it->cur_u = it->cur_m = false;
    for (;;) {
        bool hu = u_ok(it);
        if (it->status)
            return;
        bool hm = it->pos < it->nown;
        if (!hu && !hm)
            return;
        int c = -1; /* own write vs u's key */
        if (hu && hm) {
            size_t kl;
            const uint8_t *k = cairn_uiter_key(it->u, &kl);
            c = own_cmp_key(&it->own[it->pos], k, kl);
        } else if (hu) {
            c = 1;
        }
        if (c > 0) {
            it->cur_u = true;
        } else if (it->own[it->pos].del) {
            it->pos++;
            if (c == 0)
                cairn_uiter_next(it->u);
            continue;
        } else {
            it->cur_m = true;
            it->cur_u = c == 0;
        }
        it->valid = true;
        return;
    }
}

/* The same backward: the largest key shown. */
static void resolve_bwd_keys(cairn_iter *it)
{
    it->dir = -1;
    it->valid = it->cur_u = it->cur_m = false;
    for (;;) {
        bool hu = u_ok(it);
        if (it->status)
            return;
        bool hm = it->pos > 0;
        if (!hu && !hm)
            return;
        int c = 1; /* own write vs u's key */
        if (hu && hm) {
            size_t kl;
            const uint8_t *k = cairn_uiter_key(it->u, &kl);
            c = own_cmp_key(&it->own[it->pos - 1], k, kl);
        } else if (hu) {
            c = -1;
        }
        if (c < 0) {
            it->cur_u = true;
        } else if (it->own[it->pos - 1].del) {
            it->pos--;
            if (c == 0)
                cairn_uiter_prev(it->u);
            continue;
        } else {
            it->cur_m = true;
            it->cur_u = c == 0;
        }
        it->valid = true;
        return;
    }
}

void cairn_iter_first(cairn_iter *it)
{
    if (!it)
        return;
    it->status = 0;
    cairn_uiter_first(it->u);
    it->pos = 0;
    resolve_fwd(it);
}

void cairn_iter_last(cairn_iter *it)
{
    if (!it)
        return;
    it->status = 0;
    cairn_uiter_last(it->u);
    it->pos = it->nown;
    resolve_bwd(it);
}

static bool seek_arg_ok(cairn_iter *it, const void *key, size_t klen)
{
    it->status = 0;
    if (key || !klen)
        return true;
    it->valid = it->cur_u = it->cur_m = false;
    it->status = CAIRN_EINVAL;
    return false;
}

void cairn_iter_seek(cairn_iter *it, const void *key, size_t klen)
{
    if (!it || !seek_arg_ok(it, key, klen))
        return;
    /* Own writes first: key may point into u's entry, which u's seek
     * replaces (u copies it before moving). */
    it->pos = own_rank(it, key, klen, false);
    cairn_uiter_seek(it->u, key, klen);
    resolve_fwd(it);
}

void cairn_iter_seek_for_prev(cairn_iter *it, const void *key, size_t klen)
{
    if (!it || !seek_arg_ok(it, key, klen))
        return;
    it->pos = own_rank(it, key, klen, true);
    cairn_uiter_seek_for_prev(it->u, key, klen);
    resolve_bwd(it);
}

void cairn_iter_next(cairn_iter *it)
{
    if (!it || !it->valid)
        return;
    if (it->dir > 0) {
        if (it->cur_m)
            it->pos++;
        if (it->cur_u)
            cairn_uiter_next(it->u);
    } else if (cairn_uiter_valid(it->u)) {
        /* u sits on the last stored key <= K, and none lies in between:
         * its next is the first stored key > K. */
        cairn_uiter_next(it->u);
    } else {
        cairn_uiter_first(it->u); /* nothing stored <= K */
    }
    resolve_fwd(it);
}

void cairn_iter_prev(cairn_iter *it)
{
    if (!it || !it->valid)
        return;
    if (it->dir < 0) {
        if (it->cur_m)
            it->pos--;
        if (it->cur_u)
            cairn_uiter_prev(it->u);
    } else if (cairn_uiter_valid(it->u)) {
        /* u sits on the first stored key >= K: its prev is the last stored
         * key < K. */
        cairn_uiter_prev(it->u);
    } else {
        cairn_uiter_last(it->u); /* nothing stored >= K */
    }
    resolve_bwd(it);
}

bool cairn_iter_valid(const cairn_iter *it)
{
    return it && it->valid;
}

/* The own write shown (cur_m). */
static const cairn_own_write *cur_own(const cairn_iter *it)
{
    return &it->own[it->dir > 0 ? it->pos : it->pos - 1];
}

const void *cairn_iter_key(const cairn_iter *it, size_t *klen)
{
    size_t l = 0;
    const void *k = NULL;
    if (it && it->valid) {
        if (it->cur_m) {
            const cairn_own_write *w = cur_own(it);
            k = w->key;
            l = w->klen;
        } else {
            k = cairn_uiter_key(it->u, &l);
        }
    }
    if (klen)
        *klen = l;
    return k;
}

const void *cairn_iter_value(const cairn_iter *it, size_t *vlen)
{
    size_t l = 0;
    const void *v = NULL;
    if (it && it->valid) {
        if (it->cur_m) {
            const cairn_own_write *w = cur_own(it);
            v = w->val;
            l = w->vlen;
        } else {
            v = cairn_uiter_value(it->u, &l);
            if (it->bset) { /* stored out of line: read when positioned */
                v = it->bval;
                l = it->blen;
            }
        }
    }
    if (vlen)
        *vlen = l;
    return v;
}

uint64_t cairn_iter_version(const cairn_iter *it)
{
    if (!it || !it->valid || it->cur_m)
        return 0;
    return cairn_uiter_version(it->u);
}

int cairn_iter_status(const cairn_iter *it)
{
    return it ? it->status : CAIRN_EINVAL;
}
