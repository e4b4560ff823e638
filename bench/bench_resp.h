/*
 * bench_resp.h — a minimal blocking Redis-protocol (RESP2) client for the
 * benchmarks: one TCP connection, a writer of command arrays, and a reader
 * that parses each reply whole (simple strings, errors, integers, bulk
 * strings, arrays, nested, and the null bulk string and null array).
 *
 * Use:
 *   bresp_conn c;
 *   bresp_connect(&c, "127.0.0.1", port, 300.0);
 *   bresp_cmd(&c, 2); bresp_arg_str(&c, "GET"); bresp_arg_str(&c, "k");
 *   ... more commands (a pipeline) ...
 *   bresp_flush(&c);
 *   bresp_read(&c);   one reply per command, in order; root node 0
 *   bresp_close(&c);
 *
 * Invariants:
 *   - A reply is parsed completely before bresp_read returns 0: every node
 *     is in c.nodes in preorder (node 0 the root); an array's elements
 *     follow it, each element's subtree ending at its `next`.
 *   - String nodes point into c.in: they stay valid until the next
 *     bresp_read (which drops the bytes of the reply it replaces).
 *   - Every failure (connect, I/O, timeout, a closed connection, a
 *     malformed or oversized reply, out of memory) returns -1 with a
 *     message in c.err; nothing aborts. After a failure on a connection
 *     only bresp_close is meaningful.
 *   - Writes use MSG_NOSIGNAL: a closed peer is an error, never SIGPIPE.
 *
 * Locking: none. A connection belongs to one thread at a time; distinct
 * connections are independent.
 */
#ifndef CAIRN_BENCH_RESP_H
#define CAIRN_BENCH_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum bresp_type {
    BRESP_STRING = '+', /* simple string */
    BRESP_ERROR = '-',
    BRESP_INT = ':',
    BRESP_BULK = '$',
    BRESP_ARRAY = '*',
    BRESP_NIL = '_', /* $-1 or *-1 */
} bresp_type;

typedef struct bresp_node {
    bresp_type type;
    int64_t n;   /* INT: the value; STRING, ERROR, BULK: the length in
                    bytes; ARRAY: the element count */
    size_t off;  /* STRING, ERROR, BULK: the bytes, at c.in + off */
    size_t next; /* index of the first node after this one's subtree */
} bresp_node;

typedef struct bresp_conn {
    int fd;
    uint8_t *in; /* received bytes; [0, in_used) hold the current reply */
    size_t in_len, in_used, in_cap;
    uint8_t *out; /* commands not yet sent */
    size_t out_len, out_cap;
    bool out_oom;
    bresp_node *nodes; /* the current reply, in preorder */
    size_t nnodes, nodes_cap;
    char err[256];
} bresp_conn;

/* Connect to host:port (a numeric IPv4 address) with TCP_NODELAY; a send
 * or receive waiting longer than timeout_s seconds fails. 0 or -1. */
int bresp_connect(bresp_conn *c, const char *host, int port,
                  double timeout_s);

/* Close the socket and free the buffers (safe on a zeroed struct, and
 * twice). */
void bresp_close(bresp_conn *c);

/* Start a command of argc arguments; then exactly argc bresp_arg* calls.
 * The bytes wait in c.out until bresp_flush. */
void bresp_cmd(bresp_conn *c, size_t argc);
void bresp_arg(bresp_conn *c, const void *p, size_t n);
void bresp_arg_str(bresp_conn *c, const char *s);
void bresp_arg_i64(bresp_conn *c, int64_t v);

/* Send everything buffered: 0 or -1. */
int bresp_flush(bresp_conn *c);

/* Read the next reply whole into c.nodes: 0 or -1. */
int bresp_read(bresp_conn *c);

/* The bytes of a STRING, ERROR or BULK node (not NUL-terminated). */
static inline const char *bresp_str(const bresp_conn *c, const bresp_node *n)
{
    return (const char *)c->in + n->off;
}

/* Does node i hold exactly the string s (STRING or BULK)? */
bool bresp_is_str(const bresp_conn *c, size_t i, const char *s);

/* A node as a short text for messages ("integer 5", "error 'ERR ...'",
 * "array of 3", ...): buf, at most n bytes. */
const char *bresp_describe(const bresp_conn *c, size_t i, char *buf,
                           size_t n);

#endif /* CAIRN_BENCH_RESP_H */
