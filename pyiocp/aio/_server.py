"""create_server and create_connection: asyncio's, on the pyiocp engine."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Callable, Optional, Tuple

import pyiocp
from pyiocp import Completion, Connection

from ._engine import Engine
from ._transport import Transport

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class Server(asyncio.AbstractServer):
    """A listening pyiocp engine serving protocol_factory's protocols on the
    loop. close() stops accepting (connections go on, as asyncio's);
    wait_closed() returns once they have all closed and the engine with
    them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, factory: ProtocolFactory, engine: Engine,
                 listener: pyiocp.Listener) -> None:
        self._loop = loop
        self._factory = factory
        self._engine = engine
        self._listener = listener
        self._serving = True
        engine.on_accept = self._accept

    @property
    def address(self) -> Any:
        """The listener's address: (host, port) (pyiocp's, not asyncio's)."""
        return self._listener.address

    @property
    def sockets(self) -> Tuple[Any, ...]:
        return ()  # the engine owns its sockets: none to hand out

    def get_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def is_serving(self) -> bool:
        return self._serving

    def close(self) -> None:
        if not self._serving:
            return
        self._serving = False
        self._listener.close()
        self._engine.end_when_idle()

    async def start_serving(self) -> None:
        pass  # serving from the start

    async def serve_forever(self) -> None:
        try:
            await asyncio.shield(self._engine.done)
        finally:
            self.close()

    async def wait_closed(self) -> None:
        if self._serving:
            # asyncio's wait_closed returns at once on a server not closed.
            return
        await asyncio.shield(self._engine.done)

    def _accept(self, conn: Connection) -> None:
        try:
            protocol = self._factory()
        except Exception as exc:
            conn.abort()
            self._loop.call_exception_handler({"message": "protocol_factory() failed", "exception": exc})
            return
        _made(Transport(self._engine, conn, protocol), protocol)

    def __repr__(self) -> str:
        return f"<pyiocp.aio.Server {self._listener.address!r}{'' if self._serving else ' closed'}>"


def _made(t: Transport, protocol: asyncio.BaseProtocol) -> None:
    try:
        protocol.connection_made(t)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:
        t._fatal(exc, "Fatal error: protocol.connection_made() call failed.")


async def create_server(protocol_factory: ProtocolFactory, host: str = "127.0.0.1", port: int = 0,
                        *, workers: int = 1, backend: str = "auto", **listen_options: Any) -> Server:
    """Serve protocol_factory's protocols on host:port with the pyiocp
    engine, on the running loop: existing asyncio.Protocol classes run
    unchanged. listen_options are SocketManager.listen()'s (backlog,
    reuse_port, tls, first_data, ...)."""
    loop = asyncio.get_running_loop()
    engine = Engine(loop, "server", backend=backend)
    try:
        listener = engine.manager.listen(host, port, **listen_options)
    except BaseException:
        engine.end_when_idle()
        await asyncio.shield(engine.done)
        raise
    return Server(loop, protocol_factory, engine, listener)


# The client connections of each loop: one engine, made on demand and
# closed when its last connection has.
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Engine]" = weakref.WeakKeyDictionary()


def _client_engine(loop: asyncio.AbstractEventLoop) -> Engine:
    engine = _clients.get(loop)
    if engine is not None:
        return engine
    made = _clients[loop] = Engine(loop, "client")

    def retire() -> None:  # the last connection is gone: so is the engine
        if _clients.get(loop) is made:
            del _clients[loop]
        made.end_when_idle()

    made.on_idle = retire
    return made


async def create_connection(protocol_factory: ProtocolFactory, host: str, port: int,
                            **connect_options: Any) -> Tuple[Transport, asyncio.BaseProtocol]:
    """Connect to host:port with the pyiocp engine and return (transport,
    protocol) once connected, as loop.create_connection does. connect_options
    are SocketManager.connect()'s (timeout, tls, ...); a failed connect
    raises its error (ConnectionRefusedError, TimeoutError, ...)."""
    loop = asyncio.get_running_loop()
    engine = _client_engine(loop)
    done: "asyncio.Future[Tuple[Transport, asyncio.BaseProtocol]]" = loop.create_future()
    conn = engine.manager.connect(host, port, **connect_options)

    def connected(c: Completion) -> None:
        if c.kind == "close":
            engine.forget(conn)
            if not done.done():
                done.set_exception(c.error or ConnectionError(f"the connection to {host}:{port} closed"))
            return
        if c.kind != "connect":
            return
        protocol = protocol_factory()
        t = Transport(engine, conn, protocol)
        _made(t, protocol)
        if not done.done():
            done.set_result((t, protocol))

    engine.routes[conn.id] = connected
    try:
        return await done
    except asyncio.CancelledError:
        conn.abort()
        raise
