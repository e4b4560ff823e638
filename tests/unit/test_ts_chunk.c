/*
 * test_ts_chunk.c — the time-series chunk codec (src/ts/chunk.c) against
 * the points it was given: every pattern of timestamps and values round
 * trips exactly (values bit for bit) in every encoding, sealed or not;
 * bad appends are refused and change nothing; every truncation of a chunk
 * is CAIRN_ECORRUPT; no bit flip crashes the decoder or yields points out
 * of order; the compressed sizes of regular series are what the format
 * promises.
 * Locking: single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "ts/chunk.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double bitsd(uint64_t u)
{
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static uint64_t dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    return u;
}

enum {
    P_COUNTER,   /* regular 10 s, integer counter with varying steps */
    P_JITTER,    /* 1 s +- 1 ms jitter, integer gauge */
    P_CONST,     /* regular, constant value */
    P_WALK,      /* random-walk doubles */
    P_SPECIAL,   /* NaN (several payloads), infinities, -0.0, denormals */
    P_BIGINT,    /* integers up to +-2^53 with huge jumps */
    P_EXTREME_TS, /* timestamps from INT64_MIN to INT64_MAX */
    P_RANDOM_BITS, /* any 64-bit pattern as a value, random gaps */
    P_MIXED,     /* integers, then a fraction (the switch to XOR) */
    P__COUNT
};

static size_t make_points(int pattern, size_t n, cairn_ts_point *p)
{
    int64_t ts = 1795504339613LL;
    double v = 0;
    for (size_t i = 0; i < n; i++) {
        switch (pattern) {
        case P_COUNTER:
            ts += 10000;
            v += (double)(rnd() % 1000);
            break;
        case P_JITTER:
            ts += 1000 + (int64_t)(rnd() % 3) - 1;
            v = (double)(5000 + rnd() % 50);
            break;
        case P_CONST:
            ts += 1000;
            v = 42;
            break;
        case P_WALK:
            ts += 1000;
            v += ((double)(rnd() % 2001) - 1000.0) / 997.0;
            break;
        case P_SPECIAL: {
            static const uint64_t specials[] = {
                0x7ff8000000000000ULL, 0x7ff0000000000001ULL,
                0xfff8000000000abcULL, 0x7ff0000000000000ULL,
                0xfff0000000000000ULL, 0x8000000000000000ULL,
                0x0000000000000001ULL, 0x000fffffffffffffULL,
                0x0000000000000000ULL, 0x3ff0000000000000ULL};
            ts += 1 + (int64_t)(rnd() % 5);
            v = bitsd(specials[rnd() % 10]);
            break;
        }
        case P_BIGINT: {
            ts += 1000;
            int64_t lim = 9007199254740992LL;
            int64_t x = (int64_t)(rnd() % (uint64_t)(2 * lim + 1)) - lim;
            v = (double)x;
            break;
        }
        case P_EXTREME_TS:
            if (i == 0)
                ts = INT64_MIN;
            else if (i + 1 == n)
                ts = INT64_MAX;
            else
                ts += (int64_t)(rnd() % 1000000000000ULL) + 1;
            v = (double)i;
            break;
        case P_RANDOM_BITS:
            ts += 1 + (int64_t)(rnd() % 100000);
            v = bitsd(rnd());
            break;
        case P_MIXED:
            ts += 500;
            v = i == n / 2 ? 0.5 : (double)i;
            break;
        }
        p[i].ts = ts;
        p[i].v = v;
    }
    return n;
}

static void check_round_trip(const cairn_ts_point *p, size_t n,
                             bool compressed, bool seal)
{
    cairn_ts_enc e;
    cairn_ts_enc_init(&e, compressed);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cairn_ts_enc_add(&e, p[i].ts, p[i].v), 0);
    uint8_t *b = NULL;
    size_t len = 0;
    assert_int_equal(cairn_ts_enc_bytes(&e, seal, 3, &b, &len), 0);
    if (!seal)
        assert_int_equal(len, cairn_ts_enc_size(&e));
    uint32_t cnt = 0;
    int64_t first = 0, last = 0;
    assert_int_equal(cairn_ts_chunk_info(b, len, NULL, &cnt, &first, &last),
                     0);
    assert_int_equal(cnt, n);
    assert_true(first == p[0].ts && last == p[n - 1].ts);
    cairn_ts_point *d = NULL;
    size_t dn = 0;
    assert_int_equal(cairn_ts_chunk_decode(b, len, &d, &dn), 0);
    assert_int_equal(dn, n);
    for (size_t i = 0; i < n; i++) {
        assert_true(d[i].ts == p[i].ts);
        assert_true(dbits(d[i].v) == dbits(p[i].v));
    }
    /* An encoder rebuilt from the chunk appends where it left off. */
    cairn_ts_enc e2;
    assert_int_equal(cairn_ts_enc_from_chunk(&e2, b, len, compressed), 0);
    assert_int_equal(e2.count, n);
    assert_int_equal(cairn_ts_enc_add(&e2, p[n - 1].ts, 1.0), CAIRN_EINVAL);
    if (p[n - 1].ts < INT64_MAX)
        assert_int_equal(cairn_ts_enc_add(&e2, p[n - 1].ts + 1, 1.0), 0);
    cairn_ts_enc_free(&e2);
    free(d);
    free(b);
    cairn_ts_enc_free(&e);
}

static void test_round_trip(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 2, 3, 10, 120, 1000, 5000};
    cairn_ts_point *p = malloc(5000 * sizeof *p);
    assert_non_null(p);
    for (int pat = 0; pat < P__COUNT; pat++)
        for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
            size_t n = make_points(pat, sizes[s], p);
            for (int c = 0; c < 2; c++)
                for (int seal = 0; seal < 2; seal++)
                    check_round_trip(p, n, c, seal);
        }
    free(p);
}

/* Integral values use encoding 3; the first fraction re-encodes the chunk
 * with encoding 2, and every point is still there. */
static void test_int_then_xor(void **state)
{
    (void)state;
    cairn_ts_enc e;
    cairn_ts_enc_init(&e, true);
    for (int i = 0; i < 100; i++)
        assert_int_equal(cairn_ts_enc_add(&e, 1000 * i, (double)(i * 3)), 0);
    assert_int_equal(e.encoding, CAIRN_TS_ENC_INT);
    assert_int_equal(cairn_ts_enc_add(&e, 100000, -0.0), 0);
    assert_int_equal(e.encoding, CAIRN_TS_ENC_XOR);
    assert_int_equal(cairn_ts_enc_add(&e, 100001, 7), 0);
    uint8_t *b;
    size_t len;
    assert_int_equal(cairn_ts_enc_bytes(&e, false, 0, &b, &len), 0);
    assert_int_equal(b[0], CAIRN_TS_ENC_XOR);
    cairn_ts_point *d;
    size_t n;
    assert_int_equal(cairn_ts_chunk_decode(b, len, &d, &n), 0);
    assert_int_equal(n, 102);
    for (int i = 0; i < 100; i++)
        assert_true(d[i].ts == 1000 * i && d[i].v == (double)(i * 3));
    assert_true(d[100].v == 0 && signbit(d[100].v));
    assert_true(d[101].ts == 100001 && d[101].v == 7);
    free(d);
    free(b);
    /* After a reset the chunk starts as integers again. */
    cairn_ts_enc_reset(&e);
    assert_int_equal(e.count, 0);
    assert_int_equal(cairn_ts_enc_add(&e, 5, 1), 0);
    assert_int_equal(e.encoding, CAIRN_TS_ENC_INT);
    assert_int_equal(cairn_ts_enc_bytes(&e, false, 0, &b, &len), 0);
    assert_int_equal(cairn_ts_chunk_decode(b, len, &d, &n), 0);
    assert_true(n == 1 && d[0].ts == 5 && d[0].v == 1);
    free(d);
    free(b);
    cairn_ts_enc_free(&e);
}

static void test_bad_appends(void **state)
{
    (void)state;
    for (int c = 0; c < 2; c++) {
        cairn_ts_enc e;
        cairn_ts_enc_init(&e, c);
        uint8_t *b;
        size_t len;
        assert_int_equal(cairn_ts_enc_bytes(&e, false, 0, &b, &len),
                         CAIRN_EINVAL); /* empty */
        assert_int_equal(cairn_ts_enc_add(&e, 100, 1), 0);
        assert_int_equal(cairn_ts_enc_add(&e, 100, 2), CAIRN_EINVAL);
        assert_int_equal(cairn_ts_enc_add(&e, 99, 2), CAIRN_EINVAL);
        assert_int_equal(cairn_ts_enc_add(&e, 101, 2), 0);
        assert_int_equal(e.count, 2);
        assert_int_equal(cairn_ts_enc_bytes(&e, false, 0, &b, &len), 0);
        cairn_ts_point *d;
        size_t n;
        assert_int_equal(cairn_ts_chunk_decode(b, len, &d, &n), 0);
        assert_true(n == 2 && d[0].v == 1 && d[1].ts == 101 && d[1].v == 2);
        free(d);
        free(b);
        cairn_ts_enc_free(&e);
    }
    /* The point limit. */
    cairn_ts_enc e;
    cairn_ts_enc_init(&e, true);
    for (uint32_t i = 0; i < CAIRN_TS_CHUNK_MAX_POINTS; i++)
        assert_int_equal(cairn_ts_enc_add(&e, i, 1), 0);
    assert_int_equal(cairn_ts_enc_add(&e, CAIRN_TS_CHUNK_MAX_POINTS, 1),
                     CAIRN_EINVAL);
    cairn_ts_enc_free(&e);
}

/* Every truncation is corruption; no bit flip crashes or yields points out
 * of order or outside the header's range. */
static void test_damage(void **state)
{
    (void)state;
    cairn_ts_point p[300];
    uint64_t flips = 0, refused = 0;
    for (int pat = 0; pat < P__COUNT; pat++)
        for (int mode = 0; mode < 3; mode++) {
            size_t n = make_points(pat, 300, p);
            cairn_ts_enc e;
            cairn_ts_enc_init(&e, mode != 0);
            for (size_t i = 0; i < n; i++)
                assert_int_equal(cairn_ts_enc_add(&e, p[i].ts, p[i].v), 0);
            uint8_t *b;
            size_t len;
            assert_int_equal(cairn_ts_enc_bytes(&e, mode == 2, 3, &b, &len),
                             0);
            cairn_ts_enc_free(&e);
            cairn_ts_point *d;
            size_t dn;
            for (size_t cut = 0; cut < len; cut++) {
                uint8_t *t = malloc(cut + 1);
                memcpy(t, b, cut);
                assert_int_equal(cairn_ts_chunk_decode(t, cut, &d, &dn),
                                 CAIRN_ECORRUPT);
                free(t);
            }
            uint8_t *t = malloc(len);
            for (size_t bit = 0; bit < len * 8; bit++) {
                if (len > 400 && bit % 7 != 0)
                    continue;
                memcpy(t, b, len);
                t[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                flips++;
                int rc = cairn_ts_chunk_decode(t, len, &d, &dn);
                if (rc != 0) {
                    assert_int_equal(rc, CAIRN_ECORRUPT);
                    refused++;
                    continue;
                }
                int64_t first, last;
                assert_int_equal(
                    cairn_ts_chunk_info(t, len, NULL, NULL, &first, &last),
                    0);
                assert_true(dn >= 1 && d[0].ts == first &&
                            d[dn - 1].ts == last);
                for (size_t i = 1; i < dn; i++)
                    assert_true(d[i].ts > d[i - 1].ts);
                free(d);
            }
            free(t);
            free(b);
        }
    print_message("ts chunk damage: %llu bit flips, %llu refused as "
                  "corrupt, the rest decoded in order\n",
                  (unsigned long long)flips, (unsigned long long)refused);
    assert_true(refused > 0);
}

/* What the format promises for regular data: a regular timestamp and a
 * constant (or constant-step) integer cost 1 bit each. */
static void test_sizes(void **state)
{
    (void)state;
    cairn_ts_enc e;
    cairn_ts_enc_init(&e, true);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(cairn_ts_enc_add(&e, 10000LL * i, 100.0 + 5 * i), 0);
    /* first value 64 bits, then 2 bits per point; the first delta costs
     * more: 1 + 32 bits for the timestamp, 1 + 8 for the value step. */
    assert_true(cairn_ts_enc_size(&e) <=
                CAIRN_TS_CHUNK_HEADER + 8 + (999 * 2 + 48) / 8 + 1);
    cairn_ts_enc_free(&e);
    /* Uncompressed: 16 bytes a point. */
    cairn_ts_enc_init(&e, false);
    for (int i = 0; i < 10; i++)
        assert_int_equal(cairn_ts_enc_add(&e, i, 0.25), 0);
    assert_int_equal(cairn_ts_enc_size(&e), CAIRN_TS_CHUNK_HEADER + 160);
    cairn_ts_enc_free(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_int_then_xor),
        cmocka_unit_test(test_bad_appends),
        cmocka_unit_test(test_damage),
        cmocka_unit_test(test_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
