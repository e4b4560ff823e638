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
 *   - MONITOR: a command is fed to the monitors (s->monitors, loop thread
 *     only) once it passed every check Redis makes before running one,
 *     after it ran inline or was handed to a batch or committer; EXEC's
 *     commands when its job is back. Feeds are flushed once per loop pass
 *     (mon_check); a monitor past the output limit is closed.
 *   - A session (srv_session_*) has no loop and no sockets: the thread
 *     that feeds it plays the loop thread, waits on d_cv for its jobs, and
 *     its one client's replies go to the caller's buffer.
 * Locking: q_mu/q_cv guard the job queue (loop -> committers); d_mu guards
 * done_q (committers -> loop; d_cv wakes a session's feeding thread);
 * key_locks: a committer running a write of its own holds the stripe of
 * its first key through the commit (one stripe at a time, so no lock order
 * to keep). Nothing else is shared.
 */
#include "server/server.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <malloc.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "server/acl.h"
#include "server/keyspace.h"
#include "server/metrics.h"
#include "server/stats.h"
#include "server/tls.h"

/* ---------- logging ---------- */

/* Sessions alive (srv_session_new): while there is one, nothing is logged
 * (a fuzz target runs thousands a second; their lines would say nothing). */
static atomic_int log_muted;

static void srv_log(const char *level, const char *fmt, ...)
{
    if (atomic_load(&log_muted) > 0)
        return;
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
    /* One allocation: the pointers, the lengths, then the bytes. */
    size_t total = argc * (sizeof *q->argv + sizeof *q->argl);
    for (size_t i = 0; i < argc; i++)
        total += argl[i];
    uint8_t *mem = malloc(total + 1);
    if (!mem) {
        memset(q, 0, sizeof *q);
        return CAIRN_ENOMEM;
    }
    q->def = d;
    q->denied = 0;
    q->proto = 0;
    q->argc = argc;
    q->argv = (const uint8_t **)(void *)mem;
    q->argl = (size_t *)(void *)(mem + argc * sizeof *q->argv);
    q->buf = mem;
    uint8_t *p = mem + argc * (sizeof *q->argv + sizeof *q->argl);
    for (size_t i = 0; i < argc; i++) {
        if (argl[i])
            memcpy(p, argv[i], argl[i]);
        q->argv[i] = p;
        q->argl[i] = argl[i];
        p += argl[i];
    }
    return 0;
}

static void cmd_queued_free(cmd_queued *q)
{
    free(q->buf);
    memset(q, 0, sizeof *q);
}

/* JOB_BATCH: the write commands of one client that are already in its
 * input (one, or a pipeline), run in one transaction and committed once:
 * replies as if run one by one, one commit (and one log sync) for all. A
 * batch of one runs the command on its own (its own transaction, or a
 * blind write). */
typedef enum { JOB_EXEC, JOB_SWEEP, JOB_BATCH, JOB_COUNT } job_kind;

#define BATCH_MAX_CMDS 256
#define KEY_STRIPES 512
#define BATCH_MAX_BYTES ((size_t)4 << 20)
/* A client's input waits while this much of its replies is unwritten. */
#define OUT_PAUSE ((size_t)4 << 20)

typedef struct job {
    struct job *next;
    job_kind kind;
    client *c;          /* NULL for the sweep */
    cmd_queued *cmds;
    size_t ncmds, capcmds;
    uint8_t **wkeys;    /* EXEC: the watched keys */
    size_t *wlens;
    size_t nwatch;
    srv_watch *wst;     /* each watched key's state at WATCH */
    cairn_resp_buf out;
    uint64_t version;
    uint64_t now_ms;
    uint64_t count_keys, count_expires, count_avg_ttl; /* JOB_COUNT's */
    int count_rc;
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
    free(j->wst);
    cairn_resp_free(&j->out);
    free(j);
}

/* ---------- server and clients ---------- */

struct client {
    uv_tcp_t tcp;   /* unused (never initialized) for a session's client */
    server *s;
    uint64_t id;
    const srv_acl_user *user; /* retained; NULL until authenticated */
    srv_tls_conn *tls;        /* a client of the TLS port */
    uint64_t job_start_us;    /* its job's submission (slow log) */
    client *prev, *next;
    uint8_t *in;
    size_t inlen, incap;
    cairn_resp_parser *parser;
    cairn_resp_buf out;
    int proto;
    bool authed, busy, close_after, closed;
    bool monitor;   /* MONITOR: every command processed is fed to it */
    char exec_word[5]; /* its EXEC as spelt, fed to monitors when done */
    bool eof;       /* the peer half-closed: close once all is answered */
    bool paused;    /* input left unparsed until replies drain (OUT_PAUSE) */
    int refs;
    size_t out_pending;
    char name[128];
    char addr[64];
    uint64_t created_ms, last_ms, ncmds, last_version;
    const char *last_cmd; /* CLIENT LIST's cmd=: a name, or last_sub */
    char last_sub[48];    /* "client|list": a container's subcommand */
    const cmd_def *last_def; /* the command it ran last (lookup cache) */
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
    srv_watch *wst;
    size_t nw, capw;
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
    pthread_cond_t d_cv; /* a session waits on it for done_q */
    job *d_head, *d_tail;
    bool done_closed; /* done_async is closed (d_mu) */
    /* A session (srv_session_new): no loop, no sockets; its one client's
     * replies go to sess_out as they are flushed. */
    bool session;
    cairn_resp_buf *sess_out;
    /* clients */
    client *clients;
    size_t nclients;
    uint64_t next_id;
    size_t jobs_inflight;
    bool sweep_inflight;
    /* INFO keyspace: the key count from the last walk (JOB_COUNT) */
    bool count_inflight, ks_valid;
    uint64_t ks_keys, ks_expires, ks_avg_ttl, ks_counted_ms;
    bool shutting_down, closing_all;
    uint64_t start_ms, tick;
    uint64_t now_ms; /* wall clock (ms) at the start of this input pass */
    uint64_t cmd_start_us; /* when the command being run began (slow log) */
    /* Single-key writes on a committer hold the stripe of their key
     * through their commit: read-modify-writes of one hot key queue up
     * instead of conflicting and retrying. */
    pthread_mutex_t key_locks[KEY_STRIPES];
    /* access control, TLS, metrics */
    srv_acl *acl;
    uint64_t acl_gen;
    srv_tls_ctx *tls_ctx;
    uv_tcp_t tls_listener;
    bool tls_listening;
    srv_metrics *metrics;
    /* the slow log: a ring of the newest slowlog_max_len entries */
    struct slow_entry *slow;
    size_t slow_cap, slow_n, slow_head; /* head: index of the newest */
    uint64_t slow_next_id;
    /* MONITOR clients (loop thread), flushed once per loop pass by
     * mon_check while there are any */
    client **monitors;
    size_t nmon, capmon;
    uv_check_t mon_check;
    const cmd_def *exec_def; /* EXEC's entry, to know it without a strcmp */
    /* stats */
    uint64_t st_conns, st_rejected, st_cmds, st_proto_errors, st_dropped;
    uint64_t st_noperm, st_tls_conns, st_tls_errors;
    uint64_t st_net_in, st_net_out, st_reads, st_writes, st_expired;
    _Atomic uint64_t st_hits, st_misses; /* key lookups (any thread) */
    _Atomic uint64_t st_saves, st_save_failed, st_save_last_us;
    uint64_t mem_peak;
    srv_stats *stats;     /* per command and error code; rates */
    bool cmd_ran;         /* client_command ran, queued or handed it on */
    const cmd_def *cmd_base; /* the command table (stats index) */
    char run_id[41], replid[41];
    /* SCAN cursors (any thread, scan_mu): where each recent SCAN stopped */
    pthread_mutex_t scan_mu;
    struct scan_cursor *scans;
    uint64_t scan_seq, scan_clock;
    uint8_t tls_rbuf[65536]; /* ciphertext read from a TLS client */
};

/* A SCAN's stopping place, kept under its cursor id (srv_scan_save). */
typedef struct scan_cursor {
    uint64_t id, used; /* used: scan_clock at the last save or load */
    uint8_t *key;
    size_t klen;
    bool going_on; /* saved by a call that went on from a cursor */
} scan_cursor;

#define SCAN_CURSORS 1024

typedef struct slow_entry {
    uint64_t id;
    int64_t unix_s;
    uint64_t micros;
    size_t argc;     /* as logged (at most SLOW_MAX_ARGS) */
    char **argv;     /* each at most SLOW_MAX_ARG bytes, with a note */
    size_t *argl;
    char addr[64];
    char name[128];
} slow_entry;

#define SLOW_MAX_ARGS 32
#define SLOW_MAX_ARG 128

static void slow_entry_free(slow_entry *e)
{
    for (size_t a = 0; a < e->argc; a++)
        free(e->argv[a]);
    free(e->argv);
    free(e->argl);
    memset(e, 0, sizeof *e);
}

static void client_process(client *c);
static void client_close(client *c);
static void stats_tick(server *s);

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
static void client_set_user(client *c, const srv_acl_user *u)
{
    if (u)
        srv_acl_user_retain(u);
    if (c->user)
        srv_acl_user_release(c->user);
    c->user = u;
}
const srv_acl_user *srv_login_user(server *s, const uint8_t *user,
                                   size_t ul, const uint8_t *pass, size_t pl)
{
    char name[256];
    if (!user) {
        snprintf(name, sizeof name, "default");
    } else {
        if (ul >= sizeof name || memchr(user, 0, ul))
            return NULL;
        memcpy(name, user, ul);
        name[ul] = '\0';
    }
    return srv_acl_auth(s->acl, name, pass, pl);
}

bool srv_client_login(client *c, const uint8_t *user, size_t ul,
                      const uint8_t *pass, size_t pl)
{
    const srv_acl_user *u = srv_login_user(c->s, user, ul, pass, pl);
    if (!u)
        return false;
    client_set_user(c, u);
    c->authed = true;
    return true;
}
/* Log c in as the default user if that user needs no password. */
static bool login_nopass(client *c)
{
    if (!srv_acl_default_nopass(c->s->acl))
        return false;
    client_set_user(c, srv_acl_default(c->s->acl));
    c->authed = true;
    return true;
}
void srv_client_login_default(client *c)
{
    if (!login_nopass(c)) {
        client_set_user(c, NULL);
        c->authed = false;
    }
}
/* Is c logged in? As in Redis, a client that is not counts as logged in
 * as the default user once that user needs no password (requirepass
 * cleared at runtime after a RESET or before an AUTH). */
static inline bool authed(client *c)
{
    return c->authed || login_nopass(c);
}
bool srv_client_authed(client *c)
{
    return authed(c);
}
const char *srv_client_user(const client *c)
{
    return c->user ? srv_acl_user_name(c->user) : NULL;
}
srv_acl *srv_get_acl(server *s)
{
    return s->acl;
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

static uint64_t now_us_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void client_line(const client *c, cairn_resp_buf *tmp, uint64_t now)
{
    /* Redis 7.0's fields in its order (no replies redirected: redir=-1;
     * arguments are parsed in place: argv-mem=0; the read buffer's size is
     * its peak too: rbs=rbp), then Cairn's. Exactly those: clients such as
     * node-redis 4 read the fields by position. */
    uv_os_fd_t fd = -1;
    if (c->s->session || c->closed ||
        uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
        fd = -1;
    size_t multi_mem = 0;
    for (size_t i = 0; i < c->nmq; i++)
        for (size_t a = 0; a < c->mq[i].argc; a++)
            multi_mem += c->mq[i].argl[a];
    char line[600];
    int n = snprintf(line, sizeof line,
                     "id=%" PRIu64 " addr=%s laddr=%s:%d fd=%d name=%s "
                     "age=%" PRIu64 " idle=%" PRIu64 " flags=%s db=0 "
                     "sub=0 psub=0 ssub=0 multi=%ld qbuf=%zu "
                     "qbuf-free=%zu argv-mem=0 multi-mem=%zu rbs=%zu "
                     "rbp=%zu obl=%zu oll=0 omem=%zu tot-mem=%zu events=r "
                     "cmd=%s user=%s redir=-1 resp=%d "
                     "last-version=%" PRIu64 "\n",
                     c->id, c->addr, c->s->cfg.bind,
                     c->tls ? c->s->cfg.tls_port : c->s->cfg.port, (int)fd,
                     c->name, (now - c->created_ms) / 1000,
                     (now - c->last_ms) / 1000,
                     c->monitor ? "O" : c->in_multi ? "x" : "N",
                     c->in_multi ? (long)c->nmq : -1L, c->inlen,
                     c->incap - c->inlen, multi_mem, c->incap, c->incap,
                     c->out.len,
                     c->out_pending, c->incap + c->out.cap + multi_mem,
                     c->last_cmd ? c->last_cmd : "NULL",
                     c->user ? srv_acl_user_name(c->user) : "",
                     c->proto, c->last_version);
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

/* Whether c passes the CLIENT LIST / KILL filter f (ids aside). */
static bool client_matches(const client *c, const srv_client_filter *f)
{
    if (f->no_type)
        return false; /* master, replica, pubsub: none here */
    if (f->addr && (strlen(c->addr) != f->addrl ||
                    memcmp(c->addr, f->addr, f->addrl) != 0))
        return false;
    if (f->laddr) {
        char la[128];
        int n = snprintf(la, sizeof la, "%s:%d", c->s->cfg.bind,
                         c->tls ? c->s->cfg.tls_port : c->s->cfg.port);
        if (n < 0 || (size_t)n != f->laddrl || memcmp(la, f->laddr, f->laddrl))
            return false;
    }
    if (f->user && (!c->user || strcmp(srv_acl_user_name(c->user), f->user)))
        return false;
    return c != f->skip;
}

static client *client_by_id(server *s, uint64_t id)
{
    for (client *c = s->clients; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

void srv_client_list(server *s, const srv_client_filter *f,
                     cairn_resp_buf *out)
{
    cairn_resp_buf tmp;
    cairn_resp_init(&tmp, 2);
    uint64_t now = mono_ms();
    if (f->nids) { /* in the order asked, as Redis does */
        for (size_t i = 0; i < f->nids; i++) {
            client *c = client_by_id(s, f->ids[i]);
            if (c && client_matches(c, f))
                client_line(c, &tmp, now);
        }
    } else {
        for (client *c = s->clients; c; c = c->next)
            if (client_matches(c, f))
                client_line(c, &tmp, now);
    }
    cairn_resp_verbatim(out, "txt", tmp.p, tmp.len);
    cairn_resp_free(&tmp);
}

long long srv_client_kill(server *s, const srv_client_filter *f, client *self)
{
    long long n = 0;
    client *next;
    for (client *c = s->clients; c; c = next) {
        next = c->next;
        if (!client_matches(c, f))
            continue;
        bool id_ok = f->nids == 0;
        for (size_t i = 0; i < f->nids && !id_ok; i++)
            id_ok = f->ids[i] == c->id;
        if (!id_ok)
            continue;
        n++;
        if (c->busy || c == self)
            c->close_after = true; /* after its reply */
        else
            client_close(c);
    }
    return n;
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
                     uint64_t version, bool expired)
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
        srv_watch *w = realloc(c->wst, n * sizeof *w);
        if (!w)
            return CAIRN_ENOMEM;
        c->wst = w;
        c->capw = n;
    }
    uint8_t *copy = malloc(klen ? klen : 1);
    if (!copy)
        return CAIRN_ENOMEM;
    if (klen)
        memcpy(copy, key, klen);
    c->wst[c->nw] = (srv_watch){version, expired};
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

/* ---------- access control, configuration, slow log ---------- */

void srv_acl_run(server *s, client *c, size_t argc, const uint8_t *const *argv,
                 const size_t *argl, cairn_resp_buf *out)
{
    srv_acl_command(s->acl, srv_client_user(c), argc, argv, argl, out);
    uint64_t g = srv_acl_generation(s->acl);
    if (g == s->acl_gen)
        return;
    s->acl_gen = g;
    /* Clients of deleted users go, as in Redis (this one after its reply). */
    for (client *o = s->clients, *next; o; o = next) {
        next = o->next;
        if (o->user && srv_acl_user_deleted(o->user)) {
            if (o == c || o->busy)
                o->close_after = true;
            else
                client_close(o);
        }
    }
}

/* What the client's user may not do with d and these arguments: 0 (all is
 * allowed), CMD_DENIED_COMMAND or CMD_DENIED_KEYS. */
static int acl_denial_of(const srv_acl_user *u, const cmd_def *d,
                         size_t argc, const uint8_t *const *argv,
                         const size_t *argl)
{
    size_t n;
    const cmd_def *tab = cmd_table(&n);
    if (srv_acl_check_cmd(u, (size_t)(d - tab)) != 0)
        return CMD_DENIED_COMMAND;
    if (d->first <= 0)
        return 0;
    size_t last = d->last < 0 ? argc - 1 : (size_t)d->last;
    for (size_t i = (size_t)d->first; i <= last && i < argc;
         i += (size_t)d->step)
        if (srv_acl_check_key(u, argv[i], argl[i]) != 0)
            return CMD_DENIED_KEYS;
    return 0;
}

static int acl_denial(const client *c, const cmd_def *d, size_t argc,
                      const uint8_t *const *argv, const size_t *argl)
{
    return acl_denial_of(c->user, d, argc, argv, argl);
}

/* false, with NOPERM in out, if the client's user may not run d with
 * these arguments. */
static bool acl_allows(client *c, const cmd_def *d, size_t argc,
                       const uint8_t *const *argv, const size_t *argl,
                       cairn_resp_buf *out)
{
    int denied = acl_denial(c, d, argc, argv, argl);
    if (!denied)
        return true;
    c->s->st_noperm++;
    if (denied == CMD_DENIED_KEYS) {
        cairn_resp_error(out, "NOPERM this user has no permissions to access "
                              "one of the keys used as arguments");
        return false;
    }
    /* A container command is named with its subcommand, as Redis names it:
     * 'config|get'. */
    char name[96];
    size_t nl = (size_t)snprintf(name, sizeof name, "%s", d->name);
    if ((d->flags & CMD_SUBCMDS) && argc > 1 && nl < sizeof name - 1) {
        name[nl++] = '|';
        for (size_t i = 0; i < argl[1] && nl < sizeof name - 1; i++)
            name[nl++] = (char)tolower(argv[1][i]);
        name[nl] = '\0';
    }
    cairn_resp_errorf(out, "NOPERM this user has no permissions to run the "
                           "'%s' command",
                      name);
    return false;
}

int srv_config_apply(server *s, const char *name, const char *value,
                     char *err, size_t errlen)
{
    if (srv_config_set(&s->cfg, name, value, err, errlen) != 0)
        return -1;
    if (!strcasecmp(name, "requirepass")) {
        if (srv_acl_set_requirepass(s->acl, s->cfg.requirepass) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    } else if (!strcasecmp(name, "proto-max-bulk-len")) {
        s->limits.max_bulk = s->cfg.max_bulk;
    } else if (!strcasecmp(name, "max-args")) {
        s->limits.max_args = s->cfg.max_args;
    } else if (!strcasecmp(name, "row-cache-size") ||
               !strcasecmp(name, "block-cache-size")) {
        /* The engine resizes (and, shrinking, evicts) at once. */
        cairn_set_cache_sizes(s->db, s->cfg.row_cache_size,
                              s->cfg.block_cache_size);
    } else if (!strcasecmp(name, "slowlog-max-len")) {
        /* Keep the newest entries that still fit. */
        while (s->slow_n > s->cfg.slowlog_max_len) {
            size_t oldest = (s->slow_head + s->slow_cap - (s->slow_n - 1)) %
                            s->slow_cap;
            slow_entry_free(&s->slow[oldest]);
            s->slow_n--;
        }
    }
    srv_log("info", "CONFIG SET %s", name);
    return 0;
}

int srv_config_rewrite_running(server *s, char *err, size_t errlen)
{
    /* Every user, default included, as ACL LIST shows them (the default
     * user's password is requirepass's: written in both places, as Redis
     * does). */
    size_t nl = 0;
    char **lines = srv_acl_list(s->acl, &nl);
    if (!lines) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = srv_config_rewrite(&s->cfg, lines, nl, err, errlen);
    srv_acl_list_free(lines, nl);
    if (rc == 0)
        srv_log("info", "CONFIG REWRITE of %s", s->cfg.config_file);
    return rc;
}

static bool arg_eq(const uint8_t *a, size_t al, const char *w)
{
    return al == strlen(w) && !strncasecmp((const char *)a, w, al);
}

/* Is argument i a secret the slow log must not show (as Redis: AUTH's
 * arguments, HELLO's AUTH user and password, ACL SETUSER's arguments, the
 * value of CONFIG SET requirepass)? */
static bool slow_redacted(size_t argc, const uint8_t *const *argv,
                          const size_t *argl, size_t i)
{
    if (i == 0)
        return false;
    if (arg_eq(argv[0], argl[0], "auth"))
        return true;
    if (arg_eq(argv[0], argl[0], "hello")) {
        for (size_t a = 1; a < i && a < argc; a++)
            if (arg_eq(argv[a], argl[a], "auth") && i <= a + 2)
                return true;
        return false;
    }
    if (arg_eq(argv[0], argl[0], "acl"))
        return i >= 2 && arg_eq(argv[1], argl[1], "setuser");
    if (arg_eq(argv[0], argl[0], "config") && argc > 1 &&
        arg_eq(argv[1], argl[1], "set"))
        return i >= 3 && (i - 2) % 2 == 1 &&
               arg_eq(argv[i - 1], argl[i - 1], "requirepass");
    return false;
}

/* Log a command that took `micros` if the threshold says so. */
static void slowlog_add(server *s, client *c, size_t argc,
                        const uint8_t *const *argv, const size_t *argl,
                        uint64_t micros)
{
    if (s->cfg.slowlog_slower_than < 0 || s->cfg.slowlog_max_len == 0 ||
        micros < (uint64_t)s->cfg.slowlog_slower_than)
        return;
    if (s->slow_cap != s->cfg.slowlog_max_len) {
        /* Resize the ring (newest first order kept). */
        size_t cap = s->cfg.slowlog_max_len;
        slow_entry *n = calloc(cap, sizeof *n);
        if (!n)
            return;
        size_t keep = s->slow_n < cap ? s->slow_n : cap;
        for (size_t i = 0; i < s->slow_n; i++) {
            slow_entry *e = &s->slow[(s->slow_head + s->slow_cap - i) %
                                     s->slow_cap];
            if (i < keep)
                n[keep - 1 - i] = *e;
            else
                slow_entry_free(e);
        }
        free(s->slow);
        s->slow = n;
        s->slow_cap = cap;
        s->slow_n = keep;
        s->slow_head = keep ? keep - 1 : cap - 1;
    }
    size_t at = (s->slow_head + 1) % s->slow_cap;
    slow_entry *e = &s->slow[at];
    if (s->slow_n == s->slow_cap) { /* overwrite the oldest */
        slow_entry_free(e);
        s->slow_n--;
    }
    memset(e, 0, sizeof *e);
    size_t na = argc > SLOW_MAX_ARGS ? SLOW_MAX_ARGS : argc;
    e->argv = calloc(na, sizeof *e->argv);
    e->argl = calloc(na, sizeof *e->argl);
    if (!e->argv || !e->argl) {
        free(e->argv);
        free(e->argl);
        memset(e, 0, sizeof *e);
        return;
    }
    for (size_t i = 0; i < na; i++) {
        char buf[SLOW_MAX_ARG + 64];
        size_t l;
        if (slow_redacted(argc, argv, argl, i)) {
            l = (size_t)snprintf(buf, sizeof buf, "(redacted)");
        } else if (i == SLOW_MAX_ARGS - 1 && argc > SLOW_MAX_ARGS) {
            l = (size_t)snprintf(buf, sizeof buf, "... (%zu more arguments)",
                                 argc - SLOW_MAX_ARGS + 1);
        } else if (argl[i] > SLOW_MAX_ARG) {
            memcpy(buf, argv[i], SLOW_MAX_ARG);
            l = SLOW_MAX_ARG + (size_t)snprintf(buf + SLOW_MAX_ARG, 64,
                                                "... (%zu more bytes)",
                                                argl[i] - SLOW_MAX_ARG);
        } else {
            memcpy(buf, argv[i], argl[i]);
            l = argl[i];
        }
        e->argv[i] = malloc(l + 1);
        if (e->argv[i]) {
            memcpy(e->argv[i], buf, l);
            e->argv[i][l] = '\0';
            e->argl[i] = l;
        }
        e->argc++;
    }
    e->id = s->slow_next_id++;
    e->unix_s = (int64_t)(ks_now_ms() / 1000);
    e->micros = micros;
    snprintf(e->addr, sizeof e->addr, "%s", c ? c->addr : "");
    snprintf(e->name, sizeof e->name, "%s", c ? c->name : "");
    s->slow_head = at;
    s->slow_n++;
}

static void slowlog_reset(server *s)
{
    for (size_t i = 0; i < s->slow_cap; i++)
        slow_entry_free(&s->slow[i]);
    free(s->slow);
    s->slow = NULL;
    s->slow_cap = s->slow_n = s->slow_head = 0;
}

static const cairn_resp_sub SLOWLOG_SUBS[] = {
    {"get", -2}, {"len", 2}, {"reset", 2}, {"help", 2},
};

const cairn_resp_sub *srv_slowlog_subcommands(size_t *n)
{
    *n = sizeof SLOWLOG_SUBS / sizeof SLOWLOG_SUBS[0];
    return SLOWLOG_SUBS;
}

void srv_slowlog_command(server *s, cmd_ctx *x)
{
    if (cairn_resp_sub_find(x->out, "SLOWLOG", SLOWLOG_SUBS,
                            sizeof SLOWLOG_SUBS / sizeof SLOWLOG_SUBS[0],
                            x->argc, x->argv, x->argl) < 0)
        return;
    const uint8_t *sub = x->argv[1];
    size_t sl = x->argl[1];
    if (arg_eq(sub, sl, "LEN") && x->argc == 2) {
        cairn_resp_integer(x->out, (int64_t)s->slow_n);
    } else if (arg_eq(sub, sl, "RESET") && x->argc == 2) {
        slowlog_reset(s);
        cairn_resp_simple(x->out, "OK");
    } else if (arg_eq(sub, sl, "GET") && x->argc <= 3) {
        long long count = 10;
        if (x->argc == 3) {
            char buf[32];
            size_t l = x->argl[2] < sizeof buf - 1 ? x->argl[2] : 0;
            memcpy(buf, x->argv[2], l);
            buf[l] = '\0';
            char *endp;
            count = strtoll(buf, &endp, 10);
            if (!l || *endp || count < -1) {
                cairn_resp_error(x->out, "ERR count should be greater than or "
                                         "equal to -1");
                return;
            }
            if (count == -1)
                count = (long long)s->slow_n;
        }
        size_t n = (size_t)count < s->slow_n ? (size_t)count : s->slow_n;
        cairn_resp_array(x->out, n);
        for (size_t i = 0; i < n; i++) {
            slow_entry *e = &s->slow[(s->slow_head + s->slow_cap - i) %
                                     s->slow_cap];
            cairn_resp_array(x->out, 6);
            cairn_resp_integer(x->out, (int64_t)e->id);
            cairn_resp_integer(x->out, e->unix_s);
            cairn_resp_integer(x->out, (int64_t)e->micros);
            cairn_resp_array(x->out, e->argc);
            for (size_t a = 0; a < e->argc; a++)
                cairn_resp_bulk(x->out, e->argv[a] ? e->argv[a] : "",
                                e->argl[a]);
            cairn_resp_bulk_cstr(x->out, e->addr);
            cairn_resp_bulk_cstr(x->out, e->name);
        }
    } else if (arg_eq(sub, sl, "HELP") && x->argc == 2) {
        static const char *const help[] = {
            "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 "
            "mean all).",
            "    Entries are made of: id, timestamp, time in microseconds, "
            "arguments array, client IP and port, client name.",
            "    A write's time runs until its commit is durable.",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
            "HELP",
            "    Print this help."};
        cmd_reply_help(x->out, help, sizeof help / sizeof help[0]);
    } else {
        cmd_reply_bad_sub(x->out, "SLOWLOG", sub, sl);
    }
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
    bool send = !s->done_closed && !s->session;
    if (s->session)
        pthread_cond_signal(&s->d_cv);
    pthread_mutex_unlock(&s->d_mu);
    if (send)
        uv_async_send(&s->done_async);
}

/* The client waits for job j (on a committer or an asynchronous commit):
 * nothing more of its input runs until j is back (on_done). */
static void client_wait_job(client *c, job *j)
{
    j->c = c;
    c->busy = true;
    c->refs++;
    c->s->jobs_inflight++;
    c->job_start_us = now_us_mono();
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
        j->count_keys = cmd_sweep_expired(s->db, j->now_ms, 1000);
    } else if (j->kind == JOB_COUNT) {
        j->count_rc = cmd_count_keys(s->db, j->now_ms, &j->count_keys,
                                     &j->count_expires, &j->count_avg_ttl);
    } else if (j->kind == JOB_EXEC) {
        cmd_exec_queued(&x, j->cmds, j->ncmds, j->nwatch,
                        (const uint8_t **)j->wkeys, j->wlens, j->wst);
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
    if (c->paused && !c->closed && !c->busy && c->out_pending < OUT_PAUSE / 2) {
        client_process(c);
        return;
    }
    if (c->close_after && !c->busy && c->out_pending == 0 && !c->closed)
        client_close(c);
}

/* An output buffer at most this large is kept for the next replies once
 * written; a larger one (a big reply) is freed. */
#define OUT_KEEP (16u << 10)

/* Write the replies straight to the socket (nothing of this client's is
 * queued in the loop, so the order holds): what the socket takes now
 * needs no write request, no completion callback (and no re-arming of the
 * socket's poll that a completed request costs), and the output buffer is
 * kept for the next replies. What it does not take stays in c->out for
 * the queued write (client_flush). 0, or -1 when the client was closed
 * (the socket failed). */
static int direct_write(client *c)
{
    uv_buf_t b = uv_buf_init((char *)c->out.p, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == UV_EAGAIN)
        return 0;
    if (n < 0) {
        client_close(c);
        return -1;
    }
    if ((size_t)n < c->out.len) { /* the rest waits for room */
        memmove(c->out.p, c->out.p + n, c->out.len - (size_t)n);
        c->out.len -= (size_t)n;
        return 0;
    }
    if (c->out.cap > OUT_KEEP)
        cairn_resp_free(&c->out); /* keeps the protocol */
    else
        cairn_resp_reset(&c->out);
    return 0;
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
    if (c->out.len > 0) { /* reply bytes handed to the connection */
        c->s->st_net_out += c->out.len;
        c->s->st_writes++;
    }
    if (c->s->session) {
        /* No socket: the replies go to the session's caller as if written
         * at once (nothing pending). */
        if (c->out.len && c->s->sess_out)
            cairn_resp_raw(c->s->sess_out, c->out.p, c->out.len);
        c->out.len = 0;
        if (c->close_after && !c->busy)
            client_close(c);
        return;
    }
    if (c->tls && c->out.len > 0) {
        /* Encrypt the replies; what goes to the socket is ciphertext. */
        int rc = srv_tls_write(c->tls, c->out.p, c->out.len);
        c->out.len = 0;
        if (rc != 0) {
            client_close(c);
            return;
        }
    }
    if (!c->tls && c->out.len > 0 && c->out_pending == 0 &&
        direct_write(c) != 0)
        return; /* closed */
    uint8_t *tdata = NULL;
    size_t tlen = 0;
    if (c->tls && srv_tls_take(c->tls, &tdata, &tlen) != 0) {
        client_close(c);
        return;
    }
    if (c->tls ? tlen > 0 : c->out.len > 0) {
        wreq *w = malloc(sizeof *w);
        if (!w) {
            free(tdata);
            client_close(c);
            return;
        }
        w->c = c;
        if (c->tls) {
            w->data = tdata;
            w->len = tlen;
        } else {
            w->data = c->out.p;
            w->len = c->out.len;
            c->out.p = NULL;
            c->out.len = c->out.cap = 0;
        }
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
    client_set_user(c, NULL);
    srv_tls_conn_free(c->tls);
    cairn_resp_parser_free(c->parser);
    cairn_resp_free(&c->out);
    free(c->in);
    srv_client_discard(c);
    srv_client_unwatch(c);
    free(c->wk);
    free(c->wl);
    free(c->wst);
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
    srv_client_unmonitor(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nclients--;
    if (s->session) { /* no handle to close: its reference goes now */
        client_unref(c);
        return;
    }
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

/* A command's full name as Redis 7 spells it into out: a container's
 * subcommand as "client|list" (in lower case, true), else the bare name
 * (false: no subcommand, or one too long or not a word). */
static bool full_name(const cmd_def *d, size_t argc,
                      const uint8_t *const *argv, const size_t *argl,
                      char *out, size_t cap)
{
    size_t n = strlen(d->name); /* table names are short: n < cap */
    memcpy(out, d->name, n + 1);
    if (!(d->flags & CMD_SUBCMDS) || argc < 2 || argl[1] == 0 ||
        n + 1 + argl[1] >= cap)
        return false;
    for (size_t i = 0; i < argl[1]; i++)
        if (!isalnum(argv[1][i]) && argv[1][i] != '-' && argv[1][i] != '_')
            return false;
    out[n] = '|';
    for (size_t i = 0; i < argl[1]; i++)
        out[n + 1 + i] = (char)tolower(argv[1][i]);
    out[n + 1 + argl[1]] = '\0';
    return true;
}

/* ---------- MONITOR ---------- */

/* Flush every monitor's feed: once per loop pass (a check handle, active
 * while there are monitors), not a write per command fed. */
static void monitor_flush_all(uv_check_t *h)
{
    server *s = h->data;
    for (size_t i = s->nmon; i > 0; i--) /* a failed write removes one */
        client_flush(s->monitors[i - 1]);
}

int srv_client_monitor(client *c)
{
    server *s = c->s;
    if (c->monitor)
        return 1;
    if (s->nmon == s->capmon) {
        size_t n = s->capmon ? s->capmon * 2 : 4;
        client **m = realloc(s->monitors, n * sizeof *m);
        if (!m)
            return CAIRN_ENOMEM;
        s->monitors = m;
        s->capmon = n;
    }
    s->monitors[s->nmon++] = c;
    c->monitor = true;
    if (s->nmon == 1 && !s->session)
        uv_check_start(&s->mon_check, monitor_flush_all);
    return 0;
}

void srv_client_unmonitor(client *c)
{
    server *s = c->s;
    if (!c->monitor)
        return;
    c->monitor = false;
    for (size_t i = 0; i < s->nmon; i++)
        if (s->monitors[i] == c) {
            s->monitors[i] = s->monitors[--s->nmon];
            break;
        }
    if (s->nmon == 0 && !s->session)
        uv_check_stop(&s->mon_check);
}

/* Commands Redis 7.0 keeps out of the feed (its "admin" flag): the
 * administrator's own, some with secrets in their arguments. */
static bool monitor_hidden(const cmd_def *d, size_t argc,
                           const uint8_t *const *argv, const size_t *argl)
{
    static const char *const hidden[] = {
        "bgsave", "monitor", "save", "shutdown",
        "acl|deluser", "acl|dryrun", "acl|getuser", "acl|list", "acl|load",
        "acl|log", "acl|save", "acl|setuser", "acl|users",
        "client|kill", "client|list", "client|no-evict", "client|pause",
        "client|unblock", "client|unpause",
        "config|get", "config|resetstat", "config|rewrite", "config|set",
        "slowlog|get", "slowlog|len", "slowlog|reset"};
    char name[48];
    full_name(d, argc, argv, argl, name, sizeof name);
    for (size_t i = 0; i < sizeof hidden / sizeof hidden[0]; i++)
        if (!strcmp(name, hidden[i]))
            return true;
    return false;
}

/* Append a quoted argument as Redis shows it (its sdscatrepr): printable
 * bytes as they are, \\ \" \n \r \t \a \b escaped, others \xHH. */
static void monitor_repr(cairn_resp_buf *b, const uint8_t *p, size_t n)
{
    cairn_resp_raw(b, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = p[i];
        const char *esc = NULL;
        char hex[5];
        switch (ch) {
        case '\\': esc = "\\\\"; break;
        case '"': esc = "\\\""; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\a': esc = "\\a"; break;
        case '\b': esc = "\\b"; break;
        default:
            if (ch >= 0x20 && ch < 0x7f)
                continue; /* printable: part of the run */
            snprintf(hex, sizeof hex, "\\x%02x", ch);
            esc = hex;
        }
        if (i > run)
            cairn_resp_raw(b, p + run, i - run);
        cairn_resp_raw(b, esc, strlen(esc));
        run = i + 1;
    }
    if (n > run)
        cairn_resp_raw(b, p + run, n - run);
    cairn_resp_raw(b, "\"", 1);
}

/* Does p[0..n) start with the bytes of lit? */
static bool reply_starts(const uint8_t *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    return n >= l && !memcmp(p, lit, l);
}

/* Did the reply written from mark on refuse the command the way Redis
 * refuses a container's unknown subcommand or wrong argument count, before
 * running it? */
static bool reply_is_refusal(const cairn_resp_buf *b, size_t mark)
{
    const uint8_t *p = b->p + mark;
    size_t n = b->len > mark ? b->len - mark : 0;
    return reply_starts(p, n, "-ERR unknown subcommand") ||
           reply_starts(p, n, "-ERR wrong number of arguments");
}

/* ---------- command statistics (INFO commandstats, errorstats) ---------- */

/* Command d ran (inline, in a batch, a job or EXEC) and its reply is
 * p[0..n) (a whole RESP value), after usec microseconds: a call, failed if
 * it answered an error. As in Redis, a container's unknown subcommand is
 * an error only (no command was found), its wrong argument count a
 * rejected call of the subcommand. */
/* A container's error reply p (n bytes), as Redis counts it: an unknown
 * subcommand is an error only (-1: no command counted), a wrong argument
 * count a rejected call of the subcommand (1); else 0. */
static int subcmd_refusal(const cmd_def *d, const uint8_t *p, size_t n)
{
    if (!(d->flags & CMD_SUBCMDS) || n == 0 || p[0] != '-')
        return 0;
    if (reply_starts(p, n, "-ERR unknown subcommand"))
        return -1;
    return reply_starts(p, n, "-ERR wrong number of arguments");
}

static void stats_ran(server *s, const cmd_def *d, size_t argc,
                      const uint8_t *const *argv, const size_t *argl,
                      const uint8_t *p, size_t n, uint64_t usec)
{
    bool err = n > 0 && p[0] == '-';
    if (err && s->stats)
        srv_stats_error(s->stats, p, n);
    size_t idx = (size_t)(d - s->cmd_base);
    char full[64];
    const char *sub = (d->flags & CMD_SUBCMDS) &&
                              full_name(d, argc, argv, argl, full, sizeof full)
                          ? full
                          : NULL;
    int refused = subcmd_refusal(d, p, n);
    if (refused < 0)
        return;
    if (refused > 0) {
        if (s->stats)
            srv_stats_reject(s->stats, idx, d->name, sub);
        return;
    }
    s->st_cmds++; /* total_commands_processed: commands that ran */
    if (s->stats)
        srv_stats_call(s->stats, idx, d->name, sub, usec, err);
}

/* Command d (NULL: unknown) was refused before it ran; its reply starts at
 * mark in c->out. */
static void stats_refused(server *s, client *c, const cmd_def *d,
                          size_t argc, const uint8_t *const *argv,
                          const size_t *argl, size_t mark)
{
    if (!s->stats)
        return;
    const uint8_t *p = NULL;
    size_t n = 0;
    if (!c->closed && c->out.len > mark && c->out.p[mark] == '-') {
        p = c->out.p + mark;
        n = c->out.len - mark;
        srv_stats_error(s->stats, p, n);
    }
    if (!d)
        return;
    /* A container's subcommand refused when queued (MULTI) counts as when
     * it runs (subcmd_refusal). */
    int refused = subcmd_refusal(d, p, n);
    if (refused < 0)
        return;
    char full[64];
    const char *sub =
        refused > 0 && full_name(d, argc, argv, argl, full, sizeof full)
            ? full
            : NULL;
    srv_stats_reject(s->stats, (size_t)(d - s->cmd_base), d->name, sub);
}

/* A job's commands are back with their replies in j->out, usec after it
 * was submitted (every command of a batch or EXEC waited for its commit):
 * each command's reply is found in turn. EXEC's reply holds one value per
 * queued command (none when a watched key aborted it); a command the ACL
 * refused at EXEC (denied) was rejected; then EXEC itself is a call. */
static void stats_job(server *s, const job *j, uint64_t usec)
{
    const uint8_t *p = j->out.p;
    size_t n = j->out.oom ? 0 : j->out.len, off = 0;
    if (j->kind == JOB_EXEC) {
        size_t len = n ? cairn_resp_value_len(p, n) : 0;
        const uint8_t *nl = len && p[0] == '*' ? memchr(p, '\n', len) : NULL;
        if (nl) {
            off = (size_t)(nl - p) + 1;
            for (size_t i = 0; i < j->ncmds && off < len; i++) {
                size_t l = cairn_resp_value_len(p + off, len - off);
                if (l == 0)
                    break;
                const cmd_queued *q = &j->cmds[i];
                if (q->denied && s->stats) {
                    srv_stats_error(s->stats, p + off, l);
                    srv_stats_reject(s->stats, (size_t)(q->def - s->cmd_base),
                                     q->def->name, NULL);
                } else if (!q->denied) {
                    stats_ran(s, q->def, q->argc, q->argv, q->argl, p + off,
                              l, usec);
                }
                off += l;
            }
        }
        if (s->exec_def)
            stats_ran(s, s->exec_def, 0, NULL, NULL, p, len, usec);
        return;
    }
    for (size_t i = 0; i < j->ncmds && off < n; i++) {
        size_t l = cairn_resp_value_len(p + off, n - off);
        if (l == 0)
            break;
        const cmd_queued *q = &j->cmds[i];
        stats_ran(s, q->def, q->argc, q->argv, q->argl, p + off, l, usec);
        off += l;
    }
}

/* Feed one command c had processed to every monitor, as Redis does: a
 * status line "+<unix s>.<us> [0 <addr>] "arg" ...". AUTH's arguments and
 * HELLO's AUTH username and password read (redacted). A monitor whose
 * unsent feed passes the output buffer limit is dropped. */
static void monitor_feed(server *s, client *c, const cmd_def *d, size_t argc,
                         const uint8_t *const *argv, const size_t *argl)
{
    if (monitor_hidden(d, argc, argv, argl))
        return;
    static const uint8_t redacted[] = "(redacted)";
    cairn_resp_buf line;
    cairn_resp_init(&line, 2);
    struct timeval tv;
    gettimeofday(&tv, NULL);
    char head[128];
    int hn = snprintf(head, sizeof head, "+%ld.%06ld [0 %s]", (long)tv.tv_sec,
                      (long)tv.tv_usec, c->addr);
    cairn_resp_raw(&line, head, hn > 0 && (size_t)hn < sizeof head ? (size_t)hn
                                                                   : 0);
    /* HELLO's options are read as Redis reads them (AUTH takes two
     * arguments, SETNAME one), but on past any it would refuse, so that a
     * password after a bad option is hidden too. */
    bool auth = !strcmp(d->name, "auth"), hello = !strcmp(d->name, "hello");
    size_t next_opt = 2, hide_to = 0;
    for (size_t i = 0; i < argc; i++) {
        bool hide = auth ? i >= 1 : i < hide_to;
        if (hello && i == next_opt) {
            if (argl[i] == 4 && !strncasecmp((const char *)argv[i], "auth", 4) &&
                i + 2 < argc)
                hide_to = next_opt = i + 3;
            else if (argl[i] == 7 &&
                     !strncasecmp((const char *)argv[i], "setname", 7) &&
                     i + 1 < argc)
                next_opt = i + 2;
            else
                next_opt = i + 1;
        }
        cairn_resp_raw(&line, " ", 1);
        if (hide)
            monitor_repr(&line, redacted, sizeof redacted - 1);
        else
            monitor_repr(&line, argv[i], argl[i]);
    }
    cairn_resp_raw(&line, "\r\n", 2);
    for (size_t i = s->nmon; i > 0; i--) {
        client *m = s->monitors[i - 1];
        if (m->close_after)
            continue; /* QUIT and the like: its last reply is sent */
        if (line.oom) {
            m->out.oom = true; /* dropped at its flush */
            continue;
        }
        cairn_resp_raw(&m->out, line.p, line.len);
        if (m->out.len + m->out_pending > s->cfg.max_output) {
            srv_log("warning",
                    "client %" PRIu64 " (%s) dropped: %zu bytes of MONITOR "
                    "output unread (client-output-buffer-limit %zu)",
                    m->id, m->addr, m->out.len + m->out_pending,
                    s->cfg.max_output);
            s->st_dropped++;
            client_close(m); /* leaves the monitors: i - 1 is done */
        } else if (s->session) {
            client_flush(m);
        }
    }
    cairn_resp_free(&line);
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
    /* The rules may have changed since the commands were queued: each
     * that is no longer allowed answers NOPERM in its place, unrun. Each
     * is checked as the user it runs as, and answers in the protocol it
     * runs in, once the AUTH and HELLO queued before it have run
     * (cmd_queued_session). AUTH and HELLO themselves are never refused
     * by the ACL, queued or not. */
    const srv_acl_user *as = c->user;
    int proto = c->proto;
    for (size_t i = 0; i < c->nmq; i++) {
        cmd_queued *q = &c->mq[i];
        q->proto = proto;
        q->denied = q->def->flags & CMD_NOAUTH
                        ? 0
                        : acl_denial_of(as, q->def, q->argc, q->argv, q->argl);
        if (!q->denied)
            cmd_queued_session(c->s, q, &as, &proto);
    }
    job *j = calloc(1, sizeof *j);
    if (!j) {
        cmd_reply_engine_error(&c->out, CAIRN_ENOMEM);
        return;
    }
    j->kind = JOB_EXEC;
    j->cmds = c->mq;
    j->ncmds = c->nmq;
    c->mq = NULL;
    c->nmq = c->capmq = 0;
    c->in_multi = false;
    j->wkeys = c->wk;
    j->wlens = c->wl;
    j->nwatch = c->nw;
    j->wst = c->wst;
    c->wk = NULL;
    c->wl = NULL;
    c->wst = NULL;
    c->nw = c->capw = 0;
    j->now_ms = c->s->now_ms;
    cairn_resp_init(&j->out, c->proto);
    client_wait_job(c, j);
    submit(c->s, j);
}

/* The command named by argv[0]: the client's previous one if it matches
 * (pipelines repeat a command), else a table lookup. */
static const cmd_def *client_lookup(client *c, const cairn_resp_cmd *cmd)
{
    const cmd_def *d = c->last_def;
    if (d && strlen(d->name) == cmd->argl[0] &&
        !strncasecmp(d->name, (const char *)cmd->argv[0], cmd->argl[0]))
        return d;
    d = cmd_lookup(cmd->argv[0], cmd->argl[0]);
    if (d)
        c->last_def = d;
    return d;
}

/* CLIENT LIST names a container's subcommand as Redis 7 does
 * ("client|list"); a name too long or not a word is left as the
 * container's. */
static void note_subcommand(client *c, const cmd_def *d,
                            const cairn_resp_cmd *cmd)
{
    if (full_name(d, cmd->argc, cmd->argv, cmd->argl, c->last_sub,
                  sizeof c->last_sub))
        c->last_cmd = c->last_sub;
}

/* Run one parsed command (its argv points into c->in); d is its entry in
 * the table (NULL: unknown). */
static void client_command(client *c, const cmd_def *d,
                           const cairn_resp_cmd *cmd)
{
    server *s = c->s;
    if (cmd->argc == 0)
        return;
    c->ncmds++;
    s->cmd_ran = false;
    if (!authed(c) && !(d && (d->flags & CMD_NOAUTH))) {
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
    note_subcommand(c, d, cmd);
    if (!cmd_arity_ok(d, cmd->argc)) {
        if (d == s->exec_def) {
            /* Redis: a refused EXEC aborts the transaction, if any. */
            srv_client_discard(c);
            srv_client_unwatch(c);
            cairn_resp_error(&c->out, "EXECABORT Transaction discarded "
                                      "because of: wrong number of arguments "
                                      "for 'exec' command");
            return;
        }
        reply_arity(c, cmd->argv[0], cmd->argl[0]);
        if (c->in_multi)
            c->multi_err = true;
        return;
    }
    if (c->authed && !(d->flags & CMD_NOAUTH) &&
        !acl_allows(c, d, cmd->argc, cmd->argv, cmd->argl, &c->out)) {
        if (c->in_multi)
            c->multi_err = true;
        return;
    }
    if (c->monitor && (d->cats & (SRV_ACL_CAT_READ | SRV_ACL_CAT_WRITE))) {
        /* As Redis, which counts a monitor among its replicas. */
        cairn_resp_error(&c->out,
                         "ERR Replica can't interact with the keyspace");
        if (c->in_multi)
            c->multi_err = true;
        return;
    }
    if (c->in_multi && !(d->flags & CMD_NOMULTI)) {
        if (d->flags & CMD_NOTXN) {
            cairn_resp_error(&c->out, "ERR Command not allowed inside a "
                                      "transaction");
            c->multi_err = true;
            return;
        }
        if (!cmd_subcommand_ok(d, cmd->argc, cmd->argv, cmd->argl,
                               &c->out)) {
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
        s->cmd_ran = true; /* counted when EXEC runs it */
        return;
    }
    /* A write that gets here is queued above: client_process hands every
     * other one to a batch (batchable). */
    if (d->flags & CMD_OFFLOOP) {
        /* A walk over every key: on a committer, so the loop goes on. */
        job *j = calloc(1, sizeof *j);
        cmd_queued *q = j ? calloc(1, sizeof *q) : NULL;
        if (!q || cmd_queued_copy(q, d, cmd->argc, cmd->argv, cmd->argl)) {
            free(q);
            free(j);
            cmd_reply_engine_error(&c->out, CAIRN_ENOMEM);
            return;
        }
        j->kind = JOB_BATCH;
        j->cmds = q;
        j->ncmds = 1;
        j->now_ms = s->now_ms;
        cairn_resp_init(&j->out, c->proto);
        client_wait_job(c, j);
        submit(s, j);
        s->cmd_ran = true; /* counted when its job is back */
        if (s->nmon)
            monitor_feed(s, c, d, cmd->argc, cmd->argv, cmd->argl);
        return;
    }
    cmd_ctx x = {.srv = s, .db = s->db, .c = c, .proto = c->proto,
                 .argc = cmd->argc, .argv = cmd->argv, .argl = cmd->argl,
                 .out = &c->out, .now_ms = s->now_ms};
    size_t mark = c->out.len;
    if (d == s->exec_def && cmd->argl[0] == 4)
        memcpy(c->exec_word, cmd->argv[0], 4);
    d->fn(&x);
    /* Fed after it ran, as in Redis (a monitor's own command: its reply
     * first). A container's unknown subcommand or wrong argument count
     * is refused before running in Redis: not fed. An EXEC that started
     * its job is fed with its commands when the job is done. */
    if (s->nmon && !(c->busy && d == s->exec_def) &&
        !((d->flags & CMD_SUBCMDS) && reply_is_refusal(&c->out, mark)))
        monitor_feed(s, c, d, cmd->argc, cmd->argv, cmd->argl);
    /* One clock read per command: it ended now, and began when the one
     * before it ended (or the input pass began). */
    uint64_t t1 = now_us_mono();
    if (!(d->flags & CMD_NOSLOWLOG)) /* EXEC: its commands are logged */
        slowlog_add(s, c, cmd->argc, cmd->argv, cmd->argl,
                    t1 - s->cmd_start_us);
    s->cmd_ran = true;
    if (!(c->busy && d == s->exec_def)) /* EXEC's job: when it is back */
        stats_ran(s, d, cmd->argc, cmd->argv, cmd->argl,
                  c->closed || c->out.len < mark ? NULL : c->out.p + mark,
                  c->closed || c->out.len < mark ? 0 : c->out.len - mark,
                  t1 - s->cmd_start_us);
    s->cmd_start_us = t1;
}

/* Can cmd join a batch of pipelined writes? Plain write commands only,
 * outside MULTI, from an authenticated client, with a valid arity (anything
 * else runs on its own, with its errors, once the batch is back). */
static bool batchable(client *c, const cmd_def *d, const cairn_resp_cmd *cmd)
{
    if (c->in_multi || c->monitor || cmd->argc == 0 || !authed(c))
        return false;
    if (!d || !(d->flags & CMD_WRITE) || !cmd_arity_ok(d, cmd->argc) ||
        acl_denial(c, d, cmd->argc, cmd->argv, cmd->argl))
        return false;
    return true;
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
    client_wait_job(c, j);
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
    }
    job *j = c->batch;
    if (j->ncmds == j->capcmds) { /* grows: most batches hold one command */
        size_t n = j->capcmds ? j->capcmds * 4 : 1;
        if (n > BATCH_MAX_CMDS)
            n = BATCH_MAX_CMDS;
        cmd_queued *nc = realloc(j->cmds, n * sizeof *nc);
        if (!nc)
            return CAIRN_ENOMEM;
        j->cmds = nc;
        j->capcmds = n;
    }
    if (cmd_queued_copy(&j->cmds[j->ncmds], d, cmd->argc, cmd->argv, cmd->argl))
        return CAIRN_ENOMEM;
    j->ncmds++;
    for (size_t i = 0; i < cmd->argc; i++)
        c->batch_bytes += cmd->argl[i];
    c->ncmds++;
    c->last_cmd = d->name;
    return 0;
}

/* If buf starts with a complete multibulk "GET key", the key and the
 * command's length; 0 otherwise (anything else, or not all there yet). A
 * look at the bytes only: the parser still parses the command. */
static size_t peek_get(const uint8_t *p, size_t n, const uint8_t **key,
                       size_t *klen)
{
    if (n < 16 || memcmp(p, "*2\r\n$3\r\n", 8) != 0 ||
        (p[8] | 0x20) != 'g' || (p[9] | 0x20) != 'e' ||
        (p[10] | 0x20) != 't' || memcmp(p + 11, "\r\n$", 3) != 0)
        return 0;
    size_t i = 14, len = 0;
    for (; i < n && i < 24 && p[i] >= '0' && p[i] <= '9'; i++)
        len = len * 10 + (size_t)(p[i] - '0');
    if (i == 14 || i + 2 > n || p[i] != '\r' || p[i + 1] != '\n')
        return 0;
    i += 2;
    if (len > n - i || n - i - len < 2 || p[i + len] != '\r' ||
        p[i + len + 1] != '\n')
        return 0;
    *key = p + i;
    *klen = len;
    return i + len + 2;
}

/* A pipeline of GETs at the start of what the client sent (nothing of its
 * own before them in flight: it is not busy): their records are read
 * together (ks_read_ahead, cairn_get_many), so that the reads' memory
 * loads overlap instead of each read waiting for its own; each GET then
 * takes its record when it runs (one GET alone reads for itself: nothing
 * to overlap). */
static void read_ahead_gets(client *c)
{
    const uint8_t *keys[KS_AHEAD_MAX];
    size_t lens[KS_AHEAD_MAX], n = 0, off = 0, used;
    while (n < KS_AHEAD_MAX &&
           (used = peek_get(c->in + off, c->inlen - off, &keys[n],
                            &lens[n])) > 0) {
        off += used;
        n++;
    }
    if (n < 2)
        return;
    ks_read_ahead(c->s->db, keys, lens, n);
}

static void client_pass(client *c)
{
    if (c->inlen > 0) { /* (a pass after a reply often has nothing) */
        c->s->now_ms = ks_now_ms(); /* one clock read per pass, not per
                                       command */
        c->s->cmd_start_us = now_us_mono();
    }
    if (!c->busy && authed(c) && !c->in_multi)
        read_ahead_gets(c);
    size_t off = 0;
    c->paused = false;
    while (!c->busy && !c->close_after && !c->closed && off < c->inlen) {
        if (c->out.len + c->out_pending >= OUT_PAUSE) {
            /* Big replies not yet written: go on once the socket has taken
             * most of them (on_write), so one client's pipeline of large
             * reads cannot hold the loop or pile up memory. */
            c->paused = true;
            break;
        }
        cairn_resp_cmd cmd;
        size_t used = 0;
        char err[256];
        int rc = cairn_resp_parse(c->parser, c->in + off, c->inlen - off, &cmd,
                                  &used, err, sizeof err);
        if (rc == 0)
            break;
        if (rc == 1 && cmd.argc > 0 &&
            ((cmd.argl[0] == 4 && !strncasecmp((const char *)cmd.argv[0],
                                               "post", 4)) ||
             (cmd.argl[0] == 5 && !strncasecmp((const char *)cmd.argv[0],
                                               "host:", 5)))) {
            /* An HTTP request (a browser made to talk to us): close at once,
             * running nothing, as Redis does. */
            srv_log("warning", "client %" PRIu64 " (%s) sent an HTTP request "
                               "(possible cross-protocol attack); closing it",
                    c->id, c->addr);
            c->s->st_proto_errors++;
            client_close(c);
            return;
        }
        const cmd_def *d = rc == 1 && cmd.argc ? client_lookup(c, &cmd) : NULL;
        if (rc == 1) {
            if (batchable(c, d, &cmd)) {
                if (batch_add(c, d, &cmd) != 0) {
                    srv_log("warning", "client %" PRIu64 " dropped: out of "
                                       "memory", c->id);
                    client_close(c);
                    return;
                }
                if (c->s->nmon)
                    monitor_feed(c->s, c, d, cmd.argc, cmd.argv, cmd.argl);
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
        if (rc < 0 && c->batch) {
            /* The writes before the bad bytes answer first; the error
             * (sticky in the parser) comes when they are back. */
            batch_submit(c);
            break;
        }
        if (rc < 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "ERR %s", err);
            cairn_resp_error(&c->out, msg);
            c->s->st_proto_errors++;
            if (c->s->stats)
                srv_stats_error(c->s->stats, (const uint8_t *)"-ERR ", 5);
            srv_log("info", "client %" PRIu64 " (%s): %s; closing it", c->id,
                    c->addr, err);
            c->close_after = true;
            off = c->inlen;
            break;
        }
        size_t mark = c->out.len;
        client_command(c, d, &cmd);
        if (!c->s->cmd_ran && cmd.argc > 0)
            stats_refused(c->s, c, d, cmd.argc, cmd.argv, cmd.argl, mark);
        off += used;
        if (c->out.len + c->out_pending > c->s->cfg.max_output) {
            /* Checked per reply: a few bytes of requests must not make
             * gigabytes of replies before the limit is looked at. */
            srv_log("warning",
                    "client %" PRIu64 " (%s) dropped: %zu bytes of replies "
                    "unread (client-output-buffer-limit %zu)",
                    c->id, c->addr, c->out.len + c->out_pending,
                    c->s->cfg.max_output);
            c->s->st_dropped++;
            client_close(c);
            return;
        }
    }
    if (c->batch && !c->closed)
        batch_submit(c);
    /* The peer has finished sending: once everything it sent is answered
     * (an incomplete request never will be), close. */
    if (c->eof && !c->busy && !c->closed)
        c->close_after = true;
    if (off > 0 && !c->closed) {
        memmove(c->in, c->in + off, c->inlen - off);
        c->inlen -= off;
    }
    client_flush(c);
}

/* Run what the client sent, as far as it can go now. */
static void client_process(client *c)
{
    if (c->closed)
        return;
    ks_pass_begin();
    /* A pass paused for replies the socket then took whole (direct_write)
     * leaves no write whose completion (on_write) would resume it: go on
     * here. Each pass consumes input, so this ends. */
    do
        client_pass(c);
    while (c->paused && !c->closed && !c->busy && c->out_pending == 0 &&
           c->out.len == 0);
    ks_pass_end();
}

/* Room for n more bytes of input: 0, or CAIRN_ENOMEM. */
static int client_in_reserve(client *c, size_t n)
{
    if (c->incap - c->inlen >= n)
        return 0;
    size_t cap = c->incap ? c->incap : 16384;
    while (cap - c->inlen < n)
        cap *= 2;
    uint8_t *p = realloc(c->in, cap);
    if (!p)
        return CAIRN_ENOMEM;
    c->in = p;
    c->incap = cap;
    return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client *c = h->data;
    (void)suggested;
    if (c->tls) { /* ciphertext: decrypted into c->in by on_read */
        *buf = uv_buf_init((char *)c->s->tls_rbuf, sizeof c->s->tls_rbuf);
        return;
    }
    if (client_in_reserve(c, 16384) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->in + c->inlen,
                       (unsigned)(c->incap - c->inlen > (1u << 30)
                                      ? (1u << 30)
                                      : c->incap - c->inlen));
}

/* Plaintext from a TLS client: append to its input. */
static int tls_plain(void *arg, const uint8_t *p, size_t n)
{
    client *c = arg;
    if (client_in_reserve(c, n) != 0)
        return CAIRN_ENOMEM;
    memcpy(c->in + c->inlen, p, n);
    c->inlen += n;
    c->s->st_net_in += n;
    return 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    client *c = st->data;
    if (nread == UV_EOF && !c->tls) {
        /* Half-closed: answer what it sent, then close. */
        uv_read_stop(st);
        c->eof = true;
        client_process(c);
        return;
    }
    if (nread < 0) {
        client_close(c); /* a reset, an error, or EOF under TLS */
        return;
    }
    if (nread == 0)
        return;
    if (c->tls) {
        int rc = srv_tls_feed(c->tls, (const uint8_t *)buf->base,
                              (size_t)nread, tls_plain, c);
        if (rc != 0) {
            if (rc != CAIRN_ECLOSED) {
                c->s->st_tls_errors++;
                srv_log("info", "client %" PRIu64 " (%s): TLS: %s; closing it",
                        c->id, c->addr, srv_tls_error(c->tls));
            }
            c->close_after = true;
            client_flush(c); /* an alert may be waiting */
            if (!c->closed && !c->busy && c->out_pending == 0)
                client_close(c);
            return;
        }
        if (srv_tls_pending(c->tls))
            client_flush(c); /* handshake records */
        if (c->closed)
            return;
    } else {
        c->inlen += (size_t)nread;
        c->s->st_net_in += (uint64_t)nread;
    }
    c->s->st_reads++;
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

/* A new client joins the server: its id, the default user, the list. */
static void client_register(server *s, client *c)
{
    c->id = ++s->next_id;
    c->created_ms = c->last_ms = mono_ms();
    srv_client_login_default(c);
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    s->nclients++;
    s->st_conns++;
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
    bool tls = l == (uv_stream_t *)&s->tls_listener;
    if (tls)
        c->tls = srv_tls_conn_new(s->tls_ctx);
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0 || !c->parser ||
        (tls && !c->tls)) {
        c->closed = true;
        uv_close((uv_handle_t *)&c->tcp, on_client_closed);
        return;
    }
    client_register(s, c);
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
    s->st_tls_conns += tls;
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->nclients > s->cfg.max_clients || s->shutting_down) {
        s->st_rejected++;
        if (tls) { /* no session to say it in */
            client_close(c);
            return;
        }
        cairn_resp_error(&c->out, "ERR max number of clients reached");
        c->close_after = true;
        client_flush(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---------- completions, timer, signals ---------- */

/* EXEC's job is done: its commands, as they ran, then EXEC itself, to the
 * monitors (Redis feeds each queued command when EXEC runs it, EXEC last).
 * A transaction a watched key aborted ran none; one refused by the rules
 * since they were queued (NOPERM) did not run. */
static void monitor_feed_exec(server *s, client *c, const job *j)
{
    bool aborted = (j->out.len == 5 && !memcmp(j->out.p, "*-1\r\n", 5)) ||
                   (j->out.len == 3 && !memcmp(j->out.p, "_\r\n", 3));
    for (size_t i = 0; !aborted && i < j->ncmds; i++) {
        const cmd_queued *q = &j->cmds[i];
        if (!q->denied)
            monitor_feed(s, c, q->def, q->argc, q->argv, q->argl);
    }
    const uint8_t *argv[1] = {(const uint8_t *)c->exec_word};
    size_t argl[1] = {4};
    if (s->exec_def)
        monitor_feed(s, c, s->exec_def, 1, argv, argl);
}

/* EXEC's job is back: run its queued commands that belong to the loop
 * (cmd_queued_on_loop), in order, each reply put where the job left its
 * place, so that j->out holds EXEC's whole reply. They run after the
 * transaction committed (they touch no key). A watched key's nil, or an
 * error in place of the array, is left as it is. */
static void exec_loop_commands(server *s, client *c, job *j)
{
    size_t nloop = 0;
    for (size_t i = 0; i < j->ncmds; i++)
        nloop += !j->cmds[i].denied && cmd_queued_on_loop(&j->cmds[i]);
    /* The array's header says ncmds; the job wrote the values of the
     * others only (so the array is short of nloop values). */
    const uint8_t *p = j->out.p;
    size_t len = j->out.oom ? 0 : j->out.len;
    const uint8_t *nl = nloop && len > 2 && p[0] == '*' && p[1] != '-'
                            ? memchr(p, '\n', len)
                            : NULL;
    if (!nl)
        return;
    cairn_resp_buf out;
    cairn_resp_init(&out, j->out.proto);
    size_t off = (size_t)(nl - p) + 1;
    cairn_resp_raw(&out, p, off);
    for (size_t i = 0; i < j->ncmds; i++) {
        const cmd_queued *q = &j->cmds[i];
        if (!q->denied && cmd_queued_on_loop(q)) {
            cmd_ctx x = {.srv = s, .db = s->db, .c = c, .proto = c->proto,
                         .argc = q->argc, .argv = q->argv, .argl = q->argl,
                         .out = &out, .now_ms = s->now_ms};
            out.proto = c->proto; /* HELLO may have changed it */
            q->def->fn(&x);
            continue;
        }
        size_t l = off < len ? cairn_resp_value_len(p + off, len - off) : 0;
        if (l == 0)
            break; /* cannot happen: the job wrote one reply each */
        cairn_resp_raw(&out, p + off, l);
        off += l;
    }
    if (out.oom) {
        cairn_resp_free(&out);
        cairn_resp_reset(&j->out);
        cmd_reply_engine_error(&j->out, CAIRN_ENOMEM);
        return;
    }
    cairn_resp_free(&j->out);
    j->out = out;
}

/* Take the finished jobs back (loop thread, or a session's caller). */
static void done_drain(server *s)
{
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
            s->st_expired += j->count_keys; /* keys the sweep deleted */
        } else if (j->kind == JOB_COUNT) {
            s->count_inflight = false;
            if (j->count_rc == 0) {
                s->ks_keys = j->count_keys;
                s->ks_expires = j->count_expires;
                s->ks_avg_ttl = j->count_avg_ttl;
                s->ks_counted_ms = mono_ms();
                s->ks_valid = true;
            }
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
            /* Even for a client gone meanwhile: its transaction's key
             * commands committed, so its other commands run too (EXEC is
             * all or nothing); their replies go nowhere. */
            if (j->kind == JOB_EXEC)
                exec_loop_commands(s, c, j);
            if (j->ncmds || j->kind == JOB_EXEC) {
                /* A job's time, from its submission until its commit was
                 * durable, is each of its commands' (their replies waited
                 * for that commit). */
                uint64_t us = now_us_mono() - c->job_start_us;
                if (!c->closed)
                    for (size_t i = 0; i < j->ncmds; i++)
                        slowlog_add(s, c, j->cmds[i].argc, j->cmds[i].argv,
                                    j->cmds[i].argl, us);
                stats_job(s, j, us);
            }
            if (!c->closed && j->out.len)
                cairn_resp_raw(&c->out, j->out.p, j->out.len);
            if (j->kind == JOB_EXEC && s->nmon)
                monitor_feed_exec(s, c, j);
            if (!c->closed)
                client_process(c);
            client_unref(c);
        }
        job_free(j);
        j = next;
    }
}

static void on_done(uv_async_t *a)
{
    done_drain(a->data);
}

static void close_handles(server *s)
{
    if (s->closing_all)
        return;
    s->closing_all = true;
    while (s->clients)
        client_close(s->clients);
    if (s->tls_listening) {
        uv_close((uv_handle_t *)&s->tls_listener, NULL);
        s->tls_listening = false;
    }
    srv_metrics_stop(s->metrics);
    s->metrics = NULL;
    uv_close((uv_handle_t *)&s->timer, NULL);
    uv_close((uv_handle_t *)&s->mon_check, NULL);
    /* Commits finishing from now on find the handle gone (job_done). */
    pthread_mutex_lock(&s->d_mu);
    s->done_closed = true;
    pthread_mutex_unlock(&s->d_mu);
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
        if (s->tls_listening) {
            uv_close((uv_handle_t *)&s->tls_listener, NULL);
            s->tls_listening = false;
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
    if (s->tick % 10 == 0)
        stats_tick(s);
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
    if (s->tls_listening && s->tick % 100 == 0) {
        /* A TLS client gets 10 s to finish its handshake. */
        uint64_t m = mono_ms();
        for (client *c = s->clients, *next; c; c = next) {
            next = c->next;
            if (c->tls && !srv_tls_handshake_done(c->tls) &&
                m - c->created_ms > 10000) {
                srv_log("info", "client %" PRIu64 " (%s): no TLS handshake "
                                "within 10 s; closing it", c->id, c->addr);
                client_close(c);
            }
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

/* ---------- SCAN cursors ---------- */

/* The newest SCAN_CURSORS stopping places are kept (the least recently
 * used goes); an id is SCAN_CURSOR_KEPT (bit 52), a sequence number (bits
 * 18-51, never 0) that makes it unique, the key's length up to 2 (bits
 * 16-17) and its first 2 bytes (bits 0-15): a cursor no longer kept still
 * says where to go on from, roughly (SCAN may return a key twice, never
 * skip one). */
uint64_t scan_cursor_head(const uint8_t *key, size_t klen)
{
    uint64_t head = (uint64_t)(klen < 2 ? klen : 2) << 16;
    for (size_t i = 0; i < 2 && i < klen; i++)
        head |= (uint64_t)key[i] << (8 * (1 - i));
    return head;
}

uint64_t srv_scan_save(server *s, const uint8_t *key, size_t klen,
                       uint64_t from)
{
    uint8_t *copy = malloc(klen ? klen : 1);
    if (!copy)
        return 0;
    memcpy(copy, key, klen);
    uint64_t head = scan_cursor_head(key, klen);
    pthread_mutex_lock(&s->scan_mu);
    if (!s->scans)
        s->scans = calloc(SCAN_CURSORS, sizeof *s->scans);
    if (!s->scans) {
        pthread_mutex_unlock(&s->scan_mu);
        free(copy);
        return 0;
    }
    /* A scan holds one place: a call that went on from a kept cursor
     * takes that cursor's place. Else a free place, else the least
     * recently used of those that began a scan, and only if there are
     * none the least recently used of all: scans begun and dropped (SCAN 0
     * once, many times over) do not push out one that is going on, which
     * would then start again from its key's first bytes, every time. */
    scan_cursor *e = NULL;
    for (size_t i = 0; from && i < SCAN_CURSORS && !e; i++)
        if (s->scans[i].key && s->scans[i].id == from)
            e = &s->scans[i];
    for (int pass = 0; pass < 2 && !e; pass++)
        for (size_t i = 0; i < SCAN_CURSORS; i++) {
            scan_cursor *q = &s->scans[i];
            if (!q->key) {
                e = q;
                break;
            }
            if ((pass == 1 || !q->going_on) && (!e || q->used < e->used))
                e = q;
        }
    free(e->key);
    e->going_on = from != 0;
    uint64_t seq = ++s->scan_seq & ((1ULL << 34) - 1);
    if (seq == 0) /* 0 is the id of a cursor kept nowhere (c_scan) */
        seq = ++s->scan_seq & ((1ULL << 34) - 1);
    e->id = SCAN_CURSOR_KEPT | seq << 18 | head;
    e->key = copy;
    e->klen = klen;
    e->used = ++s->scan_clock;
    uint64_t id = e->id;
    pthread_mutex_unlock(&s->scan_mu);
    return id;
}

bool srv_scan_load(server *s, uint64_t id, uint8_t **key, size_t *klen)
{
    bool found = false;
    pthread_mutex_lock(&s->scan_mu);
    for (size_t i = 0; s->scans && i < SCAN_CURSORS && !found; i++) {
        scan_cursor *e = &s->scans[i];
        if (e->key && e->id == id) {
            *key = malloc(e->klen ? e->klen : 1);
            if (*key) {
                memcpy(*key, e->key, e->klen);
                *klen = e->klen;
                e->used = ++s->scan_clock;
                found = true;
            }
            break;
        }
    }
    pthread_mutex_unlock(&s->scan_mu);
    return found;
}

static void scan_cursors_free(server *s)
{
    for (size_t i = 0; s->scans && i < SCAN_CURSORS; i++)
        free(s->scans[i].key);
    free(s->scans);
    s->scans = NULL;
}

/* ---------- INFO ---------- */

/* INFO's sections, in the order they are written; `dflt`: in INFO with
 * no argument (and "default"). "all" and "everything" take every one. */
enum {
    SEC_SERVER, SEC_CLIENTS, SEC_MEMORY, SEC_PERSISTENCE, SEC_STATS,
    SEC_REPLICATION, SEC_CPU, SEC_MODULES, SEC_COMMANDSTATS, SEC_ERRORSTATS,
    SEC_LATENCYSTATS, SEC_CLUSTER, SEC_CAIRN, SEC_TIERS, SEC_KEYSPACE, SEC_N
};
static const struct {
    const char *name;
    bool dflt;
} SECTIONS[SEC_N] = {
    {"server", true},        {"clients", true},       {"memory", true},
    {"persistence", true},   {"stats", true},         {"replication", true},
    {"cpu", true},           {"modules", true},       {"commandstats", false},
    {"errorstats", true},    {"latencystats", false}, {"cluster", true},
    {"cairn", true},         {"tiers", true},         {"keyspace", true},
};

/* Which sections INFO's arguments name (case-insensitively; unknown names
 * add nothing, as in Redis). */
static void info_sections(size_t argc, const uint8_t *const *argv,
                          const size_t *argl, bool on[SEC_N])
{
    for (int i = 0; i < SEC_N; i++)
        on[i] = argc == 0 && SECTIONS[i].dflt;
    for (size_t a = 0; a < argc; a++) {
        bool all = arg_eq(argv[a], argl[a], "all") ||
                   arg_eq(argv[a], argl[a], "everything");
        bool dflt = arg_eq(argv[a], argl[a], "default");
        for (int i = 0; i < SEC_N; i++)
            if (all || (dflt && SECTIONS[i].dflt) ||
                arg_eq(argv[a], argl[a], SECTIONS[i].name))
                on[i] = true;
    }
}

/* A section's title line; a blank line between sections, as Redis. */
static void section(FILE *f, bool *first, const char *title)
{
    fprintf(f, "%s# %s\r\n", *first ? "" : "\r\n", title);
    *first = false;
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

/* The bytes malloc has handed out and not had back (INFO used_memory);
 * the resident size where the allocator does not say (a sanitizer's). */
static uint64_t used_memory(void)
{
    struct mallinfo2 mi = mallinfo2();
    uint64_t used = (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
    return used ? used : rss_bytes();
}

/* Bytes as Redis's INFO writes them for people: 512B, 1.50K, 2.25M... */
static const char *human_bytes(uint64_t n, char *buf, size_t cap)
{
    static const char units[] = "KMGTP";
    if (n < 1024) {
        snprintf(buf, cap, "%" PRIu64 "B", n);
        return buf;
    }
    double v = (double)n / 1024.0;
    int u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, cap, "%.2f%c", v, units[u]);
    return buf;
}

static double timeval_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* 40 random hex digits (run_id, master_replid). */
static void random_hex40(char out[41])
{
    uint8_t r[20];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof r) { /* no entropy source: time and pid will do */
        uint64_t x = now_us_mono() ^ ((uint64_t)getpid() << 32);
        for (size_t i = got; i < sizeof r; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            r[i] = (uint8_t)(x >> 56);
        }
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
}

void srv_note_lookup(server *s, bool hit)
{
    atomic_fetch_add_explicit(hit ? &s->st_hits : &s->st_misses, 1,
                              memory_order_relaxed);
}

void srv_note_save(server *s, uint64_t usec, bool failed)
{
    atomic_fetch_add(&s->st_saves, 1);
    atomic_store(&s->st_save_last_us, usec + 1); /* 0: never saved */
    atomic_store(&s->st_save_failed, failed ? 1 : 0);
}

void srv_reset_stats(server *s)
{
    s->st_conns = s->st_rejected = s->st_cmds = s->st_proto_errors = 0;
    s->st_dropped = s->st_noperm = s->st_tls_errors = 0;
    s->st_net_in = s->st_net_out = s->st_reads = s->st_writes = 0;
    s->st_expired = 0;
    atomic_store(&s->st_hits, 0);
    atomic_store(&s->st_misses, 0);
    s->mem_peak = used_memory();
    if (s->stats)
        srv_stats_reset(s->stats, mono_ms());
}

/* Sample the counters behind INFO's instantaneous rates (every 100 ms)
 * and, every 10 s, the memory peak (malloc's count walks its free lists:
 * up to a millisecond on a large heap; INFO and MEMORY take it too). */
static void stats_tick(server *s)
{
    if (s->stats) {
        uint64_t v[SRV_RATE_N] = {[SRV_RATE_OPS] = s->st_cmds,
                                  [SRV_RATE_NET_IN] = s->st_net_in,
                                  [SRV_RATE_NET_OUT] = s->st_net_out};
        srv_stats_sample(s->stats, mono_ms(), v);
    }
    if (s->tick % 1000 == 0) {
        uint64_t m = used_memory();
        if (m > s->mem_peak)
            s->mem_peak = m;
    }
}

/* What MEMORY STATS and DOCTOR tell: malloc's count and its peak, the
 * resident size, the clients' buffers, the memtables and caches. */
typedef struct mem_facts {
    uint64_t used, peak, rss, clients, memtables, row_cache, row_cap,
        block_cache, block_cap, keys;
    bool keys_known;
} mem_facts;

static void mem_facts_get(server *s, const cairn_stats *st, mem_facts *m)
{
    memset(m, 0, sizeof *m);
    m->used = used_memory();
    if (m->used > s->mem_peak)
        s->mem_peak = m->used;
    m->peak = s->mem_peak;
    m->rss = rss_bytes();
    for (client *c = s->clients; c; c = c->next)
        m->clients += c->incap + c->out.cap + c->out_pending;
    m->memtables = st->memtable_bytes;
    m->row_cache = st->row_cache_bytes;
    m->row_cap = st->row_cache_capacity;
    m->block_cache = st->block_cache_bytes;
    m->block_cap = st->block_cache_capacity;
    m->keys_known = s->ks_valid;
    m->keys = s->ks_keys;
}

void srv_memory_stats(server *s, cairn_resp_buf *out)
{
    cairn_stats st;
    cairn_get_stats(s->db, &st);
    mem_facts m;
    mem_facts_get(s, &st, &m);
    /* The data Cairn holds in memory: memtables and caches. */
    uint64_t data = m.memtables + m.row_cache + m.block_cache;
    struct {
        const char *name;
        double v;
        bool real;
    } f[] = {
        {"peak.allocated", (double)m.peak, false},
        {"total.allocated", (double)m.used, false},
        {"clients.normal", (double)m.clients, false},
        {"keys.count", (double)m.keys, false},
        {"keys.bytes-per-key",
         m.keys ? (double)data / (double)m.keys : 0.0, false},
        {"dataset.bytes", (double)data, false},
        {"dataset.percentage",
         m.used ? 100.0 * (double)data / (double)m.used : 0.0, true},
        {"peak.percentage",
         m.peak ? 100.0 * (double)m.used / (double)m.peak : 0.0, true},
        {"fragmentation", m.used ? (double)m.rss / (double)m.used : 0.0, true},
        {"fragmentation.bytes", (double)m.rss - (double)m.used, false},
        {"cairn.memtables.bytes", (double)m.memtables, false},
        {"cairn.row-cache.bytes", (double)m.row_cache, false},
        {"cairn.row-cache.capacity", (double)m.row_cap, false},
        {"cairn.block-cache.bytes", (double)m.block_cache, false},
        {"cairn.block-cache.capacity", (double)m.block_cap, false},
    };
    size_t n = sizeof f / sizeof f[0];
    if (out->proto == 3)
        cairn_resp_map(out, n);
    else
        cairn_resp_array(out, 2 * n);
    for (size_t i = 0; i < n; i++) {
        cairn_resp_bulk_cstr(out, f[i].name);
        if (f[i].real)
            cairn_resp_dbl(out, f[i].v);
        else
            cairn_resp_integer(out, (int64_t)f[i].v);
    }
}

void srv_memory_doctor(server *s, cairn_resp_buf *out)
{
    cairn_stats st;
    cairn_get_stats(s->db, &st);
    mem_facts m;
    mem_facts_get(s, &st, &m);
    char h[6][32];
    cmd_text *t = cmd_text_begin(out);
    if (!t)
        return;
    FILE *f = t->f;
    fprintf(f, "Allocated %s (peak %s), resident %s. Memtables hold %s; the "
               "row cache %s and the block cache %s, within their budgets; "
               "the rest of the data is in sorted files on disk.",
            human_bytes(m.used, h[0], sizeof h[0]),
            human_bytes(m.peak, h[1], sizeof h[1]),
            human_bytes(m.rss, h[2], sizeof h[2]),
            human_bytes(m.memtables, h[3], sizeof h[3]),
            human_bytes(m.row_cache, h[4], sizeof h[4]),
            human_bytes(m.block_cache, h[5], sizeof h[5]));
    bool issue = false;
    if (m.used > (64u << 20) && m.rss > m.used + m.used / 2) {
        fprintf(f, " High fragmentation: the resident size is %.2f times "
                   "what is allocated (MEMORY PURGE returns free pages).",
                (double)m.rss / (double)m.used);
        issue = true;
    }
    if (m.peak > (64u << 20) && m.used < m.peak / 2) {
        fprintf(f, " The peak was over twice what is allocated now.");
        issue = true;
    }
    if (m.clients > (32u << 20)) {
        fprintf(f, " Client buffers take %s (big replies or requests "
                   "waiting).",
                human_bytes(m.clients, h[0], sizeof h[0]));
        issue = true;
    }
    if (!issue)
        fprintf(f, " No memory problem found.");
    cmd_text_end(t);
}

void srv_info(server *s, size_t argc, const uint8_t *const *argv,
              const size_t *argl, cairn_resp_buf *out)
{
    bool on[SEC_N];
    info_sections(argc, argv, argl, on);
    cmd_text *t = cmd_text_begin(out);
    if (!t)
        return;
    FILE *f = t->f;
    bool first = true;
    char h1[32], h2[32];
    uint64_t up_s = (mono_ms() - s->start_ms) / 1000;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (on[SEC_SERVER]) {
        struct utsname un;
        if (uname(&un) != 0)
            memset(&un, 0, sizeof un);
        char exe[512];
        ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[el > 0 ? el : 0] = '\0';
        section(f, &first, "Server");
        fprintf(f, "redis_version:7.0.0\r\ncairn_version:%s\r\n"
                   "redis_git_sha1:00000000\r\nredis_git_dirty:0\r\n"
                   "redis_build_id:0\r\nredis_mode:standalone\r\n"
                   "os:%s %s %s\r\narch_bits:%d\r\n"
                   "monotonic_clock:POSIX clock_gettime\r\n"
                   "multiplexing_api:%s\r\natomicvar_api:c11-builtin\r\n"
                   "gcc_version:%d.%d.%d\r\nprocess_id:%d\r\n"
                   "process_supervised:no\r\nrun_id:%s\r\ntcp_port:%d\r\n"
                   "server_time_usec:%lld\r\nuptime_in_seconds:%" PRIu64
                   "\r\nuptime_in_days:%" PRIu64 "\r\nhz:100\r\n"
                   "configured_hz:100\r\nlru_clock:%lld\r\n"
                   "executable:%s\r\nconfig_file:%s\r\n"
                   "io_threads_active:0\r\n",
                CAIRN_VERSION_STRING, un.sysname, un.release, un.machine,
                (int)(sizeof(void *) * 8),
                s->session ? "none" : "epoll", /* libuv's on Linux */
#if defined(__GNUC__)
                __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__,
#else
                0, 0, 0,
#endif
                (int)getpid(), s->run_id, s->cfg.port,
                (long long)now.tv_sec * 1000000LL + now.tv_nsec / 1000,
                up_s, up_s / 86400,
                (long long)(now.tv_sec & ((1 << 24) - 1)), exe,
                s->cfg.config_file ? s->cfg.config_file : "");
    }
    if (on[SEC_CLIENTS]) {
        size_t max_in = 0, max_out = 0;
        for (client *c = s->clients; c; c = c->next) {
            if (c->inlen > max_in)
                max_in = c->inlen;
            if (c->out.len + c->out_pending > max_out)
                max_out = c->out.len + c->out_pending;
        }
        section(f, &first, "Clients");
        fprintf(f, "connected_clients:%zu\r\ncluster_connections:0\r\n"
                   "maxclients:%zu\r\nclient_recent_max_input_buffer:%zu\r\n"
                   "client_recent_max_output_buffer:%zu\r\n"
                   "blocked_clients:0\r\ntracking_clients:0\r\n"
                   "clients_in_timeout_table:0\r\n",
                s->nclients, s->cfg.max_clients, max_in, max_out);
    }
    cairn_stats st;
    cairn_get_stats(s->db, &st);
    if (on[SEC_MEMORY]) {
        mem_facts m;
        mem_facts_get(s, &st, &m);
        uint64_t used = m.used, rss = m.rss, clients = m.clients;
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        uint64_t total = pages > 0 && psize > 0
                             ? (uint64_t)pages * (uint64_t)psize
                             : 0;
        char h3[32], h4[32];
        section(f, &first, "Memory");
        fprintf(f, "used_memory:%" PRIu64 "\r\nused_memory_human:%s\r\n"
                   "used_memory_rss:%" PRIu64 "\r\n"
                   "used_memory_rss_human:%s\r\n"
                   "used_memory_peak:%" PRIu64 "\r\n"
                   "used_memory_peak_human:%s\r\n"
                   "used_memory_peak_perc:%.2f%%\r\n"
                   "total_system_memory:%" PRIu64 "\r\n"
                   "total_system_memory_human:%s\r\n"
                   "maxmemory:0\r\nmaxmemory_human:0B\r\n"
                   "maxmemory_policy:noeviction\r\n"
                   "mem_fragmentation_ratio:%.2f\r\n"
                   "mem_fragmentation_bytes:%" PRId64 "\r\n"
                   "mem_clients_normal:%" PRIu64 "\r\n"
                   "mem_allocator:libc\r\n",
                used, human_bytes(used, h1, sizeof h1), rss,
                human_bytes(rss, h2, sizeof h2), s->mem_peak,
                human_bytes(s->mem_peak, h3, sizeof h3),
                s->mem_peak ? 100.0 * (double)used / (double)s->mem_peak : 0,
                total, human_bytes(total, h4, sizeof h4),
                used ? (double)rss / (double)used : 0.0,
                (int64_t)rss - (int64_t)used, clients);
        fprintf(f, "memtable_bytes:%" PRIu64 "\r\nblock_cache_bytes:%" PRIu64
                   "\r\nblock_cache_capacity:%" PRIu64
                   "\r\nrow_cache_bytes:%" PRIu64
                   "\r\nrow_cache_capacity:%" PRIu64 "\r\n",
                st.memtable_bytes, st.block_cache_bytes,
                st.block_cache_capacity, st.row_cache_bytes,
                st.row_cache_capacity);
    }
    if (on[SEC_PERSISTENCE]) {
        /* Every acknowledged write is in the log (on disk once its commit
         * returned, under sync always): nothing waits for a save, and
         * LASTSAVE says now. SAVE / BGSAVE write the memtables to sorted
         * files (a checkpoint); the log is the AOF. */
        uint64_t save_us = atomic_load(&s->st_save_last_us);
        section(f, &first, "Persistence");
        fprintf(f, "loading:0\r\nasync_loading:0\r\n"
                   "rdb_changes_since_last_save:0\r\n"
                   "rdb_bgsave_in_progress:0\r\n"
                   "rdb_last_save_time:%lld\r\n"
                   "rdb_last_bgsave_status:%s\r\n"
                   "rdb_last_bgsave_time_sec:%lld\r\n"
                   "rdb_current_bgsave_time_sec:-1\r\n"
                   "rdb_saves:%" PRIu64 "\r\naof_enabled:1\r\n"
                   "aof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\n"
                   "aof_last_rewrite_time_sec:-1\r\n"
                   "aof_current_rewrite_time_sec:-1\r\n"
                   "aof_last_bgrewrite_status:ok\r\naof_rewrites:0\r\n"
                   "aof_last_write_status:%s\r\n",
                (long long)now.tv_sec,
                atomic_load(&s->st_save_failed) ? "err" : "ok",
                save_us ? (long long)((save_us - 1 + 500000) / 1000000) : -1LL,
                atomic_load(&s->st_saves), st.fatal_error ? "err" : "ok");
        fprintf(f, "sync_mode:%s\r\nwal_syncs:%" PRIu64 "\r\n"
                   "wal_sync_p50_us:%.1f\r\nwal_sync_p99_us:%.1f\r\n"
                   "recovered_commits:%" PRIu64 "\r\n",
                s->cfg.sync == CAIRN_SYNC_ALWAYS     ? "always"
                : s->cfg.sync == CAIRN_SYNC_INTERVAL ? "interval"
                                                     : "none",
                st.wal_syncs, (double)st.wal_sync_p50_ns / 1e3,
                (double)st.wal_sync_p99_ns / 1e3, st.recovered_commits);
    }
    if (on[SEC_STATS]) {
        section(f, &first, "Stats");
        fprintf(f, "total_connections_received:%" PRIu64 "\r\n"
                   "total_commands_processed:%" PRIu64 "\r\n"
                   "instantaneous_ops_per_sec:%.0f\r\n"
                   "total_net_input_bytes:%" PRIu64 "\r\n"
                   "total_net_output_bytes:%" PRIu64 "\r\n"
                   "instantaneous_input_kbps:%.2f\r\n"
                   "instantaneous_output_kbps:%.2f\r\n"
                   "rejected_connections:%" PRIu64 "\r\n"
                   "expired_keys:%" PRIu64 "\r\nevicted_keys:0\r\n"
                   "keyspace_hits:%" PRIu64 "\r\nkeyspace_misses:%" PRIu64
                   "\r\npubsub_channels:0\r\npubsub_patterns:0\r\n"
                   "total_error_replies:%" PRIu64 "\r\n"
                   "total_reads_processed:%" PRIu64 "\r\n"
                   "total_writes_processed:%" PRIu64 "\r\n",
                s->st_conns, s->st_cmds,
                s->stats ? srv_stats_rate(s->stats, SRV_RATE_OPS) : 0.0,
                s->st_net_in, s->st_net_out,
                s->stats ? srv_stats_rate(s->stats, SRV_RATE_NET_IN) / 1024
                         : 0.0,
                s->stats ? srv_stats_rate(s->stats, SRV_RATE_NET_OUT) / 1024
                         : 0.0,
                s->st_rejected, s->st_expired, atomic_load(&s->st_hits),
                atomic_load(&s->st_misses),
                s->stats ? srv_stats_error_total(s->stats) : 0, s->st_reads,
                s->st_writes);
        fprintf(f, "dropped_clients:%" PRIu64 "\r\n"
                   "protocol_errors:%" PRIu64 "\r\n"
                   "commits:%" PRIu64 "\r\nconflicts:%" PRIu64 "\r\n",
                s->st_dropped, s->st_proto_errors, st.commits, st.conflicts);
    }
    if (on[SEC_REPLICATION]) {
        section(f, &first, "Replication");
        fprintf(f, "role:master\r\nconnected_slaves:0\r\n"
                   "master_failover_state:no-failover\r\n"
                   "master_replid:%s\r\n"
                   "master_replid2:0000000000000000000000000000000000000000"
                   "\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\n"
                   "repl_backlog_active:0\r\nrepl_backlog_size:0\r\n"
                   "repl_backlog_first_byte_offset:0\r\n"
                   "repl_backlog_histlen:0\r\n",
                s->replid);
    }
    if (on[SEC_CPU]) {
        struct rusage self, children, thread;
        memset(&self, 0, sizeof self);
        memset(&children, 0, sizeof children);
        memset(&thread, 0, sizeof thread);
        getrusage(RUSAGE_SELF, &self);
        getrusage(RUSAGE_CHILDREN, &children);
        getrusage(RUSAGE_THREAD, &thread); /* the loop thread's */
        section(f, &first, "CPU");
        fprintf(f, "used_cpu_sys:%.6f\r\nused_cpu_user:%.6f\r\n"
                   "used_cpu_sys_children:%.6f\r\n"
                   "used_cpu_user_children:%.6f\r\n"
                   "used_cpu_sys_main_thread:%.6f\r\n"
                   "used_cpu_user_main_thread:%.6f\r\n",
                timeval_s(self.ru_stime), timeval_s(self.ru_utime),
                timeval_s(children.ru_stime), timeval_s(children.ru_utime),
                timeval_s(thread.ru_stime), timeval_s(thread.ru_utime));
    }
    if (on[SEC_MODULES])
        section(f, &first, "Modules");
    static const struct {
        int sec, which;
        const char *title;
    } per_cmd[] = {{SEC_COMMANDSTATS, SRV_STATS_COMMANDS, "Commandstats"},
                   {SEC_ERRORSTATS, SRV_STATS_ERRORS, "Errorstats"},
                   {SEC_LATENCYSTATS, SRV_STATS_LATENCY, "Latencystats"}};
    for (size_t i = 0; i < sizeof per_cmd / sizeof per_cmd[0]; i++) {
        if (!on[per_cmd[i].sec])
            continue;
        section(f, &first, per_cmd[i].title);
        if (s->stats)
            srv_stats_write(s->stats, per_cmd[i].which, f);
    }
    if (on[SEC_CLUSTER]) {
        section(f, &first, "Cluster");
        fprintf(f, "cluster_enabled:0\r\n");
    }
    if (on[SEC_CAIRN]) {
        section(f, &first, "Cairn");
        fprintf(f, "current_version:%" PRIu64 "\r\n"
                   "oldest_version:%" PRIu64 "\r\nflushes:%" PRIu64 "\r\n"
                   "compactions:%" PRIu64 "\r\n"
                   "compaction_read_bytes:%" PRIu64 "\r\n"
                   "compaction_write_bytes:%" PRIu64 "\r\n"
                   "sst_logical_bytes:%" PRIu64 "\r\n"
                   "sst_file_bytes:%" PRIu64 "\r\n"
                   "compression_ratio:%.2f\r\n"
                   "block_cache_hits:%" PRIu64 "\r\n"
                   "block_cache_misses:%" PRIu64 "\r\n"
                   "block_cache_evictions:%" PRIu64 "\r\n"
                   "row_cache_hits:%" PRIu64 "\r\n"
                   "row_cache_misses:%" PRIu64 "\r\n"
                   "row_cache_inserts:%" PRIu64 "\r\n"
                   "row_cache_not_admitted:%" PRIu64 "\r\n"
                   "row_cache_bypassed:%" PRIu64 "\r\n"
                   "row_cache_evictions:%" PRIu64 "\r\n"
                   "row_cache_invalidations:%" PRIu64 "\r\n"
                   "row_cache_entries:%" PRIu64 "\r\n"
                   "write_pressure:%d\r\nwrite_pressure_reason:%s\r\n"
                   "write_slowdowns:%" PRIu64 "\r\nwrite_stalls:%" PRIu64
                   "\r\nbackground_error:%d\r\n"
                   "keyspace_count_age_ms:%" PRId64 "\r\n",
                st.current_version, st.oldest_version, st.flushes,
                st.compactions, st.compact_read_bytes, st.compact_write_bytes,
                st.sst_logical_bytes, st.sst_file_bytes,
                st.sst_file_bytes
                    ? (double)st.sst_logical_bytes / (double)st.sst_file_bytes
                    : 0.0,
                st.block_cache_hits, st.block_cache_misses,
                st.block_cache_evictions, st.row_cache_hits,
                st.row_cache_misses, st.row_cache_inserts,
                st.row_cache_not_admitted, st.row_cache_bypassed,
                st.row_cache_evictions,
                st.row_cache_invalidations,
                st.row_cache_entries, st.write_pressure,
                st.write_pressure_reason ? st.write_pressure_reason : "",
                st.write_slowdowns, st.write_stalls, st.background_error,
                s->ks_valid ? (int64_t)(mono_ms() - s->ks_counted_ms) : -1);
        fprintf(f, "blob_logical_bytes:%" PRIu64 "\r\n"
                   "blob_stored_bytes:%" PRIu64 "\r\n"
                   "blob_file_bytes:%" PRIu64 "\r\n"
                   "blob_distinct:%" PRIu64 "\r\n"
                   "blob_dedup_hits:%" PRIu64 "\r\n"
                   "blob_files:%" PRIu64 "\r\n"
                   "blob_dead_bytes:%" PRIu64 "\r\n"
                   "blob_gc_runs:%" PRIu64 "\r\n"
                   "blob_gc_bytes_reclaimed:%" PRIu64 "\r\n"
                   "blob_missing:%" PRIu64 "\r\n",
                st.blob_logical_bytes, st.blob_stored_bytes,
                st.blob_file_bytes, st.blob_distinct, st.blob_dedup_hits,
                st.blob_files, st.blob_dead_bytes, st.blob_gc_runs,
                st.blob_gc_bytes_reclaimed, st.blob_missing);
        for (int l = 0; l < 8; l++)
            if (st.level_files[l])
                fprintf(f, "level%d:files=%" PRIu64 ",bytes=%" PRIu64 "\r\n",
                        l, st.level_files[l], st.level_bytes[l]);
    }
    if (on[SEC_TIERS]) {
        section(f, &first, "Tiers");
        fprintf(f, "archive_dir:%s\r\narchive_available:%d\r\n"
                   "archive_moves:%" PRIu64 "\r\narchive_recalls:%" PRIu64
                   "\r\narchive_bytes_in:%" PRIu64
                   "\r\narchive_bytes_out:%" PRIu64
                   "\r\narchive_error:%d\r\n",
                s->cfg.archive_dir ? s->cfg.archive_dir : "",
                st.archive_configured && st.archive_available ? 1 : 0,
                st.archive_moves, st.archive_recalls, st.archive_bytes_in,
                st.archive_bytes_out, st.archive_error);
        for (int k = 0; k < 2; k++)
            fprintf(f, "tier_%s:files=%" PRIu64 ",bytes=%" PRIu64
                       ",logical_bytes=%" PRIu64 ",compression_ratio=%.2f"
                       ",block_hits=%" PRIu64 ",block_misses=%" PRIu64
                       ",read_p50_us=%.1f,read_p99_us=%.1f\r\n",
                    k ? "archive" : "local", st.tier_files[k],
                    st.tier_bytes[k], st.tier_logical_bytes[k],
                    st.tier_bytes[k] ? (double)st.tier_logical_bytes[k] /
                                           (double)st.tier_bytes[k]
                                     : 0.0,
                    st.tier_block_hits[k], st.tier_block_misses[k],
                    (double)st.tier_read_p50_ns[k] / 1000.0,
                    (double)st.tier_read_p99_ns[k] / 1000.0);
        /* The memory tiers and the blob store: what they hold, hits and
         * misses, latency of what they serve. */
        fprintf(f, "tier_row_cache:bytes=%" PRIu64 ",capacity=%" PRIu64
                   ",entries=%" PRIu64 ",hits=%" PRIu64 ",misses=%" PRIu64
                   ",evictions=%" PRIu64
                   ",hit_p50_us=%.2f,hit_p99_us=%.2f\r\n",
                st.row_cache_bytes, st.row_cache_capacity,
                st.row_cache_entries, st.row_cache_hits, st.row_cache_misses,
                st.row_cache_evictions,
                (double)st.row_cache_hit_p50_ns / 1000.0,
                (double)st.row_cache_hit_p99_ns / 1000.0);
        fprintf(f, "tier_block_cache:bytes=%" PRIu64 ",capacity=%" PRIu64
                   ",hits=%" PRIu64 ",misses=%" PRIu64 ",evictions=%" PRIu64
                   ",hit_p50_us=%.2f,hit_p99_us=%.2f\r\n",
                st.block_cache_bytes, st.block_cache_capacity,
                st.block_cache_hits, st.block_cache_misses,
                st.block_cache_evictions,
                (double)st.block_cache_hit_p50_ns / 1000.0,
                (double)st.block_cache_hit_p99_ns / 1000.0);
        fprintf(f, "tier_blob:files=%" PRIu64 ",bytes=%" PRIu64
                   ",logical_bytes=%" PRIu64 ",distinct=%" PRIu64
                   ",dedup_hits=%" PRIu64 ",dedup_ratio=%.2f,dead_bytes=%"
                   PRIu64 ",reads=%" PRIu64
                   ",read_p50_us=%.1f,read_p99_us=%.1f\r\n",
                st.blob_files, st.blob_stored_bytes, st.blob_logical_bytes,
                st.blob_distinct, st.blob_dedup_hits,
                st.blob_stored_bytes ? (double)st.blob_logical_bytes /
                                           (double)st.blob_stored_bytes
                                     : 0.0,
                st.blob_dead_bytes, st.blob_reads,
                (double)st.blob_read_p50_ns / 1000.0,
                (double)st.blob_read_p99_ns / 1000.0);
    }
    if (on[SEC_KEYSPACE]) {
        /* Counting walks every key: a committer does it in the background
         * (again once the count is 5 s old), INFO shows the last count. */
        if (!s->count_inflight && !s->shutting_down &&
            (!s->ks_valid || mono_ms() - s->ks_counted_ms > 5000)) {
            job *j = calloc(1, sizeof *j);
            if (j) {
                j->kind = JOB_COUNT;
                j->now_ms = ks_now_ms();
                cairn_resp_init(&j->out, 2);
                s->count_inflight = true;
                s->jobs_inflight++;
                submit(s, j);
            }
        }
        section(f, &first, "Keyspace");
        if (s->ks_valid && s->ks_keys)
            fprintf(f, "db0:keys=%" PRIu64 ",expires=%" PRIu64
                       ",avg_ttl=%" PRIu64 "\r\n",
                    s->ks_keys, s->ks_expires, s->ks_avg_ttl);
    }
    cmd_text_end(t);
}

/* ---------- run ---------- */

static int listen_on(server *s, uv_tcp_t *l, const char *bind, int port)
{
    struct sockaddr_storage addr;
    int rc = strchr(bind, ':')
                 ? uv_ip6_addr(bind, port, (struct sockaddr_in6 *)&addr)
                 : uv_ip4_addr(bind, port, (struct sockaddr_in *)&addr);
    if (rc != 0)
        return rc;
    rc = uv_tcp_init(&s->loop, l);
    if (rc != 0)
        return rc;
    l->data = s;
    rc = uv_tcp_bind(l, (struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)l, 511, on_connection);
    if (rc != 0)
        uv_close((uv_handle_t *)l, NULL);
    return rc;
}

/* A "user NAME RULE..." config line: ACL SETUSER NAME RULE... */
static int acl_setuser_line(server *s, const char *line)
{
    char *copy = strdup(line);
    const uint8_t *argv[256];
    size_t argl[256], argc = 2;
    if (!copy)
        return -1;
    argv[0] = (const uint8_t *)"ACL";
    argl[0] = 3;
    argv[1] = (const uint8_t *)"SETUSER";
    argl[1] = 7;
    for (char *tok = strtok(copy, " \t"); tok && argc < 256;
         tok = strtok(NULL, " \t")) {
        argv[argc] = (const uint8_t *)tok;
        argl[argc++] = strlen(tok);
    }
    cairn_resp_buf out;
    cairn_resp_init(&out, 2);
    int rc = 0;
    if (argc < 3) {
        srv_log("error", "config: 'user' needs a name and rules");
        rc = -1;
    } else {
        srv_acl_command(s->acl, NULL, argc, argv, argl, &out);
        if (out.oom || out.len == 0 || out.p[0] == '-') {
            srv_log("error", "config: user %s: %.*s", (const char *)argv[2],
                    out.len > 2 ? (int)out.len - 3 : 0,
                    out.len > 2 ? (const char *)out.p + 1 : "");
            rc = -1;
        }
    }
    cairn_resp_free(&out);
    free(copy);
    return rc;
}

/* The Prometheus text: gauges and counters for the server and the engine. */
static void metrics_render(void *arg, FILE *f)
{
    server *s = arg;
    cairn_stats st;
    cairn_get_stats(s->db, &st);
#define G(name, help, fmt, v)                                                  \
    fprintf(f, "# HELP " name " " help "\n# TYPE " name " gauge\n" name       \
               " " fmt "\n", v)
#define C(name, help, v)                                                       \
    fprintf(f, "# HELP " name " " help "\n# TYPE " name " counter\n" name     \
               " %" PRIu64 "\n", (uint64_t)(v))
    G("cairn_up", "1 while the server runs.", "%d", 1);
    G("cairn_uptime_seconds", "Seconds since the server started.",
      "%" PRIu64, (mono_ms() - s->start_ms) / 1000);
    G("cairn_connected_clients", "Open client connections.", "%zu",
      s->nclients);
    G("cairn_resident_memory_bytes", "Resident set size of the server.",
      "%" PRIu64, rss_bytes());
    G("cairn_memtable_bytes", "Bytes in the memtables.", "%" PRIu64,
      st.memtable_bytes);
    G("cairn_block_cache_bytes", "Bytes in the block cache.", "%" PRIu64,
      st.block_cache_bytes);
    G("cairn_block_cache_capacity_bytes", "The block cache's budget.",
      "%" PRIu64, st.block_cache_capacity);
    G("cairn_row_cache_bytes", "Bytes in the row cache.", "%" PRIu64,
      st.row_cache_bytes);
    G("cairn_row_cache_capacity_bytes", "The row cache's budget.",
      "%" PRIu64, st.row_cache_capacity);
    G("cairn_row_cache_entries", "Entries in the row cache.", "%" PRIu64,
      st.row_cache_entries);
    G("cairn_current_version", "Newest commit version.", "%" PRIu64,
      st.current_version);
    G("cairn_write_pressure", "0 none, 1 slowing writes, 2 stalling them.",
      "%d", st.write_pressure);
    G("cairn_slowlog_length", "Entries in the slow log.", "%zu", s->slow_n);
    C("cairn_connections_received_total", "Connections accepted.",
      s->st_conns);
    C("cairn_tls_connections_received_total", "TLS connections accepted.",
      s->st_tls_conns);
    C("cairn_rejected_connections_total", "Connections over maxclients.",
      s->st_rejected);
    C("cairn_commands_processed_total", "Commands run.", s->st_cmds);
    C("cairn_protocol_errors_total", "Malformed requests (connection closed).",
      s->st_proto_errors);
    C("cairn_tls_errors_total", "TLS failures (connection closed).",
      s->st_tls_errors);
    C("cairn_dropped_clients_total", "Clients dropped over a buffer limit.",
      s->st_dropped);
    C("cairn_acl_denied_total", "Commands refused by access control.",
      s->st_noperm);
    C("cairn_keyspace_hits_total", "Key lookups of read commands that "
      "found the key.", atomic_load(&s->st_hits));
    C("cairn_keyspace_misses_total", "Key lookups of read commands that "
      "did not.", atomic_load(&s->st_misses));
    C("cairn_expired_keys_total", "Keys the expiry sweep deleted.",
      s->st_expired);
    C("cairn_net_input_bytes_total", "Request bytes read from clients.",
      s->st_net_in);
    C("cairn_net_output_bytes_total", "Reply bytes written to clients.",
      s->st_net_out);
    C("cairn_error_replies_total", "Error replies sent.",
      s->stats ? srv_stats_error_total(s->stats) : 0);
    G("cairn_used_memory_bytes", "Bytes allocated (malloc's count).",
      "%" PRIu64, used_memory());
    if (s->stats)
        srv_stats_write_prometheus(s->stats, f);
    C("cairn_commits_total", "Committed transactions.", st.commits);
    C("cairn_conflicts_total", "Transaction conflicts (retried).",
      st.conflicts);
    C("cairn_wal_syncs_total", "Log fsyncs.", st.wal_syncs);
    G("cairn_wal_sync_p50_seconds",
      "Median latency of the log fsyncs that made commits durable.", "%.9f",
      (double)st.wal_sync_p50_ns / 1e9);
    G("cairn_wal_sync_p99_seconds",
      "99th percentile latency of those log fsyncs.", "%.9f",
      (double)st.wal_sync_p99_ns / 1e9);
    C("cairn_flushes_total", "Memtables written to sorted files.", st.flushes);
    C("cairn_compactions_total", "Compactions done.", st.compactions);
    C("cairn_compaction_read_bytes_total", "Bytes read by compactions.",
      st.compact_read_bytes);
    C("cairn_compaction_write_bytes_total", "Bytes written by compactions.",
      st.compact_write_bytes);
    G("cairn_sst_logical_bytes", "Keys and values held in sorted files.",
      "%" PRIu64, st.sst_logical_bytes);
    G("cairn_sst_file_bytes", "Sizes of the sorted files.", "%" PRIu64,
      st.sst_file_bytes);
    G("cairn_blob_logical_bytes",
      "Value bytes of references to blobs (per reference).", "%" PRIu64,
      st.blob_logical_bytes);
    G("cairn_blob_stored_bytes", "Record bytes in the blob files.",
      "%" PRIu64, st.blob_stored_bytes);
    G("cairn_blob_distinct", "Distinct blobs stored.", "%" PRIu64,
      st.blob_distinct);
    C("cairn_blob_dedup_hits_total", "Writes that found their blob stored.",
      st.blob_dedup_hits);
    G("cairn_blob_files", "Blob files.", "%" PRIu64, st.blob_files);
    G("cairn_blob_dead_bytes", "Blob bytes no reference needs.", "%" PRIu64,
      st.blob_dead_bytes);
    C("cairn_blob_gc_runs_total", "Blob garbage collections.",
      st.blob_gc_runs);
    C("cairn_blob_gc_reclaimed_bytes_total", "Bytes blob GC reclaimed.",
      st.blob_gc_bytes_reclaimed);
    C("cairn_block_cache_hits_total", "Block cache hits.",
      st.block_cache_hits);
    C("cairn_block_cache_misses_total", "Block cache misses.",
      st.block_cache_misses);
    C("cairn_block_cache_evictions_total", "Blocks evicted for room.",
      st.block_cache_evictions);
    C("cairn_row_cache_hits_total", "Reads answered by the row cache.",
      st.row_cache_hits);
    C("cairn_row_cache_misses_total", "Reads the row cache did not answer.",
      st.row_cache_misses);
    C("cairn_row_cache_evictions_total", "Row cache entries evicted for room.",
      st.row_cache_evictions);
    C("cairn_row_cache_invalidations_total",
      "Row cache entries erased by writes of their key.",
      st.row_cache_invalidations);
    C("cairn_write_slowdowns_total", "Writes slowed for compaction.",
      st.write_slowdowns);
    C("cairn_write_stalls_total", "Writes stalled for compaction.",
      st.write_stalls);
    fprintf(f, "# HELP cairn_level_files Sorted files per level.\n"
               "# TYPE cairn_level_files gauge\n");
    for (int l = 0; l < 8; l++)
        fprintf(f, "cairn_level_files{level=\"%d\"} %" PRIu64 "\n", l,
                st.level_files[l]);
    fprintf(f, "# HELP cairn_level_bytes Bytes of sorted files per level.\n"
               "# TYPE cairn_level_bytes gauge\n");
    for (int l = 0; l < 8; l++)
        fprintf(f, "cairn_level_bytes{level=\"%d\"} %" PRIu64 "\n", l,
                st.level_bytes[l]);
    static const char *const tier_name[2] = {"local", "archive"};
    fprintf(f, "# HELP cairn_tier_files Sorted files per storage tier.\n"
               "# TYPE cairn_tier_files gauge\n");
    for (int k = 0; k < 2; k++)
        fprintf(f, "cairn_tier_files{tier=\"%s\"} %" PRIu64 "\n",
                tier_name[k], st.tier_files[k]);
    fprintf(f, "# HELP cairn_tier_bytes Bytes of sorted files per storage "
               "tier.\n# TYPE cairn_tier_bytes gauge\n");
    for (int k = 0; k < 2; k++)
        fprintf(f, "cairn_tier_bytes{tier=\"%s\"} %" PRIu64 "\n",
                tier_name[k], st.tier_bytes[k]);
    fprintf(f, "# HELP cairn_tier_block_reads_total Data block reads per "
               "storage tier, from the block cache or the files.\n"
               "# TYPE cairn_tier_block_reads_total counter\n");
    for (int k = 0; k < 2; k++)
        fprintf(f, "cairn_tier_block_reads_total{tier=\"%s\",from=\"cache\"} "
                   "%" PRIu64 "\ncairn_tier_block_reads_total{tier=\"%s\","
                   "from=\"file\"} %" PRIu64 "\n",
                tier_name[k], st.tier_block_hits[k], tier_name[k],
                st.tier_block_misses[k]);
    G("cairn_archive_available",
      "1 while the archive tier answers (or none is configured), 0 after "
      "its I/O failed.",
      "%d", !st.archive_configured || st.archive_available ? 1 : 0);
    C("cairn_archive_moves_total", "Sorted files archived since start.",
      st.archive_moves);
    C("cairn_archive_recalls_total", "Sorted files recalled since start.",
      st.archive_recalls);
#undef G
#undef C
}

void srv_db_options(const srv_config *cfg, cairn_options *o)
{
    cairn_options_init(o);
    o->sync_mode = cfg->sync;
    o->sync_interval_ms = cfg->sync_interval_ms;
    o->history_ms = cfg->history_ms;
    o->create_if_missing = true;
    o->max_value_size = cfg->max_bulk + 16;
    o->memtable_size = cfg->memtable_size;
    o->block_cache_size = cfg->block_cache_size;
    o->background_nice = cfg->background_nice;
    o->row_cache_size = cfg->row_cache_size;
    o->archive_dir = cfg->archive_dir;
    o->archive_min_level = cfg->archive_min_level;
    o->archive_min_age_s = cfg->archive_min_age_s;
    o->archive_zstd_level = cfg->archive_zstd_level;
}

/* What a server needs before it serves (srv_run and sessions): its copy of
 * cfg, access control (the command table, requirepass, the config's
 * users) and the parser limits. 0, or -1 (logged) with nothing to free but
 * s itself. */
static int server_setup(server *s, const srv_config *cfg)
{
    if (srv_config_copy(&s->cfg, cfg) != 0)
        return -1;
    s->start_ms = mono_ms();
    s->exec_def = cmd_lookup((const uint8_t *)"exec", 4);
    /* Access control: the command table, requirepass, the config's users. */
    s->acl = srv_acl_new();
    size_t ncmd;
    const cmd_def *tab = cmd_table(&ncmd);
    const char **names = calloc(ncmd, sizeof *names);
    unsigned *cats = calloc(ncmd, sizeof *cats);
    int arc = s->acl && names && cats ? 0 : -1;
    for (size_t i = 0; arc == 0 && i < ncmd; i++) {
        names[i] = tab[i].name;
        cats[i] = tab[i].cats;
    }
    if (arc == 0)
        arc = srv_acl_set_commands(s->acl, names, cats, ncmd);
    free(names);
    free(cats);
    if (arc == 0)
        arc = srv_acl_set_requirepass(s->acl, s->cfg.requirepass);
    for (size_t i = 0; arc == 0 && i < s->cfg.nusers; i++)
        arc = acl_setuser_line(s, s->cfg.users[i]);
    if (arc != 0) {
        if (s->acl)
            srv_log("error", "cannot set up access control (see above)");
        else
            srv_log("error", "out of memory");
        srv_acl_free(s->acl);
        srv_config_free(&s->cfg);
        return -1;
    }
    s->acl_gen = srv_acl_generation(s->acl);
    s->cmd_base = tab;
    s->stats = srv_stats_new(ncmd); /* none (out of memory): INFO says 0 */
    random_hex40(s->run_id);
    random_hex40(s->replid);
    cairn_resp_limits_init(&s->limits);
    s->limits.max_bulk = cfg->max_bulk;
    s->limits.max_args = cfg->max_args;
    return 0;
}

/* The locks, then the committer threads: how many started. */
static int server_start_committers(server *s)
{
    pthread_mutex_init(&s->q_mu, NULL);
    pthread_cond_init(&s->q_cv, NULL);
    pthread_mutex_init(&s->d_mu, NULL);
    pthread_cond_init(&s->d_cv, NULL);
    for (int i = 0; i < KEY_STRIPES; i++)
        pthread_mutex_init(&s->key_locks[i], NULL);
    pthread_mutex_init(&s->scan_mu, NULL);
    /* Cursor ids start at a random place: one a client kept from an
     * earlier run of the server is not taken for a new one. */
    uint8_t r[8];
    if (getrandom(r, sizeof r, 0) == (ssize_t)sizeof r)
        for (int i = 0; i < 8; i++)
            s->scan_seq = s->scan_seq << 8 | r[i];
    s->nworkers = s->cfg.commit_threads > 0 ? s->cfg.commit_threads : 1;
    s->workers = calloc((size_t)s->nworkers, sizeof *s->workers);
    int started = 0;
    for (int i = 0; s->workers && i < s->nworkers; i++)
        if (pthread_create(&s->workers[i], NULL, worker_main, s) == 0)
            started++;
    s->nworkers = started;
    return started;
}

/* Stop the committers (each finishes the jobs queued first). */
static void server_stop_committers(server *s)
{
    pthread_mutex_lock(&s->q_mu);
    s->q_stop = true;
    pthread_cond_broadcast(&s->q_cv);
    pthread_mutex_unlock(&s->q_mu);
    for (int i = 0; i < s->nworkers; i++)
        pthread_join(s->workers[i], NULL);
    free(s->workers);
    s->workers = NULL;
    s->nworkers = 0;
}

/* Free what server_setup and server_start_committers made, and s. */
static void server_free(server *s)
{
    pthread_mutex_destroy(&s->q_mu);
    pthread_cond_destroy(&s->q_cv);
    pthread_mutex_destroy(&s->d_mu);
    pthread_cond_destroy(&s->d_cv);
    for (int i = 0; i < KEY_STRIPES; i++)
        pthread_mutex_destroy(&s->key_locks[i]);
    pthread_mutex_destroy(&s->scan_mu);
    scan_cursors_free(s);
    slowlog_reset(s);
    srv_stats_free(s->stats);
    free(s->monitors);
    srv_acl_free(s->acl);
    srv_tls_ctx_free(s->tls_ctx);
    srv_config_free(&s->cfg);
    free(s);
}

int srv_run(const srv_config *cfg)
{
    server *s = calloc(1, sizeof *s);
    if (!s)
        return 1;
    if (server_setup(s, cfg) != 0) {
        free(s);
        return 1;
    }
    int arc = 0;
    if (s->cfg.tls_port) {
        char err[512];
        if (!s->cfg.tls_cert_file || !s->cfg.tls_key_file) {
            srv_log("error", "tls-port needs tls-cert-file and tls-key-file");
            arc = -1;
        } else if (!(s->tls_ctx = srv_tls_ctx_new(
                         s->cfg.tls_cert_file, s->cfg.tls_key_file,
                         s->cfg.tls_ca_cert_file, s->cfg.tls_auth_clients, err,
                         sizeof err))) {
            srv_log("error", "TLS: %s", err);
            arc = -1;
        }
        if (arc != 0) {
            srv_acl_free(s->acl);
            srv_config_free(&s->cfg);
            free(s);
            return 1;
        }
    }
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
    srv_db_options(cfg, &o);
    srv_log("info", "opening %s", cfg->dir);
    int rc = cairn_open(cfg->dir, &o, &s->db);
    if (rc) {
        srv_log("error", "cannot open the database in %s: %s (%s)", cfg->dir,
                cairn_strerror(rc), cairn_open_error());
        srv_tls_ctx_free(s->tls_ctx);
        srv_acl_free(s->acl);
        srv_config_free(&s->cfg);
        free(s);
        return 1;
    }
    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->done_async, on_done);
    s->done_async.data = s;
    int started = server_start_committers(s);

    int exit_code = 0;
    rc = listen_on(s, &s->listener, cfg->bind, cfg->port);
    if (rc == 0 && cfg->tls_port) {
        rc = listen_on(s, &s->tls_listener, cfg->bind, cfg->tls_port);
        if (rc == 0)
            s->tls_listening = true;
        else
            srv_log("error", "cannot listen on %s:%d (tls-port): %s",
                    cfg->bind, cfg->tls_port, uv_strerror(rc));
        if (rc != 0)
            uv_close((uv_handle_t *)&s->listener, NULL);
    } else if (rc != 0) {
        srv_log("error", "cannot listen on %s:%d: %s", cfg->bind, cfg->port,
                uv_strerror(rc));
    }
    if (rc == 0 && cfg->metrics_port) {
        char err[512];
        s->metrics = srv_metrics_start(&s->loop, cfg->bind, cfg->metrics_port,
                                       metrics_render, s, err, sizeof err);
        if (!s->metrics) {
            srv_log("error", "%s", err);
            rc = -1;
            uv_close((uv_handle_t *)&s->listener, NULL);
            if (s->tls_listening) {
                uv_close((uv_handle_t *)&s->tls_listener, NULL);
                s->tls_listening = false;
            }
        }
    }
    if (rc != 0 || started == 0) {
        if (started == 0)
            srv_log("error", "no committer threads could start");
        exit_code = 1;
        s->shutting_down = true;
    } else {
        s->listening = true;
        if (cfg->tls_port)
            srv_log("info", "TLS on %s:%d", cfg->bind, cfg->tls_port);
        if (cfg->metrics_port)
            srv_log("info", "Prometheus metrics on http://%s:%d/metrics",
                    cfg->bind, cfg->metrics_port);
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
    uv_check_init(&s->loop, &s->mon_check);
    s->mon_check.data = s;
    s->timer.data = s;
    uv_timer_start(&s->timer, on_timer, 10, 10);

    uv_run(&s->loop, UV_RUN_DEFAULT);

    server_stop_committers(s);
    srv_log("info", "flushing and closing the database");
    rc = cairn_close(s->db); /* settles any commit still in flight */
    /* Jobs finished after the loop stopped: their clients are gone. */
    for (job *j = s->d_head; j;) {
        job *n = j->next;
        if (j->c)
            client_unref(j->c);
        job_free(j);
        j = n;
    }
    uv_loop_close(&s->loop);
    if (rc) {
        srv_log("error", "close: %s", cairn_strerror(rc));
        exit_code = 1;
    } else {
        srv_log("info", "stopped cleanly");
    }
    server_free(s);
    return exit_code;
}

/* ---------- sessions: the dispatch without a loop ---------- */

struct srv_session {
    server *s;
    client *c;
};

srv_session *srv_session_new(const srv_config *cfg, cairn_db *db)
{
    srv_session *ss = calloc(1, sizeof *ss);
    server *s = calloc(1, sizeof *s);
    client *c = calloc(1, sizeof *c);
    if (!ss || !s || !c || server_setup(s, cfg) != 0) {
        free(ss);
        free(s);
        free(c);
        return NULL;
    }
    atomic_fetch_add(&log_muted, 1);
    s->session = true;
    s->db = db;
    if (server_start_committers(s) == 0) {
        server_free(s);
        free(ss);
        free(c);
        atomic_fetch_sub(&log_muted, 1);
        return NULL;
    }
    c->s = s;
    c->refs = 2; /* the "open handle" (client_close drops it) and ss's */
    c->proto = 2;
    cairn_resp_init(&c->out, 2);
    c->parser = cairn_resp_parser_new(&s->limits);
    if (!c->parser) {
        server_stop_committers(s);
        server_free(s);
        free(ss);
        free(c);
        atomic_fetch_sub(&log_muted, 1);
        return NULL;
    }
    client_register(s, c);
    ss->s = s;
    ss->c = c;
    return ss;
}

/* Take back every job in flight (waiting for the committers and the
 * engine's commit callbacks), letting the client go on with its input as
 * the loop would, until nothing is in flight and nothing is runnable. */
static void session_settle(srv_session *ss)
{
    server *s = ss->s;
    client *c = ss->c;
    for (;;) {
        pthread_mutex_lock(&s->d_mu);
        while (!s->d_head && s->jobs_inflight > 0)
            pthread_cond_wait(&s->d_cv, &s->d_mu);
        bool done = s->d_head != NULL;
        pthread_mutex_unlock(&s->d_mu);
        if (done) {
            done_drain(s);
            continue;
        }
        if (c->paused && !c->closed && !c->busy) {
            client_process(c); /* its replies were "written": go on */
            continue;
        }
        break;
    }
}

int srv_session_feed(srv_session *ss, const uint8_t *p, size_t n,
                     cairn_resp_buf *out)
{
    client *c = ss->c;
    server *s = ss->s;
    if (c->closed)
        return CAIRN_ECLOSED;
    if (client_in_reserve(c, n ? n : 1) != 0)
        return CAIRN_ENOMEM;
    if (n)
        memcpy(c->in + c->inlen, p, n);
    c->inlen += n;
    c->last_ms = mono_ms();
    s->sess_out = out;
    if (c->inlen > s->cfg.max_query_buf) { /* as on_read */
        s->st_dropped++;
        client_close(c);
    } else {
        client_process(c);
        session_settle(ss);
    }
    s->sess_out = NULL;
    return 0;
}

bool srv_session_closed(const srv_session *ss)
{
    return ss->c->closed;
}

int srv_session_proto(const srv_session *ss)
{
    return ss->c->proto;
}

void srv_session_free(srv_session *ss)
{
    if (!ss)
        return;
    server *s = ss->s;
    if (!ss->c->closed)
        client_close(ss->c);
    session_settle(ss);
    client_unref(ss->c);
    server_stop_committers(s);
    server_free(s);
    free(ss);
    atomic_fetch_sub(&log_muted, 1);
}
