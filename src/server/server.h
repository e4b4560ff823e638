/*
 * server.h — cairn-server internals: configuration, clients, the command
 * table and the context a command runs in.
 *
 * Threads: one libuv loop thread owns the sockets, the clients and their
 * buffers, parses requests and runs every command that cannot block on the
 * disk for long (reads, connection commands). Commands that commit (writes,
 * EXEC, the expiry sweep) run on a pool of committer threads, so that many
 * commits are in flight at once and share the log's group commit; a client
 * with a command on a committer runs nothing else until its reply is back
 * (replies stay in request order, and a client reads its own writes). A
 * committer touches only its job (argument copies, reply buffer) and the
 * database handle, which is thread-safe; the loop learns of finished jobs
 * through a uv_async handle.
 */
#ifndef CAIRN_SERVER_SERVER_H
#define CAIRN_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cairn.h"
#include "server/resp.h"

typedef struct srv_config {
    char *bind;                 /* "127.0.0.1" */
    int port;                   /* 6380 */
    char *dir;                  /* "./cairn-data" */
    char *requirepass;          /* NULL: no password */
    cairn_sync_mode sync;       /* always */
    uint32_t sync_interval_ms;  /* 1000 (sync interval) */
    uint64_t history_ms;        /* 600000 */
    size_t max_bulk;            /* 512 MiB (proto-max-bulk-len) */
    size_t max_args;            /* 1048576 */
    size_t max_clients;         /* 10000 */
    size_t max_query_buf;       /* 1 GiB (client-query-buffer-limit) */
    size_t max_output;          /* 1 GiB of unread replies: dropped */
    uint32_t timeout_s;         /* 0: idle clients are never closed */
    int commit_threads;         /* 64 */
    int background_nice;        /* 20: engine background threads under
                                   SCHED_IDLE; 0..19: their nice */
    size_t memtable_size;       /* 64 MiB (memtable-size) */
    size_t block_cache_size;    /* 1 GiB (block-cache-size), filled by reads */
    size_t row_cache_size;      /* 64 MiB (row-cache-size); 0: off */
    char *archive_dir;          /* archive-dir: the archive tier (NULL: none) */
    int archive_min_level;      /* archive-min-level (0: no level rule) */
    uint64_t archive_min_age_s; /* archive-min-age, seconds (0: no age rule) */
    int archive_zstd_level;     /* archive-zstd-level (19) */
    int metrics_port;           /* 0: no Prometheus endpoint */
    int tls_port;               /* 0: no TLS listener */
    char *tls_cert_file;        /* PEM certificate chain (tls-port) */
    char *tls_key_file;         /* PEM private key */
    char *tls_ca_cert_file;     /* CAs for client certificates (or NULL) */
    bool tls_auth_clients;      /* require client certificates (no) */
    int64_t slowlog_slower_than; /* microseconds; < 0: off (10000) */
    size_t slowlog_max_len;     /* 128 */
    char **users;               /* "user NAME RULES..." lines: ACL rules */
    size_t nusers;
    char *config_file;          /* the file read at start, if any */
} srv_config;

void srv_config_init(srv_config *c);
void srv_config_free(srv_config *c);
/* A deep copy of src into dst: 0, or -1 when out of memory. */
int srv_config_copy(srv_config *dst, const srv_config *src);
/* The name of setting i (CONFIG GET walks them), NULL past the last. */
const char *srv_config_name(size_t i);
/* The value of setting `name` as CONFIG GET shows it: 0, or -1 if the
 * name is unknown. */
int srv_config_get(const srv_config *c, const char *name, char *buf,
                   size_t len);
/* Can CONFIG SET change it while the server runs? */
bool srv_config_runtime(const char *name);
/* CONFIG REWRITE: write the settings into the config file c->config_file,
 * keeping its comments and order, replacing the lines of settings it has,
 * appending those it lacks that differ from the defaults (and the ACL user
 * lines given), atomically (a temporary file, fsync, rename). 0, or -1
 * with a message. */
int srv_config_rewrite(const srv_config *c, char *const *user_lines,
                       size_t nuser_lines, char *err, size_t errlen);
/* Apply one "name value..." setting (config file line or --name value).
 * 0, or -1 with a message in err. */
int srv_config_set(srv_config *c, const char *name, const char *value,
                   char *err, size_t errlen);
/* Read a config file of "name value" lines (# comments). */
int srv_config_load(srv_config *c, const char *path, char *err,
                    size_t errlen);

typedef struct server server;
typedef struct client client;
struct srv_acl_user;

typedef struct cmd_ctx {
    server *srv;
    cairn_db *db;
    client *c;      /* the client; on a committer only its immutable id */
    int proto;      /* 2 or 3 */
    size_t argc;
    const uint8_t **argv;
    const size_t *argl;
    cairn_resp_buf *out;
    cairn_txn *txn; /* inside EXEC: the transaction every command uses */
    uint64_t version; /* a write's commit version (0: none) */
    uint64_t now_ms;
    /* Set by a command run in x->txn that met CAIRN_ECONFLICT (a series
     * another transaction holds): the whole transaction must be aborted
     * and run again, not committed with that command's error reply. */
    bool txn_conflict;
} cmd_ctx;

#define CMD_WRITE 0x01  /* commits: runs on a committer thread */
#define CMD_NOAUTH 0x02 /* allowed before AUTH */
#define CMD_NOMULTI 0x04 /* runs at once even inside MULTI (EXEC, ...) */
#define CMD_LOOP 0x08   /* touches the client or server: loop thread only;
                           queued inside MULTI, EXEC runs it on the loop
                           once its transaction is back (cmd_queued_on_loop) */
#define CMD_BLOCKING 0x10 /* a write that may take long (a flush, every
                             key): always on a committer thread */
#define CMD_OFFLOOP 0x20 /* a read that may walk every key: on a committer
                            thread, so the loop keeps serving others */
#define CMD_NOSLOWLOG 0x40 /* not logged itself (EXEC: its commands are) */
#define CMD_SUBCMDS 0x80 /* a container: argv[1] names a subcommand */
#define CMD_BLIND 0x100 /* reads nothing to decide what it writes unless
                           through its transaction (SET, MSET...): a batch
                           of only these commits blind when nothing was
                           read (cairn_txn_options.blind_if_unread) */
#define CMD_MULTIOK 0x200 /* a CMD_LOOP command that EXEC runs in its
                             transaction, off the loop: there it touches no
                             client or server state (SELECT, UNWATCH) */
#define CMD_NOTXN 0x400 /* refused inside MULTI, as Redis's "no-multi"
                           commands (SAVE, SHUTDOWN) */

typedef struct cmd_def {
    const char *name;
    int arity;          /* Redis convention: N exact, -N at least N */
    unsigned flags;
    void (*fn)(cmd_ctx *x);
    int first, last, step; /* key positions (COMMAND INFO): 0 none; last
                              -1 through the end */
    unsigned cats;      /* SRV_ACL_CAT_* */
    const char *summary;
} cmd_def;

const cmd_def *cmd_lookup(const uint8_t *name, size_t len);
/* Does argc (the name included) fit d's arity? */
bool cmd_arity_ok(const cmd_def *d, size_t argc);
const cmd_def *cmd_table(size_t *n);

/* A command kept for later (MULTI's queue, a job): its own copies of the
 * arguments, in buf. */
typedef struct cmd_queued {
    const cmd_def *def;
    size_t argc;
    const uint8_t **argv;
    size_t *argl;
    uint8_t *buf;
    int denied; /* EXEC: ACL rules changed since it was queued (CMD_DENIED_*) */
    int proto;  /* EXEC: the protocol its reply is written in (0: the
                   client's); a HELLO queued before it may change it */
} cmd_queued;

/* What a queued AUTH or HELLO will do to the session when EXEC runs it:
 * the user it logs in as (*user, if it will succeed in that) and the
 * protocol the commands after it see (*proto). Any other command changes
 * nothing. EXEC runs these on the loop after the transaction's key
 * commands, so it works out beforehand what Redis, running the queue in
 * order, gives each later command: the ACL check of that user, replies in
 * that protocol. Follows c_auth and c_hello. */
void cmd_queued_session(server *s, const cmd_queued *q,
                        const struct srv_acl_user **user, int *proto);

/* Does EXEC run this queued command on the loop thread, after its
 * transaction is back (a CMD_LOOP command, MEMORY STATS / DOCTOR), rather
 * than in the transaction? EXEC's job writes no reply for it; the loop
 * runs it and puts its reply in its place (unless the ACL denied it at
 * EXEC: then the job wrote the NOPERM reply). */
bool cmd_queued_on_loop(const cmd_queued *q);

/* A container's subcommand (argv[1]) known, with its arity? Else false,
 * with Redis's error in out. Inside MULTI it is checked when queued, as
 * Redis does: a bad one aborts EXEC. */
bool cmd_subcommand_ok(const cmd_def *d, size_t argc,
                       const uint8_t *const *argv, const size_t *argl,
                       cairn_resp_buf *out);

#define CMD_DENIED_COMMAND 1
#define CMD_DENIED_KEYS 2

/* Loop-side helpers the commands use (loop thread only). */
uint64_t srv_client_id(const client *c);
int srv_client_proto(const client *c);
void srv_client_set_proto(client *c, int proto);
bool srv_client_authed(client *c);
/* AUTH / HELLO AUTH: log in as user (NULL: "default") if the password
 * fits; true on success (the client then runs as that user). */
bool srv_client_login(client *c, const uint8_t *user, size_t ul,
                      const uint8_t *pass, size_t pl);
/* The user that name (NULL: "default") and password log in as; NULL if
 * they do not (no change to any client). */
const struct srv_acl_user *srv_login_user(server *s, const uint8_t *user,
                                          size_t ul, const uint8_t *pass,
                                          size_t pl);
/* RESET: back to the default user, authenticated only if it needs no
 * password. */
void srv_client_login_default(client *c);
/* The client's user name (NULL before authentication). */
const char *srv_client_user(const client *c);
struct srv_acl *srv_get_acl(server *s);
/* ACL: run the command, then drop the clients of deleted users. */
void srv_acl_run(server *s, client *c, size_t argc, const uint8_t *const *argv,
                 const size_t *argl, cairn_resp_buf *out);
/* CONFIG SET name value for a setting srv_config_runtime() allows (the
 * caller checks): validate, apply to the running server. 0, or -1 with a
 * message. */
int srv_config_apply(server *s, const char *name, const char *value,
                     char *err, size_t errlen);
/* CONFIG REWRITE. */
int srv_config_rewrite_running(server *s, char *err, size_t errlen);
/* SLOWLOG GET [n] / LEN / RESET / HELP. */
void srv_slowlog_command(server *s, cmd_ctx *x);
/* SLOWLOG's subcommands, their names and arities (COMMAND LIST). */
const cairn_resp_sub *srv_slowlog_subcommands(size_t *n);
void srv_client_close_after_reply(client *c);
const char *srv_client_name(const client *c);
void srv_client_set_name(client *c, const uint8_t *n, size_t len);
uint64_t srv_client_last_version(const client *c);
void srv_client_info(const client *c, cairn_resp_buf *out);
/* CLIENT LIST / CLIENT KILL filters (Redis 7's); every one set must
 * match. */
typedef struct srv_client_filter {
    const uint64_t *ids; /* one of these (nids 0: any) */
    size_t nids;
    bool no_type;        /* TYPE master/replica/pubsub: nobody here */
    const uint8_t *addr; /* "ip:port" of the peer; NULL: any */
    size_t addrl;
    const uint8_t *laddr; /* "ip:port" of the local end; NULL: any */
    size_t laddrl;
    const char *user;    /* NULL: any */
    const client *skip;  /* SKIPME yes: the caller */
} srv_client_filter;
void srv_client_list(server *s, const srv_client_filter *f,
                     cairn_resp_buf *out);
/* Close the matching clients (self, or one waiting for a reply, after
 * its reply); returns how many. */
long long srv_client_kill(server *s, const srv_client_filter *f,
                          client *self);
/* INFO [section ...]: argv[0..argc) are the sections asked for (none:
 * the default ones). */
void srv_info(server *s, size_t argc, const uint8_t *const *argv,
              const size_t *argl, cairn_resp_buf *out);
/* MEMORY STATS (a map of Redis's names where they apply, Cairn's memory
 * tiers beside) and MEMORY DOCTOR (a report in words). Loop thread. */
void srv_memory_stats(server *s, cairn_resp_buf *out);
void srv_memory_doctor(server *s, cairn_resp_buf *out);
/* CONFIG RESETSTAT: zero the statistics INFO shows (as Redis resets them). */
void srv_reset_stats(server *s);
/* A read command looked a key up (any thread): INFO's keyspace_hits or
 * keyspace_misses. */
void srv_note_lookup(server *s, bool hit);
/* SAVE / BGSAVE ran for usec microseconds and failed or not (any thread). */
void srv_note_save(server *s, uint64_t usec, bool failed);
/* SCAN cursors (any thread). A cursor with SCAN_CURSOR_KEPT set (and
 * below SCAN_CURSOR_LIMIT) names a key kept by srv_scan_save (the one the
 * next call starts at); 0 when out of memory. srv_scan_load copies it into
 * *key (malloc'ed): false when it is no longer kept (the cursor's low 18
 * bits then hold the key's first bytes: up to 2, their count in bits
 * 16-17; scan_cursor_head). Every cursor handed out is below 2^53, so that
 * clients that read it as a double (node-redis 4, Lua) give it back
 * exactly. SCAN_CURSOR_KEPT_V1 marks the kept cursors of earlier versions
 * (bit 62): their low 18 bits are read the same way. srv_scan_save's from:
 * the cursor the call went on from (0: a scan begins), whose place the new
 * one takes. */
#define SCAN_CURSOR_KEPT (1ULL << 52)
#define SCAN_CURSOR_LIMIT (1ULL << 53)
#define SCAN_CURSOR_KEPT_V1 (1ULL << 62)
uint64_t scan_cursor_head(const uint8_t *key, size_t klen);
uint64_t srv_scan_save(server *s, const uint8_t *key, size_t klen,
                       uint64_t from);
bool srv_scan_load(server *s, uint64_t id, uint8_t **key, size_t *klen);
const srv_config *srv_get_config(const server *s);
void srv_request_shutdown(server *s);

/* MULTI state (loop thread). */
bool srv_client_in_multi(const client *c);
void srv_client_multi(client *c);
void srv_client_discard(client *c);
/* A watched key as WATCH found it: the database version then, and whether
 * the key was there but expired (not yet deleted). EXEC fails if the key
 * was written since, or has expired since (Redis 7.0: a key expired at
 * WATCH whose only change is its deletion counts as unchanged). */
typedef struct srv_watch {
    uint64_t version;
    bool expired;
} srv_watch;
int srv_client_watch(client *c, const uint8_t *key, size_t klen,
                     uint64_t version, bool expired);
void srv_client_unwatch(client *c);
/* MONITOR (loop thread): from now on every command the server processes
 * is fed to c, until RESET or it closes. 0; 1 if c was monitoring
 * already; CAIRN_ENOMEM. */
int srv_client_monitor(client *c);
void srv_client_unmonitor(client *c);
/* Queue EXEC's job; the reply comes when it is done. */
void srv_client_exec(client *c);

/* The stripe lock of a key (committer threads; one at a time). */
void srv_lock_key(server *s, const uint8_t *key, size_t len);
void srv_unlock_key(server *s, const uint8_t *key, size_t len);

/* Run the server until SHUTDOWN or a signal; 0 on a clean stop. */
int srv_run(const srv_config *cfg);
/* The database options the server opens its database with. */
void srv_db_options(const srv_config *cfg, cairn_options *o);

/* A session: the server's dispatch without a loop or sockets, for tests
 * and the dispatch fuzz target. A server context over db (opened by the
 * caller, closed by it after srv_session_free) with its committer threads
 * and one client, fed bytes as if read from a connection: the same parser,
 * checks, batches, MULTI queue and jobs as srv_run's clients. The caller's
 * thread plays the loop thread, so a session is used by one thread at a
 * time. While a session exists, the server logs nothing. */
typedef struct srv_session srv_session;
/* NULL when out of memory or if no committer thread starts. */
srv_session *srv_session_new(const srv_config *cfg, cairn_db *db);
/* Append n bytes to the client's input and run every command they
 * complete, waiting for the jobs they start (commits, EXEC, key walks);
 * the replies are appended to out. 0; CAIRN_ECLOSED once the client is
 * closed (QUIT, a protocol error, a limit, CLIENT KILL, ...): nothing
 * more runs; CAIRN_ENOMEM. */
int srv_session_feed(srv_session *ss, const uint8_t *p, size_t n,
                     cairn_resp_buf *out);
bool srv_session_closed(const srv_session *ss);
/* The protocol its replies are in now: 2, or 3 after HELLO 3. */
int srv_session_proto(const srv_session *ss);
void srv_session_free(srv_session *ss);

/* Command helpers shared by commands.c and server.c (committer threads). */
/* EXEC: the queued commands in one transaction, committed once (retried on
 * a conflict): an array of their replies; nil if a watched key changed
 * since its WATCH (wst: see srv_watch); one error if the commit fails. */
void cmd_exec_queued(cmd_ctx *x, const cmd_queued *cmds, size_t n,
                     size_t nwatch, const uint8_t **wkeys, const size_t *wlens,
                     const srv_watch *wst);
/* Pipelined writes: the same, but their replies one after the other, as if
 * run one by one; if the commit fails, each answers with the error. */
void cmd_run_batch(cmd_ctx *x, const cmd_queued *cmds, size_t n);
/* Pipelined writes on the loop thread: run cmds into a new transaction
 * (replies to x->out, as cmd_run_batch would if the commit succeeds) for
 * the caller to commit asynchronously. 0 and *txn, or an error (nothing
 * replied): CAIRN_EBUSY for a command that must run on a committer. */
int cmd_batch_prepare(cmd_ctx *x, const cmd_queued *cmds, size_t n,
                      cairn_txn **txn);
/* Delete up to max keys whose expiry is at or before now_ms (and their
 * expiry hints): how many keys it deleted. */
size_t cmd_sweep_expired(cairn_db *db, uint64_t now_ms, size_t max);
/* Count the live keys and those with an expiry, and the mean time those
 * have left (ms; avg_ttl_ms may be NULL): a walk of every key. */
int cmd_count_keys(cairn_db *db, uint64_t now_ms, uint64_t *keys,
                   uint64_t *expires, uint64_t *avg_ttl_ms);
void cmd_reply_engine_error(cairn_resp_buf *out, int rc);
/* A write command's work in transaction t: writes its reply (errors
 * included) and returns 0, or returns an engine error having written
 * nothing (the reply is then that error, or the work runs again on a
 * conflict). arg: the command's parsed arguments. */
typedef int (*cmd_write_op)(cmd_ctx *x, cairn_txn *t, void *arg);
/* Run op in x->txn (inside EXEC or a batch: a conflict marks
 * x->txn_conflict), else in a transaction of its own, committed, retried
 * on a conflict with its reply rewritten. */
void cmd_run_write(cmd_ctx *x, cmd_write_op op, void *arg);
void cmd_reply_bad_sub(cairn_resp_buf *out, const char *cmd,
                       const uint8_t *sub, size_t sl);
void cmd_reply_help(cairn_resp_buf *out, const char *const *lines, size_t n);
/* A text reply (INFO, MEMORY DOCTOR...) written through a stdio stream:
 * cmd_text_begin gives the stream (NULL: out of memory, the error
 * replied); cmd_text_end replies what was written (a verbatim string in
 * RESP3) and frees it all. */
typedef struct cmd_text {
    FILE *f;
    char *buf;
    size_t len;
    cairn_resp_buf *out;
} cmd_text;
cmd_text *cmd_text_begin(cairn_resp_buf *out);
void cmd_text_end(cmd_text *t);

#endif /* CAIRN_SERVER_SERVER_H */
