/*
 * test_tier_blob.c — the archive tier and the blob store together: sorted
 * files holding blob references move to the archive and back with their
 * references (the blob references block is rebuilt by the copy), the
 * counts stay exact through moves, and a blob referred to only by an
 * archived file that cannot be opened is never collected: with the
 * archive out of reach at open, blob GC refuses (CAIRN_EUNAVAILABLE) and
 * the background collection waits; once the archive is back and the file
 * is read, GC runs and every value reads back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"
#include "test_util.h"

#define NKEYS 64
#define VLEN 10000 /* above the blob threshold */

static void key_of(char k[16], int i)
{
    snprintf(k, 16, "blob%04d", i);
}

static void opts(cairn_options *o, const char *arch)
{
    cairn_options_init(o);
    o->sync_mode = CAIRN_SYNC_NONE;
    o->archive_dir = arch;
    o->blob_threshold = 4096;
    o->history_ms = 600000; /* generation 1 stays readable as of v1 */
    o->row_cache_size = 0;
}

static int check_all(cairn_db *db, uint64_t gen)
{
    uint8_t *buf = malloc(VLEN);
    if (!buf)
        return -1;
    int bad = 0;
    for (int i = 0; i < NKEYS; i++) {
        char k[16];
        key_of(k, i);
        void *v = NULL;
        size_t vl = 0;
        int rc = cairn_get(db, k, strlen(k), &v, &vl);
        tu_fill(buf, VLEN, gen * 1000u + (uint64_t)i);
        if (rc < 0 || vl != VLEN || memcmp(v, buf, VLEN) != 0)
            bad++;
        cairn_free(v);
    }
    free(buf);
    return bad;
}

static uint64_t put_all(cairn_db *db, uint64_t gen)
{
    uint64_t ver = 0;
    uint8_t *buf = malloc(VLEN);
    assert_non_null(buf);
    for (int i = 0; i < NKEYS; i++) {
        char k[16];
        key_of(k, i);
        tu_fill(buf, VLEN, gen * 1000u + (uint64_t)i);
        assert_int_equal(cairn_put(db, k, strlen(k), buf, VLEN, &ver), 0);
    }
    free(buf);
    return ver;
}

/* Key i as of version ver is generation gen's value. */
static bool old_value_ok(cairn_db *db, int i, uint64_t ver, uint64_t gen)
{
    char k[16];
    key_of(k, i);
    void *v = NULL;
    size_t vl = 0;
    uint8_t *buf = malloc(VLEN);
    int rc = cairn_get_at_version(db, k, strlen(k), ver, &v, &vl);
    bool ok = false;
    if (buf && rc == 0 && vl == VLEN) {
        tu_fill(buf, VLEN, gen * 1000u + (uint64_t)i);
        ok = memcmp(v, buf, VLEN) == 0;
    }
    if (!ok)
        fprintf(stderr, "key %d as of %" PRIu64 ": %s\n", i, ver,
                rc < 0 ? cairn_strerror(rc) : "wrong value");
    cairn_free(v);
    free(buf);
    return ok;
}

static void expect_check_clean(cairn_db *db)
{
    cairn_blob_check_report rep;
    memset(&rep, 0, sizeof rep);
    int rc = cairn_blob_check(db, true, &rep);
    if (rc != 0)
        fprintf(stderr, "blob check: %s\n", rep.first_error);
    assert_int_equal(rc, 0);
    assert_int_equal(rep.mismatched, 0);
    assert_int_equal(rep.missing, 0);
}

static void test_archived_references(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("tierblob");
    char *arch = tu_mkdtemp("tierblob-arch");
    assert_non_null(dir);
    assert_non_null(arch);
    char moved[4096];
    snprintf(moved, sizeof moved, "%s.away", arch);
    cairn_options o;
    opts(&o, arch);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), 0);

    /* Generation 1 goes to the sorted files, which go to the archive. */
    uint64_t v1 = put_all(db, 1);
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(cairn_archive_run(db, 0, 0, NULL, NULL), 0);
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_true(st.tier_files[1] > 0);
    assert_int_equal(st.tier_files[0], 0);
    assert_true(st.blob_distinct >= NKEYS);
    assert_int_equal(check_all(db, 1), 0);
    expect_check_clean(db);
    /* A GC now must keep every blob the archived files refer to. */
    assert_int_equal(cairn_blob_gc(db, 0), 0);
    assert_int_equal(check_all(db, 1), 0);
    expect_check_clean(db);
    assert_int_equal(cairn_close(db), 0);

    /* The archive goes away; the database opens without it. */
    assert_int_equal(rename(arch, moved), 0);
    db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    char k[16];
    key_of(k, 0);
    void *v = NULL;
    size_t vl = 0;
    assert_int_equal(cairn_get(db, k, strlen(k), &v, &vl),
                     CAIRN_EUNAVAILABLE);
    /* Generation 2 overwrites a local copy of each key: generation 1's
     * blobs are now referred to only by the archived files, which were
     * never opened. GC must not take them. */
    put_all(db, 2);
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(check_all(db, 2), 0);
    assert_int_equal(cairn_blob_gc(db, 0), CAIRN_EUNAVAILABLE);
    cairn_get_stats(db, &st);
    uint64_t runs = st.blob_gc_runs;
    sleep(2); /* the background collection looks every second: it waits */
    cairn_get_stats(db, &st);
    assert_int_equal(st.blob_gc_runs, runs);
    assert_int_equal(cairn_close(db), 0);

    /* The archive comes back: a time-travel read needs generation 1. */
    assert_int_equal(rename(moved, arch), 0);
    db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    assert_int_equal(check_all(db, 2), 0);
    /* Reading every file opens the archived readers; then GC may run. */
    cairn_iter *it = NULL;
    cairn_iter_options io = {0};
    assert_int_equal(cairn_iter_new(db, &io, &it), 0);
    for (cairn_iter_first(it); cairn_iter_valid(it); cairn_iter_next(it))
        ;
    assert_int_equal(cairn_iter_status(it), 0);
    cairn_iter_free(it);
    assert_int_equal(cairn_blob_gc(db, 0), 0);
    assert_int_equal(check_all(db, 2), 0);
    expect_check_clean(db);
    /* Generation 1's blobs are still there for reads of the past. */
    for (int i = 0; i < NKEYS; i++)
        assert_true(old_value_ok(db, i, v1, 1));
    /* A full compaction rewrites the archived inputs locally (generation
     * 1 stays: it is inside the history window); counts stay exact. */
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    assert_int_equal(cairn_blob_gc(db, 0), 0);
    assert_int_equal(check_all(db, 2), 0);
    for (int i = 0; i < NKEYS; i++)
        assert_true(old_value_ok(db, i, v1, 1));
    expect_check_clean(db);
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    tu_rmrf(arch);
    free(dir);
    free(arch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_archived_references),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
