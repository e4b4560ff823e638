/*
 * test_blob_faults.c — the blob appender and the GC rewriter under I/O
 * errors and power cuts (fault env over a memory env). A workload (appends
 * of random sizes and kinds into 8 KiB files, so it rotates often; syncs;
 * an explicit rotation; close) is run once to count its I/O calls, then
 * once per call k:
 *   - with call k failing (EIO, then ENOSPC; writes fail short): the first
 *     error any appender call returns is exactly the injected one; after it
 *     calls succeed (a failed write: the appender goes on) or all say
 *     CAIRN_EREADONLY (a failed sync: never retried). Every file then scans
 *     cleanly and holds exactly the records whose append succeeded, in
 *     order (a failed record never comes back); after a power cut on top,
 *     each file holds a prefix of them including every acknowledged one
 *     (synced, or in a sealed file); recovery seals every file;
 *   - with power cut at call k (the last unsynced block torn): the same
 *     prefix rule, no scan ever reports corruption, recovery seals all.
 * GC: a rewrite with call k failing or power cut at call k either reports
 * every live record at a new location that reads back (after the cut too:
 * locations are reported only once synced) or reports nothing; the source
 * file always stays whole. Finally a sync failure's stickiness and a
 * failed write's clean restart, by hand, and read errors passed through
 * by the reader, the scanner and recovery.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "blob_test_util.h"

#define DIR "/b"
enum { WN = 40 };

typedef struct wl {
    bt_rec recs[WN];
    int first_error;
    bool readonly_seen;
    bool strict; /* one fault only (not a power cut, after which all fails) */
} wl;

static void note(wl *w, int rc)
{
    if (rc == 0) {
        /* after a sync failure, nothing succeeds */
        assert_false(w->readonly_seen);
        return;
    }
    if (w->first_error == 0) {
        w->first_error = rc;
        return;
    }
    if (!w->strict)
        return;
    /* one fault only: later calls either work or are refused read-only */
    if (rc != CAIRN_EREADONLY)
        fail_msg("second error %d after %d", rc, w->first_error);
    w->readonly_seen = true;
}

static void on_sealed(void *arg, const cairn_blob_file_stats *st)
{
    wl *w = arg;
    for (int i = 0; i < WN; i++)
        if (w->recs[i].ok && w->recs[i].loc.file == st->number)
            w->recs[i].acked = true;
}

static void ack_all(wl *w)
{
    for (int i = 0; i < WN; i++)
        if (w->recs[i].ok)
            w->recs[i].acked = true;
}

static int append_rec(cairn_blob_appender *a, bt_rec *r)
{
    uint8_t *p = bt_make(r->len, r->seed, r->kind);
    assert_non_null(p);
    assert_int_equal(cairn_blob_hash(p, r->len, r->hash), 0);
    int rc = cairn_blob_append(a, p, r->len, r->hash, &r->loc);
    r->ok = rc == 0;
    free(p);
    return rc;
}

static void workload(cairn_env *env, wl *w, uint64_t seed, bool strict)
{
    memset(w, 0, sizeof *w);
    w->strict = strict;
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = env;
    o.dir = DIR;
    o.file_size = 8 << 10;
    o.sealed = on_sealed;
    o.sealed_arg = w;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    uint64_t rng = seed;
    for (int i = 0; i < WN; i++) {
        bt_rec *r = &w->recs[i];
        r->seed = 100 + (uint64_t)i;
        r->len = i % 9 == 0 ? 0 : tu_rand(&rng, 3000);
        r->kind = (int)tu_rand(&rng, 2);
        note(w, append_rec(a, r));
        if (i % 5 == 4) {
            int rc = cairn_blob_appender_sync(a);
            note(w, rc);
            if (rc == 0)
                ack_all(w);
        }
        if (i == 22)
            note(w, cairn_blob_appender_rotate(a));
    }
    int rc = cairn_blob_appender_close(a);
    note(w, rc);
    if (rc == 0)
        ack_all(w);
}

typedef struct seen {
    cairn_blob_record r[WN + 1];
    size_t n;
} seen;

static int collect(void *arg, const cairn_blob_record *rec)
{
    seen *s = arg;
    assert_true(s->n < WN + 1);
    s->r[s->n] = *rec;
    s->r[s->n].stored = s->r[s->n].content = NULL;
    s->n++;
    return 0;
}

static void check_read(cairn_env *env, const bt_rec *r)
{
    void *out = NULL;
    size_t n = 0;
    assert_int_equal(cairn_blob_read(env, DIR, &r->loc, r->hash, &out, &n), 0);
    assert_int_equal(n, r->len);
    uint8_t *want = bt_make(r->len, r->seed, r->kind);
    assert_memory_equal(out, want, r->len);
    free(want);
    free(out);
}

/* What the verifications saw, summed over a sweep. */
static uint64_t g_torn_files, g_lost_unacked;

/* Every blob file in DIR scans without error; what each holds is the
 * successful appends of that file in order: all of them (exact) or a
 * prefix holding every acknowledged one. Then every file is recovered and
 * scans sealed. Returns the number of files. */
static int verify(cairn_env *env, const wl *w, bool exact)
{
    char **names;
    size_t count;
    assert_int_equal(cairn_env_list_dir(env, DIR, &names, &count), 0);
    int files = 0;
    for (size_t i = 0; i < count; i++) {
        uint64_t num;
        if (!cairn_blob_parse_name(names[i], &num))
            continue;
        files++;
        char path[256];
        assert_int_equal(cairn_blob_file_name(path, sizeof path, DIR, num),
                         0);
        seen s = {.n = 0};
        cairn_blob_scan_options so = {.verify_content = true};
        cairn_blob_scan_info info;
        int rc = cairn_blob_scan(env, path, num, &so, collect, &s, &info);
        if (rc)
            fail_msg("%s: scan %d at %llu", path, rc,
                     (unsigned long long)info.bad_offset);
        size_t k = 0, acked = 0, mine = 0;
        for (int j = 0; j < WN; j++) {
            const bt_rec *r = &w->recs[j];
            if (!r->ok || r->loc.file != num)
                continue;
            mine++;
            if (r->acked)
                acked = mine;
            if (k < s.n) {
                assert_memory_equal(s.r[k].hash, r->hash, 32);
                assert_int_equal(s.r[k].loc.offset, r->loc.offset);
                assert_int_equal(s.r[k].loc.stored_len, r->loc.stored_len);
                k++;
            }
        }
        assert_int_equal(k, s.n); /* nothing but successful appends */
        if (info.torn_bytes || info.header_torn)
            g_torn_files++;
        g_lost_unacked += mine - s.n;
        if (exact)
            assert_int_equal(s.n, mine);
        else
            assert_true(s.n >= acked);
        assert_int_equal(cairn_blob_file_recover(env, path, num, false, &info),
                         0);
        so.require_sealed = true;
        s.n = 0;
        assert_int_equal(cairn_blob_scan(env, path, num, &so, collect, &s,
                                         &info),
                         0);
        assert_true(s.n >= acked);
    }
    cairn_env_free_list(names, count);
    for (int j = 0; j < WN; j++)
        if (w->recs[j].acked || (exact && w->recs[j].ok))
            check_read(env, &w->recs[j]);
    return files;
}

static void new_envs(cairn_env **mem, cairn_env **fe)
{
    *mem = cairn_env_mem_new();
    assert_non_null(*mem);
    assert_int_equal(cairn_env_mkdir(*mem, DIR), 0);
    *fe = cairn_env_fault_new(*mem);
    assert_non_null(*fe);
}

static void free_envs(cairn_env *mem, cairn_env *fe)
{
    cairn_env_destroy(fe);
    cairn_env_destroy(mem);
}

static uint64_t count_calls(void)
{
    cairn_env *mem, *fe;
    new_envs(&mem, &fe);
    static wl w;
    workload(fe, &w, 1, true);
    uint64_t calls = cairn_env_fault_calls(fe);
    assert_int_equal(w.first_error, 0);
    int files = verify(mem, &w, true);
    assert_true(files >= 4);
    free_envs(mem, fe);
    return calls;
}

static void test_io_errors(void **state)
{
    (void)state;
    uint64_t calls = count_calls();
    printf("workload: %llu I/O calls\n", (unsigned long long)calls);
    static wl w;
    static const int errs[2] = {CAIRN_EIO, CAIRN_ENOSPC};
    for (int e = 0; e < 2; e++) {
        for (uint64_t k = 1; k <= calls; k++) {
            cairn_env *mem, *fe;
            new_envs(&mem, &fe);
            cairn_fault_rule rule = {.fail_at = k,
                                     .error = errs[e],
                                     .short_write = true,
                                     .seed = k};
            cairn_env_fault_set(fe, &rule);
            workload(fe, &w, 1, true);
            uint64_t injected = cairn_env_fault_injected(fe);
            assert_int_equal(injected, 1);
            assert_int_equal(w.first_error, errs[e]);
            cairn_env_fault_reset(fe);
            verify(mem, &w, true);
            /* and a power cut on top */
            assert_int_equal(cairn_env_mem_power_loss(mem, true, k), 0);
            verify(mem, &w, false);
            free_envs(mem, fe);
        }
    }
}

static void test_power_cuts(void **state)
{
    (void)state;
    g_torn_files = g_lost_unacked = 0;
    uint64_t calls = count_calls();
    static wl w;
    for (uint64_t k = 1; k <= calls + 1; k++) {
        cairn_env *mem, *fe;
        new_envs(&mem, &fe);
        cairn_fault_rule rule = {.power_cut_at = k, .torn = true,
                                 .seed = k * 7};
        cairn_env_fault_set(fe, &rule);
        workload(fe, &w, 1, false);
        assert_int_equal(cairn_env_fault_power_is_cut(fe), k <= calls);
        cairn_env_fault_reset(fe);
        if (k > calls) /* no cut happened: cut now, after close */
            assert_int_equal(cairn_env_mem_power_loss(mem, true, k), 0);
        verify(mem, &w, false);
        free_envs(mem, fe);
    }
    printf("%llu power cuts: %llu torn files recovered, %llu unacknowledged "
           "records lost, no acknowledged one\n",
           (unsigned long long)calls + 1, (unsigned long long)g_torn_files,
           (unsigned long long)g_lost_unacked);
}

/* ---- GC under faults ---- */

enum { GN = 40 };

typedef struct gcw {
    bt_rec recs[GN];
    uint64_t src;        /* the file being collected */
    cairn_blob_loc to[GN];
    int from_idx[GN];
    int nmoved;
} gcw;

static int rec_at(gcw *g, const cairn_blob_loc *loc)
{
    for (int i = 0; i < GN; i++)
        if (g->recs[i].loc.file == loc->file &&
            g->recs[i].loc.offset == loc->offset)
            return i;
    return -1;
}

static bool live(void *arg, const uint8_t *hash, const cairn_blob_loc *loc)
{
    gcw *g = arg;
    int i = rec_at(g, loc);
    assert_true(i >= 0);
    assert_memory_equal(hash, g->recs[i].hash, 32);
    return i % 2 == 0;
}

static int moved(void *arg, const uint8_t *hash, const cairn_blob_loc *from,
                 const cairn_blob_loc *to)
{
    gcw *g = arg;
    int i = rec_at(g, from);
    assert_true(i >= 0 && i % 2 == 0);
    assert_memory_equal(hash, g->recs[i].hash, 32);
    g->from_idx[g->nmoved] = i;
    g->to[g->nmoved++] = *to;
    return 0;
}

/* Source files 1.. written without faults; returns the bytes of file 1. */
static void gc_setup(cairn_env *mem, gcw *g, uint8_t **src, size_t *srclen)
{
    memset(g, 0, sizeof *g);
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = mem;
    o.dir = DIR;
    o.file_size = 32 << 10;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    uint64_t rng = 3;
    for (int i = 0; i < GN; i++) {
        g->recs[i].seed = 7000 + (uint64_t)i;
        g->recs[i].len = tu_rand(&rng, 2500);
        g->recs[i].kind = (int)tu_rand(&rng, 2);
        assert_int_equal(append_rec(a, &g->recs[i]), 0);
    }
    assert_int_equal(cairn_blob_appender_close(a), 0);
    g->src = 1;
    assert_int_equal(cairn_env_sync_dir(mem, DIR), 0);
    assert_int_equal(bt_read_file(mem, DIR "/000001.blob", src, srclen), 0);
}

/* One GC of file 1 into a new appender over env; returns gc's result. */
static int gc_run(cairn_env *env, gcw *g)
{
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = env;
    o.dir = DIR;
    o.file_size = 4 << 10; /* rotations inside the rewrite */
    o.first_number = 100;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    int rc = cairn_blob_gc_rewrite(a, DIR "/000001.blob", 1, live, moved, g,
                                   NULL);
    int crc = cairn_blob_appender_close(a);
    (void)crc; /* may fail after the fault; the moves were durable */
    return rc;
}

static void gc_check(cairn_env *mem, gcw *g, int rc, const uint8_t *src,
                     size_t srclen)
{
    /* the source is whole and unchanged */
    uint8_t *now = NULL;
    size_t nl;
    assert_int_equal(bt_read_file(mem, DIR "/000001.blob", &now, &nl), 0);
    assert_int_equal(nl, srclen);
    assert_memory_equal(now, src, srclen);
    free(now);
    for (int i = 0; i < GN; i++)
        if (g->recs[i].loc.file == 1)
            check_read(mem, &g->recs[i]);
    if (rc != 0) {
        assert_int_equal(g->nmoved, 0);
        return;
    }
    int want = 0;
    for (int i = 0; i < GN; i++)
        if (g->recs[i].loc.file == 1 && i % 2 == 0)
            want++;
    assert_int_equal(g->nmoved, want);
    for (int m = 0; m < g->nmoved; m++) {
        bt_rec r = g->recs[g->from_idx[m]];
        r.loc = g->to[m];
        check_read(mem, &r);
    }
}

static void test_gc_faults(void **state)
{
    (void)state;
    static gcw g;
    uint8_t *src = NULL;
    size_t srclen;
    cairn_env *mem, *fe;
    new_envs(&mem, &fe);
    gc_setup(mem, &g, &src, &srclen);
    cairn_env_fault_reset(fe);
    assert_int_equal(gc_run(fe, &g), 0);
    uint64_t calls = cairn_env_fault_calls(fe);
    gc_check(mem, &g, 0, src, srclen);
    assert_true(g.nmoved > 4);
    free(src);
    free_envs(mem, fe);

    for (int mode = 0; mode < 3; mode++) {
        for (uint64_t k = 1; k <= calls; k++) {
            new_envs(&mem, &fe);
            gc_setup(mem, &g, &src, &srclen);
            cairn_fault_rule rule = {.seed = k};
            if (mode < 2) {
                rule.fail_at = k;
                rule.error = mode == 0 ? CAIRN_EIO : CAIRN_ENOSPC;
                rule.short_write = true;
            } else {
                rule.power_cut_at = k;
                rule.torn = true;
            }
            cairn_env_fault_set(fe, &rule);
            int rc = gc_run(fe, &g);
            cairn_env_fault_reset(fe);
            if (mode == 2)
                assert_int_equal(cairn_env_mem_power_loss(mem, true, k), 0);
            gc_check(mem, &g, rc, src, srclen);
            /* a power cut after the rewrite too */
            assert_int_equal(cairn_env_mem_power_loss(mem, true, k + 1), 0);
            gc_check(mem, &g, rc, src, srclen);
            free(src);
            free_envs(mem, fe);
        }
    }
}

/* ---- a failed sync, by hand ---- */

static void test_sync_failure_sticks(void **state)
{
    (void)state;
    cairn_env *mem, *fe;
    new_envs(&mem, &fe);
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = fe;
    o.dir = DIR;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    bt_rec r = {.seed = 1, .len = 100};
    assert_int_equal(append_rec(a, &r), 0);
    cairn_fault_rule rule = {.op_mask = CAIRN_OPMASK(CAIRN_OP_SYNC),
                             .fail_at = 1,
                             .error = CAIRN_EIO};
    cairn_env_fault_set(fe, &rule);
    assert_int_equal(cairn_blob_appender_sync(a), CAIRN_EIO);
    cairn_env_fault_reset(fe);
    bt_rec r2 = {.seed = 2, .len = 100};
    assert_int_equal(append_rec(a, &r2), CAIRN_EREADONLY);
    assert_int_equal(cairn_blob_appender_sync(a), CAIRN_EREADONLY);
    assert_int_equal(cairn_blob_appender_rotate(a), CAIRN_EREADONLY);
    assert_int_equal(cairn_env_fault_calls(fe), 0); /* no retry, no I/O */
    assert_int_equal(cairn_blob_appender_close(a), CAIRN_EREADONLY);
    /* not sealed: recovery does it */
    cairn_blob_scan_info info;
    assert_int_equal(cairn_blob_scan(mem, DIR "/000001.blob", 1, NULL, NULL,
                                     NULL, &info),
                     0);
    assert_false(info.sealed);
    assert_int_equal(info.records, 1);
    assert_int_equal(cairn_blob_file_recover(mem, DIR "/000001.blob", 1,
                                             false, &info),
                     0);
    assert_true(info.sealed);
    check_read(mem, &r);

    /* A failed write: the appender goes on at the same place. */
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    /* file 1 exists: the next number must be free (EEXIST otherwise) */
    bt_rec r3 = {.seed = 3, .len = 100};
    assert_int_equal(append_rec(a, &r3), CAIRN_EEXIST);
    assert_int_equal(append_rec(a, &r3), 0); /* the counter moved on */
    assert_int_equal(r3.loc.file, 2);
    cairn_fault_rule wr = {.op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE),
                           .fail_at = 1,
                           .error = CAIRN_ENOSPC,
                           .short_write = true,
                           .seed = 9};
    cairn_env_fault_set(fe, &wr);
    bt_rec r4 = {.seed = 4, .len = 3000, .kind = 0};
    assert_int_equal(append_rec(a, &r4), CAIRN_ENOSPC);
    cairn_env_fault_reset(fe);
    bt_rec r5 = {.seed = 5, .len = 10, .kind = 0};
    assert_int_equal(append_rec(a, &r5), 0);
    assert_int_equal(r5.loc.offset, r3.loc.offset + 64 + r3.loc.stored_len);
    assert_int_equal(cairn_blob_appender_close(a), 0);
    check_read(mem, &r3);
    check_read(mem, &r5);
    assert_int_equal(cairn_blob_scan(mem, DIR "/000002.blob", 2, NULL, NULL,
                                     NULL, &info),
                     0);
    assert_true(info.sealed);
    assert_int_equal(info.records, 2);
    free_envs(mem, fe);
}

/* Read errors reach the caller as they are, never as corruption. */
static void test_read_errors(void **state)
{
    (void)state;
    cairn_env *mem, *fe;
    new_envs(&mem, &fe);
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = mem;
    o.dir = DIR;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    bt_rec r = {.seed = 1, .len = 5000, .kind = 1};
    assert_int_equal(append_rec(a, &r), 0);
    assert_int_equal(cairn_blob_appender_close(a), 0);
    static const int errs[2] = {CAIRN_EIO, CAIRN_ENOSPC};
    for (int e = 0; e < 2; e++) {
        for (uint64_t k = 1; k <= 3; k++) {
            cairn_fault_rule rule = {.op_mask = CAIRN_OPMASK(CAIRN_OP_READ) |
                                                CAIRN_OPMASK(CAIRN_OP_OPEN) |
                                                CAIRN_OPMASK(CAIRN_OP_SIZE),
                                     .fail_at = k,
                                     .error = errs[e]};
            cairn_env_fault_set(fe, &rule);
            void *out = NULL;
            size_t n;
            int rc = cairn_blob_read(fe, DIR, &r.loc, r.hash, &out, &n);
            if (cairn_env_fault_injected(fe))
                assert_int_equal(rc, errs[e]);
            else
                assert_int_equal(rc, 0);
            free(out);
            cairn_env_fault_set(fe, &rule);
            cairn_blob_scan_info info;
            rc = cairn_blob_scan(fe, DIR "/000001.blob", 1, NULL, NULL, NULL,
                                 &info);
            if (cairn_env_fault_injected(fe))
                assert_int_equal(rc, errs[e]);
            else
                assert_int_equal(rc, 0);
            cairn_env_fault_set(fe, &rule);
            rc = cairn_blob_file_recover(fe, DIR "/000001.blob", 1, false,
                                         &info);
            if (cairn_env_fault_injected(fe))
                assert_int_equal(rc, errs[e]);
            else
                assert_int_equal(rc, 0);
        }
    }
    cairn_env_fault_reset(fe);
    check_read(fe, &r);
    free_envs(mem, fe);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_io_errors),
        cmocka_unit_test(test_power_cuts),
        cmocka_unit_test(test_gc_faults),
        cmocka_unit_test(test_sync_failure_sticks),
        cmocka_unit_test(test_read_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
