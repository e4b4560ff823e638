/*
 * series.h — the engine's side of the time-series layer (series.c): the
 * per-database store of series state, made on first use and freed when the
 * database closes. The public calls are in cairn.h (cairn_ts_*).
 * Locking: see series.c.
 */
#ifndef CAIRN_TS_SERIES_H
#define CAIRN_TS_SERIES_H

typedef struct cairn_ts_store cairn_ts_store;

void cairn_ts_store_free(cairn_ts_store *s);

#endif /* CAIRN_TS_SERIES_H */
