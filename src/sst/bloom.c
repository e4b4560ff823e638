/*
 * bloom.c — bloom filters with XXH3 double hashing (see bloom.h and
 * docs/format/sst.md). Key i's probes are bits (h1 + j*h2) mod m, j < k,
 * where h1 and h2 are the low and high 32 bits of XXH3_64bits(key): two
 * independent hashes from one call (Kirsch and Mitzenmacher). The sums stay
 * below 2^37, so no wrap-around bias.
 *
 * Locking: none (pure functions over caller-owned bytes).
 */
#include "sst/bloom.h"

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

size_t cairn_bloom_size(size_t n, unsigned bits_per_key)
{
    uint64_t bits = (uint64_t)n * bits_per_key;
    if (bits < 64)
        bits = 64;
    /* m stays below 2^32 bits (512 MiB of filter, ~400M keys at 10 bits). */
    if (bits > UINT64_C(0xFFFFFFF8))
        bits = UINT64_C(0xFFFFFFF8);
    return 2 + (size_t)((bits + 7) / 8);
}

void cairn_bloom_build(const uint64_t *hashes, size_t n, unsigned bits_per_key,
                       uint8_t *out)
{
    size_t len = cairn_bloom_size(n, bits_per_key);
    unsigned k = cairn_bloom_probes(bits_per_key);
    uint64_t m = (uint64_t)(len - 2) * 8;
    uint8_t *bits = out + 2;
    out[0] = CAIRN_BLOOM_KIND;
    out[1] = (uint8_t)k;
    memset(bits, 0, len - 2);
    for (size_t i = 0; i < n; i++) {
        uint64_t h1 = hashes[i] & 0xFFFFFFFFu, h2 = hashes[i] >> 32;
        for (unsigned j = 0; j < k; j++) {
            uint64_t b = (h1 + j * h2) % m;
            bits[b >> 3] |= (uint8_t)(1u << (b & 7));
        }
    }
}

int cairn_bloom_check(const uint8_t *filter, size_t len)
{
    if (len < 1)
        return CAIRN_ECORRUPT;
    if (filter[0] != CAIRN_BLOOM_KIND)
        return 1;
    if (len < 3 || filter[1] < 1 || filter[1] > CAIRN_BLOOM_MAX_PROBES)
        return CAIRN_ECORRUPT;
    return 0;
}

bool cairn_bloom_may_contain(const uint8_t *filter, size_t len, uint64_t hash)
{
    unsigned k = filter[1];
    uint64_t m = (uint64_t)(len - 2) * 8;
    const uint8_t *bits = filter + 2;
    uint64_t h1 = hash & 0xFFFFFFFFu, h2 = hash >> 32;
    for (unsigned j = 0; j < k; j++) {
        uint64_t b = (h1 + j * h2) % m;
        if (!(bits[b >> 3] & (1u << (b & 7))))
            return false;
    }
    return true;
}
