/*
 * bench_resp.c — the benchmarks' minimal blocking RESP2 client (see
 * bench_resp.h): command arrays out, whole replies in, parsed into a flat
 * preorder node array.
 *
 * Invariants:
 *   - The reader never trusts a length it has not checked: bulk lengths
 *     are at most BRESP_MAX_BULK, a line at most BRESP_MAX_LINE bytes,
 *     nesting at most BRESP_MAX_DEPTH levels, a reply at most
 *     BRESP_MAX_NODES nodes; beyond any of them the reply is an error, not
 *     an allocation or a deep recursion.
 *   - Bytes received past the current reply (a pipeline's next replies)
 *     stay in c.in and are moved to its front by the next bresp_read.
 * Locking: none (one connection, one thread at a time).
 */
#include "bench_resp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BRESP_MAX_BULK ((int64_t)512 << 20)
#define BRESP_MAX_LINE ((size_t)1 << 20)
#define BRESP_MAX_DEPTH 32
#define BRESP_MAX_NODES ((size_t)1 << 28)
#define BRESP_READ_CHUNK ((size_t)256 << 10)

static int fail(bresp_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int fail(bresp_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
    return -1;
}

int bresp_connect(bresp_conn *c, const char *host, int port, double timeout_s)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return fail(c, "bad address %s:%d", host, port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return fail(c, "socket: %s", strerror(errno));
    int one = 1;
    struct timeval tv = {(time_t)timeout_s,
                         (suseconds_t)((timeout_s - (double)(time_t)timeout_s) *
                                       1e6)};
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0) {
        int e = errno;
        close(fd);
        return fail(c, "setsockopt: %s", strerror(e));
    }
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        return fail(c, "connect to %s:%d: %s", host, port, strerror(e));
    }
    c->fd = fd;
    return 0;
}

void bresp_close(bresp_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->in);
    free(c->out);
    free(c->nodes);
    c->in = c->out = NULL;
    c->nodes = NULL;
    c->in_len = c->in_used = c->in_cap = 0;
    c->out_len = c->out_cap = 0;
    c->nnodes = c->nodes_cap = 0;
}

/* ---------- writing ---------- */

static bool out_reserve(bresp_conn *c, size_t n)
{
    if (c->out_oom)
        return false;
    if (c->out_len + n <= c->out_cap)
        return true;
    size_t cap = c->out_cap ? c->out_cap : 4096;
    while (cap < c->out_len + n)
        cap *= 2;
    uint8_t *p = realloc(c->out, cap);
    if (!p) {
        c->out_oom = true;
        return false;
    }
    c->out = p;
    c->out_cap = cap;
    return true;
}

/* Decimal digits of v into buf (at least 21 bytes), no NUL: the length. */
static size_t fmt_i64(char *buf, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t k = 0;
    if (v < 0)
        buf[k++] = '-';
    while (n)
        buf[k++] = tmp[--n];
    return k;
}

/* "<prefix><v>\r\n" */
static void put_header(bresp_conn *c, char prefix, int64_t v)
{
    if (!out_reserve(c, 24))
        return;
    c->out[c->out_len++] = (uint8_t)prefix;
    c->out_len += fmt_i64((char *)c->out + c->out_len, v);
    c->out[c->out_len++] = '\r';
    c->out[c->out_len++] = '\n';
}

void bresp_cmd(bresp_conn *c, size_t argc)
{
    put_header(c, '*', (int64_t)argc);
}

void bresp_arg(bresp_conn *c, const void *p, size_t n)
{
    put_header(c, '$', (int64_t)n);
    if (!out_reserve(c, n + 2))
        return;
    if (n)
        memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    c->out[c->out_len++] = '\r';
    c->out[c->out_len++] = '\n';
}

void bresp_arg_str(bresp_conn *c, const char *s)
{
    bresp_arg(c, s, strlen(s));
}

void bresp_arg_i64(bresp_conn *c, int64_t v)
{
    char d[24];
    size_t n = fmt_i64(d, v);
    bresp_arg(c, d, n);
}

int bresp_flush(bresp_conn *c)
{
    if (c->out_oom)
        return fail(c, "out of memory building a command");
    if (c->fd < 0)
        return fail(c, "not connected");
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t n = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            return fail(c, "send: %s",
                        e == EAGAIN || e == EWOULDBLOCK ? "timed out"
                                                        : strerror(e));
        }
        done += (size_t)n;
    }
    c->out_len = 0;
    return 0;
}

/* ---------- reading ---------- */

/* Receive more bytes (at least one) into c.in: 0 or -1. */
static int fill(bresp_conn *c)
{
    if (c->in_cap - c->in_len < BRESP_READ_CHUNK / 4) {
        size_t cap = c->in_cap ? c->in_cap * 2 : BRESP_READ_CHUNK;
        uint8_t *p = realloc(c->in, cap);
        if (!p)
            return fail(c, "out of memory reading a reply");
        c->in = p;
        c->in_cap = cap;
    }
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            return 0;
        }
        if (n == 0)
            return fail(c, "the server closed the connection");
        if (errno == EINTR)
            continue;
        int e = errno;
        return fail(c, "recv: %s",
                    e == EAGAIN || e == EWOULDBLOCK ? "timed out waiting for "
                                                      "a reply"
                                                    : strerror(e));
    }
}

/* The line at *pos (without its CRLF): its start and length; *pos moves
 * past the CRLF. */
static int read_line(bresp_conn *c, size_t *pos, size_t *start, size_t *len)
{
    size_t scan = *pos;
    for (;;) {
        while (scan + 1 < c->in_len) {
            const uint8_t *cr =
                memchr(c->in + scan, '\r', c->in_len - scan - 1);
            if (!cr) {
                scan = c->in_len - 1;
                break;
            }
            size_t at = (size_t)(cr - c->in);
            if (c->in[at + 1] == '\n') {
                *start = *pos;
                *len = at - *pos;
                *pos = at + 2;
                return 0;
            }
            scan = at + 1;
        }
        if (c->in_len - *pos > BRESP_MAX_LINE)
            return fail(c, "protocol error: a reply line longer than %zu "
                           "bytes",
                        BRESP_MAX_LINE);
        if (fill(c) != 0)
            return -1;
    }
}

/* A whole line as a RESP integer: digits with an optional '-', no
 * overflow. */
static bool parse_int(const uint8_t *p, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = n > 0 && p[0] == '-';
    if (neg)
        i++;
    if (i == n || n - i > 19)
        return false;
    uint64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return false; /* -2^63 is not needed here */
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static int push_node(bresp_conn *c, bresp_type t, int64_t n, size_t off,
                     size_t *idx)
{
    if (c->nnodes == c->nodes_cap) {
        if (c->nodes_cap >= BRESP_MAX_NODES)
            return fail(c, "reply too large (more than %zu elements)",
                        BRESP_MAX_NODES);
        size_t cap = c->nodes_cap ? c->nodes_cap * 2 : 1024;
        bresp_node *p = realloc(c->nodes, cap * sizeof *p);
        if (!p)
            return fail(c, "out of memory reading a reply");
        c->nodes = p;
        c->nodes_cap = cap;
    }
    size_t i = c->nnodes++;
    c->nodes[i] = (bresp_node){t, n, off, i + 1};
    *idx = i;
    return 0;
}

/* The fast path for a number line (':', '$' or '*') lying whole in the
 * buffer at *pos: true with its value, *pos past it; false leaves the line
 * to the general path (incomplete, or not a plain number). */
static bool quick_number(const bresp_conn *c, size_t *pos, int64_t *v)
{
    const uint8_t *in = c->in;
    size_t p = *pos + 1, end = c->in_len;
    bool neg = p < end && in[p] == '-';
    if (neg)
        p++;
    size_t d0 = p;
    uint64_t u = 0;
    while (p < end && p - d0 < 19 && in[p] >= '0' && in[p] <= '9')
        u = u * 10 + (uint64_t)(in[p++] - '0');
    if (p == d0 || p + 1 >= end || in[p] != '\r' || in[p + 1] != '\n' ||
        u > (uint64_t)INT64_MAX)
        return false;
    *v = neg ? -(int64_t)u : (int64_t)u;
    *pos = p + 2;
    return true;
}

static int parse(bresp_conn *c, size_t *pos, int depth)
{
    if (depth > BRESP_MAX_DEPTH)
        return fail(c, "protocol error: replies nested deeper than %d",
                    BRESP_MAX_DEPTH);
    size_t idx = 0, p = *pos;
    int64_t v = 0;
    uint8_t t = p < c->in_len ? c->in[p] : 0;
    if ((t == ':' || t == '$' || t == '*') && quick_number(c, &p, &v)) {
        *pos = p;
    } else {
        size_t start = 0, len = 0;
        if (read_line(c, pos, &start, &len) != 0)
            return -1;
        if (len == 0)
            return fail(c, "protocol error: an empty reply line");
        t = c->in[start];
        if (t == '+' || t == '-')
            return push_node(c, (bresp_type)t, (int64_t)(len - 1), start + 1,
                             &idx);
        if (t != ':' && t != '$' && t != '*')
            return fail(c, "protocol error: unexpected reply type byte "
                           "0x%02x",
                        (unsigned)t);
        if (!parse_int(c->in + start + 1, len - 1, &v))
            return fail(c, "protocol error: bad number in '%.*s'",
                        (int)(len > 40 ? 40 : len),
                        (const char *)c->in + start);
    }
    if (t == ':')
        return push_node(c, BRESP_INT, v, 0, &idx);
    if (t == '$') {
        if (v < -1 || v > BRESP_MAX_BULK)
            return fail(c, "protocol error: bad bulk length %" PRId64, v);
        if (v == -1)
            return push_node(c, BRESP_NIL, 0, 0, &idx);
        size_t need = *pos + (size_t)v + 2;
        while (c->in_len < need)
            if (fill(c) != 0)
                return -1;
        if (c->in[need - 2] != '\r' || c->in[need - 1] != '\n')
            return fail(c, "protocol error: a bulk string not ended by CRLF");
        size_t off = *pos;
        *pos = need;
        return push_node(c, BRESP_BULK, v, off, &idx);
    }
    if (v < -1 || (uint64_t)v > (uint64_t)BRESP_MAX_NODES)
        return fail(c, "protocol error: bad array length %" PRId64, v);
    if (v == -1)
        return push_node(c, BRESP_NIL, 0, 0, &idx);
    if (push_node(c, BRESP_ARRAY, v, 0, &idx) != 0)
        return -1;
    for (int64_t i = 0; i < v; i++)
        if (parse(c, pos, depth + 1) != 0)
            return -1;
    c->nodes[idx].next = c->nnodes;
    return 0;
}

int bresp_read(bresp_conn *c)
{
    if (c->fd < 0)
        return fail(c, "not connected");
    /* Drop the previous reply's bytes, keep what follows it. */
    if (c->in_used > 0) {
        memmove(c->in, c->in + c->in_used, c->in_len - c->in_used);
        c->in_len -= c->in_used;
        c->in_used = 0;
    }
    c->nnodes = 0;
    size_t pos = 0;
    if (parse(c, &pos, 0) != 0)
        return -1;
    c->in_used = pos;
    return 0;
}

bool bresp_is_str(const bresp_conn *c, size_t i, const char *s)
{
    const bresp_node *n = &c->nodes[i];
    size_t l = strlen(s);
    return (n->type == BRESP_STRING || n->type == BRESP_BULK) &&
           (size_t)n->n == l && memcmp(bresp_str(c, n), s, l) == 0;
}

const char *bresp_describe(const bresp_conn *c, size_t i, char *buf, size_t n)
{
    const bresp_node *x = &c->nodes[i];
    int show = x->n > 120 ? 120 : (int)x->n;
    switch (x->type) {
    case BRESP_STRING:
        snprintf(buf, n, "simple string '%.*s'", show, bresp_str(c, x));
        break;
    case BRESP_ERROR:
        snprintf(buf, n, "error '%.*s'", show, bresp_str(c, x));
        break;
    case BRESP_BULK:
        snprintf(buf, n, "bulk string '%.*s'", show, bresp_str(c, x));
        break;
    case BRESP_INT:
        snprintf(buf, n, "integer %" PRId64, x->n);
        break;
    case BRESP_ARRAY:
        snprintf(buf, n, "array of %" PRId64, x->n);
        break;
    case BRESP_NIL:
        snprintf(buf, n, "null");
        break;
    }
    return buf;
}
