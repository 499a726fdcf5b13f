"""Lifecycle: serve_forever and close from other threads, from callbacks,
from many threads at once; no leak over many connections and managers.
Signals are in test_signals.py."""

from __future__ import annotations

import gc
import threading
import time
from typing import Any, List, Optional

import pytest

import pyiocp
from iocp_helpers import (LATE, Echo, Recorder, client, fd_count, fds_settled, recv_exactly, recv_until_eof, wait_until,
                          worker_threads)
from pyiocp.testing import ManagerFactory


# ------------------------------------------------------------ serve_forever and close


def _serve_and_close_from(thread_name_of_server: Optional[str], backend: str, workers: int) -> None:
    rec = Recorder(echo=True)
    mgr = pyiocp.SocketManager(rec, backend=backend, workers=workers)
    lst = mgr.listen("127.0.0.1", 0)
    closed_at: List[float] = []
    returned_at: List[float] = []

    def close_soon() -> None:
        with client(lst.address) as s:
            s.sendall(b"up?")
            recv_exactly(s, 3)
        rec.wait_all_closed(1)
        closed_at.append(time.monotonic())
        mgr.close()

    closer = threading.Thread(target=close_soon)
    closer.start()
    try:
        if thread_name_of_server is None:
            mgr.serve_forever()  # on this (the main) thread
            returned_at.append(time.monotonic())
        else:
            def serve() -> None:
                mgr.serve_forever()
                returned_at.append(time.monotonic())

            server = threading.Thread(target=serve, name=thread_name_of_server)
            server.start()
            server.join(5)
            assert not server.is_alive()
    finally:
        closer.join(5)
        mgr.close()
    assert returned_at and closed_at
    assert returned_at[0] - closed_at[0] < 0.5
    assert mgr.closed


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_forever_on_main_thread_returns_after_close_from_another_thread(backend: str, workers: int) -> None:
    assert threading.current_thread() is threading.main_thread()
    _serve_and_close_from(None, backend, workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_forever_on_a_thread_returns_after_close_from_another_thread(backend: str, workers: int) -> None:
    _serve_and_close_from("server", backend, workers)


def test_serve_forever_after_start_waits_for_close(backend: str) -> None:
    mgr = pyiocp.SocketManager(Echo(), backend=backend, workers=2)
    mgr.start()
    returned = threading.Event()

    def serve() -> None:
        mgr.serve_forever()
        returned.set()

    t = threading.Thread(target=serve)
    t.start()
    try:
        assert not returned.wait(0.2)
        t0 = time.monotonic()
        mgr.close()
        assert returned.wait(2)
        assert time.monotonic() - t0 < LATE
    finally:
        mgr.close()
        t.join(5)


def test_close_from_many_threads_at_once(backend: str) -> None:
    rec = Recorder()
    mgr = pyiocp.SocketManager(rec, backend=backend, workers=2)
    lst = mgr.listen("127.0.0.1", 0)
    mgr.start()
    socks = [client(lst.address) for _ in range(5)]
    try:
        rec.wait_count("accept", 5)
        barrier = threading.Barrier(6)
        errors = []

        def close() -> None:
            try:
                barrier.wait(5)
                mgr.close()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        ts = [threading.Thread(target=close) for _ in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(10)
        assert errors == []
        assert mgr.closed
        assert all(len(rec.closes[c]) == 1 for c in rec.conns)
        assert len(rec.closes) == 5
    finally:
        for s in socks:
            s.close()


def test_close_from_a_callback(backend: str) -> None:
    """close() inside a callback starts the close and returns; the workers
    deliver the remaining on_close and stop; serve_forever returns."""

    class H(Recorder):
        mgr: pyiocp.SocketManager

        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            super().on_recv(conn, data)
            if data == b"quit":
                self.mgr.close()
                self.record("close-called", conn)

    rec = H()
    mgr = pyiocp.SocketManager(rec, backend=backend)
    rec.mgr = mgr
    lst = mgr.listen("127.0.0.1", 0)
    other = client(lst.address)
    s = client(lst.address)
    try:
        timer = threading.Timer(0.05, s.sendall, args=(b"quit",))
        timer.start()
        mgr.serve_forever()
        timer.join()
        assert rec.kinds().count("close") == 2
        assert recv_until_eof(other) == b""
        assert recv_until_eof(s) == b""
    finally:
        mgr.close()
        other.close()
        s.close()
    assert mgr.closed


def test_close_from_a_callback_run_by_close(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    class H(pyiocp.Handler):
        def on_post(self, payload: Any) -> None:
            mgr.close(timeout=0)  # today: waits 0 + 2 s for its own thread

    mgr = pyiocp.SocketManager(H(), backend=backend)
    mgr.post("close from inside")
    t0 = time.monotonic()
    mgr.close(timeout=1)
    elapsed = time.monotonic() - t0
    assert mgr.closed
    assert "still in a callback" not in caplog.text
    assert elapsed < 1.5, elapsed  # not close()'s 2 s wait for a callback


def test_context_manager_closes_on_exception(backend: str) -> None:
    with pytest.raises(ZeroDivisionError):
        with pyiocp.SocketManager(Echo(), backend=backend) as mgr:
            mgr.listen("127.0.0.1", 0)
            mgr.start()
            1 / 0
    assert mgr.closed
    assert worker_threads() == []


def test_no_leak_after_1000_connect_close_cycles(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(Echo(), backend=backend, workers=2)
    lst = mgr.listen("127.0.0.1", 0)

    def cycles(n: int) -> None:
        for i in range(n):
            with client(lst.address) as s:
                if i % 10 == 0:
                    s.sendall(b"x")
                    assert recv_exactly(s, 1) == b"x"

    cycles(100)  # warm the pools up
    wait_until(lambda: mgr.stats()["closed"] == 100)
    fds = fd_count()
    cycles(900)
    wait_until(lambda: mgr.stats()["closed"] == 1000)
    wait_until(lambda: fd_count() == fds, what="fds back to the warm count")
    assert mgr.connections == 0
    assert mgr.stats()["stray_completions"] == 0


def test_no_leak_after_outbound_connect_close_cycles(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend, workers=2)
    lst = mgr.listen("127.0.0.1", 0)
    fds_settled()  # the listener's accepts are posted (on Windows each holds a socket)
    fds = fd_count()
    for i in range(300):
        c = mgr.connect(*lst.address)
        if i % 3 == 0:
            c.close()
        elif i % 3 == 1:
            c.send(b"x")
            c.close()
        else:
            c.abort()
    rec.wait(lambda: len(rec.closes) >= 300 and all(cid in rec.closes for cid in rec.conns), timeout=10)
    wait_until(lambda: mgr.connections == 0)
    wait_until(lambda: fd_count() == fds)
    assert all(len(v) == 1 for v in rec.closes.values())


def test_no_leak_after_50_managers(backend: str) -> None:
    fds = fd_count()
    for i in range(50):
        rec = Recorder(echo=True)
        with pyiocp.SocketManager(rec, backend=backend, workers=1 + i % 2) as mgr:
            lst = mgr.listen("127.0.0.1", 0)
            mgr.start()
            s = client(lst.address)
            s.sendall(b"hi")
            assert recv_exactly(s, 2) == b"hi"
        assert recv_until_eof(s) == b""
        s.close()
        assert len(rec.closes) == 1
    assert worker_threads() == []
    wait_until(lambda: fd_count() == fds, what="fds back after 50 managers")


def test_a_manager_dropped_without_close_releases_its_fds(backend: str) -> None:
    fds = fd_count()
    mgr = pyiocp.SocketManager(Echo(), backend=backend)
    mgr.listen("127.0.0.1", 0)
    assert fd_count() > fds
    del mgr
    gc.collect()
    wait_until(lambda: fd_count() == fds, what="fds released by the collected manager")
