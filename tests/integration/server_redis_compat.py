"""server_redis_compat.py — cairn-server's replies, byte for byte, against
Redis 7's recorded ones.

redis_compat/corpus.txt lists commands, one per line (shell-like quoting:
shlex), sent in order over raw RESP; redis_compat/expected.jsonl holds the
reply a real redis-server gave to each, recorded with `--record` (make
redis-compat-record, which installs redis-server through scripts/setup.sh
--bench). The test sends the same lines to a fresh cairn-server and fails on
the first line of every reply that differs, printing both.

A corpus line may start with, in this order:
  @N      send on connection N (0-3; 0 by default): WATCH races, AUTH
  [sort]  sort every array of plain strings in the reply (KEYS, SCAN: the
          order is the server's own)
  [type]  compare only the reply's type byte (a value that depends on the
          clock or on ids)
Lines starting with # are comments. A command the two servers are meant to
answer differently (Cairn's database 0 only, its HELLO fields) is not in
the corpus: other tests cover Cairn's own answer.

The expected file names the corpus line of each reply, so an edited corpus
with a stale recording fails with a message saying to record again.

INFO: redis_compat/info_fields.txt lists the fields of a real redis-server's
`INFO everything`, by section (recorded with the replies; `--record-info`
records it alone). Cairn's INFO must have each of them in the same section,
the sections in Redis's order, except the fields INFO_ABSENT names with the
reason they are left out. Values differ by nature (times, ids, memory); the
integration tests (server_admin.py) check Cairn's.
"""
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from server_util import RespSocket, Server, free_port  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "redis_compat")
CORPUS = os.path.join(HERE, "corpus.txt")
EXPECTED = os.path.join(HERE, "expected.jsonl")
INFO_FIELDS = os.path.join(HERE, "info_fields.txt")
NCONN = 4

# Fields of Redis 7's INFO that Cairn leaves out, and why. Every other
# field of the recording must be in Cairn's INFO, in its section.
INFO_ABSENT = {
    # Scripting and functions: Cairn has no EVAL or FUNCTION.
    "used_memory_lua", "used_memory_vm_eval", "used_memory_lua_human",
    "used_memory_scripts_eval", "number_of_cached_scripts",
    "number_of_functions", "number_of_libraries", "used_memory_vm_functions",
    "used_memory_vm_total", "used_memory_vm_total_human",
    "used_memory_functions", "used_memory_scripts",
    "used_memory_scripts_human",
    # jemalloc's own figures: Cairn uses the C library's malloc
    # (used_memory and mem_fragmentation_* are there).
    "allocator_allocated", "allocator_active", "allocator_resident",
    "allocator_frag_ratio", "allocator_frag_bytes", "allocator_rss_ratio",
    "allocator_rss_bytes", "rss_overhead_ratio", "rss_overhead_bytes",
    # Memory accounting Cairn does not split (the data lives in memtables,
    # caches and files: memtable_bytes, block_cache_bytes, row_cache_bytes).
    "used_memory_overhead", "used_memory_startup", "used_memory_dataset",
    "used_memory_dataset_perc", "mem_not_counted_for_evict",
    # Replication (role:master, no replicas), forks and copy-on-write
    # (Cairn never forks: a save is a memtable flush, the log needs no
    # rewrite).
    "mem_replication_backlog", "mem_total_replication_buffers",
    "mem_clients_slaves", "mem_cluster_links", "mem_aof_buffer",
    "current_cow_peak", "current_cow_size", "current_cow_size_age",
    "current_fork_perc", "current_save_keys_processed",
    "current_save_keys_total", "rdb_last_cow_size",
    "rdb_last_load_keys_expired", "rdb_last_load_keys_loaded",
    "aof_rewrites_consecutive_failures", "aof_last_cow_size",
    "module_fork_in_progress", "module_fork_last_cow_size",
    "total_net_repl_input_bytes", "total_net_repl_output_bytes",
    "instantaneous_input_repl_kbps", "instantaneous_output_repl_kbps",
    "sync_full", "sync_partial_ok", "sync_partial_err", "latest_fork_usec",
    "total_forks", "migrate_cached_sockets", "slave_expires_tracked_keys",
    # Features Cairn does not have: active defragmentation, lazy freeing,
    # client eviction, client-side caching (tracking), sharded pub/sub,
    # I/O threads, DUMP/RESTORE, reply buffer resizing; the expiry cycle's
    # sampling figures (Cairn sweeps an index of expiry times).
    "active_defrag_running", "lazyfree_pending_objects", "lazyfreed_objects",
    "active_defrag_hits", "active_defrag_misses", "active_defrag_key_hits",
    "active_defrag_key_misses", "total_active_defrag_time",
    "current_active_defrag_time", "evicted_clients",
    "total_eviction_exceeded_time", "current_eviction_exceeded_time",
    "tracking_total_keys", "tracking_total_items", "tracking_total_prefixes",
    "pubsubshard_channels", "io_threaded_reads_processed",
    "io_threaded_writes_processed", "dump_payload_sanitizations",
    "reply_buffer_shrinks", "reply_buffer_expands", "expired_stale_perc",
    "expired_time_cap_reached_count", "expire_cycle_cpu_milliseconds",
    "unexpected_error_replies",
}


def info_sections(text):
    """INFO's text as [(section, [field, ...])], in order. Per-command,
    per-error and per-database lines (they depend on what ran) are left
    out."""
    out = []
    for line in text.split("\r\n"):
        if line.startswith("# "):
            out.append((line[2:], []))
        elif ":" in line and out:
            f = line.split(":", 1)[0]
            if not re.match(r"(cmdstat_|errorstat_|latency_percentiles_usec_"
                            r"|db\d+$)", f):
                out[-1][1].append(f)
    return out


def info_everything(port):
    c = Conn(port)
    try:
        return c.cmd(["INFO", "everything"])[2].decode()
    finally:
        c.close()


def record_info(port, ver):
    with open(INFO_FIELDS, "w", encoding="utf-8") as f:
        f.write("# The fields of INFO everything from %s, by section "
                "(server_redis_compat.py --record-info)\n" % ver)
        for sec, fields in info_sections(info_everything(port)):
            f.write("[%s]\n" % sec)
            for x in fields:
                f.write(x + "\n")
    print("recorded INFO's fields from %s into %s" % (ver, INFO_FIELDS))


def check_info(port):
    """Differences between Cairn's INFO sections and fields and the
    recorded ones (less INFO_ABSENT)."""
    want, sec = [], None
    with open(INFO_FIELDS, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("#") or not line:
                continue
            if line.startswith("["):
                want.append((line[1:-1], []))
            else:
                want[-1][1].append(line)
    have = dict(info_sections(info_everything(port)))
    diffs = []
    recorded = {x for _, fields in want for x in fields}
    for x in sorted(INFO_ABSENT - recorded):
        diffs.append("INFO_ABSENT names %s, which Redis's INFO does not have"
                     % x)
    order = [s for s in have]
    pos = [order.index(s) for s, _ in want if s in order]
    if pos != sorted(pos):
        diffs.append("INFO sections in another order than Redis's: %r" % order)
    for sec, fields in want:
        if sec not in have:
            diffs.append("INFO has no %s section" % sec)
            continue
        for x in fields:
            if x not in INFO_ABSENT and x not in have[sec]:
                diffs.append("INFO %s has no %s" % (sec, x))
    return diffs


class Conn(RespSocket):
    """One raw RESP connection: send a command, read one whole reply."""

    def read(self):
        """One reply as a tree: (type byte, head line, children or body)."""
        line = self._line()
        t = line[:1]
        if t in (b"$", b"=", b"!"):
            n = int(line[1:])
            if n < 0:
                return (t, line, None)
            return (t, line, self._bytes(n))
        if t in (b"*", b"~", b">", b"%", b"|"):
            n = int(line[1:])
            if n < 0:
                return (t, line, None)
            if t in (b"%", b"|"):
                n *= 2
            return (t, line, [self.read() for _ in range(n)])
        return (t, line, None)

    def cmd(self, args):
        self.send(args)
        return self.read()

    def close(self):
        self.s.close()


def encode(tree):
    """A reply tree back to its bytes."""
    t, line, rest = tree
    if isinstance(rest, list):
        return line + b"\r\n" + b"".join(encode(c) for c in rest)
    if rest is not None:
        return line + b"\r\n" + rest + b"\r\n"
    return line + b"\r\n"


def sort_strings(tree):
    t, line, rest = tree
    if not isinstance(rest, list):
        return tree
    kids = [sort_strings(c) for c in rest]
    if t in (b"*", b"~") and all(c[0] == b"$" for c in kids):
        kids.sort(key=encode)
    return (t, line, kids)


def parse_line(raw):
    """(connection, normalizer, args) of a corpus line, or None."""
    line = raw.strip()
    if not line or line.startswith("#"):
        return None
    conn, norm = 0, None
    if line.startswith("@"):
        head, line = line.split(None, 1)
        conn = int(head[1:])
        assert 0 <= conn < NCONN, raw
    for n in ("sort", "type"):
        if line.startswith("[%s]" % n):
            norm, line = n, line[len(n) + 2:].strip()
    args = [a.encode("utf-8").decode("unicode_escape").encode("latin-1")
            for a in shlex.split(line)]
    return conn, norm, args


def normalize(tree, norm):
    if norm == "sort":
        return encode(sort_strings(tree))
    if norm == "type":
        return tree[0]
    return encode(tree)


def corpus():
    with open(CORPUS, encoding="utf-8") as f:
        for no, raw in enumerate(f, 1):
            p = parse_line(raw)
            if p:
                yield no, raw.strip(), p


def run(port, on_reply):
    conns = [Conn(port) for _ in range(NCONN)]
    try:
        for no, text, (conn, norm, args) in corpus():
            on_reply(no, text, normalize(conns[conn].cmd(args), norm))
    finally:
        for c in conns:
            c.close()


def record(info_only=False):
    """Run the corpus against a real redis-server, write the expected file
    and INFO's fields (info_only: the fields alone)."""
    ver = subprocess.run(["redis-server", "--version"], capture_output=True,
                         text=True, check=True).stdout.strip()
    d = tempfile.mkdtemp(prefix="redis-compat-")
    port = free_port()
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind",
                          "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", d], stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        if info_only:
            record_info(port, ver)
            return
        out = []
        run(port, lambda no, text, rep: out.append(
            {"line": text, "reply": rep.decode("latin-1")}))
        record_info(port, ver)
    finally:
        p.terminate()
        p.wait()
    with open(EXPECTED, "w", encoding="utf-8") as f:
        f.write(json.dumps({"recorded_from": ver}) + "\n")
        for e in out:
            f.write(json.dumps(e) + "\n")
    print("recorded %d replies from %s into %s" % (len(out), ver, EXPECTED))


def check():
    with open(EXPECTED, encoding="utf-8") as f:
        lines = [json.loads(x) for x in f]
    source, expected = lines[0]["recorded_from"], lines[1:]
    srv = Server().start()
    diffs, n = [], [0]

    def compare(no, text, rep):
        i = n[0]
        n[0] += 1
        if i >= len(expected) or expected[i]["line"] != text:
            raise RuntimeError("%s is stale at corpus line %d (%r): record "
                               "it again (make redis-compat-record)" %
                               (EXPECTED, no, text))
        want = expected[i]["reply"].encode("latin-1")
        if rep != want:
            diffs.append("corpus line %d: %s\n  redis: %r\n  cairn: %r" %
                         (no, text, want[:400], rep[:400]))

    try:
        run(srv.port, compare)
        diffs += check_info(srv.port)
        if n[0] != len(expected):
            raise RuntimeError("%s has %d replies, the corpus %d lines: "
                               "record it again" % (EXPECTED, len(expected),
                                                    n[0]))
        rc = srv.stop()
        if rc != 0:
            raise RuntimeError("cairn-server exited with %d" % rc)
    except Exception:
        print(srv.logtext())
        raise
    finally:
        srv.cleanup()
    for d in diffs:
        print(d)
    print("%d replies compared with %s's, %d differ" % (n[0], source,
                                                        len(diffs)))
    return 1 if diffs else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        record()
        sys.exit(0)
    if sys.argv[1:] == ["--record-info"]:
        record(info_only=True)
        sys.exit(0)
    sys.exit(check())
