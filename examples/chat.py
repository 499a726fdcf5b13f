"""A chat server on pyiocp: a line protocol, each message broadcast to
every other client.

    python examples/chat.py [--host 127.0.0.1] [--port 7070] [--workers 2] [--backend auto]

    nc 127.0.0.1 7070          # in two or more terminals

Client lines (UTF-8, ending in a newline, at most 4096 bytes before it):

    /nick NAME     take a name (letters, digits, - and _; at most 32)
    /who           list who is here
    /quit          leave
    anything else  a message to everyone else

Server lines: ``* welcome, you are guest1``, ``<alice> hello``,
``* bob joined``, ``* bob left``, ``* bob is now known as carol``,
``* here: alice, carol``, and ``! ...`` for an error.

The engine splits the lines (``framing=pyiocp.Lines(...)``): ``on_recv``
gets one whole line, and a line over the limit closes its connection
(``on_close`` gets a ``pyiocp.ProtocolError``) before the rest of it is
even read.

Connections live on several workers; ``conn.send`` is safe from any thread,
so the worker that reads a message writes it to every other member's
connection itself. A member that stops reading while the others talk fills
its send buffer (``BufferFull``): it is dropped, rather than let it hold
everyone's messages in memory.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
from typing import Dict, List, Optional

import pyiocp
from _serving import arguments, serve, stop_on_signals

log = logging.getLogger("pyiocp.examples.chat")

MAX_LINE = 4096
NICK = re.compile(r"[A-Za-z0-9_-]{1,32}\Z")


class Chat(pyiocp.Handler):
    """Per connection: ``nick``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.members: Dict[int, pyiocp.Connection] = {}
        self.guests = itertools.count(1)

    # ------------------------------------------------------------ events

    def on_accept(self, conn: pyiocp.Connection) -> None:
        with self.lock:
            conn.nick = f"guest{next(self.guests)}"
            self.members[conn.id] = conn
        self.tell(conn, f"* welcome, you are {conn.nick}")
        self.broadcast(f"* {conn.nick} joined", conn)

    def on_recv(self, conn: pyiocp.Connection, line: bytes) -> None:
        self.command(conn, line.rstrip(b"\r").decode("utf-8", "replace"))

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        if isinstance(error, pyiocp.ProtocolError):
            log.warning("%s: dropped: %s", conn.nick, error)
        with self.lock:
            was_member = self.members.pop(conn.id, None) is not None
        if was_member:
            self.broadcast(f"* {conn.nick} left", conn)

    # ------------------------------------------------------------ protocol

    def command(self, conn: pyiocp.Connection, line: str) -> None:
        """Act on one line."""
        if not line.startswith("/"):
            if line:
                self.broadcast(f"<{conn.nick}> {line}", conn)
            return
        cmd, _, arg = line.partition(" ")
        if cmd == "/nick":
            self.rename(conn, arg.strip())
        elif cmd == "/who":
            with self.lock:
                names = sorted(c.nick for c in self.members.values())
            self.tell(conn, "* here: " + ", ".join(names))
        elif cmd == "/quit":
            self.tell(conn, "* bye")
            conn.close()
        else:
            self.tell(conn, f"! unknown command {cmd}")

    def rename(self, conn: pyiocp.Connection, nick: str) -> None:
        if not NICK.match(nick):
            self.tell(conn, "! a nick is 1-32 letters, digits, - or _")
            return
        with self.lock:
            taken = any(c.nick == nick for c in self.members.values() if c is not conn)
            old = conn.nick
            if not taken:
                conn.nick = nick
        if taken:
            self.tell(conn, f"! {nick} is taken")
            return
        self.tell(conn, f"* you are now {nick}")
        self.broadcast(f"* {old} is now known as {nick}", conn)

    # ------------------------------------------------------------ sending

    def tell(self, conn: pyiocp.Connection, line: str) -> None:
        try:
            conn.send(line.encode() + b"\n")
        except pyiocp.BufferFull:
            log.warning("%s does not read: dropped", conn.nick)
            conn.abort()
        except pyiocp.ConnectionClosed:
            pass  # it left meanwhile; on_close tells the others

    def broadcast(self, line: str, sender: pyiocp.Connection) -> None:
        with self.lock:
            others = [c for c in self.members.values() if c is not sender]
        for conn in others:
            self.tell(conn, line)


def main(argv: Optional[List[str]] = None) -> None:
    ap = arguments(__doc__, port=7070, workers=2)
    ap.add_argument("--send-buffer-limit", type=int, default=1 << 20,
                    help="bytes queued for one member before it is dropped as a non-reader")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    stop_on_signals()
    mgr = pyiocp.SocketManager(Chat(), workers=args.workers, backend=args.backend,
                               send_buffer_limit=args.send_buffer_limit)
    serve(mgr, "chat", args.host, args.port, args.unix, framing=pyiocp.Lines(max_line=MAX_LINE))


if __name__ == "__main__":
    main()
