"""pyiocp: the I/O completion port model for Python, on a Go engine.

Post accepts, receives and sends; take completions off a queue; run a
handler, on Python threads::

    import pyiocp

    class Echo(pyiocp.Handler):
        def on_recv(self, conn, data):
            conn.send(data)

    with pyiocp.SocketManager(Echo(), workers=2) as mgr:
        mgr.listen("127.0.0.1", 7000)
        mgr.serve_forever()
"""

from . import _pyiocp, errors
from ._handler import Handler
from ._listener import Listener
from ._manager import Completion, SocketManager
from ._pool import ConnectionPool
from ._pyiocp import Connection, Timer, backends
from ._framing import LengthPrefixed, Lines
from ._serve import serve
from ._sockopts import KeepAlive
from ._tls import TLSConfig, TLSInfo
from ._udp import DatagramEndpoint
from .errors import BufferFull, ConnectionClosed, Error, ManagerClosed, ProtocolError, TLSError, TooManyConnections

_pyiocp._init(errors)

__version__ = "0.1.0"

__all__ = [
    "BufferFull",
    "Completion",
    "Connection",
    "ConnectionClosed",
    "ConnectionPool",
    "DatagramEndpoint",
    "Error",
    "Handler",
    "KeepAlive",
    "LengthPrefixed",
    "Lines",
    "Listener",
    "ManagerClosed",
    "ProtocolError",
    "SocketManager",
    "TLSConfig",
    "TLSError",
    "TLSInfo",
    "Timer",
    "TooManyConnections",
    "backends",
    "errors",
    "serve",
]
