"""The types of the pytest plugin's fixtures, for annotating tests::

    from pyiocp.testing import ClientFactory, ServerFactory

    def test_echo(iocp_server: ServerFactory, iocp_client: ClientFactory) -> None:
        ...
"""

from __future__ import annotations

from typing import Any, Optional, Protocol, Sequence, Type, Union

from .._handler import Handler
from .._manager import SocketManager
from .._pyiocp import Connection
from ._client import Address, Client
from ._events import Event, EventRecorder
from ._server import Server

__all__ = ["ClientFactory", "EventsFactory", "ManagerFactory", "ServerFactory"]


class ManagerFactory(Protocol):
    """The ``iocp_manager`` fixture."""

    def __call__(self, handler: Optional[Handler] = None, *, start: bool = True, **options: Any) -> SocketManager: ...


class ServerFactory(Protocol):
    """The ``iocp_server`` fixture."""

    def __call__(self, handler: Union[Handler, Type[Handler]], *, host: str = "127.0.0.1", port: int = 0,
                 backlog: int = ..., accepts: int = ..., **options: Any) -> Server: ...


class ClientFactory(Protocol):
    """The ``iocp_client`` fixture."""

    def __call__(self, address: Address, *, timeout: float = ..., rcvbuf: Optional[int] = None,
                 sndbuf: Optional[int] = None, nodelay: bool = True, wait_accepted: bool = True) -> Client: ...


class EventsFactory(Protocol):
    """The ``expect_events`` fixture."""

    def __call__(self, handler: Union[Handler, Type[Handler]], expected: Optional[Sequence[Event]] = None, *,
                 conn: Union[int, Connection] = 0, timeout: float = ...) -> EventRecorder: ...
