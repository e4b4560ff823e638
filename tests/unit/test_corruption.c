/*
 * test_corruption.c — corruption sweeps: damage one file of a real database
 * (a WAL segment, a sorted file, the manifest, CURRENT) by flipping random
 * bits or truncating it at a random point, then open the database and read
 * everything, and run `cairn check` on it.
 *
 * The reference database is built once, deterministically, on the memory
 * env: a first phase with a tiny memtable and tiny levels (many flushes and
 * compactions: sorted files in several levels, a manifest of many records),
 * closed cleanly; a second phase that only logs (several WAL segments of
 * commits not yet in sorted files), ended by a power cut with every commit
 * synced. The test keeps every write (key, version, value) as the model.
 * Each case copies that image into a fresh memory env and damages one file
 * (sorted files: only those the manifest references; a leftover the power
 * cut brought back is garbage nobody reads).
 *
 * Invariants checked for every case:
 *   - the read-only open and the normal open either fail with
 *     CAIRN_ECORRUPT (CAIRN_EVERSION tolerated), or succeed; when they
 *     succeed the database shows exactly the model as of its current version
 *     V: every cairn_get and every key of a forward and a backward iterator
 *     scan is the model's value at V, or the read fails with CAIRN_ECORRUPT
 *     (never a wrong value, never a missing or extra key, never a crash);
 *   - V is the newest version, except for damage a WAL reader must take for
 *     a torn tail (docs/format/wal.md: in the newest segment, a bad record
 *     with no valid record after it): then V is exactly the version of the
 *     last record before the damage; damage elsewhere in the log is
 *     CAIRN_ECORRUPT;
 *   - after the normal open is closed (which flushes), a reopen shows the
 *     same V and the same contents;
 *   - `cairn check` (the real binary, on a copy written to a temporary
 *     directory) exits 1 and names the damaged file, or, for a torn WAL
 *     tail, exits 0 or 1 with a line naming the segment; on the pristine
 *     copy it reports the database sound.
 *
 * Knobs: CAIRN_CORRUPT_CASES (cases per file kind, default 48),
 * CAIRN_TEST_SEED, CAIRN_BIN (the cairn program; default: next to this
 * one).
 * Locking: single-threaded (the engine's background threads run beside it;
 * the memory envs are private to each case).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "cairn.h"
#include "env/env.h"
#include "lsm/manifest.h"
#include "lsm/version.h"
#include "test_util.h"

#define NKEYS 240
#define ROOT "/db"

static char g_bin[4096]; /* the cairn program */

/* ---------- the model: every write of every key ---------- */

typedef struct hent {
    uint64_t version;
    int32_t vlen; /* -1: deleted */
    uint64_t seed;
} hent;

typedef struct khist {
    hent *h;
    size_t n, cap;
} khist;

static khist g_hist[NKEYS];
static uint64_t g_final;   /* the newest version written */
static uint64_t g_flushed; /* the newest version of phase 1 (in sorted files) */

static void key_of(int i, char *k) { snprintf(k, 16, "key%05d", i); }

static void hist_add(int k, uint64_t version, int32_t vlen, uint64_t seed)
{
    khist *h = &g_hist[k];
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        h->h = realloc(h->h, h->cap * sizeof *h->h);
        if (!h->h)
            abort();
    }
    h->h[h->n++] = (hent){version, vlen, seed};
}

/* Key k as of version v: NULL when absent. */
static const hent *model_at(int k, uint64_t v)
{
    const khist *h = &g_hist[k];
    for (size_t i = h->n; i-- > 0;)
        if (h->h[i].version <= v)
            return h->h[i].vlen < 0 ? NULL : &h->h[i];
    return NULL;
}

static bool value_is(const hent *e, const void *val, size_t vlen)
{
    return e && (size_t)e->vlen == vlen && tu_check(val, vlen, e->seed);
}

/* ---------- building the reference database ---------- */

static void small_options(cairn_options *o, cairn_env *env)
{
    cairn_options_init(o);
    o->env = env;
    o->sync_mode = CAIRN_SYNC_NONE;
    o->memtable_size = 16 * 1024;
    o->sst_target_file_size = 8 * 1024;
    o->level_base_size = 24 * 1024;
    o->l0_compaction_trigger = 2;
    o->sst_block_size = 512;
    o->block_cache_size = 64 * 1024;
    o->history_ms = 0;
    o->wal_segment_size = 16 * 1024;
}

/* One batch of 1..4 writes to distinct keys, recorded in the model. */
static void random_batch(cairn_db *db, uint64_t *rng, int del_pct)
{
    cairn_write w[4];
    int keys[4];
    int32_t lens[4];
    uint64_t seeds[4];
    void *bufs[4] = {0};
    char kb[4][16];
    int n = 1 + (int)tu_rand(rng, 4);
    int m = 0;
    for (int i = 0; i < n; i++) {
        int k = (int)tu_rand(rng, NKEYS);
        bool dup = false;
        for (int j = 0; j < m; j++)
            dup |= keys[j] == k;
        if (dup)
            continue;
        keys[m] = k;
        key_of(k, kb[m]);
        w[m].key = kb[m];
        w[m].klen = strlen(kb[m]);
        if ((int)tu_rand(rng, 100) < del_pct) {
            lens[m] = -1;
            w[m].val = NULL;
            w[m].vlen = 0;
        } else {
            lens[m] = (int32_t)(tu_rand(rng, 8) == 0 ? 600 + tu_rand(rng, 900)
                                                     : tu_rand(rng, 160));
            seeds[m] = tu_splitmix(rng);
            bufs[m] = malloc((size_t)lens[m] + 1);
            tu_fill(bufs[m], (size_t)lens[m], seeds[m]);
            w[m].val = bufs[m];
            w[m].vlen = (size_t)lens[m];
        }
        m++;
    }
    uint64_t ver = 0;
    assert_int_equal(cairn_write_batch(db, w, (size_t)m, &ver), 0);
    for (int j = 0; j < m; j++) {
        hist_add(keys[j], ver, lens[j], lens[j] < 0 ? 0 : seeds[j]);
        free(bufs[j]);
    }
    assert_true(ver > g_final);
    g_final = ver;
}

/* ---------- the pristine image: every file, in memory ---------- */

typedef enum { K_WAL, K_SST, K_MANIFEST, K_CURRENT, K__COUNT } fkind;
static const char *const kind_name[K__COUNT] = {"WAL segment", "sorted file",
                                                "manifest", "CURRENT"};

typedef struct wrec {
    uint64_t start, end; /* the record's bytes */
    uint64_t version;    /* its commit version */
} wrec;

typedef struct ifile {
    char rel[128]; /* path under the database directory */
    char base[64]; /* file name */
    fkind kind;
    uint8_t *data;
    size_t len;
    /* WAL segments: */
    wrec *recs;
    size_t nrecs;
    uint64_t data_end; /* end of the last record (the rest is zeros) */
} ifile;

static ifile g_img[256];
static size_t g_nimg;
static size_t g_newest_wal; /* index of the newest segment */

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v; /* little-endian hosts only, as the format */
}
static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void read_whole(cairn_env *env, const char *path, uint8_t **data,
                       size_t *len)
{
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_READ, &f), 0);
    uint64_t sz = 0;
    assert_int_equal(cairn_file_size(f, &sz), 0);
    *data = malloc(sz ? sz : 1);
    size_t got = 0;
    assert_int_equal(cairn_file_read_at(f, 0, *data, sz, &got), 0);
    assert_int_equal(got, sz);
    *len = sz;
    cairn_file_close(f);
}

/* A segment's records, by the format: header 48 bytes, then 24-byte record
 * headers (LSN at 8, length at 16) and payloads (commit version first). */
static void parse_wal(ifile *f)
{
    uint64_t off = 48;
    f->data_end = f->len < 48 ? f->len : 48;
    while (off + 24 <= f->len) {
        uint32_t len = rd32(f->data + off + 16);
        uint8_t type = f->data[off + 20];
        if (type == 0 || off + 24 + len > f->len || len < 8)
            break;
        f->recs = realloc(f->recs, (f->nrecs + 1) * sizeof *f->recs);
        assert_non_null(f->recs);
        f->recs[f->nrecs++] =
            (wrec){off, off + 24 + len, rd64(f->data + off + 24)};
        off += 24 + len;
        f->data_end = off;
    }
}

/* A manifest's records: header 32 bytes, then 16-byte record headers
 * (length at 8) and payloads. Only their extents matter here. */
static void parse_manifest(ifile *f)
{
    uint64_t off = 32;
    while (off + 16 <= f->len) {
        uint32_t len = rd32(f->data + off + 8);
        if (len == 0 || off + 16 + len > f->len)
            break;
        f->recs = realloc(f->recs, (f->nrecs + 1) * sizeof *f->recs);
        assert_non_null(f->recs);
        f->recs[f->nrecs++] = (wrec){off, off + 16 + len, 0};
        off += 16 + len;
    }
    f->data_end = off;
    assert_int_equal(off, f->len);
}

static void add_dir(cairn_env *env, const char *dir, const char *prefix)
{
    char **names = NULL;
    size_t count = 0;
    assert_int_equal(cairn_env_list_dir(env, dir, &names, &count), 0);
    for (size_t i = 0; i < count; i++) {
        const char *nm = names[i];
        fkind k;
        size_t nl = strlen(nm);
        if (strncmp(nm, "wal-", 4) == 0 && nl > 4 &&
            strcmp(nm + nl - 4, ".log") == 0)
            k = K_WAL;
        else if (nl > 4 && strcmp(nm + nl - 4, ".sst") == 0)
            k = K_SST;
        else if (strncmp(nm, "MANIFEST-", 9) == 0)
            k = K_MANIFEST;
        else if (strcmp(nm, "CURRENT") == 0)
            k = K_CURRENT;
        else if (strcmp(nm, "FORMAT") == 0)
            k = K__COUNT; /* copied, never damaged here */
        else
            continue; /* LOCK files, the wal directory */
        assert_true(g_nimg < sizeof g_img / sizeof g_img[0]);
        ifile *f = &g_img[g_nimg++];
        memset(f, 0, sizeof *f);
        snprintf(f->rel, sizeof f->rel, "%s%s", prefix, nm);
        snprintf(f->base, sizeof f->base, "%s", nm);
        f->kind = k;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, nm);
        read_whole(env, path, &f->data, &f->len);
        if (k == K_WAL)
            parse_wal(f);
        if (k == K_MANIFEST)
            parse_manifest(f);
    }
    cairn_env_free_list(names, count);
}

typedef struct damage damage;
static cairn_env *image_env(const damage *d);

static void build_reference(void)
{
    uint64_t seed = tu_env_u64("CAIRN_TEST_SEED", 20240611);
    uint64_t rng = seed;
    cairn_env *env = cairn_env_mem_new();
    assert_non_null(env);
    cairn_options o;
    small_options(&o, env);

    /* Phase 1: many flushes and compactions, closed cleanly. */
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(ROOT, &o, &db), 0);
    for (int i = 0; i < 1400; i++) {
        random_batch(db, &rng, 20);
        if (i % 100 == 99) /* flushes at known points, whatever the timing */
            assert_int_equal(cairn_flush(db), 0);
    }
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_true(st.flushes >= 14);
    assert_int_equal(cairn_close(db), 0);
    g_flushed = g_final;

    /* Phase 2: commits that stay in the log (a large memtable, no
     * compaction), every one synced, then the power goes. */
    o.memtable_size = 4u << 20;
    o.l0_compaction_trigger = 64;
    o.sync_mode = CAIRN_SYNC_ALWAYS;
    assert_int_equal(cairn_open(ROOT, &o, &db), 0);
    cairn_get_stats(db, &st);
    int levels = 0;
    uint64_t files = 0;
    for (int l = 0; l < 8; l++) {
        levels += st.level_files[l] > 0;
        files += st.level_files[l];
    }
    for (int i = 0; i < 260; i++)
        random_batch(db, &rng, 15);
    assert_int_equal(cairn_env_mem_power_loss(env, false, seed), 0);
    g_nimg = 0;
    add_dir(env, ROOT, "");
    add_dir(env, ROOT "/wal", "wal/");
    (void)cairn_close(db); /* fails: the power is gone */
    cairn_env_destroy(env);

    /* Sorted files no version references (compaction inputs whose
     * unlink the power cut undid) are garbage nobody reads: not targets. */
    cairn_env *ienv = image_env(NULL);
    cairn_manifest_options mo;
    cairn_manifest_options_init(&mo);
    mo.read_only = true;
    mo.create_if_missing = false;
    cairn_manifest *man = NULL;
    cairn_version *cv = NULL;
    assert_int_equal(cairn_manifest_open_ex(ienv, ROOT, &mo, &man, &cv, NULL),
                     0);
    size_t leftovers = 0;
    for (size_t i = 0; i < g_nimg; i++) {
        uint64_t num = 0;
        if (g_img[i].kind == K_SST &&
            (sscanf(g_img[i].base, "%" SCNu64, &num) != 1 ||
             !cairn_version_lookup(cv, num, NULL))) {
            g_img[i].kind = K__COUNT;
            leftovers++;
        }
    }
    cairn_version_unref(cv);
    cairn_manifest_close(man);
    cairn_env_destroy(ienv);

    size_t per[K__COUNT] = {0};
    g_newest_wal = SIZE_MAX;
    for (size_t i = 0; i < g_nimg; i++) {
        if (g_img[i].kind == K__COUNT)
            continue;
        per[g_img[i].kind]++;
        if (g_img[i].kind == K_WAL &&
            (g_newest_wal == SIZE_MAX ||
             strcmp(g_img[i].base, g_img[g_newest_wal].base) > 0))
            g_newest_wal = i;
    }
    printf("reference: %" PRIu64 " versions (%" PRIu64
           " in sorted files); %d levels, %" PRIu64
           " sorted files (%zu more left over), %zu WAL segments, %zu "
           "manifests\n",
           g_final, g_flushed, levels, files, leftovers, per[K_WAL],
           per[K_MANIFEST]);
    assert_true(levels >= 2);
    assert_true(per[K_SST] >= 4);
    assert_true(per[K_WAL] >= 3);
    assert_int_equal(per[K_MANIFEST], 1);
    assert_int_equal(per[K_CURRENT], 1);
    /* Every phase-2 commit is in the log. */
    uint64_t logged = 0;
    for (size_t i = 0; i < g_nimg; i++)
        for (size_t r = 0; r < g_img[i].nrecs; r++)
            logged += g_img[i].recs[r].version > g_flushed;
    assert_int_equal(logged, 260);
}

/* ---------- a case: the image, one file damaged ---------- */

/* The damaged copy of the target file. */
typedef struct damage {
    size_t target;      /* index into g_img */
    uint8_t *data;      /* its damaged bytes */
    size_t len;
    uint64_t first;     /* first damaged offset (truncation: the new size) */
    bool truncated;
    uint64_t flips[8];  /* flipped bit offsets (byte * 8 + bit) */
    int nflips;
    char what[192];      /* description for messages */
} damage;

static cairn_env *image_env(const damage *d)
{
    cairn_env *env = cairn_env_mem_new();
    assert_non_null(env);
    assert_int_equal(cairn_env_mkdir_p(env, ROOT "/wal"), 0);
    for (size_t i = 0; i < g_nimg; i++) {
        char path[512];
        assert_true(snprintf(path, sizeof path, ROOT "/%s", g_img[i].rel) <
                    (int)sizeof path);
        const uint8_t *p = g_img[i].data;
        size_t n = g_img[i].len;
        if (d && i == d->target) {
            p = d->data;
            n = d->len;
        }
        cairn_file *f = NULL;
        assert_int_equal(cairn_env_open(env, path,
                                        CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE,
                                        &f),
                         0);
        if (n)
            assert_int_equal(cairn_file_write_at(f, 0, p, n), 0);
        assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_FULL), 0);
        cairn_file_close(f);
    }
    assert_int_equal(cairn_env_sync_dir(env, ROOT), 0);
    assert_int_equal(cairn_env_sync_dir(env, ROOT "/wal"), 0);
    return env;
}

/* The same on disk, for `cairn check`. */
static void image_disk(const char *dir, const damage *d)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/wal", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    for (size_t i = 0; i < g_nimg; i++) {
        assert_true(snprintf(path, sizeof path, "%s/%s", dir, g_img[i].rel) <
                    (int)sizeof path);
        const uint8_t *p = g_img[i].data;
        size_t n = g_img[i].len;
        if (d && i == d->target) {
            p = d->data;
            n = d->len;
        }
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        if (n)
            assert_int_equal(fwrite(p, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
    }
}

typedef struct tally {
    uint64_t cases, ro_opened, rw_opened, open_failed, older, reads,
        reads_corrupt, check_damaged, check_torn, check_clean;
} tally;

/* What the contract says the open must do. */
typedef struct expect {
    bool must_fail;     /* CAIRN_ECORRUPT */
    uint64_t version;   /* else: the version it shows (0: the newest) */
} expect;

/* Every key by cairn_get, then a forward and a backward scan, against the
 * model at the database's current version. Returns that version. */
static uint64_t verify_db(cairn_db *db, const damage *d, tally *t)
{
    uint64_t v = cairn_current_version(db);
    if (v > g_final || v < g_flushed)
        fail_msg("%s: version %" PRIu64 " after open (final %" PRIu64
                 ", flushed %" PRIu64 ")",
                 d->what, v, g_final, g_flushed);
    for (int k = 0; k < NKEYS; k++) {
        char key[16];
        key_of(k, key);
        void *val = NULL;
        size_t vlen = 0;
        int rc = cairn_get(db, key, strlen(key), &val, &vlen);
        const hent *e = model_at(k, v);
        t->reads++;
        if (rc == CAIRN_ECORRUPT) {
            t->reads_corrupt++;
        } else if (rc == CAIRN_ENOTFOUND) {
            if (e)
                fail_msg("%s: %s missing at version %" PRIu64, d->what, key,
                         v);
        } else if (rc == 0) {
            if (!value_is(e, val, vlen))
                fail_msg("%s: %s has a wrong value at version %" PRIu64
                         " (%zu bytes; model %d)",
                         d->what, key, v, vlen, e ? e->vlen : -1);
            cairn_free(val);
        } else {
            fail_msg("%s: get %s: %s", d->what, key, cairn_strerror(rc));
        }
    }
    for (int dir = 0; dir < 2; dir++) {
        cairn_iter *it = NULL;
        assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
        int next = dir == 0 ? 0 : NKEYS - 1; /* next key that may come */
        if (dir == 0)
            cairn_iter_first(it);
        else
            cairn_iter_last(it);
        for (; cairn_iter_valid(it);
             dir == 0 ? cairn_iter_next(it) : cairn_iter_prev(it)) {
            size_t kl = 0, vl = 0;
            const char *kp = cairn_iter_key(it, &kl);
            const void *vp = cairn_iter_value(it, &vl);
            int k = -1;
            if (kl == 8 && memcmp(kp, "key", 3) == 0) {
                k = 0;
                for (int i = 3; i < 8; i++)
                    k = kp[i] >= '0' && kp[i] <= '9' && k >= 0
                            ? k * 10 + (kp[i] - '0')
                            : -1;
            }
            if (k < 0 || k >= NKEYS)
                fail_msg("%s: scan shows a key the model never had", d->what);
            /* Every live key between the previous one and this one must
             * have come. */
            for (; next != k; next += dir == 0 ? 1 : -1) {
                if (next < 0 || next >= NKEYS || model_at(next, v))
                    fail_msg("%s: scan skipped key %d (at %d)", d->what, next,
                             k);
            }
            if (!value_is(model_at(k, v), vp, vl))
                fail_msg("%s: scan: key %d wrong at version %" PRIu64,
                         d->what, k, v);
            next += dir == 0 ? 1 : -1;
        }
        int st = cairn_iter_status(it);
        t->reads++;
        if (st == CAIRN_ECORRUPT) {
            t->reads_corrupt++;
        } else if (st == 0) {
            for (; next >= 0 && next < NKEYS; next += dir == 0 ? 1 : -1)
                if (model_at(next, v))
                    fail_msg("%s: scan ended before key %d", d->what, next);
        } else {
            fail_msg("%s: scan: %s", d->what, cairn_strerror(st));
        }
        cairn_iter_free(it);
    }
    return v;
}

static void check_open_rc(const damage *d, int rc, const expect *ex,
                          const char *how)
{
    if (rc == 0 && ex->must_fail)
        fail_msg("%s: %s open succeeded; the format says corrupt", d->what,
                 how);
    if (rc != 0 && rc != CAIRN_ECORRUPT && rc != CAIRN_EVERSION)
        fail_msg("%s: %s open: %s", d->what, how, cairn_strerror(rc));
    /* A refused open says which file and what (cairn_open_error), not
     * just the error's name. */
    if (rc == CAIRN_ECORRUPT &&
        !strcmp(cairn_open_error(), cairn_strerror(rc)))
        fail_msg("%s: %s open: CAIRN_ECORRUPT with no word on what: \"%s\"",
                 d->what, how, cairn_open_error());
    if (rc != 0 && !ex->must_fail && ex->version)
        fail_msg("%s: %s open: %s; the format says torn tail (version %" PRIu64
                 ")",
                 d->what, how, cairn_strerror(rc), ex->version);
}

static void check_version(const damage *d, uint64_t v, const expect *ex)
{
    uint64_t want = ex->version ? ex->version : g_final;
    if (v != want)
        fail_msg("%s: version %" PRIu64 " after open, expected %" PRIu64,
                 d->what, v, want);
}

/* Open read-only, then normally, then again after closing. */
static void run_engine(const damage *d, const expect *ex, tally *t)
{
    cairn_env *env = image_env(d);
    cairn_options o;
    small_options(&o, env);
    o.read_only = true;
    o.create_if_missing = false;
    cairn_db *db = NULL;
    int rc = cairn_open(ROOT, &o, &db);
    check_open_rc(d, rc, ex, "read-only");
    if (rc == 0) {
        t->ro_opened++;
        check_version(d, verify_db(db, d, t), ex);
        assert_int_equal(cairn_close(db), 0);
    }
    small_options(&o, env);
    o.create_if_missing = false;
    db = NULL;
    int rc2 = cairn_open(ROOT, &o, &db);
    check_open_rc(d, rc2, ex, "normal");
    if ((rc == 0) != (rc2 == 0))
        fail_msg("%s: read-only open %s, normal open %s", d->what,
                 cairn_strerror(rc), cairn_strerror(rc2));
    if (rc2 != 0) {
        t->open_failed++;
        cairn_env_destroy(env);
        return;
    }
    t->rw_opened++;
    uint64_t v = verify_db(db, d, t);
    check_version(d, v, ex);
    if (v != g_final)
        t->older++;
    rc = cairn_close(db);
    if (rc != 0 && rc != CAIRN_ECORRUPT)
        fail_msg("%s: close: %s", d->what, cairn_strerror(rc));
    db = NULL;
    rc = cairn_open(ROOT, &o, &db);
    if (rc == CAIRN_ECORRUPT) {
        /* Only damage the first open did not need to read (a data block)
         * may fail a later open: never in the log, which it repaired. */
        if (d->target >= g_nimg || g_img[d->target].kind == K_WAL)
            fail_msg("%s: reopen: %s", d->what, cairn_strerror(rc));
        cairn_env_destroy(env);
        return;
    }
    if (rc != 0)
        fail_msg("%s: reopen: %s", d->what, cairn_strerror(rc));
    uint64_t v2 = verify_db(db, d, t);
    if (v2 != v)
        fail_msg("%s: version %" PRIu64 " after reopen, %" PRIu64 " before",
                 d->what, v2, v);
    rc = cairn_close(db);
    if (rc != 0 && rc != CAIRN_ECORRUPT)
        fail_msg("%s: close after reopen: %s", d->what, cairn_strerror(rc));
    cairn_env_destroy(env);
}

/* Copy the files of directory src in a memory env to dir on disk. */
static void env_to_disk(cairn_env *env, const char *src, const char *dir)
{
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(cairn_env_list_dir(env, src, &names, &n), 0);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", src, names[i]);
        cairn_file *f = NULL;
        if (strcmp(names[i], "LOCK") == 0 ||
            cairn_env_open(env, path, CAIRN_OPEN_READ, &f) != 0)
            continue; /* a directory */
        cairn_file_close(f);
        uint8_t *data = NULL;
        size_t len = 0;
        read_whole(env, path, &data, &len);
        assert_true(snprintf(path, sizeof path, "%s/%s", dir, names[i]) <
                    (int)sizeof path);
        FILE *out = fopen(path, "wb");
        assert_non_null(out);
        if (len)
            assert_int_equal(fwrite(data, 1, len, out), len);
        assert_int_equal(fclose(out), 0);
        free(data);
    }
    cairn_env_free_list(names, n);
}

static int check_dir_out(const char *dir, char *out, size_t cap);

/* `cairn check DIR`: its exit status; its output in out (cap bytes). */
static int run_check(const damage *d, char *out, size_t cap)
{
    char *dir = tu_mkdtemp("corrupt");
    assert_non_null(dir);
    image_disk(dir, d);
    int st = check_dir_out(dir, out, cap);
    tu_rmrf(dir);
    free(dir);
    return st;
}

static int check_dir_out(const char *dir, char *out, size_t cap)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' check '%s' 2>&1", g_bin, dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    while (fgetc(p) != EOF) {
    }
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* The report line that names a file, or NULL. */
static const char *line_naming(const char *out, const char *name,
                               const char *tag)
{
    for (const char *l = out; l && *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        char line[2048];
        if (n >= sizeof line)
            n = sizeof line - 1;
        memcpy(line, l, n);
        line[n] = 0;
        if (strstr(line, name) && (!tag || strncmp(line, tag, strlen(tag)) == 0))
            return l;
        l = e ? e + 1 : NULL;
    }
    return NULL;
}

/* ---------- the expectations the formats give ---------- */

static bool damaged_in(const damage *d, uint64_t start, uint64_t end)
{
    if (d->truncated)
        return d->first < end;
    for (int i = 0; i < d->nflips; i++)
        if (d->flips[i] / 8 >= start && d->flips[i] / 8 < end)
            return true;
    return false;
}

/* The newest version in the log before segment index s (or in the sorted
 * files). */
static uint64_t version_before_segment(size_t s)
{
    uint64_t best = g_flushed;
    for (size_t i = 0; i < g_nimg; i++)
        if (g_img[i].kind == K_WAL &&
            strcmp(g_img[i].base, g_img[s].base) < 0 && g_img[i].nrecs)
            if (g_img[i].recs[g_img[i].nrecs - 1].version > best)
                best = g_img[i].recs[g_img[i].nrecs - 1].version;
    return best;
}

/* docs/format/wal.md, "How a log is read". torn: the damage reads as a
 * torn tail (the report may then say so instead of "damaged"); none: the
 * damage lies past the records of the newest segment, in its zeros. */
static expect wal_expect(const damage *d, bool *torn, bool *none)
{
    const ifile *f = &g_img[d->target];
    expect ex = {false, 0};
    *torn = *none = false;
    bool newest = d->target == g_newest_wal;
    if (!newest) {
        if (f->nrecs == 0)
            return ex; /* contributes no record: skipped */
        ex.must_fail = true;
        return ex;
    }
    if (damaged_in(d, 0, 48)) {
        if (f->nrecs && !(d->truncated && d->first < 48)) {
            ex.must_fail = true; /* a bad header before records */
            return ex;
        }
        /* Cut inside the header: the segment was being created. */
        *torn = true;
        ex.version = version_before_segment(d->target);
        return ex;
    }
    size_t first_bad = f->nrecs;
    for (size_t r = 0; r < f->nrecs; r++)
        if (damaged_in(d, f->recs[r].start, f->recs[r].end)) {
            first_bad = r;
            break;
        }
    if (first_bad == f->nrecs) {
        /* Past the records: flipped zeros read as a torn tail, a cut in
         * the zeros is no damage at all. */
        if (d->truncated)
            *none = true;
        else
            *torn = true;
        return ex;
    }
    for (size_t r = first_bad + 1; r < f->nrecs; r++)
        if (!damaged_in(d, f->recs[r].start, f->recs[r].end)) {
            ex.must_fail = true; /* a valid record after the bad one */
            return ex;
        }
    /* A cut exactly between records leaves a log that ends cleanly there:
     * nothing tells it from one that was never longer (no report). */
    *torn = true;
    if (d->truncated && d->first == f->recs[first_bad].start)
        *none = true;
    ex.version = first_bad ? f->recs[first_bad - 1].version
                           : version_before_segment(d->target);
    if (ex.version == 0)
        ex.version = g_flushed;
    return ex;
}

/* ---------- the sweep ---------- */

static void make_damage(damage *d, size_t target, int mode, uint64_t *rng)
{
    const ifile *f = &g_img[target];
    memset(d, 0, sizeof *d);
    d->target = target;
    d->data = malloc(f->len ? f->len : 1);
    assert_non_null(d->data);
    memcpy(d->data, f->data, f->len);
    d->len = f->len;
    /* Offsets fall mostly in the written bytes (a segment's preallocated
     * zeros are most of its length). */
    uint64_t span = f->len;
    if (f->kind == K_WAL && f->data_end && tu_rand(rng, 4) != 0)
        span = f->data_end;
    uint64_t hdr = f->kind == K_WAL ? 48 : f->kind == K_MANIFEST ? 32 : 88;
    switch (mode) {
    case 0: /* truncate at a random point */
        d->truncated = true;
        d->first = tu_rand(rng, span ? span : 1);
        break;
    case 1: /* zero length */
        d->truncated = true;
        d->first = 0;
        break;
    case 2: /* the header only (sorted files: the footer's length) */
        d->truncated = true;
        d->first = hdr < f->len ? hdr : f->len - 1;
        break;
    case 3: /* the last bytes: a record's or the footer's end */
        d->truncated = true;
        d->first = span - 1 - tu_rand(rng, span < 8 ? 1 : 8);
        break;
    case 4: /* bits in the header / footer / last record */
    {
        d->nflips = 1 + (int)tu_rand(rng, 3);
        for (int i = 0; i < d->nflips; i++) {
            uint64_t byte;
            if (f->kind == K_SST)
                byte = f->len - 1 - tu_rand(rng, 88);
            else if (f->kind == K_WAL && f->nrecs && tu_rand(rng, 2))
                byte = f->recs[f->nrecs - 1].start +
                       tu_rand(rng, f->recs[f->nrecs - 1].end -
                                        f->recs[f->nrecs - 1].start);
            else
                byte = tu_rand(rng, hdr < f->len ? hdr : f->len);
            d->flips[i] = byte * 8 + tu_rand(rng, 8);
        }
        break;
    }
    default: /* 1..4 random bits anywhere */
        d->nflips = 1 + (int)tu_rand(rng, 4);
        for (int i = 0; i < d->nflips; i++)
            d->flips[i] = tu_rand(rng, span) * 8 + tu_rand(rng, 8);
        break;
    }
    if (d->truncated) {
        d->len = d->first;
        snprintf(d->what, sizeof d->what, "%s cut at %" PRIu64 " of %zu",
                 f->base, d->first, f->len);
    } else {
        /* A bit flipped twice is no flip: keep distinct ones. */
        int n = 0;
        for (int i = 0; i < d->nflips; i++) {
            bool dup = false;
            for (int j = 0; j < n; j++)
                dup |= d->flips[j] == d->flips[i];
            if (!dup)
                d->flips[n++] = d->flips[i];
        }
        d->nflips = n;
        d->first = UINT64_MAX;
        for (int i = 0; i < n; i++) {
            d->data[d->flips[i] / 8] ^= (uint8_t)(1u << (d->flips[i] % 8));
            if (d->flips[i] / 8 < d->first)
                d->first = d->flips[i] / 8;
        }
        snprintf(d->what, sizeof d->what,
                 "%s: %d bit%s flipped from byte %" PRIu64 " of %zu", f->base,
                 n, n == 1 ? "" : "s", d->first, f->len);
    }
}

static void sweep(fkind kind)
{
    uint64_t ncases = tu_env_u64("CAIRN_CORRUPT_CASES", 48);
    uint64_t rng = tu_env_u64("CAIRN_TEST_SEED", 20240611) * 31 + kind;
    size_t targets[256], nt = 0;
    for (size_t i = 0; i < g_nimg; i++)
        if (g_img[i].kind == kind)
            targets[nt++] = i;
    assert_true(nt > 0);
    tally t;
    memset(&t, 0, sizeof t);
    static char out[1 << 16];
    for (uint64_t c = 0; c < ncases; c++) {
        size_t target = targets[tu_rand(&rng, nt)];
        if (kind == K_WAL && c % 2 == 0)
            target = g_newest_wal; /* where torn tails are */
        damage d;
        make_damage(&d, target, (int)(c % 8), &rng);
        bool torn = false, none = false;
        expect ex = {false, 0};
        if (kind == K_WAL)
            ex = wal_expect(&d, &torn, &none);
        /* docs/format/manifest.md: a cut after the snapshot, or bits
         * flipped in the last record only, read as a torn tail: edits never
         * acknowledged. The open must then show the right data or fail
         * (their loss may leave files missing, or a gap before the log).
         * A cut between records leaves no trace in the manifest itself. */
        const ifile *tf = &g_img[target];
        bool mclean = false;
        if (kind == K_MANIFEST && d.first >= tf->recs[0].end) {
            torn = true; /* every record from the first bad one on bad */
            for (size_t r = 1; r < tf->nrecs; r++)
                if (damaged_in(&d, tf->recs[r].start, tf->recs[r].end)) {
                    for (size_t q = r + 1; q < tf->nrecs; q++)
                        torn &= damaged_in(&d, tf->recs[q].start,
                                           tf->recs[q].end);
                    break;
                }
            for (size_t r = 1; r < tf->nrecs && d.truncated; r++)
                mclean |= d.first == tf->recs[r].start;
        }
        t.cases++;
        run_engine(&d, &ex, &t);

        int st = run_check(&d, out, sizeof out);
        const char *base = g_img[target].base;
        if (mclean) {
            if (st != 0 && (st != 1 || !strstr(out, "\nDAMAGED ")))
                fail_msg("%s: check exits %d:\n%s", d.what, st, out);
            t.check_clean++;
        } else if (none) {
            if (st != 0)
                fail_msg("%s: no damage to see, but check exits %d:\n%s",
                         d.what, st, out);
            t.check_clean++;
        } else if (torn && st == 0) {
            if (!line_naming(out, base, "note"))
                fail_msg("%s: check says sound without naming the torn "
                         "tail:\n%s",
                         d.what, out);
            t.check_torn++;
        } else {
            if (st != 1)
                fail_msg("%s: check exits %d:\n%s", d.what, st, out);
            /* A torn manifest tail is named in a note; the damage its lost
             * edit leaves (files missing, a log gap) is listed too. */
            if (!line_naming(out, base, "DAMAGED") &&
                !(torn && line_naming(out, base, "note")))
                fail_msg("%s: check does not name %s:\n%s", d.what, base,
                         out);
            t.check_damaged++;
        }
        free(d.data);
    }
    printf("%-12s %3" PRIu64 " cases: opened %" PRIu64 " read-only, %" PRIu64
           " normally (%" PRIu64 " at an older version: torn tails), %" PRIu64
           " refused; %" PRIu64 " reads, %" PRIu64
           " corrupt; check: %" PRIu64 " damaged, %" PRIu64
           " torn tails, %" PRIu64 " clean cuts; 0 wrong values\n",
           kind_name[kind], t.cases, t.ro_opened, t.rw_opened, t.older,
           t.open_failed, t.reads, t.reads_corrupt, t.check_damaged,
           t.check_torn, t.check_clean);
}

/* ---------- tests ---------- */

static void test_pristine(void **state)
{
    (void)state;
    tally t;
    memset(&t, 0, sizeof t);
    damage d;
    memset(&d, 0, sizeof d);
    d.target = SIZE_MAX;
    snprintf(d.what, sizeof d.what, "pristine copy");
    expect ex = {false, 0};
    run_engine(&d, &ex, &t);
    assert_int_equal(t.reads_corrupt, 0);
    assert_int_equal(t.rw_opened, 1);
    static char out[1 << 16];
    int st = run_check(&d, out, sizeof out);
    if (st != 0 || !strstr(out, "sound:"))
        fail_msg("check on the pristine copy exits %d:\n%s", st, out);
}

/* ---------- regressions: damage that used to read as wrong data ---------- */

/* A database of 40 keys in one flushed sorted file, closed cleanly (the log
 * then starts after the flush), with no compaction. */
static cairn_env *small_flushed_db(cairn_options *o)
{
    cairn_env *env = cairn_env_mem_new();
    assert_non_null(env);
    small_options(o, env);
    o->memtable_size = 1u << 20;
    o->l0_compaction_trigger = 64;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(ROOT, o, &db), 0);
    for (int i = 0; i < 40; i++) {
        char k[16];
        key_of(i, k);
        assert_int_equal(cairn_put(db, k, strlen(k), "v", 1, NULL), 0);
    }
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(cairn_close(db), 0);
    return env;
}

/* Both opens fail with CAIRN_ECORRUPT, and cairn_open_error() says why
 * (holds want). */
static void expect_open_corrupt(cairn_options *o, const char *want)
{
    cairn_db *db = NULL;
    o->create_if_missing = false;
    for (int ro = 1; ro >= 0; ro--) {
        o->read_only = ro;
        int rc = cairn_open(ROOT, o, &db);
        if (rc == 0) {
            void *v = NULL;
            size_t vl = 0;
            int grc = cairn_get(db, "key00001", 8, &v, &vl);
            cairn_free(v);
            cairn_close(db);
            fail_msg("%s open succeeded (get: %s)",
                     ro ? "read-only" : "normal", cairn_strerror(grc));
        }
        assert_int_equal(rc, CAIRN_ECORRUPT);
        if (!strstr(cairn_open_error(), want))
            fail_msg("%s open: cairn_open_error() is \"%s\", expected it to "
                     "say \"%s\"", ro ? "read-only" : "normal",
                     cairn_open_error(), want);
    }
    /* A good open (a fresh database on a disk of its own) clears it. */
    cairn_options fo = *o;
    fo.env = cairn_env_mem_new();
    fo.read_only = false;
    fo.create_if_missing = true;
    assert_non_null(fo.env);
    assert_int_equal(cairn_open(ROOT, &fo, &db), 0);
    assert_string_equal(cairn_open_error(), "");
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(fo.env);
}

/* The manifest's last edit (the flush) cut as a torn tail: the sorted
 * files it added are unknown, and the log was truncated past what the
 * older manifest covers. cairn_open used to replay the rest and show the
 * flushed keys as missing; now the log's start is checked against it. */
static void test_lost_flush_edit(void **state)
{
    (void)state;
    cairn_options o;
    cairn_env *env = small_flushed_db(&o);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(cairn_env_list_dir(env, ROOT, &names, &n), 0);
    char path[256] = "";
    for (size_t i = 0; i < n; i++)
        if (strncmp(names[i], "MANIFEST-", 9) == 0)
            snprintf(path, sizeof path, ROOT "/%s", names[i]);
    cairn_env_free_list(names, n);
    assert_true(path[0] != 0);
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_WRITE, &f), 0);
    uint64_t sz = 0;
    assert_int_equal(cairn_file_size(f, &sz), 0);
    assert_int_equal(cairn_file_truncate(f, sz - 1), 0);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_FULL), 0);
    cairn_file_close(f);
    expect_open_corrupt(&o, "log: it starts after LSN");

    /* cairn check sees the gap too (the sorted file the lost edit added is
     * only a leftover, so nothing else is amiss). */
    char *dir = tu_mkdtemp("corrupt");
    assert_non_null(dir);
    env_to_disk(env, ROOT, dir);
    char wdir[4096], wsrc[256];
    snprintf(wdir, sizeof wdir, "%s/wal", dir);
    snprintf(wsrc, sizeof wsrc, ROOT "/wal");
    assert_int_equal(mkdir(wdir, 0755), 0);
    env_to_disk(env, wsrc, wdir);
    static char out[1 << 16];
    int st = check_dir_out(dir, out, sizeof out);
    tu_rmrf(dir);
    free(dir);
    if (st != 1 || !line_naming(out, strrchr(path, '/') + 1, "DAMAGED") ||
        !strstr(out, "wal: the log starts after LSN"))
        fail_msg("check exits %d:\n%s", st, out);
    cairn_env_destroy(env);
}

/* A sorted file the manifest names is gone: a read-only open used to take
 * the tree's CAIRN_ENOTFOUND for "never flushed" and show the log alone. */
static void test_missing_sorted_file(void **state)
{
    (void)state;
    cairn_options o;
    cairn_env *env = small_flushed_db(&o);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(cairn_env_list_dir(env, ROOT, &names, &n), 0);
    int removed = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        if (l > 4 && strcmp(names[i] + l - 4, ".sst") == 0) {
            char path[256];
            snprintf(path, sizeof path, ROOT "/%s", names[i]);
            assert_int_equal(cairn_env_unlink(env, path), 0);
            removed++;
        }
    }
    cairn_env_free_list(names, n);
    assert_int_equal(removed, 1);
    expect_open_corrupt(&o, "missing (the manifest references it)");
    cairn_env_destroy(env);
}

/* A read-only open of a log larger than the memtable: replay used to
 * flush, which a read-only handle cannot (CAIRN_EREADONLY). */
static void test_readonly_long_log(void **state)
{
    (void)state;
    cairn_env *env = image_env(NULL); /* ~128 KiB of log, 16 KiB memtable */
    cairn_options o;
    small_options(&o, env);
    o.read_only = true;
    o.create_if_missing = false;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(ROOT, &o, &db), 0);
    assert_int_equal(cairn_current_version(db), g_final);
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_true(st.memtable_bytes > o.memtable_size);
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
}

static void test_wal(void **state)
{
    (void)state;
    sweep(K_WAL);
}
static void test_sst(void **state)
{
    (void)state;
    sweep(K_SST);
}
static void test_manifest(void **state)
{
    (void)state;
    sweep(K_MANIFEST);
}
static void test_current(void **state)
{
    (void)state;
    sweep(K_CURRENT);
}

static int setup(void **state)
{
    (void)state;
    build_reference();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < g_nimg; i++) {
        free(g_img[i].data);
        free(g_img[i].recs);
    }
    for (int k = 0; k < NKEYS; k++)
        free(g_hist[k].h);
    return 0;
}

int main(int argc, char **argv)
{
    const char *bin = getenv("CAIRN_BIN");
    if (bin && *bin) {
        snprintf(g_bin, sizeof g_bin, "%s", bin);
    } else {
        const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
        int n = slash ? (int)(slash - argv[0]) : 1;
        snprintf(g_bin, sizeof g_bin, "%.*s/cairn", n, slash ? argv[0] : ".");
    }
    struct stat sb;
    if (stat(g_bin, &sb) != 0) {
        fprintf(stderr, "test_corruption: no cairn program at %s (set "
                        "CAIRN_BIN)\n",
                g_bin);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pristine), cmocka_unit_test(test_wal),
        cmocka_unit_test(test_sst),      cmocka_unit_test(test_manifest),
        cmocka_unit_test(test_current),
        cmocka_unit_test(test_lost_flush_edit),
        cmocka_unit_test(test_missing_sorted_file),
        cmocka_unit_test(test_readonly_long_log),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
