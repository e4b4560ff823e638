/*
 * metrics.h — cairn-server's Prometheus endpoint: a minimal HTTP/1.x
 * responder on its own port (--metrics-port), on the server's libuv loop.
 *
 * GET /metrics (or /) answers 200 with the text exposition format
 * (text/plain; version=0.0.4) that the render callback writes; any other
 * path is 404, any other method 405, a request head over 8 KiB or not
 * complete within 5 s closes the connection. One response per connection
 * (Connection: close). Invariants: at most 64 scrapers at once (more are
 * closed at accept); nothing here touches the database.
 * Locking: none; loop thread only.
 */
#ifndef CAIRN_SERVER_METRICS_H
#define CAIRN_SERVER_METRICS_H

#include <stdio.h>
#include <uv.h>

/* Writes the metrics text to f. */
typedef void (*srv_metrics_render_fn)(void *arg, FILE *f);

typedef struct srv_metrics srv_metrics;

/* Listen on bind:port. NULL with a message in err on failure. */
srv_metrics *srv_metrics_start(uv_loop_t *loop, const char *bind, int port,
                               srv_metrics_render_fn render, void *arg,
                               char *err, size_t errlen);
/* Stop listening and close every scraper's connection; the memory goes
 * once the loop has run their close callbacks. */
void srv_metrics_stop(srv_metrics *m);
/* Scrapes answered so far. */
unsigned long long srv_metrics_served(const srv_metrics *m);

#endif /* CAIRN_SERVER_METRICS_H */
