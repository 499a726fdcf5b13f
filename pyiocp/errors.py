"""Exceptions raised by pyiocp.

Each is a subclass of :class:`Error` and of the builtin exception a caller
would naturally catch, so ``except ConnectionError`` and ``except
pyiocp.ConnectionClosed`` both work. Timeouts use the builtin
:class:`TimeoutError`; OS errors are :class:`OSError` with ``errno`` set.
"""


class Error(Exception):
    """Base class of pyiocp's own exceptions."""


class ConnectionClosed(Error, ConnectionError):
    """The connection is closing or closed (or the reference is stale)."""


class BufferFull(Error, BlockingIOError):
    """send() would take the pending bytes over send_buffer_limit.

    Nothing was queued; on_drain follows once the buffer has drained to the
    low watermark.
    """


class ProtocolError(Error):
    """A peer broke the connection's framing rules."""


class ManagerClosed(Error, RuntimeError):
    """The SocketManager is closing or closed."""


__all__ = ["Error", "ConnectionClosed", "BufferFull", "ProtocolError", "ManagerClosed"]
