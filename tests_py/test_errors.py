"""A callback that raises goes to on_error; the default logs it (logger
"pyiocp", with the traceback) and closes the connection; the worker keeps
serving."""

from __future__ import annotations

import logging
from typing import Any, List, Optional

import pytest

import pyiocp
from iocp_helpers import Recorder, Serve, client, connected, recv_exactly, recv_until_eof
from pyiocp.testing import ManagerFactory


class Boom(Exception):
    pass


class RaisesOnRecv(Recorder):
    """Echoes, but raises on a message that says boom."""

    def __init__(self) -> None:
        super().__init__(echo=True)

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        if b"boom" in data:
            self.record("recv", conn, len(data))
            raise Boom("boom from on_recv")
        super().on_recv(conn, data)


def _error_records(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pyiocp" and r.levelno >= logging.ERROR]


def test_default_on_error_logs_with_traceback_and_closes(serve: Serve, backend: str,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="pyiocp")
    rec = RaisesOnRecv()
    mgr, lst = serve(rec, backend=backend)
    with client(lst.address) as good, client(lst.address) as bad:
        good.sendall(b"before")
        assert recv_exactly(good, 6) == b"before"
        bad.sendall(b"boom")
        assert recv_until_eof(bad) == b""  # the default on_error closed it
        rec.wait_count("error", 1)
        # the worker goes on serving the other connection
        good.sendall(b"after")
        assert recv_exactly(good, 5) == b"after"
    rec.wait_all_closed(2)
    (conn, exc), = rec.errors
    assert conn is not None
    assert isinstance(exc, Boom)
    assert exc.__traceback__ is not None
    assert rec.closes[conn.id] == [None]
    records = _error_records(caplog)
    assert len(records) == 1
    assert records[0].exc_info and records[0].exc_info[1] is exc
    assert "Traceback" in caplog.text and "boom from on_recv" in caplog.text
    assert "on_recv" in caplog.text  # the frame that raised is in the traceback


def test_custom_on_error_gets_conn_and_exception(serve: Serve, backend: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="pyiocp")
    got = []

    class H(RaisesOnRecv):
        def on_error(self, conn: Optional[pyiocp.Connection], exc: BaseException) -> None:
            got.append((conn, exc))
            self.record("error", conn, exc)  # and does not close

    rec = H()
    with connected(serve, rec, backend) as (mgr, s, conn):
        s.sendall(b"boom")
        rec.wait_count("error", 1)
        assert got[0][0] is conn
        assert isinstance(got[0][1], Boom)
        assert not conn.closed  # this on_error kept it open
        s.sendall(b"still up")
        assert recv_exactly(s, 8) == b"still up"
    rec.wait_all_closed(1)
    assert _error_records(caplog) == []


def test_on_error_that_raises_is_logged(serve: Serve, backend: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="pyiocp")

    class H(RaisesOnRecv):
        def on_error(self, conn: Optional[pyiocp.Connection], exc: BaseException) -> None:
            self.record("error", conn, exc)
            raise RuntimeError("on_error itself failed")

    rec = H()
    mgr, lst = serve(rec, backend=backend)
    with client(lst.address) as s, client(lst.address) as other:
        s.sendall(b"boom")
        rec.wait_count("error", 1)
        other.sendall(b"served")
        assert recv_exactly(other, 6) == b"served"
        # logging happens on the worker right after on_error: wait for it
        rec.wait(lambda: len(_error_records(caplog)) >= 1, what="the log record")
    rec.wait_all_closed(2)
    records = _error_records(caplog)
    assert len(records) == 1
    exc_info = records[0].exc_info
    assert exc_info is not None
    assert isinstance(exc_info[1], RuntimeError)
    assert "on_error itself failed" in caplog.text
    assert "Traceback" in caplog.text


@pytest.mark.parametrize("callback", ["on_accept", "on_close", "on_connect"])
def test_errors_in_other_callbacks(serve: Serve, backend: str, callback: str,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="pyiocp")

    class H(Recorder):
        pass

    def raiser(self: Recorder, conn: pyiocp.Connection, *args: Any) -> None:
        getattr(Recorder, callback)(self, conn, *args)
        raise Boom(callback)

    setattr(H, callback, raiser)
    rec = H()
    mgr, lst = serve(rec, backend=backend)
    if callback == "on_connect":
        conn = mgr.connect(*lst.address)
    else:
        s = client(lst.address)
        conn = rec.first_conn()
        s.close()
    rec.wait_count("error", 1)
    rec.wait_all_closed(1)
    (econn, exc), = rec.errors[:1]
    assert econn is conn and isinstance(exc, Boom) and str(exc) == callback
    for c in rec.conns.values():
        c.close()
    rec.wait_all_closed()
    assert _error_records(caplog)  # the default on_error logged it
    assert all(len(v) == 1 for v in rec.closes.values())


def test_on_post_error_goes_to_on_error_without_conn(iocp_manager: ManagerFactory, backend: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="pyiocp")

    class H(Recorder):
        def on_post(self, payload: Any) -> None:
            super().on_post(payload)
            if payload == "bad":
                raise Boom("post")

    rec = H()
    mgr = iocp_manager(rec, backend=backend)
    mgr.post("bad")
    mgr.post("good")
    rec.wait_count("post", 2)
    rec.wait_count("error", 1)
    (conn, exc), = rec.errors
    assert conn is None and isinstance(exc, Boom)
    assert [p for p in rec.posts] == ["bad", "good"]
    assert _error_records(caplog)


def test_many_errors_do_not_stop_the_worker(serve: Serve, backend: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="pyiocp")
    rec = RaisesOnRecv()
    mgr, lst = serve(rec, backend=backend, workers=2)
    for _ in range(50):
        with client(lst.address) as s:
            s.sendall(b"boom")
            assert recv_until_eof(s) == b""
    with client(lst.address) as s:
        s.sendall(b"alive")
        assert recv_exactly(s, 5) == b"alive"
    rec.wait_all_closed(51)
    assert len(rec.errors) == 50
    assert mgr.stats()["closed"] == 51


def test_error_base_class_catches_all(serve: Serve, backend: str) -> None:
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend, send_buffer_limit=10)
    with client(lst.address):
        conn = rec.first_conn()
        with pytest.raises(pyiocp.Error):
            conn.send(b"x" * 11)
        conn.close()
        with pytest.raises(pyiocp.Error):
            conn.send(b"x")
    rec.wait_all_closed(1)
