/*
 * fuzz_resp.c — fuzz target for the RESP request parser (server side):
 * the input is a byte stream from a client (after a first byte that picks
 * a read size), parsed once whole and once arriving in pieces of that size
 * (pipelined requests split across reads).
 *
 * Checks, per call: no more consumed than given; nothing consumed without
 * a command; multibulk arguments point into the bytes given (zero copy);
 * an error is sticky. Across the two runs (the parser's promise that the
 * split never matters): the same commands with the same arguments, the
 * same bytes consumed, the same outcome.
 * Locking: single-threaded.
 */
#include <stdbool.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz_common.h"
#include "server/resp.h"

typedef struct outcome {
    size_t cmds, consumed;
    bool failed;
    uint64_t digest; /* of every argument, in order */
} outcome;

static void run(const uint8_t *data, size_t size, size_t piece, outcome *o)
{
    memset(o, 0, sizeof *o);
    cairn_resp_parser *p = cairn_resp_parser_new(NULL);
    uint8_t *buf = malloc(size ? size : 1);
    XXH3_state_t *st = XXH3_createState();
    if (!p || !buf || !st) {
        cairn_resp_parser_free(p);
        free(buf);
        XXH3_freeState(st);
        o->failed = true;
        o->digest = 1; /* out of memory: marks the run as not comparable */
        return;
    }
    XXH3_64bits_reset(st);
    size_t have = 0, off = 0; /* bytes arrived; bytes consumed */
    for (;;) {
        size_t n = size - have < piece ? size - have : piece;
        memcpy(buf + have, data + have, n); /* a read arrives */
        have += n;
        for (;;) {
            cairn_resp_cmd cmd;
            size_t used = 0;
            char err[256];
            err[0] = 0;
            int rc = cairn_resp_parse(p, buf + off, have - off, &cmd, &used,
                                      err, sizeof err);
            FUZZ_CHECK(used <= have - off);
            if (rc < 0) {
                FUZZ_CHECK(err[0] != 0 && used == 0);
                rc = cairn_resp_parse(p, buf + off, have - off, &cmd, &used,
                                      err, sizeof err);
                FUZZ_CHECK(rc < 0); /* sticky */
                o->failed = true;
                break;
            }
            if (rc == 0) {
                FUZZ_CHECK(used == 0);
                break;
            }
            FUZZ_CHECK(rc == 1 && used > 0);
            bool mbulk = buf[off] == '*';
            for (size_t i = 0; i < cmd.argc; i++) {
                if (mbulk)
                    FUZZ_CHECK(cmd.argl[i] == 0 ||
                               (cmd.argv[i] >= buf + off &&
                                cmd.argv[i] + cmd.argl[i] <= buf + off + used));
                XXH3_64bits_update(st, &cmd.argl[i], sizeof cmd.argl[i]);
                if (cmd.argl[i])
                    XXH3_64bits_update(st, cmd.argv[i], cmd.argl[i]);
            }
            XXH3_64bits_update(st, &cmd.argc, sizeof cmd.argc);
            o->cmds++;
            off += used;
        }
        if (o->failed || have == size)
            break;
    }
    o->consumed = off;
    o->digest = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    free(buf);
    cairn_resp_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t piece = 1 + data[0] % 64;
    data++;
    size--;
    outcome whole, pieces;
    run(data, size, size ? size : 1, &whole);
    run(data, size, piece, &pieces);
    if (whole.digest == 1 || pieces.digest == 1)
        return 0; /* out of memory */
    FUZZ_CHECK(whole.cmds == pieces.cmds);
    FUZZ_CHECK(whole.consumed == pieces.consumed);
    FUZZ_CHECK(whole.failed == pieces.failed);
    FUZZ_CHECK(whole.digest == pieces.digest);
    return 0;
}
