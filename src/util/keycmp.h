/*
 * keycmp.h — the user-key order every layer shares: bytewise (memcmp), and
 * on a common prefix the shorter key first; the empty key sorts first.
 * Locking: none (a pure function).
 */
#ifndef CAIRN_UTIL_KEYCMP_H
#define CAIRN_UTIL_KEYCMP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t cairn_key_word_(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x; /* big-endian: integers order like the bytes */
}

/* Out of line so the compiler does not check a long memcmp against a short
 * array whose length it happens to know at an inlined call site. */
__attribute__((noinline, unused)) static int
cairn_key_memcmp_(const void *a, const void *b, size_t n)
{
    return memcmp(a, b, n);
}

static inline int cairn_key_cmp(const void *a, size_t alen, const void *b,
                                size_t blen)
{
    size_t m = alen < blen ? alen : blen;
    int c = 0;
    if (m <= 32) {
        /* Short keys (the common case) without a call: 8 bytes at a time as
         * big-endian integers, then byte by byte. */
        const unsigned char *p = a, *q = b;
        size_t i = 0;
        for (; i + 8 <= m; i += 8) {
            uint64_t x = cairn_key_word_(p + i), y = cairn_key_word_(q + i);
            if (x != y)
                return x < y ? -1 : 1;
        }
        for (; i < m; i++)
            if (p[i] != q[i])
                return p[i] < q[i] ? -1 : 1;
    } else {
        c = cairn_key_memcmp_(a, b, m);
    }
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

#endif /* CAIRN_UTIL_KEYCMP_H */
