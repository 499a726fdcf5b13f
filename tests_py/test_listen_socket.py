"""SocketManager.listen_socket(): serving a socket that already listens
(systemd socket activation, a supervisor, socket.create_server())."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from iocp_helpers import LOOPBACK, Recorder, client, recv_exactly
from pyiocp.testing import ManagerFactory


def test_a_listening_socket_is_served(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend)
    with socket.create_server((LOOPBACK, 0)) as made:
        lst = mgr.listen_socket(made, accepts=2)
        assert lst.address == made.getsockname()[:2]
    # The caller's socket is closed: the manager serves its own duplicate.
    for i in range(3):
        with client(lst.address) as s:
            s.sendall(b"adopted %d" % i)
            assert recv_exactly(s, 9) == b"adopted %d" % i
    lst.close()
    rec.wait_all_closed(3)


@pytest.mark.linux  # a descriptor number is a socket handle on Windows: tested through socket objects there
def test_a_descriptor_is_served_and_left_open(iocp_manager: ManagerFactory) -> None:
    """As systemd hands it over (LISTEN_FDS): a descriptor number. The
    caller's descriptor stays open: the manager took a duplicate."""
    rec = Recorder(echo=True)
    made = socket.create_server((LOOPBACK, 0))
    try:
        lst = iocp_manager(rec).listen_socket(made.fileno())
        with client(lst.address) as s:
            s.sendall(b"fd")
            assert recv_exactly(s, 2) == b"fd"
        os.fstat(made.fileno())  # still open
    finally:
        made.close()


@pytest.mark.linux  # Unix domain sockets: pyiocp has none on Windows
def test_a_unix_socket_is_served_and_its_file_kept(iocp_manager: ManagerFactory, tmp_path: Path) -> None:
    rec = Recorder(echo=True)
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as made:
        made.bind(path)
        made.listen()
        lst = iocp_manager(rec).listen_socket(made, proxy_protocol="v1")
    assert lst.address == path
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"PROXY TCP4 192.0.2.9 192.0.2.1 4000 80\r\nhi")
        assert recv_exactly(s, 2) == b"hi"
        assert rec.first_conn().peer == ("192.0.2.9", 4000)
    lst.close()
    rec.wait_all_closed(1)
    assert os.path.exists(path)  # its maker's to remove


def test_bad_sockets(iocp_manager: ManagerFactory) -> None:
    mgr = iocp_manager(Recorder())
    with pytest.raises(TypeError, match="sock"):
        mgr.listen_socket("3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="descriptor"):
        mgr.listen_socket(-1)
    with socket.socket() as bound:  # bound, not listening
        bound.bind((LOOPBACK, 0))
        with pytest.raises(ValueError, match="listening"):
            mgr.listen_socket(bound)
    with socket.socket(type=socket.SOCK_DGRAM) as udp:
        with pytest.raises(ValueError, match="stream"):
            mgr.listen_socket(udp)
    with socket.create_server((LOOPBACK, 0)) as made:
        with pytest.raises(ValueError, match="proxy_protocol"):
            mgr.listen_socket(made, proxy_protocol="v9")
    if sys.platform != "win32":
        with open(os.devnull) as f, pytest.raises(ValueError, match="not a socket"):
            mgr.listen_socket(f.fileno())
    assert mgr.stats()["listeners"] == 0
