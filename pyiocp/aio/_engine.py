"""The pyiocp engine under an asyncio loop: a SocketManager in poll mode,
driven from the loop's own thread. The loop watches the engine's
descriptor (add_reader) and runs a round that never blocks when it turns
readable, when the engine has more to do, and at its next deadline;
protocols and transports run in those rounds. Where the loop cannot watch
the engine (Windows: the iocp port is no descriptor, and the Proactor loop
has no add_reader), one thread polls it and hands each batch to the loop
with one call_soon_threadsafe."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any, Callable, Dict, List, Optional, Protocol

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
# Completions one round hands the loop at most: the rest wait for the next
# round, so that the loop's other callbacks run in between.
BATCH = 64

_STOP = object()  # posted to end the engine once it has no connection
# How often a quiet poll thread looks whether its loop was closed under it.
POLL_CHECK = 1.0


class _Receiver(Protocol):
    """What the hot path needs of a transport (a Transport)."""

    _protocol: Any

    def _fatal(self, exc: BaseException, message: str) -> None: ...


class _Manager(pyiocp.SocketManager):
    """Poll mode without "send" completions: a transport has no use for
    them, and they would be half of what reaches the loop."""

    def _event_mask(self, handler: Optional[pyiocp.Handler]) -> int:
        return _pyiocp.MASK_DRAIN | _pyiocp.MASK_EOF


class Engine:
    """One SocketManager for one loop. route(conn_id) finds the handler of a
    connection's completions; on_accept takes new connections; when the
    owner says it is done and no connection is left, the manager closes
    (in a thread of its own: the loop never waits for it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, name: str, **options: Any) -> None:
        self.loop = loop
        options.setdefault("send_buffer_limit", SEND_BUFFER_LIMIT)
        options.setdefault("send_low_watermark", SEND_LOW_WATERMARK)
        self.manager = _Manager(None, **options)
        self.routes: Dict[int, Callable[[Completion], None]] = {}
        # Transports whose receives go straight to their protocol's
        # data_received (see Transport._route_recv): the hot path skips
        # their route.
        self.receivers: Dict[Connection, "_Receiver"] = {}
        self.on_accept: Optional[Callable[[Connection], None]] = None
        self.on_idle: Optional[Callable[[], None]] = None  # called when the last connection is forgotten
        self.done = loop.create_future()
        self._name = name
        self._ending = False
        self._stop_sent = False
        self._stopped = False  # _STOP came back: the loop drives the manager no more
        self._soon: Optional[asyncio.Handle] = None  # the next round, when one is due at once
        self._timer: Optional[asyncio.TimerHandle] = None  # the next round, at the engine's deadline
        self._deadline = 0.0  # the loop's time of _timer
        self._fd: Optional[int] = None  # the descriptor the loop watches
        if not self._watch():
            threading.Thread(target=self._poll, name=f"pyiocp-aio-{name}", daemon=True).start()

    # Driven from the loop -------------------------------------------------

    def _watch(self) -> bool:
        """Has the loop watch the engine's descriptor; False where it cannot."""
        fd = self.manager._wait_fd()
        if fd is None:
            return False
        try:
            self.loop.add_reader(fd, self._readable)
        except NotImplementedError:
            return False
        self._fd = fd
        # A first round now: the engine counts as served from here (no
        # warning of a listener nobody polls), and it parks, so that what
        # is asked of it from now on wakes the descriptor.
        self._round()
        return True

    def _readable(self) -> None:
        if self._soon is None:  # else that round is on its way
            self._round()

    def _on_time(self) -> None:
        self._timer = None
        self._readable()

    def _round(self) -> None:
        """One round of the engine, its completions dispatched; then the
        next is arranged: at once if the engine has more, else when the
        descriptor turns readable or at the engine's next deadline."""
        self._soon = None
        park: Optional[int] = 0
        try:
            batch, park = self.manager._poll_park(BATCH)
            if batch:
                self._dispatch(batch)
        except pyiocp.ManagerClosed:
            park = None  # closed under the loop: nothing more to drive
        finally:
            if self._stopped or park is None:
                self._unwatch()
            elif park == 0:
                self._soon = self.loop.call_soon(self._round)
            else:
                self._park(park)

    def _park(self, ns: int) -> None:
        """Arranges a round for the engine's deadline, ns from now (-1:
        none), keeping the one arranged if it is for the same time."""
        if ns < 0:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            return
        # Whole milliseconds, rounded up: uvloop's timers count in them,
        # and a round run early would only find the deadline still ahead.
        when = self.loop.time() + math.ceil(ns / 1e6) / 1e3
        if self._timer is not None:
            if abs(when - self._deadline) < 1e-3:
                return
            self._timer.cancel()
        self._deadline = when
        self._timer = self.loop.call_at(when, self._on_time)

    def _unwatch(self) -> None:
        """The loop lets go of the engine, which closes in a thread of its
        own: closing lets connections flush, and the loop never waits."""
        assert self._fd is not None
        self.loop.remove_reader(self._fd)
        for h in (self._soon, self._timer):
            if h is not None:
                h.cancel()
        self._soon = self._timer = None
        threading.Thread(target=self._close, name=f"pyiocp-aio-{self._name}", daemon=True).start()

    def _close(self) -> None:
        try:
            self.manager.close(CLOSE_TIMEOUT)
        finally:
            self._send(self._closed)

    # Driven from a thread -------------------------------------------------

    def _poll(self) -> None:
        mgr = self.manager
        try:
            while True:
                batch = mgr.poll(POLL_CHECK)
                if self.loop.is_closed() or batch and not self._send(self._dispatch, batch):
                    break  # the loop is gone: nobody left to serve
                if any(c.kind == "post" and c.data is _STOP for c in batch):
                    break
        except pyiocp.ManagerClosed:
            pass
        finally:
            self._close()

    def _send(self, fn: Callable[..., None], *args: Any) -> bool:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:
            return False

    # Either way, on the loop ----------------------------------------------

    def _closed(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def _dispatch(self, batch: List[Completion]) -> None:
        routes, receivers = self.routes, self.receivers
        for c in batch:
            kind, conn, data, _ = c
            if kind == "recv":
                t = receivers.get(conn)
                if t is not None:
                    try:
                        t._protocol.data_received(data)
                    except (SystemExit, KeyboardInterrupt):
                        raise
                    except BaseException as exc:
                        t._fatal(exc, "Fatal error: protocol.data_received() call failed.")
                    continue
            if kind == "accept":
                if self.on_accept is not None and not self._ending:
                    self.on_accept(conn)
                else:
                    conn.abort()
            elif kind == "timer":
                data.callback(*data.args)
            elif conn is not None:
                route = routes.get(conn.id)
                if route is not None:
                    route(c)
                elif kind not in ("send", "close"):
                    conn.abort()  # nobody's: an accept the owner refused meanwhile
            elif data is _STOP:
                self._stopped = True
        self._maybe_end()

    def forget(self, conn: Connection) -> None:
        self.routes.pop(conn.id, None)
        self.receivers.pop(conn, None)
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
