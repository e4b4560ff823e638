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
    char *config_file;          /* the file read at start, if any */
} srv_config;

void srv_config_init(srv_config *c);
void srv_config_free(srv_config *c);
/* Apply one "name value..." setting (config file line or --name value).
 * 0, or -1 with a message in err. */
int srv_config_set(srv_config *c, const char *name, const char *value,
                   char *err, size_t errlen);
/* Read a config file of "name value" lines (# comments). */
int srv_config_load(srv_config *c, const char *path, char *err,
                    size_t errlen);

typedef struct server server;
typedef struct client client;

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
} cmd_ctx;

#define CMD_WRITE 0x01  /* commits: runs on a committer thread */
#define CMD_NOAUTH 0x02 /* allowed before AUTH */
#define CMD_NOMULTI 0x04 /* runs at once even inside MULTI (EXEC, ...) */
#define CMD_LOOP 0x08   /* touches the client or server: loop thread only,
                           refused inside MULTI */
#define CMD_BLOCKING 0x10 /* a write that may take long (a flush, every
                             key): always on a committer thread */

typedef struct cmd_def {
    const char *name;
    int arity;          /* Redis convention: N exact, -N at least N */
    unsigned flags;
    void (*fn)(cmd_ctx *x);
    const char *summary;
} cmd_def;

const cmd_def *cmd_lookup(const uint8_t *name, size_t len);
const cmd_def *cmd_table(size_t *n);

/* A command kept for later (MULTI's queue, a job): its own copies of the
 * arguments, in buf. */
typedef struct cmd_queued {
    const cmd_def *def;
    size_t argc;
    const uint8_t **argv;
    size_t *argl;
    uint8_t *buf;
} cmd_queued;

/* Loop-side helpers the commands use (loop thread only). */
uint64_t srv_client_id(const client *c);
int srv_client_proto(const client *c);
void srv_client_set_proto(client *c, int proto);
bool srv_client_authed(const client *c);
void srv_client_set_authed(client *c, bool a);
void srv_client_close_after_reply(client *c);
const char *srv_client_name(const client *c);
void srv_client_set_name(client *c, const uint8_t *n, size_t len);
uint64_t srv_client_last_version(const client *c);
void srv_client_info(const client *c, cairn_resp_buf *out);
void srv_client_list(server *s, cairn_resp_buf *out);
int srv_client_kill_id(server *s, uint64_t id);
void srv_info(server *s, const char *section, cairn_resp_buf *out);
const srv_config *srv_get_config(const server *s);
void srv_request_shutdown(server *s);

/* MULTI state (loop thread). */
bool srv_client_in_multi(const client *c);
void srv_client_multi(client *c);
void srv_client_discard(client *c);
int srv_client_watch(client *c, const uint8_t *key, size_t klen,
                     uint64_t version);
void srv_client_unwatch(client *c);
/* Queue EXEC's job; the reply comes when it is done. */
void srv_client_exec(client *c);

/* The stripe lock of a key (committer threads; one at a time). */
void srv_lock_key(server *s, const uint8_t *key, size_t len);
void srv_unlock_key(server *s, const uint8_t *key, size_t len);

/* Run the server until SHUTDOWN or a signal; 0 on a clean stop. */
int srv_run(const srv_config *cfg);

/* Command helpers shared by commands.c and server.c (committer threads). */
/* EXEC: the queued commands in one transaction, committed once (retried on
 * a conflict): an array of their replies; nil if a watched key has a
 * version newer than watch_version; one error if the commit fails. */
void cmd_exec_queued(cmd_ctx *x, const cmd_queued *cmds, size_t n,
                     size_t nwatch, const uint8_t **wkeys, const size_t *wlens,
                     uint64_t watch_version);
/* Pipelined writes: the same, but their replies one after the other, as if
 * run one by one; if the commit fails, each answers with the error. */
void cmd_run_batch(cmd_ctx *x, const cmd_queued *cmds, size_t n);
/* Pipelined writes on the loop thread: run cmds into a new transaction
 * (replies to x->out, as cmd_run_batch would if the commit succeeds) for
 * the caller to commit asynchronously. 0 and *txn, or an error (nothing
 * replied): CAIRN_EBUSY for a command that must run on a committer. */
int cmd_batch_prepare(cmd_ctx *x, const cmd_queued *cmds, size_t n,
                      cairn_txn **txn);
void cmd_sweep_expired(cairn_db *db, uint64_t now_ms, size_t max);
void cmd_reply_engine_error(cairn_resp_buf *out, int rc);

#endif /* CAIRN_SERVER_SERVER_H */
