/*
 * fuzz_sst_roundtrip.c — fuzz target for the sorted-file writer and
 * reader together: the input is a recipe (options, then entries), so the
 * fuzzer reaches every block layout, codec and filter without fighting the
 * checksums. Entries are added in the order the input gives them; the
 * builder must refuse the ones out of internal order (and only those), and
 * the file must read back exactly what it accepted.
 *
 * Recipe: byte 0 picks the codec (mod 3), byte 1 the block size (16 << (b %
 * 9) bytes), byte 2 the restart interval (1 + b % 16), byte 3 the bloom bits
 * per key (b % 20). Then entries: a length byte for the key (mod 24), one
 * for the value (mod 200; bit 7 set: a delete), a version byte, and the key
 * and value bytes (cut short at the end of the input).
 *
 * Checks: the iterator yields exactly the accepted entries in order; a
 * point get of each accepted key finds its newest version; the file
 * verifies; the properties count what was accepted.
 * Locking: single-threaded.
 */
#include <string.h>

#include "cairn.h"
#include "fuzz_common.h"
#include "sst/sst.h"
#include "util/keycmp.h"

#define MAXE 512

typedef struct ent {
    const uint8_t *k, *v;
    size_t kl, vl;
    uint64_t ver;
    bool del;
} ent;

/* Internal order: user key ascending, then version descending. */
static int ent_cmp(const ent *a, const ent *b)
{
    int c = cairn_key_cmp(a->k, a->kl, b->k, b->kl);
    if (c)
        return c;
    return a->ver > b->ver ? -1 : a->ver < b->ver;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    cairn_sst_options o;
    cairn_sst_options_init(&o);
    o.codec = (cairn_sst_codec)(data[0] % 3);
    o.block_size = 16u << (data[1] % 9);
    o.restart_interval = 1u + data[2] % 16;
    o.bloom_bits_per_key = data[3] % 20;
    size_t p = 4;
    static ent acc[MAXE];
    size_t n = 0;
    cairn_env *env = cairn_env_mem_new();
    cairn_sst_builder *b = NULL;
    if (!env || cairn_sst_builder_new(env, "r.sst", &o, &b) != 0) {
        cairn_env_destroy(env);
        return 0;
    }
    while (p + 3 <= size && n < MAXE) {
        ent e;
        e.kl = data[p] % 24;
        e.del = (data[p + 1] & 0x80) != 0;
        e.vl = e.del ? 0 : (size_t)(data[p + 1] & 0x7f) * 2 % 200;
        e.ver = 1 + data[p + 2];
        p += 3;
        if (p + e.kl > size)
            e.kl = size - p;
        e.k = data + p;
        p += e.kl;
        if (p + e.vl > size)
            e.vl = size - p;
        e.v = data + p;
        p += e.vl;
        bool in_order = n == 0 || ent_cmp(&acc[n - 1], &e) < 0;
        int rc = cairn_sst_builder_add(b, e.k, e.kl, e.ver, e.ver * 10,
                                       e.del ? CAIRN_SST_DELETE : CAIRN_SST_PUT,
                                       e.vl ? e.v : NULL, e.vl);
        FUZZ_CHECK(in_order ? rc == 0 : rc == CAIRN_EINVAL);
        if (rc == 0)
            acc[n++] = e;
    }
    cairn_sst_props props;
    int rc = cairn_sst_builder_finish(b, &props);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(props.entries == n);
    cairn_sst_props_clear(&props);
    FUZZ_CHECK(cairn_sst_verify(env, "r.sst", NULL, NULL, NULL) == 0);
    cairn_sst_reader *r = NULL;
    FUZZ_CHECK(cairn_sst_open(env, "r.sst", 1, NULL, &r, NULL) == 0);
    cairn_sst_iter *it = NULL;
    FUZZ_CHECK(cairn_sst_iter_new(r, &it) == 0);
    size_t i = 0;
    for (cairn_sst_iter_seek_first(it); cairn_sst_iter_valid(it);
         cairn_sst_iter_next(it), i++) {
        FUZZ_CHECK(i < n);
        cairn_sst_entry e;
        cairn_sst_iter_entry(it, &e);
        FUZZ_CHECK(e.klen == acc[i].kl && e.version == acc[i].ver);
        FUZZ_CHECK(e.klen == 0 || memcmp(e.key, acc[i].k, e.klen) == 0);
        FUZZ_CHECK(e.kind == (acc[i].del ? CAIRN_SST_DELETE : CAIRN_SST_PUT));
        FUZZ_CHECK(e.vlen == acc[i].vl);
        FUZZ_CHECK(e.vlen == 0 || memcmp(e.value, acc[i].v, e.vlen) == 0);
    }
    FUZZ_CHECK(cairn_sst_iter_status(it) == 0 && i == n);
    cairn_sst_iter_free(it);
    for (i = 0; i < n; i++) {
        if (i > 0 && cairn_key_cmp(acc[i - 1].k, acc[i - 1].kl, acc[i].k,
                                   acc[i].kl) == 0)
            continue; /* not the newest version of its key */
        cairn_sst_entry e;
        cairn_sst_pin pin;
        rc = cairn_sst_get(r, acc[i].k, acc[i].kl, UINT64_MAX, UINT64_MAX, &e,
                           &pin, NULL);
        FUZZ_CHECK(rc == 0);
        FUZZ_CHECK(e.version == acc[i].ver && e.vlen == acc[i].vl);
        cairn_sst_pin_release(&pin);
    }
    cairn_sst_close(r);
    cairn_env_destroy(env);
    return 0;
}
