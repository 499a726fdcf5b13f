"""``pyiocp echo``: an echo server, until Ctrl-C or SIGTERM; with
``--stats-port`` it also serves its statistics there (the endpoint ``top``
reads)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Any, Dict, Optional

from .._handler import Handler
from .._manager import SocketManager
from .._pyiocp import Connection
from ..errors import BufferFull, ConnectionClosed
from .common import EXIT_FAILED, EXIT_OK, _stop, unix_name


class EchoHandler(Handler):
    """Sends every byte back. A peer that writes far ahead of what it reads
    fills the send buffer: then reading pauses until the buffer drains, so
    the peer is slowed down by TCP instead of cut off."""

    def on_recv(self, conn: Connection, data: bytes) -> None:
        try:
            conn.send(data)
        except BufferFull:
            conn.unsent = data
            conn.pause_reading()

    def on_drain(self, conn: Connection) -> None:
        data = getattr(conn, "unsent", None)
        if data is not None:
            conn.unsent = None
            conn.send(data)
            conn.resume_reading()


MAX_STATS_LINE = 1024


class StatsEchoHandler(EchoHandler):
    """EchoHandler, except on the connections to the statistics port: there
    a ``stats`` line is answered with the manager's statistics as one JSON
    line."""

    def __init__(self) -> None:
        self.manager: Optional[SocketManager] = None
        self.stats_port = -1
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.stats_connections = 0

    def on_accept(self, conn: Connection) -> None:
        local = conn.local
        conn.is_stats = local is not None and local[1] == self.stats_port
        if conn.is_stats:
            conn.buf = bytearray()
            with self.lock:
                self.stats_connections += 1

    def on_recv(self, conn: Connection, data: bytes) -> None:
        if not conn.is_stats:
            super().on_recv(conn, data)
            return
        conn.buf += data
        while (end := conn.buf.find(b"\n")) >= 0:
            command = bytes(conn.buf[:end]).strip()
            del conn.buf[:end + 1]
            self.answer(conn, command)
        if len(conn.buf) > MAX_STATS_LINE:
            conn.close()

    def on_close(self, conn: Connection, error: Optional[BaseException]) -> None:
        if getattr(conn, "is_stats", False):
            with self.lock:
                self.stats_connections -= 1

    def answer(self, conn: Connection, command: bytes) -> None:
        reply: Dict[str, Any]
        if command == b"stats" and self.manager is not None:
            reply = self.manager.stats()
            reply["uptime"] = round(time.monotonic() - self.started, 3)
            with self.lock:
                reply["stats_connections"] = self.stats_connections
        else:
            reply = {"error": f"unknown command {command.decode('utf-8', 'replace')!r}; try 'stats'"}
        try:
            conn.send(json.dumps(reply).encode() + b"\n")
        except (BufferFull, ConnectionClosed):
            conn.abort()  # asks without reading the answers


def cmd_echo(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGTERM, _stop)
    # A server started in the background of a script inherits SIGINT
    # ignored; it should still stop on SIGINT like on Ctrl-C.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    handler = StatsEchoHandler() if args.stats_port is not None else EchoHandler()
    mgr: Optional[SocketManager] = None
    try:
        mgr = SocketManager(handler, workers=args.workers, backend=args.backend)
        if args.unix is not None:
            lst = mgr.listen_unix(unix_name(args.unix))
        else:
            lst = mgr.listen(args.host, args.port)
        if isinstance(handler, StatsEchoHandler):
            stats_lst = mgr.listen(args.host, args.stats_port)
            handler.manager = mgr
            handler.stats_port = stats_lst.address[1]
    except (OSError, ValueError) as exc:
        print(f"pyiocp echo: {exc}", file=sys.stderr)
        if mgr is not None:
            mgr.close()
        return EXIT_FAILED
    where = f"unix:{args.unix}" if args.unix is not None else "{}:{}".format(*lst.address)
    try:  # a signal right after the "listening" line still ends it quietly
        print(f"pyiocp echo: listening on {where} (workers={args.workers}, "
              f"backend={mgr.stats()['backend']})", flush=True)
        if isinstance(handler, StatsEchoHandler):
            print(f"pyiocp echo: stats on {args.host}:{handler.stats_port}", flush=True)
        mgr.serve_forever()
    except KeyboardInterrupt:
        mgr.close()
    return EXIT_OK
