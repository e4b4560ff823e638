/*
 * test_env.c — unit tests for the env layer: the POSIX env, the memory env
 * (including simulated power loss) and the fault-injecting env.
 *
 * The same "basics" scenario runs against every env (POSIX in a fresh
 * mkdtemp directory, memory, and fault envs with no rule over both), so the
 * implementations are held to one contract. Power-loss and fault tests use a
 * memory env underneath.
 *
 * Invariants: each test creates and destroys its own envs and temporary
 * directories, so tests are independent and leave nothing behind.
 * Locking: only test_concurrent uses threads; they share the envs, whose
 * own mutexes are what it exercises.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn.h"
#include "env/env.h"

/* ---- helpers ---- */

static char *join(char *buf, size_t n, const char *dir, const char *name)
{
    int w = snprintf(buf, n, "%s/%s", dir, name);
    assert_true(w > 0 && (size_t)w < n);
    return buf;
}

static void write_file(cairn_env *env, const char *path, const void *data,
                       size_t len, bool sync)
{
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, path,
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                        CAIRN_OPEN_TRUNC,
                                    &f),
                     0);
    assert_int_equal(cairn_file_write_at(f, 0, data, len), 0);
    if (sync)
        assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_FULL), 0);
    assert_int_equal(cairn_file_close(f), 0);
}

/* Read the whole file at path into a malloc'd buffer; *len gets its size. */
static uint8_t *read_file(cairn_env *env, const char *path, size_t *len)
{
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_READ, &f), 0);
    uint64_t size = 0;
    assert_int_equal(cairn_file_size(f, &size), 0);
    uint8_t *buf = malloc(size + 1);
    assert_non_null(buf);
    size_t got = 0;
    assert_int_equal(cairn_file_read_at(f, 0, buf, size, &got), 0);
    assert_int_equal(got, size);
    assert_int_equal(cairn_file_close(f), 0);
    *len = (size_t)size;
    return buf;
}

static uint64_t file_size(cairn_env *env, const char *path)
{
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_READ, &f), 0);
    uint64_t size = 0;
    assert_int_equal(cairn_file_size(f, &size), 0);
    assert_int_equal(cairn_file_close(f), 0);
    return size;
}

static bool list_has(char **names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

static void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)((i * 31u + seed * 7u + 1u) & 0xff);
}

/* Remove dir and everything in it (one level of subdirectories deep is all
 * the tests create, but this recurses anyway). */
static void rm_rf(const char *dir)
{
    char **names = NULL;
    size_t n = 0;
    if (cairn_env_list_dir(cairn_env_posix(), dir, &names, &n) != 0)
        return;
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        join(p, sizeof p, dir, names[i]);
        if (cairn_env_unlink(cairn_env_posix(), p) != 0)
            rm_rf(p);
    }
    cairn_env_free_list(names, n);
    rmdir(dir);
}

/* ---- the shared contract ---- */

static void basics(cairn_env *env, const char *root)
{
    char a[512], b[512], c[512], sub[512], lk[512], missing[512];
    join(a, sizeof a, root, "a.dat");
    join(b, sizeof b, root, "b.dat");
    join(c, sizeof c, root, "c.dat");
    join(sub, sizeof sub, root, "sub");
    join(lk, sizeof lk, root, "LOCK");
    join(missing, sizeof missing, root, "nodir/x.dat");
    cairn_file *f = NULL, *g = NULL;

    /* mkdir / exists */
    assert_int_equal(cairn_env_mkdir(env, sub), 0);
    assert_int_equal(cairn_env_mkdir(env, sub), CAIRN_EEXIST);
    assert_int_equal(cairn_env_exists(env, sub), 0);
    assert_int_equal(cairn_env_exists(env, a), CAIRN_ENOTFOUND);

    /* open: missing file, missing parent, create, excl */
    assert_int_equal(cairn_env_open(env, a, CAIRN_OPEN_READ, &f),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_open(env, missing,
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE, &f),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_open(env, a,
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                        CAIRN_OPEN_EXCL,
                                    &f),
                     0);
    assert_non_null(f);
    assert_int_equal(cairn_env_exists(env, a), 0);
    assert_int_equal(cairn_env_open(env, a,
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                        CAIRN_OPEN_EXCL,
                                    &g),
                     CAIRN_EEXIST);

    /* write_at / read_at / size, with a hole */
    uint64_t size = 99;
    assert_int_equal(cairn_file_size(f, &size), 0);
    assert_int_equal(size, 0);
    assert_int_equal(cairn_file_write_at(f, 0, "hello", 5), 0);
    assert_int_equal(cairn_file_write_at(f, 10, "world", 5), 0);
    assert_int_equal(cairn_file_size(f, &size), 0);
    assert_int_equal(size, 15);
    char buf[256];
    size_t got = 0;
    memset(buf, 'x', sizeof buf);
    assert_int_equal(cairn_file_read_at(f, 0, buf, sizeof buf, &got), 0);
    assert_int_equal(got, 15);
    assert_memory_equal(buf, "hello\0\0\0\0\0world", 15);
    assert_int_equal(cairn_file_read_at(f, 12, buf, 10, &got), 0);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "rld", 3);
    got = 7;
    assert_int_equal(cairn_file_read_at(f, 15, buf, 10, &got), 0);
    assert_int_equal(got, 0);
    got = 7;
    assert_int_equal(cairn_file_read_at(f, 1000, buf, 10, &got), 0);
    assert_int_equal(got, 0);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), 0);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_FULL), 0);

    /* allocate grows with zeros, never shrinks */
    assert_int_equal(cairn_file_allocate(f, 0, 100), 0);
    assert_int_equal(cairn_file_size(f, &size), 0);
    assert_int_equal(size, 100);
    assert_int_equal(cairn_file_allocate(f, 0, 10), 0);
    assert_int_equal(cairn_file_size(f, &size), 0);
    assert_int_equal(size, 100);
    assert_int_equal(cairn_file_read_at(f, 0, buf, 100, &got), 0);
    assert_int_equal(got, 100);
    assert_memory_equal(buf, "hello\0\0\0\0\0world", 15);
    for (size_t i = 15; i < 100; i++)
        assert_int_equal(buf[i], 0);

    /* truncate shrinks, then zero-extends */
    assert_int_equal(cairn_file_truncate(f, 4), 0);
    assert_int_equal(cairn_file_size(f, &size), 0);
    assert_int_equal(size, 4);
    assert_int_equal(cairn_file_truncate(f, 8), 0);
    assert_int_equal(cairn_file_read_at(f, 0, buf, sizeof buf, &got), 0);
    assert_int_equal(got, 8);
    assert_memory_equal(buf, "hell\0\0\0\0", 8);
    assert_int_equal(cairn_file_close(f), 0);

    /* read-only handle: reads work, writes are refused */
    assert_int_equal(cairn_env_open(env, a, CAIRN_OPEN_READ, &f), 0);
    assert_int_equal(cairn_file_read_at(f, 0, buf, 4, &got), 0);
    assert_int_equal(got, 4);
    assert_int_equal(cairn_file_write_at(f, 0, "x", 1), CAIRN_EINVAL);
    assert_int_equal(cairn_file_close(f), 0);

    /* TRUNC on open */
    write_file(env, c, "ccc", 3, false);
    assert_int_equal(file_size(env, c), 3);
    assert_int_equal(cairn_env_open(env, c,
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_TRUNC, &f),
                     0);
    assert_int_equal(cairn_file_size(f, &size), 0);
    assert_int_equal(size, 0);
    assert_int_equal(cairn_file_close(f), 0);

    /* rename: plain, then over an existing target */
    assert_int_equal(cairn_env_rename(env, a, b), 0);
    assert_int_equal(cairn_env_exists(env, a), CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_exists(env, b), 0);
    assert_int_equal(file_size(env, b), 8);
    write_file(env, c, "new", 3, false);
    assert_int_equal(cairn_env_rename(env, c, b), 0);
    assert_int_equal(cairn_env_exists(env, c), CAIRN_ENOTFOUND);
    size_t len = 0;
    uint8_t *data = read_file(env, b, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "new", 3);
    free(data);
    assert_int_equal(cairn_env_rename(env, a, c), CAIRN_ENOTFOUND);

    /* list_dir lists files and subdirectories */
    write_file(env, a, "A", 1, false);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(cairn_env_list_dir(env, root, &names, &n), 0);
    assert_int_equal(n, 3);
    assert_true(list_has(names, n, "a.dat"));
    assert_true(list_has(names, n, "b.dat"));
    assert_true(list_has(names, n, "sub"));
    assert_false(list_has(names, n, "c.dat"));
    cairn_env_free_list(names, n);
    char nodir[512];
    join(nodir, sizeof nodir, root, "nodir");
    names = NULL;
    assert_int_equal(cairn_env_list_dir(env, nodir, &names, &n),
                     CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_sync_dir(env, root), 0);

    /* unlink */
    assert_int_equal(cairn_env_unlink(env, b), 0);
    assert_int_equal(cairn_env_exists(env, b), CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_unlink(env, b), CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_unlink(env, a), 0);

    /* lock: exclusive, creates the file, reusable after unlock */
    cairn_filelock *l1 = NULL, *l2 = NULL;
    assert_int_equal(cairn_env_lock(env, lk, &l1), 0);
    assert_non_null(l1);
    assert_int_equal(cairn_env_exists(env, lk), 0);
    assert_int_equal(cairn_env_lock(env, lk, &l2), CAIRN_EBUSY);
    assert_int_equal(cairn_env_unlock(l1), 0);
    assert_int_equal(cairn_env_lock(env, lk, &l2), 0);
    assert_int_equal(cairn_env_unlock(l2), 0);
    assert_int_equal(cairn_env_unlink(env, lk), 0);
}

static char *make_tmpdir(void)
{
    char *dir = strdup("/tmp/cairn_test_env_XXXXXX");
    assert_non_null(dir);
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void test_posix_basics(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_posix();
    assert_string_equal(env->ops->name, "posix");
    char *dir = make_tmpdir();
    basics(env, dir);
    rm_rf(dir);
    assert_int_equal(cairn_env_exists(env, dir), CAIRN_ENOTFOUND);
    free(dir);
}

static void test_mem_basics(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    assert_non_null(env);
    assert_string_equal(env->ops->name, "mem");
    assert_int_equal(cairn_env_exists(env, "/"), 0);
    assert_int_equal(cairn_env_mkdir(env, "/db"), 0);
    basics(env, "/db");
    /* Relative paths and redundant separators name the same files. */
    assert_int_equal(cairn_env_mkdir_p(env, "x/y/z"), 0);
    assert_int_equal(cairn_env_exists(env, "/x/y//z/"), 0);
    write_file(env, "/x/./y/f", "1", 1, false);
    assert_int_equal(cairn_env_exists(env, "x/y/z/../f"), 0);
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, "/x", CAIRN_OPEN_READ, &f),
                     CAIRN_EINVAL);
    cairn_env_destroy(env);
}

static void test_fault_basics_passthrough(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *fe = cairn_env_fault_new(mem);
    assert_non_null(fe);
    assert_string_equal(fe->ops->name, "fault");
    assert_int_equal(cairn_env_mkdir(fe, "/db"), 0);
    basics(fe, "/db");
    assert_int_equal(cairn_env_fault_injected(fe), 0);
    assert_true(cairn_env_fault_calls(fe) > 50);
    cairn_env_destroy(fe);
    cairn_env_destroy(mem);

    fe = cairn_env_fault_new(cairn_env_posix());
    char *dir = make_tmpdir();
    basics(fe, dir);
    assert_int_equal(cairn_env_fault_injected(fe), 0);
    cairn_env_destroy(fe);
    rm_rf(dir);
    free(dir);
}

/* ---- POSIX env: writes through a mapping ---- */

/* The resident size (kB) of this process's mapping of path, -1 if none. */
static long mapped_rss_kb(const char *path)
{
    FILE *fp = fopen("/proc/self/smaps", "r");
    if (!fp)
        return -2;
    char line[4096];
    bool in = false;
    long kb = -1;
    while (fgets(line, sizeof line, fp)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n')
            line[--n] = '\0';
        /* A mapping's first line is "start-end perms ... path"; its
         * fields ("Name:   value kB") follow. */
        size_t tok = strcspn(line, " ");
        if (tok > 0 && memchr(line, '-', tok) && line[tok - 1] != ':')
            in = n >= strlen(path) &&
                 strcmp(line + n - strlen(path), path) == 0;
        else if (in && strncmp(line, "Rss:", 4) == 0) {
            kb = strtol(line + 4, NULL, 10);
            in = false;
        }
    }
    fclose(fp);
    return kb;
}

static void pattern(uint8_t *b, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((off + i) * 131 + ((off + i) >> 12));
}

static void check_pattern(cairn_file *f, uint64_t from, uint64_t to)
{
    static uint8_t got[65536], want[65536];
    for (uint64_t off = from; off < to; off += sizeof got) {
        size_t n = to - off < sizeof got ? (size_t)(to - off) : sizeof got;
        size_t nr = 0;
        assert_int_equal(cairn_file_read_at(f, off, got, n, &nr), 0);
        assert_int_equal(nr, n);
        pattern(want, n, off);
        assert_memory_equal(got, want, n);
    }
}

static void test_posix_mapped_writes(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_posix();
    char *dir = make_tmpdir();
    char path[4200];
    snprintf(path, sizeof path, "%s/seg", dir);
    const uint64_t len = 4u << 20;
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, path,
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE,
                                    &f),
                     0);
    /* Nothing reserved: no mapping (a store could meet a full disk). */
    assert_int_equal(cairn_file_map_writes(f, len), CAIRN_ENOTSUP);
    assert_int_equal(cairn_file_allocate(f, 0, len), 0);
    assert_int_equal(cairn_file_map_writes(f, len + 4096), CAIRN_ENOTSUP);
    assert_int_equal(cairn_file_map_writes(f, len), 0);
    assert_int_equal(cairn_file_map_writes(f, len), 0);
    assert_true(mapped_rss_kb(path) >= 0); /* mapped */

    /* 3.5 MiB in 1000-byte writes, as a log appends. */
    static uint8_t buf[65536];
    uint64_t off = 0;
    const uint64_t upto = (7u << 20) / 2;
    while (off < upto) {
        pattern(buf, 1000, off);
        assert_int_equal(cairn_file_write_at(f, off, buf, 1000), 0);
        off += 1000;
    }
    /* Pages behind the writes left the resident set: at most the current
     * MiB step (and the page the next write goes to) stays. */
    long rss = mapped_rss_kb(path);
    assert_true(rss >= 0);
    assert_true(rss <= 1024 + 8);
    /* Another handle (and this one) read what was stored. */
    cairn_file *r = NULL;
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_READ, &r), 0);
    check_pattern(r, 0, off);
    check_pattern(f, 0, off);
    /* A write across the mapping's end goes through a write call. */
    pattern(buf, 5000, len - 1000);
    assert_int_equal(cairn_file_write_at(f, len - 1000, buf, 5000), 0);
    uint64_t size = 0;
    assert_int_equal(cairn_file_size(f, &size), 0);
    assert_int_equal(size, len + 4000);
    check_pattern(r, len - 1000, len + 4000);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), 0);

    /* Truncate ends the mapping; later writes are write calls. */
    assert_int_equal(cairn_file_truncate(f, 1u << 20), 0);
    assert_int_equal(mapped_rss_kb(path), -1);
    pattern(buf, 3000, 2u << 20);
    assert_int_equal(cairn_file_write_at(f, 2u << 20, buf, 3000), 0);
    assert_int_equal(cairn_file_size(f, &size), 0);
    assert_int_equal(size, (2u << 20) + 3000);
    check_pattern(r, 0, 1u << 20);
    check_pattern(r, 2u << 20, (2u << 20) + 3000);
    /* What truncate gave back is no longer reserved. */
    assert_int_equal(cairn_file_map_writes(f, len), CAIRN_ENOTSUP);
    assert_int_equal(cairn_file_close(r), 0);
    assert_int_equal(cairn_file_close(f), 0);

    /* Close ends it too. */
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_WRITE, &f), 0);
    assert_int_equal(cairn_file_allocate(f, 0, len), 0);
    assert_int_equal(cairn_file_map_writes(f, len), 0);
    assert_true(mapped_rss_kb(path) >= 0);
    assert_int_equal(cairn_file_close(f), 0);
    assert_int_equal(mapped_rss_kb(path), -1);

    /* Envs that must see every write have no mapping. */
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *fe = cairn_env_fault_new(env);
    assert_int_equal(cairn_env_open(fe, path, CAIRN_OPEN_WRITE, &f), 0);
    assert_int_equal(cairn_file_allocate(f, 0, len), 0);
    assert_int_equal(cairn_file_map_writes(f, len), CAIRN_ENOTSUP);
    assert_int_equal(cairn_file_close(f), 0);
    assert_int_equal(cairn_env_open(mem, "/m", CAIRN_OPEN_WRITE |
                                                   CAIRN_OPEN_CREATE, &f),
                     0);
    assert_int_equal(cairn_file_allocate(f, 0, len), 0);
    assert_int_equal(cairn_file_map_writes(f, len), CAIRN_ENOTSUP);
    assert_int_equal(cairn_file_close(f), 0);
    cairn_env_destroy(fe);
    cairn_env_destroy(mem);
    rm_rf(dir);
    free(dir);
}

/* ---- memory env: power loss ---- */

static void test_mem_power_loss_data(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    uint8_t data[300];
    fill_pattern(data, sizeof data, 1);
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, "/f",
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE, &f),
                     0);
    assert_int_equal(cairn_env_sync_dir(env, "/"), 0);
    assert_int_equal(cairn_file_write_at(f, 0, data, 100), 0);
    assert_int_equal(cairn_env_mem_unsynced_bytes(env), 100);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), 0);
    assert_int_equal(cairn_env_mem_unsynced_bytes(env), 0);
    assert_int_equal(cairn_file_write_at(f, 100, data + 100, 200), 0);
    assert_int_equal(cairn_env_mem_unsynced_bytes(env), 200);
    /* An overwrite inside the synced region is unsynced too. */
    uint8_t z = (uint8_t)(data[50] ^ 0xff);
    assert_int_equal(cairn_file_write_at(f, 50, &z, 1), 0);
    assert_int_equal(cairn_env_mem_unsynced_bytes(env), 250);

    assert_int_equal(cairn_env_mem_power_loss(env, false, 7), 0);
    assert_int_equal(cairn_env_mem_unsynced_bytes(env), 0);
    assert_int_equal(cairn_file_close(f), 0);
    size_t len = 0;
    uint8_t *got = read_file(env, "/f", &len);
    assert_int_equal(len, 100);
    assert_memory_equal(got, data, 100);
    free(got);

    /* A synced truncate is durable; an unsynced one is undone. */
    assert_int_equal(cairn_env_open(env, "/f", CAIRN_OPEN_WRITE, &f), 0);
    assert_int_equal(cairn_file_truncate(f, 40), 0);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_FULL), 0);
    assert_int_equal(cairn_file_truncate(f, 10), 0);
    assert_int_equal(cairn_file_close(f), 0);
    assert_int_equal(cairn_env_mem_power_loss(env, false, 8), 0);
    assert_int_equal(file_size(env, "/f"), 40);
    cairn_env_destroy(env);
}

static void test_mem_power_loss_entries(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    assert_int_equal(cairn_env_mkdir(env, "/d"), 0);
    write_file(env, "/d/kept", "k", 1, true);
    write_file(env, "/d/gone_later", "g", 1, true);
    assert_int_equal(cairn_env_sync_dir(env, "/d"), 0);
    /* Created and synced, but the directory was not synced: lost. */
    write_file(env, "/d/new", "n", 1, true);
    /* Unlinked without a directory sync: comes back. */
    assert_int_equal(cairn_env_unlink(env, "/d/gone_later"), 0);
    /* Renamed without a directory sync: undone. */
    assert_int_equal(cairn_env_rename(env, "/d/kept", "/d/moved"), 0);
    assert_int_equal(cairn_env_exists(env, "/d/new"), 0);
    assert_int_equal(cairn_env_exists(env, "/d/moved"), 0);

    assert_int_equal(cairn_env_mem_power_loss(env, false, 1), 0);
    assert_int_equal(cairn_env_exists(env, "/d"), 0);
    assert_int_equal(cairn_env_exists(env, "/d/new"), CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_exists(env, "/d/moved"), CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_exists(env, "/d/kept"), 0);
    assert_int_equal(cairn_env_exists(env, "/d/gone_later"), 0);
    size_t len = 0;
    uint8_t *got = read_file(env, "/d/kept", &len);
    assert_int_equal(len, 1);
    assert_int_equal(got[0], 'k');
    free(got);

    /* The same rename made durable by sync_dir survives. */
    assert_int_equal(cairn_env_rename(env, "/d/kept", "/d/moved"), 0);
    assert_int_equal(cairn_env_sync_dir(env, "/d"), 0);
    assert_int_equal(cairn_env_mem_power_loss(env, false, 2), 0);
    assert_int_equal(cairn_env_exists(env, "/d/kept"), CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_exists(env, "/d/moved"), 0);

    /* A rename over an existing file, undone: the target's durable content
     * comes back. */
    write_file(env, "/d/tmp", "TMP", 3, true);
    assert_int_equal(cairn_env_sync_dir(env, "/d"), 0);
    assert_int_equal(cairn_env_rename(env, "/d/tmp", "/d/moved"), 0);
    got = read_file(env, "/d/moved", &len);
    assert_int_equal(len, 3);
    free(got);
    assert_int_equal(cairn_env_mem_power_loss(env, false, 3), 0);
    got = read_file(env, "/d/moved", &len);
    assert_int_equal(len, 1);
    assert_int_equal(got[0], 'k');
    free(got);
    assert_int_equal(cairn_env_exists(env, "/d/tmp"), 0);

    char **names = NULL;
    size_t n = 0;
    assert_int_equal(cairn_env_list_dir(env, "/d", &names, &n), 0);
    assert_int_equal(n, 3);
    assert_true(list_has(names, n, "moved"));
    assert_true(list_has(names, n, "gone_later"));
    assert_true(list_has(names, n, "tmp"));
    cairn_env_free_list(names, n);
    cairn_env_destroy(env);
}

static void test_mem_power_loss_torn(void **state)
{
    (void)state;
    enum { DUR = 1000, MORE = 10000, SMALL = 500 };
    uint8_t *data = malloc(DUR + MORE);
    assert_non_null(data);
    fill_pattern(data, DUR + MORE, 3);
    int kept_some = 0, differed = 0;
    for (uint64_t seed = 1; seed <= 32; seed++) {
        cairn_env *env = cairn_env_mem_new();
        write_file(env, "/w", data, DUR, true);
        write_file(env, "/s", data, DUR, true);
        assert_int_equal(cairn_env_sync_dir(env, "/"), 0);
        cairn_file *f = NULL;
        assert_int_equal(cairn_env_open(env, "/w", CAIRN_OPEN_WRITE, &f), 0);
        assert_int_equal(cairn_file_write_at(f, DUR, data + DUR, MORE), 0);
        assert_int_equal(cairn_file_close(f), 0);
        assert_int_equal(cairn_env_open(env, "/s", CAIRN_OPEN_WRITE, &f), 0);
        assert_int_equal(cairn_file_write_at(f, DUR, data + DUR, SMALL), 0);
        assert_int_equal(cairn_file_close(f), 0);
        assert_int_equal(cairn_env_mem_unsynced_bytes(env), MORE + SMALL);

        assert_int_equal(cairn_env_mem_power_loss(env, true, seed), 0);
        size_t len = 0;
        uint8_t *got = read_file(env, "/w", &len);
        /* Durable prefix intact; the file ends at the end of the first
         * unsynced 4 KiB block. */
        assert_int_equal(len, 4096);
        assert_memory_equal(got, data, DUR);
        if (got[DUR] == data[DUR])
            kept_some++;
        if (memcmp(got + DUR, data + DUR, len - DUR) != 0)
            differed++;
        free(got);
        /* A write that ended inside the block keeps its own length. */
        got = read_file(env, "/s", &len);
        assert_int_equal(len, DUR + SMALL);
        assert_memory_equal(got, data, DUR);
        free(got);
        /* The torn state is what is on the medium now. */
        assert_int_equal(cairn_env_mem_unsynced_bytes(env), 0);
        assert_int_equal(cairn_env_mem_power_loss(env, false, seed), 0);
        assert_int_equal(file_size(env, "/w"), 4096);
        cairn_env_destroy(env);
    }
    assert_true(kept_some > 0);
    assert_true(differed > 0);

    /* Without torn, the same scenario loses every unsynced byte. */
    cairn_env *env = cairn_env_mem_new();
    write_file(env, "/w", data, DUR, true);
    assert_int_equal(cairn_env_sync_dir(env, "/"), 0);
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, "/w", CAIRN_OPEN_WRITE, &f), 0);
    assert_int_equal(cairn_file_write_at(f, DUR, data + DUR, MORE), 0);
    assert_int_equal(cairn_file_close(f), 0);
    assert_int_equal(cairn_env_mem_power_loss(env, false, 5), 0);
    assert_int_equal(file_size(env, "/w"), DUR);
    cairn_env_destroy(env);
    free(data);
}

static void test_mem_stale_handles(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    write_file(env, "/f", "abc", 3, true);
    assert_int_equal(cairn_env_sync_dir(env, "/"), 0);
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(env, "/f", CAIRN_OPEN_WRITE, &f), 0);
    cairn_filelock *l = NULL, *l2 = NULL;
    assert_int_equal(cairn_env_lock(env, "/LOCK", &l), 0);
    assert_int_equal(cairn_env_lock(env, "/LOCK", &l2), CAIRN_EBUSY);

    assert_int_equal(cairn_env_mem_power_loss(env, false, 0), 0);
    char buf[8];
    size_t got = 0;
    uint64_t size = 0;
    assert_int_equal(cairn_file_read_at(f, 0, buf, 3, &got), CAIRN_EIO);
    assert_int_equal(cairn_file_write_at(f, 0, "x", 1), CAIRN_EIO);
    assert_int_equal(cairn_file_size(f, &size), CAIRN_EIO);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), CAIRN_EIO);
    assert_int_equal(cairn_file_truncate(f, 0), CAIRN_EIO);
    assert_int_equal(cairn_file_allocate(f, 0, 10), CAIRN_EIO);
    assert_int_equal(cairn_file_close(f), 0);
    /* Locks were released by the power loss. */
    assert_int_equal(cairn_env_lock(env, "/LOCK", &l2), 0);
    assert_int_equal(cairn_env_unlock(l), 0);
    assert_int_equal(cairn_env_lock(env, "/LOCK", &l), CAIRN_EBUSY);
    assert_int_equal(cairn_env_unlock(l2), 0);
    /* New handles work. */
    assert_int_equal(file_size(env, "/f"), 3);

    /* An unlinked file stays readable through an open handle. */
    assert_int_equal(cairn_env_open(env, "/f", CAIRN_OPEN_READ, &f), 0);
    assert_int_equal(cairn_env_unlink(env, "/f"), 0);
    assert_int_equal(cairn_env_exists(env, "/f"), CAIRN_ENOTFOUND);
    assert_int_equal(cairn_file_read_at(f, 0, buf, sizeof buf, &got), 0);
    assert_int_equal(got, 3);
    assert_memory_equal(buf, "abc", 3);
    assert_int_equal(cairn_file_close(f), 0);

    /* Power loss is for memory envs only. */
    assert_int_equal(cairn_env_mem_power_loss(cairn_env_posix(), false, 0),
                     CAIRN_EINVAL);
    cairn_env *fe = cairn_env_fault_new(env);
    assert_int_equal(cairn_env_mem_power_loss(fe, false, 0), CAIRN_EINVAL);
    cairn_env_destroy(fe);
    cairn_env_destroy(env);
}

/* ---- fault env ---- */

typedef struct fixture {
    cairn_env *mem, *fe;
} fixture;

static int fault_setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    fx->mem = cairn_env_mem_new();
    fx->fe = fx->mem ? cairn_env_fault_new(fx->mem) : NULL;
    if (!fx->fe)
        return -1;
    *state = fx;
    return 0;
}

static int fault_teardown(void **state)
{
    fixture *fx = *state;
    cairn_env_destroy(fx->fe);
    cairn_env_destroy(fx->mem);
    free(fx);
    return 0;
}

static void test_fault_nth_write(void **state)
{
    fixture *fx = *state;
    cairn_env *fe = fx->fe;
    cairn_fault_rule r = {
        .op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE),
        .fail_at = 3,
        .error = CAIRN_EIO,
    };
    cairn_env_fault_set(fe, &r);
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(fe, "/f",
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE, &f),
                     0);
    assert_int_equal(cairn_file_write_at(f, 0, "a", 1), 0);
    assert_int_equal(cairn_file_write_at(f, 1, "b", 1), 0);
    assert_int_equal(cairn_file_write_at(f, 2, "c", 1), CAIRN_EIO);
    assert_int_equal(cairn_file_write_at(f, 3, "d", 1), 0);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), 0); /* not counted */
    assert_int_equal(cairn_env_fault_calls(fe), 4);
    assert_int_equal(cairn_env_fault_injected(fe), 1);
    char buf[4];
    size_t got = 0;
    assert_int_equal(cairn_file_read_at(f, 0, buf, 4, &got), 0);
    assert_int_equal(got, 4);
    assert_memory_equal(buf, "ab\0d", 4); /* the failed write wrote nothing */
    assert_int_equal(cairn_file_close(f), 0);

    /* fail_count: a window of consecutive failures. */
    r.fail_at = 2;
    r.fail_count = 3;
    cairn_env_fault_set(fe, &r);
    assert_int_equal(cairn_env_fault_calls(fe), 0);
    assert_int_equal(cairn_env_open(fe, "/f", CAIRN_OPEN_WRITE, &f), 0);
    int expect[] = {0, CAIRN_EIO, CAIRN_EIO, CAIRN_EIO, 0, 0};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++)
        assert_int_equal(cairn_file_write_at(f, 0, "z", 1), expect[i]);
    assert_int_equal(cairn_env_fault_injected(fe), 3);
    assert_int_equal(cairn_file_close(f), 0);
}

static void test_fault_path_enospc(void **state)
{
    fixture *fx = *state;
    cairn_env *fe = fx->fe;
    assert_int_equal(cairn_env_mkdir(fe, "/db"), 0);
    write_file(fe, "/db/data", "d", 1, false);
    cairn_fault_rule r = {
        .op_mask = 0, /* every op */
        .path_substr = "wal",
        .fail_at = 1,
        .fail_count = UINT64_MAX,
        .error = CAIRN_ENOSPC,
    };
    char pattern[] = "wal";
    r.path_substr = pattern;
    cairn_env_fault_set(fe, &r);
    pattern[0] = 'X'; /* the env copied the pattern */
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(fe, "/db/wal-1",
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE, &f),
                     CAIRN_ENOSPC);
    assert_null(f);
    assert_int_equal(cairn_env_exists(fe, "/db/wal-1"), CAIRN_ENOSPC);
    assert_int_equal(cairn_env_rename(fe, "/db/data", "/db/wal-2"),
                     CAIRN_ENOSPC);
    /* Non-matching paths go through. */
    assert_int_equal(cairn_env_exists(fe, "/db/data"), 0);
    assert_int_equal(cairn_env_open(fe, "/db/data", CAIRN_OPEN_WRITE, &f), 0);
    assert_int_equal(cairn_file_write_at(f, 1, "e", 1), 0);
    assert_int_equal(cairn_file_close(f), 0);
    assert_int_equal(cairn_env_exists(fe, "/db/wal-1"), CAIRN_ENOSPC);
    assert_int_equal(cairn_env_fault_calls(fe), 4);
    assert_int_equal(cairn_env_fault_injected(fe), 4);
    /* The base never saw the failed calls. */
    assert_int_equal(cairn_env_exists(fx->mem, "/db/wal-1"), CAIRN_ENOTFOUND);
    assert_int_equal(cairn_env_exists(fx->mem, "/db/data"), 0);

    /* File ops match on the path the file was opened with. */
    cairn_env_fault_reset(fe);
    assert_int_equal(cairn_env_open(fe, "/db/wal-1",
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE, &f),
                     0);
    r.op_mask = CAIRN_OPMASK(CAIRN_OP_SYNC);
    r.path_substr = "wal";
    cairn_env_fault_set(fe, &r);
    assert_int_equal(cairn_file_write_at(f, 0, "w", 1), 0);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), CAIRN_ENOSPC);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_FULL), CAIRN_ENOSPC);
    /* close never fails and is not counted */
    assert_int_equal(cairn_file_close(f), 0);
    assert_int_equal(cairn_env_fault_calls(fe), 2);
}

static void test_fault_short_write(void **state)
{
    fixture *fx = *state;
    cairn_env *fe = fx->fe;
    enum { LEN = 1000 };
    uint8_t data[LEN];
    fill_pattern(data, LEN, 9);
    int nonempty = 0;
    for (uint64_t seed = 1; seed <= 16; seed++) {
        cairn_file *f = NULL;
        assert_int_equal(cairn_env_open(fe, "/f",
                                        CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                            CAIRN_OPEN_TRUNC,
                                        &f),
                         0);
        cairn_fault_rule r = {
            .op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE),
            .fail_at = 1,
            .error = CAIRN_ENOSPC,
            .short_write = true,
            .seed = seed,
        };
        cairn_env_fault_set(fe, &r);
        assert_int_equal(cairn_file_write_at(f, 0, data, LEN), CAIRN_ENOSPC);
        uint64_t size = 0;
        assert_int_equal(cairn_file_size(f, &size), 0);
        assert_true(size < LEN); /* a strict prefix */
        if (size > 0)
            nonempty++;
        uint8_t got[LEN];
        size_t n = 0;
        assert_int_equal(cairn_file_read_at(f, 0, got, LEN, &n), 0);
        assert_int_equal(n, size);
        assert_memory_equal(got, data, n);
        /* The next write is not in the failure window. */
        assert_int_equal(cairn_file_write_at(f, 0, data, LEN), 0);
        assert_int_equal(cairn_file_size(f, &size), 0);
        assert_int_equal(size, LEN);
        assert_int_equal(cairn_file_close(f), 0);
        cairn_env_fault_reset(fe);
    }
    assert_true(nonempty > 0);
}

static void test_fault_forever(void **state)
{
    fixture *fx = *state;
    cairn_env *fe = fx->fe;
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(fe, "/f",
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE, &f),
                     0);
    cairn_fault_rule r = {
        .op_mask = CAIRN_OPMASK(CAIRN_OP_SYNC),
        .fail_at = 2,
        .fail_count = UINT64_MAX,
        .error = CAIRN_EIO,
    };
    cairn_env_fault_set(fe, &r);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), CAIRN_EIO);
    assert_int_equal(cairn_env_fault_calls(fe), 101);
    assert_int_equal(cairn_env_fault_injected(fe), 100);
    /* Other ops are unaffected. */
    assert_int_equal(cairn_file_write_at(f, 0, "x", 1), 0);
    cairn_env_fault_reset(fe);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), 0);
    assert_int_equal(cairn_env_fault_injected(fe), 0);
    /* With no rule every call is counted and none fails. */
    assert_int_equal(cairn_env_fault_calls(fe), 1);
    assert_int_equal(cairn_file_close(f), 0);
    assert_int_equal(cairn_env_fault_calls(fe), 1);

    /* unlock and close never fail, even when every op is failing. */
    cairn_filelock *l = NULL;
    assert_int_equal(cairn_env_lock(fe, "/LOCK", &l), 0);
    assert_int_equal(cairn_env_open(fe, "/f", CAIRN_OPEN_READ, &f), 0);
    r.op_mask = 0;
    r.fail_at = 1;
    cairn_env_fault_set(fe, &r);
    assert_int_equal(cairn_env_exists(fe, "/f"), CAIRN_EIO);
    assert_int_equal(cairn_env_unlock(l), 0);
    assert_int_equal(cairn_file_close(f), 0);
    assert_int_equal(cairn_env_fault_calls(fe), 1);
    /* The lock really was released in the base. */
    assert_int_equal(cairn_env_lock(fx->mem, "/LOCK", &l), 0);
    assert_int_equal(cairn_env_unlock(l), 0);
}

static void test_fault_power_cut(void **state)
{
    fixture *fx = *state;
    cairn_env *fe = fx->fe;
    uint8_t data[200];
    fill_pattern(data, sizeof data, 4);
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(fe, "/f",
                                    CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE, &f),
                     0);
    assert_int_equal(cairn_env_sync_dir(fe, "/"), 0);
    assert_int_equal(cairn_file_write_at(f, 0, data, 100), 0);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), 0);
    assert_int_equal(cairn_file_write_at(f, 100, data + 100, 50), 0);
    write_file(fe, "/unsynced_entry", "u", 1, true);

    cairn_fault_rule r = {
        .op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE),
        .power_cut_at = 2,
    };
    cairn_env_fault_set(fe, &r);
    assert_false(cairn_env_fault_power_is_cut(fe));
    assert_int_equal(cairn_file_write_at(f, 150, data + 150, 10), 0);
    assert_false(cairn_env_fault_power_is_cut(fe));
    assert_int_equal(cairn_env_mem_unsynced_bytes(fx->mem), 60);
    /* The 2nd write: power is cut before it runs. */
    assert_int_equal(cairn_file_write_at(f, 160, data + 160, 40), CAIRN_EIO);
    assert_true(cairn_env_fault_power_is_cut(fe));
    assert_int_equal(cairn_env_mem_unsynced_bytes(fx->mem), 0);
    /* Every later call fails, whatever its op or path. */
    size_t got = 0;
    char buf[8];
    assert_int_equal(cairn_file_read_at(f, 0, buf, 1, &got), CAIRN_EIO);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_FULL), CAIRN_EIO);
    assert_int_equal(cairn_env_exists(fe, "/f"), CAIRN_EIO);
    assert_int_equal(cairn_env_mkdir(fe, "/d"), CAIRN_EIO);
    cairn_file *g = NULL;
    assert_int_equal(cairn_env_open(fe, "/f", CAIRN_OPEN_READ, &g),
                     CAIRN_EIO);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(cairn_env_list_dir(fe, "/", &names, &n), CAIRN_EIO);
    assert_int_equal(cairn_env_fault_injected(fe), 7);
    /* The base lost what was not durable. */
    assert_int_equal(cairn_env_exists(fx->mem, "/unsynced_entry"),
                     CAIRN_ENOTFOUND);

    cairn_env_fault_reset(fe);
    assert_false(cairn_env_fault_power_is_cut(fe));
    /* Handles from before the cut stay dead (the base marks them stale). */
    assert_int_equal(cairn_file_read_at(f, 0, buf, 1, &got), CAIRN_EIO);
    assert_int_equal(cairn_file_close(f), 0);
    size_t len = 0;
    uint8_t *content = read_file(fe, "/f", &len);
    assert_int_equal(len, 100);
    assert_memory_equal(content, data, 100);
    free(content);
    assert_int_equal(cairn_env_exists(fe, "/unsynced_entry"), CAIRN_ENOTFOUND);
}

static void test_fault_power_cut_torn(void **state)
{
    fixture *fx = *state;
    cairn_env *fe = fx->fe;
    uint8_t data[8192];
    fill_pattern(data, sizeof data, 5);
    write_file(fe, "/wal", data, 5000, true);
    assert_int_equal(cairn_env_sync_dir(fe, "/"), 0);
    cairn_file *f = NULL;
    assert_int_equal(cairn_env_open(fe, "/wal", CAIRN_OPEN_WRITE, &f), 0);
    assert_int_equal(cairn_file_write_at(f, 5000, data + 5000, 3000), 0);
    cairn_fault_rule r = {
        .path_substr = "wal",
        .power_cut_at = 1,
        .torn = true,
        .seed = 42,
    };
    cairn_env_fault_set(fe, &r);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), CAIRN_EIO);
    assert_true(cairn_env_fault_power_is_cut(fe));
    assert_int_equal(cairn_file_close(f), 0);
    cairn_env_fault_reset(fe);
    size_t len = 0;
    uint8_t *got = read_file(fe, "/wal", &len);
    assert_int_equal(len, 8000); /* min(block end 8192, written end 8000) */
    assert_memory_equal(got, data, 5000);
    free(got);
}

/* ---- concurrency (meaningful under -fsanitize=thread) ---- */

typedef struct worker {
    cairn_env *env;
    int id;
    int rc;
} worker;

static void *worker_main(void *arg)
{
    worker *w = arg;
    char path[64];
    snprintf(path, sizeof path, "/t/file-%d", w->id);
    cairn_file *f = NULL;
    int rc = cairn_env_open(w->env, path,
                            CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE, &f);
    uint8_t chunk[512], back[512];
    fill_pattern(chunk, sizeof chunk, (uint32_t)w->id);
    for (int i = 0; rc == 0 && i < 64; i++) {
        rc = cairn_file_write_at(f, (uint64_t)i * sizeof chunk, chunk,
                                 sizeof chunk);
        if (rc == 0 && i % 8 == 7)
            rc = cairn_file_sync(f, CAIRN_SYNC_DATA);
        size_t got = 0;
        if (rc == 0)
            rc = cairn_file_read_at(f, (uint64_t)i * sizeof chunk, back,
                                    sizeof back, &got);
        if (rc == 0 && (got != sizeof back || memcmp(back, chunk, got) != 0))
            rc = CAIRN_ECORRUPT;
        if (rc == 0)
            rc = cairn_env_sync_dir(w->env, "/t");
        (void)cairn_env_mem_unsynced_bytes(w->env);
    }
    if (f)
        cairn_file_close(f);
    w->rc = rc;
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *fe = cairn_env_fault_new(mem);
    assert_int_equal(cairn_env_mkdir(fe, "/t"), 0);
    enum { N = 4 };
    pthread_t th[N];
    worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (worker){.env = i % 2 ? fe : mem, .id = i, .rc = -100};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].rc, 0);
    }
    assert_int_equal(cairn_env_mem_unsynced_bytes(mem), 0);
    char **names = NULL;
    size_t n = 0;
    assert_int_equal(cairn_env_list_dir(fe, "/t", &names, &n), 0);
    assert_int_equal(n, N);
    cairn_env_free_list(names, n);
    assert_int_equal(cairn_env_mem_power_loss(mem, false, 1), 0);
    assert_int_equal(file_size(mem, "/t/file-0"), 64 * 512);
    cairn_env_destroy(fe);
    cairn_env_destroy(mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posix_basics),
        cmocka_unit_test(test_posix_mapped_writes),
        cmocka_unit_test(test_mem_basics),
        cmocka_unit_test(test_fault_basics_passthrough),
        cmocka_unit_test(test_mem_power_loss_data),
        cmocka_unit_test(test_mem_power_loss_entries),
        cmocka_unit_test(test_mem_power_loss_torn),
        cmocka_unit_test(test_mem_stale_handles),
        cmocka_unit_test_setup_teardown(test_fault_nth_write, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_path_enospc, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_short_write, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_forever, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_power_cut, fault_setup,
                                        fault_teardown),
        cmocka_unit_test_setup_teardown(test_fault_power_cut_torn,
                                        fault_setup, fault_teardown),
        cmocka_unit_test(test_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
