/*
 * test_wal_powerloss.c — power cuts at random points under concurrent
 * writers (sync=always), on the memory env through the fault env.
 *
 * Each cycle: 1-4 writer threads append records of random sizes into a log
 * with small segments (so rotations happen); power is cut at a random I/O
 * call (every byte not yet synced is lost, and in half the cycles the last
 * unsynced block is torn); the log is recovered and checked against the
 * model: every acknowledged record is back, byte for byte, nothing partial,
 * and the recovered log is a prefix of what was written. Then the recovered
 * log is written to and cut again, and checked again (recovery of a
 * recovered log).
 *
 * Cycles: CAIRN_POWERLOSS_CYCLES (200 by default; make test-long: 10,000).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>

#include "cairn.h"
#include "env/env.h"
#include "wal/wal.h"
#include "wal_model.h"

typedef struct writer_arg {
    cairn_wal *w;
    wal_model *m;
    uint64_t seed;
    int records;
    uint64_t acked;
} writer_arg;

static void *writer_main(void *p)
{
    writer_arg *a = p;
    uint64_t rng = a->seed;
    uint8_t *buf = malloc(24 * 1024);
    if (!buf)
        return NULL;
    for (int i = 0; i < a->records; i++) {
        uint64_t len = tu_rand(&rng, 10) == 0 ? tu_rand(&rng, 20000)
                                              : tu_rand(&rng, 700);
        uint64_t seed = tu_splitmix(&rng);
        uint8_t type = (uint8_t)(1 + tu_rand(&rng, 200));
        tu_fill(buf, len, seed);
        uint64_t lsn = 0;
        int rc = cairn_wal_append(a->w, type, buf, len, &lsn);
        if (rc != 0)
            break; /* read-only after the cut: no LSN was assigned */
        rc = cairn_wal_wait(a->w, lsn);
        /* Failed or unknown: it may or may not survive; never partially. */
        wm_add(a->m, lsn, seed, (uint32_t)len, type, rc == 0 ? 1 : 0);
        if (rc == 0)
            a->acked++;
        else
            break;
    }
    free(buf);
    return NULL;
}

/* Run writers until they finish or the power cut stops them. */
static uint64_t run_writers(cairn_wal *w, wal_model *m, uint64_t *rng,
                            int threads, int records)
{
    pthread_t t[8];
    writer_arg a[8];
    for (int i = 0; i < threads; i++) {
        a[i] = (writer_arg){w, m, tu_splitmix(rng), records, 0};
        assert_int_equal(pthread_create(&t[i], NULL, writer_main, &a[i]), 0);
    }
    uint64_t acked = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        acked += a[i].acked;
    }
    return acked;
}

/* Recover and check; then settle the model: what came back is durable now,
 * what did not can never come back. Returns the open log. */
static cairn_wal *recover_and_check(cairn_env *env, cairn_wal_options *o,
                                    wal_model *m, uint64_t cycle)
{
    wm_replay r = {0};
    wm_sort(m);
    wm_replay_reset(&r, m);
    cairn_wal_options opts = *o;
    opts.replay = wm_replay_cb;
    opts.replay_arg = &r;
    cairn_wal *w = NULL;
    cairn_wal_recovery info;
    int rc = cairn_wal_open("/db/wal", &opts, &w, &info);
    if (rc != 0)
        fprintf(stderr, "cycle %" PRIu64 ": open failed: %s: %s\n", cycle,
                cairn_strerror(rc), info.message);
    assert_int_equal(rc, 0);
    const char *why = wm_verify(m, &r);
    if (why)
        fprintf(stderr, "cycle %" PRIu64 ": %s\n", cycle, why);
    assert_null(why);
    /* What came back is durable now; what did not is gone for good, and
     * its LSN will be given to a new record: drop it from the model (if it
     * ever came back, the new record's bytes would not match). */
    size_t j = 0, k = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (j < r.n && m->v[i].lsn == r.lsns[j]) {
            m->v[i].state = 1;
            m->v[k++] = m->v[i];
            j++;
        } else {
            assert_int_not_equal(m->v[i].state, 1);
        }
    }
    m->n = k;
    free(r.lsns);
    (void)env;
    return w;
}

/* A cycle's end: the recovered log closes cleanly; all is freed. */
static void cycle_end(cairn_wal *w, wal_model *m, cairn_env *env,
                      cairn_env *mem)
{
    assert_int_equal(cairn_wal_close(w), 0);
    wm_free(m);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

/* Count the I/O calls of one uninterrupted phase, to place cuts. */
static uint64_t calibrate(int threads, int records)
{
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    o.segment_size = 16 * 1024;
    wal_model m;
    wm_init(&m);
    uint64_t rng = 1;
    cairn_wal *w;
    assert_int_equal(cairn_wal_open("/db/wal", &o, &w, NULL), 0);
    cairn_env_fault_reset(env);
    run_writers(w, &m, &rng, threads, records);
    uint64_t calls = cairn_env_fault_calls(env);
    cairn_wal_close(w);
    wm_free(&m);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
    return calls;
}

static void test_power_loss_cycles(void **state)
{
    (void)state;
    uint64_t cycles = tu_env_u64("CAIRN_POWERLOSS_CYCLES", 200);
    uint64_t seed0 = tu_env_u64("CAIRN_TEST_SEED", 20261124);
    const int records = 40;
    uint64_t calls4 = calibrate(4, records);
    assert_true(calls4 > 50);
    uint64_t total_acked = 0, total_cuts = 0, torn_cycles = 0;
    for (uint64_t c = 0; c < cycles; c++) {
        uint64_t rng = seed0 + c * 7919;
        cairn_env *mem = cairn_env_mem_new();
        cairn_env *env = cairn_env_fault_new(mem);
        cairn_wal_options o;
        cairn_wal_options_init(&o);
        o.env = env;
        o.segment_size = 4096 * (1 + tu_rand(&rng, 8));
        o.preallocate = tu_rand(&rng, 2) == 0;
        wal_model m;
        wm_init(&m);
        cairn_wal *w = NULL;
        assert_int_equal(cairn_wal_open("/db/wal", &o, &w, NULL), 0);
        for (int phase = 0; phase < 2; phase++) {
            int threads = 1 + (int)tu_rand(&rng, 4);
            bool torn = tu_rand(&rng, 2) == 0;
            uint64_t expect_calls = calls4 * (uint64_t)threads / 4 + 10;
            cairn_fault_rule rule = {
                .power_cut_at = 1 + tu_rand(&rng, expect_calls + expect_calls / 10),
                .torn = torn,
                .seed = tu_splitmix(&rng),
                /* Half the cycles on a slow disk: rounds overlap more. */
                .sync_delay_us = tu_rand(&rng, 2) ? 200 : 0,
            };
            cairn_env_fault_set(env, &rule);
            total_acked += run_writers(w, &m, &rng, threads, records);
            cairn_wal_close(w); /* may fail: power is gone */
            if (cairn_env_fault_power_is_cut(env)) {
                total_cuts++;
            } else {
                /* The cut came after the workload: cut now. */
                assert_int_equal(
                    cairn_env_mem_power_loss(mem, torn, tu_splitmix(&rng)), 0);
            }
            torn_cycles += torn;
            cairn_env_fault_reset(env);
            w = recover_and_check(env, &o, &m, c);
        }
        cycle_end(w, &m, env, mem);
    }
    fprintf(stderr,
            "power loss: %" PRIu64 " cycles, %" PRIu64 " cuts mid-run, %" PRIu64
            " torn, %" PRIu64 " acknowledged records all recovered\n",
            cycles, total_cuts, torn_cycles, total_acked);
    /* The cuts must mostly land inside the workload, or the test proves
     * little. */
    assert_true(total_cuts * 2 >= cycles);
}

/* A sync fails (EIO) at a random point while 2-8 writers append, on a
 * slow disk (so rounds take many writers). After the failure the log is
 * read-only, whatever the writers do; power is then cut, and every record
 * acknowledged before the failure must come back. */
static void test_sync_failure_cycles(void **state)
{
    (void)state;
    uint64_t cycles = tu_env_u64("CAIRN_SYNCFAIL_CYCLES", 60);
    uint64_t seed0 = tu_env_u64("CAIRN_TEST_SEED", 20261127);
    const int records = 60;
    const uint32_t mask = CAIRN_OPMASK(CAIRN_OP_SYNC);
    uint64_t total_acked = 0;
    for (uint64_t c = 0; c < cycles; c++) {
        uint64_t rng = seed0 + c * 104729;
        int threads = 2 + (int)tu_rand(&rng, 7);
        cairn_env *mem = cairn_env_mem_new();
        cairn_env *env = cairn_env_fault_new(mem);
        cairn_wal_options o;
        cairn_wal_options_init(&o);
        o.env = env;
        o.segment_size = 4 << 20; /* no rotation: every sync is a round's */
        wal_model m;
        wm_init(&m);
        cairn_wal *w = NULL;
        assert_int_equal(cairn_wal_open("/db/wal", &o, &w, NULL), 0);
        /* A round takes at most one record per writer, and each syncs:
         * the run makes at least `records` syncs, so one of the first
         * `records` always fails while the writers run. */
        cairn_fault_rule rule = {.op_mask = mask,
                                 .fail_at = 1 + tu_rand(&rng, records),
                                 .fail_count = 1,
                                 .error = CAIRN_EIO,
                                 .sync_delay_us = 300};
        cairn_env_fault_set(env, &rule);
        total_acked += run_writers(w, &m, &rng, threads, records);
        assert_int_equal(cairn_env_fault_injected(env), 1);
        /* Read-only for good, whatever the later syncs did. */
        uint64_t lsn;
        assert_int_equal(cairn_wal_append(w, 1, "x", 1, &lsn),
                         CAIRN_EREADONLY);
        cairn_wal_close(w); /* fails after a failed sync */
        cairn_env_fault_reset(env);
        assert_int_equal(cairn_env_mem_power_loss(mem, c % 2, c), 0);
        w = recover_and_check(env, &o, &m, c);
        cycle_end(w, &m, env, mem);
    }
    fprintf(stderr,
            "sync failures: %" PRIu64 " cycles, each with a failed sync, "
            "%" PRIu64 " acknowledged records all recovered\n",
            cycles, total_acked);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_loss_cycles),
        cmocka_unit_test(test_sync_failure_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
