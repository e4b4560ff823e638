/*
 * chunk.c — time-series chunk encoder and decoder (docs/format/ts.md).
 *
 * The bit streams use wrapping unsigned arithmetic for deltas (a delta of
 * two int64 timestamps may not fit an int64; its two's complement bits
 * always round-trip), and the decoder checks the results: timestamps
 * strictly increasing and ending at the header's last timestamp, integers
 * within +-2^53.
 * Invariants and locking: see chunk.h.
 */
#include "ts/chunk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "cairn.h"
#include "util/coding.h"

#define INT_LIMIT 9007199254740992LL /* 2^53 */
#define MAX_RAW_BODY (16u << 20)
/* Most bits one point can take: timestamp 5 + 64, value 2 + 12 + 64. */
#define MAX_POINT_BITS 160u

/* ---- bit writer ---- */

static int bw_reserve(cairn_ts_enc *e, uint64_t more_bits)
{
    size_t need = (size_t)((e->nbits + more_bits + 7) / 8);
    if (need <= e->cap)
        return 0;
    size_t cap = e->cap ? e->cap * 2 : 256;
    while (cap < need)
        cap *= 2;
    uint8_t *b = realloc(e->buf, cap);
    if (!b)
        return CAIRN_ENOMEM;
    memset(b + e->cap, 0, cap - e->cap);
    e->buf = b;
    e->cap = cap;
    return 0;
}

/* Write the low n bits of v (n <= 64), most significant first. The space
 * was reserved. */
static void bw_put(cairn_ts_enc *e, uint64_t v, unsigned n)
{
    while (n > 0) {
        unsigned bitpos = (unsigned)(e->nbits & 7);
        unsigned space = 8 - bitpos;
        unsigned take = n < space ? n : space;
        uint64_t bits = (v >> (n - take)) & ((1u << take) - 1u);
        e->buf[e->nbits >> 3] |= (uint8_t)(bits << (space - take));
        e->nbits += take;
        n -= take;
    }
}

static uint64_t mask(unsigned n)
{
    return n >= 64 ? ~0ull : (1ull << n) - 1ull;
}

static bool fits(int64_t v, unsigned n)
{
    if (n >= 64)
        return true;
    int64_t lo = -(1LL << (n - 1)), hi = (1LL << (n - 1)) - 1;
    return v >= lo && v <= hi;
}

typedef struct bucket {
    unsigned prefix_bits; /* the prefix: prefix_bits - 1 ones and a zero,
                             or all ones for the last bucket */
    unsigned width;
} bucket;

static const bucket ts_buckets[] = {{1, 0},  {2, 7},  {3, 9},
                                    {4, 12}, {5, 32}, {5, 64}};
static const bucket int_buckets[] = {
    {1, 0}, {2, 8}, {3, 16}, {4, 32}, {4, 64}};

/* Write dod with the first bucket of table (n entries) that holds it. */
static void put_dod(cairn_ts_enc *e, const bucket *t, size_t n, uint64_t dod)
{
    int64_t s = (int64_t)dod;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && (t[i].width == 0 ? s != 0 : !fits(s, t[i].width)))
            continue;
        /* prefix: i ones then a zero, except the last bucket: all ones */
        unsigned pb = t[i].prefix_bits;
        uint64_t prefix = i + 1 < n ? mask(pb) - 1u : mask(pb);
        bw_put(e, prefix, pb);
        if (t[i].width)
            bw_put(e, dod & mask(t[i].width), t[i].width);
        return;
    }
}

/* ---- encoder ---- */

void cairn_ts_enc_init(cairn_ts_enc *e, bool compressed)
{
    memset(e, 0, sizeof *e);
    e->compressed = compressed;
    e->encoding = compressed ? CAIRN_TS_ENC_INT : CAIRN_TS_ENC_UNCOMPRESSED;
}

void cairn_ts_enc_free(cairn_ts_enc *e)
{
    free(e->buf);
    memset(e, 0, sizeof *e);
}

void cairn_ts_enc_reset(cairn_ts_enc *e)
{
    bool c = e->compressed;
    uint8_t *buf = e->buf;
    size_t cap = e->cap;
    if (buf)
        memset(buf, 0, cap);
    cairn_ts_enc_init(e, c);
    e->buf = buf;
    e->cap = cap;
}

static bool as_int(double v, int64_t *out)
{
    if (!(v >= -(double)INT_LIMIT && v <= (double)INT_LIMIT))
        return false; /* NaN too */
    int64_t i = (int64_t)v;
    if ((double)i != v || (i == 0 && signbit(v)))
        return false;
    *out = i;
    return true;
}

static uint64_t dbits(double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    return u;
}

static double bitsd(uint64_t u)
{
    double v;
    memcpy(&v, &u, 8);
    return v;
}

static void put_xor(cairn_ts_enc *e, uint64_t bits)
{
    uint64_t x = bits ^ e->prev_bits;
    e->prev_bits = bits;
    if (x == 0) {
        bw_put(e, 0, 1);
        return;
    }
    int lead = __builtin_clzll(x), trail = __builtin_ctzll(x);
    if (e->has_win && lead >= e->win_lead && trail >= e->win_trail) {
        unsigned len = (unsigned)(64 - e->win_lead - e->win_trail);
        bw_put(e, 2, 2); /* 10 */
        bw_put(e, x >> e->win_trail, len);
        return;
    }
    unsigned len = (unsigned)(64 - lead - trail);
    bw_put(e, 3, 2); /* 11 */
    bw_put(e, (uint64_t)lead, 6);
    bw_put(e, len - 1, 6);
    bw_put(e, x >> trail, len);
    e->has_win = true;
    e->win_lead = lead;
    e->win_trail = trail;
}

/* Re-encode the points so far with XOR values (a value that is not
 * integral arrived in an integer chunk). */
static int switch_to_xor(cairn_ts_enc *e)
{
    uint8_t *bytes = NULL;
    size_t len = 0;
    cairn_ts_point *pts = NULL;
    size_t n = 0;
    int rc = cairn_ts_enc_bytes(e, false, 0, &bytes, &len);
    if (rc == 0)
        rc = cairn_ts_chunk_decode(bytes, len, &pts, &n);
    free(bytes);
    if (rc != 0)
        return rc == CAIRN_ECORRUPT ? CAIRN_EINVAL : rc; /* cannot happen */
    cairn_ts_enc_reset(e);
    e->encoding = CAIRN_TS_ENC_XOR;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cairn_ts_enc_add(e, pts[i].ts, pts[i].v);
    free(pts);
    return rc;
}

int cairn_ts_enc_add(cairn_ts_enc *e, int64_t ts, double v)
{
    if (e->count >= CAIRN_TS_CHUNK_MAX_POINTS ||
        (e->count > 0 && ts <= e->last_ts))
        return CAIRN_EINVAL;
    int64_t iv = 0;
    if (e->encoding == CAIRN_TS_ENC_INT && !as_int(v, &iv)) {
        int rc = e->count ? switch_to_xor(e) : 0;
        e->encoding = CAIRN_TS_ENC_XOR;
        if (rc)
            return rc;
    }
    int rc = bw_reserve(e, e->encoding == CAIRN_TS_ENC_UNCOMPRESSED
                               ? 128
                               : MAX_POINT_BITS);
    if (rc)
        return rc;
    if (e->encoding == CAIRN_TS_ENC_UNCOMPRESSED) {
        uint8_t *p = e->buf + (e->nbits >> 3);
        cairn_put_u64(p, (uint64_t)ts);
        cairn_put_u64(p + 8, dbits(v));
        e->nbits += 128;
    } else if (e->count == 0) {
        if (e->encoding == CAIRN_TS_ENC_INT) {
            bw_put(e, (uint64_t)iv, 64);
            e->prev_int = iv;
            e->prev_idelta = 0;
        } else {
            bw_put(e, dbits(v), 64);
            e->prev_bits = dbits(v);
        }
    } else {
        uint64_t delta = (uint64_t)ts - (uint64_t)e->last_ts;
        put_dod(e, ts_buckets, 6, delta - (uint64_t)e->prev_delta);
        e->prev_delta = (int64_t)delta;
        if (e->encoding == CAIRN_TS_ENC_INT) {
            uint64_t d = (uint64_t)iv - (uint64_t)e->prev_int;
            put_dod(e, int_buckets, 5, d - (uint64_t)e->prev_idelta);
            e->prev_idelta = (int64_t)d;
            e->prev_int = iv;
        } else {
            put_xor(e, dbits(v));
        }
    }
    if (e->count == 0)
        e->first_ts = ts;
    e->last_ts = ts;
    e->count++;
    return 0;
}

size_t cairn_ts_enc_size(const cairn_ts_enc *e)
{
    return CAIRN_TS_CHUNK_HEADER + (size_t)((e->nbits + 7) / 8);
}

static void put_header(uint8_t *h, uint8_t enc, uint8_t flags, uint32_t n,
                       int64_t first, int64_t last)
{
    h[0] = enc;
    h[1] = flags;
    cairn_put_u32(h + 2, n);
    cairn_put_u64(h + 6, (uint64_t)first);
    cairn_put_u64(h + 14, (uint64_t)last);
}

int cairn_ts_enc_bytes(const cairn_ts_enc *e, bool seal, int zstd_level,
                       uint8_t **out, size_t *len)
{
    if (e->count == 0)
        return CAIRN_EINVAL;
    size_t body = (size_t)((e->nbits + 7) / 8);
    if (seal && body >= 64) {
        size_t bound = ZSTD_compressBound(body);
        uint8_t *c = malloc(CAIRN_TS_CHUNK_HEADER + 4 + bound);
        if (!c)
            return CAIRN_ENOMEM;
        size_t cs = ZSTD_compress(c + CAIRN_TS_CHUNK_HEADER + 4, bound,
                                  e->buf, body, zstd_level ? zstd_level : 19);
        if (!ZSTD_isError(cs) && 4 + cs < body) {
            put_header(c, e->encoding, CAIRN_TS_CHUNK_FLAG_ZSTD, e->count,
                       e->first_ts, e->last_ts);
            cairn_put_u32(c + CAIRN_TS_CHUNK_HEADER, (uint32_t)body);
            *out = c;
            *len = CAIRN_TS_CHUNK_HEADER + 4 + cs;
            return 0;
        }
        free(c);
    }
    uint8_t *b = malloc(CAIRN_TS_CHUNK_HEADER + body);
    if (!b)
        return CAIRN_ENOMEM;
    put_header(b, e->encoding, 0, e->count, e->first_ts, e->last_ts);
    memcpy(b + CAIRN_TS_CHUNK_HEADER, e->buf, body);
    *out = b;
    *len = CAIRN_TS_CHUNK_HEADER + body;
    return 0;
}

/* ---- decoder ---- */

typedef struct br {
    const uint8_t *p;
    uint64_t nbits, pos;
} br;

static bool br_get(br *r, unsigned n, uint64_t *out)
{
    if (n > r->nbits - r->pos)
        return false;
    uint64_t v = 0;
    while (n > 0) {
        unsigned bitpos = (unsigned)(r->pos & 7);
        unsigned avail = 8 - bitpos;
        unsigned take = n < avail ? n : avail;
        uint8_t byte = r->p[r->pos >> 3];
        uint64_t bits = (byte >> (avail - take)) & ((1u << take) - 1u);
        v = (take == 64 ? 0 : v << take) | bits;
        r->pos += take;
        n -= take;
    }
    *out = v;
    return true;
}

/* Read a prefix and its field from table t (n buckets); dod sign-extended
 * into wrapping arithmetic. */
static bool get_dod(br *r, const bucket *t, size_t n, uint64_t *dod)
{
    size_t i = 0;
    for (; i + 1 < n; i++) {
        uint64_t b;
        if (!br_get(r, 1, &b))
            return false;
        if (b == 0)
            break;
    }
    /* i ones were read (the last bucket's prefix is all ones) */
    unsigned w = t[i].width;
    uint64_t v = 0;
    if (w && !br_get(r, w, &v))
        return false;
    if (w && w < 64 && (v >> (w - 1)) & 1u)
        v |= ~mask(w);
    *dod = v;
    return true;
}

int cairn_ts_chunk_info(const uint8_t *buf, size_t len, uint8_t *encoding,
                        uint32_t *count, int64_t *first_ts, int64_t *last_ts)
{
    if (len < CAIRN_TS_CHUNK_HEADER)
        return CAIRN_ECORRUPT;
    uint8_t enc = buf[0], flags = buf[1];
    uint32_t n = cairn_get_u32(buf + 2);
    int64_t first = (int64_t)cairn_get_u64(buf + 6);
    int64_t last = (int64_t)cairn_get_u64(buf + 14);
    if (enc < CAIRN_TS_ENC_UNCOMPRESSED || enc > CAIRN_TS_ENC_INT ||
        (flags & ~CAIRN_TS_CHUNK_FLAG_ZSTD) || n == 0 ||
        n > CAIRN_TS_CHUNK_MAX_POINTS || last < first ||
        (n == 1 && last != first) || (n > 1 && last == first))
        return CAIRN_ECORRUPT;
    if (encoding)
        *encoding = enc;
    if (count)
        *count = n;
    if (first_ts)
        *first_ts = first;
    if (last_ts)
        *last_ts = last;
    return 0;
}

static int decode_body(uint8_t enc, uint32_t n, int64_t first, int64_t last,
                       const uint8_t *body, size_t blen, cairn_ts_point *pts)
{
    if (enc == CAIRN_TS_ENC_UNCOMPRESSED) {
        if (blen != (size_t)n * 16)
            return CAIRN_ECORRUPT;
        for (uint32_t i = 0; i < n; i++) {
            pts[i].ts = (int64_t)cairn_get_u64(body + 16 * (size_t)i);
            pts[i].v = bitsd(cairn_get_u64(body + 16 * (size_t)i + 8));
            if (i > 0 && pts[i].ts <= pts[i - 1].ts)
                return CAIRN_ECORRUPT;
        }
        return pts[0].ts == first && pts[n - 1].ts == last ? 0
                                                           : CAIRN_ECORRUPT;
    }
    br r = {body, (uint64_t)blen * 8, 0};
    uint64_t u;
    if (!br_get(&r, 64, &u))
        return CAIRN_ECORRUPT;
    int64_t ts = first, delta = 0, iv = 0, idelta = 0;
    uint64_t prev_bits = u;
    int win_lead = 0, win_trail = 0;
    bool has_win = false;
    if (enc == CAIRN_TS_ENC_INT) {
        iv = (int64_t)u;
        if (iv < -INT_LIMIT || iv > INT_LIMIT)
            return CAIRN_ECORRUPT;
        pts[0].v = (double)iv;
    } else {
        pts[0].v = bitsd(u);
    }
    pts[0].ts = ts;
    for (uint32_t i = 1; i < n; i++) {
        uint64_t dod;
        if (!get_dod(&r, ts_buckets, 6, &dod))
            return CAIRN_ECORRUPT;
        delta = (int64_t)((uint64_t)delta + dod);
        int64_t nts = (int64_t)((uint64_t)ts + (uint64_t)delta);
        /* strictly after the previous one: the true delta is positive and
         * the sum did not wrap */
        if (nts <= ts)
            return CAIRN_ECORRUPT;
        ts = nts;
        pts[i].ts = ts;
        if (enc == CAIRN_TS_ENC_INT) {
            if (!get_dod(&r, int_buckets, 5, &dod))
                return CAIRN_ECORRUPT;
            idelta = (int64_t)((uint64_t)idelta + dod);
            /* |iv| <= 2^53 and a delta outside +-2^54 cannot land inside */
            if (idelta < -2 * INT_LIMIT || idelta > 2 * INT_LIMIT)
                return CAIRN_ECORRUPT;
            iv += idelta;
            if (iv < -INT_LIMIT || iv > INT_LIMIT)
                return CAIRN_ECORRUPT;
            pts[i].v = (double)iv;
            continue;
        }
        if (!br_get(&r, 1, &u))
            return CAIRN_ECORRUPT;
        if (u == 0) {
            pts[i].v = bitsd(prev_bits);
            continue;
        }
        if (!br_get(&r, 1, &u))
            return CAIRN_ECORRUPT;
        uint64_t x;
        if (u == 0) {
            if (!has_win)
                return CAIRN_ECORRUPT;
            unsigned len = (unsigned)(64 - win_lead - win_trail);
            if (!br_get(&r, len, &x))
                return CAIRN_ECORRUPT;
            x <<= win_trail;
        } else {
            uint64_t lead, lm1;
            if (!br_get(&r, 6, &lead) || !br_get(&r, 6, &lm1))
                return CAIRN_ECORRUPT;
            unsigned len = (unsigned)lm1 + 1;
            if (lead + len > 64)
                return CAIRN_ECORRUPT;
            if (!br_get(&r, len, &x))
                return CAIRN_ECORRUPT;
            win_trail = 64 - (int)lead - (int)len;
            win_lead = (int)lead;
            has_win = true;
            x <<= win_trail;
        }
        prev_bits ^= x;
        pts[i].v = bitsd(prev_bits);
    }
    return ts == last ? 0 : CAIRN_ECORRUPT;
}

int cairn_ts_chunk_decode(const uint8_t *buf, size_t len,
                          cairn_ts_point **out, size_t *nout)
{
    uint8_t enc;
    uint32_t n;
    int64_t first, last;
    int rc = cairn_ts_chunk_info(buf, len, &enc, &n, &first, &last);
    if (rc)
        return rc;
    const uint8_t *body = buf + CAIRN_TS_CHUNK_HEADER;
    size_t blen = len - CAIRN_TS_CHUNK_HEADER;
    uint8_t *raw = NULL;
    if (buf[1] & CAIRN_TS_CHUNK_FLAG_ZSTD) {
        if (blen < 4)
            return CAIRN_ECORRUPT;
        size_t rlen = cairn_get_u32(body);
        /* no point takes more than MAX_POINT_BITS (16 bytes uncompressed) */
        uint64_t most = (uint64_t)n * (MAX_POINT_BITS / 8) + 8;
        if (rlen == 0 || rlen > MAX_RAW_BODY || rlen > most)
            return CAIRN_ECORRUPT;
        raw = malloc(rlen);
        if (!raw)
            return CAIRN_ENOMEM;
        size_t got = ZSTD_decompress(raw, rlen, body + 4, blen - 4);
        if (ZSTD_isError(got) || got != rlen) {
            free(raw);
            return CAIRN_ECORRUPT;
        }
        body = raw;
        blen = rlen;
    }
    cairn_ts_point *pts = malloc((size_t)n * sizeof *pts);
    if (!pts) {
        free(raw);
        return CAIRN_ENOMEM;
    }
    rc = decode_body(enc, n, first, last, body, blen, pts);
    free(raw);
    if (rc) {
        free(pts);
        return rc;
    }
    *out = pts;
    *nout = n;
    return 0;
}

int cairn_ts_enc_from_chunk(cairn_ts_enc *e, const uint8_t *buf, size_t len,
                            bool compressed)
{
    cairn_ts_point *pts = NULL;
    size_t n = 0;
    int rc = cairn_ts_chunk_decode(buf, len, &pts, &n);
    if (rc)
        return rc;
    cairn_ts_enc_init(e, compressed);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cairn_ts_enc_add(e, pts[i].ts, pts[i].v);
    free(pts);
    if (rc)
        cairn_ts_enc_free(e);
    return rc;
}
