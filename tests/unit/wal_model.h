/*
 * wal_model.h — test-side model of a WAL: what was appended (LSN, length,
 * payload seed, type, acknowledged or failed) and a replay collector, so a
 * test can check that recovery returns exactly an acknowledged-complete
 * prefix with identical bytes. Header-only, used by the WAL tests.
 *
 * Locking: wal_model_add/ack are guarded by the model's mutex so writer
 * threads may share one model.
 */
#ifndef CAIRN_WAL_MODEL_H
#define CAIRN_WAL_MODEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "cairn.h"
#include "test_util.h"
#include "wal/wal.h"

typedef struct wm_rec {
    uint64_t lsn;
    uint64_t seed;
    uint32_t len;
    uint8_t type;
    int8_t state; /* 0 unknown, 1 acknowledged, -1 failed */
} wm_rec;

typedef struct wal_model {
    pthread_mutex_t mu;
    wm_rec *v;
    size_t n, cap;
} wal_model;

static inline void wm_init(wal_model *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

static inline void wm_free(wal_model *m)
{
    free(m->v);
    pthread_mutex_destroy(&m->mu);
}

static inline void wm_add(wal_model *m, uint64_t lsn, uint64_t seed,
                          uint32_t len, uint8_t type, int state)
{
    pthread_mutex_lock(&m->mu);
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 256;
        m->v = realloc(m->v, m->cap * sizeof *m->v);
        if (!m->v) {
            fprintf(stderr, "wal_model: out of memory\n");
            exit(2);
        }
    }
    m->v[m->n++] = (wm_rec){lsn, seed, len, type, (int8_t)state};
    pthread_mutex_unlock(&m->mu);
}

static int wm_cmp(const void *a, const void *b)
{
    const wm_rec *x = a, *y = b;
    return x->lsn < y->lsn ? -1 : x->lsn > y->lsn;
}

/* Sort by LSN (after concurrent writers are done). */
static inline void wm_sort(wal_model *m)
{
    qsort(m->v, m->n, sizeof *m->v, wm_cmp);
}

static inline wm_rec *wm_find(wal_model *m, uint64_t lsn)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (m->v[mid].lsn < lsn)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < m->n && m->v[lo].lsn == lsn ? &m->v[lo] : NULL;
}

/* Replay collector: the LSNs seen, in order, and whether every record
 * matched the model's bytes. */
typedef struct wm_replay {
    wal_model *model;
    uint64_t *lsns;
    size_t n, cap;
    size_t mismatches;  /* content/type/length differs from the model */
    size_t unknown;     /* LSN the model never appended */
    size_t disorder;    /* LSN not greater than the previous one */
} wm_replay;

static inline int wm_replay_cb(void *arg, const cairn_wal_record *rec)
{
    wm_replay *r = arg;
    if (r->n && rec->lsn <= r->lsns[r->n - 1])
        r->disorder++;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->lsns = realloc(r->lsns, r->cap * sizeof *r->lsns);
        if (!r->lsns)
            return CAIRN_ENOMEM;
    }
    r->lsns[r->n++] = rec->lsn;
    if (!r->model)
        return 0;
    wm_rec *m = wm_find(r->model, rec->lsn);
    if (!m) {
        r->unknown++;
        return 0;
    }
    if (m->len != rec->len || m->type != rec->type ||
        !tu_check(rec->data, rec->len, m->seed))
        r->mismatches++;
    return 0;
}

static inline void wm_replay_reset(wm_replay *r, wal_model *m)
{
    free(r->lsns);
    memset(r, 0, sizeof *r);
    r->model = m;
}

/* Check a recovery against the model (model sorted):
 *  - no mismatching, unknown or out-of-order record;
 *  - every acknowledged record is present;
 *  - no failed record is present;
 *  - what is present is a prefix of the non-failed records in LSN order;
 *    with gaps_ok, records of unknown fate (state 0) may be missing from
 *    the middle too (a failed write is not on disk, later records are).
 * Returns NULL if all holds, else a static description. */
static inline const char *wm_verify_ex(wal_model *m, wm_replay *r,
                                       bool gaps_ok)
{
    static char why[256];
    if (r->mismatches)
        return "a recovered record differs from what was written";
    if (r->unknown)
        return "recovered a record that was never appended";
    if (r->disorder)
        return "records recovered out of LSN order";
    size_t j = 0;
    size_t i = 0;
    for (; i < m->n && j < r->n; i++) {
        if (m->v[i].state == -1) {
            if (m->v[i].lsn == r->lsns[j]) {
                snprintf(why, sizeof why, "failed record %llu recovered",
                         (unsigned long long)m->v[i].lsn);
                return why;
            }
            continue;
        }
        if (gaps_ok && m->v[i].state == 0 && m->v[i].lsn != r->lsns[j])
            continue;
        if (m->v[i].lsn != r->lsns[j]) {
            snprintf(why, sizeof why,
                     "recovered log is not a prefix: expected LSN %llu, got "
                     "%llu",
                     (unsigned long long)m->v[i].lsn,
                     (unsigned long long)r->lsns[j]);
            return why;
        }
        j++;
    }
    if (j < r->n)
        return "recovered more records than were appended";
    for (; i < m->n; i++) {
        if (m->v[i].state == 1) {
            snprintf(why, sizeof why,
                     "acknowledged record %llu lost (recovered %zu records)",
                     (unsigned long long)m->v[i].lsn, r->n);
            return why;
        }
    }
    return NULL;
}

static inline const char *wm_verify(wal_model *m, wm_replay *r)
{
    return wm_verify_ex(m, r, false);
}

#endif /* CAIRN_WAL_MODEL_H */
