#!/usr/bin/python3
"""server_commands.py — drive a real cairn-server with redis-py (Debian's
python3-redis) and redis-cli: every command implemented so far, with the
replies and errors Redis 7 gives, MULTI/EXEC/WATCH, RESP3, AUTH, expiry,
time travel, bad input, persistence across a restart and across kill -9.
"""
import os
import re
import socket
import struct
import subprocess
import threading
import time

import redis

from server_util import BUILD, RespSocket, Server, run_tests


def client(srv, **kw):
    return redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=30,
                       **kw)


def expect_error(fn, text):
    try:
        fn()
    except (redis.ResponseError, redis.AuthenticationError) as e:
        assert text in str(e), "error %r does not contain %r" % (str(e), text)
        return
    raise AssertionError("no error, expected %r" % text)


SRV = None


def raw_cmd(*args, timeout=5.0):
    """Send one command, return the raw reply bytes (read until quiet)."""
    s = socket.create_connection(("127.0.0.1", SRV.port))
    enc = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    s.sendall(b"*%d\r\n" % len(enc) +
              b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in enc))
    data = b""
    s.settimeout(0.3)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            if data:
                break
            continue
        if not d:
            break
        data += d
    s.close()
    return data


def r():
    return client(SRV)


def t_ping_echo():
    c = r()
    assert c.ping() is True
    assert c.echo("héllo") == "héllo".encode()
    raw = socket.create_connection(("127.0.0.1", SRV.port))
    raw.sendall(b"PING x\r\n")
    assert raw.recv(100) == b"$1\r\nx\r\n"
    raw.close()


def t_strings():
    c = r()
    assert c.set("s", "v1") is True
    assert c.get("s") == b"v1"
    assert c.get("missing") is None
    assert c.set("s", "v2", nx=True) is None
    assert c.set("new", "n", xx=True) is None
    assert c.set("s", "v3", xx=True) is True
    assert c.set("s", "v4", get=True) == b"v3"
    assert c.getset("s", "v5") == b"v4"
    assert c.setnx("s", "x") is False and c.setnx("sn", "x") is True
    assert c.strlen("s") == 2 and c.strlen("nothing") == 0
    assert c.append("s", "-tail") == 7 and c.get("s") == b"v5-tail"
    assert c.append("ap", "abc") == 3
    assert c.getrange("s", 0, 1) == b"v5" and c.getrange("s", -4, -1) == b"tail"
    assert c.getrange("s", 5, 1) == b""
    assert c.setrange("sr", 5, "x") == 6 and c.get("sr") == b"\x00" * 5 + b"x"
    assert c.setrange("s", 0, "V") == 7 and c.get("s") == b"V5-tail"
    assert c.mset({"m1": "a", "m2": "b"}) is True
    assert c.mget("m1", "m2", "m3") == [b"a", b"b", None]
    assert c.msetnx({"m1": "z", "m9": "z"}) is False and c.get("m9") is None
    assert c.msetnx({"m8": "z", "m9": "z"}) is True
    assert c.getdel("m8") == b"z" and c.get("m8") is None
    assert c.getdel("m8") is None
    big = os.urandom(1 << 20)
    assert c.set("big", big) and c.get("big") == big
    assert c.set(b"\x00bin\xff", b"\x00\x01") and c.get(b"\x00bin\xff") == b"\x00\x01"
    assert c.set("empty", "") and c.get("empty") == b""
    expect_error(lambda: c.execute_command("SET", "k", "v", "NX", "XX"),
                 "syntax error")
    expect_error(lambda: c.execute_command("SET", "k", "v", "EX", "0"),
                 "invalid expire time in 'set' command")
    expect_error(lambda: c.execute_command("SET", "k", "v", "EX", "abc"),
                 "value is not an integer or out of range")


def t_counters():
    c = r()
    assert c.incr("n") == 1 and c.incr("n") == 2
    assert c.incrby("n", 10) == 12 and c.decr("n") == 11
    assert c.decrby("n", 20) == -9
    c.set("nan", "abc")
    expect_error(lambda: c.incr("nan"), "value is not an integer or out of range")
    c.set("max", str(2**63 - 1))
    expect_error(lambda: c.incr("max"), "increment or decrement would overflow")
    assert c.incrbyfloat("f", 10.5) == 10.5
    assert c.incrbyfloat("f", 0.1) == 10.6
    assert c.get("f") == b"10.6"
    c.set("f3", "3.0")
    assert c.incrbyfloat("f3", 2) == 5.0 and c.get("f3") == b"5"
    expect_error(lambda: c.incrbyfloat("nan", 1), "value is not a valid float")


def t_concurrent_incr():
    def work():
        c = r()
        for _ in range(200):
            c.incr("ctr")
    ts = [threading.Thread(target=work) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert r().get("ctr") == b"1600"


def t_pipeline():
    # Pipelined writes run as one batch (one commit); replies stay in order
    # and per command, errors included, and reads after them see them.
    c = r()
    p = c.pipeline(transaction=False)
    for i in range(1000):
        p.set("pl:%d" % i, i)
    p.incr("pl:ctr").incr("pl:ctr").set("pl:s", "x").incr("pl:s")
    p.get("pl:999").setnx("pl:1", "no").execute_command("NOSUCH")
    p.delete("pl:0").get("pl:0")
    res = p.execute(raise_on_error=False)
    assert res[:1000] == [True] * 1000
    assert res[1000:1003] == [2 - 1, 2, True], res[1000:1003]
    assert isinstance(res[1003], redis.ResponseError)
    assert res[1004] == b"999" and res[1005] is False
    assert isinstance(res[1006], redis.ResponseError)
    assert res[1007] == 1 and res[1008] is None
    assert c.get("pl:500") == b"500"


def t_pipeline_blind_sets():
    # Pipelines of plain SET/MSET/SETEX commit blind (no validation); with
    # threads hammering the same few keys (a key in flight sends a batch to
    # the committers), every write is acknowledged, none is lost (each
    # thread's own keys), the shared keys end with a value someone wrote,
    # and read-modify-writes on the same keys (SET ... GET, INCR) between
    # them are still validated: the counter is exact.
    nthreads, rounds = 6, 25
    errors = []

    def work(i):
        try:
            c = r()
            for n in range(rounds):
                p = c.pipeline(transaction=False)
                for j in range(16):
                    p.set("bl:hot:%d" % (j % 4), "t%d:%d" % (i, n))
                p.mset({"bl:own:%d:%d" % (i, n): n, "bl:hot:0": "m%d" % i})
                p.setex("bl:hot:1", 100, "x%d" % i)
                res = p.execute()
                if res != [True] * 18:
                    errors.append(("blind", i, n, res))
                p = c.pipeline(transaction=False)
                p.set("bl:hot:2", "g%d" % i, get=True).incr("bl:ctr")
                res = p.execute()
                if not isinstance(res[1], int):
                    errors.append(("rmw", i, n, res))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(("exception", i, repr(e)))
    ts = [threading.Thread(target=work, args=(i,)) for i in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    c = r()
    for i in range(nthreads):
        for n in range(rounds):
            assert c.get("bl:own:%d:%d" % (i, n)) == str(n).encode()
    assert c.get("bl:ctr") == str(nthreads * rounds).encode()
    written = {("t%d:%d" % (i, n)).encode() for i in range(nthreads)
               for n in range(rounds)}
    assert c.get("bl:hot:3") in written
    assert c.get("bl:hot:0") in written | {("m%d" % i).encode()
                                           for i in range(nthreads)}
    assert 0 < c.ttl("bl:hot:1") <= 100


def t_pipeline_gets():
    # A pipeline of GETs (the server reads a run of them ahead, together):
    # keys holding CR LF or digits in their bytes, the empty key, any case,
    # a key too long to read ahead, keys in a sorted file, an expired key,
    # a series (WRONGTYPE), the same key twice in a row, other commands
    # between, and a GET cut in two by the network all answer in order.
    c = r()
    keys = [b"pg:a", b"pg:\r\n$3\r\nGET", b"", b"pg:" + b"9" * 300,
            b"pg:none", b"pg:exp", b"pg:ts", b"pg:ts"]
    for k in keys[:4]:
        c.set(k, b"v:" + k)
    c.set(b"pg:exp", b"gone", px=1)
    c.execute_command("TS.CREATE", "pg:ts")
    c.save()  # some of them are read from a sorted file below
    c.set(b"pg:a", b"newer")
    time.sleep(0.01)  # pg:exp has expired

    def get(k, name=b"GET"):
        return b"*2\r\n$3\r\n%s\r\n$%d\r\n%s\r\n" % (name, len(k), k)
    want = {k: (b"v:" + k if k else b"v:") for k in keys[:4]}
    want[b"pg:a"] = b"newer"
    want[b"pg:none"] = None
    want[b"pg:exp"] = None
    want[b"pg:ts"] = "-WRONGTYPE"
    req, exp = b"", []
    for i in range(40):
        k = keys[i % len(keys)]
        req += get(k, [b"GET", b"get", b"gEt"][i % 3])
        exp.append(want[k])
        if i == 17:
            req += b"*1\r\n$4\r\nPING\r\n" + get(b"abc")
            exp += ["PONG", None]
    raw = socket.create_connection(("127.0.0.1", SRV.port))
    cut = len(req) - 9
    raw.sendall(req[:cut])
    time.sleep(0.05)
    raw.sendall(req[cut:])
    buf = b""
    out = []
    raw.settimeout(5)
    while len(out) < len(exp):
        buf += raw.recv(65536)
        while buf:
            if buf.startswith(b"+"):
                e = buf.index(b"\r\n")
                out.append(buf[1:e].decode())
                buf = buf[e + 2:]
            elif buf.startswith(b"-"):
                e = buf.index(b"\r\n")
                out.append("-" + buf[1:e].decode().split()[0])
                buf = buf[e + 2:]
            elif buf.startswith(b"$-1\r\n"):
                out.append(None)
                buf = buf[5:]
            elif buf.startswith(b"$"):
                e = buf.index(b"\r\n")
                n = int(buf[1:e])
                if len(buf) < e + 2 + n + 2:
                    break
                out.append(buf[e + 2:e + 2 + n])
                buf = buf[e + 4 + n:]
            else:
                raise AssertionError("unexpected reply %r" % buf[:40])
    raw.close()
    assert out == exp, [(i, a, b) for i, (a, b) in enumerate(zip(out, exp))
                        if a != b][:5]


def t_keys():
    c = r()
    c.flushall()
    c.mset({"k1": "1", "k2": "2", "other": "3"})
    assert c.exists("k1", "k2", "nope", "k1") == 3
    assert c.delete("k1", "nope") == 1 and c.exists("k1") == 0
    assert c.unlink("k2") == 1
    assert c.type("other") == b"string" and c.type("nope") == b"none"
    assert c.rename("other", "renamed") is True and c.get("renamed") == b"3"
    expect_error(lambda: c.rename("nope", "x"), "no such key")
    c.set("a", "1")
    assert c.renamenx("a", "renamed") is False and c.renamenx("a", "b") is True
    assert c.copy("b", "c") is True and c.get("c") == b"1"
    assert c.copy("b", "c") is False
    assert c.copy("renamed", "c", replace=True) is True and c.get("c") == b"3"
    assert sorted(c.keys("*")) == [b"b", b"c", b"renamed"]
    assert sorted(c.keys("re*")) == [b"renamed"]
    assert c.keys("[bc]") == [b"b", b"c"]
    assert c.dbsize() == 3
    assert c.touch("b", "zz") == 1
    assert c.randomkey() in (b"b", b"c", b"renamed")
    for i in range(250):
        c.set("scan:%03d" % i, i)
    seen, cursor = set(), 0
    while True:
        cursor, keys = c.scan(cursor, match="scan:*", count=17)
        seen.update(keys)
        if cursor == 0:
            break
    assert len(seen) == 250, len(seen)
    assert set(c.scan_iter(match="scan:1*")) == {
        ("scan:%03d" % i).encode() for i in range(100, 200)}
    assert c.flushdb() is True and c.dbsize() == 0 and c.randomkey() is None


def full_scan(c, cursor=0, **kw):
    """Every key a SCAN from cursor on returns, in order, and the calls."""
    keys, calls = [], 0
    while True:
        cursor, got = c.scan(cursor, **kw)
        # Below 2^53: clients that read a cursor as a double (node-redis 4)
        # must give it back exactly.
        assert 0 <= cursor < 2**53, cursor
        keys += got
        calls += 1
        if cursor == 0:
            return keys, calls
        assert calls < 100000, "SCAN does not end"


def t_long_keys():
    # The longest key a command writes is 65,527 bytes: its expiry hint
    # must fit too, so any key written can be given a TTL. A longer one is
    # refused before anything is written. Before, SET k v EX 100 on a
    # 65,535-byte key answered an error yet kept the value and the TTL,
    # and MSET or RENAME half-done stayed so.
    c = r()
    top = "L" * 65527
    assert c.set(top, "v", ex=100) and 0 < c.ttl(top) <= 100
    assert c.expire(top, 200) and c.ttl(top) > 100
    c.delete(top)
    long = "L" * 65535
    expect_error(lambda: c.set(long, "v"), "too large")
    expect_error(lambda: c.set(long, "w", ex=100), "too large")
    assert c.exists(long) == 0
    expect_error(lambda: c.mset({"lk:a": "1", long: "2"}), "too large")
    expect_error(lambda: c.msetnx({"lk:b": "1", long: "2"}), "too large")
    assert c.exists("lk:a", "lk:b", long) == 0
    c.set("lk:small", "s", ex=50)
    expect_error(lambda: c.rename("lk:small", long), "too large")
    assert c.get("lk:small") == b"s" and c.exists(long) == 0
    with c.pipeline() as p:  # inside EXEC: the same, the others run
        p.set("lk:c", "1")
        p.set(long, "v", px=5000)
        p.get("lk:c")
        got = p.execute(raise_on_error=False)
    assert got[0] is True and got[2] == b"1", got
    assert isinstance(got[1], redis.ResponseError), got
    assert c.exists(long) == 0
    c.delete("lk:small", "lk:c")


def t_scan_edges():
    # A scan going on is not pushed out of the server's cursor table by
    # scans begun and dropped: here 1,100 SCAN 0 between each of its calls
    # (the table keeps 1,024). Before, its cursor was lost every time and
    # it started again from its keys' first 2 bytes ("se"): it never ended.
    # A server of its own: SCAN 0 there finds its first key at once.
    keys = ["se:%05d" % i for i in range(3000)]
    own = Server().start()
    try:
        c, other = client(own), client(own)
        for i in range(0, len(keys), 500):
            c.mset({k: "1" for k in keys[i:i + 500]})
        seen, cur, calls = set(), 0, 0
        while True:
            cur, page = c.scan(cur, count=1000)
            seen.update(page)
            calls += 1
            if cur == 0 or calls > 20:
                break
            p = other.pipeline(transaction=False)
            for _ in range(1100):
                p.scan(0, count=1)
            p.execute()
        assert cur == 0, "the scan did not end after %d calls" % calls
        assert seen == {k.encode() for k in keys}, len(seen)
        # RANDOMKEY never answers nil while a key exists, though others
        # delete keys meanwhile (it used to count with one snapshot and walk
        # another).
        c.set("se:keep", "1")
        stop = threading.Event()

        def churn():
            w = client(own)
            batch = {"se:churn:%d" % i: "x" for i in range(300)}
            while not stop.is_set():
                w.mset(batch)
                w.delete(*batch)
        t = threading.Thread(target=churn)
        t.start()
        try:
            nils = sum(c.randomkey() is None for _ in range(100))
        finally:
            stop.set()
            t.join()
        assert nils == 0, "%d of 100 RANDOMKEY answered nil" % nils
        c.delete("se:keep")
    finally:
        own.stop()
        own.cleanup()
    c = r()
    for i in range(0, len(keys), 500):
        c.mset({k: "1" for k in keys[i:i + 500]})
    # Inside EXEC, SCAN, KEYS, DBSIZE and RANDOMKEY see the transaction's
    # own writes, as every other read there does.
    n = c.dbsize()
    with c.pipeline() as p:
        p.set("se:tx", "1")
        p.delete("se:00000")
        p.dbsize()
        p.keys("se:tx*")
        p.keys("se:0000?")
        p.scan(0, match="se:tx*", count=100000)
        got = p.execute()
    assert got[2] == n, (got[2], n)  # one key more, one less
    assert got[3] == [b"se:tx"], got[3]
    assert b"se:00000" not in got[4] and len(got[4]) == 9, got[4]
    assert got[5][1] == [b"se:tx"], got[5]
    c.delete("se:tx")
    with c.pipeline() as p:
        p.delete(*keys)
        p.set("se:only", "1")
        p.dbsize()
        p.randomkey()
        got = p.execute()
    # n less se:00000 (gone in the first), less the other 2,999, plus one
    assert got[2] == n - len(keys) + 1, (got, n)
    assert got[3] is not None and \
        got[3] not in {k.encode() for k in keys}, got[3]
    c.delete("se:only")
    # KEYS * and SCAN MATCH * return the empty key too (Redis does not
    # match "*" at all); a cursor of 40 zeros is 0.
    c.set("", "empty")
    assert b"" in c.keys("*")
    assert b"" in set(c.scan_iter(match="*", count=1000))
    assert c.execute_command("SCAN", "0" * 40, "COUNT", "5") == \
        c.execute_command("SCAN", "0", "COUNT", "5")
    c.delete("")


def t_scan_cursors():
    # SCAN goes on exactly where it stopped, COUNT keys a call, however
    # long the keys' common prefix (redis-benchmark's "key:000000001234"):
    # no repeats, none missed, no reply with the whole key space.
    c = r()
    c.flushdb()  # the key space is this test's alone
    names = [("key:%012d" % i).encode() for i in range(3000)]
    with c.pipeline(transaction=False) as p:
        for k in names:
            p.set(k, "v")
        p.execute()
    keys, calls = full_scan(c, count=10)
    assert sorted(keys) == names, (len(keys), len(set(keys)))
    assert 300 <= calls <= 302, calls
    cursor, got = c.scan(0, count=10)
    assert len(got) == 10 and 0 < cursor < 2**53, (len(got), cursor)
    # MATCH and TYPE filter what was looked at; COUNT still bounds a call.
    keys, calls = full_scan(c, match="key:000000001*", count=100)
    assert sorted(keys) == names[1000:2000] and calls >= 30, (len(keys), calls)
    c.execute_command("TS.CREATE", "key:zz-series")
    keys, _ = full_scan(c, _type="tsdb-type", count=500)
    assert keys == [b"key:zz-series"], keys
    # A cursor the server no longer keeps (1024 newer ones since) goes on
    # from the key's first bytes: some keys again, none missed.
    cursor, first = c.scan(0, count=50)
    for _ in range(1100):
        c.scan(0, count=1)
    rest, _ = full_scan(c, cursor, count=50)
    assert set(first + rest) == set(names + [b"key:zz-series"])
    # The older cursor forms are taken too: a prefix of the key, and a
    # kept cursor of the previous version (bit 62; its low 18 bits hold
    # the key's first bytes).
    old = (int.from_bytes(b"key:000", "big") << 3 | 7) + 1
    rest, _ = full_scan(c, old, count=100)
    assert set(rest) == set(names + [b"key:zz-series"]), len(set(rest))
    v1 = 1 << 62 | 12345 << 18 | 2 << 16 | int.from_bytes(b"ke", "big")
    rest, _ = full_scan(c, v1, count=100)
    assert set(rest) == set(names + [b"key:zz-series"]), len(set(rest))
    # Keys longer than the 1 KiB the server keeps of one, sharing all of
    # it: every call makes progress, every key comes back.
    c.flushdb()
    long = [b"L" * 1100 + b"%03d" % i for i in range(40)]
    for k in long:
        c.set(k, "v")
    keys, calls = full_scan(c, count=5)
    assert set(keys) == set(long) and calls < 100, (len(set(keys)), calls)
    c.flushdb()


def t_memory_object():
    # MEMORY USAGE: an estimate above the key and value bytes, a series'
    # chunks counted; STATS, DOCTOR, MALLOC-STATS and PURGE answer; OBJECT
    # as Redis (the replies Redis gives are in the compatibility corpus);
    # redis-cli --memkeys sizes every key.
    c = r()
    c.set("mo:s", "x" * 1000)
    c.set("mo:i", 42)
    c.execute_command("TS.CREATE", "mo:ts")
    for t in range(1, 2001):
        c.execute_command("TS.ADD", "mo:ts", t, t * 0.5)
    us = c.memory_usage("mo:s")
    assert 1000 + len("mo:s") < us < 1300, us
    assert c.memory_usage("mo:s", samples=0) == us
    assert c.memory_usage("mo:i") < us
    assert c.memory_usage("mo:ts") > c.memory_usage("mo:i") + 100
    assert c.memory_usage("mo:none") is None
    assert c.object("encoding", "mo:s") == b"raw"
    assert c.object("encoding", "mo:i") == b"int"
    assert c.object("encoding", "mo:ts") == b"raw"
    assert c.object("refcount", "mo:i") == 2147483647
    st = c.memory_stats()
    for k in ("peak.allocated", "total.allocated", "dataset.bytes",
              "fragmentation", "cairn.memtables.bytes"):
        assert k in st, (k, st)
    assert st["peak.allocated"] >= st["total.allocated"] > 0, st
    doc = c.execute_command("MEMORY", "DOCTOR").decode()
    assert doc.startswith("Allocated ") and "Memtables hold" in doc, doc
    assert c.execute_command("MEMORY", "MALLOC-STATS").startswith(b"<malloc")
    assert c.execute_command("MEMORY", "PURGE") in (b"OK", "OK", True)
    out = subprocess.run(["redis-cli", "-p", str(SRV.port), "--memkeys"],
                         capture_output=True, text=True, timeout=60).stdout
    assert re.search(r"Biggest string found '\"mo:s\"' has \d+ bytes", out) \
        and " 0 bytes (100" not in out, out
    # Inside MULTI/EXEC (redis-py's default pipeline): USAGE and OBJECT
    # run in the transaction; STATS and DOCTOR, which read the loop's
    # state, on the loop once it is back, each reply in its place.
    with c.pipeline() as p:
        p.memory_usage("mo:s")
        p.execute_command("MEMORY", "STATS")
        p.object("encoding", "mo:i")
        p.execute_command("MEMORY", "DOCTOR")
        got = p.execute(raise_on_error=False)
    assert got[0] == us and got[2] == b"int", got
    st = got[1] if isinstance(got[1], dict) else \
        dict(zip(got[1][::2], got[1][1::2]))
    assert st.get("peak.allocated", st.get(b"peak.allocated", 0)) > 0, got
    assert got[3].decode().startswith("Allocated "), got
    for k in ("mo:s", "mo:i", "mo:ts"):
        c.delete(k)


def t_expiry():
    c = r()
    c.set("e1", "v", px=1000)  # a second: room for a slow (sanitizer) build
    assert 0 < c.pttl("e1") <= 1000 and c.ttl("e1") in (0, 1)
    assert c.ttl("nope") == -2
    c.set("p", "v")
    assert c.ttl("p") == -1
    assert c.expire("p", 100) is True and 99 <= c.ttl("p") <= 100
    assert c.expire("p", 50, gt=True) is False
    assert c.expire("p", 50, lt=True) is True
    assert c.expire("p", 500, nx=True) is False
    assert c.persist("p") is True and c.ttl("p") == -1
    assert c.persist("p") is False
    at = int(time.time()) + 1000
    assert c.expireat("p", at) and c.expiretime("p") == at
    assert c.pexpireat("p", at * 1000 + 5) and c.pexpiretime("p") == at * 1000 + 5
    c.set("kt", "v", ex=100)
    c.set("kt", "v2", keepttl=True)
    assert c.ttl("kt") > 90
    c.set("kt", "v3")
    assert c.ttl("kt") == -1
    c.setex("sx", 100, "v")
    assert 99 <= c.ttl("sx") <= 100
    c.psetex("psx", 100000, "v")
    assert c.pttl("psx") > 99000
    assert c.getex("psx", persist=True) == b"v" and c.ttl("psx") == -1
    assert c.getex("psx", ex=50) == b"v" and 49 <= c.ttl("psx") <= 50
    assert c.expire("p", -1) is True and c.exists("p") == 0
    time.sleep(1.0)
    assert c.get("e1") is None and c.exists("e1") == 0
    # the active sweep removes it from storage too (keys never lists it)
    assert b"e1" not in c.keys("*")


def t_multi_exec():
    c = r()
    p = c.pipeline(transaction=True)
    p.set("t1", "a").incr("t2").get("t1")
    assert p.execute() == [True, 1, b"a"]
    # queue-time error aborts EXEC
    raw = socket.create_connection(("127.0.0.1", SRV.port))
    raw.sendall(b"MULTI\r\nSET x 1\r\nNOSUCH\r\nEXEC\r\nGET x\r\n")
    data = b""
    deadline = time.time() + 5
    while data.count(b"\r\n") < 5 and time.time() < deadline:
        data += raw.recv(4096)
    raw.close()
    assert b"+QUEUED" in data and b"-EXECABORT" in data, data
    assert data.endswith(b"$-1\r\n"), data
    # runtime error inside EXEC: the others still run
    p = c.pipeline(transaction=True)
    p.set("s", "str").incr("s").set("after", "1")
    res = p.execute(raise_on_error=False)
    assert res[0] is True and isinstance(res[1], redis.ResponseError)
    assert c.get("after") == b"1"
    expect_error(lambda: c.execute_command("EXEC"), "EXEC without MULTI")
    expect_error(lambda: c.execute_command("DISCARD"), "DISCARD without MULTI")


def t_multi_loop_commands():
    # Commands that touch the connection or the server (CLIENT, CONFIG,
    # INFO, ACL, COMMAND, SLOWLOG, HELLO, AUTH, CAIRN.VERSION) are queued
    # inside MULTI as Redis queues them, and EXEC answers each in its place:
    # redis-py's default pipeline lines its results up by position.
    c = r()
    with c.pipeline() as p:
        p.set("ml:a", "1")
        p.client_setname("ml-client")
        p.incr("ml:a")
        p.client_getname()
        p.config_get("maxclients")
        p.info("server")
        p.execute_command("ACL", "WHOAMI")
        p.command_count()
        p.execute_command("SLOWLOG", "LEN")
        p.execute_command("CAIRN.VERSION")
        p.get("ml:a")
        got = p.execute()
    assert got[0] is True and got[2] == 2, got
    assert got[1] is True and got[3] in (b"ml-client", "ml-client"), got
    assert got[4] == {"maxclients": "10000"} or \
        got[4] == {b"maxclients": b"10000"}, got
    assert got[5]["cairn_version"], got
    assert got[6] in (b"default", "default"), got
    assert got[7] > 50 and got[8] >= 0, got
    # CAIRN.VERSION in EXEC: the version this transaction committed at.
    assert got[9] == c.execute_command("CAIRN.VERSION") > 0, got
    assert got[10] == b"2", got
    assert c.client_getname() in (b"ml-client", "ml-client")
    # A watched key's change still makes EXEC return nil, loop commands
    # and all, and runs none of them.
    watched_exec_fails(c, r(), "ml:a",
                       lambda p: p.client_setname("not-set").set("ml:a", "mine"))
    assert c.client_getname() in (b"ml-client", "ml-client")
    assert c.get("ml:a") == b"theirs"
    # SAVE and SHUTDOWN are refused when queued, and EXEC is aborted; a
    # container's unknown subcommand too, as Redis checks it when queued.
    for bad, err in ((b"SAVE", b"-ERR Command not allowed inside a transaction"),
                     (b"SHUTDOWN", b"-ERR Command not allowed inside a transaction"),
                     (b"CLIENT NOPE", b"-ERR unknown subcommand 'NOPE'. Try CLIENT HELP."),
                     (b"CONFIG GET", b"-ERR wrong number of arguments for 'config|get' command")):
        raw = socket.create_connection(("127.0.0.1", SRV.port))
        raw.sendall(b"MULTI\r\nSET ml:b 1\r\n" + bad +
                    b"\r\nEXEC\r\nEXISTS ml:b\r\nPING\r\n")
        data = b""
        deadline = time.time() + 5
        while not data.endswith(b"+PONG\r\n") and time.time() < deadline:
            data += raw.recv(4096)
        raw.close()
        assert data == (b"+OK\r\n+QUEUED\r\n" + err + b"\r\n-EXECABORT "
                        b"Transaction discarded because of previous errors."
                        b"\r\n:0\r\n+PONG\r\n"), (bad, data)
    assert SRV.proc.poll() is None  # SHUTDOWN queued did not stop it


def read_until(sock, end, timeout=10.0):
    data = b""
    deadline = time.time() + timeout
    while not data.endswith(end) and time.time() < deadline:
        d = sock.recv(1 << 20)
        if not d:
            break
        data += d
    return data


def t_multi_loop_edges():
    # AUTH and HELLO queued in MULTI are never refused by the ACL when EXEC
    # runs them (Redis exempts them), though the user lacks +auth / +hello.
    c = r()
    c.execute_command("ACL", "SETUSER", "mle", "on", ">mlepw", "+multi",
                      "+exec", "+get", "~*")
    s = socket.create_connection(("127.0.0.1", SRV.port))
    s.sendall(RespSocket.encode(("AUTH", "mle", "mlepw")) + b"MULTI\r\n" +
              RespSocket.encode(("AUTH", "mle", "mlepw")) +
              b"HELLO 2\r\nEXEC\r\nGET mle:none\r\n")
    data = read_until(s, b"$-1\r\n")
    s.close()
    assert data.startswith(b"+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n"
                           b"+OK\r\n*14\r\n$6\r\nserver\r\n"), data
    assert b"NOPERM" not in data, data
    c.execute_command("ACL", "DELUSER", "mle")
    # The commands queued after an AUTH or HELLO run as Redis runs the queue,
    # in order: checked as the user that AUTH logs in as, answered in the
    # protocol that HELLO chose (though EXEC runs AUTH and HELLO on the loop
    # after the transaction's key commands).
    c.execute_command("ACL", "SETUSER", "mle3", "on", ">p3", "+multi",
                      "+exec", "+auth", "+set", "+get", "+ping", "~*")
    c.execute_command("ACL", "SETUSER", "mle4", "on", ">p4", "+multi",
                      "+exec", "+get", "+ping", "~*")
    end = b"$3\r\nend\r\n"

    def talk(*cmds):
        s = socket.create_connection(("127.0.0.1", SRV.port))
        s.sendall(b"".join(RespSocket.encode(x) for x in cmds) +
                  RespSocket.encode(("PING", "end")))
        data = read_until(s, end)
        s.close()
        return data
    noperm = (b"-NOPERM ACLs rules changed between the moment the transaction"
              b" was accumulated and the EXEC call. This command is no longer"
              b" allowed for the following reason: no permission to execute "
              b"the command or subcommand\r\n")
    got = talk(("AUTH", "mle3", "p3"), ("MULTI",), ("AUTH", "mle4", "p4"),
               ("SET", "mle:k", "v"), ("GET", "mle:k"), ("EXEC",))
    assert got == (b"+OK\r\n+OK\r\n" + b"+QUEUED\r\n" * 3 + b"*3\r\n+OK\r\n" +
                   noperm + b"$-1\r\n" + end), got
    got = talk(("AUTH", "mle3", "p3"), ("MULTI",), ("AUTH", "mle4", "wrong"),
               ("SET", "mle:k", "v"), ("EXEC",))
    assert got.endswith(b"*2\r\n-WRONGPASS invalid username-password pair "
                        b"or user is disabled.\r\n+OK\r\n" + end), got
    got = talk(("AUTH", "mle3", "p3"), ("MULTI",),
               ("HELLO", "3", "AUTH", "mle4", "p4"), ("SET", "mle:k2", "v"),
               ("GET", "mle:none"), ("EXEC",))
    assert got.endswith(b"*0\r\n" + noperm + b"_\r\n" + end), got
    got = talk(("HELLO", "3"), ("MULTI",), ("HELLO", "2"), ("GET", "mle:none"),
               ("EXEC",))
    assert b"*2\r\n*14\r\n" in got and got.endswith(b"*0\r\n$-1\r\n" + end), got
    got = talk(("MULTI",), ("HELLO", "3"), ("GET", "mle:none"), ("EXEC",))
    assert b"*2\r\n%7\r\n" in got and got.endswith(b"*0\r\n_\r\n" + end), got
    got = talk(("MULTI",), ("HELLO", "3", "SETNAME", "a b"), ("GET", "mle:none"),
               ("EXEC",))
    assert got.endswith(b"*2\r\n-ERR Client names cannot contain spaces, "
                        b"newlines or special characters.\r\n$-1\r\n" + end), got
    assert c.get("mle:k") == b"v" and c.get("mle:k2") is None
    c.execute_command("ACL", "DELUSER", "mle3", "mle4")
    c.delete("mle:k")
    # A client gone while its EXEC commits: the key commands committed, so
    # its other commands (CONFIG SET, ACL SETUSER, queued before them)
    # took effect too. EXEC is all or nothing.
    assert c.config_get("slowlog-max-len")["slowlog-max-len"] == "128"
    n = 20000
    cmds = ([("MULTI",), ("CONFIG", "SET", "slowlog-max-len", "77"),
             ("ACL", "SETUSER", "mle-ghost", "on", ">pw", "+@all", "~*")] +
            [("SET", "mle:%d" % i, "x") for i in range(n)] +
            [("CLIENT", "SETNAME", "gone"), ("EXEC",)])
    s = socket.create_connection(("127.0.0.1", SRV.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.sendall(b"".join(RespSocket.encode(x) for x in cmds))
    data = b""
    deadline = time.time() + 20
    while data.count(b"QUEUED") < len(cmds) - 2 and time.time() < deadline:
        data += s.recv(1 << 20)
    s.close()  # a reset, likely while the EXEC is committing
    # The key commands commit first; the loop runs the others once EXEC's
    # job is back, a moment later.
    deadline = time.time() + 20
    while time.time() < deadline and (
            c.get("mle:%d" % (n - 1)) is None or
            c.config_get("slowlog-max-len")["slowlog-max-len"] != "77" or
            c.execute_command("ACL", "GETUSER", "mle-ghost") is None):
        time.sleep(0.02)
    assert c.get("mle:0") == b"x" and c.get("mle:%d" % (n - 1)) == b"x"
    got = c.config_get("slowlog-max-len")["slowlog-max-len"]
    assert got == "77", "the queued CONFIG SET did not run: %r" % got
    assert c.execute_command("ACL", "GETUSER", "mle-ghost") is not None, \
        "the queued ACL SETUSER did not run"
    c.config_set("slowlog-max-len", "128")
    c.execute_command("ACL", "DELUSER", "mle-ghost")
    c.delete(*["mle:%d" % i for i in range(n)])


def watched_exec_fails(c, other, key, queue):
    """c WATCHes key and queues (queue(pipeline)); other then sets key to
    "theirs": c's EXEC must fail (nil) and run none of it."""
    with c.pipeline() as p:
        p.watch(key)
        p.multi()
        queue(p)
        other.set(key, "theirs")
        try:
            p.execute()
            raise AssertionError("EXEC should have failed")
        except redis.WatchError:
            pass


def watch_then_exec(c, keys, between, value):
    """WATCH keys (between(i) runs after the i-th), then MULTI, SET wo:z
    value, EXEC: True if it ran, False if a watched key failed it."""
    with c.pipeline() as p:
        for i, k in enumerate(keys):
            p.watch(k)
            between(i)
        p.multi()
        p.set("wo:z", value)
        try:
            return p.execute() == [True]
        except redis.WatchError:
            return False


def t_watch_expiry_and_order():
    # Each watched key is checked against its own WATCH: a write to b
    # between WATCH a and WATCH b does not fail EXEC (it did: every key was
    # checked against the first WATCH's version).
    c, other = r(), r()
    assert watch_then_exec(c, ["wo:a", "wo:b"],
                           lambda i: i == 0 and other.set("wo:b", "1"), "1")
    # A watched key that expires before EXEC fails it (Redis 7.0), even
    # before anything deletes it.
    for _ in range(3):
        c.set("wo:w", "v", px=150)
        assert not watch_then_exec(c, ["wo:w"], lambda i: time.sleep(0.2),
                                   "2"), "EXEC ran though wo:w expired"
    # A key already expired at WATCH: its deletion (the sweep, every 100
    # ms) is no change; a write is.
    c.set("wo:e", "v", px=1)
    time.sleep(0.01)
    assert watch_then_exec(c, ["wo:e"], lambda i: time.sleep(0.3), "3")
    c.set("wo:e", "v", px=1)
    time.sleep(0.01)
    assert not watch_then_exec(c, ["wo:e"],
                               lambda i: other.set("wo:e", "new"), "4"), \
        "EXEC ran though wo:e was written"
    assert c.get("wo:z") == b"3"
    c.delete("wo:a", "wo:b", "wo:z", "wo:e", "wo:w")


def t_watch():
    c = r()
    c.set("w", "0")
    watched_exec_fails(c, r(), "w", lambda p: p.set("w", "mine"))
    assert c.get("w") == b"theirs"
    with c.pipeline() as p:
        p.watch("w")
        v = int(p.get("w") == b"theirs")
        p.multi()
        p.set("w", "ok%d" % v)
        assert p.execute() == [True]
    assert c.get("w") == b"ok1"


def t_resp3_and_hello():
    c = client(SRV, protocol=3) if "protocol" in redis.Redis.__init__.__code__.co_varnames else None
    raw = socket.create_connection(("127.0.0.1", SRV.port))
    raw.sendall(b"HELLO 3\r\nGET nothing\r\nHELLO 2\r\nGET nothing\r\n")
    data = b""
    deadline = time.time() + 5
    while not data.endswith(b"$-1\r\n") and time.time() < deadline:
        data += raw.recv(4096)
    raw.close()
    assert data.startswith(b"%7\r\n"), data
    assert b"_\r\n" in data and data.endswith(b"$-1\r\n"), data
    if c is not None:
        assert c.get("nothing") is None


def t_time_travel():
    c = r()
    c.set("tt", "one")
    v1 = c.execute_command("CAIRN.VERSION")
    # TIME reads as of the end of a millisecond: commit "two" in a later one.
    time.sleep(0.005)
    c.set("tt", "two")
    v2 = c.execute_command("CAIRN.VERSION")
    assert v2 > v1
    assert c.execute_command("CAIRN.GETAT", "tt", "VERSION", v1) == b"one"
    assert c.execute_command("CAIRN.GETAT", "tt", "VERSION", v2) == b"two"
    hist = c.execute_command("CAIRN.HISTORY", "tt")
    assert [h[0] for h in hist[:2]] == [v2, v1] and hist[0][2] == b"two"
    t_ms = hist[1][1]
    assert c.execute_command("CAIRN.GETAT", "tt", "TIME", t_ms) == b"one"
    assert c.execute_command("CAIRN.VERSION", "CURRENT") >= v2


def t_errors_and_limits():
    c = r()
    expect_error(lambda: c.execute_command("NOSUCHCMD", "a"),
                 "unknown command 'NOSUCHCMD', with args beginning with: 'a'")
    expect_error(lambda: c.execute_command("GET"),
                 "wrong number of arguments for 'get' command")
    expect_error(lambda: c.execute_command("SELECT", "1"), "DB index is out of range")
    assert c.execute_command("SELECT", "0") in (True, b"OK")
    # malformed protocol: an error, the connection closes, others unaffected
    raw = socket.create_connection(("127.0.0.1", SRV.port))
    raw.sendall(b"*1\r\n$abc\r\n")
    data = raw.recv(4096)
    assert data.startswith(b"-ERR Protocol error"), data
    assert raw.recv(4096) == b""
    raw.close()
    raw = socket.create_connection(("127.0.0.1", SRV.port))
    raw.sendall(b"*1\r\n$999999999999\r\n")
    assert raw.recv(4096).startswith(b"-ERR Protocol error")
    raw.close()
    # inline commands with quoting
    raw = socket.create_connection(("127.0.0.1", SRV.port))
    raw.sendall(b'SET "in line" "a\\x41b"\r\nGET "in line"\r\n')
    data = b""
    while data.count(b"\r\n") < 3:
        data += raw.recv(4096)
    assert data == b"+OK\r\n$3\r\naAb\r\n", data
    raw.close()
    assert c.ping()


def t_client_cmds():
    c = r()
    cid = c.client_id()
    assert isinstance(cid, int) and cid > 0
    assert c.client_setname("tester") and c.client_getname() == "tester"
    listed = c.execute_command("CLIENT", "LIST").decode()
    # Redis 7 names a container's subcommand: cmd=client|list
    assert "name=tester" in listed and " cmd=client|list " in listed, listed
    # Redis 7.0.15's fields, in its order (node-redis 4 reads them by
    # position), then Cairn's; the socket's descriptor among them.
    line = next(l for l in listed.splitlines() if "name=tester" in l)
    names = [f.split("=", 1)[0] for f in line.split(" ")]
    assert names == ["id", "addr", "laddr", "fd", "name", "age", "idle",
                     "flags", "db", "sub", "psub", "ssub", "multi", "qbuf",
                     "qbuf-free", "argv-mem", "multi-mem", "rbs", "rbp",
                     "obl", "oll", "omem", "tot-mem", "events", "cmd",
                     "user", "redir", "resp", "last-version"], names
    mine = dict(f.split("=", 1) for f in line.split(" "))
    assert int(mine["fd"]) > 2 and int(mine["qbuf-free"]) >= 0, mine
    assert " cmd=client|info " in c.execute_command("CLIENT", "INFO").decode()
    c.set("info-probe", "1")
    info = c.info("everything")
    assert info["cairn_version"] and info["current_version"] > 0, info
    assert "connected_clients" in c.info("clients")
    assert c.command_count() > 50
    docs = raw_cmd("COMMAND", "DOCS", "get")
    assert docs.startswith(b"*2\r\n$3\r\nget\r\n") and b"summary" in docs
    info = raw_cmd("COMMAND", "INFO", "get")
    assert info.startswith(b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n"), info
    assert c.command()["get"]["arity"] == 2
    # COMMAND LIST: every command and subcommand, by full name; COMMAND HELP
    # ("COMMAND LIST" as one name: redis-py parses a plain "COMMAND" reply
    # as COMMAND INFO's)
    names = [n.decode() for n in c.execute_command("COMMAND LIST")]
    assert len(names) == len(set(names)), names
    assert {"get", "set", "monitor", "config|get", "client|list",
            "acl|setuser", "slowlog|len", "command|getkeys"} <= set(names)
    assert len([n for n in names if "|" not in n]) == c.command_count()
    ts = c.execute_command("COMMAND LIST", "FILTERBY", "MODULE", "timeseries")
    assert ts and all(n.startswith(b"ts.") for n in ts) and b"ts.add" in ts
    admin = c.execute_command("COMMAND LIST", "FILTERBY", "ACLCAT", "admin")
    assert b"config" in admin and b"get" not in admin, admin
    helped = c.execute_command("COMMAND HELP")
    assert helped[0].startswith(b"COMMAND <subcommand>"), helped
    assert any(h.startswith(b"GETKEYS") for h in helped), helped
    assert c.execute_command("COMMAND GETKEYS", "TS.MADD", "a", "1", "2",
                             "b", "1", "2") == ["a", "b"]
    assert c.config_get("port") == {"port": str(SRV.port)}
    t = c.time()
    assert abs(t[0] - time.time()) < 5


class FeedReader(RespSocket):
    """A MONITOR connection: reads the status lines it is fed."""

    def line(self):
        return self._line()

    def feed(self, n):
        """The next n fed commands, each as its arguments after the
        timestamp and the [db addr] part, checked for shape."""
        out = []
        for _ in range(n):
            ln = self.line().decode("latin1")
            assert ln.startswith("+"), ln
            ts, rest = ln[1:].split(" ", 1)
            secs, micros = ts.split(".")
            assert abs(int(secs) - time.time()) < 60 and len(micros) == 6, ln
            assert rest.startswith("[0 127.0.0.1:"), ln
            out.append(rest.split("] ", 1)[1])
        return out


def t_monitor():
    """MONITOR feeds every command processed, as Redis 7.0 shows it:
    arguments quoted and escaped, AUTH and HELLO AUTH redacted, admin
    commands (CONFIG, CLIENT LIST, SLOWLOG, SAVE...) and refused ones
    left out, a transaction's commands when EXEC runs them, EXEC last;
    RESET ends it; a monitor cannot touch keys; a monitor that does not
    read is dropped at the output limit."""
    m = FeedReader(SRV.port)
    m.send(["MONITOR"])
    assert m.line() == b"+OK"
    c = r()
    c.set("mon:k", b'a"b\\c\n\x01\xff')
    assert c.get("mon:k") == b'a"b\\c\n\x01\xff'
    expect_error(lambda: c.execute_command("AUTH", "secret"), "AUTH")
    c.execute_command("HELLO", "2", "AUTH", "default", "secret")
    c.config_get("port")
    c.execute_command("CLIENT", "LIST")
    c.execute_command("SLOWLOG", "LEN")
    expect_error(lambda: c.execute_command("CLIENT", "NOSUCH"), "unknown")
    expect_error(lambda: c.execute_command("NOSUCH", "x"), "unknown command")
    expect_error(lambda: c.execute_command("GET"), "wrong number")
    c.client_setname("watcher")
    p = c.pipeline(transaction=False)
    for i in range(3):
        p.set("mon:p%d" % i, i)
    p.execute()
    p = c.pipeline(transaction=True)
    p.set("mon:t", 1)
    p.incr("mon:t")
    assert p.execute() == [True, 2]
    # A watched key changed: the queued INCR did not run, EXEC did
    w = RespSocket(SRV.port)
    w.send(["WATCH", "mon:t"])
    assert w._line() == b"+OK"
    c.set("mon:t", 5)
    w.send(["MULTI"], ["INCR", "mon:t"], ["EXEC"])
    assert [w._line() for _ in range(3)] == [b"+OK", b"+QUEUED", b"*-1"]
    c.execute_command("ACL", "WHOAMI")
    fed = m.feed(17)
    assert fed == [
        r'"SET" "mon:k" "a\"b\\c\n\x01\xff"',
        '"GET" "mon:k"',
        '"AUTH" "(redacted)"',
        '"HELLO" "2" "AUTH" "(redacted)" "(redacted)"',
        '"CLIENT" "SETNAME" "watcher"',
        '"SET" "mon:p0" "0"', '"SET" "mon:p1" "1"', '"SET" "mon:p2" "2"',
        '"MULTI"', '"SET" "mon:t" "1"', '"INCRBY" "mon:t" "1"', '"EXEC"',
        '"WATCH" "mon:t"', '"SET" "mon:t" "5"', '"MULTI"', '"EXEC"',
        '"ACL" "WHOAMI"'], fed
    # The monitor itself: no keys; its own commands come after their replies
    m.send(["GET", "mon:k"])
    assert m.line() == b"-ERR Replica can't interact with the keyspace"
    m.send(["PING"])
    assert m.line() == b"+PONG"
    assert m.feed(1) == ['"PING"']
    listed = c.execute_command("CLIENT", "LIST").decode()
    assert " flags=O " in listed and " cmd=ping " in listed, listed
    m.send(["MONITOR"])  # again: no reply, still monitoring
    c.echo("after")
    assert m.feed(1) == ['"ECHO" "after"']
    # MONITOR queued in MULTI is refused when EXEC runs it (and not fed)
    e = RespSocket(SRV.port)
    e.send(["MULTI"], ["MONITOR"], ["EXEC"])
    assert [e._line() for _ in range(4)] == [
        b"+OK", b"+QUEUED", b"*1",
        b"-ERR MONITOR isn't allowed for DENY BLOCKING client"]
    assert m.feed(2) == ['"MULTI"', '"EXEC"']
    m.send(["RESET"])
    assert m.line() == b"+RESET"
    c.set("mon:after-reset", 1)
    m.send(["PING"])
    assert m.line() == b"+PONG"  # nothing was fed since RESET
    assert " flags=O " not in c.execute_command("CLIENT", "LIST").decode()
    # redis-py's own monitor parses the feed
    with r().monitor() as mon:
        c.set("mon:py", "v")
        cmd = mon.next_command()
        assert cmd["command"] == "SET mon:py v" and cmd["db"] == 0, cmd
    # A monitor that never reads is dropped at the output limit
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", SRV.port))
    slow.sendall(b"MONITOR\r\n")
    time.sleep(0.2)
    dropped = c.info("stats")["dropped_clients"]
    c.config_set("client-output-buffer-limit", "1mb")
    try:
        # about 13 MB fed: more than the socket buffers hold and the limit
        p = c.pipeline(transaction=False)
        for i in range(50000):
            p.set("mon:bulk%d" % (i % 100), "x" * 200)
        p.execute()
        deadline = time.time() + 10
        while (" flags=O " in c.execute_command("CLIENT", "LIST").decode()
               and time.time() < deadline):
            time.sleep(0.05)
        assert " flags=O " not in c.execute_command("CLIENT", "LIST").decode()
        assert c.info("stats")["dropped_clients"] == dropped + 1
    finally:
        c.config_set("client-output-buffer-limit", str(1 << 30))
        slow.close()
    assert c.ping()


def t_redis_cli():
    out = subprocess.run(["redis-cli", "-p", str(SRV.port), "SET", "cli", "yes"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "OK", out
    out = subprocess.run(["redis-cli", "-p", str(SRV.port), "GET", "cli"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "yes", out
    out = subprocess.run(["redis-cli", "-p", str(SRV.port), "--no-raw", "INCR",
                          "clictr"], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "(integer) 1", out


def t_redis_benchmark():
    out = subprocess.run(["redis-benchmark", "-p", str(SRV.port), "-q", "-n",
                          "2000", "-c", "10", "-t", "set,get,incr,mset"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out
    for t in ("SET", "GET", "INCR", "MSET"):
        assert t in out.stdout, out.stdout


def t_auth():
    s = Server("--requirepass", "s3cret").start()
    try:
        c = client(s)
        expect_error(lambda: c.get("x"), "Authentication required")
        expect_error(lambda: c.execute_command("AUTH", "wrong"), "WRONGPASS")
        ok = client(s, password="s3cret")
        assert ok.set("x", "1") and ok.get("x") == b"1"
        assert ok.execute_command("AUTH", "default", "s3cret") in (True, b"OK")
    finally:
        s.stop()
        s.cleanup()


def t_slow_reader_and_many_clients():
    # A client that never reads its replies is dropped once its unread
    # output passes the limit; many idle connections and a half-closed
    # socket do not disturb anyone else.
    s = Server("--client-output-buffer-limit", "1mb").start()
    try:
        c = client(s)
        c.set("big", b"x" * 100000)
        hog = socket.create_connection(("127.0.0.1", s.port))
        hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        req = b"GET big\r\n" * 200
        dropped = False
        deadline = time.time() + 20
        while time.time() < deadline and not dropped:
            try:
                hog.sendall(req)
            except OSError:
                dropped = True
                break
            info = c.info("stats")
            dropped = info.get("dropped_clients", 0) > 0
        assert dropped, "the slow reader was not dropped"
        hog.close()
        idle = [socket.create_connection(("127.0.0.1", s.port))
                for _ in range(500)]
        half = socket.create_connection(("127.0.0.1", s.port))
        half.sendall(b"SET half 1\r\n")
        half.shutdown(socket.SHUT_WR)
        assert c.ping() and c.get("big") == b"x" * 100000
        assert c.info("clients")["connected_clients"] >= 500
        for sk in idle:
            sk.close()
        half.close()
        deadline = time.time() + 10
        while c.info("clients")["connected_clients"] > 1 and time.time() < deadline:
            time.sleep(0.05)
        assert c.info("clients")["connected_clients"] == 1
        assert c.get("half") in (None, b"1")
    finally:
        assert s.stop() == 0
        s.cleanup()


def t_restart_and_kill9():
    s = Server().start()
    try:
        c = client(s)
        for i in range(500):
            c.set("p%d" % i, "v%d" % i)
        c.set("exp", "v", ex=1000)
        assert s.stop() == 0
        s.start()
        c = client(s)
        assert c.get("p499") == b"v499" and c.dbsize() == 501
        assert 990 < c.ttl("exp") <= 1000
        for i in range(500):
            c.set("q%d" % i, "w%d" % i)
        s.kill9()
        s.start()
        c = client(s)
        assert all(c.get("q%d" % i) == ("w%d" % i).encode() for i in range(500))
    finally:
        s.stop()
        s.cleanup()


def t_time_series_key():
    """A series (made through the library until TS.CREATE exists) is a key
    of type TSDB-TYPE: EXISTS sees it, string commands get WRONGTYPE, and
    it survives a restart."""
    s = Server()
    cli = os.path.join(BUILD, "cairn")
    out = subprocess.run([cli, "debug", "mkseries",
                          os.path.join(s.dir, "data"), "temp:1",
                          "--points", "50"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    s.start()
    try:
        c = client(s)
        assert c.type("temp:1") == b"TSDB-TYPE"
        assert c.exists("temp:1") == 1
        expect_error(lambda: c.get("temp:1"), "WRONGTYPE")
        expect_error(lambda: c.append("temp:1", "x"), "WRONGTYPE")
        assert c.set("plain", "v") and c.type("plain") == b"string"
        s.stop()
        s.start()
        c = client(s)
        assert c.type("temp:1") == b"TSDB-TYPE"
    finally:
        s.stop()
        s.cleanup()


def main():
    global SRV
    SRV = Server().start()
    tests = [(n, f) for n, f in sorted(globals().items())
             if n.startswith("t_") and callable(f)]
    try:
        run_tests(tests)
    finally:
        SRV.stop()
        SRV.cleanup()


if __name__ == "__main__":
    main()
