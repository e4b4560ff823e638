/*
 * memtable.h — the MVCC memtable: an in-memory, insert-only, concurrent
 * skiplist of versioned entries ("internal keys"), backed by an arena.
 *
 * Order: user key ascending (memcmp of the bytes; on a common prefix the
 * shorter key first), then version DESCENDING, so the newest version of a key
 * comes first. A (key, version) pair occurs at most once. The empty key
 * (klen 0) is an ordinary key that sorts before every other key.
 *
 * Versions: 0 is reserved ("none"): cairn_memtable_latest_version() and
 * cairn_memtable_max_version() return 0 to mean "no entry", so inserting
 * version 0 is refused with CAIRN_EINVAL.
 *
 * Lifetime: entries are never removed or changed once inserted; everything
 * is freed at once when the last reference is dropped. Pointers handed out
 * in a cairn_mt_entry (key, value) stay valid while the caller holds a
 * reference. Every thread using the memtable must hold (or be covered by) a
 * reference; the final unref must not race with other calls.
 *
 * Point lookups: besides the skiplist (used by iterators / seek) the memtable
 * keeps a lock-free hash index over user keys pointing at each key's newest
 * version, so get and latest_version take O(1) expected cache misses. Its
 * bucket array is fixed when the memtable is created (no resize: chains just
 * grow past the expected size) and allocated at the first insert.
 *
 * Threading: insert may run from any number of threads at once, concurrently
 * with get / latest_version / iterators; none of these take a lock (the
 * arena may call malloc). Once insert has returned 0, every later get or
 * iterator positioning in any thread that is ordered after that return
 * (e.g. via a release/acquire pair or a mutex) sees the entry.
 * count / memory / max_version are relaxed atomic reads (approximate while
 * inserts run).
 */
#ifndef CAIRN_MVCC_MEMTABLE_H
#define CAIRN_MVCC_MEMTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cairn_memtable cairn_memtable;

/* CAIRN_MT_BLOB: a put whose value is stored out of line; the entry's
 * value is the blob reference record (blob/blob_ref.h), not the value. */
typedef enum {
    CAIRN_MT_PUT = 1,
    CAIRN_MT_DELETE = 2,
    CAIRN_MT_BLOB = 3
} cairn_mt_kind;

/* One entry. Pointers are valid while the memtable lives. key is never NULL
 * (even for klen 0). value is NULL (vlen 0) for deletes, non-NULL for puts
 * (even an empty value). */
typedef struct cairn_mt_entry {
    const uint8_t *key;
    size_t klen;
    uint64_t version;
    uint64_t ts_us; /* commit timestamp, microseconds */
    cairn_mt_kind kind;
    const uint8_t *value;
    size_t vlen; /* NULL/0 for deletes */
} cairn_mt_entry;

/* A new, empty memtable with refcount 1; NULL on out of memory. Allocates no
 * arena block and no hash bucket array until the first insert. The hash
 * index gets 64K buckets (512 KiB, allocated at the first insert): right for
 * up to ~8 MiB of entries, small enough not to dominate small tables. Bigger
 * tables work but their lookups and inserts walk longer chains (~n / 64K
 * entries), so callers that know the size should use _new_sized. */
cairn_memtable *cairn_memtable_new(void);
/* Like cairn_memtable_new, with the hash index sized for a table expected to
 * grow to about expected_bytes of memory(): expected_bytes / 64 buckets
 * (8 bytes each) rounded up to a power of two, at least 1024 and at most
 * 2^28. E.g. 64 MiB -> 1M buckets (8 MiB). Exceeding the size is fine
 * (longer chains). */
cairn_memtable *cairn_memtable_new_sized(size_t expected_bytes);
/* Take another reference. */
void cairn_memtable_ref(cairn_memtable *mt);

/* The arena block pool, process-wide: arena blocks of freed memtables are
 * kept (already mapped: no page faults when the next memtable writes them)
 * up to the bytes reserved, at most 256 MiB. A database reserves its
 * memtable size while open and gives it back at close; the pool sheds what
 * exceeds the reservations at once. Hash bucket arrays are kept too, one
 * per reservation (at most 4), and zeroed when reused. pool_blocks /
 * pool_arrays: blocks / arrays kept now. */
void cairn_memtable_pool_reserve(uint64_t bytes);
void cairn_memtable_pool_unreserve(uint64_t bytes);
size_t cairn_memtable_pool_blocks(void);
size_t cairn_memtable_pool_arrays(void);
/* Drop a reference; the memtable and all its entries are freed at 0.
 * NULL is ignored. */
void cairn_memtable_unref(cairn_memtable *mt);

/* fn(arg, mt) runs once, when the last reference is dropped, before
 * anything is freed (the entries may still be read from it, e.g. with an
 * iterator). Set it before the memtable is shared. */
void cairn_memtable_set_release_hook(cairn_memtable *mt,
                                     void (*fn)(void *arg, cairn_memtable *mt),
                                     void *arg);

/* Insert (key, version). Thread-safe and lock-free with respect to other
 * inserts and readers. The key and value bytes are copied.
 * Returns 0; CAIRN_ENOMEM; CAIRN_EEXIST if (key, version) is already there
 * (nothing changes); CAIRN_EINVAL for version 0, key == NULL with klen > 0,
 * value == NULL with vlen > 0, a kind that is neither PUT nor DELETE, or a
 * DELETE with vlen > 0. */
int cairn_memtable_insert(cairn_memtable *mt, const void *key, size_t klen,
                          uint64_t version, uint64_t ts_us, cairn_mt_kind kind,
                          const void *value, size_t vlen);

/* One insert of cairn_memtable_insert_batch: cairn_memtable_insert's
 * arguments. */
typedef struct cairn_mt_write {
    const void *key;
    size_t klen;
    uint64_t version;
    uint64_t ts_us;
    cairn_mt_kind kind;
    const void *value;
    size_t vlen;
} cairn_mt_write;

/* The n inserts w[0..n), each as cairn_memtable_insert would do it
 * (rcs[i]: its result), but faster: the skiplist searches of a few at a
 * time are stepped in turn, so their cache misses overlap. Same thread
 * safety as cairn_memtable_insert. */
void cairn_memtable_insert_batch(cairn_memtable *mt, const cairn_mt_write *w,
                                 size_t n, int *rcs);

/* The newest entry of `key` with version <= max_version and
 * ts_us <= max_ts (deletes included: the caller decides). true if found and
 * *out filled. Lock-free. */
bool cairn_memtable_get(cairn_memtable *mt, const void *key, size_t klen,
                        uint64_t max_version, uint64_t max_ts,
                        cairn_mt_entry *out);

/* A hint that a read of the key whose XXH3_64bits hash is `hash` follows:
 * starts loading its hash bucket. No effect on results; lock-free. */
void cairn_memtable_prefetch(cairn_memtable *mt, uint64_t hash);

/* A second hint, once the bucket is loaded (cairn_memtable_prefetch a
 * while before): if the bucket's summary does not rule the key out,
 * starts loading its chain's head entry. Lock-free. */
void cairn_memtable_prefetch_entry(cairn_memtable *mt, uint64_t hash);

/* The newest version of `key` present (put or delete), 0 if none. */
uint64_t cairn_memtable_latest_version(cairn_memtable *mt, const void *key,
                                       size_t klen);

/* Bytes of arena blocks allocated (block headers included; nodes and hash
 * entries live there) plus the hash bucket array once allocated. 0 until the
 * first insert. */
size_t cairn_memtable_memory(const cairn_memtable *mt);
/* Number of entries. */
uint64_t cairn_memtable_count(const cairn_memtable *mt);
/* Entries of kind CAIRN_MT_BLOB. */
uint64_t cairn_memtable_blob_count(const cairn_memtable *mt);
/* Highest version inserted, 0 if empty. */
uint64_t cairn_memtable_max_version(const cairn_memtable *mt);

/* Iterator: lock-free, stack-allocated, needs no cleanup. Every entry whose
 * insert completed before the iterator moves past its position is seen;
 * entries inserted concurrently may or may not be. next moves forward in
 * internal order; seek_last / seek_for_prev / prev (below) move backward by
 * searching from the head. The iterator does not hold a reference. */
typedef struct cairn_mt_iter {
    cairn_memtable *mt;
    void *node;
} cairn_mt_iter;

void cairn_mt_iter_init(cairn_mt_iter *it, cairn_memtable *mt); /* invalid */
void cairn_mt_iter_seek_first(cairn_mt_iter *it);
/* First entry >= (key, version) in internal order; version UINT64_MAX means
 * "first entry of key, or the first entry after it". */
void cairn_mt_iter_seek(cairn_mt_iter *it, const void *key, size_t klen,
                        uint64_t version);
bool cairn_mt_iter_valid(const cairn_mt_iter *it);
void cairn_mt_iter_next(cairn_mt_iter *it);       /* requires valid */
void cairn_mt_iter_entry(const cairn_mt_iter *it, /* requires valid */
                         cairn_mt_entry *out);

/* Backward positioning. The skiplist has no back links, so each of these is
 * a descent from the head: O(log n) expected, like seek (a backward scan
 * costs O(log n) per step instead of O(1)). They take no lock and may run
 * concurrently with inserts: the node found is the last one matching at the
 * moment the descent passes it, so an entry inserted meanwhile may or may
 * not be seen, but successive prev calls always move to entries strictly
 * before the current one, so a backward scan returns entries in strictly
 * descending internal order (and sees every entry whose insert completed
 * before the scan reached its position). */
/* The last entry (invalid if the memtable is empty). */
void cairn_mt_iter_seek_last(cairn_mt_iter *it);
/* The last entry <= (key, version) in internal order; invalid if none.
 * Version 0 means "the last entry of key, or the last entry before it". */
void cairn_mt_iter_seek_for_prev(cairn_mt_iter *it, const void *key,
                                 size_t klen, uint64_t version);
/* Move to the last entry < the current one; invalid before the first entry.
 * Requires valid. */
void cairn_mt_iter_prev(cairn_mt_iter *it);

#endif /* CAIRN_MVCC_MEMTABLE_H */
