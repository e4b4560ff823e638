/*
 * keyspace.c — Redis keys over Cairn keys (docs/format/keyspace.md). See
 * keyspace.h for the invariants. Locking: none of its own.
 */
#include "server/keyspace.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "util/coding.h"

int ks_key_make(ks_key *k, const void *key, size_t klen)
{
    k->len = klen + 1;
    if (k->len <= sizeof k->inl) {
        k->p = k->inl;
    } else {
        k->p = malloc(k->len);
        if (!k->p)
            return CAIRN_ENOMEM;
    }
    k->p[0] = KS_DATA;
    if (klen)
        memcpy(k->p + 1, key, klen);
    return 0;
}

void ks_key_free(ks_key *k)
{
    if (k->p && k->p != k->inl)
        free(k->p);
    k->p = NULL;
}

void ks_rec_free(ks_rec *r)
{
    cairn_free(r->buf);
    memset(r, 0, sizeof *r);
}

int ks_decode(const void *raw, size_t len, ks_rec *r)
{
    const uint8_t *p = raw;
    if (len < 2 || (p[1] & ~KS_FLAG_EXPIRY) != 0)
        return CAIRN_ECORRUPT;
    size_t hdr = 2;
    r->expiry_ms = 0;
    if (p[1] & KS_FLAG_EXPIRY) {
        if (len < 10)
            return CAIRN_ECORRUPT;
        r->expiry_ms = cairn_get_u64(p + 2);
        hdr = 10;
    }
    r->type = p[0];
    r->payload = p + hdr;
    r->plen = len - hdr;
    r->found = true;
    return 0;
}

uint8_t *ks_encode(int type, uint64_t expiry_ms, const void *payload,
                   size_t plen, size_t *outlen)
{
    size_t hdr = expiry_ms ? 10 : 2;
    uint8_t *p = malloc(hdr + plen + 1);
    if (!p)
        return NULL;
    p[0] = (uint8_t)type;
    p[1] = expiry_ms ? KS_FLAG_EXPIRY : 0;
    if (expiry_ms)
        cairn_put_u64(p + 2, expiry_ms);
    if (plen)
        memcpy(p + hdr, payload, plen);
    *outlen = hdr + plen;
    return p;
}

uint64_t ks_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

void ks_prefetch(cairn_db *db, const void *key, size_t klen)
{
    uint8_t k[256]; /* longer keys are not hinted: not worth an allocation */
    if (klen >= sizeof k)
        return;
    k[0] = KS_DATA;
    if (klen)
        memcpy(k + 1, key, klen);
    cairn_prefetch(db, k, klen + 1);
}

int ks_get(cairn_db *db, cairn_txn *txn, const void *key, size_t klen,
           uint64_t now_ms, ks_rec *r)
{
    memset(r, 0, sizeof *r);
    ks_key k;
    int rc = ks_key_make(&k, key, klen);
    if (rc)
        return rc;
    void *v = NULL;
    size_t vlen = 0;
    rc = txn ? cairn_txn_get(txn, k.p, k.len, &v, &vlen)
             : cairn_get(db, k.p, k.len, &v, &vlen);
    ks_key_free(&k);
    if (rc == CAIRN_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    r->buf = v;
    rc = ks_decode(v, vlen, r);
    if (rc) {
        ks_rec_free(r);
        return rc;
    }
    if (r->expiry_ms && r->expiry_ms <= now_ms) {
        ks_rec_free(r); /* expired: gone, whether swept yet or not */
        return 0;
    }
    return 0;
}

uint8_t *ks_expiry_key(uint64_t expiry_ms, const void *key, size_t klen,
                       size_t *outlen)
{
    uint8_t *p = malloc(9 + klen);
    if (!p)
        return NULL;
    p[0] = KS_EXPIRY;
    for (int i = 0; i < 8; i++)
        p[1 + i] = (uint8_t)(expiry_ms >> (56 - 8 * i));
    if (klen)
        memcpy(p + 9, key, klen);
    *outlen = 9 + klen;
    return p;
}

/* The writes of a put: the record under its data key, then the expiry
 * hint when there is an expiry. */
typedef struct ks_writes {
    ks_key k;
    uint8_t *rec, *ek;
    cairn_write w[2];
    size_t n;
} ks_writes;

static void ks_writes_free(ks_writes *ws)
{
    ks_key_free(&ws->k);
    free(ws->rec);
    free(ws->ek);
}

static int ks_writes_make(ks_writes *ws, const void *key, size_t klen,
                          int type, uint64_t expiry_ms, const void *payload,
                          size_t plen)
{
    memset(ws, 0, sizeof *ws);
    size_t rlen = 0, elen = 0;
    int rc = ks_key_make(&ws->k, key, klen);
    if (rc == 0)
        ws->rec = ks_encode(type, expiry_ms, payload, plen, &rlen);
    if (rc == 0 && expiry_ms)
        ws->ek = ks_expiry_key(expiry_ms, key, klen, &elen);
    if (rc == 0 && (!ws->rec || (expiry_ms && !ws->ek)))
        rc = CAIRN_ENOMEM;
    if (rc) {
        ks_writes_free(ws);
        memset(ws, 0, sizeof *ws); /* freeing it again is harmless */
        return rc;
    }
    ws->w[0] = (cairn_write){ws->k.p, ws->k.len, ws->rec, rlen};
    ws->w[1] = (cairn_write){ws->ek, elen, "", 0};
    ws->n = ws->ek ? 2 : 1;
    return 0;
}

int ks_put(cairn_txn *txn, const void *key, size_t klen, int type,
           uint64_t expiry_ms, const void *payload, size_t plen)
{
    ks_writes ws;
    int rc = ks_writes_make(&ws, key, klen, type, expiry_ms, payload, plen);
    for (size_t i = 0; rc == 0 && i < ws.n; i++)
        rc = cairn_txn_put(txn, ws.w[i].key, ws.w[i].klen, ws.w[i].val,
                           ws.w[i].vlen);
    ks_writes_free(&ws);
    return rc;
}

int ks_put_blind(cairn_db *db, const void *key, size_t klen, int type,
                 uint64_t expiry_ms, const void *payload, size_t plen,
                 uint64_t *version)
{
    ks_writes ws;
    int rc = ks_writes_make(&ws, key, klen, type, expiry_ms, payload, plen);
    if (rc == 0)
        rc = cairn_write_batch(db, ws.w, ws.n, version);
    ks_writes_free(&ws);
    return rc;
}

int ks_del(cairn_txn *txn, const void *key, size_t klen)
{
    ks_key k;
    int rc = ks_key_make(&k, key, klen);
    if (rc)
        return rc;
    rc = cairn_txn_delete(txn, k.p, k.len);
    ks_key_free(&k);
    return rc;
}
