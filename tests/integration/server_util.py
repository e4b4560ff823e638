"""server_util.py — start and stop a real cairn-server for integration tests.

Each test gets a fresh data directory and a free loopback port. The server's
log goes to DIR/server.log, printed when a test fails.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("CAIRN_BUILD_DIR",
                       os.path.join(os.path.dirname(__file__), "..", "..",
                                    "build"))
SERVER = os.path.join(BUILD, "cairn-server")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, *args, datadir=None, config=None):
        """args: extra --name value flags. config: a config file path, passed
        as the first argument (the flags, --port and --dir included, override
        it)."""
        self.own_dir = datadir is None
        self.dir = datadir or tempfile.mkdtemp(prefix="cairn-it-")
        self.port = free_port()
        self.args = list(args)
        self.config = config
        self.proc = None

    def start(self, timeout=10.0, wait_ports=()):
        """Start and wait until the port (and every port of wait_ports, e.g.
        a TLS or metrics port) accepts connections."""
        self.log = open(os.path.join(self.dir, "server.log"), "ab")
        first = [self.config] if self.config else []
        self.proc = subprocess.Popen(
            [SERVER] + first + ["--port", str(self.port), "--dir",
                                os.path.join(self.dir, "data")] + self.args,
            stdout=self.log, stderr=self.log)
        deadline = time.time() + timeout
        waiting = [self.port] + list(wait_ports)
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("cairn-server exited with %d:\n%s" %
                                   (self.proc.returncode, self.logtext()))
            try:
                socket.create_connection(("127.0.0.1", waiting[0]),
                                         0.2).close()
                waiting.pop(0)
                if not waiting:
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("cairn-server did not start:\n" + self.logtext())

    def logtext(self):
        try:
            with open(os.path.join(self.dir, "server.log"), "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=60.0):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("cairn-server did not stop on %s" % sig)
        rc = self.proc.returncode if self.proc else 0
        self.proc = None
        self.log.close()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def cleanup(self):
        if self.proc:
            self.kill9()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


class RespSocket:
    """The byte side of a RESP client on one socket: commands go out as
    arrays of bulk strings; replies are read back a line or a counted
    string at a time (the subclasses parse them)."""

    def __init__(self, port, timeout=10.0, sock=None):
        self.s = sock or socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""

    @staticmethod
    def encode(args):
        enc = [a if isinstance(a, bytes) else str(a).encode() for a in args]
        return (b"*%d\r\n" % len(enc) +
                b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in enc))

    def send(self, *cmds):
        self.s.sendall(b"".join(self.encode(c) for c in cmds))

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise EOFError("connection closed by the server")
        self.buf += d

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _bytes(self, n):
        """n bytes and the CRLF after them (dropped)."""
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data


def run_tests(tests):
    """Run (name, fn) pairs; print a line each; exit 1 on any failure."""
    failed = 0
    for name, fn in tests:
        t0 = time.time()
        try:
            fn()
            print("ok   %-40s %.2fs" % (name, time.time() - t0), flush=True)
        except Exception as e:  # report and go on with the others
            failed += 1
            import traceback
            traceback.print_exc()
            print("FAIL %-40s %s" % (name, e), flush=True)
    print("%d tests, %d failed" % (len(tests), failed))
    sys.exit(1 if failed else 0)
