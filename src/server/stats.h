/*
 * stats.h — the statistics behind INFO's Commandstats, Errorstats and
 * Latencystats sections and the instantaneous rates of INFO stats, kept
 * as Redis 7 keeps them.
 *
 * Per command, and per container subcommand under its full name
 * ("client|list"): calls, microseconds, rejected calls (refused before
 * they ran: arity, NOAUTH, NOPERM, refused in MULTI...), failed calls
 * (ran and answered an error), and a latency histogram (util/hist.h:
 * quantiles within ~19%). Per error code (the first word of an error
 * reply: ERR, WRONGTYPE, NOPERM, ...): a count, and all errors together.
 * Instantaneous rates: a sample of a counter every 100 ms, the rate the
 * mean of the last 16 samples' rates.
 *
 * Invariants: entries are made on first use and live until
 * srv_stats_free; a reset (CONFIG RESETSTAT) zeroes every figure.
 * Locking: none. The loop thread (or a session's feeding thread) owns it.
 */
#ifndef CAIRN_SERVER_STATS_H
#define CAIRN_SERVER_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct srv_stats srv_stats;

/* For ncmds commands (the command table's length): NULL when out of
 * memory. */
srv_stats *srv_stats_new(size_t ncmds);
void srv_stats_free(srv_stats *st);
/* Zero every figure (CONFIG RESETSTAT) at now_ms (monotonic): the
 * sampled counters restart from 0 too. */
void srv_stats_reset(srv_stats *st, uint64_t now_ms);

/* Command idx of the table, named cmd (the table's string, kept), or its
 * subcommand sub when not NULL (a full name, "client|list": one entry
 * each), ran for usec microseconds and answered an error (failed) or not. */
void srv_stats_call(srv_stats *st, size_t idx, const char *cmd,
                    const char *sub, uint64_t usec, bool failed);
/* It was refused before it ran. */
void srv_stats_reject(srv_stats *st, size_t idx, const char *cmd,
                      const char *sub);
/* An error reply went out: p[0..n) is its line, "-CODE message". */
void srv_stats_error(srv_stats *st, const uint8_t *p, size_t n);
uint64_t srv_stats_error_total(const srv_stats *st);

/* Instantaneous rates (per second) of a counter sampled every 100 ms. */
enum { SRV_RATE_OPS, SRV_RATE_NET_IN, SRV_RATE_NET_OUT, SRV_RATE_N };
void srv_stats_sample(srv_stats *st, uint64_t now_ms, const uint64_t *values);
double srv_stats_rate(const srv_stats *st, int which);

/* A section's lines: SRV_STATS_COMMANDS "cmdstat_set:calls=..." (commands
 * in table order, subcommands after their container), SRV_STATS_ERRORS
 * "errorstat_ERR:count=..." (by code), SRV_STATS_LATENCY
 * "latency_percentiles_usec_set:p50=...". */
enum { SRV_STATS_COMMANDS, SRV_STATS_ERRORS, SRV_STATS_LATENCY };
void srv_stats_write(const srv_stats *st, int which, FILE *f);
/* The same per command and per error code, as Prometheus counters with a
 * label: cairn_command_calls_total{cmd="set"}, ..._failed_, ..._rejected_,
 * cairn_command_seconds_total, cairn_errors_total{code="ERR"}. */
void srv_stats_write_prometheus(const srv_stats *st, FILE *f);

#endif /* CAIRN_SERVER_STATS_H */
