"""An echo server on pyiocp: every byte a client sends comes back.

    python examples/echo.py [--host 127.0.0.1] [--port 7007] [--workers 1] [--backend auto]

Drive it with the built-in load generator:

    python -m pyiocp bench --port 7007 --conns 50 --size 64

A peer that writes far ahead of what it reads fills the send buffer; then
this server stops reading from it until the buffer drains (``on_drain``),
so TCP slows the peer down and memory stays bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from types import FrameType
from typing import List, Optional

import pyiocp


class Echo(pyiocp.Handler):
    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        try:
            conn.send(data)
        except pyiocp.BufferFull:
            # The peer writes faster than it reads: keep this piece, stop
            # reading (TCP slows the peer down) until the buffer drains.
            conn.unsent = data
            conn.pause_reading()

    def on_drain(self, conn: pyiocp.Connection) -> None:
        data = getattr(conn, "unsent", None)
        if data is not None:
            conn.unsent = None
            conn.send(data)
            conn.resume_reading()


def main(argv: Optional[List[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7007)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--backend", default="auto", help="auto, or a backend such as epoll or io_uring")
    args = ap.parse_args(argv)

    def interrupt(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt

    # SIGTERM stops it like Ctrl-C (serve_forever would handle it too, but
    # only once it runs: this handler also covers a SIGTERM right after the
    # "listening" line); so does SIGINT even when the shell started it in
    # the background with SIGINT ignored.
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    mgr = pyiocp.SocketManager(Echo(), workers=args.workers, backend=args.backend)
    with mgr, contextlib.suppress(KeyboardInterrupt):  # Ctrl-C and SIGTERM end it quietly
        host, port = mgr.listen(args.host, args.port).address
        print(f"echo: listening on {host}:{port}", flush=True)
        mgr.serve_forever()


if __name__ == "__main__":
    main()
