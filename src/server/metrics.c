/*
 * metrics.c — the Prometheus endpoint of cairn-server (see metrics.h).
 *
 * Invariants: the srv_metrics struct lives while its listener or any
 * scraper connection is open (refs: 1 for the listener, 1 per connection);
 * a connection answers at most once, then closes after its write; a
 * connection never holds more than MAX_HEAD bytes of request.
 * Locking: none; everything runs on the loop thread.
 */
#include "server/metrics.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_HEAD 8192
#define MAX_SCRAPERS 64
#define HEAD_TIMEOUT_MS 5000

struct srv_metrics {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool stopped;
    int refs;
    int nconns;
    struct mconn *conns;
    srv_metrics_render_fn render;
    void *arg;
    unsigned long long served;
};

typedef struct mconn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    srv_metrics *m;
    struct mconn *prev, *next;
    char head[MAX_HEAD];
    size_t len;
    char *resp;
    bool answered, closing;
    int handles; /* open handles: tcp + timer */
} mconn;

static void metrics_unref(srv_metrics *m)
{
    if (--m->refs == 0)
        free(m);
}

static void conn_handle_closed(uv_handle_t *h)
{
    mconn *c = h->data;
    if (--c->handles > 0)
        return;
    srv_metrics *m = c->m;
    free(c->resp);
    free(c);
    metrics_unref(m);
}

static void conn_close(mconn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    srv_metrics *m = c->m;
    if (c->prev)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    m->nconns--;
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

static void respond(mconn *c, int code, const char *reason, const char *ctype,
                    const char *body, size_t blen)
{
    char hdr[256];
    int hl = snprintf(hdr, sizeof hdr,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      code, reason, ctype, blen);
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->resp = malloc((size_t)hl + blen);
    if (!c->resp) {
        conn_close(c);
        return;
    }
    memcpy(c->resp, hdr, (size_t)hl);
    if (blen)
        memcpy(c->resp + hl, body, blen);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)((size_t)hl + blen));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

static void handle_request(mconn *c)
{
    /* Request line: METHOD SP PATH SP VERSION */
    char *sp1 = memchr(c->head, ' ', c->len);
    if (!sp1) {
        respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12);
        return;
    }
    size_t mlen = (size_t)(sp1 - c->head);
    char *path = sp1 + 1;
    char *sp2 = memchr(path, ' ', c->len - (size_t)(path - c->head));
    char *eol = memchr(path, '\r', c->len - (size_t)(path - c->head));
    if (!sp2 || (eol && eol < sp2)) {
        respond(c, 400, "Bad Request", "text/plain", "bad request\n", 12);
        return;
    }
    size_t plen = (size_t)(sp2 - path);
    bool get = mlen == 3 && memcmp(c->head, "GET", 3) == 0;
    bool headm = mlen == 4 && memcmp(c->head, "HEAD", 4) == 0;
    if (!get && !headm) {
        respond(c, 405, "Method Not Allowed", "text/plain",
                "only GET is supported\n", 22);
        return;
    }
    /* The path, without a query string. */
    char *q = memchr(path, '?', plen);
    if (q)
        plen = (size_t)(q - path);
    if (!((plen == 8 && memcmp(path, "/metrics", 8) == 0) ||
          (plen == 1 && path[0] == '/'))) {
        respond(c, 404, "Not Found", "text/plain", "try /metrics\n", 13);
        return;
    }
    char *body = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&body, &blen);
    if (!f) {
        respond(c, 500, "Internal Server Error", "text/plain",
                "out of memory\n", 14);
        return;
    }
    c->m->render(c->m->arg, f);
    if (fclose(f) != 0) {
        free(body);
        respond(c, 500, "Internal Server Error", "text/plain",
                "out of memory\n", 14);
        return;
    }
    c->m->served++;
    respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
            headm ? "" : body, headm ? 0 : blen);
    free(body);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    mconn *c = h->data;
    *buf = uv_buf_init(c->head + c->len, (unsigned)(MAX_HEAD - c->len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    mconn *c = st->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->answered)
        return;
    size_t from = c->len > 3 ? c->len - 3 : 0;
    c->len += (size_t)nread;
    for (size_t i = from; i + 4 <= c->len; i++) {
        if (memcmp(c->head + i, "\r\n\r\n", 4) == 0) {
            handle_request(c);
            return;
        }
    }
    /* A bare "\n\n" ends a head too (lenient, like most servers). */
    for (size_t i = from; i + 2 <= c->len; i++) {
        if (memcmp(c->head + i, "\n\n", 2) == 0) {
            handle_request(c);
            return;
        }
    }
    if (c->len == MAX_HEAD)
        respond(c, 431, "Request Header Fields Too Large", "text/plain",
                "request head too large\n", 23);
}

static void on_timeout(uv_timer_t *t)
{
    mconn *c = t->data;
    if (!c->answered)
        conn_close(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    srv_metrics *m = l->data;
    if (status < 0 || m->stopped)
        return;
    mconn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->m = m;
    m->refs++;
    uv_tcp_init(m->loop, &c->tcp);
    uv_timer_init(m->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles = 2;
    c->next = m->conns;
    if (m->conns)
        m->conns->prev = c;
    m->conns = c;
    m->nconns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 ||
        m->nconns > MAX_SCRAPERS) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, HEAD_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_listener_closed(uv_handle_t *h)
{
    metrics_unref(h->data);
}

srv_metrics *srv_metrics_start(uv_loop_t *loop, const char *bind, int port,
                               srv_metrics_render_fn render, void *arg,
                               char *err, size_t errlen)
{
    srv_metrics *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->loop = loop;
    m->render = render;
    m->arg = arg;
    m->refs = 1;
    struct sockaddr_storage ss;
    int rc = strchr(bind, ':')
                 ? uv_ip6_addr(bind, port, (struct sockaddr_in6 *)&ss)
                 : uv_ip4_addr(bind, port, (struct sockaddr_in *)&ss);
    if (rc == 0)
        rc = uv_tcp_init(loop, &m->listener);
    else {
        snprintf(err, errlen, "bad metrics address %s: %s", bind,
                 uv_strerror(rc));
        free(m);
        return NULL;
    }
    m->listener.data = m;
    if (rc == 0)
        rc = uv_tcp_bind(&m->listener, (struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->listener, 128, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d for metrics: %s", bind,
                 port, uv_strerror(rc));
        m->stopped = true;
        uv_close((uv_handle_t *)&m->listener, on_listener_closed);
        return NULL;
    }
    return m;
}

void srv_metrics_stop(srv_metrics *m)
{
    if (!m || m->stopped)
        return;
    m->stopped = true;
    while (m->conns)
        conn_close(m->conns);
    uv_close((uv_handle_t *)&m->listener, on_listener_closed);
}

unsigned long long srv_metrics_served(const srv_metrics *m)
{
    return m ? m->served : 0;
}
