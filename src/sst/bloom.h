/*
 * bloom.h — the bloom filter of a sorted file: one filter per file over its
 * distinct user keys (format: docs/format/sst.md, "Filter block").
 *
 * A filter is a byte string: kind, k (probes per key), then the bit array.
 * Kind 1: XXH3 double hashing over the whole array (k probes, k cache
 * misses, a 64-bit modulo each). Kind 2, what writers make: blocked, each
 * key's k bits inside one 512-bit block (one cache line when the array is
 * 64-byte aligned: readers keep filters in cairn_bloom_aligned_copy). Readers take both.
 * Building takes the 64-bit hashes of the keys (so a builder keeps 8 bytes
 * per distinct key, not the keys); probing hashes the key.
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

#define CAIRN_BLOOM_KIND_DOUBLE 1  /* double hashing over the whole array */
#define CAIRN_BLOOM_KIND_BLOCKED 2 /* k bits in one 512-bit block */
#define CAIRN_BLOOM_KIND CAIRN_BLOOM_KIND_BLOCKED /* what writers make */
#define CAIRN_BLOOM_MAX_PROBES 30

/* The hash the filter uses for a key: XXH3_64bits(key, seed 0). */
uint64_t cairn_bloom_hash(const void *key, size_t klen);

/* A hint that hash is about to be tested against filter: starts loading
 * the filter's bytes that test reads first. */
void cairn_bloom_prefetch(const uint8_t *filter, size_t len, uint64_t hash);

/* Probes per key for bits_per_key: round(bits_per_key * ln 2) in 1..30. */
unsigned cairn_bloom_probes(unsigned bits_per_key);

/* Size in bytes of a filter of that kind for n keys at bits_per_key
 * (header included): kind 1, 2 + ceil(max(64, n * bits_per_key) / 8);
 * kind 2, 2 + 64 * ceil(max(512, n * bits_per_key) / 512). bits_per_key
 * must be >= 1; 0 for an unknown kind. */
size_t cairn_bloom_size(int kind, size_t n, unsigned bits_per_key);

/* Build the filter of n hashes into out, which has cairn_bloom_size(kind,
 * n, bits_per_key) bytes. Duplicate hashes are harmless. */
void cairn_bloom_build(int kind, const uint64_t *hashes, size_t n,
                       unsigned bits_per_key, uint8_t *out);

/* A copy of a filter whose bit array starts on a 64-byte boundary (so each
 * probe of a kind 2 filter touches one cache line). *mem gets what to free;
 * returns the filter's first byte inside it (NULL on out of memory). */
const uint8_t *cairn_bloom_aligned_copy(const uint8_t *filter, size_t len,
                                        void **mem);

/* Check a filter read from a file: 0 if usable, 1 if its kind is unknown (a
 * newer writer: treat every key as maybe present), CAIRN_ECORRUPT if it is a
 * bloom filter with a bad header (k out of range, no bits, a kind 2 array
 * that is not whole blocks). */
int cairn_bloom_check(const uint8_t *filter, size_t len);

/* May a key with this hash be in the set? filter must have passed
 * cairn_bloom_check with 0. */
bool cairn_bloom_may_contain(const uint8_t *filter, size_t len, uint64_t hash);

#endif /* CAIRN_SST_BLOOM_H */
