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
"""
import json
import os
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
NCONN = 4


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


def record():
    """Run the corpus against a real redis-server, write the expected file."""
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
        out = []
        run(port, lambda no, text, rep: out.append(
            {"line": text, "reply": rep.decode("latin-1")}))
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
    sys.exit(check())
