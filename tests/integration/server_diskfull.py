#!/usr/bin/python3
"""server_diskfull.py — cairn-server on a full disk: its data directory is a
small tmpfs (16 MiB, with a 5 MiB ballast file), the server's log outside.

Writers SET 1-8 KiB values (single commands, and pipelines of several
SETs) until error replies come. Checked:
  - every error reply names the cause: no space (or read-only);
  - the server stays up: PING answers, GET returns every acknowledged value;
  - once the ballast is deleted, SETs succeed again (after a restart if the
    server had turned read-only);
  - after a clean restart every acknowledged SET is there with its value, and
    no SET refused for lack of space is.

Mounting needs root (CAP_SYS_ADMIN): without it the test fails and says so.
The tmpfs is always unmounted at the end (lazily if it is still busy).
Locking: none; one client at a time.
"""
import os
import subprocess
import sys
import time

import redis

from server_util import Server, run_tests

FS_SIZE = "16m"
BALLAST = 5 << 20


def value(i):
    n = 1024 + (i * 2654435761) % 7168
    seed = ("v%d:" % i).encode()
    return (seed * (n // len(seed) + 1))[:n]


def mount_tmpfs(path, size):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size,
                        "tmpfs", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(
            "cannot mount a tmpfs on %s (this test needs root with "
            "CAP_SYS_ADMIN; euid %d): %s" % (path, os.geteuid(),
                                             r.stderr.strip()))


def unmount(path):
    if subprocess.run(["umount", path], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", path], capture_output=True)


def server_full():
    srv = Server("--memtable-size", "1mb")
    data = os.path.join(srv.dir, "fs")  # the tmpfs: database and ballast
    os.mkdir(data)
    srv.args += ["--dir", os.path.join(data, "db")]  # the later --dir wins
    mounted = False
    try:
        mount_tmpfs(data, FS_SIZE)
        mounted = True
        ballast = os.path.join(data, "ballast")
        with open(ballast, "wb") as f:
            f.write(b"\xb5" * BALLAST)
            os.fsync(f.fileno())
        srv.start()
        c = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=30)
        acked = {}      # key -> index of its value
        refused = set() # keys whose SET got "no space"
        unknown = set() # keys whose SET got read-only (outcome unknown)
        errors = {}
        i = 0
        after = 0

        def record_error(key, e):
            msg = str(e)
            low = msg.lower()
            assert "no space" in low or "read-only" in low or \
                "readonly" in low, "unclear error reply: %r" % msg
            errors[msg] = errors.get(msg, 0) + 1
            if "no space" in low:
                refused.add(key)
            else:
                unknown.add(key)

        t0 = time.time()
        while after < 40:
            assert time.time() - t0 < 60, "the disk never filled"
            if i % 4 == 3:  # a pipeline of 3 SETs
                p = c.pipeline(transaction=False)
                keys = ["key:%08d" % (i + j) for j in range(3)]
                for j, k in enumerate(keys):
                    p.set(k, value(i + j))
                res = p.execute(raise_on_error=False)
                for j, (k, r) in enumerate(zip(keys, res)):
                    if isinstance(r, Exception):
                        record_error(k, r)
                    else:
                        assert r is True, r
                        acked[k] = i + j
                i += 3
            else:
                k = "key:%08d" % i
                try:
                    assert c.set(k, value(i)) is True
                    acked[k] = i
                except redis.ResponseError as e:
                    record_error(k, e)
                i += 1
            if errors:
                after += 1
        first_acked = len(acked)
        print("  %d SETs acknowledged, %d refused; replies: %s" %
              (len(acked), len(refused) + len(unknown), errors), flush=True)
        assert refused or unknown

        # Full: the server is up and every acknowledged value reads back.
        assert srv.proc.poll() is None, "the server died on a full disk"
        assert c.ping() is True
        keys = list(acked)
        for n in range(0, len(keys), 200):
            chunk = keys[n:n + 200]
            for k, v in zip(chunk, c.mget(chunk)):
                assert v == value(acked[k]), "GET %s on a full disk" % k
        for k in refused:
            assert c.get(k) is None, "refused SET %s is visible" % k
        time.sleep(2.5)  # background retries meanwhile
        assert srv.proc.poll() is None
        assert c.get(keys[0]) == value(acked[keys[0]])

        # Free the space: writes come back (a read-only server restarts).
        os.unlink(ballast)
        t1 = time.time()
        ok = 0
        restarted = False
        while ok < 100:
            k = "key:%08d" % i
            try:
                assert c.set(k, value(i)) is True
                acked[k] = i
                ok += 1
            except redis.ResponseError as e:
                record_error(k, e)
                if "read" in str(e).lower() and not restarted:
                    srv.stop()
                    srv.start()
                    c = redis.Redis(host="127.0.0.1", port=srv.port,
                                    socket_timeout=30)
                    restarted = True
                assert time.time() - t1 < 5, (
                    "SETs still refused 5 s after space was freed: %s" % e)
                time.sleep(0.02)
            i += 1
        print("  after the ballast went: 100 SETs ok in %.2f s%s" %
              (time.time() - t1, " (after a restart)" if restarted else ""),
              flush=True)

        # A clean restart: everything acknowledged, nothing refused.
        assert srv.stop() == 0
        srv.start()
        c = redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=30)
        keys = list(acked)
        for n in range(0, len(keys), 200):
            chunk = keys[n:n + 200]
            for k, v in zip(chunk, c.mget(chunk)):
                assert v == value(acked[k]), "after restart: %s" % k
        for k in refused:
            assert c.get(k) is None, "refused SET %s came back" % k
        assert len(acked) > first_acked
        print("  after a restart: %d acknowledged keys checked" % len(keys))
    finally:
        try:
            if srv.proc:
                srv.stop()
        finally:
            if mounted:
                unmount(data)
            srv.cleanup()


if __name__ == "__main__":
    run_tests([("SET on a full disk", server_full)])
