/*
 * config.c — cairn-server settings: defaults, `name value` lines from a
 * config file (the familiar redis.conf shape), and --name value flags.
 * Invariants: every setting is validated when set; an unknown name or a bad
 * value is an error naming it (the server refuses to start). Locking: none
 * (set up before the server starts).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
}

void srv_config_free(srv_config *c)
{
    free(c->bind);
    free(c->dir);
    free(c->requirepass);
    free(c->config_file);
    memset(c, 0, sizeof *c);
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
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
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
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    free(c->config_file);
    c->config_file = strdup(path);
    return 0;
}
