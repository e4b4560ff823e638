/*
 * resp.c — the RESP request parser and reply builder (see resp.h).
 *
 * Parser invariants:
 *   - All progress is kept as offsets from the start of the caller's buffer
 *     (pos: the next unparsed byte; scan: how many bytes from pos were
 *     already searched for a line terminator), never as pointers, so the
 *     caller may move its buffer between calls. A call whose buffer is
 *     shorter than the remembered progress (a caller bug) restarts the
 *     request from offset 0 rather than read out of bounds.
 *   - Every decision depends only on the bytes of the stream, taken in a
 *     fixed order, and is made only once every byte it looks at is there;
 *     so the outcome does not depend on how the stream was split.
 *   - Header lines are searched within max_inline + 1 bytes only; a bulk's
 *     bytes are never looked at except its two terminator bytes.
 *   - Argument arrays grow with the arguments actually received, so a
 *     small "*1048576\r\n" does not allocate for a million arguments.
 *
 * Locking: none; one parser / one reply buffer per connection and thread.
 */
#include "server/resp.h"

#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cairn.h"

/* ================================================================ parser */

enum {
    ST_START = 0, /* nothing of the request looked at yet */
    ST_MB_COUNT,  /* multibulk: reading "*N\r\n" */
    ST_MB_ARGS,   /* multibulk: reading the arguments */
    ST_INLINE,    /* inline: looking for the end of the line */
};

/* Arrays above this many entries are released when the next request starts,
 * so one huge command does not pin its arrays for the connection's life. */
#define ARGS_KEEP 1024

struct cairn_resp_parser {
    cairn_resp_limits lim;

    int state;
    size_t pos;     /* offset of the next unparsed byte */
    size_t scan;    /* bytes from pos searched for a terminator */
    size_t nargs;   /* multibulk: arguments announced */
    size_t argc;    /* arguments complete */
    bool have_len;  /* multibulk: "$len" of the next argument read */
    size_t bulklen; /* ... and its value */

    size_t cap;           /* entries in off / argv / argl */
    size_t *off;          /* offset of each argument (buffer or scratch) */
    const uint8_t **argv; /* filled when a command completes */
    size_t *argl;

    uint8_t *scratch; /* unescaped inline arguments */
    size_t scratch_cap;

    int err; /* sticky error, 0 if none */
    char errmsg[96];
};

void cairn_resp_limits_init(cairn_resp_limits *l)
{
    l->max_bulk = CAIRN_RESP_DEFAULT_MAX_BULK;
    l->max_args = CAIRN_RESP_DEFAULT_MAX_ARGS;
    l->max_inline = CAIRN_RESP_DEFAULT_MAX_INLINE;
}

static void progress_reset(cairn_resp_parser *p)
{
    p->state = ST_START;
    p->pos = 0;
    p->scan = 0;
    p->nargs = 0;
    p->argc = 0;
    p->have_len = false;
    p->bulklen = 0;
}

cairn_resp_parser *cairn_resp_parser_new(const cairn_resp_limits *l)
{
    cairn_resp_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (l)
        p->lim = *l;
    else
        cairn_resp_limits_init(&p->lim);
    progress_reset(p);
    return p;
}

static void free_arrays(cairn_resp_parser *p)
{
    free(p->off);
    free(p->argv);
    free(p->argl);
    p->off = NULL;
    p->argv = NULL;
    p->argl = NULL;
    p->cap = 0;
}

void cairn_resp_parser_free(cairn_resp_parser *p)
{
    if (!p)
        return;
    free_arrays(p);
    free(p->scratch);
    free(p);
}

void cairn_resp_parser_reset(cairn_resp_parser *p)
{
    progress_reset(p);
    p->err = 0;
    p->errmsg[0] = '\0';
}

size_t cairn_resp_parser_need(const cairn_resp_parser *p)
{
    if (p->err || p->state != ST_MB_ARGS || !p->have_len)
        return 0;
    if (p->bulklen > SIZE_MAX - 2 - p->pos)
        return SIZE_MAX;
    return p->pos + p->bulklen + 2;
}

/* Record a sticky error; returns code. */
static int fail(cairn_resp_parser *p, int code, const char *msg)
{
    p->err = code;
    snprintf(p->errmsg, sizeof(p->errmsg), "%s", msg);
    return code;
}

/* Make room for at least `need` arguments, growing by doubling but never
 * beyond `most` (the announced count) unless need says so. */
static bool ensure_args(cairn_resp_parser *p, size_t need, size_t most)
{
    if (need <= p->cap)
        return true;
    size_t nc = p->cap ? p->cap : 16;
    while (nc < need)
        nc = nc > SIZE_MAX / 2 ? need : nc * 2;
    if (nc > most && most >= need)
        nc = most;
    if (nc > SIZE_MAX / sizeof(size_t))
        return false;
    /* Each array keeps the larger size even if a later realloc fails;
     * cap only grows once all three have. */
    size_t *o = realloc(p->off, nc * sizeof(*o));
    if (!o)
        return false;
    p->off = o;
    const uint8_t **v = realloc(p->argv, nc * sizeof(*v));
    if (!v)
        return false;
    p->argv = v;
    size_t *l = realloc(p->argl, nc * sizeof(*l));
    if (!l)
        return false;
    p->argl = l;
    p->cap = nc;
    return true;
}

/* Strict decimal, as Redis reads lengths: optional '-', no '+', no leading
 * zeros ("0" alone is fine, "-0" is not), no blanks, fits int64. */
static bool parse_ll(const uint8_t *s, size_t n, int64_t *v)
{
    if (n == 0 || n > 20)
        return false;
    if (n == 1 && s[0] == '0') {
        *v = 0;
        return true;
    }
    size_t i = 0;
    bool neg = false;
    if (s[0] == '-') {
        neg = true;
        i = 1;
        if (n == 1)
            return false;
    }
    if (s[i] < '1' || s[i] > '9')
        return false;
    uint64_t u = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (u > (UINT64_MAX - d) / 10)
            return false;
        u = u * 10 + d;
    }
    if (neg) {
        if (u > (uint64_t)INT64_MAX + 1)
            return false;
        *v = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
    } else {
        if (u > (uint64_t)INT64_MAX)
            return false;
        *v = (int64_t)u;
    }
    return true;
}

/* Bytes searched for a line terminator: a line may hold max_inline bytes. */
static size_t line_window(const cairn_resp_parser *p)
{
    return p->lim.max_inline == SIZE_MAX ? SIZE_MAX : p->lim.max_inline + 1;
}

/* Look for byte c in buf[start .. len), within `window` bytes of start,
 * resuming after the p->scan bytes already searched. 1: found at *idx
 * (absolute); 0: not yet; -1: the window is full and holds no c. */
static int find_term(cairn_resp_parser *p, const uint8_t *buf, size_t len,
                     size_t start, uint8_t c, size_t *idx)
{
    size_t window = line_window(p);
    size_t avail = len - start;
    size_t lim = avail < window ? avail : window;
    if (p->scan < lim) {
        const uint8_t *q = memchr(buf + start + p->scan, c, lim - p->scan);
        if (q) {
            *idx = (size_t)(q - buf);
            p->scan = *idx - start;
            return 1;
        }
        p->scan = lim;
    }
    return avail >= window ? -1 : 0;
}

static int parse_multibulk(cairn_resp_parser *p, const uint8_t *buf,
                           size_t len, size_t *consumed)
{
    if (p->state == ST_MB_COUNT) {
        size_t idx;
        int f = find_term(p, buf, len, 0, '\r', &idx);
        if (f < 0)
            return fail(p, CAIRN_EINVAL,
                        "Protocol error: too big mbulk count string");
        if (f == 0 || idx + 1 >= len)
            return 0;
        int64_t v;
        if (!parse_ll(buf + 1, idx - 1, &v) ||
            (v > 0 && (uint64_t)v > p->lim.max_args) || buf[idx + 1] != '\n')
            return fail(p, CAIRN_EINVAL,
                        "Protocol error: invalid multibulk length");
        p->pos = idx + 2;
        p->scan = 0;
        if (v <= 0) { /* "*0", "*-1", "*-5": an empty command (Redis) */
            p->argc = 0;
            *consumed = p->pos;
            return 1;
        }
        p->nargs = (size_t)v;
        p->argc = 0;
        p->have_len = false;
        p->state = ST_MB_ARGS;
    }

    while (p->argc < p->nargs) {
        if (!p->have_len) {
            if (p->pos >= len)
                return 0;
            if (buf[p->pos] != '$') {
                char msg[64];
                snprintf(msg, sizeof(msg),
                         "Protocol error: expected '$', got '%c'",
                         (char)buf[p->pos]);
                return fail(p, CAIRN_EINVAL, msg);
            }
            size_t idx;
            int f = find_term(p, buf, len, p->pos, '\r', &idx);
            if (f < 0)
                return fail(p, CAIRN_EINVAL,
                            "Protocol error: too big bulk count string");
            if (f == 0 || idx + 1 >= len)
                return 0;
            int64_t v;
            if (!parse_ll(buf + p->pos + 1, idx - p->pos - 1, &v) || v < 0 ||
                (uint64_t)v > p->lim.max_bulk || buf[idx + 1] != '\n')
                return fail(p, CAIRN_EINVAL,
                            "Protocol error: invalid bulk length");
            if (!ensure_args(p, p->argc + 1, p->nargs))
                return fail(p, CAIRN_ENOMEM,
                            "out of memory while reading the request");
            p->bulklen = (size_t)v;
            p->have_len = true;
            p->pos = idx + 2;
            p->scan = 0;
        }
        size_t avail = len - p->pos;
        if (avail < 2 || avail - 2 < p->bulklen)
            return 0;
        const uint8_t *end = buf + p->pos + p->bulklen;
        if (end[0] != '\r' || end[1] != '\n')
            return fail(p, CAIRN_EINVAL,
                        "Protocol error: expected '\\r\\n' after bulk data");
        p->off[p->argc] = p->pos;
        p->argl[p->argc] = p->bulklen;
        p->argc++;
        p->pos += p->bulklen + 2;
        p->have_len = false;
    }
    for (size_t i = 0; i < p->argc; i++)
        p->argv[i] = buf + p->off[i];
    *consumed = p->pos;
    return 1;
}

/* isspace() of the C locale, whatever the process locale. */
static bool is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
}

static int hex_val(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Split an inline line into arguments, unescaped into p->scratch, with the
 * rules of Redis's sdssplitargs():
 *   - arguments are separated by blanks; leading blanks are skipped (any
 *     C-locale space), a bare word ends at ' ', '\t', '\r' or '\n';
 *   - "double quotes" take \n \r \t \b \a, \xHH and \<any> (that character);
 *   - 'single quotes' take only \' as an escape;
 *   - a closing quote must be followed by a blank or the end of the line,
 *     an unclosed quote is an error; quotes may open in the middle of a
 *     word (foo"bar" is foobar);
 *   - the line ends at its first NUL byte (the line is a C string there).
 * Returns 0, -1 for unbalanced quotes, CAIRN_ENOMEM. */
static int split_inline(cairn_resp_parser *p, const uint8_t *s, size_t n)
{
    const uint8_t *nul = memchr(s, 0, n);
    if (nul)
        n = (size_t)(nul - s);
    if (p->scratch_cap < n || !p->scratch) {
        size_t nc = n ? n : 1;
        uint8_t *ns = realloc(p->scratch, nc);
        if (!ns)
            return CAIRN_ENOMEM;
        p->scratch = ns;
        p->scratch_cap = nc;
    }
    uint8_t *out = p->scratch;
    size_t o = 0, i = 0;
    p->argc = 0;
    for (;;) {
        while (i < n && is_blank(s[i]))
            i++;
        if (i >= n)
            break;
        size_t start = o;
        int mode = 0; /* 0 bare, 1 "double", 2 'single' */
        bool done = false;
        while (!done) {
            if (mode == 1) {
                if (i >= n)
                    return -1;
                uint8_t c = s[i];
                if (c == '\\' && i + 3 < n && s[i + 1] == 'x' &&
                    hex_val(s[i + 2]) >= 0 && hex_val(s[i + 3]) >= 0) {
                    out[o++] = (uint8_t)(hex_val(s[i + 2]) * 16 +
                                         hex_val(s[i + 3]));
                    i += 4;
                } else if (c == '\\' && i + 1 < n) {
                    uint8_t e = s[i + 1];
                    switch (e) {
                    case 'n': e = '\n'; break;
                    case 'r': e = '\r'; break;
                    case 't': e = '\t'; break;
                    case 'b': e = '\b'; break;
                    case 'a': e = '\a'; break;
                    default: break;
                    }
                    out[o++] = e;
                    i += 2;
                } else if (c == '"') {
                    if (i + 1 < n && !is_blank(s[i + 1]))
                        return -1;
                    done = true;
                    i++;
                } else {
                    out[o++] = c;
                    i++;
                }
            } else if (mode == 2) {
                if (i >= n)
                    return -1;
                uint8_t c = s[i];
                if (c == '\\' && i + 1 < n && s[i + 1] == '\'') {
                    out[o++] = '\'';
                    i += 2;
                } else if (c == '\'') {
                    if (i + 1 < n && !is_blank(s[i + 1]))
                        return -1;
                    done = true;
                    i++;
                } else {
                    out[o++] = c;
                    i++;
                }
            } else {
                if (i >= n) {
                    done = true;
                    break;
                }
                uint8_t c = s[i];
                switch (c) {
                case ' ':
                case '\n':
                case '\r':
                case '\t':
                    done = true;
                    break;
                case '"': mode = 1; break;
                case '\'': mode = 2; break;
                default: out[o++] = c; break;
                }
                i++;
            }
        }
        if (!ensure_args(p, p->argc + 1, SIZE_MAX))
            return CAIRN_ENOMEM;
        p->off[p->argc] = start;
        p->argl[p->argc] = o - start;
        p->argc++;
    }
    for (size_t k = 0; k < p->argc; k++)
        p->argv[k] = p->scratch + p->off[k];
    return 0;
}

static int parse_inline(cairn_resp_parser *p, const uint8_t *buf, size_t len,
                        size_t *consumed)
{
    size_t idx;
    int f = find_term(p, buf, len, 0, '\n', &idx);
    if (f < 0)
        return fail(p, CAIRN_EINVAL, "Protocol error: too big inline request");
    if (f == 0)
        return 0;
    size_t n = idx;
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    int rc = split_inline(p, buf, n);
    if (rc == CAIRN_ENOMEM)
        return fail(p, CAIRN_ENOMEM, "out of memory while reading the request");
    if (rc < 0)
        return fail(p, CAIRN_EINVAL,
                    "Protocol error: unbalanced quotes in request");
    *consumed = idx + 1;
    return 1;
}

int cairn_resp_parse(cairn_resp_parser *p, const uint8_t *buf, size_t len,
                     cairn_resp_cmd *out, size_t *consumed, char *err,
                     size_t errlen)
{
    if (!p->err && p->state == ST_START && p->cap > ARGS_KEEP)
        free_arrays(p); /* the previous command's arrays are dead */
    out->argc = 0;
    out->argv = p->argv;
    out->argl = p->argl;
    *consumed = 0;
    if (err && errlen)
        err[0] = '\0';

    int rc = p->err;
    if (rc == 0) {
        if (p->pos > len || p->scan > len - p->pos)
            progress_reset(p); /* buffer shrank: the caller broke the contract */
        if (len == 0)
            return 0;
        if (p->state == ST_START)
            p->state = buf[0] == '*' ? ST_MB_COUNT : ST_INLINE;
        if (p->state == ST_INLINE)
            rc = parse_inline(p, buf, len, consumed);
        else
            rc = parse_multibulk(p, buf, len, consumed);
        if (rc == 1) {
            out->argc = p->argc;
            out->argv = p->argv;
            out->argl = p->argl;
            progress_reset(p);
            return 1;
        }
        if (rc == 0)
            return 0;
        progress_reset(p);
    }
    if (err && errlen)
        snprintf(err, errlen, "%s", p->errmsg);
    return rc;
}

/* ================================================================ replies */

/* Largest buffer ever asked for: far beyond any real reply, low enough that
 * size arithmetic cannot overflow. */
#define BUF_MAX (SIZE_MAX / 4)

void cairn_resp_init(cairn_resp_buf *b, int proto)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->proto = proto == 3 ? 3 : 2;
    b->oom = false;
}

void cairn_resp_free(cairn_resp_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = false;
}

void cairn_resp_reset(cairn_resp_buf *b)
{
    b->len = 0;
    b->oom = false;
}

/* Room for `extra` more bytes; false (and oom set) if not. */
static bool reserve(cairn_resp_buf *b, size_t extra)
{
    if (b->oom)
        return false;
    if (extra > BUF_MAX || b->len > BUF_MAX - extra) {
        b->oom = true;
        return false;
    }
    size_t need = b->len + extra;
    if (need <= b->cap)
        return true;
    size_t nc = b->cap ? b->cap : 256;
    while (nc < need)
        nc *= 2; /* need <= BUF_MAX, so this cannot overflow */
    uint8_t *np = realloc(b->p, nc);
    if (!np) {
        b->oom = true;
        return false;
    }
    b->p = np;
    b->cap = nc;
    return true;
}

static void put(cairn_resp_buf *b, const void *p, size_t n)
{
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* "<type><decimal>\r\n" into out (>= 24 bytes); returns its length. */
static size_t fmt_hdr(char *out, char type, bool neg, uint64_t mag)
{
    char digits[20];
    size_t nd = 0;
    do {
        digits[nd++] = (char)('0' + mag % 10);
        mag /= 10;
    } while (mag);
    size_t o = 0;
    out[o++] = type;
    if (neg)
        out[o++] = '-';
    while (nd)
        out[o++] = digits[--nd];
    out[o++] = '\r';
    out[o++] = '\n';
    return o;
}

static void put_hdr(cairn_resp_buf *b, char type, bool neg, uint64_t mag)
{
    char h[32];
    size_t n = fmt_hdr(h, type, neg, mag);
    if (reserve(b, n))
        put(b, h, n);
}

/* type + text with CR / LF turned into spaces + CRLF */
static void put_line(cairn_resp_buf *b, char type, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (!reserve(b, n <= BUF_MAX ? n + 3 : SIZE_MAX))
        return;
    b->p[b->len++] = (uint8_t)type;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        b->p[b->len++] = (uint8_t)(c == '\r' || c == '\n' ? ' ' : c);
    }
    b->p[b->len++] = '\r';
    b->p[b->len++] = '\n';
}

void cairn_resp_simple(cairn_resp_buf *b, const char *s)
{
    put_line(b, '+', s);
}

void cairn_resp_error(cairn_resp_buf *b, const char *msg)
{
    put_line(b, '-', msg);
}

void cairn_resp_errorf(cairn_resp_buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true; /* cannot produce the reply */
        return;
    }
    if ((size_t)n < sizeof(tmp)) {
        put_line(b, '-', tmp);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    put_line(b, '-', big);
    free(big);
}

void cairn_resp_integer(cairn_resp_buf *b, int64_t v)
{
    uint64_t mag = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    put_hdr(b, ':', v < 0, mag);
}

/* "<type>n\r\n<prefix><bytes>\r\n" */
static void put_blob(cairn_resp_buf *b, char type, const char *prefix,
                     size_t plen, const void *p, size_t n)
{
    if (n > BUF_MAX) {
        b->oom = true;
        return;
    }
    char h[32];
    size_t hl = fmt_hdr(h, type, false, (uint64_t)(n + plen));
    if (!reserve(b, hl + plen + n + 2))
        return;
    put(b, h, hl);
    put(b, prefix, plen);
    put(b, p, n);
    put(b, "\r\n", 2);
}

void cairn_resp_bulk(cairn_resp_buf *b, const void *p, size_t n)
{
    put_blob(b, '$', "", 0, p, n);
}

void cairn_resp_bulk_cstr(cairn_resp_buf *b, const char *s)
{
    if (!s)
        cairn_resp_null(b);
    else
        put_blob(b, '$', "", 0, s, strlen(s));
}

void cairn_resp_null(cairn_resp_buf *b)
{
    if (b->proto == 3)
        cairn_resp_raw(b, "_\r\n", 3);
    else
        cairn_resp_raw(b, "$-1\r\n", 5);
}

void cairn_resp_null_array(cairn_resp_buf *b)
{
    if (b->proto == 3)
        cairn_resp_raw(b, "_\r\n", 3);
    else
        cairn_resp_raw(b, "*-1\r\n", 5);
}

void cairn_resp_array(cairn_resp_buf *b, size_t n)
{
    put_hdr(b, '*', false, n);
}

void cairn_resp_map(cairn_resp_buf *b, size_t n)
{
    if (b->proto == 3) {
        put_hdr(b, '%', false, n);
    } else if (n > SIZE_MAX / 2) {
        b->oom = true;
    } else {
        put_hdr(b, '*', false, (uint64_t)n * 2);
    }
}

void cairn_resp_set(cairn_resp_buf *b, size_t n)
{
    put_hdr(b, b->proto == 3 ? '~' : '*', false, n);
}

void cairn_resp_push(cairn_resp_buf *b, size_t n)
{
    put_hdr(b, b->proto == 3 ? '>' : '*', false, n);
}

/* What printf's %.<p>g prints for the significant digits r[0..p) and
 * decimal exponent x (value = r[0].r[1..] * 10^x), sign neg: trailing
 * zeros dropped; scientific ("1.5e+20", "1e-07") when x < -4 or x >= p,
 * else fixed. out holds CAIRN_RESP_DBL_CHARS bytes. */
static size_t dbl_g(bool neg, const char *r, int p, int x, char *out)
{
    int k = p;
    while (k > 1 && r[k - 1] == '0')
        k--;
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    if (x < -4 || x >= p) {
        out[o++] = r[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, r + 1, (size_t)(k - 1));
            o += (size_t)(k - 1);
        }
        int ax = x < 0 ? -x : x;
        out[o++] = 'e';
        out[o++] = x < 0 ? '-' : '+';
        if (ax >= 100)
            out[o++] = (char)('0' + ax / 100);
        out[o++] = (char)('0' + ax / 10 % 10);
        out[o++] = (char)('0' + ax % 10);
    } else if (x >= 0) {
        for (int i = 0; i <= x; i++)
            out[o++] = i < k ? r[i] : '0';
        if (k > x + 1) {
            out[o++] = '.';
            memcpy(out + o, r + x + 1, (size_t)(k - x - 1));
            o += (size_t)(k - x - 1);
        }
    } else {
        out[o++] = '0';
        out[o++] = '.';
        for (int i = 0; i < -x - 1; i++)
            out[o++] = '0';
        memcpy(out + o, r, (size_t)k);
        o += (size_t)k;
    }
    out[o] = '\0';
    return o;
}

size_t cairn_resp_format_double(double d, char *out)
{
    if (isnan(d)) {
        memcpy(out, "nan", 4);
        return 3;
    }
    if (isinf(d)) {
        if (d > 0) {
            memcpy(out, "inf", 4);
            return 3;
        }
        memcpy(out, "-inf", 5);
        return 4;
    }
    if (d == 0) {
        if (signbit(d)) {
            memcpy(out, "-0", 3);
            return 2;
        }
        memcpy(out, "0", 2);
        return 1;
    }
    /* Integral values that a long long holds exactly print as integers. */
    if (d > -4503599627370496.0 && d < 4503599627370496.0 &&
        d == (double)(long long)d)
        return (size_t)snprintf(out, CAIRN_RESP_DBL_CHARS, "%lld",
                                (long long)d);
    /* The 17 significant digits once (%.16e), then 15 and 16 digits by
     * rounding that digit string, each checked by reading it back: one
     * formatting call instead of three. */
    char e[40];
    int en = snprintf(e, sizeof e, "%.16e", fabs(d));
    if (en < 21 || e[1] != '.' || e[18] != 'e') {
        int n = snprintf(out, CAIRN_RESP_DBL_CHARS, "%.17g", d);
        return (size_t)n;
    }
    char dig[17];
    dig[0] = e[0];
    memcpy(dig + 1, e + 2, 16);
    int x = atoi(e + 19);
    for (int p = 15; p <= 17; p++) {
        /* A 17-digit tail of exactly 5, 50: the value may lie just below
         * the midpoint, where rounding the rounded digits would go up
         * wrongly; let printf round from the value itself. */
        if (p < 17 && dig[p] == '5' && (p == 16 || dig[16] == '0')) {
            int n = snprintf(out, CAIRN_RESP_DBL_CHARS, "%.*g", p, d);
            if (strtod(out, NULL) == d)
                return (size_t)n;
            continue;
        }
        char r[17];
        int rx = x;
        memcpy(r, dig, (size_t)p);
        if (p < 17 && dig[p] >= '5') {
            int i = p - 1;
            while (i >= 0 && r[i] == '9')
                r[i--] = '0';
            if (i >= 0) {
                r[i]++;
            } else { /* 99..9 -> 100..0 */
                r[0] = '1';
                rx++;
            }
        }
        size_t n = dbl_g(d < 0, r, p, rx, out);
        if (p == 17 || strtod(out, NULL) == d)
            return n;
    }
    return 0; /* not reached */
}

void cairn_resp_dbl(cairn_resp_buf *b, double d)
{
    char s[CAIRN_RESP_DBL_CHARS];
    size_t n = cairn_resp_format_double(d, s);
    if (b->proto == 3) {
        if (!reserve(b, n + 3))
            return;
        put(b, ",", 1);
        put(b, s, n);
        put(b, "\r\n", 2);
    } else {
        cairn_resp_bulk(b, s, n);
    }
}

void cairn_resp_boolean(cairn_resp_buf *b, bool v)
{
    if (b->proto == 3)
        cairn_resp_raw(b, v ? "#t\r\n" : "#f\r\n", 4);
    else
        cairn_resp_raw(b, v ? ":1\r\n" : ":0\r\n", 4);
}

void cairn_resp_verbatim(cairn_resp_buf *b, const char *fmt, const void *p,
                         size_t n)
{
    if (b->proto != 3) {
        cairn_resp_bulk(b, p, n);
        return;
    }
    char prefix[4] = {'t', 'x', 't', ':'};
    if (fmt && strlen(fmt) == 3)
        memcpy(prefix, fmt, 3);
    put_blob(b, '=', prefix, 4, p, n);
}

void cairn_resp_raw(cairn_resp_buf *b, const void *p, size_t n)
{
    if (reserve(b, n))
        put(b, p, n);
}

/* One header line at p[0..n): its type byte, and the signed number after
 * it for the types that carry one. Returns the line's length with CRLF,
 * or 0 (no CRLF within n, or a bad number). */
static size_t value_header(const uint8_t *p, size_t n, long long *num)
{
    const uint8_t *cr = n > 1 ? memchr(p, '\r', n - 1) : NULL;
    if (!cr || cr[1] != '\n')
        return 0;
    size_t line = (size_t)(cr - p) + 2;
    *num = 0;
    switch (p[0]) {
    case '$': case '=': case '!': case '*': case '~': case '>': case '%':
    case '|': {
        size_t i = 1;
        bool neg = i < line - 2 && p[i] == '-';
        i += neg;
        if (i >= line - 2)
            return 0;
        long long v = 0;
        for (; i < line - 2; i++) {
            if (p[i] < '0' || p[i] > '9' || v > (LLONG_MAX - 9) / 10)
                return 0;
            v = v * 10 + (p[i] - '0');
        }
        *num = neg ? -v : v;
        if (neg && v != 1)
            return 0;
        return line;
    }
    case '+': case '-': case ':': case ',': case '#': case '_': case '(':
        return line;
    default:
        return 0;
    }
}

size_t cairn_resp_value_len(const uint8_t *p, size_t n)
{
    size_t off = 0;
    uint64_t need = 1; /* values still to step over */
    while (need > 0) {
        long long num;
        size_t h = value_header(p + off, n - off, &num);
        if (h == 0)
            return 0;
        uint8_t t = p[off];
        off += h;
        need--;
        if ((t == '$' || t == '=' || t == '!') && num >= 0) {
            if ((unsigned long long)num > n - off || n - off - (size_t)num < 2 ||
                p[off + (size_t)num] != '\r' || p[off + (size_t)num + 1] != '\n')
                return 0;
            off += (size_t)num + 2;
        } else if (num > 0 && (uint64_t)num > n - off) {
            return 0; /* more elements than bytes left */
        } else if ((t == '*' || t == '~' || t == '>') && num > 0) {
            need += (uint64_t)num;
        } else if ((t == '%' || t == '|') && num > 0) {
            need += 2 * (uint64_t)num;
        }
        /* An attribute ('|') comes before the value it describes. */
        if (t == '|')
            need++;
        if (need > n - off) /* each value takes 3 bytes at least */
            return 0;
    }
    return off;
}

int cairn_resp_sub_find(cairn_resp_buf *b, const char *cmd,
                        const cairn_resp_sub *subs, size_t nsubs, size_t argc,
                        const uint8_t *const *argv, const size_t *argl)
{
    const uint8_t *sub = argv[1];
    size_t sl = argl[1];
    for (size_t k = 0; k < nsubs; k++) {
        const char *n = subs[k].name;
        if (strlen(n) != sl || strncasecmp((const char *)sub, n, sl) != 0)
            continue;
        int ar = subs[k].arity;
        if ((ar > 0 && argc != (size_t)ar) ||
            (ar < 0 && argc < (size_t)-ar)) {
            char lower[32];
            size_t cl = strlen(cmd) < sizeof lower - 1 ? strlen(cmd)
                                                       : sizeof lower - 1;
            for (size_t i = 0; i < cl; i++)
                lower[i] = (char)tolower((unsigned char)cmd[i]);
            lower[cl] = '\0';
            cairn_resp_errorf(b,
                              "ERR wrong number of arguments for '%s|%s' "
                              "command",
                              lower, n);
            return -1;
        }
        return (int)k;
    }
    cairn_resp_errorf(b, "ERR unknown subcommand '%.*s'. Try %s HELP.",
                      (int)(sl > 128 ? 128 : sl), (const char *)sub, cmd);
    return -1;
}
