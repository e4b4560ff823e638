/*
 * thread.h — small helpers for the engine's own threads.
 *
 * cairn_thread_nice: the calling thread's CPU priority lowered by `inc`
 * nice steps (on Linux a nice value belongs to one thread), capped at 19.
 * Background work (compaction, flushes, archiving) runs so, when the
 * database is opened with background_nice, and yields the CPU to requests
 * while both want it; with nothing else to run it goes as fast as before.
 * Best effort: a failure changes nothing. No locking; no state.
 */
#ifndef CAIRN_UTIL_THREAD_H
#define CAIRN_UTIL_THREAD_H

#include <errno.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline void cairn_thread_nice(int inc)
{
    if (inc <= 0)
        return;
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, tid);
    if (cur == -1 && errno != 0)
        return;
    int n = cur + inc > 19 ? 19 : cur + inc;
    (void)setpriority(PRIO_PROCESS, tid, n);
}

#endif
