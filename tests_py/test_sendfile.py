"""Connection.sendfile: file ranges in order with the other sends, counted
as queued bytes; bad input is an error at the call; a file that shrinks
ends the connection with an error, never a hang; the duplicate descriptor
is closed exactly once on every path (the autouse leak check)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import pytest

import pyiocp
from pyiocp.testing import ManagerFactory
from tls_pki import PKI, make_pki
from iocp_helpers import (LOOPBACK, RESETS_LOST, SLOWDOWN, WAIT, Recorder, Serve, client, connected, recv_exactly,
                          recv_until_eof, set_linger_reset, small_rcvbuf_client)


def make_file(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.write_bytes(data)
    return data


class Counting(Recorder):
    """Counts on_send bytes per connection."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: Dict[int, int] = {}

    def on_send(self, conn: pyiocp.Connection, nbytes: int) -> None:
        with self.cond:
            self.sent[conn.id] = self.sent.get(conn.id, 0) + nbytes


def test_sendfile_in_order_with_sends_before_and_after(serve: Serve, backend: str, tmp_path: Path) -> None:
    data = make_file(tmp_path / "f.bin", (1 << 20) + 17)
    rec = Counting()
    with connected(serve, rec, backend, send_buffer_limit=8 << 20) as (mgr, s, conn):
        want = bytearray()
        with open(tmp_path / "f.bin", "rb") as f:
            conn.send(b"head\n")
            conn.sendfile(f)
            conn.send(b"middle\n")
            conn.sendfile(f, 10, 100)
            conn.sendfile(f, count=0)  # nothing
            conn.sendfile(f, offset=len(data))  # nothing: the end
            conn.sendfile(f, len(data) - 3, None)
            conn.send(b"tail\n")
        # The file is closed: the connection holds its own descriptor.
        want += b"head\n" + data + b"middle\n" + data[10:110] + data[-3:] + b"tail\n"
        assert conn.pending <= len(want)
        conn.close()
        got = recv_until_eof(s)
        assert len(got) == len(want) and got == bytes(want)
        assert rec.wait_closed(conn.id) is None
        assert rec.sent[conn.id] == len(want)
        assert mgr.stats()["pending_send_bytes"] == 0


def test_sendfile_counts_as_pending_against_the_limit(iocp_manager: ManagerFactory, backend: str,
                                                      tmp_path: Path) -> None:
    # Poll mode: nothing is written until the next poll(), so pending is
    # exactly what was queued.
    limit = 1 << 20
    data = make_file(tmp_path / "f.bin", limit)
    mgr = iocp_manager(None, backend=backend, send_buffer_limit=limit)
    lst = mgr.listen(LOOPBACK, 0)
    with client(lst.address) as s:
        conn = None
        while conn is None:
            conn = next((c.conn for c in mgr.poll(WAIT) if c.kind == "accept"), None)
        with open(tmp_path / "f.bin", "rb") as f:
            conn.send(b"x")
            with pytest.raises(pyiocp.BufferFull):
                conn.sendfile(f)  # 1 + limit bytes would pass it
            assert conn.pending == 1
            conn.sendfile(f, 1)  # exactly at the limit
            assert conn.pending == limit
            with pytest.raises(pyiocp.BufferFull):
                conn.sendfile(f, 0, 1)
            with pytest.raises(pyiocp.BufferFull):
                conn.send(b"y")
        assert mgr.stats()["pending_send_bytes"] == limit
        conn.close()
        got = bytearray()
        kinds = []
        s.settimeout(0.05)
        while len(got) < limit or "close" not in kinds:
            kinds += [c.kind for c in mgr.poll(0.05)]
            try:
                got += s.recv(1 << 20)
            except socket.timeout:
                pass
        assert bytes(got) == b"x" + data[1:]
        assert conn.pending == 0 and mgr.stats()["pending_send_bytes"] == 0


def test_sendfile_bad_input(serve: Serve, backend: str, tmp_path: Path) -> None:
    data = make_file(tmp_path / "f.bin", 1000)
    rec = Recorder()
    with connected(serve, rec, backend) as (mgr, s, conn):
        with open(tmp_path / "f.bin", "rb") as f:
            for bad in (3, "f.bin", b"x", object(), None):
                with pytest.raises(TypeError):
                    conn.sendfile(bad)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                conn.sendfile(f, 0, "10")  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                conn.sendfile(f, 1.5)  # type: ignore[arg-type]
            for offset, count in ((-1, None), (0, -1), (1001, None), (0, 1001), (999, 2), (2000, 0)):
                with pytest.raises(ValueError):
                    conn.sendfile(f, offset, count)
            closed = open(tmp_path / "f.bin", "rb")
            closed.close()
            with pytest.raises(ValueError):
                conn.sendfile(closed)
            if sys.platform != "win32":
                r, w = os.pipe()
                with open(r, "rb") as pipe, open(w, "wb"):
                    with pytest.raises(ValueError, match="regular file"):
                        conn.sendfile(pipe, 0, 1)
                with socket.socket() as sock:
                    with pytest.raises(ValueError, match="regular file"):
                        conn.sendfile(sock)
            assert conn.pending == 0
            conn.sendfile(f, 0, 10)
            conn.close()
            with pytest.raises(pyiocp.ConnectionClosed):
                conn.sendfile(f)
        assert recv_until_eof(s) == data[:10]
        assert rec.wait_closed(conn.id) is None


def test_sendfile_of_a_file_that_shrinks_ends_with_an_error(serve: Serve, backend: str, tmp_path: Path) -> None:
    size, cut = 16 << 20, 1 << 20
    data = make_file(tmp_path / "f.bin", size)
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend, send_buffer_limit=size)
    s = small_rcvbuf_client(lst.address, timeout=WAIT)
    try:
        conn = rec.first_conn()
        with open(tmp_path / "f.bin", "rb") as f:
            conn.sendfile(f)
        os.truncate(tmp_path / "f.bin", cut)
        s.settimeout(WAIT)
        got = bytearray()
        try:
            while piece := s.recv(1 << 20):
                got += piece
        except ConnectionResetError:
            pass
        # Bytes the kernel took from the file's cache before the cut may
        # show it (zero-copy): those before the cut are the file's.
        n = min(len(got), cut)
        assert bytes(got[:n]) == data[:n]
        err = rec.wait_closed(conn.id)
        if len(got) < size:
            assert isinstance(err, pyiocp.Error) and "truncated" in str(err), err
    finally:
        s.close()


@pytest.mark.parametrize("how", ["abort", "close", "peer reset"])
def test_sendfile_on_a_connection_closed_meanwhile(serve: Serve, backend: str, tmp_path: Path, how: str) -> None:
    make_file(tmp_path / "f.bin", 4 << 20)
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend, send_buffer_limit=32 << 20)
    s = small_rcvbuf_client(lst.address)
    try:
        conn = rec.first_conn()
        with open(tmp_path / "f.bin", "rb") as f:
            for _ in range(4):
                conn.sendfile(f)
        if how == "abort":
            conn.abort()
        elif how == "close":
            conn.close()  # then the peer goes: what is pending is dropped
            set_linger_reset(s)
            s.close()
        else:
            s.recv(4096)
            set_linger_reset(s)
            s.close()
        rec.wait_closed(conn.id, timeout=WAIT * 2)
        assert rec.kinds(conn.id).count("close") == 1
        with open(tmp_path / "f.bin", "rb") as f, pytest.raises(pyiocp.ConnectionClosed):
            conn.sendfile(f)
        assert mgr.stats()["pending_send_bytes"] == 0
    finally:
        s.close()


class FileSender(Recorder):
    """Sends path in pieces of piece bytes, paced by on_drain, then closes."""

    def __init__(self, path: Path, piece: int) -> None:
        super().__init__()
        self.path, self.piece = path, piece
        self.size = path.stat().st_size

    def on_accept(self, conn: pyiocp.Connection) -> None:
        super().on_accept(conn)
        conn.file = open(self.path, "rb")
        conn.offset = 0
        self.pump(conn)

    def on_drain(self, conn: pyiocp.Connection) -> None:
        self.pump(conn)

    def pump(self, conn: pyiocp.Connection) -> None:
        while conn.offset < self.size:
            count = min(self.piece, self.size - conn.offset)
            try:
                conn.sendfile(conn.file, conn.offset, count)
            except pyiocp.BufferFull:
                return
            conn.offset += count
        conn.file.close()
        conn.close()

    def on_close(self, conn: pyiocp.Connection, error: Optional[BaseException]) -> None:
        conn.file.close()
        super().on_close(conn, error)


def test_sendfile_of_a_large_file_arrives_byte_exact(serve: Serve, backend: str, tmp_path: Path) -> None:
    size = 64 << 20
    path = tmp_path / "big.bin"
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size >> 20):
            block = os.urandom(1 << 20)
            f.write(block)
            h.update(block)
    rec = FileSender(path, 1 << 20)
    mgr, lst = serve(rec, backend=backend, send_buffer_limit=4 << 20)
    with client(lst.address, timeout=WAIT * 4) as s:
        got = hashlib.sha256()
        n = 0
        while piece := s.recv(1 << 20):
            got.update(piece)
            n += len(piece)
    assert n == size and got.hexdigest() == h.hexdigest()
    rec.wait_all_closed(1)
    assert rec.closes[rec.first_conn().id] == [None]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    if shutil.which("openssl") is None and not os.environ.get("PYIOCP_TEST_PKI"):
        pytest.fail("the openssl command is missing (make deps installs it)")
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_sendfile_over_tls_reads_and_sends(serve: Serve, backend: str, tmp_path: Path, pki: PKI) -> None:
    # The session encrypts in order what it is given: the file's bytes are
    # read and sent as send()'s, between the sends around them.
    data = make_file(tmp_path / "f.bin", 300_000)
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend, send_buffer_limit=1 << 20)
    tls_lst = mgr.listen(LOOPBACK, 0, tls=pyiocp.TLSConfig(pki.server, pki.server_key))
    ctx = ssl.create_default_context(cafile=pki.ca)
    with socket.create_connection(tls_lst.address, timeout=WAIT) as raw, \
            ctx.wrap_socket(raw, server_hostname="pyiocp.test") as s:
        conn = rec.first_conn()
        with open(tmp_path / "f.bin", "rb") as f:
            conn.send(b"<")
            conn.sendfile(f, 5)
            conn.send(b">")
        conn.close()
        got = bytearray()
        try:
            while piece := s.recv(1 << 16):
                got += piece
        except ssl.SSLError:
            pass
        assert bytes(got) == b"<" + data[5:] + b">"
    assert rec.wait_closed(conn.id) is None
