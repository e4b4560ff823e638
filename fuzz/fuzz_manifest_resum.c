/*
 * fuzz_manifest_resum.c — fuzz target for what the manifest reader does
 * behind its checksums: the input is a list of records, and the target
 * writes them as a manifest with a valid header and valid record
 * checksums, so the reader decodes and applies arbitrary version edits
 * (fuzz_manifest almost always stops at a checksum).
 *
 * Input: records, each a kind byte (1 snapshot, 2 edit, anything else as
 * it is), a 2-byte little-endian length and that many payload bytes (cut
 * short at the end of the input; empty records are written as they are).
 *
 * Checks: the read-only open yields a version or fails with an error
 * (CAIRN_ECORRUPT, CAIRN_EVERSION, ...), never a crash or a sanitizer
 * report; a version that opens has every file at a level of the format
 * with its smallest key not above its largest, and the files of each level
 * from 1 down in key order without overlap.
 * Locking: single-threaded.
 */
#include <string.h>
#include <xxhash.h>

#include "cairn.h"
#include "fuzz_common.h"
#include "lsm/manifest.h"
#include "lsm/version.h"
#include "util/coding.h"
#include "util/keycmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* header + every record's 16-byte header + payloads */
    size_t cap = 32 + size / 3 * 16 + size + 16;
    uint8_t *m = malloc(cap);
    cairn_env *env = m ? cairn_env_mem_new() : NULL;
    if (!env) {
        free(m);
        return 0;
    }
    memcpy(m, "CAIRNMFT", 8);
    cairn_put_u32(m + 8, 1);
    cairn_put_u32(m + 12, 32);
    cairn_put_u64(m + 16, 1);
    cairn_put_u64(m + 24, XXH3_64bits(m, 24));
    size_t len = 32;
    for (size_t p = 0; p + 3 <= size;) {
        uint8_t kind = data[p];
        size_t pl = (size_t)data[p + 1] | (size_t)data[p + 2] << 8;
        p += 3;
        if (pl > size - p)
            pl = size - p;
        uint8_t *h = m + len;
        cairn_put_u32(h + 8, (uint32_t)pl);
        h[12] = kind;
        h[13] = h[14] = h[15] = 0;
        memcpy(h + 16, data + p, pl);
        cairn_put_u64(h, XXH3_64bits_withSeed(h + 8, 8,
                                              XXH3_64bits(data + p, pl)));
        len += 16 + pl;
        p += pl;
    }
    static const char cur[] = "MANIFEST-000001\n";
    if (cairn_env_mkdir(env, "/m") != 0 ||
        fuzz_put_file(env, "/m/CURRENT", (const uint8_t *)cur,
                      sizeof cur - 1) != 0 ||
        fuzz_put_file(env, "/m/MANIFEST-000001", m, len) != 0) {
        cairn_env_destroy(env);
        free(m);
        return 0;
    }
    free(m);
    cairn_manifest_options o;
    cairn_manifest_options_init(&o);
    o.read_only = true;
    cairn_manifest *mf = NULL;
    cairn_version *v = NULL;
    cairn_manifest_info info;
    if (cairn_manifest_open_ex(env, "/m", &o, &mf, &v, &info) == 0) {
        for (int l = 0; l < 8; l++) {
            size_t n = cairn_version_num_files(v, l);
            for (size_t i = 0; i < n; i++) {
                const cairn_file_meta *f = cairn_version_file(v, l, i);
                FUZZ_CHECK(f->level == (uint32_t)l);
                FUZZ_CHECK(cairn_key_cmp(f->smallest.ukey, f->smallest.ulen,
                                         f->largest.ukey,
                                         f->largest.ulen) <= 0);
                if (l > 0 && i > 0) {
                    const cairn_file_meta *g = cairn_version_file(v, l, i - 1);
                    FUZZ_CHECK(cairn_key_cmp(g->largest.ukey, g->largest.ulen,
                                             f->smallest.ukey,
                                             f->smallest.ulen) < 0);
                }
            }
        }
        cairn_version_unref(v);
        cairn_manifest_close(mf);
    }
    cairn_env_destroy(env);
    return 0;
}
