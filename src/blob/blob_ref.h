/*
 * blob_ref.h — the reference record a tree value holds in place of a value
 * stored out of line (docs/format/blob.md, "Reference record"): either one
 * blob (type 1: raw length, SHA-256, location) or a chunked value (type 2:
 * total raw length, the chunker and its parameters, then each chunk's
 * SHA-256, raw length and location, in value order).
 *
 * Invariants: decoding checks every length against the end of the input
 * and refuses anything the format does not allow (CAIRN_ECORRUPT), so a
 * decoded reference is always consistent: one chunk for type 1 with the
 * same raw length; for type 2 at least one chunk, none empty, their raw
 * lengths summing to the total; every location plausible (file >= 1,
 * offset >= 32, lengths <= 2^30). Encoding refuses (CAIRN_EINVAL) a
 * reference that decoding would refuse, so whatever encodes decodes back
 * to the same thing.
 * Locking: none (pure functions over caller-owned memory).
 */
#ifndef CAIRN_BLOB_REF_H
#define CAIRN_BLOB_REF_H

#include <stddef.h>
#include <stdint.h>

#include "blob/blob_file.h"
#include "blob/cdc.h"

enum {
    CAIRN_BLOB_REF_SINGLE = 1,
    CAIRN_BLOB_REF_CHUNKED = 2,
};

/* Largest raw or stored length of one blob record (the format's limit). */
#define CAIRN_BLOB_REF_MAX_LEN ((uint32_t)1 << 30)

typedef struct cairn_blob_chunk {
    uint8_t hash[CAIRN_BLOB_HASH_SIZE];
    uint32_t raw_len;
    cairn_blob_loc loc;
} cairn_blob_chunk;

typedef struct cairn_blob_ref {
    uint8_t type;       /* CAIRN_BLOB_REF_SINGLE or _CHUNKED */
    uint64_t raw_len;   /* the whole value's length */
    uint8_t chunker;    /* chunked: CAIRN_CDC_CHUNKER_GEAR (any non-zero) */
    cairn_cdc_params params; /* chunked: how the value was cut */
    size_t nchunks;     /* single: 1 */
    cairn_blob_chunk *chunks; /* decode: malloc'ed (cairn_blob_ref_clear);
                                 encode: the caller's */
} cairn_blob_ref;

/* Bytes the encoding of r takes, or 0 if r is not valid. */
size_t cairn_blob_ref_size(const cairn_blob_ref *r);

/* Encode r into out[0, cap); *len gets the bytes written. CAIRN_EINVAL if
 * r is not valid or cap is too small. */
int cairn_blob_ref_encode(const cairn_blob_ref *r, uint8_t *out, size_t cap,
                          size_t *len);

/* Decode p[0, len) into *r (r->chunks malloc'ed: free with
 * cairn_blob_ref_clear, also after an error). CAIRN_ECORRUPT for anything
 * malformed, CAIRN_ENOMEM. */
int cairn_blob_ref_decode(const uint8_t *p, size_t len, cairn_blob_ref *r);

/* Free what decode allocated and zero r. */
void cairn_blob_ref_clear(cairn_blob_ref *r);

#endif /* CAIRN_BLOB_REF_H */
