"""Exceptions raised by pyiocp.

Each is a subclass of :class:`Error` and of the builtin exception a caller
would naturally catch, so ``except ConnectionError`` and ``except
pyiocp.ConnectionClosed`` both work. Timeouts use the builtin
:class:`TimeoutError`; OS errors are :class:`OSError` with ``errno`` set.
"""

import ssl


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
    """A peer broke the connection's framing (pyiocp.Lines,
    pyiocp.LengthPrefixed): a frame over max_line, max_size or
    recv_buffer_limit. on_close gets it; the message says which limit."""


class ManagerClosed(Error, RuntimeError):
    """The SocketManager is closing or closed."""


class TooManyConnections(Error, OSError):
    """connect() would take the open connections (accepted and outbound
    together) over max_connections; nothing was opened.

    An OSError with errno EMFILE, like the connect() that finds the process
    out of file descriptors, so code that handles running out of sockets
    handles both; catch this class to tell the cap from the OS limit.
    """


class TLSError(Error, ssl.SSLError):
    """TLS ended the connection: its handshake failed (the server's
    certificate not trusted or for another name, no version or cipher in
    common, the peer's alert, handshake_timeout), or later a record was
    broken or the peer sent an alert. on_close gets it; the message says
    why."""


__all__ = ["Error", "ConnectionClosed", "BufferFull", "ProtocolError", "ManagerClosed", "TooManyConnections",
           "TLSError"]
