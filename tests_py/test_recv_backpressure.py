"""Receive backpressure: a slow handler or pause_reading() stops reading,
the kernel's TCP window pushes back on the peer, nothing grows without
bound, and every byte arrives in order afterwards."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from typing import Iterator, Tuple

import pytest

import pyiocp
from iocp_helpers import UNDER_WINE, Recorder, Serve, client, connected, wait_until

LIMIT = 64 << 10


def fill_until_blocked(sock: socket.socket, data: bytes, sent: int = 0, stall: float = 0.3) -> int:
    """Sends data[sent:] until the kernel stops taking bytes for `stall`
    seconds, which must come far short of the end (the server is not
    reading: TCP pushes back); returns how far into data it got."""
    sock.settimeout(stall)
    off = sent
    try:
        while off < len(data):
            off += sock.send(data[off:off + 65536])
    except (socket.timeout, BlockingIOError):
        pass
    assert off < len(data) // 2, off
    return off


def send_the_rest(sock: socket.socket, data: bytes, taken: int, rec: Recorder, conn: pyiocp.Connection) -> None:
    """Once the server reads again: the peer sends what the kernel did not
    take, and the handler gets every byte of data, in order."""
    sock.settimeout(10)
    sock.sendall(data[taken:])
    rec.wait(lambda: len(rec.data[conn.id]) == len(data), timeout=10, what=f"all {len(data)} bytes")
    assert bytes(rec.data[conn.id]) == data


class Slow(Recorder):
    """on_recv blocks on the gate the first time."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        super().on_recv(conn, data)
        if not self.entered.is_set():
            self.entered.set()
            assert self.gate.wait(10)


@contextlib.contextmanager
def stopped_reading(serve: Serve, rec: Recorder, backend: str, head: int, stopped: threading.Event,
                    seed: int) -> Iterator[Tuple[pyiocp.SocketManager, pyiocp.Listener, socket.socket,
                                                 pyiocp.Connection, bytes]]:
    """rec served with recv_buffer_limit=LIMIT, and a client that sent the
    first head bytes of 16 MiB of random data, once the server stopped
    reading (stopped set): the manager, the listener, the client's socket
    (closed when the with ends), the server's connection and the data."""
    data = random.Random(seed).randbytes(16 << 20)
    mgr, lst = serve(rec, backend=backend, recv_buffer_limit=LIMIT)
    s = client(lst.address)
    try:
        s.sendall(data[:head])
        assert stopped.wait(5)
        yield mgr, lst, s, rec.first_conn(), data
    finally:
        s.close()


def test_slow_handler_blocks_the_peer(serve: Serve, backend: str) -> None:
    rec = Slow()
    try:
        with stopped_reading(serve, rec, backend, 10, rec.entered, seed=8) as (mgr, _, s, conn, data):
            # The worker is stuck in the handler: the peer is blocked by the
            # kernel's buffers, far short of the 16 MiB it wants to send.
            taken = fill_until_blocked(s, data, sent=10)
            in_before = mgr.stats()["bytes_in"]
            assert in_before <= 10 + LIMIT, in_before
            rec.gate.set()
            send_the_rest(s, data, taken, rec, conn)
    finally:
        rec.gate.set()
    rec.wait_all_closed(1)


class Pauser(Recorder):
    """Pauses reading in its first on_recv."""

    def __init__(self) -> None:
        super().__init__()
        self.paused = threading.Event()

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        super().on_recv(conn, data)
        if not self.paused.is_set():
            conn.pause_reading()
            self.paused.set()


def test_pause_reading_bounds_memory_and_resume_delivers_in_order(serve: Serve, backend: str) -> None:
    rec = Pauser()
    with stopped_reading(serve, rec, backend, 1000, rec.paused, seed=9) as (mgr, lst, s, conn, data):
        assert mgr.stats()["paused_reading"] == 1
        taken = fill_until_blocked(s, data, sent=1000)
        delivered = len(rec.data[conn.id])
        recvs = rec.count("recv")
        st = mgr.stats()
        # What the engine read but did not deliver stays within the limit.
        assert st["bytes_in"] - delivered <= LIMIT, (st["bytes_in"], delivered)
        # The worker is free meanwhile: another connection is served.
        with client(lst.address) as other:
            other.sendall(b"other")
            rec.wait(lambda: any(bytes(v) == b"other" for v in rec.data.values()), what="other served")
        assert rec.count("recv") == recvs + 1  # nothing more on the paused one
        conn.resume_reading()
        send_the_rest(s, data, taken, rec, conn)
        assert mgr.stats()["paused_reading"] == 0
    rec.wait_all_closed(2)


def test_pause_and_resume_are_idempotent(serve: Serve, backend: str) -> None:
    rec = Recorder()
    with connected(serve, rec, backend) as (mgr, s, conn):
        conn.pause_reading()
        conn.pause_reading()
        wait_until(lambda: mgr.stats()["paused_reading"] == 1)
        conn.resume_reading()
        conn.resume_reading()
        wait_until(lambda: mgr.stats()["paused_reading"] == 0)
        s.sendall(b"ok")
        rec.wait(lambda: bytes(rec.data[conn.id]) == b"ok")
    rec.wait_all_closed(1)


def test_eof_while_paused_comes_after_the_data(serve: Serve, backend: str) -> None:
    """The peer sends and closes while reading is paused: on resume the
    handler gets every byte and then the close, in that order."""
    data = random.Random(10).randbytes(300_000)
    rec = Pauser()
    mgr, lst = serve(rec, backend=backend, recv_buffer_limit=LIMIT)
    s = client(lst.address)
    s.sendall(data[:1])
    assert rec.paused.wait(5)
    conn = rec.first_conn()
    def write_then_close() -> None:
        s.sendall(data[1:])
        s.close()

    writer = threading.Thread(target=write_then_close)
    writer.start()
    # Nothing is read while paused, so the close cannot be seen either.
    with rec.cond:
        assert not rec.cond.wait_for(lambda: conn.id in rec.closes, 0.3)
    conn.resume_reading()
    rec.wait_closed(conn.id, timeout=10)
    writer.join(10)
    assert bytes(rec.data[conn.id]) == data
    kinds = rec.kinds(conn.id)
    assert kinds[0] == "accept" and kinds[-1] == "close" and set(kinds[1:-1]) == {"recv"}


def test_pause_from_another_thread(serve: Serve, backend: str) -> None:
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend, recv_buffer_limit=LIMIT)
    data = random.Random(11).randbytes(16 << 20)
    s = client(lst.address)
    try:
        conn = rec.first_conn()
        conn.pause_reading()
        wait_until(lambda: mgr.stats()["paused_reading"] == 1)
        taken = fill_until_blocked(s, data)
        assert mgr.stats()["bytes_in"] <= LIMIT
        threading.Thread(target=conn.resume_reading).start()
        send_the_rest(s, data, taken, rec, conn)
    finally:
        s.close()
    rec.wait_all_closed(1)


@pytest.mark.parametrize("limit", [1, 1000])
def test_tiny_recv_buffer_limit_still_delivers_everything(serve: Serve, backend: str,
                                                          limit: int) -> None:
    # A limit of 1 is a receive per byte: under Wine each is a round trip to
    # the wineserver, about 2 ms beside a CPU hog (20,000 of them took 13 s
    # of the 20 s wait, 5,000 took 9 s).
    data = random.Random(12).randbytes(2_000 if UNDER_WINE else 20_000)
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend, recv_buffer_limit=limit)
    with client(lst.address) as s:
        s.sendall(data)
        conn = rec.first_conn()
        rec.wait(lambda: len(rec.data[conn.id]) == len(data))
    assert bytes(rec.data[conn.id]) == data
    rec.wait_all_closed(1)
