"""Misbehaving peers, to run against your own server in tests.

Each function plays one kind of difficult client against ``target`` (a
``(host, port)`` pair, or anything with an ``.address`` such as the
``iocp_server`` fixture's server), cleans up its own sockets and threads,
and returns what it received, so the test can assert on it::

    from pyiocp.testing import faults

    def test_survives_a_slow_reader(iocp_server):
        server = iocp_server(MyEcho)
        data = bytes(8 << 20)
        assert faults.slow_reader(server, data, expect=len(data)) == data

A server that gets these wrong shows it: ``slow_reader`` against a handler
that ignores :class:`~pyiocp.BufferFull` ends in ``EOFError`` (the server
dropped the connection); the ``reset``/``half-close`` cases show in the
handler's ``on_close`` error or in what the server sends back.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import threading
import time
from typing import List, NamedTuple, Optional

from ._client import Address, Client, address_of

__all__ = ["BurstResult", "burst", "half_close", "reset_mid_stream", "slow_reader", "trickle"]


def slow_reader(
    target: Address,
    data: bytes,
    *,
    expect: Optional[int] = None,
    chunk: int = 4096,
    pause: float = 0.001,
    rcvbuf: int = 4096,
    timeout: float = 30.0,
) -> bytes:
    """A peer that writes ``data`` as fast as the server takes it (from a
    thread of its own, so it may write far ahead of its reading) while it
    reads the reply slowly: ``chunk`` bytes at a time with ``pause``
    seconds between reads, through a ``rcvbuf``-byte receive buffer, so the
    server's sends back up. Returns ``expect`` bytes of reply (``EOFError``
    if the server closes first, with a FIN or a reset: a server closing
    while such a peer still sends stops reading after a while, and closing
    with bytes unread resets), or with ``expect=None`` everything until the
    server closes (the peer half-closes once ``data`` is written)."""
    sent_error: List[BaseException] = []
    with Client(target, timeout=timeout, rcvbuf=rcvbuf) as client:

        def write() -> None:
            try:
                client.send(data)
                if expect is None:
                    client.shutdown_write()
            except OSError as exc:  # the server dropped us: the reader says so
                sent_error.append(exc)

        writer = threading.Thread(target=write, name="pyiocp-fault-slow-reader", daemon=True)
        writer.start()
        got = bytearray()
        try:
            while expect is None or len(got) < expect:
                try:
                    piece = client.recv(chunk if expect is None else min(chunk, expect - len(got)))
                except ConnectionResetError as exc:
                    if expect is None:
                        raise
                    raise EOFError(f"the server closed the connection after {len(got)} of {expect} bytes "
                                   f"(with a reset)") from exc
                if not piece:
                    if expect is not None:
                        why = f" (writing failed: {sent_error[0]!r})" if sent_error else ""
                        raise EOFError(f"the server closed the connection after {len(got)} of {expect} bytes{why}")
                    break
                got += piece
                if pause:
                    time.sleep(pause)
        finally:
            if writer.is_alive():
                client.reset()  # unblocks the writer
            writer.join(timeout)
    return bytes(got)


def reset_mid_stream(target: Address, data: bytes = b"", *, read: int = 0, timeout: float = 5.0) -> bytes:
    """A peer that sends ``data`` (say, half of a request), reads ``read``
    bytes of the reply (so the server may be in the middle of sending),
    then resets the connection (RST) instead of closing it. Returns the
    bytes it read. The server's ``on_close`` then gets an ``OSError``
    (``ConnectionResetError``), or ``None`` if it had closed already."""
    with Client(target, timeout=timeout) as client:
        if data:
            client.send(data)
        got = client.recv_exactly(read) if read else b""
        client.reset()
    return got


def half_close(target: Address, data: bytes, *, timeout: float = 5.0) -> bytes:
    """A peer that sends ``data``, then half-closes (FIN: the server's
    ``on_eof``) and reads until the server closes. Returns the reply. A
    server must still answer what arrived before the FIN, then close."""
    with Client(target, timeout=timeout) as client:
        client.send(data)
        client.shutdown_write()
        return client.recv_until_eof()


def trickle(
    target: Address,
    data: bytes,
    *,
    delay: float = 0.001,
    expect: Optional[int] = None,
    until: Optional[bytes] = None,
    timeout: float = 5.0,
) -> bytes:
    """A peer that sends ``data`` one byte per write (TCP_NODELAY, ``delay``
    seconds apart), so the server gets its requests in the smallest pieces.
    Then it reads ``expect`` bytes, or up to and including ``until``, or
    (neither given) until the server closes, and returns them."""
    with Client(target, timeout=timeout, nodelay=True) as client:
        for i in range(len(data)):
            client.send(data[i:i + 1])
            if delay:
                time.sleep(delay)
        if expect is not None:
            return client.recv_exactly(expect)
        if until is not None:
            return client.recv_until(until)
        return client.recv_until_eof()


class BurstResult(NamedTuple):
    """What :func:`burst` saw: how many connections were established, the
    reply read on each (in connection order; ``b""`` where none was read),
    and a description of each failure."""

    connected: int
    replies: List[bytes]
    errors: List[str]


def burst(
    target: Address,
    count: int = 100,
    *,
    data: bytes = b"",
    expect: int = 0,
    hold: float = 0.0,
    timeout: float = 10.0,
) -> BurstResult:
    """``count`` connections opened at once (non-blocking connects from one
    thread, as fast as the kernel takes them), then on each one ``data``
    sent and ``expect`` bytes read; all of them are held open ``hold``
    seconds more, then closed. Failures (refused, reset, timed out, closed
    early) are collected, not raised."""
    host, port = address_of(target)
    addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    deadline = time.monotonic() + timeout
    socks: List[Optional[socket.socket]] = []
    errors: List[str] = []
    replies: List[bytes] = [b""] * count
    sel = selectors.DefaultSelector()
    try:
        for i in range(count):
            s = socket.socket(addr[0], socket.SOCK_STREAM)
            s.setblocking(False)
            socks.append(s)
            err = s.connect_ex(addr[4])
            if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                errors.append(f"connection {i}: connect: {OSError(err, os.strerror(err))!r}")
                s.close()
                socks[i] = None
                continue
            sel.register(s, selectors.EVENT_WRITE, i)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                for key in list(sel.get_map().values()):
                    errors.append(f"connection {key.data}: connect timed out")
                    sel.unregister(key.fileobj)
                break
            for key, _ in sel.select(left):
                sel.unregister(key.fileobj)
                pending = socks[key.data]
                assert pending is not None
                err = pending.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    errors.append(f"connection {key.data}: connect: {OSError(err, os.strerror(err))!r}")
                    pending.close()
                    socks[key.data] = None
        connected = sum(1 for s in socks if s is not None)
        for i, sender in enumerate(socks):
            if sender is None or not data:
                continue
            try:
                sender.settimeout(max(0.001, deadline - time.monotonic()))
                sender.sendall(data)
            except OSError as exc:
                errors.append(f"connection {i}: send: {exc!r}")
                sender.close()
                socks[i] = None
        for i, reader in enumerate(socks):
            if reader is None or not expect:
                continue
            got = bytearray()
            try:
                while len(got) < expect:
                    reader.settimeout(max(0.001, deadline - time.monotonic()))
                    piece = reader.recv(expect - len(got))
                    if not piece:
                        errors.append(f"connection {i}: closed after {len(got)} of {expect} bytes")
                        break
                    got += piece
            except OSError as exc:
                errors.append(f"connection {i}: recv after {len(got)} of {expect} bytes: {exc!r}")
            replies[i] = bytes(got)
        if hold:
            time.sleep(hold)
    finally:
        sel.close()
        for left_open in socks:
            if left_open is not None:
                left_open.close()
    return BurstResult(connected, replies, errors)
