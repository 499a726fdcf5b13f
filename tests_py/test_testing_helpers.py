"""pyiocp.testing on every backend: the fixtures, the Client, the event
recorder's matching rules and the misbehaving peers of faults."""

from __future__ import annotations

import threading
import time
from typing import List, Optional, Tuple

import pytest

import pyiocp
import pyiocp.testing
from iocp_helpers import RESETS_LOST
from pyiocp._cli.echo import EchoHandler as Echo  # flow-controlled: pauses reading on BufferFull
from pyiocp.testing import (ANY, Client, ClientFactory, EventsFactory, ManagerFactory, ServerFactory, faults,
                            record_events, start_server)


class Replies(pyiocp.Handler):
    """Answers after the peer's FIN (HTTP/1.0 style): overrides on_eof."""

    def on_accept(self, conn: pyiocp.Connection) -> None:
        conn.got = bytearray()

    def on_recv(self, conn: pyiocp.Connection, data: bytes) -> None:
        conn.got += data

    def on_eof(self, conn: pyiocp.Connection) -> None:
        conn.send(b"got %d bytes" % len(conn.got))
        conn.close()


def test_the_public_names() -> None:
    assert sorted(pyiocp.testing.__all__) == [
        "ANY", "Address", "Client", "ClientFactory", "Event", "EventRecorder", "EventsFactory", "ManagerFactory",
        "Server", "ServerFactory", "faults", "fd_table", "leaks_since", "record_events", "snapshot",
        "start_server"]
    for name in pyiocp.testing.__all__:
        assert getattr(pyiocp.testing, name) is not None


def test_server_and_client(iocp_server: ServerFactory, iocp_client: ClientFactory, backend: str) -> None:
    server = iocp_server(Echo, backend=backend, workers=2)
    assert server.manager.stats()["backend"] == backend and server.manager.workers == 2
    assert server.host == "127.0.0.1" and server.port == server.address[1] > 0
    c = iocp_client(server)
    c.send(b"one\ntwo\nthree")
    assert c.recv_until() == b"one\n"
    assert c.recv_until(b"o\n") == b"two\n"
    assert c.recv_exactly(5) == b"three"
    c.send(b"xyz")
    assert c.recv(1) == b"x" and c.recv(10) == b"yz"
    assert server.connections == 1 and c.local[1] > 0
    c.shutdown_write()  # the default on_eof closes
    assert c.recv_until_eof() == b""
    c.close()
    c.close()
    assert c.closed and "closed" in repr(c)


def test_client_errors(iocp_server: ServerFactory, iocp_client: ClientFactory, backend: str) -> None:
    server = iocp_server(Echo, backend=backend)
    c = iocp_client(server, timeout=0.2)
    with pytest.raises(TimeoutError):
        c.recv_exactly(1)
    c.send(b"abc")
    with pytest.raises(ValueError, match="no b'\\\\n' in the first 2 bytes"):
        c.recv_until(limit=2)
    server.manager.close()
    with pytest.raises(EOFError, match="closed after 3 of 10 bytes"):
        c.recv_exactly(10)  # the 3 bytes read past the limit are kept
    with pytest.raises(TypeError):
        Client(("127.0.0.1", "80"))  # type: ignore[arg-type]


def test_a_reset_client(iocp_server: ServerFactory, iocp_client: ClientFactory, expect_events: EventsFactory,
                        backend: str) -> None:
    events = expect_events(Echo)
    c = iocp_client(iocp_server(events, backend=backend))
    c.send(b"x")
    c.recv_exactly(1)
    c.reset()
    c.reset()
    # Under Wine a reset may read as the end of the stream (RESETS_LOST).
    events.assert_events([("accept",), ("recv", b"x"), ("close", ANY if RESETS_LOST else ConnectionResetError)])


def test_ipv6_server(iocp_server: ServerFactory, iocp_client: ClientFactory, backend: str) -> None:
    server = iocp_server(Echo(), host="::1", backend=backend)
    assert server.host == "::1"
    c = iocp_client(server.address)
    c.send(b"six")
    assert c.recv_exactly(3) == b"six"


def test_event_matching_rules(iocp_server: ServerFactory, iocp_client: ClientFactory,
                              expect_events: EventsFactory, backend: str) -> None:
    events = expect_events(Replies)
    server = iocp_server(events, backend=backend)
    c = iocp_client(server)
    for piece in (b"a", b"b", b"c"):
        c.send(piece)
        time.sleep(0.02)  # separate reads, most likely
    c.shutdown_write()
    assert c.recv_until_eof() == b"got 3 bytes"
    # Adjacent recvs are one, on both sides; ANY and exception classes match.
    events.assert_events([("accept",), ("recv", b"abc"), ("eof",), ("close", None)])
    events.assert_events([("accept",), ("recv", b"a"), ("recv", b"bc"), ("eof",), ("close", ANY)])
    events.assert_events([("accept",), ("recv",), ("eof",), ("close",)])
    (conn,) = events.connections()
    assert events.events(conn) == events.events(0) and events.events(0)[0] == ("accept",)
    with pytest.raises(AssertionError, match="first difference at index 3: expected \\('close', "
                                             "<class 'ConnectionResetError'>\\), got \\('close', None\\)"):
        events.assert_events([("accept",), ("recv", b"abc"), ("eof",), ("close", ConnectionResetError)])
    with pytest.raises(AssertionError, match="are not the expected ones"):
        events.assert_events([("accept",), ("recv", b"abc"), ("close", None)])


def test_an_incomplete_sequence_times_out(iocp_server: ServerFactory, iocp_client: ClientFactory,
                                          expect_events: EventsFactory, backend: str) -> None:
    events = expect_events(Echo)
    c = iocp_client(iocp_server(events, backend=backend))
    c.send(b"hel")
    c.recv_exactly(3)
    t0 = time.monotonic()
    with pytest.raises(AssertionError, match=r"still incomplete after 0.2 s"):
        events.assert_events([("accept",), ("recv", b"hello")], timeout=0.2)
    assert time.monotonic() - t0 < 2
    c.send(b"lo")
    events.assert_events([("accept",), ("recv", b"hello")])
    with pytest.raises(AssertionError):
        events.assert_events([("accept",), ("recv", b"hello")], conn=1, timeout=0.05)  # no second connection


def test_the_recorder_changes_no_event_mask() -> None:
    """Wrapping a handler leaves the optional events exactly as they were."""
    from pyiocp._manager import _event_mask

    from pyiocp.testing._server import _announcing

    for handler in (Echo(), Replies(), pyiocp.Handler()):
        assert _event_mask(record_events(handler)) == _event_mask(handler)
        assert _event_mask(_announcing(handler, {})) == _event_mask(handler)
        assert _event_mask(_announcing(record_events(handler), {})) == _event_mask(handler)
    with pytest.raises(TypeError):
        record_events(object)  # type: ignore[arg-type]


def test_posts_and_outbound_connections_are_recorded(iocp_manager: ManagerFactory, backend: str) -> None:
    events = record_events(pyiocp.Handler())
    mgr = iocp_manager(events, backend=backend)
    lst = mgr.listen("127.0.0.1", 0)
    out = mgr.connect(*lst.address)
    out.send(b"ping")
    conns = events.wait_connections(2)
    assert out in conns
    inbound = next(c for c in conns if c is not out)
    events.assert_events([("connect",)], conn=out)
    events.assert_events([("accept",), ("recv", b"ping")], conn=inbound)
    mgr.post("payload")
    deadline = time.monotonic() + 5
    while not events.posts and time.monotonic() < deadline:
        time.sleep(0.01)
    assert events.posts == ["payload"]
    out.close()


def test_start_server_without_pytest(backend: str) -> None:
    server = start_server(Echo, backend=backend)
    try:
        with Client(server) as c:
            c.send(b"plain")
            assert c.recv_exactly(5) == b"plain"
    finally:
        server.close()
    assert server.connections == 0 and server.manager.closed
    with pytest.raises(OSError):
        start_server(Echo, host="192.0.2.1", backend=backend)  # not this host's
    with pytest.raises(TypeError):
        start_server(object())  # type: ignore[arg-type]


def test_wait_accepted_without_pytest(backend: str) -> None:
    class Slow(Echo):
        def __init__(self) -> None:
            self.accepted: List[Optional[Tuple[str, int]]] = []

        def on_accept(self, conn: pyiocp.Connection) -> None:
            time.sleep(0.05)
            self.accepted.append(conn.peer)

    handler = Slow()
    server = start_server(handler, backend=backend)
    try:
        with Client(server) as c:
            server.wait_accepted(c)
            assert handler.accepted == [c.local]
    finally:
        server.close()


def test_a_slow_callback_is_named_after_the_servers_handler(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    """The wrapper that follows the accepts does not hide the handler from
    the slow callback warning."""
    class SlowToAccept(Echo):
        def on_accept(self, conn: pyiocp.Connection) -> None:
            time.sleep(0.15)

    server = start_server(SlowToAccept, backend=backend)
    try:
        with Client(server) as c:
            server.wait_accepted(c)
    finally:
        server.close()
    assert "SlowToAccept.on_accept took 0." in caplog.text


# ---------------------------------------------------------------- faults


def test_slow_reader(iocp_server: ServerFactory, backend: str) -> None:
    server = iocp_server(Echo, backend=backend, send_buffer_limit=64 << 10)
    data = bytes(range(256)) * (8 << 12)  # 8 MiB
    assert faults.slow_reader(server, data, expect=len(data), chunk=1 << 16, pause=0) == data
    assert faults.slow_reader(server.address, b"short", pause=0) == b"short"  # expect=None: until EOF


def test_reset_mid_stream(iocp_server: ServerFactory, expect_events: EventsFactory, backend: str) -> None:
    events = expect_events(Echo)
    server = iocp_server(events, backend=backend)
    assert faults.reset_mid_stream(server, b"abcdef", read=3) == b"abc"
    assert faults.reset_mid_stream(server) == b""
    events.assert_events([("accept",), ("recv", b"abcdef"), ("close", ANY)])
    error = events.events(0)[-1][1]
    # Under Wine the peer's reset may read as the end of the stream.
    assert isinstance(error, ConnectionResetError) or (RESETS_LOST and error is None), repr(error)
    events.assert_events([("accept",), ("close", ANY)], conn=1)


def test_half_close(iocp_server: ServerFactory, backend: str) -> None:
    server = iocp_server(Replies, backend=backend)
    assert faults.half_close(server, bytes(100_000)) == b"got 100000 bytes"


def test_trickle(iocp_server: ServerFactory, expect_events: EventsFactory, backend: str) -> None:
    events = expect_events(Echo)
    server = iocp_server(events, backend=backend)
    assert faults.trickle(server, b"drip" * 5 + b"\n", delay=0.005, until=b"\n") == b"drip" * 5 + b"\n"
    assert faults.trickle(server, b"abc", expect=3, delay=0) == b"abc"
    events.assert_events([("accept",), ("recv", b"drip" * 5 + b"\n"), ("close", None)])
    recvs = [e for e in events.events(0) if e[0] == "recv"]
    assert len(recvs) >= 2  # it did arrive in pieces


def test_burst(iocp_server: ServerFactory, backend: str) -> None:
    server = iocp_server(Echo, backend=backend, workers=2)
    r = faults.burst(server, 300, data=b"hello", expect=5)
    assert (r.connected, r.errors) == (300, [])
    assert r.replies == [b"hello"] * 300
    assert server.manager.stats()["accepted"] == 300
    quiet = faults.burst(server, 20, hold=0.05)
    assert quiet.connected == 20 and quiet.replies == [b""] * 20


def test_burst_against_nothing(backend: str) -> None:
    import socket

    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        r = faults.burst(reserved.getsockname(), 5)
    assert r.connected == 0 and len(r.errors) == 5
    assert all("ConnectionRefusedError" in e for e in r.errors)


def test_a_peer_trickling_while_others_burst(iocp_server: ServerFactory, backend: str) -> None:
    """The helpers run together from threads, as a user's load test would."""
    server = iocp_server(Echo, backend=backend, workers=2)
    results: List[Optional[bytes]] = [None]

    def trickler() -> None:
        results[0] = faults.trickle(server, b"x" * 200, expect=200, delay=0.0005)

    t = threading.Thread(target=trickler)
    t.start()
    r = faults.burst(server, 100, data=b"y", expect=1)
    t.join(10)
    assert r.errors == [] and results[0] == b"x" * 200
