/*
 * test_ts_labels.c — time-series labels, FILTER expressions and the label
 * index (src/ts/labels.c): label sets are built sorted and valid (bad
 * names, values and duplicates refused); every bad filter form is refused
 * with a message naming the fault, a filter without l=v or l=(...)
 * included; the six matchers follow their truth tables; the index answers
 * exactly what a brute-force scan answers, over thousands of random label
 * sets, filters, adds and removes; label sets round-trip through their
 * encoding, and no truncation or bit flip of an encoding crashes the
 * decoder or decodes to something that does not re-encode to the same
 * bytes; the RedisTimeSeries documentation's examples give its answers.
 * Locking: single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn.h"
#include "test_util.h"
#include "ts/labels.h"

/* ---- helpers ---- */

/* A label set from "n1", "v1", "n2", "v2", ..., NULL. */
static cairn_ts_labels *mk(const char *first, ...)
{
    cairn_ts_label pairs[32];
    size_t n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *nm = first; nm; nm = va_arg(ap, const char *)) {
        const char *v = va_arg(ap, const char *);
        pairs[n].name.p = nm;
        pairs[n].name.len = strlen(nm);
        pairs[n].value.p = v;
        pairs[n].value.len = strlen(v);
        n++;
    }
    va_end(ap);
    cairn_ts_labels *l = NULL;
    assert_int_equal(cairn_ts_labels_new(pairs, n, &l), 0);
    return l;
}

/* Parse NUL-terminated expressions (NULL-terminated list). */
static int parse(cairn_ts_filter **f, char *err, size_t errlen,
                 const char *first, ...)
{
    const char *ex[32];
    size_t lens[32], n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *e = first; e; e = va_arg(ap, const char *)) {
        ex[n] = e;
        lens[n] = strlen(e);
        n++;
    }
    va_end(ap);
    return cairn_ts_filter_parse(ex, lens, n, f, err, errlen);
}

static cairn_ts_filter *pf(const char *first, ...)
{
    const char *ex[32];
    size_t lens[32], n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *e = first; e; e = va_arg(ap, const char *)) {
        ex[n] = e;
        lens[n] = strlen(e);
        n++;
    }
    va_end(ap);
    cairn_ts_filter *f = NULL;
    char err[256];
    int rc = cairn_ts_filter_parse(ex, lens, n, &f, err, sizeof err);
    if (rc)
        fail_msg("parse of '%s'...: %s", first, err);
    return f;
}

/* ---- label sets ---- */

static void test_labels_build(void **state)
{
    (void)state;
    cairn_ts_labels *l = mk("room", "study", "type", "temperature", "a",
                            "x y=z!", NULL);
    assert_int_equal(l->n, 3);
    assert_string_equal(l->v[0].name.p, "a");
    assert_string_equal(l->v[0].value.p, "x y=z!");
    assert_string_equal(l->v[1].name.p, "room");
    assert_string_equal(l->v[2].name.p, "type");
    const cairn_ts_label *f = cairn_ts_labels_find(l, "room", 4);
    assert_non_null(f);
    assert_string_equal(f->value.p, "study");
    assert_null(cairn_ts_labels_find(l, "roo", 3));
    assert_null(cairn_ts_labels_find(l, "rooms", 5));
    assert_null(cairn_ts_labels_find(l, "zz", 2));
    cairn_ts_labels *d = NULL;
    assert_int_equal(cairn_ts_labels_dup(l, &d), 0);
    assert_int_equal(d->n, 3);
    assert_string_equal(d->v[2].value.p, "temperature");
    cairn_ts_labels_free(d);
    cairn_ts_labels_free(l);

    /* prefix order: "a" < "ab" < "b" */
    l = mk("b", "1", "ab", "2", "a", "3", NULL);
    assert_string_equal(l->v[0].name.p, "a");
    assert_string_equal(l->v[1].name.p, "ab");
    assert_string_equal(l->v[2].name.p, "b");
    cairn_ts_labels_free(l);

    /* the empty set */
    assert_int_equal(cairn_ts_labels_new(NULL, 0, &l), 0);
    assert_int_equal(l->n, 0);
    assert_null(cairn_ts_labels_find(l, "a", 1));
    cairn_ts_labels_free(l);

    /* refused */
    struct {
        const char *n;
        size_t nl;
        const char *v;
        size_t vl;
    } bad[] = {
        {"", 0, "v", 1},     {"a=b", 3, "v", 1},  {"a!", 2, "v", 1},
        {"(a", 2, "v", 1},   {"a)", 2, "v", 1},   {"a,b", 3, "v", 1},
        {"a\0b", 3, "v", 1}, {"a", 1, "", 0},     {"a", 1, "(v", 2},
        {"a", 1, "v)", 2},   {"a", 1, "v,w", 3},  {"a", 1, "v\0", 2},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cairn_ts_label p = {{bad[i].n, bad[i].nl}, {bad[i].v, bad[i].vl}};
        l = NULL;
        assert_int_equal(cairn_ts_labels_new(&p, 1, &l), CAIRN_EINVAL);
        assert_null(l);
    }
    char *big = malloc(CAIRN_TS_LABEL_MAX_LEN + 1);
    assert_non_null(big);
    memset(big, 'x', CAIRN_TS_LABEL_MAX_LEN + 1);
    cairn_ts_label p = {{big, CAIRN_TS_LABEL_MAX_LEN}, {big, CAIRN_TS_LABEL_MAX_LEN}};
    assert_int_equal(cairn_ts_labels_new(&p, 1, &l), 0);
    cairn_ts_labels_free(l);
    p.name.len++;
    assert_int_equal(cairn_ts_labels_new(&p, 1, &l), CAIRN_EINVAL);
    p.name.len--;
    p.value.len++;
    assert_int_equal(cairn_ts_labels_new(&p, 1, &l), CAIRN_EINVAL);
    free(big);

    cairn_ts_label dup[] = {{{"a", 1}, {"1", 1}}, {{"b", 1}, {"2", 1}},
                            {{"a", 1}, {"3", 1}}};
    assert_int_equal(cairn_ts_labels_new(dup, 3, &l), CAIRN_EINVAL);
    assert_true(cairn_ts_label_name_valid("host name", 9));
    assert_false(cairn_ts_label_name_valid("a=", 2));
    assert_true(cairn_ts_label_value_valid("=!", 2));
    assert_false(cairn_ts_label_value_valid(",", 1));
}

/* ---- filter parsing ---- */

static void test_parse_errors(void **state)
{
    (void)state;
    struct {
        const char *e1, *e2;
        const char *want; /* a substring of the message */
    } cases[] = {
        {"a", NULL, "expected label=value"},
        {"", NULL, "expected label=value"},
        {"abc!", NULL, "expected label=value"},
        {"=b", NULL, "empty label name"},
        {"!=b", NULL, "empty label name"},
        {"=", NULL, "empty label name"},
        {"=(a)", NULL, "empty label name"},
        {"a!b=c", NULL, "label name contains '!'"},
        {"a!!=c", NULL, "label name contains '!'"},
        {"(a)=b", NULL, "label name contains '('"},
        {"a)=b", NULL, "label name contains ')'"},
        {"a,b=c", NULL, "label name contains ','"},
        {"a=(b", NULL, "without a closing ')'"},
        {"a=(", NULL, "without a closing ')'"},
        {"a!=(b,c", NULL, "without a closing ')'"},
        {"a=(b,,c)", NULL, "empty value in the list"},
        {"a=(,)", NULL, "empty value in the list"},
        {"a=(b,)", NULL, "empty value in the list"},
        {"a!=(,b)", NULL, "empty value in the list"},
        {"a=(b(c)", NULL, "a value in the list contains '('"},
        {"a=(b)c)", NULL, "a value in the list contains ')'"},
        {"a=b)", NULL, "value contains ')'"},
        {"a=b,c", NULL, "value contains ','"},
        {"a!=b(", NULL, "value contains '('"},
        {"a=)", NULL, "value contains ')'"},
        {"x=1", "bad", "\"bad\": expected"},
        {"x=1", "y=(2", "\"y=(2\": list without"},
        /* no positive matcher */
        {"a!=b", NULL, "please provide at least one matcher"},
        {"a=", NULL, "please provide at least one matcher"},
        {"a!=", NULL, "please provide at least one matcher"},
        {"a!=(b,c)", NULL, "please provide at least one matcher"},
        {"a!=", "b=", "please provide at least one matcher"},
        {"a!=()", "b!=c", "please provide at least one matcher"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[256];
        cairn_ts_filter *f = NULL;
        int rc = parse(&f, err, sizeof err, cases[i].e1, cases[i].e2, NULL);
        if (rc != CAIRN_EINVAL || !strstr(err, cases[i].want))
            fail_msg("'%s' '%s': rc %d, message '%s', expected '%s'",
                     cases[i].e1, cases[i].e2 ? cases[i].e2 : "", rc, err,
                     cases[i].want);
        assert_null(f);
        /* parse errors name the expression; none ends in a newline */
        if (strstr(cases[i].want, "matcher") == NULL)
            assert_non_null(strstr(err, "failed parsing labels: \""));
        assert_null(strchr(err, '\n'));
        /* a NULL or short message buffer is fine */
        assert_int_equal(parse(&f, NULL, 0, cases[i].e1, cases[i].e2, NULL),
                         CAIRN_EINVAL);
        char small[8];
        assert_int_equal(parse(&f, small, sizeof small, cases[i].e1,
                               cases[i].e2, NULL),
                         CAIRN_EINVAL);
        assert_true(strlen(small) < sizeof small);
    }

    /* no expressions at all */
    char err[256];
    cairn_ts_filter *f = NULL;
    assert_int_equal(cairn_ts_filter_parse(NULL, NULL, 0, &f, err, sizeof err),
                     CAIRN_EINVAL);
    assert_string_equal(err, "missing labels for filter argument");

    /* NUL bytes, and bytes shown escaped */
    const char *ex[1];
    size_t lens[1];
    ex[0] = "a\0b=c";
    lens[0] = 5;
    assert_int_equal(cairn_ts_filter_parse(ex, lens, 1, &f, err, sizeof err),
                     CAIRN_EINVAL);
    assert_non_null(strstr(err, "NUL byte"));
    assert_non_null(strstr(err, "a\\x00b=c"));
    ex[0] = "a=b\0";
    lens[0] = 4;
    assert_int_equal(cairn_ts_filter_parse(ex, lens, 1, &f, err, sizeof err),
                     CAIRN_EINVAL);
    assert_non_null(strstr(err, "value contains a NUL byte"));

    /* lengths: 65535 is the most a name or value may have */
    size_t big = CAIRN_TS_LABEL_MAX_LEN + 1;
    char *e = malloc(big + 3);
    assert_non_null(e);
    memset(e, 'n', big);
    memcpy(e + big, "=v", 2);
    ex[0] = e;
    lens[0] = big + 2;
    assert_int_equal(cairn_ts_filter_parse(ex, lens, 1, &f, err, sizeof err),
                     CAIRN_EINVAL);
    assert_non_null(strstr(err, "name longer than 65535"));
    assert_non_null(strstr(err, "...")); /* the expression, cut */
    e[0] = 'a';
    e[1] = '=';
    memset(e + 2, 'v', big);
    lens[0] = big + 2;
    assert_int_equal(cairn_ts_filter_parse(ex, lens, 1, &f, err, sizeof err),
                     CAIRN_EINVAL);
    assert_non_null(strstr(err, "value longer than 65535"));
    lens[0] = big + 1;
    assert_int_equal(cairn_ts_filter_parse(ex, lens, 1, &f, err, sizeof err),
                     0);
    assert_int_equal(f->m[0].values[0].len, CAIRN_TS_LABEL_MAX_LEN);
    cairn_ts_filter_free(f);
    free(e);
}

static void test_parse_forms(void **state)
{
    (void)state;
    cairn_ts_filter *f = pf("a=b", "c!=d", "e=", "f!=", "g=(z,x,y,x)",
                            "h!=(q)", "i=()", "j!=()", "k=b=c", "l==m",
                            "m=!x", " n = o ", NULL);
    assert_int_equal(f->n, 12);
    struct {
        cairn_ts_match_kind k;
        const char *name;
        size_t nv;
        const char *v0;
    } want[] = {
        {CAIRN_TS_MATCH_EQ, "a", 1, "b"},
        {CAIRN_TS_MATCH_NEQ, "c", 1, "d"},
        {CAIRN_TS_MATCH_ABSENT, "e", 0, NULL},
        {CAIRN_TS_MATCH_PRESENT, "f", 0, NULL},
        {CAIRN_TS_MATCH_IN, "g", 3, "x"},
        {CAIRN_TS_MATCH_NOT_IN, "h", 1, "q"},
        {CAIRN_TS_MATCH_IN, "i", 0, NULL},
        {CAIRN_TS_MATCH_NOT_IN, "j", 0, NULL},
        {CAIRN_TS_MATCH_EQ, "k", 1, "b=c"},
        {CAIRN_TS_MATCH_EQ, "l", 1, "=m"},
        {CAIRN_TS_MATCH_EQ, "m", 1, "!x"},
        {CAIRN_TS_MATCH_EQ, " n ", 1, " o "},
    };
    for (size_t i = 0; i < f->n; i++) {
        const cairn_ts_matcher *m = &f->m[i];
        assert_int_equal(m->kind, want[i].k);
        assert_int_equal(m->name.len, strlen(want[i].name));
        assert_memory_equal(m->name.p, want[i].name, m->name.len);
        assert_int_equal(m->nvalues, want[i].nv);
        if (want[i].v0) {
            assert_int_equal(m->values[0].len, strlen(want[i].v0));
            assert_memory_equal(m->values[0].p, want[i].v0,
                                m->values[0].len);
        }
    }
    /* the list is sorted and without duplicates */
    assert_memory_equal(f->m[4].values[1].p, "y", 1);
    assert_memory_equal(f->m[4].values[2].p, "z", 1);
    cairn_ts_filter_free(f);
}

/* ---- matching ---- */

static void test_match_truth_tables(void **state)
{
    (void)state;
    /* series: without l, l=v, l=w */
    cairn_ts_labels *s[3] = {mk("k", "1", NULL), mk("k", "1", "l", "v", NULL),
                             mk("k", "1", "l", "w", NULL)};
    struct {
        const char *expr;
        bool want[3];
    } t[] = {
        {"l=v", {false, true, false}},
        {"l!=v", {true, false, true}},
        {"l=", {true, false, false}},
        {"l!=", {false, true, true}},
        {"l=(v,w)", {false, true, true}},
        {"l=(v,x)", {false, true, false}},
        {"l=(x)", {false, false, false}},
        {"l=()", {false, false, false}},
        {"l!=(v,w)", {true, false, false}},
        {"l!=(v,x)", {true, false, true}},
        {"l!=()", {true, true, true}},
        {"l=V", {false, false, false}}, /* case-sensitive */
        {"L=v", {false, false, false}},
        {"l=v ", {false, false, false}}, /* no trimming */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        cairn_ts_filter *f = pf("k=1", t[i].expr, NULL);
        for (int j = 0; j < 3; j++)
            if (cairn_ts_filter_match(f, s[j]) != t[i].want[j])
                fail_msg("%s on series %d: expected %d", t[i].expr, j,
                         t[i].want[j]);
        cairn_ts_filter_free(f);
    }
    /* conjunction: every matcher must hold */
    cairn_ts_filter *f = pf("k=1", "l!=", "l!=w", NULL);
    assert_false(cairn_ts_filter_match(f, s[0]));
    assert_true(cairn_ts_filter_match(f, s[1]));
    assert_false(cairn_ts_filter_match(f, s[2]));
    cairn_ts_filter_free(f);
    f = pf("l=v", "l=w", NULL); /* contradictory */
    for (int j = 0; j < 3; j++)
        assert_false(cairn_ts_filter_match(f, s[j]));
    cairn_ts_filter_free(f);
    for (int j = 0; j < 3; j++)
        cairn_ts_labels_free(s[j]);
}

/* ---- the index against a brute-force scan ---- */

#define NNAMES 5
#define NVALS 4
static const char *names[NNAMES] = {"host", "dc", "env", "app", "h"};
static const char *vals[NVALS] = {"a", "b", "ab", "prod-1"};

static cairn_ts_labels *rand_labels(uint64_t *rs)
{
    cairn_ts_label p[NNAMES];
    size_t n = 0;
    for (int i = 0; i < NNAMES; i++) {
        if (tu_rand(rs, 3) == 0)
            continue;
        const char *v = vals[tu_rand(rs, NVALS)];
        p[n].name.p = names[i];
        p[n].name.len = strlen(names[i]);
        p[n].value.p = v;
        p[n].value.len = strlen(v);
        n++;
    }
    cairn_ts_labels *l = NULL;
    assert_int_equal(cairn_ts_labels_new(p, n, &l), 0);
    return l;
}

/* One random expression into buf (a positive one if pos). */
static size_t rand_expr(uint64_t *rs, char *buf, bool pos)
{
    const char *nm = names[tu_rand(rs, NNAMES)];
    int form = pos ? (int)tu_rand(rs, 2) * 4 : (int)tu_rand(rs, 6);
    int len = 0;
    switch (form) {
    case 0:
        len = sprintf(buf, "%s=%s", nm, vals[tu_rand(rs, NVALS)]);
        break;
    case 1:
        len = sprintf(buf, "%s!=%s", nm, vals[tu_rand(rs, NVALS)]);
        break;
    case 2:
        len = sprintf(buf, "%s=", nm);
        break;
    case 3:
        len = sprintf(buf, "%s!=", nm);
        break;
    default: {
        len = sprintf(buf, "%s%s(", nm, form == 4 ? "=" : "!=");
        int k = (int)tu_rand(rs, 4);
        for (int i = 0; i < k; i++)
            len += sprintf(buf + len, "%s%s", i ? "," : "",
                           vals[tu_rand(rs, NVALS)]);
        len += sprintf(buf + len, ")");
        break;
    }
    }
    return (size_t)len;
}

static void check_query(cairn_ts_index *ix, cairn_ts_labels **ref,
                        size_t nref, const cairn_ts_filter *f)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(cairn_ts_index_query(ix, f, &ids, &n), 0);
    size_t k = 0;
    for (size_t id = 0; id < nref; id++) {
        if (!ref[id] || !cairn_ts_filter_match(f, ref[id]))
            continue;
        if (k >= n || ids[k] != id)
            fail_msg("id %zu missing from the answer (position %zu of %zu)",
                     id, k, n);
        k++;
    }
    assert_int_equal(k, n);
    free(ids);
}

static void test_index_vs_reference(void **state)
{
    (void)state;
    uint64_t rs = 42;
    size_t queries = 0;
    for (int round = 0; round < 40; round++) {
        enum { NREF = 150 };
        cairn_ts_labels *ref[NREF] = {0};
        cairn_ts_index *ix = NULL;
        assert_int_equal(cairn_ts_index_new(&ix), 0);
        size_t live = 0;
        for (int step = 0; step < 400; step++) {
            uint64_t id = tu_rand(&rs, NREF);
            if (tu_rand(&rs, 3) == 0) {
                int rc = cairn_ts_index_remove(ix, id);
                if (ref[id]) {
                    assert_int_equal(rc, 0);
                    cairn_ts_labels_free(ref[id]);
                    ref[id] = NULL;
                    live--;
                } else {
                    assert_int_equal(rc, CAIRN_ENOTFOUND);
                }
            } else {
                cairn_ts_labels *l = rand_labels(&rs);
                int rc = cairn_ts_index_add(ix, id, l);
                if (ref[id]) {
                    assert_int_equal(rc, CAIRN_EEXIST);
                    cairn_ts_labels_free(l);
                } else {
                    assert_int_equal(rc, 0);
                    ref[id] = l;
                    live++;
                }
            }
            assert_int_equal(cairn_ts_index_count(ix), live);
            if (step % 4)
                continue;
            /* a random filter: 1..4 expressions, at least one positive */
            char buf[4][64];
            const char *ex[4];
            size_t lens[4];
            size_t ne = 1 + tu_rand(&rs, 4);
            size_t posi = tu_rand(&rs, ne);
            for (size_t i = 0; i < ne; i++) {
                lens[i] = rand_expr(&rs, buf[i], i == posi);
                ex[i] = buf[i];
            }
            cairn_ts_filter *f = NULL;
            char err[256];
            int rc = cairn_ts_filter_parse(ex, lens, ne, &f, err, sizeof err);
            if (rc)
                fail_msg("%s", err);
            check_query(ix, ref, NREF, f);
            cairn_ts_filter_free(f);
            queries++;
        }
        /* stored labels, and every value of every name */
        for (size_t id = 0; id < NREF; id++) {
            const cairn_ts_labels *l = cairn_ts_index_labels(ix, id);
            if (!ref[id]) {
                assert_null(l);
                continue;
            }
            assert_non_null(l);
            assert_int_equal(l->n, ref[id]->n);
            for (size_t i = 0; i < l->n; i++) {
                assert_string_equal(l->v[i].name.p, ref[id]->v[i].name.p);
                assert_string_equal(l->v[i].value.p, ref[id]->v[i].value.p);
            }
        }
        for (int ni = 0; ni < NNAMES; ni++) {
            cairn_ts_str *v = NULL;
            size_t nv = 0;
            assert_int_equal(cairn_ts_index_label_values(
                                 ix, names[ni], strlen(names[ni]), &v, &nv),
                             0);
            /* the reference: sorted distinct values in use */
            const char *want[NVALS];
            size_t nw = 0;
            const char *sorted[NVALS] = {"a", "ab", "b", "prod-1"};
            for (int k = 0; k < NVALS; k++) {
                bool used = false;
                for (size_t id = 0; id < NREF && !used; id++) {
                    const cairn_ts_label *lab =
                        ref[id] ? cairn_ts_labels_find(ref[id], names[ni],
                                                       strlen(names[ni]))
                                : NULL;
                    used = lab && strcmp(lab->value.p, sorted[k]) == 0;
                }
                if (used)
                    want[nw++] = sorted[k];
            }
            assert_int_equal(nv, nw);
            for (size_t k = 0; k < nv; k++) {
                assert_int_equal(v[k].len, strlen(want[k]));
                assert_memory_equal(v[k].p, want[k], v[k].len);
            }
            free(v);
        }
        cairn_ts_str *v = (cairn_ts_str *)1;
        size_t nv = 7;
        assert_int_equal(cairn_ts_index_label_values(ix, "nope", 4, &v, &nv),
                         0);
        assert_null(v);
        assert_int_equal(nv, 0);
        /* every series removed: nothing left to find */
        for (size_t id = 0; id < NREF; id++)
            if (ref[id]) {
                assert_int_equal(cairn_ts_index_remove(ix, id), 0);
                cairn_ts_labels_free(ref[id]);
                ref[id] = NULL;
            }
        assert_int_equal(cairn_ts_index_count(ix), 0);
        for (int ni = 0; ni < NNAMES; ni++) {
            assert_int_equal(cairn_ts_index_label_values(
                                 ix, names[ni], strlen(names[ni]), &v, &nv),
                             0);
            assert_int_equal(nv, 0);
        }
        cairn_ts_index_free(ix);
    }
    assert_true(queries >= 4000);
    print_message("index: %zu random filters checked against a scan\n",
                  queries);
}

/* Large ids, ids added out of order, a big posting. */
static void test_index_ids(void **state)
{
    (void)state;
    cairn_ts_index *ix = NULL;
    assert_int_equal(cairn_ts_index_new(&ix), 0);
    cairn_ts_labels *even = mk("p", "even", "all", "y", NULL);
    cairn_ts_labels *odd = mk("p", "odd", "all", "y", NULL);
    uint64_t rs = 7;
    enum { N = 5000 };
    uint64_t *order = malloc(N * sizeof *order);
    assert_non_null(order);
    for (uint64_t i = 0; i < N; i++)
        order[i] = i;
    for (size_t i = N - 1; i > 0; i--) {
        size_t j = tu_rand(&rs, i + 1);
        uint64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < N; i++) {
        uint64_t id = UINT64_MAX - order[i] * 3;
        assert_int_equal(cairn_ts_index_add(ix, id, order[i] % 2 ? odd : even),
                         0);
    }
    cairn_ts_filter *f = pf("all=y", "p!=odd", NULL);
    uint64_t *ids = NULL;
    size_t n = 0;
    assert_int_equal(cairn_ts_index_query(ix, f, &ids, &n), 0);
    assert_int_equal(n, N / 2);
    for (size_t i = 1; i < n; i++)
        assert_true(ids[i - 1] < ids[i]);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(((UINT64_MAX - ids[i]) / 3) % 2, 0);
    assert_int_equal(ids[n - 1], UINT64_MAX);
    free(ids);
    cairn_ts_filter_free(f);
    /* a filter nothing matches answers no ids */
    f = pf("p=none", NULL);
    ids = (uint64_t *)1;
    assert_int_equal(cairn_ts_index_query(ix, f, &ids, &n), 0);
    assert_int_equal(n, 0);
    assert_null(ids);
    cairn_ts_filter_free(f);
    /* the index kept copies */
    cairn_ts_labels_free(even);
    cairn_ts_labels_free(odd);
    const cairn_ts_labels *l = cairn_ts_index_labels(ix, UINT64_MAX);
    assert_non_null(l);
    assert_string_equal(cairn_ts_labels_find(l, "p", 1)->value.p, "even");
    free(order);
    cairn_ts_index_free(ix);
}

/* ---- encoding ---- */

static void check_roundtrip(const cairn_ts_labels *l)
{
    uint8_t *b = NULL;
    size_t len = 0;
    assert_int_equal(cairn_ts_labels_encode(l, &b, &len), 0);
    cairn_ts_labels *d = NULL;
    assert_int_equal(cairn_ts_labels_decode(b, len, &d), 0);
    assert_int_equal(d->n, l->n);
    for (size_t i = 0; i < l->n; i++) {
        assert_int_equal(d->v[i].name.len, l->v[i].name.len);
        assert_memory_equal(d->v[i].name.p, l->v[i].name.p, l->v[i].name.len);
        assert_int_equal(d->v[i].value.len, l->v[i].value.len);
        assert_memory_equal(d->v[i].value.p, l->v[i].value.p,
                            l->v[i].value.len);
    }
    /* every truncation is corrupt */
    for (size_t cut = 0; cut < len; cut++) {
        cairn_ts_labels *t = NULL;
        assert_int_equal(cairn_ts_labels_decode(b, cut, &t), CAIRN_ECORRUPT);
    }
    /* no bit flip crashes; what decodes re-encodes to the same bytes */
    uint8_t *c = malloc(len);
    assert_non_null(c);
    for (size_t bit = 0; bit < len * 8; bit++) {
        memcpy(c, b, len);
        c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cairn_ts_labels *t = NULL;
        int rc = cairn_ts_labels_decode(c, len, &t);
        if (rc == 0) {
            uint8_t *e = NULL;
            size_t elen = 0;
            assert_int_equal(cairn_ts_labels_encode(t, &e, &elen), 0);
            assert_int_equal(elen, len);
            assert_memory_equal(e, c, len);
            free(e);
            cairn_ts_labels_free(t);
        } else {
            assert_int_equal(rc, CAIRN_ECORRUPT);
        }
    }
    free(c);
    cairn_ts_labels_free(d);
    free(b);
}

static void test_encode_roundtrip(void **state)
{
    (void)state;
    cairn_ts_labels *l = mk("room", "study", "type", "temperature", NULL);
    uint8_t *b = NULL;
    size_t len = 0;
    assert_int_equal(cairn_ts_labels_encode(l, &b, &len), 0);
    /* the layout docs/format/ts.md gives */
    static const uint8_t want[] = {1, 2, 4, 'r', 'o', 'o', 'm', 5, 's', 't',
                                   'u', 'd', 'y', 4, 't', 'y', 'p', 'e', 11,
                                   't', 'e', 'm', 'p', 'e', 'r', 'a', 't',
                                   'u', 'r', 'e'};
    assert_int_equal(len, sizeof want);
    assert_memory_equal(b, want, len);
    free(b);
    check_roundtrip(l);
    cairn_ts_labels_free(l);

    assert_int_equal(cairn_ts_labels_new(NULL, 0, &l), 0);
    assert_int_equal(cairn_ts_labels_encode(l, &b, &len), 0);
    assert_int_equal(len, 2);
    assert_int_equal(b[0], 1);
    assert_int_equal(b[1], 0);
    free(b);
    check_roundtrip(l);
    cairn_ts_labels_free(l);

    /* random sets: any bytes a name or value may hold, long ones too */
    uint64_t rs = 99;
    for (int iter = 0; iter < 300; iter++) {
        cairn_ts_label p[12];
        char store[12][2][100];
        size_t n = tu_rand(&rs, 12);
        for (size_t i = 0; i < n; i++) {
            for (int k = 0; k < 2; k++) {
                size_t len2 = 1 + tu_rand(&rs, iter % 50 == 0 ? 100 : 6);
                for (size_t j = 0; j < len2; j++) {
                    char ch;
                    do
                        ch = (char)(1 + tu_rand(&rs, 255));
                    while (strchr(k ? "()," : "=!(),", ch));
                    store[i][k][j] = ch;
                }
                if (k == 0) {
                    p[i].name.p = store[i][0];
                    p[i].name.len = len2;
                } else {
                    p[i].value.p = store[i][1];
                    p[i].value.len = len2;
                }
            }
        }
        int rc = cairn_ts_labels_new(p, n, &l);
        if (rc == CAIRN_EINVAL)
            continue; /* a duplicate name */
        assert_int_equal(rc, 0);
        check_roundtrip(l);
        cairn_ts_labels_free(l);
    }
}

static void test_decode_damage(void **state)
{
    (void)state;
    struct {
        const char *what;
        uint8_t b[16];
        size_t len;
    } bad[] = {
        {"empty", {0}, 0},
        {"version only", {1}, 1},
        {"version 0", {0, 0}, 2},
        {"version 2", {2, 0}, 2},
        {"trailing byte", {1, 0, 0}, 3},
        {"count past the input", {1, 1, 1, 'a'}, 4},
        {"huge count", {1, 0xff, 0xff, 0xff, 0xff, 0x0f}, 6},
        {"non-minimal count", {1, 0x81, 0x00, 1, 'a', 1, 'b'}, 7},
        {"non-minimal length", {1, 1, 0x81, 0x00, 'a', 1, 'b'}, 7},
        {"empty name", {1, 1, 0, 1, 'b', 0}, 5},
        {"empty value", {1, 1, 1, 'a', 0, 0}, 5},
        {"name with '='", {1, 1, 1, '=', 1, 'b'}, 6},
        {"value with ','", {1, 1, 1, 'a', 1, ','}, 6},
        {"value with NUL", {1, 1, 1, 'a', 1, 0}, 6},
        {"names out of order", {1, 2, 1, 'b', 1, 'x', 1, 'a', 1, 'y'}, 10},
        {"duplicate names", {1, 2, 1, 'a', 1, 'x', 1, 'a', 1, 'y'}, 10},
        {"value length past the end", {1, 1, 1, 'a', 5, 'x'}, 6},
        {"name length past the end", {1, 1, 9, 'a', 1, 'x'}, 6},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cairn_ts_labels *l = NULL;
        int rc = cairn_ts_labels_decode(bad[i].b, bad[i].len, &l);
        if (rc != CAIRN_ECORRUPT)
            fail_msg("%s: %d", bad[i].what, rc);
        assert_null(l);
    }
    /* and the good neighbour of the last ones */
    const uint8_t ok[] = {1, 2, 1, 'a', 1, 'x', 1, 'b', 1, 'y'};
    cairn_ts_labels *l = NULL;
    assert_int_equal(cairn_ts_labels_decode(ok, sizeof ok, &l), 0);
    assert_int_equal(l->n, 2);
    assert_string_equal(l->v[1].value.p, "y");
    cairn_ts_labels_free(l);
    /* random bytes never crash */
    uint64_t rs = 5;
    uint8_t buf[64];
    int decoded = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = tu_rand(&rs, sizeof buf);
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)tu_rand(&rs, j < 2 ? 4 : 256);
        int rc = cairn_ts_labels_decode(buf, len, &l);
        assert_true(rc == 0 || rc == CAIRN_ECORRUPT);
        if (rc == 0) {
            decoded++;
            cairn_ts_labels_free(l);
        }
    }
    assert_true(decoded > 0);
}

/* ---- the RedisTimeSeries documentation's examples ---- */

static void test_rts_examples(void **state)
{
    (void)state;
    /* TS.QUERYINDEX: four sensors, two rooms, two kinds */
    const char *keys[] = {"telemetry:study:temperature",
                          "telemetry:study:humidity",
                          "telemetry:kitchen:temperature",
                          "telemetry:kitchen:humidity"};
    cairn_ts_labels *ls[4] = {
        mk("room", "study", "type", "temperature", NULL),
        mk("room", "study", "type", "humidity", NULL),
        mk("room", "kitchen", "type", "temperature", NULL),
        mk("room", "kitchen", "type", "humidity", NULL),
    };
    cairn_ts_index *ix = NULL;
    assert_int_equal(cairn_ts_index_new(&ix), 0);
    for (uint64_t i = 0; i < 4; i++)
        assert_int_equal(cairn_ts_index_add(ix, i, ls[i]), 0);
    struct {
        const char *e1, *e2;
        uint64_t want[4];
        size_t n;
    } q[] = {
        {"room=kitchen", NULL, {2, 3}, 2},
        {"type=temperature", NULL, {0, 2}, 2},
        {"type=temperature", "room=study", {0}, 1},
        {"type=(temperature,humidity)", "room!=kitchen", {0, 1}, 2},
        {"room=(study,kitchen)", "type!=(humidity)", {0, 2}, 2},
        {"room!=", "type=humidity", {1, 3}, 2},
        {"type=temperature", "location=", {0, 2}, 2},
        {"type=temperature", "location!=", {0}, 0},
    };
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        cairn_ts_filter *f = pf(q[i].e1, q[i].e2, NULL);
        uint64_t *ids = NULL;
        size_t n = 0;
        assert_int_equal(cairn_ts_index_query(ix, f, &ids, &n), 0);
        if (n != q[i].n)
            fail_msg("%s %s: %zu series, expected %zu", q[i].e1,
                     q[i].e2 ? q[i].e2 : "", n, q[i].n);
        for (size_t k = 0; k < n; k++)
            assert_int_equal(ids[k], q[i].want[k]);
        for (size_t k = 0; k < n; k++)
            assert_non_null(strstr(keys[ids[k]], "telemetry:"));
        free(ids);
        cairn_ts_filter_free(f);
    }
    /* GROUPBY room: its values */
    cairn_ts_str *v = NULL;
    size_t nv = 0;
    assert_int_equal(cairn_ts_index_label_values(ix, "room", 4, &v, &nv), 0);
    assert_int_equal(nv, 2);
    assert_memory_equal(v[0].p, "kitchen", 7);
    assert_memory_equal(v[1].p, "study", 5);
    free(v);
    /* TS.QUERYINDEX room!=study alone: no matcher */
    char err[256];
    cairn_ts_filter *f = NULL;
    assert_int_equal(parse(&f, err, sizeof err, "room!=study", NULL),
                     CAIRN_EINVAL);
    assert_non_null(strstr(err, "please provide at least one matcher"));
    cairn_ts_index_free(ix);
    for (int i = 0; i < 4; i++)
        cairn_ts_labels_free(ls[i]);

    /* TS.MRANGE: stocks A and B, FILTER type=stock, and by name */
    cairn_ts_labels *a = mk("type", "stock", "name", "A", NULL);
    cairn_ts_labels *b = mk("type", "stock", "name", "B", NULL);
    f = pf("type=stock", NULL);
    assert_true(cairn_ts_filter_match(f, a) && cairn_ts_filter_match(f, b));
    cairn_ts_filter_free(f);
    f = pf("name=(A,C)", NULL);
    assert_true(cairn_ts_filter_match(f, a));
    assert_false(cairn_ts_filter_match(f, b));
    cairn_ts_filter_free(f);
    /* quoted in redis-cli as x="y y": the server sees x=y y */
    cairn_ts_labels *sp = mk("x", "y y", NULL);
    f = pf("x=y y", NULL);
    assert_true(cairn_ts_filter_match(f, sp));
    cairn_ts_filter_free(f);
    f = pf("x=(y y,z z)", NULL);
    assert_true(cairn_ts_filter_match(f, sp));
    cairn_ts_filter_free(f);
    cairn_ts_labels_free(sp);
    cairn_ts_labels_free(a);
    cairn_ts_labels_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels_build),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_match_truth_tables),
        cmocka_unit_test(test_index_vs_reference),
        cmocka_unit_test(test_index_ids),
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_decode_damage),
        cmocka_unit_test(test_rts_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
