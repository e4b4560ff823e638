/*
 * version.h — the LSM tree's file set: file metadata, version edits, and the
 * immutable, reference-counted versions built by applying edits.
 *
 * What it is: a version is the set of sorted files (SSTs) per level plus the
 * counters recorded with them (next file number, log LSN, last version) and
 * the per-level compaction pointers. A version edit describes a change (files
 * added, deleted, moved between levels, tier changes, counters). The manifest
 * (manifest.h) logs edits durably; cairn_version_apply() turns (version, edit)
 * into a new version and is used both when replaying the manifest and when
 * logging a new edit, so both check edits by the same rules
 * (docs/format/manifest.md, "Applying an edit").
 *
 * Invariants of a version:
 *   - level 0: files may overlap; sorted newest first (file number
 *     descending);
 *   - levels >= 1: files sorted by smallest internal key and disjoint by user
 *     key (one file's largest user key < the next file's smallest user key),
 *     so a user key lives in at most one file per level;
 *   - a file number appears at most once in the whole version;
 *   - each file's meta->level equals the level it is stored at;
 *   - a version never changes after cairn_version_apply() returns it.
 *
 * Ownership: a cairn_file_meta is immutable and reference counted (atomic);
 * versions and edits share metas. A meta (and its key bytes) stays valid as
 * long as a version holding it is referenced. A tier change or a move makes a
 * new meta; the old one lives on in older versions.
 *
 * Live versions: every version derived (through cairn_version_apply) from one
 * cairn_version_new_empty() root shares a "history" list, so the files of
 * every version still referenced can be listed (cairn_version_live_files):
 * a file may be deleted only once no live version holds it.
 *
 * Threading: versions and metas are immutable, so any number of threads may
 * read them at once. cairn_version_ref/unref and cairn_file_meta_ref/unref
 * are thread-safe (atomic counts; the history list has its own mutex, taken
 * only when a version is created or freed and by cairn_version_live_files).
 * A version edit is a plain builder owned by one thread at a time.
 */
#ifndef CAIRN_LSM_VERSION_H
#define CAIRN_LSM_VERSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/keycmp.h"

#define CAIRN_LSM_MAX_LEVELS 8     /* levels 0..7: the format's limit */
#define CAIRN_LSM_DEFAULT_LEVELS 7 /* levels 0..6 */

/* ---- keys ---- */

/* An internal key: (user key bytes, version). */
typedef struct cairn_ikey {
    const uint8_t *ukey;
    size_t ulen;
    uint64_t version;
} cairn_ikey;

/* User keys compare with cairn_key_cmp (util/keycmp.h). */

/* Internal keys: user key ascending, then version descending. */
int cairn_ikey_compare(const cairn_ikey *a, const cairn_ikey *b);

/* ---- file metadata ---- */

typedef struct cairn_file_meta {
    uint64_t number;     /* file name: "%06llu.sst" (>= 1) */
    uint32_t level;      /* the level the file is at */
    uint8_t tier;        /* 0 = local disk; >0 = archive tiers */
    uint64_t file_size;  /* bytes */
    cairn_ikey smallest; /* smallest internal key in the file */
    cairn_ikey largest;  /* largest internal key in the file */
    uint64_t min_version, max_version; /* commit versions held */
    uint64_t entries;    /* entries (versions) in the file */
    uint64_t tombstones; /* of which deletions */
    uint64_t created_us; /* creation time, microseconds since the epoch */
} cairn_file_meta;

/* A new meta, reference count 1, copying every field of tmpl and the bytes
 * its smallest/largest keys point to (tmpl itself is not kept). NULL on out
 * of memory. */
cairn_file_meta *cairn_file_meta_new(const cairn_file_meta *tmpl);
void cairn_file_meta_ref(const cairn_file_meta *m);
void cairn_file_meta_unref(const cairn_file_meta *m); /* NULL: no-op */

/* ---- version edits ---- */

typedef struct cairn_edit_file {
    uint32_t level;
    uint64_t number;
} cairn_edit_file;

typedef struct cairn_edit_tier {
    uint32_t level;
    uint64_t number;
    uint8_t tier;
} cairn_edit_tier;

typedef struct cairn_edit_pointer {
    uint32_t level;
    uint8_t *key; /* owned by the edit */
    size_t len;
} cairn_edit_pointer;

/* A change to a version. Fields are public for reading (encoding, tests);
 * build it with the functions below. */
typedef struct cairn_version_edit {
    bool has_next_file;
    uint64_t next_file;
    bool has_log_lsn;
    uint64_t log_lsn;
    bool has_last_version;
    uint64_t last_version;
    /* Versions older than this may have lost history to flush/compaction
     * (older versions of a key dropped): reads as of them are refused after
     * a restart. Never goes down (a lower value is ignored). */
    bool has_horizon;
    uint64_t horizon;
    uint64_t horizon_ts; /* commit time of the horizon version */
    /* Running totals since the database was created: raw key+value bytes
     * flushed from memtables, and bytes of sorted files written by flushes
     * and compactions (write amplification = written / user). */
    bool has_io;
    uint64_t io_user_bytes, io_written_bytes;
    cairn_file_meta **added; /* owned references; meta->level = its level */
    size_t nadded, cap_added;
    cairn_edit_file *deleted;
    size_t ndeleted, cap_deleted;
    cairn_edit_tier *tiers;
    size_t ntiers, cap_tiers;
    cairn_edit_pointer *pointers;
    size_t npointers, cap_pointers;
} cairn_version_edit;

void cairn_version_edit_init(cairn_version_edit *e);
/* Free everything the edit holds and re-initialise it. */
void cairn_version_edit_clear(cairn_version_edit *e);

void cairn_version_edit_set_next_file(cairn_version_edit *e, uint64_t n);
void cairn_version_edit_set_log_lsn(cairn_version_edit *e, uint64_t lsn);
void cairn_version_edit_set_last_version(cairn_version_edit *e, uint64_t v);
void cairn_version_edit_set_horizon(cairn_version_edit *e, uint64_t h,
                                    uint64_t ts);
/* Adds a copy of *meta at level (the copy's level field is set to level).
 * CAIRN_EINVAL for a level outside 0..7, CAIRN_ENOMEM. */
int cairn_version_edit_add_file(cairn_version_edit *e, int level,
                                const cairn_file_meta *meta);
/* Adds a reference to meta itself (meta->level must be valid). */
int cairn_version_edit_add_meta(cairn_version_edit *e, cairn_file_meta *meta);
int cairn_version_edit_delete_file(cairn_version_edit *e, int level,
                                   uint64_t number);
int cairn_version_edit_set_tier(cairn_version_edit *e, int level,
                                uint64_t number, uint8_t tier);
/* Set (replace) the compaction pointer of a level to a user key (copied). */
int cairn_version_edit_set_compact_pointer(cairn_version_edit *e, int level,
                                           const void *ukey, size_t len);

/* ---- versions ---- */

typedef struct cairn_version cairn_version;

/* An empty version (all counters 0), reference count 1, the root of a new
 * history. NULL on out of memory. */
cairn_version *cairn_version_new_empty(void);

void cairn_version_ref(cairn_version *v);
void cairn_version_unref(cairn_version *v); /* NULL: no-op */

/* Build base + edit into a new version (reference count 1, in base's
 * history) without touching base. Added files and compaction pointers must
 * be at levels below num_levels (1..CAIRN_LSM_MAX_LEVELS); deletions and
 * tier changes may name any level that holds the file, so files left
 * deeper by an earlier configuration can still be moved out. Returns 0,
 * CAIRN_EINVAL when the edit breaks a
 * rule (err, if non-NULL, receives a one-line reason of at most errlen
 * bytes), or CAIRN_ENOMEM. */
int cairn_version_apply(const cairn_version *base,
                        const cairn_version_edit *edit, int num_levels,
                        cairn_version **out, char *err, size_t errlen);

/* Counters recorded in the version. */
uint64_t cairn_version_next_file(const cairn_version *v);
uint64_t cairn_version_log_lsn(const cairn_version *v);
uint64_t cairn_version_last_version(const cairn_version *v);
uint64_t cairn_version_horizon(const cairn_version *v);
uint64_t cairn_version_horizon_ts(const cairn_version *v);
void cairn_version_edit_set_io(cairn_version_edit *e, uint64_t user_bytes,
                               uint64_t written_bytes);
void cairn_version_io(const cairn_version *v, uint64_t *user_bytes,
                      uint64_t *written_bytes);

/* Files per level: count, total bytes, the i-th file (in the level's order;
 * NULL when out of range). Level outside 0..7: 0 / NULL. */
size_t cairn_version_num_files(const cairn_version *v, int level);
uint64_t cairn_version_level_bytes(const cairn_version *v, int level);
const cairn_file_meta *cairn_version_file(const cairn_version *v, int level,
                                          size_t i);
size_t cairn_version_total_files(const cairn_version *v);

/* The compaction pointer of a level: true and the key if set. */
bool cairn_version_compact_pointer(const cairn_version *v, int level,
                                   const uint8_t **key, size_t *len);

/* The file with this number, at any level (NULL if none; *level set if
 * found and level non-NULL). Linear in the number of files. */
const cairn_file_meta *cairn_version_lookup(const cairn_version *v,
                                            uint64_t number, int *level);

/* Files of a level whose user-key range [smallest, largest] meets the
 * closed user-key range [lo, hi]; lo == NULL means no lower bound, hi ==
 * NULL no upper bound. *out is a malloc'ed array of *n pointers in the
 * level's order (free() it; NULL when *n is 0); the metas are valid while
 * v is referenced. CAIRN_EINVAL for a bad level, CAIRN_ENOMEM. */
int cairn_version_overlapping_files(const cairn_version *v, int level,
                                    const void *lo, size_t lolen,
                                    const void *hi, size_t hilen,
                                    const cairn_file_meta ***out, size_t *n);

/* Levels >= 1 only: index of the first file whose largest user key is >=
 * ukey (num_files if none): where a seek to ukey starts. Binary search. */
size_t cairn_version_find_index(const cairn_version *v, int level,
                                const void *ukey, size_t len);

/* Levels >= 1 only: the single file that may hold ukey (its range covers
 * it), or NULL. Binary search. */
const cairn_file_meta *cairn_version_find_file(const cairn_version *v,
                                               int level, const void *ukey,
                                               size_t len);

/* Sorted, distinct numbers of every file held by any version of v's history
 * that is still referenced (v included). *out is malloc'ed (free() it; NULL
 * when *n is 0). */
int cairn_version_live_files(const cairn_version *v, uint64_t **out,
                             size_t *n);

#endif /* CAIRN_LSM_VERSION_H */
