"""UDP through the Python API: bind_udp, on_datagram, DatagramEndpoint and
poll mode's "datagram" Completions, against Python's own UDP sockets over
loopback on every backend."""

from __future__ import annotations

import errno
import gc
import socket
import sys
import threading
import time
import weakref
from typing import Any, Callable, List, Set, Tuple

import pytest

import pyiocp
from iocp_helpers import wait_until
from pyiocp.testing import ManagerFactory

TIMEOUT = 20.0
Addr = Tuple[str, int]


class Datagrams(pyiocp.Handler):
    """Records datagrams; echoes them when echo is set."""

    def __init__(self, echo: bool = False) -> None:
        self.echo = echo
        self.cond = threading.Condition()
        self.got: List[Tuple[pyiocp.DatagramEndpoint, bytes, Addr]] = []
        self.errors: List[BaseException] = []

    def on_datagram(self, endpoint: pyiocp.DatagramEndpoint, data: bytes, addr: Addr) -> None:
        if self.echo:
            endpoint.sendto(data, addr)
        with self.cond:
            self.got.append((endpoint, data, addr))
            self.cond.notify_all()

    def on_error(self, conn: Any, exc: BaseException) -> None:
        self.errors.append(exc)

    def wait_for(self, n: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.got) >= n, TIMEOUT), f"{len(self.got)} of {n} datagrams"


def client(family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    s.bind((host, 0))
    return s


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_udp_echo(iocp_manager: ManagerFactory, backend: str, host: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    h = Datagrams(echo=True)
    mgr = iocp_manager(h, backend=backend)
    ep = mgr.bind_udp(host, 0)
    assert ep.address[0] == host and ep.address[1] > 0
    with client(family, host) as c:
        me = c.getsockname()[:2]
        for size in (0, 1, 1400, 9000, 65507):
            payload = bytes(i % 251 for i in range(size))
            c.sendto(payload, ep.address)
            data, src = c.recvfrom(70000)
            assert (data, src[:2]) == (payload, ep.address)
        h.wait_for(5)
        assert all(e is ep and a == me for e, _, a in h.got)
        assert [len(d) for _, d, _ in h.got] == [0, 1, 1400, 9000, 65507]
    wait_until(lambda: mgr.stats()["datagrams_out"] == 5, what="5 datagrams sent")
    s = mgr.stats()
    assert (s["endpoints"], s["datagrams_in"], s["datagrams_truncated"], s["datagram_errors"]) == (1, 5, 0, 0)
    ep.close()
    wait_until(lambda: mgr.stats()["endpoints"] == 0, what="endpoint gone")


def test_udp_dual_stack_reply(iocp_manager: ManagerFactory, backend: str) -> None:
    """An IPv6 endpoint on "::" hears IPv4 senders and names them as IPv4:
    the reply to that address reaches them."""
    h = Datagrams(echo=True)
    mgr = iocp_manager(h, backend=backend)
    ep = mgr.bind_udp("::", 0)
    with client() as c:
        c.sendto(b"four", ("127.0.0.1", ep.address[1]))
        data, src = c.recvfrom(100)
        assert data == b"four" and src[1] == ep.address[1]
        h.wait_for(1)
        assert h.got[0][2] == c.getsockname()


def test_udp_many_datagrams(iocp_manager: ManagerFactory, backend: str) -> None:
    """Every datagram of many is delivered once and echoed, on two workers
    with an endpoint each (a window of them in flight: loopback drops
    none unless a socket buffer overflows)."""
    h = Datagrams(echo=True)
    mgr = iocp_manager(h, backend=backend, workers=2)
    eps = [mgr.bind_udp("127.0.0.1", 0) for _ in range(2)]
    total, window = 3072, 32
    with client() as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sent: Set[bytes] = set()
        back: Set[bytes] = set()
        for start in range(0, total, window):
            for i in range(start, start + window):
                msg = b"%d:" % i + bytes(i % 200)
                sent.add(msg)
                c.sendto(msg, eps[i % 2].address)
            for _ in range(window):
                back.add(c.recvfrom(1000)[0])
        assert back == sent
    h.wait_for(total)
    assert sorted(d for _, d, _ in h.got) == sorted(sent)
    assert {e for e, _, _ in h.got} == set(eps)
    wait_until(lambda: mgr.stats()["datagrams_out"] == total, what=f"{total} sent: {mgr.stats()}")
    assert mgr.stats()["datagrams_in"] == total


def test_udp_connected(iocp_manager: ManagerFactory, backend: str) -> None:
    h = Datagrams(echo=True)
    mgr = iocp_manager(h, backend=backend)
    server = mgr.bind_udp("127.0.0.1", 0)
    ch = Datagrams()
    cmgr = iocp_manager(ch, backend=backend)
    conn = cmgr.bind_udp("127.0.0.1", 0, remote=server.address)
    assert conn.remote == server.address
    conn.sendto(b"no address")
    conn.sendto(b"its own", server.address)
    ch.wait_for(2)
    assert sorted(d for _, d, _ in ch.got) == [b"its own", b"no address"]
    assert {a for _, _, a in ch.got} == {server.address}
    assert {a for _, _, a in h.got} == {conn.address}
    with pytest.raises(ValueError):
        conn.sendto(b"elsewhere", ("127.0.0.1", server.address[1] ^ 1))
    # A connected endpoint hears its remote only.
    with client() as stranger:
        stranger.sendto(b"stranger", conn.address)
        conn.sendto(b"after")
        ch.wait_for(3)
        time.sleep(0.2)
    assert [d for _, d, _ in ch.got[2:]] == [b"after"]


def test_udp_poll_mode(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    ep = mgr.bind_udp("127.0.0.1", 0)
    with client() as c:
        c.sendto(b"ping", ep.address)
        got: List[pyiocp.Completion] = []
        deadline = time.monotonic() + TIMEOUT
        while not got and time.monotonic() < deadline:
            got = [x for x in mgr.poll(0.1) if x.kind == "datagram"]
        assert len(got) == 1
        assert got[0].conn is ep and got[0].data == (b"ping", c.getsockname()) and got[0].error is None
        ep.sendto(b"pong", got[0].data[1])
        c.settimeout(0.05)
        reply = None
        while reply is None and time.monotonic() < deadline:
            mgr.poll(0.05)  # the worker sends in its rounds
            try:
                reply = c.recvfrom(100)
            except socket.timeout:
                pass
        assert reply == (b"pong", ep.address)


def test_udp_poll_shared(iocp_manager: ManagerFactory, backend: str) -> None:
    """Several threads polling one worker: each datagram is one Completion
    on one of them, each Completion's endpoint the one object."""
    mgr = iocp_manager(None, backend=backend)
    ep = mgr.bind_udp("127.0.0.1", 0)
    total, window = 1536, 32
    lock = threading.Lock()
    seen: List[bytes] = []
    stop = threading.Event()
    bad: List[Any] = []

    def poller() -> None:
        while not stop.is_set():
            for x in mgr.poll(0.05):
                if x.kind != "datagram" or x.conn is not ep:
                    bad.append(x)
                with lock:
                    seen.append(x.data[0])

    threads = [threading.Thread(target=poller) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        with client() as c:
            for start in range(0, total, window):
                for i in range(start, start + window):
                    c.sendto(b"%d" % i, ep.address)
                wait_until(lambda: len(seen) >= start + window, timeout=TIMEOUT)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not bad
    assert sorted(seen) == sorted(b"%d" % i for i in range(total))


def test_udp_buffer_full(iocp_manager: ManagerFactory, backend: str) -> None:
    """Over send_buffer_limit sendto raises BufferFull and queues nothing
    (poll mode: nothing is sent until the worker is polled)."""
    mgr = iocp_manager(None, backend=backend, send_buffer_limit=1000)
    ep = mgr.bind_udp("127.0.0.1", 0)
    with client() as c:
        ep.sendto(b"a" * 600, c.getsockname())
        with pytest.raises(pyiocp.BufferFull):
            ep.sendto(b"b" * 600, c.getsockname())
        ep.sendto(b"c" * 400, c.getsockname())
        assert mgr.stats()["pending_send_bytes"] == 1000
        c.settimeout(0.05)
        got: List[bytes] = []
        deadline = time.monotonic() + TIMEOUT
        while len(got) < 2 and time.monotonic() < deadline:
            mgr.poll(0.05)
            try:
                got.append(c.recvfrom(2000)[0])
            except socket.timeout:
                pass
        assert got == [b"a" * 600, b"c" * 400]
        ep.sendto(b"d" * 1000, c.getsockname())  # room again


def test_udp_truncated_counted(iocp_manager: ManagerFactory, backend: str) -> None:
    """A datagram longer than datagram_size is dropped, not delivered
    short, and counted; the ones that fit still arrive."""
    h = Datagrams()
    mgr = iocp_manager(h, backend=backend)
    ep = mgr.bind_udp("127.0.0.1", 0, datagram_size=100)
    with client() as c:
        c.sendto(b"x" * 101, ep.address)
        c.sendto(b"y" * 100, ep.address)
        c.sendto(b"z" * 5000, ep.address)
        c.sendto(b"end", ep.address)
        h.wait_for(2)
    wait_until(lambda: mgr.stats()["datagrams_truncated"] == 2, what="2 truncated")
    time.sleep(0.1)
    assert sorted(d for _, d, _ in h.got) == [b"end", b"y" * 100]
    assert mgr.stats()["datagrams_in"] == 2 and not h.errors


def test_udp_bad_input(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    ep = mgr.bind_udp("127.0.0.1", 0)
    ep6 = mgr.bind_udp("::1", 0)
    to = ("127.0.0.1", 9)
    for bad_addr in ("127.0.0.1", ("127.0.0.1",), (b"127.0.0.1", 9), (1, 2), ("127.0.0.1", "9"),
                     ("127.0.0.1", 9, 0)):
        with pytest.raises(TypeError):
            ep.sendto(b"x", bad_addr)  # type: ignore[arg-type]
    for bad_addr in (("localhost", 9), ("127.0.0.1", 0), ("127.0.0.1", 70000), ("::1", 9), ("", 9)):
        with pytest.raises(ValueError):
            ep.sendto(b"x", bad_addr)
    with pytest.raises(ValueError):
        ep.sendto(b"x")  # not connected: an address is needed
    with pytest.raises(TypeError):
        ep.sendto("text", to)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ep.sendto(bytes(65508), to)
    with pytest.raises(ValueError):
        ep6.sendto(bytes(65528), ("::1", 9))
    ep6.sendto(bytes(65527), ("::1", 9))
    ep.sendto(bytearray(65507), to)
    ep.sendto(memoryview(b"view"), to)
    with pytest.raises(TypeError):
        mgr.bind_udp("127.0.0.1", 0, reuse_port=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        mgr.bind_udp("127.0.0.1", 0, remote="127.0.0.1:9")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        mgr.bind_udp("127.0.0.1", 0, remote=("::1", 9))  # an IPv4 endpoint's remote is IPv4
    for size in (0, 65537):
        with pytest.raises(ValueError):
            mgr.bind_udp("127.0.0.1", 0, datagram_size=size)
    with pytest.raises(ValueError):
        mgr.bind_udp("127.0.0.1", 70000)
    with pytest.raises(OSError) as err:
        mgr.bind_udp("127.0.0.1", ep.address[1])
    assert err.value.errno == errno.EADDRINUSE
    assert mgr.stats()["endpoints"] == 2
    ep.close()
    ep.close()
    assert ep.closed and not ep6.closed
    with pytest.raises(pyiocp.ConnectionClosed):
        ep.sendto(b"x", to)
    mgr.close()
    assert ep6.closed
    with pytest.raises(pyiocp.ConnectionClosed):
        ep6.sendto(b"x", ("::1", 9))
    with pytest.raises(pyiocp.ManagerClosed):
        mgr.bind_udp("127.0.0.1", 0)


def test_udp_reuse_port(iocp_manager: ManagerFactory, backend: str) -> None:
    """Two endpoints share a port with reuse_port (Linux); Windows has no
    SO_REUSEPORT: OSError EOPNOTSUPP, as listen(reuse_port=True) there."""
    mgr = iocp_manager(Datagrams(), backend=backend)
    if sys.platform == "win32":
        with pytest.raises(OSError) as err:
            mgr.bind_udp("127.0.0.1", 0, reuse_port=True)
        assert err.value.errno == errno.EOPNOTSUPP
        return
    a = mgr.bind_udp("127.0.0.1", 0, reuse_port=True)
    b = mgr.bind_udp("127.0.0.1", a.address[1], reuse_port=True)
    assert a.address == b.address


def _blast(addr: Addr, stop: threading.Event) -> Callable[[], None]:
    def run() -> None:
        with client() as c:
            c.setblocking(False)
            while not stop.is_set():
                try:
                    c.sendto(b"flood", addr)
                except OSError:
                    pass  # the peer's buffer is full, or it is closed
                time.sleep(0.0005)
    return run


@pytest.mark.parametrize("closer", ["other thread", "callback"])
def test_udp_close_while_traffic_flows(iocp_manager: ManagerFactory, backend: str, closer: str) -> None:
    """close() while datagrams pour in: no on_datagram starts after it,
    the socket closes (the leak check counts descriptors), and the
    endpoint object is freed once the manager is."""

    class Closing(Datagrams):
        def on_datagram(self, endpoint: pyiocp.DatagramEndpoint, data: bytes, addr: Addr) -> None:
            try:
                super().on_datagram(endpoint, data, addr)
            except pyiocp.ConnectionClosed:
                # close() on the other thread can come between this
                # callback's start and its echo (at once without the GIL):
                # the echo then finds the endpoint closed, as sendto
                # documents. Any other ConnectionClosed is an error.
                if not endpoint.closed:
                    raise
                return
            if closer == "callback" and len(self.got) >= 50:
                endpoint.close()
                endpoint.close()

    h = Closing(echo=True)
    mgr = iocp_manager(h, backend=backend)
    ep = mgr.bind_udp("127.0.0.1", 0)
    stop = threading.Event()
    senders = [threading.Thread(target=_blast(ep.address, stop)) for _ in range(2)]
    for t in senders:
        t.start()
    try:
        h.wait_for(50)
        if closer == "other thread":
            ep.close()
        wait_until(lambda: ep.closed)
        with h.cond:
            at_close = len(h.got)
        wait_until(lambda: mgr.stats()["endpoints"] == 0, what="endpoint gone")
        time.sleep(0.2)
        with h.cond:
            assert len(h.got) <= at_close + 1  # at most the one that was running
    finally:
        stop.set()
        for t in senders:
            t.join()
    with pytest.raises(pyiocp.ConnectionClosed):
        ep.sendto(b"x", ("127.0.0.1", 9))
    assert not h.errors
    ref = weakref.ref(ep)
    mgr.close()
    h.got.clear()
    del ep
    gc.collect()
    assert ref() is None


def test_udp_on_datagram_raises(iocp_manager: ManagerFactory, backend: str) -> None:
    """An exception in on_datagram goes to on_error with the endpoint; the
    default closes it."""

    class Raises(pyiocp.Handler):
        def on_datagram(self, endpoint: pyiocp.DatagramEndpoint, data: bytes, addr: Addr) -> None:
            raise RuntimeError("boom")

    mgr = iocp_manager(Raises(), backend=backend)
    ep = mgr.bind_udp("127.0.0.1", 0)
    with client() as c:
        c.sendto(b"x", ep.address)
        wait_until(lambda: ep.closed, what="closed by on_error")
    wait_until(lambda: mgr.stats()["endpoints"] == 0)


def test_udp_closed_endpoint_is_freed(iocp_manager: ManagerFactory, backend: str) -> None:
    """close() drops the engine's reference at once: a closed endpoint the
    application lets go of is freed while its manager runs on."""
    mgr = iocp_manager(Datagrams(), backend=backend)
    ep = mgr.bind_udp("127.0.0.1", 0)
    ref = weakref.ref(ep)
    ep.close()
    del ep
    gc.collect()
    assert ref() is None
    wait_until(lambda: mgr.stats()["endpoints"] == 0)


def test_udp_default_handler_ignores(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(pyiocp.Handler(), backend=backend)
    ep = mgr.bind_udp("127.0.0.1", 0)
    with client() as c:
        c.sendto(b"x", ep.address)
        wait_until(lambda: mgr.stats()["datagrams_in"] == 1)
    assert not ep.closed and repr(ep).startswith("<pyiocp.DatagramEndpoint address=")

