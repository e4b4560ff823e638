/*
 * sst.h — sorted files: the immutable, compressed, checksummed files the
 * tree (lsm/) writes on flush and compaction. Format, byte by byte:
 * docs/format/sst.md.
 *
 * Entries are the memtable's: (user key, version, commit timestamp, kind,
 * value), in internal order — user key ascending (memcmp, on a common prefix
 * the shorter first), then version DESCENDING. A (key, version) pair occurs
 * at most once in a file.
 *
 * Builder: cairn_sst_builder_new creates the file (exclusively), entries are
 * added in strictly increasing internal order, cairn_sst_builder_finish
 * writes the meta blocks and the footer and fdatasyncs the file (the caller
 * syncs the directory). finish and abandon both free the builder; a builder
 * that fails or is abandoned removes its file. One thread at a time.
 *
 * Reader: cairn_sst_open reads and verifies the footer, index, filter and
 * properties and keeps them in memory; data blocks are read on demand, each
 * verified by its checksum, through the block cache when one is given (key
 * (file_id, block offset), charge = decoded block size) or into memory the
 * caller's iterator / pin owns.
 *
 * Errors: negative CAIRN_E* codes. Damage is CAIRN_ECORRUPT (never wrong
 * data); a file from a newer format is CAIRN_EVERSION. Functions that can
 * meet damage take `char *errmsg` (NULL, or room for CAIRN_SST_ERRMSG_LEN
 * bytes): on failure it receives a message naming the file and the byte
 * offset of the damaged block. Iterators keep their own message
 * (cairn_sst_iter_errmsg).
 *
 * Threading: a reader is immutable after open. Any number of threads may
 * call get / may_contain / props and run iterators on one reader at once
 * (each iterator belongs to one thread at a time); only the block cache is
 * shared, and it is thread-safe. cairn_sst_close must come after every other
 * call on the reader has returned, every iterator is freed and every pin is
 * released.
 */
#ifndef CAIRN_SST_SST_H
#define CAIRN_SST_SST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cache/block_cache.h"
#include "env/env.h"
#include "util/hist.h"

#define CAIRN_SST_FORMAT_VERSION 1
#define CAIRN_SST_ERRMSG_LEN 256
#define CAIRN_SST_MAX_KEY ((size_t)16 << 20)   /* 16 MiB */
#define CAIRN_SST_MAX_VALUE ((size_t)1 << 30)  /* 1 GiB */

typedef struct cairn_sst_builder cairn_sst_builder;
typedef struct cairn_sst_reader cairn_sst_reader;
typedef struct cairn_sst_iter cairn_sst_iter;

/* Entry kinds: the same values as the memtable's CAIRN_MT_PUT/DELETE. */
/* CAIRN_SST_BLOB (3): a put whose value is stored out of line; the entry's
 * value is the blob reference record (docs/format/blob.md). */
typedef enum {
    CAIRN_SST_PUT = 1,
    CAIRN_SST_DELETE = 2,
    CAIRN_SST_BLOB = 3
} cairn_sst_kind;

/* Block codecs; values are the on-disk block types. */
typedef enum {
    CAIRN_SST_CODEC_NONE = 0,
    CAIRN_SST_CODEC_LZ4 = 1,
    CAIRN_SST_CODEC_ZSTD = 2,
} cairn_sst_codec;

typedef struct cairn_sst_options {
    size_t block_size;         /* 4096: target raw size of a data block
                                  (1 .. 256 MiB) */
    uint32_t restart_interval; /* 16: entries between restart points (>= 1) */
    cairn_sst_codec codec;     /* CAIRN_SST_CODEC_LZ4 */
    int zstd_level;            /* 3 (used with CAIRN_SST_CODEC_ZSTD) */
    uint32_t bloom_bits_per_key; /* 10 (about 1% false positives); 0 = no
                                    filter; at most 64 */
    uint8_t bloom_kind; /* 0: the current kind (CAIRN_BLOOM_KIND, blocked);
                           CAIRN_BLOOM_KIND_DOUBLE writes the older kind
                           (tests of the readers of older files) */
    size_t write_buffer_size;  /* 256 KiB: bytes gathered per write (>= 64 KiB
                                  is enforced) */
    /* NULL: none. Else each data block written also goes into this cache,
     * decoded as a reader of the file (opened with file id fill_file_id)
     * would cache it, while the cache has room for it without evicting
     * anything: data just written is read back from memory, and a new file
     * pushes out nothing that is read. An abandoned builder takes its
     * blocks out again. */
    cairn_block_cache *fill_cache;
    uint64_t fill_file_id;
} cairn_sst_options;

/* Fill *opt with the defaults above. */
void cairn_sst_options_init(cairn_sst_options *opt);

/* Put data block raw[0, n) of file file_id, written at offset off, into
 * cache c decoded, if c has room for it without evicting anything (see
 * cairn_sst_options.fill_cache). The block is trusted (its writer built
 * it). Nothing happens when it does not fit or memory is short. */
void cairn_sst_cache_fill(cairn_block_cache *c, uint64_t file_id,
                          uint64_t off, const uint8_t *raw, size_t n);

/* One entry. key/value point into memory owned by whoever returned it (see
 * each function). value is NULL (vlen 0) for deletes, non-NULL for puts. */
typedef struct cairn_sst_entry {
    const uint8_t *key;
    size_t klen;
    uint64_t version;
    uint64_t ts_us;
    cairn_sst_kind kind;
    const uint8_t *value;
    size_t vlen;
} cairn_sst_entry;

/* What a file holds (the properties block, plus a few sizes from the
 * footer). With entries == 0 the key, version and timestamp fields are 0. */
typedef struct cairn_sst_props {
    uint64_t entries;
    uint64_t deletes;         /* tombstones among entries */
    uint64_t distinct_keys;   /* distinct user keys */
    uint64_t min_version, max_version;
    uint64_t min_ts, max_ts;
    uint64_t raw_key_bytes;   /* sum of user key lengths over entries */
    uint64_t raw_value_bytes; /* sum of value lengths over entries */
    uint64_t raw_data_size;   /* uncompressed data block bytes */
    uint64_t stored_data_size; /* data block bytes in the file (trailers
                                  included) */
    uint64_t data_blocks;
    uint64_t creation_ts_us;
    uint64_t block_size;      /* target data block size */
    uint32_t restart_interval;
    uint32_t bloom_bits_per_key;
    cairn_sst_codec codec;
    int zstd_level;
    uint64_t file_size;       /* whole file, footer included */
    uint64_t filter_size;     /* stored bytes of the filter block (0: none) */
    uint64_t index_size;      /* stored bytes of the index block */
    /* Smallest and largest entry (user key, version). From a reader: owned
     * by the reader. From cairn_sst_builder_finish: malloc'ed copies, freed
     * by cairn_sst_props_clear. */
    uint8_t *smallest_key;
    size_t smallest_klen;
    uint64_t smallest_version;
    uint8_t *largest_key;
    size_t largest_klen;
    uint64_t largest_version;
} cairn_sst_props;

/* Free the keys of props filled by cairn_sst_builder_finish and zero it.
 * Never call it on a reader's props. */
void cairn_sst_props_clear(cairn_sst_props *props);

/* ------------------------------------------------------------------------
 * Builder (one thread at a time)
 * ------------------------------------------------------------------------ */

/* Create path exclusively (CAIRN_EEXIST if it exists) and start a file.
 * opt NULL = defaults; CAIRN_EINVAL for a bad option (block_size 0 or over
 * 256 MiB, restart_interval 0, unknown codec, zstd level out of range,
 * bloom_bits_per_key > 64). */
int cairn_sst_builder_new(cairn_env *env, const char *path,
                          const cairn_sst_options *opt,
                          cairn_sst_builder **out);

/* Append an entry; it must come strictly after the previous one in internal
 * order. The bytes are copied. Returns 0; CAIRN_EINVAL (out of order, kind
 * not PUT/DELETE, a delete with vlen > 0, NULL with a non-zero length: the
 * entry is refused and the builder goes on); CAIRN_ETOOLARGE (key over
 * CAIRN_SST_MAX_KEY or value over CAIRN_SST_MAX_VALUE: refused likewise);
 * CAIRN_ENOMEM / CAIRN_EIO / CAIRN_ENOSPC (the builder has failed: every
 * later add and finish returns that error; abandon it). */
int cairn_sst_builder_add(cairn_sst_builder *b, const void *key, size_t klen,
                          uint64_t version, uint64_t ts_us, cairn_sst_kind kind,
                          const void *value, size_t vlen);

/* Write the last data block, the filter, index, properties and metaindex
 * blocks and the footer, then cairn_file_sync(CAIRN_SYNC_DATA) and close.
 * The directory is NOT synced: the caller does it. props_out (may be NULL)
 * receives the file's properties (release with cairn_sst_props_clear). The
 * builder is freed in every case; on failure the file is removed and
 * *props_out is zeroed. A file with no entries is valid. */
int cairn_sst_builder_finish(cairn_sst_builder *b, cairn_sst_props *props_out);

/* Close and remove the file, free the builder. NULL is a no-op. */
void cairn_sst_builder_abandon(cairn_sst_builder *b);

/* Bytes of the file so far: every data block already closed (written or
 * buffered). Lags the final size by up to one block plus the meta blocks, so
 * a caller cuts output files when this passes its target. */
uint64_t cairn_sst_builder_file_size(const cairn_sst_builder *b);

/* Entries added so far. */
uint64_t cairn_sst_builder_entries(const cairn_sst_builder *b);

/* ------------------------------------------------------------------------
 * Reader
 * ------------------------------------------------------------------------ */

/* Open path: read and verify the footer, metaindex, filter, index and
 * properties. file_id must be unique among the files sharing cache for the
 * life of the process (the tree passes the file number); cache may be NULL.
 * Errors: CAIRN_ENOTFOUND, CAIRN_EIO, CAIRN_ENOMEM, CAIRN_ECORRUPT,
 * CAIRN_EVERSION (with errmsg filled). */
int cairn_sst_open(cairn_env *env, const char *path, uint64_t file_id,
                   cairn_block_cache *cache, cairn_sst_reader **out,
                   char *errmsg);

/* Free the reader (does not touch the cache: cairn_sst_uncache or
 * cairn_block_cache_erase_file is the caller's, when the file is deleted).
 * NULL is a no-op. */
void cairn_sst_close(cairn_sst_reader *r);

/* Drop the file's data blocks from the reader's block cache (a deleted
 * file): one lookup per block, not a walk over the cache. */
void cairn_sst_uncache(cairn_sst_reader *r);

/* Counters of data block reads, shared by the readers that point to them
 * (the tree keeps one per storage tier): block cache hits, misses (blocks
 * read from the file) and the time of each miss (read, checksum,
 * decompression) in nanoseconds. Atomics: any thread may add. */
/* Block cache hits are counted in per-thread stripes (a counter every
 * reading thread bumps would bounce its cache line between cores on every
 * read); cairn_sst_read_stats_hits sums them. */
#define CAIRN_SST_HIT_STRIPES 8
typedef struct cairn_sst_read_stats {
    struct {
        _Alignas(64) atomic_uint_fast64_t n;
    } hit_stripe[CAIRN_SST_HIT_STRIPES];
    atomic_uint_fast64_t misses;
    cairn_hist miss_ns;
    cairn_hist hit_ns; /* block cache hits, one in CAIRN_SST_HIT_SAMPLE
                          timed (per thread) */
} cairn_sst_read_stats;
#define CAIRN_SST_HIT_SAMPLE 64u

/* Count this reader's data block reads in *s (NULL: stop counting). Call it
 * before the reader is shared; s must outlive the reader. */
void cairn_sst_set_read_stats(cairn_sst_reader *r, cairn_sst_read_stats *s);

/* The block cache hits counted in s. */
uint64_t cairn_sst_read_stats_hits(cairn_sst_read_stats *s);

/* The file's properties, valid until close. */
const cairn_sst_props *cairn_sst_props_get(const cairn_sst_reader *r);
const char *cairn_sst_path(const cairn_sst_reader *r);
uint64_t cairn_sst_file_id(const cairn_sst_reader *r);

/* Data block i (< props->data_blocks): offset and stored size (trailer
 * excluded). CAIRN_EINVAL if i is out of range. */
int cairn_sst_data_block(const cairn_sst_reader *r, size_t i, uint64_t *off,
                         uint64_t *size);

/* Bloom filter: false only if key is certainly not in the file. true when
 * the file has no (usable) filter. */
bool cairn_sst_may_contain(const cairn_sst_reader *r, const void *key,
                           size_t klen);

/* A hint that a key whose cairn_bloom_hash is `hash` is about to be looked
 * up: starts loading the filter bytes the lookup reads first. */
void cairn_sst_prefetch(const cairn_sst_reader *r, uint64_t hash);

/* The first half of a lookup, for batches (the filter bytes hinted a
 * little before): SIZE_MAX if the filter rules key out; else the data
 * block a lookup of (key, max_version) starts at (nidx, past the last
 * block, when every key is below it), whose cache entry, header and
 * restart words start loading if the block was last seen in the block
 * cache. Then cairn_sst_get_at with that block reads as cairn_sst_get. */
size_t cairn_sst_locate(const cairn_sst_reader *r, const void *key,
                        size_t klen, uint64_t max_version);

/* Keeps the data block of an entry returned by cairn_sst_get alive. Zero it
 * (or let get fill it) before use; release it once done with the entry.
 * Releasing an empty pin is a no-op; a pin may be reused after release. */
typedef struct cairn_sst_pin {
    cairn_block_cache *cache;
    cairn_cache_handle *handle; /* the cached block, or NULL */
    void *block;                /* a block owned by the pin, or NULL */
} cairn_sst_pin;
void cairn_sst_pin_release(cairn_sst_pin *pin);

/* The newest entry of key with version <= max_version and ts_us <= max_ts,
 * deletes included (the caller decides what a delete means). Consults the
 * bloom filter first. Returns 0 and fills *out and *pin: out->value points
 * into the pinned block and stays valid until cairn_sst_pin_release(pin);
 * out->key is the caller's own key pointer (the entry's key equals it).
 * CAIRN_ENOTFOUND (pin left empty) if there is no such entry; another error
 * (pin left empty, errmsg filled for CAIRN_ECORRUPT) on failure.
 * cairn_sst_get_at: the same, without the filter check and the index
 * search, from the block cairn_sst_locate gave for the same key and
 * max_version. */
int cairn_sst_get_at(const cairn_sst_reader *r, size_t block, const void *key,
                     size_t klen, uint64_t max_version, uint64_t max_ts,
                     cairn_sst_entry *out, cairn_sst_pin *pin, char *errmsg);
int cairn_sst_get(const cairn_sst_reader *r, const void *key, size_t klen,
                  uint64_t max_version, uint64_t max_ts, cairn_sst_entry *out,
                  cairn_sst_pin *pin, char *errmsg);

/* ------------------------------------------------------------------------
 * Iterator (one per thread at a time; many per reader)
 * ------------------------------------------------------------------------
 * A new iterator is not positioned (not valid). Moves: seek_first,
 * seek_last, seek (first entry >= (key, version) in internal order; version
 * UINT64_MAX: the key's first entry or, if none, the first entry after it),
 * seek_for_prev (last entry <= (key, version); version 0: the key's last
 * entry or, if none, the last one before it), next and prev (require valid).
 * An iterator that runs off either end becomes invalid with status 0; one
 * that meets an error becomes invalid with that status (e.g. CAIRN_ECORRUPT,
 * message in cairn_sst_iter_errmsg) until the next seek*. The block the
 * iterator sits in stays pinned in the cache (or owned by the iterator). */

/* CAIRN_ENOMEM or 0. */
int cairn_sst_iter_new(const cairn_sst_reader *r, cairn_sst_iter **out);
void cairn_sst_iter_free(cairn_sst_iter *it); /* NULL is a no-op */
/* fill false: blocks this iterator reads on a cache miss are not added to
 * the cache (one pass over a whole file, e.g. a compaction input, would
 * only push out the blocks readers need). Cached blocks are still used.
 * Default true. */
void cairn_sst_iter_set_fill_cache(cairn_sst_iter *it, bool fill);

void cairn_sst_iter_seek_first(cairn_sst_iter *it);
void cairn_sst_iter_seek_last(cairn_sst_iter *it);
void cairn_sst_iter_seek(cairn_sst_iter *it, const void *key, size_t klen,
                         uint64_t version);
void cairn_sst_iter_seek_for_prev(cairn_sst_iter *it, const void *key,
                                  size_t klen, uint64_t version);
void cairn_sst_iter_next(cairn_sst_iter *it);
void cairn_sst_iter_prev(cairn_sst_iter *it);
bool cairn_sst_iter_valid(const cairn_sst_iter *it);
/* The current entry (requires valid). Its key and value pointers stay valid
 * until the iterator moves or is freed. */
void cairn_sst_iter_entry(const cairn_sst_iter *it, cairn_sst_entry *out);
/* 0, or the error that invalidated the iterator. */
int cairn_sst_iter_status(const cairn_sst_iter *it);
/* The message of that error ("" when status is 0). */
const char *cairn_sst_iter_errmsg(const cairn_sst_iter *it);

/* ------------------------------------------------------------------------
 * Blob references (the optional meta block CAIRN_SST_BLOB_REFS_NAME)
 * ------------------------------------------------------------------------
 * A file holding CAIRN_SST_BLOB entries carries the sorted list of the
 * blobs they name (each chunk of a chunked value is a blob): SHA-256, the
 * number of entries of the file naming it, and the location the first of
 * them records. Files without the block name no blob. */

#define CAIRN_SST_BLOB_REFS_NAME "cairn.blobrefs"

typedef int (*cairn_sst_blob_ref_fn)(void *arg, const uint8_t hash[32],
                                     uint64_t count, uint64_t file,
                                     uint64_t offset, uint32_t stored_len);

/* Read the block and call fn for each blob, in hash order, until fn
 * returns non-zero (returned). 0 when the file has no block. Damage:
 * CAIRN_ECORRUPT with errmsg. */
int cairn_sst_blob_refs(const cairn_sst_reader *r, cairn_sst_blob_ref_fn fn,
                        void *arg, char *errmsg);

/* ------------------------------------------------------------------------
 * Checking and dumping (cairn check, cairn sst dump)
 * ------------------------------------------------------------------------ */

/* Called after each data block with the bytes of data blocks checked so far
 * and in all. */
typedef void (*cairn_sst_progress_fn)(void *arg, uint64_t done,
                                      uint64_t total);

/* Read the whole file and check everything: every block's checksum and
 * structure, the order of all keys within and across blocks, each index key
 * against its block's last key, the tiling of data blocks, the properties
 * against what the blocks hold (counts, sizes, version and time bounds,
 * smallest and largest key), and that the bloom filter holds every key.
 * 0 if all is well; CAIRN_ECORRUPT / CAIRN_EVERSION / I/O errors with
 * errmsg filled (naming the file and the offset). progress may be NULL. */
int cairn_sst_verify(cairn_env *env, const char *path,
                     cairn_sst_progress_fn progress, void *arg, char *errmsg);

/* Write a human-readable listing to out: the properties, then the entries
 * in order (at most limit of them; 0 = all), one per line: key (printable
 * bytes as is, others as \xHH), version, timestamp, kind, value length and
 * the first value bytes. Returns 0 or the iterator's error (errmsg
 * filled). */
int cairn_sst_dump(const cairn_sst_reader *r, FILE *out, uint64_t limit,
                   char *errmsg);

/* ------------------------------------------------------------------------
 * Format helpers shared by the builder and the reader
 * ------------------------------------------------------------------------ */

#define CAIRN_SST_MAGIC "CAIRNSST"
#define CAIRN_SST_FOOTER_SIZE 88
#define CAIRN_SST_TRAILER_SIZE 9 /* block type (1) + XXH3-64 (8) */
#define CAIRN_SST_MAX_RAW_BLOCK (((size_t)1 << 31) - 1)

/* Internal keys: user key || BE64(~version). Compare two internal keys
 * (each at least 8 bytes) in internal order: <0, 0, >0. */
int cairn_sst_ikey_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                       size_t blen);

/* Write the 8-byte trailer of version at p. */
static inline void cairn_sst_put_trailer(uint8_t *p, uint64_t version)
{
    uint64_t t = ~version;
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)t;
        t >>= 8;
    }
}

/* The version encoded in the trailer at p. */
static inline uint64_t cairn_sst_get_trailer(const uint8_t *p)
{
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = (t << 8) | p[i];
    return ~t;
}

#endif /* CAIRN_SST_SST_H */
