"""A small blocking TCP client for tests of servers built on pyiocp."""

from __future__ import annotations

import select
import socket
import struct
import time
from typing import Any, Optional, Protocol, Tuple, Union

__all__ = ["Address", "Client", "address_of"]


class _HasAddress(Protocol):
    @property
    def address(self) -> Tuple[str, int]: ...


#: Where to connect: a ``(host, port)`` pair, or anything with an
#: ``.address`` such as a :class:`~pyiocp.testing.Server` or a
#: :class:`~pyiocp.Listener`.
Address = Union[Tuple[str, int], _HasAddress]

DEFAULT_TIMEOUT = 5.0
RECV_SIZE = 1 << 16


def address_of(target: Address) -> Tuple[str, int]:
    """The ``(host, port)`` of target."""
    if isinstance(target, tuple):
        host, port = target[0], target[1]
    else:
        host, port = target.address[0], target.address[1]
    if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"not an address: {target!r}")
    return host, port


class Client:
    """A blocking client connection: every call waits at most ``timeout``
    seconds (``TimeoutError`` after that).

    ``rcvbuf`` / ``sndbuf`` set the kernel's socket buffers before
    connecting (a small ``rcvbuf`` makes a server's sends back up quickly);
    ``nodelay`` (default true) sends small writes at once.
    """

    def __init__(
        self,
        address: Address,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        rcvbuf: Optional[int] = None,
        sndbuf: Optional[int] = None,
        nodelay: bool = True,
    ) -> None:
        host, port = address_of(address)
        self.address = (host, port)
        self._buf = bytearray()  # read past what recv_until returned
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if sndbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            if nodelay:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(timeout)
            # Before the connect: the server may accept before it returns.
            self._connect_started = time.monotonic()
            sock.connect(info[4])
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    # ------------------------------------------------------------ state

    @property
    def local(self) -> Tuple[str, int]:
        """This end's address (the server's ``conn.peer``)."""
        name = self.sock.getsockname()
        return name[0], name[1]

    @property
    def closed(self) -> bool:
        return self.sock.fileno() < 0

    def settimeout(self, timeout: Optional[float]) -> None:
        self.sock.settimeout(timeout)

    def _closed_by_server(self) -> bool:
        """Whether the server has closed or reset the connection, as far
        as can be seen without reading: nothing it sent is waiting to be
        read, and the next read would give the end of the stream or an
        error."""
        if self.closed:
            return False
        try:
            ready, _, _ = select.select([self.sock], [], [], 0)
            return bool(ready) and self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # ------------------------------------------------------------ I/O

    def send(self, data: bytes) -> None:
        """Send every byte of data (blocks while the server does not read)."""
        self.sock.sendall(data)

    def recv(self, n: int = RECV_SIZE) -> bytes:
        """Up to n bytes as they arrive; ``b""`` once the server has closed."""
        if self._buf:
            out = bytes(self._buf[:n])
            del self._buf[:n]
            return out
        return self.sock.recv(n)

    def recv_exactly(self, n: int) -> bytes:
        """Exactly n bytes; ``EOFError`` if the server closes first."""
        while len(self._buf) < n:
            chunk = self.sock.recv(max(RECV_SIZE, min(n - len(self._buf), 1 << 20)))
            if not chunk:
                got = len(self._buf)
                raise EOFError(f"the server closed after {got} of {n} bytes: {bytes(self._buf[:64])!r}...")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def recv_until(self, sep: bytes = b"\n", *, limit: int = 1 << 20) -> bytes:
        """The bytes up to and including the next ``sep``; ``EOFError`` if
        the server closes first, ``ValueError`` past ``limit`` bytes."""
        start = 0
        while True:
            i = self._buf.find(sep, start)
            if i >= 0:
                end = i + len(sep)
                out = bytes(self._buf[:end])
                del self._buf[:end]
                return out
            if len(self._buf) > limit:
                raise ValueError(f"no {sep!r} in the first {limit} bytes")
            start = max(0, len(self._buf) - len(sep) + 1)
            chunk = self.sock.recv(RECV_SIZE)
            if not chunk:
                raise EOFError(f"the server closed before {sep!r}; got {bytes(self._buf[:200])!r}")
            self._buf += chunk

    def recv_until_eof(self) -> bytes:
        """Everything until the server closes the connection."""
        out = bytearray(self._buf)
        self._buf.clear()
        while True:
            chunk = self.sock.recv(RECV_SIZE)
            if not chunk:
                return bytes(out)
            out += chunk

    # ------------------------------------------------------------ ending

    def shutdown_write(self) -> None:
        """Half-close: send FIN, keep reading (the server sees ``on_eof``)."""
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close cleanly (FIN). Idempotent."""
        self.sock.close()

    def reset(self) -> None:
        """Close with a reset (RST, SO_LINGER 0): the server's ``on_close``
        gets ``ConnectionResetError`` (or sees the reset on its next write).
        Idempotent."""
        if not self.closed:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.local[0]}:{self.local[1]}"
        return f"<pyiocp.testing.Client {state} -> {self.address[0]}:{self.address[1]}>"
