/*
 * ts_commands.c — the RedisTimeSeries commands of cairn-server: TS.CREATE,
 * TS.ALTER, TS.ADD, TS.MADD, TS.INCRBY, TS.DECRBY, TS.DEL, TS.GET,
 * TS.MGET, TS.RANGE, TS.REVRANGE, TS.MRANGE, TS.MREVRANGE, TS.CREATERULE,
 * TS.DELETERULE, TS.INFO and TS.QUERYINDEX, with the options, reply shapes
 * (RESP2, and RESP3 where RedisTimeSeries answers differently: maps for
 * labels, TS.INFO, TS.MGET and TS.MRANGE, doubles for values) and error
 * texts of RedisTimeSeries 1.10 / 1.12, over the engine's time-series
 * interface (cairn.h). This file parses and replies; the engine stores.
 *
 * Invariants:
 *   - Every argument is parsed and checked before the engine is called,
 *     so a command answering with one error has written nothing. TS.MADD
 *     answers per sample (as RedisTimeSeries does): a bad sample is an
 *     error in its slot of the reply, the others are written.
 *   - A write runs in one transaction through cmd_run_write: EXEC's (or a
 *     pipelined batch's) x->txn, or one of its own, committed and retried
 *     on a conflict. The engine's user-facing refusals (no such key, wrong
 *     type, duplicate, retention, ...) become replies; any other engine
 *     error goes back to cmd_run_write, which aborts (a conflict retries).
 *   - A read passes x->txn (NULL outside EXEC) so that inside EXEC it sees
 *     the transaction's own writes. FILTER resolution and label reads go
 *     to the database now (the engine has no transactional form of them).
 *   - Replies are built in x->out only; a multi-series reply is built in a
 *     scratch buffer and copied once complete, so an error found midway
 *     replaces it whole.
 * Locking: none of its own. The engine serializes calls on one series;
 * a write's series stay locked until its transaction ends, so these
 * commands never run on the loop thread (commands.c flags writes
 * CMD_BLOCKING and reads CMD_OFFLOOP).
 */
#include "server/ts_commands.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/keyspace.h"

/* The most points one reply may carry (a guard against EMPTY over a long
 * gap with a tiny bucket, or a huge raw range): past it the command fails
 * instead of building gigabytes of reply. */
#define TS_MAX_REPLY_POINTS 10000000u

#define E_NOKEY "TSDB: the key does not exist"
#define E_WRONGTYPE                                                          \
    "WRONGTYPE Operation against a key holding the wrong kind of value"
#define E_EXISTS "TSDB: key already exists"
#define E_BLOCKED                                                            \
    "TSDB: Error at upsert, update is not supported when DUPLICATE_POLICY " \
    "is set to BLOCK mode"
#define E_OLD "TSDB: Timestamp is older than retention"
#define E_BAD_TS "TSDB: invalid timestamp"
#define E_NEG_TS "TSDB: invalid timestamp, must be a nonnegative integer"
#define E_BAD_VALUE "TSDB: invalid value"
#define E_TOO_MANY                                                           \
    "ERR the reply would hold more than 10000000 samples (narrow the "      \
    "range, or use COUNT or AGGREGATION)"

/* ---------- arguments ---------- */

static bool kw(const cmd_ctx *x, size_t i, const char *word)
{
    size_t n = strlen(word);
    return i < x->argc && x->argl[i] == n &&
           strncasecmp((const char *)x->argv[i], word, n) == 0;
}

/* A whole argument as a signed 64-bit integer, as Redis reads one: no
 * sign but '-', no leading zeros, no spaces, "-0" refused. */
static bool parse_i64(const uint8_t *p, size_t n, int64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    size_t i = 0;
    bool neg = p[0] == '-';
    if (neg && ++i == n)
        return false;
    if (p[i] == '0' && (n > i + 1 || neg))
        return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = (unsigned)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return false;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return false;
        *out = (int64_t)v;
    }
    return true;
}

static bool arg_i64(const cmd_ctx *x, size_t i, int64_t *out)
{
    return i < x->argc && parse_i64(x->argv[i], x->argl[i], out);
}

/* A non-negative timestamp argument (range ends, FILTER_BY_TS, ALIGN). */
static bool arg_ts(const cmd_ctx *x, size_t i, int64_t *out)
{
    return arg_i64(x, i, out) && *out >= 0;
}

/* A sample value: a finite decimal number (optional sign, digits with an
 * optional fraction, optional exponent), as RedisTimeSeries accepts them:
 * no NaN, no infinity, no hexadecimal, nothing that overflows a double. */
static bool parse_value(const uint8_t *p, size_t n, double *out)
{
    char buf[512];
    if (n == 0 || n >= sizeof buf)
        return false;
    size_t i = 0, digits = 0;
    if (p[i] == '-' || p[i] == '+')
        i++;
    while (i < n && isdigit(p[i]))
        i++, digits++;
    if (i < n && p[i] == '.') {
        i++;
        while (i < n && isdigit(p[i]))
            i++, digits++;
    }
    if (digits == 0)
        return false;
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        size_t e0 = i;
        while (i < n && isdigit(p[i]))
            i++;
        if (i == e0)
            return false;
    }
    if (i != n)
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    double v = strtod(buf, NULL);
    if (!isfinite(v))
        return false;
    *out = v;
    return true;
}

/* A double argument as Redis reads one (strtod over the whole argument, no
 * leading space, no NaN); infinities only if allow_inf. */
static bool parse_double(const uint8_t *p, size_t n, bool allow_inf,
                         double *out)
{
    char buf[256];
    if (n == 0 || n >= sizeof buf || isspace(p[0]) || memchr(p, 0, n))
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    char *end = NULL;
    errno = 0;
    double v = strtod(buf, &end);
    if (end != buf + n || isnan(v) || (!allow_inf && isinf(v)))
        return false;
    *out = v;
    return true;
}

/* A write's timestamp: "*" (the server's clock) or a non-negative integer.
 * NULL, or the error text. */
static const char *write_ts(const cmd_ctx *x, size_t i, int64_t *ts)
{
    if (x->argl[i] == 1 && x->argv[i][0] == '*') {
        *ts = (int64_t)ks_now_ms();
        return NULL;
    }
    if (!parse_i64(x->argv[i], x->argl[i], ts))
        return E_BAD_TS;
    return *ts < 0 ? E_NEG_TS : NULL;
}

/* ---------- replies ---------- */

static void reply_wrong_arity(cmd_ctx *x)
{
    char name[64];
    size_t n = x->argl[0] < sizeof name - 1 ? x->argl[0] : sizeof name - 1;
    for (size_t i = 0; i < n; i++)
        name[i] = (char)tolower(x->argv[0][i]);
    name[n] = '\0';
    cairn_resp_errorf(x->out, "ERR wrong number of arguments for '%s' command",
                      name);
}

static void reply_syntax(cmd_ctx *x)
{
    cairn_resp_error(x->out, "ERR syntax error");
}

/* A value: a RESP3 double, or as RedisTimeSeries does in RESP2 a simple
 * string of its shortest exact decimal form. */
static void reply_value(cairn_resp_buf *b, double v)
{
    if (b->proto == 3) {
        cairn_resp_dbl(b, v);
        return;
    }
    char s[CAIRN_RESP_DBL_CHARS];
    cairn_resp_format_double(v, s);
    cairn_resp_simple(b, s);
}

static void reply_sample(cairn_resp_buf *b, int64_t ts, double v)
{
    cairn_resp_array(b, 2);
    cairn_resp_integer(b, ts);
    reply_value(b, v);
}

/* name/value pairs: RESP3 a map, RESP2 an array of [name, value]. */
static void reply_pair_head(cairn_resp_buf *b, size_t n)
{
    if (b->proto == 3)
        cairn_resp_map(b, n);
    else
        cairn_resp_array(b, n);
}

static void reply_pair(cairn_resp_buf *b, const void *name, size_t nl,
                       const void *value, size_t vl)
{
    if (b->proto != 3)
        cairn_resp_array(b, 2);
    cairn_resp_bulk(b, name, nl);
    if (value)
        cairn_resp_bulk(b, value, vl);
    else
        cairn_resp_null(b);
}

static void reply_labels(cairn_resp_buf *b, const cairn_ts_label *l, size_t n)
{
    reply_pair_head(b, n);
    for (size_t i = 0; i < n; i++)
        reply_pair(b, l[i].name.p, l[i].name.len, l[i].value.p,
                   l[i].value.len);
}

/* SELECTED_LABELS: each selected name with the series' value, or null. */
static void reply_selected(cairn_resp_buf *b, const cairn_ts_label *l,
                           size_t n, const cmd_ctx *x, const size_t *sel,
                           size_t nsel)
{
    reply_pair_head(b, nsel);
    for (size_t s = 0; s < nsel; s++) {
        const uint8_t *name = x->argv[sel[s]];
        size_t nl = x->argl[sel[s]];
        const cairn_ts_label *hit = NULL;
        for (size_t i = 0; i < n && !hit; i++)
            if (l[i].name.len == nl && memcmp(l[i].name.p, name, nl) == 0)
                hit = &l[i];
        reply_pair(b, name, nl, hit ? hit->value.p : NULL,
                   hit ? hit->value.len : 0);
    }
}

/* The reply to an engine refusal a user causes, worded as RedisTimeSeries
 * words it (err: the engine's message, may be empty): 0 when replied, or
 * rc itself when it is not such a refusal (an I/O error, a conflict, ...),
 * for the caller to hand to cmd_run_write. */
static int ts_refusal(cmd_ctx *x, int rc, const char *err, const char *dflt)
{
    switch (rc) {
    case CAIRN_ENOTSUP:
        cairn_resp_error(x->out, E_WRONGTYPE);
        return 0;
    case CAIRN_ENOTFOUND:
        cairn_resp_error(x->out, E_NOKEY);
        return 0;
    case CAIRN_EHISTORY:
        cairn_resp_error(x->out, E_OLD);
        return 0;
    case CAIRN_EINVAL:
    case CAIRN_EEXIST:
        if (err && *err)
            cairn_resp_errorf(x->out, "TSDB: %s", err);
        else if (dflt)
            cairn_resp_error(x->out, dflt);
        else if (rc == CAIRN_EEXIST)
            cairn_resp_error(x->out, E_EXISTS);
        else
            cairn_resp_error(x->out, "TSDB: invalid argument");
        return 0;
    default:
        return rc;
    }
}

/* A read's engine error. Inside EXEC a conflict asks for the whole
 * transaction to run again. */
static void read_fail(cmd_ctx *x, int rc, const char *err)
{
    if (rc == CAIRN_ECONFLICT && x->txn)
        x->txn_conflict = true;
    if (rc == CAIRN_ETOOLARGE) {
        cairn_resp_error(x->out, E_TOO_MANY);
        return;
    }
    if (ts_refusal(x, rc, err, NULL) != 0)
        cmd_reply_engine_error(x->out, rc);
}

/* Is argument i a time series (in t, or x->txn, or the database now)?
 * false with the reply written when it is missing, of another type, or
 * unreadable. */
static bool key_is_series(cmd_ctx *x, cairn_txn *t, size_t i, int *rc_out)
{
    ks_rec r;
    int rc = ks_get(x->db, t ? t : x->txn, x->argv[i], x->argl[i], x->now_ms,
                    &r);
    *rc_out = rc;
    if (rc)
        return false;
    bool found = r.found, series = r.type == KS_TYPE_TS;
    ks_rec_free(&r);
    if (!found)
        cairn_resp_error(x->out, E_NOKEY);
    else if (!series)
        cairn_resp_error(x->out, E_WRONGTYPE);
    return found && series;
}

/* ---------- creation options ---------- */

/* The options of TS.CREATE, TS.ALTER and of the writes that create a
 * missing series (TS.ADD, TS.INCRBY, TS.DECRBY). */
typedef struct ts_opts {
    cairn_ts_options o;     /* o.labels -> labels */
    cairn_ts_label *labels; /* malloc'ed; the bytes are argv's */
    bool set_retention, set_chunk, set_dup, set_labels, set_ignore;
    bool has_on_dup; /* TS.ADD ON_DUPLICATE */
    cairn_ts_dup_policy on_dup;
    bool has_ts; /* TS.INCRBY TIMESTAMP (not "*") */
    int64_t ts;
} ts_opts;

#define OPT_ON_DUP 0x1    /* ON_DUPLICATE allowed (TS.ADD) */
#define OPT_TIMESTAMP 0x2 /* TIMESTAMP allowed (TS.INCRBY / TS.DECRBY) */

static void opts_free(ts_opts *p)
{
    free(p->labels);
    p->labels = NULL;
}

static bool policy_from(const cmd_ctx *x, size_t i, cairn_ts_dup_policy *pol)
{
    static const char *const names[] = {"BLOCK", "FIRST", "LAST",
                                        "MIN",   "MAX",   "SUM"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
        if (kw(x, i, names[k])) {
            *pol = (cairn_ts_dup_policy)k;
            return true;
        }
    return false;
}

static const char *policy_name(cairn_ts_dup_policy p)
{
    static const char *const names[] = {"block", "first", "last",
                                        "min",   "max",   "sum"};
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "block";
}

/* The rules of docs/format/ts.md ("Labels"): a name of 1..65535 bytes
 * without = ! ( ) , or NUL; a value of 1..65535 bytes without ( ) , or
 * NUL. */
static bool label_ok(const uint8_t *p, size_t n, bool name)
{
    if (n == 0 || n > 65535)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '(' || c == ')' || c == ',' || c == 0 ||
            (name && (c == '=' || c == '!')))
            return false;
    }
    return true;
}

static int label_cmp(const void *a, const void *b)
{
    const cairn_ts_label *x = a, *y = b;
    size_t n = x->name.len < y->name.len ? x->name.len : y->name.len;
    int c = memcmp(x->name.p, y->name.p, n);
    if (c)
        return c;
    return x->name.len < y->name.len ? -1 : x->name.len > y->name.len;
}

/* LABELS name value ...: every argument from i to the end. */
static bool parse_labels(cmd_ctx *x, size_t i, ts_opts *p)
{
    size_t n = (x->argc - i) / 2;
    if ((x->argc - i) % 2 || n > 65535) {
        cairn_resp_error(x->out, "TSDB: Couldn't parse LABELS");
        return false;
    }
    free(p->labels);
    p->labels = n ? calloc(n, sizeof *p->labels) : NULL;
    if (n && !p->labels) {
        cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
        return false;
    }
    for (size_t k = 0; k < n; k++) {
        size_t a = i + 2 * k, b = a + 1;
        if (!label_ok(x->argv[a], x->argl[a], true) ||
            !label_ok(x->argv[b], x->argl[b], false)) {
            cairn_resp_error(x->out, "TSDB: Couldn't parse LABELS");
            return false;
        }
        p->labels[k].name = (cairn_ts_str){(const char *)x->argv[a],
                                           x->argl[a]};
        p->labels[k].value = (cairn_ts_str){(const char *)x->argv[b],
                                            x->argl[b]};
    }
    /* Names must be distinct (the engine keeps them sorted anyway). */
    if (n > 1) {
        qsort(p->labels, n, sizeof *p->labels, label_cmp);
        for (size_t k = 1; k < n; k++)
            if (label_cmp(&p->labels[k - 1], &p->labels[k]) == 0) {
                cairn_resp_error(x->out, "TSDB: Couldn't parse LABELS");
                return false;
            }
    }
    p->o.labels = p->labels;
    p->o.nlabels = n;
    p->set_labels = true;
    return true;
}

/* Parse the options from argument i on into *p (initialized here). false:
 * the error is replied (free p either way with opts_free). */
static bool parse_opts(cmd_ctx *x, size_t i, unsigned allow, ts_opts *p)
{
    memset(p, 0, sizeof *p);
    cairn_ts_options_init(&p->o);
    while (i < x->argc) {
        int64_t v;
        if (kw(x, i, "RETENTION")) {
            if (!arg_i64(x, i + 1, &v) || v < 0) {
                cairn_resp_error(x->out, "TSDB: Couldn't parse RETENTION");
                return false;
            }
            p->o.retention_ms = (uint64_t)v;
            p->set_retention = true;
            i += 2;
        } else if (kw(x, i, "ENCODING")) {
            if (i + 1 >= x->argc) {
                reply_wrong_arity(x);
                return false;
            }
            if (kw(x, i + 1, "COMPRESSED")) {
                p->o.uncompressed = false;
            } else if (kw(x, i + 1, "UNCOMPRESSED")) {
                p->o.uncompressed = true;
            } else {
                cairn_resp_error(x->out, "TSDB: unknown ENCODING parameter");
                return false;
            }
            i += 2;
        } else if (kw(x, i, "UNCOMPRESSED") || kw(x, i, "COMPRESSED")) {
            /* The form before ENCODING (redis-py still sends it). */
            p->o.uncompressed = kw(x, i, "UNCOMPRESSED");
            i++;
        } else if (kw(x, i, "CHUNK_SIZE")) {
            if (!arg_i64(x, i + 1, &v)) {
                cairn_resp_error(x->out, "TSDB: Couldn't parse CHUNK_SIZE");
                return false;
            }
            /* The engine's bounds (it seals chunks of 64 bytes at least). */
            if (v < 64 || v > 1048576 || v % 8) {
                cairn_resp_error(x->out, "TSDB: CHUNK_SIZE value must be a "
                                         "multiple of 8 in the range [64 .. "
                                         "1048576]");
                return false;
            }
            p->o.chunk_size = (uint32_t)v;
            p->set_chunk = true;
            i += 2;
        } else if (kw(x, i, "DUPLICATE_POLICY") ||
                   ((allow & OPT_ON_DUP) && kw(x, i, "ON_DUPLICATE"))) {
            bool on = kw(x, i, "ON_DUPLICATE");
            cairn_ts_dup_policy pol;
            if (i + 1 >= x->argc) {
                cairn_resp_error(x->out,
                                 "TSDB: Couldn't parse DUPLICATE_POLICY");
                return false;
            }
            if (!policy_from(x, i + 1, &pol)) {
                cairn_resp_error(x->out, "TSDB: Unknown DUPLICATE_POLICY");
                return false;
            }
            if (on) {
                p->has_on_dup = true;
                p->on_dup = pol;
            } else {
                p->o.duplicate_policy = pol;
                p->set_dup = true;
            }
            i += 2;
        } else if (kw(x, i, "IGNORE")) {
            double d;
            if (i + 2 >= x->argc || !arg_i64(x, i + 1, &v) ||
                !parse_double(x->argv[i + 2], x->argl[i + 2], false, &d)) {
                cairn_resp_error(x->out, "TSDB: Couldn't parse IGNORE");
                return false;
            }
            if (v < 0 || d < 0) {
                cairn_resp_error(x->out,
                                 "TSDB: IGNORE arguments cannot be negative");
                return false;
            }
            p->o.ignore_max_time_ms = (uint64_t)v;
            p->o.ignore_max_val = d;
            p->set_ignore = true;
            i += 3;
        } else if ((allow & OPT_TIMESTAMP) && kw(x, i, "TIMESTAMP")) {
            if (i + 1 >= x->argc) {
                reply_wrong_arity(x);
                return false;
            }
            if (x->argl[i + 1] == 1 && x->argv[i + 1][0] == '*') {
                p->has_ts = false; /* the clock, when the point is added */
            } else {
                const char *e = write_ts(x, i + 1, &p->ts);
                if (e) {
                    cairn_resp_error(x->out, e);
                    return false;
                }
                p->has_ts = true;
            }
            i += 2;
        } else if (kw(x, i, "LABELS")) {
            return parse_labels(x, i + 1, p);
        } else {
            reply_syntax(x);
            return false;
        }
    }
    return true;
}

/* ---------- aggregators ---------- */

static const char *const AGG_LOWER[CAIRN_TS_AGG__COUNT] = {
    "",      "avg",   "sum",   "min",   "max",   "range", "count",
    "first", "last",  "std.p", "std.s", "var.p", "var.s", "twa"};
static const char *const AGG_UPPER[CAIRN_TS_AGG__COUNT] = {
    "",      "AVG",   "SUM",   "MIN",   "MAX",   "RANGE", "COUNT",
    "FIRST", "LAST",  "STD.P", "STD.S", "VAR.P", "VAR.S", "TWA"};

static int agg_of(const cmd_ctx *x, size_t i)
{
    if (i >= x->argc)
        return -1;
    int a = cairn_ts_aggregator_from_name((const char *)x->argv[i],
                                          x->argl[i]);
    return a > CAIRN_TS_AGG_NONE && a < CAIRN_TS_AGG__COUNT ? a : -1;
}

static const char *agg_name(int a, bool upper)
{
    if (a <= CAIRN_TS_AGG_NONE || a >= CAIRN_TS_AGG__COUNT)
        return "";
    return upper ? AGG_UPPER[a] : AGG_LOWER[a];
}

/* ---------- TS.CREATE / TS.ALTER ---------- */

static int create_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const ts_opts *p = arg;
    int rc = cairn_ts_create_ex(x->db, t, x->argv[1], x->argl[1], &p->o);
    if (rc == 0) {
        cairn_resp_simple(x->out, "OK");
        return 0;
    }
    if (rc == CAIRN_EEXIST) { /* whatever the key holds */
        cairn_resp_error(x->out, E_EXISTS);
        return 0;
    }
    return ts_refusal(x, rc, NULL, NULL);
}

void cmd_ts_create(cmd_ctx *x)
{
    ts_opts p;
    if (parse_opts(x, 2, 0, &p))
        cmd_run_write(x, create_op, &p);
    opts_free(&p);
}

static int alter_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const ts_opts *p = arg;
    cairn_ts_alter_opts a = {
        .set_retention = p->set_retention,
        .retention_ms = p->o.retention_ms,
        .set_chunk_size = p->set_chunk,
        .chunk_size = p->o.chunk_size,
        .set_duplicate_policy = p->set_dup,
        .duplicate_policy = p->o.duplicate_policy,
        .set_labels = p->set_labels,
        .labels = p->o.labels,
        .nlabels = p->o.nlabels,
        .set_ignore = p->set_ignore,
        .ignore_max_time_ms = p->o.ignore_max_time_ms,
        .ignore_max_val = p->o.ignore_max_val,
    };
    char err[256] = "";
    int rc = cairn_ts_alter(x->db, t, x->argv[1], x->argl[1], &a, err,
                            sizeof err);
    if (rc == 0) {
        cairn_resp_simple(x->out, "OK");
        return 0;
    }
    return ts_refusal(x, rc, err, NULL);
}

void cmd_ts_alter(cmd_ctx *x)
{
    ts_opts p;
    /* ENCODING is taken and ignored, as RedisTimeSeries does: a series
     * keeps the encoding it was created with. */
    if (parse_opts(x, 2, 0, &p))
        cmd_run_write(x, alter_op, &p);
    opts_free(&p);
}

/* ---------- TS.ADD / TS.MADD ---------- */

/* The reply for one sample's outcome res (cairn_ts_add_many_ex's result)
 * at ts of series key: its timestamp, or the error. An ignored sample
 * (IGNORE) answers the series' newest timestamp, as RedisTimeSeries
 * does. */
static void reply_add_result(cmd_ctx *x, cairn_txn *t, const uint8_t *key,
                             size_t klen, int64_t ts, int res)
{
    switch (res) {
    case 0:
        cairn_resp_integer(x->out, ts);
        break;
    case CAIRN_TS_IGNORED: {
        bool found = false;
        cairn_ts_point p;
        if (cairn_ts_get_last(x->db, t, key, klen, false, &found, &p) == 0 &&
            found)
            ts = p.ts;
        cairn_resp_integer(x->out, ts);
        break;
    }
    case CAIRN_EEXIST:
        cairn_resp_error(x->out, E_BLOCKED);
        break;
    case CAIRN_EINVAL:
        cairn_resp_error(x->out, E_BAD_VALUE);
        break;
    default:
        if (ts_refusal(x, res, NULL, NULL) != 0)
            cmd_reply_engine_error(x->out, res);
        break;
    }
}

typedef struct add_args {
    ts_opts opts;
    int64_t ts;
    double v;
} add_args;

static int add_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const add_args *a = arg;
    cairn_ts_write_opts o = {.txn = t,
                             .create = &a->opts.o,
                             .has_on_duplicate = a->opts.has_on_dup,
                             .on_duplicate = a->opts.on_dup};
    cairn_ts_sample s = {x->argv[1], x->argl[1], a->ts, a->v};
    int res = 0;
    int rc = cairn_ts_add_many_ex(x->db, &o, &s, 1, &res);
    if (rc)
        return ts_refusal(x, rc, NULL, NULL);
    reply_add_result(x, t, x->argv[1], x->argl[1], a->ts, res);
    return 0;
}

void cmd_ts_add(cmd_ctx *x)
{
    add_args a;
    memset(&a, 0, sizeof a);
    /* The value is checked first, then the timestamp (RedisTimeSeries'
     * order). */
    if (!parse_value(x->argv[3], x->argl[3], &a.v)) {
        cairn_resp_error(x->out, E_BAD_VALUE);
        return;
    }
    const char *e = write_ts(x, 2, &a.ts);
    if (e) {
        cairn_resp_error(x->out, e);
        return;
    }
    if (parse_opts(x, 4, OPT_ON_DUP, &a.opts))
        cmd_run_write(x, add_op, &a);
    opts_free(&a.opts);
}

typedef struct madd_args {
    size_t n;                /* triples */
    const char **bad;        /* per triple: its error text, or NULL */
    cairn_ts_sample *s;      /* the good ones, in order */
    size_t ns;
    int *res;                /* ns results */
} madd_args;

static int madd_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    madd_args *m = arg;
    if (m->ns) {
        cairn_ts_write_opts o = {.txn = t};
        for (size_t i = 0; i < m->ns; i++)
            m->res[i] = 0;
        int rc = cairn_ts_add_many_ex(x->db, &o, m->s, m->ns, m->res);
        if (rc)
            return ts_refusal(x, rc, NULL, NULL);
    }
    cairn_resp_array(x->out, m->n);
    for (size_t i = 0, j = 0; i < m->n; i++) {
        if (m->bad[i]) {
            cairn_resp_error(x->out, m->bad[i]);
            continue;
        }
        reply_add_result(x, t, m->s[j].key, m->s[j].klen, m->s[j].ts,
                         m->res[j]);
        j++;
    }
    return 0;
}

void cmd_ts_madd(cmd_ctx *x)
{
    if ((x->argc - 1) % 3) {
        reply_wrong_arity(x);
        return;
    }
    madd_args m = {.n = (x->argc - 1) / 3};
    m.bad = calloc(m.n, sizeof *m.bad);
    m.s = calloc(m.n, sizeof *m.s);
    m.res = calloc(m.n, sizeof *m.res);
    if (!m.bad || !m.s || !m.res) {
        cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
        goto out;
    }
    for (size_t i = 0; i < m.n; i++) {
        size_t k = 1 + 3 * i;
        double v;
        int64_t ts;
        if (!parse_value(x->argv[k + 2], x->argl[k + 2], &v)) {
            m.bad[i] = E_BAD_VALUE;
            continue;
        }
        if ((m.bad[i] = write_ts(x, k + 1, &ts)) != NULL)
            continue;
        m.s[m.ns++] = (cairn_ts_sample){x->argv[k], x->argl[k], ts, v};
    }
    cmd_run_write(x, madd_op, &m);
out:
    free(m.bad);
    free(m.s);
    free(m.res);
}

/* ---------- TS.INCRBY / TS.DECRBY ---------- */

typedef struct incr_args {
    ts_opts opts;
    double by;
} incr_args;

static int incr_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const incr_args *a = arg;
    cairn_ts_write_opts o = {.txn = t, .create = &a->opts.o};
    cairn_ts_point p = {0, 0};
    char err[256] = "";
    int rc = cairn_ts_incrby(x->db, &o, x->argv[1], x->argl[1], a->by,
                             a->opts.has_ts, a->opts.ts, &p, err, sizeof err);
    if (rc == 0 || rc == CAIRN_TS_IGNORED) {
        cairn_resp_integer(x->out, p.ts);
        return 0;
    }
    if (rc == CAIRN_EEXIST) { /* a duplicate the series' policy blocks */
        cairn_resp_error(x->out, E_BLOCKED);
        return 0;
    }
    return ts_refusal(x, rc, err, NULL);
}

static void incr_common(cmd_ctx *x, bool decr)
{
    incr_args a;
    memset(&a, 0, sizeof a);
    double by;
    if (!parse_double(x->argv[2], x->argl[2], false, &by)) {
        cairn_resp_error(x->out, "TSDB: invalid increase/decrease value");
        return;
    }
    a.by = decr ? -by : by;
    if (parse_opts(x, 3, OPT_TIMESTAMP, &a.opts))
        cmd_run_write(x, incr_op, &a);
    opts_free(&a.opts);
}

void cmd_ts_incrby(cmd_ctx *x)
{
    incr_common(x, false);
}

void cmd_ts_decrby(cmd_ctx *x)
{
    incr_common(x, true);
}

/* ---------- TS.DEL ---------- */

/* A range end: "-" (from) / "+" (to) or a non-negative timestamp. */
static bool range_end(const cmd_ctx *x, size_t i, bool from, int64_t *out,
                      bool *open)
{
    *open = x->argl[i] == 1 && x->argv[i][0] == (from ? '-' : '+');
    if (*open) {
        *out = from ? INT64_MIN : INT64_MAX;
        return true;
    }
    return arg_ts(x, i, out);
}

typedef struct del_args {
    int64_t from, to;
} del_args;

static int del_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const del_args *d = arg;
    uint64_t n = 0;
    int rc = cairn_ts_del_range(x->db, t, x->argv[1], x->argl[1], d->from,
                                d->to, &n);
    if (rc == 0) {
        cairn_resp_integer(x->out, (int64_t)n);
        return 0;
    }
    if (rc == CAIRN_EHISTORY) {
        cairn_resp_error(x->out, "TSDB: Can't delete an event which is older "
                                 "than retention time, in such case no valid "
                                 "way to update the downsample");
        return 0;
    }
    return ts_refusal(x, rc, NULL, NULL);
}

void cmd_ts_del(cmd_ctx *x)
{
    del_args d;
    bool open;
    if (!range_end(x, 2, true, &d.from, &open)) {
        cairn_resp_error(x->out, "TSDB: wrong fromTimestamp");
        return;
    }
    if (!range_end(x, 3, false, &d.to, &open)) {
        cairn_resp_error(x->out, "TSDB: wrong toTimestamp");
        return;
    }
    cmd_run_write(x, del_op, &d);
}

/* ---------- TS.CREATERULE / TS.DELETERULE ---------- */

typedef struct rule_args {
    int agg;
    int64_t bucket, align;
} rule_args;

/* Both keys must be series (missing: "key does not exist"; else
 * WRONGTYPE), source first. 0: they are; 1: replied; < 0: engine error. */
static int rule_keys(cmd_ctx *x, cairn_txn *t)
{
    for (size_t i = 1; i <= 2; i++) {
        int rc = 0;
        if (!key_is_series(x, t, i, &rc))
            return rc ? rc : 1;
    }
    return 0;
}

static int createrule_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const rule_args *r = arg;
    int rc = rule_keys(x, t);
    if (rc)
        return rc > 0 ? 0 : rc;
    /* A destination fed already (by this source or another) gets
     * RedisTimeSeries' text; the engine refuses it too, in its words. */
    cairn_ts_info *di = NULL;
    if (cairn_ts_info_get(x->db, t, x->argv[2], x->argl[2], &di) == 0) {
        bool fed = di->has_source;
        cairn_ts_info_free(di);
        if (fed) {
            cairn_resp_error(x->out, "TSDB: the destination key already has "
                                     "a src rule");
            return 0;
        }
    }
    char err[256] = "";
    rc = cairn_ts_create_rule(x->db, t, x->argv[1], x->argl[1], x->argv[2],
                              x->argl[2], (cairn_ts_aggregator)r->agg,
                              r->bucket, r->align, err, sizeof err);
    if (rc == 0) {
        cairn_resp_simple(x->out, "OK");
        return 0;
    }
    return ts_refusal(x, rc, err,
                      "TSDB: the destination key already has a src rule");
}

void cmd_ts_createrule(cmd_ctx *x)
{
    if ((x->argc != 6 && x->argc != 7) || !kw(x, 3, "AGGREGATION")) {
        reply_wrong_arity(x);
        return;
    }
    rule_args r = {.agg = agg_of(x, 4)};
    if (r.agg < 0) {
        cairn_resp_error(x->out, "TSDB: Unknown aggregation type");
        return;
    }
    if (!arg_i64(x, 5, &r.bucket)) {
        cairn_resp_error(x->out, "TSDB: Couldn't parse AGGREGATION");
        return;
    }
    if (r.bucket <= 0) {
        cairn_resp_error(x->out,
                         "TSDB: bucketDuration must be greater than zero");
        return;
    }
    if (x->argc == 7 && !arg_ts(x, 6, &r.align)) {
        cairn_resp_error(x->out, "TSDB: Couldn't parse alignTimestamp");
        return;
    }
    if (x->argl[1] == x->argl[2] &&
        memcmp(x->argv[1], x->argv[2], x->argl[1]) == 0) {
        cairn_resp_error(x->out, "TSDB: the source key and destination key "
                                 "should be different");
        return;
    }
    cmd_run_write(x, createrule_op, &r);
}

static int deleterule_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    int rc = rule_keys(x, t);
    if (rc)
        return rc > 0 ? 0 : rc;
    char err[256] = "";
    rc = cairn_ts_delete_rule(x->db, t, x->argv[1], x->argl[1], x->argv[2],
                              x->argl[2], err, sizeof err);
    if (rc == 0) {
        cairn_resp_simple(x->out, "OK");
        return 0;
    }
    if (rc == CAIRN_ENOTFOUND) { /* both keys are series: no such rule */
        cairn_resp_error(x->out, "TSDB: compaction rule does not exist");
        return 0;
    }
    return ts_refusal(x, rc, err, NULL);
}

void cmd_ts_deleterule(cmd_ctx *x)
{
    cmd_run_write(x, deleterule_op, NULL);
}

/* ---------- TS.GET / TS.INFO ---------- */

void cmd_ts_get(cmd_ctx *x)
{
    bool latest = false;
    if (x->argc > 3) {
        reply_wrong_arity(x);
        return;
    }
    if (x->argc == 3) {
        if (!kw(x, 2, "LATEST")) {
            int rc = 0; /* a missing or wrong key is reported first */
            if (key_is_series(x, NULL, 1, &rc))
                cairn_resp_error(x->out, "TSDB: wrong 3rd argument");
            else if (rc)
                read_fail(x, rc, NULL);
            return;
        }
        latest = true;
    }
    bool found = false;
    cairn_ts_point p;
    int rc = cairn_ts_get_last(x->db, x->txn, x->argv[1], x->argl[1], latest,
                               &found, &p);
    if (rc) {
        read_fail(x, rc, NULL);
        return;
    }
    if (found)
        reply_sample(x->out, p.ts, p.v);
    else
        cairn_resp_array(x->out, 0);
}

/* A field name of TS.INFO (RedisTimeSeries writes them as simple
 * strings, map keys included). */
static void info_field(cairn_resp_buf *b, const char *name)
{
    cairn_resp_simple(b, name);
}

void cmd_ts_info(cmd_ctx *x)
{
    bool debug = false;
    if (x->argc > 3) {
        reply_wrong_arity(x);
        return;
    }
    if (x->argc == 3) {
        if (!kw(x, 2, "DEBUG")) {
            reply_syntax(x);
            return;
        }
        debug = true;
    }
    cairn_ts_info *in = NULL;
    int rc = cairn_ts_info_get(x->db, x->txn, x->argv[1], x->argl[1], &in);
    if (rc) {
        read_fail(x, rc, NULL);
        return;
    }
    cairn_resp_buf *b = x->out;
    size_t fields = 14 + (debug ? 2 : 0);
    if (b->proto == 3)
        cairn_resp_map(b, fields);
    else
        cairn_resp_array(b, fields * 2);
    info_field(b, "totalSamples");
    cairn_resp_integer(b, (int64_t)in->total_samples);
    info_field(b, "memoryUsage");
    cairn_resp_integer(b, (int64_t)in->memory_bytes);
    info_field(b, "firstTimestamp");
    cairn_resp_integer(b, in->first_ts);
    info_field(b, "lastTimestamp");
    cairn_resp_integer(b, in->last_ts);
    info_field(b, "retentionTime");
    cairn_resp_integer(b, (int64_t)in->opts.retention_ms);
    info_field(b, "chunkCount");
    cairn_resp_integer(b, (int64_t)in->chunk_count);
    info_field(b, "chunkSize");
    cairn_resp_integer(b, (int64_t)in->opts.chunk_size);
    info_field(b, "chunkType");
    cairn_resp_simple(b, in->opts.uncompressed ? "uncompressed"
                                               : "compressed");
    info_field(b, "duplicatePolicy");
    cairn_resp_simple(b, policy_name(in->opts.duplicate_policy));
    info_field(b, "labels");
    reply_labels(b, in->opts.labels, in->opts.nlabels);
    info_field(b, "sourceKey");
    if (in->has_source)
        cairn_resp_bulk(b, in->source.p, in->source.len);
    else
        cairn_resp_null(b);
    info_field(b, "rules");
    /* RESP3: destination -> [bucket, aggregator, alignment]; RESP2: an
     * array of [destination, bucket, aggregator, alignment]. */
    if (b->proto == 3)
        cairn_resp_map(b, in->nrules);
    else
        cairn_resp_array(b, in->nrules);
    for (size_t i = 0; i < in->nrules; i++) {
        const cairn_ts_rule *r = &in->rules[i];
        if (b->proto != 3)
            cairn_resp_array(b, 4);
        cairn_resp_bulk(b, r->key.p, r->key.len);
        if (b->proto == 3)
            cairn_resp_array(b, 3);
        cairn_resp_integer(b, r->bucket_ms);
        cairn_resp_simple(b, agg_name((int)r->agg, true));
        cairn_resp_integer(b, r->align_ms);
    }
    info_field(b, "ignoreMaxTimeDiff");
    cairn_resp_integer(b, (int64_t)in->opts.ignore_max_time_ms);
    info_field(b, "ignoreMaxValDiff");
    cairn_resp_dbl(b, in->opts.ignore_max_val);
    if (debug) {
        /* The engine reports no per-chunk details: Chunks is empty. */
        info_field(b, "keySelfName");
        cairn_resp_bulk(b, x->argv[1], x->argl[1]);
        info_field(b, "Chunks");
        cairn_resp_array(b, 0);
    }
    cairn_ts_info_free(in);
}

/* ---------- range arguments ---------- */

typedef struct range_args {
    cairn_ts_query q;
    int64_t *fts; /* FILTER_BY_TS values (malloc'ed) */
    bool from_open, to_open;
    bool has_align;
    /* TS.MRANGE / TS.MREVRANGE / TS.MGET: */
    bool withlabels;
    size_t *sel; /* SELECTED_LABELS: argument indexes (malloc'ed) */
    size_t nsel;
    bool has_filter;
    size_t filter_at, nfilter; /* FILTER expressions: argv[at .. at+n) */
    bool groupby;
    size_t group_i; /* GROUPBY's label argument */
    int reducer;
} range_args;

static void range_free(range_args *r)
{
    free(r->fts);
    free(r->sel);
    r->fts = NULL;
    r->sel = NULL;
}

/* Words that end a SELECTED_LABELS list. */
static bool is_option_word(const cmd_ctx *x, size_t i)
{
    static const char *const words[] = {
        "WITHLABELS", "SELECTED_LABELS", "AGGREGATION", "ALIGN",
        "COUNT",      "FILTER",          "FILTER_BY_TS", "FILTER_BY_VALUE",
        "GROUPBY",    "REDUCE",          "LATEST",       "LIMIT"};
    for (size_t k = 0; k < sizeof words / sizeof words[0]; k++)
        if (kw(x, i, words[k]))
            return true;
    return false;
}

static bool bucket_ts_from(const cmd_ctx *x, size_t i, cairn_ts_bucket_ts *bt)
{
    if (kw(x, i, "start") || kw(x, i, "-"))
        *bt = CAIRN_TS_BT_START;
    else if (kw(x, i, "end") || kw(x, i, "+"))
        *bt = CAIRN_TS_BT_END;
    else if (kw(x, i, "mid") || kw(x, i, "~"))
        *bt = CAIRN_TS_BT_MID;
    else
        return false;
    return true;
}

/* SELECTED_LABELS name...: the names up to the next option word. */
static bool parse_selected(cmd_ctx *x, size_t *i, range_args *r)
{
    size_t j = *i + 1;
    while (j < x->argc && !is_option_word(x, j))
        j++;
    size_t n = j - (*i + 1);
    if (n == 0) {
        cairn_resp_error(x->out, "TSDB: SELECT_LABELS should have at least "
                                 "1 parameter");
        return false;
    }
    free(r->sel);
    r->sel = malloc(n * sizeof *r->sel);
    if (!r->sel) {
        cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
        return false;
    }
    for (size_t k = 0; k < n; k++)
        r->sel[k] = *i + 1 + k;
    r->nsel = n;
    *i = j;
    return true;
}

/* Parse "from to [options]" from argument i on (multi: the TS.MRANGE
 * options too). false: the error is replied (range_free either way). */
static bool parse_range(cmd_ctx *x, size_t i, bool multi, bool reverse,
                        range_args *r)
{
    memset(r, 0, sizeof *r);
    r->q.reverse = reverse;
    r->q.max_points = TS_MAX_REPLY_POINTS;
    if (!range_end(x, i, true, &r->q.from, &r->from_open)) {
        cairn_resp_error(x->out, "TSDB: wrong fromTimestamp");
        return false;
    }
    if (!range_end(x, i + 1, false, &r->q.to, &r->to_open)) {
        cairn_resp_error(x->out, "TSDB: wrong toTimestamp");
        return false;
    }
    i += 2;
    while (i < x->argc) {
        int64_t v;
        if (kw(x, i, "LATEST")) {
            r->q.latest = true;
            i++;
        } else if (kw(x, i, "FILTER_BY_TS")) {
            size_t j = i + 1;
            while (j < x->argc && arg_ts(x, j, &v))
                j++;
            size_t n = j - i - 1;
            if (n == 0) {
                cairn_resp_error(x->out, "TSDB: FILTER_BY_TS one or more "
                                         "arguments are missing");
                return false;
            }
            free(r->fts);
            r->fts = malloc(n * sizeof *r->fts);
            if (!r->fts) {
                cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
                return false;
            }
            for (size_t k = 0; k < n; k++)
                arg_ts(x, i + 1 + k, &r->fts[k]);
            r->q.filter_ts = r->fts;
            r->q.n_filter_ts = n;
            i = j;
        } else if (kw(x, i, "FILTER_BY_VALUE")) {
            if (i + 2 >= x->argc) {
                cairn_resp_error(x->out, "TSDB: FILTER_BY_VALUE one or more "
                                         "arguments are missing");
                return false;
            }
            if (!parse_double(x->argv[i + 1], x->argl[i + 1], true,
                              &r->q.filter_min)) {
                cairn_resp_error(x->out, "TSDB: Couldn't parse MIN");
                return false;
            }
            if (!parse_double(x->argv[i + 2], x->argl[i + 2], true,
                              &r->q.filter_max)) {
                cairn_resp_error(x->out, "TSDB: Couldn't parse MAX");
                return false;
            }
            r->q.has_filter_value = true;
            i += 3;
        } else if (kw(x, i, "COUNT")) {
            if (i + 1 >= x->argc) {
                cairn_resp_error(x->out, "TSDB: COUNT argument is missing");
                return false;
            }
            if (!arg_i64(x, i + 1, &v)) {
                cairn_resp_error(x->out, "TSDB: Couldn't parse COUNT");
                return false;
            }
            if (v <= 0) {
                cairn_resp_error(x->out, "TSDB: Invalid COUNT value");
                return false;
            }
            r->q.has_count = true;
            r->q.count = (uint64_t)v;
            i += 2;
        } else if (kw(x, i, "ALIGN")) {
            if (i + 1 >= x->argc) {
                reply_wrong_arity(x);
                return false;
            }
            if (kw(x, i + 1, "start") || kw(x, i + 1, "-")) {
                r->q.align_kind = CAIRN_TS_ALIGN_START;
            } else if (kw(x, i + 1, "end") || kw(x, i + 1, "+")) {
                r->q.align_kind = CAIRN_TS_ALIGN_END;
            } else if (arg_ts(x, i + 1, &v)) {
                r->q.align_kind = CAIRN_TS_ALIGN_VALUE;
                r->q.align = v;
            } else {
                cairn_resp_error(x->out, "TSDB: unknown ALIGN parameter");
                return false;
            }
            r->has_align = true;
            i += 2;
        } else if (kw(x, i, "AGGREGATION")) {
            if (i + 2 >= x->argc) {
                cairn_resp_error(x->out, "TSDB: Couldn't parse AGGREGATION");
                return false;
            }
            int a = agg_of(x, i + 1);
            if (a < 0) {
                cairn_resp_error(x->out, "TSDB: Unknown aggregation type");
                return false;
            }
            if (!arg_i64(x, i + 2, &v)) {
                cairn_resp_error(x->out, "TSDB: Couldn't parse AGGREGATION");
                return false;
            }
            if (v <= 0) {
                cairn_resp_error(x->out, "TSDB: bucketDuration must be "
                                         "greater than zero");
                return false;
            }
            r->q.agg = (cairn_ts_aggregator)a;
            r->q.bucket = v;
            /* BUCKETTIMESTAMP and EMPTY follow it, in either order. */
            size_t j = i + 3;
            bool bt = false, empty = false;
            for (;;) {
                if (!bt && kw(x, j, "BUCKETTIMESTAMP")) {
                    if (j + 1 >= x->argc) {
                        reply_wrong_arity(x);
                        return false;
                    }
                    if (!bucket_ts_from(x, j + 1, &r->q.bucket_ts)) {
                        cairn_resp_error(x->out, "TSDB: unknown "
                                                 "BUCKETTIMESTAMP parameter");
                        return false;
                    }
                    bt = true;
                    j += 2;
                } else if (!empty && kw(x, j, "EMPTY")) {
                    r->q.empty = true;
                    empty = true;
                    j++;
                } else {
                    break;
                }
            }
            i = j;
        } else if (kw(x, i, "BUCKETTIMESTAMP")) {
            cairn_resp_error(x->out, "TSDB: BUCKETTIMESTAMP flag should be "
                                     "the 3rd or 4th flag after AGGREGATION "
                                     "flag");
            return false;
        } else if (kw(x, i, "EMPTY")) {
            cairn_resp_error(x->out, "TSDB: EMPTY flag should be the 3rd or "
                                     "5th flag after AGGREGATION flag");
            return false;
        } else if (multi && kw(x, i, "WITHLABELS")) {
            r->withlabels = true;
            i++;
        } else if (multi && kw(x, i, "SELECTED_LABELS")) {
            if (!parse_selected(x, &i, r))
                return false;
        } else if (multi && kw(x, i, "FILTER")) {
            /* The expressions run to GROUPBY or the end. */
            size_t j = i + 1;
            while (j < x->argc && !kw(x, j, "GROUPBY"))
                j++;
            r->has_filter = true;
            r->filter_at = i + 1;
            r->nfilter = j - i - 1;
            i = j;
        } else if (multi && kw(x, i, "GROUPBY")) {
            if (!r->has_filter) {
                cairn_resp_error(x->out, "TSDB: GROUPBY should always come "
                                         "after filter");
                return false;
            }
            if (i + 4 != x->argc || !kw(x, i + 2, "REDUCE")) {
                reply_wrong_arity(x);
                return false;
            }
            int a = agg_of(x, i + 3);
            if (a < 0 || a == CAIRN_TS_AGG_FIRST || a == CAIRN_TS_AGG_LAST ||
                a == CAIRN_TS_AGG_TWA) {
                cairn_resp_error(x->out, "TSDB: Invalid reducer type");
                return false;
            }
            r->groupby = true;
            r->group_i = i + 1;
            r->reducer = a;
            i += 4;
        } else {
            reply_syntax(x);
            return false;
        }
    }
    if (r->has_align) {
        if (r->q.agg == CAIRN_TS_AGG_NONE) {
            cairn_resp_error(x->out, "TSDB: ALIGN parameter can only be used "
                                     "with AGGREGATION");
            return false;
        }
        if (r->q.align_kind == CAIRN_TS_ALIGN_START && r->from_open) {
            cairn_resp_error(x->out, "TSDB: start alignment can only be used "
                                     "with explicit start timestamp");
            return false;
        }
        if (r->q.align_kind == CAIRN_TS_ALIGN_END && r->to_open) {
            cairn_resp_error(x->out, "TSDB: end alignment can only be used "
                                     "with explicit end timestamp");
            return false;
        }
    }
    if (multi) {
        if (!r->has_filter) {
            cairn_resp_error(x->out, "TSDB: missing FILTER argument");
            return false;
        }
        if (r->nfilter == 0) {
            cairn_resp_error(x->out,
                             "TSDB: missing labels for filter argument");
            return false;
        }
        if (r->withlabels && r->nsel) {
            cairn_resp_error(x->out, "TSDB: cannot accept WITHLABELS and "
                                     "SELECT_LABELS together");
            return false;
        }
    }
    return true;
}

static void reply_points(cairn_resp_buf *b, const cairn_ts_point *p, size_t n)
{
    cairn_resp_array(b, n);
    for (size_t i = 0; i < n; i++)
        reply_sample(b, p[i].ts, p[i].v);
}

/* ---------- TS.RANGE / TS.REVRANGE ---------- */

static void range_common(cmd_ctx *x, bool reverse)
{
    range_args r;
    size_t mark = x->out->len;
    if (!parse_range(x, 2, false, reverse, &r)) {
        /* RedisTimeSeries reports a missing or wrong key before a bad
         * option: keep the parse error only if the key is a series. */
        size_t n = x->out->len - mark;
        uint8_t *e = malloc(n ? n : 1);
        if (e) {
            memcpy(e, x->out->p + mark, n);
            x->out->len = mark;
            int rc = 0;
            if (key_is_series(x, NULL, 1, &rc))
                cairn_resp_raw(x->out, e, n);
            else if (rc)
                read_fail(x, rc, NULL);
            free(e);
        }
        range_free(&r);
        return;
    }
    cairn_ts_point *pts = NULL;
    size_t n = 0;
    int rc = cairn_ts_query_range_ex(x->db, x->txn, x->argv[1], x->argl[1],
                                     &r.q, &pts, &n);
    if (rc)
        read_fail(x, rc, NULL);
    else
        reply_points(x->out, pts, n);
    cairn_free(pts);
    range_free(&r);
}

void cmd_ts_range(cmd_ctx *x)
{
    range_common(x, false);
}

void cmd_ts_revrange(cmd_ctx *x)
{
    range_common(x, true);
}

/* ---------- FILTER ---------- */

/* The series the FILTER expressions argv[at .. at+n) select, in key
 * order: true and *keys (free with cairn_ts_keys_free), or false with
 * the error replied. */
static bool resolve_filter(cmd_ctx *x, size_t at, size_t n,
                           cairn_ts_str **keys, size_t *nk)
{
    const char **ex = malloc((n ? n : 1) * sizeof *ex);
    size_t *len = malloc((n ? n : 1) * sizeof *len);
    if (!ex || !len) {
        free(ex);
        free(len);
        cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        ex[i] = (const char *)x->argv[at + i];
        len[i] = x->argl[at + i];
    }
    char err[256] = "";
    *keys = NULL;
    *nk = 0;
    int rc = cairn_ts_query_index(x->db, ex, len, n, keys, nk, err,
                                  sizeof err);
    free(ex);
    free(len);
    if (rc == 0)
        return true;
    if (rc == CAIRN_EINVAL) {
        /* The engine explains which expression and why; RedisTimeSeries
         * answers with its fixed texts. */
        static const char *const known[] = {
            "please provide at least one matcher", "failed parsing labels",
            "missing labels for filter argument"};
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            if (strncmp(err, known[k], strlen(known[k])) == 0) {
                cairn_resp_errorf(x->out, "TSDB: %s", known[k]);
                return false;
            }
        cairn_resp_error(x->out, "TSDB: failed parsing labels");
        return false;
    }
    read_fail(x, rc, NULL);
    return false;
}

/* A series' labels, when the reply shows them. Missing series: 1 (the
 * caller skips it). 0, 1, or an engine error. */
static int series_labels(cmd_ctx *x, const cairn_ts_str *key,
                         cairn_ts_label **l, size_t *n)
{
    *l = NULL;
    *n = 0;
    int rc = cairn_ts_get_labels_ex(x->db, x->txn, key->p, key->len, l, n);
    if (rc == CAIRN_ENOTFOUND || rc == CAIRN_ENOTSUP)
        return 1;
    return rc;
}

/* Copy the entries built in tmp (n of them) into x->out under their
 * header (RESP3 a map, RESP2 an array), or the error. */
static void flush_entries(cmd_ctx *x, cairn_resp_buf *tmp, size_t n)
{
    if (tmp->oom) {
        cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
        return;
    }
    if (x->out->proto == 3)
        cairn_resp_map(x->out, n);
    else
        cairn_resp_array(x->out, n);
    cairn_resp_raw(x->out, tmp->p, tmp->len);
}

/* The start of one entry (RESP3: its key in the map; RESP2: an array of
 * parts starting with the key). */
static void entry_head(cairn_resp_buf *b, const void *key, size_t kl,
                       size_t parts)
{
    if (b->proto == 3) {
        cairn_resp_bulk(b, key, kl);
        cairn_resp_array(b, parts);
    } else {
        cairn_resp_array(b, parts + 1);
        cairn_resp_bulk(b, key, kl);
    }
}

/* ---------- TS.QUERYINDEX ---------- */

void cmd_ts_queryindex(cmd_ctx *x)
{
    cairn_ts_str *keys = NULL;
    size_t n = 0;
    if (!resolve_filter(x, 1, x->argc - 1, &keys, &n))
        return;
    cairn_resp_set(x->out, n); /* RESP2: an array */
    for (size_t i = 0; i < n; i++)
        cairn_resp_bulk(x->out, keys[i].p, keys[i].len);
    cairn_ts_keys_free(keys, n);
}

/* ---------- TS.MGET ---------- */

void cmd_ts_mget(cmd_ctx *x)
{
    range_args r;
    memset(&r, 0, sizeof r);
    bool latest = false;
    size_t i = 1;
    while (i < x->argc && !r.has_filter) {
        if (kw(x, i, "LATEST")) {
            latest = true;
            i++;
        } else if (kw(x, i, "WITHLABELS")) {
            r.withlabels = true;
            i++;
        } else if (kw(x, i, "SELECTED_LABELS")) {
            if (!parse_selected(x, &i, &r)) {
                range_free(&r);
                return;
            }
        } else if (kw(x, i, "FILTER")) {
            r.has_filter = true;
            r.filter_at = i + 1;
            r.nfilter = x->argc - i - 1;
        } else {
            reply_syntax(x);
            range_free(&r);
            return;
        }
    }
    if (!r.has_filter) {
        reply_wrong_arity(x);
        range_free(&r);
        return;
    }
    if (r.withlabels && r.nsel) {
        cairn_resp_error(x->out, "TSDB: cannot accept WITHLABELS and "
                                 "SELECT_LABELS together");
        range_free(&r);
        return;
    }
    if (r.nfilter == 0) {
        cairn_resp_error(x->out, "TSDB: please provide at least one matcher");
        range_free(&r);
        return;
    }
    cairn_ts_str *keys = NULL;
    size_t nk = 0;
    if (!resolve_filter(x, r.filter_at, r.nfilter, &keys, &nk)) {
        range_free(&r);
        return;
    }
    cairn_resp_buf tmp;
    cairn_resp_init(&tmp, x->out->proto);
    size_t entries = 0;
    int rc = 0;
    for (size_t k = 0; k < nk && rc == 0; k++) {
        bool found = false;
        cairn_ts_point p;
        rc = cairn_ts_get_last(x->db, x->txn, keys[k].p, keys[k].len, latest,
                               &found, &p);
        if (rc == CAIRN_ENOTFOUND || rc == CAIRN_ENOTSUP) {
            rc = 0; /* gone since the filter ran */
            continue;
        }
        if (rc)
            break;
        cairn_ts_label *l = NULL;
        size_t nl = 0;
        if (r.withlabels || r.nsel) {
            rc = series_labels(x, &keys[k], &l, &nl);
            if (rc) {
                rc = rc == 1 ? 0 : rc;
                continue;
            }
        }
        entry_head(&tmp, keys[k].p, keys[k].len, 2);
        if (r.nsel)
            reply_selected(&tmp, l, nl, x, r.sel, r.nsel);
        else
            reply_labels(&tmp, l, nl);
        if (found)
            reply_sample(&tmp, p.ts, p.v);
        else
            cairn_resp_array(&tmp, 0);
        cairn_free(l);
        entries++;
    }
    if (rc)
        read_fail(x, rc, NULL);
    else
        flush_entries(x, &tmp, entries);
    cairn_resp_free(&tmp);
    cairn_ts_keys_free(keys, nk);
    range_free(&r);
}

/* ---------- TS.MRANGE / TS.MREVRANGE ---------- */

/* One series of a GROUPBY: its key, the value of the grouping label, its
 * labels (the block the value points into) and its points. */
typedef struct grp_series {
    const cairn_ts_str *key;
    cairn_ts_str gval;
    cairn_ts_label *labels;
    cairn_ts_point *pts;
    size_t n;
} grp_series;

static int str_cmp(const cairn_ts_str *a, const cairn_ts_str *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->p, b->p, n) : 0;
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

static int grp_cmp(const void *a, const void *b)
{
    const grp_series *x = a, *y = b;
    int c = str_cmp(&x->gval, &y->gval);
    return c ? c : str_cmp(x->key, y->key);
}

static int point_ts_cmp(const void *a, const void *b)
{
    const cairn_ts_point *x = a, *y = b;
    return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* Reduce the k values v[] of one timestamp across the series of a group
 * (GROUPBY ... REDUCE). NaN values are left out, as the engine's
 * aggregations leave them out: all NaN gives NaN (0 for count and sum). */
static double reduce_values(int reducer, const double *v, size_t k)
{
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (isnan(v[i]))
            continue;
        m++;
        sum += v[i];
        if (v[i] < mn)
            mn = v[i];
        if (v[i] > mx)
            mx = v[i];
    }
    if (reducer == CAIRN_TS_AGG_COUNT)
        return (double)m;
    if (reducer == CAIRN_TS_AGG_SUM)
        return sum;
    if (m == 0)
        return NAN;
    double mean = sum / (double)m, ss = 0;
    switch (reducer) {
    case CAIRN_TS_AGG_MIN:
        return mn;
    case CAIRN_TS_AGG_MAX:
        return mx;
    case CAIRN_TS_AGG_AVG:
        return mean;
    case CAIRN_TS_AGG_RANGE:
        return mx - mn;
    default:
        break;
    }
    for (size_t i = 0; i < k; i++)
        if (!isnan(v[i]))
            ss += (v[i] - mean) * (v[i] - mean);
    bool sample =
        reducer == CAIRN_TS_AGG_STD_S || reducer == CAIRN_TS_AGG_VAR_S;
    double var = sample ? (m > 1 ? ss / (double)(m - 1) : 0) : ss / (double)m;
    return reducer == CAIRN_TS_AGG_STD_P || reducer == CAIRN_TS_AGG_STD_S
               ? sqrt(var)
               : var;
}

/* Merge the points of g[0..n) (one group) into one series: per
 * timestamp, the reducer over the values the series have there. *out:
 * malloc'ed. */
static int reduce_group(const grp_series *g, size_t n, int reducer,
                        cairn_ts_point **out, size_t *nout)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += g[i].n;
    *out = NULL;
    *nout = 0;
    if (total == 0)
        return 0;
    cairn_ts_point *all = malloc(total * sizeof *all);
    double *vals = malloc(total * sizeof *vals);
    if (!all || !vals) {
        free(all);
        free(vals);
        return CAIRN_ENOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (g[i].n)
            memcpy(all + m, g[i].pts, g[i].n * sizeof *all);
        m += g[i].n;
    }
    qsort(all, total, sizeof *all, point_ts_cmp);
    size_t w = 0;
    for (size_t i = 0; i < total;) {
        size_t j = i, k = 0;
        while (j < total && all[j].ts == all[i].ts)
            vals[k++] = all[j++].v;
        all[w].ts = all[i].ts;
        all[w].v = reduce_values(reducer, vals, k);
        w++;
        i = j;
    }
    free(vals);
    *out = all;
    *nout = w;
    return 0;
}

/* The labels of a reduced series: the grouping label, __reducer__ and
 * __source__ (the keys, comma-separated). */
static void reply_group_labels(cmd_ctx *x, cairn_resp_buf *b,
                               const range_args *r, const grp_series *g,
                               size_t n, const char *rname)
{
    const uint8_t *gl = x->argv[r->group_i];
    size_t gll = x->argl[r->group_i];
    size_t srclen = 0;
    for (size_t i = 0; i < n; i++)
        srclen += g[i].key->len + (i ? 1 : 0);
    char *src = malloc(srclen ? srclen : 1);
    if (!src) {
        b->oom = true;
        return;
    }
    for (size_t i = 0, o = 0; i < n; i++) {
        if (i)
            src[o++] = ',';
        memcpy(src + o, g[i].key->p, g[i].key->len);
        o += g[i].key->len;
    }
    cairn_ts_label l[3] = {
        {{(const char *)gl, gll}, g[0].gval},
        {{"__reducer__", 11}, {rname, strlen(rname)}},
        {{"__source__", 10}, {src, srclen}},
    };
    if (r->nsel)
        reply_selected(b, l, 3, x, r->sel, r->nsel);
    else if (r->withlabels)
        /* RESP3 carries reducer and sources apart (below). */
        reply_labels(b, l, b->proto == 3 ? 1 : 3);
    else
        reply_labels(b, NULL, 0);
    free(src);
}

/* The reduced series of each group, in group order. */
static int mrange_grouped(cmd_ctx *x, const range_args *r,
                          const cairn_ts_str *keys, size_t nk,
                          cairn_resp_buf *tmp, size_t *entries)
{
    grp_series *g = calloc(nk ? nk : 1, sizeof *g);
    if (!g)
        return CAIRN_ENOMEM;
    size_t ng = 0, budget = TS_MAX_REPLY_POINTS;
    int rc = 0;
    /* Each series over the whole query but COUNT (which applies to the
     * reduced result), in time order. */
    cairn_ts_query q = r->q;
    q.has_count = false;
    q.count = 0;
    q.reverse = false;
    const uint8_t *gl = x->argv[r->group_i];
    size_t gll = x->argl[r->group_i];
    for (size_t k = 0; k < nk && rc == 0; k++) {
        cairn_ts_label *l = NULL;
        size_t nl = 0;
        rc = series_labels(x, &keys[k], &l, &nl);
        if (rc) {
            rc = rc == 1 ? 0 : rc;
            continue;
        }
        const cairn_ts_label *hit = NULL;
        for (size_t i = 0; i < nl && !hit; i++)
            if (l[i].name.len == gll && memcmp(l[i].name.p, gl, gll) == 0)
                hit = &l[i];
        if (!hit) { /* not in any group */
            cairn_free(l);
            continue;
        }
        q.max_points = budget ? budget : 1;
        cairn_ts_point *pts = NULL;
        size_t n = 0;
        rc = cairn_ts_query_range_ex(x->db, x->txn, keys[k].p, keys[k].len,
                                     &q, &pts, &n);
        if (rc == CAIRN_ENOTFOUND || rc == CAIRN_ENOTSUP) {
            rc = 0;
            cairn_free(l);
            continue;
        }
        if (rc == 0 && n > budget)
            rc = CAIRN_ETOOLARGE;
        if (rc) {
            cairn_free(pts);
            cairn_free(l);
            break;
        }
        budget -= n;
        g[ng++] = (grp_series){&keys[k], hit->value, l, pts, n};
    }
    if (rc == 0 && ng > 1)
        qsort(g, ng, sizeof *g, grp_cmp);
    const char *rname = agg_name(r->reducer, false);
    for (size_t i = 0; rc == 0 && i < ng;) {
        size_t j = i;
        while (j < ng && str_cmp(&g[j].gval, &g[i].gval) == 0)
            j++;
        cairn_ts_point *red = NULL;
        size_t nred = 0;
        rc = reduce_group(g + i, j - i, r->reducer, &red, &nred);
        if (rc)
            break;
        /* The name: label=value. */
        size_t namelen = gll + 1 + g[i].gval.len;
        char *name = malloc(namelen);
        if (!name) {
            free(red);
            rc = CAIRN_ENOMEM;
            break;
        }
        memcpy(name, gl, gll);
        name[gll] = '=';
        memcpy(name + gll + 1, g[i].gval.p, g[i].gval.len);
        entry_head(tmp, name, namelen, tmp->proto == 3 ? 4 : 2);
        free(name);
        reply_group_labels(x, tmp, r, g + i, j - i, rname);
        if (tmp->proto == 3) {
            cairn_resp_map(tmp, 1);
            cairn_resp_bulk_cstr(tmp, "reducers");
            cairn_resp_array(tmp, 1);
            cairn_resp_bulk_cstr(tmp, rname);
            cairn_resp_map(tmp, 1);
            cairn_resp_bulk_cstr(tmp, "sources");
            cairn_resp_array(tmp, j - i);
            for (size_t s = i; s < j; s++)
                cairn_resp_bulk(tmp, g[s].key->p, g[s].key->len);
        }
        size_t cnt = nred;
        if (r->q.has_count && r->q.count < cnt)
            cnt = (size_t)r->q.count;
        cairn_resp_array(tmp, cnt);
        for (size_t s = 0; s < cnt; s++) {
            const cairn_ts_point *p = r->q.reverse ? &red[nred - 1 - s]
                                                   : &red[s];
            reply_sample(tmp, p->ts, p->v);
        }
        free(red);
        (*entries)++;
        i = j;
    }
    for (size_t i = 0; i < ng; i++) {
        cairn_free(g[i].pts);
        cairn_free(g[i].labels);
    }
    free(g);
    return rc;
}

static void mrange_common(cmd_ctx *x, bool reverse)
{
    range_args r;
    if (!parse_range(x, 1, true, reverse, &r)) {
        range_free(&r);
        return;
    }
    cairn_ts_str *keys = NULL;
    size_t nk = 0;
    if (!resolve_filter(x, r.filter_at, r.nfilter, &keys, &nk)) {
        range_free(&r);
        return;
    }
    cairn_resp_buf tmp;
    cairn_resp_init(&tmp, x->out->proto);
    size_t entries = 0;
    int rc = 0;
    if (r.groupby) {
        rc = mrange_grouped(x, &r, keys, nk, &tmp, &entries);
    } else {
        size_t budget = TS_MAX_REPLY_POINTS;
        for (size_t k = 0; k < nk && rc == 0; k++) {
            cairn_ts_label *l = NULL;
            size_t nl = 0;
            if (r.withlabels || r.nsel) {
                rc = series_labels(x, &keys[k], &l, &nl);
                if (rc) {
                    rc = rc == 1 ? 0 : rc;
                    continue;
                }
            }
            r.q.max_points = budget ? budget : 1;
            cairn_ts_point *pts = NULL;
            size_t n = 0;
            rc = cairn_ts_query_range_ex(x->db, x->txn, keys[k].p,
                                         keys[k].len, &r.q, &pts, &n);
            if (rc == CAIRN_ENOTFOUND || rc == CAIRN_ENOTSUP) {
                rc = 0; /* gone since the filter ran */
                cairn_free(l);
                continue;
            }
            if (rc == 0 && n > budget)
                rc = CAIRN_ETOOLARGE;
            if (rc == 0) {
                budget -= n;
                entry_head(&tmp, keys[k].p, keys[k].len, 3 - (tmp.proto != 3));
                if (r.nsel)
                    reply_selected(&tmp, l, nl, x, r.sel, r.nsel);
                else
                    reply_labels(&tmp, l, nl);
                if (tmp.proto == 3) {
                    cairn_resp_map(&tmp, 1);
                    cairn_resp_bulk_cstr(&tmp, "aggregators");
                    if (r.q.agg == CAIRN_TS_AGG_NONE) {
                        cairn_resp_array(&tmp, 0);
                    } else {
                        cairn_resp_array(&tmp, 1);
                        cairn_resp_bulk_cstr(&tmp, agg_name(r.q.agg, false));
                    }
                }
                reply_points(&tmp, pts, n);
                entries++;
            }
            cairn_free(pts);
            cairn_free(l);
        }
    }
    if (rc)
        read_fail(x, rc, NULL);
    else
        flush_entries(x, &tmp, entries);
    cairn_resp_free(&tmp);
    cairn_ts_keys_free(keys, nk);
    range_free(&r);
}

void cmd_ts_mrange(cmd_ctx *x)
{
    mrange_common(x, false);
}

void cmd_ts_mrevrange(cmd_ctx *x)
{
    mrange_common(x, true);
}
