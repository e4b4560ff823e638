/*
 * keycmp.h — the user-key order every layer shares: bytewise (memcmp), and
 * on a common prefix the shorter key first; the empty key sorts first.
 * Locking: none (a pure function).
 */
#ifndef CAIRN_UTIL_KEYCMP_H
#define CAIRN_UTIL_KEYCMP_H

#include <stddef.h>
#include <string.h>

static inline int cairn_key_cmp(const void *a, size_t alen, const void *b,
                                size_t blen)
{
    size_t m = alen < blen ? alen : blen;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

#endif /* CAIRN_UTIL_KEYCMP_H */
