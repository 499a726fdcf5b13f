"""idle_timeout, accept_timeout (connected but silent is an attack) and
max_connections."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import pyiocp
from iocp_helpers import LATE, Recorder, Serve, client, connected, peer_sees_the_end, recv_exactly, wait_until
from pyiocp.testing import ManagerFactory


def keep_talking(s: socket.socket, stop: threading.Event, every: float, errors: List[str]) -> None:
    try:
        i = 0
        while not stop.wait(every):
            msg = b"%06d" % i
            s.sendall(msg)
            if recv_exactly(s, 6) != msg:
                errors.append("bad echo")
            i += 1
    except Exception as exc:  # noqa: BLE001
        errors.append(repr(exc))


def second_client_times_out(rec: Recorder, address: Tuple[str, int]) -> float:
    """Connects a client that stays silent, the server's second connection:
    the server closes it with TimeoutError and the client sees the end.
    Returns the seconds from before the connect to the on_close."""
    t0 = time.monotonic()
    with client(address) as silent:
        rec.wait_count("accept", 2)
        err = rec.wait_closed(max(rec.conns))
        elapsed = time.monotonic() - t0
        assert isinstance(err, TimeoutError), repr(err)
        peer_sees_the_end(silent)
    return elapsed


def test_idle_timeout(serve: Serve, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr, lst = serve(rec, backend=backend, idle_timeout=0.3)
    busy = client(lst.address)
    stop = threading.Event()
    errors: List[str] = []
    talker = threading.Thread(target=keep_talking, args=(busy, stop, 0.05, errors))
    talker.start()
    try:
        rec.wait_count("accept", 1)
        elapsed = second_client_times_out(rec, lst.address)
        assert 0.25 <= elapsed < 0.3 + LATE, elapsed
        # the busy one outlives several idle periods
        time.sleep(0.5)  # not a synchronisation: the time that must pass without a timeout
        assert errors == []
        assert len(rec.closes) == 1
        assert mgr.stats()["timed_out"] == 1
    finally:
        stop.set()
        talker.join(5)
        busy.close()
    rec.wait_all_closed(2)
    assert errors == []


def test_idle_timeout_counts_sends_as_activity(serve: Serve, backend: str) -> None:
    """A connection that only receives from the server is not idle."""
    rec = Recorder()
    with connected(serve, rec, backend, idle_timeout=0.3) as (mgr, s, conn):
        for i in range(12):  # 0.6 s of server-side sends only
            conn.send(b"tick")
            assert recv_exactly(s, 4) == b"tick"
            time.sleep(0.05)
        assert not conn.closed
        err = rec.wait_closed(conn.id)  # then it goes quiet
        assert isinstance(err, TimeoutError)


@contextlib.contextmanager
def outbound(mgr: pyiocp.SocketManager, rec: Recorder) -> Iterator[Tuple[pyiocp.Connection, socket.socket]]:
    """A connection mgr made to a plain listening socket, once its
    on_connect ran, and the peer's end of it."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        conn = mgr.connect(*srv.getsockname())
        peer, _ = srv.accept()
        with peer:
            rec.wait(lambda: "connect" in rec.kinds(conn.id))
            yield conn, peer


def test_idle_timeout_on_an_outbound_connection(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend, idle_timeout=0.2)
    with outbound(mgr, rec) as (conn, peer):
        err = rec.wait_closed(conn.id)
        assert isinstance(err, TimeoutError), repr(err)
        peer_sees_the_end(peer)


def test_accept_timeout(serve: Serve, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr, lst = serve(rec, backend=backend, accept_timeout=0.3)
    with client(lst.address) as talker:
        talker.sendall(b"hello")
        assert recv_exactly(talker, 5) == b"hello"
        elapsed = second_client_times_out(rec, lst.address)
        assert elapsed < 0.3 + LATE, elapsed
        # accept_timeout is only about the first byte: the talker, now
        # silent for longer than it, is still served.
        time.sleep(0.4)  # not a synchronisation: the time that must pass without a timeout
        talker.sendall(b"again")
        assert recv_exactly(talker, 5) == b"again"
        assert mgr.stats()["timed_out"] == 1
        assert len(rec.closes) == 1
    rec.wait_all_closed(2)


def test_accept_timeout_does_not_apply_to_outbound(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend, accept_timeout=0.1)
    with outbound(mgr, rec) as (conn, peer):
        with rec.cond:
            assert not rec.cond.wait_for(lambda: conn.id in rec.closes, 0.4)
        conn.close()
        rec.wait_closed(conn.id)


def test_max_connections(serve: Serve, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr, lst = serve(rec, backend=backend, max_connections=3)
    kept = [client(lst.address) for _ in range(3)]
    extra = []
    try:
        rec.wait_count("accept", 3)
        for s in kept:
            s.sendall(b"in")
            assert recv_exactly(s, 2) == b"in"
        for _ in range(2):
            # closed at once: the reset may even beat connect() back
            try:
                s = client(lst.address)
            except ConnectionResetError:
                continue
            extra.append(s)
            peer_sees_the_end(s)
        wait_until(lambda: mgr.stats()["rejected"] == 2)
        assert rec.count("accept") == 3  # never announced
        assert mgr.connections == 3
        # One leaves: there is room again.
        kept.pop().close()
        wait_until(lambda: mgr.connections == 2)
        with client(lst.address) as s:
            s.sendall(b"room")
            assert recv_exactly(s, 4) == b"room"
        st = mgr.stats()
        assert st["rejected"] == 2 and st["accepted"] == 4
    finally:
        for s in kept + extra:
            s.close()
    rec.wait_all_closed(4)
    assert mgr.stats()["closed"] == 4  # rejected ones are not counted as closed


@pytest.mark.parametrize("option", ["idle_timeout", "accept_timeout"])
def test_timeouts_leave_other_connections_alone(serve: Serve, backend: str, option: str) -> None:
    """Many silent connections time out together; a talking one is served
    all along."""
    rec = Recorder(echo=True)
    timeout: Dict[str, Any] = {option: 0.2}
    mgr, lst = serve(rec, backend=backend, workers=2, **timeout)
    busy = client(lst.address)
    busy.sendall(b"x")
    assert recv_exactly(busy, 1) == b"x"
    stop = threading.Event()
    errors: List[str] = []
    talker = threading.Thread(target=keep_talking, args=(busy, stop, 0.03, errors))
    talker.start()
    silent = [client(lst.address) for _ in range(20)]
    try:
        rec.wait(lambda: len(rec.closes) == 20, timeout=5, what="20 timeouts")
        assert all(isinstance(e[0], TimeoutError) for e in rec.closes.values())
        assert mgr.stats()["timed_out"] == 20
        assert errors == []
    finally:
        stop.set()
        talker.join(5)
        busy.close()
        for s in silent:
            s.close()
    rec.wait_all_closed(21)
    assert errors == []
