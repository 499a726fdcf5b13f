"""Listener: a listening socket of a SocketManager."""

from __future__ import annotations

from typing import TYPE_CHECKING, Tuple

if TYPE_CHECKING:
    from ._manager import SocketManager


class Listener:
    """A listening socket of a SocketManager."""

    def __init__(self, manager: "SocketManager", handle: int, address: Tuple[str, int]) -> None:
        self._manager = manager
        self._handle = handle
        self.address = address
        self._closed = False

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
