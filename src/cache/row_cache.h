/*
 * row_cache.h — the row cache: a sharded, byte-bounded CLOCK cache of
 * user key -> (value bytes or "absent", the commit version and commit time
 * of that state), with an optional expiry time per entry. The L1 memory
 * tier for values, in front of the block cache.
 *
 * The cache itself knows nothing of MVCC; it offers what the engine needs
 * to keep it exact (db/db_internal.h and docs/architecture.md give the
 * rule):
 *   - lookup(max_version, max_ts) answers only from an entry whose version
 *     and time are at or below those bounds;
 *   - every key hashes to an invalidation epoch (a counter shared by the
 *     keys of one slot of its shard); supersede() bumps it and erases
 *     the key's older entry, and insert() can be made
 *     conditional on the epoch a reader took before it read the tree: if
 *     the key (or a key sharing the slot) was superseded meanwhile, the
 *     insert is refused, so a value read before a flush of a newer one
 *     never lands after that flush's supersede.
 *
 * Budget: an entry is charged key + value bytes + a fixed overhead
 * (its header, malloc's own overhead, its share of the hash table:
 * cairn_row_cache_charge).
 * After every operation each shard's charged bytes are <= its share of the
 * capacity (entries are never pinned against eviction: a lookup copies the
 * value out under a reference count, so an evicted entry's memory lives on
 * only for the length of that copy, outside the accounting). An entry
 * larger than its shard's share is not stored. Capacity 0 stores nothing.
 *
 * Expiry (TTL): an entry inserted with ttl_ms > 0 expires ttl_ms after its
 * insert by the cache's clock (CLOCK_MONOTONIC milliseconds, or one set
 * with cairn_row_cache_set_clock); an expired entry is a miss and is freed
 * by the lookup that finds it, or by eviction.
 *
 * Threading: every function may be called from any number of threads at
 * once, except cairn_row_cache_free (no other call may be running) and
 * cairn_row_cache_set_clock (before the cache is shared). Each shard has a
 * mutex, held only for the hash/list update; values are copied in before
 * and out after it (no allocation under a shard lock). Stats are relaxed
 * atomic counters.
 */
#ifndef CAIRN_CACHE_ROW_CACHE_H
#define CAIRN_CACHE_ROW_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cairn_row_cache cairn_row_cache;

typedef struct cairn_row_cache_stats {
    uint64_t capacity;      /* bytes */
    uint64_t usage;         /* bytes charged by the entries in the cache */
    uint64_t entries;       /* entries in the cache */
    uint64_t hits;          /* lookups answered */
    uint64_t misses;        /* lookups not answered (absent, expired, or
                               too new for the reader's bounds) */
    uint64_t inserts;       /* entries stored */
    uint64_t evictions;     /* entries dropped to stay within capacity */
    uint64_t invalidations; /* entries erased by supersede */
    uint64_t expirations;   /* expired entries dropped by a lookup */
    uint64_t fills_refused; /* conditional inserts refused: the epoch moved */
    uint64_t not_admitted;  /* misses not to be filled: the key's first read
                               in the admission window */
} cairn_row_cache_stats;

/* Milliseconds from some fixed point, never going backwards. */
typedef uint64_t (*cairn_row_cache_clock_fn)(void *arg);

/* A new cache of capacity bytes over shards shards (rounded up to a power
 * of two, at most 64; 0 picks by capacity: one per 512 KiB, 1..64, and 16
 * for a capacity of 0). NULL when out of memory. */
cairn_row_cache *cairn_row_cache_new(size_t capacity, unsigned shards);

/* Frees every entry. NULL is a no-op. */
void cairn_row_cache_free(cairn_row_cache *c);

/* Replace the clock TTLs are measured by (tests). */
void cairn_row_cache_set_clock(cairn_row_cache *c, cairn_row_cache_clock_fn fn,
                               void *arg);

/* The hash every call below takes: XXH3-64 of the key. */
uint64_t cairn_row_cache_hash(const void *key, size_t klen);

/* A hint that the key with this hash is about to be looked up: starts
 * loading its shard and bucket. Takes no lock; changes nothing. */
void cairn_row_cache_prefetch(cairn_row_cache *c, uint64_t hash);

/* A second hint, once the bucket is loaded (cairn_row_cache_prefetch a
 * while before): starts loading the first entry of hash's chain, under
 * the shard's mutex (a lookup's only other memory miss). */
void cairn_row_cache_prefetch_entry(cairn_row_cache *c, uint64_t hash);

/* capacity > 0 (a relaxed read: a hint for callers that skip the cache
 * when it is off; correctness never depends on it). */
bool cairn_row_cache_enabled(const cairn_row_cache *c);

/* A lookup's answer. */
typedef struct cairn_row_cache_value {
    bool deleted;     /* the key is absent in this state (val NULL) */
    void *val;        /* malloc'ed copy (non-NULL even when empty), the
                         caller's to free; NULL when deleted */
    size_t vlen;
    uint64_t version; /* the state's commit version and time */
    uint64_t ts_us;
} cairn_row_cache_value;

/* The entry of key if its version <= max_version and ts_us <= max_ts and it
 * has not expired: 1 (out filled, entry made most recently used), 0 (a
 * miss), or CAIRN_ENOMEM (the copy could not be allocated; not a hit).
 *
 * admit non-NULL: the caller would fill the cache after a miss; *admit
 * says whether it should. Admission: a key enters the cache on its second
 * missed read within a window (a filter of 2^21 bits by hash, each shard's
 * share cleared once a quarter of it is set), so one-off reads spread over
 * many keys do not push out what is read again; a hash collision admits a
 * first read. A miss is admitted without the filter while its shard has
 * room (a fill then pushes nothing out), and every miss after
 * set_admit_all(true). */
int cairn_row_cache_lookup(cairn_row_cache *c, uint64_t hash, const void *key,
                           size_t klen, uint64_t max_version, uint64_t max_ts,
                           cairn_row_cache_value *out, bool *admit);

/* true: admit every miss (no admission filter); false (the default): the
 * filter described at lookup. */
void cairn_row_cache_set_admit_all(cairn_row_cache *c, bool all);

/* The invalidation epoch of hash's slot, for a conditional insert. Read
 * with acquire order: whatever the invalidating thread did before a bump
 * that this read sees happens before the caller's next steps. */
uint64_t cairn_row_cache_epoch(cairn_row_cache *c, uint64_t hash);

/* Store (key -> val[0..vlen) or, with deleted, "absent") at version/ts_us,
 * replacing an entry of key unless that one has a newer version.
 * ttl_ms 0: no expiry. epoch non-NULL: only if the key's slot still has
 * that epoch (checked under the shard lock, together with the insert).
 * Returns 1 stored, 0 not stored (capacity 0, larger than a shard's
 * share, epoch moved, or a newer entry kept; with an unchanged epoch any
 * older entry of key is gone in every case), or CAIRN_ENOMEM. */
int cairn_row_cache_insert(cairn_row_cache *c, uint64_t hash, const void *key,
                           size_t klen, const void *val, size_t vlen,
                           bool deleted, uint64_t version, uint64_t ts_us,
                           uint64_t ttl_ms, const uint64_t *epoch);

/* A newer state of key at version/ts_us supersedes what the cache may
 * hold (a flush moved it into the files): bumps the key's epoch (refusing
 * fills that read it before), drops an entry of key older than version
 * (counted as an invalidation) and, with offer, stores this state, but
 * only into free room: an offer never evicts (it was not asked for by a
 * read, so it must not push out what reads brought in). Returns 1
 * stored, 0 not, or CAIRN_ENOMEM. */
int cairn_row_cache_supersede(cairn_row_cache *c, uint64_t hash,
                              const void *key, size_t klen, const void *val,
                              size_t vlen, bool deleted, uint64_t version,
                              uint64_t ts_us, bool offer);

/* Whether the cache as a whole has room left for offers (approximate:
 * relaxed reads of each shard's usage). */
bool cairn_row_cache_has_room(cairn_row_cache *c);

/* Change the capacity; shrinking evicts least recently used entries until
 * every shard is within its new share. */
void cairn_row_cache_set_capacity(cairn_row_cache *c, size_t capacity);

void cairn_row_cache_get_stats(cairn_row_cache *c, cairn_row_cache_stats *out);

/* What an entry of klen + vlen bytes is charged (for tests and sizing). */
size_t cairn_row_cache_charge(size_t klen, size_t vlen);

#endif /* CAIRN_CACHE_ROW_CACHE_H */
