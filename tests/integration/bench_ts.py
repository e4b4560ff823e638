#!/usr/bin/env python3
"""bench_ts.py — smoke test of `cairn-bench ts` (codec, engine and server
parts).

Usage: bench_ts.py PATH-TO-cairn-bench

Runs `cairn-bench ts --quick --json` (several seconds; the cairn-server next
to cairn-bench must be built) with TMPDIR pointing to a fresh directory, and
checks: exit 0, one JSON object, every chunk decoded to its points (no
mismatch), the uncompressed encoding at 16 bytes a point plus headers, and
the compressed figures under bounds on the generated sets (counters: live
under 1.6 bytes a point, sealed no larger than live; random walk: live under
8.5). When the machine-metrics set is found (it is skipped otherwise), its
two targets must hold: live at most 1.37 bytes a point, sealed no larger
than zstd -19 of the raw points. The engine and server parts are measured:
the eight server ingest cases (sync always and none, 1 and 100 series, 1
and 4 connections) with their points/s, the four queries with their reply
shapes and latencies, the server/embedded ratios where the engine part has
a matching figure; afterwards TMPDIR is empty and no cairn-server runs with
a directory in it. Also: a bad option exits 2, a --tsdata that does not
exist 1, a --server-bin that does not exist 1, and a stand-in server (this
script, --fake-server) answering errors or wrong timestamps makes the run
exit 1 with the reason on stderr and leaves nothing behind.
Prints "ok - NAME" / "FAIL - NAME" per check.
"""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

failures = 0


def check(name, cond, detail=""):
    global failures
    if cond:
        print(f"ok - {name}")
    else:
        failures += 1
        print(f"FAIL - {name} {detail}")


def fake_server():
    """A stand-in cairn-server (run by cairn-bench through --server-bin):
    answers PING and INFO, then per FAKE_MODE: "error" answers every other command
    with an error; "badts" accepts TS.CREATE and answers TS.MADD with an
    array of the right length holding wrong timestamps."""
    port = int(sys.argv[sys.argv.index("--port") + 1])
    mode = os.environ.get("FAKE_MODE", "error")
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    while True:
        conn, _ = ls.accept()
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline()
                if not line:
                    break
                args = []
                for _ in range(int(line[1:])):
                    n = int(f.readline()[1:])
                    args.append(f.read(n + 2)[:n])
                cmd = args[0].upper()
                if cmd == b"PING":
                    out = b"+PONG\r\n"
                elif cmd == b"INFO":
                    info = b"# Server\r\nprocess_id:%d\r\n" % os.getpid()
                    out = b"$%d\r\n%s\r\n" % (len(info), info)
                elif mode == "error":
                    out = b"-ERR a stand-in server\r\n"
                elif cmd == b"TS.CREATE":
                    out = b"+OK\r\n"
                elif cmd == b"TS.MADD":
                    k = (len(args) - 1) // 3
                    out = b"*%d\r\n" % k + b":7\r\n" * k
                else:
                    out = b"-ERR unexpected\r\n"
                conn.sendall(out)
        except (OSError, ValueError):
            pass
        conn.close()


def servers_in(d):
    """The processes whose command line mentions directory d."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if d.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def run_in_tmp(args, env_extra=None, timeout=300):
    """Run args with TMPDIR a fresh directory; returns (process, leftover
    entries in it, processes still using it)."""
    tmp = tempfile.mkdtemp(prefix="cairn-bench-ts-test-")
    try:
        env = dict(os.environ, TMPDIR=tmp, **(env_extra or {}))
        p = subprocess.run(args, capture_output=True, text=True,
                           timeout=timeout, env=env)
        return p, os.listdir(tmp), servers_in(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_server(r):
    s = r.get("server", {})
    check("server part measured", s.get("measured") is True, str(s)[:500])
    if s.get("measured") is not True:
        return
    ing = s["ingest"]
    check("eight ingest cases",
          sorted((i["sync"], i["series"], i["connections"]) for i in ing) ==
          sorted((y, n, c) for y in ("always", "none") for n in (1, 100)
                 for c in (1, 4)), str(ing)[:500])
    for i in ing:
        name = f"ingest sync {i['sync']}, {i['series']} series, " \
               f"{i['connections']} conn"
        check(f"{name}: points/s > 0",
              (i["points_per_s"] or 0) > 0 and i["points"] >= 1000,
              str(i))
        matched = i["connections"] == 1 and (i["sync"], i["series"]) in {
            ("always", 1), ("none", 1), ("none", 100)}
        ratio = i["server_to_embedded"]
        check(f"{name}: server/embedded {'given' if matched else 'absent'}",
              (ratio is not None and ratio > 0) if matched else ratio is None,
              str(i))
    q = s["queries"]
    n = q["series"]
    check("queries: points per series a day of 10 s",
          q["points_per_series"] == 8640, str(q))
    check("queries: at least 21 each", q["queries"] >= 21, str(q))
    shapes = {"range_raw": (1, 8640), "range_avg_1m": (1, 1440),
              "mrange_raw": (n, 8640), "mrange_avg_1m": (n, 1440)}
    for k, (series, points) in shapes.items():
        x = q.get(k, {})
        check(f"{k}: reply of {series} x {points}",
              (x.get("reply_series"), x.get("reply_points_per_series")) ==
              (series, points), str(x))
        med, p99 = x.get("median_ms") or 0, x.get("p99_ms") or 0
        check(f"{k}: 0 < median <= p99", 0 < med <= p99, str(x))
        if k.startswith("range_"):
            check(f"{k}: server/embedded given",
                  (x.get("server_to_embedded") or 0) > 0, str(x))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--fake-server":
        fake_server()
        return 0
    if len(sys.argv) != 2:
        print("usage: bench_ts.py PATH-TO-cairn-bench", file=sys.stderr)
        return 2
    bench = sys.argv[1]
    p, left, procs = run_in_tmp([bench, "ts", "--quick", "--json"])
    check("no data directory left in TMPDIR", left == [], str(left))
    check("no server left running", procs == [], str(procs))
    check("ts --quick --json exits 0", p.returncode == 0,
          f"(exit {p.returncode}; stderr: {p.stderr[-2000:]})")
    try:
        r = json.loads(p.stdout)
    except ValueError as e:
        check("one JSON object on stdout", False, f"({e}: {p.stdout[:500]})")
        return 1
    check("benchmark is ts", r.get("benchmark") == "ts")
    sets = {s["name"]: s for s in r["codec"]["sets"]}
    check("three sets", set(sets) ==
          {"machine-metrics", "random-walk", "counters"}, str(list(sets)))
    for name, s in sets.items():
        if "skipped" in s:
            check(f"{name} skipped only when it is the real set",
                  name == "machine-metrics", s["skipped"])
            continue
        check(f"{name}: no mismatch", s["mismatches"] == 0)
        unc = s["uncompressed"]["bytes_per_point"]
        check(f"{name}: uncompressed 16 B/pt + headers", 16 < unc < 16.5,
              str(unc))
        check(f"{name}: live below uncompressed",
              s["live"]["bytes_per_point"] < unc)
    c = sets.get("counters", {})
    if "live" in c:
        live, sealed = (c["live"]["bytes_per_point"],
                        c["sealed"]["bytes_per_point"])
        check("counters: live < 1.6 B/pt", live < 1.6, str(live))
        check("counters: sealed <= live", sealed <= live, f"{sealed} {live}")
        check("counters: integer chunks",
              c["live"]["encodings"]["int"] == c["live"]["chunks"])
    w = sets.get("random-walk", {})
    if "live" in w:
        live = w["live"]["bytes_per_point"]
        check("random-walk: live < 8.5 B/pt", live < 8.5, str(live))
    t = r["codec"]["targets"]
    if "live" in sets.get("machine-metrics", {}):
        check("machine-metrics: live <= 1.37 B/pt", t["live_pass"] is True,
              str(t))
        check("machine-metrics: sealed <= zstd -19", t["sealed_pass"] is True,
              str(t))
    else:
        check("targets unknown without the set", t["live_pass"] is None)
    check("parts: codec, engine, server",
          r.get("parts") == ["codec", "engine", "server"], str(r.get("parts")))
    check("engine part measured", r.get("engine", {}).get("measured") is True)
    check_server(r)

    p = subprocess.run([bench, "ts", "--chunk-size", "1"],
                       capture_output=True, text=True, timeout=60)
    check("bad --chunk-size exits 2", p.returncode == 2, str(p.returncode))
    p = subprocess.run([bench, "ts", "--quick", "--sets", "machine-metrics",
                        "--tsdata", "/nonexistent/cairn-tsdata.csv.zst"],
                       capture_output=True, text=True, timeout=60)
    check("missing --tsdata exits 1", p.returncode == 1, str(p.returncode))
    p = subprocess.run([bench, "ts", "--quick", "--parts", "server",
                        "--server-bin", "/nonexistent/cairn-server"],
                       capture_output=True, text=True, timeout=60)
    check("missing --server-bin exits 1", p.returncode == 1,
          str(p.returncode))

    # A stand-in server: this script, made executable in a scratch dir.
    scratch = tempfile.mkdtemp(prefix="cairn-bench-ts-fake-")
    try:
        fake = os.path.join(scratch, "fake-server")
        with open(fake, "w") as f:
            f.write(f"#!/bin/sh\nexec {sys.executable} "
                    f"{os.path.abspath(__file__)} --fake-server \"$@\"\n")
        os.chmod(fake, stat.S_IRWXU)
        for mode, want in (("error", "a stand-in server"),
                           ("badts", "expected the timestamp")):
            p, left, procs = run_in_tmp(
                [bench, "ts", "--quick", "--parts", "server", "--server-bin",
                 fake], {"FAKE_MODE": mode}, timeout=120)
            check(f"stand-in server ({mode}): exits 1", p.returncode == 1,
                  f"(exit {p.returncode}; stderr: {p.stderr[-1000:]})")
            check(f"stand-in server ({mode}): says why", want in p.stderr,
                  p.stderr[-1000:])
            check(f"stand-in server ({mode}): nothing left behind",
                  left == [] and procs == [], f"{left} {procs}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"bench_ts: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
