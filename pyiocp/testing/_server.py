"""A handler started on a loopback port, for tests."""

from __future__ import annotations

from typing import Any, Tuple, Type, Union

from .._handler import Handler
from .._manager import DEFAULT_ACCEPTS, DEFAULT_BACKLOG, Listener, SocketManager

__all__ = ["Server", "start_server"]


class Server:
    """A started SocketManager running ``handler``, with one listener.

    ``address`` is the ``(host, port)`` to connect to; ``manager`` the
    SocketManager (for ``stats()``, ``connect()``, ``post()``, ...)."""

    def __init__(self, manager: SocketManager, listener: Listener, handler: Handler) -> None:
        self.manager = manager
        self.listener = listener
        self.handler = handler
        self.address: Tuple[str, int] = listener.address

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def connections(self) -> int:
        """Connections the server has open (0 once it is closed)."""
        return 0 if self.manager.closed else self.manager.connections

    def close(self, timeout: float = 5.0) -> None:
        """Close the manager (idempotent)."""
        self.manager.close(timeout)

    def __repr__(self) -> str:
        return f"<pyiocp.testing.Server {self.host}:{self.port} {type(self.handler).__name__}>"


def start_server(
    handler: Union[Handler, Type[Handler]],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    backlog: int = DEFAULT_BACKLOG,
    accepts: int = DEFAULT_ACCEPTS,
    **options: Any,
) -> Server:
    """Run ``handler`` (an instance, or a Handler class made with no
    arguments) on a new, started SocketManager made with ``options``,
    listening on ``host:port`` (port 0: a free one). Close it with
    ``server.close()``."""
    if isinstance(handler, type):
        if not issubclass(handler, Handler):
            raise TypeError(f"{handler.__name__} is not a pyiocp.Handler subclass")
        handler = handler()
    manager = SocketManager(handler, **options)
    try:
        listener = manager.listen(host, port, backlog=backlog, accepts=accepts)
        manager.start()
    except BaseException:
        manager.close()
        raise
    return Server(manager, listener, handler)
