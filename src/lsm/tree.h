/*
 * tree.h — the LSM tree under the MVCC engine: the sorted files of a
 * database, per level, with their manifest, readers and block cache; flush
 * of frozen memtables into level 0; leveled compaction on a background
 * thread; point reads through the levels; write backpressure.
 *
 * The db layer (db/db.c) owns memtables, versions and the WAL; the tree owns
 * everything on disk but the WAL and the FORMAT file. A flush hands the tree
 * a frozen memtable plus the WAL position and commit version it covers; once
 * the flush's manifest edit is durable, the WAL before that position may go.
 *
 * Views: readers take a view (cairn_tree_view_get): the file set of one
 * manifest version with an open reader per file, reference counted. A view
 * never changes; flush and compaction install new ones. A file leaves the
 * disk when the last view holding it is released and it is no longer part of
 * the current version.
 *
 * MVCC: flush and compaction keep, per user key, every version newer than the
 * horizon (the oldest version a snapshot or the history window can still
 * read, asked of the db through options.horizon) and the newest version at
 * or below it; older ones go. A deletion at or below the horizon is dropped
 * only by a compaction into the bottom-most level holding the key.
 *
 * Archive tier: with options.archive_dir, files can move to the archive
 * directory and back (cairn_tree_archive_file / _recall_file, the policy
 * on the archive thread); reads go to wherever a view's copy is. See
 * tree.c ("the archive tier") and tier/tier.h.
 *
 * Threading: views are immutable and may be used by any number of threads.
 * cairn_tree_flush is called by one thread at a time (the db's collector);
 * the compaction thread runs beside it; installs are serialized by
 * install_mu (inside, the manifest's own mutex). Stats are atomics.
 */
#ifndef CAIRN_LSM_TREE_H
#define CAIRN_LSM_TREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cache/block_cache.h"
#include "env/env.h"
#include "lsm/version.h"
#include "mvcc/memtable.h"
#include "sst/sst.h"
#include "tier/tier.h"

typedef struct cairn_tree cairn_tree;
typedef struct cairn_tree_view cairn_tree_view;

typedef struct cairn_tree_options {
    int num_levels;                /* 7 (levels 0..6), 2..8 */
    uint32_t l0_compaction_trigger; /* 4 files in L0 start an L0 compaction */
    int background_nice; /* 0: compaction and archiving threads run at the
                            process's priority; n: n nice steps below */
    uint32_t l0_slowdown;          /* 20 files: writes slow down */
    uint32_t l0_stop;              /* 36 files: writes wait */
    uint64_t base_level_bytes;     /* 256 MiB: L1's target size */
    uint32_t level_ratio;          /* 10: each level 10x the one above */
    uint64_t target_file_size;     /* 64 MiB: compaction output files */
    size_t block_size;             /* 4096 */
    /* Codec per level: LZ4 for the upper levels, zstd for the two bottom
     * ones (CAIRN_SST_CODEC_*), and bottom_codec below. codec_set false:
     * these defaults. */
    bool codec_set;
    int codec[8];
    /* Codec for compaction outputs at level 2 or below that are the
     * bottom-most data of their key range (no file below overlaps): most of
     * the data, written once more at most, so worth the stronger codec.
     * codec_set false: zstd (the defaults); with codec_set, -1 (the value
     * cairn_tree_options_init gives) keeps the level's codec. */
    int bottom_codec;
    int zstd_level;                /* 3 */
    size_t block_cache_bytes;      /* 256 MiB */
    bool read_only;
    bool create_if_missing;
    /* Oldest version any reader may still ask for, and its commit time in
     * *ts (called from the flush and compaction threads). NULL: 0 (keep
     * every version). */
    uint64_t (*horizon)(void *arg, uint64_t *ts);
    void *horizon_arg;
    /* The archive tier (tier/tier.h): the archive directory (NULL or "":
     * none; copied at open), the policy its thread applies (nothing by
     * default), the zstd level of archived blocks (19) and how often the
     * thread looks (1000 ms). */
    const char *archive_dir;
    cairn_tier_policy archive_policy;
    int archive_zstd_level;
    unsigned archive_check_ms;
    /* The time the age rule uses (tests); NULL: the wall clock. */
    uint64_t (*clock_us)(void *arg);
    void *clock_arg;
    /* Called after a move between tiers changed the current view (not for
     * flushes and compactions), with no tree lock held: the owner of
     * table sets takes the new view so the old copy can go. May be NULL. */
    void (*view_changed)(void *arg);
    void *view_changed_arg;
    /* Told when a file's reader is opened for a version (at open, flush,
     * compaction: before its edit is logged) and when the file is gone
     * from every view and version (deleted; or its edit failed; or the
     * tree closes). The open hook may refuse the file (an error, with a
     * message in errmsg, CAIRN_SST_ERRMSG_LEN bytes); *state is handed to
     * the close hook. The blob store counts references with them. */
    int (*file_open_hook)(void *arg, const cairn_sst_reader *r, void **state,
                          char *errmsg);
    void (*file_close_hook)(void *arg, void *state);
    void *file_hook_arg;
} cairn_tree_options;

void cairn_tree_options_init(cairn_tree_options *o);

/* Open (or create) the tree in dir: manifest, a reader per live file, and
 * leftovers of a crashed flush or compaction removed. errmsg (may be NULL,
 * else errlen bytes) gets a line naming the damaged file on
 * CAIRN_ECORRUPT/CAIRN_EVERSION. Starts the compaction thread (not when
 * read-only), idle until the first flush or cairn_tree_compact_kick, so
 * the caller can finish its own setup (the horizon callback may then
 * run). */
int cairn_tree_open(cairn_env *env, const char *dir,
                    const cairn_tree_options *o, cairn_tree **out,
                    char *errmsg, size_t errlen);
/* Stop the compaction thread (an output in progress is abandoned) and free
 * everything. No view may be held any more. */
void cairn_tree_close(cairn_tree *t);

/* WAL position and commit version the sorted files cover (from the
 * manifest): records up to log_lsn / versions up to last_version need no
 * replay. */
uint64_t cairn_tree_log_lsn(cairn_tree *t);
/* A new file number from the manifest's counter (blob files share it). */
uint64_t cairn_tree_new_file_number(cairn_tree *t);
/* Make the counter hand out nothing below next (numbers found on disk). */
void cairn_tree_bump_file_number(cairn_tree *t, uint64_t next);
uint64_t cairn_tree_last_version(cairn_tree *t);
/* Versions older than this may have lost history to flush or compaction
 * (from the manifest): reads as of them must be refused. */
uint64_t cairn_tree_horizon(cairn_tree *t, uint64_t *ts);

/* Write the entries of mt (a frozen memtable) into a level-0 file and record
 * it, with log_lsn and last_version, in the manifest; then install a new
 * view. An empty result adds no file but still records the counters.
 * Errors: CAIRN_EIO/ENOSPC (nothing changed; the caller keeps the memtable
 * and may retry), CAIRN_EREADONLY (the manifest failed before: the tree can
 * take no more edits). *bytes_out (may be NULL) gets the bytes written. */
int cairn_tree_flush(cairn_tree *t, cairn_memtable *mt, uint64_t log_lsn,
                     uint64_t last_version, uint64_t *bytes_out);

/* The current view, referenced. Never NULL for an open tree. */
cairn_tree_view *cairn_tree_view_get(cairn_tree *t);
void cairn_tree_view_ref(cairn_tree_view *v);
void cairn_tree_view_unref(cairn_tree_view *v); /* NULL: no-op */

/* Highest commit version held by the view's files (0: none). */
uint64_t cairn_tree_view_max_version(const cairn_tree_view *v);

/* The newest entry of key with version <= S and ts_us <= max_ts, searching
 * L0 newest first, then each level. 0 with *out and *pin filled (release the pin
 * when done with out->value), CAIRN_ENOTFOUND, or an error (CAIRN_ECORRUPT
 * with errmsg, CAIRN_EIO, ...). */
int cairn_tree_view_read(const cairn_tree_view *v, const void *key,
                         size_t klen, uint64_t S, uint64_t max_ts,
                         cairn_sst_entry *out, cairn_sst_pin *pin,
                         char *errmsg);

/* A hint that key (whose XXH3_64bits hash is `hash`) is about to be read:
 * starts loading the filter bytes of each file a read would look at (files
 * not open yet are left alone: a hint does no I/O). No effect on results. */
void cairn_tree_view_prefetch(const cairn_tree_view *v, const void *key,
                              size_t klen, uint64_t hash);

/* A point read in two halves, for batches: locate (after the key's filter
 * bytes were hinted with cairn_tree_view_prefetch) finds the file and the
 * data block a read at version S would look at first, and starts loading
 * that block's place in the block cache; read_at then reads as
 * cairn_tree_view_read does, from there. */
typedef struct cairn_tree_loc {
    const void *file; /* the first file whose filter allows key; NULL:
                         none does (none) or not located (a full read) */
    size_t block;     /* its data block to start at */
    bool none;        /* no file may hold key */
} cairn_tree_loc;
void cairn_tree_view_locate(const cairn_tree_view *v, const void *key,
                            size_t klen, uint64_t S, cairn_tree_loc *loc);
int cairn_tree_view_read_at(const cairn_tree_view *v,
                            const cairn_tree_loc *loc, const void *key,
                            size_t klen, uint64_t S, uint64_t max_ts,
                            cairn_sst_entry *out, cairn_sst_pin *pin,
                            char *errmsg);

/* Every entry of key (all versions, newest first) with version <= S, passed
 * to fn until it returns non-zero. Pointers are valid during the call. */
typedef int (*cairn_tree_entry_fn)(void *arg, const cairn_sst_entry *e);
int cairn_tree_view_versions(const cairn_tree_view *v, const void *key,
                             size_t klen, uint64_t S, cairn_tree_entry_fn fn,
                             void *arg);

/* The files of the view in search order (L0 newest first, then level 1,
 * 2, ... each in key order), for building iterators. Valid while the view
 * is held. A reader is NULL for an archived file whose archive cannot be
 * reached (cairn_tree_view_reader_ex says why: CAIRN_EUNAVAILABLE with a
 * message); each call tries to open it again. */
size_t cairn_tree_view_nfiles(const cairn_tree_view *v);
const cairn_sst_reader *cairn_tree_view_reader(const cairn_tree_view *v,
                                               size_t i);
int cairn_tree_view_reader_ex(const cairn_tree_view *v, size_t i,
                              const cairn_sst_reader **out, char *errmsg,
                              size_t errlen);
/* The manifest's metadata of file i (its tier, key range, creation
 * time). */
const cairn_file_meta *cairn_tree_view_meta(const cairn_tree_view *v,
                                            size_t i);
/* An iterator over file i (cairn_iiter_from_sst_ex), or, when the file
 * cannot be read, one that is invalid with that error. NULL: no memory. */
struct cairn_iiter;
struct cairn_iiter *cairn_tree_view_iter(const cairn_tree_view *v, size_t i,
                                         bool fill_cache);
int cairn_tree_view_file_level(const cairn_tree_view *v, size_t i);
const cairn_version *cairn_tree_view_version(const cairn_tree_view *v);

/* Every file whose reader is open (in the current version, or still held
 * by a view) and that is not being deleted, passed to fn under the files
 * map's lock (flushes and compactions wait meanwhile: for checks and
 * tools). Stops at fn's first non-zero result (returned). A file being
 * deleted still has its blob references counted until it is gone, so a
 * recount may briefly differ from the engine's counts. */
int cairn_tree_for_each_file(cairn_tree *t,
                             int (*fn)(void *arg, const cairn_sst_reader *r),
                             void *arg);

/* Write backpressure: 0 none, 1 slow down, 2 stop (wait for compaction). */
int cairn_tree_pressure(cairn_tree *t);
/* Wait (up to timeout_ms) for the pressure to drop below `level`. */
void cairn_tree_wait_pressure(cairn_tree *t, int level, unsigned timeout_ms);

/* Wake the compaction thread (after a flush it is woken anyway). */
void cairn_tree_compact_kick(cairn_tree *t);

/* Waits until the compaction thread is idle with no kick pending (it
 * found nothing more to merge), or until deadline (CLOCK_REALTIME):
 * CAIRN_EBUSY. 0 at once when the thread never started. */
int cairn_tree_wait_idle(cairn_tree *t, const struct timespec *deadline);

/* Compact until no level needs it (tests, tools); returns the first error. */
int cairn_tree_compact_all(cairn_tree *t);

/* A full compaction: every file above the deepest level holding data (at
 * least level 2, the first that takes the bottom-most codec, when there
 * are 3 levels or more) is merged down into it, level by level, one job
 * at a time; files going into that level are rewritten (never moved), so
 * they get its codec and the zeroed versions of the bottom level
 * (the compaction lock is taken per job, so flushes and the background
 * thread go on between them; files flushed meanwhile may stay above).
 * fn (may be NULL) is called after each job with the level being emptied,
 * the target level, the bytes that level held when its turn came (total)
 * and how many of them have left it (done <= total). Returns the first
 * error; CAIRN_EBUSY if the tree closes meanwhile. */
typedef void (*cairn_tree_progress_fn)(void *arg, int level, int target,
                                       uint64_t done, uint64_t total);
int cairn_tree_compact_full(cairn_tree *t, cairn_tree_progress_fn fn,
                            void *arg);

typedef struct cairn_tree_stats {
    int num_levels;
    uint64_t level_files[8];
    uint64_t level_bytes[8];
    uint64_t flushes, flush_bytes;       /* level-0 files written */
    uint64_t compactions, trivial_moves;
    uint64_t compact_read_bytes, compact_write_bytes;
    uint64_t dropped_versions;           /* by flush and compaction */
    uint64_t dropped_tombstones;
    uint64_t logical_bytes;              /* live files: keys + values */
    uint64_t file_bytes;                 /* live files: their sizes */
    int pressure;                        /* as cairn_tree_pressure */
    const char *pressure_reason;         /* "" / "level-0 files" / ... */
    int bg_error;                        /* last background error, 0 */
    cairn_block_cache_stats cache;
} cairn_tree_stats;
void cairn_tree_get_stats(cairn_tree *t, cairn_tree_stats *out);

cairn_block_cache *cairn_tree_cache(cairn_tree *t);

/* ---- the archive tier ----
 * Moves keep the file's number and entries; see tree.c ("the archive
 * tier") for the crash-safe order. One move at a time (others wait). */
typedef struct cairn_tree_move_info {
    uint64_t number;
    int level;
    uint64_t bytes_before, bytes_after; /* the file's size in each place */
} cairn_tree_move_info;

/* Archive / recall one file. 0 (also when it already is there);
 * CAIRN_ENOTFOUND (no such file in the current version, or compacted away
 * during the copy), CAIRN_ENOTSUP (no archive directory),
 * CAIRN_EUNAVAILABLE (the archive cannot be reached), CAIRN_EREADONLY,
 * I/O errors of the copy (nothing changed). info may be NULL. */
int cairn_tree_archive_file(cairn_tree *t, uint64_t number,
                            cairn_tree_move_info *info);
int cairn_tree_recall_file(cairn_tree *t, uint64_t number,
                           cairn_tree_move_info *info);
/* Archive every local file p selects now (p with no rule set: every local
 * file), calling fn (may be NULL) after each with its outcome. Returns the
 * first error (files compacted away meanwhile are not errors). */
typedef void (*cairn_tree_move_fn)(void *arg, const cairn_tree_move_info *i,
                                   int rc);
int cairn_tree_archive_run(cairn_tree *t, const cairn_tier_policy *p,
                           cairn_tree_move_fn fn, void *arg);
/* Check an archive marked unavailable: 0 when it answers (then leftovers
 * there are removed and compaction is woken), CAIRN_EUNAVAILABLE,
 * CAIRN_ENOTSUP (none configured). */
int cairn_tree_archive_probe(cairn_tree *t);
/* Start (and wake) the archive thread: its first run waits for this, so
 * the owner can finish its setup first. */
void cairn_tree_archive_kick(cairn_tree *t);
/* The tree is closing: stop the archive thread (a move under way is
 * abandoned: its copy is a leftover for the next open). The owner calls it
 * before it tears down what view_changed touches, then cairn_tree_close
 * (which calls it too). One thread. */
void cairn_tree_archive_stop(cairn_tree *t);

typedef struct cairn_tree_tier_stats {
    bool configured, available;
    char last_error[320];           /* the archive's last failure */
    uint64_t files[CAIRN_TIER_COUNT];
    uint64_t bytes[CAIRN_TIER_COUNT];         /* stored */
    uint64_t logical_bytes[CAIRN_TIER_COUNT]; /* keys + values */
    uint64_t hits[CAIRN_TIER_COUNT];    /* data blocks found in the cache */
    uint64_t misses[CAIRN_TIER_COUNT];  /* data blocks read from files */
    uint64_t read_p50_ns[CAIRN_TIER_COUNT], read_p99_ns[CAIRN_TIER_COUNT];
    /* block cache hits (sampled), per tier and over both */
    uint64_t hit_p50_ns[CAIRN_TIER_COUNT], hit_p99_ns[CAIRN_TIER_COUNT];
    uint64_t cache_hit_p50_ns, cache_hit_p99_ns;
    uint64_t archived, recalled;        /* moves since open */
    uint64_t archive_in_bytes, archive_out_bytes; /* sizes before/after */
    int last_move_error;
} cairn_tree_tier_stats;
void cairn_tree_get_tier_stats(cairn_tree *t, cairn_tree_tier_stats *out);

/* Has file_open_hook seen every file the tree holds? false while a file
 * of the archive could not be opened (the archive out of reach): what that
 * file refers to is not counted then, so nothing it may refer to may be
 * dropped (the blob store's GC waits). */
bool cairn_tree_refs_known(cairn_tree *t);

#endif /* CAIRN_LSM_TREE_H */
