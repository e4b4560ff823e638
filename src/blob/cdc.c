/*
 * cdc.c — the gear chunker (docs/format/blob.md, "Chunking"): written from
 * the published idea of FastCDC (gear hash, cut-point skipping up to the
 * minimum, normalized chunking with two masks around the average).
 *
 * Invariants: the gear table and the masks are a function of the format
 * (chunker 1) and of avg_size only; changing either would change every cut
 * and so every chunk's identity, which is why the table's generator is
 * written down in the format page.
 * Locking: none (a cairn_cdc is read-only after init).
 */
#include "blob/cdc.h"

#include "cairn.h"

#define GEAR_SEED 0x63616972636463ffull

void cairn_cdc_params_default(cairn_cdc_params *p)
{
    p->min_size = CAIRN_CDC_DEFAULT_MIN;
    p->avg_size = CAIRN_CDC_DEFAULT_AVG;
    p->max_size = CAIRN_CDC_DEFAULT_MAX;
}

int cairn_cdc_params_check(const cairn_cdc_params *p)
{
    if (!p)
        return CAIRN_EINVAL;
    uint32_t a = p->avg_size;
    if (a < CAIRN_CDC_MIN_AVG || a > CAIRN_CDC_MAX_AVG || (a & (a - 1)) != 0)
        return CAIRN_EINVAL;
    if (p->min_size < CAIRN_CDC_MIN_MIN || p->min_size > a ||
        p->max_size < a || p->max_size > CAIRN_CDC_MAX_MAX)
        return CAIRN_EINVAL;
    return 0;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The top n bits of a 64-bit word set (1 <= n <= 63). */
static uint64_t top_bits(unsigned n)
{
    return ~0ull << (64 - n);
}

int cairn_cdc_init(cairn_cdc *c, const cairn_cdc_params *p)
{
    cairn_cdc_params d;
    if (!p) {
        cairn_cdc_params_default(&d);
        p = &d;
    }
    int rc = cairn_cdc_params_check(p);
    if (rc)
        return rc;
    c->p = *p;
    unsigned b = 0;
    while ((1u << b) < p->avg_size)
        b++;
    c->mask_s = top_bits(b + 2);
    c->mask_l = top_bits(b - 2);
    uint64_t s = GEAR_SEED;
    for (int i = 0; i < 256; i++)
        c->gear[i] = splitmix64(&s);
    return 0;
}

size_t cairn_cdc_next(const cairn_cdc *c, const uint8_t *data, size_t len)
{
    size_t min = c->p.min_size;
    if (len <= min)
        return len;
    size_t end = len < c->p.max_size ? len : c->p.max_size;
    size_t normal = c->p.avg_size < end ? c->p.avg_size : end;
    const uint64_t *gear = c->gear;
    uint64_t h = 0;
    size_t i = min;
    const uint64_t ms = c->mask_s, ml = c->mask_l;
    for (; i < normal; i++) {
        h = (h << 1) + gear[data[i]];
        if (!(h & ms))
            return i + 1;
    }
    for (; i < end; i++) {
        h = (h << 1) + gear[data[i]];
        if (!(h & ml))
            return i + 1;
    }
    return end;
}
