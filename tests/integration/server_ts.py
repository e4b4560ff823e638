#!/usr/bin/python3
"""server_ts.py — the RedisTimeSeries commands of a real cairn-server,
driven through redis-py's r.ts() interface (Debian's python3-redis) and raw
RESP2 / RESP3 for exact error texts and reply shapes: creation options,
adds and duplicates, retention, MADD, INCRBY/DECRBY, TS.DEL, ALTER, range
queries with every aggregator (checked against a naive Python reference
over the points sent), FILTER queries, GROUPBY/REDUCE, compaction rules,
MULTI/EXEC and pipelines, DEL/RENAME/FLUSHALL of series, ACL key checks,
bad input (nothing partially applied), and persistence across a restart
and a kill -9.

Each test uses keys and label values of its own, so the tests share one
server and do not depend on each other.
"""
import math
import random
import socket
import threading
import time

import redis

from server_util import Server, run_tests

SRV = None

E_NOKEY = "TSDB: the key does not exist"
E_WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"
E_BLOCKED = ("TSDB: Error at upsert, update is not supported when "
             "DUPLICATE_POLICY is set to BLOCK mode")
E_OLD = "TSDB: Timestamp is older than retention"


def client(srv=None, **kw):
    srv = srv or SRV
    return redis.Redis(host="127.0.0.1", port=srv.port, socket_timeout=30,
                       **kw)


def r():
    return client()


def expect_noperm(fn):
    try:
        fn()
    except redis.exceptions.NoPermissionError:
        return
    raise AssertionError("no NOPERM error")


def expect_error(fn, text, exact=True):
    """fn must raise text (redis-py drops the "ERR " of a reply)."""
    if text.startswith("ERR "):
        text = text[4:]
    try:
        fn()
    except redis.ResponseError as e:
        if exact:
            assert str(e) == text, "error %r, expected %r" % (str(e), text)
        else:
            assert text in str(e), "error %r lacks %r" % (str(e), text)
        return
    raise AssertionError("no error, expected %r" % text)


# ---------- a raw RESP2 / RESP3 client ----------

class Simple(str):
    pass


class Err(str):
    pass


class Dbl(float):
    pass


class Map(list):
    """A RESP3 map: a list of (key, value) pairs, in reply order."""

    def get(self, k):
        for kk, v in self:
            if kk == k:
                return v
        raise KeyError(k)


class RSet(list):
    pass


def _read(f):
    line = f.readline()
    if not line:
        raise EOFError("connection closed")
    t, rest = line[:1], line[1:-2]
    if t == b"+":
        return Simple(rest.decode())
    if t == b"-":
        return Err(rest.decode())
    if t == b":":
        return int(rest)
    if t == b",":
        return Dbl(float(rest))
    if t == b"_":
        return None
    if t == b"#":
        return rest == b"t"
    if t in (b"$", b"="):
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data[4:] if t == b"=" else data
    if t in (b"*", b"~", b">"):
        n = int(rest)
        if n < 0:
            return None
        items = [_read(f) for _ in range(n)]
        return RSet(items) if t == b"~" else items
    if t == b"%":
        n = int(rest)
        return Map((_read(f), _read(f)) for _ in range(n))
    raise AssertionError("bad reply line %r" % line)


class Raw:
    """One connection speaking RESP2, or RESP3 after HELLO 3."""

    def __init__(self, proto=2, srv=None):
        self.s = socket.create_connection(("127.0.0.1", (srv or SRV).port))
        self.s.settimeout(30)
        self.f = self.s.makefile("rb")
        if proto == 3:
            hello = self.cmd("HELLO", "3")
            assert isinstance(hello, Map), hello

    def send(self, *args):
        enc = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        self.s.sendall(b"*%d\r\n" % len(enc) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in enc))

    def read(self):
        return _read(self.f)

    def cmd(self, *args):
        self.send(*args)
        return self.read()

    def close(self):
        self.f.close()
        self.s.close()


def raw(*args, proto=2):
    c = Raw(proto)
    try:
        return c.cmd(*args)
    finally:
        c.close()


# ---------- a reference for aggregations ----------

def ref_agg(name, vals):
    n = len(vals)
    if name == "avg":
        return sum(vals) / n
    if name == "sum":
        return sum(vals)
    if name == "min":
        return min(vals)
    if name == "max":
        return max(vals)
    if name == "range":
        return max(vals) - min(vals)
    if name == "count":
        return float(n)
    if name == "first":
        return vals[0]
    if name == "last":
        return vals[-1]
    mean = sum(vals) / n
    ss = sum((v - mean) ** 2 for v in vals)
    if name == "var.p":
        return ss / n
    if name == "var.s":
        return ss / (n - 1) if n > 1 else 0.0
    if name == "std.p":
        return math.sqrt(ss / n)
    if name == "std.s":
        return math.sqrt(ss / (n - 1)) if n > 1 else 0.0
    raise ValueError(name)


def ref_range(points, agg=None, bucket=None, align=0, bt="start", lo=None,
              hi=None):
    """points: [(ts, v)] in time order. The reply TS.RANGE gives."""
    pts = [(t, v) for t, v in points
           if (lo is None or t >= lo) and (hi is None or t <= hi)]
    if agg is None:
        return pts
    buckets = {}
    for t, v in pts:
        start = t - ((t - align) % bucket)
        buckets.setdefault(start, []).append(v)
    out = []
    for start in sorted(buckets):
        ts = start + {"start": 0, "end": bucket, "mid": bucket // 2}[bt]
        out.append((ts, ref_agg(agg, buckets[start])))
    return out


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def same_points(got, want, what=""):
    assert len(got) == len(want), "%s: %d points, want %d\n%r\n%r" % (
        what, len(got), len(want), got[:10], want[:10])
    for (gt, gv), (wt, wv) in zip(got, want):
        assert gt == wt and close(gv, wv), "%s: %r != %r" % (what, (gt, gv),
                                                            (wt, wv))


def random_points(n, t0=1000, step=(1, 400), seed=1):
    rnd = random.Random(seed)
    t, out = t0, []
    for _ in range(n):
        t += rnd.randint(*step)
        out.append((t, round(rnd.uniform(-1000, 1000), rnd.randint(0, 6))))
    return out


def load(c, key, points, **create):
    ts = c.ts()
    ts.create(key, **create)
    p = c.pipeline(transaction=False)
    for i in range(0, len(points), 100):
        args = []
        for t, v in points[i:i + 100]:
            args += [key, t, v]
        p.execute_command("TS.MADD", *args)
    for res in p.execute():
        assert all(isinstance(x, int) for x in res), res


# ---------- tests ----------

def t_create_and_info():
    c = r()
    ts = c.ts()
    assert ts.create("ci:a", retention_msecs=60000, uncompressed=True,
                     chunk_size=128, duplicate_policy="last",
                     labels={"room": "study", "type": "temp"}) is True
    info = ts.info("ci:a")
    assert info.retention_msecs == 60000 and info.chunk_size == 128, vars(info)
    assert info.duplicate_policy == "last", info.duplicate_policy
    assert info.labels == {"room": "study", "type": "temp"}, info.labels
    assert info.total_samples == 0 and info.rules == [] and \
        info.source_key is None, vars(info)
    assert c.type("ci:a") == b"TSDB-TYPE" and c.exists("ci:a") == 1
    expect_error(lambda: ts.create("ci:a"), "TSDB: key already exists")
    c.set("ci:str", "x")
    expect_error(lambda: ts.create("ci:str"), "TSDB: key already exists")
    assert c.get("ci:str") == b"x"
    # ENCODING COMPRESSED, the defaults
    assert raw("TS.CREATE", "ci:b", "ENCODING", "COMPRESSED") == "OK"
    flat = raw("TS.INFO", "ci:b")
    d = dict(zip(flat[::2], flat[1::2]))
    assert d["chunkType"] == "compressed" and d["retentionTime"] == 0, d
    assert d["duplicatePolicy"] == "block" and d["labels"] == [], d
    assert d["sourceKey"] is None and d["rules"] == [], d
    assert d["ignoreMaxTimeDiff"] == 0 and float(d["ignoreMaxValDiff"]) == 0
    assert isinstance(flat[0], Simple) and flat[0] == "totalSamples", flat
    # RESP3: a map, labels a map
    m = raw("TS.INFO", "ci:a", proto=3)
    assert isinstance(m, Map), m
    labels = m.get("labels")
    assert isinstance(labels, Map) and \
        sorted(labels) == [(b"room", b"study"), (b"type", b"temp")], labels
    assert isinstance(m.get("rules"), Map) and m.get("sourceKey") is None
    assert isinstance(m.get("ignoreMaxValDiff"), Dbl)
    expect_error(lambda: ts.info("ci:nope"), E_NOKEY)
    expect_error(lambda: ts.info("ci:str"), E_WRONGTYPE)


def t_add_range_get():
    c = r()
    ts = c.ts()
    pts = random_points(300, seed=2)
    ts.create("ar:a", labels={"t": "ar"})
    for t, v in pts:
        assert ts.add("ar:a", t, v) == t
    same_points(ts.range("ar:a", "-", "+"), pts, "range")
    same_points(ts.revrange("ar:a", "-", "+"), pts[::-1], "revrange")
    lo, hi = pts[50][0], pts[120][0]
    same_points(ts.range("ar:a", lo, hi), pts[50:121], "subrange")
    same_points(ts.range("ar:a", lo + 1, hi - 1), pts[51:120], "open ends")
    same_points(ts.range("ar:a", "-", "+", count=7), pts[:7], "count")
    same_points(ts.revrange("ar:a", "-", "+", count=7), pts[::-1][:7],
                "revcount")
    picks = [pts[3][0], pts[9][0], pts[9][0], 5]
    same_points(ts.range("ar:a", "-", "+", filter_by_ts=picks),
                [pts[3], pts[9]], "filter_by_ts")
    want = [(t, v) for t, v in pts if -100 <= v <= 250]
    same_points(ts.range("ar:a", "-", "+", filter_by_min_value=-100,
                         filter_by_max_value=250), want, "filter_by_value")
    assert ts.get("ar:a") == (pts[-1][0], pts[-1][1])
    assert ts.range("ar:a", pts[-1][0] + 1, "+") == []
    # "*": the server's clock
    before = int(time.time() * 1000)
    t = ts.add("ar:now", "*", 1.5)
    assert before - 5 <= t <= int(time.time() * 1000) + 5, t
    # TS.ADD creates a missing series with its options
    assert ts.add("ar:new", 100, 2.25, retention_msecs=5000,
                  labels={"t": "ar", "k": "new"}) == 100
    info = ts.info("ar:new")
    assert info.retention_msecs == 5000 and info.labels == {"t": "ar",
                                                            "k": "new"}
    assert info.total_samples == 1 and info.first_time_stamp == 100
    ts.create("ar:empty")
    assert ts.get("ar:empty") is None
    assert raw("TS.GET", "ar:empty") == []
    assert ts.range("ar:empty", "-", "+") == []
    expect_error(lambda: ts.get("ar:missing"), E_NOKEY)
    expect_error(lambda: ts.range("ar:missing", "-", "+"), E_NOKEY)
    # values: the exact double comes back
    ts.create("ar:v")
    for i, v in enumerate([0.1, -0.0, 1e300, -2.5e-300, 123456789.125, 3]):
        ts.add("ar:v", i + 1, v)
    got = [v for _, v in ts.range("ar:v", "-", "+")]
    assert got == [0.1, 0.0, 1e300, -2.5e-300, 123456789.125, 3.0], got
    rows = raw("TS.RANGE", "ar:v", "-", "+")
    assert isinstance(rows[0][1], Simple) and rows[0][1] == "0.1", rows


def t_aggregations():
    c = r()
    ts = c.ts()
    pts = random_points(600, seed=3, step=(1, 300))
    load(c, "ag:a", pts)
    aggs = ["avg", "sum", "min", "max", "range", "count", "first", "last",
            "std.p", "std.s", "var.p", "var.s"]
    for bucket in (1000, 7777):
        for agg in aggs:
            want = ref_range(pts, agg, bucket)
            same_points(ts.range("ag:a", "-", "+", aggregation_type=agg,
                                 bucket_size_msec=bucket), want,
                        "%s/%d" % (agg, bucket))
            same_points(ts.revrange("ag:a", "-", "+", aggregation_type=agg,
                                    bucket_size_msec=bucket), want[::-1],
                        "rev %s/%d" % (agg, bucket))
    # any case
    same_points(ts.range("ag:a", "-", "+", aggregation_type="AVG",
                         bucket_size_msec=5000), ref_range(pts, "avg", 5000))
    # ALIGN: a timestamp, and start (the query's from)
    lo = pts[10][0]
    same_points(ts.range("ag:a", "-", "+", aggregation_type="sum",
                         bucket_size_msec=3000, align=777),
                ref_range(pts, "sum", 3000, align=777), "align 777")
    same_points(ts.range("ag:a", lo, "+", aggregation_type="max",
                         bucket_size_msec=3000, align="start"),
                ref_range(pts, "max", 3000, align=lo, lo=lo), "align start")
    hi = pts[-10][0]
    same_points(ts.range("ag:a", "-", hi, aggregation_type="min",
                         bucket_size_msec=3000, align="end"),
                ref_range(pts, "min", 3000, align=hi, hi=hi), "align end")
    # BUCKETTIMESTAMP
    for bt, word in (("end", "+"), ("mid", "~"), ("start", "-")):
        got = raw("TS.RANGE", "ag:a", "-", "+", "AGGREGATION", "count", 4000,
                  "BUCKETTIMESTAMP", word)
        want = ref_range(pts, "count", 4000, bt=bt)
        same_points([(t, float(v)) for t, v in got], want, "bt " + bt)
    # COUNT limits buckets
    same_points(ts.range("ag:a", "-", "+", count=3, aggregation_type="last",
                         bucket_size_msec=2000),
                ref_range(pts, "last", 2000)[:3], "count buckets")
    # an aligned sub-range
    lo, hi = 20000, 59999
    same_points(ts.range("ag:a", lo, hi, aggregation_type="avg",
                         bucket_size_msec=10000),
                ref_range(pts, "avg", 10000, lo=lo, hi=hi), "sub-range")
    # EMPTY: count and sum of an empty bucket are 0, and no bucket is missing
    sparse = [(1000, 1.0), (1500, 2.0), (9000, 4.0)]
    load(c, "ag:sparse", sparse)
    for agg, want in (("count", [(0, 2), (2000, 0), (4000, 0), (6000, 0),
                                 (8000, 1)]),
                      ("sum", [(0, 3), (2000, 0), (4000, 0), (6000, 0),
                               (8000, 4)])):
        got = raw("TS.RANGE", "ag:sparse", "-", "+", "AGGREGATION", agg,
                  2000, "EMPTY")
        same_points([(t, float(v)) for t, v in got],
                    [(t, float(v)) for t, v in want], "empty " + agg)
    got = raw("TS.RANGE", "ag:sparse", "-", "+", "AGGREGATION", "sum", 2000)
    assert len(got) == 2, got
    # twa answers one value per non-empty bucket
    got = raw("TS.RANGE", "ag:a", "-", "+", "AGGREGATION", "twa", 10000)
    assert len(got) == len(ref_range(pts, "count", 10000)), len(got)


def t_duplicates():
    c = r()
    ts = c.ts()
    ts.create("dp:block")
    ts.add("dp:block", 10, 1)
    expect_error(lambda: ts.add("dp:block", 10, 2), E_BLOCKED)
    assert ts.range("dp:block", "-", "+") == [(10, 1.0)]
    for pol, want in (("last", 5.0), ("first", 1.0), ("min", 1.0),
                      ("max", 5.0), ("sum", 6.0)):
        ts.create("dp:" + pol, duplicate_policy=pol)
        ts.add("dp:" + pol, 10, 1)
        assert ts.add("dp:" + pol, 10, 5) == 10
        assert ts.range("dp:" + pol, "-", "+") == [(10, want)], pol
        # ON_DUPLICATE overrides the series' policy for one add
        ts.create("dp:on:" + pol)
        ts.add("dp:on:" + pol, 10, 1)
        assert ts.add("dp:on:" + pol, 10, 5, duplicate_policy=pol) == 10
        assert ts.range("dp:on:" + pol, "-", "+") == [(10, want)], pol
    # an add in the past (not a duplicate) is fine
    ts.add("dp:block", 5, 7)
    assert ts.range("dp:block", "-", "+") == [(5, 7.0), (10, 1.0)]


def t_retention():
    c = r()
    ts = c.ts()
    ts.create("rt:a", retention_msecs=1000)
    ts.add("rt:a", 10000, 1)
    expect_error(lambda: ts.add("rt:a", 8999, 2), E_OLD)
    assert ts.add("rt:a", 9500, 3) == 9500
    assert ts.range("rt:a", "-", "+") == [(9500, 3.0), (10000, 1.0)]
    res = c.execute_command("TS.MADD", "rt:a", 100, 1, "rt:a", 10001, 4)
    assert isinstance(res[0], redis.ResponseError) and str(res[0]) == E_OLD
    assert res[1] == 10001
    # points that fall out of the window are not read back
    ts.add("rt:a", 20000, 5)
    assert ts.range("rt:a", "-", "+") == [(20000, 5.0)]


def t_madd_and_pipeline():
    c = r()
    ts = c.ts()
    ts.create("ma:a")
    ts.create("ma:b")
    c.set("ma:str", "x")
    res = ts.madd([("ma:a", 1, 1.5), ("ma:b", 2, 2.5), ("ma:nope", 3, 3),
                   ("ma:a", "x", 1), ("ma:a", 4, "v"), ("ma:str", 5, 5),
                   ("ma:a", -1, 1), ("ma:b", 6, 6)])
    assert res[:3] == [1, 2, res[2]] and isinstance(res[2],
                                                    redis.ResponseError)
    errs = [str(e) for e in res[2:7]]
    assert errs == [E_NOKEY, "TSDB: invalid timestamp", "TSDB: invalid value",
                    E_WRONGTYPE,
                    "TSDB: invalid timestamp, must be a nonnegative integer"], \
        errs
    assert res[7] == 6
    assert ts.range("ma:a", "-", "+") == [(1, 1.5)]
    assert ts.range("ma:b", "-", "+") == [(2, 2.5), (6, 6.0)]
    assert c.exists("ma:nope") == 0
    expect_error(lambda: c.execute_command("TS.MADD", "ma:a", 1),
                 "ERR wrong number of arguments for 'ts.madd' command")
    expect_error(lambda: c.execute_command("TS.MADD", "ma:a", 1, 2, "ma:b"),
                 "ERR wrong number of arguments for 'ts.madd' command")
    # pipelined MADDs (one batch): replies in order, every point there
    keys = ["ma:p%d" % i for i in range(3)]
    for k in keys:
        ts.create(k)
    want = {k: [] for k in keys}
    p = c.pipeline(transaction=False)
    t = 0
    for _ in range(200):
        args = []
        for _ in range(5):
            t += 1
            k = keys[t % 3]
            args += [k, t, t * 0.5]
            want[k].append((t, t * 0.5))
        p.execute_command("TS.MADD", *args)
    p.execute_command("TS.ADD", "ma:p0", 3, 0)  # a duplicate: an error
    res = p.execute(raise_on_error=False)
    assert all(isinstance(x, list) and len(x) == 5 and
               all(isinstance(y, int) for y in x) for x in res[:200]), res[:3]
    assert isinstance(res[200], redis.ResponseError) and \
        str(res[200]) == E_BLOCKED
    for k in keys:
        same_points(ts.range(k, "-", "+"), want[k], k)


def t_incrby_decrby():
    c = r()
    ts = c.ts()
    assert ts.incrby("ic:a", 5, timestamp=1000) == 1000  # creates it
    assert ts.incrby("ic:a", 2.5, timestamp=1000) == 1000  # same ts
    assert ts.incrby("ic:a", 1, timestamp=2000) == 2000
    assert ts.decrby("ic:a", 10, timestamp=3000) == 3000
    assert ts.range("ic:a", "-", "+") == [(1000, 7.5), (2000, 8.5),
                                          (3000, -1.5)]
    expect_error(lambda: ts.incrby("ic:a", 1, timestamp=10),
                 "TSDB: timestamp must be equal to or higher than the maximum "
                 "existing timestamp")
    expect_error(lambda: c.execute_command("TS.INCRBY", "ic:a", "abc"),
                 "TSDB: invalid increase/decrease value")
    expect_error(lambda: c.execute_command("TS.INCRBY", "ic:a", 1,
                                           "TIMESTAMP", "x"),
                 "TSDB: invalid timestamp")
    assert ts.range("ic:a", "-", "+")[-1] == (3000, -1.5)
    # no TIMESTAMP: the server's clock
    before = int(time.time() * 1000)
    t = ts.incrby("ic:b", 3, labels={"t": "ic"})
    assert before - 5 <= t <= int(time.time() * 1000) + 5
    assert ts.get("ic:b") == (t, 3.0)
    assert ts.info("ic:b").labels == {"t": "ic"}
    c.set("ic:str", "1")
    expect_error(lambda: ts.incrby("ic:str", 1), E_WRONGTYPE)


def t_del_range():
    c = r()
    ts = c.ts()
    pts = [(t, float(t)) for t in range(10, 200, 10)]
    load(c, "dl:a", pts)
    assert ts.delete("dl:a", 50, 100) == 6
    same_points(ts.range("dl:a", "-", "+"),
                [p for p in pts if not 50 <= p[0] <= 100])
    assert ts.delete("dl:a", 51, 99) == 0
    assert raw("TS.DEL", "dl:a", "-", 20) == 2
    assert raw("TS.DEL", "dl:a", 180, "+") == 2
    assert [t for t, _ in ts.range("dl:a", "-", "+")] == \
        [30, 40, 110, 120, 130, 140, 150, 160, 170]
    expect_error(lambda: ts.delete("dl:nope", 1, 2), E_NOKEY)
    expect_error(lambda: c.execute_command("TS.DEL", "dl:a", "x", 5),
                 "TSDB: wrong fromTimestamp")
    expect_error(lambda: c.execute_command("TS.DEL", "dl:a", 1, "y"),
                 "TSDB: wrong toTimestamp")


def t_alter():
    c = r()
    ts = c.ts()
    ts.create("al:a", labels={"t": "al", "v": "1"})
    assert ts.alter("al:a", retention_msecs=9000, duplicate_policy="max",
                    labels={"t": "al", "v": "2"}) is True
    info = ts.info("al:a")
    assert info.retention_msecs == 9000 and info.duplicate_policy == "max"
    assert info.labels == {"t": "al", "v": "2"}
    assert ts.queryindex(["t=al", "v=2"]) == ["al:a"]
    assert ts.queryindex(["t=al", "v=1"]) == []
    assert raw("TS.ALTER", "al:a", "CHUNK_SIZE", 256, "LABELS") == "OK"
    info = ts.info("al:a")
    assert info.chunk_size == 256 and info.labels == {}
    assert info.retention_msecs == 9000  # what is not set stays
    expect_error(lambda: ts.alter("al:nope", retention_msecs=1), E_NOKEY)


def t_filters_mget_mrange():
    c = r()
    ts = c.ts()
    series = {
        "fl:1": {"f": "x", "room": "a", "kind": "t"},
        "fl:2": {"f": "x", "room": "b", "kind": "t"},
        "fl:3": {"f": "x", "room": "a", "kind": "h"},
        "fl:4": {"f": "x", "kind": "h"},
    }
    for k, labels in series.items():
        ts.create(k, labels=labels)
    data = {}
    for i, k in enumerate(sorted(series)):
        data[k] = [(t, float(t * (i + 1))) for t in range(100, 1100, 100)]
        for t, v in data[k]:
            ts.add(k, t, v)

    def match(labels, f):
        if "!=(" in f:
            n, vals = f.split("!=(")
            return labels.get(n) not in vals[:-1].split(",")
        if "=(" in f:
            n, vals = f.split("=(")
            return labels.get(n) in vals[:-1].split(",")
        if "!=" in f:
            n, v = f.split("!=")
            return n in labels if v == "" else labels.get(n) != v
        n, v = f.split("=")
        return n not in labels if v == "" else labels.get(n) == v

    for filters in (["f=x"], ["f=x", "room=a"], ["f=x", "room!=a"],
                    ["f=x", "room="], ["f=x", "room!="],
                    ["room=(a,b)"], ["f=x", "room!=(a)"],
                    ["kind=h", "room=a"], ["f=y"]):
        want = sorted(k for k, l in series.items()
                      if all(match(l, f) for f in filters))
        got = ts.queryindex(filters)
        assert sorted(got) == want, (filters, got, want)
    # MGET
    got = ts.mget(["f=x", "kind=h"])
    assert got == [{"fl:3": [{}, 1000, 3000.0]}, {"fl:4": [{}, 1000, 4000.0]}], got
    got = ts.mget(["f=x", "kind=t"], with_labels=True)
    assert got[0] == {"fl:1": [series["fl:1"], 1000, 1000.0]}, got
    rows = raw("TS.MGET", "SELECTED_LABELS", "room", "nope", "FILTER",
               "f=x", "kind=h")
    assert rows[0] == [b"fl:3", [[b"room", b"a"], [b"nope", None]],
                       [1000, "3000"]], rows
    assert rows[1][1] == [[b"room", None], [b"nope", None]], rows
    # MRANGE / MREVRANGE
    got = ts.mrange("-", "+", ["f=x", "room=a"])
    assert got == [{"fl:1": [{}, data["fl:1"]]}, {"fl:3": [{}, data["fl:3"]]}]
    got = ts.mrange(200, 400, ["f=x", "room=b"], with_labels=True)
    assert got == [{"fl:2": [series["fl:2"], data["fl:2"][1:4]]}], got
    got = ts.mrevrange("-", "+", ["f=x", "kind=h"], count=2,
                       aggregation_type="sum", bucket_size_msec=500)
    want3 = ref_range(data["fl:3"], "sum", 500)[::-1][:2]
    want4 = ref_range(data["fl:4"], "sum", 500)[::-1][:2]
    assert got == [{"fl:3": [{}, want3]}, {"fl:4": [{}, want4]}], got
    got = ts.mrange("-", "+", ["f=x", "kind=h"], select_labels=["room"])
    assert got[0]["fl:3"][0] == {"room": "a"}, got
    assert got[1]["fl:4"][0] == {"room": None}, got
    # errors
    expect_error(lambda: ts.queryindex(["room!=a"]),
                 "TSDB: please provide at least one matcher")
    expect_error(lambda: ts.mrange("-", "+", ["room="]),
                 "TSDB: please provide at least one matcher")
    expect_error(lambda: ts.mget(["kind!=(h)"]),
                 "TSDB: please provide at least one matcher")
    expect_error(lambda: ts.queryindex(["nonsense"]),
                 "TSDB: failed parsing labels")
    expect_error(lambda: c.execute_command("TS.MRANGE", "-", "+"),
                 "ERR wrong number of arguments for 'ts.mrange' command")
    expect_error(lambda: c.execute_command("TS.MRANGE", "-", "+", "COUNT",
                                           1, "WITHLABELS"),
                 "TSDB: missing FILTER argument")
    expect_error(lambda: c.execute_command("TS.MRANGE", "-", "+", "FILTER"),
                 "TSDB: missing labels for filter argument")
    expect_error(lambda: c.execute_command(
        "TS.MRANGE", "-", "+", "WITHLABELS", "SELECTED_LABELS", "a", "FILTER",
        "f=x"), "TSDB: cannot accept WITHLABELS and SELECT_LABELS together")
    expect_error(lambda: c.execute_command("TS.MGET", "f=x"),
                 "ERR wrong number of arguments for 'ts.mget' command")


def t_groupby_reduce():
    c = r()
    ts = c.ts()
    rnd = random.Random(7)
    groups = {"gb:1": "a", "gb:2": "a", "gb:3": "b", "gb:4": "a", "gb:5": "b"}
    data = {}
    for k, g in groups.items():
        ts.create(k, labels={"gbt": "1", "grp": g})
        pts = sorted({(rnd.randrange(0, 40) * 10,
                       round(rnd.uniform(-50, 50), 2)) for _ in range(30)})
        dedup = {}
        for t, v in pts:
            dedup.setdefault(t, v)
        data[k] = sorted(dedup.items())
        p = c.pipeline(transaction=False)
        for t, v in data[k]:
            p.execute_command("TS.ADD", k, t, v)
        p.execute()
    ts.create("gb:nogroup", labels={"gbt": "1"})  # no grp label: left out
    ts.add("gb:nogroup", 10, 1000)
    reducers = ["sum", "min", "max", "avg", "range", "count", "std.p",
                "std.s", "var.p", "var.s"]
    for red in reducers:
        got = ts.mrange("-", "+", ["gbt=1"], groupby="grp", reduce=red,
                        with_labels=True)
        names = [list(x)[0] for x in got]
        assert names == ["grp=a", "grp=b"], names
        for entry in got:
            name, (labels, points) = list(entry.items())[0]
            g = name.split("=")[1]
            members = sorted(k for k, gg in groups.items() if gg == g)
            assert labels == {"grp": g, "__reducer__": red,
                              "__source__": ",".join(members)}, labels
            by_ts = {}
            for k in members:
                for t, v in data[k]:
                    by_ts.setdefault(t, []).append(v)
            want = [(t, ref_agg(red, by_ts[t])) for t in sorted(by_ts)]
            same_points(points, want, "reduce %s %s" % (red, g))
    # MREVRANGE with COUNT: the newest reduced points
    got = ts.mrevrange("-", "+", ["gbt=1"], groupby="grp", reduce="max",
                       count=3)
    by_ts = {}
    for k in ("gb:3", "gb:5"):
        for t, v in data[k]:
            by_ts[t] = max(by_ts.get(t, -1e9), v)
    want = [(t, by_ts[t]) for t in sorted(by_ts, reverse=True)[:3]]
    same_points(got[1]["grp=b"][1], want, "mrevrange count")
    assert got[1]["grp=b"][0] == {}
    expect_error(lambda: c.execute_command("TS.MRANGE", "-", "+", "FILTER",
                                           "gbt=1", "GROUPBY", "grp",
                                           "REDUCE", "first"),
                 "TSDB: Invalid reducer type")
    expect_error(lambda: c.execute_command("TS.MRANGE", "-", "+", "GROUPBY",
                                           "grp", "REDUCE", "max", "FILTER",
                                           "gbt=1"),
                 "TSDB: GROUPBY should always come after filter")
    expect_error(lambda: c.execute_command("TS.MRANGE", "-", "+", "FILTER",
                                           "gbt=1", "GROUPBY", "grp"),
                 "ERR wrong number of arguments for 'ts.mrange' command")


def t_resp3_shapes():
    c = r()
    ts = c.ts()
    ts.create("r3:a", labels={"r3": "1", "n": "a"})
    ts.add("r3:a", 10, 1.5)
    ts.add("r3:a", 20, 2)
    ts.create("r3:b", labels={"r3": "1", "n": "b"})
    x = Raw(3)
    try:
        assert x.cmd("TS.RANGE", "r3:a", "-", "+") == [[10, 1.5], [20, 2.0]]
        rows = x.cmd("TS.RANGE", "r3:a", "-", "+")
        assert isinstance(rows[0][1], Dbl), rows
        assert x.cmd("TS.GET", "r3:a") == [20, 2.0]
        assert x.cmd("TS.GET", "r3:b") == []
        q = x.cmd("TS.QUERYINDEX", "r3=1")
        assert isinstance(q, RSet) and sorted(q) == [b"r3:a", b"r3:b"], q
        m = x.cmd("TS.MGET", "WITHLABELS", "FILTER", "r3=1")
        assert isinstance(m, Map) and len(m) == 2, m
        assert m.get(b"r3:a") == [Map([(b"n", b"a"), (b"r3", b"1")]),
                                  [20, 2.0]], m
        assert m.get(b"r3:b")[1] == [], m
        m = x.cmd("TS.MRANGE", "-", "+", "AGGREGATION", "max", 100,
                  "FILTER", "r3=1")
        assert isinstance(m, Map), m
        labels, meta, samples = m.get(b"r3:a")
        assert labels == Map() and meta == Map([(b"aggregators", [b"max"])])
        assert samples == [[0, 2.0]], samples
        m = x.cmd("TS.MRANGE", "-", "+", "WITHLABELS", "FILTER", "r3=1",
                  "GROUPBY", "r3", "REDUCE", "sum")
        labels, reducers, sources, samples = m.get(b"r3=1")
        assert labels == Map([(b"r3", b"1")]), labels
        assert reducers == Map([(b"reducers", [b"sum"])]), reducers
        assert sources == Map([(b"sources", [b"r3:a", b"r3:b"])]), sources
        assert samples == [[10, 1.5], [20, 2.0]], samples
        info = x.cmd("TS.INFO", "r3:a")
        assert info.get("totalSamples") == 2 and info.get("lastTimestamp") == 20
    finally:
        x.close()


def t_rules():
    c = r()
    ts = c.ts()
    ts.create("ru:src", labels={"t": "ru"})
    ts.create("ru:avg")
    ts.create("ru:max")
    assert ts.createrule("ru:src", "ru:avg", "avg", 10000) is True
    assert raw("TS.CREATERULE", "ru:src", "ru:max", "AGGREGATION", "max",
               10000, 5000) == "OK"
    rnd = random.Random(11)
    pts, t = [], 1000
    while t < 62000:
        pts.append((t, round(rnd.uniform(0, 100), 3)))
        t += rnd.randint(100, 3000)
    for tt, v in pts:
        ts.add("ru:src", tt, v)
    newest = pts[-1][0]
    open_avg = newest - newest % 10000
    want = [b for b in ref_range(pts, "avg", 10000) if b[0] < open_avg]
    same_points(ts.range("ru:avg", "-", "+"), want, "avg rollup")
    open_max = newest - (newest - 5000) % 10000
    want = [b for b in ref_range(pts, "max", 10000, align=5000)
            if b[0] < open_max]
    same_points(ts.range("ru:max", "-", "+"), want, "max rollup")
    # LATEST adds the bucket still open
    latest = ref_range(pts, "avg", 10000)[-1]
    got = raw("TS.GET", "ru:avg", "LATEST")
    assert got[0] == latest[0] and close(float(got[1]), latest[1]), got
    got = raw("TS.RANGE", "ru:avg", "-", "+", "LATEST")
    same_points([(a, float(b)) for a, b in got], ref_range(pts, "avg", 10000),
                "latest range")
    info = ts.info("ru:src")
    assert sorted(info.rules) == [[b"ru:avg", 10000, b"AVG", 0],
                                  [b"ru:max", 10000, b"MAX", 5000]], info.rules
    assert ts.info("ru:avg").source_key == b"ru:src"
    # errors
    expect_error(lambda: ts.createrule("ru:src", "ru:src", "avg", 10),
                 "TSDB: the source key and destination key should be different")
    expect_error(lambda: ts.createrule("ru:src", "ru:nope", "avg", 10),
                 E_NOKEY)
    expect_error(lambda: ts.createrule("ru:src", "ru:avg", "foo", 10),
                 "TSDB: Unknown aggregation type")
    expect_error(lambda: ts.createrule("ru:src", "ru:avg", "avg", 0),
                 "TSDB: bucketDuration must be greater than zero")
    expect_error(lambda: c.execute_command("TS.CREATERULE", "ru:src",
                                           "ru:avg", "AGGREGATION", "avg"),
                 "ERR wrong number of arguments for 'ts.createrule' command")
    ts.create("ru:other")
    expect_error(lambda: ts.createrule("ru:other", "ru:avg", "avg", 10),
                 "TSDB: the destination key already has a src rule")
    assert ts.deleterule("ru:src", "ru:max") is True
    expect_error(lambda: ts.deleterule("ru:src", "ru:max"),
                 "TSDB: compaction rule does not exist")
    expect_error(lambda: ts.deleterule("ru:src", "ru:gone"), E_NOKEY)
    n_max = len(ts.range("ru:max", "-", "+"))
    ts.add("ru:src", newest + 50000, 1)
    assert len(ts.range("ru:max", "-", "+")) == n_max  # no longer fed


def t_multi_exec_atomic():
    c = r()
    ts = c.ts()
    ts.create("mx:a")
    ts.create("mx:b")
    p = c.pipeline(transaction=True)
    p.execute_command("TS.ADD", "mx:a", 1, 1)
    p.execute_command("TS.ADD", "mx:b", 1, 1)
    p.execute_command("TS.RANGE", "mx:a", "-", "+")
    assert p.execute() == [1, 1, [(1, 1.0)]]
    # a queued command with the wrong arity: EXECABORT, nothing applied
    x = Raw()
    try:
        assert x.cmd("MULTI") == "OK"
        assert x.cmd("TS.ADD", "mx:a", 2, 2) == "QUEUED"
        assert isinstance(x.cmd("TS.ADD", "mx:b"), Err)
        assert x.cmd("EXEC").startswith("EXECABORT")
    finally:
        x.close()
    assert ts.range("mx:a", "-", "+") == [(1, 1.0)]
    # writers add to both series in one EXEC; readers, in one EXEC too,
    # never see one without the other
    stop = threading.Event()
    errors = []

    def writer(base):
        w = r()
        for i in range(60):
            t = base + i
            p = w.pipeline(transaction=True)
            p.execute_command("TS.ADD", "mx:a", t, i)
            p.execute_command("TS.ADD", "mx:b", t, i)
            try:
                assert p.execute() == [t, t]
            except Exception as e:  # report it in the main thread
                errors.append(e)
                return

    def reader():
        rd = r()
        while not stop.is_set():
            p = rd.pipeline(transaction=True)
            p.execute_command("TS.RANGE", "mx:a", "-", "+")
            p.execute_command("TS.RANGE", "mx:b", "-", "+")
            a, b = p.execute()
            if a != b:
                errors.append(AssertionError("torn: %d vs %d" % (len(a),
                                                                   len(b))))
                return

    ws = [threading.Thread(target=writer, args=(1000 * (i + 1),))
          for i in range(3)]
    rd = threading.Thread(target=reader)
    rd.start()
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    stop.set()
    rd.join()
    assert not errors, errors[0]
    assert len(ts.range("mx:a", "-", "+")) == 181
    assert ts.range("mx:a", "-", "+") == ts.range("mx:b", "-", "+")
    # inside EXEC a read sees the transaction's own earlier writes
    p = c.pipeline(transaction=True)
    p.execute_command("TS.CREATE", "mx:c")
    p.execute_command("TS.ADD", "mx:c", 5, 5)
    p.execute_command("TS.GET", "mx:c")
    assert p.execute() == [True, 5, (5, 5.0)]
    # a multi-series read WITHLABELS after a write to one of its series in
    # the same EXEC reads the labels through the transaction (it used to
    # wait for the series' lock, held by the transaction itself: a hang)
    ts.create("mx:l1", labels={"grp": "mxl"})
    ts.create("mx:l2", labels={"grp": "mxl"})
    x = Raw()  # 30 s socket timeout: a hang fails the test
    try:
        assert x.cmd("MULTI") == "OK"
        assert x.cmd("TS.ADD", "mx:l1", 7, 7) == "QUEUED"
        assert x.cmd("TS.MGET", "WITHLABELS", "FILTER", "grp=mxl") == "QUEUED"
        assert x.cmd("TS.MRANGE", "-", "+", "WITHLABELS", "FILTER",
                     "grp=mxl") == "QUEUED"
        got = x.cmd("EXEC")
        assert got[0] == 7, got
        assert got[1] == [[b"mx:l1", [[b"grp", b"mxl"]], [7, "7"]],
                          [b"mx:l2", [[b"grp", b"mxl"]], []]], got
        assert got[2] == [[b"mx:l1", [[b"grp", b"mxl"]], [[7, "7"]]],
                          [b"mx:l2", [[b"grp", b"mxl"]], []]], got
    finally:
        x.close()


def t_del_rename_flush_keys():
    c = r()
    ts = c.ts()
    ts.create("dk:a", labels={"dk": "1"})
    for t in range(1, 11):
        ts.add("dk:a", t, t)
    assert c.delete("dk:a") == 1
    assert c.exists("dk:a") == 0
    expect_error(lambda: ts.get("dk:a"), E_NOKEY)
    expect_error(lambda: ts.range("dk:a", "-", "+"), E_NOKEY)
    res = ts.madd([("dk:a", 20, 1)])
    assert str(res[0]) == E_NOKEY, res
    assert ts.queryindex(["dk=1"]) == []
    ts.add("dk:a", 30, 3)  # a new series: the old points are gone
    assert ts.range("dk:a", "-", "+") == [(30, 3.0)]
    assert ts.info("dk:a").labels == {}
    assert c.unlink("dk:a") == 1 and c.exists("dk:a") == 0
    # RENAME moves points, labels and the index entry
    ts.create("dk:r1", labels={"dk": "2"})
    ts.add("dk:r1", 1, 1)
    ts.add("dk:r1", 2, 2)
    assert c.rename("dk:r1", "dk:r2") is True
    expect_error(lambda: ts.get("dk:r1"), E_NOKEY)
    assert ts.range("dk:r2", "-", "+") == [(1, 1.0), (2, 2.0)]
    assert ts.queryindex(["dk=2"]) == ["dk:r2"]
    assert c.type("dk:r2") == b"TSDB-TYPE"
    c.set("dk:s", "str")
    assert c.rename("dk:r2", "dk:s") is True  # the string goes
    assert c.type("dk:s") == b"TSDB-TYPE" and c.exists("dk:r2") == 0
    assert ts.range("dk:s", "-", "+") == [(1, 1.0), (2, 2.0)]
    c.set("dk:t", "x")
    assert c.renamenx("dk:s", "dk:t") is False
    assert c.get("dk:t") == b"x" and ts.get("dk:s") == (2, 2.0)
    assert c.rename("dk:t", "dk:s") is True  # a string over a series
    assert c.get("dk:s") == b"x" and ts.queryindex(["dk=2"]) == []
    # COPY, EXPIRE and the string commands refuse a series
    ts.create("dk:c")
    expect_error(lambda: c.copy("dk:c", "dk:c2"),
                 "ERR COPY is not supported for time series keys")
    for fn in (lambda: c.expire("dk:c", 10), lambda: c.pexpire("dk:c", 10),
               lambda: c.expireat("dk:c", 2000000000),
               lambda: c.pexpireat("dk:c", 2000000000000)):
        expect_error(fn, "ERR time series keys do not expire (use RETENTION)")
    assert c.ttl("dk:c") == -1 and c.persist("dk:c") is False
    expect_error(lambda: c.get("dk:c"), E_WRONGTYPE)
    expect_error(lambda: c.getex("dk:c", ex=10), E_WRONGTYPE)
    expect_error(lambda: c.incr("dk:c"), E_WRONGTYPE)
    # SCAN ... TYPE TSDB-TYPE
    found = set(c.scan_iter(match="dk:*", _type="TSDB-TYPE"))
    assert found == {b"dk:c"}, found
    assert set(c.scan_iter(match="dk:*", _type="string")) == {b"dk:s"}


def t_flushall():
    s = Server().start()
    try:
        c = client(s)
        ts = c.ts()
        ts.create("fa:a", labels={"fa": "1"})
        ts.add("fa:a", 1, 1)
        c.set("fa:s", "x")
        assert c.flushall() is True
        assert c.dbsize() == 0 and ts.queryindex(["fa=1"]) == []
        expect_error(lambda: ts.get("fa:a"), E_NOKEY)
        ts.create("fa:a")
        assert ts.range("fa:a", "-", "+") == [] and ts.info("fa:a").labels == {}
        ts.add("fa:a", 5, 5)
        assert c.flushdb() is True and c.dbsize() == 0
    finally:
        s.stop()
        s.cleanup()


def t_bad_input():
    c = r()
    ts = c.ts()
    ts.create("bi:a", retention_msecs=1000, labels={"bi": "1"})
    ts.add("bi:a", 5000, 1)
    before = ts.range("bi:a", "-", "+")
    info0 = vars(ts.info("bi:a"))

    def unchanged():
        assert ts.range("bi:a", "-", "+") == before
        assert vars(ts.info("bi:a")) == info0

    cases = [
        (("TS.ADD", "bi:a", "abc", 1), "TSDB: invalid timestamp"),
        (("TS.ADD", "bi:a", "1.5", 1), "TSDB: invalid timestamp"),
        (("TS.ADD", "bi:a", -5, 1),
         "TSDB: invalid timestamp, must be a nonnegative integer"),
        (("TS.ADD", "bi:a", 6000, "abc"), "TSDB: invalid value"),
        (("TS.ADD", "bi:a", 6000, "nan"), "TSDB: invalid value"),
        (("TS.ADD", "bi:a", 6000, "inf"), "TSDB: invalid value"),
        (("TS.ADD", "bi:a", 6000, "1e999"), "TSDB: invalid value"),
        (("TS.ADD", "bi:a", 6000, ""), "TSDB: invalid value"),
        (("TS.ADD", "bi:a", 3000, 1), E_OLD),
        (("TS.ADD", "bi:a", 6000, 1, "RETENTION", -1),
         "TSDB: Couldn't parse RETENTION"),
        (("TS.ADD", "bi:a", 6000, 1, "ON_DUPLICATE", "never"),
         "TSDB: Unknown DUPLICATE_POLICY"),
        (("TS.ADD", "bi:a", 6000, 1, "LABELS", "x"),
         "TSDB: Couldn't parse LABELS"),
        (("TS.ADD", "bi:a", 6000, 1, "BOGUS"), "ERR syntax error"),
        (("TS.CREATE", "bi:new", "CHUNK_SIZE", 100),
         "TSDB: CHUNK_SIZE value must be a multiple of 8 in the range "
         "[64 .. 1048576]"),
        (("TS.CREATE", "bi:new", "CHUNK_SIZE", "x"),
         "TSDB: Couldn't parse CHUNK_SIZE"),
        (("TS.CREATE", "bi:new", "ENCODING", "ZIP"),
         "TSDB: unknown ENCODING parameter"),
        (("TS.CREATE", "bi:new", "DUPLICATE_POLICY"),
         "TSDB: Couldn't parse DUPLICATE_POLICY"),
        (("TS.CREATE", "bi:new", "LABELS", "a", "b(c)"),
         "TSDB: Couldn't parse LABELS"),
        (("TS.CREATE", "bi:new", "LABELS", "a", "1", "a", "2"),
         "TSDB: Couldn't parse LABELS"),
        (("TS.CREATE", "bi:new", "LABELS", "", "1"),
         "TSDB: Couldn't parse LABELS"),
        (("TS.CREATE", "bi:new", "RETENTION", "x"),
         "TSDB: Couldn't parse RETENTION"),
        (("TS.ALTER", "bi:a", "RETENTION", "x"),
         "TSDB: Couldn't parse RETENTION"),
        (("TS.ALTER", "bi:a", "LABELS", "bi"), "TSDB: Couldn't parse LABELS"),
        (("TS.RANGE", "bi:a", "x", "+"), "TSDB: wrong fromTimestamp"),
        (("TS.RANGE", "bi:a", "-", "x"), "TSDB: wrong toTimestamp"),
        (("TS.RANGE", "bi:a", "-", "+", "AGGREGATION", "foo", 10),
         "TSDB: Unknown aggregation type"),
        (("TS.RANGE", "bi:a", "-", "+", "AGGREGATION", "avg", 0),
         "TSDB: bucketDuration must be greater than zero"),
        (("TS.RANGE", "bi:a", "-", "+", "AGGREGATION", "avg", -10),
         "TSDB: bucketDuration must be greater than zero"),
        (("TS.RANGE", "bi:a", "-", "+", "AGGREGATION", "avg", "x"),
         "TSDB: Couldn't parse AGGREGATION"),
        (("TS.RANGE", "bi:a", "-", "+", "AGGREGATION", "avg"),
         "TSDB: Couldn't parse AGGREGATION"),
        (("TS.RANGE", "bi:a", "-", "+", "COUNT", 0),
         "TSDB: Invalid COUNT value"),
        (("TS.RANGE", "bi:a", "-", "+", "COUNT", "x"),
         "TSDB: Couldn't parse COUNT"),
        (("TS.RANGE", "bi:a", "-", "+", "COUNT"),
         "TSDB: COUNT argument is missing"),
        (("TS.RANGE", "bi:a", "-", "+", "ALIGN", 5),
         "TSDB: ALIGN parameter can only be used with AGGREGATION"),
        (("TS.RANGE", "bi:a", "-", "+", "AGGREGATION", "avg", 10, "ALIGN",
          "start"),
         "TSDB: start alignment can only be used with explicit start "
         "timestamp"),
        (("TS.RANGE", "bi:a", "-", "+", "AGGREGATION", "avg", 10, "ALIGN",
          "x"), "TSDB: unknown ALIGN parameter"),
        (("TS.RANGE", "bi:a", "-", "+", "FILTER_BY_VALUE", 1),
         "TSDB: FILTER_BY_VALUE one or more arguments are missing"),
        (("TS.RANGE", "bi:a", "-", "+", "FILTER_BY_VALUE", "x", 1),
         "TSDB: Couldn't parse MIN"),
        (("TS.RANGE", "bi:a", "-", "+", "FILTER_BY_TS"),
         "TSDB: FILTER_BY_TS one or more arguments are missing"),
        (("TS.RANGE", "bi:a", "-", "+", "AGGREGATION", "avg", 10,
          "BUCKETTIMESTAMP", "x"), "TSDB: unknown BUCKETTIMESTAMP parameter"),
        (("TS.RANGE", "bi:a", "-", "+", "EMPTY"),
         "TSDB: EMPTY flag should be the 3rd or 5th flag after AGGREGATION "
         "flag"),
        (("TS.RANGE", "bi:nope", "-", "+", "AGGREGATION", "foo", 10), E_NOKEY),
        (("TS.GET", "bi:a", "OTHER"), "TSDB: wrong 3rd argument"),
        (("TS.QUERYINDEX", "bi!=1"),
         "TSDB: please provide at least one matcher"),
        (("TS.MGET", "FILTER", "bi!="),
         "TSDB: please provide at least one matcher"),
        (("TS.MRANGE", "-", "+", "FILTER", "bi="),
         "TSDB: please provide at least one matcher"),
        (("TS.ADD", "bi:a"), "ERR wrong number of arguments for 'ts.add' "
                             "command"),
        (("TS.INCRBY", "bi:a", 1, "TIMESTAMP", -3),
         "TSDB: invalid timestamp, must be a nonnegative integer"),
    ]
    for args, text in cases:
        expect_error(lambda: c.execute_command(*args), text)
        unchanged()
    assert c.exists("bi:new") == 0
    # MULTI with a bad TS command queued runs the good ones (Redis's rule)
    p = c.pipeline(transaction=True)
    p.execute_command("TS.ADD", "bi:a", 5500, 2)
    p.execute_command("TS.ADD", "bi:a", "bad", 2)
    res = p.execute(raise_on_error=False)
    assert res[0] == 5500 and isinstance(res[1], redis.ResponseError)
    # wrong types
    c.set("bi:str", "1")
    for args in (("TS.ADD", "bi:str", 1, 1), ("TS.RANGE", "bi:str", "-", "+"),
                 ("TS.GET", "bi:str"), ("TS.INFO", "bi:str"),
                 ("TS.ALTER", "bi:str", "RETENTION", 1),
                 ("TS.DEL", "bi:str", 1, 2),
                 ("TS.CREATERULE", "bi:str", "bi:a", "AGGREGATION", "avg", 1)):
        expect_error(lambda: c.execute_command(*args), E_WRONGTYPE)
    assert c.get("bi:str") == b"1"


def t_acl():
    c = r()
    assert c.acl_setuser("tsuser", enabled=True, nopass=True,
                         keys=["ts:*"], commands=["+@timeseries", "+ping"])
    u = client(username="tsuser", password="x")
    ut = u.ts()
    assert ut.add("ts:1", 1, 1) == 1
    res = ut.madd([("ts:1", 2, 2), ("ts:2", 3, 3)])
    assert res[0] == 2 and str(res[1]) == E_NOKEY, res
    expect_noperm(lambda: ut.madd([("ts:1", 4, 4), ("other:1", 5, 5)]))
    expect_noperm(lambda: ut.add("other:1", 1, 1))
    expect_noperm(lambda: u.set("ts:x", 1))
    ts = c.ts()
    ts.create("ts:3")
    expect_noperm(lambda: ut.createrule("ts:1", "other:2", "avg", 10))
    # the multi-series reads take no key arguments
    assert isinstance(ut.queryindex(["nosuchlabel=1"]), list)
    assert c.acl_setuser("tsuser", enabled=True, nopass=True, keys=["ts:*"],
                         commands=["-@timeseries", "+ping"], reset=True)
    u2 = client(username="tsuser", password="x")
    expect_noperm(lambda: u2.ts().get("ts:1"))
    c.acl_deluser("tsuser")


def t_restart_and_kill9():
    s = Server().start()
    try:
        c = client(s)
        ts = c.ts()
        ts.create("pk:a", retention_msecs=0, labels={"pk": "1"},
                  duplicate_policy="sum")
        ts.create("pk:avg")
        ts.createrule("pk:a", "pk:avg", "avg", 10000)
        pts = random_points(400, seed=5, step=(10, 200))
        for t, v in pts[:200]:
            assert ts.add("pk:a", t, v) == t
        assert s.stop() == 0
        s.start()
        c = client(s)
        ts = c.ts()
        same_points(ts.range("pk:a", "-", "+"), pts[:200], "after restart")
        assert ts.queryindex(["pk=1"]) == ["pk:a"]
        assert ts.info("pk:a").duplicate_policy == "sum"
        p = c.pipeline(transaction=False)
        for t, v in pts[200:]:
            p.execute_command("TS.ADD", "pk:a", t, v)
        assert p.execute() == [t for t, _ in pts[200:]]
        ts.madd([("pk:b", 1, 1)])  # refused: no such key
        ts.add("pk:b", 7, 7)
        s.kill9()
        s.start()
        c = client(s)
        ts = c.ts()
        same_points(ts.range("pk:a", "-", "+"), pts, "after kill -9")
        assert ts.range("pk:b", "-", "+") == [(7, 7.0)]
        newest = pts[-1][0]
        want = [b for b in ref_range(pts, "avg", 10000)
                if b[0] < newest - newest % 10000]
        same_points(ts.range("pk:avg", "-", "+"), want, "rollup after kill")
        assert ts.info("pk:a").rules[0][0] == b"pk:avg"
    finally:
        s.stop()
        s.cleanup()


def t_set_over_series():
    """SET and MSET replace a series as Redis replaces any value: its
    points go with it, and a series made again under the name is empty."""
    c = r()
    ts = c.ts()
    for k in ("so:a", "so:b"):
        ts.create(k, labels={"so": "1"})
        ts.madd([(k, t, t) for t in range(1, 50)])
    assert c.set("so:a", "plain") is True
    assert c.type("so:a") == b"string" and c.get("so:a") == b"plain"
    assert c.mset({"so:b": "x", "so:c": "y"}) is True
    assert c.type("so:b") == b"string"
    assert ts.queryindex(["so=1"]) == []
    expect_error(lambda: ts.add("so:a", 1, 1),
                 "WRONGTYPE Operation against a key holding the wrong kind "
                 "of value")
    c.delete("so:a")
    ts.add("so:a", 100, 1)
    assert ts.range("so:a", "-", "+") == [(100, 1.0)]
    # pipelined (a batch): the same
    p = c.pipeline(transaction=False)
    p.set("so:a", "again")
    p.type("so:a")
    assert p.execute() == [True, b"string"]
    # no orphaned chunk or log keys were left: DBSIZE counts what is there
    assert c.exists("so:a", "so:b", "so:c") == 3


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
