"""The pyiocp engine under an asyncio loop: a SocketManager in poll mode and
one thread that polls it, handing each batch of completions to the loop
with one call_soon_threadsafe. Everything else (protocols, transports)
runs on the loop's thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Dict, List, Optional

import pyiocp
from pyiocp import Completion, Connection, _pyiocp

# The manager's send buffer: a transport keeps what does not fit in its own
# buffer (asyncio's transports never refuse a write), so this only bounds
# one connection's share of the engine's memory.
SEND_BUFFER_LIMIT = 4 << 20
# on_drain ("drain") comes once pending falls to this: asyncio's default
# low-water mark.
SEND_LOW_WATERMARK = 16 << 10
# How long close() of the manager lets connections flush.
CLOSE_TIMEOUT = 5.0

_STOP = object()  # posted to end the poll thread
# How often a quiet poll thread looks whether its loop was closed under it.
POLL_CHECK = 1.0


class _Manager(pyiocp.SocketManager):
    """Poll mode without "send" completions: a transport has no use for
    them, and they would be half of what reaches the loop."""

    def _event_mask(self, handler: Optional[pyiocp.Handler]) -> int:
        return _pyiocp.MASK_DRAIN | _pyiocp.MASK_EOF


class Engine:
    """One SocketManager for one loop. route(conn_id) finds the handler of a
    connection's completions; on_accept takes new connections; when the
    owner says it is done and no connection is left, the manager closes
    (in the poll thread: the loop never waits for it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, **options: Any) -> None:
        self.loop = loop
        options.setdefault("send_buffer_limit", SEND_BUFFER_LIMIT)
        options.setdefault("send_low_watermark", SEND_LOW_WATERMARK)
        self.manager = _Manager(None, **options)
        self.routes: Dict[int, Callable[[Completion], None]] = {}
        self.on_accept: Optional[Callable[[Connection], None]] = None
        self.on_idle: Optional[Callable[[], None]] = None  # called when the last connection is forgotten
        self.done = loop.create_future()
        self._ending = False
        self._stop_sent = False
        self._thread = threading.Thread(target=self._poll, name=f"pyiocp-aio-{name}", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        mgr = self.manager
        try:
            while True:
                batch = mgr.poll(POLL_CHECK)
                if any(c.kind == "post" and c.data is _STOP for c in batch):
                    break
                if self.loop.is_closed() or batch and not self._send(self._dispatch, batch):
                    break  # the loop is gone: nobody left to serve
        except pyiocp.ManagerClosed:
            pass
        finally:
            mgr.close(CLOSE_TIMEOUT)
            self._send(self._closed)

    def _send(self, fn: Callable[..., None], *args: Any) -> bool:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:
            return False

    def _closed(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _dispatch(self, batch: List[Completion]) -> None:
        for c in batch:
            if c.kind == "accept":
                if self.on_accept is not None and not self._ending:
                    self.on_accept(c.conn)
                else:
                    c.conn.abort()
                continue
            if c.kind == "timer":
                c.data.callback(*c.data.args)
                continue
            if c.conn is None:
                continue
            route = self.routes.get(c.conn.id)
            if route is not None:
                route(c)
            elif c.kind not in ("send", "close"):
                c.conn.abort()  # nobody's: an accept the owner refused meanwhile
        self._maybe_end()

    def forget(self, conn_id: int) -> None:
        self.routes.pop(conn_id, None)
        if not self.routes and self.on_idle is not None:
            self.on_idle()
        self._maybe_end()

    def end_when_idle(self) -> None:
        """No new connections from now on; the manager closes once the last
        one has."""
        self._ending = True
        self._maybe_end()

    def _maybe_end(self) -> None:
        if self._ending and not self.routes and not self._stop_sent:
            self._stop_sent = True
            try:
                self.manager.post(_STOP)
            except pyiocp.ManagerClosed:
                pass
