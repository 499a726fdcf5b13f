"""poll() mode (handler=None): the GetQueuedCompletionStatus loop."""

from __future__ import annotations

import math
import socket
import threading
import time
from typing import Callable, List, Optional, Union

import pytest

import pyiocp
from iocp_helpers import LATE, client, recv_exactly, recv_until_eof, small_rcvbuf_client
from pyiocp.testing import ManagerFactory


def collect(mgr: pyiocp.SocketManager, until: Callable[[List[pyiocp.Completion]], object], timeout: float = 5.0,
            max: int = 64) -> List[pyiocp.Completion]:
    """Poll until until(completions so far) holds; returns them all."""
    out: List[pyiocp.Completion] = []
    deadline = time.monotonic() + timeout
    while not until(out):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out; got {[(c.kind, c.data, c.error) for c in out]}")
        batch = mgr.poll(min(left, 0.2), max=max)
        for c in batch:
            assert isinstance(c, pyiocp.Completion)
            assert len(batch) <= max
        out.extend(batch)
    return out


def kinds(cs: List[pyiocp.Completion], conn: Optional[pyiocp.Connection] = None) -> List[str]:
    return [c.kind for c in cs if conn is None or c.conn is conn]


def has(kind: str, n: int = 1) -> Callable[[List[pyiocp.Completion]], bool]:
    return lambda cs: sum(1 for c in cs if c.kind == kind) >= n


def test_listen_and_poll_without_start(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    lst = mgr.listen("127.0.0.1", 0)
    with client(lst.address) as s:
        cs = collect(mgr, has("accept"))
        acc = next(c for c in cs if c.kind == "accept")
        conn = acc.conn
        assert isinstance(conn, pyiocp.Connection)
        assert acc.data is None and acc.error is None
        assert conn.peer == s.getsockname()

        s.sendall(b"hello")
        cs = collect(mgr, lambda cs: b"".join(c.data for c in cs if c.kind == "recv") == b"hello")
        assert all(c.conn is conn for c in cs)
        assert all(isinstance(c.data, bytes) for c in cs if c.kind == "recv")

        conn.send(b"world")
        cs = collect(mgr, lambda cs: sum(c.data for c in cs if c.kind == "send") == 5)
        assert all(isinstance(c.data, int) for c in cs if c.kind == "send")
        assert recv_exactly(s, 5) == b"world"

        s.shutdown(socket.SHUT_WR)
        cs = collect(mgr, has("eof"))
        eof = next(c for c in cs if c.kind == "eof")
        assert eof.conn is conn and eof.data is None and eof.error is None
        # After eof the connection still sends (poll mode has on_eof's
        # half-close semantics: nothing closes by itself).
        conn.send(b"after eof")
        # The worker writes in its next round, which poll() runs.
        collect(mgr, lambda cs: sum(c.data for c in cs if c.kind == "send") == 9)
        assert recv_exactly(s, 9) == b"after eof"
        conn.close()
        cs = collect(mgr, has("close"))
        close = next(c for c in cs if c.kind == "close")
        assert close.conn is conn and close.error is None
        assert recv_until_eof(s) == b""
    assert conn.closed


def test_post_delivers_the_same_object(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    payloads = [object(), {"a": 1}, None, "text", 42, (1, 2)]
    for p in payloads:
        mgr.post(p)
    cs = collect(mgr, has("post", len(payloads)))
    assert [c.kind for c in cs] == ["post"] * len(payloads)
    for c, p in zip(cs, payloads):
        assert c.data is p
        assert c.conn is None and c.error is None


def test_post_from_another_thread_wakes_poll(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    token = object()
    t = threading.Timer(0.1, mgr.post, args=(token,))
    t.start()
    t0 = time.monotonic()
    cs = mgr.poll(5)
    elapsed = time.monotonic() - t0
    t.join()
    assert [c.data for c in cs] == [token]
    assert elapsed < LATE


@pytest.mark.parametrize("timeout", [0.05, 0.3])
def test_poll_timeout_returns_empty_list(iocp_manager: ManagerFactory, backend: str, timeout: float) -> None:
    mgr = iocp_manager(None, backend=backend)
    mgr.listen("127.0.0.1", 0)
    t0 = time.monotonic()
    assert mgr.poll(timeout) == []
    elapsed = time.monotonic() - t0
    assert timeout - 0.005 <= elapsed < timeout + LATE, elapsed


def test_poll_zero_does_not_block(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    t0 = time.monotonic()
    for _ in range(100):
        assert mgr.poll(0) == []
    assert time.monotonic() - t0 < LATE


def test_max_caps_the_batch(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    for i in range(10):
        mgr.post(i)
    first = mgr.poll(1, max=3)
    assert [c.data for c in first] == [0, 1, 2]
    rest = collect(mgr, lambda cs: len(cs) >= 7, max=3)
    assert [c.data for c in rest] == list(range(3, 10))
    assert mgr.poll(0, max=1) == []


def test_connect_in_poll_mode(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    lst = mgr.listen("127.0.0.1", 0)
    out = mgr.connect(*lst.address)
    out.send(b"ping")
    cs = collect(mgr, lambda cs: has("connect")(cs) and has("accept")(cs)
                 and b"".join(c.data for c in cs if c.kind == "recv") == b"ping")
    inbound = next(c.conn for c in cs if c.kind == "accept")
    assert next(c.conn for c in cs if c.kind == "connect") is out
    assert inbound is not out
    out.close()
    cs = collect(mgr, lambda cs: has("close")(cs) and has("eof")(cs))
    assert [c.conn for c in cs if c.kind == "close"] == [out]
    assert [c.conn for c in cs if c.kind == "eof"] == [inbound]
    # poll mode has no default on_eof: the inbound side closes when told
    inbound.close()
    cs = collect(mgr, has("close"))
    assert [c.conn for c in cs if c.kind == "close"] == [inbound]


def test_failed_connect_in_poll_mode(iocp_manager: ManagerFactory, backend: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        mgr = iocp_manager(None, backend=backend)
        out = mgr.connect("127.0.0.1", port)
        cs = collect(mgr, has("close"))
    assert kinds(cs) == ["close"]
    assert cs[0].conn is out
    assert isinstance(cs[0].error, ConnectionRefusedError)


def test_drain_in_poll_mode(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend, send_buffer_limit=64 << 10)
    lst = mgr.listen("127.0.0.1", 0)
    s = small_rcvbuf_client(lst.address)
    try:
        conn = collect(mgr, has("accept"))[0].conn
        sent = 0
        for _ in range(10_000):
            try:
                conn.send(b"d" * 4096)
                sent += 4096
            except pyiocp.BufferFull:
                break
        got = []
        reader = threading.Thread(target=lambda: got.append(recv_exactly(s, sent)))
        reader.start()
        cs = collect(mgr, has("drain"))
        reader.join(5)
        assert got == [b"d" * sent]
        assert kinds(cs).count("drain") == 1
        conn.close()
        collect(mgr, has("close"))
    finally:
        s.close()


def test_poll_after_close_raises(backend: str) -> None:
    mgr = pyiocp.SocketManager(None, backend=backend)
    mgr.close()
    with pytest.raises(pyiocp.ManagerClosed):
        mgr.poll(0)
    with pytest.raises(pyiocp.ManagerClosed):
        mgr.poll()


def test_close_from_another_thread_ends_a_blocked_poll(backend: str) -> None:
    mgr = pyiocp.SocketManager(None, backend=backend)
    result: List[Union[List[pyiocp.Completion], Exception]] = []

    def poller() -> None:
        try:
            result.append(mgr.poll())
        except Exception as exc:  # noqa: BLE001
            result.append(exc)

    t = threading.Thread(target=poller)
    t.start()
    try:
        time.sleep(0.1)  # let it block in poll (nothing to wait on: it returns nothing)
        t0 = time.monotonic()
        closer = threading.Thread(target=mgr.close)
        closer.start()
        t.join(2)
        closer.join(5)
        assert not t.is_alive(), "poll() still blocked after close()"
        assert time.monotonic() - t0 < LATE
        assert result and (result[0] == [] or isinstance(result[0], pyiocp.ManagerClosed)), result
    finally:
        mgr.close()
        t.join(1)


def test_send_from_another_thread_wakes_a_blocked_poll(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    lst = mgr.listen("127.0.0.1", 0)
    with client(lst.address) as s:
        conn = collect(mgr, has("accept"))[0].conn
        t = threading.Timer(0.1, conn.send, args=(b"woken",))
        t.start()
        t0 = time.monotonic()
        cs = collect(mgr, has("send"))
        t.join()
        assert time.monotonic() - t0 < LATE
        assert [(c.kind, c.data) for c in cs] == [("send", 5)]
        assert recv_exactly(s, 5) == b"woken"
        conn.close()
        collect(mgr, has("close"))


def test_poll_infinite_timeout_blocks(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(None, backend=backend)
    token = object()
    t = threading.Timer(0.2, mgr.post, args=(token,))
    t.start()
    try:
        t0 = time.monotonic()
        cs = mgr.poll(math.inf)
        elapsed = time.monotonic() - t0
    finally:
        t.join()
        mgr.poll(0)  # take the post if poll() returned early
    assert [c.data for c in cs] == [token]
    assert elapsed >= 0.15


def test_close_while_another_thread_turns_a_batch_into_completions(backend: str) -> None:
    """close() from one thread while another polls a stream of received
    data: the engine (and the memory the received bytes sit in) is
    released only after the poll has copied its batch; every poll either
    returns completions or raises ManagerClosed."""
    for _ in range(30):
        mgr = pyiocp.SocketManager(None, backend=backend)
        lst = mgr.listen("127.0.0.1", 0)
        problems = []
        received = []

        def poller() -> None:
            try:
                while True:
                    for c in mgr.poll(0.01):
                        if c.kind == "recv":
                            received.append(len(c.data))
            except pyiocp.ManagerClosed:
                pass
            except BaseException as exc:  # noqa: BLE001 - reported below
                problems.append(exc)

        socks = [client(lst.address) for _ in range(4)]
        t = threading.Thread(target=poller)
        t.start()
        for s in socks:
            s.sendall(b"x" * 100_000)
        mgr.close()
        t.join(10)
        for s in socks:
            s.close()
        assert not t.is_alive()
        assert problems == []
        assert mgr.closed
