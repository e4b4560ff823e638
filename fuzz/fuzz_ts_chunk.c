/*
 * fuzz_ts_chunk.c — fuzz target for the time-series chunk codec. The first
 * byte picks the mode:
 *   - even: the rest is a chunk. Decoding it either fails with
 *     CAIRN_ECORRUPT or gives the header's count of points, strictly
 *     increasing from the header's first timestamp to its last; those
 *     points, encoded again (each encoding, sealed or not), decode to the
 *     same points bit for bit.
 *   - odd: the rest is a recipe of points, 9 bytes each (a timestamp gap
 *     (1 + a byte) shifted left by 7 times the mode's bits 1..3, then the value's
 *     64 bits, or a small integer when the mode's bit 4 is set): they are
 *     encoded (compressed when bit 5 is set, sealed when bit 6 is set) and
 *     must decode to exactly the points added. Bit 7 starts the
 *     timestamps at INT64_MIN.
 * Locking: single-threaded.
 */
#include <string.h>

#include "cairn.h"
#include "fuzz_common.h"
#include "ts/chunk.h"
#include "util/coding.h"

static void check_same(const cairn_ts_point *a, size_t na,
                       const cairn_ts_point *b, size_t nb)
{
    FUZZ_CHECK(na == nb);
    for (size_t i = 0; i < na; i++) {
        FUZZ_CHECK(a[i].ts == b[i].ts);
        FUZZ_CHECK(memcmp(&a[i].v, &b[i].v, 8) == 0);
    }
}

static void reencode(const cairn_ts_point *p, size_t n, bool compressed,
                     bool seal)
{
    cairn_ts_enc e;
    cairn_ts_enc_init(&e, compressed);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(cairn_ts_enc_add(&e, p[i].ts, p[i].v) == 0);
    uint8_t *b = NULL;
    size_t len = 0;
    FUZZ_CHECK(cairn_ts_enc_bytes(&e, seal, 1, &b, &len) == 0);
    cairn_ts_point *d = NULL;
    size_t dn = 0;
    FUZZ_CHECK(cairn_ts_chunk_decode(b, len, &d, &dn) == 0);
    check_same(p, n, d, dn);
    free(d);
    free(b);
    cairn_ts_enc_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    if ((mode & 1) == 0) {
        cairn_ts_point *p = NULL;
        size_t n = 0;
        int rc = cairn_ts_chunk_decode(data, size, &p, &n);
        if (rc != 0) {
            FUZZ_CHECK(rc == CAIRN_ECORRUPT || rc == CAIRN_ENOMEM);
            return 0;
        }
        uint32_t cnt;
        int64_t first, last;
        FUZZ_CHECK(cairn_ts_chunk_info(data, size, NULL, &cnt, &first,
                                       &last) == 0);
        FUZZ_CHECK(n == cnt && p[0].ts == first && p[n - 1].ts == last);
        for (size_t i = 1; i < n; i++)
            FUZZ_CHECK(p[i].ts > p[i - 1].ts);
        if (n <= 4096) {
            reencode(p, n, false, false);
            reencode(p, n, true, false);
            reencode(p, n, true, true);
        }
        free(p);
        return 0;
    }
    size_t n = size / 9;
    if (n == 0 || n > 4096)
        return 0;
    cairn_ts_point *p = malloc(n * sizeof *p);
    if (!p)
        return 0;
    int64_t ts = mode & 0x80 ? INT64_MIN : 1795504339613LL;
    unsigned shift = ((mode >> 1) & 7) * 7; /* gaps up to 2^57 */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const uint8_t *r = data + 9 * i;
        uint64_t gap = ((uint64_t)r[0] + 1) << shift;
        /* INT64_MAX - ts, exact in wrapping arithmetic */
        if (m > 0 && (uint64_t)INT64_MAX - (uint64_t)ts < gap)
            break;
        if (m > 0)
            ts = (int64_t)((uint64_t)ts + gap);
        uint64_t bits = cairn_get_u64(r + 1);
        double v;
        if (mode & 0x10)
            v = (double)(int8_t)r[1];
        else
            memcpy(&v, &bits, 8);
        p[m].ts = ts;
        p[m].v = v;
        m++;
    }
    reencode(p, m, (mode & 0x20) != 0, (mode & 0x40) != 0);
    free(p);
    return 0;
}
