/*
 * keyspace.h — how cairn-server lays Redis keys, values and expiry times
 * over Cairn keys (docs/format/keyspace.md): data keys (0x01 | key) holding
 * value records (type, flags, optional expiry, payload) and expiry index
 * hints (0x02 | expiry ms BE | key).
 *
 * Invariants: a record is decoded only after its header is checked; an
 * expired record reads as missing everywhere (ks_get applies `now`).
 * Locking: none; a ks_key / ks_rec is owned by one thread; the functions
 * call the thread-safe public API (a transaction is used by one thread).
 */
#ifndef CAIRN_SERVER_KEYSPACE_H
#define CAIRN_SERVER_KEYSPACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

#define KS_DATA 0x01
#define KS_EXPIRY 0x02

/* The longest key a command may write: its expiry hint (KS_EXPIRY, 8
 * bytes of time, the key) must fit the engine's largest key (65,536 bytes
 * by default), so that any key written can be given a time to live. Longer
 * ones are refused (CAIRN_ETOOLARGE) before anything is written. */
#define KS_KEY_MAX (65536 - 9)

#define KS_TYPE_STRING 1
#define KS_TYPE_TS 2 /* a time series (docs/format/ts.md) */
#define KS_FLAG_EXPIRY 0x01

/* A data key (0x01 | key) built in a small inline buffer or on the heap. */
typedef struct ks_key {
    uint8_t *p;
    size_t len;
    uint8_t inl[64];
} ks_key;

int ks_key_make(ks_key *k, const void *key, size_t klen);
void ks_key_free(ks_key *k);

/* A decoded record. `buf` owns the bytes (from cairn_get / cairn_txn_get);
 * payload points into it. */
typedef struct ks_rec {
    bool found;
    int type;
    uint64_t expiry_ms; /* 0: none */
    const uint8_t *payload;
    size_t plen;
    void *buf;
} ks_rec;

void ks_rec_free(ks_rec *r);

/* Decode raw record bytes: 0, or CAIRN_ECORRUPT. */
int ks_decode(const void *raw, size_t len, ks_rec *r);

/* Encode type/expiry/payload into a malloc'ed record; NULL on ENOMEM. */
uint8_t *ks_encode(int type, uint64_t expiry_ms, const void *payload,
                   size_t plen, size_t *outlen);

/* Milliseconds since the Unix epoch. */
uint64_t ks_now_ms(void);

/* Read-ahead of a run of pipelined GETs. Within a pass (ks_pass_begin ..
 * ks_pass_end, on one thread; nested passes do not read ahead nor see the
 * outer pass's values), ks_read_ahead reads up to KS_AHEAD_MAX records
 * (keys up to KS_AHEAD_KEY bytes) together with cairn_get_many, at one
 * snapshot taken then; each ks_get without a transaction whose key comes
 * next (or later) among them takes its value instead of reading. The
 * caller reads ahead only keys whose GETs run in this pass, with no write
 * of this client before them; a value taken is as of the read-ahead,
 * within the GET's own request-to-reply interval. ks_pass_end frees what
 * was not taken. */
#define KS_AHEAD_MAX 32
#define KS_AHEAD_KEY 255
void ks_pass_begin(void);
void ks_pass_end(void);
void ks_read_ahead(cairn_db *db, const uint8_t *const *keys,
                   const size_t *lens, size_t n);

/* Read key's record (txn NULL: the database now). Missing or expired
 * (expiry <= now_ms): r->found false, returns 0. Errors: negative codes. */
int ks_get(cairn_db *db, cairn_txn *txn, const void *key, size_t klen,
           uint64_t now_ms, ks_rec *r);

/* Write key's record in txn, and the expiry hint when expiry_ms != 0. */
int ks_put(cairn_txn *txn, const void *key, size_t klen, int type,
           uint64_t expiry_ms, const void *payload, size_t plen);

/* The same as one auto-commit write (cairn_write_batch): no read, never a
 * conflict. *version (may be NULL) receives the commit version. */
int ks_put_blind(cairn_db *db, const void *key, size_t klen, int type,
                 uint64_t expiry_ms, const void *payload, size_t plen,
                 uint64_t *version);

/* Delete key's record in txn. */
int ks_del(cairn_txn *txn, const void *key, size_t klen);

/* The expiry index key for (expiry_ms, key), malloc'ed. */
uint8_t *ks_expiry_key(uint64_t expiry_ms, const void *key, size_t klen,
                       size_t *outlen);

#endif /* CAIRN_SERVER_KEYSPACE_H */
