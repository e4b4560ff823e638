/*
 * blob_store.c — the engine's blob store (see blob_store.h for what it
 * keeps, the counting rule, why locations need no log, and the locking).
 *
 * Invariants (under mu):
 *   - every index entry with missing == false names a whole record of a
 *     file in the file table (the file stays on disk while the entry points
 *     into it);
 *   - f->live_bytes is the sum of stored_len over the entries located in f
 *     whose refs + pins > 0; f->stored_bytes the sum over every record ever
 *     appended to or found in f (duplicates included): dead bytes are the
 *     difference;
 *   - a file leaves the table only when GC has moved every live record out
 *     of it; it is unlinked once no read holds it (f->readers == 0).
 */
#include "blob/blob_store.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blob/cdc.h"
#include "cairn.h"
#include "util/hist.h"

typedef struct bs_ent {
    uint8_t hash[CAIRN_BLOB_HASH_SIZE];
    cairn_blob_loc loc;
    uint32_t raw_len;
    bool used;
    bool missing; /* referenced, but in no file */
    int64_t refs, pins;
    uint64_t seq; /* append sequence (0: durable since open) */
} bs_ent;

typedef struct bs_file {
    uint64_t number;
    uint64_t stored_bytes, live_bytes, size;
    bool sealed;
    bool doomed; /* out of the table: unlink when readers reach 0 */
    bool gc_failed; /* a rewrite of it failed in this GC run */
    int readers;
    cairn_blob_reader *r;
    struct bs_file *next;
} bs_file;

struct cairn_blob_store {
    cairn_env *env;
    char *dir;
    char *parent_dir;
    bool read_only;
    bool have_dir; /* dir exists (mkdir_mu) */
    pthread_mutex_t mkdir_mu;
    size_t chunk_threshold;
    cairn_cdc cdc;
    cairn_blob_appender *app;
    uint64_t max_file;
    uint64_t damaged_files; /* found damaged at open */

    pthread_mutex_t mu;
    bs_ent *ents;
    size_t cap, n; /* open addressing, linear probing, cap a power of 2 */
    bs_file *files;
    uint64_t append_seq;

    pthread_mutex_t sync_mu;
    atomic_uint_fast64_t synced_seq;

    pthread_mutex_t gc_mu;
    void (*gc_hook)(void *arg, int step);
    void *gc_hook_arg;

    cairn_hist read_ns; /* cairn_blob_store_get calls that succeeded */
    atomic_uint_fast64_t st_dedup, st_appended, st_gc_runs, st_gc_files,
        st_gc_bytes;
};

/* ---------- index ---------- */

static size_t slot_of(const uint8_t *hash, size_t cap)
{
    uint64_t h;
    memcpy(&h, hash, sizeof h);
    return (size_t)h & (cap - 1);
}

static bs_ent *ent_find(cairn_blob_store *s, const uint8_t *hash)
{
    if (!s->cap)
        return NULL;
    for (size_t i = slot_of(hash, s->cap);; i = (i + 1) & (s->cap - 1)) {
        bs_ent *e = &s->ents[i];
        if (!e->used)
            return NULL;
        if (memcmp(e->hash, hash, CAIRN_BLOB_HASH_SIZE) == 0)
            return e;
    }
}

static int ent_grow(cairn_blob_store *s)
{
    size_t nc = s->cap ? s->cap * 2 : 1024;
    bs_ent *ne = calloc(nc, sizeof *ne);
    if (!ne)
        return CAIRN_ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->ents[i].used)
            continue;
        size_t j = slot_of(s->ents[i].hash, nc);
        while (ne[j].used)
            j = (j + 1) & (nc - 1);
        ne[j] = s->ents[i];
    }
    free(s->ents);
    s->ents = ne;
    s->cap = nc;
    return 0;
}

/* A new entry for hash (not present). NULL on out of memory. */
static bs_ent *ent_add(cairn_blob_store *s, const uint8_t *hash)
{
    if ((s->n + 1) * 4 > s->cap * 3 && ent_grow(s) != 0)
        return NULL;
    size_t i = slot_of(hash, s->cap);
    while (s->ents[i].used)
        i = (i + 1) & (s->cap - 1);
    bs_ent *e = &s->ents[i];
    memset(e, 0, sizeof *e);
    memcpy(e->hash, hash, CAIRN_BLOB_HASH_SIZE);
    e->used = true;
    s->n++;
    return e;
}

/* Remove e (backward-shift deletion keeps probe chains whole). */
static void ent_del(cairn_blob_store *s, bs_ent *e)
{
    size_t i = (size_t)(e - s->ents), m = s->cap - 1;
    s->ents[i].used = false;
    s->n--;
    for (size_t j = (i + 1) & m; s->ents[j].used; j = (j + 1) & m) {
        size_t home = slot_of(s->ents[j].hash, s->cap);
        /* j may move to i if its home is not in (i, j] cyclically. */
        bool between = i <= j ? (home > i && home <= j)
                              : (home > i || home <= j);
        if (!between) {
            s->ents[i] = s->ents[j];
            s->ents[j].used = false;
            i = j;
        }
    }
}

static bs_file *file_find(cairn_blob_store *s, uint64_t number)
{
    for (bs_file *f = s->files; f; f = f->next)
        if (f->number == number)
            return f;
    return NULL;
}

static bs_file *file_get(cairn_blob_store *s, uint64_t number)
{
    bs_file *f = file_find(s, number);
    if (f)
        return f;
    f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->number = number;
    f->next = s->files;
    s->files = f;
    return f;
}

/* A record was appended at loc: the (unsealed) file is at least that
 * long. */
static void file_grew(bs_file *f, const cairn_blob_loc *loc)
{
    uint64_t end = loc->offset + CAIRN_BLOB_RECORD_HEADER_SIZE +
                   loc->stored_len;
    if (!f->sealed && end > f->size)
        f->size = end;
}

static bool ent_live(const bs_ent *e)
{
    return e->refs + e->pins > 0;
}

/* Apply a change of e's refs/pins, keeping its file's live bytes. */
static void ent_change(cairn_blob_store *s, bs_ent *e, int64_t drefs,
                       int64_t dpins)
{
    bool was = ent_live(e);
    e->refs += drefs;
    e->pins += dpins;
    bool now = ent_live(e);
    if (was != now && !e->missing) {
        bs_file *f = file_find(s, e->loc.file);
        if (f) {
            if (now)
                f->live_bytes += e->loc.stored_len;
            else
                f->live_bytes -= e->loc.stored_len;
        }
    }
}

/* ---------- open / close ---------- */

typedef struct scan_ctx {
    cairn_blob_store *s;
    bs_file *f;
    int rc;
} scan_ctx;

static int scan_rec(void *arg, const cairn_blob_record *rec)
{
    scan_ctx *c = arg;
    cairn_blob_store *s = c->s;
    c->f->stored_bytes += rec->loc.stored_len;
    if (ent_find(s, rec->hash))
        return 0; /* a second copy (a GC cut short): dead space */
    bs_ent *e = ent_add(s, rec->hash);
    if (!e)
        return CAIRN_ENOMEM;
    e->loc = rec->loc;
    e->raw_len = rec->raw_len;
    return 0;
}

/* The appender sealed a file (under its mutex; mu nests inside it). */
static void store_sealed(void *arg, const cairn_blob_file_stats *st)
{
    cairn_blob_store *s = arg;
    pthread_mutex_lock(&s->mu);
    bs_file *f = file_get(s, st->number);
    if (f) {
        f->sealed = true;
        f->size = st->size;
    }
    pthread_mutex_unlock(&s->mu);
}

static uint64_t store_next_number(void *arg)
{
    (void)arg;
    return 0;
}

static int list_files(cairn_blob_store *s, uint64_t **nums, size_t *n)
{
    char **names = NULL;
    size_t count = 0;
    *nums = NULL;
    *n = 0;
    int rc = cairn_env_list_dir(s->env, s->dir, &names, &count);
    if (rc)
        return rc;
    uint64_t *v = calloc(count ? count : 1, sizeof *v);
    if (!v) {
        cairn_env_free_list(names, count);
        return CAIRN_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t num;
        if (cairn_blob_parse_name(names[i], &num))
            v[k++] = num;
    }
    cairn_env_free_list(names, count);
    /* ascending */
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            uint64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *nums = v;
    *n = k;
    return 0;
}

int cairn_blob_store_open(const cairn_blob_store_options *o,
                          cairn_blob_store **out, char *errmsg, size_t errlen)
{
    *out = NULL;
    if (errmsg && errlen)
        errmsg[0] = '\0';
    cairn_blob_store *s = calloc(1, sizeof *s);
    if (!s)
        return CAIRN_ENOMEM;
    s->env = o->env ? o->env : cairn_env_posix();
    s->dir = strdup(o->dir);
    s->parent_dir = o->parent_dir ? strdup(o->parent_dir) : NULL;
    s->read_only = o->read_only;
    pthread_mutex_init(&s->mkdir_mu, NULL);
    s->chunk_threshold = o->chunk_threshold;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->sync_mu, NULL);
    pthread_mutex_init(&s->gc_mu, NULL);
    int rc = s->dir ? cairn_cdc_init(&s->cdc, NULL) : CAIRN_ENOMEM;
    uint64_t *nums = NULL;
    size_t nn = 0;
    if (rc == 0) {
        rc = list_files(s, &nums, &nn);
        s->have_dir = rc == 0;
        if (rc == CAIRN_ENOTFOUND)
            rc = 0; /* no blob directory (yet): no blobs */
    }
    char path[4096];
    for (size_t i = 0; rc == 0 && i < nn; i++) {
        uint64_t num = nums[i];
        if (num > s->max_file)
            s->max_file = num;
        rc = cairn_blob_file_name(path, sizeof path, s->dir, num);
        if (rc)
            break;
        cairn_blob_scan_info info;
        memset(&info, 0, sizeof info);
        /* Any file may be unsealed after a crash (the newest one being
         * written; a GC target's copy); recovery seals it. */
        rc = cairn_blob_file_recover(s->env, path, num, s->read_only, &info);
        bool damaged = rc == CAIRN_ECORRUPT;
        if (damaged) {
            /* Damage inside the file: its other records still read (a
             * salvage scan below); the damaged ones are missing, and a
             * read of one says so. Never sealed, so GC leaves it be. */
            s->damaged_files++;
            rc = 0;
        }
        if (rc == 0 && !damaged && info.header_torn) {
            /* Created, then cut by a crash: it holds nothing. */
            if (!s->read_only)
                cairn_env_unlink(s->env, path);
            continue;
        }
        bs_file *f = rc == 0 ? file_get(s, num) : NULL;
        if (rc == 0 && !f)
            rc = CAIRN_ENOMEM;
        if (rc == 0) {
            scan_ctx c = {s, f, 0};
            cairn_blob_scan_options so = {.salvage = true};
            memset(&info, 0, sizeof info);
            rc = cairn_blob_scan(s->env, path, num, &so, scan_rec, &c, &info);
            f->sealed = !damaged && (info.sealed || !s->read_only);
            f->size = info.size;
        }
        if (rc && errmsg && errlen)
            snprintf(errmsg, errlen, "%s: %s (offset %" PRIu64 ")", path,
                     cairn_strerror(rc), info.bad_offset);
    }
    free(nums);
    if (rc == 0 && !s->read_only) {
        cairn_blob_appender_options ao;
        cairn_blob_appender_options_init(&ao);
        ao.env = s->env;
        ao.dir = s->dir;
        if (o->file_size)
            ao.file_size = o->file_size;
        if (o->zstd_level)
            ao.zstd_level = o->zstd_level;
        ao.next_number = o->next_number ? o->next_number : store_next_number;
        ao.next_number_arg = o->next_number_arg;
        ao.sealed = store_sealed;
        ao.sealed_arg = s;
        rc = cairn_blob_appender_open(&ao, &s->app);
    }
    if (rc) {
        cairn_blob_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

int cairn_blob_store_close(cairn_blob_store *s)
{
    if (!s)
        return 0;
    int rc = cairn_blob_appender_close(s->app);
    for (bs_file *f = s->files, *nx; f; f = nx) {
        nx = f->next;
        cairn_blob_reader_close(f->r);
        free(f);
    }
    free(s->ents);
    free(s->dir);
    free(s->parent_dir);
    pthread_mutex_destroy(&s->mkdir_mu);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->sync_mu);
    pthread_mutex_destroy(&s->gc_mu);
    free(s);
    return rc;
}

uint64_t cairn_blob_store_max_file(const cairn_blob_store *s)
{
    return s->max_file;
}

/* ---------- writes ---------- */

/* The directory exists, durably, before the first file goes into it. */
static int ensure_dir(cairn_blob_store *s)
{
    pthread_mutex_lock(&s->mkdir_mu);
    int rc = 0;
    if (!s->have_dir) {
        rc = cairn_env_mkdir(s->env, s->dir);
        if (rc == CAIRN_EEXIST)
            rc = 0;
        if (rc == 0 && s->parent_dir)
            rc = cairn_env_sync_dir(s->env, s->parent_dir);
        if (rc == 0)
            s->have_dir = true;
    }
    pthread_mutex_unlock(&s->mkdir_mu);
    return rc;
}

/* Store one blob (or find it) and pin it; chunk gets hash, raw_len and
 * location. *seq is raised to the sequence that makes it durable. */
static int put_one(cairn_blob_store *s, const uint8_t *data, size_t len,
                   cairn_blob_chunk *chunk, uint64_t *seq)
{
    int rc = cairn_blob_hash(data, len, chunk->hash);
    if (rc)
        return rc;
    chunk->raw_len = (uint32_t)len;
    pthread_mutex_lock(&s->mu);
    bs_ent *e = ent_find(s, chunk->hash);
    if (e && !e->missing) {
        ent_change(s, e, 0, 1);
        chunk->loc = e->loc;
        if (e->seq > *seq)
            *seq = e->seq;
        pthread_mutex_unlock(&s->mu);
        atomic_fetch_add(&s->st_dedup, 1);
        return 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (!s->app)
        return CAIRN_EREADONLY;
    rc = ensure_dir(s);
    if (rc)
        return rc;
    cairn_blob_loc loc;
    rc = cairn_blob_append(s->app, data, len, chunk->hash, &loc);
    if (rc)
        return rc;
    atomic_fetch_add(&s->st_appended, 1);
    pthread_mutex_lock(&s->mu);
    bs_file *f = file_get(s, loc.file);
    if (!f) {
        pthread_mutex_unlock(&s->mu);
        return CAIRN_ENOMEM; /* the record is dead space */
    }
    f->stored_bytes += loc.stored_len;
    file_grew(f, &loc);
    e = ent_find(s, chunk->hash);
    uint64_t myseq = ++s->append_seq;
    if (e && !e->missing) {
        /* Another writer stored it meanwhile: use theirs; ours is dead. */
        ent_change(s, e, 0, 1);
        chunk->loc = e->loc;
        if (e->seq > *seq)
            *seq = e->seq;
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    if (!e) {
        e = ent_add(s, chunk->hash);
        if (!e) {
            pthread_mutex_unlock(&s->mu);
            return CAIRN_ENOMEM;
        }
    } else if (ent_live(e)) {
        /* A missing blob that is referenced comes back: it is live. */
        e->missing = false;
        e->loc = loc;
        f->live_bytes += loc.stored_len;
        e->raw_len = (uint32_t)len;
        e->seq = myseq;
        ent_change(s, e, 0, 1);
        chunk->loc = loc;
        *seq = *seq > myseq ? *seq : myseq;
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    e->missing = false;
    e->loc = loc;
    e->raw_len = (uint32_t)len;
    e->seq = myseq;
    ent_change(s, e, 0, 1);
    chunk->loc = loc;
    if (myseq > *seq)
        *seq = myseq;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void unpin_chunks(cairn_blob_store *s, const cairn_blob_chunk *c,
                         size_t n)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++) {
        bs_ent *e = ent_find(s, c[i].hash);
        if (e)
            ent_change(s, e, 0, -1);
    }
    pthread_mutex_unlock(&s->mu);
}

int cairn_blob_store_put(cairn_blob_store *s, const void *data, size_t len,
                         uint8_t **ref, size_t *ref_len, uint64_t *seq)
{
    *ref = NULL;
    *ref_len = 0;
    *seq = 0;
    if (len > CAIRN_BLOB_REF_MAX_LEN && (!s->chunk_threshold ||
                                         len < s->chunk_threshold))
        return CAIRN_ETOOLARGE;
    const uint8_t *p = data;
    cairn_blob_ref r;
    memset(&r, 0, sizeof r);
    r.raw_len = len;
    size_t cap = 1;
    bool chunked = s->chunk_threshold && len >= s->chunk_threshold;
    if (chunked)
        cap = len / s->cdc.p.min_size + 2;
    r.chunks = calloc(cap, sizeof *r.chunks);
    if (!r.chunks)
        return CAIRN_ENOMEM;
    int rc = 0;
    if (!chunked) {
        r.type = CAIRN_BLOB_REF_SINGLE;
        r.nchunks = 1;
        rc = put_one(s, p, len, &r.chunks[0], seq);
        if (rc)
            r.nchunks = 0;
    } else {
        r.type = CAIRN_BLOB_REF_CHUNKED;
        r.chunker = CAIRN_CDC_CHUNKER_GEAR;
        r.params = s->cdc.p;
        size_t off = 0;
        while (rc == 0 && off < len) {
            size_t cl = cairn_cdc_next(&s->cdc, p + off, len - off);
            rc = put_one(s, p + off, cl, &r.chunks[r.nchunks], seq);
            if (rc == 0)
                r.nchunks++;
            off += cl;
        }
    }
    size_t sz = rc == 0 ? cairn_blob_ref_size(&r) : 0;
    if (rc == 0 && sz == 0)
        rc = CAIRN_EINVAL;
    uint8_t *buf = rc == 0 ? malloc(sz) : NULL;
    if (rc == 0 && !buf)
        rc = CAIRN_ENOMEM;
    if (rc == 0)
        rc = cairn_blob_ref_encode(&r, buf, sz, ref_len);
    if (rc) {
        free(buf);
        unpin_chunks(s, r.chunks, r.nchunks);
    } else {
        *ref = buf;
    }
    free(r.chunks);
    return rc;
}

int cairn_blob_store_sync(cairn_blob_store *s, uint64_t seq)
{
    if (seq == 0 || atomic_load(&s->synced_seq) >= seq)
        return 0;
    pthread_mutex_lock(&s->sync_mu);
    int rc = 0;
    if (atomic_load(&s->synced_seq) < seq) {
        pthread_mutex_lock(&s->mu);
        uint64_t upto = s->append_seq;
        pthread_mutex_unlock(&s->mu);
        /* Every sequence <= upto was appended before it was handed out. */
        rc = s->app ? cairn_blob_appender_sync(s->app) : CAIRN_EREADONLY;
        if (rc == 0)
            atomic_store(&s->synced_seq, upto);
    }
    pthread_mutex_unlock(&s->sync_mu);
    return rc;
}

/* ---------- counts ---------- */

static void ref_locked(cairn_blob_store *s, const uint8_t *hash,
                       const cairn_blob_loc *hint, uint32_t raw_len,
                       int64_t drefs, int64_t dpins)
{
    bs_ent *e = ent_find(s, hash);
    if (!e) {
        if (drefs <= 0 && dpins <= 0)
            return; /* nothing to take from */
        e = ent_add(s, hash);
        if (!e)
            return; /* out of memory: the blob is reported missing later */
        e->missing = true;
        if (hint)
            e->loc = *hint;
        e->raw_len = raw_len;
    }
    ent_change(s, e, drefs, dpins);
    if (e->missing && !ent_live(e))
        ent_del(s, e);
}

int cairn_blob_store_ref_record(cairn_blob_store *s, const uint8_t *ref,
                                size_t len, int delta, bool pins)
{
    cairn_blob_ref r;
    int rc = cairn_blob_ref_decode(ref, len, &r);
    if (rc == 0) {
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < r.nchunks; i++)
            ref_locked(s, r.chunks[i].hash, &r.chunks[i].loc,
                       r.chunks[i].raw_len, pins ? 0 : delta, pins ? delta : 0);
        pthread_mutex_unlock(&s->mu);
    }
    cairn_blob_ref_clear(&r);
    return rc;
}

void cairn_blob_store_ref(cairn_blob_store *s, const uint8_t *hash,
                          const cairn_blob_loc *hint, int64_t delta)
{
    pthread_mutex_lock(&s->mu);
    ref_locked(s, hash, hint, 0, delta, 0);
    pthread_mutex_unlock(&s->mu);
}

bool cairn_blob_store_count(cairn_blob_store *s, const uint8_t *hash,
                            int64_t *refs, int64_t *pins, bool *missing)
{
    pthread_mutex_lock(&s->mu);
    bs_ent *e = ent_find(s, hash);
    if (e) {
        *refs = e->refs;
        *pins = e->pins;
        *missing = e->missing;
    }
    pthread_mutex_unlock(&s->mu);
    return e != NULL;
}

void cairn_blob_store_each(cairn_blob_store *s, cairn_blob_store_each_fn fn,
                           void *arg)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->cap; i++) {
        const bs_ent *e = &s->ents[i];
        if (e->used)
            fn(arg, e->hash, e->refs, e->pins, e->missing, e->raw_len,
               e->loc.stored_len);
    }
    pthread_mutex_unlock(&s->mu);
}

/* ---------- reads ---------- */

/* Drop a read's hold on f (mu held); the last one unlinks a doomed file. */
static void file_release_locked(cairn_blob_store *s, bs_file *f)
{
    if (--f->readers > 0 || !f->doomed)
        return;
    cairn_blob_reader_close(f->r);
    char path[4096];
    if (cairn_blob_file_name(path, sizeof path, s->dir, f->number) == 0)
        cairn_env_unlink(s->env, path);
    free(f);
}

/* Read one chunk into dst (raw_len bytes) or, with dst NULL, into *out. */
static int read_chunk(cairn_blob_store *s, const cairn_blob_chunk *c,
                      void **out, size_t *out_len, char *errmsg,
                      size_t errlen)
{
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", c->hash[i]);
    pthread_mutex_lock(&s->mu);
    bs_ent *e = ent_find(s, c->hash);
    if (!e || e->missing) {
        pthread_mutex_unlock(&s->mu);
        if (errmsg && errlen)
            snprintf(errmsg, errlen,
                     "blob %s... (%" PRIu32 " bytes) is missing from the "
                     "blob store",
                     hex, c->raw_len);
        return CAIRN_ECORRUPT;
    }
    cairn_blob_loc loc = e->loc;
    bs_file *f = file_find(s, loc.file);
    if (!f) {
        pthread_mutex_unlock(&s->mu);
        if (errmsg && errlen)
            snprintf(errmsg, errlen, "blob %s...: file %06" PRIu64
                     ".blob is gone", hex, loc.file);
        return CAIRN_ECORRUPT;
    }
    f->readers++;
    cairn_blob_reader *r = f->r;
    pthread_mutex_unlock(&s->mu);
    int rc = 0;
    char path[4096];
    if (!r) {
        rc = cairn_blob_file_name(path, sizeof path, s->dir, loc.file);
        if (rc == 0)
            rc = cairn_blob_reader_open(s->env, path, loc.file, &r);
        if (rc == 0) {
            pthread_mutex_lock(&s->mu);
            if (f->r) { /* opened by another read meanwhile */
                cairn_blob_reader_close(r);
                r = f->r;
            } else {
                f->r = r;
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
    if (rc == 0)
        rc = cairn_blob_reader_read(r, loc.offset, loc.stored_len, c->hash,
                                    out, out_len);
    pthread_mutex_lock(&s->mu);
    file_release_locked(s, f);
    pthread_mutex_unlock(&s->mu);
    if (rc == 0 && *out_len != c->raw_len) {
        free(*out);
        *out = NULL;
        rc = CAIRN_ECORRUPT;
    }
    if (rc && errmsg && errlen)
        snprintf(errmsg, errlen,
                 "blob %s... in %06" PRIu64 ".blob at offset %" PRIu64
                 ": %s",
                 hex, loc.file, loc.offset,
                 rc == CAIRN_ENOTFOUND ? "file missing" : cairn_strerror(rc));
    if (rc == CAIRN_ENOTFOUND)
        rc = CAIRN_ECORRUPT;
    return rc;
}

int cairn_blob_store_verify(cairn_blob_store *s, const uint8_t *hash,
                            char *errmsg, size_t errlen)
{
    cairn_blob_chunk c;
    memset(&c, 0, sizeof c);
    memcpy(c.hash, hash, CAIRN_BLOB_HASH_SIZE);
    pthread_mutex_lock(&s->mu);
    bs_ent *e = ent_find(s, hash);
    if (e)
        c.raw_len = e->raw_len;
    pthread_mutex_unlock(&s->mu);
    void *p = NULL;
    size_t n = 0;
    int rc = read_chunk(s, &c, &p, &n, errmsg, errlen);
    free(p);
    return rc;
}

static int store_get(cairn_blob_store *s, const uint8_t *ref, size_t len,
                     void **out, size_t *out_len, char *errmsg, size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    cairn_blob_ref r;
    int rc = cairn_blob_ref_decode(ref, len, &r);
    if (rc) {
        cairn_blob_ref_clear(&r);
        if (errmsg && errlen)
            snprintf(errmsg, errlen, "malformed blob reference record");
        return rc == CAIRN_ENOMEM ? rc : CAIRN_ECORRUPT;
    }
    if (r.nchunks == 1) {
        rc = read_chunk(s, &r.chunks[0], out, out_len, errmsg, errlen);
        cairn_blob_ref_clear(&r);
        return rc;
    }
    if (r.raw_len > SIZE_MAX - 1) {
        cairn_blob_ref_clear(&r);
        return CAIRN_ECORRUPT;
    }
    uint8_t *buf = malloc(r.raw_len ? (size_t)r.raw_len : 1);
    if (!buf) {
        cairn_blob_ref_clear(&r);
        return CAIRN_ENOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; rc == 0 && i < r.nchunks; i++) {
        void *p = NULL;
        size_t pl = 0;
        rc = read_chunk(s, &r.chunks[i], &p, &pl, errmsg, errlen);
        if (rc == 0) {
            memcpy(buf + off, p, pl);
            off += pl;
        }
        free(p);
    }
    cairn_blob_ref_clear(&r);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *out_len = off;
    return 0;
}

int cairn_blob_store_get(cairn_blob_store *s, const uint8_t *ref, size_t len,
                         void **out, size_t *out_len, char *errmsg,
                         size_t errlen)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = store_get(s, ref, len, out, out_len, errmsg, errlen);
    if (rc == 0) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        int64_t ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 +
                     (t1.tv_nsec - t0.tv_nsec);
        cairn_hist_add(&s->read_ns, ns > 0 ? (uint64_t)ns : 0);
    }
    return rc;
}

/* ---------- garbage collection ---------- */

typedef struct gc_ctx {
    cairn_blob_store *s;
    uint64_t number;
} gc_ctx;

static bool gc_live(void *arg, const uint8_t *hash, const cairn_blob_loc *loc)
{
    gc_ctx *g = arg;
    cairn_blob_store *s = g->s;
    pthread_mutex_lock(&s->mu);
    bs_ent *e = ent_find(s, hash);
    bool here = e && !e->missing && e->loc.file == loc->file &&
                e->loc.offset == loc->offset;
    bool live = here && ent_live(e);
    if (here && !live)
        ent_del(s, e); /* dead: no put may find it from now on */
    pthread_mutex_unlock(&s->mu);
    return live;
}

static int gc_moved(void *arg, const uint8_t *hash, const cairn_blob_loc *from,
                    const cairn_blob_loc *to)
{
    gc_ctx *g = arg;
    cairn_blob_store *s = g->s;
    pthread_mutex_lock(&s->mu);
    bs_file *nf = file_get(s, to->file);
    if (nf) {
        nf->stored_bytes += to->stored_len;
        file_grew(nf, to);
    }
    bs_ent *e = ent_find(s, hash);
    if (e && !e->missing && e->loc.file == from->file &&
        e->loc.offset == from->offset) {
        bs_file *of = file_find(s, from->file);
        if (ent_live(e)) {
            if (of)
                of->live_bytes -= e->loc.stored_len;
            if (nf)
                nf->live_bytes += to->stored_len;
        }
        e->loc = *to;
        e->seq = 0; /* the rewrite synced it */
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static double dead_frac(const bs_file *f)
{
    if (f->stored_bytes == 0)
        return 0;
    return (double)(f->stored_bytes - f->live_bytes) /
           (double)f->stored_bytes;
}

bool cairn_blob_store_gc_due(cairn_blob_store *s, double dead_fraction)
{
    if (!s->app)
        return false;
    uint64_t cur = cairn_blob_appender_current(s->app);
    bool due = false;
    pthread_mutex_lock(&s->mu);
    for (bs_file *f = s->files; f && !due; f = f->next)
        due = f->sealed && f->number != cur &&
              f->stored_bytes > f->live_bytes &&
              dead_frac(f) >= dead_fraction;
    pthread_mutex_unlock(&s->mu);
    return due;
}

int cairn_blob_store_gc(cairn_blob_store *s, double dead_fraction)
{
    if (!s->app)
        return CAIRN_EREADONLY;
    pthread_mutex_lock(&s->gc_mu);
    atomic_fetch_add(&s->st_gc_runs, 1);
    int rc = 0;
    for (;;) {
        uint64_t cur = cairn_blob_appender_current(s->app);
        uint64_t pick = 0;
        pthread_mutex_lock(&s->mu);
        for (bs_file *f = s->files; f; f = f->next)
            if (f->sealed && f->number != cur && !f->gc_failed &&
                f->stored_bytes > f->live_bytes &&
                dead_frac(f) >= dead_fraction &&
                (pick == 0 || f->number < pick))
                pick = f->number;
        pthread_mutex_unlock(&s->mu);
        if (pick == 0)
            break;
        if (s->gc_hook)
            s->gc_hook(s->gc_hook_arg, 0);
        char path[4096];
        rc = cairn_blob_file_name(path, sizeof path, s->dir, pick);
        gc_ctx g = {s, pick};
        cairn_blob_gc_stats st;
        memset(&st, 0, sizeof st);
        if (rc == 0)
            rc = cairn_blob_gc_rewrite(s->app, path, pick, gc_live, gc_moved,
                                       &g, &st);
        if (rc == CAIRN_EINVAL || rc == CAIRN_EBUSY) {
            /* The appender's current file, or not sealed: not this time. */
            pthread_mutex_lock(&s->mu);
            bs_file *bf = file_find(s, pick);
            if (bf)
                bf->gc_failed = true;
            pthread_mutex_unlock(&s->mu);
            rc = 0;
            continue;
        }
        if (rc)
            break;
        if (s->gc_hook)
            s->gc_hook(s->gc_hook_arg, 1);
        /* Every live record of pick lives elsewhere, durably (the rewrite
         * synced the copies and their file's creation was synced in the
         * directory): the file can go once nobody reads it. */
        uint64_t freed = 0;
        pthread_mutex_lock(&s->mu);
        bs_file **pp = &s->files;
        while (*pp && (*pp)->number != pick)
            pp = &(*pp)->next;
        bs_file *f = *pp;
        if (f) {
            *pp = f->next;
            freed = f->size;
            f->doomed = true;
            f->readers++;
            file_release_locked(s, f); /* unlinks now if nobody reads */
        }
        pthread_mutex_unlock(&s->mu);
        rc = cairn_env_sync_dir(s->env, s->dir);
        atomic_fetch_add(&s->st_gc_files, 1);
        atomic_fetch_add(&s->st_gc_bytes,
                         freed > st.bytes_kept ? freed - st.bytes_kept : 0);
        if (s->gc_hook)
            s->gc_hook(s->gc_hook_arg, 2);
        if (rc)
            break;
    }
    pthread_mutex_lock(&s->mu);
    for (bs_file *f = s->files; f; f = f->next)
        f->gc_failed = false;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_unlock(&s->gc_mu);
    return rc;
}

void cairn_blob_store_set_gc_hook(cairn_blob_store *s,
                                  void (*fn)(void *arg, int step), void *arg)
{
    s->gc_hook = fn;
    s->gc_hook_arg = arg;
}

void cairn_blob_store_get_stats(cairn_blob_store *s,
                                cairn_blob_store_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->cap; i++) {
        const bs_ent *e = &s->ents[i];
        if (!e->used)
            continue;
        if (e->missing) {
            out->missing++;
            continue;
        }
        out->distinct++;
        if (ent_live(e))
            out->live++;
        if (e->refs > 0)
            out->logical_bytes += (uint64_t)e->refs * e->raw_len;
    }
    out->reads = cairn_hist_count(&s->read_ns);
    out->read_p50_ns = cairn_hist_quantile(&s->read_ns, 0.5);
    out->read_p99_ns = cairn_hist_quantile(&s->read_ns, 0.99);
    for (bs_file *f = s->files; f; f = f->next) {
        out->files++;
        out->stored_bytes += f->stored_bytes;
        out->dead_bytes += f->stored_bytes - f->live_bytes;
        out->file_bytes += f->size;
    }
    pthread_mutex_unlock(&s->mu);
    out->dedup_hits = atomic_load(&s->st_dedup);
    out->appended = atomic_load(&s->st_appended);
    out->gc_runs = atomic_load(&s->st_gc_runs);
    out->gc_files = atomic_load(&s->st_gc_files);
    out->gc_bytes_reclaimed = atomic_load(&s->st_gc_bytes);
}
