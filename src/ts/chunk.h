/*
 * chunk.h — time-series chunks: the points of one series over a time
 * range, encoded as docs/format/ts.md says (uncompressed; Gorilla-style
 * delta-of-delta timestamps with XOR values, or with delta-of-delta
 * integers when every value is an integral double; optionally zstd over
 * the body of a sealed chunk).
 *
 * Invariants: an encoder holds points in strictly increasing timestamp
 * order (cairn_ts_enc_add refuses anything else with CAIRN_EINVAL: merging
 * out-of-order points is the caller's business, by decoding and
 * re-encoding); what cairn_ts_enc_bytes gives decodes to exactly the
 * points added (values bit for bit, NaN payloads and negative zero
 * included). The decoder checks every field and never reads outside its
 * input: damage is CAIRN_ECORRUPT, never a crash.
 * Locking: none. An encoder belongs to one thread at a time; the decoder
 * is a pure function.
 */
#ifndef CAIRN_TS_CHUNK_H
#define CAIRN_TS_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

enum {
    CAIRN_TS_ENC_UNCOMPRESSED = 1,
    CAIRN_TS_ENC_XOR = 2,
    CAIRN_TS_ENC_INT = 3,
};

#define CAIRN_TS_CHUNK_HEADER 22u
#define CAIRN_TS_CHUNK_MAX_POINTS (1u << 20)
#define CAIRN_TS_CHUNK_FLAG_ZSTD 0x01u

/* cairn_ts_point is in cairn.h. */

typedef struct cairn_ts_enc {
    bool compressed;     /* false: encoding 1 */
    uint8_t encoding;    /* current: 1, 2 or 3 */
    uint32_t count;
    int64_t first_ts, last_ts, prev_delta;
    /* encoding 2 */
    uint64_t prev_bits;
    int win_lead, win_trail;
    bool has_win;
    /* encoding 3 */
    int64_t prev_int, prev_idelta;
    /* the body: a bit stream (2, 3) or 16-byte points (1) */
    uint8_t *buf;
    size_t cap;
    uint64_t nbits;
} cairn_ts_enc;

/* compressed: encodings 2/3 (3 while every value is integral), else 1. */
void cairn_ts_enc_init(cairn_ts_enc *e, bool compressed);
void cairn_ts_enc_free(cairn_ts_enc *e);
void cairn_ts_enc_reset(cairn_ts_enc *e); /* empty again, same kind */

/* Append a point: CAIRN_EINVAL if ts is not after the last point's, or the
 * chunk is at CAIRN_TS_CHUNK_MAX_POINTS; CAIRN_ENOMEM. */
int cairn_ts_enc_add(cairn_ts_enc *e, int64_t ts, double v);

/* Size the chunk has now (header + body), without zstd. */
size_t cairn_ts_enc_size(const cairn_ts_enc *e);

/* The chunk's bytes, malloc'ed (free with free()). With seal, the body is
 * zstd-compressed (level zstd_level) when that makes the chunk smaller.
 * CAIRN_EINVAL on an empty encoder, CAIRN_ENOMEM. */
int cairn_ts_enc_bytes(const cairn_ts_enc *e, bool seal, int zstd_level,
                       uint8_t **out, size_t *len);

/* Header fields of a chunk, checked (CAIRN_ECORRUPT). Any of the outputs
 * may be NULL. */
int cairn_ts_chunk_info(const uint8_t *buf, size_t len, uint8_t *encoding,
                        uint32_t *count, int64_t *first_ts, int64_t *last_ts);

/* Decode every point (malloc'ed array of *n, free with free()).
 * CAIRN_ECORRUPT on any damage, CAIRN_ENOMEM. */
int cairn_ts_chunk_decode(const uint8_t *buf, size_t len,
                          cairn_ts_point **pts, size_t *n);

/* An encoder holding exactly the points of a chunk, to append to it. */
int cairn_ts_enc_from_chunk(cairn_ts_enc *e, const uint8_t *buf, size_t len,
                            bool compressed);

#endif /* CAIRN_TS_CHUNK_H */
