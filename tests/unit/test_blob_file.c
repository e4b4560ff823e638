/*
 * test_blob_file.c — the blob store's files (src/blob/blob_file.c, format
 * docs/format/blob.md):
 *   - round trips through the appender and the reader (empty, small, large,
 *     compressible and not; rotation; a record larger than the target file
 *     size), every file sealed and scanning back to exactly what was
 *     appended;
 *   - files built by hand from the format page read back (conformance), and
 *     every malformed record the page rules out is CAIRN_ECORRUPT (wrong
 *     hash, bad zstd frames, bad fields), a newer version CAIRN_EVERSION;
 *   - every bit flip anywhere in a sealed file is detected by the scanner,
 *     and never makes a read return wrong bytes; in an unsealed file a flip
 *     before the last record is corruption and one in it a torn tail;
 *   - every truncation is a torn tail that recovery cuts and seals;
 *   - garbage in the middle: corruption naming the offset, salvage skips it;
 *   - the GC rewriter copies exactly the live records and leaves the source
 *     untouched;
 *   - four threads appending at once (also under TSan);
 *   - throughput of append and read on the POSIX env (printed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <zstd.h>

#include "blob_test_util.h"

#define DIR "/b"

static cairn_env *mem_env(void)
{
    cairn_env *env = cairn_env_mem_new();
    assert_non_null(env);
    assert_int_equal(cairn_env_mkdir(env, DIR), 0);
    return env;
}

static void path_of(char *buf, size_t cap, uint64_t n)
{
    assert_int_equal(cairn_blob_file_name(buf, cap, DIR, n), 0);
}

static int append_rec(cairn_blob_appender *a, bt_rec *r)
{
    uint8_t *p = bt_make(r->len, r->seed, r->kind);
    assert_non_null(p);
    assert_int_equal(cairn_blob_hash(p, r->len, r->hash), 0);
    /* half the time the caller passes the hash, half the time not */
    int rc = cairn_blob_append(a, p, r->len, (r->seed & 1) ? r->hash : NULL,
                               &r->loc);
    r->ok = rc == 0;
    free(p);
    return rc;
}

static void check_read(cairn_env *env, const bt_rec *r)
{
    void *out = NULL;
    size_t n = 0;
    assert_int_equal(cairn_blob_read(env, DIR, &r->loc, r->hash, &out, &n), 0);
    assert_non_null(out);
    assert_int_equal(n, r->len);
    uint8_t *want = bt_make(r->len, r->seed, r->kind);
    assert_memory_equal(out, want, r->len);
    free(want);
    free(out);
}

/* Reading r at its location: its exact content, or CAIRN_ECORRUPT. */
static void read_exact_or_corrupt(cairn_env *env, const bt_rec *r)
{
    void *out = NULL;
    size_t n = 0;
    int rc = cairn_blob_read(env, DIR, &r->loc, r->hash, &out, &n);
    if (rc == 0) {
        uint8_t *want = bt_make(r->len, r->seed, r->kind);
        assert_int_equal(n, r->len);
        assert_memory_equal(out, want, r->len);
        free(want);
        free(out);
    } else {
        assert_int_equal(rc, CAIRN_ECORRUPT);
        assert_null(out);
    }
}

/* Records a scan saw (without their pointers). */
typedef struct seen {
    cairn_blob_record *r;
    size_t n, cap;
} seen;

static int collect(void *arg, const cairn_blob_record *rec)
{
    seen *s = arg;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->r = realloc(s->r, s->cap * sizeof *s->r);
        assert_non_null(s->r);
    }
    cairn_blob_record c = *rec;
    if (rec->content) {
        uint8_t h[32];
        assert_int_equal(cairn_blob_hash(rec->content, rec->raw_len, h), 0);
        assert_memory_equal(h, rec->hash, 32);
    }
    c.stored = c.content = NULL;
    s->r[s->n++] = c;
    return 0;
}

static int scan(cairn_env *env, uint64_t number, bool verify, bool sealed,
                bool salvage, seen *s, cairn_blob_scan_info *info)
{
    char path[256];
    path_of(path, sizeof path, number);
    cairn_blob_scan_options o = {.verify_content = verify,
                                 .require_sealed = sealed,
                                 .salvage = salvage};
    if (s)
        s->n = 0;
    return cairn_blob_scan(env, path, number, &o, s ? collect : NULL, s,
                           info);
}

/* The seen records equal recs[0, n) (hash and location). */
static void assert_seen_is(const seen *s, const bt_rec *const *recs, size_t n)
{
    assert_int_equal(s->n, n);
    for (size_t i = 0; i < n; i++) {
        assert_memory_equal(s->r[i].hash, recs[i]->hash, 32);
        assert_int_equal(s->r[i].loc.file, recs[i]->loc.file);
        assert_int_equal(s->r[i].loc.offset, recs[i]->loc.offset);
        assert_int_equal(s->r[i].loc.stored_len, recs[i]->loc.stored_len);
        assert_int_equal(s->r[i].raw_len, recs[i]->len);
    }
}

/* ---- helpers, names ---- */

static void test_hash_and_names(void **state)
{
    (void)state;
    uint8_t h[32];
    assert_int_equal(cairn_blob_hash("abc", 3, h), 0);
    static const uint8_t abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
        0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
        0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    assert_memory_equal(h, abc, 32);
    assert_int_equal(cairn_blob_hash(NULL, 0, h), 0);
    assert_int_equal(h[0], 0xe3); /* SHA-256("") = e3b0c442... */
    assert_int_equal(h[1], 0xb0);

    char buf[64];
    assert_int_equal(cairn_blob_file_name(buf, sizeof buf, "/d", 42), 0);
    assert_string_equal(buf, "/d/000042.blob");
    assert_int_equal(cairn_blob_file_name(buf, 8, "/d", 42), CAIRN_EINVAL);
    uint64_t n = 0;
    assert_true(cairn_blob_parse_name("000042.blob", &n));
    assert_int_equal(n, 42);
    assert_true(cairn_blob_parse_name("1234567.blob", &n));
    assert_int_equal(n, 1234567);
    assert_false(cairn_blob_parse_name("42.blob", &n));
    assert_false(cairn_blob_parse_name("0000042.blob", &n));
    assert_false(cairn_blob_parse_name("000000.blob", &n));
    assert_false(cairn_blob_parse_name("000042.sst", &n));
    assert_false(cairn_blob_parse_name("00004a.blob", &n));
    assert_false(cairn_blob_parse_name("99999999999999999999.blob", &n));
}

/* ---- round trips ---- */

typedef struct seal_log {
    cairn_blob_file_stats st[256];
    int n;
} seal_log;

static void on_sealed(void *arg, const cairn_blob_file_stats *st)
{
    seal_log *l = arg;
    assert_true(l->n < 256);
    l->st[l->n++] = *st;
}

static size_t pick_len(uint64_t *rng, size_t i)
{
    if (i % 10 == 0)
        return 0;
    switch (tu_rand(rng, 5)) {
    case 0:
        return 1 + tu_rand(rng, 100);
    case 1:
        return 100 + tu_rand(rng, 5000);
    case 2:
        return 5000 + tu_rand(rng, 60000);
    case 3:
        return 60000 + tu_rand(rng, 60000);
    default:
        return 1 + tu_rand(rng, 16);
    }
}

static void test_round_trip(void **state)
{
    (void)state;
    cairn_env *env = mem_env();
    seal_log log = {.n = 0};
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = env;
    o.dir = DIR;
    o.file_size = 256 << 10;
    o.first_number = 5;
    o.sealed = on_sealed;
    o.sealed_arg = &log;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    assert_int_equal(cairn_blob_appender_current(a), 0); /* lazily created */
    assert_int_equal(cairn_env_exists(env, DIR "/000005.blob"),
                     CAIRN_ENOTFOUND);

    enum { N = 300 };
    static bt_rec recs[N + 1];
    uint64_t rng = 11;
    for (size_t i = 0; i < N; i++) {
        bt_rec *r = &recs[i];
        memset(r, 0, sizeof *r);
        r->seed = 1000 + i;
        r->len = pick_len(&rng, i);
        r->kind = (int)tu_rand(&rng, 2);
        assert_int_equal(append_rec(a, r), 0);
        assert_true(r->loc.file >= 5);
        assert_true(r->loc.offset >= 32);
        if (r->kind == 0 && r->len > 0)
            assert_int_equal(r->loc.stored_len, r->len); /* kept raw */
        if (r->kind == 1 && r->len >= 200)
            assert_true(r->loc.stored_len < r->len / 2); /* zstd */
        if (r->len == 0)
            assert_int_equal(r->loc.stored_len, 0);
        if (i % 50 == 49)
            assert_int_equal(cairn_blob_appender_sync(a), 0);
    }
    /* One record larger than the target file size goes alone. */
    bt_rec *big = &recs[N];
    memset(big, 0, sizeof *big);
    big->seed = 77;
    big->len = 300 << 10;
    assert_int_equal(append_rec(a, big), 0);
    assert_int_equal(big->loc.offset, 32);
    uint64_t last_file = big->loc.file;
    assert_int_equal(cairn_blob_appender_current(a), last_file);

    /* Everything reads back while the appender is open. */
    for (size_t i = 0; i <= N; i++)
        check_read(env, &recs[i]);
    assert_int_equal(cairn_blob_appender_close(a), 0);
    assert_int_equal(log.n, (int)(last_file - 5 + 1));

    /* Every file sealed, holding exactly its records, in order. */
    seen s = {0};
    size_t at = 0;
    for (uint64_t f = 5; f <= last_file; f++) {
        const bt_rec *mine[N + 1];
        size_t k = 0;
        uint64_t raw = 0, stored = 0;
        while (at <= N && recs[at].loc.file == f) {
            raw += recs[at].len;
            stored += recs[at].loc.stored_len;
            mine[k++] = &recs[at++];
        }
        assert_true(k > 0);
        cairn_blob_scan_info info;
        assert_int_equal(scan(env, f, true, true, false, &s, &info), 0);
        assert_true(info.sealed);
        assert_seen_is(&s, mine, k);
        assert_int_equal(info.raw_bytes, raw);
        assert_int_equal(info.stored_bytes, stored);
        assert_int_equal(info.torn_bytes, 0);
        assert_int_equal(info.size, info.end + CAIRN_BLOB_SEAL_SIZE);
        const cairn_blob_file_stats *st = &log.st[f - 5];
        assert_int_equal(st->number, f);
        assert_int_equal(st->records, k);
        assert_int_equal(st->raw_bytes, raw);
        assert_int_equal(st->stored_bytes, stored);
        assert_int_equal(st->size, info.size);
        if (f < last_file)
            assert_true(info.size <= o.file_size);
    }
    assert_int_equal(at, N + 1);
    free(s.r);
    for (size_t i = 0; i <= N; i++)
        check_read(env, &recs[i]);

    /* Constant bytes: the highest compression ratio zstd reaches. */
    cairn_blob_appender_options_init(&o);
    o.env = env;
    o.dir = DIR;
    o.first_number = 50;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    const size_t zl = 32 << 20;
    uint8_t *zeros = calloc(1, zl);
    assert_non_null(zeros);
    cairn_blob_loc zloc;
    assert_int_equal(cairn_blob_append(a, zeros, zl, NULL, &zloc), 0);
    assert_true(zloc.stored_len < zl / 1000);
    assert_int_equal(cairn_blob_appender_close(a), 0);
    void *zout;
    size_t zn;
    assert_int_equal(cairn_blob_read(env, DIR, &zloc, NULL, &zout, &zn), 0);
    assert_int_equal(zn, zl);
    assert_memory_equal(zout, zeros, zl);
    free(zout);
    free(zeros);

    /* Too large: refused before anything is touched. */
    cairn_blob_appender_options_init(&o);
    o.env = env;
    o.dir = DIR;
    o.first_number = 100;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    cairn_blob_loc loc;
    static const uint8_t dummy[1];
    assert_int_equal(cairn_blob_append(a, dummy, ((size_t)1 << 30) + 1, NULL,
                                       &loc),
                     CAIRN_ETOOLARGE);
    assert_int_equal(cairn_blob_append(a, NULL, 5, NULL, &loc), CAIRN_EINVAL);
    assert_int_equal(cairn_blob_appender_close(a), 0);
    assert_int_equal(cairn_env_exists(env, DIR "/000100.blob"),
                     CAIRN_ENOTFOUND);
    cairn_env_destroy(env);
}

/* ---- hand-built files: conformance and every malformed record ---- */

static void put_file(cairn_env *env, uint64_t number, const tbuf *t)
{
    char path[256];
    path_of(path, sizeof path, number);
    assert_int_equal(bt_write_file(env, path, t->p, t->len), 0);
}

static int read_at(cairn_env *env, uint64_t number, uint64_t off,
                   uint32_t stored, const uint8_t *hash, void **out,
                   size_t *n)
{
    cairn_blob_loc l = {number, off, stored};
    return cairn_blob_read(env, DIR, &l, hash, out, n);
}

static size_t zstd_frame(uint8_t *dst, size_t cap, const void *src,
                         size_t len, bool content_size)
{
    ZSTD_CCtx *c = ZSTD_createCCtx();
    assert_non_null(c);
    ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, content_size ? 1 : 0);
    size_t n = ZSTD_compress2(c, dst, cap, src, len);
    ZSTD_freeCCtx(c);
    assert_false(ZSTD_isError(n));
    return n;
}

static void test_hand_built(void **state)
{
    (void)state;
    cairn_env *env = mem_env();
    const char *hello = "hello, blob";
    uint8_t hh[32], th[32];
    assert_int_equal(cairn_blob_hash(hello, strlen(hello), hh), 0);
    uint8_t text[4000];
    bt_fill(text, sizeof text, 3, 1);
    assert_int_equal(cairn_blob_hash(text, sizeof text, th), 0);
    uint8_t z[8000];
    size_t zn = zstd_frame(z, sizeof z, text, sizeof text, true);

    /* A valid file, written from the format page. */
    tbuf t = {0};
    bt_put_header(&t, 7, 1);
    uint64_t a_off = t.len;
    bt_put_record(&t, 1, 0, hh, (uint32_t)strlen(hello),
                  (const uint8_t *)hello, (uint32_t)strlen(hello), UINT64_MAX,
                  0);
    uint64_t b_off = t.len;
    bt_put_record(&t, 1, 1, th, sizeof text, z, (uint32_t)zn, UINT64_MAX, 0);
    uint64_t seal_off = t.len;
    bt_put_seal(&t, 2, strlen(hello) + sizeof text, strlen(hello) + zn);
    put_file(env, 7, &t);

    void *out;
    size_t n;
    assert_int_equal(read_at(env, 7, a_off, (uint32_t)strlen(hello), hh, &out,
                             &n),
                     0);
    assert_int_equal(n, strlen(hello));
    assert_memory_equal(out, hello, n);
    free(out);
    assert_int_equal(read_at(env, 7, b_off, (uint32_t)zn, NULL, &out, &n), 0);
    assert_int_equal(n, sizeof text);
    assert_memory_equal(out, text, n);
    free(out);
    seen s = {0};
    cairn_blob_scan_info info;
    assert_int_equal(scan(env, 7, true, true, false, &s, &info), 0);
    assert_int_equal(s.n, 2);
    assert_true(info.sealed);
    assert_int_equal(info.end, seal_off);

    /* Bad locations. */
    uint32_t hl = (uint32_t)strlen(hello);
    assert_int_equal(read_at(env, 7, 0, hl, NULL, &out, &n), CAIRN_ECORRUPT);
    assert_null(out);
    assert_int_equal(read_at(env, 7, 31, hl, NULL, &out, &n), CAIRN_ECORRUPT);
    assert_int_equal(read_at(env, 7, a_off + 1, hl, NULL, &out, &n),
                     CAIRN_ECORRUPT);
    assert_int_equal(read_at(env, 7, a_off, hl + 1, NULL, &out, &n),
                     CAIRN_ECORRUPT);
    assert_int_equal(read_at(env, 7, a_off, hl - 1, NULL, &out, &n),
                     CAIRN_ECORRUPT);
    assert_int_equal(read_at(env, 7, a_off, hl, th, &out, &n), CAIRN_ECORRUPT);
    assert_int_equal(read_at(env, 7, seal_off, 24, NULL, &out, &n),
                     CAIRN_ECORRUPT);
    assert_int_equal(read_at(env, 7, t.len, 0, NULL, &out, &n),
                     CAIRN_ECORRUPT);
    assert_int_equal(read_at(env, 7, UINT64_MAX - 10, 5, NULL, &out, &n),
                     CAIRN_ECORRUPT);
    assert_int_equal(read_at(env, 7, a_off, 0xFFFFFFFFu, NULL, &out, &n),
                     CAIRN_ECORRUPT);
    assert_int_equal(read_at(env, 9, a_off, hl, NULL, &out, &n),
                     CAIRN_ENOTFOUND);

    /* The file under another number. */
    put_file(env, 8, &t);
    cairn_blob_reader *r;
    char path[256];
    path_of(path, sizeof path, 8);
    assert_int_equal(cairn_blob_reader_open(env, path, 8, &r), CAIRN_ECORRUPT);
    assert_int_equal(scan(env, 8, false, false, false, NULL, &info),
                     CAIRN_ECORRUPT);
    assert_int_equal(info.bad_offset, 0);

    /* Header versions and fields. */
    for (int v = 0; v < 4; v++) {
        tbuf h = {0};
        bt_put_header(&h, 9, v == 3 ? 1 : (uint32_t)v * 2); /* 0, 2, 4, 1 */
        if (v == 3) { /* header size 33, checksum redone */
            cairn_put_u32(h.p + 12, 33);
            cairn_put_u64(h.p + 24, XXH3_64bits(h.p, 24));
        }
        bt_put_record(&h, 1, 0, hh, hl, (const uint8_t *)hello, hl,
                      UINT64_MAX, 0);
        put_file(env, 9, &h);
        int want = (v == 1 || v == 2) ? CAIRN_EVERSION : CAIRN_ECORRUPT;
        assert_int_equal(read_at(env, 9, 32, hl, NULL, &out, &n), want);
        assert_int_equal(scan(env, 9, false, false, false, NULL, &info), want);
        tb_free(&h);
    }

    /* Malformed records, each at offset 32, checksum valid, followed by a
     * good one (so a bad header is corruption, not a torn tail). */
    uint8_t wrong[32];
    memcpy(wrong, hh, 32);
    wrong[7] ^= 1;
    uint8_t zbuf[8000], znosize[8000];
    size_t zns = zstd_frame(znosize, sizeof znosize, text, sizeof text, false);
    enum { C_WRONG_HASH, C_ZSIZE, C_ZTRAIL, C_ZNOSIZE, C_ZGARBAGE,
           C_RAWLEN, C_CODEC, C_TYPE, C_RESERVED, C_OFFSET, C_HUGE, C_N };
    for (int c = 0; c < C_N; c++) {
        tbuf m = {0};
        bt_put_header(&m, 10, 1);
        bool content_bad = c <= C_ZGARBAGE;
        switch (c) {
        case C_WRONG_HASH:
            bt_put_record(&m, 1, 0, wrong, hl, (const uint8_t *)hello, hl,
                          UINT64_MAX, 0);
            break;
        case C_ZSIZE: /* header raw length differs from the frame's */
            bt_put_record(&m, 1, 1, th, sizeof text - 1, z, (uint32_t)zn,
                          UINT64_MAX, 0);
            break;
        case C_ZTRAIL: /* a second (empty) frame after the first */
            memcpy(zbuf, z, zn);
            {
                size_t e = ZSTD_compress(zbuf + zn, sizeof zbuf - zn, "", 0, 1);
                assert_false(ZSTD_isError(e));
                bt_put_record(&m, 1, 1, th, sizeof text, zbuf,
                              (uint32_t)(zn + e), UINT64_MAX, 0);
            }
            break;
        case C_ZNOSIZE:
            bt_put_record(&m, 1, 1, th, sizeof text, znosize, (uint32_t)zns,
                          UINT64_MAX, 0);
            break;
        case C_ZGARBAGE: /* the frame damaged before its checksum was made */
            memcpy(zbuf, z, zn);
            zbuf[zn / 2] ^= 0x5a;
            zbuf[zn / 2 + 1] ^= 0xa5;
            bt_put_record(&m, 1, 1, th, sizeof text, zbuf, (uint32_t)zn,
                          UINT64_MAX, 0);
            break;
        case C_RAWLEN:
            bt_put_record(&m, 1, 0, hh, hl + 1, (const uint8_t *)hello, hl,
                          UINT64_MAX, 0);
            break;
        case C_CODEC:
            bt_put_record(&m, 1, 2, hh, hl, (const uint8_t *)hello, hl,
                          UINT64_MAX, 0);
            break;
        case C_TYPE:
            bt_put_record(&m, 3, 0, hh, hl, (const uint8_t *)hello, hl,
                          UINT64_MAX, 0);
            break;
        case C_RESERVED:
            bt_put_record(&m, 1, 0, hh, hl, (const uint8_t *)hello, hl,
                          UINT64_MAX, 1);
            break;
        case C_OFFSET:
            bt_put_record(&m, 1, 0, hh, hl, (const uint8_t *)hello, hl, 33, 0);
            break;
        case C_HUGE:
            bt_put_record(&m, 1, 1, hh, (1u << 30) + 1, z, (uint32_t)zn,
                          UINT64_MAX, 0);
            break;
        }
        uint32_t bad_stored = (uint32_t)(m.len - 32 - 64);
        uint64_t good_off = m.len;
        bt_put_record(&m, 1, 0, hh, hl, (const uint8_t *)hello, hl,
                      UINT64_MAX, 0);
        put_file(env, 10, &m);
        out = (void *)1;
        assert_int_equal(read_at(env, 10, 32, bad_stored, NULL, &out, &n),
                         CAIRN_ECORRUPT);
        assert_null(out);
        assert_int_equal(read_at(env, 10, good_off, hl, hh, &out, &n), 0);
        free(out);
        /* verifying scan: corruption at 32 */
        assert_int_equal(scan(env, 10, true, false, false, &s, &info),
                         CAIRN_ECORRUPT);
        assert_int_equal(info.bad_offset, 32);
        /* plain scan: content damage is not seen, a bad header is */
        int rc = scan(env, 10, false, false, false, &s, &info);
        if (content_bad) {
            assert_int_equal(rc, 0);
            assert_int_equal(s.n, 2);
        } else {
            assert_int_equal(rc, CAIRN_ECORRUPT);
            assert_int_equal(info.bad_offset, 32);
        }
        /* salvage keeps the good record */
        assert_int_equal(scan(env, 10, true, false, true, &s, &info), 0);
        assert_int_equal(s.n, 1);
        assert_int_equal(s.r[0].loc.offset, good_off);
        assert_int_equal(info.skipped_bytes, good_off - 32);
        /* without the good record after it, a bad header is a torn tail */
        m.len = good_off;
        put_file(env, 10, &m);
        rc = scan(env, 10, false, false, false, &s, &info);
        assert_int_equal(rc, 0);
        if (!content_bad) {
            assert_int_equal(s.n, 0);
            assert_int_equal(info.torn_bytes, good_off - 32);
        }
        tb_free(&m);
    }

    /* A seal whose counts are wrong, bytes after a seal. */
    tbuf m = {0};
    bt_put_header(&m, 11, 1);
    bt_put_record(&m, 1, 0, hh, hl, (const uint8_t *)hello, hl, UINT64_MAX, 0);
    uint64_t so = m.len;
    bt_put_seal(&m, 2, hl, hl);
    put_file(env, 11, &m);
    assert_int_equal(scan(env, 11, false, false, false, NULL, &info),
                     CAIRN_ECORRUPT);
    assert_int_equal(info.bad_offset, so);
    m.len = so;
    bt_put_seal(&m, 1, hl, hl);
    tb_put(&m, "x", 1);
    put_file(env, 11, &m);
    assert_int_equal(scan(env, 11, false, false, false, NULL, &info),
                     CAIRN_ECORRUPT);
    assert_int_equal(info.bad_offset, so + CAIRN_BLOB_SEAL_SIZE);
    m.len--;
    put_file(env, 11, &m);
    assert_int_equal(scan(env, 11, false, true, false, NULL, &info), 0);
    assert_true(info.sealed);
    tb_free(&m);

    free(s.r);
    tb_free(&t);
    cairn_env_destroy(env);
}

/* ---- damage sweeps over a file written by the appender ---- */

enum { DN = 6 };

/* A sealed file 1 with DN small records; returns its bytes. */
static uint8_t *damage_fixture(cairn_env *env, bt_rec *recs, size_t *len)
{
    static const size_t lens[DN] = {0, 10, 300, 1000, 2000, 50};
    static const int kinds[DN] = {0, 0, 1, 0, 1, 1};
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = env;
    o.dir = DIR;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    for (int i = 0; i < DN; i++) {
        memset(&recs[i], 0, sizeof recs[i]);
        recs[i].seed = 500 + (uint64_t)i;
        recs[i].len = lens[i];
        recs[i].kind = kinds[i];
        assert_int_equal(append_rec(a, &recs[i]), 0);
        assert_int_equal(recs[i].loc.file, 1);
    }
    assert_int_equal(cairn_blob_appender_close(a), 0);
    char path[256];
    path_of(path, sizeof path, 1);
    uint8_t *p = NULL;
    assert_int_equal(bt_read_file(env, path, &p, len), 0);
    return p;
}

static void test_bit_flips(void **state)
{
    (void)state;
    cairn_env *env = mem_env();
    bt_rec recs[DN];
    const bt_rec *rp[DN];
    for (int i = 0; i < DN; i++)
        rp[i] = &recs[i];
    size_t len;
    uint8_t *orig = damage_fixture(env, recs, &len);
    uint8_t *cp = malloc(len);
    assert_non_null(cp);
    char path[256];
    path_of(path, sizeof path, 1);
    seen s = {0};
    cairn_blob_scan_info info;
    uint64_t last = recs[DN - 1].loc.offset;
    size_t unsealed = len - CAIRN_BLOB_SEAL_SIZE;

    for (int pass = 0; pass < 2; pass++) {
        size_t flen = pass == 0 ? len : unsealed;
        for (size_t i = 0; i < flen; i++) {
            memcpy(cp, orig, flen);
            cp[i] ^= (uint8_t)(1u << (i % 8));
            assert_int_equal(bt_write_file(env, path, cp, flen), 0);
            if (pass == 0) {
                /* sealed: every flip is seen */
                assert_int_equal(scan(env, 1, true, true, false, NULL, &info),
                                 CAIRN_ECORRUPT);
                int rc = scan(env, 1, false, false, false, &s, &info);
                if (i >= len - CAIRN_BLOB_SEAL_SIZE) {
                    /* only the seal: read as an unsealed file, torn */
                    assert_int_equal(rc, 0);
                    assert_false(info.sealed);
                    assert_seen_is(&s, rp, DN);
                } else {
                    assert_int_equal(rc, CAIRN_ECORRUPT);
                }
            } else {
                int rc = scan(env, 1, true, false, false, &s, &info);
                if (i >= last) {
                    assert_int_equal(rc, 0);
                    assert_seen_is(&s, rp, DN - 1);
                    assert_int_equal(info.torn_bytes, flen - last);
                } else {
                    assert_int_equal(rc, CAIRN_ECORRUPT);
                }
            }
            for (int k = 0; k < DN; k++)
                read_exact_or_corrupt(env, &recs[k]);
        }
    }
    free(s.r);
    free(cp);
    free(orig);
    cairn_env_destroy(env);
}

static void test_truncations(void **state)
{
    (void)state;
    cairn_env *env = mem_env();
    bt_rec recs[DN];
    const bt_rec *rp[DN];
    for (int i = 0; i < DN; i++)
        rp[i] = &recs[i];
    size_t len;
    uint8_t *orig = damage_fixture(env, recs, &len);
    char path[256];
    path_of(path, sizeof path, 1);
    seen s = {0};
    cairn_blob_scan_info info;
    for (size_t l = 0; l < len; l++) {
        assert_int_equal(bt_write_file(env, path, orig, l), 0);
        size_t whole = 0;
        uint64_t end = 32;
        while (whole < DN && recs[whole].loc.offset + 64 +
                                     recs[whole].loc.stored_len <=
                                 l) {
            end = recs[whole].loc.offset + 64 + recs[whole].loc.stored_len;
            whole++;
        }
        assert_int_equal(scan(env, 1, true, false, false, &s, &info), 0);
        assert_false(info.sealed);
        assert_seen_is(&s, rp, whole);
        if (l < 32) {
            assert_true(info.header_torn);
        } else {
            assert_false(info.header_torn);
            assert_int_equal(info.end, end);
            assert_int_equal(info.torn_bytes, l - end);
        }
        assert_int_equal(scan(env, 1, false, true, false, NULL, &info),
                         CAIRN_ECORRUPT);
        for (size_t k = 0; k < DN; k++) {
            if (k < whole) {
                check_read(env, &recs[k]);
            } else {
                void *out;
                size_t n;
                int rc = cairn_blob_read(env, DIR, &recs[k].loc,
                                         recs[k].hash, &out, &n);
                assert_true(rc == CAIRN_ECORRUPT);
            }
        }
        /* recovery cuts the tail and seals */
        assert_int_equal(cairn_blob_file_recover(env, path, 1, false, &info),
                         0);
        assert_true(info.sealed);
        assert_int_equal(info.records, whole);
        assert_int_equal(scan(env, 1, true, true, false, &s, &info), 0);
        assert_seen_is(&s, rp, whole);
        assert_int_equal(info.size, info.end + CAIRN_BLOB_SEAL_SIZE);
        for (size_t k = 0; k < whole; k++)
            check_read(env, &recs[k]);
    }
    free(s.r);
    free(orig);
    cairn_env_destroy(env);
}

static void test_mid_garbage_and_recover(void **state)
{
    (void)state;
    cairn_env *env = mem_env();
    bt_rec recs[DN];
    size_t len;
    uint8_t *orig = damage_fixture(env, recs, &len);
    char path[256];
    path_of(path, sizeof path, 1);
    seen s = {0};
    cairn_blob_scan_info info;

    /* Record 2's header zeroed: corruption there; salvage skips it. */
    uint8_t *cp = malloc(len + 200);
    assert_non_null(cp);
    memcpy(cp, orig, len);
    memset(cp + recs[2].loc.offset, 0, 64);
    assert_int_equal(bt_write_file(env, path, cp, len), 0);
    assert_int_equal(scan(env, 1, false, false, false, &s, &info),
                     CAIRN_ECORRUPT);
    assert_int_equal(info.bad_offset, recs[2].loc.offset);
    assert_int_equal(s.n, 2); /* the records before it were handed out */
    assert_int_equal(scan(env, 1, true, false, true, &s, &info), 0);
    assert_int_equal(s.n, DN - 1);
    assert_true(info.sealed);
    assert_int_equal(info.skipped_bytes, 64 + recs[2].loc.stored_len);
    /* recovery refuses a corrupt file and changes nothing */
    assert_int_equal(cairn_blob_file_recover(env, path, 1, false, &info),
                     CAIRN_ECORRUPT);
    uint8_t *now = NULL;
    size_t nl;
    assert_int_equal(bt_read_file(env, path, &now, &nl), 0);
    assert_int_equal(nl, len);
    assert_memory_equal(now, cp, len);
    free(now);

    /* Unsealed with a torn tail: recovered once, then left alone. */
    size_t ul = len - CAIRN_BLOB_SEAL_SIZE;
    memcpy(cp, orig, ul);
    for (size_t i = 0; i < 100; i++)
        cp[ul + i] = (uint8_t)(i * 37 + 1);
    assert_int_equal(bt_write_file(env, path, cp, ul + 100), 0);
    assert_int_equal(cairn_blob_file_recover(env, path, 1, true, &info), 0);
    assert_false(info.sealed); /* read-only: nothing changed */
    assert_int_equal(info.torn_bytes, 100);
    assert_int_equal(bt_read_file(env, path, &now, &nl), 0);
    assert_int_equal(nl, ul + 100);
    free(now);
    assert_int_equal(cairn_blob_file_recover(env, path, 1, false, &info), 0);
    assert_true(info.sealed);
    assert_int_equal(info.records, DN);
    assert_int_equal(bt_read_file(env, path, &now, &nl), 0);
    assert_int_equal(nl, len);
    assert_memory_equal(now, orig, len); /* the same seal the appender wrote */
    free(now);
    assert_int_equal(cairn_blob_file_recover(env, path, 1, false, &info), 0);
    assert_int_equal(bt_read_file(env, path, &now, &nl), 0);
    assert_memory_equal(now, orig, len);
    free(now);

    /* Header only, and a header cut short: sealed empty. */
    for (int c = 0; c < 3; c++) {
        size_t l = c == 0 ? 32 : c == 1 ? 10 : 0;
        if (c == 1)
            for (size_t i = 0; i < l; i++)
                cp[i] = (uint8_t)(0xA0 + i);
        assert_int_equal(bt_write_file(env, path, c == 1 ? cp : orig, l), 0);
        assert_int_equal(scan(env, 1, false, false, false, NULL, &info), 0);
        assert_int_equal(info.header_torn, c != 0);
        assert_int_equal(cairn_blob_file_recover(env, path, 1, false, &info),
                         0);
        assert_int_equal(scan(env, 1, true, true, false, &s, &info), 0);
        assert_int_equal(s.n, 0);
        assert_int_equal(info.size, 32 + CAIRN_BLOB_SEAL_SIZE);
    }
    assert_int_equal(cairn_blob_file_recover(env, DIR "/000099.blob", 99,
                                             false, &info),
                     CAIRN_ENOTFOUND);
    free(cp);
    free(s.r);
    free(orig);
    cairn_env_destroy(env);
}

/* Records larger than the scan window and than one read. */
static void test_large_records(void **state)
{
    (void)state;
    cairn_env *env = mem_env();
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = env;
    o.dir = DIR;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    bt_rec r[4] = {{.seed = 1, .len = 1536 << 10},
                   {.seed = 2, .len = 100},
                   {.seed = 3, .len = 3 << 20},
                   {.seed = 4, .len = 700 << 10, .kind = 1}};
    for (int i = 0; i < 4; i++)
        assert_int_equal(append_rec(a, &r[i]), 0);
    assert_int_equal(cairn_blob_appender_close(a), 0);
    for (int i = 0; i < 4; i++)
        check_read(env, &r[i]);
    void *out;
    size_t n;
    cairn_blob_loc l = r[2].loc;
    l.stored_len++;
    assert_int_equal(cairn_blob_read(env, DIR, &l, NULL, &out, &n),
                     CAIRN_ECORRUPT);
    l = r[2].loc;
    l.offset += 64;
    assert_int_equal(cairn_blob_read(env, DIR, &l, NULL, &out, &n),
                     CAIRN_ECORRUPT);
    l.offset = r[2].loc.offset;
    l.stored_len = 1u << 30; /* no such record: refused, nothing allocated */
    assert_int_equal(cairn_blob_read(env, DIR, &l, NULL, &out, &n),
                     CAIRN_ECORRUPT);

    /* Record 1's header destroyed: found by a search across windows. */
    char path[256];
    path_of(path, sizeof path, 1);
    uint8_t *f = NULL;
    size_t fl = 0;
    assert_int_equal(bt_read_file(env, path, &f, &fl), 0);
    memset(f + r[1].loc.offset, 0, 64);
    /* and in its bytes a false header that claims 2 MiB of stored bytes */
    uint64_t fake = r[1].loc.offset + 64 + 8;
    uint8_t *fh = f + fake;
    memcpy(fh, "BREC", 4);
    fh[4] = 1;
    fh[5] = fh[6] = fh[7] = 0;
    cairn_put_u64(fh + 8, fake);
    cairn_put_u32(fh + 48, 2 << 20);
    cairn_put_u32(fh + 52, 2 << 20);
    assert_int_equal(bt_write_file(env, path, f, fl), 0);
    seen s = {0};
    cairn_blob_scan_info info;
    assert_int_equal(scan(env, 1, false, false, false, &s, &info),
                     CAIRN_ECORRUPT);
    assert_int_equal(info.bad_offset, r[1].loc.offset);
    assert_int_equal(scan(env, 1, false, false, true, &s, &info), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.r[1].loc.offset, r[2].loc.offset);
    assert_int_equal(info.skipped_bytes, 64 + r[1].loc.stored_len);
    assert_int_equal(scan(env, 1, true, false, true, &s, &info), 0);
    assert_int_equal(s.n, 3);
    free(s.r);
    free(f);
    cairn_env_destroy(env);
}

/* ---- garbage collection ---- */

enum { GN = 160 };

typedef struct gc_world {
    bt_rec recs[GN];
    bool referenced[GN]; /* by content: the first record of a content */
    cairn_blob_loc index[GN]; /* content id -> where the index points */
    int content_of[GN];  /* record -> content id (first record with it) */
    seen moved;          /* (hash, from) pairs reported, in order */
    cairn_blob_loc to[GN * 4];
    size_t nto;
} gc_world;

static int content_by_hash(gc_world *w, const uint8_t *hash)
{
    for (int i = 0; i < GN; i++)
        if (memcmp(w->recs[i].hash, hash, 32) == 0)
            return w->content_of[i];
    return -1;
}

static bool loc_eq(const cairn_blob_loc *a, const cairn_blob_loc *b)
{
    return a->file == b->file && a->offset == b->offset &&
           a->stored_len == b->stored_len;
}

static bool gc_live(void *arg, const uint8_t *hash, const cairn_blob_loc *loc)
{
    gc_world *w = arg;
    int c = content_by_hash(w, hash);
    assert_true(c >= 0);
    return w->referenced[c] && loc_eq(&w->index[c], loc);
}

static int gc_moved(void *arg, const uint8_t *hash, const cairn_blob_loc *from,
                    const cairn_blob_loc *to)
{
    gc_world *w = arg;
    cairn_blob_record r;
    memset(&r, 0, sizeof r);
    int c = content_by_hash(w, hash);
    assert_true(c >= 0);
    memcpy(r.hash, hash, 32);
    r.loc = *from;
    r.raw_len = (uint32_t)w->recs[c].len;
    collect(&w->moved, &r);
    w->to[w->nto++] = *to;
    if (loc_eq(&w->index[c], from))
        w->index[c] = *to;
    return 0;
}

static void test_gc(void **state)
{
    (void)state;
    cairn_env *env = mem_env();
    gc_world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = env;
    o.dir = DIR;
    o.file_size = 16 << 10;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    uint64_t rng = 5;
    for (int i = 0; i < GN; i++) {
        bt_rec *r = &w->recs[i];
        int dup = (i > 10 && tu_rand(&rng, 8) == 0) ? (int)tu_rand(&rng, i)
                                                    : -1;
        if (dup >= 0) { /* same content again: same hash, new location */
            *r = w->recs[dup];
            w->content_of[i] = w->content_of[dup];
        } else {
            r->seed = 9000 + (uint64_t)i;
            r->len = tu_rand(&rng, 3000);
            r->kind = (int)tu_rand(&rng, 2);
            w->content_of[i] = i;
        }
        assert_int_equal(append_rec(a, r), 0);
        w->index[w->content_of[i]] = r->loc; /* the newest copy */
    }
    for (int i = 0; i < GN; i++)
        w->referenced[i] = tu_rand(&rng, 2) == 0;
    assert_int_equal(cairn_blob_appender_rotate(a), 0);
    uint64_t nfiles = w->recs[GN - 1].loc.file;
    assert_true(nfiles >= 4);

    char path[256];
    /* Refusals: the current file, an unsealed file, a missing one. */
    bt_rec extra = {.seed = 1, .len = 10, .kind = 0};
    assert_int_equal(append_rec(a, &extra), 0);
    uint64_t cur = cairn_blob_appender_current(a);
    path_of(path, sizeof path, cur);
    assert_int_equal(cairn_blob_gc_rewrite(a, path, cur, gc_live, gc_moved, w,
                                           NULL),
                     CAIRN_EINVAL);
    tbuf t = {0};
    bt_put_header(&t, 999, 1);
    put_file(env, 999, &t);
    tb_free(&t);
    path_of(path, sizeof path, 999);
    assert_int_equal(cairn_blob_gc_rewrite(a, path, 999, gc_live, gc_moved, w,
                                           NULL),
                     CAIRN_EBUSY);
    path_of(path, sizeof path, 998);
    assert_int_equal(cairn_blob_gc_rewrite(a, path, 998, gc_live, gc_moved, w,
                                           NULL),
                     CAIRN_ENOTFOUND);
    assert_int_equal(w->moved.n, 0);

    /* Each sealed file in turn. */
    for (uint64_t f = 1; f <= nfiles; f++) {
        path_of(path, sizeof path, f);
        uint8_t *before = NULL;
        size_t blen;
        assert_int_equal(bt_read_file(env, path, &before, &blen), 0);
        const bt_rec *want[GN];
        size_t nw = 0, nin = 0;
        for (int i = 0; i < GN; i++) {
            const bt_rec *r = &w->recs[i];
            if (r->loc.file != f)
                continue;
            nin++;
            int c = w->content_of[i];
            if (w->referenced[c] && loc_eq(&w->index[c], &r->loc))
                want[nw++] = r;
        }
        w->moved.n = 0;
        w->nto = 0;
        cairn_blob_gc_stats st;
        assert_int_equal(cairn_blob_gc_rewrite(a, path, f, gc_live, gc_moved,
                                               w, &st),
                         0);
        assert_int_equal(st.records_in, nin);
        assert_int_equal(st.records_kept, nw);
        assert_seen_is(&w->moved, want, nw);
        for (size_t k = 0; k < nw; k++) {
            assert_true(w->to[k].file > nfiles);
            bt_rec moved = *want[k];
            moved.loc = w->to[k];
            check_read(env, &moved);
        }
        /* the source is untouched */
        uint8_t *after = NULL;
        size_t alen;
        assert_int_equal(bt_read_file(env, path, &after, &alen), 0);
        assert_int_equal(alen, blen);
        assert_memory_equal(after, before, blen);
        free(before);
        free(after);
        /* the caller deletes it */
        assert_int_equal(cairn_env_unlink(env, path), 0);
    }
    /* Every referenced content still reads through the index; nothing
     * unreferenced was carried over. */
    for (int i = 0; i < GN; i++) {
        int c = w->content_of[i];
        if (c != i || !w->referenced[c])
            continue;
        bt_rec r = w->recs[i];
        r.loc = w->index[c];
        check_read(env, &r);
    }
    assert_int_equal(cairn_blob_appender_close(a), 0);
    free(w->moved.r);
    free(w);
    cairn_env_destroy(env);
}

/* ---- threads ---- */

enum { TN = 4, TPER = 150 };

typedef struct tctx {
    cairn_blob_appender *a;
    bt_rec recs[TPER];
    int id;
} tctx;

static void *append_thread(void *arg)
{
    tctx *t = arg;
    uint64_t rng = 77 + (uint64_t)t->id;
    for (int i = 0; i < TPER; i++) {
        bt_rec *r = &t->recs[i];
        r->seed = (uint64_t)t->id * 100000 + (uint64_t)i;
        r->len = tu_rand(&rng, 20000);
        r->kind = (int)tu_rand(&rng, 2);
        uint8_t *p = bt_make(r->len, r->seed, r->kind);
        cairn_blob_hash(p, r->len, r->hash);
        if (cairn_blob_append(t->a, p, r->len, r->hash, &r->loc) != 0)
            r->ok = false;
        else
            r->ok = true;
        free(p);
        if (i % 20 == 19 && cairn_blob_appender_sync(t->a) != 0)
            r->ok = false;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    cairn_env *env = mem_env();
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = env;
    o.dir = DIR;
    o.file_size = 128 << 10;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    static tctx t[TN];
    pthread_t th[TN];
    for (int i = 0; i < TN; i++) {
        t[i].a = a;
        t[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, append_thread, &t[i]),
                         0);
    }
    for (int i = 0; i < TN; i++)
        pthread_join(th[i], NULL);
    uint64_t last = cairn_blob_appender_current(a);
    assert_int_equal(cairn_blob_appender_close(a), 0);
    for (int i = 0; i < TN; i++)
        for (int k = 0; k < TPER; k++) {
            assert_true(t[i].recs[k].ok);
            check_read(env, &t[i].recs[k]);
        }
    uint64_t total = 0;
    for (uint64_t f = 1; f <= last; f++) {
        cairn_blob_scan_info info;
        assert_int_equal(scan(env, f, true, true, false, NULL, &info), 0);
        total += info.records;
    }
    assert_int_equal(total, TN * TPER);
    cairn_env_destroy(env);
}

/* ---- throughput on the POSIX env ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_throughput(void **state)
{
    (void)state;
    uint64_t mb = tu_env_u64("CAIRN_BLOB_BENCH_MB",
                             getenv("CAIRN_UNDER_VALGRIND") ? 2 : 32);
    char *dir = tu_mkdtemp("blob");
    assert_non_null(dir);
    const size_t vlen = 64 << 10;
    size_t nv = (size_t)(mb << 20) / vlen;
    uint8_t *vals[2];
    for (int k = 0; k < 2; k++) {
        vals[k] = bt_make(vlen * 8, 42 + (uint64_t)k, k);
        assert_non_null(vals[k]);
    }
    cairn_blob_loc *locs = calloc(nv, sizeof *locs);
    assert_non_null(locs);
    uint64_t file = 1;
    for (int k = 0; k < 2; k++) {
        cairn_blob_appender_options o;
        cairn_blob_appender_options_init(&o);
        o.dir = dir;
        o.first_number = file;
        cairn_blob_appender *a;
        assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
        double t0 = now_s();
        uint64_t stored = 0;
        for (size_t i = 0; i < nv; i++) {
            /* distinct values: a window into a larger buffer, one byte
             * changed so no two are alike */
            uint8_t *v = vals[k] + (i % 7) * vlen;
            v[i % vlen] ^= (uint8_t)(i + 1);
            assert_int_equal(cairn_blob_append(a, v, vlen, NULL, &locs[i]),
                             0);
            stored += locs[i].stored_len;
        }
        double ta = now_s();
        assert_int_equal(cairn_blob_appender_sync(a), 0);
        double t1 = now_s();
        file = cairn_blob_appender_current(a);
        assert_int_equal(cairn_blob_appender_close(a), 0);
        char path[512];
        assert_int_equal(cairn_blob_file_name(path, sizeof path, dir, file), 0);
        cairn_blob_reader *r;
        assert_int_equal(cairn_blob_reader_open(NULL, path, file, &r), 0);
        double t2 = now_s();
        for (size_t i = 0; i < nv; i++) {
            void *out;
            size_t n;
            assert_int_equal(cairn_blob_reader_read(r, locs[i].offset,
                                                    locs[i].stored_len, NULL,
                                                    &out, &n),
                             0);
            assert_int_equal(n, vlen);
            free(out);
        }
        double t3 = now_s();
        cairn_blob_reader_close(r);
        double mib = (double)(nv * vlen) / (1 << 20);
        printf("blob %s 64 KiB values, %.0f MiB: append %.0f MB/s "
               "(with the final fdatasync %.0f MB/s), read %.0f MB/s "
               "(stored %.1f%% of raw)\n",
               k ? "text" : "random", mib, mib / (ta - t0), mib / (t1 - t0),
               mib / (t3 - t2), 100.0 * (double)stored / (double)(nv * vlen));
        file++;
    }
    free(locs);
    free(vals[0]);
    free(vals[1]);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_and_names),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_hand_built),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_mid_garbage_and_recover),
        cmocka_unit_test(test_large_records),
        cmocka_unit_test(test_gc),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
