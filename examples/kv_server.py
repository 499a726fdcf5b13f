"""A key-value server on pyiocp: length-prefixed binary frames, and a
per-client idle timeout made with Connection.call_later.

    python examples/kv_server.py [--host 127.0.0.1] [--port 7080] [--workers 2] [--idle 30] [--backend auto]

Every request and every reply is one frame: a 4-byte big-endian length,
then that many bytes (``pyiocp.LengthPrefixed()``; the engine splits them,
so ``on_recv`` gets one whole request). A request is a command, a space,
then its arguments; keys are at most 250 bytes without spaces, values any
bytes:

    SET key value   ->  OK
    GET key         ->  VALUE value, or NOTFOUND
    DEL key         ->  DELETED, or NOTFOUND
    anything else   ->  ERR why

A client that sends no request for --idle seconds is told ``BYE idle``
and disconnected: each request arms a timer on its connection
(``conn.call_later``), cancelling the one before. A connection's timer
runs on its worker, in order with its events, and is cancelled when the
connection closes, so no lock and no cleanup is needed.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Dict, List, Optional

import pyiocp
from _serving import arguments, serve, stop_on_signals

MAX_KEY = 250
MAX_VALUE = 1 << 20


class KV(pyiocp.Handler):
    """Per connection: ``timer``, its idle timer."""

    def __init__(self, idle: float) -> None:
        self.idle = idle
        self.lock = threading.Lock()  # connections live on several workers
        self.data: Dict[bytes, bytes] = {}

    def on_accept(self, conn: pyiocp.Connection) -> None:
        conn.timer = None
        self.rearm(conn)

    def on_recv(self, conn: pyiocp.Connection, request: bytes) -> None:
        self.rearm(conn)
        try:
            conn.send_frame(self.answer(request))
        except pyiocp.BufferFull:
            conn.abort()  # it sends requests and does not read the replies
        except pyiocp.ConnectionClosed:
            pass  # closing already (the server stops)

    def rearm(self, conn: pyiocp.Connection) -> None:
        """The idle timer starts again from now."""
        if conn.timer is not None:
            conn.timer.cancel()
        try:
            conn.timer = conn.call_later(self.idle, self.expire, conn)
        except pyiocp.ConnectionClosed:
            pass  # closing already: no timer needed

    def expire(self, conn: pyiocp.Connection) -> None:
        with contextlib.suppress(pyiocp.ConnectionClosed, pyiocp.BufferFull):
            conn.send_frame(b"BYE idle")
        conn.close()

    def answer(self, request: bytes) -> bytes:
        cmd, _, rest = request.partition(b" ")
        key, _, value = rest.partition(b" ")
        if not key or len(key) > MAX_KEY:
            return b"ERR a key is 1 to %d bytes" % MAX_KEY
        with self.lock:
            if cmd == b"SET":
                self.data[key] = value
                return b"OK"
            if cmd == b"GET":
                found = self.data.get(key)
                return b"NOTFOUND" if found is None else b"VALUE " + found
            if cmd == b"DEL":
                return b"NOTFOUND" if self.data.pop(key, None) is None else b"DELETED"
        return b"ERR unknown command " + cmd[:20]


def main(argv: Optional[List[str]] = None) -> None:
    ap = arguments(__doc__, port=7080, workers=2)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds a client may stay silent")
    args = ap.parse_args(argv)
    stop_on_signals()
    mgr = pyiocp.SocketManager(KV(args.idle), workers=args.workers, backend=args.backend,
                               recv_buffer_limit=2 * MAX_VALUE)
    serve(mgr, "kv_server", args.host, args.port, args.unix,
          framing=pyiocp.LengthPrefixed(max_size=MAX_KEY + MAX_VALUE + 16))


if __name__ == "__main__":
    main()
