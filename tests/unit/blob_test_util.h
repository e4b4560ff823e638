/*
 * blob_test_util.h — what the blob store's tests share: contents that can
 * be recomputed from (seed, length, kind) (random, or compressible text),
 * a model of appended records, whole-file helpers over an env, and a
 * record builder written from docs/format/blob.md alone (not from the
 * implementation), so the tests also check that the code follows the page.
 * Header-only; each test is one program.
 */
#ifndef CAIRN_BLOB_TEST_UTIL_H
#define CAIRN_BLOB_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "blob/blob_file.h"
#include "cairn.h"
#include "env/env.h"
#include "test_util.h"
#include "util/coding.h"

/* Contents: kind 0 random bytes, kind 1 text made of a few words. */
static inline void bt_fill(uint8_t *buf, size_t len, uint64_t seed, int kind)
{
    if (kind == 0) {
        tu_fill(buf, len, seed);
        return;
    }
    static const char *const words[] = {
        "cairn ", "stone ", "blob ", "value ", "chunk ", "store ",
        "the ",   "a ",     "of ",   "key ",   "seal ",  "log ",
    };
    uint64_t s = seed * 31 + len;
    size_t i = 0;
    while (i < len) {
        const char *w = words[tu_rand(&s, 12)];
        size_t wl = strlen(w);
        if (wl > len - i)
            wl = len - i;
        memcpy(buf + i, w, wl);
        i += wl;
    }
}

static inline uint8_t *bt_make(size_t len, uint64_t seed, int kind)
{
    uint8_t *p = malloc(len ? len : 1);
    if (p)
        bt_fill(p, len, seed, kind);
    return p;
}

/* One record the test appended. */
typedef struct bt_rec {
    uint64_t seed;
    size_t len;
    int kind;
    uint8_t hash[CAIRN_BLOB_HASH_SIZE];
    cairn_blob_loc loc;
    bool ok;    /* the append returned 0 */
    bool acked; /* and a later sync (or seal) succeeded */
} bt_rec;

/* Read a whole file of env into *out (malloc'ed). */
static inline int bt_read_file(cairn_env *env, const char *path,
                               uint8_t **out, size_t *len)
{
    cairn_file *f = NULL;
    int rc = cairn_env_open(env, path, CAIRN_OPEN_READ, &f);
    if (rc)
        return rc;
    uint64_t size = 0;
    rc = cairn_file_size(f, &size);
    uint8_t *p = malloc(size ? size : 1);
    size_t n = 0;
    if (rc == 0 && p)
        rc = cairn_file_read_at(f, 0, p, size, &n);
    cairn_file_close(f);
    if (rc || !p || n != size) {
        free(p);
        return rc ? rc : CAIRN_EIO;
    }
    *out = p;
    *len = size;
    return 0;
}

static inline int bt_write_file(cairn_env *env, const char *path,
                                const uint8_t *p, size_t len)
{
    cairn_file *f = NULL;
    int rc = cairn_env_open(env, path,
                            CAIRN_OPEN_WRITE | CAIRN_OPEN_CREATE |
                                CAIRN_OPEN_TRUNC,
                            &f);
    if (rc)
        return rc;
    if (len)
        rc = cairn_file_write_at(f, 0, p, len);
    int crc = cairn_file_close(f);
    return rc ? rc : crc;
}

/* ---- the format, from docs/format/blob.md ---- */

static inline void bt_put_header(tbuf *t, uint64_t number, uint32_t version)
{
    uint8_t h[32];
    memcpy(h, "CAIRNBLB", 8);
    cairn_put_u32(h + 8, version);
    cairn_put_u32(h + 12, 32);
    cairn_put_u64(h + 16, number);
    cairn_put_u64(h + 24, XXH3_64bits(h, 24));
    tb_put(t, h, 32);
}

/* Append a record at the buffer's end with these fields (the offset field
 * is the record's position unless off_field is not UINT64_MAX). */
static inline void bt_put_record(tbuf *t, uint8_t type, uint8_t codec,
                                 const uint8_t *hash, uint32_t raw_len,
                                 const uint8_t *stored, uint32_t stored_len,
                                 uint64_t off_field, uint8_t reserved)
{
    uint8_t h[64];
    memcpy(h, "BREC", 4);
    h[4] = type;
    h[5] = codec;
    h[6] = reserved;
    h[7] = 0;
    cairn_put_u64(h + 8, off_field == UINT64_MAX ? t->len : off_field);
    if (hash)
        memcpy(h + 16, hash, 32);
    else
        memset(h + 16, 0, 32);
    cairn_put_u32(h + 48, raw_len);
    cairn_put_u32(h + 52, stored_len);
    cairn_put_u64(h + 56, XXH3_64bits_withSeed(
                              h, 56, XXH3_64bits(stored, stored_len)));
    tb_put(t, h, 64);
    tb_put(t, stored, stored_len);
}

static inline void bt_put_seal(tbuf *t, uint64_t records, uint64_t raw,
                               uint64_t stored)
{
    uint8_t pl[24];
    cairn_put_u64(pl, records);
    cairn_put_u64(pl + 8, raw);
    cairn_put_u64(pl + 16, stored);
    bt_put_record(t, 2, 0, NULL, 24, pl, 24, UINT64_MAX, 0);
}

#endif /* CAIRN_BLOB_TEST_UTIL_H */
