"""Socket options: listen() and connect() take nodelay, keepalive, rcvbuf
and sndbuf (accepted connections get the listener's); a live Connection
changes them, reads any with getsockopt, and has an idle timeout of its
own. Read back from the sockets themselves, on every backend."""

from __future__ import annotations

import socket
import sys
import time

import pytest

import pyiocp
from iocp_helpers import UNDER_WINE, Recorder, Serve, client, connected
from pyiocp.testing import ManagerFactory

# Windows sets a keepalive count with TCP_KEEPCNT (Windows 10 1703 and
# later); Wine cannot: there a count is an OSError, not ignored.
COUNT_WORKS = not UNDER_WINE
# Linux reports twice the buffer size it was given (its bookkeeping).
BUF_FACTOR = 2 if sys.platform == "linux" else 1


def keep_params(conn: pyiocp.Connection) -> tuple[int, int, int]:
    return (conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT))


def test_defaults(serve: Serve, backend: str) -> None:
    rec = Recorder()
    with connected(serve, rec, backend) as (mgr, s, conn):
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    rec.wait_all_closed(1)


def test_listen_and_connect_options(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend)
    if not COUNT_WORKS:
        with pytest.raises(OSError):
            mgr.listen("127.0.0.1", 0, keepalive=pyiocp.KeepAlive(30, 5, 4))
    ka = pyiocp.KeepAlive(30, 5, 4 if COUNT_WORKS else None)
    opts = dict(nodelay=False, keepalive=ka, rcvbuf=96 << 10, sndbuf=80 << 10)
    lst = mgr.listen("127.0.0.1", 0, **opts)  # type: ignore[arg-type]
    with client(lst.address):
        inbound = rec.first_conn()
        outbound = mgr.connect(*lst.address, **opts)  # type: ignore[arg-type]
        rec.wait_count("connect", 1)
        for conn in (inbound, outbound):
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            assert 96 << 10 <= conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) <= BUF_FACTOR * (96 << 10)
            assert 80 << 10 <= conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) <= BUF_FACTOR * (80 << 10)
            assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
            if sys.platform == "linux":
                assert keep_params(conn) == (30, 5, 4)
        outbound.close()
    rec.wait_all_closed(2)


def test_a_live_connection_changes_its_options(serve: Serve, backend: str) -> None:
    rec = Recorder()
    with connected(serve, rec, backend) as (mgr, s, conn):
        conn.set_nodelay(False)
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
        conn.set_nodelay(True)
        assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        conn.set_keepalive(pyiocp.KeepAlive(20, 3, 2 if COUNT_WORKS else None))
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0
        if sys.platform == "linux":
            assert keep_params(conn) == (20, 3, 2)
        if not COUNT_WORKS:
            with pytest.raises(OSError):
                conn.set_keepalive(pyiocp.KeepAlive(20, 3, 2))
        conn.set_keepalive(None)
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 50 << 10)
        assert conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) >= 50 << 10
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, (60 << 10).to_bytes(4, sys.byteorder))
        raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4)
        assert isinstance(raw, bytes) and int.from_bytes(raw, sys.byteorder) >= 60 << 10
        with pytest.raises(OSError):
            conn.getsockopt(-1, -1)
    rec.wait_all_closed(1)
    with pytest.raises(pyiocp.ConnectionClosed):
        conn.set_nodelay(True)
    with pytest.raises(pyiocp.ConnectionClosed):
        conn.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    with pytest.raises(pyiocp.ConnectionClosed):
        conn.set_idle_timeout(1)


def test_bad_options(iocp_manager: ManagerFactory, serve: Serve, backend: str) -> None:
    mgr = iocp_manager(Recorder(), backend=backend)
    for kw, exc in [({"nodelay": 1}, TypeError), ({"keepalive": (1, 2, 3)}, TypeError), ({"rcvbuf": "1"}, TypeError),
                    ({"rcvbuf": 0}, ValueError), ({"sndbuf": 2 << 30}, ValueError)]:
        with pytest.raises(exc):
            mgr.listen("127.0.0.1", 0, **kw)  # type: ignore[arg-type]
        with pytest.raises(exc):
            mgr.connect("127.0.0.1", 9, **kw)  # type: ignore[arg-type]
    for args, exc in [((0, 1, 1), ValueError), ((1, -1, 1), ValueError), ((1, 1, 0), ValueError),
                      ((1, 1, 128), ValueError), ((float("nan"), 1, 1), ValueError), (("1", 1, 1), TypeError),
                      ((1, 1, 1.5), TypeError), ((1e6, 1, 1), ValueError)]:
        with pytest.raises(exc):
            pyiocp.KeepAlive(*args)  # type: ignore[arg-type]
    assert pyiocp.KeepAlive(1.5, 2, 3) == pyiocp.KeepAlive(1.5, 2.0, 3)
    with pytest.raises(AttributeError):
        pyiocp.KeepAlive(1, 2, 3).count = 200
    assert repr(pyiocp.KeepAlive(1.5, 2, 3)) == "KeepAlive(idle=1.5, interval=2, count=3)"
    rec = Recorder()
    with connected(serve, rec, backend) as (_, s, conn):
        with pytest.raises(TypeError):
            conn.set_nodelay(1)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            conn.set_keepalive((1, 2, 3))
        with pytest.raises(TypeError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, "x")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bytes(2000))
        with pytest.raises(ValueError):
            conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 5000)
        for bad, bexc in [("1", TypeError), (True, TypeError), (-1, ValueError), (float("inf"), ValueError)]:
            with pytest.raises(bexc):
                conn.set_idle_timeout(bad)  # type: ignore[arg-type]
    rec.wait_all_closed(1)


def test_a_connection_idle_timeout_of_its_own(serve: Serve, backend: str) -> None:
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend, idle_timeout=0.3)
    with client(lst.address), client(lst.address):
        rec.wait_count("accept", 2)
        kept, short = (rec.conns[c] for c in sorted(rec.conns))
        kept.set_idle_timeout(0)  # none, whatever the manager's
        short.set_idle_timeout(0.05)
        assert isinstance(rec.wait_closed(short.id), TimeoutError)
        time.sleep(0.6)  # twice the manager's
        assert not kept.closed
        kept.set_idle_timeout(None)  # the manager's again
        assert isinstance(rec.wait_closed(kept.id), TimeoutError)
