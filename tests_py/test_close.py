"""Closing: on_close exactly once per connection, whoever closes and however."""

from __future__ import annotations

import collections
import math
import random
import socket
import threading
import time
import weakref
from typing import Callable, Iterable, List, Tuple

import pytest

import pyiocp
from iocp_helpers import (RESETS_LOST, Recorder, Serve, client, connected, expect_reset, recv_exactly, recv_until_eof,
                          set_linger_reset, small_rcvbuf_client, wait_until)
from pyiocp.testing import ManagerFactory


def _assert_once(rec: Recorder, ids: Iterable[int]) -> None:
    for cid in ids:
        assert len(rec.closes[cid]) == 1, (cid, rec.closes[cid])
    counts = collections.Counter(c for k, c, *_ in rec.events if k == "close")
    assert all(n == 1 for n in counts.values()), counts


def test_client_close_gives_clean_on_close(serve: Serve, backend: str) -> None:
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend)
    s = client(lst.address)
    conn = rec.first_conn()
    s.sendall(b"bye")
    s.close()
    assert rec.wait_closed(conn.id) is None
    assert bytes(rec.data[conn.id]) == b"bye"
    assert rec.kinds(conn.id) == ["accept", "recv", "close"]
    assert conn.closed
    mgr.close()
    _assert_once(rec, [conn.id])


def test_client_reset_gives_connection_reset(serve: Serve, backend: str) -> None:
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend)
    s = client(lst.address)
    conn = rec.first_conn()
    set_linger_reset(s)
    s.close()
    err = rec.wait_closed(conn.id)
    assert isinstance(err, ConnectionResetError) or (RESETS_LOST and err is None), repr(err)
    mgr.close()
    _assert_once(rec, [conn.id])


def test_conn_close_flushes_then_fin(serve: Serve, backend: str) -> None:
    class H(Recorder):
        def on_accept(self, conn: pyiocp.Connection) -> None:
            super().on_accept(conn)
            conn.send(b"hello ")
            conn.send(b"world")
            conn.close()
            conn.close()  # idempotent

    rec = H()
    mgr, lst = serve(rec, backend=backend)
    with client(lst.address) as s:
        assert recv_until_eof(s) == b"hello world"
        conn = rec.first_conn()
        assert rec.wait_closed(conn.id) is None
    mgr.close()
    _assert_once(rec, [conn.id])


def test_conn_abort_resets_the_peer(serve: Serve, backend: str) -> None:
    rec = Recorder()
    with connected(serve, rec, backend) as (mgr, s, conn):
        conn.abort()
        conn.abort()  # idempotent
        conn.close()  # never raises on a connection already closing
        err = rec.wait_closed(conn.id)
        assert err is None or isinstance(err, OSError), repr(err)
        expect_reset(s)
    mgr.close()
    _assert_once(rec, [conn.id])


def _closed_by_its_client(serve: Serve, backend: str) -> Tuple[pyiocp.SocketManager, pyiocp.Connection]:
    """A served connection whose client closed it, once its on_close came."""
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend)
    s = client(lst.address)
    conn = rec.first_conn()
    s.close()
    rec.wait_closed(conn.id)
    return mgr, conn


def test_close_and_abort_after_on_close_do_not_raise(serve: Serve, backend: str) -> None:
    mgr, conn = _closed_by_its_client(serve, backend)
    conn.close()
    conn.abort()
    assert conn.closed
    mgr.close()
    conn.close()  # even after the manager is gone
    conn.abort()
    assert conn.closed


def test_send_after_close_raises_connection_closed(serve: Serve, backend: str) -> None:
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend)
    s = client(lst.address)
    conn = rec.first_conn()
    conn.close()
    assert conn.closed
    with pytest.raises(pyiocp.ConnectionClosed):
        conn.send(b"late")
    with pytest.raises(ConnectionError):  # the builtin base class catches it too
        conn.send(b"late")
    assert recv_until_eof(s) == b""
    s.close()
    rec.wait_closed(conn.id)
    # after on_close, and after the manager closed: still ConnectionClosed
    with pytest.raises(pyiocp.ConnectionClosed):
        conn.send(b"later")
    mgr.close()
    with pytest.raises(pyiocp.ConnectionClosed):
        conn.send(b"much later")


def test_send_after_peer_closed_raises_connection_closed(serve: Serve, backend: str) -> None:
    _, conn = _closed_by_its_client(serve, backend)
    with pytest.raises(pyiocp.ConnectionClosed):
        conn.send(b"x")
    for op in (conn.shutdown_write, conn.pause_reading, conn.resume_reading):
        with pytest.raises(pyiocp.ConnectionClosed):
            op()


def test_concurrent_close_from_two_threads(serve: Serve, backend: str) -> None:
    """close() and abort() raced from two threads, on 30 connections."""
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend, workers=2)
    n = 30
    socks = [client(lst.address) for _ in range(n)]
    rec.wait_count("accept", n)
    conns = list(rec.conns.values())
    failures: List[str] = []

    def hammer(ops: List[Callable[[], None]], barrier: threading.Barrier) -> None:
        try:
            barrier.wait(5)
            for _ in range(20):
                for op in ops:
                    op()
        except Exception as exc:  # noqa: BLE001
            failures.append(repr(exc))

    for i, conn in enumerate(conns):
        barrier = threading.Barrier(2)
        a = [conn.close] if i % 2 else [conn.close, conn.abort]
        b = [conn.close] if i % 3 else [conn.abort]
        ts = [threading.Thread(target=hammer, args=(a, barrier)), threading.Thread(target=hammer, args=(b, barrier))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(5)
    assert failures == []
    rec.wait_all_closed(n)
    for s in socks:
        s.close()
    mgr.close()
    _assert_once(rec, rec.conns)
    assert mgr.stats()["closed"] == n


def test_on_close_exactly_once_mixed(serve: Serve, backend: str) -> None:
    """40 connections ended every way at once: client FIN, client RST,
    close(), abort(), with data in flight."""
    rec = Recorder(echo=True)
    mgr, lst = serve(rec, backend=backend, workers=2)
    n = 40
    socks = [client(lst.address) for _ in range(n)]
    for s in socks:
        s.sendall(b"x" * 1000)
    rec.wait_count("accept", n)
    by_port = {}
    with rec.cond:
        for conn in rec.conns.values():
            by_port[conn.peer[1]] = conn
    for i, s in enumerate(socks):
        conn = by_port[s.getsockname()[1]]
        mode = i % 4
        if mode == 0:
            s.close()
        elif mode == 1:
            set_linger_reset(s)
            s.close()
        elif mode == 2:
            conn.close()
        else:
            conn.abort()
    rec.wait_all_closed(n)
    for s in socks:
        s.close()
    mgr.close()
    _assert_once(rec, rec.conns)
    st = mgr.stats()
    assert st["accepted"] == st["closed"] == n
    assert st["stray_completions"] == 0


def test_manager_close_with_open_connections(backend: str) -> None:
    """close() ends every open connection, each with one on_close, and the
    peers see EOF. (A plain `with`: see test_stats for the fixture.)"""
    rec = Recorder()
    socks = []
    try:
        with pyiocp.SocketManager(rec, backend=backend, workers=2) as mgr:
            lst = mgr.listen("127.0.0.1", 0)
            mgr.start()
            socks = [client(lst.address) for _ in range(10)]
            out = mgr.connect(*lst.address)
            rec.wait_count("accept", 11)
            rec.wait(lambda: "connect" in rec.kinds(out.id))
            assert mgr.connections == 12
        assert mgr.closed
        assert len(rec.conns) == 12
        _assert_once(rec, rec.conns)
        assert all(err is None for errs in rec.closes.values() for err in errs), rec.closes
        for s in socks:
            assert recv_until_eof(s) == b""
    finally:
        for s in socks:
            s.close()


def test_graceful_close_flushes_4_mib(serve: Serve, backend: str) -> None:
    data = random.Random(5).randbytes(4 << 20)

    class H(Recorder):
        def on_accept(self, conn: pyiocp.Connection) -> None:
            super().on_accept(conn)
            conn.send(data)
            conn.close()

    rec = H()
    mgr, lst = serve(rec, backend=backend)
    with client(lst.address, timeout=10) as s:
        conn = rec.first_conn()
        got = recv_until_eof(s)
    assert len(got) == len(data)
    assert got == data
    assert rec.wait_closed(conn.id) is None


def test_manager_close_flushes_pending_data(backend: str) -> None:
    """close() with bytes still pending for a slow (but reading) peer sends
    them all before closing."""
    data = random.Random(6).randbytes(2 << 20)
    rec = Recorder()
    mgr = pyiocp.SocketManager(rec, backend=backend)
    try:
        # The kernel's send buffer bounded: autotuned (tcp_wmem up to 4 MiB
        # on Linux 6.18) it may take all 2 MiB at once, and nothing would
        # be pending when close() comes.
        lst = mgr.listen("127.0.0.1", 0, sndbuf=64 << 10)
        mgr.start()
        s = small_rcvbuf_client(lst.address, timeout=10)
        conn = rec.first_conn()
        conn.send(data)
        assert conn.pending > 0
        got = []
        reader = threading.Thread(target=lambda: got.append(recv_until_eof(s)))
        reader.start()
        mgr.close(timeout=8)
        reader.join(10)
        s.close()
        assert got and got[0] == data
        assert rec.closes[conn.id] == [None]
    finally:
        mgr.close()


def test_manager_close_timeout_resets_a_peer_that_never_reads(backend: str) -> None:
    rec = Recorder()
    mgr = pyiocp.SocketManager(rec, backend=backend)
    s = None
    try:
        lst = mgr.listen("127.0.0.1", 0)
        mgr.start()
        s = small_rcvbuf_client(lst.address)
        conn = rec.first_conn()
        # Fill the kernel's buffers and then ours, up to BufferFull.
        for _ in range(64):
            try:
                conn.send(b"z" * (1 << 20))
            except pyiocp.BufferFull:
                break
        else:
            pytest.fail("the send buffer never filled up")
        assert conn.pending > 0
        t0 = time.monotonic()
        mgr.close(timeout=0.3)
        elapsed = time.monotonic() - t0
        assert 0.25 <= elapsed < 2.0, elapsed
        errs = rec.closes[conn.id]
        assert len(errs) == 1 and isinstance(errs[0], TimeoutError), errs
        # The peer was reset: reading gets some bytes, then the reset.
        expect_reset(s)
    finally:
        mgr.close()
        if s is not None:
            s.close()


def test_close_is_idempotent(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(Recorder(), backend=backend)
    mgr.listen("127.0.0.1", 0)
    mgr.close()
    mgr.close()
    mgr.close(timeout=0)
    assert mgr.closed


def test_listener_close(serve: Serve, backend: str) -> None:
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend)
    with client(lst.address) as s:
        conn = rec.first_conn()
        lst.close()
        lst.close()
        assert lst.closed
        # the open connection still works
        conn.send(b"still here")
        assert recv_exactly(s, 10) == b"still here"
        # and no new connection is accepted
        wait_until(lambda: mgr.stats()["listeners"] == 0, what="listener gone")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(lst.address, timeout=2).close()
    rec.wait_closed(conn.id)


def test_listener_close_serves_its_backlog(backend: str) -> None:
    """Connections the kernel completed before the listener closed (here:
    queued while no worker ran) are served, not reset: their clients
    think them established."""
    rec = Recorder(echo=True)
    mgr = pyiocp.SocketManager(rec, backend=backend)
    try:
        lst = mgr.listen("127.0.0.1", 0, accepts=4)
        clients = [client(lst.address) for _ in range(30)]
        try:
            lst.close()
            mgr.start()
            for i, s in enumerate(clients):
                s.sendall(b"%02d" % i)
                assert recv_exactly(s, 2) == b"%02d" % i
        finally:
            for s in clients:
                s.close()
        rec.wait_all_closed(30)
        assert mgr.stats()["accepted"] == 30
    finally:
        mgr.close()


def test_data_then_fin_is_noticed(serve: Serve, backend: str) -> None:
    """Bytes and the FIN arriving together (one epoll edge): the FIN must
    not be lost behind the short read of the data (100 clients)."""
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend)
    n = 100
    for _ in range(n):
        with client(lst.address) as s:
            s.sendall(b"bye")
    rec.wait_all_closed(n)
    assert all(bytes(d) == b"bye" for d in rec.data.values())
    assert all(errs == [None] for errs in rec.closes.values())


def test_a_stale_connection_never_reaches_a_new_one(serve: Serve, backend: str) -> None:
    """Lesson 4: ids are never reused; a Connection whose connection is gone
    fails cleanly even once its slot holds a new connection."""
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend)
    for i in range(5):
        with client(lst.address):
            rec.wait_count("accept", i + 1)
        rec.wait_all_closed(i + 1)
    old = list(rec.conns.values())
    with client(lst.address) as s:
        rec.wait_count("accept", 6)
        new = rec.conns[max(rec.conns)]
        assert new.id not in {c.id for c in old}
        for c in old:
            assert c.closed
            assert mgr.get(c.id) is None
            assert c.local is None
            assert c.pending == 0
            with pytest.raises(pyiocp.ConnectionClosed):
                c.send(b"stale")
            for op in (c.shutdown_write, c.pause_reading, c.resume_reading):
                with pytest.raises(pyiocp.ConnectionClosed):
                    op()
            c.close()
            c.abort()
        assert not new.closed
        new.send(b"fresh")
        assert recv_exactly(s, 5) == b"fresh"
    rec.wait_all_closed(6)


def test_connection_object_basics(serve: Serve, backend: str) -> None:
    rec = Recorder()
    with connected(serve, rec, backend) as (mgr, s, conn):
        assert isinstance(conn, pyiocp.Connection)
        assert f"id={conn.id}" in repr(conn)
        assert str(s.getsockname()[1]) in repr(conn)
        ref = weakref.ref(conn)
        assert ref() is conn
        conn.anything = [1, 2]
        assert conn.__dict__ == {"anything": [1, 2]}
        assert type(conn.id) is int and conn.id > 0
        assert conn.closed is False
        with pytest.raises(AttributeError):
            conn.id = 5  # type: ignore[misc]  # read-only
    rec.wait_closed(conn.id)
    assert "closed" in repr(conn)
    assert conn.anything == [1, 2]


@pytest.mark.parametrize("workers", [1, 4])
def test_manager_close_under_load(backend: str, workers: int) -> None:
    """close() while 20 clients stream through echo: every connection gets
    exactly one on_close, the clients see the end, nothing is left over."""
    rec = Recorder(echo=True)
    stop = threading.Event()
    problems = []
    mgr = pyiocp.SocketManager(rec, backend=backend, workers=workers)
    try:
        lst = mgr.listen("127.0.0.1", 0)
        mgr.start()

        def stream() -> None:
            try:
                with client(lst.address, timeout=5) as s:
                    rng = random.Random()
                    while not stop.is_set():
                        data = rng.randbytes(rng.randint(1, 50_000))
                        s.sendall(data)
                        got = b""
                        while len(got) < len(data):
                            chunk = s.recv(len(data) - len(got))
                            if not chunk:
                                return  # the server closed: fine
                            got += chunk
                        if got != data:
                            problems.append("echo differs")
                            return
            except (ConnectionResetError, BrokenPipeError):
                pass
            except Exception as exc:  # noqa: BLE001
                problems.append(repr(exc))

        threads = [threading.Thread(target=stream) for _ in range(20)]
        for t in threads:
            t.start()
        rec.wait_count("accept", 20)
        rec.wait(lambda: rec.count("recv") >= 200, what="traffic")
        mgr.close(timeout=2)
        stop.set()
        for t in threads:
            t.join(10)
        assert not any(t.is_alive() for t in threads)
    finally:
        stop.set()
        mgr.close()
    assert problems == []
    assert mgr.closed
    _assert_once(rec, rec.conns)
    assert len(rec.closes) == 20
    st = mgr.stats()
    assert st["stray_completions"] == 0
    assert st["connections"] == 0


def test_listener_close_under_connection_storm(serve: Serve, backend: str) -> None:
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend, workers=2)
    stop = threading.Event()
    opened: List[socket.socket] = []

    def storm() -> None:
        while not stop.is_set():
            try:
                s = socket.create_connection(lst.address, timeout=2)
            except OSError:
                return  # the listener is gone
            opened.append(s)

    threads = [threading.Thread(target=storm) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        rec.wait_count("accept", 20)
        lst.close()
        wait_until(lambda: mgr.stats()["listeners"] == 0)
        stop.set()
        for t in threads:
            t.join(5)
        for s in opened:
            s.close()
        # every announced connection gets its on_close; none is half-made
        rec.wait_all_closed()
        _assert_once(rec, rec.conns)
    finally:
        stop.set()
        for s in opened:
            s.close()


def test_close_with_an_infinite_timeout(backend: str) -> None:
    rec = Recorder()
    mgr = pyiocp.SocketManager(rec, backend=backend)
    try:
        lst = mgr.listen("127.0.0.1", 0)
        mgr.start()
        with client(lst.address):
            rec.wait_count("accept", 1)
            mgr.close(math.inf)
            assert mgr.closed
    finally:
        mgr.close()
