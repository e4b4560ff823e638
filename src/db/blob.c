/*
 * blob.c — the engine's side of the blob store (blob/blob_store.h): values
 * of at least blob_threshold bytes are stored out of line at commit, the
 * tree holds their reference records (entries of kind CAIRN_MT_BLOB), and
 * every read resolves them back into the value.
 *
 * Reference counts (exact, and rebuilt at open from what the tree holds;
 * cairn_blob_check recounts them from every live memtable entry and every
 * sorted file's entries):
 *   - a memtable counts +1 per chunk of every reference record inserted
 *     into it (commit apply and replay) and -1 when it is freed (its last
 *     reader and its table set let it go, after its flush installed the
 *     file that holds the same records);
 *   - a sorted file counts from when its reader is opened for a version
 *     (at open, or before its flush / compaction edit is logged) until it
 *     is deleted as obsolete (no version and no view holds it), from its
 *     blob references block (docs/format/sst.md);
 *   - a commit pins each blob of its values from the put until the
 *     transaction is released (after the apply counted them).
 * So a blob whose count and pins are 0 is unreachable by any reader,
 * snapshot, iterator or history read; GC may drop it.
 *
 * Durability: a commit syncs the blob appender up to its blobs' sequence
 * before its WAL record is appended (sync modes always and interval), so a
 * durable reference never names a blob that is not durable. Sync mode none
 * syncs nothing: after a power loss (not a process crash) a reference may
 * name a lost blob, which reads as CAIRN_ECORRUPT.
 *
 * Locking: the store's own; nothing here takes a db lock, so the hooks may
 * run wherever the tree and the table sets release things.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"
#include "lsm/iter.h"

#define BLOB_DIR "blob"

static uint64_t blob_number(void *arg)
{
    cairn_db *db = arg;
    return db->tree ? cairn_tree_new_file_number(db->tree) : 0;
}

int cairn_db_blob_open(cairn_db *db)
{
    db->blob_err[0] = '\0';
    size_t n = strlen(db->path) + sizeof BLOB_DIR + 1;
    char *dir = malloc(n);
    if (!dir)
        return CAIRN_ENOMEM;
    snprintf(dir, n, "%s/%s", db->path, BLOB_DIR);
    cairn_blob_store_options bo;
    memset(&bo, 0, sizeof bo);
    bo.env = db->env;
    bo.dir = dir;
    bo.parent_dir = db->path;
    bo.read_only = db->read_only;
    bo.file_size = db->opts.blob_file_size;
    bo.chunk_threshold = db->opts.blob_chunk_threshold
                             ? db->opts.blob_chunk_threshold
                             : (size_t)256 << 10;
    if (bo.chunk_threshold == SIZE_MAX)
        bo.chunk_threshold = 0;
    bo.next_number = blob_number;
    bo.next_number_arg = db;
    char msg[256];
    int rc = cairn_blob_store_open(&bo, &db->blobs, msg, sizeof msg);
    if (rc)
        snprintf(db->blob_err, sizeof db->blob_err, "%s", msg);
    free(dir);
    return rc;
}

void cairn_db_blob_after_tree(cairn_db *db)
{
    uint64_t mx = db->blobs ? cairn_blob_store_max_file(db->blobs) : 0;
    if (db->tree && mx)
        cairn_tree_bump_file_number(db->tree, mx + 1);
}

void cairn_db_blob_close(cairn_db *db)
{
    cairn_blob_store_close(db->blobs);
    db->blobs = NULL;
}

bool cairn_db_blob_wanted(const cairn_db *db, size_t vlen)
{
    return db->blobs && db->opts.blob_threshold &&
           vlen >= db->opts.blob_threshold;
}

/* ---------- counting ---------- */

typedef struct file_ref {
    uint8_t hash[CAIRN_BLOB_HASH_SIZE];
    cairn_blob_loc loc;
    uint64_t count;
} file_ref;

typedef struct file_refs {
    cairn_db *db;
    size_t n, cap;
    file_ref *v;
} file_refs;

static int collect_ref(void *arg, const uint8_t hash[32], uint64_t count,
                       uint64_t file, uint64_t offset, uint32_t stored_len)
{
    file_refs *fr = arg;
    if (fr->n == fr->cap) {
        size_t nc = fr->cap ? fr->cap * 2 : 16;
        file_ref *p = realloc(fr->v, nc * sizeof *p);
        if (!p)
            return CAIRN_ENOMEM;
        fr->v = p;
        fr->cap = nc;
    }
    file_ref *r = &fr->v[fr->n++];
    memcpy(r->hash, hash, CAIRN_BLOB_HASH_SIZE);
    r->loc.file = file;
    r->loc.offset = offset;
    r->loc.stored_len = stored_len;
    r->count = count;
    return 0;
}

int cairn_db_blob_file_open(void *arg, const cairn_sst_reader *r,
                            void **state, char *errmsg)
{
    cairn_db *db = arg;
    *state = NULL;
    file_refs *fr = calloc(1, sizeof *fr);
    if (!fr)
        return CAIRN_ENOMEM;
    fr->db = db;
    int rc = cairn_sst_blob_refs(r, collect_ref, fr, errmsg);
    if (rc) {
        free(fr->v);
        free(fr);
        return rc;
    }
    if (fr->n == 0) {
        free(fr);
        return 0;
    }
    for (size_t i = 0; i < fr->n; i++)
        cairn_blob_store_ref(db->blobs, fr->v[i].hash, &fr->v[i].loc,
                             (int64_t)fr->v[i].count);
    *state = fr;
    return 0;
}

void cairn_db_blob_file_close(void *arg, void *state)
{
    cairn_db *db = arg;
    file_refs *fr = state;
    if (!fr)
        return;
    for (size_t i = 0; i < fr->n; i++)
        cairn_blob_store_ref(db->blobs, fr->v[i].hash, &fr->v[i].loc,
                             -(int64_t)fr->v[i].count);
    free(fr->v);
    free(fr);
}

/* A memtable is freed: its references go. */
static void memtable_released(void *arg, cairn_memtable *mt)
{
    cairn_db *db = arg;
    if (!db->blobs || cairn_memtable_blob_count(mt) == 0)
        return; /* the common case: nothing to walk */
    cairn_mt_iter it;
    cairn_mt_iter_init(&it, mt);
    for (cairn_mt_iter_seek_first(&it); cairn_mt_iter_valid(&it);
         cairn_mt_iter_next(&it)) {
        cairn_mt_entry e;
        cairn_mt_iter_entry(&it, &e);
        if (e.kind == CAIRN_MT_BLOB)
            cairn_blob_store_ref_record(db->blobs, e.value, e.vlen, -1, false);
    }
}

cairn_memtable *cairn_db_memtable_new(cairn_db *db)
{
    cairn_memtable *mt = cairn_memtable_new_sized(db->opts.memtable_size);
    if (mt)
        cairn_memtable_set_release_hook(mt, memtable_released, db);
    return mt;
}

void cairn_db_blob_inserted(cairn_db *db, const uint8_t *ref, size_t len)
{
    if (db->blobs)
        cairn_blob_store_ref_record(db->blobs, ref, len, +1, false);
}

/* ---------- reads ---------- */

int cairn_db_blob_resolve(cairn_db *db, const uint8_t *ref, size_t len,
                          void **val, size_t *vlen)
{
    char msg[256] = "";
    int rc;
    if (!db->blobs) {
        rc = CAIRN_ECORRUPT;
        snprintf(msg, sizeof msg, "blob reference without a blob store");
    } else {
        rc = cairn_blob_store_get(db->blobs, ref, len, val, vlen, msg,
                                  sizeof msg);
    }
    if (rc == CAIRN_ECORRUPT) {
        pthread_mutex_lock(&db->blob_err_mu);
        snprintf(db->blob_err, sizeof db->blob_err, "%s", msg);
        pthread_mutex_unlock(&db->blob_err_mu);
    }
    return rc;
}

void cairn_blob_last_error(cairn_db *db, char *buf, size_t cap)
{
    if (!buf || !cap)
        return;
    buf[0] = '\0';
    if (!db)
        return;
    pthread_mutex_lock(&db->blob_err_mu);
    snprintf(buf, cap, "%s", db->blob_err);
    pthread_mutex_unlock(&db->blob_err_mu);
}

/* ---------- garbage collection ---------- */

static double gc_fraction(const cairn_db *db, double f)
{
    if (f < 0)
        f = db->opts.blob_gc_dead_fraction;
    if (f <= 0 || f > 1)
        f = 0.5;
    return f;
}

int cairn_blob_gc(cairn_db *db, double dead_fraction)
{
    if (!db)
        return CAIRN_EINVAL;
    if (db->read_only)
        return CAIRN_EREADONLY;
    if (!db->blobs)
        return 0;
    /* Files of an archive out of reach have not been counted: a blob only
     * they refer to looks dead. */
    if (!cairn_tree_refs_known(db->tree))
        return CAIRN_EUNAVAILABLE;
    /* An explicit 0 means any dead byte. */
    double f = dead_fraction == 0 ? 1e-12 : gc_fraction(db, dead_fraction);
    return cairn_blob_store_gc(db->blobs, f);
}

void cairn_db_blob_background(cairn_db *db)
{
    if (!db->blobs || db->read_only)
        return;
    if (!cairn_tree_refs_known(db->tree)) /* see cairn_blob_gc */
        return;
    double f = gc_fraction(db, -1);
    if (cairn_blob_store_gc_due(db->blobs, f))
        cairn_blob_store_gc(db->blobs, f); /* a failure is retried later */
}

/* ---------- check ---------- */

typedef struct rc_ent {
    uint8_t hash[CAIRN_BLOB_HASH_SIZE];
    uint64_t count;
} rc_ent;

typedef struct recount {
    rc_ent *v;
    size_t n, cap;
    int rc;
    cairn_blob_check_report *out;
} recount;

static void recount_record(recount *c, const uint8_t *ref, size_t len)
{
    cairn_blob_ref r;
    int rc = cairn_blob_ref_decode(ref, len, &r);
    if (rc == 0 && c->n + r.nchunks > c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 256;
        while (nc < c->n + r.nchunks)
            nc *= 2;
        rc_ent *p = realloc(c->v, nc * sizeof *p);
        if (!p)
            rc = CAIRN_ENOMEM;
        else {
            c->v = p;
            c->cap = nc;
        }
    }
    for (size_t i = 0; rc == 0 && i < r.nchunks; i++) {
        memcpy(c->v[c->n].hash, r.chunks[i].hash, CAIRN_BLOB_HASH_SIZE);
        c->v[c->n++].count = 1;
    }
    cairn_blob_ref_clear(&r);
    if (rc && !c->rc)
        c->rc = rc;
}

static int recount_file(void *arg, const cairn_sst_reader *r)
{
    recount *c = arg;
    cairn_sst_iter *it = NULL;
    int rc = cairn_sst_iter_new(r, &it);
    if (rc)
        return rc;
    cairn_sst_iter_set_fill_cache(it, false);
    for (cairn_sst_iter_seek_first(it); cairn_sst_iter_valid(it);
         cairn_sst_iter_next(it)) {
        cairn_sst_entry e;
        cairn_sst_iter_entry(it, &e);
        if (e.kind == CAIRN_SST_BLOB)
            recount_record(c, e.value, e.vlen);
    }
    rc = cairn_sst_iter_status(it);
    if (rc)
        snprintf(c->out->first_error, sizeof c->out->first_error, "%s",
                 cairn_sst_iter_errmsg(it));
    cairn_sst_iter_free(it);
    return rc ? rc : c->rc;
}

static int rc_cmp(const void *a, const void *b)
{
    return memcmp(((const rc_ent *)a)->hash, ((const rc_ent *)b)->hash,
                  CAIRN_BLOB_HASH_SIZE);
}

typedef struct check_ctx {
    cairn_db *db;
    const rc_ent *v;
    size_t n;
    cairn_blob_check_report *out;
} check_ctx;

static void note(cairn_blob_check_report *out, const char *fmt,
                 const uint8_t *hash, int64_t a, int64_t b)
{
    if (out->first_error[0])
        return;
    char hex[17];
    for (int i = 0; i < 8; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    snprintf(out->first_error, sizeof out->first_error, fmt, hex, a, b);
}

/* Store entries the recount does not know: counted but not referenced, or
 * garbage. */
static void check_each(void *arg, const uint8_t *hash, int64_t refs,
                       int64_t pins, bool missing, uint32_t raw_len,
                       uint32_t stored_len)
{
    (void)pins;
    (void)raw_len;
    check_ctx *c = arg;
    rc_ent key;
    memcpy(key.hash, hash, CAIRN_BLOB_HASH_SIZE);
    if (c->n && bsearch(&key, c->v, c->n, sizeof key, rc_cmp))
        return; /* compared from the recount's side */
    if (refs != 0) {
        c->out->mismatched++;
        note(c->out, "blob %s...: the engine counts %" PRId64
                     " references, the tree holds %" PRId64,
             hash, refs, 0);
    } else if (!missing) {
        c->out->unreferenced++;
        c->out->unreferenced_bytes += stored_len;
    }
}

int cairn_blob_check(cairn_db *db, bool deep, cairn_blob_check_report *out)
{
    if (!db || !out)
        return CAIRN_EINVAL;
    memset(out, 0, sizeof *out);
    if (!db->blobs)
        return 0;
    recount c = {0};
    db_tables *t = cairn_db_tables_acquire(db, NULL, NULL);
    cairn_memtable *mts[5];
    size_t nm = 0;
    mts[nm++] = t->active;
    for (size_t i = 0; i < t->nimm; i++)
        mts[nm++] = t->imm[i];
    for (size_t i = 0; i < nm; i++) {
        cairn_mt_iter it;
        cairn_mt_iter_init(&it, mts[i]);
        for (cairn_mt_iter_seek_first(&it); cairn_mt_iter_valid(&it);
             cairn_mt_iter_next(&it)) {
            cairn_mt_entry e;
            cairn_mt_iter_entry(&it, &e);
            if (e.kind == CAIRN_MT_BLOB)
                recount_record(&c, e.value, e.vlen);
        }
    }
    cairn_db_tables_release(t);
    /* Every sorted file still on disk for a version or a view (the files
     * the engine counts), read entry by entry (not from their blob
     * references blocks). */
    c.out = out;
    if (c.rc == 0 && db->tree)
        c.rc = cairn_tree_for_each_file(db->tree, recount_file, &c);
    if (c.rc) {
        free(c.v);
        return c.rc;
    }
    if (c.n) /* (c.v is NULL without references) */
        qsort(c.v, c.n, sizeof *c.v, rc_cmp);
    size_t n = 0;
    for (size_t i = 0; i < c.n; i++) {
        out->references++;
        if (n > 0 && memcmp(c.v[n - 1].hash, c.v[i].hash,
                            CAIRN_BLOB_HASH_SIZE) == 0)
            c.v[n - 1].count++;
        else
            c.v[n++] = c.v[i];
    }
    out->referenced = n;
    for (size_t i = 0; i < n; i++) {
        int64_t refs = 0, pins = 0;
        bool missing = true;
        bool known = cairn_blob_store_count(db->blobs, c.v[i].hash, &refs,
                                            &pins, &missing);
        if (!known || refs != (int64_t)c.v[i].count) {
            out->mismatched++;
            note(out, "blob %s...: the engine counts %" PRId64
                      " references, the tree holds %" PRId64,
                 c.v[i].hash, known ? refs : 0, (int64_t)c.v[i].count);
        }
        if (!known || missing) {
            out->missing++;
            note(out, "blob %s...: referenced (%" PRId64 "x, %" PRId64
                      " kept) but in no blob file",
                 c.v[i].hash, (int64_t)c.v[i].count, refs);
        } else if (deep) {
            char msg[200];
            if (cairn_blob_store_verify(db->blobs, c.v[i].hash, msg,
                                        sizeof msg) != 0) {
                out->missing++;
                if (!out->first_error[0])
                    snprintf(out->first_error, sizeof out->first_error, "%s",
                             msg);
            }
        }
    }
    check_ctx cc = {db, c.v, n, out};
    cairn_blob_store_each(db->blobs, check_each, &cc);
    free(c.v);
    return out->mismatched || out->missing ? CAIRN_ECORRUPT : 0;
}
