"""start_server and open_connection: asyncio's streams on the pyiocp engine."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Tuple

from ._server import Server, create_connection, create_server

# asyncio's StreamReader limit.
STREAM_LIMIT = 2**16


async def start_server(client_connected_cb: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any],
                       host: str = "127.0.0.1", port: int = 0, *, limit: int = STREAM_LIMIT,
                       **options: Any) -> Server:
    """asyncio.start_server on the pyiocp engine: client_connected_cb(reader,
    writer) per connection (a coroutine function is run as a task)."""
    loop = asyncio.get_running_loop()

    def factory() -> asyncio.BaseProtocol:
        reader = asyncio.StreamReader(limit=limit, loop=loop)
        return asyncio.StreamReaderProtocol(reader, client_connected_cb, loop=loop)

    return await create_server(factory, host, port, **options)


async def open_connection(host: str, port: int, *, limit: int = STREAM_LIMIT,
                          **options: Any) -> Tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio.open_connection on the pyiocp engine."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await create_connection(lambda: protocol, host, port, **options)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)
