/*
 * bloom.h — the bloom filter of a sorted file: one filter per file over its
 * distinct user keys, XXH3 double hashing (format: docs/format/sst.md,
 * "Filter block").
 *
 * A filter is a byte string: kind (1 = this bloom), k (probes per key), then
 * the bit array. Building takes the 64-bit hashes of the keys (so a builder
 * keeps 8 bytes per distinct key, not the keys); probing hashes the key.
 *
 * Invariants: a key whose hash was added is always reported "may contain"
 * (no false negatives). At 10 bits per key (k = 7) about 1% of absent keys
 * are reported too.
 *
 * Locking: none. Filters are immutable byte strings; any number of threads
 * may probe one at once.
 */
#ifndef CAIRN_SST_BLOOM_H
#define CAIRN_SST_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CAIRN_BLOOM_KIND 1      /* the only filter kind of format version 1 */
#define CAIRN_BLOOM_MAX_PROBES 30

/* The hash the filter uses for a key: XXH3_64bits(key, seed 0). */
uint64_t cairn_bloom_hash(const void *key, size_t klen);

/* Probes per key for bits_per_key: round(bits_per_key * ln 2) in 1..30. */
unsigned cairn_bloom_probes(unsigned bits_per_key);

/* Size in bytes of the filter for n keys at bits_per_key (header included):
 * 2 + ceil(max(64, n * bits_per_key) / 8). bits_per_key must be >= 1. */
size_t cairn_bloom_size(size_t n, unsigned bits_per_key);

/* Build the filter of n hashes into out, which has cairn_bloom_size(n,
 * bits_per_key) bytes. Duplicate hashes are harmless. */
void cairn_bloom_build(const uint64_t *hashes, size_t n, unsigned bits_per_key,
                       uint8_t *out);

/* Check a filter read from a file: 0 if usable, 1 if its kind is unknown (a
 * newer writer: treat every key as maybe present), CAIRN_ECORRUPT if it is a
 * bloom filter with a bad header (k out of range, no bits). */
int cairn_bloom_check(const uint8_t *filter, size_t len);

/* May a key with this hash be in the set? filter must have passed
 * cairn_bloom_check with 0. */
bool cairn_bloom_may_contain(const uint8_t *filter, size_t len, uint64_t hash);

#endif /* CAIRN_SST_BLOOM_H */
