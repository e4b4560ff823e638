/*
 * commands.c — the commands of cairn-server, as Redis 7 documents them
 * (replies and error texts included), over the key space of keyspace.h.
 *
 * Invariants:
 *   - A write command runs in one Cairn transaction: its own (begun and
 *     committed here, retried on a conflict with its reply rewritten), or
 *     EXEC's (x->txn). It validates before it writes, so a command that
 *     answers with an error has written nothing.
 *   - A reply is written only into x->out; the caller sends it once the
 *     commit is durable under the configured sync mode.
 *   - Commands flagged CMD_LOOP run on the loop thread only (they touch the
 *     client or the server); the others use nothing but x and the database.
 *     Queued in MULTI, a CMD_LOOP command is run by the loop once EXEC's
 *     transaction is back, its reply put in its place (cmd_queued_on_loop);
 *     one also flagged CMD_MULTIOK is run by EXEC in the transaction, off
 *     the loop (x->txn set), where it touches neither.
 * Locking: none of its own; the database handle is thread-safe.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "server/acl.h"
#include "server/keyspace.h"
#include "server/server.h"
#include "server/ts_commands.h"

#define MAX_RETRIES 100000

/* Before retrying after a conflict: the winner may still be on its way to
 * the disk, and retrying at once would only meet it again. Sleep 20 us,
 * doubling to 2 ms, with jitter so that losers spread out. */
static void conflict_backoff(int attempt)
{
    unsigned us = 20u << (attempt < 7 ? attempt : 7);
    us += (unsigned)random() % us;
    struct timespec d = {0, (long)us * 1000};
    nanosleep(&d, NULL);
}

/* ---------- small helpers ---------- */

static bool is_word(const uint8_t *p, size_t len, const char *s)
{
    size_t n = strlen(s);
    return len == n && strncasecmp((const char *)p, s, n) == 0;
}

static bool arg_is(const cmd_ctx *x, size_t i, const char *s)
{
    return is_word(x->argv[i], x->argl[i], s);
}

static bool arg_cstr(cmd_ctx *x, size_t i, char *buf, size_t len);

/* Parse a whole argument as a signed 64-bit integer (Redis: string2ll). */
static bool parse_ll(const uint8_t *p, size_t n, long long *out)
{
    if (n == 0 || n > 20)
        return false;
    char buf[32];
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (buf[0] == '+' || isspace((unsigned char)buf[0]) ||
        (n > 1 && buf[0] == '0') || (n > 2 && buf[0] == '-' && buf[1] == '0'))
        return false;
    if (n == 2 && buf[0] == '-' && buf[1] == '0')
        return false;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(buf, &end, 10);
    if (errno || end != buf + n)
        return false;
    *out = v;
    return true;
}

static bool parse_ld(const uint8_t *p, size_t n, long double *out)
{
    if (n == 0 || n > 5000 || isspace(p[0]))
        return false;
    char *buf = malloc(n + 1);
    if (!buf)
        return false;
    memcpy(buf, p, n);
    buf[n] = '\0';
    errno = 0;
    char *end = NULL;
    long double v = strtold(buf, &end);
    bool ok = end == buf + n && errno != ERANGE && !isnan(v);
    free(buf);
    if (ok)
        *out = v;
    return ok;
}

void cmd_reply_engine_error(cairn_resp_buf *out, int rc)
{
    switch (rc) {
    case CAIRN_ENOSPC:
        cairn_resp_error(out, "ERR no space left on the data device "
                              "(writes refused, nothing lost)");
        break;
    case CAIRN_EREADONLY:
        cairn_resp_error(out, "READONLY the database is read-only (a log "
                              "write or sync failed; see the server log)");
        break;
    case CAIRN_ETOOLARGE:
        cairn_resp_error(out, "ERR key or value too large");
        break;
    case CAIRN_ECORRUPT:
        cairn_resp_error(out, "ERR stored data is corrupt (see cairn check)");
        break;
    case CAIRN_EHISTORY:
        cairn_resp_error(out, "ERR version or time is older than the history "
                              "window");
        break;
    default:
        cairn_resp_errorf(out, "ERR %s", cairn_strerror(rc));
        break;
    }
}

static void reply_wrongtype(cmd_ctx *x)
{
    cairn_resp_error(x->out, "WRONGTYPE Operation against a key holding the "
                             "wrong kind of value");
}

static void reply_syntax(cmd_ctx *x)
{
    cairn_resp_error(x->out, "ERR syntax error");
}

static void reply_notint(cmd_ctx *x)
{
    cairn_resp_error(x->out, "ERR value is not an integer or out of range");
}

/* Read a key for a command (x->txn or the database). A read command's
 * lookup (t NULL: not a write reading what it changes) counts as a
 * keyspace hit or miss. */
static int get_rec(cmd_ctx *x, cairn_txn *t, const uint8_t *k, size_t kl,
                   ks_rec *r)
{
    int rc = ks_get(x->db, t ? t : x->txn, k, kl, x->now_ms, r);
    if (rc == 0 && !t && x->srv)
        srv_note_lookup(x->srv, r->found);
    return rc;
}

/* Run op in a transaction: x->txn inside EXEC, else one of its own,
 * committed, retried on a conflict (the reply rewritten each time). op
 * writes its reply (errors included) and returns 0, or returns an engine
 * error and writes nothing. arg: the command's parsed options. A conflict
 * inside x->txn (a time series another transaction holds) marks
 * x->txn_conflict: the caller aborts and runs the transaction again. */
typedef cmd_write_op write_op;

static void run_write(cmd_ctx *x, write_op op, void *arg)
{
    if (x->txn) {
        size_t mark = x->out->len;
        int rc = op(x, x->txn, arg);
        if (rc) {
            x->out->len = mark;
            if (rc == CAIRN_ECONFLICT)
                x->txn_conflict = true;
            cmd_reply_engine_error(x->out, rc);
        }
        return;
    }
    size_t mark = x->out->len;
    /* Writers of one key queue on its stripe instead of conflicting (other
     * keys a command writes may still conflict: then it retries). */
    const uint8_t *lk = x->argc > 1 ? x->argv[1] : (const uint8_t *)"";
    size_t ll = x->argc > 1 ? x->argl[1] : 0;
    srv_lock_key(x->srv, lk, ll);
    for (int attempt = 0;; attempt++) {
        x->out->len = mark;
        cairn_txn *t = NULL;
        int rc = cairn_txn_begin(x->db, NULL, &t);
        if (rc == 0)
            rc = op(x, t, arg);
        if (rc == 0) {
            uint64_t v = 0;
            rc = cairn_txn_commit(t, &v);
            t = NULL;
            if (rc == 0) {
                x->version = v;
                break;
            }
        }
        if (t)
            cairn_txn_abort(t);
        if (rc == CAIRN_ECONFLICT && attempt < MAX_RETRIES) {
            conflict_backoff(attempt);
            continue;
        }
        x->out->len = mark;
        cmd_reply_engine_error(x->out, rc);
        break;
    }
    srv_unlock_key(x->srv, lk, ll);
}

void cmd_run_write(cmd_ctx *x, cmd_write_op op, void *arg)
{
    run_write(x, op, arg);
}

/* The reply to an unknown subcommand of cmd (Redis's wording). */
void cmd_reply_bad_sub(cairn_resp_buf *out, const char *cmd,
                       const uint8_t *sub, size_t sl)
{
    cairn_resp_errorf(out,
                      "ERR unknown subcommand or wrong number of arguments "
                      "for '%.*s'. Try %s HELP.",
                      (int)(sl > 128 ? 128 : sl), (const char *)sub, cmd);
}

/* A HELP reply: the lines as simple strings. */
void cmd_reply_help(cairn_resp_buf *out, const char *const *lines, size_t n)
{
    cairn_resp_array(out, n);
    for (size_t i = 0; i < n; i++)
        cairn_resp_simple(out, lines[i]);
}

/* ---------- connection ---------- */

static void c_ping(cmd_ctx *x)
{
    if (x->argc > 2) {
        cairn_resp_error(x->out,
                         "ERR wrong number of arguments for 'ping' command");
        return;
    }
    if (x->argc == 2)
        cairn_resp_bulk(x->out, x->argv[1], x->argl[1]);
    else
        cairn_resp_simple(x->out, "PONG");
}

static void c_echo(cmd_ctx *x)
{
    cairn_resp_bulk(x->out, x->argv[1], x->argl[1]);
}

static void hello_reply(cmd_ctx *x)
{
    cairn_resp_map(x->out, 7);
    cairn_resp_bulk_cstr(x->out, "server");
    cairn_resp_bulk_cstr(x->out, "cairn");
    cairn_resp_bulk_cstr(x->out, "version");
    cairn_resp_bulk_cstr(x->out, CAIRN_VERSION_STRING);
    cairn_resp_bulk_cstr(x->out, "proto");
    cairn_resp_integer(x->out, x->proto);
    cairn_resp_bulk_cstr(x->out, "id");
    cairn_resp_integer(x->out, (long long)srv_client_id(x->c));
    cairn_resp_bulk_cstr(x->out, "mode");
    cairn_resp_bulk_cstr(x->out, "standalone");
    cairn_resp_bulk_cstr(x->out, "role");
    cairn_resp_bulk_cstr(x->out, "master");
    cairn_resp_bulk_cstr(x->out, "modules");
    cairn_resp_array(x->out, 0);
}

static bool check_pass(cmd_ctx *x, const uint8_t *user, size_t ul,
                       const uint8_t *pass, size_t pl)
{
    return srv_client_login(x->c, user, ul, pass, pl);
}

/* A client name is printable ASCII without spaces (CLIENT SETNAME, HELLO
 * SETNAME); false after replying Redis's error. */
static bool client_name_ok(cmd_ctx *x, size_t i)
{
    for (size_t j = 0; j < x->argl[i]; j++)
        if (x->argv[i][j] <= ' ' || x->argv[i][j] > '~') {
            cairn_resp_error(x->out, "ERR Client names cannot contain spaces, "
                                     "newlines or special characters.");
            return false;
        }
    return true;
}

static void c_hello(cmd_ctx *x)
{
    long long ver = srv_client_proto(x->c);
    size_t i = 1;
    if (x->argc >= 2) {
        if (!parse_ll(x->argv[1], x->argl[1], &ver)) {
            cairn_resp_error(x->out, "ERR Protocol version is not an integer "
                                     "or out of range");
            return;
        }
        i = 2;
        if (ver < 2 || ver > 3) {
            cairn_resp_error(x->out, "NOPROTO unsupported protocol version");
            return;
        }
    }
    /* In Redis 7.0's order: every option parsed, then the credentials
     * checked, then the name (a bad one is refused with the client left
     * authenticated but the protocol unchanged), then the protocol. */
    size_t user = 0, name = 0;
    for (; i < x->argc; i++) {
        if (arg_is(x, i, "AUTH") && i + 2 < x->argc) {
            user = i + 1;
            i += 2;
        } else if (arg_is(x, i, "SETNAME") && i + 1 < x->argc) {
            name = i + 1;
            i += 1;
        } else {
            cairn_resp_errorf(x->out, "ERR Syntax error in HELLO option '%.*s'",
                              (int)x->argl[i], (const char *)x->argv[i]);
            return;
        }
    }
    if (user && !check_pass(x, x->argv[user], x->argl[user],
                            x->argv[user + 1], x->argl[user + 1])) {
        cairn_resp_error(x->out, "WRONGPASS invalid username-password "
                                 "pair or user is disabled.");
        return;
    }
    if (!srv_client_authed(x->c)) {
        cairn_resp_error(x->out, "NOAUTH HELLO must be called with the client "
                                 "already authenticated, otherwise the HELLO "
                                 "AUTH <user> <pass> option can be used to "
                                 "authenticate the client and select the RESP "
                                 "protocol version at the same time");
        return;
    }
    if (name) {
        if (!client_name_ok(x, name))
            return;
        srv_client_set_name(x->c, x->argv[name], x->argl[name]);
    }
    srv_client_set_proto(x->c, (int)ver);
    x->proto = (int)ver;
    x->out->proto = (int)ver;
    hello_reply(x);
}

static void c_auth(cmd_ctx *x)
{
    if (x->argc > 3) {
        reply_syntax(x);
        return;
    }
    if (srv_acl_default_nopass(srv_get_acl(x->srv))) {
        if (x->argc == 2) {
            cairn_resp_error(x->out,
                             "ERR AUTH <password> called without any password "
                             "configured for the default user. Are you sure "
                             "your configuration is correct?");
            return;
        }
    }
    bool ok = x->argc == 2 ? check_pass(x, NULL, 0, x->argv[1], x->argl[1])
                           : check_pass(x, x->argv[1], x->argl[1], x->argv[2],
                                        x->argl[2]);
    if (!ok) {
        cairn_resp_error(x->out, "WRONGPASS invalid username-password pair or "
                                 "user is disabled.");
        return;
    }
    cairn_resp_simple(x->out, "OK");
}

void cmd_queued_session(server *s, const cmd_queued *q,
                        const srv_acl_user **user, int *proto)
{
    const uint8_t *const *a = q->argv;
    const size_t *l = q->argl;
    if (q->def->fn == c_auth) {
        if (q->argc > 3 ||
            (q->argc == 2 && srv_acl_default_nopass(srv_get_acl(s))))
            return;
        const srv_acl_user *u =
            q->argc == 2 ? srv_login_user(s, NULL, 0, a[1], l[1])
                         : srv_login_user(s, a[1], l[1], a[2], l[2]);
        if (u)
            *user = u;
        return;
    }
    if (q->def->fn != c_hello)
        return;
    /* c_hello's order: the version, every option, the credentials (the
     * login stands even if what follows fails), the name, the protocol. */
    long long ver = *proto;
    size_t i = 1;
    if (q->argc >= 2) {
        if (!parse_ll(a[1], l[1], &ver) || ver < 2 || ver > 3)
            return;
        i = 2;
    }
    size_t auth = 0, name = 0;
    for (; i < q->argc; i++) {
        if (is_word(a[i], l[i], "AUTH") && i + 2 < q->argc) {
            auth = i + 1;
            i += 2;
        } else if (is_word(a[i], l[i], "SETNAME") && i + 1 < q->argc) {
            name = i + 1;
            i += 1;
        } else {
            return;
        }
    }
    if (auth) {
        const srv_acl_user *u =
            srv_login_user(s, a[auth], l[auth], a[auth + 1], l[auth + 1]);
        if (!u)
            return;
        *user = u;
    }
    if (name)
        for (size_t j = 0; j < l[name]; j++)
            if (a[name][j] <= ' ' || a[name][j] > '~')
                return;
    *proto = (int)ver;
}

static void c_select(cmd_ctx *x)
{
    long long db;
    if (!parse_ll(x->argv[1], x->argl[1], &db)) {
        reply_notint(x);
        return;
    }
    if (db != 0) {
        cairn_resp_error(x->out, "ERR DB index is out of range (cairn-server "
                                 "has database 0 only)");
        return;
    }
    cairn_resp_simple(x->out, "OK");
}

static void c_quit(cmd_ctx *x)
{
    cairn_resp_simple(x->out, "OK");
    srv_client_close_after_reply(x->c);
}

static void c_monitor(cmd_ctx *x)
{
    if (x->txn) { /* queued in MULTI, run by EXEC: refused, as in Redis */
        cairn_resp_error(x->out,
                         "ERR MONITOR isn't allowed for DENY BLOCKING client");
        return;
    }
    int rc = srv_client_monitor(x->c);
    if (rc < 0)
        cmd_reply_engine_error(x->out, rc);
    else if (rc == 0)
        cairn_resp_simple(x->out, "OK");
    /* Monitoring already: no reply at all, as Redis. */
}

static void c_reset(cmd_ctx *x)
{
    srv_client_unmonitor(x->c);
    srv_client_discard(x->c);
    srv_client_unwatch(x->c);
    srv_client_set_proto(x->c, 2);
    x->out->proto = 2;
    srv_client_set_name(x->c, NULL, 0);
    srv_client_login_default(x->c);
    cairn_resp_simple(x->out, "RESET");
}

static const cairn_resp_sub CLIENT_SUBS[] = {
    {"id", 2},    {"setname", 3}, {"getname", 2}, {"info", 2},
    {"list", -2}, {"kill", -3},   {"help", 2},
};

/* CLIENT LIST [TYPE type | ID id [id ...]], as Redis 7.0. */
static void client_list(cmd_ctx *x)
{
    srv_client_filter f = {0};
    uint64_t *ids = NULL;
    if (x->argc == 4 && arg_is(x, 2, "TYPE")) {
        if (arg_is(x, 3, "master") || arg_is(x, 3, "replica") ||
            arg_is(x, 3, "slave") || arg_is(x, 3, "pubsub")) {
            f.no_type = true;
        } else if (!arg_is(x, 3, "normal")) {
            cairn_resp_errorf(x->out, "ERR Unknown client type '%.*s'",
                              (int)(x->argl[3] > 128 ? 128 : x->argl[3]),
                              (const char *)x->argv[3]);
            return;
        }
    } else if (x->argc > 3 && arg_is(x, 2, "ID")) {
        ids = malloc((x->argc - 3) * sizeof *ids);
        if (!ids) {
            cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
            return;
        }
        for (size_t i = 3; i < x->argc; i++) {
            long long id;
            if (!parse_ll(x->argv[i], x->argl[i], &id)) {
                free(ids);
                cairn_resp_error(x->out, "ERR Invalid client ID");
                return;
            }
            ids[f.nids++] = (uint64_t)id;
        }
        f.ids = ids;
    } else if (x->argc != 2) {
        reply_syntax(x);
        return;
    }
    srv_client_list(x->srv, &f, x->out);
    free(ids);
}

/* CLIENT KILL ip:port (OK, or an error when nobody has it), or CLIENT KILL
 * <filter> <value> ... (how many were closed): ID, TYPE, ADDR, LADDR,
 * USER, SKIPME (yes by default), as Redis 7.0. */
static void client_kill(cmd_ctx *x)
{
    srv_client_filter f = {0};
    uint64_t id = 0;
    char user[256];
    if (x->argc == 3) {
        f.addr = x->argv[2];
        f.addrl = x->argl[2];
        if (srv_client_kill(x->srv, &f, x->c) == 0)
            cairn_resp_error(x->out, "ERR No such client");
        else
            cairn_resp_simple(x->out, "OK");
        return;
    }
    f.skip = x->c;
    for (size_t i = 2; i < x->argc; i += 2) {
        if (i + 1 >= x->argc) {
            reply_syntax(x);
            return;
        }
        const uint8_t *v = x->argv[i + 1];
        size_t vl = x->argl[i + 1];
        if (arg_is(x, i, "ID")) {
            long long n;
            if (!parse_ll(v, vl, &n) || n < 1) {
                cairn_resp_error(x->out,
                                 "ERR client-id should be greater than 0");
                return;
            }
            id = (uint64_t)n;
            f.ids = &id;
            f.nids = 1;
        } else if (arg_is(x, i, "TYPE")) {
            if (arg_is(x, i + 1, "master") || arg_is(x, i + 1, "replica") ||
                arg_is(x, i + 1, "slave") || arg_is(x, i + 1, "pubsub")) {
                f.no_type = true;
            } else if (arg_is(x, i + 1, "normal")) {
                f.no_type = false;
            } else {
                cairn_resp_errorf(x->out, "ERR Unknown client type '%.*s'",
                                  (int)(vl > 128 ? 128 : vl),
                                  (const char *)v);
                return;
            }
        } else if (arg_is(x, i, "ADDR")) {
            f.addr = v;
            f.addrl = vl;
        } else if (arg_is(x, i, "LADDR")) {
            f.laddr = v;
            f.laddrl = vl;
        } else if (arg_is(x, i, "USER")) {
            if (!arg_cstr(x, i + 1, user, sizeof user) ||
                !srv_acl_find(srv_get_acl(x->srv), user)) {
                cairn_resp_errorf(x->out, "ERR No such user '%.*s'",
                                  (int)(vl > 128 ? 128 : vl),
                                  (const char *)v);
                return;
            }
            f.user = user;
        } else if (arg_is(x, i, "SKIPME")) {
            if (arg_is(x, i + 1, "yes")) {
                f.skip = x->c;
            } else if (arg_is(x, i + 1, "no")) {
                f.skip = NULL;
            } else {
                reply_syntax(x);
                return;
            }
        } else {
            reply_syntax(x);
            return;
        }
    }
    cairn_resp_integer(x->out, srv_client_kill(x->srv, &f, x->c));
}

static void c_client(cmd_ctx *x)
{
    int k = cairn_resp_sub_find(x->out, "CLIENT", CLIENT_SUBS,
                                sizeof CLIENT_SUBS / sizeof CLIENT_SUBS[0],
                                x->argc, x->argv, x->argl);
    if (k < 0)
        return;
    const char *sub = CLIENT_SUBS[k].name;
    if (!strcmp(sub, "id")) {
        cairn_resp_integer(x->out, (long long)srv_client_id(x->c));
    } else if (!strcmp(sub, "setname")) {
        if (!client_name_ok(x, 2))
            return;
        srv_client_set_name(x->c, x->argv[2], x->argl[2]);
        cairn_resp_simple(x->out, "OK");
    } else if (!strcmp(sub, "getname")) {
        const char *n = srv_client_name(x->c);
        if (n && *n)
            cairn_resp_bulk_cstr(x->out, n);
        else
            cairn_resp_null(x->out);
    } else if (!strcmp(sub, "info")) {
        srv_client_info(x->c, x->out);
    } else if (!strcmp(sub, "list")) {
        client_list(x);
    } else if (!strcmp(sub, "kill")) {
        client_kill(x);
    } else {
        static const char *const help[] = {
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port>",
            "    Kill connection made from <ip:port>.",
            "KILL <option> <value> [<option> <value> [...]]",
            "    Kill connections. Options are:",
            "    * ADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made from the specified address",
            "    * LADDR (<ip:port>|<unixsocket>:0)",
            "      Kill connections made to specified local address",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Kill connections by type.",
            "    * USER <username>",
            "      Kill connections authenticated by <username>.",
            "    * SKIPME (YES|NO)",
            "      Skip killing current connection (default: yes).",
            "    * ID <client-id>",
            "      Kill connections by client id.",
            "LIST [options ...]",
            "    Return information about client connections. Options:",
            "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
            "      Return clients of specified type.",
            "    * ID <client-id> [<client-id> ...]",
            "      Return clients of specified IDs only.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "HELP",
            "    Print this help."};
        cmd_reply_help(x->out, help, sizeof help / sizeof help[0]);
    }
}

/* ---------- strings ---------- */

static void c_get(cmd_ctx *x)
{
    ks_rec r;
    int rc = get_rec(x, NULL, x->argv[1], x->argl[1], &r);
    if (rc) {
        cmd_reply_engine_error(x->out, rc);
        return;
    }
    if (!r.found)
        cairn_resp_null(x->out);
    else if (r.type != KS_TYPE_STRING)
        reply_wrongtype(x);
    else
        cairn_resp_bulk(x->out, r.payload, r.plen);
    ks_rec_free(&r);
}

static void c_mget(cmd_ctx *x)
{
    cairn_resp_array(x->out, (long long)(x->argc - 1));
    for (size_t i = 1; i < x->argc; i++) {
        ks_rec r;
        int rc = get_rec(x, NULL, x->argv[i], x->argl[i], &r);
        if (rc == 0 && r.found && r.type == KS_TYPE_STRING)
            cairn_resp_bulk(x->out, r.payload, r.plen);
        else
            cairn_resp_null(x->out);
        ks_rec_free(&r);
    }
}

static void c_strlen(cmd_ctx *x)
{
    ks_rec r;
    int rc = get_rec(x, NULL, x->argv[1], x->argl[1], &r);
    if (rc)
        cmd_reply_engine_error(x->out, rc);
    else if (r.found && r.type != KS_TYPE_STRING)
        reply_wrongtype(x);
    else
        cairn_resp_integer(x->out, r.found ? (long long)r.plen : 0);
    ks_rec_free(&r);
}

static void c_getrange(cmd_ctx *x)
{
    long long s, e;
    if (!parse_ll(x->argv[2], x->argl[2], &s) ||
        !parse_ll(x->argv[3], x->argl[3], &e)) {
        reply_notint(x);
        return;
    }
    ks_rec r;
    int rc = get_rec(x, NULL, x->argv[1], x->argl[1], &r);
    if (rc) {
        cmd_reply_engine_error(x->out, rc);
        return;
    }
    if (r.found && r.type != KS_TYPE_STRING) {
        reply_wrongtype(x);
        ks_rec_free(&r);
        return;
    }
    long long n = r.found ? (long long)r.plen : 0;
    if (s < 0 && e < 0 && s > e) {
        cairn_resp_bulk(x->out, "", 0);
        ks_rec_free(&r);
        return;
    }
    if (s < 0)
        s += n;
    if (e < 0)
        e += n;
    if (s < 0)
        s = 0;
    if (e < 0)
        e = 0;
    if (e >= n)
        e = n - 1;
    if (n == 0 || s > e)
        cairn_resp_bulk(x->out, "", 0);
    else
        cairn_resp_bulk(x->out, r.payload + s, (size_t)(e - s + 1));
    ks_rec_free(&r);
}

/* SET and its family. */
typedef struct set_args {
    bool nx, xx, get, keepttl;
    bool int_reply; /* SETNX: 1 / 0 instead of OK / nil */
    uint64_t expiry_ms; /* absolute, 0: none */
    const uint8_t *val;
    size_t vlen;
} set_args;

/* A write that replaces key whatever it holds: a series there goes first,
 * through the series layer (its chunks and log with it). */
static int replace_series(cmd_ctx *x, cairn_txn *t, const uint8_t *k,
                          size_t kl)
{
    if (!cairn_ts_any(x->db))
        return 0;
    ks_rec r;
    int rc = get_rec(x, t, k, kl, &r);
    bool ts = rc == 0 && r.found && r.type == KS_TYPE_TS;
    ks_rec_free(&r);
    if (rc == 0 && ts)
        rc = cairn_ts_delete_ex(x->db, t, k, kl);
    return rc;
}

static int set_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const set_args *a = arg;
    ks_rec r;
    int rc = 0;
    bool need_old = a->nx || a->xx || a->get || a->keepttl;
    memset(&r, 0, sizeof r);
    if (need_old && (rc = get_rec(x, t, x->argv[1], x->argl[1], &r)) != 0)
        return rc;
    if (a->get && r.found && r.type != KS_TYPE_STRING) {
        ks_rec_free(&r);
        reply_wrongtype(x);
        return 0;
    }
    bool cond_ok = !((a->nx && r.found) || (a->xx && !r.found));
    if (cond_ok)
        rc = replace_series(x, t, x->argv[1], x->argl[1]);
    if (rc) {
        ks_rec_free(&r);
        return rc;
    }
    if (cond_ok) {
        uint64_t exp = a->expiry_ms;
        if (a->keepttl && r.found)
            exp = r.expiry_ms;
        rc = ks_put(t, x->argv[1], x->argl[1], KS_TYPE_STRING, exp, a->val,
                    a->vlen);
        if (rc) {
            ks_rec_free(&r);
            return rc;
        }
    }
    if (a->get) {
        if (r.found)
            cairn_resp_bulk(x->out, r.payload, r.plen);
        else
            cairn_resp_null(x->out);
    } else if (a->int_reply) {
        cairn_resp_integer(x->out, cond_ok ? 1 : 0);
    } else if (cond_ok) {
        cairn_resp_simple(x->out, "OK");
    } else {
        cairn_resp_null(x->out);
    }
    ks_rec_free(&r);
    return 0;
}

static void run_set(cmd_ctx *x, const set_args *a)
{
    if (!x->txn && !a->nx && !a->xx && !a->get && !a->keepttl &&
        !cairn_ts_any(x->db)) {
        /* Nothing to read first: one blind write (record + expiry hint),
         * which never conflicts. */
        int rc = ks_put_blind(x->db, x->argv[1], x->argl[1], KS_TYPE_STRING,
                              a->expiry_ms, a->val, a->vlen, &x->version);
        if (rc)
            cmd_reply_engine_error(x->out, rc);
        else
            cairn_resp_simple(x->out, "OK");
        return;
    }
    run_write(x, set_op, (void *)a);
}

/* Expiry argument: unit 1000 for seconds; absolute if abs. Returns false
 * (reply written) when invalid. */
static bool parse_expiry(cmd_ctx *x, size_t i, uint64_t unit, bool abs,
                         const char *cmd, uint64_t *out)
{
    long long v;
    if (!parse_ll(x->argv[i], x->argl[i], &v)) {
        reply_notint(x);
        return false;
    }
    if (v <= 0 || (unsigned long long)v > (uint64_t)INT64_MAX / unit) {
        cairn_resp_errorf(x->out, "ERR invalid expire time in '%s' command",
                          cmd);
        return false;
    }
    uint64_t ms = (uint64_t)v * unit;
    if (!abs) {
        if (ms > (uint64_t)INT64_MAX - x->now_ms) {
            cairn_resp_errorf(x->out,
                              "ERR invalid expire time in '%s' command", cmd);
            return false;
        }
        ms += x->now_ms;
    }
    *out = ms;
    return true;
}

/* The options of SET (is_set) and GETEX, parsed as Redis 7 does
 * (parseExtendedStringArgumentsOrReply): NX and XX exclude each other,
 * KEEPTTL (SET) and PERSIST (GETEX) exclude an expiry, an expiry excludes
 * the other kinds but may repeat (the last one counts), and the expiry's
 * value is only looked at once the whole line parsed. */
typedef struct str_opts {
    bool nx, xx, get, keepttl, persist;
    size_t exp_arg; /* the expiry value's argument, 0: none */
    uint64_t exp_unit;
    bool exp_abs;
} str_opts;

static bool parse_str_opts(cmd_ctx *x, size_t from, bool is_set,
                           str_opts *o)
{
    memset(o, 0, sizeof *o);
    for (size_t i = from; i < x->argc; i++) {
        bool next = i + 1 < x->argc;
        bool ex = arg_is(x, i, "EX"), px = arg_is(x, i, "PX");
        bool exat = arg_is(x, i, "EXAT"), pxat = arg_is(x, i, "PXAT");
        /* The kind of expiry already given, if any. */
        bool other_exp = o->exp_arg &&
                         !((ex && o->exp_unit == 1000 && !o->exp_abs) ||
                           (px && o->exp_unit == 1 && !o->exp_abs) ||
                           (exat && o->exp_unit == 1000 && o->exp_abs) ||
                           (pxat && o->exp_unit == 1 && o->exp_abs));
        if (is_set && arg_is(x, i, "NX") && !o->xx) {
            o->nx = true;
        } else if (is_set && arg_is(x, i, "XX") && !o->nx) {
            o->xx = true;
        } else if (is_set && arg_is(x, i, "GET")) {
            o->get = true;
        } else if (is_set && arg_is(x, i, "KEEPTTL") && !o->exp_arg) {
            o->keepttl = true;
        } else if (!is_set && arg_is(x, i, "PERSIST") && !o->exp_arg) {
            o->persist = true;
        } else if ((ex || px || exat || pxat) && next && !o->keepttl &&
                   !o->persist && !other_exp) {
            o->exp_arg = ++i;
            o->exp_unit = ex || exat ? 1000 : 1;
            o->exp_abs = exat || pxat;
        } else {
            reply_syntax(x);
            return false;
        }
    }
    return true;
}

static void c_set(cmd_ctx *x)
{
    set_args a = {.val = x->argv[2], .vlen = x->argl[2]};
    str_opts o;
    if (!parse_str_opts(x, 3, true, &o))
        return;
    if (o.exp_arg && !parse_expiry(x, o.exp_arg, o.exp_unit, o.exp_abs,
                                   "set", &a.expiry_ms))
        return;
    a.nx = o.nx;
    a.xx = o.xx;
    a.get = o.get;
    a.keepttl = o.keepttl;
    run_set(x, &a);
}

static void c_setnx(cmd_ctx *x)
{
    set_args a = {.nx = true, .int_reply = true, .val = x->argv[2],
                  .vlen = x->argl[2]};
    run_set(x, &a);
}

static void c_setex_common(cmd_ctx *x, uint64_t unit, const char *name)
{
    set_args a = {.val = x->argv[3], .vlen = x->argl[3]};
    if (!parse_expiry(x, 2, unit, false, name, &a.expiry_ms))
        return;
    run_set(x, &a);
}

static void c_setex(cmd_ctx *x)
{
    c_setex_common(x, 1000, "setex");
}

static void c_psetex(cmd_ctx *x)
{
    c_setex_common(x, 1, "psetex");
}

static void c_getset(cmd_ctx *x)
{
    set_args a = {.get = true, .val = x->argv[2], .vlen = x->argl[2]};
    run_set(x, &a);
}

static int mset_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    for (size_t i = 1; i + 1 < x->argc; i += 2) {
        int rc = replace_series(x, t, x->argv[i], x->argl[i]);
        if (rc == 0)
            rc = ks_put(t, x->argv[i], x->argl[i], KS_TYPE_STRING, 0,
                        x->argv[i + 1], x->argl[i + 1]);
        if (rc)
            return rc;
    }
    cairn_resp_simple(x->out, "OK");
    return 0;
}

/* A key too long to write (KS_KEY_MAX) among MSET's: refused before any
 * is written (true, with the error in out). A command shares its
 * transaction with others (a batch, EXEC), so one that failed half-way
 * would leave the keys it wrote before. */
static bool mset_keys_too_long(cmd_ctx *x)
{
    for (size_t i = 1; i + 1 < x->argc; i += 2)
        if (x->argl[i] > KS_KEY_MAX) {
            cmd_reply_engine_error(x->out, CAIRN_ETOOLARGE);
            return true;
        }
    return false;
}

static void c_mset(cmd_ctx *x)
{
    if (x->argc % 2 == 0) {
        cairn_resp_errorf(x->out,
                          "ERR wrong number of arguments for '%s' command",
                          x->argl[0] == 6 ? "msetnx" : "mset");
        return;
    }
    if (mset_keys_too_long(x))
        return;
    run_write(x, mset_op, NULL);
}

static int msetnx_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    for (size_t i = 1; i + 1 < x->argc; i += 2) {
        ks_rec r;
        int rc = get_rec(x, t, x->argv[i], x->argl[i], &r);
        if (rc)
            return rc;
        bool found = r.found;
        ks_rec_free(&r);
        if (found) {
            cairn_resp_integer(x->out, 0);
            return 0;
        }
    }
    for (size_t i = 1; i + 1 < x->argc; i += 2) {
        int rc = replace_series(x, t, x->argv[i], x->argl[i]);
        if (rc == 0)
            rc = ks_put(t, x->argv[i], x->argl[i], KS_TYPE_STRING, 0,
                        x->argv[i + 1], x->argl[i + 1]);
        if (rc)
            return rc;
    }
    cairn_resp_integer(x->out, 1);
    return 0;
}

static void c_msetnx(cmd_ctx *x)
{
    if (x->argc % 2 == 0) {
        cairn_resp_error(x->out,
                         "ERR wrong number of arguments for 'msetnx' command");
        return;
    }
    if (mset_keys_too_long(x))
        return;
    run_write(x, msetnx_op, NULL);
}

static int getdel_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    ks_rec r;
    int rc = get_rec(x, t, x->argv[1], x->argl[1], &r);
    if (rc)
        return rc;
    if (!r.found) {
        cairn_resp_null(x->out);
    } else if (r.type != KS_TYPE_STRING) {
        reply_wrongtype(x);
    } else {
        rc = ks_del(t, x->argv[1], x->argl[1]);
        if (rc == 0)
            cairn_resp_bulk(x->out, r.payload, r.plen);
    }
    ks_rec_free(&r);
    return rc;
}

static void c_getdel(cmd_ctx *x)
{
    run_write(x, getdel_op, NULL);
}

typedef struct getex_args {
    bool persist, set_exp;
    uint64_t exp;
} getex_args;

static int getex_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const getex_args *g = arg;
    ks_rec r;
    int rc = get_rec(x, t, x->argv[1], x->argl[1], &r);
    if (rc)
        return rc;
    if (!r.found) {
        cairn_resp_null(x->out);
    } else if (r.type != KS_TYPE_STRING) {
        reply_wrongtype(x);
    } else {
        if (g->persist && r.expiry_ms)
            rc = ks_put(t, x->argv[1], x->argl[1], r.type, 0, r.payload,
                        r.plen);
        else if (g->set_exp)
            rc = ks_put(t, x->argv[1], x->argl[1], r.type, g->exp, r.payload,
                        r.plen);
        if (rc == 0)
            cairn_resp_bulk(x->out, r.payload, r.plen);
    }
    ks_rec_free(&r);
    return rc;
}

static void c_getex(cmd_ctx *x)
{
    getex_args g = {0};
    str_opts o;
    if (!parse_str_opts(x, 2, false, &o))
        return;
    if (!o.persist && !o.exp_arg) { /* a plain read */
        c_get(x);
        return;
    }
    if (o.exp_arg) {
        /* As Redis: a missing key (or another type) answers before the
         * expiry's value is checked. */
        ks_rec r;
        int rc = get_rec(x, NULL, x->argv[1], x->argl[1], &r);
        bool found = rc == 0 && r.found, str = found && r.type ==
                                                           KS_TYPE_STRING;
        ks_rec_free(&r);
        if (rc == 0 && !str) {
            c_get(x);
            return;
        }
        if (!parse_expiry(x, o.exp_arg, o.exp_unit, o.exp_abs, "getex",
                          &g.exp))
            return;
        g.set_exp = true;
    }
    g.persist = o.persist;
    run_write(x, getex_op, &g);
}

/* Write v at offset off of key's string (append: at its end), zero-filling
 * any gap, keeping its expiry; the reply is the new length. SETRANGE with
 * nothing to write only answers the length (APPEND creates the key). */
static int splice(cmd_ctx *x, cairn_txn *t, bool append, size_t off,
                  const uint8_t *v, size_t vl)
{
    ks_rec r;
    int rc = get_rec(x, t, x->argv[1], x->argl[1], &r);
    if (rc)
        return rc;
    if (r.found && r.type != KS_TYPE_STRING) {
        ks_rec_free(&r);
        reply_wrongtype(x);
        return 0;
    }
    size_t old = r.found ? r.plen : 0;
    if (append)
        off = old;
    if (!append && vl == 0) {
        ks_rec_free(&r);
        cairn_resp_integer(x->out, (long long)old);
        return 0;
    }
    if (off > srv_get_config(x->srv)->max_bulk ||
        vl > srv_get_config(x->srv)->max_bulk - off) {
        ks_rec_free(&r);
        cairn_resp_error(x->out, "ERR string exceeds maximum allowed size "
                                 "(proto-max-bulk-len)");
        return 0;
    }
    size_t n = off + vl > old ? off + vl : old;
    uint8_t *buf = calloc(1, n ? n : 1);
    if (!buf) {
        ks_rec_free(&r);
        return CAIRN_ENOMEM;
    }
    if (old)
        memcpy(buf, r.payload, old);
    if (vl)
        memcpy(buf + off, v, vl);
    rc = ks_put(t, x->argv[1], x->argl[1], KS_TYPE_STRING,
                r.found ? r.expiry_ms : 0, buf, n);
    free(buf);
    ks_rec_free(&r);
    if (rc == 0)
        cairn_resp_integer(x->out, (long long)n);
    return rc;
}

static int append_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    return splice(x, t, true, 0, x->argv[2], x->argl[2]);
}

static void c_append(cmd_ctx *x)
{
    run_write(x, append_op, NULL);
}

static int setrange_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    long long off;
    if (!parse_ll(x->argv[2], x->argl[2], &off)) {
        reply_notint(x);
        return 0;
    }
    if (off < 0) {
        cairn_resp_error(x->out, "ERR offset is out of range");
        return 0;
    }
    return splice(x, t, false, (size_t)off, x->argv[3], x->argl[3]);
}

static void c_setrange(cmd_ctx *x)
{
    run_write(x, setrange_op, NULL);
}

typedef struct incr_args {
    long long by;
    bool is_float;
    long double fby;
} incr_args;

static int incr_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const incr_args *ic = arg;
    ks_rec r;
    int rc = get_rec(x, t, x->argv[1], x->argl[1], &r);
    if (rc)
        return rc;
    if (r.found && r.type != KS_TYPE_STRING) {
        ks_rec_free(&r);
        reply_wrongtype(x);
        return 0;
    }
    /* Redis's bound on a formatted long double (MAX_LONG_DOUBLE_CHARS):
     * %.17Lf of a value near LDBL_MAX fills it; DBL_MAX needs ~330. */
    char buf[5 * 1024];
    int n;
    if (ic->is_float) {
        long double cur = 0;
        if (r.found && !parse_ld(r.payload, r.plen, &cur)) {
            ks_rec_free(&r);
            cairn_resp_error(x->out, "ERR value is not a valid float");
            return 0;
        }
        long double v = cur + ic->fby;
        if (isnan(v) || isinf(v)) {
            ks_rec_free(&r);
            cairn_resp_error(x->out,
                             "ERR increment would produce NaN or Infinity");
            return 0;
        }
        /* Redis: %.17Lf, then trailing zeros (and the point) removed. */
        n = snprintf(buf, sizeof buf, "%.17Lf", v);
        if (n <= 0 || (size_t)n >= sizeof buf) {
            ks_rec_free(&r);
            cairn_resp_error(x->out,
                             "ERR increment would produce NaN or Infinity");
            return 0;
        }
        if (strchr(buf, '.')) {
            while (n > 0 && buf[n - 1] == '0')
                n--;
            if (n > 0 && buf[n - 1] == '.')
                n--;
            buf[n] = '\0';
        }
        if (n == 2 && buf[0] == '-' && buf[1] == '0')
            n = snprintf(buf, sizeof buf, "0");
    } else {
        long long cur = 0;
        if (r.found && !parse_ll(r.payload, r.plen, &cur)) {
            ks_rec_free(&r);
            reply_notint(x);
            return 0;
        }
        long long v;
        if (__builtin_add_overflow(cur, ic->by, &v)) {
            ks_rec_free(&r);
            cairn_resp_error(x->out,
                             "ERR increment or decrement would overflow");
            return 0;
        }
        n = snprintf(buf, sizeof buf, "%lld", v);
    }
    rc = ks_put(t, x->argv[1], x->argl[1], KS_TYPE_STRING,
                r.found ? r.expiry_ms : 0, buf, (size_t)n);
    ks_rec_free(&r);
    if (rc)
        return rc;
    if (ic->is_float)
        cairn_resp_bulk(x->out, buf, (size_t)n);
    else
        cairn_resp_integer(x->out, strtoll(buf, NULL, 10));
    return 0;
}

static void run_incr(cmd_ctx *x, long long by)
{
    incr_args ic = {.by = by};
    run_write(x, incr_op, &ic);
}

static void c_incr(cmd_ctx *x)
{
    run_incr(x, 1);
}

static void c_decr(cmd_ctx *x)
{
    run_incr(x, -1);
}

static void c_incrby(cmd_ctx *x)
{
    long long by;
    if (!parse_ll(x->argv[2], x->argl[2], &by)) {
        reply_notint(x);
        return;
    }
    run_incr(x, by);
}

static void c_decrby(cmd_ctx *x)
{
    long long by;
    if (!parse_ll(x->argv[2], x->argl[2], &by)) {
        reply_notint(x);
        return;
    }
    if (by == INT64_MIN) {
        cairn_resp_error(x->out, "ERR decrement would overflow");
        return;
    }
    run_incr(x, -by);
}

static void c_incrbyfloat(cmd_ctx *x)
{
    long double by;
    /* "inf" parses (as in Redis); the sum is refused in incr_op. */
    if (!parse_ld(x->argv[2], x->argl[2], &by)) {
        cairn_resp_error(x->out, "ERR value is not a valid float");
        return;
    }
    incr_args ic = {.is_float = true, .fby = by};
    run_write(x, incr_op, &ic);
}

/* ---------- keys ---------- */

/* Delete key (found, of type `type`) in t: a time series goes through
 * the series layer (its chunks, log, registry entry and rules go with
 * it), anything else is one record. */
static int del_key(cmd_ctx *x, cairn_txn *t, const uint8_t *k, size_t kl,
                   int type)
{
    if (type == KS_TYPE_TS)
        return cairn_ts_delete_ex(x->db, t, k, kl);
    return ks_del(t, k, kl);
}

static int del_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    long long n = 0;
    for (size_t i = 1; i < x->argc; i++) {
        ks_rec r;
        int rc = get_rec(x, t, x->argv[i], x->argl[i], &r);
        if (rc)
            return rc;
        bool found = r.found;
        int type = r.type;
        ks_rec_free(&r);
        if (!found)
            continue;
        /* DEL a a: the second finds it gone in t (a series included). */
        rc = del_key(x, t, x->argv[i], x->argl[i], type);
        if (rc == CAIRN_ENOTFOUND)
            continue;
        if (rc)
            return rc;
        n++;
    }
    cairn_resp_integer(x->out, n);
    return 0;
}

static void c_del(cmd_ctx *x)
{
    run_write(x, del_op, NULL);
}

static void c_exists(cmd_ctx *x)
{
    long long n = 0;
    for (size_t i = 1; i < x->argc; i++) {
        ks_rec r;
        int rc = get_rec(x, NULL, x->argv[i], x->argl[i], &r);
        if (rc) {
            cmd_reply_engine_error(x->out, rc);
            return;
        }
        n += r.found;
        ks_rec_free(&r);
    }
    cairn_resp_integer(x->out, n);
}

static void c_touch(cmd_ctx *x)
{
    c_exists(x);
}

static void c_type(cmd_ctx *x)
{
    ks_rec r;
    int rc = get_rec(x, NULL, x->argv[1], x->argl[1], &r);
    if (rc) {
        cmd_reply_engine_error(x->out, rc);
        return;
    }
    if (!r.found)
        cairn_resp_simple(x->out, "none");
    else if (r.type == KS_TYPE_STRING)
        cairn_resp_simple(x->out, "string");
    else if (r.type == KS_TYPE_TS)
        cairn_resp_simple(x->out, "TSDB-TYPE"); /* as RedisTimeSeries */
    else
        cairn_resp_simple(x->out, "unknown");
    ks_rec_free(&r);
}

static void ttl_common(cmd_ctx *x, bool ms, bool abs)
{
    ks_rec r;
    int rc = get_rec(x, NULL, x->argv[1], x->argl[1], &r);
    if (rc) {
        cmd_reply_engine_error(x->out, rc);
        return;
    }
    if (!r.found) {
        cairn_resp_integer(x->out, -2);
    } else if (!r.expiry_ms) {
        cairn_resp_integer(x->out, -1);
    } else {
        uint64_t v = abs ? r.expiry_ms : r.expiry_ms - x->now_ms;
        if (!ms)
            v = (v + 500) / 1000; /* Redis rounds both */
        cairn_resp_integer(x->out, (long long)v);
    }
    ks_rec_free(&r);
}

static void c_ttl(cmd_ctx *x)
{
    ttl_common(x, false, false);
}

static void c_pttl(cmd_ctx *x)
{
    ttl_common(x, true, false);
}

static void c_expiretime(cmd_ctx *x)
{
    ttl_common(x, false, true);
}

static void c_pexpiretime(cmd_ctx *x)
{
    ttl_common(x, true, true);
}

typedef struct expire_args {
    int64_t when_ms; /* absolute; <= now deletes */
    bool nx, xx, gt, lt;
} expire_args;

static int expire_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const expire_args *e = arg;
    ks_rec r;
    int rc = get_rec(x, t, x->argv[1], x->argl[1], &r);
    if (rc)
        return rc;
    if (!r.found) {
        cairn_resp_integer(x->out, 0);
        return 0;
    }
    if (r.type == KS_TYPE_TS) {
        ks_rec_free(&r);
        cairn_resp_error(x->out, "ERR time series keys do not expire (use "
                                 "RETENTION)");
        return 0;
    }
    /* No expiry counts as an infinite one for GT / LT. */
    bool ok = true;
    if (e->nx && r.expiry_ms)
        ok = false;
    if (e->xx && !r.expiry_ms)
        ok = false;
    if (e->gt && (!r.expiry_ms || e->when_ms <= (int64_t)r.expiry_ms))
        ok = false;
    if (e->lt && r.expiry_ms && e->when_ms >= (int64_t)r.expiry_ms)
        ok = false;
    if (ok) {
        if (e->when_ms <= (int64_t)x->now_ms)
            rc = ks_del(t, x->argv[1], x->argl[1]);
        else
            rc = ks_put(t, x->argv[1], x->argl[1], r.type,
                        (uint64_t)e->when_ms, r.payload, r.plen);
    }
    ks_rec_free(&r);
    if (rc == 0)
        cairn_resp_integer(x->out, ok ? 1 : 0);
    return rc;
}

static void expire_common(cmd_ctx *x, int64_t unit, bool abs,
                          const char *name)
{
    expire_args e = {0};
    long long v;
    /* The options first, then the time, in Redis's order of errors. */
    for (size_t i = 3; i < x->argc; i++) {
        if (arg_is(x, i, "NX"))
            e.nx = true;
        else if (arg_is(x, i, "XX"))
            e.xx = true;
        else if (arg_is(x, i, "GT"))
            e.gt = true;
        else if (arg_is(x, i, "LT"))
            e.lt = true;
        else {
            cairn_resp_errorf(x->out, "ERR Unsupported option %.*s",
                              (int)x->argl[i], (const char *)x->argv[i]);
            return;
        }
    }
    if (e.nx && (e.xx || e.gt || e.lt)) {
        cairn_resp_error(x->out, "ERR NX and XX, GT or LT options at the same "
                                 "time are not compatible");
        return;
    }
    if (e.gt && e.lt) {
        cairn_resp_error(x->out, "ERR GT and LT options at the same time are "
                                 "not compatible");
        return;
    }
    if (!parse_ll(x->argv[2], x->argl[2], &v)) {
        reply_notint(x);
        return;
    }
    int64_t ms;
    if (__builtin_mul_overflow((int64_t)v, unit, &ms) ||
        (!abs && __builtin_add_overflow(ms, (int64_t)x->now_ms, &ms))) {
        cairn_resp_errorf(x->out, "ERR invalid expire time in '%s' command",
                          name);
        return;
    }
    e.when_ms = ms;
    run_write(x, expire_op, &e);
}

static void c_expire(cmd_ctx *x)
{
    expire_common(x, 1000, false, "expire");
}

static void c_pexpire(cmd_ctx *x)
{
    expire_common(x, 1, false, "pexpire");
}

static void c_expireat(cmd_ctx *x)
{
    expire_common(x, 1000, true, "expireat");
}

static void c_pexpireat(cmd_ctx *x)
{
    expire_common(x, 1, true, "pexpireat");
}

static int persist_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    ks_rec r;
    int rc = get_rec(x, t, x->argv[1], x->argl[1], &r);
    if (rc)
        return rc;
    bool did = r.found && r.expiry_ms;
    if (did)
        rc = ks_put(t, x->argv[1], x->argl[1], r.type, 0, r.payload, r.plen);
    ks_rec_free(&r);
    if (rc == 0)
        cairn_resp_integer(x->out, did ? 1 : 0);
    return rc;
}

static void c_persist(cmd_ctx *x)
{
    run_write(x, persist_op, NULL);
}

typedef struct rename_args {
    bool nx, copy, replace;
} rename_args;

static int rename_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    const rename_args *rn = arg;
    ks_rec r;
    int rc = get_rec(x, t, x->argv[1], x->argl[1], &r);
    if (rc)
        return rc;
    if (!r.found) {
        if (rn->copy)
            cairn_resp_integer(x->out, 0);
        else
            cairn_resp_error(x->out, "ERR no such key");
        return 0;
    }
    if (rn->copy && r.type == KS_TYPE_TS) {
        ks_rec_free(&r);
        cairn_resp_error(x->out, "ERR COPY is not supported for time series "
                                 "keys");
        return 0;
    }
    bool same = x->argl[1] == x->argl[2] &&
                memcmp(x->argv[1], x->argv[2], x->argl[1]) == 0;
    ks_rec d;
    rc = get_rec(x, t, x->argv[2], x->argl[2], &d);
    bool exists = d.found;
    int dtype = d.type;
    ks_rec_free(&d);
    if (rc) {
        ks_rec_free(&r);
        return rc;
    }
    if ((rn->nx || rn->copy) && exists && (rn->nx || !rn->replace)) {
        ks_rec_free(&r);
        cairn_resp_integer(x->out, 0);
        return 0;
    }
    if (!same) {
        /* The destination goes first when it is a series (its chunks must
         * go with it) or when a series moves there (the series layer
         * renames into a free name only). */
        if (exists && (dtype == KS_TYPE_TS || r.type == KS_TYPE_TS))
            rc = del_key(x, t, x->argv[2], x->argl[2], dtype);
        if (rc == 0 && r.type == KS_TYPE_TS)
            rc = cairn_ts_rename(x->db, t, x->argv[1], x->argl[1],
                                 x->argv[2], x->argl[2]);
        else if (rc == 0)
            rc = ks_put(t, x->argv[2], x->argl[2], r.type, r.expiry_ms,
                        r.payload, r.plen);
        if (rc == 0 && !rn->copy && r.type != KS_TYPE_TS)
            rc = ks_del(t, x->argv[1], x->argl[1]);
    }
    ks_rec_free(&r);
    if (rc)
        return rc;
    if (rn->nx || rn->copy)
        cairn_resp_integer(x->out, (same && rn->copy) ? 0 : 1);
    else
        cairn_resp_simple(x->out, "OK");
    return 0;
}

static void c_rename(cmd_ctx *x)
{
    rename_args rn = {0};
    run_write(x, rename_op, &rn);
}

static void c_renamenx(cmd_ctx *x)
{
    rename_args rn = {.nx = true};
    run_write(x, rename_op, &rn);
}

static void c_copy(cmd_ctx *x)
{
    rename_args rn = {.copy = true};
    for (size_t i = 3; i < x->argc; i++) {
        if (arg_is(x, i, "REPLACE")) {
            rn.replace = true;
        } else if (arg_is(x, i, "DB") && i + 1 < x->argc) {
            long long db;
            if (!parse_ll(x->argv[i + 1], x->argl[i + 1], &db)) {
                reply_notint(x);
                return;
            }
            if (db != 0) {
                cairn_resp_error(x->out, "ERR DB index is out of range "
                                         "(cairn-server has database 0 only)");
                return;
            }
            i++;
        } else {
            reply_syntax(x);
            return;
        }
    }
    if (x->argl[1] == x->argl[2] &&
        memcmp(x->argv[1], x->argv[2], x->argl[1]) == 0) {
        cairn_resp_error(x->out,
                         "ERR source and destination objects are the same");
        return;
    }
    run_write(x, rename_op, &rn);
}

/* Walk the live data keys (not expired) with an iterator at now. fn
 * returns false to stop. */
typedef bool (*key_fn)(void *arg, const uint8_t *k, size_t kl,
                       const ks_rec *r);

/* An iterator over what the command sees: its transaction's (inside EXEC
 * or a batch: its own writes included, its reads validated), else the
 * database's newest state. */
static int keys_iter(cmd_ctx *x, const cairn_iter_options *o, cairn_iter **it)
{
    return x->txn ? cairn_txn_iter(x->txn, o, it) : cairn_iter_new(x->db, o, it);
}

static int walk_keys(cmd_ctx *x, key_fn fn, void *arg)
{
    uint8_t pfx = KS_DATA;
    cairn_iter_options o = {.prefix = &pfx, .prefix_len = 1};
    cairn_iter *it = NULL;
    int rc = keys_iter(x, &o, &it);
    if (rc)
        return rc;
    for (cairn_iter_first(it); cairn_iter_valid(it); cairn_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = cairn_iter_key(it, &kl);
        const void *v = cairn_iter_value(it, &vl);
        ks_rec r;
        memset(&r, 0, sizeof r);
        if (ks_decode(v, vl, &r) != 0)
            continue;
        if (r.expiry_ms && r.expiry_ms <= x->now_ms)
            continue;
        if (!fn(arg, k + 1, kl - 1, &r))
            break;
    }
    rc = cairn_iter_status(it);
    cairn_iter_free(it);
    return rc;
}

typedef struct count_state {
    uint64_t keys, expires, now_ms;
    long double ttl_sum; /* ms left of the keys with an expiry */
} count_state;

static bool count_fn(void *arg, const uint8_t *k, size_t kl, const ks_rec *r)
{
    count_state *c = arg;
    c->keys++;
    if (r->expiry_ms) { /* not expired: walk_keys skips those */
        c->expires++;
        c->ttl_sum += (long double)(r->expiry_ms - c->now_ms);
    }
    return true;
}

int cmd_count_keys(cairn_db *db, uint64_t now_ms, uint64_t *keys,
                   uint64_t *expires, uint64_t *avg_ttl_ms)
{
    cmd_ctx x = {.db = db, .now_ms = now_ms};
    count_state c = {.now_ms = now_ms};
    int rc = walk_keys(&x, count_fn, &c);
    *keys = c.keys;
    *expires = c.expires;
    if (avg_ttl_ms)
        *avg_ttl_ms = c.expires ? (uint64_t)(c.ttl_sum / c.expires) : 0;
    return rc;
}

static void c_dbsize(cmd_ctx *x)
{
    count_state c = {.now_ms = x->now_ms};
    int rc = walk_keys(x, count_fn, &c);
    if (rc)
        cmd_reply_engine_error(x->out, rc);
    else
        cairn_resp_integer(x->out, (int64_t)c.keys);
}




/* The pattern "*" matches every key, the empty one included: Redis does
 * not match it at all (stringmatchlen would not match "" against it). */
static bool match_all(const uint8_t *pat, size_t pl)
{
    return pl == 1 && pat[0] == '*';
}

typedef struct keys_state {
    const uint8_t *pat;
    size_t pl;
    cairn_resp_buf tmp;
    long long n;
} keys_state;

static bool keys_fn(void *arg, const uint8_t *k, size_t kl, const ks_rec *r)
{
    keys_state *s = arg;
    if (match_all(s->pat, s->pl) || srv_acl_glob_match(s->pat, s->pl, k, kl)) {
        cairn_resp_bulk(&s->tmp, k, kl);
        s->n++;
    }
    return true;
}

static void c_keys(cmd_ctx *x)
{
    keys_state s = {.pat = x->argv[1], .pl = x->argl[1]};
    cairn_resp_init(&s.tmp, x->proto);
    int rc = walk_keys(x, keys_fn, &s);
    if (rc) {
        cmd_reply_engine_error(x->out, rc);
    } else {
        cairn_resp_array(x->out, s.n);
        cairn_resp_raw(x->out, s.tmp.p, s.tmp.len);
    }
    cairn_resp_free(&s.tmp);
}

/* SCAN: the cursor is 0 to start, else names the key the call goes on
 * from, in key order: a decimal integer below 2^53 (clients treat it as
 * opaque; redis-py and redis-cli parse it as a 64-bit integer, node-redis 4
 * as a double). The server keeps the key a call stopped at (up to
 * SCAN_KEY_MAX bytes of it) under a cursor id (srv_scan_save: a table of
 * 1024, a scan going on holding one place), so the next call goes on
 * exactly there. A cursor no longer kept (a restart, or a table full of
 * scans going on) carries the key's
 * first 2 bytes: the scan goes on from them, returning some keys again
 * (SCAN allows repeats; it never skips a key that exists for the whole
 * scan). Cursors of earlier versions are still taken: a kept one with bit
 * 62 likewise, and the oldest form, up to the first 7 bytes of the key
 * (cursor_key; below 2^52, or from 2^53 on). A call never stops at a key
 * it would start from again, so every call makes progress. */
#define SCAN_KEY_MAX 1024
static size_t cursor_key(uint64_t c, uint8_t *k)
{
    c -= 1;
    size_t n = c & 7;
    c >>= 3;
    for (size_t i = 0; i < 7; i++)
        k[6 - i] = (uint8_t)(c >> (8 * i));
    return n > 7 ? 7 : n;
}

static void c_scan(cmd_ctx *x)
{
    unsigned long long cur;
    {
        /* Parsed as Redis does (strtoul): a sign is accepted (-1 wraps
         * round), an empty cursor is 0, leading space is not. */
        char buf[32];
        const uint8_t *a = x->argv[1];
        size_t al = x->argl[1], bl = 0, i = 0;
        if (al > 0 && (a[0] == '+' || a[0] == '-'))
            buf[bl++] = (char)a[i++];
        /* Leading zeros beyond the buffer are zeros all the same. */
        while (al - i >= sizeof buf - bl && a[i] == '0' && al - i > 1)
            i++;
        if (al - i >= sizeof buf - bl) {
            cairn_resp_error(x->out, "ERR invalid cursor");
            return;
        }
        memcpy(buf + bl, a + i, al - i);
        buf[bl + al - i] = '\0';
        char *end;
        errno = 0;
        cur = strtoull(buf, &end, 10);
        if (errno || *end || isspace((unsigned char)buf[0])) {
            cairn_resp_error(x->out, "ERR invalid cursor");
            return;
        }
    }
    const uint8_t *pat = NULL;
    size_t pl = 0;
    long long count = 10;
    bool type_filter = false;
    int type_want = -1; /* the KS_TYPE_* TYPE names; -1: none matches */
    for (size_t i = 2; i < x->argc; i++) {
        if (arg_is(x, i, "MATCH") && i + 1 < x->argc) {
            pat = x->argv[i + 1];
            pl = x->argl[i + 1];
            i++;
        } else if (arg_is(x, i, "COUNT") && i + 1 < x->argc) {
            if (!parse_ll(x->argv[i + 1], x->argl[i + 1], &count)) {
                reply_notint(x);
                return;
            }
            if (count < 1) {
                reply_syntax(x);
                return;
            }
            i++;
        } else if (arg_is(x, i, "TYPE") && i + 1 < x->argc) {
            type_filter = true;
            if (x->argl[i + 1] == 6 &&
                strncasecmp((const char *)x->argv[i + 1], "string", 6) == 0)
                type_want = KS_TYPE_STRING;
            else if (x->argl[i + 1] == 9 &&
                     strncasecmp((const char *)x->argv[i + 1], "tsdb-type",
                                 9) == 0)
                type_want = KS_TYPE_TS;
            else
                type_want = -1;
            i++;
        } else {
            reply_syntax(x);
            return;
        }
    }
    /* Where this call starts: KS_DATA and (a prefix of) the key. */
    uint8_t small[8] = {KS_DATA}, *kept = NULL, *start = small;
    size_t slen = 1, klen = 0;
    uint64_t from = cur; /* the cursor this call goes on from (0: none) */
    bool kept_form = (cur & SCAN_CURSOR_KEPT_V1) ||
                     (cur < SCAN_CURSOR_LIMIT && (cur & SCAN_CURSOR_KEPT));
    if (kept_form) {
        if (!(cur & SCAN_CURSOR_KEPT_V1) && x->srv &&
            srv_scan_load(x->srv, cur, &kept, &klen)) {
            start = malloc(klen + 1);
            if (!start) {
                free(kept);
                cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
                return;
            }
            start[0] = KS_DATA;
            memcpy(start + 1, kept, klen);
            slen = 1 + klen;
            free(kept);
        } else {
            size_t n = (size_t)(cur >> 16) & 3;
            for (size_t i = 0; i < n && i < 2; i++)
                small[1 + i] = (uint8_t)(cur >> (8 * (1 - i)));
            slen = 1 + (n < 2 ? n : 2);
        }
    } else if (cur) {
        slen = 1 + cursor_key(cur, small + 1);
    }
    uint8_t pfx = KS_DATA;
    cairn_iter_options o = {.prefix = &pfx, .prefix_len = 1};
    cairn_iter *it = NULL;
    int rc = keys_iter(x, &o, &it);
    if (rc) {
        if (start != small)
            free(start);
        cmd_reply_engine_error(x->out, rc);
        return;
    }
    cairn_resp_buf tmp;
    cairn_resp_init(&tmp, x->proto);
    long long n = 0, seen = 0;
    uint64_t next = 0;
    for (cairn_iter_seek(it, start, slen); cairn_iter_valid(it);
         cairn_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = cairn_iter_key(it, &kl);
        /* Stop before k once count keys were looked at, unless the next
         * call would start right where this one did (a long key kept in
         * part, or an older cursor's prefix): then go on. */
        size_t keep = kl - 1 < SCAN_KEY_MAX ? kl - 1 : SCAN_KEY_MAX;
        if (seen >= count &&
            !(keep + 1 == slen && !memcmp(k + 1, start + 1, keep))) {
            next = x->srv ? srv_scan_save(x->srv, k + 1, keep, from) : 0;
            if (!next) { /* out of memory: a cursor kept nowhere */
                uint64_t c = SCAN_CURSOR_KEPT | scan_cursor_head(k + 1, keep);
                if (c != cur)
                    next = c;
            }
            if (next)
                break;
        }
        seen++;
        const void *v = cairn_iter_value(it, &vl);
        ks_rec r;
        memset(&r, 0, sizeof r);
        if (ks_decode(v, vl, &r) != 0)
            continue;
        if (r.expiry_ms && r.expiry_ms <= x->now_ms)
            continue;
        if (type_filter && r.type != type_want)
            continue;
        if (pat && !match_all(pat, pl) &&
            !srv_acl_glob_match(pat, pl, k + 1, kl - 1))
            continue;
        cairn_resp_bulk(&tmp, k + 1, kl - 1);
        n++;
    }
    rc = cairn_iter_status(it);
    cairn_iter_free(it);
    if (start != small)
        free(start);
    if (rc) {
        cmd_reply_engine_error(x->out, rc);
    } else {
        char cb[32];
        int cl = snprintf(cb, sizeof cb, "%" PRIu64, next);
        cairn_resp_array(x->out, 2);
        cairn_resp_bulk(x->out, cb, (size_t)cl);
        cairn_resp_array(x->out, n);
        cairn_resp_raw(x->out, tmp.p, tmp.len);
    }
    cairn_resp_free(&tmp);
}

/* RANDOMKEY picks in one pass over one snapshot (reservoir sampling: the
 * i-th key replaces the pick with probability 1/i), so keys deleted
 * meanwhile by others cannot leave it short of a key: it answers nil only
 * when the snapshot had none. */
typedef struct pick_state {
    uint64_t i, rng;
    uint8_t *key;
    size_t kl;
    int rc;
} pick_state;

static bool pick_fn(void *arg, const uint8_t *k, size_t kl, const ks_rec *r)
{
    (void)r;
    pick_state *s = arg;
    s->i++;
    /* xorshift64: a fresh draw per key, seeded once per call. */
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    if (s->rng % s->i != 0)
        return true;
    uint8_t *copy = malloc(kl ? kl : 1);
    if (!copy) {
        s->rc = CAIRN_ENOMEM;
        return false;
    }
    memcpy(copy, k, kl);
    free(s->key);
    s->key = copy;
    s->kl = kl;
    return true;
}

static void c_randomkey(cmd_ctx *x)
{
    pick_state s = {.rng = ((uint64_t)random() << 31 ^ (uint64_t)random()) |
                           1};
    int rc = walk_keys(x, pick_fn, &s);
    if (rc == 0)
        rc = s.rc;
    if (rc)
        cmd_reply_engine_error(x->out, rc);
    else if (s.key)
        cairn_resp_bulk(x->out, s.key, s.kl);
    else
        cairn_resp_null(x->out);
    free(s.key);
}

static int flush_op(cmd_ctx *x, cairn_txn *t, void *arg)
{
    /* Every series' chunks, logs and registry entries, then every data key
     * (the series records among them) and expiry hint, in one
     * transaction. */
    int drc = cairn_ts_drop_all(x->db, t);
    if (drc && drc != CAIRN_ENOTSUP)
        return drc;
    /* ENOTSUP: an engine without that call yet; the records still go. */
    for (uint8_t p = KS_DATA; p <= KS_EXPIRY; p++) {
        cairn_iter_options o = {.prefix = &p, .prefix_len = 1};
        cairn_iter *it = NULL;
        int rc = cairn_txn_iter(t, &o, &it);
        if (rc)
            return rc;
        for (cairn_iter_first(it); cairn_iter_valid(it) && rc == 0;
             cairn_iter_next(it)) {
            size_t kl;
            const void *k = cairn_iter_key(it, &kl);
            rc = cairn_txn_delete(t, k, kl);
        }
        if (rc == 0)
            rc = cairn_iter_status(it);
        cairn_iter_free(it);
        if (rc)
            return rc;
    }
    cairn_resp_simple(x->out, "OK");
    return 0;
}

static void c_flushall(cmd_ctx *x)
{
    for (size_t i = 1; i < x->argc; i++)
        if (!arg_is(x, i, "SYNC") && !arg_is(x, i, "ASYNC")) {
            reply_syntax(x);
            return;
        }
    run_write(x, flush_op, NULL);
}

/* ---------- time travel ---------- */

static void c_cairn_version(cmd_ctx *x)
{
    if (x->argc == 1) {
        cairn_resp_integer(x->out, (long long)srv_client_last_version(x->c));
    } else if (x->argc == 2 && arg_is(x, 1, "CURRENT")) {
        cairn_resp_integer(x->out, (long long)cairn_current_version(x->db));
    } else if (x->argc == 2 && arg_is(x, 1, "OLDEST")) {
        cairn_resp_integer(x->out, (long long)cairn_oldest_version(x->db));
    } else {
        reply_syntax(x);
    }
}

/* CAIRN.GETAT key VERSION v | TIME unix-ms */
static void c_cairn_getat(cmd_ctx *x)
{
    long long v;
    if (x->argc != 4 || !parse_ll(x->argv[3], x->argl[3], &v) || v < 0) {
        if (x->argc == 4)
            reply_notint(x);
        else
            reply_syntax(x);
        return;
    }
    ks_key k;
    if (ks_key_make(&k, x->argv[1], x->argl[1])) {
        cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
        return;
    }
    void *val = NULL;
    size_t vl = 0;
    int rc;
    uint64_t at_ms = 0;
    if (arg_is(x, 2, "VERSION")) {
        rc = cairn_get_at_version(x->db, k.p, k.len, (uint64_t)v, &val, &vl);
    } else if (arg_is(x, 2, "TIME")) {
        at_ms = (uint64_t)v;
        /* Everything committed up to the end of that millisecond. */
        rc = cairn_get_at_time(x->db, k.p, k.len, (uint64_t)v * 1000 + 999,
                               &val, &vl);
    } else {
        ks_key_free(&k);
        reply_syntax(x);
        return;
    }
    ks_key_free(&k);
    if (rc == CAIRN_ENOTFOUND) {
        cairn_resp_null(x->out);
        return;
    }
    if (rc) {
        cmd_reply_engine_error(x->out, rc);
        return;
    }
    ks_rec r;
    memset(&r, 0, sizeof r);
    if (ks_decode(val, vl, &r) != 0) {
        cairn_free(val);
        cmd_reply_engine_error(x->out, CAIRN_ECORRUPT);
        return;
    }
    uint64_t ref = at_ms ? at_ms : x->now_ms;
    if (r.expiry_ms && r.expiry_ms <= ref)
        cairn_resp_null(x->out);
    else if (r.type != KS_TYPE_STRING)
        reply_wrongtype(x);
    else
        cairn_resp_bulk(x->out, r.payload, r.plen);
    cairn_free(val);
}

/* CAIRN.HISTORY key [COUNT n]: [[version, time-ms, value-or-nil], ...]
 * newest first. */
static void c_cairn_history(cmd_ctx *x)
{
    long long max = 0;
    if (x->argc == 4 && arg_is(x, 2, "COUNT")) {
        if (!parse_ll(x->argv[3], x->argl[3], &max) || max < 0) {
            reply_notint(x);
            return;
        }
    } else if (x->argc != 2) {
        reply_syntax(x);
        return;
    }
    ks_key k;
    if (ks_key_make(&k, x->argv[1], x->argl[1])) {
        cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
        return;
    }
    cairn_key_version *vs = NULL;
    size_t n = 0;
    int rc = cairn_key_versions(x->db, k.p, k.len, (size_t)max, &vs, &n);
    ks_key_free(&k);
    if (rc == CAIRN_ENOTFOUND) {
        cairn_resp_array(x->out, 0);
        return;
    }
    if (rc) {
        cmd_reply_engine_error(x->out, rc);
        return;
    }
    cairn_resp_array(x->out, (long long)n);
    for (size_t i = 0; i < n; i++) {
        cairn_resp_array(x->out, 3);
        cairn_resp_integer(x->out, (long long)vs[i].version);
        cairn_resp_integer(x->out, (long long)(vs[i].time_us / 1000));
        ks_rec r;
        memset(&r, 0, sizeof r);
        if (vs[i].deleted || ks_decode(vs[i].value, vs[i].vlen, &r) != 0 ||
            r.type != KS_TYPE_STRING)
            cairn_resp_null(x->out);
        else
            cairn_resp_bulk(x->out, r.payload, r.plen);
    }
    cairn_key_versions_free(vs, n);
}

/* ---------- server ---------- */

static void c_time(cmd_ctx *x)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char a[32], b[32];
    int al = snprintf(a, sizeof a, "%lld", (long long)ts.tv_sec);
    int bl = snprintf(b, sizeof b, "%ld", ts.tv_nsec / 1000);
    cairn_resp_array(x->out, 2);
    cairn_resp_bulk(x->out, a, (size_t)al);
    cairn_resp_bulk(x->out, b, (size_t)bl);
}

static void c_info(cmd_ctx *x)
{
    srv_info(x->srv, x->argc - 1, x->argv + 1, x->argl + 1, x->out);
}

static void c_save(cmd_ctx *x)
{
    /* BGSAVE [SCHEDULE]: nothing runs in the background to wait for. */
    if (x->argc > 1 && !(x->argc == 2 && arg_is(x, 1, "SCHEDULE"))) {
        reply_syntax(x);
        return;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = cairn_flush(x->db);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (x->srv)
        srv_note_save(x->srv,
                      (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000 +
                                 (t1.tv_nsec - t0.tv_nsec) / 1000),
                      rc != 0);
    if (rc)
        cmd_reply_engine_error(x->out, rc);
    else if (x->argl[0] == 6) /* BGSAVE: done already, say it as Redis */
        cairn_resp_simple(x->out, "Background saving started");
    else
        cairn_resp_simple(x->out, "OK");
}

static void c_lastsave(cmd_ctx *x)
{
    cairn_resp_integer(x->out, (long long)(ks_now_ms() / 1000));
}

static void c_shutdown(cmd_ctx *x)
{
    /* Like Redis: no reply on success, the connection closes once the
     * server has finished in-flight commits and flushed. */
    for (size_t i = 1; i < x->argc; i++)
        if (!arg_is(x, i, "NOSAVE") && !arg_is(x, i, "SAVE") &&
            !arg_is(x, i, "NOW") && !arg_is(x, i, "FORCE")) {
            reply_syntax(x);
            return;
        }
    srv_request_shutdown(x->srv);
}

/* An argument as a C string (NUL-free, bounded): false if it does not
 * fit or holds a NUL. */
static bool arg_cstr(cmd_ctx *x, size_t i, char *buf, size_t len)
{
    if (x->argl[i] >= len || memchr(x->argv[i], 0, x->argl[i]))
        return false;
    memcpy(buf, x->argv[i], x->argl[i]);
    buf[x->argl[i]] = '\0';
    return true;
}

static void config_get(cmd_ctx *x)
{
    const srv_config *c = srv_get_config(x->srv);
    cairn_resp_buf tmp;
    cairn_resp_init(&tmp, x->proto);
    long long n = 0;
    const char *name;
    for (size_t i = 0; (name = srv_config_name(i)) != NULL; i++) {
        bool m = false;
        for (size_t a = 2; a < x->argc && !m; a++) {
            /* patterns are matched case-insensitively, like Redis */
            uint8_t lower[256];
            size_t l = x->argl[a] < sizeof lower ? x->argl[a] : 0;
            for (size_t j = 0; j < l; j++)
                lower[j] = (uint8_t)tolower(x->argv[a][j]);
            m = l && srv_acl_glob_match(lower, l, (const uint8_t *)name,
                                        strlen(name));
        }
        char v[1024];
        if (m && srv_config_get(c, name, v, sizeof v) == 0) {
            cairn_resp_bulk_cstr(&tmp, name);
            cairn_resp_bulk_cstr(&tmp, v);
            n++;
        }
    }
    cairn_resp_map(x->out, n);
    cairn_resp_raw(x->out, tmp.p, tmp.len);
    cairn_resp_free(&tmp);
}

/* CONFIG SET name value [name value ...]: all or nothing. */
static void config_set(cmd_ctx *x)
{
    if (x->argc % 2 != 0) {
        cairn_resp_error(x->out, "ERR wrong number of arguments for 'config|set' "
                                 "command");
        return;
    }
    srv_config tmp;
    if (srv_config_copy(&tmp, srv_get_config(x->srv)) != 0) {
        cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
        return;
    }
    char name[128], value[4096], err[512];
    for (size_t i = 2; i < x->argc; i += 2) {
        char probe[8];
        if (!arg_cstr(x, i, name, sizeof name) ||
            srv_config_get(&tmp, name, probe, sizeof probe) != 0) {
            cairn_resp_errorf(x->out, "ERR Unknown option or number of "
                                      "arguments for CONFIG SET - '%.*s'",
                              (int)(x->argl[i] > 128 ? 128 : x->argl[i]),
                              (const char *)x->argv[i]);
            srv_config_free(&tmp);
            return;
        }
        for (size_t k = 2; k < i; k += 2)
            if (x->argl[k] == x->argl[i] &&
                !strncasecmp((const char *)x->argv[k], name, x->argl[i])) {
                cairn_resp_errorf(x->out, "ERR CONFIG SET failed (possibly "
                                          "related to argument '%s') - "
                                          "duplicate parameter",
                                  name);
                srv_config_free(&tmp);
                return;
            }
        if (!srv_config_runtime(name)) {
            cairn_resp_errorf(x->out, "ERR CONFIG SET failed (possibly related "
                                      "to argument '%s') - can't set immutable "
                                      "config",
                              name);
            srv_config_free(&tmp);
            return;
        }
        bool fits = arg_cstr(x, i + 1, value, sizeof value);
        if (!fits || srv_config_set(&tmp, name, value, err, sizeof err) != 0) {
            cairn_resp_errorf(x->out, "ERR CONFIG SET failed (possibly related "
                                      "to argument '%s') - %s",
                              name,
                              fits ? err : "argument too long or with a NUL");
            srv_config_free(&tmp);
            return;
        }
    }
    srv_config_free(&tmp);
    for (size_t i = 2; i < x->argc; i += 2) {
        arg_cstr(x, i, name, sizeof name);
        arg_cstr(x, i + 1, value, sizeof value);
        if (srv_config_apply(x->srv, name, value, err, sizeof err) != 0) {
            cairn_resp_errorf(x->out, "ERR CONFIG SET failed (possibly related "
                                      "to argument '%s') - %s",
                              name, err);
            return;
        }
    }
    cairn_resp_simple(x->out, "OK");
}

static const cairn_resp_sub CONFIG_SUBS[] = {
    {"get", -3}, {"set", -4}, {"resetstat", 2}, {"rewrite", 2}, {"help", 2},
};

static void c_config(cmd_ctx *x)
{
    if (cairn_resp_sub_find(x->out, "CONFIG", CONFIG_SUBS,
                            sizeof CONFIG_SUBS / sizeof CONFIG_SUBS[0],
                            x->argc, x->argv, x->argl) < 0)
        return;
    if (arg_is(x, 1, "GET")) {
        config_get(x);
    } else if (arg_is(x, 1, "SET")) {
        config_set(x);
    } else if (arg_is(x, 1, "REWRITE") && x->argc == 2) {
        char err[512];
        if (srv_config_rewrite_running(x->srv, err, sizeof err) != 0)
            cairn_resp_errorf(x->out, "ERR %s", err);
        else
            cairn_resp_simple(x->out, "OK");
    } else if (arg_is(x, 1, "RESETSTAT") && x->argc == 2) {
        srv_reset_stats(x->srv);
        cairn_resp_simple(x->out, "OK");
    } else if (arg_is(x, 1, "HELP") && x->argc == 2) {
        static const char *const help[] = {
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "    Return parameters matching the glob-like <pattern> and their "
            "values.",
            "SET <directive> <value> [<directive> <value> ...]",
            "    Set the configuration <directive> to <value> (only the "
            "settings that can change at run time).",
            "RESETSTAT",
            "    Accepted; statistics are kept.",
            "REWRITE",
            "    Rewrite the configuration file.",
            "HELP",
            "    Print this help."};
        cmd_reply_help(x->out, help, sizeof help / sizeof help[0]);
    } else {
        cmd_reply_bad_sub(x->out, "CONFIG", x->argv[1], x->argl[1]);
    }
}

static void c_acl(cmd_ctx *x)
{
    srv_acl_run(x->srv, x->c, x->argc, x->argv, x->argl, x->out);
}

static void c_slowlog(cmd_ctx *x)
{
    srv_slowlog_command(x->srv, x);
}

static void c_command(cmd_ctx *x);

/* ---------- transactions (loop side; EXEC runs on a committer) ---------- */

static void c_multi(cmd_ctx *x)
{
    if (srv_client_in_multi(x->c)) {
        cairn_resp_error(x->out, "ERR MULTI calls can not be nested");
        return;
    }
    srv_client_multi(x->c);
    cairn_resp_simple(x->out, "OK");
}

static void c_discard(cmd_ctx *x)
{
    if (!srv_client_in_multi(x->c)) {
        cairn_resp_error(x->out, "ERR DISCARD without MULTI");
        return;
    }
    srv_client_discard(x->c);
    srv_client_unwatch(x->c);
    cairn_resp_simple(x->out, "OK");
}

static void c_exec(cmd_ctx *x)
{
    if (!srv_client_in_multi(x->c)) {
        cairn_resp_error(x->out, "ERR EXEC without MULTI");
        return;
    }
    srv_client_exec(x->c);
}

static void c_watch(cmd_ctx *x)
{
    if (srv_client_in_multi(x->c)) {
        cairn_resp_error(x->out, "ERR WATCH inside MULTI is not allowed");
        return;
    }
    uint64_t v = cairn_current_version(x->db);
    for (size_t i = 1; i < x->argc; i++) {
        /* There but expired (not yet deleted)? Its deletion later is no
         * change (Redis 7.0). */
        ks_rec r;
        int rc = ks_get(x->db, NULL, x->argv[i], x->argl[i], 0, &r);
        bool expired = rc == 0 && r.found && r.expiry_ms &&
                       r.expiry_ms <= x->now_ms;
        ks_rec_free(&r);
        if (rc == 0)
            rc = srv_client_watch(x->c, x->argv[i], x->argl[i], v, expired);
        if (rc) {
            cmd_reply_engine_error(x->out, rc);
            return;
        }
    }
    cairn_resp_simple(x->out, "OK");
}

static void c_unwatch(cmd_ctx *x)
{
    /* Queued inside MULTI, it runs in EXEC (off the loop), which forgets
     * the watched keys itself once done: nothing to do there. */
    if (!x->txn)
        srv_client_unwatch(x->c);
    cairn_resp_simple(x->out, "OK");
}

/* Has a watched key changed since its WATCH (w), as Redis 7.0 sees it at
 * EXEC (now_ms)? A commit after w->version wrote it; or it has expired
 * since. A key already expired at WATCH is unchanged while it is only
 * deleted (the sweep, a lazy delete), changed once written again. */
#define WATCH_VERSIONS 16
static int watched_changed(cairn_db *db, const uint8_t *key, size_t kl,
                           const srv_watch *w, uint64_t now_ms, bool *changed)
{
    ks_key k;
    int rc = ks_key_make(&k, key, kl);
    if (rc)
        return rc;
    cairn_key_version *vs = NULL;
    size_t n = 0;
    rc = cairn_key_versions(db, k.p, k.len, WATCH_VERSIONS, &vs, &n);
    ks_key_free(&k);
    *changed = false;
    if (rc == CAIRN_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    size_t newer = 0;
    while (newer < n && vs[newer].version > w->version)
        newer++;
    if (w->expired) {
        for (size_t i = 0; i < newer; i++)
            if (!vs[i].deleted)
                *changed = true;
        /* More newer versions than were read: assume a write among them. */
        if (newer == n && n == WATCH_VERSIONS)
            *changed = true;
    } else if (newer > 0) {
        *changed = true;
    } else if (n > 0 && !vs[0].deleted) {
        ks_rec r;
        memset(&r, 0, sizeof r);
        if (ks_decode(vs[0].value, vs[0].vlen, &r) == 0 && r.expiry_ms &&
            r.expiry_ms <= now_ms)
            *changed = true; /* expired since WATCH */
    }
    cairn_key_versions_free(vs, n);
    return 0;
}

bool cmd_queued_on_loop(const cmd_queued *q)
{
    unsigned f = q->def->flags;
    if ((f & CMD_LOOP) && !(f & CMD_MULTIOK))
        return true;
    /* MEMORY STATS and DOCTOR read the loop's clients and memory peak. */
    return !strcmp(q->def->name, "memory") && q->argc >= 2 &&
           (is_word(q->argv[1], q->argl[1], "STATS") ||
            is_word(q->argv[1], q->argl[1], "DOCTOR"));
}

/* Run cmds, one after the other, in transaction t (replies to x->out);
 * those the loop runs once EXEC is back are left out. */
static void run_into(cmd_ctx *x, const cmd_queued *cmds, size_t n,
                     cairn_txn *t)
{
    for (size_t i = 0; i < n; i++) {
        if (!cmds[i].denied && cmd_queued_on_loop(&cmds[i]))
            continue; /* the loop runs it when the job is back */
        if (cmds[i].denied) {
            cairn_resp_errorf(x->out, "NOPERM ACLs rules changed between the "
                                      "moment the transaction was accumulated "
                                      "and the EXEC call. This command is no "
                                      "longer allowed for the following "
                                      "reason: %s",
                              cmds[i].denied == CMD_DENIED_KEYS
                                  ? "no permission to touch the specified keys"
                                  : "no permission to execute the command or "
                                    "subcommand");
            continue;
        }
        cmd_ctx q = *x;
        if (cmds[i].proto) { /* EXEC: after a HELLO queued before it */
            q.proto = cmds[i].proto;
            x->out->proto = cmds[i].proto;
        }
        q.argc = cmds[i].argc;
        q.argv = cmds[i].argv;
        q.argl = cmds[i].argl;
        q.txn = t;
        q.txn_conflict = false;
        cmds[i].def->fn(&q);
        if (q.txn_conflict)
            x->txn_conflict = true;
    }
}

/* Run cmds in one transaction (serializable when keys are watched),
 * committed once, retried on a conflict with the replies rewritten. exec:
 * EXEC's reply shape (see server.h); else a batch of pipelined writes. */
static void run_queued(cmd_ctx *x, const cmd_queued *cmds, size_t n,
                       bool exec, size_t nwatch, const uint8_t **wkeys,
                       const size_t *wlens, const srv_watch *wst)
{
    size_t mark = x->out->len;
    for (int attempt = 0;; attempt++) {
        x->out->len = mark;
        cairn_txn_options to = {.isolation = nwatch
                                                 ? CAIRN_ISOLATION_SERIALIZABLE
                                                 : CAIRN_ISOLATION_DEFAULT};
        cairn_txn *t = NULL;
        int rc = cairn_txn_begin(x->db, &to, &t);
        bool abort_watch = false;
        /* WATCH: a watched key written after WATCH makes EXEC return nil;
         * reading the keys in the (serializable) transaction makes a
         * write between here and the commit a conflict. */
        for (size_t i = 0; rc == 0 && i < nwatch && !abort_watch; i++) {
            rc = watched_changed(x->db, wkeys[i], wlens[i], &wst[i],
                                 x->now_ms, &abort_watch);
            if (rc == 0 && !abort_watch) {
                ks_rec r;
                rc = ks_get(x->db, t, wkeys[i], wlens[i], x->now_ms, &r);
                ks_rec_free(&r);
            }
        }
        if (rc == 0 && abort_watch) {
            cairn_txn_abort(t);
            cairn_resp_null_array(x->out);
            return;
        }
        if (rc == 0) {
            if (exec)
                cairn_resp_array(x->out, n);
            x->txn_conflict = false;
            run_into(x, cmds, n, t);
            if (x->txn_conflict) { /* a command met a conflict: again */
                x->txn_conflict = false;
                rc = CAIRN_ECONFLICT;
            } else {
                uint64_t v = 0;
                rc = cairn_txn_commit(t, &v);
                t = NULL;
                if (rc == 0) {
                    x->version = v;
                    return;
                }
            }
        }
        if (t)
            cairn_txn_abort(t);
        if (rc == CAIRN_ECONFLICT && attempt < MAX_RETRIES) {
            conflict_backoff(attempt); /* watched keys are checked again */
            continue;
        }
        x->out->len = mark;
        for (size_t i = 0; i < (exec ? 1 : n); i++)
            cmd_reply_engine_error(x->out, rc);
        return;
    }
}

void cmd_exec_queued(cmd_ctx *x, const cmd_queued *cmds, size_t n,
                     size_t nwatch, const uint8_t **wkeys, const size_t *wlens,
                     const srv_watch *wst)
{
    run_queued(x, cmds, n, true, nwatch, wkeys, wlens, wst);
}

int cmd_batch_prepare(cmd_ctx *x, const cmd_queued *cmds, size_t n,
                      cairn_txn **txn)
{
    /* Plain SETs and the like, read nothing: commit them blind, as each
     * would go alone (no validation lookups, never a conflict). */
    cairn_txn_options o = {.blind_if_unread = true};
    for (size_t i = 0; i < n; i++) {
        if (cmds[i].def->flags & CMD_BLOCKING)
            return CAIRN_EBUSY;
        if (!(cmds[i].def->flags & CMD_BLIND))
            o.blind_if_unread = false;
    }
    cairn_txn *t = NULL;
    int rc = cairn_txn_begin(x->db, &o, &t);
    if (rc)
        return rc;
    size_t mark = x->out->len;
    x->txn_conflict = false;
    run_into(x, cmds, n, t);
    if (x->txn_conflict) { /* the committer runs it again, retrying */
        x->txn_conflict = false;
        cairn_txn_abort(t);
        x->out->len = mark;
        return CAIRN_ECONFLICT;
    }
    *txn = t;
    return 0;
}

void cmd_run_batch(cmd_ctx *x, const cmd_queued *cmds, size_t n)
{
    run_queued(x, cmds, n, false, 0, NULL, NULL, NULL);
}

/* ---------- the expiry sweep ---------- */

size_t cmd_sweep_expired(cairn_db *db, uint64_t now_ms, size_t max)
{
    uint8_t lo = KS_EXPIRY;
    uint8_t hi[9];
    hi[0] = KS_EXPIRY;
    for (int i = 0; i < 8; i++)
        hi[1 + i] = (uint8_t)((now_ms + 1) >> (56 - 8 * i));
    cairn_iter_options o = {.lower = &lo, .lower_len = 1, .upper = hi,
                            .upper_len = 9};
    cairn_iter *it = NULL;
    if (cairn_iter_new(db, &o, &it) != 0)
        return 0;
    size_t done = 0, deleted = 0;
    for (cairn_iter_first(it); cairn_iter_valid(it) && done < max;
         cairn_iter_next(it), done++) {
        size_t kl;
        const uint8_t *k = cairn_iter_key(it, &kl);
        if (kl < 9)
            continue;
        uint64_t when = 0;
        for (int i = 0; i < 8; i++)
            when = when << 8 | k[1 + i];
        for (int attempt = 0; attempt < 10; attempt++) {
            cairn_txn *t = NULL;
            if (cairn_txn_begin(db, NULL, &t) != 0)
                break;
            ks_rec r;
            int rc = ks_get(db, t, k + 9, kl - 9, 0, &r);
            bool del = rc == 0 && r.found && r.expiry_ms == when &&
                       when <= now_ms;
            if (del)
                rc = ks_del(t, k + 9, kl - 9);
            ks_rec_free(&r);
            if (rc == 0)
                rc = cairn_txn_delete(t, k, kl);
            if (rc == 0) {
                rc = cairn_txn_commit(t, NULL);
                deleted += rc == 0 && del;
                if (rc != CAIRN_ECONFLICT)
                    break;
            } else {
                cairn_txn_abort(t);
                break;
            }
        }
    }
    cairn_iter_free(it);
    return deleted;
}

cmd_text *cmd_text_begin(cairn_resp_buf *out)
{
    cmd_text *t = calloc(1, sizeof *t);
    if (t) {
        t->out = out;
        t->f = open_memstream(&t->buf, &t->len);
    }
    if (!t || !t->f) {
        free(t);
        cmd_reply_engine_error(out, CAIRN_ENOMEM);
        return NULL;
    }
    return t;
}

void cmd_text_end(cmd_text *t)
{
    fclose(t->f);
    cairn_resp_verbatim(t->out, "txt", t->buf, t->len);
    free(t->buf);
    free(t);
}

/* ---------- MEMORY, OBJECT ---------- */

static const cairn_resp_sub MEMORY_SUBS[] = {
    {"doctor", 2}, {"malloc-stats", 2}, {"purge", 2},
    {"stats", 2},  {"usage", -3},       {"help", 2},
};

static const cairn_resp_sub OBJECT_SUBS[] = {
    {"encoding", 3}, {"freq", 3}, {"refcount", 3}, {"help", 2},
};

/* Read the record of argv[2] (OBJECT's and MEMORY USAGE's key): true with
 * *r filled, or false with the reply written (an error, or nil for a
 * missing key). */
static bool key_or_nil(cmd_ctx *x, ks_rec *r)
{
    int rc = get_rec(x, NULL, x->argv[2], x->argl[2], r);
    if (rc) {
        cmd_reply_engine_error(x->out, rc);
        return false;
    }
    if (!r->found) {
        cairn_resp_null(x->out);
        return false;
    }
    return true;
}

/* What a memtable entry costs beside its key and record (node, tower,
 * hash entry): MEMORY USAGE's estimate adds it. */
#define MEM_ENTRY_OVERHEAD 64

/* MEMORY USAGE key [SAMPLES n]: an estimate of the bytes the key takes
 * while in memory: the key, its record (value, type, expiry) or, for a
 * series, its chunks, and an entry's overhead. nil: no such key. */
static void memory_usage(cmd_ctx *x)
{
    for (size_t i = 3; i < x->argc; i += 2) {
        long long n;
        if (!arg_is(x, i, "SAMPLES") || i + 1 >= x->argc) {
            reply_syntax(x);
            return;
        }
        if (!parse_ll(x->argv[i + 1], x->argl[i + 1], &n)) {
            reply_notint(x);
            return;
        }
        if (n < 0) {
            reply_syntax(x);
            return;
        }
    }
    ks_rec r;
    if (!key_or_nil(x, &r))
        return;
    uint64_t bytes = 1 + x->argl[2] + 16 + r.plen + MEM_ENTRY_OVERHEAD;
    if (r.type == KS_TYPE_TS) {
        cairn_ts_info *in = NULL;
        if (cairn_ts_info_get(x->db, x->txn, x->argv[2], x->argl[2], &in) ==
            0) {
            bytes += in->memory_bytes;
            cairn_ts_info_free(in);
        }
    }
    ks_rec_free(&r);
    cairn_resp_integer(x->out, (int64_t)bytes);
}

static void c_memory(cmd_ctx *x)
{
    if (cairn_resp_sub_find(x->out, "MEMORY", MEMORY_SUBS,
                            sizeof MEMORY_SUBS / sizeof MEMORY_SUBS[0],
                            x->argc, x->argv, x->argl) < 0)
        return;
    if (arg_is(x, 1, "USAGE")) {
        memory_usage(x);
    } else if (arg_is(x, 1, "STATS")) { /* (on the loop, even in EXEC) */
        srv_memory_stats(x->srv, x->out);
    } else if (arg_is(x, 1, "DOCTOR")) {
        srv_memory_doctor(x->srv, x->out);
    } else if (arg_is(x, 1, "MALLOC-STATS")) {
        /* The C library's report (XML), as Redis gives jemalloc's. */
        cmd_text *t = cmd_text_begin(x->out);
        if (!t)
            return;
        if (malloc_info(0, t->f) != 0)
            fprintf(t->f, "Stats not supported for the current allocator");
        cmd_text_end(t);
    } else if (arg_is(x, 1, "PURGE")) {
        malloc_trim(0);
        cairn_resp_simple(x->out, "OK");
    } else {
        static const char *const help[] = {
            "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value (an "
            "estimate: the key,",
            "    its record and an in-memory entry's overhead; SAMPLES is "
            "accepted).",
            "HELP",
            "    Prints this help."};
        cmd_reply_help(x->out, help, sizeof help / sizeof help[0]);
    }
}

/* OBJECT ENCODING / REFCOUNT / FREQ key, with Redis's answers for a
 * string: "int" (a 64-bit integer in canonical form), "embstr" (up to 44
 * bytes) or "raw"; a series is "raw", as a module's value. Small integers
 * (0..9999) are shared in Redis: refcount 2147483647. FREQ needs an LFU
 * eviction policy, which Cairn does not have (it does not evict). */
static void c_object(cmd_ctx *x)
{
    if (cairn_resp_sub_find(x->out, "OBJECT", OBJECT_SUBS,
                            sizeof OBJECT_SUBS / sizeof OBJECT_SUBS[0],
                            x->argc, x->argv, x->argl) < 0)
        return;
    if (arg_is(x, 1, "HELP")) {
        static const char *const help[] = {
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to "
            "store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key> (needs an LFU "
            "eviction policy;",
            "    cairn-server does not evict).",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with "
            "the specified",
            "    <key>.",
            "HELP",
            "    Prints this help."};
        cmd_reply_help(x->out, help, sizeof help / sizeof help[0]);
        return;
    }
    ks_rec r;
    if (!key_or_nil(x, &r))
        return;
    long long v = 0;
    bool is_int = r.type == KS_TYPE_STRING && parse_ll(r.payload, r.plen, &v);
    if (arg_is(x, 1, "ENCODING"))
        cairn_resp_bulk_cstr(x->out, is_int ? "int"
                                     : r.type == KS_TYPE_STRING && r.plen <= 44
                                         ? "embstr"
                                         : "raw");
    else if (arg_is(x, 1, "REFCOUNT"))
        cairn_resp_integer(x->out, is_int && v >= 0 && v < 10000 ? INT32_MAX
                                                                  : 1);
    else
        cairn_resp_error(x->out,
                         "ERR An LFU maxmemory policy is not selected, access "
                         "frequency not tracked. Please note that when "
                         "switching between policies at runtime LRU and LFU "
                         "data will take some time to adjust.");
    ks_rec_free(&r);
}

/* ---------- the table ---------- */

static const cmd_def TABLE[] = {
    {"acl", -2, CMD_LOOP | CMD_SUBCMDS, c_acl, 0, 0, 0,
     SRV_ACL_CAT_ADMIN|SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS,
     "Access control: SETUSER, GETUSER, DELUSER, USERS, LIST, WHOAMI, CAT."},
    {"append", 3, CMD_WRITE, c_append, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST, "Appends a string to a key's value."},
    {"auth", -2, CMD_NOAUTH | CMD_LOOP, c_auth, 0, 0, 0,
     SRV_ACL_CAT_CONNECTION|SRV_ACL_CAT_FAST,
     "Authenticates the connection."},
    {"bgsave", -1, CMD_WRITE | CMD_BLOCKING, c_save, 0, 0, 0,
     SRV_ACL_CAT_ADMIN|SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS,
     "Writes the memtables to sorted files (a checkpoint)."},
    {"cairn.getat", 4, 0, c_cairn_getat, 1, 1, 1,
     SRV_ACL_CAT_READ|SRV_ACL_CAT_STRING|SRV_ACL_CAT_SLOW,
     "Reads a key as of a commit version (VERSION v) or a time (TIME "
     "unix-ms)."},
    {"cairn.history", -2, 0, c_cairn_history, 1, 1, 1,
     SRV_ACL_CAT_READ|SRV_ACL_CAT_STRING|SRV_ACL_CAT_SLOW,
     "Lists a key's versions, newest first: [version, time-ms, value]."},
    {"cairn.version", -1, CMD_LOOP, c_cairn_version, 0, 0, 0,
     SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST,
     "The commit version of this connection's last write (CURRENT: the "
     "database's newest; OLDEST: the oldest readable)."},
    {"client", -2, CMD_LOOP | CMD_SUBCMDS, c_client, 0, 0, 0,
     SRV_ACL_CAT_CONNECTION|SRV_ACL_CAT_SLOW,
     "Connection management: ID, SETNAME, GETNAME, INFO, LIST, KILL ID."},
    {"command", -1, CMD_LOOP | CMD_SUBCMDS, c_command, 0, 0, 0,
     SRV_ACL_CAT_CONNECTION|SRV_ACL_CAT_SLOW,
     "Describes the commands."},
    {"config", -2, CMD_LOOP | CMD_SUBCMDS, c_config, 0, 0, 0,
     SRV_ACL_CAT_ADMIN|SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS,
     "The configuration: GET, SET, REWRITE."},
    {"copy", -3, CMD_WRITE, c_copy, 1, 2, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW, "Copies a key's value to another key."},
    {"dbsize", 1, CMD_OFFLOOP, c_dbsize, 0, 0, 0,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST, "The number of keys."},
    {"decr", 2, CMD_WRITE, c_decr, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST, "Decrements an integer value by one."},
    {"decrby", 3, CMD_WRITE, c_decrby, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST, "Decrements an integer value."},
    {"del", -2, CMD_WRITE, c_del, 1, -1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW, "Deletes keys."},
    {"discard", 1, CMD_LOOP | CMD_NOMULTI, c_discard, 0, 0, 0,
     SRV_ACL_CAT_TRANSACTION|SRV_ACL_CAT_FAST,
     "Discards a transaction."},
    {"echo", 2, 0, c_echo, 0, 0, 0,
     SRV_ACL_CAT_CONNECTION|SRV_ACL_CAT_FAST, "Returns the given string."},
    {"exec", 1, CMD_LOOP | CMD_NOMULTI | CMD_NOSLOWLOG, c_exec, 0, 0, 0,
     SRV_ACL_CAT_TRANSACTION|SRV_ACL_CAT_SLOW,
     "Executes the queued commands as one transaction."},
    {"exists", -2, 0, c_exists, 1, -1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST, "Counts the keys that exist."},
    {"expire", -3, CMD_WRITE, c_expire, 1, 1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_FAST, "Sets a key's time to live (s)."},
    {"expireat", -3, CMD_WRITE, c_expireat, 1, 1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_FAST,
     "Sets a key's expiry (Unix time, s)."},
    {"expiretime", 2, 0, c_expiretime, 1, 1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST, "A key's expiry (Unix time, s)."},
    {"flushall", -1, CMD_WRITE | CMD_BLOCKING, c_flushall, 0, 0, 0,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS, "Deletes every key."},
    {"flushdb", -1, CMD_WRITE | CMD_BLOCKING, c_flushall, 0, 0, 0,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS, "Deletes every key."},
    {"get", 2, 0, c_get, 1, 1, 1,
     SRV_ACL_CAT_READ|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST, "Returns a key's string value."},
    {"getdel", 2, CMD_WRITE, c_getdel, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST, "Returns a string value and deletes "
                                       "the key."},
    {"getex", -2, CMD_WRITE, c_getex, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST,
     "Returns a string value and sets or clears its expiry."},
    {"getrange", 4, 0, c_getrange, 1, 1, 1,
     SRV_ACL_CAT_READ|SRV_ACL_CAT_STRING|SRV_ACL_CAT_SLOW, "Returns a substring of a value."},
    {"getset", 3, CMD_WRITE, c_getset, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST,
     "Sets a value and returns the previous one."},
    {"hello", -1, CMD_NOAUTH | CMD_LOOP, c_hello, 0, 0, 0,
     SRV_ACL_CAT_CONNECTION|SRV_ACL_CAT_FAST,
     "Handshake: protocol version, authentication, name."},
    {"incr", 2, CMD_WRITE, c_incr, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST, "Increments an integer value by one."},
    {"incrby", 3, CMD_WRITE, c_incrby, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST, "Increments an integer value."},
    {"incrbyfloat", 3, CMD_WRITE, c_incrbyfloat, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST,
     "Increments a floating-point value."},
    {"info", -1, CMD_LOOP, c_info, 0, 0, 0,
     SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS, "Server information and statistics."},
    {"keys", 2, CMD_OFFLOOP, c_keys, 0, 0, 0,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS, "The keys matching a pattern."},
    {"lastsave", 1, 0, c_lastsave, 0, 0, 0,
     SRV_ACL_CAT_ADMIN|SRV_ACL_CAT_FAST|SRV_ACL_CAT_DANGEROUS, "The time of the last checkpoint."},
    {"memory", -2, CMD_SUBCMDS, c_memory, 2, 2, 1,
     SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW,
     "Memory: USAGE of a key, STATS, DOCTOR, MALLOC-STATS, PURGE."},
    {"mget", -2, 0, c_mget, 1, -1, 1,
     SRV_ACL_CAT_READ|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST, "Returns several string values."},
    {"monitor", 1, CMD_LOOP | CMD_MULTIOK, c_monitor, 0, 0, 0,
     SRV_ACL_CAT_ADMIN|SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS,
     "Streams back every command the server processes, as Redis does."},
    {"mset", -3, CMD_WRITE | CMD_BLIND, c_mset, 1, -1, 2,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_SLOW, "Sets several keys atomically."},
    {"msetnx", -3, CMD_WRITE, c_msetnx, 1, -1, 2,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_SLOW,
     "Sets several keys atomically if none exists."},
    {"multi", 1, CMD_LOOP | CMD_NOMULTI, c_multi, 0, 0, 0,
     SRV_ACL_CAT_TRANSACTION|SRV_ACL_CAT_FAST, "Starts a transaction."},
    {"object", -2, CMD_SUBCMDS, c_object, 2, 2, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW,
     "A key's value: ENCODING, REFCOUNT, FREQ."},
    {"persist", 2, CMD_WRITE, c_persist, 1, 1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_FAST, "Removes a key's expiry."},
    {"pexpire", -3, CMD_WRITE, c_pexpire, 1, 1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_FAST, "Sets a key's time to live (ms)."},
    {"pexpireat", -3, CMD_WRITE, c_pexpireat, 1, 1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_FAST,
     "Sets a key's expiry (Unix time, ms)."},
    {"pexpiretime", 2, 0, c_pexpiretime, 1, 1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST, "A key's expiry (Unix time, ms)."},
    {"ping", -1, 0, c_ping, 0, 0, 0,
     SRV_ACL_CAT_CONNECTION|SRV_ACL_CAT_FAST, "Returns PONG or the argument."},
    {"psetex", 4, CMD_WRITE | CMD_BLIND, c_psetex, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_SLOW, "Sets a value with a time to live "
                                       "(ms)."},
    {"pttl", 2, 0, c_pttl, 1, 1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST, "A key's time to live (ms)."},
    {"quit", -1, CMD_NOAUTH | CMD_LOOP | CMD_NOMULTI, c_quit, 0, 0, 0,
     SRV_ACL_CAT_CONNECTION|SRV_ACL_CAT_FAST,
     "Closes the connection."},
    {"randomkey", 1, CMD_OFFLOOP, c_randomkey, 0, 0, 0,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW, "A random key."},
    {"rename", 3, CMD_WRITE, c_rename, 1, 2, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW, "Renames a key."},
    {"renamenx", 3, CMD_WRITE, c_renamenx, 1, 2, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_FAST,
     "Renames a key if the new name is free."},
    {"reset", 1, CMD_NOAUTH | CMD_LOOP | CMD_NOMULTI, c_reset, 0, 0, 0,
     SRV_ACL_CAT_CONNECTION|SRV_ACL_CAT_FAST,
     "Resets the connection."},
    {"save", 1, CMD_WRITE | CMD_BLOCKING | CMD_NOTXN, c_save, 0, 0, 0,
     SRV_ACL_CAT_ADMIN|SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS,
     "Writes the memtables to sorted files (a checkpoint)."},
    {"scan", -2, CMD_OFFLOOP, c_scan, 0, 0, 0,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW, "Iterates over the keys."},
    {"select", 2, CMD_LOOP | CMD_MULTIOK, c_select, 0, 0, 0,
     SRV_ACL_CAT_CONNECTION|SRV_ACL_CAT_FAST, "Selects database 0 (the only one)."},
    {"set", -3, CMD_WRITE | CMD_BLIND, c_set, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_SLOW, "Sets a key's string value."},
    {"setex", 4, CMD_WRITE | CMD_BLIND, c_setex, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_SLOW, "Sets a value with a time to live "
                                     "(s)."},
    {"setnx", 3, CMD_WRITE, c_setnx, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST, "Sets a value if the key is free."},
    {"setrange", 4, CMD_WRITE, c_setrange, 1, 1, 1,
     SRV_ACL_CAT_WRITE|SRV_ACL_CAT_STRING|SRV_ACL_CAT_SLOW,
     "Overwrites part of a string value."},
    {"shutdown", -1, CMD_LOOP | CMD_NOTXN, c_shutdown, 0, 0, 0,
     SRV_ACL_CAT_ADMIN|SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS,
     "Finishes in-flight commits, flushes and stops the server."},
    {"slowlog", -2, CMD_LOOP | CMD_SUBCMDS, c_slowlog, 0, 0, 0,
     SRV_ACL_CAT_ADMIN|SRV_ACL_CAT_SLOW|SRV_ACL_CAT_DANGEROUS,
     "The slow command log: GET [count], LEN, RESET."},
    {"strlen", 2, 0, c_strlen, 1, 1, 1,
     SRV_ACL_CAT_READ|SRV_ACL_CAT_STRING|SRV_ACL_CAT_FAST, "The length of a string value."},
    {"time", 1, 0, c_time, 0, 0, 0,
     SRV_ACL_CAT_FAST, "The server time."},
    {"touch", -2, 0, c_touch, 1, -1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST, "Counts the keys that exist."},
    {"ts.add", -4, CMD_WRITE | CMD_BLOCKING, cmd_ts_add, 1, 1, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW,
     "Appends a sample to a time series (creating it if needed)."},
    {"ts.alter", -2, CMD_WRITE | CMD_BLOCKING, cmd_ts_alter, 1, 1, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW,
     "Changes a time series' retention, chunk size, duplicate policy, "
     "IGNORE or labels."},
    {"ts.create", -2, CMD_WRITE | CMD_BLOCKING, cmd_ts_create, 1, 1, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_FAST,
     "Creates a time series."},
    {"ts.createrule", -6, CMD_WRITE | CMD_BLOCKING, cmd_ts_createrule, 1, 2, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW,
     "Creates a compaction rule from one time series into another."},
    {"ts.decrby", -3, CMD_WRITE | CMD_BLOCKING, cmd_ts_decrby, 1, 1, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW,
     "Adds a sample of the newest value minus a decrement."},
    {"ts.del", 4, CMD_WRITE | CMD_BLOCKING, cmd_ts_del, 1, 1, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW,
     "Deletes the samples of a time series in a time range."},
    {"ts.deleterule", 3, CMD_WRITE | CMD_BLOCKING, cmd_ts_deleterule, 1, 2, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_FAST,
     "Deletes a compaction rule."},
    {"ts.get", -2, CMD_OFFLOOP, cmd_ts_get, 1, 1, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST,
     "The newest sample of a time series."},
    {"ts.incrby", -3, CMD_WRITE | CMD_BLOCKING, cmd_ts_incrby, 1, 1, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW,
     "Adds a sample of the newest value plus an increment."},
    {"ts.info", -2, CMD_OFFLOOP, cmd_ts_info, 1, 1, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST,
     "Information and statistics of a time series."},
    {"ts.madd", -4, CMD_WRITE | CMD_BLOCKING, cmd_ts_madd, 1, -1, 3,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_SLOW,
     "Appends samples to time series."},
    {"ts.mget", -3, CMD_OFFLOOP, cmd_ts_mget, 0, 0, 0,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW,
     "The newest sample of each time series a filter selects."},
    {"ts.mrange", -4, CMD_OFFLOOP, cmd_ts_mrange, 0, 0, 0,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW,
     "Samples of the time series a filter selects, oldest first."},
    {"ts.mrevrange", -4, CMD_OFFLOOP, cmd_ts_mrevrange, 0, 0, 0,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW,
     "Samples of the time series a filter selects, newest first."},
    {"ts.queryindex", -2, CMD_OFFLOOP, cmd_ts_queryindex, 0, 0, 0,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW,
     "The keys of the time series a filter selects."},
    {"ts.range", -4, CMD_OFFLOOP, cmd_ts_range, 1, 1, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW,
     "Samples of a time series in a range, oldest first."},
    {"ts.revrange", -4, CMD_OFFLOOP, cmd_ts_revrange, 1, 1, 1,
     SRV_ACL_CAT_TIMESERIES|SRV_ACL_CAT_READ|SRV_ACL_CAT_SLOW,
     "Samples of a time series in a range, newest first."},
    {"ttl", 2, 0, c_ttl, 1, 1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST, "A key's time to live (s)."},
    {"type", 2, 0, c_type, 1, 1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_READ|SRV_ACL_CAT_FAST, "The type of a key's value."},
    {"unlink", -2, CMD_WRITE, c_del, 1, -1, 1,
     SRV_ACL_CAT_KEYSPACE|SRV_ACL_CAT_WRITE|SRV_ACL_CAT_FAST, "Deletes keys."},
    {"unwatch", 1, CMD_LOOP | CMD_MULTIOK, c_unwatch, 0, 0, 0,
     SRV_ACL_CAT_TRANSACTION|SRV_ACL_CAT_FAST,
     "Forgets the watched keys."},
    {"watch", -2, CMD_LOOP | CMD_NOMULTI, c_watch, 1, -1, 1,
     SRV_ACL_CAT_TRANSACTION|SRV_ACL_CAT_FAST,
     "Watches keys: EXEC fails if they change."},
};

#define NCMDS (sizeof TABLE / sizeof TABLE[0])

const cmd_def *cmd_table(size_t *n)
{
    *n = NCMDS;
    return TABLE;
}

bool cmd_arity_ok(const cmd_def *d, size_t argc)
{
    return d->arity > 0 ? argc == (size_t)d->arity
                        : argc >= (size_t)-d->arity;
}

const cmd_def *cmd_lookup(const uint8_t *name, size_t len)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return NULL;
    for (size_t i = 0; i < len; i++)
        buf[i] = (char)tolower(name[i]);
    buf[len] = '\0';
    size_t lo = 0, hi = NCMDS;
    while (lo < hi) { /* the table is sorted by name */
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(TABLE[mid].name, buf);
        if (c == 0)
            return &TABLE[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void command_info(cmd_ctx *x, const cmd_def *d)
{
    cairn_resp_array(x->out, 10);
    cairn_resp_bulk_cstr(x->out, d->name);
    cairn_resp_integer(x->out, d->arity);
    const char *fl[4];
    size_t nf = 0;
    if (d->flags & CMD_WRITE)
        fl[nf++] = "write";
    else if (d->cats & SRV_ACL_CAT_READ)
        fl[nf++] = "readonly";
    if (d->cats & SRV_ACL_CAT_FAST)
        fl[nf++] = "fast";
    if (d->flags & CMD_NOAUTH)
        fl[nf++] = "no_auth";
    cairn_resp_set(x->out, nf);
    for (size_t i = 0; i < nf; i++)
        cairn_resp_simple(x->out, fl[i]);
    cairn_resp_integer(x->out, d->first);
    cairn_resp_integer(x->out, d->last);
    cairn_resp_integer(x->out, d->step);
    size_t ncat = 0;
    for (size_t i = 0; i < SRV_ACL_CAT_COUNT; i++)
        ncat += (d->cats >> i) & 1;
    cairn_resp_set(x->out, ncat);
    for (size_t i = 0; i < SRV_ACL_CAT_COUNT; i++)
        if ((d->cats >> i) & 1) {
            char cat[40];
            snprintf(cat, sizeof cat, "@%s", srv_acl_category_name(i));
            cairn_resp_simple(x->out, cat);
        }
    cairn_resp_set(x->out, 0); /* tips */
    cairn_resp_set(x->out, 0); /* key specs */
    cairn_resp_set(x->out, 0); /* subcommands */
}

static void command_doc(cmd_ctx *x, const cmd_def *d)
{
    cairn_resp_bulk_cstr(x->out, d->name);
    cairn_resp_map(x->out, 3);
    cairn_resp_bulk_cstr(x->out, "summary");
    cairn_resp_bulk_cstr(x->out, d->summary);
    cairn_resp_bulk_cstr(x->out, "since");
    cairn_resp_bulk_cstr(x->out, "0.1.0");
    cairn_resp_bulk_cstr(x->out, "group");
    cairn_resp_bulk_cstr(x->out, strncmp(d->name, "cairn.", 6) == 0 ? "cairn"
                                 : strncmp(d->name, "ts.", 3) == 0
                                     ? "timeseries"
                                     : "generic");
}

static const cairn_resp_sub COMMAND_SUBS[] = {
    {"count", 2},   {"docs", -2},    {"info", -2},
    {"list", -2},   {"getkeys", -4}, {"help", 2},
};

/* A container's subcommands (names and arities); NULL for a command that
 * has none. */
static const cairn_resp_sub *subcommands(const cmd_def *d, size_t *n)
{
    *n = 0;
    if (!(d->flags & CMD_SUBCMDS))
        return NULL;
    if (!strcmp(d->name, "acl"))
        return srv_acl_subcommands(n);
    if (!strcmp(d->name, "slowlog"))
        return srv_slowlog_subcommands(n);
    const cairn_resp_sub *subs = NULL;
    if (!strcmp(d->name, "client")) {
        subs = CLIENT_SUBS;
        *n = sizeof CLIENT_SUBS / sizeof CLIENT_SUBS[0];
    } else if (!strcmp(d->name, "command")) {
        subs = COMMAND_SUBS;
        *n = sizeof COMMAND_SUBS / sizeof COMMAND_SUBS[0];
    } else if (!strcmp(d->name, "config")) {
        subs = CONFIG_SUBS;
        *n = sizeof CONFIG_SUBS / sizeof CONFIG_SUBS[0];
    } else if (!strcmp(d->name, "memory")) {
        subs = MEMORY_SUBS;
        *n = sizeof MEMORY_SUBS / sizeof MEMORY_SUBS[0];
    } else if (!strcmp(d->name, "object")) {
        subs = OBJECT_SUBS;
        *n = sizeof OBJECT_SUBS / sizeof OBJECT_SUBS[0];
    }
    return subs;
}

bool cmd_subcommand_ok(const cmd_def *d, size_t argc,
                       const uint8_t *const *argv, const size_t *argl,
                       cairn_resp_buf *out)
{
    size_t n = 0;
    const cairn_resp_sub *subs = subcommands(d, &n);
    if (!subs || argc < 2)
        return true;
    char upper[32];
    size_t i = 0;
    for (; d->name[i] && i < sizeof upper - 1; i++)
        upper[i] = (char)toupper((unsigned char)d->name[i]);
    upper[i] = '\0';
    return cairn_resp_sub_find(out, upper, subs, n, argc, argv, argl) >= 0;
}

/* COMMAND LIST's filter, as Redis 7 reads it: none, FILTERBY MODULE name
 * (ts.* belong to "timeseries", as RedisTimeSeries names its module),
 * ACLCAT category (a subcommand counts in its container's categories, as
 * Cairn's ACL rules apply them) or PATTERN glob (case-insensitive, over
 * full names: "config|get"). */
typedef struct list_filter {
    enum { LF_NONE, LF_MODULE, LF_ACLCAT, LF_PATTERN } kind;
    const uint8_t *arg;
    size_t len;
    unsigned cat;
} list_filter;

static bool list_match(const list_filter *f, const cmd_def *d,
                       const char *full)
{
    switch (f->kind) {
    case LF_MODULE:
        return !strncmp(d->name, "ts.", 3) && f->len == 10 &&
               !strncasecmp((const char *)f->arg, "timeseries", 10);
    case LF_ACLCAT:
        return (d->cats & f->cat) != 0;
    case LF_PATTERN:
        return srv_acl_glob_match(f->arg, f->len, (const uint8_t *)full,
                                  strlen(full));
    default:
        return true;
    }
}

/* Every command and subcommand the filter takes, by full name; emit:
 * append them to out, else count them. */
static size_t list_commands(const list_filter *f, cairn_resp_buf *out)
{
    size_t n = 0;
    for (size_t i = 0; i < NCMDS; i++) {
        const cmd_def *d = &TABLE[i];
        size_t ns;
        const cairn_resp_sub *subs = subcommands(d, &ns);
        for (size_t j = 0; j <= ns; j++) { /* the command, then its subs */
            char full[64];
            if (j == 0)
                snprintf(full, sizeof full, "%s", d->name);
            else
                snprintf(full, sizeof full, "%s|%s", d->name,
                         subs[j - 1].name);
            if (!list_match(f, d, full))
                continue;
            n++;
            if (out)
                cairn_resp_bulk_cstr(out, full);
        }
    }
    return n;
}

static void command_list(cmd_ctx *x)
{
    list_filter f = {.kind = LF_NONE};
    if (x->argc == 5 && arg_is(x, 2, "FILTERBY")) {
        f.arg = x->argv[4];
        f.len = x->argl[4];
        if (arg_is(x, 3, "MODULE")) {
            f.kind = LF_MODULE;
        } else if (arg_is(x, 3, "ACLCAT")) {
            char cat[32];
            size_t n = f.len < sizeof cat - 1 ? f.len : sizeof cat - 1;
            memcpy(cat, f.arg, n);
            cat[n] = '\0';
            f.kind = LF_ACLCAT;
            f.cat = n == f.len ? srv_acl_category_flag(cat, n) : 0;
        } else if (arg_is(x, 3, "PATTERN")) {
            f.kind = LF_PATTERN;
        }
    }
    if (x->argc != 2 && f.kind == LF_NONE) {
        cairn_resp_error(x->out, "ERR syntax error");
        return;
    }
    uint8_t *lower = NULL;
    if (f.kind == LF_PATTERN) { /* names are lower case: match without case */
        lower = malloc(f.len ? f.len : 1);
        if (!lower) {
            cmd_reply_engine_error(x->out, CAIRN_ENOMEM);
            return;
        }
        for (size_t i = 0; i < f.len; i++)
            lower[i] = (uint8_t)tolower(f.arg[i]);
        f.arg = lower;
    }
    cairn_resp_array(x->out, (long long)list_commands(&f, NULL));
    list_commands(&f, x->out);
    free(lower);
}

/* COMMAND GETKEYS cmd arg...: the keys cmd would touch, by its key
 * positions (first, last, step), with Redis 7's errors in its order. */
static void command_getkeys(cmd_ctx *x)
{
    const cmd_def *d = cmd_lookup(x->argv[2], x->argl[2]);
    size_t argc = x->argc - 2;
    if (!d) {
        cairn_resp_error(x->out, "ERR Invalid command specified");
        return;
    }
    if (d->first == 0) {
        cairn_resp_error(x->out, "ERR The command has no key arguments");
        return;
    }
    if (!cmd_arity_ok(d, argc)) {
        cairn_resp_error(x->out,
                         "ERR Invalid number of arguments specified for "
                         "command");
        return;
    }
    long last = d->last < 0 ? (long)argc + d->last : d->last;
    size_t n = 0;
    for (long i = d->first; i <= last && (size_t)i < argc; i += d->step)
        n++;
    cairn_resp_array(x->out, (long long)n);
    for (long i = d->first; i <= last && (size_t)i < argc; i += d->step)
        cairn_resp_bulk(x->out, x->argv[2 + i], x->argl[2 + i]);
}

static void c_command(cmd_ctx *x)
{
    if (x->argc > 1 &&
        cairn_resp_sub_find(x->out, "COMMAND", COMMAND_SUBS,
                            sizeof COMMAND_SUBS / sizeof COMMAND_SUBS[0],
                            x->argc, x->argv, x->argl) < 0)
        return;
    if (x->argc == 1) {
        cairn_resp_array(x->out, (long long)NCMDS);
        for (size_t i = 0; i < NCMDS; i++)
            command_info(x, &TABLE[i]);
    } else if (arg_is(x, 1, "COUNT") && x->argc == 2) {
        cairn_resp_integer(x->out, (long long)NCMDS);
    } else if (arg_is(x, 1, "LIST")) {
        command_list(x);
    } else if (arg_is(x, 1, "GETKEYS")) {
        command_getkeys(x);
    } else if (arg_is(x, 1, "HELP")) {
        static const char *const help[] = {
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "    Return the total number of commands in this server.",
            "LIST [FILTERBY (MODULE <name>|ACLCAT <category>|PATTERN "
            "<pattern>)]",
            "    Return a list of all commands (and subcommands) in this "
            "server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full command.",
            "HELP",
            "    Print this help."};
        cmd_reply_help(x->out, help, sizeof help / sizeof help[0]);
    } else if (arg_is(x, 1, "INFO")) {
        if (x->argc == 2) {
            cairn_resp_array(x->out, (long long)NCMDS);
            for (size_t i = 0; i < NCMDS; i++)
                command_info(x, &TABLE[i]);
            return;
        }
        cairn_resp_array(x->out, (long long)(x->argc - 2));
        for (size_t i = 2; i < x->argc; i++) {
            const cmd_def *d = cmd_lookup(x->argv[i], x->argl[i]);
            if (d)
                command_info(x, d);
            else
                cairn_resp_null(x->out); /* Redis: not a null array */
        }
    } else if (arg_is(x, 1, "DOCS")) {
        if (x->argc == 2) {
            cairn_resp_map(x->out, (long long)NCMDS);
            for (size_t i = 0; i < NCMDS; i++)
                command_doc(x, &TABLE[i]);
            return;
        }
        size_t n = 0;
        for (size_t i = 2; i < x->argc; i++)
            n += cmd_lookup(x->argv[i], x->argl[i]) != NULL;
        cairn_resp_map(x->out, (long long)n);
        for (size_t i = 2; i < x->argc; i++) {
            const cmd_def *d = cmd_lookup(x->argv[i], x->argl[i]);
            if (d)
                command_doc(x, d);
        }
    } else {
        cmd_reply_bad_sub(x->out, "COMMAND", x->argv[1], x->argl[1]);
    }
}
