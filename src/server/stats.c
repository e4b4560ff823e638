/*
 * stats.c — per-command and per-error statistics and instantaneous rates
 * for INFO (see stats.h).
 *
 * Layout: one entry per command of the table, by index; a container's
 * subcommands hang off its entry in a list, one entry per full name (a
 * handful per container, found by a short walk). Error codes: an array
 * of at most STATS_MAX_CODES distinct codes (as Redis, which tracks 128;
 * later codes count in the total only), found by a walk.
 *
 * Locking: none; one thread owns a srv_stats (stats.h).
 */
#include "server/stats.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/hist.h"

#define STATS_MAX_CODES 128
#define STATS_CODE_LEN 32
#define STATS_SAMPLES 16

typedef struct cmd_stat {
    const char *name; /* the table's name, or own (a subcommand's) */
    char *own;
    uint64_t calls, usec, rejected, failed;
    cairn_hist *lat; /* microseconds; made at the first call */
    struct cmd_stat *subs, *next;
} cmd_stat;

typedef struct err_stat {
    char code[STATS_CODE_LEN + 1];
    uint64_t count;
} err_stat;

struct srv_stats {
    cmd_stat *cmds;
    size_t ncmds;
    err_stat codes[STATS_MAX_CODES];
    size_t ncodes;
    uint64_t errors;
    /* rates: per metric, the last value and time, the sample ring */
    uint64_t last_value[SRV_RATE_N], last_ms;
    double samples[SRV_RATE_N][STATS_SAMPLES];
    unsigned sample_at;
    bool sampled;
};

srv_stats *srv_stats_new(size_t ncmds)
{
    srv_stats *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->cmds = calloc(ncmds ? ncmds : 1, sizeof *st->cmds);
    if (!st->cmds) {
        free(st);
        return NULL;
    }
    st->ncmds = ncmds;
    return st;
}

static void zero_entry(cmd_stat *e)
{
    e->calls = e->usec = e->rejected = e->failed = 0;
    if (e->lat)
        memset(e->lat, 0, sizeof *e->lat);
}

void srv_stats_free(srv_stats *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->ncmds; i++) {
        cmd_stat *e = &st->cmds[i];
        free(e->lat);
        for (cmd_stat *s = e->subs, *next; s; s = next) {
            next = s->next;
            free(s->lat);
            free(s->own);
            free(s);
        }
    }
    free(st->cmds);
    free(st);
}

void srv_stats_reset(srv_stats *st, uint64_t now_ms)
{
    for (size_t i = 0; i < st->ncmds; i++) {
        zero_entry(&st->cmds[i]);
        for (cmd_stat *s = st->cmds[i].subs; s; s = s->next)
            zero_entry(s);
    }
    st->ncodes = 0;
    st->errors = 0;
    /* The counters restart from 0 now: the next sample takes what came
     * since (as Redis resets its rates). */
    memset(st->samples, 0, sizeof st->samples);
    memset(st->last_value, 0, sizeof st->last_value);
    st->last_ms = now_ms;
    st->sampled = true;
}

/* The entry of command idx (named cmd, the table's string), or of its
 * subcommand sub ("client|list") when sub is not NULL, made on first use.
 * NULL: out of memory, or idx out of range. */
static cmd_stat *entry(srv_stats *st, size_t idx, const char *cmd,
                       const char *sub)
{
    if (idx >= st->ncmds)
        return NULL;
    cmd_stat *e = &st->cmds[idx];
    e->name = cmd;
    if (!sub)
        return e;
    for (cmd_stat *s = e->subs; s; s = s->next)
        if (!strcmp(s->name, sub))
            return s;
    cmd_stat *s = calloc(1, sizeof *s);
    if (!s || !(s->own = strdup(sub))) {
        free(s);
        return NULL;
    }
    s->name = s->own;
    /* Kept in name order, as Redis lists them. */
    cmd_stat **at = &e->subs;
    while (*at && strcmp((*at)->name, sub) < 0)
        at = &(*at)->next;
    s->next = *at;
    *at = s;
    return s;
}

void srv_stats_call(srv_stats *st, size_t idx, const char *cmd,
                    const char *sub, uint64_t usec, bool failed)
{
    cmd_stat *e = entry(st, idx, cmd, sub);
    if (!e)
        return;
    e->calls++;
    e->usec += usec;
    e->failed += failed;
    if (!e->lat)
        e->lat = calloc(1, sizeof *e->lat);
    if (e->lat)
        cairn_hist_add(e->lat, usec);
}

void srv_stats_reject(srv_stats *st, size_t idx, const char *cmd,
                      const char *sub)
{
    cmd_stat *e = entry(st, idx, cmd, sub);
    if (e)
        e->rejected++;
}

void srv_stats_error(srv_stats *st, const uint8_t *p, size_t n)
{
    st->errors++;
    /* The code: the word after '-', if a space ends it within 32 bytes
     * (as Redis looks for it); else ERR. */
    const char *code = "ERR";
    size_t cl = 3;
    if (n > 1 && p[0] == '-') {
        const uint8_t *sp =
            memchr(p, ' ', n < STATS_CODE_LEN ? n : STATS_CODE_LEN);
        if (sp && sp > p + 1) {
            code = (const char *)p + 1;
            cl = (size_t)(sp - p) - 1;
        }
    }
    /* Printable and safe in a Prometheus label: anything else is '_'. */
    char clean[STATS_CODE_LEN + 1];
    for (size_t i = 0; i < cl; i++) {
        char ch = code[i];
        clean[i] = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\' ? ch
                                                                     : '_';
    }
    clean[cl] = '\0';
    code = clean;
    for (size_t i = 0; i < st->ncodes; i++)
        if (strlen(st->codes[i].code) == cl &&
            !memcmp(st->codes[i].code, code, cl)) {
            st->codes[i].count++;
            return;
        }
    if (st->ncodes == STATS_MAX_CODES)
        return; /* counted in the total only */
    err_stat *e = &st->codes[st->ncodes++];
    memcpy(e->code, code, cl);
    e->code[cl] = '\0';
    e->count = 1;
}

uint64_t srv_stats_error_total(const srv_stats *st)
{
    return st->errors;
}

void srv_stats_sample(srv_stats *st, uint64_t now_ms, const uint64_t *values)
{
    if (st->sampled && now_ms > st->last_ms) {
        double dt = (double)(now_ms - st->last_ms);
        for (int m = 0; m < SRV_RATE_N; m++) {
            uint64_t d = values[m] >= st->last_value[m]
                             ? values[m] - st->last_value[m]
                             : 0; /* reset meanwhile */
            st->samples[m][st->sample_at] = (double)d * 1000.0 / dt;
        }
        st->sample_at = (st->sample_at + 1) % STATS_SAMPLES;
    }
    memcpy(st->last_value, values, sizeof st->last_value);
    st->last_ms = now_ms;
    st->sampled = true;
}

double srv_stats_rate(const srv_stats *st, int which)
{
    if (which < 0 || which >= SRV_RATE_N)
        return 0;
    double sum = 0;
    for (int i = 0; i < STATS_SAMPLES; i++)
        sum += st->samples[which][i];
    return sum / STATS_SAMPLES;
}

/* fn on every command entry that has a name, each container's
 * subcommands right after it. */
static void each_entry(const srv_stats *st,
                       void (*fn)(const cmd_stat *e, FILE *f, int arg),
                       FILE *f, int arg)
{
    for (size_t i = 0; i < st->ncmds; i++) {
        const cmd_stat *e = &st->cmds[i];
        if (!e->name)
            continue;
        fn(e, f, arg);
        for (const cmd_stat *s = e->subs; s; s = s->next)
            fn(s, f, arg);
    }
}

static void write_cmdstat(const cmd_stat *e, FILE *f, int arg)
{
    (void)arg;
    if (!e->calls && !e->rejected && !e->failed)
        return;
    fprintf(f,
            "cmdstat_%s:calls=%" PRIu64 ",usec=%" PRIu64
            ",usec_per_call=%.2f,rejected_calls=%" PRIu64
            ",failed_calls=%" PRIu64 "\r\n",
            e->name, e->calls, e->usec,
            e->calls ? (double)e->usec / (double)e->calls : 0.0, e->rejected,
            e->failed);
}

static void write_latency(const cmd_stat *e, FILE *f, int arg)
{
    (void)arg;
    if (!e->lat || !e->calls)
        return;
    fprintf(f, "latency_percentiles_usec_%s:p50=%.3f,p99=%.3f,p99.9=%.3f\r\n",
            e->name, (double)cairn_hist_quantile(e->lat, 0.50),
            (double)cairn_hist_quantile(e->lat, 0.99),
            (double)cairn_hist_quantile(e->lat, 0.999));
}

static int code_cmp(const void *a, const void *b)
{
    return strcmp(((const err_stat *)a)->code, ((const err_stat *)b)->code);
}

void srv_stats_write(const srv_stats *st, int which, FILE *f)
{
    if (which == SRV_STATS_COMMANDS) {
        each_entry(st, write_cmdstat, f, 0);
    } else if (which == SRV_STATS_LATENCY) {
        each_entry(st, write_latency, f, 0);
    } else if (which == SRV_STATS_ERRORS) {
        err_stat sorted[STATS_MAX_CODES];
        memcpy(sorted, st->codes, st->ncodes * sizeof *sorted);
        qsort(sorted, st->ncodes, sizeof *sorted, code_cmp);
        for (size_t i = 0; i < st->ncodes; i++)
            fprintf(f, "errorstat_%s:count=%" PRIu64 "\r\n", sorted[i].code,
                    sorted[i].count);
    }
}

/* Prometheus counters per command: what (0 calls, 1 failed, 2 rejected,
 * 3 seconds) of entry e, as metric M[what]. */
static const struct {
    const char *name, *help;
} PROM[] = {
    {"cairn_command_calls_total", "Commands that ran, per command."},
    {"cairn_command_failed_total",
     "Commands that ran and answered an error, per command."},
    {"cairn_command_rejected_total",
     "Commands refused before they ran, per command."},
    {"cairn_command_seconds_total",
     "Time until the commands' replies could go (for a write: until its "
     "commit was durable), per command."},
};

static void prom_value(const cmd_stat *e, FILE *f, int what)
{
    if (!e->calls && !e->rejected && !e->failed)
        return;
    if (what == 3)
        fprintf(f, "%s{cmd=\"%s\"} %.6f\n", PROM[what].name, e->name,
                (double)e->usec / 1e6);
    else
        fprintf(f, "%s{cmd=\"%s\"} %" PRIu64 "\n", PROM[what].name, e->name,
                what == 0 ? e->calls : what == 1 ? e->failed : e->rejected);
}

void srv_stats_write_prometheus(const srv_stats *st, FILE *f)
{
    for (int m = 0; m < (int)(sizeof PROM / sizeof PROM[0]); m++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", PROM[m].name,
                PROM[m].help, PROM[m].name);
        each_entry(st, prom_value, f, m);
    }
    fprintf(f, "# HELP cairn_errors_total Error replies, per error code.\n"
               "# TYPE cairn_errors_total counter\n");
    for (size_t i = 0; i < st->ncodes; i++)
        fprintf(f, "cairn_errors_total{code=\"%s\"} %" PRIu64 "\n",
                st->codes[i].code, st->codes[i].count);
}
