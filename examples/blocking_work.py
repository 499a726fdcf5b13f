"""Blocking work off the I/O threads: a handler hands each job to a
``concurrent.futures`` thread pool, and the pool thread replies with
``conn.send`` itself (safe from any thread).

    python examples/blocking_work.py [--host 127.0.0.1] [--port 7090] [--pool 8] [--backend auto]

    printf '1 sleep 0.5\\n2 ping\\n3 sha256 hello\\n' | nc -q1 127.0.0.1 7090

A job is one line, ``<id> <command> [<argument>]``; the reply is one line,
``<id> <result>``. Jobs run concurrently, so replies may come in any order:
the id says which job a reply is for.

    <id> ping            answered at once, on the I/O worker: "<id> pong"
    <id> sleep <s>       a blocking call (up to 5 s) on a pool thread: "<id> slept <s>"
    <id> sha256 <text>   hashed on a pool thread: "<id> <hex digest>"

A callback that blocks stalls every connection of its worker; handing the
job to the pool keeps the worker harvesting completions, so ``ping`` on any
connection is answered at once even while every pool thread sleeps.
"""

from __future__ import annotations

import hashlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional

import pyiocp
from _serving import arguments, serve, stop_on_signals

log = logging.getLogger("pyiocp.examples.blocking_work")

MAX_LINE = 4096
MAX_SLEEP = 5.0


def reply(conn: pyiocp.Connection, line: str) -> None:
    """Send one reply line, from whichever thread computed it."""
    try:
        conn.send(line.encode() + b"\n")
    except pyiocp.ConnectionClosed:
        pass  # the client left before its answer was ready
    except pyiocp.BufferFull:
        log.warning("%r does not read its replies: dropped", conn)
        conn.abort()


def work(conn: pyiocp.Connection, job: str, cmd: str, arg: str) -> None:
    """Runs on a pool thread."""
    if cmd == "sleep":
        seconds = min(float(arg), MAX_SLEEP)
        time.sleep(seconds)  # stands for a blocking call: a database, a disk, a slow API
        reply(conn, f"{job} slept {arg}")
    else:
        reply(conn, f"{job} {hashlib.sha256(arg.encode()).hexdigest()}")


class Jobs(pyiocp.Handler):
    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool

    def on_accept(self, conn: pyiocp.Connection) -> None:
        conn.buf = bytearray()

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        conn.buf += data
        while (end := conn.buf.find(b"\n")) >= 0:
            line = bytes(conn.buf[:end]).decode("utf-8", "replace").strip()
            del conn.buf[:end + 1]
            self.job(conn, line)
        if len(conn.buf) > MAX_LINE:
            reply(conn, "- line too long")
            conn.close()

    def job(self, conn: pyiocp.Connection, line: str) -> None:
        job, _, rest = line.partition(" ")
        cmd, _, arg = rest.partition(" ")
        if cmd == "ping":
            reply(conn, f"{job} pong")  # quick: answered right here
        elif cmd == "sleep" and _is_seconds(arg) or cmd == "sha256":
            self.pool.submit(work, conn, job, cmd, arg)
        else:
            reply(conn, f"{job} error: bad job {line!r}")


def _is_seconds(text: str) -> bool:
    try:
        return 0 <= float(text) < float("inf")
    except ValueError:
        return False


def main(argv: Optional[List[str]] = None) -> None:
    ap = arguments(__doc__, port=7090)
    ap.add_argument("--pool", type=int, default=8, help="threads doing the blocking work")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    stop_on_signals()
    # The pool outlives the manager: on the way out the manager closes first
    # (replies still being computed then find their connection closed), then
    # the pool drops the jobs not started and waits for the running ones.
    with ThreadPoolExecutor(args.pool, thread_name_prefix="job") as pool:
        mgr = pyiocp.SocketManager(Jobs(pool), workers=args.workers, backend=args.backend)
        serve(mgr, "blocking_work", args.host, args.port, args.unix)
        pool.shutdown(cancel_futures=True)


if __name__ == "__main__":
    main()
