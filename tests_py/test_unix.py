"""Unix domain sockets through the Python API: listen_unix and
connect_unix, against Python's own AF_UNIX sockets and pyiocp's client."""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Any, List

import pytest

import pyiocp
from iocp_helpers import Recorder, recv_exactly, wait_until
from pyiocp.testing import ManagerFactory

TIMEOUT = 20.0
linux = pytest.mark.linux  # Unix domain sockets: Linux's backends only (Wine has no AF_UNIX)


def unix_client(name: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    try:
        s.connect(name)
    except BaseException:
        s.close()
        raise
    return s


def stale_socket_file(path: str) -> None:
    """A socket file nothing listens on, as a crashed server leaves it."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.close()


@linux
def test_unix_echo(iocp_manager: ManagerFactory, backend: str, tmp_path: Path) -> None:
    path = str(tmp_path / "echo.sock")
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen_unix(path, mode=0o600)
    assert lst.address == path
    assert stat.S_ISSOCK(os.lstat(path).st_mode) and stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    payload = os.urandom(300 << 10)
    with unix_client(path) as s:
        threading.Thread(target=s.sendall, args=(payload,), daemon=True).start()
        assert recv_exactly(s, len(payload)) == payload
        conn = rec.first_conn()
        assert (conn.peer, conn.local) == ("", path)

    cli = Recorder()
    cmgr = iocp_manager(cli, backend=backend)
    c = cmgr.connect_unix(path)
    assert c.peer == path  # known at once, as a connect to an IP address's
    c.send(b"over pyiocp")
    cli.wait(lambda: bytes(cli.data[c.id]) == b"over pyiocp", what="the echo")
    assert (c.peer, c.local) == (path, "")
    c.close()
    assert cli.wait_closed(c.id) is None

    lst.close()
    assert not os.path.exists(path)  # gone at close: no new client finds it
    wait_until(lambda: mgr.stats()["listeners"] == 0, what="the listening socket closed")


@linux
def test_unix_socket_file(iocp_manager: ManagerFactory, backend: str, tmp_path: Path) -> None:
    """A stale socket file is replaced; a live one, or another file, is
    EADDRINUSE and left alone; the manager's close removes the file."""
    mgr = iocp_manager(Recorder(echo=True), backend=backend)
    path = str(tmp_path / "s.sock")
    stale_socket_file(path)
    mgr.listen_unix(path)
    with unix_client(path) as s:
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
    with pytest.raises(OSError) as live:
        mgr.listen_unix(path)
    assert live.value.errno == errno.EADDRINUSE
    plain = tmp_path / "plain"
    plain.write_text("keep me")
    with pytest.raises(OSError) as other:
        mgr.listen_unix(str(plain))
    assert other.value.errno == errno.EADDRINUSE
    assert plain.read_text() == "keep me"
    assert mgr.stats()["listeners"] == 1
    mgr.close()
    assert not os.path.exists(path)


@linux
def test_unix_abstract(iocp_manager: ManagerFactory, backend: str) -> None:
    name = f"\0pyiocp-test-{os.getpid()}-{backend}"
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen_unix(name)
    assert lst.address == name
    with unix_client(name) as s:
        s.sendall(b"abstract")
        assert recv_exactly(s, 8) == b"abstract"
        assert rec.first_conn().local == name
    cli = Recorder()
    c = iocp_manager(cli, backend=backend).connect_unix(name.encode())  # bytes work too
    c.send(b"ok")
    cli.wait(lambda: bytes(cli.data[c.id]) == b"ok", what="the echo")
    lst.close()
    wait_refused(name)


def wait_refused(name: str) -> None:
    """The listener's socket closes soon after close(): connects fail."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            unix_client(name).close()
        except OSError:
            return
        assert time.monotonic() < deadline, "still listening after close()"
        time.sleep(0.01)


@linux
def test_unix_framing_and_limits(iocp_manager: ManagerFactory, backend: str, tmp_path: Path) -> None:
    """What TCP connections have, Unix domain ones have: framing, the idle
    timeout, max_connections."""
    path = str(tmp_path / "f.sock")
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend, idle_timeout=0.3, max_connections=1)
    mgr.listen_unix(path, framing=pyiocp.Lines())
    with unix_client(path) as s:
        s.sendall(b"one\ntw")
        conn = rec.first_conn()
        rec.wait(lambda: rec.count("recv") == 1, what="the first line")
        s.sendall(b"o\n")
        rec.wait(lambda: rec.count("recv") == 2, what="the second line")
        with unix_client(path) as extra:  # over max_connections: closed, never announced
            assert extra.recv(1) == b""
        err = rec.wait_closed(conn.id)  # idle past idle_timeout
        assert isinstance(err, TimeoutError), repr(err)
    assert bytes(rec.data[conn.id]) == b"onetwo"  # two lines, as two on_recv calls
    assert rec.count("accept") == 1 and mgr.stats()["rejected"] == 1


@linux
def test_unix_poll_mode(iocp_manager: ManagerFactory, backend: str, tmp_path: Path) -> None:
    path = str(tmp_path / "p.sock")
    mgr = iocp_manager(None, backend=backend)
    mgr.listen_unix(path)
    kinds: List[str] = []
    with unix_client(path) as s:
        s.sendall(b"polled")
        deadline = time.monotonic() + TIMEOUT
        while "recv" not in kinds and time.monotonic() < deadline:
            for c in mgr.poll(0.05):
                kinds.append(c.kind)
                if c.kind == "accept":
                    assert (c.conn.peer, c.conn.local) == ("", path)
                elif c.kind == "recv":
                    c.conn.send(c.data)
        mgr.poll(0.05)  # writes the reply
        assert recv_exactly(s, 6) == b"polled"
    assert kinds[0] == "accept"


@linux
def test_unix_bad_input(iocp_manager: ManagerFactory, backend: str, tmp_path: Path) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend)
    bad: List[Any] = ["", "\0", "a\0b", "/tmp/" + "x" * 103, "\0" + "y" * 108]
    for name in bad:
        with pytest.raises(ValueError):
            mgr.listen_unix(name)
        with pytest.raises(ValueError):
            mgr.connect_unix(name)
    with pytest.raises(TypeError):
        mgr.listen_unix(7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        mgr.listen_unix(str(tmp_path / "m.sock"), mode=0o1777)
    with pytest.raises(TypeError, match="mode"):
        mgr.listen_unix(str(tmp_path / "m.sock"), mode="rw")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        mgr.listen_unix(str(tmp_path / "no" / "dir.sock"))
    assert mgr.stats()["listeners"] == 0

    missing = mgr.connect_unix(str(tmp_path / "missing.sock"))
    assert isinstance(rec.wait_closed(missing.id), FileNotFoundError)
    stale = str(tmp_path / "stale.sock")
    stale_socket_file(stale)
    refused = mgr.connect_unix(stale)
    assert isinstance(rec.wait_closed(refused.id), ConnectionRefusedError)
    assert rec.count("connect") == 0 and mgr.stats()["connections"] == 0
    mgr.close()
    with pytest.raises(pyiocp.ManagerClosed):
        mgr.connect_unix(stale)


def test_unix_where_supported(iocp_manager: ManagerFactory, backend: str, tmp_path: Path) -> None:
    """Windows: a clear OSError (EAFNOSUPPORT) at the call, nothing opened;
    Linux: the same calls work."""
    rec = Recorder(echo=True)
    mgr = iocp_manager(rec, backend=backend)
    path = str(tmp_path / "w.sock")
    if sys.platform == "win32":
        for call in (mgr.listen_unix, mgr.connect_unix):
            with pytest.raises(OSError) as info:
                call(path)
            assert info.value.errno == errno.EAFNOSUPPORT and "Windows" in str(info.value)
        assert mgr.stats()["listeners"] == 0 and mgr.stats()["connections"] == 0
        return
    mgr.listen_unix(path)
    cli = Recorder()
    c = iocp_manager(cli, backend=backend).connect_unix(path)
    c.send(b"hi")
    cli.wait(lambda: bytes(cli.data[c.id]) == b"hi", what="the echo")
