"""A handler started on a loopback port, for tests."""

from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple, Type, Union

from .._handler import Handler
from .._args import DEFAULT_ACCEPTS, DEFAULT_BACKLOG
from .._listener import Listener
from .._manager import SocketManager
from .._pyiocp import Connection
from ._client import DEFAULT_TIMEOUT, Client
from ._events import _OPTIONAL, _handler_instance

__all__ = ["Server", "start_server"]

# Poll interval bounds while a client waits for the server's on_accept: the
# waiting thread may be the main thread, which must not block on a lock a
# worker takes (see _manager._wait_set), so it looks and sleeps.
_WAIT_FIRST = 0.0005
_WAIT_MAX = 0.01


class Server:
    """A started SocketManager running ``handler``, with one listener.

    ``address`` is the ``(host, port)`` to connect to; ``manager`` the
    SocketManager (for ``stats()``, ``connect()``, ``post()``, ...).
    Made by :func:`start_server`."""

    def __init__(self, manager: SocketManager, listener: Listener, handler: Handler, *,
                 accepted: Optional[Dict[Tuple[str, int], float]] = None) -> None:
        self.manager = manager
        self.listener = listener
        self.handler = handler
        self.address: Tuple[str, int] = listener.address
        # Peer address -> when its on_accept returned, kept for the server's
        # life: an entry older than a client's connect is an earlier
        # connection from the same port, not the client's.
        self._accepted = accepted

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

    def wait_accepted(self, client: Client, timeout: Optional[float] = None) -> None:
        """Wait until the server's ``on_accept`` for ``client``'s connection
        has returned, or the server closed that connection without one
        (over ``max_connections``), or the server is closed.
        ``TimeoutError`` after ``timeout`` seconds (default: the client's
        timeout). The ``iocp_client`` fixture does this before it returns."""
        if self._accepted is None:
            raise RuntimeError(f"{self!r} does not follow its accepts: make it with start_server()")
        if timeout is None:
            timeout = client.sock.gettimeout()
        limit = DEFAULT_TIMEOUT if timeout is None else timeout
        deadline = time.monotonic() + limit
        key = client.local
        delay = _WAIT_FIRST
        while True:
            at = self._accepted.get(key)
            if at is not None and at >= client._connect_started:
                return
            if self.manager.closed or client._closed_by_server():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self!r}: on_accept for {client!r} has not returned after {limit:g} s "
                                   f"(is it blocked? iocp_client(..., wait_accepted=False) does not wait)")
            time.sleep(min(delay, left))
            delay = min(delay * 2, _WAIT_MAX)

    def close(self, timeout: float = 5.0) -> None:
        """Close the manager (idempotent)."""
        self.manager.close(timeout)

    def __repr__(self) -> str:
        return f"<pyiocp.testing.Server {self.host}:{self.port} {type(self.handler).__name__}>"


class _Announcing(Handler):
    """Runs in a Server's manager in place of its handler, and notes each
    connection whose on_accept has returned (by peer address, with the
    time) for Server.wait_accepted. The engine calls the handler's own
    bound methods, kept as attributes of this instance, for every other
    callback; the class overrides on_send, on_drain and on_eof exactly when
    the handler's does, so the engine produces the same events, and has the
    name of the handler's class, which the engine's slow_callback_warning
    names (see _announcing)."""

    def __init__(self, handler: Handler, accepted: Dict[Tuple[str, int], float]) -> None:
        self._accept = handler.on_accept
        self._accepted = accepted
        for name in ("on_connect", "on_recv", "on_send", "on_drain", "on_eof", "on_close", "on_post", "on_error"):
            setattr(self, name, getattr(handler, name))

    def on_accept(self, conn: Connection) -> None:
        try:
            self._accept(conn)
        finally:
            peer = conn.peer
            if peer is not None:
                self._accepted[peer] = time.monotonic()

    def _shadowed(self, *args: Any) -> None:
        """What the class has for an optional callback the handler
        overrides: the instance's attribute, the handler's method, is what
        runs."""
        raise AssertionError("unreachable: shadowed by the handler's own method")


_classes: Dict[type, Type[_Announcing]] = {}


def _announcing(handler: Handler, accepted: Dict[Tuple[str, int], float]) -> _Announcing:
    cls = _classes.get(type(handler))
    if cls is None:
        methods: Dict[str, Any] = {name: _Announcing._shadowed for name in _OPTIONAL
                                   if getattr(type(handler), name) is not getattr(Handler, name)}
        # setdefault: of two threads making it at once, both use one class.
        cls = _classes.setdefault(type(handler), type(type(handler).__name__, (_Announcing,), methods))
    return cls(handler, accepted)


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
    handler = _handler_instance(handler)
    accepted: Dict[Tuple[str, int], float] = {}
    manager = SocketManager(_announcing(handler, accepted), **options)
    try:
        listener = manager.listen(host, port, backlog=backlog, accepts=accepts)
        manager.start()
    except BaseException:
        manager.close()
        raise
    return Server(manager, listener, handler, accepted=accepted)
