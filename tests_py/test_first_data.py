"""listen(first_data=True): a connection is accepted only once its peer has
sent something; the handler sees on_accept, then on_recv with those bytes."""

from __future__ import annotations

import socket
import time

import pytest

import pyiocp
from iocp_helpers import LOOPBACK, Recorder, client, recv_exactly
from pyiocp.testing import ManagerFactory


def test_first_data_accepts_once_the_peer_sends(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, first_data=True)
    with client(lst.address) as s:
        time.sleep(0.3)
        assert mgr.stats()["accepted"] == 0  # connected, silent: not accepted
        s.sendall(b"hello")
        assert recv_exactly(s, 5) == b"hello"
        conn = rec.first_conn()
        s.sendall(b" again")
        assert recv_exactly(s, 6) == b" again"
    rec.wait_closed(conn.id)
    assert rec.kinds(conn.id)[:2] == ["accept", "recv"]
    assert bytes(rec.data[conn.id]) == b"hello again"


def test_first_data_drops_a_silent_peer(iocp_manager: ManagerFactory, backend: str) -> None:
    """Silent past accept_timeout: the peer is dropped (never accepted on
    Windows; on Linux the kernel hands it over then, and accept_timeout
    ends it), and the listener serves others meanwhile."""
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend, accept_timeout=1.0)
    lst = mgr.listen(LOOPBACK, 0, first_data=True)
    with client(lst.address) as silent, client(lst.address) as talker:
        talker.sendall(b"x")
        assert recv_exactly(talker, 1) == b"x"
        began = time.monotonic()
        silent.settimeout(20)
        try:
            assert silent.recv(1) == b""
        except ConnectionResetError:
            pass
        assert time.monotonic() - began >= 0.5
        talker.sendall(b"y")
        assert recv_exactly(talker, 1) == b"y"
    assert rec.count("recv") == 2  # nothing from the silent peer ever reached the handler


def test_first_data_bad_input(iocp_manager: ManagerFactory) -> None:
    mgr = iocp_manager(Recorder())
    with pytest.raises(TypeError, match="first_data"):
        mgr.listen(LOOPBACK, 0, first_data=1)  # type: ignore[arg-type]
    assert mgr.stats()["listeners"] == 0


def test_first_data_with_framing(iocp_manager: ManagerFactory, backend: str) -> None:
    """The first bytes go through the framing like any others."""
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen(LOOPBACK, 0, first_data=True, framing=pyiocp.Lines())
    with socket.create_connection(lst.address, timeout=20) as s:
        s.sendall(b"one\ntwo\nthr")
        rec.wait(lambda: rec.count("recv") == 2, what="two lines")
        s.sendall(b"ee\n")
        rec.wait(lambda: rec.count("recv") == 3, what="the third")
    assert bytes(rec.data[rec.first_conn().id]) == b"onetwothree"
