/*
 * fuzz_ts_filter.c — fuzz target for time-series labels and FILTER
 * expressions (src/ts/labels.c). The input is used twice:
 *   - as an encoded label set: decoding fails with CAIRN_ECORRUPT or gives
 *     a set that re-encodes to exactly the input;
 *   - as text, split into lines at '\n': the lines before the first empty
 *     line are filter expressions, the lines after it labels (name before
 *     the line's first '=', value after; invalid ones and repeated names
 *     are left out). Parsing never crashes; it fails with a message, or
 *     compiles a filter that has an l=v or l=(...) and whose every match
 *     agrees with a plain reference reading of the same expressions. The
 *     label set round-trips through its encoding, and a label index
 *     holding the set and each set with one label dropped answers exactly
 *     the series the filter matches.
 * Locking: single-threaded.
 */
#include <stdbool.h>
#include <string.h>

#include "cairn.h"
#include "fuzz_common.h"
#include "ts/labels.h"

#define MAX_LINES 64

typedef struct span {
    const char *p;
    size_t len;
} span;

static bool span_eq(span a, const char *p, size_t len)
{
    return a.len == len && (len == 0 || memcmp(a.p, p, len) == 0);
}

/* The value of label name in pairs (a plain scan), or NULL. */
static const span *ref_find(const span (*pairs)[2], size_t n, span name)
{
    for (size_t i = 0; i < n; i++)
        if (span_eq(pairs[i][0], name.p, name.len))
            return &pairs[i][1];
    return NULL;
}

/* Whether value v is in the list "a,b,c" (body of the parentheses). */
static bool ref_in_list(const char *body, size_t blen, const span *v)
{
    size_t start = 0;
    for (size_t i = 0; i <= blen; i++) {
        if (i < blen && body[i] != ',')
            continue;
        if (span_eq(*v, body + start, i - start))
            return true;
        start = i + 1;
    }
    return false;
}

/* The reference reading of one (valid) expression on the pairs. */
static bool ref_match(span e, const span (*pairs)[2], size_t n)
{
    const char *eq = memchr(e.p, '=', e.len);
    FUZZ_CHECK(eq != NULL);
    bool neg = eq > e.p && eq[-1] == '!';
    span name = {e.p, (size_t)(eq - e.p) - (neg ? 1 : 0)};
    const char *r = eq + 1;
    size_t rlen = e.len - (size_t)(r - e.p);
    const span *v = ref_find(pairs, n, name);
    if (rlen == 0)
        return neg ? v != NULL : v == NULL;
    bool hit;
    if (r[0] == '(')
        hit = v && ref_in_list(r + 1, rlen - 2, v);
    else
        hit = v && span_eq(*v, r, rlen);
    return neg ? !hit : hit;
}

static bool ref_positive(span e)
{
    const char *eq = memchr(e.p, '=', e.len);
    return eq && !(eq > e.p && eq[-1] == '!') && (size_t)(eq - e.p) + 1 < e.len;
}

static void check_decode(const uint8_t *data, size_t size)
{
    cairn_ts_labels *l = NULL;
    int rc = cairn_ts_labels_decode(data, size, &l);
    if (rc != 0) {
        FUZZ_CHECK(rc == CAIRN_ECORRUPT || rc == CAIRN_ENOMEM);
        return;
    }
    uint8_t *b = NULL;
    size_t len = 0;
    FUZZ_CHECK(cairn_ts_labels_encode(l, &b, &len) == 0);
    FUZZ_CHECK(len == size && memcmp(b, data, size) == 0);
    free(b);
    cairn_ts_labels_free(l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_decode(data, size);

    /* lines */
    span exprs[MAX_LINES];
    span pairs[MAX_LINES][2];
    size_t ne = 0, np = 0;
    bool in_labels = false;
    const char *t = (const char *)data;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i < size && t[i] != '\n')
            continue;
        span line = {t + start, i - start};
        start = i + 1;
        if (!in_labels) {
            if (line.len == 0 && i < size)
                in_labels = true;
            else if (ne < MAX_LINES && (i < size || line.len))
                exprs[ne++] = line;
            continue;
        }
        const char *eq = memchr(line.p, '=', line.len);
        if (!eq || np >= MAX_LINES)
            continue;
        span nm = {line.p, (size_t)(eq - line.p)};
        span v = {eq + 1, line.len - nm.len - 1};
        if (!cairn_ts_label_name_valid(nm.p, nm.len) ||
            !cairn_ts_label_value_valid(v.p, v.len) ||
            ref_find((const span(*)[2])pairs, np, nm))
            continue;
        pairs[np][0] = nm;
        pairs[np][1] = v;
        np++;
    }

    /* the label set and its encoding */
    cairn_ts_label lp[MAX_LINES];
    for (size_t i = 0; i < np; i++) {
        lp[i].name.p = pairs[i][0].p;
        lp[i].name.len = pairs[i][0].len;
        lp[i].value.p = pairs[i][1].p;
        lp[i].value.len = pairs[i][1].len;
    }
    cairn_ts_labels *l = NULL;
    int rc = cairn_ts_labels_new(lp, np, &l);
    if (rc == CAIRN_ENOMEM)
        return 0;
    FUZZ_CHECK(rc == 0 && l->n == np);
    for (size_t i = 0; i < np; i++) {
        const cairn_ts_label *f =
            cairn_ts_labels_find(l, pairs[i][0].p, pairs[i][0].len);
        FUZZ_CHECK(f && f->value.len == pairs[i][1].len &&
                   memcmp(f->value.p, pairs[i][1].p, f->value.len) == 0);
    }
    uint8_t *enc = NULL;
    size_t elen = 0;
    FUZZ_CHECK(cairn_ts_labels_encode(l, &enc, &elen) == 0);
    cairn_ts_labels *d = NULL;
    FUZZ_CHECK(cairn_ts_labels_decode(enc, elen, &d) == 0 && d->n == l->n);
    free(enc);
    cairn_ts_labels_free(d);

    /* the filter */
    const char *ep[MAX_LINES];
    size_t el[MAX_LINES];
    for (size_t i = 0; i < ne; i++) {
        ep[i] = exprs[i].p;
        el[i] = exprs[i].len;
    }
    cairn_ts_filter *f = NULL;
    char err[200];
    rc = cairn_ts_filter_parse(ep, el, ne, &f, err, sizeof err);
    if (rc != 0) {
        FUZZ_CHECK(rc == CAIRN_EINVAL || rc == CAIRN_ENOMEM);
        FUZZ_CHECK(rc == CAIRN_ENOMEM || (err[0] != '\0' && !strchr(err, '\n')));
        cairn_ts_labels_free(l);
        return 0;
    }
    FUZZ_CHECK(f->n == ne);
    bool positive = false;
    for (size_t i = 0; i < ne; i++)
        positive |= ref_positive(exprs[i]);
    FUZZ_CHECK(positive);

    /* series 0: every pair; series i: pair i-1 left out */
    cairn_ts_index *ix = NULL;
    if (cairn_ts_index_new(&ix) != 0)
        goto out;
    bool want[MAX_LINES + 1];
    size_t nseries = np < 8 ? np + 1 : 9;
    for (size_t s = 0; s < nseries; s++) {
        span sub[MAX_LINES][2];
        size_t ns = 0;
        for (size_t i = 0; i < np; i++)
            if (s == 0 || i != s - 1) {
                sub[ns][0] = pairs[i][0];
                sub[ns][1] = pairs[i][1];
                ns++;
            }
        bool ref = true;
        for (size_t i = 0; i < ne && ref; i++)
            ref = ref_match(exprs[i], (const span(*)[2])sub, ns);
        want[s] = ref;
        cairn_ts_label sl[MAX_LINES];
        for (size_t i = 0; i < ns; i++) {
            sl[i].name.p = sub[i][0].p;
            sl[i].name.len = sub[i][0].len;
            sl[i].value.p = sub[i][1].p;
            sl[i].value.len = sub[i][1].len;
        }
        cairn_ts_labels *sls = NULL;
        if (cairn_ts_labels_new(sl, ns, &sls) != 0)
            goto out;
        FUZZ_CHECK(cairn_ts_filter_match(f, sls) == ref);
        rc = cairn_ts_index_add(ix, s * 1000003u, sls);
        cairn_ts_labels_free(sls);
        if (rc != 0)
            goto out;
    }
    uint64_t *ids = NULL;
    size_t nids = 0;
    if (cairn_ts_index_query(ix, f, &ids, &nids) == 0) {
        size_t k = 0;
        for (size_t s = 0; s < nseries; s++)
            if (want[s]) {
                FUZZ_CHECK(k < nids && ids[k] == s * 1000003u);
                k++;
            }
        FUZZ_CHECK(k == nids);
        free(ids);
    }
out:
    cairn_ts_index_free(ix);
    cairn_ts_filter_free(f);
    cairn_ts_labels_free(l);
    return 0;
}
