"""The asyncio yardstick of the benchmarks: an asyncio Protocol echo server,
on the default loop or on uvloop.

    python bench/servers/aio_echo.py --loop asyncio|uvloop [--port 0]
"""

import asyncio
from typing import cast

from aio_main import run  # beside this file


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


if __name__ == "__main__":
    run("aio_echo", Echo)
