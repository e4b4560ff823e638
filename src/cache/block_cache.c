/*
 * block_cache.c — the block cache: a sharded CLOCK cache of decoded blocks
 * keyed by (file_id, offset), with refcounted handles (see block_cache.h).
 *
 * Layout: 2^k shards; the key's 64-bit hash (XXH3 of the two words) picks the
 * shard from its top 16 bits and the bucket from its low bits. Each shard has
 * a mutex, an intrusive chained hash table (power-of-two buckets, doubled
 * when the entry count passes half the bucket count, never shrunk) and a
 * circular doubly linked list in CLOCK order (sentinel; next = the end
 * eviction looks at first).
 *
 * Replacement is CLOCK ("second chance"): a hit only sets the entry's
 * referenced flag, touching no other entry (an LRU move would write both
 * neighbours and the list head, cache misses on every hit). Eviction takes
 * entries from the front: a referenced or pinned one is moved to the back
 * with its flag cleared, an unreferenced unpinned one is evicted.
 *
 * Invariants (per shard, under its mutex):
 *   - An entry is "in the cache" (in_cache) iff it is in the hash table; at
 *     most one in-cache entry per key.
 *   - An entry is on the list iff in_cache. Pinned entries (refs > 0) are
 *     never evicted: eviction moves them to the back.
 *   - usage = sum of the charges of the entries in the cache plus those of
 *     the entries taken out of it (replaced or erased; eviction only takes
 *     unpinned ones) that are still pinned. entries = number in the cache.
 *   - After every operation: usage <= capacity, or every entry on the list
 *     is pinned.
 *   - An entry leaves memory (free_fn + free) exactly once: when it is out of
 *     the cache and refs == 0. Entries to free are gathered on a local list
 *     (through hnext, no longer needed then) and freed after the unlock, so
 *     free_fn never runs under a shard lock.
 *   - file_id, off, hash, data, charge, free_fn never change after the entry
 *     is published, so handle accessors read them without a lock.
 *
 * Oversize entries (charge > the shard's capacity): with out == NULL the
 * insert removes any entry of that key, frees the new data at once, returns 0
 * and does not count as an insert. With out != NULL the entry is inserted
 * (visible to lookups while pinned; evicting every unpinned entry of its
 * shard, as the budget requires) and, being over the budget on its own, is
 * evicted by its last release.
 *
 * Locking: one shard mutex per operation, except erase_file and
 * set_capacity, which take the shard mutexes one at a time;
 * set_capacity calls are serialized by cap_mu (taken before any shard
 * mutex). Stats are relaxed atomics; counters kept per shard are only written
 * under the shard mutex (load + store), and read lock-free by get_stats.
 */
#include "cache/block_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "cairn.h"

#define BC_DEFAULT_SHARDS 16u
#define BC_MAX_SHARDS (1u << 16) /* the shard index is the hash's top 16 bits */
#define BC_INITIAL_BUCKETS 16u

typedef struct bc_link {
    struct bc_link *prev, *next;
} bc_link;

/* A handle is a pointer to the pinned entry itself. */
struct cairn_cache_handle {
    bc_link lru; /* on the shard's list iff in_cache */
    struct cairn_cache_handle *hnext; /* hash chain; then the to-free list */
    uint64_t file_id;
    uint64_t off;
    uint64_t hash;
    void *data;
    size_t charge;
    void (*free_fn)(void *data);
    size_t refs;     /* outstanding handles; under the shard mutex */
    bool in_cache;   /* in the hash table; under the shard mutex */
    bool referenced; /* hit since eviction last passed it; under the mutex */
    bool embedded;   /* lives in data's allocation (insert_at): not freed */
};
_Static_assert(sizeof(struct cairn_cache_handle) <=
                   CAIRN_BLOCK_CACHE_ENTRY_SIZE,
               "CAIRN_BLOCK_CACHE_ENTRY_SIZE too small");
typedef struct cairn_cache_handle bc_entry;

typedef struct bc_shard {
    _Alignas(64) pthread_mutex_t mu;
    bc_link lru; /* sentinel: lru.next least, lru.prev most recently used */
    bc_entry **buckets;
    size_t nbuckets; /* power of two */
    size_t capacity;
    /* Written under mu only; read lock-free by get_stats. */
    _Atomic uint64_t usage;
    _Atomic uint64_t entries;
    _Atomic uint64_t hits;
    _Atomic uint64_t misses;
    _Atomic uint64_t inserts;
    _Atomic uint64_t evictions;
} bc_shard;

struct cairn_block_cache {
    bc_shard *shards;
    unsigned nshards; /* power of two */
    pthread_mutex_t cap_mu; /* serializes set_capacity */
    _Atomic uint64_t capacity;
};

/* ---------- small helpers ---------- */

static inline uint64_t ld(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* Add to a counter only ever written under the shard mutex. */
static inline void add(_Atomic uint64_t *a, uint64_t v)
{
    atomic_store_explicit(a, ld(a) + v, memory_order_relaxed);
}

static inline void sub(_Atomic uint64_t *a, uint64_t v)
{
    atomic_store_explicit(a, ld(a) - v, memory_order_relaxed);
}

static inline uint64_t key_hash(uint64_t file_id, uint64_t off)
{
    uint64_t k[2] = {file_id, off};
    return XXH3_64bits(k, sizeof k);
}

static inline bc_shard *shard_of(cairn_block_cache *c, uint64_t hash)
{
    return &c->shards[(hash >> 48) & (c->nshards - 1)];
}

static inline bc_entry *entry_of_link(bc_link *l)
{
    return (bc_entry *)((char *)l - offsetof(bc_entry, lru));
}

static inline void lru_unlink(bc_entry *e)
{
    e->lru.prev->next = e->lru.next;
    e->lru.next->prev = e->lru.prev;
    e->lru.prev = e->lru.next = NULL;
}

static inline void lru_push_mru(bc_shard *s, bc_entry *e)
{
    e->lru.next = &s->lru;
    e->lru.prev = s->lru.prev;
    s->lru.prev->next = &e->lru;
    s->lru.prev = &e->lru;
}

static inline bc_entry **bucket_of(bc_shard *s, uint64_t hash)
{
    return &s->buckets[hash & (s->nbuckets - 1)];
}

static inline bc_entry *table_find(bc_shard *s, uint64_t hash,
                                   uint64_t file_id, uint64_t off)
{
    bc_entry *e = *bucket_of(s, hash);
    while (e && !(e->hash == hash && e->file_id == file_id && e->off == off))
        e = e->hnext;
    return e;
}

/* Doubles the bucket array; on allocation failure keeps the old one (longer
 * chains, still correct). */
static void table_grow(bc_shard *s)
{
    size_t n = s->nbuckets * 2;
    if (n < s->nbuckets)
        return;
    bc_entry **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        bc_entry *e = s->buckets[i];
        while (e) {
            bc_entry *next = e->hnext;
            bc_entry **b = &nb[e->hash & (n - 1)];
            e->hnext = *b;
            *b = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = nb;
    s->nbuckets = n;
}

static void table_insert(bc_shard *s, bc_entry *e)
{
    if (2 * ld(&s->entries) >= s->nbuckets)
        table_grow(s);
    bc_entry **b = bucket_of(s, e->hash);
    e->hnext = *b;
    *b = e;
    add(&s->entries, 1);
}

static void table_remove(bc_shard *s, bc_entry *e)
{
    bc_entry **p = bucket_of(s, e->hash);
    while (*p && *p != e)
        p = &(*p)->hnext;
    if (*p)
        *p = e->hnext;
    sub(&s->entries, 1);
}

/* Takes an in-cache entry off the list and out of the accounting once it is
 * out of the table: unpinned ones go on *fl, pinned ones wait for their last
 * release. */
static void retire(bc_shard *s, bc_entry *e, bc_entry **fl)
{
    e->in_cache = false;
    lru_unlink(e);
    if (e->refs == 0) {
        sub(&s->usage, e->charge);
        e->hnext = *fl;
        *fl = e;
    }
}

/* Evicts by CLOCK until the shard is within its capacity or every entry left
 * is pinned: two passes over the list at most (the first clears every
 * referenced flag). */
static void shard_evict(bc_shard *s, bc_entry **fl)
{
    uint64_t steps = 2 * ld(&s->entries) + 1;
    while (ld(&s->usage) > s->capacity && s->lru.next != &s->lru &&
           steps-- > 0) {
        bc_entry *e = entry_of_link(s->lru.next);
        if (e->refs > 0 || e->referenced) {
            e->referenced = false;
            lru_unlink(e);
            lru_push_mru(s, e);
            continue;
        }
        table_remove(s, e);
        retire(s, e, fl);
        add(&s->evictions, 1);
    }
}

/* Frees a to-free list; called without any shard mutex. */
static void free_list(bc_entry *e)
{
    while (e) {
        bc_entry *next = e->hnext;
        bool embedded = e->embedded; /* free_fn may free e itself */
        if (e->free_fn)
            e->free_fn(e->data);
        if (!embedded)
            free(e);
        e = next;
    }
}

/* Splits capacity over the shards (the first capacity % n get one byte
 * more), so the shard capacities sum to exactly capacity. */
static size_t shard_capacity(size_t capacity, unsigned n, unsigned i)
{
    return capacity / n + (i < capacity % n ? 1 : 0);
}

/* ---------- public API ---------- */

cairn_block_cache *cairn_block_cache_new(size_t capacity, unsigned shards)
{
    if (shards == 0)
        shards = BC_DEFAULT_SHARDS;
    if (shards > BC_MAX_SHARDS)
        shards = BC_MAX_SHARDS;
    unsigned n = 1;
    while (n < shards)
        n <<= 1;

    cairn_block_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->shards = aligned_alloc(_Alignof(bc_shard), (size_t)n * sizeof(bc_shard));
    if (!c->shards) {
        free(c);
        return NULL;
    }
    memset(c->shards, 0, (size_t)n * sizeof(bc_shard));
    c->nshards = n;
    atomic_init(&c->capacity, capacity);
    if (pthread_mutex_init(&c->cap_mu, NULL) != 0) {
        free(c->shards);
        free(c);
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        bc_shard *s = &c->shards[i];
        s->buckets = calloc(BC_INITIAL_BUCKETS, sizeof *s->buckets);
        if (!s->buckets || pthread_mutex_init(&s->mu, NULL) != 0) {
            free(s->buckets);
            for (unsigned j = 0; j < i; j++) {
                pthread_mutex_destroy(&c->shards[j].mu);
                free(c->shards[j].buckets);
            }
            pthread_mutex_destroy(&c->cap_mu);
            free(c->shards);
            free(c);
            return NULL;
        }
        s->nbuckets = BC_INITIAL_BUCKETS;
        s->lru.next = s->lru.prev = &s->lru;
        s->capacity = shard_capacity(capacity, n, i);
        atomic_init(&s->usage, 0);
        atomic_init(&s->entries, 0);
        atomic_init(&s->hits, 0);
        atomic_init(&s->misses, 0);
        atomic_init(&s->inserts, 0);
        atomic_init(&s->evictions, 0);
    }
    return c;
}

void cairn_block_cache_free(cairn_block_cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        bc_shard *s = &c->shards[i];
        for (size_t b = 0; b < s->nbuckets; b++)
            free_list(s->buckets[b]);
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    pthread_mutex_destroy(&c->cap_mu);
    free(c->shards);
    free(c);
}

cairn_cache_handle *cairn_block_cache_lookup(cairn_block_cache *c,
                                             uint64_t file_id, uint64_t off)
{
    if (!c)
        return NULL;
    uint64_t h = key_hash(file_id, off);
    bc_shard *s = shard_of(c, h);
    pthread_mutex_lock(&s->mu);
    bc_entry *e = table_find(s, h, file_id, off);
    if (e) {
        e->refs++;
        e->referenced = true;
        add(&s->hits, 1);
    } else {
        add(&s->misses, 1);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

static int insert_entry(cairn_block_cache *c, bc_entry *e, bool embedded,
                        uint64_t file_id, uint64_t off, void *data,
                        size_t charge, void (*free_fn)(void *data),
                        cairn_cache_handle **out);

int cairn_block_cache_insert(cairn_block_cache *c, uint64_t file_id,
                             uint64_t off, void *data, size_t charge,
                             void (*free_fn)(void *data),
                             cairn_cache_handle **out)
{
    if (out)
        *out = NULL;
    if (!c) {
        if (free_fn)
            free_fn(data);
        return CAIRN_EINVAL;
    }
    bc_entry *e = malloc(sizeof *e);
    if (!e) {
        if (free_fn)
            free_fn(data);
        return CAIRN_ENOMEM;
    }
    return insert_entry(c, e, false, file_id, off, data, charge, free_fn, out);
}

int cairn_block_cache_insert_at(cairn_block_cache *c, uint64_t file_id,
                                uint64_t off, void *data, size_t charge,
                                void (*free_fn)(void *data), void *room,
                                cairn_cache_handle **out)
{
    if (out)
        *out = NULL;
    if (!c || !room) {
        if (free_fn)
            free_fn(data);
        return CAIRN_EINVAL;
    }
    return insert_entry(c, room, true, file_id, off, data, charge, free_fn,
                        out);
}

static int insert_entry(cairn_block_cache *c, bc_entry *e, bool embedded,
                        uint64_t file_id, uint64_t off, void *data,
                        size_t charge, void (*free_fn)(void *data),
                        cairn_cache_handle **out)
{
    e->embedded = embedded;
    e->lru.prev = e->lru.next = NULL;
    e->hnext = NULL;
    e->file_id = file_id;
    e->off = off;
    e->hash = key_hash(file_id, off);
    e->data = data;
    e->charge = charge;
    e->free_fn = free_fn;
    e->refs = out ? 1 : 0;
    e->in_cache = true;
    e->referenced = false;

    bc_shard *s = shard_of(c, e->hash);
    bc_entry *fl = NULL;
    pthread_mutex_lock(&s->mu);
    bc_entry *old = table_find(s, e->hash, file_id, off);
    if (old) {
        table_remove(s, old);
        retire(s, old, &fl);
    }
    if (!out && charge > s->capacity) {
        /* Could never stay: drop it now (the old entry is gone too, so a
         * lookup never returns data older than the latest insert). */
        pthread_mutex_unlock(&s->mu);
        e->hnext = fl;
        free_list(e);
        return 0;
    }
    table_insert(s, e);
    add(&s->usage, charge);
    add(&s->inserts, 1);
    /* Room is made among the others first: the new entry joins the list
     * behind the ones that got a second chance making it (and goes itself
     * if only pinned ones are left). */
    shard_evict(s, &fl);
    lru_push_mru(s, e);
    if (ld(&s->usage) > s->capacity)
        shard_evict(s, &fl);
    pthread_mutex_unlock(&s->mu);
    free_list(fl);
    if (out)
        *out = e;
    return 0;
}

void *cairn_cache_handle_data(const cairn_cache_handle *h)
{
    return h ? h->data : NULL;
}

size_t cairn_cache_handle_charge(const cairn_cache_handle *h)
{
    return h ? h->charge : 0;
}

bool cairn_block_cache_has_room(cairn_block_cache *c, uint64_t file_id,
                                uint64_t off, size_t charge)
{
    if (!c)
        return false;
    bc_shard *s = shard_of(c, key_hash(file_id, off));
    pthread_mutex_lock(&s->mu);
    bool room = ld(&s->usage) + charge <= s->capacity;
    pthread_mutex_unlock(&s->mu);
    return room;
}

void cairn_block_cache_release(cairn_block_cache *c, cairn_cache_handle *h)
{
    if (!c || !h)
        return;
    bc_shard *s = shard_of(c, h->hash);
    bc_entry *fl = NULL;
    pthread_mutex_lock(&s->mu);
    if (--h->refs == 0) {
        if (h->in_cache) {
            /* Over budget only while pinned entries held it there. */
            if (ld(&s->usage) > s->capacity)
                shard_evict(s, &fl);
        } else {
            sub(&s->usage, h->charge);
            h->hnext = NULL;
            fl = h;
        }
    }
    pthread_mutex_unlock(&s->mu);
    free_list(fl);
}

void cairn_block_cache_erase_file(cairn_block_cache *c, uint64_t file_id)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        bc_shard *s = &c->shards[i];
        bc_entry *fl = NULL;
        pthread_mutex_lock(&s->mu);
        for (size_t b = 0; b < s->nbuckets; b++) {
            bc_entry **p = &s->buckets[b];
            while (*p) {
                bc_entry *e = *p;
                if (e->file_id != file_id) {
                    p = &e->hnext;
                    continue;
                }
                *p = e->hnext;
                sub(&s->entries, 1);
                retire(s, e, &fl);
            }
        }
        pthread_mutex_unlock(&s->mu);
        free_list(fl);
    }
}

void cairn_block_cache_erase_blocks(cairn_block_cache *c, uint64_t file_id,
                                    const uint64_t *offs, size_t n)
{
    if (!c)
        return;
    for (size_t i = 0; i < n; i++) {
        uint64_t h = key_hash(file_id, offs[i]);
        bc_shard *s = shard_of(c, h);
        bc_entry *fl = NULL;
        pthread_mutex_lock(&s->mu);
        bc_entry *e = table_find(s, h, file_id, offs[i]);
        if (e) {
            table_remove(s, e);
            retire(s, e, &fl);
        }
        pthread_mutex_unlock(&s->mu);
        free_list(fl);
    }
}

void cairn_block_cache_set_capacity(cairn_block_cache *c, size_t capacity)
{
    if (!c)
        return;
    bc_entry *fl = NULL;
    pthread_mutex_lock(&c->cap_mu);
    atomic_store_explicit(&c->capacity, capacity, memory_order_relaxed);
    for (unsigned i = 0; i < c->nshards; i++) {
        bc_shard *s = &c->shards[i];
        pthread_mutex_lock(&s->mu);
        s->capacity = shard_capacity(capacity, c->nshards, i);
        shard_evict(s, &fl);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_unlock(&c->cap_mu);
    free_list(fl);
}

void cairn_block_cache_get_stats(cairn_block_cache *c,
                                 cairn_block_cache_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    out->capacity = atomic_load_explicit(&c->capacity, memory_order_relaxed);
    for (unsigned i = 0; i < c->nshards; i++) {
        bc_shard *s = &c->shards[i];
        out->usage += ld(&s->usage);
        out->entries += ld(&s->entries);
        out->hits += ld(&s->hits);
        out->misses += ld(&s->misses);
        out->inserts += ld(&s->inserts);
        out->evictions += ld(&s->evictions);
    }
}
