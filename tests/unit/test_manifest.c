/*
 * test_manifest.c — the LSM manifest and versions (src/lsm/manifest.c,
 * src/lsm/version.c), on the memory env.
 *
 * An in-memory model holds the expected file set and counters; random edits
 * (adds at every level, deletes, moves to the next level, tier changes,
 * counters, compaction pointers) are applied to both, and the version is
 * compared to the model after each edit and after every reopen. Then:
 *   - rollover with a small size threshold keeps the state and leaves one
 *     manifest;
 *   - power loss (torn or not) after random numbers of edits: reopen gives
 *     exactly the last acknowledged state;
 *   - a power cut at every I/O call of a short scenario (creation, edits,
 *     rollovers, a reopen): reopen gives the state before or after the edit
 *     in flight, nothing else;
 *   - EIO/ENOSPC at every I/O call in turn: the failing call returns the
 *     error, later edits fail with it, and reopen gives the state before or
 *     after the edit in flight (before, always, when only writes fail);
 *   - corruption (a byte flipped in a middle record, garbage CURRENT, bad
 *     edits with valid checksums, unknown tags and kinds) is reported, a
 *     damaged last record is a torn tail;
 *   - validation refuses bad edits before writing anything;
 *   - overlapping_files / find_file against brute force;
 *   - obsolete-file detection with live old versions and pending files;
 *   - readers taking versions concurrently with edits (run under TSan).
 *
 * Knob: CAIRN_MANIFEST_ITERS scales the random loops (default 1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <xxhash.h>

#include "cairn.h"
#include "env/env.h"
#include "lsm/manifest.h"
#include "lsm/version.h"
#include "test_util.h"
#include "util/coding.h"

#define DIR "/db"
#define MAXF 128
#define NLEVELS 7

static uint64_t iters(void) { return tu_env_u64("CAIRN_MANIFEST_ITERS", 1); }

/* ---- the model ---- */

typedef struct mfile {
    uint64_t number;
    int level;
    uint8_t tier;
    uint32_t a, b;   /* user keys key(a) .. key(b) */
    uint64_t sv, lv; /* versions of the smallest / largest key */
    uint64_t size, minv, maxv, entries, tombs, created;
} mfile;

typedef struct model {
    mfile f[MAXF];
    size_t n;
    uint64_t next_file; /* recorded next file number (0: do not check) */
    uint64_t log_lsn, last_version;
    bool has_cp[CAIRN_LSM_MAX_LEVELS];
    uint32_t cp[CAIRN_LSM_MAX_LEVELS];
} model;

static void mkkey(char *out, uint32_t k) { snprintf(out, 16, "k%07u", k); }

static void make_meta(const mfile *f, cairn_file_meta *t, char *ka, char *kb)
{
    memset(t, 0, sizeof *t);
    mkkey(ka, f->a);
    mkkey(kb, f->b);
    t->number = f->number;
    t->level = (uint32_t)f->level;
    t->tier = f->tier;
    t->file_size = f->size;
    t->smallest = (cairn_ikey){(const uint8_t *)ka, 8, f->sv};
    t->largest = (cairn_ikey){(const uint8_t *)kb, 8, f->lv};
    t->min_version = f->minv;
    t->max_version = f->maxv;
    t->entries = f->entries;
    t->tombstones = f->tombs;
    t->created_us = f->created;
}

static int cmp_l0(const void *x, const void *y)
{
    const mfile *a = *(const mfile *const *)x, *b = *(const mfile *const *)y;
    return a->number > b->number ? -1 : a->number < b->number ? 1 : 0;
}

static int cmp_ln(const void *x, const void *y)
{
    const mfile *a = *(const mfile *const *)x, *b = *(const mfile *const *)y;
    return a->a < b->a ? -1 : a->a > b->a ? 1 : 0;
}

/* Does v hold exactly the model's state? why gets the first difference. */
static bool version_equals(const cairn_version *v, const model *md, char *why,
                           size_t wl)
{
    if (md->next_file && cairn_version_next_file(v) != md->next_file) {
        snprintf(why, wl, "next file %" PRIu64 " != %" PRIu64,
                 cairn_version_next_file(v), md->next_file);
        return false;
    }
    if (cairn_version_log_lsn(v) != md->log_lsn ||
        cairn_version_last_version(v) != md->last_version) {
        snprintf(why, wl, "counters differ");
        return false;
    }
    if (cairn_version_total_files(v) != md->n) {
        snprintf(why, wl, "%zu files, expected %zu",
                 cairn_version_total_files(v), md->n);
        return false;
    }
    for (int l = 0; l < CAIRN_LSM_MAX_LEVELS; l++) {
        const uint8_t *k;
        size_t kl;
        bool has = cairn_version_compact_pointer(v, l, &k, &kl);
        if (has != md->has_cp[l]) {
            snprintf(why, wl, "compaction pointer presence at level %d", l);
            return false;
        }
        if (has) {
            char e[16];
            mkkey(e, md->cp[l]);
            if (kl != 8 || memcmp(k, e, 8) != 0) {
                snprintf(why, wl, "compaction pointer at level %d", l);
                return false;
            }
        }
        const mfile *lf[MAXF];
        size_t n = 0;
        uint64_t bytes = 0;
        for (size_t i = 0; i < md->n; i++) {
            if (md->f[i].level == l) {
                lf[n++] = &md->f[i];
                bytes += md->f[i].size;
            }
        }
        qsort(lf, n, sizeof *lf, l == 0 ? cmp_l0 : cmp_ln);
        if (cairn_version_num_files(v, l) != n ||
            cairn_version_level_bytes(v, l) != bytes) {
            snprintf(why, wl, "level %d: %zu files / %" PRIu64
                     " bytes, expected %zu / %" PRIu64, l,
                     cairn_version_num_files(v, l),
                     cairn_version_level_bytes(v, l), n, bytes);
            return false;
        }
        for (size_t i = 0; i < n; i++) {
            const cairn_file_meta *m = cairn_version_file(v, l, i);
            const mfile *f = lf[i];
            char ka[16], kb[16];
            mkkey(ka, f->a);
            mkkey(kb, f->b);
            if (!m || m->number != f->number || m->level != (uint32_t)l ||
                m->tier != f->tier || m->file_size != f->size ||
                m->smallest.ulen != 8 || memcmp(m->smallest.ukey, ka, 8) ||
                m->largest.ulen != 8 || memcmp(m->largest.ukey, kb, 8) ||
                m->smallest.version != f->sv || m->largest.version != f->lv ||
                m->min_version != f->minv || m->max_version != f->maxv ||
                m->entries != f->entries || m->tombstones != f->tombs ||
                m->created_us != f->created) {
                snprintf(why, wl, "level %d file %zu (number %" PRIu64
                         ") differs", l, i, f->number);
                return false;
            }
        }
    }
    return true;
}

static void assert_version(const cairn_version *v, const model *md)
{
    char why[256];
    if (!version_equals(v, md, why, sizeof why)) {
        fprintf(stderr, "version mismatch: %s\n", why);
        fail();
    }
}

/* ---- random edits ---- */

static bool range_free(const model *md, int level, uint32_t a, uint32_t b)
{
    if (level == 0)
        return true;
    for (size_t i = 0; i < md->n; i++)
        if (md->f[i].level == level && !(b < md->f[i].a || a > md->f[i].b))
            return false;
    return true;
}

static void random_file(mfile *f, uint64_t number, int level, uint32_t a,
                        uint32_t b, uint64_t *rng)
{
    memset(f, 0, sizeof *f);
    f->number = number;
    f->level = level;
    f->a = a;
    f->b = b;
    f->lv = tu_rand(rng, 1000);
    f->sv = a == b ? f->lv + tu_rand(rng, 5) : tu_rand(rng, 1000);
    f->minv = tu_rand(rng, 1000);
    f->maxv = f->minv + tu_rand(rng, 1000);
    f->entries = tu_rand(rng, 100000);
    f->tombs = tu_rand(rng, f->entries + 1);
    f->size = 1 + tu_rand(rng, 1 << 20);
    f->created = tu_splitmix(rng) >> 8;
}

static bool is_touched(const uint64_t *t, int nt, uint64_t num)
{
    for (int i = 0; i < nt; i++)
        if (t[i] == num)
            return true;
    return false;
}

static void add_to_edit(cairn_version_edit *e, const mfile *f)
{
    cairn_file_meta t;
    char ka[16], kb[16];
    make_meta(f, &t, ka, kb);
    assert_int_equal(cairn_version_edit_add_file(e, f->level, &t), 0);
}

/* A random valid edit against cur; *after is the state it leads to (its
 * next_file left to the caller). File numbers come from m. */
static void gen_edit(const model *cur, cairn_manifest *m, uint64_t *rng,
                     cairn_version_edit *e, model *after)
{
    *after = *cur;
    cairn_version_edit_init(e);
    uint64_t touched[32];
    int nt = 0;
    int ops = 1 + (int)tu_rand(rng, 4);
    if (after->n > 80)
        ops += 4;
    for (int op = 0; op < ops && nt < 30; op++) {
        int kind = (int)tu_rand(rng, 8);
        if (after->n > 80 && op >= ops - 4)
            kind = 3;
        if (after->n + 2 >= MAXF && (kind <= 2))
            kind = 3;
        switch (kind) {
        case 0:
        case 1: { /* flush: a new level-0 file */
            uint32_t a = (uint32_t)tu_rand(rng, 1000);
            uint32_t b = a + (uint32_t)tu_rand(rng, 200);
            mfile *f = &after->f[after->n++];
            random_file(f, cairn_manifest_new_file_number(m), 0, a, b, rng);
            add_to_edit(e, f);
            touched[nt++] = f->number;
            break;
        }
        case 2: { /* compaction output at a deeper level */
            int l = 1 + (int)tu_rand(rng, NLEVELS - 1);
            uint32_t a = (uint32_t)tu_rand(rng, 1000);
            uint32_t b = a + (uint32_t)tu_rand(rng, 30);
            if (!range_free(after, l, a, b))
                break;
            mfile *f = &after->f[after->n++];
            random_file(f, cairn_manifest_new_file_number(m), l, a, b, rng);
            add_to_edit(e, f);
            touched[nt++] = f->number;
            break;
        }
        case 3:   /* delete */
        case 4:   /* move one level down */
        case 5: { /* tier change */
            if (after->n == 0)
                break;
            size_t i = (size_t)tu_rand(rng, after->n);
            mfile *f = &after->f[i];
            if (is_touched(touched, nt, f->number))
                break;
            if (kind == 3) {
                assert_int_equal(cairn_version_edit_delete_file(e, f->level,
                                                                f->number),
                                 0);
                touched[nt++] = f->number;
                *f = after->f[--after->n];
            } else if (kind == 4) {
                int nl = f->level + 1;
                if (nl >= NLEVELS)
                    break;
                mfile tmp = *f;
                tmp.level = nl;
                f->level = -1; /* not in its old level while checking */
                bool ok = range_free(after, nl, tmp.a, tmp.b);
                f->level = tmp.level - 1;
                if (!ok)
                    break;
                assert_int_equal(cairn_version_edit_delete_file(e, f->level,
                                                                f->number),
                                 0);
                *f = tmp;
                add_to_edit(e, f);
                touched[nt++] = f->number;
            } else {
                uint8_t t = (uint8_t)tu_rand(rng, 4);
                assert_int_equal(cairn_version_edit_set_tier(e, f->level,
                                                             f->number, t),
                                 0);
                f->tier = t;
                touched[nt++] = f->number;
            }
            break;
        }
        case 6:
            after->log_lsn += tu_rand(rng, 100);
            after->last_version += tu_rand(rng, 100);
            cairn_version_edit_set_log_lsn(e, after->log_lsn);
            cairn_version_edit_set_last_version(e, after->last_version);
            break;
        case 7: {
            int l = (int)tu_rand(rng, NLEVELS);
            uint32_t k = (uint32_t)tu_rand(rng, 1000);
            char key[16];
            mkkey(key, k);
            assert_int_equal(
                cairn_version_edit_set_compact_pointer(e, l, key, 8), 0);
            after->has_cp[l] = true;
            after->cp[l] = k;
            break;
        }
        }
    }
}

static cairn_manifest_options opts_with(bool create, uint64_t max_size)
{
    cairn_manifest_options o;
    cairn_manifest_options_init(&o);
    o.create_if_missing = create;
    if (max_size)
        o.max_size = max_size;
    return o;
}

static void reopen_and_check(cairn_env *env, cairn_manifest **m,
                             const model *md, uint64_t max_size)
{
    cairn_manifest_close(*m);
    cairn_manifest_options o = opts_with(false, max_size);
    cairn_version *v;
    cairn_manifest_info info;
    int rc = cairn_manifest_open_ex(env, DIR, &o, m, &v, &info);
    if (rc)
        fprintf(stderr, "reopen: %s\n", info.message);
    assert_int_equal(rc, 0);
    assert_version(v, md);
    assert_true(cairn_manifest_next_file_number(*m) >= md->next_file);
    cairn_version_unref(v);
}

/* Count MANIFEST-* files in DIR. */
static size_t count_manifests(cairn_env *env)
{
    char **names;
    size_t n, k = 0;
    assert_int_equal(cairn_env_list_dir(env, DIR, &names, &n), 0);
    for (size_t i = 0; i < n; i++)
        if (cairn_lsm_parse_manifest_name(names[i], NULL))
            k++;
    cairn_env_free_list(names, n);
    return k;
}

/* Apply random edits, compare after each, reopen now and then. */
static void random_run(uint64_t max_size, int edits, uint64_t seed,
                       int *rollovers)
{
    cairn_env *env = cairn_env_mem_new();
    assert_non_null(env);
    cairn_manifest_options o = opts_with(true, max_size);
    cairn_manifest *m;
    cairn_version *v;
    assert_int_equal(cairn_manifest_open_ex(env, DIR, &o, &m, &v, NULL), 0);
    model md;
    memset(&md, 0, sizeof md);
    md.next_file = cairn_version_next_file(v);
    assert_version(v, &md);
    cairn_version_unref(v);
    uint64_t rng = seed;
    char last_name[64];
    snprintf(last_name, sizeof last_name, "%s", cairn_manifest_file_name(m));
    *rollovers = 0;
    for (int i = 0; i < edits; i++) {
        cairn_version_edit e;
        model after;
        gen_edit(&md, m, &rng, &e, &after);
        cairn_version *nv;
        int rc = cairn_manifest_log_and_apply(m, &e, &nv);
        if (rc)
            fprintf(stderr, "edit %d: %s\n", i, cairn_manifest_errmsg(m));
        assert_int_equal(rc, 0);
        cairn_version_edit_clear(&e);
        after.next_file = cairn_manifest_next_file_number(m);
        md = after;
        assert_version(nv, &md);
        cairn_version_unref(nv);
        v = cairn_manifest_current(m);
        assert_version(v, &md);
        assert_int_equal(cairn_manifest_log_lsn(m), md.log_lsn);
        assert_int_equal(cairn_manifest_last_version(m), md.last_version);
        cairn_version_unref(v);
        if (strcmp(last_name, cairn_manifest_file_name(m)) != 0) {
            (*rollovers)++;
            snprintf(last_name, sizeof last_name, "%s",
                     cairn_manifest_file_name(m));
            assert_int_equal(count_manifests(env), 1);
        }
        if (tu_rand(&rng, 15) == 0) {
            reopen_and_check(env, &m, &md, max_size);
            snprintf(last_name, sizeof last_name, "%s",
                     cairn_manifest_file_name(m));
        }
    }
    reopen_and_check(env, &m, &md, max_size);
    assert_int_equal(count_manifests(env), 1);
    cairn_manifest_close(m);
    cairn_env_destroy(env);
}

static void test_random_edits_reopen(void **state)
{
    (void)state;
    int rolls;
    for (uint64_t s = 0; s < 3 * iters(); s++)
        random_run(0, 300, 100 + s, &rolls);
}

static void test_rollover(void **state)
{
    (void)state;
    int rolls;
    for (uint64_t s = 0; s < 3 * iters(); s++) {
        random_run(1024, 300, 200 + s, &rolls);
        assert_true(rolls >= 5);
    }
}

/* ---- power loss after acknowledged edits ---- */

static void test_power_loss(void **state)
{
    (void)state;
    uint64_t rng = 77;
    for (uint64_t cycle = 0; cycle < 60 * iters(); cycle++) {
        cairn_env *env = cairn_env_mem_new();
        uint64_t max_size = tu_rand(&rng, 2) ? 0 : 700 + tu_rand(&rng, 2000);
        cairn_manifest_options o = opts_with(true, max_size);
        cairn_manifest *m;
        cairn_version *v;
        assert_int_equal(cairn_manifest_open_ex(env, DIR, &o, &m, &v, NULL),
                         0);
        model md;
        memset(&md, 0, sizeof md);
        md.next_file = cairn_version_next_file(v);
        cairn_version_unref(v);
        for (int round = 0; round < 3; round++) {
            int edits = (int)tu_rand(&rng, 25);
            for (int i = 0; i < edits; i++) {
                cairn_version_edit e;
                model after;
                gen_edit(&md, m, &rng, &e, &after);
                assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL), 0);
                cairn_version_edit_clear(&e);
                after.next_file = cairn_manifest_next_file_number(m);
                md = after;
            }
            bool torn = tu_rand(&rng, 2) == 0;
            assert_int_equal(
                cairn_env_mem_power_loss(env, torn, tu_splitmix(&rng)), 0);
            reopen_and_check(env, &m, &md, max_size);
        }
        cairn_manifest_close(m);
        cairn_env_destroy(env);
    }
}

/* ---- a short scenario, for power cuts and faults at every call ---- */

typedef struct scen_result {
    bool created;    /* the creating open returned 0 */
    model acked;     /* state after the last acknowledged edit */
    model inflight;  /* what the failed edit would have made */
    bool has_inflight;
    int fail_rc;     /* first error returned by a manifest call */
    int stage;       /* 0 none, 1 creating open, 2 edit, 3 reopen */
} scen_result;

#define SCEN_MAX_SIZE 400

static void run_scenario(cairn_env *env, uint64_t seed, scen_result *r)
{
    memset(r, 0, sizeof *r);
    uint64_t rng = seed;
    cairn_manifest_options o = opts_with(true, SCEN_MAX_SIZE);
    cairn_manifest *m;
    cairn_version *v;
    int rc = cairn_manifest_open_ex(env, DIR, &o, &m, &v, NULL);
    if (rc) {
        r->fail_rc = rc;
        r->stage = 1;
        return;
    }
    r->created = true;
    r->acked.next_file = cairn_version_next_file(v);
    cairn_version_unref(v);
    for (int phase = 0; phase < 2; phase++) {
        int edits = phase == 0 ? 14 : 16;
        for (int i = 0; i < edits; i++) {
            cairn_version_edit e;
            model after;
            gen_edit(&r->acked, m, &rng, &e, &after);
            rc = cairn_manifest_log_and_apply(m, &e, NULL);
            cairn_version_edit_clear(&e);
            after.next_file = cairn_manifest_next_file_number(m);
            if (rc) {
                r->fail_rc = rc;
                r->stage = 2;
                r->inflight = after;
                r->has_inflight = true;
                assert_int_equal(cairn_manifest_error(m), rc);
                assert_true(cairn_manifest_errmsg(m)[0] != '\0');
                /* sticky: a later (valid) edit fails the same way */
                gen_edit(&r->acked, m, &rng, &e, &after);
                assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL),
                                 rc);
                cairn_version_edit_clear(&e);
                /* and the installed version is still the acknowledged one */
                v = cairn_manifest_current(m);
                assert_version(v, &r->acked);
                cairn_version_unref(v);
                cairn_manifest_close(m);
                return;
            }
            r->acked = after;
        }
        cairn_manifest_close(m);
        if (phase == 0) {
            o.create_if_missing = false;
            rc = cairn_manifest_open_ex(env, DIR, &o, &m, &v, NULL);
            if (rc) {
                r->fail_rc = rc;
                r->stage = 3;
                return;
            }
            assert_version(v, &r->acked);
            cairn_version_unref(v);
        }
    }
}

/* Reopen on the plain memory env and check the outcome of a scenario.
 * strict: the edit in flight must not have survived. extend: then log one
 * more edit and check it sticks. Returns 1 if the state is the in-flight
 * one, 0 if the acknowledged one (or nothing was ever created). */
static int check_after_failure(cairn_env *mem, const scen_result *r,
                               bool strict, bool extend)
{
    cairn_manifest_options o = opts_with(false, SCEN_MAX_SIZE);
    cairn_manifest *m;
    cairn_version *v;
    cairn_manifest_info info;
    int rc = cairn_manifest_open_ex(mem, DIR, &o, &m, &v, &info);
    if (!r->created && rc == CAIRN_ENOTFOUND)
        return 0; /* creation never completed: nothing was promised */
    if (rc)
        fprintf(stderr, "reopen after failure (stage %d, rc %d): %d %s\n",
                r->stage, r->fail_rc, rc, info.message);
    assert_int_equal(rc, 0);
    char why1[256], why2[256] = "";
    int which = -1;
    if (version_equals(v, &r->acked, why1, sizeof why1))
        which = 0;
    else if (r->has_inflight &&
             version_equals(v, &r->inflight, why2, sizeof why2))
        which = 1;
    if (which < 0 || (strict && which == 1)) {
        fprintf(stderr, "stage %d rc %d: neither state (%s / %s)%s\n",
                r->stage, r->fail_rc, why1, why2,
                which == 1 ? " [in-flight edit survived a failed write]" : "");
        fail();
    }
    if (!extend) {
        cairn_version_unref(v);
        cairn_manifest_close(m);
        return which;
    }
    /* The reopened manifest takes edits again, and they stick. */
    model md = which ? r->inflight : r->acked;
    uint64_t rng = 999;
    cairn_version_edit e;
    model after;
    gen_edit(&md, m, &rng, &e, &after);
    assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL), 0);
    cairn_version_edit_clear(&e);
    after.next_file = cairn_manifest_next_file_number(m);
    cairn_version_unref(v);
    reopen_and_check(mem, &m, &after, SCEN_MAX_SIZE);
    cairn_manifest_close(m);
    return which;
}

static uint64_t count_scenario_calls(uint64_t seed, uint32_t op_mask)
{
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *fe = cairn_env_fault_new(mem);
    cairn_fault_rule rule = {.op_mask = op_mask};
    cairn_env_fault_set(fe, &rule);
    scen_result r;
    run_scenario(fe, seed, &r);
    assert_int_equal(r.fail_rc, 0);
    assert_true(r.acked.n > 0);
    uint64_t calls = cairn_env_fault_calls(fe);
    cairn_env_destroy(fe);
    cairn_env_destroy(mem);
    return calls;
}

static void test_power_cut_every_call(void **state)
{
    (void)state;
    for (uint64_t s = 0; s < iters(); s++) {
        uint64_t seed = 4242 + s;
        uint64_t total = count_scenario_calls(seed, 0);
        assert_true(total > 30);
        int outcomes[2] = {0, 0};
        for (uint64_t n = 1; n <= total + 1; n++) {
            for (int torn = 0; torn < 2; torn++) {
                cairn_env *mem = cairn_env_mem_new();
                cairn_env *fe = cairn_env_fault_new(mem);
                cairn_fault_rule rule = {.power_cut_at = n,
                                         .torn = torn != 0,
                                         .seed = n * 31 + (uint64_t)torn};
                cairn_env_fault_set(fe, &rule);
                scen_result r;
                run_scenario(fe, seed, &r);
                if (n <= total) {
                    assert_true(cairn_env_fault_power_is_cut(fe));
                    /* 0 only if the cut hit a best-effort step last */
                    assert_true(r.fail_rc == CAIRN_EIO || r.fail_rc == 0);
                } else {
                    assert_int_equal(r.fail_rc, 0);
                    /* power goes after a clean close */
                    assert_int_equal(cairn_env_mem_power_loss(mem, torn != 0,
                                                              n),
                                     0);
                }
                int which = check_after_failure(mem, &r, false, false);
                outcomes[which]++;
                /* what an open saw survives another cut */
                assert_int_equal(cairn_env_mem_power_loss(mem, torn != 0,
                                                          n + 7),
                                 0);
                assert_int_equal(check_after_failure(mem, &r, false, true),
                                 which);
                cairn_env_destroy(fe);
                cairn_env_destroy(mem);
            }
        }
        /* Most cuts lose the edit in flight; it survives only when a torn
         * block happens to keep its whole record (seed-dependent). */
        assert_true(outcomes[0] > outcomes[1]);
    }
}

static void fault_sweep(uint32_t op_mask, bool strict)
{
    uint64_t seed = 5151;
    uint64_t total = count_scenario_calls(seed, op_mask);
    assert_true(total > 5);
    for (uint64_t k = 1; k <= total; k++) {
        for (int variant = 0; variant < 3; variant++) {
            cairn_env *mem = cairn_env_mem_new();
            cairn_env *fe = cairn_env_fault_new(mem);
            int err = variant == 1 ? CAIRN_ENOSPC : CAIRN_EIO;
            cairn_fault_rule rule = {.op_mask = op_mask,
                                     .fail_at = k,
                                     .error = err,
                                     .short_write = variant == 2,
                                     .seed = k};
            cairn_env_fault_set(fe, &rule);
            scen_result r;
            run_scenario(fe, seed, &r);
            assert_int_equal(cairn_env_fault_injected(fe), 1);
            if (r.fail_rc != 0) {
                /* the injected error comes back as such */
                assert_int_equal(r.fail_rc, err);
            } else {
                /* only a best-effort step (unlinking an old manifest) may
                 * swallow a failure */
                assert_false(strict);
            }
            int which = check_after_failure(mem, &r, strict, false);
            /* and after a power cut on top: the state the open saw */
            assert_int_equal(cairn_env_mem_power_loss(mem, variant == 2, k), 0);
            assert_int_equal(check_after_failure(mem, &r, strict, true),
                             which);
            cairn_env_destroy(fe);
            cairn_env_destroy(mem);
        }
    }
}

static void test_fail_every_call(void **state)
{
    (void)state;
    fault_sweep(0, false);
}

static void test_fail_every_write(void **state)
{
    (void)state;
    /* A failed write never leaves a record that comes back. */
    fault_sweep(CAIRN_OPMASK(CAIRN_OP_WRITE), true);
}

/* ---- corruption ---- */

static void read_whole(cairn_env *env, const char *path, uint8_t **buf,
                       size_t *len)
{
    cairn_file *f;
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_READ, &f), 0);
    uint64_t size;
    assert_int_equal(cairn_file_size(f, &size), 0);
    *buf = malloc(size + 1);
    assert_non_null(*buf);
    size_t n = 0;
    assert_int_equal(cairn_file_read_at(f, 0, *buf, size, &n), 0);
    assert_int_equal(n, size);
    *len = (size_t)size;
    cairn_file_close(f);
}

static void write_whole(cairn_env *env, const char *path, const void *buf,
                        size_t len)
{
    cairn_file *f;
    assert_int_equal(cairn_env_open(env, path,
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                        CAIRN_OPEN_TRUNC,
                                    &f),
                     0);
    assert_int_equal(cairn_file_write_at(f, 0, buf, len), 0);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), 0);
    cairn_file_close(f);
}

/* A manifest with a snapshot and `edits` edit records (no rollover); the
 * models after each edit in states[0..edits]. Returns the manifest path. */
static char *build_manifest(cairn_env *env, int edits, model *states)
{
    cairn_manifest_options o = opts_with(true, 0);
    cairn_manifest *m;
    cairn_version *v;
    assert_int_equal(cairn_manifest_open_ex(env, DIR, &o, &m, &v, NULL), 0);
    memset(&states[0], 0, sizeof states[0]);
    states[0].next_file = cairn_version_next_file(v);
    cairn_version_unref(v);
    uint64_t rng = 11;
    for (int i = 0; i < edits; i++) {
        cairn_version_edit e;
        gen_edit(&states[i], m, &rng, &e, &states[i + 1]);
        assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL), 0);
        cairn_version_edit_clear(&e);
        states[i + 1].next_file = cairn_manifest_next_file_number(m);
    }
    char *path = malloc(128);
    snprintf(path, 128, DIR "/%s", cairn_manifest_file_name(m));
    cairn_manifest_close(m);
    return path;
}

/* Offsets of the records of a manifest image. */
static size_t record_offsets(const uint8_t *buf, size_t len, size_t *offs,
                             size_t max)
{
    size_t n = 0, off = CAIRN_MANIFEST_HEADER_SIZE;
    while (off + 16 <= len && n < max) {
        offs[n++] = off;
        off += 16 + cairn_get_u32(buf + off + 8);
    }
    return n;
}

static int open_info(cairn_env *env, cairn_manifest_info *info,
                     cairn_version **v)
{
    cairn_manifest_options o = opts_with(false, 0);
    cairn_manifest *m;
    int rc = cairn_manifest_open_ex(env, DIR, &o, &m, v, info);
    if (rc == 0)
        cairn_manifest_close(m);
    return rc;
}

static void test_corrupt_middle_record(void **state)
{
    (void)state;
    for (int where = 0; where < 3; where++) {
        cairn_env *env = cairn_env_mem_new();
        model st[7];
        char *path = build_manifest(env, 6, st);
        uint8_t *buf;
        size_t len;
        read_whole(env, path, &buf, &len);
        size_t offs[16];
        assert_int_equal(record_offsets(buf, len, offs, 16), 7);
        /* damage record 3: its payload, its checksum, or its length */
        size_t at = where == 0   ? offs[3] + 16 + 3
                    : where == 1 ? offs[3] + 2
                                 : offs[3] + 9;
        buf[at] ^= 0x40;
        write_whole(env, path, buf, len);
        cairn_manifest_info info;
        cairn_version *v = NULL;
        assert_int_equal(open_info(env, &info, &v), CAIRN_ECORRUPT);
        assert_null(v);
        char off_text[32];
        snprintf(off_text, sizeof off_text, "offset %zu", offs[3]);
        assert_non_null(strstr(info.message, "MANIFEST-"));
        assert_non_null(strstr(info.message, off_text));
        assert_int_equal(info.error_offset, offs[3]);
        /* nothing was changed: still corrupt */
        assert_int_equal(open_info(env, &info, &v), CAIRN_ECORRUPT);
        free(buf);
        free(path);
        cairn_env_destroy(env);
    }
}

static void test_damaged_last_record_is_torn(void **state)
{
    (void)state;
    for (int how = 0; how < 3; how++) {
        cairn_env *env = cairn_env_mem_new();
        model st[6];
        char *path = build_manifest(env, 5, st);
        uint8_t *buf;
        size_t len;
        read_whole(env, path, &buf, &len);
        size_t offs[16];
        assert_int_equal(record_offsets(buf, len, offs, 16), 6);
        size_t newlen = len;
        if (how == 0) {
            buf[len - 2] ^= 1; /* checksum mismatch in the last record */
        } else if (how == 1) {
            newlen = offs[5] + 10; /* partial header */
        } else {
            newlen = len - 3; /* partial payload */
        }
        write_whole(env, path, buf, newlen);
        cairn_manifest_info info;
        cairn_version *v;
        assert_int_equal(open_info(env, &info, &v), 0);
        assert_version(v, &st[4]);
        cairn_version_unref(v);
        assert_int_equal(info.torn_offset, offs[5]);
        assert_int_equal(info.torn_bytes, newlen - offs[5]);
        assert_non_null(strstr(info.message, "torn"));
        /* the file was cut back: a second open finds it clean */
        free(buf);
        read_whole(env, path, &buf, &len);
        assert_int_equal(len, offs[5]);
        assert_int_equal(open_info(env, &info, &v), 0);
        assert_int_equal(info.torn_bytes, 0);
        assert_version(v, &st[4]);
        cairn_version_unref(v);
        free(buf);
        free(path);
        cairn_env_destroy(env);
    }
}

static void test_read_only_open(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    model st[4];
    char *path = build_manifest(env, 3, st);
    uint8_t *buf;
    size_t len;
    read_whole(env, path, &buf, &len);
    write_whole(env, path, buf, len - 1); /* torn last record */
    cairn_manifest_options o = opts_with(false, 0);
    o.read_only = true;
    cairn_manifest *m;
    cairn_version *v;
    cairn_manifest_info info;
    assert_int_equal(cairn_manifest_open_ex(env, DIR, &o, &m, &v, &info), 0);
    assert_version(v, &st[2]);
    assert_true(info.torn_bytes > 0);
    cairn_version_edit e;
    cairn_version_edit_init(&e);
    cairn_version_edit_set_log_lsn(&e, 1u << 30);
    assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL),
                     CAIRN_EREADONLY);
    cairn_version_edit_clear(&e);
    cairn_version_unref(v);
    cairn_manifest_close(m);
    uint8_t *buf2;
    size_t len2;
    read_whole(env, path, &buf2, &len2);
    assert_int_equal(len2, len - 1); /* not truncated */
    /* read-only never creates */
    cairn_env *empty = cairn_env_mem_new();
    o.create_if_missing = true;
    assert_int_equal(cairn_manifest_open_ex(empty, DIR, &o, &m, NULL, NULL),
                     CAIRN_ENOTFOUND);
    cairn_env_destroy(empty);
    free(buf);
    free(buf2);
    free(path);
    cairn_env_destroy(env);
}

static void test_current_file(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_manifest *m;
    /* no CURRENT, no create */
    assert_int_equal(cairn_manifest_open(env, DIR, false, &m, NULL),
                     CAIRN_ENOTFOUND);
    model st[3];
    char *path = build_manifest(env, 2, st);
    const char *name = strrchr(path, '/') + 1;
    char good[64];
    snprintf(good, sizeof good, "%s\n", name);
    const char *bad[] = {
        "garbage",
        "",
        "MANIFEST-000099\n", /* names a missing manifest */
        "MANIFEST-1\n",      /* not the canonical form */
        "MANIFEST-000002",   /* no newline */
        "MANIFEST-000002\n\n",
        "MANIFEST-00000x\n",
        "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_whole(env, DIR "/CURRENT", bad[i], strlen(bad[i]));
        cairn_manifest_info info;
        cairn_version *v;
        assert_int_equal(open_info(env, &info, &v), CAIRN_ECORRUPT);
        assert_true(info.message[0] != '\0');
        /* create_if_missing never overrides a damaged CURRENT */
        assert_int_equal(cairn_manifest_open(env, DIR, true, &m, NULL),
                         CAIRN_ECORRUPT);
    }
    write_whole(env, DIR "/CURRENT", good, strlen(good));
    cairn_version *v;
    cairn_manifest_info info;
    assert_int_equal(open_info(env, &info, &v), 0);
    assert_version(v, &st[2]);
    cairn_version_unref(v);
    free(path);
    cairn_env_destroy(env);
}

/* Append one record (valid framing) to the manifest at path. */
static void append_record(cairn_env *env, const char *path, uint8_t kind,
                          const uint8_t *payload, size_t plen)
{
    uint8_t *buf;
    size_t len;
    read_whole(env, path, &buf, &len);
    buf = realloc(buf, len + 16 + plen);
    uint8_t *h = buf + len;
    memset(h, 0, 16);
    cairn_put_u32(h + 8, (uint32_t)plen);
    h[12] = kind;
    cairn_put_u64(h, XXH3_64bits_withSeed(h + 8, 8, XXH3_64bits(payload, plen)));
    memcpy(h + 16, payload, plen);
    write_whole(env, path, buf, len + 16 + plen);
    free(buf);
}

static void test_bad_records(void **state)
{
    (void)state;
    for (int what = 0; what < 9; what++) {
        cairn_env *env = cairn_env_mem_new();
        model st[4];
        char *path = build_manifest(env, 3, st);
        cairn_version_edit e;
        cairn_version_edit_init(&e);
        int expect = CAIRN_ECORRUPT;
        uint8_t kind = CAIRN_MANIFEST_EDIT;
        uint8_t raw[8];
        size_t rawlen = 0;
        const mfile *some = st[3].n ? &st[3].f[0] : NULL;
        assert_non_null(some);
        switch (what) {
        case 0: /* delete a file that is not there */
            cairn_version_edit_delete_file(&e, 3, 424242);
            break;
        case 1: { /* add a file that is there */
            add_to_edit(&e, some);
            break;
        }
        case 2: { /* two overlapping files in level 1 */
            mfile a, b;
            uint64_t rng = 5;
            random_file(&a, 90001, 1, 2000, 2010, &rng);
            random_file(&b, 90002, 1, 2010, 2020, &rng);
            add_to_edit(&e, &a);
            add_to_edit(&e, &b);
            break;
        }
        case 3: /* unknown tag */
            raw[0] = 99;
            raw[1] = 1;
            rawlen = 2;
            expect = CAIRN_EVERSION;
            break;
        case 4: /* unknown record kind */
            cairn_version_edit_set_log_lsn(&e, st[3].log_lsn + 1);
            kind = 9;
            expect = CAIRN_EVERSION;
            break;
        case 5: /* a second snapshot */
            cairn_version_edit_set_log_lsn(&e, st[3].log_lsn + 1);
            kind = CAIRN_MANIFEST_SNAPSHOT;
            break;
        case 6: /* truncated varint */
            raw[0] = 2;
            raw[1] = 0x80;
            rawlen = 2;
            break;
        case 7: /* level out of range */
            raw[0] = 5;
            raw[1] = 8;
            raw[2] = 1;
            rawlen = 3;
            break;
        case 8: /* log LSN going down */
            cairn_version_edit_set_log_lsn(&e, 0);
            if (st[3].log_lsn == 0) {
                cairn_version_edit_clear(&e);
                raw[0] = 0; /* tag 0 instead */
                rawlen = 1;
            }
            break;
        }
        uint8_t *payload = raw;
        size_t plen = rawlen;
        if (!rawlen)
            assert_int_equal(cairn_version_edit_encode(&e, &payload, &plen),
                             0);
        uint8_t *before;
        size_t blen;
        read_whole(env, path, &before, &blen);
        append_record(env, path, kind, payload, plen);
        if (!rawlen)
            free(payload);
        cairn_version_edit_clear(&e);
        cairn_manifest_info info;
        cairn_version *v = NULL;
        int rc = open_info(env, &info, &v);
        if (rc != expect)
            fprintf(stderr, "case %d: rc %d, %s\n", what, rc, info.message);
        assert_int_equal(rc, expect);
        char off_text[32];
        snprintf(off_text, sizeof off_text, "offset %zu", blen);
        assert_non_null(strstr(info.message, off_text));
        assert_int_equal(info.error_offset, blen);
        free(before);
        free(path);
        cairn_env_destroy(env);
    }
}

static void test_header_checks(void **state)
{
    (void)state;
    for (int what = 0; what < 3; what++) {
        cairn_env *env = cairn_env_mem_new();
        model st[2];
        char *path = build_manifest(env, 1, st);
        uint8_t *buf;
        size_t len;
        read_whole(env, path, &buf, &len);
        int expect = CAIRN_ECORRUPT;
        if (what == 0) {
            buf[0] = 'X'; /* magic */
        } else if (what == 1) {
            cairn_put_u32(buf + 8, 2); /* a newer format version */
            cairn_put_u64(buf + 24, XXH3_64bits(buf, 24));
            expect = CAIRN_EVERSION;
        } else {
            buf[CAIRN_MANIFEST_HEADER_SIZE + 20] ^= 1; /* the snapshot */
        }
        write_whole(env, path, buf, len);
        cairn_manifest_info info;
        cairn_version *v;
        assert_int_equal(open_info(env, &info, &v), expect);
        assert_non_null(strstr(info.message, "MANIFEST-"));
        free(buf);
        free(path);
        cairn_env_destroy(env);
    }
}

/* ---- validation ---- */

static void test_validation(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_env *fe = cairn_env_fault_new(env);
    cairn_manifest *m;
    assert_int_equal(cairn_manifest_open(fe, DIR, true, &m, NULL), 0);
    uint64_t rng = 9;
    mfile a, b, c;
    random_file(&a, cairn_manifest_new_file_number(m), 1, 100, 200, &rng);
    random_file(&b, cairn_manifest_new_file_number(m), 1, 300, 400, &rng);
    random_file(&c, cairn_manifest_new_file_number(m), 0, 150, 350, &rng);
    cairn_version_edit e;
    cairn_version_edit_init(&e);
    add_to_edit(&e, &a);
    add_to_edit(&e, &b);
    add_to_edit(&e, &c);
    cairn_version_edit_set_log_lsn(&e, 50);
    cairn_version_edit_set_last_version(&e, 60);
    assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL), 0);
    cairn_version_edit_clear(&e);

    uint64_t size = cairn_manifest_file_size(m);
    cairn_fault_rule count_writes = {.op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE)};
    cairn_env_fault_set(fe, &count_writes);
    for (int what = 0; what < 12; what++) {
        cairn_version_edit_init(&e);
        mfile x;
        switch (what) {
        case 0: /* overlaps a at user key 200 */
            random_file(&x, 50, 1, 200, 250, &rng);
            add_to_edit(&e, &x);
            break;
        case 1: /* inside b */
            random_file(&x, 50, 1, 310, 320, &rng);
            add_to_edit(&e, &x);
            break;
        case 2: /* two new ones overlapping each other */
            random_file(&x, 50, 2, 10, 20, &rng);
            add_to_edit(&e, &x);
            random_file(&x, 51, 2, 20, 30, &rng);
            add_to_edit(&e, &x);
            break;
        case 3: /* delete a missing file */
            cairn_version_edit_delete_file(&e, 1, 777);
            break;
        case 4: /* delete a file from the wrong level */
            cairn_version_edit_delete_file(&e, 2, a.number);
            break;
        case 5: /* add an existing number (at another level) */
            x = a;
            x.level = 3;
            add_to_edit(&e, &x);
            break;
        case 6: /* beyond the configured levels */
            random_file(&x, 50, NLEVELS, 10, 20, &rng);
            add_to_edit(&e, &x);
            break;
        case 7: /* counters going down */
            cairn_version_edit_set_log_lsn(&e, 49);
            break;
        case 8:
            cairn_version_edit_set_last_version(&e, 59);
            break;
        case 9: /* tier change of a missing file */
            cairn_version_edit_set_tier(&e, 0, a.number, 1);
            break;
        case 10: { /* smallest above largest */
            random_file(&x, 50, 2, 10, 20, &rng);
            x.a = 30;
            add_to_edit(&e, &x);
            break;
        }
        case 11: /* the same file deleted twice */
            cairn_version_edit_delete_file(&e, 1, a.number);
            cairn_version_edit_delete_file(&e, 1, a.number);
            break;
        }
        int rc = cairn_manifest_log_and_apply(m, &e, NULL);
        if (rc != CAIRN_EINVAL)
            fprintf(stderr, "validation case %d: rc %d\n", what, rc);
        assert_int_equal(rc, CAIRN_EINVAL);
        assert_true(cairn_manifest_errmsg(m)[0] != '\0');
        cairn_version_edit_clear(&e);
    }
    assert_int_equal(cairn_env_fault_calls(fe), 0); /* nothing written */
    assert_int_equal(cairn_manifest_file_size(m), size);
    assert_int_equal(cairn_manifest_error(m), 0);

    /* A move (delete + add of one number) and an adjacent file are fine;
     * so is a tier change of a file moved in the same edit. */
    cairn_version_edit_init(&e);
    cairn_version_edit_delete_file(&e, 1, a.number);
    mfile moved = a;
    moved.level = 2;
    add_to_edit(&e, &moved);
    cairn_version_edit_set_tier(&e, 2, a.number, 3);
    mfile adj;
    random_file(&adj, cairn_manifest_new_file_number(m), 1, 201, 299, &rng);
    add_to_edit(&e, &adj);
    cairn_version *v;
    assert_int_equal(cairn_manifest_log_and_apply(m, &e, &v), 0);
    cairn_version_edit_clear(&e);
    int lvl = -1;
    const cairn_file_meta *fm = cairn_version_lookup(v, a.number, &lvl);
    assert_non_null(fm);
    assert_int_equal(lvl, 2);
    assert_int_equal(fm->tier, 3);
    assert_int_equal(cairn_version_num_files(v, 1), 2);
    cairn_version_unref(v);
    cairn_manifest_close(m);

    /* Fewer levels configured than files occupy: the deep file can still
     * be deleted, but nothing is added that deep. */
    cairn_manifest_options o = opts_with(false, 0);
    o.num_levels = 9;
    assert_int_equal(cairn_manifest_open_ex(fe, DIR, &o, &m, NULL, NULL),
                     CAIRN_EINVAL);
    o.num_levels = 2;
    assert_int_equal(cairn_manifest_open_ex(fe, DIR, &o, &m, &v, NULL), 0);
    assert_int_equal(cairn_version_num_files(v, 2), 1); /* replay: any level */
    cairn_version_unref(v);
    cairn_version_edit_init(&e);
    random_file(&adj, 60, 2, 900, 910, &rng);
    add_to_edit(&e, &adj);
    assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL), CAIRN_EINVAL);
    cairn_version_edit_clear(&e);
    cairn_version_edit_init(&e);
    cairn_version_edit_set_compact_pointer(&e, 2, "k", 1);
    assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL), CAIRN_EINVAL);
    cairn_version_edit_clear(&e);
    cairn_version_edit_init(&e);
    cairn_version_edit_delete_file(&e, 2, a.number);
    moved.level = 1;
    moved.a = 500; /* disjoint from level 1's files */
    moved.b = 600;
    add_to_edit(&e, &moved);
    assert_int_equal(cairn_manifest_log_and_apply(m, &e, &v), 0);
    cairn_version_edit_clear(&e);
    assert_int_equal(cairn_version_num_files(v, 2), 0);
    assert_int_equal(cairn_version_num_files(v, 1), 3);
    cairn_version_unref(v);
    cairn_manifest_close(m);
    cairn_env_destroy(fe);
    cairn_env_destroy(env);
}

/* ---- lookups against brute force ---- */

typedef struct rkey {
    uint8_t b[4];
    size_t n;
} rkey;

static void rand_key(uint64_t *rng, rkey *k)
{
    static const uint8_t alpha[] = {0x00, 'a', 'b', 0xff};
    k->n = (size_t)tu_rand(rng, 5);
    for (size_t i = 0; i < k->n; i++)
        k->b[i] = alpha[tu_rand(rng, 4)];
}

static int rkey_cmp(const void *x, const void *y)
{
    const rkey *a = x, *b = y;
    return cairn_key_cmp(a->b, a->n, b->b, b->n);
}

static bool brute_meets(const cairn_file_meta *m, const rkey *lo,
                        const rkey *hi)
{
    if (lo && cairn_key_cmp(m->largest.ukey, m->largest.ulen, lo->b,
                                 lo->n) < 0)
        return false;
    if (hi && cairn_key_cmp(m->smallest.ukey, m->smallest.ulen, hi->b,
                                 hi->n) > 0)
        return false;
    return true;
}

static void test_overlap_and_find(void **state)
{
    (void)state;
    assert_true(cairn_key_cmp("ab", 2, "abc", 3) < 0);
    assert_true(cairn_key_cmp("\xff", 1, "a", 1) > 0);
    assert_true(cairn_key_cmp("", 0, "\x00", 1) < 0);
    cairn_ikey x = {(const uint8_t *)"k", 1, 5}, y = {(const uint8_t *)"k", 1, 9};
    assert_true(cairn_ikey_compare(&y, &x) < 0); /* newer first */

    uint64_t rng = 31337;
    for (uint64_t round = 0; round < 40 * iters(); round++) {
        cairn_version *empty = cairn_version_new_empty();
        assert_non_null(empty);
        cairn_version_edit e;
        cairn_version_edit_init(&e);
        uint64_t num = 1;
        for (int l = 0; l < 4; l++) {
            rkey keys[64];
            size_t nk = 2 + (size_t)tu_rand(&rng, 40);
            for (size_t i = 0; i < nk; i++)
                rand_key(&rng, &keys[i]);
            qsort(keys, nk, sizeof keys[0], rkey_cmp);
            size_t u = 0;
            for (size_t i = 0; i < nk; i++)
                if (u == 0 || rkey_cmp(&keys[u - 1], &keys[i]) != 0)
                    keys[u++] = keys[i];
            size_t i = 0;
            while (i < u) {
                cairn_file_meta t;
                memset(&t, 0, sizeof t);
                size_t j;
                if (l == 0) {
                    i = (size_t)tu_rand(&rng, u);
                    j = i + (size_t)tu_rand(&rng, u - i);
                } else {
                    j = i + (tu_rand(&rng, 3) == 0 ? 0 : 1);
                    if (j >= u)
                        j = i;
                }
                t.number = num++;
                t.smallest = (cairn_ikey){keys[i].b, keys[i].n, 100};
                t.largest = (cairn_ikey){keys[j].b, keys[j].n, i == j ? 1 : 7};
                t.file_size = 10;
                assert_int_equal(cairn_version_edit_add_file(&e, l, &t), 0);
                if (l == 0) {
                    if (tu_rand(&rng, 4) == 0)
                        break;
                    continue;
                }
                i = j + 1 + (size_t)tu_rand(&rng, 2);
            }
        }
        cairn_version *v;
        char err[256];
        int rc = cairn_version_apply(empty, &e, NLEVELS, &v, err, sizeof err);
        if (rc)
            fprintf(stderr, "apply: %s\n", err);
        assert_int_equal(rc, 0);
        cairn_version_edit_clear(&e);
        cairn_version_unref(empty);

        for (int q = 0; q < 200; q++) {
            rkey lo, hi, k;
            rand_key(&rng, &lo);
            rand_key(&rng, &hi);
            rand_key(&rng, &k);
            if (rkey_cmp(&lo, &hi) > 0) {
                rkey t = lo;
                lo = hi;
                hi = t;
            }
            const rkey *plo = tu_rand(&rng, 5) == 0 ? NULL : &lo;
            const rkey *phi = tu_rand(&rng, 5) == 0 ? NULL : &hi;
            for (int l = 0; l < 4; l++) {
                const cairn_file_meta **out;
                size_t n;
                assert_int_equal(cairn_version_overlapping_files(
                                     v, l, plo ? plo->b : NULL,
                                     plo ? plo->n : 0, phi ? phi->b : NULL,
                                     phi ? phi->n : 0, &out, &n),
                                 0);
                size_t k2 = 0;
                for (size_t i = 0; i < cairn_version_num_files(v, l); i++) {
                    const cairn_file_meta *m = cairn_version_file(v, l, i);
                    if (brute_meets(m, plo, phi)) {
                        assert_true(k2 < n);
                        assert_ptr_equal(out[k2], m);
                        k2++;
                    }
                }
                assert_int_equal(k2, n);
                free(out);
                if (l == 0)
                    continue;
                /* find: the one file whose range covers k, if any */
                const cairn_file_meta *want = NULL;
                size_t first_ge = cairn_version_num_files(v, l);
                for (size_t i = 0; i < cairn_version_num_files(v, l); i++) {
                    const cairn_file_meta *m = cairn_version_file(v, l, i);
                    if (brute_meets(m, &k, &k)) {
                        assert_null(want);
                        want = m;
                    }
                    if (first_ge == cairn_version_num_files(v, l) &&
                        cairn_key_cmp(m->largest.ukey, m->largest.ulen,
                                           k.b, k.n) >= 0)
                        first_ge = i;
                }
                assert_ptr_equal(cairn_version_find_file(v, l, k.b, k.n),
                                 want);
                assert_int_equal(cairn_version_find_index(v, l, k.b, k.n),
                                 first_ge);
            }
        }
        /* level-0 order and level >= 1 order */
        for (size_t i = 1; i < cairn_version_num_files(v, 0); i++)
            assert_true(cairn_version_file(v, 0, i - 1)->number >
                        cairn_version_file(v, 0, i)->number);
        for (int l = 1; l < 4; l++)
            for (size_t i = 1; i < cairn_version_num_files(v, l); i++) {
                const cairn_file_meta *p = cairn_version_file(v, l, i - 1);
                const cairn_file_meta *c = cairn_version_file(v, l, i);
                assert_true(cairn_key_cmp(p->largest.ukey,
                                               p->largest.ulen, c->smallest.ukey,
                                               c->smallest.ulen) < 0);
            }
        cairn_version_unref(v);
    }
}

/* ---- encoding ---- */

static void test_encode_decode(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_manifest *m;
    assert_int_equal(cairn_manifest_open(env, DIR, true, &m, NULL), 0);
    uint64_t rng = 8;
    model md;
    memset(&md, 0, sizeof md);
    for (int i = 0; i < 200; i++) {
        cairn_version_edit e, d;
        model after;
        gen_edit(&md, m, &rng, &e, &after);
        if (tu_rand(&rng, 2))
            cairn_version_edit_set_next_file(&e, tu_splitmix(&rng));
        uint8_t *p1, *p2;
        size_t l1, l2;
        assert_int_equal(cairn_version_edit_encode(&e, &p1, &l1), 0);
        char err[256];
        assert_int_equal(cairn_version_edit_decode(p1, l1, &d, err, sizeof err),
                         0);
        assert_int_equal(cairn_version_edit_encode(&d, &p2, &l2), 0);
        assert_int_equal(l1, l2);
        assert_memory_equal(p1, p2, l1);
        cairn_version_edit_clear(&d);
        /* every strict prefix decodes or is refused; never crashes */
        for (size_t cut = 0; cut < l1; cut++) {
            int rc = cairn_version_edit_decode(p1, cut, &d, err, sizeof err);
            assert_true(rc == 0 || rc == CAIRN_ECORRUPT);
            if (rc)
                assert_true(err[0] != '\0');
            cairn_version_edit_clear(&d);
        }
        free(p1);
        free(p2);
        cairn_version_edit_clear(&e);
        md = after; /* keep generating against a growing model */
        if (md.n > 60)
            memset(&md, 0, sizeof md);
    }
    cairn_manifest_close(m);
    cairn_env_destroy(env);
}

/* ---- obsolete files and file numbers ---- */

static void touch(cairn_env *env, const char *name)
{
    char path[128];
    snprintf(path, sizeof path, DIR "/%s", name);
    write_whole(env, path, "x", 1);
}

static void test_obsolete_files(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_manifest *m;
    assert_int_equal(cairn_manifest_open(env, DIR, true, &m, NULL), 0);
    uint64_t rng = 3;
    mfile f[4];
    cairn_version_edit e;
    cairn_version_edit_init(&e);
    for (int i = 0; i < 4; i++) {
        random_file(&f[i], cairn_manifest_new_file_number(m), i % 2,
                    (uint32_t)i * 100, (uint32_t)i * 100 + 50, &rng);
        add_to_edit(&e, &f[i]);
    }
    assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL), 0);
    cairn_version_edit_clear(&e);
    uint64_t garbage = cairn_manifest_new_file_number(m); /* never added */
    uint64_t pending = cairn_manifest_new_file_number(m); /* being written */
    uint64_t later = cairn_manifest_new_file_number(m);   /* finished, unused */
    cairn_version *old = cairn_manifest_current(m);
    /* compaction: f[1] goes away */
    cairn_version_edit_init(&e);
    cairn_version_edit_delete_file(&e, f[1].level, f[1].number);
    assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL), 0);
    cairn_version_edit_clear(&e);

    char names[12][32];
    int nn = 0;
    for (int i = 0; i < 4; i++)
        cairn_lsm_sst_name(names[nn++], 32, f[i].number);
    cairn_lsm_sst_name(names[nn++], 32, garbage);
    cairn_lsm_sst_name(names[nn++], 32, pending);
    cairn_lsm_sst_name(names[nn++], 32, later);
    cairn_lsm_sst_name(names[nn++], 32, 999999); /* not handed out */
    snprintf(names[nn++], 32, "0001.sst");
    snprintf(names[nn++], 32, "0000002.sst"); /* not canonical */
    snprintf(names[nn++], 32, "%s", cairn_manifest_file_name(m));
    snprintf(names[nn++], 32, "000003.sst.tmp");
    char *list[12];
    for (int i = 0; i < nn; i++)
        list[i] = names[i];
    uint64_t *out;
    size_t n;
    /* old still holds f[1]; `pending` is the floor */
    assert_int_equal(cairn_manifest_obsolete_files(m, list, (size_t)nn,
                                                   pending, &out, &n),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], garbage);
    free(out);
    cairn_version_unref(old);
    assert_int_equal(cairn_manifest_obsolete_files(m, list, (size_t)nn,
                                                   pending, &out, &n),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(out[0], f[1].number);
    assert_int_equal(out[1], garbage);
    free(out);
    /* nothing pending: `later` and `pending` are garbage too, 999999 is not
     * ours to judge */
    assert_int_equal(cairn_manifest_obsolete_files(m, list, (size_t)nn,
                                                   UINT64_MAX, &out, &n),
                     0);
    assert_int_equal(n, 4);
    assert_int_equal(out[2], pending);
    assert_int_equal(out[3], later);
    free(out);
    cairn_manifest_close(m);

    /* After a crash: files made with numbers that were never recorded push
     * the counter above them on open. */
    touch(env, names[7]); /* 999999.sst */
    assert_int_equal(cairn_env_sync_dir(env, DIR), 0);
    assert_int_equal(cairn_env_mem_power_loss(env, false, 1), 0);
    cairn_version *v;
    assert_int_equal(cairn_manifest_open(env, DIR, false, &m, &v), 0);
    assert_true(cairn_manifest_next_file_number(m) > 999999);
    assert_true(cairn_version_next_file(v) > later);
    cairn_version_unref(v);
    char *list2[1] = {names[7]};
    assert_int_equal(
        cairn_manifest_obsolete_files(m, list2, 1, UINT64_MAX, &out, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], 999999);
    free(out);
    cairn_manifest_close(m);

    /* names */
    char buf[64];
    uint64_t num;
    assert_int_equal(cairn_lsm_sst_name(buf, sizeof buf, 12), 0);
    assert_string_equal(buf, "000012.sst");
    assert_int_equal(cairn_lsm_sst_path(buf, sizeof buf, "/d", 1234567), 0);
    assert_string_equal(buf, "/d/1234567.sst");
    assert_int_equal(cairn_lsm_sst_name(buf, 5, 12), CAIRN_EINVAL);
    assert_true(cairn_lsm_parse_sst_name("1234567.sst", &num));
    assert_int_equal(num, 1234567);
    assert_false(cairn_lsm_parse_sst_name("000000.sst", &num));
    assert_false(cairn_lsm_parse_sst_name("01234567.sst", &num));
    assert_true(cairn_lsm_parse_manifest_name("MANIFEST-000001", &num));
    assert_false(cairn_lsm_parse_manifest_name("MANIFEST-000001.tmp", &num));
    cairn_env_destroy(env);
}

static void test_stale_files_cleaned(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_manifest *m;
    assert_int_equal(cairn_manifest_open(env, DIR, true, &m, NULL), 0);
    char live[64];
    snprintf(live, sizeof live, "%s", cairn_manifest_file_name(m));
    cairn_manifest_close(m);
    touch(env, "MANIFEST-000777"); /* a failed switch */
    touch(env, "CURRENT.tmp");
    touch(env, "000005.sst");
    assert_int_equal(cairn_manifest_open(env, DIR, false, &m, NULL), 0);
    assert_true(cairn_manifest_next_file_number(m) > 777);
    assert_int_equal(cairn_env_exists(env, DIR "/MANIFEST-000777"),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_exists(env, DIR "/CURRENT.tmp"),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_exists(env, DIR "/000005.sst"), 0);
    assert_string_equal(cairn_manifest_file_name(m), live);
    cairn_manifest_close(m);
    cairn_env_destroy(env);
}

/* ---- concurrency ---- */

typedef struct reader_arg {
    cairn_manifest *m;
    atomic_bool *stop;
    uint64_t seen;
    int bad; /* invariant violations seen (checked by the main thread) */
} reader_arg;

static void *reader_main(void *p)
{
    reader_arg *a = p;
    /* At least one pass, however late the thread starts on a busy machine
     * (the writer may finish its edits first). */
    while (a->seen == 0 || !atomic_load(a->stop)) {
        cairn_version *v = cairn_manifest_current(a->m);
        for (int l = 0; l < NLEVELS; l++) {
            size_t n = cairn_version_num_files(v, l);
            for (size_t i = 1; i < n; i++) {
                const cairn_file_meta *x = cairn_version_file(v, l, i - 1);
                const cairn_file_meta *y = cairn_version_file(v, l, i);
                if (l == 0 ? x->number <= y->number
                           : cairn_key_cmp(x->largest.ukey,
                                                x->largest.ulen,
                                                y->smallest.ukey,
                                                y->smallest.ulen) >= 0)
                    a->bad++;
            }
            if (l > 0 && n > 0) {
                const cairn_file_meta *f = cairn_version_file(v, l, n / 2);
                if (cairn_version_find_file(v, l, f->smallest.ukey,
                                            f->smallest.ulen) != f)
                    a->bad++;
            }
        }
        uint64_t *live;
        size_t nlive;
        if (cairn_version_live_files(v, &live, &nlive) != 0 ||
            nlive < cairn_version_total_files(v))
            a->bad++;
        free(live);
        (void)cairn_manifest_new_file_number(a->m);
        cairn_version_unref(v);
        a->seen++;
    }
    return NULL;
}

static void test_concurrent_readers(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_manifest_options o = opts_with(true, 2048);
    cairn_manifest *m;
    assert_int_equal(cairn_manifest_open_ex(env, DIR, &o, &m, NULL, NULL), 0);
    atomic_bool stop;
    atomic_init(&stop, false);
    pthread_t t[3];
    reader_arg a[3];
    for (int i = 0; i < 3; i++) {
        a[i] = (reader_arg){m, &stop, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, reader_main, &a[i]), 0);
    }
    model md;
    memset(&md, 0, sizeof md);
    uint64_t rng = 12;
    for (int i = 0; i < 300; i++) {
        cairn_version_edit e;
        model after;
        gen_edit(&md, m, &rng, &e, &after);
        assert_int_equal(cairn_manifest_log_and_apply(m, &e, NULL), 0);
        cairn_version_edit_clear(&e);
        md = after;
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_true(a[i].seen > 0);
        assert_int_equal(a[i].bad, 0);
    }
    md.next_file = 0; /* readers took numbers too */
    cairn_version *v = cairn_manifest_current(m);
    assert_version(v, &md);
    cairn_version_unref(v);
    reopen_and_check(env, &m, &md, 2048);
    cairn_manifest_close(m);
    cairn_env_destroy(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_edits_reopen),
        cmocka_unit_test(test_rollover),
        cmocka_unit_test(test_power_loss),
        cmocka_unit_test(test_power_cut_every_call),
        cmocka_unit_test(test_fail_every_call),
        cmocka_unit_test(test_fail_every_write),
        cmocka_unit_test(test_corrupt_middle_record),
        cmocka_unit_test(test_damaged_last_record_is_torn),
        cmocka_unit_test(test_read_only_open),
        cmocka_unit_test(test_current_file),
        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_overlap_and_find),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_obsolete_files),
        cmocka_unit_test(test_stale_files_cleaned),
        cmocka_unit_test(test_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
