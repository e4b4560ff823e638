/*
 * tree.c — the LSM tree: views over the manifest's versions, flush of
 * frozen memtables to level 0, leveled compaction on a background thread,
 * point reads through the levels, write backpressure, moves of files
 * between the local disk and the archive tier (tier/) and the archive
 * thread. See tree.h.
 *
 * Invariants:
 *   - Every file of the current version has a tfile in the files map (with
 *     an open reader, except an archived copy out of reach) and the
 *     current view holds a reference on it.
 *   - A tfile's references count the views holding it; at zero it is no
 *     longer in the current version (the current view holds every live
 *     file), so its reader closes, its blocks leave the cache and its file
 *     is unlinked; also while the tree closes (views the db let go then
 *     hold obsolete files), but not once tree_free lets the current view
 *     go (tearing_down: those files are the live ones).
 *   - Per user key, newer sources hold newer versions: L0 files newest
 *     first (flushes run oldest memtable first; an L0 compaction takes every
 *     L0 file there is when it starts), then L1, L2, ...
 *   - Levels >= 1 are disjoint by user key: outputs are cut only between
 *     user keys.
 *   - Files are copies keyed by (number, tier): a view holds the copy its
 *     version's tier names. At most one live copy per (number, tier); a
 *     dying copy (unreferenced, being unlinked) stays in the map until its
 *     file is gone, and no new copy is written at its path before that.
 *   - A tfile's reader is NULL only for an archived copy whose archive was
 *     out of reach; it is opened on first use (open_mu).
 *
 * Locking (in this order): tier_mu (one move between tiers at a time;
 * never held together with compact_mu), compact_mu (one compaction job at
 * a time: the background thread, cairn_tree_compact_all, or a job of
 * cairn_tree_compact_full, which takes it per job), install_mu (one manifest
 * edit + view swap at a time: flush, compaction or move), view_mu (the
 * current view pointer), files_mu (the files map), open_mu (one file's lazy
 * open), bg_mu and arch_mu (wake-ups, pressure).
 * No lock is held while a view is read.
 */
#include "lsm/tree.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "util/thread.h"

#include "cairn.h"
#include "lsm/iter.h"
#include "lsm/manifest.h"
#include "tier/tier.h"

/* One copy of a file: (number, tier) names it, the tier says where it is
 * (tier 0: the database directory; 1: the archive directory). Both copies
 * of a number exist for a while during a move: views made before the move
 * hold the old one. */
typedef struct tfile {
    uint64_t number;
    uint8_t tier;
    bool dying;   /* unreferenced, being closed and unlinked (files_mu):
                     still in the map so that no new copy is made at its
                     path before the unlink is done */
    /* The reader; NULL only for an archived file whose archive could not
     * be reached when it was opened: opened on first use (open_mu). */
    _Atomic(cairn_sst_reader *) r;
    pthread_mutex_t open_mu;
    /* file_open_hook has seen the reader (hstate is what it returned).
     * Until then (a file opened without its reader) the tree counts the
     * file in unhooked_files. Set before the reader is published. */
    bool hooked;
    void *hstate;
    atomic_int refs;
    struct tfile *next; /* files map chain (files_mu) */
} tfile;

struct cairn_tree_view {
    atomic_int refs;
    cairn_tree *t;
    cairn_version *v;
    size_t n;
    tfile **f;                             /* search order */
    size_t lstart[CAIRN_LSM_MAX_LEVELS + 1]; /* f index where level l starts */
    uint64_t max_version;
};

#define FILES_BUCKETS 1024

struct cairn_tree {
    cairn_env *env;
    char *dir;
    cairn_tree_options o;
    cairn_manifest *m;
    cairn_block_cache *cache;

    pthread_mutex_t compact_mu;
    pthread_mutex_t install_mu;
    pthread_mutex_t view_mu;
    cairn_tree_view *cur;
    pthread_mutex_t files_mu;
    tfile *files[FILES_BUCKETS];
    atomic_bool closing;
    /* Set by tree_free just before it lets the current view go: from then
     * on a file whose last reference goes is a live one (kept on disk);
     * before, even while closing, it is obsolete and unlinked. */
    atomic_bool tearing_down;
    /* Files in the map whose reader could not be opened yet (an archive
     * out of reach): file_open_hook has not seen them, so what they refer
     * to (blobs) is not counted while this is above 0. */
    atomic_uint_fast64_t unhooked_files;

    pthread_mutex_t bg_mu;
    pthread_cond_t bg_cv;       /* work for the compaction thread */
    pthread_cond_t installed_cv; /* a new view was installed */
    bool bg_kick, bg_stop, bg_started;
    bool bg_busy; /* the thread is between taking a kick and going idle */
    pthread_t bg;

    atomic_uint_fast64_t st_flushes, st_flush_bytes, st_compactions,
        st_moves, st_cread, st_cwrite, st_dropped, st_dropped_tombs;
    atomic_int bg_error;
    atomic_uint_fast64_t l0_files; /* of the current view: read by every
                                      commit (backpressure) without a lock */

    /* The archive tier (see tier/tier.h; aenv NULL: none configured). */
    cairn_env *aenv;   /* the archive env over env */
    char *adir;
    cairn_sst_read_stats rstats[CAIRN_TIER_COUNT]; /* block reads per tier */
    pthread_mutex_t tier_mu; /* one move (archive or recall) at a time;
                                taken before compact_mu is never held */
    pthread_mutex_t arch_mu; /* the archive thread's wake-ups */
    pthread_cond_t arch_cv;
    bool arch_stop, arch_started, arch_kick;
    pthread_t arch;
    atomic_uint_fast64_t st_archived, st_recalled, st_arch_in, st_arch_out;
    atomic_int arch_error; /* last failed move's error (0: none) */
};

void cairn_tree_options_init(cairn_tree_options *o)
{
    memset(o, 0, sizeof *o);
    o->num_levels = CAIRN_LSM_DEFAULT_LEVELS;
    o->l0_compaction_trigger = 4;
    o->l0_slowdown = 20;
    o->l0_stop = 36;
    o->base_level_bytes = 256ull << 20;
    o->level_ratio = 10;
    o->target_file_size = 64ull << 20;
    o->block_size = 4096;
    o->zstd_level = 3;
    o->block_cache_bytes = 256u << 20;
    o->bottom_codec = -1; /* zstd unless codec_set (see tree.h) */
    o->archive_zstd_level = CAIRN_TIER_DEFAULT_ZSTD_LEVEL;
    o->archive_check_ms = 1000;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t horizon(cairn_tree *t, uint64_t *ts)
{
    *ts = 0;
    return t->o.horizon ? t->o.horizon(t->o.horizon_arg, ts) : 0;
}

static void sst_opts_for(cairn_tree *t, int level, cairn_sst_options *so)
{
    cairn_sst_options_init(so);
    so->block_size = t->o.block_size;
    so->codec = (cairn_sst_codec)t->o.codec[level];
    so->zstd_level = t->o.zstd_level;
}

/* ---------- files map ---------- */

/* files_mu held. Dying copies are found too (callers check). */
static tfile *files_find(cairn_tree *t, uint64_t number, uint8_t tier)
{
    for (tfile *f = t->files[number % FILES_BUCKETS]; f; f = f->next)
        if (f->number == number && f->tier == tier)
            return f;
    return NULL;
}

/* Where the copy of number in tier lives, and the env to reach it. */
static cairn_env *tier_path(cairn_tree *t, uint64_t number, uint8_t tier,
                            char *path, size_t n)
{
    if (tier == CAIRN_TIER_LOCAL) {
        cairn_lsm_sst_path(path, n, t->dir, number);
        return t->env;
    }
    cairn_lsm_sst_path(path, n, t->adir ? t->adir : "(no archive)", number);
    return tier == CAIRN_TIER_ARCHIVE ? t->aenv : NULL; /* 2..255: unused */
}

/* The block cache key of a copy: the number, with the top bit for the
 * archive (the copies' blocks differ). */
static uint64_t tier_file_id(uint64_t number, uint8_t tier)
{
    return tier ? number | (1ull << 63) : number;
}

/* A new local file (a flush or compaction output) numbered number: its
 * data blocks go into the block cache as they are written, while it has
 * room. */
static void sst_opts_fill(cairn_tree *t, uint64_t number, cairn_sst_options *so)
{
    so->fill_cache = t->cache;
    so->fill_file_id = tier_file_id(number, 0);
}

/* Whether the archive directory holds any NNNNNN.sst (false also when it
 * cannot be listed). */
static bool archive_has_files(cairn_tree *t)
{
    char **names = NULL;
    size_t n = 0;
    if (cairn_env_list_dir(t->aenv, t->adir, &names, &n) != 0)
        return false;
    bool any = false;
    for (size_t i = 0; i < n && !any; i++)
        any = cairn_lsm_parse_sst_name(names[i], NULL);
    cairn_env_free_list(names, n);
    return any;
}

/* Open the reader of a copy. An archived file's failures to reach the
 * archive are CAIRN_EUNAVAILABLE (err says why). */
static int open_reader(cairn_tree *t, uint64_t number, uint8_t tier,
                       cairn_sst_reader **out, char *err, size_t errlen)
{
    char path[4096];
    cairn_env *env = tier_path(t, number, tier, path, sizeof path);
    *out = NULL;
    if (!env) {
        if (err && errlen)
            snprintf(err, errlen, "%06llu.sst is in archive tier %u and %s",
                     (unsigned long long)number, (unsigned)tier,
                     tier == CAIRN_TIER_ARCHIVE
                         ? "no archive directory is configured"
                         : "no such tier is known");
        return CAIRN_EUNAVAILABLE;
    }
    char msg[CAIRN_SST_ERRMSG_LEN] = "";
    int rc = cairn_sst_open(env, path, tier_file_id(number, tier), t->cache,
                            out, msg);
    if (rc == CAIRN_ENOTFOUND && tier == CAIRN_TIER_ARCHIVE &&
        !archive_has_files(t)) {
        /* An archive directory with no sorted file at all while the
         * manifest places files there: a mount point whose volume is gone,
         * not a lost file. */
        snprintf(msg, sizeof msg, "archive tier unavailable: %.150s holds "
                                  "no sorted file (is its volume mounted?)",
                 t->adir);
        cairn_tier_env_mark_unavailable(t->aenv, msg + 26);
        rc = CAIRN_EUNAVAILABLE;
    } else if (rc == CAIRN_ENOTFOUND) {
        /* The manifest names it, so the database is damaged: not "no
         * database here" (which a read-only open takes for "never
         * flushed", and would then show the log alone). */
        snprintf(msg, sizeof msg, "%.200s: missing (the manifest references it)",
                 path);
        rc = CAIRN_ECORRUPT;
    } else if (rc == CAIRN_EUNAVAILABLE) {
        char why[320];
        cairn_tier_env_last_error(env, why, sizeof why);
        snprintf(msg, sizeof msg, "archive tier unavailable: %.200s", why);
    }
    if (rc != 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", msg[0] ? msg : cairn_strerror(rc));
        return rc;
    }
    cairn_sst_set_read_stats(*out, &t->rstats[tier ? 1 : 0]);
    return 0;
}

/* Tell file_open_hook about f's reader r (r not yet published in f). */
static int tfile_hook(cairn_tree *t, tfile *f, const cairn_sst_reader *r,
                      char *err, size_t errlen)
{
    if (!t->o.file_open_hook) {
        f->hooked = true;
        return 0;
    }
    char msg[CAIRN_SST_ERRMSG_LEN];
    msg[0] = '\0';
    int rc = t->o.file_open_hook(t->o.file_hook_arg, r, &f->hstate, msg);
    if (rc != 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", msg[0] ? msg : cairn_strerror(rc));
        return rc;
    }
    f->hooked = true;
    return 0;
}

/* The reader of f, opened now if it could not be before. */
static int tfile_reader(cairn_tree *t, tfile *f, const cairn_sst_reader **out,
                        char *err, size_t errlen)
{
    cairn_sst_reader *r = atomic_load(&f->r);
    int rc = 0;
    if (!r) {
        pthread_mutex_lock(&f->open_mu);
        r = atomic_load(&f->r);
        if (!r) {
            rc = open_reader(t, f->number, f->tier, &r, err, errlen);
            if (rc == 0 && (rc = tfile_hook(t, f, r, err, errlen)) != 0) {
                cairn_sst_close(r);
                r = NULL;
            }
            if (rc == 0) {
                atomic_fetch_sub(&t->unhooked_files, 1);
                atomic_store(&f->r, r);
            }
        }
        pthread_mutex_unlock(&f->open_mu);
    }
    *out = r;
    return rc;
}

/* Close f's reader, tell file_close_hook (or, for a file whose reader was
 * never opened, take it out of unhooked_files), free f. */
static void tfile_free(cairn_tree *t, tfile *f)
{
    cairn_sst_close(atomic_load(&f->r));
    if (f->hooked) {
        if (t->o.file_close_hook)
            t->o.file_close_hook(t->o.file_hook_arg, f->hstate);
    } else {
        atomic_fetch_sub(&t->unhooked_files, 1);
    }
    pthread_mutex_destroy(&f->open_mu);
    free(f);
}

/* Open number's reader (the copy in tier) and add it to the map with no
 * reference yet. lenient: an archived file whose archive cannot be reached
 * is added without a reader (opened on first use). */
static int files_open(cairn_tree *t, uint64_t number, uint8_t tier,
                      bool lenient, char *err, size_t errlen)
{
    tfile *f = calloc(1, sizeof *f);
    if (!f)
        return CAIRN_ENOMEM;
    cairn_sst_reader *r = NULL;
    int rc = open_reader(t, number, tier, &r, err, errlen);
    if (rc == CAIRN_EUNAVAILABLE && lenient && tier != CAIRN_TIER_LOCAL)
        rc = 0;
    if (rc != 0) {
        free(f);
        return rc;
    }
    if (r && (rc = tfile_hook(t, f, r, err, errlen)) != 0) {
        cairn_sst_close(r);
        free(f);
        return rc;
    }
    if (!r)
        atomic_fetch_add(&t->unhooked_files, 1);
    atomic_init(&f->r, r);
    pthread_mutex_init(&f->open_mu, NULL);
    f->number = number;
    f->tier = tier;
    atomic_init(&f->refs, 0);
    pthread_mutex_lock(&t->files_mu);
    f->next = t->files[number % FILES_BUCKETS];
    t->files[number % FILES_BUCKETS] = f;
    pthread_mutex_unlock(&t->files_mu);
    return 0;
}

bool cairn_tree_refs_known(cairn_tree *t)
{
    return atomic_load(&t->unhooked_files) == 0;
}

/* Drop a reference; at zero the file is gone from every view. */
static void tfile_unref(cairn_tree *t, tfile *f)
{
    if (atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    pthread_mutex_lock(&t->files_mu);
    f->dying = true;
    pthread_mutex_unlock(&t->files_mu);
    cairn_sst_reader *r = atomic_load(&f->r);
    /* Its data blocks, by the reader's index; a file never opened may
     * still have blocks its builder put there: the whole walk. */
    if (r) /* opened with t->cache and this file id */
        cairn_sst_uncache(r);
    else
        cairn_block_cache_erase_file(t->cache,
                                     tier_file_id(f->number, f->tier));
    cairn_sst_close(r);
    atomic_store(&f->r, NULL);
    if (!atomic_load(&t->tearing_down)) {
        char path[4096];
        cairn_env *env = tier_path(t, f->number, f->tier, path, sizeof path);
        if (env) /* best effort: open removes leftovers */
            cairn_env_unlink(env, path);
    }
    pthread_mutex_lock(&t->files_mu);
    tfile **pp = &t->files[f->number % FILES_BUCKETS];
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
    pthread_mutex_unlock(&t->files_mu);
    tfile_free(t, f); /* after the unlink: a crash before it keeps the
                         file, whose blobs are then still there at the
                         next open */
}

/* ---------- views ---------- */

static cairn_tree_view *view_build(cairn_tree *t, cairn_version *v)
{
    cairn_tree_view *w = calloc(1, sizeof *w);
    size_t total = cairn_version_total_files(v);
    if (!w || !(w->f = calloc(total ? total : 1, sizeof *w->f))) {
        free(w);
        return NULL;
    }
    atomic_init(&w->refs, 1);
    w->t = t;
    w->v = v;
    cairn_version_ref(v);
    size_t n = 0;
    pthread_mutex_lock(&t->files_mu);
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++) {
        w->lstart[l] = n;
        size_t nf = cairn_version_num_files(v, l);
        for (size_t i = 0; i < nf; i++) {
            const cairn_file_meta *m = cairn_version_file(v, l, i);
            tfile *f = files_find(t, m->number, m->tier);
            if (!f || f->dying) { /* callers open every file before building */
                pthread_mutex_unlock(&t->files_mu);
                for (size_t j = 0; j < n; j++)
                    tfile_unref(t, w->f[j]);
                cairn_version_unref(v);
                free(w->f);
                free(w);
                return NULL;
            }
            atomic_fetch_add(&f->refs, 1);
            w->f[n++] = f;
            if (m->max_version > w->max_version)
                w->max_version = m->max_version;
        }
    }
    w->lstart[CAIRN_LSM_MAX_LEVELS] = n;
    w->n = n;
    pthread_mutex_unlock(&t->files_mu);
    return w;
}

cairn_tree_view *cairn_tree_view_get(cairn_tree *t)
{
    pthread_mutex_lock(&t->view_mu);
    cairn_tree_view *w = t->cur;
    atomic_fetch_add(&w->refs, 1);
    pthread_mutex_unlock(&t->view_mu);
    return w;
}

void cairn_tree_view_ref(cairn_tree_view *v)
{
    atomic_fetch_add(&v->refs, 1);
}

void cairn_tree_view_unref(cairn_tree_view *v)
{
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1)
        return;
    for (size_t i = 0; i < v->n; i++)
        tfile_unref(v->t, v->f[i]);
    cairn_version_unref(v->v);
    free(v->f);
    free(v);
}

/* Make v current (install_mu held). */
static int view_install(cairn_tree *t, cairn_version *v)
{
    cairn_tree_view *w = view_build(t, v);
    if (!w)
        return CAIRN_ENOMEM;
    pthread_mutex_lock(&t->view_mu);
    cairn_tree_view *old = t->cur;
    t->cur = w;
    atomic_store(&t->l0_files, w->lstart[1] - w->lstart[0]);
    pthread_mutex_unlock(&t->view_mu);
    cairn_tree_view_unref(old);
    pthread_mutex_lock(&t->bg_mu);
    pthread_cond_broadcast(&t->installed_cv);
    pthread_mutex_unlock(&t->bg_mu);
    return 0;
}

uint64_t cairn_tree_view_max_version(const cairn_tree_view *v)
{
    return v->max_version;
}

size_t cairn_tree_view_nfiles(const cairn_tree_view *v)
{
    return v->n;
}

const cairn_sst_reader *cairn_tree_view_reader(const cairn_tree_view *v,
                                               size_t i)
{
    const cairn_sst_reader *r = NULL;
    if (i < v->n)
        tfile_reader(v->t, v->f[i], &r, NULL, 0);
    return r;
}

int cairn_tree_view_reader_ex(const cairn_tree_view *v, size_t i,
                              const cairn_sst_reader **out, char *errmsg,
                              size_t errlen)
{
    *out = NULL;
    if (i >= v->n)
        return CAIRN_EINVAL;
    return tfile_reader(v->t, v->f[i], out, errmsg, errlen);
}

const cairn_file_meta *cairn_tree_view_meta(const cairn_tree_view *v,
                                            size_t i)
{
    if (i >= v->n)
        return NULL;
    int l = cairn_tree_view_file_level(v, i);
    return cairn_version_file(v->v, l, i - v->lstart[l]);
}

/* An iterator that is invalid with an error: a file that cannot be read. */
typedef struct err_iiter {
    cairn_iiter base;
    int rc;
    char msg[CAIRN_SST_ERRMSG_LEN];
} err_iiter;
static void ei_nop(cairn_iiter *it) { (void)it; }
static void ei_seek(cairn_iiter *it, const void *k, size_t kl, uint64_t v)
{
    (void)it, (void)k, (void)kl, (void)v;
}
static bool ei_valid(const cairn_iiter *it) { (void)it; return false; }
static void ei_entry(const cairn_iiter *it, cairn_ientry *out)
{
    (void)it;
    memset(out, 0, sizeof *out);
}
static int ei_status(const cairn_iiter *it)
{
    return ((const err_iiter *)it)->rc;
}
static const char *ei_errmsg(const cairn_iiter *it)
{
    return ((const err_iiter *)it)->msg;
}
static void ei_destroy(cairn_iiter *it) { free(it); }
static const cairn_iiter_ops err_iiter_ops = {
    .seek_first = ei_nop,
    .seek_last = ei_nop,
    .seek = ei_seek,
    .seek_for_prev = ei_seek,
    .next = ei_nop,
    .prev = ei_nop,
    .valid = ei_valid,
    .entry = ei_entry,
    .status = ei_status,
    .errmsg = ei_errmsg,
    .destroy = ei_destroy,
};

cairn_iiter *cairn_tree_view_iter(const cairn_tree_view *v, size_t i,
                                  bool fill_cache)
{
    const cairn_sst_reader *r = NULL;
    char msg[CAIRN_SST_ERRMSG_LEN] = "";
    int rc = cairn_tree_view_reader_ex(v, i, &r, msg, sizeof msg);
    if (rc == 0)
        return cairn_iiter_from_sst_ex(r, fill_cache);
    err_iiter *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->base.ops = &err_iiter_ops;
    e->rc = rc;
    snprintf(e->msg, sizeof e->msg, "%s", msg[0] ? msg : cairn_strerror(rc));
    return &e->base;
}

int cairn_tree_view_file_level(const cairn_tree_view *v, size_t i)
{
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++)
        if (i < v->lstart[l + 1])
            return l;
    return -1;
}

const cairn_version *cairn_tree_view_version(const cairn_tree_view *v)
{
    return v->v;
}

/* By the manifest's key range (the file's own, which a reader may not be
 * open to tell: an archived file while the archive is away). */
static bool in_range(const cairn_file_meta *m, const void *key, size_t klen)
{
    if (m->entries == 0)
        return false;
    return cairn_key_cmp(key, klen, m->smallest.ukey, m->smallest.ulen) >= 0 &&
           cairn_key_cmp(key, klen, m->largest.ukey, m->largest.ulen) <= 0;
}

/* The files that may hold key, in search order: every L0 file whose range
 * covers it, then at most one per level. */
static size_t candidates(const cairn_tree_view *v, const void *key,
                         size_t klen, tfile **out)
{
    size_t n = 0;
    for (size_t i = v->lstart[0]; i < v->lstart[1]; i++)
        if (in_range(cairn_version_file(v->v, 0, i - v->lstart[0]), key, klen))
            out[n++] = v->f[i];
    for (int l = 1; l < CAIRN_LSM_MAX_LEVELS; l++) {
        size_t nf = v->lstart[l + 1] - v->lstart[l];
        if (!nf)
            continue;
        size_t idx = cairn_version_find_index(v->v, l, key, klen);
        if (idx < nf && in_range(cairn_version_file(v->v, l, idx), key, klen))
            out[n++] = v->f[v->lstart[l] + idx];
    }
    return n;
}

int cairn_tree_view_read(const cairn_tree_view *v, const void *key,
                         size_t klen, uint64_t S, uint64_t max_ts,
                         cairn_sst_entry *out, cairn_sst_pin *pin,
                         char *errmsg)
{
    if (v->n == 0)
        return CAIRN_ENOTFOUND;
    tfile *stack[64];
    tfile **cand = v->n <= 64 ? stack : malloc(v->n * sizeof *cand);
    if (!cand)
        return CAIRN_ENOMEM;
    size_t n = candidates(v, key, klen, cand);
    int rc = CAIRN_ENOTFOUND;
    for (size_t i = 0; i < n && rc == CAIRN_ENOTFOUND; i++) {
        const cairn_sst_reader *r;
        rc = tfile_reader(v->t, cand[i], &r, errmsg,
                          errmsg ? CAIRN_SST_ERRMSG_LEN : 0);
        if (rc == 0)
            rc = cairn_sst_get(r, key, klen, S, max_ts, out, pin, errmsg);
    }
    if (cand != stack)
        free(cand);
    return rc;
}

void cairn_tree_view_prefetch(const cairn_tree_view *v, const void *key,
                              size_t klen, uint64_t hash)
{
    tfile *cand[64]; /* L0's files and one per deeper level at most */
    if (v->n == 0 ||
        v->lstart[1] - v->lstart[0] + CAIRN_LSM_MAX_LEVELS > 64)
        return;
    size_t n = candidates(v, key, klen, cand);
    for (size_t i = 0; i < n; i++) {
        const cairn_sst_reader *r = atomic_load(&cand[i]->r);
        if (r)
            cairn_sst_prefetch(r, hash);
    }
}

void cairn_tree_view_locate(const cairn_tree_view *v, const void *key,
                            size_t klen, uint64_t S, cairn_tree_loc *loc)
{
    loc->file = NULL;
    loc->block = 0;
    loc->none = false;
    if (v->n == 0) {
        loc->none = true;
        return;
    }
    tfile *cand[64];
    if (v->lstart[1] - v->lstart[0] + CAIRN_LSM_MAX_LEVELS > 64)
        return; /* not located: a full read */
    size_t n = candidates(v, key, klen, cand);
    for (size_t i = 0; i < n; i++) {
        const cairn_sst_reader *r = atomic_load(&cand[i]->r);
        if (!r)
            return; /* a file to open first: a full read does */
        size_t b = cairn_sst_locate(r, key, klen, S);
        if (b != SIZE_MAX) {
            loc->file = cand[i];
            loc->block = b;
            return;
        }
    }
    loc->none = true;
}

int cairn_tree_view_read_at(const cairn_tree_view *v,
                            const cairn_tree_loc *loc, const void *key,
                            size_t klen, uint64_t S, uint64_t max_ts,
                            cairn_sst_entry *out, cairn_sst_pin *pin,
                            char *errmsg)
{
    if (loc->none)
        return CAIRN_ENOTFOUND;
    if (loc->file) {
        /* The view holds the file, so its reader stays open. */
        const cairn_sst_reader *r = atomic_load(&((tfile *)loc->file)->r);
        int rc = cairn_sst_get_at(r, loc->block, key, klen, S, max_ts, out,
                                  pin, errmsg);
        if (rc != CAIRN_ENOTFOUND)
            return rc;
        /* Not there after all (a filter's false positive, or only
         * versions too new for max_ts): the files after it may hold it;
         * the whole read decides (those before it it rules out again). */
    }
    return cairn_tree_view_read(v, key, klen, S, max_ts, out, pin, errmsg);
}

int cairn_tree_view_versions(const cairn_tree_view *v, const void *key,
                             size_t klen, uint64_t S, cairn_tree_entry_fn fn,
                             void *arg)
{
    if (v->n == 0)
        return 0;
    tfile *stack[64];
    tfile **cand = v->n <= 64 ? stack : malloc(v->n * sizeof *cand);
    if (!cand)
        return CAIRN_ENOMEM;
    size_t n = candidates(v, key, klen, cand);
    int rc = 0;
    bool stop = false;
    for (size_t i = 0; i < n && rc == 0 && !stop; i++) {
        const cairn_sst_reader *r;
        rc = tfile_reader(v->t, cand[i], &r, NULL, 0);
        if (rc != 0)
            break;
        if (!cairn_sst_may_contain(r, key, klen))
            continue;
        cairn_sst_iter *it;
        rc = cairn_sst_iter_new(r, &it);
        if (rc != 0)
            break;
        for (cairn_sst_iter_seek(it, key, klen, S);
             cairn_sst_iter_valid(it) && !stop; cairn_sst_iter_next(it)) {
            cairn_sst_entry e;
            cairn_sst_iter_entry(it, &e);
            if (cairn_key_cmp(e.key, e.klen, key, klen) != 0)
                break;
            stop = fn(arg, &e) != 0;
        }
        if (!stop)
            rc = cairn_sst_iter_status(it);
        cairn_sst_iter_free(it);
    }
    if (cand != stack)
        free(cand);
    return rc;
}

/* ---------- writing files ---------- */

/* Per user key, which entries survive (entries come in internal order). */
typedef struct keep_state {
    uint64_t H;
    bool bottom;      /* may drop deletions at or below H */
    bool have_key;
    uint8_t *key;
    size_t klen, kcap;
    bool seen_le_h;   /* the newest version <= H of this key went by */
    uint64_t dropped, dropped_tombs;
} keep_state;

/* true: write e. */
static int keep_entry(keep_state *k, const uint8_t *key, size_t klen,
                      uint64_t version, int kind, bool *keep)
{
    bool same = k->have_key &&
                cairn_key_cmp(key, klen, k->key, k->klen) == 0;
    if (!same) {
        if (klen > k->kcap) {
            uint8_t *nk = realloc(k->key, klen ? klen : 1);
            if (!nk)
                return CAIRN_ENOMEM;
            k->key = nk;
            k->kcap = klen;
        }
        if (klen)
            memcpy(k->key, key, klen);
        k->klen = klen;
        k->have_key = true;
        k->seen_le_h = false;
    }
    if (version > k->H) {
        *keep = true;
        return 0;
    }
    if (k->seen_le_h) {
        k->dropped++;
        *keep = false;
        return 0;
    }
    k->seen_le_h = true;
    if (kind == CAIRN_SST_DELETE && k->bottom) {
        k->dropped_tombs++;
        *keep = false;
        return 0;
    }
    *keep = true;
    return 0;
}

typedef struct out_file {
    uint64_t number;
    cairn_file_meta *meta;
} out_file;

static int meta_from_props(uint64_t number, int level,
                           const cairn_sst_props *p, cairn_file_meta **out)
{
    cairn_file_meta m;
    memset(&m, 0, sizeof m);
    m.number = number;
    m.level = (uint32_t)level;
    m.file_size = p->file_size;
    m.smallest.ukey = p->smallest_key;
    m.smallest.ulen = p->smallest_klen;
    m.smallest.version = p->smallest_version;
    m.largest.ukey = p->largest_key;
    m.largest.ulen = p->largest_klen;
    m.largest.version = p->largest_version;
    m.min_version = p->min_version;
    m.max_version = p->max_version;
    m.entries = p->entries;
    m.tombstones = p->deletes;
    m.created_us = now_us();
    *out = cairn_file_meta_new(&m);
    return *out ? 0 : CAIRN_ENOMEM;
}

static void remove_file(cairn_tree *t, uint64_t number)
{
    char path[4096];
    cairn_lsm_sst_path(path, sizeof path, t->dir, number);
    cairn_env_unlink(t->env, path);
    /* Its builder may have filled the cache (sst_opts_fill). */
    cairn_block_cache_erase_file(t->cache, tier_file_id(number, 0));
}

/* Record an edit and install its version (install_mu held). added files
 * are opened first. On a manifest failure the files stay on disk (the next
 * open decides whether the edit is there). */
/* Take an unreferenced file out of the map and close its reader (its file
 * stays). */
static void files_forget(cairn_tree *t, uint64_t number, uint8_t tier)
{
    pthread_mutex_lock(&t->files_mu);
    tfile **pp = &t->files[number % FILES_BUCKETS];
    while (*pp && ((*pp)->number != number || (*pp)->tier != tier))
        pp = &(*pp)->next;
    tfile *f = *pp;
    if (f && atomic_load(&f->refs) == 0 && !f->dying)
        *pp = f->next;
    else
        f = NULL;
    pthread_mutex_unlock(&t->files_mu);
    if (f) {
        cairn_block_cache_erase_file(t->cache, tier_file_id(number, tier));
        tfile_free(t, f);
    }
}

static int install_edit(cairn_tree *t, cairn_version_edit *e,
                        uint64_t user_add, uint64_t written_add)
{
    int rc = 0;
    if (user_add || written_add) { /* running totals for write amplification */
        cairn_version *cur = cairn_manifest_current(t->m);
        uint64_t u, w;
        cairn_version_io(cur, &u, &w);
        cairn_version_unref(cur);
        cairn_version_edit_set_io(e, u + user_add, w + written_add);
    }
    size_t opened = 0;
    for (; opened < e->nadded && rc == 0; opened++)
        rc = files_open(t, e->added[opened]->number, e->added[opened]->tier,
                        false, NULL, 0);
    if (rc == 0) {
        cairn_version_edit_set_next_file(e,
                                         cairn_manifest_next_file_number(t->m));
        cairn_version *nv = NULL;
        rc = cairn_manifest_log_and_apply(t->m, e, &nv);
        if (rc == 0) {
            /* Logged: the version must become current. Out of memory here
             * waits for memory rather than leave the view behind. */
            for (int tries = 0; tries < 10000; tries++) {
                if (view_install(t, nv) == 0)
                    break;
                struct timespec d = {0, 1000000};
                nanosleep(&d, NULL);
            }
            cairn_version_unref(nv);
            return 0;
        }
    }
    if (rc != 0)
        for (size_t i = 0; i < opened; i++)
            files_forget(t, e->added[i]->number, e->added[i]->tier);
    return rc;
}

int cairn_tree_flush(cairn_tree *t, cairn_memtable *mt, uint64_t log_lsn,
                     uint64_t last_version, uint64_t *bytes_out)
{
    if (bytes_out)
        *bytes_out = 0;
    if (t->o.read_only)
        return CAIRN_EREADONLY;
    int rc = cairn_manifest_error(t->m);
    if (rc != 0)
        return CAIRN_EREADONLY;
    uint64_t hts;
    keep_state k = {.H = horizon(t, &hts)};
    uint64_t number = cairn_manifest_new_file_number(t->m);
    char path[4096];
    cairn_lsm_sst_path(path, sizeof path, t->dir, number);
    cairn_sst_options so;
    sst_opts_for(t, 0, &so);
    sst_opts_fill(t, number, &so);
    cairn_sst_builder *b = NULL;
    rc = cairn_sst_builder_new(t->env, path, &so, &b);
    cairn_mt_iter it;
    cairn_mt_iter_init(&it, mt);
    uint64_t n = 0;
    for (cairn_mt_iter_seek_first(&it); rc == 0 && cairn_mt_iter_valid(&it);
         cairn_mt_iter_next(&it)) {
        cairn_mt_entry e;
        cairn_mt_iter_entry(&it, &e);
        bool keep;
        rc = keep_entry(&k, e.key, e.klen, e.version, (int)e.kind, &keep);
        if (rc == 0 && keep) {
            rc = cairn_sst_builder_add(b, e.key, e.klen, e.version, e.ts_us,
                                       (cairn_sst_kind)e.kind, e.value,
                                       e.vlen);
            n++;
        }
    }
    free(k.key);
    k.key = NULL;
    cairn_sst_props props;
    memset(&props, 0, sizeof props);
    cairn_file_meta *meta = NULL;
    if (rc == 0 && n == 0) {
        cairn_sst_builder_abandon(b);
        b = NULL;
    } else if (rc == 0) {
        rc = cairn_sst_builder_finish(b, &props); /* frees b */
        b = NULL;
        if (rc == 0)
            rc = cairn_env_sync_dir(t->env, t->dir);
        if (rc == 0)
            rc = meta_from_props(number, 0, &props, &meta);
        if (rc != 0)
            remove_file(t, number);
    } else if (b) {
        cairn_sst_builder_abandon(b);
    }
    uint64_t props_size = props.file_size;
    uint64_t props_user = props.raw_key_bytes + props.raw_value_bytes;
    cairn_sst_props_clear(&props);
    if (rc != 0)
        return rc;

    cairn_version_edit e;
    cairn_version_edit_init(&e);
    if (meta) {
        rc = cairn_version_edit_add_meta(&e, meta);
        cairn_file_meta_unref(meta);
    }
    cairn_version_edit_set_log_lsn(&e, log_lsn);
    cairn_version_edit_set_last_version(&e, last_version);
    if (k.dropped)
        cairn_version_edit_set_horizon(&e, k.H, hts);
    if (rc == 0) {
        pthread_mutex_lock(&t->install_mu);
        rc = install_edit(t, &e, props_user, props_size);
        pthread_mutex_unlock(&t->install_mu);
    }
    cairn_version_edit_clear(&e);
    if (rc == CAIRN_EINVAL || rc == CAIRN_ENOMEM) {
        /* Nothing was logged: the file is nobody's. */
        if (meta)
            remove_file(t, number);
    }
    if (rc == 0) {
        atomic_fetch_add(&t->st_flushes, meta ? 1 : 0);
        atomic_fetch_add(&t->st_flush_bytes, props_size);
        atomic_fetch_add(&t->st_dropped, k.dropped);
        if (bytes_out)
            *bytes_out = props_size;
        cairn_tree_compact_kick(t);
    } else if (cairn_manifest_error(t->m)) {
        rc = CAIRN_EREADONLY;
    }
    return rc;
}

/* ---------- compaction ---------- */

typedef struct cjob {
    int level;                        /* inputs from level and level + 1 */
    const cairn_file_meta **in[2];
    size_t nin[2];
    bool move;                        /* one file, nothing below: re-level */
    bool bottom;                      /* no data below level + 1 */
} cjob;

static void cjob_free(cjob *j)
{
    free(j->in[0]);
    free(j->in[1]);
    memset(j, 0, sizeof *j);
}

static uint64_t level_target(const cairn_tree *t, int level)
{
    uint64_t x = t->o.base_level_bytes;
    for (int l = 1; l < level; l++)
        x *= t->o.level_ratio;
    return x;
}

/* Smallest and largest user key over files. */
static void files_range(const cairn_file_meta *const *f, size_t n,
                        const uint8_t **lo, size_t *lolen, const uint8_t **hi,
                        size_t *hilen)
{
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || cairn_key_cmp(f[i]->smallest.ukey,
                                         f[i]->smallest.ulen, *lo, *lolen) < 0) {
            *lo = f[i]->smallest.ukey;
            *lolen = f[i]->smallest.ulen;
        }
        if (i == 0 || cairn_key_cmp(f[i]->largest.ukey, f[i]->largest.ulen,
                                         *hi, *hilen) > 0) {
            *hi = f[i]->largest.ukey;
            *hilen = f[i]->largest.ulen;
        }
    }
}

static int job_fill(const cairn_version *v, cjob *j);

/* Choose the next compaction of v, if any level needs one; levels whose
 * bit is set in skip are passed over. */
static int pick(cairn_tree *t, const cairn_version *v, cjob *j, unsigned skip)
{
    memset(j, 0, sizeof *j);
    int nl = t->o.num_levels;
    int level = -1;
    size_t n0 = cairn_version_num_files(v, 0);
    if (n0 >= t->o.l0_compaction_trigger && !(skip & 1u)) {
        level = 0;
    } else {
        double best = 1.0;
        for (int l = 1; l < nl - 1; l++) {
            if (skip & (1u << l))
                continue;
            double score = (double)cairn_version_level_bytes(v, l) /
                           (double)level_target(t, l);
            if (score >= best) {
                best = score;
                level = l;
            }
        }
    }
    if (level < 0)
        return CAIRN_ENOTFOUND;
    j->level = level;
    if (level == 0) {
        j->in[0] = malloc(n0 * sizeof *j->in[0]);
        if (!j->in[0])
            return CAIRN_ENOMEM;
        for (size_t i = 0; i < n0; i++)
            j->in[0][i] = cairn_version_file(v, 0, i);
        j->nin[0] = n0;
    } else {
        size_t nf = cairn_version_num_files(v, level);
        size_t pickidx = 0;
        const uint8_t *ptr;
        size_t plen;
        if (cairn_version_compact_pointer(v, level, &ptr, &plen)) {
            for (pickidx = 0; pickidx < nf; pickidx++) {
                const cairn_file_meta *m = cairn_version_file(v, level, pickidx);
                if (cairn_key_cmp(m->smallest.ukey, m->smallest.ulen, ptr,
                                       plen) > 0)
                    break;
            }
            if (pickidx == nf)
                pickidx = 0;
        }
        j->in[0] = malloc(sizeof *j->in[0]);
        if (!j->in[0])
            return CAIRN_ENOMEM;
        j->in[0][0] = cairn_version_file(v, level, pickidx);
        j->nin[0] = 1;
    }
    return job_fill(v, j);
}

/* The level-0 job (every level-0 file) or the job of the first file of a
 * level >= 1, for a full compaction. CAIRN_ENOTFOUND: the level is empty. */
static int pick_first(const cairn_version *v, int level, cjob *j)
{
    memset(j, 0, sizeof *j);
    size_t n = cairn_version_num_files(v, level);
    if (n == 0)
        return CAIRN_ENOTFOUND;
    if (level > 0)
        n = 1;
    j->level = level;
    j->in[0] = malloc(n * sizeof *j->in[0]);
    if (!j->in[0])
        return CAIRN_ENOMEM;
    for (size_t i = 0; i < n; i++)
        j->in[0][i] = cairn_version_file(v, level, i);
    j->nin[0] = n;
    return job_fill(v, j);
}

/* Complete a job whose level and first inputs are chosen: the overlapping
 * files of the next level, trivial move or merge, bottom-most or not. */
static int job_fill(const cairn_version *v, cjob *j)
{
    int level = j->level;
    const uint8_t *lo, *hi;
    size_t lolen, hilen;
    files_range(j->in[0], j->nin[0], &lo, &lolen, &hi, &hilen);
    const cairn_file_meta **ov = NULL;
    size_t nov = 0;
    int rc = cairn_version_overlapping_files(v, level + 1, lo, lolen, hi, hilen,
                                             &ov, &nov);
    if (rc != 0) {
        cjob_free(j);
        return rc;
    }
    j->in[1] = ov;
    j->nin[1] = nov;
    j->move = nov == 0 && j->nin[0] == 1;
    /* The whole key range of the job, for the bottom-most test. */
    if (nov) {
        const uint8_t *lo2, *hi2;
        size_t lo2len, hi2len;
        files_range(ov, nov, &lo2, &lo2len, &hi2, &hi2len);
        if (cairn_key_cmp(lo2, lo2len, lo, lolen) < 0) {
            lo = lo2;
            lolen = lo2len;
        }
        if (cairn_key_cmp(hi2, hi2len, hi, hilen) > 0) {
            hi = hi2;
            hilen = hi2len;
        }
    }
    j->bottom = true;
    for (int l = level + 2; l < CAIRN_LSM_MAX_LEVELS && j->bottom; l++) {
        const cairn_file_meta **below = NULL;
        size_t nb = 0;
        rc = cairn_version_overlapping_files(v, l, lo, lolen, hi, hilen, &below,
                                             &nb);
        free(below);
        if (rc != 0) {
            cjob_free(j);
            return rc;
        }
        j->bottom = nb == 0;
    }
    return 0;
}

/* Merge the job's inputs into new files at level + 1 and install. */
static int run_job(cairn_tree *t, cairn_tree_view *w, cjob *j)
{
    int out_level = j->level + 1;
    cairn_version_edit e;
    cairn_version_edit_init(&e);
    int rc = 0;
    if (j->move) {
        const cairn_file_meta *m = j->in[0][0];
        rc = cairn_version_edit_delete_file(&e, j->level, m->number);
        if (rc == 0)
            rc = cairn_version_edit_add_file(&e, out_level, m);
        if (rc == 0 && j->level > 0)
            rc = cairn_version_edit_set_compact_pointer(
                &e, j->level, m->largest.ukey, m->largest.ulen);
        if (rc == 0) {
            pthread_mutex_lock(&t->install_mu);
            /* A moved file keeps its reader: it is in the map already. */
            cairn_version_edit_set_next_file(
                &e, cairn_manifest_next_file_number(t->m));
            cairn_version *nv = NULL;
            rc = cairn_manifest_log_and_apply(t->m, &e, &nv);
            if (rc == 0) {
                rc = view_install(t, nv);
                cairn_version_unref(nv);
            }
            pthread_mutex_unlock(&t->install_mu);
        }
        cairn_version_edit_clear(&e);
        if (rc == 0)
            atomic_fetch_add(&t->st_moves, 1);
        return rc;
    }

    size_t nin = j->nin[0] + j->nin[1];
    cairn_iiter **src = calloc(nin ? nin : 1, sizeof *src);
    out_file *outs = NULL;
    size_t nouts = 0, capouts = 0;
    if (!src)
        return CAIRN_ENOMEM;
    uint64_t read_bytes = 0;
    size_t k = 0;
    for (int s = 0; s < 2 && rc == 0; s++)
        for (size_t i = 0; i < j->nin[s] && rc == 0; i++) {
            const cairn_file_meta *m = j->in[s][i];
            read_bytes += m->file_size;
            const cairn_sst_reader *r = NULL;
            for (size_t x = 0; x < w->n && !r; x++)
                if (w->f[x]->number == m->number) {
                    rc = tfile_reader(t, w->f[x], &r, NULL, 0);
                    if (rc != 0)
                        break;
                }
            if (rc == 0 && !r)
                rc = CAIRN_ECORRUPT;
            if (rc != 0)
                break;
            /* One pass: keep the inputs' blocks out of the cache. */
            src[k] = cairn_iiter_from_sst_ex(r, false);
            if (!src[k++])
                rc = CAIRN_ENOMEM;
        }
    /* The merge owns the inputs (and frees them if one is missing). A block
     * that cannot be read makes it fail with that error: an input is never
     * taken for empty. */
    cairn_iiter *in = cairn_iiter_merge(src, k);
    free(src);
    if (!in && rc == 0)
        rc = CAIRN_ENOMEM;
    if (rc == 0) {
        cairn_iiter_seek_first(in);
        rc = cairn_iiter_status(in);
    }

    uint64_t hts;
    keep_state ks = {.H = horizon(t, &hts), .bottom = j->bottom};
    cairn_sst_builder *b = NULL;
    uint64_t cur_number = 0;
    uint64_t written = 0;
    cairn_sst_options so;
    sst_opts_for(t, out_level, &so);
    if (j->bottom && out_level >= 2 && t->o.bottom_codec >= 0)
        so.codec = (cairn_sst_codec)t->o.bottom_codec;
    char path[4096];
    bool prev_valid = false;
    uint8_t *prev_key = NULL;
    size_t prev_klen = 0, prev_cap = 0;
    while (rc == 0 && !atomic_load(&t->closing)) {
        if (!cairn_iiter_valid(in))
            break;
        cairn_ientry en;
        cairn_iiter_entry(in, &en);
        bool keep = false;
        rc = keep_entry(&ks, en.key, en.klen, en.version, (int)en.kind, &keep);
        bool new_key = !prev_valid || cairn_key_cmp(en.key, en.klen,
                                                         prev_key, prev_klen) != 0;
        /* Cut the output between user keys once it is big enough. */
        if (rc == 0 && keep && b && new_key &&
            cairn_sst_builder_file_size(b) >= t->o.target_file_size) {
            cairn_sst_props p;
            memset(&p, 0, sizeof p);
            rc = cairn_sst_builder_finish(b, &p);
            b = NULL;
            if (rc == 0)
                rc = meta_from_props(cur_number, out_level, &p,
                                     &outs[nouts - 1].meta);
            written += p.file_size;
            cairn_sst_props_clear(&p);
        }
        if (rc == 0 && keep && !b) {
            if (nouts == capouts) {
                size_t nc = capouts ? capouts * 2 : 8;
                out_file *no = realloc(outs, nc * sizeof *no);
                if (!no) {
                    rc = CAIRN_ENOMEM;
                    break;
                }
                outs = no;
                capouts = nc;
            }
            cur_number = cairn_manifest_new_file_number(t->m);
            outs[nouts++] = (out_file){cur_number, NULL};
            cairn_lsm_sst_path(path, sizeof path, t->dir, cur_number);
            sst_opts_fill(t, cur_number, &so);
            rc = cairn_sst_builder_new(t->env, path, &so, &b);
            if (rc != 0)
                b = NULL;
        }
        /* At the bottom, the one version a key keeps at or below the
         * horizon is written as version 0, time 0: no reader can ask for
         * anything older, nothing older is left below it, and every other
         * version of the key (above, or newer) sorts before it. The zeros
         * compress to almost nothing (as sequence numbers do elsewhere). */
        bool zero = j->bottom && en.version <= ks.H;
        if (rc == 0 && keep)
            rc = cairn_sst_builder_add(b, en.key, en.klen,
                                       zero ? 0 : en.version,
                                       zero ? 0 : en.ts_us,
                                       (cairn_sst_kind)en.kind, en.value,
                                       en.vlen);
        if (rc == 0 && new_key) {
            if (en.klen > prev_cap) {
                uint8_t *nk = realloc(prev_key, en.klen);
                if (!nk) {
                    rc = CAIRN_ENOMEM;
                    break;
                }
                prev_key = nk;
                prev_cap = en.klen;
            }
            if (en.klen)
                memcpy(prev_key, en.key, en.klen);
            prev_klen = en.klen;
            prev_valid = true;
        }
        if (rc == 0) {
            cairn_iiter_next(in);
            rc = cairn_iiter_status(in);
        }
    }
    if (rc == 0 && atomic_load(&t->closing))
        rc = CAIRN_ECLOSED;
    if (b) {
        if (rc == 0) {
            cairn_sst_props p;
            memset(&p, 0, sizeof p);
            rc = cairn_sst_builder_finish(b, &p);
            if (rc == 0)
                rc = meta_from_props(cur_number, out_level, &p,
                                     &outs[nouts - 1].meta);
            written += p.file_size;
            cairn_sst_props_clear(&p);
        } else {
            cairn_sst_builder_abandon(b);
        }
    }
    free(prev_key);
    free(ks.key);
    if (in)
        cairn_iiter_destroy(in);
    if (rc == 0 && nouts)
        rc = cairn_env_sync_dir(t->env, t->dir);
    for (int s = 0; s < 2 && rc == 0; s++)
        for (size_t i = 0; i < j->nin[s] && rc == 0; i++)
            rc = cairn_version_edit_delete_file(&e, j->level + s,
                                                j->in[s][i]->number);
    for (size_t i = 0; i < nouts && rc == 0; i++)
        rc = cairn_version_edit_add_meta(&e, outs[i].meta);
    if (ks.dropped || ks.dropped_tombs)
        cairn_version_edit_set_horizon(&e, ks.H, hts);
    if (rc == 0 && j->level > 0) {
        const cairn_file_meta *m = j->in[0][j->nin[0] - 1];
        rc = cairn_version_edit_set_compact_pointer(&e, j->level,
                                                    m->largest.ukey,
                                                    m->largest.ulen);
    }
    bool logged_or_unknown = false;
    if (rc == 0) {
        pthread_mutex_lock(&t->install_mu);
        rc = install_edit(t, &e, 0, written);
        pthread_mutex_unlock(&t->install_mu);
        logged_or_unknown = rc == 0 || cairn_manifest_error(t->m) != 0;
    }
    if (!logged_or_unknown)
        for (size_t i = 0; i < nouts; i++)
            remove_file(t, outs[i].number);
    for (size_t i = 0; i < nouts; i++)
        cairn_file_meta_unref(outs[i].meta);
    free(outs);
    cairn_version_edit_clear(&e);
    if (rc == 0) {
        atomic_fetch_add(&t->st_compactions, 1);
        atomic_fetch_add(&t->st_cread, read_bytes);
        atomic_fetch_add(&t->st_cwrite, written);
        atomic_fetch_add(&t->st_dropped, ks.dropped);
        atomic_fetch_add(&t->st_dropped_tombs, ks.dropped_tombs);
    }
    return rc;
}

/* One compaction if one is due: 0 done, CAIRN_ENOTFOUND nothing to do. */
/* One compaction job under the compaction lock: the one pick() chooses
 * (level < 0), or, for a full compaction, the first of `level` (into
 * `target`, where files are rewritten, not moved: with the bottom-most
 * codec and the versions below the horizon zeroed). 0 done;
 * CAIRN_ENOTFOUND: nothing to do. */
/* Whether a job must read an archived input while the archive cannot be
 * reached (a move reads nothing). */
static bool job_needs_absent_archive(cairn_tree *t, const cjob *j)
{
    if (j->move || (t->aenv && cairn_tier_env_available(t->aenv)))
        return false;
    for (int s = 0; s < 2; s++)
        for (size_t i = 0; i < j->nin[s]; i++)
            if (j->in[s][i]->tier != CAIRN_TIER_LOCAL)
                return true;
    return false;
}

static int compact_job(cairn_tree *t, int level, int target)
{
    pthread_mutex_lock(&t->compact_mu);
    cairn_tree_view *w = cairn_tree_view_get(t);
    cjob j;
    int rc;
    unsigned skip = 0;
    for (;;) {
        rc = level < 0 ? pick(t, w->v, &j, skip) : pick_first(w->v, level, &j);
        if (rc != 0)
            break;
        if (level >= 0 && level + 1 == target)
            j.move = false;
        /* A job that needs the archive while it is away waits for it (the
         * archive thread kicks compaction once it is back); the other
         * levels go on. Never an error of the database. */
        int jl = j.level;
        if (job_needs_absent_archive(t, &j))
            rc = CAIRN_EUNAVAILABLE;
        else
            rc = run_job(t, w, &j);
        cjob_free(&j);
        if (rc != CAIRN_EUNAVAILABLE || level >= 0)
            break;
        skip |= 1u << jl;
    }
    cairn_tree_view_unref(w);
    pthread_mutex_unlock(&t->compact_mu);
    return rc;
}

static int compact_once(cairn_tree *t) { return compact_job(t, -1, 0); }

int cairn_tree_compact_all(cairn_tree *t)
{
    if (t->o.read_only)
        return CAIRN_EREADONLY;
    for (;;) {
        int rc = compact_once(t);
        if (rc == CAIRN_ENOTFOUND)
            return 0;
        if (rc != 0)
            return rc;
    }
}

int cairn_tree_compact_full(cairn_tree *t, cairn_tree_progress_fn fn,
                            void *arg)
{
    if (t->o.read_only)
        return CAIRN_EREADONLY;
    /* The target: the deepest level holding data, at least level 2 (the
     * first one written with the bottom-most codec) when the tree has it. */
    cairn_tree_view *w = cairn_tree_view_get(t);
    int last = t->o.num_levels > 2 ? 2 : t->o.num_levels - 1;
    for (int l = 1; l < t->o.num_levels; l++)
        if (cairn_version_num_files(w->v, l) > 0 && l > last)
            last = l;
    cairn_tree_view_unref(w);
    for (int l = 0; l < last; l++) {
        /* Bounded by the files there were: flushes that land while this
         * runs need not be waited for. */
        w = cairn_tree_view_get(t);
        size_t budget = cairn_version_num_files(w->v, l) + 1;
        uint64_t total = cairn_version_level_bytes(w->v, l);
        cairn_tree_view_unref(w);
        for (size_t i = 0; i < budget; i++) {
            if (atomic_load(&t->closing))
                return CAIRN_EBUSY;
            int rc = compact_job(t, l, last);
            if (rc == CAIRN_ENOTFOUND)
                break;
            if (rc != 0)
                return rc;
            if (fn) {
                w = cairn_tree_view_get(t);
                uint64_t left = cairn_version_level_bytes(w->v, l);
                cairn_tree_view_unref(w);
                fn(arg, l, last, left < total ? total - left : 0, total);
            }
        }
    }
    return 0;
}

static void *bg_main(void *arg)
{
    cairn_tree *t = arg;
    cairn_thread_nice(t->o.background_nice); /* before the name */
    pthread_setname_np(pthread_self(), "cairn-compact");
    pthread_mutex_lock(&t->bg_mu);
    while (!t->bg_stop) {
        if (!t->bg_kick) {
            pthread_cond_wait(&t->bg_cv, &t->bg_mu);
            continue;
        }
        t->bg_kick = false;
        t->bg_busy = true;
        pthread_mutex_unlock(&t->bg_mu);
        int rc;
        while ((rc = compact_once(t)) == 0 && !atomic_load(&t->closing))
            ;
        pthread_mutex_lock(&t->bg_mu);
        if (rc != CAIRN_ENOTFOUND && rc != 0 && !t->bg_stop) {
            atomic_store(&t->bg_error, rc);
            if (cairn_manifest_error(t->m) == 0) {
                /* I/O trouble (e.g. no space): try again in a while. */
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += 1;
                pthread_cond_timedwait(&t->bg_cv, &t->bg_mu, &ts);
                t->bg_kick = true;
            }
        } else if (rc == CAIRN_ENOTFOUND) {
            atomic_store(&t->bg_error, 0);
        }
        t->bg_busy = false;
        pthread_cond_broadcast(&t->installed_cv);
    }
    pthread_mutex_unlock(&t->bg_mu);
    return NULL;
}

/* The compaction thread has work running or asked for (bg_mu held). */
static bool bg_pending(const cairn_tree *t)
{
    return t->bg_started && !t->bg_stop && (t->bg_kick || t->bg_busy);
}

int cairn_tree_wait_idle(cairn_tree *t, const struct timespec *deadline)
{
    pthread_mutex_lock(&t->bg_mu);
    while (bg_pending(t) &&
           pthread_cond_timedwait(&t->installed_cv, &t->bg_mu, deadline) !=
               ETIMEDOUT) {
    }
    int rc = bg_pending(t) ? CAIRN_EBUSY : 0;
    pthread_mutex_unlock(&t->bg_mu);
    return rc;
}

void cairn_tree_compact_kick(cairn_tree *t)
{
    pthread_mutex_lock(&t->bg_mu);
    t->bg_kick = true;
    pthread_cond_signal(&t->bg_cv);
    pthread_mutex_unlock(&t->bg_mu);
}

/* ---------- pressure ---------- */

static int pressure_of(cairn_tree *t, const char **why)
{
    uint64_t n0 = atomic_load(&t->l0_files);
    *why = "";
    if (n0 >= t->o.l0_stop) {
        *why = "level-0 files at the stop limit";
        return 2;
    }
    if (n0 >= t->o.l0_slowdown) {
        *why = "level-0 files past the slowdown limit";
        return 1;
    }
    return 0;
}

int cairn_tree_pressure(cairn_tree *t)
{
    const char *why;
    return pressure_of(t, &why);
}

void cairn_tree_wait_pressure(cairn_tree *t, int level, unsigned timeout_ms)
{
    struct timespec ts;
    cairn_deadline_ms(&ts, timeout_ms);
    pthread_mutex_lock(&t->bg_mu);
    while (cairn_tree_pressure(t) >= level && !t->bg_stop) {
        if (pthread_cond_timedwait(&t->installed_cv, &t->bg_mu, &ts) ==
            ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&t->bg_mu);
}

/* ---------- open / close / stats ---------- */

int cairn_tree_for_each_file(cairn_tree *t,
                             int (*fn)(void *arg, const cairn_sst_reader *r),
                             void *arg)
{
    int rc = 0;
    pthread_mutex_lock(&t->files_mu);
    for (size_t b = 0; b < FILES_BUCKETS && rc == 0; b++)
        for (tfile *f = t->files[b]; f && rc == 0; f = f->next) {
            /* A dying file's reader is being closed (dying is set under
             * files_mu before that starts); an archived one may not be
             * open yet. */
            cairn_sst_reader *r = atomic_load(&f->r);
            if (!f->dying && r)
                rc = fn(arg, r);
        }
    pthread_mutex_unlock(&t->files_mu);
    return rc;
}

uint64_t cairn_tree_new_file_number(cairn_tree *t)
{
    return cairn_manifest_new_file_number(t->m);
}

void cairn_tree_bump_file_number(cairn_tree *t, uint64_t next)
{
    cairn_manifest_bump_file_number(t->m, next);
}

uint64_t cairn_tree_log_lsn(cairn_tree *t)
{
    return cairn_manifest_log_lsn(t->m);
}

uint64_t cairn_tree_last_version(cairn_tree *t)
{
    return cairn_manifest_last_version(t->m);
}

uint64_t cairn_tree_horizon(cairn_tree *t, uint64_t *ts)
{
    cairn_version *v = cairn_manifest_current(t->m);
    uint64_t h = cairn_version_horizon(v);
    *ts = cairn_version_horizon_ts(v);
    cairn_version_unref(v);
    return h;
}

cairn_block_cache *cairn_tree_cache(cairn_tree *t)
{
    return t->cache;
}

static void cleanup_local(cairn_tree *t, char **names, size_t count);
static void cleanup_archive(cairn_tree *t);
static void *arch_main(void *arg);

static void tree_free(cairn_tree *t)
{
    if (t->cur) {
        atomic_store(&t->closing, true);
        atomic_store(&t->tearing_down, true);
        cairn_tree_view_unref(t->cur);
    }
    for (size_t b = 0; b < FILES_BUCKETS; b++) /* never in a view */
        while (t->files[b]) {
            tfile *f = t->files[b];
            t->files[b] = f->next;
            tfile_free(t, f);
        }
    if (t->m)
        cairn_manifest_close(t->m);
    cairn_block_cache_free(t->cache);
    pthread_mutex_destroy(&t->compact_mu);
    pthread_mutex_destroy(&t->install_mu);
    pthread_mutex_destroy(&t->view_mu);
    pthread_mutex_destroy(&t->files_mu);
    pthread_mutex_destroy(&t->bg_mu);
    pthread_cond_destroy(&t->bg_cv);
    pthread_cond_destroy(&t->installed_cv);
    pthread_mutex_destroy(&t->tier_mu);
    pthread_mutex_destroy(&t->arch_mu);
    pthread_cond_destroy(&t->arch_cv);
    cairn_env_destroy(t->aenv);
    free(t->adir);
    free(t->dir);
    free(t);
}

int cairn_tree_open(cairn_env *env, const char *dir,
                    const cairn_tree_options *o, cairn_tree **out,
                    char *errmsg, size_t errlen)
{
    *out = NULL;
    if (errmsg && errlen)
        errmsg[0] = 0;
    /* Aligned: the read stats' hit stripes are cache-line aligned. */
    cairn_tree *t = aligned_alloc(_Alignof(cairn_tree), sizeof *t);
    if (t)
        memset(t, 0, sizeof *t);
    if (!t)
        return CAIRN_ENOMEM;
    if (o)
        t->o = *o;
    else
        cairn_tree_options_init(&t->o);
    cairn_tree_options *to = &t->o;
    if (to->num_levels < 2 || to->num_levels > CAIRN_LSM_MAX_LEVELS ||
        to->level_ratio < 2 || to->l0_compaction_trigger < 1 ||
        to->l0_slowdown < to->l0_compaction_trigger ||
        to->l0_stop < to->l0_slowdown || to->base_level_bytes == 0 ||
        to->target_file_size == 0) {
        free(t);
        return CAIRN_EINVAL;
    }
    if (!to->codec_set) {
        for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++)
            to->codec[l] = l >= to->num_levels - 2 ? CAIRN_SST_CODEC_ZSTD
                                                   : CAIRN_SST_CODEC_LZ4;
        to->bottom_codec = CAIRN_SST_CODEC_ZSTD;
    }
    if (!to->block_size)
        to->block_size = 4096;
    t->env = env;
    t->dir = strdup(dir);
    pthread_mutex_init(&t->compact_mu, NULL);
    pthread_mutex_init(&t->install_mu, NULL);
    pthread_mutex_init(&t->view_mu, NULL);
    pthread_mutex_init(&t->files_mu, NULL);
    pthread_mutex_init(&t->bg_mu, NULL);
    pthread_cond_init(&t->bg_cv, NULL);
    pthread_cond_init(&t->installed_cv, NULL);
    pthread_mutex_init(&t->tier_mu, NULL);
    pthread_mutex_init(&t->arch_mu, NULL);
    pthread_cond_init(&t->arch_cv, NULL);
    if (to->archive_dir && to->archive_dir[0]) {
        t->adir = strdup(to->archive_dir);
        t->aenv = t->adir ? cairn_tier_env_new(env, t->adir) : NULL;
        if (!t->aenv) {
            tree_free(t);
            return CAIRN_ENOMEM;
        }
    }
    to->archive_dir = NULL; /* the caller's string: t->adir is ours */
    if (to->archive_zstd_level <= 0)
        to->archive_zstd_level = CAIRN_TIER_DEFAULT_ZSTD_LEVEL;
    if (!to->archive_check_ms)
        to->archive_check_ms = 1000;
    atomic_init(&t->closing, false);
    atomic_init(&t->tearing_down, false);
    atomic_init(&t->bg_error, 0);
    atomic_init(&t->l0_files, 0);
    t->cache = cairn_block_cache_new(to->block_cache_bytes ? to->block_cache_bytes
                                                           : 256u << 20,
                                     0);
    if (!t->dir || !t->cache) {
        tree_free(t);
        return CAIRN_ENOMEM;
    }
    cairn_manifest_options mo;
    cairn_manifest_options_init(&mo);
    mo.create_if_missing = to->create_if_missing && !to->read_only;
    mo.read_only = to->read_only;
    mo.num_levels = to->num_levels;
    cairn_manifest_info info;
    memset(&info, 0, sizeof info);
    cairn_version *v = NULL;
    int rc = cairn_manifest_open_ex(env, dir, &mo, &t->m, &v, &info);
    if (rc != 0) {
        if (errmsg && errlen)
            snprintf(errmsg, errlen, "%s", info.message);
        tree_free(t);
        return rc;
    }
    /* A missing archive directory is made only while nothing is archived:
     * otherwise it is an archive out of reach (a mount gone), not a new
     * one. */
    if (t->aenv && !to->read_only) {
        bool any = false;
        for (int l = 0; l < CAIRN_LSM_MAX_LEVELS && !any; l++)
            for (size_t i = 0; i < cairn_version_num_files(v, l) && !any; i++)
                any = cairn_version_file(v, l, i)->tier != CAIRN_TIER_LOCAL;
        if (!any)
            cairn_env_mkdir_p(env, t->adir);
    }
    /* Archived files whose archive cannot be reached are opened on first
     * use: the database opens without them (reads of them fail with
     * CAIRN_EUNAVAILABLE until the archive is back). */
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS && rc == 0; l++)
        for (size_t i = 0; i < cairn_version_num_files(v, l) && rc == 0; i++) {
            const cairn_file_meta *m = cairn_version_file(v, l, i);
            rc = files_open(t, m->number, m->tier, true, errmsg, errlen);
        }
    if (rc == 0) {
        t->cur = view_build(t, v);
        if (!t->cur)
            rc = CAIRN_ENOMEM;
        else
            atomic_store(&t->l0_files,
                         t->cur->lstart[1] - t->cur->lstart[0]);
    }
    cairn_version_unref(v);
    if (rc == 0 && !to->read_only) {
        /* Leftovers of a crashed flush or compaction. */
        char **names = NULL;
        size_t count = 0;
        if (cairn_env_list_dir(env, dir, &names, &count) == 0) {
            uint64_t *dead = NULL;
            size_t ndead = 0;
            if (cairn_manifest_obsolete_files(t->m, names, count, UINT64_MAX,
                                              &dead, &ndead) == 0) {
                for (size_t i = 0; i < ndead; i++)
                    remove_file(t, dead[i]);
                free(dead);
            }
            cleanup_local(t, names, count);
            cairn_env_free_list(names, count);
        }
        if (t->aenv) {
            pthread_mutex_lock(&t->tier_mu);
            cleanup_archive(t);
            pthread_mutex_unlock(&t->tier_mu);
        }
        if (pthread_create(&t->bg, NULL, bg_main, t) == 0)
            t->bg_started = true;
        else
            rc = CAIRN_ENOMEM;
        /* Without its thread the policy does not run; explicit moves
         * still work. */
        if (rc == 0 && t->aenv &&
            pthread_create(&t->arch, NULL, arch_main, t) == 0)
            t->arch_started = true;
    }
    if (rc != 0) {
        tree_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void cairn_tree_close(cairn_tree *t)
{
    if (!t)
        return;
    atomic_store(&t->closing, true);
    cairn_tree_archive_stop(t);
    if (t->bg_started) {
        pthread_mutex_lock(&t->bg_mu);
        t->bg_stop = true;
        pthread_cond_broadcast(&t->bg_cv);
        pthread_cond_broadcast(&t->installed_cv);
        pthread_mutex_unlock(&t->bg_mu);
        pthread_join(t->bg, NULL);
    }
    tree_free(t);
}

void cairn_tree_get_stats(cairn_tree *t, cairn_tree_stats *out)
{
    memset(out, 0, sizeof *out);
    out->num_levels = t->o.num_levels;
    cairn_tree_view *w = cairn_tree_view_get(t);
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++) {
        out->level_files[l] = cairn_version_num_files(w->v, l);
        out->level_bytes[l] = cairn_version_level_bytes(w->v, l);
    }
    for (size_t i = 0; i < cairn_tree_view_nfiles(w); i++) {
        cairn_sst_reader *r = atomic_load(&w->f[i]->r);
        if (!r) { /* archived, out of reach: what the manifest knows */
            out->file_bytes += cairn_tree_view_meta(w, i)->file_size;
            continue;
        }
        const cairn_sst_props *p = cairn_sst_props_get(r);
        out->logical_bytes += p->raw_key_bytes + p->raw_value_bytes;
        out->file_bytes += p->file_size;
    }
    cairn_tree_view_unref(w);
    out->flushes = atomic_load(&t->st_flushes);
    out->flush_bytes = atomic_load(&t->st_flush_bytes);
    out->compactions = atomic_load(&t->st_compactions);
    out->trivial_moves = atomic_load(&t->st_moves);
    out->compact_read_bytes = atomic_load(&t->st_cread);
    out->compact_write_bytes = atomic_load(&t->st_cwrite);
    out->dropped_versions = atomic_load(&t->st_dropped);
    out->dropped_tombstones = atomic_load(&t->st_dropped_tombs);
    out->pressure = pressure_of(t, &out->pressure_reason);
    out->bg_error = atomic_load(&t->bg_error);
    cairn_block_cache_get_stats(t->cache, &out->cache);
}

/* ---------- the archive tier ----------
 *
 * A move (archive: tier 0 -> 1; recall: 1 -> 0), one at a time (tier_mu):
 *   1. copy the file's entries into "NNNNNN.sst.tmp" in the destination
 *      directory, blocks compressed for the destination (zstd at
 *      archive_zstd_level in the archive; the level's codec locally), and
 *      fdatasync it;
 *   2. rename it to "NNNNNN.sst" and sync the directory;
 *   3. under install_mu, check that the file is still where it was (a
 *      compaction may have replaced it meanwhile: then the copy goes),
 *      open the copy, log the "set tier" edit (synced) and install the
 *      new view;
 *   4. the old copy is unlinked when the last view holding it goes.
 * A crash between any two steps loses nothing: before 3 the manifest names
 * the old copy (the new one is a leftover), after 3 the new one (the old
 * one is). Open removes both kinds of leftover (cleanup_local,
 * cleanup_archive), and temporaries.
 *
 * While a copy (N, tier) is dying its file is still being unlinked: no new
 * copy may be made at that path until it is gone (copy_wait_or_pin). A
 * live copy of the destination (a view made before the previous move still
 * holds it) is reused as it is.
 */

static uint64_t tier_now_us(cairn_tree *t)
{
    return t->o.clock_us ? t->o.clock_us(t->o.clock_arg) : now_us();
}

/* Wait while a copy (number, tier) is dying; return it referenced if it is
 * alive (the caller unrefs it), NULL if there is none. */
static tfile *copy_wait_or_pin(cairn_tree *t, uint64_t number, uint8_t tier)
{
    for (;;) {
        pthread_mutex_lock(&t->files_mu);
        tfile *f = files_find(t, number, tier);
        if (f && !f->dying) {
            int r = atomic_load(&f->refs);
            while (r > 0 &&
                   !atomic_compare_exchange_weak(&f->refs, &r, r + 1))
                ;
            if (r > 0) {
                pthread_mutex_unlock(&t->files_mu);
                return f;
            }
        }
        pthread_mutex_unlock(&t->files_mu);
        if (!f)
            return NULL;
        struct timespec d = {0, 1000000}; /* its unlink is under way */
        nanosleep(&d, NULL);
    }
}

static int copy_progress(void *arg, uint64_t done, uint64_t total)
{
    (void)done, (void)total;
    return atomic_load(&((cairn_tree *)arg)->closing) ? 1 : 0;
}

/* The view changed without a flush: tell the owner of table sets. */
static void view_changed(cairn_tree *t)
{
    if (t->o.view_changed)
        t->o.view_changed(t->o.view_changed_arg);
}

/* Move number into tier `to` (tier_mu held). */
static int tier_move(cairn_tree *t, uint64_t number, uint8_t to,
                     cairn_tree_move_info *info)
{
    if (info)
        memset(info, 0, sizeof *info);
    if (t->o.read_only)
        return CAIRN_EREADONLY;
    if (!t->aenv)
        return CAIRN_ENOTSUP;
    if (cairn_manifest_error(t->m))
        return CAIRN_EREADONLY;
    uint8_t from = to == CAIRN_TIER_LOCAL ? CAIRN_TIER_ARCHIVE
                                          : CAIRN_TIER_LOCAL;
    cairn_tree_view *w = cairn_tree_view_get(t);
    size_t idx = w->n;
    for (size_t i = 0; i < w->n; i++)
        if (w->f[i]->number == number)
            idx = i;
    if (idx == w->n) {
        cairn_tree_view_unref(w);
        return CAIRN_ENOTFOUND;
    }
    const cairn_file_meta *m = cairn_tree_view_meta(w, idx);
    int level = cairn_tree_view_file_level(w, idx);
    if (info) {
        info->number = number;
        info->level = level;
    }
    if (m->tier == to) {
        cairn_tree_view_unref(w);
        return 0;
    }
    if (m->tier != from) {
        cairn_tree_view_unref(w);
        return CAIRN_EINVAL;
    }
    const cairn_sst_reader *src = NULL;
    char msg[CAIRN_SST_ERRMSG_LEN] = "";
    int rc = tfile_reader(t, w->f[idx], &src, msg, sizeof msg);
    if (rc != 0) {
        cairn_tree_view_unref(w);
        return rc;
    }
    if (info)
        info->bytes_before = cairn_sst_props_get(src)->file_size;
    tfile *pin = copy_wait_or_pin(t, number, to);
    uint64_t new_size = 0;
    char path[4096], tmp[4096];
    cairn_env *denv = tier_path(t, number, to, path, sizeof path);
    const char *ddir = to == CAIRN_TIER_LOCAL ? t->dir : t->adir;
    bool made = false;
    if (!pin) {
        cairn_sst_codec codec = CAIRN_SST_CODEC_ZSTD;
        int zl = t->o.archive_zstd_level;
        if (to == CAIRN_TIER_LOCAL) {
            cairn_sst_options so;
            sst_opts_for(t, level < t->o.num_levels ? level : 0, &so);
            codec = so.codec;
            zl = so.zstd_level;
        }
        rc = cairn_tier_tmp_path(tmp, sizeof tmp, ddir, number);
        cairn_sst_props np;
        memset(&np, 0, sizeof np);
        if (rc == 0)
            rc = cairn_tier_copy_sst(src, denv, tmp, codec, zl, copy_progress,
                                     t, &np);
        new_size = np.file_size;
        cairn_sst_props_clear(&np);
        if (rc == 0) {
            rc = cairn_env_rename(denv, tmp, path);
            if (rc != 0)
                cairn_env_unlink(denv, tmp);
        }
        if (rc == 0) {
            made = true;
            rc = cairn_env_sync_dir(denv, ddir);
        }
    } else {
        const cairn_sst_reader *pr = NULL;
        rc = tfile_reader(t, pin, &pr, msg, sizeof msg);
        if (rc == 0)
            new_size = cairn_sst_props_get(pr)->file_size;
    }
    if (info)
        info->bytes_after = new_size;
    bool opened = false, logged = false;
    if (rc == 0) {
        pthread_mutex_lock(&t->install_mu);
        cairn_version *cur = cairn_manifest_current(t->m);
        int cl = -1;
        const cairn_file_meta *cm = cairn_version_lookup(cur, number, &cl);
        if (!cm || cm->tier != from)
            rc = CAIRN_ENOTFOUND; /* compacted away meanwhile */
        if (rc == 0 && !pin) {
            rc = files_open(t, number, to, false, msg, sizeof msg);
            opened = rc == 0;
        }
        /* The file leaves its level and comes back with the same metadata
         * but its new tier and size: one edit (docs/format/manifest.md). */
        cairn_version_edit e;
        cairn_version_edit_init(&e);
        if (rc == 0)
            rc = cairn_version_edit_delete_file(&e, cl, number);
        if (rc == 0) {
            cairn_file_meta nm = *cm;
            nm.tier = to;
            nm.file_size = new_size;
            rc = cairn_version_edit_add_file(&e, cl, &nm);
        }
        if (rc == 0) {
            cairn_version_edit_set_next_file(
                &e, cairn_manifest_next_file_number(t->m));
            cairn_version *nv = NULL;
            rc = cairn_manifest_log_and_apply(t->m, &e, &nv);
            if (rc == 0) {
                logged = true;
                for (int tries = 0; tries < 10000; tries++) {
                    if (view_install(t, nv) == 0)
                        break;
                    struct timespec d = {0, 1000000};
                    nanosleep(&d, NULL);
                }
                cairn_version_unref(nv);
            }
        }
        cairn_version_edit_clear(&e);
        cairn_version_unref(cur);
        if (rc != 0 && opened)
            files_forget(t, number, to);
        pthread_mutex_unlock(&t->install_mu);
    }
    /* A copy no manifest record names is nobody's (after a failed edit the
     * next open decides: the record may be there). */
    if (rc != 0 && made && !logged && cairn_manifest_error(t->m) == 0)
        cairn_env_unlink(denv, path);
    if (pin)
        tfile_unref(t, pin);
    cairn_tree_view_unref(w);
    if (logged) {
        view_changed(t);
        if (to == CAIRN_TIER_ARCHIVE) {
            atomic_fetch_add(&t->st_archived, 1);
            if (info) {
                atomic_fetch_add(&t->st_arch_in, info->bytes_before);
                atomic_fetch_add(&t->st_arch_out, info->bytes_after);
            }
        } else {
            atomic_fetch_add(&t->st_recalled, 1);
        }
    } else if (cairn_manifest_error(t->m)) {
        rc = CAIRN_EREADONLY;
    }
    return rc;
}

int cairn_tree_archive_file(cairn_tree *t, uint64_t number,
                            cairn_tree_move_info *info)
{
    pthread_mutex_lock(&t->tier_mu);
    int rc = tier_move(t, number, CAIRN_TIER_ARCHIVE, info);
    pthread_mutex_unlock(&t->tier_mu);
    if (rc != 0 && rc != CAIRN_ENOTFOUND)
        atomic_store(&t->arch_error, rc);
    return rc;
}

int cairn_tree_recall_file(cairn_tree *t, uint64_t number,
                           cairn_tree_move_info *info)
{
    pthread_mutex_lock(&t->tier_mu);
    int rc = tier_move(t, number, CAIRN_TIER_LOCAL, info);
    pthread_mutex_unlock(&t->tier_mu);
    return rc;
}

/* The first local file the policy wants archived now (0: none). */
static uint64_t policy_next(cairn_tree *t, const cairn_tier_policy *p,
                            uint64_t skip_below)
{
    cairn_tree_view *w = cairn_tree_view_get(t);
    uint64_t now = tier_now_us(t), best = 0;
    for (size_t i = 0; i < w->n; i++) {
        const cairn_file_meta *m = cairn_tree_view_meta(w, i);
        if (m->number < skip_below)
            continue;
        if (cairn_tier_policy_wants(p, m, cairn_tree_view_file_level(w, i),
                                    now) &&
            (best == 0 || m->number < best))
            best = m->number;
    }
    cairn_tree_view_unref(w);
    return best;
}

int cairn_tree_archive_run(cairn_tree *t, const cairn_tier_policy *p,
                           cairn_tree_move_fn fn, void *arg)
{
    if (!t->aenv)
        return CAIRN_ENOTSUP;
    bool every = p->min_level <= 0 && p->min_age_s == 0;
    int first_rc = 0;
    uint64_t next = 0;
    for (;;) {
        if (atomic_load(&t->closing))
            return CAIRN_ECLOSED;
        uint64_t n;
        if (every) {
            /* No rule: every local file. */
            cairn_tree_view *w = cairn_tree_view_get(t);
            n = 0;
            for (size_t i = 0; i < w->n; i++) {
                const cairn_file_meta *m = cairn_tree_view_meta(w, i);
                if (m->tier == CAIRN_TIER_LOCAL && m->number >= next &&
                    (n == 0 || m->number < n))
                    n = m->number;
            }
            cairn_tree_view_unref(w);
        } else {
            n = policy_next(t, p, next);
        }
        if (n == 0)
            return first_rc;
        cairn_tree_move_info info;
        int rc = cairn_tree_archive_file(t, n, &info);
        info.number = n;
        if (fn)
            fn(arg, &info, rc);
        if (rc == CAIRN_ENOTFOUND)
            rc = 0; /* compacted away meanwhile */
        if (rc != 0 && first_rc == 0)
            first_rc = rc;
        if (rc == CAIRN_EUNAVAILABLE || rc == CAIRN_EREADONLY ||
            rc == CAIRN_ECLOSED)
            return rc;
        next = n + 1;
    }
}

/* Local copies of archived files (a crash after the edit, before the
 * unlink) and temporaries of recalls. Only at open: nothing else runs. */
static void cleanup_local(cairn_tree *t, char **names, size_t count)
{
    cairn_version *v = cairn_manifest_current(t->m);
    for (size_t i = 0; i < count; i++) {
        uint64_t num;
        char path[4096];
        if (cairn_lsm_parse_sst_name(names[i], &num)) {
            const cairn_file_meta *m = cairn_version_lookup(v, num, NULL);
            if (m && m->tier != CAIRN_TIER_LOCAL) {
                cairn_lsm_sst_path(path, sizeof path, t->dir, num);
                cairn_env_unlink(t->env, path);
            }
        } else if (cairn_tier_parse_tmp_name(names[i], &num)) {
            cairn_tier_tmp_path(path, sizeof path, t->dir, num);
            cairn_env_unlink(t->env, path);
        }
    }
    cairn_version_unref(v);
}

/* Archive copies the manifest does not place there (a crash before an
 * archive's edit, or after a recall's) and temporaries; copies a view
 * still holds are left alone. tier_mu held (no move under way). Marks the
 * archive unavailable if it cannot be listed. */
static void cleanup_archive(cairn_tree *t)
{
    char **names = NULL;
    size_t count = 0;
    if (cairn_env_list_dir(t->aenv, t->adir, &names, &count) != 0)
        return;
    cairn_version *v = cairn_manifest_current(t->m);
    for (size_t i = 0; i < count; i++) {
        uint64_t num;
        char path[4096];
        if (cairn_lsm_parse_sst_name(names[i], &num)) {
            const cairn_file_meta *m = cairn_version_lookup(v, num, NULL);
            if (m && m->tier == CAIRN_TIER_ARCHIVE)
                continue;
            pthread_mutex_lock(&t->files_mu);
            bool held = files_find(t, num, CAIRN_TIER_ARCHIVE) != NULL;
            pthread_mutex_unlock(&t->files_mu);
            if (held)
                continue;
            cairn_lsm_sst_path(path, sizeof path, t->adir, num);
            cairn_env_unlink(t->aenv, path);
        } else if (cairn_tier_parse_tmp_name(names[i], &num)) {
            cairn_tier_tmp_path(path, sizeof path, t->adir, num);
            cairn_env_unlink(t->aenv, path);
        }
    }
    cairn_version_unref(v);
    cairn_env_free_list(names, count);
    cairn_env_sync_dir(t->aenv, t->adir);
}

/* One archived file of the current version (0: none), to probe with. */
static uint64_t some_archived(cairn_tree *t)
{
    cairn_tree_view *w = cairn_tree_view_get(t);
    uint64_t n = 0;
    for (size_t i = 0; i < w->n && !n; i++)
        if (cairn_tree_view_meta(w, i)->tier == CAIRN_TIER_ARCHIVE)
            n = w->f[i]->number;
    cairn_tree_view_unref(w);
    return n;
}

int cairn_tree_archive_probe(cairn_tree *t)
{
    if (!t->aenv)
        return CAIRN_ENOTSUP;
    char path[4096];
    uint64_t n = some_archived(t);
    if (n)
        cairn_lsm_sst_path(path, sizeof path, t->adir, n);
    bool was = cairn_tier_env_available(t->aenv);
    int rc = cairn_tier_env_probe(t->aenv, n ? path : NULL);
    if (rc == 0 && !was) {
        /* Back: leftovers that could not go, and the compactions that
         * waited for it. */
        if (!t->o.read_only) {
            pthread_mutex_lock(&t->tier_mu);
            cleanup_archive(t);
            pthread_mutex_unlock(&t->tier_mu);
        }
        cairn_tree_compact_kick(t);
    }
    return rc;
}

void cairn_tree_archive_stop(cairn_tree *t)
{
    if (!t)
        return;
    atomic_store(&t->closing, true); /* a copy under way stops */
    if (!t->arch_started)
        return;
    pthread_mutex_lock(&t->arch_mu);
    t->arch_stop = true;
    pthread_cond_broadcast(&t->arch_cv);
    pthread_mutex_unlock(&t->arch_mu);
    pthread_join(t->arch, NULL);
    t->arch_started = false;
}

void cairn_tree_archive_kick(cairn_tree *t)
{
    pthread_mutex_lock(&t->arch_mu);
    t->arch_kick = true;
    pthread_cond_signal(&t->arch_cv);
    pthread_mutex_unlock(&t->arch_mu);
}

/* The archive thread: once kicked (the owner's setup is done), every
 * archive_check_ms it probes an unavailable archive and applies the
 * policy, one file at a time. */
static void *arch_main(void *arg)
{
    cairn_tree *t = arg;
    cairn_thread_nice(t->o.background_nice); /* before the name */
    pthread_setname_np(pthread_self(), "cairn-archive");
    bool started = false;
    pthread_mutex_lock(&t->arch_mu);
    while (!t->arch_stop) {
        if (t->arch_kick)
            started = true;
        t->arch_kick = false;
        if (started) {
            pthread_mutex_unlock(&t->arch_mu);
            if (!cairn_tier_env_available(t->aenv))
                cairn_tree_archive_probe(t);
            cairn_tier_policy p = t->o.archive_policy;
            bool on = p.min_level > 0 || p.min_age_s > 0;
            if (on && cairn_tier_env_available(t->aenv) &&
                cairn_manifest_error(t->m) == 0) {
                int rc = 0;
                uint64_t next = 0, n;
                while (rc == 0 && !atomic_load(&t->closing) &&
                       (n = policy_next(t, &p, next)) != 0) {
                    rc = cairn_tree_archive_file(t, n, NULL);
                    if (rc == CAIRN_ENOTFOUND)
                        rc = 0;
                    next = n + 1;
                }
            }
            pthread_mutex_lock(&t->arch_mu);
            if (t->arch_stop || t->arch_kick)
                continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += t->o.archive_check_ms / 1000;
        ts.tv_nsec += (long)(t->o.archive_check_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (started)
            pthread_cond_timedwait(&t->arch_cv, &t->arch_mu, &ts);
        else
            pthread_cond_wait(&t->arch_cv, &t->arch_mu);
    }
    pthread_mutex_unlock(&t->arch_mu);
    return NULL;
}

void cairn_tree_get_tier_stats(cairn_tree *t, cairn_tree_tier_stats *out)
{
    memset(out, 0, sizeof *out);
    out->configured = t->aenv != NULL;
    out->available = t->aenv ? cairn_tier_env_available(t->aenv) : true;
    if (t->aenv)
        cairn_tier_env_last_error(t->aenv, out->last_error,
                                  sizeof out->last_error);
    cairn_tree_view *w = cairn_tree_view_get(t);
    for (size_t i = 0; i < w->n; i++) {
        const cairn_file_meta *m = cairn_tree_view_meta(w, i);
        int k = m->tier == CAIRN_TIER_LOCAL ? 0 : 1;
        out->files[k]++;
        cairn_sst_reader *r = atomic_load(&w->f[i]->r);
        if (r) {
            const cairn_sst_props *p = cairn_sst_props_get(r);
            out->bytes[k] += p->file_size;
            out->logical_bytes[k] += p->raw_key_bytes + p->raw_value_bytes;
        } else {
            out->bytes[k] += m->file_size; /* not open: the manifest's */
        }
    }
    cairn_tree_view_unref(w);
    for (int k = 0; k < CAIRN_TIER_COUNT; k++) {
        out->hits[k] = cairn_sst_read_stats_hits(&t->rstats[k]);
        out->misses[k] = atomic_load(&t->rstats[k].misses);
        out->read_p50_ns[k] = cairn_hist_quantile(&t->rstats[k].miss_ns, 0.5);
        out->read_p99_ns[k] = cairn_hist_quantile(&t->rstats[k].miss_ns, 0.99);
        out->hit_p50_ns[k] = cairn_hist_quantile(&t->rstats[k].hit_ns, 0.5);
        out->hit_p99_ns[k] = cairn_hist_quantile(&t->rstats[k].hit_ns, 0.99);
    }
    _Static_assert(CAIRN_TIER_COUNT == 2, "sum every tier's hits below");
    cairn_hist all;
    cairn_hist_sum(&all, &t->rstats[0].hit_ns, &t->rstats[1].hit_ns);
    out->cache_hit_p50_ns = cairn_hist_quantile(&all, 0.5);
    out->cache_hit_p99_ns = cairn_hist_quantile(&all, 0.99);
    out->archived = atomic_load(&t->st_archived);
    out->recalled = atomic_load(&t->st_recalled);
    out->archive_in_bytes = atomic_load(&t->st_arch_in);
    out->archive_out_bytes = atomic_load(&t->st_arch_out);
    out->last_move_error = atomic_load(&t->arch_error);
}
