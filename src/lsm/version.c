/*
 * version.c — file metadata, version edits and immutable versions.
 *
 * A version holds, per level, a sorted array of meta pointers (each holding
 * one reference), the level's byte total, the compaction pointer, and the
 * counters. cairn_version_apply() builds a new version from a base and an
 * edit, checking every rule of docs/format/manifest.md ("Applying an edit")
 * before anything is published; the base is never modified.
 *
 * Invariants: see version.h. In addition: every version is linked in its
 * history's list from creation until its last reference is dropped, and a
 * history is freed when its last version leaves it.
 *
 * Locking: reference counts are atomics (increment relaxed, decrement
 * acq_rel, so the freeing thread sees every write made before other
 * threads' last unref). The history mutex guards the list links and the
 * history's version count only; version contents are immutable once
 * linked, so cairn_version_live_files() may read them under that mutex.
 */
#include "lsm/version.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"

/* ---- keys ---- */

int cairn_ikey_compare(const cairn_ikey *a, const cairn_ikey *b)
{
    int c = cairn_key_cmp(a->ukey, a->ulen, b->ukey, b->ulen);
    if (c != 0)
        return c;
    /* versions descending */
    return a->version > b->version ? -1 : a->version < b->version ? 1 : 0;
}

/* ---- file metadata ---- */

typedef struct meta_box {
    atomic_uint_fast32_t refs;
    cairn_file_meta m;
    uint8_t keys[]; /* smallest user key, then largest */
} meta_box;

static meta_box *box_of(const cairn_file_meta *m)
{
    return (meta_box *)(void *)((char *)(uintptr_t)m -
                                offsetof(meta_box, m));
}

cairn_file_meta *cairn_file_meta_new(const cairn_file_meta *t)
{
    if (!t || (t->smallest.ulen && !t->smallest.ukey) ||
        (t->largest.ulen && !t->largest.ukey))
        return NULL;
    size_t ks = t->smallest.ulen, kl = t->largest.ulen;
    if (ks > SIZE_MAX / 2 - sizeof(meta_box) || kl > SIZE_MAX / 2)
        return NULL;
    meta_box *b = malloc(sizeof *b + ks + kl);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->m = *t;
    if (ks)
        memcpy(b->keys, t->smallest.ukey, ks);
    if (kl)
        memcpy(b->keys + ks, t->largest.ukey, kl);
    b->m.smallest.ukey = b->keys;
    b->m.largest.ukey = b->keys + ks;
    return &b->m;
}

void cairn_file_meta_ref(const cairn_file_meta *m)
{
    if (m)
        atomic_fetch_add_explicit(&box_of(m)->refs, 1, memory_order_relaxed);
}

void cairn_file_meta_unref(const cairn_file_meta *m)
{
    if (!m)
        return;
    meta_box *b = box_of(m);
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        free(b);
}

/* ---- version edits ---- */

void cairn_version_edit_init(cairn_version_edit *e)
{
    memset(e, 0, sizeof *e);
}

void cairn_version_edit_clear(cairn_version_edit *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nadded; i++)
        cairn_file_meta_unref(e->added[i]);
    free(e->added);
    free(e->deleted);
    free(e->tiers);
    for (size_t i = 0; i < e->npointers; i++)
        free(e->pointers[i].key);
    free(e->pointers);
    cairn_version_edit_init(e);
}

void cairn_version_edit_set_next_file(cairn_version_edit *e, uint64_t n)
{
    e->has_next_file = true;
    e->next_file = n;
}

void cairn_version_edit_set_log_lsn(cairn_version_edit *e, uint64_t lsn)
{
    e->has_log_lsn = true;
    e->log_lsn = lsn;
}

void cairn_version_edit_set_horizon(cairn_version_edit *e, uint64_t h,
                                    uint64_t ts)
{
    e->has_horizon = true;
    e->horizon = h;
    e->horizon_ts = ts;
}

void cairn_version_edit_set_last_version(cairn_version_edit *e, uint64_t v)
{
    e->has_last_version = true;
    e->last_version = v;
}

/* Make room for one more element of size sz in *v (count n, capacity *cap). */
static int grow(void **v, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 8;
    if (nc > SIZE_MAX / sz)
        return CAIRN_ENOMEM;
    void *p = realloc(*v, nc * sz);
    if (!p)
        return CAIRN_ENOMEM;
    *v = p;
    *cap = nc;
    return 0;
}

static bool level_ok(int level)
{
    return level >= 0 && level < CAIRN_LSM_MAX_LEVELS;
}

int cairn_version_edit_add_meta(cairn_version_edit *e, cairn_file_meta *meta)
{
    if (!e || !meta || meta->level >= CAIRN_LSM_MAX_LEVELS)
        return CAIRN_EINVAL;
    int rc = grow((void **)&e->added, e->nadded, &e->cap_added,
                  sizeof *e->added);
    if (rc)
        return rc;
    cairn_file_meta_ref(meta);
    e->added[e->nadded++] = meta;
    return 0;
}

int cairn_version_edit_add_file(cairn_version_edit *e, int level,
                                const cairn_file_meta *meta)
{
    if (!e || !meta || !level_ok(level))
        return CAIRN_EINVAL;
    cairn_file_meta t = *meta;
    t.level = (uint32_t)level;
    cairn_file_meta *m = cairn_file_meta_new(&t);
    if (!m)
        return CAIRN_ENOMEM;
    int rc = cairn_version_edit_add_meta(e, m);
    cairn_file_meta_unref(m);
    return rc;
}

int cairn_version_edit_delete_file(cairn_version_edit *e, int level,
                                   uint64_t number)
{
    if (!e || !level_ok(level))
        return CAIRN_EINVAL;
    int rc = grow((void **)&e->deleted, e->ndeleted, &e->cap_deleted,
                  sizeof *e->deleted);
    if (rc)
        return rc;
    e->deleted[e->ndeleted++] = (cairn_edit_file){(uint32_t)level, number};
    return 0;
}

int cairn_version_edit_set_tier(cairn_version_edit *e, int level,
                                uint64_t number, uint8_t tier)
{
    if (!e || !level_ok(level))
        return CAIRN_EINVAL;
    int rc = grow((void **)&e->tiers, e->ntiers, &e->cap_tiers,
                  sizeof *e->tiers);
    if (rc)
        return rc;
    e->tiers[e->ntiers++] = (cairn_edit_tier){(uint32_t)level, number, tier};
    return 0;
}

int cairn_version_edit_set_compact_pointer(cairn_version_edit *e, int level,
                                           const void *ukey, size_t len)
{
    if (!e || !level_ok(level) || (len && !ukey))
        return CAIRN_EINVAL;
    int rc = grow((void **)&e->pointers, e->npointers, &e->cap_pointers,
                  sizeof *e->pointers);
    if (rc)
        return rc;
    uint8_t *k = malloc(len ? len : 1);
    if (!k)
        return CAIRN_ENOMEM;
    if (len)
        memcpy(k, ukey, len);
    e->pointers[e->npointers++] = (cairn_edit_pointer){(uint32_t)level, k, len};
    return 0;
}

/* ---- versions ---- */

typedef struct vhist {
    pthread_mutex_t mu;
    size_t count;        /* versions linked (under mu) */
    cairn_version *head; /* list of linked versions (under mu) */
} vhist;

struct cairn_version {
    atomic_size_t refs;
    vhist *hist;
    cairn_version *prev, *next; /* history links (under hist->mu) */
    cairn_file_meta **files[CAIRN_LSM_MAX_LEVELS];
    size_t nfiles[CAIRN_LSM_MAX_LEVELS];
    uint64_t bytes[CAIRN_LSM_MAX_LEVELS];
    uint8_t *cp[CAIRN_LSM_MAX_LEVELS];
    size_t cplen[CAIRN_LSM_MAX_LEVELS];
    bool has_cp[CAIRN_LSM_MAX_LEVELS];
    uint64_t next_file, log_lsn, last_version, horizon, horizon_ts;
    uint64_t io_user, io_written;
};

static void hist_link(vhist *h, cairn_version *v)
{
    pthread_mutex_lock(&h->mu);
    v->hist = h;
    v->prev = NULL;
    v->next = h->head;
    if (h->head)
        h->head->prev = v;
    h->head = v;
    h->count++;
    pthread_mutex_unlock(&h->mu);
}

/* Unlink v; frees the history when v was its last version. */
static void hist_unlink(cairn_version *v)
{
    vhist *h = v->hist;
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    if (v->prev)
        v->prev->next = v->next;
    else
        h->head = v->next;
    if (v->next)
        v->next->prev = v->prev;
    bool last = --h->count == 0;
    pthread_mutex_unlock(&h->mu);
    v->hist = NULL;
    if (last) {
        pthread_mutex_destroy(&h->mu);
        free(h);
    }
}

/* Free a version's contents (not linked, or already unlinked). */
static void version_free(cairn_version *v)
{
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++) {
        for (size_t i = 0; i < v->nfiles[l]; i++)
            cairn_file_meta_unref(v->files[l][i]);
        free(v->files[l]);
        free(v->cp[l]);
    }
    free(v);
}

cairn_version *cairn_version_new_empty(void)
{
    cairn_version *v = calloc(1, sizeof *v);
    vhist *h = calloc(1, sizeof *h);
    if (!v || !h || pthread_mutex_init(&h->mu, NULL) != 0) {
        free(v);
        free(h);
        return NULL;
    }
    atomic_init(&v->refs, 1);
    hist_link(h, v);
    return v;
}

void cairn_version_ref(cairn_version *v)
{
    if (v)
        atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
}

void cairn_version_unref(cairn_version *v)
{
    if (!v)
        return;
    if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1)
        return;
    hist_unlink(v);
    version_free(v);
}

/* ---- apply ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int cmp_edit_file(const void *a, const void *b)
{
    const cairn_edit_file *x = a, *y = b;
    if (x->level != y->level)
        return x->level < y->level ? -1 : 1;
    return x->number < y->number ? -1 : x->number > y->number ? 1 : 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* Level 0: newest (highest number) first. */
static int cmp_l0(const void *a, const void *b)
{
    const cairn_file_meta *x = *(cairn_file_meta *const *)a;
    const cairn_file_meta *y = *(cairn_file_meta *const *)b;
    return x->number > y->number ? -1 : x->number < y->number ? 1 : 0;
}

/* Levels >= 1: by smallest internal key (then number, for determinism). */
static int cmp_smallest(const void *a, const void *b)
{
    const cairn_file_meta *x = *(cairn_file_meta *const *)a;
    const cairn_file_meta *y = *(cairn_file_meta *const *)b;
    int c = cairn_ikey_compare(&x->smallest, &y->smallest);
    if (c)
        return c;
    return x->number < y->number ? -1 : x->number > y->number ? 1 : 0;
}

/* Is (level, number) in the sorted delete list? Index or -1. */
static ptrdiff_t find_delete(const cairn_edit_file *d, size_t n,
                             uint32_t level, uint64_t number)
{
    size_t lo = 0, hi = n;
    cairn_edit_file key = {level, number};
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_edit_file(&d[mid], &key);
        if (c == 0)
            return (ptrdiff_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* Check one added file on its own. */
static int check_added(const cairn_file_meta *m, int num_levels, char *err,
                       size_t errlen)
{
    if (m->level >= (uint32_t)num_levels) {
        set_err(err, errlen, "adds file %" PRIu64 " at level %" PRIu32
                ", beyond the last level %d", m->number, m->level,
                num_levels - 1);
        return CAIRN_EINVAL;
    }
    if (m->number == 0) {
        set_err(err, errlen, "adds a file with number 0");
        return CAIRN_EINVAL;
    }
    if (cairn_ikey_compare(&m->smallest, &m->largest) > 0) {
        set_err(err, errlen, "adds file %" PRIu64
                " whose smallest key is above its largest key", m->number);
        return CAIRN_EINVAL;
    }
    if (m->min_version > m->max_version) {
        set_err(err, errlen, "adds file %" PRIu64
                " whose min version %" PRIu64 " is above its max version %"
                PRIu64, m->number, m->min_version, m->max_version);
        return CAIRN_EINVAL;
    }
    if (m->tombstones > m->entries) {
        set_err(err, errlen, "adds file %" PRIu64
                " with more tombstones than entries", m->number);
        return CAIRN_EINVAL;
    }
    return 0;
}

/* Everything about the edit that does not depend on the base. On success
 * *sorted_del is a malloc'ed copy of the deletions sorted by (level,
 * number). */
static int check_edit(const cairn_version *base, const cairn_version_edit *e,
                      int num_levels, cairn_edit_file **sorted_del,
                      char *err, size_t errlen)
{
    *sorted_del = NULL;
    if (e->has_next_file && e->next_file < base->next_file) {
        set_err(err, errlen, "next file number goes down from %" PRIu64
                " to %" PRIu64, base->next_file, e->next_file);
        return CAIRN_EINVAL;
    }
    if (e->has_log_lsn && e->log_lsn < base->log_lsn) {
        set_err(err, errlen, "log LSN goes down from %" PRIu64 " to %" PRIu64,
                base->log_lsn, e->log_lsn);
        return CAIRN_EINVAL;
    }
    if (e->has_last_version && e->last_version < base->last_version) {
        set_err(err, errlen, "last version goes down from %" PRIu64
                " to %" PRIu64, base->last_version, e->last_version);
        return CAIRN_EINVAL;
    }
    for (size_t i = 0; i < e->nadded; i++) {
        int rc = check_added(e->added[i], num_levels, err, errlen);
        if (rc)
            return rc;
    }
    /* Deletions and tier changes may name any level of the format (they
     * must find their file anyway), so files left deeper than num_levels by
     * an earlier configuration can still be moved out. */
    for (size_t i = 0; i < e->ntiers; i++) {
        if (e->tiers[i].level >= CAIRN_LSM_MAX_LEVELS) {
            set_err(err, errlen, "changes the tier of file %" PRIu64
                    " at level %" PRIu32 ", beyond the format's levels",
                    e->tiers[i].number, e->tiers[i].level);
            return CAIRN_EINVAL;
        }
    }
    for (size_t i = 0; i < e->npointers; i++) {
        if (e->pointers[i].level >= (uint32_t)num_levels) {
            set_err(err, errlen, "sets a compaction pointer at level %" PRIu32
                    ", beyond the last level %d", e->pointers[i].level,
                    num_levels - 1);
            return CAIRN_EINVAL;
        }
    }
    if (e->ndeleted == 0)
        return 0;
    cairn_edit_file *d = malloc(e->ndeleted * sizeof *d);
    if (!d)
        return CAIRN_ENOMEM;
    memcpy(d, e->deleted, e->ndeleted * sizeof *d);
    qsort(d, e->ndeleted, sizeof *d, cmp_edit_file);
    for (size_t i = 0; i < e->ndeleted; i++) {
        if (d[i].level >= CAIRN_LSM_MAX_LEVELS) {
            set_err(err, errlen, "deletes file %" PRIu64 " at level %" PRIu32
                    ", beyond the format's levels", d[i].number, d[i].level);
            free(d);
            return CAIRN_EINVAL;
        }
        if (i > 0 && cmp_edit_file(&d[i - 1], &d[i]) == 0) {
            set_err(err, errlen, "deletes file %" PRIu64 " from level %" PRIu32
                    " twice", d[i].number, d[i].level);
            free(d);
            return CAIRN_EINVAL;
        }
    }
    *sorted_del = d;
    return 0;
}

/* Build level l of nv from base minus deletions plus additions. found[] marks
 * the deletions that matched a base file. */
static int build_level(cairn_version *nv, const cairn_version *base, int l,
                       const cairn_version_edit *e, const cairn_edit_file *del,
                       bool *found, char *err, size_t errlen)
{
    size_t cap = base->nfiles[l];
    for (size_t i = 0; i < e->nadded; i++)
        if (e->added[i]->level == (uint32_t)l)
            cap++;
    if (cap == 0)
        return 0;
    cairn_file_meta **arr = malloc(cap * sizeof *arr);
    if (!arr)
        return CAIRN_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < base->nfiles[l]; i++) {
        cairn_file_meta *m = base->files[l][i];
        ptrdiff_t k = del ? find_delete(del, e->ndeleted, (uint32_t)l,
                                        m->number)
                          : -1;
        if (k >= 0) {
            found[k] = true;
            continue;
        }
        cairn_file_meta_ref(m);
        arr[n++] = m;
    }
    for (size_t i = 0; i < e->nadded; i++) {
        if (e->added[i]->level != (uint32_t)l)
            continue;
        cairn_file_meta_ref(e->added[i]);
        arr[n++] = e->added[i];
    }
    /* Owned by nv from here on, so errors below are cleaned up with it. */
    nv->files[l] = arr;
    nv->nfiles[l] = n;
    if (l == 0) {
        qsort(arr, n, sizeof *arr, cmp_l0);
    } else {
        qsort(arr, n, sizeof *arr, cmp_smallest);
        for (size_t i = 1; i < n; i++) {
            const cairn_file_meta *a = arr[i - 1], *b = arr[i];
            if (cairn_key_cmp(a->largest.ukey, a->largest.ulen,
                                   b->smallest.ukey, b->smallest.ulen) >= 0) {
                set_err(err, errlen, "files %" PRIu64 " and %" PRIu64
                        " overlap in level %d", a->number, b->number, l);
                return CAIRN_EINVAL;
            }
        }
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += arr[i]->file_size;
    nv->bytes[l] = bytes;
    return 0;
}

/* Every file number of nv distinct. */
static int check_unique(const cairn_version *nv, char *err, size_t errlen)
{
    size_t total = cairn_version_total_files(nv);
    if (total < 2)
        return 0;
    uint64_t *nums = malloc(total * sizeof *nums);
    if (!nums)
        return CAIRN_ENOMEM;
    size_t k = 0;
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++)
        for (size_t i = 0; i < nv->nfiles[l]; i++)
            nums[k++] = nv->files[l][i]->number;
    qsort(nums, total, sizeof *nums, cmp_u64);
    int rc = 0;
    for (size_t i = 1; i < total; i++) {
        if (nums[i] == nums[i - 1]) {
            set_err(err, errlen, "file %" PRIu64 " would be in the version "
                    "twice (added twice, or added while present)", nums[i]);
            rc = CAIRN_EINVAL;
            break;
        }
    }
    free(nums);
    return rc;
}

static int apply_tier(cairn_version *nv, const cairn_edit_tier *t, char *err,
                      size_t errlen)
{
    uint32_t l = t->level;
    for (size_t i = 0; i < nv->nfiles[l]; i++) {
        cairn_file_meta *m = nv->files[l][i];
        if (m->number != t->number)
            continue;
        if (m->tier == t->tier)
            return 0;
        cairn_file_meta c = *m;
        c.tier = t->tier;
        cairn_file_meta *nm = cairn_file_meta_new(&c);
        if (!nm)
            return CAIRN_ENOMEM;
        cairn_file_meta_unref(m);
        nv->files[l][i] = nm;
        return 0;
    }
    set_err(err, errlen, "changes the tier of file %" PRIu64
            ", which is not at level %" PRIu32, t->number, l);
    return CAIRN_EINVAL;
}

int cairn_version_apply(const cairn_version *base,
                        const cairn_version_edit *e, int num_levels,
                        cairn_version **out, char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!base || !e || !out || num_levels < 1 ||
        num_levels > CAIRN_LSM_MAX_LEVELS) {
        set_err(err, errlen, "invalid arguments");
        return CAIRN_EINVAL;
    }
    cairn_edit_file *del = NULL;
    int rc = check_edit(base, e, num_levels, &del, err, errlen);
    if (rc)
        return rc;
    bool *found = NULL;
    cairn_version *nv = calloc(1, sizeof *nv);
    if (!nv || (e->ndeleted && !(found = calloc(e->ndeleted, sizeof *found)))) {
        rc = CAIRN_ENOMEM;
        goto fail;
    }
    atomic_init(&nv->refs, 1);
    nv->next_file = e->has_next_file ? e->next_file : base->next_file;
    nv->log_lsn = e->has_log_lsn ? e->log_lsn : base->log_lsn;
    nv->last_version =
        e->has_last_version ? e->last_version : base->last_version;
    bool raise = e->has_horizon && e->horizon > base->horizon;
    nv->horizon = raise ? e->horizon : base->horizon;
    nv->horizon_ts = raise ? e->horizon_ts : base->horizon_ts;
    nv->io_user = e->has_io ? e->io_user_bytes : base->io_user;
    nv->io_written = e->has_io ? e->io_written_bytes : base->io_written;

    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS && rc == 0; l++)
        rc = build_level(nv, base, l, e, del, found, err, errlen);
    if (rc)
        goto fail;
    for (size_t i = 0; i < e->ndeleted; i++) {
        if (!found[i]) {
            set_err(err, errlen, "deletes file %" PRIu64
                    ", which is not at level %" PRIu32, del[i].number,
                    del[i].level);
            rc = CAIRN_EINVAL;
            goto fail;
        }
    }
    if ((rc = check_unique(nv, err, errlen)) != 0)
        goto fail;
    for (size_t i = 0; i < e->ntiers; i++)
        if ((rc = apply_tier(nv, &e->tiers[i], err, errlen)) != 0)
            goto fail;

    /* Compaction pointers: the base's, replaced by the edit's (last wins). */
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++) {
        const uint8_t *k = base->cp[l];
        size_t len = base->cplen[l];
        bool has = base->has_cp[l];
        for (size_t i = 0; i < e->npointers; i++) {
            if (e->pointers[i].level == (uint32_t)l) {
                k = e->pointers[i].key;
                len = e->pointers[i].len;
                has = true;
            }
        }
        if (!has)
            continue;
        nv->cp[l] = malloc(len ? len : 1);
        if (!nv->cp[l]) {
            rc = CAIRN_ENOMEM;
            goto fail;
        }
        if (len)
            memcpy(nv->cp[l], k, len);
        nv->cplen[l] = len;
        nv->has_cp[l] = true;
    }
    free(del);
    free(found);
    hist_link(base->hist, nv);
    *out = nv;
    return 0;

fail:
    free(del);
    free(found);
    if (nv)
        version_free(nv);
    if (rc == CAIRN_ENOMEM)
        set_err(err, errlen, "out of memory");
    return rc;
}

/* ---- accessors ---- */

uint64_t cairn_version_next_file(const cairn_version *v) { return v->next_file; }
uint64_t cairn_version_log_lsn(const cairn_version *v) { return v->log_lsn; }
uint64_t cairn_version_last_version(const cairn_version *v)
{
    return v->last_version;
}

uint64_t cairn_version_horizon(const cairn_version *v)
{
    return v->horizon;
}

uint64_t cairn_version_horizon_ts(const cairn_version *v)
{
    return v->horizon_ts;
}

void cairn_version_edit_set_io(cairn_version_edit *e, uint64_t user_bytes,
                               uint64_t written_bytes)
{
    e->has_io = true;
    e->io_user_bytes = user_bytes;
    e->io_written_bytes = written_bytes;
}

void cairn_version_io(const cairn_version *v, uint64_t *user_bytes,
                      uint64_t *written_bytes)
{
    *user_bytes = v->io_user;
    *written_bytes = v->io_written;
}

size_t cairn_version_num_files(const cairn_version *v, int level)
{
    return level_ok(level) ? v->nfiles[level] : 0;
}

uint64_t cairn_version_level_bytes(const cairn_version *v, int level)
{
    return level_ok(level) ? v->bytes[level] : 0;
}

const cairn_file_meta *cairn_version_file(const cairn_version *v, int level,
                                          size_t i)
{
    if (!level_ok(level) || i >= v->nfiles[level])
        return NULL;
    return v->files[level][i];
}

size_t cairn_version_total_files(const cairn_version *v)
{
    size_t n = 0;
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++)
        n += v->nfiles[l];
    return n;
}

bool cairn_version_compact_pointer(const cairn_version *v, int level,
                                   const uint8_t **key, size_t *len)
{
    if (!level_ok(level) || !v->has_cp[level])
        return false;
    if (key)
        *key = v->cp[level];
    if (len)
        *len = v->cplen[level];
    return true;
}

const cairn_file_meta *cairn_version_lookup(const cairn_version *v,
                                            uint64_t number, int *level)
{
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++) {
        for (size_t i = 0; i < v->nfiles[l]; i++) {
            if (v->files[l][i]->number == number) {
                if (level)
                    *level = l;
                return v->files[l][i];
            }
        }
    }
    return NULL;
}

size_t cairn_version_find_index(const cairn_version *v, int level,
                                const void *ukey, size_t len)
{
    if (!level_ok(level))
        return 0;
    size_t lo = 0, hi = v->nfiles[level];
    cairn_file_meta **f = v->files[level];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cairn_key_cmp(f[mid]->largest.ukey, f[mid]->largest.ulen,
                               ukey, len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const cairn_file_meta *cairn_version_find_file(const cairn_version *v,
                                               int level, const void *ukey,
                                               size_t len)
{
    if (level < 1 || !level_ok(level))
        return NULL;
    size_t i = cairn_version_find_index(v, level, ukey, len);
    if (i >= v->nfiles[level])
        return NULL;
    const cairn_file_meta *m = v->files[level][i];
    if (cairn_key_cmp(ukey, len, m->smallest.ukey, m->smallest.ulen) < 0)
        return NULL;
    return m;
}

/* Does m's user-key range meet [lo, hi]? */
static bool meets(const cairn_file_meta *m, const void *lo, size_t lolen,
                  const void *hi, size_t hilen)
{
    if (lo && cairn_key_cmp(m->largest.ukey, m->largest.ulen, lo,
                                 lolen) < 0)
        return false;
    if (hi && cairn_key_cmp(m->smallest.ukey, m->smallest.ulen, hi,
                                 hilen) > 0)
        return false;
    return true;
}

int cairn_version_overlapping_files(const cairn_version *v, int level,
                                    const void *lo, size_t lolen,
                                    const void *hi, size_t hilen,
                                    const cairn_file_meta ***out, size_t *n)
{
    if (out)
        *out = NULL;
    if (n)
        *n = 0;
    if (!v || !level_ok(level) || !out || !n)
        return CAIRN_EINVAL;
    size_t total = v->nfiles[level];
    size_t start = 0;
    if (level >= 1 && lo)
        start = cairn_version_find_index(v, level, lo, lolen);
    if (start >= total)
        return 0;
    const cairn_file_meta **arr = malloc((total - start) * sizeof *arr);
    if (!arr)
        return CAIRN_ENOMEM;
    size_t k = 0;
    for (size_t i = start; i < total; i++) {
        const cairn_file_meta *m = v->files[level][i];
        if (meets(m, lo, lolen, hi, hilen))
            arr[k++] = m;
        else if (level >= 1 && hi &&
                 cairn_key_cmp(m->smallest.ukey, m->smallest.ulen, hi,
                                    hilen) > 0)
            break; /* sorted and disjoint: nothing further meets */
    }
    if (k == 0) {
        free(arr);
        return 0;
    }
    *out = arr;
    *n = k;
    return 0;
}

int cairn_version_live_files(const cairn_version *v, uint64_t **out,
                             size_t *n)
{
    if (out)
        *out = NULL;
    if (n)
        *n = 0;
    if (!v || !out || !n)
        return CAIRN_EINVAL;
    vhist *h = v->hist;
    uint64_t *nums = NULL;
    size_t k = 0, cap = 0;
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    for (cairn_version *x = h->head; x && rc == 0; x = x->next) {
        size_t need = k + cairn_version_total_files(x);
        if (need > cap) {
            size_t nc = cap ? cap : 64;
            while (nc < need)
                nc *= 2;
            uint64_t *p = realloc(nums, nc * sizeof *p);
            if (!p) {
                rc = CAIRN_ENOMEM;
                break;
            }
            nums = p;
            cap = nc;
        }
        for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++)
            for (size_t i = 0; i < x->nfiles[l]; i++)
                nums[k++] = x->files[l][i]->number;
    }
    pthread_mutex_unlock(&h->mu);
    if (rc) {
        free(nums);
        return rc;
    }
    if (k == 0) {
        free(nums);
        return 0;
    }
    qsort(nums, k, sizeof *nums, cmp_u64);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (u == 0 || nums[u - 1] != nums[i])
            nums[u++] = nums[i];
    *out = nums;
    *n = u;
    return 0;
}
