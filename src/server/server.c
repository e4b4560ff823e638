/*
 * server.c — cairn-server's event loop: sockets, clients, request parsing,
 * dispatch to the loop or to the committer threads, replies in order,
 * limits, MULTI/WATCH state, the expiry sweep timer, INFO, shutdown.
 *
 * Invariants:
 *   - Only the loop thread touches clients and their buffers. A committer
 *     gets a job holding copies of its arguments and its own reply buffer;
 *     it hands the job back through done_q + done_async.
 *   - A client runs one command at a time: while `busy` (a job of its is on
 *     a committer) nothing more of its input is parsed, so replies go out in
 *     request order and a client always reads its own writes. A write's
 *     reply is sent only once its commit returned, i.e. is durable under the
 *     configured sync mode.
 *   - A client is freed when its handle is closed and no job refers to it
 *     (refs: 1 for the open handle, 1 per job in flight).
 *   - Shutdown: stop accepting, let the jobs in flight finish, close the
 *     clients, stop the committers; the caller then closes the database
 *     (which flushes).
 * Locking: q_mu/q_cv guard the job queue (loop -> committers); d_mu guards
 * done_q (committers -> loop); key_locks: a committer running a write of
 * its own holds the stripe of its first key through the commit (one stripe
 * at a time, so no lock order to keep). Nothing else is shared.
 */
#include "server/server.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "server/keyspace.h"

/* ---------- logging ---------- */

static void srv_log(const char *level, const char *fmt, ...)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr,
            "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s pid=%d msg=\"%s\"\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
            tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level, (int)getpid(),
            msg);
}

/* ---------- queued commands and jobs ---------- */


/* Copy a parsed command (its argv points into the input buffer). */
static int cmd_queued_copy(cmd_queued *q, const cmd_def *d, size_t argc,
                     const uint8_t *const *argv, const size_t *argl)
{
    size_t total = 0;
    for (size_t i = 0; i < argc; i++)
        total += argl[i];
    q->def = d;
    q->argc = argc;
    q->argv = malloc(argc * sizeof *q->argv + 1);
    q->argl = malloc(argc * sizeof *q->argl + 1);
    q->buf = malloc(total + 1);
    if (!q->argv || !q->argl || !q->buf) {
        free(q->argv);
        free(q->argl);
        free(q->buf);
        memset(q, 0, sizeof *q);
        return CAIRN_ENOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < argc; i++) {
        if (argl[i])
            memcpy(q->buf + off, argv[i], argl[i]);
        q->argv[i] = q->buf + off;
        q->argl[i] = argl[i];
        off += argl[i];
    }
    return 0;
}

static void cmd_queued_free(cmd_queued *q)
{
    free(q->argv);
    free(q->argl);
    free(q->buf);
    memset(q, 0, sizeof *q);
}

/* JOB_BATCH: the write commands of one client that are already in its
 * input (one, or a pipeline), run in one transaction and committed once:
 * replies as if run one by one, one commit (and one log sync) for all. A
 * batch of one runs the command on its own (its own transaction, or a
 * blind write). */
typedef enum { JOB_EXEC, JOB_SWEEP, JOB_BATCH } job_kind;

#define BATCH_MAX_CMDS 256
#define KEY_STRIPES 512
#define BATCH_MAX_BYTES ((size_t)4 << 20)

typedef struct job {
    struct job *next;
    job_kind kind;
    client *c;          /* NULL for the sweep */
    cmd_queued *cmds;
    size_t ncmds;
    uint8_t **wkeys;    /* EXEC: the watched keys */
    size_t *wlens;
    size_t nwatch;
    uint64_t watch_version;
    cairn_resp_buf out;
    uint64_t version;
    uint64_t now_ms;
    bool async;     /* committed from the loop (cairn_txn_commit_async) */
    int async_rc;   /* its outcome, set by the engine thread */
} job;

static void job_free(job *j)
{
    for (size_t i = 0; i < j->ncmds; i++)
        cmd_queued_free(&j->cmds[i]);
    free(j->cmds);
    for (size_t i = 0; i < j->nwatch; i++)
        free(j->wkeys[i]);
    free(j->wkeys);
    free(j->wlens);
    cairn_resp_free(&j->out);
    free(j);
}

/* ---------- server and clients ---------- */

struct client {
    uv_tcp_t tcp;
    server *s;
    uint64_t id;
    client *prev, *next;
    uint8_t *in;
    size_t inlen, incap;
    cairn_resp_parser *parser;
    cairn_resp_buf out;
    int proto;
    bool authed, busy, close_after, closed;
    int refs;
    size_t out_pending;
    char name[128];
    char addr[64];
    uint64_t created_ms, last_ms, ncmds, last_version;
    const char *last_cmd;
    /* MULTI */
    bool in_multi, multi_err;
    cmd_queued *mq;
    size_t nmq, capmq;
    /* a batch of pipelined writes being gathered (not yet submitted) */
    struct job *batch;
    size_t batch_bytes;
    /* WATCH */
    uint8_t **wk;
    size_t *wl;
    size_t nw, capw;
    uint64_t watch_version;
};

struct server {
    srv_config cfg;
    uv_loop_t loop;
    uv_tcp_t listener;
    bool listening;
    uv_async_t done_async;
    uv_signal_t sigterm, sigint;
    uv_timer_t timer;
    cairn_db *db;
    cairn_resp_limits limits;
    /* committers */
    pthread_t *workers;
    int nworkers;
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;
    job *q_head, *q_tail;
    bool q_stop;
    pthread_mutex_t d_mu;
    job *d_head, *d_tail;
    /* clients */
    client *clients;
    size_t nclients;
    uint64_t next_id;
    size_t jobs_inflight;
    bool sweep_inflight;
    bool shutting_down, closing_all;
    uint64_t start_ms, tick;
    uint64_t now_ms; /* wall clock (ms) at the start of this input pass */
    /* Single-key writes on a committer hold the stripe of their key
     * through their commit: read-modify-writes of one hot key queue up
     * instead of conflicting and retrying. */
    pthread_mutex_t key_locks[KEY_STRIPES];
    /* stats */
    uint64_t st_conns, st_rejected, st_cmds, st_proto_errors, st_dropped;
};

static void client_process(client *c);
static void client_close(client *c);

static pthread_mutex_t *key_stripe(server *s, const uint8_t *key, size_t len)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: only spreads stripes */
    for (size_t i = 0; i < len; i++)
        h = (h ^ key[i]) * 1099511628211ULL;
    return &s->key_locks[h % KEY_STRIPES];
}

void srv_lock_key(server *s, const uint8_t *key, size_t len)
{
    pthread_mutex_lock(key_stripe(s, key, len));
}

void srv_unlock_key(server *s, const uint8_t *key, size_t len)
{
    pthread_mutex_unlock(key_stripe(s, key, len));
}

uint64_t srv_client_id(const client *c)
{
    return c->id;
}
int srv_client_proto(const client *c)
{
    return c->proto;
}
void srv_client_set_proto(client *c, int proto)
{
    c->proto = proto;
    c->out.proto = proto;
}
bool srv_client_authed(const client *c)
{
    return c->authed;
}
void srv_client_set_authed(client *c, bool a)
{
    c->authed = a;
}
void srv_client_close_after_reply(client *c)
{
    c->close_after = true;
}
const char *srv_client_name(const client *c)
{
    return c->name;
}
void srv_client_set_name(client *c, const uint8_t *n, size_t len)
{
    if (len >= sizeof c->name)
        len = sizeof c->name - 1;
    if (len)
        memcpy(c->name, n, len);
    c->name[len] = '\0';
}
uint64_t srv_client_last_version(const client *c)
{
    return c->last_version;
}
const srv_config *srv_get_config(const server *s)
{
    return &s->cfg;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void client_line(const client *c, cairn_resp_buf *tmp, uint64_t now)
{
    char line[512];
    int n = snprintf(line, sizeof line,
                     "id=%" PRIu64 " addr=%s laddr=%s:%d fd=-1 name=%s "
                     "age=%" PRIu64 " idle=%" PRIu64 " flags=%s db=0 "
                     "sub=0 psub=0 ssub=0 multi=%ld watch=%zu qbuf=%zu "
                     "obl=%zu oll=0 omem=%zu tot-mem=%zu events=r cmd=%s "
                     "user=default resp=%d lib-name= lib-ver= "
                     "last-version=%" PRIu64 "\n",
                     c->id, c->addr, c->s->cfg.bind, c->s->cfg.port, c->name,
                     (now - c->created_ms) / 1000, (now - c->last_ms) / 1000,
                     c->in_multi ? "x" : "N",
                     c->in_multi ? (long)c->nmq : -1L, c->nw, c->inlen,
                     c->out.len, c->out_pending, c->incap + c->out.cap,
                     c->last_cmd ? c->last_cmd : "NULL", c->proto,
                     c->last_version);
    cairn_resp_raw(tmp, line, (size_t)(n > 0 && (size_t)n < sizeof line
                                           ? n
                                           : 0));
}

void srv_client_info(const client *c, cairn_resp_buf *out)
{
    cairn_resp_buf tmp;
    cairn_resp_init(&tmp, 2);
    client_line(c, &tmp, mono_ms());
    cairn_resp_verbatim(out, "txt", tmp.p, tmp.len);
    cairn_resp_free(&tmp);
}

void srv_client_list(server *s, cairn_resp_buf *out)
{
    cairn_resp_buf tmp;
    cairn_resp_init(&tmp, 2);
    uint64_t now = mono_ms();
    for (client *c = s->clients; c; c = c->next)
        client_line(c, &tmp, now);
    cairn_resp_verbatim(out, "txt", tmp.p, tmp.len);
    cairn_resp_free(&tmp);
}

int srv_client_kill_id(server *s, uint64_t id)
{
    for (client *c = s->clients; c; c = c->next)
        if (c->id == id) {
            if (c->busy)
                c->close_after = true; /* after its reply */
            else
                client_close(c);
            return 1;
        }
    return 0;
}

void srv_request_shutdown(server *s)
{
    if (!s->shutting_down)
        srv_log("info", "shutdown requested: finishing in-flight commits");
    s->shutting_down = true;
}

/* ---------- MULTI / WATCH ---------- */

bool srv_client_in_multi(const client *c)
{
    return c->in_multi;
}

void srv_client_multi(client *c)
{
    c->in_multi = true;
    c->multi_err = false;
}

void srv_client_discard(client *c)
{
    for (size_t i = 0; i < c->nmq; i++)
        cmd_queued_free(&c->mq[i]);
    free(c->mq);
    c->mq = NULL;
    c->nmq = c->capmq = 0;
    c->in_multi = false;
    c->multi_err = false;
}

int srv_client_watch(client *c, const uint8_t *key, size_t klen,
                     uint64_t version)
{
    for (size_t i = 0; i < c->nw; i++)
        if (c->wl[i] == klen && memcmp(c->wk[i], key, klen) == 0)
            return 0;
    if (c->nw == c->capw) {
        size_t n = c->capw ? c->capw * 2 : 4;
        uint8_t **k = realloc(c->wk, n * sizeof *k);
        if (!k)
            return CAIRN_ENOMEM;
        c->wk = k;
        size_t *l = realloc(c->wl, n * sizeof *l);
        if (!l)
            return CAIRN_ENOMEM;
        c->wl = l;
        c->capw = n;
    }
    uint8_t *copy = malloc(klen ? klen : 1);
    if (!copy)
        return CAIRN_ENOMEM;
    if (klen)
        memcpy(copy, key, klen);
    if (c->nw == 0)
        c->watch_version = version;
    c->wk[c->nw] = copy;
    c->wl[c->nw++] = klen;
    return 0;
}

void srv_client_unwatch(client *c)
{
    for (size_t i = 0; i < c->nw; i++)
        free(c->wk[i]);
    c->nw = 0;
}

/* ---------- committers ---------- */

/* A job is done: hand it back to the loop (any thread). */
static void job_done(server *s, job *j)
{
    pthread_mutex_lock(&s->d_mu);
    j->next = NULL;
    if (s->d_tail)
        s->d_tail->next = j;
    else
        s->d_head = j;
    s->d_tail = j;
    pthread_mutex_unlock(&s->d_mu);
    uv_async_send(&s->done_async);
}

/* Queue a job for the committers (jobs_inflight counted by the caller). */
static void submit(server *s, job *j)
{
    pthread_mutex_lock(&s->q_mu);
    j->next = NULL;
    if (s->q_tail)
        s->q_tail->next = j;
    else
        s->q_head = j;
    s->q_tail = j;
    pthread_cond_signal(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
}

static void run_job(server *s, job *j)
{
    cmd_ctx x = {.srv = s, .db = s->db, .c = j->c, .proto = j->out.proto,
                 .out = &j->out, .now_ms = j->now_ms};
    if (j->kind == JOB_SWEEP) {
        cmd_sweep_expired(s->db, j->now_ms, 1000);
    } else if (j->kind == JOB_EXEC) {
        cmd_exec_queued(&x, j->cmds, j->ncmds, j->nwatch,
                        (const uint8_t **)j->wkeys, j->wlens,
                        j->watch_version);
    } else if (j->kind == JOB_BATCH && j->ncmds > 1) {
        cmd_run_batch(&x, j->cmds, j->ncmds);
    } else {
        cmd_queued *q = &j->cmds[0];
        x.argc = q->argc;
        x.argv = q->argv;
        x.argl = q->argl;
        q->def->fn(&x);
    }
    j->version = x.version;
}

static void *worker_main(void *arg)
{
    server *s = arg;
    pthread_setname_np(pthread_self(), "cairn-commit");
    pthread_mutex_lock(&s->q_mu);
    for (;;) {
        while (!s->q_head && !s->q_stop)
            pthread_cond_wait(&s->q_cv, &s->q_mu);
        if (!s->q_head)
            break;
        job *j = s->q_head;
        s->q_head = j->next;
        if (!s->q_head)
            s->q_tail = NULL;
        pthread_mutex_unlock(&s->q_mu);
        run_job(s, j);
        job_done(s, j);
        pthread_mutex_lock(&s->q_mu);
    }
    pthread_mutex_unlock(&s->q_mu);
    return NULL;
}

/* ---------- output ---------- */

typedef struct wreq {
    uv_write_t req;
    client *c;
    uint8_t *data;
    size_t len;
} wreq;

static void on_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    client *c = w->c;
    c->out_pending -= w->len;
    free(w->data);
    free(w);
    if (status < 0 && !c->closed) {
        client_close(c);
        return;
    }
    if (c->close_after && !c->busy && c->out_pending == 0 && !c->closed)
        client_close(c);
}

static void client_flush(client *c)
{
    if (c->closed)
        return;
    if (c->out.oom) {
        srv_log("warning", "client %" PRIu64 " dropped: out of memory for "
                           "its reply", c->id);
        client_close(c);
        return;
    }
    if (c->out.len > 0) {
        wreq *w = malloc(sizeof *w);
        if (!w) {
            client_close(c);
            return;
        }
        w->c = c;
        w->data = c->out.p;
        w->len = c->out.len;
        c->out.p = NULL;
        c->out.len = c->out.cap = 0;
        c->out_pending += w->len;
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
        int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
        if (rc < 0) {
            c->out_pending -= w->len;
            free(w->data);
            free(w);
            client_close(c);
            return;
        }
        if (c->out_pending > c->s->cfg.max_output) {
            srv_log("warning",
                    "client %" PRIu64 " (%s) dropped: %zu bytes of replies "
                    "unread (client-output-buffer-limit %zu)",
                    c->id, c->addr, c->out_pending, c->s->cfg.max_output);
            c->s->st_dropped++;
            client_close(c);
            return;
        }
    }
    if (c->close_after && !c->busy && c->out_pending == 0)
        client_close(c);
}

/* ---------- clients ---------- */

static void client_free(client *c)
{
    if (c->batch)
        job_free(c->batch);
    cairn_resp_parser_free(c->parser);
    cairn_resp_free(&c->out);
    free(c->in);
    srv_client_discard(c);
    srv_client_unwatch(c);
    free(c->wk);
    free(c->wl);
    free(c);
}

static void client_unref(client *c)
{
    if (--c->refs == 0)
        client_free(c);
}

static void on_client_closed(uv_handle_t *h)
{
    client_unref(h->data);
}

static void client_close(client *c)
{
    if (c->closed)
        return;
    c->closed = true;
    server *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nclients--;
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void reply_arity(client *c, const uint8_t *name, size_t len)
{
    char lower[64];
    size_t n = len < sizeof lower - 1 ? len : sizeof lower - 1;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32
                                                            : name[i]);
    lower[n] = '\0';
    cairn_resp_errorf(&c->out,
                      "ERR wrong number of arguments for '%s' command", lower);
}

static void reply_unknown(client *c, const cairn_resp_cmd *cmd)
{
    char msg[600];
    int n = snprintf(msg, sizeof msg, "ERR unknown command '%.*s', with args "
                                      "beginning with: ",
                     (int)(cmd->argl[0] > 128 ? 128 : cmd->argl[0]),
                     (const char *)cmd->argv[0]);
    for (size_t i = 1; i < cmd->argc && n > 0 && (size_t)n < sizeof msg - 140;
         i++)
        n += snprintf(msg + n, sizeof msg - (size_t)n, "'%.*s' ",
                      (int)(cmd->argl[i] > 128 ? 128 : cmd->argl[i]),
                      (const char *)cmd->argv[i]);
    cairn_resp_error(&c->out, msg);
}

void srv_client_exec(client *c)
{
    if (c->multi_err) {
        srv_client_discard(c);
        srv_client_unwatch(c);
        cairn_resp_error(&c->out, "EXECABORT Transaction discarded because "
                                  "of previous errors.");
        return;
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        cmd_reply_engine_error(&c->out, CAIRN_ENOMEM);
        return;
    }
    j->kind = JOB_EXEC;
    j->c = c;
    j->cmds = c->mq;
    j->ncmds = c->nmq;
    c->mq = NULL;
    c->nmq = c->capmq = 0;
    c->in_multi = false;
    j->wkeys = c->wk;
    j->wlens = c->wl;
    j->nwatch = c->nw;
    j->watch_version = c->watch_version;
    c->wk = NULL;
    c->wl = NULL;
    c->nw = c->capw = 0;
    j->now_ms = c->s->now_ms;
    cairn_resp_init(&j->out, c->proto);
    c->busy = true;
    c->refs++;
    c->s->jobs_inflight++;
    submit(c->s, j);
}

/* Run one parsed command (its argv points into c->in). */
static void client_command(client *c, const cairn_resp_cmd *cmd)
{
    server *s = c->s;
    if (cmd->argc == 0)
        return;
    s->st_cmds++;
    c->ncmds++;
    const cmd_def *d = cmd_lookup(cmd->argv[0], cmd->argl[0]);
    if (s->cfg.requirepass && !c->authed && !(d && (d->flags & CMD_NOAUTH))) {
        cairn_resp_error(&c->out, "NOAUTH Authentication required.");
        if (c->in_multi)
            c->multi_err = true;
        return;
    }
    if (!d) {
        reply_unknown(c, cmd);
        if (c->in_multi)
            c->multi_err = true;
        return;
    }
    c->last_cmd = d->name;
    if ((d->arity > 0 && cmd->argc != (size_t)d->arity) ||
        (d->arity < 0 && cmd->argc < (size_t)-d->arity)) {
        reply_arity(c, cmd->argv[0], cmd->argl[0]);
        if (c->in_multi)
            c->multi_err = true;
        return;
    }
    if (c->in_multi && !(d->flags & CMD_NOMULTI)) {
        if (d->flags & CMD_LOOP) {
            cairn_resp_errorf(&c->out, "ERR Command '%s' is not allowed inside "
                                       "a transaction on cairn-server",
                              d->name);
            c->multi_err = true;
            return;
        }
        if (c->nmq == c->capmq) {
            size_t n = c->capmq ? c->capmq * 2 : 8;
            cmd_queued *q = realloc(c->mq, n * sizeof *q);
            if (!q) {
                cmd_reply_engine_error(&c->out, CAIRN_ENOMEM);
                c->multi_err = true;
                return;
            }
            c->mq = q;
            c->capmq = n;
        }
        if (cmd_queued_copy(&c->mq[c->nmq], d, cmd->argc, cmd->argv, cmd->argl)) {
            cmd_reply_engine_error(&c->out, CAIRN_ENOMEM);
            c->multi_err = true;
            return;
        }
        c->nmq++;
        cairn_resp_simple(&c->out, "QUEUED");
        return;
    }
    /* A write that gets here is queued above: client_process hands every
     * other one to a batch (batchable). */
    cmd_ctx x = {.srv = s, .db = s->db, .c = c, .proto = c->proto,
                 .argc = cmd->argc, .argv = cmd->argv, .argl = cmd->argl,
                 .out = &c->out, .now_ms = s->now_ms};
    d->fn(&x);
}

/* Can cmd join a batch of pipelined writes? Plain write commands only,
 * outside MULTI, from an authenticated client, with a valid arity (anything
 * else runs on its own, with its errors, once the batch is back). */
static const cmd_def *batchable(const client *c, const cairn_resp_cmd *cmd)
{
    if (c->in_multi || cmd->argc == 0 ||
        (c->s->cfg.requirepass && !c->authed))
        return NULL;
    const cmd_def *d = cmd_lookup(cmd->argv[0], cmd->argl[0]);
    if (!d || !(d->flags & CMD_WRITE) ||
        (d->arity > 0 && cmd->argc != (size_t)d->arity) ||
        (d->arity < 0 && cmd->argc < (size_t)-d->arity))
        return NULL;
    return d;
}

/* The engine's word on an asynchronous commit (an engine thread). */
static void async_committed(void *arg, int status, uint64_t version)
{
    job *j = arg;
    j->async_rc = status;
    j->version = version;
    job_done(j->c->s, j);
}

/* Run a batch of writes on the loop and commit it without waiting: the
 * group commit's thread hands it back once durable, so the loop goes on
 * serving others meanwhile and many clients' writes share one fsync with
 * no thread hand-off per command. false: it must go to a committer (a
 * conflict, a stalled engine, a blocking command); nothing was replied. */
static bool batch_commit_async(server *s, job *j)
{
    cmd_ctx x = {.srv = s, .db = s->db, .c = j->c, .proto = j->out.proto,
                 .out = &j->out, .now_ms = j->now_ms};
    cairn_txn *t = NULL;
    int rc = cmd_batch_prepare(&x, j->cmds, j->ncmds, &t);
    if (rc != 0)
        return false;
    j->async = true;
    uint64_t v = 0;
    rc = cairn_txn_commit_async(t, async_committed, j, &v);
    if (rc == 0)
        return true;
    if (rc == 1) { /* nothing written: the replies stand */
        j->async_rc = 0;
        j->version = 0;
        job_done(s, j);
        return true;
    }
    j->async = false;
    j->out.len = 0;
    j->out.oom = false;
    return false;
}

static void batch_submit(client *c)
{
    job *j = c->batch;
    c->batch = NULL;
    c->batch_bytes = 0;
    j->now_ms = c->s->now_ms;
    cairn_resp_init(&j->out, c->proto);
    c->busy = true;
    c->refs++;
    c->s->jobs_inflight++;
    if (!batch_commit_async(c->s, j))
        submit(c->s, j);
}

/* Add a write command to the client's batch: 0, or CAIRN_ENOMEM. */
static int batch_add(client *c, const cmd_def *d, const cairn_resp_cmd *cmd)
{
    if (!c->batch) {
        c->batch = calloc(1, sizeof *c->batch);
        if (!c->batch)
            return CAIRN_ENOMEM;
        c->batch->kind = JOB_BATCH;
        c->batch->c = c;
        c->batch->cmds = calloc(BATCH_MAX_CMDS, sizeof(cmd_queued));
        if (!c->batch->cmds) {
            free(c->batch);
            c->batch = NULL;
            return CAIRN_ENOMEM;
        }
    }
    job *j = c->batch;
    if (cmd_queued_copy(&j->cmds[j->ncmds], d, cmd->argc, cmd->argv, cmd->argl))
        return CAIRN_ENOMEM;
    j->ncmds++;
    for (size_t i = 0; i < cmd->argc; i++)
        c->batch_bytes += cmd->argl[i];
    c->s->st_cmds++;
    c->ncmds++;
    c->last_cmd = d->name;
    return 0;
}

static void client_process(client *c)
{
    if (c->closed)
        return;
    c->s->now_ms = ks_now_ms(); /* one clock read per pass, not per command */
    size_t off = 0;
    while (!c->busy && !c->close_after && !c->closed && off < c->inlen) {
        cairn_resp_cmd cmd;
        size_t used = 0;
        char err[256];
        int rc = cairn_resp_parse(c->parser, c->in + off, c->inlen - off, &cmd,
                                  &used, err, sizeof err);
        if (rc == 0)
            break;
        if (rc == 1) {
            const cmd_def *d = batchable(c, &cmd);
            if (d) {
                if (batch_add(c, d, &cmd) != 0) {
                    srv_log("warning", "client %" PRIu64 " dropped: out of "
                                       "memory", c->id);
                    client_close(c);
                    return;
                }
                off += used;
                if (c->batch->ncmds == BATCH_MAX_CMDS ||
                    c->batch_bytes >= BATCH_MAX_BYTES)
                    batch_submit(c);
                continue;
            }
            if (c->batch) { /* runs after the batch: not consumed yet */
                batch_submit(c);
                break;
            }
        }
        if (rc < 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "ERR %s", err);
            cairn_resp_error(&c->out, msg);
            c->s->st_proto_errors++;
            srv_log("info", "client %" PRIu64 " (%s): %s; closing it", c->id,
                    c->addr, err);
            c->close_after = true;
            off = c->inlen;
            break;
        }
        client_command(c, &cmd);
        off += used;
    }
    if (c->batch && !c->closed)
        batch_submit(c);
    if (off > 0 && !c->closed) {
        memmove(c->in, c->in + off, c->inlen - off);
        c->inlen -= off;
    }
    client_flush(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client *c = h->data;
    size_t want = 16384;
    if (c->incap - c->inlen < want) {
        size_t n = c->incap ? c->incap : 16384;
        while (n - c->inlen < want)
            n *= 2;
        uint8_t *p = realloc(c->in, n);
        if (!p) {
            *buf = uv_buf_init(NULL, 0);
            return;
        }
        c->in = p;
        c->incap = n;
    }
    *buf = uv_buf_init((char *)c->in + c->inlen,
                       (unsigned)(c->incap - c->inlen > (1u << 30)
                                      ? (1u << 30)
                                      : c->incap - c->inlen));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    client *c = st->data;
    if (nread < 0) {
        /* EOF or error: a half-closed client gets no more replies. */
        client_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->inlen += (size_t)nread;
    c->last_ms = mono_ms();
    if (c->inlen > c->s->cfg.max_query_buf) {
        srv_log("warning",
                "client %" PRIu64 " (%s) dropped: query buffer over "
                "client-query-buffer-limit (%zu bytes)",
                c->id, c->addr, c->s->cfg.max_query_buf);
        c->s->st_dropped++;
        client_close(c);
        return;
    }
    client_process(c);
}

static void on_connection(uv_stream_t *l, int status)
{
    server *s = l->data;
    if (status < 0)
        return;
    client *c = calloc(1, sizeof *c);
    if (!c)
        return;
    if (uv_tcp_init(&s->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->s = s;
    c->refs = 1;
    c->proto = 2;
    cairn_resp_init(&c->out, 2);
    c->parser = cairn_resp_parser_new(&s->limits);
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || !c->parser) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->tcp, on_client_closed);
        return;
    }
    c->id = ++s->next_id;
    c->created_ms = c->last_ms = mono_ms();
    c->authed = s->cfg.requirepass == NULL;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        }
        snprintf(c->addr, sizeof c->addr, "%s:%d", ip, port);
    }
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    s->nclients++;
    s->st_conns++;
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->nclients > s->cfg.max_clients || s->shutting_down) {
        s->st_rejected++;
        cairn_resp_error(&c->out, "ERR max number of clients reached");
        c->close_after = true;
        client_flush(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---------- completions, timer, signals ---------- */

static void on_done(uv_async_t *a)
{
    server *s = a->data;
    pthread_mutex_lock(&s->d_mu);
    job *j = s->d_head;
    s->d_head = s->d_tail = NULL;
    pthread_mutex_unlock(&s->d_mu);
    while (j) {
        job *next = j->next;
        s->jobs_inflight--;
        client *c = j->c;
        if (j->kind == JOB_SWEEP) {
            s->sweep_inflight = false;
        } else if (c) {
            c->busy = false;
            if (j->async && j->async_rc != 0) {
                /* Durable-or-not failed: every command answers the error. */
                j->out.len = 0;
                j->out.oom = false;
                for (size_t i = 0; i < j->ncmds; i++)
                    cmd_reply_engine_error(&j->out, j->async_rc);
            }
            if (j->version)
                c->last_version = j->version;
            if (!c->closed && j->out.len)
                cairn_resp_raw(&c->out, j->out.p, j->out.len);
            if (!c->closed)
                client_process(c);
            client_unref(c);
        }
        job_free(j);
        j = next;
    }
}

static void close_handles(server *s)
{
    if (s->closing_all)
        return;
    s->closing_all = true;
    while (s->clients)
        client_close(s->clients);
    uv_close((uv_handle_t *)&s->timer, NULL);
    uv_close((uv_handle_t *)&s->done_async, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
}

static void on_timer(uv_timer_t *t)
{
    server *s = t->data;
    s->tick++;
    if (s->shutting_down) {
        if (s->listening) {
            uv_close((uv_handle_t *)&s->listener, NULL);
            s->listening = false;
        }
        /* In-flight commits finish and their replies go out first. */
        bool pending = s->jobs_inflight > 0;
        for (client *c = s->clients; c && !pending; c = c->next)
            pending = c->out_pending > 0;
        if (!pending || s->tick % 500 == 0)
            close_handles(s);
        return;
    }
    uint64_t now = ks_now_ms();
    if (!s->sweep_inflight && s->tick % 10 == 0) { /* every 100 ms */
        job *j = calloc(1, sizeof *j);
        if (j) {
            j->kind = JOB_SWEEP;
            j->now_ms = now;
            cairn_resp_init(&j->out, 2);
            s->sweep_inflight = true;
            s->jobs_inflight++;
            submit(s, j);
        }
    }
    if (s->cfg.timeout_s && s->tick % 100 == 0) {
        uint64_t m = mono_ms();
        client *c = s->clients;
        while (c) {
            client *next = c->next;
            if (!c->busy && m - c->last_ms > (uint64_t)s->cfg.timeout_s * 1000)
                client_close(c);
            c = next;
        }
    }
}

static void on_signal(uv_signal_t *h, int sig)
{
    server *s = h->data;
    srv_log("info", "received %s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    srv_request_shutdown(s);
}

/* ---------- INFO ---------- */

static bool want(const char *sec, const char *name, bool dflt)
{
    if (!strcasecmp(sec, "all") || !strcasecmp(sec, "everything"))
        return true;
    if (!strcasecmp(sec, "default"))
        return dflt;
    return !strcasecmp(sec, name);
}

static uint64_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

void srv_info(server *s, const char *sec, cairn_resp_buf *out)
{
    char *b = NULL;
    size_t bl = 0;
    FILE *f = open_memstream(&b, &bl);
    if (!f) {
        cmd_reply_engine_error(out, CAIRN_ENOMEM);
        return;
    }
    if (want(sec, "server", true)) {
        fprintf(f, "# Server\r\nredis_version:7.0.0\r\n"
                   "cairn_version:%s\r\nredis_mode:standalone\r\n"
                   "os:Linux\r\nprocess_id:%d\r\ntcp_port:%d\r\n"
                   "uptime_in_seconds:%" PRIu64 "\r\nexecutable:cairn-server\r\n"
                   "config_file:%s\r\n\r\n",
                CAIRN_VERSION_STRING, (int)getpid(), s->cfg.port,
                (mono_ms() - s->start_ms) / 1000,
                s->cfg.config_file ? s->cfg.config_file : "");
    }
    if (want(sec, "clients", true))
        fprintf(f, "# Clients\r\nconnected_clients:%zu\r\nmaxclients:%zu\r\n"
                   "\r\n",
                s->nclients, s->cfg.max_clients);
    cairn_stats st;
    cairn_get_stats(s->db, &st);
    if (want(sec, "memory", true))
        fprintf(f, "# Memory\r\nused_memory_rss:%" PRIu64 "\r\n"
                   "memtable_bytes:%" PRIu64 "\r\nblock_cache_bytes:%" PRIu64
                   "\r\n\r\n",
                rss_bytes(), st.memtable_bytes, st.block_cache_bytes);
    if (want(sec, "persistence", true))
        fprintf(f, "# Persistence\r\nloading:0\r\naof_enabled:1\r\n"
                   "sync_mode:%s\r\nwal_syncs:%" PRIu64 "\r\n"
                   "recovered_commits:%" PRIu64 "\r\n\r\n",
                s->cfg.sync == CAIRN_SYNC_ALWAYS     ? "always"
                : s->cfg.sync == CAIRN_SYNC_INTERVAL ? "interval"
                                                     : "none",
                st.wal_syncs, st.recovered_commits);
    if (want(sec, "stats", true))
        fprintf(f, "# Stats\r\ntotal_connections_received:%" PRIu64 "\r\n"
                   "total_commands_processed:%" PRIu64 "\r\n"
                   "rejected_connections:%" PRIu64 "\r\n"
                   "dropped_clients:%" PRIu64 "\r\n"
                   "protocol_errors:%" PRIu64 "\r\n"
                   "commits:%" PRIu64 "\r\nconflicts:%" PRIu64 "\r\n\r\n",
                s->st_conns, s->st_cmds, s->st_rejected, s->st_dropped,
                s->st_proto_errors, st.commits, st.conflicts);
    if (want(sec, "cairn", true)) {
        fprintf(f, "# Cairn\r\ncurrent_version:%" PRIu64 "\r\n"
                   "oldest_version:%" PRIu64 "\r\nflushes:%" PRIu64 "\r\n"
                   "compactions:%" PRIu64 "\r\n"
                   "compaction_read_bytes:%" PRIu64 "\r\n"
                   "compaction_write_bytes:%" PRIu64 "\r\n"
                   "block_cache_hits:%" PRIu64 "\r\n"
                   "block_cache_misses:%" PRIu64 "\r\n"
                   "write_pressure:%d\r\nwrite_pressure_reason:%s\r\n"
                   "write_slowdowns:%" PRIu64 "\r\nwrite_stalls:%" PRIu64
                   "\r\nbackground_error:%d\r\n",
                st.current_version, st.oldest_version, st.flushes,
                st.compactions, st.compact_read_bytes, st.compact_write_bytes,
                st.block_cache_hits, st.block_cache_misses, st.write_pressure,
                st.write_pressure_reason ? st.write_pressure_reason : "",
                st.write_slowdowns, st.write_stalls, st.background_error);
        for (int l = 0; l < 8; l++)
            if (st.level_files[l])
                fprintf(f, "level%d:files=%" PRIu64 ",bytes=%" PRIu64 "\r\n",
                        l, st.level_files[l], st.level_bytes[l]);
        fprintf(f, "\r\n");
    }
    if (want(sec, "keyspace", true))
        fprintf(f, "# Keyspace\r\n\r\n");
    fclose(f);
    cairn_resp_verbatim(out, "txt", b, bl);
    free(b);
}

/* ---------- run ---------- */

int srv_run(const srv_config *cfg)
{
    server *s = calloc(1, sizeof *s);
    if (!s)
        return 1;
    s->cfg = *cfg;
    s->start_ms = mono_ms();
    cairn_resp_limits_init(&s->limits);
    s->limits.max_bulk = cfg->max_bulk;
    s->limits.max_args = cfg->max_args;
    signal(SIGPIPE, SIG_IGN);

    /* Enough descriptors for the clients, if the limit allows. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        rl.rlim_cur < cfg->max_clients + 64 && rl.rlim_cur < rl.rlim_max) {
        rlim_t want_n = cfg->max_clients + 64;
        rl.rlim_cur = want_n < rl.rlim_max ? want_n : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    cairn_options o;
    cairn_options_init(&o);
    o.sync_mode = cfg->sync;
    o.sync_interval_ms = cfg->sync_interval_ms;
    o.history_ms = cfg->history_ms;
    o.create_if_missing = true;
    o.max_value_size = cfg->max_bulk + 16;
    srv_log("info", "opening %s", cfg->dir);
    int rc = cairn_open(cfg->dir, &o, &s->db);
    if (rc) {
        srv_log("error", "cannot open the database in %s: %s", cfg->dir,
                cairn_strerror(rc));
        free(s);
        return 1;
    }
    uv_loop_init(&s->loop);
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pthread_mutex_init(&s->d_mu, NULL);
    for (int i = 0; i < KEY_STRIPES; i++)
        pthread_mutex_init(&s->key_locks[i], NULL);
    uv_async_init(&s->loop, &s->done_async, on_done);
    s->done_async.data = s;
    s->nworkers = cfg->commit_threads > 0 ? cfg->commit_threads : 1;
    s->workers = calloc((size_t)s->nworkers, sizeof *s->workers);
    int started = 0;
    for (int i = 0; s->workers && i < s->nworkers; i++)
        if (pthread_create(&s->workers[i], NULL, worker_main, s) == 0)
            started++;
    s->nworkers = started;

    int exit_code = 0;
    struct sockaddr_storage addr;
    if (strchr(cfg->bind, ':'))
        rc = uv_ip6_addr(cfg->bind, cfg->port, (struct sockaddr_in6 *)&addr);
    else
        rc = uv_ip4_addr(cfg->bind, cfg->port, (struct sockaddr_in *)&addr);
    if (rc == 0)
        rc = uv_tcp_init(&s->loop, &s->listener);
    if (rc == 0) {
        s->listener.data = s;
        rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
        if (rc != 0)
            uv_close((uv_handle_t *)&s->listener, NULL);
    }
    if (rc != 0 || started == 0) {
        srv_log("error", "cannot listen on %s:%d: %s", cfg->bind, cfg->port,
                rc ? uv_strerror(rc) : "no committer threads");
        exit_code = 1;
        s->shutting_down = true;
    } else {
        s->listening = true;
        srv_log("info",
                "cairn-server %s ready on %s:%d, data in %s, sync %s, %d "
                "committer threads",
                CAIRN_VERSION_STRING, cfg->bind, cfg->port, cfg->dir,
                cfg->sync == CAIRN_SYNC_ALWAYS     ? "always"
                : cfg->sync == CAIRN_SYNC_INTERVAL ? "interval"
                                                   : "none",
                s->nworkers);
    }
    uv_signal_init(&s->loop, &s->sigterm);
    uv_signal_init(&s->loop, &s->sigint);
    s->sigterm.data = s->sigint.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_timer_init(&s->loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_timer, 10, 10);

    uv_run(&s->loop, UV_RUN_DEFAULT);

    pthread_mutex_lock(&s->q_mu);
    s->q_stop = true;
    pthread_cond_broadcast(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
    for (int i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    /* Jobs finished after the loop stopped: their clients are gone. */
    for (job *j = s->d_head; j;) {
        job *n = j->next;
        if (j->c)
            client_unref(j->c);
        job_free(j);
        j = n;
    }
    uv_loop_close(&s->loop);
    srv_log("info", "flushing and closing the database");
    rc = cairn_close(s->db);
    if (rc) {
        srv_log("error", "close: %s", cairn_strerror(rc));
        exit_code = 1;
    } else {
        srv_log("info", "stopped cleanly");
    }
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cv);
    pthread_mutex_destroy(&s->d_mu);
    for (int i = 0; i < KEY_STRIPES; i++)
        pthread_mutex_destroy(&s->key_locks[i]);
    free(s);
    return exit_code;
}
