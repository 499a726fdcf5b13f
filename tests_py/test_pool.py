"""pyiocp.ConnectionPool against a real server: reuse, the size under 32
threads, peers closing idle connections, idle expiry, failed dials,
timeouts, close, and every bad argument; on every backend, leak-checked
by the plugin."""

from __future__ import annotations

import socket
import threading
from typing import Any, List, Set, Tuple

import pytest

import pyiocp
from iocp_helpers import Recorder
from pyiocp.testing import ManagerFactory


class Replies(Recorder):
    """A client handler: each connection's replies, waited for by the
    thread that sent the request."""

    def reply(self, conn: pyiocp.Connection, n: int) -> bytes:
        self.wait(lambda: len(self.data[conn.id]) >= n, what=f"{n} bytes on {conn.id}")
        with self.cond:
            got = bytes(self.data[conn.id][:n])
            del self.data[conn.id][:n]
        return got


def serve_pool(iocp_manager: ManagerFactory, backend: str, **pool: Any) -> Tuple[pyiocp.ConnectionPool, Replies, Recorder]:
    server = Recorder(echo=True)
    srv = iocp_manager(server, backend=backend)
    lst = srv.listen("127.0.0.1", 0)
    client = Replies()
    mgr = iocp_manager(client, backend=backend)
    return pyiocp.ConnectionPool(mgr, *lst.address, **pool), client, server


def test_a_released_connection_is_reused(iocp_manager: ManagerFactory, backend: str) -> None:
    pool, client, _ = serve_pool(iocp_manager, backend, size=2)
    with pool:
        conn = pool.acquire()
        assert conn.peer is not None and not conn.closed
        conn.send(b"ping")
        assert client.reply(conn, 4) == b"ping"
        pool.release(conn)
        assert pool.acquire() is conn
        assert pool.stats() == {"open": 1, "idle": 0, "waits": 0, "dials": 1}
        pool.release(conn)
        with pytest.raises(ValueError, match="released already"):
            pool.release(conn)
        assert "idle=1" in repr(pool)


def test_size_is_kept_under_32_threads(iocp_manager: ManagerFactory, backend: str) -> None:
    """Four held fill the pool (a fifth waits in vain); then 32 threads
    share it: never more than four open, none handed to two at once."""
    pool, client, _ = serve_pool(iocp_manager, backend, size=4)
    held = [pool.acquire() for _ in range(4)]
    with pytest.raises(TimeoutError):
        pool.acquire(timeout=0.05)
    for c in held:
        pool.release(c)
    busy: Set[int] = set()
    lock = threading.Lock()
    problems: List[str] = []

    def work(i: int) -> None:
        for j in range(10):
            conn = pool.acquire(timeout=30)
            with lock:
                if conn.id in busy:
                    problems.append(f"{conn.id} handed out twice")
                busy.add(conn.id)
                if pool.stats()["open"] > 4:
                    problems.append(f"{pool.stats()}")
            msg = b"%d.%d;" % (i, j)
            conn.send(msg)
            if client.reply(conn, len(msg)) != msg:
                problems.append(f"wrong reply on {conn.id}")
            with lock:
                busy.discard(conn.id)
            pool.release(conn)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = pool.stats()
    assert problems == [] and s["dials"] == 4 and s["open"] == 4 and s["idle"] == 4 and s["waits"] > 0, (problems, s)
    pool.close()
    client.wait(lambda: len(client.closes) == 4, what="the idle connections closed by close()")


def test_a_connection_the_peer_closes_leaves_the_pool(iocp_manager: ManagerFactory, backend: str) -> None:
    pool, client, server = serve_pool(iocp_manager, backend, size=3)
    conns = [pool.acquire() for _ in range(3)]
    for c in conns:
        pool.release(c)
    assert pool.stats()["idle"] == 3
    server.wait_count("accept", 3)
    for c in list(server.conns.values()):
        c.close()
    client.wait(lambda: pool.stats() == {"open": 0, "idle": 0, "waits": 0, "dials": 3}, what="an empty pool")
    fresh = pool.acquire()
    assert fresh not in conns and not fresh.closed
    pool.release(fresh)


def test_idle_connections_expire(iocp_manager: ManagerFactory, backend: str) -> None:
    pool, client, _ = serve_pool(iocp_manager, backend, size=2, idle_timeout=0.05)
    conn = pool.acquire()
    pool.release(conn)
    assert client.wait_closed(conn.id) is None  # a clean close, not a timeout error
    assert pool.stats()["open"] == 0


def test_a_failed_dial_raises_its_error(iocp_manager: ManagerFactory, backend: str) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    mgr = iocp_manager(Recorder(), backend=backend)
    pool = pyiocp.ConnectionPool(mgr, "127.0.0.1", port, size=1)
    with pytest.raises(ConnectionRefusedError):
        pool.acquire()
    assert pool.stats()["open"] == 0
    bad = pyiocp.ConnectionPool(mgr, "no-such-host.invalid", port, size=1)
    with pytest.raises(socket.gaierror):
        bad.acquire(timeout=30)


def test_a_dial_freed_before_the_pool_adopts_it_raises_its_error(iocp_manager: ManagerFactory,
                                                                  backend: str) -> None:
    """The race a pool's dial can lose (most often without the GIL): the
    refused connect's close is delivered, and the engine frees the
    connection, before the pool adopts it by id. The pool must still raise
    the connect's error, not ConnectionClosed. Driven step by step through
    the pool's engine object, on one worker."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend, workers=1)
    pool = pyiocp.ConnectionPool(mgr, "127.0.0.1", port, size=1)
    conn, dial, _ = pool._pool.take()
    assert conn is None and dial
    conn = mgr.connect("127.0.0.1", port)
    assert isinstance(rec.wait_closed(conn.id), ConnectionRefusedError)
    mgr.post("later")  # delivered in a later round of the one worker: the slot is free by then
    rec.wait(lambda: rec.posts == ["later"], what="the post")
    pool._pool.adopt(conn)
    with pytest.raises(ConnectionRefusedError):
        pool._pool.ready(conn)
    assert pool.stats()["open"] == 0


def test_acquire_times_out_and_close_ends_it(iocp_manager: ManagerFactory, backend: str) -> None:
    pool, client, _ = serve_pool(iocp_manager, backend, size=1)
    held = pool.acquire()
    with pytest.raises(TimeoutError):
        pool.acquire(timeout=0.1)
    assert pool.stats()["waits"] >= 1
    pool.close()
    with pytest.raises(pyiocp.ManagerClosed):
        pool.acquire()
    pool.release(held)  # closed on release, the pool being closed
    client.wait_closed(held.id)
    pool.close()  # idempotent


def test_framing_and_handler_events(iocp_manager: ManagerFactory, backend: str) -> None:
    """A pooled connection's events reach the manager's handler, framed."""
    pool, client, _ = serve_pool(iocp_manager, backend, framing=pyiocp.Lines())
    conn = pool.acquire()
    conn.send_frame(b"one")
    conn.send_frame(b"two")
    client.wait_count("recv", 2)
    assert [a for k, c, a, _ in client.events if k == "recv"] == [3, 3]
    assert "connect" in client.kinds(conn.id)
    pool.release(conn)


@pytest.mark.parametrize("kwargs,error", [
    ({"size": 0}, ValueError),
    ({"size": "4"}, TypeError),
    ({"idle_timeout": -1}, ValueError),
    ({"idle_timeout": 0}, ValueError),
    ({"idle_timeout": "60"}, TypeError),
    ({"connect_timeout": -1}, ValueError),
    ({"framing": b"\n"}, TypeError),
])
def test_bad_arguments(iocp_manager: ManagerFactory, kwargs: Any, error: type) -> None:
    mgr = iocp_manager(Recorder())
    with pytest.raises(error):
        pyiocp.ConnectionPool(mgr, "127.0.0.1", 9, **kwargs)


def test_bad_calls(iocp_manager: ManagerFactory, backend: str) -> None:
    pool, _, _ = serve_pool(iocp_manager, backend)
    mgr = iocp_manager(Recorder())
    with pytest.raises(TypeError):
        pyiocp.ConnectionPool(mgr, "", 9)
    with pytest.raises(ValueError):
        pyiocp.ConnectionPool(mgr, "127.0.0.1", 0)
    with pytest.raises(TypeError):
        pool.release("conn")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        pool.acquire(timeout=-1)
    mgr.close()
    with pytest.raises(pyiocp.ManagerClosed):
        pyiocp.ConnectionPool(mgr, "127.0.0.1", 9)
