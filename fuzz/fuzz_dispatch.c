/*
 * fuzz_dispatch.c — fuzz target for cairn-server's command dispatch: the
 * input is a client byte stream (RESP multibulk and inline commands) after
 * a first byte that picks the mode. Each run opens a fresh database on the
 * in-memory env and a server session over it (srv_session_new: the
 * server's own parser, command table, argument and ACL checks, batches of
 * pipelined writes, MULTI queue, committer threads; no loop, no sockets),
 * feeds it the stream and checks the replies.
 *
 * Modes (bit 0 of the first byte):
 *   - one by one: each command's bytes are fed alone (the stream is split
 *     with the same parser and limits first). After each: the replies are
 *     complete, valid RESP values and exactly one per command (none for an
 *     empty command or an incomplete tail; one error, then the connection
 *     closed, for a protocol error; at most one once it is closed); RESP3
 *     types only after HELLO 3; QUEUED only inside MULTI, and EXEC's array
 *     holds as many replies as commands were queued.
 *   - pipelined: the whole stream, fed in pieces of 1..127 bytes (bits
 *     1..7; 0: at once), so pipelined writes form batches. The replies are
 *     valid RESP values, one per command unless the connection closed.
 *   Once closed, nothing more runs and nothing more is replied.
 *
 * Left out of the stream, so that a run touches nothing outside its
 * in-memory database and stays within the fuzzer's memory budget:
 *   - SHUTDOWN: stops the server (no reply);
 *   - MONITOR: from then on the client is fed its own commands after their
 *     replies (and a second MONITOR has no reply), which the one-reply-per-
 *     command model below does not follow; tests/integration's t_monitor
 *     checks the feed instead;
 *   - CONFIG ... proto-max-bulk-len: raising it lets one SETRANGE allocate
 *     up to a terabyte.
 * Neutral as they are: SAVE, BGSAVE, FLUSHALL write to the in-memory env;
 * CONFIG REWRITE answers an error (the session has no config file); INFO
 * reads /proc/self/statm. The server has no DEBUG or blocking command.
 *
 * CAIRN_FUZZ_TRACE=1 in the environment prints each reply (to stderr).
 *
 * Locking: this thread plays the server's loop thread; the session's
 * committers and the engine's threads run beside it (srv_session_feed
 * returns once every job it started is back).
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "fuzz_common.h"
#include "server/server.h"

#define MAX_BULK ((size_t)1 << 20)
#define MAX_DEPTH 32
#define WAL_SEGMENT ((uint64_t)64 << 10)

/* ---------- a RESP reply checker ---------- */

/* The length of the line at p (up to "\r\n", excluded) or -1 if there is no
 * CRLF or a lone CR or LF comes first. */
static long line_len(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n')
            return -1;
        if (p[i] == '\r')
            return i + 1 < n && p[i + 1] == '\n' ? (long)i : -1;
    }
    return -1;
}

/* A whole line as a 64-bit integer (optional '-', digits, no overflow). */
static bool line_int(const uint8_t *p, long l, long long *out)
{
    long i = 0;
    bool neg = false;
    if (l > 0 && p[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i >= l || l - i > 19)
        return false;
    unsigned long long v = 0;
    for (; i < l; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v > (unsigned long long)INT64_MAX + (neg ? 1u : 0u))
        return false;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return true;
}

/* The size of the one complete, valid value at p[0..n), 0 if there is
 * none. RESP3 types are valid only if resp3. */
static size_t resp_value(const uint8_t *p, size_t n, bool resp3, int depth)
{
    if (n < 3 || depth > MAX_DEPTH)
        return 0;
    long l = line_len(p + 1, n - 1);
    if (l < 0)
        return 0;
    const uint8_t *b = p + 1;
    size_t head = 1 + (size_t)l + 2;
    long long v;
    switch (p[0]) {
    case '+':
    case '-':
        return head;
    case ':':
        return line_int(b, l, &v) ? head : 0;
    case '$':
    case '=':
        if (!line_int(b, l, &v) || v < -1)
            return 0;
        if (v == -1)
            return p[0] == '$' ? head : 0;
        if ((unsigned long long)v > n - head || n - head - (size_t)v < 2 ||
            p[head + (size_t)v] != '\r' || p[head + (size_t)v + 1] != '\n')
            return 0;
        if (p[0] == '=' && (!resp3 || v < 4 || p[head + 3] != ':'))
            return 0;
        return head + (size_t)v + 2;
    case '*':
    case '%':
    case '~':
    case '>': {
        if (p[0] != '*' && !resp3)
            return 0;
        if (!line_int(b, l, &v) || v < -1 || (v == -1 && p[0] != '*'))
            return 0;
        if (v == -1)
            return head;
        unsigned long long elems = (unsigned long long)v * (p[0] == '%' ? 2 : 1);
        size_t off = head;
        for (unsigned long long i = 0; i < elems; i++) {
            size_t e = resp_value(p + off, n - off, resp3, depth + 1);
            if (e == 0)
                return 0;
            off += e;
        }
        return off;
    }
    case ',': {
        if (!resp3 || l == 0)
            return 0;
        if ((l == 3 && !memcmp(b, "inf", 3)) ||
            (l == 4 && !memcmp(b, "-inf", 4)) ||
            (l == 3 && !memcmp(b, "nan", 3)))
            return head;
        char buf[64];
        if ((size_t)l >= sizeof buf)
            return 0;
        memcpy(buf, b, (size_t)l);
        buf[l] = '\0';
        char *end = NULL;
        strtod(buf, &end);
        return end == buf + l ? head : 0;
    }
    case '#':
        return resp3 && l == 1 && (b[0] == 't' || b[0] == 'f') ? head : 0;
    case '_':
        return resp3 && l == 0 ? head : 0;
    default: /* the server never sends '(', '!' or '|' */
        return 0;
    }
}

/* How many values out holds; -1 unless it is a sequence of complete,
 * valid values and nothing else. */
static long count_values(const cairn_resp_buf *out, bool resp3)
{
    long n = 0;
    for (size_t off = 0; off < out->len; n++) {
        size_t l = resp_value(out->p + off, out->len - off, resp3, 0);
        if (l == 0)
            return -1;
        off += l;
    }
    return n;
}

/* ---------- the stream, split into commands ---------- */

enum { SP_CMD, SP_EMPTY, SP_BAD, SP_PARTIAL };
enum { N_OTHER, N_MULTI, N_EXEC, N_DISCARD, N_RESET, N_HELLO };

typedef struct span {
    size_t off, len;
    int kind;
    int name; /* N_* */
} span;

static bool eq(const uint8_t *a, size_t al, const char *w)
{
    return al == strlen(w) && !strncasecmp((const char *)a, w, al);
}

/* Commands left out of the stream (see the top of this file). */
static bool excluded(const cairn_resp_cmd *c)
{
    if (eq(c->argv[0], c->argl[0], "shutdown") ||
        eq(c->argv[0], c->argl[0], "monitor"))
        return true;
    if (eq(c->argv[0], c->argl[0], "config"))
        for (size_t i = 1; i < c->argc; i++)
            if (eq(c->argv[i], c->argl[i], "proto-max-bulk-len"))
                return true;
    return false;
}

static int name_of(const cairn_resp_cmd *c)
{
    static const struct {
        const char *w;
        int n;
    } names[] = {{"multi", N_MULTI},     {"exec", N_EXEC},
                 {"discard", N_DISCARD}, {"reset", N_RESET},
                 {"hello", N_HELLO}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (eq(c->argv[0], c->argl[0], names[i].w))
            return names[i].n;
    return N_OTHER;
}

/* Split data into spans (excluded commands dropped). The count, or -1
 * when out of memory. */
static long split(const uint8_t *data, size_t size,
                  const cairn_resp_limits *lim, span *sp, size_t cap)
{
    cairn_resp_parser *p = cairn_resp_parser_new(lim);
    if (!p)
        return -1;
    size_t off = 0, n = 0;
    while (off < size && n < cap) {
        cairn_resp_cmd cmd;
        size_t used = 0;
        int rc = cairn_resp_parse(p, data + off, size - off, &cmd, &used,
                                  NULL, 0);
        if (rc == CAIRN_ENOMEM) {
            cairn_resp_parser_free(p);
            return -1;
        }
        if (rc != 1) { /* the rest: a protocol error or incomplete */
            sp[n++] = (span){off, size - off, rc < 0 ? SP_BAD : SP_PARTIAL,
                             N_OTHER};
            break;
        }
        if (cmd.argc == 0)
            sp[n++] = (span){off, used, SP_EMPTY, N_OTHER};
        else if (!excluded(&cmd))
            sp[n++] = (span){off, used, SP_CMD, name_of(&cmd)};
        off += used;
    }
    cairn_resp_parser_free(p);
    return (long)n;
}

/* ---------- the runs ---------- */

/* The array length at the head of a reply, -1 if it is not an array (a
 * null array included). */
static long long array_len(const cairn_resp_buf *out)
{
    long long v;
    long l = line_len(out->p + 1, out->len - 1);
    if (out->len < 4 || out->p[0] != '*' || l < 0 ||
        !line_int(out->p + 1, l, &v))
        return -1;
    return v;
}

static bool is_reply(const cairn_resp_buf *out, const char *s)
{
    return out->len == strlen(s) && !memcmp(out->p, s, out->len);
}

/* Print what was fed and replied (CAIRN_FUZZ_TRACE). */
static void trace(const uint8_t *in, size_t inl, const cairn_resp_buf *out)
{
    static int on = -1;
    if (on < 0)
        on = getenv("CAIRN_FUZZ_TRACE") != NULL;
    if (!on)
        return;
    fprintf(stderr, "> %.*s\n< %.*s\n", (int)(inl > 200 ? 200 : inl),
            (const char *)in, (int)(out->len > 400 ? 400 : out->len),
            (const char *)out->p);
}

static bool starts(const cairn_resp_buf *out, const char *s)
{
    return out->len >= strlen(s) && !memcmp(out->p, s, strlen(s));
}

static void one_by_one(srv_session *ss, const uint8_t *data, const span *sp,
                       size_t n, cairn_resp_buf *out)
{
    bool resp3 = false, in_multi = false, hello_queued = false;
    long long queued = 0;
    for (size_t i = 0; i < n; i++) {
        cairn_resp_reset(out);
        bool was_closed = srv_session_closed(ss);
        int rc = srv_session_feed(ss, data + sp[i].off, sp[i].len, out);
        if (rc == CAIRN_ENOMEM || out->oom)
            return;
        if (was_closed) {
            FUZZ_CHECK(rc == CAIRN_ECLOSED && out->len == 0);
            return;
        }
        FUZZ_CHECK(rc == 0);
        trace(data + sp[i].off, sp[i].len, out);
        bool closed = srv_session_closed(ss);
        /* A HELLO queued in MULTI runs in EXEC: its reply, and those
         * after it in EXEC's array, may be RESP3. */
        long got = count_values(out, resp3 || sp[i].name == N_HELLO ||
                                         (sp[i].name == N_EXEC &&
                                          hello_queued));
        FUZZ_CHECK(got >= 0);
        switch (sp[i].kind) {
        case SP_EMPTY:
        case SP_PARTIAL:
            FUZZ_CHECK(got == 0 && !closed);
            continue;
        case SP_BAD:
            FUZZ_CHECK(got == 1 && closed && out->p[0] == '-');
            return;
        }
        FUZZ_CHECK(closed ? got <= 1 : got == 1);
        if (got == 0)
            return;
        /* The MULTI model. */
        if (is_reply(out, "+QUEUED\r\n")) {
            FUZZ_CHECK(in_multi);
            queued++;
            hello_queued |= sp[i].name == N_HELLO;
        }
        switch (sp[i].name) {
        case N_MULTI:
            if (is_reply(out, "+OK\r\n")) {
                FUZZ_CHECK(!in_multi);
                in_multi = true;
                queued = 0;
                hello_queued = false;
            }
            break;
        case N_EXEC:
            if (!in_multi) {
                FUZZ_CHECK(out->p[0] == '-');
            } else if (out->p[0] != '-') {
                long long al = array_len(out);
                FUZZ_CHECK(al == queued || is_reply(out, "*-1\r\n") ||
                           is_reply(out, "_\r\n"));
                in_multi = false;
                resp3 = srv_session_proto(ss) == 3;
            } else if (!starts(out, "-ERR wrong number of arguments") &&
                       !starts(out, "-NOAUTH") && !starts(out, "-NOPERM")) {
                in_multi = false; /* EXECABORT, or the commit failed */
            } /* else refused before it ran: the transaction goes on */
            break;
        case N_DISCARD:
            if (is_reply(out, "+OK\r\n")) {
                FUZZ_CHECK(in_multi);
                in_multi = false;
            }
            break;
        case N_RESET:
            if (is_reply(out, "+RESET\r\n")) {
                in_multi = false;
                resp3 = false;
            }
            break;
        case N_HELLO:
            if (out->p[0] == '%')
                resp3 = true;
            else if (out->p[0] == '*')
                resp3 = false;
            break;
        }
        if (closed)
            return;
    }
}

static void pipelined(srv_session *ss, const uint8_t *data, const span *sp,
                      size_t n, size_t piece, cairn_resp_buf *out)
{
    size_t total = 0, expect = 0;
    bool bad = false;
    for (size_t i = 0; i < n; i++) {
        total += sp[i].len;
        expect += sp[i].kind == SP_CMD || sp[i].kind == SP_BAD;
        bad |= sp[i].kind == SP_BAD;
    }
    uint8_t *buf = malloc(total ? total : 1);
    if (!buf)
        return;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf + at, data + sp[i].off, sp[i].len);
        at += sp[i].len;
    }
    if (!piece)
        piece = total ? total : 1;
    for (size_t off = 0; off < total; off += piece) {
        size_t len = total - off < piece ? total - off : piece;
        int rc = srv_session_feed(ss, buf + off, len, out);
        if (rc == CAIRN_ENOMEM || out->oom) {
            free(buf);
            return;
        }
        if (rc == CAIRN_ECLOSED)
            break;
        FUZZ_CHECK(rc == 0);
    }
    trace(buf, total, out);
    free(buf);
    bool closed = srv_session_closed(ss);
    long got = count_values(out, true);
    FUZZ_CHECK(got >= 0);
    FUZZ_CHECK(closed ? (size_t)got <= expect : (size_t)got == expect);
    FUZZ_CHECK(!bad || closed);
    /* Closed: nothing more runs. */
    if (closed) {
        size_t before = out->len;
        FUZZ_CHECK(srv_session_feed(ss, (const uint8_t *)"PING\r\n", 6, out) ==
                   CAIRN_ECLOSED);
        FUZZ_CHECK(out->len == before);
    }
}

#define MAX_SPANS 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;

    srv_config cfg;
    srv_config_init(&cfg);
    cfg.max_bulk = MAX_BULK;
    cfg.commit_threads = 1; /* one client: one job at a time */
    cfg.memtable_size = (size_t)1 << 20;
    cfg.block_cache_size = (size_t)8 << 20;
    cairn_resp_limits lim;
    cairn_resp_limits_init(&lim);
    lim.max_bulk = cfg.max_bulk;
    lim.max_args = cfg.max_args;

    span *sp = malloc(MAX_SPANS * sizeof *sp);
    long n = sp ? split(data, size, &lim, sp, MAX_SPANS) : -1;
    cairn_env *env = n >= 0 ? cairn_env_mem_new() : NULL;
    cairn_db *db = NULL;
    srv_session *ss = NULL;
    if (env) {
        cairn_options o;
        srv_db_options(&cfg, &o);
        o.env = env;
        /* Small log segments: the in-memory env copies a preallocated
         * segment whole when it syncs it (64 MiB by default). */
        o.wal_segment_size = WAL_SEGMENT;
        if (cairn_open("/db", &o, &db) == 0)
            ss = srv_session_new(&cfg, db);
    }
    if (ss) {
        cairn_resp_buf out;
        cairn_resp_init(&out, 2);
        if (mode & 1)
            pipelined(ss, data, sp, (size_t)n, mode >> 1, &out);
        else
            one_by_one(ss, data, sp, (size_t)n, &out);
        cairn_resp_free(&out);
        srv_session_free(ss);
    }
    if (db)
        cairn_close(db);
    if (env)
        cairn_env_destroy(env);
    free(sp);
    srv_config_free(&cfg);
    return 0;
}
