/*
 * test_tier.c — the archive tier (src/tier/, lsm/tree.c "the archive
 * tier"): moving sorted files to the archive directory and back, reads
 * through (gets, iterators, reads as of a past version), the policy (by
 * level in the background, by age through the decision function and the
 * background thread), power cuts at every I/O call of a move and of a
 * recall (memory env + fault env), an archive that cannot be reached
 * (fault env on its path; a renamed directory), and the recompression
 * (archived files smaller than local ones for compressible data).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "env/env.h"
#include "lsm/manifest.h"
#include "tier/tier.h"
#include "test_util.h"

#define NKEYS 1500 /* a multiple of 100 */

static const char *words[] = {
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf",
    "hotel", "india", "juliet", "kilo", "lima", "mike", "november",
    "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform",
    "victor", "whiskey", "xray", "yankee", "zulu", "temperature=",
    "humidity=", "host=web-", "region=eu-west-", "status=ok ", "latency_ms=",
};

/* A compressible value for (key i, generation g): words and digits. */
static size_t make_value(int i, int g, char *buf, size_t cap)
{
    uint64_t s = (uint64_t)i * 1000003u + (uint64_t)g * 7919u + 17u;
    size_t len = 200 + (size_t)tu_rand(&s, 400), n = 0;
    while (n < len && n + 32 < cap) {
        const char *w = words[tu_rand(&s, sizeof words / sizeof *words)];
        n += (size_t)snprintf(buf + n, cap - n, "%s%u ", w,
                              (unsigned)tu_rand(&s, 100));
    }
    return n;
}

static size_t make_key(int i, char *buf)
{
    return (size_t)sprintf(buf, "key%06d", i);
}

static void base_options(cairn_options *o, cairn_env *env, const char *arch)
{
    cairn_options_init(o);
    o->env = env;
    o->archive_dir = arch;
    o->memtable_size = 256 << 10;
    o->sst_target_file_size = 128 << 10;
    o->block_cache_size = 8 << 20;
    o->row_cache_size = 0; /* reads go to the files */
    o->sync_mode = CAIRN_SYNC_NONE; /* fill fast; flushes still sync */
    o->wal_segment_size = 1 << 20;
}

/* Write generation 1 and 2 of every key (v1 = the version after gen 1),
 * flush and compact to the bottom. */
static uint64_t fill(cairn_db *db)
{
    static char k[100][32], v[100][1024];
    cairn_write w[100];
    uint64_t v1 = 0;
    for (int g = 1; g <= 2; g++) {
        for (int i = 0; i < NKEYS; i += 100) {
            for (int j = 0; j < 100; j++) {
                w[j].key = k[j];
                w[j].klen = make_key(i + j, k[j]);
                w[j].val = v[j];
                w[j].vlen = make_value(i + j, g, v[j], sizeof v[j]);
            }
            assert_int_equal(cairn_write_batch(db, w, 100, NULL), 0);
        }
        if (g == 1)
            v1 = cairn_current_version(db);
    }
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    return v1;
}

/* Every key reads back as generation 2 (get, forward and backward scans)
 * and as generation 1 at v1 (0: skip the past). Returns the first error
 * (assertions on values). */
static int verify_all(cairn_db *db, uint64_t v1)
{
    char k[32], v[1024];
    for (int i = 0; i < NKEYS; i++) {
        size_t kl = make_key(i, k), vl = make_value(i, 2, v, sizeof v);
        void *got = NULL;
        size_t gl = 0;
        int rc = cairn_get(db, k, kl, &got, &gl);
        if (rc != 0)
            return rc;
        assert_int_equal(gl, vl);
        assert_memory_equal(got, v, vl);
        cairn_free(got);
        if (v1 && i % 7 == 0) {
            vl = make_value(i, 1, v, sizeof v);
            rc = cairn_get_at_version(db, k, kl, v1, &got, &gl);
            if (rc != 0)
                return rc;
            assert_int_equal(gl, vl);
            assert_memory_equal(got, v, vl);
            cairn_free(got);
        }
    }
    cairn_iter *it = NULL;
    cairn_iter_options po;
    memset(&po, 0, sizeof po);
    po.prefix = "key";
    po.prefix_len = 3;
    assert_int_equal(cairn_iter_new(db, &po, &it), 0);
    int i = 0;
    for (cairn_iter_first(it); cairn_iter_valid(it); cairn_iter_next(it), i++) {
        size_t kl, gl, vl = make_value(i, 2, v, sizeof v);
        const void *key = cairn_iter_key(it, &kl);
        const void *got = cairn_iter_value(it, &gl);
        make_key(i, k);
        assert_int_equal(kl, strlen(k));
        assert_memory_equal(key, k, kl);
        assert_int_equal(gl, vl);
        assert_memory_equal(got, v, vl);
    }
    int rc = cairn_iter_status(it);
    if (rc == 0)
        assert_int_equal(i, NKEYS);
    i = NKEYS - 1;
    for (cairn_iter_last(it); rc == 0 && cairn_iter_valid(it);
         cairn_iter_prev(it), i--) {
        size_t kl;
        const void *key = cairn_iter_key(it, &kl);
        make_key(i, k);
        assert_memory_equal(key, k, kl);
    }
    if (rc == 0)
        rc = cairn_iter_status(it);
    cairn_iter_free(it);
    if (rc == 0 && v1) {
        cairn_iter_options io = po;
        io.as_of_version = v1;
        assert_int_equal(cairn_iter_new(db, &io, &it), 0);
        i = 0;
        for (cairn_iter_first(it); cairn_iter_valid(it);
             cairn_iter_next(it), i++) {
            size_t gl, vl = make_value(i, 1, v, sizeof v);
            const void *got = cairn_iter_value(it, &gl);
            assert_int_equal(gl, vl);
            assert_memory_equal(got, v, vl);
        }
        rc = cairn_iter_status(it);
        if (rc == 0)
            assert_int_equal(i, NKEYS);
        cairn_iter_free(it);
    }
    return rc;
}

static void count_tiers(cairn_db *db, size_t *local, size_t *arch)
{
    cairn_file_info *fi = NULL;
    size_t n = 0;
    assert_int_equal(cairn_list_files(db, &fi, &n), 0);
    *local = *arch = 0;
    for (size_t i = 0; i < n; i++)
        (fi[i].tier ? (*arch)++ : (*local)++);
    cairn_free(fi);
}

static bool file_exists(const char *dir, uint64_t number)
{
    char p[4096];
    cairn_lsm_sst_path(p, sizeof p, dir, number);
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---------- move, read through, recall, move again ---------- */

static void test_move_read_recall(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("tier");
    char db_dir[4096], arch[4096];
    snprintf(db_dir, sizeof db_dir, "%s/db", dir);
    snprintf(arch, sizeof arch, "%s/archive", dir);
    cairn_options o;
    base_options(&o, NULL, arch);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(db_dir, &o, &db), 0);
    uint64_t v1 = fill(db);
    assert_int_equal(verify_all(db, v1), 0);

    cairn_file_info *fi = NULL;
    size_t n = 0;
    assert_int_equal(cairn_list_files(db, &fi, &n), 0);
    assert_true(n >= 2);
    uint64_t local_bytes = 0, arch_bytes = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fi[i].tier, 0);
        local_bytes += fi[i].bytes;
        assert_true(file_exists(db_dir, fi[i].number));
        assert_int_equal(cairn_archive_file(db, fi[i].number), 0);
        assert_false(file_exists(db_dir, fi[i].number));
        assert_true(file_exists(arch, fi[i].number));
    }
    cairn_file_info *fa = NULL;
    size_t na = 0;
    assert_int_equal(cairn_list_files(db, &fa, &na), 0);
    assert_int_equal(na, n);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(fa[i].tier, 1);
        arch_bytes += fa[i].bytes;
    }
    cairn_free(fa);
    fprintf(stderr, "tier: %zu files, local (zstd 3) %" PRIu64
                    " bytes, archived (zstd 19) %" PRIu64 " bytes (%.1f%%)\n",
            n, local_bytes, arch_bytes, 100.0 * (double)arch_bytes /
                                            (double)local_bytes);
    assert_true(arch_bytes < local_bytes);
    /* Reads go through (cold cache: the blocks come from the archive). */
    assert_int_equal(cairn_set_cache_sizes(db, CAIRN_CACHE_SIZE_KEEP, 0), 0);
    assert_int_equal(cairn_set_cache_sizes(db, CAIRN_CACHE_SIZE_KEEP, 8 << 20),
                     0);
    assert_int_equal(verify_all(db, v1), 0);
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_int_equal(st.tier_files[0], 0);
    assert_int_equal(st.tier_files[1], n);
    assert_int_equal(st.tier_bytes[1], arch_bytes);
    assert_true(st.tier_logical_bytes[1] > st.tier_bytes[1]);
    assert_true(st.tier_block_misses[1] > 0);
    assert_true(st.tier_block_hits[1] > 0);
    assert_true(st.tier_read_p50_ns[1] > 0);
    assert_true(st.tier_read_p99_ns[1] >= st.tier_read_p50_ns[1]);
    assert_int_equal(st.archive_moves, n);
    assert_true(st.archive_available);

    /* Recall one, read, archive it again; recall all and back. */
    assert_int_equal(cairn_recall_file(db, fi[0].number), 0);
    assert_true(file_exists(db_dir, fi[0].number));
    assert_false(file_exists(arch, fi[0].number));
    assert_int_equal(verify_all(db, v1), 0);
    assert_int_equal(cairn_archive_file(db, fi[0].number), 0);
    assert_int_equal(cairn_archive_file(db, fi[0].number), 0); /* no-op */
    assert_int_equal(cairn_archive_file(db, 999999), CAIRN_ENOTFOUND);
    assert_int_equal(verify_all(db, v1), 0);
    /* An iterator made before a move keeps reading its copy. */
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cairn_recall_file(db, fi[i].number), 0);
    size_t cnt = 0;
    for (cairn_iter_first(it); cairn_iter_valid(it); cairn_iter_next(it))
        cnt++;
    assert_int_equal(cairn_iter_status(it), 0);
    assert_int_equal(cnt, NKEYS);
    cairn_iter_free(it);
    assert_int_equal(verify_all(db, v1), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cairn_archive_file(db, fi[i].number), 0);
    /* Writes on top, compaction over archived inputs (outputs local). */
    char k[32], v[1024];
    for (int i = 0; i < NKEYS; i += 3) {
        size_t kl = make_key(i, k), vl = make_value(i, 2, v, sizeof v);
        assert_int_equal(cairn_put(db, k, kl, v, vl, NULL), 0);
    }
    assert_int_equal(cairn_close(db), 0);
    db = NULL;
    assert_int_equal(cairn_open(db_dir, &o, &db), 0);
    assert_int_equal(verify_all(db, 0), 0);
    assert_int_equal(cairn_compact(db, NULL, NULL), 0);
    size_t nl, nar;
    count_tiers(db, &nl, &nar);
    assert_true(nl > 0);
    assert_int_equal(verify_all(db, 0), 0);
    assert_int_equal(cairn_close(db), 0);
    cairn_free(fi);
    tu_rmrf(dir);
    free(dir);
}

/* ---------- the policy ---------- */

static void test_policy_decision(void **state)
{
    (void)state;
    cairn_file_meta m;
    memset(&m, 0, sizeof m);
    m.created_us = 1000000000ull * 1000000u; /* a time, in µs */
    uint64_t now = m.created_us + 3600ull * 1000000u; /* an hour later */
    cairn_tier_policy none = {0, 0}, lvl = {3, 0}, age = {0, 1800},
                      both = {3, 7200};
    assert_false(cairn_tier_policy_wants(&none, &m, 6, now));
    assert_false(cairn_tier_policy_wants(&lvl, &m, 2, now));
    assert_true(cairn_tier_policy_wants(&lvl, &m, 3, now));
    assert_true(cairn_tier_policy_wants(&lvl, &m, 6, now));
    assert_true(cairn_tier_policy_wants(&age, &m, 0, now));
    assert_false(cairn_tier_policy_wants(&age, &m, 0, m.created_us + 5));
    assert_false(cairn_tier_policy_wants(&both, &m, 4, now)); /* too young */
    assert_true(cairn_tier_policy_wants(&both, &m, 4,
                                        now + 3600ull * 1000000u));
    assert_false(cairn_tier_policy_wants(&both, &m, 2,
                                         now + 3600ull * 1000000u));
    m.tier = 1; /* archived already */
    assert_false(cairn_tier_policy_wants(&lvl, &m, 6, now));
}

static void wait_archived(cairn_db *db, bool want_all, int min_level)
{
    for (int t = 0; t < 100; t++) { /* up to 10 s */
        cairn_file_info *fi = NULL;
        size_t n = 0, wanted = 0, done = 0;
        assert_int_equal(cairn_list_files(db, &fi, &n), 0);
        for (size_t i = 0; i < n; i++)
            if (want_all || fi[i].level >= min_level) {
                wanted++;
                done += fi[i].tier == 1;
            }
        cairn_free(fi);
        if (wanted > 0 && done == wanted)
            return;
        struct timespec d = {0, 100000000};
        nanosleep(&d, NULL);
    }
    fail_msg("the policy did not archive the files in 10 s");
}

static void test_policy_background(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("tier");
    char db_dir[4096], arch[4096];
    snprintf(db_dir, sizeof db_dir, "%s/db", dir);
    snprintf(arch, sizeof arch, "%s/archive", dir);
    /* By level: what lands at level 2 goes, level 0 stays. */
    cairn_options o;
    base_options(&o, NULL, arch);
    o.archive_min_level = 2;
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(db_dir, &o, &db), 0);
    uint64_t v1 = fill(db);
    char k[32], v[1024];
    size_t kl = make_key(5, k), vl = make_value(5, 2, v, sizeof v);
    assert_int_equal(cairn_put(db, k, kl, v, vl, NULL), 0);
    assert_int_equal(cairn_flush(db), 0); /* one level-0 file */
    wait_archived(db, false, 2);
    cairn_file_info *fi = NULL;
    size_t n = 0;
    assert_int_equal(cairn_list_files(db, &fi, &n), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fi[i].tier, fi[i].level >= 2 ? 1 : 0);
    cairn_free(fi);
    assert_int_equal(verify_all(db, v1), 0);
    assert_int_equal(cairn_close(db), 0);

    /* By age: every file older than a second (the thread looks every
     * second). */
    snprintf(db_dir, sizeof db_dir, "%s/db2", dir);
    snprintf(arch, sizeof arch, "%s/archive2", dir);
    base_options(&o, NULL, arch);
    o.archive_min_age_s = 1;
    assert_int_equal(cairn_open(db_dir, &o, &db), 0);
    v1 = fill(db);
    wait_archived(db, true, 0);
    assert_int_equal(verify_all(db, v1), 0);
    assert_int_equal(cairn_close(db), 0);

    /* cairn_archive_run with no rule: every local file. */
    snprintf(db_dir, sizeof db_dir, "%s/db3", dir);
    snprintf(arch, sizeof arch, "%s/archive3", dir);
    base_options(&o, NULL, arch);
    assert_int_equal(cairn_open(db_dir, &o, &db), 0);
    v1 = fill(db);
    size_t nl, na;
    count_tiers(db, &nl, &na);
    assert_int_equal(na, 0);
    assert_int_equal(cairn_archive_run(db, 0, 0, NULL, NULL), 0);
    size_t nl2, na2;
    count_tiers(db, &nl2, &na2);
    assert_int_equal(nl2, 0);
    assert_int_equal(na2, nl);
    assert_int_equal(verify_all(db, v1), 0);
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

/* ---------- power cuts at every I/O call of a move ---------- */

static void list_names(cairn_env *env, const char *d, char ***names,
                       size_t *n)
{
    *names = NULL;
    *n = 0;
    int rc = cairn_env_list_dir(env, d, names, n);
    assert_true(rc == 0 || rc == CAIRN_ENOTFOUND);
}

/* No file lost, no leftover: every listed file is in its tier's directory
 * and nothing else is. */
static void check_places(cairn_db *db, cairn_env *env)
{
    cairn_file_info *fi = NULL;
    size_t n = 0;
    assert_int_equal(cairn_list_files(db, &fi, &n), 0);
    const char *dirs[2] = {"/db", "/arch"};
    for (int t = 0; t < 2; t++) {
        char **names;
        size_t nn;
        list_names(env, dirs[t], &names, &nn);
        size_t ssts = 0;
        for (size_t i = 0; i < nn; i++) {
            uint64_t num;
            assert_false(cairn_tier_parse_tmp_name(names[i], &num));
            if (!cairn_lsm_parse_sst_name(names[i], &num))
                continue;
            ssts++;
            bool found = false;
            for (size_t j = 0; j < n; j++)
                if (fi[j].number == num) {
                    assert_int_equal(fi[j].tier, t);
                    found = true;
                }
            if (!found)
                fprintf(stderr, "leftover %s/%s\n", dirs[t], names[i]);
            assert_true(found);
        }
        size_t want = 0;
        for (size_t j = 0; j < n; j++)
            want += fi[j].tier == t;
        assert_int_equal(ssts, want);
        cairn_env_free_list(names, nn);
    }
    cairn_free(fi);
}

static uint64_t pick_file(cairn_db *db, int tier)
{
    cairn_file_info *fi = NULL;
    size_t n = 0;
    assert_int_equal(cairn_list_files(db, &fi, &n), 0);
    uint64_t num = 0;
    for (size_t i = 0; i < n && !num; i++)
        if (fi[i].tier == tier)
            num = fi[i].number;
    cairn_free(fi);
    return num;
}

static void test_power_cuts(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    assert_non_null(mem);
    assert_non_null(env);
    cairn_options o;
    base_options(&o, env, "/arch");
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    uint64_t v1 = fill(db);
    (void)v1;
    assert_int_equal(cairn_close(db), 0);

    uint64_t seed = 42, cuts = 0, cycles = 0;
    for (int dir = 0; dir < 2; dir++) { /* 0: archive, 1: recall */
        /* Count the calls of one move. */
        assert_int_equal(cairn_open("/db", &o, &db), 0);
        if (dir == 1) /* something to recall, and something to archive */
            assert_int_equal(cairn_archive_run(db, 0, 0, NULL, NULL), 0);
        uint64_t num = pick_file(db, dir);
        assert_true(num > 0);
        cairn_fault_rule count = {0};
        cairn_env_fault_set(env, &count);
        assert_int_equal(dir ? cairn_recall_file(db, num)
                             : cairn_archive_file(db, num),
                         0);
        uint64_t calls = cairn_env_fault_calls(env);
        cairn_env_fault_reset(env);
        assert_int_equal(cairn_close(db), 0);
        assert_true(calls > 5);
        for (uint64_t c = 1; c <= calls + 2; c++) {
            cairn_env_fault_reset(env);
            assert_int_equal(cairn_open("/db", &o, &db), 0);
            num = pick_file(db, dir);
            if (!num) { /* all moved: move one back first */
                assert_int_equal(dir ? cairn_archive_file(db, pick_file(db, 0))
                                     : cairn_recall_file(db, pick_file(db, 1)),
                                 0);
                num = pick_file(db, dir);
            }
            bool torn = tu_rand(&seed, 2) == 0;
            cairn_fault_rule rule = {
                .power_cut_at = c, .torn = torn, .seed = tu_splitmix(&seed)};
            cairn_env_fault_set(env, &rule);
            int rc = dir ? cairn_recall_file(db, num)
                         : cairn_archive_file(db, num);
            (void)rc;
            (void)cairn_close(db);
            if (cairn_env_fault_power_is_cut(env))
                cuts++;
            else
                assert_int_equal(
                    cairn_env_mem_power_loss(mem, torn, tu_splitmix(&seed)), 0);
            cycles++;
            cairn_env_fault_reset(env);
            db = NULL;
            assert_int_equal(cairn_open("/db", &o, &db), 0);
            int vr = verify_all(db, 0);
            if (vr != 0)
                fprintf(stderr, "cycle %" PRIu64 " (%s): %s\n", c,
                        dir ? "recall" : "archive", cairn_strerror(vr));
            assert_int_equal(vr, 0);
            check_places(db, mem);
            assert_int_equal(cairn_close(db), 0);
        }
    }
    fprintf(stderr, "tier power cuts: %" PRIu64 " cycles, %" PRIu64
                    " cut during the move\n",
            cycles, cuts);
    assert_true(cuts * 2 >= cycles);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

/* ---------- an archive out of reach ---------- */

static int get_one(cairn_db *db, int i)
{
    char k[32];
    size_t kl = make_key(i, k);
    void *got = NULL;
    size_t gl;
    int rc = cairn_get(db, k, kl, &got, &gl);
    cairn_free(got);
    return rc;
}

static void test_unavailable(void **state)
{
    (void)state;
    cairn_env *mem = cairn_env_mem_new();
    cairn_env *env = cairn_env_fault_new(mem);
    cairn_options o;
    base_options(&o, env, "/arch");
    o.l0_compaction_trigger = 2;
    o.level_base_size = 64 << 10; /* level 1 soon past its size */
    cairn_db *db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    uint64_t v1 = fill(db);
    assert_int_equal(cairn_archive_run(db, 0, 0, NULL, NULL), 0);
    /* Local data: new keys, flushed. */
    char k[32], v[64];
    for (int i = 0; i < 50; i++) {
        size_t kl = (size_t)sprintf(k, "local%03d", i);
        assert_int_equal(cairn_put(db, k, kl, "x", 1, NULL), 0);
    }
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(cairn_set_cache_sizes(db, CAIRN_CACHE_SIZE_KEEP, 0), 0);

    /* Every I/O call on the archive's path fails. */
    cairn_fault_rule rule = {.path_substr = "/arch", .fail_at = 1,
                             .fail_count = UINT64_MAX, .error = CAIRN_EIO};
    cairn_env_fault_set(env, &rule);
    assert_int_equal(get_one(db, 10), CAIRN_EUNAVAILABLE);
    assert_string_equal(cairn_strerror(CAIRN_EUNAVAILABLE),
                        "archive tier unavailable");
    cairn_iter *it = NULL;
    assert_int_equal(cairn_iter_new(db, NULL, &it), 0);
    cairn_iter_first(it);
    assert_false(cairn_iter_valid(it));
    assert_int_equal(cairn_iter_status(it), CAIRN_EUNAVAILABLE);
    cairn_iter_free(it);
    void *got = NULL;
    size_t gl;
    assert_int_equal(cairn_get(db, "local007", 8, &got, &gl), 0);
    cairn_free(got);
    /* Writes, flushes (and compactions that need no archived input) go
     * on; those that need one wait, and are no error. */
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < 300; i++) {
            size_t kl = (size_t)sprintf(k, "local%03d", i);
            snprintf(v, sizeof v, "round %d", r);
            assert_int_equal(cairn_put(db, k, kl, v, strlen(v), NULL), 0);
        }
        assert_int_equal(cairn_flush(db), 0);
    }
    struct timespec d = {0, 300000000};
    nanosleep(&d, NULL);
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_false(st.archive_available);
    assert_int_equal(st.background_error, 0);
    assert_int_equal(cairn_get(db, "local100", 8, &got, &gl), 0);
    assert_int_equal(gl, 7);
    assert_memory_equal(got, "round 3", 7);
    cairn_free(got);
    assert_int_equal(cairn_archive_file(db, pick_file(db, 0)),
                     CAIRN_EUNAVAILABLE);
    /* Overwrites of archived keys: level 0 compacts into level 1 (local
     * inputs only), which then passes its size; its compaction into level
     * 2 needs the archived files there and waits, with no error. */
    static char bk[200][32], bv[200][1024];
    cairn_write w[200];
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 200; i++) {
            w[i].key = bk[i];
            w[i].klen = make_key(r * 200 + i, bk[i]);
            w[i].val = bv[i];
            w[i].vlen = make_value(r * 200 + i, 2, bv[i], sizeof bv[i]);
        }
        assert_int_equal(cairn_write_batch(db, w, 200, NULL), 0);
        assert_int_equal(cairn_flush(db), 0);
    }
    nanosleep(&d, NULL);
    cairn_get_stats(db, &st);
    assert_int_equal(st.background_error, 0);
    assert_true(st.level_bytes[1] > 64 << 10); /* waiting for the archive */
    uint64_t compactions = st.compactions;
    /* Back: reads work again, and the waiting compaction runs. */
    cairn_env_fault_reset(env);
    assert_int_equal(get_one(db, 10), 0);
    for (int t = 0; t < 100; t++) {
        cairn_get_stats(db, &st);
        if (st.level_bytes[1] <= 64 << 10)
            break;
        nanosleep(&d, NULL);
    }
    assert_true(st.level_bytes[1] <= 64 << 10);
    assert_true(st.compactions > compactions);
    assert_true(st.archive_available);
    assert_int_equal(st.background_error, 0);
    assert_int_equal(verify_all(db, v1), 0);
    /* Every file to the archive, then key 10 and local100 written again
     * (the same values) into a local file: after the reopen below those
     * two read from it and every key from 600 on needs the archive
     * (whatever the compactions above left where). */
    assert_int_equal(cairn_archive_run(db, 0, 0, NULL, NULL), 0);
    assert_int_equal(pick_file(db, 0), 0);
    char k10[32];
    size_t k10l = make_key(10, k10);
    size_t v10l = make_value(10, 2, bv[0], sizeof bv[0]);
    assert_int_equal(cairn_put(db, k10, k10l, bv[0], v10l, NULL), 0);
    assert_int_equal(cairn_put(db, "local100", 8, "round 3", 7, NULL), 0);
    assert_int_equal(cairn_flush(db), 0);
    assert_int_equal(cairn_close(db), 0);

    /* The database opens while the archive is away, and says so. */
    cairn_env_fault_set(env, &rule);
    db = NULL;
    assert_int_equal(cairn_open("/db", &o, &db), 0);
    /* Keys past the overwritten ones: archived, unavailable; key 10 and
     * local100 read from the local file. */
    for (int i = 600; i < NKEYS; i++)
        assert_int_equal(get_one(db, i), CAIRN_EUNAVAILABLE);
    assert_int_equal(get_one(db, 10), 0); /* written again: local */
    assert_int_equal(cairn_get(db, "local100", 8, &got, &gl), 0);
    cairn_free(got);
    assert_int_equal(cairn_put(db, "new", 3, "v", 1, NULL), 0);
    assert_int_equal(cairn_flush(db), 0);
    cairn_get_stats(db, &st);
    assert_true(st.archive_configured);
    assert_false(st.archive_available);
    assert_true(st.tier_files[1] > 0);
    cairn_env_fault_reset(env);
    assert_int_equal(verify_all(db, 0), 0); /* opened on first use */
    assert_int_equal(cairn_close(db), 0);
    cairn_env_destroy(env);
    cairn_env_destroy(mem);
}

static void test_unavailable_renamed(void **state)
{
    (void)state;
    char *dir = tu_mkdtemp("tier");
    char db_dir[4096], arch[4096], moved[4096];
    snprintf(db_dir, sizeof db_dir, "%s/db", dir);
    snprintf(arch, sizeof arch, "%s/archive", dir);
    snprintf(moved, sizeof moved, "%s/archive-away", dir);
    cairn_options o;
    base_options(&o, NULL, arch);
    cairn_db *db = NULL;
    assert_int_equal(cairn_open(db_dir, &o, &db), 0);
    uint64_t v1 = fill(db);
    assert_int_equal(cairn_archive_run(db, 0, 0, NULL, NULL), 0);
    assert_int_equal(cairn_put(db, "local", 5, "here", 4, NULL), 0);
    assert_int_equal(cairn_close(db), 0);
    assert_int_equal(rename(arch, moved), 0);
    db = NULL;
    assert_int_equal(cairn_open(db_dir, &o, &db), 0);
    assert_int_equal(get_one(db, 3), CAIRN_EUNAVAILABLE);
    void *got = NULL;
    size_t gl;
    assert_int_equal(cairn_get(db, "local", 5, &got, &gl), 0);
    assert_memory_equal(got, "here", 4);
    cairn_free(got);
    assert_int_equal(cairn_put(db, "local2", 6, "x", 1, NULL), 0);
    assert_int_equal(cairn_flush(db), 0);
    struct stat sb;
    assert_int_not_equal(stat(arch, &sb), 0); /* not made anew */
    assert_int_equal(rename(moved, arch), 0);
    assert_int_equal(verify_all(db, v1), 0);
    assert_int_equal(cairn_close(db), 0);

    /* An empty directory where the archive was (a mount point whose volume
     * is gone): unavailable too, not damage. */
    assert_int_equal(rename(arch, moved), 0);
    assert_int_equal(mkdir(arch, 0755), 0);
    db = NULL;
    assert_int_equal(cairn_open(db_dir, &o, &db), 0);
    assert_int_equal(get_one(db, 3), CAIRN_EUNAVAILABLE);
    cairn_stats st;
    cairn_get_stats(db, &st);
    assert_false(st.archive_available);
    assert_int_equal(rmdir(arch), 0);
    assert_int_equal(rename(moved, arch), 0);
    assert_int_equal(verify_all(db, v1), 0);
    assert_int_equal(cairn_close(db), 0);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_decision),
        cmocka_unit_test(test_move_read_recall),
        cmocka_unit_test(test_policy_background),
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_unavailable_renamed),
        cmocka_unit_test(test_power_cuts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
