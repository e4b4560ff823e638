/*
 * fuzz_sst.c — fuzz target for the sorted-file reader: the input is a
 * whole file. It is opened, verified, walked forward and backward, and
 * sought into; each either works or reports an error (CAIRN_ECORRUPT for
 * damage), and never crashes or reads out of bounds.
 *
 * Checks: a walk yields keys in strictly increasing internal order; a file
 * that verifies also walks without an error.
 * Locking: single-threaded.
 */
#include <string.h>

#include "cairn.h"
#include "fuzz_common.h"
#include "sst/sst.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairn_env *env = cairn_env_mem_new();
    if (!env)
        return 0;
    if (fuzz_put_file(env, "f.sst", data, size) != 0) {
        cairn_env_destroy(env);
        return 0;
    }
    int vrc = cairn_sst_verify(env, "f.sst", NULL, NULL, NULL);
    cairn_sst_reader *r = NULL;
    if (cairn_sst_open(env, "f.sst", 1, NULL, &r, NULL) == 0) {
        cairn_sst_iter *it = NULL;
        if (cairn_sst_iter_new(r, &it) == 0) {
            uint8_t prev[512];
            size_t prevlen = 0;
            uint64_t prevver = 0;
            size_t n = 0;
            for (cairn_sst_iter_seek_first(it);
                 cairn_sst_iter_valid(it) && n < 100000;
                 cairn_sst_iter_next(it), n++) {
                cairn_sst_entry e;
                cairn_sst_iter_entry(it, &e);
                if (n > 0 && prevlen <= sizeof prev) {
                    size_t m = prevlen < e.klen ? prevlen : e.klen;
                    int c = memcmp(prev, e.key, m);
                    if (c == 0)
                        c = (prevlen > e.klen) - (prevlen < e.klen);
                    /* user key ascending, then version descending */
                    FUZZ_CHECK(c < 0 || (c == 0 && prevver > e.version));
                }
                prevlen = e.klen;
                if (e.klen <= sizeof prev)
                    memcpy(prev, e.key, e.klen);
                prevver = e.version;
            }
            if (vrc == 0)
                FUZZ_CHECK(cairn_sst_iter_status(it) == 0);
            for (cairn_sst_iter_seek_last(it);
                 cairn_sst_iter_valid(it) && n > 0; cairn_sst_iter_prev(it))
                n--;
            cairn_sst_iter_seek(it, "k", 1, UINT64_MAX);
            cairn_sst_iter_seek_for_prev(it, "m", 1, 5);
            cairn_sst_iter_free(it);
        }
        cairn_sst_entry e;
        cairn_sst_pin pin;
        if (cairn_sst_get(r, "key", 3, UINT64_MAX, UINT64_MAX, &e, &pin,
                          NULL) == 0)
            cairn_sst_pin_release(&pin);
        cairn_sst_close(r);
    }
    cairn_env_destroy(env);
    return 0;
}
