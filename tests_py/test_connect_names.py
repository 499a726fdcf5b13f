"""connect() to a host name: resolved off the calling thread (a callback
may connect), its addresses tried until one connects, a name that does not
resolve ending in on_close(conn, socket.gaierror)."""

from __future__ import annotations

import socket
from typing import Any, List

import pytest

import pyiocp
from iocp_helpers import Recorder
from pyiocp.testing import ManagerFactory


class ConnectsOnPost(Recorder):
    """Connects from a callback, on the worker: what a proxy does."""

    def __init__(self) -> None:
        super().__init__()
        self.made: List[pyiocp.Connection] = []

    def on_post(self, payload: Any) -> None:
        mgr, host, port = payload
        self.made.append(mgr.connect(host, port, timeout=10))


def test_connect_to_a_name_from_a_callback(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = ConnectsOnPost()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen("127.0.0.1", 0)
    # "localhost" may be ::1 first, where nothing listens: then 127.0.0.1.
    mgr.post((mgr, "localhost", lst.address[1]))
    rec.wait_count("connect", 1)
    (conn,) = rec.made
    assert conn.peer == ("127.0.0.1", lst.address[1])
    rec.wait_count("accept", 1)
    conn.send(b"over a name")
    rec.wait(lambda: any(bytes(v) == b"over a name" for v in rec.data.values()), what="the bytes")
    conn.close()
    rec.wait_all_closed(2)


def test_a_name_that_does_not_resolve(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend)
    conn = mgr.connect("no..such..name", 80, timeout=10)
    assert conn.peer is None  # not known until connected
    err = rec.wait_closed(conn.id)
    assert isinstance(err, socket.gaierror) and "no..such..name" in str(err), repr(err)
    assert rec.kinds(conn.id) == ["close"]  # never on_connect
    with pytest.raises(TypeError):
        mgr.connect("", 80)
    with pytest.raises(ValueError):
        mgr.connect("localhost\0", 80)
    with pytest.raises(ValueError):
        mgr.connect("localhost", 0)
    with pytest.raises(TypeError):
        mgr.connect("localhost", "80")  # type: ignore[arg-type]
