/*
 * hist.h — a small lock-free latency histogram with logarithmic buckets.
 *
 * Each power of two is split into four buckets (bucket width at most 19% of
 * its values), so quantiles come out within about 19%: enough for p50/p99
 * of I/O latencies. Values are unsigned (nanoseconds, say); 0 falls into
 * bucket 0.
 *
 * Threading: cairn_hist_add may run on any number of threads at once
 * (relaxed atomic increments); a quantile read while adds go on sees some
 * of them. A histogram needs no initialisation beyond zeroing.
 */
#ifndef CAIRN_UTIL_HIST_H
#define CAIRN_UTIL_HIST_H

#include <stdatomic.h>
#include <stdint.h>

#define CAIRN_HIST_BUCKETS 256

typedef struct cairn_hist {
    atomic_uint_fast64_t b[CAIRN_HIST_BUCKETS];
} cairn_hist;

static inline unsigned cairn_hist_bucket(uint64_t v)
{
    if (v < 4)
        return (unsigned)v; /* 0..3 exact */
    unsigned lz = 63u - (unsigned)__builtin_clzll(v); /* floor(log2 v) >= 2 */
    return lz * 4u + (unsigned)((v >> (lz - 2)) & 3u) - 4u;
}

/* The largest value of bucket i. */
static inline uint64_t cairn_hist_bucket_max(unsigned i)
{
    if (i < 4)
        return i;
    unsigned lz = (i + 4u) / 4u, q = (i + 4u) % 4u;
    if (lz >= 63)
        return UINT64_MAX;
    return ((uint64_t)(4u + q + 1u) << (lz - 2)) - 1u;
}

static inline void cairn_hist_add(cairn_hist *h, uint64_t v)
{
    atomic_fetch_add_explicit(&h->b[cairn_hist_bucket(v)], 1,
                              memory_order_relaxed);
}

static inline uint64_t cairn_hist_count(const cairn_hist *h)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < CAIRN_HIST_BUCKETS; i++)
        n += atomic_load_explicit(&h->b[i], memory_order_relaxed);
    return n;
}

/* The value at quantile q (0 < q <= 1) as its bucket's largest value; 0
 * for an empty histogram. */
static inline uint64_t cairn_hist_quantile(const cairn_hist *h, double q)
{
    uint64_t n = cairn_hist_count(h);
    if (n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)n + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < CAIRN_HIST_BUCKETS; i++) {
        seen += atomic_load_explicit(&h->b[i], memory_order_relaxed);
        if (seen >= want)
            return cairn_hist_bucket_max(i);
    }
    return cairn_hist_bucket_max(CAIRN_HIST_BUCKETS - 1);
}

/* *out = a + b (a snapshot of each; out is not shared). */
static inline void cairn_hist_sum(cairn_hist *out, const cairn_hist *a,
                                  const cairn_hist *b)
{
    for (unsigned i = 0; i < CAIRN_HIST_BUCKETS; i++)
        atomic_init(&out->b[i],
                    atomic_load_explicit(&a->b[i], memory_order_relaxed) +
                        atomic_load_explicit(&b->b[i], memory_order_relaxed));
}

#endif /* CAIRN_UTIL_HIST_H */
