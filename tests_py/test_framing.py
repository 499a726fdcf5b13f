"""Framing: with pyiocp.Lines or pyiocp.LengthPrefixed, on_recv gets one
whole frame per call, however the bytes were cut on the wire; send_frame
adds the header or terminator; a frame over its limit ends the connection
with a ProtocolError; set_framing switches mid-stream. Over real sockets,
on every backend."""

from __future__ import annotations

import random
import socket
import struct
import threading
from typing import Any, List, Optional

import pytest

import pyiocp
from iocp_helpers import WAIT, Recorder, client, recv_exactly, recv_until_eof
from pyiocp.testing import ManagerFactory


class Frames(Recorder):
    """Records each connection's frames and answers each with send_frame;
    switch, if set, is the framing set_framing installs after a frame
    b"HELLO"."""

    def __init__(self, switch: Any = "no") -> None:
        super().__init__()
        self.frames: List[bytes] = []
        self.switch = switch

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        with self.cond:
            self.frames.append(data)
        if data == b"HELLO" and self.switch != "no":
            conn.set_framing(self.switch)
        elif conn.id in self.inbound:
            conn.send_frame(data)
        self.record("recv", conn, len(data))


def send_in_pieces(s: socket.socket, data: bytes, seed: int = 1) -> None:
    """Sends data cut at random places, so that frames are split in their
    header, their terminator and their payload."""
    rnd = random.Random(seed)
    while data:
        k = rnd.choice((1, 2, 3, 7, 100, 5000, 70000))
        s.sendall(data[:k])
        data = data[k:]


def test_lines(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Frames()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen("127.0.0.1", 0, framing=pyiocp.Lines(max_line=20000, terminator=b"\r\n"))
    lines = [b"", b"x"] + [bytes([97 + i % 26]) * (i * 37 % 20000) for i in range(200)] + [b""]
    stream = b"".join(line + b"\r\n" for line in lines)
    with client(lst.address) as s:
        sender = threading.Thread(target=send_in_pieces, args=(s, stream))
        sender.start()
        assert recv_exactly(s, len(stream)) == stream
        sender.join()
    assert rec.frames == lines
    rec.wait_all_closed(1)


def test_lines_keep_terminator(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Frames()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen("127.0.0.1", 0, framing=pyiocp.Lines(terminator=b"|", keep_terminator=True))
    with client(lst.address) as s:
        s.sendall(b"a|b")
        rec.wait_count("recv", 1)
        s.sendall(b"c||d")
        rec.wait_count("recv", 3)
    assert rec.frames == [b"a|", b"bc|", b"|"]


@pytest.mark.parametrize("header_size,byteorder", [(1, "big"), (2, "little"), (4, "big"), (8, "little")])
def test_length_prefixed(iocp_manager: ManagerFactory, backend: str, header_size: int, byteorder: str) -> None:
    rec = Frames()
    mgr = iocp_manager(rec, backend=backend, recv_buffer_limit=1 << 20)
    framing = pyiocp.LengthPrefixed(header_size=header_size, byteorder=byteorder, max_size=(1 << 20) - 8)
    lst = mgr.listen("127.0.0.1", 0, framing=framing)
    largest = min((1 << 8 * header_size) - 1, 900_000)
    sizes = [0, 1, 255, largest, 0, 3, largest // 3]
    payloads = [bytes([i]) * n for i, n in enumerate(sizes)]
    order: Any = byteorder
    stream = b"".join(n.to_bytes(header_size, order) + p for n, p in zip(sizes, payloads))
    with client(lst.address) as s:
        sender = threading.Thread(target=send_in_pieces, args=(s, stream, header_size))
        sender.start()
        assert recv_exactly(s, len(stream)) == stream
        sender.join()
    assert rec.frames == payloads


@pytest.mark.parametrize("framing,data,limit", [
    (pyiocp.Lines(max_line=10), b"ok\n" + b"x" * 11, "max_line (10)"),
    (pyiocp.LengthPrefixed(max_size=10), b"\0\0\0\2ok" + struct.pack(">I", 11), "max_size (10)"),
    (pyiocp.LengthPrefixed(), b"\0\0\0\2ok" + struct.pack(">I", 100_000), "recv_buffer_limit (65536)"),
])
def test_frame_over_its_limit(iocp_manager: ManagerFactory, backend: str, framing: Any, data: bytes,
                              limit: str) -> None:
    """The frame before the bad one is answered, then the connection ends
    with a ProtocolError naming the limit: known from the announced length
    or the bytes so far, before the rest of the frame comes."""
    rec = Frames()
    mgr = iocp_manager(rec, backend=backend, recv_buffer_limit=65536)
    lst = mgr.listen("127.0.0.1", 0, framing=framing)
    with client(lst.address) as s:
        s.sendall(data)
        answer = recv_until_eof(s)
        err = rec.wait_closed(rec.first_conn().id)
    assert rec.frames == [b"ok"]
    assert answer == (b"ok\n" if isinstance(framing, pyiocp.Lines) else b"\0\0\0\2ok")
    assert isinstance(err, pyiocp.ProtocolError) and limit in str(err), err


@pytest.mark.parametrize("poll", [False, True])
def test_set_framing_after_a_handshake(iocp_manager: ManagerFactory, backend: str, poll: bool) -> None:
    """A text line, then length-prefixed frames, in one write: set_framing
    in the line's on_recv splits what follows it with the new framing.
    In poll mode it applies to the bytes not yet returned by poll()."""
    binary = [b"with\nnewlines\n", b"", b"\n"]
    rec = Frames(switch=pyiocp.LengthPrefixed(header_size=2))
    mgr = iocp_manager(None if poll else rec, backend=backend)
    lst = mgr.listen("127.0.0.1", 0, framing=pyiocp.Lines())
    with client(lst.address) as s:
        if poll:
            s.sendall(b"HELLO\n")
            while not rec.frames:
                for c in mgr.poll(timeout=WAIT):
                    if c.kind == "recv":
                        rec.on_recv(c.conn, c.data)
            s.sendall(b"".join(struct.pack(">H", len(b)) + b for b in binary))
            while len(rec.frames) < 4:
                for c in mgr.poll(timeout=WAIT):
                    if c.kind == "recv":
                        rec.on_recv(c.conn, c.data)
        else:
            s.sendall(b"HELLO\n" + b"".join(struct.pack(">H", len(b)) + b for b in binary))
            rec.wait_count("recv", 4)
    assert rec.frames == [b"HELLO"] + binary


def test_set_framing_none_delivers_bytes_as_read(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Frames(switch=None)
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen("127.0.0.1", 0, framing=pyiocp.Lines())
    with client(lst.address) as s:
        s.sendall(b"HELLO\nraw\nbytes")
        rec.wait(lambda: b"".join(rec.frames[1:]) == b"raw\nbytes")


def test_set_framing_from_another_thread(iocp_manager: ManagerFactory, backend: str) -> None:
    """From another thread, set_framing splits the frame in progress again."""
    rec = Frames()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen("127.0.0.1", 0, framing=pyiocp.Lines())
    with client(lst.address) as s:
        s.sendall(b"a|bb|c")
        conn = rec.first_conn()
        rec.wait(lambda: mgr.stats()["bytes_in"] == 6)
        conn.set_framing(pyiocp.Lines(terminator=b"|"))
        s.sendall(b"cc|")
        assert recv_exactly(s, 9) == b"a|bb|ccc|"
    assert rec.frames == [b"a", b"bb", b"ccc"]


def test_connect_with_framing(iocp_manager: ManagerFactory, backend: str) -> None:
    """An outbound connection's replies come framed too."""
    server = Frames()
    framing = pyiocp.LengthPrefixed(header_size=2)
    srv = iocp_manager(server, backend=backend)
    lst = srv.listen("127.0.0.1", 0, framing=framing)
    rec = Frames()
    mgr = iocp_manager(rec, backend=backend)
    conn = mgr.connect(*lst.address, framing=framing)
    for i in range(50):
        conn.send_frame(b"frame %d" % i)
    rec.wait_count("recv", 50)
    assert rec.frames == [b"frame %d" % i for i in range(50)]
    conn.close()
    rec.wait_all_closed(1)


def test_send_frame_refuses(iocp_manager: ManagerFactory, backend: str) -> None:
    rec = Recorder()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen("127.0.0.1", 0)
    with client(lst.address):
        conn = rec.first_conn()
        with pytest.raises(ValueError, match="needs a framing"):
            conn.send_frame(b"x")
        conn.set_framing(pyiocp.Lines(terminator=b"\r\n"))
        with pytest.raises(ValueError, match="terminator"):
            conn.send_frame(b"a\r\nb")
        conn.send_frame(b"a\rb\n")  # not the terminator
        conn.set_framing(pyiocp.LengthPrefixed(header_size=1, max_size=255))
        with pytest.raises(ValueError, match="1-byte header"):
            conn.send_frame(b"x" * 256)
        with pytest.raises(TypeError):
            conn.send_frame("text")
        with pytest.raises(TypeError, match="framing must be"):
            conn.set_framing("lines")
        conn.close()
        rec.wait_all_closed(1)
        with pytest.raises(pyiocp.ConnectionClosed):
            conn.send_frame(b"x")
        with pytest.raises(pyiocp.ConnectionClosed):
            conn.set_framing(None)


@pytest.mark.parametrize("make,error", [
    (lambda: pyiocp.Lines(max_line=0), ValueError),
    (lambda: pyiocp.Lines(max_line=1.5), TypeError),  # type: ignore[arg-type]
    (lambda: pyiocp.Lines(max_line=True), TypeError),
    (lambda: pyiocp.Lines(terminator=b""), ValueError),
    (lambda: pyiocp.Lines(terminator=b"x" * 17), ValueError),
    (lambda: pyiocp.Lines(terminator="\n"), TypeError),  # type: ignore[arg-type]
    (lambda: pyiocp.Lines(keep_terminator=1), TypeError),  # type: ignore[arg-type]
    (lambda: pyiocp.LengthPrefixed(header_size=3), ValueError),
    (lambda: pyiocp.LengthPrefixed(header_size="4"), TypeError),  # type: ignore[arg-type]
    (lambda: pyiocp.LengthPrefixed(byteorder="middle"), ValueError),
    (lambda: pyiocp.LengthPrefixed(max_size=-1), ValueError),
    (lambda: pyiocp.LengthPrefixed(header_size=0), ValueError),
    (lambda: pyiocp.LengthPrefixed(max_size=None), TypeError),  # type: ignore[arg-type]
])
def test_bad_framing_arguments(make: Any, error: type) -> None:
    with pytest.raises(error):
        make()


def test_framing_values(iocp_manager: ManagerFactory) -> None:
    lines = pyiocp.Lines(max_line=5, terminator=b"\r\n", keep_terminator=True)
    assert (lines.max_line, lines.terminator, lines.keep_terminator) == (5, b"\r\n", True)
    lp = pyiocp.LengthPrefixed(header_size=2, byteorder="little", max_size=9)
    assert (lp.header_size, lp.byteorder, lp.max_size) == (2, "little", 9)
    assert lp == pyiocp.LengthPrefixed(2, "little", 9) and hash(lp) == hash(pyiocp.LengthPrefixed(2, "little", 9))
    assert lp != lines and "LengthPrefixed(header_size=2" in repr(lp)
    with pytest.raises(AttributeError):
        lines.max_line = 7
    mgr = iocp_manager(Recorder())
    with pytest.raises(TypeError, match="framing must be"):
        mgr.listen("127.0.0.1", 0, framing=b"\n")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="framing must be"):
        mgr.connect("127.0.0.1", 9, framing=object())  # type: ignore[arg-type]
    assert pyiocp.Lines() == pyiocp.Lines(65536, b"\n", False)
    assert pyiocp.LengthPrefixed() == pyiocp.LengthPrefixed(4, "big", 16 << 20)


def test_poll_mode_frames(iocp_manager: ManagerFactory, backend: str) -> None:
    mgr = iocp_manager(backend=backend)
    lst = mgr.listen("127.0.0.1", 0, framing=pyiocp.Lines())
    got: List[Optional[bytes]] = []
    with client(lst.address) as s:
        s.sendall(b"one\ntwo\n\nthree\n")
        while len(got) < 4:
            got += [c.data for c in mgr.poll(timeout=WAIT) if c.kind == "recv"]
    assert got == [b"one", b"two", b"", b"three"]


@pytest.mark.parametrize("tail,error", [(b"", None), (b"part", "middle of a frame (4 bytes")])
def test_the_peer_closing(iocp_manager: ManagerFactory, backend: str, tail: bytes, error: Optional[str]) -> None:
    """A FIN between frames is a clean close; one in the middle of a frame
    does not drop its bytes unseen: on_close gets a ProtocolError."""
    rec = Frames()
    mgr = iocp_manager(rec, backend=backend)
    lst = mgr.listen("127.0.0.1", 0, framing=pyiocp.Lines())
    with client(lst.address) as s:
        s.sendall(b"whole\n" + tail)
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s) == b"whole\n"
        err = rec.wait_closed(rec.first_conn().id)
    assert rec.frames == [b"whole"]
    if error is None:
        assert err is None
    else:
        assert isinstance(err, pyiocp.ProtocolError) and error in str(err), err

