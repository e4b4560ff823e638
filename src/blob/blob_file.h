/*
 * blob_file.h — the blob store's files (docs/format/blob.md): content-
 * addressed records (SHA-256 of the raw content), each compressed on its
 * own with zstd (kept raw when that does not shrink it) and checksummed
 * with XXH3, appended to `NNNNNN.blob` files that are sealed when full.
 *
 * Pieces:
 *   - the appender: hashes, compresses and appends records, rotates files
 *     at a target size, syncs on demand, seals on rotation and close;
 *   - the reader: one record at a location, every check of the format page
 *     (checksum, offset, the expected hash, decompression, SHA-256);
 *   - the scanner: every whole record of a file, in order, telling a torn
 *     tail (ignored) from corruption (an error naming the offset);
 *   - recovery: cut the torn tail of the file a crash left unsealed and
 *     seal it;
 *   - the GC rewriter: copy the live records of a sealed file into the
 *     appender, sync, then report the new locations.
 * This layer knows files and records, not keys: deduplication (the hash ->
 * location index), reference counts and deciding what is live are the
 * caller's. It never deletes a file holding records.
 *
 * Invariants: every file but the newest an appender wrote is sealed on disk
 * (the seal is synced before the next file is created); between whole
 * records there is never garbage (after a failed write the next write
 * starts over at the end of the last whole record); after a failed sync the
 * appender refuses everything (CAIRN_EREADONLY) and never retries it.
 *
 * Errors: CAIRN_ECORRUPT for any damage (never an out-of-bounds read,
 * never an abort), CAIRN_EVERSION for a newer file format, I/O errors of
 * the env (CAIRN_EIO, CAIRN_ENOSPC, CAIRN_ENOTFOUND, ...) passed through.
 *
 * Locking: an appender may be used by any number of threads at once:
 * hashing and compression run in the calling thread without locks, the
 * write, sync, rotation and close under the appender's mutex (close must
 * not race with other calls). A reader is immutable after open and may be
 * read from by many threads at once. Scans, recovery and GC run in the
 * calling thread; GC appends through the appender's lock.
 */
#ifndef CAIRN_BLOB_FILE_H
#define CAIRN_BLOB_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env/env.h"

#define CAIRN_BLOB_FORMAT_VERSION 1u
#define CAIRN_BLOB_FILE_HEADER_SIZE 32u
#define CAIRN_BLOB_RECORD_HEADER_SIZE 64u
#define CAIRN_BLOB_SEAL_PAYLOAD 24u
#define CAIRN_BLOB_SEAL_SIZE                                                   \
    (CAIRN_BLOB_RECORD_HEADER_SIZE + CAIRN_BLOB_SEAL_PAYLOAD)
#define CAIRN_BLOB_HASH_SIZE 32u
#define CAIRN_BLOB_MAX_LEN 0xFFFFFFFFull /* raw or stored bytes of a record */
#define CAIRN_BLOB_DEFAULT_FILE_SIZE (256ull << 20)
#define CAIRN_BLOB_DEFAULT_ZSTD_LEVEL 3

enum {
    CAIRN_BLOB_CODEC_RAW = 0,
    CAIRN_BLOB_CODEC_ZSTD = 1,
};

enum {
    CAIRN_BLOB_REC_BLOB = 1,
    CAIRN_BLOB_REC_SEAL = 2,
};

/* Where a record is: enough to read it without any index. */
typedef struct cairn_blob_loc {
    uint64_t file;       /* file number, >= 1 */
    uint64_t offset;     /* of the record header, >= 32 */
    uint32_t stored_len; /* stored bytes after the 64-byte header */
} cairn_blob_loc;

/* SHA-256 of data. 0, or CAIRN_ENOMEM if libcrypto fails. */
int cairn_blob_hash(const void *data, size_t len,
                    uint8_t out[CAIRN_BLOB_HASH_SIZE]);

/* "dir/NNNNNN.blob" into buf. CAIRN_EINVAL if it does not fit. */
int cairn_blob_file_name(char *buf, size_t cap, const char *dir,
                         uint64_t number);

/* If name (a directory entry, not a path) is a blob file's canonical name
 * ("%06llu.blob", number >= 1), its number; else false. */
bool cairn_blob_parse_name(const char *name, uint64_t *number);

/* ---- appender ---- */

typedef struct cairn_blob_appender cairn_blob_appender;

/* Hands out the number of the next file to create (never 0, never reused).
 * Called under the appender's mutex. */
typedef uint64_t (*cairn_blob_number_fn)(void *arg);

typedef struct cairn_blob_file_stats {
    uint64_t number;
    uint64_t records;      /* blob records */
    uint64_t raw_bytes;    /* sum of their raw lengths */
    uint64_t stored_bytes; /* sum of their stored lengths */
    uint64_t size;         /* file size, header and seal included */
} cairn_blob_file_stats;

/* Told when a file has been sealed and synced (under the appender's
 * mutex: keep it short, do not call the appender from it). */
typedef void (*cairn_blob_sealed_fn)(void *arg,
                                     const cairn_blob_file_stats *st);

typedef struct cairn_blob_appender_options {
    cairn_env *env;          /* NULL: the POSIX env */
    const char *dir;         /* where the files go (must exist; copied) */
    uint64_t file_size;      /* seal and rotate past this (256 MiB) */
    int zstd_level;          /* 3 */
    bool compress;           /* try zstd on each record (true) */
    cairn_blob_number_fn next_number; /* NULL: first_number, +1 each file */
    void *next_number_arg;
    uint64_t first_number;   /* with next_number NULL (1) */
    cairn_blob_sealed_fn sealed; /* optional */
    void *sealed_arg;
} cairn_blob_appender_options;

void cairn_blob_appender_options_init(cairn_blob_appender_options *o);

/* No file is created until the first append. */
int cairn_blob_appender_open(const cairn_blob_appender_options *o,
                             cairn_blob_appender **out);

/* Append one record holding data[0, len) and give its location. hash, if
 * not NULL, must be the SHA-256 of data (the caller usually has it from its
 * index lookup); NULL: computed here. The record is durable after the next
 * successful cairn_blob_appender_sync (or rotation, or close).
 * Errors: CAIRN_ETOOLARGE (len > 2^32-1), CAIRN_EIO / CAIRN_ENOSPC (nothing
 * appended; the appender goes on), CAIRN_EREADONLY (a sync failed before). */
int cairn_blob_append(cairn_blob_appender *a, const void *data, size_t len,
                      const uint8_t *hash, cairn_blob_loc *loc);

/* Make every record appended so far durable (fdatasync of the current
 * file; sealed files were synced when sealed). A failure makes the
 * appender refuse everything from then on. */
int cairn_blob_appender_sync(cairn_blob_appender *a);

/* Seal the current file now (if there is one); the next append creates a
 * new file. */
int cairn_blob_appender_rotate(cairn_blob_appender *a);

/* Number of the file being written (0 if none yet). */
uint64_t cairn_blob_appender_current(cairn_blob_appender *a);

/* Seal the current file and free the appender, even when sealing fails
 * (its error is returned; the file is then recovered at the next open like
 * after a crash). After a failed sync nothing is sealed and the result is
 * CAIRN_EREADONLY. NULL is a no-op. */
int cairn_blob_appender_close(cairn_blob_appender *a);

/* ---- reader ---- */

typedef struct cairn_blob_reader cairn_blob_reader;

/* Open path, which must be blob file number `number`, and check its header.
 * CAIRN_ENOTFOUND if missing, CAIRN_ECORRUPT / CAIRN_EVERSION for a bad
 * header. */
int cairn_blob_reader_open(cairn_env *env, const char *path, uint64_t number,
                           cairn_blob_reader **out);

/* Read the record at (offset, stored_len): *out (malloc'ed, non-NULL even
 * when empty; the caller frees it) gets its content, *out_len its length.
 * expect_hash, if not NULL, must equal the record's hash. Every check of
 * the format page is done; any failure is CAIRN_ECORRUPT. */
int cairn_blob_reader_read(cairn_blob_reader *r, uint64_t offset,
                           uint32_t stored_len, const uint8_t *expect_hash,
                           void **out, size_t *out_len);

void cairn_blob_reader_close(cairn_blob_reader *r);

/* Open dir/<loc->file>.blob, read one record, close. */
int cairn_blob_read(cairn_env *env, const char *dir, const cairn_blob_loc *loc,
                    const uint8_t *expect_hash, void **out, size_t *out_len);

/* ---- scanner ---- */

/* One whole record, as a scan sees it. Pointers are valid during the
 * callback only. */
typedef struct cairn_blob_record {
    uint8_t hash[CAIRN_BLOB_HASH_SIZE];
    cairn_blob_loc loc;
    uint32_t raw_len;
    uint8_t codec;
    const uint8_t *stored;  /* the stored bytes (loc.stored_len of them) */
    const uint8_t *content; /* with verify_content: the raw content; else
                               NULL */
} cairn_blob_record;

/* Return 0 to go on; anything else stops the scan, which returns it. */
typedef int (*cairn_blob_scan_fn)(void *arg, const cairn_blob_record *rec);

typedef struct cairn_blob_scan_options {
    bool verify_content; /* decompress every record, check its SHA-256 */
    bool require_sealed; /* a file without a seal is corrupt */
    bool salvage;        /* skip corrupt regions instead of failing */
} cairn_blob_scan_options;

typedef struct cairn_blob_scan_info {
    uint64_t size;         /* file size */
    uint64_t records;      /* whole blob records found (handed to fn) */
    uint64_t raw_bytes;    /* sum of their raw lengths */
    uint64_t stored_bytes; /* sum of their stored lengths */
    uint64_t end;          /* offset just past the last whole blob record
                              (where a seal goes); 32 if none */
    bool sealed;           /* a valid seal ends the file */
    bool header_torn;      /* no valid header, file <= 32 bytes: a creation
                              cut by a crash; holds nothing */
    uint64_t torn_bytes;   /* bytes of torn tail after `end` */
    uint64_t skipped_bytes; /* salvage: bytes of corrupt regions skipped */
    uint64_t bad_offset;   /* on CAIRN_ECORRUPT: where the damage is */
} cairn_blob_scan_info;

/* Scan path (blob file `number`) from its first record to its end, calling
 * fn (may be NULL) for each whole blob record in file order. opts may be
 * NULL (no content check, seal not required, no salvage); info may be
 * NULL. Returns 0, CAIRN_ECORRUPT (info->bad_offset says where),
 * CAIRN_EVERSION, an I/O error, or what fn returned. */
int cairn_blob_scan(cairn_env *env, const char *path, uint64_t number,
                    const cairn_blob_scan_options *opts, cairn_blob_scan_fn fn,
                    void *arg, cairn_blob_scan_info *info);

/* Recovery of a file found unsealed at open (the newest one): scan it; if
 * it has no seal, cut the torn tail, write a seal and fdatasync it (unless
 * read_only). A sealed file is left alone. CAIRN_ECORRUPT if damage lies
 * before the tail (nothing changed). */
int cairn_blob_file_recover(cairn_env *env, const char *path, uint64_t number,
                            bool read_only, cairn_blob_scan_info *info);

/* ---- garbage collection ---- */

/* Is the record of this hash at this location the copy the caller still
 * needs? (Typically: the index maps hash to exactly loc, and the hash is
 * referenced.) */
typedef bool (*cairn_blob_live_fn)(void *arg, const uint8_t *hash,
                                   const cairn_blob_loc *loc);

/* A live record now also lives at `to` (durable). Return 0, or an error to
 * stop reporting (the rewrite returns it; the copies stay, harmless). */
typedef int (*cairn_blob_moved_fn)(void *arg, const uint8_t *hash,
                                   const cairn_blob_loc *from,
                                   const cairn_blob_loc *to);

typedef struct cairn_blob_gc_stats {
    uint64_t records_in;  /* blob records in the source */
    uint64_t bytes_in;    /* their stored bytes */
    uint64_t records_kept; /* copied (live) */
    uint64_t bytes_kept;  /* their stored bytes */
} cairn_blob_gc_stats;

/* Copy the live records of sealed file `number` (at path) into the
 * appender, verifying each (checksum, decompression, SHA-256) and copying
 * its stored bytes as they are; sync the appender; then call moved for
 * each copy, in source order. The source is never changed: the caller
 * deletes it once its index points at the new locations durably. Errors:
 * CAIRN_EBUSY if the source is not sealed (still written, or not
 * recovered), CAIRN_EINVAL if it is the appender's current file,
 * CAIRN_ECORRUPT, I/O errors; on any error nothing is reported. stats may
 * be NULL. */
int cairn_blob_gc_rewrite(cairn_blob_appender *a, const char *path,
                          uint64_t number, cairn_blob_live_fn live,
                          cairn_blob_moved_fn moved, void *arg,
                          cairn_blob_gc_stats *stats);

#endif /* CAIRN_BLOB_FILE_H */
