/*
 * test_cache_budget.c — the cache budgets hold under load, measured as the
 * process's resident memory (VmRSS), not only as the caches' own counts.
 *
 * A database of many more bytes than the two caches' budgets is read
 * through, several times over, by two threads. Meanwhile the caches'
 * counted bytes must stay within their budgets, and the process's resident
 * memory may grow by no more than the budgets plus a fixed allowance for
 * the allocator, the threads and the table readers: far less than the
 * bytes read. The caches must also have been used (hits and evictions),
 * so a cache that kept nothing cannot pass. Then the budgets are shrunk at
 * run time and the counted bytes must follow at once.
 *
 * Under ASan memory is counted differently (shadow memory, a quarantine of
 * freed blocks, kept small below), so the allowance is larger there; it
 * stays well below the bytes read. TSan's shadow memory grows with every
 * byte touched, so this test is not in the TSan set (label "unit" only).
 *
 * Locking: the reader threads share only the database handle and atomic
 * counters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cairn.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

#if defined(__SANITIZE_ADDRESS__)
/* Keep ASan's quarantine of freed blocks small, so resident memory says
 * what the program holds. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "quarantine_size_mb=4";
}
#endif

#define NKEYS (SANITIZED ? 100000u : 120000u)
#define VLEN 1000u
#define ROW_BUDGET ((size_t)8 << 20)
#define BLOCK_BUDGET ((size_t)16 << 20)
#define READERS 2

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

static void key_of(char k[16], uint32_t i)
{
    snprintf(k, 16, "b%09u", i);
}

typedef struct reader {
    cairn_db *db;
    uint64_t seed;
    uint32_t reads;
    _Atomic uint64_t *bytes_read;
    _Atomic int *errors;
    _Atomic int *over_budget;
} reader;

static void *reader_main(void *arg)
{
    reader *r = arg;
    uint64_t s = r->seed;
    for (uint32_t n = 0; n < r->reads; n++) {
        /* Three quarters uniform (misses), a quarter from a small hot set
         * (hits). */
        uint32_t i = tu_rand(&s, 4) == 0 ? (uint32_t)tu_rand(&s, 2000)
                                         : (uint32_t)tu_rand(&s, NKEYS);
        char k[16];
        key_of(k, i);
        void *v = NULL;
        size_t vl = 0;
        int rc = cairn_get(r->db, k, 10, &v, &vl);
        if (rc < 0 || vl != VLEN || !tu_check(v, vl, i))
            atomic_fetch_add(r->errors, 1);
        atomic_fetch_add(r->bytes_read, vl);
        cairn_free(v);
        if (n % 512 == 0) {
            cairn_stats st;
            cairn_get_stats(r->db, &st);
            if (st.block_cache_bytes > st.block_cache_capacity ||
                st.row_cache_bytes > st.row_cache_capacity ||
                st.row_cache_capacity > ROW_BUDGET)
                atomic_fetch_add(r->over_budget, 1);
        }
    }
    return NULL;
}

static void test_budgets_hold_in_resident_memory(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("cache-budget");
    assert_non_null(dir);
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.memtable_size = (size_t)4 << 20;
    o.row_cache_size = ROW_BUDGET;
    o.row_cache_consult_all = true; /* both caches filled all the time */
    o.block_cache_size = BLOCK_BUDGET;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    uint8_t *val = malloc(VLEN);
    assert_non_null(val);
    for (uint32_t i = 0; i < NKEYS; i++) {
        char k[16];
        key_of(k, i);
        tu_fill(val, VLEN, i);
        assert_int_equal(cairn_put(db, k, 10, val, VLEN, NULL), 0);
    }
    free(val);
    assert_int_equal(cairn_flush(db), 0);
    /* Reopen, so what the writes left behind in memory is gone. */
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(cairn_open(dir, &o, &db), 0);

    uint64_t rss0 = rss_bytes();
    assert_true(rss0 > 0);
    _Atomic uint64_t bytes_read = 0;
    _Atomic int errors = 0, over = 0;
    pthread_t th[READERS];
    reader rd[READERS];
    uint32_t reads = NKEYS * 2u / READERS;
    for (int t = 0; t < READERS; t++) {
        rd[t] = (reader){db, 100u + (uint64_t)t, reads, &bytes_read, &errors,
                         &over};
        assert_int_equal(pthread_create(&th[t], NULL, reader_main, &rd[t]),
                         0);
    }
    for (int t = 0; t < READERS; t++)
        pthread_join(th[t], NULL);
    uint64_t rss1 = rss_bytes();
    cairn_stats st;
    cairn_get_stats(db, &st);
    uint64_t growth = rss1 > rss0 ? rss1 - rss0 : 0;
    uint64_t allowance = (uint64_t)(SANITIZED ? 40 : 32) << 20;
    uint64_t limit = ROW_BUDGET + BLOCK_BUDGET + allowance;
    printf("read %.1f MiB through %zu MiB of caches: resident %.1f -> %.1f "
           "MiB (+%.1f, limit +%.1f); row cache %" PRIu64 " hits %" PRIu64
           " evictions; block cache %" PRIu64 "/%" PRIu64 " bytes, %" PRIu64
           " evictions\n",
           (double)atomic_load(&bytes_read) / 1048576.0,
           (ROW_BUDGET + BLOCK_BUDGET) >> 20, (double)rss0 / 1048576.0,
           (double)rss1 / 1048576.0, (double)growth / 1048576.0,
           (double)limit / 1048576.0, st.row_cache_hits,
           st.row_cache_evictions, st.block_cache_bytes,
           st.block_cache_capacity, st.block_cache_evictions);
    assert_int_equal(atomic_load(&errors), 0);
    assert_int_equal(atomic_load(&over), 0);
    /* The data read is several times what the caches and the allowance
     * hold, so a cache without a bound would show. */
    assert_true(atomic_load(&bytes_read) > 2 * limit);
    assert_true(growth <= limit);
    assert_true(st.row_cache_hits > 0);
    assert_true(st.row_cache_evictions > 0);
    assert_true(st.block_cache_evictions > 0);
    assert_true(st.block_cache_bytes <= st.block_cache_capacity);
    assert_true(st.block_cache_capacity <= BLOCK_BUDGET);
    assert_true(st.row_cache_bytes <= st.row_cache_capacity);

    /* Shrinking at run time takes effect at once. */
    assert_int_equal(cairn_set_cache_sizes(db, (size_t)1 << 20,
                                           (size_t)2 << 20), 0);
    cairn_get_stats(db, &st);
    assert_true(st.block_cache_bytes <= (uint64_t)2 << 20);
    assert_true(st.block_cache_capacity <= (uint64_t)2 << 20);
    assert_true(st.row_cache_bytes <= (uint64_t)1 << 20);
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

/* The blocks of files a compaction deleted leave the block cache (by the
 * reader's index, cairn_sst_uncache): two flushed files of the same keys,
 * each put in the cache by its builder, compacted into one with no
 * history kept. Were their blocks left behind, the cache would hold the
 * inputs and the output: half as much again as before the compaction. */
static void test_deleted_files_leave_the_cache(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("cbdel");
    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = CAIRN_SYNC_NONE;
    o.history_ms = 0;
    o.row_cache_size = 0;
    o.block_cache_size = (size_t)64 << 20;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(dir, &o, &db), 0);
    uint8_t v[200];
    char k[16];
    for (int round = 0; round < 2; round++) {
        for (uint32_t i = 0; i < 20000; i++) {
            key_of(k, i);
            tu_fill(v, sizeof v, i * 2u + (uint32_t)round);
            assert_int_equal(cairn_put(db, k, 10, v, sizeof v, NULL), 0);
        }
        assert_int_equal(cairn_flush(db), 0);
    }
    cairn_stats before;
    cairn_get_stats(db, &before);
    assert_true(before.block_cache_bytes > 4u * 20000 * sizeof v / 4);
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    /* Table sets take the tree's files at a flush: one more lets the
     * inputs' last references go. */
    assert_int_equal(cairn_put(db, "z", 1, "z", 1, NULL), 0);
    assert_int_equal(cairn_flush(db), 0);
    cairn_stats after;
    cairn_get_stats(db, &after);
    fprintf(stderr, "block cache: %" PRIu64 " bytes before the compaction, "
                    "%" PRIu64 " after\n",
            before.block_cache_bytes, after.block_cache_bytes);
    assert_true(after.block_cache_bytes > 0);
    assert_true(after.block_cache_bytes < before.block_cache_bytes * 3 / 4);
    for (uint32_t i = 0; i < 20000; i += 97) {
        key_of(k, i);
        void *got = NULL;
        size_t gl = 0;
        assert_int_equal(cairn_get(db, k, 10, &got, &gl), 0);
        assert_int_equal(gl, sizeof v);
        assert_true(tu_check(got, gl, i * 2u + 1));
        cairn_free(got);
    }
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budgets_hold_in_resident_memory),
        cmocka_unit_test(test_deleted_files_leave_the_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
