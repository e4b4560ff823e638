/*
 * test_disk_full.c — a real full disk: the database on a small tmpfs, the
 * real POSIX env, written until the file system has no space left.
 *
 * What it proves, per test:
 *   - writes that cannot be made durable fail with CAIRN_ENOSPC (or, once a
 *     manifest append failed, CAIRN_EREADONLY: the manifest never writes
 *     again through a handle after an I/O failure, see lsm/manifest.c);
 *     never a crash, a hang or an acknowledgement of data that is not there;
 *   - while the disk is full every acknowledged key reads back exactly
 *     (point gets and a full iterator scan), and the background flush and
 *     compaction threads, failing for lack of space, do not spin (process
 *     CPU time over an idle wait);
 *   - after space is freed (a ballast file deleted, or the file system
 *     remounted bigger) writes resume (after a close and reopen if the
 *     handle turned read-only), and after a clean close and reopen every
 *     acknowledged write is there, every write refused with CAIRN_ENOSPC is
 *     absent, a write batch is all there or not at all, and no sorted file
 *     lies in the directory that the tree does not list;
 *   - the log's default segment size (64 MiB, preallocated) on a file system
 *     smaller than that: the database still opens and takes writes.
 *
 * Mounting needs root (CAP_SYS_ADMIN). Without it the program fails and
 * says why: a disk-full test that silently did nothing would prove nothing.
 *
 * Structure: main mounts one tmpfs on a fresh directory, forks a child that
 * runs the cmocka tests in it, and always unmounts it (lazily if something
 * still holds it) and removes the directory, whatever the child did. Each
 * test resizes the file system with a remount and empties it first.
 *
 * Time limits (filling, writes resuming) are 10x under
 * CAIRN_UNDER_VALGRIND=1 (`make test-valgrind`); the workload is the same.
 *
 * Locking: none; each test drives the database from one thread (the
 * engine's own flush and compaction threads run behind it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "test_util.h"

static char g_mnt[512];    /* the tmpfs mount point */
static char g_dbdir[600];  /* the database directory on it */
static char g_ballast[600];

#define MAX_IDS 200000

/* What the test knows about each key id. */
enum {
    K_NONE = 0,     /* never written */
    K_ACKED,        /* put acknowledged: must be there with its value */
    K_REFUSED,      /* put refused with ENOSPC: must never be there */
    K_UNKNOWN,      /* put failed otherwise (read-only): whole or absent */
    K_DELETED,      /* delete acknowledged: must be absent */
    K_DEL_UNKNOWN,  /* delete failed with read-only: absent or the value */
};

typedef struct model {
    uint8_t state[MAX_IDS];
    uint32_t len[MAX_IDS];   /* value length (value bytes: tu_fill(id)) */
    uint32_t group[MAX_IDS]; /* first id of the commit that wrote it */
    uint32_t next_id;
    uint64_t acked_ops, refused_ops, readonly_ops, acked_bytes;
    uint32_t first_fail_op;  /* op index of the first failure (0: none) */
} model;

static model g_m;
static double g_slow = 1; /* time limits' factor (10 under valgrind) */

static void key_of(uint32_t id, char out[16])
{
    snprintf(out, 16, "key-%08" PRIu32, id);
}

static uint32_t value_len(uint32_t id)
{
    return 1024 + (uint32_t)((id * 2654435761u) % 7168u); /* 1-8 KiB */
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------- the file system ---------- */

static int remount_size(const char *size)
{
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s,mode=0700", size);
    return mount("tmpfs", g_mnt, "tmpfs", MS_REMOUNT, opts);
}

/* Empty the file system and set its size. */
static void fs_reset(const char *size)
{
    char path[700];
    snprintf(path, sizeof path, "%s/db", g_mnt);
    tu_rmrf(path);
    unlink(g_ballast);
    if (remount_size(size) != 0)
        fail_msg("remount %s with size=%s: %s", g_mnt, size, strerror(errno));
    assert_int_equal(mkdir(g_dbdir, 0700), 0);
}

static uint64_t fs_free_bytes(void)
{
    struct statvfs sv;
    assert_int_equal(statvfs(g_mnt, &sv), 0);
    return (uint64_t)sv.f_bavail * sv.f_frsize;
}

/* A file of real bytes (tmpfs allocates pages as they are written). */
static void make_ballast(size_t bytes)
{
    int fd = open(g_ballast, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    uint8_t buf[65536];
    memset(buf, 0xB5, sizeof buf);
    for (size_t done = 0; done < bytes; done += sizeof buf)
        assert_int_equal(write(fd, buf, sizeof buf), (ssize_t)sizeof buf);
    assert_int_equal(fsync(fd), 0);
    close(fd);
}

/* Sorted files in the directory, and the number the tree lists. On a
 * closed database, opened read-only (no background thread, no cleanup at
 * open), so a file a failed flush or compaction left behind shows. */
static void check_no_stray_files(const cairn_options *o)
{
    cairn_options ro = *o;
    ro.read_only = true;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(g_dbdir, &ro, &db), 0);
    cairn_stats st;
    cairn_get_stats(db, &st);
    uint64_t listed = 0;
    for (int l = 0; l < 8; l++)
        listed += st.level_files[l];
    uint64_t found = 0;
    DIR *d = opendir(g_dbdir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 4 && !strcmp(e->d_name + n - 4, ".sst"))
            found++;
    }
    closedir(d);
    assert_int_equal(cairn_close(db), 0);
    if (found != listed)
        fail_msg("%" PRIu64 " sorted files in %s, the tree lists %" PRIu64,
                 found, g_dbdir, listed);
}

/* ---------- the workload ---------- */

static void db_opts(cairn_options *o, bool small_log)
{
    cairn_options_init(o);
    o->memtable_size = 256 << 10;
    o->sst_target_file_size = 256 << 10;
    o->level_base_size = 1 << 20;
    o->block_cache_size = 1 << 20;
    o->history_ms = 0;
    if (small_log)
        o->wal_segment_size = 1 << 20;
}

/* Account for a commit of ids [lo, hi) that returned rc. */
static void settle(uint32_t lo, uint32_t hi, int rc, uint32_t op)
{
    for (uint32_t id = lo; id < hi; id++) {
        g_m.group[id] = lo;
        g_m.len[id] = value_len(id);
        if (rc == 0) {
            g_m.state[id] = K_ACKED;
            g_m.acked_bytes += g_m.len[id];
        } else {
            g_m.state[id] = rc == CAIRN_ENOSPC ? K_REFUSED : K_UNKNOWN;
        }
    }
    if (rc == 0) {
        g_m.acked_ops++;
        return;
    }
    if (!g_m.first_fail_op)
        g_m.first_fail_op = op;
    if (rc == CAIRN_ENOSPC)
        g_m.refused_ops++;
    else if (rc == CAIRN_EREADONLY)
        g_m.readonly_ops++;
    else
        fail_msg("op %" PRIu32 ": a write failed with %d (%s); only "
                 "ENOSPC or READONLY may come back from a full disk",
                 op, rc, cairn_strerror(rc));
}

/* One write: an auto-commit put, a batch of three, a transaction of two
 * (which also reads an older key), or a delete of an older acked key.
 * Returns the engine's result. */
static int one_op(cairn_db *db, uint32_t op)
{
    char k[3][16];
    uint8_t *v[3] = {NULL, NULL, NULL};
    uint32_t lo = g_m.next_id;
    int kind = (int)(op % 10);
    int rc;
    if (kind == 9 && lo > 10) {
        /* delete some acked key */
        uint32_t id = (uint32_t)((op * 7919u) % lo);
        for (uint32_t tries = 0; g_m.state[id] != K_ACKED && tries < 50;
             tries++)
            id = (id + 1) % lo;
        if (g_m.state[id] != K_ACKED)
            return 0;
        key_of(id, k[0]);
        rc = cairn_delete(db, k[0], strlen(k[0]), NULL);
        if (rc == 0) {
            g_m.state[id] = K_DELETED;
            g_m.acked_ops++;
        } else if (rc == CAIRN_ENOSPC) {
            g_m.refused_ops++; /* the key stays acked */
        } else if (rc == CAIRN_EREADONLY) {
            g_m.state[id] = K_DEL_UNKNOWN;
            g_m.readonly_ops++;
        } else {
            fail_msg("delete failed with %d (%s)", rc, cairn_strerror(rc));
        }
        if (rc != 0 && !g_m.first_fail_op)
            g_m.first_fail_op = op;
        return rc;
    }
    uint32_t n = kind < 5 ? 1 : kind < 7 ? 3 : 2;
    assert_true(lo + n < MAX_IDS);
    for (uint32_t i = 0; i < n; i++) {
        key_of(lo + i, k[i]);
        v[i] = malloc(value_len(lo + i));
        assert_non_null(v[i]);
        tu_fill(v[i], value_len(lo + i), lo + i);
    }
    if (n == 1) {
        rc = cairn_put(db, k[0], strlen(k[0]), v[0], value_len(lo), NULL);
    } else if (n == 3) {
        cairn_write w[3];
        for (uint32_t i = 0; i < 3; i++)
            w[i] = (cairn_write){k[i], strlen(k[i]), v[i], value_len(lo + i)};
        rc = cairn_write_batch(db, w, 3, NULL);
    } else {
        cairn_txn *t = NULL;
        rc = cairn_txn_begin(db, NULL, &t);
        if (rc == 0 && lo > 0) { /* reads work while full */
            char rk[16];
            uint32_t rid = (op * 31u) % lo;
            key_of(rid, rk);
            void *val = NULL;
            size_t vlen = 0;
            int g = cairn_txn_get(t, rk, strlen(rk), &val, &vlen);
            if (g_m.state[rid] == K_ACKED) {
                assert_int_equal(g, 0);
                assert_int_equal(vlen, g_m.len[rid]);
                assert_true(tu_check(val, vlen, rid));
            }
            if (g == 0)
                cairn_free(val);
        }
        for (uint32_t i = 0; rc == 0 && i < 2; i++)
            rc = cairn_txn_put(t, k[i], strlen(k[i]), v[i], value_len(lo + i));
        if (rc == 0)
            rc = cairn_txn_commit(t, NULL);
        else if (t)
            cairn_txn_abort(t);
    }
    g_m.next_id = lo + n;
    settle(lo, lo + n, rc, op);
    for (uint32_t i = 0; i < n; i++)
        free(v[i]);
    return rc;
}

/* Every key against the model: point gets, then a full scan. reopened:
 * after a restart, when K_UNKNOWN commits must be whole or absent. */
static void check_all(cairn_db *db, const char *phase, bool reopened)
{
    uint64_t acked = 0;
    for (uint32_t id = 0; id < g_m.next_id; id++) {
        char k[16];
        key_of(id, k);
        void *val = NULL;
        size_t vlen = 0;
        int rc = cairn_get(db, k, strlen(k), &val, &vlen);
        if (rc != 0 && rc != CAIRN_ENOTFOUND)
            fail_msg("%s: get %s: %d (%s)", phase, k, rc, cairn_strerror(rc));
        uint8_t s = g_m.state[id];
        bool may_miss = s != K_ACKED;
        bool may_have = s == K_ACKED || s == K_UNKNOWN || s == K_DEL_UNKNOWN;
        if (s == K_UNKNOWN && !reopened)
            may_have = false; /* a failed commit is never visible before */
        if (rc == CAIRN_ENOTFOUND && !may_miss)
            fail_msg("%s: acknowledged key %s is missing", phase, k);
        if (rc == 0 && !may_have)
            fail_msg("%s: key %s (state %d) is there", phase, k, s);
        if (rc == 0) {
            if (vlen != g_m.len[id] || !tu_check(val, vlen, id))
                fail_msg("%s: key %s has a wrong value (%zu bytes)", phase, k,
                         vlen);
            cairn_free(val);
        }
        if (s == K_ACKED)
            acked++;
        /* A commit of unknown outcome: all of its keys or none. */
        if (reopened && s == K_UNKNOWN && g_m.group[id] != id) {
            char k0[16];
            key_of(g_m.group[id], k0);
            void *v0 = NULL;
            size_t l0 = 0;
            int r0 = cairn_get(db, k0, strlen(k0), &v0, &l0);
            if (r0 == 0)
                cairn_free(v0);
            if ((r0 == 0) != (rc == 0))
                fail_msg("%s: commit %s is half there", phase, k0);
        }
    }
    /* The scan: keys in order, only live ones, every acked one. */
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    uint64_t seen_acked = 0, seen = 0;
    char prev[16] = "";
    for (cairn_iter_first(it); cairn_iter_valid(it); cairn_iter_next(it)) {
        size_t klen, vlen;
        const char *k = cairn_iter_key(it, &klen);
        const void *v = cairn_iter_value(it, &vlen);
        if (klen != 12 || memcmp(k, "key-", 4) != 0)
            fail_msg("%s: scan shows a foreign key", phase);
        char kz[16];
        memcpy(kz, k, 12);
        kz[12] = '\0';
        if (seen && strcmp(prev, kz) >= 0)
            fail_msg("%s: scan out of order at %s", phase, kz);
        memcpy(prev, kz, 13);
        uint32_t id = (uint32_t)strtoul(kz + 4, NULL, 10);
        assert_true(id < g_m.next_id);
        uint8_t s = g_m.state[id];
        if (s == K_ACKED)
            seen_acked++;
        else if (!(reopened && s == K_UNKNOWN) && s != K_DEL_UNKNOWN)
            fail_msg("%s: scan shows %s (state %d)", phase, kz, s);
        if (vlen != g_m.len[id] || !tu_check(v, vlen, id))
            fail_msg("%s: scan: %s has a wrong value", phase, kz);
        seen++;
    }
    assert_int_equal(cairn_iter_status(it), 0);
    cairn_iter_free(it);
    if (seen_acked != acked)
        fail_msg("%s: scan saw %" PRIu64 " acknowledged keys of %" PRIu64,
                 phase, seen_acked, acked);
}

/* Write until the disk is full: until 64 attempts after the first failure
 * (later, smaller writes may still fit, and must then be whole). */
static void fill(cairn_db *db, uint32_t *op)
{
    uint32_t after = 0;
    double t0 = mono_s();
    while (after < 64) {
        int rc = one_op(db, (*op)++);
        if (g_m.first_fail_op)
            after++;
        (void)rc;
        if (mono_s() - t0 > 60 * g_slow)
            fail_msg("the disk never filled in time (%" PRIu64 " acked)",
                     g_m.acked_ops);
    }
}

/* Wait on a full disk: the background threads retry, but must not spin,
 * and must not lose or damage anything. */
static void idle_while_full(cairn_db *db)
{
    double c0 = cpu_s(), t0 = mono_s();
    struct timespec d = {2, 500000000};
    nanosleep(&d, NULL);
    double cpu = cpu_s() - c0, wall = mono_s() - t0;
    printf("  idle on a full disk: %.3f s CPU in %.2f s\n", cpu, wall);
    if (cpu > 0.5 * wall)
        fail_msg("background threads spin on a full disk: %.2f s CPU in "
                 "%.2f s", cpu, wall);
    check_all(db, "full", false);
}

/* After space is freed: writes come back. Until the collector's next
 * flush attempt (it retries each second) a full memtable still refuses
 * writes with ENOSPC; after RESUME_GRACE seconds none may fail. Returns the
 * handle to use (reopened if it had turned read-only). */
#define RESUME_GRACE 3.0

static cairn_db *resume(cairn_db *db, const cairn_options *o, uint32_t *op,
                        bool *reopened)
{
    *reopened = false;
    double t0 = mono_s(), first_ok = 0;
    int refused = 0, ok = 0;
    while (ok < 200) {
        int rc = one_op(db, (*op)++);
        if (rc == 0) {
            if (!ok++)
                first_ok = mono_s() - t0;
            continue;
        }
        if (rc == CAIRN_EREADONLY && !*reopened) {
            /* By design (a failed manifest append is never retried by the
             * same handle): close, reopen, go on. */
            (void)cairn_close(db);
            db = NULL;
            assert_int_equal(cairn_open(g_dbdir, o, &db), 0);
            *reopened = true;
            check_all(db, "reopened after read-only", true);
            continue;
        }
        if (rc != CAIRN_ENOSPC)
            fail_msg("write after space was freed: %d (%s)", rc,
                     cairn_strerror(rc));
        refused++;
        if (mono_s() - t0 > RESUME_GRACE * g_slow) {
            cairn_stats st;
            cairn_get_stats(db, &st);
            fail_msg("writes still refused %.1f s after space was freed "
                     "(%d ok before; %" PRIu64 " bytes free, background "
                     "error %d, %" PRIu64 " level-0 files)",
                     mono_s() - t0, ok, fs_free_bytes(),
                     st.background_error, st.level_files[0]);
        }
        struct timespec d = {0, 20000000};
        nanosleep(&d, NULL);
    }
    printf("  after space was freed: first write ok after %.2f s, %d "
           "refused meanwhile, 200 ok in %.2f s%s\n",
           first_ok, refused, mono_s() - t0,
           *reopened ? " (after a reopen: read-only)" : "");
    return db;
}

static void run_cycle(bool grow_by_remount)
{
    memset(&g_m, 0, sizeof g_m);
    fs_reset("12m");
    if (!grow_by_remount)
        make_ballast(5 << 20);
    cairn_options o;
    db_opts(&o, true);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(g_dbdir, &o, &db), 0);
    uint32_t op = 0;
    fill(db, &op);
    cairn_stats st;
    cairn_get_stats(db, &st);
    printf("  first failure at op %" PRIu32 " (%" PRIu64 " acked in all, %" PRIu64
           " KiB of values): %" PRIu64 " refused with ENOSPC, %" PRIu64
           " with READONLY; %" PRIu64 " bytes free; background error %d "
           "(%s); %" PRIu64 " flushes, %" PRIu64 " compactions\n",
           g_m.first_fail_op, g_m.acked_ops, g_m.acked_bytes >> 10,
           g_m.refused_ops, g_m.readonly_ops, fs_free_bytes(),
           st.background_error, cairn_strerror(st.background_error),
           st.flushes, st.compactions);
    assert_true(g_m.first_fail_op > 0);
    assert_true(g_m.acked_ops > 50);
    check_all(db, "full", false);
    idle_while_full(db);

    if (grow_by_remount)
        assert_int_equal(remount_size("24m"), 0);
    else
        assert_int_equal(unlink(g_ballast), 0);
    bool reopened;
    db = resume(db, &o, &op, &reopened);
    check_all(db, "resumed", reopened);
    assert_int_equal(cairn_close(db), 0);
    check_no_stray_files(&o);
    db = NULL;
    assert_int_equal(cairn_open(g_dbdir, &o, &db), 0);
    check_all(db, "after reopen", true);
    /* And it still writes. */
    assert_int_equal(one_op(db, op++), 0);
    assert_int_equal(cairn_close(db), 0);
}

static void test_full_then_ballast_freed(void **state)
{
    (void)state;
    run_cycle(false);
}

static void test_full_then_remount_bigger(void **state)
{
    (void)state;
    run_cycle(true);
}

/* The default log segment (64 MiB, preallocated) is larger than this whole
 * file system: the database must still open and take writes. */
static void test_segment_larger_than_disk(void **state)
{
    (void)state;
    memset(&g_m, 0, sizeof g_m);
    fs_reset("12m");
    cairn_options o;
    db_opts(&o, false);
    cairn_db *db = NULL;
    int rc = cairn_open(g_dbdir, &o, &db);
    if (rc != 0)
        fail_msg("open on a 12 MiB file system with 64 MiB log segments: "
                 "%d (%s)", rc, cairn_strerror(rc));
    uint32_t op = 0;
    for (int i = 0; i < 100; i++) {
        rc = one_op(db, op++);
        if (rc != 0)
            fail_msg("write %d: %d (%s)", i, rc, cairn_strerror(rc));
    }
    fill(db, &op);
    check_all(db, "full", false);
    /* Closing on a full disk: its flush may fail (the log keeps it). */
    rc = cairn_close(db);
    printf("  close on the full disk: %d (%s)\n", rc, cairn_strerror(rc));
    assert_true(rc == 0 || rc == CAIRN_ENOSPC);
    db = NULL;
    /* Opening for writing replays the log and flushes what it holds: on a
     * disk with no byte left that fails, cleanly, with ENOSPC. Opening for
     * reading always works. */
    rc = cairn_open(g_dbdir, &o, &db);
    printf("  read-write open on the full disk: %d (%s)\n", rc,
           cairn_strerror(rc));
    assert_true(rc == 0 || rc == CAIRN_ENOSPC);
    if (rc == 0) {
        check_all(db, "after reopen", true);
        rc = cairn_close(db);
        assert_true(rc == 0 || rc == CAIRN_ENOSPC);
    }
    db = NULL;
    cairn_options ro = o;
    ro.read_only = true;
    rc = cairn_open(g_dbdir, &ro, &db);
    if (rc != 0) /* it failed whenever the log held over a memtable */
        fail_msg("read-only open on the full disk: %d (%s)", rc,
                 cairn_strerror(rc));
    check_all(db, "read-only open on the full disk", true);
    assert_int_equal(cairn_close(db), 0);
    /* With room again: open, write, close cleanly, nothing stray. */
    assert_int_equal(remount_size("24m"), 0);
    db = NULL;
    assert_int_equal(cairn_open(g_dbdir, &o, &db), 0);
    check_all(db, "reopened with room", true);
    for (int i = 0; i < 50; i++)
        assert_int_equal(one_op(db, op++), 0);
    assert_int_equal(cairn_close(db), 0);
    check_no_stray_files(&o);
}

static int run_suite(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_then_ballast_freed),
        cmocka_unit_test(test_full_then_remount_bigger),
        cmocka_unit_test(test_segment_larger_than_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (tu_env_u64("CAIRN_UNDER_VALGRIND", 0))
        g_slow = 10;
    char *dir = tu_mkdtemp("diskfull");
    if (!dir) {
        fprintf(stderr, "test_disk_full: cannot create a temporary "
                        "directory: %s\n", strerror(errno));
        return 1;
    }
    snprintf(g_mnt, sizeof g_mnt, "%s", dir);
    snprintf(g_dbdir, sizeof g_dbdir, "%s/db", g_mnt);
    snprintf(g_ballast, sizeof g_ballast, "%s/ballast", g_mnt);
    if (mount("tmpfs", g_mnt, "tmpfs", 0, "size=12m,mode=0700") != 0) {
        int e = errno;
        fprintf(stderr,
                "test_disk_full: FAILED: cannot mount a tmpfs on %s: %s "
                "(this test needs root with CAP_SYS_ADMIN; euid %d)\n",
                g_mnt, strerror(e), (int)geteuid());
        rmdir(g_mnt);
        free(dir);
        return 1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "test_disk_full: fork: %s\n", strerror(errno));
        umount2(g_mnt, MNT_DETACH);
        rmdir(g_mnt);
        free(dir);
        return 1;
    }
    if (pid == 0)
        _exit(run_suite() == 0 ? 0 : 1);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    if (WIFSIGNALED(status))
        fprintf(stderr, "test_disk_full: the tests died with signal %d\n",
                WTERMSIG(status));
    if (umount2(g_mnt, 0) != 0 && umount2(g_mnt, MNT_DETACH) != 0) {
        fprintf(stderr, "test_disk_full: unmounting %s: %s\n", g_mnt,
                strerror(errno));
        rc = 1;
    }
    rmdir(g_mnt);
    free(dir);
    return rc;
}
