"""Listener: a listening socket of a SocketManager."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from ._manager import SocketManager
    from ._tls import TLSConfig


class Listener:
    """A listening socket of a SocketManager."""

    def __init__(self, manager: "SocketManager", handle: int, address: Any,
                 tls: "Optional[TLSConfig]" = None) -> None:
        # (host, port); a Unix domain listener's: its path (a str). Any, as
        # socket.getsockname() is typed.
        self._manager = manager
        self._handle = handle
        self.address = address
        self._closed = False
        self.tls = tls

    def reload_tls(self, config: "TLSConfig") -> None:
        """New handshakes use config (rotated certificates, say);
        connections already accepted keep theirs. The handshake timeout
        stays the listener's first. ValueError on a listener without TLS."""
        if self.tls is None:
            raise ValueError("reload_tls: the listener was not made with tls=")
        if self._closed:
            raise ValueError("reload_tls: the listener is closed")
        self._manager._reload_tls(self._handle, config)
        self.tls = config

    def close(self) -> None:
        """Stop accepting; the socket closes once its posted accepts are
        cancelled. Idempotent."""
        if not self._closed:
            self._closed = True
            self._manager._close_listener(self._handle)

    @property
    def closed(self) -> bool:
        return self._closed or self._manager.closed

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<pyiocp.Listener address={self.address!r}{state}>"
