/*
 * memtable.c — concurrent skiplist of internal keys (key asc, version desc)
 * over a lock-free bump arena, plus a lock-free hash index over USER keys for
 * point lookups. The skiplist follows RocksDB's InlineSkipList with
 * concurrent insert; it serves ordered iteration / seek and is the ground
 * truth. The hash index maps a user key to the node holding its newest
 * version, so get / latest_version cost a few cache misses (bucket, entry,
 * node) instead of a ~log2(n)-deep skiplist descent.
 *
 * Skiplist invariants:
 *   - Nodes are never unlinked, moved or changed after they are published
 *     (except their next[] pointers). Every level is a sorted list; a node is
 *     linked at level i only after it is linked at every level below i
 *     (links go bottom up), so a node seen at level i+1 is already in level i.
 *   - A node is one arena allocation: [hash entry], next[height] (highest
 *     level first), header, key bytes, value bytes; 8-byte aligned. The hash
 *     entry prefix is present only when the insert created the key's hash
 *     entry. Arena blocks are freed only when the memtable is; allocations
 *     above 1/4 block get a block of their own.
 *   - max_height only grows; head.next[i] for i >= max_height may be NULL or
 *     point to a node being linked: both are fine for readers.
 *
 * Hash index invariants:
 *   - A fixed array of 2^k buckets (atomic pointers to entry chains), sized
 *     at creation (cairn_memtable_new_sized: expected_bytes / 64 rounded up
 *     to a power of two, clamped to [2^10, 2^28]; cairn_memtable_new: 2^16
 *     buckets = 512 KiB of pointers, enough for ~8 MiB of entries at load 1;
 *     bigger tables just get longer chains, there is no resize). The array is
 *     calloc'ed lazily by the first insert (CAS-installed, the loser frees
 *     its copy), so an empty memtable costs nothing and memory() stays 0
 *     until the first insert; it relies on all-zero bits being a NULL atomic
 *     pointer (true on every platform this builds on).
 *   - An entry {next, node, hash} lives in the arena, co-allocated in front
 *     of the node whose insert created it, and is never freed or unlinked;
 *     entries are only pushed at a bucket's head, and `next` / `hash` never
 *     change once the entry is published. The key bytes are read through
 *     `node` (every node of the entry has the same user key).
 *   - At most one entry per user key: an insert scans the chain before
 *     pushing and, when its push CAS fails, rescans the entries pushed since
 *     (from the new head down to the head it had scanned) and joins an entry
 *     found there instead.
 *   - entry->node is only ever raised (CAS-max on version) and only to nodes
 *     already linked at level 0. So entry->node is the node with the highest
 *     version of that key among the inserts that have returned (and maybe a
 *     newer one whose insert is still running), and every older version of
 *     the key sorts after it at level 0.
 *
 * Insert order: validate, get the bucket array, search the skiplist splice
 * (duplicate check), look the key up in the hash chain (to know whether a
 * new entry is needed, so it can be co-allocated and no allocation can fail
 * after the node is linked), allocate, link level 0 (duplicate detection),
 * publish in the hash index (push the entry or CAS-max its node), then link
 * the upper levels. Insert returns only after the hash index is updated.
 * The search is a step function (ins_step): cairn_memtable_insert_batch
 * steps the searches of MT_BATCH_WAYS inserts in turn, each step
 * prefetching the node its next step compares, then links them one after
 * the other; a node linked by an earlier one that lands in a later one's
 * splice fails its CAS like any concurrent insert, and it re-searches.
 *
 * Reads: get hashes the key, finds the entry, loads entry->node (the newest
 * version N) and walks level 0 forward from N while the user key is the
 * same, skipping versions > max_version and returning the first entry with
 * ts_us <= max_ts: older versions of a key sort right after newer ones, so
 * every version <= N->version is reachable from N (nodes never vanish and
 * level 0 is always sorted). If more than MT_GET_SKIP versions above
 * max_version have to be skipped (an old snapshot of a hot key), it falls
 * back to the skiplist descent to (key, max_version), bounding the cost.
 * Why this is right with concurrent inserts: if an insert of (key, v) has
 * returned before the get starts (happens-before), then (a) its entry is in
 * the bucket chain the get loads (pushes only prepend; coherence), (b) the
 * get loads an entry->node with version >= v (the insert's CAS-max, or the
 * read that made it skip the CAS, precedes the get's load in the modification
 * order of entry->node, and the value only grows), and (c) (key, v) is
 * linked at level 0 after that node, so the walk reaches it. The loaded node
 * may be newer than anything the reader wants (even one whose insert has not
 * returned yet): the walk just skips it. latest_version returns
 * entry->node->version: a node linked at level 0 but not yet published in
 * the hash may be missed, which is allowed because its insert has not
 * returned. A key without an entry is "not found" after one bucket load,
 * mostly by the bucket's tag bits alone (mt_bucket), else after a short
 * chain walk (hash compared before the key bytes are touched). Tag bits are
 * only ever added, by the CAS that pushes an entry, so a clear bit proves
 * that no entry of that hash was in the chain loaded.
 *
 * Backward iteration (seek_last, seek_for_prev, prev): there are no back
 * links (a concurrent insert could not publish them atomically with the
 * forward ones), so prev is a descent from the head for the last node <
 * the current one: O(log n) per step. It relies only on the invariants
 * above (sorted levels, nodes never vanish), so it is as lock-free and as
 * safe under concurrent inserts as a forward seek.
 *
 * Block pool: standard arena blocks (MT_BLOCK_SIZE) of a freed memtable
 * are kept, process-wide, for the memtables that come next, up to the sum
 * of what open databases reserved (cairn_memtable_pool_reserve: one
 * memtable's worth each); the rest are freed. A fresh block costs a page
 * fault per 4 KiB on its first writes, each a trap to the kernel and a
 * zeroed page, and those faults land inside inserts (on the thread
 * applying commits). Pooled blocks are already mapped. Under ASan a pooled
 * block is poisoned until reused, so a stale pointer into a freed memtable
 * is still caught. Hash bucket arrays are kept likewise (one per
 * reservation), zeroed when reused.
 *
 * Memory ordering / locking: no mutex in the memtable itself (the block
 * pool has one, g_pool_mu, taken once per block). A node's fields and its
 * next[] are written (next[] with relaxed atomic stores) before the node is
 * published by a release CAS on prev->next[i]; readers load next pointers with
 * acquire, which makes the node's contents visible. An insert finds the
 * splice (prev/next per level), links level 0 by CAS — this is where a
 * concurrent duplicate is detected — then the upper levels; when a CAS fails
 * the splice of that level is recomputed from its prev (which stays < key,
 * nodes never vanish). Hash entries: hash / node / next are written before
 * the acq_rel CAS that pushes the entry on the bucket head; readers load the
 * bucket head, entry->next and entry->node with acquire. entry->node is
 * raised by a release CAS (the node's contents were written before it was
 * linked, by the same thread). The bucket array pointer is installed by an
 * acq_rel CAS and loaded with acquire. The arena hands out memory with a
 * fetch_add on the current block's offset; an exhausted block is replaced by
 * CAS (the loser frees its never-published block) and blocks go on a Treiber
 * list (push only) that is walked once, at free. count / max_version /
 * memory / refs are atomics; the counters use relaxed order (they are
 * statistics), refs uses acq_rel on the decrement so the freeing thread sees
 * every other thread's writes.
 */
#include "mvcc/memtable.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define MT_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define MT_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define MT_POISON(p, n) ((void)(p), (void)(n))
#define MT_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "cairn.h"
#include "util/keycmp.h"

#define MT_MAX_HEIGHT 20
#define MT_BLOCK_SIZE ((size_t)1 << 20)
/* Allocations above this get a dedicated block. */
#define MT_BIG_ALLOC (MT_BLOCK_SIZE / 4)

/* Hash index sizing: one bucket per this many expected bytes. A small
 * entry (16-byte key, 100-byte value) takes about 190 bytes with its node
 * and hash entry, so a full table sits at a load of about 1/3: a lookup of
 * an absent key (most of a read-mostly load once the table holds a part of
 * the keys) finds an empty bucket two times in three, one cache miss and
 * no chain walk, for 1/8 of the table's size in buckets. */
#define MT_BYTES_PER_BUCKET 64
#define MT_MIN_BUCKETS ((size_t)1 << 10)
#define MT_MAX_BUCKETS ((size_t)1 << 28)
#define MT_DEFAULT_BUCKETS ((size_t)1 << 16)
/* get: versions above max_version walked at level 0 before falling back to a
 * skiplist descent. */
#define MT_GET_SKIP 8

/* ---------- arena ---------- */

typedef struct mt_block {
    struct mt_block *next; /* block list; written before publication */
    size_t cap;            /* usable bytes in data[] */
    _Atomic size_t used;   /* bump offset; may overshoot cap when full */
    uint64_t data[];       /* 8-byte aligned payload */
} mt_block;

/* ---------- nodes ---------- */

/* A node in memory: [hash entry, if this insert created the key's entry],
 * next[height-1] .. next[0], then this header, then the key bytes, then the
 * value bytes. The node pointer points at the header, so a comparison
 * (klen, version, key) touches one contiguous span and the level-0 link sits
 * right before it; a key's first node sits right after its hash entry. */
typedef struct mt_node {
    size_t klen;
    uint64_t version;
    uint64_t ts_us;
    size_t vlen;
    uint8_t kind;
    uint8_t height;
} mt_node;

typedef _Atomic(mt_node *) mt_link;
#define MT_HDR_SIZE ((sizeof(mt_node) + 7) & ~(size_t)7)

/* ---------- hash index entries ---------- */

/* One per user key, in the arena right before the links of the node whose
 * insert created it. */
typedef struct mt_hent {
    _Atomic(struct mt_hent *) next; /* older entry of the bucket; fixed */
    _Atomic(mt_node *) node;        /* node with the newest version */
    uint64_t hash;                  /* full hash of the user key; fixed */
} mt_hent;

/* A bucket: the chain's head entry in the low 48 bits, and in the top 16
 * a summary of the hashes in its chain: bit 48 + (hash >> 60) set for each
 * (bucket_tag). A lookup whose bit is clear knows the key is absent without
 * walking the chain (a cache miss per entry). Pointers fit in 48 bits on
 * every platform this builds on (user space addresses); an arena block
 * that would not is refused as an allocation failure (block_new). */
typedef _Atomic(uintptr_t) mt_bucket;
#define MT_PTR_BITS 48
#define MT_PTR_MASK ((UINT64_C(1) << MT_PTR_BITS) - 1)
_Static_assert(sizeof(uintptr_t) == 8, "bucket tags need 64-bit pointers");

static inline mt_hent *bucket_head(uintptr_t v)
{
    return (mt_hent *)(v & MT_PTR_MASK);
}

static inline uintptr_t bucket_tag(uint64_t h)
{
    return (uintptr_t)1 << (MT_PTR_BITS + (h >> 60));
}
#define MT_HENT_SIZE ((sizeof(mt_hent) + 7) & ~(size_t)7)

/* Read-mostly fields, per-insert counters and arena state sit on separate
 * cache lines (the struct is allocated with aligned_alloc). */
struct cairn_memtable {
    mt_node *head;  /* sentinel with MT_MAX_HEIGHT levels, inside head_mem */
    void *head_mem; /* malloc'ed */
    _Atomic(mt_bucket *) buckets; /* hash index; NULL until the 1st insert */
    size_t hmask;                 /* bucket count - 1 (a power of two - 1) */
    _Atomic int max_height;
    _Atomic int refs;
    _Alignas(64) _Atomic uint64_t count;
    _Atomic uint64_t max_version;
    _Alignas(
        64) _Atomic(mt_block *) cur; /* block small allocations come from */
    _Atomic(mt_block *) blocks;      /* every published block */
    _Atomic size_t memory;
    _Atomic uint64_t blob_count; /* CAIRN_MT_BLOB entries */
    void (*release_fn)(void *arg, cairn_memtable *mt); /* at the last unref */
    void *release_arg;
};

/* The link of n at `level` (0 <= level < n->height). */
static inline mt_link *node_link(const mt_node *n, int level)
{
    return (mt_link *)(uintptr_t)n - 1 - level;
}

static inline const uint8_t *node_key(const mt_node *n)
{
    return (const uint8_t *)n + MT_HDR_SIZE;
}

static inline const uint8_t *node_value(const mt_node *n)
{
    return node_key(n) + n->klen;
}

static inline mt_node *load_next(mt_node *n, int level)
{
    return atomic_load_explicit(node_link(n, level), memory_order_acquire);
}

/* Internal order: <0, 0, >0 as (ak, av) sorts before, with, after (bk, bv). */
static inline int ikey_cmp(const uint8_t *ak, size_t alen, uint64_t av,
                           const uint8_t *bk, size_t blen, uint64_t bv)
{
    int c = cairn_key_cmp(ak, alen, bk, blen);
    if (c != 0)
        return c;
    if (av != bv)
        return av > bv ? -1 : 1; /* newer version first */
    return 0;
}

static inline int node_cmp(const mt_node *n, const uint8_t *key, size_t klen,
                           uint64_t version)
{
    return ikey_cmp(node_key(n), n->klen, n->version, key, klen, version);
}

static inline bool node_same_key(const mt_node *n, const uint8_t *key,
                                 size_t klen)
{
    return n->klen == klen &&
           (klen == 0 || memcmp(node_key(n), key, klen) == 0);
}

/* ---------- arena ---------- */

/* The block pool (see the top): standard blocks, kept up to pool_cap(). */
static pthread_mutex_t g_pool_mu = PTHREAD_MUTEX_INITIALIZER;
static mt_block *g_pool;          /* linked through next */
static size_t g_pool_n;           /* blocks in g_pool */
static uint64_t g_pool_reserved;  /* bytes reserved by open databases */
static size_t g_reservations;     /* open reservations (arrays kept) */

/* Most blocks the pool keeps, whatever is reserved (256 MiB). */
#define MT_POOL_MAX_BLOCKS 256

/* g_pool_mu held: the blocks the pool may keep. */
static size_t pool_cap(void)
{
    uint64_t blocks = (g_pool_reserved + MT_BLOCK_SIZE - 1) / MT_BLOCK_SIZE;
    return blocks > MT_POOL_MAX_BLOCKS ? MT_POOL_MAX_BLOCKS : (size_t)blocks;
}

static mt_block *pool_take(void)
{
    pthread_mutex_lock(&g_pool_mu);
    mt_block *b = g_pool;
    if (b) {
        MT_UNPOISON(b, sizeof *b);
        g_pool = b->next;
        g_pool_n--;
    }
    pthread_mutex_unlock(&g_pool_mu);
    if (b)
        MT_UNPOISON(b->data, MT_BLOCK_SIZE);
    return b;
}

/* Keep b for a later memtable, or free it. */
static void pool_give(mt_block *b)
{
    if (b->cap == MT_BLOCK_SIZE) {
        pthread_mutex_lock(&g_pool_mu);
        if (g_pool_n < pool_cap()) {
            b->next = g_pool;
            g_pool = b;
            g_pool_n++;
            MT_POISON(b, sizeof *b + MT_BLOCK_SIZE);
            b = NULL;
        }
        pthread_mutex_unlock(&g_pool_mu);
    }
    free(b);
}

/* g_pool_mu held: bring the pool within its cap. Returns the blocks to
 * free (outside the lock). */
static mt_block *pool_trim_locked(void)
{
    mt_block *out = NULL;
    while (g_pool_n > pool_cap()) {
        mt_block *b = g_pool;
        MT_UNPOISON(b, sizeof *b);
        g_pool = b->next;
        g_pool_n--;
        b->next = out;
        out = b;
    }
    return out;
}

/* Hash bucket arrays of freed memtables, kept the same way (one per
 * reservation, at most MT_POOL_MAX_ARRAYS): faulting in a fresh 8 MiB
 * array took about 23 ms on a VM, zeroing a kept one (on reuse, by the
 * first insert) 0.1-0.4 ms. g_pool_mu guards them. */
#define MT_POOL_MAX_ARRAYS 4
static struct {
    mt_bucket *b;
    size_t n; /* buckets */
} g_arrays[MT_POOL_MAX_ARRAYS];
static size_t g_narrays;

/* A zeroed array of n buckets: a kept one, else NULL. */
static mt_bucket *arrays_take(size_t n)
{
    mt_bucket *b = NULL;
    pthread_mutex_lock(&g_pool_mu);
    for (size_t i = 0; i < g_narrays; i++)
        if (g_arrays[i].n == n) {
            b = g_arrays[i].b;
            g_arrays[i] = g_arrays[--g_narrays];
            break;
        }
    pthread_mutex_unlock(&g_pool_mu);
    if (b) {
        MT_UNPOISON(b, n * sizeof *b);
        memset((void *)b, 0, n * sizeof *b); /* all-zero bits: NULL */
    }
    return b;
}

/* Keep the array b of n buckets for a later memtable, or free it. */
static void arrays_give(mt_bucket *b, size_t n)
{
    if (!b)
        return;
    pthread_mutex_lock(&g_pool_mu);
    if (g_narrays < g_reservations && g_narrays < MT_POOL_MAX_ARRAYS) {
        g_arrays[g_narrays].b = b;
        g_arrays[g_narrays].n = n;
        g_narrays++;
        MT_POISON(b, n * sizeof *b);
        b = NULL;
    }
    pthread_mutex_unlock(&g_pool_mu);
    free(b);
}

/* A reservation of bytes made (add) or given back; the pool then sheds
 * what exceeds the reservations left. */
static void pool_set(bool add, uint64_t bytes)
{
    pthread_mutex_lock(&g_pool_mu);
    if (add) {
        g_pool_reserved += bytes;
        g_reservations++;
    } else {
        g_pool_reserved -= bytes < g_pool_reserved ? bytes : g_pool_reserved;
        if (g_reservations > 0)
            g_reservations--;
    }
    mt_block *drop = pool_trim_locked();
    mt_bucket *drop_arrays[MT_POOL_MAX_ARRAYS];
    size_t ndrop = 0;
    while (g_narrays > g_reservations) {
        g_narrays--;
        MT_UNPOISON(g_arrays[g_narrays].b,
                    g_arrays[g_narrays].n * sizeof(mt_bucket));
        drop_arrays[ndrop++] = g_arrays[g_narrays].b;
    }
    pthread_mutex_unlock(&g_pool_mu);
    while (drop) {
        mt_block *next = drop->next;
        free(drop);
        drop = next;
    }
    for (size_t i = 0; i < ndrop; i++)
        free(drop_arrays[i]);
}

void cairn_memtable_pool_reserve(uint64_t bytes)
{
    pool_set(true, bytes);
}

void cairn_memtable_pool_unreserve(uint64_t bytes)
{
    pool_set(false, bytes);
}

size_t cairn_memtable_pool_arrays(void)
{
    pthread_mutex_lock(&g_pool_mu);
    size_t n = g_narrays;
    pthread_mutex_unlock(&g_pool_mu);
    return n;
}

size_t cairn_memtable_pool_blocks(void)
{
    pthread_mutex_lock(&g_pool_mu);
    size_t n = g_pool_n;
    pthread_mutex_unlock(&g_pool_mu);
    return n;
}

static mt_block *block_new(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(mt_block))
        return NULL;
    mt_block *b = cap == MT_BLOCK_SIZE ? pool_take() : NULL;
    if (!b) {
        b = malloc(sizeof(mt_block) + cap);
        if (!b)
            return NULL;
        if (((uintptr_t)b + sizeof(mt_block) + cap) >> MT_PTR_BITS) {
            free(b); /* its hash entries could not be tagged (mt_bucket) */
            return NULL;
        }
    }
    b->next = NULL;
    b->cap = cap;
    atomic_init(&b->used, 0);
    return b;
}

static void block_publish(cairn_memtable *mt, mt_block *b)
{
    mt_block *head = atomic_load_explicit(&mt->blocks, memory_order_relaxed);
    do {
        b->next = head;
    } while (!atomic_compare_exchange_weak_explicit(
        &mt->blocks, &head, b, memory_order_release, memory_order_relaxed));
    atomic_fetch_add_explicit(&mt->memory, sizeof(mt_block) + b->cap,
                              memory_order_relaxed);
}

/* size must be a multiple of 8. Lock-free; NULL on out of memory. */
static void *arena_alloc(cairn_memtable *mt, size_t size)
{
    if (size > MT_BIG_ALLOC) {
        mt_block *b = block_new(size);
        if (!b)
            return NULL;
        atomic_store_explicit(&b->used, size, memory_order_relaxed);
        block_publish(mt, b);
        return b->data;
    }
    for (;;) {
        mt_block *b = atomic_load_explicit(&mt->cur, memory_order_acquire);
        if (b) {
            /* Cheap check first so a full block's offset does not keep
             * growing while someone replaces it. */
            if (atomic_load_explicit(&b->used, memory_order_relaxed) + size <=
                b->cap) {
                size_t off = atomic_fetch_add_explicit(&b->used, size,
                                                       memory_order_relaxed);
                if (off + size <= b->cap)
                    return (uint8_t *)b->data + off;
            }
        }
        mt_block *nb = block_new(MT_BLOCK_SIZE);
        if (!nb)
            return NULL;
        atomic_store_explicit(&nb->used, size, memory_order_relaxed);
        mt_block *expected = b;
        if (atomic_compare_exchange_strong_explicit(&mt->cur, &expected, nb,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire)) {
            block_publish(mt, nb);
            return nb->data;
        }
        pool_give(nb); /* someone else refilled first; never published */
    }
}

/* ---------- random height ---------- */

static _Atomic uint64_t g_seed_counter;
static _Thread_local uint64_t tl_rng;

static uint64_t splitmix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* 1 + geometric(3/4), capped at MT_MAX_HEIGHT: P(height > h) = 4^-(h-1). */
static int random_height(void)
{
    uint64_t x = tl_rng;
    if (x == 0) {
        uint64_t c =
            atomic_fetch_add_explicit(&g_seed_counter, 1, memory_order_relaxed);
        x = splitmix64(c ^ (uint64_t)(uintptr_t)&tl_rng);
        if (x == 0)
            x = 1;
    }
    x ^= x << 13; /* xorshift64 */
    x ^= x >> 7;
    x ^= x << 17;
    tl_rng = x;
    uint64_t r = x * 0x2545F4914F6CDD1Dull; /* xorshift64* output */
    int h = 1;
    while (h < MT_MAX_HEIGHT && (r >> 62) == 0) { /* 1 in 4 */
        h++;
        r <<= 2;
    }
    return h;
}

/* ---------- lifetime ---------- */

static size_t buckets_for(size_t expected_bytes)
{
    size_t want = expected_bytes / MT_BYTES_PER_BUCKET;
    size_t n = MT_MIN_BUCKETS;
    while (n < want && n < MT_MAX_BUCKETS)
        n <<= 1;
    return n;
}

static cairn_memtable *memtable_create(size_t nbuckets)
{
    size_t sz = (sizeof(cairn_memtable) + 63) & ~(size_t)63;
    cairn_memtable *mt = aligned_alloc(64, sz);
    if (!mt)
        return NULL;
    mt->release_fn = NULL;
    mt->release_arg = NULL;
    mt->head_mem = malloc(MT_MAX_HEIGHT * sizeof(mt_link) + MT_HDR_SIZE);
    if (!mt->head_mem) {
        free(mt);
        return NULL;
    }
    mt->head = (mt_node *)((mt_link *)mt->head_mem + MT_MAX_HEIGHT);
    mt->head->version = 0;
    mt->head->ts_us = 0;
    mt->head->klen = 0;
    mt->head->vlen = 0;
    mt->head->kind = 0;
    mt->head->height = MT_MAX_HEIGHT;
    for (int i = 0; i < MT_MAX_HEIGHT; i++)
        atomic_init(node_link(mt->head, i), NULL);
    atomic_init(&mt->refs, 1);
    atomic_init(&mt->max_height, 1);
    atomic_init(&mt->count, 0);
    atomic_init(&mt->blob_count, 0);
    atomic_init(&mt->max_version, 0);
    atomic_init(&mt->memory, 0);
    atomic_init(&mt->cur, NULL);
    atomic_init(&mt->blocks, NULL);
    atomic_init(&mt->buckets, NULL);
    mt->hmask = nbuckets - 1;
    return mt;
}

cairn_memtable *cairn_memtable_new(void)
{
    return memtable_create(MT_DEFAULT_BUCKETS);
}

cairn_memtable *cairn_memtable_new_sized(size_t expected_bytes)
{
    return memtable_create(buckets_for(expected_bytes));
}

void cairn_memtable_ref(cairn_memtable *mt)
{
    atomic_fetch_add_explicit(&mt->refs, 1, memory_order_relaxed);
}

void cairn_memtable_set_release_hook(cairn_memtable *mt,
                                     void (*fn)(void *arg, cairn_memtable *mt),
                                     void *arg)
{
    mt->release_fn = fn;
    mt->release_arg = arg;
}

uint64_t cairn_memtable_blob_count(const cairn_memtable *mt)
{
    return atomic_load_explicit(&mt->blob_count, memory_order_relaxed);
}

void cairn_memtable_unref(cairn_memtable *mt)
{
    if (!mt)
        return;
    if (atomic_fetch_sub_explicit(&mt->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (mt->release_fn)
        mt->release_fn(mt->release_arg, mt);
    mt_block *b = atomic_load_explicit(&mt->blocks, memory_order_acquire);
    while (b) {
        mt_block *next = b->next;
        pool_give(b);
        b = next;
    }
    arrays_give(atomic_load_explicit(&mt->buckets, memory_order_acquire),
                mt->hmask + 1);
    free(mt->head_mem);
    free(mt);
}

/* ---------- search ---------- */

/* First node >= (key, version), or NULL. */
static mt_node *find_ge(cairn_memtable *mt, const uint8_t *key, size_t klen,
                        uint64_t version)
{
    mt_node *x = mt->head;
    int level = atomic_load_explicit(&mt->max_height, memory_order_relaxed) - 1;
    mt_node *last_bigger = NULL; /* known >= key: skip re-comparing it */
    for (;;) {
        mt_node *next = load_next(x, level);
        if (next && next != last_bigger &&
            node_cmp(next, key, klen, version) < 0) {
            x = next;
        } else {
            if (level == 0)
                return next;
            last_bigger = next;
            level--;
        }
    }
}

/* Walk level `level` from `before` (which is < key) to the pair
 * before < key <= after; `bound` is a node known to be >= key, or NULL. */
static void find_splice_level(const uint8_t *key, size_t klen, uint64_t version,
                              mt_node *before, mt_node *bound, int level,
                              mt_node **out_prev, mt_node **out_next)
{
    for (;;) {
        mt_node *next = load_next(before, level);
        if (next == NULL || next == bound ||
            node_cmp(next, key, klen, version) >= 0) {
            *out_prev = before;
            *out_next = next;
            return;
        }
        before = next;
    }
}

/* ---------- hash index ---------- */

static inline uint64_t key_hash(const uint8_t *key, size_t klen)
{
    return XXH3_64bits(key, klen); /* NULL with length 0 is fine */
}

/* The bucket array, allocating it on first use; NULL on out of memory. */
static mt_bucket *hash_buckets(cairn_memtable *mt)
{
    mt_bucket *b = atomic_load_explicit(&mt->buckets, memory_order_acquire);
    if (b)
        return b;
    size_t n = mt->hmask + 1;
    /* A kept array (zeroed), else calloc: all-zero bits are NULL
     * pointers. memory() counts the whole array. */
    mt_bucket *nb = arrays_take(n);
    if (!nb)
        nb = calloc(n, sizeof(mt_bucket));
    if (!nb)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(
            &mt->buckets, &b, nb, memory_order_acq_rel, memory_order_acquire)) {
        atomic_fetch_add_explicit(&mt->memory, n * sizeof(mt_bucket),
                                  memory_order_relaxed);
        return nb;
    }
    arrays_give(nb, n); /* another insert installed one first */
    return b;
}

/* The entry of (h, key) among the chain from `e` (inclusive) to `stop`
 * (exclusive); NULL if absent. *node gets the entry's node. */
static mt_hent *hash_find(mt_hent *e, const mt_hent *stop, uint64_t h,
                          const uint8_t *key, size_t klen, mt_node **node)
{
    for (; e != stop;
         e = atomic_load_explicit(&e->next, memory_order_acquire)) {
        if (e->hash != h)
            continue;
        mt_node *n = atomic_load_explicit(&e->node, memory_order_acquire);
        if (node_same_key(n, key, klen)) {
            *node = n;
            return e;
        }
    }
    return NULL;
}

/* The node with the newest version of key published in the hash index,
 * NULL if the key has no entry. */
static mt_node *hash_newest(cairn_memtable *mt, const uint8_t *key, size_t klen)
{
    mt_bucket *b = atomic_load_explicit(&mt->buckets, memory_order_acquire);
    if (!b)
        return NULL;
    uint64_t h = key_hash(key, klen);
    uintptr_t v = atomic_load_explicit(&b[h & mt->hmask], memory_order_acquire);
    if (!(v & bucket_tag(h)))
        return NULL;
    mt_hent *head = bucket_head(v);
    mt_node *n = NULL;
    return hash_find(head, NULL, h, key, klen, &n) ? n : NULL;
}

/* Make e->node at least as new as n (n is linked at level 0). */
static void hash_raise(mt_hent *e, mt_node *n)
{
    mt_node *cur = atomic_load_explicit(&e->node, memory_order_acquire);
    while (cur->version < n->version &&
           !atomic_compare_exchange_weak_explicit(
               &e->node, &cur, n, memory_order_release, memory_order_acquire)) {
    }
}

/* Publish n (just linked at level 0) in the hash index. `e` is the key's
 * entry if the pre-link scan found one; otherwise `ne` is the new entry
 * co-allocated with n and `head` the bucket head that scan started from. */
static void hash_publish(mt_bucket *bucket, uintptr_t bv, mt_hent *e,
                         mt_hent *ne, uint64_t h, mt_node *n)
{
    if (!e) {
        ne->hash = h;
        atomic_init(&ne->node, n);
        for (;;) {
            mt_hent *scanned = bucket_head(bv);
            atomic_init(&ne->next, scanned);
            if (atomic_compare_exchange_strong_explicit(
                    bucket, &bv, (uintptr_t)ne | (bv & ~MT_PTR_MASK) |
                                     bucket_tag(h),
                    memory_order_acq_rel, memory_order_acquire))
                return;
            /* Entries pushed since our scan: did one add this key? */
            mt_node *unused;
            e = hash_find(bucket_head(bv), scanned, h, node_key(n), n->klen,
                          &unused);
            if (e)
                break; /* yes: ne stays unpublished (wasted arena bytes) */
        }
    }
    hash_raise(e, n);
}

/* ---------- insert ---------- */

static void update_max_version(cairn_memtable *mt, uint64_t version)
{
    uint64_t cur = atomic_load_explicit(&mt->max_version, memory_order_relaxed);
    while (cur < version && !atomic_compare_exchange_weak_explicit(
                                &mt->max_version, &cur, version,
                                memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* One insert in progress: its arguments, then what the search found. */
typedef struct mt_ins {
    const uint8_t *key;
    size_t klen;
    uint64_t version, ts_us;
    cairn_mt_kind kind;
    const uint8_t *value;
    size_t vlen;
    uint64_t h;
    mt_bucket *bucket;
    int height, list_height;
    /* The search: at `level`, walking from `x` (< key), `bound` known >=
     * key (or NULL); prev/next filled from list_height down. */
    int level;
    mt_node *x, *bound;
    mt_node *prev[MT_MAX_HEIGHT + 1];
    mt_node *next[MT_MAX_HEIGHT + 1];
} mt_ins;

/* Check the arguments, take the bucket array, the key's hash, the new
 * node's height (raising max_height if need be) and set up the search. */
static int ins_prepare(cairn_memtable *mt, mt_ins *in, const void *key,
                       size_t klen, uint64_t version, uint64_t ts_us,
                       cairn_mt_kind kind, const void *value, size_t vlen)
{
    if (version == 0 || (!key && klen) || (!value && vlen) ||
        (kind != CAIRN_MT_PUT && kind != CAIRN_MT_DELETE &&
         kind != CAIRN_MT_BLOB) ||
        (kind == CAIRN_MT_DELETE && vlen))
        return CAIRN_EINVAL;
    mt_bucket *buckets = hash_buckets(mt);
    if (!buckets)
        return CAIRN_ENOMEM;
    in->key = key;
    in->klen = klen;
    in->version = version;
    in->ts_us = ts_us;
    in->kind = kind;
    in->value = value;
    in->vlen = vlen;
    in->h = key_hash(key, klen);
    in->bucket = &buckets[in->h & mt->hmask];
    int height = random_height();
    int list_height =
        atomic_load_explicit(&mt->max_height, memory_order_relaxed);
    while (height > list_height) {
        if (atomic_compare_exchange_weak_explicit(&mt->max_height, &list_height,
                                                  height, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            list_height = height;
            break;
        }
    }
    in->height = height;
    in->list_height = list_height;
    /* Splice for every level up to list_height (>= height). */
    in->prev[list_height] = mt->head;
    in->next[list_height] = NULL;
    in->level = list_height - 1;
    in->x = mt->head;
    in->bound = NULL;
    return 0;
}

/* One step of the search: compare the node after x at the current level
 * with the key and move right, or record the splice and go down. Returns
 * false once level 0's splice is recorded. Before returning true it
 * prefetches the node the next step compares, so a caller stepping several
 * searches in turn overlaps their cache misses. */
static inline bool ins_step(mt_ins *in)
{
    mt_node *next = load_next(in->x, in->level);
    if (next == NULL || next == in->bound ||
        node_cmp(next, in->key, in->klen, in->version) >= 0) {
        in->prev[in->level] = in->x;
        in->next[in->level] = next;
        in->bound = next;
        if (in->level-- == 0)
            return false;
    } else {
        in->x = next;
    }
    mt_node *c = load_next(in->x, in->level);
    if (c && c != in->bound) {
        __builtin_prefetch(c);
        __builtin_prefetch((const uint8_t *)c + 63);
    }
    return true;
}

/* After the search: allocate the node (and the key's hash entry if it has
 * none yet), link it bottom up, publish it in the hash index. */
static int ins_link(cairn_memtable *mt, mt_ins *in)
{
    const uint8_t *key = in->key;
    size_t klen = in->klen, vlen = in->vlen;
    uint64_t version = in->version, h = in->h;
    mt_node **prev = in->prev, **next = in->next;
    if (next[0] && node_cmp(next[0], key, klen, version) == 0)
        return CAIRN_EEXIST; /* common case: found before allocating */

    /* Does the key have a hash entry yet? If not, one is allocated with the
     * node (so nothing can fail after the node is linked). */
    uintptr_t bv = atomic_load_explicit(in->bucket, memory_order_acquire);
    mt_node *unused;
    mt_hent *he = (bv & bucket_tag(h))
                      ? hash_find(bucket_head(bv), NULL, h, key, klen, &unused)
                      : NULL;
    size_t pre = he ? 0 : MT_HENT_SIZE;

    /* [entry] + links + header + key + value, rounded up to 8. */
    int height = in->height;
    size_t links = pre + (size_t)height * sizeof(mt_link);
    size_t hdr = links + MT_HDR_SIZE;
    if (klen > SIZE_MAX - hdr - 8 || vlen > SIZE_MAX - hdr - 8 - klen)
        return CAIRN_ENOMEM;
    size_t size = (hdr + klen + vlen + 7) & ~(size_t)7;
    uint8_t *mem = arena_alloc(mt, size);
    if (!mem)
        return CAIRN_ENOMEM;
    mt_hent *ne = he ? NULL : (mt_hent *)mem;
    mt_node *n = (mt_node *)(mem + links);
    n->version = version;
    n->ts_us = in->ts_us;
    n->klen = klen;
    n->vlen = vlen;
    n->kind = (uint8_t)in->kind;
    n->height = (uint8_t)height;
    uint8_t *kp = (uint8_t *)n + MT_HDR_SIZE;
    if (klen)
        memcpy(kp, key, klen);
    if (vlen)
        memcpy(kp + klen, in->value, vlen);

    for (int i = 0; i < height; i++) {
        for (;;) {
            if (i == 0 && next[0] && node_cmp(next[0], key, klen, version) == 0)
                return CAIRN_EEXIST; /* lost a race; n stays unlinked (wasted)
                                      */
            atomic_store_explicit(node_link(n, i), next[i],
                                  memory_order_relaxed);
            mt_node *expected = next[i];
            if (atomic_compare_exchange_strong_explicit(
                    node_link(prev[i], i), &expected, n, memory_order_release,
                    memory_order_relaxed))
                break;
            /* prev[i] is still < key: re-search this level from it. */
            find_splice_level(key, klen, version, prev[i], NULL, i, &prev[i],
                              &next[i]);
        }
        if (i == 0) {
            atomic_fetch_add_explicit(&mt->count, 1, memory_order_relaxed);
            if (in->kind == CAIRN_MT_BLOB)
                atomic_fetch_add_explicit(&mt->blob_count, 1,
                                          memory_order_relaxed);
            update_max_version(mt, version);
            hash_publish(in->bucket, bv, he, ne, h, n);
        }
    }
    return 0;
}

int cairn_memtable_insert(cairn_memtable *mt, const void *key, size_t klen,
                          uint64_t version, uint64_t ts_us, cairn_mt_kind kind,
                          const void *value, size_t vlen)
{
    mt_ins in;
    int rc = ins_prepare(mt, &in, key, klen, version, ts_us, kind, value,
                         vlen);
    if (rc)
        return rc;
    while (ins_step(&in)) {
    }
    return ins_link(mt, &in);
}

/* Searches stepped in turn by cairn_memtable_insert_batch. */
#define MT_BATCH_WAYS 8

void cairn_memtable_insert_batch(cairn_memtable *mt, const cairn_mt_write *w,
                                 size_t n, int *rcs)
{
    mt_ins in[MT_BATCH_WAYS];
    for (size_t base = 0; base < n; base += MT_BATCH_WAYS) {
        size_t m = n - base < MT_BATCH_WAYS ? n - base : MT_BATCH_WAYS;
        bool live[MT_BATCH_WAYS];
        size_t nlive = 0;
        for (size_t j = 0; j < m; j++) {
            const cairn_mt_write *x = &w[base + j];
            rcs[base + j] = ins_prepare(mt, &in[j], x->key, x->klen,
                                        x->version, x->ts_us, x->kind,
                                        x->value, x->vlen);
            live[j] = rcs[base + j] == 0;
            nlive += live[j];
        }
        /* Each search waits on a cache miss per step; stepping them in
         * turn lets those misses overlap. */
        while (nlive > 0)
            for (size_t j = 0; j < m; j++)
                if (live[j] && !ins_step(&in[j])) {
                    live[j] = false;
                    nlive--;
                }
        /* Link in order. A node an earlier link put inside a later
         * insert's splice fails that insert's CAS, which re-searches the
         * level from its prev (still before its key): as with any other
         * concurrent insert. */
        for (size_t j = 0; j < m; j++)
            if (rcs[base + j] == 0)
                rcs[base + j] = ins_link(mt, &in[j]);
    }
}

/* ---------- reads ---------- */

static void fill_entry(const mt_node *n, cairn_mt_entry *out)
{
    out->key = node_key(n);
    out->klen = n->klen;
    out->version = n->version;
    out->ts_us = n->ts_us;
    out->kind = (cairn_mt_kind)n->kind;
    if (n->kind == CAIRN_MT_DELETE) {
        out->value = NULL;
        out->vlen = 0;
    } else {
        out->value = node_value(n);
        out->vlen = n->vlen;
    }
}

bool cairn_memtable_get(cairn_memtable *mt, const void *key_, size_t klen,
                        uint64_t max_version, uint64_t max_ts,
                        cairn_mt_entry *out)
{
    const uint8_t *key = key_;
    if (!key && klen)
        return false;
    mt_node *n = hash_newest(mt, key, klen);
    if (!n)
        return false;
    /* Skip versions above max_version (they come first); if there are many,
     * descend the skiplist to (key, max_version) instead. */
    for (int skipped = 0; n->version > max_version; skipped++) {
        if (skipped == MT_GET_SKIP) {
            n = find_ge(mt, key, klen, max_version);
            break;
        }
        n = load_next(n, 0);
        if (!n || !node_same_key(n, key, klen))
            return false;
    }
    /* Versions descend from here: the first with ts <= max_ts is newest. */
    for (; n && node_same_key(n, key, klen); n = load_next(n, 0)) {
        if (n->ts_us <= max_ts) {
            if (out)
                fill_entry(n, out);
            return true;
        }
    }
    return false;
}

void cairn_memtable_prefetch(cairn_memtable *mt, uint64_t hash)
{
    mt_bucket *b = atomic_load_explicit(&mt->buckets, memory_order_acquire);
    if (b)
        __builtin_prefetch(&b[hash & mt->hmask]);
}

void cairn_memtable_prefetch_entry(cairn_memtable *mt, uint64_t hash)
{
    mt_bucket *b = atomic_load_explicit(&mt->buckets, memory_order_acquire);
    if (!b)
        return;
    uintptr_t v = atomic_load_explicit(&b[hash & mt->hmask],
                                       memory_order_acquire);
    if (!(v & bucket_tag(hash)))
        return; /* absent: the bucket said so */
    /* The chain's head entry (arena memory: valid while mt lives), and the
     * line after it, where a key's first node sits (co-allocated). */
    const char *e = (const char *)bucket_head(v);
    __builtin_prefetch(e);
    __builtin_prefetch(e + 64);
}

uint64_t cairn_memtable_latest_version(cairn_memtable *mt, const void *key,
                                       size_t klen)
{
    if (!key && klen)
        return 0;
    mt_node *n = hash_newest(mt, key, klen);
    return n ? n->version : 0;
}

size_t cairn_memtable_memory(const cairn_memtable *mt)
{
    return atomic_load_explicit(&mt->memory, memory_order_relaxed);
}

uint64_t cairn_memtable_count(const cairn_memtable *mt)
{
    return atomic_load_explicit(&mt->count, memory_order_relaxed);
}

uint64_t cairn_memtable_max_version(const cairn_memtable *mt)
{
    return atomic_load_explicit(&mt->max_version, memory_order_relaxed);
}

/* ---------- iterator ---------- */

void cairn_mt_iter_init(cairn_mt_iter *it, cairn_memtable *mt)
{
    it->mt = mt;
    it->node = NULL;
}

void cairn_mt_iter_seek_first(cairn_mt_iter *it)
{
    it->node = load_next(it->mt->head, 0);
}

void cairn_mt_iter_seek(cairn_mt_iter *it, const void *key, size_t klen,
                        uint64_t version)
{
    it->node = find_ge(it->mt, key, klen, version);
}

bool cairn_mt_iter_valid(const cairn_mt_iter *it)
{
    return it->node != NULL;
}

void cairn_mt_iter_next(cairn_mt_iter *it)
{
    it->node = load_next(it->node, 0);
}

void cairn_mt_iter_entry(const cairn_mt_iter *it, cairn_mt_entry *out)
{
    fill_entry(it->node, out);
}

/* ---------- backward positioning ---------- */

/* The last node < (key, version) (or <= with inclusive), NULL if none: the
 * mirror of find_ge. Each level is a sorted list and nodes never vanish, so
 * the descent only ever moves right over nodes that stay before the target;
 * a node linked concurrently at some level is either seen there or not,
 * both of which give a node that is before the target (and level 0 is
 * walked to its end, so the answer is the last such node reachable then). */
static mt_node *find_before(cairn_memtable *mt, const uint8_t *key,
                            size_t klen, uint64_t version, bool inclusive)
{
    mt_node *x = mt->head;
    int level = atomic_load_explicit(&mt->max_height, memory_order_relaxed) - 1;
    mt_node *last_bigger = NULL; /* known past the target at a higher level */
    for (;;) {
        mt_node *next = load_next(x, level);
        int c = 1;
        if (next && next != last_bigger)
            c = node_cmp(next, key, klen, version);
        if (c < 0 || (inclusive && c == 0)) {
            x = next;
        } else {
            if (level == 0)
                return x == mt->head ? NULL : x;
            last_bigger = next;
            level--;
        }
    }
}

void cairn_mt_iter_seek_last(cairn_mt_iter *it)
{
    cairn_memtable *mt = it->mt;
    mt_node *x = mt->head;
    int level = atomic_load_explicit(&mt->max_height, memory_order_relaxed) - 1;
    for (;;) {
        mt_node *next = load_next(x, level);
        if (next) {
            x = next;
        } else {
            if (level == 0)
                break;
            level--;
        }
    }
    it->node = x == mt->head ? NULL : x;
}

void cairn_mt_iter_seek_for_prev(cairn_mt_iter *it, const void *key,
                                 size_t klen, uint64_t version)
{
    it->node = find_before(it->mt, key, klen, version, true);
}

void cairn_mt_iter_prev(cairn_mt_iter *it)
{
    const mt_node *n = it->node;
    it->node = find_before(it->mt, node_key(n), n->klen, n->version, false);
}
