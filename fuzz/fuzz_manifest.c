/*
 * fuzz_manifest.c — fuzz target for the manifest reader: the input is the
 * live manifest file (CURRENT names it). It is opened read-only; the open
 * either yields a version or reports an error (CAIRN_ECORRUPT naming the
 * offset, CAIRN_EVERSION), never crashes.
 *
 * Checks: a version that opens has every file at a level of the format
 * (0..7) with its smallest key not above its largest.
 * Locking: single-threaded.
 */
#include <string.h>

#include "cairn.h"
#include "fuzz_common.h"
#include "lsm/manifest.h"
#include "lsm/version.h"
#include "util/keycmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cairn_env *env = cairn_env_mem_new();
    if (!env)
        return 0;
    static const char cur[] = "MANIFEST-000001\n";
    if (cairn_env_mkdir(env, "/m") != 0 ||
        fuzz_put_file(env, "/m/CURRENT", (const uint8_t *)cur,
                      sizeof cur - 1) != 0 ||
        fuzz_put_file(env, "/m/MANIFEST-000001", data, size) != 0) {
        cairn_env_destroy(env);
        return 0;
    }
    cairn_manifest_options o;
    cairn_manifest_options_init(&o);
    o.read_only = true;
    cairn_manifest *m = NULL;
    cairn_version *v = NULL;
    cairn_manifest_info info;
    if (cairn_manifest_open_ex(env, "/m", &o, &m, &v, &info) == 0) {
        for (int l = 0; l < 8; l++)
            for (size_t i = 0; i < cairn_version_num_files(v, l); i++) {
                const cairn_file_meta *f = cairn_version_file(v, l, i);
                FUZZ_CHECK(f->level == (uint32_t)l);
                FUZZ_CHECK(cairn_key_cmp(f->smallest.ukey, f->smallest.ulen,
                                         f->largest.ukey,
                                         f->largest.ulen) <= 0);
            }
        cairn_version_unref(v);
        cairn_manifest_close(m);
    }
    cairn_env_destroy(env);
    return 0;
}
