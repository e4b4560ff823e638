/*
 * test_blob_cdc.c — the chunker (src/blob/cdc.c) and the reference record
 * (src/blob/blob_ref.c):
 *   - parameters: defaults valid, every bound enforced;
 *   - every chunk within [min, max] (the last may be shorter), chunks tile
 *     the value, cuts are deterministic and do not depend on how much of
 *     the value past max_size is passed; constant data cuts at max;
 *   - a 64 MiB pseudo-random value edited in 10 places (bytes changed,
 *     inserted, deleted) shares at least 95% of its bytes' chunks with the
 *     original (printed, with the chunking speed);
 *   - a chunked value stored through the appender with deduplication by
 *     hash: the edited version adds only its changed chunks, and both read
 *     back whole through their decoded references;
 *   - references: round trips (single and chunked, random fields), the
 *     format page's bytes, every truncation and trailing byte refused,
 *     every bit flip refused or decoded to a valid reference, invalid
 *     references refused by the encoder, damaged counts refused without a
 *     large allocation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <time.h>

#include "blob/blob_ref.h"
#include "blob/cdc.h"
#include "blob_test_util.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- chunker ---- */

static void test_params(void **state)
{
    (void)state;
    cairn_cdc_params p;
    cairn_cdc_params_default(&p);
    assert_int_equal(p.min_size, 16 << 10);
    assert_int_equal(p.avg_size, 64 << 10);
    assert_int_equal(p.max_size, 256 << 10);
    assert_int_equal(cairn_cdc_params_check(&p), 0);
    cairn_cdc *c = malloc(sizeof *c);
    assert_non_null(c);
    assert_int_equal(cairn_cdc_init(c, NULL), 0);
    assert_int_equal(c->p.avg_size, p.avg_size);
    static const cairn_cdc_params bad[] = {
        {16 << 10, 3 << 15, 256 << 10},   /* avg not a power of two */
        {32, 256, 1024},                  /* min below 64 */
        {1024, 512, 4096},                /* min above avg */
        {256, 1024, 512},                 /* max below avg */
        {64, 128, 1024},                  /* avg below 2^8 */
        {64, 1u << 29, 1u << 30},         /* avg above 2^28 */
        {64, 1024, (1u << 30) + 1},       /* max above 2^30 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cairn_cdc_params_check(&bad[i]), CAIRN_EINVAL);
        assert_int_equal(cairn_cdc_init(c, &bad[i]), CAIRN_EINVAL);
    }
    static const cairn_cdc_params good[] = {
        {64, 256, 256}, {256, 256, 1024}, {64, 1u << 28, 1u << 30}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_int_equal(cairn_cdc_init(c, &good[i]), 0);
    assert_int_equal(cairn_cdc_params_check(NULL), CAIRN_EINVAL);
    free(c);
}

typedef struct cuts {
    size_t *len;
    size_t n, cap;
} cuts;

static void cut_all(const cairn_cdc *c, const uint8_t *d, size_t len,
                    cuts *out)
{
    out->n = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t k = cairn_cdc_next(c, d + pos, len - pos);
        assert_true(k >= 1 && k <= len - pos);
        if (out->n == out->cap) {
            out->cap = out->cap ? 2 * out->cap : 1024;
            out->len = realloc(out->len, out->cap * sizeof *out->len);
            assert_non_null(out->len);
        }
        out->len[out->n++] = k;
        pos += k;
    }
}

static void check_bounds(const cairn_cdc *c, const cuts *k, size_t total)
{
    size_t sum = 0;
    for (size_t i = 0; i < k->n; i++) {
        assert_true(k->len[i] <= c->p.max_size);
        if (i + 1 < k->n)
            assert_true(k->len[i] >= c->p.min_size);
        sum += k->len[i];
    }
    assert_int_equal(sum, total);
}

static void test_bounds_and_determinism(void **state)
{
    (void)state;
    static const cairn_cdc_params ps[] = {
        {16 << 10, 64 << 10, 256 << 10},
        {64, 256, 1024},
        {2048, 8192, 8192}, /* max = avg: never the easy mask */
    };
    const size_t len = 8 << 20;
    uint8_t *d = bt_make(len, 1, 0);
    cairn_cdc *c = malloc(sizeof *c);
    assert_non_null(d);
    assert_non_null(c);
    cuts a = {0}, b = {0};
    for (size_t pi = 0; pi < sizeof ps / sizeof ps[0]; pi++) {
        assert_int_equal(cairn_cdc_init(c, &ps[pi]), 0);
        cut_all(c, d, len, &a);
        check_bounds(c, &a, len);
        double mean = (double)len / (double)a.n;
        printf("cdc %u/%u/%u: %zu chunks, mean %.0f bytes\n",
               ps[pi].min_size, ps[pi].avg_size, ps[pi].max_size, a.n, mean);
        assert_true(mean > ps[pi].avg_size / 2.0 &&
                    mean < ps[pi].avg_size * 2.0);
        /* again: the same */
        cut_all(c, d, len, &b);
        assert_int_equal(a.n, b.n);
        assert_memory_equal(a.len, b.len, a.n * sizeof *a.len);
        /* passing only max_size (plus a random bit) past each start gives
         * the same cuts */
        uint64_t rng = 5;
        size_t pos = 0;
        for (size_t i = 0; i < a.n; i++) {
            size_t give = c->p.max_size + tu_rand(&rng, 3);
            if (give > len - pos)
                give = len - pos;
            assert_int_equal(cairn_cdc_next(c, d + pos, give), a.len[i]);
            pos += a.len[i];
        }
        /* short values: one chunk */
        assert_int_equal(cairn_cdc_next(c, d, 0), 0);
        assert_int_equal(cairn_cdc_next(c, d, 1), 1);
        assert_int_equal(cairn_cdc_next(c, d, c->p.min_size),
                         c->p.min_size);
    }
    /* Constant bytes never match the mask: cut at max. */
    assert_int_equal(cairn_cdc_init(c, NULL), 0);
    memset(d, 0, len);
    cut_all(c, d, len, &a);
    check_bounds(c, &a, len);
    for (size_t i = 0; i + 1 < a.n; i++)
        assert_int_equal(a.len[i], c->p.max_size);
    free(a.len);
    free(b.len);
    free(c);
    free(d);
}

/* The edited copy of v: n edits at sorted random places (changes of 1..8
 * bytes, inserts and deletes of 1..100 bytes). */
static uint8_t *edit(const uint8_t *v, size_t len, int n, uint64_t seed,
                     size_t *out_len)
{
    uint64_t rng = seed;
    size_t *at = malloc((size_t)n * sizeof *at);
    assert_non_null(at);
    for (int i = 0; i < n; i++)
        at[i] = 1000 + tu_rand(&rng, len - 2000);
    for (int i = 1; i < n; i++) /* sort (insertion) */
        for (int j = i; j > 0 && at[j - 1] > at[j]; j--) {
            size_t t = at[j];
            at[j] = at[j - 1];
            at[j - 1] = t;
        }
    tbuf t = {0};
    size_t pos = 0;
    for (int i = 0; i < n; i++) {
        if (at[i] < pos)
            continue;
        tb_put(&t, v + pos, at[i] - pos);
        pos = at[i];
        uint8_t junk[100];
        tu_fill(junk, sizeof junk, seed + (uint64_t)i);
        switch (i % 5) {
        case 3: /* insert */
            tb_put(&t, junk, 1 + tu_rand(&rng, 100));
            break;
        case 4: /* delete */
            pos += 1 + tu_rand(&rng, 100);
            break;
        default: { /* change a few bytes in place */
            size_t k = 1 + tu_rand(&rng, 8);
            for (size_t j = 0; j < k; j++)
                junk[j] = (uint8_t)(v[pos + j] ^ (1 + j));
            tb_put(&t, junk, k);
            pos += k;
        }
        }
    }
    tb_put(&t, v + pos, len - pos);
    free(at);
    *out_len = t.len;
    return t.p;
}

typedef struct hashed {
    uint8_t (*h)[32];
    size_t n;
} hashed;

static int cmp_hash(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

static void hash_chunks(const uint8_t *d, const cuts *k, hashed *out)
{
    out->h = malloc(k->n * 32);
    assert_non_null(out->h);
    out->n = k->n;
    size_t pos = 0;
    for (size_t i = 0; i < k->n; i++) {
        assert_int_equal(cairn_blob_hash(d + pos, k->len[i], out->h[i]), 0);
        pos += k->len[i];
    }
}

/* Bytes of v2 in chunks that v1 has too. */
static size_t shared_bytes(const hashed *h1, const hashed *h2,
                           const cuts *k2)
{
    uint8_t(*sorted)[32] = malloc(h1->n * 32);
    assert_non_null(sorted);
    memcpy(sorted, h1->h, h1->n * 32);
    qsort(sorted, h1->n, 32, cmp_hash);
    size_t shared = 0;
    for (size_t i = 0; i < h2->n; i++)
        if (bsearch(h2->h[i], sorted, h1->n, 32, cmp_hash))
            shared += k2->len[i];
    free(sorted);
    return shared;
}

static void sharing(const cairn_cdc_params *p, size_t len, int nedits,
                    double want, bool timed)
{
    cairn_cdc *c = malloc(sizeof *c);
    assert_non_null(c);
    assert_int_equal(cairn_cdc_init(c, p), 0);
    uint8_t *v1 = bt_make(len, 64, 0);
    assert_non_null(v1);
    size_t len2;
    uint8_t *v2 = edit(v1, len, nedits, 99, &len2);
    cuts k1 = {0}, k2 = {0};
    double t0 = now_s();
    cut_all(c, v1, len, &k1);
    double t1 = now_s();
    cut_all(c, v2, len2, &k2);
    check_bounds(c, &k1, len);
    check_bounds(c, &k2, len2);
    hashed h1, h2;
    hash_chunks(v1, &k1, &h1);
    hash_chunks(v2, &k2, &h2);
    size_t sh = shared_bytes(&h1, &h2, &k2);
    double frac = (double)sh / (double)len2;
    printf("cdc %u/%u/%u, %zu MiB, %d edits: %zu -> %zu chunks, %.2f%% of "
           "the edited value's bytes in shared chunks, %zu KiB new",
           p->min_size, p->avg_size, p->max_size, len >> 20, nedits, k1.n,
           k2.n, 100.0 * frac, (len2 - sh) >> 10);
    if (timed)
        printf(", chunking %.0f MB/s", (double)len / (1 << 20) / (t1 - t0));
    printf("\n");
    assert_true(frac >= want);
    free(h1.h);
    free(h2.h);
    free(k1.len);
    free(k2.len);
    free(v1);
    free(v2);
    free(c);
}

static void test_sharing(void **state)
{
    (void)state;
    cairn_cdc_params p;
    cairn_cdc_params_default(&p);
    sharing(&p, (size_t)64 << 20, 10, 0.95, true);
    sharing(&p, (size_t)64 << 20, 30, 0.90, false);
    cairn_cdc_params small = {2048, 8192, 32768};
    sharing(&small, (size_t)8 << 20, 10, 0.97, false);
}

/* ---- a chunked value through the appender, deduplicated ---- */

typedef struct dedup {
    uint8_t (*h)[32];
    cairn_blob_loc *loc;
    size_t n, cap;
    uint64_t stored_new;
} dedup;

static const cairn_blob_loc *dd_find(const dedup *d, const uint8_t *h)
{
    for (size_t i = 0; i < d->n; i++)
        if (memcmp(d->h[i], h, 32) == 0)
            return &d->loc[i];
    return NULL;
}

/* Store v as a chunked value; *enc gets its encoded reference. */
static void store(cairn_blob_appender *a, const cairn_cdc *c, dedup *d,
                  const uint8_t *v, size_t len, uint8_t **enc,
                  size_t *enc_len)
{
    cairn_blob_ref r = {.type = CAIRN_BLOB_REF_CHUNKED,
                        .raw_len = len,
                        .chunker = CAIRN_CDC_CHUNKER_GEAR,
                        .params = c->p};
    size_t cap = 0;
    size_t pos = 0;
    while (pos < len) {
        size_t k = cairn_cdc_next(c, v + pos, len - pos);
        if (r.nchunks == cap) {
            cap = cap ? 2 * cap : 64;
            r.chunks = realloc(r.chunks, cap * sizeof *r.chunks);
            assert_non_null(r.chunks);
        }
        cairn_blob_chunk *ch = &r.chunks[r.nchunks++];
        ch->raw_len = (uint32_t)k;
        assert_int_equal(cairn_blob_hash(v + pos, k, ch->hash), 0);
        const cairn_blob_loc *l = dd_find(d, ch->hash);
        if (l) {
            ch->loc = *l;
        } else {
            assert_int_equal(cairn_blob_append(a, v + pos, k, ch->hash,
                                               &ch->loc),
                             0);
            if (d->n == d->cap) {
                d->cap = d->cap ? 2 * d->cap : 256;
                d->h = realloc(d->h, d->cap * 32);
                d->loc = realloc(d->loc, d->cap * sizeof *d->loc);
                assert_true(d->h && d->loc);
            }
            memcpy(d->h[d->n], ch->hash, 32);
            d->loc[d->n++] = ch->loc;
            d->stored_new += 64 + ch->loc.stored_len;
        }
        pos += k;
    }
    size_t need = cairn_blob_ref_size(&r);
    assert_true(need > 0);
    *enc = malloc(need);
    assert_int_equal(cairn_blob_ref_encode(&r, *enc, need, enc_len), 0);
    assert_int_equal(*enc_len, need);
    free(r.chunks);
}

static void load_and_check(cairn_env *env, const uint8_t *enc, size_t enc_len,
                           const uint8_t *want, size_t len)
{
    cairn_blob_ref r;
    assert_int_equal(cairn_blob_ref_decode(enc, enc_len, &r), 0);
    assert_int_equal(r.type, CAIRN_BLOB_REF_CHUNKED);
    assert_int_equal(r.raw_len, len);
    size_t pos = 0;
    for (size_t i = 0; i < r.nchunks; i++) {
        void *out;
        size_t n;
        assert_int_equal(cairn_blob_read(env, "/b", &r.chunks[i].loc,
                                         r.chunks[i].hash, &out, &n),
                         0);
        assert_int_equal(n, r.chunks[i].raw_len);
        assert_memory_equal(out, want + pos, n);
        pos += n;
        free(out);
    }
    assert_int_equal(pos, len);
    cairn_blob_ref_clear(&r);
}

static void test_chunked_value_store(void **state)
{
    (void)state;
    cairn_env *env = cairn_env_mem_new();
    assert_int_equal(cairn_env_mkdir(env, "/b"), 0);
    cairn_blob_appender_options o;
    cairn_blob_appender_options_init(&o);
    o.env = env;
    o.dir = "/b";
    o.file_size = 4 << 20;
    cairn_blob_appender *a;
    assert_int_equal(cairn_blob_appender_open(&o, &a), 0);
    cairn_cdc *c = malloc(sizeof *c);
    assert_int_equal(cairn_cdc_init(c, NULL), 0);
    dedup d = {0};
    const size_t len = 16 << 20;
    /* half random, half text: both codecs among the chunks */
    uint8_t *v1 = malloc(len);
    assert_non_null(v1);
    bt_fill(v1, len / 2, 1, 0);
    bt_fill(v1 + len / 2, len / 2, 2, 1);
    size_t len2;
    uint8_t *v2 = edit(v1, len, 6, 17, &len2);

    uint8_t *e1, *e2;
    size_t el1, el2;
    store(a, c, &d, v1, len, &e1, &el1);
    uint64_t first = d.stored_new;
    store(a, c, &d, v2, len2, &e2, &el2);
    uint64_t second = d.stored_new - first;
    /* and the same value again costs nothing */
    uint8_t *e3;
    size_t el3;
    store(a, c, &d, v1, len, &e3, &el3);
    assert_int_equal(d.stored_new, first + second);
    assert_int_equal(el3, el1);
    assert_memory_equal(e3, e1, el1);
    printf("16 MiB value: %llu KiB stored, reference %zu bytes; edited in 6 "
           "places: %llu KiB more\n",
           (unsigned long long)(first >> 10), el1,
           (unsigned long long)(second >> 10));
    assert_true(second < first / 10);
    assert_int_equal(cairn_blob_appender_close(a), 0);
    load_and_check(env, e1, el1, v1, len);
    load_and_check(env, e2, el2, v2, len2);
    free(e1);
    free(e2);
    free(e3);
    free(d.h);
    free(d.loc);
    free(v1);
    free(v2);
    free(c);
    cairn_env_destroy(env);
}

/* ---- references ---- */

static void rand_loc(uint64_t *rng, cairn_blob_loc *l)
{
    l->file = 1 + tu_rand(rng, tu_rand(rng, 2) ? 100 : (1ull << 40));
    l->offset = 32 + tu_rand(rng, tu_rand(rng, 2) ? 1000 : (1ull << 40));
    l->stored_len = (uint32_t)tu_rand(rng, (1u << 30) + 1);
}

static void rand_ref(uint64_t *rng, cairn_blob_ref *r, bool chunked)
{
    memset(r, 0, sizeof *r);
    if (!chunked) {
        r->type = CAIRN_BLOB_REF_SINGLE;
        r->nchunks = 1;
        r->chunks = calloc(1, sizeof *r->chunks);
        r->chunks[0].raw_len = (uint32_t)tu_rand(rng, (1u << 30) + 1);
        r->raw_len = r->chunks[0].raw_len;
        tu_fill(r->chunks[0].hash, 32, tu_splitmix(rng));
        rand_loc(rng, &r->chunks[0].loc);
        return;
    }
    r->type = CAIRN_BLOB_REF_CHUNKED;
    r->chunker = (uint8_t)(1 + tu_rand(rng, 255));
    r->params.avg_size = 1u << (1 + tu_rand(rng, 31));
    r->params.min_size = 1 + (uint32_t)tu_rand(rng, r->params.avg_size);
    r->params.max_size =
        r->params.avg_size +
        (uint32_t)tu_rand(rng, UINT32_MAX - r->params.avg_size);
    r->nchunks = 1 + tu_rand(rng, 200);
    r->chunks = calloc(r->nchunks, sizeof *r->chunks);
    for (size_t i = 0; i < r->nchunks; i++) {
        cairn_blob_chunk *c = &r->chunks[i];
        c->raw_len = 1 + (uint32_t)tu_rand(rng, 1u << 30);
        r->raw_len += c->raw_len;
        tu_fill(c->hash, 32, tu_splitmix(rng));
        rand_loc(rng, &c->loc);
    }
}

static void assert_ref_equal(const cairn_blob_ref *a, const cairn_blob_ref *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->raw_len, b->raw_len);
    assert_int_equal(a->nchunks, b->nchunks);
    if (a->type == CAIRN_BLOB_REF_CHUNKED) {
        assert_int_equal(a->chunker, b->chunker);
        assert_int_equal(a->params.min_size, b->params.min_size);
        assert_int_equal(a->params.avg_size, b->params.avg_size);
        assert_int_equal(a->params.max_size, b->params.max_size);
    }
    for (size_t i = 0; i < a->nchunks; i++) {
        const cairn_blob_chunk *x = &a->chunks[i], *y = &b->chunks[i];
        assert_memory_equal(x->hash, y->hash, 32);
        assert_int_equal(x->raw_len, y->raw_len);
        assert_int_equal(x->loc.file, y->loc.file);
        assert_int_equal(x->loc.offset, y->loc.offset);
        assert_int_equal(x->loc.stored_len, y->loc.stored_len);
    }
}

static void test_ref_round_trip(void **state)
{
    (void)state;
    uint64_t rng = 8;
    for (int i = 0; i < 2000; i++) {
        cairn_blob_ref r, d;
        rand_ref(&rng, &r, i % 2 == 1);
        size_t n = cairn_blob_ref_size(&r);
        assert_true(n > 0);
        uint8_t *buf = malloc(n);
        size_t got = 0;
        assert_int_equal(cairn_blob_ref_encode(&r, buf, n - 1, &got),
                         CAIRN_EINVAL);
        assert_int_equal(cairn_blob_ref_encode(&r, buf, n, &got), 0);
        assert_int_equal(got, n);
        assert_int_equal(cairn_blob_ref_decode(buf, n, &d), 0);
        assert_ref_equal(&r, &d);
        cairn_blob_ref_clear(&d);
        free(buf);
        free(r.chunks);
    }
}

static void test_ref_bytes(void **state)
{
    (void)state;
    /* A single reference, byte for byte as the format page lays it out. */
    cairn_blob_chunk ch = {.raw_len = 300,
                           .loc = {.file = 12, .offset = 200, .stored_len = 5}};
    for (int i = 0; i < 32; i++)
        ch.hash[i] = (uint8_t)i;
    cairn_blob_ref r = {.type = 1, .raw_len = 300, .nchunks = 1,
                        .chunks = &ch};
    uint8_t want[1 + 2 + 32 + 1 + 2 + 1];
    want[0] = 1;
    want[1] = 0xAC; /* 300 = 0b10_0101100 */
    want[2] = 0x02;
    memcpy(want + 3, ch.hash, 32);
    want[35] = 12;
    want[36] = 0xC8; /* 200 */
    want[37] = 0x01;
    want[38] = 5;
    uint8_t buf[64];
    size_t n;
    assert_int_equal(cairn_blob_ref_encode(&r, buf, sizeof buf, &n), 0);
    assert_int_equal(n, sizeof want);
    assert_memory_equal(buf, want, n);

    /* A chunked one with two chunks. */
    cairn_blob_chunk cs[2] = {ch, ch};
    cs[1].raw_len = 7;
    cs[1].hash[0] = 0xFF;
    cairn_blob_ref rc = {.type = 2, .raw_len = 307, .chunker = 1,
                         .params = {64, 256, 1024}, .nchunks = 2,
                         .chunks = cs};
    tbuf t = {0};
    uint8_t hdr[] = {2, 0xB3, 0x02, 1, 64, 0x80, 0x02, 0x80, 0x08, 2};
    tb_put(&t, hdr, sizeof hdr);
    for (int i = 0; i < 2; i++) {
        tb_put(&t, cs[i].hash, 32);
        uint8_t rest[] = {0xAC, 0x02, 12, 0xC8, 0x01, 5};
        if (i == 1) {
            rest[0] = 7;
            tb_put(&t, rest, 1);
            tb_put(&t, rest + 2, 4);
        } else {
            tb_put(&t, rest, sizeof rest);
        }
    }
    uint8_t big[256];
    assert_int_equal(cairn_blob_ref_encode(&rc, big, sizeof big, &n), 0);
    assert_int_equal(n, t.len);
    assert_memory_equal(big, t.p, n);
    tb_free(&t);
}

static void test_ref_damage(void **state)
{
    (void)state;
    uint64_t rng = 21;
    for (int round = 0; round < 6; round++) {
        cairn_blob_ref r, d;
        rand_ref(&rng, &r, round % 2 == 1);
        if (r.type == CAIRN_BLOB_REF_CHUNKED && r.nchunks > 4) {
            r.nchunks = 4; /* keep the sweep short */
            r.raw_len = 0;
            for (size_t i = 0; i < 4; i++)
                r.raw_len += r.chunks[i].raw_len;
        }
        size_t n = cairn_blob_ref_size(&r);
        uint8_t *buf = malloc(n + 1);
        assert_int_equal(cairn_blob_ref_encode(&r, buf, n, NULL), 0);
        /* every truncation, and a trailing byte */
        for (size_t l = 0; l < n; l++) {
            assert_int_equal(cairn_blob_ref_decode(buf, l, &d),
                             CAIRN_ECORRUPT);
            assert_null(d.chunks);
        }
        buf[n] = 0;
        assert_int_equal(cairn_blob_ref_decode(buf, n + 1, &d),
                         CAIRN_ECORRUPT);
        /* every bit flip: refused, or a valid reference that encodes and
         * decodes back to itself */
        for (size_t bit = 0; bit < n * 8; bit++) {
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            int rc = cairn_blob_ref_decode(buf, n, &d);
            if (rc == 0) {
                size_t m = cairn_blob_ref_size(&d);
                assert_true(m > 0);
                uint8_t *again = malloc(m);
                cairn_blob_ref e;
                assert_int_equal(cairn_blob_ref_encode(&d, again, m, NULL), 0);
                assert_int_equal(cairn_blob_ref_decode(again, m, &e), 0);
                assert_ref_equal(&d, &e);
                cairn_blob_ref_clear(&e);
                free(again);
            } else {
                assert_int_equal(rc, CAIRN_ECORRUPT);
            }
            cairn_blob_ref_clear(&d);
            buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
        free(buf);
        free(r.chunks);
    }
    /* A damaged count asks for no large allocation. */
    uint8_t huge[] = {2, 10, 1, 64, 0x80, 0x02, 0x80, 0x08,
                      0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    cairn_blob_ref d;
    assert_int_equal(cairn_blob_ref_decode(huge, sizeof huge, &d),
                     CAIRN_ECORRUPT);
    static const uint8_t types[] = {0, 3, 255};
    for (size_t i = 0; i < sizeof types; i++)
        assert_int_equal(cairn_blob_ref_decode(&types[i], 1, &d),
                         CAIRN_ECORRUPT);
    assert_int_equal(cairn_blob_ref_decode(NULL, 0, &d), CAIRN_ECORRUPT);
    assert_int_equal(cairn_blob_ref_decode(huge, 1, NULL), CAIRN_EINVAL);
}

static void test_ref_invalid(void **state)
{
    (void)state;
    cairn_blob_chunk ch[2];
    memset(ch, 0, sizeof ch);
    for (int i = 0; i < 2; i++) {
        ch[i].raw_len = 10;
        ch[i].loc = (cairn_blob_loc){1, 32, 10};
    }
    uint8_t buf[256];
    cairn_blob_ref ok1 = {.type = 1, .raw_len = 10, .nchunks = 1,
                          .chunks = ch};
    cairn_blob_ref ok2 = {.type = 2, .raw_len = 20, .chunker = 1,
                          .params = {64, 256, 1024}, .nchunks = 2,
                          .chunks = ch};
    assert_int_equal(cairn_blob_ref_encode(&ok1, buf, sizeof buf, NULL), 0);
    assert_int_equal(cairn_blob_ref_encode(&ok2, buf, sizeof buf, NULL), 0);
    cairn_blob_ref bad[11];
    for (int i = 0; i < 11; i++)
        bad[i] = i < 4 ? ok1 : ok2;
    bad[0].nchunks = 2;             /* single with two chunks */
    bad[1].raw_len = 11;            /* single: lengths differ */
    bad[2].chunks = NULL;
    bad[3].type = 3;
    bad[4].raw_len = 21;            /* sum differs */
    bad[5].chunker = 0;
    bad[6].params.avg_size = 300;   /* not a power of two */
    bad[7].params.min_size = 512;   /* above avg */
    bad[8].params.max_size = 128;   /* below avg */
    bad[9].nchunks = 0;
    bad[10].params.min_size = 0;
    for (int i = 0; i < 11; i++) {
        assert_int_equal(cairn_blob_ref_size(&bad[i]), 0);
        assert_int_equal(cairn_blob_ref_encode(&bad[i], buf, sizeof buf, NULL),
                         CAIRN_EINVAL);
    }
    /* bad chunks */
    static const cairn_blob_chunk tmpl = {.raw_len = 10,
                                          .loc = {1, 32, 10}};
    for (int k = 0; k < 5; k++) {
        cairn_blob_chunk c2[2] = {tmpl, tmpl};
        cairn_blob_ref r = ok2;
        r.chunks = c2;
        switch (k) {
        case 0: c2[1].raw_len = 0; r.raw_len = 10; break;
        case 1: c2[1].loc.file = 0; break;
        case 2: c2[1].loc.offset = 31; break;
        case 3: c2[1].loc.stored_len = (1u << 30) + 1; break;
        case 4: c2[1].raw_len = (1u << 30) + 1; r.raw_len = 10 + c2[1].raw_len;
            break;
        }
        assert_int_equal(cairn_blob_ref_encode(&r, buf, sizeof buf, NULL),
                         CAIRN_EINVAL);
    }
    assert_int_equal(cairn_blob_ref_encode(NULL, buf, sizeof buf, NULL),
                     CAIRN_EINVAL);
    assert_int_equal(cairn_blob_ref_encode(&ok1, NULL, 100, NULL),
                     CAIRN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_bounds_and_determinism),
        cmocka_unit_test(test_sharing),
        cmocka_unit_test(test_chunked_value_store),
        cmocka_unit_test(test_ref_round_trip),
        cmocka_unit_test(test_ref_bytes),
        cmocka_unit_test(test_ref_damage),
        cmocka_unit_test(test_ref_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
