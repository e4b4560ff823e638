#!/usr/bin/python3
"""server_admin.py — drive a real cairn-server's administration features with
redis-py (Debian's python3-redis), redis-cli, redis-benchmark, openssl and raw
sockets: access control (ACL, AUTH, HELLO AUTH, requirepass, users from a
config file), TLS (server and client certificates), the Prometheus endpoint,
CONFIG GET/SET/REWRITE and SLOWLOG, with the replies Redis 7 gives.

Each test starts its own server (server_util.Server) on free ports with a
fresh data directory, and checks the server stops cleanly (exit code 0); on a
failure the server's log is printed. Certificates are made once per run in a
temporary directory with the openssl command line tool.
"""
import contextlib
import hashlib
import os
import random
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import redis

from server_util import SERVER, RespSocket, Server, free_port, run_tests


# ---------------------------------------------------------------- helpers

class Err(str):
    """An error reply (its text, without the leading '-')."""


class Raw(RespSocket):
    """A tiny RESP client on one socket (optionally TLS): commands are sent
    as arrays of bulk strings; replies are parsed exactly: simple strings
    come back as str, bulk strings as bytes, errors as Err, integers as int,
    nulls as None, arrays as lists, RESP3 maps as dicts."""

    def __init__(self, port, tls=None, timeout=10.0, hostname="localhost",
                 sock=None):
        s = sock or socket.create_connection(("127.0.0.1", port), timeout)
        if tls is not None:
            s = tls.wrap_socket(s, server_hostname=hostname)
        super().__init__(port, sock=s)

    def cmd(self, *args):
        self.send(args)
        return self.read()

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return Err(rest.decode())
        if t in (b":", b"("):
            return int(rest)
        if t == b",":
            return float(rest)
        if t == b"#":
            return rest == b"t"
        if t == b"_":
            return None
        if t in (b"$", b"="):
            n = int(rest)
            return None if n < 0 else self._bytes(n)
        if t in (b"*", b"~", b">"):
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        if t == b"%":
            out = {}
            for _ in range(int(rest)):
                k = self.read()
                out[k.decode() if isinstance(k, bytes) else k] = self.read()
            return out
        raise AssertionError("unexpected reply line %r" % line)

    def closed_within(self, timeout):
        """True if the server closes the connection within timeout s (what
        it sends first, e.g. an error or a TLS alert, is added to buf)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.s.settimeout(max(0.01, deadline - time.time()))
            try:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
            except socket.timeout:
                return False
            except (ConnectionError, ssl.SSLError, OSError):
                return True
        return False

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def rclient(port, **kw):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=30, **kw)


def pyerr_is(e, text):
    """redis-py's exception e carries the server's error text (redis-py drops
    the code of the errors it maps to classes: NOPERM, NOAUTH, ...)."""
    return str(e) in (text, text.split(" ", 1)[-1])


def expect_error(fn, text):
    """fn() must raise a redis error whose text is exactly text."""
    try:
        fn()
    except (redis.ResponseError, redis.AuthenticationError) as e:
        assert pyerr_is(e, text), "error %r, expected %r" % (str(e), text)
        return
    raise AssertionError("no error, expected %r" % text)


def eq(got, want, what=""):
    assert got == want, "%s: got %r, expected %r" % (what, got, want)


class Checks:
    """Collects mismatches so one test can report several of them."""

    def __init__(self):
        self.bad = []

    def eq(self, got, want, what):
        if got != want:
            self.bad.append("%s: got %r, expected %r" % (what, got, want))

    def done(self):
        assert not self.bad, "%d mismatch(es):\n  " % len(self.bad) + \
            "\n  ".join(self.bad)


def sha(pw):
    return hashlib.sha256(pw.encode()).hexdigest()


NOPERM_CMD = "NOPERM this user has no permissions to run the '%s' command"
NOPERM_KEY = ("NOPERM this user has no permissions to access one of the keys "
              "used as arguments")
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."
NOAUTH = "NOAUTH Authentication required."
EXECABORT = "EXECABORT Transaction discarded because of previous errors."


@contextlib.contextmanager
def serve(*args, config=None, wait_ports=(), datadir=None):
    """A started server; stopped at the end, which must exit 0. Prints its
    log if the body or the stop fails."""
    wait_for(lambda: os.access(SERVER, os.X_OK), 60,
             "%s to exist (being rebuilt?)" % SERVER)
    s = Server(*args, config=config, datadir=datadir)
    try:
        s.start(wait_ports=wait_ports)
    except Exception:  # the message holds the log
        s.cleanup()
        raise
    failed = True
    try:
        yield s
        failed = False
    finally:
        rc = None
        try:
            rc = s.stop()
        except Exception as e:  # did not stop: reported below
            print("stop failed: %s" % e)
        if failed or rc != 0:
            print("---- server log (%s) ----\n%s\n---- end of log ----" %
                  (s.dir, s.logtext()), flush=True)
        s.cleanup()
        if not failed and rc != 0:
            raise AssertionError("cairn-server exited with %r" % rc)


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out after %.1fs waiting for %s" %
                         (timeout, what))


def connected_clients(port):
    return rclient(port).info("clients")["connected_clients"]


# ---------------------------------------------------------------- 1. ACL

def t_acl_users_and_permissions():
    with serve() as s:
        d = Raw(s.port)
        # The default user: on, nopass, everything.
        eq(d.cmd("ACL", "WHOAMI"), b"default", "whoami")
        eq(d.cmd("ACL", "LIST"), [b"user default on nopass ~* &* +@all"],
           "acl list")
        eq(d.cmd("ACL", "GETUSER", "default"),
           [b"flags", [b"on", b"nopass"], b"passwords", [], b"commands",
            b"+@all", b"keys", b"~*", b"channels", b"&*", b"selectors", []],
           "getuser default")
        eq(d.cmd("ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "+@read",
                 "+set"), "OK", "setuser alice")
        eq(d.cmd("ACL", "SETUSER", "root", "on", ">rootpw", "~*", "&*",
                 "+@all"), "OK", "setuser root")
        alice_line = ("user alice on #%s ~app:* resetchannels -@all +@read "
                      "+set" % sha("pw")).encode()
        eq(d.cmd("ACL", "LIST"),
           [alice_line, b"user default on nopass ~* &* +@all",
            ("user root on #%s ~* &* +@all" % sha("rootpw")).encode()],
           "acl list")
        eq(d.cmd("ACL", "USERS"), [b"alice", b"default", b"root"], "users")
        eq(d.cmd("ACL", "GETUSER", "alice"),
           [b"flags", [b"on"], b"passwords", [sha("pw").encode()],
            b"commands", b"-@all +@read +set", b"keys", b"~app:*",
            b"channels", b"", b"selectors", []], "getuser alice")
        eq(d.cmd("ACL", "GETUSER", "nobody"), None, "getuser nobody")
        # redis-py's parsed form agrees.
        g = rclient(s.port).acl_getuser("alice")
        assert g["enabled"] and g["keys"] == ["~app:*"] and \
            g["categories"] == ["-@all", "+@read"] and \
            g["commands"] == ["+set"], g
        cats = d.cmd("ACL", "CAT")
        eq(cats, [c.encode() for c in (
            "keyspace read write set sortedset list hash string bitmap "
            "hyperloglog geo stream pubsub admin fast slow blocking "
            "dangerous connection transaction scripting timeseries").split()],
           "acl cat")
        read_cmds = d.cmd("ACL", "CAT", "read")
        assert b"get" in read_cmds and b"mget" in read_cmds and \
            b"set" not in read_cmds and b"del" not in read_cmds, read_cmds
        eq(d.cmd("ACL", "CAT", "nosuch"), Err("ERR Unknown category 'nosuch'"),
           "acl cat nosuch")

        # alice: AUTH user pass; her keys and commands only.
        a = Raw(s.port)
        eq(a.cmd("AUTH", "alice", "pw"), "OK", "auth alice")
        eq(a.cmd("SET", "app:x", "1"), "OK", "alice set app:x")
        eq(a.cmd("GET", "app:x"), b"1", "alice get app:x")
        eq(a.cmd("MGET", "app:x", "app:y"), [b"1", None], "alice mget")
        eq(a.cmd("GET", "other"), Err(NOPERM_KEY), "alice get other")
        eq(a.cmd("SET", "other", "1"), Err(NOPERM_KEY), "alice set other")
        eq(a.cmd("MGET", "app:x", "other"), Err(NOPERM_KEY), "alice mget")
        eq(a.cmd("DEL", "app:x"), Err(NOPERM_CMD % "del"), "alice del")
        eq(a.cmd("INCR", "app:n"), Err(NOPERM_CMD % "incr"), "alice incr")
        eq(a.cmd("FLUSHALL"), Err(NOPERM_CMD % "flushall"), "alice flushall")
        eq(d.cmd("GET", "other"), None, "the refused SET wrote nothing")
        # A wrong password: WRONGPASS, and the connection keeps its user.
        eq(a.cmd("AUTH", "alice", "nope"), Err(WRONGPASS), "wrong password")
        eq(a.cmd("AUTH", "nobody", "pw"), Err(WRONGPASS), "unknown user")
        eq(a.cmd("GET", "app:x"), b"1", "still alice after a failed AUTH")
        # The default user has no password: AUTH <password> says so.
        eq(d.cmd("AUTH", "pw"),
           Err("ERR AUTH <password> called without any password configured "
               "for the default user. Are you sure your configuration is "
               "correct?"), "auth without a password")
        # HELLO 3 AUTH: a RESP3 map, and the connection is alice's.
        h = Raw(s.port)
        rep = h.cmd("HELLO", "3", "AUTH", "alice", "pw")
        assert isinstance(rep, dict), rep
        eq(sorted(rep), ["id", "mode", "modules", "proto", "role", "server",
                         "version"], "hello keys")
        eq(rep["proto"], 3, "hello proto")
        eq(h.cmd("GET", "app:x"), b"1", "hello-authed alice")
        eq(h.cmd("GET", "other"), Err(NOPERM_KEY), "hello-authed alice")
        eq(h.cmd("HELLO", "3", "AUTH", "alice", "bad"), Err(WRONGPASS),
           "hello wrong password")
        r = Raw(s.port)
        rep = r.cmd("HELLO", "2", "AUTH", "root", "rootpw")
        eq(dict(zip(rep[::2], rep[1::2]))[b"proto"], 2, "hello 2")
        eq(r.cmd("ACL", "WHOAMI"), b"root", "whoami root")
        # redis-py with username/password.
        ra = rclient(s.port, username="alice", password="pw")
        assert ra.set("app:py", "v") and ra.get("app:py") == b"v"
        expect_error(lambda: ra.get("nope"), NOPERM_KEY)
        expect_error(lambda: rclient(s.port, username="alice",
                                     password="x").get("app:x"), WRONGPASS)
        for c in (d, a, h, r):
            c.close()


def t_redis7_auth_and_subcommand_replies():
    # Replies where Redis 7 is specific:
    # - PING is not a no-auth command (ping.json has no NO_AUTH flag): before
    #   AUTH it gets NOAUTH, and ACL rules apply to it;
    # - NOPERM names a container command's subcommand (c->cmd->fullname):
    #   'acl|whoami', 'config|get';
    # - a subcommand with too few arguments is an arity error naming it.
    ck = Checks()
    with serve("--requirepass", "s3cret") as s:
        u = Raw(s.port)
        ck.eq(u.cmd("PING"), Err(NOAUTH), "PING before AUTH")
        ck.eq(u.cmd("AUTH", "s3cret"), "OK", "auth")
        ck.eq(u.cmd("ACL", "SETUSER", "alice", "on", ">pw", "~app:*",
                    "+@read", "+set"), "OK", "setuser")
        a = Raw(s.port)
        ck.eq(a.cmd("AUTH", "alice", "pw"), "OK", "auth")
        ck.eq(a.cmd("PING"), Err(NOPERM_CMD % "ping"), "alice PING")
        ck.eq(a.cmd("ACL", "WHOAMI"), Err(NOPERM_CMD % "acl|whoami"),
              "alice ACL WHOAMI")
        ck.eq(a.cmd("CONFIG", "GET", "port"), Err(NOPERM_CMD % "config|get"),
              "alice CONFIG GET")
        ck.eq(u.cmd("CONFIG", "SET", "timeout"),
              Err("ERR wrong number of arguments for 'config|set' command"),
              "CONFIG SET with a name only")
        ck.eq(u.cmd("CONFIG", "GET"),
              Err("ERR wrong number of arguments for 'config|get' command"),
              "CONFIG GET without a pattern")
        ck.eq(u.cmd("CONFIG", "SET", "timeout", "5", "timeout", "6"),
              config_set_failed("timeout", "duplicate parameter"),
              "CONFIG SET of one name twice")
        ck.eq(u.cmd("CONFIG", "GET", "timeout"), [b"timeout", b"0"],
              "timeout after the duplicate CONFIG SET")
    ck.done()


def t_acl_deluser_disconnects():
    with serve() as s:
        d = Raw(s.port)
        eq(d.cmd("ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "+@read",
                 "+set"), "OK", "setuser alice")
        eq(d.cmd("ACL", "SETUSER", "bob", "on", ">bpw", "~*", "+@all"), "OK",
           "setuser bob")
        a1 = Raw(s.port)
        eq(a1.cmd("AUTH", "alice", "pw"), "OK", "a1 auth")
        a2 = redis.Connection(host="127.0.0.1", port=s.port,
                              username="alice", password="pw",
                              socket_timeout=10)
        a2.connect()
        a2.send_command("SET", "app:k", "v")
        eq(a2.read_response(), b"OK", "a2 set")
        b = Raw(s.port)
        eq(b.cmd("AUTH", "bob", "bpw"), "OK", "bob auth")
        before = connected_clients(s.port)
        # Changing alice in place: her open connections see it at once.
        eq(d.cmd("ACL", "SETUSER", "alice", "-set"), "OK", "setuser -set")
        eq(a1.cmd("SET", "app:k", "w"), Err(NOPERM_CMD % "set"),
           "alice after -set")
        eq(d.cmd("ACL", "SETUSER", "alice", "+set"), "OK", "setuser +set")
        eq(d.cmd("ACL", "DELUSER", "alice", "nobody"), 1, "deluser")
        # Her connections go (the first without sending anything) ...
        assert a1.closed_within(3), "alice's idle connection stayed open"
        a2.send_command("GET", "app:k")
        try:
            a2.read_response()
            raise AssertionError("alice's connection still answers")
        except redis.ConnectionError:
            pass
        a2.disconnect()
        # ... the others stay.
        eq(b.cmd("GET", "app:k"), b"v", "bob after deluser")
        eq(d.cmd("PING"), "PONG", "default after deluser")
        eq(d.cmd("ACL", "USERS"), [b"bob", b"default"], "users")
        eq(Raw(s.port).cmd("AUTH", "alice", "pw"), Err(WRONGPASS),
           "auth as a deleted user")
        eq(d.cmd("ACL", "DELUSER", "nobody"), 0, "deluser nobody")
        eq(d.cmd("ACL", "DELUSER", "default"),
           Err("ERR The 'default' user cannot be removed"), "deluser default")
        # A new alice is a new user: fresh rules, no old connections.
        eq(d.cmd("ACL", "SETUSER", "alice", "on", ">pw2", "~*", "+get"),
           "OK", "new alice")
        n = Raw(s.port)
        eq(n.cmd("AUTH", "alice", "pw"), Err(WRONGPASS), "old password")
        eq(n.cmd("AUTH", "alice", "pw2"), "OK", "new password")
        eq(n.cmd("GET", "app:k"), b"v", "new alice get")
        eq(n.cmd("SET", "app:k", "x"), Err(NOPERM_CMD % "set"),
           "new alice set")
        wait_for(lambda: connected_clients(s.port) == before - 2 + 1, 5,
                 "the two alice connections to be gone")
        for c in (d, b, n):
            c.close()


def t_acl_bad_setuser_changes_nothing():
    with serve() as s:
        d = Raw(s.port)
        eq(d.cmd("ACL", "SETUSER", "root", "on", ">rootpw", "~*", "+@all"),
           "OK", "setuser root")
        listed = d.cmd("ACL", "LIST")
        eq(d.cmd("ACL", "SETUSER", "root", "-@all", "+nosuchcmd"),
           Err("ERR Error in ACL SETUSER modifier '+nosuchcmd': Unknown "
               "command or category name in ACL"), "unknown command")
        eq(d.cmd("ACL", "SETUSER", "root", "off", "+@nosuchcat"),
           Err("ERR Error in ACL SETUSER modifier '+@nosuchcat': Unknown "
               "command or category name in ACL"), "unknown category")
        eq(d.cmd("ACL", "SETUSER", "root", "resetpass", "bogus"),
           Err("ERR Error in ACL SETUSER modifier 'bogus': Syntax error"),
           "syntax error")
        eq(d.cmd("ACL", "SETUSER", "ghost", "on", ">x", "bogus"),
           Err("ERR Error in ACL SETUSER modifier 'bogus': Syntax error"),
           "bad rule for a new user")
        eq(d.cmd("ACL", "SETUSER", "bad name", "on"),
           Err("ERR Usernames can't contain spaces or null characters"),
           "space in a name")
        eq(d.cmd("ACL", "LIST"), listed, "nothing changed")
        r = Raw(s.port)
        eq(r.cmd("AUTH", "root", "rootpw"), "OK", "root still on")
        eq(r.cmd("SET", "k", "v"), "OK", "root still +@all")
        eq(Raw(s.port).cmd("AUTH", "ghost", "x"), Err(WRONGPASS),
           "ghost not created")


def t_acl_users_from_config_file():
    tmp = tempfile.mkdtemp(prefix="cairn-it-conf-")
    try:
        conf = os.path.join(tmp, "cairn.conf")
        with open(conf, "w") as f:
            f.write("# users made at start\n"
                    "user bob on >bobpw ~b:* +get +set\n"
                    "user eve off >evepw ~* +@all\n")
        with serve(config=conf) as s:
            c = Raw(s.port)
            eq(c.cmd("ACL", "USERS"), [b"bob", b"default", b"eve"], "users")
            eq(c.cmd("ACL", "GETUSER", "bob")[5], b"-@all +get +set",
               "bob's commands")
            b = Raw(s.port)
            eq(b.cmd("AUTH", "bob", "bobpw"), "OK", "auth bob")
            eq(b.cmd("SET", "b:1", "x"), "OK", "bob set")
            eq(b.cmd("GET", "b:1"), b"x", "bob get")
            eq(b.cmd("GET", "a:1"), Err(NOPERM_KEY), "bob other key")
            eq(b.cmd("DEL", "b:1"), Err(NOPERM_CMD % "del"), "bob del")
            eq(Raw(s.port).cmd("AUTH", "eve", "evepw"), Err(WRONGPASS),
               "an 'off' user cannot AUTH")
        # A bad user line: the server refuses to start, saying why.
        with open(conf, "w") as f:
            f.write("user carl on >pw +nosuchcmd\n")
        bad = Server(config=conf)
        try:
            bad.start(timeout=5)
            raise AssertionError("started with a bad user line")
        except RuntimeError as e:
            assert "nosuchcmd" in str(e), str(e)
        finally:
            bad.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def t_acl_multi_and_pipeline():
    with serve() as s:
        d = Raw(s.port)
        eq(d.cmd("ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "+@read",
                 "+set", "+@transaction"), "OK", "setuser")
        a = Raw(s.port)
        eq(a.cmd("AUTH", "alice", "pw"), "OK", "auth")
        eq(a.cmd("MULTI"), "OK", "multi")
        eq(a.cmd("SET", "app:m1", "v"), "QUEUED", "queued set")
        eq(a.cmd("DEL", "app:m1"), Err(NOPERM_CMD % "del"), "queued del")
        eq(a.cmd("SET", "other", "v"), Err(NOPERM_KEY), "queued other key")
        eq(a.cmd("SET", "app:m2", "v"), "QUEUED", "queued set 2")
        eq(a.cmd("EXEC"), Err(EXECABORT), "exec")
        eq(d.cmd("MGET", "app:m1", "app:m2", "other"), [None, None, None],
           "nothing of the aborted transaction was written")
        # A clean transaction still works for her.
        eq(a.cmd("MULTI"), "OK", "multi")
        eq(a.cmd("SET", "app:m1", "v1"), "QUEUED", "queued")
        eq(a.cmd("GET", "app:m1"), "QUEUED", "queued")
        eq(a.cmd("EXEC"), ["OK", b"v1"], "exec")
        # Pipelined writes: the forbidden one alone fails.
        ra = rclient(s.port, username="alice", password="pw")
        p = ra.pipeline(transaction=False)
        p.set("app:p1", "1")
        p.set("forbidden:x", "2")
        p.set("app:p2", "3")
        p.incr("app:p3")
        p.set("app:p4", "4")
        p.get("app:p1")
        res = p.execute(raise_on_error=False)
        eq(res[0], True, "p1")
        assert isinstance(res[1], redis.ResponseError) and \
            pyerr_is(res[1], NOPERM_KEY), res[1]
        eq(res[2], True, "p2")
        assert isinstance(res[3], redis.ResponseError) and \
            pyerr_is(res[3], NOPERM_CMD % "incrby"), res[3]
        eq(res[4:], [True, b"1"], "p4, get")
        eq(d.cmd("MGET", "app:p1", "forbidden:x", "app:p2", "app:p3",
                 "app:p4"), [b"1", None, b"3", None, b"4"], "pipeline writes")
        # The same, many at once on a raw socket (one batch on the server).
        cmds = []
        for i in range(200):
            cmds.append(("SET", "app:b%d" % i if i % 7 else "no:b%d" % i,
                         str(i)))
        a.send(*cmds)
        for i in range(200):
            want = "OK" if i % 7 else Err(NOPERM_KEY)
            eq(a.read(), want, "batched write %d" % i)
        eq(d.cmd("GET", "no:b7"), None, "refused batched write")
        eq(d.cmd("GET", "app:b8"), b"8", "allowed batched write")


def t_acl_exec_rechecks_permissions():
    # Rules changed between MULTI and EXEC: Redis 7 checks every queued
    # command again at EXEC and refuses the ones no longer allowed.
    ck = Checks()
    with serve() as s:
        d = Raw(s.port)
        eq(d.cmd("ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "+@all"),
           "OK", "setuser")
        a = Raw(s.port)
        eq(a.cmd("AUTH", "alice", "pw"), "OK", "auth")
        eq(a.cmd("MULTI"), "OK", "multi")
        eq(a.cmd("SET", "app:1", "x"), "QUEUED", "queued set")
        eq(a.cmd("GET", "app:1"), "QUEUED", "queued get")
        eq(d.cmd("ACL", "SETUSER", "alice", "-set"), "OK", "revoke set")
        ck.eq(a.cmd("EXEC"),
           [Err("NOPERM ACLs rules changed between the moment the "
                "transaction was accumulated and the EXEC call. This command "
                "is no longer allowed for the following reason: no "
                "permission to execute the command or subcommand"), None],
              "EXEC after SET was revoked")
        ck.eq(d.cmd("GET", "app:1"), None, "the revoked SET did not run")
        eq(a.cmd("MULTI"), "OK", "multi")
        eq(a.cmd("GET", "app:2"), "QUEUED", "queued get")
        eq(d.cmd("ACL", "SETUSER", "alice", "resetkeys", "~other:*"), "OK",
           "revoke the keys")
        ck.eq(a.cmd("EXEC"),
              [Err("NOPERM ACLs rules changed between the moment the "
                   "transaction was accumulated and the EXEC call. This "
                   "command is no longer allowed for the following reason: "
                   "no permission to touch the specified keys")],
              "EXEC after the key patterns changed")
    ck.done()


# ---------------------------------------------------------- 2. requirepass

def t_requirepass():
    with serve("--requirepass", "s3cret") as s:
        c = Raw(s.port)
        eq(c.cmd("GET", "x"), Err(NOAUTH), "unauthenticated get")
        eq(c.cmd("SET", "x", "1"), Err(NOAUTH), "unauthenticated set")
        eq(c.cmd("HELLO", "3"),
           Err("NOAUTH HELLO must be called with the client already "
               "authenticated, otherwise the HELLO AUTH <user> "
               "<pass> option can be used to authenticate the client and "
               "select the RESP protocol version at the same time"),
           "unauthenticated hello")
        eq(c.cmd("AUTH", "wrong"), Err(WRONGPASS), "wrong password")
        eq(c.cmd("AUTH", "s3cret"), "OK", "auth")
        eq(c.cmd("SET", "x", "1"), "OK", "authenticated set")
        eq(c.cmd("AUTH", "default", "s3cret"), "OK", "auth default pass")
        h = Raw(s.port)
        eq(h.cmd("HELLO", "3", "AUTH", "default", "s3cret")["proto"], 3,
           "hello auth")
        eq(c.cmd("CONFIG", "GET", "requirepass"), [b"requirepass", b"s3cret"],
           "config get requirepass")
        eq(h.cmd("RESET"), "RESET", "reset")
        eq(h.cmd("GET", "x"), Err(NOAUTH), "RESET logs the client out")
        eq(c.cmd("CONFIG", "SET", "requirepass", "newpw"), "OK",
           "config set requirepass")
        eq(c.cmd("GET", "x"), b"1", "authenticated connections stay")
        n = Raw(s.port)
        eq(n.cmd("GET", "x"), Err(NOAUTH), "fresh connection")
        eq(n.cmd("AUTH", "s3cret"), Err(WRONGPASS), "old password")
        eq(n.cmd("AUTH", "newpw"), "OK", "new password")
        eq(n.cmd("GET", "x"), b"1", "after the new password")
        expect_error(lambda: rclient(s.port).get("x"),
                     "Authentication required.")
        assert rclient(s.port, password="newpw").get("x") == b"1"
        eq(c.cmd("CONFIG", "SET", "requirepass", ""), "OK", "open again")
        o = Raw(s.port)
        eq(o.cmd("GET", "x"), b"1", "no password needed")
        eq(o.cmd("AUTH", "newpw"),
           Err("ERR AUTH <password> called without any password configured "
               "for the default user. Are you sure your configuration is "
               "correct?"), "auth on an open server")
        eq(o.cmd("ACL", "LIST"), [b"user default on nopass ~* &* +@all"],
           "default user")


# ------------------------------------------------------------------ 3. TLS

CERTS = None


def make_certs():
    """A CA, a server certificate for 127.0.0.1/localhost, a client
    certificate from the CA, and one from another CA; EC keys (fast)."""
    global CERTS
    if CERTS:
        return CERTS
    d = tempfile.mkdtemp(prefix="cairn-it-tls-")

    def ossl(*args):
        p = subprocess.run(["openssl"] + list(args), cwd=d,
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, "openssl %s failed:\n%s" % (
            " ".join(args), p.stderr)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]
    for ca in ("ca", "rogue"):
        ossl("req", "-x509", *ec, "-keyout", ca + ".key", "-out",
             ca + ".pem", "-days", "2", "-subj", "/CN=cairn test " + ca,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid\n")
    with open(os.path.join(d, "client.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid\n")
    for name, ca, ext in (("server", "ca", "server.ext"),
                          ("client", "ca", "client.ext"),
                          ("stranger", "rogue", "client.ext")):
        ossl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr",
             "-subj", "/CN=" + ("localhost" if name == "server" else name))
        ossl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem",
             "-CAkey", ca + ".key", "-CAcreateserial", "-out", name + ".pem",
             "-days", "2", "-extfile", ext)
    CERTS = {k: os.path.join(d, k) for k in (
        "ca.pem", "server.pem", "server.key", "client.pem", "client.key",
        "stranger.pem", "stranger.key")}
    CERTS["dir"] = d
    return CERTS


def tls_ctx(cert=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(CERTS["ca.pem"])
    if cert:
        ctx.load_cert_chain(CERTS[cert + ".pem"], CERTS[cert + ".key"])
    return ctx


def tls_args(tport, *extra):
    return ("--tls-port", str(tport), "--tls-cert-file", CERTS["server.pem"],
            "--tls-key-file", CERTS["server.key"]) + extra


def run(args, timeout=60):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def t_tls():
    make_certs()
    tport = free_port()
    with serve(*tls_args(tport), wait_ports=(tport,)) as s:
        base = connected_clients(s.port)
        rc, out, err = run(["redis-cli", "--tls", "--cacert", CERTS["ca.pem"],
                            "-p", str(tport), "ping"])
        eq((rc, out.strip()), (0, "PONG"), "redis-cli --tls ping (%s)" % err)
        rc, out, err = run(["redis-cli", "--tls", "--cacert", CERTS["ca.pem"],
                            "-p", str(tport), "set", "cli", "over tls"])
        eq((rc, out.strip()), (0, "OK"), "redis-cli --tls set (%s)" % err)
        # redis-py over TLS; a 1 MiB value both ways.
        t = rclient(tport, ssl=True, ssl_ca_certs=CERTS["ca.pem"])
        p = rclient(s.port)
        assert t.ping() is True
        assert t.set("tls:k", "from tls") is True
        eq(p.get("tls:k"), b"from tls", "written over TLS, read in plain")
        eq(p.get("cli"), b"over tls", "redis-cli's write")
        assert p.set("plain:k", "from plain") is True
        eq(t.get("plain:k"), b"from plain", "written in plain, read over TLS")
        big = random.Random(1).randbytes(1 << 20)
        assert t.set("tls:big", big) is True
        eq(t.get("tls:big") == big, True, "1 MiB round trip over TLS")
        eq(p.get("tls:big") == big, True, "1 MiB written over TLS, in plain")
        big2 = random.Random(2).randbytes(1 << 20)
        assert p.set("plain:big", big2) is True
        eq(t.get("plain:big") == big2, True, "1 MiB in plain, read over TLS")
        # A raw TLS client with hostname checking, pipelining 300 commands.
        r = Raw(tport, tls=tls_ctx())
        r.send(*[("SET", "tls:p%d" % i, str(i)) for i in range(150)] +
               [("GET", "tls:p%d" % i) for i in range(150)])
        got = [r.read() for _ in range(300)]
        eq(got, ["OK"] * 150 + [str(i).encode() for i in range(150)],
           "pipelined over TLS")
        eq(r.cmd("HELLO", "3")["proto"], 3, "RESP3 over TLS")
        # A plaintext client on the TLS port is dropped.
        pl = Raw(tport)
        pl.s.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert pl.closed_within(5), "plaintext client kept on the TLS port"
        assert b"PONG" not in pl.buf, pl.buf
        # Garbage bytes, and a TLS record header followed by garbage.
        rnd = random.Random(42)
        for junk in (rnd.randbytes(4096), b"\x16\x03\x01\x00\x40" +
                     rnd.randbytes(64), b"\x16\x03\x03\xff\xff" +
                     b"\x01" * 3000):
            g = Raw(tport, timeout=5)
            g.s.sendall(junk)
            assert g.closed_within(5), "garbage client kept: %r" % junk[:8]
            g.close()
        # A client that closes in the middle of its handshake.
        h = socket.create_connection(("127.0.0.1", tport), 5)
        h.sendall(b"\x16\x03\x01\x02\x00\x01")
        h.close()
        # The server still answers on both ports.
        eq(r.cmd("GET", "tls:k"), b"from tls", "TLS client after garbage")
        eq(t.get("tls:k"), b"from tls", "redis-py TLS after garbage")
        eq(p.get("plain:k"), b"from plain", "plain client after garbage")
        rc, out, err = run(["redis-benchmark", "--tls", "--cacert",
                            CERTS["ca.pem"], "-p", str(tport), "-t", "set,get",
                            "-n", "2000", "-q"])
        assert rc == 0 and "SET:" in out and "GET:" in out and \
            out.count("requests per second") == 2, \
            "redis-benchmark --tls: rc %d\n%s\n%s" % (rc, out, err)
        r.close()
        t.connection_pool.disconnect()
        p.connection_pool.disconnect()
        try:
            wait_for(lambda: connected_clients(s.port) <= base, 5,
                     "the TLS clients' connections to be gone (leak?)")
        except AssertionError:
            print(rclient(s.port).execute_command("CLIENT", "LIST").decode())
            raise


def t_tls_client_info():
    # CLIENT INFO / LIST show the local address the client connected to
    # (laddr), as Redis 7 does: the TLS port for a TLS client.
    make_certs()
    tport = free_port()
    with serve(*tls_args(tport), wait_ports=(tport,)) as s:
        r = Raw(tport, tls=tls_ctx())
        info = r.cmd("CLIENT", "INFO").decode()
        assert " laddr=127.0.0.1:%d " % tport in info, \
            "TLS client's laddr (TLS port %d): %s" % (tport, info)


def t_tls_client_certificates():
    make_certs()
    tport = free_port()
    with serve(*tls_args(tport, "--tls-ca-cert-file", CERTS["ca.pem"],
                         "--tls-auth-clients", "yes"),
               wait_ports=(tport,)) as s:
        ok = Raw(tport, tls=tls_ctx("client"))
        eq(ok.cmd("SET", "mtls", "yes"), "OK", "client with a CA cert")
        eq(ok.cmd("GET", "mtls"), b"yes", "client with a CA cert")
        t = rclient(tport, ssl=True, ssl_ca_certs=CERTS["ca.pem"],
                    ssl_certfile=CERTS["client.pem"],
                    ssl_keyfile=CERTS["client.key"])
        eq(t.get("mtls"), b"yes", "redis-py with a client certificate")
        rc, out, err = run(["redis-cli", "--tls", "--cacert", CERTS["ca.pem"],
                            "--cert", CERTS["client.pem"], "--key",
                            CERTS["client.key"], "-p", str(tport), "get",
                            "mtls"])
        eq((rc, out.strip()), (0, "yes"), "redis-cli with a cert (%s)" % err)
        for cert in (None, "stranger"):
            try:
                c = Raw(tport, tls=tls_ctx(cert), timeout=5)
                c.send(("PING",))
                rep = c.read()
            except (ssl.SSLError, EOFError, OSError):
                continue  # refused at the handshake or just after it
            raise AssertionError("client with %s got %r" % (
                cert or "no certificate", rep))
        bad = rclient(tport, ssl=True, ssl_ca_certs=CERTS["ca.pem"])
        try:
            bad.ping()
            raise AssertionError("redis-py without a certificate got PONG")
        except redis.ConnectionError:
            pass
        eq(ok.cmd("PING"), "PONG", "the good client after the refusals")
        eq(rclient(s.port).get("mtls"), b"yes", "plain port")


# -------------------------------------------------------------- 4. metrics

PROM_SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*'
    r'(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\.)*")*,?)?\})?'
    r' (-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?|[-+]Inf|NaN)'
    r'( -?[0-9]+)?$')
PROM_COMMENT = re.compile(
    r'^# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*|'
    r'TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|'
    r'untyped))$')


def scrape(mport):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport,
                                timeout=10) as r:
        eq(r.status, 200, "metrics status")
        ctype = r.headers.get("Content-Type", "")
        assert re.match(r"text/plain; ?version=0\.0\.4(;|$)", ctype), \
            "metrics content type %r" % ctype
        body = r.read().decode()
    values, typed = {}, set()
    assert body.endswith("\n"), body[-100:]
    for line in body.split("\n")[:-1]:
        if line.startswith("#"):
            assert PROM_COMMENT.match(line), "bad comment line %r" % line
            if line.startswith("# TYPE "):
                typed.add(line.split()[2])
            continue
        assert PROM_SAMPLE.match(line), "bad sample line %r" % line
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
        assert name in typed, "%s has no TYPE line before it" % name
        key, val = line.rsplit(" ", 1)
        assert key not in values, "duplicate sample %s" % key
        values[key] = float(val)
    return values


def t_metrics():
    mport = free_port()
    with serve("--metrics-port", str(mport), wait_ports=(mport,)) as s:
        m = scrape(mport)
        eq(m.get("cairn_up"), 1.0, "cairn_up")
        for k in ("cairn_commands_processed_total", "cairn_commits_total",
                  "cairn_connected_clients", 'cairn_level_files{level="0"}',
                  "cairn_row_cache_hits_total", "cairn_row_cache_bytes",
                  "cairn_block_cache_capacity_bytes"):
            assert k in m, "no %s in %s" % (k, sorted(m))
        c = Raw(s.port)
        for i in range(20):
            eq(c.cmd("SET", "m%d" % i, "v"), "OK", "set")
        for i in range(20):
            eq(c.cmd("GET", "m%d" % i), b"v", "get")
        m2 = scrape(mport)
        assert m2["cairn_commands_processed_total"] >= \
            m["cairn_commands_processed_total"] + 40, (m, m2)
        assert m2["cairn_commits_total"] >= m["cairn_commits_total"] + 20, \
            (m["cairn_commits_total"], m2["cairn_commits_total"])
        # The SETs waited for log fsyncs (sync always): their latency.
        p50 = m2["cairn_wal_sync_p50_seconds"]
        assert 0 < p50 <= m2["cairn_wal_sync_p99_seconds"] < 10, m2
        p = info_fields(c, "persistence")
        eq(p["sync_mode"], "always", "INFO persistence sync_mode")
        assert 0 < float(p["wal_sync_p50_us"]) <= \
            float(p["wal_sync_p99_us"]), p
        assert m2["cairn_connected_clients"] >= 1, m2
        extra = [Raw(s.port) for _ in range(3)]
        for e in extra:
            eq(e.cmd("PING"), "PONG", "extra client")
        m2b = scrape(mport)
        eq(m2b["cairn_connected_clients"], m2["cairn_connected_clients"] + 3,
           "connected clients gauge")
        for e in extra:
            e.close()
        eq(c.cmd("ACL", "SETUSER", "alice", "on", ">pw", "~app:*", "+get"),
           "OK", "setuser")
        a = Raw(s.port)
        eq(a.cmd("AUTH", "alice", "pw"), "OK", "auth")
        eq(a.cmd("GET", "nope"), Err(NOPERM_KEY), "denied key")
        eq(a.cmd("SET", "app:x", "1"), Err(NOPERM_CMD % "set"),
           "denied command")
        eq(scrape(mport)["cairn_acl_denied_total"],
           m2["cairn_acl_denied_total"] + 2, "cairn_acl_denied_total")
        # Per command and per error code, and the keyspace lookups.
        m4 = scrape(mport)
        assert m4['cairn_command_calls_total{cmd="set"}'] >= 20, m4
        assert m4['cairn_command_calls_total{cmd="get"}'] >= 20, m4
        assert m4['cairn_command_rejected_total{cmd="set"}'] >= 1, m4
        assert m4['cairn_errors_total{code="NOPERM"}'] == 2, m4
        assert m4["cairn_keyspace_hits_total"] >= 20, m4
        assert m4["cairn_net_input_bytes_total"] > 0, m4
        assert m4["cairn_used_memory_bytes"] > 0, m4
        # Only GET /metrics (or /).
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/nope" % mport,
                                   timeout=10)
            raise AssertionError("GET /nope did not fail")
        except urllib.error.HTTPError as e:
            eq(e.code, 404, "GET /nope")
        try:
            urllib.request.urlopen(urllib.request.Request(
                "http://127.0.0.1:%d/metrics" % mport, data=b"x=1",
                method="POST"), timeout=10)
            raise AssertionError("POST did not fail")
        except urllib.error.HTTPError as e:
            eq(e.code, 405, "POST /metrics")
        # HTTP/1.0, no Host: still fine; a head over 8 KiB: closed.
        raw = socket.create_connection(("127.0.0.1", mport), 10)
        raw.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        resp = b""
        while True:
            d = raw.recv(65536)
            if not d:
                break
            resp += d
        raw.close()
        assert re.match(rb"HTTP/1\.[01] 200 ", resp) and \
            b"\ncairn_up 1\n" in resp, resp[:200]
        big = Raw(mport, timeout=10)
        big.s.sendall(b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 9000)
        assert big.closed_within(3), "a 9000-byte request head kept open"
        big.close()
        # Half a request: the others are served meanwhile, and it is closed
        # within about 5 s.
        half = socket.create_connection(("127.0.0.1", mport), 10)
        t0 = time.time()
        half.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        for _ in range(3):
            eq(scrape(mport)["cairn_up"], 1.0, "scrape beside a half request")
        eq(c.cmd("PING"), "PONG", "redis port beside a half request")
        half.settimeout(10)
        data = b""
        try:
            while True:
                d = half.recv(65536)
                if not d:
                    break
                data += d
        except (ConnectionError, OSError):
            pass
        waited = time.time() - t0
        assert 3.0 <= waited <= 7.5, "half request closed after %.1fs" % waited
        assert b"cairn_up" not in data, "half request answered: %r" % data
        half.close()
        m3 = scrape(mport)
        assert m3["cairn_commands_processed_total"] >= \
            m2["cairn_commands_processed_total"] + 1
        eq(c.cmd("PING"), "PONG", "after the scrapes")


# --------------------------------------------------------------- 5. CONFIG

def config_get(c, *pat):
    rep = c.cmd("CONFIG", "GET", *pat)
    assert isinstance(rep, list) and len(rep) % 2 == 0, rep
    return {rep[i].decode(): rep[i + 1].decode()
            for i in range(0, len(rep), 2)}


def config_set_failed(name, why):
    return Err("ERR CONFIG SET failed (possibly related to argument '%s') - "
               "%s" % (name, why))


def t_config_get_set():
    with serve() as s:
        c = Raw(s.port)
        allc = config_get(c, "*")
        for k, v in (("port", str(s.port)), ("maxclients", "10000"),
                     ("timeout", "0"), ("slowlog-log-slower-than", "10000"),
                     ("slowlog-max-len", "128"), ("appendonly", "yes")):
            eq(allc.get(k), v, "CONFIG GET * %s" % k)
        eq(config_get(c, "slowlog-*"), {"slowlog-log-slower-than": "10000",
                                        "slowlog-max-len": "128"},
           "CONFIG GET slowlog-*")
        eq(config_get(c, "MAXCLIENTS"), {"maxclients": "10000"},
           "pattern case")
        eq(config_get(c, "port", "timeout"), {"port": str(s.port),
                                              "timeout": "0"}, "two patterns")
        eq(config_get(c, "nosuch*"), {}, "no match")
        eq(c.cmd("CONFIG", "SET", "timeout", "30"), "OK", "set timeout")
        eq(c.cmd("CONFIG", "SET", "maxclients", "500", "slowlog-max-len",
                 "64"), "OK", "set two")
        eq(config_get(c, "timeout", "maxclients", "slowlog-max-len"),
           {"timeout": "30", "maxclients": "500", "slowlog-max-len": "64"},
           "after set")
        eq(rclient(s.port).config_get("timeout"), {"timeout": "30"},
           "redis-py config_get")
        # Immutable, unknown, bad values: errors, and nothing changes.
        eq(c.cmd("CONFIG", "SET", "port", "1234"),
           config_set_failed("port", "can't set immutable config"), "port")
        eq(c.cmd("CONFIG", "SET", "nosuch", "1"),
           Err("ERR Unknown option or number of arguments for CONFIG SET - "
               "'nosuch'"), "unknown")
        rep = c.cmd("CONFIG", "SET", "maxclients", "abc")
        assert isinstance(rep, Err) and rep.startswith(
            config_set_failed("maxclients", "")), rep
        rep = c.cmd("CONFIG", "SET", "timeout", "40", "maxclients", "0")
        assert isinstance(rep, Err) and rep.startswith(
            config_set_failed("maxclients", "")), rep
        eq(c.cmd("CONFIG", "SET", "timeout", "40", "port", "1"),
           config_set_failed("port", "can't set immutable config"),
           "second pair immutable")
        eq(c.cmd("CONFIG", "SET", "timeout", "40", "nosuch", "1"),
           Err("ERR Unknown option or number of arguments for CONFIG SET - "
               "'nosuch'"), "second pair unknown")
        eq(c.cmd("CONFIG", "SET", "timeout", "40", "maxclients"),
           Err("ERR wrong number of arguments for 'config|set' command"),
           "odd arguments")
        eq(config_get(c, "timeout", "maxclients", "port"),
           {"timeout": "30", "maxclients": "500", "port": str(s.port)},
           "nothing changed")
        eq(c.cmd("CONFIG", "REWRITE"),
           Err("ERR The server is running without a config file"),
           "rewrite without a file")
        # Every runtime setting takes back the value CONFIG GET shows.
        allc = config_get(c, "*")
        for name in ("requirepass", "proto-max-bulk-len", "max-args",
                     "maxclients", "client-query-buffer-limit",
                     "client-output-buffer-limit", "timeout",
                     "slowlog-log-slower-than", "slowlog-max-len",
                     "row-cache-size", "block-cache-size"):
            eq(c.cmd("CONFIG", "SET", name, allc[name]), "OK",
               "CONFIG SET %s %r" % (name, allc[name]))
        eq(config_get(c, "*"), allc, "CONFIG GET * after setting it back")
        # timeout takes effect: an idle client goes, a busy one stays.
        eq(c.cmd("CONFIG", "SET", "timeout", "1"), "OK", "timeout 1")
        idle = Raw(s.port)
        eq(idle.cmd("PING"), "PONG", "idle client")
        t0 = time.time()
        while time.time() - t0 < 1.5:
            eq(c.cmd("PING"), "PONG", "busy client")
            time.sleep(0.1)
        assert idle.closed_within(2.5), "idle client kept with timeout 1"
        eq(c.cmd("CONFIG", "SET", "timeout", "0"), "OK", "timeout 0")


def info_fields(c, section):
    out = {}
    for line in c.cmd("INFO", section).decode().split("\r\n"):
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v
    return out


def kv_fields(v):
    return dict(p.split("=", 1) for p in v.split(","))


def t_info_tiers():
    # INFO tiers: every tier's line, with what it holds, hits, misses and
    # latency; the blob store counts a repeated large value once.
    with serve() as s:
        c = Raw(s.port)
        big = b"x" * 5000 + b"tail"
        for k in ("b1", "b2", "b3"):
            eq(c.cmd("SET", k, big), "OK", "set a large value")
        eq(c.cmd("SET", "small", "v"), "OK", "set")
        # The row cache stands in front of sorted files only: a key still
        # in the memtable is read there.
        eq(c.cmd("SAVE"), "OK", "flush to sorted files")
        for _ in range(200):
            eq(c.cmd("GET", "small"), b"v", "get")
        for k in ("b1", "b2", "b3"):
            eq(c.cmd("GET", k), big, "get a large value")
        t = info_fields(c, "tiers")
        for k in ("tier_local", "tier_archive", "tier_row_cache",
                  "tier_block_cache", "tier_blob"):
            assert k in t, (k, t)
        rc = kv_fields(t["tier_row_cache"])
        assert int(rc["hits"]) >= 150, rc
        assert float(rc["hit_p50_us"]) > 0, rc
        assert float(rc["hit_p99_us"]) >= float(rc["hit_p50_us"]), rc
        blob = kv_fields(t["tier_blob"])
        eq(blob["distinct"], "1", "one blob for three keys")
        assert int(blob["dedup_hits"]) >= 2, blob
        # Three references to one stored value (the keyspace's few bytes
        # of type header included).
        logical = int(blob["logical_bytes"])
        assert logical % 3 == 0 and 3 * len(big) <= logical < 3 * (len(big) + 64), blob
        assert float(blob["dedup_ratio"]) > 2.5, blob
        assert int(blob["reads"]) >= 1, blob
        assert float(blob["read_p50_us"]) > 0, blob
        eq(t["archive_available"], "0", "no archive configured")


def t_info_stats_queued_refusals():
    # A container's subcommand refused when queued in MULTI is counted as
    # Redis 7.0 counts it: an unknown one as an error only (no cmdstat
    # line), a wrong argument count as a rejected call of the subcommand.
    with serve() as s:
        c = Raw(s.port)
        eq(c.cmd("CONFIG", "RESETSTAT"), "OK", "resetstat")
        eq(c.cmd("MULTI"), "OK", "multi")
        eq(c.cmd("CLIENT", "NOSUCH"),
           Err("ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."),
           "an unknown subcommand, queued")
        eq(c.cmd("CLIENT", "SETNAME"),
           Err("ERR wrong number of arguments for 'client|setname' command"),
           "a subcommand without its argument, queued")
        eq(c.cmd("DISCARD"), "OK", "discard")
        cs = {k[len("cmdstat_"):]: kv_fields(v)
              for k, v in info_fields(c, "commandstats").items()}
        chk = Checks()
        chk.eq(sorted(k for k in cs if k.startswith("client")),
               ["client|setname"], "client entries")
        got = cs.get("client|setname", {})
        chk.eq((got.get("calls"), got.get("rejected_calls")), ("0", "1"),
               "client|setname rejected")
        chk.eq(info_fields(c, "errorstats"), {"errorstat_ERR": "count=2"},
               "errorstats")
        chk.done()


def t_info_redis_stats():
    # INFO's Redis 7 statistics, exactly, after CONFIG RESETSTAT and a known
    # mix: commands that ran (inline, pipelined in a batch, inside EXEC),
    # were refused before running, or failed; errors by code; keyspace
    # hits and misses; bytes in and out; the rates; memory and CPU; what
    # redis-cli --stat reads.
    with serve() as s:
        c = Raw(s.port)
        eq(c.cmd("CONFIG", "RESETSTAT"), "OK", "resetstat")
        before = info_fields(c, "stats")
        eq(before["total_error_replies"], "0", "errors after the reset")
        eq(before["keyspace_hits"], "0", "hits after the reset")
        eq(c.cmd("SET", "k", "v"), "OK", "set")
        eq(c.cmd("GET", "k"), b"v", "get: a hit")
        eq(c.cmd("GET", "nokey"), None, "get: a miss")
        eq(c.cmd("TS.CREATE", "ts"), "OK", "a series")
        eq(c.cmd("GET", "ts"), Err("WRONGTYPE Operation against a key "
                                   "holding the wrong kind of value"),
           "get of a series: a hit, failed")
        eq(c.cmd("GET"), Err("ERR wrong number of arguments for 'get' "
                             "command"), "get refused")
        assert c.cmd("NOSUCHCMD").startswith("ERR unknown command"), "unknown"
        eq(c.cmd("CLIENT", "NOSUCH"),
           Err("ERR unknown subcommand 'NOSUCH'. Try CLIENT HELP."),
           "an unknown subcommand")
        eq(c.cmd("CONFIG", "GET"), Err("ERR wrong number of arguments for "
                                       "'config|get' command"),
           "config get refused")
        assert isinstance(c.cmd("CLIENT", "ID"), int), "client id"
        eq(c.cmd("MULTI"), "OK", "multi")
        for cmd in (("SET", "m", "1"), ("INCR", "k"), ("GET", "m")):
            eq(c.cmd(*cmd), "QUEUED", "queued")
        notint = Err("ERR value is not an integer or out of range")
        eq(c.cmd("EXEC"), ["OK", notint, b"1"], "exec")
        c.send(("SET", "p1", "1"), ("SET", "p2", "2"), ("INCR", "k"))
        eq([c.read() for _ in range(3)], ["OK", "OK", notint], "pipeline")
        cs = {k[len("cmdstat_"):]: kv_fields(v)
              for k, v in info_fields(c, "commandstats").items()}
        chk = Checks()
        for name, calls, failed, rejected in (
                ("set", 4, 0, 0), ("get", 4, 1, 1), ("incr", 2, 2, 0),
                ("exec", 1, 0, 0), ("multi", 1, 0, 0), ("client|id", 1, 0, 0),
                ("config|get", 0, 0, 1), ("config|resetstat", 1, 0, 0),
                ("ts.create", 1, 0, 0)):
            got = cs.get(name, {})
            chk.eq((got.get("calls"), got.get("failed_calls"),
                    got.get("rejected_calls")),
                   (str(calls), str(failed), str(rejected)), "cmdstat_" + name)
        chk.eq(sorted(k for k in cs if k.startswith("client|")),
               ["client|id"], "no entry for an unknown subcommand")
        us = int(cs["set"]["usec"])
        chk.eq(float(cs["set"]["usec_per_call"]), round(us / 4, 2),
               "usec_per_call")
        es = info_fields(c, "errorstats")
        chk.eq(es, {"errorstat_ERR": "count=6",
                    "errorstat_WRONGTYPE": "count=1"}, "errorstats")
        st = info_fields(c, "stats")
        chk.eq(st["total_error_replies"], "7", "total_error_replies")
        chk.eq((st["keyspace_hits"], st["keyspace_misses"]), ("3", "1"),
               "keyspace hits and misses (GET k, GET ts, GET m; GET nokey)")
        # Commands that ran: resetstat (counted after it reset), 4 set,
        # 4 get, 2 incr, exec, multi, client id, ts.create, and the three
        # INFOs before this one; not the refused nor the queued ones.
        chk.eq(st["total_commands_processed"], "18", "commands processed")
        lat = info_fields(c, "latencystats")
        p = kv_fields(lat["latency_percentiles_usec_get"])
        chk.eq(float(p["p50"]) <= float(p["p99"]) <= float(p["p99.9"]), True,
               "latency percentiles ordered: %r" % p)
        chk.eq("latency_percentiles_usec_config|get" in lat, False,
               "no latency for a command that never ran")
        # Bytes in: exactly what a command's bytes add.
        a = int(info_fields(c, "stats")["total_net_input_bytes"])
        eq(c.cmd("PING"), "PONG", "ping")
        b = int(info_fields(c, "stats")["total_net_input_bytes"])
        chk.eq(b - a, len(Raw.encode(("PING",))) +
               len(Raw.encode(("INFO", "stats"))), "net input bytes")
        chk.eq(int(st["total_net_output_bytes"]) > 0, True, "net output")
        # The rates: a burst of commands shows in instantaneous_ops_per_sec
        # (the mean of the last 16 samples, 100 ms apart).
        c.send(*[("PING",)] * 3000)
        for _ in range(3000):
            c.read()
        time.sleep(0.25)
        ops = float(info_fields(c, "stats")["instantaneous_ops_per_sec"])
        chk.eq(ops > 0, True, "instantaneous_ops_per_sec %r" % ops)
        # Memory, CPU, server, replication.
        m = info_fields(c, "memory")
        used = int(m["used_memory"])
        chk.eq(used > 0 and int(m["used_memory_peak"]) >= used, True,
               "used_memory %d, peak %s" % (used, m["used_memory_peak"]))
        chk.eq(bool(re.fullmatch(r"\d+B|\d+\.\d\d[KMGTP]",
                                 m["used_memory_human"])), True,
               "used_memory_human %r" % m["used_memory_human"])
        chk.eq(m["maxmemory_policy"], "noeviction", "maxmemory_policy")
        cpu = info_fields(c, "cpu")
        chk.eq(float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]) > 0,
               True, "cpu used")
        srv = info_fields(c, "server")
        chk.eq(bool(re.fullmatch(r"[0-9a-f]{40}", srv["run_id"])), True,
               "run_id")
        chk.eq(info_fields(c, "server")["run_id"], srv["run_id"],
               "run_id stays")
        chk.eq(srv["tcp_port"], str(s.port), "tcp_port")
        chk.eq(info_fields(c, "replication")["role"], "master", "role")
        chk.eq(info_fields(c, "persistence")["aof_last_write_status"], "ok",
               "aof_last_write_status")
        # Sections: several in one INFO, any case; unknown ones add nothing;
        # no blank line after the last.
        two = c.cmd("INFO", "Server", "CLIENTS").decode()
        chk.eq(re.findall(r"^# (\w+)", two, re.M), ["Server", "Clients"],
               "INFO server clients")
        chk.eq(two.endswith("\r\n") and not two.endswith("\r\n\r\n"), True,
               "no trailing blank line")
        chk.eq(c.cmd("INFO", "nosuch"), b"", "an unknown section")
        dflt = re.findall(r"^# (\w+)", c.cmd("INFO").decode(), re.M)
        chk.eq("Commandstats" in dflt or "Latencystats" in dflt, False,
               "default sections")
        chk.eq("Errorstats" in dflt and "Replication" in dflt, True,
               "default sections")
        chk.done()
        # redis-cli --stat: the keys, memory, clients, blocked, requests
        # and connections columns all filled.
        out = subprocess.run(
            ["timeout", "2.5", "stdbuf", "-oL", "redis-cli", "-p",
             str(s.port), "--stat", "-i", "1"],
            capture_output=True, text=True).stdout
        rows = [l.split() for l in out.splitlines()[2:] if l.strip()]
        assert rows, "redis-cli --stat printed no row:\n" + out
        keys, mem, clients, blocked = rows[0][:4]
        assert int(keys) >= 3 and mem != "0B" and int(clients) >= 1 and \
            blocked == "0", "redis-cli --stat: %r" % out


def t_info_keyspace():
    # INFO keyspace: keys, those with an expiry and their mean time left
    # (avg_ttl, ms), from the background count its first call starts.
    with serve() as s:
        c = Raw(s.port)
        eq(c.cmd("SET", "a", "1", "PX", "100000"), "OK", "set px")
        eq(c.cmd("SET", "b", "1", "PX", "200000"), "OK", "set px")
        eq(c.cmd("SET", "c", "1"), "OK", "set")
        db0 = wait_for(lambda: info_fields(c, "keyspace").get("db0"), 10,
                       "INFO keyspace's db0 line")
        f = kv_fields(db0)
        eq((f["keys"], f["expires"]), ("3", "2"), "keys and expires")
        assert 140000 <= int(f["avg_ttl"]) <= 150000, db0


def t_config_cache_sizes():
    # Both cache budgets change at run time; INFO shows them and the row
    # cache's counters.
    with serve() as s:
        c = Raw(s.port)
        eq(config_get(c, "*-cache-size"),
           {"block-cache-size": str(512 << 20),
            "row-cache-size": str(512 << 20)}, "defaults")
        eq(c.cmd("SET", "rc", "v1"), "OK", "set")
        eq(c.cmd("SAVE"), "OK", "flush: the row cache fronts sorted files")
        # The flush offered the key to the (empty) row cache: every read
        # is a hit.
        for _ in range(4):
            eq(c.cmd("GET", "rc"), b"v1", "get")
        cairn = info_fields(c, "cairn")
        assert int(cairn["row_cache_hits"]) >= 4, cairn
        assert int(cairn["row_cache_inserts"]) >= 1, cairn
        mem = info_fields(c, "memory")
        eq(mem["row_cache_capacity"], str(512 << 20),
           "INFO row_cache_capacity")
        assert int(mem["row_cache_bytes"]) > 0, mem
        # A write is seen at once, cache or not; its flush supersedes the
        # cached v1.
        eq(c.cmd("SET", "rc", "v2"), "OK", "overwrite")
        eq(c.cmd("GET", "rc"), b"v2", "get after overwrite")
        eq(c.cmd("SAVE"), "OK", "flush v2 too")
        assert int(info_fields(c, "cairn")["row_cache_invalidations"]) >= 1
        eq(c.cmd("GET", "rc"), b"v2", "get after the flush")
        # Off, then on with a smaller budget; the block cache shrinks.
        eq(c.cmd("CONFIG", "SET", "row-cache-size", "0", "block-cache-size",
                 "2mb"), "OK", "set both")
        mem = info_fields(c, "memory")
        eq((mem["row_cache_capacity"], mem["row_cache_bytes"],
            mem["block_cache_capacity"]), ("0", "0", str(2 << 20)), "off")
        hits = int(info_fields(c, "cairn")["row_cache_hits"])
        eq(c.cmd("GET", "rc"), b"v2", "get, cache off")
        eq(c.cmd("GET", "rc"), b"v2", "get, cache off")
        eq(int(info_fields(c, "cairn")["row_cache_hits"]), hits, "no hits off")
        eq(c.cmd("CONFIG", "SET", "row-cache-size", "1mb"), "OK", "on again")
        eq(config_get(c, "row-cache-size"), {"row-cache-size": str(1 << 20)},
           "CONFIG GET after set")
        eq(c.cmd("GET", "rc"), b"v2", "get, cache on")
        eq(c.cmd("GET", "rc"), b"v2", "get, cache on")
        eq(int(info_fields(c, "cairn")["row_cache_hits"]), hits + 1, "hit")
        rep = c.cmd("CONFIG", "SET", "row-cache-size", "lots")
        assert isinstance(rep, Err) and rep.startswith(
            config_set_failed("row-cache-size", "")), rep
        rep = c.cmd("CONFIG", "SET", "block-cache-size", "1kb")
        assert isinstance(rep, Err) and rep.startswith(
            config_set_failed("block-cache-size", "")), rep
        eq(config_get(c, "*-cache-size"),
           {"block-cache-size": str(2 << 20), "row-cache-size": str(1 << 20)},
           "unchanged by bad values")


def thread_nices(pid):
    """{thread name: set of nice values} of a running process; a thread
    under SCHED_IDLE counts as nice 20 (background-nice 20)."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                st = f.read()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        # Fields after the name (which is in parentheses): nice is the 19th
        # field of the line, the 17th after ") "; the policy the 41st
        # (SCHED_IDLE: 5).
        fields = st[st.rindex(")") + 2:].split()
        nice = 20 if int(fields[38]) == 5 else int(fields[16])
        out.setdefault(name, set()).add(nice)
    return out


def t_help_defaults():
    # Every default that `cairn-server --help` states is the one a server
    # started without that setting reports (CONFIG GET).
    out = subprocess.run([SERVER, "--help"], capture_output=True, text=True,
                         timeout=30)
    eq(out.returncode, 0, "--help exits 0")
    # "--name ARG [words] (default VALUE" or "(VALUE" up to ")", ";", ":".
    stated = dict(re.findall(
        r"--([a-z][a-z-]*) [A-Z]+[^(\n]*?\((?:default )?([^);:,\s]+)[);:]",
        out.stdout))
    # "--sync MODE  always (default) | ...": the word before "(default)".
    m = re.search(r"--sync MODE\s+(\w+) \(default\)", out.stdout)
    assert m, "--help states no default sync mode"
    stated["sync"] = m.group(1)
    for must in ("maxclients", "timeout", "proto-max-bulk-len", "max-args",
                 "client-query-buffer-limit", "client-output-buffer-limit",
                 "commit-threads", "memtable-size", "block-cache-size",
                 "row-cache-size", "background-nice", "sync-interval-ms",
                 "history-ms", "slowlog-log-slower-than", "slowlog-max-len"):
        assert must in stated, "--help states no default for %s: %s" % (
            must, sorted(stated))
    units = {"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}

    def norm(v):
        m = re.fullmatch(r"(\d+)(kb|mb|gb)", v.lower())
        return str(int(m.group(1)) * units[m.group(2)]) if m else v

    with serve() as s:
        c = Raw(s.port)
        for name, value in sorted(stated.items()):
            if name in ("port", "dir"):
                continue  # the test sets both
            eq(config_get(c, name), {name: norm(value)},
               "--help's default of %s" % name)


def t_background_nice():
    # The engine's background threads run below the requests' priority
    # (background-nice: 20 by default, SCHED_IDLE; 0..19 nice steps); the
    # loop and the log do not.
    for args, want in (((), 20), (("--background-nice", "10"), 10),
                       (("--background-nice", "0"), 0)):
        with serve(*args) as s:
            c = Raw(s.port)
            eq(config_get(c, "background-nice"),
               {"background-nice": str(want)}, "CONFIG GET")
            # The threads name themselves once started (after taking
            # their nice); a slow build may still be starting them.
            deadline = time.monotonic() + 10
            while True:
                n = thread_nices(s.proc.pid)
                if ("cairn-compact" in n and "cairn-collect" in n) or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            for name in ("cairn-compact", "cairn-collect"):
                eq(n.get(name), {want}, "nice of " + name)
            main = [k for k in n if k not in ("cairn-compact",
                                              "cairn-collect",
                                              "cairn-archive")]
            assert main and all(n[k] == {0} for k in main), n
    bad = Server("--background-nice", "21")
    try:
        bad.start(timeout=5)
    except RuntimeError as e:  # it exits, saying why
        assert "background-nice" in str(e), e
    else:
        raise AssertionError("background-nice 21 was accepted")
    finally:
        bad.stop()
        bad.cleanup()


def t_config_maxclients():
    with serve() as s:
        c1 = Raw(s.port)
        c2 = Raw(s.port)
        eq(c1.cmd("CONFIG", "SET", "maxclients", "2"), "OK", "maxclients 2")
        c3 = Raw(s.port)
        eq(c3.read(), Err("ERR max number of clients reached"), "third")
        assert c3.closed_within(3), "the refused client was not closed"
        eq(c2.cmd("PING"), "PONG", "second client")
        c2.close()
        # Its slot frees once the server has seen the close.
        def fourth():
            c4 = Raw(s.port)
            try:
                return c4.cmd("PING") == "PONG"
            except EOFError:
                return False
            finally:
                c4.close()
        wait_for(fourth, 5, "a new client to fit after one left")
        info = c1.cmd("INFO", "stats")
        assert b"rejected_connections:" in info, info
        eq(c1.cmd("CONFIG", "SET", "maxclients", "10000"), "OK", "reset")
        more = [Raw(s.port) for _ in range(5)]
        for m in more:
            eq(m.cmd("PING"), "PONG", "after raising maxclients")
            m.close()


def t_config_rewrite_and_restart():
    tmp = tempfile.mkdtemp(prefix="cairn-it-conf-")
    try:
        conf = os.path.join(tmp, "cairn.conf")
        original = ("# cairn test config\n"
                    "# keep this comment\n"
                    "timeout 10\n"
                    "maxclients 1000\n"
                    "\n"
                    "# users below\n"
                    "user bob on >bobpw ~b:* +get +set\n"
                    "user dave on >davepw ~* +@all\n"
                    "slowlog-max-len 50\n"
                    "# the end\n")
        with open(conf, "w") as f:
            f.write(original)
        with serve(config=conf) as s:
            c = Raw(s.port)
            eq(config_get(c, "timeout", "maxclients", "slowlog-max-len"),
               {"timeout": "10", "maxclients": "1000",
                "slowlog-max-len": "50"}, "loaded")
            eq(c.cmd("CONFIG", "SET", "timeout", "77", "slowlog-max-len",
                     "9"), "OK", "set")
            eq(c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "-1"), "OK",
               "set")
            eq(c.cmd("ACL", "SETUSER", "carol", "on", ">cpw", "~c:*",
                     "+@all"), "OK", "setuser carol")
            eq(c.cmd("ACL", "SETUSER", "bob", "+del"), "OK", "bob +del")
            eq(c.cmd("ACL", "DELUSER", "dave"), 1, "deluser dave")
            eq(c.cmd("CONFIG", "SET", "requirepass", "open sesame"), "OK",
               "requirepass")
            users = c.cmd("ACL", "LIST")
            eq(c.cmd("CONFIG", "REWRITE"), "OK", "rewrite")
            with open(conf) as f:
                text = f.read()
            lines = text.split("\n")
            comments = [l for l in lines if l.startswith("#")]
            eq(comments[:4], ["# cairn test config", "# keep this comment",
                              "# users below", "# the end"],
               "comments kept, in order:\n" + text)
            for want in ("timeout 77", "maxclients 1000", "slowlog-max-len 9",
                         "slowlog-log-slower-than -1",
                         'requirepass "open sesame"', "port %d" % s.port):
                assert want in lines, "no %r line in:\n%s" % (want, text)
            for gone in ("timeout 10", "slowlog-max-len 50"):
                assert gone not in lines, "%r still in:\n%s" % (gone, text)
            ulines = [l for l in lines if l.startswith("user ")]
            eq(ulines, [u.decode() for u in users], "user lines:\n" + text)
            assert "dave" not in text, text
            eq(sorted(os.listdir(tmp)), ["cairn.conf"],
               "files beside the config")
            assert lines.index("# users below") < lines.index(ulines[0]) < \
                lines.index("# the end"), text
            # Restart from the rewritten file.
            rc = s.stop()
            eq(rc, 0, "stop")
            s.start()
            n = Raw(s.port)
            eq(n.cmd("GET", "x"), Err(NOAUTH), "requirepass after restart")
            eq(n.cmd("AUTH", "open sesame"), "OK", "auth after restart")
            eq(config_get(n, "timeout", "maxclients", "slowlog-max-len",
                          "slowlog-log-slower-than", "requirepass"),
               {"timeout": "77", "maxclients": "1000", "slowlog-max-len": "9",
                "slowlog-log-slower-than": "-1",
                "requirepass": "open sesame"}, "after restart")
            eq(n.cmd("ACL", "LIST"), users, "users after restart")
            eq(Raw(s.port).cmd("AUTH", "dave", "davepw"), Err(WRONGPASS),
               "dave stays deleted")
            b = Raw(s.port)
            eq(b.cmd("AUTH", "bob", "bobpw"), "OK", "bob")
            eq(b.cmd("SET", "b:1", "v"), "OK", "bob set")
            eq(b.cmd("DEL", "b:1"), 1, "bob del")
            eq(b.cmd("GET", "c:1"), Err(NOPERM_KEY), "bob other key")
            k = Raw(s.port)
            eq(k.cmd("AUTH", "carol", "cpw"), "OK", "carol")
            eq(k.cmd("SET", "c:1", "v"), "OK", "carol set")
            # A second rewrite of an unchanged server changes nothing.
            eq(n.cmd("CONFIG", "REWRITE"), "OK", "rewrite again")
            with open(conf) as f:
                eq(f.read(), text, "second rewrite")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -------------------------------------------------------------- 6. SLOWLOG

def t_slowlog():
    with serve() as s:
        c = Raw(s.port)
        addr = "127.0.0.1:%d" % c.s.getsockname()[1]
        eq(c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "0"), "OK", "0")
        eq(c.cmd("SLOWLOG", "RESET"), "OK", "reset")
        eq(c.cmd("CLIENT", "SETNAME", "slowpoke"), "OK", "setname")
        eq(c.cmd("SET", "sk", "v"), "OK", "set")
        eq(c.cmd("GET", "sk"), b"v", "get")
        eq(c.cmd("SLOWLOG", "LEN"), 4, "len")
        now = time.time()
        log = c.cmd("SLOWLOG", "GET")
        eq([e[3] for e in log],
           [[b"SLOWLOG", b"LEN"], [b"GET", b"sk"], [b"SET", b"sk", b"v"],
            [b"CLIENT", b"SETNAME", b"slowpoke"], [b"SLOWLOG", b"RESET"]],
           "logged commands, newest first")
        for i, e in enumerate(log):
            eq(len(e), 6, "entry size")
            eq(e[0], log[0][0] - i, "ids count down")
            assert abs(e[1] - now) < 10, "timestamp %r" % e[1]
            assert isinstance(e[2], int) and 0 <= e[2] < 10000000, e[2]
            eq(e[4], addr.encode(), "client address")
        eq([e[5] for e in log], [b"slowpoke"] * 4 + [b""], "client names")
        eq(len(c.cmd("SLOWLOG", "GET", "2")), 2, "get 2")
        eq(len(c.cmd("SLOWLOG", "GET", "-1")), 7, "get -1")
        eq(c.cmd("SLOWLOG", "GET", "0"), [], "get 0")
        for bad in ("-2", "abc"):
            eq(c.cmd("SLOWLOG", "GET", bad),
               Err("ERR count should be greater than or equal to -1"),
               "get " + bad)
        eq(c.cmd("SLOWLOG", "RESET"), "OK", "reset")
        eq(c.cmd("SLOWLOG", "GET", "-1")[0][3], [b"SLOWLOG", b"RESET"],
           "only the reset")
        # Long arguments and many arguments are cut as Redis cuts them.
        eq(c.cmd("ECHO", "x" * 300), b"x" * 300, "echo")
        eq(c.cmd("SET", "big", "A" * 1000), "OK", "set big")
        eq(c.cmd("SET", "exact", "B" * 128), "OK", "set 128")
        eq(c.cmd("EXISTS", *["k%d" % i for i in range(40)]), 0, "exists")
        eq(c.cmd("MSET", *["k%d" % i for i in range(40)]), "OK", "mset")
        eq(c.cmd("EXISTS", *["k%d" % i for i in range(31)]), 16, "exists 31")
        log = c.cmd("SLOWLOG", "GET", "6")
        eq(log[0][3], [b"EXISTS"] + [b"k%d" % i for i in range(31)],
           "32 arguments: kept")
        eq(log[1][3], [b"MSET"] + [b"k%d" % i for i in range(30)] +
           [b"... (10 more arguments)"], "41 arguments")
        eq(log[2][3], [b"EXISTS"] + [b"k%d" % i for i in range(30)] +
           [b"... (10 more arguments)"], "41 arguments (read)")
        eq(log[3][3], [b"SET", b"exact", b"B" * 128], "128 bytes: kept")
        eq(log[4][3], [b"SET", b"big", b"A" * 128 + b"... (872 more bytes)"],
           "1000 bytes")
        eq(log[5][3], [b"ECHO", b"x" * 128 + b"... (172 more bytes)"],
           "300 bytes")
        # slowlog-max-len bounds it, also when lowered.
        eq(c.cmd("CONFIG", "SET", "slowlog-max-len", "5"), "OK", "max 5")
        for i in range(20):
            eq(c.cmd("PING", str(i)), str(i).encode(), "ping")
        eq(c.cmd("SLOWLOG", "LEN"), 5, "len at max 5")
        eq([e[3] for e in c.cmd("SLOWLOG", "GET", "-1")],
           [[b"SLOWLOG", b"LEN"]] + [[b"PING", str(i).encode()]
                                     for i in (19, 18, 17, 16)], "the newest")
        eq(c.cmd("CONFIG", "SET", "slowlog-max-len", "2"), "OK", "max 2")
        eq(c.cmd("SLOWLOG", "LEN"), 2, "len at max 2")
        eq([e[3] for e in c.cmd("SLOWLOG", "GET")],
           [[b"SLOWLOG", b"LEN"],
            [b"CONFIG", b"SET", b"slowlog-max-len", b"2"]], "after lowering")
        eq(c.cmd("CONFIG", "SET", "slowlog-max-len", "0"), "OK", "max 0")
        for i in range(5):
            c.cmd("PING")
        eq(c.cmd("SLOWLOG", "LEN"), 0, "len at max 0")
        eq(c.cmd("CONFIG", "SET", "slowlog-max-len", "128"), "OK", "max 128")
        # A high threshold logs nothing quick; a negative one nothing at all.
        eq(c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "10000000"),
           "OK", "10 s")
        eq(c.cmd("SLOWLOG", "RESET"), "OK", "reset")
        for i in range(5):
            eq(c.cmd("SET", "q%d" % i, "v"), "OK", "set")
        eq(c.cmd("SLOWLOG", "LEN"), 0, "nothing over 10 s")
        eq(c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "-1"), "OK",
           "off")
        eq(c.cmd("SLOWLOG", "RESET"), "OK", "reset")
        for i in range(5):
            c.cmd("PING")
            c.cmd("SET", "q%d" % i, "w")
        eq(c.cmd("SLOWLOG", "LEN"), 0, "off")
        eq(c.cmd("SLOWLOG", "GET"), [], "off")
        eq(c.cmd("SLOWLOG", "NOPE"),
           Err("ERR unknown subcommand 'NOPE'. Try SLOWLOG HELP."),
           "unknown subcommand")
        eq(c.cmd("SLOWLOG", "LEN", "1"),
           Err("ERR wrong number of arguments for 'slowlog|len' command"),
           "subcommand arity")


def t_slowlog_multi_and_pipeline():
    # Redis 7 logs the commands a transaction runs, each on its own, and
    # not EXEC (exec.json: skip_slowlog); pipelined commands are logged one
    # by one too.
    ck = Checks()
    with serve() as s:
        c = Raw(s.port)
        eq(c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "0"), "OK", "0")
        eq(c.cmd("SLOWLOG", "RESET"), "OK", "reset")
        eq(c.cmd("MULTI"), "OK", "multi")
        eq(c.cmd("SET", "q", "1"), "QUEUED", "queued")
        eq(c.cmd("GET", "q"), "QUEUED", "queued")
        eq(c.cmd("EXEC"), ["OK", b"1"], "exec")
        ck.eq([e[3] for e in c.cmd("SLOWLOG", "GET", "4")],
              [[b"GET", b"q"], [b"SET", b"q", b"1"], [b"MULTI"],
               [b"SLOWLOG", b"RESET"]], "a transaction in the slow log")
        eq(c.cmd("SLOWLOG", "RESET"), "OK", "reset")
        c.send(("SET", "p1", "1"), ("SET", "p2", "2"), ("SET", "p3", "3"),
               ("GET", "p1"))
        eq([c.read() for _ in range(4)], ["OK", "OK", "OK", b"1"],
           "pipeline")
        ck.eq([e[3] for e in c.cmd("SLOWLOG", "GET", "5")],
              [[b"GET", b"p1"], [b"SET", b"p3", b"3"], [b"SET", b"p2", b"2"],
               [b"SET", b"p1", b"1"], [b"SLOWLOG", b"RESET"]],
              "pipelined writes in the slow log")
    ck.done()


def t_slowlog_redacts_secrets():
    # Redis 7 never shows passwords in the slow log: AUTH's arguments, ACL
    # SETUSER's and a sensitive CONFIG SET value read "(redacted)".
    with serve() as s:
        c = Raw(s.port)
        eq(c.cmd("CONFIG", "SET", "slowlog-log-slower-than", "0"), "OK", "0")
        eq(c.cmd("ACL", "SETUSER", "alice", "on", ">topsecret1", "~*",
                 "+@all"), "OK", "setuser")
        eq(c.cmd("AUTH", "alice", "topsecret1"), "OK", "auth")
        eq(c.cmd("CONFIG", "SET", "requirepass", "topsecret2"), "OK",
           "requirepass")
        rep = c.cmd("HELLO", "2", "AUTH", "alice", "topsecret1")
        assert isinstance(rep, list) and rep[:2] == [b"server", b"cairn"], rep
        log = c.cmd("SLOWLOG", "GET", "-1")
        flat = b" ".join(a for e in log for a in e[3])
        assert b"topsecret" not in flat, "passwords in the slow log: %r" % [
            e[3] for e in log]
        eq([e[3] for e in log[:4]],
           [[b"HELLO", b"2", b"AUTH", b"(redacted)", b"(redacted)"],
            [b"CONFIG", b"SET", b"requirepass", b"(redacted)"],
            [b"AUTH", b"(redacted)", b"(redacted)"],
            [b"ACL", b"SETUSER", b"(redacted)", b"(redacted)", b"(redacted)",
             b"(redacted)", b"(redacted)"]], "redacted entries")


def main():
    failed = []

    def noted(name, fn):
        def run():
            try:
                fn()
            except BaseException:
                failed.append(name)
                raise
        return name, run

    tests = [noted(n, f) for n, f in globals().items()
             if n.startswith("t_") and callable(f)]
    t0 = time.time()
    try:
        run_tests(tests)
    finally:
        if CERTS:
            shutil.rmtree(CERTS["dir"], ignore_errors=True)
        print("server_admin: %d tests in %.1fs; %s" % (
            len(tests), time.time() - t0,
            "failed: " + ", ".join(failed) if failed else "all passed"))


if __name__ == "__main__":
    main()
