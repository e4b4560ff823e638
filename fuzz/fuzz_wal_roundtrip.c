/*
 * fuzz_wal_roundtrip.c — fuzz target for the write-ahead log's writer and
 * recovery together: the input is a recipe (options, then records), so the
 * fuzzer reaches segment rotation, group commit rounds, zero-ahead and
 * recovery without fighting the checksums. The records are appended,
 * waited for, the log closed and opened again: recovery must replay
 * exactly the records appended, in order, with their types and bytes.
 *
 * Recipe: byte 0 picks the sync mode (mod 3: always, interval, none) and
 * preallocation (bit 2), byte 1 the segment size (4 KiB << (b % 6)). Then
 * records: a type byte (1..255; 0 is read as 1), a length byte (times 13,
 * so up to 3315 bytes), and the payload (cut short at the end of the
 * input). At most 300 records.
 *
 * Checks: every append and wait succeeds; recovery replays each record
 * once, LSNs 1, 2, 3, ..., with the same type and bytes.
 * Locking: the log's own threads run beside this one; the checks run on
 * this thread after close.
 */
#include <string.h>

#include "cairn.h"
#include "fuzz_common.h"
#include "wal/wal.h"

#define MAXR 300

typedef struct rec {
    uint8_t type;
    const uint8_t *p;
    size_t n;
} rec;

typedef struct replay_state {
    const rec *r;
    size_t n, seen;
} replay_state;

static int on_record(void *arg, const cairn_wal_record *x)
{
    replay_state *s = arg;
    FUZZ_CHECK(s->seen < s->n);
    const rec *want = &s->r[s->seen];
    FUZZ_CHECK(x->lsn == s->seen + 1);
    FUZZ_CHECK(x->type == want->type && x->len == want->n);
    FUZZ_CHECK(x->len == 0 || memcmp(x->data, want->p, x->len) == 0);
    s->seen++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static rec r[MAXR];
    size_t n = 0, p = 2;
    while (p + 2 <= size && n < MAXR) {
        r[n].type = data[p] ? data[p] : 1;
        r[n].n = (size_t)data[p + 1] * 13;
        p += 2;
        if (p + r[n].n > size)
            r[n].n = size - p;
        r[n].p = data + p;
        p += r[n].n;
        n++;
    }
    cairn_env *env = cairn_env_mem_new();
    if (!env)
        return 0;
    cairn_wal_options o;
    cairn_wal_options_init(&o);
    o.env = env;
    static const cairn_wal_sync_mode modes[] = {
        CAIRN_WAL_SYNC_ALWAYS, CAIRN_WAL_SYNC_INTERVAL, CAIRN_WAL_SYNC_NONE};
    o.sync_mode = modes[data[0] % 3];
    o.preallocate = (data[0] & 4) != 0;
    o.segment_size = (uint64_t)4096 << (data[1] % 6);
    cairn_wal *w = NULL;
    cairn_wal_recovery info;
    FUZZ_CHECK(cairn_env_mkdir(env, "/w") == 0);
    FUZZ_CHECK(cairn_wal_open("/w", &o, &w, &info) == 0);
    for (size_t i = 0; i < n; i++) {
        uint64_t lsn = 0;
        FUZZ_CHECK(cairn_wal_append(w, r[i].type, r[i].n ? r[i].p : NULL,
                                    r[i].n, &lsn) == 0);
        FUZZ_CHECK(lsn == i + 1);
        if (i % 7 == 6 || i + 1 == n)
            FUZZ_CHECK(cairn_wal_wait(w, lsn) == 0);
    }
    FUZZ_CHECK(cairn_wal_close(w) == 0);

    replay_state s = {r, n, 0};
    o.read_only = true;
    o.replay = on_record;
    o.replay_arg = &s;
    FUZZ_CHECK(cairn_wal_open("/w", &o, &w, &info) == 0);
    FUZZ_CHECK(s.seen == n);
    cairn_wal_close(w);
    cairn_env_destroy(env);
    return 0;
}
