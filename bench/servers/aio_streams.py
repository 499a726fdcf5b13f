"""The streams rows' server: an echo on asyncio streams (StreamReader and
StreamWriter, read/write/drain), served by asyncio's own transports or by
pyiocp.aio, on the default loop or uvloop.

    python bench/servers/aio_streams.py --loop uvloop [--pyiocp [--backend io_uring]] [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    server: asyncio.AbstractServer
    if args.pyiocp:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        import pyiocp.aio

        ours = await pyiocp.aio.start_server(echo, "127.0.0.1", args.port, backend=args.backend, backlog=1024)
        server, (host, port) = ours, ours.address
    else:
        theirs = await asyncio.start_server(echo, "127.0.0.1", args.port, backlog=1024)
        server, (host, port) = theirs, theirs.sockets[0].getsockname()[:2]
    print(f"aio_streams: listening on {host}:{port}", flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    await stop
    server.close()


def main() -> None:
    ap = argparse.ArgumentParser(prog="aio_streams")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--pyiocp", action="store_true", help="serve through pyiocp.aio")
    ap.add_argument("--backend", default="auto")
    args = ap.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
