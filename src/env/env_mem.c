/*
 * env_mem.c — an in-memory file system that can simulate power loss.
 *
 * Model:
 *   - A file is an inode with two byte buffers: the current content and the
 *     durable content (what a sync last made durable). sync (DATA or FULL)
 *     copies current -> durable.
 *   - A directory has two name -> inode maps: the current entries and the
 *     durable entries. sync_dir copies current -> durable. Creates, renames
 *     and unlinks change only the current entries.
 *   - Directories themselves are durable as soon as mkdir returns; only file
 *     entries can be lost. Directories are never removed.
 *   - Paths are normalised: empty components and "." are dropped, ".." pops
 *     a component (never above the root), and a relative path is taken
 *     relative to the root, so "a/b", "/a/b" and "/a/./b/" name one file.
 *   - cairn_env_mem_power_loss() reverts every inode to its durable content
 *     (optionally tearing the first unsynced 4 KiB block) and every directory
 *     to its durable entries, marks every open handle stale (each later call
 *     on it fails with CAIRN_EIO; close still frees it) and drops every lock.
 *
 * Invariants:
 *   - inode.refs == (current entries naming it) + (durable entries naming it)
 *     + (open file handles on it); the inode is freed when it reaches 0.
 *   - cur[0, min(dirty_from, len, dlen)) == dur[0, same): dirty_from is a
 *     lower bound on the first offset changed since the last sync
 *     (SIZE_MAX when nothing changed).
 *   - ccap >= dlen (the current buffer never shrinks and every durable length
 *     was once a current length), so reverting needs no allocation.
 *   - A handle or lock is live iff its epoch equals the env's epoch.
 *
 * Locking: one mutex per env protects all of its state (directories, inodes,
 * locks, epoch). Every op takes it for its whole duration; no callbacks run
 * with it held. Close all handles and unlock all locks before destroy.
 */
#include "env/env.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"

#define MEM_BLOCK 4096u
/* Largest file the memory env accepts; beyond it writes fail with ENOSPC. */
#define MEM_MAX_FILE ((uint64_t)1 << 36)

typedef struct minode {
    uint8_t *cur;      /* current content */
    size_t len, ccap;
    uint8_t *dur;      /* durable content */
    size_t dlen, dcap;
    size_t dirty_from; /* lower bound of the first unsynced change */
    size_t refs;
    struct minode *prev, *next; /* all inodes of the env */
} minode;

typedef struct ment {
    char *name;
    minode *ino;
} ment;

typedef struct ments {
    ment *v;
    size_t n, cap;
} ments;

typedef struct mdir {
    char *path;          /* normalised, e.g. "/" or "/a/b" */
    struct mdir *parent; /* NULL for the root */
    const char *name;    /* base name (points into path) */
    ments cur, dur;
    ments pending;       /* scratch used by power loss */
    struct mdir *next;
} mdir;

typedef struct mlock {
    cairn_filelock base;
    char *path;
    uint64_t epoch;
    struct mlock *next; /* held locks of the env (only while live) */
} mlock;

typedef struct menv {
    cairn_env base;
    pthread_mutex_t mu;
    mdir *dirs;
    minode *inodes;
    mlock *locks;
    uint64_t epoch;
} menv;

typedef struct mfile {
    cairn_file base;
    minode *ino;
    int flags;
    uint64_t epoch;
} mfile;

static const cairn_env_ops mem_ops;

/* ---- small helpers ---- */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

static size_t min_sz(size_t a, size_t b) { return a < b ? a : b; }

/* Grow *buf to hold at least need bytes (geometric growth). */
static int reserve(uint8_t **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap < 4096 ? 4096 : *cap;
    while (nc < need)
        nc = nc > SIZE_MAX / 2 ? need : nc * 2;
    uint8_t *p = realloc(*buf, nc);
    if (!p)
        return CAIRN_ENOMEM;
    *buf = p;
    *cap = nc;
    return 0;
}

/* Normalise path into a freshly allocated string starting with '/'. */
static int norm_path(const char *in, char **out)
{
    if (!in || !*in)
        return CAIRN_EINVAL;
    size_t n = strlen(in);
    char *o = malloc(n + 2);
    if (!o)
        return CAIRN_ENOMEM;
    size_t ol = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/')
            p++;
        const char *s = p;
        while (*p && *p != '/')
            p++;
        size_t cl = (size_t)(p - s);
        if (cl == 0 || (cl == 1 && s[0] == '.'))
            continue;
        if (cl == 2 && s[0] == '.' && s[1] == '.') {
            while (ol > 0 && o[ol - 1] != '/')
                ol--;
            if (ol > 0)
                ol--; /* drop the '/' too */
            continue;
        }
        o[ol++] = '/';
        memcpy(o + ol, s, cl);
        ol += cl;
    }
    if (ol == 0)
        o[ol++] = '/';
    o[ol] = '\0';
    *out = o;
    return 0;
}

/* ---- inodes ---- */

static minode *ino_new(menv *e)
{
    minode *i = calloc(1, sizeof *i);
    if (!i)
        return NULL;
    i->dirty_from = SIZE_MAX;
    i->next = e->inodes;
    if (e->inodes)
        e->inodes->prev = i;
    e->inodes = i;
    return i;
}

static void ino_free(menv *e, minode *i)
{
    if (i->prev)
        i->prev->next = i->next;
    else
        e->inodes = i->next;
    if (i->next)
        i->next->prev = i->prev;
    free(i->cur);
    free(i->dur);
    free(i);
}

static void ino_ref(minode *i) { i->refs++; }

static void ino_unref(menv *e, minode *i)
{
    if (--i->refs == 0)
        ino_free(e, i);
}

static void ino_mark_dirty(minode *i, size_t off)
{
    if (off < i->dirty_from)
        i->dirty_from = off;
}

/* Set the current length; new bytes read as zeros. */
static int ino_resize(minode *i, uint64_t size)
{
    if (size > MEM_MAX_FILE)
        return CAIRN_ENOSPC;
    size_t ns = (size_t)size;
    if (ns > i->len) {
        int rc = reserve(&i->cur, &i->ccap, ns);
        if (rc)
            return rc;
        memset(i->cur + i->len, 0, ns - i->len);
        ino_mark_dirty(i, i->len);
    } else if (ns < i->len) {
        ino_mark_dirty(i, ns);
    }
    i->len = ns;
    return 0;
}

/* Length of the common prefix of current and durable content. */
static size_t ino_common_prefix(const minode *i)
{
    size_t lim = min_sz(i->len, i->dlen);
    size_t d = min_sz(i->dirty_from, lim);
    while (d < lim && i->cur[d] == i->dur[d])
        d++;
    return d;
}

static int ino_sync(minode *i)
{
    if (i->dirty_from == SIZE_MAX && i->dlen == i->len)
        return 0;
    int rc = reserve(&i->dur, &i->dcap, i->len);
    if (rc)
        return rc;
    size_t from = min_sz(i->dirty_from, min_sz(i->len, i->dlen));
    if (i->len > from)
        memcpy(i->dur + from, i->cur + from, i->len - from);
    i->dlen = i->len;
    i->dirty_from = SIZE_MAX;
    return 0;
}

/* ---- directory entry maps ---- */

static ment *ents_find(ments *m, const char *name)
{
    for (size_t k = 0; k < m->n; k++)
        if (strcmp(m->v[k].name, name) == 0)
            return &m->v[k];
    return NULL;
}

static int ents_grow(ments *m)
{
    if (m->n < m->cap)
        return 0;
    size_t nc = m->cap ? m->cap * 2 : 8;
    ment *v = realloc(m->v, nc * sizeof *v);
    if (!v)
        return CAIRN_ENOMEM;
    m->v = v;
    m->cap = nc;
    return 0;
}

/* Add a new entry (name must not be present); takes a reference. */
static int ents_add(ments *m, const char *name, minode *ino)
{
    int rc = ents_grow(m);
    if (rc)
        return rc;
    char *nm = dupstr(name);
    if (!nm)
        return CAIRN_ENOMEM;
    m->v[m->n].name = nm;
    m->v[m->n].ino = ino;
    m->n++;
    ino_ref(ino);
    return 0;
}

/* Remove the entry at *ent (which must point into m); drops its reference. */
static void ents_del(menv *e, ments *m, ment *ent)
{
    minode *ino = ent->ino;
    free(ent->name);
    *ent = m->v[--m->n];
    ino_unref(e, ino);
}

static void ents_clear(menv *e, ments *m)
{
    for (size_t k = 0; k < m->n; k++) {
        free(m->v[k].name);
        ino_unref(e, m->v[k].ino);
    }
    free(m->v);
    m->v = NULL;
    m->n = m->cap = 0;
}

/* Deep-copy src into *dst (names duplicated) without taking references. */
static int ents_clone(const ments *src, ments *dst)
{
    dst->v = NULL;
    dst->n = dst->cap = 0;
    if (src->n == 0)
        return 0;
    dst->v = calloc(src->n, sizeof *dst->v);
    if (!dst->v)
        return CAIRN_ENOMEM;
    dst->cap = src->n;
    for (size_t k = 0; k < src->n; k++) {
        dst->v[k].name = dupstr(src->v[k].name);
        if (!dst->v[k].name) {
            for (size_t j = 0; j < k; j++)
                free(dst->v[j].name);
            free(dst->v);
            dst->v = NULL;
            dst->cap = 0;
            return CAIRN_ENOMEM;
        }
        dst->v[k].ino = src->v[k].ino;
    }
    dst->n = src->n;
    return 0;
}

static void ents_free_unreffed(ments *m)
{
    for (size_t k = 0; k < m->n; k++)
        free(m->v[k].name);
    free(m->v);
    m->v = NULL;
    m->n = m->cap = 0;
}

/* Replace *dst by src (src's entries gain references, dst's lose them). */
static void ents_replace(menv *e, ments *dst, ments *src)
{
    for (size_t k = 0; k < src->n; k++)
        ino_ref(src->v[k].ino);
    ents_clear(e, dst);
    *dst = *src;
    src->v = NULL;
    src->n = src->cap = 0;
}

/* ---- directories and path lookup ---- */

static mdir *dir_find(menv *e, const char *norm)
{
    for (mdir *d = e->dirs; d; d = d->next)
        if (strcmp(d->path, norm) == 0)
            return d;
    return NULL;
}

static mdir *dir_new(menv *e, char *norm, mdir *parent)
{
    mdir *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->path = norm;
    d->parent = parent;
    const char *slash = strrchr(norm, '/');
    d->name = slash ? slash + 1 : norm;
    d->next = e->dirs;
    e->dirs = d;
    return d;
}

static void dir_free(menv *e, mdir *d)
{
    ents_clear(e, &d->cur);
    ents_clear(e, &d->dur);
    ents_free_unreffed(&d->pending);
    free(d->path);
    free(d);
}

/* Split a normalised non-root path into its parent directory and base name.
 * *base points into norm. CAIRN_EINVAL for the root, CAIRN_ENOTFOUND when
 * the parent directory does not exist. */
static int split(menv *e, char *norm, mdir **parent, const char **base)
{
    char *slash = strrchr(norm, '/');
    if (!slash || slash[1] == '\0')
        return CAIRN_EINVAL;
    mdir *d;
    if (slash == norm) {
        d = dir_find(e, "/");
    } else {
        *slash = '\0';
        d = dir_find(e, norm);
        *slash = '/';
    }
    if (!d)
        return CAIRN_ENOTFOUND;
    *parent = d;
    *base = slash + 1;
    return 0;
}

/* Find or (with create) make the file at norm. *ino is NULL when the file
 * is missing and create is false. *created tells whether it was made. */
static int lookup_file(menv *e, char *norm, bool create, minode **ino,
                       bool *created)
{
    *ino = NULL;
    *created = false;
    if (dir_find(e, norm))
        return CAIRN_EINVAL; /* a directory */
    mdir *d;
    const char *base;
    int rc = split(e, norm, &d, &base);
    if (rc)
        return rc;
    ment *ent = ents_find(&d->cur, base);
    if (ent) {
        *ino = ent->ino;
        return 0;
    }
    if (!create)
        return 0;
    minode *i = ino_new(e);
    if (!i)
        return CAIRN_ENOMEM;
    rc = ents_add(&d->cur, base, i);
    if (rc) {
        ino_free(e, i);
        return rc;
    }
    *ino = i;
    *created = true;
    return 0;
}

/* ---- file ops ---- */

static int mem_open(cairn_env *env, const char *path, int flags,
                    cairn_file **out)
{
    menv *e = (menv *)env;
    if (!out)
        return CAIRN_EINVAL;
    *out = NULL;
    if (flags & ~(CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE | CAIRN_OPEN_EXCL |
                  CAIRN_OPEN_TRUNC))
        return CAIRN_EINVAL;
    char *norm;
    int rc = norm_path(path, &norm);
    if (rc)
        return rc;
    mfile *f = calloc(1, sizeof *f);
    if (!f) {
        free(norm);
        return CAIRN_ENOMEM;
    }
    pthread_mutex_lock(&e->mu);
    minode *ino;
    bool created;
    rc = lookup_file(e, norm, (flags & CAIRN_OPEN_CREATE) != 0, &ino, &created);
    if (rc == 0 && !ino)
        rc = CAIRN_ENOTFOUND;
    if (rc == 0 && !created && (flags & CAIRN_OPEN_CREATE) &&
        (flags & CAIRN_OPEN_EXCL))
        rc = CAIRN_EEXIST;
    if (rc == 0 && (flags & CAIRN_OPEN_TRUNC))
        rc = ino_resize(ino, 0); /* shrinking never fails */
    if (rc == 0) {
        ino_ref(ino);
        f->base.env = env;
        f->ino = ino;
        f->flags = flags;
        f->epoch = e->epoch;
        *out = &f->base;
    }
    pthread_mutex_unlock(&e->mu);
    free(norm);
    if (rc)
        free(f);
    return rc;
}

static int mem_close(cairn_file *file)
{
    if (!file)
        return 0;
    mfile *f = (mfile *)file;
    menv *e = (menv *)file->env;
    pthread_mutex_lock(&e->mu);
    ino_unref(e, f->ino);
    pthread_mutex_unlock(&e->mu);
    free(f);
    return 0;
}

/* Lock the env and check the handle; on success the mutex is held. */
static int file_enter(mfile *f, bool write)
{
    menv *e = (menv *)f->base.env;
    pthread_mutex_lock(&e->mu);
    int rc = 0;
    if (f->epoch != e->epoch)
        rc = CAIRN_EIO;
    else if (write && !(f->flags & CAIRN_OPEN_WRITE))
        rc = CAIRN_EINVAL;
    if (rc)
        pthread_mutex_unlock(&e->mu);
    return rc;
}

static void file_leave(mfile *f)
{
    pthread_mutex_unlock(&((menv *)f->base.env)->mu);
}

static int mem_read_at(cairn_file *file, uint64_t off, void *buf, size_t len,
                       size_t *nread)
{
    mfile *f = (mfile *)file;
    if (!nread || (!buf && len))
        return CAIRN_EINVAL;
    *nread = 0;
    int rc = file_enter(f, false);
    if (rc)
        return rc;
    minode *i = f->ino;
    if (off < i->len) {
        size_t n = min_sz(len, i->len - (size_t)off);
        memcpy(buf, i->cur + off, n);
        *nread = n;
    }
    file_leave(f);
    return 0;
}

static int mem_write_at(cairn_file *file, uint64_t off, const void *buf,
                        size_t len)
{
    mfile *f = (mfile *)file;
    if (!buf && len)
        return CAIRN_EINVAL;
    int rc = file_enter(f, true);
    if (rc)
        return rc;
    if (len > 0) {
        minode *i = f->ino;
        if (off > MEM_MAX_FILE || len > MEM_MAX_FILE - off) {
            rc = CAIRN_ENOSPC;
        } else {
            size_t end = (size_t)off + len;
            if (end > i->len)
                rc = ino_resize(i, end);
            if (rc == 0) {
                memcpy(i->cur + off, buf, len);
                ino_mark_dirty(i, (size_t)off);
            }
        }
    }
    file_leave(f);
    return rc;
}

static int mem_sync(cairn_file *file, int kind)
{
    mfile *f = (mfile *)file;
    if (kind != CAIRN_SYNC_DATA && kind != CAIRN_SYNC_FULL)
        return CAIRN_EINVAL;
    int rc = file_enter(f, false);
    if (rc)
        return rc;
    rc = ino_sync(f->ino);
    file_leave(f);
    return rc;
}

static int mem_truncate(cairn_file *file, uint64_t size)
{
    mfile *f = (mfile *)file;
    int rc = file_enter(f, true);
    if (rc)
        return rc;
    rc = ino_resize(f->ino, size);
    file_leave(f);
    return rc;
}

static int mem_allocate(cairn_file *file, uint64_t off, uint64_t len)
{
    mfile *f = (mfile *)file;
    int rc = file_enter(f, true);
    if (rc)
        return rc;
    if (off > MEM_MAX_FILE || len > MEM_MAX_FILE - off)
        rc = CAIRN_ENOSPC;
    else if (off + len > f->ino->len)
        rc = ino_resize(f->ino, off + len);
    file_leave(f);
    return rc;
}

static int mem_size(cairn_file *file, uint64_t *out)
{
    mfile *f = (mfile *)file;
    if (!out)
        return CAIRN_EINVAL;
    int rc = file_enter(f, false);
    if (rc)
        return rc;
    *out = f->ino->len;
    file_leave(f);
    return 0;
}

/* ---- namespace ops ---- */

static int mem_sync_dir(cairn_env *env, const char *dir)
{
    menv *e = (menv *)env;
    char *norm;
    int rc = norm_path(dir, &norm);
    if (rc)
        return rc;
    pthread_mutex_lock(&e->mu);
    mdir *d = dir_find(e, norm);
    if (!d) {
        rc = CAIRN_ENOTFOUND;
    } else {
        ments copy;
        rc = ents_clone(&d->cur, &copy);
        if (rc == 0)
            ents_replace(e, &d->dur, &copy);
    }
    pthread_mutex_unlock(&e->mu);
    free(norm);
    return rc;
}

static int mem_rename(cairn_env *env, const char *from, const char *to)
{
    menv *e = (menv *)env;
    char *nf, *nt;
    int rc = norm_path(from, &nf);
    if (rc)
        return rc;
    rc = norm_path(to, &nt);
    if (rc) {
        free(nf);
        return rc;
    }
    pthread_mutex_lock(&e->mu);
    mdir *df, *dt;
    const char *bf, *bt;
    ment *ef = NULL;
    if (dir_find(e, nf))
        rc = CAIRN_ENOTSUP; /* renaming directories is not modelled */
    else if ((rc = split(e, nf, &df, &bf)) == 0 &&
             !(ef = ents_find(&df->cur, bf)))
        rc = CAIRN_ENOTFOUND;
    if (rc == 0 && dir_find(e, nt))
        rc = CAIRN_EINVAL; /* target is a directory */
    if (rc == 0)
        rc = split(e, nt, &dt, &bt);
    if (rc == 0 && strcmp(nf, nt) != 0) {
        minode *ino = ef->ino;
        ment *et = ents_find(&dt->cur, bt);
        if (et) {
            minode *old = et->ino;
            ino_ref(ino);
            et->ino = ino;
            ino_unref(e, old);
        } else {
            size_t idx = (size_t)(ef - df->cur.v);
            rc = ents_add(&dt->cur, bt, ino); /* may move df->cur.v */
            ef = &df->cur.v[idx];
        }
        if (rc == 0)
            ents_del(e, &df->cur, ef);
    }
    pthread_mutex_unlock(&e->mu);
    free(nf);
    free(nt);
    return rc;
}

static int mem_unlink(cairn_env *env, const char *path)
{
    menv *e = (menv *)env;
    char *norm;
    int rc = norm_path(path, &norm);
    if (rc)
        return rc;
    pthread_mutex_lock(&e->mu);
    mdir *d;
    const char *base;
    if (dir_find(e, norm)) {
        rc = CAIRN_EINVAL; /* a directory */
    } else if ((rc = split(e, norm, &d, &base)) == 0) {
        ment *ent = ents_find(&d->cur, base);
        if (ent)
            ents_del(e, &d->cur, ent);
        else
            rc = CAIRN_ENOTFOUND;
    }
    pthread_mutex_unlock(&e->mu);
    free(norm);
    return rc;
}

static int mem_list_dir(cairn_env *env, const char *dir, char ***names,
                        size_t *count)
{
    menv *e = (menv *)env;
    if (!names || !count)
        return CAIRN_EINVAL;
    *names = NULL;
    *count = 0;
    char *norm;
    int rc = norm_path(dir, &norm);
    if (rc)
        return rc;
    pthread_mutex_lock(&e->mu);
    mdir *d = dir_find(e, norm);
    char **v = NULL;
    size_t n = 0;
    if (!d) {
        rc = CAIRN_ENOTFOUND;
    } else {
        size_t total = d->cur.n;
        for (mdir *c = e->dirs; c; c = c->next)
            if (c->parent == d)
                total++;
        v = calloc(total ? total : 1, sizeof *v);
        if (!v)
            rc = CAIRN_ENOMEM;
        for (size_t k = 0; rc == 0 && k < d->cur.n; k++) {
            if (!(v[n] = dupstr(d->cur.v[k].name)))
                rc = CAIRN_ENOMEM;
            else
                n++;
        }
        for (mdir *c = e->dirs; rc == 0 && c; c = c->next) {
            if (c->parent != d)
                continue;
            if (!(v[n] = dupstr(c->name)))
                rc = CAIRN_ENOMEM;
            else
                n++;
        }
    }
    pthread_mutex_unlock(&e->mu);
    free(norm);
    if (rc) {
        cairn_env_free_list(v, n);
        return rc;
    }
    *names = v;
    *count = n;
    return 0;
}

static int mem_mkdir(cairn_env *env, const char *path)
{
    menv *e = (menv *)env;
    char *norm;
    int rc = norm_path(path, &norm);
    if (rc)
        return rc;
    pthread_mutex_lock(&e->mu);
    mdir *parent;
    const char *base;
    if (dir_find(e, norm))
        rc = CAIRN_EEXIST;
    else if ((rc = split(e, norm, &parent, &base)) == 0) {
        if (ents_find(&parent->cur, base))
            rc = CAIRN_EEXIST; /* a file */
        else if (dir_new(e, norm, parent))
            norm = NULL; /* owned by the directory now */
        else
            rc = CAIRN_ENOMEM;
    }
    pthread_mutex_unlock(&e->mu);
    free(norm);
    return rc;
}

static int mem_lock(cairn_env *env, const char *path, cairn_filelock **out)
{
    menv *e = (menv *)env;
    if (!out)
        return CAIRN_EINVAL;
    *out = NULL;
    mlock *l = calloc(1, sizeof *l);
    if (!l)
        return CAIRN_ENOMEM;
    int rc = norm_path(path, &l->path);
    if (rc) {
        free(l);
        return rc;
    }
    pthread_mutex_lock(&e->mu);
    for (mlock *h = e->locks; h; h = h->next)
        if (strcmp(h->path, l->path) == 0)
            rc = CAIRN_EBUSY;
    minode *ino;
    bool created;
    if (rc == 0)
        rc = lookup_file(e, l->path, true, &ino, &created);
    if (rc == 0) {
        l->base.env = env;
        l->epoch = e->epoch;
        l->next = e->locks;
        e->locks = l;
        *out = &l->base;
    }
    pthread_mutex_unlock(&e->mu);
    if (rc) {
        free(l->path);
        free(l);
    }
    return rc;
}

static int mem_unlock(cairn_filelock *lock)
{
    if (!lock)
        return 0;
    mlock *l = (mlock *)lock;
    menv *e = (menv *)lock->env;
    pthread_mutex_lock(&e->mu);
    if (l->epoch == e->epoch) {
        for (mlock **pp = &e->locks; *pp; pp = &(*pp)->next) {
            if (*pp == l) {
                *pp = l->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&e->mu);
    free(l->path);
    free(l);
    return 0;
}

static int mem_exists(cairn_env *env, const char *path)
{
    menv *e = (menv *)env;
    char *norm;
    int rc = norm_path(path, &norm);
    if (rc)
        return rc;
    pthread_mutex_lock(&e->mu);
    mdir *d;
    const char *base;
    if (dir_find(e, norm))
        rc = 0;
    else if ((rc = split(e, norm, &d, &base)) == 0 &&
             !ents_find(&d->cur, base))
        rc = CAIRN_ENOTFOUND;
    pthread_mutex_unlock(&e->mu);
    free(norm);
    return rc;
}

static void mem_destroy(cairn_env *env)
{
    menv *e = (menv *)env;
    if (!e)
        return;
    while (e->dirs) {
        mdir *d = e->dirs;
        e->dirs = d->next;
        dir_free(e, d);
    }
    /* Inodes still held by open handles: the handles must not be used. */
    while (e->inodes)
        ino_free(e, e->inodes);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

static const cairn_env_ops mem_ops = {
    .name = "mem",
    .open = mem_open,
    .close = mem_close,
    .read_at = mem_read_at,
    .write_at = mem_write_at,
    .sync = mem_sync,
    .truncate = mem_truncate,
    .allocate = mem_allocate,
    .size = mem_size,
    .sync_dir = mem_sync_dir,
    .rename = mem_rename,
    .unlink = mem_unlink,
    .list_dir = mem_list_dir,
    .mkdir = mem_mkdir,
    .lock = mem_lock,
    .unlock = mem_unlock,
    .exists = mem_exists,
    .destroy = mem_destroy,
};

/* ---- public ---- */

cairn_env *cairn_env_mem_new(void)
{
    menv *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    if (pthread_mutex_init(&e->mu, NULL) != 0) {
        free(e);
        return NULL;
    }
    e->base.ops = &mem_ops;
    char *root = dupstr("/");
    if (!root || !dir_new(e, root, NULL)) {
        free(root);
        pthread_mutex_destroy(&e->mu);
        free(e);
        return NULL;
    }
    return &e->base;
}

/* Revert one inode to its durable content, tearing the first unsynced block
 * when torn is set. The caller reserved dcap >= len for torn inodes. */
static void ino_power_loss(minode *i, bool torn, uint64_t *rng)
{
    size_t d = ino_common_prefix(i);
    size_t unsynced = i->len > d ? i->len - d : 0;
    if (torn && unsynced > 0) {
        size_t block_end = (d / MEM_BLOCK + 1) * MEM_BLOCK;
        size_t kmax = min_sz(block_end - d, unsynced);
        size_t k = (size_t)(splitmix64(rng) % ((uint64_t)kmax + 1));
        size_t tear_end = min_sz(block_end, i->len);
        /* cur[0, d) already equals the durable prefix, cur[d, d+k) is the
         * part of the write that made it; garbage follows up to tear_end. */
        for (size_t p = d + k; p < tear_end; p++)
            i->cur[p] = (uint8_t)splitmix64(rng);
        if (i->dlen > tear_end)
            memcpy(i->cur + tear_end, i->dur + tear_end, i->dlen - tear_end);
        size_t nl = i->dlen > tear_end ? i->dlen : tear_end;
        /* What is on the medium now is durable by definition. */
        memcpy(i->dur + d, i->cur + d, nl - d);
        i->len = nl;
        i->dlen = nl;
    } else {
        if (i->dlen > d)
            memcpy(i->cur + d, i->dur + d, i->dlen - d);
        i->len = i->dlen;
    }
    i->dirty_from = SIZE_MAX;
}

int cairn_env_mem_power_loss(cairn_env *env, bool torn, uint64_t seed)
{
    if (!env || env->ops != &mem_ops)
        return CAIRN_EINVAL;
    menv *e = (menv *)env;
    int rc = 0;
    pthread_mutex_lock(&e->mu);
    /* Phase 1: every allocation, so that a failure changes nothing. */
    for (mdir *d = e->dirs; d && rc == 0; d = d->next)
        rc = ents_clone(&d->dur, &d->pending);
    for (minode *i = e->inodes; i && rc == 0; i = i->next)
        if (torn)
            rc = reserve(&i->dur, &i->dcap, i->len);
    if (rc) {
        for (mdir *d = e->dirs; d; d = d->next)
            ents_free_unreffed(&d->pending);
        pthread_mutex_unlock(&e->mu);
        return rc;
    }
    /* Phase 2: commit. Contents first (no inode is freed while walking). */
    uint64_t rng = seed;
    for (minode *i = e->inodes; i; i = i->next)
        ino_power_loss(i, torn, &rng);
    for (mdir *d = e->dirs; d; d = d->next)
        ents_replace(e, &d->cur, &d->pending);
    e->epoch++;
    e->locks = NULL; /* every lock is stale; unlock only frees it */
    pthread_mutex_unlock(&e->mu);
    return 0;
}

uint64_t cairn_env_mem_unsynced_bytes(cairn_env *env)
{
    if (!env || env->ops != &mem_ops)
        return 0;
    menv *e = (menv *)env;
    uint64_t total = 0;
    pthread_mutex_lock(&e->mu);
    /* Per inode: current length minus the common prefix of current and
     * durable content, i.e. the bytes a power loss would lose or could tear.
     * A pure shrink (truncate with no other change) counts as 0. */
    for (minode *i = e->inodes; i; i = i->next) {
        size_t d = ino_common_prefix(i);
        if (i->len > d)
            total += i->len - d;
    }
    pthread_mutex_unlock(&e->mu);
    return total;
}
