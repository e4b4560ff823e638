#!/usr/bin/python3
"""server_crash.py — the kill -9 loop: clients write with acknowledgements,
the server is killed with SIGKILL at a random moment, restarted, and every
acknowledged write must be there (CAIRN_CRASH_CYCLES cycles, default 20).

Each writer owns its keys and records the value of every SET the server
acknowledged; a shared counter is INCRed and every acknowledged reply is
recorded. After each restart: each key holds its last acknowledged value
or the one write to it that was in flight when the kill came; the counter
is at least the largest acknowledged value and at most the attempts made.
"""
import os
import random
import threading
import time

import redis

from server_util import Server, run_tests

CYCLES = int(os.environ.get("CAIRN_CRASH_CYCLES", "20"))
WRITERS = 4


def crash_loop():
    rnd = random.Random(int(os.environ.get("CAIRN_CRASH_SEED", "7")))
    srv = Server().start()
    acked = {}        # key -> last acknowledged value
    inflight = {}     # key -> value sent, not yet acknowledged
    ctr_acked = 0
    ctr_attempts = 0
    lock = threading.Lock()
    try:
        for cycle in range(CYCLES):
            stop = threading.Event()

            def writer(w):
                nonlocal ctr_acked, ctr_attempts
                c = redis.Redis(host="127.0.0.1", port=srv.port,
                                socket_timeout=10)
                i = 0
                while not stop.is_set():
                    key = "w%d:%d" % (w, i % 300)
                    val = "c%d-i%d" % (cycle, i)
                    with lock:
                        inflight[key] = val
                    try:
                        c.set(key, val)
                    except (redis.ConnectionError, redis.TimeoutError):
                        return
                    with lock:
                        acked[key] = val
                        inflight.pop(key, None)
                    if i % 5 == 0:
                        with lock:
                            ctr_attempts += 1
                        try:
                            n = c.incr("counter")
                        except (redis.ConnectionError, redis.TimeoutError):
                            return
                        with lock:
                            ctr_acked = max(ctr_acked, n)
                    i += 1

            ts = [threading.Thread(target=writer, args=(w,))
                  for w in range(WRITERS)]
            for t in ts:
                t.start()
            time.sleep(rnd.uniform(0.2, 0.8))
            srv.kill9()
            stop.set()
            for t in ts:
                t.join()
            # The restart replays what the killed server had not flushed:
            # seconds under ThreadSanitizer on a loaded machine (5-8 s
            # seen), past start()'s default 10 s now and then. What is
            # tested here is what comes back, not how fast.
            srv.start(timeout=120)
            c = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=30)
            keys = list(acked)
            vals = c.mget(keys) if keys else []
            for k, v in zip(keys, vals):
                got = v.decode() if v is not None else None
                ok = got == acked[k] or got == inflight.get(k)
                assert ok, ("cycle %d: key %s holds %r, acknowledged %r "
                            "(in flight %r)" % (cycle, k, got, acked[k],
                                                inflight.get(k)))
                acked[k] = got  # an in-flight write that landed is now the value
            inflight.clear()
            n = int(c.get("counter") or 0)
            assert ctr_acked <= n <= ctr_attempts, (
                "counter %d, acknowledged up to %d, attempts %d" %
                (n, ctr_acked, ctr_attempts))
            ctr_acked = n
            ctr_attempts = n
        print("%d kill -9 cycles, %d keys checked each time" %
              (CYCLES, len(acked)))
    finally:
        srv.stop()
        srv.cleanup()


if __name__ == "__main__":
    run_tests([("kill -9 loop", crash_loop)])
