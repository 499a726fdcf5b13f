"""The asyncio yardstick of the benchmarks: an asyncio Protocol echo server,
on the default loop or on uvloop.

    python bench/servers/aio_echo.py --loop asyncio|uvloop [--port 0]
"""

import argparse
import asyncio
import signal
from typing import cast


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port, backlog=1024)  # as pyiocp's listen()
    host, port = server.sockets[0].getsockname()[:2]
    print(f"aio_echo: listening on {host}:{port}", flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set_result, None)
    await stop
    server.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
