/*
 * test_wal.c — functional tests of the write-ahead log: round trips across
 * many rotations (0 B to several MiB), 64 MiB records, argument errors, the
 * directory lock, sync modes, durability callbacks, torn tails, corruption
 * of sealed segments (every flipped bit reported with file and offset),
 * salvage, format versions, write failures (the log goes on) and fsync
 * failures (the log turns read-only), truncation and archival.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cairn.h"
#include "env/env.h"
#include "util/coding.h"
#include "wal/wal.h"
#include "wal_model.h"

/* ---------- helpers ---------- */

static uint64_t rand_len(uint64_t *rng)
{
    /* Mostly small, some medium, a few of several MiB. */
    uint64_t r = tu_rand(rng, 1000);
    if (r < 5)
        return 1 + tu_rand(rng, 3u << 20);
    if (r < 100)
        return tu_rand(rng, 64 * 1024);
    return tu_rand(rng, 512);
}

/* Append count records; every batch_every-th waits for the previous ones
 * (group commit). Records into the model as acknowledged. */
static void append_records(cairn_wal *w, wal_model *m, uint64_t *rng,
                           size_t count, size_t batch_every, bool big)
{
    uint64_t pending_from = m->n;
    for (size_t i = 0; i < count; i++) {
        uint64_t len = big ? rand_len(rng) : tu_rand(rng, 300);
        uint64_t seed = tu_splitmix(rng);
        uint8_t type = (uint8_t)(1 + tu_rand(rng, 255));
        uint8_t *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        tu_fill(buf, len, seed);
        uint64_t lsn = 0;
        assert_int_equal(cairn_wal_append(w, type, buf, len, &lsn), 0);
        free(buf);
        wm_add(m, lsn, seed, (uint32_t)len, type, 0);
        if ((i + 1) % batch_every == 0 || i + 1 == count) {
            assert_int_equal(cairn_wal_wait(w, lsn), 0);
            for (size_t k = pending_from; k < m->n; k++)
                m->v[k].state = 1;
            pending_from = m->n;
        }
    }
}

static void reopen_and_verify(const char *dir, cairn_wal_options *o,
                              wal_model *m, cairn_wal_recovery *info)
{
    wm_replay r = {0};
    wm_replay_reset(&r, m);
    cairn_wal_options opts = *o;
    opts.replay = wm_replay_cb;
    opts.replay_arg = &r;
    cairn_wal *w = NULL;
    int rc = cairn_wal_open(dir, &opts, &w, info);
    if (rc != 0)
        fprintf(stderr, "open: %s: %s\n", cairn_strerror(rc), info->message);
    assert_int_equal(rc, 0);
    wm_sort(m);
    const char *why = wm_verify(m, &r);
    if (why)
        fprintf(stderr, "verify: %s\n", why);
    assert_null(why);
    assert_int_equal(cairn_wal_close(w), 0);
    free(r.lsns);
}

static size_t count_files(cairn_env *env, const char *dir, const char *suffix)
{
    char **names;
    size_t n, c = 0;
    assert_int_equal(cairn_env_list_dir(env, dir, &names, &n), 0);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]), s = strlen(suffix);
        if (l >= s && strcmp(names[i] + l - s, suffix) == 0)
            c++;
    }
    cairn_env_free_list(names, n);
    return c;
}

/* Read a whole file through an env. */
static uint8_t *slurp(cairn_env *env, const char *path, uint64_t *size)
{
    cairn_file *f;
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_READ, &f), 0);
    assert_int_equal(cairn_file_size(f, size), 0);
    uint8_t *buf = malloc(*size ? *size : 1);
    size_t got;
    assert_int_equal(cairn_file_read_at(f, 0, buf, *size, &got), 0);
    assert_int_equal(got, *size);
    cairn_file_close(f);
    return buf;
}

static void write_byte(cairn_env *env, const char *path, uint64_t off,
                       uint8_t v)
{
    cairn_file *f;
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_WRITE, &f), 0);
    assert_int_equal(cairn_file_write_at(f, off, &v, 1), 0);
    assert_int_equal(cairn_file_sync(f, CAIRN_SYNC_DATA), 0);
    cairn_file_close(f);
}

static char *seg_path(const char *dir, uint64_t lsn)
{
    char *p = malloc(strlen(dir) + 40);
    sprintf(p, "%s/wal-%020" PRIu64 ".log", dir, lsn);
    return p;
}

/* Names of the segments in dir, sorted (first LSNs). */
static size_t list_segment_lsns(cairn_env *env, const char *dir, uint64_t *out,
                                size_t max)
{
    char **names;
    size_t n, c = 0;
    assert_int_equal(cairn_env_list_dir(env, dir, &names, &n), 0);
    for (size_t i = 0; i < n && c < max; i++) {
        unsigned long long v;
        char tail[8];
        if (strlen(names[i]) == 28 &&
            sscanf(names[i], "wal-%20llu%7s", &v, tail) == 2 &&
            strcmp(tail, ".log") == 0)
            out[c++] = v;
    }
    cairn_env_free_list(names, n);
    for (size_t i = 1; i < c; i++)
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            uint64_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return c;
}

/* ---------- tests ---------- */

static void roundtrip(cairn_env *env, const char *dir)
{
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    o.segment_size = 256 * 1024;
    wal_model m;
    wm_init(&m);
    uint64_t rng = 42;
    cairn_wal *w;
    cairn_wal_recovery info;
    assert_int_equal(cairn_wal_open(dir, &o, &w, &info), 0);
    assert_int_equal(info.records, 0);
    append_records(w, &m, &rng, 1500, 37, true);
    /* a few synchronous appends too, including empty payloads */
    for (int i = 0; i < 10; i++) {
        uint64_t lsn;
        assert_int_equal(cairn_wal_append_sync(w, 7, NULL, 0, &lsn), 0);
        wm_add(&m, lsn, 0, 0, 7, 1);
    }
    cairn_wal_stats st;
    cairn_wal_get_stats(w, &st);
    assert_true(st.rotations >= 10);
    assert_int_equal(st.appends, 1510);
    assert_int_equal(cairn_wal_close(w), 0);
    assert_true(count_files(env, dir, ".log") > 10);

    reopen_and_verify(dir, &o, &m, &info);
    assert_int_equal(info.records, 1510);
    assert_int_equal(info.torn_bytes, 0);
    assert_string_equal(info.message, "");

    /* Reopen, append more, and check the whole log again. */
    assert_int_equal(cairn_wal_open(dir, &o, &w, &info), 0);
    assert_int_equal(cairn_wal_last_lsn(w), 1510);
    append_records(w, &m, &rng, 300, 10, true);
    assert_int_equal(cairn_wal_close(w), 0);
    reopen_and_verify(dir, &o, &m, &info);
    assert_int_equal(info.records, 1810);
    wm_free(&m);
}

static void test_roundtrip_posix(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("wal");
    assert_non_null(dir);
    roundtrip(cairn_env_posix(), dir);
    tu_rmrf(dir);
    free(dir);
}

static void test_roundtrip_mem(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    roundtrip(env, "/db/wal");
    cairn_env_destroy(env);
}

static void test_big_records(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("walbig");
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.segment_size = 1 << 20; /* records far larger than a segment */
    cairn_wal *w;
    assert_int_equal(cairn_wal_open(dir, &o, &w, NULL), 0);
    size_t big = 64u << 20;
    uint8_t *buf = malloc(big);
    assert_non_null(buf);
    tu_fill(buf, big, 99);
    wal_model m;
    wm_init(&m);
    uint64_t lsn;
    assert_int_equal(cairn_wal_append_sync(w, 1, buf, big, &lsn), 0);
    wm_add(&m, lsn, 99, (uint32_t)big, 1, 1);
    tu_fill(buf, 10, 100);
    assert_int_equal(cairn_wal_append_sync(w, 2, buf, 10, &lsn), 0);
    wm_add(&m, lsn, 100, 10, 2, 1);
    assert_int_equal(cairn_wal_close(w), 0);
    free(buf);

    wm_replay r = {0};
    wm_replay_reset(&r, &m);
    o.replay = wm_replay_cb;
    o.replay_arg = &r;
    o.read_only = true;
    cairn_wal_recovery info;
    assert_int_equal(cairn_wal_open(dir, &o, &w, &info), 0);
    assert_int_equal(info.records, 2);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.mismatches, 0);
    assert_int_equal(r.unknown, 0);
    assert_int_equal(cairn_wal_close(w), 0);
    free(r.lsns);

    /* Over the limit: refused, nothing written. */
    o.read_only = false;
    o.replay = NULL;
    o.max_record = 1000;
    assert_int_equal(cairn_wal_open(dir, &o, &w, NULL), 0);
    uint8_t small[1001] = {0};
    assert_int_equal(cairn_wal_append(w, 1, small, 1001, &lsn),
                     CAIRN_ETOOLARGE);
    assert_int_equal(cairn_wal_append(w, 1, small, 1000, &lsn), 0);
    assert_int_equal(cairn_wal_wait(w, lsn), 0);
    assert_int_equal(lsn, 3);
    assert_int_equal(cairn_wal_close(w), 0);
    wm_free(&m);
    tu_rmrf(dir);
    free(dir);
}

static void test_bad_arguments_and_lock(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    cairn_wal *w, *w2;
    o.segment_size = 10;
    assert_int_equal(cairn_wal_open("/w", &o, &w, NULL), CAIRN_EINVAL);
    o.segment_size = 64 * 1024;
    o.sync_mode = (cairn_wal_sync_mode)7;
    assert_int_equal(cairn_wal_open("/w", &o, &w, NULL), CAIRN_EINVAL);
    o.sync_mode = CAIRN_WAL_SYNC_ALWAYS;
    assert_int_equal(cairn_wal_open("/w", &o, &w, NULL), 0);
    cairn_wal_recovery info;
    assert_int_equal(cairn_wal_open("/w", &o, &w2, &info), CAIRN_EBUSY);
    assert_non_null(strstr(info.message, "in use"));
    uint64_t lsn;
    assert_int_equal(cairn_wal_append(w, 0, "a", 1, &lsn), CAIRN_EINVAL);
    assert_int_equal(cairn_wal_append(w, 1, NULL, 5, &lsn), CAIRN_EINVAL);
    assert_int_equal(cairn_wal_wait(w, 0), CAIRN_EINVAL);
    assert_int_equal(cairn_wal_wait(w, 1), CAIRN_EINVAL); /* not appended */
    assert_int_equal(cairn_wal_append(w, 1, "a", 1, &lsn), 0);
    assert_int_equal(cairn_wal_wait(w, lsn), 0);
    assert_int_equal(cairn_wal_durable_lsn(w), 1);
    assert_int_equal(cairn_wal_close(w), 0);
    /* read-only opens do not take the lock and refuse appends */
    o.read_only = true;
    assert_int_equal(cairn_wal_open("/w", &o, &w, NULL), 0);
    assert_int_equal(cairn_wal_open("/w", &o, &w2, NULL), 0);
    assert_int_equal(cairn_wal_append(w, 1, "a", 1, &lsn), CAIRN_EREADONLY);
    assert_int_equal(cairn_wal_last_lsn(w), 1);
    assert_int_equal(cairn_wal_close(w), 0);
    assert_int_equal(cairn_wal_close(w2), 0);
    assert_int_equal(cairn_wal_open("/nothere", &o, &w, NULL),
                     CAIRN_ENOTFOUND);
    cairn_env_destroy(env);
}

static void test_sync_modes(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    o.segment_size = 64 * 1024;
    cairn_wal *w;
    uint64_t lsn = 0;

    /* none: acknowledged once written; synced only on request */
    o.sync_mode = CAIRN_WAL_SYNC_NONE;
    assert_int_equal(cairn_wal_open("/n", &o, &w, NULL), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(cairn_wal_append_sync(w, 1, "abc", 3, &lsn), 0);
    assert_true(cairn_wal_durable_lsn(w) < lsn);
    assert_true(cairn_env_mem_unsynced_bytes(env) > 0);
    assert_int_equal(cairn_wal_sync(w), 0);
    assert_int_equal(cairn_wal_durable_lsn(w), lsn);
    assert_int_equal(cairn_wal_close(w), 0);

    /* interval: the background thread syncs within the interval */
    o.sync_mode = CAIRN_WAL_SYNC_INTERVAL;
    o.sync_interval_ms = 20;
    assert_int_equal(cairn_wal_open("/i", &o, &w, NULL), 0);
    for (int i = 0; i < 50; i++)
        assert_int_equal(cairn_wal_append_sync(w, 1, "abc", 3, &lsn), 0);
    int waited = 0;
    while (cairn_wal_durable_lsn(w) < lsn && waited < 2000) {
        usleep(5000);
        waited += 5;
    }
    assert_int_equal(cairn_wal_durable_lsn(w), lsn);
    assert_int_equal(cairn_wal_close(w), 0);

    /* always: durable on return */
    o.sync_mode = CAIRN_WAL_SYNC_ALWAYS;
    assert_int_equal(cairn_wal_open("/a", &o, &w, NULL), 0);
    assert_int_equal(cairn_wal_append_sync(w, 1, "abc", 3, &lsn), 0);
    assert_int_equal(cairn_wal_durable_lsn(w), lsn);
    assert_int_equal(cairn_wal_close(w), 0);
    cairn_env_destroy(env);
}

/* Open a log at path, make 20 records durable one by one, read the stats
 * and close. */
static void synced_appends_stats(const char *path, const cairn_wal_options *o,
                                 cairn_wal_stats *st)
{
    cairn_wal *w;
    uint64_t lsn;
    assert_int_equal(cairn_wal_open(path, o, &w, NULL), 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(cairn_wal_append_sync(w, 1, "abc", 3, &lsn), 0);
    cairn_wal_get_stats(w, st);
    assert_int_equal(cairn_wal_close(w), 0);
}

/* The stats' fsync latency follows the disk: none without round syncs, a
 * slow disk's delay when every sync takes it, a fast one's well below. */
static void test_sync_latency_stats(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    o.segment_size = 64 * 1024; /* the memory env's sync copies the file */
    cairn_wal_stats st;

    o.sync_mode = CAIRN_WAL_SYNC_NONE;
    synced_appends_stats("/n", &o, &st);
    assert_int_equal(st.sync_p50_ns, 0);
    assert_int_equal(st.sync_p99_ns, 0);

    o.sync_mode = CAIRN_WAL_SYNC_ALWAYS;
    synced_appends_stats("/a", &o, &st);
    assert_true(st.sync_p50_ns > 0);
    assert_true(st.sync_p50_ns < 3000000); /* the memory env: no disk */

    cairn_fault_rule rule = {.sync_delay_us = 5000};
    cairn_env_fault_set(env, &rule);
    synced_appends_stats("/s", &o, &st);
    assert_true(st.sync_p50_ns >= 5000000);
    assert_true(st.sync_p99_ns >= st.sync_p50_ns);
    assert_true(st.sync_p99_ns < 2000000000);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

typedef struct cb_state {
    atomic_uint_fast64_t fired;
    atomic_uint_fast64_t last;
    atomic_int disorder;
    atomic_int errors;
} cb_state;

static void ack_cb(void *arg, uint64_t lsn, int status)
{
    cb_state *s = arg;
    if (status != 0)
        atomic_fetch_add(&s->errors, 1);
    if (lsn <= atomic_load(&s->last))
        atomic_fetch_add(&s->disorder, 1);
    atomic_store(&s->last, lsn);
    atomic_fetch_add(&s->fired, 1);
}

static void test_callbacks(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("walcb");
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    cairn_wal *w;
    assert_int_equal(cairn_wal_open(dir, &o, &w, NULL), 0);
    cb_state s = {0};
    const int n = 2000;
    for (int i = 0; i < n; i++) {
        uint64_t lsn;
        assert_int_equal(cairn_wal_append(w, 3, &i, sizeof i, &lsn), 0);
        assert_int_equal(cairn_wal_on_durable(w, lsn, ack_cb, &s), 0);
    }
    /* Nobody waits: the background thread must drive the commits. */
    int waited = 0;
    while (atomic_load(&s.fired) < (uint64_t)n && waited < 20000) {
        usleep(1000);
        waited++;
    }
    assert_int_equal(atomic_load(&s.fired), n);
    assert_int_equal(atomic_load(&s.disorder), 0);
    assert_int_equal(atomic_load(&s.errors), 0);
    assert_int_equal(cairn_wal_durable_lsn(w), n);
    /* An LSN already durable: the callback runs right away. */
    assert_int_equal(cairn_wal_on_durable(w, 5, ack_cb, &s), 0);
    assert_int_equal(atomic_load(&s.fired), n + 1);
    cairn_wal_stats st;
    cairn_wal_get_stats(w, &st);
    assert_true(st.syncs < (uint64_t)n); /* grouped */
    assert_int_equal(cairn_wal_close(w), 0);
    tu_rmrf(dir);
    free(dir);
}

static void test_torn_tail_cut(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("waltorn");
    cairn_env *env = cairn_env_posix();
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.segment_size = 64 * 1024;
    wal_model m;
    wm_init(&m);
    uint64_t rng = 7;
    cairn_wal *w;
    assert_int_equal(cairn_wal_open(dir, &o, &w, NULL), 0);
    append_records(w, &m, &rng, 200, 20, false);
    assert_int_equal(cairn_wal_close(w), 0);

    uint64_t segs[64];
    size_t ns = list_segment_lsns(env, dir, segs, 64);
    assert_true(ns >= 1);
    char *last = seg_path(dir, segs[ns - 1]);
    uint64_t size;
    free(slurp(env, last, &size));
    /* A half-written record: a plausible header, then garbage. */
    cairn_file *f;
    assert_int_equal(cairn_env_open(env, last, CAIRN_OPEN_WRITE, &f), 0);
    uint8_t junk[300];
    tu_fill(junk, sizeof junk, 5);
    assert_int_equal(cairn_file_write_at(f, size, junk, sizeof junk), 0);
    cairn_file_close(f);

    cairn_wal_recovery info;
    reopen_and_verify(dir, &o, &m, &info);
    assert_int_equal(info.torn_bytes, 300);
    assert_int_equal(info.torn_offset, size);
    assert_non_null(strstr(info.message, "torn tail"));
    uint64_t after;
    free(slurp(env, last, &after));
    assert_int_equal(after, size); /* cut off */
    reopen_and_verify(dir, &o, &m, &info);
    assert_int_equal(info.torn_bytes, 0);
    free(last);
    wm_free(&m);
    tu_rmrf(dir);
    free(dir);
}

/* Flip bits in sealed segments: every one is reported as corruption naming
 * the segment, never returned as data. */
static void test_corruption_sealed(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    o.segment_size = 8 * 1024;
    wal_model m;
    wm_init(&m);
    uint64_t rng = 11;
    cairn_wal *w;
    assert_int_equal(cairn_wal_open("/c", &o, &w, NULL), 0);
    append_records(w, &m, &rng, 400, 13, false);
    assert_int_equal(cairn_wal_close(w), 0);
    uint64_t segs[256];
    size_t ns = list_segment_lsns(env, "/c", segs, 256);
    assert_true(ns >= 6);

    o.read_only = true;
    uint64_t flips = tu_env_u64("CAIRN_CORRUPT_FLIPS", 400);
    for (uint64_t k = 0; k < flips; k++) {
        size_t si = tu_rand(&rng, ns - 1); /* any but the newest */
        char *path = seg_path("/c", segs[si]);
        uint64_t size;
        uint8_t *data = slurp(env, path, &size);
        uint64_t off = tu_rand(&rng, size);
        uint8_t bit = (uint8_t)(1u << tu_rand(&rng, 8));
        write_byte(env, path, off, data[off] ^ bit);

        wm_replay r = {0};
        wm_replay_reset(&r, &m);
        o.replay = wm_replay_cb;
        o.replay_arg = &r;
        cairn_wal_recovery info;
        int rc = cairn_wal_open("/c", &o, &w, &info);
        if (rc != CAIRN_ECORRUPT || strcmp(info.error_segment, path) != 0)
            fprintf(stderr, "flip at %s+%" PRIu64 ": rc=%d %s\n", path, off,
                    rc, info.message);
        assert_int_equal(rc, CAIRN_ECORRUPT);
        assert_string_equal(info.error_segment, path);
        assert_non_null(strstr(info.message, path));
        assert_non_null(strstr(info.message, "offset"));
        assert_true(info.error_offset <= off ||
                    info.error_offset == 24 /* header field */);
        /* Whatever was replayed before the damage was correct. */
        assert_int_equal(r.mismatches, 0);
        assert_int_equal(r.unknown, 0);
        free(r.lsns);
        write_byte(env, path, off, data[off]);
        free(data);
        free(path);
    }
    /* Restored: clean again. */
    o.replay = NULL;
    cairn_wal_recovery info;
    assert_int_equal(cairn_wal_open("/c", &o, &w, &info), 0);
    assert_int_equal(info.records, 400);
    cairn_wal_close(w);
    wm_free(&m);
    cairn_env_destroy(env);
}

static void test_corruption_in_newest_before_tail(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    o.segment_size = 1 << 20;
    wal_model m;
    wm_init(&m);
    uint64_t rng = 3;
    cairn_wal *w;
    assert_int_equal(cairn_wal_open("/n", &o, &w, NULL), 0);
    append_records(w, &m, &rng, 50, 5, false);
    assert_int_equal(cairn_wal_close(w), 0);
    uint64_t segs[8];
    assert_int_equal(list_segment_lsns(env, "/n", segs, 8), 1);
    char *path = seg_path("/n", segs[0]);
    /* Damage the payload of the 2nd record: valid records follow, so this
     * is corruption, not a torn tail. */
    uint64_t off2 = 48 + 24 + m.v[0].len + 24;
    uint64_t size;
    uint8_t *data = slurp(env, path, &size);
    write_byte(env, path, off2 + 1 < size ? off2 : 60, data[off2] ^ 0x10);
    cairn_wal_recovery info;
    assert_int_equal(cairn_wal_open("/n", &o, &w, &info), CAIRN_ECORRUPT);
    assert_non_null(strstr(info.message, "followed by a valid record"));
    assert_int_equal(info.error_offset, 48 + 24 + m.v[0].len);

    /* Salvage keeps the first record and says how much it dropped. */
    o.salvage = true;
    wm_replay r = {0};
    wm_replay_reset(&r, &m);
    o.replay = wm_replay_cb;
    o.replay_arg = &r;
    assert_int_equal(cairn_wal_open("/n", &o, &w, &info), 0);
    assert_int_equal(r.n, 1);
    assert_true(info.dropped_bytes > 0);
    assert_non_null(strstr(info.message, "salvage"));
    uint64_t lsn;
    assert_int_equal(cairn_wal_append_sync(w, 1, "z", 1, &lsn), 0);
    assert_int_equal(lsn, 2);
    assert_int_equal(cairn_wal_close(w), 0);
    o.salvage = false;
    o.replay = NULL;
    assert_int_equal(cairn_wal_open("/n", &o, &w, &info), 0);
    assert_int_equal(info.records, 2);
    assert_int_equal(cairn_wal_close(w), 0);
    free(r.lsns);
    free(data);
    free(path);
    wm_free(&m);
    cairn_env_destroy(env);
}

static void test_salvage_middle_segment(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    o.segment_size = 4096;
    wal_model m;
    wm_init(&m);
    uint64_t rng = 5;
    cairn_wal *w;
    assert_int_equal(cairn_wal_open("/s", &o, &w, NULL), 0);
    append_records(w, &m, &rng, 200, 10, false);
    assert_int_equal(cairn_wal_close(w), 0);
    uint64_t segs[256];
    size_t ns = list_segment_lsns(env, "/s", segs, 256);
    assert_true(ns > 4);
    char *path = seg_path("/s", segs[2]);
    write_byte(env, path, 100, 0xEE);
    o.salvage = true;
    cairn_wal_recovery info;
    assert_int_equal(cairn_wal_open("/s", &o, &w, &info), 0);
    assert_true(info.dropped_bytes > 0);
    /* Everything before the damaged segment is kept, nothing after it. */
    assert_true(info.last_lsn >= segs[2] - 1);
    assert_true(info.last_lsn < segs[3]);
    assert_int_equal(cairn_wal_close(w), 0);
    assert_int_equal(count_files(env, "/s", ".salvaged"), ns - 3);
    o.salvage = false;
    assert_int_equal(cairn_wal_open("/s", &o, &w, &info), 0);
    assert_int_equal(cairn_wal_close(w), 0);
    free(path);
    wm_free(&m);
    cairn_env_destroy(env);
}

static void test_newer_version_refused(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    cairn_wal *w;
    uint64_t lsn;
    assert_int_equal(cairn_wal_open("/v", &o, &w, NULL), 0);
    assert_int_equal(cairn_wal_append_sync(w, 1, "a", 1, &lsn), 0);
    assert_int_equal(cairn_wal_close(w), 0);
    char *path = seg_path("/v", 1);
    uint64_t size;
    uint8_t *data = slurp(env, path, &size);
    cairn_put_u32(data + 8, 2);
    cairn_put_u64(data + 40, XXH3_64bits(data, 40));
    cairn_file *f;
    assert_int_equal(cairn_env_open(env, path, CAIRN_OPEN_WRITE, &f), 0);
    assert_int_equal(cairn_file_write_at(f, 0, data, 48), 0);
    cairn_file_close(f);
    cairn_wal_recovery info;
    assert_int_equal(cairn_wal_open("/v", &o, &w, &info), CAIRN_EVERSION);
    assert_non_null(strstr(info.message, "newer format"));
    free(data);
    free(path);
    cairn_env_destroy(env);
}

static void test_write_failure_goes_on(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    o.segment_size = 16 * 1024;
    wal_model m;
    wm_init(&m);
    uint64_t rng = 9;
    cairn_wal *w;
    assert_int_equal(cairn_wal_open("/f", &o, &w, NULL), 0);
    append_records(w, &m, &rng, 30, 3, false);
    /* The next write fails half-way with ENOSPC. */
    cairn_fault_rule rule = {.op_mask = CAIRN_OPMASK(CAIRN_OP_WRITE),
                             .fail_at = 1,
                             .error = CAIRN_ENOSPC,
                             .short_write = true,
                             .seed = 1};
    cairn_env_fault_set(env, &rule);
    uint64_t lsn;
    uint8_t buf[200];
    tu_fill(buf, sizeof buf, 77);
    assert_int_equal(cairn_wal_append_sync(w, 1, buf, sizeof buf, &lsn),
                     CAIRN_ENOSPC);
    wm_add(&m, lsn, 77, sizeof buf, 1, -1);
    assert_int_equal(cairn_wal_status(w), 0); /* not read-only */
    assert_int_equal(cairn_env_fault_injected(env), 1);
    cairn_env_fault_reset(env);
    /* Space is back: the log goes on, in a new segment. */
    append_records(w, &m, &rng, 30, 3, false);
    assert_int_equal(cairn_wal_close(w), 0);
    cairn_wal_recovery info;
    reopen_and_verify("/f", &o, &m, &info);
    assert_int_equal(info.records, 60);
    /* and again after a power cut: the failed record stays gone */
    assert_int_equal(cairn_env_mem_power_loss(mem, true, 3), 0);
    reopen_and_verify("/f", &o, &m, &info);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
    wm_free(&m);
}

static void test_fsync_failure_read_only(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    o.segment_size = 16 * 1024;
    wal_model m;
    wm_init(&m);
    uint64_t rng = 10;
    cairn_wal *w;
    assert_int_equal(cairn_wal_open("/r", &o, &w, NULL), 0);
    append_records(w, &m, &rng, 20, 4, false);
    cairn_fault_rule rule = {.op_mask = CAIRN_OPMASK(CAIRN_OP_SYNC),
                             .fail_at = 1,
                             .fail_count = 1,
                             .error = CAIRN_EIO};
    cairn_env_fault_set(env, &rule);
    uint64_t lsn;
    uint8_t q[16];
    tu_fill(q, sizeof q, 1234);
    assert_int_equal(cairn_wal_append_sync(w, 1, q, sizeof q, &lsn), CAIRN_EIO);
    /* Written but not known durable: it may or may not come back. */
    wm_add(&m, lsn, 1234, sizeof q, 1, 0);
    assert_int_equal(cairn_wal_status(w), CAIRN_EIO);
    /* The fsync would succeed now, but the log never retries: read-only. */
    assert_int_equal(cairn_wal_append(w, 1, "q", 1, &lsn), CAIRN_EREADONLY);
    assert_int_equal(cairn_wal_sync(w), CAIRN_EIO);
    assert_int_equal(cairn_env_fault_injected(env), 1);
    cairn_env_fault_reset(env);
    cairn_wal_close(w);
    /* Reopen: every acknowledged record is there. */
    cairn_wal_recovery info;
    reopen_and_verify("/r", &o, &m, &info);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
    wm_free(&m);
}

static void truncate_and_archive(bool archive)
{
    char *dir = tu_mkdtemp("waltrunc");
    char *wdir = malloc(strlen(dir) + 16), *adir = malloc(strlen(dir) + 16);
    sprintf(wdir, "%s/wal", dir);
    sprintf(adir, "%s/archive", dir);
    cairn_env *env = cairn_env_posix();
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.segment_size = 8 * 1024;
    o.archive_dir = archive ? adir : NULL;
    o.archive_level = 3;
    wal_model m;
    wm_init(&m);
    uint64_t rng = 21;
    cairn_wal *w;
    assert_int_equal(cairn_wal_open(wdir, &o, &w, NULL), 0);
    append_records(w, &m, &rng, 300, 50, false);
    size_t before = cairn_wal_segment_count(w);
    assert_true(before > 5);
    uint64_t cut = 150;
    int dropped = cairn_wal_truncate_before(w, cut);
    assert_true(dropped > 0);
    assert_int_equal(cairn_wal_segment_count(w), before - (size_t)dropped);
    /* Nothing at or after the cut may be gone: the first remaining segment
     * starts at or before it. */
    uint64_t segs[256];
    size_t ns = list_segment_lsns(env, wdir, segs, 256);
    assert_int_equal(ns, before - (size_t)dropped);
    assert_true(segs[0] <= cut);
    assert_true(ns < 2 || segs[1] > cut);
    /* Truncating everything keeps the newest segment. */
    append_records(w, &m, &rng, 10, 5, false);
    assert_true(cairn_wal_truncate_before(w, UINT64_MAX) >= 0);
    assert_int_equal(cairn_wal_segment_count(w), 1);
    assert_int_equal(cairn_wal_close(w), 0);
    if (archive) {
        size_t na = count_files(env, adir, ".log.zst");
        assert_true(na >= (size_t)dropped);
        /* An archived segment decompresses to a valid segment. */
        char *zst = malloc(strlen(adir) + 48), *out = malloc(strlen(dir) + 48);
        sprintf(zst, "%s/wal-%020" PRIu64 ".log.zst", adir, (uint64_t)1);
        char *rdir = malloc(strlen(dir) + 16);
        sprintf(rdir, "%s/restored", dir);
        assert_int_equal(cairn_env_mkdir_p(env, rdir), 0);
        sprintf(out, "%s/wal-%020" PRIu64 ".log", rdir, (uint64_t)1);
        assert_int_equal(cairn_wal_unarchive(env, zst, out), 0);
        wm_replay r = {0};
        wm_sort(&m);
        wm_replay_reset(&r, &m);
        cairn_wal_options ro;
        cairn_wal_options_init(&ro);
        ro.read_only = true;
        ro.replay = wm_replay_cb;
        ro.replay_arg = &r;
        cairn_wal_recovery info;
        assert_int_equal(cairn_wal_open(rdir, &ro, &w, &info), 0);
        assert_true(r.n > 0);
        assert_int_equal(r.lsns[0], 1);
        assert_int_equal(r.mismatches, 0);
        cairn_wal_close(w);
        free(r.lsns);
        free(zst);
        free(out);
        free(rdir);
    }
    /* The remaining log opens and holds everything from its first LSN. */
    cairn_wal_recovery info;
    o.read_only = true;
    assert_int_equal(cairn_wal_open(wdir, &o, &w, &info), 0);
    assert_int_equal(info.last_lsn, 310);
    cairn_wal_close(w);
    wm_free(&m);
    tu_rmrf(dir);
    free(dir);
    free(wdir);
    free(adir);
}

static void test_truncate(void **state)
{
    (void)state;
    truncate_and_archive(false);
}

static void test_truncate_archive(void **state)
{
    (void)state;
    truncate_and_archive(true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_posix),
        cmocka_unit_test(test_roundtrip_mem),
        cmocka_unit_test(test_big_records),
        cmocka_unit_test(test_bad_arguments_and_lock),
        cmocka_unit_test(test_sync_modes),
        cmocka_unit_test(test_sync_latency_stats),
        cmocka_unit_test(test_callbacks),
        cmocka_unit_test(test_torn_tail_cut),
        cmocka_unit_test(test_corruption_sealed),
        cmocka_unit_test(test_corruption_in_newest_before_tail),
        cmocka_unit_test(test_salvage_middle_segment),
        cmocka_unit_test(test_newer_version_refused),
        cmocka_unit_test(test_write_failure_goes_on),
        cmocka_unit_test(test_fsync_failure_read_only),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_truncate_archive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
