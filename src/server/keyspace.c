/*
 * keyspace.c — Redis keys over Cairn keys (docs/format/keyspace.md). See
 * keyspace.h for the invariants. Locking: none of its own; the GET
 * read-ahead is per thread (thread-local), used by the pass that made it.
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

/* The read-ahead (ks_read_ahead): per thread, used only by the outermost
 * pass (depth 1: a pass run from inside another never sees the outer
 * one's values). Keys are stored with their record prefix. */
typedef struct ks_ahead {
    size_t n, next;
    uint8_t keys[KS_AHEAD_MAX][KS_AHEAD_KEY + 1];
    const void *kp[KS_AHEAD_MAX];
    size_t lens[KS_AHEAD_MAX];
    void *vals[KS_AHEAD_MAX];
    size_t vlens[KS_AHEAD_MAX];
    int rcs[KS_AHEAD_MAX];
} ks_ahead;

static _Thread_local ks_ahead *ahead;
static _Thread_local int ahead_depth;

static void ahead_drop(void)
{
    if (!ahead)
        return;
    for (size_t i = ahead->next; i < ahead->n; i++)
        free(ahead->vals[i]);
    ahead->n = ahead->next = 0;
}

void ks_pass_begin(void)
{
    ahead_depth++;
}

void ks_pass_end(void)
{
    if (--ahead_depth == 0)
        ahead_drop();
}

void ks_read_ahead(cairn_db *db, const uint8_t *const *keys,
                   const size_t *lens, size_t n)
{
    if (ahead_depth != 1 || n < 2)
        return;
    if (!ahead && !(ahead = calloc(1, sizeof *ahead)))
        return; /* no read-ahead: each GET reads for itself */
    ahead_drop();
    if (n > KS_AHEAD_MAX)
        n = KS_AHEAD_MAX;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > KS_AHEAD_KEY)
            continue; /* read when its GET runs */
        ahead->keys[m][0] = KS_DATA;
        if (lens[i])
            memcpy(ahead->keys[m] + 1, keys[i], lens[i]);
        ahead->kp[m] = ahead->keys[m];
        ahead->lens[m] = lens[i] + 1;
        m++;
    }
    if (m < 2 || cairn_get_many(db, m, ahead->kp, ahead->lens, ahead->vals,
                                ahead->vlens, ahead->rcs) != 0)
        return;
    ahead->n = m;
}

/* The value read ahead for (prefixed) key k, if any: 1 (*rc, *v, *vlen
 * taken), 0 none. Takes them in order; entries before a match (GETs that
 * did not get to read, refused by ACL say) are dropped. */
static int ahead_take(const ks_key *k, int *rc, void **v, size_t *vlen)
{
    if (!ahead || ahead_depth != 1)
        return 0;
    for (size_t i = ahead->next; i < ahead->n; i++) {
        if (ahead->lens[i] != k->len ||
            memcmp(ahead->keys[i], k->p, k->len) != 0)
            continue;
        for (size_t j = ahead->next; j < i; j++)
            free(ahead->vals[j]);
        *rc = ahead->rcs[i];
        *v = ahead->vals[i];
        *vlen = ahead->vlens[i];
        ahead->next = i + 1;
        return 1;
    }
    return 0;
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
    if (txn)
        rc = cairn_txn_get(txn, k.p, k.len, &v, &vlen);
    else if (!ahead_take(&k, &rc, &v, &vlen))
        rc = cairn_get(db, k.p, k.len, &v, &vlen);
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
    if (klen > KS_KEY_MAX)
        return CAIRN_ETOOLARGE;
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
