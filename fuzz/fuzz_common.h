/*
 * fuzz_common.h — what the fuzz targets share: each defines
 * LLVMFuzzerTestOneInput (libFuzzer's entry point) and uses these helpers
 * to put the input where the code under test reads it (a file in a fresh
 * in-memory env).
 *
 * Invariants: a target never aborts on bad input; it returns 0 whatever
 * the input, and anything the code under test does wrong (a crash, a
 * sanitizer report, a failed check below) is the finding.
 * Locking: single-threaded (libFuzzer and the replay driver call one input
 * at a time).
 */
#ifndef CAIRN_FUZZ_COMMON_H
#define CAIRN_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "env/env.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A check that must hold whatever the input: a finding when it does not. */
#define FUZZ_CHECK(cond)                                                      \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                   \
            abort();                                                          \
        }                                                                     \
    } while (0)

/* Write data to path in env (the directory must exist). 0 or an error. */
static inline int fuzz_put_file(cairn_env *env, const char *path,
                                const uint8_t *data, size_t size)
{
    cairn_file *f = NULL;
    int rc = cairn_env_open(env, path,
                            CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                CAIRN_OPEN_TRUNC,
                            &f);
    if (rc)
        return rc;
    if (size)
        rc = cairn_file_write_at(f, 0, data, size);
    int crc = cairn_file_close(f);
    return rc ? rc : crc;
}

#endif /* CAIRN_FUZZ_COMMON_H */
