"""The Handler base class: subclass it and override the callbacks you need."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Optional, Tuple

if TYPE_CHECKING:
    from ._pyiocp import Connection
    from ._udp import DatagramEndpoint

logger = logging.getLogger("pyiocp")


class Handler:
    """Receives a SocketManager's events on its worker threads.

    Callbacks of one connection come in order and never two at once; the
    same Connection object is passed to every callback of a connection. A
    callback that blocks stalls only its own worker: hand long work to a
    thread pool and reply with ``conn.send`` from there (safe from any
    thread).
    """

    def on_accept(self, conn: Connection) -> None:
        """An inbound connection is open."""

    def on_connect(self, conn: Connection) -> None:
        """An outbound connection (from SocketManager.connect) is open."""

    def on_recv(self, conn: Connection, data: bytes) -> None:
        """Bytes arrived."""

    def on_send(self, conn: Connection, nbytes: int) -> None:
        """nbytes were written. Only called when overridden; the counts add
        up to every byte sent."""

    def on_drain(self, conn: Connection) -> None:
        """The pending bytes fell to the low watermark after the send buffer
        filled up (send raised BufferFull or pending passed the watermark)."""

    def on_eof(self, conn: Connection) -> None:
        """The peer half-closed (sent FIN). The default closes the connection
        once pending bytes are written; override it to keep sending."""
        conn.close()

    def on_close(self, conn: Connection, error: Optional[BaseException]) -> None:
        """The connection is gone: exactly once per connection. error is None
        after a clean close by either side, an OSError (such as
        ConnectionResetError) after a reset or I/O error, TimeoutError after
        a timeout."""

    def on_datagram(self, endpoint: DatagramEndpoint, data: bytes, addr: Tuple[str, int]) -> None:
        """A datagram arrived on endpoint (SocketManager.bind_udp) from addr,
        (host, port): endpoint.sendto(reply, addr) answers it. Whole, never
        split or merged; UDP may drop or reorder them. Ignored by default."""

    def on_post(self, payload: Any) -> None:
        """payload came from SocketManager.post()."""

    def on_error(self, conn: Optional[Connection], exc: BaseException) -> None:
        """A callback raised exc. The default logs it with its traceback to
        the "pyiocp" logger and closes the connection. After on_datagram,
        conn is its DatagramEndpoint (closed by the default too)."""
        logger.error("callback raised for %r", conn, exc_info=exc)
        if conn is not None:
            conn.close()
