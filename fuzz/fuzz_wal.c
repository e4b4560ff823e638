/*
 * fuzz_wal.c — fuzz target for write-ahead-log recovery: the input is the
 * bytes of one segment file. The log is opened read-only (as `cairn wal
 * verify` does) and then with salvage, replaying every record; each open
 * either recovers or reports an error, never crashes.
 *
 * Checks: replayed LSNs strictly increase.
 * Locking: single-threaded (the read-only log starts no thread).
 */
#include "cairn.h"
#include "fuzz_common.h"
#include "wal/wal.h"

typedef struct replay_state {
    uint64_t last;
    size_t n;
} replay_state;

static int on_record(void *arg, const cairn_wal_record *rec)
{
    replay_state *s = arg;
    FUZZ_CHECK(s->n == 0 || rec->lsn > s->last);
    s->last = rec->lsn;
    s->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairn_env *env = cairn_env_mem_new();
    if (!env)
        return 0;
    if (cairn_env_mkdir(env, "/w") != 0 ||
        fuzz_put_file(env, "/w/wal-00000000000000000001.log", data, size) !=
            0) {
        cairn_env_destroy(env);
        return 0;
    }
    for (int salvage = 0; salvage < 2; salvage++) {
        cairn_wal_options o;
        cairn_wal_options_init(&o);
        o.env = env;
        o.read_only = true;
        o.salvage = salvage != 0;
        replay_state s = {0, 0};
        o.replay = on_record;
        o.replay_arg = &s;
        cairn_wal *w = NULL;
        cairn_wal_recovery info;
        int rc = cairn_wal_open("/w", &o, &w, &info);
        if (rc == 0)
            cairn_wal_close(w);
    }
    cairn_env_destroy(env);
    return 0;
}
