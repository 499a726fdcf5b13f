"""The send buffer: BufferFull over send_buffer_limit (nothing queued),
on_drain once at the low watermark, on_send counts, sends from any thread."""

from __future__ import annotations

import random
import socket
import struct
import threading
import time
from typing import List, Optional, Tuple

import pytest

import pyiocp
from iocp_helpers import (LATE, SLOWDOWN, Recorder, Serve, client, connected, recv_exactly, recv_until_eof,
                          small_rcvbuf_client, wait_until)

CHUNK = 4096


def chunk(i: int) -> bytes:
    return struct.pack(">I", i) + bytes([i % 251]) * (CHUNK - 4)


def fill_kernel(conn: pyiocp.Connection, limit: int) -> int:
    """Sends chunk(0), chunk(1), ... to a peer that does not read, keeping
    our buffer under half of limit, until the kernel's buffers are full. On
    IOCP a send in flight goes on moving bytes into the kernel after send()
    returned, so full is when the pending count stops moving. Returns the
    chunks sent."""
    i = 0
    while True:
        while conn.pending + CHUNK <= limit // 2:
            conn.send(chunk(i))
            i += 1
        last, since = conn.pending, time.monotonic()
        while conn.pending + CHUNK > limit // 2:
            time.sleep(0.005)
            if conn.pending != last:
                last, since = conn.pending, time.monotonic()
            elif time.monotonic() - since > 0.1 * SLOWDOWN:
                return i


class Drainer(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.drains: List[Tuple[int, str]] = []  # (pending at on_drain, thread)

    def on_drain(self, conn: pyiocp.Connection) -> None:
        self.drains.append((conn.pending, threading.current_thread().name))
        self.record("drain", conn)


def still_works_and_closes(rec: Drainer, conn: pyiocp.Connection, s: socket.socket, data: bytes) -> None:
    """After the one drain episode: data still gets through, close() ends
    the stream cleanly, and no second on_drain came."""
    conn.send(data)
    assert recv_exactly(s, len(data)) == data
    conn.close()
    assert recv_until_eof(s) == b""
    rec.wait_closed(conn.id)
    assert len(rec.drains) == 1


@pytest.mark.parametrize("low", [None, 1000])
def test_buffer_full_then_drain_then_everything_in_order(serve: Serve, backend: str,
                                                         low: Optional[int]) -> None:
    limit = 64 << 10
    low_mark = limit // 4 if low is None else low
    rec = Drainer()
    mgr, lst = serve(rec, backend=backend, send_buffer_limit=limit, send_low_watermark=low)
    s = small_rcvbuf_client(lst.address, timeout=10)
    try:
        conn = rec.first_conn()
        # The peer does not read: the kernel's buffers fill, then ours.
        sent = fill_kernel(conn, limit)
        # Where sends complete later (IOCP), each chunk above the low
        # watermark while it was in flight was an episode with its drain:
        # only the one after BufferFull is judged.
        with rec.cond:
            rec.drains.clear()
            drains_before = rec.count("drain")
        full = 0
        for i in range(sent, 10_000):
            before = conn.pending
            try:
                conn.send(chunk(i))
            except pyiocp.BufferFull as exc:
                assert isinstance(exc, BlockingIOError)
                # Nothing was queued: pending did not grow.
                assert conn.pending <= before
                assert before + CHUNK > limit
                full += 1
                if full == 3:
                    break
                continue
            assert full == 0, "a send succeeded after BufferFull while nothing drained"
            sent += 1
            assert conn.pending <= limit
        else:
            pytest.fail("never got BufferFull")
        assert conn.pending <= limit
        assert mgr.stats()["pending_send_bytes"] == conn.pending
        assert rec.drains == []
        # The peer reads again: on_drain comes once, at the low watermark.
        got = recv_exactly(s, sent * CHUNK)
        rec.wait_count("drain", drains_before + 1)
        wait_until(lambda: conn.pending == 0, what="pending back to 0")
        assert len(rec.drains) == 1, rec.drains
        pending_at_drain, thread = rec.drains[0]
        assert pending_at_drain <= low_mark
        assert thread.startswith("pyiocp-worker-")
        for i in range(sent):
            assert got[i * CHUNK:(i + 1) * CHUNK] == chunk(i), f"chunk {i} out of order or changed"
        still_works_and_closes(rec, conn, s, b"after")
    finally:
        s.close()


def test_send_bigger_than_the_limit_raises_at_once(serve: Serve, backend: str) -> None:
    rec = Recorder()
    with connected(serve, rec, backend, send_buffer_limit=1000) as (mgr, s, conn):
        with pytest.raises(pyiocp.BufferFull):
            conn.send(b"x" * 1001)
        assert conn.pending == 0
        conn.send(b"y" * 1000)  # exactly the limit fits
        assert recv_exactly(s, 1000) == b"y" * 1000
        conn.close()
        assert recv_until_eof(s) == b""  # the 1001 bytes were never queued
    rec.wait_closed(conn.id)


def test_send_accepts_bytes_like(serve: Serve, backend: str) -> None:
    rec = Recorder()
    with connected(serve, rec, backend) as (mgr, s, conn):
        conn.send(b"ab")
        conn.send(bytearray(b"cd"))
        conn.send(memoryview(b"xxefxx")[2:4])
        conn.send(b"")
        conn.send(memoryview(bytearray(b"gh")))
        assert recv_exactly(s, 8) == b"abcdefgh"
        conn.close()
        assert recv_until_eof(s) == b""
    rec.wait_closed(conn.id)


class Counter(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def on_send(self, conn: pyiocp.Connection, nbytes: int) -> None:
        assert isinstance(nbytes, int) and nbytes > 0
        with self.cond:
            self.sent += nbytes
        self.record("send", conn, nbytes)


def test_on_send_counts_add_up(serve: Serve, backend: str) -> None:
    rng = random.Random(7)
    rec = Counter()
    mgr, lst = serve(rec, backend=backend)
    s = small_rcvbuf_client(lst.address, rcvbuf=16384, timeout=10)
    try:
        conn = rec.first_conn()
        total = 0
        payload = bytearray()
        for _ in range(200):
            data = rng.randbytes(rng.randint(1, 20000))
            conn.send(data)  # small ones are written at once, big ones queue
            payload += data
            total += len(data)
        got = recv_exactly(s, total)
        assert got == payload
        rec.wait(lambda: rec.sent == total, what=f"on_send total {total}")
        assert mgr.stats()["bytes_out"] == total
        conn.close()
        assert recv_until_eof(s) == b""
        rec.wait_closed(conn.id)
        assert rec.sent == total
    finally:
        s.close()


def test_on_send_counts_sends_from_a_callback(serve: Serve, backend: str) -> None:
    class H(Counter):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            super().on_recv(conn, data)
            conn.send(data * 3)

    rec = H()
    mgr, lst = serve(rec, backend=backend)
    with client(lst.address) as s:
        for i in range(50):
            s.sendall(b"%04d" % i)
            assert recv_exactly(s, 12) == (b"%04d" % i) * 3
    rec.wait_all_closed(1)
    assert rec.sent == 50 * 12


def test_send_from_another_thread_wakes_the_worker(serve: Serve, backend: str) -> None:
    rec = Recorder()
    with connected(serve, rec, backend) as (mgr, s, conn):
        s.settimeout(LATE)  # must not wait for some unrelated wake-up
        for i in range(20):
            t0 = time.monotonic()
            threading.Thread(target=conn.send, args=(b"%03d" % i,)).start()
            assert recv_exactly(s, 3) == b"%03d" % i
            assert time.monotonic() - t0 < LATE
        conn.close()
        assert recv_until_eof(s) == b""
    rec.wait_closed(conn.id)


def test_send_from_a_callback_to_another_connection(serve: Serve, backend: str) -> None:
    """A relay: bytes from connection A are sent on connection B from A's
    callback (with workers=2 B may belong to another worker)."""
    class Relay(Recorder):
        def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
            super().on_recv(conn, data)
            other = getattr(conn, "other", None)
            if other is not None:
                other.send(data)

    rec = Relay()
    mgr, lst = serve(rec, backend=backend, workers=2)
    with client(lst.address) as a, client(lst.address) as b:
        rec.wait_count("accept", 2)
        by_port = {c.peer[1]: c for c in rec.conns.values()}
        ca, cb = by_port[a.getsockname()[1]], by_port[b.getsockname()[1]]
        ca.other = cb
        cb.other = ca
        for i in range(50):
            a.sendall(b"ping%02d" % i)
            assert recv_exactly(b, 6) == b"ping%02d" % i
            b.sendall(b"pong%02d" % i)
            assert recv_exactly(a, 6) == b"pong%02d" % i
    rec.wait_all_closed(2)


def test_pending_counts_queued_bytes(serve: Serve, backend: str) -> None:
    rec = Recorder()
    mgr, lst = serve(rec, backend=backend, send_buffer_limit=8 << 20)
    s = small_rcvbuf_client(lst.address)
    try:
        conn = rec.first_conn()
        assert conn.pending == 0
        conn.send(b"p" * (6 << 20))  # more than the kernel's buffers take
        assert 0 < conn.pending <= 6 << 20
        wait_until(lambda: mgr.stats()["pending_send_bytes"] == conn.pending > 0, what="pending settles")
        conn.abort()
        rec.wait_closed(conn.id)
        assert conn.pending == 0
        assert mgr.stats()["pending_send_bytes"] == 0
    finally:
        s.close()


def test_on_drain_after_pending_passed_the_watermark_without_buffer_full(serve: Serve,
                                                                          backend: str) -> None:
    """on_drain also follows a send that took pending over the low
    watermark (no BufferFull), once it falls back to it."""
    rec = Drainer()
    limit = 8 << 20
    mgr, lst = serve(rec, backend=backend, send_buffer_limit=limit, send_low_watermark=64 << 10)
    s = small_rcvbuf_client(lst.address, timeout=10)
    try:
        conn = rec.first_conn()
        data = random.Random(18).randbytes(6 << 20)
        conn.send(data)  # more than the kernel takes: pending stays high
        assert conn.pending > 64 << 10
        assert recv_exactly(s, len(data)) == data
        rec.wait_count("drain", 1)
        assert len(rec.drains) == 1
        assert rec.drains[0][0] <= 64 << 10
        # Under the watermark: no new episode.
        still_works_and_closes(rec, conn, s, b"small")
    finally:
        s.close()
