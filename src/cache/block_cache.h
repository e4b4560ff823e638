/*
 * block_cache.h — the block cache: a sharded cache of decoded sorted-file
 * blocks with one byte budget shared by every file (the L1 memory tier for
 * blocks).
 *
 * Keys: (file_id, offset). file_id is unique per sorted file for the life of
 * the process (the tree uses the file number); offset is the block's offset
 * in that file.
 *
 * Entries are reference counted. lookup and insert hand back a handle that
 * pins the entry: its data stays valid and is not freed until the handle is
 * released, even if the entry is evicted or erased meanwhile (it is then
 * freed by the last release). Unpinned entries are evicted by CLOCK (an
 * approximation of least recently used first: an entry hit since eviction
 * last passed it gets a second chance) whenever a shard's usage passes its
 * share of the capacity.
 * Pinned entries count against the budget but are never evicted, so usage
 * may exceed capacity while many handles are held.
 *
 * Threading: every function may be called from any number of threads at
 * once. Each shard has its own mutex, held only for the hash/list update
 * (never while calling free_fn of an entry that is still in use; free_fn runs
 * without the shard lock). Stats are relaxed atomic counters.
 */
#ifndef CAIRN_CACHE_BLOCK_CACHE_H
#define CAIRN_CACHE_BLOCK_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cairn_block_cache cairn_block_cache;
typedef struct cairn_cache_handle cairn_cache_handle;

typedef struct cairn_block_cache_stats {
    uint64_t capacity;  /* bytes */
    uint64_t usage;     /* bytes charged by entries now in the cache or pinned */
    uint64_t entries;   /* entries now in the cache */
    uint64_t hits;      /* lookups that found the entry */
    uint64_t misses;    /* lookups that did not */
    uint64_t inserts;   /* successful inserts */
    uint64_t evictions; /* entries evicted to stay within capacity */
} cairn_block_cache_stats;

/* A new cache holding up to capacity bytes split over shards shards (0 picks
 * a default: 16; rounded up to a power of two). NULL on out of memory. */
cairn_block_cache *cairn_block_cache_new(size_t capacity, unsigned shards);

/* Frees every entry. No handle may be outstanding. NULL is a no-op. */
void cairn_block_cache_free(cairn_block_cache *c);

/* The entry for (file_id, off), pinned, or NULL (a miss). Counts a hit or a
 * miss and marks the entry most recently used. */
cairn_cache_handle *cairn_block_cache_lookup(cairn_block_cache *c,
                                             uint64_t file_id, uint64_t off);

/* Insert data (charge bytes against the budget) under (file_id, off); the
 * cache owns data from now on and calls free_fn(data) when the entry is gone
 * and unpinned. If an entry with that key exists it is replaced (the old one
 * is freed once unpinned). If out is non-NULL the new entry is returned
 * pinned in *out; otherwise it is not pinned. Returns 0, or CAIRN_ENOMEM (then
 * free_fn(data) has been called and *out is NULL). An entry whose charge is
 * larger than a whole shard's capacity is still inserted when out is
 * non-NULL (it is freed on release) and dropped at once otherwise. */
int cairn_block_cache_insert(cairn_block_cache *c, uint64_t file_id,
                             uint64_t off, void *data, size_t charge,
                             void (*free_fn)(void *data),
                             cairn_cache_handle **out);

/* The same, with the cache's bookkeeping for the entry placed in memory the
 * caller provides: `room` (CAIRN_BLOCK_CACHE_ENTRY_SIZE bytes, aligned to 8)
 * lives inside data's allocation, so that free_fn(data) frees both, and
 * a lookup that finds the entry finds the data next to it (one cache miss
 * fewer than a separate allocation). Never fails for lack of memory. */
#define CAIRN_BLOCK_CACHE_ENTRY_SIZE 96
int cairn_block_cache_insert_at(cairn_block_cache *c, uint64_t file_id,
                                uint64_t off, void *data, size_t charge,
                                void (*free_fn)(void *data), void *room,
                                cairn_cache_handle **out);

/* Whether an entry of charge bytes under (file_id, off) would fit in its
 * shard now without evicting anything (a hint: it may change at once). */
bool cairn_block_cache_has_room(cairn_block_cache *c, uint64_t file_id,
                                uint64_t off, size_t charge);

/* The pinned entry's data and charge. */
void *cairn_cache_handle_data(const cairn_cache_handle *h);
size_t cairn_cache_handle_charge(const cairn_cache_handle *h);

/* Unpin. NULL is a no-op. */
void cairn_block_cache_release(cairn_block_cache *c, cairn_cache_handle *h);

/* Drop every entry of file_id (a deleted file); pinned ones go when their
 * last handle is released. */
void cairn_block_cache_erase_file(cairn_block_cache *c, uint64_t file_id);

/* The same for the blocks of file_id at the n offsets offs: n lookups
 * instead of a walk over the whole cache (erase_file holds each shard's
 * lock while it looks at every entry: milliseconds for a large cache, on
 * whichever thread drops a deleted file's last reference). */
void cairn_block_cache_erase_blocks(cairn_block_cache *c, uint64_t file_id,
                                    const uint64_t *offs, size_t n);

/* Change the byte budget at run time; evicts at once down to it (as far as
 * unpinned entries allow). */
void cairn_block_cache_set_capacity(cairn_block_cache *c, size_t capacity);

void cairn_block_cache_get_stats(cairn_block_cache *c,
                                 cairn_block_cache_stats *out);

#endif /* CAIRN_CACHE_BLOCK_CACHE_H */
