"""pyiocp.ConnectionPool: outbound connections to one server, kept open
and handed out again, as an HTTP client's connection pool does."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Dict, Optional

from ._args import _int_arg, _seconds
from ._framing import Framing, framing_arg
from ._pyiocp import Connection
from .errors import ManagerClosed

if TYPE_CHECKING:
    from ._manager import SocketManager

# How often a waiting acquire() looks whether the manager closed.
_CHECK_EVERY = 0.25


class ConnectionPool:
    """Up to size connections to host:port on manager, reused.

    acquire() hands out an idle connection, or dials one (and waits until
    it is connected) while fewer than size are open, or waits for one to
    be released; release() gives it back. A connection that closes, in use
    or idle (the peer went away), leaves the pool at once; one idle longer
    than idle_timeout seconds is closed (None: never). Every event of a
    pooled connection still goes to the manager's handler, as any
    connection's: on_recv sees the replies. Thread-safe."""

    def __init__(self, manager: "SocketManager", host: str, port: int, *, size: int = 10,
                 idle_timeout: Optional[float] = 60.0, connect_timeout: Optional[float] = None,
                 framing: Framing = None) -> None:
        size = _int_arg("size", size, 1, 1 << 20)
        idle = 0.0 if idle_timeout is None else _seconds("idle_timeout", idle_timeout)
        if idle_timeout is not None and (idle == 0 or math.isinf(idle)):
            raise ValueError(f"idle_timeout={idle_timeout}: must be more than 0 (None: never)")
        if connect_timeout is not None:
            _seconds("connect_timeout", connect_timeout)
        if not isinstance(host, str) or not host:
            raise TypeError(f"host must be a non-empty str, not {host!r}")
        self._port = _int_arg("port", port, 1, 65535)
        self._host = host
        self._framing = framing_arg(framing)
        self._connect_timeout = connect_timeout
        self._manager = manager
        manager._check_open()
        self._pool = manager._engine.pool_new(size, int(idle * 1e9))
        self._closed = False
        self.size = size

    def acquire(self, timeout: Optional[float] = None) -> Connection:
        """A connection for the caller alone until release(). Blocks up to
        timeout seconds (None: no limit) for one to free; TimeoutError then.
        A dial that fails raises its error (ConnectionRefusedError,
        TimeoutError after connect_timeout, socket.gaierror ...)."""
        deadline = None if timeout is None else time.monotonic() + _seconds("timeout", timeout)
        while True:
            self._check_open()
            conn, dial, version = self._pool.take()
            if conn is not None:
                return conn
            if dial:
                return self._dial(deadline)
            self._wait(version, deadline)

    def _dial(self, deadline: Optional[float]) -> Connection:
        try:
            conn = self._manager.connect(self._host, self._port, timeout=self._connect_timeout,
                                         framing=self._framing)
        except BaseException:
            self._pool.adopt(None)
            raise
        self._pool.adopt(conn)
        try:
            while True:
                done, version = self._pool.ready(conn)
                if done:
                    return conn
                self._wait(version, deadline)
        except BaseException:  # a timeout, Ctrl-C: the connection is the pool's once connected
            self._pool.release(conn)
            raise

    def _wait(self, version: int, deadline: Optional[float]) -> None:
        """Until the pool changes, in slices that look whether the manager
        closed; TimeoutError at deadline."""
        while True:
            left = _CHECK_EVERY if deadline is None else min(_CHECK_EVERY, deadline - time.monotonic())
            if left <= 0:
                raise TimeoutError("no pooled connection free in time")
            if self._pool.wait(version, int(left * 1e9)):
                return
            self._check_open()

    def _check_open(self) -> None:
        if self._closed:
            raise ManagerClosed("connection pool closed")
        self._manager._check_open()

    def release(self, conn: Connection) -> None:
        """Give conn back: idle for the next acquire(); a closed one is
        dropped. Releasing a connection twice, or one not of this pool, is a
        ValueError."""
        if not isinstance(conn, Connection):
            raise TypeError(f"release() takes a pyiocp.Connection, not {type(conn).__name__}")
        if not self._pool.release(conn) and not conn.closed:
            raise ValueError(f"{conn!r} is not a connection of this pool, or was released already")

    def close(self) -> None:
        """Close the idle connections, and the others as they are released;
        acquire() raises ManagerClosed from now on (as it does once the
        manager closes). Idempotent."""
        self._pool.close()
        self._closed = True

    def stats(self) -> Dict[str, int]:
        """open (busy, idle or connecting), idle, waits (acquires that had
        to wait), dials."""
        open_, idle, waits, dials = self._pool.stats()
        return {"open": open_, "idle": idle, "waits": waits, "dials": dials}

    def __enter__(self) -> "ConnectionPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        s = self.stats()
        return f"<pyiocp.ConnectionPool {self._host}:{self._port} size={self.size} open={s['open']} idle={s['idle']}>"
