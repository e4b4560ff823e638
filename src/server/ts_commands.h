/*
 * ts_commands.h — the RedisTimeSeries commands of cairn-server (TS.*),
 * implemented in ts_commands.c and listed in commands.c's table.
 * Locking: none; see ts_commands.c.
 */
#ifndef CAIRN_SERVER_TS_COMMANDS_H
#define CAIRN_SERVER_TS_COMMANDS_H

#include "server/server.h"

/* Writes (CMD_WRITE): each runs in one transaction (cmd_run_write). */
void cmd_ts_create(cmd_ctx *x);
void cmd_ts_alter(cmd_ctx *x);
void cmd_ts_add(cmd_ctx *x);
void cmd_ts_madd(cmd_ctx *x);
void cmd_ts_incrby(cmd_ctx *x);
void cmd_ts_decrby(cmd_ctx *x);
void cmd_ts_del(cmd_ctx *x);
void cmd_ts_createrule(cmd_ctx *x);
void cmd_ts_deleterule(cmd_ctx *x);

/* Reads: x->txn inside EXEC, the database now otherwise. */
void cmd_ts_get(cmd_ctx *x);
void cmd_ts_info(cmd_ctx *x);
void cmd_ts_range(cmd_ctx *x);
void cmd_ts_revrange(cmd_ctx *x);
void cmd_ts_mget(cmd_ctx *x);
void cmd_ts_mrange(cmd_ctx *x);
void cmd_ts_mrevrange(cmd_ctx *x);
void cmd_ts_queryindex(cmd_ctx *x);

#endif /* CAIRN_SERVER_TS_COMMANDS_H */
