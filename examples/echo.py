"""An echo server on pyiocp: every byte a client sends comes back.

    python examples/echo.py [--host 127.0.0.1] [--port 7007] [--workers 1]

Drive it with the built-in load generator:

    python -m pyiocp bench --port 7007 --conns 50 --size 64
"""

import argparse

import pyiocp


class Echo(pyiocp.Handler):
    def on_recv(self, conn, data):
        try:
            conn.send(data)
        except pyiocp.BufferFull:
            # The peer writes faster than it reads: keep this piece, stop
            # reading (TCP slows the peer down) until the buffer drains.
            conn.unsent = data
            conn.pause_reading()

    def on_drain(self, conn):
        data = getattr(conn, "unsent", None)
        if data is not None:
            conn.unsent = None
            conn.send(data)
            conn.resume_reading()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7007)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    with pyiocp.SocketManager(Echo(), workers=args.workers) as mgr:
        host, port = mgr.listen(args.host, args.port).address
        print(f"echo: listening on {host}:{port}", flush=True)
        try:
            mgr.serve_forever()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
