"""The servers of the CPU-heavy rows: each message costs about 50 us of
pure-Python work (a JSON document decoded and encoded again) before it is
echoed. What spreads that work over the cores is what these rows compare:
pyiocp's worker threads (which take turns under the GIL and run at once on
a free-threaded interpreter), `pyiocp serve`'s processes, and uvloop (one
loop, one core, by construction).

    python bench/servers/heavy_echo.py pyiocp [--workers N] [--backend io_uring]
    python bench/servers/heavy_echo.py serve --processes N
    python bench/servers/heavy_echo.py uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import cast

import pyiocp

# About 50 us per call with Debian's CPython 3.11 on the benchmark machine.
DOC = {"id": 12345, "name": "widget", "tags": ["a", "b", "c", "d"], "price": 19.99,
       "items": [{"sku": i, "qty": i * 2, "ok": True, "note": "x" * 8} for i in range(70)]}
TEXT = json.dumps(DOC)


def work() -> None:
    json.dumps(json.loads(TEXT))


class Heavy(pyiocp.Handler):
    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        work()
        conn.send(data)


class HeavyProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        work()
        self.transport.write(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("impl", choices=["pyiocp", "serve", "uvloop"])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--processes", type=int, default=1)
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    if args.impl == "serve":
        # serve announces "listening on HOST:PORT" in its log (stderr): the
        # suite reads stdout, so the log goes there. Each process imports
        # this module by name (the suite runs servers with the tree on PYTHONPATH).
        os.dup2(sys.stdout.fileno(), sys.stderr.fileno())
        sys.exit(pyiocp.serve("bench.servers.heavy_echo:Heavy", bind="127.0.0.1:0", processes=args.processes,
                              workers=args.workers, backend=args.backend, graceful_timeout=2.0,
                              log_level="info"))
    if args.impl == "uvloop":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from aio_main import run_with

        sys.argv = [sys.argv[0], "--loop", "uvloop"]
        run_with("heavy_echo", lambda ap: None, lambda a: HeavyProtocol)
        return
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
    from _serving import serve, stop_on_signals

    stop_on_signals()
    serve(pyiocp.SocketManager(Heavy(), workers=args.workers, backend=args.backend), "heavy_echo",
          "127.0.0.1", 0)


if __name__ == "__main__":
    main()
