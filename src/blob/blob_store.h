/*
 * blob_store.h — the engine's blob store: content-addressed values stored
 * out of line (docs/format/blob.md, docs/architecture.md "blob/"), on top of
 * the blob files (blob_file.h), the chunker (cdc.h) and the reference
 * record (blob_ref.h).
 *
 * What it keeps in memory: an index SHA-256 -> {current location, reference
 * count, in-flight pins}, the blob files with their stored and live bytes,
 * and a cache of open readers.
 *
 * Reference counts are not stored anywhere: the caller (the db) derives
 * them from what the tree holds, with cairn_blob_store_ref: +1 per chunk of
 * every reference record in a memtable (from its insert to the memtable's
 * release) and in a sorted file (from when its reader is opened for a
 * version to when the file is deleted), so that a count of 0 means that no
 * reader anywhere can reach the blob. Pins keep a blob alive between a
 * commit's put and the insert of its record into a memtable.
 *
 * Locations: the index is rebuilt at open by scanning every blob file (its
 * record headers: each record names its hash); the location a reference
 * record holds is only a hint. Garbage collection copies the live records
 * of a file into the appender, syncs them, points the index at the copies
 * and only then deletes the file (after its last reader let go). A crash
 * anywhere in between leaves both copies on disk: the scan at the next open
 * finds one of them, the other is dead space a later GC reclaims. So no
 * relocation record is needed, and none can be lost.
 *
 * Durability: cairn_blob_store_put returns the append sequence the caller
 * must see durable (cairn_blob_store_sync) before it makes a reference to
 * the blob durable; a blob found in the index is durable once its sequence
 * is synced (blobs found at open: always).
 *
 * Errors: CAIRN_ECORRUPT when a referenced blob is missing or damaged (with
 * a message), I/O errors of the env, CAIRN_EREADONLY after a failed sync.
 *
 * Locking: one mutex (mu) over the index, the file table and the reader
 * cache; no I/O is done under it except closing a reader and unlinking a
 * file nobody reads any more. Appends run outside it (the appender has its
 * own mutex); syncs are serialized by sync_mu. A GC runs at a time
 * (gc_mu). All calls may come from any thread.
 */
#ifndef CAIRN_BLOB_STORE_H
#define CAIRN_BLOB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blob/blob_file.h"
#include "blob/blob_ref.h"
#include "env/env.h"

typedef struct cairn_blob_store cairn_blob_store;

typedef struct cairn_blob_store_options {
    cairn_env *env;
    const char *dir;          /* the blob directory (created, and
                                 parent_dir synced, at the first append) */
    const char *parent_dir;   /* dir's parent (NULL: no sync of it) */
    bool read_only;
    uint64_t file_size;       /* rotate past this (0: 256 MiB) */
    int zstd_level;           /* 0: 3 */
    size_t chunk_threshold;   /* values >= this are chunked (0: never) */
    cairn_blob_number_fn next_number; /* file numbers (required) */
    void *next_number_arg;
} cairn_blob_store_options;

/* Open: create dir if missing, recover the files a crash left unsealed,
 * scan every file into the index. errmsg (errlen bytes) names a damaged
 * file. */
int cairn_blob_store_open(const cairn_blob_store_options *o,
                          cairn_blob_store **out, char *errmsg, size_t errlen);
/* Seal the current file and free everything. NULL: no-op. */
int cairn_blob_store_close(cairn_blob_store *s);

/* The highest blob file number on disk at open (0: none). */
uint64_t cairn_blob_store_max_file(const cairn_blob_store *s);

/* Store a value: a single blob, or the chunks of the chunker when len >=
 * chunk_threshold; blobs already in the index are not written again. Each
 * blob of the value is pinned (cairn_blob_store_unpin_ref releases the
 * pins of the returned record). *ref (malloc'ed) gets the reference
 * record, *seq the sequence to sync before the record may become
 * durable. */
int cairn_blob_store_put(cairn_blob_store *s, const void *data, size_t len,
                         uint8_t **ref, size_t *ref_len, uint64_t *seq);
/* Make every append up to seq durable. */
int cairn_blob_store_sync(cairn_blob_store *s, uint64_t seq);

/* delta (+1/-1) on the reference count of every chunk of the reference
 * record ref (pins: delta on the pins instead). A record that does not
 * decode changes nothing (CAIRN_ECORRUPT). */
int cairn_blob_store_ref_record(cairn_blob_store *s, const uint8_t *ref,
                                size_t len, int delta, bool pins);
/* delta on the count of one blob (hash; the location is a hint used when
 * the hash is not in the index, which makes it a missing blob). */
void cairn_blob_store_ref(cairn_blob_store *s, const uint8_t *hash,
                          const cairn_blob_loc *hint, int64_t delta);

/* Read the value a reference record names: *out (malloc'ed, non-NULL) and
 * *out_len. CAIRN_ECORRUPT for a record that does not decode, a blob not in
 * the store or damaged (errmsg, if not NULL, gets errlen bytes of why). */
int cairn_blob_store_get(cairn_blob_store *s, const uint8_t *ref, size_t len,
                         void **out, size_t *out_len, char *errmsg,
                         size_t errlen);

/* Read the blob of hash where the index says and verify it. 0, or
 * CAIRN_ECORRUPT with errmsg. */
int cairn_blob_store_verify(cairn_blob_store *s, const uint8_t *hash,
                            char *errmsg, size_t errlen);

/* Garbage collection: rewrite every sealed file whose dead fraction
 * (stored bytes of records no reference needs / stored bytes) is at least
 * dead_fraction (and, if force, any file holding dead bytes). Returns 0 or
 * the first error (files done before it stay done). */
int cairn_blob_store_gc(cairn_blob_store *s, double dead_fraction);
/* Is there a file GC would rewrite at dead_fraction? */
bool cairn_blob_store_gc_due(cairn_blob_store *s, double dead_fraction);

/* The count the store holds for hash (refs, pins); false if not indexed. */
bool cairn_blob_store_count(cairn_blob_store *s, const uint8_t *hash,
                            int64_t *refs, int64_t *pins, bool *missing);
/* Every indexed blob: fn(arg, hash, refs, pins, missing, raw_len,
 * stored_len) under the store's lock (keep it short). */
typedef void (*cairn_blob_store_each_fn)(void *arg, const uint8_t *hash,
                                         int64_t refs, int64_t pins,
                                         bool missing, uint32_t raw_len,
                                         uint32_t stored_len);
void cairn_blob_store_each(cairn_blob_store *s, cairn_blob_store_each_fn fn,
                           void *arg);

typedef struct cairn_blob_store_stats {
    uint64_t logical_bytes;  /* raw bytes of references (per reference) */
    uint64_t stored_bytes;   /* records' stored bytes in the files */
    uint64_t file_bytes;     /* the files' sizes */
    uint64_t distinct;       /* indexed blobs (live or not) */
    uint64_t live;           /* with a count or a pin */
    uint64_t dedup_hits;     /* puts that found their blob stored */
    uint64_t appended;       /* blobs written by puts */
    uint64_t files;
    uint64_t dead_bytes;     /* stored bytes no reference needs */
    uint64_t gc_runs, gc_files, gc_bytes_reclaimed;
    uint64_t missing;        /* referenced but not in any file */
    uint64_t reads;          /* values read (cairn_blob_store_get) */
    uint64_t read_p50_ns, read_p99_ns; /* their latency (read, verify,
                                          decompress, chunks joined) */
} cairn_blob_store_stats;
void cairn_blob_store_get_stats(cairn_blob_store *s,
                                cairn_blob_store_stats *out);

/* Test hook: called at each step of a GC (0: before the rewrite, 1: after
 * the copies are synced and the index points at them, 2: after the old
 * file is deleted). */
void cairn_blob_store_set_gc_hook(cairn_blob_store *s,
                                  void (*fn)(void *arg, int step), void *arg);

#endif /* CAIRN_BLOB_STORE_H */
