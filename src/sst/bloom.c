/*
 * bloom.c — the bloom filters of sorted files (see bloom.h and
 * docs/format/sst.md). Kind 1: key i's probes are bits (h1 + j*h2) mod m,
 * j < k, where h1 and h2 are the low and high 32 bits of XXH3_64bits(key):
 * two independent hashes from one call (Kirsch and Mitzenmacher); the sums
 * stay below 2^37, so no wrap-around bias. Kind 2 (written now): the high
 * 32 bits pick a 512-bit block (multiply-shift, no division), the low 32
 * bits, multiplied by an odd constant before each probe, give the k bit
 * positions in it from their top 9 bits: one cache line per lookup.
 *
 * Locking: none (pure functions over caller-owned bytes).
 */
#include "sst/bloom.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cairn.h"

uint64_t cairn_bloom_hash(const void *key, size_t klen)
{
    return XXH3_64bits(klen ? key : "", klen);
}

unsigned cairn_bloom_probes(unsigned bits_per_key)
{
    /* round(bits * ln 2), in integer arithmetic: ln 2 ~ 0.693147 */
    unsigned k = (unsigned)(((uint64_t)bits_per_key * 693147u + 500000u) /
                            1000000u);
    if (k < 1)
        k = 1;
    if (k > CAIRN_BLOOM_MAX_PROBES)
        k = CAIRN_BLOOM_MAX_PROBES;
    return k;
}

/* Kind 2: the block of a hash (top 32 bits, scaled to nblocks without a
 * division) and its probes: the low 32 bits, remixed by an odd multiplier
 * before each probe, give a 9-bit position from their top bits. */
#define BLOCK_BITS 512u
#define BLOCK_MIX 0x9E3779B9u

static inline uint64_t block_of(uint64_t hash, uint64_t nblocks)
{
    return ((hash >> 32) * nblocks) >> 32;
}

size_t cairn_bloom_size(int kind, size_t n, unsigned bits_per_key)
{
    uint64_t bits = (uint64_t)n * bits_per_key;
    if (kind == CAIRN_BLOOM_KIND_BLOCKED) {
        uint64_t nb = (bits + BLOCK_BITS - 1) / BLOCK_BITS;
        if (nb < 1)
            nb = 1;
        if (nb > (UINT64_C(1) << 32) / BLOCK_BITS) /* m below 2^32 bits */
            nb = (UINT64_C(1) << 32) / BLOCK_BITS - 1;
        return 2 + (size_t)nb * (BLOCK_BITS / 8);
    }
    if (kind != CAIRN_BLOOM_KIND_DOUBLE)
        return 0;
    if (bits < 64)
        bits = 64;
    /* m stays below 2^32 bits (512 MiB of filter, ~400M keys at 10 bits). */
    if (bits > UINT64_C(0xFFFFFFF8))
        bits = UINT64_C(0xFFFFFFF8);
    return 2 + (size_t)((bits + 7) / 8);
}

void cairn_bloom_build(int kind, const uint64_t *hashes, size_t n,
                       unsigned bits_per_key, uint8_t *out)
{
    size_t len = cairn_bloom_size(kind, n, bits_per_key);
    unsigned k = cairn_bloom_probes(bits_per_key);
    uint64_t m = (uint64_t)(len - 2) * 8;
    uint8_t *bits = out + 2;
    out[0] = (uint8_t)kind;
    out[1] = (uint8_t)k;
    memset(bits, 0, len - 2);
    if (kind == CAIRN_BLOOM_KIND_BLOCKED) {
        uint64_t nblocks = m / BLOCK_BITS;
        for (size_t i = 0; i < n; i++) {
            uint8_t *blk = bits + block_of(hashes[i], nblocks) * (BLOCK_BITS / 8);
            uint32_t x = (uint32_t)hashes[i];
            for (unsigned j = 0; j < k; j++) {
                x *= BLOCK_MIX;
                unsigned b = x >> 23;
                blk[b >> 3] |= (uint8_t)(1u << (b & 7));
            }
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t h1 = hashes[i] & 0xFFFFFFFFu, h2 = hashes[i] >> 32;
        for (unsigned j = 0; j < k; j++) {
            uint64_t b = (h1 + j * h2) % m;
            bits[b >> 3] |= (uint8_t)(1u << (b & 7));
        }
    }
}

const uint8_t *cairn_bloom_aligned_copy(const uint8_t *filter, size_t len,
                                        void **mem)
{
    /* 62 bytes of padding in front: the header ends at offset 64. */
    size_t total = (62 + len + 63) / 64 * 64;
    uint8_t *p = aligned_alloc(64, total);
    *mem = p;
    if (!p)
        return NULL;
    memcpy(p + 62, filter, len);
    return p + 62;
}

int cairn_bloom_check(const uint8_t *filter, size_t len)
{
    if (len < 1)
        return CAIRN_ECORRUPT;
    if (filter[0] != CAIRN_BLOOM_KIND_DOUBLE &&
        filter[0] != CAIRN_BLOOM_KIND_BLOCKED)
        return 1;
    if (len < 3 || filter[1] < 1 || filter[1] > CAIRN_BLOOM_MAX_PROBES)
        return CAIRN_ECORRUPT;
    if (filter[0] == CAIRN_BLOOM_KIND_BLOCKED &&
        ((len - 2) % (BLOCK_BITS / 8) != 0 ||
         (uint64_t)(len - 2) * 8 >= (UINT64_C(1) << 32)))
        return CAIRN_ECORRUPT;
    return 0;
}

void cairn_bloom_prefetch(const uint8_t *filter, size_t len, uint64_t hash)
{
    if (len < 3)
        return;
    uint64_t m = (uint64_t)(len - 2) * 8;
    const uint8_t *bits = filter + 2;
    if (filter[0] == CAIRN_BLOOM_KIND_BLOCKED)
        __builtin_prefetch(bits + block_of(hash, m / BLOCK_BITS) *
                                      (BLOCK_BITS / 8));
    else
        __builtin_prefetch(bits + ((hash & 0xFFFFFFFFu) % m) / 8);
}

bool cairn_bloom_may_contain(const uint8_t *filter, size_t len, uint64_t hash)
{
    unsigned k = filter[1];
    uint64_t m = (uint64_t)(len - 2) * 8;
    const uint8_t *bits = filter + 2;
    if (filter[0] == CAIRN_BLOOM_KIND_BLOCKED) {
        const uint8_t *blk =
            bits + block_of(hash, m / BLOCK_BITS) * (BLOCK_BITS / 8);
        uint32_t x = (uint32_t)hash;
        for (unsigned j = 0; j < k; j++) {
            x *= BLOCK_MIX;
            unsigned b = x >> 23;
            if (!(blk[b >> 3] & (1u << (b & 7))))
                return false;
        }
        return true;
    }
    uint64_t h1 = hash & 0xFFFFFFFFu, h2 = hash >> 32;
    for (unsigned j = 0; j < k; j++) {
        uint64_t b = (h1 + j * h2) % m;
        if (!(bits[b >> 3] & (1u << (b & 7))))
            return false;
    }
    return true;
}
