"""stats(): the counters match what happened."""

from __future__ import annotations

import random
import sys
import threading

import pytest

import pyiocp
from iocp_helpers import Recorder, Serve, client, recv_exactly, wait_until
from pyiocp.testing import ManagerFactory

REQUIRED = {
    "connections", "accepted", "connected", "closed", "rejected", "timed_out", "bytes_in", "bytes_out",
    "pending_send_bytes", "paused_reading", "completions", "workers", "backend",
}


@pytest.mark.parametrize("workers", [1, 3])
def test_keys_and_types(iocp_manager: ManagerFactory, backend: str, workers: int) -> None:
    mgr = iocp_manager(Recorder(), backend=backend, workers=workers)
    st = mgr.stats()
    assert REQUIRED <= set(st)
    assert "stray_completions" in st
    for k, v in st.items():
        if k == "backend":
            assert v == backend
        else:
            assert type(v) is int and v >= 0, (k, v)
    assert st["workers"] == workers == mgr.workers
    assert st["connections"] == st["accepted"] == st["closed"] == st["bytes_in"] == 0
    assert mgr.stats() is not mgr.stats()  # a fresh dict each time


def test_auto_backend_names_the_real_one() -> None:
    with pyiocp.SocketManager(Recorder()) as mgr:
        assert mgr.stats()["backend"] in ("epoll", "io_uring", "iocp")


def test_counters_match_the_traffic(serve: Serve, backend: str) -> None:
    rng = random.Random(17)
    rec = Recorder(echo=True)
    mgr, lst = serve(rec, backend=backend, workers=2)
    total = 0
    socks = [client(lst.address) for _ in range(5)]
    try:
        rec.wait_count("accept", 5)
        st = mgr.stats()
        assert st["connections"] == mgr.connections == 5
        assert st["accepted"] == 5 and st["closed"] == 0
        for s in socks:
            data = rng.randbytes(rng.randint(1, 300_000))
            s.sendall(data)
            assert recv_exactly(s, len(data)) == data
            total += len(data)
        wait_until(lambda: mgr.stats()["bytes_out"] == total)
        st = mgr.stats()
        assert st["bytes_in"] == total
        assert st["pending_send_bytes"] == 0
        assert st["completions"] > 0
    finally:
        for s in socks:
            s.close()
    rec.wait_all_closed(5)
    wait_until(lambda: mgr.connections == 0)
    # outbound connections count as connected, and their bytes count too
    out = mgr.connect(*lst.address)
    out.send(b"12345")
    rec.wait(lambda: bytes(rec.data[out.id]) == b"12345")
    out.close()
    rec.wait_all_closed(7)
    wait_until(lambda: mgr.connections == 0)
    st = mgr.stats()
    assert st["accepted"] == 6
    assert st["connected"] == 1
    assert st["closed"] == 7
    assert st["bytes_in"] == total + 10  # the inbound side's 5 and the echo's 5
    assert st["bytes_out"] == total + 10
    assert st["rejected"] == st["timed_out"] == 0
    assert st["stray_completions"] == 0
    mgr.close()
    final = mgr.stats()
    assert {k: final[k] for k in ("accepted", "connected", "closed", "bytes_in", "bytes_out")} == {
        k: st[k] for k in ("accepted", "connected", "closed", "bytes_in", "bytes_out")}


def test_rejected_and_timed_out(serve: Serve, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr, lst = serve(rec, backend=backend, max_connections=2, accept_timeout=0.2)
    a = client(lst.address)
    b = client(lst.address)
    rejected = []
    for _ in range(3):
        try:
            rejected.append(client(lst.address))
        except ConnectionResetError:
            pass  # rejected so fast that connect() saw the reset
    try:
        a.sendall(b"a")
        assert recv_exactly(a, 1) == b"a"
        wait_until(lambda: mgr.stats()["rejected"] == 3)
        rec.wait(lambda: len(rec.closes) == 1)  # b said nothing: timed out
        st = mgr.stats()
        assert st["timed_out"] == 1
        assert st["accepted"] == 2
        assert st["connections"] == 1
    finally:
        for s in [a, b] + rejected:
            s.close()
    rec.wait_all_closed(2)


def test_paused_reading_and_pending_send_bytes(serve: Serve, backend: str) -> None:
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend)
    socks = [client(lst.address) for _ in range(3)]
    try:
        rec.wait_count("accept", 3)
        conns = list(rec.conns.values())
        for c in conns[:2]:
            c.pause_reading()
        wait_until(lambda: mgr.stats()["paused_reading"] == 2)
        conns[0].resume_reading()
        wait_until(lambda: mgr.stats()["paused_reading"] == 1)
        conns[1].close()  # paused, it would not see the peer's FIN
    finally:
        for s in socks:
            s.close()
    rec.wait_all_closed(3)
    assert mgr.stats()["paused_reading"] == 0


def test_connections_is_zero_after_closing_with_open_connections(backend: str) -> None:
    """close() ends the open connections; the final stats count none (it
    once counted the slots still waiting to be freed)."""
    rec = Recorder()
    s = None
    try:
        with pyiocp.SocketManager(rec, backend=backend) as mgr:
            lst = mgr.listen("127.0.0.1", 0)
            mgr.start()
            s = client(lst.address)
            rec.wait_count("accept", 1)
        assert rec.closes
        assert mgr.stats()["closed"] == 1
        assert mgr.stats()["connections"] == 0
    finally:
        if s is not None:
            s.close()


def test_stats_from_another_thread_during_close(backend: str) -> None:
    errors = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # make thread switches (and so the window) frequent
    try:
        for _ in range(300):
            mgr = pyiocp.SocketManager(Recorder(), backend=backend)
            mgr.start()
            stop = threading.Event()

            def hammer() -> None:
                while not stop.is_set():
                    try:
                        mgr.stats()
                    except Exception as exc:  # noqa: BLE001
                        errors.append(exc)
                        return

            t = threading.Thread(target=hammer)
            t.start()
            try:
                mgr.close()
            finally:
                stop.set()
                t.join(5)
            if errors:
                break
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
