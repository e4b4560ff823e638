/*
 * labels.h — time-series labels (name=value pairs attached to a series),
 * the FILTER expressions of TS.MRANGE / TS.MREVRANGE / TS.MGET /
 * TS.QUERYINDEX, and an in-memory label index that answers them. No
 * storage: the label set's byte encoding (docs/format/ts.md, "Labels") is
 * what the series layer stores.
 *
 * Labels. A label set is sorted by name (bytewise, unsigned, a prefix
 * first) with unique names. A name is 1..CAIRN_TS_LABEL_MAX_LEN bytes
 * without '=', '!', '(', ')', ',' or NUL; a value is
 * 1..CAIRN_TS_LABEL_MAX_LEN bytes without '(', ')', ',' or NUL. Other
 * bytes, spaces included, are taken as they are. Stored names and values
 * are also NUL-terminated (the NUL is not part of the length).
 *
 * Filters. One expression per argument, bytes taken literally (no
 * quoting, escaping or trimming: the quotes in `x="y y"` are the client's
 * argument quoting). The expression splits at its first '='; a '!' just
 * before it makes the operator "!=". What follows the operator is empty
 * (absent / present), a list "(v1,v2,...)" ("()" is an empty list), or one
 * value. Meanings, as RedisTimeSeries documents them:
 *   l=v        l is present and equals v
 *   l!=v       l is absent or does not equal v
 *   l=         l is absent
 *   l!=        l is present
 *   l=(a,b)    l is present and equals one of the values
 *   l!=(a,b)   l is absent or equals none of the values
 * Expressions are conjunctive. At least one `l=v` or `l=(...)` is required
 * (`l!=` does not count). Errors say which expression and why.
 *
 * Index. (name, value) -> sorted ids of the series holding that label,
 * plus each series' labels. A query takes the positive matchers (`l=v`,
 * `l=(...)`), smallest candidate set first, intersects them, then checks
 * the other matchers on each candidate's labels.
 *
 * Invariants: a cairn_ts_labels is immutable once built and always valid
 * (builders and the decoder refuse everything else); decoding never reads
 * outside its input and any damage is CAIRN_ECORRUPT; a query answers
 * exactly the series whose labels cairn_ts_filter_match accepts. No
 * function aborts on bad input.
 * Locking: none inside. Label sets and compiled filters are immutable and
 * may be shared between threads. An index is caller-locked: its
 * functions may run concurrently only if none of them is add or remove
 * (a reader-writer lock around it does).
 */
#ifndef CAIRN_TS_LABELS_H
#define CAIRN_TS_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn.h"

#define CAIRN_TS_LABEL_MAX_LEN 65535u /* bytes of a name or a value */
#define CAIRN_TS_LABELS_MAX 65535u    /* labels of one series */
#define CAIRN_TS_LABELS_VERSION 1u    /* first byte of the encoding */

/* A name or value: bytes, not NUL-terminated in caller input. */
/* cairn_ts_str and cairn_ts_label are in cairn.h. */

/* Read-only for callers: n labels in v[], sorted by name. */
typedef struct cairn_ts_labels {
    size_t n;
    cairn_ts_label *v;
} cairn_ts_labels;

bool cairn_ts_label_name_valid(const void *p, size_t len);
bool cairn_ts_label_value_valid(const void *p, size_t len);

/* Build a label set from n pairs in any order (copied). CAIRN_EINVAL on a
 * bad name or value, a duplicate name, or more than CAIRN_TS_LABELS_MAX
 * pairs; CAIRN_ENOMEM. n may be 0. */
int cairn_ts_labels_new(const cairn_ts_label *pairs, size_t n,
                        cairn_ts_labels **out);
int cairn_ts_labels_dup(const cairn_ts_labels *l, cairn_ts_labels **out);
void cairn_ts_labels_free(cairn_ts_labels *l);

/* The label named name, or NULL. */
const cairn_ts_label *cairn_ts_labels_find(const cairn_ts_labels *l,
                                           const void *name, size_t len);

/* Encoding (docs/format/ts.md, "Labels"): malloc'ed bytes, free with
 * free(). CAIRN_ENOMEM. Equal sets encode to equal bytes. */
int cairn_ts_labels_encode(const cairn_ts_labels *l, uint8_t **out,
                           size_t *len);
/* CAIRN_ECORRUPT on any damage, an unknown version byte included (as
 * with chunks); CAIRN_ENOMEM. A set that decodes re-encodes to the same
 * bytes. */
int cairn_ts_labels_decode(const uint8_t *buf, size_t len,
                           cairn_ts_labels **out);

/* ---- filters ---- */

typedef enum cairn_ts_match_kind {
    CAIRN_TS_MATCH_EQ = 1,   /* l=v */
    CAIRN_TS_MATCH_NEQ,      /* l!=v */
    CAIRN_TS_MATCH_ABSENT,   /* l= */
    CAIRN_TS_MATCH_PRESENT,  /* l!= */
    CAIRN_TS_MATCH_IN,       /* l=(v,...) */
    CAIRN_TS_MATCH_NOT_IN,   /* l!=(v,...) */
} cairn_ts_match_kind;

/* values: for EQ and NEQ one value, for IN and NOT_IN the list sorted and
 * without duplicates (possibly empty), otherwise none. */
typedef struct cairn_ts_matcher {
    cairn_ts_match_kind kind;
    cairn_ts_str name;
    size_t nvalues;
    cairn_ts_str *values;
} cairn_ts_matcher;

/* Read-only for callers: the matchers in the order given. */
typedef struct cairn_ts_filter {
    size_t n;
    cairn_ts_matcher *m;
    char *buf; /* owns the bytes the matchers point into */
} cairn_ts_filter;

/* Compile n expressions (exprs[i] is lens[i] bytes). On error returns
 * CAIRN_EINVAL and writes a one-line message into err (errlen bytes, may
 * be 0): "missing labels for filter argument" (n == 0), "failed parsing
 * labels: ..." naming the expression and the fault, or "please provide at
 * least one matcher ..." (no l=v nor l=(...)). CAIRN_ENOMEM. */
int cairn_ts_filter_parse(const char *const *exprs, const size_t *lens,
                          size_t n, cairn_ts_filter **out, char *err,
                          size_t errlen);
void cairn_ts_filter_free(cairn_ts_filter *f);

bool cairn_ts_filter_match(const cairn_ts_filter *f,
                           const cairn_ts_labels *l);

/* ---- the label index ---- */

typedef struct cairn_ts_index cairn_ts_index;

int cairn_ts_index_new(cairn_ts_index **out);
void cairn_ts_index_free(cairn_ts_index *ix);

/* Index series id with labels l (copied). CAIRN_EEXIST if id is indexed;
 * CAIRN_ENOMEM (the index is unchanged). */
int cairn_ts_index_add(cairn_ts_index *ix, uint64_t id,
                       const cairn_ts_labels *l);
/* CAIRN_ENOTFOUND if id is not indexed. Never fails otherwise. */
int cairn_ts_index_remove(cairn_ts_index *ix, uint64_t id);

/* The labels id was added with (owned by the index, valid until it is
 * removed), or NULL. */
const cairn_ts_labels *cairn_ts_index_labels(const cairn_ts_index *ix,
                                             uint64_t id);
size_t cairn_ts_index_count(const cairn_ts_index *ix);

/* The ids of the series f matches, ascending (malloc'ed, free with
 * free(); NULL when *n is 0). CAIRN_ENOMEM. */
int cairn_ts_index_query(const cairn_ts_index *ix, const cairn_ts_filter *f,
                         uint64_t **ids, size_t *n);

/* Every value label `name` has on some series, ascending (for GROUPBY).
 * *vals is malloc'ed (free with free(); NULL when *n is 0); its strings
 * belong to the index and stay valid until the next add or remove.
 * CAIRN_ENOMEM. */
int cairn_ts_index_label_values(const cairn_ts_index *ix, const void *name,
                                size_t len, cairn_ts_str **vals, size_t *n);

#endif /* CAIRN_TS_LABELS_H */
