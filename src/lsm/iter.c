/*
 * iter.c — the iterator stack (iter.h): adapters from memtables and sorted
 * files to the internal iterator interface, the merging iterator, and the
 * MVCC user iterator.
 *
 * Merging iterator invariants (n children, hn of them valid, in heap[]):
 *   - ent[i] caches child i's current entry whenever child i is in the heap
 *     (refreshed after every move of that child, so its pointers are live);
 *   - heap[0] is the current child: forward (dir FWD) the smallest entry,
 *     backward (dir REV) the largest, ties to the lowest child index (the
 *     newest source), so a duplicated (key, version) surfaces from its
 *     newest source first;
 *   - after every move the duplicates of the current entry are skipped at
 *     once (dedup), so every other child in the heap sits STRICTLY after the
 *     current entry in the direction of travel (forward: every other valid
 *     child > current; backward: < current). A child not in the heap is
 *     exhausted in that direction, or the merge has failed;
 *   - status != 0 means failed: hn == 0 (invalid) until the next seek*.
 * Dedup relies on a heap property: a node equal to the root has every
 * ancestor equal to it too, so if any child duplicates the root one of the
 * root's two heap children does.
 *
 * User iterator invariants:
 *   - forward (dir FWD, valid): the merged iterator sits on the entry shown
 *     (the newest visible version of the current key), and key()/value()
 *     point into it;
 *   - backward (dir REV, valid): the merged iterator sits on the last entry
 *     BEFORE every entry of the current key (or is invalid: the key's
 *     entries start the source), and the key, value, version and timestamp
 *     shown are copies (sk, rv, rver, rts);
 *   - the shown key is always in [lower, upper).
 *
 * Locking: none. Every iterator here belongs to one thread at a time; the
 * sources under the adapters have their own rules (memtable.h, sst.h).
 */
#include "lsm/iter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"

_Static_assert((int)CAIRN_IKIND_PUT == (int)CAIRN_MT_PUT &&
                   (int)CAIRN_IKIND_DELETE == (int)CAIRN_MT_DELETE &&
                   (int)CAIRN_IKIND_BLOB == (int)CAIRN_MT_BLOB,
               "memtable kinds");
_Static_assert((int)CAIRN_IKIND_PUT == (int)CAIRN_SST_PUT &&
                   (int)CAIRN_IKIND_DELETE == (int)CAIRN_SST_DELETE &&
                   (int)CAIRN_IKIND_BLOB == (int)CAIRN_SST_BLOB,
               "sst kinds");

/* ---------- comparisons ---------- */

int cairn_iiter_cmp(const uint8_t *ak, size_t alen, uint64_t av,
                    const uint8_t *bk, size_t blen, uint64_t bv)
{
    int c = cairn_key_cmp(ak, alen, bk, blen);
    if (c)
        return c;
    return av > bv ? -1 : av < bv; /* newer version first */
}

static inline int ent_cmp(const cairn_ientry *a, const cairn_ientry *b)
{
    return cairn_iiter_cmp(a->key, a->klen, a->version, b->key, b->klen,
                           b->version);
}

static inline bool same_ukey(const uint8_t *a, size_t alen, const uint8_t *b,
                             size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static const uint8_t empty_byte[1] = {0};

/* ---------- memtable adapter ---------- */

typedef struct mt_iiter {
    cairn_iiter base;
    cairn_mt_iter mi;
    cairn_memtable *mt;
} mt_iiter;

static void mti_seek_first(cairn_iiter *it)
{
    cairn_mt_iter_seek_first(&((mt_iiter *)it)->mi);
}
static void mti_seek_last(cairn_iiter *it)
{
    cairn_mt_iter_seek_last(&((mt_iiter *)it)->mi);
}
static void mti_seek(cairn_iiter *it, const void *key, size_t klen,
                     uint64_t version)
{
    cairn_mt_iter_seek(&((mt_iiter *)it)->mi, klen ? key : empty_byte, klen,
                       version);
}
static void mti_seek_for_prev(cairn_iiter *it, const void *key, size_t klen,
                              uint64_t version)
{
    cairn_mt_iter_seek_for_prev(&((mt_iiter *)it)->mi,
                                klen ? key : empty_byte, klen, version);
}
static void mti_next(cairn_iiter *it)
{
    cairn_mt_iter_next(&((mt_iiter *)it)->mi);
}
static void mti_prev(cairn_iiter *it)
{
    cairn_mt_iter_prev(&((mt_iiter *)it)->mi);
}
static bool mti_valid(const cairn_iiter *it)
{
    return cairn_mt_iter_valid(&((const mt_iiter *)it)->mi);
}
static void mti_entry(const cairn_iiter *it, cairn_ientry *out)
{
    cairn_mt_entry e;
    cairn_mt_iter_entry(&((const mt_iiter *)it)->mi, &e);
    out->key = e.key;
    out->klen = e.klen;
    out->version = e.version;
    out->ts_us = e.ts_us;
    out->kind = (cairn_ikind)e.kind;
    out->value = e.value;
    out->vlen = e.vlen;
}
static int mti_status(const cairn_iiter *it)
{
    return 0;
}
static const char *mti_errmsg(const cairn_iiter *it)
{
    return "";
}
static void mti_destroy(cairn_iiter *it)
{
    mt_iiter *m = (mt_iiter *)it;
    cairn_memtable_unref(m->mt);
    free(m);
}

static const cairn_iiter_ops mt_iiter_ops = {
    .seek_first = mti_seek_first,
    .seek_last = mti_seek_last,
    .seek = mti_seek,
    .seek_for_prev = mti_seek_for_prev,
    .next = mti_next,
    .prev = mti_prev,
    .valid = mti_valid,
    .entry = mti_entry,
    .status = mti_status,
    .errmsg = mti_errmsg,
    .destroy = mti_destroy,
};

cairn_iiter *cairn_iiter_from_memtable(cairn_memtable *mt)
{
    if (!mt)
        return NULL;
    mt_iiter *m = malloc(sizeof(*m));
    if (!m)
        return NULL;
    m->base.ops = &mt_iiter_ops;
    cairn_memtable_ref(mt);
    m->mt = mt;
    cairn_mt_iter_init(&m->mi, mt);
    return &m->base;
}

/* ---------- sorted file adapter ---------- */

typedef struct sst_iiter {
    cairn_iiter base;
    cairn_sst_iter *si;
} sst_iiter;

#define SI(it) (((sst_iiter *)(it))->si)
#define CSI(it) (((const sst_iiter *)(it))->si)

static void ssti_seek_first(cairn_iiter *it)
{
    cairn_sst_iter_seek_first(SI(it));
}
static void ssti_seek_last(cairn_iiter *it)
{
    cairn_sst_iter_seek_last(SI(it));
}
static void ssti_seek(cairn_iiter *it, const void *key, size_t klen,
                      uint64_t version)
{
    cairn_sst_iter_seek(SI(it), klen ? key : empty_byte, klen, version);
}
static void ssti_seek_for_prev(cairn_iiter *it, const void *key, size_t klen,
                               uint64_t version)
{
    cairn_sst_iter_seek_for_prev(SI(it), klen ? key : empty_byte, klen,
                                 version);
}
static void ssti_next(cairn_iiter *it)
{
    cairn_sst_iter_next(SI(it));
}
static void ssti_prev(cairn_iiter *it)
{
    cairn_sst_iter_prev(SI(it));
}
static bool ssti_valid(const cairn_iiter *it)
{
    return cairn_sst_iter_valid(CSI(it));
}
static void ssti_entry(const cairn_iiter *it, cairn_ientry *out)
{
    cairn_sst_entry e;
    cairn_sst_iter_entry(CSI(it), &e);
    out->key = e.key ? e.key : empty_byte;
    out->klen = e.klen;
    out->version = e.version;
    out->ts_us = e.ts_us;
    out->kind = (cairn_ikind)e.kind;
    if (e.kind != CAIRN_SST_DELETE) {
        out->value = e.value ? e.value : empty_byte;
        out->vlen = e.vlen;
    } else {
        out->value = NULL;
        out->vlen = 0;
    }
}
static int ssti_status(const cairn_iiter *it)
{
    return cairn_sst_iter_status(CSI(it));
}
static const char *ssti_errmsg(const cairn_iiter *it)
{
    const char *m = cairn_sst_iter_errmsg(CSI(it));
    return m ? m : "";
}
static void ssti_destroy(cairn_iiter *it)
{
    cairn_sst_iter_free(SI(it));
    free(it);
}

static const cairn_iiter_ops sst_iiter_ops = {
    .seek_first = ssti_seek_first,
    .seek_last = ssti_seek_last,
    .seek = ssti_seek,
    .seek_for_prev = ssti_seek_for_prev,
    .next = ssti_next,
    .prev = ssti_prev,
    .valid = ssti_valid,
    .entry = ssti_entry,
    .status = ssti_status,
    .errmsg = ssti_errmsg,
    .destroy = ssti_destroy,
};

cairn_iiter *cairn_iiter_from_sst_ex(const cairn_sst_reader *r,
                                     bool fill_cache)
{
    if (!r)
        return NULL;
    sst_iiter *s = malloc(sizeof(*s));
    if (!s)
        return NULL;
    if (cairn_sst_iter_new(r, &s->si) != 0) {
        free(s);
        return NULL;
    }
    cairn_sst_iter_set_fill_cache(s->si, fill_cache);
    s->base.ops = &sst_iiter_ops;
    return &s->base;
}

cairn_iiter *cairn_iiter_from_sst(const cairn_sst_reader *r)
{
    return cairn_iiter_from_sst_ex(r, true);
}

/* ---------- merging iterator ---------- */

enum { DIR_FWD = 0, DIR_REV = 1 };

typedef struct merge_iter {
    cairn_iiter base;
    size_t n;
    cairn_iiter **child;
    cairn_ientry *ent; /* ent[i]: child i's entry while it is in the heap */
    size_t *heap;      /* child indexes; heap[0] is the current child */
    size_t hn;
    int dir;
    int status;
    char errmsg[CAIRN_IITER_ERRMSG_LEN];
} merge_iter;

/* Does child a come before child b in the direction of travel? */
static inline bool m_before(const merge_iter *m, size_t a, size_t b)
{
    int c = ent_cmp(&m->ent[a], &m->ent[b]);
    if (c == 0)
        return a < b; /* the newer source first, both ways */
    return m->dir == DIR_FWD ? c < 0 : c > 0;
}

static void m_sift_down(merge_iter *m, size_t pos)
{
    size_t *h = m->heap;
    size_t x = h[pos];
    for (;;) {
        size_t l = 2 * pos + 1;
        if (l >= m->hn)
            break;
        size_t best = l;
        if (l + 1 < m->hn && m_before(m, h[l + 1], h[l]))
            best = l + 1;
        if (!m_before(m, h[best], x))
            break;
        h[pos] = h[best];
        pos = best;
    }
    h[pos] = x;
}

static void m_sift_up(merge_iter *m, size_t pos)
{
    size_t *h = m->heap;
    size_t x = h[pos];
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (!m_before(m, x, h[parent]))
            break;
        h[pos] = h[parent];
        pos = parent;
    }
    h[pos] = x;
}

/* Fail the merge with child i's error. */
static void m_fail(merge_iter *m, size_t i)
{
    cairn_iiter *c = m->child[i];
    m->status = cairn_iiter_status(c);
    snprintf(m->errmsg, sizeof(m->errmsg), "%s", cairn_iiter_errmsg(c));
    m->hn = 0;
}

/* After child i moved: refresh its entry. 1 if valid, 0 if exhausted, -1 if
 * it failed (then the merge has failed too). */
static int m_refresh(merge_iter *m, size_t i)
{
    cairn_iiter *c = m->child[i];
    if (cairn_iiter_valid(c)) {
        cairn_iiter_entry(c, &m->ent[i]);
        return 1;
    }
    if (cairn_iiter_status(c) != 0) {
        m_fail(m, i);
        return -1;
    }
    return 0;
}

/* The child at heap position pos moved: restore the heap (its entry moved
 * away from the root's side, so it only sinks), or drop it if exhausted.
 * false if the merge failed. */
static bool m_fix(merge_iter *m, size_t pos)
{
    int r = m_refresh(m, m->heap[pos]);
    if (r < 0)
        return false;
    if (r > 0) {
        m_sift_down(m, pos);
        return true;
    }
    m->hn--;
    if (pos < m->hn) {
        m->heap[pos] = m->heap[m->hn];
        m_sift_down(m, pos);
        m_sift_up(m, pos);
    }
    return true;
}

/* Move every other child holding the root's (key, version) past it. */
static void m_dedup(merge_iter *m)
{
    while (m->hn > 1) {
        const cairn_ientry *top = &m->ent[m->heap[0]];
        size_t pos = 0;
        for (size_t p = 1; p <= 2 && p < m->hn; p++) {
            if (ent_cmp(&m->ent[m->heap[p]], top) == 0) {
                pos = p;
                break;
            }
        }
        if (pos == 0)
            return;
        cairn_iiter *c = m->child[m->heap[pos]];
        if (m->dir == DIR_FWD)
            cairn_iiter_next(c);
        else
            cairn_iiter_prev(c);
        if (!m_fix(m, pos))
            return;
    }
}

/* Every child has just been positioned: build the heap for dir. */
static void m_rebuild(merge_iter *m, int dir)
{
    m->dir = dir;
    m->hn = 0;
    for (size_t i = 0; i < m->n; i++) {
        int r = m_refresh(m, i);
        if (r < 0)
            return;
        if (r > 0)
            m->heap[m->hn++] = i;
    }
    for (size_t p = m->hn / 2; p-- > 0;)
        m_sift_down(m, p);
    m_dedup(m);
}

static void m_seek_first(cairn_iiter *it)
{
    merge_iter *m = (merge_iter *)it;
    m->status = 0;
    m->errmsg[0] = '\0';
    for (size_t i = 0; i < m->n; i++)
        cairn_iiter_seek_first(m->child[i]);
    m_rebuild(m, DIR_FWD);
}

static void m_seek_last(cairn_iiter *it)
{
    merge_iter *m = (merge_iter *)it;
    m->status = 0;
    m->errmsg[0] = '\0';
    for (size_t i = 0; i < m->n; i++)
        cairn_iiter_seek_last(m->child[i]);
    m_rebuild(m, DIR_REV);
}

static void m_seek(cairn_iiter *it, const void *key, size_t klen,
                   uint64_t version)
{
    merge_iter *m = (merge_iter *)it;
    m->status = 0;
    m->errmsg[0] = '\0';
    for (size_t i = 0; i < m->n; i++)
        cairn_iiter_seek(m->child[i], key, klen, version);
    m_rebuild(m, DIR_FWD);
}

static void m_seek_for_prev(cairn_iiter *it, const void *key, size_t klen,
                            uint64_t version)
{
    merge_iter *m = (merge_iter *)it;
    m->status = 0;
    m->errmsg[0] = '\0';
    for (size_t i = 0; i < m->n; i++)
        cairn_iiter_seek_for_prev(m->child[i], key, klen, version);
    m_rebuild(m, DIR_REV);
}

/* Turn around: re-seek every child but the current one to the far side of
 * the current entry (for dir FWD: the first entry after it; for REV: the
 * last entry before it), then move the current child one step and rebuild.
 * The current child does not move until the others are done, so the
 * current entry's key stays valid while they seek to it. */
static void m_turn(merge_iter *m, int dir)
{
    size_t cur = m->heap[0];
    const cairn_ientry k = m->ent[cur];
    for (size_t i = 0; i < m->n; i++) {
        if (i == cur)
            continue;
        cairn_iiter *c = m->child[i];
        if (dir == DIR_FWD)
            cairn_iiter_seek(c, k.key, k.klen, k.version);
        else
            cairn_iiter_seek_for_prev(c, k.key, k.klen, k.version);
        if (cairn_iiter_valid(c)) {
            cairn_ientry e;
            cairn_iiter_entry(c, &e);
            if (ent_cmp(&e, &k) == 0) {
                if (dir == DIR_FWD)
                    cairn_iiter_next(c);
                else
                    cairn_iiter_prev(c);
            }
        }
        if (!cairn_iiter_valid(c) && cairn_iiter_status(c) != 0) {
            m_fail(m, i);
            return;
        }
    }
    if (dir == DIR_FWD)
        cairn_iiter_next(m->child[cur]);
    else
        cairn_iiter_prev(m->child[cur]);
    m_rebuild(m, dir);
}

static void m_next(cairn_iiter *it)
{
    merge_iter *m = (merge_iter *)it;
    if (m->hn == 0)
        return;
    if (m->dir != DIR_FWD) {
        m_turn(m, DIR_FWD);
        return;
    }
    cairn_iiter_next(m->child[m->heap[0]]);
    if (m_fix(m, 0))
        m_dedup(m);
}

static void m_prev(cairn_iiter *it)
{
    merge_iter *m = (merge_iter *)it;
    if (m->hn == 0)
        return;
    if (m->dir != DIR_REV) {
        m_turn(m, DIR_REV);
        return;
    }
    cairn_iiter_prev(m->child[m->heap[0]]);
    if (m_fix(m, 0))
        m_dedup(m);
}

static bool m_valid(const cairn_iiter *it)
{
    return ((const merge_iter *)it)->hn > 0;
}

static void m_entry(const cairn_iiter *it, cairn_ientry *out)
{
    const merge_iter *m = (const merge_iter *)it;
    *out = m->ent[m->heap[0]];
}

static int m_status(const cairn_iiter *it)
{
    return ((const merge_iter *)it)->status;
}

static const char *m_errmsg(const cairn_iiter *it)
{
    return ((const merge_iter *)it)->errmsg;
}

static void m_destroy(cairn_iiter *it)
{
    merge_iter *m = (merge_iter *)it;
    for (size_t i = 0; i < m->n; i++)
        cairn_iiter_destroy(m->child[i]);
    free(m->child);
    free(m->ent);
    free(m->heap);
    free(m);
}

static const cairn_iiter_ops merge_iter_ops = {
    .seek_first = m_seek_first,
    .seek_last = m_seek_last,
    .seek = m_seek,
    .seek_for_prev = m_seek_for_prev,
    .next = m_next,
    .prev = m_prev,
    .valid = m_valid,
    .entry = m_entry,
    .status = m_status,
    .errmsg = m_errmsg,
    .destroy = m_destroy,
};

cairn_iiter *cairn_iiter_merge(cairn_iiter **children, size_t n)
{
    bool ok = n == 0 || children != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = children[i] != NULL;
    if (ok && n == 1)
        return children[0];
    merge_iter *m = NULL;
    if (ok) {
        m = calloc(1, sizeof(*m));
        size_t cap = n ? n : 1;
        if (m) {
            m->child = malloc(cap * sizeof(*m->child));
            m->ent = calloc(cap, sizeof(*m->ent));
            m->heap = malloc(cap * sizeof(*m->heap));
        }
        if (!m || !m->child || !m->ent || !m->heap) {
            if (m) {
                free(m->child);
                free(m->ent);
                free(m->heap);
                free(m);
            }
            ok = false;
        }
    }
    if (!ok) {
        for (size_t i = 0; children && i < n; i++)
            cairn_iiter_destroy(children[i]);
        return NULL;
    }
    m->base.ops = &merge_iter_ops;
    m->n = n;
    for (size_t i = 0; i < n; i++)
        m->child[i] = children[i];
    m->dir = DIR_FWD;
    return &m->base;
}

/* ---------- user iterator ---------- */

typedef struct ubuf {
    uint8_t *p;
    size_t len, cap;
} ubuf;

/* Room for len bytes plus one (the 0x00 that makes a key's successor). */
static bool ubuf_set(ubuf *b, const uint8_t *src, size_t len)
{
    if (len >= b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap <= len) {
            if (cap > SIZE_MAX / 2) {
                cap = len + 1;
                break;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p)
            return false;
        b->p = p;
        b->cap = cap;
    }
    if (len)
        memcpy(b->p, src, len);
    b->len = len;
    return true;
}

struct cairn_uiter {
    cairn_iiter *it; /* the merged internal iterator (owned) */
    uint64_t snap, max_ts;
    bool has_lower, has_upper;
    ubuf lower, upper;
    int dir;
    bool valid;
    int status;
    char errmsg[CAIRN_IITER_ERRMSG_LEN];
    cairn_ientry cur; /* forward: the entry shown (points into it) */
    ubuf sk;          /* saved key: skip runs forward, the key shown back */
    ubuf rv;          /* backward: the value shown */
    uint64_t rver, rts;
    cairn_ikind rkind; /* kind of the entry in rv */
    ubuf tk; /* seek targets, copied from the caller */
};

static inline bool u_visible(const cairn_uiter *u, const cairn_ientry *e)
{
    return e->version <= u->snap && e->ts_us <= u->max_ts;
}

static void u_fail(cairn_uiter *u, int status, const char *msg)
{
    u->valid = false;
    u->status = status;
    snprintf(u->errmsg, sizeof(u->errmsg), "%s", msg);
}

static void u_reset(cairn_uiter *u)
{
    u->valid = false;
    u->status = 0;
    u->errmsg[0] = '\0';
}

/* Is the internal iterator valid? If not and it failed, fail u too. */
static bool u_it_ok(cairn_uiter *u)
{
    if (cairn_iiter_valid(u->it))
        return true;
    int st = cairn_iiter_status(u->it);
    if (st != 0)
        u_fail(u, st, cairn_iiter_errmsg(u->it));
    return false;
}

static bool u_save(cairn_uiter *u, ubuf *b, const uint8_t *p, size_t len)
{
    if (ubuf_set(b, p, len))
        return true;
    u_fail(u, CAIRN_ENOMEM, "out of memory copying an entry");
    return false;
}

/* Seek the internal iterator to the first entry of a user key > sk. */
static void u_seek_past_sk(cairn_uiter *u)
{
    u->sk.p[u->sk.len] = 0; /* sk || 0x00 is the smallest key > sk */
    cairn_iiter_seek(u->it, u->sk.p, u->sk.len + 1, UINT64_MAX);
}

/* Forward: from the internal iterator's position, find the first entry to
 * show. With skipping, every entry of user key sk is passed over first. */
static void u_find_next(cairn_uiter *u, bool skipping)
{
    u->dir = DIR_FWD;
    u->valid = false;
    size_t run = 0; /* entries of one user key passed over in a row */
    bool have_run = skipping; /* sk holds the key of that run */
    for (;;) {
        if (!u_it_ok(u))
            return;
        cairn_ientry e;
        cairn_iiter_entry(u->it, &e);
        if (u->has_upper &&
            cairn_key_cmp(e.key, e.klen, u->upper.p, u->upper.len) >= 0)
            return;
        bool same = have_run && same_ukey(e.key, e.klen, u->sk.p, u->sk.len);
        if (!same)
            run = 0;
        if (skipping) {
            if (same) {
                if (++run > CAIRN_UITER_MAX_SKIP) {
                    u_seek_past_sk(u);
                    run = 0;
                    skipping = false;
                    have_run = false;
                } else {
                    cairn_iiter_next(u->it);
                }
                continue;
            }
            skipping = false;
        }
        if (!u_visible(u, &e)) {
            if (!same) {
                if (!u_save(u, &u->sk, e.key, e.klen))
                    return;
                have_run = true;
            }
            if (e.version > u->snap && ++run > CAIRN_UITER_MAX_SKIP) {
                /* Many versions above the snapshot: jump to the first one at
                 * or below it (strictly ahead, as e.version > snap). */
                cairn_iiter_seek(u->it, u->sk.p, u->sk.len, u->snap);
                run = 0;
            } else {
                cairn_iiter_next(u->it);
            }
            continue;
        }
        /* e is the newest visible entry of its key. */
        if (e.kind == CAIRN_IKIND_DELETE) {
            if (!same && !u_save(u, &u->sk, e.key, e.klen))
                return;
            have_run = true;
            skipping = true;
            run = 0;
            cairn_iiter_next(u->it);
            continue;
        }
        u->cur = e;
        u->valid = true;
        return;
    }
}

/* Backward, run of sk: many entries seen; find the newest visible entry of
 * sk with seeks instead of more steps, and leave the internal iterator on
 * the last entry before sk's. Returns 1 if an entry to show was found (in
 * rv/rver/rts), 0 if not, -1 on failure. */
static int u_rev_by_seek(cairn_uiter *u)
{
    int found = 0;
    cairn_iiter_seek(u->it, u->sk.p, u->sk.len, u->snap);
    for (;;) {
        if (!u_it_ok(u)) {
            if (u->status)
                return -1;
            break;
        }
        cairn_ientry e;
        cairn_iiter_entry(u->it, &e);
        if (!same_ukey(e.key, e.klen, u->sk.p, u->sk.len))
            break;
        if (u_visible(u, &e)) {
            if (e.kind != CAIRN_IKIND_DELETE) {
                if (!u_save(u, &u->rv, e.value, e.vlen))
                    return -1;
                u->rkind = e.kind;
                u->rver = e.version;
                u->rts = e.ts_us;
                found = 1;
            }
            break;
        }
        cairn_iiter_next(u->it);
    }
    /* (sk, UINT64_MAX) is the first possible entry of sk. */
    cairn_iiter_seek_for_prev(u->it, u->sk.p, u->sk.len, UINT64_MAX);
    for (;;) {
        if (!u_it_ok(u))
            return u->status ? -1 : found;
        cairn_ientry e;
        cairn_iiter_entry(u->it, &e);
        if (!same_ukey(e.key, e.klen, u->sk.p, u->sk.len))
            return found;
        cairn_iiter_prev(u->it);
    }
}

/* Backward: from the internal iterator's position (the last entry not yet
 * considered), find the entry to show. Walking backward meets a key's
 * versions oldest first, so the last visible one met before the key
 * changes is the newest: remember it (copied) and show it once the walk
 * has passed every entry of the key. */
static void u_find_prev(cairn_uiter *u)
{
    u->dir = DIR_REV;
    u->valid = false;
    bool have_run = false; /* sk holds the key being walked */
    bool cand = false;     /* rv/rver/rts hold its newest visible put */
    size_t run = 0;
    for (;;) {
        if (!u_it_ok(u)) {
            if (u->status == 0 && cand)
                u->valid = true; /* ran off the start after the run */
            return;
        }
        cairn_ientry e;
        cairn_iiter_entry(u->it, &e);
        if (have_run && !same_ukey(e.key, e.klen, u->sk.p, u->sk.len)) {
            if (cand) { /* the run is over, we sit before it */
                u->valid = true;
                return;
            }
            have_run = false;
        }
        if (u->has_lower &&
            cairn_key_cmp(e.key, e.klen, u->lower.p, u->lower.len) < 0)
            return;
        if (!have_run) {
            if (!u_save(u, &u->sk, e.key, e.klen))
                return;
            have_run = true;
            cand = false;
            run = 0;
        }
        if (++run > CAIRN_UITER_MAX_SKIP) {
            int r = u_rev_by_seek(u);
            if (r < 0)
                return;
            if (r > 0) {
                u->valid = true;
                return;
            }
            have_run = false;
            cand = false;
            continue;
        }
        if (u_visible(u, &e)) {
            if (e.kind != CAIRN_IKIND_DELETE) {
                if (!u_save(u, &u->rv, e.value, e.vlen))
                    return;
                u->rkind = e.kind;
                u->rver = e.version;
                u->rts = e.ts_us;
                cand = true;
            } else {
                cand = false;
            }
        }
        cairn_iiter_prev(u->it);
    }
}

cairn_uiter *cairn_uiter_new(cairn_iiter *merged, uint64_t snapshot_version,
                             uint64_t max_ts, const void *lower, size_t lowlen,
                             const void *upper, size_t uplen)
{
    if (!merged)
        return NULL;
    cairn_uiter *u = calloc(1, sizeof(*u));
    if (!u)
        goto fail;
    u->it = merged;
    u->snap = snapshot_version;
    u->max_ts = max_ts;
    u->dir = DIR_FWD;
    if (lower) {
        u->has_lower = true;
        if (!ubuf_set(&u->lower, lower, lowlen))
            goto fail;
    }
    if (upper) {
        u->has_upper = true;
        if (!ubuf_set(&u->upper, upper, uplen))
            goto fail;
    }
    /* Allocate the scratch buffers now, so the common case never fails. */
    if (!ubuf_set(&u->sk, NULL, 0) || !ubuf_set(&u->tk, NULL, 0) ||
        !ubuf_set(&u->rv, NULL, 0))
        goto fail;
    return u;
fail:
    if (u) {
        u->it = NULL;
        cairn_uiter_free(u);
    }
    cairn_iiter_destroy(merged);
    return NULL;
}

bool cairn_prefix_successor(const void *prefix, size_t plen, uint8_t *out,
                            size_t *outlen)
{
    const uint8_t *p = prefix;
    size_t n = plen;
    while (n > 0 && p[n - 1] == 0xff)
        n--;
    if (n == 0)
        return false;
    memcpy(out, p, n);
    out[n - 1]++;
    *outlen = n;
    return true;
}

cairn_uiter *cairn_uiter_new_prefix(cairn_iiter *merged,
                                    uint64_t snapshot_version, uint64_t max_ts,
                                    const void *prefix, size_t plen)
{
    if (!merged)
        return NULL;
    if (!prefix || plen == 0)
        return cairn_uiter_new(merged, snapshot_version, max_ts, NULL, 0, NULL,
                               0);
    uint8_t *succ = malloc(plen);
    if (!succ) {
        cairn_iiter_destroy(merged);
        return NULL;
    }
    size_t slen = 0;
    bool bounded = cairn_prefix_successor(prefix, plen, succ, &slen);
    cairn_uiter *u =
        cairn_uiter_new(merged, snapshot_version, max_ts, prefix, plen,
                        bounded ? succ : NULL, bounded ? slen : 0);
    free(succ);
    return u;
}

void cairn_uiter_free(cairn_uiter *u)
{
    if (!u)
        return;
    cairn_iiter_destroy(u->it);
    free(u->lower.p);
    free(u->upper.p);
    free(u->sk.p);
    free(u->rv.p);
    free(u->tk.p);
    free(u);
}

void cairn_uiter_first(cairn_uiter *u)
{
    u_reset(u);
    if (u->has_lower)
        cairn_iiter_seek(u->it, u->lower.p, u->lower.len, UINT64_MAX);
    else
        cairn_iiter_seek_first(u->it);
    u_find_next(u, false);
}

void cairn_uiter_last(cairn_uiter *u)
{
    u_reset(u);
    if (!u->has_upper) {
        cairn_iiter_seek_last(u->it);
    } else {
        /* Last entry <= (upper, UINT64_MAX): before every entry of upper
         * except one with version UINT64_MAX, stepped over here. */
        cairn_iiter_seek_for_prev(u->it, u->upper.p, u->upper.len,
                                  UINT64_MAX);
        while (u_it_ok(u)) {
            cairn_ientry e;
            cairn_iiter_entry(u->it, &e);
            if (cairn_key_cmp(e.key, e.klen, u->upper.p, u->upper.len) < 0)
                break;
            cairn_iiter_prev(u->it);
        }
        if (u->status)
            return;
    }
    u_find_prev(u);
}

void cairn_uiter_seek(cairn_uiter *u, const void *key, size_t klen)
{
    u_reset(u);
    const uint8_t *k = klen ? key : empty_byte;
    if (u->has_lower && cairn_key_cmp(k, klen, u->lower.p, u->lower.len) < 0) {
        k = u->lower.p;
        klen = u->lower.len;
    }
    if (!u_save(u, &u->tk, k, klen)) /* key may point into our entries */
        return;
    cairn_iiter_seek(u->it, u->tk.p, u->tk.len, UINT64_MAX);
    u_find_next(u, false);
}

void cairn_uiter_seek_for_prev(cairn_uiter *u, const void *key, size_t klen)
{
    const uint8_t *k = klen ? key : empty_byte;
    if (u->has_upper &&
        cairn_key_cmp(k, klen, u->upper.p, u->upper.len) >= 0) {
        cairn_uiter_last(u);
        return;
    }
    u_reset(u);
    if (!u_save(u, &u->tk, k, klen))
        return;
    /* (key, 0) is the last possible entry of key. */
    cairn_iiter_seek_for_prev(u->it, u->tk.p, u->tk.len, 0);
    u_find_prev(u);
}

void cairn_uiter_next(cairn_uiter *u)
{
    if (!u->valid)
        return;
    if (u->dir == DIR_FWD) {
        if (!u_save(u, &u->sk, u->cur.key, u->cur.klen))
            return;
        cairn_iiter_next(u->it);
        u_find_next(u, true);
        return;
    }
    /* Backward: sk is the key shown and the internal iterator sits before
     * it; go straight to the first entry after all of sk's. */
    u_seek_past_sk(u);
    u_find_next(u, false);
}

void cairn_uiter_prev(cairn_uiter *u)
{
    if (!u->valid)
        return;
    if (u->dir == DIR_FWD) {
        /* The internal iterator sits on the shown entry; entries of the
         * same key before it are newer versions: step back over them (or
         * seek, if there are many). */
        if (!u_save(u, &u->sk, u->cur.key, u->cur.klen))
            return;
        u->valid = false;
        for (size_t steps = 0;; steps++) {
            cairn_iiter_prev(u->it);
            if (!u_it_ok(u)) {
                if (u->status)
                    return;
                break;
            }
            cairn_ientry e;
            cairn_iiter_entry(u->it, &e);
            if (!same_ukey(e.key, e.klen, u->sk.p, u->sk.len))
                break;
            if (steps >= CAIRN_UITER_MAX_SKIP) {
                cairn_iiter_seek_for_prev(u->it, u->sk.p, u->sk.len,
                                          UINT64_MAX);
                while (u_it_ok(u)) {
                    cairn_iiter_entry(u->it, &e);
                    if (!same_ukey(e.key, e.klen, u->sk.p, u->sk.len))
                        break;
                    cairn_iiter_prev(u->it);
                }
                if (u->status)
                    return;
                break;
            }
        }
    }
    /* Backward: the internal iterator already sits before the shown key. */
    u_find_prev(u);
}

bool cairn_uiter_valid(const cairn_uiter *u)
{
    return u->valid;
}

const uint8_t *cairn_uiter_key(const cairn_uiter *u, size_t *klen)
{
    if (u->dir == DIR_FWD) {
        *klen = u->cur.klen;
        return u->cur.key;
    }
    *klen = u->sk.len;
    return u->sk.p;
}

const uint8_t *cairn_uiter_value(const cairn_uiter *u, size_t *vlen)
{
    if (u->dir == DIR_FWD) {
        *vlen = u->cur.vlen;
        return u->cur.value ? u->cur.value : empty_byte;
    }
    *vlen = u->rv.len;
    return u->rv.p;
}

bool cairn_uiter_is_blob(const cairn_uiter *u)
{
    return (u->dir == DIR_FWD ? u->cur.kind : u->rkind) == CAIRN_IKIND_BLOB;
}

uint64_t cairn_uiter_version(const cairn_uiter *u)
{
    return u->dir == DIR_FWD ? u->cur.version : u->rver;
}

uint64_t cairn_uiter_ts(const cairn_uiter *u)
{
    return u->dir == DIR_FWD ? u->cur.ts_us : u->rts;
}

int cairn_uiter_status(const cairn_uiter *u)
{
    return u->status;
}

const char *cairn_uiter_errmsg(const cairn_uiter *u)
{
    return u->errmsg;
}
