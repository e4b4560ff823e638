/*
 * fuzz_sst_resum.c — fuzz target for what the sorted-file reader does
 * behind its checksums: a valid file is built from the input, its bytes
 * are changed as the input says, and the checksums of the changed blocks
 * (and of the footer) are recomputed, so the reader parses the damaged
 * contents instead of stopping at the checksum (fuzz_sst almost always
 * stops there).
 *
 * Input: byte 0 the number of entries (1 + b), byte 1 the block size (32 <<
 * (b % 6)), byte 2 the restart interval (1 + b % 8) and, bit 7 set, no
 * filter. The file is built uncompressed (the block contents are what get
 * changed). Then changes, 4 bytes each: a block selector (mod the number
 * of blocks + 1: the last is the footer), a 2-byte offset (mod the block's
 * stored size, or the footer's 80 checked bytes) and an XOR mask (0 means
 * 0x01).
 *
 * Checks: open, verify, walk both ways, seeks and point gets either work
 * or fail with an error, never a crash or a read out of bounds; a file
 * that verifies walks in strictly increasing internal order without an
 * error.
 * Locking: single-threaded.
 */
#include <stdbool.h>
#include <string.h>
#include <xxhash.h>

#include "cairn.h"
#include "fuzz_common.h"
#include "sst/sst.h"
#include "util/coding.h"
#include "util/keycmp.h"

#define FOOTER 88u
#define MAXB 4096

typedef struct blk {
    uint64_t off, size; /* stored bytes; the type byte and checksum follow */
    bool dirty;
} blk;

static int build(cairn_env *env, const uint8_t *data, size_t size)
{
    cairn_sst_options so;
    cairn_sst_options_init(&so);
    so.codec = CAIRN_SST_CODEC_NONE;
    so.block_size = (size_t)32 << (data[1] % 6);
    so.restart_interval = 1 + data[2] % 8;
    so.bloom_bits_per_key = data[2] & 0x80 ? 0 : 10;
    (void)size;
    cairn_sst_builder *b = NULL;
    if (cairn_sst_builder_new(env, "f.sst", &so, &b) != 0)
        return -1;
    unsigned n = 1u + data[0];
    for (unsigned i = 0; i < n; i++) {
        char key[16], val[64];
        int kl = snprintf(key, sizeof key, "key%04u", i / 2 * 3);
        uint64_t ver = i % 2 ? 5 : 9; /* two versions of each key */
        size_t vl = (i * 7) % sizeof val;
        memset(val, 'a' + (int)(i % 26), vl);
        bool del = i % 11 == 10;
        if (cairn_sst_builder_add(b, key, (size_t)kl, ver, ver * 10,
                                  del ? CAIRN_SST_DELETE : CAIRN_SST_PUT,
                                  del ? NULL : val, del ? 0 : vl) != 0) {
            cairn_sst_builder_abandon(b);
            return -1;
        }
    }
    cairn_sst_props props;
    int rc = cairn_sst_builder_finish(b, &props);
    if (rc == 0)
        cairn_sst_props_clear(&props);
    return rc;
}

static void exercise(cairn_env *env)
{
    int vrc = cairn_sst_verify(env, "f.sst", NULL, NULL, NULL);
    cairn_sst_reader *r = NULL;
    if (cairn_sst_open(env, "f.sst", 1, NULL, &r, NULL) != 0) {
        FUZZ_CHECK(vrc != 0);
        return;
    }
    cairn_sst_iter *it = NULL;
    if (cairn_sst_iter_new(r, &it) == 0) {
        uint8_t prev[256];
        size_t prevlen = 0, n = 0;
        uint64_t prevver = 0;
        for (cairn_sst_iter_seek_first(it); cairn_sst_iter_valid(it) &&
                                            n < 100000;
             cairn_sst_iter_next(it), n++) {
            cairn_sst_entry e;
            cairn_sst_iter_entry(it, &e);
            if (vrc == 0 && n > 0 && prevlen <= sizeof prev) {
                int c = cairn_key_cmp(prev, prevlen, e.key, e.klen);
                FUZZ_CHECK(c < 0 || (c == 0 && prevver > e.version));
            }
            prevlen = e.klen;
            if (e.klen <= sizeof prev)
                memcpy(prev, e.key, e.klen);
            prevver = e.version;
        }
        if (vrc == 0)
            FUZZ_CHECK(cairn_sst_iter_status(it) == 0);
        for (cairn_sst_iter_seek_last(it); cairn_sst_iter_valid(it) && n > 0;
             cairn_sst_iter_prev(it))
            n--;
        cairn_sst_iter_seek(it, "key0300", 7, UINT64_MAX);
        if (cairn_sst_iter_valid(it))
            cairn_sst_iter_next(it);
        cairn_sst_iter_seek_for_prev(it, "key0150", 7, 6);
        if (cairn_sst_iter_valid(it))
            cairn_sst_iter_prev(it);
        cairn_sst_iter_free(it);
    }
    for (unsigned i = 0; i < 400; i += 37) {
        char key[16];
        int kl = snprintf(key, sizeof key, "key%04u", i);
        cairn_sst_entry e;
        cairn_sst_pin pin;
        memset(&pin, 0, sizeof pin);
        if (cairn_sst_get(r, key, (size_t)kl, UINT64_MAX, UINT64_MAX, &e, &pin,
                          NULL) == 0)
            cairn_sst_pin_release(&pin);
    }
    cairn_sst_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    cairn_env *env = cairn_env_mem_new();
    if (!env)
        return 0;
    cairn_file *f = NULL;
    uint8_t *file = NULL;
    blk *blocks = NULL;
    if (build(env, data, size) != 0)
        goto out;
    /* The block layout, from the pristine file. */
    cairn_sst_reader *r = NULL;
    FUZZ_CHECK(cairn_sst_open(env, "f.sst", 1, NULL, &r, NULL) == 0);
    const cairn_sst_props *pp = cairn_sst_props_get(r);
    size_t nd = pp->data_blocks < MAXB ? (size_t)pp->data_blocks : MAXB;
    blocks = calloc(nd + 4, sizeof *blocks);
    size_t nb = 0;
    for (size_t i = 0; blocks && i < nd; i++)
        if (cairn_sst_data_block(r, i, &blocks[nb].off, &blocks[nb].size) == 0)
            nb++;
    cairn_sst_close(r);
    if (!blocks)
        goto out;
    uint64_t fsize = 0;
    FUZZ_CHECK(cairn_env_open(env, "f.sst", CAIRN_OPEN_READ | CAIRN_OPEN_WRITE,
                              &f) == 0);
    FUZZ_CHECK(cairn_file_size(f, &fsize) == 0 && fsize >= FOOTER);
    file = malloc(fsize);
    size_t got = 0;
    if (!file || cairn_file_read_at(f, 0, file, fsize, &got) != 0 ||
        got != fsize)
        goto out;
    uint8_t *ft = file + fsize - FOOTER;
    for (int h = 0; h < 4; h++) { /* metaindex, filter, index, properties */
        uint64_t off = cairn_get_u64(ft + 16 + 16 * h);
        uint64_t sz = cairn_get_u64(ft + 24 + 16 * h);
        if (sz && off + sz + 9 <= fsize - FOOTER)
            blocks[nb++] = (blk){off, sz, false};
    }
    bool footer_dirty = false;
    for (size_t p = 3; p + 4 <= size; p += 4) {
        size_t sel = data[p] % (nb + 1);
        size_t off = (size_t)data[p + 1] | (size_t)data[p + 2] << 8;
        uint8_t x = data[p + 3] ? data[p + 3] : 1;
        if (sel == nb) {
            ft[off % 80] ^= x;
            footer_dirty = true;
        } else {
            file[blocks[sel].off + off % blocks[sel].size] ^= x;
            blocks[sel].dirty = true;
        }
    }
    for (size_t i = 0; i < nb; i++)
        if (blocks[i].dirty) {
            uint64_t sum = XXH3_64bits(file + blocks[i].off,
                                       (size_t)blocks[i].size + 1);
            cairn_put_u64(file + blocks[i].off + blocks[i].size + 1, sum);
        }
    if (footer_dirty)
        cairn_put_u64(ft + 80, XXH3_64bits(ft, 80));
    FUZZ_CHECK(cairn_file_write_at(f, 0, file, fsize) == 0);
    (void)cairn_file_close(f);
    f = NULL;
    exercise(env);
out:
    if (f)
        (void)cairn_file_close(f);
    free(file);
    free(blocks);
    cairn_env_destroy(env);
    return 0;
}
