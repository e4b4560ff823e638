/*
 * config.c — cairn-server settings: defaults, `name value` lines from a
 * config file (the familiar redis.conf shape), --name value flags, the
 * values CONFIG GET shows, which ones CONFIG SET may change at run time,
 * and CONFIG REWRITE.
 * Invariants: every setting is validated when set; an unknown name or a bad
 * value is an error naming it (the server refuses to start; CONFIG SET
 * changes nothing). A rewrite replaces the file atomically. Locking: none
 * (the loop thread owns the running server's copy).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "server/server.h"

void srv_config_init(srv_config *c)
{
    memset(c, 0, sizeof *c);
    c->bind = strdup("127.0.0.1");
    c->port = 6380;
    c->dir = strdup("./cairn-data");
    c->sync = CAIRN_SYNC_ALWAYS;
    c->sync_interval_ms = 1000;
    c->history_ms = 600000;
    c->max_bulk = (size_t)512 << 20;
    c->max_args = 1048576;
    c->max_clients = 10000;
    c->max_query_buf = (size_t)1 << 30;
    c->max_output = (size_t)1 << 30;
    c->timeout_s = 0;
    c->commit_threads = 64;
    c->background_nice = 20;
    c->memtable_size = (size_t)64 << 20;
    c->block_cache_size = (size_t)512 << 20;
    c->archive_zstd_level = 19;
    c->row_cache_size = (size_t)512 << 20;
    c->slowlog_slower_than = 10000;
    c->slowlog_max_len = 128;
}

void srv_config_free(srv_config *c)
{
    free(c->bind);
    free(c->dir);
    free(c->requirepass);
    free(c->tls_cert_file);
    free(c->tls_key_file);
    free(c->tls_ca_cert_file);
    free(c->archive_dir);
    for (size_t i = 0; i < c->nusers; i++)
        free(c->users[i]);
    free(c->users);
    free(c->config_file);
    memset(c, 0, sizeof *c);
}

static int dup_str(char **dst, const char *src)
{
    *dst = NULL;
    if (!src)
        return 0;
    *dst = strdup(src);
    return *dst ? 0 : -1;
}

int srv_config_copy(srv_config *dst, const srv_config *src)
{
    *dst = *src;
    dst->users = NULL;
    dst->nusers = 0;
    int rc = dup_str(&dst->bind, src->bind) | dup_str(&dst->dir, src->dir) |
             dup_str(&dst->requirepass, src->requirepass) |
             dup_str(&dst->tls_cert_file, src->tls_cert_file) |
             dup_str(&dst->tls_key_file, src->tls_key_file) |
             dup_str(&dst->tls_ca_cert_file, src->tls_ca_cert_file) |
             dup_str(&dst->archive_dir, src->archive_dir) |
             dup_str(&dst->config_file, src->config_file);
    if (src->nusers) {
        dst->users = calloc(src->nusers, sizeof *dst->users);
        if (!dst->users)
            rc = -1;
        for (size_t i = 0; dst->users && i < src->nusers; i++) {
            rc |= dup_str(&dst->users[i], src->users[i]);
            dst->nusers++;
        }
    }
    if (rc) {
        srv_config_free(dst);
        return -1;
    }
    return 0;
}

/* A size with an optional k/kb/m/mb/g/gb suffix (1k = 1000, 1kb = 1024, as
 * in redis.conf). */
static bool parse_size(const char *v, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || v[0] == '-')
        return false;
    unsigned long long mul = 1;
    if (!strcasecmp(end, "k"))
        mul = 1000ULL;
    else if (!strcasecmp(end, "kb"))
        mul = 1024ULL;
    else if (!strcasecmp(end, "m"))
        mul = 1000000ULL;
    else if (!strcasecmp(end, "mb"))
        mul = 1048576ULL;
    else if (!strcasecmp(end, "g"))
        mul = 1000000000ULL;
    else if (!strcasecmp(end, "gb"))
        mul = 1073741824ULL;
    else if (*end)
        return false;
    if (n > ~0ULL / mul)
        return false;
    *out = n * mul;
    return true;
}

static int bad(char *err, size_t errlen, const char *name, const char *value,
               const char *why)
{
    snprintf(err, errlen, "bad value '%s' for '%s': %s", value, name, why);
    return -1;
}

int srv_config_set(srv_config *c, const char *name, const char *value,
                   char *err, size_t errlen)
{
    unsigned long long n = 0;
    if (!strcasecmp(name, "port")) {
        if (!parse_size(value, &n) || n > 65535)
            return bad(err, errlen, name, value, "a port number 0..65535");
        c->port = (int)n;
    } else if (!strcasecmp(name, "bind")) {
        /* redis.conf allows several addresses; the first one is used. */
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", value);
        char *sp = strpbrk(tmp, " \t");
        if (sp)
            *sp = '\0';
        free(c->bind);
        c->bind = strdup(tmp);
    } else if (!strcasecmp(name, "dir")) {
        free(c->dir);
        c->dir = strdup(value);
    } else if (!strcasecmp(name, "requirepass")) {
        free(c->requirepass);
        c->requirepass = *value ? strdup(value) : NULL;
    } else if (!strcasecmp(name, "sync") || !strcasecmp(name, "appendfsync")) {
        if (!strcasecmp(value, "always"))
            c->sync = CAIRN_SYNC_ALWAYS;
        else if (!strcasecmp(value, "interval") ||
                 !strcasecmp(value, "everysec"))
            c->sync = CAIRN_SYNC_INTERVAL;
        else if (!strcasecmp(value, "none") || !strcasecmp(value, "no"))
            c->sync = CAIRN_SYNC_NONE;
        else
            return bad(err, errlen, name, value,
                       "always, interval (everysec) or none (no)");
    } else if (!strcasecmp(name, "sync-interval-ms")) {
        if (!parse_size(value, &n) || n == 0 || n > 3600000)
            return bad(err, errlen, name, value, "1..3600000");
        c->sync_interval_ms = (uint32_t)n;
    } else if (!strcasecmp(name, "history-ms")) {
        if (!parse_size(value, &n))
            return bad(err, errlen, name, value, "milliseconds");
        c->history_ms = n;
    } else if (!strcasecmp(name, "proto-max-bulk-len")) {
        if (!parse_size(value, &n) || n < 1024 || n > ((size_t)1 << 40))
            return bad(err, errlen, name, value, "1kb..1024gb");
        c->max_bulk = (size_t)n;
    } else if (!strcasecmp(name, "max-args")) {
        if (!parse_size(value, &n) || n < 16)
            return bad(err, errlen, name, value, "at least 16");
        c->max_args = (size_t)n;
    } else if (!strcasecmp(name, "maxclients")) {
        if (!parse_size(value, &n) || n < 1)
            return bad(err, errlen, name, value, "at least 1");
        c->max_clients = (size_t)n;
    } else if (!strcasecmp(name, "client-query-buffer-limit")) {
        if (!parse_size(value, &n) || n < 1024 * 1024)
            return bad(err, errlen, name, value, "at least 1mb");
        c->max_query_buf = (size_t)n;
    } else if (!strcasecmp(name, "client-output-buffer-limit")) {
        if (!parse_size(value, &n) || n < 1024 * 1024)
            return bad(err, errlen, name, value, "at least 1mb");
        c->max_output = (size_t)n;
    } else if (!strcasecmp(name, "timeout")) {
        if (!parse_size(value, &n) || n > 100000000)
            return bad(err, errlen, name, value, "seconds");
        c->timeout_s = (uint32_t)n;
    } else if (!strcasecmp(name, "commit-threads")) {
        if (!parse_size(value, &n) || n < 1 || n > 1024)
            return bad(err, errlen, name, value, "1..1024");
        c->commit_threads = (int)n;
    } else if (!strcasecmp(name, "background-nice")) {
        if (!parse_size(value, &n) || n > 20)
            return bad(err, errlen, name, value, "0..20");
        c->background_nice = (int)n;
    } else if (!strcasecmp(name, "memtable-size")) {
        if (!parse_size(value, &n) || n < (1u << 20) || n > ((size_t)1 << 40))
            return bad(err, errlen, name, value, "1mb..1024gb");
        c->memtable_size = (size_t)n;
    } else if (!strcasecmp(name, "block-cache-size")) {
        if (!parse_size(value, &n) || n < (1u << 20) || n > ((size_t)1 << 44))
            return bad(err, errlen, name, value, "1mb..16tb");
        c->block_cache_size = (size_t)n;
    } else if (!strcasecmp(name, "row-cache-size")) {
        if (!parse_size(value, &n) || n > ((size_t)1 << 44))
            return bad(err, errlen, name, value, "0 (off)..16tb");
        c->row_cache_size = (size_t)n;
    } else if (!strcasecmp(name, "archive-dir")) {
        free(c->archive_dir);
        c->archive_dir = NULL;
        if (*value && !(c->archive_dir = strdup(value))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    } else if (!strcasecmp(name, "archive-min-level")) {
        if (!parse_size(value, &n) || n > 7)
            return bad(err, errlen, name, value, "0 (off)..7");
        c->archive_min_level = (int)n;
    } else if (!strcasecmp(name, "archive-min-age")) {
        if (!parse_size(value, &n))
            return bad(err, errlen, name, value, "seconds (0: off)");
        c->archive_min_age_s = (uint64_t)n;
    } else if (!strcasecmp(name, "archive-zstd-level")) {
        if (!parse_size(value, &n) || n < 1 || n > 22)
            return bad(err, errlen, name, value, "1..22");
        c->archive_zstd_level = (int)n;
    } else if (!strcasecmp(name, "metrics-port")) {
        if (!parse_size(value, &n) || n > 65535)
            return bad(err, errlen, name, value, "a port number (0: off)");
        c->metrics_port = (int)n;
    } else if (!strcasecmp(name, "tls-port")) {
        if (!parse_size(value, &n) || n > 65535)
            return bad(err, errlen, name, value, "a port number (0: off)");
        c->tls_port = (int)n;
    } else if (!strcasecmp(name, "tls-cert-file") ||
               !strcasecmp(name, "tls-key-file") ||
               !strcasecmp(name, "tls-ca-cert-file")) {
        char **f = !strcasecmp(name, "tls-cert-file")  ? &c->tls_cert_file
                   : !strcasecmp(name, "tls-key-file") ? &c->tls_key_file
                                                       : &c->tls_ca_cert_file;
        free(*f);
        *f = NULL;
        if (*value && !(*f = strdup(value))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    } else if (!strcasecmp(name, "tls-auth-clients")) {
        if (!strcasecmp(value, "yes"))
            c->tls_auth_clients = true;
        else if (!strcasecmp(value, "no") || !strcasecmp(value, "optional"))
            c->tls_auth_clients = false;
        else
            return bad(err, errlen, name, value, "yes or no");
    } else if (!strcasecmp(name, "slowlog-log-slower-than")) {
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end)
            return bad(err, errlen, name, value,
                       "microseconds (negative: off)");
        c->slowlog_slower_than = v;
    } else if (!strcasecmp(name, "slowlog-max-len")) {
        if (!parse_size(value, &n) || n > 1000000)
            return bad(err, errlen, name, value, "0..1000000");
        c->slowlog_max_len = (size_t)n;
    } else if (!strcasecmp(name, "user")) {
        /* ACL rules, applied when the server starts: "NAME RULE...". */
        if (!*value)
            return bad(err, errlen, name, value, "a user name and rules");
        char **nu = realloc(c->users, (c->nusers + 1) * sizeof *nu);
        if (!nu) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        c->users = nu;
        if (!(c->users[c->nusers] = strdup(value))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        c->nusers++;
    } else if (!strcasecmp(name, "daemonize")) {
        if (strcasecmp(value, "no") != 0)
            return bad(err, errlen, name, value,
                       "cairn-server runs in the foreground (use a service "
                       "manager)");
    } else {
        snprintf(err, errlen, "unknown setting '%s'", name);
        return -1;
    }
    if ((!c->bind || !c->dir) ||
        (!strcasecmp(name, "requirepass") && *value && !c->requirepass)) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int srv_config_load(srv_config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    while (getline(&line, &cap, f) >= 0) {
        lineno++;
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '#' || *p == '\0')
            continue;
        char *e = p + strlen(p);
        while (e > p && isspace((unsigned char)e[-1]))
            *--e = '\0';
        char *name = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
        while (isspace((unsigned char)*p))
            p++;
        /* Strip one pair of surrounding quotes from the value. */
        size_t vl = strlen(p);
        if (vl >= 2 && (p[0] == '"' || p[0] == '\'') && p[vl - 1] == p[0]) {
            p[vl - 1] = '\0';
            p++;
        }
        char e2[512];
        if (srv_config_set(c, name, p, e2, sizeof e2) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, e2);
            free(line);
            fclose(f);
            return -1;
        }
    }
    free(line);
    fclose(f);
    free(c->config_file);
    c->config_file = strdup(path);
    return 0;
}

/* ---------- CONFIG GET / SET / REWRITE ---------- */

#define CF_RUNTIME 0x1 /* CONFIG SET may change it; the server applies it */
#define CF_REWRITE 0x2 /* CONFIG REWRITE writes it (not aliases, not fixed) */

static const struct {
    const char *name;
    unsigned flags;
} settings[] = {
    {"port", CF_REWRITE},
    {"bind", CF_REWRITE},
    {"dir", CF_REWRITE},
    {"requirepass", CF_RUNTIME | CF_REWRITE},
    {"appendfsync", 0}, /* an alias of sync */
    {"sync", CF_REWRITE},
    {"sync-interval-ms", CF_REWRITE},
    {"history-ms", CF_REWRITE},
    {"proto-max-bulk-len", CF_RUNTIME | CF_REWRITE},
    {"max-args", CF_RUNTIME | CF_REWRITE},
    {"maxclients", CF_RUNTIME | CF_REWRITE},
    {"client-query-buffer-limit", CF_RUNTIME | CF_REWRITE},
    {"client-output-buffer-limit", CF_RUNTIME | CF_REWRITE},
    {"timeout", CF_RUNTIME | CF_REWRITE},
    {"commit-threads", CF_REWRITE},
    {"background-nice", CF_REWRITE},
    {"memtable-size", CF_REWRITE},
    {"block-cache-size", CF_RUNTIME | CF_REWRITE},
    {"row-cache-size", CF_RUNTIME | CF_REWRITE},
    {"archive-dir", CF_REWRITE},
    {"archive-min-level", CF_REWRITE},
    {"archive-min-age", CF_REWRITE},
    {"archive-zstd-level", CF_REWRITE},
    {"metrics-port", CF_REWRITE},
    {"tls-port", CF_REWRITE},
    {"tls-cert-file", CF_REWRITE},
    {"tls-key-file", CF_REWRITE},
    {"tls-ca-cert-file", CF_REWRITE},
    {"tls-auth-clients", CF_REWRITE},
    {"slowlog-log-slower-than", CF_RUNTIME | CF_REWRITE},
    {"slowlog-max-len", CF_RUNTIME | CF_REWRITE},
    {"appendonly", 0}, /* fixed values, shown for tools that ask */
    {"save", 0},
    {"databases", 0},
    {"daemonize", 0},
};

#define NSETTINGS (sizeof settings / sizeof settings[0])

const char *srv_config_name(size_t i)
{
    return i < NSETTINGS ? settings[i].name : NULL;
}

bool srv_config_runtime(const char *name)
{
    for (size_t i = 0; i < NSETTINGS; i++)
        if (!strcasecmp(name, settings[i].name))
            return settings[i].flags & CF_RUNTIME;
    return false;
}

static const char *sync_name(cairn_sync_mode m, bool redis)
{
    if (m == CAIRN_SYNC_ALWAYS)
        return "always";
    if (m == CAIRN_SYNC_INTERVAL)
        return redis ? "everysec" : "interval";
    return redis ? "no" : "none";
}

int srv_config_get(const srv_config *c, const char *name, char *buf,
                   size_t len)
{
#define OUT(...) snprintf(buf, len, __VA_ARGS__)
    if (!strcasecmp(name, "port"))
        OUT("%d", c->port);
    else if (!strcasecmp(name, "bind"))
        OUT("%s", c->bind);
    else if (!strcasecmp(name, "dir"))
        OUT("%s", c->dir);
    else if (!strcasecmp(name, "requirepass"))
        OUT("%s", c->requirepass ? c->requirepass : "");
    else if (!strcasecmp(name, "appendfsync"))
        OUT("%s", sync_name(c->sync, true));
    else if (!strcasecmp(name, "sync"))
        OUT("%s", sync_name(c->sync, false));
    else if (!strcasecmp(name, "sync-interval-ms"))
        OUT("%u", c->sync_interval_ms);
    else if (!strcasecmp(name, "history-ms"))
        OUT("%" PRIu64, c->history_ms);
    else if (!strcasecmp(name, "proto-max-bulk-len"))
        OUT("%zu", c->max_bulk);
    else if (!strcasecmp(name, "max-args"))
        OUT("%zu", c->max_args);
    else if (!strcasecmp(name, "maxclients"))
        OUT("%zu", c->max_clients);
    else if (!strcasecmp(name, "client-query-buffer-limit"))
        OUT("%zu", c->max_query_buf);
    else if (!strcasecmp(name, "client-output-buffer-limit"))
        OUT("%zu", c->max_output);
    else if (!strcasecmp(name, "timeout"))
        OUT("%u", c->timeout_s);
    else if (!strcasecmp(name, "commit-threads"))
        OUT("%d", c->commit_threads);
    else if (!strcasecmp(name, "background-nice"))
        OUT("%d", c->background_nice);
    else if (!strcasecmp(name, "memtable-size"))
        OUT("%zu", c->memtable_size);
    else if (!strcasecmp(name, "block-cache-size"))
        OUT("%zu", c->block_cache_size);
    else if (!strcasecmp(name, "row-cache-size"))
        OUT("%zu", c->row_cache_size);
    else if (!strcasecmp(name, "archive-dir"))
        OUT("%s", c->archive_dir ? c->archive_dir : "");
    else if (!strcasecmp(name, "archive-min-level"))
        OUT("%d", c->archive_min_level);
    else if (!strcasecmp(name, "archive-min-age"))
        OUT("%llu", (unsigned long long)c->archive_min_age_s);
    else if (!strcasecmp(name, "archive-zstd-level"))
        OUT("%d", c->archive_zstd_level);
    else if (!strcasecmp(name, "metrics-port"))
        OUT("%d", c->metrics_port);
    else if (!strcasecmp(name, "tls-port"))
        OUT("%d", c->tls_port);
    else if (!strcasecmp(name, "tls-cert-file"))
        OUT("%s", c->tls_cert_file ? c->tls_cert_file : "");
    else if (!strcasecmp(name, "tls-key-file"))
        OUT("%s", c->tls_key_file ? c->tls_key_file : "");
    else if (!strcasecmp(name, "tls-ca-cert-file"))
        OUT("%s", c->tls_ca_cert_file ? c->tls_ca_cert_file : "");
    else if (!strcasecmp(name, "tls-auth-clients"))
        OUT("%s", c->tls_auth_clients ? "yes" : "no");
    else if (!strcasecmp(name, "slowlog-log-slower-than"))
        OUT("%" PRId64, c->slowlog_slower_than);
    else if (!strcasecmp(name, "slowlog-max-len"))
        OUT("%zu", c->slowlog_max_len);
    else if (!strcasecmp(name, "appendonly"))
        OUT("yes"); /* the log is always on */
    else if (!strcasecmp(name, "save"))
        OUT("%s", "");
    else if (!strcasecmp(name, "databases"))
        OUT("1");
    else if (!strcasecmp(name, "daemonize"))
        OUT("no");
    else
        return -1;
#undef OUT
    return 0;
}

/* A value as a config file line needs it: quoted if empty or spaced. */
static void put_line(FILE *f, const char *name, const char *v)
{
    if (!*v || strpbrk(v, " \t\"'#"))
        fprintf(f, "%s \"%s\"\n", name, v);
    else
        fprintf(f, "%s %s\n", name, v);
}

/* A line kept as it was (with its newline). */
static void copy_line(FILE *f, const char *line)
{
    fputs(line, f);
    if (!strchr(line, '\n'))
        fputc('\n', f);
}

int srv_config_rewrite(const srv_config *c, char *const *user_lines,
                       size_t nuser_lines, char *err, size_t errlen)
{
    if (!c->config_file) {
        snprintf(err, errlen, "The server is running without a config file");
        return -1;
    }
    srv_config d;
    srv_config_init(&d);
    bool done[NSETTINGS] = {false};
    char *out = NULL;
    size_t outlen = 0;
    FILE *o = open_memstream(&out, &outlen);
    if (!o) {
        srv_config_free(&d);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    bool users_done = false;
    FILE *in = fopen(c->config_file, "r");
    if (in) {
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, in) >= 0) {
            char *p = line;
            while (isspace((unsigned char)*p))
                p++;
            if (*p == '#' || *p == '\0') {
                copy_line(o, line);
                continue;
            }
            char name[128];
            size_t nl = 0;
            while (p[nl] && !isspace((unsigned char)p[nl]) &&
                   nl < sizeof name - 1) {
                name[nl] = p[nl];
                nl++;
            }
            name[nl] = '\0';
            if (!strcasecmp(name, "appendfsync"))
                snprintf(name, sizeof name, "sync");
            if (!strcasecmp(name, "user")) {
                /* The current users replace the first block of them. */
                if (!users_done)
                    for (size_t i = 0; i < nuser_lines; i++)
                        fprintf(o, "%s\n", user_lines[i]);
                users_done = true;
                continue;
            }
            size_t k = 0;
            while (k < NSETTINGS && (!(settings[k].flags & CF_REWRITE) ||
                                     strcasecmp(name, settings[k].name)))
                k++;
            if (k == NSETTINGS) { /* not ours to change: kept as it is */
                copy_line(o, line);
                continue;
            }
            if (done[k])
                continue; /* a later duplicate: the value is written once */
            done[k] = true;
            char v[1024];
            srv_config_get(c, settings[k].name, v, sizeof v);
            put_line(o, settings[k].name, v);
        }
        free(line);
        fclose(in);
    } else if (errno != ENOENT) {
        fclose(o);
        free(out);
        srv_config_free(&d);
        snprintf(err, errlen, "cannot read %s: %s", c->config_file,
                 strerror(errno));
        return -1;
    }
    bool header = false;
    for (size_t k = 0; k < NSETTINGS; k++) {
        if (done[k] || !(settings[k].flags & CF_REWRITE))
            continue;
        char v[1024], dv[1024];
        srv_config_get(c, settings[k].name, v, sizeof v);
        srv_config_get(&d, settings[k].name, dv, sizeof dv);
        if (!strcmp(v, dv))
            continue;
        if (!header)
            fputs("# Generated by CONFIG REWRITE\n", o);
        header = true;
        put_line(o, settings[k].name, v);
    }
    if (!users_done)
        for (size_t i = 0; i < nuser_lines; i++)
            fprintf(o, "%s\n", user_lines[i]);
    srv_config_free(&d);
    if (fclose(o) != 0) {
        free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    /* Atomically: a temporary file beside it, synced, renamed over. */
    size_t pl = strlen(c->config_file) + 32;
    char *tmp = malloc(pl);
    if (!tmp) {
        free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(tmp, pl, "%s.rewrite.%d", c->config_file, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = fd < 0 ? -1 : 0;
    for (size_t off = 0; rc == 0 && off < outlen;) {
        ssize_t w = write(fd, out + off, outlen - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = -1;
        else
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -1;
    int e = errno;
    if (fd >= 0 && close(fd) != 0 && rc == 0) {
        rc = -1;
        e = errno;
    }
    if (rc == 0 && rename(tmp, c->config_file) != 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0) {
        unlink(tmp);
        snprintf(err, errlen, "cannot rewrite %s: %s", c->config_file,
                 strerror(e));
    }
    free(tmp);
    free(out);
    return rc;
}
