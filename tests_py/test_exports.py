"""The public names of the package are pinned here: adding or removing one
is a decision, not an accident."""

import ssl

import pyiocp
import pyiocp.errors


def test_public_names() -> None:
    assert sorted(pyiocp.__all__) == [
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
    for name in pyiocp.__all__:
        assert hasattr(pyiocp, name), name


def test_error_hierarchy() -> None:
    e = pyiocp.errors
    assert issubclass(e.ConnectionClosed, e.Error) and issubclass(e.ConnectionClosed, ConnectionError)
    assert issubclass(e.BufferFull, e.Error) and issubclass(e.BufferFull, BlockingIOError)
    assert issubclass(e.ManagerClosed, e.Error) and issubclass(e.ManagerClosed, RuntimeError)
    assert issubclass(e.ProtocolError, e.Error)
    assert issubclass(e.TooManyConnections, e.Error) and issubclass(e.TooManyConnections, OSError)
    assert issubclass(e.TLSError, e.Error) and issubclass(e.TLSError, ssl.SSLError)
    assert sorted(e.__all__) == [
        "BufferFull", "ConnectionClosed", "Error", "ManagerClosed", "ProtocolError", "TLSError", "TooManyConnections",
    ]


def test_completion_fields() -> None:
    assert pyiocp.Completion._fields == ("kind", "conn", "data", "error")


def test_handler_callbacks() -> None:
    names = {n for n in vars(pyiocp.Handler) if n.startswith("on_")}
    assert names == {
        "on_accept", "on_connect", "on_recv", "on_send", "on_drain",
        "on_eof", "on_close", "on_post", "on_error", "on_datagram",
    }
