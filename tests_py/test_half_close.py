"""Half-close: the peer's FIN is on_eof, kept apart from close; a handler
that overrides it may keep sending. shutdown_write() sends our FIN after
the pending bytes."""

from __future__ import annotations

import random
import socket
import threading

import pytest

import pyiocp
from iocp_helpers import Recorder, Serve, client, connected, recv_exactly, recv_until_eof


class EofRecorder(Recorder):
    def on_eof(self, conn: pyiocp.Connection) -> None:
        self.record("eof", conn)


def test_http10_style_request_then_fin(serve: Serve, backend: str) -> None:
    """The client sends its request and FIN, then reads the whole reply;
    the server answers in on_eof and closes."""
    body = random.Random(14).randbytes(3 << 20)

    class Http10(EofRecorder):
        def on_eof(self, conn: pyiocp.Connection) -> None:
            super().on_eof(conn)
            request = bytes(self.data[conn.id])
            reply = b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
            conn.send(reply)
            for i in range(0, len(body), 1 << 20):
                conn.send(body[i:i + (1 << 20)])
            conn.send(b"\r\n" + request)
            conn.close()

    rec = Http10()
    mgr, lst = serve(rec, backend=backend)
    for _ in range(3):
        with client(lst.address, timeout=10) as s:
            req = b"GET / HTTP/1.0\r\nHost: x\r\n\r\n"
            s.sendall(req)
            s.shutdown(socket.SHUT_WR)
            got = recv_until_eof(s)
        head, _, rest = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK")
        assert rest == body + b"\r\n" + req
    rec.wait_all_closed(3)
    for cid in rec.conns:
        kinds = rec.kinds(cid)
        assert kinds.count("eof") == 1
        assert kinds[-2:] == ["eof", "close"]
        assert rec.closes[cid] == [None]


def test_keep_sending_from_another_thread_after_eof(serve: Serve, backend: str) -> None:
    class Late(EofRecorder):
        def on_eof(self, conn: pyiocp.Connection) -> None:
            super().on_eof(conn)

            def later() -> None:
                for i in range(5):
                    conn.send(b"late%d;" % i)
                    done.wait(0.03)
                conn.close()

            threading.Thread(target=later).start()

    done = threading.Event()
    rec = Late()
    mgr, lst = serve(rec, backend=backend)
    with client(lst.address) as s:
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b"".join(b"late%d;" % i for i in range(5))
    rec.wait_all_closed(1)


def test_default_on_eof_closes_after_flushing(serve: Serve, backend: str) -> None:
    data = random.Random(15).randbytes(2 << 20)
    rec = Recorder(echo=True)  # no on_eof override: the default closes
    mgr, lst = serve(rec, backend=backend)
    with client(lst.address, timeout=10) as s:
        def write() -> None:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)

        writer = threading.Thread(target=write)
        writer.start()
        got = recv_until_eof(s)
        writer.join(10)
    assert got == data
    conn_id = next(iter(rec.conns))
    assert rec.wait_closed(conn_id) is None


def test_shutdown_write_sends_fin_after_pending_data(serve: Serve, backend: str) -> None:
    data = random.Random(16).randbytes(3 << 20)
    rec = EofRecorder()
    mgr, lst = serve(rec, backend=backend)
    with client(lst.address, timeout=10) as s:
        conn = rec.first_conn()
        conn.send(data)
        conn.shutdown_write()
        assert not conn.closed  # half-closed is not closed
        with pytest.raises(pyiocp.ConnectionClosed):
            conn.send(b"after shutdown_write")
        assert recv_until_eof(s) == data
        # The other direction still works.
        s.sendall(b"still reading")
        rec.wait(lambda: bytes(rec.data[conn.id]) == b"still reading")
        # The peer's FIN after ours: the connection is done.
        s.shutdown(socket.SHUT_WR)
        assert rec.wait_closed(conn.id) is None
    assert rec.kinds(conn.id)[-2:] == ["eof", "close"]


def test_shutdown_write_twice_is_harmless(serve: Serve, backend: str) -> None:
    rec = EofRecorder()
    with connected(serve, rec, backend) as (mgr, s, conn):
        conn.send(b"x")
        conn.shutdown_write()
        try:
            conn.shutdown_write()
        except pyiocp.ConnectionClosed:
            pass  # either is fine: no crash, no second FIN
        assert recv_until_eof(s) == b"x"
    rec.wait_all_closed(1)


def test_no_recv_after_eof_and_eof_once(serve: Serve, backend: str) -> None:
    rec = EofRecorder(echo=True)
    mgr, lst = serve(rec, backend=backend, workers=2)
    for i in range(20):
        with client(lst.address) as s:
            s.sendall(b"data %d" % i)
            s.shutdown(socket.SHUT_WR)
            assert recv_exactly(s, len(b"data %d" % i)) == b"data %d" % i
            rec.wait_count("eof", i + 1)
    # on_eof overridden without closing: each connection is closed by us
    for cid, conn in list(rec.conns.items()):
        conn.close()
    rec.wait_all_closed(20)
    for cid in rec.conns:
        kinds = rec.kinds(cid)
        assert kinds.count("eof") == 1
        assert "recv" not in kinds[kinds.index("eof"):]
        assert kinds[-1] == "close"
