/*
 * cdc.h — content-defined chunking (chunker 1 of docs/format/blob.md): a
 * gear hash rolls over the bytes, and a chunk ends where its top bits are
 * zero, with normalized chunking (a harder mask before the average size, an
 * easier one after) and minimum / maximum bounds.
 *
 * Invariants: a cut depends only on the chunk's start and the bytes after
 * it, never on what precedes the chunk, and once a chunk is 64 bytes past
 * its minimum only on the last 64 bytes; so after an edit the cuts fall
 * back into step with the unedited version within a chunk or two. Every
 * chunk but a value's last is at least min_size bytes; every chunk is at
 * most max_size bytes. Parameters never matter for reading (each chunk is
 * named in the reference); they are recorded there anyway.
 *
 * Locking: none. A cairn_cdc is immutable after cairn_cdc_init and may be
 * used by any number of threads at once.
 */
#ifndef CAIRN_BLOB_CDC_H
#define CAIRN_BLOB_CDC_H

#include <stddef.h>
#include <stdint.h>

#define CAIRN_CDC_CHUNKER_GEAR 1u /* the chunker id references record */

#define CAIRN_CDC_DEFAULT_MIN (16u << 10)
#define CAIRN_CDC_DEFAULT_AVG (64u << 10)
#define CAIRN_CDC_DEFAULT_MAX (256u << 10)

/* Bounds checked by cairn_cdc_init (see docs/format/blob.md). */
#define CAIRN_CDC_MIN_MIN 64u
#define CAIRN_CDC_MIN_AVG (1u << 8)
#define CAIRN_CDC_MAX_AVG (1u << 28)
#define CAIRN_CDC_MAX_MAX (1u << 30)

typedef struct cairn_cdc_params {
    uint32_t min_size;
    uint32_t avg_size; /* a power of two */
    uint32_t max_size;
} cairn_cdc_params;

typedef struct cairn_cdc {
    cairn_cdc_params p;
    uint64_t mask_s; /* before avg_size: top log2(avg)+2 bits */
    uint64_t mask_l; /* from avg_size on: top log2(avg)-2 bits */
    uint64_t gear[256];
} cairn_cdc;

/* The defaults: 16 KiB / 64 KiB / 256 KiB. */
void cairn_cdc_params_default(cairn_cdc_params *p);

/* 0 if p is within the bounds above (64 <= min <= avg <= max <= 2^30,
 * avg a power of two in [2^8, 2^28]), else CAIRN_EINVAL. */
int cairn_cdc_params_check(const cairn_cdc_params *p);

/* Set c up for p (NULL: the defaults). CAIRN_EINVAL on bad parameters. */
int cairn_cdc_init(cairn_cdc *c, const cairn_cdc_params *p);

/* The length of the chunk that starts at data, len bytes of the value being
 * left from there: 1..min(len, max_size) (0 only when len is 0). The whole
 * rest of the value need not be passed: any len >= max_size gives the same
 * answer as the full rest. */
size_t cairn_cdc_next(const cairn_cdc *c, const uint8_t *data, size_t len);

#endif /* CAIRN_BLOB_CDC_H */
