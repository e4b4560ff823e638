/*
 * labels.c — label sets, their encoding, FILTER expressions and the label
 * index (labels.h says what each means).
 *
 * Invariants: a cairn_ts_labels is one allocation (the struct, its label
 * array, then every name and value NUL-terminated) and is valid by
 * construction. The index keeps, for each label name, a table of its
 * values, and for each (name, value) a posting: the ids of the series
 * with that label, strictly ascending and never empty (an emptied posting
 * is dropped, and so is a name left without values). The hash tables use
 * linear probing with backward-shift deletion (no tombstones). A series'
 * labels are in exactly the postings its labels name.
 * Locking: none (labels.h: the index is caller-locked).
 */
#include "ts/labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cairn.h"
#include "util/coding.h"

/* ---- strings ---- */

static int str_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t m = al < bl ? al : bl;
    int c = m ? memcmp(a, b, m) : 0;
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

/* The first byte of p that a name (or a value) may not hold, or -1. */
static int bad_name_byte(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (c == '=' || c == '!' || c == '(' || c == ')' || c == ',' ||
            c == 0)
            return c;
    }
    return -1;
}

static int bad_value_byte(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i];
        if (c == '(' || c == ')' || c == ',' || c == 0)
            return c;
    }
    return -1;
}

bool cairn_ts_label_name_valid(const void *p, size_t len)
{
    return len >= 1 && len <= CAIRN_TS_LABEL_MAX_LEN && p &&
           bad_name_byte(p, len) < 0;
}

bool cairn_ts_label_value_valid(const void *p, size_t len)
{
    return len >= 1 && len <= CAIRN_TS_LABEL_MAX_LEN && p &&
           bad_value_byte(p, len) < 0;
}

/* ---- label sets ---- */

static int label_cmp(const void *a, const void *b)
{
    const cairn_ts_label *x = a, *y = b;
    return str_cmp(x->name.p, x->name.len, y->name.p, y->name.len);
}

/* One allocation holding n labels copied from sorted, valid pairs. */
static cairn_ts_labels *labels_pack(const cairn_ts_label *sorted, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += sorted[i].name.len + sorted[i].value.len + 2;
    size_t head = sizeof(cairn_ts_labels) + n * sizeof(cairn_ts_label);
    cairn_ts_labels *l = malloc(head + bytes);
    if (!l)
        return NULL;
    l->n = n;
    l->v = (cairn_ts_label *)(l + 1);
    char *p = (char *)l + head;
    for (size_t i = 0; i < n; i++) {
        const cairn_ts_str *s[2] = {&sorted[i].name, &sorted[i].value};
        cairn_ts_str *d[2] = {&l->v[i].name, &l->v[i].value};
        for (int k = 0; k < 2; k++) {
            memcpy(p, s[k]->p, s[k]->len);
            p[s[k]->len] = '\0';
            d[k]->p = p;
            d[k]->len = s[k]->len;
            p += s[k]->len + 1;
        }
    }
    return l;
}

int cairn_ts_labels_new(const cairn_ts_label *pairs, size_t n,
                        cairn_ts_labels **out)
{
    if (!out || (n && !pairs) || n > CAIRN_TS_LABELS_MAX)
        return CAIRN_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!cairn_ts_label_name_valid(pairs[i].name.p, pairs[i].name.len) ||
            !cairn_ts_label_value_valid(pairs[i].value.p, pairs[i].value.len))
            return CAIRN_EINVAL;
    cairn_ts_label *tmp = NULL;
    if (n) {
        tmp = malloc(n * sizeof *tmp);
        if (!tmp)
            return CAIRN_ENOMEM;
        memcpy(tmp, pairs, n * sizeof *tmp);
        qsort(tmp, n, sizeof *tmp, label_cmp);
        for (size_t i = 1; i < n; i++)
            if (label_cmp(&tmp[i - 1], &tmp[i]) == 0) {
                free(tmp);
                return CAIRN_EINVAL;
            }
    }
    cairn_ts_labels *l = labels_pack(tmp, n);
    free(tmp);
    if (!l)
        return CAIRN_ENOMEM;
    *out = l;
    return 0;
}

int cairn_ts_labels_dup(const cairn_ts_labels *l, cairn_ts_labels **out)
{
    if (!l || !out)
        return CAIRN_EINVAL;
    cairn_ts_labels *c = labels_pack(l->v, l->n);
    if (!c)
        return CAIRN_ENOMEM;
    *out = c;
    return 0;
}

void cairn_ts_labels_free(cairn_ts_labels *l)
{
    free(l);
}

const cairn_ts_label *cairn_ts_labels_find(const cairn_ts_labels *l,
                                           const void *name, size_t len)
{
    if (!l || (len && !name))
        return NULL;
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = str_cmp(l->v[mid].name.p, l->v[mid].name.len, name, len);
        if (c == 0)
            return &l->v[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* ---- encoding (docs/format/ts.md, "Labels") ---- */

int cairn_ts_labels_encode(const cairn_ts_labels *l, uint8_t **out,
                           size_t *len)
{
    if (!l || !out || !len)
        return CAIRN_EINVAL;
    size_t size = 1 + cairn_varint_len(l->n);
    for (size_t i = 0; i < l->n; i++)
        size += cairn_varint_len(l->v[i].name.len) + l->v[i].name.len +
                cairn_varint_len(l->v[i].value.len) + l->v[i].value.len;
    uint8_t *b = malloc(size);
    if (!b)
        return CAIRN_ENOMEM;
    uint8_t *p = b;
    *p++ = CAIRN_TS_LABELS_VERSION;
    p += cairn_put_varint64(p, l->n);
    for (size_t i = 0; i < l->n; i++) {
        const cairn_ts_str *s[2] = {&l->v[i].name, &l->v[i].value};
        for (int k = 0; k < 2; k++) {
            p += cairn_put_varint64(p, s[k]->len);
            memcpy(p, s[k]->p, s[k]->len);
            p += s[k]->len;
        }
    }
    *out = b;
    *len = size;
    return 0;
}

/* A minimal (canonical) varint of at most 32 bits from [*p, end). */
static bool get_len(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    const uint8_t *q = cairn_get_varint32(*p, end, v);
    if (!q || (size_t)(q - *p) != cairn_varint_len(*v))
        return false;
    *p = q;
    return true;
}

int cairn_ts_labels_decode(const uint8_t *buf, size_t len,
                           cairn_ts_labels **out)
{
    if (!out || (len && !buf))
        return CAIRN_EINVAL;
    if (len < 2 || buf[0] != CAIRN_TS_LABELS_VERSION)
        return CAIRN_ECORRUPT;
    const uint8_t *p = buf + 1, *end = buf + len;
    uint32_t n;
    if (!get_len(&p, end, &n) || n > CAIRN_TS_LABELS_MAX)
        return CAIRN_ECORRUPT;
    /* every label takes at least 4 bytes: no allocation past the input */
    if (n > (size_t)(end - p) / 4)
        return CAIRN_ECORRUPT;
    cairn_ts_label *tmp = NULL;
    if (n) {
        tmp = malloc(n * sizeof *tmp);
        if (!tmp)
            return CAIRN_ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t nl, vl;
        if (!get_len(&p, end, &nl) || nl > (size_t)(end - p))
            goto corrupt;
        tmp[i].name.p = (const char *)p;
        tmp[i].name.len = nl;
        p += nl;
        if (!get_len(&p, end, &vl) || vl > (size_t)(end - p))
            goto corrupt;
        tmp[i].value.p = (const char *)p;
        tmp[i].value.len = vl;
        p += vl;
        if (!cairn_ts_label_name_valid(tmp[i].name.p, nl) ||
            !cairn_ts_label_value_valid(tmp[i].value.p, vl))
            goto corrupt;
        if (i > 0 && label_cmp(&tmp[i - 1], &tmp[i]) >= 0)
            goto corrupt; /* names strictly ascending */
    }
    if (p != end)
        goto corrupt;
    cairn_ts_labels *l = labels_pack(tmp, n);
    free(tmp);
    if (!l)
        return CAIRN_ENOMEM;
    *out = l;
    return 0;
corrupt:
    free(tmp);
    return CAIRN_ECORRUPT;
}

/* ---- filters ---- */

static void set_err(char *err, size_t errlen, const char *expr, size_t len,
                    const char *what)
{
    if (!err || errlen == 0)
        return;
    /* the expression, printable ASCII as is, the rest as \xNN, cut at 64 */
    char shown[64 * 4 + 8];
    size_t k = 0;
    for (size_t i = 0; i < len && i < 64; i++) {
        unsigned char c = (unsigned char)expr[i];
        if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
            shown[k++] = (char)c;
        else
            k += (size_t)snprintf(shown + k, sizeof shown - k, "\\x%02x", c);
    }
    if (len > 64)
        k += (size_t)snprintf(shown + k, sizeof shown - k, "...");
    shown[k] = '\0';
    snprintf(err, errlen, "failed parsing labels: \"%s\": %s", shown, what);
}

static void set_err_byte(char *err, size_t errlen, const char *expr,
                         size_t len, const char *where, int c)
{
    char what[96];
    if (c == 0)
        snprintf(what, sizeof what, "%s contains a NUL byte", where);
    else
        snprintf(what, sizeof what, "%s contains '%c'", where, c);
    set_err(err, errlen, expr, len, what);
}

static int value_cmp(const void *a, const void *b)
{
    const cairn_ts_str *x = a, *y = b;
    return str_cmp(x->p, x->len, y->p, y->len);
}

void cairn_ts_filter_free(cairn_ts_filter *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->m[i].values);
    free(f->m);
    free(f->buf);
    free(f);
}

/* Compile expression e (len bytes, a copy the filter owns) into m. */
static int parse_one(char *e, size_t len, cairn_ts_matcher *m, char *err,
                     size_t errlen)
{
    char *eq = memchr(e, '=', len);
    if (!eq) {
        set_err(err, errlen, e, len,
                "expected label=value, label!=value, label=, label!=, "
                "label=(v1,...) or label!=(v1,...)");
        return CAIRN_EINVAL;
    }
    bool neg = eq > e && eq[-1] == '!';
    size_t nlen = (size_t)(eq - e) - (neg ? 1 : 0);
    if (nlen == 0) {
        set_err(err, errlen, e, len, "empty label name");
        return CAIRN_EINVAL;
    }
    if (nlen > CAIRN_TS_LABEL_MAX_LEN) {
        set_err(err, errlen, e, len, "label name longer than 65535 bytes");
        return CAIRN_EINVAL;
    }
    int c = bad_name_byte((const uint8_t *)e, nlen);
    if (c >= 0) {
        set_err_byte(err, errlen, e, len, "label name", c);
        return CAIRN_EINVAL;
    }
    m->name.p = e;
    m->name.len = nlen;
    m->nvalues = 0;
    m->values = NULL;
    char *r = eq + 1;
    size_t rlen = len - (size_t)(r - e);
    if (rlen == 0) {
        m->kind = neg ? CAIRN_TS_MATCH_PRESENT : CAIRN_TS_MATCH_ABSENT;
        return 0;
    }
    if (r[0] != '(') {
        c = bad_value_byte((const uint8_t *)r, rlen);
        if (c >= 0) {
            set_err_byte(err, errlen, e, len, "value", c);
            return CAIRN_EINVAL;
        }
        if (rlen > CAIRN_TS_LABEL_MAX_LEN) {
            set_err(err, errlen, e, len, "value longer than 65535 bytes");
            return CAIRN_EINVAL;
        }
        m->values = malloc(sizeof *m->values);
        if (!m->values)
            return CAIRN_ENOMEM;
        m->values[0].p = r;
        m->values[0].len = rlen;
        m->nvalues = 1;
        m->kind = neg ? CAIRN_TS_MATCH_NEQ : CAIRN_TS_MATCH_EQ;
        return 0;
    }
    m->kind = neg ? CAIRN_TS_MATCH_NOT_IN : CAIRN_TS_MATCH_IN;
    if (rlen < 2 || r[rlen - 1] != ')') {
        set_err(err, errlen, e, len, "list without a closing ')'");
        return CAIRN_EINVAL;
    }
    char *body = r + 1;
    size_t blen = rlen - 2;
    if (blen == 0)
        return 0; /* "()": the empty list */
    size_t count = 1;
    for (size_t i = 0; i < blen; i++)
        if (body[i] == ',')
            count++;
    m->values = malloc(count * sizeof *m->values);
    if (!m->values)
        return CAIRN_ENOMEM;
    size_t start = 0;
    for (size_t i = 0; i <= blen; i++) {
        if (i < blen && body[i] != ',')
            continue;
        size_t vlen = i - start;
        if (vlen == 0) {
            set_err(err, errlen, e, len, "empty value in the list");
            return CAIRN_EINVAL;
        }
        c = bad_value_byte((const uint8_t *)body + start, vlen);
        if (c >= 0) {
            set_err_byte(err, errlen, e, len, "a value in the list", c);
            return CAIRN_EINVAL;
        }
        if (vlen > CAIRN_TS_LABEL_MAX_LEN) {
            set_err(err, errlen, e, len, "value longer than 65535 bytes");
            return CAIRN_EINVAL;
        }
        m->values[m->nvalues].p = body + start;
        m->values[m->nvalues].len = vlen;
        m->nvalues++;
        start = i + 1;
    }
    qsort(m->values, m->nvalues, sizeof *m->values, value_cmp);
    size_t k = 1;
    for (size_t i = 1; i < m->nvalues; i++)
        if (value_cmp(&m->values[k - 1], &m->values[i]) != 0)
            m->values[k++] = m->values[i];
    m->nvalues = k;
    return 0;
}

int cairn_ts_filter_parse(const char *const *exprs, const size_t *lens,
                          size_t n, cairn_ts_filter **out, char *err,
                          size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!out || (n && (!exprs || !lens)))
        return CAIRN_EINVAL;
    if (n == 0) {
        if (err && errlen)
            snprintf(err, errlen, "missing labels for filter argument");
        return CAIRN_EINVAL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] && !exprs[i])
            return CAIRN_EINVAL;
        if (lens[i] > SIZE_MAX / 2 - total)
            return CAIRN_ENOMEM;
        total += lens[i];
    }
    cairn_ts_filter *f = calloc(1, sizeof *f);
    if (!f)
        return CAIRN_ENOMEM;
    f->buf = malloc(total ? total : 1);
    f->m = calloc(n, sizeof *f->m);
    if (!f->buf || !f->m) {
        cairn_ts_filter_free(f);
        return CAIRN_ENOMEM;
    }
    char *p = f->buf;
    bool positive = false;
    for (size_t i = 0; i < n; i++) {
        if (lens[i])
            memcpy(p, exprs[i], lens[i]);
        f->n = i + 1; /* so that free sees this matcher's values */
        int rc = parse_one(p, lens[i], &f->m[i], err, errlen);
        if (rc) {
            cairn_ts_filter_free(f);
            return rc;
        }
        if (f->m[i].kind == CAIRN_TS_MATCH_EQ ||
            f->m[i].kind == CAIRN_TS_MATCH_IN)
            positive = true;
        p += lens[i];
    }
    if (!positive) {
        if (err && errlen)
            snprintf(err, errlen,
                     "please provide at least one matcher: label=value or "
                     "label=(value1,...)");
        cairn_ts_filter_free(f);
        return CAIRN_EINVAL;
    }
    *out = f;
    return 0;
}

static bool in_values(const cairn_ts_matcher *m, const cairn_ts_str *v)
{
    size_t lo = 0, hi = m->nvalues;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = value_cmp(&m->values[mid], v);
        if (c == 0)
            return true;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static bool matcher_match(const cairn_ts_matcher *m, const cairn_ts_labels *l)
{
    const cairn_ts_label *lab = cairn_ts_labels_find(l, m->name.p, m->name.len);
    switch (m->kind) {
    case CAIRN_TS_MATCH_EQ:
    case CAIRN_TS_MATCH_IN:
        return lab && in_values(m, &lab->value);
    case CAIRN_TS_MATCH_NEQ:
    case CAIRN_TS_MATCH_NOT_IN:
        return !lab || !in_values(m, &lab->value);
    case CAIRN_TS_MATCH_ABSENT:
        return !lab;
    case CAIRN_TS_MATCH_PRESENT:
        return lab != NULL;
    }
    return false;
}

bool cairn_ts_filter_match(const cairn_ts_filter *f, const cairn_ts_labels *l)
{
    if (!f || !l)
        return false;
    for (size_t i = 0; i < f->n; i++)
        if (!matcher_match(&f->m[i], l))
            return false;
    return true;
}

/* ---- hash tables: byte-string keys, linear probing ---- */

/* Every entry a table holds starts with its key. */
typedef struct hkey {
    const char *p;
    size_t len;
} hkey;

typedef struct hslot {
    uint64_t hash;
    hkey *ent; /* NULL: empty */
} hslot;

typedef struct htab {
    hslot *s;
    size_t cap, n; /* cap: 0 or a power of two */
} htab;

static uint64_t hash_bytes(const void *p, size_t len)
{
    return XXH3_64bits(p, len);
}

/* The slot holding key, or SIZE_MAX. */
static size_t ht_find(const htab *t, uint64_t h, const void *key, size_t len)
{
    if (t->n == 0)
        return SIZE_MAX;
    size_t mask = t->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const hslot *s = &t->s[i];
        if (!s->ent)
            return SIZE_MAX;
        if (s->hash == h && s->ent->len == len &&
            (len == 0 || memcmp(s->ent->p, key, len) == 0))
            return i;
    }
}

static void ht_place(hslot *s, size_t cap, uint64_t h, hkey *ent)
{
    size_t mask = cap - 1, i = h & mask;
    while (s[i].ent)
        i = (i + 1) & mask;
    s[i].hash = h;
    s[i].ent = ent;
}

/* Make room for one more entry. */
static int ht_reserve(htab *t)
{
    if ((t->n + 1) * 4 <= t->cap * 3)
        return 0;
    size_t cap = t->cap ? t->cap * 2 : 8;
    hslot *s = calloc(cap, sizeof *s);
    if (!s)
        return CAIRN_ENOMEM;
    for (size_t i = 0; i < t->cap; i++)
        if (t->s[i].ent)
            ht_place(s, cap, t->s[i].hash, t->s[i].ent);
    free(t->s);
    t->s = s;
    t->cap = cap;
    return 0;
}

/* After ht_reserve; the key must not be there. */
static void ht_insert(htab *t, uint64_t h, hkey *ent)
{
    ht_place(t->s, t->cap, h, ent);
    t->n++;
}

static void ht_delete_at(htab *t, size_t i)
{
    size_t mask = t->cap - 1;
    t->s[i].ent = NULL;
    t->n--;
    /* backward shift: move up every entry whose probe passed slot i */
    for (size_t j = (i + 1) & mask; t->s[j].ent; j = (j + 1) & mask) {
        size_t home = t->s[j].hash & mask;
        /* j's entry may move to i iff home is not in (i, j] cyclically */
        bool stays = (i <= j) ? (home > i && home <= j)
                              : (home > i || home <= j);
        if (stays)
            continue;
        t->s[i] = t->s[j];
        t->s[j].ent = NULL;
        i = j;
    }
}

/* ---- the index ---- */

typedef struct posting {
    hkey key; /* the value */
    uint64_t *ids;
    size_t n, cap;
} posting;

typedef struct name_ent {
    hkey key; /* the name */
    htab values; /* of posting */
} name_ent;

typedef struct series_ent {
    hkey key; /* the 8 bytes of id, in idbuf */
    uint64_t id;
    uint8_t idbuf[8];
    cairn_ts_labels *labels;
} series_ent;

struct cairn_ts_index {
    htab names;  /* of name_ent */
    htab series; /* of series_ent */
};

int cairn_ts_index_new(cairn_ts_index **out)
{
    if (!out)
        return CAIRN_EINVAL;
    cairn_ts_index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return CAIRN_ENOMEM;
    *out = ix;
    return 0;
}

static void posting_free(posting *p)
{
    free(p->ids);
    free(p);
}

static void name_free(name_ent *ne)
{
    for (size_t i = 0; i < ne->values.cap; i++)
        if (ne->values.s[i].ent)
            posting_free((posting *)ne->values.s[i].ent);
    free(ne->values.s);
    free(ne);
}

void cairn_ts_index_free(cairn_ts_index *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->names.cap; i++)
        if (ix->names.s[i].ent)
            name_free((name_ent *)ix->names.s[i].ent);
    for (size_t i = 0; i < ix->series.cap; i++)
        if (ix->series.s[i].ent) {
            series_ent *se = (series_ent *)ix->series.s[i].ent;
            cairn_ts_labels_free(se->labels);
            free(se);
        }
    free(ix->names.s);
    free(ix->series.s);
    free(ix);
}

static name_ent *name_get(const cairn_ts_index *ix, const void *name,
                          size_t len)
{
    size_t i = ht_find(&ix->names, hash_bytes(name, len), name, len);
    return i == SIZE_MAX ? NULL : (name_ent *)ix->names.s[i].ent;
}

static posting *posting_get(const name_ent *ne, const void *val, size_t len)
{
    if (!ne)
        return NULL;
    size_t i = ht_find(&ne->values, hash_bytes(val, len), val, len);
    return i == SIZE_MAX ? NULL : (posting *)ne->values.s[i].ent;
}

/* Index of the first id >= id in p. */
static size_t posting_lower(const uint64_t *ids, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool posting_has(const posting *p, uint64_t id)
{
    size_t i = posting_lower(p->ids, p->n, id);
    return i < p->n && p->ids[i] == id;
}

/* Drop id from the posting of (name, value); drop the posting and the name
 * when they empty. Never allocates. */
static void pair_remove(cairn_ts_index *ix, const cairn_ts_label *lab,
                        uint64_t id)
{
    uint64_t nh = hash_bytes(lab->name.p, lab->name.len);
    size_t ni = ht_find(&ix->names, nh, lab->name.p, lab->name.len);
    if (ni == SIZE_MAX)
        return;
    name_ent *ne = (name_ent *)ix->names.s[ni].ent;
    uint64_t vh = hash_bytes(lab->value.p, lab->value.len);
    size_t vi = ht_find(&ne->values, vh, lab->value.p, lab->value.len);
    if (vi != SIZE_MAX) {
        posting *p = (posting *)ne->values.s[vi].ent;
        size_t k = posting_lower(p->ids, p->n, id);
        if (k < p->n && p->ids[k] == id) {
            memmove(p->ids + k, p->ids + k + 1,
                    (p->n - k - 1) * sizeof *p->ids);
            p->n--;
        }
        if (p->n == 0) {
            ht_delete_at(&ne->values, vi);
            posting_free(p);
        }
    }
    if (ne->values.n == 0) {
        ht_delete_at(&ix->names, ni);
        name_free(ne);
    }
}

/* Add id to the posting of (name, value). On CAIRN_ENOMEM nothing is left
 * behind but, perhaps, empty tables (pair_remove drops them). */
static int pair_add(cairn_ts_index *ix, const cairn_ts_label *lab,
                    uint64_t id)
{
    uint64_t nh = hash_bytes(lab->name.p, lab->name.len);
    size_t ni = ht_find(&ix->names, nh, lab->name.p, lab->name.len);
    name_ent *ne;
    if (ni == SIZE_MAX) {
        if (ht_reserve(&ix->names))
            return CAIRN_ENOMEM;
        /* the name is kept with its entry: postings outlive any one
         * series' label copy */
        ne = calloc(1, sizeof *ne + lab->name.len + 1);
        if (!ne)
            return CAIRN_ENOMEM;
        char *k = (char *)(ne + 1);
        memcpy(k, lab->name.p, lab->name.len);
        k[lab->name.len] = '\0';
        ne->key.p = k;
        ne->key.len = lab->name.len;
        ht_insert(&ix->names, nh, &ne->key);
    } else {
        ne = (name_ent *)ix->names.s[ni].ent;
    }
    uint64_t vh = hash_bytes(lab->value.p, lab->value.len);
    size_t vi = ht_find(&ne->values, vh, lab->value.p, lab->value.len);
    posting *p;
    if (vi == SIZE_MAX) {
        if (ht_reserve(&ne->values))
            return CAIRN_ENOMEM;
        p = calloc(1, sizeof *p + lab->value.len + 1);
        if (!p)
            return CAIRN_ENOMEM;
        char *k = (char *)(p + 1);
        memcpy(k, lab->value.p, lab->value.len);
        k[lab->value.len] = '\0';
        p->key.p = k;
        p->key.len = lab->value.len;
        ht_insert(&ne->values, vh, &p->key);
    } else {
        p = (posting *)ne->values.s[vi].ent;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 4;
        uint64_t *ids = realloc(p->ids, cap * sizeof *ids);
        if (!ids)
            return CAIRN_ENOMEM;
        p->ids = ids;
        p->cap = cap;
    }
    size_t k = p->n && p->ids[p->n - 1] < id ? p->n
                                               : posting_lower(p->ids, p->n, id);
    if (k < p->n && p->ids[k] == id)
        return 0;
    memmove(p->ids + k + 1, p->ids + k, (p->n - k) * sizeof *p->ids);
    p->ids[k] = id;
    p->n++;
    return 0;
}

static size_t series_find(const cairn_ts_index *ix, uint64_t id)
{
    uint8_t b[8];
    cairn_put_u64(b, id);
    return ht_find(&ix->series, hash_bytes(b, 8), b, 8);
}

const cairn_ts_labels *cairn_ts_index_labels(const cairn_ts_index *ix,
                                             uint64_t id)
{
    if (!ix)
        return NULL;
    size_t i = series_find(ix, id);
    return i == SIZE_MAX ? NULL
                         : ((series_ent *)ix->series.s[i].ent)->labels;
}

size_t cairn_ts_index_count(const cairn_ts_index *ix)
{
    return ix ? ix->series.n : 0;
}

int cairn_ts_index_add(cairn_ts_index *ix, uint64_t id,
                       const cairn_ts_labels *l)
{
    if (!ix || !l)
        return CAIRN_EINVAL;
    if (series_find(ix, id) != SIZE_MAX)
        return CAIRN_EEXIST;
    if (ht_reserve(&ix->series))
        return CAIRN_ENOMEM;
    series_ent *se = calloc(1, sizeof *se);
    if (!se)
        return CAIRN_ENOMEM;
    if (cairn_ts_labels_dup(l, &se->labels)) {
        free(se);
        return CAIRN_ENOMEM;
    }
    for (size_t i = 0; i < l->n; i++) {
        if (pair_add(ix, &l->v[i], id)) {
            for (size_t j = 0; j <= i; j++)
                pair_remove(ix, &l->v[j], id);
            cairn_ts_labels_free(se->labels);
            free(se);
            return CAIRN_ENOMEM;
        }
    }
    se->id = id;
    cairn_put_u64(se->idbuf, id);
    se->key.p = (const char *)se->idbuf;
    se->key.len = 8;
    ht_insert(&ix->series, hash_bytes(se->idbuf, 8), &se->key);
    return 0;
}

int cairn_ts_index_remove(cairn_ts_index *ix, uint64_t id)
{
    if (!ix)
        return CAIRN_EINVAL;
    size_t i = series_find(ix, id);
    if (i == SIZE_MAX)
        return CAIRN_ENOTFOUND;
    series_ent *se = (series_ent *)ix->series.s[i].ent;
    ht_delete_at(&ix->series, i);
    for (size_t k = 0; k < se->labels->n; k++)
        pair_remove(ix, &se->labels->v[k], id);
    cairn_ts_labels_free(se->labels);
    free(se);
    return 0;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Series a positive matcher (EQ or IN) selects: the sum of its postings
 * (disjoint: a series has one value per name). */
static size_t matcher_size(const cairn_ts_index *ix, const cairn_ts_matcher *m)
{
    const name_ent *ne = name_get(ix, m->name.p, m->name.len);
    size_t s = 0;
    for (size_t k = 0; ne && k < m->nvalues; k++) {
        const posting *p = posting_get(ne, m->values[k].p, m->values[k].len);
        if (p)
            s += p->n;
    }
    return s;
}

static bool matcher_has(const cairn_ts_index *ix, const cairn_ts_matcher *m,
                        uint64_t id)
{
    const name_ent *ne = name_get(ix, m->name.p, m->name.len);
    for (size_t k = 0; ne && k < m->nvalues; k++) {
        const posting *p = posting_get(ne, m->values[k].p, m->values[k].len);
        if (p && posting_has(p, id))
            return true;
    }
    return false;
}

typedef struct pos_ref {
    size_t idx, size;
} pos_ref;

static int pos_cmp(const void *a, const void *b)
{
    const pos_ref *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

int cairn_ts_index_query(const cairn_ts_index *ix, const cairn_ts_filter *f,
                         uint64_t **ids, size_t *n)
{
    if (!ix || !f || !ids || !n)
        return CAIRN_EINVAL;
    *ids = NULL;
    *n = 0;
    size_t npos = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->m[i].kind == CAIRN_TS_MATCH_EQ ||
            f->m[i].kind == CAIRN_TS_MATCH_IN)
            npos++;
    if (npos == 0)
        return CAIRN_EINVAL; /* a parsed filter always has one */
    pos_ref *pos = malloc(npos * sizeof *pos);
    if (!pos)
        return CAIRN_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < f->n; i++)
        if (f->m[i].kind == CAIRN_TS_MATCH_EQ ||
            f->m[i].kind == CAIRN_TS_MATCH_IN) {
            pos[k].idx = i;
            pos[k].size = matcher_size(ix, &f->m[i]);
            k++;
        }
    qsort(pos, npos, sizeof *pos, pos_cmp);
    size_t cn = pos[0].size;
    if (cn == 0) {
        free(pos);
        return 0;
    }
    uint64_t *c = malloc(cn * sizeof *c);
    if (!c) {
        free(pos);
        return CAIRN_ENOMEM;
    }
    /* the smallest positive matcher's series */
    const cairn_ts_matcher *m0 = &f->m[pos[0].idx];
    const name_ent *ne = name_get(ix, m0->name.p, m0->name.len);
    size_t got = 0;
    for (size_t v = 0; ne && v < m0->nvalues; v++) {
        const posting *p = posting_get(ne, m0->values[v].p, m0->values[v].len);
        if (p) {
            memcpy(c + got, p->ids, p->n * sizeof *c);
            got += p->n;
        }
    }
    if (m0->nvalues > 1)
        qsort(c, got, sizeof *c, u64_cmp);
    /* intersected with the other positive matchers, smallest first */
    for (size_t j = 1; j < npos && got; j++) {
        const cairn_ts_matcher *m = &f->m[pos[j].idx];
        size_t w = 0;
        for (size_t r = 0; r < got; r++)
            if (matcher_has(ix, m, c[r]))
                c[w++] = c[r];
        got = w;
    }
    /* then the other matchers, on each candidate's labels */
    size_t w = 0;
    for (size_t r = 0; r < got; r++) {
        const cairn_ts_labels *l = cairn_ts_index_labels(ix, c[r]);
        bool ok = l != NULL;
        for (size_t i = 0; ok && i < f->n; i++) {
            cairn_ts_match_kind kd = f->m[i].kind;
            if (kd != CAIRN_TS_MATCH_EQ && kd != CAIRN_TS_MATCH_IN)
                ok = matcher_match(&f->m[i], l);
        }
        if (ok)
            c[w++] = c[r];
    }
    free(pos);
    if (w == 0) {
        free(c);
        return 0;
    }
    *ids = c;
    *n = w;
    return 0;
}

int cairn_ts_index_label_values(const cairn_ts_index *ix, const void *name,
                                size_t len, cairn_ts_str **vals, size_t *n)
{
    if (!ix || !vals || !n || (len && !name))
        return CAIRN_EINVAL;
    *vals = NULL;
    *n = 0;
    const name_ent *ne = name_get(ix, name, len);
    if (!ne || ne->values.n == 0)
        return 0;
    cairn_ts_str *v = malloc(ne->values.n * sizeof *v);
    if (!v)
        return CAIRN_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < ne->values.cap; i++)
        if (ne->values.s[i].ent) {
            v[k].p = ne->values.s[i].ent->p;
            v[k].len = ne->values.s[i].ent->len;
            k++;
        }
    qsort(v, k, sizeof *v, value_cmp);
    *vals = v;
    *n = k;
    return 0;
}
