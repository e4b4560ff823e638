/*
 * tier.c — the archive tier's building blocks (see tier.h): the archive
 * env, the copy of a sorted file into another tier with another codec, the
 * policy's decision.
 *
 * Archive env invariants: every call is forwarded to the base env with the
 * same arguments; only its result may change (I/O failures become
 * CAIRN_EUNAVAILABLE, see tier.h). `available` goes false on such a
 * failure and true only through a successful probe, so a reader that saw
 * the archive fail keeps seeing "unavailable" in the statistics until the
 * archive answers again (reads themselves always try the archive).
 *
 * Locking: err_mu guards the last error's text; everything else is
 * atomic. Files opened through the env are the base env's files wrapped in
 * a small struct that remembers the path (for error texts).
 */
#include "tier/tier.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "lsm/manifest.h"

/* ---------- the archive env ---------- */

typedef struct tier_env {
    cairn_env base_env; /* first: a cairn_env */
    cairn_env *base;
    char *dir;
    atomic_bool available;
    atomic_uint_fast64_t failures;
    pthread_mutex_t err_mu;
    char err[320];
} tier_env;

typedef struct tier_file {
    cairn_file f; /* first: a cairn_file whose env is the tier env */
    cairn_file *bf;
    char *path;
} tier_file;

#define TE(e) ((tier_env *)(e))
#define TF(f) ((tier_file *)(f))

static void te_note(tier_env *te, const char *what, const char *path, int rc)
{
    atomic_store(&te->available, false);
    atomic_fetch_add(&te->failures, 1);
    pthread_mutex_lock(&te->err_mu);
    snprintf(te->err, sizeof te->err, "%s %s: %s", what, path ? path : "",
             cairn_strerror(rc));
    pthread_mutex_unlock(&te->err_mu);
}

/* The result of a call on path: I/O errors, and "not found" while the
 * archive directory itself is gone, are "unavailable". */
static int te_map(tier_env *te, const char *what, const char *path, int rc)
{
    if (rc == 0 || rc == CAIRN_ENOSPC || rc == CAIRN_EEXIST ||
        rc == CAIRN_EINVAL || rc == CAIRN_ENOMEM || rc == CAIRN_EBUSY)
        return rc;
    if (rc == CAIRN_ENOTFOUND) {
        int d = te->base->ops->exists(te->base, te->dir);
        if (d == 0)
            return rc; /* the directory is there: the file is not */
        what = "archive directory missing:";
        path = te->dir;
        rc = d == CAIRN_ENOTFOUND ? CAIRN_ENOTFOUND : d;
    }
    te_note(te, what, path, rc);
    return CAIRN_EUNAVAILABLE;
}

static int te_open(cairn_env *env, const char *path, int flags,
                   cairn_file **out)
{
    tier_env *te = TE(env);
    *out = NULL;
    tier_file *tf = calloc(1, sizeof *tf);
    if (!tf || !(tf->path = strdup(path))) {
        free(tf);
        return CAIRN_ENOMEM;
    }
    int rc = te->base->ops->open(te->base, path, flags, &tf->bf);
    if (rc != 0) {
        free(tf->path);
        free(tf);
        return te_map(te, "open", path, rc);
    }
    tf->f.env = env;
    *out = &tf->f;
    return 0;
}

static int te_close(cairn_file *f)
{
    tier_file *tf = TF(f);
    tier_env *te = TE(f->env);
    int rc = cairn_file_close(tf->bf);
    free(tf->path);
    free(tf);
    return rc == 0 ? 0 : te_map(te, "close", NULL, rc);
}

static int te_read_at(cairn_file *f, uint64_t off, void *buf, size_t len,
                      size_t *nread)
{
    int rc = cairn_file_read_at(TF(f)->bf, off, buf, len, nread);
    return rc == 0 ? 0 : te_map(TE(f->env), "read", TF(f)->path, rc);
}

static int te_write_at(cairn_file *f, uint64_t off, const void *buf,
                       size_t len)
{
    int rc = cairn_file_write_at(TF(f)->bf, off, buf, len);
    return rc == 0 ? 0 : te_map(TE(f->env), "write", TF(f)->path, rc);
}

static int te_sync(cairn_file *f, int kind)
{
    int rc = cairn_file_sync(TF(f)->bf, kind);
    return rc == 0 ? 0 : te_map(TE(f->env), "sync", TF(f)->path, rc);
}

static int te_truncate(cairn_file *f, uint64_t size)
{
    int rc = cairn_file_truncate(TF(f)->bf, size);
    return rc == 0 ? 0 : te_map(TE(f->env), "truncate", TF(f)->path, rc);
}

static int te_allocate(cairn_file *f, uint64_t off, uint64_t len)
{
    int rc = cairn_file_allocate(TF(f)->bf, off, len);
    return rc == 0 ? 0 : te_map(TE(f->env), "allocate", TF(f)->path, rc);
}

static int te_size(cairn_file *f, uint64_t *out)
{
    int rc = cairn_file_size(TF(f)->bf, out);
    return rc == 0 ? 0 : te_map(TE(f->env), "size", TF(f)->path, rc);
}

static int te_sync_dir(cairn_env *env, const char *dir)
{
    int rc = cairn_env_sync_dir(TE(env)->base, dir);
    return rc == 0 ? 0 : te_map(TE(env), "sync", dir, rc);
}

static int te_rename(cairn_env *env, const char *from, const char *to)
{
    int rc = cairn_env_rename(TE(env)->base, from, to);
    return rc == 0 ? 0 : te_map(TE(env), "rename", from, rc);
}

static int te_unlink(cairn_env *env, const char *path)
{
    int rc = cairn_env_unlink(TE(env)->base, path);
    return rc == 0 ? 0 : te_map(TE(env), "unlink", path, rc);
}

static int te_list_dir(cairn_env *env, const char *dir, char ***names,
                       size_t *count)
{
    int rc = cairn_env_list_dir(TE(env)->base, dir, names, count);
    return rc == 0 ? 0 : te_map(TE(env), "list", dir, rc);
}

static int te_mkdir(cairn_env *env, const char *path)
{
    int rc = cairn_env_mkdir(TE(env)->base, path);
    return rc == 0 ? 0 : te_map(TE(env), "mkdir", path, rc);
}

static int te_lock(cairn_env *env, const char *path, cairn_filelock **out)
{
    return cairn_env_lock(TE(env)->base, path, out);
}

static int te_unlock(cairn_filelock *l)
{
    return cairn_env_unlock(l);
}

static int te_exists(cairn_env *env, const char *path)
{
    int rc = cairn_env_exists(TE(env)->base, path);
    return rc == 0 ? 0 : te_map(TE(env), "stat", path, rc);
}

static void te_destroy(cairn_env *env)
{
    tier_env *te = TE(env);
    pthread_mutex_destroy(&te->err_mu);
    free(te->dir);
    free(te);
}

static const cairn_env_ops tier_env_ops = {
    .name = "archive",
    .open = te_open,
    .close = te_close,
    .read_at = te_read_at,
    .write_at = te_write_at,
    .sync = te_sync,
    .truncate = te_truncate,
    .allocate = te_allocate,
    .size = te_size,
    .sync_dir = te_sync_dir,
    .rename = te_rename,
    .unlink = te_unlink,
    .list_dir = te_list_dir,
    .mkdir = te_mkdir,
    .lock = te_lock,
    .unlock = te_unlock,
    .exists = te_exists,
    .destroy = te_destroy,
};

cairn_env *cairn_tier_env_new(cairn_env *base, const char *dir)
{
    tier_env *te = calloc(1, sizeof *te);
    if (!te || !(te->dir = strdup(dir))) {
        free(te);
        return NULL;
    }
    te->base_env.ops = &tier_env_ops;
    te->base = base;
    atomic_init(&te->available, true);
    atomic_init(&te->failures, 0);
    pthread_mutex_init(&te->err_mu, NULL);
    return &te->base_env;
}

bool cairn_tier_env_available(cairn_env *env)
{
    return atomic_load(&TE(env)->available);
}

int cairn_tier_env_probe(cairn_env *env, const char *probe_file)
{
    tier_env *te = TE(env);
    char **names = NULL;
    size_t n = 0;
    int rc = te->base->ops->list_dir(te->base, te->dir, &names, &n);
    if (rc != 0) {
        te_note(te, "list", te->dir, rc);
        return CAIRN_EUNAVAILABLE;
    }
    cairn_env_free_list(names, n);
    if (probe_file) {
        cairn_file *f = NULL;
        rc = te->base->ops->open(te->base, probe_file, CAIRN_OPEN_READ, &f);
        uint64_t size = 0;
        if (rc == 0)
            rc = cairn_file_size(f, &size);
        if (rc == 0 && size > 0) {
            uint8_t b[88];
            size_t want = size < sizeof b ? (size_t)size : sizeof b, got = 0;
            rc = cairn_file_read_at(f, size - want, b, want, &got);
        }
        cairn_file_close(f);
        if (rc != 0) {
            te_note(te, "read", probe_file, rc);
            return CAIRN_EUNAVAILABLE;
        }
    }
    atomic_store(&te->available, true);
    return 0;
}

void cairn_tier_env_mark_unavailable(cairn_env *env, const char *why)
{
    tier_env *te = TE(env);
    atomic_store(&te->available, false);
    atomic_fetch_add(&te->failures, 1);
    pthread_mutex_lock(&te->err_mu);
    snprintf(te->err, sizeof te->err, "%s", why);
    pthread_mutex_unlock(&te->err_mu);
}

void cairn_tier_env_last_error(cairn_env *env, char *buf, size_t n)
{
    tier_env *te = TE(env);
    pthread_mutex_lock(&te->err_mu);
    snprintf(buf, n, "%s", te->err);
    pthread_mutex_unlock(&te->err_mu);
}

uint64_t cairn_tier_env_failures(cairn_env *env)
{
    return atomic_load(&TE(env)->failures);
}

/* ---------- copying ---------- */

static bool same_key(const uint8_t *a, size_t alen, const uint8_t *b,
                     size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

int cairn_tier_copy_sst(const cairn_sst_reader *src, cairn_env *dst_env,
                        const char *dst_path, cairn_sst_codec codec,
                        int zstd_level, cairn_tier_copy_fn fn, void *arg,
                        cairn_sst_props *props_out)
{
    if (props_out)
        memset(props_out, 0, sizeof *props_out);
    const cairn_sst_props *sp = cairn_sst_props_get(src);
    cairn_sst_options so;
    cairn_sst_options_init(&so);
    if (sp->block_size)
        so.block_size = (size_t)sp->block_size;
    if (sp->restart_interval)
        so.restart_interval = sp->restart_interval;
    so.bloom_bits_per_key = sp->bloom_bits_per_key;
    so.codec = codec;
    so.zstd_level = zstd_level;
    int rc = cairn_env_unlink(dst_env, dst_path); /* a stale copy */
    if (rc != 0 && rc != CAIRN_ENOTFOUND)
        return rc;
    cairn_sst_builder *b = NULL;
    rc = cairn_sst_builder_new(dst_env, dst_path, &so, &b);
    if (rc != 0)
        return rc;
    cairn_sst_iter *it = NULL;
    rc = cairn_sst_iter_new(src, &it);
    if (rc == 0) {
        cairn_sst_iter_set_fill_cache(it, false);
        uint64_t n = 0, step = sp->entries / 64 + 1;
        for (cairn_sst_iter_seek_first(it); cairn_sst_iter_valid(it) && rc == 0;
             cairn_sst_iter_next(it)) {
            cairn_sst_entry e;
            cairn_sst_iter_entry(it, &e);
            rc = cairn_sst_builder_add(b, e.key, e.klen, e.version, e.ts_us,
                                       e.kind, e.value, e.vlen);
            if (rc == 0 && fn && ++n % step == 0 &&
                fn(arg, sp->stored_data_size * n / (sp->entries ? sp->entries : 1),
                   sp->stored_data_size) != 0)
                rc = CAIRN_ECLOSED;
        }
        if (rc == 0)
            rc = cairn_sst_iter_status(it);
        cairn_sst_iter_free(it);
    }
    if (rc != 0) {
        cairn_sst_builder_abandon(b);
        return rc;
    }
    cairn_sst_props p;
    memset(&p, 0, sizeof p);
    rc = cairn_sst_builder_finish(b, &p); /* syncs; frees b */
    if (rc != 0)
        return rc;
    if (p.entries != sp->entries || p.deletes != sp->deletes ||
        p.min_version != sp->min_version || p.max_version != sp->max_version ||
        p.raw_key_bytes != sp->raw_key_bytes ||
        p.raw_value_bytes != sp->raw_value_bytes ||
        !same_key(p.smallest_key, p.smallest_klen, sp->smallest_key,
                  sp->smallest_klen) ||
        !same_key(p.largest_key, p.largest_klen, sp->largest_key,
                  sp->largest_klen)) {
        cairn_sst_props_clear(&p);
        cairn_env_unlink(dst_env, dst_path);
        return CAIRN_ECORRUPT;
    }
    if (fn)
        fn(arg, sp->stored_data_size, sp->stored_data_size);
    if (props_out)
        *props_out = p;
    else
        cairn_sst_props_clear(&p);
    return 0;
}

/* ---------- policy and names ---------- */

bool cairn_tier_policy_wants(const cairn_tier_policy *p,
                             const cairn_file_meta *m, int level,
                             uint64_t now_us)
{
    if (!p || m->tier != CAIRN_TIER_LOCAL)
        return false;
    if (p->min_level <= 0 && p->min_age_s == 0)
        return false;
    if (p->min_level > 0 && level < p->min_level)
        return false;
    if (p->min_age_s > 0) {
        uint64_t age_us = now_us > m->created_us ? now_us - m->created_us : 0;
        if (age_us / 1000000u < p->min_age_s)
            return false;
    }
    return true;
}

int cairn_tier_tmp_path(char *buf, size_t n, const char *dir,
                        uint64_t number)
{
    int w = snprintf(buf, n, "%s/%06" PRIu64 ".sst.tmp", dir, number);
    return w < 0 || (size_t)w >= n ? CAIRN_EINVAL : 0;
}

bool cairn_tier_parse_tmp_name(const char *name, uint64_t *number)
{
    size_t n = strlen(name);
    if (n < 5 || strcmp(name + n - 4, ".tmp") != 0)
        return false;
    char base[64];
    if (n - 4 >= sizeof base)
        return false;
    memcpy(base, name, n - 4);
    base[n - 4] = '\0';
    return cairn_lsm_parse_sst_name(base, number);
}
