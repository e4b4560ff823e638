/*
 * manifest.h — the durable log of the LSM tree's file set.
 *
 * What it is: the manifest records, as a log of version edits, which sorted
 * files make up the database (per level) and the counters that go with
 * them (next file number, log LSN, last version). Opening it replays the
 * log into the current version (version.h); cairn_manifest_log_and_apply()
 * appends an edit durably and only then installs the new version. The byte
 * layout and the recovery rules are in docs/format/manifest.md.
 *
 * Durability: an edit is acknowledged (0 returned) only once its record is
 * written and fdatasync'ed (and, for the first record of a new manifest,
 * the directory and CURRENT are synced). A failed write or sync turns the
 * manifest read-only for good: that call and every later
 * cairn_manifest_log_and_apply() fail with the same error, and the old
 * version stays current. The edit that failed may or may not be found after
 * a reopen (never half of it). So a caller whose edit failed must keep both
 * the files it added and the files it deleted until the next open decides
 * (cairn_manifest_obsolete_files() then tells which are garbage).
 *
 * File numbers: sorted files ("%06llu.sst") and manifests ("MANIFEST-%06llu")
 * share one counter. cairn_manifest_new_file_number() hands numbers out in
 * memory; the counter is persisted lazily, with the next edit (every edit
 * record carries it). A number handed out but never recorded may be handed
 * out again after a crash only if no file with that name exists: on open the
 * counter is set above every number the version holds and above every
 * "*.sst" / "MANIFEST-*" name in the directory.
 *
 * Threading: cairn_manifest_log_and_apply() calls are serialized by an
 * internal mutex (callers normally serialize them anyway: one flush or
 * compaction installs at a time); the I/O runs under it.
 * cairn_manifest_current(), the counter accessors and
 * cairn_manifest_new_file_number() may be called from any thread at any
 * time and never wait for manifest I/O. cairn_manifest_close() must not race
 * with any other call; versions obtained from the manifest stay valid after
 * it (they are reference counted).
 */
#ifndef CAIRN_LSM_MANIFEST_H
#define CAIRN_LSM_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env/env.h"
#include "lsm/version.h"

#define CAIRN_MANIFEST_FORMAT_VERSION 1u
#define CAIRN_MANIFEST_HEADER_SIZE 32u
#define CAIRN_MANIFEST_RECORD_HEADER_SIZE 16u
#define CAIRN_MANIFEST_DEFAULT_MAX_SIZE (4ull << 20)

/* Record kinds. */
enum {
    CAIRN_MANIFEST_SNAPSHOT = 1,
    CAIRN_MANIFEST_EDIT = 2,
};

typedef struct cairn_manifest cairn_manifest;

typedef struct cairn_manifest_options {
    bool create_if_missing; /* false: no CURRENT -> CAIRN_ENOTFOUND */
    bool read_only;         /* false: replay only; change nothing on disk,
                               log_and_apply fails with CAIRN_EREADONLY */
    uint64_t max_size;      /* roll over past max(max_size, 2 x the last
                               snapshot record): 4 MiB */
    int num_levels;         /* CAIRN_LSM_DEFAULT_LEVELS; 1..8. Edits may
                               only add files (and compaction pointers)
                               below it; replay accepts all 8 levels of
                               the format */
} cairn_manifest_options;

/* What open found. Strings are empty when not applicable. */
typedef struct cairn_manifest_info {
    char manifest[64];    /* the live manifest's name, e.g. "MANIFEST-000007" */
    uint64_t records;     /* valid records replayed */
    uint64_t bytes;       /* valid bytes (header included) */
    uint64_t torn_offset; /* where a torn tail started (0: none) */
    uint64_t torn_bytes;  /* bytes of torn tail cut off (read-only: found) */
    uint64_t error_offset; /* on CAIRN_ECORRUPT/EVERSION: the record's offset */
    char message[768];    /* one line: the error (naming file and offset) or
                             the torn tail; empty if all was clean */
} cairn_manifest_info;

void cairn_manifest_options_init(cairn_manifest_options *opts);

/* Open the manifest of the LSM tree in dir (see docs/format/manifest.md,
 * "Reading a manifest"). On success *out is the handle and, if current_out
 * is non-NULL, *current_out a referenced current version (unref it).
 * Errors: CAIRN_ENOTFOUND (no CURRENT, and not create_if_missing),
 * CAIRN_ECORRUPT (damage; info->message names file and offset),
 * CAIRN_EVERSION (written by a newer format), CAIRN_EIO, CAIRN_ENOSPC,
 * CAIRN_ENOMEM. opts and info may be NULL. */
int cairn_manifest_open_ex(cairn_env *env, const char *dir,
                           const cairn_manifest_options *opts,
                           cairn_manifest **out, cairn_version **current_out,
                           cairn_manifest_info *info);

/* The same with default options (and create_if_missing as given). */
int cairn_manifest_open(cairn_env *env, const char *dir,
                        bool create_if_missing, cairn_manifest **out,
                        cairn_version **current_out);

/* Close the handle (the file is already durable). NULL: no-op. */
void cairn_manifest_close(cairn_manifest *m);

/* Check edit against the current version (CAIRN_EINVAL, nothing written,
 * see cairn_manifest_errmsg), record it durably (rolling over into a new
 * manifest when the live one is large), then install the new version. The
 * record also carries the next file number: the larger of the edit's and
 * the counter's (the counter is raised above any file the edit adds). If
 * new_version_out is non-NULL it receives a referenced new version.
 * Errors: CAIRN_EINVAL, CAIRN_EREADONLY (opened read-only), CAIRN_ENOMEM,
 * and I/O errors (CAIRN_EIO, CAIRN_ENOSPC, ...), after which the manifest is
 * read-only: every later call returns that same error. */
int cairn_manifest_log_and_apply(cairn_manifest *m,
                                 const cairn_version_edit *edit,
                                 cairn_version **new_version_out);

/* The current version, referenced (unref it). */
cairn_version *cairn_manifest_current(cairn_manifest *m);

/* Hand out a fresh file number (thread-safe; persisted lazily, see above). */
uint64_t cairn_manifest_new_file_number(cairn_manifest *m);
/* The next number cairn_manifest_new_file_number() would hand out. */
uint64_t cairn_manifest_next_file_number(cairn_manifest *m);
/* Raise the counter to at least next (numbers of other files found on
 * disk, e.g. blob files); recorded with the next edit. */
void cairn_manifest_bump_file_number(cairn_manifest *m, uint64_t next);
/* Counters of the current version. */
uint64_t cairn_manifest_log_lsn(cairn_manifest *m);
uint64_t cairn_manifest_last_version(cairn_manifest *m);

/* The sticky I/O error (0 while the manifest is writable). */
int cairn_manifest_error(cairn_manifest *m);
/* One line about the last failure of open or log_and_apply ("" if none).
 * Valid until the next log_and_apply; read it from the thread that made
 * that call. */
const char *cairn_manifest_errmsg(cairn_manifest *m);
/* Name of the live manifest file ("MANIFEST-000007"), and its size. Only
 * stable between log_and_apply calls. */
const char *cairn_manifest_file_name(cairn_manifest *m);
uint64_t cairn_manifest_file_size(cairn_manifest *m);

/* Which sorted files in a directory listing are garbage (leftovers of a
 * crashed or failed flush/compaction, or files that a compaction replaced).
 * names/count is the listing (names, not paths, as cairn_env_list_dir gives
 * them). A name counts as a sorted file only in the exact "%06llu.sst" form.
 * The file numbered N is reported iff
 *   - N < pending_floor, where pending_floor is the smallest number handed
 *     out by cairn_manifest_new_file_number() whose file is still being
 *     written (not yet in a version, not yet abandoned) — UINT64_MAX when
 *     nothing is being written, as right after open; and
 *   - N < cairn_manifest_next_file_number(m): a larger number has not been
 *     handed out by this handle, so the file is not ours to judge; and
 *   - no live version (the current one, or any older one a reader still
 *     holds) contains N.
 * Files being written always have numbers >= pending_floor, and numbers are
 * handed out in increasing order, so such a file is never reported; a file
 * finished after the pending one is judged once the floor moves past it.
 * *out receives the numbers, ascending (malloc'ed; free() it; NULL when *n
 * is 0). */
int cairn_manifest_obsolete_files(cairn_manifest *m, char *const *names,
                                  size_t count, uint64_t pending_floor,
                                  uint64_t **out, size_t *n);

/* ---- names ---- */

/* "%06llu.sst" into buf (at most n bytes with the NUL). CAIRN_EINVAL if it
 * does not fit. */
int cairn_lsm_sst_name(char *buf, size_t n, uint64_t number);
/* "<dir>/%06llu.sst". */
int cairn_lsm_sst_path(char *buf, size_t n, const char *dir, uint64_t number);
/* True if name is exactly "%06llu.sst" of some number >= 1. */
bool cairn_lsm_parse_sst_name(const char *name, uint64_t *number);
/* True if name is exactly "MANIFEST-%06llu" of some number >= 1. */
bool cairn_lsm_parse_manifest_name(const char *name, uint64_t *number);

/* ---- the payload encoding (for tools and tests) ---- */

/* Encode an edit's tagged fields (docs/format/manifest.md) into a malloc'ed
 * buffer. CAIRN_ENOMEM. */
int cairn_version_edit_encode(const cairn_version_edit *e, uint8_t **buf,
                              size_t *len);
/* Decode a payload into *e (initialised here; clear it afterwards, also on
 * error). CAIRN_ECORRUPT (malformed; err says why), CAIRN_EVERSION (an
 * unknown tag), CAIRN_ENOMEM. */
int cairn_version_edit_decode(const uint8_t *buf, size_t len,
                              cairn_version_edit *e, char *err, size_t errlen);
/* Encode a whole version as a snapshot payload. */
int cairn_version_encode_snapshot(const cairn_version *v, uint8_t **buf,
                                  size_t *len);

#endif /* CAIRN_LSM_MANIFEST_H */
