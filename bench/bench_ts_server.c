/*
 * bench_ts_server.c — the server part of `cairn-bench ts`: cairn-server
 * measured over the Redis protocol, next to the embedded figures of the
 * engine part.
 *
 * The benchmark starts cairn-server itself (next to cairn-bench, or
 * --server-bin PATH) on a free 127.0.0.1 port with a fresh data directory
 * under $TMPDIR: once with --sync always (the default) for the queries,
 * then once per ingest case and run, with --sync always or --sync none
 * (a fresh server each time, as the engine part opens a fresh database
 * for each of its runs):
 *   ingest   TS.MADD of 1,000 points per command (one series x 1,000
 *            points, or 100 series x 10), points 10 s apart per series in
 *            time order, TS_SRV_PIPELINE commands in flight per connection,
 *            over 1 and 4 connections (each connection writes its own
 *            series, created before the clock starts); points/s, median of
 *            the runs. As in the engine part, 2,000,000 points a run with
 *            sync none, 500,000 with sync always (--quick: 100,000 and
 *            25,000).
 *   queries  100 series (LABELS bench ts) of one day of 10-second points
 *            (8,640 each), then median and p99 latency over
 *            TS_SRV_QUERIES queries of each: TS.RANGE raw over one
 *            series, TS.RANGE AGGREGATION avg 60000 over one series,
 *            TS.MRANGE - + FILTER bench=ts and the same with AGGREGATION
 *            avg 60000; one connection, one query at a time, after one
 *            warm-up query of each kind.
 * A query's latency runs from sending it to having parsed its whole
 * reply; the checks below run after the clock stops.
 *
 * Invariants:
 *   - Every reply is checked: a TS.MADD's is an array of its 1,000
 *     timestamps, in order; a query's has the expected series (each once),
 *     points, timestamps and values. An error reply, a wrong reply or a
 *     malformed one fails the part (exit 1), with what was expected and
 *     what came; nothing aborts.
 *   - A server this part started is stopped (SHUTDOWN, then waiting for
 *     its exit) or, on any failure, killed (SIGKILL); its directory (the
 *     data and server.log) is removed either way. On Linux the server also
 *     gets SIGKILL should the benchmark die first (PR_SET_PDEATHSIG).
 *   - Every ingest run writes fresh series on an empty server, so each
 *     point appends in time order.
 *
 * Locking: the main thread owns the result and the server process. Ingest
 * runs one thread per connection, each owning its connection, its series
 * and its job record (error text included), which the main thread reads
 * after pthread_join. The threads start together at a gate (mutex +
 * condvar + `go`), and stop early on the atomic `stop` flag, set by any
 * thread that failed.
 */
#include "bench_ts_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "bench.h"
#include "bench_resp.h"

#define TS_SRV_HOST "127.0.0.1"
#define TS_SRV_PIPELINE 16      /* TS.MADD commands in flight per connection */
#define TS_SRV_PPC 1000         /* points per TS.MADD */
#define TS_SRV_QUERIES 101      /* per kind (--quick: 21) */
#define TS_SRV_IO_TIMEOUT 300.0 /* seconds a send or a reply may take */
#define TS_SRV_START_TIMEOUT 30.0
#define TS_SRV_STOP_TIMEOUT 120.0
#define TS_SRV_MAX_CONNS 4
#define TS_SRV_MAX_SERIES 100
#define TS_SRV_KEY_MAX 64 /* bytes of a key, NUL included */

#define INGEST_T0 1700000000000LL
/* The queried day starts on a minute, so 1-minute buckets (aligned to 0,
 * as TS.MRANGE - + aligns them) cut it into exactly 1,440. */
#define DAY_T0 1699999980000LL
#define DAY_MS 86400000LL
#define DAY_STEP 10000LL
#define DAY_POINTS 8640u
#define BUCKET_MS 60000LL
#define BUCKET_POINTS 6u

static void srv_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void srv_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cairn-bench ts: server: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cairn-bench ts: server: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---------- the server process ---------- */

typedef struct srv_proc {
    pid_t pid; /* 0: not running */
    int port;
    const char *sync;
    char tmp[4096]; /* the directory this part made ("" before) */
    char data[4200], log[4200];
} srv_proc;

/* A port free on 127.0.0.1 now (the server binds it a moment later; a
 * race lost there is retried by srv_start). -1 on failure. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* The last bytes of server.log into buf (NUL-terminated). */
static void log_tail(const srv_proc *p, char *buf, size_t n)
{
    buf[0] = '\0';
    int fd = open(p->log, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t from = end > (off_t)(n - 1) ? end - (off_t)(n - 1) : 0;
    ssize_t got = pread(fd, buf, n - 1, from);
    buf[got > 0 ? got : 0] = '\0';
    close(fd);
}

static void print_log_tail(const srv_proc *p)
{
    char buf[3000];
    log_tail(p, buf, sizeof buf);
    if (buf[0])
        fprintf(stderr, "--- the end of %s ---\n%s%s---\n", p->log, buf,
                buf[strlen(buf) - 1] == '\n' ? "" : "\n");
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT) {
        srv_err("cannot remove %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Remove the directory this part made (symlinks are not followed). */
static int srv_remove_dir(srv_proc *p)
{
    if (!p->tmp[0])
        return 0;
    int rc = nftw(p->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0 && errno != ENOENT)
        rc = -1;
    else
        rc = 0;
    p->tmp[0] = '\0';
    return rc;
}

/* Kill the server if it runs, and remove its directory. */
static void srv_abort(srv_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        p->pid = 0;
    }
    srv_remove_dir(p);
}

static int srv_spawn(const char *bin, srv_proc *p)
{
    char port[16];
    snprintf(port, sizeof port, "%d", p->port);
    char *argv[] = {(char *)bin, "--port", port,    "--bind",
                    TS_SRV_HOST, "--dir",  p->data, "--sync",
                    (char *)p->sync, NULL};
    int logfd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (logfd < 0) {
        srv_err("cannot create %s: %s", p->log, strerror(errno));
        return -1;
    }
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nullfd < 0) {
        srv_err("cannot open /dev/null: %s", strerror(errno));
        close(logfd);
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* The child: only async-signal-safe calls until exec. */
#ifdef __linux__
        prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(126);
        execv(bin, argv);
        static const char msg[] = "cairn-bench: exec of cairn-server failed\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    int e = errno;
    close(logfd);
    close(nullfd);
    if (pid < 0) {
        srv_err("fork: %s", strerror(e));
        return -1;
    }
    p->pid = pid;
    return 0;
}

/* Is the server answering PING? 1 yes, 0 not yet (no connection), -1 a
 * wrong answer, or an answer from another process than ours (INFO
 * server's process_id: the port may have been taken meanwhile). */
static int srv_ping(const srv_proc *p)
{
    bresp_conn c;
    if (bresp_connect(&c, TS_SRV_HOST, p->port, 5.0) != 0) {
        bresp_close(&c);
        return 0;
    }
    bresp_cmd(&c, 1);
    bresp_arg_str(&c, "PING");
    int rc;
    if (bresp_flush(&c) != 0 || bresp_read(&c) != 0) {
        rc = 0; /* closed while starting: try again */
    } else if (bresp_is_str(&c, 0, "PONG")) {
        char want[48], d[200];
        snprintf(want, sizeof want, "\nprocess_id:%d\r", (int)p->pid);
        bresp_cmd(&c, 2);
        bresp_arg_str(&c, "INFO");
        bresp_arg_str(&c, "server");
        if (bresp_flush(&c) != 0 || bresp_read(&c) != 0) {
            srv_err("INFO server: %s", c.err);
            rc = -1;
        } else if (c.nodes[0].type != BRESP_BULK ||
                   !memmem(bresp_str(&c, &c.nodes[0]), (size_t)c.nodes[0].n,
                           want, strlen(want))) {
            srv_err("port %d: INFO server does not show process_id:%d "
                    "(another server on the port?); got %s",
                    p->port, (int)p->pid,
                    bresp_describe(&c, 0, d, sizeof d));
            rc = -1;
        } else {
            rc = 1;
        }
    } else {
        char d[200];
        srv_err("PING answered %s", bresp_describe(&c, 0, d, sizeof d));
        rc = -1;
    }
    bresp_close(&c);
    return rc;
}

/* Start cairn-server with --sync sync in a fresh directory; wait for
 * PING. On failure nothing is left running or on disk. */
static int srv_start(const char *bin, const char *sync, srv_proc *p)
{
    memset(p, 0, sizeof *p);
    p->sync = sync;
    const char *tmp = getenv("TMPDIR");
    snprintf(p->tmp, sizeof p->tmp, "%s/cairn-bench-ts-server-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(p->tmp)) {
        srv_err("cannot create %s: %s", p->tmp, strerror(errno));
        p->tmp[0] = '\0';
        return -1;
    }
    snprintf(p->data, sizeof p->data, "%s/data", p->tmp);
    snprintf(p->log, sizeof p->log, "%s/server.log", p->tmp);
    for (int attempt = 0; attempt < 5; attempt++) {
        p->port = free_port();
        if (p->port < 0) {
            srv_err("no free port on %s: %s", TS_SRV_HOST, strerror(errno));
            break;
        }
        if (srv_spawn(bin, p) != 0)
            break;
        double deadline = bench_now() + TS_SRV_START_TIMEOUT;
        for (;;) {
            int st = 0;
            pid_t w = waitpid(p->pid, &st, WNOHANG);
            if (w == p->pid) {
                p->pid = 0;
                char tail[3000];
                log_tail(p, tail, sizeof tail);
                if (strstr(tail, "cannot listen") && attempt < 4)
                    break; /* the port was taken meanwhile: another one */
                srv_err("%s (--sync %s) exited with %s %d before answering "
                        "PING",
                        bin, sync, WIFEXITED(st) ? "status" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
                print_log_tail(p);
                srv_abort(p);
                return -1;
            }
            int ok = srv_ping(p);
            if (ok == 1)
                return 0;
            if (ok < 0 || bench_now() > deadline) {
                if (ok == 0)
                    srv_err("%s did not answer PING on port %d within %.0f s",
                            bin, p->port, TS_SRV_START_TIMEOUT);
                print_log_tail(p);
                srv_abort(p);
                return -1;
            }
            sleep_ms(20);
        }
    }
    srv_err("could not start %s", bin);
    print_log_tail(p);
    srv_abort(p);
    return -1;
}

/* SHUTDOWN, wait for a clean exit, remove the directory. On failure the
 * server is killed (and the directory removed) all the same. */
static int srv_stop(srv_proc *p)
{
    int rc = 0;
    bresp_conn c;
    if (bresp_connect(&c, TS_SRV_HOST, p->port, TS_SRV_STOP_TIMEOUT) != 0) {
        srv_err("SHUTDOWN: %s", c.err);
        rc = -1;
    } else {
        bresp_cmd(&c, 1);
        bresp_arg_str(&c, "SHUTDOWN");
        if (bresp_flush(&c) != 0) {
            srv_err("SHUTDOWN: %s", c.err);
            rc = -1;
        } else if (bresp_read(&c) == 0) { /* success closes, no reply */
            char d[200];
            srv_err("SHUTDOWN answered %s",
                    bresp_describe(&c, 0, d, sizeof d));
            rc = -1;
        }
    }
    bresp_close(&c);
    if (rc != 0)
        kill(p->pid, SIGTERM);
    double deadline = bench_now() + TS_SRV_STOP_TIMEOUT;
    int st = 0;
    for (;;) {
        pid_t w = waitpid(p->pid, &st, WNOHANG);
        if (w == p->pid) {
            p->pid = 0;
            break;
        }
        if (w < 0 && errno != EINTR) {
            srv_err("waitpid: %s", strerror(errno));
            rc = -1;
            break;
        }
        if (bench_now() > deadline) {
            srv_err("cairn-server did not exit within %.0f s of SHUTDOWN; "
                    "killed",
                    TS_SRV_STOP_TIMEOUT);
            rc = -1;
            break;
        }
        sleep_ms(10);
    }
    if (p->pid == 0 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        srv_err("cairn-server (--sync %s) ended with %s %d", p->sync,
                WIFEXITED(st) ? "status" : "signal",
                WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        rc = -1;
    }
    if (rc != 0)
        print_log_tail(p);
    srv_abort(p); /* kills only if still running; removes the directory */
    return rc;
}

/* ---------- TS.MADD streams ---------- */

/* The points of a TS.MADD stream: point g (0 <= g < total) belongs to
 * series g % nseries at time t0 + (g / nseries) * 10 s, so each command
 * holds whole time steps of all series (time-major) and every series
 * advances in time order. */
typedef struct madd_stream {
    const char (*keys)[TS_SRV_KEY_MAX];
    const size_t *klen;
    size_t nseries;
    size_t total;
    int64_t t0;
    const double *vals; /* NULL: g % 977; else vals[s * per_series + t] */
    size_t per_series;
} madd_stream;

static size_t madd_commands(const madd_stream *m)
{
    return (m->total + TS_SRV_PPC - 1) / TS_SRV_PPC;
}

static void madd_build(bresp_conn *c, const madd_stream *m, size_t cmd)
{
    size_t g0 = cmd * TS_SRV_PPC;
    size_t g1 = g0 + TS_SRV_PPC < m->total ? g0 + TS_SRV_PPC : m->total;
    bresp_cmd(c, 1 + 3 * (g1 - g0));
    bresp_arg_str(c, "TS.MADD");
    for (size_t g = g0; g < g1; g++) {
        size_t s = g % m->nseries, t = g / m->nseries;
        bresp_arg(c, m->keys[s], m->klen[s]);
        bresp_arg_i64(c, m->t0 + (int64_t)t * DAY_STEP);
        /* the values are integers by construction */
        bresp_arg_i64(c, m->vals ? (int64_t)m->vals[s * m->per_series + t]
                                 : (int64_t)(g % 977));
    }
}

static int madd_check(const bresp_conn *c, const madd_stream *m, size_t cmd,
                      char *err, size_t errlen)
{
    size_t g0 = cmd * TS_SRV_PPC;
    size_t g1 = g0 + TS_SRV_PPC < m->total ? g0 + TS_SRV_PPC : m->total;
    const bresp_node *root = &c->nodes[0];
    char d[200];
    if (root->type != BRESP_ARRAY || (size_t)root->n != g1 - g0) {
        snprintf(err, errlen,
                 "TS.MADD #%zu: expected an array of %zu timestamps, got %s",
                 cmd, g1 - g0, bresp_describe(c, 0, d, sizeof d));
        return -1;
    }
    size_t k = 1;
    for (size_t g = g0; g < g1; g++, k = c->nodes[k].next) {
        int64_t want = m->t0 + (int64_t)(g / m->nseries) * DAY_STEP;
        if (c->nodes[k].type != BRESP_INT || c->nodes[k].n != want) {
            snprintf(err, errlen,
                     "TS.MADD #%zu, sample %zu: expected the timestamp %" PRId64
                     ", got %s",
                     cmd, g - g0, want, bresp_describe(c, k, d, sizeof d));
            return -1;
        }
    }
    return 0;
}

/* Send the stream's commands, at most TS_SRV_PIPELINE in flight, checking
 * each reply; stops early (returning 0) once *stop is set. */
static int madd_run(bresp_conn *c, const madd_stream *m, atomic_bool *stop,
                    char *err, size_t errlen)
{
    size_t n = madd_commands(m), sent = 0, done = 0;
    while (done < n) {
        if (stop && atomic_load(stop))
            return 0;
        while (sent < n && sent - done < TS_SRV_PIPELINE)
            madd_build(c, m, sent++);
        if (c->out_len && bresp_flush(c) != 0) {
            snprintf(err, errlen, "TS.MADD: %s", c->err);
            return -1;
        }
        if (bresp_read(c) != 0) {
            snprintf(err, errlen, "TS.MADD: %s", c->err);
            return -1;
        }
        if (madd_check(c, m, done, err, errlen) != 0)
            return -1;
        done++;
    }
    return 0;
}

/* TS.CREATE every key of m (with LABELS name value when name is given),
 * pipelined; each must answer OK. */
static int create_series(bresp_conn *c, const madd_stream *m,
                         const char *label, const char *value, char *err,
                         size_t errlen)
{
    for (size_t s = 0; s < m->nseries; s++) {
        bresp_cmd(c, label ? 5 : 2);
        bresp_arg_str(c, "TS.CREATE");
        bresp_arg(c, m->keys[s], m->klen[s]);
        if (label) {
            bresp_arg_str(c, "LABELS");
            bresp_arg_str(c, label);
            bresp_arg_str(c, value);
        }
    }
    if (bresp_flush(c) != 0) {
        snprintf(err, errlen, "TS.CREATE: %s", c->err);
        return -1;
    }
    for (size_t s = 0; s < m->nseries; s++) {
        if (bresp_read(c) != 0) {
            snprintf(err, errlen, "TS.CREATE: %s", c->err);
            return -1;
        }
        if (!bresp_is_str(c, 0, "OK")) {
            char d[200];
            snprintf(err, errlen, "TS.CREATE %.*s: expected OK, got %s",
                     (int)m->klen[s], m->keys[s],
                     bresp_describe(c, 0, d, sizeof d));
            return -1;
        }
    }
    return 0;
}

/* ---------- ingest ---------- */

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready;
    bool go;
} gate;

typedef struct ingest_job {
    /* in */
    int port;
    char keys[TS_SRV_MAX_SERIES][TS_SRV_KEY_MAX];
    size_t klen[TS_SRV_MAX_SERIES];
    madd_stream m;
    gate *g;
    atomic_bool *stop;
    /* out */
    int rc;
    char err[512];
} ingest_job;

static void *ingest_worker(void *arg)
{
    ingest_job *j = arg;
    bresp_conn c;
    j->rc = bresp_connect(&c, TS_SRV_HOST, j->port, TS_SRV_IO_TIMEOUT);
    if (j->rc != 0)
        snprintf(j->err, sizeof j->err, "%s", c.err);
    else
        j->rc = create_series(&c, &j->m, NULL, NULL, j->err, sizeof j->err);
    if (j->rc != 0)
        atomic_store(j->stop, true);
    pthread_mutex_lock(&j->g->mu);
    j->g->ready++;
    pthread_cond_broadcast(&j->g->cv);
    while (!j->g->go)
        pthread_cond_wait(&j->g->cv, &j->g->mu);
    pthread_mutex_unlock(&j->g->mu);
    if (j->rc == 0) {
        j->rc = madd_run(&c, &j->m, j->stop, j->err, sizeof j->err);
        if (j->rc != 0)
            atomic_store(j->stop, true);
    }
    bresp_close(&c);
    return NULL;
}

/* One run of one ingest case: conns connections, each TS.MADDing into
 * its own nseries fresh series (named prefix:cK:NNN); the case's points
 * are split between them in whole commands. */
static int ingest_run(int port, const char *prefix, size_t nseries, int conns,
                      size_t points, double *pps)
{
    ingest_job *jobs = calloc((size_t)conns, sizeof *jobs);
    pthread_t th[TS_SRV_MAX_CONNS];
    if (!jobs) {
        srv_err("out of memory");
        return -1;
    }
    gate g = {.ready = 0, .go = false};
    pthread_mutex_init(&g.mu, NULL);
    pthread_cond_init(&g.cv, NULL);
    atomic_bool stop = false;
    size_t ncmds = points / TS_SRV_PPC;
    for (int k = 0; k < conns; k++) {
        ingest_job *j = &jobs[k];
        j->port = port;
        j->g = &g;
        j->stop = &stop;
        for (size_t s = 0; s < nseries; s++) {
            snprintf(j->keys[s], sizeof j->keys[s], "%s:c%d:%03zu", prefix, k,
                     s);
            j->klen[s] = strlen(j->keys[s]);
        }
        size_t mine = ncmds / (size_t)conns + ((size_t)k < ncmds % (size_t)conns);
        j->m = (madd_stream){.keys = (const char(*)[TS_SRV_KEY_MAX])j->keys,
                             .klen = j->klen,
                             .nseries = nseries,
                             .total = mine * TS_SRV_PPC,
                             .t0 = INGEST_T0};
    }
    int started = 0, rc = 0;
    for (; started < conns; started++) {
        int e = pthread_create(&th[started], NULL, ingest_worker,
                               &jobs[started]);
        if (e != 0) {
            srv_err("cannot start a client thread: %s", strerror(e));
            atomic_store(&stop, true);
            rc = -1;
            break;
        }
    }
    pthread_mutex_lock(&g.mu);
    while (g.ready < started)
        pthread_cond_wait(&g.cv, &g.mu);
    double t0 = bench_now();
    g.go = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (int k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    double dt = bench_now() - t0;
    for (int k = 0; k < started; k++)
        if (jobs[k].rc != 0) {
            srv_err("connection %d of %d: %s", k + 1, conns, jobs[k].err);
            rc = -1;
        }
    *pps = (double)(ncmds * TS_SRV_PPC) / dt;
    pthread_mutex_destroy(&g.mu);
    pthread_cond_destroy(&g.cv);
    free(jobs);
    return rc;
}

/* ---------- queries ---------- */

/* splitmix64, for the day's values */
static uint64_t sm64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A sample value node (simple or bulk string) as a double. */
static bool node_double(const bresp_conn *c, size_t i, double *out)
{
    const bresp_node *n = &c->nodes[i];
    if ((n->type != BRESP_STRING && n->type != BRESP_BULK) || n->n <= 0 ||
        n->n > 63)
        return false;
    char buf[64];
    memcpy(buf, bresp_str(c, n), (size_t)n->n);
    buf[n->n] = '\0';
    char *end;
    errno = 0;
    *out = strtod(buf, &end);
    return *end == '\0' && errno == 0;
}

/* Check the points array at node i: npts samples [ts, value] at t0 + k *
 * step; values: raw (vals[k]) or bucket averages (of BUCKET_POINTS). */
static int check_points(const bresp_conn *c, size_t i, size_t npts,
                        int64_t step, const double *vals, bool avg,
                        const char *what, char *err, size_t errlen)
{
    char d[200];
    const bresp_node *a = &c->nodes[i];
    if (a->type != BRESP_ARRAY || (size_t)a->n != npts) {
        snprintf(err, errlen, "%s: expected %zu points, got %s", what, npts,
                 bresp_describe(c, i, d, sizeof d));
        return -1;
    }
    size_t k = i + 1;
    for (size_t p = 0; p < npts; p++, k = c->nodes[k].next) {
        const bresp_node *s = &c->nodes[k];
        if (s->type != BRESP_ARRAY || s->n != 2) {
            snprintf(err, errlen, "%s, point %zu: expected [timestamp, value], "
                                  "got %s",
                     what, p, bresp_describe(c, k, d, sizeof d));
            return -1;
        }
        int64_t want_ts = DAY_T0 + (int64_t)p * step;
        if (c->nodes[k + 1].type != BRESP_INT || c->nodes[k + 1].n != want_ts) {
            snprintf(err, errlen,
                     "%s, point %zu: expected the timestamp %" PRId64
                     ", got %s",
                     what, p, want_ts, bresp_describe(c, k + 1, d, sizeof d));
            return -1;
        }
        double want;
        if (avg) {
            double sum = 0;
            for (size_t b = 0; b < BUCKET_POINTS; b++)
                sum += vals[p * BUCKET_POINTS + b];
            want = sum / BUCKET_POINTS;
        } else {
            want = vals[p];
        }
        double got;
        size_t vi = c->nodes[k + 1].next;
        if (!node_double(c, vi, &got) ||
            fabs(got - want) > 1e-9 * (fabs(want) > 1 ? fabs(want) : 1)) {
            snprintf(err, errlen, "%s, point %zu: expected the value %.17g, got %s",
                     what, p, want, bresp_describe(c, vi, d, sizeof d));
            return -1;
        }
    }
    return 0;
}

enum { Q_RANGE_RAW, Q_RANGE_AVG, Q_MRANGE_RAW, Q_MRANGE_AVG };

typedef struct day_set {
    size_t nseries;
    char keys[TS_SRV_MAX_SERIES][TS_SRV_KEY_MAX];
    size_t klen[TS_SRV_MAX_SERIES];
    double *vals; /* nseries x DAY_POINTS */
} day_set;

static void query_build(bresp_conn *c, const day_set *ds, int kind,
                        size_t series)
{
    bool agg = kind == Q_RANGE_AVG || kind == Q_MRANGE_AVG;
    if (kind == Q_RANGE_RAW || kind == Q_RANGE_AVG) {
        bresp_cmd(c, agg ? 7 : 4);
        bresp_arg_str(c, "TS.RANGE");
        bresp_arg(c, ds->keys[series], ds->klen[series]);
        bresp_arg_i64(c, DAY_T0);
        bresp_arg_i64(c, DAY_T0 + DAY_MS - 1);
    } else {
        bresp_cmd(c, agg ? 8 : 5);
        bresp_arg_str(c, "TS.MRANGE");
        bresp_arg_str(c, "-");
        bresp_arg_str(c, "+");
    }
    if (agg) {
        bresp_arg_str(c, "AGGREGATION");
        bresp_arg_str(c, "avg");
        bresp_arg_i64(c, BUCKET_MS);
    }
    if (kind == Q_MRANGE_RAW || kind == Q_MRANGE_AVG) {
        bresp_arg_str(c, "FILTER");
        bresp_arg_str(c, "bench=ts");
    }
}

static int query_check(const bresp_conn *c, const day_set *ds, int kind,
                       size_t series, char *err, size_t errlen)
{
    bool agg = kind == Q_RANGE_AVG || kind == Q_MRANGE_AVG;
    size_t npts = agg ? DAY_POINTS / BUCKET_POINTS : DAY_POINTS;
    int64_t step = agg ? BUCKET_MS : DAY_STEP;
    char what[160], d[200];
    if (kind == Q_RANGE_RAW || kind == Q_RANGE_AVG) {
        snprintf(what, sizeof what, "TS.RANGE %s%s", ds->keys[series],
                 agg ? " AGGREGATION avg" : "");
        return check_points(c, 0, npts, step, ds->vals + series * DAY_POINTS,
                            agg, what, err, errlen);
    }
    const char *cmd = agg ? "TS.MRANGE AGGREGATION avg" : "TS.MRANGE";
    const bresp_node *root = &c->nodes[0];
    if (root->type != BRESP_ARRAY || (size_t)root->n != ds->nseries) {
        snprintf(err, errlen, "%s: expected %zu series, got %s", cmd,
                 ds->nseries, bresp_describe(c, 0, d, sizeof d));
        return -1;
    }
    bool seen[TS_SRV_MAX_SERIES] = {false};
    size_t e = 1;
    for (size_t k = 0; k < ds->nseries; k++, e = c->nodes[e].next) {
        const bresp_node *en = &c->nodes[e];
        if (en->type != BRESP_ARRAY || en->n != 3 ||
            c->nodes[e + 1].type != BRESP_BULK) {
            snprintf(err, errlen,
                     "%s, entry %zu: expected [key, labels, points], got %s",
                     cmd, k, bresp_describe(c, e, d, sizeof d));
            return -1;
        }
        const bresp_node *key = &c->nodes[e + 1];
        size_t s = ds->nseries;
        for (size_t i = 0; i < ds->nseries && s == ds->nseries; i++)
            if ((size_t)key->n == ds->klen[i] &&
                memcmp(bresp_str(c, key), ds->keys[i], ds->klen[i]) == 0)
                s = i;
        if (s == ds->nseries || seen[s]) {
            snprintf(err, errlen, "%s, entry %zu: %s key %s", cmd, k,
                     s == ds->nseries ? "unexpected" : "repeated",
                     bresp_describe(c, e + 1, d, sizeof d));
            return -1;
        }
        seen[s] = true;
        size_t labels = key->next;
        if (c->nodes[labels].type != BRESP_ARRAY || c->nodes[labels].n != 0) {
            snprintf(err, errlen,
                     "%s, %s: expected no labels (no WITHLABELS), got %s", cmd,
                     ds->keys[s], bresp_describe(c, labels, d, sizeof d));
            return -1;
        }
        snprintf(what, sizeof what, "%s, %s", cmd, ds->keys[s]);
        if (check_points(c, c->nodes[labels].next, npts, step,
                         ds->vals + s * DAY_POINTS, agg, what, err,
                         errlen) != 0)
            return -1;
    }
    return 0;
}

/* The nearest-rank q-quantile of v[0..n) (sorted in place). */
static double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    size_t r = (size_t)ceil(q * (double)n);
    return v[r > 0 ? r - 1 : 0];
}

/* Load the day set, then time each query kind (after one warm-up). */
static int measure_queries(const ts_server_cfg *cfg, int port,
                           ts_server_result *r)
{
    day_set *ds = calloc(1, sizeof *ds);
    size_t nq = r->nqueries;
    double *lat = malloc(nq * sizeof *lat);
    if (!ds || !lat) {
        free(ds);
        free(lat);
        srv_err("out of memory");
        return -1;
    }
    ds->nseries = r->day_series;
    ds->vals = malloc(ds->nseries * DAY_POINTS * sizeof *ds->vals);
    bresp_conn c;
    memset(&c, 0, sizeof c);
    c.fd = -1;
    char err[512] = "";
    int rc = ds->vals ? 0 : -1;
    if (rc)
        snprintf(err, sizeof err, "out of memory");
    uint64_t st = cfg->seed * 0x2545F4914F6CDD1Dull + 0x7473;
    for (size_t s = 0; rc == 0 && s < ds->nseries; s++) {
        snprintf(ds->keys[s], sizeof ds->keys[s], "day:%03zu", s);
        ds->klen[s] = strlen(ds->keys[s]);
        double v = 100.0 + (double)s;
        for (size_t t = 0; t < DAY_POINTS; t++) {
            ds->vals[s * DAY_POINTS + t] = v;
            v += (double)(int)(sm64(&st) % 21) - 10.0;
        }
    }
    if (rc == 0 && bresp_connect(&c, TS_SRV_HOST, port, TS_SRV_IO_TIMEOUT)) {
        snprintf(err, sizeof err, "%s", c.err);
        rc = -1;
    }
    madd_stream m = {.keys = (const char(*)[TS_SRV_KEY_MAX])ds->keys,
                     .klen = ds->klen,
                     .nseries = ds->nseries,
                     .total = ds->nseries * DAY_POINTS,
                     .t0 = DAY_T0,
                     .vals = ds->vals,
                     .per_series = DAY_POINTS};
    if (rc == 0) {
        progress("loading %zu series x %u points (LABELS bench ts)",
                 ds->nseries, DAY_POINTS);
        rc = create_series(&c, &m, "bench", "ts", err, sizeof err);
    }
    if (rc == 0)
        rc = madd_run(&c, &m, NULL, err, sizeof err);
    static const char *const names[TS_SRV_NQUERY] = {
        "range_raw", "range_avg_1m", "mrange_raw", "mrange_avg_1m"};
    static const char *const labels[TS_SRV_NQUERY] = {
        "TS.RANGE raw", "TS.RANGE avg 1 min", "TS.MRANGE raw",
        "TS.MRANGE avg 1 min"};
    for (int kind = 0; rc == 0 && kind < TS_SRV_NQUERY; kind++) {
        ts_server_query *q = &r->q[kind];
        bool multi = kind == Q_MRANGE_RAW || kind == Q_MRANGE_AVG;
        bool agg = kind == Q_RANGE_AVG || kind == Q_MRANGE_AVG;
        q->name = names[kind];
        q->label = labels[kind];
        q->series = multi ? ds->nseries : 1;
        q->points = agg ? DAY_POINTS / BUCKET_POINTS : DAY_POINTS;
        progress("%zu x %s (%zu series x %zu points a reply)", nq, q->label,
                 q->series, q->points);
        for (size_t i = 0; rc == 0 && i <= nq; i++) { /* i == 0: warm-up */
            size_t series = i % ds->nseries;
            query_build(&c, ds, kind, series);
            double t0 = bench_now();
            if (bresp_flush(&c) != 0 || bresp_read(&c) != 0) {
                snprintf(err, sizeof err, "%s: %s", q->label, c.err);
                rc = -1;
                break;
            }
            double dt = bench_now() - t0;
            rc = query_check(&c, ds, kind, series, err, sizeof err);
            if (i > 0)
                lat[i - 1] = dt * 1e3;
        }
        if (rc == 0) {
            q->median_ms = bench_median(lat, nq);
            q->p99_ms = quantile(lat, nq, 0.99);
        }
    }
    if (rc != 0)
        srv_err("%s", err);
    bresp_close(&c);
    free(ds->vals);
    free(ds);
    free(lat);
    return rc;
}

/* ---------- the part ---------- */

/* cairn-server next to this program: /proc/self/exe's directory. */
static bool default_server_bin(char *out, size_t n)
{
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return false;
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return false;
    *slash = '\0';
    return (size_t)snprintf(out, n, "%s/cairn-server", self) < n;
}

static const char *const SYNCS[2] = {"always", "none"};

int ts_server_measure(const ts_server_cfg *cfg, ts_server_result *r)
{
    memset(r, 0, sizeof *r);
    double start = bench_now();
    r->runs = cfg->runs < 1 ? 1
              : cfg->runs > TS_SRV_MAX_RUNS ? TS_SRV_MAX_RUNS
                                            : cfg->runs;
    r->pipeline = TS_SRV_PIPELINE;
    r->points_per_command = TS_SRV_PPC;
    r->day_series = cfg->quick ? 10 : 100;
    r->day_points = DAY_POINTS;
    r->nqueries = cfg->quick ? 21 : TS_SRV_QUERIES;
    if (cfg->server_bin) {
        snprintf(r->server_bin, sizeof r->server_bin, "%s", cfg->server_bin);
        if (access(r->server_bin, X_OK) != 0) {
            srv_err("--server-bin %s: %s", r->server_bin, strerror(errno));
            return -1;
        }
    } else if (!default_server_bin(r->server_bin, sizeof r->server_bin) ||
               access(r->server_bin, X_OK) != 0) {
        r->skipped = "cairn-server not found next to cairn-bench "
                     "(--server-bin PATH)";
        srv_err("%s not found: the server part is skipped (--server-bin "
                "PATH)",
                r->server_bin[0] ? r->server_bin : "cairn-server");
        return 0;
    }
    size_t none_points = cfg->quick ? 100000 : 2000000;
    size_t always_points = none_points / 4;
    int k = 0;
    for (int sy = 0; sy < 2; sy++)
        for (int conns = 1; conns <= 4; conns *= 4)
            for (int series = 1; series <= 100; series *= 100) {
                ts_server_ingest *ig = &r->ingest[k++];
                ig->sync = SYNCS[sy];
                ig->series = series;
                ig->conns = conns;
                ig->points = sy == 0 ? always_points : none_points;
            }
    /* The queries, on a server of their own (sync always). */
    srv_proc p;
    progress("starting %s --sync always for the queries", r->server_bin);
    if (srv_start(r->server_bin, "always", &p) != 0)
        return -1;
    progress("cairn-server (pid %d) ready on %s:%d, data in %s", (int)p.pid,
             TS_SRV_HOST, p.port, p.data);
    if (measure_queries(cfg, p.port, r) != 0) {
        print_log_tail(&p);
        srv_abort(&p);
        return -1;
    }
    if (srv_stop(&p) != 0)
        return -1;
    /* Ingest: each case and run on a fresh server in a fresh directory,
     * as the engine part opens a fresh database for each. */
    for (int run = 0; run < r->runs; run++)
        for (int i = 0; i < TS_SRV_NINGEST; i++) {
            ts_server_ingest *ig = &r->ingest[i];
            if (run == 0)
                progress("ingest, sync %s, %d series per command, %d "
                         "connection%s, %zu points x %d run%s",
                         ig->sync, ig->series, ig->conns,
                         ig->conns == 1 ? "" : "s", ig->points, r->runs,
                         r->runs == 1 ? "" : "s");
            if (srv_start(r->server_bin, ig->sync, &p) != 0)
                return -1;
            char prefix[40];
            snprintf(prefix, sizeof prefix, "in:%dx%d", ig->series,
                     ig->conns);
            if (ingest_run(p.port, prefix, (size_t)ig->series, ig->conns,
                           ig->points, &ig->run_pps[run]) != 0) {
                print_log_tail(&p);
                srv_abort(&p);
                return -1;
            }
            if (srv_stop(&p) != 0)
                return -1;
        }
    for (int i = 0; i < TS_SRV_NINGEST; i++)
        r->ingest[i].pps =
            bench_median(r->ingest[i].run_pps, (size_t)r->runs);
    r->elapsed = bench_now() - start;
    r->measured = true;
    return 0;
}

/* ---------- output ---------- */

/* The embedded figure matching an ingest case: one connection, and a
 * series count and sync mode the engine part measured; NAN otherwise. */
static double embedded_ingest(const ts_server_ingest *ig,
                              const ts_server_embedded *e)
{
    if (!e || !e->known || ig->conns != 1)
        return NAN;
    bool always = strcmp(ig->sync, "always") == 0;
    if (ig->series == 1)
        return always ? e->ingest1_always : e->ingest1_none;
    return always ? NAN : e->ingest100_none;
}

static double embedded_query(int kind, const ts_server_embedded *e)
{
    if (!e || !e->known)
        return NAN;
    return kind == Q_RANGE_RAW ? e->raw_day_ms
           : kind == Q_RANGE_AVG ? e->avg1m_day_ms
                                 : NAN;
}


void ts_server_print_json(FILE *f, const ts_server_result *r,
                          const ts_server_embedded *e)
{
    fprintf(f, ",\"server\":{\"measured\":%s", r->measured ? "true" : "false");
    if (r->skipped) {
        fputs(",\"skipped\":", f);
        bench_json_str(f, r->skipped);
    }
    if (!r->measured) {
        fputc('}', f);
        return;
    }
    fputs(",\"server_bin\":", f);
    bench_json_str(f, r->server_bin);
    fprintf(f,
            ",\"host\":\"%s\",\"runs\":%d,\"pipeline\":%d,"
            "\"points_per_command\":%d,\"ingest\":[",
            TS_SRV_HOST, r->runs, r->pipeline, r->points_per_command);
    for (int i = 0; i < TS_SRV_NINGEST; i++) {
        const ts_server_ingest *ig = &r->ingest[i];
        double emb = embedded_ingest(ig, e);
        fprintf(f,
                "%s{\"sync\":\"%s\",\"series\":%d,\"connections\":%d,"
                "\"points\":%zu,\"points_per_s\":",
                i ? "," : "", ig->sync, ig->series, ig->conns, ig->points);
        bench_json_num(f, ig->pps);
        fputs(",\"runs_points_per_s\":[", f);
        for (int k = 0; k < r->runs; k++) {
            if (k)
                fputc(',', f);
            bench_json_num(f, ig->run_pps[k]);
        }
        fputs("],\"embedded_points_per_s\":", f);
        bench_json_num(f, emb);
        fputs(",\"server_to_embedded\":", f);
        bench_json_num(f, ig->pps / emb);
        fputc('}', f);
    }
    fprintf(f, "],\"queries\":{\"series\":%zu,\"points_per_series\":%zu,"
               "\"queries\":%zu",
            r->day_series, r->day_points, r->nqueries);
    for (int k = 0; k < TS_SRV_NQUERY; k++) {
        const ts_server_query *q = &r->q[k];
        double emb = embedded_query(k, e);
        fprintf(f, ",\"%s\":{\"reply_series\":%zu,\"reply_points_per_series\":"
                   "%zu,\"median_ms\":",
                q->name, q->series, q->points);
        bench_json_num(f, q->median_ms);
        fputs(",\"p99_ms\":", f);
        bench_json_num(f, q->p99_ms);
        fputs(",\"embedded_median_ms\":", f);
        bench_json_num(f, emb);
        fputs(",\"server_to_embedded\":", f);
        bench_json_num(f, q->median_ms / emb);
        fputc('}', f);
    }
    fputs("},\"elapsed_seconds\":", f);
    bench_json_num(f, r->elapsed);
    fputc('}', f);
}

void ts_server_print_human(FILE *f, const ts_server_result *r,
                           const ts_server_embedded *e)
{
    if (!r->measured) {
        fprintf(f, "\nthe server: skipped (%s)\n",
                r->skipped ? r->skipped : "not measured");
        return;
    }
    fprintf(f, "\nthe server (%s on %s, RESP2; %s):\n", r->server_bin,
            TS_SRV_HOST,
            e && e->known ? "embedded = the engine part above"
                          : "no embedded figures: the engine part did not run");
    fprintf(f,
            "  ingest: TS.MADD of %d points, %d commands in flight per "
            "connection, each\n  connection its own series, points 10 s "
            "apart; median of %d run%s\n",
            r->points_per_command, r->pipeline, r->runs,
            r->runs == 1 ? "" : "s");
    fprintf(f, "  %-7s %7s %6s %9s %10s %10s %8s\n", "sync", "series",
            "conns", "points", "points/s", "embedded", "srv/emb");
    for (int i = 0; i < TS_SRV_NINGEST; i++) {
        const ts_server_ingest *ig = &r->ingest[i];
        double emb = embedded_ingest(ig, e);
        char a[16], b[16] = "-", ratio[16] = "-";
        bench_fmt_rate(ig->pps, a, sizeof a);
        if (isfinite(emb)) {
            bench_fmt_rate(emb, b, sizeof b);
            snprintf(ratio, sizeof ratio, "%.2f", ig->pps / emb);
        }
        fprintf(f, "  %-7s %7d %6d %9zu %10s %10s %8s\n", ig->sync,
                ig->series, ig->conns, ig->points, a, b, ratio);
    }
    fprintf(f,
            "  queries: %zu series x %zu points (one day, 10 s apart), %zu "
            "queries each,\n  one at a time on one connection, sync always "
            "server\n",
            r->day_series, r->day_points, r->nqueries);
    fprintf(f, "  %-20s %9s %10s %10s %10s %8s\n", "query", "reply",
            "median ms", "p99 ms", "embedded", "srv/emb");
    for (int k = 0; k < TS_SRV_NQUERY; k++) {
        const ts_server_query *q = &r->q[k];
        double emb = embedded_query(k, e);
        char shape[32], b[16] = "-", ratio[16] = "-";
        snprintf(shape, sizeof shape, "%zux%zu", q->series, q->points);
        if (isfinite(emb)) {
            snprintf(b, sizeof b, "%.3f", emb);
            snprintf(ratio, sizeof ratio, "%.2f", q->median_ms / emb);
        }
        fprintf(f, "  %-20s %9s %10.3f %10.3f %10s %8s\n", q->label, shape,
                q->median_ms, q->p99_ms, b, ratio);
    }
    fprintf(f, "  server part: %.1f s\n", r->elapsed);
}
