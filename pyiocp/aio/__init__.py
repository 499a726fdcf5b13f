"""asyncio on the pyiocp engine: existing asyncio.Protocol classes and
streams served and connected through pyiocp, on the running loop (asyncio's
default loop or uvloop).

    server = await pyiocp.aio.create_server(MyProtocol, "127.0.0.1", 8080)
    reader, writer = await pyiocp.aio.open_connection("127.0.0.1", 8080)

The loop drives the engine from its own thread, watching the engine's
descriptor (on Windows, one thread per engine polls it and hands the loop
each batch); the protocols run on the loop's thread, as with asyncio's own
transports. See docs/asyncio.md.
"""

from ._server import Server, create_connection, create_server
from ._streams import open_connection, start_server
from ._transport import Transport

__all__ = ["Server", "Transport", "create_connection", "create_server", "open_connection", "start_server"]
