/*
 * test_resp.c — the RESP layer of cairn-server (src/server/resp.c): the
 * incremental request parser and the reply builder.
 *
 *  - Parser: multibulk (zero copy: argv points into the input), binary and
 *    empty arguments, empty commands ("*0", "*-1", blank lines), every
 *    prefix of a command needs more bytes; a pipeline mixing every request
 *    form gives the same transcript (commands, consumed sizes, final state)
 *    fed whole, byte by byte and in random pieces, each piece handed over in
 *    a freshly allocated copy (so the buffer moves and ASan sees any read
 *    past the end); a 10 MiB bulk fed in 4 KiB pieces and a 1 MiB inline
 *    line fed byte by byte finish in well under a second (no rescanning);
 *    every protocol error with its exact Redis wording, whole and byte by
 *    byte, and sticky; inline quoting cases after Redis's sdssplitargs;
 *    custom limits at and past each bound; the "need" hint; a caller that
 *    shrinks its buffer; big argument arrays being released.
 *  - Replies: every writer in RESP2 and RESP3, byte for byte; double
 *    formatting (shortest round-trip text), random doubles read back equal;
 *    oom is set, sticky until reset, and drops writes.
 *  - Fuzz: 20,000 generated streams (valid requests, noise, mutations,
 *    truncations; small and default limits) parsed whole and split at random
 *    (byte by byte every 10th): same transcript, no crash, no bad read.
 *    CAIRN_RESP_FUZZ_N overrides the count, CAIRN_RESP_FUZZ_SEED the seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn.h"
#include "server/resp.h"
#include "test_util.h"

#define S(lit) (const uint8_t *)(lit), (sizeof(lit) - 1)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------- transcripts */

/* A byte string describing what parsing a stream gave: per command
 * 'C' argc (len bytes)*, then 'N' leftover (needs more) or 'E' rc message. */

static void tb_u64(tbuf *t, uint64_t v)
{
    tb_put(t, &v, sizeof(v));
}

static void tb_cmd(tbuf *t, size_t argc, const uint8_t *const *argv,
                   const size_t *argl, size_t used)
{
    tb_put(t, "C", 1);
    tb_u64(t, used);
    tb_u64(t, argc);
    for (size_t i = 0; i < argc; i++) {
        tb_u64(t, argl[i]);
        tb_put(t, argv[i], argl[i]);
    }
}

enum { FEED_WHOLE, FEED_BYTES, FEED_RANDOM };

/* Parse stream s[0..n) as a connection would: deliver bytes (all at once,
 * one at a time, or in random pieces), each call getting a fresh copy of
 * exactly the delivered, unconsumed bytes. Appends the transcript to t and
 * returns the number of parse calls. */
static size_t run_stream(const cairn_resp_limits *lim, const uint8_t *s,
                         size_t n, int mode, uint64_t seed, tbuf *t)
{
    cairn_resp_parser *p = cairn_resp_parser_new(lim);
    assert_non_null(p);
    size_t start = 0, end = 0, calls = 0;
    switch (mode) {
    case FEED_WHOLE: end = n; break;
    case FEED_BYTES: end = n ? 1 : 0; break;
    default: end = n ? 1 + tu_rand(&seed, n) : 0; break;
    }
    for (;;) {
        size_t avail = end - start;
        uint8_t *copy = malloc(avail ? avail : 1);
        assert_non_null(copy);
        if (avail)
            memcpy(copy, s + start, avail);
        cairn_resp_cmd cmd;
        size_t used = 12345;
        char err[128];
        int rc = cairn_resp_parse(p, copy, avail, &cmd, &used, err,
                                  sizeof(err));
        calls++;
        if (rc == 1) {
            assert_true(used > 0 && used <= avail);
            if (copy[0] == '*') { /* multibulk: zero copy */
                for (size_t i = 0; i < cmd.argc; i++) {
                    assert_true(cmd.argv[i] >= copy);
                    assert_true(cmd.argv[i] + cmd.argl[i] <= copy + used);
                }
            }
            tb_cmd(t, cmd.argc, cmd.argv, cmd.argl, used);
            start += used;
            free(copy);
            continue;
        }
        free(copy);
        if (rc == 0) {
            assert_int_equal(used, 0);
            assert_int_equal(cmd.argc, 0);
            if (end == n) {
                tb_put(t, "N", 1);
                tb_u64(t, n - start);
                break;
            }
            if (mode == FEED_BYTES)
                end++;
            else
                end += 1 + tu_rand(&seed, n - end);
            continue;
        }
        assert_true(rc == CAIRN_EINVAL || rc == CAIRN_ENOMEM);
        assert_int_equal(used, 0);
        tb_put(t, "E", 1);
        tb_u64(t, (uint64_t)(int64_t)rc);
        tb_put(t, err, strlen(err));
        break;
    }
    cairn_resp_parser_free(p);
    return calls;
}

static void assert_same(const tbuf *a, const tbuf *b)
{
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->p, b->p, a->len);
}

/* Parse one request from a fresh parser, whole. */
static int parse1(cairn_resp_parser *p, const uint8_t *buf, size_t len,
                  cairn_resp_cmd *cmd, size_t *used, char *err)
{
    return cairn_resp_parse(p, buf, len, cmd, used, err, 128);
}

static void assert_arg(const cairn_resp_cmd *c, size_t i, const char *s,
                       size_t n)
{
    assert_true(i < c->argc);
    assert_int_equal(c->argl[i], n);
    assert_memory_equal(c->argv[i], s, n);
}

#define ASSERT_ARG(c, i, lit) assert_arg((c), (i), (lit), sizeof(lit) - 1)

/* ----------------------------------------------------------- multibulk */

static void test_multibulk_basic(void **state)
{
    (void)state;
    cairn_resp_parser *p = cairn_resp_parser_new(NULL);
    assert_non_null(p);
    cairn_resp_cmd c;
    size_t used;
    char err[128];
    static const uint8_t req[] =
        "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    assert_int_equal(parse1(p, req, sizeof(req) - 1, &c, &used, err), 1);
    assert_int_equal(used, sizeof(req) - 1);
    assert_int_equal(c.argc, 3);
    ASSERT_ARG(&c, 0, "SET");
    ASSERT_ARG(&c, 1, "key");
    ASSERT_ARG(&c, 2, "value");
    assert_ptr_equal(c.argv[0], req + 8); /* zero copy */
    assert_ptr_equal(c.argv[2], req + 26);

    /* binary bytes (CR, LF, NUL) and an empty argument */
    static const uint8_t bin[] = "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\na\r\n\0b\r\n";
    assert_int_equal(parse1(p, bin, sizeof(bin) - 1, &c, &used, err), 1);
    assert_int_equal(used, sizeof(bin) - 1);
    assert_int_equal(c.argc, 3);
    assert_int_equal(c.argl[1], 0);
    assert_arg(&c, 2, "a\r\n\0b", 5);

    /* pipelined: only the first command is consumed */
    static const uint8_t two[] = "*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPONG\r\n";
    assert_int_equal(parse1(p, two, sizeof(two) - 1, &c, &used, err), 1);
    assert_int_equal(used, 14);
    ASSERT_ARG(&c, 0, "PING");
    assert_int_equal(parse1(p, two + used, sizeof(two) - 1 - used, &c, &used,
                            err),
                     1);
    assert_int_equal(used, 14);
    ASSERT_ARG(&c, 0, "PONG");

    /* "*1" with a large length is fine once the bytes are there */
    uint8_t big[300];
    memcpy(big, "*1\r\n$256\r\n", 10);
    memset(big + 10, 'z', 256);
    memcpy(big + 266, "\r\n", 2);
    assert_int_equal(parse1(p, big, 268, &c, &used, err), 1);
    assert_int_equal(used, 268);
    assert_int_equal(c.argl[0], 256);
    cairn_resp_parser_free(p);
}

static void test_empty_commands(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t used;
    } cases[] = {
        {"*0\r\n", 4},    {"*-1\r\n", 5},  {"\r\n", 2},
        {"*-5\r\n", 5},   {"*-9223372036854775808\r\n", 23},
        {"\n", 1},        {"   \t \r\n", 7}, {"\v\f \n", 4},
        {"*0\r\nPING\r\n", 4},
    };
    cairn_resp_parser *p = cairn_resp_parser_new(NULL);
    assert_non_null(p);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cairn_resp_cmd c;
        size_t used;
        char err[128];
        int rc = parse1(p, (const uint8_t *)cases[i].in, strlen(cases[i].in),
                        &c, &used, err);
        assert_int_equal(rc, 1);
        assert_int_equal(c.argc, 0);
        assert_int_equal(used, cases[i].used);
    }
    cairn_resp_parser_free(p);
}

/* Every proper prefix needs more bytes, both from a fresh parser and from
 * one fed the growing prefix (same bytes each time, in a new copy). */
static void test_prefixes_need_more(void **state)
{
    (void)state;
    static const char *reqs[] = {
        "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n",
        "SET key \"a b\"\r\n",
        "*-1\r\n",
        "*2\r\n$0\r\n\r\n$1\r\nx\r\n",
    };
    for (size_t r = 0; r < sizeof(reqs) / sizeof(reqs[0]); r++) {
        size_t n = strlen(reqs[r]);
        cairn_resp_parser *inc = cairn_resp_parser_new(NULL);
        assert_non_null(inc);
        for (size_t k = 0; k <= n; k++) {
            uint8_t *copy = malloc(k ? k : 1);
            memcpy(copy, reqs[r], k);
            cairn_resp_cmd c;
            size_t used;
            char err[128];
            cairn_resp_parser *fresh = cairn_resp_parser_new(NULL);
            int rc1 = parse1(fresh, copy, k, &c, &used, err);
            int rc2 = parse1(inc, copy, k, &c, &used, err);
            if (k < n) {
                assert_int_equal(rc1, 0);
                assert_int_equal(rc2, 0);
                assert_int_equal(used, 0);
            } else {
                assert_int_equal(rc1, 1);
                assert_int_equal(rc2, 1);
                assert_int_equal(used, n);
            }
            cairn_resp_parser_free(fresh);
            free(copy);
        }
        cairn_resp_parser_free(inc);
    }
}

static void test_pipeline_split(void **state)
{
    (void)state;
    static const uint8_t stream[] =
        "*1\r\n$4\r\nPING\r\n"
        "SET a \"b c\"\r\n"
        "*0\r\n"
        "\r\n"
        "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\n\r\n\0x\r\n"
        "*-1\r\n"
        "GET k\n"
        "*1\r\n$3\r\nEND";
    size_t n = sizeof(stream) - 1;

    /* the expected transcript, written out */
    tbuf want = {0};
    const uint8_t *a[3];
    size_t l[3];
    a[0] = (const uint8_t *)"PING", l[0] = 4;
    tb_cmd(&want, 1, a, l, 14);
    a[0] = (const uint8_t *)"SET", l[0] = 3;
    a[1] = (const uint8_t *)"a", l[1] = 1;
    a[2] = (const uint8_t *)"b c", l[2] = 3;
    tb_cmd(&want, 3, a, l, 13);
    tb_cmd(&want, 0, a, l, 4);
    tb_cmd(&want, 0, a, l, 2);
    a[0] = (const uint8_t *)"SET", l[0] = 3;
    a[1] = (const uint8_t *)"k", l[1] = 1;
    a[2] = (const uint8_t *)"\r\n\0x", l[2] = 4;
    tb_cmd(&want, 3, a, l, 30);
    tb_cmd(&want, 0, a, l, 5);
    a[0] = (const uint8_t *)"GET", l[0] = 3;
    a[1] = (const uint8_t *)"k", l[1] = 1;
    tb_cmd(&want, 2, a, l, 6);
    tb_put(&want, "N", 1);
    tb_u64(&want, 11);

    tbuf whole = {0}, bytes = {0};
    run_stream(NULL, stream, n, FEED_WHOLE, 0, &whole);
    assert_same(&whole, &want);
    size_t calls = run_stream(NULL, stream, n, FEED_BYTES, 0, &bytes);
    assert_same(&bytes, &want);
    assert_true(calls >= n); /* it really was fed one byte at a time */
    for (uint64_t seed = 1; seed <= 200; seed++) {
        tbuf rnd = {0};
        run_stream(NULL, stream, n, FEED_RANDOM, seed, &rnd);
        assert_same(&rnd, &want);
        free(rnd.p);
    }
    free(want.p);
    free(whole.p);
    free(bytes.p);
}

/* A 10 MiB bulk arriving in 4 KiB pieces, the caller's buffer growing in
 * place: each call must be O(1) in the bytes already received. */
static void test_big_bulk_in_pieces(void **state)
{
    (void)state;
    const size_t blen = (size_t)10 << 20;
    char hdr[64];
    int hl = snprintf(hdr, sizeof(hdr), "*2\r\n$3\r\nSET\r\n$%zu\r\n", blen);
    size_t total = (size_t)hl + blen + 2;
    uint8_t *buf = malloc(total);
    assert_non_null(buf);
    memcpy(buf, hdr, (size_t)hl);
    tu_fill(buf + hl, blen, 7);
    memcpy(buf + hl + blen, "\r\n", 2);

    cairn_resp_parser *p = cairn_resp_parser_new(NULL);
    assert_non_null(p);
    cairn_resp_cmd c;
    size_t used = 0, have = 0, calls = 0;
    char err[128];
    int rc = 0;
    /* Scale: the whole command in one call (best of 3). A rescan of the
     * bulk on every call would cost ~1,000 times more than that. */
    double whole = 1e9;
    for (int r = 0; r < 3; r++) {
        cairn_resp_parser *w = cairn_resp_parser_new(NULL);
        assert_non_null(w);
        double w0 = now_s();
        assert_int_equal(cairn_resp_parse(w, buf, total, &c, &used, err,
                                          sizeof(err)), 1);
        double wt = now_s() - w0;
        if (wt < whole)
            whole = wt;
        cairn_resp_parser_free(w);
    }
    used = 0;
    double t0 = now_s();
    while (rc == 0) {
        have += 4096;
        if (have > total)
            have = total;
        rc = cairn_resp_parse(p, buf, have, &c, &used, err, sizeof(err));
        calls++;
        if (rc == 0 && have > (size_t)hl)
            assert_int_equal(cairn_resp_parser_need(p), total);
    }
    double dt = now_s() - t0;
    fprintf(stderr, "  10 MiB bulk in 4 KiB pieces: %zu calls, %.4f s\n",
            calls, dt);
    assert_int_equal(rc, 1);
    assert_int_equal(used, total);
    assert_int_equal(c.argc, 2);
    ASSERT_ARG(&c, 0, "SET");
    assert_int_equal(c.argl[1], blen);
    assert_ptr_equal(c.argv[1], buf + hl);
    assert_true(tu_check(c.argv[1], blen, 7));
    assert_true(dt < 50 * whole + 0.1);
    assert_int_equal(cairn_resp_parser_need(p), 0);
    cairn_resp_parser_free(p);
    free(buf);
}

/* A long inline line fed one byte at a time is scanned once: 1 MiB (the
 * limit raised for it) byte by byte would take minutes if each call
 * searched the line from its start again. The bound is relative to parsing
 * the whole line in one call, so that it holds on a slow machine or under
 * valgrind: a million calls cost far less than 500 whole parses, and a
 * quadratic rescan (half a million times the bytes) far more. */
static void test_long_line_bytewise(void **state)
{
    (void)state;
    const size_t n = (size_t)1 << 20;
    cairn_resp_limits lim;
    cairn_resp_limits_init(&lim);
    lim.max_inline = 2 * n;
    uint8_t *buf = malloc(n + 2);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (i % 16 == 15) ? ' ' : 'a';
    memcpy(buf + n, "\r\n", 2);
    cairn_resp_parser *p = cairn_resp_parser_new(&lim);
    assert_non_null(p);
    cairn_resp_cmd c;
    size_t used = 0;
    char err[128];
    int rc = 0;
    /* The whole line at once, for the scale (best of 3). */
    double whole = 1e9;
    for (int r = 0; r < 3; r++) {
        cairn_resp_parser *w = cairn_resp_parser_new(&lim);
        assert_non_null(w);
        double w0 = now_s();
        assert_int_equal(cairn_resp_parse(w, buf, n + 2, &c, &used, err,
                                          sizeof(err)), 1);
        double wt = now_s() - w0;
        if (wt < whole)
            whole = wt;
        cairn_resp_parser_free(w);
    }
    double t0 = now_s();
    for (size_t have = 1; have <= n + 2 && rc == 0; have++)
        rc = cairn_resp_parse(p, buf, have, &c, &used, err, sizeof(err));
    double dt = now_s() - t0;
    fprintf(stderr, "  1 MiB inline line byte by byte: %.3f s (whole: "
                    "%.4f s)\n", dt, whole);
    assert_int_equal(rc, 1);
    assert_int_equal(used, n + 2);
    assert_int_equal(c.argc, n / 16);
    assert_int_equal(c.argl[0], 15);
    cairn_resp_parser_free(p);
    free(buf);
    assert_true(dt < 500 * whole + 0.5);
}

/* ---------------------------------------------------------------- errors */

static void check_error(const cairn_resp_limits *lim, const uint8_t *in,
                        size_t n, const char *want)
{
    /* whole */
    cairn_resp_parser *p = cairn_resp_parser_new(lim);
    assert_non_null(p);
    cairn_resp_cmd c;
    size_t used = 99;
    char err[128];
    int rc = cairn_resp_parse(p, in, n, &c, &used, err, sizeof(err));
    if (rc != CAIRN_EINVAL || strcmp(err, want) != 0)
        fail_msg("input \"%.*s\": rc %d, \"%s\", want \"%s\"",
                 (int)(n > 40 ? 40 : n), (const char *)in, rc, err, want);
    assert_int_equal(used, 0);
    /* sticky */
    memset(err, 0, sizeof(err));
    assert_int_equal(cairn_resp_parse(p, S("PING\r\n"), &c, &used, err,
                                      sizeof(err)),
                     CAIRN_EINVAL);
    assert_string_equal(err, want);
    /* a truncated error buffer still gets a terminated prefix */
    char small[8];
    assert_int_equal(cairn_resp_parse(p, in, n, &c, &used, small,
                                      sizeof(small)),
                     CAIRN_EINVAL);
    assert_int_equal(strlen(small), 7);
    assert_memory_equal(small, want, 7);
    /* reset forgets it */
    cairn_resp_parser_reset(p);
    assert_int_equal(cairn_resp_parse(p, S("PING\r\n"), &c, &used, err,
                                      sizeof(err)),
                     1);
    cairn_resp_parser_free(p);

    /* byte by byte and in random pieces: the same error */
    tbuf whole = {0}, bytes = {0}, rnd = {0};
    run_stream(lim, in, n, FEED_WHOLE, 0, &whole);
    /* (byte by byte copies the input per call: quadratic, so short ones) */
    run_stream(lim, in, n, n <= 4096 ? FEED_BYTES : FEED_RANDOM, 1, &bytes);
    run_stream(lim, in, n, FEED_RANDOM, n, &rnd);
    assert_same(&whole, &bytes);
    assert_same(&whole, &rnd);
    free(whole.p);
    free(bytes.p);
    free(rnd.p);
}

#define CHECK_ERR(lim, lit, want) check_error((lim), S(lit), (want))

static void test_errors(void **state)
{
    (void)state;
    const char *mb = "Protocol error: invalid multibulk length";
    const char *bl = "Protocol error: invalid bulk length";
    const char *uq = "Protocol error: unbalanced quotes in request";
    const char *term = "Protocol error: expected '\\r\\n' after bulk data";

    CHECK_ERR(NULL, "*x\r\n", mb);
    CHECK_ERR(NULL, "*-0\r\n", mb);
    CHECK_ERR(NULL, "*1048577\r\n", mb);
    CHECK_ERR(NULL, "*\r\n", mb);
    CHECK_ERR(NULL, "*+1\r\n", mb);
    CHECK_ERR(NULL, "*01\r\n", mb);
    CHECK_ERR(NULL, "* 1\r\n", mb);
    CHECK_ERR(NULL, "*1 \r\n", mb);
    CHECK_ERR(NULL, "*1\rX", mb);
    CHECK_ERR(NULL, "*99999999999999999999\r\n", mb);
    CHECK_ERR(NULL, "*1\r\n$x\r\n", bl);
    CHECK_ERR(NULL, "*1\r\n$-1\r\n", bl);
    CHECK_ERR(NULL, "*1\r\n$536870913\r\n", bl);
    CHECK_ERR(NULL, "*1\r\n$\r\n", bl);
    CHECK_ERR(NULL, "*1\r\n$03\r\nabc\r\n", bl);
    CHECK_ERR(NULL, "*1\r\n$3\rabc\r\n", bl);
    CHECK_ERR(NULL, "*1\r\n$18446744073709551616\r\n", bl);
    CHECK_ERR(NULL, "*1\r\nx3\r\nabc\r\n", "Protocol error: expected '$', got 'x'");
    CHECK_ERR(NULL, "*2\r\n$1\r\na\r\n:1\r\n",
              "Protocol error: expected '$', got ':'");
    CHECK_ERR(NULL, "*2\r\n$1\r\na\r\n\r\n", "Protocol error: expected '$', got '\r'");
    CHECK_ERR(NULL, "*1\r\n$3\r\nabcXY", term);
    CHECK_ERR(NULL, "*1\r\n$3\r\nabc\rx", term);
    CHECK_ERR(NULL, "*1\r\n$3\r\nabcd\r\n", term);
    CHECK_ERR(NULL, "\"abc\r\n", uq);
    CHECK_ERR(NULL, "'abc\r\n", uq);
    CHECK_ERR(NULL, "SET \"a\"b\r\n", uq);
    CHECK_ERR(NULL, "SET 'a'b\r\n", uq);
    CHECK_ERR(NULL, "SET \"a\\\"\r\n", uq);
    CHECK_ERR(NULL, "\"a\\\r\n", uq);
    CHECK_ERR(NULL, "\"a\0\"\r\n", uq); /* the line ends at the NUL */

    /* too long lines: inline (with or without its newline), headers */
    size_t big = CAIRN_RESP_DEFAULT_MAX_INLINE + 1;
    uint8_t *line = malloc(big + 16);
    assert_non_null(line);
    memset(line, 'a', big);
    check_error(NULL, line, big, "Protocol error: too big inline request");
    line[big] = '\n';
    check_error(NULL, line, big + 1, "Protocol error: too big inline request");
    line[0] = '*';
    memset(line + 1, '1', big - 1);
    check_error(NULL, line, big, "Protocol error: too big mbulk count string");
    memset(line, '1', big + 16);
    memcpy(line, "*1\r\n$", 5);
    check_error(NULL, line, big + 4,
                "Protocol error: too big bulk count string");
    free(line);
}

/* Lines exactly at the limits are accepted; the parser's error after
 * "need more" progress is the one of the whole input. */
static void test_line_limits_default(void **state)
{
    (void)state;
    size_t max = CAIRN_RESP_DEFAULT_MAX_INLINE;
    uint8_t *line = malloc(max + 8);
    assert_non_null(line);
    cairn_resp_parser *p = cairn_resp_parser_new(NULL);
    assert_non_null(p);
    cairn_resp_cmd c;
    size_t used;
    char err[128];
    /* max bytes then "\n" */
    memset(line, 'a', max);
    line[max] = '\n';
    assert_int_equal(parse1(p, line, max, &c, &used, err), 0);
    assert_int_equal(parse1(p, line, max + 1, &c, &used, err), 1);
    assert_int_equal(used, max + 1);
    assert_int_equal(c.argl[0], max);
    /* max - 1 bytes then "\r\n" (the CR counts) */
    line[max - 1] = '\r';
    line[max] = '\n';
    assert_int_equal(parse1(p, line, max + 1, &c, &used, err), 1);
    assert_int_equal(c.argl[0], max - 1);
    cairn_resp_parser_free(p);
    free(line);
}

/* --------------------------------------------------------------- inline */

static void test_inline_quoting(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t inlen;
        size_t argc;
        const char *args[4];
        size_t lens[4];
    } cases[] = {
#define CASE(lit, n, ...) {lit, sizeof(lit) - 1, n, __VA_ARGS__}
        CASE("set key value\r\n", 3, {"set", "key", "value"}, {3, 3, 5}),
        CASE("  set\tkey   value  \n", 3, {"set", "key", "value"}, {3, 3, 5}),
        CASE("set \"a b\" 'c d'\r\n", 3, {"set", "a b", "c d"}, {3, 3, 3}),
        CASE("\"\\x41\\x6a\\n\\r\\t\\b\\a\\\\\\\"\"\n", 1,
             {"Aj\n\r\t\b\a\\\""}, {9}),
        CASE("\"\\xZZ\"\n", 1, {"xZZ"}, {3}),
        CASE("\"\\x4\"\n", 1, {"x4"}, {2}),
        CASE("\"\\x00\"\n", 1, {"\0"}, {1}),
        CASE("\"q\\zq\"\n", 1, {"qzq"}, {3}),
        CASE("'it\\'s'\n", 1, {"it's"}, {4}),
        CASE("'a\\nb'\n", 1, {"a\\nb"}, {4}),
        CASE("'a\"b'\n", 1, {"a\"b"}, {3}),
        CASE("\"a'b\"\n", 1, {"a'b"}, {3}),
        CASE("foo\"bar\"\n", 1, {"foobar"}, {6}),
        CASE("foo'bar' x\n", 2, {"foobar", "x"}, {6, 1}),
        CASE("\"\"\n", 1, {""}, {0}),
        CASE("'' x\n", 2, {"", "x"}, {0, 1}),
        CASE("\"a\"\tb\n", 2, {"a", "b"}, {1, 1}),
        CASE("\"a\"\r\n", 1, {"a"}, {1}),
        CASE("a\vb\n", 1, {"a\vb"}, {3}),
        CASE("\va\n", 1, {"a"}, {1}),
        CASE("a\rb\r\n", 2, {"a", "b"}, {1, 1}),
        CASE("a\0b c\n", 1, {"a"}, {1}),
        CASE("\"a\\\"b\"\n", 1, {"a\"b"}, {3}),
        CASE("a\\nb\n", 1, {"a\\nb"}, {4}),
        CASE("x\r\r\n", 1, {"x"}, {1}),
#undef CASE
    };
    cairn_resp_parser *p = cairn_resp_parser_new(NULL);
    assert_non_null(p);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cairn_resp_cmd c;
        size_t used;
        char err[128];
        const uint8_t *in = (const uint8_t *)cases[i].in;
        int rc = parse1(p, in, cases[i].inlen, &c, &used, err);
        if (rc != 1 || c.argc != cases[i].argc)
            fail_msg("case %zu: rc %d argc %zu (%s)", i, rc, c.argc,
                     rc < 0 ? err : "");
        assert_int_equal(used, cases[i].inlen);
        for (size_t k = 0; k < c.argc; k++) {
            assert_arg(&c, k, cases[i].args[k], cases[i].lens[k]);
            /* unescaped copies, not pointers into the input */
            assert_true(c.argv[k] < in || c.argv[k] >= in + cases[i].inlen);
        }
    }
    cairn_resp_parser_free(p);
}

/* ---------------------------------------------------------------- limits */

static void test_limits(void **state)
{
    (void)state;
    cairn_resp_limits d;
    cairn_resp_limits_init(&d);
    assert_int_equal(d.max_bulk, 512u << 20);
    assert_int_equal(d.max_args, 1048576);
    assert_int_equal(d.max_inline, 65536);

    cairn_resp_limits lim = {.max_bulk = 10, .max_args = 2, .max_inline = 8};
    cairn_resp_parser *p = cairn_resp_parser_new(&lim);
    assert_non_null(p);
    cairn_resp_cmd c;
    size_t used;
    char err[128];
    assert_int_equal(parse1(p, S("*2\r\n$10\r\n0123456789\r\n$0\r\n\r\n"), &c,
                            &used, err),
                     1);
    assert_int_equal(c.argc, 2);
    assert_int_equal(c.argl[0], 10);
    assert_int_equal(parse1(p, S("12345678\n"), &c, &used, err), 1);
    ASSERT_ARG(&c, 0, "12345678");
    assert_int_equal(parse1(p, S("1234567\r\n"), &c, &used, err), 1);
    ASSERT_ARG(&c, 0, "1234567");
    assert_int_equal(parse1(p, S("12345678"), &c, &used, err), 0);
    cairn_resp_parser_reset(p); /* other bytes follow: a new stream */
    /* inline lines are bounded by max_inline only, not max_args */
    assert_int_equal(parse1(p, S("a b c d\n"), &c, &used, err), 1);
    assert_int_equal(c.argc, 4);
    cairn_resp_parser_free(p);

    check_error(&lim, S("*3\r\n"), "Protocol error: invalid multibulk length");
    check_error(&lim, S("*1\r\n$11\r\n"), "Protocol error: invalid bulk length");
    check_error(&lim, S("123456789\n"), "Protocol error: too big inline request");
    check_error(&lim, S("123456789"), "Protocol error: too big inline request");
    check_error(&lim, S("12345678\r\n"),
                "Protocol error: too big inline request");
    check_error(&lim, S("*123456789"),
                "Protocol error: too big mbulk count string");
    check_error(&lim, S("*1\r\n$123456789"),
                "Protocol error: too big bulk count string");
    /* a header line of exactly max_inline bytes is read (and judged) */
    check_error(&lim, S("*0000000\r\n"),
                "Protocol error: invalid multibulk length");

    /* max_inline at SIZE_MAX: no overflow in the window */
    cairn_resp_limits huge = {SIZE_MAX, SIZE_MAX, SIZE_MAX};
    p = cairn_resp_parser_new(&huge);
    assert_non_null(p);
    assert_int_equal(parse1(p, S("GET k"), &c, &used, err), 0);
    assert_int_equal(parse1(p, S("GET k\n"), &c, &used, err), 1);
    assert_int_equal(parse1(p, S("*1\r\n$3\r\nabc\r\n"), &c, &used, err), 1);
    check_error(&huge, S("*1\r\n$9223372036854775808\r\n"),
                "Protocol error: invalid bulk length");
    cairn_resp_parser_free(p);
}

/* ------------------------------------------------------- parser extras */

static void test_need_and_reset(void **state)
{
    (void)state;
    cairn_resp_parser *p = cairn_resp_parser_new(NULL);
    assert_non_null(p);
    cairn_resp_cmd c;
    size_t used;
    char err[128];
    static const uint8_t req[] = "*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n";
    assert_int_equal(cairn_resp_parser_need(p), 0);
    assert_int_equal(parse1(p, req, 6, &c, &used, err), 0); /* "$3" seen */
    assert_int_equal(cairn_resp_parser_need(p), 0);          /* no CRLF yet */
    assert_int_equal(parse1(p, req, 9, &c, &used, err), 0);
    assert_int_equal(cairn_resp_parser_need(p), 13);
    assert_int_equal(parse1(p, req, 20, &c, &used, err), 0);
    assert_int_equal(cairn_resp_parser_need(p), sizeof(req) - 1);
    /* reset mid-command: the next bytes are a fresh stream */
    cairn_resp_parser_reset(p);
    assert_int_equal(cairn_resp_parser_need(p), 0);
    assert_int_equal(parse1(p, S("PING\r\n"), &c, &used, err), 1);
    ASSERT_ARG(&c, 0, "PING");
    cairn_resp_parser_free(p);
    cairn_resp_parser_free(NULL);
}

/* A caller that breaks the contract (passes fewer bytes than before) gets
 * a restart, never a read past its buffer. */
static void test_buffer_shrinks(void **state)
{
    (void)state;
    cairn_resp_parser *p = cairn_resp_parser_new(NULL);
    assert_non_null(p);
    cairn_resp_cmd c;
    size_t used;
    char err[128];
    assert_int_equal(parse1(p, S("*2\r\n$3\r\nfoo\r\n$3\r\nb"), &c, &used, err),
                     0);
    uint8_t *small = malloc(6);
    memcpy(small, "PING\r\n", 6);
    assert_int_equal(parse1(p, small, 6, &c, &used, err), 1);
    assert_int_equal(used, 6);
    ASSERT_ARG(&c, 0, "PING");
    /* inline scan progress, then a shorter buffer */
    assert_int_equal(parse1(p, S("GET somekey"), &c, &used, err), 0);
    assert_int_equal(parse1(p, small, 3, &c, &used, err), 0);
    assert_int_equal(parse1(p, small, 6, &c, &used, err), 1);
    ASSERT_ARG(&c, 0, "PING");
    free(small);
    cairn_resp_parser_free(p);
}

/* Many arguments, then small commands (the big arrays are released). */
static void test_many_args(void **state)
{
    (void)state;
    const size_t n = 5000;
    tbuf req = {0};
    char h[32];
    int hl = snprintf(h, sizeof(h), "*%zu\r\n", n);
    tb_put(&req, h, (size_t)hl);
    for (size_t i = 0; i < n; i++) {
        hl = snprintf(h, sizeof(h), "$%zu\r\n", i % 7);
        tb_put(&req, h, (size_t)hl);
        tb_put(&req, "abcdefg", i % 7);
        tb_put(&req, "\r\n", 2);
    }
    cairn_resp_parser *p = cairn_resp_parser_new(NULL);
    assert_non_null(p);
    cairn_resp_cmd c;
    size_t used;
    char err[128];
    assert_int_equal(parse1(p, req.p, req.len, &c, &used, err), 1);
    assert_int_equal(used, req.len);
    assert_int_equal(c.argc, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(c.argl[i], i % 7);
    assert_memory_equal(c.argv[n - 1], "abcdefg", (n - 1) % 7);
    assert_int_equal(parse1(p, S("*1\r\n$1\r\nx\r\n"), &c, &used, err), 1);
    ASSERT_ARG(&c, 0, "x");
    /* a huge announced count allocates only for what arrives */
    assert_int_equal(parse1(p, S("*1048576\r\n$1\r\nx\r\n"), &c, &used, err),
                     0);
    cairn_resp_parser_free(p);
    free(req.p);
}

/* --------------------------------------------------------------- replies */

static void expect(cairn_resp_buf *b, const char *want, size_t n)
{
    assert_false(b->oom);
    if (b->len != n || memcmp(b->p, want, n) != 0)
        fail_msg("got \"%.*s\" (%zu bytes), want \"%.*s\" (%zu bytes)",
                 (int)b->len, b->len ? (const char *)b->p : "", b->len, (int)n,
                 want, n);
    cairn_resp_reset(b);
}

#define EXPECT(b, lit) expect((b), (lit), sizeof(lit) - 1)

/* The writers whose encoding is the same in both protocols. */
static void common_writers(cairn_resp_buf *b)
{
    cairn_resp_simple(b, "OK");
    EXPECT(b, "+OK\r\n");
    cairn_resp_simple(b, "a\r\nb");
    EXPECT(b, "+a  b\r\n");
    cairn_resp_simple(b, "");
    EXPECT(b, "+\r\n");
    cairn_resp_error(b, "ERR unknown command 'foo'");
    EXPECT(b, "-ERR unknown command 'foo'\r\n");
    cairn_resp_error(b, "WRONGTYPE x\ny\rz");
    EXPECT(b, "-WRONGTYPE x y z\r\n");
    cairn_resp_errorf(b, "ERR %s %d", "bad", 7);
    EXPECT(b, "-ERR bad 7\r\n");
    char longmsg[600];
    memset(longmsg, 'm', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    longmsg[100] = '\n';
    cairn_resp_errorf(b, "ERR %s!", longmsg);
    assert_int_equal(b->len, 1 + 4 + 599 + 1 + 2);
    assert_memory_equal(b->p, "-ERR mmm", 8);
    assert_int_equal(b->p[5 + 100], ' ');
    assert_memory_equal(b->p + b->len - 3, "!\r\n", 3);
    cairn_resp_reset(b);
    cairn_resp_integer(b, 0);
    EXPECT(b, ":0\r\n");
    cairn_resp_integer(b, -42);
    EXPECT(b, ":-42\r\n");
    cairn_resp_integer(b, INT64_MAX);
    EXPECT(b, ":9223372036854775807\r\n");
    cairn_resp_integer(b, INT64_MIN);
    EXPECT(b, ":-9223372036854775808\r\n");
    cairn_resp_bulk(b, "hello", 5);
    EXPECT(b, "$5\r\nhello\r\n");
    cairn_resp_bulk(b, "", 0);
    EXPECT(b, "$0\r\n\r\n");
    cairn_resp_bulk(b, NULL, 0);
    EXPECT(b, "$0\r\n\r\n");
    cairn_resp_bulk(b, "a\0\r\n", 4);
    EXPECT(b, "$4\r\na\0\r\n\r\n");
    cairn_resp_bulk_cstr(b, "x");
    EXPECT(b, "$1\r\nx\r\n");
    cairn_resp_array(b, 3);
    EXPECT(b, "*3\r\n");
    cairn_resp_array(b, 0);
    EXPECT(b, "*0\r\n");
    cairn_resp_raw(b, "+X\r\n", 4);
    EXPECT(b, "+X\r\n");
    /* appending */
    cairn_resp_array(b, 2);
    cairn_resp_integer(b, 1);
    cairn_resp_bulk_cstr(b, "ab");
    EXPECT(b, "*2\r\n:1\r\n$2\r\nab\r\n");
    /* growth across many writes */
    for (int i = 0; i < 10000; i++)
        cairn_resp_integer(b, i);
    size_t want = 0;
    for (int i = 0; i < 10000; i++)
        want += 3 + (size_t)snprintf(NULL, 0, "%d", i);
    assert_int_equal(b->len, want);
    assert_memory_equal(b->p + b->len - 7, ":9999\r\n", 7);
    cairn_resp_reset(b);
}

static void test_reply_resp2(void **state)
{
    (void)state;
    cairn_resp_buf b;
    cairn_resp_init(&b, 2);
    assert_int_equal(b.proto, 2);
    assert_int_equal(b.len, 0);
    common_writers(&b);
    cairn_resp_bulk_cstr(&b, NULL);
    EXPECT(&b, "$-1\r\n");
    cairn_resp_null(&b);
    EXPECT(&b, "$-1\r\n");
    cairn_resp_null_array(&b);
    EXPECT(&b, "*-1\r\n");
    cairn_resp_map(&b, 2);
    EXPECT(&b, "*4\r\n");
    cairn_resp_map(&b, 0);
    EXPECT(&b, "*0\r\n");
    cairn_resp_set(&b, 5);
    EXPECT(&b, "*5\r\n");
    cairn_resp_push(&b, 3);
    EXPECT(&b, "*3\r\n");
    cairn_resp_dbl(&b, 1.5);
    EXPECT(&b, "$3\r\n1.5\r\n");
    cairn_resp_dbl(&b, 0.1);
    EXPECT(&b, "$3\r\n0.1\r\n");
    cairn_resp_dbl(&b, 3.0);
    EXPECT(&b, "$1\r\n3\r\n");
    cairn_resp_dbl(&b, 1e300);
    EXPECT(&b, "$6\r\n1e+300\r\n");
    cairn_resp_dbl(&b, INFINITY);
    EXPECT(&b, "$3\r\ninf\r\n");
    cairn_resp_dbl(&b, -INFINITY);
    EXPECT(&b, "$4\r\n-inf\r\n");
    cairn_resp_dbl(&b, NAN);
    EXPECT(&b, "$3\r\nnan\r\n");
    cairn_resp_boolean(&b, true);
    EXPECT(&b, ":1\r\n");
    cairn_resp_boolean(&b, false);
    EXPECT(&b, ":0\r\n");
    cairn_resp_verbatim(&b, "txt", "Some string", 11);
    EXPECT(&b, "$11\r\nSome string\r\n");
    cairn_resp_free(&b);
    assert_null(b.p);
    /* any other protocol number is RESP2 */
    cairn_resp_init(&b, 7);
    cairn_resp_null(&b);
    EXPECT(&b, "$-1\r\n");
    cairn_resp_free(&b);
}

static void test_reply_resp3(void **state)
{
    (void)state;
    cairn_resp_buf b;
    cairn_resp_init(&b, 3);
    assert_int_equal(b.proto, 3);
    common_writers(&b);
    cairn_resp_bulk_cstr(&b, NULL);
    EXPECT(&b, "_\r\n");
    cairn_resp_null(&b);
    EXPECT(&b, "_\r\n");
    cairn_resp_null_array(&b);
    EXPECT(&b, "_\r\n");
    cairn_resp_map(&b, 2);
    EXPECT(&b, "%2\r\n");
    cairn_resp_set(&b, 5);
    EXPECT(&b, "~5\r\n");
    cairn_resp_push(&b, 3);
    EXPECT(&b, ">3\r\n");
    cairn_resp_dbl(&b, 1.5);
    EXPECT(&b, ",1.5\r\n");
    cairn_resp_dbl(&b, 3.0);
    EXPECT(&b, ",3\r\n");
    cairn_resp_dbl(&b, -0.0);
    EXPECT(&b, ",-0\r\n");
    cairn_resp_dbl(&b, 1e300);
    EXPECT(&b, ",1e+300\r\n");
    cairn_resp_dbl(&b, INFINITY);
    EXPECT(&b, ",inf\r\n");
    cairn_resp_dbl(&b, -INFINITY);
    EXPECT(&b, ",-inf\r\n");
    cairn_resp_dbl(&b, NAN);
    EXPECT(&b, ",nan\r\n");
    cairn_resp_dbl(&b, -NAN);
    EXPECT(&b, ",nan\r\n");
    cairn_resp_boolean(&b, true);
    EXPECT(&b, "#t\r\n");
    cairn_resp_boolean(&b, false);
    EXPECT(&b, "#f\r\n");
    cairn_resp_verbatim(&b, "txt", "Some string", 11);
    EXPECT(&b, "=15\r\ntxt:Some string\r\n");
    cairn_resp_verbatim(&b, "mkd", "# x", 3);
    EXPECT(&b, "=7\r\nmkd:# x\r\n");
    cairn_resp_verbatim(&b, "markdown", "y", 1);
    EXPECT(&b, "=5\r\ntxt:y\r\n");
    cairn_resp_verbatim(&b, NULL, "", 0);
    EXPECT(&b, "=4\r\ntxt:\r\n");
    /* a map of two pairs, as a command would write it */
    cairn_resp_map(&b, 2);
    cairn_resp_bulk_cstr(&b, "first");
    cairn_resp_integer(&b, 1);
    cairn_resp_bulk_cstr(&b, "second");
    cairn_resp_dbl(&b, 2.5);
    EXPECT(&b, "%2\r\n$5\r\nfirst\r\n:1\r\n$6\r\nsecond\r\n,2.5\r\n");
    cairn_resp_free(&b);
}

static void test_double_format(void **state)
{
    (void)state;
    static const struct {
        double d;
        const char *s;
    } cases[] = {
        {1.5, "1.5"},
        {0.1, "0.1"},
        {1e300, "1e+300"},
        {-0.0, "-0"},
        {0.0, "0"},
        {3.0, "3"},
        {-3.0, "-3"},
        {123.456, "123.456"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1.0 / 3.0, "0.3333333333333333"},
        {1e15, "1000000000000000"},
        {-4503599627370495.0, "-4503599627370495"},
        {9007199254740992.0, "9007199254740992"},
        {1e20, "1e+20"},
        {1e-7, "1e-07"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {-DBL_MAX, "-1.7976931348623157e+308"},
        {INFINITY, "inf"},
        {-INFINITY, "-inf"},
        {NAN, "nan"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[CAIRN_RESP_DBL_CHARS];
        size_t n = cairn_resp_format_double(cases[i].d, out);
        if (strcmp(out, cases[i].s) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, cases[i].s);
        assert_int_equal(n, strlen(cases[i].s));
    }
    /* random bit patterns: the text reads back as the same double */
    uint64_t seed = 99;
    for (int i = 0; i < 100000; i++) {
        uint64_t bits = tu_splitmix(&seed);
        double d;
        memcpy(&d, &bits, sizeof(d));
        char out[CAIRN_RESP_DBL_CHARS];
        size_t n = cairn_resp_format_double(d, out);
        assert_true(n > 0 && n < CAIRN_RESP_DBL_CHARS);
        assert_int_equal(strlen(out), n);
        if (isnan(d)) {
            assert_string_equal(out, "nan");
            continue;
        }
        double back = strtod(out, NULL);
        assert_memory_equal(&back, &d, sizeof(d)); /* keeps -0 too */
    }
    /* Against the plain way (the shortest of %.15g, %.16g, %.17g that
     * reads back): values like averages and measurements, at every
     * magnitude: the same text every time. */
    size_t same = 0, total = 0;
    for (int i = 0; i < 200000; i++) {
        uint64_t a = tu_splitmix(&seed), b = tu_splitmix(&seed);
        int mag = (int)(b % 61) - 30;
        double d = (double)(a % 1000000007u) / (double)(1 + b % 997) *
                   pow(10.0, mag);
        if (i % 3 == 0)
            d = round(d * 1000) / 1000; /* a few decimals */
        if (b & 1)
            d = -d;
        char out[CAIRN_RESP_DBL_CHARS], ref[CAIRN_RESP_DBL_CHARS];
        size_t n = cairn_resp_format_double(d, out);
        assert_int_equal(strlen(out), n);
        assert_true(strtod(out, NULL) == d);
        if (d == (double)(long long)d && fabs(d) < 4503599627370496.0)
            continue;
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(ref, sizeof ref, "%.*g", prec, d);
            if (prec == 17 || strtod(ref, NULL) == d)
                break;
        }
        total++;
        if (strcmp(out, ref) == 0)
            same++;
        else
            fail_msg("%.17g: \"%s\", the plain way \"%s\"", d, out, ref);
    }
    assert_true(total > 150000 && same == total);
}

static void test_reply_oom(void **state)
{
    (void)state;
    cairn_resp_buf b;
    cairn_resp_init(&b, 2);
    cairn_resp_simple(&b, "OK");
    size_t len = b.len;
    /* an impossible size: dropped without reading the source */
    cairn_resp_bulk(&b, "x", SIZE_MAX / 2 + 1);
    assert_true(b.oom);
    assert_int_equal(b.len, len);
    /* sticky: later writes are dropped too */
    cairn_resp_simple(&b, "OK");
    cairn_resp_integer(&b, 5);
    cairn_resp_errorf(&b, "ERR %d", 1);
    assert_int_equal(b.len, len);
    assert_true(b.oom);
    cairn_resp_reset(&b);
    assert_false(b.oom);
    assert_int_equal(b.len, 0);
    cairn_resp_simple(&b, "OK");
    EXPECT(&b, "+OK\r\n");
    cairn_resp_raw(&b, "x", SIZE_MAX);
    assert_true(b.oom);
    cairn_resp_reset(&b);
    cairn_resp_map(&b, SIZE_MAX);
    assert_true(b.oom);
    cairn_resp_free(&b);
    cairn_resp_init(&b, 3);
    cairn_resp_free(&b); /* nothing allocated: fine */
    cairn_resp_init(&b, 3);
    cairn_resp_verbatim(&b, "txt", "x", SIZE_MAX - 2);
    assert_true(b.oom);
    assert_int_equal(b.len, 0);
    cairn_resp_free(&b);
}

/* ------------------------------------------------------------------ fuzz */

static const char fuzz_alpha[] = "*$\r\n-+0123456789 \t\"'\\xaZ\0:";

static void gen_piece(tbuf *t, uint64_t *s, const cairn_resp_limits *lim)
{
    switch (tu_rand(s, 6)) {
    case 0:
    case 1: { /* valid multibulk, sometimes past the limits */
        size_t argc = tu_rand(s, 5);
        if (tu_rand(s, 20) == 0)
            argc = lim->max_args + tu_rand(s, 2);
        char h[48];
        int hl = snprintf(h, sizeof(h), "*%zu\r\n", argc);
        tb_put(t, h, (size_t)hl);
        for (size_t i = 0; i < argc && i < 16; i++) {
            size_t n = tu_rand(s, 21);
            if (tu_rand(s, 20) == 0)
                n = lim->max_bulk + tu_rand(s, 2);
            if (n > 64)
                n = 64; /* the header claims more: the bytes run out */
            hl = snprintf(h, sizeof(h), "$%zu\r\n", n);
            tb_put(t, h, (size_t)hl);
            for (size_t k = 0; k < n; k++) {
                uint8_t c = (uint8_t)tu_rand(s, 256);
                tb_put(t, &c, 1);
            }
            tb_put(t, "\r\n", 2);
        }
        break;
    }
    case 2: { /* inline with quoting material */
        static const char *toks[] = {
            "GET", "key", "\"a b\"", "'c d'", "\"\\x41\"", "\"\\n\"",
            "'it\\'s'", "\"q\\\"\"", "\"\"", "x\"y\"", "\t", "  ", "\"open",
            "'open", "\"a\"b", "\\", "\r",
        };
        size_t k = tu_rand(s, 6);
        for (size_t i = 0; i < k; i++) {
            const char *w = toks[tu_rand(s, sizeof(toks) / sizeof(toks[0]))];
            tb_put(t, w, strlen(w));
            tb_put(t, " ", 1);
        }
        if (tu_rand(s, 2))
            tb_put(t, "\r\n", 2);
        else
            tb_put(t, "\n", 1);
        break;
    }
    case 3: { /* empty commands */
        static const char *e[] = {"*0\r\n", "*-1\r\n", "\r\n", "\n"};
        const char *w = e[tu_rand(s, 4)];
        tb_put(t, w, strlen(w));
        break;
    }
    case 4: { /* noise from protocol characters */
        size_t n = tu_rand(s, 30);
        for (size_t i = 0; i < n; i++)
            tb_put(t, &fuzz_alpha[tu_rand(s, sizeof(fuzz_alpha) - 1)], 1);
        break;
    }
    default: { /* raw random bytes */
        size_t n = tu_rand(s, 30);
        for (size_t i = 0; i < n; i++) {
            uint8_t c = (uint8_t)tu_rand(s, 256);
            tb_put(t, &c, 1);
        }
        break;
    }
    }
}

static void test_fuzz(void **state)
{
    (void)state;
    uint64_t iters = tu_env_u64("CAIRN_RESP_FUZZ_N", 20000);
    uint64_t seed = tu_env_u64("CAIRN_RESP_FUZZ_SEED", 20261125);
    cairn_resp_limits small = {.max_bulk = 16, .max_args = 4, .max_inline = 24};
    cairn_resp_limits dflt;
    cairn_resp_limits_init(&dflt);
    size_t cmds = 0, errs = 0, bytes_total = 0;
    double t0 = now_s();
    for (uint64_t it = 0; it < iters; it++) {
        const cairn_resp_limits *lim = (it & 1) ? &small : &dflt;
        tbuf in = {0};
        size_t pieces = 1 + tu_rand(&seed, 5);
        for (size_t i = 0; i < pieces; i++)
            gen_piece(&in, &seed, lim);
        if (tu_rand(&seed, 2) && in.len) { /* mutations */
            size_t m = 1 + tu_rand(&seed, 3);
            for (size_t i = 0; i < m && in.len; i++) {
                size_t at = tu_rand(&seed, in.len);
                uint8_t c = (uint8_t)fuzz_alpha[tu_rand(
                    &seed, sizeof(fuzz_alpha) - 1)];
                switch (tu_rand(&seed, 3)) {
                case 0: in.p[at] = c; break;
                case 1:
                    memmove(in.p + at, in.p + at + 1, in.len - at - 1);
                    in.len--;
                    break;
                default:
                    tb_put(&in, "", 0);
                    tb_put(&in, &c, 1); /* grow by one, then shift */
                    memmove(in.p + at + 1, in.p + at, in.len - at - 1);
                    in.p[at] = c;
                    break;
                }
            }
        }
        if (tu_rand(&seed, 4) == 0 && in.len)
            in.len = tu_rand(&seed, in.len);
        bytes_total += in.len;

        tbuf whole = {0}, split = {0};
        run_stream(lim, in.p, in.len, FEED_WHOLE, 0, &whole);
        run_stream(lim, in.p, in.len, FEED_RANDOM, it + 1, &split);
        if (whole.len != split.len ||
            (whole.len && memcmp(whole.p, split.p, whole.len) != 0))
            fail_msg("iteration %llu: whole and split parses differ",
                     (unsigned long long)it);
        if (it % 10 == 0) {
            tbuf bytes = {0};
            run_stream(lim, in.p, in.len, FEED_BYTES, 0, &bytes);
            assert_same(&whole, &bytes);
            free(bytes.p);
        }
        /* count outcomes so the generator is seen to reach both */
        for (size_t i = 0; i < whole.len;) {
            if (whole.p[i] == 'C') {
                cmds++;
                uint64_t argc;
                memcpy(&argc, whole.p + i + 9, 8);
                i += 17;
                for (uint64_t a = 0; a < argc; a++) {
                    uint64_t l;
                    memcpy(&l, whole.p + i, 8);
                    i += 8 + l;
                }
            } else {
                if (whole.p[i] == 'E')
                    errs++;
                break;
            }
        }
        free(whole.p);
        free(split.p);
        free(in.p);
    }
    fprintf(stderr,
            "  fuzz: %llu streams, %zu bytes, %zu commands, %zu errors, "
            "%.2f s\n",
            (unsigned long long)iters, bytes_total, cmds, errs, now_s() - t0);
    if (iters >= 1000) {
        assert_true(cmds > iters / 2);
        assert_true(errs > iters / 10);
    }
}

/* cairn_resp_value_len: every complete value's length, 0 for each of its
 * proper prefixes and for malformed values, across values the reply
 * builder writes in both protocols. */
static void test_value_len(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "+OK\r\n", "-ERR bad\r\n", ":-12\r\n", "$3\r\nabc\r\n",
        "$0\r\n\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n", "_\r\n",
        ",1.5\r\n", "#t\r\n", "(123\r\n",
        "$4\r\na\r\nb\r\n", /* CRLF inside a bulk is data */
        "*2\r\n$1\r\na\r\n*2\r\n:1\r\n-ERR x\r\n",
        "%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n_\r\n",
        "~2\r\n:1\r\n:2\r\n", ">2\r\n+m\r\n$1\r\nx\r\n",
        "=8\r\ntxt:abcd\r\n", "!5\r\nERR x\r\n",
        "|1\r\n+k\r\n:1\r\n+v\r\n"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t n = strlen(ok[i]);
        uint8_t *buf = malloc(n + 8);
        assert_non_null(buf);
        memcpy(buf, ok[i], n);
        memcpy(buf + n, "+next\r\n", 7);
        assert_int_equal(cairn_resp_value_len(buf, n), n);
        assert_int_equal(cairn_resp_value_len(buf, n + 7), n); /* one only */
        for (size_t k = 0; k < n; k++)
            assert_int_equal(cairn_resp_value_len(buf, k), 0);
        free(buf);
    }
    static const char *const bad[] = {
        "", "x\r\n", "$3\r\nabcd\r\n", "$-2\r\n", "$x\r\n", "$\r\n",
        "*-2\r\n", "*99999999999999999999\r\n", "*2\r\n:1\r\n",
        "+OK\n", "*1\r\n*1\r\n*1\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(cairn_resp_value_len((const uint8_t *)bad[i],
                                              strlen(bad[i])),
                         0);
    /* What the builder writes, value after value, steps back out. */
    for (int proto = 2; proto <= 3; proto++) {
        cairn_resp_buf b;
        cairn_resp_init(&b, proto);
        size_t ends[8], k = 0;
        cairn_resp_array(&b, 3);
        cairn_resp_bulk(&b, "x", 1);
        cairn_resp_null(&b);
        cairn_resp_map(&b, 1);
        cairn_resp_simple(&b, "f");
        cairn_resp_dbl(&b, 0.25);
        ends[k++] = b.len;
        cairn_resp_error(&b, "WRONGTYPE no");
        ends[k++] = b.len;
        cairn_resp_null_array(&b);
        ends[k++] = b.len;
        cairn_resp_verbatim(&b, "txt", "a\r\nb", 4);
        ends[k++] = b.len;
        size_t off = 0;
        for (size_t j = 0; j < k; j++) {
            size_t len = cairn_resp_value_len(b.p + off, b.len - off);
            assert_int_equal(off + len, ends[j]);
            off += len;
        }
        cairn_resp_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multibulk_basic),
        cmocka_unit_test(test_empty_commands),
        cmocka_unit_test(test_prefixes_need_more),
        cmocka_unit_test(test_pipeline_split),
        cmocka_unit_test(test_big_bulk_in_pieces),
        cmocka_unit_test(test_long_line_bytewise),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_line_limits_default),
        cmocka_unit_test(test_inline_quoting),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_need_and_reset),
        cmocka_unit_test(test_buffer_shrinks),
        cmocka_unit_test(test_many_args),
        cmocka_unit_test(test_reply_resp2),
        cmocka_unit_test(test_reply_resp3),
        cmocka_unit_test(test_double_format),
        cmocka_unit_test(test_reply_oom),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_value_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
