"""Echo over real loopback sockets: every byte comes back, in order."""

from __future__ import annotations

import errno
import random
import socket
import sys
import threading
from typing import List

import pytest

import pyiocp
from iocp_helpers import Echo, Recorder, client, fd_count, recv_exactly, small_rcvbuf_client, wait_until
from pyiocp.testing import ManagerFactory

SIZES_SMALL = [1, 2, 7, 100, 1000, 4096, 65535, 65536, 65537]


def _sizes(rng: random.Random, n: int) -> List[int]:
    """n sizes between 1 B and 256 KiB, log-uniform, with both ends in."""
    out = [1, 256 << 10]
    while len(out) < n:
        out.append(int(2 ** rng.uniform(0, 18)))
    return out[:n]


@pytest.mark.parametrize("workers", [1, 2])
def test_echo_one_client_random_payloads(iocp_manager: ManagerFactory, backend: str, workers: int) -> None:
    rng = random.Random(1)
    mgr = iocp_manager(Echo(), backend=backend, workers=workers)
    lst = mgr.listen("127.0.0.1", 0)
    with client(lst.address) as s:
        for size in SIZES_SMALL + _sizes(rng, 20):
            payload = rng.randbytes(size)
            s.sendall(payload)
            assert recv_exactly(s, size) == payload


@pytest.mark.parametrize("workers", [1, 2])
def test_echo_200_concurrent_clients(iocp_manager: ManagerFactory, backend: str, workers: int) -> None:
    rng = random.Random(2)
    sizes = _sizes(rng, 200)
    payloads = [rng.randbytes(n) for n in sizes]
    mgr = iocp_manager(Echo(), backend=backend, workers=workers)
    lst = mgr.listen("127.0.0.1", 0, backlog=256)
    socks = [client(lst.address, timeout=20) for _ in range(200)]
    failures: List[str] = []
    go = threading.Barrier(200)

    def run(s: socket.socket, payload: bytes) -> None:
        try:
            go.wait(10)
            # The server buffers up to send_buffer_limit (4 MiB), so
            # sending everything before reading cannot deadlock.
            s.sendall(payload)
            got = recv_exactly(s, len(payload))
            if got != payload:
                failures.append(f"{len(payload)} B payload came back different")
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(repr(exc))

    threads = [threading.Thread(target=run, args=(s, p)) for s, p in zip(socks, payloads)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for s in socks:
            s.close()
    assert not any(t.is_alive() for t in threads)
    assert failures == []
    total = sum(sizes)
    wait_until(lambda: mgr.stats()["closed"] == 200, what="200 closes")
    mgr.close()
    st = mgr.stats()
    assert st["accepted"] == 200
    assert st["closed"] == 200
    assert st["bytes_in"] == total
    assert st["bytes_out"] == total


def test_echo_many_small_round_trips(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(Echo(), backend=backend)
    lst = mgr.listen("127.0.0.1", 0)
    with client(lst.address) as s:
        for i in range(500):
            msg = b"%d;" % i
            s.sendall(msg)
            assert recv_exactly(s, len(msg)) == msg


class FlowEcho(pyiocp.Handler):
    """Echo that respects the send buffer: on BufferFull it keeps the bytes,
    stops reading, and goes on after on_drain (the plain Echo would have
    its connection closed by on_error)."""

    def __init__(self) -> None:
        self.full = 0

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        try:
            conn.send(data)
        except pyiocp.BufferFull:
            self.full += 1
            conn.held = data
            conn.pause_reading()

    def on_drain(self, conn: pyiocp.Connection) -> None:
        held = conn.__dict__.pop("held", None)
        if held is not None:
            conn.send(held)  # pending is at the low watermark: it fits
            conn.resume_reading()


@pytest.mark.parametrize("limit", [64 << 10, 256 << 10])
def test_echo_with_flow_control(iocp_manager: ManagerFactory, backend: str, limit: int) -> None:
    """An 8 MiB stream through an echo that respects the send buffer: the
    client does not read until the server's buffer was full, then all of it
    comes back in order."""
    rng = random.Random(3)
    data = rng.randbytes(8 << 20)
    handler = FlowEcho()
    mgr = iocp_manager(handler, backend=backend, send_buffer_limit=limit)
    lst = mgr.listen("127.0.0.1", 0)
    with small_rcvbuf_client(lst.address, timeout=10) as s:
        writer = threading.Thread(target=s.sendall, args=(data,))
        writer.start()
        wait_until(lambda: handler.full >= 1, what="a BufferFull episode")
        got = recv_exactly(s, len(data))
        writer.join(10)
    assert got == data
    wait_until(lambda: mgr.connections == 0)


def test_echo_streamed_while_reading(iocp_manager: ManagerFactory, backend: str) -> None:
    """The same stream read back while it is written, default limits."""
    data = random.Random(4).randbytes(8 << 20)
    mgr = iocp_manager(FlowEcho(), backend=backend)
    lst = mgr.listen("127.0.0.1", 0)
    with client(lst.address, timeout=10) as s:
        writer = threading.Thread(target=s.sendall, args=(data,))
        writer.start()
        got = recv_exactly(s, len(data))
        writer.join(10)
    assert got == data
    wait_until(lambda: mgr.connections == 0)


def test_addresses(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen("127.0.0.1", 0)
    host, port = lst.address
    assert host == "127.0.0.1" and isinstance(port, int) and port > 0
    with client(lst.address) as s:
        conn = rec.first_conn()
        assert conn.peer == s.getsockname()
        assert conn.local == s.getpeername() == ("127.0.0.1", port)
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_echo_ipv6_loopback(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen("::1", 0)
    assert lst.address[0] == "::1"
    with socket.create_connection(lst.address, timeout=5) as s:
        s.settimeout(5)
        payload = random.Random(4).randbytes(100_000)
        s.sendall(payload)
        assert recv_exactly(s, len(payload)) == payload
        conn = rec.first_conn()
        assert conn.peer == s.getsockname()[:2]
        assert conn.local == s.getpeername()[:2]
    # and the client side over IPv6
    out = mgr.connect("::1", lst.address[1])
    rec.wait(lambda: "connect" in rec.kinds(out.id), what="on_connect over ::1")
    out.send(b"six")
    rec.wait(lambda: bytes(rec.data[out.id]) == b"six", what="echo over ::1")
    assert out.peer == ("::1", lst.address[1])
    out.close()
    rec.wait_all_closed(3)


if sys.platform == "win32":
    def test_reuse_port_is_refused_on_windows(iocp_manager: ManagerFactory, backend: str) -> None:
        # No SO_REUSEPORT there (SO_REUSEADDR would let a socket steal the port).
        mgr = iocp_manager(Echo(), backend=backend)
        before = fd_count()
        with pytest.raises(OSError) as info:
            mgr.listen("127.0.0.1", 0, reuse_port=True)
        assert info.value.errno == errno.EOPNOTSUPP, info.value
        assert fd_count() == before
        assert mgr.stats()["listeners"] == 0
else:
    def test_reuse_port_lets_two_managers_share_a_port(iocp_manager: ManagerFactory, backend: str) -> None:
        a = iocp_manager(Recorder(echo=True), backend=backend)
        b = iocp_manager(Recorder(echo=True), backend=backend)
        la = a.listen("127.0.0.1", 0, reuse_port=True)
        lb = b.listen("127.0.0.1", la.address[1], reuse_port=True)
        assert lb.address == la.address
        for i in range(40):
            with client(la.address) as s:
                s.sendall(b"%d" % i)
                assert recv_exactly(s, len(b"%d" % i)) == b"%d" % i
        wait_until(lambda: a.stats()["closed"] + b.stats()["closed"] == 40)
        assert a.stats()["accepted"] + b.stats()["accepted"] == 40


def test_listen_on_all_interfaces(iocp_manager: ManagerFactory, backend: str) -> None:
    # Binding only; the client still comes over loopback.
    mgr = iocp_manager(Echo(), backend=backend)
    lst = mgr.listen("", 0)
    assert lst.address[0] == "0.0.0.0"
    with client(("127.0.0.1", lst.address[1])) as s:
        s.sendall(b"any")
        assert recv_exactly(s, 3) == b"any"
    wait_until(lambda: mgr.connections == 0)
    assert "Listener" in repr(lst) and not lst.closed
    lst.close()
    assert lst.closed and "closed" in repr(lst)
