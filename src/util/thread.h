/*
 * thread.h — small helpers for the engine's own threads.
 *
 * cairn_thread_nice: the calling thread's CPU priority lowered by `inc`
 * nice steps (on Linux a nice value belongs to one thread), capped at 19;
 * inc 20 (CAIRN_NICE_IDLE) puts it under SCHED_IDLE instead (nice 19 where
 * that is refused): it runs only on CPU time no other thread wants, never
 * preempts one, and a CPU busy with it alone counts as idle where the
 * scheduler places a waking thread.
 * (A nice thread still takes a CPU of its own and pushes a server's loop
 * onto the CPU its clients run on.) Background work (compaction, flushes,
 * archiving) runs so, when the database is opened with background_nice,
 * and yields the CPU to requests while both want it; with nothing else to
 * run it goes as fast as before. Best effort: a failure changes nothing.
 * cairn_deadline_ms: the CLOCK_REALTIME time ms milliseconds from now, as
 * pthread_cond_timedwait takes it.
 * No locking; no state.
 */
#ifndef CAIRN_UTIL_THREAD_H
#define CAIRN_UTIL_THREAD_H

#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define CAIRN_NICE_IDLE 20

static inline void cairn_thread_nice(int inc)
{
    if (inc <= 0)
        return;
#ifdef SCHED_IDLE
    if (inc >= CAIRN_NICE_IDLE) {
        struct sched_param sp = {.sched_priority = 0};
        if (sched_setscheduler(0, SCHED_IDLE, &sp) == 0)
            return;
    }
#endif
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, tid);
    if (cur == -1 && errno != 0)
        return;
    int n = cur + inc > 19 ? 19 : cur + inc;
    (void)setpriority(PRIO_PROCESS, tid, n);
}

static inline void cairn_deadline_ms(struct timespec *ts, uint64_t ms)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

#endif
