/*
 * coding.h — fixed-width little-endian encoding helpers, shared by every
 * on-disk format, and unsigned LEB128 varints. Byte order is explicit so
 * files move between machines. Varint decoders are bounds-checked: they
 * never read at or past `end` and refuse overlong or out-of-range encodings.
 * Locking: none (pure functions).
 */
#ifndef CAIRN_CODING_H
#define CAIRN_CODING_H

#include <stddef.h>
#include <stdint.h>

static inline void cairn_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void cairn_put_u64(uint8_t *p, uint64_t v)
{
    cairn_put_u32(p, (uint32_t)v);
    cairn_put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t cairn_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static inline uint64_t cairn_get_u64(const uint8_t *p)
{
    return (uint64_t)cairn_get_u32(p) | ((uint64_t)cairn_get_u32(p + 4) << 32);
}

/* ---- varints: unsigned LEB128, low 7-bit group first ---- */

#define CAIRN_VARINT64_MAX 10 /* bytes a 64-bit varint may take */

/* Bytes the varint encoding of v takes (1..10). */
static inline size_t cairn_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Write v at p (room for CAIRN_VARINT64_MAX bytes); returns bytes written. */
static inline size_t cairn_put_varint64(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Decode a varint from [p, end). Returns the byte after it, or NULL if it is
 * truncated, longer than 10 bytes, or does not fit in 64 bits. */
static inline const uint8_t *cairn_get_varint64(const uint8_t *p,
                                                const uint8_t *end,
                                                uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 70 && p < end; shift += 7) {
        uint8_t b = *p++;
        if (shift == 63 && b > 1)
            return NULL;
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return p;
        }
    }
    return NULL;
}

/* Like cairn_get_varint64 for values that must fit in 32 bits (at most 5
 * bytes). */
static inline const uint8_t *cairn_get_varint32(const uint8_t *p,
                                                const uint8_t *end,
                                                uint32_t *v)
{
    uint32_t r = 0;
    for (unsigned shift = 0; shift < 35 && p < end; shift += 7) {
        uint8_t b = *p++;
        if (shift == 28 && b > 15)
            return NULL;
        r |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return p;
        }
    }
    return NULL;
}

#endif /* CAIRN_CODING_H */
