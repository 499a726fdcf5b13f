"""connect(): the Connection at once, then on_connect or on_close(error)."""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
import time
from typing import Iterator, List, Optional, Tuple

import pytest

import pyiocp
from iocp_helpers import Recorder, client, full_backlog_listener, peer_sees_the_end, wait_until
from pyiocp.testing import ManagerFactory


@contextlib.contextmanager
def plain_echo_server() -> Iterator[Tuple[str, int]]:
    """A plain Python socket echo server on a thread; yields its address."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    srv.settimeout(0.1)
    stop = threading.Event()
    conns: List[socket.socket] = []

    def serve_one(c: socket.socket) -> None:
        with c:
            c.settimeout(5)
            try:
                while True:
                    d = c.recv(65536)
                    if not d:
                        return
                    c.sendall(d)
            except OSError:
                pass

    def accept_loop() -> None:
        threads: List[threading.Thread] = []
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conns.append(c)
            t = threading.Thread(target=serve_one, args=(c,))
            t.start()
            threads.append(t)
        for t in threads:
            t.join(5)

    t = threading.Thread(target=accept_loop)
    t.start()
    try:
        yield srv.getsockname()
    finally:
        stop.set()
        t.join(5)
        srv.close()


class Client(Recorder):
    """Records, and keeps the Connection object of each callback."""

    def __init__(self) -> None:
        super().__init__()
        self.objects: List[pyiocp.Connection] = []

    def on_connect(self, conn: pyiocp.Connection) -> None:
        self.objects.append(conn)
        super().on_connect(conn)

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        self.objects.append(conn)
        super().on_recv(conn, data)

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        self.objects.append(conn)
        super().on_close(conn, error)


def test_connect_to_a_plain_socket_server(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Client()
    mgr = iocp_manager(rec, backend=backend)
    with plain_echo_server() as addr:
        conn = mgr.connect(*addr)
        assert isinstance(conn, pyiocp.Connection)
        assert conn.peer == addr
        conn.tag = "mine"
        rec.wait(lambda: "connect" in rec.kinds(conn.id))
        assert conn.local is not None and conn.local[0] == "127.0.0.1"
        payload = bytes(range(256)) * 400
        conn.send(payload)
        rec.wait(lambda: len(rec.data[conn.id]) == len(payload))
        assert bytes(rec.data[conn.id]) == payload
        conn.close()
        assert rec.wait_closed(conn.id) is None
    assert all(o is conn for o in rec.objects)
    assert conn.tag == "mine"
    assert rec.kinds(conn.id)[0] == "connect" and rec.kinds(conn.id)[-1] == "close"
    assert mgr.stats()["connected"] == 1


def test_connect_through_a_pyiocp_server(iocp_manager: ManagerFactory, backend: str) -> None:
    server = iocp_manager(Recorder(echo=True), backend=backend)
    lst = server.listen("127.0.0.1", 0)
    rec = Client()
    mgr = iocp_manager(rec, backend=backend, workers=2)
    conns = [mgr.connect(*lst.address) for _ in range(10)]
    for i, c in enumerate(conns):
        c.index = i
        c.send(b"msg %d" % i)
    for i, c in enumerate(conns):
        rec.wait(lambda: bytes(rec.data[c.id]) == b"msg %d" % i)
        assert c.index == i
    for c in conns:
        c.close()
    rec.wait_all_closed(10)
    wait_until(lambda: server.connections == 0)
    assert server.stats()["accepted"] == 10
    assert mgr.stats()["connected"] == 10


def test_connect_counts_toward_max_connections(iocp_manager: ManagerFactory, backend: str) -> None:
    """Outbound connections count toward max_connections with accepted ones;
    connect() over the cap raises TooManyConnections (an OSError, errno
    EMFILE) and opens nothing; an inbound one over the cap is rejected."""
    server = iocp_manager(Recorder(echo=True), backend=backend)
    target = server.listen("127.0.0.1", 0).address
    rec = Client()
    mgr = iocp_manager(rec, backend=backend, max_connections=2)
    lst = mgr.listen("127.0.0.1", 0)
    inbound = client(lst.address)
    out = mgr.connect(*target)
    rec.wait(lambda: rec.count("accept") == 1 and "connect" in rec.kinds(out.id))
    with pytest.raises(pyiocp.TooManyConnections) as info:
        mgr.connect(*target)
    assert isinstance(info.value, OSError) and isinstance(info.value, pyiocp.Error)
    assert info.value.errno == errno.EMFILE
    assert "max_connections" in str(info.value)
    assert mgr.connections == 2
    try:  # the outbound one holds a place: an inbound one is rejected
        with client(lst.address) as extra:
            peer_sees_the_end(extra)
    except ConnectionResetError:
        pass  # the reset beat connect() back
    wait_until(lambda: mgr.stats()["rejected"] == 1)
    inbound.close()
    wait_until(lambda: mgr.connections == 1)
    again = mgr.connect(*target)
    rec.wait(lambda: "connect" in rec.kinds(again.id))
    for c in (again, out):
        c.close()
        assert rec.wait_closed(c.id) is None
    st = mgr.stats()
    assert st["connected"] == 2 and st["accepted"] == 1
    wait_until(lambda: server.connections == 0)


def test_sends_queued_before_the_connect_completes_arrive(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Client()
    mgr = iocp_manager(rec, backend=backend)
    with plain_echo_server() as addr:
        conn = mgr.connect(*addr)
        parts = [b"part%d," % i for i in range(100)]
        for p in parts:
            conn.send(p)  # most, if not all, before on_connect
        want = b"".join(parts)
        rec.wait(lambda: bytes(rec.data[conn.id]) == want)
        conn.close()
        rec.wait_closed(conn.id)


def test_connection_refused(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Client()
    mgr = iocp_manager(rec, backend=backend)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound but not listening: refused
        conn = mgr.connect(*s.getsockname())
        err = rec.wait_closed(conn.id)
    assert isinstance(err, ConnectionRefusedError), repr(err)
    assert rec.kinds(conn.id) == ["close"]
    assert conn.closed
    with pytest.raises(pyiocp.ConnectionClosed):
        conn.send(b"x")
    assert mgr.stats()["connected"] == 0


def test_connect_timeout(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Client()
    mgr = iocp_manager(rec, backend=backend)
    with full_backlog_listener() as addr:
        t0 = time.monotonic()
        conn = mgr.connect(*addr, timeout=0.3)
        conn.send(b"never sent")
        err = rec.wait_closed(conn.id)
        elapsed = time.monotonic() - t0
    assert isinstance(err, TimeoutError), repr(err)
    assert 0.25 <= elapsed < 2.0, elapsed
    assert rec.kinds(conn.id) == ["close"]
    assert mgr.stats()["timed_out"] == 1


def test_abort_while_connecting(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Client()
    mgr = iocp_manager(rec, backend=backend)
    with full_backlog_listener() as addr:
        conn = mgr.connect(*addr)
        conn.send(b"dropped")
        conn.abort()
        conn.abort()
        conn.close()
        assert conn.closed
        with pytest.raises(pyiocp.ConnectionClosed):
            conn.send(b"x")
        rec.wait_closed(conn.id)
    mgr.close()
    assert len(rec.closes[conn.id]) == 1
    assert "connect" not in rec.kinds(conn.id)


def test_close_while_connecting_with_nothing_queued(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Client()
    mgr = iocp_manager(rec, backend=backend)
    with full_backlog_listener() as addr:
        conn = mgr.connect(*addr)
        conn.close()
        assert conn.closed
        try:
            rec.wait_closed(conn.id)
        finally:
            conn.abort()  # so that the manager closes cleanly either way
            rec.wait_closed(conn.id)


def test_close_while_connecting_flushes_once_connected(iocp_manager: ManagerFactory, backend: str) -> None:
    """connect(); send(); close() at once: the bytes go out once connected,
    then the FIN (HTTP/1.0 clients do exactly this)."""
    server_rec = Recorder()
    server = iocp_manager(server_rec, backend=backend)
    lst = server.listen("127.0.0.1", 0)
    rec = Client()
    mgr = iocp_manager(rec, backend=backend)
    conns = []
    for i in range(20):
        c = mgr.connect(*lst.address)
        c.send(b"request %d" % i)
        c.close()
        conns.append(c)
    rec.wait_all_closed(20)
    server_rec.wait_all_closed(20)
    assert sorted(bytes(d) for d in server_rec.data.values()) == sorted(b"request %d" % i for i in range(20))
    assert all(rec.closes[c.id] == [None] for c in conns)
    assert all(errs == [None] for errs in server_rec.closes.values())


def test_manager_close_while_connecting(backend: str) -> None:
    rec = Client()
    with full_backlog_listener() as addr:
        with pyiocp.SocketManager(rec, backend=backend) as mgr:
            mgr.start()
            conn = mgr.connect(*addr)
        assert mgr.closed
    errs = rec.closes[conn.id]
    assert len(errs) == 1
    assert errs[0] is not None  # it never connected: not a clean close


def test_get_finds_open_connections_only(iocp_manager: ManagerFactory, backend: str) -> None:
    server = iocp_manager(Recorder(echo=True), backend=backend)
    lst = server.listen("127.0.0.1", 0)
    rec = Client()
    mgr = iocp_manager(rec, backend=backend)
    conn = mgr.connect(*lst.address)
    assert mgr.get(conn.id) is conn  # from the start, while connecting
    rec.wait(lambda: "connect" in rec.kinds(conn.id))
    assert mgr.get(conn.id) is conn
    assert mgr.get(conn.id + 1000) is None
    conn.close()
    rec.wait_closed(conn.id)
    assert mgr.get(conn.id) is None
    wait_until(lambda: server.connections == 0)


def test_ids_unique_and_increasing(iocp_manager: ManagerFactory, backend: str) -> None:
    server = iocp_manager(Recorder(), backend=backend)
    lst = server.listen("127.0.0.1", 0)
    rec = Client()
    mgr = iocp_manager(rec, backend=backend, workers=2)
    ids = []
    for i in range(100):
        c = mgr.connect(*lst.address)
        ids.append(c.id)
        if i % 2:
            c.close()  # freed slots must not bring ids back
            rec.wait_closed(c.id)
    assert ids == sorted(ids)
    assert len(set(ids)) == 100
    rec.wait_count("connect", 50)
    for cid in ids:
        found = mgr.get(cid)
        if found is not None:
            found.close()
    rec.wait_all_closed(100)
    wait_until(lambda: server.connections == 0)
    more = mgr.connect(*lst.address)
    assert more.id > ids[-1]
    more.close()
    rec.wait_closed(more.id)
    wait_until(lambda: server.connections == 0)


def test_connect_by_host_name(iocp_manager: ManagerFactory, backend: str) -> None:
    server = iocp_manager(Recorder(echo=True), backend=backend)
    lst = server.listen("127.0.0.1", 0)
    rec = Client()
    mgr = iocp_manager(rec, backend=backend)
    conn = mgr.connect("localhost", lst.address[1])
    rec.wait(lambda: "connect" in rec.kinds(conn.id) or conn.id in rec.closes)
    if conn.id in rec.closes:  # "localhost" resolved to ::1 first, where nothing listens
        assert isinstance(rec.closes[conn.id][0], ConnectionRefusedError)
    else:
        conn.send(b"hi")
        rec.wait(lambda: bytes(rec.data[conn.id]) == b"hi")
        conn.close()
        rec.wait_closed(conn.id)
    wait_until(lambda: server.connections == 0)


def test_peer_of_an_inbound_connection_is_the_connectors_local(iocp_manager: ManagerFactory, backend: str) -> None:
    server_rec = Recorder()
    server = iocp_manager(server_rec, backend=backend)
    lst = server.listen("127.0.0.1", 0)
    rec = Client()
    mgr = iocp_manager(rec, backend=backend)
    conn = mgr.connect(*lst.address)
    rec.wait(lambda: "connect" in rec.kinds(conn.id))
    inbound = server_rec.first_conn()
    assert inbound.peer == conn.local
    assert inbound.local == conn.peer == lst.address
    conn.close()
    rec.wait_closed(conn.id)
    server_rec.wait_all_closed(1)
