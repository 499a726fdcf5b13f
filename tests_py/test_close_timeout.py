"""A graceful close is bounded: while a connection flushes what is pending
it reads and drops at most about recv_buffer_limit of what its peer sends
(then TCP pushes back), and close_timeout (10 s by default) ends the whole
close with a reset and TimeoutError."""

from __future__ import annotations

import socket
import threading
import time
from typing import List, Optional

import pytest

import pyiocp
from iocp_helpers import SLOWDOWN, WAIT, Recorder, flood, recv_until_eof, small_rcvbuf_client

MIB = 1 << 20


def fill_send_buffer(conn: pyiocp.Connection) -> None:
    """Queue bytes until BufferFull: more than the kernel's buffers hold."""
    for _ in range(256):
        try:
            conn.send(b"z" * MIB)
        except pyiocp.BufferFull:
            return
    pytest.fail("the send buffer never filled up")


def test_close_to_a_flooding_peer_that_never_reads(backend: str) -> None:
    """Two peers flood a server that closes their connections, never
    reading: one with a reply pending that cannot be written (reset by the
    default close_timeout, within 15 s), one with nothing pending (closed
    at once). Meanwhile the server reads at most a few MiB after close()."""
    rec = Recorder()
    mgr = pyiocp.SocketManager(rec, backend=backend, send_buffer_limit=32 * MIB)
    stop = threading.Event()
    socks: List[socket.socket] = []
    floods: List[threading.Thread] = []
    try:
        lst = mgr.listen("127.0.0.1", 0)
        mgr.start()
        for _ in range(2):
            socks.append(small_rcvbuf_client(lst.address))
            floods.append(threading.Thread(target=flood, args=(socks[-1], stop)))
            floods[-1].start()
        rec.wait_count("accept", 2)
        replying, silent = (rec.conns[cid] for cid in sorted(rec.inbound))
        fill_send_buffer(replying)
        rec.wait(lambda: mgr.stats()["bytes_in"] > MIB, what="the server reading the floods")
        before = mgr.stats()["bytes_in"]
        t0 = time.monotonic()
        replying.close()
        silent.close()
        assert rec.wait_closed(silent.id) is None
        silent_took = time.monotonic() - t0
        error = rec.wait_closed(replying.id, timeout=15 * SLOWDOWN)
        took = time.monotonic() - t0
        read_after = mgr.stats()["bytes_in"] - before
        assert isinstance(error, TimeoutError), error
        assert 10.0 - 0.1 <= took <= 15.0 * SLOWDOWN, took
        assert silent_took < 2.0 * SLOWDOWN, silent_took
        # recv_buffer_limit (256 KiB), plus what was read ahead before close()
        assert read_after <= 8 * MIB, f"read {read_after} bytes after close()"
    finally:
        stop.set()
        mgr.close()
        for s in socks:
            s.close()
        for t in floods:
            t.join(WAIT)


@pytest.mark.parametrize("close_timeout", [5.0, None])
def test_close_lets_a_slow_reader_read_everything(backend: str, close_timeout: Optional[float]) -> None:
    """A peer reading slowly, but within close_timeout, loses no byte and
    sees a clean end of stream; so does any peer when there is none."""
    rec = Recorder()
    mgr = pyiocp.SocketManager(rec, backend=backend, send_buffer_limit=32 * MIB, close_timeout=close_timeout)
    s: Optional[socket.socket] = None
    try:
        lst = mgr.listen("127.0.0.1", 0)
        mgr.start()
        s = small_rcvbuf_client(lst.address, rcvbuf=64 << 10, timeout=WAIT)
        conn = rec.first_conn()
        payload = bytes(range(256)) * (16 * MIB // 256)
        conn.send(payload)
        conn.close()
        got = bytearray()
        while True:
            piece = s.recv(256 << 10)
            if not piece:
                break
            got += piece
            time.sleep(0.001)  # about 2 s for 16 MiB at most, slower on a loaded machine
        assert bytes(got) == payload
        assert rec.wait_closed(conn.id) is None
        assert recv_until_eof(s) == b""
    finally:
        mgr.close()
        if s is not None:
            s.close()
