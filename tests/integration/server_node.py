"""server_node.py — cairn-server driven by node-redis 4, the Node.js client
(Debian's node-redis, under /usr/share/nodejs): starts a server, runs
node_client.js against it (typed replies, Buffers, errors, expiry, 5,000
pipelined commands, scanIterator, MULTI/EXEC with a CLIENT command queued,
WATCH, CAIRN.GETAT), and fails when the script fails or the server does
not stop cleanly.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from server_util import Server  # noqa: E402

SCRIPT = os.path.join(os.path.dirname(__file__), "node_client.js")


def main():
    srv = Server().start()
    try:
        env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
        p = subprocess.run(["node", SCRIPT, str(srv.port)], env=env,
                           capture_output=True, text=True, timeout=300)
        sys.stdout.write(p.stdout)
        sys.stderr.write(p.stderr)
        if p.returncode != 0:
            sys.stderr.write("server log:\n" + srv.logtext())
            sys.exit(1)
    finally:
        rc = srv.stop()
    if rc != 0:
        sys.stderr.write("cairn-server exited with %d\n%s" %
                         (rc, srv.logtext()))
        sys.exit(1)
    srv.cleanup()
    print("server_node: PASS")


if __name__ == "__main__":
    main()
