/*
 * hiredis_client.c — cairn-server driven by hiredis (libhiredis, the C
 * client redis-cli and many bindings build on), as DESIGN.md's table of
 * real clients asks: the blocking API (typed replies, binary-safe values
 * with NUL bytes, a 4 MiB value, error replies, pipelining of 2,000
 * commands, MULTI/EXEC, WATCH, time travel, AUTH after CONFIG SET
 * requirepass), the asynchronous API on libuv (20,000 commands in flight
 * on 8 connections), and a SIGKILL: every write hiredis saw acknowledged
 * is there after the restart.
 *
 * Usage: hiredis_client PATH-TO-cairn-server. The program starts the
 * server itself on a free loopback port with a fresh data directory,
 * stops it with SIGTERM (it must exit 0) and removes the directory.
 * Each test is a cmocka test; one server serves them in order.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <uv.h>

#include "../unit/test_util.h"

static const char *g_server_bin;
static char *g_dir;
static int g_port;
static pid_t g_pid;

/* ---------- the server ---------- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *connect_ctx(void)
{
    struct timeval tv = {10, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", g_port, tv);
    if (c && !c->err)
        redisSetTimeout(c, tv);
    return c;
}

/* Start cairn-server on g_dir and wait (up to 60 s) until it answers. */
static void server_start(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", g_port);
    char log[4096];
    snprintf(log, sizeof log, "%s.log", g_dir);
    g_pid = fork();
    assert_true(g_pid >= 0);
    if (g_pid == 0) {
        FILE *f = freopen(log, "a", stderr);
        (void)f;
        execl(g_server_bin, g_server_bin, "--port", port, "--bind",
              "127.0.0.1", "--dir", g_dir, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) {
        redisContext *c = connect_ctx();
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        bool up = r && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "PONG");
        if (r)
            freeReplyObject(r);
        if (c)
            redisFree(c);
        if (up)
            return;
        int st;
        if (waitpid(g_pid, &st, WNOHANG) == g_pid)
            fail_msg("cairn-server exited while starting (see %s)", log);
        struct timespec d = {0, 100000000};
        nanosleep(&d, NULL);
    }
    fail_msg("cairn-server did not answer PING within 60 s (see %s)", log);
}

/* Stop it: SIGTERM (a clean shutdown, exit status 0) or SIGKILL. */
static void server_stop(int sig)
{
    assert_int_equal(kill(g_pid, sig), 0);
    int st = 0;
    assert_int_equal(waitpid(g_pid, &st, 0), g_pid);
    if (sig == SIGTERM)
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    else
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    g_pid = 0;
}

static int setup(void **state)
{
    (void)state;
    g_dir = tu_mkdtemp("hiredis");
    g_port = free_port();
    if (!g_dir || g_port <= 0)
        return -1;
    server_start();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_pid > 0)
        server_stop(SIGTERM);
    char log[4096];
    snprintf(log, sizeof log, "%s.log", g_dir);
    unlink(log);
    tu_rmrf(g_dir);
    free(g_dir);
    return 0;
}

/* ---------- helpers ---------- */

/* Run a command; the reply must be of type `type`. Caller frees it. */
static redisReply *cmd_type(redisContext *c, int type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("%s: no reply (%s)", fmt, c->errstr);
    if (r->type != type)
        fail_msg("%s: reply type %d, want %d (%s)", fmt, r->type, type,
                 r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_STATUS
                     ? r->str
                     : "");
    return r;
}

static void expect_status(redisContext *c, const char *want, const char *fmt,
                          ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, want) != 0)
        fail_msg("%s: want +%s, got type %d %s", fmt, want, r->type,
                 r->str ? r->str : "");
    freeReplyObject(r);
}

static long long expect_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("%s: want an integer, got type %d %s", fmt, r->type,
                 r->str ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Read n pipelined replies: n statuses "OK" (prefix NULL), else n bulk
 * strings, the i-th being prefix followed by i * mul. */
static void expect_replies(redisContext *c, int n, const char *prefix,
                           int mul)
{
    for (int i = 0; i < n; i++) {
        void *rv = NULL;
        assert_int_equal(redisGetReply(c, &rv), REDIS_OK);
        redisReply *r = rv;
        char want[32];
        snprintf(want, sizeof want, "%s%d", prefix ? prefix : "", i * mul);
        assert_int_equal(r->type, prefix ? REDIS_REPLY_STRING
                                         : REDIS_REPLY_STATUS);
        assert_string_equal(r->str, prefix ? want : "OK");
        freeReplyObject(r);
    }
}

/* ---------- the blocking API ---------- */

static void test_types_and_errors(void **state)
{
    (void)state;
    redisContext *c = connect_ctx();
    assert_true(c && !c->err);
    expect_status(c, "PONG", "PING");
    redisReply *r = cmd_type(c, REDIS_REPLY_STRING, "ECHO %s", "hi");
    assert_string_equal(r->str, "hi");
    freeReplyObject(r);

    /* Binary-safe keys and values: NUL bytes, CR LF inside. */
    static const char key[] = "hk\0bin\r\n";
    static const char val[] = "v\0a\r\nl\0";
    expect_status(c, "OK", "SET %b %b", key, sizeof key - 1, val,
                  sizeof val - 1);
    r = cmd_type(c, REDIS_REPLY_STRING, "GET %b", key, sizeof key - 1);
    assert_int_equal(r->len, sizeof val - 1);
    assert_memory_equal(r->str, val, sizeof val - 1);
    freeReplyObject(r);
    assert_int_equal(expect_int(c, "STRLEN %b", key, sizeof key - 1),
                     sizeof val - 1);

    r = cmd_type(c, REDIS_REPLY_NIL, "GET hk:missing");
    freeReplyObject(r);
    assert_int_equal(expect_int(c, "INCRBY hk:n %d", 41), 41);
    assert_int_equal(expect_int(c, "INCR hk:n"), 42);
    r = cmd_type(c, REDIS_REPLY_ERROR, "INCR %b", key, sizeof key - 1);
    assert_string_equal(r->str, "ERR value is not an integer or out of "
                                "range");
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_ERROR, "NOSUCHCOMMAND x");
    assert_true(!strncmp(r->str, "ERR unknown command 'NOSUCHCOMMAND'", 35));
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_ERROR, "GET");
    assert_string_equal(r->str,
                        "ERR wrong number of arguments for 'get' command");
    freeReplyObject(r);

    r = cmd_type(c, REDIS_REPLY_ARRAY, "MGET hk:n hk:missing %b", key,
                 sizeof key - 1);
    assert_int_equal(r->elements, 3);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_STRING);
    assert_string_equal(r->element[0]->str, "42");
    assert_int_equal(r->element[1]->type, REDIS_REPLY_NIL);
    assert_int_equal(r->element[2]->len, sizeof val - 1);
    freeReplyObject(r);

    /* A 4 MiB value, written and read back whole. */
    size_t big = 4u << 20;
    char *b = malloc(big);
    assert_non_null(b);
    tu_fill(b, big, 7);
    expect_status(c, "OK", "SET hk:big %b", b, big);
    r = cmd_type(c, REDIS_REPLY_STRING, "GET hk:big");
    assert_int_equal(r->len, big);
    assert_true(tu_check(r->str, big, 7));
    freeReplyObject(r);
    free(b);
    assert_int_equal(expect_int(c, "DEL hk:big hk:n hk:missing"), 2);
    redisFree(c);
}

static void test_pipeline(void **state)
{
    (void)state;
    redisContext *c = connect_ctx();
    assert_true(c && !c->err);
    enum { N = 2000 };
    for (int i = 0; i < N; i++)
        assert_int_equal(redisAppendCommand(c, "SET hp:%d v%d", i, i * 3),
                         REDIS_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(redisAppendCommand(c, "GET hp:%d", i), REDIS_OK);
    expect_replies(c, N, NULL, 0);
    expect_replies(c, N, "v", 3);
    assert_int_equal(expect_int(c, "EXISTS hp:0 hp:1999 hp:2000"), 2);
    redisFree(c);
}

static void test_multi_watch_history(void **state)
{
    (void)state;
    redisContext *c = connect_ctx(), *o = connect_ctx();
    assert_true(c && !c->err && o && !o->err);
    expect_status(c, "OK", "SET hm:a 1");
    expect_status(c, "OK", "MULTI");
    expect_status(c, "QUEUED", "INCR hm:a");
    expect_status(c, "QUEUED", "SET hm:b x");
    expect_status(c, "QUEUED", "CLIENT SETNAME hiredis-tx");
    expect_status(c, "QUEUED", "GET hm:a");
    redisReply *r = cmd_type(c, REDIS_REPLY_ARRAY, "EXEC");
    assert_int_equal(r->elements, 4);
    assert_int_equal(r->element[0]->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->element[0]->integer, 2);
    assert_string_equal(r->element[1]->str, "OK");
    assert_string_equal(r->element[2]->str, "OK");
    assert_string_equal(r->element[3]->str, "2");
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_STRING, "CLIENT GETNAME");
    assert_string_equal(r->str, "hiredis-tx");
    freeReplyObject(r);

    /* WATCH: another client's write makes EXEC answer nil. */
    expect_status(c, "OK", "WATCH hm:a");
    expect_status(o, "OK", "SET hm:a 10");
    expect_status(c, "OK", "MULTI");
    expect_status(c, "QUEUED", "SET hm:a 99");
    r = cmd_type(c, REDIS_REPLY_NIL, "EXEC");
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_STRING, "GET hm:a");
    assert_string_equal(r->str, "10");
    freeReplyObject(r);

    /* Time travel: the value as of the version of an earlier write. */
    expect_status(c, "OK", "SET hm:t old");
    long long v = expect_int(c, "CAIRN.VERSION");
    expect_status(c, "OK", "SET hm:t new");
    r = cmd_type(c, REDIS_REPLY_STRING, "CAIRN.GETAT hm:t VERSION %lld", v);
    assert_string_equal(r->str, "old");
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_STRING, "GET hm:t");
    assert_string_equal(r->str, "new");
    freeReplyObject(r);
    redisFree(o);
    redisFree(c);
}

static void test_auth(void **state)
{
    (void)state;
    redisContext *c = connect_ctx();
    assert_true(c && !c->err);
    expect_status(c, "OK", "CONFIG SET requirepass %s", "s3cret");
    redisContext *n = connect_ctx();
    assert_true(n && !n->err);
    redisReply *r = cmd_type(n, REDIS_REPLY_ERROR, "GET hm:a");
    assert_string_equal(r->str, "NOAUTH Authentication required.");
    freeReplyObject(r);
    r = cmd_type(n, REDIS_REPLY_ERROR, "AUTH %s", "wrong");
    assert_true(!strncmp(r->str, "WRONGPASS", 9));
    freeReplyObject(r);
    expect_status(n, "OK", "AUTH %s", "s3cret");
    r = cmd_type(n, REDIS_REPLY_STRING, "GET hm:a");
    assert_string_equal(r->str, "10");
    freeReplyObject(r);
    expect_status(c, "OK", "CONFIG SET requirepass %s", "");
    redisFree(n);
    redisFree(c);
}

/* ---------- the asynchronous API on libuv ---------- */

enum { ASYNC_CONNS = 8, ASYNC_PER_CONN = 2500 };

typedef struct async_state {
    int replies, bad, disconnected;
    long long max_incr;
    redisAsyncContext *ac[ASYNC_CONNS];
} async_state;

static void on_incr(redisAsyncContext *ac, void *rv, void *priv)
{
    async_state *st = ac->data;
    redisReply *r = rv;
    (void)priv;
    if (!r || r->type != REDIS_REPLY_INTEGER)
        st->bad++;
    else if (r->integer > st->max_incr)
        st->max_incr = r->integer;
    if (++st->replies == ASYNC_CONNS * ASYNC_PER_CONN)
        for (int i = 0; i < ASYNC_CONNS; i++)
            redisAsyncDisconnect(st->ac[i]);
}

static void on_set(redisAsyncContext *ac, void *rv, void *priv)
{
    async_state *st = ac->data;
    redisReply *r = rv;
    (void)priv;
    if (!r || r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0)
        st->bad++;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    async_state *st = ac->data;
    if (status == REDIS_OK)
        st->disconnected++;
}

static void test_async_libuv(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    async_state st = {0};
    for (int i = 0; i < ASYNC_CONNS; i++) {
        redisAsyncContext *ac = redisAsyncConnect("127.0.0.1", g_port);
        assert_true(ac && !ac->err);
        ac->data = &st;
        assert_int_equal(redisLibuvAttach(ac, &loop), REDIS_OK);
        redisAsyncSetDisconnectCallback(ac, on_disconnect);
        st.ac[i] = ac;
        /* Everything queued before the loop runs: all in flight at once. */
        for (int k = 0; k < ASYNC_PER_CONN; k++) {
            if (k % 5 == 0)
                redisAsyncCommand(ac, on_set, NULL, "SET ha:%d:%d %d", i, k,
                                  k);
            redisAsyncCommand(ac, on_incr, NULL, "INCR ha:counter");
        }
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(st.bad, 0);
    assert_int_equal(st.replies, ASYNC_CONNS * ASYNC_PER_CONN);
    assert_int_equal(st.max_incr, ASYNC_CONNS * ASYNC_PER_CONN);
    assert_int_equal(st.disconnected, ASYNC_CONNS);

    redisContext *c = connect_ctx();
    assert_true(c && !c->err);
    redisReply *r = cmd_type(c, REDIS_REPLY_STRING, "GET ha:counter");
    assert_int_equal(atoll(r->str), ASYNC_CONNS * ASYNC_PER_CONN);
    freeReplyObject(r);
    r = cmd_type(c, REDIS_REPLY_STRING, "GET ha:7:2495");
    assert_string_equal(r->str, "2495");
    freeReplyObject(r);
    redisFree(c);
}

/* ---------- SIGKILL ---------- */

static void test_kill9_keeps_acknowledged(void **state)
{
    (void)state;
    redisContext *c = connect_ctx();
    assert_true(c && !c->err);
    enum { N = 500 };
    for (int i = 0; i < N; i++)
        assert_int_equal(redisAppendCommand(c, "SET hkill:%d %d", i, i),
                         REDIS_OK);
    expect_replies(c, N, NULL, 0);
    redisFree(c);
    server_stop(SIGKILL);
    server_start();
    c = connect_ctx();
    assert_true(c && !c->err);
    for (int i = 0; i < N; i++)
        assert_int_equal(redisAppendCommand(c, "GET hkill:%d", i), REDIS_OK);
    expect_replies(c, N, "", 1);
    redisReply *r = cmd_type(c, REDIS_REPLY_STRING, "GET ha:counter");
    assert_int_equal(atoll(r->str), ASYNC_CONNS * ASYNC_PER_CONN);
    freeReplyObject(r);
    redisFree(c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH-TO-cairn-server\n", argv[0]);
        return 2;
    }
    g_server_bin = argv[1];
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_and_errors),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_multi_watch_history),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_async_libuv),
        cmocka_unit_test(test_kill9_keeps_acknowledged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
