"""The asyncio yardstick of the benchmarks: an asyncio Protocol echo server,
on the default loop or on uvloop; with --pool each message goes through a
thread pool first (run_in_executor), as blocking work would, and the reply
is written back on the loop.

    python bench/servers/aio_echo.py --loop asyncio|uvloop [--port 0] [--pool]
"""

import argparse
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, cast

from aio_main import run_with  # beside this file


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


POOL = ThreadPoolExecutor(4)


def job(data: bytes) -> bytes:
    return data


class PoolEcho(Echo):
    def data_received(self, data: bytes) -> None:
        fut = asyncio.get_running_loop().run_in_executor(POOL, job, data)
        fut.add_done_callback(self.reply)

    def reply(self, fut: "asyncio.Future[bytes]") -> None:
        if not self.transport.is_closing():  # the client may be gone by now
            self.transport.write(fut.result())


def options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--pool", action="store_true", help="each message through a thread pool")


def protocol(args: argparse.Namespace) -> Callable[[], asyncio.BaseProtocol]:
    return PoolEcho if args.pool else Echo


if __name__ == "__main__":
    run_with("aio_echo", options, protocol)
