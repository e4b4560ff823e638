/*
 * tier.h — the archive tier's building blocks: the archive's env (I/O
 * failures there mean "unavailable", tracked), the copy of a sorted file
 * from one tier to another with another codec, and the archive policy's
 * decision. The tree (lsm/tree.c) puts them together: which files are
 * where (the manifest's per-file tier), moves, read-through and cleanup.
 *
 * Tiers: 0 is the database directory (local disk), 1 the archive
 * directory (cairn_options.archive_dir: a slower volume or a network
 * mount). A file keeps its number and name (NNNNNN.sst) in either place.
 *
 * The archive env wraps the database's env for every path under the
 * archive directory. Any I/O error there (CAIRN_EIO, and CAIRN_ENOTFOUND
 * while the archive directory itself is missing) comes back as
 * CAIRN_EUNAVAILABLE and marks the archive unavailable; cairn_tier_env_probe
 * marks it available again once the directory answers. CAIRN_ENOSPC and
 * other errors pass through as they are. So a reader of an archived file
 * reports CAIRN_EUNAVAILABLE when the archive is gone, whichever layer met
 * the failure.
 *
 * Threading: the archive env may be used by any number of threads (its
 * state is atomics plus a mutex around the last error text). The copy
 * function is called by one thread per destination file.
 */
#ifndef CAIRN_TIER_TIER_H
#define CAIRN_TIER_TIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env/env.h"
#include "lsm/version.h"
#include "sst/sst.h"

#define CAIRN_TIER_LOCAL 0
#define CAIRN_TIER_ARCHIVE 1
#define CAIRN_TIER_COUNT 2 /* tiers with statistics: local, archive */
#define CAIRN_TIER_DEFAULT_ZSTD_LEVEL 19

/* ---- the archive env ---- */

/* An env for the archive directory dir (copied) over base (not owned).
 * Destroy it with cairn_env_destroy before base. NULL on out of memory. */
cairn_env *cairn_tier_env_new(cairn_env *base, const char *dir);
/* false once an I/O call failed as "unavailable", until a probe succeeds. */
bool cairn_tier_env_available(cairn_env *env);
/* Check the archive directory (list it; also read the last bytes of
 * probe_file when given, a file that should be there): 0 and available
 * again, or CAIRN_EUNAVAILABLE. */
int cairn_tier_env_probe(cairn_env *env, const char *probe_file);
/* Mark the archive unavailable for a reason found above the env (e.g. its
 * directory is there but empty: a volume not mounted). */
void cairn_tier_env_mark_unavailable(cairn_env *env, const char *why);
/* The last failure's text ("" if none): e.g. "open /mnt/a/000012.sst: I/O
 * error". */
void cairn_tier_env_last_error(cairn_env *env, char *buf, size_t n);
/* Calls that failed as unavailable, since creation. */
uint64_t cairn_tier_env_failures(cairn_env *env);

/* ---- copying a sorted file between tiers ---- */

/* Called now and then during a copy with the bytes of the source read so
 * far and in all; a non-zero return stops the copy (CAIRN_ECLOSED). */
typedef int (*cairn_tier_copy_fn)(void *arg, uint64_t done, uint64_t total);

/* Write every entry of src (an open reader) into a new file dst_path of
 * dst_env, with the same block size, restart interval and bloom filter
 * density, blocks compressed with codec (zstd at zstd_level), then
 * fdatasync it (the directory is the caller's). dst_path is replaced if it
 * exists. Blocks read from src do not enter the block cache. The copy is
 * checked against the source's properties (entries, deletions, keys and
 * version range): a mismatch is CAIRN_ECORRUPT. *props_out (may be NULL)
 * receives the new file's properties (cairn_sst_props_clear them). On
 * failure dst_path is removed. */
int cairn_tier_copy_sst(const cairn_sst_reader *src, cairn_env *dst_env,
                        const char *dst_path, cairn_sst_codec codec,
                        int zstd_level, cairn_tier_copy_fn fn, void *arg,
                        cairn_sst_props *props_out);

/* ---- the policy ---- */

typedef struct cairn_tier_policy {
    int min_level;      /* files at this level or deeper; 0: no level rule */
    uint64_t min_age_s; /* files created at least this long ago; 0: none */
} cairn_tier_policy;

/* Whether the policy sends a local file at level (created at
 * m->created_us) to the archive at time now_us: every rule that is set
 * must hold, and at least one must be set. Archived files: false. */
bool cairn_tier_policy_wants(const cairn_tier_policy *p,
                             const cairn_file_meta *m, int level,
                             uint64_t now_us);

/* Temporary names of copies in progress: "NNNNNN.sst.tmp". */
int cairn_tier_tmp_path(char *buf, size_t n, const char *dir,
                        uint64_t number);
bool cairn_tier_parse_tmp_name(const char *name, uint64_t *number);

#endif /* CAIRN_TIER_TIER_H */
