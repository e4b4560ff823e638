/*
 * row_cache.c — the row cache: a sharded CLOCK cache of user key -> value
 * (or "absent") at a commit version, byte-bounded, with optional per-entry
 * expiry and per-slot invalidation epochs (see row_cache.h).
 *
 * Layout: 2^k shards (k <= 6); a key's 64-bit hash picks the shard from
 * bits 48.., the bucket from its low bits and the epoch slot from bits
 * 24... Each shard has a mutex, an intrusive chained hash table
 * (power-of-two buckets, doubled when entries pass half the bucket count,
 * never shrunk: a lookup of an absent key mostly meets an empty bucket), a
 * circular doubly linked ring in insertion order (sentinel; next = the
 * oldest end, where the CLOCK hand is), RC_SLOTS epoch counters and its
 * share of the admission filter.
 *
 * Invariants (per shard, under its mutex):
 *   - An entry is in the hash table iff it is on the ring; at most one
 *     entry per key.
 *   - usage = sum of the charges of the entries in the table, and never
 *     more than capacity (the shard's share): an insert evicts to make
 *     room before it adds; set_capacity evicts under the same lock that
 *     lowers the share.
 *   - refs counts the table's reference (1 while the entry is in it) plus
 *     lookups copying a value larger than RC_SMALL_COPY out (smaller ones
 *     are copied to the stack under the lock); the entry is freed by
 *     whoever drops the last reference (after the shard lock is
 *     released).
 *   - Eviction is CLOCK (second chance): a hit only sets the entry's
 *     referenced flag; eviction takes the oldest entry of the ring, or,
 *     if its flag is set, clears it, moves it to the newest end and looks
 *     again. An entry not hit since the hand last passed goes first.
 *   - Key, value, version, ts, expiry and charge never change once the
 *     entry is published, so a lookup holding a reference reads them
 *     without the lock (the flag is under the mutex).
 *   - epoch[slot] only grows; it is bumped (release order) under the shard
 *     mutex, and a conditional insert compares it under the same mutex, so
 *     an invalidation is ordered either before the insert (which then sees
 *     the new epoch and refuses) or after it (and erases the entry).
 *
 * Locking: one shard mutex per operation, except set_capacity, which takes
 * them one at a time, serialized by cap_mu (taken first). No allocation,
 * free or value copy happens under a shard mutex: inserts build the entry
 * before locking; removed entries are gathered on a local list (through
 * hnext) and released after unlocking; lookups allocate the caller's copy
 * after unlocking.
 */
#include "cache/row_cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <xxhash.h>

#include "cairn.h"

#define RC_MAX_SHARDS 64u
#define RC_SHARD_BYTES (512u << 10) /* default shard count: one per 512 KiB */
#define RC_INITIAL_BUCKETS 16u
#define RC_SLOTS 64u /* epoch slots per shard */
/* A shard "has room" (a miss is admitted without the filter; an offer's
 * loop goes on) while this much of its share is free. */
#define RC_ROOM_SLACK 1024u
#define RC_SMALL_COPY 256u /* values up to this are copied under the lock */
/* The admission filter: 2^21 bits in all (256 KiB), split evenly between
 * the shards; a shard's bits are cleared once a quarter of them were set
 * (a window of about 500,000 distinct keys read and not cached, in all). */
#define RC_DOOR_BITS ((size_t)1 << 21)

/* A place on the ring: the first member of an entry, or a shard's
 * sentinel (which holds no entry). */
typedef struct rc_link {
    struct rc_link *prev, *next;
} rc_link;

typedef struct rc_entry {
    rc_link ring;                 /* first member: a link is its entry */
    struct rc_entry *hnext;       /* hash chain; then the release list */
    uint64_t hash;
    uint64_t version;
    uint64_t ts_us;
    uint64_t expire_ms; /* 0: never */
    bool referenced;    /* hit since the CLOCK hand last passed it */
    size_t charge;
    size_t klen, vlen;
    atomic_uint refs;
    bool deleted;
    uint8_t data[]; /* key, then value */
} rc_entry;
_Static_assert(offsetof(rc_entry, ring) == 0, "a ring link is its entry");

typedef struct rc_shard {
    _Alignas(64) pthread_mutex_t mu;
    /* Written under mu only; read lock-free by get_stats. A lookup writes
     * the mutex and one of these two: the same cache line. */
    _Atomic uint64_t hits, misses;
    rc_link lru_head; /* sentinel: next oldest, prev newest on the ring */
    rc_entry **buckets;
    size_t nbuckets;
    size_t capacity;
    _Atomic uint64_t epoch[RC_SLOTS];
    _Atomic uint64_t usage, entries, inserts, evictions, invalidations,
        expirations, refused, not_admitted;
    uint64_t *door;     /* admission filter bits; under mu */
    size_t door_sets;   /* bits set since the last clear; under mu */
} rc_shard;

struct cairn_row_cache {
    rc_shard *shards;
    unsigned nshards;
    pthread_mutex_t cap_mu;
    _Atomic uint64_t capacity;
    _Atomic bool admit_all; /* no admission filter: every miss may fill */
    size_t door_words;      /* per shard (a power of two) */
    cairn_row_cache_clock_fn clock;
    void *clock_arg;
};

/* ---------- small helpers ---------- */

static inline uint64_t ld(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static inline void add(_Atomic uint64_t *a, uint64_t v)
{
    atomic_store_explicit(a, ld(a) + v, memory_order_relaxed);
}

static inline void sub(_Atomic uint64_t *a, uint64_t v)
{
    atomic_store_explicit(a, ld(a) - v, memory_order_relaxed);
}

static uint64_t mono_ms(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline rc_shard *shard_of(cairn_row_cache *c, uint64_t hash)
{
    return &c->shards[(hash >> 48) & (c->nshards - 1)];
}

static inline unsigned slot_of(uint64_t hash)
{
    return (unsigned)(hash >> 24) & (RC_SLOTS - 1);
}

static inline rc_entry **bucket_of(rc_shard *s, uint64_t hash)
{
    return &s->buckets[hash & (s->nbuckets - 1)];
}

static inline bool entry_is(const rc_entry *e, uint64_t hash, const void *key,
                            size_t klen)
{
    return e->hash == hash && e->klen == klen &&
           (klen == 0 || memcmp(e->data, key, klen) == 0);
}

static rc_entry *table_find(rc_shard *s, uint64_t hash, const void *key,
                            size_t klen)
{
    rc_entry *e = *bucket_of(s, hash);
    while (e && !entry_is(e, hash, key, klen))
        e = e->hnext;
    return e;
}

/* Doubles the bucket array; on allocation failure keeps the old one. Runs
 * under the shard mutex: the only allocation there, and it happens
 * O(log entries) times in a shard's life. */
static void table_grow(rc_shard *s)
{
    size_t n = s->nbuckets * 2;
    if (n < s->nbuckets)
        return;
    rc_entry **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        rc_entry *e = s->buckets[i];
        while (e) {
            rc_entry *next = e->hnext;
            rc_entry **b = &nb[e->hash & (n - 1)];
            e->hnext = *b;
            *b = e;
            e = next;
        }
    }
    free(s->buckets);
    /* Atomic stores: cairn_row_cache_prefetch reads both without mu. */
    __atomic_store_n(&s->buckets, nb, __ATOMIC_RELAXED);
    __atomic_store_n(&s->nbuckets, n, __ATOMIC_RELAXED);
}

static inline void lru_unlink(rc_entry *e)
{
    e->ring.prev->next = e->ring.next;
    e->ring.next->prev = e->ring.prev;
    e->ring.prev = e->ring.next = NULL;
}

static inline void lru_push_mru(rc_shard *s, rc_entry *e)
{
    e->ring.next = &s->lru_head;
    e->ring.prev = s->lru_head.prev;
    s->lru_head.prev->next = &e->ring;
    s->lru_head.prev = &e->ring;
    e->referenced = false;
}

/* A hit: flag the entry (CLOCK). It writes nothing but the entry, whose
 * line the lookup has loaded anyway, and only the first time; an LRU
 * would relink it, writing both neighbours (cache misses on every hit of
 * a large cache) and the list head. */
static inline void clock_touch(rc_entry *e)
{
    if (!e->referenced)
        e->referenced = true;
}

/* Takes e out of the table, the list and the accounting, onto *fl. */
static void remove_entry(rc_shard *s, rc_entry *e, rc_entry **fl)
{
    rc_entry **p = bucket_of(s, e->hash);
    while (*p && *p != e)
        p = &(*p)->hnext;
    if (*p)
        *p = e->hnext;
    lru_unlink(e);
    sub(&s->entries, 1);
    sub(&s->usage, e->charge);
    e->hnext = *fl;
    *fl = e;
}

/* Evicts entries (CLOCK, from the oldest end) until room bytes more fit
 * in the shard's capacity (or nothing is left). Room is made before an
 * entry is added, so usage never passes capacity, even as get_stats sees
 * it. */
static void shard_evict(rc_shard *s, size_t room, rc_entry **fl)
{
    while (ld(&s->usage) + room > s->capacity &&
           s->lru_head.next != &s->lru_head) {
        rc_entry *e = (rc_entry *)s->lru_head.next; /* not the sentinel */
        if (e->referenced) { /* a second chance: to the newest end */
            lru_unlink(e);
            lru_push_mru(s, e); /* clears the flag: the loop ends */
            continue;
        }
        remove_entry(s, e, fl);
        add(&s->evictions, 1);
    }
}

static inline void entry_unref(rc_entry *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

/* Drops the table's reference of every entry on a release list (no shard
 * mutex held). */
static void release_list(rc_entry *e)
{
    while (e) {
        rc_entry *next = e->hnext;
        entry_unref(e);
        e = next;
    }
}

static size_t shard_capacity(size_t capacity, unsigned n, unsigned i)
{
    return capacity / n + (i < capacity % n ? 1 : 0);
}

/* ---------- public API ---------- */

/* What malloc adds to each entry, and the entry's share of the bucket
 * arrays (two to four pointers per entry, the table being kept at most half
 * full; four charged): charged so that the budget bounds the memory really
 * taken, not just the bytes stored. */
#define RC_ALLOC_OVERHEAD 16u
#define RC_BUCKET_SHARE (4 * sizeof(rc_entry *))

size_t cairn_row_cache_charge(size_t klen, size_t vlen)
{
    return sizeof(rc_entry) + RC_ALLOC_OVERHEAD + RC_BUCKET_SHARE + klen + vlen;
}

void cairn_row_cache_prefetch(cairn_row_cache *c, uint64_t hash)
{
    if (!c)
        return;
    /* Without the shard's mutex: the array and its size may be from two
     * sides of a resize, or the array freed since. A prefetch never faults,
     * so any address computed from them is harmless: at worst a wasted
     * load. */
    rc_shard *s = shard_of(c, hash);
    rc_entry **b = __atomic_load_n(&s->buckets, __ATOMIC_RELAXED);
    size_t n = __atomic_load_n(&s->nbuckets, __ATOMIC_RELAXED);
    __builtin_prefetch(s);
    __builtin_prefetch(b + (hash & (n - 1)));
}

void cairn_row_cache_prefetch_entry(cairn_row_cache *c, uint64_t hash)
{
    if (!c)
        return;
    rc_shard *s = shard_of(c, hash);
    pthread_mutex_lock(&s->mu);
    rc_entry *e = *bucket_of(s, hash);
    pthread_mutex_unlock(&s->mu);
    /* Unlocked: the entry may be gone by now; a prefetch never faults. */
    if (e)
        __builtin_prefetch(e);
}

uint64_t cairn_row_cache_hash(const void *key, size_t klen)
{
    return XXH3_64bits(key, klen);
}

cairn_row_cache *cairn_row_cache_new(size_t capacity, unsigned shards)
{
    if (shards == 0) {
        size_t want = capacity ? capacity / RC_SHARD_BYTES : 16;
        shards = want > RC_MAX_SHARDS ? RC_MAX_SHARDS : want ? (unsigned)want : 1;
    }
    if (shards > RC_MAX_SHARDS)
        shards = RC_MAX_SHARDS;
    unsigned n = 1;
    while (n < shards)
        n <<= 1;
    if (n > RC_MAX_SHARDS)
        n = RC_MAX_SHARDS;

    cairn_row_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->shards = aligned_alloc(_Alignof(rc_shard), (size_t)n * sizeof(rc_shard));
    if (!c->shards) {
        free(c);
        return NULL;
    }
    memset(c->shards, 0, (size_t)n * sizeof(rc_shard));
    c->nshards = n;
    c->door_words = RC_DOOR_BITS / 64 / n;
    atomic_init(&c->admit_all, false);
    c->clock = mono_ms;
    atomic_init(&c->capacity, capacity);
    if (pthread_mutex_init(&c->cap_mu, NULL) != 0) {
        free(c->shards);
        free(c);
        return NULL;
    }
    for (unsigned i = 0; i < n; i++) {
        rc_shard *s = &c->shards[i];
        s->buckets = calloc(RC_INITIAL_BUCKETS, sizeof *s->buckets);
        s->door = calloc(c->door_words, sizeof *s->door);
        if (!s->buckets || !s->door || pthread_mutex_init(&s->mu, NULL) != 0) {
            free(s->buckets);
            free(s->door);
            for (unsigned j = 0; j < i; j++) {
                pthread_mutex_destroy(&c->shards[j].mu);
                free(c->shards[j].buckets);
                free(c->shards[j].door);
            }
            pthread_mutex_destroy(&c->cap_mu);
            free(c->shards);
            free(c);
            return NULL;
        }
        s->nbuckets = RC_INITIAL_BUCKETS;
        s->lru_head.next = s->lru_head.prev = &s->lru_head;
        s->capacity = shard_capacity(capacity, n, i);
        for (unsigned k = 0; k < RC_SLOTS; k++)
            atomic_init(&s->epoch[k], 0);
        atomic_init(&s->usage, 0);
        atomic_init(&s->entries, 0);
        atomic_init(&s->hits, 0);
        atomic_init(&s->misses, 0);
        atomic_init(&s->inserts, 0);
        atomic_init(&s->evictions, 0);
        atomic_init(&s->invalidations, 0);
        atomic_init(&s->expirations, 0);
        atomic_init(&s->refused, 0);
        atomic_init(&s->not_admitted, 0);
    }
    return c;
}

void cairn_row_cache_free(cairn_row_cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < c->nshards; i++) {
        rc_shard *s = &c->shards[i];
        for (size_t b = 0; b < s->nbuckets; b++) {
            rc_entry *e = s->buckets[b];
            while (e) {
                rc_entry *next = e->hnext;
                free(e);
                e = next;
            }
        }
        free(s->buckets);
        free(s->door);
        pthread_mutex_destroy(&s->mu);
    }
    pthread_mutex_destroy(&c->cap_mu);
    free(c->shards);
    free(c);
}

void cairn_row_cache_set_clock(cairn_row_cache *c, cairn_row_cache_clock_fn fn,
                               void *arg)
{
    if (!c)
        return;
    c->clock = fn ? fn : mono_ms;
    c->clock_arg = fn ? arg : NULL;
}

bool cairn_row_cache_enabled(const cairn_row_cache *c)
{
    return c && atomic_load_explicit(&((cairn_row_cache *)c)->capacity,
                                     memory_order_relaxed) > 0;
}

/* A miss that the caller may fill: admitted if the key's bit was set (its
 * read since the filter's last clear), else the bit is set. mu held. */
static bool door_admit(cairn_row_cache *c, rc_shard *s, uint64_t hash)
{
    if (atomic_load_explicit(&c->admit_all, memory_order_relaxed))
        return true;
    /* Room left: a fill pushes nothing out, so nothing needs guarding. */
    if (ld(&s->usage) + RC_ROOM_SLACK <= s->capacity)
        return true;
    size_t bit = (size_t)(hash >> 27) & (c->door_words * 64 - 1);
    uint64_t m = (uint64_t)1 << (bit & 63);
    if (s->door[bit >> 6] & m)
        return true;
    s->door[bit >> 6] |= m;
    if (++s->door_sets >= c->door_words * 16) {
        memset(s->door, 0, c->door_words * sizeof *s->door);
        s->door_sets = 0;
    }
    add(&s->not_admitted, 1);
    return false;
}

void cairn_row_cache_set_admit_all(cairn_row_cache *c, bool all)
{
    if (c)
        atomic_store_explicit(&c->admit_all, all, memory_order_relaxed);
}

int cairn_row_cache_lookup(cairn_row_cache *c, uint64_t hash, const void *key,
                           size_t klen, uint64_t max_version, uint64_t max_ts,
                           cairn_row_cache_value *out, bool *admit)
{
    memset(out, 0, sizeof *out);
    if (admit)
        *admit = false;
    if (!c || (!key && klen))
        return 0;
    rc_shard *s = shard_of(c, hash);
    rc_entry *fl = NULL;
    pthread_mutex_lock(&s->mu);
    rc_entry *e = table_find(s, hash, key, klen);
    if (e && e->expire_ms && c->clock(c->clock_arg) >= e->expire_ms) {
        remove_entry(s, e, &fl);
        add(&s->expirations, 1);
        e = NULL;
    }
    if (e && (e->version > max_version || e->ts_us > max_ts))
        e = NULL;
    /* A small value is copied out to the stack under the lock (cheaper
     * than pinning the entry); a larger one is pinned and copied after. */
    uint8_t small[RC_SMALL_COPY];
    bool pinned = false;
    if (e) {
        clock_touch(e);
        out->deleted = e->deleted;
        out->version = e->version;
        out->ts_us = e->ts_us;
        out->vlen = e->deleted ? 0 : e->vlen;
        if (out->vlen <= sizeof small) {
            if (out->vlen)
                memcpy(small, e->data + e->klen, out->vlen);
        } else {
            atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
            pinned = true;
        }
    }
    add(e ? &s->hits : &s->misses, 1);
    if (!e && admit)
        *admit = door_admit(c, s, hash);
    pthread_mutex_unlock(&s->mu);
    release_list(fl);
    if (!e)
        return 0;
    int rc = 1;
    if (!out->deleted) {
        out->val = malloc(out->vlen ? out->vlen : 1);
        if (out->val && out->vlen)
            memcpy(out->val, pinned ? e->data + e->klen : small, out->vlen);
        else if (!out->val)
            rc = CAIRN_ENOMEM;
    }
    if (pinned)
        entry_unref(e);
    if (rc != 1)
        memset(out, 0, sizeof *out);
    return rc;
}

uint64_t cairn_row_cache_epoch(cairn_row_cache *c, uint64_t hash)
{
    if (!c)
        return 0;
    return atomic_load_explicit(&shard_of(c, hash)->epoch[slot_of(hash)],
                                memory_order_acquire);
}

/* How insert_impl stores: RC_INSERT evicts to make room; RC_OFFER bumps
 * the key's epoch, drops an older entry and stores into free room only;
 * RC_BUMP bumps the epoch and drops an older entry, storing nothing. */
enum { RC_INSERT, RC_OFFER, RC_BUMP };

static int insert_impl(cairn_row_cache *c, uint64_t hash, const void *key,
                       size_t klen, const void *val, size_t vlen, bool deleted,
                       uint64_t version, uint64_t ts_us, uint64_t ttl_ms,
                       const uint64_t *epoch, int how)
{
    if (!c || (!key && klen) || (!deleted && !val && vlen))
        return CAIRN_EINVAL;
    if (deleted)
        vlen = 0;
    rc_shard *s = shard_of(c, hash);
    size_t charge = cairn_row_cache_charge(klen, vlen);
    /* Too large for the shard (a relaxed peek; checked again under the
     * lock): do not build it, but still drop an older entry of the key. */
    bool fits = how != RC_BUMP &&
                charge <= atomic_load_explicit(&c->capacity,
                                               memory_order_relaxed) /
                                  c->nshards +
                              1;
    rc_entry *e = NULL;
    if (fits) {
        e = malloc(sizeof *e + klen + vlen);
        if (!e)
            return CAIRN_ENOMEM;
        e->ring.prev = e->ring.next = NULL;
        e->hnext = NULL;
        e->hash = hash;
        e->version = version;
        e->ts_us = ts_us;
        e->expire_ms = 0;
        if (ttl_ms) {
            uint64_t now = c->clock(c->clock_arg);
            e->expire_ms = ttl_ms > UINT64_MAX - now ? UINT64_MAX : now + ttl_ms;
        }
        e->charge = charge;
        e->klen = klen;
        e->vlen = vlen;
        e->deleted = deleted;
        atomic_init(&e->refs, 1);
        if (klen)
            memcpy(e->data, key, klen);
        if (vlen)
            memcpy(e->data + klen, val, vlen);
    }

    rc_entry *fl = NULL;
    int rc = 0;
    pthread_mutex_lock(&s->mu);
    _Atomic uint64_t *ep = &s->epoch[slot_of(hash)];
    if (epoch && atomic_load_explicit(ep, memory_order_relaxed) != *epoch) {
        add(&s->refused, 1);
        goto out;
    }
    if (how != RC_INSERT)
        atomic_fetch_add_explicit(ep, 1, memory_order_release);
    rc_entry *old = table_find(s, hash, key, klen);
    if (old && old->version > version)
        goto out; /* a newer state is cached: keep it */
    if (old) {
        remove_entry(s, old, &fl);
        if (how != RC_INSERT)
            add(&s->invalidations, 1);
    }
    if (!e || charge > s->capacity)
        goto out;
    if (how == RC_OFFER && ld(&s->usage) + charge > s->capacity)
        goto out;
    shard_evict(s, charge, &fl);
    if (2 * ld(&s->entries) >= s->nbuckets)
        table_grow(s);
    rc_entry **b = bucket_of(s, hash);
    e->hnext = *b;
    *b = e;
    lru_push_mru(s, e);
    add(&s->entries, 1);
    add(&s->usage, charge);
    add(&s->inserts, 1);
    e = NULL; /* the table's now */
    rc = 1;
out:
    pthread_mutex_unlock(&s->mu);
    release_list(fl);
    free(e);
    return rc;
}

int cairn_row_cache_insert(cairn_row_cache *c, uint64_t hash, const void *key,
                           size_t klen, const void *val, size_t vlen,
                           bool deleted, uint64_t version, uint64_t ts_us,
                           uint64_t ttl_ms, const uint64_t *epoch)
{
    return insert_impl(c, hash, key, klen, val, vlen, deleted, version, ts_us,
                       ttl_ms, epoch, RC_INSERT);
}

int cairn_row_cache_supersede(cairn_row_cache *c, uint64_t hash,
                              const void *key, size_t klen, const void *val,
                              size_t vlen, bool deleted, uint64_t version,
                              uint64_t ts_us, bool offer)
{
    return insert_impl(c, hash, key, klen, offer ? val : NULL,
                       offer ? vlen : 0, deleted || !offer, version, ts_us, 0,
                       NULL, offer ? RC_OFFER : RC_BUMP);
}

bool cairn_row_cache_has_room(cairn_row_cache *c)
{
    if (!c)
        return false;
    uint64_t cap = atomic_load_explicit(&c->capacity, memory_order_relaxed);
    uint64_t used = 0;
    for (unsigned i = 0; i < c->nshards; i++)
        used += ld(&c->shards[i].usage);
    return used + (uint64_t)RC_ROOM_SLACK * c->nshards <= cap;
}

void cairn_row_cache_set_capacity(cairn_row_cache *c, size_t capacity)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->cap_mu);
    atomic_store_explicit(&c->capacity, capacity, memory_order_relaxed);
    for (unsigned i = 0; i < c->nshards; i++) {
        rc_shard *s = &c->shards[i];
        rc_entry *fl = NULL;
        pthread_mutex_lock(&s->mu);
        s->capacity = shard_capacity(capacity, c->nshards, i);
        shard_evict(s, 0, &fl);
        pthread_mutex_unlock(&s->mu);
        release_list(fl);
    }
    pthread_mutex_unlock(&c->cap_mu);
}

void cairn_row_cache_get_stats(cairn_row_cache *c, cairn_row_cache_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    out->capacity = atomic_load_explicit(&c->capacity, memory_order_relaxed);
    for (unsigned i = 0; i < c->nshards; i++) {
        rc_shard *s = &c->shards[i];
        out->usage += ld(&s->usage);
        out->entries += ld(&s->entries);
        out->hits += ld(&s->hits);
        out->misses += ld(&s->misses);
        out->inserts += ld(&s->inserts);
        out->evictions += ld(&s->evictions);
        out->invalidations += ld(&s->invalidations);
        out->expirations += ld(&s->expirations);
        out->fills_refused += ld(&s->refused);
        out->not_admitted += ld(&s->not_admitted);
    }
}
