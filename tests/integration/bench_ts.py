#!/usr/bin/env python3
"""bench_ts.py — smoke test of `cairn-bench ts` (the time-series codec part).

Usage: bench_ts.py PATH-TO-cairn-bench

Runs `cairn-bench ts --quick --json` (a few seconds) and checks: exit 0, one
JSON object, every chunk decoded to its points (no mismatch), the
uncompressed encoding at 16 bytes a point plus headers, and the compressed
figures under bounds on the generated sets (counters: live under 1.6 bytes a
point, sealed no larger than live; random walk: live under 8.5). When the
machine-metrics set is found (it is skipped otherwise), its two targets must
hold: live at most 1.37 bytes a point, sealed no larger than zstd -19 of the
raw points. Also: a bad option exits 2, a --tsdata that does not exist 1.
No state, no files written; prints "ok - NAME" / "FAIL - NAME" per check.
"""
import json
import subprocess
import sys

failures = 0


def check(name, cond, detail=""):
    global failures
    if cond:
        print(f"ok - {name}")
    else:
        failures += 1
        print(f"FAIL - {name} {detail}")


def main():
    if len(sys.argv) != 2:
        print("usage: bench_ts.py PATH-TO-cairn-bench", file=sys.stderr)
        return 2
    bench = sys.argv[1]
    p = subprocess.run([bench, "ts", "--quick", "--json"],
                       capture_output=True, text=True, timeout=300)
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

    p = subprocess.run([bench, "ts", "--chunk-size", "1"],
                       capture_output=True, text=True, timeout=60)
    check("bad --chunk-size exits 2", p.returncode == 2, str(p.returncode))
    p = subprocess.run([bench, "ts", "--quick", "--sets", "machine-metrics",
                        "--tsdata", "/nonexistent/cairn-tsdata.csv.zst"],
                       capture_output=True, text=True, timeout=60)
    check("missing --tsdata exits 1", p.returncode == 1, str(p.returncode))
    print(f"bench_ts: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
