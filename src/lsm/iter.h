/*
 * iter.h — the iterator stack under range scans and the public iterator:
 *
 *   cairn_iiter   an internal iterator: a vtable over one ordered source of
 *                 versioned entries (a memtable, a sorted file) or over a
 *                 merge of several;
 *   merge         cairn_iiter_merge: the union of several internal iterators
 *                 in internal order, as one internal iterator;
 *   cairn_uiter   the user iterator: on top of a merged internal iterator,
 *                 one entry per user key — the newest one visible at a
 *                 snapshot — with deletions hidden and bounds applied.
 *
 * Internal order (everywhere): user key ascending (memcmp over the common
 * prefix, the shorter key first on a tie; the empty key sorts first), then
 * version DESCENDING, so a key's newest version comes first. A source holds
 * each (key, version) at most once; a merge may see the same pair in two
 * sources (see cairn_iiter_merge).
 *
 * Positioning and errors: a new internal iterator is not positioned (not
 * valid). seek* and seek_first/seek_last position it; next/prev require it
 * to be valid. Running off either end makes it invalid with status 0; an
 * error (e.g. CAIRN_ECORRUPT from a damaged block, CAIRN_EIO) makes it
 * invalid with that status and a message (errmsg) until the next seek*,
 * which starts over. An invalid iterator with status 0 is a true end: never
 * an error dressed as an end, never wrong data.
 *
 * Lifetimes: an entry's key and value pointers stay valid until the
 * iterator that returned them moves (any positioning call) or is destroyed.
 * A key passed to seek / seek_for_prev must not point into the entries of
 * the iterator being positioned (copy it first); cairn_uiter copies user
 * keys itself, so its callers need not care.
 *
 * Threading: an iterator belongs to one thread at a time. The sources may be
 * shared (a memtable receiving inserts, a sorted-file reader read by other
 * threads), each under its own rules (memtable.h, sst.h).
 */
#ifndef CAIRN_LSM_ITER_H
#define CAIRN_LSM_ITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/keycmp.h"
#include "mvcc/memtable.h"
#include "sst/sst.h"

#define CAIRN_IITER_ERRMSG_LEN 256

/* Entry kinds: the same values as CAIRN_MT_PUT/DELETE and
 * CAIRN_SST_PUT/DELETE. */
typedef enum {
    CAIRN_IKIND_PUT = 1,
    CAIRN_IKIND_DELETE = 2,
    CAIRN_IKIND_BLOB = 3 /* a put; value = the blob reference record */
} cairn_ikind;

/* One entry. key is never NULL (even for klen 0). value is NULL (vlen 0) for
 * deletes and non-NULL for puts (even an empty value). */
typedef struct cairn_ientry {
    const uint8_t *key;
    size_t klen;
    uint64_t version;
    uint64_t ts_us; /* commit timestamp, microseconds */
    cairn_ikind kind;
    const uint8_t *value;
    size_t vlen;
} cairn_ientry;

/* ------------------------------------------------------------------------
 * Internal iterator interface
 * ------------------------------------------------------------------------ */

typedef struct cairn_iiter cairn_iiter;

typedef struct cairn_iiter_ops {
    void (*seek_first)(cairn_iiter *it);
    void (*seek_last)(cairn_iiter *it);
    /* First entry >= (key, version). Version UINT64_MAX: the key's first
     * entry, or the first entry after it. */
    void (*seek)(cairn_iiter *it, const void *key, size_t klen,
                 uint64_t version);
    /* Last entry <= (key, version). Version 0: the key's last entry, or the
     * last entry before it. */
    void (*seek_for_prev)(cairn_iiter *it, const void *key, size_t klen,
                          uint64_t version);
    void (*next)(cairn_iiter *it); /* requires valid */
    void (*prev)(cairn_iiter *it); /* requires valid */
    bool (*valid)(const cairn_iiter *it);
    /* requires valid */
    void (*entry)(const cairn_iiter *it, cairn_ientry *out);
    /* 0, or the error that invalidated the iterator. */
    int (*status)(const cairn_iiter *it);
    /* The message of that error; "" when status is 0. */
    const char *(*errmsg)(const cairn_iiter *it);
    void (*destroy)(cairn_iiter *it);
} cairn_iiter_ops;

/* Implementations embed this as their first member. */
struct cairn_iiter {
    const cairn_iiter_ops *ops;
};

static inline void cairn_iiter_seek_first(cairn_iiter *it)
{
    it->ops->seek_first(it);
}
static inline void cairn_iiter_seek_last(cairn_iiter *it)
{
    it->ops->seek_last(it);
}
static inline void cairn_iiter_seek(cairn_iiter *it, const void *key,
                                    size_t klen, uint64_t version)
{
    it->ops->seek(it, key, klen, version);
}
static inline void cairn_iiter_seek_for_prev(cairn_iiter *it, const void *key,
                                             size_t klen, uint64_t version)
{
    it->ops->seek_for_prev(it, key, klen, version);
}
static inline void cairn_iiter_next(cairn_iiter *it)
{
    it->ops->next(it);
}
static inline void cairn_iiter_prev(cairn_iiter *it)
{
    it->ops->prev(it);
}
static inline bool cairn_iiter_valid(const cairn_iiter *it)
{
    return it->ops->valid(it);
}
static inline void cairn_iiter_entry(const cairn_iiter *it, cairn_ientry *out)
{
    it->ops->entry(it, out);
}
static inline int cairn_iiter_status(const cairn_iiter *it)
{
    return it->ops->status(it);
}
static inline const char *cairn_iiter_errmsg(const cairn_iiter *it)
{
    return it->ops->errmsg(it);
}
/* NULL is a no-op. */
static inline void cairn_iiter_destroy(cairn_iiter *it)
{
    if (it)
        it->ops->destroy(it);
}

/* Internal order of (ak, av) against (bk, bv): <0, 0, >0. */
int cairn_iiter_cmp(const uint8_t *ak, size_t alen, uint64_t av,
                    const uint8_t *bk, size_t blen, uint64_t bv);

/* ------------------------------------------------------------------------
 * Adapters
 * ------------------------------------------------------------------------ */

/* An internal iterator over a memtable. Takes its own reference on mt and
 * drops it on destroy. Never fails once created (status is always 0). Its
 * prev / seek_last / seek_for_prev are O(log n) searches (memtable.h); with
 * concurrent inserts it follows the memtable's rules: entries inserted
 * meanwhile may or may not be seen, order is always respected. NULL on out
 * of memory (no reference taken). */
cairn_iiter *cairn_iiter_from_memtable(cairn_memtable *mt);

/* An internal iterator over a sorted file (a cairn_sst_iter). The reader
 * must outlive the iterator. Errors of the file (CAIRN_ECORRUPT, CAIRN_EIO,
 * ...) come through status / errmsg with the file's message. NULL on out of
 * memory. */
cairn_iiter *cairn_iiter_from_sst(const cairn_sst_reader *r);
/* The same; fill_cache false keeps the blocks it reads on a miss out of
 * the block cache (a compaction's one pass over its inputs). */
cairn_iiter *cairn_iiter_from_sst_ex(const cairn_sst_reader *r,
                                     bool fill_cache);

/* ------------------------------------------------------------------------
 * Merging iterator
 * ------------------------------------------------------------------------
 * The union of children[0..n) in internal order. children are given NEWEST
 * SOURCE FIRST. If two children hold the same (key, version) — it happens
 * transiently, e.g. while a flushed memtable is still in the table set next
 * to the sorted file it was written to, or while a compaction's inputs and
 * outputs overlap in a view — the entry of the newer source (lower index) is
 * yielded once and the others are skipped (in both directions).
 *
 * Direction changes work like LevelDB's merging iterator: on next after
 * prev (or prev after next) every child but the current one is re-sought to
 * the current entry (seek, or seek_for_prev) and stepped past it, so each
 * switch costs one seek per child; steps in one direction cost one move of
 * one child plus O(log n) comparisons (a binary heap over the valid
 * children, a min-heap forward and a max-heap backward, ties broken by
 * child index; used for every n: the comparisons are cheap next to the
 * child moves, and L0 plus the levels plus the memtables easily pass ten
 * children).
 *
 * Errors: when any child becomes invalid with an error (while seeking,
 * stepping or being re-sought), the merge becomes invalid with that status
 * and message until its next seek*: entries are never produced with a
 * source missing.
 *
 * Takes ownership of the children (destroyed with the merge) and copies the
 * array. Returns NULL on out of memory or if any child is NULL (a failed
 * constructor); the non-NULL children are destroyed then too. n == 1
 * returns children[0] itself; n == 0 gives an always-empty iterator. */
cairn_iiter *cairn_iiter_merge(cairn_iiter **children, size_t n);

/* ------------------------------------------------------------------------
 * User iterator (MVCC view)
 * ------------------------------------------------------------------------
 * Shows, for each user key in [lower, upper), the newest entry with
 * version <= snapshot_version and ts_us <= max_ts (UINT64_MAX: no time
 * bound); a key whose such entry is a DELETE, or that has none, is not
 * shown. Keys come in ascending order forward and descending backward, each
 * once.
 *
 * Moves: first / last; seek(key) = first shown key >= key; seek_for_prev
 * (key) = last shown key <= key; next / prev (require valid; direction
 * changes allowed). key / value / version / ts describe the current entry
 * (require valid); their pointers stay valid until the next move or free.
 * Forward they point into the sources; backward the key and value are
 * copies held by the iterator (walking backward meets a key's older
 * versions first, so its newest visible one is known only after moving
 * past it).
 *
 * Hot keys: after CAIRN_UITER_MAX_SKIP consecutive entries of one user key
 * passed over (versions above the snapshot, or older versions of a key
 * already decided), the iterator re-seeks instead of stepping, so a key
 * with thousands of versions costs a few seeks, not thousands of steps.
 *
 * Errors: if the internal iterator fails (status != 0), the user iterator
 * becomes invalid with that status (cairn_uiter_status, cairn_uiter_errmsg)
 * until the next first/last/seek*; CAIRN_ENOMEM if a copy fails. An
 * invalid iterator with status 0 is a true end.
 *
 * Bounds: lower inclusive, upper exclusive; NULL = unbounded (a non-NULL
 * bound of length 0 is the empty key: as lower it bounds nothing, as upper
 * it excludes everything). Both are copied.
 *
 * Takes ownership of merged (destroyed by cairn_uiter_free, or at once if
 * creation fails). NULL on out of memory or if merged is NULL. One thread at
 * a time. */
#define CAIRN_UITER_MAX_SKIP 8

typedef struct cairn_uiter cairn_uiter;

cairn_uiter *cairn_uiter_new(cairn_iiter *merged, uint64_t snapshot_version,
                             uint64_t max_ts, const void *lower, size_t lowlen,
                             const void *upper, size_t uplen);
/* Bounds [prefix, successor(prefix)): exactly the keys starting with
 * prefix. An empty or all-0xff prefix has no successor: upper unbounded. */
cairn_uiter *cairn_uiter_new_prefix(cairn_iiter *merged,
                                    uint64_t snapshot_version, uint64_t max_ts,
                                    const void *prefix, size_t plen);
void cairn_uiter_free(cairn_uiter *u); /* NULL is a no-op */

void cairn_uiter_first(cairn_uiter *u);
void cairn_uiter_last(cairn_uiter *u);
void cairn_uiter_seek(cairn_uiter *u, const void *key, size_t klen);
void cairn_uiter_seek_for_prev(cairn_uiter *u, const void *key, size_t klen);
void cairn_uiter_next(cairn_uiter *u); /* requires valid */
void cairn_uiter_prev(cairn_uiter *u); /* requires valid */
bool cairn_uiter_valid(const cairn_uiter *u);
const uint8_t *cairn_uiter_key(const cairn_uiter *u, size_t *klen);
/* Never NULL (an empty value is a non-NULL pointer with length 0). */
const uint8_t *cairn_uiter_value(const cairn_uiter *u, size_t *vlen);
/* The current value is a blob reference record (CAIRN_IKIND_BLOB): the
 * caller resolves it into the value. */
bool cairn_uiter_is_blob(const cairn_uiter *u);
uint64_t cairn_uiter_version(const cairn_uiter *u);
uint64_t cairn_uiter_ts(const cairn_uiter *u);
int cairn_uiter_status(const cairn_uiter *u);
const char *cairn_uiter_errmsg(const cairn_uiter *u); /* "" if status 0 */

/* The smallest key greater than every key starting with prefix: the prefix
 * cut after its last byte that is not 0xff, that byte incremented. Writes it
 * to out (room for plen bytes) and its length to *outlen, returns true;
 * false if there is none (plen 0 or every byte 0xff). */
bool cairn_prefix_successor(const void *prefix, size_t plen, uint8_t *out,
                            size_t *outlen);

#endif /* CAIRN_LSM_ITER_H */
