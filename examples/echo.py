"""An echo server on pyiocp: every byte a client sends comes back.

    python examples/echo.py [--host 127.0.0.1] [--port 7007 | --unix PATH] [--workers 1] [--backend auto]
                            [--tls-cert server.pem --tls-key server.key]

Drive it with the built-in load generator:

    python -m pyiocp bench --port 7007 --conns 50 --size 64

A peer that writes far ahead of what it reads fills the send buffer; then
this server stops reading from it until the buffer drains (``on_drain``),
so TCP slows the peer down and memory stays bounded.
"""

from __future__ import annotations

from typing import List, Optional

import pyiocp
from _serving import arguments, serve, stop_on_signals, tls_config


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
    ap = arguments(__doc__, port=7007, tls=True)
    ap.add_argument("--first-data", action="store_true",
                    help="accept a connection only once its peer has sent something (listen(first_data=True))")
    args = ap.parse_args(argv)
    tls = tls_config(args)
    stop_on_signals()
    mgr = pyiocp.SocketManager(Echo(), workers=args.workers, backend=args.backend)
    first = {"first_data": True} if args.first_data else {}
    serve(mgr, "echo", args.host, args.port, args.unix, tls=tls, **first)


if __name__ == "__main__":
    main()
