/*
 * resp.h — the Redis protocol (RESP2 / RESP3) layer of cairn-server: an
 * incremental request parser and a reply builder. Pure buffers: no sockets,
 * no event loop, no engine.
 *
 * Parser. A request is either a multibulk ("*N\r\n" then N times
 * "$len\r\n<bytes>\r\n") or an inline command (one line ending in "\n",
 * optionally "\r\n", split on blanks with Redis's quoting rules). The caller
 * keeps the bytes read from the connection in one buffer and calls
 * cairn_resp_parse() with everything not yet consumed:
 *   - 1: one complete command in *out; *consumed is its size in bytes. The
 *     caller executes it, then drops those bytes from the front of its buffer.
 *   - 0: more bytes are needed; nothing is consumed. The parser remembers how
 *     far it got (as offsets, so the caller may move or grow its buffer), and
 *     the next call must pass the same bytes again followed by any new ones.
 *     A bulk arriving in pieces costs O(1) per call: its bytes are never
 *     scanned; only header lines are, and never twice.
 *   - < 0: CAIRN_EINVAL for a protocol error, CAIRN_ENOMEM when out of
 *     memory; err holds the message, worded like Redis's (for a protocol
 *     error, e.g. "Protocol error: invalid bulk length"; the server replies
 *     "-ERR <message>" and closes the connection). The error is sticky: later
 *     calls return it again until cairn_resp_parser_reset().
 *
 * Invariants:
 *   - A multibulk command's argv[i] points INTO the buffer passed to the call
 *     that returned 1 (zero copy); it stays valid until the caller consumes or
 *     moves those bytes. Inline arguments are unescaped into a scratch buffer
 *     the parser owns, valid until the next call on the parser.
 *   - out->argv / out->argl are arrays owned by the parser, reused by the
 *     next call. argc == 0 is an empty command ("*0", "*-1", a blank line):
 *     the caller skips it.
 *   - The parser never reads at or past buf[len]. Whether a stream is fed
 *     whole or in pieces of any sizes, the commands, errors and consumed
 *     sizes are the same.
 *   - Header lines ("*N", "$len") and inline lines longer than max_inline
 *     bytes (terminator excluded) are errors: "too big mbulk count string",
 *     "too big bulk count string", "too big inline request". For inline
 *     lines this holds whether or not the newline has already arrived, so
 *     the outcome never depends on how the bytes were split.
 *
 * Reply builder. cairn_resp_buf is a growable output buffer with one writer
 * per reply type, encoding for the connection's protocol (2 or 3; RESP3-only
 * types degrade to their RESP2 forms as Redis does). Writers never fail
 * loudly: on ENOMEM (or a size overflow) the buffer sets oom and drops that
 * write and every later one until cairn_resp_reset(); the caller checks oom
 * and closes the connection, since a partial reply cannot be sent.
 *
 * Locking: none. A parser and a reply buffer each belong to one connection
 * and one thread at a time.
 */
#ifndef CAIRN_SERVER_RESP_H
#define CAIRN_SERVER_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ parser */

#define CAIRN_RESP_DEFAULT_MAX_BULK ((size_t)512 << 20) /* 512 MiB */
#define CAIRN_RESP_DEFAULT_MAX_ARGS ((size_t)1 << 20)   /* 1048576 */
#define CAIRN_RESP_DEFAULT_MAX_INLINE ((size_t)64 << 10) /* 64 KiB */

typedef struct cairn_resp_limits {
    size_t max_bulk;   /* longest bulk argument ("$len"), bytes */
    size_t max_args;   /* most arguments of a multibulk ("*N") */
    size_t max_inline; /* longest inline line / header line, bytes */
} cairn_resp_limits;

/* Set the defaults above. */
void cairn_resp_limits_init(cairn_resp_limits *l);

typedef struct cairn_resp_cmd {
    size_t argc;
    const uint8_t **argv; /* argc pointers (see the invariants above) */
    size_t *argl;         /* argc lengths */
} cairn_resp_cmd;

typedef struct cairn_resp_parser cairn_resp_parser;

/* A new parser; l == NULL means the defaults. NULL when out of memory. */
cairn_resp_parser *cairn_resp_parser_new(const cairn_resp_limits *l);
void cairn_resp_parser_free(cairn_resp_parser *p);

/* Forget any progress and any sticky error (a fresh stream follows). */
void cairn_resp_parser_reset(cairn_resp_parser *p);

/* Parse at most one command from buf[0..len). See the top of this file.
 * err (may be NULL) receives a NUL-terminated message of at most errlen
 * bytes on a negative return. out and consumed are written on every
 * return (argc 0 and 0 bytes unless 1 is returned). */
int cairn_resp_parse(cairn_resp_parser *p, const uint8_t *buf, size_t len,
                     cairn_resp_cmd *out, size_t *consumed, char *err,
                     size_t errlen);

/* While a multibulk argument's bytes are awaited (the last call returned 0
 * after reading "$len"): the buffer length the next call needs at least to
 * finish that argument, so the caller can size its buffer once. 0 when no
 * such length is known. */
size_t cairn_resp_parser_need(const cairn_resp_parser *p);

/* ------------------------------------------------------------------ replies */

typedef struct cairn_resp_buf {
    uint8_t *p;
    size_t len, cap;
    int proto; /* 2 or 3 */
    bool oom;  /* a write was dropped: the buffer is unusable until reset */
} cairn_resp_buf;

/* An empty buffer for protocol proto (3 means RESP3, anything else RESP2).
 * Allocates nothing. */
void cairn_resp_init(cairn_resp_buf *b, int proto);
void cairn_resp_free(cairn_resp_buf *b);
/* Empty the buffer (len = 0, oom cleared), keeping its memory. */
void cairn_resp_reset(cairn_resp_buf *b);

/* "+s\r\n" (CR / LF inside s become spaces). */
void cairn_resp_simple(cairn_resp_buf *b, const char *s);
/* "-msg\r\n": msg carries its code ("ERR ...", "WRONGTYPE ..."); CR / LF
 * inside become spaces. */
void cairn_resp_error(cairn_resp_buf *b, const char *msg);
void cairn_resp_errorf(cairn_resp_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* ":v\r\n" */
void cairn_resp_integer(cairn_resp_buf *b, int64_t v);
/* "$n\r\n<bytes>\r\n" */
void cairn_resp_bulk(cairn_resp_buf *b, const void *p, size_t n);
/* A bulk of a C string; NULL gives a null. */
void cairn_resp_bulk_cstr(cairn_resp_buf *b, const char *s);
/* RESP2 "$-1\r\n", RESP3 "_\r\n" */
void cairn_resp_null(cairn_resp_buf *b);
/* RESP2 "*-1\r\n", RESP3 "_\r\n" */
void cairn_resp_null_array(cairn_resp_buf *b);
/* Aggregate headers; the caller then writes the elements (2n for a map). */
void cairn_resp_array(cairn_resp_buf *b, size_t n); /* "*n" */
void cairn_resp_map(cairn_resp_buf *b, size_t n);   /* "%n"; RESP2 "*2n" */
void cairn_resp_set(cairn_resp_buf *b, size_t n);   /* "~n"; RESP2 "*n" */
void cairn_resp_push(cairn_resp_buf *b, size_t n);  /* ">n"; RESP2 "*n" */
/* RESP3 ",<repr>\r\n"; RESP2 a bulk of <repr> (see
 * cairn_resp_format_double). */
void cairn_resp_dbl(cairn_resp_buf *b, double d);
/* RESP3 "#t" / "#f"; RESP2 ":1" / ":0". */
void cairn_resp_boolean(cairn_resp_buf *b, bool v);
/* RESP3 "=<n+4>\r\n<fmt>:<bytes>\r\n" (fmt: 3 characters such as "txt" or
 * "mkd"; anything else is taken as "txt"); RESP2 a bulk of the bytes. */
void cairn_resp_verbatim(cairn_resp_buf *b, const char *fmt, const void *p,
                         size_t n);
/* Already-encoded bytes, appended as they are. */
void cairn_resp_raw(cairn_resp_buf *b, const void *p, size_t n);

/* A container command's subcommand (CLIENT ID, CONFIG GET, ...): its
 * lower-case name and its arity counting the command and the subcommand
 * (n: exactly n arguments, -n: at least n). */
typedef struct cairn_resp_sub {
    const char *name;
    int arity;
} cairn_resp_sub;

/* Find argv[1] (case-insensitively) among subs and check its arity, as
 * Redis 7's dispatcher does: the index, or -1 with the error written:
 * "unknown subcommand 'X'. Try CMD HELP." or "wrong number of arguments
 * for 'cmd|sub' command" (cmd: the command's upper-case name). argc >= 2. */
int cairn_resp_sub_find(cairn_resp_buf *b, const char *cmd,
                        const cairn_resp_sub *subs, size_t nsubs, size_t argc,
                        const uint8_t *const *argv, const size_t *argl);

/* The length in bytes of the one complete RESP2 / RESP3 reply value at
 * the start of p (an aggregate with everything in it), or 0 when p[0..n)
 * does not start with a whole, well-formed value. Walks headers only
 * (bulk bytes are stepped over), without recursion: the server uses it to
 * find each command's reply in a batch's or EXEC's output. */
size_t cairn_resp_value_len(const uint8_t *p, size_t n);

/* The text of a double in replies, NUL-terminated in out (at least
 * CAIRN_RESP_DBL_CHARS bytes); returns its length. "inf", "-inf", "nan";
 * "0" / "-0"; an integral value below 2^52 in magnitude as an integer
 * ("3"); otherwise the shortest of %.15g, %.16g, %.17g that reads back as
 * the same double ("0.1", "1.5", "1e+300", "0.30000000000000004"). */
#define CAIRN_RESP_DBL_CHARS 32
size_t cairn_resp_format_double(double d, char *out);

#endif /* CAIRN_SERVER_RESP_H */
