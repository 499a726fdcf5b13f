"""Testing helpers for servers built on pyiocp, and the pytest plugin
(registered as the ``pytest11`` entry point ``pyiocp``: its fixtures
``iocp_manager``, ``iocp_server``, ``iocp_client`` and ``expect_events``
are there in every test once pyiocp is installed).

Usable without pytest too: :class:`Client` (a blocking client),
:func:`start_server`, :func:`record_events` and the misbehaving peers of
:mod:`pyiocp.testing.faults`.
"""

from . import faults
from ._client import Address, Client
from ._events import ANY, Event, EventRecorder, record_events
from ._leaks import fd_table, leaks_since, snapshot
from ._server import Server, start_server
from ._types import ClientFactory, EventsFactory, ManagerFactory, ServerFactory

__all__ = [
    "ANY",
    "Address",
    "Client",
    "ClientFactory",
    "Event",
    "EventRecorder",
    "EventsFactory",
    "ManagerFactory",
    "Server",
    "ServerFactory",
    "faults",
    "fd_table",
    "leaks_since",
    "record_events",
    "snapshot",
    "start_server",
]
