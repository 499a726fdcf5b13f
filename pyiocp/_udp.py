"""DatagramEndpoint: a UDP socket of a SocketManager (bind_udp), and the
checks of its arguments."""

from __future__ import annotations

import itertools
import socket
import threading
from typing import TYPE_CHECKING, Any, Optional, Tuple, Union

from ._args import _int_arg
from .errors import ConnectionClosed

if TYPE_CHECKING:
    from ._manager import SocketManager

Address = Tuple[Any, ...]  # (host, port), or an IPv6 (host, port, flowinfo, scope_id) as socket gives it
Data = Union[bytes, bytearray, memoryview]

# The longest datagram an endpoint delivers: every one, by default.
MAX_DATAGRAM_SIZE = 65536

# Endpoint handles: the C side keys a manager's endpoints by them; never 0.
# Under a lock: without the GIL, two threads' next() on a count may return
# the same number.
_handles = itertools.count(1)
_handles_lock = threading.Lock()


def next_handle() -> int:
    with _handles_lock:
        return next(_handles)


def ip_port(addr: Any, name: str) -> Tuple[str, int]:
    """addr's numeric host and port; the Go side says ValueError to a host
    that is not an IP address."""
    if not isinstance(addr, tuple) or len(addr) not in (2, 4):
        raise TypeError(f"{name} must be a (host, port) tuple, not {addr!r}")
    host, port = addr[0], addr[1]
    if not isinstance(host, str):
        raise TypeError(f"{name}: the host must be a str (an IP address), not {type(host).__name__}")
    return host, _int_arg(f"{name} port", port, 1, 65535)


def resolve_remote(remote: Any, v6: bool) -> Tuple[str, int]:
    """bind_udp's remote as a numeric address in the endpoint's family
    (an IPv6 endpoint takes either)."""
    host, port = ip_port(remote, "remote")
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    for info in infos:
        if v6 or info[0] == socket.AF_INET:
            return info[4][0], port
    raise ValueError(f"remote {remote!r}: an IPv4 endpoint's remote must have an IPv4 address")


def datagram_size_arg(size: Optional[int]) -> int:
    """The receive size for the Go side: 0 keeps the engine's (every
    datagram fits)."""
    if size is None:
        return 0
    return _int_arg("datagram_size", size, 1, MAX_DATAGRAM_SIZE)


class DatagramEndpoint:
    """A UDP socket bound by SocketManager.bind_udp.

    Datagrams arrive as Handler.on_datagram(endpoint, data, addr) (a
    "datagram" Completion in poll mode), each whole, with the (host, port)
    it came from; sendto(data, addr) to that address replies. sendto is
    safe from any thread.
    """

    __slots__ = ("_manager", "_handle", "address", "remote", "_closed", "__weakref__")

    def __init__(self, manager: "SocketManager", handle: int, address: Tuple[str, int],
                 remote: Optional[Tuple[str, int]]) -> None:
        self._manager = manager
        self._handle = handle
        self.address = address  # (host, port) it is bound to
        self.remote = remote  # a connected endpoint's peer, else None
        self._closed = False

    def sendto(self, data: Data, addr: Optional[Address] = None) -> None:
        """Queue data as one datagram to addr ((host, port), host an IP
        address; None for a connected endpoint's remote). It is copied, and
        sent by the endpoint's worker. BufferFull (nothing queued) when the
        queued bytes would pass send_buffer_limit; ValueError for a
        datagram over 65507 bytes (65527 to an IPv6 address) or an address
        the endpoint cannot send to; ConnectionClosed after close()."""
        if self._closed:
            raise ConnectionClosed("the endpoint is closed")
        ip, port = ("", 0) if addr is None else ip_port(addr, "addr")
        self._manager._engine.sendto(self._handle, data, ip, port)

    def close(self) -> None:
        """Stop receiving: no on_datagram from now on (one already running
        on another thread ends normally). What sendto queued is still
        sent, then the socket closes. Idempotent."""
        if not self._closed:
            self._closed = True
            self._manager._close_endpoint(self._handle)

    @property
    def closed(self) -> bool:
        """close() was called, or the manager closed the endpoint."""
        return self._closed or self._manager._endpoint_closed(self._handle)

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<pyiocp.DatagramEndpoint address={self.address!r}{state}>"
