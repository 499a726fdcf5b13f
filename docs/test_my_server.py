"""Tests of a pyiocp server with pyiocp's pytest plugin: copy this file
into your project and put your own handler in place of ``Greeter``.

The plugin comes with pyiocp (no conftest.py needed). Its fixtures:
``iocp_server`` runs a handler on a free loopback port, ``iocp_client``
connects blocking clients to it, ``expect_events`` records the handler's
callbacks; ``pyiocp.testing.faults`` plays difficult peers. At the end of
each test, everything is closed, and the test fails if the server kept a
connection open, or a thread or a file descriptor was left behind.

Run it with ``python -m pytest docs/test_my_server.py``.
"""

from __future__ import annotations

from typing import Optional

import pytest

import pyiocp
from pyiocp.testing import ANY, ClientFactory, EventsFactory, ManagerFactory, ServerFactory, faults


class Greeter(pyiocp.Handler):
    """The server under test: answers each line ``NAME`` with ``hello,
    NAME``. Replies wait in ``conn.out`` while the send buffer is full;
    reading pauses meanwhile (on_drain resumes both), so a peer that writes
    faster than it reads is slowed down by TCP instead of being cut off."""

    CHUNK = 64 << 10  # no single send may exceed send_buffer_limit

    def on_accept(self, conn: pyiocp.Connection) -> None:
        conn.buf = b""
        conn.out = bytearray()

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        conn.buf += data
        *lines, conn.buf = conn.buf.split(b"\n")
        conn.out += b"".join(b"hello, " + line + b"\n" for line in lines)
        self.flush(conn)

    def on_drain(self, conn: pyiocp.Connection) -> None:
        self.flush(conn)
        if not conn.out:
            conn.resume_reading()

    def flush(self, conn: pyiocp.Connection) -> None:
        while conn.out:
            try:
                conn.send(bytes(conn.out[:self.CHUNK]))
            except pyiocp.BufferFull:
                conn.pause_reading()  # until on_drain
                return
            del conn.out[:self.CHUNK]


# ---------------------------------------------------------------- the basics


def test_greets(iocp_server: ServerFactory, iocp_client: ClientFactory) -> None:
    server = iocp_server(Greeter)  # a class, or an instance
    client = iocp_client(server.address)
    client.send(b"alice\nbob\n")
    assert client.recv_until(b"\n") == b"hello, alice\n"
    assert client.recv_exactly(11) == b"hello, bob\n"


@pytest.mark.parametrize("workers", [1, 4])
def test_many_clients(iocp_server: ServerFactory, iocp_client: ClientFactory, workers: int) -> None:
    server = iocp_server(Greeter(), workers=workers)  # any SocketManager option
    clients = [iocp_client(server) for _ in range(20)]
    for i, c in enumerate(clients):
        c.send(b"client%d\n" % i)
    for i, c in enumerate(clients):
        assert c.recv_until() == b"hello, client%d\n" % i
    assert server.manager.stats()["accepted"] == 20


def test_ipv6(iocp_server: ServerFactory, iocp_client: ClientFactory) -> None:
    server = iocp_server(Greeter, host="::1")
    client = iocp_client(server)
    client.send(b"six\n")
    assert client.recv_until() == b"hello, six\n"


# ---------------------------------------------------------------- the callbacks


def test_callback_sequence(iocp_server: ServerFactory, iocp_client: ClientFactory,
                           expect_events: EventsFactory) -> None:
    events = expect_events(Greeter())
    server = iocp_server(events)  # the recorder runs in place of the handler
    client = iocp_client(server)
    client.send(b"hi\n")
    assert client.recv_until() == b"hello, hi\n"
    client.close()
    # Adjacent recv events count as one: TCP has no message boundaries.
    events.assert_events([("accept",), ("recv", b"hi\n"), ("close", None)])


def test_expected_sequence_checked_at_the_end(iocp_server: ServerFactory, iocp_client: ClientFactory,
                                              expect_events: EventsFactory) -> None:
    # Given up front, the sequence is asserted when the test ends and the
    # connection is over (the plugin closes the client).
    server = iocp_server(expect_events(Greeter, [("accept",), ("recv", b"x\n"), ("close", None)]))
    client = iocp_client(server)
    client.send(b"x\n")
    client.recv_until()


# ---------------------------------------------------------------- difficult peers


def test_a_slow_reader_gets_everything(iocp_server: ServerFactory) -> None:
    # The peer sends 1 MB of requests before it reads much of the 4.5 MB of
    # replies: the server's 256 KiB send buffer fills up many times.
    server = iocp_server(Greeter, send_buffer_limit=256 << 10)
    reply = faults.slow_reader(server, b"x\n" * 500_000, expect=9 * 500_000, chunk=1 << 16, pause=0)
    assert reply == b"hello, x\n" * 500_000


def test_a_peer_that_resets_mid_stream(iocp_server: ServerFactory, expect_events: EventsFactory) -> None:
    events = expect_events(Greeter)
    server = iocp_server(events)
    assert faults.reset_mid_stream(server, b"one\ntw", read=11) == b"hello, one\n"
    events.assert_events([("accept",), ("recv", b"one\ntw"), ("close", ConnectionResetError)])


def test_a_half_close_still_gets_its_answers(iocp_server: ServerFactory) -> None:
    server = iocp_server(Greeter)
    assert faults.half_close(server, b"a\nb\n") == b"hello, a\nhello, b\n"


def test_a_peer_that_trickles(iocp_server: ServerFactory) -> None:
    server = iocp_server(Greeter)
    assert faults.trickle(server, b"slowly\n", until=b"\n") == b"hello, slowly\n"


def test_a_burst_of_connections(iocp_server: ServerFactory) -> None:
    server = iocp_server(Greeter, workers=2)
    result = faults.burst(server, 200, data=b"burst\n", expect=len(b"hello, burst\n"))
    assert result.errors == []
    assert result.connected == 200
    assert set(result.replies) == {b"hello, burst\n"}


def test_a_client_that_resets(iocp_server: ServerFactory, iocp_client: ClientFactory,
                              expect_events: EventsFactory) -> None:
    events = expect_events(Greeter)
    client = iocp_client(iocp_server(events))
    client.send(b"bye\n")
    client.recv_until()
    client.reset()
    events.assert_events([("accept",), ("recv", ANY), ("close", ConnectionResetError)])


# ---------------------------------------------------------------- a manager of your own


def test_poll_mode(iocp_manager: ManagerFactory, iocp_client: ClientFactory) -> None:
    mgr = iocp_manager()  # no handler: take completions with poll()
    listener = mgr.listen("127.0.0.1", 0)
    client = iocp_client(listener)
    client.send(b"ping")
    kinds = []
    data: Optional[bytes] = None
    while data is None:
        for completion in mgr.poll(timeout=5):
            kinds.append(completion.kind)
            if completion.kind == "recv":
                data = completion.data
    assert kinds == ["accept", "recv"] and data == b"ping"
